//! FIDO security-key SSH keys (`sk-ecdsa-sha2-nistp256@openssh.com`,
//! `sk-ssh-ed25519@openssh.com`) reached through the ssh-agent, usually the
//! operator's laptop agent forwarded with `ssh -A`.
//!
//! The agent signs a fresh [`Challenge`]; the security key actually signs
//! (OpenSSH PROTOCOL.u2f)
//!
//! ```text
//! SHA256(application) || flags (u8) || counter (u32 BE) || SHA256(challenge)
//! ```
//!
//! and the agent answers with the blob
//!
//! ```text
//! string  "sk-ecdsa-sha2-nistp256@openssh.com" | "sk-ssh-ed25519@openssh.com"
//! string  signature (ECDSA: mpint r || mpint s; Ed25519: 64 bytes)
//! byte    flags
//! uint32  counter
//! ```
//!
//! `ssh-key` verifies the signature but not the flags or the counter, so
//! [`parse_sk_signature`] reads them and [`verify_sk_signature`] demands the
//! user-presence flag and a counter above the last accepted one.
//!
//! Note: `ssh-key` 0.6.7 *decodes* sk-ecdsa signatures correctly but its
//! `Encode` puts flags and counter inside the signature string, which is not
//! OpenSSH's format; we never re-encode a signature, we keep the agent's bytes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use signature::Verifier;
use ssh_key::{Algorithm, HashAlg, PublicKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::{Challenge, FactorKind, MfaError, StepUpProof};

pub const SK_ECDSA: &str = "sk-ecdsa-sha2-nistp256@openssh.com";
pub const SK_ED25519: &str = "sk-ssh-ed25519@openssh.com";
/// FIDO "user present" flag.
pub const FLAG_USER_PRESENT: u8 = 0x01;
/// FIDO "user verified" flag (PIN / biometrics).
pub const FLAG_USER_VERIFIED: u8 = 0x04;

const SSH_AGENT_FAILURE: u8 = 5;
const SSH_AGENTC_REQUEST_IDENTITIES: u8 = 11;
const SSH_AGENT_IDENTITIES_ANSWER: u8 = 12;
const SSH_AGENTC_SIGN_REQUEST: u8 = 13;
const SSH_AGENT_SIGN_RESPONSE: u8 = 14;
/// OpenSSH's own limit for one agent message.
const MAX_AGENT_MESSAGE: usize = 256 * 1024;

/// An enrolled security key.
#[derive(Debug, Clone)]
pub struct SkKeyRecord {
    public_key: PublicKey,
    /// Counter of the last accepted signature; `None` before the first use.
    pub last_counter: Option<u32>,
}

impl SkKeyRecord {
    pub fn new(public_key: PublicKey, last_counter: Option<u32>) -> Result<SkKeyRecord, MfaError> {
        match public_key.algorithm() {
            Algorithm::SkEcdsaSha2NistP256 | Algorithm::SkEd25519 => Ok(SkKeyRecord {
                public_key,
                last_counter,
            }),
            other => Err(MfaError::NotSecurityKey(other.to_string())),
        }
    }

    /// From an `authorized_keys`-style line (`sk-ssh-ed25519@openssh.com AAAA... comment`).
    pub fn from_openssh(line: &str, last_counter: Option<u32>) -> Result<SkKeyRecord, MfaError> {
        let key = PublicKey::from_openssh(line.trim())
            .map_err(|e| MfaError::BadEnrolledKey(format!("not an OpenSSH public key: {e}")))?;
        SkKeyRecord::new(key, last_counter)
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// `SHA256:...`, as `ssh-keygen -l` prints it; used as the key id.
    pub fn fingerprint(&self) -> String {
        self.public_key.fingerprint(HashAlg::Sha256).to_string()
    }
}

/// The parts of an sk signature blob that `ssh-key` does not check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkSignatureInfo {
    pub flags: u8,
    pub counter: u32,
}

/// A successful sk check. Store `counter` as the key's new `last_counter`;
/// `signature` (the agent's blob, OpenSSH format) goes into the audit entry.
#[derive(Debug, Clone)]
pub struct SkAccepted {
    pub fingerprint: String,
    pub counter: u32,
    pub flags: u8,
    pub signature: Vec<u8>,
    proof: StepUpProof,
}

impl SkAccepted {
    pub fn proof(&self) -> &StepUpProof {
        &self.proof
    }

    pub fn into_proof(self) -> StepUpProof {
        self.proof
    }
}

/// Read algorithm, flags and counter from an sk signature blob, checking
/// its framing (no trailing bytes).
pub fn parse_sk_signature(blob: &[u8]) -> Result<(String, SkSignatureInfo), MfaError> {
    let bad = |what: &str| MfaError::MalformedSignature(what.to_string());
    let mut r = Reader(blob);
    let alg = r.string().ok_or_else(|| bad("no algorithm name"))?;
    let alg = std::str::from_utf8(alg)
        .map_err(|_| bad("algorithm name is not UTF-8"))?
        .to_string();
    if alg != SK_ECDSA && alg != SK_ED25519 {
        return Err(MfaError::NotSecurityKey(alg));
    }
    r.string().ok_or_else(|| bad("no signature"))?;
    let flags = r.u8().ok_or_else(|| bad("no flags byte"))?;
    let counter = r.u32().ok_or_else(|| bad("no counter"))?;
    if !r.0.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok((alg, SkSignatureInfo { flags, counter }))
}

/// Verify an agent's signature blob over `message` against an enrolled key:
/// the signature, the user-presence flag and the rising counter. Pure.
pub fn verify_sk_signature(
    key: &SkKeyRecord,
    message: &[u8],
    blob: &[u8],
) -> Result<SkSignatureInfo, MfaError> {
    let (alg, info) = parse_sk_signature(blob)?;
    if alg != key.public_key.algorithm().as_str() {
        return Err(MfaError::BadSignature);
    }
    let sig = ssh_key::Signature::try_from(blob)
        .map_err(|e| MfaError::MalformedSignature(e.to_string()))?;
    key.public_key
        .key_data()
        .verify(message, &sig)
        .map_err(|_| MfaError::BadSignature)?;
    if info.flags & FLAG_USER_PRESENT == 0 {
        return Err(MfaError::NoUserPresence);
    }
    if let Some(last) = key.last_counter
        && info.counter <= last
    {
        return Err(MfaError::CounterNotRising {
            got: info.counter,
            last,
        });
    }
    Ok(info)
}

/// One key the agent offers.
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    /// The key blob as the agent sent it.
    pub blob: Vec<u8>,
    /// `None` when the blob is a key type ssh-key does not know.
    pub key: Option<PublicKey>,
    pub comment: String,
}

