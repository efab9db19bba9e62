//! Every user intent is an [`Action`] value handed to
//! [`Console::dispatch`](crate::core::console::Console::dispatch), the one
//! place that authorises, audits and runs it. Front ends never run SQL.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::core::admin::{AdminReply, Enrolment};
use crate::core::audit::{
    AuditFilter, AuditPage, AuditRecord, Checkpoint, ExportDest, ExportFormat, Verdict,
};
use crate::core::console::{ConsoleInfo, GateStatus};
use crate::core::erasure::certificate::Certificate;
use crate::core::erasure::external::Step;
use crate::core::erasure::store::RequestKind;
use crate::core::erasure::{
    ErasureRequest, ExecuteOutcome, Plan, QueueReport, Recovered, Regime, Subject,
};

/// One request with its stored plan and its external steps.
#[derive(Debug, Clone)]
pub struct RequestDetail {
    pub request: ErasureRequest,
    pub plan: Option<serde_json::Value>,
    pub steps: Vec<Step>,
}

/// What a queue run did.
#[derive(Debug, Clone)]
pub struct QueueRun {
    pub recovered: Vec<(Uuid, Recovered)>,
    pub report: QueueReport,
    /// Requests that became done (certificate made).
    pub finished: Vec<Uuid>,
}
use crate::core::records;
use crate::core::session::Role;
use crate::core::tenants::{TenantDetail, TenantHit};

/// What the operator presents at the MFA gate.
#[derive(Clone, PartialEq, Eq)]
pub enum GateInput {
    /// The 44 characters a YubiKey types (Yubico OTP).
    Otp(String),
    /// Sign a challenge with an enrolled FIDO security-key SSH key through
    /// the forwarded ssh-agent (`SSH_AUTH_SOCK`).
    Agent,
    /// Demo only: sign in as the demo operator of this role with its
    /// software key. Refused unless the configuration allows software keys.
    DemoRole(Role),
    /// The PIV key of a YubiKey plugged into the machine running charon
    /// (slot 9a), unlocked with its PIN.
    Piv { pin: String },
}

impl GateInput {
    /// The factor's name, as audit entries record it.
    pub fn factor_name(&self) -> &'static str {
        match self {
            GateInput::Otp(_) => "yubico_otp",
            GateInput::Agent => "sk",
            GateInput::DemoRole(_) => "software",
            GateInput::Piv { .. } => "piv",
        }
    }
}

impl std::fmt::Debug for GateInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // An OTP is single-use, but it is still not logged: only its length.
            GateInput::Otp(otp) => write!(f, "Otp(<{} chars>)", otp.chars().count()),
            GateInput::Agent => f.write_str("Agent"),
            GateInput::DemoRole(r) => write!(f, "DemoRole({r})"),
            GateInput::Piv { .. } => f.write_str("Piv(PIN ***)"),
        }
    }
}

