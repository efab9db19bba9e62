//! Permanent redaction: one field of one record (a detector's matches
//! replaced by `[REDACTED:<name>]`, or the value nulled), or every match of
//! one detector across a tenant's free-text columns.
//!
//! Both go preview first, apply second. A preview shows the value masked
//! before and after, and counts the matches; it keeps a digest of what it
//! saw (keyed with a per-process random key, never shown or stored). Apply
//! re-reads the rows `FOR UPDATE` in one transaction of the Pluto database
//! and refuses when anything changed since the preview. Each redacted field
//! is recorded in the console database (`redactions`, migration 0004): the
//! table, key, column, method, detector, operator, reason, time, and an
//! HMAC-SHA256 of the old value under the caller's key — never the value.
//!
//! The two databases cannot commit together: the console rows are written
//! first (status `pending`), the Pluto transaction commits, then the rows
//! are marked `applied` (or `failed` when the commit failed). A crash in
//! between leaves `pending` rows, which say a redaction may have happened.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use sqlx::{PgPool, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::{Kind, Pk, check_pk_type, tenant_predicate};
use crate::core::datamap::{Catalog, Category, DataMap, Mask, is_text_type};
use crate::core::detect::{self, Detector};
use crate::core::{Error, Result};

/// The longest reason accepted (the console table checks it too).
pub const MAX_REASON_LEN: usize = 2000;
/// The shortest key accepted for the keyed hash.
pub const MIN_KEY_LEN: usize = 16;

/// What happens to the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "method", content = "detector")]
pub enum How {
    /// Every match of the detector becomes `[REDACTED:<name>]`.
    Span(Detector),
    /// The whole value becomes NULL (the column must be nullable).
    Null,
}

impl How {
    fn method(self) -> &'static str {
        match self {
            How::Span(_) => "span",
            How::Null => "null",
        }
    }

    fn detector(self) -> Option<&'static str> {
        match self {
            How::Span(d) => Some(d.name()),
            How::Null => None,
        }
    }
}

/// What redacting one field would do.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub tenant: Uuid,
    pub kind: Kind,
    pub id: Pk,
    pub field: String,
    pub how: How,
    /// The value now, under its mask.
    pub before_masked: String,
    /// The value after redaction (`None`: NULL), under the column's mask
    /// (for free text: the markers shown, other detected values masked).
    pub after: Option<String>,
    /// Matches replaced (1 for `How::Null`).
    pub matches: usize,
    #[serde(skip)]
    seen: [u8; 32],
}

/// What a preview or an apply of a detector across a tenant found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnMatches {
    pub table: String,
    pub column: String,
    /// Rows with at least one match.
    pub rows: u64,
    pub matches: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BulkPreview {
    pub tenant: Uuid,
    pub detector: Detector,
    /// Per free-text column, only those with matches.
    pub columns: Vec<ColumnMatches>,
    /// Fields (row × column) that change.
    pub fields: u64,
    pub matches: u64,
    #[serde(skip)]
    seen: [u8; 32],
}

/// The outcome of an apply: the console rows are grouped by `batch_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedRedaction {
    pub batch_id: Uuid,
    /// Fields changed (one console row each).
    pub fields: u64,
    pub matches: u64,
}

/// HMAC-SHA256 of `value` under `key`: what the console database keeps of a
/// redacted value. With the key, an investigator can confirm that a given
/// value was the one removed; without it the hash says nothing.
pub fn keyed_hash(key: &[u8], value: &[u8]) -> Result<[u8; 32]> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .map_err(|_| Error::Config("redaction hash key cannot be used".into()))?;
    mac.update(value);
    Ok(mac.finalize().into_bytes().into())
}

/// A digest of what a preview saw, under a key that lives only in this
/// process (so a preview cannot be used to test guesses of the value).
fn seen_digest(parts: &[&[u8]]) -> Result<[u8; 32]> {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = KEY.get_or_init(rand::random::<[u8; 32]>);
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .map_err(|_| Error::Config("preview digest key cannot be used".into()))?;
    for p in parts {
        mac.update(&(p.len() as u64).to_le_bytes());
        mac.update(p);
    }
    Ok(mac.finalize().into_bytes().into())
}

