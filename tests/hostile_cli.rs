//! Property test: hostile command-line arguments (quotes, `%`, `_`,
//! backslashes, escape sequences, long values, invalid UTF-8) through the
//! real `charon` binary, behind a real OTP on standard input. Every run ends
//! with exit 0, 1 or 2 and, when refused, a clear message on stderr: never a
//! panic, never a database error, never an echo of a reason or ticket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::Cell;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::process::Stdio;

use charon::core::operators;
use charon::core::session::Role;
use common::TestDb;
use common::cli::{Binary, TestOtpKey};
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestRunner};
use uuid::Uuid;

/// A hostile argument: text pieces, sometimes with bytes that are not UTF-8,
/// sometimes long (an argument is at most 128 KiB on Linux).
fn arg() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => prop::sample::select(vec![
            "'", "\"", "%", "_", "\\", "@", "--", ";", "$1", "-x", "--help", "=",
            "\u{1b}[2J", "\u{9b}", "\r\n", "\u{202e}", "é", "東京", " ", "+44 20",
            "4111 1111 1111 1111", "a@b.co", "DROP TABLE businesses;", "%_%",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(prop::sample::select(vec![0xffu8, 0xfe, 0xc3, 0x80, 0xe2]), 1..3),
        2 => "[a-zA-Z0-9]{1,6}".prop_map(String::into_bytes),
    ];
    prop_oneof![
        10 => prop::collection::vec(piece, 0..8).prop_map(|v| v.concat()),
        1 => Just(b"%_\\'".repeat(25_000)),
    ]
    // NUL cannot be passed in an argument at all.
    .prop_map(|mut v| {
        v.retain(|&b| b != 0);
        v
    })
}

/// The commands, with `@` where the hostile argument goes; `true` when the
/// argument is a value (reason, ticket, note, identifier) that charon's own
/// error must not repeat (clap's usage errors, exit 2, quote what was typed
/// on the operator's own terminal).
const TEMPLATES: &[(&[&str], bool)] = &[
    (&["tenants", "search", "@"], false),
    (&["tenants", "search", "--json", "--", "@"], false),
    (&["tenants", "show", "@"], false),
    (
        &[
            "records", "reveal", "--tenant", "T", "--type", "receipts", "--id", "77", "--field",
            "notes", "--reason", "@",
        ],
        true,
    ),
    (
        &[
            "records", "reveal", "--tenant", "T", "--type", "receipts", "--id", "@", "--field",
            "notes", "--reason", "T-1",
        ],
        false,
    ),
    (
        &[
            "records", "reveal", "--tenant", "T", "--type", "receipts", "--id", "77", "--field",
            "@", "--reason", "T-1",
        ],
        false,
    ),
    (
        &[
            "records", "reveal", "--tenant", "T", "--type", "@", "--id", "77", "--field", "notes",
            "--reason", "T-1",
        ],
        false,
    ),
    (
        &[
            "records", "list", "--tenant", "T", "--type", "receipts", "--filter", "@",
        ],
        false,
    ),
    (
        &[
            "records",
            "redact",
            "--tenant",
            "T",
            "--type",
            "receipts",
            "--id",
            "77",
            "--field",
            "notes",
            "--detector",
            "card",
            "--reason",
            "@",
            "--yes",
        ],
        true,
    ),
    (
        &[
            "erasure", "create", "--email", "@", "--ticket", "T-1", "--regime", "gdpr",
        ],
        true,
    ),
    (
        &[
            "erasure", "create", "--phone", "@", "--ticket", "T-1", "--regime", "gdpr",
        ],
        true,
    ),
    (
        &[
            "erasure",
            "create",
            "--email",
            "x@example.org",
            "--ticket",
            "@",
            "--regime",
            "gdpr",
        ],
        true,
    ),
    (
        &[
            "erasure",
            "create",
            "--email",
            "x@example.org",
            "--ticket",
            "T-1",
            "--regime",
            "gdpr",
            "--note",
            "@",
        ],
        true,
    ),
    (
        &[
            "erasure",
            "create",
            "--email",
            "x@example.org",
            "--ticket",
            "T-1",
            "--regime",
            "@",
        ],
        false,
    ),
    (
        &["audit", "export", "--since", "@", "--format", "jsonl"],
        false,
    ),
    (&["datamap", "check", "--map", "@"], false),
    (&["@"], false),
];

