//! Audit log benchmark (not a test): appends entries from one session, each
//! its own committed (durable) transaction through `audit::append`, then
//! verifies a chain of N entries, and prints appends/s, verified entries/s
//! and the process's memory before and during verify.
//!
//! ```text
//! cargo run --release --example bench_audit -- [N] [--appends A] [--async-commit]
//! ```
//!
//! N (default 1,000,000) is the length of the chain verified. A (default
//! min(N, 20,000)) entries are appended durably through `audit::append` and
//! timed: that is the append figure. One session commits at the disk's fsync
//! rate (a few hundred per second here), so appending all of 1,000,000 that
//! way takes most of an hour; the other N - A entries are therefore written
//! by a bulk loader in this benchmark, which computes the same chain (same
//! canonical bytes, same HMAC key, times rising after the last appended
//! entry) and inserts 10,000 rows per transaction. Verify cannot tell them
//! apart. `--appends N` appends every entry through `audit::append`.
//!
//! `--async-commit` sets `synchronous_commit = off` for the benchmark's
//! connections: appends are then NOT durable. It is there only to show how
//! much of the append time is the server's WAL flush (the disk) rather than
//! charon's code; charon itself never sets it.
//!
//! The server comes from `CHARON_TEST_DATABASE_URL`, else `DATABASE_URL`, else
//! `postgres://postgres@127.0.0.1:5432/postgres`. A database
//! `charon_bench_<random>` is created for the run and dropped afterwards.

use std::str::FromStr;
use std::time::Instant;

use anyhow::Context;
use charon::cli::bench_table::{self, Figure};
use charon::core::audit::{self, AuditKey, Hash, NewEntry, Outcome, canonical};
use charon::core::db;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let async_commit = args.iter().any(|a| a == "--async-commit");
    let number = |a: &str| -> anyhow::Result<u64> {
        a.replace(['_', ','], "")
            .parse()
            .context("N and A must be numbers")
    };
    let appends_at = args.iter().position(|a| a == "--appends");
    let appends: Option<u64> = match appends_at {
        Some(i) => Some(number(
            args.get(i + 1).context("--appends takes a number")?,
        )?),
        None => None,
    };
    let n: u64 = match args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with("--") && appends_at.map(|p| p + 1) != Some(*i))
    {
        Some((_, a)) => number(a)?,
        None => 1_000_000,
    };
    let appends = appends.unwrap_or(20_000).min(n);
    let server = std::env::var("CHARON_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let name = format!(
        "charon_bench_{}",
        &Uuid::new_v4().simple().to_string()[..12]
    );
    let mut admin = PgConnection::connect(&server).await?;
    // The name is generated above: safe to interpolate.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await?;
    let result = run(&server, &name, n, appends, async_commit).await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    result
}

