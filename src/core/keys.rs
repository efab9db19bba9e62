//! The key store: operators' enrolled second factors in `operator_keys`.
//!
//! - Enrolment refuses unknown and removed operators, and a key that is
//!   already actively enrolled (an OTP public id or a key fingerprint names
//!   exactly one operator).
//! - Yubico OTP secrets (AES key ‖ private id) are sealed under the
//!   [`MasterKey`], bound to the row (key id, login, public id): a sealed
//!   secret copied into another row does not open there.
//! - Counters only rise, by compare-and-set in SQL, so two concurrent uses of
//!   the same OTP (or sk signature counter) cannot both be accepted.
//! - [`list`] never returns a secret.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::core::mfa::otp::{self, AesKey, OtpKeyRecord, PrivateId};
use crate::core::mfa::piv::PivKeyRecord;
use crate::core::mfa::sk::SkKeyRecord;
use crate::core::mfa::software::SoftwareKeyRecord;
use crate::core::mfa::{EnrolledKey, FactorKind, MfaError};
use crate::core::secrets::MasterKey;
use crate::core::{Error, Result};

/// Domain separation for the associated data of sealed OTP secrets.
const OTP_AAD_DOMAIN: &[u8] = b"charon-otp-secret-v1\0";
const SECRET_LEN: usize = 16 + 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Revoked,
}

/// An enrolment as listed: no secret in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub id: Uuid,
    pub login: String,
    pub factor: FactorKind,
    pub label: String,
    /// The OTP public id, or the `SHA256:...` fingerprint of the public key:
    /// what a step-up proof and the audit log name.
    pub fingerprint: String,
    /// For an OTP key: checked by the validation server (no stored secret).
    pub validation_server: bool,
    pub status: KeyStatus,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// How an active key is checked.
#[derive(Debug, Clone)]
pub enum KeyCheck {
    /// Verified here (OTP with its decrypted secret, sk, PIV, software).
    Local(EnrolledKey),
    /// A Yubico OTP key checked by the validation server.
    ValidationServer {
        public_id: String,
        last_counter: Option<(u16, u8)>,
    },
}

/// An active key, ready to verify against.
#[derive(Debug, Clone)]
pub struct ActiveKey {
    pub id: Uuid,
    pub login: String,
    pub label: String,
    pub factor: FactorKind,
    pub fingerprint: String,
    pub check: KeyCheck,
}

impl ActiveKey {
    /// The factor record, when the key is checked locally.
    pub fn enrolled(&self) -> Option<&EnrolledKey> {
        match &self.check {
            KeyCheck::Local(k) => Some(k),
            KeyCheck::ValidationServer { .. } => None,
        }
    }
}

/// Which active keys to load; `None` means any.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyFilter<'a> {
    pub login: Option<&'a str>,
    pub factor: Option<FactorKind>,
    pub fingerprint: Option<&'a str>,
}

/// The associated data that binds a sealed OTP secret to its row.
pub fn otp_aad(key_id: Uuid, login: &str, public_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(OTP_AAD_DOMAIN.len() + 16 + login.len() + 1 + 12);
    aad.extend_from_slice(OTP_AAD_DOMAIN);
    aad.extend_from_slice(key_id.as_bytes());
    aad.extend_from_slice(login.as_bytes());
    aad.push(0);
    aad.extend_from_slice(public_id.as_bytes());
    aad
}

fn validate_label(label: &str) -> Result<()> {
    if label.trim().is_empty() || label.chars().count() > 100 || label.chars().any(char::is_control)
    {
        return Err(Error::InvalidInput(
            "a key label is 1-100 printable characters (e.g. `yubikey 5c blue`)".into(),
        ));
    }
    Ok(())
}

fn validate_public_id(public_id: &str) -> Result<String> {
    let p = public_id.trim().to_ascii_lowercase();
    let mut buf = [0u8; otp::PUBLIC_ID_LEN / 2];
    otp::modhex_decode(&p, &mut buf).map_err(|e| {
        Error::InvalidInput(format!(
            "an OTP public id is the first 12 modhex characters the key types: {e}"
        ))
    })?;
    Ok(p)
}

/// The columns of a new row.
struct NewKey<'a> {
    login: &'a str,
    factor: FactorKind,
    label: &'a str,
    fingerprint: String,
    public_id: Option<String>,
    public_key: Option<Vec<u8>>,
    certificate: Option<&'a str>,
    secret_enc: Option<Vec<u8>>,
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}