/// The column of the kind's own table a redaction may target: personal by
/// the data map, text for spans, nullable for `Null`.
fn target(map: &DataMap, catalog: &Catalog, kind: Kind, field: &str, how: How) -> Result<Mask> {
    let table = kind.table();
    let ct = catalog
        .get(table)
        .and_then(|t| t.column(field))
        .ok_or_else(|| Error::NotFound(format!("field `{field}` of {}", kind.label())))?;
    let mc = map
        .table(table)
        .and_then(|t| t.column(field))
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "`{table}.{field}` is not classified by the data map: classify it first"
            ))
        })?;
    if !mc.category.is_personal() || mc.category == Category::Identifier {
        return Err(Error::InvalidInput(format!(
            "`{table}.{field}` is not personal data: nothing to redact"
        )));
    }
    if ct.generated {
        return Err(Error::InvalidInput(format!(
            "`{table}.{field}` is generated from other columns: redact those"
        )));
    }
    if kind.pk_column() == field {
        return Err(Error::InvalidInput(
            "a record's key cannot be redacted".into(),
        ));
    }
    match how {
        How::Span(_) if !is_text_type(&ct.data_type) => Err(Error::InvalidInput(format!(
            "`{table}.{field}` is not text: null it instead"
        ))),
        How::Null if !ct.nullable => Err(Error::InvalidInput(format!(
            "`{table}.{field}` cannot be NULL: redact the matches instead"
        ))),
        _ => Ok(mc.mask),
    }
}

/// `SELECT t."col"::text FROM t WHERE <tenant> AND t."pk" = $ [FOR UPDATE]`
fn select_value(
    map: &DataMap,
    catalog: &Catalog,
    tenant: Uuid,
    kind: Kind,
    id: Pk,
    field: &str,
    lock: bool,
) -> Result<QueryBuilder<Postgres>> {
    check_pk_type(kind, id)?;
    let table = kind.table();
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("SELECT t.");
    qb.push(catalog.column(table, field)?);
    qb.push("::text FROM ");
    qb.push(catalog.table(table)?);
    qb.push(" t WHERE ");
    tenant_predicate(&mut qb, map, catalog, table, "t", tenant)?;
    qb.push(" AND t.");
    qb.push(catalog.column(table, kind.pk_column())?);
    qb.push(" = ");
    id.push_bind(&mut qb);
    if lock {
        qb.push(" FOR UPDATE OF t");
    }
    Ok(qb)
}

/// The value after the redaction, and how many matches it replaced.
fn redacted(value: &str, how: How) -> (Option<String>, usize) {
    match how {
        How::Span(d) => {
            let (out, n) = detect::redact(value, d);
            (Some(out), n)
        }
        How::Null => (None, 1),
    }
}

/// What redacting one field of one record would do. Nothing is changed.
#[allow(clippy::too_many_arguments)]
pub async fn preview_redaction(
    pool: &PgPool,
    map: &DataMap,
    catalog: &Catalog,
    tenant: Uuid,
    kind: Kind,
    id: Pk,
    field: &str,
    how: How,
) -> Result<Preview> {
    let mask = target(map, catalog, kind, field, how)?;
    let mut qb = select_value(map, catalog, tenant, kind, id, field, false)?;
    let Some(row) = qb.build().fetch_optional(pool).await? else {
        return Err(Error::NotFound(format!("{} {id}", kind.label())));
    };
    let value: Option<String> = row.try_get(0)?;
    let Some(value) = value else {
        return Err(Error::InvalidInput(format!(
            "`{field}` is already empty: nothing to redact"
        )));
    };
    let (after, matches) = redacted(&value, how);
    Ok(Preview {
        tenant,
        kind,
        id,
        field: field.to_string(),
        how,
        before_masked: mask.apply(&value),
        // The rest of the value stays under the column's mask (free text:
        // other detected values masked; a hidden column stays hidden).
        after: after.map(|a| mask.apply(&a)),
        matches,
        seen: seen_digest(&[value.as_bytes()])?,
    })
}

