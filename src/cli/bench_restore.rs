//! `charon bench restore`: the restore-test benchmark of issue 8. Seeds a
//! Pluto database (or uses `--pluto-url`), dumps it with `pg_dump -Fc`, then
//! times, in the same run and on the same server, a bare `pg_restore -j N`
//! of the archive into an empty database and charon's whole restore test
//! of the same archive (with the same -j), twice each, alternating. Prints
//! a Markdown table: the restore alone against the bare one, and what the
//! checksum and the checks add on top.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::bench_table::{self, Figure};
use super::demo::{seed_into, start_server};
use crate::core::config::{DbUrl, with_database};
use crate::core::restore::{
    self, DirSource, Ledger, RestoreOptions, RestoreProgress, Source, tools,
};

pub async fn run(
    tenants: u32,
    seed: u64,
    jobs: u32,
    rounds: u32,
    pluto_url: Option<String>,
) -> anyhow::Result<i32> {
    let (_server, pluto) = match pluto_url {
        Some(url) => (None, DbUrl::parse(&url).map_err(anyhow::Error::msg)?),
        None => {
            let server = start_server().await?;
            let (pluto, _) = server.urls();
            let pluto = DbUrl::parse(&pluto).map_err(anyhow::Error::msg)?;
            let t = Instant::now();
            seed_into(&pluto, tenants, seed).await?;
            eprintln!(
                "seeded {tenants} tenants in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            (Some(server), pluto)
        }
    };
    let admin_url = with_database(pluto.expose(), "postgres");
    let live = sqlx::PgPool::connect(pluto.expose()).await?;
    let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&live)
        .await?;
    let rows: i64 = sqlx::query_scalar(
        "SELECT sum(n_live_tup)::bigint FROM pg_stat_user_tables WHERE schemaname = 'public'",
    )
    .fetch_one(&live)
    .await?;

    let dir = tempfile::Builder::new().prefix("charon-bench-").tempdir()?;
    let archive = dir.path().join("pluto.dump");
    let t = Instant::now();
    let pg_dump = tools::find("pg_dump", None).ok_or_else(|| anyhow::anyhow!("no pg_dump"))?;
    let out = tools::command_for(&pg_dump, pluto.expose(), false)
        .arg("-Fc")
        .arg("-f")
        .arg(&archive)
        .env("TZ", "UTC")
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "pg_dump failed: {}",
        tools::tail(&String::from_utf8_lossy(&out.stderr))
    );
    let dump_s = t.elapsed().as_secs_f64();
    let hash = sha256(&archive).await?;
    std::fs::write(
        dir.path().join("pluto.dump.sha256"),
        format!("{hash}  pluto.dump\n"),
    )?;
    let archive_size = std::fs::metadata(&archive)?.len();

    // A console database for the ledger (empty: nothing to replay).
    let console_db = scratch_name("console");
    create_db(&admin_url, &console_db).await?;
    let console = sqlx::PgPool::connect(&with_database(&admin_url, &console_db)).await?;
    crate::core::db::migrate_console(&console).await?;

    let source = Source::from(DirSource::new("bench", dir.path()));
    let backup = source.get("pluto.dump").await?;
    let opts = RestoreOptions {
        rpo: Duration::from_secs(24 * 3600),
        rto: Duration::from_secs(4 * 3600),
        jobs,
        ledger: Some(Ledger {
            console: console.clone(),
            key: [0; 32],
        }),
        ..RestoreOptions::default()
    };

    let mut bare = Vec::new();
    let mut ours = Vec::new();
    for round in 0..rounds {
        // Alternate which runs first, so neither always meets a warm cache.
        for k in 0..2 {
            if (round + k) % 2 == 0 {
                let b = bare_restore(&admin_url, &archive, jobs).await?;
                eprintln!("bare run: {:.2} s", b.as_secs_f64());
                bare.push(b);
            } else {
                let steps: Mutex<BTreeMap<&'static str, Duration>> = Mutex::new(BTreeMap::new());
                let last: Mutex<(&'static str, Duration)> =
                    Mutex::new(("checksum", Duration::ZERO));
                let record = |p: RestoreProgress| {
                    let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
                    if p.step != l.0 {
                        let mut s = steps.lock().unwrap_or_else(|e| e.into_inner());
                        *s.entry(l.0).or_default() += p.elapsed.saturating_sub(l.1);
                        *l = (p.step, p.elapsed);
                    }
                };
                let t = Instant::now();
                let v =
                    restore::run_restore_test(&source, &backup, &live, &admin_url, &opts, &record)
                        .await;
                let total = t.elapsed();
                {
                    let l = last.lock().unwrap_or_else(|e| e.into_inner());
                    let mut s = steps.lock().unwrap_or_else(|e| e.into_inner());
                    *s.entry(l.0).or_default() += total.saturating_sub(l.1);
                }
                anyhow::ensure!(v.passed, "the restore test failed:\n{}", v.to_markdown());
                let mut steps = steps.into_inner().unwrap_or_else(|e| e.into_inner());
                // The "restore" step also creates the empty scratch database:
                // pg_restore alone is `restore_ms`; the rest is overhead.
                let pg_restore = Duration::from_millis(v.restore_ms.unwrap_or(0));
                let step = steps.remove("restore").unwrap_or_default();
                steps.insert("restore", pg_restore);
                steps.insert("create scratch database", step.saturating_sub(pg_restore));
                eprintln!(
                    "charon run: total {:.2} s, pg_restore {:.2} s",
                    total.as_secs_f64(),
                    pg_restore.as_secs_f64()
                );
                ours.push((total, steps));
            }
        }
    }
    live.close().await;
    console.close().await;
    drop_db(&admin_url, &console_db).await?;

    println!(
        "\nrestore test, {tenants} tenants, {rows} rows, database {:.2} GB, archive {:.2} GB (pg_dump -Fc {dump_s:.1} s), pg_restore -j {jobs}, {rounds} rounds\n",
        size as f64 / 1e9,
        archive_size as f64 / 1e9
    );
    println!(
        "| run | bare pg_restore | charon: checksum, target, CREATE DATABASE | pg_restore | checks | DROP DATABASE | total | pg_restore vs bare | checks + checksum on top of the restore | the same with the drop |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let (mut sum_bare, mut sum_restore, mut sum_checks) = (0.0, 0.0, 0.0);
    for (i, (b, (total, steps))) in bare.iter().zip(&ours).enumerate() {
        let get = |n: &str| steps.get(n).copied().unwrap_or_default();
        let checksum =
            get("checksum") + get("age") + get("scratch target") + get("create scratch database");
        let restore = get("restore");
        let cleanup = get("cleanup");
        let checks: Duration = steps
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    **k,
                    "checksum"
                        | "age"
                        | "scratch target"
                        | "create scratch database"
                        | "restore"
                        | "cleanup"
                )
            })
            .map(|(_, v)| *v)
            .sum();
        let r = restore.as_secs_f64().max(1e-9);
        sum_bare += b.as_secs_f64();
        sum_restore += restore.as_secs_f64();
        sum_checks += (checks + checksum).as_secs_f64();
        println!(
            "| {} | {:.1} s | {:.1} s | {:.1} s | {:.1} s | {:.1} s | {:.1} s | {:+.1}% | {:+.1}% | {:+.1}% |",
            i + 1,
            b.as_secs_f64(),
            checksum.as_secs_f64(),
            restore.as_secs_f64(),
            checks.as_secs_f64(),
            cleanup.as_secs_f64(),
            total.as_secs_f64(),
            pct(restore, *b),
            100.0 * (checks + checksum).as_secs_f64() / r,
            100.0 * (checks + checksum + cleanup).as_secs_f64() / r,
        );
    }
    let vs_bare = 100.0 * (sum_restore / sum_bare.max(1e-9) - 1.0);
    let on_top = 100.0 * sum_checks / sum_restore.max(1e-9);
    let runs = bare.len().min(ours.len());
    bench_table::record(&[
        Figure::new(
            format!(
                "restore test: pg_restore -j {jobs} inside charon vs bare, {:.2} GB, {runs} pairs",
                size as f64 / 1e9
            ),
            "no slower than bare",
            format!("{sum_restore:.1} s ({vs_bare:+.1} %)"),
            format!("{sum_bare:.1} s bare pg_restore"),
            // Same command, same flags: within 5 % is the noise of this machine.
            Some(vs_bare <= 5.0),
        ),
        Figure::new(
            "restore test: all checks + checksum on top of the restore (mean)",
            "< 25 %",
            format!("{on_top:+.1} %"),
            format!("{sum_restore:.1} s restore"),
            Some(on_top < 25.0),
        ),
    ])?;
    if let Some((_, steps)) = ours.last() {
        println!("\nper step (last run):");
        for (k, v) in steps {
            println!("- {k}: {:.2} s", v.as_secs_f64());
        }
    }
    Ok(0)
}

