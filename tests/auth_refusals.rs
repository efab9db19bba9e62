//! The authenticator's refusals and prompts beyond the factor stories: what
//! the gate says when a deployment cannot check a factor, a validation
//! server answering without counters, a misconfigured validation server,
//! software keys refused in `key verify`, and factor inputs that never print
//! a credential.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use charon::core::Error;
use charon::core::auth::{Authenticator, FactorInput};
use charon::core::config::{MfaConfig, ValidationServer};
use charon::core::keys;
use charon::core::mfa::otp::validation::{self, ValidationClient};
use charon::core::mfa::piv::PivSlot;
use charon::core::mfa::software::SoftwareKey;
use charon::core::mfa::{FactorKind, MfaError, Secret};
use charon::core::operators;
use charon::core::secrets::MasterKey;
use charon::core::session::Role;
use common::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const API_KEY_B64: &str = "mG5be6ZJU1qBGz24yPh/ESM3UdU=";
const OTP: &str = "vvccccccbdefghijklnrtuvcbdefghijklnrtuvcbdef";
const PUBLIC_ID: &str = "vvccccccbdef";

async fn console_db() -> TestDb {
    let db = TestDb::new("authref").await;
    charon::core::db::migrate_console(&db.pool).await.unwrap();
    operators::bootstrap(&db.pool, "root_admin", "Admin")
        .await
        .unwrap();
    operators::add(&db.pool, "root_admin", "alice", "alice", Role::Support)
        .await
        .unwrap();
    db
}

fn cfg(allow_software_keys: bool) -> MfaConfig {
    MfaConfig {
        allow_software_keys,
        touch_timeout: std::time::Duration::from_secs(5),
        ..MfaConfig::default()
    }
}

fn openssl_certificate(dir: &std::path::Path) -> String {
    let out = std::process::Command::new("openssl")
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
    assert!(out.status.success());
    std::fs::read_to_string(dir.join("piv.pem")).unwrap()
}

#[test]
fn factor_inputs_never_print_a_credential() {
    let otp = FactorInput::Otp(format!("  {OTP}\n"));
    let shown = format!("{otp:?}");
    assert_eq!(shown, format!("Otp({PUBLIC_ID}…)"));
    assert!(!shown.contains(&OTP[12..]), "{shown}");

    let agent = FactorInput::Agent {
        socket: PathBuf::from("/run/user/1000/agent.sock"),
    };
    assert_eq!(format!("{agent:?}"), "Agent(/run/user/1000/agent.sock)");

    let piv = FactorInput::Piv {
        pin: Secret::new("271828".into()),
        slot: PivSlot::Signature,
    };
    let shown = format!("{piv:?}");
    assert_eq!(shown, "Piv(slot 9c, PIN ***)");

    let key = SoftwareKey::generate();
    let soft = FactorInput::Software { key: &key };
    assert_eq!(format!("{soft:?}"), format!("Software({key:?})"));
    assert_eq!(soft.kind(), FactorKind::Software);
}

#[tokio::test]
async fn the_gate_says_which_factors_this_deployment_cannot_check() {
    let db = console_db().await;
    let master = MasterKey::generate();
    let dir = tempfile::tempdir().unwrap();
    keys::enroll_otp_server(&db.pool, "alice", "server-checked", PUBLIC_ID)
        .await
        .unwrap();
    keys::enroll_piv(&db.pool, "alice", "desk", &openssl_certificate(dir.path()))
        .await
        .unwrap();
    // No validation server configured: the OTP key cannot be checked.
    let auth = Authenticator::new(&cfg(false), Some(master.clone()), None);
    let prompts = auth.describe_factors(&db.pool, "alice").await.unwrap();
    let otp = prompts
        .iter()
        .find(|p| p.factor == FactorKind::YubicoOtp)
        .unwrap();
    assert_eq!(otp.keys, vec!["server-checked".to_string()]);
    assert_eq!(
        otp.unusable.as_deref(),
        Some("its keys are checked by a validation server, and none is configured")
    );
    let piv = prompts
        .iter()
        .find(|p| p.factor == FactorKind::Piv)
        .unwrap();
    assert_eq!(piv.keys, vec!["desk".to_string()]);
    assert!(piv.prompt.starts_with("enter the PIN"), "{}", piv.prompt);
    assert_eq!(piv.unusable, None);

    // Locally checked OTP keys without a master key cannot be opened.
    operators::add(&db.pool, "root_admin", "bob", "bob", Role::Support)
        .await
        .unwrap();
    keys::enroll_otp(
        &db.pool,
        &master,
        "bob",
        "sealed",
        "vvcbdefghijk",
        &charon::core::mfa::otp::AesKey::from_hex("2b7e151628aed2a6abf7158809cf4f3c").unwrap(),
        &charon::core::mfa::otp::PrivateId::from_hex("a1b2c3d4e5f6").unwrap(),
    )
    .await
    .unwrap();
    let no_master = Authenticator::new(&cfg(false), None, None);
    let prompts = no_master.describe_factors(&db.pool, "bob").await.unwrap();
    assert_eq!(prompts.len(), 1);
    assert_eq!(
        prompts[0].unusable.as_deref(),
        Some("no master key is configured to open the stored OTP secrets")
    );
}

