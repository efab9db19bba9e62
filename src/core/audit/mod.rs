//! The audit log: every action recorded first, hash-chained, append-only,
//! verifiable (DESIGN.md, "Every action is audited, first").
//!
//! - [`append`] writes one entry, committed, serialised on the `audit_head`
//!   row (a conditional head update in one statement, else a locked
//!   transaction), with `hash = HMAC-SHA256(key, canonical bytes)`
//!   ([`canonical`]) chaining it to the entry before.
//! - [`verify`] recomputes the chain in batches and names the first broken
//!   seq and what is wrong ([`Verdict`]); a [`Checkpoint`] kept outside the
//!   database also catches a truncated tail.
//! - [`list`], [`show`] and [`export`] read it; front ends reach them through
//!   audited actions (`Action::Audit*`), never directly.
//! - [`mirror`] optionally copies each entry as a JSON line to a local file.
//!
//! An entry never holds a personal value of a customer: the code building
//! entries (`Console::dispatch`) records kinds, lengths, ids and column names.

pub mod canonical;
mod copy;
pub mod events;
pub mod key;
pub mod mirror;
mod read;
mod verify;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::core::{Error, Result};

pub use events::{base_code, event_code};
pub use key::AuditKey;
pub use read::{AuditFilter, AuditPage, ExportDest, ExportFormat, PAGE_SIZE, export, list, show};
pub use verify::{Checkpoint, Problem, Verdict, VerifyProgress, checkpoint, verify};

/// An HMAC-SHA256 value.
pub type Hash = [u8; 32];

/// The prev_hash of entry 1.
pub const GENESIS: Hash = [0; 32];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Authorised; written before the action runs.
    Allowed,
    /// Refused by the permission table; the action did not run.
    Denied,
    /// Ran and failed (a second entry after the `Allowed` one).
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Allowed, Outcome::Denied, Outcome::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// The content of an entry, as the caller gives it. The database adds seq,
/// time and the hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEntry {
    pub operator: String,
    pub role: String,
    /// The hardware key the session was opened with, when known.
    pub key_id: Option<String>,
    pub session_id: Uuid,
    pub event_code: String,
    pub action: String,
    pub tenant_id: Option<Uuid>,
    pub target_table: Option<String>,
    pub target_pk: Option<String>,
    /// Column names, never values.
    pub target_columns: Vec<String>,
    pub reason: Option<String>,
    pub outcome: Outcome,
    /// A short error code (see docs/audit-events.md), never a message that
    /// could quote a value.
    pub error: Option<String>,
    /// A small JSON object; never a personal value.
    pub details: serde_json::Value,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: i64,
    /// Database clock, UTC, microsecond precision.
    pub at: DateTime<Utc>,
    pub entry: NewEntry,
    pub prev_hash: Hash,
    pub hash: Hash,
}

impl AuditRecord {
    /// The canonical bytes this record's hash covers.
    pub fn canonical(&self) -> Vec<u8> {
        canonical::encode(
            self.seq,
            self.at.timestamp_micros(),
            &self.entry,
            &self.prev_hash,
        )
    }

    /// The record as one JSON object (hashes in hex): the form of the JSONL
    /// mirror and export.
    pub fn to_json(&self) -> serde_json::Value {
        let e = &self.entry;
        serde_json::json!({
            "seq": self.seq,
            "at": self.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "operator": e.operator,
            "role": e.role,
            "key_id": e.key_id,
            "session_id": e.session_id,
            "event_code": e.event_code,
            "action": e.action,
            "tenant_id": e.tenant_id,
            "target_table": e.target_table,
            "target_pk": e.target_pk,
            "target_columns": e.target_columns,
            "reason": e.reason,
            "outcome": e.outcome,
            "error": e.error,
            "details": e.details,
            "prev_hash": hex::encode(self.prev_hash),
            "hash": hex::encode(self.hash),
        })
    }
}

/// The columns of a record, in the order [`record_from_row`] reads them.
pub(crate) const COLUMNS: &str = "seq, at, operator, role, key_id, session_id, event_code, \
     action, tenant_id, target_table, target_pk, target_columns, reason, outcome, error, \
     details, prev_hash, hash";

pub(crate) fn record_from_row(row: &PgRow) -> Result<AuditRecord> {
    let seq: i64 = row.try_get(0)?;
    let outcome: String = row.try_get(13)?;
    let outcome = Outcome::parse(&outcome).ok_or_else(|| {
        Error::InvalidInput(format!("audit entry {seq}: unknown outcome {outcome:?}"))
    })?;
    let hash32 = |v: Vec<u8>, what: &str| -> Result<Hash> {
        v.try_into().map_err(|v: Vec<u8>| {
            Error::InvalidInput(format!(
                "audit entry {seq}: {what} has {} bytes, not 32",
                v.len()
            ))
        })
    };
    let Json(details): Json<serde_json::Value> = row.try_get(15)?;
    Ok(AuditRecord {
        seq,
        at: row.try_get(1)?,
        entry: NewEntry {
            operator: row.try_get(2)?,
            role: row.try_get(3)?,
            key_id: row.try_get(4)?,
            session_id: row.try_get(5)?,
            event_code: row.try_get(6)?,
            action: row.try_get(7)?,
            tenant_id: row.try_get(8)?,
            target_table: row.try_get(9)?,
            target_pk: row.try_get(10)?,
            target_columns: row.try_get(11)?,
            reason: row.try_get(12)?,
            outcome,
            error: row.try_get(14)?,
            details,
        },
        prev_hash: hash32(row.try_get(16)?, "prev_hash")?,
        hash: hash32(row.try_get(17)?, "hash")?,
    })
}

