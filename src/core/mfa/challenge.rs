//! Fresh, domain-separated challenges for the factors that sign.
//!
//! Layout (so a signature made for charon cannot be replayed as an SSH
//! login, a git commit signature or anything else, and names what it
//! authorised):
//!
//! ```text
//! "charon-mfa-v1" 0x00 || purpose || 0x00 || SHA-256(action) || 32 random bytes
//! ```

use rand::RngCore;
use sha2::{Digest, Sha256};

use super::MfaError;

pub const DOMAIN: &[u8] = b"charon-mfa-v1\0";
const NONCE_LEN: usize = 32;

/// A challenge to be signed once. `purpose` says what kind of check it is
/// (e.g. `login`, `step-up`, `key-verify`); `action` is the exact thing a
/// step-up authorises (an erasure plan's hash, the field being revealed) and
/// is empty for a login.
#[derive(Clone, PartialEq, Eq)]
pub struct Challenge {
    bytes: Vec<u8>,
    action_hash: [u8; 32],
}

impl Challenge {
    pub fn new(purpose: &str, action: &[u8]) -> Result<Challenge, MfaError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        Challenge::with_nonce(purpose, action, nonce)
    }

    /// Deterministic form, for tests and for re-building a challenge from an
    /// audit entry to re-check a stored signature.
    pub fn with_nonce(
        purpose: &str,
        action: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Result<Challenge, MfaError> {
        if purpose.is_empty() || !purpose.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(MfaError::BadChallengePurpose);
        }
        let action_hash = sha256(action);
        let mut bytes = Vec::with_capacity(DOMAIN.len() + purpose.len() + 1 + 32 + NONCE_LEN);
        bytes.extend_from_slice(DOMAIN);
        bytes.extend_from_slice(purpose.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(&action_hash);
        bytes.extend_from_slice(&nonce);
        Ok(Challenge { bytes, action_hash })
    }

    /// The bytes to be signed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn action_hash(&self) -> [u8; 32] {
        self.action_hash
    }
}

impl std::fmt::Debug for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Challenge({})", hex::encode(&self.bytes))
    }
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_domain_purpose_hash_nonce() {
        let c = Challenge::with_nonce("step-up", b"reveal", [7u8; 32]).unwrap();
        let b = c.as_bytes();
        assert!(b.starts_with(b"charon-mfa-v1\0step-up\0"));
        let rest = &b[b"charon-mfa-v1\0step-up\0".len()..];
        assert_eq!(&rest[..32], &sha256(b"reveal"));
        assert_eq!(&rest[32..], &[7u8; 32]);
        assert_eq!(c.action_hash(), sha256(b"reveal"));
    }

    #[test]
    fn fresh_challenges_differ() {
        let a = Challenge::new("login", b"").unwrap();
        let b = Challenge::new("login", b"").unwrap();
        assert_ne!(a.as_bytes(), b.as_bytes());
    }

    #[test]
    fn purpose_cannot_smuggle_separators() {
        assert_eq!(
            Challenge::new("log\0in", b""),
            Err(MfaError::BadChallengePurpose)
        );
        assert_eq!(Challenge::new("", b""), Err(MfaError::BadChallengePurpose));
        assert_eq!(
            Challenge::new("a b", b""),
            Err(MfaError::BadChallengePurpose)
        );
    }
}