async fn insert(pool: &PgPool, id: Uuid, k: NewKey<'_>) -> Result<KeyInfo> {
    validate_label(k.label)?;
    let mut tx = pool.begin().await?;
    // Row lock: serialises with `operators::remove`, which revokes keys in
    // the same transaction as the removal, so no key outlives its operator.
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM operators WHERE login = $1 FOR UPDATE")
            .bind(k.login)
            .fetch_optional(&mut *tx)
            .await?;
    match status.as_deref() {
        None => {
            return Err(Error::NotFound(format!(
                "no operator `{}`; add the operator before enrolling keys",
                k.login
            )));
        }
        Some("removed") => {
            return Err(Error::Forbidden(format!(
                "operator `{}` has been removed; keys cannot be enrolled for it",
                k.login
            )));
        }
        Some(_) => {}
    }
    let inserted = sqlx::query(
        "INSERT INTO operator_keys
             (id, login, factor, label, fingerprint, public_id, public_key, certificate, secret_enc)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(k.login)
    .bind(k.factor.as_str())
    .bind(k.label)
    .bind(&k.fingerprint)
    .bind(&k.public_id)
    .bind(&k.public_key)
    .bind(k.certificate)
    .bind(&k.secret_enc)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            drop(tx);
            let holder: Option<(Uuid, String)> = sqlx::query_as(
                "SELECT id, login FROM operator_keys
                 WHERE factor = $1 AND fingerprint = $2 AND status = 'active'",
            )
            .bind(k.factor.as_str())
            .bind(&k.fingerprint)
            .fetch_optional(pool)
            .await?;
            let what = match k.factor {
                FactorKind::YubicoOtp => "OTP public id",
                _ => "key",
            };
            return Err(Error::Conflict(match holder {
                Some((hid, hlogin)) => format!(
                    "{what} {} is already enrolled as key {hid} of `{hlogin}`; revoke that first",
                    k.fingerprint
                ),
                None => format!("{what} {} is already enrolled", k.fingerprint),
            }));
        }
        Err(e) => return Err(e.into()),
    }
    tx.commit().await?;
    get(pool, id).await
}

/// Enrols a Yubico OTP key checked offline: its AES key and private id are
/// sealed under `master`.
pub async fn enroll_otp(
    pool: &PgPool,
    master: &MasterKey,
    login: &str,
    label: &str,
    public_id: &str,
    aes_key: &AesKey,
    private_id: &PrivateId,
) -> Result<KeyInfo> {
    let public_id = validate_public_id(public_id)?;
    let id = Uuid::new_v4();
    let mut plain = Vec::with_capacity(SECRET_LEN);
    plain.extend_from_slice(aes_key.expose());
    plain.extend_from_slice(private_id.expose());
    let sealed = master
        .seal(&plain, &otp_aad(id, login, &public_id))
        .map_err(|e| Error::InvalidInput(e.to_string()))?;
    plain.fill(0);
    insert(
        pool,
        id,
        NewKey {
            login,
            factor: FactorKind::YubicoOtp,
            label,
            fingerprint: public_id.clone(),
            public_id: Some(public_id),
            public_key: None,
            certificate: None,
            secret_enc: Some(sealed),
        },
    )
    .await
}

/// Enrols a Yubico OTP key that the configured validation server checks
/// (charon stores no secret for it).
pub async fn enroll_otp_server(
    pool: &PgPool,
    login: &str,
    label: &str,
    public_id: &str,
) -> Result<KeyInfo> {
    let public_id = validate_public_id(public_id)?;
    insert(
        pool,
        Uuid::new_v4(),
        NewKey {
            login,
            factor: FactorKind::YubicoOtp,
            label,
            fingerprint: public_id.clone(),
            public_id: Some(public_id),
            public_key: None,
            certificate: None,
            secret_enc: None,
        },
    )
    .await
}

/// Enrols a FIDO security-key SSH key from its OpenSSH public key line
/// (`sk-ssh-ed25519@openssh.com AAAA... comment`).
pub async fn enroll_sk(
    pool: &PgPool,
    login: &str,
    label: &str,
    openssh_public_key: &str,
) -> Result<KeyInfo> {
    let rec = SkKeyRecord::from_openssh(openssh_public_key, None).map_err(invalid)?;
    let line = rec
        .public_key()
        .to_openssh()
        .map_err(|e| Error::InvalidInput(format!("cannot re-encode the public key: {e}")))?;
    insert(
        pool,
        Uuid::new_v4(),
        NewKey {
            login,
            factor: FactorKind::Sk,
            label,
            fingerprint: rec.fingerprint(),
            public_id: None,
            public_key: Some(line.into_bytes()),
            certificate: None,
            secret_enc: None,
        },
    )
    .await
}

