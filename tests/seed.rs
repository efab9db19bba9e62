//! The synthetic Pluto data generator against a real PostgreSQL: shapes,
//! consistency, determinism, and the COPY escaping round trip.
#![allow(clippy::unwrap_used)] // helpers below are test code too
mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use charon::pluto::copy::RowWriter;
use charon::pluto::fake::{haversine_m, iban_mod97, luhn_valid};
use charon::pluto::{SeedOptions, SeedPhase, SeedProgress, SeedStats, seed};
use common::TestDb;
use sqlx::postgres::PgPoolCopyExt;
use sqlx::{PgPool, Row};

const TABLES: [&str; 12] = [
    "businesses",
    "users",
    "memberships",
    "bank_connections",
    "bank_accounts",
    "transactions",
    "receipts",
    "invoices",
    "trips",
    "trip_points",
    "shifts",
    "payroll_entries",
];

async fn seeded(prefix: &str, tenants: u32, seed_value: u64) -> (TestDb, SeedStats) {
    let db = TestDb::new(prefix).await;
    let stats = seed(
        &db.pool,
        &SeedOptions {
            tenants,
            seed: seed_value,
        },
        &|_| {},
    )
    .await
    .unwrap();
    (db, stats)
}

async fn scalar_i64(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn strings(pool: &PgPool, sql: &'static str) -> Vec<String> {
    sqlx::query_scalar(sql).fetch_all(pool).await.unwrap()
}

/// Card-number candidates in free text: runs of 16 digits, optionally
/// grouped by spaces or dashes.
fn card_numbers(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let mut digits = String::new();
            let mut j = i;
            while j < chars.len()
                && (chars[j].is_ascii_digit()
                    || ((chars[j] == ' ' || chars[j] == '-')
                        && j + 1 < chars.len()
                        && chars[j + 1].is_ascii_digit()))
            {
                if chars[j].is_ascii_digit() {
                    digits.push(chars[j]);
                }
                j += 1;
            }
            if digits.len() == 16 {
                found.push(digits);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    found
}

#[tokio::test]
async fn thirty_tenants_are_consistent_and_realistic() {
    let (db, stats) = seeded("seed_shape", 30, 7).await;
    let pool = &db.pool;

    // Counts: every table has rows, and the stats say what the tables hold.
    assert_eq!(stats.tenants, 30);
    assert_eq!(stats.per_table.len(), TABLES.len());
    let mut sum = 0;
    for (table, n) in &stats.per_table {
        let sql = format!("SELECT count(*) FROM {table}");
        let in_db: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .unwrap();
        assert!(*n > 0, "{table} is empty");
        assert_eq!(in_db as u64, *n, "{table}");
        sum += n;
    }
    assert_eq!(stats.rows, sum);
    assert_eq!(
        stats.users,
        scalar_i64(pool, "SELECT count(*) FROM users").await as u64
    );

    // Every business has an owner; roles are the five.
    let ownerless = scalar_i64(
        pool,
        "SELECT count(*) FROM businesses b WHERE NOT EXISTS \
         (SELECT 1 FROM memberships m WHERE m.business_id = b.id AND m.role = 'owner')",
    )
    .await;
    assert_eq!(ownerless, 0);
    let roles: HashSet<String> = strings(pool, "SELECT DISTINCT role FROM memberships")
        .await
        .into_iter()
        .collect();
    let five: HashSet<String> = ["employee", "accountant", "manager", "owner", "admin"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(roles.is_subset(&five), "{roles:?}");
    for r in ["owner", "employee", "accountant", "manager"] {
        assert!(roles.contains(r), "no {r} in {roles:?}");
    }
    // Some users (accountants of a local firm) serve several businesses.
    let multi = scalar_i64(
        pool,
        "SELECT count(*) FROM (SELECT user_id FROM memberships GROUP BY user_id \
         HAVING count(*) > 1) m",
    )
    .await;
    assert!(multi > 0, "no user is a member of several businesses");
    // No user without a business.
    let orphans = scalar_i64(
        pool,
        "SELECT count(*) FROM users u WHERE NOT EXISTS \
         (SELECT 1 FROM memberships m WHERE m.user_id = u.id)",
    )
    .await;
    assert_eq!(orphans, 0);

    // Nothing happens before the business joined or after the fixed "now".
    let late = scalar_i64(
        pool,
        "SELECT (SELECT count(*) FROM transactions WHERE posted_at >= '2026-01-01') \
         + (SELECT count(*) FROM receipts WHERE created_at >= '2026-01-01') \
         + (SELECT count(*) FROM trips t JOIN businesses b ON b.id = t.business_id \
            WHERE t.started_at < b.created_at OR t.ended_at >= '2026-01-01')",
    )
    .await;
    assert_eq!(late, 0);

    // Plans, countries.
    let plans = strings(pool, "SELECT DISTINCT plan FROM businesses").await;
    assert!(plans.len() >= 2, "{plans:?}");
    let countries = strings(pool, "SELECT DISTINCT country FROM businesses").await;
    assert!(countries.len() >= 3, "{countries:?}");
    assert!(
        countries
            .iter()
            .all(|c| c.len() == 2 && c.chars().all(|ch| ch.is_ascii_uppercase()))
    );

    // E-mails and phones look right; names include non-ASCII ones.
    let bad_emails = scalar_i64(
        pool,
        "SELECT count(*) FROM users WHERE email !~ '^[a-z0-9._]+@[a-z0-9-]+(\\.[a-z0-9-]+)+$'",
    )
    .await;
    assert_eq!(bad_emails, 0);
    let bad_invoice_emails = scalar_i64(
        pool,
        "SELECT count(*) FROM invoices WHERE customer_email !~ '^[a-z0-9._]+@[a-z0-9-]+(\\.[a-z0-9-]+)+$'",
    )
    .await;
    assert_eq!(bad_invoice_emails, 0);
    let phones = strings(pool, "SELECT phone FROM users WHERE phone IS NOT NULL").await;
    assert!(!phones.is_empty());
    for p in &phones {
        assert!(
            p.chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c)),
            "{p}"
        );
        let digits = p.chars().filter(char::is_ascii_digit).count();
        assert!((9..=13).contains(&digits), "{p}");
    }
    let digits_ok = scalar_i64(
        pool,
        "SELECT count(*) FROM users WHERE phone IS NOT NULL AND phone_digits ~ '^[0-9]{9,13}$'",
    )
    .await;
    assert_eq!(digits_ok as usize, phones.len());
    let non_ascii = scalar_i64(
        pool,
        "SELECT count(*) FROM users WHERE full_name ~ '[^ -~]'",
    )
    .await;
    assert!(non_ascii > 0, "no non-ASCII names");

    // External references are synthetic and shaped as the data map expects.
    let bad_items = scalar_i64(
        pool,
        "SELECT count(*) FROM bank_connections WHERE plaid_item_id !~ '^item-sandbox-[0-9a-f]{32}$'",
    )
    .await;
    assert_eq!(bad_items, 0);
    let bad_keys = scalar_i64(
        pool,
        "SELECT count(*) FROM receipts WHERE s3_key !~ \
         ('^receipts/' || business_id::text || '/[0-9a-f-]{36}\\.jpg$')",
    )
    .await;
    assert_eq!(bad_keys, 0);
    let bad_tax = scalar_i64(
        pool,
        "SELECT count(*) FROM payroll_entries WHERE tax_id !~ '^9[0-9]{2}-[0-9]{2}-[0-9]{4}$' \
         OR bank_account !~ '^[0-9]{8,12}$' OR net_cents >= gross_cents",
    )
    .await;
    assert_eq!(bad_tax, 0);

    // Receipts: OCR text that looks like a receipt, some with a full card
    // number (Luhn-valid); totals match the amount.
    let rows = sqlx::query("SELECT ocr_text, notes, amount_cents FROM receipts")
        .fetch_all(pool)
        .await
        .unwrap();
    let mut cards_in_ocr = 0;
    let mut with_notes = 0;
    for r in &rows {
        let ocr: String = r.get(0);
        let notes: Option<String> = r.get(1);
        let amount: i64 = r.get(2);
        assert!(ocr.contains("TOTAL"), "{ocr}");
        let total = format!("{}.{:02}", amount / 100, amount % 100);
        assert!(
            ocr.lines()
                .any(|l| l.starts_with("TOTAL") && l.ends_with(&total)),
            "{ocr} / {total}"
        );
        for c in card_numbers(&ocr) {
            assert!(luhn_valid(&c), "{c} in {ocr}");
            cards_in_ocr += 1;
        }
        if let Some(n) = notes {
            with_notes += 1;
            for c in card_numbers(&n) {
                assert!(luhn_valid(&c), "{c} in {n}");
            }
            if let Some(i) = n.find("IBAN ") {
                assert_eq!(iban_mod97(&n[i + 5..]), 1, "{n}");
            }
        }
    }
    assert!(
        cards_in_ocr > 0,
        "no card number in {} receipts",
        rows.len()
    );
    assert!(with_notes > 0 && with_notes < rows.len());

    // Trips: every trip has points, in order, between its start and end, at
    // a plausible speed; the trip's distance is about the points' path.
    let no_points = scalar_i64(
        pool,
        "SELECT count(*) FROM trips t WHERE NOT EXISTS \
         (SELECT 1 FROM trip_points p WHERE p.trip_id = t.id)",
    )
    .await;
    assert_eq!(no_points, 0);
    let outside = scalar_i64(
        pool,
        "SELECT count(*) FROM trip_points p JOIN trips t ON t.id = p.trip_id \
         WHERE p.recorded_at < t.started_at OR p.recorded_at > t.ended_at \
         OR p.business_id <> t.business_id",
    )
    .await;
    assert_eq!(outside, 0);
    let points = sqlx::query(
        "SELECT trip_id, seq, extract(epoch FROM recorded_at)::float8, lat, lon \
         FROM trip_points ORDER BY trip_id, seq",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut by_trip: HashMap<i64, Vec<(i32, f64, f64, f64)>> = HashMap::new();
    for p in &points {
        by_trip
            .entry(p.get(0))
            .or_default()
            .push((p.get(1), p.get(2), p.get(3), p.get(4)));
    }
    let distances: HashMap<i64, i32> = sqlx::query_as("SELECT id, distance_m FROM trips")
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    for (trip, pts) in &by_trip {
        let mut path = 0.0;
        for (i, w) in pts.windows(2).enumerate() {
            assert_eq!(w[0].0, i as i32);
            let dt = w[1].1 - w[0].1;
            assert!(
                (9.0..=11.0).contains(&dt),
                "trip {trip}: {dt} s between points"
            );
            let d = haversine_m(w[0].2, w[0].3, w[1].2, w[1].3);
            assert!(d / dt < 25.0, "trip {trip}: {} m/s", d / dt);
            path += d;
        }
        let declared = f64::from(distances[trip]);
        assert!(
            (path - declared).abs() < declared * 0.3 + 100.0,
            "trip {trip}: points {path} m, declared {declared} m"
        );
    }

    // The indexes exist and the planner has statistics.
    let idx = scalar_i64(
        pool,
        "SELECT count(*) FROM pg_indexes WHERE indexname IN \
         ('businesses_name_trgm', 'users_email_lower', 'trip_points_business')",
    )
    .await;
    assert_eq!(idx, 3);
}

/// md5 of each table's rows, in a fixed order.
async fn fingerprints(pool: &PgPool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in TABLES {
        let sql = format!(
            "SELECT coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') FROM {t} t"
        );
        let md5: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .unwrap();
        out.push((t.to_string(), md5));
    }
    out
}

#[tokio::test]
async fn same_seed_same_data_other_seed_other_data() {
    let (a, sa) = seeded("seed_det_a", 30, 42).await;
    let (b, sb) = seeded("seed_det_b", 30, 42).await;
    let (c, _) = seeded("seed_det_c", 30, 43).await;
    assert_eq!(sa.per_table, sb.per_table);
    let (fa, fb, fc) = (
        fingerprints(&a.pool).await,
        fingerprints(&b.pool).await,
        fingerprints(&c.pool).await,
    );
    assert_eq!(fa, fb);
    for ((table, x), (_, y)) in fa.iter().zip(&fc) {
        assert_ne!(x, y, "{table} is the same under another seed");
    }
}

#[tokio::test]
async fn progress_is_reported_in_order_across_batches() {
    let db = TestDb::new("seed_progress").await;
    let seen: Mutex<Vec<SeedProgress>> = Mutex::new(Vec::new());
    let stats = seed(
        &db.pool,
        &SeedOptions {
            tenants: 2_100,
            seed: 1,
        },
        &|p| seen.lock().unwrap().push(p),
    )
    .await
    .unwrap();
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.first().unwrap().phase, SeedPhase::Schema);
    let last = seen.last().unwrap();
    assert_eq!(last.phase, SeedPhase::Done);
    assert_eq!((last.tenants_done, last.tenants_total), (2_100, 2_100));
    assert_eq!(last.rows, stats.rows);
    let loading: Vec<u64> = seen
        .iter()
        .filter(|p| p.phase == SeedPhase::Loading)
        .map(|p| p.tenants_done)
        .collect();
    assert_eq!(loading, vec![0, 1_000, 2_000, 2_100]);
    assert!(seen.iter().any(|p| p.phase == SeedPhase::Indexes));
    // Many tenants: about a hundred rows each, some tenants much larger.
    let per_tenant = stats.rows as f64 / 2_100.0;
    assert!((70.0..140.0).contains(&per_tenant), "{per_tenant}");
    let sizes: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM transactions GROUP BY business_id ORDER BY count(*)",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let median = sizes[sizes.len() / 2];
    let max = *sizes.last().unwrap();
    assert!(max > median * 10, "median {median}, max {max}");
}

#[tokio::test]
async fn seeding_over_an_existing_schema_is_an_error_not_a_panic() {
    let db = TestDb::pluto("seed_twice").await;
    let r = seed(
        &db.pool,
        &SeedOptions {
            tenants: 3,
            seed: 1,
        },
        &|_| {},
    )
    .await;
    assert!(r.is_err());
}

#[tokio::test]
async fn hostile_values_survive_copy_unchanged() {
    let db = TestDb::new("seed_copy_escape").await;
    sqlx::raw_sql("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .execute(&db.pool)
        .await
        .unwrap();
    let hostile = [
        "plain",
        "",
        "\\",
        "\\.",
        "\\N",
        "tab\there",
        "line\nbreak\r\nwindows",
        "C:\\Users\\scan\\receipt.jpg",
        "\u{1b}[2J\u{1b}]0;pwned\u{7}",
        "quote ' \" ; -- %_ ",
        "José Zoë Łukasz 🧾",
        "trailing backslash\\",
    ];
    let mut w = RowWriter::new();
    for (i, v) in hostile.iter().enumerate() {
        w.int(i as i64).str(v);
        w.end();
    }
    w.int(hostile.len() as i64).null();
    w.end();
    let (buf, rows) = w.take();
    let mut copy = db
        .pool
        .copy_in_raw("COPY t (id, v) FROM STDIN")
        .await
        .unwrap();
    copy.send(buf).await.unwrap();
    assert_eq!(copy.finish().await.unwrap(), rows);
    let back: Vec<Option<String>> = sqlx::query_scalar("SELECT v FROM t ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let mut expected: Vec<Option<String>> = hostile.iter().map(|s| Some(s.to_string())).collect();
    expected.push(None);
    assert_eq!(back, expected);
}

#[tokio::test]
async fn zero_tenants_gives_the_empty_schema_with_indexes() {
    let (db, stats) = seeded("seed_zero", 0, 1).await;
    assert_eq!((stats.tenants, stats.rows), (0, 0));
    assert!(stats.per_table.iter().all(|(_, n)| *n == 0));
    let idx = scalar_i64(
        &db.pool,
        "SELECT count(*) FROM pg_indexes WHERE indexname = 'businesses_name_trgm'",
    )
    .await;
    assert_eq!(idx, 1);
}
