//! Operators, roles and the MFA gate at the dispatch point: nothing but the
//! gate before it, the permission table for every role and action, roles read
//! from the database on every action, the idle timeout, and the CLI reading a
//! real OTP from standard input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use charon::core::Error;
use charon::core::action::{Action, ActionKind, GateInput, Reply};
use charon::core::admin::Enrolment;
use charon::core::audit::{self, AuditFilter, AuditKey, ExportDest, ExportFormat, Outcome};
use charon::core::config::Config;
use charon::core::console::{Console, allowed};
use charon::core::erasure::{Regime, Subject};
use charon::core::session::{Role, Session};
use charon::core::{operators, records};
use common::TestDb;
use common::cli::{Binary, TestOtpKey};
use uuid::Uuid;

struct Setup {
    pluto: TestDb,
    console_db: TestDb,
    config: Config,
}

async fn setup(prefix: &str) -> Setup {
    let pluto = TestDb::pluto(&format!("{prefix}_p")).await;
    sqlx::query("INSERT INTO businesses (id, name, plan, country, created_at) VALUES ($1, 'Acme Plumbing', 'pro', 'US', now())")
        .bind(Uuid::new_v4())
        .execute(&pluto.pool)
        .await
        .unwrap();
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

    async fn last_entry(&self) -> audit::AuditRecord {
        audit::list(&self.console_db.pool, &AuditFilter::default(), None, 1)
            .await
            .unwrap()
            .entries
            .remove(0)
    }
}

/// One concrete action of every kind.
fn sample(kind: ActionKind, dir: &std::path::Path) -> Action {
    match kind {
        ActionKind::OpenConsole => Action::OpenConsole,
        ActionKind::GateStatus => Action::GateStatus,
        ActionKind::Authenticate => Action::Authenticate(GateInput::Otp("x".into())),
        ActionKind::StepUp => Action::StepUp {
            input: GateInput::Otp("x".into()),
            action: Box::new(Action::OperatorList),
        },
        ActionKind::SearchTenants => Action::SearchTenants {
            query: "acme".into(),
        },
        ActionKind::OpenTenant => Action::OpenTenant {
            business_id: Uuid::new_v4(),
        },
        ActionKind::AuditList => Action::AuditList {
            filter: AuditFilter::default(),
            before: None,
        },
        ActionKind::AuditShow => Action::AuditShow { seq: 1 },
        ActionKind::AuditVerify => Action::AuditVerify {
            from: None,
            checkpoint: None,
        },
        ActionKind::AuditExport => Action::AuditExport {
            since: None,
            until: None,
            format: ExportFormat::Jsonl,
            dest: ExportDest::File(dir.join("export.jsonl")),
        },
        ActionKind::AuditCheckpoint => Action::AuditCheckpoint {
            path: dir.join("checkpoint.json"),
        },
        ActionKind::Bootstrap => Action::Bootstrap {
            login: "newadmin".into(),
            display_name: "New".into(),
            key: Enrolment::OtpServer {
                public_id: "cccccccccccb".into(),
            },
        },
        ActionKind::OperatorList => Action::OperatorList,
        ActionKind::OperatorAdd => Action::OperatorAdd {
            login: format!("op{}", dir.to_string_lossy().len()),
            display_name: "Op".into(),
            role: Role::Support,
        },
        ActionKind::OperatorSetRole => Action::OperatorSetRole {
            login: "nobody".into(),
            role: Role::Sre,
        },
        ActionKind::OperatorLock => Action::OperatorLock {
            login: "nobody".into(),
        },
        ActionKind::OperatorUnlock => Action::OperatorUnlock {
            login: "nobody".into(),
        },
        ActionKind::OperatorRemove => Action::OperatorRemove {
            login: "nobody".into(),
        },
        ActionKind::KeyEnroll => Action::KeyEnroll {
            login: "nobody".into(),
            label: "k".into(),
            key: Enrolment::OtpServer {
                public_id: "cccccccccccd".into(),
            },
        },
        ActionKind::KeyList => Action::KeyList { login: None },
        ActionKind::KeyRevoke => Action::KeyRevoke { id: Uuid::new_v4() },
        ActionKind::KeyVerify => Action::KeyVerify(GateInput::Otp("x".into())),
        ActionKind::RecordsList => Action::RecordsList {
            tenant: Uuid::new_v4(),
            kind: records::Kind::Receipts,
            query: records::Query::default(),
        },
        ActionKind::Reveal => Action::Reveal {
            tenant: Uuid::new_v4(),
            kind: records::Kind::Receipts,
            id: records::Pk::Int(1),
            field: "notes".into(),
            reason: "T-1".into(),
        },
        ActionKind::RedactPreview => Action::RedactPreview {
            tenant: Uuid::new_v4(),
            kind: records::Kind::Receipts,
            id: records::Pk::Int(1),
            field: "notes".into(),
            how: records::How::Null,
        },
        ActionKind::RedactSweepPreview => Action::RedactSweepPreview {
            tenant: Uuid::new_v4(),
            detector: charon::core::detect::Detector::Card,
        },
        ActionKind::RedactSweepApply => Action::RedactSweepApply {
            preview: Uuid::new_v4(),
            reason: "T-1".into(),
        },
        ActionKind::RedactApply => Action::RedactApply {
            preview: Uuid::new_v4(),
            reason: "T-1".into(),
        },
        ActionKind::TripRoute => Action::TripRoute {
            tenant: Uuid::new_v4(),
            trip_id: 1,
        },
        ActionKind::RecordShow => Action::RecordShow {
            tenant: Uuid::new_v4(),
            kind: records::Kind::Receipts,
            id: records::Pk::Int(1),
        },
        ActionKind::ErasureCreate => Action::ErasureCreate {
            id: Uuid::new_v4(),
            kind: charon::core::erasure::store::RequestKind::Erasure,
            subject: sample_subject(),
            ticket: "T-1".into(),
            regime: Regime::Gdpr,
            note: String::new(),
        },
        ActionKind::ErasurePlan => Action::ErasurePlan {
            request: Uuid::new_v4(),
            subject: sample_subject(),
        },
        ActionKind::ErasureApprove => Action::ErasureApprove {
            request: Uuid::new_v4(),
            plan_sha256: "00".into(),
        },
        ActionKind::ErasureExecute => Action::ErasureExecute {
            request: Uuid::new_v4(),
            subject: sample_subject(),
        },
        ActionKind::ErasureShow => Action::ErasureShow {
            request: Uuid::new_v4(),
        },
        ActionKind::ErasureList => Action::ErasureList { limit: 10 },
        ActionKind::ErasureRunQueue => Action::ErasureRunQueue {
            request: Some(Uuid::new_v4()),
            retry_failed: false,
        },
        ActionKind::ErasureCertificate => Action::ErasureCertificate {
            request: Uuid::new_v4(),
        },
        // No source is configured in these tests: an allowed run is a
        // NotFound, a refused one Forbidden.
        ActionKind::RestoreTestRun => Action::RestoreTestRun {
            source: "nightly".into(),
            backup: None,
        },
        ActionKind::RestoreTestHistory => Action::RestoreTestHistory { limit: 5 },
        ActionKind::BackupsList => Action::BackupsList {
            source: "nightly".into(),
        },
        ActionKind::BackupSources => Action::BackupSources,
    }
}

