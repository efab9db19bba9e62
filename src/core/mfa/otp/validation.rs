//! A YubiKey validation-server client, protocol 2.0.
//!
//! Request: `GET <url>?id=..&nonce=..&otp=..&timestamp=1&h=..` where `h` is
//! base64(HMAC-SHA1(api key, the other parameters sorted by name and joined
//! as `k=v&k=v`, unescaped)). The answer is `key=value` lines, signed the
//! same way in its `h` line. We check the signature, that our OTP and nonce
//! are echoed, and `status=OK`.
//!
//! The transport is a minimal HTTP/1.0 GET over a tokio `TcpStream` (no
//! HTTP client crate): only `http://` URLs are supported for now, which is
//! right for a validation server on localhost or a private network. HTTPS
//! (YubiCloud) is a follow-up.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha1::Sha1;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{PUBLIC_ID_LEN, normalise};
use crate::core::mfa::{FactorKind, MfaError, Secret, StepUpProof};

const MAX_RESPONSE: usize = 64 * 1024;
const NONCE_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// A configured validation server.
#[derive(Debug, Clone)]
pub struct ValidationClient {
    url: String,
    host: String,
    port: u16,
    path: String,
    client_id: String,
    api_key: Secret<Vec<u8>>,
    timeout: Duration,
}

/// The server accepted the OTP.
#[derive(Debug, Clone)]
pub struct ServerAccepted {
    pub public_id: String,
    /// (sessioncounter, sessionuse) when the server reported them.
    pub counter: Option<(u16, u8)>,
    proof: StepUpProof,
}

impl ServerAccepted {
    pub fn proof(&self) -> &StepUpProof {
        &self.proof
    }

    pub fn into_proof(self) -> StepUpProof {
        self.proof
    }
}

impl ValidationClient {
    /// `url` like `http://127.0.0.1:8080/wsapi/2.0/verify`; `api_key_base64`
    /// as the server issued it.
    pub fn new(
        url: &str,
        client_id: &str,
        api_key_base64: &str,
    ) -> Result<ValidationClient, MfaError> {
        let bad = |reason: &str| MfaError::BadServerUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = if let Some(rest) = url.strip_prefix("http://") {
            rest
        } else if url.starts_with("https://") {
            return Err(bad(
                "https is not supported yet; use an http:// server on a trusted network",
            ));
        } else {
            return Err(bad("must start with http://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if path.contains('?') || path.contains('#') {
            return Err(bad("must not contain a query or fragment"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad("bad port"))?),
            None => (authority, 80),
        };
        if host.is_empty() || host.contains('@') {
            return Err(bad("bad host"));
        }
        if client_id.is_empty() || !client_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MfaError::BadEnrolledKey(
                "validation client id must be a number".into(),
            ));
        }
        let api_key = B64.decode(api_key_base64.trim()).map_err(|_| {
            MfaError::BadEnrolledKey("validation server API key is not base64".into())
        })?;
        Ok(ValidationClient {
            url: url.to_string(),
            host: host.to_string(),
            port,
            path: path.to_string(),
            client_id: client_id.to_string(),
            api_key: Secret::new(api_key),
            timeout: Duration::from_secs(10),
        })
    }

