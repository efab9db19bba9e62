//! Hardware-key MFA: the four factors, as pure verification building blocks.
//!
//! Nothing here touches the database or the screen. The caller (the operator
//! and session code) looks up the enrolled key, calls one of the verify
//! functions, stores the new counter it returns, and keeps the
//! [`StepUpProof`] to hand to the dispatch point.
//!
//! | factor | module | what is checked |
//! | --- | --- | --- |
//! | Yubico OTP | [`otp`] | modhex, length, public id, AES-128 + CRC, private id, rising counter; or a validation server |
//! | FIDO sk key in the ssh-agent | [`sk`] | signature over a fresh challenge, user-presence flag, rising counter |
//! | PIV (PC/SC) | [`piv`] | P-256 signature over a fresh challenge against the enrolled certificate |
//! | software key | [`software`] | Ed25519 signature; refused unless the deployment allows it |
//!
//! Secrets (AES keys, private ids, API keys, private keys, PINs) live in
//! types whose `Debug` prints a mask, and no error message contains one.

pub mod challenge;
pub mod otp;
pub mod piv;
pub mod sk;
pub mod software;

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use challenge::Challenge;

/// The kinds of second factor charon knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactorKind {
    /// Yubico OTP, the 44 modhex characters a YubiKey types.
    YubicoOtp,
    /// A FIDO security-key SSH key reached through the (forwarded) ssh-agent.
    Sk,
    /// A PIV key on a YubiKey plugged into the machine running charon.
    Piv,
    /// An in-memory key, for the demo and tests only.
    Software,
}

impl FactorKind {
    pub const ALL: [FactorKind; 4] = [
        FactorKind::YubicoOtp,
        FactorKind::Sk,
        FactorKind::Piv,
        FactorKind::Software,
    ];

    /// The stable name used in config, the database and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            FactorKind::YubicoOtp => "yubico_otp",
            FactorKind::Sk => "sk",
            FactorKind::Piv => "piv",
            FactorKind::Software => "software",
        }
    }

    pub fn parse(s: &str) -> Option<FactorKind> {
        FactorKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the factor signs the challenge (and so can bind an action hash).
    pub fn signs(self) -> bool {
        !matches!(self, FactorKind::YubicoOtp)
    }
}

impl fmt::Display for FactorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An enrolled key of any factor, as the operator store hands it over.
#[derive(Debug, Clone)]
pub enum EnrolledKey {
    YubicoOtp(otp::OtpKeyRecord),
    Sk(sk::SkKeyRecord),
    Piv(piv::PivKeyRecord),
    Software(software::SoftwareKeyRecord),
}

impl EnrolledKey {
    pub fn kind(&self) -> FactorKind {
        match self {
            EnrolledKey::YubicoOtp(_) => FactorKind::YubicoOtp,
            EnrolledKey::Sk(_) => FactorKind::Sk,
            EnrolledKey::Piv(_) => FactorKind::Piv,
            EnrolledKey::Software(_) => FactorKind::Software,
        }
    }

    /// The id a [`StepUpProof`] made with this key carries.
    pub fn key_id(&self) -> String {
        match self {
            EnrolledKey::YubicoOtp(k) => k.public_id.to_ascii_lowercase(),
            EnrolledKey::Sk(k) => k.fingerprint(),
            EnrolledKey::Piv(k) => k.key_id().to_string(),
            EnrolledKey::Software(k) => k.key_id().to_string(),
        }
    }
}

