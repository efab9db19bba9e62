//! Erasure ledger replay: a restored backup must never bring an erased
//! person back. Every `erasure_ledger` entry executed after the backup was
//! taken is re-applied to the restore, then a check proves that none of
//! those subjects remains.
//!
//! The ledger holds user ids in clear and keyed hashes (HMAC-SHA256 with
//! the console's erasure key) of the e-mail addresses and phone numbers;
//! never an identifier in clear. To find e-mail/phone-linked rows, every
//! distinct value of each data-map column linked to a subject by e-mail or
//! phone is hashed in memory with the same key and matched against the
//! ledger; the values are never logged or stored.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::core::datamap::{Catalog, DataMap, RowErasure, SubjectKind};
use crate::core::erasure::{self, Subject};
use crate::core::{Error, Result};

/// Where the ledger is and the key its hashes were made with.
#[derive(Clone)]
pub struct Ledger {
    pub console: PgPool,
    pub key: [u8; 32],
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ledger(key ***)")
    }
}

/// The entries to replay, merged.
#[derive(Debug, Clone, Default)]
pub struct Pending {
    pub entries: usize,
    pub user_ids: BTreeSet<Uuid>,
    pub hashes: BTreeSet<String>,
}

/// Ledger entries executed at or after `since` (the backup's start: an
/// erasure during the backup may or may not be in it; replaying it is
/// harmless). With no backup time, every entry.
pub async fn pending(console: &PgPool, since: Option<DateTime<Utc>>) -> Result<Pending> {
    let rows = sqlx::query(
        "SELECT user_ids, identifier_hashes FROM erasure_ledger
          WHERE $1::timestamptz IS NULL OR executed_at >= $1 ORDER BY id",
    )
    .bind(since)
    .fetch_all(console)
    .await?;
    let mut p = Pending::default();
    for r in rows {
        p.entries += 1;
        let ids: Vec<Uuid> = r.try_get("user_ids")?;
        p.user_ids.extend(ids);
        let hashes: serde_json::Value = r.try_get("identifier_hashes")?;
        if let Some(list) = hashes.as_array() {
            p.hashes
                .extend(list.iter().filter_map(|h| h.as_str().map(str::to_string)));
        }
    }
    Ok(p)
}

fn keyed(key: &[u8], kind: &str, value: &str) -> Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .map_err(|_| Error::Config("erasure hash key cannot be used".into()))?;
    mac.update(kind.as_bytes());
    mac.update(b":");
    mac.update(value.as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// Every (table, column, kind) of the data map that links a row to a
/// subject by e-mail or phone, on the table itself.
fn contact_columns(map: &DataMap) -> Vec<(String, String, SubjectKind)> {
    let mut out = BTreeSet::new();
    for t in &map.tables {
        for link in &t.subjects {
            if matches!(link.kind, SubjectKind::Email | SubjectKind::Phone) {
                let table = link.path.target_table(&t.name).to_string();
                out.insert((table, link.path.column.clone(), kind_name(link.kind)));
            }
        }
    }
    out.into_iter()
        .map(|(t, c, k)| {
            let kind = if k == "email" {
                SubjectKind::Email
            } else {
                SubjectKind::Phone
            };
            (t, c, kind)
        })
        .collect()
}

fn kind_name(k: SubjectKind) -> &'static str {
    match k {
        SubjectKind::Email => "email",
        SubjectKind::Phone => "phone",
        SubjectKind::UserId => "user_id",
    }
}