/// Appends one entry and returns it once committed (durable when the
/// server's `synchronous_commit` is on, its default).
///
/// First, in two statements and no explicit transaction: read the head
/// (seq, hash) and the database clock, compute the HMAC, then one statement
/// inserts the entry and moves the head on the condition that the head is
/// still the one read (`UPDATE ... WHERE seq = prev AND hash = prev_hash`,
/// which queues on the head's row lock and re-checks the condition after a
/// concurrent writer commits). If another appender moved the head meanwhile,
/// nothing is written and the entry is appended the locked way: in one
/// transaction, lock the head (`FOR UPDATE`), read it and the clock, insert,
/// move the head, commit. Either way the chain stays linear, and times rise
/// with seq: a head that is read has been committed, so the clock read
/// after it is later than its entry's time.
pub async fn append(pool: &PgPool, key: &AuditKey, entry: &NewEntry) -> Result<AuditRecord> {
    // clock_timestamp(), not now(): the time of the read itself.
    let head = sqlx::query("SELECT seq, hash, clock_timestamp() FROM audit_head WHERE id")
        .fetch_optional(pool)
        .await?;
    let rec = next_record(key, entry, head)?;
    let written = bind_record(
        sqlx::query(
            "WITH h AS (
                 UPDATE audit_head SET seq = $1, hash = $18
                  WHERE id AND seq = $1 - 1 AND hash = $17
                 RETURNING id
             )
             INSERT INTO audit_log (seq, at, operator, role, key_id, session_id, event_code,
                 action, tenant_id, target_table, target_pk, target_columns, reason, outcome,
                 error, details, prev_hash, hash)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                    $17, $18
               FROM h",
        ),
        &rec,
    )
    .execute(pool)
    .await?
    .rows_affected();
    if written == 1 {
        return Ok(rec);
    }
    append_locked(pool, key, entry).await
}

/// The locked way (when another appender moved the head between our read
/// and our write): one transaction serialised on the head's row lock.
async fn append_locked(pool: &PgPool, key: &AuditKey, entry: &NewEntry) -> Result<AuditRecord> {
    let mut tx = pool.begin().await?;
    // clock_timestamp(), not now(): the time when the lock was obtained, so
    // times rise with seq (a waiter's row is re-read after the lock wait).
    let head =
        sqlx::query("SELECT seq, hash, clock_timestamp() FROM audit_head WHERE id FOR UPDATE")
            .fetch_optional(&mut *tx)
            .await?;
    let rec = next_record(key, entry, head)?;
    bind_record(
        sqlx::query(
            "WITH ins AS (
                 INSERT INTO audit_log (seq, at, operator, role, key_id, session_id, event_code,
                     action, tenant_id, target_table, target_pk, target_columns, reason, outcome,
                     error, details, prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                         $17, $18)
             )
             UPDATE audit_head SET seq = $1, hash = $18 WHERE id",
        ),
        &rec,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rec)
}

/// The record following the head row (seq, hash, clock).
fn next_record(key: &AuditKey, entry: &NewEntry, head: Option<PgRow>) -> Result<AuditRecord> {
    let head = head.ok_or_else(|| Error::NotFound("audit_head row is missing".into()))?;
    let prev_seq: i64 = head.try_get(0)?;
    let prev_hash: Vec<u8> = head.try_get(1)?;
    let prev_hash: Hash = prev_hash
        .try_into()
        .map_err(|_| Error::InvalidInput("audit_head hash is not 32 bytes".into()))?;
    let at: DateTime<Utc> = head.try_get(2)?;
    let seq = prev_seq + 1;
    let hash = key.mac(&canonical::encode(
        seq,
        at.timestamp_micros(),
        entry,
        &prev_hash,
    ));
    Ok(AuditRecord {
        seq,
        at,
        entry: entry.clone(),
        prev_hash,
        hash,
    })
}

/// Binds $1..$18 in [`COLUMNS`] order.
fn bind_record<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    rec: &'q AuditRecord,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let entry = &rec.entry;
    q.bind(rec.seq)
        .bind(rec.at)
        .bind(&entry.operator)
        .bind(&entry.role)
        .bind(&entry.key_id)
        .bind(entry.session_id)
        .bind(&entry.event_code)
        .bind(&entry.action)
        .bind(entry.tenant_id)
        .bind(&entry.target_table)
        .bind(&entry.target_pk)
        .bind(&entry.target_columns)
        .bind(&entry.reason)
        .bind(entry.outcome.as_str())
        .bind(&entry.error)
        .bind(Json(&entry.details))
        .bind(&rec.prev_hash[..])
        .bind(&rec.hash[..])
}

/// The current head of the chain: (seq, hash); seq 0 and [`GENESIS`] when empty.
pub async fn head(pool: &PgPool) -> Result<(i64, Hash)> {
    let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id")
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| Error::NotFound("audit_head row is missing".into()))?;
    let seq: i64 = row.try_get(0)?;
    let hash: Vec<u8> = row.try_get(1)?;
    let hash: Hash = hash
        .try_into()
        .map_err(|_| Error::InvalidInput("audit_head hash is not 32 bytes".into()))?;
    Ok((seq, hash))
}
