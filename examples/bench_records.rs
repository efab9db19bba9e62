//! Records benchmark (issue 6, "Performance"): a tenant with 1,000,000
//! transactions and 5,000,000 GPS points (plus smaller neighbours), then
//! p50/p95 of opening the tenant, the first and the last keyset page of each
//! tab, masked (`records::list`) against the same query unmasked.
//!
//! ```text
//! cargo run --release --example bench_records [-- SAMPLES]
//! ```
//!
//! Uses `CHARON_BENCH_DATABASE_URL`, else `DATABASE_URL`, else
//! `postgres://postgres@127.0.0.1:5432/postgres`; creates and finally drops
//! a database `charon_bench_records_<random>` there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::str::FromStr;
use std::time::{Duration, Instant};

use charon::cli::bench_table::{self, Figure, ms};
use charon::core::datamap::{DataMap, validate_against_catalog};
use charon::core::records::{self, At, Kind, Query, SortBy};
use charon::core::tenants;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

const TRANSACTIONS: i64 = 1_000_000;
const TRIPS: i64 = 50_000;
const POINTS_PER_TRIP: i64 = 100; // 5,000,000 points

/// The big tenant's rows, then a neighbour's (same shapes, fewer rows).
async fn load(pool: &sqlx::PgPool, biz: Uuid, off: i64, scale: i64) {
    let user = Uuid::new_v4();
    let conn = Uuid::new_v4();
    let acct = Uuid::new_v4();
    let stmts: Vec<String> = vec![
        "INSERT INTO businesses VALUES ($1, 'Bench Co ' || $2, 'enterprise', 'US', now())".into(),
        "INSERT INTO users (id, email, full_name, phone, created_at)
         VALUES ($3, 'owner' || $2 || '@example.com', 'Owen Bench', '+1 415-555-0100', now())"
            .into(),
        "INSERT INTO memberships VALUES ($1, $3, 'owner', now())".into(),
        "INSERT INTO users (id, email, full_name, phone, created_at)
         SELECT md5($2::text || g)::uuid, 'm' || g || '.' || $2 || '@example.com', 'Member ' || g, NULL, now()
           FROM generate_series(1, 200) g"
            .into(),
        "INSERT INTO memberships SELECT $1, md5($2::text || g)::uuid, 'employee', now() - g * interval '1 day'
           FROM generate_series(1, 200) g"
            .into(),
        "INSERT INTO bank_connections VALUES ($4, $1, $3, 'First Bank', 'item-' || $2, 'active', now())"
            .into(),
        "INSERT INTO bank_accounts VALUES ($5, $1, $4, 'Checking', '1234', 'depository')".into(),
        format!(
            "INSERT INTO transactions
             SELECT $2 + g, $1, $5, '2020-01-01'::timestamptz + g * interval '97 seconds',
                    (g::bigint * 7919) % 500000 - 1000,
                    CASE WHEN g % 7 = 0 THEN 'ACH CREDIT JANE DOE' ELSE 'Merchant ' || (g % 1000) END,
                    CASE WHEN g % 97 = 0 THEN 'card 4111 1111 1111 1111 ref ' || g ELSE 'purchase ' || g END,
                    'ops'
               FROM generate_series(1, {}) g",
            TRANSACTIONS / scale
        ),
        format!(
            "INSERT INTO receipts
             SELECT $2 + g, $1, $3, 'r/' || g, 'Store', g % 10000, '2020-01-01'::date + (g / 100)::int,
                    'TOTAL ' || g || ' VISA 5555555555554444', CASE WHEN g % 3 = 0 THEN 'call +1 415 555 0134' END,
                    '2020-01-01'::timestamptz + g * interval '10 minutes'
               FROM generate_series(1, {}) g",
            100_000 / scale
        ),
        format!(
            "INSERT INTO invoices
             SELECT $2 + g, $1, 'INV-' || g, 'Jane Q Doe', 'jane' || g || '@example.com', '1 Main St',
                    g % 100000, '2020-01-01', '2020-02-01', 'sent',
                    '2020-01-01'::timestamptz + g * interval '30 minutes'
               FROM generate_series(1, {}) g",
            100_000 / scale
        ),
        format!(
            "INSERT INTO trips
             SELECT $2 + g, $1, $3, '2020-01-01'::timestamptz + g * interval '1 hour',
                    '2020-01-01 00:40'::timestamptz + g * interval '1 hour', (g * 31) % 50000, 'visit'
               FROM generate_series(1, {}) g",
            TRIPS / scale
        ),
        format!(
            "INSERT INTO trip_points
             SELECT $2 + t, s, $1, '2020-01-01'::timestamptz + t * interval '1 hour' + s * interval '20 seconds',
                    37.7 + s * 0.0005, -122.4 + s * 0.0003
               FROM generate_series(1, {}) t, generate_series(1, {POINTS_PER_TRIP}) s",
            TRIPS / scale
        ),
        format!(
            "INSERT INTO shifts
             SELECT $2 + g, $1, $3, '2020-01-01'::timestamptz + g * interval '1 day',
                    '2020-01-01 08:00'::timestamptz + g * interval '1 day', CASE WHEN g % 5 = 0 THEN 'swap' END
               FROM generate_series(1, {}) g",
            50_000 / scale
        ),
        format!(
            "INSERT INTO payroll_entries
             SELECT $2 + g, $1, $3, '2020-01-01', '2020-01-31', 500000 + g % 1000, 400000, '123-45-6789',
                    'GB82WEST12345698765432', '2020-02-01'::timestamptz + g * interval '1 day'
               FROM generate_series(1, {}) g",
            20_000 / scale
        ),
    ];
    for s in stmts {
        sqlx::query(sqlx::AssertSqlSafe(s))
            .bind(biz)
            .bind(off)
            .bind(user)
            .bind(conn)
            .bind(acct)
            .execute(pool)
            .await
            .unwrap();
    }
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let samples: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let server = std::env::var("CHARON_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!(
        "charon_bench_records_{}",
        &Uuid::new_v4().simple().to_string()[..8]
    );
    let mut admin = PgConnection::connect(&server).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .unwrap();
    let options = PgConnectOptions::from_str(&server).unwrap().database(&name);
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap();

    // The work runs in its own task so that the database is dropped even
    // when it panics.
    let outcome = tokio::spawn(run(pool.clone(), samples)).await;
    pool.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn run(pool: sqlx::PgPool, samples: usize) {
    let started = Instant::now();
    sqlx::raw_sql(charon::pluto::SCHEMA)
        .execute(&pool)
        .await
        .unwrap();
    // CHARON_BENCH_RECORDS_DIVISOR=N divides every row count by N, for a
    // quick run of the benchmark runner; the figures then say so.
    let divisor: i64 = std::env::var("CHARON_BENCH_RECORDS_DIVISOR")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|d| *d >= 1)
        .unwrap_or(1);
    let big = Uuid::new_v4();
    load(&pool, big, 0, divisor).await;
    for i in 1..=4 {
        load(&pool, Uuid::new_v4(), i * 10_000_000, 20 * divisor).await;
    }
    sqlx::raw_sql(charon::pluto::INDEXES)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::raw_sql("VACUUM ANALYZE")
        .execute(&pool)
        .await
        .unwrap();
    let (tx, pts): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM transactions WHERE business_id = $1),
                (SELECT count(*) FROM trip_points WHERE business_id = $1)",
    )
    .bind(big)
    .fetch_one(&pool)
    .await
    .unwrap();
    println!(
        "loaded in {:.0} s: big tenant has {tx} transactions, {pts} GPS points\n",
        started.elapsed().as_secs_f64()
    );

    let map = DataMap::bundled().unwrap();
    let catalog = validate_against_catalog(&pool, &map).await.unwrap();

    // Opening the tenant.
    let mut open = Vec::new();
    for _ in 0..samples {
        let t = Instant::now();
        tenants::detail(&pool, big).await.unwrap().unwrap();
        open.push(t.elapsed());
    }
    let open95 = pct(&mut open, 0.95);
    println!(
        "open tenant (overview with record counts): p50 {} p95 {}\n",
        ms(pct(&mut open, 0.5)),
        ms(open95)
    );
    let target = Duration::from_millis(50);
    let mut figures = vec![Figure::new(
        format!("records: open a tenant with {tx} transactions, p95"),
        "< 50 ms",
        ms(open95),
        "—",
        Some(open95 < target),
    )];
    // The slowest page of any tab, and the masking overhead over all pages.
    let (mut worst_page, mut worst_page_bare, mut worst_page_at) =
        (Duration::ZERO, Duration::ZERO, String::new());
    let (mut sum_masked, mut sum_bare) = (Duration::ZERO, Duration::ZERO);

    println!("{samples} samples each; masked = records::list, bare = same SQL without masking\n");
    println!(
        "| tab | page | masked p50 | masked p95 | bare p50 | bare p95 | masking overhead p95 |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for kind in Kind::ALL {
        let mut cases = vec![
            ("first (date)", SortBy::Date, At::First),
            ("last (date)", SortBy::Date, At::Last),
        ];
        if kind.has_amount() {
            cases.push(("first (amount)", SortBy::Amount, At::First));
            cases.push(("last (amount)", SortBy::Amount, At::Last));
        }
        for (label, sort, at) in cases {
            let q = Query {
                sort,
                at,
                limit: 50,
                ..Query::default()
            };
            // Warm-up.
            for _ in 0..5 {
                records::list(&pool, &map, &catalog, big, kind, &q)
                    .await
                    .unwrap();
                records::list_bare_count(&pool, &map, &catalog, big, kind, &q)
                    .await
                    .unwrap();
            }
            let (mut masked, mut bare) = (Vec::new(), Vec::new());
            for i in 0..samples {
                // Alternate which side runs first.
                for side in [i % 2, 1 - i % 2] {
                    let t = Instant::now();
                    if side == 0 {
                        records::list(&pool, &map, &catalog, big, kind, &q)
                            .await
                            .unwrap();
                        masked.push(t.elapsed());
                    } else {
                        records::list_bare_count(&pool, &map, &catalog, big, kind, &q)
                            .await
                            .unwrap();
                        bare.push(t.elapsed());
                    }
                }
            }
            let (m50, m95) = (pct(&mut masked, 0.5), pct(&mut masked, 0.95));
            let (b50, b95) = (pct(&mut bare, 0.5), pct(&mut bare, 0.95));
            let overhead = (m95.as_secs_f64() / b95.as_secs_f64() - 1.0) * 100.0;
            println!(
                "| {} | {label} | {} | {} | {} | {} | {overhead:+.1}% |",
                kind.label(),
                ms(m50),
                ms(m95),
                ms(b50),
                ms(b95),
            );
            if m95 > worst_page {
                (worst_page, worst_page_bare, worst_page_at) =
                    (m95, b95, format!("{}, {label}", kind.label()));
            }
            sum_masked += m95;
            sum_bare += b95;
        }
    }
    // A trip's route (100 points).
    let mut route = Vec::new();
    for i in 0..samples {
        let t = Instant::now();
        records::trip_route(
            &pool,
            &map,
            &catalog,
            big,
            1 + (i as i64 * 487) % (TRIPS / divisor),
        )
        .await
        .unwrap()
        .unwrap();
        route.push(t.elapsed());
    }
    let route95 = pct(&mut route, 0.95);
    println!(
        "\ntrip route (100 points, masked): p50 {} p95 {}",
        ms(pct(&mut route, 0.5)),
        ms(route95)
    );
    figures.push(Figure::new(
        format!("records: slowest keyset page p95 ({worst_page_at})"),
        "< 50 ms",
        ms(worst_page),
        format!("{} bare SQL", ms(worst_page_bare)),
        Some(worst_page < target),
    ));
    // Over all pages together: single sub-millisecond pages swing by
    // ±15 % between runs on this machine.
    let masking = (sum_masked.as_secs_f64() / sum_bare.as_secs_f64() - 1.0) * 100.0;
    figures.push(Figure::new(
        "records: masking overhead at p95, all tabs and pages together",
        "< 10 %",
        format!("{masking:+.1} %"),
        format!("{} bare SQL (sum of p95s)", ms(sum_bare)),
        Some(masking < 10.0),
    ));
    figures.push(Figure::new(
        "records: a trip's route (100 points, masked), p95",
        "< 50 ms",
        ms(route95),
        "—",
        Some(route95 < target),
    ));
    bench_table::record(&figures).unwrap();
}