fn check_reason(reason: &str) -> Result<()> {
    let n = reason.trim().chars().count();
    if n == 0 || n > MAX_REASON_LEN {
        return Err(Error::InvalidInput(format!(
            "a redaction needs a reason (1 to {MAX_REASON_LEN} characters)"
        )));
    }
    Ok(())
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.len() < MIN_KEY_LEN {
        return Err(Error::Config(format!(
            "the redaction hash key must be at least {MIN_KEY_LEN} bytes"
        )));
    }
    Ok(())
}

/// One field to record in the console database.
struct Entry {
    table: String,
    row_key: serde_json::Value,
    column: String,
    matches: i32,
    hmac: Vec<u8>,
}

async fn record_pending(
    console: &PgPool,
    batch: Uuid,
    tenant: Uuid,
    how: How,
    operator: &str,
    reason: &str,
    entries: &[Entry],
) -> Result<()> {
    let ids: Vec<Uuid> = entries.iter().map(|_| Uuid::new_v4()).collect();
    let tables: Vec<&str> = entries.iter().map(|e| e.table.as_str()).collect();
    let keys: Vec<String> = entries.iter().map(|e| e.row_key.to_string()).collect();
    let columns: Vec<&str> = entries.iter().map(|e| e.column.as_str()).collect();
    let matches: Vec<i32> = entries.iter().map(|e| e.matches).collect();
    let hmacs: Vec<&[u8]> = entries.iter().map(|e| e.hmac.as_slice()).collect();
    sqlx::query(
        "INSERT INTO redactions (id, batch_id, business_id, table_name, row_key, column_name,
                                 method, detector, matches, old_value_hmac, operator, reason)
         SELECT u.id, $2, $3, u.tbl, u.k::jsonb, u.col, $4, $5, u.n, u.h, $6, $7
           FROM unnest($1::uuid[], $8::text[], $9::text[], $10::text[], $11::int4[], $12::bytea[])
                AS u(id, tbl, k, col, n, h)",
    )
    .bind(&ids)
    .bind(batch)
    .bind(tenant)
    .bind(how.method())
    .bind(how.detector())
    .bind(operator)
    .bind(reason)
    .bind(&tables)
    .bind(&keys)
    .bind(&columns)
    .bind(&matches)
    .bind(&hmacs)
    .execute(console)
    .await?;
    Ok(())
}

async fn mark(console: &PgPool, batch: Uuid, status: &str) -> Result<()> {
    sqlx::query(
        "UPDATE redactions SET status = $2,
                applied_at = CASE WHEN $2 = 'applied' THEN now() END
          WHERE batch_id = $1",
    )
    .bind(batch)
    .bind(status)
    .execute(console)
    .await?;
    Ok(())
}

/// Commits the Pluto transaction between recording the console rows and
/// marking them.
#[allow(clippy::too_many_arguments)]
async fn commit_recorded(
    tx: sqlx::Transaction<'_, Postgres>,
    console: &PgPool,
    batch: Uuid,
    tenant: Uuid,
    how: How,
    operator: &str,
    reason: &str,
    entries: &[Entry],
) -> Result<()> {
    record_pending(console, batch, tenant, how, operator, reason, entries).await?;
    match tx.commit().await {
        Ok(()) => mark(console, batch, "applied").await,
        Err(e) => {
            // Best effort: the error that matters is the commit's.
            let _ = mark(console, batch, "failed").await;
            Err(e.into())
        }
    }
}

