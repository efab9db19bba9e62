//! MFA edge cases the factor stories do not reach: a validation server's
//! every refusal status, a response without session counters, too large or
//! empty answers; an ssh-agent that answers with failures, wrong message
//! types, trailing bytes or a bad frame; OTP generation refusing bad public
//! ids; and what enrolled keys and challenges print.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use charon::core::mfa::otp::validation::{self, ValidationClient};
use charon::core::mfa::otp::{self, AesKey, OtpKeyRecord, OtpToken, PrivateId};
use charon::core::mfa::piv::PivKeyRecord;
use charon::core::mfa::sk::{self, SkAgent, SkKeyRecord};
use charon::core::mfa::{Challenge, EnrolledKey, FactorKind, MfaError};
use support::sk_agent::TestKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const API_KEY_B64: &str = "mG5be6ZJU1qBGz24yPh/ESM3UdU=";
const OTP: &str = "vvccccccbdefghijklnrtuvcbdefghijklnrtuvcbdef";
const PUBLIC_ID: &str = "vvccccccbdef";

fn api_key() -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(API_KEY_B64)
        .unwrap()
}

// ------------------------------------------------------------ OTP and keys

#[test]
fn otp_generation_refuses_a_bad_public_id() {
    let key = AesKey::from_hex("2b7e151628aed2a6abf7158809cf4f3c").unwrap();
    let token = OtpToken {
        private_id: PrivateId::from_hex("a1b2c3d4e5f6").unwrap(),
        usage_counter: 1,
        timestamp: 0,
        session_use: 0,
        random: 0,
    };
    assert_eq!(
        otp::generate_otp("vvcbdef", &key, &token).unwrap_err(),
        MfaError::WrongLength { got: 7, want: 12 }
    );
    assert_eq!(
        otp::generate_otp("vvcbdefghijz", &key, &token).unwrap_err(),
        MfaError::NotModhex
    );
    let o = otp::generate_otp("VVCBDEFGHIJK", &key, &token).unwrap();
    assert!(o.starts_with("vvcbdefghijk"), "{o}");
}

#[test]
fn enrolled_keys_name_their_factor_and_key_id() {
    let otp_key = EnrolledKey::YubicoOtp(OtpKeyRecord {
        public_id: "VVCBDEFGHIJK".into(),
        aes_key: AesKey::from_hex("2b7e151628aed2a6abf7158809cf4f3c").unwrap(),
        private_id: PrivateId::from_hex("a1b2c3d4e5f6").unwrap(),
        last_counter: None,
    });
    assert_eq!(otp_key.kind(), FactorKind::YubicoOtp);
    assert_eq!(otp_key.key_id(), "vvcbdefghijk");

    let test_key = TestKey::sk_ed25519();
    let rec = SkKeyRecord::from_openssh(&test_key.openssh_line(), None).unwrap();
    let sk_key = EnrolledKey::Sk(rec.clone());
    assert_eq!(sk_key.kind(), FactorKind::Sk);
    assert_eq!(sk_key.key_id(), rec.fingerprint());
    assert!(
        sk_key.key_id().starts_with("SHA256:"),
        "{}",
        sk_key.key_id()
    );

    use p256::pkcs8::EncodePublicKey;
    let signing = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let der = signing.verifying_key().to_public_key_der().unwrap();
    let piv = PivKeyRecord::from_spki_der(der.as_bytes()).unwrap();
    let piv_key = EnrolledKey::Piv(piv.clone());
    assert_eq!(piv_key.kind(), FactorKind::Piv);
    assert_eq!(piv_key.key_id(), piv.key_id());
}

#[test]
fn a_challenge_debugs_as_its_hex_bytes() {
    let ch = Challenge::new("login", b"").unwrap();
    assert_eq!(
        format!("{ch:?}"),
        format!("Challenge({})", hex::encode(ch.as_bytes()))
    );
}