#[test]
fn cli_arguments_are_refused_cleanly() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (pluto, console, tenant) = rt.block_on(async {
        let pluto = TestDb::pluto("prop_cli_p").await;
        let console = TestDb::new("prop_cli_c").await;
        charon::core::db::migrate_console(&console.pool).await.unwrap();
        let tenant = Uuid::new_v4();
        let user = Uuid::new_v4();
        for (sql, binds) in [
            ("INSERT INTO businesses (id, name, plan, country, created_at) VALUES ($1, 'Acme 100% Co', 'pro', 'US', now())", 1),
            ("INSERT INTO users (id, email, full_name, phone, created_at) SELECT $2, 'x@example.org', 'X Y', '+44 20 7946 0958', now() WHERE $1::uuid IS NOT NULL", 2),
            ("INSERT INTO memberships (business_id, user_id, role, created_at) VALUES ($1, $2, 'owner', now())", 2),
            ("INSERT INTO receipts (id, business_id, uploaded_by, s3_key, merchant, amount_cents, receipt_date, ocr_text, notes, created_at)
              VALUES (77, $1, $2, 'receipts/x.jpg', 'Shell', 4200, '2025-01-02', 'TOTAL', 'card 4111 1111 1111 1111', now())", 2),
        ] {
            let q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant);
            let q = if binds == 2 { q.bind(user) } else { q };
            q.execute(&pluto.pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        (pluto, console, tenant)
    });
    let master = [4u8; 32];
    let key = TestOtpKey {
        public_id: "cccccbhkevbn",
        aes: [0x33; 16],
        private_id: [6, 5, 4, 3, 2, 1],
    };
    rt.block_on(async {
        let me = operators::os_account().unwrap();
        operators::bootstrap(&console.pool, &me, "CI")
            .await
            .unwrap();
        operators::set_role(&console.pool, &me, Role::Compliance)
            .await
            .unwrap();
        key.enroll(&console.pool, master, &me).await;
    });
    let bin = Binary::new(&pluto.url, &console.url, master);
    let counter = Cell::new(0u8);
    let tenant = tenant.to_string();
    let input = (0..TEMPLATES.len(), arg());
    let mut runner = TestRunner::new(PropConfig {
        cases: 32,
        max_shrink_iters: 16,
        failure_persistence: None,
        ..PropConfig::default()
    });
    runner
        .run(&input, |(t, hostile)| {
            let (template, secret) = TEMPLATES[t];
            let args: Vec<OsString> = template
                .iter()
                .map(|a| match *a {
                    "@" => OsString::from_vec(hostile.clone()),
                    "T" => OsString::from(&tenant),
                    a => OsString::from(a),
                })
                .collect();
            counter.set(counter.get() + 1);
            let otp = key.otp(counter.get());
            let mut child = bin
                .command(&args)
                .env_remove("RUST_BACKTRACE")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // The binary may exit before reading stdin (a usage error).
            let _ = child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{otp}\n").as_bytes());
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let code = out.status.code();
            let cut = |s: &str| s.chars().take(600).collect::<String>();
            let shown = cut(&format!(
                "{template:?} with {:?}: exit {code:?}\n{stderr}",
                String::from_utf8_lossy(&hostile)
            ));
            assert!(matches!(code, Some(0..=2)), "{shown}");
            for bad in [
                "panicked",
                "RUST_BACKTRACE",
                "SQLSTATE",
                "syntax error",
                "database error",
                "invalid byte sequence",
            ] {
                assert!(!stderr.contains(bad), "{shown}");
                assert!(!stdout.contains(bad), "{shown}\n{}", cut(&stdout));
            }
            assert!(!stderr.contains(&otp), "the OTP is echoed: {shown}");
            if code != Some(0) {
                // `tenants search` exits 1 without a word when nothing matches.
                let no_hits = template.starts_with(&["tenants", "search"]) && code == Some(1);
                assert!(no_hits || !stderr.trim().is_empty(), "no message: {shown}");
                // clap's usage errors (exit 2) quote the value as typed.
                assert!(
                    code == Some(2) || stderr.len() < 4096,
                    "an overlong message: {shown}"
                );
                let text = String::from_utf8_lossy(&hostile);
                if secret && code == Some(1) && text.trim().chars().count() >= 6 {
                    assert!(
                        !stderr.contains(text.trim()),
                        "the input is echoed: {shown}"
                    );
                }
            }
            Ok(())
        })
        .unwrap();
}
