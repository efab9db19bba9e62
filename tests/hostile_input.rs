//! Property tests: arbitrary strings (quotes, `%`, `_`, backslashes, NUL,
//! escape sequences, 1 MB inputs) through every text input of the dispatch
//! point on a real PostgreSQL: the tenant search, the reveal reason, the
//! redaction inputs, the erasure request fields, the gate's OTP entry, and
//! configuration values. Each input either works or is refused with a clear
//! `InvalidInput`-style error that does not echo it; never a panic, never a
//! database error. The CLI's arguments (invalid UTF-8 too) through the real
//! binary are in `hostile_cli.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use charon::core::Error;
use charon::core::action::{Action, GateInput, Reply};
use charon::core::audit::AuditKey;
use charon::core::config::Config;
use charon::core::console::Console;
use charon::core::erasure::store::RequestKind;
use charon::core::erasure::{Regime, Subject};
use charon::core::records;
use charon::core::session::{Role, Session};
use charon::core::tenants::{self, Matched};
use common::TestDb;
use common::cli::TestOtpKey;
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestRunner};
use uuid::Uuid;

/// Pieces that break naive code: SQL and LIKE metacharacters, NUL and other
/// controls, terminal escapes, bidi overrides, non-ASCII, phone and e-mail
/// shapes.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "'", "''", "\"", "%", "_", "\\", "\\\\", "\0", "@", "--", ";", "$1", "?",
            "\u{1b}[2J", "\u{1b}]0;x\u{7}", "\u{9b}", "\r\n", "\t", "\u{202e}", "\u{200b}",
            "é", "東京", "🦀", " ", "+44 (0)20", "0", "12345678", "*", "[REDACTED:card]",
            "4111 1111 1111 1111", "a@b.co", "DROP TABLE businesses;", "%_%", "\u{fffd}",
        ])
        .prop_map(str::to_string),
        2 => "[a-zA-Z0-9 ]{1,6}",
        1 => any::<String>().prop_map(|s| s.chars().take(8).collect()),
    ]
}

/// A hostile string: mostly short concatenations of [`piece`]s, now and then
/// a piece repeated to one megabyte.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => prop::collection::vec(piece(), 0..10).prop_map(|v| v.concat()),
        1 => piece().prop_map(|p| {
            let p = if p.is_empty() { "x".to_string() } else { p };
            p.repeat((1 << 20) / p.len() + 1)
        }),
    ]
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(PropConfig {
        cases,
        max_shrink_iters: 32,
        failure_persistence: None,
        ..PropConfig::default()
    })
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// What an error may never be or say, whatever was typed. `input` is a
/// value that the message must not repeat (a reason, a ticket, an
/// identifier, an OTP); pass "" for values it may name (a field name).
fn assert_clean_error(e: &Error, input: &str) {
    let msg = e.to_string();
    assert!(
        !matches!(
            e,
            Error::Database(_) | Error::AuditUnavailable(_) | Error::Unavailable { .. }
        ),
        "database error for hostile input: {msg}"
    );
    for leak in [
        "SQLSTATE",
        "syntax error",
        "invalid byte sequence",
        "panicked",
    ] {
        assert!(!msg.contains(leak), "{msg}");
    }
    let t = input.trim();
    if t.chars().count() >= 6 {
        assert!(!msg.contains(t), "the error echoes the input: {msg}");
    }
    assert!(msg.len() < 1000, "an overlong message: {} bytes", msg.len());
}

struct Setup {
    pluto: TestDb,
    console_db: TestDb,
    config: Config,
}

async fn setup(prefix: &str) -> Setup {
    let pluto = TestDb::pluto(&format!("{prefix}_p")).await;
    let console_db = TestDb::new(&format!("{prefix}_c")).await;
    charon::core::db::migrate_console(&console_db.pool)
        .await
        .unwrap();
    let config = Config::demo(pluto.url.clone(), console_db.url.clone());
    Setup {
        pluto,
        console_db,
        config,
    }
}

impl Setup {
    fn console(&self, session: Session) -> Console {
        Console::from_pools(
            &self.config,
            session,
            self.pluto.pool.clone(),
            self.console_db.pool.clone(),
            AuditKey::generate().unwrap(),
        )
        .unwrap()
    }

    async fn demo(&self, role: Role) -> Console {
        let c = self.console(Session::demo(role));
        c.dispatch(Action::Authenticate(GateInput::DemoRole(role)))
            .await
            .unwrap();
        c
    }