/// A validation server that answers every request with a signed OK echoing
/// the OTP and nonce, without session counters.
async fn counterless_server() -> String {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD
        .decode(API_KEY_B64)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/wsapi/2.0/verify", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let req = String::from_utf8_lossy(&buf).to_string();
            let query = req
                .split_whitespace()
                .nth(1)
                .and_then(|t| t.split_once('?'))
                .map(|(_, q)| q.to_string())
                .unwrap_or_default();
            let param = |name: &str| {
                query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                    .unwrap_or_default()
                    .to_string()
            };
            let (otp, nonce) = (param("otp"), param("nonce"));
            let fields = [
                ("otp", otp.as_str()),
                ("nonce", nonce.as_str()),
                ("status", "OK"),
            ];
            let h = validation::sign_params(&fields, &key);
            let mut body: String = fields.iter().map(|(k, v)| format!("{k}={v}\r\n")).collect();
            body.push_str(&format!("h={h}\r\n"));
            let response = format!("HTTP/1.0 200 OK\r\n\r\n{body}");
            let _ = conn.write_all(response.as_bytes()).await;
            let _ = conn.shutdown().await;
        }
    });
    url
}

#[tokio::test]
async fn a_server_checked_otp_without_counters_is_accepted_and_the_key_touched() {
    let db = console_db().await;
    let key = keys::enroll_otp_server(&db.pool, "alice", "server-checked", PUBLIC_ID)
        .await
        .unwrap();
    let url = counterless_server().await;
    let client = ValidationClient::new(&url, "4711", API_KEY_B64).unwrap();
    let auth = Authenticator::new(&cfg(false), None, Some(client));
    let proof = auth
        .authenticate(
            &db.pool,
            "alice",
            FactorInput::Otp(OTP.into()),
            "login",
            b"",
        )
        .await
        .unwrap();
    assert_eq!(proof.factor(), FactorKind::YubicoOtp);
    assert_eq!(proof.key_id(), PUBLIC_ID);
    let (counter, used): (Option<i32>, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
        "SELECT last_session_counter, last_used_at FROM operator_keys WHERE id = $1",
    )
    .bind(key.id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(counter, None, "no counter reported, none stored");
    assert!(used.is_some(), "the key was touched");
}

#[tokio::test]
async fn key_verify_passes_configuration_errors_through() {
    let db = console_db().await;
    keys::enroll_otp_server(&db.pool, "alice", "server-checked", PUBLIC_ID)
        .await
        .unwrap();
    let auth = Authenticator::new(&cfg(false), None, None);
    match auth
        .key_verify(&db.pool, FactorInput::Otp(OTP.into()))
        .await
    {
        Err(Error::Config(m)) => {
            assert!(m.contains("checked by a validation server"), "{m}");
            assert!(!m.contains(&OTP[12..]), "{m}");
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[tokio::test]
async fn key_verify_refuses_software_keys_when_they_are_not_allowed() {
    let db = console_db().await;
    let key = SoftwareKey::generate();
    keys::enroll_software(&db.pool, "alice", "demo", &key.record())
        .await
        .unwrap();
    let strict = Authenticator::new(&cfg(false), None, None);
    match strict
        .key_verify(&db.pool, FactorInput::Software { key: &key })
        .await
    {
        Err(Error::Mfa(MfaError::SoftwareKeysDisabled)) => {}
        other => panic!("expected software keys disabled, got {other:?}"),
    }
}

#[test]
fn a_validation_server_config_is_read_from_its_protected_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("api.key");
    std::fs::write(&key_file, format!("{API_KEY_B64}\n")).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut c = cfg(false);
    c.validation = Some(ValidationServer {
        url: "http://127.0.0.1:9/wsapi/2.0/verify".into(),
        client_id: "4711".into(),
        api_key_file: key_file.clone(),
    });
    if std::env::var_os(charon::core::secrets::MASTER_KEY_ENV).is_some() {
        return; // the master key would come from the environment
    }
    assert!(Authenticator::from_config(&c).is_ok());
    c.validation = Some(ValidationServer {
        url: "https://api.yubico.com/wsapi/2.0/verify".into(),
        client_id: "4711".into(),
        api_key_file: key_file,
    });
    match Authenticator::from_config(&c) {
        Err(Error::Config(m)) => {
            assert!(m.starts_with("[mfa] validation server: "), "{m}");
            assert!(m.contains("https is not supported yet"), "{m}");
            assert!(!m.contains(API_KEY_B64), "{m}");
        }
        Err(other) => panic!("expected a configuration error, got {other:?}"),
        Ok(_) => panic!("an https validation URL was accepted"),
    }
}

#[tokio::test]
async fn key_verify_names_an_enrolled_key_whose_stored_public_key_does_not_verify() {
    let db = console_db().await;
    operators::add(&db.pool, "root_admin", "bob", "bob", Role::Support)
        .await
        .unwrap();
    let alice_key = SoftwareKey::generate();
    let info = keys::enroll_software(&db.pool, "alice", "demo", &alice_key.record())
        .await
        .unwrap();
    keys::enroll_software(&db.pool, "bob", "demo", &SoftwareKey::generate().record())
        .await
        .unwrap();
    // Alice's stored public key is replaced by Bob's (a changed row).
    sqlx::query(
        "UPDATE operator_keys
            SET public_key = (SELECT public_key FROM operator_keys WHERE login = 'bob')
          WHERE login = 'alice'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let auth = Authenticator::new(&cfg(true), None, None);
    match auth
        .key_verify(&db.pool, FactorInput::Software { key: &alice_key })
        .await
    {
        Err(Error::NotFound(m)) => assert_eq!(
            m,
            format!(
                "software key {} is key {} of `alice` but did not verify",
                alice_key.record().key_id(),
                info.id
            )
        ),
        other => panic!("expected not found, got {other:?}"),
    }
}