fn sample_subject() -> Subject {
    Subject {
        emails: vec!["nobody@example.test".into()],
        ..Subject::default()
    }
}

#[tokio::test]
async fn nothing_but_the_gate_before_it_and_the_refusal_is_audited() {
    let s = setup("gate").await;
    let c = s.console(Session::demo(Role::Support));
    c.dispatch(Action::OpenConsole).await.unwrap();
    let Reply::Gate(g) = c.dispatch(Action::GateStatus).await.unwrap() else {
        panic!("no gate status")
    };
    assert_eq!(g.demo_roles.len(), 5);
    let e = c
        .dispatch(Action::SearchTenants {
            query: "acme".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::MfaRequired(_)), "{e}");
    let last = s.last_entry().await;
    assert_eq!(last.entry.action, "tenant.search");
    assert_eq!(last.entry.outcome, Outcome::Denied);
    assert_eq!(last.entry.error.as_deref(), Some("mfa_required"));

    let Reply::Authenticated(info) = c
        .dispatch(Action::Authenticate(GateInput::DemoRole(Role::Support)))
        .await
        .unwrap()
    else {
        panic!("not authenticated")
    };
    assert_eq!(
        (info.operator.as_str(), info.role),
        ("demo-support", Role::Support)
    );
    assert!(
        c.session().key_id.is_some(),
        "the session records the key used"
    );
    let Reply::Tenants(hits) = c
        .dispatch(Action::SearchTenants {
            query: "acme".into(),
        })
        .await
        .unwrap()
    else {
        panic!("no hits")
    };
    assert_eq!(hits.len(), 1);
    assert!(
        c.session()
            .key_id
            .as_deref()
            .is_some_and(|k| k.starts_with("software:")),
        "a software-key session says so in every entry"
    );
    assert_eq!(
        s.last_entry().await.entry.key_id,
        c.session().key_id,
        "every entry names the key the session was opened with"
    );
}

#[tokio::test]
async fn every_role_times_every_action_follows_the_permission_table() {
    let s = setup("matrix").await;
    let dir = tempfile::tempdir().unwrap();
    for role in Role::ALL {
        let c = s.demo(role).await;
        for kind in ActionKind::ALL {
            if matches!(kind, ActionKind::Authenticate | ActionKind::StepUp) {
                continue; // the gate itself and step-up: tested on their own
            }
            let action = sample(kind, dir.path());
            if charon::core::console::needs_step_up(kind) && allowed(role, kind) {
                c.dispatch(Action::StepUp {
                    input: GateInput::DemoRole(role),
                    action: Box::new(action.clone()),
                })
                .await
                .unwrap();
            }
            let result = c.dispatch(action).await;
            assert!(!matches!(result, Err(Error::MfaRequired(_))), "{result:?}");
            let refused = matches!(result, Err(Error::Forbidden(_)));
            assert_eq!(
                refused,
                !allowed(role, kind),
                "{role} × {}: {result:?}",
                kind.as_str()
            );
            let entries = audit::list(&s.console_db.pool, &AuditFilter::default(), None, 3)
                .await
                .unwrap()
                .entries;
            let mine = entries
                .iter()
                .find(|e| e.entry.action == kind.as_str())
                .unwrap_or_else(|| panic!("{role} × {} not audited", kind.as_str()));
            if refused {
                assert_eq!(
                    mine.entry.outcome,
                    Outcome::Denied,
                    "{role} × {}",
                    kind.as_str()
                );
                assert_eq!(mine.entry.role, role.as_str());
            }
        }
    }
}

