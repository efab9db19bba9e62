//! Every user intent is an [`Action`] value handed to
//! [`Console::dispatch`](crate::core::console::Console::dispatch), the one
//! place that authorises, audits and runs it. Front ends never run SQL.

use uuid::Uuid;

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
}

/// The stable kind of an action: its name in logs, permissions and audit
/// event codes. Never carries the action's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    OpenConsole,
    SearchTenants,
    OpenTenant,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::OpenConsole => "console.open",
            ActionKind::SearchTenants => "tenant.search",
            ActionKind::OpenTenant => "tenant.open",
        }
    }
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::OpenConsole => ActionKind::OpenConsole,
            Action::SearchTenants { .. } => ActionKind::SearchTenants,
            Action::OpenTenant { .. } => ActionKind::OpenTenant,
        }
    }

    /// The tenant the action concerns, if any.
    pub fn tenant(&self) -> Option<Uuid> {
        match self {
            Action::OpenTenant { business_id } => Some(*business_id),
            Action::OpenConsole | Action::SearchTenants { .. } => None,
        }
    }
}

/// What an action produced.
#[derive(Debug, Clone)]
pub enum Reply {
    Opened,
    Tenants(Vec<TenantHit>),
    Tenant(Box<TenantDetail>),
}
