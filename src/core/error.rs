//! Errors of the core, as matchable variants. Front ends turn them into
//! messages; none of them carries a personal value.

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    /// The thing asked for does not exist (or is not visible to this operator).
    #[error("not found: {0}")]
    NotFound(String),
    /// The MFA gate has not been passed in this session (or the session
    /// idled out): touch the key first.
    #[error("MFA required: {0}")]
    MfaRequired(String),
    /// The operator may not do this.
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// The change conflicts with what is stored (e.g. a login that exists).
    #[error("conflict: {0}")]
    Conflict(String),
    /// What was typed cannot be used; the message says why.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A configuration file or value is wrong; the message names file, line and key.
    #[error("{0}")]
    Config(String),
    /// The database could not be reached or refused the statement.
    #[error("database {which} unavailable: {detail}")]
    Unavailable { which: &'static str, detail: String },
    /// Any other database error. The message is PostgreSQL's, which never
    /// contains bound values.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A second factor was not accepted; the message says exactly why.
    #[error("key check failed: {0}")]
    Mfa(#[from] crate::core::mfa::MfaError),
    /// A factor was checked and rejected, and the failure counted; the
    /// message says why and how many attempts are left (or that the
    /// operator is now locked).
    #[error(transparent)]
    Auth(#[from] crate::core::auth::AuthFailure),
    /// The audit entry could not be written, so the action was refused and
    /// did not run (fail closed). The detail says why the append failed.
    #[error("audit log unavailable: action refused ({0})")]
    AuditUnavailable(String),
    /// The console database's schema is not the one this binary was built
    /// for (migrations pending, unknown or changed): charon refuses to run
    /// until an owner applies them with `charon migrate`.
    #[error("console database schema: {0}")]
    Schema(String),
}

impl Error {
    /// True when the error means the server is unreachable rather than that
    /// the statement was wrong: the front end shows "database unreachable".
    pub fn is_unreachable(&self) -> bool {
        match self {
            Error::Unavailable { .. } => true,
            Error::Database(e) => matches!(
                e,
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
            ),
            _ => false,
        }
    }

    /// A short code for the `error` column of an audit entry. Never the
    /// message: PostgreSQL's and ours can quote a value an operator typed.
    pub fn audit_code(&self) -> String {
        match self {
            Error::NotFound(_) => "not_found".into(),
            Error::Forbidden(_) => "forbidden".into(),
            Error::InvalidInput(_) => "invalid_input".into(),
            Error::Config(_) => "config".into(),
            Error::Unavailable { .. } => "unavailable".into(),
            Error::AuditUnavailable(_) => "audit_unavailable".into(),
            Error::Schema(_) => "schema".into(),
            Error::Conflict(_) => "conflict".into(),
            Error::MfaRequired(_) => "mfa_required".into(),
            Error::Mfa(_) => "mfa".into(),
            Error::Auth(f) if f.locked => "mfa_rejected:locked".into(),
            Error::Auth(_) => "mfa_rejected".into(),
            Error::Io(_) => "io".into(),
            Error::Database(sqlx::Error::Database(d)) => match d.code() {
                Some(c) if c.chars().all(|ch| ch.is_ascii_alphanumeric()) => {
                    format!("database:{c}")
                }
                _ => "database:other".into(),
            },
            Error::Database(_) if self.is_unreachable() => "database:unreachable".into(),
            Error::Database(_) => "database:other".into(),
        }
    }
}