#[tokio::test]
async fn the_role_is_read_from_the_database_on_every_action() {
    let s = setup("rerole").await;
    let c = s.demo(Role::Support).await;
    let list = || Action::AuditList {
        filter: AuditFilter::default(),
        before: None,
    };
    assert!(matches!(c.dispatch(list()).await, Err(Error::Forbidden(_))));
    operators::set_role(&s.console_db.pool, "demo-support", Role::Auditor)
        .await
        .unwrap();
    assert!(matches!(
        c.dispatch(list()).await.unwrap(),
        Reply::AuditPage(_)
    ));
    assert_eq!(c.info().role, Role::Auditor, "the status bar follows");
    // Locked in the database: refused at once, whatever the session thinks.
    operators::lock(&s.console_db.pool, "demo-support")
        .await
        .unwrap();
    let e = c.dispatch(list()).await.unwrap_err();
    assert!(e.to_string().contains("locked"), "{e}");
}

#[tokio::test]
async fn an_idle_session_goes_back_to_the_gate() {
    let mut s = setup("idle").await;
    s.config.timeouts.idle = Duration::from_millis(300);
    let c = s.demo(Role::Support).await;
    let search = || Action::SearchTenants {
        query: "acme".into(),
    };
    c.dispatch(search()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let e = c.dispatch(search()).await.unwrap_err();
    assert!(matches!(e, Error::MfaRequired(_)), "{e}");
    assert!(e.to_string().contains("idle"), "{e}");
    c.dispatch(Action::Authenticate(GateInput::DemoRole(Role::Support)))
        .await
        .unwrap();
    c.dispatch(search()).await.unwrap();
}

#[tokio::test]
async fn an_account_without_an_operator_row_is_refused_and_audited() {
    let s = setup("noop").await;
    let c = s.console(Session {
        id: Uuid::new_v4(),
        operator: "mallory".into(),
        role: Role::Admin,
        demo: false,
        key_id: None,
    });
    let e = c.dispatch(Action::OpenConsole).await.unwrap_err();
    assert!(e.to_string().contains("not a charon operator"), "{e}");
    let last = s.last_entry().await;
    assert_eq!(
        (last.entry.action.as_str(), last.entry.outcome),
        ("console.open", Outcome::Denied)
    );
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM console_sessions")
        .fetch_one(&s.console_db.pool)
        .await
        .unwrap();
    assert_eq!(sessions, 0);
    // A demo role is no way in for a real session: software keys belong to the demo.
    let mut config = s.config.clone();
    config.mfa.allow_software_keys = false;
    let real = Console::from_pools(
        &config,
        Session::demo(Role::Admin),
        s.pluto.pool.clone(),
        s.console_db.pool.clone(),
        AuditKey::generate().unwrap(),
    )
    .unwrap();
    let e = real
        .dispatch(Action::Authenticate(GateInput::DemoRole(Role::Admin)))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("software keys are disabled"), "{e}");
}

/// The binary, as an operator runs it from a script: the OTP on stdin.
#[tokio::test]
async fn the_cli_reads_an_otp_from_stdin_and_refuses_a_replay() {
    let s = setup("cliotp").await;
    let login = operators::os_account().unwrap();
    operators::bootstrap(&s.console_db.pool, &login, "CI Admin")
        .await
        .unwrap();
    let master = [7u8; 32];
    let key = TestOtpKey {
        public_id: "cccccbhkevbl",
        aes: [0x11; 16],
        private_id: [1, 2, 3, 4, 5, 6],
    };
    key.enroll(&s.console_db.pool, master, &login).await;
    let bin = Binary::new(&s.pluto.url, &s.console_db.url, master);
    let otp = |n: u8| key.otp(n);
    let run = |otp: String| bin.run(&["tenants", "search", "acme"], &format!("{otp}\n"));
    let first = otp(1);
    let (code, out, err) = run(first.clone());
    assert_eq!(code, Some(0), "stdout: {out}\nstderr: {err}");
    assert!(out.contains("Acme Plumbing"), "{out}");
    let (code, out, err) = run(first.clone());
    assert_ne!(code, Some(0));
    assert!(!out.contains("Acme"), "{out}");
    assert!(err.contains("replayed"), "{err}");
    assert!(err.contains("attempts left"), "{err}");
    assert!(!err.contains(&first), "the OTP is never echoed: {err}");
    let (code, _, err) = run("not-an-otp".into());
    assert_ne!(code, Some(0));
    assert!(err.contains("modhex") || err.contains("length"), "{err}");
    let (code, out, _) = run(otp(2));
    assert_eq!(code, Some(0), "a fresh OTP works again: {out}");
}