/// Applies a previewed redaction of one field: in one transaction, re-reads
/// the value `FOR UPDATE`, refuses (`Conflict`) when it is not what the
/// preview saw, updates that one row, and records the redaction in the
/// console database. The caller has checked the role and step-up MFA and
/// audits the action.
#[allow(clippy::too_many_arguments)]
pub async fn apply_redaction(
    pluto: &PgPool,
    console: &PgPool,
    map: &DataMap,
    catalog: &Catalog,
    key_for_hash: &[u8],
    operator: &str,
    reason: &str,
    preview: &Preview,
) -> Result<AppliedRedaction> {
    check_key(key_for_hash)?;
    check_reason(reason)?;
    if preview.matches == 0 {
        return Err(Error::InvalidInput(
            "the preview found nothing to redact".into(),
        ));
    }
    let (kind, id, field, how) = (
        preview.kind,
        preview.id,
        preview.field.as_str(),
        preview.how,
    );
    target(map, catalog, kind, field, how)?;
    let mut tx = pluto.begin().await?;
    let mut qb = select_value(map, catalog, preview.tenant, kind, id, field, true)?;
    let row = qb.build().fetch_optional(&mut *tx).await?;
    let value: Option<String> = match row {
        Some(r) => r.try_get(0)?,
        None => return Err(Error::NotFound(format!("{} {id}", kind.label()))),
    };
    let Some(value) = value else {
        return Err(Error::Conflict(
            "the value changed since the preview: preview again".into(),
        ));
    };
    if seen_digest(&[value.as_bytes()])? != preview.seen {
        return Err(Error::Conflict(
            "the value changed since the preview: preview again".into(),
        ));
    }
    let (after, matches) = redacted(&value, how);
    if matches != preview.matches {
        return Err(Error::Conflict(
            "the value changed since the preview: preview again".into(),
        ));
    }
    let table = kind.table();
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("UPDATE ");
    qb.push(catalog.table(table)?);
    qb.push(" t SET ");
    qb.push(catalog.column(table, field)?);
    qb.push(" = ");
    qb.push_bind(after);
    qb.push(" WHERE ");
    tenant_predicate(&mut qb, map, catalog, table, "t", preview.tenant)?;
    qb.push(" AND t.");
    qb.push(catalog.column(table, kind.pk_column())?);
    qb.push(" = ");
    id.push_bind(&mut qb);
    let done = qb.build().execute(&mut *tx).await?;
    if done.rows_affected() != 1 {
        return Err(Error::Conflict(
            "the record changed since the preview".into(),
        ));
    }
    let batch = Uuid::new_v4();
    let entry = Entry {
        table: table.to_string(),
        row_key: serde_json::json!({ kind.pk_column(): id.to_string() }),
        column: field.to_string(),
        matches: i32::try_from(matches).unwrap_or(i32::MAX),
        hmac: keyed_hash(key_for_hash, value.as_bytes())?.to_vec(),
    };
    commit_recorded(
        tx,
        console,
        batch,
        preview.tenant,
        how,
        operator,
        reason,
        std::slice::from_ref(&entry),
    )
    .await?;
    Ok(AppliedRedaction {
        batch_id: batch,
        fields: 1,
        matches: matches as u64,
    })
}

// ---------------------------------------------------------------- bulk

/// A free-text column of a table that a detector sweep covers.
struct SweepTable {
    table: String,
    pk: Vec<String>,
    columns: Vec<String>,
}

/// The tenant's free-text columns, by the data map: text columns of
/// category `free_text`, per table, with the table's primary key.
fn sweep_tables(map: &DataMap, catalog: &Catalog) -> Vec<SweepTable> {
    let mut out = Vec::new();
    for t in &map.tables {
        let Some(ct) = catalog.get(&t.name) else {
            continue;
        };
        let columns: Vec<String> = t
            .columns
            .iter()
            .filter(|c| c.category == Category::FreeText)
            .filter(|c| {
                ct.column(&c.name)
                    .is_some_and(|cc| is_text_type(&cc.data_type) && !cc.generated)
            })
            .map(|c| c.name.clone())
            .collect();
        if !columns.is_empty() && !t.primary_key.is_empty() {
            out.push(SweepTable {
                table: t.name.clone(),
                pk: t.primary_key.clone(),
                columns,
            });
        }
    }
    out
}