#[test]
fn an_sk_signature_of_another_algorithm_is_a_bad_signature() {
    let ecdsa = TestKey::sk_ecdsa();
    let ed = TestKey::sk_ed25519();
    let rec = SkKeyRecord::from_openssh(&ecdsa.openssh_line(), None).unwrap();
    let blob = ed.sign(b"message", sk::FLAG_USER_PRESENT, 1);
    assert_eq!(
        sk::verify_sk_signature(&rec, b"message", &blob).unwrap_err(),
        MfaError::BadSignature
    );
}

// ------------------------------------------------------- validation server

#[test]
fn validation_urls_and_keys_are_checked() {
    let c = ValidationClient::new("http://127.0.0.1:8080", "1", API_KEY_B64).unwrap();
    assert_eq!(c.url(), "http://127.0.0.1:8080");
    for (url, why) in [
        (
            "http://x/verify?id=1",
            "must not contain a query or fragment",
        ),
        (
            "http://x/verify#top",
            "must not contain a query or fragment",
        ),
        ("http://:8080/verify", "bad host"),
        ("http://user@x/verify", "bad host"),
    ] {
        match ValidationClient::new(url, "1", API_KEY_B64) {
            Err(MfaError::BadServerUrl { url: u, reason }) => {
                assert_eq!(u, url);
                assert_eq!(reason, why, "{url}");
            }
            other => panic!("{url}: expected a bad URL, got {other:?}"),
        }
    }
    match ValidationClient::new("http://x/verify", "1", "not base64!") {
        Err(MfaError::BadEnrolledKey(m)) => assert!(m.contains("not base64"), "{m}"),
        other => panic!("expected a bad API key, got {other:?}"),
    }
    assert!(matches!(
        ValidationClient::new("http://x/verify", "one", API_KEY_B64),
        Err(MfaError::BadEnrolledKey(_))
    ));
}

#[test]
fn every_refusal_status_is_explained() {
    let key = api_key();
    for (status, meaning) in [
        ("BAD_OTP", "the OTP is invalid"),
        ("REPLAYED_OTP", "this OTP was already used"),
        (
            "BAD_SIGNATURE",
            "the server says our request signature is wrong; check the API key",
        ),
        ("MISSING_PARAMETER", "the request lacked a parameter"),
        ("NO_SUCH_CLIENT", "the client id is unknown to the server"),
        ("OPERATION_NOT_ALLOWED", "this client may not verify OTPs"),
        ("BACKEND_ERROR", "the server had an internal error"),
        (
            "NOT_ENOUGH_ANSWERS",
            "the server could not reach enough sync servers",
        ),
        ("REPLAYED_REQUEST", "the server saw this request before"),
        ("SOMETHING_NEW", "unknown status"),
    ] {
        let h = validation::sign_params(&[("status", status)], &key);
        let fields = vec![
            ("status".to_string(), status.to_string()),
            ("h".to_string(), h),
        ];
        let e = validation::check_response(&fields, &key, OTP, "nonce").unwrap_err();
        assert_eq!(
            e,
            MfaError::ServerRejected {
                status: status.to_string(),
                meaning
            }
        );
        assert!(e.to_string().contains(meaning), "{e}");
    }
    assert_eq!(
        validation::parse_response("\r\n  \r\n").unwrap_err(),
        MfaError::ServerProtocol("empty response".into())
    );
}

#[derive(Clone, Copy)]
enum Answer {
    /// A correctly signed OK without session counters.
    OkWithoutCounters,
    /// More than the client reads.
    TooLarge,
    /// HTTP 200 with an empty body.
    Empty,
    /// These bytes, as they are (no HTTP framing added).
    Raw(&'static [u8]),
}

/// A validation server with one canned way of answering.
async fn scripted_server(answer: Answer) -> String {
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
            let target = req.split_whitespace().nth(1).unwrap_or_default();
            let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
            let param = |name: &str| {
                query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                    .unwrap_or_default()
                    .to_string()
            };
            let body = match answer {
                Answer::OkWithoutCounters => {
                    let (otp, nonce) = (param("otp"), param("nonce"));
                    let fields = [
                        ("otp", otp.as_str()),
                        ("nonce", nonce.as_str()),
                        ("t", "2026-01-01T00:00:00Z0000"),
                        ("status", "OK"),
                    ];
                    let h = validation::sign_params(&fields, &api_key());
                    let mut b: String =
                        fields.iter().map(|(k, v)| format!("{k}={v}\r\n")).collect();
                    b.push_str(&format!("h={h}\r\n"));
                    b
                }
                Answer::TooLarge => "x=".to_string() + &"y".repeat(70 * 1024),
                Answer::Empty => String::new(),
                Answer::Raw(bytes) => {
                    let _ = conn.write_all(bytes).await;
                    let _ = conn.shutdown().await;
                    continue;
                }
            };
            let response = format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n{body}");
            let _ = conn.write_all(response.as_bytes()).await;
            let _ = conn.shutdown().await;
        }
    });
    url
}