/// Enrols a PIV key from the certificate of its slot (PEM, e.g.
/// `ykman piv certificates export 9a -`).
pub async fn enroll_piv(
    pool: &PgPool,
    login: &str,
    label: &str,
    certificate_pem: &str,
) -> Result<KeyInfo> {
    let rec = PivKeyRecord::from_certificate_pem(certificate_pem).map_err(invalid)?;
    insert(
        pool,
        Uuid::new_v4(),
        NewKey {
            login,
            factor: FactorKind::Piv,
            label,
            fingerprint: rec.key_id().to_string(),
            public_id: None,
            public_key: Some(rec.spki_der().to_vec()),
            certificate: Some(certificate_pem.trim()),
            secret_enc: None,
        },
    )
    .await
}

/// Enrols a software key (demo and tests; the authenticator refuses it
/// unless the deployment allows software keys).
pub async fn enroll_software(
    pool: &PgPool,
    login: &str,
    label: &str,
    key: &SoftwareKeyRecord,
) -> Result<KeyInfo> {
    insert(
        pool,
        Uuid::new_v4(),
        NewKey {
            login,
            factor: FactorKind::Software,
            label,
            fingerprint: key.key_id().to_string(),
            public_id: None,
            public_key: Some(key.public_bytes().to_vec()),
            certificate: None,
            secret_enc: None,
        },
    )
    .await
}

fn invalid(e: MfaError) -> Error {
    Error::InvalidInput(e.to_string())
}

type InfoRow = (
    Uuid,
    String,
    String,
    String,
    String,
    bool,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

const INFO_COLUMNS: &str = "id, login, factor, label, fingerprint,
    (factor = 'yubico_otp' AND secret_enc IS NULL), status, created_at, last_used_at, revoked_at";

fn factor_of(s: &str) -> Result<FactorKind> {
    // Fail closed on a factor the code does not know.
    FactorKind::parse(s).ok_or_else(|| Error::Forbidden(format!("unknown key factor `{s}`")))
}

fn info_from_row(r: InfoRow) -> Result<KeyInfo> {
    let (
        id,
        login,
        factor,
        label,
        fingerprint,
        server,
        status,
        created_at,
        last_used_at,
        revoked_at,
    ) = r;
    Ok(KeyInfo {
        id,
        login,
        factor: factor_of(&factor)?,
        label,
        fingerprint,
        validation_server: server,
        status: if status == "active" {
            KeyStatus::Active
        } else {
            KeyStatus::Revoked
        },
        created_at,
        last_used_at,
        revoked_at,
    })
}

/// One enrolment by id (active or revoked).
pub async fn get(pool: &PgPool, id: Uuid) -> Result<KeyInfo> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {INFO_COLUMNS} FROM operator_keys WHERE id = $1"
    ));
    let row: Option<InfoRow> = sqlx::query_as(sql).bind(id).fetch_optional(pool).await?;
    row.map(info_from_row)
        .transpose()?
        .ok_or_else(|| Error::NotFound(format!("no key {id}")))
}

/// Enrolments (active and revoked), of one operator or of all; never a secret.
pub async fn list(pool: &PgPool, login: Option<&str>) -> Result<Vec<KeyInfo>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {INFO_COLUMNS} FROM operator_keys
         WHERE ($1::text IS NULL OR login = $1)
         ORDER BY login, status, created_at, id"
    ));
    let rows: Vec<InfoRow> = sqlx::query_as(sql).bind(login).fetch_all(pool).await?;
    rows.into_iter().map(info_from_row).collect()
}

/// Revokes a key. The row stays, for the audit log.
pub async fn revoke(pool: &PgPool, id: Uuid) -> Result<KeyInfo> {
    let n = sqlx::query(
        "UPDATE operator_keys SET status = 'revoked', revoked_at = now()
         WHERE id = $1 AND status = 'active'",
    )
    .bind(id)
    .execute(pool)
    .await?
    .rows_affected();
    if n == 0 {
        let existing = get(pool, id).await?;
        return Err(Error::Conflict(format!(
            "key {id} of `{}` is already revoked",
            existing.login
        )));
    }
    get(pool, id).await
}

type KeyRow = (
    Uuid,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<i32>,
    Option<i32>,
    Option<i64>,
);

