//! The authenticator: checks one factor of one operator against the key
//! store, advances the key's counter atomically, and counts failures.
//!
//! | outcome | counted as a failed attempt? |
//! | --- | --- |
//! | what was presented was checked and rejected: malformed, unknown or replayed OTP, CRC or private id mismatch, bad signature, no user presence, counter not rising, wrong PIN, validation server says BAD_OTP / REPLAYED_OTP | yes: five in a row lock the operator |
//! | the operator's environment failed: no agent, agent unreachable or refusing, no enrolled key in the agent, no touch in time, no PC/SC daemon or card, validation server unreachable or misconfigured | no: it says nothing about who is at the keyboard |
//! | the operator is unknown, locked or removed; the factor is not enrolled; software keys are disabled | no: refused before any check |
//!
//! Signing factors sign a fresh [`Challenge`] that contains SHA-256 of the
//! action, so the returned [`StepUpProof`] authorises exactly that action.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::core::config::MfaConfig;
use crate::core::keys::{self, ActiveKey, KeyCheck, KeyFilter, KeyStatus};
use crate::core::mfa::otp::validation::ValidationClient;
use crate::core::mfa::piv::{self, PivSlot};
use crate::core::mfa::sk::{self, SkAgent};
use crate::core::mfa::software::{self, SoftwareKey};
use crate::core::mfa::{Challenge, EnrolledKey, FactorKind, MfaError, Secret, StepUpProof, otp};
use crate::core::operators::{self, MAX_FAILED_ATTEMPTS};
use crate::core::secrets::{MasterKey, read_protected_file};
use crate::core::{Error, Result};

/// The challenge purpose of `charon key verify`.
pub const PURPOSE_KEY_VERIFY: &str = "key-verify";

/// What the operator presents.
pub enum FactorInput<'a> {
    /// The 44 characters a YubiKey typed.
    Otp(String),
    /// A security key reached through the ssh-agent at `socket`
    /// (usually `$SSH_AUTH_SOCK`, forwarded with `ssh -A`).
    Agent { socket: PathBuf },
    /// The PIV key of the YubiKey plugged into this machine.
    Piv { pin: Secret<String>, slot: PivSlot },
    /// An in-memory key (demo and tests; refused unless allowed).
    Software { key: &'a SoftwareKey },
}

impl FactorInput<'_> {
    pub fn kind(&self) -> FactorKind {
        match self {
            FactorInput::Otp(_) => FactorKind::YubicoOtp,
            FactorInput::Agent { .. } => FactorKind::Sk,
            FactorInput::Piv { .. } => FactorKind::Piv,
            FactorInput::Software { .. } => FactorKind::Software,
        }
    }
}

impl fmt::Debug for FactorInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Only the public id: an unused OTP is a credential.
            FactorInput::Otp(o) => {
                let id: String = o.trim().chars().take(otp::PUBLIC_ID_LEN).collect();
                write!(f, "Otp({id}…)")
            }
            FactorInput::Agent { socket } => write!(f, "Agent({})", socket.display()),
            FactorInput::Piv { slot, .. } => write!(f, "Piv(slot {}, PIN ***)", slot.as_str()),
            FactorInput::Software { key } => write!(f, "Software({key:?})"),
        }
    }
}

/// A factor was checked and rejected; the failure was counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AuthFailure {
    pub login: String,
    pub factor: FactorKind,
    pub reason: MfaError,
    /// Failed attempts in a row, this one included.
    pub attempts: i32,
    /// This failure locked the operator.
    pub locked: bool,
}

impl AuthFailure {
    pub fn attempts_left(&self) -> i32 {
        (MAX_FAILED_ATTEMPTS - self.attempts).max(0)
    }
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} key rejected: {}; ", self.factor, self.reason)?;
        if self.locked || self.attempts_left() == 0 {
            write!(
                f,
                "operator `{}` is now locked after {} failed attempts: an admin must unlock it",
                self.login, self.attempts
            )
        } else {
            let left = self.attempts_left();
            write!(
                f,
                "{left} attempt{} left before operator `{}` is locked",
                if left == 1 { "" } else { "s" },
                self.login
            )
        }
    }
}

/// What the gate tells the operator about one enrolled factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FactorPrompt {
    pub factor: FactorKind,
    /// Labels of the active keys of this factor.
    pub keys: Vec<String>,
    /// What to do, in plain words.
    pub prompt: String,
    /// `Some(why)` when this deployment cannot check the factor.
    pub unusable: Option<String>,
}

