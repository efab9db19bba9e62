//! `charon erasure create|plan|approve|execute|show`: data-subject erasure
//! requests for compliance officers (docs/erasure.md).
//!
//! ```text
//! charon erasure create --email E [--email …] [--phone P] [--user-id U]
//!                       --ticket T --regime gdpr|ccpa [--due YYYY-MM-DD] [--note N] [--json]
//! charon erasure plan --request ID --email … [--json]
//! charon erasure approve --request ID --plan-sha256 H
//! charon erasure execute --request ID --email …
//! charon erasure show --request ID [--json]
//! charon erasure list [--json]
//! charon erasure run-queue [--request ID [--retry-failed]] [--json]
//! charon erasure certificate --request ID [--out DIR] [--json]
//! ```
//!
//! Everything goes through the console's dispatch point (MFA gate,
//! permission table, audit); approve and execute ask for a step-up. The
//! subject's identifiers are given again to plan and execute: the console
//! database keeps only their keyed hashes.

use anyhow::Context;
use chrono::{NaiveDate, TimeZone, Utc};
use clap::{Args, Subcommand};
use uuid::Uuid;

use super::output;
use super::session::{Factor, dispatch_stepped};
use crate::core::action::{Action, Reply};
use crate::core::console::Console;
use crate::core::erasure::store::RequestKind;
use crate::core::erasure::{ErasureRequest, ExecuteOutcome, Plan, Recovered, Regime, Subject};

