//! The key store and the authenticator on a real PostgreSQL: enrolment of
//! every factor, authentication, failures counted in the database, lockout,
//! replay protection under concurrency, sk counters through a real agent
//! protocol server, software keys only when allowed, removed operators,
//! sealed OTP secrets, `charon key verify`.
//!
//! Needs the Debian packages python3-yubiotp and openssl (like tests/mfa.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod support;

use std::process::Command;

use base64::Engine as _;
use charon::core::Error;
use charon::core::auth::{Authenticator, FactorInput};
use charon::core::config::MfaConfig;
use charon::core::keys::{self, KeyStatus};
use charon::core::mfa::otp::validation::ValidationClient;
use charon::core::mfa::otp::{self, AesKey, OtpKeyRecord, OtpToken, PrivateId};
use charon::core::mfa::piv::PivSlot;
use charon::core::mfa::software::SoftwareKey;
use charon::core::mfa::{FactorKind, MfaError, Secret};
use charon::core::operators::{self, Status};
use charon::core::secrets::MasterKey;
use charon::core::session::Role;
use common::TestDb;
use support::otp::{ValServer, python_otps};
use support::sk_agent::{Behaviour, TestAgent, TestKey};

const AES_HEX: &str = "2b7e151628aed2a6abf7158809cf4f3c";
const UID_HEX: &str = "a1b2c3d4e5f6";
const PUBLIC_ID: &str = "vvcbdefghijk";

async fn console_db() -> TestDb {
    let db = TestDb::new("auth").await;
    charon::core::db::migrate_console(&db.pool).await.unwrap();
    operators::bootstrap(&db.pool, "root_admin", "Admin")
        .await
        .unwrap();
    for login in ["alice", "bob", "carol"] {
        operators::add(&db.pool, "root_admin", login, login, Role::Support)
            .await
            .unwrap();
    }
    db
}

fn cfg(allow_software_keys: bool) -> MfaConfig {
    MfaConfig {
        allow_software_keys,
        touch_timeout: std::time::Duration::from_secs(5),
        ..MfaConfig::default()
    }
}

fn authenticator(master: &MasterKey, allow_software_keys: bool) -> Authenticator {
    Authenticator::new(&cfg(allow_software_keys), Some(master.clone()), None)
}

fn aes() -> AesKey {
    AesKey::from_hex(AES_HEX).unwrap()
}

fn uid() -> PrivateId {
    PrivateId::from_hex(UID_HEX).unwrap()
}

/// An OTP made by charon's own generator (for the many-OTP tests; the
/// independent python3-yubiotp is used where acceptance is the point).
fn own_otp(key: &AesKey, usage: u16, session_use: u8) -> String {
    otp::generate_otp(
        PUBLIC_ID,
        key,
        &OtpToken {
            private_id: uid(),
            usage_counter: usage,
            timestamp: 0x10_0000,
            session_use,
            random: 0x1234,
        },
    )
    .unwrap()
}

async fn enroll_alice_otp(db: &TestDb, master: &MasterKey) -> keys::KeyInfo {
    keys::enroll_otp(
        &db.pool,
        master,
        "alice",
        "yubikey 5c",
        PUBLIC_ID,
        &aes(),
        &uid(),
    )
    .await
    .unwrap()
}

