//! Tenant lookup against a real PostgreSQL: every query kind, literal matching
//! of hostile input, and the tenant overview.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use charon::core::tenants::{self, Matched, RecordKind, SEARCH_LIMIT};
use chrono::{DateTime, TimeZone, Utc};
use common::TestDb;
use sqlx::PgPool;
use uuid::Uuid;

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, day, 12, 0, 0).unwrap()
}

async fn business(pool: &PgPool, name: &str, day: u32) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO businesses (id, name, plan, country, created_at) VALUES ($1, $2, 'pro', 'US', $3)")
        .bind(id)
        .bind(name)
        .bind(at(day))
        .execute(pool)
        .await
        .unwrap();
    id
}

async fn user(pool: &PgPool, name: &str, email: &str, phone: Option<&str>) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO users (id, email, full_name, phone, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(email)
    .bind(name)
    .bind(phone)
    .bind(at(1))
    .execute(pool)
    .await
    .unwrap();
    id
}

async fn member(pool: &PgPool, business: Uuid, user: Uuid, role: &str, day: u32) {
    sqlx::query(
        "INSERT INTO memberships (business_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(business)
    .bind(user)
    .bind(role)
    .bind(at(day))
    .execute(pool)
    .await
    .unwrap();
}

struct Fixture {
    db: TestDb,
    acme: Uuid,
    harbor: Uuid,
    odd: Uuid,
}

async fn fixture() -> Fixture {
    let db = TestDb::pluto("tenants").await;
    let p = &db.pool;
    let acme = business(p, "Acme Plumbing LLC", 3).await;
    let harbor = business(p, "Harbor Bakery", 4).await;
    let odd = business(p, r#"50% Off_Deals \ "Quoted" O'Brien Café"#, 5).await;
    business(p, "Blue Fern Florist", 6).await;
    business(p, "Acme Roofing", 7).await;
    let jane = user(
        p,
        "Jane Mary Doe",
        "Jane.Doe@Example.com",
        Some("+1 415-555-0134"),
    )
    .await;
    let bob = user(p, "Bob Stone", "bob@stone.io", Some("+44 20 7946 0958")).await;
    let ann = user(p, "Ann Accountant", "ann@numbers.co", None).await;
    member(p, acme, bob, "employee", 2).await;
    member(p, acme, jane, "owner", 3).await;
    member(p, acme, ann, "accountant", 4).await;
    member(p, harbor, ann, "accountant", 4).await;
    member(p, harbor, bob, "owner", 1).await;
    sqlx::raw_sql(charon::pluto::INDEXES)
        .execute(p)
        .await
        .unwrap();
    Fixture {
        db,
        acme,
        harbor,
        odd,
    }
}

async fn names(pool: &PgPool, q: &str) -> Vec<String> {
    tenants::search(pool, q, SEARCH_LIMIT)
        .await
        .unwrap_or_else(|e| panic!("search {q:?} failed: {e}"))
        .into_iter()
        .map(|h| h.name)
        .collect()
}

#[tokio::test]
async fn name_search_is_fuzzy_and_substring() {
    let f = fixture().await;
    let p = &f.db.pool;
    let hits = names(p, "acme").await;
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert!(hits.iter().all(|n| n.starts_with("Acme")));
    // A typo still finds it (trigram similarity).
    assert_eq!(
        names(p, "Acme Plumbng").await.first().map(String::as_str),
        Some("Acme Plumbing LLC")
    );
    // Case-insensitive substring.
    assert_eq!(names(p, "bakery").await, vec!["Harbor Bakery"]);
    assert!(names(p, "zzzzqqq").await.is_empty());
    // The first one or two characters typed match the start of names.
    assert_eq!(
        names(p, "ac").await,
        vec!["Acme Plumbing LLC", "Acme Roofing"]
    );
    assert_eq!(names(p, "H").await, vec!["Harbor Bakery"]);
    assert!(names(p, "ak").await.is_empty(), "not a substring match yet");
}

#[tokio::test]
async fn empty_query_lists_newest_first() {
    let f = fixture().await;
    let hits = names(&f.db.pool, "   ").await;
    assert_eq!(hits.first().map(String::as_str), Some("Acme Roofing"));
    assert_eq!(hits.len(), 5);
}

#[tokio::test]
async fn exact_business_id() {
    let f = fixture().await;
    let hits = tenants::search(&f.db.pool, &format!(" {} ", f.harbor), SEARCH_LIMIT)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, f.harbor);
    assert_eq!(hits[0].matched, Matched::Id);
    let none = tenants::search(&f.db.pool, &Uuid::new_v4().to_string(), SEARCH_LIMIT)
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn member_email_case_insensitive_prefix_masked() {
    let f = fixture().await;
    let hits = tenants::search(&f.db.pool, "jane.doe@EXAMPLE.com", SEARCH_LIMIT)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, f.acme);
    assert_eq!(
        hits[0].matched,
        Matched::MemberEmail {
            masked: "J***@E***.com".into()
        }
    );
    // An accountant of two businesses finds both.
    let ann: Vec<Uuid> = tenants::search(&f.db.pool, "ann@", SEARCH_LIMIT)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(ann.len(), 2);
    assert!(ann.contains(&f.acme) && ann.contains(&f.harbor));
    // `_` is not a wildcard: "ann_numbers" must not match "ann@numbers".
    assert!(names(&f.db.pool, "a_n@").await.is_empty());
}

#[tokio::test]
async fn phone_by_digits_in_any_format() {
    let f = fixture().await;
    for q in ["4155550134", "+1 (415) 555-0134", "555-0134", "14155550134"] {
        let hits = tenants::search(&f.db.pool, q, SEARCH_LIMIT).await.unwrap();
        assert_eq!(hits.len(), 1, "{q}");
        assert_eq!(hits[0].id, f.acme, "{q}");
        assert!(
            matches!(&hits[0].matched, Matched::MemberPhone { masked } if masked.ends_with("34") && !masked.contains("555"))
        );
    }
    // Bob is in two businesses.
    assert_eq!(
        tenants::search(&f.db.pool, "020 7946 0958", SEARCH_LIMIT)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        tenants::search(&f.db.pool, "9999 9999", SEARCH_LIMIT)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn hostile_input_matches_literally_and_never_errors() {
    let f = fixture().await;
    let p = &f.db.pool;
    assert_eq!(
        names(p, "50%").await,
        vec![r#"50% Off_Deals \ "Quoted" O'Brien Café"#]
    );
    assert_eq!(names(p, "Off_Deals").await.len(), 1);
    assert_eq!(names(p, r#"\ ""#).await.len(), 1);
    assert_eq!(names(p, "O'Brien").await.len(), 1);
    assert_eq!(names(p, "\"Quoted\"").await.len(), 1);
    assert_eq!(names(p, "café").await.len(), 1);
    // Wildcards alone are no wildcards: one or two characters match name
    // prefixes, and no name starts with them.
    assert!(names(p, "%").await.is_empty());
    assert!(names(p, "_").await.is_empty());
    assert!(names(p, "%_").await.is_empty());
    assert_eq!(names(p, "50").await.len(), 1);
    assert!(names(p, "%%%_%").await.is_empty());
    for q in [
        "'; DROP TABLE businesses; --",
        "\\",
        "\\\\%",
        "\u{0}",
        "ä\u{202e}ö",
        "🦀🦀",
        "@",
        "%@%",
        "+",
        "((((",
        &"x".repeat(10_000),
    ] {
        // NUL cannot be sent to PostgreSQL in text and a search text is at
        // most 200 characters: both are refused clearly (InvalidInput, not a
        // database error), never a panic. Everything else must just work.
        match tenants::search(p, q, SEARCH_LIMIT).await {
            Ok(_) => {}
            Err(e) => assert!(
                matches!(e, charon::core::Error::InvalidInput(_))
                    && (q.contains('\u{0}') || q.chars().count() > 200),
                "{q:?}: {e}"
            ),
        }
    }
    let still: i64 = sqlx::query_scalar("SELECT count(*) FROM businesses")
        .fetch_one(p)
        .await
        .unwrap();
    assert_eq!(still, 5);
    let _ = f.odd;
}

#[tokio::test]
async fn tenant_detail_masks_members_and_counts_records() {
    let f = fixture().await;
    let p = &f.db.pool;
    let bob: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE email = 'bob@stone.io'")
        .fetch_one(p)
        .await
        .unwrap();
    let conn = Uuid::new_v4();
    sqlx::query("INSERT INTO bank_connections (id, business_id, created_by, institution, plaid_item_id, status, created_at) VALUES ($1, $2, $3, 'First Platypus Bank', 'item-sandbox-1', 'active', $4)")
        .bind(conn).bind(f.acme).bind(bob).bind(at(5)).execute(p).await.unwrap();
    let account = Uuid::new_v4();
    sqlx::query("INSERT INTO bank_accounts (id, business_id, connection_id, name, account_mask, kind) VALUES ($1, $2, $3, 'Checking', '0042', 'depository')")
        .bind(account).bind(f.acme).bind(conn).execute(p).await.unwrap();
    for (i, day) in [(1i64, 8u32), (2, 9), (3, 10)] {
        sqlx::query("INSERT INTO transactions (id, business_id, account_id, posted_at, amount_cents, merchant, description, category) VALUES ($1, $2, $3, $4, 1250, 'Shell', 'FUEL', 'travel')")
            .bind(i).bind(f.acme).bind(account).bind(at(day)).execute(p).await.unwrap();
    }
    // Another tenant's records never count for this one.
    let other_conn = Uuid::new_v4();
    sqlx::query("INSERT INTO bank_connections (id, business_id, created_by, institution, plaid_item_id, status, created_at) VALUES ($1, $2, $3, 'Other Bank', 'item-sandbox-2', 'revoked', $4)")
        .bind(other_conn).bind(f.harbor).bind(bob).bind(at(5)).execute(p).await.unwrap();

    let t = tenants::detail(p, f.acme).await.unwrap().unwrap();
    assert_eq!(t.name, "Acme Plumbing LLC");
    let roles: Vec<&str> = t.members.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, vec!["owner", "accountant", "employee"]);
    assert_eq!(t.members[0].name, "J. M. D.");
    assert_eq!(t.members[0].email, "J***@E***.com");
    let shown = format!("{t:?}");
    for secret in ["Jane", "Doe@", "bob@stone.io", "555-0134"] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
    assert_eq!(t.banks.len(), 1);
    assert_eq!(t.banks[0].institution, "First Platypus Bank");
    assert_eq!(t.banks[0].accounts, 1);
    let tx = t
        .records
        .iter()
        .find(|r| r.kind == RecordKind::Transactions)
        .unwrap();
    assert_eq!(tx.count, 3);
    assert_eq!(tx.latest, Some(at(10)));
    assert_eq!(t.latest_activity(), Some(at(10)));
    assert!(
        t.records
            .iter()
            .filter(|r| r.kind != RecordKind::Transactions)
            .all(|r| r.count == 0 && r.latest.is_none())
    );

    assert!(tenants::detail(p, Uuid::new_v4()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_tenant_with_many_rows_shows_a_capped_count() {
    let f = fixture().await;
    let p = &f.db.pool;
    let bob: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE email = 'bob@stone.io'")
        .fetch_one(p)
        .await
        .unwrap();
    let conn = Uuid::new_v4();
    sqlx::query("INSERT INTO bank_connections (id, business_id, created_by, institution, plaid_item_id, status, created_at) VALUES ($1, $2, $3, 'Big Bank', 'item-sandbox-9', 'active', now())")
        .bind(conn).bind(f.harbor).bind(bob).execute(p).await.unwrap();
    let account = Uuid::new_v4();
    sqlx::query("INSERT INTO bank_accounts (id, business_id, connection_id, name, account_mask, kind) VALUES ($1, $2, $3, 'Ops', '0001', 'depository')")
        .bind(account).bind(f.harbor).bind(conn).execute(p).await.unwrap();
    sqlx::query(
        "INSERT INTO transactions (id, business_id, account_id, posted_at, amount_cents, merchant, description, category)
         SELECT g, $1, $2, now() - g * interval '1 minute', 100, 'M', 'D', 'c' FROM generate_series(1, 100005) g",
    )
    .bind(f.harbor)
    .bind(account)
    .execute(p)
    .await
    .unwrap();
    let t = tenants::detail(p, f.harbor).await.unwrap().unwrap();
    let tx = t
        .records
        .iter()
        .find(|r| r.kind == RecordKind::Transactions)
        .unwrap();
    assert!(tx.is_capped());
    assert_eq!(tx.display(), "100,000+");
    assert!(tx.latest.is_some());
    // Another tenant's count is exact and unaffected.
    let other = tenants::detail(p, f.acme).await.unwrap().unwrap();
    let tx = other
        .records
        .iter()
        .find(|r| r.kind == RecordKind::Transactions)
        .unwrap();
    assert_eq!((tx.count, tx.display().as_str()), (0, "0"));
}