fn client(url: &str) -> ValidationClient {
    ValidationClient::new(url, "4711", API_KEY_B64)
        .unwrap()
        .with_timeout(Duration::from_secs(10))
}

#[tokio::test]
async fn an_ok_without_session_counters_is_accepted_without_a_counter() {
    let url = scripted_server(Answer::OkWithoutCounters).await;
    let ok = client(&url).verify(OTP, PUBLIC_ID).await.unwrap();
    assert_eq!(ok.public_id, PUBLIC_ID);
    assert_eq!(ok.counter, None);
    assert_eq!(ok.proof().factor(), FactorKind::YubicoOtp);
}

#[tokio::test]
async fn a_too_large_or_empty_answer_is_a_protocol_error() {
    let url = scripted_server(Answer::TooLarge).await;
    assert_eq!(
        client(&url).verify(OTP, PUBLIC_ID).await.unwrap_err(),
        MfaError::ServerProtocol("response too large".into())
    );
    let url = scripted_server(Answer::Empty).await;
    assert_eq!(
        client(&url).verify(OTP, PUBLIC_ID).await.unwrap_err(),
        MfaError::ServerProtocol("empty response".into())
    );
}

// -------------------------------------------------------------- ssh-agent

/// An ssh-agent that answers each request with the next canned frame (each
/// given whole, length prefix included) and closes when none is left.
async fn scripted_agent(replies: Vec<Vec<u8>>) -> (PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let replies = Arc::new(Mutex::new(replies.into_iter()));
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let replies = replies.clone();
            tokio::spawn(async move {
                loop {
                    let mut len = [0u8; 4];
                    if conn.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                    if conn.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let next = replies.lock().unwrap().next();
                    match next {
                        Some(frame) => {
                            if conn.write_all(&frame).await.is_err() {
                                return;
                            }
                        }
                        None => return,
                    }
                }
            });
        }
    });
    (path, dir)
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

async fn protocol_error_of_list(reply: Vec<u8>) -> String {
    let (path, _dir) = scripted_agent(vec![reply]).await;
    let mut agent = SkAgent::connect(&path).await.unwrap();
    match agent.list_identities().await {
        Err(MfaError::AgentProtocol(m)) => m,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_agent_answering_the_key_list_wrongly_is_a_protocol_error() {
    assert_eq!(
        protocol_error_of_list(frame(&[5])).await,
        "identities answer: agent failure"
    );
    assert_eq!(
        protocol_error_of_list(frame(&[99])).await,
        "identities answer: unexpected message type 99"
    );
    assert_eq!(
        protocol_error_of_list(frame(&[12, 0, 0, 0, 0, 0xff])).await,
        "identities answer: trailing bytes"
    );
    assert_eq!(
        protocol_error_of_list(frame(&[])).await,
        "bad message length 0"
    );
}

/// An identities answer of `len` bytes: one key (a blob that is not a key)
/// with a comment long enough to fill it.
fn identities_answer_of(len: usize) -> Vec<u8> {
    let mut body = vec![12u8];
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&1u32.to_be_bytes());
    body.push(b'x');
    let comment = len - body.len() - 4;
    body.extend_from_slice(&(comment as u32).to_be_bytes());
    body.resize(len, b'c');
    body
}

#[tokio::test]
async fn agent_messages_up_to_256_kib_are_read_and_longer_ones_refused() {
    const MAX: usize = 256 * 1024;
    let (path, _dir) = scripted_agent(vec![frame(&identities_answer_of(MAX))]).await;
    let mut agent = SkAgent::connect(&path).await.unwrap();
    let keys = agent.list_identities().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].comment.len(), MAX - 14);
    assert_eq!(
        protocol_error_of_list(frame(&identities_answer_of(MAX + 1))).await,
        format!("bad message length {}", MAX + 1)
    );
}

