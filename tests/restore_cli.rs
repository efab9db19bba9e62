//! `charon restore-test` and `charon backups` through the real binary: an
//! SRE passes the gate with a Yubico OTP on standard input, runs a restore
//! test of a configured `dir` source (exit 0 on pass, 1 on fail, for cron),
//! lists backups and reads the history; every run is in the history and
//! the audit log. Other roles are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use charon::core::audit::{self, AuditFilter, Outcome};
use charon::core::mfa::otp::{self, AesKey, OtpToken, PrivateId};
use charon::core::secrets::MasterKey;
use charon::core::session::Role;
use charon::core::{keys, operators};
use charon::pluto::{SeedOptions, seed};
use common::{TestDb, server_url};

const PUBLIC_ID: &str = "cccccbhkevrt";
const AES: [u8; 16] = [0x21; 16];
const PRIVATE_ID: [u8; 6] = [6, 5, 4, 3, 2, 1];
const MASTER: [u8; 32] = [3; 32];

fn otp_n(n: u8) -> String {
    otp::generate_otp(
        PUBLIC_ID,
        &AesKey::new(AES),
        &OtpToken {
            private_id: PrivateId::new(PRIVATE_ID),
            usage_counter: 1,
            timestamp: 900 + u32::from(n),
            session_use: n,
            random: 3,
        },
    )
    .unwrap()
}

fn run(cfg: &Path, args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_charon"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env("CHARON_AUDIT_KEY", "ab".repeat(32))
        .env("CHARON_MASTER_KEY", hex::encode(MASTER))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test]
async fn restore_test_cli_for_cron_exit_codes_history_and_audit() {
    let pluto = TestDb::new("rc_p").await;
    seed(
        &pluto.pool,
        &SeedOptions {
            tenants: 2,
            seed: 5,
        },
        &|_| {},
    )
    .await
    .unwrap();
    let console = TestDb::new("rc_c").await;
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
    keys::enroll_otp(
        &console.pool,
        &MasterKey::new(MASTER),
        &login,
        "key",
        PUBLIC_ID,
        &AesKey::new(AES),
        &PrivateId::new(PRIVATE_ID),
    )
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("dumps");
    std::fs::create_dir(&backups).unwrap();
    common::pg_dump_with_sha256(pluto.url.expose(), &backups.join("pluto-a.dump"));
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "environment = \"ci\"\npluto_url = \"{}\"\nconsole_url = \"{}\"\n\n\
             [restore]\nserver_url = \"{}\"\nrpo_minutes = 60\n\n\
             [backups.local]\nkind = \"dir\"\npath = \"dumps\"\n\n\
             [backups.offsite]\nkind = \"ssh\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"charon\"\n\
             identity_file = \"id\"\nknown_hosts = \"known_hosts\"\npath = \"/srv\"\nconnect_timeout_secs = 5\n",
            pluto.url.expose(),
            console.url.expose(),
            server_url(),
            // A port nothing listens on: an unreachable backup host.
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        ),
    )
    .unwrap();

    // Pass: exit 0, the JSON verdict.
    let (code, out, err) = run(
        &cfg,
        &[
            "restore-test",
            "run",
            "--source",
            "local",
            "--latest",
            "--json",
        ],
        &format!("{}\n", otp_n(1)),
    );
    assert_eq!(code, Some(0), "stdout: {out}\nstderr: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["passed"], true, "{out}");
    assert_eq!(v["backup"]["id"], "pluto-a.dump");
    assert!(v["history_id"].is_string());

    // backups list
    let (code, out, err) = run(
        &cfg,
        &["backups", "list", "--source", "local", "--json"],
        &format!("{}\n", otp_n(2)),
    );
    assert_eq!(code, Some(0), "{err}");
    let l: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(l["kind"], "dir");
    assert_eq!(l["backups"][0]["id"], "pluto-a.dump");

    // Fail: a flipped byte; exit 1 and the reason on stderr.
    let path = backups.join("pluto-a.dump");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let report = dir.path().join("report.md");
    let (code, out, err) = run(
        &cfg,
        &[
            "restore-test",
            "run",
            "--source",
            "local",
            "--backup",
            "pluto-a.dump",
            "--report",
            report.to_str().unwrap(),
        ],
        &format!("{}\n", otp_n(3)),
    );
    assert_eq!(code, Some(1), "stdout: {out}\nstderr: {err}");
    assert!(out.starts_with("# Restore test: FAIL"), "{out}");
    assert!(
        err.contains("FAILED at `checksum`") && err.contains("sha256 mismatch"),
        "{err}"
    );
    assert!(
        std::fs::read_to_string(&report)
            .unwrap()
            .contains("| checksum | FAIL |")
    );

    // An unknown source: an error, non-zero.
    let (code, _, err) = run(
        &cfg,
        &["restore-test", "run", "--source", "nope"],
        &format!("{}\n", otp_n(4)),
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("no backup source `nope`"), "{err}");

    // The history has both runs, newest first.
    let (code, out, err) = run(
        &cfg,
        &["restore-test", "history", "--json"],
        &format!("{}\n", otp_n(5)),
    );
    assert_eq!(code, Some(0), "{err}");
    let h: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = h.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(rows[0]["passed"], false);
    assert_eq!(rows[0]["failed_check"], "checksum");
    assert_eq!(rows[1]["passed"], true);

    // The audit log: each run before it ran, and its result.
    let entries = audit::list(
        &console.pool,
        &AuditFilter {
            action: Some("restore.run".into()),
            ..AuditFilter::default()
        },
        None,
        20,
    )
    .await
    .unwrap()
    .entries;
    let codes: Vec<(String, Option<String>)> = entries
        .iter()
        .rev()
        .map(|e| (e.entry.event_code.clone(), e.entry.error.clone()))
        .collect();
    assert_eq!(
        codes,
        [
            ("CH6001I".to_string(), None),
            ("CH6001I".to_string(), None),
            ("CH6001I".to_string(), None),
            (
                "CH6001E".to_string(),
                Some("restore_test_failed".to_string())
            ),
            ("CH6001I".to_string(), None),
            ("CH6001E".to_string(), Some("not_found".to_string())),
        ],
        "{entries:#?}"
    );
    let failed = entries
        .iter()
        .find(|e| {
            e.entry.outcome == Outcome::Failed
                && e.entry.error.as_deref() == Some("restore_test_failed")
        })
        .unwrap();
    assert_eq!(failed.entry.details["failed_checks"][0], "checksum");

    // An unreachable backup host: a failed verdict naming the reason, in
    // the history like any other.
    let (code, out, err) = run(
        &cfg,
        &["restore-test", "run", "--source", "offsite", "--json"],
        &format!("{}\n", otp_n(6)),
    );
    assert_eq!(code, Some(1), "stdout: {out}\nstderr: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["passed"], false);
    assert_eq!(v["scratch_db"], serde_json::Value::Null);
    let reason = v["checks"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("cannot connect to charon@127.0.0.1") && reason.contains("refused"),
        "{reason}"
    );
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM restore_tests WHERE source = 'offsite' AND verdict = 'fail'",
    )
    .fetch_one(&console.pool)
    .await
    .unwrap();
    assert_eq!(n, 1);

    // Another role is refused (and audited).
    operators::set_role(&console.pool, &login, Role::Support)
        .await
        .unwrap();
    let (code, _, err) = run(
        &cfg,
        &["restore-test", "run", "--source", "local"],
        &format!("{}\n", otp_n(7)),
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("may not restore.run"), "{err}");
}