/// What an operator asks charon to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The console was opened (first action of every session).
    OpenConsole,
    /// What the MFA gate waits for: the operator's enrolled factors (or, in
    /// the demo, the roles to choose from).
    GateStatus,
    /// Pass the MFA gate with a factor.
    Authenticate(GateInput),
    /// A fresh touch for one action that needs it (step-up): where the factor
    /// signs, the challenge holds the SHA-256 of exactly that action.
    StepUp {
        input: GateInput,
        action: Box<Action>,
    },
    /// Create the first admin and their first key (only on an empty operator table).
    Bootstrap {
        login: String,
        display_name: String,
        key: Enrolment,
    },
    OperatorList,
    OperatorAdd {
        login: String,
        display_name: String,
        role: Role,
    },
    OperatorSetRole {
        login: String,
        role: Role,
    },
    OperatorLock {
        login: String,
    },
    /// Unlock (and reset the failure count).
    OperatorUnlock {
        login: String,
    },
    /// Remove: the row stays for the audit log; the keys are revoked.
    OperatorRemove {
        login: String,
    },
    KeyEnroll {
        login: String,
        label: String,
        key: Enrolment,
    },
    KeyList {
        login: Option<String>,
    },
    KeyRevoke {
        id: Uuid,
    },
    /// Check one factor and say which operator and key it matched, or why not.
    KeyVerify(GateInput),
    /// One page of a tenant's records of one kind, masked.
    RecordsList {
        tenant: Uuid,
        kind: records::Kind,
        query: records::Query,
    },
    /// Show one personal field unmasked, for a ticket: step-up, and the
    /// audit entry names the field and the reason, never the value.
    Reveal {
        tenant: Uuid,
        kind: records::Kind,
        id: records::Pk,
        field: String,
        reason: String,
    },
    /// What a permanent redaction of one field would do (nothing changes).
    /// The preview is kept in the session; `RedactApply` applies exactly it.
    RedactPreview {
        tenant: Uuid,
        kind: records::Kind,
        id: records::Pk,
        field: String,
        how: records::How,
    },
    /// Apply the previewed redaction (step-up); refused if the value changed
    /// since the preview.
    RedactApply {
        preview: Uuid,
        reason: String,
    },
    /// Count what a detector finds across one tenant's free-text columns
    /// (nothing changes); kept in the session for `RedactSweepApply`.
    RedactSweepPreview {
        tenant: Uuid,
        detector: crate::core::detect::Detector,
    },
    /// Redact every match the sweep preview counted, in one transaction
    /// (step-up); refused if anything changed since.
    RedactSweepApply {
        preview: Uuid,
        reason: String,
    },
    /// A trip's route at the masked precision, for the map.
    TripRoute {
        tenant: Uuid,
        trip_id: i64,
    },
    /// One record of a tenant with all its fields, masked.
    RecordShow {
        tenant: Uuid,
        kind: records::Kind,
        id: records::Pk,
    },
    /// Find tenants by name, business id, member e-mail or phone number.
    SearchTenants {
        query: String,
    },
    /// Open one tenant's overview.
    OpenTenant {
        business_id: Uuid,
    },
    /// One page of the audit log, newest first: entries matching `filter`
    /// with `seq < before` (keyset pagination; `None` = from the newest).
    AuditList {
        filter: AuditFilter,
        before: Option<i64>,
    },
    /// One audit entry in full.
    AuditShow {
        seq: i64,
    },
    /// Recompute the chain from `from` (default: the first entry), and
    /// compare the head with `checkpoint` when given.
    AuditVerify {
        from: Option<i64>,
        checkpoint: Option<Checkpoint>,
    },
    /// Write the entries with `since <= at < until` to `dest`.
    AuditExport {
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        format: ExportFormat,
        dest: ExportDest,
    },
    /// Write the current head (seq, hash, time) to a file outside the database.
    AuditCheckpoint {
        path: std::path::PathBuf,
    },
    /// Open a data-subject erasure request (compliance). The console keeps
    /// only keyed hashes of the identifiers; `Debug` of a [`Subject`] masks.
    ErasureCreate {
        /// Chosen by the front end (`Uuid::new_v4()`), so that this
        /// action's audit entry names the request it creates.
        id: Uuid,
        kind: RequestKind,
        subject: Subject,
        ticket: String,
        regime: Regime,
        note: String,
    },
    /// Discover everything that belongs to the subject and store the plan.
    ErasurePlan {
        request: Uuid,
        subject: Subject,
    },
    /// Approve the plan with this SHA-256 (step-up; not its creator).
    ErasureApprove {
        request: Uuid,
        plan_sha256: String,
    },
    /// Execute the approved plan (step-up); a changed plan needs a new approval.
    ErasureExecute {
        request: Uuid,
        subject: Subject,
    },
    /// One request's state, plan and external steps.
    ErasureShow {
        request: Uuid,
    },
    /// Restore-test one backup of a configured source (`backup`: its id;
    /// `None`: the newest). The verdict is kept in the history and audited.
    RestoreTestRun {
        source: String,
        backup: Option<String>,
    },
    /// The newest `limit` restore tests.
    RestoreTestHistory {
        limit: i64,
    },
    /// The backups of a configured source.
    BackupsList {
        source: String,
    },
    /// The configured backup sources (names, kinds, where) and the RPO/RTO.
    BackupSources,
    /// Requests, unfinished first by due date.
    ErasureList {
        limit: i64,
    },
    /// Settle interrupted executions, run the external queue (of one request
    /// or all), finish requests whose queue is empty. `retry_failed` puts the
    /// request's failed steps back first.
    ErasureRunQueue {
        request: Option<Uuid>,
        retry_failed: bool,
    },
    /// The certificate of a done request (JSON, Markdown, SHA-256).
    ErasureCertificate {
        request: Uuid,
    },
}