#[derive(Debug, Subcommand)]
pub enum ErasureCommand {
    /// Open a request (state draft).
    Create(CreateArgs),
    /// Discover everything that belongs to the subject and store the plan.
    Plan(PlanArgs),
    /// Approve a plan by its SHA-256 (a different officer than the creator; step-up).
    Approve(ApproveArgs),
    /// Execute the approved plan (step-up); exit 3 when the data changed
    /// since approval (the differences are listed; approve again).
    Execute(ExecuteArgs),
    /// A request's state, plan and external steps.
    Show(ShowArgs),
    /// Requests: unfinished first by due date (overdue marked).
    List(ListArgs),
    /// Settle interrupted executions, run the external queue (objects,
    /// Plaid items) with retries, finish requests whose queue is empty. For
    /// cron: exit 0 when nothing is left failed, 4 when a step failed.
    RunQueue(RunQueueArgs),
    /// The certificate of a done request: writes `<id>.json` and `<id>.md`
    /// to --out (default: the current directory) and prints its SHA-256.
    Certificate(CertificateArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, default_value_t = 200)]
    pub limit: i64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunQueueArgs {
    /// Only this request's steps.
    #[arg(long)]
    pub request: Option<Uuid>,
    /// Put the request's failed steps back in the queue first.
    #[arg(long, requires = "request")]
    pub retry_failed: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CertificateArgs {
    #[arg(long)]
    pub request: Uuid,
    /// Directory to write `<id>.json` and `<id>.md` into.
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
    /// Print the JSON certificate instead of writing files.
    #[arg(long)]
    pub json: bool,
}

/// The subject's identifiers (several may be given for one person).
#[derive(Debug, Args)]
pub struct SubjectArgs {
    /// An e-mail address of the subject (repeatable).
    #[arg(long = "email", value_name = "EMAIL")]
    pub emails: Vec<String>,
    /// A phone number of the subject (repeatable).
    #[arg(long = "phone", value_name = "PHONE")]
    pub phones: Vec<String>,
    /// A Pluto user id of the subject (repeatable).
    #[arg(long = "user-id", value_name = "UUID")]
    pub user_ids: Vec<Uuid>,
}

impl SubjectArgs {
    fn subject(&self) -> anyhow::Result<Subject> {
        let s = Subject {
            emails: self.emails.clone(),
            phones: self.phones.clone(),
            user_ids: self.user_ids.clone(),
        };
        if s.is_empty() {
            anyhow::bail!("give at least one --email, --phone or --user-id");
        }
        Ok(s)
    }
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// The ticket reference.
    #[arg(long)]
    pub ticket: String,
    /// gdpr (due in 30 days) or ccpa (45 days).
    #[arg(long, value_parser = ["gdpr", "ccpa"])]
    pub regime: String,
    /// A due date instead of the regime's (end of that day, UTC).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub due: Option<NaiveDate>,
    #[arg(long, default_value = "")]
    pub note: String,
    /// An access request (export what is held) instead of an erasure.
    #[arg(long)]
    pub access: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[arg(long)]
    pub request: Uuid,
    #[command(flatten)]
    pub subject: SubjectArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    #[arg(long)]
    pub request: Uuid,
    /// The SHA-256 of the plan reviewed (from `erasure plan`).
    #[arg(long = "plan-sha256", value_name = "HEX")]
    pub plan_sha256: String,
}

#[derive(Debug, Args)]
pub struct ExecuteArgs {
    #[arg(long)]
    pub request: Uuid,
    #[command(flatten)]
    pub subject: SubjectArgs,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[arg(long)]
    pub request: Uuid,
    #[arg(long)]
    pub json: bool,
}

fn regime(name: &str, due: Option<NaiveDate>) -> anyhow::Result<Regime> {
    if let Some(d) = due {
        let end = d
            .and_hms_opt(23, 59, 59)
            .ok_or_else(|| anyhow::anyhow!("invalid --due date"))?;
        return Ok(Regime::Custom {
            due_at: Utc.from_utc_datetime(&end),
        });
    }
    match name {
        "gdpr" => Ok(Regime::Gdpr),
        "ccpa" => Ok(Regime::Ccpa),
        _ => anyhow::bail!("--regime is gdpr or ccpa"),
    }
}

pub async fn run(console: &Console, cmd: ErasureCommand, factor: Factor) -> anyhow::Result<i32> {
    match cmd {
        ErasureCommand::Create(a) => {
            let action = Action::ErasureCreate {
                id: Uuid::new_v4(),
                kind: if a.access {
                    RequestKind::Access
                } else {
                    RequestKind::Erasure
                },
                subject: a.subject.subject()?,
                ticket: a.ticket.clone(),
                regime: regime(&a.regime, a.due)?,
                note: a.note.clone(),
            };
            let Reply::ErasureCreated(id) = console.dispatch(action).await? else {
                anyhow::bail!("unexpected reply to erasure create");
            };
            if a.json {
                output::json(&serde_json::json!({ "request": id }))?;
            } else {
                output::line(&id.to_string());
            }
            Ok(0)
        }
        ErasureCommand::Plan(a) => {
            let action = Action::ErasurePlan {
                request: a.request,
                subject: a.subject.subject()?,
            };
            let Reply::ErasurePlanned(plan) = console.dispatch(action).await? else {
                anyhow::bail!("unexpected reply to erasure plan");
            };
            if a.json {
                output::json(&plan.to_json()?)?;
            } else {
                for l in plan_lines(&plan) {
                    output::line(&l);
                }
            }
            Ok(0)
        }
        ErasureCommand::Approve(a) => {
            let action = Action::ErasureApprove {
                request: a.request,
                plan_sha256: a.plan_sha256.trim().to_lowercase(),
            };
            let Reply::ErasureApproved {
                request,
                plan_sha256,
            } = dispatch_stepped(console, action, factor).await?
            else {
                anyhow::bail!("unexpected reply to erasure approve");
            };
            output::line(&format!("approved {request} plan {plan_sha256}"));
            Ok(0)
        }
        ErasureCommand::Execute(a) => {
            let action = Action::ErasureExecute {
                request: a.request,
                subject: a.subject.subject()?,
            };
            let Reply::ErasureExecuted(out) = dispatch_stepped(console, action, factor).await?
            else {
                anyhow::bail!("unexpected reply to erasure execute");
            };
            match *out {
                ExecuteOutcome::Done(r) => {
                    if r.resumed {
                        output::line("resumed an interrupted execution");
                    }
                    if let Some(x) = &r.export {
                        output::line(&format!(
                            "exported {} rows of {} tables, {} external objects listed",
                            x.tables.values().sum::<u64>(),
                            x.tables.len(),
                            x.external_objects
                        ));
                        output::line(&format!("{}  {}", x.sha256, x.path.display()));
                    } else {
                        output::line(&format!(
                            "pluto: {} rows deleted, {} pseudonymised, {} redacted",
                            r.rows_deleted, r.rows_pseudonymised, r.rows_redacted
                        ));
                    }
                    output::line(&format!(
                        "external: {} steps queued; {} done, {} to retry, {} failed, {} pending",
                        r.external_enqueued,
                        r.queue.done,
                        r.queue.retried,
                        r.queue.failed,
                        r.queue.pending
                    ));
                    match &r.certificate_sha256 {
                        Some(sha) => {
                            output::line(&format!("done; certificate sha256 {sha}"));
                            Ok(0)
                        }
                        None => {
                            output::line(
                                "executing: external steps remain; `charon erasure run-queue` finishes them",
                            );
                            Ok(if r.queue.failed > 0 { 4 } else { 0 })
                        }
                    }
                }
                ExecuteOutcome::PlanChanged {
                    approved_sha256,
                    new_plan,
                    differences,
                } => {
                    eprintln!(
                        "charon: the data changed since plan {approved_sha256} was approved; nothing was changed"
                    );
                    for d in &differences {
                        output::line(&format!("  {d}"));
                    }
                    output::line(&format!(
                        "new plan {} needs a new approval",
                        new_plan.sha256
                    ));
                    Ok(3)
                }
            }
        }
        ErasureCommand::Show(a) => {
            let Reply::ErasureRequest(d) = console
                .dispatch(Action::ErasureShow { request: a.request })
                .await?
            else {
                anyhow::bail!("unexpected reply to erasure show");
            };
            let mut j = request_json(&d.request);
            if let Some(o) = j.as_object_mut() {
                o.insert(
                    "steps".into(),
                    serde_json::to_value(&d.steps).unwrap_or_default(),
                );
            }
            if a.json {
                if let Some(o) = j.as_object_mut() {
                    o.insert("plan".into(), d.plan.clone().unwrap_or_default());
                }
                output::json(&j)?;
            } else {
                for (k, v) in j.as_object().into_iter().flatten() {
                    if k == "steps" {
                        continue;
                    }
                    let v = match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Null => "-".into(),
                        other => other.to_string(),
                    };
                    output::line(&format!("{k}: {v}"));
                }
                for st in &d.steps {
                    output::line(&format!(
                        "step {} {} {} (tries {}){}",
                        st.system,
                        st.object,
                        st.state,
                        st.attempts,
                        st.last_error
                            .as_ref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    ));
                }
            }
            Ok(0)
        }
        ErasureCommand::List(a) => {
            let Reply::ErasureList(list) = console
                .dispatch(Action::ErasureList { limit: a.limit })
                .await?
            else {
                anyhow::bail!("unexpected reply to erasure list");
            };
            let now = Utc::now();
            if a.json {
                let v: Vec<serde_json::Value> = list
                    .iter()
                    .map(|r| {
                        let mut j = request_json(r);
                        if let Some(o) = j.as_object_mut() {
                            o.insert("overdue".into(), r.overdue(now).into());
                        }
                        j
                    })
                    .collect();
                output::json(&serde_json::Value::from(v))?;
            } else {
                for r in &list {
                    output::line(&format!(
                        "{}  {:<8} {:<10} due {}{}  {}  {}",
                        r.id,
                        r.kind,
                        r.state,
                        r.due_at.format("%Y-%m-%d"),
                        if r.overdue(now) { " OVERDUE" } else { "" },
                        r.ticket,
                        r.subject_ref
                    ));
                }
            }
            Ok(0)
        }
        ErasureCommand::RunQueue(a) => {
            let Reply::ErasureQueueRun(q) = console
                .dispatch(Action::ErasureRunQueue {
                    request: a.request,
                    retry_failed: a.retry_failed,
                })
                .await?
            else {
                anyhow::bail!("unexpected reply to erasure run-queue");
            };
            let recovered: Vec<serde_json::Value> = q
                .recovered
                .iter()
                .map(|(id, r)| serde_json::json!({ "request": id, "recovered": format!("{r:?}").to_lowercase() }))
                .collect();
            if a.json {
                output::json(&serde_json::json!({
                    "recovered": recovered,
                    "done": q.report.done,
                    "retried": q.report.retried,
                    "failed": q.report.failed,
                    "pending": q.report.pending,
                    "finished": q.finished,
                }))?;
            } else {
                for (id, r) in &q.recovered {
                    output::line(&format!(
                        "{id}: interrupted execution {}",
                        match r {
                            Recovered::Committed => "had committed; its queue carries on",
                            Recovered::RolledBack =>
                                "had not committed: nothing changed, approved again",
                            Recovered::Running => "is running in another session",
                        }
                    ));
                }
                output::line(&format!(
                    "steps: {} done, {} to retry, {} failed, {} pending",
                    q.report.done, q.report.retried, q.report.failed, q.report.pending
                ));
                for id in &q.finished {
                    output::line(&format!("{id}: done (certificate made)"));
                }
            }
            Ok(if q.report.failed > 0 { 4 } else { 0 })
        }
        ErasureCommand::Certificate(a) => {
            let Reply::ErasureCertificate(c) = console
                .dispatch(Action::ErasureCertificate { request: a.request })
                .await?
            else {
                anyhow::bail!("unexpected reply to erasure certificate");
            };
            if a.json {
                output::line(&c.canonical_json());
                return Ok(0);
            }
            let dir = a.out.unwrap_or_else(|| std::path::PathBuf::from("."));
            let json_path = dir.join(format!("{}.json", a.request));
            let md_path = dir.join(format!("{}.md", a.request));
            std::fs::write(&json_path, c.canonical_json())
                .with_context(|| format!("writing {}", json_path.display()))?;
            std::fs::write(&md_path, c.markdown())
                .with_context(|| format!("writing {}", md_path.display()))?;
            output::line(&format!("{}  {}", c.sha256, json_path.display()));
            output::line(&md_path.display().to_string());
            Ok(0)
        }
    }
}

