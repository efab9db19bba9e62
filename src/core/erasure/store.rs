//! Erasure requests in the console database (migrations/console/0005) and
//! the execution of an approved plan against the Pluto database.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row, Transaction};
use uuid::Uuid;

use super::{Discovery, Plan, RowAction, Subject, TableFind, discover_in, plan, redact_terms};
use crate::core::datamap::{Catalog, ColumnErasure, DataMap, is_text_type};
use crate::core::{Error, Result};

/// The legal regime, which sets the due date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regime {
    /// 30 days.
    Gdpr,
    /// 45 days.
    Ccpa,
    Custom {
        due_at: DateTime<Utc>,
    },
}

impl Regime {
    pub fn name(&self) -> &'static str {
        match self {
            Regime::Gdpr => "gdpr",
            Regime::Ccpa => "ccpa",
            Regime::Custom { .. } => "custom",
        }
    }

    pub fn due_at(&self, received_at: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Regime::Gdpr => received_at + Duration::days(30),
            Regime::Ccpa => received_at + Duration::days(45),
            Regime::Custom { due_at } => *due_at,
        }
    }
}

pub struct NewRequest<'a> {
    pub subject: &'a Subject,
    pub ticket: String,
    pub regime: Regime,
    pub note: String,
    pub received_at: DateTime<Utc>,
    pub created_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureRequest {
    pub id: Uuid,
    pub subject_ref: String,
    pub ticket: String,
    pub regime: String,
    pub received_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub state: String,
    pub created_by: String,
    pub approved_by: Option<String>,
    pub plan_sha256: Option<String>,
    pub executed_at: Option<DateTime<Utc>>,
    pub failure: Option<String>,
}

