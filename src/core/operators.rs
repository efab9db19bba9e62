//! Operators of the console: who may use charon, with which role, and whether
//! they are locked out. The operator running charon is the OS account of the
//! process's real uid (from the passwd database, never `$USER` or a flag), and
//! its role is read from the console database on every action.

use std::fmt;

use serde::Serialize;
use sqlx::PgPool;

use crate::core::session::Role;
use crate::core::{Error, Result};

/// Failed MFA attempts in a row that lock an operator.
pub const MAX_FAILED_ATTEMPTS: i32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Locked,
    Removed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Locked => "locked",
            Status::Removed => "removed",
        }
    }

    fn parse(s: &str) -> Result<Status> {
        match s {
            "active" => Ok(Status::Active),
            "locked" => Ok(Status::Locked),
            "removed" => Ok(Status::Removed),
            // Fail closed on anything the code does not know.
            other => Err(Error::Forbidden(format!(
                "unknown operator status `{other}`"
            ))),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Operator {
    pub login: String,
    pub display_name: String,
    #[serde(serialize_with = "role_str")]
    pub role: Role,
    pub status: Status,
    pub failed_attempts: i32,
}

fn role_str<S: serde::Serializer>(r: &Role, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(r.as_str())
}

type Row = (String, String, String, String, i32);

fn from_row((login, display_name, role, status, failed_attempts): Row) -> Result<Operator> {
    let role = Role::parse(&role)
        .ok_or_else(|| Error::Forbidden(format!("operator {login} has unknown role `{role}`")))?;
    Ok(Operator {
        login,
        display_name,
        role,
        status: Status::parse(&status)?,
        failed_attempts,
    })
}

/// The login name of the OS account running this process (real uid).
pub fn os_account() -> Result<String> {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => Ok(u.name),
        Ok(None) => Err(Error::Forbidden(format!(
            "the running account (uid {uid}) is not in the passwd database"
        ))),
        Err(e) => Err(Error::Forbidden(format!(
            "cannot read the passwd entry of uid {uid}: {e}"
        ))),
    }
}

/// Checks a login name: what the database's CHECK constraint accepts.
pub fn validate_login(login: &str) -> Result<()> {
    let mut chars = login.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && login.len() <= 64 {
        Ok(())
    } else {
        Err(Error::InvalidInput(
            "a login is 1-64 characters: lower-case letters, digits, `_`, `.`, `-`, starting with a letter or `_`".into(),
        ))
    }
}

fn validate_display_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(Error::InvalidInput(
            "a display name is 1-200 printable characters".into(),
        ));
    }
    Ok(())
}

pub async fn find(pool: &PgPool, login: &str) -> Result<Option<Operator>> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT login, display_name, role, status, failed_attempts FROM operators WHERE login = $1",
    )
    .bind(login)
    .fetch_optional(pool)
    .await?;
    row.map(from_row).transpose()
}

/// The operator for `login` if it may use charon now; otherwise a refusal
/// that says why (unknown, locked, removed).
pub async fn resolve(pool: &PgPool, login: &str) -> Result<Operator> {
    match find(pool, login).await? {
        None => Err(Error::Forbidden(format!(
            "the account `{login}` is not a charon operator; ask a console admin to add it"
        ))),
        Some(op) => match op.status {
            Status::Active => Ok(op),
            Status::Locked => Err(Error::Forbidden(format!(
                "operator `{login}` is locked after {} failed attempts; an admin must unlock it",
                op.failed_attempts
            ))),
            Status::Removed => Err(Error::Forbidden(format!(
                "operator `{login}` has been removed"
            ))),
        },
    }
}

pub async fn list(pool: &PgPool) -> Result<Vec<Operator>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT login, display_name, role, status, failed_attempts FROM operators ORDER BY login",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(from_row).collect()
}

/// Creates the first admin. Works only while there is no operator at all;
/// concurrent bootstraps are serialised by a table lock, so only one wins.
pub async fn bootstrap(pool: &PgPool, login: &str, display_name: &str) -> Result<Operator> {
    validate_login(login)?;
    validate_display_name(display_name)?;
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE operators IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM operators")
        .fetch_one(&mut *tx)
        .await?;
    if existing > 0 {
        return Err(Error::Conflict(
            "bootstrap only works on an empty operator table; ask an admin to add you".into(),
        ));
    }
    sqlx::query(
        "INSERT INTO operators (login, display_name, role, created_by) VALUES ($1, $2, 'admin', 'bootstrap')",
    )
    .bind(login)
    .bind(display_name)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    resolve(pool, login).await
}