/// `charon key verify`: which operator and key matched.
#[derive(Debug, Clone)]
pub struct KeyMatch {
    pub login: String,
    pub operator_status: operators::Status,
    pub key_id: Uuid,
    pub label: String,
    pub factor: FactorKind,
    pub fingerprint: String,
    pub proof: StepUpProof,
}

/// Checks factors against the key store. Built once from the `[mfa]` config.
#[derive(Debug, Clone)]
pub struct Authenticator {
    master: Option<MasterKey>,
    validation: Option<ValidationClient>,
    allow_software_keys: bool,
    step_up_window: Duration,
    touch_timeout: Duration,
}

/// A check that did not pass: counted, or not (see the module doc).
enum CheckError {
    Rejected(MfaError),
    Other(Error),
}

impl From<Error> for CheckError {
    fn from(e: Error) -> Self {
        CheckError::Other(e)
    }
}

/// Whether a factor error rejects what was presented (counted) rather than
/// reporting a failing environment (not counted).
fn counts(e: &MfaError) -> bool {
    use MfaError as M;
    match e {
        M::NotModhex
        | M::WrongLength { .. }
        | M::UnknownPublicId(_)
        | M::CrcMismatch
        | M::PrivateIdMismatch
        | M::Replayed { .. }
        | M::MalformedSignature(_)
        | M::BadSignature
        | M::NoUserPresence
        | M::CounterNotRising { .. }
        | M::WrongPin { .. } => true,
        M::ServerRejected { status, .. } => status == "BAD_OTP" || status == "REPLAYED_OTP",
        _ => false,
    }
}

fn classify(e: MfaError) -> CheckError {
    if counts(&e) {
        CheckError::Rejected(e)
    } else {
        CheckError::Other(Error::Mfa(e))
    }
}

struct Verified {
    key: ActiveKey,
    proof: StepUpProof,
}

impl Authenticator {
    /// From the resolved `[mfa]` config: reads the master key (file or
    /// `CHARON_MASTER_KEY`) and the validation server's API key file.
    pub fn from_config(cfg: &MfaConfig) -> Result<Authenticator> {
        let master = MasterKey::load_env(cfg.master_key_file.as_deref())?;
        let validation = match &cfg.validation {
            None => None,
            Some(v) => {
                let key = read_protected_file(&v.api_key_file, "validation server API key file")?;
                let client = ValidationClient::new(&v.url, &v.client_id, key.trim())
                    .map_err(|e| Error::Config(format!("[mfa] validation server: {e}")))?;
                Some(client)
            }
        };
        Ok(Authenticator::new(cfg, master, validation))
    }

    /// With the master key and validation client given (demo, tests).
    pub fn new(
        cfg: &MfaConfig,
        master: Option<MasterKey>,
        validation: Option<ValidationClient>,
    ) -> Authenticator {
        Authenticator {
            master,
            validation,
            allow_software_keys: cfg.allow_software_keys,
            step_up_window: cfg.step_up_window,
            touch_timeout: cfg.touch_timeout,
        }
    }

    pub fn master_key(&self) -> Option<&MasterKey> {
        self.master.as_ref()
    }

    pub fn allows_software_keys(&self) -> bool {
        self.allow_software_keys
    }

    pub fn step_up_window(&self) -> Duration {
        self.step_up_window
    }

