//! Software keys: an Ed25519 key held in memory, for `charon demo` and
//! tests only. Verification refuses unless the deployment explicitly allows
//! software keys, and the proof says `FactorKind::Software`, so the status
//! bar and the audit log can say DEMO.

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

use super::{Challenge, FactorKind, MfaError, StepUpProof, sha256_fingerprint};

/// The private half, held by the demo "device".
#[derive(Clone)]
pub struct SoftwareKey {
    signing: SigningKey,
}

impl std::fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SoftwareKey({}, ***)", self.record().key_id)
    }
}

impl SoftwareKey {
    pub fn generate() -> SoftwareKey {
        SoftwareKey {
            signing: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// Deterministic key (tests, reproducible demo data).
    pub fn from_seed(seed: [u8; 32]) -> SoftwareKey {
        SoftwareKey {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// What gets enrolled.
    pub fn record(&self) -> SoftwareKeyRecord {
        SoftwareKeyRecord::new(self.signing.verifying_key())
    }

    /// The "touch": sign the challenge.
    pub fn sign(&self, challenge: &Challenge) -> Vec<u8> {
        self.signing.sign(challenge.as_bytes()).to_bytes().to_vec()
    }
}

/// An enrolled software key (public half).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftwareKeyRecord {
    key: VerifyingKey,
    key_id: String,
}

impl SoftwareKeyRecord {
    pub fn new(key: VerifyingKey) -> SoftwareKeyRecord {
        SoftwareKeyRecord {
            key_id: sha256_fingerprint(key.as_bytes()),
            key,
        }
    }

    pub fn from_bytes(bytes: &[u8; 32]) -> Result<SoftwareKeyRecord, MfaError> {
        VerifyingKey::from_bytes(bytes)
            .map(SoftwareKeyRecord::new)
            .map_err(|_| MfaError::BadEnrolledKey("not an Ed25519 public key".into()))
    }

    pub fn public_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

/// A successful software-key check.
#[derive(Debug, Clone)]
pub struct SoftwareAccepted {
    pub key_id: String,
    proof: StepUpProof,
}

impl SoftwareAccepted {
    pub fn proof(&self) -> &StepUpProof {
        &self.proof
    }

    pub fn into_proof(self) -> StepUpProof {
        self.proof
    }
}

/// Verify a software key's signature over `challenge`, only if
/// `allow_software_keys` (from the resolved config) is true.
pub fn verify_software(
    key: &SoftwareKeyRecord,
    challenge: &Challenge,
    signature: &[u8],
    allow_software_keys: bool,
) -> Result<SoftwareAccepted, MfaError> {
    if !allow_software_keys {
        return Err(MfaError::SoftwareKeysDisabled);
    }
    let sig = Signature::from_slice(signature)
        .map_err(|_| MfaError::MalformedSignature("not a 64-byte Ed25519 signature".into()))?;
    key.key
        .verify(challenge.as_bytes(), &sig)
        .map_err(|_| MfaError::BadSignature)?;
    Ok(SoftwareAccepted {
        key_id: key.key_id.clone(),
        proof: StepUpProof::new(
            key.key_id.clone(),
            FactorKind::Software,
            Some(challenge.action_hash()),
            Some(signature.to_vec()),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_only_when_allowed() {
        let key = SoftwareKey::from_seed([9; 32]);
        let ch = Challenge::new("step-up", b"reveal email of user 7").unwrap();
        let sig = key.sign(&ch);
        let err = verify_software(&key.record(), &ch, &sig, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "software keys are disabled in this deployment"
        );
        let ok = verify_software(&key.record(), &ch, &sig, true).unwrap();
        assert_eq!(ok.proof().factor(), FactorKind::Software);
        assert!(ok.proof().authorises(b"reveal email of user 7"));
        assert_eq!(ok.proof().signature(), Some(&sig[..]));
        // The hash the audit entry records as `action_sha256`.
        assert_eq!(
            ok.proof().action_hash(),
            Some(&crate::core::mfa::challenge::sha256(
                b"reveal email of user 7"
            ))
        );
    }

    #[test]
    fn wrong_key_or_challenge_rejected() {
        let key = SoftwareKey::from_seed([9; 32]);
        let other = SoftwareKey::from_seed([8; 32]);
        let ch = Challenge::new("login", b"").unwrap();
        assert_eq!(
            verify_software(&other.record(), &ch, &key.sign(&ch), true).unwrap_err(),
            MfaError::BadSignature
        );
        let ch2 = Challenge::new("login", b"").unwrap();
        assert_eq!(
            verify_software(&key.record(), &ch2, &key.sign(&ch), true).unwrap_err(),
            MfaError::BadSignature
        );
        assert!(matches!(
            verify_software(&key.record(), &ch, &[0; 10], true),
            Err(MfaError::MalformedSignature(_))
        ));
    }

    #[test]
    fn debug_hides_the_private_key() {
        let key = SoftwareKey::from_seed([9; 32]);
        let dbg = format!("{key:?}");
        assert!(dbg.starts_with("SoftwareKey(SHA256:"), "{dbg}");
        assert!(!dbg.contains("0909"), "{dbg}");
    }
}
