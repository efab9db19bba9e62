//! `charon bench erasure`: plan and execute the erasure of one subject with
//! many rows (default 1,000 receipts, 500 trips, 2,000,000 GPS points) in a
//! seeded Pluto database, timing each phase and sampling the process's
//! resident memory. The subject is inserted fresh each run (a new person in
//! one tenant), so the seeded database can be reused; a console database is
//! created beside it and dropped; the receipt images live in a temporary
//! local object store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

use super::bench_table::{self, Figure};
use crate::core::config::{DbUrl, ErasureConfig, SystemConfig, with_database};
use crate::core::datamap::{Catalog, DataMap};
use crate::core::erasure::{
    self, ExecuteOutcome, Executor, NewRequest, Regime, Subject, Systems, store::RequestKind,
};
use crate::core::secrets::MasterKey;

pub struct Options {
    pub pluto_url: String,
    pub receipts: i64,
    pub trips: i64,
    pub points: i64,
}

/// Resident set size of this process, in KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Samples RSS every 5 ms until dropped; `peak()` is the highest seen.
struct RssPeak {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssPeak {
    fn start() -> RssPeak {
        let peak = Arc::new(AtomicU64::new(rss_kib()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        RssPeak { peak, stop }
    }

    fn peak_mib(&self) -> f64 {
        self.peak.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

impl Drop for RssPeak {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn insert_subject(pool: &PgPool, o: &Options) -> anyhow::Result<(Subject, String)> {
    let user = Uuid::new_v4();
    let email = format!("bench-{}@example.test", user.simple());
    let business: Uuid = sqlx::query_scalar("SELECT id FROM businesses ORDER BY id LIMIT 1")
        .fetch_one(pool)
        .await?;
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO users (id, email, full_name, phone, created_at)
         VALUES ($1, $2, 'Bench Subject-Person', NULL, now())",
    )
    .bind(user)
    .bind(&email)
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO memberships VALUES ($1, $2, 'employee', now())")
        .bind(business)
        .bind(user)
        .execute(&mut *tx)
        .await?;
    let base: i64 = sqlx::query_scalar(
        "SELECT greatest((SELECT coalesce(max(id), 0) FROM receipts),
                         (SELECT coalesce(max(id), 0) FROM trips)) + 1",
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO receipts (id, business_id, uploaded_by, s3_key, merchant, amount_cents,
                               receipt_date, ocr_text, notes, created_at)
         SELECT $1 + g, $2, $3, 'bench/' || $3::text || '/' || g || '.jpg', 'Cafe', 100 + g,
                DATE '2025-01-01' + (g % 300)::int, 'TOTAL ' || g, NULL, now()
           FROM generate_series(1, $4) g",
    )
    .bind(base)
    .bind(business)
    .bind(user)
    .bind(o.receipts)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO trips SELECT $1 + g, $2, $3, now(), now(), 1000, 'client visit'
           FROM generate_series(1, $4) g",
    )
    .bind(base)
    .bind(business)
    .bind(user)
    .bind(o.trips)
    .execute(&mut *tx)
    .await?;
    let per_trip = (o.points / o.trips.max(1)).max(1);
    sqlx::query(
        "INSERT INTO trip_points
         SELECT $1 + t, s, $2, now(), 52.0 + s * 0.0001, 4.0
           FROM generate_series(1, $3) t, generate_series(1, $4::int) s",
    )
    .bind(base)
    .bind(business)
    .bind(o.trips)
    .bind(per_trip)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    sqlx::query("ANALYZE trip_points").execute(pool).await?;
    Ok((
        Subject {
            emails: vec![email],
            ..Subject::default()
        },
        user.to_string(),
    ))
}

pub async fn run(o: Options) -> anyhow::Result<i32> {
    let pluto_url = DbUrl::parse(&o.pluto_url).map_err(anyhow::Error::msg)?;
    let timeouts = crate::core::config::Timeouts {
        statement: Duration::from_secs(600),
        ..Default::default()
    };
    let pluto = crate::core::db::connect(&pluto_url, crate::core::db::PLUTO, &timeouts).await?;
    let rows: i64 = sqlx::query_scalar(
        "SELECT sum(n_live_tup)::bigint FROM pg_stat_user_tables WHERE schemaname = 'public'",
    )
    .fetch_one(&pluto)
    .await?;

    let console_db = format!(
        "charon_bench_{}",
        &Uuid::new_v4().simple().to_string()[..10]
    );
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(pluto_url.expose()).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE \"{console_db}\""
    )))
    .execute(&mut admin)
    .await?;
    let result = bench(&o, &pluto, &pluto_url, &console_db, rows).await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{console_db}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    result
}

