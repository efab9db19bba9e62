//! The MFA factors against independent counterparts: OTPs made by Debian's
//! python3-yubiotp, a validation server on a local port, a real ssh-agent
//! protocol server holding sk keys, OpenSSH's ssh-keygen for the sk
//! signature format, and OpenSSL for PIV certificates and signatures.
//!
//! Needs the Debian packages python3-yubiotp, openssh-client and openssl.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use charon::core::mfa::otp::validation::ValidationClient;
use charon::core::mfa::otp::{self, AesKey, OtpKeyRecord, OtpToken, PrivateId};
use charon::core::mfa::piv::{self, PivKeyRecord};
use charon::core::mfa::sk::{self, SkAgent, SkKeyRecord};
use charon::core::mfa::{Challenge, FactorKind, MfaError};
use support::otp::{ValServer, python_decode, python_otps};
use support::sk_agent::{Behaviour, TestAgent, TestKey, put_string};

const AES_HEX: &str = "2b7e151628aed2a6abf7158809cf4f3c";
const UID_HEX: &str = "a1b2c3d4e5f6";
const PUBLIC_ID: &str = "vvcbdefghijk";

fn record(last: Option<(u16, u8)>) -> OtpKeyRecord {
    OtpKeyRecord {
        public_id: PUBLIC_ID.into(),
        aes_key: AesKey::from_hex(AES_HEX).unwrap(),
        private_id: PrivateId::from_hex(UID_HEX).unwrap(),
        last_counter: last,
    }
}

// ---------------------------------------------------------------- Yubico OTP

#[test]
fn otps_from_python_yubiotp_are_accepted_in_order() {
    let otps = python_otps(AES_HEX, UID_HEX, PUBLIC_ID, 17, 0, 3);
    assert_eq!(otps.len(), 3);
    let mut rec = record(Some((16, 200)));
    for (i, o) in otps.iter().enumerate() {
        assert_eq!(o.len(), 44);
        let ok = otp::verify_otp(o, &rec).unwrap_or_else(|e| panic!("OTP {i} rejected: {e}"));
        assert_eq!(ok.counter, (17, i as u8));
        assert_eq!(ok.public_id, PUBLIC_ID);
        assert_eq!(ok.proof().factor(), FactorKind::YubicoOtp);
        assert_eq!(ok.proof().key_id(), PUBLIC_ID);
        assert!(ok.proof().signature().is_none());
        rec.last_counter = Some(ok.counter);
    }
}

#[test]
fn replayed_and_reordered_otps_are_rejected() {
    let otps = python_otps(AES_HEX, UID_HEX, PUBLIC_ID, 5, 3, 3);
    let mut rec = record(None);
    let first = otp::verify_otp(&otps[0], &rec).unwrap();
    rec.last_counter = Some(first.counter);
    let e = otp::verify_otp(&otps[0], &rec).unwrap_err();
    assert_eq!(
        e.to_string(),
        "replayed OTP (counter 5/3 not above last accepted 5/3)"
    );
    // Skip ahead to the third, then the second arrives late.
    let third = otp::verify_otp(&otps[2], &rec).unwrap();
    rec.last_counter = Some(third.counter);
    assert_eq!(
        otp::verify_otp(&otps[1], &rec).unwrap_err(),
        MfaError::Replayed {
            got: (5, 4),
            last: (5, 5)
        }
    );
    // An OTP from an older power-up session is also a replay.
    let old = python_otps(AES_HEX, UID_HEX, PUBLIC_ID, 4, 250, 1);
    assert_eq!(
        otp::verify_otp(&old[0], &rec).unwrap_err(),
        MfaError::Replayed {
            got: (4, 250),
            last: (5, 5)
        }
    );
}

