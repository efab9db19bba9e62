//! PIV on a YubiKey plugged into the machine running charon (PC/SC, the
//! `yubikey` crate). Local use only: it does not work over SSH.
//!
//! The card signs SHA-256(challenge) with the P-256 key in slot 9a
//! (authentication) or 9c (digital signature); [`verify_piv_signature`]
//! checks the DER ECDSA signature against the public key of the enrolled
//! certificate. That part is pure; [`sign_on_card`] is the hardware part.
//! The card calls block (and may wait for a touch): run them in
//! `tokio::task::spawn_blocking`.

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};
use x509_cert::der::{Decode, DecodePem, Encode};

use super::{Challenge, FactorKind, MfaError, Secret, StepUpProof, sha256_fingerprint};

/// The PIV slots charon accepts for MFA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PivSlot {
    /// 9a, PIN once per session.
    Authentication,
    /// 9c, PIN before every signature.
    Signature,
}

impl PivSlot {
    pub fn parse(s: &str) -> Option<PivSlot> {
        match s.trim().to_ascii_lowercase().as_str() {
            "9a" => Some(PivSlot::Authentication),
            "9c" => Some(PivSlot::Signature),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PivSlot::Authentication => "9a",
            PivSlot::Signature => "9c",
        }
    }

    fn slot_id(self) -> yubikey::piv::SlotId {
        match self {
            PivSlot::Authentication => yubikey::piv::SlotId::Authentication,
            PivSlot::Signature => yubikey::piv::SlotId::Signature,
        }
    }
}

/// An enrolled PIV key: the P-256 public key of its certificate.
#[derive(Debug, Clone)]
pub struct PivKeyRecord {
    key: VerifyingKey,
    key_id: String,
    spki_der: Vec<u8>,
}

impl PivKeyRecord {
    /// From a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<PivKeyRecord, MfaError> {
        let key = VerifyingKey::from_public_key_der(der)
            .map_err(|e| MfaError::BadEnrolledKey(format!("not a P-256 public key (SPKI): {e}")))?;
        Ok(PivKeyRecord {
            key,
            key_id: sha256_fingerprint(der),
            spki_der: der.to_vec(),
        })
    }

    /// From the enrolled X.509 certificate (DER).
    pub fn from_certificate_der(der: &[u8]) -> Result<PivKeyRecord, MfaError> {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| MfaError::BadEnrolledKey(format!("not an X.509 certificate: {e}")))?;
        Self::from_certificate(&cert)
    }

    /// From the enrolled X.509 certificate (PEM).
    pub fn from_certificate_pem(pem: &str) -> Result<PivKeyRecord, MfaError> {
        let cert = x509_cert::Certificate::from_pem(pem.as_bytes())
            .map_err(|e| MfaError::BadEnrolledKey(format!("not a PEM certificate: {e}")))?;
        Self::from_certificate(&cert)
    }

    fn from_certificate(cert: &x509_cert::Certificate) -> Result<PivKeyRecord, MfaError> {
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| MfaError::BadEnrolledKey(format!("certificate key: {e}")))?;
        Self::from_spki_der(&spki)
    }

    /// The SubjectPublicKeyInfo (DER), what the key store keeps.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// `SHA256:...` of the SubjectPublicKeyInfo; used as the key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

/// A successful PIV check; `signature` (DER ECDSA) goes into the audit entry.
#[derive(Debug, Clone)]
pub struct PivAccepted {
    pub key_id: String,
    pub signature: Vec<u8>,
    proof: StepUpProof,
}

impl PivAccepted {
    pub fn proof(&self) -> &StepUpProof {
        &self.proof
    }

    pub fn into_proof(self) -> StepUpProof {
        self.proof
    }
}

/// Check a DER ECDSA-P256-SHA256 signature over `challenge`. Pure.
pub fn verify_piv_signature(
    key: &PivKeyRecord,
    challenge: &Challenge,
    der_signature: &[u8],
) -> Result<PivAccepted, MfaError> {
    let sig = Signature::from_der(der_signature)
        .map_err(|_| MfaError::MalformedSignature("not a DER ECDSA signature".into()))?;
    key.key
        .verify(challenge.as_bytes(), &sig)
        .map_err(|_| MfaError::BadSignature)?;
    Ok(PivAccepted {
        key_id: key.key_id.clone(),
        signature: der_signature.to_vec(),
        proof: StepUpProof::new(
            key.key_id.clone(),
            FactorKind::Piv,
            Some(challenge.action_hash()),
            Some(der_signature.to_vec()),
        ),
    })
}