/// Active keys of operators that are not removed, matching `filter`, with
/// their OTP secrets decrypted (`master` is needed only for OTP keys that
/// have one).
pub async fn active_keys(
    pool: &PgPool,
    master: Option<&MasterKey>,
    filter: KeyFilter<'_>,
) -> Result<Vec<ActiveKey>> {
    let rows: Vec<KeyRow> = sqlx::query_as(
        "SELECT k.id, k.login, k.factor, k.label, k.fingerprint, k.public_id, k.public_key,
                k.secret_enc, k.last_session_counter, k.last_use_counter, k.last_sign_counter
         FROM operator_keys k JOIN operators o ON o.login = k.login
         WHERE k.status = 'active' AND o.status <> 'removed'
           AND ($1::text IS NULL OR k.login = $1)
           AND ($2::text IS NULL OR k.factor = $2)
           AND ($3::text IS NULL OR k.fingerprint = $3)
         ORDER BY k.login, k.created_at, k.id",
    )
    .bind(filter.login)
    .bind(filter.factor.map(FactorKind::as_str))
    .bind(filter.fingerprint)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| active_from_row(master, r))
        .collect()
}

/// An operator's active keys as the factor records the MFA core verifies
/// against (keys checked by the validation server are left out).
pub async fn enrolled_keys(
    pool: &PgPool,
    master: Option<&MasterKey>,
    login: &str,
) -> Result<Vec<(Uuid, EnrolledKey)>> {
    let keys = active_keys(
        pool,
        master,
        KeyFilter {
            login: Some(login),
            ..KeyFilter::default()
        },
    )
    .await?;
    Ok(keys
        .into_iter()
        .filter_map(|k| match k.check {
            KeyCheck::Local(e) => Some((k.id, e)),
            KeyCheck::ValidationServer { .. } => None,
        })
        .collect())
}

fn active_from_row(master: Option<&MasterKey>, r: KeyRow) -> Result<ActiveKey> {
    let (id, login, factor, label, fingerprint, public_id, public_key, secret_enc, sc, uc, sign) =
        r;
    let factor = factor_of(&factor)?;
    let broken = |why: String| {
        Error::Config(format!(
            "enrolled key {id} ({label}) of `{login}` cannot be used: {why}"
        ))
    };
    let otp_counter = match (sc, uc) {
        (Some(s), Some(u)) => Some((
            u16::try_from(s).map_err(|_| broken("stored counter out of range".into()))?,
            u8::try_from(u).map_err(|_| broken("stored counter out of range".into()))?,
        )),
        _ => None,
    };
    let check = match factor {
        FactorKind::YubicoOtp => {
            let public_id = public_id.ok_or_else(|| broken("no public id".into()))?;
            match secret_enc {
                None => KeyCheck::ValidationServer {
                    public_id,
                    last_counter: otp_counter,
                },
                Some(sealed) => {
                    let master = master.ok_or_else(|| {
                        broken(
                            "its OTP secret is sealed, and no master key is configured \
                             (set [mfa] master_key_file or CHARON_MASTER_KEY)"
                                .into(),
                        )
                    })?;
                    let plain = master
                        .open(&sealed, &otp_aad(id, &login, &public_id))
                        .map_err(|e| broken(e.to_string()))?;
                    let p = plain.expose();
                    if p.len() != SECRET_LEN {
                        return Err(broken("sealed secret has the wrong length".into()));
                    }
                    let mut aes = [0u8; 16];
                    aes.copy_from_slice(&p[..16]);
                    let mut uid = [0u8; 6];
                    uid.copy_from_slice(&p[16..]);
                    KeyCheck::Local(EnrolledKey::YubicoOtp(OtpKeyRecord {
                        public_id,
                        aes_key: AesKey::new(aes),
                        private_id: PrivateId::new(uid),
                        last_counter: otp_counter,
                    }))
                }
            }
        }
        FactorKind::Sk => {
            let bytes = public_key.ok_or_else(|| broken("no public key".into()))?;
            let line = String::from_utf8(bytes)
                .map_err(|_| broken("stored public key is not text".into()))?;
            let last = sign
                .map(u32::try_from)
                .transpose()
                .map_err(|_| broken("stored counter out of range".into()))?;
            KeyCheck::Local(EnrolledKey::Sk(
                SkKeyRecord::from_openssh(&line, last).map_err(|e| broken(e.to_string()))?,
            ))
        }
        FactorKind::Piv => {
            let der = public_key.ok_or_else(|| broken("no public key".into()))?;
            KeyCheck::Local(EnrolledKey::Piv(
                PivKeyRecord::from_spki_der(&der).map_err(|e| broken(e.to_string()))?,
            ))
        }
        FactorKind::Software => {
            let bytes = public_key.ok_or_else(|| broken("no public key".into()))?;
            let arr: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| broken("software public key is not 32 bytes".into()))?;
            KeyCheck::Local(EnrolledKey::Software(
                SoftwareKeyRecord::from_bytes(&arr).map_err(|e| broken(e.to_string()))?,
            ))
        }
    };
    Ok(ActiveKey {
        id,
        login,
        label,
        factor,
        fingerprint,
        check,
    })
}