fn pct(a: Duration, b: Duration) -> f64 {
    100.0 * (a.as_secs_f64() / b.as_secs_f64().max(1e-9) - 1.0)
}

fn scratch_name(what: &str) -> String {
    format!(
        "charon_bench_{what}_{}",
        uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .get(..10)
            .unwrap_or("x")
    )
}

async fn create_db(admin: &str, name: &str) -> anyhow::Result<()> {
    let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(admin).await?;
    // The name is generated from a UUID.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut c)
        .await?;
    Ok(())
}

async fn drop_db(admin: &str, name: &str) -> anyhow::Result<()> {
    let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut c)
    .await?;
    Ok(())
}

/// A bare `pg_restore -j N` into a new empty database (created before the
/// clock starts, dropped after it stops): the same flags charon uses.
async fn bare_restore(admin: &str, archive: &Path, jobs: u32) -> anyhow::Result<Duration> {
    let name = scratch_name("bare");
    create_db(admin, &name).await?;
    let program =
        tools::find("pg_restore", None).ok_or_else(|| anyhow::anyhow!("no pg_restore"))?;
    let t = Instant::now();
    let out = tools::command_for(&program, &with_database(admin, &name), false)
        .args(["--no-owner", "--no-acl", "--exit-on-error"])
        .arg(format!("--jobs={jobs}"))
        .arg(archive)
        .output()
        .await?;
    let took = t.elapsed();
    drop_db(admin, &name).await?;
    anyhow::ensure!(
        out.status.success(),
        "bare pg_restore failed: {}",
        tools::tail(&String::from_utf8_lossy(&out.stderr))
    );
    Ok(took)
}

async fn sha256(path: &Path) -> anyhow::Result<String> {
    let mut f = tokio::fs::File::open(path).await?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or_default());
    }
    Ok(hex::encode(h.finalize()))
}