/// Sign `challenge` on the one YubiKey plugged in: verify the PIN, then have
/// the card sign SHA-256(challenge) with the P-256 key in `slot`. Returns
/// the DER signature. Blocking.
pub fn sign_on_card(
    slot: PivSlot,
    pin: &Secret<String>,
    challenge: &Challenge,
) -> Result<Vec<u8>, MfaError> {
    let mut yk = open_card()?;
    yk.verify_pin(pin.expose().as_bytes()).map_err(card_error)?;
    let digest = Sha256::digest(challenge.as_bytes());
    let sig = yubikey::piv::sign_data(
        &mut yk,
        &digest,
        yubikey::piv::AlgorithmId::EccP256,
        slot.slot_id(),
    )
    .map_err(|e| match e {
        yubikey::Error::KeyError
        | yubikey::Error::GenericError
        | yubikey::Error::AlgorithmError => MfaError::PivSlotUnusable(slot.as_str().to_string()),
        other => card_error(other),
    })?;
    Ok(sig.to_vec())
}

/// Open the one YubiKey plugged in (no PIN involved), with plain-word
/// errors when there is no PC/SC daemon, no card, or several.
pub fn open_card() -> Result<yubikey::YubiKey, MfaError> {
    yubikey::YubiKey::open().map_err(open_error)
}

/// [`sign_on_card`] then [`verify_piv_signature`].
pub fn verify_with_card(
    key: &PivKeyRecord,
    slot: PivSlot,
    pin: &Secret<String>,
    challenge: &Challenge,
) -> Result<PivAccepted, MfaError> {
    let sig = sign_on_card(slot, pin, challenge)?;
    verify_piv_signature(key, challenge, &sig)
}

/// Errors of `YubiKey::open`, where "no PC/SC error detail" means the crate
/// found several YubiKeys.
pub fn open_error(e: yubikey::Error) -> MfaError {
    match e {
        yubikey::Error::NotFound => MfaError::NoCard,
        yubikey::Error::PcscError { inner: None } => MfaError::SeveralCards,
        other => card_error(other),
    }
}

