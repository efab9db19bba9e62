//! Yubico OTP test helpers: OTPs from an independent implementation
//! (Debian `python3-yubiotp`), and a tiny validation server (protocol 2.0)
//! on a local TCP port.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use charon::core::mfa::otp::{self, OtpKeyRecord, validation};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The interpreter that has Debian's python3-yubiotp (not a pyenv shim).
const PYTHON: &str = "/usr/bin/python3";

fn python(script: &str) -> String {
    let out = Command::new(PYTHON)
        .args(["-c", script])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {PYTHON}: {e}; install python3 and python3-yubiotp")
        });
    assert!(
        out.status.success(),
        "{PYTHON} failed (is the Debian package python3-yubiotp installed? `apt-get install -y python3-yubiotp`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `n` OTPs, as a YubiKey with this key, private id and counters would type
/// them one after another, made by yubiotp.otp.YubiKey + encode_otp.
pub fn python_otps(
    aes_key_hex: &str,
    private_id_hex: &str,
    public_id: &str,
    usage_counter: u16,
    session_use: u8,
    n: usize,
) -> Vec<String> {
    let script = format!(
        r#"
from binascii import unhexlify
from yubiotp.otp import YubiKey, encode_otp
key = unhexlify(b"{aes_key_hex}")
yk = YubiKey(unhexlify(b"{private_id_hex}"), {usage_counter}, {session_use})
for _ in range({n}):
    print(encode_otp(yk.generate(), key, b"{public_id}").decode())
"#
    );
    python(&script).lines().map(str::to_string).collect()
}

/// Decode an OTP with yubiotp.otp.decode_otp: (public id, uid hex, session, counter).
pub fn python_decode(otp: &str, aes_key_hex: &str) -> (String, String, u16, u8) {
    let script = format!(
        r#"
from binascii import unhexlify, hexlify
from yubiotp.otp import decode_otp
pid, o = decode_otp(b"{otp}", unhexlify(b"{aes_key_hex}"))
print(pid.decode(), hexlify(o.uid).decode(), o.session, o.counter)
"#
    );
    let out = python(&script);
    let f: Vec<&str> = out.split_whitespace().collect();
    (
        f[0].to_string(),
        f[1].to_string(),
        f[2].parse().unwrap(),
        f[3].parse().unwrap(),
    )
}

/// What the fake validation server does with the next requests.
#[derive(Clone, Debug, Default)]
pub struct ServerMode {
    /// Corrupt the response signature.
    pub bad_response_signature: bool,
    /// Echo a different nonce.
    pub wrong_nonce: bool,
    /// Echo a different OTP.
    pub wrong_otp: bool,
    /// Answer HTTP 500.
    pub http_error: bool,
}

pub struct ValServer {
    pub url: String,
    pub mode: Arc<Mutex<ServerMode>>,
    pub requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ValServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ValServer {
    /// A validation server that knows one client (`client_id`, `api_key`)
    /// and one YubiKey (`key`), checks the request signature, decrypts the
    /// OTP and keeps the last counter (so it answers REPLAYED_OTP).
    pub async fn start(client_id: &str, api_key: Vec<u8>, key: OtpKeyRecord) -> ValServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(ServerMode::default()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let key = Arc::new(Mutex::new(key));
        let (m, reqs, client_id) = (mode.clone(), requests.clone(), client_id.to_string());
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = conn.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let req = String::from_utf8(buf).unwrap();
                reqs.lock().unwrap().push(req.clone());
                let mode = m.lock().unwrap().clone();
                let response = if mode.http_error {
                    "HTTP/1.0 500 Internal Server Error\r\n\r\noops".to_string()
                } else {
                    let body = answer(&req, &client_id, &api_key, &key, &mode);
                    format!(
                        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                };
                conn.write_all(response.as_bytes()).await.unwrap();
                conn.shutdown().await.ok();
            }
        });
        ValServer {
            url: format!("http://127.0.0.1:{port}/wsapi/2.0/verify"),
            mode,
            requests,
            task,
        }
    }
}

fn unescape(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn answer(
    req: &str,
    client_id: &str,
    api_key: &[u8],
    key: &Mutex<OtpKeyRecord>,
    mode: &ServerMode,
) -> String {
    let target = req.split_whitespace().nth(1).unwrap();
    let query = target.split_once('?').unwrap().1;
    let params: Vec<(String, String)> = query
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), unescape(v))
        })
        .collect();
    let map: HashMap<_, _> = params.iter().cloned().collect();
    let signed: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, _)| k != "h")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let otp_in = map.get("otp").cloned().unwrap_or_default();
    let nonce_in = map.get("nonce").cloned().unwrap_or_default();
    let mut extra = Vec::new();
    let status = if map.get("id").map(String::as_str) != Some(client_id) {
        "NO_SUCH_CLIENT"
    } else if map.get("h").map(String::as_str) != Some(&validation::sign_params(&signed, api_key)) {
        "BAD_SIGNATURE"
    } else {
        let mut k = key.lock().unwrap();
        match otp::verify_otp(&otp_in, &k) {
            Ok(ok) => {
                k.last_counter = Some(ok.counter);
                extra.push(("sessioncounter".to_string(), ok.counter.0.to_string()));
                extra.push(("sessionuse".to_string(), ok.counter.1.to_string()));
                "OK"
            }
            Err(charon::core::mfa::MfaError::Replayed { .. }) => "REPLAYED_OTP",
            Err(_) => "BAD_OTP",
        }
    };
    let otp_out = if mode.wrong_otp {
        "cccccccccccccccccccccccccccccccccccccccccccc".to_string()
    } else {
        otp_in
    };
    let nonce_out = if mode.wrong_nonce {
        "zzzzzzzzzzzzzzzzzzzzzzzz".to_string()
    } else {
        nonce_in
    };
    let mut fields = vec![
        ("t".to_string(), "2026-11-23T10:00:00Z0042".to_string()),
        ("otp".to_string(), otp_out),
        ("nonce".to_string(), nonce_out),
        ("sl".to_string(), "100".to_string()),
    ];
    fields.extend(extra);
    fields.push(("status".to_string(), status.to_string()));
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut h = validation::sign_params(&refs, api_key);
    if mode.bad_response_signature {
        let first = if h.starts_with('A') { 'B' } else { 'A' };
        h = format!("{first}{}", &h[1..]);
    }
    let mut body = format!("h={h}\r\n");
    for (k, v) in &fields {
        body.push_str(&format!("{k}={v}\r\n"));
    }
    body.push_str("\r\n");
    body
}