/// Why a factor was not accepted. Every message is meant for the operator:
/// it says what was wrong in plain words and never contains a secret (the
/// OTP itself is not echoed either, only its public id).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MfaError {
    // --- Yubico OTP -------------------------------------------------------
    #[error("not modhex: a YubiKey OTP only contains the letters cbdefghijklnrtuv")]
    NotModhex,
    #[error("wrong length (got {got}, want {want})")]
    WrongLength { got: usize, want: usize },
    #[error("unknown public id {0}")]
    UnknownPublicId(String),
    #[error("CRC check failed (wrong key or tampered OTP)")]
    CrcMismatch,
    #[error("private id mismatch")]
    PrivateIdMismatch,
    #[error(
        "replayed OTP (counter {}/{} not above last accepted {}/{})",
        got.0, got.1, last.0, last.1
    )]
    Replayed { got: (u16, u8), last: (u16, u8) },

    // --- validation server ------------------------------------------------
    #[error("validation server URL {url:?} not usable: {reason}")]
    BadServerUrl { url: String, reason: String },
    #[error("validation server unreachable: {0}")]
    ServerUnreachable(String),
    #[error("validation server did not answer within {0} s")]
    ServerTimeout(u64),
    #[error("validation server answered something unexpected: {0}")]
    ServerProtocol(String),
    #[error(
        "validation server response is not correctly signed (status {status}); check the API key"
    )]
    ServerSignatureInvalid { status: String },
    #[error("validation server response does not echo our {0} (answer to another request?)")]
    ServerEchoMismatch(&'static str),
    #[error("validation server refused the OTP: {status} ({meaning})")]
    ServerRejected {
        status: String,
        meaning: &'static str,
    },

    // --- ssh-agent / sk ---------------------------------------------------
    #[error("no ssh-agent: SSH_AUTH_SOCK is not set (connect with `ssh -A` to forward your agent)")]
    NoAgent,
    #[error("ssh-agent at {path} unreachable: {detail}")]
    AgentUnreachable { path: String, detail: String },
    #[error("ssh-agent protocol error: {0}")]
    AgentProtocol(String),
    #[error("the ssh-agent refused to sign (touch not confirmed, or the key is not available)")]
    AgentRefused,
    #[error("none of the ssh-agent's {offered} keys is an enrolled security key")]
    NoEnrolledKeyInAgent { offered: usize },
    #[error("no touch within {0} s")]
    TouchTimeout(u64),
    #[error(
        "key type {0} is not a security key (want sk-ecdsa-sha2-nistp256@openssh.com or sk-ssh-ed25519@openssh.com)"
    )]
    NotSecurityKey(String),
    #[error("malformed signature: {0}")]
    MalformedSignature(String),
    #[error("signature does not verify against the enrolled key")]
    BadSignature,
    #[error("no user-presence flag (the key was not touched)")]
    NoUserPresence,
    #[error("signature counter did not rise (got {got}, last accepted {last})")]
    CounterNotRising { got: u32, last: u32 },

    // --- PIV --------------------------------------------------------------
    #[error("no PC/SC daemon running (pcscd); start it with `systemctl start pcscd`")]
    NoPcscDaemon,
    #[error("no smart card found: plug in the YubiKey")]
    NoCard,
    #[error("more than one YubiKey is plugged in: unplug all but one")]
    SeveralCards,
    #[error("wrong PIN ({tries} tries left)")]
    WrongPin { tries: u8 },
    #[error("PIN blocked: an administrator must reset it with the PUK")]
    PinBlocked,
    #[error("PIV slot {0} holds no usable P-256 key")]
    PivSlotUnusable(String),
    #[error("PIV error: {0}")]
    Piv(String),

    // --- software key -----------------------------------------------------
    #[error("software keys are disabled in this deployment")]
    SoftwareKeysDisabled,

    // --- enrolment records ------------------------------------------------
    #[error("enrolled key is malformed: {0}")]
    BadEnrolledKey(String),
    #[error("challenge purpose must be non-empty printable ASCII without NUL")]
    BadChallengePurpose,
}

/// A value that must not show up in logs or error messages. `Debug` and
/// (deliberately) no `Display` print a mask; use [`Secret::expose`] at the
/// one place that needs the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Secret<T> {
        Secret(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Proof that an operator touched a registered key just now. It can only be
/// made by a successful verification in this module (private fields, no
/// public constructor), so code that demands a `&StepUpProof` cannot run
/// without one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUpProof {
    key_id: String,
    factor: FactorKind,
    at: DateTime<Utc>,
    action_hash: Option<[u8; 32]>,
    signature: Option<Vec<u8>>,
}

