//! Data-subject erasure: discover every row and external object that belongs
//! to a person by walking the data map, turn that into a plan with a
//! canonical JSON and its SHA-256 (an approval is bound to it), and execute
//! it (see [`store`]) in one Pluto transaction. See docs/erasure.md.

pub mod access;
pub mod certificate;
pub mod execute;
pub mod external;
pub mod store;

pub use execute::{
    ExecuteOutcome, ExecuteReport, Executor, Progress, Recovered, erase_in_database,
};
pub use external::{QueueProgress, QueueReport, Systems};
pub use store::{
    ErasureRequest, NewRequest, Regime, approve, check_subject, create_request, get_request,
    list_requests, store_plan,
};

use std::collections::{BTreeMap, BTreeSet};

use futures::TryStreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use crate::core::datamap::{
    Catalog, Category, ColumnErasure, DataMap, RowErasure, SubjectKind, SubjectLink, Table,
};
use crate::core::{Error, Result, detect, mask};

/// The person a request is about: several identifiers may be given.
/// `Debug` prints only the masked reference (actions are logged and signed
/// through their `Debug`; an identifier must never reach an audit entry).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    pub user_ids: Vec<Uuid>,
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Subject({})", self.masked_ref())
    }
}

impl Subject {
    /// E-mails trimmed and lower-cased, phones reduced to their digits,
    /// everything sorted and deduplicated; empty values dropped.
    pub fn normalized(&self) -> Subject {
        let emails: BTreeSet<String> = self
            .emails
            .iter()
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty())
            .collect();
        let phones: BTreeSet<String> = self
            .phones
            .iter()
            .map(|p| digits(p))
            .filter(|p| !p.is_empty())
            .collect();
        let ids: BTreeSet<Uuid> = self.user_ids.iter().copied().collect();
        Subject {
            emails: emails.into_iter().collect(),
            phones: phones.into_iter().collect(),
            user_ids: ids.into_iter().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        let n = self.normalized();
        n.emails.is_empty() && n.phones.is_empty() && n.user_ids.is_empty()
    }

    /// A masked reference, safe to store and show: `j***@e***.com`, or
    /// `phone ••34`, or the first 8 characters of a user id.
    pub fn masked_ref(&self) -> String {
        let n = self.normalized();
        let mut parts: Vec<String> = n.emails.iter().map(|e| mask::email(e)).collect();
        parts.extend(n.phones.iter().map(|p| format!("phone {}", mask::phone(p))));
        parts.extend(
            n.user_ids
                .iter()
                .map(|u| format!("user {}", u.simple().to_string().get(..8).unwrap_or(""))),
        );
        if parts.is_empty() {
            "(no identifier)".into()
        } else {
            parts.join(", ")
        }
    }
}

/// The values subject links are matched against: the users rows' ids, and
/// the e-mails (lower case) and phones (digits) given or learnt.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Terms {
    pub user_ids: Vec<Uuid>,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
}

impl std::fmt::Debug for Terms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Terms({} ids, {} e-mails, {} phones)",
            self.user_ids.len(),
            self.emails.len(),
            self.phones.len()
        )
    }
}

impl Terms {
    fn has(&self, kind: SubjectKind) -> bool {
        match kind {
            SubjectKind::UserId => !self.user_ids.is_empty(),
            SubjectKind::Email => !self.emails.is_empty(),
            SubjectKind::Phone => !self.phones.is_empty(),
        }
    }
}

/// The rows of `t0` (the statement's target, always aliased `t0`) that the
/// links reach: `t0."user_id" = ANY($1)` for a direct link,
/// `EXISTS (SELECT 1 FROM "trips" AS s1 WHERE s1."id" = t0."trip_id" AND
/// s1."user_id" = ANY($1))` through a path, OR-ed; `FALSE` when no link has
/// terms. Index-friendly: the planner turns it into index or semi-join scans.
pub(crate) fn push_selector(
    qb: &mut QueryBuilder<Postgres>,
    catalog: &Catalog,
    t: &Table,
    links: &[SubjectLink],
    terms: &Terms,
) -> Result<()> {
    let mut any = false;
    qb.push("(");
    for link in links.iter().filter(|l| terms.has(l.kind)) {
        if any {
            qb.push(" OR ");
        }
        any = true;
        let alias = if link.path.is_direct() {
            "t0".to_string()
        } else {
            // FROM step1 AS s1 [JOIN step2 AS s2 ON s1.from = s2.to …]
            // WHERE s1.to = t0.from
            qb.push("EXISTS (SELECT 1 FROM ");
            let mut prev = t.name.clone();
            for (i, step) in link.path.via.iter().enumerate() {
                let alias = format!("s{}", i + 1);
                if i > 0 {
                    qb.push(" JOIN ");
                }
                qb.push(catalog.table(&step.table)?.as_str())
                    .push(format!(" AS {alias}"));
                if i > 0 {
                    qb.push(format!(" ON s{i}."))
                        .push(catalog.column(&prev, &step.from_column)?.as_str())
                        .push(format!(" = {alias}."))
                        .push(catalog.column(&step.table, &step.to_column)?.as_str());
                }
                prev = step.table.clone();
            }
            let first = &link.path.via[0];
            qb.push(" WHERE s1.")
                .push(catalog.column(&first.table, &first.to_column)?.as_str())
                .push(" = t0.")
                .push(catalog.column(&t.name, &first.from_column)?.as_str())
                .push(" AND ");
            format!("s{}", link.path.via.len())
        };
        let target = link.path.target_table(&t.name).to_string();
        let col = catalog.column(&target, &link.path.column)?;
        match link.kind {
            SubjectKind::UserId => {
                qb.push(format!("{alias}."))
                    .push(col.as_str())
                    .push(" = ANY(")
                    .push_bind(terms.user_ids.clone())
                    .push(")");
            }
            SubjectKind::Email => {
                qb.push(format!("lower({alias}."))
                    .push(col.as_str())
                    .push(") = ANY(")
                    .push_bind(terms.emails.clone())
                    .push(")");
            }
            SubjectKind::Phone => {
                qb.push(format!("{alias}."))
                    .push(col.as_str())
                    .push("::text = ANY(")
                    .push_bind(terms.phones.clone())
                    .push(")");
            }
        }
        if !link.path.is_direct() {
            qb.push(")");
        }
    }
    if !any {
        qb.push("FALSE");
    }
    qb.push(")");
    Ok(())
}