async fn run(
    server: &str,
    name: &str,
    n: u64,
    appends: u64,
    async_commit: bool,
) -> anyhow::Result<()> {
    let mut options = PgConnectOptions::from_str(server)?.database(name);
    if async_commit {
        println!("NOTE: synchronous_commit = off: appends are NOT durable in this run");
        options = options.options([("synchronous_commit", "off")]);
    }
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?;
    db::migrate_console(&pool).await?;
    let settings: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, setting FROM pg_settings
          WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'server_version',
                         'commit_delay')
          ORDER BY name",
    )
    .fetch_all(&pool)
    .await?;
    println!("server: {settings:?}");

    let key = AuditKey::generate()?;
    let session = Uuid::new_v4();
    let mut entry = NewEntry {
        operator: "bench".into(),
        role: "support".into(),
        key_id: Some("yubikey-otp:ccccccbench".into()),
        session_id: session,
        event_code: "CH2002I".into(),
        action: "tenant.open".into(),
        tenant_id: Some(Uuid::new_v4()),
        target_table: Some("businesses".into()),
        target_pk: None,
        target_columns: vec![],
        reason: None,
        outcome: Outcome::Allowed,
        error: None,
        details: serde_json::json!({ "query_kind": "email", "query_len": 27 }),
    };
    println!("appending {appends} entries, one transaction each (one session) ...");
    let t = Instant::now();
    let mut lap = Instant::now();
    let mut last = None;
    for i in 1..=appends {
        entry.target_pk = Some(i.to_string());
        last = Some(audit::append(&pool, &key, &entry).await?);
        if i % 10_000 == 0 {
            println!(
                "  {i}: {:.0} appends/s over the last 10,000",
                10_000.0 / lap.elapsed().as_secs_f64()
            );
            lap = Instant::now();
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let append_secs = secs;
    println!(
        "append: {appends} entries in {secs:.1} s = {:.0} appends/s (each durable unless --async-commit)",
        appends as f64 / secs
    );
    if n > appends {
        let t = Instant::now();
        bulk_load(&pool, &key, &mut entry, last.as_ref(), n).await?;
        println!(
            "bulk load (not timed as appends): entries {} to {n} in {:.1} s",
            appends + 1,
            t.elapsed().as_secs_f64()
        );
    }

    let rss_before = rss_kib("VmRSS:");
    let mut rss_max = rss_before;
    let t = Instant::now();
    let verdict = audit::verify(&pool, &key, None, None, |_| {
        rss_max = rss_max.max(rss_kib("VmRSS:"));
    })
    .await?;
    let secs = t.elapsed().as_secs_f64();
    println!("verify: {verdict}");
    println!(
        "verify: {n} entries in {secs:.2} s = {:.0} entries/s; RSS {} KiB before, at most {} KiB during",
        n as f64 / secs,
        rss_before,
        rss_max
    );
    anyhow::ensure!(verdict.is_intact(), "chain not intact: {verdict}");
    let append_rate = appends as f64 / append_secs;
    let verify_rate = n as f64 / secs;
    bench_table::record(&[
        Figure::new(
            format!("audit: durable appends/s, one session ({appends} appends)"),
            ">= 2,000 /s",
            format!("{append_rate:.0} /s"),
            "the disk's fsync rate (pg_test_fsync)",
            Some(append_rate >= 2_000.0),
        ),
        Figure::new(
            format!("audit: verified entries/s, chain of {n}"),
            ">= 300,000 /s",
            format!("{verify_rate:.0} /s"),
            "—",
            Some(verify_rate >= 300_000.0),
        ),
        Figure::new(
            format!("audit: memory during verify of {n} entries"),
            "flat in N",
            format!("{} KiB peak RSS", rss_max),
            format!("{rss_before} KiB before"),
            None,
        ),
    ])?;

    // A second pass (pages now cached, hint bits set), and the cost of only
    // fetching the rows, to see where verify's time goes.
    let t = Instant::now();
    let again = audit::verify(&pool, &key, None, None, |_| {}).await?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "verify (second pass): {again}: {:.0} entries/s",
        n as f64 / secs
    );
    let t = Instant::now();
    let mut after = 0i64;
    let mut fetched = 0usize;
    loop {
        let rows = sqlx::query(
            "SELECT seq, at, operator, role, key_id, session_id, event_code, action, tenant_id,
                    target_table, target_pk, target_columns, reason, outcome, error, details,
                    prev_hash, hash
               FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 10000",
        )
        .bind(after)
        .fetch_all(&pool)
        .await?;
        let Some(last) = rows.last() else { break };
        after = sqlx::Row::try_get(last, 0)?;
        fetched += rows.len();
    }
    println!(
        "fetch only (no decode, no hash): {fetched} rows at {:.0} rows/s",
        fetched as f64 / t.elapsed().as_secs_f64()
    );
    pool.close().await;
    Ok(())
}

/// Writes entries after `last` up to seq `n`, chained exactly as
/// `audit::append` chains them (same canonical bytes, same key), 10,000 per
/// transaction, then moves the head. For the benchmark only.
async fn bulk_load(
    pool: &sqlx::PgPool,
    key: &AuditKey,
    entry: &mut NewEntry,
    last: Option<&audit::AuditRecord>,
    n: u64,
) -> anyhow::Result<()> {
    let (mut seq, mut prev, mut at) = match last {
        Some(r) => (r.seq, r.hash, r.at),
        None => (0, audit::GENESIS, chrono::Utc::now()),
    };
    let n = i64::try_from(n)?;
    let e = entry.clone();
    while seq < n {
        let upto = (seq + 10_000).min(n);
        let mut seqs = Vec::new();
        let mut ats = Vec::new();
        let mut pks = Vec::new();
        let mut prevs: Vec<Vec<u8>> = Vec::new();
        let mut hashes: Vec<Vec<u8>> = Vec::new();
        for s in seq + 1..=upto {
            at += chrono::Duration::microseconds(1_000);
            entry.target_pk = Some(s.to_string());
            let hash: Hash = key.mac(&canonical::encode(s, at.timestamp_micros(), entry, &prev));
            seqs.push(s);
            ats.push(at);
            pks.push(s.to_string());
            prevs.push(prev.to_vec());
            hashes.push(hash.to_vec());
            prev = hash;
        }
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO audit_log (seq, at, operator, role, key_id, session_id, event_code,
                 action, tenant_id, target_table, target_pk, target_columns, reason, outcome,
                 error, details, prev_hash, hash)
             SELECT s, a, $3, $4, $5, $6, $7, $8, $9, $10, pk, '{}', NULL, $11, NULL,
                    $12::jsonb, p, h
               FROM unnest($1::bigint[], $2::timestamptz[], $13::text[], $14::bytea[],
                           $15::bytea[]) AS u(s, a, pk, p, h)",
        )
        .bind(&seqs)
        .bind(&ats)
        .bind(&e.operator)
        .bind(&e.role)
        .bind(&e.key_id)
        .bind(e.session_id)
        .bind(&e.event_code)
        .bind(&e.action)
        .bind(e.tenant_id)
        .bind(&e.target_table)
        .bind(e.outcome.as_str())
        .bind(e.details.to_string())
        .bind(&pks)
        .bind(&prevs)
        .bind(&hashes)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id")
            .bind(upto)
            .bind(&prev[..])
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        seq = upto;
    }
    Ok(())
}
