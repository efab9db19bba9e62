//! Checks on the restored data itself: the measured RPO (how recent the
//! newest rows of the busiest tables are) and business invariants (every
//! receipt's object exists in object storage).

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use sqlx::{PgPool, Row};

use super::Check;
use super::compare::{SCHEMA, quote_ident};

/// How many of the largest tables with a `created_at` column are measured.
pub const BUSIEST: usize = 3;

/// Clock skew and commit lag allowed between a row's `created_at` and the
/// backup's snapshot.
const SKEW: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// The busiest tables of the restore (most rows) that have a `created_at`
/// timestamp column; names from the restored catalog.
async fn busiest(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT c.relname::text AS t FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'created_at'
                              AND NOT a.attisdropped
          WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
            AND a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype)
          ORDER BY c.reltuples DESC, c.relname LIMIT $2",
    )
    .bind(SCHEMA)
    .bind(BUSIEST as i64)
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| r.try_get("t")).collect()
}

async fn newest(pool: &PgPool, table: &str) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT max(created_at)::timestamptz FROM {}.{}",
        quote_ident(SCHEMA),
        quote_ident(table)
    )))
    .fetch_one(pool)
    .await
}

async fn live_between(
    live: &PgPool,
    table: &str,
    after: Option<DateTime<Utc>>,
    before: DateTime<Utc>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}.{} WHERE ($1::timestamptz IS NULL OR created_at > $1) \
         AND created_at <= $2",
        quote_ident(SCHEMA),
        quote_ident(table)
    )))
    .bind(after)
    .bind(before)
    .fetch_one(live)
    .await
}

fn human(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    if s >= 86400 {
        format!("{}d{:02}h", s / 86400, s / 3600 % 24)
    } else if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s / 60 % 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// The measured RPO: in each of the busiest tables, the newest restored
/// row against the backup's start. A gap wider than the RPO fails only when
/// the live database has rows from inside that gap (written before the
/// backup started, yet missing from it); a quiet table passes with the gap
/// named.
pub async fn measured_rpo(
    live: &PgPool,
    restored: &PgPool,
    backup_start: Option<DateTime<Utc>>,
    rpo: Duration,
) -> Check {
    const NAME: &str = "measured rpo";
    let Some(start) = backup_start else {
        return Check::fail(NAME, "the backup's start time is unknown");
    };
    let rpo = chrono::TimeDelta::from_std(rpo).unwrap_or(chrono::TimeDelta::MAX);
    let tables = match busiest(restored).await {
        Ok(t) if t.is_empty() => {
            return Check::skip(NAME, "no table with a created_at column to measure");
        }
        Ok(t) => t,
        Err(e) => return Check::fail(NAME, format!("cannot read the restored catalog: {e}")),
    };
    let mut lines = Vec::new();
    let mut bad = Vec::new();
    for t in &tables {
        let newest = match newest(restored, t).await {
            Ok(n) => n,
            Err(e) => return Check::fail(NAME, format!("{t}: {e}")),
        };
        let gap = newest.map(|n| start - n);
        let line = match (newest, gap) {
            (Some(n), Some(g)) => format!(
                "{t}: newest row {} ({} before the backup)",
                n.to_rfc3339(),
                human(g)
            ),
            _ => format!("{t}: empty"),
        };
        if gap.is_none_or(|g| g > rpo) {
            let cutoff = start - SKEW;
            match live_between(live, t, newest, cutoff).await {
                Ok(0) => lines.push(format!(
                    "{line}, quiet: the live database has no rows from that gap"
                )),
                Ok(n) => bad.push(format!(
                    "{line}: {n} live row(s) written in that gap are missing from the backup"
                )),
                Err(e) => bad.push(format!(
                    "{line}: cannot compare with the live database: {e}"
                )),
            }
        } else {
            lines.push(line);
        }
    }
    if bad.is_empty() {
        Check::pass(NAME, format!("RPO {}: {}", human(rpo), lines.join("; ")))
    } else {
        bad.extend(lines);
        Check::fail(NAME, format!("RPO {}: {}", human(rpo), bad.join("; ")))
    }
}

/// Every receipt's object key (`receipts.s3_key`) exists in the configured
/// object storage. Skipped (passes) with the reason when no object storage
/// is configured or the restore has no receipts table.
pub async fn receipt_objects(restored: &PgPool, object_store_url: Option<&str>) -> Check {
    const NAME: &str = "receipt objects";
    let Some(url) = object_store_url else {
        return Check::skip(
            NAME,
            "no object storage configured ([restore] object_store_url)",
        );
    };
    let has_table: Result<bool, sqlx::Error> = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns
          WHERE table_schema = $1 AND table_name = 'receipts' AND column_name = 's3_key')",
    )
    .bind(SCHEMA)
    .fetch_one(restored)
    .await;
    match has_table {
        Ok(true) => {}
        Ok(false) => return Check::skip(NAME, "the restore has no receipts.s3_key column"),
        Err(e) => return Check::fail(NAME, format!("cannot read the restore: {e}")),
    }
    let (store, prefix) = match open_store(url) {
        Ok(s) => s,
        Err(e) => return Check::fail(NAME, e),
    };
    /// One key's outcome.
    enum Seen {
        Found,
        Missing(String),
        Broken(String),
    }
    let store = &store;
    let prefix = &prefix;
    // Up to 32 HEAD requests in flight (object storage is far away).
    let mut results = sqlx::query_scalar::<_, String>(
        "SELECT s3_key FROM receipts WHERE s3_key IS NOT NULL ORDER BY id",
    )
    .fetch(restored)
    .map(|k| async move {
        let key = match k {
            Ok(k) => k,
            Err(e) => return Seen::Broken(format!("cannot read receipts: {e}")),
        };
        let Ok(path) = object_store::path::Path::parse(&key) else {
            return Seen::Missing(format!("{key} (not a valid object key)"));
        };
        let full = prefix
            .parts()
            .chain(path.parts())
            .collect::<object_store::path::Path>();
        match store.head(&full).await {
            Ok(_) => Seen::Found,
            Err(object_store::Error::NotFound { .. }) => Seen::Missing(key),
            Err(e) => Seen::Broken(format!("object storage unreachable: {e}")),
        }
    })
    .buffered(32);
    let mut checked = 0u64;
    let mut missing = Vec::new();
    let mut missing_n = 0u64;
    while let Some(seen) = results.next().await {
        checked += 1;
        match seen {
            Seen::Found => {}
            Seen::Missing(key) => {
                missing_n += 1;
                if missing.len() < 10 {
                    missing.push(key);
                }
            }
            Seen::Broken(why) => return Check::fail(NAME, why),
        }
    }
    if missing_n == 0 {
        Check::pass(NAME, format!("all {checked} receipt objects exist"))
    } else {
        Check::fail(
            NAME,
            format!(
                "{missing_n} of {checked} receipt objects missing: {}",
                missing.join(", ")
            ),
        )
    }
}

fn open_store(url: &str) -> Result<(Box<dyn ObjectStore>, object_store::path::Path), String> {
    let u = url::Url::parse(url).map_err(|e| format!("object_store_url: {e}"))?;
    if u.scheme() == "file" {
        // LocalFileSystem needs the directory to exist.
        let dir = u
            .to_file_path()
            .map_err(|_| "object_store_url: not a local path".to_string())?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| format!("object storage {}: {e}", dir.display()))?;
        return Ok((Box::new(fs), object_store::path::Path::default()));
    }
    // Credentials for s3:// come from the environment (AWS_*).
    let opts: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    object_store::parse_url_opts(&u, opts).map_err(|e| format!("object storage: {e}"))
}
