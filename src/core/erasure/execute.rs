//! Executing an approved request, crash-safe.
//!
//! 1. A session advisory lock on the console database marks the request as
//!    being executed (it goes with the connection if the process dies).
//! 2. One REPEATABLE READ transaction on Pluto re-discovers, compares the
//!    plan with the approved SHA-256, and applies every change.
//! 3. Before Pluto commits, one console transaction writes the external
//!    queue, the ledger, and the Pluto transaction's id (`pg_current_xact_id`).
//! 4. Pluto commits; the console notes it; the queue runs; the request is
//!    `done` (with its certificate) once no step is left.
//!
//! After a crash anywhere, [`Executor::recover`] asks Pluto
//! (`pg_xact_status`) whether the transaction committed: if it did, the
//! queue carries on; if not, the queue and ledger rows are removed and the
//! request is `approved` again. Pluto is never half erased.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row, Transaction};
use uuid::Uuid;

use super::external::{self, QueueProgress, QueueReport, Systems, credential_aad};
use super::store::{check_subject, get_request, subject_hashes};
use super::{
    Discovery, Plan, RowAction, Rows, Subject, TableFind, discover_in, plan, push_selector,
    redact_terms,
};
use crate::core::datamap::{Catalog, ColumnErasure, DataMap, SubjectLink, is_text_type};
use crate::core::secrets::MasterKey;
use crate::core::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecuteReport {
    pub rows_deleted: u64,
    pub rows_pseudonymised: u64,
    pub rows_redacted: u64,
    pub external_enqueued: u64,
    /// The queue run right after the Pluto commit.
    pub queue: QueueReport,
    /// The request is `done` (no external step left); else it stays
    /// `executing` until `erasure run-queue` finishes it.
    pub complete: bool,
    pub certificate_sha256: Option<String>,
    /// The request had been interrupted; this run resumed it.
    pub resumed: bool,
    /// Access requests: the archive written.
    pub export: Option<super::access::AccessExport>,
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

/// Where an execution is, for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Phase(&'static str),
    Table {
        table: String,
        action: RowAction,
        done: usize,
        total: usize,
    },
    External(QueueProgress),
}

/// What [`Executor::recover`] found for an interrupted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// Pluto had committed: the queue carries on.
    Committed,
    /// Pluto had not committed: nothing was changed; approved again.
    RolledBack,
    /// Another session is executing it right now.
    Running,
}

/// Everything an execution needs.
pub struct Executor<'a> {
    pub pluto: &'a PgPool,
    pub console: &'a PgPool,
    pub map: &'a DataMap,
    pub catalog: &'a Catalog,
    /// The key of the subject identifiers' keyed hashes.
    pub key: &'a [u8],
    /// Seals credentials (Plaid access tokens) in the queue.
    pub seal: &'a MasterKey,
    pub systems: &'a Systems,
    /// Where access requests write their archive.
    pub export_dir: &'a std::path::Path,
}

/// The crash tests' pause points (`CHARON_ERASURE_PAUSE_AT`, see
/// [`crate::core::pause_point`]): `pluto_applied`, `console_committed`,
/// `pluto_committed`, `queue_started`.
async fn pause_point(point: &'static str) {
    crate::core::pause_point("CHARON_ERASURE_PAUSE_AT", point).await;
}

/// A console connection holding the request's advisory lock; detached from
/// the pool, so the lock dies with the connection (and with the process).
struct Lock(PgConnection);

async fn try_lock(console: &PgPool, id: Uuid) -> Result<Option<Lock>> {
    let conn: PoolConnection<Postgres> = console.acquire().await?;
    let mut conn = conn.detach();
    let got: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('charon-erasure:' || $1::text))")
            .bind(id)
            .fetch_one(&mut conn)
            .await?;
    Ok(got.then_some(Lock(conn)))
}

impl Lock {
    async fn release(mut self) {
        let _ = sqlx::query("SELECT pg_advisory_unlock_all()")
            .execute(&mut self.0)
            .await;
        let _ = sqlx::Connection::close(self.0).await;
    }
}