pub async fn add(
    pool: &PgPool,
    by: &str,
    login: &str,
    display_name: &str,
    role: Role,
) -> Result<Operator> {
    validate_login(login)?;
    validate_display_name(display_name)?;
    let inserted = sqlx::query(
        "INSERT INTO operators (login, display_name, role, created_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (login) DO NOTHING",
    )
    .bind(login)
    .bind(display_name)
    .bind(role.as_str())
    .bind(by)
    .execute(pool)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(Error::Conflict(format!(
            "operator `{login}` already exists"
        )));
    }
    resolve(pool, login).await
}

async fn update_one(
    pool: &PgPool,
    sql: &'static str,
    login: &str,
    arg: Option<&str>,
) -> Result<()> {
    let mut q = sqlx::query(sql).bind(login);
    if let Some(a) = arg {
        q = q.bind(a);
    }
    if q.execute(pool).await?.rows_affected() == 0 {
        return Err(Error::NotFound(format!("no operator `{login}`")));
    }
    Ok(())
}

pub async fn set_role(pool: &PgPool, login: &str, role: Role) -> Result<()> {
    update_one(
        pool,
        "UPDATE operators SET role = $2 WHERE login = $1 AND status <> 'removed'",
        login,
        Some(role.as_str()),
    )
    .await
}

pub async fn lock(pool: &PgPool, login: &str) -> Result<()> {
    update_one(
        pool,
        "UPDATE operators SET status = 'locked', locked_at = now() WHERE login = $1 AND status <> 'removed'",
        login,
        None,
    )
    .await
}

/// Unlocks and resets the failure count.
pub async fn unlock(pool: &PgPool, login: &str) -> Result<()> {
    update_one(
        pool,
        "UPDATE operators SET status = 'active', failed_attempts = 0, locked_at = NULL
         WHERE login = $1 AND status <> 'removed'",
        login,
        None,
    )
    .await
}

/// Removes an operator: the row stays (the audit log names it) but it can
/// no longer sign in, and its keys are revoked.
pub async fn remove(pool: &PgPool, login: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    let n = sqlx::query(
        "UPDATE operators SET status = 'removed' WHERE login = $1 AND status <> 'removed'",
    )
    .bind(login)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(Error::NotFound(format!("no operator `{login}`")));
    }
    sqlx::query(
        "UPDATE operator_keys SET status = 'revoked', revoked_at = now() WHERE login = $1 AND status = 'active'",
    )
    .bind(login)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// After a failed MFA attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub attempts: i32,
    /// True when this failure locked the operator.
    pub locked: bool,
}

/// Counts a failed attempt in the database (so restarting charon does not
/// reset it) and locks the operator at [`MAX_FAILED_ATTEMPTS`].
pub async fn record_failure(pool: &PgPool, login: &str) -> Result<Failure> {
    let row: Option<(i32, String)> = sqlx::query_as(
        "UPDATE operators
         SET failed_attempts = failed_attempts + 1,
             status = CASE WHEN failed_attempts + 1 >= $2 AND status = 'active' THEN 'locked' ELSE status END,
             locked_at = CASE WHEN failed_attempts + 1 >= $2 AND status = 'active' THEN now() ELSE locked_at END
         WHERE login = $1
         RETURNING failed_attempts, status",
    )
    .bind(login)
    .bind(MAX_FAILED_ATTEMPTS)
    .fetch_optional(pool)
    .await?;
    let (attempts, status) =
        row.ok_or_else(|| Error::NotFound(format!("no operator `{login}`")))?;
    Ok(Failure {
        attempts,
        locked: status == "locked" && attempts == MAX_FAILED_ATTEMPTS,
    })
}

/// After a successful MFA attempt: the failure count starts again. Refuses
/// (with [`resolve`]'s reason) when the operator is no longer active, e.g.
/// locked by concurrent failures while this attempt was being checked.
pub async fn record_success(pool: &PgPool, login: &str) -> Result<()> {
    let n = sqlx::query(
        "UPDATE operators SET failed_attempts = 0 WHERE login = $1 AND status = 'active'",
    )
    .bind(login)
    .execute(pool)
    .await?
    .rows_affected();
    if n == 0 {
        resolve(pool, login).await?;
        return Err(Error::Forbidden(format!(
            "operator `{login}` is no longer active"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_checked_like_the_database_does() {
        for ok in ["alice", "_svc", "bob.smith-2", "a"] {
            assert!(validate_login(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Alice",
            "1bob",
            "bob smith",
            "bob;drop",
            &"a".repeat(65),
            "é",
        ] {
            assert!(validate_login(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_names_refuse_control_characters() {
        assert!(validate_display_name("Alice Example").is_ok());
        assert!(validate_display_name("x\x1b[2J").is_err());
        assert!(validate_display_name("  ").is_err());
    }

    #[test]
    fn unknown_status_fails_closed() {
        assert!(Status::parse("superuser").is_err());
    }
}
