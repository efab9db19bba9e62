//! Test harness: a fresh database per test on a real PostgreSQL server.
//!
//! The server comes from `CHARON_TEST_DATABASE_URL`, else `DATABASE_URL`, else
//! `postgres://postgres@127.0.0.1:5432/postgres` (what `.ci/run` starts). Each
//! [`TestDb`] creates its own uniquely named database and drops it (with
//! FORCE) when dropped, also when the test panics.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod cli;
pub mod pgbackrest;
pub mod plaid;
pub mod tmux;

use std::str::FromStr;

use charon::core::config::DbUrl;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

pub fn server_url() -> String {
    std::env::var("CHARON_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

pub struct TestDb {
    pub name: String,
    pub url: DbUrl,
    pub pool: PgPool,
    server: String,
}

impl TestDb {
    /// Creates a fresh, empty database named `charon_t_<prefix>_<random>`.
    pub async fn new(prefix: &str) -> TestDb {
        let server = server_url();
        let name = format!(
            "charon_t_{}_{}",
            prefix,
            uuid::Uuid::new_v4()
                .simple()
                .to_string()
                .get(..12)
                .unwrap_or("x")
        );
        let mut admin = PgConnection::connect(&server)
            .await
            .unwrap_or_else(|e| panic!("test PostgreSQL at {server} unreachable: {e}"));
        // The name is generated above from a UUID: safe to interpolate.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.ok();
        let options = PgConnectOptions::from_str(&server).unwrap().database(&name);
        let url = charon::core::config::with_database(&server, &name);
        // The same check of returned connections as charon's own pools
        // (ADR 6): tests hand these pools to `Console::from_pools`.
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .after_release(|conn, _| {
                Box::pin(async move { charon::core::db::not_in_a_transaction(conn).await })
            })
            .connect_with(options)
            .await
            .unwrap();
        TestDb {
            name,
            url: DbUrl::parse(&url).unwrap(),
            pool,
            server,
        }
    }

    /// A fresh database with the synthetic Pluto schema (no rows, no indexes).
    pub async fn pluto(prefix: &str) -> TestDb {
        let db = TestDb::new(prefix).await;
        sqlx::raw_sql(charon::pluto::SCHEMA)
            .execute(&db.pool)
            .await
            .unwrap();
        db
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let server = self.server.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which is blocked here: a thread
        // with its own runtime drops the database, and FORCE ends the pool's
        // connections (closing the pool would wait on the blocked runtime).
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&server).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                }
            });
        })
        .join();
    }
}

/// `pg_dump -Fc` of `url` into `path`, with the `<path>.sha256` file a
/// backup source checks it against.
pub fn pg_dump_with_sha256(url: &str, path: &std::path::Path) {
    let out = std::process::Command::new(
        charon::core::restore::tools::find("pg_dump", None).expect("pg_dump is installed"),
    )
    .arg("-Fc")
    .arg("-f")
    .arg(path)
    .arg(format!("--dbname={url}"))
    .env("TZ", "UTC")
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    write_sha256(path);
}

/// Writes `<path>.sha256` (`sha256sum` format) for the file at `path`.
pub fn write_sha256(path: &std::path::Path) {
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()));
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    std::fs::write(sha256_path(path), format!("{hash}  {name}\n")).unwrap();
}

/// `<path>.sha256`.
pub fn sha256_path(path: &std::path::Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".sha256");
    std::path::PathBuf::from(p)
}
