//! Tenant lookup: the queries behind the search screen and the tenant
//! overview. Values are always bound; LIKE patterns are escaped so that `%`,
//! `_` and `\` typed by an operator match literally.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::core::{Result, input, mask};

/// How many hits a search returns at most.
pub const SEARCH_LIMIT: i64 = 50;

/// The query behind one search kind (public for the benchmark's bare baseline).
pub const RECENT_SQL: &str = "SELECT id, name, plan, country, created_at FROM businesses
                 ORDER BY created_at DESC, id LIMIT $1";

/// The query behind one search kind (public for the benchmark's bare baseline).
pub const ID_SQL: &str = "SELECT id, name, plan, country, created_at FROM businesses WHERE id = $1";

/// The query behind one search kind (public for the benchmark's bare baseline).
/// Three characters or more: names containing the query (substring, exact
/// first) or close to it word by word (trigram word similarity, for typos),
/// both answered from the trigram index.
pub const NAME_SQL: &str =
    "SELECT id, name, plan, country, created_at, word_similarity($1, name) AS score
                 FROM businesses
                 WHERE $1 <% name OR name ILIKE $2 ESCAPE '\\'
                 ORDER BY (name ILIKE $2 ESCAPE '\\') DESC, score DESC, name, id
                 LIMIT $3";

/// One or two characters (what is typed first): names starting with them,
/// from a btree prefix index. Trigrams cannot serve so short a query, and a
/// substring scan of every name would be slow for no useful answer.
pub const NAME_PREFIX_SQL: &str =
    "SELECT id, name, plan, country, created_at, word_similarity($1, name) AS score
                 FROM businesses
                 WHERE lower(name) LIKE $2 ESCAPE '\\'
                 ORDER BY lower(name), id
                 LIMIT $3";

/// The SQL and the LIKE pattern (its `$2`) of a name search.
pub fn name_query(name: &str) -> (&'static str, String) {
    if name.chars().count() < 3 {
        (
            NAME_PREFIX_SQL,
            format!("{}%", like_escape(&name.to_lowercase())),
        )
    } else {
        (NAME_SQL, format!("%{}%", like_escape(name)))
    }
}

/// The query behind one search kind (public for the benchmark's bare baseline).
pub const EMAIL_SQL: &str = "SELECT b.id, b.name, b.plan, b.country, b.created_at, u.email
                     FROM users u
                     JOIN memberships m ON m.user_id = u.id
                     JOIN businesses b ON b.id = m.business_id
                     WHERE lower(u.email) LIKE $1 ESCAPE '\\'
                     ORDER BY lower(u.email), b.name, b.id
                     LIMIT $2";

/// The query behind one search kind (public for the benchmark's bare baseline).
pub const PHONE_SQL: &str = "SELECT b.id, b.name, b.plan, b.country, b.created_at, u.phone_digits
                     FROM users u
                     JOIN memberships m ON m.user_id = u.id
                     JOIN businesses b ON b.id = m.business_id
                     WHERE reverse(u.phone_digits) LIKE $1
                     ORDER BY b.name, b.id
                     LIMIT $2";

/// How a search query is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryKind {
    /// Nothing typed: the newest tenants.
    Recent,
    /// An exact business id.
    Id(Uuid),
    /// An owner's or member's e-mail (prefix, case-insensitive).
    Email(String),
    /// A phone number, by its digits (the typed digits end the number).
    Phone(String),
    /// A business name, fuzzy (trigram) and substring.
    Name(String),
}

impl QueryKind {
    pub fn label(&self) -> &'static str {
        match self {
            QueryKind::Recent => "recent",
            QueryKind::Id(_) => "id",
            QueryKind::Email(_) => "email",
            QueryKind::Phone(_) => "phone",
            QueryKind::Name(_) => "name",
        }
    }
}