/// The admin's whole path through the binary: bootstrap with the first key,
/// then every admin command with an OTP on stdin, and `key verify`.
#[tokio::test]
async fn admin_cli_bootstrap_operators_and_keys() {
    use std::os::unix::fs::PermissionsExt;
    let s = setup("admincli").await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("otp.secret");
    std::fs::write(&secret, format!("{} {}\n", "22".repeat(16), "0a0b0c0d0e0f")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let master = [9u8; 32];
    let public_id = "cccccbhkevbr";
    // The key bootstrap enrols from the secret file above.
    let key = TestOtpKey {
        public_id,
        aes: [0x22; 16],
        private_id: [0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f],
    };
    let mut counter = 0u8;
    let mut next_otp = || {
        counter += 1;
        key.otp(counter)
    };
    let bin = Binary::new(&s.pluto.url, &s.console_db.url, master);
    let charon = |args: &[&str], stdin: &str| bin.run(args, stdin);
    let me = operators::os_account().unwrap();
    let secret_arg = secret.to_str().unwrap();
    let boot = [
        "operator",
        "bootstrap",
        "--name",
        "First Admin",
        "--otp-public-id",
        public_id,
        "--otp-secret-file",
        secret_arg,
    ];
    let (code, out, err) = charon(&boot, "");
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains(&me) && out.contains("admin"), "{out}");
    // Only once.
    let (code, _, err) = charon(&boot, "");
    assert_ne!(code, Some(0));
    assert!(err.contains("empty operator table"), "{err}");

    let (code, out, err) = charon(
        &[
            "operator", "add", "alice", "--name", "Alice", "--role", "support",
        ],
        &format!("{}\n", next_otp()),
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    let (code, out, err) = charon(
        &["operator", "list", "--json"],
        &format!("{}\n", next_otp()),
    );
    assert_eq!(code, Some(0), "{err}");
    let list: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let logins: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["login"].as_str().unwrap())
        .collect();
    assert!(
        logins.contains(&"alice") && logins.contains(&me.as_str()),
        "{out}"
    );
    let (code, _, err) = charon(
        &["operator", "set-role", "alice", "root"],
        &format!("{}\n", next_otp()),
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("unknown role"), "{err}");
    let (code, out, _) = charon(&["operator", "lock", "alice"], &format!("{}\n", next_otp()));
    assert_eq!(code, Some(0));
    assert!(out.contains("locked"), "{out}");
    let (code, out, _) = charon(&["key", "list"], &format!("{}\n", next_otp()));
    assert_eq!(code, Some(0));
    assert!(out.contains(public_id), "{out}");
    assert!(!out.contains(&"22".repeat(16)), "no secret listed: {out}");
    // key verify: the gate's OTP, then the OTP to check.
    let gate = next_otp();
    let check = next_otp();
    let (code, out, err) = charon(&["key", "verify"], &format!("{gate}\n{check}\n"));
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains(&format!("matched operator {me}")), "{out}");
    // The same OTP again: refused, and the reason is named.
    let (code, _, err) = charon(&["key", "verify"], &format!("{}\n{check}\n", next_otp()));
    assert_ne!(code, Some(0));
    assert!(err.contains("replayed"), "{err}");

    // Every one of these is in the audit log, and no secret is.
    let rows: Vec<String> = sqlx::query_scalar("SELECT a::text FROM audit_log a ORDER BY seq")
        .fetch_all(&s.console_db.pool)
        .await
        .unwrap();
    let all = rows.join("\n");
    for action in [
        "operator.bootstrap",
        "operator.add",
        "operator.list",
        "operator.lock",
        "key.list",
        "key.verify",
    ] {
        assert!(all.contains(action), "{action} not audited");
    }
    assert!(
        !all.contains(&"22".repeat(16)) && !all.contains("0a0b0c0d0e0f"),
        "secret in the audit log"
    );
    assert!(!all.contains(&check), "an OTP in the audit log");
}