/// How a key column is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Native {
    I64,
    I32,
    I16,
    Uuid,
    Text,
}

impl Native {
    fn of(data_type: &str) -> Native {
        match data_type {
            "bigint" => Native::I64,
            "integer" => Native::I32,
            "smallint" => Native::I16,
            "uuid" => Native::Uuid,
            _ => Native::Text,
        }
    }

    /// The value as PostgreSQL's `::text` would write it ("" for NULL).
    fn read(self, row: &sqlx::postgres::PgRow, i: usize) -> Result<String> {
        Ok(match self {
            Native::I64 => row.try_get::<Option<i64>, _>(i)?.map(|v| v.to_string()),
            Native::I32 => row.try_get::<Option<i32>, _>(i)?.map(|v| v.to_string()),
            Native::I16 => row.try_get::<Option<i16>, _>(i)?.map(|v| v.to_string()),
            Native::Uuid => row.try_get::<Option<Uuid>, _>(i)?.map(|v| v.to_string()),
            Native::Text => row.try_get::<Option<String>, _>(i)?,
        }
        .unwrap_or_default())
    }
}

/// Only the digits of a value.
pub fn digits(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_digit()).collect()
}

/// What happens to a group of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowAction {
    /// Real deletion.
    Delete,
    /// The row is kept (still referenced by held rows), its personal columns
    /// pseudonymised.
    Pseudonymise,
    /// Kept under a legal hold; personal columns pseudonymised, the rest kept.
    Retain,
    /// Someone else's row whose free text names the subject: the subject's
    /// e-mail, phone or name is replaced by a marker in those columns.
    Redact,
}

impl RowAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RowAction::Delete => "delete",
            RowAction::Pseudonymise => "pseudonymise",
            RowAction::Retain => "retain",
            RowAction::Redact => "redact",
        }
    }
}

/// Which rows a group is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rows {
    /// Each row's primary key values as text, sorted: small groups (the
    /// people table, free-text mentions).
    Keys(Vec<Vec<String>>),
    /// The rows the table's subject links reach, re-selected in SQL whenever
    /// they are needed (in the same snapshot): memory stays flat however
    /// many rows the subject has (e.g. millions of GPS points).
    Linked(Vec<SubjectLink>),
}

/// Rows of one table that get one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFind {
    pub table: String,
    pub action: RowAction,
    pub reason: String,
    /// The primary key columns, in order.
    pub key_columns: Vec<String>,
    pub rows: Rows,
    /// How many rows.
    pub count: u64,
    /// SHA-256 over the rows' primary keys in order (and the columns): binds
    /// the plan to the rows.
    pub keys_sha256: String,
    /// For [`RowAction::Redact`]: the free-text columns that name the subject.
    pub columns: Vec<String>,
}

/// Hashes primary keys as they stream by, in any order: the sum (mod
/// 2^256) of each key's SHA-256, then the count and the columns. The same
/// rows give the same hash however the database returns them, so no sort is
/// needed.
struct KeyHasher {
    acc: [u64; 4],
    n: u64,
}

impl KeyHasher {
    fn new() -> KeyHasher {
        KeyHasher { acc: [0; 4], n: 0 }
    }

    fn add(&mut self, key: &[String]) {
        let mut h = Sha256::new();
        for v in key {
            h.update((v.len() as u64).to_le_bytes());
            h.update(v.as_bytes());
        }
        let d = h.finalize();
        let mut carry = 0u128;
        for (i, limb) in self.acc.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(d.get(i * 8..i * 8 + 8).unwrap_or(&[0; 8]));
            let sum = u128::from(*limb) + u128::from(u64::from_le_bytes(b)) + carry;
            *limb = sum as u64;
            carry = sum >> 64;
        }
        self.n += 1;
    }

    fn finish(self, columns: &[String]) -> (u64, String) {
        let mut h = Sha256::new();
        for limb in self.acc {
            h.update(limb.to_le_bytes());
        }
        h.update(self.n.to_le_bytes());
        for c in columns {
            h.update(c.as_bytes());
            h.update(b"\0");
        }
        (self.n, hex::encode(h.finalize()))
    }
}

