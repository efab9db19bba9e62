//! Record inspection: the tenant's transactions, receipts, invoices, trips,
//! shifts, payroll entries, members and bank connections, paged with keyset
//! pagination and masked by the data map before anything leaves this module.
//!
//! Rules every query here follows:
//! - it is scoped by the tenant's business id, through the data map's tenant
//!   path of the table ([`tenant_predicate`]);
//! - identifiers come only from the live [`Catalog`] (quoted [`Ident`]s);
//!   every value (tenant, cursor, filter text, dates, amounts) is bound;
//! - values are masked by their column's rule in the data map
//!   ([`Mask::apply`]); a column the map does not classify is hidden.
//!   The only unmasked value this module hands out is [`reveal`]'s, wrapped
//!   in a [`Secret`].
//!
//! Pages are keyset pages: `(sort_col, pk) > (cursor) ORDER BY sort_col, pk
//! LIMIT n`, served by the `(business_id, sort_col, pk)` indexes of
//! `src/pluto/indexes.sql`, so a page costs the same on the first and on the
//! millionth row. The last page is the same query in reverse order, its rows
//! turned back.

mod redact;

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder, Row};
use uuid::Uuid;

pub use redact::{
    AppliedRedaction, BulkPreview, ColumnMatches, How, Preview, apply_detector_redaction,
    apply_redaction, keyed_hash, preview_detector_redaction, preview_redaction,
};

use crate::core::datamap::{Catalog, Category, DataMap, Mask, Table};
use crate::core::mfa::Secret;
use crate::core::{Error, Result};

/// Rows per page when the caller does not say.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page.
pub const MAX_LIMIT: u32 = 500;
/// The longest text filter accepted.
pub const MAX_FILTER_LEN: usize = 200;

// ---------------------------------------------------------------- kinds

/// A tab of the tenant's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Transactions,
    Receipts,
    Invoices,
    Trips,
    Shifts,
    Payroll,
    Members,
    BankConnections,
}

/// How a kind's primary key is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PkType {
    BigInt,
    Uuid,
}

/// Columns of another table shown with each row (a member's user).
struct JoinSpec {
    /// Column of the kind's table ...
    from: &'static str,
    /// ... equal to `table.to`.
    table: &'static str,
    to: &'static str,
    /// Shown as `<prefix><column>`.
    prefix: &'static str,
    columns: &'static [&'static str],
}