/// A cheap SQL pre-filter that every value with a match passes (the
/// detector decides).
fn prefilter(d: Detector) -> &'static str {
    match d {
        // 13 digits, single spaces or dashes between groups: the shortest
        // card `detect` accepts.
        Detector::Card => "[0-9]([ -]?[0-9]){12}",
        Detector::Phone => "[0-9]",
        Detector::Iban => "[A-Z][A-Z]",
        Detector::Email => "@",
    }
}

/// One row of a sweep: its ctid (for the update inside the same locked
/// transaction), key and the matching columns' values.
struct SweepRow {
    ctid: String,
    key: serde_json::Value,
    /// (column, value) for columns with at least one match.
    hits: Vec<(String, String, usize)>,
}

async fn sweep<'e, E>(
    exec: E,
    map: &DataMap,
    catalog: &Catalog,
    tenant: Uuid,
    detector: Detector,
    st: &SweepTable,
    lock: bool,
) -> Result<Vec<SweepRow>>
where
    E: sqlx::PgExecutor<'e>,
{
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("SELECT t.ctid::text");
    for k in &st.pk {
        qb.push(", t.");
        qb.push(catalog.column(&st.table, k)?);
        qb.push("::text");
    }
    for c in &st.columns {
        qb.push(", t.");
        qb.push(catalog.column(&st.table, c)?);
    }
    qb.push(" FROM ");
    qb.push(catalog.table(&st.table)?);
    qb.push(" t WHERE ");
    tenant_predicate(&mut qb, map, catalog, &st.table, "t", tenant)?;
    qb.push(" AND (");
    for (i, c) in st.columns.iter().enumerate() {
        if i > 0 {
            qb.push(" OR ");
        }
        qb.push("t.");
        qb.push(catalog.column(&st.table, c)?);
        qb.push(" ~ ");
        qb.push_bind(prefilter(detector));
    }
    qb.push(") ORDER BY ");
    for (i, k) in st.pk.iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        qb.push("t.");
        qb.push(catalog.column(&st.table, k)?);
    }
    if lock {
        qb.push(" FOR UPDATE OF t");
    }
    let rows = qb.build().fetch_all(exec).await?;
    let mut out = Vec::new();
    for row in &rows {
        let mut hits = Vec::new();
        for (i, c) in st.columns.iter().enumerate() {
            let v: Option<String> = row.try_get(1 + st.pk.len() + i)?;
            if let Some(v) = v {
                let n = detect::find(&v, detector).len();
                if n > 0 {
                    hits.push((c.clone(), v, n));
                }
            }
        }
        if hits.is_empty() {
            continue;
        }
        let mut key = serde_json::Map::new();
        for (i, k) in st.pk.iter().enumerate() {
            let v: String = row.try_get(1 + i)?;
            key.insert(k.clone(), serde_json::Value::String(v));
        }
        out.push(SweepRow {
            ctid: row.try_get(0)?,
            key: serde_json::Value::Object(key),
            hits,
        });
    }
    Ok(out)
}

