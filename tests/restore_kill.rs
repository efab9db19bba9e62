//! A restore test SIGKILLed in the middle (the process cannot clean up): its
//! scratch database — or, for pgBackRest, its throwaway cluster — stays
//! behind, and the next restore test removes it (its lock died with the
//! process), says so in its report, and passes; the audit chain still
//! verifies. In a test binary of their own, so that no other test's scratch
//! databases or clusters come and go meanwhile (and no other test's restore
//! sweeps the leftover first).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use charon::core::audit::{self, AuditKey};
use charon::core::operators;
use charon::core::session::Role;
use charon::pluto::{SeedOptions, seed};
use common::cli::{Binary, TestOtpKey};
use common::{TestDb, server_url};
use sqlx::{Connection, PgConnection};

const KEY: TestOtpKey = TestOtpKey {
    public_id: "cccccbhkkill",
    aes: [0x44; 16],
    private_id: [9, 8, 7, 6, 5, 4],
};
const MASTER: [u8; 32] = [5; 32];
/// `SCRATCH_LOCK_CLASS` in src/core/restore/mod.rs (0x6368_7273).
const LOCK_CLASS: i32 = 0x6368_7273;

async fn scratch_databases(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE starts_with(datname, 'charon_restore_') ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// A migrated console database with an SRE for this OS account, its OTP
/// key enrolled.
async fn sre_console(prefix: &str) -> TestDb {
    let console = TestDb::new(prefix).await;
    charon::core::db::migrate_console(&console.pool)
        .await
        .unwrap();
    let login = operators::os_account().unwrap();
    operators::bootstrap(&console.pool, &login, "CI SRE")
        .await
        .unwrap();
    operators::set_role(&console.pool, &login, Role::Sre)
        .await
        .unwrap();
    KEY.enroll(&console.pool, MASTER, &login).await;
    console
}

/// Starts `restore-test run --source SOURCE --latest` with the OTP on stdin
/// and the test hook that pauses it right after the restore; returns once
/// it is paused there, to be killed.
fn run_until_paused(bin: &Binary, source: &str, otp: String) -> std::process::Child {
    let mut child = bin
        .command(&["restore-test", "run", "--source", source, "--latest"])
        .env("CHARON_RESTORE_PAUSE_AT", "restored")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{otp}").unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) if line.contains("paused at restored") => return child,
            Ok(line) => seen.push(line),
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the run never reached the pause point; stderr: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_test_killed_mid_run_leaves_its_scratch_database_to_the_next_run() {
    let pluto = TestDb::new("rk_p").await;
    seed(
        &pluto.pool,
        &SeedOptions {
            tenants: 2,
            seed: 9,
        },
        &|_| {},
    )
    .await
    .unwrap();
    let console = sre_console("rk_c").await;
    let bin = Binary::with_config(
        &pluto.url,
        &console.url,
        MASTER,
        &format!(
            "[restore]\nserver_url = \"{}\"\nrpo_minutes = 60\n\n[backups.local]\nkind = \"dir\"\npath = \"dumps\"\n",
            server_url()
        ),
    );
    let dumps = bin.dir.path().join("dumps");
    std::fs::create_dir(&dumps).unwrap();
    common::pg_dump_with_sha256(pluto.url.expose(), &dumps.join("pluto.dump"));
    let before = scratch_databases(&pluto.pool).await;

    // The first run stops right after pg_restore (a test hook) and is killed there.
    let mut child = run_until_paused(&bin, "local", KEY.otp(1));
    let during = scratch_databases(&pluto.pool).await;
    let mine: Vec<&String> = during.iter().filter(|n| !before.contains(n)).collect();
    assert_eq!(mine.len(), 1, "before {before:?}, during {during:?}");
    let leftover = mine[0].clone();
    child.kill().unwrap(); // SIGKILL: no destructor, no cleanup
    child.wait().unwrap();
    assert!(
        scratch_databases(&pluto.pool).await.contains(&leftover),
        "the killed run could not have removed {leftover}"
    );

    // The server ends the killed run's sessions once it sees their sockets
    // close; until then its lock is held. Wait until it is free.
    let started = Instant::now();
    loop {
        let mut c = PgConnection::connect(&server_url()).await.unwrap();
        let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext($2))")
            .bind(LOCK_CLASS)
            .bind(&leftover)
            .fetch_one(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap(); // releases it again
        if free {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the killed run's lock is still held"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The next run removes it, says so, and passes.
    let (code, out, err) = bin.run(
        &["restore-test", "run", "--source", "local", "--latest"],
        &format!("{}\n", KEY.otp(2)),
    );
    assert_eq!(code, Some(0), "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("left by an interrupted run") && out.contains(&leftover),
        "{out}"
    );
    let after = scratch_databases(&pluto.pool).await;
    assert_eq!(after, before, "scratch databases left: {after:?}");

    let key = AuditKey::from_hex(&"ab".repeat(32)).unwrap();
    let verdict = audit::verify(&console.pool, &key, None, None, |_| {})
        .await
        .unwrap();
    assert!(verdict.is_intact(), "{verdict}");
}

/// The throwaway clusters (`charon-restore-*` under `$TMPDIR`) there are
/// now, with their postmaster's pid when one runs.
fn restore_clusters() -> Vec<(std::path::PathBuf, Option<i32>)> {
    let mut out: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(charon::core::restore::pgbackrest::CLUSTER_PREFIX)
        })
        .map(|e| {
            let pid = std::fs::read_to_string(e.path().join("data/postmaster.pid"))
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()));
            (e.path(), pid)
        })
        .collect();
    out.sort();
    out
}