/// What the service knows about a kind beyond the data map: which table,
/// which columns sort it, which are shown in a list. Every name here is
/// still looked up in the live catalog before it reaches SQL.
struct Spec {
    table: &'static str,
    /// The column that identifies a row within a tenant.
    pk: &'static str,
    pk_type: PkType,
    /// `timestamptz`, NOT NULL.
    date: &'static str,
    /// An integer column, NOT NULL; `None` when the kind has no amount.
    amount: Option<&'static str>,
    /// Columns of a list row (the pk first).
    list: &'static [&'static str],
    join: Option<JoinSpec>,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Transactions,
        Kind::Receipts,
        Kind::Invoices,
        Kind::Trips,
        Kind::Shifts,
        Kind::Payroll,
        Kind::Members,
        Kind::BankConnections,
    ];

    /// The name used on the command line and in cursors.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Transactions => "transactions",
            Kind::Receipts => "receipts",
            Kind::Invoices => "invoices",
            Kind::Trips => "trips",
            Kind::Shifts => "shifts",
            Kind::Payroll => "payroll",
            Kind::Members => "members",
            Kind::BankConnections => "bank_connections",
        }
    }

    /// The tab title.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Payroll => "payroll entries",
            Kind::BankConnections => "bank connections",
            k => k.name(),
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "payroll_entries" => Some(Kind::Payroll),
            "banks" | "bank_connection" => Some(Kind::BankConnections),
            "member" | "memberships" => Some(Kind::Members),
            other => Kind::ALL.into_iter().find(|k| k.name() == other),
        }
    }

    /// The Pluto table behind the kind.
    pub fn table(self) -> &'static str {
        self.spec().table
    }

    /// The column a record's id is in.
    pub fn pk_column(self) -> &'static str {
        self.spec().pk
    }

    /// True when the kind can be sorted and filtered by amount.
    pub fn has_amount(self) -> bool {
        self.spec().amount.is_some()
    }

    /// Reads a record id of this kind (a number, or a UUID for members and
    /// bank connections).
    pub fn parse_pk(self, s: &str) -> Result<Pk> {
        let s = s.trim();
        match self.spec().pk_type {
            PkType::BigInt => s
                .parse::<i64>()
                .map(Pk::Int)
                .map_err(|_| Error::InvalidInput(format!("a {} id is a number", self.label()))),
            PkType::Uuid => Uuid::parse_str(s)
                .map(Pk::Uuid)
                .map_err(|_| Error::InvalidInput(format!("a {} id is a UUID", self.label()))),
        }
    }

    fn spec(self) -> Spec {
        const USER: JoinSpec = JoinSpec {
            from: "user_id",
            table: "users",
            to: "id",
            prefix: "user.",
            columns: &["full_name", "email", "phone"],
        };
        match self {
            Kind::Transactions => Spec {
                table: "transactions",
                pk: "id",
                pk_type: PkType::BigInt,
                date: "posted_at",
                amount: Some("amount_cents"),
                list: &[
                    "id",
                    "posted_at",
                    "amount_cents",
                    "merchant",
                    "description",
                    "category",
                ],
                join: None,
            },
            Kind::Receipts => Spec {
                table: "receipts",
                pk: "id",
                pk_type: PkType::BigInt,
                date: "created_at",
                amount: Some("amount_cents"),
                list: &[
                    "id",
                    "created_at",
                    "receipt_date",
                    "merchant",
                    "amount_cents",
                    "notes",
                ],
                join: None,
            },
            Kind::Invoices => Spec {
                table: "invoices",
                pk: "id",
                pk_type: PkType::BigInt,
                date: "created_at",
                amount: Some("amount_cents"),
                list: &[
                    "id",
                    "created_at",
                    "number",
                    "customer_name",
                    "customer_email",
                    "amount_cents",
                    "status",
                ],
                join: None,
            },
            Kind::Trips => Spec {
                table: "trips",
                pk: "id",
                pk_type: PkType::BigInt,
                date: "started_at",
                amount: Some("distance_m"),
                list: &[
                    "id",
                    "started_at",
                    "ended_at",
                    "distance_m",
                    "user_id",
                    "purpose",
                ],
                join: None,
            },
            Kind::Shifts => Spec {
                table: "shifts",
                pk: "id",
                pk_type: PkType::BigInt,
                date: "starts_at",
                amount: None,
                list: &["id", "starts_at", "ends_at", "user_id", "notes"],
                join: None,
            },
            Kind::Payroll => Spec {
                table: "payroll_entries",
                pk: "id",
                pk_type: PkType::BigInt,
                date: "paid_at",
                amount: Some("gross_cents"),
                list: &[
                    "id",
                    "paid_at",
                    "period_start",
                    "period_end",
                    "gross_cents",
                    "net_cents",
                    "user_id",
                ],
                join: None,
            },
            Kind::Members => Spec {
                table: "memberships",
                pk: "user_id",
                pk_type: PkType::Uuid,
                date: "created_at",
                amount: None,
                list: &["user_id", "role", "created_at"],
                join: Some(USER),
            },
            Kind::BankConnections => Spec {
                table: "bank_connections",
                pk: "id",
                pk_type: PkType::Uuid,
                date: "created_at",
                amount: None,
                list: &["id", "created_at", "institution", "status", "created_by"],
                join: None,
            },
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A record's id within its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum Pk {
    Int(i64),
    Uuid(Uuid),
}

impl fmt::Display for Pk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pk::Int(i) => write!(f, "{i}"),
            Pk::Uuid(u) => write!(f, "{u}"),
        }
    }
}

impl Pk {
    fn push_bind(&self, qb: &mut QueryBuilder<Postgres>) {
        match *self {
            Pk::Int(i) => qb.push_bind(i),
            Pk::Uuid(u) => qb.push_bind(u),
        };
    }
}

// ---------------------------------------------------------------- queries

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    #[default]
    Date,
    Amount,
}