#[tokio::test]
async fn step_up_signs_exactly_the_action_it_authorises() {
    let mut s = setup("stepup").await;
    s.config.mfa.step_up_window = Duration::from_millis(800);
    let c = s.demo(Role::Admin).await;
    let step_up = |action: Action| Action::StepUp {
        input: GateInput::DemoRole(Role::Admin),
        action: Box::new(action),
    };
    // The gate's signature covers opening the session, not an admin action.
    let e = c.dispatch(Action::OperatorList).await.unwrap_err();
    assert!(matches!(e, Error::MfaRequired(_)), "{e}");
    assert!(e.to_string().contains("step-up"), "{e}");

    assert!(matches!(
        c.dispatch(step_up(Action::OperatorList)).await.unwrap(),
        Reply::SteppedUp
    ));
    assert!(matches!(
        c.dispatch(Action::OperatorList).await.unwrap(),
        Reply::Admin(_)
    ));
    // The action's own entry keeps the signature over its hash.
    let entry = s.last_entry().await;
    assert_eq!(entry.entry.action, "operator.list");
    let su = &entry.entry.details["step_up"];
    assert_eq!(su["factor"], "software");
    let signed = charon::core::console::action_bytes(&Action::OperatorList);
    assert_eq!(
        su["action_sha256"].as_str(),
        Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&signed)).as_str())
    );
    assert!(su["signature"].as_str().is_some_and(|x| x.len() >= 128));

    // It authorises that action only.
    let add = Action::OperatorAdd {
        login: "bob".into(),
        display_name: "Bob".into(),
        role: Role::Sre,
    };
    let e = c.dispatch(add.clone()).await.unwrap_err();
    assert!(matches!(e, Error::MfaRequired(_)), "{e}");
    c.dispatch(step_up(add.clone())).await.unwrap();
    c.dispatch(add).await.unwrap();

    // And only for the window.
    c.dispatch(step_up(Action::OperatorList)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let e = c.dispatch(Action::OperatorList).await.unwrap_err();
    assert!(matches!(e, Error::MfaRequired(_)), "{e}");
    // Non-admin actions are still open (the session is not idle).
    c.dispatch(Action::SearchTenants {
        query: "acme".into(),
    })
    .await
    .unwrap();

    // Another operator's key cannot step up this session.
    let e = c
        .dispatch(Action::StepUp {
            input: GateInput::DemoRole(Role::Support),
            action: Box::new(Action::OperatorList),
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e}");
}

#[tokio::test]
async fn records_through_the_dispatch_point_are_masked_scoped_and_audited() {
    let pluto = TestDb::new("recs_p").await;
    charon::pluto::seed::seed(
        &pluto.pool,
        &charon::pluto::seed::SeedOptions {
            tenants: 3,
            seed: 5,
        },
        &|_| {},
    )
    .await
    .unwrap();
    let console_db = TestDb::new("recs_c").await;
    charon::core::db::migrate_console(&console_db.pool)
        .await
        .unwrap();
    let config = Config::demo(pluto.url.clone(), console_db.url.clone());
    let c = Console::from_pools(
        &config,
        Session::demo(Role::Support),
        pluto.pool.clone(),
        console_db.pool.clone(),
        AuditKey::generate().unwrap(),
    )
    .unwrap();
    c.dispatch(Action::Authenticate(GateInput::DemoRole(Role::Support)))
        .await
        .unwrap();
    let (tenant, email): (Uuid, String) = sqlx::query_as(
        "SELECT m.business_id, u.email FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.business_id IN (SELECT business_id FROM receipts) LIMIT 1",
    )
    .fetch_one(&pluto.pool)
    .await
    .unwrap();
    let Reply::Records(page) = c
        .dispatch(Action::RecordsList {
            tenant,
            kind: records::Kind::Members,
            query: records::Query::default(),
        })
        .await
        .unwrap()
    else {
        panic!("no page")
    };
    assert!(!page.rows.is_empty());
    let shown = serde_json::to_string(&page).unwrap();
    assert!(
        !shown.contains(&email),
        "an unmasked e-mail reached the caller"
    );
    let entry = audit::list(&console_db.pool, &AuditFilter::default(), None, 1)
        .await
        .unwrap()
        .entries
        .remove(0);
    assert_eq!(entry.entry.action, "records.list");
    assert_eq!(entry.entry.tenant_id, Some(tenant));
    assert_eq!(entry.entry.target_table.as_deref(), Some("memberships"));
    // Another tenant's id shows nothing of this one.
    let Reply::Records(other) = c
        .dispatch(Action::RecordsList {
            tenant: Uuid::new_v4(),
            kind: records::Kind::Members,
            query: records::Query::default(),
        })
        .await
        .unwrap()
    else {
        panic!("no page")
    };
    assert!(other.rows.is_empty());
}

#[tokio::test]
async fn piv_at_the_gate_says_plainly_when_there_is_no_card_reader() {
    let s = setup("piv").await;
    let login = "pat";
    operators::add(&s.console_db.pool, "x", login, "Pat", Role::Support)
        .await
        .unwrap();
    let c = s.console(Session {
        id: Uuid::new_v4(),
        operator: login.into(),
        role: Role::Support,
        demo: false,
        key_id: None,
    });
    let e = c
        .dispatch(Action::Authenticate(GateInput::Piv {
            pin: "123456".into(),
        }))
        .await
        .unwrap_err();
    let msg = e.to_string();
    // No PIV key enrolled: refused before any card is touched, PIN never echoed.
    assert!(!msg.contains("123456"), "{msg}");
    assert!(!c.gate_open());
    let entries = audit::list(&s.console_db.pool, &AuditFilter::default(), None, 2)
        .await
        .unwrap()
        .entries;
    let (failed, attempt) = (&entries[0], &entries[1]);
    assert_eq!(attempt.entry.action, "mfa.verify");
    assert_eq!(attempt.entry.details["factor"], "piv");
    assert_eq!(failed.entry.outcome, Outcome::Failed);
    for e in &entries {
        assert!(!format!("{:?}", e.entry).contains("123456"));
    }
    let op = operators::resolve(&s.console_db.pool, login).await.unwrap();
    assert_eq!(
        op.failed_attempts, 0,
        "an unusable factor is not a failed attempt"
    );
}

/// A receipt with a card number typed into its note, in the gate test's tenant.
async fn receipt_with_card(s: &Setup) -> (Uuid, i64) {
    let tenant: Uuid = sqlx::query_scalar("SELECT id FROM businesses LIMIT 1")
        .fetch_one(&s.pluto.pool)
        .await
        .unwrap();
    let user = Uuid::new_v4();
    sqlx::query("INSERT INTO users (id, email, full_name, phone, created_at) VALUES ($1, 'rita@example.org', 'Rita Receipt', NULL, now())")
        .bind(user)
        .execute(&s.pluto.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO receipts (id, business_id, uploaded_by, s3_key, merchant, amount_cents, receipt_date, ocr_text, notes, created_at)
                 VALUES (77, $1, $2, 'receipts/x.jpg', 'Shell', 4200, '2025-01-02', 'TOTAL 42.00', 'paid with 4111 1111 1111 1111 thanks', now())")
        .bind(tenant)
        .bind(user)
        .execute(&s.pluto.pool)
        .await
        .unwrap();
    (tenant, 77)
}

#[tokio::test]
async fn reveal_needs_a_reason_and_a_step_up_and_audits_the_field_not_the_value() {
    let s = setup("reveal").await;
    let (tenant, id) = receipt_with_card(&s).await;
    let reveal = |reason: &str| Action::Reveal {
        tenant,
        kind: records::Kind::Receipts,
        id: records::Pk::Int(id),
        field: "notes".into(),
        reason: reason.into(),
    };
    let sre = s.demo(Role::Sre).await;
    assert!(matches!(
        sre.dispatch(reveal("T-1")).await,
        Err(Error::Forbidden(_))
    ));

    let c = s.demo(Role::Support).await;
    let e = c.dispatch(reveal("T-1")).await.unwrap_err();
    assert!(matches!(e, Error::MfaRequired(_)), "{e}");
    c.dispatch(Action::StepUp {
        input: GateInput::DemoRole(Role::Support),
        action: Box::new(reveal("")),
    })
    .await
    .unwrap();
    let e = c.dispatch(reveal("")).await.unwrap_err();
    assert!(e.to_string().contains("reason"), "{e}");
    c.dispatch(Action::StepUp {
        input: GateInput::DemoRole(Role::Support),
        action: Box::new(reveal("TICKET-4711")),
    })
    .await
    .unwrap();
    let Reply::Revealed { revealed, show_for } = c.dispatch(reveal("TICKET-4711")).await.unwrap()
    else {
        panic!("not revealed")
    };
    assert_eq!(
        revealed.value.expose().as_deref(),
        Some("paid with 4111 1111 1111 1111 thanks")
    );
    assert!(show_for.as_secs() > 0);
    assert!(
        !format!("{revealed:?}").contains("4111"),
        "Debug masks the value"
    );
    let entry = s.last_entry().await;
    assert_eq!(entry.entry.action, "records.reveal");
    assert_eq!(entry.entry.target_columns, vec!["notes".to_string()]);
    assert_eq!(entry.entry.reason.as_deref(), Some("TICKET-4711"));
    assert!(entry.entry.details["step_up"]["signature"].is_string());
    let all: Vec<String> = sqlx::query_scalar("SELECT a::text FROM audit_log a")
        .fetch_all(&s.console_db.pool)
        .await
        .unwrap();
    assert!(
        !all.join("\n").contains("4111"),
        "a revealed value reached the audit log"
    );
}

#[tokio::test]
async fn redaction_is_previewed_then_applied_by_compliance_with_a_step_up() {
    let s = setup("redact").await;
    let (tenant, id) = receipt_with_card(&s).await;
    let support = s.demo(Role::Support).await;
    let preview = Action::RedactPreview {
        tenant,
        kind: records::Kind::Receipts,
        id: records::Pk::Int(id),
        field: "notes".into(),
        how: records::How::Span(charon::core::detect::Detector::Card),
    };
    assert!(matches!(
        support.dispatch(preview.clone()).await,
        Err(Error::Forbidden(_))
    ));

    let c = s.demo(Role::Compliance).await;
    let Reply::RedactionPreview { token, preview: p } = c.dispatch(preview).await.unwrap() else {
        panic!("no preview")
    };
    assert_eq!(p.matches, 1);
    assert!(
        p.after
            .as_deref()
            .is_some_and(|a| a.contains("[REDACTED:card]")),
        "{p:?}"
    );
    assert!(
        !p.before_masked.contains("4111 1111 1111"),
        "the preview is masked"
    );
    let apply = Action::RedactApply {
        preview: token,
        reason: "card typed into a note, DPO-12".into(),
    };
    let e = c.dispatch(apply.clone()).await.unwrap_err();
    assert!(matches!(e, Error::MfaRequired(_)), "{e}");
    c.dispatch(Action::StepUp {
        input: GateInput::DemoRole(Role::Compliance),
        action: Box::new(apply.clone()),
    })
    .await
    .unwrap();
    let Reply::Redacted(done) = c.dispatch(apply.clone()).await.unwrap() else {
        panic!("not applied")
    };
    assert_eq!(done.matches, 1);
    let note: String = sqlx::query_scalar("SELECT notes FROM receipts WHERE id = 77")
        .fetch_one(&s.pluto.pool)
        .await
        .unwrap();
    assert_eq!(note, "paid with [REDACTED:card] thanks");
    // The preview is used up: applying it again is refused.
    c.dispatch(Action::StepUp {
        input: GateInput::DemoRole(Role::Compliance),
        action: Box::new(apply.clone()),
    })
    .await
    .unwrap();
    assert!(matches!(c.dispatch(apply).await, Err(Error::NotFound(_))));
    // Neither the console's redaction record nor the audit log holds the value.
    for sql in [
        "SELECT r::text FROM redactions r",
        "SELECT a::text FROM audit_log a",
    ] {
        let rows: Vec<String> = sqlx::query_scalar(sql)
            .fetch_all(&s.console_db.pool)
            .await
            .unwrap();
        assert!(!rows.is_empty(), "{sql}");
        assert!(!rows.join("\n").contains("4111"), "{sql}");
    }
}

/// Compliance, from a script: reveal then redact a card typed into a note,
/// the OTP on stdin each time.
#[tokio::test]
async fn cli_reveal_and_redact_with_an_otp() {
    let s = setup("cliredact").await;
    let (tenant, id) = receipt_with_card(&s).await;
    let login = operators::os_account().unwrap();
    operators::add(&s.console_db.pool, "x", &login, "Officer", Role::Compliance)
        .await
        .unwrap();
    let master = [5u8; 32];
    let key = TestOtpKey {
        public_id: "cccccbhkevbn",
        aes: [0x33; 16],
        private_id: [6, 5, 4, 3, 2, 1],
    };
    key.enroll(&s.console_db.pool, master, &login).await;
    let bin = Binary::new(&s.pluto.url, &s.console_db.url, master);
    let otp = |n: u8| key.otp(n);
    let run = |args: Vec<String>, stdin: String| bin.run(&args, &stdin);
    let field = |cmd: &str| -> Vec<String> {
        [
            "records",
            cmd,
            "--tenant",
            &tenant.to_string(),
            "--type",
            "receipts",
            "--id",
            &id.to_string(),
            "--field",
            "notes",
            "--reason",
            "DPO-7",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect()
    };
    let (code, out, err) = run(field("reveal"), format!("{}\n", otp(1)));
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("4111 1111 1111 1111"), "{out}");
    // Without --yes and without a terminal, nothing is applied.
    let mut args = field("redact");
    args.extend(["--detector".into(), "card".into()]);
    let (code, out, err) = run(args.clone(), format!("{}\n", otp(2)));
    assert_ne!(code, Some(0), "{out}");
    assert!(err.contains("--yes"), "{err}");
    assert!(
        out.contains("[REDACTED:card]"),
        "the preview is shown: {out}"
    );
    args.push("--yes".into());
    let (code, out, err) = run(args, format!("{}\n", otp(3)));
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("redacted: 1 field(s), 1 match(es)"), "{out}");
    let note: String = sqlx::query_scalar("SELECT notes FROM receipts WHERE id = $1")
        .bind(id)
        .fetch_one(&s.pluto.pool)
        .await
        .unwrap();
    assert_eq!(note, "paid with [REDACTED:card] thanks");
}

#[tokio::test]
async fn five_failures_at_the_gate_lock_the_operator_and_the_log_says_so() {
    let s = setup("lockout").await;
    operators::add(&s.console_db.pool, "x", "lou", "Lou", Role::Support)
        .await
        .unwrap();
    TestOtpKey {
        public_id: "cccccbhkevbt",
        aes: [0x44; 16],
        private_id: [1; 6],
    }
    .enroll(&s.console_db.pool, [1; 32], "lou")
    .await;
    let mut config = s.config.clone();
    config.mfa.allow_software_keys = false;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    std::fs::write(&key_file, hex::encode([1u8; 32])).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    config.mfa.master_key_file = Some(key_file);
    let c = Console::from_pools(
        &config,
        Session {
            id: Uuid::new_v4(),
            operator: "lou".into(),
            role: Role::Support,
            demo: false,
            key_id: None,
        },
        s.pluto.pool.clone(),
        s.console_db.pool.clone(),
        AuditKey::generate().unwrap(),
    )
    .unwrap();
    for i in 1..=5 {
        let e = c
            .dispatch(Action::Authenticate(GateInput::Otp(
                "cccccbhkevbt".to_string() + &"c".repeat(32),
            )))
            .await
            .unwrap_err();
        let last = s.last_entry().await;
        assert_eq!(last.entry.outcome, Outcome::Failed);
        if i < 5 {
            assert!(e.to_string().contains("attempt"), "{e}");
            assert_eq!(last.entry.error.as_deref(), Some("mfa_rejected"));
        } else {
            assert!(e.to_string().contains("locked"), "{e}");
            assert_eq!(last.entry.error.as_deref(), Some("mfa_rejected:locked"));
        }
    }
    let e = operators::resolve(&s.console_db.pool, "lou")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("locked"), "{e}");
}