    /// True when `proof` is missing or older than the step-up window at `now`.
    pub fn needs_step_up(
        &self,
        proof: Option<&StepUpProof>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> bool {
        let window = chrono::Duration::from_std(self.step_up_window)
            .unwrap_or_else(|_| chrono::Duration::zero());
        !proof.is_some_and(|p| p.is_fresh(now, window))
    }

    /// Checks one factor of `login` for `purpose` (e.g. `login`, `step-up`)
    /// and `action` (what a step-up authorises; empty for a login). On
    /// success the failure count is reset and the key's counter advanced; on
    /// a rejection the failure is counted and the error is an
    /// [`Error::Auth`] saying why and how many attempts are left.
    pub async fn authenticate(
        &self,
        pool: &PgPool,
        login: &str,
        input: FactorInput<'_>,
        purpose: &str,
        action: &[u8],
    ) -> Result<StepUpProof> {
        let challenge =
            Challenge::new(purpose, action).map_err(|e| Error::InvalidInput(e.to_string()))?;
        operators::resolve(pool, login).await?;
        let factor = input.kind();
        if factor == FactorKind::Software && !self.allow_software_keys {
            return Err(Error::Mfa(MfaError::SoftwareKeysDisabled));
        }
        // Counted from the listing (no secret opened), so that the refusal for
        // a factor that is not enrolled does not depend on the master key.
        let listed = keys::list(pool, Some(login))
            .await?
            .iter()
            .filter(|k| k.factor == factor && k.status == KeyStatus::Active)
            .count();
        if listed == 0 {
            return Err(Error::Forbidden(format!(
                "operator `{login}` has no active {factor} key enrolled{}",
                self.enrolled_suffix(pool, login).await?
            )));
        }
        match self
            .verify_against(pool, Some(login), input, &challenge)
            .await
        {
            Ok(v) => {
                operators::record_success(pool, login).await?;
                Ok(v.proof)
            }
            Err(CheckError::Rejected(reason)) => {
                let f = operators::record_failure(pool, login).await?;
                Err(Error::Auth(AuthFailure {
                    login: login.to_string(),
                    factor,
                    reason,
                    attempts: f.attempts,
                    locked: f.locked,
                }))
            }
            Err(CheckError::Other(e)) => Err(e),
        }
    }

    async fn enrolled_suffix(&self, pool: &PgPool, login: &str) -> Result<String> {
        let factors: Vec<String> = self
            .describe_factors(pool, login)
            .await?
            .into_iter()
            .map(|p| p.factor.to_string())
            .collect();
        Ok(if factors.is_empty() {
            "; the operator has no active key at all: an admin must enrol one".into()
        } else {
            format!("; enrolled: {}", factors.join(", "))
        })
    }

    /// Verifies `input` against the active keys of `login` (or, for
    /// `charon key verify`, of every operator), advancing the matched key's
    /// counter by compare-and-set.
    async fn verify_against(
        &self,
        pool: &PgPool,
        login: Option<&str>,
        input: FactorInput<'_>,
        challenge: &Challenge,
    ) -> std::result::Result<Verified, CheckError> {
        let factor = input.kind();
        let load = |fingerprint: Option<String>| async move {
            keys::active_keys(
                pool,
                self.master.as_ref(),
                KeyFilter {
                    login,
                    factor: Some(factor),
                    fingerprint: fingerprint.as_deref(),
                },
            )
            .await
        };
        match input {
            FactorInput::Otp(typed) => {
                let public_id = otp::public_id_of(&typed).map_err(classify)?;
                let key = load(Some(public_id.clone()))
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| classify(MfaError::UnknownPublicId(public_id)))?;
                let proof = match &key.check {
                    KeyCheck::Local(EnrolledKey::YubicoOtp(rec)) => {
                        let ok = otp::verify_otp(&typed, rec).map_err(classify)?;
                        keys::advance_otp_counter(pool, key.id, ok.counter)
                            .await?
                            .map_err(classify)?;
                        ok.into_proof()
                    }
                    KeyCheck::ValidationServer { public_id, .. } => {
                        let client = self.validation.as_ref().ok_or_else(|| {
                            CheckError::Other(Error::Config(format!(
                                "OTP key {} ({}) is checked by a validation server, and none is configured ([mfa] validation_url)",
                                key.id, key.label
                            )))
                        })?;
                        let ok = client.verify(&typed, public_id).await.map_err(classify)?;
                        match ok.counter {
                            Some(c) => keys::advance_otp_counter(pool, key.id, c)
                                .await?
                                .map_err(classify)?,
                            None => keys::touch(pool, key.id).await?,
                        }
                        ok.into_proof()
                    }
                    KeyCheck::Local(_) => {
                        return Err(CheckError::Other(Error::Config(format!(
                            "key {} is stored as OTP but is not an OTP key",
                            key.id
                        ))));
                    }
                };
                Ok(Verified { key, proof })
            }
            FactorInput::Agent { socket } => {
                let keys = load(None).await?;
                let records: Vec<sk::SkKeyRecord> = keys
                    .iter()
                    .filter_map(|k| match k.enrolled() {
                        Some(EnrolledKey::Sk(r)) => Some(r.clone()),
                        _ => None,
                    })
                    .collect();
                let mut agent = SkAgent::connect(&socket).await.map_err(classify)?;
                let ok = sk::verify_with_agent(&mut agent, &records, challenge, self.touch_timeout)
                    .await
                    .map_err(classify)?;
                let key = keys
                    .into_iter()
                    .find(|k| k.fingerprint == ok.fingerprint)
                    .ok_or_else(|| classify(MfaError::BadSignature))?;
                keys::advance_sign_counter(pool, key.id, ok.counter)
                    .await?
                    .map_err(classify)?;
                Ok(Verified {
                    key,
                    proof: ok.into_proof(),
                })
            }
            FactorInput::Piv { pin, slot } => {
                let keys = load(None).await?;
                let ch = challenge.clone();
                let signature =
                    tokio::task::spawn_blocking(move || piv::sign_on_card(slot, &pin, &ch))
                        .await
                        .map_err(|e| {
                            CheckError::Other(Error::Mfa(MfaError::Piv(format!(
                                "card task failed: {e}"
                            ))))
                        })?
                        .map_err(classify)?;
                let mut last = MfaError::BadSignature;
                for key in keys {
                    let Some(EnrolledKey::Piv(rec)) = key.enrolled() else {
                        continue;
                    };
                    match piv::verify_piv_signature(rec, challenge, &signature) {
                        Ok(ok) => {
                            keys::touch(pool, key.id).await?;
                            return Ok(Verified {
                                key,
                                proof: ok.into_proof(),
                            });
                        }
                        Err(e) => last = e,
                    }
                }
                Err(classify(last))
            }
            FactorInput::Software { key: soft } => {
                if !self.allow_software_keys {
                    return Err(classify(MfaError::SoftwareKeysDisabled));
                }
                let keys = load(None).await?;
                let signature = soft.sign(challenge);
                let mut last = MfaError::BadSignature;
                for key in keys {
                    let Some(EnrolledKey::Software(rec)) = key.enrolled() else {
                        continue;
                    };
                    match software::verify_software(rec, challenge, &signature, true) {
                        Ok(ok) => {
                            keys::touch(pool, key.id).await?;
                            return Ok(Verified {
                                key,
                                proof: ok.into_proof(),
                            });
                        }
                        Err(e) => last = e,
                    }
                }
                Err(classify(last))
            }
        }
    }

