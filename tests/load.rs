//! 50 concurrent console sessions through the one dispatch point (the path
//! the TUI and the CLI take: authorised, audited, then run) doing tenant
//! searches, tenant overviews, records pages and record views: no audit
//! entry lost or forked, no deadlock, p95 per action printed.
//!
//! It runs on a private cluster (the demo's throwaway one, Unix socket only)
//! so that 50 sessions and their two pools never eat into the shared test
//! server's connections. `CHARON_LOAD_SECS` sets how long the sessions run
//! (default 30); `charon bench load` runs the same [`run_load`] for minutes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use charon::cli::bench_load::{LoadOptions, Op, run_load};
use charon::core::config::{Config, DbUrl};
use charon::demo::Cluster;
use charon::pluto::seed::{SeedOptions, seed};
use sqlx::{Connection, PgConnection};

fn load_secs() -> u64 {
    std::env::var("CHARON_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_sessions_lose_and_fork_no_audit_entry_and_all_finish() {
    let cluster = tokio::task::spawn_blocking(Cluster::start)
        .await
        .unwrap()
        .expect("a private PostgreSQL cluster (postgresql installed)");
    let mut admin = PgConnection::connect(&cluster.url("postgres"))
        .await
        .unwrap();
    for db in ["pluto", "console"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let pluto = DbUrl::parse(&cluster.url("pluto")).unwrap();
    let console = DbUrl::parse(&cluster.url("console")).unwrap();
    let pool = sqlx::PgPool::connect(pluto.expose()).await.unwrap();
    seed(
        &pool,
        &SeedOptions {
            tenants: 300,
            seed: 5,
        },
        &|_| {},
    )
    .await
    .unwrap();
    pool.close().await;
    let pool = sqlx::PgPool::connect(console.expose()).await.unwrap();
    charon::core::db::migrate_console(&pool).await.unwrap();
    pool.close().await;

    let config = Config::demo(pluto, console);
    let opts = LoadOptions {
        sessions: 50,
        duration: Duration::from_secs(load_secs()),
        pool_size: 20,
        think: Duration::ZERO,
        grace: Duration::from_secs(60),
    };
    let report = run_load(&config, &opts).await.unwrap();
    println!("{}", report.table());

    let problems = report.problems();
    assert!(problems.is_empty(), "{problems:#?}\n{}", report.table());
    assert_eq!(report.stuck_sessions, 0);
    assert_eq!(report.failed, 0);
    // Every action kind ran, and each entry is accounted for.
    for st in &report.stats {
        assert!(st.ok > 0, "{:?} never ran", st.op);
        if st.op != Op::RecordView {
            assert!(st.ok >= 50, "{:?}: {} actions only", st.op, st.ok);
        }
    }
    assert_eq!(report.audit_entries, report.expected_entries);
    assert_eq!(report.audit_entries, report.succeeded as i64);
    assert!(report.verdict.is_intact(), "{}", report.verdict);
    drop(cluster);
}
