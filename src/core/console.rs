//! The one dispatch point. Every action from every front end goes through
//! [`Console::dispatch`], which authorises it, records it in the audit log,
//! and only then runs it. Nothing else in charon touches tenant data.
//!
//! The order is the rule "audited before shown" (DESIGN.md):
//! 1. authorise (the permission table, [`allowed`]);
//! 2. append the audit entry, `allowed` (`...I`) or `denied` (`...E`). If
//!    the append fails, the action does not run and the caller gets
//!    [`Error::AuditUnavailable`] ("audit log unavailable: action refused");
//! 3. a denied action stops here with [`Error::Forbidden`];
//! 4. run it. If running fails, a second entry (`failed`, `...E`, a short
//!    error code, `details.entry` = the first entry's seq) is appended and
//!    the error returned.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use sqlx::PgPool;

use crate::core::action::{
    Action, ActionKind, GateInput, Progress, QueueRun, Reply, RequestDetail,
};
use crate::core::admin::{self, AdminReply};
use crate::core::audit::mirror::Mirror;
use crate::core::audit::{self, AuditKey, AuditRecord, ExportDest, NewEntry, Outcome, Verdict};
use crate::core::audit::{VerifyProgress, event_code};
use crate::core::auth::{Authenticator, FactorInput};
use crate::core::config::Config;
use crate::core::datamap::{Catalog, DataMap, validate_against_catalog};
use crate::core::mfa::piv::PivSlot;
use crate::core::mfa::software::SoftwareKey;
use crate::core::mfa::{Secret, StepUpProof};
use crate::core::records;
use crate::core::session::{Role, Session};
use crate::core::{Error, Result, db, erasure, input, restore, tenants};
use crate::core::{keys, operators};

/// What the front ends show about the connection (status bar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleInfo {
    pub operator: String,
    pub role: Role,
    pub environment: String,
    pub production: bool,
    /// `dbname@host` of the Pluto database.
    pub database: String,
    pub demo: bool,
}

/// The audit side of a console: the HMAC key and the optional mirror.
#[derive(Debug)]
struct AuditSink {
    key: AuditKey,
    mirror: Option<Mirror>,
}

/// What the MFA gate waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateStatus {
    pub operator: String,
    /// One line per enrolled factor, in plain words ("touch your YubiKey …").
    pub prompts: Vec<String>,
    /// Demo only: the roles whose demo operator can be chosen at the gate.
    pub demo_roles: Vec<Role>,
}

/// The session's mutable part: who, and since when the gate is open.
#[derive(Debug)]
struct GateState {
    session: Session,
    info: ConsoleInfo,
    /// When the gate was last passed; `None` before, and again after an idle timeout.
    passed_at: Option<Instant>,
    /// What the last touch signed (sk, PIV, software): recorded in the audit
    /// entry of the action it opened, so it can be proven later which key
    /// approved exactly what.
    last_proof: Option<StepUpProof>,
    last_activity: Instant,
}

/// The core's handle: both pools, the session and the audit key. Cheap to
/// clone (pools and keys are reference-counted), so tasks can each hold one.
#[derive(Clone)]
pub struct Console {
    pluto_read: PgPool,
    /// The Pluto primary, for the typed writes (redaction); the same pool as
    /// `pluto_read` when no replica is configured.
    pluto_write: PgPool,
    console: PgPool,
    state: Arc<Mutex<GateState>>,
    audit: Arc<AuditSink>,
    auth: Arc<Authenticator>,
    idle: Duration,
    /// The data map, validated against the live Pluto catalog on first use.
    datamap: Arc<tokio::sync::OnceCell<(DataMap, Catalog)>>,
    /// `[erasure]` and the systems built from it on first use.
    erasure_config: Arc<crate::core::config::ErasureConfig>,
    systems: Arc<tokio::sync::OnceCell<erasure::Systems>>,
    /// Redaction previews of this session, applied by token.
    previews: Pending<records::Preview>,
    sweeps: Pending<records::BulkPreview>,
    /// `[records] support_may_redact`.
    support_may_redact: bool,
    /// Demo only: one in-memory software key per demo operator role.
    demo_keys: Arc<Vec<(Role, SoftwareKey)>>,
    /// `[restore]` and the `[backups.NAME]` sources.
    restore: Arc<crate::core::config::RestoreConfig>,
    /// The Pluto database restore tests compare with (the read URL), read
    /// through its own pool whose statement timeout is the RTO, not the
    /// interactive one (exact row counts of a large database take longer).
    restore_live: crate::core::config::DbUrl,
    connect_timeout: Duration,
    /// How long an interactive action's database work, the role lookup and
    /// the audit append may take before the database counts as not
    /// answering: the connect timeout plus twice the statement timeout.
    answer_within: Duration,
}

/// Previews of this session, applied later by token: an apply takes exactly
/// what the operator saw, once.
struct Pending<T>(Arc<Mutex<std::collections::HashMap<Uuid, T>>>);

impl<T> Clone for Pending<T> {
    fn clone(&self) -> Self {
        Pending(Arc::clone(&self.0))
    }
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Pending(Arc::new(Mutex::new(std::collections::HashMap::new())))
    }
}

impl<T: Clone> Pending<T> {
    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<Uuid, T>> {
        // Inserts and removals cannot leave the map half-written.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn keep(&self, value: T) -> Uuid {
        let token = Uuid::new_v4();
        self.map().insert(token, value);
        token
    }

    fn peek(&self, token: &Uuid) -> Option<T> {
        self.map().get(token).cloned()
    }

    fn take(&self, token: &Uuid, what: &str) -> Result<T> {
        self.map().remove(token).ok_or_else(|| {
            Error::NotFound(format!("no such {what} in this session (preview again)"))
        })
    }
}

/// Actions that may run before the MFA gate is passed. (Bootstrap works
/// only on an empty operator table, when there is no key to ask for.)
fn before_gate(kind: ActionKind) -> bool {
    matches!(
        kind,
        ActionKind::OpenConsole
            | ActionKind::GateStatus
            | ActionKind::Authenticate
            | ActionKind::Bootstrap
    )
}

/// Actions that need a fresh touch (step-up) when the last one is older
/// than the configured window: every admin action.
pub fn needs_step_up(kind: ActionKind) -> bool {
    matches!(
        kind,
        ActionKind::Reveal
            | ActionKind::RedactApply
            | ActionKind::RedactSweepApply
            | ActionKind::ErasureApprove
            | ActionKind::ErasureExecute
            | ActionKind::OperatorList
            | ActionKind::OperatorAdd
            | ActionKind::OperatorSetRole
            | ActionKind::OperatorLock
            | ActionKind::OperatorUnlock
            | ActionKind::OperatorRemove
            | ActionKind::KeyEnroll
            | ActionKind::KeyList
            | ActionKind::KeyRevoke
            | ActionKind::KeyVerify
    )
}

/// The one database an action's own work (after its audit entry) uses,
/// when it is just one: a server-unreachable error from it is reported as
/// that database being unavailable, so the operator reads which one is down.
fn works_on(kind: ActionKind) -> Option<&'static str> {
    match kind {
        ActionKind::SearchTenants
        | ActionKind::OpenTenant
        | ActionKind::RecordsList
        | ActionKind::RecordShow
        | ActionKind::TripRoute
        | ActionKind::Reveal
        | ActionKind::RedactPreview
        | ActionKind::RedactSweepPreview => Some(db::PLUTO),
        ActionKind::GateStatus
        | ActionKind::OperatorList
        | ActionKind::KeyList
        | ActionKind::AuditList
        | ActionKind::AuditShow
        | ActionKind::AuditVerify
        | ActionKind::AuditExport
        | ActionKind::AuditCheckpoint
        | ActionKind::ErasureShow
        | ActionKind::ErasureList
        | ActionKind::ErasureCertificate
        | ActionKind::RestoreTestHistory => Some(db::CONSOLE),
        _ => None,
    }
}

