//! Connection pools for the two databases and the console migrations.

use std::str::FromStr;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::core::config::{DbUrl, Timeouts};
use crate::core::{Error, Result};

/// Which database a pool or an error is about.
pub const PLUTO: &str = "pluto";
pub const CONSOLE: &str = "console";

/// Opens a pool. Every connection gets the configured statement timeout.
/// The error names the database (`which`) and PostgreSQL's reason, never the URL.
pub async fn connect(url: &DbUrl, which: &'static str, timeouts: &Timeouts) -> Result<PgPool> {
    let options = PgConnectOptions::from_str(url.expose())
        .map_err(|e| Error::Config(format!("{which} database URL is not valid: {e}")))?
        .application_name("charon")
        .options([(
            "statement_timeout",
            timeouts.statement.as_millis().to_string(),
        )]);
    PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(timeouts.connect)
        .connect_with(options)
        .await
        .map_err(|e| Error::Unavailable {
            which,
            detail: e.to_string(),
        })
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