impl TableFind {
    /// A group given by its keys (sorted), hashed here.
    fn keyed(
        t: &Table,
        action: RowAction,
        reason: String,
        keys: Vec<Vec<String>>,
        columns: Vec<String>,
    ) -> TableFind {
        let mut h = KeyHasher::new();
        for k in &keys {
            h.add(k);
        }
        let (count, keys_sha256) = h.finish(&columns);
        TableFind {
            table: t.name.clone(),
            action,
            reason,
            key_columns: t.primary_key.clone(),
            rows: Rows::Keys(keys),
            count,
            keys_sha256,
            columns,
        }
    }
}

/// Everything found for a subject. Holds the search terms (and the
/// credentials of external items) in memory only: never stored, never in the
/// plan, never in `Debug`.
#[derive(Clone)]
pub struct Discovery {
    /// What the subject's links are matched against.
    pub terms: Terms,
    pub subject_ref: String,
    /// The users rows the identifiers resolved to.
    pub user_ids: Vec<Uuid>,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    pub names: Vec<String>,
    pub tables: Vec<TableFind>,
    pub external: Vec<ExternalPlan>,
    /// (system, object) -> the credential its removal needs.
    pub credentials: BTreeMap<(String, String), String>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("subject_ref", &self.subject_ref)
            .field("user_ids", &self.user_ids.len())
            .field(
                "tables",
                &self
                    .tables
                    .iter()
                    .map(|t| (t.table.as_str(), t.action, t.count))
                    .collect::<Vec<_>>(),
            )
            .field("external", &self.external)
            .field("credentials", &self.credentials.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TablePlan {
    pub table: String,
    pub action: RowAction,
    pub rows: u64,
    pub reason: String,
    /// For redactions: the columns changed.
    pub columns: Vec<String>,
    /// SHA-256 over the sorted primary keys: binds the plan to the rows.
    pub keys_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExternalPlan {
    pub system: String,
    pub objects: Vec<String>,
}

/// The plan an officer approves. `sha256` is over [`Plan::canonical_json`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub subject_ref: String,
    pub per_table: Vec<TablePlan>,
    pub external: Vec<ExternalPlan>,
    pub sha256: String,
}

#[derive(Serialize)]
struct PlanBody<'a> {
    version: u32,
    subject_ref: &'a str,
    per_table: &'a [TablePlan],
    external: &'a [ExternalPlan],
}

impl Plan {
    /// The canonical JSON (fixed field order, sorted lists, no whitespace),
    /// without the `sha256` field.
    pub fn canonical_json(&self) -> Result<String> {
        serde_json::to_string(&PlanBody {
            version: 1,
            subject_ref: &self.subject_ref,
            per_table: &self.per_table,
            external: &self.external,
        })
        .map_err(|e| Error::InvalidInput(format!("plan cannot be serialised: {e}")))
    }

    /// The full plan (with its hash) as JSON, for storage and export.
    pub fn to_json(&self) -> Result<serde_json::Value> {
        serde_json::to_value(self)
            .map_err(|e| Error::InvalidInput(format!("plan cannot be serialised: {e}")))
    }

    pub fn is_empty(&self) -> bool {
        self.per_table.is_empty() && self.external.is_empty()
    }