/// `e`, or, when it says the server of `kind`'s database cannot be reached,
/// [`Error::Unavailable`] naming that database.
fn name_database(kind: ActionKind, e: Error) -> Error {
    match (works_on(kind), e) {
        (Some(which), Error::Database(d))
            if matches!(
                d,
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
            ) =>
        {
            Error::Unavailable {
                which,
                detail: db::reason(&d),
            }
        }
        (_, e) => e,
    }
}

/// Actions a front end waits for interactively (a few statements each):
/// their database work is bounded by `Console::answer_within`. Not the
/// long ones (verify, export, a sweep over a tenant), whose statements are
/// each bounded by the statement timeout only.
fn interactive(kind: ActionKind) -> bool {
    works_on(kind).is_some()
        && !matches!(
            kind,
            ActionKind::AuditVerify
                | ActionKind::AuditExport
                | ActionKind::AuditCheckpoint
                | ActionKind::RedactSweepPreview
        )
}

/// A database that did not answer within `bound`: a server frozen or cut
/// off mid-query (no connection error comes, and its statement timeout
/// cannot fire), counted as unreachable.
fn no_answer(which: &'static str, bound: Duration) -> Error {
    Error::Unavailable {
        which,
        detail: format!("no answer within {} s", bound.as_secs()),
    }
}

/// The reason in an unreachable-server error, without the prefix that
/// names the variant.
fn unreachable_detail(e: &Error) -> String {
    match e {
        Error::Unavailable { detail, .. } => detail.clone(),
        Error::Database(d) => db::reason(d),
        other => other.to_string(),
    }
}

/// What the gate signs for: the domain-separated action of opening a session.
const GATE_PURPOSE: &str = "gate";
const GATE_ACTION: &[u8] = b"charon: open a console session";
const STEP_UP_PURPOSE: &str = "step-up";

/// How long a front end shows a revealed value before hiding it again.
pub const REVEAL_FOR: Duration = Duration::from_secs(30);

/// The bytes a signing factor signs to authorise exactly this action (its
/// SHA-256 goes into the challenge). `Debug` of an action never shows a
/// secret (OTPs and key secrets are masked).
pub fn action_bytes(action: &Action) -> Vec<u8> {
    format!("charon-action-v1\0{action:?}").into_bytes()
}

/// Which roles may run which action. Every dispatch checks it.
pub fn allowed(role: Role, kind: ActionKind) -> bool {
    match kind {
        ActionKind::OpenConsole
        | ActionKind::GateStatus
        | ActionKind::Authenticate
        | ActionKind::StepUp
        | ActionKind::Bootstrap => true,
        ActionKind::OperatorList
        | ActionKind::OperatorAdd
        | ActionKind::OperatorSetRole
        | ActionKind::OperatorLock
        | ActionKind::OperatorUnlock
        | ActionKind::OperatorRemove
        | ActionKind::KeyEnroll
        | ActionKind::KeyList
        | ActionKind::KeyRevoke
        | ActionKind::KeyVerify => role == Role::Admin,
        // One unmasked field, for a ticket.
        ActionKind::Reveal => matches!(role, Role::Support | Role::Compliance),
        // Permanent redaction: compliance officers.
        // (Support too where `[records] support_may_redact` says so: see
        // `Console::authorise`.)
        ActionKind::RedactPreview
        | ActionKind::RedactApply
        | ActionKind::RedactSweepPreview
        | ActionKind::RedactSweepApply => role == Role::Compliance,
        // Data-subject erasure: compliance officers only.
        ActionKind::ErasureCreate
        | ActionKind::ErasurePlan
        | ActionKind::ErasureApprove
        | ActionKind::ErasureExecute
        | ActionKind::ErasureShow
        | ActionKind::ErasureList
        | ActionKind::ErasureRunQueue
        | ActionKind::ErasureCertificate => role == Role::Compliance,
        // Tenant records, masked: the roles that look at customer data.
        ActionKind::RecordsList | ActionKind::RecordShow | ActionKind::TripRoute => {
            matches!(role, Role::Support | Role::Compliance | Role::Auditor)
        }
        ActionKind::SearchTenants | ActionKind::OpenTenant => matches!(
            role,
            Role::Support | Role::Compliance | Role::Sre | Role::Auditor | Role::Admin
        ),
        ActionKind::AuditList
        | ActionKind::AuditShow
        | ActionKind::AuditVerify
        | ActionKind::AuditExport
        | ActionKind::AuditCheckpoint => matches!(role, Role::Auditor | Role::Admin),
        // Backups and restore tests: SREs; auditors may read the history
        // (it is the evidence of the restore drills).
        ActionKind::RestoreTestRun | ActionKind::BackupsList | ActionKind::BackupSources => {
            role == Role::Sre
        }
        ActionKind::RestoreTestHistory => matches!(role, Role::Sre | Role::Auditor),
    }
}

impl Console {
    /// Connects to both databases, checks that the console database's
    /// migrations are this binary's ([`db::check_console_schema`]: it never
    /// migrates, so charon can run as a role without DDL rights) and loads
    /// the audit key from the configuration (`[audit] key_file` or
    /// `CHARON_AUDIT_KEY`; a random key for the demo configuration).
    pub async fn connect(config: &Config, session: Session) -> Result<Console> {
        let key = config.audit.load_key()?;
        Console::connect_with_key(config, session, key).await
    }

    /// As [`Console::connect`], with the audit key given (the demo passes
    /// [`AuditKey::generate`]).
    pub async fn connect_with_key(
        config: &Config,
        session: Session,
        key: AuditKey,
    ) -> Result<Console> {
        let pluto_read = db::connect(&config.pluto_read_url, db::PLUTO, &config.timeouts).await?;
        let console = db::connect(&config.console_url, db::CONSOLE, &config.timeouts).await?;
        db::check_console_schema(&console).await?;
        let mut c = Console::from_pools(config, session, pluto_read, console, key)?;
        if config.pluto_url != config.pluto_read_url {
            // Redaction (and later erasure) writes go to the primary.
            c.pluto_write = db::connect(&config.pluto_url, db::PLUTO, &config.timeouts).await?;
        }
        Ok(c)
    }