#[test]
fn tampered_wrong_key_and_wrong_ids_are_rejected() {
    let o = &python_otps(AES_HEX, UID_HEX, PUBLIC_ID, 9, 0, 1)[0];
    let rec = record(None);

    // One character of the token flipped to another modhex letter.
    for pos in [12, 20, 43] {
        let mut t: Vec<char> = o.chars().collect();
        t[pos] = if t[pos] == 'c' { 'b' } else { 'c' };
        let t: String = t.into_iter().collect();
        let e = otp::verify_otp(&t, &rec).unwrap_err();
        assert_eq!(e, MfaError::CrcMismatch, "flip at {pos}");
        assert_eq!(
            e.to_string(),
            "CRC check failed (wrong key or tampered OTP)"
        );
    }

    let mut wrong_key = record(None);
    wrong_key.aes_key = AesKey::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
    assert_eq!(
        otp::verify_otp(o, &wrong_key).unwrap_err(),
        MfaError::CrcMismatch
    );

    let mut other_id = record(None);
    other_id.public_id = "vvcccccccccc".into();
    let e = otp::verify_otp(o, &other_id).unwrap_err();
    assert_eq!(e, MfaError::UnknownPublicId(PUBLIC_ID.into()));
    assert_eq!(e.to_string(), format!("unknown public id {PUBLIC_ID}"));

    let mut other_uid = record(None);
    other_uid.private_id = PrivateId::from_hex("000000000001").unwrap();
    assert_eq!(
        otp::verify_otp(o, &other_uid).unwrap_err().to_string(),
        "private id mismatch"
    );
}

#[test]
fn malformed_input_is_rejected_with_the_reason() {
    let o = &python_otps(AES_HEX, UID_HEX, PUBLIC_ID, 9, 0, 1)[0];
    let rec = record(None);
    assert_eq!(
        otp::verify_otp(&o[..43], &rec).unwrap_err().to_string(),
        "wrong length (got 43, want 44)"
    );
    assert_eq!(
        otp::verify_otp(&format!("{o}c"), &rec)
            .unwrap_err()
            .to_string(),
        "wrong length (got 45, want 44)"
    );
    assert_eq!(
        otp::verify_otp("", &rec).unwrap_err(),
        MfaError::WrongLength { got: 0, want: 44 }
    );
    let mut bad = o.clone();
    bad.replace_range(30..31, "a"); // 'a' is hex but not modhex
    assert_eq!(
        otp::verify_otp(&bad, &rec).unwrap_err(),
        MfaError::NotModhex
    );
    assert_eq!(
        otp::verify_otp("0123456789abcdef0123456789abcdef0123456789ab", &rec)
            .unwrap_err()
            .to_string(),
        "not modhex: a YubiKey OTP only contains the letters cbdefghijklnrtuv"
    );
    // Non-ASCII input is measured in characters, not bytes.
    let e = otp::verify_otp(&"é".repeat(44), &rec).unwrap_err();
    assert_eq!(e, MfaError::NotModhex);
}

#[test]
fn our_generated_otps_decode_in_python_yubiotp() {
    let token = OtpToken {
        private_id: PrivateId::from_hex(UID_HEX).unwrap(),
        usage_counter: 300,
        timestamp: 0x00ab_cdef,
        session_use: 7,
        random: 0x4242,
    };
    let o = otp::generate_otp(PUBLIC_ID, &AesKey::from_hex(AES_HEX).unwrap(), &token).unwrap();
    let (pid, uid, session, counter) = python_decode(&o, AES_HEX);
    assert_eq!(
        (pid.as_str(), uid.as_str(), session, counter),
        (PUBLIC_ID, UID_HEX, 300, 7)
    );
}

// ------------------------------------------------------- validation server

const CLIENT_ID: &str = "4711";
const API_KEY_B64: &str = "mG5be6ZJU1qBGz24yPh/ESM3UdU=";

async fn val_server() -> ValServer {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD
        .decode(API_KEY_B64)
        .unwrap();
    ValServer::start(CLIENT_ID, key, record(None)).await
}

