//! Erasure through the dispatch point: compliance only, two officers (the
//! creator cannot approve), step-up for approve and execute, the subject
//! gone from Pluto, and no identifier in any audit entry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use charon::core::Error;
use charon::core::action::{Action, GateInput, Reply};
use charon::core::audit::AuditKey;
use charon::core::config::Config;
use charon::core::console::Console;
use charon::core::erasure::{ExecuteOutcome, Regime, Subject};
use charon::core::mfa::otp::{self, AesKey, OtpToken, PrivateId};
use charon::core::secrets::MasterKey;
use charon::core::session::{Role, Session};
use charon::core::{keys, operators};
use common::TestDb;
use uuid::Uuid;

const EMAIL: &str = "ursula.erase@example.test";
const PHONE: &str = "+1 999-555-0142";
const PHONE_DIGITS: &str = "9995550142";

fn subject() -> Subject {
    Subject {
        emails: vec![EMAIL.to_uppercase()],
        phones: vec![PHONE.into()],
        user_ids: vec![],
    }
}

#[tokio::test]
async fn two_officers_erase_a_subject_through_the_dispatch_point_and_the_log_never_names_them() {
    let pluto = TestDb::pluto("erd_p").await;
    let b = Uuid::new_v4();
    let user = Uuid::new_v4();
    sqlx::query("INSERT INTO businesses (id, name, plan, country, created_at) VALUES ($1, 'Acme Plumbing', 'pro', 'US', now())")
        .bind(b)
        .execute(&pluto.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO users (id, email, full_name, phone, created_at) VALUES ($1, $2, 'Ursula Erase-Testperson', $3, now())")
        .bind(user)
        .bind(EMAIL)
        .bind(PHONE)
        .execute(&pluto.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO memberships VALUES ($1, $2, 'employee', now())")
        .bind(b)
        .bind(user)
        .execute(&pluto.pool)
        .await
        .unwrap();
    let console_db = TestDb::new("erd_c").await;
    charon::core::db::migrate_console(&console_db.pool)
        .await
        .unwrap();

    // A second compliance officer with a YubiKey (OTP): the demo has one
    // operator per role.
    let public_id = "cccccccrlbtv";
    let aes = AesKey::new([0x52; 16]);
    let private_id = [7, 7, 7, 1, 2, 3];
    operators::add(&console_db.pool, "x", "bea", "Bea", Role::Compliance)
        .await
        .unwrap();
    keys::enroll_otp(
        &console_db.pool,
        &MasterKey::new([2; 32]),
        "bea",
        "k",
        public_id,
        &aes,
        &PrivateId::new(private_id),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    std::fs::write(&key_file, hex::encode([2u8; 32])).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut config = Config::demo(pluto.url.clone(), console_db.url.clone());
    config.mfa.master_key_file = Some(key_file);
    // One deployment, one audit key (the subject hash key derives from it).
    let key = AuditKey::generate().unwrap();
    let console = |session: Session| {
        Console::from_pools(
            &config,
            session,
            pluto.pool.clone(),
            console_db.pool.clone(),
            key.clone(),
        )
        .unwrap()
    };

    // Support may not.
    let support = console(Session::demo(Role::Support));
    support
        .dispatch(Action::Authenticate(GateInput::DemoRole(Role::Support)))
        .await
        .unwrap();
    let e = support
        .dispatch(Action::ErasureCreate {
            id: uuid::Uuid::new_v4(),
            kind: charon::core::erasure::store::RequestKind::Erasure,
            subject: subject(),
            ticket: "GDPR-1".into(),
            regime: Regime::Gdpr,
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e}");

    // Officer A (demo-compliance) creates and plans.
    let a = console(Session::demo(Role::Compliance));
    a.dispatch(Action::Authenticate(GateInput::DemoRole(Role::Compliance)))
        .await
        .unwrap();
    let Reply::ErasureCreated(id) = a
        .dispatch(Action::ErasureCreate {
            id: uuid::Uuid::new_v4(),
            kind: charon::core::erasure::store::RequestKind::Erasure,
            subject: subject(),
            ticket: "GDPR-1".into(),
            regime: Regime::Gdpr,
            note: "by e-mail".into(),
        })
        .await
        .unwrap()
    else {
        panic!("not created")
    };
    let Reply::ErasurePlanned(plan) = a
        .dispatch(Action::ErasurePlan {
            request: id,
            subject: subject(),
        })
        .await
        .unwrap()
    else {
        panic!("not planned")
    };
    assert!(!plan.is_empty(), "{plan:?}");
    // Planning with someone else's identifiers is refused.
    let e = a
        .dispatch(Action::ErasurePlan {
            request: id,
            subject: Subject {
                emails: vec!["someone.else@example.test".into()],
                ..Subject::default()
            },
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e}");

    // A cannot approve their own request, even with a step-up.
    let approve = Action::ErasureApprove {
        request: id,
        plan_sha256: plan.sha256.clone(),
    };
    a.dispatch(Action::StepUp {
        input: GateInput::DemoRole(Role::Compliance),
        action: Box::new(approve.clone()),
    })
    .await
    .unwrap();
    let e = a.dispatch(approve.clone()).await.unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e}");

    // Execute before approval: refused, nothing changed.
    let execute = Action::ErasureExecute {
        request: id,
        subject: subject(),
    };
    a.dispatch(Action::StepUp {
        input: GateInput::DemoRole(Role::Compliance),
        action: Box::new(execute.clone()),
    })
    .await
    .unwrap();
    let e = a.dispatch(execute.clone()).await.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");

    // Officer B approves (an OTP session: its fresh gate touch is the step-up).
    let b_console = console(Session {
        id: Uuid::new_v4(),
        operator: "bea".into(),
        role: Role::Compliance,
        demo: false,
        key_id: None,
    });
    let otp = otp::generate_otp(
        public_id,
        &aes,
        &OtpToken {
            private_id: PrivateId::new(private_id),
            usage_counter: 1,
            timestamp: 10,
            session_use: 1,
            random: 5,
        },
    )
    .unwrap();
    b_console
        .dispatch(Action::Authenticate(GateInput::Otp(otp)))
        .await
        .unwrap();
    let Reply::ErasureApproved { plan_sha256, .. } = b_console.dispatch(approve).await.unwrap()
    else {
        panic!("not approved")
    };
    assert_eq!(plan_sha256, plan.sha256);

    // Execute needs a step-up that signed exactly it.
    a.dispatch(Action::StepUp {
        input: GateInput::DemoRole(Role::Compliance),
        action: Box::new(Action::ErasureShow { request: id }),
    })
    .await
    .unwrap();
    let e = a.dispatch(execute.clone()).await.unwrap_err();
    assert!(matches!(e, Error::MfaRequired(_)), "{e}");
    a.dispatch(Action::StepUp {
        input: GateInput::DemoRole(Role::Compliance),
        action: Box::new(execute.clone()),
    })
    .await
    .unwrap();
    let Reply::ErasureExecuted(out) = a.dispatch(execute).await.unwrap() else {
        panic!("not executed")
    };
    let ExecuteOutcome::Done(report) = *out else {
        panic!("not done: {out:?}")
    };
    assert!(report.rows_deleted >= 2, "{report:?}");

    let Reply::ErasureRequest(r) = b_console
        .dispatch(Action::ErasureShow { request: id })
        .await
        .unwrap()
    else {
        panic!("no request")
    };
    assert_eq!(r.request.created_by, "demo-compliance");
    assert_eq!(r.request.approved_by.as_deref(), Some("bea"));
    assert!(r.request.executed_at.is_some(), "{r:?}");

    // The subject is gone from Pluto.
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM users WHERE id = $1 OR lower(email) = $2 OR phone = $3",
    )
    .bind(user)
    .bind(EMAIL)
    .bind(PHONE)
    .fetch_one(&pluto.pool)
    .await
    .unwrap();
    assert_eq!(left, 0);

    // No audit entry names the subject.
    let entries: Vec<String> = sqlx::query_scalar("SELECT a::text FROM audit_log a")
        .fetch_all(&console_db.pool)
        .await
        .unwrap();
    assert!(entries.iter().any(|e| e.contains("erasure.execute")));
    for e in &entries {
        let low = e.to_lowercase();
        for leak in [EMAIL, "ursula", PHONE, PHONE_DIGITS, "555-0142"] {
            assert!(!low.contains(&leak.to_lowercase()), "{leak} in {e}");
        }
    }
    // Nor does the console's request row.
    let row: String = sqlx::query_scalar("SELECT r::text FROM erasure_requests r WHERE id = $1")
        .bind(id)
        .fetch_one(&console_db.pool)
        .await
        .unwrap();
    assert!(!row.to_lowercase().contains("ursula"), "{row}");
    assert!(!row.contains(PHONE_DIGITS), "{row}");
}