/// How far a long action is, for a progress bar: `step` names what is being
/// done (a table, an external system, "verify").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub step: String,
    pub done: u64,
    pub total: u64,
}

/// The stable kind of an action: its name in logs, permissions and audit
/// event codes. Never carries the action's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    OpenConsole,
    GateStatus,
    Authenticate,
    StepUp,
    Bootstrap,
    OperatorList,
    OperatorAdd,
    OperatorSetRole,
    OperatorLock,
    OperatorUnlock,
    OperatorRemove,
    KeyEnroll,
    KeyList,
    KeyRevoke,
    KeyVerify,
    RecordsList,
    RecordShow,
    TripRoute,
    Reveal,
    RedactPreview,
    RedactApply,
    RedactSweepPreview,
    RedactSweepApply,
    SearchTenants,
    OpenTenant,
    AuditList,
    AuditShow,
    AuditVerify,
    AuditExport,
    AuditCheckpoint,
    ErasureCreate,
    ErasurePlan,
    ErasureApprove,
    ErasureExecute,
    ErasureShow,
    ErasureList,
    ErasureRunQueue,
    ErasureCertificate,
    RestoreTestRun,
    RestoreTestHistory,
    BackupsList,
    BackupSources,
}

impl ActionKind {
    /// Every kind. A new kind must be added here (the event-code test walks
    /// this list and fails on a kind without a documented code).
    pub const ALL: [ActionKind; 42] = [
        ActionKind::RedactSweepPreview,
        ActionKind::RedactSweepApply,
        ActionKind::Reveal,
        ActionKind::RedactPreview,
        ActionKind::RedactApply,
        ActionKind::TripRoute,
        ActionKind::StepUp,
        ActionKind::RecordsList,
        ActionKind::RecordShow,
        ActionKind::OpenConsole,
        ActionKind::GateStatus,
        ActionKind::Authenticate,
        ActionKind::Bootstrap,
        ActionKind::OperatorList,
        ActionKind::OperatorAdd,
        ActionKind::OperatorSetRole,
        ActionKind::OperatorLock,
        ActionKind::OperatorUnlock,
        ActionKind::OperatorRemove,
        ActionKind::KeyEnroll,
        ActionKind::KeyList,
        ActionKind::KeyRevoke,
        ActionKind::KeyVerify,
        ActionKind::SearchTenants,
        ActionKind::OpenTenant,
        ActionKind::AuditList,
        ActionKind::AuditShow,
        ActionKind::AuditVerify,
        ActionKind::AuditExport,
        ActionKind::AuditCheckpoint,
        ActionKind::ErasureCreate,
        ActionKind::ErasurePlan,
        ActionKind::ErasureApprove,
        ActionKind::ErasureExecute,
        ActionKind::ErasureShow,
        ActionKind::ErasureList,
        ActionKind::ErasureRunQueue,
        ActionKind::ErasureCertificate,
        ActionKind::RestoreTestRun,
        ActionKind::RestoreTestHistory,
        ActionKind::BackupsList,
        ActionKind::BackupSources,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::OpenConsole => "console.open",
            ActionKind::GateStatus => "mfa.status",
            ActionKind::Authenticate => "mfa.verify",
            ActionKind::StepUp => "mfa.step_up",
            ActionKind::Bootstrap => "operator.bootstrap",
            ActionKind::OperatorList => "operator.list",
            ActionKind::OperatorAdd => "operator.add",
            ActionKind::OperatorSetRole => "operator.set_role",
            ActionKind::OperatorLock => "operator.lock",
            ActionKind::OperatorUnlock => "operator.unlock",
            ActionKind::OperatorRemove => "operator.remove",
            ActionKind::KeyEnroll => "key.enroll",
            ActionKind::KeyList => "key.list",
            ActionKind::KeyRevoke => "key.revoke",
            ActionKind::KeyVerify => "key.verify",
            ActionKind::RecordsList => "records.list",
            ActionKind::RecordShow => "records.show",
            ActionKind::TripRoute => "records.route",
            ActionKind::Reveal => "records.reveal",
            ActionKind::RedactPreview => "redaction.preview",
            ActionKind::RedactApply => "redaction.apply",
            ActionKind::RedactSweepPreview => "redaction.sweep_preview",
            ActionKind::RedactSweepApply => "redaction.sweep_apply",
            ActionKind::SearchTenants => "tenant.search",
            ActionKind::OpenTenant => "tenant.open",
            ActionKind::AuditList => "audit.list",
            ActionKind::AuditShow => "audit.show",
            ActionKind::AuditVerify => "audit.verify",
            ActionKind::AuditExport => "audit.export",
            ActionKind::AuditCheckpoint => "audit.checkpoint",
            ActionKind::ErasureCreate => "erasure.create",
            ActionKind::ErasurePlan => "erasure.plan",
            ActionKind::ErasureApprove => "erasure.approve",
            ActionKind::ErasureExecute => "erasure.execute",
            ActionKind::ErasureShow => "erasure.show",
            ActionKind::ErasureList => "erasure.list",
            ActionKind::ErasureRunQueue => "erasure.run_queue",
            ActionKind::ErasureCertificate => "erasure.certificate",
            ActionKind::RestoreTestRun => "restore.run",
            ActionKind::RestoreTestHistory => "restore.history",
            ActionKind::BackupsList => "backups.list",
            ActionKind::BackupSources => "backups.sources",
        }
    }

    pub fn parse(s: &str) -> Option<ActionKind> {
        ActionKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::OpenConsole => ActionKind::OpenConsole,
            Action::GateStatus => ActionKind::GateStatus,
            Action::Authenticate(_) => ActionKind::Authenticate,
            Action::StepUp { .. } => ActionKind::StepUp,
            Action::Bootstrap { .. } => ActionKind::Bootstrap,
            Action::OperatorList => ActionKind::OperatorList,
            Action::OperatorAdd { .. } => ActionKind::OperatorAdd,
            Action::OperatorSetRole { .. } => ActionKind::OperatorSetRole,
            Action::OperatorLock { .. } => ActionKind::OperatorLock,
            Action::OperatorUnlock { .. } => ActionKind::OperatorUnlock,
            Action::OperatorRemove { .. } => ActionKind::OperatorRemove,
            Action::KeyEnroll { .. } => ActionKind::KeyEnroll,
            Action::KeyList { .. } => ActionKind::KeyList,
            Action::KeyRevoke { .. } => ActionKind::KeyRevoke,
            Action::KeyVerify(_) => ActionKind::KeyVerify,
            Action::RecordsList { .. } => ActionKind::RecordsList,
            Action::RecordShow { .. } => ActionKind::RecordShow,
            Action::TripRoute { .. } => ActionKind::TripRoute,
            Action::Reveal { .. } => ActionKind::Reveal,
            Action::RedactPreview { .. } => ActionKind::RedactPreview,
            Action::RedactApply { .. } => ActionKind::RedactApply,
            Action::RedactSweepPreview { .. } => ActionKind::RedactSweepPreview,
            Action::RedactSweepApply { .. } => ActionKind::RedactSweepApply,
            Action::SearchTenants { .. } => ActionKind::SearchTenants,
            Action::OpenTenant { .. } => ActionKind::OpenTenant,
            Action::AuditList { .. } => ActionKind::AuditList,
            Action::AuditShow { .. } => ActionKind::AuditShow,
            Action::AuditVerify { .. } => ActionKind::AuditVerify,
            Action::AuditExport { .. } => ActionKind::AuditExport,
            Action::AuditCheckpoint { .. } => ActionKind::AuditCheckpoint,
            Action::ErasureCreate { .. } => ActionKind::ErasureCreate,
            Action::ErasurePlan { .. } => ActionKind::ErasurePlan,
            Action::ErasureApprove { .. } => ActionKind::ErasureApprove,
            Action::ErasureExecute { .. } => ActionKind::ErasureExecute,
            Action::ErasureShow { .. } => ActionKind::ErasureShow,
            Action::ErasureList { .. } => ActionKind::ErasureList,
            Action::ErasureRunQueue { .. } => ActionKind::ErasureRunQueue,
            Action::ErasureCertificate { .. } => ActionKind::ErasureCertificate,
            Action::RestoreTestRun { .. } => ActionKind::RestoreTestRun,
            Action::RestoreTestHistory { .. } => ActionKind::RestoreTestHistory,
            Action::BackupsList { .. } => ActionKind::BackupsList,
            Action::BackupSources => ActionKind::BackupSources,
        }
    }

    /// The tenant the action concerns, if any.
    pub fn tenant(&self) -> Option<Uuid> {
        match self {
            Action::OpenTenant { business_id } => Some(*business_id),
            Action::RecordsList { tenant, .. }
            | Action::RecordShow { tenant, .. }
            | Action::TripRoute { tenant, .. }
            | Action::Reveal { tenant, .. }
            | Action::RedactPreview { tenant, .. }
            | Action::RedactSweepPreview { tenant, .. } => Some(*tenant),
            Action::RedactApply { .. } | Action::RedactSweepApply { .. } => None,
            Action::SearchTenants { .. }
            | Action::OpenConsole
            | Action::GateStatus
            | Action::Authenticate(_)
            | Action::StepUp { .. }
            | Action::Bootstrap { .. }
            | Action::OperatorList
            | Action::OperatorAdd { .. }
            | Action::OperatorSetRole { .. }
            | Action::OperatorLock { .. }
            | Action::OperatorUnlock { .. }
            | Action::OperatorRemove { .. }
            | Action::KeyEnroll { .. }
            | Action::KeyList { .. }
            | Action::KeyRevoke { .. }
            | Action::KeyVerify(_) => None,
            Action::AuditList { filter, .. } => filter.tenant,
            Action::AuditShow { .. }
            | Action::AuditVerify { .. }
            | Action::AuditExport { .. }
            | Action::AuditCheckpoint { .. } => None,
            // A subject may be in several tenants: an erasure concerns none in particular.
            Action::ErasureCreate { .. }
            | Action::ErasurePlan { .. }
            | Action::ErasureApprove { .. }
            | Action::ErasureExecute { .. }
            | Action::ErasureShow { .. }
            | Action::ErasureList { .. }
            | Action::ErasureRunQueue { .. }
            | Action::ErasureCertificate { .. } => None,
            Action::RestoreTestRun { .. }
            | Action::RestoreTestHistory { .. }
            | Action::BackupsList { .. }
            | Action::BackupSources => None,
        }
    }
}