#[tokio::test]
async fn validation_server_accepts_then_reports_replay() {
    let server = val_server().await;
    let client = ValidationClient::new(&server.url, CLIENT_ID, API_KEY_B64)
        .unwrap()
        .with_timeout(Duration::from_secs(5));
    let otps = python_otps(AES_HEX, UID_HEX, PUBLIC_ID, 3, 0, 2);

    let ok = client.verify(&otps[0], PUBLIC_ID).await.unwrap();
    assert_eq!(ok.public_id, PUBLIC_ID);
    assert_eq!(ok.counter, Some((3, 0)));
    assert_eq!(ok.proof().factor(), FactorKind::YubicoOtp);

    let e = client.verify(&otps[0], PUBLIC_ID).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "validation server refused the OTP: REPLAYED_OTP (this OTP was already used)"
    );
    assert!(client.verify(&otps[1], PUBLIC_ID).await.is_ok());

    let reqs = server.requests.lock().unwrap().clone();
    assert!(
        reqs[0].starts_with("GET /wsapi/2.0/verify?id=4711&nonce="),
        "{}",
        reqs[0]
    );
    assert!(reqs[0].contains(&format!("&otp={}&timestamp=1&h=", otps[0])));
}

#[tokio::test]
async fn validation_server_answers_are_checked() {
    let server = val_server().await;
    let client = ValidationClient::new(&server.url, CLIENT_ID, API_KEY_B64).unwrap();
    let otps = python_otps(AES_HEX, UID_HEX, PUBLIC_ID, 3, 0, 6);

    // Wrong public id: refused before asking the server.
    let before = server.requests.lock().unwrap().len();
    assert_eq!(
        client.verify(&otps[0], "vvcccccccccc").await.unwrap_err(),
        MfaError::UnknownPublicId(PUBLIC_ID.into())
    );
    assert_eq!(server.requests.lock().unwrap().len(), before);

    server.mode.lock().unwrap().bad_response_signature = true;
    assert_eq!(
        client.verify(&otps[1], PUBLIC_ID).await.unwrap_err(),
        MfaError::ServerSignatureInvalid {
            status: "OK".into()
        }
    );
    *server.mode.lock().unwrap() = Default::default();
    server.mode.lock().unwrap().wrong_nonce = true;
    assert_eq!(
        client.verify(&otps[2], PUBLIC_ID).await.unwrap_err(),
        MfaError::ServerEchoMismatch("nonce")
    );
    *server.mode.lock().unwrap() = Default::default();
    server.mode.lock().unwrap().wrong_otp = true;
    assert_eq!(
        client.verify(&otps[3], PUBLIC_ID).await.unwrap_err(),
        MfaError::ServerEchoMismatch("OTP")
    );
    *server.mode.lock().unwrap() = Default::default();
    server.mode.lock().unwrap().http_error = true;
    assert_eq!(
        client.verify(&otps[4], PUBLIC_ID).await.unwrap_err(),
        MfaError::ServerProtocol("HTTP status 500".into())
    );
    *server.mode.lock().unwrap() = Default::default();

    // A client with the wrong API key: the server says BAD_SIGNATURE, signed
    // with the real key, so we cannot trust the answer either way.
    let wrong =
        ValidationClient::new(&server.url, CLIENT_ID, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
    assert_eq!(
        wrong.verify(&otps[5], PUBLIC_ID).await.unwrap_err(),
        MfaError::ServerSignatureInvalid {
            status: "BAD_SIGNATURE".into()
        }
    );
}

#[tokio::test]
async fn validation_server_unreachable_or_silent() {
    // A port nobody listens on.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let c = ValidationClient::new(&format!("http://127.0.0.1:{port}/verify"), "1", API_KEY_B64)
        .unwrap();
    let o = &python_otps(AES_HEX, UID_HEX, PUBLIC_ID, 3, 0, 1)[0];
    let e = c.verify(o, PUBLIC_ID).await.unwrap_err();
    assert!(matches!(e, MfaError::ServerUnreachable(_)), "{e}");

    // A server that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/verify", silent.local_addr().unwrap());
    let _keep = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            conns.push(s);
        }
    });
    let c = ValidationClient::new(&url, "1", API_KEY_B64)
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    assert_eq!(
        c.verify(o, PUBLIC_ID).await.unwrap_err(),
        MfaError::ServerTimeout(1)
    );
}

// ------------------------------------------------------------ sk via agent

fn enrolled(k: &TestKey, last: Option<u32>) -> SkKeyRecord {
    SkKeyRecord::from_openssh(&k.openssh_line(), last).unwrap()
}

