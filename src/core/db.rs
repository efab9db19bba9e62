//! Connection pools for the two databases and the console migrations.

use std::str::FromStr;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::core::config::{DbUrl, Timeouts};
use crate::core::{Error, Result};

/// Which database a pool or an error is about.
pub const PLUTO: &str = "pluto";
pub const CONSOLE: &str = "console";

/// Connections per pool of one console process.
pub const POOL_SIZE: u32 = 8;

/// Opens a pool of [`POOL_SIZE`] connections. Every connection gets the
/// configured statement timeout. The error names the database (`which`) and
/// PostgreSQL's reason, never the URL.
pub async fn connect(url: &DbUrl, which: &'static str, timeouts: &Timeouts) -> Result<PgPool> {
    connect_sized(url, which, timeouts, POOL_SIZE).await
}

/// As [`connect`], with at most `max_connections` (the load benchmark
/// shares one pool per database between many sessions).
pub async fn connect_sized(
    url: &DbUrl,
    which: &'static str,
    timeouts: &Timeouts,
    max_connections: u32,
) -> Result<PgPool> {
    let options = PgConnectOptions::from_str(url.expose())
        .map_err(|e| Error::Config(format!("{which} database URL is not valid: {e}")))?
        .application_name("charon")
        .options([(
            "statement_timeout",
            timeouts.statement.as_millis().to_string(),
        )]);
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(timeouts.connect)
        .after_release(|conn, _| Box::pin(async move { not_in_a_transaction(conn).await }))
        .connect_with(options)
        .await
        .map_err(|e| Error::Unavailable {
            which,
            detail: reason(&e),
        })
}

/// Why a server could not be reached, in words an operator can act on:
/// a missing Unix socket says so rather than "No such file or directory".
pub fn reason(e: &sqlx::Error) -> String {
    use std::io::ErrorKind;
    match e {
        sqlx::Error::Io(io) => match io.kind() {
            ErrorKind::NotFound => {
                "no server is listening (its Unix socket does not exist)".to_string()
            }
            ErrorKind::ConnectionRefused => {
                "connection refused: no server is listening there".to_string()
            }
            _ => e.to_string(),
        },
        _ => e.to_string(),
    }
}

/// Whether a connection coming back to the pool may be handed out again:
/// only when it is not inside a transaction block. sqlx 0.9.0 returns a
/// connection to the pool inside a transaction when a `begin()` is dropped
/// while its `BEGIN` is in flight (sqlx issue #4393, fixed upstream after
/// 0.9.0), as charon's timeouts do when a server freezes. The next borrower's
/// autocommit statements would then run in that transaction and never
/// commit: an audit entry that reads as written but is not, then lost on
/// rollback. So such a connection is closed, not reused.
///
/// One simple-protocol round trip per release: in a transaction block its
/// start is earlier than this statement's; in the implicit transaction of a
/// lone statement the two are equal. An aborted transaction makes the query
/// fail, which closes the connection too.
pub async fn not_in_a_transaction(conn: &mut sqlx::PgConnection) -> sqlx::Result<bool> {
    use sqlx::Row;
    let row = sqlx::raw_sql("SELECT transaction_timestamp() = statement_timestamp()")
        .fetch_one(&mut *conn)
        .await?;
    row.try_get(0)
}

/// Brings the console database's schema up to date.
pub async fn migrate_console(pool: &PgPool) -> Result<()> {
    sqlx::migrate!("./migrations/console")
        .run(pool)
        .await
        .map_err(|e| Error::Unavailable {
            which: CONSOLE,
            detail: format!("migrations failed: {e}"),
        })
}

/// How to fix a console schema that is behind this binary.
const RUN_MIGRATE: &str = "run `charon migrate` as the owner role (docs/deployment.md)";

/// Checks, without changing anything, that the console database's applied
/// migrations (sqlx's `_sqlx_migrations`) are exactly the ones built into
/// this binary: none pending, none unknown, none failed, none changed since
/// it was applied. Normal connections call this instead of migrating, so
/// that charon's runtime role needs no DDL rights; `charon migrate`, run as
/// the owner role, is the one that applies migrations.
///
/// Fails closed with [`Error::Schema`] naming the first difference.
pub async fn check_console_schema(pool: &PgPool) -> Result<()> {
    let migrator = sqlx::migrate!("./migrations/console");
    let table: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
        .fetch_one(pool)
        .await?;
    if table.is_none() {
        return Err(Error::Schema(format!(
            "the console database has no charon migrations applied (or this role cannot see \
             them): {RUN_MIGRATE}"
        )));
    }
    let applied: Vec<(i64, bool, Vec<u8>)> =
        sqlx::query_as("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version")
            .fetch_all(pool)
            .await?;
    let known: Vec<_> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .collect();
    for (version, success, checksum) in &applied {
        let Some(m) = known.iter().find(|m| m.version == *version) else {
            return Err(Error::Schema(format!(
                "migration {version} is applied in the console database but unknown to this \
                 binary: the database is newer than this charon; upgrade charon"
            )));
        };
        if !success {
            return Err(Error::Schema(format!(
                "migration {version} ({}) did not finish: fix it, then {RUN_MIGRATE}",
                m.description
            )));
        }
        if checksum.as_slice() != &*m.checksum {
            return Err(Error::Schema(format!(
                "migration {version} ({}) was changed after it was applied: this binary and the \
                 database disagree; do not edit applied migrations",
                m.description
            )));
        }
    }
    if let Some(m) = known
        .iter()
        .find(|m| !applied.iter().any(|(v, _, _)| *v == m.version))
    {
        return Err(Error::Schema(format!(
            "migration {} ({}) is not applied yet: {RUN_MIGRATE}",
            m.version, m.description
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error as IoError, ErrorKind};

    #[test]
    fn unreachable_servers_are_named_in_words() {
        let gone = sqlx::Error::Io(IoError::from(ErrorKind::NotFound));
        assert_eq!(
            reason(&gone),
            "no server is listening (its Unix socket does not exist)"
        );
        let refused = sqlx::Error::Io(IoError::from(ErrorKind::ConnectionRefused));
        assert_eq!(
            reason(&refused),
            "connection refused: no server is listening there"
        );
        let reset = sqlx::Error::Io(IoError::from(ErrorKind::ConnectionReset));
        assert_eq!(reason(&reset), reset.to_string());
        assert_eq!(
            reason(&sqlx::Error::PoolTimedOut),
            sqlx::Error::PoolTimedOut.to_string()
        );
    }
}