/// Plain words for the `yubikey` crate's errors.
pub fn card_error(e: yubikey::Error) -> MfaError {
    use pcsc::Error as P;
    match e {
        yubikey::Error::PcscError {
            inner: Some(P::NoService | P::ServiceStopped),
        } => MfaError::NoPcscDaemon,
        yubikey::Error::PcscError {
            inner:
                Some(
                    P::NoReadersAvailable
                    | P::NoSmartcard
                    | P::RemovedCard
                    | P::UnknownReader
                    | P::ReaderUnavailable
                    | P::UnknownCard,
                ),
        } => MfaError::NoCard,
        yubikey::Error::NotFound => MfaError::NoCard,
        yubikey::Error::WrongPin { tries } => MfaError::WrongPin { tries },
        yubikey::Error::PinLocked => MfaError::PinBlocked,
        yubikey::Error::AppletNotFound { applet_name } => {
            MfaError::Piv(format!("the card has no {applet_name} applet"))
        }
        other => MfaError::Piv(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::EncodePublicKey;

    fn enrolled(sk: &SigningKey) -> PivKeyRecord {
        let der = sk.verifying_key().to_public_key_der().unwrap();
        PivKeyRecord::from_spki_der(der.as_bytes()).unwrap()
    }

    #[test]
    fn software_p256_signature_verifies() {
        let sk = SigningKey::random(&mut rand::rngs::OsRng);
        let rec = enrolled(&sk);
        let ch = Challenge::new("step-up", b"erasure-plan-hash").unwrap();
        let sig: Signature = sk.sign(ch.as_bytes());
        let ok = verify_piv_signature(&rec, &ch, sig.to_der().as_bytes()).unwrap();
        assert_eq!(ok.proof().factor(), FactorKind::Piv);
        assert!(ok.proof().authorises(b"erasure-plan-hash"));
        assert_eq!(ok.proof().signature(), Some(sig.to_der().as_bytes()));
        assert!(ok.key_id.starts_with("SHA256:"));
    }

    #[test]
    fn wrong_key_and_other_challenge_rejected() {
        let sk = SigningKey::random(&mut rand::rngs::OsRng);
        let other = SigningKey::random(&mut rand::rngs::OsRng);
        let ch = Challenge::new("login", b"").unwrap();
        let sig: Signature = other.sign(ch.as_bytes());
        assert_eq!(
            verify_piv_signature(&enrolled(&sk), &ch, sig.to_der().as_bytes()).unwrap_err(),
            MfaError::BadSignature
        );
        let sig: Signature = sk.sign(ch.as_bytes());
        let ch2 = Challenge::new("login", b"").unwrap();
        assert_eq!(
            verify_piv_signature(&enrolled(&sk), &ch2, sig.to_der().as_bytes()).unwrap_err(),
            MfaError::BadSignature
        );
        assert!(matches!(
            verify_piv_signature(&enrolled(&sk), &ch, b"garbage"),
            Err(MfaError::MalformedSignature(_))
        ));
    }

    #[test]
    fn pcsc_errors_in_plain_words() {
        let e = card_error(yubikey::Error::PcscError {
            inner: Some(pcsc::Error::NoService),
        });
        assert_eq!(e, MfaError::NoPcscDaemon);
        assert_eq!(
            e.to_string(),
            "no PC/SC daemon running (pcscd); start it with `systemctl start pcscd`"
        );
        assert_eq!(
            card_error(yubikey::Error::PcscError {
                inner: Some(pcsc::Error::NoReadersAvailable)
            }),
            MfaError::NoCard
        );
        assert_eq!(open_error(yubikey::Error::NotFound), MfaError::NoCard);
        assert_eq!(
            open_error(yubikey::Error::PcscError { inner: None }),
            MfaError::SeveralCards
        );
        assert_eq!(
            card_error(yubikey::Error::WrongPin { tries: 2 }).to_string(),
            "wrong PIN (2 tries left)"
        );
    }

    #[test]
    fn slots_name_their_piv_slot_ids() {
        for (slot, name, id) in [
            (
                PivSlot::Authentication,
                "9a",
                yubikey::piv::SlotId::Authentication,
            ),
            (PivSlot::Signature, "9c", yubikey::piv::SlotId::Signature),
        ] {
            assert_eq!(slot.as_str(), name);
            assert_eq!(PivSlot::parse(name), Some(slot));
            assert_eq!(slot.slot_id(), id);
        }
    }

    #[test]
    fn an_accepted_signature_hands_over_its_proof() {
        let sk = SigningKey::random(&mut rand::rngs::OsRng);
        let ch = Challenge::new("step-up", b"plan").unwrap();
        let sig: Signature = sk.sign(ch.as_bytes());
        let ok = verify_piv_signature(&enrolled(&sk), &ch, sig.to_der().as_bytes()).unwrap();
        let key_id = ok.key_id.clone();
        let proof = ok.into_proof();
        assert_eq!(proof.factor(), FactorKind::Piv);
        assert_eq!(proof.key_id(), key_id);
        assert!(proof.authorises(b"plan"));
        assert!(!proof.authorises(b"other plan"));
    }

    #[test]
    fn more_card_errors_in_plain_words() {
        assert_eq!(card_error(yubikey::Error::NotFound), MfaError::NoCard);
        assert_eq!(card_error(yubikey::Error::PinLocked), MfaError::PinBlocked);
        assert_eq!(
            card_error(yubikey::Error::AppletNotFound { applet_name: "PIV" }),
            MfaError::Piv("the card has no PIV applet".into())
        );
        assert_eq!(
            card_error(yubikey::Error::AuthenticationError),
            MfaError::Piv("authentication error".into())
        );
    }

    /// Without a card (and usually without pcscd) on this machine, the check
    /// fails before any signature, with a card error, never an acceptance.
    #[test]
    fn without_a_card_the_check_fails_with_a_card_error() {
        let sk = SigningKey::random(&mut rand::rngs::OsRng);
        let ch = Challenge::new("login", b"").unwrap();
        let pin = Secret::new("123456".to_string());
        // Never spend a PIN try on a real key that happens to be plugged in.
        if open_card().is_err() {
            let r = verify_with_card(&enrolled(&sk), PivSlot::Authentication, &pin, &ch);
            assert!(
                matches!(
                    r,
                    Err(MfaError::NoCard
                        | MfaError::NoPcscDaemon
                        | MfaError::SeveralCards
                        | MfaError::Piv(_))
                ),
                "{r:?}"
            );
        }
    }

    #[test]
    fn slots() {
        assert_eq!(PivSlot::parse("9A"), Some(PivSlot::Authentication));
        assert_eq!(PivSlot::parse("9c"), Some(PivSlot::Signature));
        assert_eq!(PivSlot::parse("9d"), None);
    }

    /// Real hardware. Run with a YubiKey plugged in whose slot 9a holds a
    /// P-256 key and certificate, pcscd running, and:
    ///
    /// ```text
    /// ykman piv certificates export 9a /tmp/9a.pem
    /// CHARON_PIV_CERT=/tmp/9a.pem CHARON_PIV_PIN=123456 \
    ///   cargo test --lib core::mfa::piv -- --ignored --nocapture
    /// ```
    #[test]
    #[ignore = "needs a YubiKey with a P-256 key in slot 9a and pcscd"]
    fn hardware_sign_and_verify() {
        let pem = std::fs::read_to_string(std::env::var("CHARON_PIV_CERT").unwrap()).unwrap();
        let rec = PivKeyRecord::from_certificate_pem(&pem).unwrap();
        let pin = Secret::new(std::env::var("CHARON_PIV_PIN").unwrap());
        let ch = Challenge::new("key-verify", b"hardware test").unwrap();
        let ok = verify_with_card(&rec, PivSlot::Authentication, &pin, &ch).unwrap();
        println!("accepted key {}", ok.key_id);
    }
}