/// The e-mail addresses and phone numbers in the restore whose keyed hash
/// is in the ledger, and where they were found (`table.column`, no value).
async fn matching_contacts(
    pool: &PgPool,
    map: &DataMap,
    catalog: &Catalog,
    key: &[u8],
    hashes: &BTreeSet<String>,
) -> Result<(Subject, Vec<String>)> {
    let mut found = Subject::default();
    let mut places = Vec::new();
    for (table, column, kind) in contact_columns(map) {
        let t = catalog.table(&table)?;
        let c = catalog.column(&table, &column)?;
        // Identifiers from the restored catalog only.
        let values: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT {c}::text FROM {t} WHERE {c} IS NOT NULL"
        )))
        .fetch_all(pool)
        .await?;
        let mut n = 0usize;
        for v in values {
            let (name, normal) = match kind {
                SubjectKind::Email => ("email", v.trim().to_lowercase()),
                _ => ("phone", erasure::digits(&v)),
            };
            if normal.is_empty() || !hashes.contains(&keyed(key, name, &normal)?) {
                continue;
            }
            n += 1;
            match kind {
                SubjectKind::Email => found.emails.push(v),
                _ => found.phones.push(v),
            }
        }
        if n > 0 {
            places.push(format!("{table}.{column}: {n} value(s)"));
        }
    }
    Ok((found, places))
}

/// What a replay did.
#[derive(Debug, Clone, Default)]
pub struct Replayed {
    pub entries: usize,
    pub rows_deleted: u64,
    pub rows_changed: u64,
}

/// Re-applies the pending erasures to the restored database (one
/// transaction, through the erasure core's `erase_in_database`).
pub async fn replay(
    pool: &PgPool,
    map: &DataMap,
    catalog: &Catalog,
    key: &[u8],
    p: &Pending,
) -> Result<Replayed> {
    let mut out = Replayed {
        entries: p.entries,
        ..Replayed::default()
    };
    if p.entries == 0 {
        return Ok(out);
    }
    let (mut subject, _) = matching_contacts(pool, map, catalog, key, &p.hashes).await?;
    subject.user_ids = p.user_ids.iter().copied().collect();
    if subject.is_empty() {
        return Ok(out);
    }
    let report = erasure::erase_in_database(pool, map, catalog, &subject).await?;
    out.rows_deleted = report.rows_deleted;
    out.rows_changed = report.rows_pseudonymised + report.rows_redacted;
    Ok(out)
}

/// Where the pending subjects are still found in the restore (empty: none
/// remains): any e-mail/phone value hashing into the ledger, and any row of
/// a table whose rows erasure deletes that still holds an erased user id.
pub async fn remaining(
    pool: &PgPool,
    map: &DataMap,
    catalog: &Catalog,
    key: &[u8],
    p: &Pending,
) -> Result<Vec<String>> {
    let (_, mut places) = matching_contacts(pool, map, catalog, key, &p.hashes).await?;
    let ids: Vec<Uuid> = p.user_ids.iter().copied().collect();
    if ids.is_empty() {
        return Ok(places);
    }
    for t in &map.tables {
        if !matches!(
            t.erasure,
            RowErasure::Delete {
                keep_if_referenced: false
            }
        ) {
            continue;
        }
        for link in &t.subjects {
            if link.kind != SubjectKind::UserId || !link.path.is_direct() {
                continue;
            }
            let table = catalog.table(&t.name)?;
            let col = catalog.column(&t.name, &link.path.column)?;
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM {table} WHERE {col} = ANY($1)"
            )))
            .bind(&ids)
            .fetch_one(pool)
            .await?;
            if n > 0 {
                places.push(format!(
                    "{}.{}: {n} row(s) of erased users",
                    t.name, link.path.column
                ));
            }
        }
    }
    Ok(places)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_the_erasure_core() -> Result<()> {
        let key = b"k".repeat(32);
        let s = Subject {
            emails: vec![" Jane@Example.com".into()],
            phones: vec!["+1 415-555-0134".into()],
            user_ids: vec![],
        };
        let core: BTreeSet<String> = erasure::store::subject_hashes(&key, &s)?
            .into_iter()
            .collect();
        assert!(core.contains(&keyed(&key, "email", "jane@example.com")?));
        assert!(core.contains(&keyed(&key, "phone", "14155550134")?));
        Ok(())
    }
}