/// What an action produced.
#[derive(Debug, Clone)]
pub enum Reply {
    Opened,
    Gate(GateStatus),
    /// The gate passed; the status bar shows the (possibly new) operator and role.
    Authenticated(ConsoleInfo),
    /// The step-up passed; the action it names may run now.
    SteppedUp,
    Admin(AdminReply),
    Records(records::Page),
    Record(Box<records::MaskedRecord>),
    Route(records::Route),
    /// The one unmasked value (Debug prints a mask), with how long a front
    /// end may show it.
    Revealed {
        revealed: std::sync::Arc<records::Revealed>,
        show_for: std::time::Duration,
    },
    RedactionPreview {
        token: Uuid,
        preview: Box<records::Preview>,
    },
    Redacted(records::AppliedRedaction),
    SweepPreview {
        token: Uuid,
        preview: Box<records::BulkPreview>,
    },
    /// `key verify`: the factor matched this operator's key.
    KeyVerified {
        login: String,
        key_id: Uuid,
        label: String,
        factor: String,
    },
    Tenants(Vec<TenantHit>),
    Tenant(Box<TenantDetail>),
    AuditPage(AuditPage),
    AuditEntry(Box<AuditRecord>),
    AuditVerdict(Verdict),
    AuditExported {
        entries: u64,
    },
    AuditCheckpoint(Checkpoint),
    ErasureCreated(Uuid),
    ErasurePlanned(Box<Plan>),
    ErasureApproved {
        request: Uuid,
        plan_sha256: String,
    },
    /// Done, or the plan changed since approval (the new plan is stored and
    /// needs a new approval; nothing was changed).
    ErasureExecuted(Box<ExecuteOutcome>),
    ErasureRequest(Box<RequestDetail>),
    ErasureList(Vec<ErasureRequest>),
    ErasureQueueRun(Box<QueueRun>),
    ErasureCertificate(Box<Certificate>),
    /// A restore test's verdict (pass or fail) and its history row.
    RestoreTested {
        history_id: Uuid,
        verdict: Box<crate::core::restore::Verdict>,
    },
    RestoreHistory(Vec<crate::core::restore::HistoryRow>),
    BackupSources {
        sources: Vec<crate::core::restore::source::SourceInfo>,
        rpo: std::time::Duration,
        rto: std::time::Duration,
    },
    Backups {
        source: String,
        kind: String,
        location: String,
        backups: Vec<crate::core::restore::Backup>,
    },
}