async fn otp_counters(db: &TestDb, id: uuid::Uuid) -> (Option<i32>, Option<i32>) {
    sqlx::query_as("SELECT last_session_counter, last_use_counter FROM operator_keys WHERE id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn failed_attempts(db: &TestDb, login: &str) -> i32 {
    operators::find(&db.pool, login)
        .await
        .unwrap()
        .unwrap()
        .failed_attempts
}

fn auth_failure(e: Error) -> charon::core::auth::AuthFailure {
    match e {
        Error::Auth(f) => f,
        other => panic!("expected a counted failure, got {other:?}"),
    }
}

// ------------------------------------------------------------------ OTP

#[tokio::test]
async fn otp_enrolled_then_accepted_and_counters_stored() {
    let db = console_db().await;
    let master = MasterKey::generate();
    let auth = authenticator(&master, false);
    let key = enroll_alice_otp(&db, &master).await;
    assert_eq!(key.factor, FactorKind::YubicoOtp);
    assert_eq!(key.fingerprint, PUBLIC_ID);
    assert!(!key.validation_server);

    let otps = python_otps(AES_HEX, UID_HEX, PUBLIC_ID, 17, 0, 2);
    let proof = auth
        .authenticate(
            &db.pool,
            "alice",
            FactorInput::Otp(otps[0].clone()),
            "login",
            b"",
        )
        .await
        .unwrap();
    assert_eq!(proof.factor(), FactorKind::YubicoOtp);
    assert_eq!(proof.key_id(), PUBLIC_ID);
    assert_eq!(otp_counters(&db, key.id).await, (Some(17), Some(0)));
    auth.authenticate(
        &db.pool,
        "alice",
        FactorInput::Otp(otps[1].clone()),
        "login",
        b"",
    )
    .await
    .unwrap();
    assert_eq!(otp_counters(&db, key.id).await, (Some(17), Some(1)));

    // The first OTP again: a replay, counted.
    let f = auth_failure(
        auth.authenticate(
            &db.pool,
            "alice",
            FactorInput::Otp(otps[0].clone()),
            "login",
            b"",
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        f.reason,
        MfaError::Replayed {
            got: (17, 0),
            last: (17, 1)
        }
    );
    assert_eq!(f.attempts, 1);
    assert_eq!(
        f.to_string(),
        "yubico_otp key rejected: replayed OTP (counter 17/0 not above last accepted 17/1); \
         4 attempts left before operator `alice` is locked"
    );
    let listed = keys::list(&db.pool, Some("alice")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some());
}

#[tokio::test]
async fn the_secret_column_holds_no_key_material_in_clear() {
    let db = console_db().await;
    let master = MasterKey::generate();
    let key = enroll_alice_otp(&db, &master).await;
    let (sealed,): (Vec<u8>,) =
        sqlx::query_as("SELECT secret_enc FROM operator_keys WHERE id = $1")
            .bind(key.id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let aes_bytes = hex::decode(AES_HEX).unwrap();
    let uid_bytes = hex::decode(UID_HEX).unwrap();
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    assert_eq!(sealed.len(), 12 + 22 + 16);
    assert!(!contains(&sealed, &aes_bytes));
    assert!(!contains(&sealed, &aes_bytes[..8]));
    assert!(!contains(&sealed, &uid_bytes));
    assert!(!contains(&sealed, AES_HEX.as_bytes()));
    // Nowhere else in the row either.
    let (row_text,): (String,) =
        sqlx::query_as("SELECT row_to_json(k)::text FROM operator_keys k WHERE id = $1")
            .bind(key.id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(!row_text.contains(AES_HEX), "{row_text}");
    assert!(!row_text.contains(UID_HEX), "{row_text}");
    // The listing has no secret to show.
    let shown = serde_json::to_string(&keys::list(&db.pool, None).await.unwrap()).unwrap();
    assert!(!shown.contains("secret"), "{shown}");
}

#[tokio::test]
async fn wrong_master_key_or_a_copied_secret_does_not_open() {
    let db = console_db().await;
    let master = MasterKey::generate();
    let alice = enroll_alice_otp(&db, &master).await;
    let otp1 = own_otp(&aes(), 3, 0);

    // Another master key: a configuration error, not counted.
    let wrong = authenticator(&MasterKey::generate(), false);
    let e = wrong
        .authenticate(
            &db.pool,
            "alice",
            FactorInput::Otp(otp1.clone()),
            "login",
            b"",
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&alice.id.to_string()), "{msg}");
    assert!(msg.contains("wrong master key"), "{msg}");
    assert_eq!(failed_attempts(&db, "alice").await, 0);

    // No master key at all.
    let none = Authenticator::new(&cfg(false), None, None);
    let e = none
        .authenticate(
            &db.pool,
            "alice",
            FactorInput::Otp(otp1.clone()),
            "login",
            b"",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no master key is configured"), "{e}");

    // Alice's sealed secret copied into a key row of bob's: does not open there.
    let other_public_id = "vvcbdefghijl";
    let bobs = keys::enroll_otp(
        &db.pool,
        &master,
        "bob",
        "bob's key",
        other_public_id,
        &AesKey::new([7; 16]),
        &PrivateId::new([7; 6]),
    )
    .await
    .unwrap();
    sqlx::query(
        "UPDATE operator_keys SET secret_enc = (SELECT secret_enc FROM operator_keys WHERE id = $1) WHERE id = $2",
    )
    .bind(alice.id)
    .bind(bobs.id)
    .execute(&db.pool)
    .await
    .unwrap();
    let forged = otp::generate_otp(
        other_public_id,
        &aes(),
        &OtpToken {
            private_id: uid(),
            usage_counter: 1,
            timestamp: 1,
            session_use: 0,
            random: 0,
        },
    )
    .unwrap();
    let auth = authenticator(&master, false);
    let e = auth
        .authenticate(&db.pool, "bob", FactorInput::Otp(forged), "login", b"")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert!(e.to_string().contains("copied from another row"), "{e}");
    // Alice's own key still works.
    auth.authenticate(&db.pool, "alice", FactorInput::Otp(otp1), "login", b"")
        .await
        .unwrap();
}

#[tokio::test]
async fn five_failures_lock_and_even_a_good_otp_is_then_refused_until_unlock() {
    let db = console_db().await;
    let master = MasterKey::generate();
    let auth = authenticator(&master, false);
    let key = enroll_alice_otp(&db, &master).await;
    let wrong_key = AesKey::new([0x55; 16]);
    for i in 1..=5 {
        let bad = own_otp(&wrong_key, 1, i);
        let f = auth_failure(
            auth.authenticate(&db.pool, "alice", FactorInput::Otp(bad), "login", b"")
                .await
                .unwrap_err(),
        );
        assert_eq!(f.reason, MfaError::CrcMismatch);
        assert_eq!(f.attempts, i32::from(i));
        assert_eq!(f.locked, i == 5);
        let msg = f.to_string();
        if i < 5 {
            assert!(
                msg.ends_with(&format!(
                    "{} attempt{} left before operator `alice` is locked",
                    5 - i,
                    if i == 4 { "" } else { "s" }
                )),
                "{msg}"
            );
        } else {
            assert!(
                msg.ends_with(
                    "operator `alice` is now locked after 5 failed attempts: an admin must unlock it"
                ),
                "{msg}"
            );
        }
    }
    let op = operators::find(&db.pool, "alice").await.unwrap().unwrap();
    assert_eq!(op.status, Status::Locked);

    // Sixth attempt with a GOOD OTP: still refused, and the OTP not consumed.
    let good = own_otp(&aes(), 2, 0);
    let e = auth
        .authenticate(
            &db.pool,
            "alice",
            FactorInput::Otp(good.clone()),
            "login",
            b"",
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e:?}");
    assert!(e.to_string().contains("locked"), "{e}");
    assert_eq!(otp_counters(&db, key.id).await, (None, None));
    // The gate cannot even list the factors of a locked operator.
    assert!(auth.describe_factors(&db.pool, "alice").await.is_err());

    // A fresh authenticator (a restart) sees the same lock.
    let restarted = authenticator(&master, false);
    assert!(
        restarted
            .authenticate(
                &db.pool,
                "alice",
                FactorInput::Otp(good.clone()),
                "login",
                b""
            )
            .await
            .is_err()
    );

    operators::unlock(&db.pool, "alice").await.unwrap();
    restarted
        .authenticate(&db.pool, "alice", FactorInput::Otp(good), "login", b"")
        .await
        .unwrap();
    assert_eq!(failed_attempts(&db, "alice").await, 0);
}

#[tokio::test]
async fn malformed_and_foreign_otps_are_counted_with_a_clear_reason() {
    let db = console_db().await;
    let master = MasterKey::generate();
    let auth = authenticator(&master, false);
    enroll_alice_otp(&db, &master).await;
    let cases: Vec<(String, MfaError)> = vec![
        (
            "vvcbdefghijk".into(),
            MfaError::WrongLength { got: 12, want: 44 },
        ),
        ("x".repeat(44), MfaError::NotModhex),
        (
            // A key enrolled for nobody (or somebody else).
            own_otp(&aes(), 1, 0).replacen("vvcbdefghijk", "vvcbdefghijj", 1),
            MfaError::UnknownPublicId("vvcbdefghijj".into()),
        ),
    ];
    for (i, (input, want)) in cases.into_iter().enumerate() {
        let f = auth_failure(
            auth.authenticate(&db.pool, "alice", FactorInput::Otp(input), "login", b"")
                .await
                .unwrap_err(),
        );
        assert_eq!(f.reason, want);
        assert_eq!(f.attempts, i as i32 + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replayed_otp_submitted_concurrently_passes_exactly_once() {
    let db = console_db().await;
    let master = MasterKey::generate();
    let key = enroll_alice_otp(&db, &master).await;
    for round in 0..3u8 {
        let otp_once = own_otp(&aes(), 10, round);
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let (pool, auth, o) = (
                db.pool.clone(),
                authenticator(&master, false),
                otp_once.clone(),
            );
            tasks.push(tokio::spawn(async move {
                auth.authenticate(&pool, "alice", FactorInput::Otp(o), "login", b"")
                    .await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(e) => assert!(matches!(auth_failure(e).reason, MfaError::Replayed { .. }),),
            }
        }
        assert_eq!(ok, 1, "round {round}");
        assert_eq!(
            otp_counters(&db, key.id).await,
            (Some(10), Some(i32::from(round)))
        );
    }

    // The compare-and-set itself, many at once: exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let pool = db.pool.clone();
        tasks.push(tokio::spawn(async move {
            keys::advance_otp_counter(&pool, key.id, (11, 0))
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test]
async fn otp_through_the_validation_server() {
    let db = console_db().await;
    let api_key = b"validation api key 123".to_vec();
    let record = OtpKeyRecord {
        public_id: PUBLIC_ID.into(),
        aes_key: aes(),
        private_id: uid(),
        last_counter: None,
    };
    let server = ValServer::start("42", api_key.clone(), record).await;
    let client = ValidationClient::new(
        &server.url,
        "42",
        &base64::engine::general_purpose::STANDARD.encode(&api_key),
    )
    .unwrap();
    let auth = Authenticator::new(&cfg(false), None, Some(client));
    let key = keys::enroll_otp_server(&db.pool, "alice", "cloud key", PUBLIC_ID)
        .await
        .unwrap();
    assert!(key.validation_server);
    let o = own_otp(&aes(), 4, 0);
    let proof = auth
        .authenticate(&db.pool, "alice", FactorInput::Otp(o.clone()), "login", b"")
        .await
        .unwrap();
    assert_eq!(proof.key_id(), PUBLIC_ID);
    assert_eq!(otp_counters(&db, key.id).await, (Some(4), Some(0)));
    let f = auth_failure(
        auth.authenticate(&db.pool, "alice", FactorInput::Otp(o), "login", b"")
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&f.reason, MfaError::ServerRejected { status, .. } if status == "REPLAYED_OTP"),
        "{f}"
    );
    // Without a configured server the key cannot be checked, and that is not
    // the operator's failure.
    let offline = authenticator(&MasterKey::generate(), false);
    let e = offline
        .authenticate(
            &db.pool,
            "alice",
            FactorInput::Otp(own_otp(&aes(), 5, 0)),
            "login",
            b"",
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("validation server"), "{e}");
    assert_eq!(failed_attempts(&db, "alice").await, 1);
}

// ------------------------------------------------------------------ sk

async fn sk_counter(db: &TestDb, id: uuid::Uuid) -> Option<i64> {
    sqlx::query_scalar("SELECT last_sign_counter FROM operator_keys WHERE id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn sk_through_the_agent_with_counters_rising_in_the_database() {
    let db = console_db().await;
    let master = MasterKey::generate();
    let auth = authenticator(&master, false);
    let (ecdsa, ed) = (TestKey::sk_ecdsa(), TestKey::sk_ed25519());
    let agent = TestAgent::start(vec![TestKey::plain_ed25519(), ecdsa.clone(), ed.clone()]).await;
    let alice = keys::enroll_sk(&db.pool, "alice", "blue key", &ecdsa.openssh_line())
        .await
        .unwrap();
    let bob = keys::enroll_sk(&db.pool, "bob", "green key", &ed.openssh_line())
        .await
        .unwrap();
    assert!(alice.fingerprint.starts_with("SHA256:"));
    let input = || FactorInput::Agent {
        socket: agent.path.clone(),
    };

    let mut last = 0;
    for i in 0..3 {
        let action = format!("reveal email of user {i}");
        let proof = auth
            .authenticate(&db.pool, "alice", input(), "step-up", action.as_bytes())
            .await
            .unwrap();
        assert_eq!(proof.factor(), FactorKind::Sk);
        assert_eq!(proof.key_id(), alice.fingerprint);
        assert!(proof.authorises(action.as_bytes()));
        assert!(!proof.authorises(b"reveal email of user 99"));
        assert!(proof.signature().is_some());
        let c = sk_counter(&db, alice.id).await.unwrap();
        assert!(c > last, "{c} after {last}");
        last = c;
    }
    // Bob's key answers for bob, with its own counter.
    let proof = auth
        .authenticate(&db.pool, "bob", input(), "login", b"")
        .await
        .unwrap();
    assert_eq!(proof.key_id(), bob.fingerprint);
    assert!(sk_counter(&db, bob.id).await.is_some());

    // A repeated counter (a cloned key) is refused and counted.
    agent.set(Behaviour {
        repeat_counter: true,
        ..Behaviour::default()
    });
    let f = auth_failure(
        auth.authenticate(&db.pool, "alice", input(), "login", b"")
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(f.reason, MfaError::CounterNotRising { got, last: l } if got == l),
        "{f}"
    );
    assert_eq!(sk_counter(&db, alice.id).await, Some(last));

    // No touch (no user-presence flag): refused and counted.
    agent.set(Behaviour {
        omit_presence: true,
        ..Behaviour::default()
    });
    let f = auth_failure(
        auth.authenticate(&db.pool, "alice", input(), "login", b"")
            .await
            .unwrap_err(),
    );
    assert_eq!(f.reason, MfaError::NoUserPresence);
    assert_eq!(f.attempts, 2);

    // The stored counter is the one that counts: raised behind the agent's
    // back (as by a use elsewhere), the agent's next signature is stale.
    agent.set(Behaviour::default());
    sqlx::query("UPDATE operator_keys SET last_sign_counter = 100000 WHERE id = $1")
        .bind(alice.id)
        .execute(&db.pool)
        .await
        .unwrap();
    let f = auth_failure(
        auth.authenticate(&db.pool, "alice", input(), "login", b"")
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(f.reason, MfaError::CounterNotRising { last: 100000, .. }),
        "{f}"
    );

    // The CAS on its own: a lower counter never overwrites a higher one.
    assert!(matches!(
        keys::advance_sign_counter(&db.pool, alice.id, 5)
            .await
            .unwrap(),
        Err(MfaError::CounterNotRising {
            got: 5,
            last: 100000
        })
    ));
    assert!(
        keys::advance_sign_counter(&db.pool, alice.id, 100001)
            .await
            .unwrap()
            .is_ok()
    );
}

#[tokio::test]
async fn sk_environment_failures_are_not_counted() {
    let db = console_db().await;
    let auth = authenticator(&MasterKey::generate(), false);
    let enrolled = TestKey::sk_ed25519();
    keys::enroll_sk(&db.pool, "alice", "key", &enrolled.openssh_line())
        .await
        .unwrap();
    // An agent without the enrolled key.
    let agent = TestAgent::start(vec![TestKey::sk_ed25519(), TestKey::plain_ed25519()]).await;
    let e = auth
        .authenticate(
            &db.pool,
            "alice",
            FactorInput::Agent {
                socket: agent.path.clone(),
            },
            "login",
            b"",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Mfa(MfaError::NoEnrolledKeyInAgent { offered: 2 })),
        "{e:?}"
    );
    // No agent at that path.
    let e = auth
        .authenticate(
            &db.pool,
            "alice",
            FactorInput::Agent {
                socket: "/nonexistent/agent.sock".into(),
            },
            "login",
            b"",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Mfa(MfaError::AgentUnreachable { .. })),
        "{e:?}"
    );
    assert_eq!(failed_attempts(&db, "alice").await, 0);
    // A plain key cannot be enrolled as a security key.
    let e = keys::enroll_sk(
        &db.pool,
        "alice",
        "k",
        &TestKey::plain_ed25519().openssh_line(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
}

// ------------------------------------------------------------- software

#[tokio::test]
async fn software_keys_only_when_allowed() {
    let db = console_db().await;
    let master = MasterKey::generate();
    let key = SoftwareKey::from_seed([3; 32]);
    keys::enroll_software(&db.pool, "alice", "demo", &key.record())
        .await
        .unwrap();

    let strict = authenticator(&master, false);
    let e = strict
        .authenticate(
            &db.pool,
            "alice",
            FactorInput::Software { key: &key },
            "login",
            b"",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Mfa(MfaError::SoftwareKeysDisabled)),
        "{e:?}"
    );
    assert_eq!(failed_attempts(&db, "alice").await, 0);
    let prompts = strict.describe_factors(&db.pool, "alice").await.unwrap();
    assert_eq!(prompts.len(), 1);
    assert!(prompts[0].prompt.contains("DEMO"));
    assert!(prompts[0].unusable.is_some());

    let demo = authenticator(&master, true);
    let proof = demo
        .authenticate(
            &db.pool,
            "alice",
            FactorInput::Software { key: &key },
            "step-up",
            b"erase subject 9",
        )
        .await
        .unwrap();
    assert_eq!(proof.factor(), FactorKind::Software);
    assert!(proof.authorises(b"erase subject 9"));
    assert!(
        demo.describe_factors(&db.pool, "alice").await.unwrap()[0]
            .unusable
            .is_none()
    );

    // Somebody else's software key: rejected and counted.
    let other = SoftwareKey::from_seed([4; 32]);
    let f = auth_failure(
        demo.authenticate(
            &db.pool,
            "alice",
            FactorInput::Software { key: &other },
            "login",
            b"",
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(f.reason, MfaError::BadSignature);
    // A factor the operator has not enrolled: refused, not counted.
    let e = demo
        .authenticate(
            &db.pool,
            "alice",
            FactorInput::Otp(own_otp(&aes(), 1, 0)),
            "login",
            b"",
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e:?}");
    assert!(
        e.to_string()
            .contains("has no active yubico_otp key enrolled; enrolled: software"),
        "{e}"
    );
    assert_eq!(failed_attempts(&db, "alice").await, 1);
}

// ------------------------------------------------------------------ PIV

fn openssl_certificate(dir: &std::path::Path) -> String {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "piv.key",
            "-out",
            "piv.pem",
            "-subj",
            "/CN=charon piv test",
            "-days",
            "1",
        ])
        .current_dir(dir)
        .output()
        .expect("openssl (Debian openssl) must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(dir.join("piv.pem")).unwrap()
}

#[tokio::test]
async fn piv_enrolment_and_a_clear_message_without_hardware() {
    let db = console_db().await;
    let dir = tempfile::tempdir().unwrap();
    let pem = openssl_certificate(dir.path());
    let key = keys::enroll_piv(&db.pool, "alice", "desk yubikey", &pem)
        .await
        .unwrap();
    assert_eq!(key.factor, FactorKind::Piv);
    assert!(key.fingerprint.starts_with("SHA256:"));
    let e = keys::enroll_piv(&db.pool, "bob", "x", "-----BEGIN CERTIFICATE-----\nnope\n")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
    let e = keys::enroll_piv(&db.pool, "bob", "again", &pem)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e:?}");

    let auth = authenticator(&MasterKey::generate(), false);
    let loaded = keys::enrolled_keys(&db.pool, None, "alice").await.unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].1.key_id(), key.fingerprint);
    // Never spend a PIN try on a real key that happens to be plugged in.
    if charon::core::mfa::piv::open_card().is_ok() {
        eprintln!("a YubiKey is plugged in; skipping the no-hardware check");
        return;
    }
    let e = auth
        .authenticate(
            &db.pool,
            "alice",
            FactorInput::Piv {
                pin: Secret::new("123456".into()),
                slot: PivSlot::Authentication,
            },
            "login",
            b"",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Mfa(MfaError::NoPcscDaemon | MfaError::NoCard)),
        "{e:?}"
    );
    assert_eq!(failed_attempts(&db, "alice").await, 0);
}

// ------------------------------------------------- enrolment and removal

#[tokio::test]
async fn enrolment_refuses_unknown_removed_and_duplicates() {
    let db = console_db().await;
    let master = MasterKey::generate();
    let e = keys::enroll_otp(&db.pool, &master, "nobody", "k", PUBLIC_ID, &aes(), &uid())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e:?}");
    let first = enroll_alice_otp(&db, &master).await;
    let e = keys::enroll_otp(&db.pool, &master, "bob", "k", PUBLIC_ID, &aes(), &uid())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e:?}");
    assert!(e.to_string().contains(&first.id.to_string()), "{e}");
    assert!(e.to_string().contains("`alice`"), "{e}");
    let e = keys::enroll_otp(&db.pool, &master, "bob", "k", "vvcbdefghij", &aes(), &uid())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
    let e = keys::enroll_software(&db.pool, "bob", "", &SoftwareKey::generate().record())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");

    // Revoked, the public id can be enrolled again (e.g. reassigned).
    let revoked = keys::revoke(&db.pool, first.id).await.unwrap();
    assert_eq!(revoked.status, KeyStatus::Revoked);
    assert!(revoked.revoked_at.is_some());
    assert!(matches!(
        keys::revoke(&db.pool, first.id).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        keys::revoke(&db.pool, uuid::Uuid::new_v4()).await,
        Err(Error::NotFound(_))
    ));
    keys::enroll_otp(
        &db.pool,
        &master,
        "bob",
        "reassigned",
        PUBLIC_ID,
        &aes(),
        &uid(),
    )
    .await
    .unwrap();
    let all = keys::list(&db.pool, None).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(keys::list(&db.pool, Some("alice")).await.unwrap().len(), 1);

    operators::remove(&db.pool, "carol").await.unwrap();
    let e = keys::enroll_sk(&db.pool, "carol", "k", &TestKey::sk_ecdsa().openssh_line())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e:?}");
    assert!(e.to_string().contains("removed"), "{e}");
}

#[tokio::test]
async fn a_removed_operators_keys_are_refused() {
    let db = console_db().await;
    let master = MasterKey::generate();
    let auth = authenticator(&master, true);
    let key = SoftwareKey::from_seed([5; 32]);
    let enrolled = keys::enroll_software(&db.pool, "carol", "demo", &key.record())
        .await
        .unwrap();
    auth.authenticate(
        &db.pool,
        "carol",
        FactorInput::Software { key: &key },
        "login",
        b"",
    )
    .await
    .unwrap();
    operators::remove(&db.pool, "carol").await.unwrap();
    let e = auth
        .authenticate(
            &db.pool,
            "carol",
            FactorInput::Software { key: &key },
            "login",
            b"",
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e:?}");
    assert!(e.to_string().contains("removed"), "{e}");
    assert_eq!(
        keys::list(&db.pool, Some("carol")).await.unwrap()[0].status,
        KeyStatus::Revoked
    );
    assert!(
        keys::enrolled_keys(&db.pool, Some(&master), "carol")
            .await
            .unwrap()
            .is_empty()
    );
    // key verify says exactly what became of it.
    let e = auth
        .key_verify(&db.pool, FactorInput::Software { key: &key })
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&enrolled.id.to_string()), "{e}");
    assert!(e.contains("`carol`, who has been removed"), "{e}");
}

// ------------------------------------------------------- key verify, gate

#[tokio::test]
async fn key_verify_names_operator_and_key_or_says_why_not() {
    let db = console_db().await;
    let master = MasterKey::generate();
    let auth = authenticator(&master, true);
    let otp_key = enroll_alice_otp(&db, &master).await;
    let sk = TestKey::sk_ecdsa();
    let sk_key = keys::enroll_sk(&db.pool, "bob", "bob's sk", &sk.openssh_line())
        .await
        .unwrap();
    let agent = TestAgent::start(vec![sk.clone()]).await;

    let m = auth
        .key_verify(&db.pool, FactorInput::Otp(own_otp(&aes(), 1, 0)))
        .await
        .unwrap();
    assert_eq!((m.login.as_str(), m.key_id), ("alice", otp_key.id));
    assert_eq!(m.label, "yubikey 5c");
    assert_eq!(m.operator_status, Status::Active);
    // The verified OTP is consumed like a login.
    assert_eq!(otp_counters(&db, otp_key.id).await, (Some(1), Some(0)));
    let e = auth
        .key_verify(&db.pool, FactorInput::Otp(own_otp(&aes(), 1, 0)))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("replayed OTP"), "{e}");

    let m = auth
        .key_verify(
            &db.pool,
            FactorInput::Agent {
                socket: agent.path.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!((m.login.as_str(), m.key_id), ("bob", sk_key.id));
    assert_eq!(m.fingerprint, sk_key.fingerprint);
    assert_eq!(m.proof.factor(), FactorKind::Sk);

    let stranger = own_otp(&aes(), 2, 0).replacen(PUBLIC_ID, "vvcbdefghijj", 1);
    let e = auth
        .key_verify(&db.pool, FactorInput::Otp(stranger))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "not found: yubico_otp key vvcbdefghijj is not enrolled for any operator"
    );

    keys::revoke(&db.pool, otp_key.id).await.unwrap();
    let e = auth
        .key_verify(&db.pool, FactorInput::Otp(own_otp(&aes(), 3, 0)))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("of `alice`, and it has been revoked"), "{e}");
    // key verify never counts a failure against anybody.
    assert_eq!(failed_attempts(&db, "alice").await, 0);
}

#[tokio::test]
async fn the_gate_is_told_which_factors_to_wait_for() {
    let db = console_db().await;
    let master = MasterKey::generate();
    let auth = authenticator(&master, false);
    enroll_alice_otp(&db, &master).await;
    keys::enroll_sk(
        &db.pool,
        "alice",
        "blue",
        &TestKey::sk_ed25519().openssh_line(),
    )
    .await
    .unwrap();
    keys::enroll_sk(
        &db.pool,
        "alice",
        "spare",
        &TestKey::sk_ecdsa().openssh_line(),
    )
    .await
    .unwrap();
    let p = auth.describe_factors(&db.pool, "alice").await.unwrap();
    let kinds: Vec<FactorKind> = p.iter().map(|f| f.factor).collect();
    assert_eq!(kinds, [FactorKind::YubicoOtp, FactorKind::Sk]);
    assert!(p[0].prompt.contains("touch your YubiKey"));
    assert_eq!(p[1].keys, ["blue", "spare"]);
    assert!(p[1].prompt.contains("ssh -A"));
    assert!(p.iter().all(|f| f.unusable.is_none()));
    assert!(
        auth.describe_factors(&db.pool, "bob")
            .await
            .unwrap()
            .is_empty()
    );
    let e = auth
        .authenticate(
            &db.pool,
            "bob",
            FactorInput::Otp(own_otp(&aes(), 1, 0)),
            "login",
            b"",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no active key at all"), "{e}");
    assert!(auth.describe_factors(&db.pool, "nobody").await.is_err());
}

#[tokio::test]
async fn authenticator_from_config_reads_protected_files() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    std::fs::write(&path, hex::encode([9u8; 32])).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = MfaConfig {
        master_key_file: Some(path.clone()),
        ..MfaConfig::default()
    };
    if std::env::var_os(charon::core::secrets::MASTER_KEY_ENV).is_some() {
        eprintln!("CHARON_MASTER_KEY is set in this environment; skipping");
        return;
    }
    let e = Authenticator::from_config(&c).unwrap_err().to_string();
    assert!(e.contains("mode 0644"), "{e}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let a = Authenticator::from_config(&c).unwrap();
    assert!(a.master_key().is_some());
    assert!(!a.allows_software_keys());
    assert_eq!(a.step_up_window(), std::time::Duration::from_secs(120));
    assert!(a.needs_step_up(None, chrono::Utc::now()));
}