/// Reads what the operator typed.
pub fn classify(query: &str) -> QueryKind {
    let q = query.trim();
    if q.is_empty() {
        return QueryKind::Recent;
    }
    if let Ok(id) = Uuid::parse_str(q) {
        return QueryKind::Id(id);
    }
    if q.contains('@') {
        return QueryKind::Email(q.to_lowercase());
    }
    let phone_like = q
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '(' | ')' | '.' | ' '));
    let digits: String = q.chars().filter(char::is_ascii_digit).collect();
    if phone_like && digits.len() >= 4 {
        // A national trunk prefix ("020 7946 0958" for +44 20 7946 0958) is
        // not part of the stored international number: match without it.
        let national = digits.trim_start_matches('0');
        if national.len() >= 6 {
            return QueryKind::Phone(national.to_string());
        }
        return QueryKind::Phone(digits);
    }
    QueryKind::Name(q.to_string())
}

/// Checks a search text before it is read: at most
/// [`input::MAX_QUERY`] characters and no control characters (PostgreSQL
/// refuses NUL in text; the refusal names no part of the text).
pub fn check_query(query: &str) -> Result<()> {
    input::text("the search text", query, input::MAX_QUERY, false)
}

/// Escapes `\`, `%` and `_` for a LIKE pattern with `ESCAPE '\'`.
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Why a tenant is in the results. Member values are masked.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Matched {
    Recent,
    Id,
    Name { similarity: f32 },
    MemberEmail { masked: String },
    MemberPhone { masked: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantHit {
    pub id: Uuid,
    pub name: String,
    pub plan: String,
    pub country: String,
    pub created_at: DateTime<Utc>,
    pub matched: Matched,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    pub user_id: Uuid,
    /// Masked to initials.
    pub name: String,
    /// Masked e-mail.
    pub email: String,
    pub role: String,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BankConnection {
    pub institution: String,
    pub status: String,
    pub accounts: i64,
    pub created_at: DateTime<Utc>,
}

/// The record types a tenant holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Transactions,
    Receipts,
    Invoices,
    Trips,
    Shifts,
    Payroll,
}

impl RecordKind {
    pub const ALL: [RecordKind; 6] = [
        RecordKind::Transactions,
        RecordKind::Receipts,
        RecordKind::Invoices,
        RecordKind::Trips,
        RecordKind::Shifts,
        RecordKind::Payroll,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RecordKind::Transactions => "transactions",
            RecordKind::Receipts => "receipts",
            RecordKind::Invoices => "invoices",
            RecordKind::Trips => "trips",
            RecordKind::Shifts => "shifts",
            RecordKind::Payroll => "payroll entries",
        }
    }
}

/// Counts above this are shown as "more than" (counting millions of rows
/// would make opening a big tenant slow for no useful difference).
pub const COUNT_CAP: i64 = 100_000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordCount {
    pub kind: RecordKind,
    pub count: i64,
    pub latest: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantDetail {
    pub id: Uuid,
    pub name: String,
    pub plan: String,
    pub country: String,
    pub created_at: DateTime<Utc>,
    pub members: Vec<Member>,
    pub banks: Vec<BankConnection>,
    pub records: Vec<RecordCount>,
}

impl TenantDetail {
    /// The latest activity over all record types.
    pub fn latest_activity(&self) -> Option<DateTime<Utc>> {
        self.records.iter().filter_map(|r| r.latest).max()
    }
}

type HitRow = (Uuid, String, String, String, DateTime<Utc>);

fn hit(row: HitRow, matched: Matched) -> TenantHit {
    let (id, name, plan, country, created_at) = row;
    TenantHit {
        id,
        name,
        plan,
        country,
        created_at,
        matched,
    }
}

/// Finds tenants for what the operator typed (see [`classify`]).
#[tracing::instrument(skip_all, fields(kind))]
pub async fn search(pool: &PgPool, query: &str, limit: i64) -> Result<Vec<TenantHit>> {
    check_query(query)?;
    let kind = classify(query);
    tracing::Span::current().record("kind", kind.label());
    let hits = match kind {
        QueryKind::Recent => {
            let rows: Vec<HitRow> = sqlx::query_as(RECENT_SQL)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.into_iter().map(|r| hit(r, Matched::Recent)).collect()
        }
        QueryKind::Id(id) => {
            let rows: Vec<HitRow> = sqlx::query_as(ID_SQL).bind(id).fetch_all(pool).await?;
            rows.into_iter().map(|r| hit(r, Matched::Id)).collect()
        }
        QueryKind::Name(name) => {
            let (sql, pattern) = name_query(&name);
            let rows: Vec<(Uuid, String, String, String, DateTime<Utc>, f32)> = sqlx::query_as(sql)
                .bind(&name)
                .bind(pattern)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.into_iter()
                .map(|(id, name, plan, country, created_at, similarity)| {
                    hit(
                        (id, name, plan, country, created_at),
                        Matched::Name { similarity },
                    )
                })
                .collect()
        }
        QueryKind::Email(email) => {
            let rows: Vec<(Uuid, String, String, String, DateTime<Utc>, String)> =
                sqlx::query_as(EMAIL_SQL)
                    .bind(format!("{}%", like_escape(&email)))
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
            rows.into_iter()
                .map(|(id, name, plan, country, created_at, email)| {
                    let masked = mask::email(&email);
                    hit(
                        (id, name, plan, country, created_at),
                        Matched::MemberEmail { masked },
                    )
                })
                .collect()
        }
        QueryKind::Phone(digits) => {
            let reversed: String = digits.chars().rev().collect();
            let rows: Vec<(Uuid, String, String, String, DateTime<Utc>, String)> =
                sqlx::query_as(PHONE_SQL)
                    .bind(format!("{reversed}%"))
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
            rows.into_iter()
                .map(|(id, name, plan, country, created_at, phone)| {
                    let masked = mask::phone(&phone);
                    hit(
                        (id, name, plan, country, created_at),
                        Matched::MemberPhone { masked },
                    )
                })
                .collect()
        }
    };
    Ok(hits)
}

/// One tenant's overview, or `None` when no business has this id.
#[tracing::instrument(skip_all)]
pub async fn detail(pool: &PgPool, business_id: Uuid) -> Result<Option<TenantDetail>> {
    let Some((id, name, plan, country, created_at)) = sqlx::query_as::<_, HitRow>(
        "SELECT id, name, plan, country, created_at FROM businesses WHERE id = $1",
    )
    .bind(business_id)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };

    let members: Vec<(Uuid, String, String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT u.id, u.full_name, u.email, m.role, m.created_at
         FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.business_id = $1
         ORDER BY array_position(ARRAY['owner','admin','manager','accountant','employee'], m.role),
                  m.created_at, u.id",
    )
    .bind(business_id)
    .fetch_all(pool)
    .await?;
    let members = members
        .into_iter()
        .map(|(user_id, full_name, email, role, since)| Member {
            user_id,
            name: mask::name(&full_name),
            email: mask::email(&email),
            role,
            since,
        })
        .collect();

    let banks: Vec<(String, String, i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT c.institution, c.status,
                (SELECT count(*) FROM bank_accounts a WHERE a.connection_id = c.id),
                c.created_at
         FROM bank_connections c WHERE c.business_id = $1
         ORDER BY c.created_at, c.id",
    )
    .bind(business_id)
    .fetch_all(pool)
    .await?;
    let banks = banks
        .into_iter()
        .map(
            |(institution, status, accounts, created_at)| BankConnection {
                institution,
                status,
                accounts,
                created_at,
            },
        )
        .collect();

    // One round trip for all counts; each sub-select is an index scan on
    // (business_id, <date>). Counts stop at COUNT_CAP + 1, so a tenant with
    // millions of rows opens as fast as a small one (shown as "100,000+").
    let c: CountsRow = sqlx::query_as(
        "SELECT
           (SELECT count(*) FROM (SELECT 1 FROM transactions WHERE business_id = $1 LIMIT 100001) c),
           (SELECT max(posted_at) FROM transactions WHERE business_id = $1),
           (SELECT count(*) FROM (SELECT 1 FROM receipts WHERE business_id = $1 LIMIT 100001) c),
           (SELECT max(created_at) FROM receipts WHERE business_id = $1),
           (SELECT count(*) FROM (SELECT 1 FROM invoices WHERE business_id = $1 LIMIT 100001) c),
           (SELECT max(created_at) FROM invoices WHERE business_id = $1),
           (SELECT count(*) FROM (SELECT 1 FROM trips WHERE business_id = $1 LIMIT 100001) c),
           (SELECT max(started_at) FROM trips WHERE business_id = $1),
           (SELECT count(*) FROM (SELECT 1 FROM shifts WHERE business_id = $1 LIMIT 100001) c),
           (SELECT max(starts_at) FROM shifts WHERE business_id = $1),
           (SELECT count(*) FROM (SELECT 1 FROM payroll_entries WHERE business_id = $1 LIMIT 100001) c),
           (SELECT max(paid_at) FROM payroll_entries WHERE business_id = $1)",
    )
    .bind(business_id)
    .fetch_one(pool)
    .await?;
    let records = vec![
        count(RecordKind::Transactions, c.0, c.1),
        count(RecordKind::Receipts, c.2, c.3),
        count(RecordKind::Invoices, c.4, c.5),
        count(RecordKind::Trips, c.6, c.7),
        count(RecordKind::Shifts, c.8, c.9),
        count(RecordKind::Payroll, c.10, c.11),
    ];

    Ok(Some(TenantDetail {
        id,
        name,
        plan,
        country,
        created_at,
        members,
        banks,
        records,
    }))
}

type Latest = Option<DateTime<Utc>>;
type CountsRow = (
    i64,
    Latest,
    i64,
    Latest,
    i64,
    Latest,
    i64,
    Latest,
    i64,
    Latest,
    i64,
    Latest,
);

impl RecordCount {
    /// True when there are more than [`COUNT_CAP`] rows (`count` is then
    /// `COUNT_CAP + 1`).
    pub fn is_capped(&self) -> bool {
        self.count > COUNT_CAP
    }

    /// The count for display: `1,234`, or `100,000+` when capped.
    pub fn display(&self) -> String {
        let n = self.count.min(COUNT_CAP);
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if self.is_capped() {
            out.push('+');
        }
        out
    }
}

fn count(kind: RecordKind, count: i64, latest: Latest) -> RecordCount {
    RecordCount {
        kind,
        count,
        latest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_reads_each_kind() {
        assert_eq!(classify("  "), QueryKind::Recent);
        let id = Uuid::new_v4();
        assert_eq!(classify(&id.to_string()), QueryKind::Id(id));
        assert_eq!(
            classify("Jane@Example.COM"),
            QueryKind::Email("jane@example.com".into())
        );
        assert_eq!(
            classify("+1 (415) 555-0134"),
            QueryKind::Phone("14155550134".into())
        );
        assert_eq!(
            classify("020 7946 0958"),
            QueryKind::Phone("2079460958".into())
        );
        assert_eq!(classify("0134"), QueryKind::Phone("0134".into()));
        assert_eq!(classify("123"), QueryKind::Name("123".into()));
        assert_eq!(classify("7-Eleven"), QueryKind::Name("7-Eleven".into()));
        assert_eq!(classify(" acme "), QueryKind::Name("acme".into()));
    }

    #[test]
    fn counts_display_with_separators_and_a_cap() {
        let c = |n| count(RecordKind::Transactions, n, None);
        assert_eq!(c(0).display(), "0");
        assert_eq!(c(1234).display(), "1,234");
        assert_eq!(c(COUNT_CAP).display(), "100,000");
        assert!(!c(COUNT_CAP).is_capped());
        assert_eq!(c(COUNT_CAP + 1).display(), "100,000+");
        assert!(c(COUNT_CAP + 1).is_capped());
    }

    #[test]
    fn like_escape_makes_wildcards_literal() {
        assert_eq!(like_escape(r"50%_off\"), r"50\%\_off\\");
        assert_eq!(like_escape("plain"), "plain");
    }
}