#[tokio::test]
async fn sk_keys_sign_through_the_agent_and_counters_rise() {
    for key in [TestKey::sk_ecdsa(), TestKey::sk_ed25519()] {
        let agent = TestAgent::start(vec![TestKey::plain_ed25519(), key.clone()]).await;
        let mut client = SkAgent::connect(&agent.path).await.unwrap();
        let ids = client.list_identities().await.unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[1].comment, key.comment);

        let mut rec = enrolled(&key, None);
        let ch = Challenge::new("step-up", b"erasure plan 1f2e").unwrap();
        let ok = sk::verify_with_agent(&mut client, &[rec.clone()], &ch, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", key.algorithm()));
        assert_eq!(ok.counter, 101);
        assert_eq!(ok.flags & sk::FLAG_USER_PRESENT, 1);
        assert_eq!(ok.fingerprint, rec.fingerprint());
        let proof = ok.proof();
        assert_eq!(proof.factor(), FactorKind::Sk);
        assert_eq!(proof.key_id(), rec.fingerprint());
        assert!(proof.authorises(b"erasure plan 1f2e"));
        assert_eq!(proof.signature(), Some(&ok.signature[..]));
        // The kept signature can be re-checked later from the audit entry.
        assert!(sk::verify_sk_signature(&rec, ch.as_bytes(), &ok.signature).is_ok());

        rec.last_counter = Some(ok.counter);
        let ch2 = Challenge::new("login", b"").unwrap();
        let ok2 = sk::verify_with_agent(&mut client, &[rec.clone()], &ch2, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(ok2.counter, 102);

        // User-verified (PIN) in addition to presence is fine.
        agent.set(Behaviour {
            extra_flags: sk::FLAG_USER_VERIFIED,
            ..Default::default()
        });
        rec.last_counter = Some(ok2.counter);
        let ok3 = sk::verify_with_agent(&mut client, &[rec], &ch2, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!((ok3.counter, ok3.flags), (103, 0x05));
    }
}

#[tokio::test]
async fn sk_rejections() {
    let key = TestKey::sk_ecdsa();
    let agent = TestAgent::start(vec![key.clone()]).await;
    let mut client = SkAgent::connect(&agent.path).await.unwrap();
    let t = Duration::from_secs(5);
    let ch = Challenge::new("login", b"").unwrap();

    agent.set(Behaviour {
        omit_presence: true,
        ..Default::default()
    });
    let e = sk::verify_with_agent(&mut client, &[enrolled(&key, None)], &ch, t)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "no user-presence flag (the key was not touched)"
    );

    // Counter 101 was used by the signature above; the key repeats it.
    agent.set(Behaviour {
        repeat_counter: true,
        ..Default::default()
    });
    let e = sk::verify_with_agent(&mut client, &[enrolled(&key, Some(101))], &ch, t)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        MfaError::CounterNotRising {
            got: 101,
            last: 101
        }
    );
    assert_eq!(
        e.to_string(),
        "signature counter did not rise (got 101, last accepted 101)"
    );
    // A counter below the last accepted one (cloned key) too.
    agent.set(Behaviour::default());
    let e = sk::verify_with_agent(&mut client, &[enrolled(&key, Some(500))], &ch, t)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        MfaError::CounterNotRising {
            got: 102,
            last: 500
        }
    );

    agent.set(Behaviour {
        sign_with_other_key: true,
        ..Default::default()
    });
    let e = sk::verify_with_agent(&mut client, &[enrolled(&key, None)], &ch, t)
        .await
        .unwrap_err();
    assert_eq!(e, MfaError::BadSignature);

    agent.set(Behaviour {
        refuse: true,
        ..Default::default()
    });
    let e = sk::verify_with_agent(&mut client, &[enrolled(&key, None)], &ch, t)
        .await
        .unwrap_err();
    assert_eq!(e, MfaError::AgentRefused);

    // The agent holds no enrolled key.
    let other = TestKey::sk_ed25519();
    agent.set(Behaviour::default());
    let e = sk::verify_with_agent(&mut client, &[enrolled(&other, None)], &ch, t)
        .await
        .unwrap_err();
    assert_eq!(e, MfaError::NoEnrolledKeyInAgent { offered: 1 });
    assert_eq!(
        e.to_string(),
        "none of the ssh-agent's 1 keys is an enrolled security key"
    );

    // A key with a different application string (same private key) is a different key.
    let mut other_app = key.clone();
    other_app.application = "ssh:other".into();
    let e = sk::verify_with_agent(&mut client, &[enrolled(&other_app, None)], &ch, t)
        .await
        .unwrap_err();
    assert_eq!(e, MfaError::NoEnrolledKeyInAgent { offered: 1 });

    // Signature over another challenge.
    let sig = key.sign(b"some other challenge", 1, 900);
    assert_eq!(
        sk::verify_sk_signature(&enrolled(&key, None), ch.as_bytes(), &sig).unwrap_err(),
        MfaError::BadSignature
    );
}