fn keyed(key: &[u8], kind: &str, value: &str) -> Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .map_err(|_| Error::Config("erasure hash key cannot be used".into()))?;
    mac.update(kind.as_bytes());
    mac.update(b":");
    mac.update(value.as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// Keyed hashes (HMAC-SHA256) of the subject's normalised identifiers,
/// sorted: what the console database keeps instead of the identifiers.
pub fn subject_hashes(key: &[u8], subject: &Subject) -> Result<Vec<String>> {
    let n = subject.normalized();
    let mut out = BTreeSet::new();
    for e in &n.emails {
        out.insert(keyed(key, "email", e)?);
    }
    for p in &n.phones {
        out.insert(keyed(key, "phone", p)?);
    }
    for u in &n.user_ids {
        out.insert(keyed(key, "user_id", &u.to_string())?);
    }
    Ok(out.into_iter().collect())
}

/// Creates a request in state `draft`.
pub async fn create_request(console: &PgPool, key: &[u8], req: &NewRequest<'_>) -> Result<Uuid> {
    if req.subject.is_empty() {
        return Err(Error::InvalidInput("no subject identifier given".into()));
    }
    if req.ticket.trim().is_empty() {
        return Err(Error::InvalidInput("a ticket reference is required".into()));
    }
    let due = req.regime.due_at(req.received_at);
    if due < req.received_at {
        return Err(Error::InvalidInput(
            "due date before the request was received".into(),
        ));
    }
    let id = Uuid::new_v4();
    let hashes = serde_json::Value::from(subject_hashes(key, req.subject)?);
    sqlx::query(
        "INSERT INTO erasure_requests (id, subject_ref, subject_hashes, ticket, regime, note,
                                       received_at, due_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(req.subject.masked_ref())
    .bind(hashes)
    .bind(req.ticket.trim())
    .bind(req.regime.name())
    .bind(&req.note)
    .bind(req.received_at)
    .bind(due)
    .bind(&req.created_by)
    .execute(console)
    .await?;
    Ok(id)
}

pub async fn get_request(console: &PgPool, id: Uuid) -> Result<ErasureRequest> {
    let row = sqlx::query(
        "SELECT id, subject_ref, ticket, regime, received_at, due_at, state, created_by,
                approved_by, plan_sha256, executed_at, failure
           FROM erasure_requests WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(console)
    .await?
    .ok_or_else(|| Error::NotFound(format!("erasure request {id}")))?;
    Ok(ErasureRequest {
        id: row.try_get(0)?,
        subject_ref: row.try_get(1)?,
        ticket: row.try_get(2)?,
        regime: row.try_get(3)?,
        received_at: row.try_get(4)?,
        due_at: row.try_get(5)?,
        state: row.try_get(6)?,
        created_by: row.try_get(7)?,
        approved_by: row.try_get(8)?,
        plan_sha256: row.try_get(9)?,
        executed_at: row.try_get(10)?,
        failure: row.try_get(11)?,
    })
}

/// Refuses identifiers other than the ones the request was created with
/// (compared by their keyed hashes).
pub async fn check_subject(
    console: &PgPool,
    key: &[u8],
    id: Uuid,
    subject: &Subject,
) -> Result<()> {
    let stored: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT subject_hashes FROM erasure_requests WHERE id = $1")
            .bind(id)
            .fetch_optional(console)
            .await?;
    let Some(stored) = stored else {
        return Err(Error::NotFound(format!("erasure request {id}")));
    };
    if stored != serde_json::Value::from(subject_hashes(key, subject)?) {
        return Err(Error::InvalidInput(
            "these identifiers are not the ones the request was created with".into(),
        ));
    }
    Ok(())
}

/// Stores a plan (state `planned`); any earlier approval is dropped.
pub async fn store_plan(console: &PgPool, id: Uuid, plan: &Plan) -> Result<()> {
    let done = sqlx::query(
        "UPDATE erasure_requests
            SET plan = $2, plan_sha256 = $3, state = 'planned', approved_by = NULL,
                approved_at = NULL
          WHERE id = $1 AND state IN ('draft', 'planned', 'approved', 'failed')",
    )
    .bind(id)
    .bind(plan.to_json()?)
    .bind(&plan.sha256)
    .execute(console)
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        get_request(console, id).await?;
        Err(Error::Conflict(
            "the request is executing or finished: its plan cannot change".into(),
        ))
    }
}

/// Approves the stored plan whose SHA-256 the approver saw. The creator of
/// the request cannot approve it.
pub async fn approve(console: &PgPool, id: Uuid, approver: &str, plan_sha256: &str) -> Result<()> {
    let r = get_request(console, id).await?;
    if r.created_by == approver {
        return Err(Error::Forbidden(
            "the officer who created a request cannot approve it".into(),
        ));
    }
    if r.state != "planned" {
        return Err(Error::Conflict(format!(
            "the request is {}, not planned",
            r.state
        )));
    }
    if r.plan_sha256.as_deref() != Some(plan_sha256) {
        return Err(Error::Conflict(
            "the plan changed since it was shown: review it again".into(),
        ));
    }
    let done = sqlx::query(
        "UPDATE erasure_requests SET state = 'approved', approved_by = $2, approved_at = now()
          WHERE id = $1 AND state = 'planned' AND plan_sha256 = $3",
    )
    .bind(id)
    .bind(approver)
    .bind(plan_sha256)
    .execute(console)
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(Error::Conflict("the request changed meanwhile".into()))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecuteReport {
    pub rows_deleted: u64,
    pub rows_pseudonymised: u64,
    pub rows_redacted: u64,
    pub external_enqueued: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecuteOutcome {
    Done(ExecuteReport),
    /// Data changed since approval: the new plan is stored (state `planned`)
    /// and needs a new approval. Nothing was changed.
    PlanChanged {
        approved_sha256: String,
        new_plan: Plan,
        differences: Vec<String>,
    },
}

/// Executes an approved request. The caller supplies the subject's
/// identifiers again (the console database only holds their keyed hashes,
/// which must match). Re-discovers; refuses when the plan changed; else
/// applies every Pluto change in one transaction, then enqueues external
/// steps and writes the ledger in the console database.
#[allow(clippy::too_many_arguments)]
pub async fn execute(
    pluto_write: &PgPool,
    console: &PgPool,
    map: &DataMap,
    catalog: &Catalog,
    key: &[u8],
    id: Uuid,
    subject: &Subject,
    executor: &str,
) -> Result<ExecuteOutcome> {
    let r = get_request(console, id).await?;
    check_subject(console, key, id, subject).await?;
    if r.state != "approved" {
        return Err(Error::Conflict(format!(
            "the request is {}, not approved",
            r.state
        )));
    }
    let approved = r.plan_sha256.clone().unwrap_or_default();
    let claimed = sqlx::query(
        "UPDATE erasure_requests SET state = 'executing', executed_by = $2
          WHERE id = $1 AND state = 'approved'",
    )
    .bind(id)
    .bind(executor)
    .execute(console)
    .await?;
    if claimed.rows_affected() != 1 {
        return Err(Error::Conflict("the request is already executing".into()));
    }

    let result = run(
        pluto_write,
        console,
        map,
        catalog,
        key,
        id,
        subject,
        &approved,
    )
    .await;
    match result {
        Ok(ExecuteOutcome::PlanChanged {
            approved_sha256,
            new_plan,
            differences,
        }) => {
            sqlx::query(
                "UPDATE erasure_requests
                    SET plan = $2, plan_sha256 = $3, state = 'planned', approved_by = NULL,
                        approved_at = NULL, executed_by = NULL
                  WHERE id = $1",
            )
            .bind(id)
            .bind(new_plan.to_json()?)
            .bind(&new_plan.sha256)
            .execute(console)
            .await?;
            Ok(ExecuteOutcome::PlanChanged {
                approved_sha256,
                new_plan,
                differences,
            })
        }
        Ok(done) => Ok(done),
        Err(e) => {
            // Best effort: the Pluto transaction was rolled back already.
            let _ = sqlx::query(
                "UPDATE erasure_requests SET state = 'failed', failure = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(e.to_string())
            .execute(console)
            .await;
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    pluto_write: &PgPool,
    console: &PgPool,
    map: &DataMap,
    catalog: &Catalog,
    key: &[u8],
    id: Uuid,
    subject: &Subject,
    approved: &str,
) -> Result<ExecuteOutcome> {
    // Discovery and changes in one REPEATABLE READ transaction: what is
    // applied is exactly what was discovered and compared; a concurrent
    // change to those rows makes the transaction fail (nothing applied).
    let mut tx = pluto_write.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await?;
    let d = discover_in(&mut tx, map, catalog, subject).await?;
    let new_plan = plan(&d)?;
    if new_plan.sha256 != approved {
        let old: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT plan FROM erasure_requests WHERE id = $1")
                .bind(id)
                .fetch_one(console)
                .await?;
        let differences = match old.and_then(|v| serde_json::from_value::<StoredPlan>(v).ok()) {
            Some(old) => old.into_plan().diff(&new_plan),
            None => vec!["no stored plan to compare".into()],
        };
        return Ok(ExecuteOutcome::PlanChanged {
            approved_sha256: approved.to_string(),
            new_plan,
            differences,
        });
    }

    let order = delete_order(&mut tx).await?;
    let report = apply(&mut tx, map, catalog, &d, &order).await?;

    // Console side of the same logical step: queue, ledger, state.
    let mut ctx = console.begin().await?;
    let mut enqueued = 0u64;
    for e in &new_plan.external {
        for o in &e.objects {
            enqueued += sqlx::query(
                "INSERT INTO erasure_external_queue (request_id, system, object)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(&e.system)
            .bind(o)
            .execute(&mut *ctx)
            .await?
            .rows_affected();
        }
    }
    let mut hashes: BTreeSet<String> = subject_hashes(key, subject)?.into_iter().collect();
    let learned = Subject {
        emails: d.emails.clone(),
        phones: d.phones.clone(),
        user_ids: d.user_ids.clone(),
    };
    hashes.extend(subject_hashes(key, &learned)?);
    sqlx::query(
        "INSERT INTO erasure_ledger (request_id, user_ids, identifier_hashes, executed_at)
         VALUES ($1, $2, $3, now())",
    )
    .bind(id)
    .bind(&d.user_ids)
    .bind(serde_json::Value::from(
        hashes.into_iter().collect::<Vec<_>>(),
    ))
    .execute(&mut *ctx)
    .await?;
    sqlx::query(
        "UPDATE erasure_requests SET state = 'done', executed_at = now(), failure = NULL
          WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *ctx)
    .await?;
    // Pluto first: if its commit fails, the console transaction is dropped
    // (rolled back) and the request is marked failed by the caller.
    tx.commit().await?;
    ctx.commit().await?;
    Ok(ExecuteOutcome::Done(ExecuteReport {
        external_enqueued: enqueued,
        ..report
    }))
}

/// Erases a subject from a database outside any request: discovery and
/// every change in one transaction, committed or not at all. Used to re-apply
/// the erasure ledger to a restored backup (see `core::restore`).
pub async fn erase_in_database(
    pool: &PgPool,
    map: &DataMap,
    catalog: &Catalog,
    subject: &Subject,
) -> Result<ExecuteReport> {
    let mut tx = pool.begin().await?;
    let d = discover_in(&mut tx, map, catalog, subject).await?;
    let order = delete_order(&mut tx).await?;
    let report = apply(&mut tx, map, catalog, &d, &order).await?;
    tx.commit().await?;
    Ok(report)
}

/// The stored plan JSON read back.
#[derive(serde::Deserialize)]
struct StoredPlan {
    subject_ref: String,
    per_table: Vec<StoredTable>,
    external: Vec<StoredExternal>,
    sha256: String,
}

#[derive(serde::Deserialize)]
struct StoredTable {
    table: String,
    action: String,
    rows: u64,
    reason: String,
    columns: Vec<String>,
    keys_sha256: String,
}

#[derive(serde::Deserialize)]
struct StoredExternal {
    system: String,
    objects: Vec<String>,
}

impl StoredPlan {
    fn into_plan(self) -> Plan {
        Plan {
            subject_ref: self.subject_ref,
            per_table: self
                .per_table
                .into_iter()
                .map(|t| super::TablePlan {
                    table: t.table,
                    action: match t.action.as_str() {
                        "delete" => RowAction::Delete,
                        "pseudonymise" => RowAction::Pseudonymise,
                        "retain" => RowAction::Retain,
                        _ => RowAction::Redact,
                    },
                    rows: t.rows,
                    reason: t.reason,
                    columns: t.columns,
                    keys_sha256: t.keys_sha256,
                })
                .collect(),
            external: self
                .external
                .into_iter()
                .map(|e| super::ExternalPlan {
                    system: e.system,
                    objects: e.objects,
                })
                .collect(),
            sha256: self.sha256,
        }
    }
}

/// Tables in the order their rows can be deleted: every table before the
/// tables its foreign keys point at (children first).
async fn delete_order(conn: &mut PgConnection) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT c.relname::text, p.relname::text
           FROM pg_constraint k
           JOIN pg_class c ON c.oid = k.conrelid
           JOIN pg_class p ON p.oid = k.confrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE k.contype = 'f' AND n.nspname = 'public'",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut all: BTreeSet<String> = BTreeSet::new();
    for r in rows {
        let (c, p): (String, String) = (r.try_get(0)?, r.try_get(1)?);
        all.insert(c.clone());
        all.insert(p.clone());
        if c != p {
            parents.entry(c).or_default().insert(p);
        }
    }
    // Repeatedly take the tables no remaining table points at.
    let mut order = Vec::new();
    let mut left = all;
    while !left.is_empty() {
        let referenced: BTreeSet<&String> = left
            .iter()
            .filter_map(|t| parents.get(t))
            .flatten()
            .filter(|p| left.contains(*p))
            .collect();
        let take: Vec<String> = left
            .iter()
            .filter(|t| !referenced.contains(t))
            .cloned()
            .collect();
        if take.is_empty() {
            // A cycle: the rest in name order; the transaction fails safely
            // if that breaks a constraint.
            order.extend(left.iter().cloned());
            break;
        }
        for t in &take {
            left.remove(t);
        }
        order.extend(take);
    }
    Ok(order)
}

/// A SQL type for casting a text array of key values, from the catalog's
/// data type; only the types keys have.
fn key_type(data_type: &str) -> Result<&'static str> {
    Ok(match data_type {
        "uuid" => "uuid",
        "bigint" => "bigint",
        "integer" => "integer",
        "smallint" => "smallint",
        "text" | "character varying" => "text",
        "date" => "date",
        other => {
            return Err(Error::Config(format!(
                "primary key of type {other} is not supported by erasure"
            )));
        }
    })
}

/// ` WHERE ("k1", "k2") IN (SELECT * FROM unnest($1::text[]::bigint[], ...))`
fn push_key_filter(
    qb: &mut QueryBuilder<Postgres>,
    catalog: &Catalog,
    f: &TableFind,
    keys: &[Vec<String>],
) -> Result<()> {
    let ct = catalog
        .get(&f.table)
        .ok_or_else(|| Error::NotFound(format!("table `{}`", f.table)))?;
    qb.push(" WHERE (");
    for (i, c) in f.key_columns.iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        qb.push(catalog.column(&f.table, c)?.as_str());
    }
    qb.push(") IN (SELECT * FROM unnest(");
    for (i, c) in f.key_columns.iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        let ty = key_type(
            &ct.column(c)
                .ok_or_else(|| Error::NotFound(format!("column `{}.{c}`", f.table)))?
                .data_type,
        )?;
        let values: Vec<String> = keys
            .iter()
            .map(|k| k.get(i).cloned().unwrap_or_default())
            .collect();
        qb.push_bind(values).push(format!("::text[]::{ty}[]"));
    }
    qb.push("))");
    Ok(())
}

/// Keys per statement: bounds the size of one bound array.
const CHUNK: usize = 10_000;

async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    map: &DataMap,
    catalog: &Catalog,
    d: &Discovery,
    order: &[String],
) -> Result<ExecuteReport> {
    let mut report = ExecuteReport::default();

    // 1. Free text naming the subject, in rows that stay.
    for f in d.tables.iter().filter(|f| f.action == RowAction::Redact) {
        let table = catalog.table(&f.table)?;
        for chunk in f.keys.chunks(CHUNK) {
            for col in &f.columns {
                let c = catalog.column(&f.table, col)?;
                let mut qb = QueryBuilder::<Postgres>::new("SELECT ");
                for k in &f.key_columns {
                    qb.push(catalog.column(&f.table, k)?.as_str())
                        .push("::text, ");
                }
                qb.push(c.as_str()).push(" FROM ").push(table.as_str());
                push_key_filter(&mut qb, catalog, f, chunk)?;
                let rows = qb.build().fetch_all(&mut **tx).await?;
                let nk = f.key_columns.len();
                for row in rows {
                    let text: Option<String> = row.try_get(nk)?;
                    let Some(new) =
                        text.and_then(|t| redact_terms(&t, &d.emails, &d.phones, &d.names))
                    else {
                        continue;
                    };
                    let mut key = Vec::with_capacity(nk);
                    for i in 0..nk {
                        key.push(row.try_get::<String, _>(i)?);
                    }
                    let mut up = QueryBuilder::<Postgres>::new("UPDATE ");
                    up.push(table.as_str())
                        .push(" SET ")
                        .push(c.as_str())
                        .push(" = ")
                        .push_bind(new);
                    push_key_filter(&mut up, catalog, f, std::slice::from_ref(&key))?;
                    up.build().execute(&mut **tx).await?;
                }
            }
            report.rows_redacted += chunk.len() as u64;
        }
    }

    // 2. Personal columns of kept rows (held, or still referenced).
    for f in d
        .tables
        .iter()
        .filter(|f| matches!(f.action, RowAction::Retain | RowAction::Pseudonymise))
    {
        let Some(t) = map.table(&f.table) else {
            return Err(Error::NotFound(format!(
                "table `{}` in the data map",
                f.table
            )));
        };
        let ct = catalog
            .get(&f.table)
            .ok_or_else(|| Error::NotFound(format!("table `{}`", f.table)))?;
        let mut sets: Vec<(String, bool)> = Vec::new(); // (column, pseudonym?)
        for c in t.personal_columns() {
            let text = ct
                .column(&c.name)
                .is_some_and(|cc| is_text_type(&cc.data_type));
            match c.erasure {
                ColumnErasure::Pseudonymise if text => sets.push((c.name.clone(), true)),
                ColumnErasure::Pseudonymise | ColumnErasure::Null => {
                    sets.push((c.name.clone(), false))
                }
                _ => {}
            }
        }
        if sets.is_empty() {
            continue;
        }
        for chunk in f.keys.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Postgres>::new("UPDATE ");
            qb.push(catalog.table(&f.table)?.as_str()).push(" SET ");
            for (i, (col, pseudo)) in sets.iter().enumerate() {
                if i > 0 {
                    qb.push(", ");
                }
                qb.push(catalog.column(&f.table, col)?.as_str());
                if *pseudo {
                    qb.push(" = 'erased:' || gen_random_uuid()::text");
                } else {
                    qb.push(" = NULL");
                }
            }
            push_key_filter(&mut qb, catalog, f, chunk)?;
            report.rows_pseudonymised += qb.build().execute(&mut **tx).await?.rows_affected();
        }
    }

    // 3. Deletions, children first.
    let rank: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut deletes: Vec<&TableFind> = d
        .tables
        .iter()
        .filter(|f| f.action == RowAction::Delete)
        .collect();
    deletes.sort_by_key(|f| {
        (
            rank.get(f.table.as_str()).copied().unwrap_or(0),
            f.table.clone(),
        )
    });
    for f in deletes {
        for chunk in f.keys.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Postgres>::new("DELETE FROM ");
            qb.push(catalog.table(&f.table)?.as_str());
            push_key_filter(&mut qb, catalog, f, chunk)?;
            report.rows_deleted += qb.build().execute(&mut **tx).await?.rows_affected();
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_dates_follow_the_regime() {
        let at = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        assert_eq!(Regime::Gdpr.due_at(at) - at, Duration::days(30));
        assert_eq!(Regime::Ccpa.due_at(at) - at, Duration::days(45));
        let due = at + Duration::days(10);
        assert_eq!(Regime::Custom { due_at: due }.due_at(at), due);
    }

    #[test]
    fn subject_hashes_are_keyed_and_normalised() {
        let a = Subject {
            emails: vec!["Jane@Example.com".into()],
            phones: vec!["+1 415-555-0134".into()],
            user_ids: vec![],
        };
        let b = Subject {
            emails: vec!["jane@example.com ".into()],
            phones: vec!["14155550134".into()],
            user_ids: vec![],
        };
        let ha = subject_hashes(b"k1", &a).unwrap_or_default();
        assert_eq!(ha.len(), 2);
        assert_eq!(ha, subject_hashes(b"k1", &b).unwrap_or_default());
        assert_ne!(ha, subject_hashes(b"k2", &a).unwrap_or_default());
        assert!(ha.iter().all(|h| !h.contains("jane")));
    }
}