impl SortBy {
    fn name(self) -> &'static str {
        match self {
            SortBy::Date => "date",
            SortBy::Amount => "amount",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dir {
    #[default]
    Asc,
    Desc,
}

impl Dir {
    fn name(self) -> &'static str {
        match self {
            Dir::Asc => "asc",
            Dir::Desc => "desc",
        }
    }
}

/// Narrowing a list. Every bound is inclusive; all may be combined.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Substring (case-insensitive, `%` `_` `\` literal) of any text column
    /// that is not personal or is free text. Personal columns (names,
    /// e-mails, ...) are not searchable: a filter must not reveal what a
    /// mask hides.
    pub text: Option<String>,
    /// On the kind's date column, from 00:00 UTC of `date_from` ...
    pub date_from: Option<NaiveDate>,
    /// ... up to the end (24:00 UTC) of `date_to`.
    pub date_to: Option<NaiveDate>,
    /// On the amount column, in its unit (cents; metres for trips).
    pub amount_min: Option<i64>,
    pub amount_max: Option<i64>,
}

/// Where a page starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum At {
    #[default]
    First,
    /// The rows after this cursor (a page's `next`).
    After(Cursor),
    /// The rows before this cursor (a page's `prev`).
    Before(Cursor),
    Last,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub sort: SortBy,
    pub dir: Dir,
    pub filter: Filter,
    pub at: At,
    /// Rows per page: [`DEFAULT_LIMIT`] when 0, at most [`MAX_LIMIT`].
    pub limit: u32,
}

/// The sort key of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Date(DateTime<Utc>),
    Amount(i64),
}

/// A position between two rows of one kind, sort and direction. Shown as
/// an opaque token (`transactions:date:asc:1700000000000000:42`) that
/// [`Cursor::parse`] reads back; it holds a sort value and a record id,
/// never a personal value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    kind: Kind,
    sort: SortBy,
    dir: Dir,
    key: Key,
    pk: Pk,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = match self.key {
            Key::Date(d) => d.timestamp_micros(),
            Key::Amount(a) => a,
        };
        write!(
            f,
            "{}:{}:{}:{}:{}",
            self.kind.name(),
            self.sort.name(),
            self.dir.name(),
            key,
            self.pk
        )
    }
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Cursor {
    pub fn parse(token: &str) -> Result<Cursor> {
        let bad = || Error::InvalidInput("not a page cursor of charon".to_string());
        let parts: Vec<&str> = token.trim().split(':').collect();
        let [kind, sort, dir, key, pk] = parts.as_slice() else {
            return Err(bad());
        };
        let kind = Kind::ALL
            .into_iter()
            .find(|k| k.name() == *kind)
            .ok_or_else(bad)?;
        let sort = match *sort {
            "date" => SortBy::Date,
            "amount" => SortBy::Amount,
            _ => return Err(bad()),
        };
        let dir = match *dir {
            "asc" => Dir::Asc,
            "desc" => Dir::Desc,
            _ => return Err(bad()),
        };
        let n: i64 = key.parse().map_err(|_| bad())?;
        let key = match sort {
            SortBy::Date => Key::Date(DateTime::from_timestamp_micros(n).ok_or_else(bad)?),
            SortBy::Amount => Key::Amount(n),
        };
        let pk = kind.parse_pk(pk).map_err(|_| bad())?;
        Ok(Cursor {
            kind,
            sort,
            dir,
            key,
            pk,
        })
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }
}

// ---------------------------------------------------------------- results

/// One field of a record, as it may be shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    /// The column name (`user.email` for a member's user's columns).
    pub name: String,
    /// The value under its mask (NULL is `None`). Not yet sanitised for a
    /// terminal: front ends pass it through `sanitize`.
    pub value: Option<String>,
    /// True when the data map classifies the column as personal (or does
    /// not classify it at all: then the value is hidden).
    pub personal: bool,
    /// The data map category (`contact.email`, `free_text`, `none`), or
    /// `unclassified`.
    pub category: &'static str,
    /// The mask applied (`none` for values shown as stored).
    pub mask: &'static str,
}

/// A record with every value masked by the data map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaskedRecord {
    pub kind: Kind,
    pub id: Pk,
    pub fields: Vec<Field>,
}

