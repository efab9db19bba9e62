//! Errors of the core, as matchable variants. Front ends turn them into
//! messages; none of them carries a personal value.

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    /// The thing asked for does not exist (or is not visible to this operator).
    #[error("not found: {0}")]
    NotFound(String),
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
}
