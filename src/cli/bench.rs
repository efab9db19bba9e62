//! `charon bench search`: the tenant-search benchmark of the foundation issue.
//! Seeds N tenants into a throwaway cluster (or `DATABASE_URL`), then times
//! each query kind through charon's dispatch point and, as the baseline, the
//! same SQL run bare through sqlx. Prints a Markdown table.

use std::time::{Duration, Instant};

use clap::Subcommand;
use sqlx::PgPool;
use uuid::Uuid;

use super::bench_table::{self, Figure, ms, pct};
use super::demo::{seed_into, start_server};
use crate::core::action::{Action, GateInput};
use crate::core::config::{Config, DbUrl, with_database};
use crate::core::console::Console;
use crate::core::session::{Role, Session};
use crate::core::tenants::{self, QueryKind, SEARCH_LIMIT, like_escape};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Tenant search: p50/p95 per query kind, charon against bare SQL.
    Search {
        #[arg(long, default_value_t = 100_000)]
        tenants: u32,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Queries timed per kind.
        #[arg(long, default_value_t = 300)]
        samples: usize,
        /// Use this already seeded Pluto database instead of seeding a
        /// throwaway one (a console database is created beside it and dropped).
        #[arg(long, value_name = "URL")]
        pluto_url: Option<String>,
    },
    /// Erasure of one subject with many rows (issue 7): plan and execute
    /// times and peak memory, in a database seeded with `charon seed`.
    Erasure {
        /// The seeded Pluto database (e.g. 100,000 tenants, 10 M rows).
        #[arg(long, value_name = "URL")]
        pluto_url: String,
        #[arg(long, default_value_t = 1_000)]
        receipts: i64,
        #[arg(long, default_value_t = 500)]
        trips: i64,
        #[arg(long, default_value_t = 2_000_000)]
        points: i64,
    },
    /// Restore test: charon's whole restore test against a bare pg_restore
    /// of the same archive with the same parallelism.
    Restore {
        #[arg(long, default_value_t = 100_000)]
        tenants: u32,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// pg_restore --jobs, for both.
        #[arg(long, default_value_t = 2)]
        jobs: u32,
        /// Runs of each.
        #[arg(long, default_value_t = 2)]
        rounds: u32,
        /// Use this already seeded Pluto database (its server also holds
        /// the scratch databases) instead of seeding a throwaway cluster.
        #[arg(long, value_name = "URL")]
        pluto_url: Option<String>,
    },
    /// Writes the results of a run of every benchmark (JSON lines recorded
    /// through $CHARON_BENCH_RESULTS) as the table at the top of
    /// BENCHMARKS.md. `scripts/bench.sh` runs the benchmarks and then this.
    Table {
        /// The results file.
        #[arg(long, value_name = "PATH")]
        results: std::path::PathBuf,
        /// The Markdown file to update.
        #[arg(long, value_name = "PATH", default_value = "BENCHMARKS.md")]
        write: std::path::PathBuf,
        /// One line on when, where and at what scale the run was made.
        #[arg(long, default_value = "")]
        about: String,
    },
    /// Records one figure measured outside charon (e.g. the seeding time
    /// taken by the script) into $CHARON_BENCH_RESULTS.
    Record {
        #[arg(long)]
        figure: String,
        #[arg(long)]
        target: String,
        #[arg(long)]
        measured: String,
        #[arg(long, default_value = "—")]
        baseline: String,
        /// Whether the target is met (omit where there is no target).
        #[arg(long)]
        met: Option<bool>,
    },
    /// Many concurrent console sessions (search, tenant overview, records
    /// page, record view, each audited): p50/p95/max per action and
    /// throughput; fails when an audit entry is lost or forked or a session
    /// does not finish.
    Load {
        #[arg(long, default_value_t = 50)]
        sessions: usize,
        /// How long the sessions run.
        #[arg(long, default_value_t = 180)]
        secs: u64,
        #[arg(long, default_value_t = 2_000)]
        tenants: u32,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Connections of each of the two shared pools.
        #[arg(long, default_value_t = 20)]
        pool: u32,
        /// Pause between two actions of a session, in milliseconds.
        #[arg(long, default_value_t = 0)]
        think_ms: u64,
    },
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<i32> {
    let (tenants, seed, samples, pluto_url) = match cmd {
        BenchCommand::Search {
            tenants,
            seed,
            samples,
            pluto_url,
        } => (tenants, seed, samples, pluto_url),
        BenchCommand::Erasure {
            pluto_url,
            receipts,
            trips,
            points,
        } => {
            return super::bench_erasure::run(super::bench_erasure::Options {
                pluto_url,
                receipts,
                trips,
                points,
            })
            .await;
        }
        BenchCommand::Restore {
            tenants,
            seed,
            jobs,
            rounds,
            pluto_url,
        } => return super::bench_restore::run(tenants, seed, jobs, rounds, pluto_url).await,
        BenchCommand::Table {
            results,
            write,
            about,
        } => {
            let n = bench_table::write_table(&results, &write, &about)?;
            println!("{n} figures written to {}", write.display());
            return Ok(0);
        }
        BenchCommand::Record {
            figure,
            target,
            measured,
            baseline,
            met,
        } => {
            bench_table::record(&[Figure::new(figure, target, measured, baseline, met)])?;
            return Ok(0);
        }
        BenchCommand::Load {
            sessions,
            secs,
            tenants,
            seed,
            pool,
            think_ms,
        } => {
            let opts = super::bench_load::LoadOptions {
                sessions,
                duration: Duration::from_secs(secs),
                pool_size: pool,
                think: Duration::from_millis(think_ms),
                ..Default::default()
            };
            return super::bench_load::run(tenants, seed, opts).await;
        }
    };
    let (server, pluto, console_url) = match pluto_url {
        Some(url) => {
            let console_db = format!(
                "charon_bench_{}",
                uuid::Uuid::new_v4()
                    .simple()
                    .to_string()
                    .get(..10)
                    .unwrap_or("x")
            );
            let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await?;
            let sql = format!("CREATE DATABASE \"{console_db}\"");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await?;
            let console = with_database(&url, &console_db);
            (
                Err(console_db),
                DbUrl::parse(&url).map_err(anyhow::Error::msg)?,
                DbUrl::parse(&console).map_err(anyhow::Error::msg)?,
            )
        }
        None => {
            let server = start_server().await?;
            let (pluto, console) = server.urls();
            let pluto = DbUrl::parse(&pluto).map_err(anyhow::Error::msg)?;
            seed_into(&pluto, tenants, seed).await?;
            (
                Ok(server),
                pluto,
                DbUrl::parse(&console).map_err(anyhow::Error::msg)?,
            )
        }
    };
    let config = Config::demo(pluto.clone(), console_url);
    crate::cli::demo::migrate_console_at(&config).await?;
    let console = Console::connect(&config, Session::demo(Role::Support)).await?;
    console
        .dispatch(Action::Authenticate(GateInput::DemoRole(Role::Support)))
        .await?;
    let bare = crate::core::db::connect(&pluto, crate::core::db::PLUTO, &config.timeouts).await?;

    let queries = sample_queries(&bare, samples).await?;
    println!(
        "\ntenant search, {tenants} tenants, {samples} queries per kind\n\
         core = tenants::search (classify, SQL, mapping, masking); \
         dispatch = the whole action (role read from the console database, audit entry appended and committed, then core); \
         bare = the same SQL and binds through sqlx, rows not decoded\n"
    );
    println!(
        "| kind | bare p50 | bare p95 | core p50 | core p95 | core overhead p95 | dispatch p50 | dispatch p95 |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut figures = Vec::new();
    for (label, qs) in &queries {
        // Warm-up: caches and prepared statements.
        for q in qs.iter().take(20) {
            console
                .dispatch(Action::SearchTenants { query: q.clone() })
                .await?;
            run_bare(&bare, q).await?;
        }
        let mut times: [Vec<Duration>; 3] = Default::default();
        // Rotate which side runs first, so none always meets a warm cache.
        for (i, q) in qs.iter().enumerate() {
            for k in 0..3 {
                let which = (i + k) % 3;
                let t = Instant::now();
                match which {
                    0 => {
                        run_bare(&bare, q).await?;
                    }
                    1 => {
                        tenants::search(&bare, q, SEARCH_LIMIT).await?;
                    }
                    _ => {
                        console
                            .dispatch(Action::SearchTenants { query: q.clone() })
                            .await?;
                    }
                }
                times[which].push(t.elapsed());
            }
        }
        let [mut b, mut c, mut d] = times;
        let (b50, b95) = (pct(&mut b, 50), pct(&mut b, 95));
        let (c50, c95) = (pct(&mut c, 50), pct(&mut c, 95));
        let (d50, d95) = (pct(&mut d, 50), pct(&mut d, 95));
        println!(
            "| {label} | {} | {} | {} | {} | {:+.0}% | {} | {} |",
            ms(b50),
            ms(b95),
            ms(c50),
            ms(c95),
            overhead(c95, b95),
            ms(d50),
            ms(d95),
        );
        let name_kind = label.starts_with("name");
        figures.push(Figure::new(
            format!("tenant search p95, {label} ({tenants} tenants)"),
            if name_kind { "< 20 ms" } else { "—" },
            ms(c95),
            format!("{} bare SQL", ms(b95)),
            name_kind.then_some(c95 < Duration::from_millis(20)),
        ));
        figures.push(Figure::new(
            format!("tenant search, charon over bare SQL at p95, {label}"),
            "< 20 %",
            format!("{:+.0} %", overhead(c95, b95)),
            format!("{} bare SQL", ms(b95)),
            Some(overhead(c95, b95) < 20.0),
        ));
        figures.push(Figure::new(
            format!("tenant search p95 through dispatch (role + durable audit), {label}"),
            "—",
            ms(d95),
            format!("{} core", ms(c95)),
            None,
        ));
    }
    bench_table::record(&figures)?;
    drop(console);
    match server {
        Ok(server) => drop(server),
        Err(console_db) => {
            let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(pluto.expose()).await?;
            let sql = format!("DROP DATABASE IF EXISTS \"{console_db}\" WITH (FORCE)");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await?;
        }
    }
    Ok(0)
}

fn overhead(ours: Duration, bare: Duration) -> f64 {
    (ours.as_secs_f64() / bare.as_secs_f64().max(1e-9) - 1.0) * 100.0
}

/// Realistic queries drawn from the seeded data itself.
pub(super) async fn sample_queries(
    pool: &PgPool,
    n: usize,
) -> anyhow::Result<Vec<(&'static str, Vec<String>)>> {
    let n = n as i64;
    sqlx::query("SELECT setseed(0.42)").execute(pool).await?;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM businesses ORDER BY random() LIMIT $1")
            .bind(n)
            .fetch_all(pool)
            .await?;
    // What an operator types: the first word or two of the name.
    let names: Vec<String> = names
        .into_iter()
        .map(|name| {
            name.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let emails: Vec<String> =
        sqlx::query_scalar("SELECT email FROM users ORDER BY random() LIMIT $1")
            .bind(n)
            .fetch_all(pool)
            .await?;
    let phones: Vec<String> = sqlx::query_scalar(
        "SELECT right(phone_digits, 7) FROM users WHERE phone IS NOT NULL ORDER BY random() LIMIT $1",
    )
    .bind(n)
    .fetch_all(pool)
    .await?;
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM businesses ORDER BY random() LIMIT $1")
        .bind(n)
        .fetch_all(pool)
        .await?;
    // The first two characters typed, as the list narrows while typing.
    let prefixes = names
        .iter()
        .map(|n| n.chars().take(2).collect::<String>())
        .collect();
    Ok(vec![
        ("name", names),
        ("name, first 2 chars", prefixes),
        ("email", emails),
        ("phone", phones),
        ("id", ids.into_iter().map(|i| i.to_string()).collect()),
    ])
}

/// The same SQL as charon's search, bound the same way, rows left unmapped.
async fn run_bare(pool: &PgPool, q: &str) -> anyhow::Result<usize> {
    let rows = match tenants::classify(q) {
        QueryKind::Recent => {
            sqlx::query(tenants::RECENT_SQL)
                .bind(SEARCH_LIMIT)
                .fetch_all(pool)
                .await?
        }
        QueryKind::Id(id) => {
            sqlx::query(tenants::ID_SQL)
                .bind(id)
                .fetch_all(pool)
                .await?
        }
        QueryKind::Name(name) => {
            let (sql, pattern) = tenants::name_query(&name);
            sqlx::query(sql)
                .bind(&name)
                .bind(pattern)
                .bind(SEARCH_LIMIT)
                .fetch_all(pool)
                .await?
        }
        QueryKind::Email(email) => {
            sqlx::query(tenants::EMAIL_SQL)
                .bind(format!("{}%", like_escape(&email)))
                .bind(SEARCH_LIMIT)
                .fetch_all(pool)
                .await?
        }
        QueryKind::Phone(digits) => {
            let reversed: String = digits.chars().rev().collect();
            sqlx::query(tenants::PHONE_SQL)
                .bind(format!("{reversed}%"))
                .bind(SEARCH_LIMIT)
                .fetch_all(pool)
                .await?
        }
    };
    Ok(rows.len())
}