#[tokio::test]
async fn sk_touch_timeout_and_missing_agent() {
    let key = TestKey::sk_ed25519();
    let agent = TestAgent::start(vec![key.clone()]).await;
    agent.set(Behaviour {
        hang: true,
        ..Default::default()
    });
    let mut client = SkAgent::connect(&agent.path).await.unwrap();
    let ch = Challenge::new("login", b"").unwrap();
    let e = sk::verify_with_agent(
        &mut client,
        &[enrolled(&key, None)],
        &ch,
        Duration::from_millis(200),
    )
    .await
    .unwrap_err();
    assert_eq!(e, MfaError::TouchTimeout(1));
    assert_eq!(e.to_string(), "no touch within 1 s");
    assert_eq!(agent.sign_requests(), 1);
    // The abandoned connection refuses further use instead of mixing up answers.
    assert!(matches!(
        client.list_identities().await,
        Err(MfaError::AgentProtocol(_))
    ));

    let e = SkAgent::connect(std::path::Path::new("/nonexistent/agent.sock"))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("ssh-agent at /nonexistent/agent.sock unreachable:"),
        "{e}"
    );
}

/// The test agent's sk signatures, wrapped in an SSHSIG, are accepted by
/// OpenSSH's own `ssh-keygen -Y verify`, which reports the same flags and
/// counter as charon's parser: so the wire format charon parses (and the
/// flags/counter position it reads) is OpenSSH's.
#[tokio::test]
async fn sk_signature_format_matches_openssh() {
    use sha2::{Digest, Sha512};
    let dir = tempfile::tempdir().unwrap();
    for key in [TestKey::sk_ecdsa(), TestKey::sk_ed25519()] {
        let agent = TestAgent::start(vec![key.clone()]).await;
        let mut client = SkAgent::connect(&agent.path).await.unwrap();
        let message = b"charon sk format check";
        let ns = "charon-test";
        let mut signed = b"SSHSIG".to_vec();
        put_string(&mut signed, ns.as_bytes());
        put_string(&mut signed, b"");
        put_string(&mut signed, b"sha512");
        put_string(&mut signed, &Sha512::digest(message));

        for presence in [true, false] {
            agent.set(Behaviour {
                omit_presence: !presence,
                ..Default::default()
            });
            let blob = client.sign(&key.public_blob(), &signed).await.unwrap();
            // charon's own check agrees on signature validity.
            let mine = sk::verify_sk_signature(&enrolled(&key, None), &signed, &blob);
            if presence {
                assert!(mine.is_ok(), "{mine:?}");
            } else {
                assert_eq!(mine.unwrap_err(), MfaError::NoUserPresence);
            }

            let mut sshsig = b"SSHSIG".to_vec();
            sshsig.extend_from_slice(&1u32.to_be_bytes());
            put_string(&mut sshsig, &key.public_blob());
            put_string(&mut sshsig, ns.as_bytes());
            put_string(&mut sshsig, b"");
            put_string(&mut sshsig, b"sha512");
            put_string(&mut sshsig, &blob);
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(&sshsig);
            let mut armored = String::from("-----BEGIN SSH SIGNATURE-----\n");
            for chunk in b64.as_bytes().chunks(70) {
                armored.push_str(std::str::from_utf8(chunk).unwrap());
                armored.push('\n');
            }
            armored.push_str("-----END SSH SIGNATURE-----\n");
            let sig_path = dir.path().join("msg.sig");
            let allowed = dir.path().join("allowed_signers");
            let msg_path = dir.path().join("msg");
            std::fs::write(&sig_path, armored).unwrap();
            std::fs::write(&allowed, format!("op@charon {}\n", key.openssh_line())).unwrap();
            std::fs::write(&msg_path, message).unwrap();
            let out = Command::new("ssh-keygen")
                .args(["-Y", "verify", "-f"])
                .arg(&allowed)
                .args(["-vv", "-I", "op@charon", "-n", ns, "-s"])
                .arg(&sig_path)
                .stdin(std::fs::File::open(&msg_path).unwrap())
                .output()
                .expect("ssh-keygen (Debian openssh-client) must be installed");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            // ssh-keygen -Y verify checks the signature (which covers flags and
            // counter, read from where charon reads them) but, in OpenSSH 9.2,
            // not the presence flag; it reports both at -vv.
            assert!(out.status.success(), "{}: {text}", key.algorithm());
            assert!(text.contains("Good \"charon-test\" signature"), "{text}");
            let (_, info) = sk::parse_sk_signature(&blob).unwrap();
            let details = format!(
                "signature details: counter = {}, flags = 0x{:02x}",
                info.counter, info.flags
            );
            assert!(text.contains(&details), "want {details:?} in {text}");
            assert_eq!(info.flags & sk::FLAG_USER_PRESENT != 0, presence);
        }
    }
}