    /// A business with one receipt whose notes hold a card number.
    async fn receipt(&self) -> (Uuid, i64) {
        let tenant = Uuid::new_v4();
        let user = Uuid::new_v4();
        sqlx::query("INSERT INTO businesses (id, name, plan, country, created_at) VALUES ($1, 'Acme Plumbing', 'pro', 'US', now())")
            .bind(tenant)
            .execute(&self.pluto.pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO users (id, email, full_name, phone, created_at) VALUES ($1, 'rita@example.org', 'Rita Receipt', '+1 415 555 0101', now())")
            .bind(user)
            .execute(&self.pluto.pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO memberships (business_id, user_id, role, created_at) VALUES ($1, $2, 'owner', now())")
            .bind(tenant)
            .bind(user)
            .execute(&self.pluto.pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO receipts (id, business_id, uploaded_by, s3_key, merchant, amount_cents, receipt_date, ocr_text, notes, created_at)
                     VALUES (77, $1, $2, 'receipts/x.jpg', 'Shell', 4200, '2025-01-02', 'TOTAL 42.00', 'paid with 4111 1111 1111 1111 thanks', now())")
            .bind(tenant)
            .bind(user)
            .execute(&self.pluto.pool)
            .await
            .unwrap();
        (tenant, 77)
    }
}

/// The tenant search: any text gives hits or a clear refusal, through the
/// dispatch point (audited) and the core query.
#[test]
fn tenant_search_takes_any_text() {
    let rt = rt();
    let s = rt.block_on(setup("prop_search"));
    rt.block_on(s.receipt());
    let c = rt.block_on(s.demo(Role::Support));
    runner(96)
        .run(&hostile(), |q| {
            rt.block_on(async {
                match c.dispatch(Action::SearchTenants { query: q.clone() }).await {
                    Ok(Reply::Tenants(hits)) => assert!(hits.len() <= 50),
                    Ok(other) => panic!("unexpected reply {other:?}"),
                    Err(e) => {
                        assert!(matches!(e, Error::InvalidInput(_)), "{e}");
                        assert_clean_error(&e, &q);
                    }
                }
            });
            Ok(())
        })
        .unwrap();
}

/// `%`, `_` and `\` in a name search match literally: a business named with
/// the typed text is found, and every hit that is not a close trigram match
/// contains the text.
#[test]
fn name_search_matches_like_metacharacters_literally() {
    let rt = rt();
    let s = rt.block_on(setup("prop_like"));
    let names = [
        "Plain Name Ltd",
        "100 Percent Co",
        "A B Corp",
        "Back Slash Inc",
        "xx%yy",
        "xx_yy",
        "xx\\yy",
    ];
    rt.block_on(async {
        for n in names {
            sqlx::query("INSERT INTO businesses (id, name, plan, country, created_at) VALUES ($1, $2, 'pro', 'US', now())")
                .bind(Uuid::new_v4())
                .bind(n)
                .execute(&s.pluto.pool)
                .await
                .unwrap();
        }
    });
    let fragment = prop::collection::vec(
        prop::sample::select(vec!["%", "_", "\\", "'", "xx", "yy", "a", " ", "Co", "%_"]),
        1..6,
    )
    .prop_map(|v| v.concat());
    runner(64)
        .run(&fragment, |frag| {
            rt.block_on(async {
                let id = Uuid::new_v4();
                let name = format!("Zq{frag}Zq");
                sqlx::query("INSERT INTO businesses (id, name, plan, country, created_at) VALUES ($1, $2, 'pro', 'US', now())")
                    .bind(id)
                    .bind(&name)
                    .execute(&s.pluto.pool)
                    .await
                    .unwrap();
                let q = frag.trim();
                if let tenants::QueryKind::Name(_) = tenants::classify(q) {
                    let hits = tenants::search(&s.pluto.pool, q, 50).await.unwrap();
                    let lower = q.to_lowercase();
                    if q.chars().count() >= 3 {
                        assert!(
                            hits.iter().any(|h| h.id == id),
                            "{name:?} not found by {q:?}"
                        );
                        for h in &hits {
                            if let Matched::Name { similarity } = h.matched
                                && similarity < 0.59
                            {
                                assert!(
                                    h.name.to_lowercase().contains(&lower),
                                    "{q:?} matched {:?} not literally",
                                    h.name
                                );
                            }
                        }
                    } else {
                        for h in &hits {
                            assert!(
                                h.name.to_lowercase().starts_with(&lower),
                                "{q:?} matched {:?} not as a prefix",
                                h.name
                            );
                        }
                    }
                }
                sqlx::query("DELETE FROM businesses WHERE id = $1")
                    .bind(id)
                    .execute(&s.pluto.pool)
                    .await
                    .unwrap();
            });
            Ok(())
        })
        .unwrap();
}

/// A reveal's reason and field name: any text is revealed (with a step-up)
/// or refused clearly.
#[test]
fn reveal_takes_any_reason_and_field() {
    let rt = rt();
    let s = rt.block_on(setup("prop_reveal"));
    let (tenant, id) = rt.block_on(s.receipt());
    let c = rt.block_on(s.demo(Role::Support));
    let input = (
        hostile(),
        prop_oneof![3 => Just("notes".to_string()), 1 => hostile()],
    );
    runner(40)
        .run(&input, |(reason, field)| {
            rt.block_on(async {
                let reveal = Action::Reveal {
                    tenant,
                    kind: records::Kind::Receipts,
                    id: records::Pk::Int(id),
                    field: field.clone(),
                    reason: reason.clone(),
                };
                let step = c
                    .dispatch(Action::StepUp {
                        input: GateInput::DemoRole(Role::Support),
                        action: Box::new(reveal.clone()),
                    })
                    .await;
                if let Err(e) = &step {
                    assert_clean_error(e, &reason);
                    return;
                }
                match c.dispatch(reveal).await {
                    Ok(Reply::Revealed { .. }) => {
                        assert_eq!(field, "notes");
                        assert!(!reason.trim().is_empty());
                    }
                    Ok(other) => panic!("unexpected reply {other:?}"),
                    Err(e) => assert_clean_error(&e, &reason),
                }
            });
            Ok(())
        })
        .unwrap();
}

/// Redaction: any field name in the preview and any reason when applying.
#[test]
fn redaction_takes_any_field_and_reason() {
    let rt = rt();
    let s = rt.block_on(setup("prop_redact"));
    let (tenant, id) = rt.block_on(s.receipt());
    let c = rt.block_on(s.demo(Role::Compliance));
    let input = (
        hostile(),
        prop_oneof![3 => Just("notes".to_string()), 1 => hostile()],
    );
    runner(32)
        .run(&input, |(reason, field)| {
            rt.block_on(async {
                // Restore the value, so every case has something to redact.
                sqlx::query("UPDATE receipts SET notes = 'paid with 4111 1111 1111 1111 thanks' WHERE id = $1")
                    .bind(id)
                    .execute(&s.pluto.pool)
                    .await
                    .unwrap();
                let preview = Action::RedactPreview {
                    tenant,
                    kind: records::Kind::Receipts,
                    id: records::Pk::Int(id),
                    field: field.clone(),
                    how: records::How::Span(charon::core::detect::Detector::Card),
                };
                let token = match c.dispatch(preview).await {
                    Ok(Reply::RedactionPreview { token, .. }) => token,
                    Ok(other) => panic!("unexpected reply {other:?}"),
                    Err(e) => {
                        assert_clean_error(&e, "");
                        return;
                    }
                };
                let apply = Action::RedactApply {
                    preview: token,
                    reason: reason.clone(),
                };
                if let Err(e) = c
                    .dispatch(Action::StepUp {
                        input: GateInput::DemoRole(Role::Compliance),
                        action: Box::new(apply.clone()),
                    })
                    .await
                {
                    assert_clean_error(&e, &reason);
                    return;
                }
                match c.dispatch(apply).await {
                    Ok(_) => assert!(!reason.trim().is_empty()),
                    Err(e) => {
                        assert!(matches!(e, Error::InvalidInput(_)), "{e}");
                        assert_clean_error(&e, &reason);
                    }
                }
            });
            Ok(())
        })
        .unwrap();
}

/// An erasure request's fields: subject e-mails and phones, ticket, note.
#[test]
fn erasure_request_takes_any_fields() {
    let rt = rt();
    let s = rt.block_on(setup("prop_erasure"));
    let c = rt.block_on(s.demo(Role::Compliance));
    let input = (
        prop::collection::vec(hostile(), 0..3),
        prop::collection::vec(hostile(), 0..3),
        hostile(),
        hostile(),
        prop::bool::ANY,
    );
    runner(40)
        .run(&input, |(emails, phones, ticket, note, access)| {
            rt.block_on(async {
                let create = Action::ErasureCreate {
                    id: Uuid::new_v4(),
                    kind: if access {
                        RequestKind::Access
                    } else {
                        RequestKind::Erasure
                    },
                    subject: Subject {
                        emails: emails.clone(),
                        phones: phones.clone(),
                        user_ids: Vec::new(),
                    },
                    ticket: ticket.clone(),
                    regime: Regime::Gdpr,
                    note: note.clone(),
                };
                match c.dispatch(create).await {
                    Ok(_) => assert!(!ticket.trim().is_empty()),
                    Err(e) => {
                        assert!(matches!(e, Error::InvalidInput(_)), "{e}");
                        for input in emails.iter().chain(&phones).chain([&ticket, &note]) {
                            assert_clean_error(&e, input);
                        }
                    }
                }
            });
            Ok(())
        })
        .unwrap();
}

/// The gate's OTP entry: anything typed is refused as a failed attempt (or
/// as malformed), never echoed, and a real OTP still passes afterwards.
#[test]
fn gate_otp_entry_takes_any_text() {
    let rt = rt();
    let s = rt.block_on(setup("prop_gate"));
    let key = TestOtpKey {
        public_id: "vvbbccddeeff",
        aes: [9; 16],
        private_id: [3; 6],
    };
    let master = [5u8; 32];
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    std::fs::write(&key_file, hex::encode(master)).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut config = s.config.clone();
    config.mfa.allow_software_keys = false;
    config.mfa.master_key_file = Some(key_file);
    rt.block_on(async {
        charon::core::operators::bootstrap(&s.console_db.pool, "olga", "Olga")
            .await
            .unwrap();
        key.enroll(&s.console_db.pool, master, "olga").await;
    });
    let console = || {
        Console::from_pools(
            &config,
            Session {
                id: Uuid::new_v4(),
                operator: "olga".into(),
                role: Role::Admin,
                demo: false,
                key_id: None,
            },
            s.pluto.pool.clone(),
            s.console_db.pool.clone(),
            AuditKey::generate().unwrap(),
        )
        .unwrap()
    };
    let c = console();
    let otp = prop_oneof![
        4 => hostile(),
        1 => "[cbdefghijklnrtuv]{44}",
        1 => "vvbbccddeeff[cbdefghijklnrtuvCBDEFGHIJKLNRTUV]{32}",
    ];
    runner(48)
        .run(&otp, |typed| {
            rt.block_on(async {
                charon::core::operators::unlock(&s.console_db.pool, "olga")
                    .await
                    .unwrap();
                match c
                    .dispatch(Action::Authenticate(GateInput::Otp(typed.clone())))
                    .await
                {
                    Ok(r) => panic!("accepted {typed:?}: {r:?}"),
                    Err(e) => assert_clean_error(&e, &typed),
                }
            });
            Ok(())
        })
        .unwrap();
    rt.block_on(async {
        charon::core::operators::unlock(&s.console_db.pool, "olga")
            .await
            .unwrap();
        let c = console();
        c.dispatch(Action::Authenticate(GateInput::Otp(key.otp(1))))
            .await
            .unwrap();
    });
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Every string value of the configuration: loaded, or refused with the
/// file, the line and the key named, and no database password shown.
#[test]
fn config_takes_any_value() {
    let keys = [
        "environment",
        "pluto_url",
        "pluto_read_url",
        "console_url",
        "theme",
        "themes_dir",
        "mfa.master_key_file",
        "mfa.validation_url",
        "mfa.validation_client_id",
        "audit.key_file",
        "audit.mirror_jsonl",
        "erasure.export_dir",
        "restore.server_url",
        "restore.pg_bin_dir",
    ];
    let input = (prop::sample::select(keys.to_vec()), hostile());
    runner(128)
        .run(&input, |(key, value)| {
            let mut top = vec![
                (
                    "pluto_url".to_string(),
                    toml_string("postgres://charon:Sup3rSecretPw@db/pluto"),
                ),
                (
                    "console_url".to_string(),
                    toml_string("postgres://charon:Sup3rSecretPw@db/console"),
                ),
            ];
            let mut tables: Vec<(String, String, String)> = Vec::new();
            match key.split_once('.') {
                Some((table, k)) => tables.push((table.into(), k.into(), toml_string(&value))),
                None => {
                    top.retain(|(k, _)| k != key);
                    top.push((key.to_string(), toml_string(&value)));
                }
            }
            let mut text: String = top.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
            for (t, k, v) in &tables {
                text.push_str(&format!("[{t}]\n{k} = {v}\n"));
            }
            match Config::parse(&text, Path::new("/etc/charon/config.toml")) {
                Ok(c) => {
                    let shown = format!("{c:?}");
                    assert!(!shown.contains("Sup3rSecretPw"), "{shown}");
                }
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.starts_with("/etc/charon/config.toml:"), "{msg}");
                    assert!(msg.contains(key.rsplit('.').next().unwrap_or(key)), "{msg}");
                    assert!(!msg.contains("Sup3rSecretPw"), "{msg}");
                    assert!(msg.len() < 1000, "{} bytes", msg.len());
                }
            }
            Ok(())
        })
        .unwrap();
}