/// The same for the pgBackRest source, whose restore goes into a throwaway
/// cluster: a SIGKILLed run leaves the cluster running and its directory in
/// place; the next run stops and deletes it (its lock died with the
/// process), says so, and passes.
#[tokio::test(flavor = "multi_thread")]
async fn a_pgbackrest_restore_test_killed_mid_run_leaves_its_cluster_to_the_next_run() {
    let fx = common::pgbackrest::pgbackrest_fixture().await;
    let console = sre_console("rkb_c").await;
    let pluto_url = charon::core::config::DbUrl::parse(&fx.cluster.url("pluto")).unwrap();
    let bin = Binary::with_config(
        &pluto_url,
        &console.url,
        MASTER,
        &format!(
            "[restore]\nrpo_minutes = 60\n\n[backups.wal]\nkind = \"pgbackrest\"\nstanza = \"test\"\nconfig = \"{}\"\ndatabase = \"pluto\"\n",
            fx.cfg.display()
        ),
    );
    let before = restore_clusters();

    let mut child = run_until_paused(&bin, "wal", KEY.otp(1));
    let during = restore_clusters();
    let mine: Vec<_> = during.iter().filter(|c| !before.contains(c)).collect();
    assert_eq!(mine.len(), 1, "before {before:?}, during {during:?}");
    let (leftover, postmaster) = mine[0].clone();
    let postmaster = postmaster.expect("the restored cluster is running");
    child.kill().unwrap(); // SIGKILL: no destructor, no cleanup
    child.wait().unwrap();
    assert!(
        leftover.exists(),
        "the killed run could not have removed it"
    );
    // Alive: a process that is not a zombie (PID 1 in a container may be
    // slow to reap it).
    let alive = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|st| {
                st.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().to_string())
            })
            .is_some_and(|rest| !rest.starts_with('Z'))
    };
    assert!(alive(postmaster), "its server outlives the killed run");

    let (code, out, err) = bin.run(
        &["restore-test", "run", "--source", "wal", "--latest"],
        &format!("{}\n", KEY.otp(2)),
    );
    assert_eq!(code, Some(0), "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("left by an interrupted run") && out.contains(&leftover.display().to_string()),
        "{out}"
    );
    assert!(!leftover.exists(), "{} is still there", leftover.display());
    let started = Instant::now();
    while alive(postmaster) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the leftover cluster's server (pid {postmaster}) still runs"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(restore_clusters(), before, "a cluster was left");

    let key = AuditKey::from_hex(&"ab".repeat(32)).unwrap();
    let verdict = audit::verify(&console.pool, &key, None, None, |_| {})
        .await
        .unwrap();
    assert!(verdict.is_intact(), "{verdict}");
    fx.live.close().await;
}