#[tokio::test]
async fn a_detector_sweep_counts_first_then_redacts_every_match_of_the_tenant() {
    let s = setup("sweep").await;
    let (tenant, _) = receipt_with_card(&s).await;
    // A second card in another receipt of the same tenant, and a 16-digit
    // order number that fails the Luhn check (never redacted).
    sqlx::query("INSERT INTO receipts (id, business_id, uploaded_by, s3_key, merchant, amount_cents, receipt_date, ocr_text, notes, created_at)
                 SELECT 78, business_id, uploaded_by, 'receipts/y.jpg', 'Tesco', 990, '2025-01-03', 'VISA 5500 0000 0000 0004', 'order 1234 5678 9012 3456', now() FROM receipts WHERE id = 77")
        .execute(&s.pluto.pool)
        .await
        .unwrap();
    let c = s.demo(Role::Compliance).await;
    let Reply::SweepPreview { token, preview } = c
        .dispatch(Action::RedactSweepPreview {
            tenant,
            detector: charon::core::detect::Detector::Card,
        })
        .await
        .unwrap()
    else {
        panic!("no sweep preview")
    };
    assert_eq!(preview.matches, 2, "{preview:?}");
    let apply = Action::RedactSweepApply {
        preview: token,
        reason: "cards in free text, DPO-9".into(),
    };
    c.dispatch(Action::StepUp {
        input: GateInput::DemoRole(Role::Compliance),
        action: Box::new(apply.clone()),
    })
    .await
    .unwrap();
    let Reply::Redacted(done) = c.dispatch(apply).await.unwrap() else {
        panic!("not applied")
    };
    assert_eq!(done.matches, preview.matches);
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT ocr_text, notes FROM receipts ORDER BY id")
            .fetch_all(&s.pluto.pool)
            .await
            .unwrap();
    let all = format!("{rows:?}");
    assert!(
        !all.contains("4111 1111") && !all.contains("5500 0000"),
        "{all}"
    );
    assert!(
        all.contains("1234 5678 9012 3456"),
        "a non-Luhn number stays: {all}"
    );
    let entry = s.last_entry().await;
    assert!(entry.entry.action.starts_with("redaction.sweep_apply"));
    assert!(!format!("{:?}", entry.entry).contains("4111"));
}

#[tokio::test]
async fn support_may_redact_only_where_the_configuration_says_so() {
    let mut s = setup("policy").await;
    let (tenant, id) = receipt_with_card(&s).await;
    let preview = Action::RedactPreview {
        tenant,
        kind: records::Kind::Receipts,
        id: records::Pk::Int(id),
        field: "notes".into(),
        how: records::How::Span(charon::core::detect::Detector::Card),
    };
    let c = s.demo(Role::Support).await;
    assert!(matches!(
        c.dispatch(preview.clone()).await,
        Err(Error::Forbidden(_))
    ));
    s.config.records.support_may_redact = true;
    let c = s.demo(Role::Support).await;
    assert!(matches!(
        c.dispatch(preview).await.unwrap(),
        Reply::RedactionPreview { .. }
    ));
}

/// Hostile record values never reach a script's terminal raw, in text or JSON.
#[tokio::test]
async fn cli_output_of_hostile_records_is_inert() {
    let s = setup("hostile").await;
    let (tenant, id) = receipt_with_card(&s).await;
    let hostile = "x\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m\u{202e}evil\u{200b}\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}P1$qm\u{1b}\\";
    sqlx::query("UPDATE receipts SET merchant = $1 WHERE id = $2")
        .bind(hostile)
        .bind(id)
        .execute(&s.pluto.pool)
        .await
        .unwrap();
    let login = operators::os_account().unwrap();
    operators::add(&s.console_db.pool, "x", &login, "Sam", Role::Support)
        .await
        .unwrap();
    let master = [3u8; 32];
    let key = TestOtpKey {
        public_id: "cccccbhkevbd",
        aes: [0x55; 16],
        private_id: [9; 6],
    };
    key.enroll(&s.console_db.pool, master, &login).await;
    let bin = Binary::new(&s.pluto.url, &s.console_db.url, master);
    let otp = |n: u8| key.otp(n);
    let t = tenant.to_string();
    let i = id.to_string();
    let show = [
        "records", "show", "--tenant", &t, "--type", "receipts", "--id", &i,
    ];
    let list = ["records", "list", "--tenant", &t, "--type", "receipts"];
    for (n, (args, json)) in [
        (&show[..], false),
        (&show[..], true),
        (&list[..], false),
        (&list[..], true),
    ]
    .into_iter()
    .enumerate()
    {
        let mut args: Vec<&str> = args.to_vec();
        if json {
            args.push("--json");
        }
        let (code, out, err) = bin.run(&args, &format!("{}\n", otp(n as u8 + 1)));
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert!(
            out.contains("evil"),
            "{args:?}: the value is shown, escaped: {out}"
        );
        let raw: Vec<char> = out
            .chars()
            .filter(|c| charon::core::sanitize::is_unsafe(*c) && !matches!(c, '\n'))
            .collect();
        assert!(
            raw.is_empty(),
            "{args:?}: raw control characters {raw:?} in output"
        );
    }
}