#[tokio::test]
async fn an_agent_answering_a_sign_request_wrongly_is_a_protocol_error() {
    let (path, _dir) = scripted_agent(vec![frame(&[99])]).await;
    let mut agent = SkAgent::connect(&path).await.unwrap();
    assert_eq!(
        agent.sign(b"key", b"data").await.unwrap_err(),
        MfaError::AgentProtocol("sign answer: unexpected message type 99".into())
    );
}

#[tokio::test]
async fn an_agent_that_hangs_up_is_unreachable_naming_its_socket() {
    let (path, _dir) = scripted_agent(vec![]).await;
    let mut agent = SkAgent::connect(&path).await.unwrap();
    match agent.list_identities().await {
        Err(MfaError::AgentUnreachable { path: p, detail }) => {
            assert_eq!(p, path.display().to_string());
            assert!(!detail.is_empty());
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn the_agent_from_the_environment_is_refused_clearly_when_absent() {
    // The test process does not change its environment; it checks whichever
    // case it runs in.
    match std::env::var_os("SSH_AUTH_SOCK").filter(|p| !p.is_empty()) {
        None => assert_eq!(SkAgent::connect_env().await.unwrap_err(), MfaError::NoAgent),
        Some(p) => match SkAgent::connect_env().await {
            Ok(_) => {}
            Err(MfaError::AgentUnreachable { path, .. }) => {
                assert_eq!(path, std::path::Path::new(&p).display().to_string())
            }
            Err(other) => panic!("unexpected {other:?}"),
        },
    }
}

#[tokio::test]
async fn answers_that_are_not_http_are_protocol_errors() {
    for (raw, why) in [
        (
            &b"HTTP/1.0 200 OK\r\n\r\n\xff\xfe"[..],
            "response is not UTF-8",
        ),
        (&b"HTTP/1.0 200 OK\r\nstatus=OK"[..], "no HTTP header end"),
        (
            &b"SPEAK FRIEND\r\n\r\nstatus=OK"[..],
            "bad status line \"SPEAK FRIEND\"",
        ),
    ] {
        let url = scripted_server(Answer::Raw(raw)).await;
        assert_eq!(
            client(&url).verify(OTP, PUBLIC_ID).await.unwrap_err(),
            MfaError::ServerProtocol(why.into())
        );
    }
    assert_eq!(
        validation::parse_response("status=OK\r\ngarbage\r\n").unwrap_err(),
        MfaError::ServerProtocol("line without '=': \"garbage\"".into())
    );
}

#[test]
fn malformed_enrolment_material_is_refused() {
    for bad in ["", "xyz", "2b7e1516"] {
        assert_eq!(
            AesKey::from_hex(bad).unwrap_err(),
            MfaError::BadEnrolledKey("AES key must be 32 hex digits".into())
        );
        assert_eq!(
            PrivateId::from_hex(bad).unwrap_err(),
            MfaError::BadEnrolledKey("private id must be 12 hex digits".into())
        );
    }
    let e = PivKeyRecord::from_spki_der(b"not der").unwrap_err();
    assert!(
        matches!(&e, MfaError::BadEnrolledKey(m) if m.starts_with("not a P-256 public key (SPKI): ")),
        "{e:?}"
    );
    let e = PivKeyRecord::from_certificate_der(b"not der").unwrap_err();
    assert!(
        matches!(&e, MfaError::BadEnrolledKey(m) if m.starts_with("not an X.509 certificate: ")),
        "{e:?}"
    );
    let e = PivKeyRecord::from_certificate_pem("-----BEGIN CERTIFICATE-----\nnope\n").unwrap_err();
    assert!(
        matches!(&e, MfaError::BadEnrolledKey(m) if m.starts_with("not a PEM certificate: ")),
        "{e:?}"
    );
}