impl Executor<'_> {
    /// Executes an approved request, or resumes one left `executing` by a
    /// crash. The caller supplies the subject's identifiers again (the
    /// console database holds only their keyed hashes, which must match).
    pub async fn execute(
        &self,
        id: Uuid,
        subject: &Subject,
        executor: &str,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<ExecuteOutcome> {
        check_subject(self.console, self.key, id, subject).await?;
        let Some(lock) = try_lock(self.console, id).await? else {
            return Err(Error::Conflict(
                "another session is executing this request right now".into(),
            ));
        };
        let out = self.execute_locked(id, subject, executor, progress).await;
        lock.release().await;
        out
    }

    async fn execute_locked(
        &self,
        id: Uuid,
        subject: &Subject,
        executor: &str,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<ExecuteOutcome> {
        let mut r = get_request(self.console, id).await?;
        let mut resumed = false;
        if r.state == "executing" {
            resumed = true;
            self.recover_locked(id).await?;
            r = get_request(self.console, id).await?;
        }
        let mut report = ExecuteReport {
            resumed,
            ..ExecuteReport::default()
        };
        match r.state.as_str() {
            "approved" => {
                let approved = r.plan_sha256.clone().unwrap_or_default();
                let claimed = sqlx::query(
                    "UPDATE erasure_requests
                        SET state = 'executing', executed_by = $2, failure = NULL
                      WHERE id = $1 AND state = 'approved'",
                )
                .bind(id)
                .bind(executor)
                .execute(self.console)
                .await?;
                if claimed.rows_affected() != 1 {
                    return Err(Error::Conflict("the request changed meanwhile".into()));
                }
                let run = if r.kind == "access" {
                    self.run_access(id, subject, &approved, progress).await
                } else {
                    self.run_pluto(id, subject, &approved, progress).await
                };
                match run {
                    Ok(ExecuteOutcome::Done(r)) => report = ExecuteReport { resumed, ..r },
                    Ok(ExecuteOutcome::PlanChanged {
                        approved_sha256,
                        new_plan,
                        differences,
                    }) => {
                        sqlx::query(
                            "UPDATE erasure_requests
                                SET plan = $2, plan_sha256 = $3, state = 'planned',
                                    approved_by = NULL, approved_at = NULL, executed_by = NULL
                              WHERE id = $1",
                        )
                        .bind(id)
                        .bind(new_plan.to_json()?)
                        .bind(&new_plan.sha256)
                        .execute(self.console)
                        .await?;
                        return Ok(ExecuteOutcome::PlanChanged {
                            approved_sha256,
                            new_plan,
                            differences,
                        });
                    }
                    Err(e) => {
                        // Nothing was committed on Pluto (its transaction is
                        // gone): failed, with the reason; plan and approve
                        // again once the cause is fixed.
                        let _ = sqlx::query(
                            "UPDATE erasure_requests
                                SET state = 'failed', failure = $2
                              WHERE id = $1 AND state = 'executing' AND pluto_committed_at IS NULL",
                        )
                        .bind(id)
                        .bind(e.to_string())
                        .execute(self.console)
                        .await;
                        return Err(e);
                    }
                }
            }
            "executing" => {} // committed before the crash: finish the queue
            "done" => {
                return Err(Error::Conflict(
                    "the request is done already (see its certificate)".into(),
                ));
            }
            other => {
                return Err(Error::Conflict(format!(
                    "the request is {other}, not approved"
                )));
            }
        }
        progress(Progress::Phase("external steps"));
        pause_point("queue_started").await;
        let mut forward = |q: QueueProgress| progress(Progress::External(q));
        report.queue = external::run_queue(
            self.console,
            self.systems,
            self.seal,
            Some(id),
            &mut forward,
        )
        .await?;
        report.certificate_sha256 =
            super::certificate::finish_if_complete(self.console, id).await?;
        report.complete = report.certificate_sha256.is_some();
        Ok(ExecuteOutcome::Done(report))
    }

    /// Settles every request left `executing` by a crash (see the module
    /// documentation), skipping those another session holds.
    pub async fn recover(&self) -> Result<Vec<(Uuid, Recovered)>> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM erasure_requests
              WHERE state = 'executing' AND pluto_committed_at IS NULL ORDER BY id",
        )
        .fetch_all(self.console)
        .await?;
        let mut out = Vec::new();
        for id in ids {
            match try_lock(self.console, id).await? {
                None => out.push((id, Recovered::Running)),
                Some(lock) => {
                    let r = self.recover_locked(id).await;
                    lock.release().await;
                    out.push((id, r?));
                }
            }
        }
        Ok(out)
    }

    /// Runs the external queue of every request (or one), after settling
    /// interrupted ones; finishes the requests whose queue is empty.
    pub async fn run_queue(
        &self,
        request: Option<Uuid>,
        progress: &mut (dyn FnMut(QueueProgress) + Send),
    ) -> Result<(Vec<(Uuid, Recovered)>, QueueReport, Vec<Uuid>)> {
        let recovered = self.recover().await?;
        let report =
            external::run_queue(self.console, self.systems, self.seal, request, progress).await?;
        let open: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM erasure_requests
              WHERE state = 'executing' AND pluto_committed_at IS NOT NULL
                AND ($1::uuid IS NULL OR id = $1) ORDER BY id",
        )
        .bind(request)
        .fetch_all(self.console)
        .await?;
        let mut finished = Vec::new();
        for id in open {
            if super::certificate::finish_if_complete(self.console, id)
                .await?
                .is_some()
            {
                finished.push(id);
            }
        }
        Ok((recovered, report, finished))
    }

    /// With the request's lock held: settle an interrupted execution.
    async fn recover_locked(&self, id: Uuid) -> Result<Recovered> {
        let row = sqlx::query(
            "SELECT state, pluto_xid, pluto_committed_at IS NOT NULL
               FROM erasure_requests WHERE id = $1",
        )
        .bind(id)
        .fetch_one(self.console)
        .await?;
        let state: String = row.try_get(0)?;
        let xid: Option<String> = row.try_get(1)?;
        let noted: bool = row.try_get(2)?;
        if state != "executing" || noted {
            return Ok(Recovered::Committed);
        }
        let status: Option<String> = match &xid {
            None => None,
            Some(x) => {
                sqlx::query_scalar("SELECT pg_xact_status($1::text::xid8)::text")
                    .bind(x)
                    .fetch_one(self.pluto)
                    .await?
            }
        };
        match status.as_deref() {
            Some("committed") => {
                sqlx::query(
                    "UPDATE erasure_requests
                        SET pluto_committed_at = now(), executed_at = coalesce(executed_at, now())
                      WHERE id = $1",
                )
                .bind(id)
                .execute(self.console)
                .await?;
                Ok(Recovered::Committed)
            }
            Some("in progress") => Ok(Recovered::Running),
            // Never written, aborted, or too old to know (then it cannot be
            // in progress, and a commit would have been noted long ago).
            _ => {
                let mut tx = self.console.begin().await?;
                sqlx::query("DELETE FROM erasure_external_queue WHERE request_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM erasure_ledger WHERE request_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE erasure_requests
                        SET state = 'approved', executed_by = NULL, pluto_xid = NULL,
                            result = NULL,
                            failure = 'interrupted before the Pluto commit: nothing was changed'
                      WHERE id = $1",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Recovered::RolledBack)
            }
        }
    }

    /// The outcome when re-discovery found a plan other than the approved
    /// one: the differences from the stored plan.
    async fn plan_changed(
        &self,
        id: Uuid,
        approved: &str,
        new_plan: Plan,
    ) -> Result<ExecuteOutcome> {
        let old: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT plan FROM erasure_requests WHERE id = $1")
                .bind(id)
                .fetch_one(self.console)
                .await?;
        let differences = match old.and_then(|v| serde_json::from_value::<StoredPlan>(v).ok()) {
            Some(old) => old.into_plan().diff(&new_plan),
            None => vec!["no stored plan to compare".into()],
        };
        Ok(ExecuteOutcome::PlanChanged {
            approved_sha256: approved.to_string(),
            new_plan,
            differences,
        })
    }

    /// An access request: re-discover (the plan must still be the approved
    /// one), export everything found into one archive; nothing is changed.
    async fn run_access(
        &self,
        id: Uuid,
        subject: &Subject,
        approved: &str,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<ExecuteOutcome> {
        progress(Progress::Phase("discovery"));
        let d = super::discover(self.pluto, self.map, self.catalog, subject).await?;
        let new_plan = plan(&d)?;
        if new_plan.sha256 != approved {
            return self.plan_changed(id, approved, new_plan).await;
        }
        progress(Progress::Phase("export"));
        let x = super::access::export(
            self.pluto,
            self.map,
            self.catalog,
            subject,
            id,
            self.export_dir,
        )
        .await?;
        sqlx::query(
            "UPDATE erasure_requests
                SET result = $2, pluto_committed_at = now(), executed_at = now()
              WHERE id = $1",
        )
        .bind(id)
        .bind(serde_json::json!({
            "archive": x.path.display().to_string(),
            "archive_sha256": x.sha256,
            "archive_bytes": x.bytes,
            "rows_exported": x.tables.values().sum::<u64>(),
            "mentions_in_other_records_not_exported": x.mentions_not_exported,
            "external_objects_listed": x.external_objects,
        }))
        .execute(self.console)
        .await?;
        Ok(ExecuteOutcome::Done(ExecuteReport {
            export: Some(x),
            ..ExecuteReport::default()
        }))
    }

    async fn run_pluto(
        &self,
        id: Uuid,
        subject: &Subject,
        approved: &str,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<ExecuteOutcome> {
        // Discovery and changes in one REPEATABLE READ transaction: what is
        // applied is exactly what was discovered and compared; a concurrent
        // change to those rows makes the transaction fail (nothing applied).
        progress(Progress::Phase("discovery"));
        let mut tx = self.pluto.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await?;
        let d = discover_in(&mut tx, self.map, self.catalog, subject).await?;
        let new_plan = plan(&d)?;
        if new_plan.sha256 != approved {
            return self.plan_changed(id, approved, new_plan).await;
        }

        let order = delete_order(&mut tx).await?;
        let report = apply(&mut tx, self.map, self.catalog, &d, &order, progress).await?;
        let xid: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
            .fetch_one(&mut *tx)
            .await?;
        pause_point("pluto_applied").await;

        // Console side of the same logical step: queue, ledger, the Pluto
        // transaction's id; committed before Pluto commits.
        progress(Progress::Phase("queue and ledger"));
        let mut ctx = self.console.begin().await?;
        let mut enqueued = 0u64;
        for e in &new_plan.external {
            for o in &e.objects {
                let sealed = match d.credentials.get(&(e.system.clone(), o.clone())) {
                    Some(secret) => Some(
                        self.seal
                            .seal(secret.as_bytes(), &credential_aad(id, &e.system, o))
                            .map_err(|_| Error::Config("cannot seal a credential".into()))?,
                    ),
                    None => None,
                };
                enqueued += sqlx::query(
                    "INSERT INTO erasure_external_queue (request_id, system, object, payload)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(id)
                .bind(&e.system)
                .bind(o)
                .bind(sealed)
                .execute(&mut *ctx)
                .await?
                .rows_affected();
            }
        }
        let mut hashes: BTreeSet<String> = subject_hashes(self.key, subject)?.into_iter().collect();
        let learned = Subject {
            emails: d.emails.clone(),
            phones: d.phones.clone(),
            user_ids: d.user_ids.clone(),
        };
        hashes.extend(subject_hashes(self.key, &learned)?);
        sqlx::query(
            "INSERT INTO erasure_ledger (request_id, user_ids, identifier_hashes, executed_at)
             VALUES ($1, $2, $3, now())
             ON CONFLICT (request_id) DO UPDATE
                SET user_ids = EXCLUDED.user_ids, identifier_hashes = EXCLUDED.identifier_hashes,
                    executed_at = EXCLUDED.executed_at",
        )
        .bind(id)
        .bind(&d.user_ids)
        .bind(serde_json::Value::from(
            hashes.into_iter().collect::<Vec<_>>(),
        ))
        .execute(&mut *ctx)
        .await?;
        let report = ExecuteReport {
            external_enqueued: enqueued,
            ..report
        };
        sqlx::query("UPDATE erasure_requests SET pluto_xid = $2, result = $3 WHERE id = $1")
            .bind(id)
            .bind(&xid)
            .bind(serde_json::json!({
                "rows_deleted": report.rows_deleted,
                "rows_pseudonymised": report.rows_pseudonymised,
                "rows_redacted": report.rows_redacted,
                "external_enqueued": report.external_enqueued,
            }))
            .execute(&mut *ctx)
            .await?;
        ctx.commit().await?;
        pause_point("console_committed").await;

        progress(Progress::Phase("commit"));
        tx.commit().await?;
        pause_point("pluto_committed").await;
        sqlx::query(
            "UPDATE erasure_requests SET pluto_committed_at = now(), executed_at = now()
              WHERE id = $1",
        )
        .bind(id)
        .execute(self.console)
        .await?;
        Ok(ExecuteOutcome::Done(report))
    }
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
    let report = apply(&mut tx, map, catalog, &d, &order, &mut |_| {}).await?;
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
/// tables its foreign keys point at (children first). Public for its tests.
pub async fn delete_order(conn: &mut PgConnection) -> Result<Vec<String>> {
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
pub(super) fn push_key_filter(
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
pub(super) const CHUNK: usize = 10_000;

async fn apply(
    tx: &mut Transaction<'static, Postgres>,
    map: &DataMap,
    catalog: &Catalog,
    d: &Discovery,
    order: &[String],
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<ExecuteReport> {
    let mut report = ExecuteReport::default();
    let mut tick = |f: &TableFind, done: usize| {
        progress(Progress::Table {
            table: f.table.clone(),
            action: f.action,
            done,
            total: f.count as usize,
        })
    };

    // 1. Free text naming the subject, in rows that stay.
    for f in d.tables.iter().filter(|f| f.action == RowAction::Redact) {
        let table = catalog.table(&f.table)?;
        let Rows::Keys(keys) = &f.rows else {
            return Err(Error::Config(format!(
                "mentions in `{}` are not listed by key",
                f.table
            )));
        };
        for (ci, chunk) in keys.chunks(CHUNK).enumerate() {
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
            tick(f, ci * CHUNK + chunk.len());
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
        let mut done = 0u64;
        for filter in filters(f) {
            let mut qb = QueryBuilder::<Postgres>::new("UPDATE ");
            qb.push(catalog.table(&f.table)?.as_str())
                .push(" AS t0 SET ");
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
            push_filter(&mut qb, map, catalog, d, f, &filter)?;
            done += qb.build().execute(&mut **tx).await?.rows_affected();
            tick(f, done as usize);
        }
        same_rows(f, done)?;
        report.rows_pseudonymised += done;
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
        let mut done = 0u64;
        for filter in filters(f) {
            let mut qb = QueryBuilder::<Postgres>::new("DELETE FROM ");
            qb.push(catalog.table(&f.table)?.as_str()).push(" AS t0");
            push_filter(&mut qb, map, catalog, d, f, &filter)?;
            done += qb.build().execute(&mut **tx).await?.rows_affected();
            tick(f, done as usize);
        }
        same_rows(f, done)?;
        report.rows_deleted += done;
    }
    Ok(report)
}

/// The row filters of a group's statements: chunks of keys, or its links
/// once.
pub(super) enum Filter<'a> {
    Keys(&'a [Vec<String>]),
    Linked(&'a [SubjectLink]),
}

pub(super) fn filters(f: &TableFind) -> Vec<Filter<'_>> {
    match &f.rows {
        Rows::Keys(k) => k.chunks(CHUNK).map(Filter::Keys).collect(),
        Rows::Linked(l) => vec![Filter::Linked(l)],
    }
}

/// ` WHERE …` for one filter.
pub(super) fn push_filter(
    qb: &mut QueryBuilder<Postgres>,
    map: &DataMap,
    catalog: &Catalog,
    d: &Discovery,
    f: &TableFind,
    filter: &Filter<'_>,
) -> Result<()> {
    match filter {
        Filter::Keys(chunk) => push_key_filter(qb, catalog, f, chunk),
        Filter::Linked(links) => {
            let t = map
                .table(&f.table)
                .ok_or_else(|| Error::NotFound(format!("table `{}` in the data map", f.table)))?;
            qb.push(" WHERE ");
            push_selector(qb, catalog, t, links, &d.terms)
        }
    }
}

/// A statement must touch exactly the rows that were planned (the same
/// snapshot); anything else aborts the transaction.
fn same_rows(f: &TableFind, touched: u64) -> Result<()> {
    if touched == f.count {
        Ok(())
    } else {
        Err(Error::Conflict(format!(
            "{} ({}): {touched} rows touched, {} planned; nothing was changed",
            f.table,
            f.action.as_str(),
            f.count
        )))
    }
}
