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
//! ```
//!
//! Everything goes through the console's dispatch point (MFA gate,
//! permission table, audit); approve and execute ask for a step-up. The
//! subject's identifiers are given again to plan and execute: the console
//! database keeps only their keyed hashes.

use chrono::{NaiveDate, TimeZone, Utc};
use clap::{Args, Subcommand};
use uuid::Uuid;

use super::output;
use super::session::{Factor, dispatch_stepped};
use crate::core::action::{Action, Reply};
use crate::core::console::Console;
use crate::core::erasure::{ErasureRequest, ExecuteOutcome, Plan, Regime, Subject};

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
    /// A request's state.
    Show(ShowArgs),
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
                    output::line(&format!(
                        "done: {} rows deleted, {} pseudonymised, {} redacted, {} external steps queued",
                        r.rows_deleted, r.rows_pseudonymised, r.rows_redacted, r.external_enqueued
                    ));
                    Ok(0)
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
            let Reply::ErasureRequest(r) = console
                .dispatch(Action::ErasureShow { request: a.request })
                .await?
            else {
                anyhow::bail!("unexpected reply to erasure show");
            };
            if a.json {
                output::json(&request_json(&r))?;
            } else {
                for (k, v) in request_json(&r).as_object().into_iter().flatten() {
                    let v = match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Null => "-".into(),
                        other => other.to_string(),
                    };
                    output::line(&format!("{k}: {v}"));
                }
            }
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
        "subject": r.subject_ref,
        "ticket": r.ticket,
        "regime": r.regime,
        "state": r.state,
        "received_at": ts(&r.received_at),
        "due_at": ts(&r.due_at),
        "created_by": r.created_by,
        "approved_by": r.approved_by,
        "plan_sha256": r.plan_sha256,
        "executed_at": r.executed_at.as_ref().map(ts),
        "failure": r.failure,
    })
}
