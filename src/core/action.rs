//! Every user intent is an [`Action`] value handed to
//! [`Console::dispatch`](crate::core::console::Console::dispatch), the one
//! place that authorises, audits and runs it. Front ends never run SQL.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::core::audit::{
    AuditFilter, AuditPage, AuditRecord, Checkpoint, ExportDest, ExportFormat, Verdict,
};
use crate::core::tenants::{TenantDetail, TenantHit};

/// What an operator asks charon to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The console was opened (first action of every session).
    OpenConsole,
    /// Find tenants by name, business id, member e-mail or phone number.
    SearchTenants { query: String },
    /// Open one tenant's overview.
    OpenTenant { business_id: Uuid },
    /// One page of the audit log, newest first: entries matching `filter`
    /// with `seq < before` (keyset pagination; `None` = from the newest).
    AuditList {
        filter: AuditFilter,
        before: Option<i64>,
    },
    /// One audit entry in full.
    AuditShow { seq: i64 },
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
    AuditCheckpoint { path: std::path::PathBuf },
}

/// The stable kind of an action: its name in logs, permissions and audit
/// event codes. Never carries the action's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    OpenConsole,
    SearchTenants,
    OpenTenant,
    AuditList,
    AuditShow,
    AuditVerify,
    AuditExport,
    AuditCheckpoint,
}

impl ActionKind {
    /// Every kind. A new kind must be added here (the event-code test walks
    /// this list and fails on a kind without a documented code).
    pub const ALL: [ActionKind; 8] = [
        ActionKind::OpenConsole,
        ActionKind::SearchTenants,
        ActionKind::OpenTenant,
        ActionKind::AuditList,
        ActionKind::AuditShow,
        ActionKind::AuditVerify,
        ActionKind::AuditExport,
        ActionKind::AuditCheckpoint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::OpenConsole => "console.open",
            ActionKind::SearchTenants => "tenant.search",
            ActionKind::OpenTenant => "tenant.open",
            ActionKind::AuditList => "audit.list",
            ActionKind::AuditShow => "audit.show",
            ActionKind::AuditVerify => "audit.verify",
            ActionKind::AuditExport => "audit.export",
            ActionKind::AuditCheckpoint => "audit.checkpoint",
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
            Action::SearchTenants { .. } => ActionKind::SearchTenants,
            Action::OpenTenant { .. } => ActionKind::OpenTenant,
            Action::AuditList { .. } => ActionKind::AuditList,
            Action::AuditShow { .. } => ActionKind::AuditShow,
            Action::AuditVerify { .. } => ActionKind::AuditVerify,
            Action::AuditExport { .. } => ActionKind::AuditExport,
            Action::AuditCheckpoint { .. } => ActionKind::AuditCheckpoint,
        }
    }

    /// The tenant the action concerns, if any.
    pub fn tenant(&self) -> Option<Uuid> {
        match self {
            Action::OpenTenant { business_id } => Some(*business_id),
            Action::SearchTenants { .. } | Action::OpenConsole => None,
            Action::AuditList { filter, .. } => filter.tenant,
            Action::AuditShow { .. }
            | Action::AuditVerify { .. }
            | Action::AuditExport { .. }
            | Action::AuditCheckpoint { .. } => None,
        }
    }
}

/// What an action produced.
#[derive(Debug, Clone)]
pub enum Reply {
    Opened,
    Tenants(Vec<TenantHit>),
    Tenant(Box<TenantDetail>),
    AuditPage(AuditPage),
    AuditEntry(Box<AuditRecord>),
    AuditVerdict(Verdict),
    AuditExported { entries: u64 },
    AuditCheckpoint(Checkpoint),
}