async fn bench(
    o: &Options,
    pluto: &PgPool,
    pluto_url: &DbUrl,
    console_db: &str,
    rows: i64,
) -> anyhow::Result<i32> {
    let console_url =
        DbUrl::parse(&with_database(pluto_url.expose(), console_db)).map_err(anyhow::Error::msg)?;
    let console =
        crate::core::db::connect(&console_url, crate::core::db::CONSOLE, &Default::default())
            .await?;
    crate::core::db::migrate_console(&console).await?;

    let t = Instant::now();
    let (subject, _user) = insert_subject(pluto, o).await?;
    let inserted = t.elapsed();
    let map = DataMap::bundled()?;
    let catalog = Catalog::load(pluto).await?;

    // Receipt images in a local object store.
    let dir = tempfile::tempdir()?;
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket)?;
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT r.s3_key FROM receipts r JOIN users u ON u.id = r.uploaded_by
          WHERE u.email = $1",
    )
    .bind(&subject.emails[0])
    .fetch_all(pluto)
    .await?;
    for k in &keys {
        let p = bucket.join(k);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, b"jpeg")?;
    }
    let mut cfg = ErasureConfig::default();
    cfg.systems.insert(
        "receipts_bucket".into(),
        SystemConfig {
            url: url::Url::from_directory_path(&bucket)
                .map_err(|_| anyhow::anyhow!("bucket path"))?,
            options: Default::default(),
            client_id: None,
            secret_file: None,
        },
    );
    let systems = Systems::from_config(&cfg, &map)?;

    let base_rss = rss_kib() as f64 / 1024.0;
    let mem = RssPeak::start();
    let t = Instant::now();
    let found = erasure::discover(pluto, &map, &catalog, &subject).await?;
    let p = erasure::plan(&found)?;
    let plan_time = t.elapsed();
    let plan_peak = mem.peak_mib();
    drop(found);
    drop(mem);

    let key = [9u8; 32];
    let id = erasure::create_request(
        &console,
        &key,
        &NewRequest {
            id: Uuid::new_v4(),
            kind: RequestKind::Erasure,
            subject: &subject,
            ticket: "BENCH".into(),
            regime: Regime::Gdpr,
            note: String::new(),
            received_at: chrono::Utc::now(),
            created_by: "bench-a".into(),
        },
    )
    .await?;
    erasure::store_plan(&console, id, &p, "bench-a").await?;
    erasure::approve(&console, id, "bench-b", &p.sha256).await?;

    let seal = MasterKey::new([3; 32]);
    let export_dir = dir.path().join("exports");
    let exec = Executor {
        pluto,
        console: &console,
        map: &map,
        catalog: &catalog,
        key: &key,
        seal: &seal,
        systems: &systems,
        export_dir: &export_dir,
    };
    let mem = RssPeak::start();
    let t = Instant::now();
    let out = exec.execute(id, &subject, "bench-c", &mut |_| {}).await?;
    let exec_time = t.elapsed();
    let exec_peak = mem.peak_mib();
    drop(mem);
    let ExecuteOutcome::Done(r) = out else {
        anyhow::bail!("the plan changed during the benchmark");
    };
    let rows_planned: u64 = p.per_table.iter().map(|t| t.rows).sum();
    println!(
        "\nerasure of one subject: {} receipts, {} trips, {} GPS points; database {} rows (pg_stat estimate)\n",
        o.receipts, o.trips, o.points, rows
    );
    println!("| phase | time | peak RSS | RSS before |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| insert the subject (setup, not timed against a target) | {:.2} s | | |",
        inserted.as_secs_f64()
    );
    println!(
        "| plan (discover + plan, {rows_planned} rows) | {:.2} s | {plan_peak:.0} MiB | {base_rss:.0} MiB |",
        plan_time.as_secs_f64()
    );
    println!(
        "| execute (re-discover, apply in one transaction, commit, {} objects deleted) | {:.2} s | {exec_peak:.0} MiB | {base_rss:.0} MiB |",
        r.queue.done,
        exec_time.as_secs_f64()
    );
    println!(
        "\nrows deleted {}, pseudonymised {}, redacted {}; request complete: {}",
        r.rows_deleted, r.rows_pseudonymised, r.rows_redacted, r.complete
    );
    let growth = plan_peak.max(exec_peak) - base_rss;
    bench_table::record(&[
        Figure::new(
            format!("erasure plan, one subject with {rows_planned} rows"),
            "< 2 s",
            format!("{:.2} s", plan_time.as_secs_f64()),
            "—",
            Some(plan_time < Duration::from_secs(2)),
        ),
        Figure::new(
            format!(
                "erasure execute, {} rows deleted, {} objects",
                r.rows_deleted, r.queue.done
            ),
            "< 10 s",
            format!("{:.2} s", exec_time.as_secs_f64()),
            "—",
            Some(exec_time < Duration::from_secs(10)),
        ),
        Figure::new(
            "erasure memory: peak RSS growth while planning and executing",
            "flat in the number of rows (< 64 MiB for 2 M rows)",
            format!("{growth:+.0} MiB"),
            format!("{base_rss:.0} MiB before"),
            Some(growth < 64.0),
        ),
    ])?;
    Ok(0)
}