    /// What changed between `self` (the approved plan) and `new`, one line
    /// per table group or external system.
    pub fn diff(&self, new: &Plan) -> Vec<String> {
        let key = |t: &TablePlan| (t.table.clone(), t.action);
        let old: BTreeMap<_, _> = self.per_table.iter().map(|t| (key(t), t)).collect();
        let newm: BTreeMap<_, _> = new.per_table.iter().map(|t| (key(t), t)).collect();
        let mut out = Vec::new();
        let all: BTreeSet<_> = old.keys().chain(newm.keys()).cloned().collect();
        for k in all {
            let what = format!("{} ({})", k.0, k.1.as_str());
            match (old.get(&k), newm.get(&k)) {
                (Some(a), Some(b)) if a == b => {}
                (Some(a), Some(b)) if a.rows == b.rows => {
                    out.push(format!("{what}: same count ({}), different rows", a.rows))
                }
                (Some(a), Some(b)) => out.push(format!("{what}: {} -> {} rows", a.rows, b.rows)),
                (Some(a), None) => out.push(format!("{what}: {} -> 0 rows", a.rows)),
                (None, Some(b)) => out.push(format!("{what}: 0 -> {} rows", b.rows)),
                (None, None) => {}
            }
        }
        let ext = |p: &Plan| -> BTreeMap<String, BTreeSet<String>> {
            p.external
                .iter()
                .map(|e| (e.system.clone(), e.objects.iter().cloned().collect()))
                .collect()
        };
        let (eo, en) = (ext(self), ext(new));
        let systems: BTreeSet<_> = eo.keys().chain(en.keys()).cloned().collect();
        let empty = BTreeSet::new();
        for s in systems {
            let a = eo.get(&s).unwrap_or(&empty);
            let b = en.get(&s).unwrap_or(&empty);
            if a != b {
                out.push(format!(
                    "{s}: {} objects -> {} ({} added, {} gone)",
                    a.len(),
                    b.len(),
                    b.difference(a).count(),
                    a.difference(b).count()
                ));
            }
        }
        if out.is_empty() && self.sha256 != new.sha256 {
            out.push("subject reference differs".into());
        }
        out
    }
}

/// Builds the plan (deterministic: tables by name then action, keys and
/// objects sorted) and its SHA-256.
pub fn plan(d: &Discovery) -> Result<Plan> {
    let mut per_table: Vec<TablePlan> = d
        .tables
        .iter()
        .filter(|t| t.count > 0)
        .map(|t| TablePlan {
            table: t.table.clone(),
            action: t.action,
            rows: t.count,
            reason: t.reason.clone(),
            columns: t.columns.clone(),
            keys_sha256: t.keys_sha256.clone(),
        })
        .collect();
    per_table.sort_by(|a, b| (&a.table, a.action).cmp(&(&b.table, b.action)));
    let mut external: Vec<ExternalPlan> = d
        .external
        .iter()
        .filter(|e| !e.objects.is_empty())
        .cloned()
        .collect();
    external.sort_by(|a, b| a.system.cmp(&b.system));
    let mut p = Plan {
        subject_ref: d.subject_ref.clone(),
        per_table,
        external,
        sha256: String::new(),
    };
    p.sha256 = hex::encode(Sha256::digest(p.canonical_json()?.as_bytes()));
    Ok(p)
}

/// The table that holds people: a direct `user_id` subject link on its
/// single-column primary key.
fn people_table(map: &DataMap) -> Result<&Table> {
    map.tables
        .iter()
        .find(|t| {
            t.primary_key.len() == 1
                && t.subjects.iter().any(|s| {
                    s.kind == SubjectKind::UserId
                        && s.path.is_direct()
                        && s.path.column == t.primary_key[0]
                })
        })
        .ok_or_else(|| {
            Error::Config("the data map has no table of people (user_id on its key)".into())
        })
}

fn direct_column(t: &Table, kind: SubjectKind) -> Option<&str> {
    t.subjects
        .iter()
        .find(|s| s.kind == kind && s.path.is_direct())
        .map(|s| s.path.column.as_str())
}

/// `SELECT t0."pk1"::text, ... [, t0."ext"::text ...]`
fn push_select_keys(
    qb: &mut QueryBuilder<Postgres>,
    catalog: &Catalog,
    t: &Table,
    extra: &[String],
) -> Result<()> {
    qb.push("SELECT ");
    let mut first = true;
    for c in t.primary_key.iter().chain(extra.iter()) {
        if !first {
            qb.push(", ");
        }
        first = false;
        qb.push("t0.")
            .push(catalog.column(&t.name, c)?.as_str())
            .push("::text");
    }
    Ok(())
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Replaces the subject's e-mails, phone numbers and names in `text` with
/// `[REDACTED:…]` markers; `None` when nothing of theirs is in it. E-mails and
/// phones are found with [`detect`] and compared to the subject's; names by
/// case-insensitive match.
pub fn redact_terms(
    text: &str,
    emails: &[String],
    phones: &[String],
    names: &[String],
) -> Option<String> {
    let mut spans: Vec<(usize, usize, &str)> = Vec::new();
    for s in detect::find(text, detect::Detector::Email) {
        if let Some(v) = text.get(s.start..s.end)
            && emails.iter().any(|e| *e == v.to_lowercase())
        {
            spans.push((s.start, s.end, "email"));
        }
    }
    for s in detect::find(text, detect::Detector::Phone) {
        if let Some(v) = text.get(s.start..s.end) {
            let d = digits(v);
            if phones.iter().any(|p| phone_matches(p, &d)) {
                spans.push((s.start, s.end, "phone"));
            }
        }
    }
    let lower = text.to_ascii_lowercase();
    for n in names {
        let n = n.to_ascii_lowercase();
        if n.is_empty() {
            continue;
        }
        let mut from = 0;
        while let Some(i) = lower.get(from..).and_then(|rest| rest.find(&n)) {
            spans.push((from + i, from + i + n.len(), "name"));
            from += i + n.len();
        }
    }
    if spans.is_empty() {
        return None;
    }
    spans.sort();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (s, e, what) in spans {
        if s < at {
            continue;
        }
        out.push_str(text.get(at..s).unwrap_or(""));
        out.push_str(&format!("[REDACTED:{what}]"));
        at = e;
    }
    out.push_str(text.get(at..).unwrap_or(""));
    Some(out)
}

/// Two digit strings name the same phone: equal, or one ends with the other
/// and the shorter has at least 10 digits (a country code added or not).
fn phone_matches(a: &str, b: &str) -> bool {
    if a.is_empty() || b.is_empty() {
        return false;
    }
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    short == long || (short.len() >= 10 && long.ends_with(short))
}

/// The primary keys (as text, sorted) of one group of a discovery, read
/// from `pool` for linked groups: for inspection and tests (a linked group
/// may have millions of rows).
pub async fn group_keys(
    pool: &PgPool,
    map: &DataMap,
    catalog: &Catalog,
    d: &Discovery,
    f: &TableFind,
) -> Result<Vec<Vec<String>>> {
    let links = match &f.rows {
        Rows::Keys(k) => return Ok(k.clone()),
        Rows::Linked(l) => l,
    };
    let t = map
        .table(&f.table)
        .ok_or_else(|| Error::NotFound(format!("table `{}` in the data map", f.table)))?;
    let mut qb = QueryBuilder::<Postgres>::new("");
    push_select_keys(&mut qb, catalog, t, &[])?;
    qb.push(" FROM ")
        .push(catalog.table(&t.name)?.as_str())
        .push(" AS t0 WHERE ");
    push_selector(&mut qb, catalog, t, links, &d.terms)?;
    let mut out = Vec::new();
    for row in qb.build().fetch_all(pool).await? {
        let mut key = Vec::with_capacity(t.primary_key.len());
        for i in 0..t.primary_key.len() {
            key.push(row.try_get::<Option<String>, _>(i)?.unwrap_or_default());
        }
        out.push(key);
    }
    out.sort();
    Ok(out)
}

/// Resolves the subject to users rows, then walks the data map to every row
/// that belongs to them, in every tenant, and every external object.
pub async fn discover(
    pool: &PgPool,
    map: &DataMap,
    catalog: &Catalog,
    subject: &Subject,
) -> Result<Discovery> {
    let mut conn = pool.acquire().await?;
    discover_in(&mut conn, map, catalog, subject).await
}

/// [`discover`] on one connection, e.g. inside the transaction that then
/// applies the plan (so that what is applied is what was discovered).
pub async fn discover_in(
    conn: &mut PgConnection,
    map: &DataMap,
    catalog: &Catalog,
    subject: &Subject,
) -> Result<Discovery> {
    let n = subject.normalized();
    let people = people_table(map)?;
    let pk = &people.primary_key[0];
    let email_col = direct_column(people, SubjectKind::Email);
    let phone_col = direct_column(people, SubjectKind::Phone);
    let name_col = people
        .columns
        .iter()
        .find(|c| c.category == Category::Name)
        .map(|c| c.name.as_str());

    // 1. Resolve to users rows; learn their e-mails, phones and names.
    let mut user_ids: BTreeSet<Uuid> = BTreeSet::new();
    let mut emails: BTreeSet<String> = n.emails.iter().cloned().collect();
    let mut phones: BTreeSet<String> = n.phones.iter().cloned().collect();
    let mut names: BTreeSet<String> = BTreeSet::new();
    if !n.is_empty() {
        let mut qb = QueryBuilder::<Postgres>::new("SELECT ");
        qb.push(catalog.column(&people.name, pk)?.as_str());
        for c in [email_col, phone_col, name_col] {
            qb.push(", ");
            match c {
                Some(c) => {
                    qb.push(catalog.column(&people.name, c)?.as_str())
                        .push("::text");
                }
                None => {
                    qb.push("NULL::text");
                }
            }
        }
        qb.push(" FROM ")
            .push(catalog.table(&people.name)?.as_str())
            .push(" WHERE ")
            .push(catalog.column(&people.name, pk)?.as_str())
            .push(" = ANY(")
            .push_bind(n.user_ids.clone())
            .push(")");
        if let Some(c) = email_col {
            qb.push(" OR lower(")
                .push(catalog.column(&people.name, c)?.as_str())
                .push(") = ANY(")
                .push_bind(n.emails.clone())
                .push(")");
        }
        if let Some(c) = phone_col {
            qb.push(" OR ")
                .push(catalog.column(&people.name, c)?.as_str())
                .push(" = ANY(")
                .push_bind(n.phones.clone())
                .push(")");
        }
        for row in qb.build().fetch_all(&mut *conn).await? {
            user_ids.insert(row.try_get::<Uuid, _>(0)?);
            if let Some(e) = row.try_get::<Option<String>, _>(1)? {
                let e = e.trim().to_lowercase();
                if !e.is_empty() {
                    emails.insert(e);
                }
            }
            if let Some(p) = row.try_get::<Option<String>, _>(2)? {
                let p = digits(&p);
                if !p.is_empty() {
                    phones.insert(p);
                }
            }
            if let Some(nm) = row.try_get::<Option<String>, _>(3)? {
                let nm = nm.trim().to_string();
                // Very short names would match unrelated text.
                if nm.chars().count() >= 5 {
                    names.insert(nm);
                }
            }
        }
    }
    let user_ids: Vec<Uuid> = user_ids.into_iter().collect();
    let emails: Vec<String> = emails.into_iter().collect();
    let phones: Vec<String> = phones.into_iter().collect();
    let names: Vec<String> = names.into_iter().collect();

    // 2. Rows linked to the subject, per table. Tables whose rows may be
    //    kept when still referenced (the people table) collect their keys;
    //    every other table streams its rows once (hashing keys, collecting
    //    external objects) and is later re-selected by its links in SQL.
    let terms = Terms {
        user_ids: user_ids.clone(),
        emails: emails.clone(),
        phones: phones.clone(),
    };
    let anything = !(user_ids.is_empty() && emails.is_empty() && phones.is_empty());
    let mut tables: Vec<TableFind> = Vec::new();
    let mut external: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut credentials: BTreeMap<(String, String), String> = BTreeMap::new();
    // Values of direct user_id links of retained tables (keep_if_referenced).
    let mut held_users: BTreeSet<String> = BTreeSet::new();
    // Tables whose keys were collected, with the keys to be deleted.
    let mut deleted_keys: BTreeMap<String, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut keyed: Vec<&Table> = Vec::new();
    for t in &map.tables {
        if matches!(t.erasure, RowErasure::Unlinked) || t.subjects.is_empty() || !anything {
            continue;
        }
        let links: Vec<SubjectLink> = t
            .subjects
            .iter()
            .filter(|l| terms.has(l.kind))
            .cloned()
            .collect();
        if links.is_empty() {
            continue;
        }
        // (column, system, credential column)
        let ext_cols: Vec<(String, String, Option<String>)> = t
            .external_columns()
            .filter_map(|c| {
                let credential = match &c.erasure {
                    ColumnErasure::RevokeItem { credential, .. } => credential.clone(),
                    _ => None,
                };
                c.erasure
                    .system()
                    .map(|s| (c.name.clone(), s.to_string(), credential))
            })
            .collect();
        let mut extra: Vec<String> = ext_cols.iter().map(|(c, _, _)| c.clone()).collect();
        extra.extend(ext_cols.iter().filter_map(|(_, _, k)| k.clone()));
        let keep_if_referenced = matches!(
            t.erasure,
            RowErasure::Delete {
                keep_if_referenced: true
            }
        );
        let nk = t.primary_key.len();
        // Integer and uuid keys come back in binary (millions of rows: no
        // text conversion on the server), written as PostgreSQL's text would.
        let natives: Vec<Native> = t
            .primary_key
            .iter()
            .map(|c| {
                Native::of(
                    catalog
                        .get(&t.name)
                        .and_then(|ct| ct.column(c))
                        .map(|cc| cc.data_type.as_str())
                        .unwrap_or("text"),
                )
            })
            .collect();
        let mut qb = QueryBuilder::<Postgres>::new("SELECT ");
        for (i, c) in t.primary_key.iter().enumerate() {
            if i > 0 {
                qb.push(", ");
            }
            qb.push("t0.").push(catalog.column(&t.name, c)?.as_str());
            if natives.get(i) == Some(&Native::Text) {
                qb.push("::text");
            }
        }
        for c in &extra {
            qb.push(", t0.")
                .push(catalog.column(&t.name, c)?.as_str())
                .push("::text");
        }
        qb.push(" FROM ")
            .push(catalog.table(&t.name)?.as_str())
            .push(" AS t0 WHERE ");
        push_selector(&mut qb, catalog, t, &links, &terms)?;
        let mut hasher = KeyHasher::new();
        let mut keys: Vec<Vec<String>> = Vec::new();
        {
            let mut rows = qb.build().fetch(&mut *conn);
            while let Some(row) = rows.try_next().await? {
                let mut key = Vec::with_capacity(nk);
                for (i, n) in natives.iter().enumerate() {
                    key.push(n.read(&row, i)?);
                }
                let mut cred_at = nk + ext_cols.len();
                for (j, (_, system, cred)) in ext_cols.iter().enumerate() {
                    let secret = match cred {
                        Some(_) => {
                            cred_at += 1;
                            row.try_get::<Option<String>, _>(cred_at - 1)?
                        }
                        None => None,
                    };
                    if let Some(v) = row.try_get::<Option<String>, _>(nk + j)?
                        && !v.is_empty()
                    {
                        if let Some(secret) = secret.filter(|s| !s.is_empty()) {
                            credentials.insert((system.clone(), v.clone()), secret);
                        }
                        external.entry(system.clone()).or_default().insert(v);
                    }
                }
                if keep_if_referenced {
                    keys.push(key);
                } else {
                    hasher.add(&key);
                }
            }
        }
        match &t.erasure {
            RowErasure::Unlinked => {}
            RowErasure::Delete {
                keep_if_referenced: true,
            } => keyed.push(t),
            RowErasure::Delete { .. } => {
                let (count, keys_sha256) = hasher.finish(&[]);
                tables.push(TableFind {
                    table: t.name.clone(),
                    action: RowAction::Delete,
                    reason: "erased".into(),
                    key_columns: t.primary_key.clone(),
                    rows: Rows::Linked(links.clone()),
                    count,
                    keys_sha256,
                    columns: Vec::new(),
                });
            }
            RowErasure::Retain(hold) => {
                let (count, keys_sha256) = hasher.finish(&[]);
                tables.push(TableFind {
                    table: t.name.clone(),
                    action: RowAction::Retain,
                    reason: format!("{} ({} years)", hold.reason, hold.retention_years),
                    key_columns: t.primary_key.clone(),
                    rows: Rows::Linked(links.clone()),
                    count,
                    keys_sha256,
                    columns: Vec::new(),
                });
                // The users these held rows point at directly.
                for link in links
                    .iter()
                    .filter(|l| l.kind == SubjectKind::UserId && l.path.is_direct())
                {
                    let col = catalog.column(&t.name, &link.path.column)?;
                    let mut qb = QueryBuilder::<Postgres>::new("SELECT DISTINCT ");
                    qb.push(col.as_str())
                        .push("::text FROM ")
                        .push(catalog.table(&t.name)?.as_str())
                        .push(" WHERE ")
                        .push(col.as_str())
                        .push(" = ANY(")
                        .push_bind(user_ids.clone())
                        .push(")");
                    for row in qb.build().fetch_all(&mut *conn).await? {
                        if let Some(v) = row.try_get::<Option<String>, _>(0)? {
                            held_users.insert(v);
                        }
                    }
                }
            }
        }
        if keep_if_referenced {
            keys.sort();
            keys.dedup();
            deleted_keys.insert(t.name.clone(), keys.into_iter().collect());
        }
    }

    // The people table: rows still referenced by rows kept under a legal
    // hold stay (pseudonymised); the others go.
    for t in keyed {
        let all = deleted_keys.remove(&t.name).unwrap_or_default();
        let (kept, gone): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|k| k.len() == 1 && held_users.contains(&k[0]));
        deleted_keys.insert(t.name.clone(), gone.iter().cloned().collect());
        tables.push(TableFind::keyed(
            t,
            RowAction::Delete,
            "erased".into(),
            gone,
            Vec::new(),
        ));
        tables.push(TableFind::keyed(
            t,
            RowAction::Pseudonymise,
            "still referenced by rows retained under a legal hold".into(),
            kept,
            Vec::new(),
        ));
    }

    // 3. Free text naming the subject's e-mail, phone or name.
    if !(emails.is_empty() && phones.is_empty() && names.is_empty()) {
        let mut patterns: Vec<String> = emails.iter().map(|e| escape_like(e)).collect();
        patterns.extend(names.iter().map(|n| escape_like(n)));
        let phone_patterns: Vec<String> = phones
            .iter()
            .map(|p| escape_like(p.get(p.len().saturating_sub(10)..).unwrap_or(p)))
            .collect();
        for t in &map.tables {
            let mut mentions: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
            let gone = deleted_keys.get(&t.name);
            // Rows deleted anyway (by their links) are not redacted.
            let linked_delete: Option<Vec<SubjectLink>> =
                tables.iter().find_map(|f| match &f.rows {
                    Rows::Linked(l) if f.table == t.name && f.action == RowAction::Delete => {
                        Some(l.clone())
                    }
                    _ => None,
                });
            for c in t
                .columns
                .iter()
                .filter(|c| c.category == Category::FreeText)
            {
                let col = catalog.column(&t.name, &c.name)?;
                let mut qb = QueryBuilder::<Postgres>::new("");
                push_select_keys(&mut qb, catalog, t, std::slice::from_ref(&c.name))?;
                qb.push(" FROM ")
                    .push(catalog.table(&t.name)?.as_str())
                    .push(" AS t0 WHERE (");
                // Only the clauses there are terms for: the digits of every
                // row are not computed when no phone is searched.
                let mut or = false;
                if !patterns.is_empty() {
                    qb.push("t0.")
                        .push(col.as_str())
                        .push(" ILIKE ANY(")
                        .push_bind(patterns.clone())
                        .push(")");
                    or = true;
                }
                if !phone_patterns.is_empty() {
                    if or {
                        qb.push(" OR ");
                    }
                    qb.push("regexp_replace(t0.")
                        .push(col.as_str())
                        .push(", '[^0-9]', '', 'g') LIKE ANY(")
                        .push_bind(phone_patterns.clone())
                        .push(")");
                }
                qb.push(")");
                if let Some(links) = &linked_delete {
                    qb.push(" AND NOT (");
                    push_selector(&mut qb, catalog, t, links, &terms)?;
                    qb.push(")");
                }
                let nk = t.primary_key.len();
                for row in qb.build().fetch_all(&mut *conn).await? {
                    let mut key = Vec::with_capacity(nk);
                    for i in 0..nk {
                        key.push(row.try_get::<Option<String>, _>(i)?.unwrap_or_default());
                    }
                    if gone.is_some_and(|g| g.contains(&key)) {
                        continue;
                    }
                    let text = row.try_get::<Option<String>, _>(nk)?.unwrap_or_default();
                    if redact_terms(&text, &emails, &phones, &names).is_some() {
                        mentions.entry(key).or_default().insert(c.name.clone());
                    }
                }
            }
            if !mentions.is_empty() {
                let columns: BTreeSet<String> = mentions.values().flatten().cloned().collect();
                tables.push(TableFind::keyed(
                    t,
                    RowAction::Redact,
                    "free text names the subject".into(),
                    mentions.into_keys().collect(),
                    columns.into_iter().collect(),
                ));
            }
        }
    }
    tables.retain(|t| t.count > 0);
    tables.sort_by(|a, b| (&a.table, a.action).cmp(&(&b.table, b.action)));

    Ok(Discovery {
        terms,
        subject_ref: subject.masked_ref(),
        user_ids,
        emails,
        phones,
        names,
        tables,
        external: external
            .into_iter()
            .map(|(system, objects)| ExternalPlan {
                system,
                objects: objects.into_iter().collect(),
            })
            .collect(),
        credentials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_a_subject_never_shows_an_identifier() {
        let s = Subject {
            emails: vec!["Jane.Doe@Example.com".into()],
            phones: vec!["+1 555-010-1234".into()],
            user_ids: vec![Uuid::nil()],
        };
        let d = format!("{s:?}");
        for leak in [
            "jane.doe",
            "Jane.Doe",
            "example.com",
            "5550101234",
            "555-010",
        ] {
            assert!(!d.contains(leak), "{d}");
        }
        assert!(d.starts_with("Subject("), "{d}");
    }

    #[test]
    fn redacts_only_the_subjects_values() {
        let emails = vec!["q.erasmus@example.test".to_string()];
        let phones = vec!["19995550987".to_string()];
        let names = vec!["Quentin Erasmus".to_string()];
        let t = "mail Q.Erasmus@example.test or other@example.test, call +1 999-555-0987 \
                 or 415-555-0134; quentin erasmus said";
        let out = redact_terms(t, &emails, &phones, &names).unwrap_or_default();
        assert_eq!(
            out,
            "mail [REDACTED:email] or other@example.test, call [REDACTED:phone] \
             or 415-555-0134; [REDACTED:name] said"
        );
        assert_eq!(redact_terms("nothing here", &emails, &phones, &names), None);
    }

    fn table(name: &str, action: RowAction, rows: u64, keys: &str) -> TablePlan {
        TablePlan {
            table: name.into(),
            action,
            rows,
            reason: "r".into(),
            columns: vec![],
            keys_sha256: keys.into(),
        }
    }

    fn plan_of(
        subject_ref: &str,
        per_table: Vec<TablePlan>,
        external: Vec<(&str, &[&str])>,
    ) -> Plan {
        let mut p = Plan {
            subject_ref: subject_ref.into(),
            per_table,
            external: external
                .into_iter()
                .map(|(system, objects)| ExternalPlan {
                    system: system.into(),
                    objects: objects.iter().map(|o| o.to_string()).collect(),
                })
                .collect(),
            sha256: String::new(),
        };
        p.sha256 = hex::encode(Sha256::digest(p.canonical_json().unwrap().as_bytes()));
        p
    }

    #[test]
    fn a_plan_diff_names_each_group_and_system_that_changed() {
        let old = plan_of(
            "s",
            vec![
                table("a", RowAction::Delete, 2, "k1"),
                table("b", RowAction::Delete, 3, "k2"),
                table("c", RowAction::Redact, 1, "k3"),
                table("d", RowAction::Retain, 4, "k4"),
            ],
            vec![("receipts", &["x", "y"]), ("plaid", &["i1"])],
        );
        let new = plan_of(
            "s",
            vec![
                table("a", RowAction::Delete, 2, "k1"),
                table("b", RowAction::Delete, 3, "other"),
                table("d", RowAction::Retain, 5, "k5"),
                table("e", RowAction::Pseudonymise, 1, "k6"),
            ],
            vec![("receipts", &["y", "z", "w"]), ("plaid", &["i1"])],
        );
        assert_eq!(
            old.diff(&new),
            vec![
                "b (delete): same count (3), different rows",
                "c (redact): 1 -> 0 rows",
                "d (retain): 4 -> 5 rows",
                "e (pseudonymise): 0 -> 1 rows",
                "receipts: 2 objects -> 3 (2 added, 1 gone)",
            ]
        );
        assert!(old.diff(&old).is_empty());
        // Same groups, another subject reference: still a different plan.
        let other = plan_of(
            "t",
            old.per_table.clone(),
            vec![("receipts", &["x", "y"]), ("plaid", &["i1"])],
        );
        assert_eq!(old.diff(&other), vec!["subject reference differs"]);
        assert!(!old.is_empty());
        assert!(!plan_of("s", vec![], vec![("plaid", &["i1"])]).is_empty());
        assert!(!plan_of("s", vec![table("a", RowAction::Delete, 1, "k")], vec![]).is_empty());
        assert!(plan_of("s", vec![], vec![]).is_empty());
    }

    #[test]
    fn the_key_hash_is_order_free_and_fixed() {
        let keys = [
            vec!["1".to_string()],
            vec!["2".into(), "x".into()],
            vec!["".into()],
        ];
        let mut a = KeyHasher::new();
        let mut b = KeyHasher::new();
        for k in &keys {
            a.add(k);
        }
        for k in keys.iter().rev() {
            b.add(k);
        }
        let cols = ["notes".to_string()];
        let (n, h) = a.finish(&cols);
        assert_eq!((n, h.clone()), b.finish(&cols));
        assert_eq!(n, 3);
        // A stored plan's hash is compared with a fresh one, possibly by a
        // later version of charon: the hash of the same rows must not change.
        // (Computed independently, with Python's hashlib, from the scheme in
        // KeyHasher's doc comment.)
        assert_eq!(
            h,
            "6b94e9e99d1236223aeb517aaefa41c8d1e5d49e38222a00fb4215c7f69fb290"
        );
        // Keys are length-prefixed: ["ab"] and ["a", "b"] differ.
        let mut c = KeyHasher::new();
        c.add(&["ab".to_string()]);
        let mut d = KeyHasher::new();
        d.add(&["a".to_string(), "b".to_string()]);
        assert_ne!(c.finish(&[]), d.finish(&[]));
    }

    #[test]
    fn phones_match_with_or_without_a_country_code() {
        assert!(phone_matches("4155550134", "14155550134"));
        assert!(phone_matches("14155550134", "4155550134"));
        assert!(phone_matches("5550134", "5550134"));
        // Fewer than 10 digits: only an exact match.
        assert!(!phone_matches("5550134", "15550134"));
        assert!(!phone_matches("", ""));
        assert!(!phone_matches("", "4155550134"));
        assert!(!phone_matches("4155550134", "4155550135"));
    }

    #[test]
    fn subject_is_empty_only_without_any_identifier() {
        let none = Subject {
            emails: vec!["  ".into()],
            phones: vec!["-".into()],
            user_ids: vec![],
        };
        assert!(none.is_empty());
        for s in [
            Subject {
                emails: vec!["a@b.c".into()],
                ..none.clone()
            },
            Subject {
                phones: vec!["+1 555".into()],
                ..none.clone()
            },
            Subject {
                user_ids: vec![Uuid::nil()],
                ..none.clone()
            },
        ] {
            assert!(!s.is_empty(), "{s:?}");
        }
    }

    #[test]
    fn subject_normalises_and_masks() {
        let s = Subject {
            emails: vec![" Jane@Example.com ".into(), "jane@example.com".into()],
            phones: vec!["+1 (415) 555-0134".into()],
            user_ids: vec![],
        };
        let n = s.normalized();
        assert_eq!(n.emails, vec!["jane@example.com"]);
        assert_eq!(n.phones, vec!["14155550134"]);
        assert!(!s.masked_ref().contains("jane@"));
    }
}