    /// What the gate tells `login`: each factor with active keys, what to do,
    /// and whether this deployment can check it. Refuses (like a login) an
    /// unknown, locked or removed operator.
    pub async fn describe_factors(&self, pool: &PgPool, login: &str) -> Result<Vec<FactorPrompt>> {
        operators::resolve(pool, login).await?;
        let active: Vec<keys::KeyInfo> = keys::list(pool, Some(login))
            .await?
            .into_iter()
            .filter(|k| k.status == KeyStatus::Active)
            .collect();
        let mut out = Vec::new();
        for factor in FactorKind::ALL {
            let of: Vec<&keys::KeyInfo> = active.iter().filter(|k| k.factor == factor).collect();
            if of.is_empty() {
                continue;
            }
            let (prompt, unusable) = match factor {
                FactorKind::YubicoOtp => (
                    "touch your YubiKey so that it types its one-time password".to_string(),
                    if of.iter().all(|k| k.validation_server) && self.validation.is_none() {
                        Some("its keys are checked by a validation server, and none is configured".to_string())
                    } else if of.iter().all(|k| !k.validation_server) && self.master.is_none() {
                        Some("no master key is configured to open the stored OTP secrets".to_string())
                    } else {
                        None
                    },
                ),
                FactorKind::Sk => (
                    "confirm on your security key when it blinks (asked through your forwarded ssh-agent: connect with `ssh -A`)".to_string(),
                    None,
                ),
                FactorKind::Piv => (
                    "enter the PIN of the YubiKey plugged into this machine, and touch it if it blinks".to_string(),
                    None,
                ),
                FactorKind::Software => (
                    "DEMO software key: no hardware involved".to_string(),
                    (!self.allow_software_keys)
                        .then(|| MfaError::SoftwareKeysDisabled.to_string()),
                ),
            };
            out.push(FactorPrompt {
                factor,
                keys: of.iter().map(|k| k.label.clone()).collect(),
                prompt,
                unusable,
            });
        }
        Ok(out)
    }

    /// `charon key verify`: checks one factor against every operator's
    /// active keys and says which operator and key matched, or exactly why
    /// not. A match consumes the OTP / advances the counter like a login;
    /// a failure is not counted against any operator (the caller audits it).
    pub async fn key_verify(&self, pool: &PgPool, input: FactorInput<'_>) -> Result<KeyMatch> {
        let challenge = Challenge::new(PURPOSE_KEY_VERIFY, b"")
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let factor = input.kind();
        // For a key that names itself, say what became of it if it is not active.
        let named = match &input {
            FactorInput::Otp(o) => otp::public_id_of(o).ok(),
            FactorInput::Software { key } => Some(key.record().key_id().to_string()),
            _ => None,
        };
        match self.verify_against(pool, None, input, &challenge).await {
            Ok(v) => {
                let op = operators::find(pool, &v.key.login)
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("no operator `{}`", v.key.login)))?;
                Ok(KeyMatch {
                    login: v.key.login,
                    operator_status: op.status,
                    key_id: v.key.id,
                    label: v.key.label,
                    factor,
                    fingerprint: v.key.fingerprint,
                    proof: v.proof,
                })
            }
            Err(CheckError::Other(e)) => Err(e),
            Err(CheckError::Rejected(reason)) => {
                if let (Some(fp), MfaError::UnknownPublicId(_) | MfaError::BadSignature) =
                    (&named, &reason)
                    && let Some(why) = inactive_enrolment(pool, factor, fp).await?
                {
                    return Err(Error::NotFound(why));
                }
                match (&named, &reason) {
                    (Some(fp), MfaError::UnknownPublicId(_) | MfaError::BadSignature) => {
                        Err(Error::NotFound(format!(
                            "{factor} key {fp} is not enrolled for any operator"
                        )))
                    }
                    _ => Err(Error::Mfa(reason)),
                }
            }
        }
    }
}