    pub fn with_timeout(mut self, timeout: Duration) -> ValidationClient {
        self.timeout = timeout;
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Ask the server about `otp`, which must belong to the enrolled key
    /// `expected_public_id` (the server accepts OTPs of any key it knows, so
    /// this binding is ours to check).
    pub async fn verify(
        &self,
        otp: &str,
        expected_public_id: &str,
    ) -> Result<ServerAccepted, MfaError> {
        let otp = normalise(otp)?;
        let public_id = &otp[..PUBLIC_ID_LEN];
        if public_id != expected_public_id.to_ascii_lowercase() {
            return Err(MfaError::UnknownPublicId(public_id.to_string()));
        }
        let nonce = random_nonce();
        let query = self.query(&otp, &nonce);
        let secs = crate::core::mfa::whole_seconds(self.timeout);
        let body = tokio::time::timeout(self.timeout, self.get(&query))
            .await
            .map_err(|_| MfaError::ServerTimeout(secs))??;
        let fields = parse_response(&body)?;
        check_response(&fields, self.api_key.expose(), &otp, &nonce)?;
        let counter = match (
            field(&fields, "sessioncounter"),
            field(&fields, "sessionuse"),
        ) {
            (Some(c), Some(u)) => c.parse::<u16>().ok().zip(u.parse::<u8>().ok()),
            _ => None,
        };
        Ok(ServerAccepted {
            public_id: public_id.to_string(),
            counter,
            proof: StepUpProof::new(public_id.to_string(), FactorKind::YubicoOtp, None, None),
        })
    }

    /// The query string (with `h`) for one request.
    fn query(&self, otp: &str, nonce: &str) -> String {
        let params = [
            ("id", self.client_id.as_str()),
            ("nonce", nonce),
            ("otp", otp),
            ("timestamp", "1"),
        ];
        let h = sign_params(&params, self.api_key.expose());
        let mut q: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        q.push(format!("h={}", percent_encode(&h)));
        q.join("&")
    }

    async fn get(&self, query: &str) -> Result<String, MfaError> {
        let unreachable = |e: std::io::Error| {
            MfaError::ServerUnreachable(format!("{}:{}: {e}", self.host, self.port))
        };
        let mut stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(unreachable)?;
        let request = format!(
            "GET {}?{query} HTTP/1.0\r\nHost: {}:{}\r\nUser-Agent: charon\r\nAccept: text/plain\r\nConnection: close\r\n\r\n",
            self.path, self.host, self.port
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(unreachable)?;
        let mut raw = Vec::new();
        (&mut stream)
            .take(MAX_RESPONSE as u64 + 1)
            .read_to_end(&mut raw)
            .await
            .map_err(unreachable)?;
        if raw.len() > MAX_RESPONSE {
            return Err(MfaError::ServerProtocol("response too large".into()));
        }
        let text = String::from_utf8(raw)
            .map_err(|_| MfaError::ServerProtocol("response is not UTF-8".into()))?;
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| MfaError::ServerProtocol("no HTTP header end".into()))?;
        let status_line = head.lines().next().unwrap_or_default();
        let code = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| {
                MfaError::ServerProtocol(format!(
                    "bad status line \"{}\"",
                    crate::core::sanitize::excerpt(status_line, 80)
                ))
            })?;
        if code != 200 {
            return Err(MfaError::ServerProtocol(format!("HTTP status {code}")));
        }
        Ok(body.to_string())
    }
}

/// base64(HMAC-SHA1(key, "k=v&k=v" sorted by key, unescaped)).
pub fn sign_params(params: &[(&str, &str)], key: &[u8]) -> String {
    let mut sorted: Vec<&(&str, &str)> = params.iter().collect();
    sorted.sort();
    let line = sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(line.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

/// The `key=value` lines of a response, in order.
pub fn parse_response(body: &str) -> Result<Vec<(String, String)>, MfaError> {
    let mut out = Vec::new();
    for line in body.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| {
            MfaError::ServerProtocol(format!(
                "line without '=': \"{}\"",
                crate::core::sanitize::excerpt(line, 80)
            ))
        })?;
        out.push((k.to_string(), v.to_string()));
    }
    if out.is_empty() {
        return Err(MfaError::ServerProtocol("empty response".into()));
    }
    Ok(out)
}

fn field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Signature, echo and status checks of a parsed response.
pub fn check_response(
    fields: &[(String, String)],
    api_key: &[u8],
    otp: &str,
    nonce: &str,
) -> Result<(), MfaError> {
    let status = field(fields, "status").unwrap_or("(none)").to_string();
    let given_h = field(fields, "h").unwrap_or_default();
    let signed: Vec<(&str, &str)> = fields
        .iter()
        .filter(|(k, _)| k != "h")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let want_h = sign_params(&signed, api_key);
    if given_h.is_empty() || !constant_time_eq(given_h.as_bytes(), want_h.as_bytes()) {
        return Err(MfaError::ServerSignatureInvalid { status });
    }
    if status != "OK" {
        return Err(MfaError::ServerRejected {
            meaning: status_meaning(&status),
            status,
        });
    }
    if field(fields, "otp") != Some(otp) {
        return Err(MfaError::ServerEchoMismatch("OTP"));
    }
    if field(fields, "nonce") != Some(nonce) {
        return Err(MfaError::ServerEchoMismatch("nonce"));
    }
    Ok(())
}