/// Totals per column and a digest of every matching (table, key, column,
/// value), to compare a preview with what apply finds.
fn summarise(
    found: &[(String, Vec<SweepRow>)],
) -> Result<(Vec<ColumnMatches>, u64, u64, [u8; 32])> {
    let mut per: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for (table, rows) in found {
        for r in rows {
            for (col, value, n) in &r.hits {
                let e = per.entry((table.clone(), col.clone())).or_default();
                e.0 += 1;
                e.1 += *n as u64;
                parts.push(table.as_bytes().to_vec());
                parts.push(r.key.to_string().into_bytes());
                parts.push(col.as_bytes().to_vec());
                parts.push(value.as_bytes().to_vec());
            }
        }
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let digest = seen_digest(&refs)?;
    let columns: Vec<ColumnMatches> = per
        .into_iter()
        .map(|((table, column), (rows, matches))| ColumnMatches {
            table,
            column,
            rows,
            matches,
        })
        .collect();
    let fields = columns.iter().map(|c| c.rows).sum();
    let matches = columns.iter().map(|c| c.matches).sum();
    Ok((columns, fields, matches, digest))
}

/// Counts the matches of one detector across the tenant's free-text
/// columns (by the data map). Nothing is changed.
pub async fn preview_detector_redaction(
    pool: &PgPool,
    map: &DataMap,
    catalog: &Catalog,
    tenant: Uuid,
    detector: Detector,
) -> Result<BulkPreview> {
    let mut found = Vec::new();
    for st in sweep_tables(map, catalog) {
        let rows = sweep(pool, map, catalog, tenant, detector, &st, false).await?;
        found.push((st.table, rows));
    }
    let (columns, fields, matches, seen) = summarise(&found)?;
    Ok(BulkPreview {
        tenant,
        detector,
        columns,
        fields,
        matches,
        seen,
    })
}

/// Applies a previewed detector sweep in one transaction: every matching
/// row is locked and re-checked; when anything differs from the preview
/// (a value changed, a match appeared or went) nothing is changed
/// (`Conflict`). Each redacted field is recorded in the console database.
#[allow(clippy::too_many_arguments)]
pub async fn apply_detector_redaction(
    pluto: &PgPool,
    console: &PgPool,
    map: &DataMap,
    catalog: &Catalog,
    key_for_hash: &[u8],
    operator: &str,
    reason: &str,
    preview: &BulkPreview,
) -> Result<AppliedRedaction> {
    check_key(key_for_hash)?;
    check_reason(reason)?;
    if preview.matches == 0 {
        return Err(Error::InvalidInput(
            "the preview found nothing to redact".into(),
        ));
    }
    let (tenant, detector) = (preview.tenant, preview.detector);
    let mut tx = pluto.begin().await?;
    let mut found = Vec::new();
    for st in sweep_tables(map, catalog) {
        let rows = sweep(&mut *tx, map, catalog, tenant, detector, &st, true).await?;
        found.push((st, rows));
    }
    let named: Vec<(String, Vec<SweepRow>)> = found
        .into_iter()
        .map(|(st, rows)| (st.table, rows))
        .collect();
    let (_, fields, matches, seen) = summarise(&named)?;
    if seen != preview.seen || fields != preview.fields || matches != preview.matches {
        return Err(Error::Conflict(
            "the tenant's records changed since the preview: preview again".into(),
        ));
    }
    let mut entries = Vec::new();
    for (table, rows) in &named {
        for r in rows {
            let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("UPDATE ");
            qb.push(catalog.table(table)?);
            qb.push(" t SET ");
            for (i, (col, value, n)) in r.hits.iter().enumerate() {
                if i > 0 {
                    qb.push(", ");
                }
                qb.push(catalog.column(table, col)?);
                qb.push(" = ");
                qb.push_bind(detect::redact(value, detector).0);
                entries.push(Entry {
                    table: table.clone(),
                    row_key: r.key.clone(),
                    column: col.clone(),
                    matches: i32::try_from(*n).unwrap_or(i32::MAX),
                    hmac: keyed_hash(key_for_hash, value.as_bytes())?.to_vec(),
                });
            }
            qb.push(" WHERE t.ctid = ");
            qb.push_bind(r.ctid.clone());
            qb.push("::tid AND ");
            tenant_predicate(&mut qb, map, catalog, table, "t", tenant)?;
            let done = qb.build().execute(&mut *tx).await?;
            if done.rows_affected() != 1 {
                return Err(Error::Conflict(
                    "a record changed during the redaction: nothing was changed".into(),
                ));
            }
        }
    }
    let batch = Uuid::new_v4();
    commit_recorded(
        tx,
        console,
        batch,
        tenant,
        How::Span(detector),
        operator,
        reason,
        &entries,
    )
    .await?;
    Ok(AppliedRedaction {
        batch_id: batch,
        fields,
        matches,
    })
}