// ------------------------------------------------------------------- PIV

/// A certificate and signature made by OpenSSL (as a PIV card's enrolment
/// and signing would produce them) verify; another key's do not.
#[test]
fn piv_verifies_openssl_made_certificate_and_signature() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("openssl (Debian openssl) must be installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for name in ["a", "b"] {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-subj",
            "/CN=charon piv test",
            "-days",
            "1",
        ]);
    }
    openssl(&["x509", "-in", "a.pem", "-outform", "DER", "-out", "a.der"]);

    let ch = Challenge::new("step-up", b"reveal").unwrap();
    std::fs::write(p("challenge"), ch.as_bytes()).unwrap();
    openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        "a.key",
        "-out",
        "a.sig",
        "challenge",
    ]);
    openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        "b.key",
        "-out",
        "b.sig",
        "challenge",
    ]);
    let sig_a = std::fs::read(p("a.sig")).unwrap();
    let sig_b = std::fs::read(p("b.sig")).unwrap();

    let from_pem =
        PivKeyRecord::from_certificate_pem(&std::fs::read_to_string(p("a.pem")).unwrap()).unwrap();
    let from_der = PivKeyRecord::from_certificate_der(&std::fs::read(p("a.der")).unwrap()).unwrap();
    assert_eq!(from_pem.key_id(), from_der.key_id());

    let ok = piv::verify_piv_signature(&from_pem, &ch, &sig_a).unwrap();
    assert_eq!(ok.proof().factor(), FactorKind::Piv);
    assert!(ok.proof().authorises(b"reveal"));
    assert_eq!(
        piv::verify_piv_signature(&from_pem, &ch, &sig_b).unwrap_err(),
        MfaError::BadSignature
    );
    assert!(matches!(
        PivKeyRecord::from_certificate_der(b"not a cert"),
        Err(MfaError::BadEnrolledKey(_))
    ));
}

/// On this machine there is no pcscd: the hardware path must say so in
/// plain words (or that no card is present, if a daemon does run).
#[test]
fn piv_without_hardware_says_why() {
    // Only opens the card: never spends a PIN try on a real key.
    match piv::open_card() {
        Ok(_) => eprintln!("a YubiKey is plugged in; nothing to check here"),
        Err(e) => assert!(
            matches!(e, MfaError::NoPcscDaemon | MfaError::NoCard),
            "unexpected: {e}"
        ),
    }
}
