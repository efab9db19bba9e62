//! The `restore_tests` history in the console database.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::Verdict;
use crate::core::Result;

/// Writes a verdict to the history; returns the row's id.
pub async fn record(console: &PgPool, v: &Verdict) -> Result<Uuid> {
    let id = Uuid::new_v4();
    let checks =
        serde_json::to_value(&v.checks).map_err(|e| crate::core::Error::Config(e.to_string()))?;
    let report = v.to_json();
    sqlx::query(
        "INSERT INTO restore_tests (id, source, backup_id, backup_taken_at, backup_size, \
         started_at, finished_at, verdict, checks, restore_ms, total_ms, backup_age_s, \
         scratch_db, report) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(id)
    .bind(&v.source)
    .bind(&v.backup.id)
    .bind(v.backup.taken_at)
    .bind(i64::try_from(v.backup.size).unwrap_or(i64::MAX))
    .bind(v.started_at)
    .bind(v.finished_at.max(v.started_at))
    .bind(if v.passed { "pass" } else { "fail" })
    .bind(checks)
    .bind(v.restore_ms.map(|m| i64::try_from(m).unwrap_or(i64::MAX)))
    .bind(i64::try_from(v.total_ms).unwrap_or(i64::MAX))
    .bind(v.backup_age_secs)
    .bind(&v.scratch_db)
    .bind(report)
    .execute(console)
    .await?;
    Ok(id)
}

/// One past restore test, for the history table and chart.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    pub id: Uuid,
    pub source: String,
    pub backup_id: String,
    pub started_at: DateTime<Utc>,
    pub passed: bool,
    pub restore_ms: Option<i64>,
    pub total_ms: i64,
    pub backup_age_s: Option<i64>,
    /// The first failed check's name, if any.
    pub failed_check: Option<String>,
}

/// The newest `limit` restore tests, newest first.
pub async fn history(console: &PgPool, limit: i64) -> Result<Vec<HistoryRow>> {
    let rows = sqlx::query(
        "SELECT id, source, backup_id, started_at, verdict = 'pass' AS passed, restore_ms, \
         total_ms, backup_age_s, \
         (SELECT c->>'name' FROM jsonb_array_elements(checks) c \
          WHERE NOT (c->>'passed')::boolean LIMIT 1) AS failed_check \
         FROM restore_tests ORDER BY started_at DESC, id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(console)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(HistoryRow {
                id: r.try_get("id")?,
                source: r.try_get("source")?,
                backup_id: r.try_get("backup_id")?,
                started_at: r.try_get("started_at")?,
                passed: r.try_get("passed")?,
                restore_ms: r.try_get("restore_ms")?,
                total_ms: r.try_get("total_ms")?,
                backup_age_s: r.try_get("backup_age_s")?,
                failed_check: r.try_get("failed_check")?,
            })
        })
        .collect()
}