    /// A console over open pools. Fails when the `[mfa]` configuration's key
    /// files cannot be read.
    pub fn from_pools(
        config: &Config,
        session: Session,
        pluto_read: PgPool,
        console: PgPool,
        key: AuditKey,
    ) -> Result<Console> {
        let auth = Authenticator::from_config(&config.mfa)?;
        // Demo operators get software keys only where software keys are allowed.
        let demo_keys = if session.demo && auth.allows_software_keys() {
            Role::ALL
                .into_iter()
                .map(|r| (r, SoftwareKey::generate()))
                .collect()
        } else {
            Vec::new()
        };
        let info = ConsoleInfo {
            operator: session.operator.clone(),
            role: session.role,
            environment: config.environment.clone(),
            production: config.is_production(),
            database: config.pluto_read_url.display_name(),
            demo: session.demo,
        };
        let mirror = config.audit.mirror_jsonl.clone().map(Mirror::new);
        Ok(Console {
            pluto_write: pluto_read.clone(),
            pluto_read,
            console,
            state: Arc::new(Mutex::new(GateState {
                session,
                info,
                passed_at: None,
                last_proof: None,
                last_activity: Instant::now(),
            })),
            audit: Arc::new(AuditSink { key, mirror }),
            auth: Arc::new(auth),
            idle: config.timeouts.idle,
            demo_keys: Arc::new(demo_keys),
            datamap: Arc::new(tokio::sync::OnceCell::new()),
            erasure_config: Arc::new(config.erasure.clone()),
            systems: Arc::new(tokio::sync::OnceCell::new()),
            previews: Pending::default(),
            sweeps: Pending::default(),
            support_may_redact: config.records.support_may_redact,
            restore: Arc::new(config.restore.clone()),
            restore_live: config.pluto_read_url.clone(),
            connect_timeout: config.timeouts.connect,
            answer_within: config.timeouts.connect + 2 * config.timeouts.statement,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        // A panic while holding this lock cannot leave it half-written (every
        // update is a plain assignment), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the status bar shows (the operator and role change when a demo
    /// role is chosen at the gate).
    pub fn info(&self) -> ConsoleInfo {
        self.state().info.clone()
    }

    pub fn session(&self) -> Session {
        self.state().session.clone()
    }

    /// True when the MFA gate has been passed and the session has not idled out.
    pub fn gate_open(&self) -> bool {
        let st = self.state();
        st.passed_at.is_some() && st.last_activity.elapsed() < self.idle
    }

    /// The public id of the audit key in use (never the key).
    pub fn audit_key_id(&self) -> String {
        self.audit.key.id()
    }

    /// Authorises, audits, then runs one action (see the module docs).
    pub async fn dispatch(&self, action: Action) -> Result<Reply> {
        self.dispatch_with_progress(action, |_| {}).await
    }

    /// As [`Console::dispatch`]; `progress` hears how far a long action
    /// (audit verify) is, for a progress bar.
    pub async fn dispatch_with_progress<P>(&self, action: Action, progress: P) -> Result<Reply>
    where
        P: FnMut(Progress) + Send,
    {
        let kind = action.kind();
        let session = self.session();
        let bound = self.answer_within;
        let (role, refusal) = tokio::time::timeout(bound, self.authorise(&session, &action))
            .await
            .unwrap_or_else(|_| (session.role, Some(no_answer(db::CONSOLE, bound))));
        // Typed text is checked before it reaches the audit entry or a query;
        // a refused entry keeps no trace of it.
        let invalid_text = match refusal {
            Some(_) => None,
            None => check_typed_text(&action).err(),
        };
        let stripped = invalid_text.is_some();
        let refusal = refusal.or(invalid_text);
        let outcome = if refusal.is_none() {
            Outcome::Allowed
        } else {
            Outcome::Denied
        };
        let mut entry = self.entry_for(&session, role, &action, outcome);
        let proof = self.state().last_proof.clone();
        if let (true, None, Some(p), serde_json::Value::Object(d)) =
            (needs_step_up(kind), &refusal, &proof, &mut entry.details)
        {
            d.insert(
                "step_up".into(),
                serde_json::json!({
                    "factor": p.factor().as_str(),
                    "key_id": p.key_id(),
                    "action_sha256": p.action_hash().map(hex::encode),
                    "signature": p.signature().map(hex::encode),
                }),
            );
        }
        if let Some(e) = &refusal {
            if e.is_unreachable() {
                // The console database did not answer the role lookup: the
                // entry cannot be written either. Refuse now rather than
                // wait for a second connect timeout.
                return Err(Error::AuditUnavailable(format!(
                    "{}: {}",
                    db::CONSOLE,
                    unreachable_detail(e)
                )));
            }
            entry.error = Some(e.audit_code());
        }
        if stripped {
            entry.reason = None;
            entry.target_columns.clear();
            if let serde_json::Value::Object(d) = &mut entry.details {
                d.remove("ticket");
            }
        }
        let first = self.record(&entry).await?;
        if let Some(e) = refusal {
            return Err(e);
        }
        if !before_gate(kind) {
            self.state().last_activity = Instant::now();
        }
        let run = self.run(action, progress);
        let result = match works_on(kind).filter(|_| interactive(kind)) {
            Some(which) => tokio::time::timeout(bound, run)
                .await
                .unwrap_or_else(|_| Err(no_answer(which, bound))),
            None => run.await,
        }
        .map_err(|e| name_database(kind, e));
        let failure = match &result {
            Ok(Reply::AuditVerdict(v @ Verdict::Broken { seq, .. })) => Some((
                "chain_broken".to_string(),
                serde_json::json!({ "broken_seq": seq, "verdict": v.to_string() }),
            )),
            Ok(Reply::Authenticated(_)) => {
                // The gate passed: a second entry names the key that opened it.
                let now = self.session();
                let mut ok = self.entry_for(&now, now.role, &Action::GateStatus, Outcome::Allowed);
                ok.action = kind.as_str().to_string();
                ok.event_code = event_code(kind, Outcome::Allowed);
                let proof = self.state().last_proof.clone();
                ok.details = serde_json::json!({
                    "entry": first.seq,
                    "result": "passed",
                    "factor": proof.as_ref().map(|p| p.factor().as_str()),
                    "action_sha256": proof.as_ref().and_then(|p| p.action_hash()).map(hex::encode),
                    "signature": proof.as_ref().and_then(|p| p.signature()).map(hex::encode),
                });
                if let Err(e) = self.record(&ok).await {
                    // Fail closed: without the record, the gate stays shut.
                    self.state().passed_at = None;
                    return Err(e);
                }
                None
            }
            Ok(Reply::ErasureExecuted(o)) => match o.as_ref() {
                crate::core::erasure::ExecuteOutcome::PlanChanged {
                    approved_sha256,
                    new_plan,
                    differences,
                } => Some((
                    "plan_changed".to_string(),
                    serde_json::json!({
                        "approved_sha256": approved_sha256,
                        "new_plan_sha256": new_plan.sha256,
                        "differences": differences,
                    }),
                )),
                crate::core::erasure::ExecuteOutcome::Done(_) => None,
            },
            Ok(Reply::RestoreTested {
                history_id,
                verdict,
            }) => {
                let failed: Vec<&str> = verdict
                    .checks
                    .iter()
                    .filter(|c| !c.passed)
                    .map(|c| c.name.as_str())
                    .collect();
                let details = serde_json::json!({
                    "history_id": history_id,
                    "backup": verdict.backup.id,
                    "failed_checks": failed,
                });
                if verdict.passed {
                    // The result is audited too: a second `I` entry.
                    let mut ok = entry.clone();
                    ok.details = serde_json::json!({
                        "entry": first.seq,
                        "result": "pass",
                        "history_id": history_id,
                        "backup": verdict.backup.id,
                    });
                    if let Err(e) = self.record(&ok).await {
                        tracing::warn!(error = %e, seq = first.seq, "result entry not written");
                    }
                    None
                } else {
                    Some(("restore_test_failed".to_string(), details))
                }
            }
            Ok(_) => None,
            Err(e) => Some((e.audit_code(), serde_json::json!({}))),
        };
        if let Some((code, extra)) = failure {
            let mut fail = entry;
            fail.outcome = Outcome::Failed;
            fail.event_code = event_code(kind, Outcome::Failed);
            fail.error = Some(code);
            let mut details = serde_json::json!({ "entry": first.seq });
            if let (Some(d), Some(x)) = (details.as_object_mut(), extra.as_object()) {
                d.extend(x.clone());
            }
            fail.details = details;
            if let Err(e) = self.record(&fail).await {
                // The action already failed (or found a broken chain); the
                // operator sees that result. Say the follow-up entry is missing.
                tracing::warn!(error = %e, seq = first.seq, "failure entry not written");
            }
        }
        result
    }

    /// Who may do what, decided now: before the gate only the gate actions
    /// (and, for a configured session, only an active operator may even open
    /// the console); after it, the operator's role as the console database
    /// says it on this very action. Returns the role to record and the
    /// refusal, if any.
    async fn authorise(&self, session: &Session, action: &Action) -> (Role, Option<Error>) {
        let kind = action.kind();
        let demo_before_choice = session.demo && !self.gate_open();
        if before_gate(kind) {
            if kind == ActionKind::OpenConsole && !session.demo {
                return match operators::resolve(&self.console, &session.operator).await {
                    Ok(op) => (op.role, None),
                    Err(e) => (session.role, Some(e)),
                };
            }
            return (session.role, None);
        }
        if !self.gate_open() {
            let why = if self.state().passed_at.is_some() {
                "the session was idle too long; touch your key again"
            } else {
                "touch your registered key at the gate first"
            };
            return (session.role, Some(Error::MfaRequired(why.into())));
        }
        debug_assert!(!demo_before_choice);
        let role = match operators::resolve(&self.console, &session.operator).await {
            Ok(op) => op.role,
            Err(e) => return (session.role, Some(e)),
        };
        if role != session.role {
            // The role changed in the database: the status bar follows it.
            let mut st = self.state();
            st.session.role = role;
            st.info.role = role;
        }
        let redaction = matches!(
            kind,
            ActionKind::RedactPreview
                | ActionKind::RedactApply
                | ActionKind::RedactSweepPreview
                | ActionKind::RedactSweepApply
        );
        let by_policy = redaction && role == Role::Support && self.support_may_redact;
        if !allowed(role, kind) && !by_policy {
            return (
                role,
                Some(Error::Forbidden(format!(
                    "role {role} may not {}",
                    kind.as_str()
                ))),
            );
        }
        if needs_step_up(kind) {
            let window = chrono::Duration::from_std(self.auth.step_up_window())
                .unwrap_or(chrono::Duration::MAX);
            let fresh = match &self.state().last_proof {
                // A signing factor must have signed this very action.
                Some(p) if p.factor().signs() => {
                    p.is_fresh(chrono::Utc::now(), window) && p.authorises(&action_bytes(action))
                }
                // An OTP cannot sign: a recent touch is all there is.
                Some(p) => p.is_fresh(chrono::Utc::now(), window),
                None => false,
            };
            if !fresh {
                return (
                    role,
                    Some(Error::MfaRequired(format!(
                        "{} needs a fresh touch of your key (step-up)",
                        kind.as_str()
                    ))),
                );
            }
        }
        (role, None)
    }

    /// The key of the keyed hashes of erasure subjects' identifiers: derived
    /// from the audit key, never stored.
    fn erasure_key(&self) -> [u8; 32] {
        erasure::store::subject_key(&self.audit.key)
    }

    /// The key that seals credentials (Plaid access tokens) in the erasure
    /// queue: derived from the audit key, never stored.
    fn credential_seal(&self) -> crate::core::secrets::MasterKey {
        erasure::store::credential_seal(&self.audit.key)
    }

    /// What an erasure executor owns: the keys derived from the audit key
    /// and the access export directory.
    fn executor_parts(&self) -> ExecutorParts {
        ExecutorParts {
            key: self.erasure_key(),
            seal: self.credential_seal(),
            export_dir: self.erasure_config.export_dir(),
        }
    }

    /// An erasure executor on this console's databases, data map and systems.
    async fn executor<'a>(&'a self, parts: &'a ExecutorParts) -> Result<erasure::Executor<'a>> {
        let (map, catalog) = self.datamap().await?;
        Ok(erasure::Executor {
            pluto: &self.pluto_write,
            console: &self.console,
            map,
            catalog,
            key: &parts.key,
            seal: &parts.seal,
            systems: self.systems().await?,
            export_dir: &parts.export_dir,
        })
    }

    /// The configured external systems, checked against the data map.
    async fn systems(&self) -> Result<&erasure::Systems> {
        let (map, _) = self.datamap().await?;
        self.systems
            .get_or_try_init(|| async { erasure::Systems::from_config(&self.erasure_config, map) })
            .await
    }

    /// The key of the hashes the console keeps of redacted values: derived
    /// from the audit key, never stored.
    fn redaction_key(&self) -> [u8; 32] {
        self.audit.key.mac(b"charon-redaction-hash-key-v1")
    }

    /// The data map and the live catalog it was validated against.
    async fn datamap(&self) -> Result<&(DataMap, Catalog)> {
        self.datamap
            .get_or_try_init(|| async {
                let map = DataMap::bundled()?;
                let catalog = validate_against_catalog(&self.pluto_read, &map).await?;
                Ok((map, catalog))
            })
            .await
    }

    /// What the gate shows: the operator's enrolled factors, or the demo roles.
    async fn gate_status(&self) -> Result<GateStatus> {
        let session = self.session();
        let demo_roles: Vec<Role> = self.demo_keys.iter().map(|(r, _)| *r).collect();
        let prompts = if session.demo && !demo_roles.is_empty() {
            vec!["choose a role: its demo operator signs in with a software key (DEMO)".into()]
        } else {
            self.auth
                .describe_factors(&self.console, &session.operator)
                .await?
                .into_iter()
                .map(|p| match p.unusable {
                    Some(why) => format!("{} (not usable here: {why})", p.prompt),
                    None => p.prompt,
                })
                .collect()
        };
        Ok(GateStatus {
            operator: session.operator,
            prompts,
            demo_roles,
        })
    }

    /// Checks a factor at the gate and, on success, opens it.
    async fn authenticate(
        &self,
        input: GateInput,
        purpose: &str,
        signed: &[u8],
    ) -> Result<ConsoleInfo> {
        let session = self.session();
        let (login, proof) = match input {
            GateInput::DemoRole(role) => {
                let Some((_, key)) = self.demo_keys.iter().find(|(r, _)| *r == role) else {
                    return Err(Error::Forbidden(
                        "software keys are disabled in this deployment".into(),
                    ));
                };
                let login = format!("demo-{role}");
                self.ensure_demo_operator(&login, role, key).await?;
                let proof = self
                    .auth
                    .authenticate(
                        &self.console,
                        &login,
                        FactorInput::Software { key },
                        purpose,
                        signed,
                    )
                    .await?;
                (login, proof)
            }
            GateInput::Otp(otp) => {
                let proof = self
                    .auth
                    .authenticate(
                        &self.console,
                        &session.operator,
                        FactorInput::Otp(otp),
                        purpose,
                        signed,
                    )
                    .await?;
                (session.operator.clone(), proof)
            }
            GateInput::Piv { pin } => {
                let proof = self
                    .auth
                    .authenticate(
                        &self.console,
                        &session.operator,
                        FactorInput::Piv {
                            pin: Secret::new(pin),
                            slot: PivSlot::Authentication,
                        },
                        purpose,
                        signed,
                    )
                    .await?;
                (session.operator.clone(), proof)
            }
            GateInput::Agent => {
                let socket = std::env::var_os("SSH_AUTH_SOCK").ok_or_else(|| {
                    Error::InvalidInput(
                        "no ssh-agent: SSH_AUTH_SOCK is not set (connect with `ssh -A`)".into(),
                    )
                })?;
                let proof = self
                    .auth
                    .authenticate(
                        &self.console,
                        &session.operator,
                        FactorInput::Agent {
                            socket: socket.into(),
                        },
                        purpose,
                        signed,
                    )
                    .await?;
                (session.operator.clone(), proof)
            }
        };
        if purpose == STEP_UP_PURPOSE && login != session.operator {
            return Err(Error::Forbidden(
                "a step-up must be signed by the operator of this session".into(),
            ));
        }
        let op = operators::resolve(&self.console, &login).await?;
        let mut st = self.state();
        st.session.operator = op.login.clone();
        st.session.role = op.role;
        // `factor:key id`, so that every audit entry of a software-key
        // session says so, and every other one names its hardware.
        st.session.key_id = Some(format!("{}:{}", proof.factor().as_str(), proof.key_id()));
        st.info.operator = op.login;
        st.info.role = op.role;
        st.passed_at = Some(Instant::now());
        st.last_proof = Some(proof);
        st.last_activity = Instant::now();
        Ok(st.info.clone())
    }

    /// Demo only: the demo operator of a role and its software key exist.
    async fn ensure_demo_operator(&self, login: &str, role: Role, key: &SoftwareKey) -> Result<()> {
        match operators::add(&self.console, "demo", login, &format!("Demo {role}"), role).await {
            Ok(_) | Err(Error::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        match keys::enroll_software(&self.console, login, "demo software key", &key.record()).await
        {
            Ok(_) | Err(Error::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Appends an entry (and mirrors it). Any failure is
    /// [`Error::AuditUnavailable`]: the caller must not run the action.
    /// An append the console database does not answer within
    /// `answer_within` is a failure too; should the server commit it later
    /// (it was frozen, not gone), the log holds an entry for an action that
    /// was refused, never the reverse, and the chain stays linked (the
    /// write only lands on the head it was computed from).
    async fn record(&self, entry: &NewEntry) -> Result<AuditRecord> {
        let bound = self.answer_within;
        let rec = tokio::time::timeout(bound, audit::append(&self.console, &self.audit.key, entry))
            .await
            .unwrap_or_else(|_| Err(no_answer(db::CONSOLE, bound)))
            .map_err(|e| {
                Error::AuditUnavailable(if e.is_unreachable() {
                    format!("{}: {}", db::CONSOLE, unreachable_detail(&e))
                } else {
                    e.to_string()
                })
            })?;
        if let Some(m) = &self.audit.mirror {
            m.write(&rec)
                .map_err(|e| Error::AuditUnavailable(e.to_string()))?;
        }
        Ok(rec)
    }

    /// The audit entry of an action: who, what, which tenant and target; never
    /// a personal value (a search records how the query was read and its
    /// length, not its text).
    fn entry_for(
        &self,
        session: &Session,
        role: Role,
        action: &Action,
        outcome: Outcome,
    ) -> NewEntry {
        let kind = action.kind();
        let mut e = NewEntry {
            operator: session.operator.clone(),
            role: role.as_str().to_string(),
            key_id: session.key_id.clone(),
            session_id: session.id,
            event_code: event_code(kind, outcome),
            action: kind.as_str().to_string(),
            tenant_id: action.tenant(),
            target_table: None,
            target_pk: None,
            target_columns: Vec::new(),
            reason: None,
            outcome,
            error: None,
            details: serde_json::json!({}),
        };
        let ts = |t: &Option<chrono::DateTime<chrono::Utc>>| {
            t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        };
        match action {
            Action::OpenConsole => {
                e.details = serde_json::json!({
                    "environment": self.state().info.environment.clone(),
                    "demo": session.demo,
                });
            }
            Action::GateStatus | Action::OperatorList => {}
            Action::StepUp { input, action } => {
                e.details = serde_json::json!({
                    "factor": input.factor_name(),
                    "for_action": action.kind().as_str(),
                    "action_sha256": hex::encode(crate::core::mfa::challenge::sha256(&action_bytes(action))),
                });
            }
            Action::RecordsList { kind, query, .. } => {
                e.target_table = Some(kind.table().to_string());
                let f = &query.filter;
                e.details = serde_json::json!({
                    "sort": format!("{:?}", query.sort).to_lowercase(),
                    "dir": format!("{:?}", query.dir).to_lowercase(),
                    "filters": {
                        "text": f.text.is_some(),
                        "date": f.date_from.is_some() || f.date_to.is_some(),
                        "amount": f.amount_min.is_some() || f.amount_max.is_some(),
                    },
                    "at": match &query.at {
                        records::At::First => "first",
                        records::At::Last => "last",
                        records::At::After(_) => "after",
                        records::At::Before(_) => "before",
                    },
                });
            }
            Action::RecordShow { kind, id, .. } => {
                e.target_table = Some(kind.table().to_string());
                e.target_pk = Some(id.to_string());
            }
            Action::TripRoute { trip_id, .. } => {
                e.target_table = Some("trips".into());
                e.target_pk = Some(trip_id.to_string());
            }
            Action::Reveal {
                kind,
                id,
                field,
                reason,
                ..
            } => {
                e.target_table = Some(kind.table().to_string());
                e.target_pk = Some(id.to_string());
                e.target_columns = vec![field.clone()];
                e.reason = Some(reason.clone());
            }
            Action::RedactPreview {
                kind,
                id,
                field,
                how,
                ..
            } => {
                e.target_table = Some(kind.table().to_string());
                e.target_pk = Some(id.to_string());
                e.target_columns = vec![field.clone()];
                e.details = serde_json::json!({ "how": how });
            }
            Action::RedactSweepPreview { detector, .. } => {
                e.details = serde_json::json!({ "detector": detector.name() });
            }
            Action::RedactSweepApply { preview, reason } => {
                e.reason = Some(reason.clone());
                e.details = serde_json::json!({ "preview": preview.to_string() });
                if let Some(p) = self.sweeps.peek(preview) {
                    e.tenant_id = Some(p.tenant);
                    e.target_columns = p
                        .columns
                        .iter()
                        .map(|c| format!("{}.{}", c.table, c.column))
                        .collect();
                    e.details = serde_json::json!({
                        "preview": preview.to_string(),
                        "detector": p.detector.name(),
                        "fields": p.fields,
                        "matches": p.matches,
                    });
                }
            }
            Action::RedactApply { preview, reason } => {
                e.reason = Some(reason.clone());
                e.details = serde_json::json!({ "preview": preview.to_string() });
                if let Some(p) = self.previews.peek(preview) {
                    e.tenant_id = Some(p.tenant);
                    e.target_table = Some(p.kind.table().to_string());
                    e.target_pk = Some(p.id.to_string());
                    e.target_columns = vec![p.field.clone()];
                    e.details = serde_json::json!({
                        "preview": preview.to_string(),
                        "how": p.how,
                        "matches": p.matches,
                    });
                }
            }
            Action::Bootstrap { login, key, .. } => {
                e.target_table = Some("operators".into());
                e.target_pk = Some(login.clone());
                e.details = serde_json::json!({ "factor": key.factor() });
            }
            Action::OperatorAdd { login, role, .. } | Action::OperatorSetRole { login, role } => {
                e.target_table = Some("operators".into());
                e.target_pk = Some(login.clone());
                e.target_columns = vec!["role".into()];
                e.details = serde_json::json!({ "role": role.as_str() });
            }
            Action::OperatorLock { login }
            | Action::OperatorUnlock { login }
            | Action::OperatorRemove { login } => {
                e.target_table = Some("operators".into());
                e.target_pk = Some(login.clone());
                e.target_columns = vec!["status".into()];
            }
            Action::KeyEnroll { login, key, .. } => {
                e.target_table = Some("operator_keys".into());
                e.details = serde_json::json!({ "login": login, "factor": key.factor() });
            }
            Action::KeyList { login } => {
                e.target_table = Some("operator_keys".into());
                e.details = serde_json::json!({ "login": login });
            }
            Action::KeyRevoke { id } => {
                e.target_table = Some("operator_keys".into());
                e.target_pk = Some(id.to_string());
            }
            Action::KeyVerify(input) => {
                e.target_table = Some("operator_keys".into());
                e.details = serde_json::json!({
                    "factor": input.factor_name(),
                });
            }
            Action::Authenticate(input) => {
                e.details = serde_json::json!({
                    "factor": input.factor_name(),
                });
            }
            Action::SearchTenants { query } => {
                let how = tenants::classify(query);
                if let tenants::QueryKind::Id(id) = how {
                    e.tenant_id = Some(id);
                }
                e.details = serde_json::json!({
                    "query_kind": how.label(),
                    "query_len": query.chars().count(),
                });
            }
            Action::OpenTenant { business_id } => {
                e.target_table = Some("businesses".into());
                e.target_pk = Some(business_id.to_string());
            }
            Action::AuditList { filter, before } => {
                e.target_table = Some("audit_log".into());
                e.details = serde_json::json!({ "filter": filter.to_json(), "before": before });
            }
            Action::AuditShow { seq } => {
                e.target_table = Some("audit_log".into());
                e.target_pk = Some(seq.to_string());
            }
            Action::AuditVerify { from, checkpoint } => {
                e.target_table = Some("audit_log".into());
                e.details = serde_json::json!({
                    "from": from,
                    "checkpoint_seq": checkpoint.as_ref().map(|c| c.seq),
                });
            }
            Action::AuditExport {
                since,
                until,
                format,
                dest,
            } => {
                e.target_table = Some("audit_log".into());
                e.details = serde_json::json!({
                    "since": ts(since),
                    "until": ts(until),
                    "format": format.as_str(),
                    "dest": match dest { ExportDest::File(_) => "file", ExportDest::Stdout => "stdout" },
                });
            }
            Action::AuditCheckpoint { .. } => {
                e.target_table = Some("audit_head".into());
            }
            // Never an identifier: only how many were given.
            Action::ErasureCreate {
                id,
                kind,
                subject,
                ticket,
                regime,
                ..
            } => {
                e.target_table = Some("erasure_requests".into());
                e.target_pk = Some(id.to_string());
                e.reason = Some(ticket.clone());
                e.details = serde_json::json!({
                    "kind": kind.as_str(),
                    "ticket": ticket,
                    "regime": regime.name(),
                    "identifiers": identifier_counts(subject),
                });
            }
            Action::ErasurePlan { request, subject }
            | Action::ErasureExecute { request, subject } => {
                e.target_table = Some("erasure_requests".into());
                e.target_pk = Some(request.to_string());
                e.details = serde_json::json!({ "identifiers": identifier_counts(subject) });
            }
            Action::ErasureApprove {
                request,
                plan_sha256,
            } => {
                e.target_table = Some("erasure_requests".into());
                e.target_pk = Some(request.to_string());
                e.details = serde_json::json!({ "plan_sha256": plan_sha256 });
            }
            Action::ErasureShow { request } | Action::ErasureCertificate { request } => {
                e.target_table = Some("erasure_requests".into());
                e.target_pk = Some(request.to_string());
            }
            Action::ErasureList { limit } => {
                e.target_table = Some("erasure_requests".into());
                e.details = serde_json::json!({ "limit": limit });
            }
            Action::ErasureRunQueue {
                request,
                retry_failed,
            } => {
                e.target_table = Some("erasure_external_queue".into());
                e.target_pk = request.map(|r| r.to_string());
                e.details = serde_json::json!({ "retry_failed": retry_failed });
            }
            Action::RestoreTestRun { source, backup } => {
                e.target_table = Some("restore_tests".into());
                e.details = serde_json::json!({
                    "source": source,
                    "backup": backup.as_deref().unwrap_or("latest"),
                });
            }
            Action::RestoreTestHistory { limit } => {
                e.target_table = Some("restore_tests".into());
                e.details = serde_json::json!({ "limit": limit });
            }
            Action::BackupsList { source } => {
                e.details = serde_json::json!({ "source": source });
            }
            Action::BackupSources => {}
        }
        e
    }

    async fn run<P>(&self, action: Action, mut progress: P) -> Result<Reply>
    where
        P: FnMut(Progress) + Send,
    {
        match action {
            Action::GateStatus => Ok(Reply::Gate(self.gate_status().await?)),
            Action::RecordsList {
                tenant,
                kind,
                query,
            } => {
                let (map, catalog) = self.datamap().await?;
                Ok(Reply::Records(
                    records::list(&self.pluto_read, map, catalog, tenant, kind, &query).await?,
                ))
            }
            Action::Reveal {
                tenant,
                kind,
                id,
                field,
                reason,
            } => {
                if reason.trim().is_empty() {
                    return Err(Error::InvalidInput(
                        "a reveal needs a reason or ticket reference".into(),
                    ));
                }
                let (map, catalog) = self.datamap().await?;
                let revealed =
                    records::reveal(&self.pluto_read, map, catalog, tenant, kind, id, &field)
                        .await?;
                Ok(Reply::Revealed {
                    revealed: Arc::new(revealed),
                    show_for: REVEAL_FOR,
                })
            }
            Action::RedactPreview {
                tenant,
                kind,
                id,
                field,
                how,
            } => {
                let (map, catalog) = self.datamap().await?;
                let preview = records::preview_redaction(
                    &self.pluto_read,
                    map,
                    catalog,
                    tenant,
                    kind,
                    id,
                    &field,
                    how,
                )
                .await?;
                let token = self.previews.keep(preview.clone());
                Ok(Reply::RedactionPreview {
                    token,
                    preview: Box::new(preview),
                })
            }
            Action::RedactApply { preview, reason } => {
                let p = self.previews.take(&preview, "redaction preview")?;
                let (map, catalog) = self.datamap().await?;
                let key = self.redaction_key();
                let operator = self.session().operator;
                let applied = records::apply_redaction(
                    &self.pluto_write,
                    &self.console,
                    map,
                    catalog,
                    &key,
                    &operator,
                    &reason,
                    &p,
                )
                .await?;
                Ok(Reply::Redacted(applied))
            }
            Action::RedactSweepPreview { tenant, detector } => {
                let (map, catalog) = self.datamap().await?;
                let preview = records::preview_detector_redaction(
                    &self.pluto_read,
                    map,
                    catalog,
                    tenant,
                    detector,
                )
                .await?;
                let token = self.sweeps.keep(preview.clone());
                Ok(Reply::SweepPreview {
                    token,
                    preview: Box::new(preview),
                })
            }
            Action::RedactSweepApply { preview, reason } => {
                let p = self.sweeps.take(&preview, "sweep preview")?;
                let (map, catalog) = self.datamap().await?;
                let key = self.redaction_key();
                let operator = self.session().operator;
                Ok(Reply::Redacted(
                    records::apply_detector_redaction(
                        &self.pluto_write,
                        &self.console,
                        map,
                        catalog,
                        &key,
                        &operator,
                        &reason,
                        &p,
                    )
                    .await?,
                ))
            }
            Action::TripRoute { tenant, trip_id } => {
                let (map, catalog) = self.datamap().await?;
                match records::trip_route(&self.pluto_read, map, catalog, tenant, trip_id).await? {
                    Some(r) => Ok(Reply::Route(r)),
                    None => Err(Error::NotFound("no such trip for this tenant".into())),
                }
            }
            Action::RecordShow { tenant, kind, id } => {
                let (map, catalog) = self.datamap().await?;
                match records::show(&self.pluto_read, map, catalog, tenant, kind, id).await? {
                    Some(r) => Ok(Reply::Record(Box::new(r))),
                    None => Err(Error::NotFound(format!(
                        "no such {} record for this tenant",
                        kind.name()
                    ))),
                }
            }
            Action::Bootstrap {
                login,
                display_name,
                key,
            } => {
                let (op, _) = admin::bootstrap(
                    &self.console,
                    self.auth.master_key(),
                    &login,
                    &display_name,
                    &key,
                )
                .await?;
                Ok(Reply::Admin(AdminReply::Operator(op)))
            }
            Action::OperatorList => Ok(Reply::Admin(AdminReply::Operators(
                operators::list(&self.console).await?,
            ))),
            Action::OperatorAdd {
                login,
                display_name,
                role,
            } => {
                let by = self.session().operator;
                Ok(Reply::Admin(AdminReply::Operator(
                    operators::add(&self.console, &by, &login, &display_name, role).await?,
                )))
            }
            Action::OperatorSetRole { login, role } => {
                operators::set_role(&self.console, &login, role).await?;
                Ok(done(format!("{login} is now {role}")))
            }
            Action::OperatorLock { login } => {
                operators::lock(&self.console, &login).await?;
                Ok(done(format!("{login} is locked")))
            }
            Action::OperatorUnlock { login } => {
                operators::unlock(&self.console, &login).await?;
                Ok(done(format!("{login} is unlocked")))
            }
            Action::OperatorRemove { login } => {
                operators::remove(&self.console, &login).await?;
                Ok(done(format!("{login} is removed and their keys revoked")))
            }
            Action::KeyEnroll { login, label, key } => Ok(Reply::Admin(AdminReply::Key(
                admin::enroll(&self.console, self.auth.master_key(), &login, &label, &key).await?,
            ))),
            Action::KeyList { login } => Ok(Reply::Admin(AdminReply::Keys(
                keys::list(&self.console, login.as_deref()).await?,
            ))),
            Action::KeyRevoke { id } => Ok(Reply::Admin(AdminReply::Key(
                keys::revoke(&self.console, id).await?,
            ))),
            Action::KeyVerify(input) => {
                let factor = match input {
                    GateInput::Otp(otp) => FactorInput::Otp(otp),
                    GateInput::Agent => FactorInput::Agent {
                        socket: std::env::var_os("SSH_AUTH_SOCK")
                            .ok_or_else(|| {
                                Error::InvalidInput("no ssh-agent: SSH_AUTH_SOCK is not set".into())
                            })?
                            .into(),
                    },
                    GateInput::Piv { pin } => FactorInput::Piv {
                        pin: Secret::new(pin),
                        slot: PivSlot::Authentication,
                    },
                    GateInput::DemoRole(_) => {
                        return Err(Error::InvalidInput(
                            "key verify checks a hardware key, not a demo role".into(),
                        ));
                    }
                };
                let m = self.auth.key_verify(&self.console, factor).await?;
                Ok(Reply::KeyVerified {
                    login: m.login,
                    key_id: m.key_id,
                    label: m.label,
                    factor: m.factor.as_str().to_string(),
                })
            }
            Action::Authenticate(input) => Ok(Reply::Authenticated(
                self.authenticate(input, GATE_PURPOSE, GATE_ACTION).await?,
            )),
            Action::StepUp { input, action } => {
                let signed = action_bytes(&action);
                self.authenticate(input, STEP_UP_PURPOSE, &signed).await?;
                Ok(Reply::SteppedUp)
            }
            Action::OpenConsole => {
                let session = self.session();
                let environment = self.state().info.environment.clone();
                sqlx::query(
                    "INSERT INTO console_sessions (id, operator, role, demo, environment)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(session.id)
                .bind(&session.operator)
                .bind(session.role.as_str())
                .bind(session.demo)
                .bind(&environment)
                .execute(&self.console)
                .await?;
                Ok(Reply::Opened)
            }
            Action::SearchTenants { query } => {
                let hits = tenants::search(&self.pluto_read, &query, tenants::SEARCH_LIMIT).await?;
                Ok(Reply::Tenants(hits))
            }
            Action::OpenTenant { business_id } => {
                match tenants::detail(&self.pluto_read, business_id).await? {
                    Some(t) => Ok(Reply::Tenant(Box::new(t))),
                    None => Err(Error::NotFound(format!("no tenant with id {business_id}"))),
                }
            }
            Action::AuditList { filter, before } => Ok(Reply::AuditPage(
                audit::list(&self.console, &filter, before, audit::PAGE_SIZE).await?,
            )),
            Action::AuditShow { seq } => match audit::show(&self.console, seq).await? {
                Some(r) => Ok(Reply::AuditEntry(Box::new(r))),
                None => Err(Error::NotFound(format!("no audit entry with seq {seq}"))),
            },
            Action::AuditVerify { from, checkpoint } => Ok(Reply::AuditVerdict(
                audit::verify(
                    &self.console,
                    &self.audit.key,
                    from,
                    checkpoint.as_ref(),
                    |p: VerifyProgress| {
                        progress(Progress {
                            step: "verify".into(),
                            done: p.done,
                            total: p.total,
                        })
                    },
                )
                .await?,
            )),
            Action::AuditExport {
                since,
                until,
                format,
                dest,
            } => {
                let entries = match dest {
                    ExportDest::File(path) => {
                        let f = std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .open(&path)
                            .map_err(|e| {
                                Error::Io(std::io::Error::new(
                                    e.kind(),
                                    format!("export file {}: {e}", path.display()),
                                ))
                            })?;
                        let mut w = std::io::BufWriter::new(f);
                        audit::export(&self.console, since, until, format, &mut w).await?
                    }
                    ExportDest::Stdout => {
                        let mut w = std::io::BufWriter::new(std::io::stdout());
                        audit::export(&self.console, since, until, format, &mut w).await?
                    }
                };
                Ok(Reply::AuditExported { entries })
            }
            Action::AuditCheckpoint { path } => {
                let cp = audit::checkpoint(&self.console).await?;
                cp.write(&path)?;
                Ok(Reply::AuditCheckpoint(cp))
            }
            Action::ErasureCreate {
                id,
                kind,
                subject,
                ticket,
                regime,
                note,
            } => {
                let key = self.erasure_key();
                let id = erasure::create_request(
                    &self.console,
                    &key,
                    &erasure::NewRequest {
                        id,
                        kind,
                        subject: &subject,
                        ticket,
                        regime,
                        note,
                        received_at: chrono::Utc::now(),
                        created_by: self.session().operator,
                    },
                )
                .await?;
                Ok(Reply::ErasureCreated(id))
            }
            Action::ErasurePlan { request, subject } => {
                let key = self.erasure_key();
                erasure::check_subject(&self.console, &key, request, &subject).await?;
                let (map, catalog) = self.datamap().await?;
                let found = erasure::discover(&self.pluto_read, map, catalog, &subject).await?;
                let plan = erasure::plan(&found)?;
                let operator = self.session().operator;
                erasure::store_plan(&self.console, request, &plan, &operator).await?;
                Ok(Reply::ErasurePlanned(Box::new(plan)))
            }
            Action::ErasureApprove {
                request,
                plan_sha256,
            } => {
                let operator = self.session().operator;
                erasure::approve(&self.console, request, &operator, &plan_sha256).await?;
                Ok(Reply::ErasureApproved {
                    request,
                    plan_sha256,
                })
            }
            Action::ErasureExecute { request, subject } => {
                let parts = self.executor_parts();
                let exec = self.executor(&parts).await?;
                let operator = self.session().operator;
                let mut forward = |p: erasure::Progress| progress(erasure_progress(p));
                let outcome = exec
                    .execute(request, &subject, &operator, &mut forward)
                    .await?;
                Ok(Reply::ErasureExecuted(Box::new(outcome)))
            }
            Action::ErasureShow { request } => {
                let r = erasure::get_request(&self.console, request).await?;
                let plan: Option<serde_json::Value> =
                    sqlx::query_scalar("SELECT plan FROM erasure_requests WHERE id = $1")
                        .bind(request)
                        .fetch_one(&self.console)
                        .await?;
                let steps = erasure::external::steps(&self.console, request).await?;
                Ok(Reply::ErasureRequest(Box::new(RequestDetail {
                    request: r,
                    plan,
                    steps,
                })))
            }
            Action::ErasureList { limit } => Ok(Reply::ErasureList(
                erasure::list_requests(&self.console, limit).await?,
            )),
            Action::ErasureRunQueue {
                request,
                retry_failed,
            } => {
                if let Some(r) = request {
                    erasure::get_request(&self.console, r).await?;
                    if retry_failed {
                        erasure::external::retry_failed(&self.console, r).await?;
                    }
                } else if retry_failed {
                    return Err(Error::InvalidInput(
                        "retrying failed steps needs a request id".into(),
                    ));
                }
                let parts = self.executor_parts();
                let exec = self.executor(&parts).await?;
                let mut forward = |q: erasure::QueueProgress| {
                    progress(erasure_progress(erasure::Progress::External(q)))
                };
                let (recovered, report, finished) = exec.run_queue(request, &mut forward).await?;
                Ok(Reply::ErasureQueueRun(Box::new(QueueRun {
                    recovered,
                    report,
                    finished,
                })))
            }
            Action::ErasureCertificate { request } => Ok(Reply::ErasureCertificate(Box::new(
                erasure::certificate::get(&self.console, request).await?,
            ))),
            Action::RestoreTestRun { source, backup } => {
                self.restore_test(&source, backup, progress).await
            }
            Action::RestoreTestHistory { limit } => Ok(Reply::RestoreHistory(
                restore::history(&self.console, limit.clamp(1, 10_000)).await?,
            )),
            Action::BackupSources => Ok(Reply::BackupSources {
                sources: self.restore.sources.iter().map(|s| s.info()).collect(),
                rpo: self.restore.rpo,
                rto: self.restore.rto,
            }),
            Action::BackupsList { source } => {
                let src = self.restore.source(&source)?;
                Ok(Reply::Backups {
                    source: source.clone(),
                    kind: src.kind().to_string(),
                    location: src.location(),
                    backups: src.list().await?,
                })
            }
        }
    }
}

/// The owned parts an [`erasure::Executor`] borrows (see
/// `Console::executor_parts`).
struct ExecutorParts {
    key: [u8; 32],
    seal: crate::core::secrets::MasterKey,
    export_dir: std::path::PathBuf,
}

/// An erasure's progress in the general form.
fn erasure_progress(p: erasure::Progress) -> Progress {
    match p {
        erasure::Progress::Phase(step) => Progress {
            step: step.to_string(),
            done: 0,
            total: 0,
        },
        erasure::Progress::Table {
            table,
            action,
            done,
            total,
        } => Progress {
            step: format!("{table} ({})", action.as_str()),
            done: done as u64,
            total: total as u64,
        },
        erasure::Progress::External(q) => Progress {
            step: q.system,
            done: q.done,
            total: q.total,
        },
    }
}

impl Console {
    /// Runs a restore test and records its verdict in the history. A
    /// source that cannot be listed (an unreachable backup host) or a
    /// backup that does not exist gives a failed verdict naming the reason,
    /// recorded like any other; an unknown source name is an error.
    ///
    /// `progress` hears which step runs: `done` is the step's position in
    /// [`restore::CHECKS`] (1-based), `total` their number.
    async fn restore_test<P>(
        &self,
        source: &str,
        backup: Option<String>,
        progress: P,
    ) -> Result<Reply>
    where
        P: FnMut(Progress) + Send,
    {
        let progress = std::sync::Mutex::new(progress);
        let report = |p: restore::RestoreProgress| {
            let done = restore::CHECKS
                .iter()
                .position(|c| *c == p.step)
                .map(|i| i as u64 + 1)
                .unwrap_or(0);
            if let Ok(mut f) = progress.lock() {
                f(Progress {
                    step: p.step.to_string(),
                    done,
                    total: restore::CHECKS.len() as u64,
                });
            }
        };
        let src = self.restore.source(source)?;
        let picked = match &backup {
            Some(id) => src.get(id).await,
            None => src.latest().await.and_then(|b| {
                b.ok_or_else(|| Error::NotFound(format!("no backup in source `{source}`")))
            }),
        };
        let r = &self.restore;
        let opts = restore::RestoreOptions {
            rpo: r.rpo,
            rto: r.rto,
            jobs: r.jobs,
            row_tolerance: r.row_tolerance,
            pg_bin_dir: r.pg_bin_dir.clone(),
            ledger: Some(restore::Ledger {
                console: self.console.clone(),
                key: self.erasure_key(),
            }),
            object_store_url: r.object_store_url.clone(),
            ..restore::RestoreOptions::default()
        };
        let server = r
            .server_url
            .as_ref()
            .map(|u| u.expose().to_string())
            .unwrap_or_default();
        let live = db::connect(
            &self.restore_live,
            db::PLUTO,
            &crate::core::config::Timeouts {
                connect: self.connect_timeout,
                statement: r.rto,
                ..crate::core::config::Timeouts::default()
            },
        )
        .await;
        let verdict = match (picked, live) {
            (Ok(b), Ok(live)) => {
                let v = restore::run_restore_test(src, &b, &live, &server, &opts, &report).await;
                live.close().await;
                v
            }
            (Ok(b), Err(e)) => restore::Verdict::not_started(
                source,
                &b.id,
                &format!("the live database is unreachable: {e}"),
            ),
            (Err(e), _) => restore::Verdict::not_started(
                source,
                backup.as_deref().unwrap_or("latest"),
                &e.to_string(),
            ),
        };
        let history_id = restore::record(&self.console, &verdict).await?;
        Ok(Reply::RestoreTested {
            history_id,
            verdict: Box::new(verdict),
        })
    }
}

/// How many identifiers of each kind a subject has (what audit entries
/// record instead of the identifiers).
fn identifier_counts(subject: &erasure::Subject) -> serde_json::Value {
    let n = subject.normalized();
    serde_json::json!({
        "emails": n.emails.len(),
        "phones": n.phones.len(),
        "user_ids": n.user_ids.len(),
    })
}

fn done(what: String) -> Reply {
    Reply::Admin(AdminReply::Done { what })
}

/// The text an operator typed into an action, checked before anything else
/// sees it (see [`input`]): lengths, no control characters.
pub fn check_typed_text(action: &Action) -> Result<()> {
    match action {
        Action::SearchTenants { query } => tenants::check_query(query),
        Action::Reveal { field, reason, .. } => {
            input::field(field)?;
            input::text("the reason", reason, input::MAX_REASON, true)
        }
        Action::RedactPreview { field, .. } => input::field(field),
        Action::RedactApply { reason, .. } | Action::RedactSweepApply { reason, .. } => {
            input::text("the reason", reason, input::MAX_REASON, true)
        }
        Action::ErasureCreate {
            subject,
            ticket,
            note,
            ..
        } => {
            input::subject(subject)?;
            input::text("the ticket", ticket, input::MAX_TICKET, true)?;
            input::text("the note", note, input::MAX_NOTE, false)
        }
        Action::ErasurePlan { subject, .. } | Action::ErasureExecute { subject, .. } => {
            input::subject(subject)
        }
        Action::RecordsList { query, .. } => match &query.filter.text {
            Some(t) => input::text("the filter text", t, input::MAX_QUERY, false),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}