fn status_meaning(status: &str) -> &'static str {
    match status {
        "BAD_OTP" => "the OTP is invalid",
        "REPLAYED_OTP" => "this OTP was already used",
        "BAD_SIGNATURE" => "the server says our request signature is wrong; check the API key",
        "MISSING_PARAMETER" => "the request lacked a parameter",
        "NO_SUCH_CLIENT" => "the client id is unknown to the server",
        "OPERATION_NOT_ALLOWED" => "this client may not verify OTPs",
        "BACKEND_ERROR" => "the server had an internal error",
        "NOT_ENOUGH_ANSWERS" => "the server could not reach enough sync servers",
        "REPLAYED_REQUEST" => "the server saw this request before",
        _ => "unknown status",
    }
}

fn random_nonce() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..32)
        .map(|_| NONCE_CHARS[rng.gen_range(0..NONCE_CHARS.len())] as char)
        .collect()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_B64: &str = "mG5be6ZJU1qBGz24yPh/ESM3UdU=";
    const OTP: &str = "vvccccccbdefghijklnrtuvcbdefghijklnrtuvcbdef";
    const NONCE: &str = "abcdefghijklmnopqrstuvwxyz012345";

    #[test]
    fn a_hostile_response_line_is_quoted_escaped_and_cut() {
        let line = format!("\u{1b}]0;pwned\u{7}{}", "A".repeat(500));
        let Err(MfaError::ServerProtocol(m)) = parse_response(&line) else {
            panic!("a line without '=' is a protocol error");
        };
        assert!(!m.contains('\u{1b}') && !m.contains('\u{7}'), "{m:?}");
        assert!(m.contains("\\x1b]0;pwned\\x07"), "{m}");
        assert!(m.ends_with("…\""), "{m}");
        assert!(m.chars().count() < 120, "{} chars", m.chars().count());
    }

    fn key() -> Vec<u8> {
        B64.decode(KEY_B64).unwrap()
    }

    // Vectors computed with Debian python3-yubiotp's
    // yubiotp.client.param_signature (an independent implementation).
    #[test]
    fn request_signature_matches_python_yubiotp() {
        let params = [
            ("id", "1"),
            ("otp", OTP),
            ("nonce", NONCE),
            ("timestamp", "1"),
        ];
        assert_eq!(sign_params(&params, &key()), "0ZNYOlYSNCPzFBeyVuuIZnPCIfs=");
    }

    #[test]
    fn response_check() {
        let body = format!(
            "h=GzKQRB7SUqppfF2+TFH4BnEYLvs=\r\nt=2026-01-01T00:00:00Z0123\r\notp={OTP}\r\nnonce={NONCE}\r\nstatus=OK\r\n\r\n"
        );
        let fields = parse_response(&body).unwrap();
        check_response(&fields, &key(), OTP, NONCE).unwrap();
        assert_eq!(
            check_response(&fields, b"other key", OTP, NONCE),
            Err(MfaError::ServerSignatureInvalid {
                status: "OK".into()
            })
        );
        assert_eq!(
            check_response(&fields, &key(), OTP, "another nonce"),
            Err(MfaError::ServerEchoMismatch("nonce"))
        );
    }

    #[test]
    fn url_rules() {
        assert!(
            ValidationClient::new("http://127.0.0.1:8080/wsapi/2.0/verify", "1", KEY_B64).is_ok()
        );
        let e = ValidationClient::new("https://api.yubico.com/wsapi/2.0/verify", "1", KEY_B64)
            .unwrap_err();
        assert!(e.to_string().contains("https is not supported yet"), "{e}");
        assert!(ValidationClient::new("ftp://x/", "1", KEY_B64).is_err());
        assert!(ValidationClient::new("http://x:99999/", "1", KEY_B64).is_err());
        let c = ValidationClient::new("http://x/", "1", KEY_B64).unwrap();
        assert!(!format!("{c:?}").contains(KEY_B64));
    }

    #[test]
    fn query_escapes_the_signature() {
        let c = ValidationClient::new("http://x/verify", "1", KEY_B64).unwrap();
        let q = c.query(OTP, NONCE);
        assert_eq!(
            q,
            format!("id=1&nonce={NONCE}&otp={OTP}&timestamp=1&h=0ZNYOlYSNCPzFBeyVuuIZnPCIfs%3D")
        );
    }
}