/// Raises an OTP key's counter to `counter` if, and only if, it is above the
/// stored one (compare-and-set). `Ok(Err(Replayed))` when another use got
/// there first or the OTP is old.
pub async fn advance_otp_counter(
    pool: &PgPool,
    id: Uuid,
    counter: (u16, u8),
) -> Result<std::result::Result<(), MfaError>> {
    let (session, used) = (i32::from(counter.0), i32::from(counter.1));
    let row: Option<Uuid> = sqlx::query_scalar(
        "UPDATE operator_keys
         SET last_session_counter = $2, last_use_counter = $3, last_used_at = now()
         WHERE id = $1 AND status = 'active'
           AND (last_session_counter IS NULL
                OR (last_session_counter, last_use_counter) < ($2, $3))
         RETURNING id",
    )
    .bind(id)
    .bind(session)
    .bind(used)
    .fetch_optional(pool)
    .await?;
    if row.is_some() {
        return Ok(Ok(()));
    }
    let last: Option<(Option<i32>, Option<i32>, String)> = sqlx::query_as(
        "SELECT last_session_counter, last_use_counter, status FROM operator_keys WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    match last {
        Some((Some(s), Some(u), status)) if status == "active" => Ok(Err(MfaError::Replayed {
            got: counter,
            last: (
                u16::try_from(s).unwrap_or(u16::MAX),
                u8::try_from(u).unwrap_or(u8::MAX),
            ),
        })),
        _ => Err(Error::Forbidden(format!(
            "key {id} was revoked while it was being checked"
        ))),
    }
}

/// Raises an sk key's signature counter to `counter` if, and only if, it is
/// above the stored one (compare-and-set).
pub async fn advance_sign_counter(
    pool: &PgPool,
    id: Uuid,
    counter: u32,
) -> Result<std::result::Result<(), MfaError>> {
    let row: Option<Uuid> = sqlx::query_scalar(
        "UPDATE operator_keys SET last_sign_counter = $2, last_used_at = now()
         WHERE id = $1 AND status = 'active'
           AND (last_sign_counter IS NULL OR last_sign_counter < $2)
         RETURNING id",
    )
    .bind(id)
    .bind(i64::from(counter))
    .fetch_optional(pool)
    .await?;
    if row.is_some() {
        return Ok(Ok(()));
    }
    let last: Option<(Option<i64>, String)> =
        sqlx::query_as("SELECT last_sign_counter, status FROM operator_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    match last {
        Some((Some(l), status)) if status == "active" => Ok(Err(MfaError::CounterNotRising {
            got: counter,
            last: u32::try_from(l).unwrap_or(u32::MAX),
        })),
        _ => Err(Error::Forbidden(format!(
            "key {id} was revoked while it was being checked"
        ))),
    }
}

/// Notes a use of a key that has no counter (PIV, software).
pub async fn touch(pool: &PgPool, id: Uuid) -> Result<()> {
    let n = sqlx::query(
        "UPDATE operator_keys SET last_used_at = now() WHERE id = $1 AND status = 'active'",
    )
    .bind(id)
    .execute(pool)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(Error::Forbidden(format!(
            "key {id} was revoked while it was being checked"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_binds_id_login_and_public_id() {
        let id = Uuid::from_u128(1);
        let a = otp_aad(id, "alice", "vvcccccbdefg");
        assert_ne!(a, otp_aad(Uuid::from_u128(2), "alice", "vvcccccbdefg"));
        assert_ne!(a, otp_aad(id, "bob", "vvcccccbdefg"));
        assert_ne!(a, otp_aad(id, "alice", "vvcccccbdefh"));
        // The separator keeps login and public id apart.
        assert_ne!(otp_aad(id, "ab", "c"), otp_aad(id, "a", "bc"));
    }

    #[test]
    fn labels_and_public_ids_are_checked() {
        assert!(validate_label("yubikey 5c").is_ok());
        assert!(validate_label("").is_err());
        assert!(validate_label("a\x1b[2J").is_err());
        assert!(validate_label(&"x".repeat(101)).is_err());
        assert_eq!(
            validate_public_id(" VVCCCCCBDEFG ").unwrap(),
            "vvcccccbdefg"
        );
        assert!(validate_public_id("vvcccccbdef").is_err());
        assert!(validate_public_id("vvcccccbdefx").is_err());
    }
}