impl MaskedRecord {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The field's shown value, `""` for NULL or a missing field.
    pub fn value(&self, name: &str) -> &str {
        self.field(name)
            .and_then(|f| f.value.as_deref())
            .unwrap_or("")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    pub kind: Kind,
    pub rows: Vec<MaskedRecord>,
    /// The cursor for `At::After` (more rows follow); `None` at the end.
    pub next: Option<Cursor>,
    /// The cursor for `At::Before` (rows precede); `None` at the start.
    pub prev: Option<Cursor>,
}

/// One revealed value, unmasked. The caller audits the reveal (naming the
/// field, never the value) and shows it for a limited time.
#[derive(Debug)]
pub struct Revealed {
    pub kind: Kind,
    pub id: Pk,
    pub field: String,
    pub category: &'static str,
    pub value: Secret<Option<String>>,
}

/// A trip's route at the masked precision (about 1 km).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    pub trip_id: i64,
    /// `(lat, lon)` under the data map's mask, consecutive duplicates
    /// removed; empty when the map hides the coordinates.
    pub points: Vec<(f64, f64)>,
    pub distance_m: i64,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    /// Seconds from start to end.
    pub duration_s: i64,
}

// ---------------------------------------------------------------- SQL helpers

/// One column of a SELECT: where it is, and how it is shown.
struct Col {
    /// Field name.
    name: String,
    /// `t."col"` / `j."col"`.
    sql: String,
    mask: Mask,
    personal: bool,
    category: &'static str,
}

fn map_table<'m>(map: &'m DataMap, table: &str) -> Result<&'m Table> {
    map.table(table)
        .ok_or_else(|| Error::Config(format!("the data map does not describe table `{table}`")))
}

/// The column's mask, or hidden when the data map does not classify it.
fn col(
    map: &DataMap,
    catalog: &Catalog,
    alias: &str,
    table: &str,
    column: &str,
    name: String,
) -> Result<Col> {
    let ident = catalog.column(table, column)?;
    let classified = map.table(table).and_then(|t| t.column(column));
    let (mask, personal, category) = match classified {
        Some(c) => (c.mask, c.category.is_personal(), c.category.as_str()),
        None => (Mask::Hidden, true, "unclassified"),
    };
    Ok(Col {
        name,
        sql: format!("{alias}.{ident}"),
        mask,
        personal,
        category,
    })
}

/// The columns of a kind: the list's, or every column of the table (in
/// catalog order) for a record's detail; then the joined columns.
fn columns(map: &DataMap, catalog: &Catalog, kind: Kind, all: bool) -> Result<Vec<Col>> {
    let spec = kind.spec();
    let mut out = Vec::new();
    if all {
        let ct = catalog
            .get(spec.table)
            .ok_or_else(|| Error::NotFound(format!("table `{}`", spec.table)))?;
        for c in &ct.columns {
            out.push(col(map, catalog, "t", spec.table, &c.name, c.name.clone())?);
        }
    } else {
        for c in spec.list {
            out.push(col(map, catalog, "t", spec.table, c, (*c).to_string())?);
        }
    }
    if let Some(j) = &spec.join {
        for c in j.columns {
            out.push(col(
                map,
                catalog,
                "j",
                j.table,
                c,
                format!("{}{c}", j.prefix),
            )?);
        }
    }
    Ok(out)
}

/// `FROM "public"."t" t [LEFT JOIN "public"."users" j ON j."id" = t."user_id"]`
fn push_from(qb: &mut QueryBuilder<Postgres>, catalog: &Catalog, kind: Kind) -> Result<()> {
    let spec = kind.spec();
    qb.push(" FROM ");
    qb.push(catalog.table(spec.table)?);
    qb.push(" t");
    if let Some(j) = &spec.join {
        qb.push(" LEFT JOIN ");
        qb.push(catalog.table(j.table)?);
        qb.push(" j ON j.");
        qb.push(catalog.column(j.table, j.to)?);
        qb.push(" = t.");
        qb.push(catalog.column(spec.table, j.from)?);
    }
    Ok(())
}