/// A connection to an ssh-agent (protocol: draft-miller-ssh-agent).
#[derive(Debug)]
pub struct SkAgent {
    path: PathBuf,
    stream: UnixStream,
    /// Set while a request is in flight; stays set if the request was
    /// abandoned (e.g. a touch timeout), because a late answer would then be
    /// read as the answer to the next request.
    in_flight: bool,
}

impl SkAgent {
    /// Connect to `$SSH_AUTH_SOCK`.
    pub async fn connect_env() -> Result<SkAgent, MfaError> {
        let path = std::env::var_os("SSH_AUTH_SOCK")
            .filter(|p| !p.is_empty())
            .ok_or(MfaError::NoAgent)?;
        SkAgent::connect(Path::new(&path)).await
    }

    pub async fn connect(path: &Path) -> Result<SkAgent, MfaError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| MfaError::AgentUnreachable {
                path: path.display().to_string(),
                detail: e.to_string(),
            })?;
        Ok(SkAgent {
            path: path.to_path_buf(),
            stream,
            in_flight: false,
        })
    }

    pub async fn list_identities(&mut self) -> Result<Vec<AgentIdentity>, MfaError> {
        let reply = self.request(&[SSH_AGENTC_REQUEST_IDENTITIES]).await?;
        let proto = |what: &str| MfaError::AgentProtocol(format!("identities answer: {what}"));
        let mut r = Reader(&reply);
        match r.u8() {
            Some(SSH_AGENT_IDENTITIES_ANSWER) => {}
            Some(SSH_AGENT_FAILURE) => return Err(proto("agent failure")),
            Some(t) => return Err(proto(&format!("unexpected message type {t}"))),
            None => return Err(proto("empty")),
        }
        let n = r.u32().ok_or_else(|| proto("no key count"))?;
        let mut out = Vec::new();
        for _ in 0..n {
            let blob = r.string().ok_or_else(|| proto("truncated key"))?.to_vec();
            let comment = r.string().ok_or_else(|| proto("truncated comment"))?;
            out.push(AgentIdentity {
                key: PublicKey::from_bytes(&blob).ok(),
                blob,
                comment: String::from_utf8_lossy(comment).into_owned(),
            });
        }
        if !r.0.is_empty() {
            return Err(proto("trailing bytes"));
        }
        Ok(out)
    }

    /// Ask the agent to sign `data` with the key `key_blob`; returns the
    /// signature blob. For a security key this waits for the touch.
    pub async fn sign(&mut self, key_blob: &[u8], data: &[u8]) -> Result<Vec<u8>, MfaError> {
        let mut msg = vec![SSH_AGENTC_SIGN_REQUEST];
        put_string(&mut msg, key_blob);
        put_string(&mut msg, data);
        msg.extend_from_slice(&0u32.to_be_bytes());
        let reply = self.request(&msg).await?;
        let mut r = Reader(&reply);
        match r.u8() {
            Some(SSH_AGENT_SIGN_RESPONSE) => {}
            Some(SSH_AGENT_FAILURE) => return Err(MfaError::AgentRefused),
            Some(t) => {
                return Err(MfaError::AgentProtocol(format!(
                    "sign answer: unexpected message type {t}"
                )));
            }
            None => return Err(MfaError::AgentProtocol("sign answer: empty".into())),
        }
        let sig = r
            .string()
            .ok_or_else(|| MfaError::AgentProtocol("sign answer: truncated".into()))?;
        Ok(sig.to_vec())
    }

    async fn request(&mut self, body: &[u8]) -> Result<Vec<u8>, MfaError> {
        if self.in_flight {
            return Err(MfaError::AgentProtocol(
                "an earlier request was abandoned; connect to the agent again".into(),
            ));
        }
        self.in_flight = true;
        let io = |e: std::io::Error| MfaError::AgentUnreachable {
            path: self.path.display().to_string(),
            detail: e.to_string(),
        };
        let len = u32::try_from(body.len())
            .map_err(|_| MfaError::AgentProtocol("request too large".into()))?;
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(body);
        self.stream.write_all(&frame).await.map_err(io)?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await.map_err(io)?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > MAX_AGENT_MESSAGE {
            return Err(MfaError::AgentProtocol(format!("bad message length {len}")));
        }
        let mut reply = vec![0u8; len];
        self.stream.read_exact(&mut reply).await.map_err(io)?;
        self.in_flight = false;
        Ok(reply)
    }
}