/// Why a key with this fingerprint is not usable, if it was ever enrolled.
async fn inactive_enrolment(
    pool: &PgPool,
    factor: FactorKind,
    fingerprint: &str,
) -> Result<Option<String>> {
    let row: Option<(Uuid, String, String, String)> = sqlx::query_as(
        "SELECT k.id, k.login, k.status, o.status
         FROM operator_keys k JOIN operators o ON o.login = k.login
         WHERE k.factor = $1 AND k.fingerprint = $2
         ORDER BY (k.status = 'active') DESC, k.created_at DESC LIMIT 1",
    )
    .bind(factor.as_str())
    .bind(fingerprint)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(id, login, key_status, op_status)| {
        if op_status == "removed" {
            format!("{factor} key {fingerprint} was key {id} of `{login}`, who has been removed")
        } else if key_status != "active" {
            format!("{factor} key {fingerprint} was key {id} of `{login}`, and it has been revoked")
        } else {
            format!("{factor} key {fingerprint} is key {id} of `{login}` but did not verify")
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(attempts: i32, locked: bool) -> AuthFailure {
        AuthFailure {
            login: "alice".into(),
            factor: FactorKind::YubicoOtp,
            reason: MfaError::CrcMismatch,
            attempts,
            locked,
        }
    }

    #[test]
    fn a_locked_failure_says_locked_whatever_the_count() {
        // Locked by this failure although the count is below the maximum
        // (e.g. the maximum was lowered): the message must say locked, not
        // "2 attempts left".
        let f = failure(3, true);
        assert_eq!(f.attempts_left(), 2);
        assert_eq!(
            f.to_string(),
            "yubico_otp key rejected: CRC check failed (wrong key or tampered OTP); \
             operator `alice` is now locked after 3 failed attempts: an admin must unlock it"
        );
        // No attempt left: locked, even if the flag was not set.
        assert!(
            failure(MAX_FAILED_ATTEMPTS, false)
                .to_string()
                .contains("is now locked")
        );
        assert_eq!(failure(MAX_FAILED_ATTEMPTS + 2, false).attempts_left(), 0);
        assert!(
            failure(4, false)
                .to_string()
                .ends_with("; 1 attempt left before operator `alice` is locked")
        );
    }

    #[test]
    fn only_rejections_of_what_was_presented_are_counted() {
        for counted in [
            MfaError::NotModhex,
            MfaError::WrongLength { got: 3, want: 44 },
            MfaError::UnknownPublicId("cccc".into()),
            MfaError::CrcMismatch,
            MfaError::PrivateIdMismatch,
            MfaError::Replayed {
                got: (1, 1),
                last: (1, 1),
            },
            MfaError::MalformedSignature("x".into()),
            MfaError::BadSignature,
            MfaError::NoUserPresence,
            MfaError::CounterNotRising { got: 1, last: 2 },
            MfaError::WrongPin { tries: 2 },
        ] {
            assert!(counts(&counted), "{counted:?}");
            assert!(matches!(classify(counted), CheckError::Rejected(_)));
        }
        for status in ["BAD_OTP", "REPLAYED_OTP"] {
            let e = MfaError::ServerRejected {
                status: status.into(),
                meaning: "",
            };
            assert!(counts(&e), "{status}");
        }
        for not_counted in [
            MfaError::ServerRejected {
                status: "NO_SUCH_CLIENT".into(),
                meaning: "",
            },
            MfaError::ServerUnreachable("refused".into()),
            MfaError::NoAgent,
            MfaError::AgentRefused,
            MfaError::TouchTimeout(30),
            MfaError::NoPcscDaemon,
            MfaError::NoCard,
            MfaError::SoftwareKeysDisabled,
        ] {
            assert!(!counts(&not_counted), "{not_counted:?}");
            assert!(matches!(
                classify(not_counted),
                CheckError::Other(Error::Mfa(_))
            ));
        }
    }
}