/// Pushes the condition that a row of `table` (aliased `alias`) belongs to
/// the tenant, following the data map's tenant path: `alias."business_id"
/// = $n`, or an `EXISTS` over the path's joins.
pub fn tenant_predicate(
    qb: &mut QueryBuilder<Postgres>,
    map: &DataMap,
    catalog: &Catalog,
    table: &str,
    alias: &str,
    tenant: Uuid,
) -> Result<()> {
    let t = map_table(map, table)?;
    let path = &t.tenant;
    if path.is_direct() {
        qb.push(format!("{alias}."));
        qb.push(catalog.column(table, &path.column)?);
        qb.push(" = ");
        qb.push_bind(tenant);
        return Ok(());
    }
    qb.push("EXISTS (SELECT 1");
    let mut prev_alias = alias.to_string();
    let mut prev_table = table;
    for (i, step) in path.via.iter().enumerate() {
        let a = format!("tp{i}");
        qb.push(if i == 0 { " FROM " } else { " JOIN " });
        qb.push(catalog.table(&step.table)?);
        qb.push(format!(" {a}"));
        if i > 0 {
            qb.push(format!(" ON {a}."));
            qb.push(catalog.column(&step.table, &step.to_column)?);
            qb.push(format!(" = {prev_alias}."));
            qb.push(catalog.column(prev_table, &step.from_column)?);
        }
        prev_alias = a;
        prev_table = &step.table;
    }
    let first = &path.via[0];
    qb.push(" WHERE tp0.");
    qb.push(catalog.column(&first.table, &first.to_column)?);
    qb.push(format!(" = {alias}."));
    qb.push(catalog.column(table, &first.from_column)?);
    qb.push(format!(" AND {prev_alias}."));
    qb.push(catalog.column(prev_table, &path.column)?);
    qb.push(" = ");
    qb.push_bind(tenant);
    qb.push(")");
    Ok(())
}

/// `%`, `_` and `\` made literal for `LIKE ... ESCAPE '\'`.
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Text columns a filter searches: the kind's table's text columns that
/// the map classifies as not personal, or as free text.
fn searchable(map: &DataMap, catalog: &Catalog, kind: Kind) -> Result<Vec<String>> {
    let spec = kind.spec();
    let t = map_table(map, spec.table)?;
    let ct = catalog
        .get(spec.table)
        .ok_or_else(|| Error::NotFound(format!("table `{}`", spec.table)))?;
    let mut out = Vec::new();
    for c in &ct.columns {
        let ok = t.column(&c.name).is_some_and(|m| {
            matches!(m.category, Category::None | Category::FreeText)
                && crate::core::datamap::is_text_type(&c.data_type)
        });
        if ok {
            out.push(format!("t.{}", catalog.column(spec.table, &c.name)?));
        }
    }
    Ok(out)
}