/// The whole sk check: find an enrolled key among the agent's keys, have it
/// sign `challenge` (waiting at most `touch_timeout` for the touch), verify.
/// After a [`MfaError::TouchTimeout`] the connection is unusable: connect again.
pub async fn verify_with_agent(
    agent: &mut SkAgent,
    enrolled: &[SkKeyRecord],
    challenge: &Challenge,
    touch_timeout: Duration,
) -> Result<SkAccepted, MfaError> {
    let identities = agent.list_identities().await?;
    let offered = identities.len();
    let (identity, record) = identities
        .iter()
        .find_map(|id| {
            let key = id.key.as_ref()?;
            enrolled
                .iter()
                .find(|r| r.public_key.key_data() == key.key_data())
                .map(|r| (id, r))
        })
        .ok_or(MfaError::NoEnrolledKeyInAgent { offered })?;
    let signature = tokio::time::timeout(
        touch_timeout,
        agent.sign(&identity.blob, challenge.as_bytes()),
    )
    .await
    .map_err(|_| MfaError::TouchTimeout(super::whole_seconds(touch_timeout)))??;
    let info = verify_sk_signature(record, challenge.as_bytes(), &signature)?;
    let fingerprint = record.fingerprint();
    Ok(SkAccepted {
        proof: StepUpProof::new(
            fingerprint.clone(),
            FactorKind::Sk,
            Some(challenge.action_hash()),
            Some(signature.clone()),
        ),
        fingerprint,
        counter: info.counter,
        flags: info.flags,
        signature,
    })
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    // Agent messages are far below 4 GiB; the length was checked by the caller's frame.
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// A cursor over SSH wire data.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(alg: &str, sig: &[u8], flags: u8, counter: u32) -> Vec<u8> {
        let mut b = Vec::new();
        put_string(&mut b, alg.as_bytes());
        put_string(&mut b, sig);
        b.push(flags);
        b.extend_from_slice(&counter.to_be_bytes());
        b
    }

    #[test]
    fn parses_flags_and_counter() {
        let b = blob(SK_ED25519, &[0u8; 64], 0x05, 0x0102_0304);
        let (alg, info) = parse_sk_signature(&b).unwrap();
        assert_eq!(alg, SK_ED25519);
        assert_eq!(
            info,
            SkSignatureInfo {
                flags: 0x05,
                counter: 0x0102_0304
            }
        );
    }

    #[test]
    fn rejects_bad_framing() {
        let mut b = blob(SK_ECDSA, &[1, 2, 3], 1, 1);
        b.push(0);
        assert!(matches!(
            parse_sk_signature(&b),
            Err(MfaError::MalformedSignature(_))
        ));
        let b = blob(SK_ECDSA, &[1, 2, 3], 1, 1);
        assert!(matches!(
            parse_sk_signature(&b[..b.len() - 1]),
            Err(MfaError::MalformedSignature(_))
        ));
        assert_eq!(
            parse_sk_signature(&blob("ssh-ed25519", &[0; 64], 1, 1)),
            Err(MfaError::NotSecurityKey("ssh-ed25519".into()))
        );
    }

    #[test]
    fn plain_keys_cannot_be_enrolled() {
        let line =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBQV3mJCPZnl7d3ZQ0C3VjC3kVtbNyqN+DXTQ1OhP6Ot x";
        assert_eq!(
            SkKeyRecord::from_openssh(line, None).unwrap_err(),
            MfaError::NotSecurityKey("ssh-ed25519".into())
        );
    }
}