impl StepUpProof {
    fn new(
        key_id: String,
        factor: FactorKind,
        action_hash: Option<[u8; 32]>,
        signature: Option<Vec<u8>>,
    ) -> StepUpProof {
        StepUpProof {
            key_id,
            factor,
            at: Utc::now(),
            action_hash,
            signature,
        }
    }

    /// The enrolled key that was used: the OTP public id, the SHA-256
    /// fingerprint of an sk key, of a PIV key's SubjectPublicKeyInfo, or of
    /// a software key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn factor(&self) -> FactorKind {
        self.factor
    }

    /// When the verification succeeded.
    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }

    /// SHA-256 of the action the signed challenge authorised (sk, PIV,
    /// software); `None` for an OTP, which signs nothing.
    pub fn action_hash(&self) -> Option<&[u8; 32]> {
        self.action_hash.as_ref()
    }

    /// The signature over the challenge, to keep in the audit entry.
    pub fn signature(&self) -> Option<&[u8]> {
        self.signature.as_deref()
    }

    /// True when the proof is younger than `window` at `now` (step-up).
    pub fn is_fresh(&self, now: DateTime<Utc>, window: chrono::Duration) -> bool {
        now >= self.at && now - self.at <= window
    }

    /// True when the proof was made for exactly this action.
    pub fn authorises(&self, action: &[u8]) -> bool {
        self.action_hash == Some(challenge::sha256(action))
    }
}

/// A duration in whole seconds, rounded up, for messages ("within 1 s"
/// rather than "within 0 s" for 200 ms).
pub(crate) fn whole_seconds(d: std::time::Duration) -> u64 {
    let ms = d.as_millis();
    u64::try_from(ms.div_ceil(1000)).unwrap_or(u64::MAX)
}

/// `SHA256:<base64 without padding>`, as `ssh-keygen -l` prints it.
pub(crate) fn sha256_fingerprint(bytes: &[u8]) -> String {
    use base64::Engine as _;
    let digest = challenge::sha256(bytes);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factor_names_round_trip() {
        for kind in FactorKind::ALL {
            assert_eq!(FactorKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(FactorKind::parse("totp"), None);
    }

    #[test]
    fn secrets_are_masked() {
        let s = Secret::new(vec![1u8, 2, 3]);
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), &vec![1, 2, 3]);
    }

    #[test]
    fn proof_freshness_and_binding() {
        let p = StepUpProof::new(
            "k".into(),
            FactorKind::Software,
            Some(challenge::sha256(b"reveal:42")),
            Some(vec![1]),
        );
        let w = chrono::Duration::minutes(2);
        assert!(p.is_fresh(p.at(), w));
        assert!(p.is_fresh(p.at() + chrono::Duration::seconds(119), w));
        assert!(!p.is_fresh(p.at() + chrono::Duration::seconds(121), w));
        assert!(!p.is_fresh(p.at() - chrono::Duration::seconds(1), w));
        assert!(p.authorises(b"reveal:42"));
        assert!(!p.authorises(b"reveal:43"));
    }

    #[test]
    fn enrolled_key_id_is_the_proof_key_id() {
        let key = software::SoftwareKey::from_seed([1; 32]);
        let enrolled = EnrolledKey::Software(key.record());
        let ch = Challenge::new("login", b"").unwrap();
        let ok = software::verify_software(&key.record(), &ch, &key.sign(&ch), true).unwrap();
        assert_eq!(enrolled.kind(), FactorKind::Software);
        assert_eq!(enrolled.key_id(), ok.proof().key_id());
        assert_eq!(whole_seconds(std::time::Duration::from_millis(200)), 1);
        assert_eq!(whole_seconds(std::time::Duration::from_secs(30)), 30);
    }

    #[test]
    fn replay_message_is_precise() {
        let e = MfaError::Replayed {
            got: (5, 3),
            last: (5, 3),
        };
        assert_eq!(
            e.to_string(),
            "replayed OTP (counter 5/3 not above last accepted 5/3)"
        );
        assert_eq!(
            MfaError::WrongLength { got: 43, want: 44 }.to_string(),
            "wrong length (got 43, want 44)"
        );
    }
}