/// A plan as text: its hash, then one line per table group and external system.
fn plan_lines(p: &Plan) -> Vec<String> {
    let mut out = vec![
        format!("subject: {}", p.subject_ref),
        format!("plan sha256: {}", p.sha256),
    ];
    if p.is_empty() {
        out.push("nothing found for this subject".into());
    }
    for t in &p.per_table {
        let cols = if t.columns.is_empty() {
            String::new()
        } else {
            format!(" [{}]", t.columns.join(", "))
        };
        out.push(format!(
            "{:<24} {:<13} {:>6} rows{cols}  ({})",
            t.table,
            t.action.as_str(),
            t.rows,
            t.reason
        ));
    }
    for e in &p.external {
        out.push(format!("{:<24} {:>6} objects", e.system, e.objects.len()));
    }
    out
}

fn request_json(r: &ErasureRequest) -> serde_json::Value {
    let ts = |t: &chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    serde_json::json!({
        "id": r.id,
        "kind": r.kind,
        "subject": r.subject_ref,
        "ticket": r.ticket,
        "regime": r.regime,
        "state": r.state,
        "received_at": ts(&r.received_at),
        "due_at": ts(&r.due_at),
        "created_by": r.created_by,
        "planned_by": r.planned_by,
        "approved_by": r.approved_by,
        "executed_by": r.executed_by,
        "plan_sha256": r.plan_sha256,
        "executed_at": r.executed_at.as_ref().map(ts),
        "failure": r.failure,
        "certificate_sha256": r.certificate_sha256,
    })
}