fn push_filter(
    qb: &mut QueryBuilder<Postgres>,
    map: &DataMap,
    catalog: &Catalog,
    kind: Kind,
    f: &Filter,
) -> Result<()> {
    let spec = kind.spec();
    if let Some(text) = f.text.as_deref().filter(|t| !t.is_empty()) {
        if text.chars().count() > MAX_FILTER_LEN {
            return Err(Error::InvalidInput(format!(
                "a filter is at most {MAX_FILTER_LEN} characters"
            )));
        }
        if text.contains('\0') {
            return Err(Error::InvalidInput(
                "a filter cannot contain a NUL character".into(),
            ));
        }
        let pattern = format!("%{}%", like_escape(text));
        let cols = searchable(map, catalog, kind)?;
        if cols.is_empty() {
            qb.push(" AND FALSE");
        } else {
            qb.push(" AND (");
            for (i, c) in cols.iter().enumerate() {
                if i > 0 {
                    qb.push(" OR ");
                }
                qb.push(c);
                qb.push(" ILIKE ");
                qb.push_bind(pattern.clone());
                qb.push(" ESCAPE '\\'");
            }
            qb.push(")");
        }
    }
    let date = catalog.column(spec.table, spec.date)?;
    if let Some(from) = f.date_from {
        qb.push(format!(" AND t.{date} >= "));
        qb.push_bind(from.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    if let Some(to) = f.date_to {
        let end = to
            .succ_opt()
            .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
            .ok_or_else(|| Error::InvalidInput("date out of range".into()))?;
        qb.push(format!(" AND t.{date} < "));
        qb.push_bind(end);
    }
    if f.amount_min.is_some() || f.amount_max.is_some() {
        let Some(amount) = spec.amount else {
            return Err(Error::InvalidInput(format!(
                "{} have no amount to filter on",
                kind.label()
            )));
        };
        let amount = catalog.column(spec.table, amount)?;
        if let Some(min) = f.amount_min {
            qb.push(format!(" AND t.{amount} >= "));
            qb.push_bind(min);
        }
        if let Some(max) = f.amount_max {
            qb.push(format!(" AND t.{amount} <= "));
            qb.push_bind(max);
        }
    }
    Ok(())
}

fn decode_fields(row: &sqlx::postgres::PgRow, cols: &[Col], masked: bool) -> Result<Vec<Field>> {
    let mut fields = Vec::with_capacity(cols.len());
    for (i, c) in cols.iter().enumerate() {
        let raw: Option<String> = row.try_get(i)?;
        let value = if masked {
            raw.map(|v| c.mask.apply(&v))
        } else {
            raw
        };
        fields.push(Field {
            name: c.name.clone(),
            value,
            personal: c.personal,
            category: c.category,
            mask: c.mask.as_str(),
        });
    }
    Ok(fields)
}

// ---------------------------------------------------------------- list

/// One page of a tenant's records of one kind, masked.
pub async fn list(
    pool: &PgPool,
    map: &DataMap,
    catalog: &Catalog,
    tenant: Uuid,
    kind: Kind,
    query: &Query,
) -> Result<Page> {
    list_inner(pool, map, catalog, tenant, kind, query, true).await
}

/// The same query as [`list`] without masking, for the benchmark's bare
/// baseline. Returns only how many rows came back: the values never leave.
#[doc(hidden)]
pub async fn list_bare_count(
    pool: &PgPool,
    map: &DataMap,
    catalog: &Catalog,
    tenant: Uuid,
    kind: Kind,
    query: &Query,
) -> Result<usize> {
    Ok(list_inner(pool, map, catalog, tenant, kind, query, false)
        .await?
        .rows
        .len())
}

async fn list_inner(
    pool: &PgPool,
    map: &DataMap,
    catalog: &Catalog,
    tenant: Uuid,
    kind: Kind,
    query: &Query,
    masked: bool,
) -> Result<Page> {
    let spec = kind.spec();
    let limit = match query.limit {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    };
    let key_col = match query.sort {
        SortBy::Date => catalog.column(spec.table, spec.date)?,
        SortBy::Amount => match spec.amount {
            Some(a) => catalog.column(spec.table, a)?,
            None => {
                return Err(Error::InvalidInput(format!(
                    "{} have no amount to sort by",
                    kind.label()
                )));
            }
        },
    };
    let pk_col = catalog.column(spec.table, spec.pk)?;
    let cursor = match &query.at {
        At::After(c) | At::Before(c) => {
            if c.kind != kind || c.sort != query.sort || c.dir != query.dir {
                return Err(Error::InvalidInput(
                    "the cursor belongs to another list or sort order".into(),
                ));
            }
            Some(c)
        }
        At::First | At::Last => None,
    };
    // Reading backwards (last page, or the page before a cursor): the
    // reverse order, rows turned back afterwards.
    let backwards = matches!(query.at, At::Last | At::Before(_));
    let ascending = (query.dir == Dir::Asc) != backwards;

    let cols = columns(map, catalog, kind, false)?;
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("SELECT ");
    for c in &cols {
        qb.push(&c.sql);
        qb.push("::text, ");
    }
    match query.sort {
        SortBy::Date => qb.push(format!("t.{key_col}, ")),
        SortBy::Amount => qb.push(format!("t.{key_col}::int8, ")),
    };
    qb.push(format!("t.{pk_col}::text"));
    push_from(&mut qb, catalog, kind)?;
    qb.push(" WHERE ");
    tenant_predicate(&mut qb, map, catalog, spec.table, "t", tenant)?;
    push_filter(&mut qb, map, catalog, kind, &query.filter)?;
    if let Some(c) = cursor {
        qb.push(format!(
            " AND (t.{key_col}, t.{pk_col}) {} (",
            if ascending { ">" } else { "<" }
        ));
        match c.key {
            Key::Date(d) => qb.push_bind(d),
            Key::Amount(a) => qb.push_bind(a),
        };
        qb.push(", ");
        c.pk.push_bind(&mut qb);
        qb.push(")");
    }
    let order = if ascending { "ASC" } else { "DESC" };
    qb.push(format!(
        " ORDER BY t.{key_col} {order}, t.{pk_col} {order} LIMIT "
    ));
    qb.push_bind(i64::from(limit) + 1);

    let rows = qb.build().fetch_all(pool).await?;
    let more = rows.len() > limit as usize;
    let mut out: Vec<(MaskedRecord, Cursor)> = Vec::with_capacity(rows.len());
    for row in rows.iter().take(limit as usize) {
        let fields = decode_fields(row, &cols, masked)?;
        let key = match query.sort {
            SortBy::Date => Key::Date(row.try_get(cols.len())?),
            SortBy::Amount => Key::Amount(row.try_get(cols.len())?),
        };
        let pk_text: String = row.try_get(cols.len() + 1)?;
        let pk = kind.parse_pk(&pk_text)?;
        out.push((
            MaskedRecord {
                kind,
                id: pk,
                fields,
            },
            Cursor {
                kind,
                sort: query.sort,
                dir: query.dir,
                key,
                pk,
            },
        ));
    }
    if backwards {
        out.reverse();
    }
    let first = out.first().map(|(_, c)| *c);
    let last = out.last().map(|(_, c)| *c);
    let (next, prev) = match &query.at {
        At::First => (last.filter(|_| more), None),
        At::After(c) => (last.filter(|_| more), first.or(Some(*c))),
        At::Last => (None, first.filter(|_| more)),
        At::Before(c) => (last.or(Some(*c)), first.filter(|_| more)),
    };
    Ok(Page {
        kind,
        rows: out.into_iter().map(|(r, _)| r).collect(),
        next,
        prev,
    })
}

// ---------------------------------------------------------------- show

/// One record with all its fields, masked; `None` when the tenant has no
/// such record (also when another tenant has it).
pub async fn show(
    pool: &PgPool,
    map: &DataMap,
    catalog: &Catalog,
    tenant: Uuid,
    kind: Kind,
    id: Pk,
) -> Result<Option<MaskedRecord>> {
    let cols = columns(map, catalog, kind, true)?;
    let Some(row) = fetch_one(pool, map, catalog, tenant, kind, id, &cols).await? else {
        return Ok(None);
    };
    Ok(Some(MaskedRecord {
        kind,
        id,
        fields: decode_fields(&row, &cols, true)?,
    }))
}

async fn fetch_one(
    pool: &PgPool,
    map: &DataMap,
    catalog: &Catalog,
    tenant: Uuid,
    kind: Kind,
    id: Pk,
    cols: &[Col],
) -> Result<Option<sqlx::postgres::PgRow>> {
    check_pk_type(kind, id)?;
    let spec = kind.spec();
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("SELECT ");
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        qb.push(&c.sql);
        qb.push("::text");
    }
    push_from(&mut qb, catalog, kind)?;
    qb.push(" WHERE ");
    tenant_predicate(&mut qb, map, catalog, spec.table, "t", tenant)?;
    qb.push(" AND t.");
    qb.push(catalog.column(spec.table, spec.pk)?);
    qb.push(" = ");
    id.push_bind(&mut qb);
    Ok(qb.build().fetch_optional(pool).await?)
}

fn check_pk_type(kind: Kind, id: Pk) -> Result<()> {
    match (kind.spec().pk_type, id) {
        (PkType::BigInt, Pk::Int(_)) | (PkType::Uuid, Pk::Uuid(_)) => Ok(()),
        _ => Err(Error::InvalidInput(format!("not a {} id", kind.label()))),
    }
}

// ---------------------------------------------------------------- reveal

/// The unmasked value of one personal field of one record. Refuses a field
/// that is not personal (it is shown unmasked already) or that the record
/// does not have. The caller checks the role, asks for the reason and
/// step-up, audits (the field, never the value) and hides it again.
pub async fn reveal(
    pool: &PgPool,
    map: &DataMap,
    catalog: &Catalog,
    tenant: Uuid,
    kind: Kind,
    id: Pk,
    field: &str,
) -> Result<Revealed> {
    let all = columns(map, catalog, kind, true)?;
    let Some(c) = all.into_iter().find(|c| c.name == field) else {
        return Err(Error::NotFound(format!(
            "field `{field}` of {}",
            kind.label()
        )));
    };
    if !c.personal || c.mask == Mask::None {
        return Err(Error::InvalidInput(format!(
            "field `{field}` is not masked: there is nothing to reveal"
        )));
    }
    let category = c.category;
    let name = c.name.clone();
    let cols = [c];
    let Some(row) = fetch_one(pool, map, catalog, tenant, kind, id, &cols).await? else {
        return Err(Error::NotFound(format!("{} {id}", kind.label())));
    };
    let value: Option<String> = row.try_get(0)?;
    Ok(Revealed {
        kind,
        id,
        field: name,
        category,
        value: Secret::new(value),
    })
}

// ---------------------------------------------------------------- routes

/// A trip's route for the terminal map: its points under the data map's
/// mask for `trip_points.lat`/`lon` (rounded to about 1 km), consecutive
/// duplicates removed. `None` when the tenant has no such trip.
pub async fn trip_route(
    pool: &PgPool,
    map: &DataMap,
    catalog: &Catalog,
    tenant: Uuid,
    trip_id: i64,
) -> Result<Option<Route>> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("SELECT t.");
    qb.push(catalog.column("trips", "started_at")?);
    qb.push(", t.");
    qb.push(catalog.column("trips", "ended_at")?);
    qb.push(", t.");
    qb.push(catalog.column("trips", "distance_m")?);
    qb.push("::int8 FROM ");
    qb.push(catalog.table("trips")?);
    qb.push(" t WHERE ");
    tenant_predicate(&mut qb, map, catalog, "trips", "t", tenant)?;
    qb.push(" AND t.");
    qb.push(catalog.column("trips", "id")?);
    qb.push(" = ");
    qb.push_bind(trip_id);
    let Some(trip) = qb.build().fetch_optional(pool).await? else {
        return Ok(None);
    };
    let started_at: DateTime<Utc> = trip.try_get(0)?;
    let ended_at: DateTime<Utc> = trip.try_get(1)?;
    let distance_m: i64 = trip.try_get(2)?;

    let lat = col(map, catalog, "p", "trip_points", "lat", "lat".into())?;
    let lon = col(map, catalog, "p", "trip_points", "lon", "lon".into())?;
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new("SELECT ");
    qb.push(&lat.sql);
    qb.push("::text, ");
    qb.push(&lon.sql);
    qb.push("::text FROM ");
    qb.push(catalog.table("trip_points")?);
    qb.push(" p WHERE ");
    tenant_predicate(&mut qb, map, catalog, "trip_points", "p", tenant)?;
    qb.push(" AND p.");
    qb.push(catalog.column("trip_points", "trip_id")?);
    qb.push(" = ");
    qb.push_bind(trip_id);
    qb.push(" ORDER BY p.");
    qb.push(catalog.column("trip_points", "seq")?);
    let rows = qb.build().fetch_all(pool).await?;
    let mut points: Vec<(f64, f64)> = Vec::new();
    for row in &rows {
        let la: String = row.try_get(0)?;
        let lo: String = row.try_get(1)?;
        // The mask's text is parsed back: a hidden coordinate ("•••") does
        // not parse and the point is dropped.
        let (Ok(la), Ok(lo)) = (
            lat.mask.apply(&la).parse::<f64>(),
            lon.mask.apply(&lo).parse::<f64>(),
        ) else {
            continue;
        };
        if points.last() != Some(&(la, lo)) {
            points.push((la, lo));
        }
    }
    Ok(Some(Route {
        trip_id,
        points,
        distance_m,
        started_at,
        ended_at,
        duration_s: (ended_at - started_at).num_seconds(),
    }))
}

/// Midnight UTC of a date (for callers building date filters).
pub fn day_start(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(chrono::NaiveTime::MIN).and_utc()
}
