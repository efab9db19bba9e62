//! Console administration as actions: operators, their keys, and the
//! bootstrap of the first admin. Each is an [`Action`](crate::core::action::Action)
//! dispatched (authorised for `admin`, stepped up, audited) like any other;
//! this module holds the values and runs them.

use std::fmt;

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::core::keys::{self, KeyInfo};
use crate::core::mfa::otp::{AesKey, PrivateId};
use crate::core::operators::{self, Operator};
use crate::core::secrets::MasterKey;
use crate::core::session::Role;
use crate::core::{Error, Result};

/// A key to enrol. Debug never shows a secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Enrolment {
    /// A Yubico OTP key checked offline: its AES key and private id are
    /// sealed under the master key.
    Otp {
        public_id: String,
        aes_key: [u8; 16],
        private_id: [u8; 6],
    },
    /// A Yubico OTP key checked by the configured validation server.
    OtpServer { public_id: String },
    /// A FIDO security-key SSH key (`sk-…@openssh.com`), OpenSSH public key line.
    Sk { openssh_public_key: String },
    /// A PIV key: the certificate of slot 9a or 9c, PEM.
    Piv { certificate_pem: String },
}

impl Enrolment {
    pub fn factor(&self) -> &'static str {
        match self {
            Enrolment::Otp { .. } | Enrolment::OtpServer { .. } => "yubico_otp",
            Enrolment::Sk { .. } => "sk",
            Enrolment::Piv { .. } => "piv",
        }
    }
}

impl fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Enrolment::Otp { public_id, .. } => {
                write!(f, "Otp {{ public_id: {public_id}, secret: *** }}")
            }
            Enrolment::OtpServer { public_id } => write!(f, "OtpServer {{ {public_id} }}"),
            Enrolment::Sk { .. } => f.write_str("Sk { .. }"),
            Enrolment::Piv { .. } => f.write_str("Piv { .. }"),
        }
    }
}

/// What an admin action produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum AdminReply {
    Operator(Operator),
    Operators(Vec<Operator>),
    Key(KeyInfo),
    Keys(Vec<KeyInfo>),
    Done { what: String },
}

pub async fn enroll(
    pool: &PgPool,
    master: Option<&MasterKey>,
    login: &str,
    label: &str,
    how: &Enrolment,
) -> Result<KeyInfo> {
    match how {
        Enrolment::Otp {
            public_id,
            aes_key,
            private_id,
        } => {
            let master = master.ok_or_else(|| {
                Error::Config(
                    "enrolling an offline OTP key needs the master key: set [mfa] master_key_file or CHARON_MASTER_KEY".into(),
                )
            })?;
            keys::enroll_otp(
                pool,
                master,
                login,
                label,
                public_id,
                &AesKey::new(*aes_key),
                &PrivateId::new(*private_id),
            )
            .await
        }
        Enrolment::OtpServer { public_id } => {
            keys::enroll_otp_server(pool, login, label, public_id).await
        }
        Enrolment::Sk { openssh_public_key } => {
            keys::enroll_sk(pool, login, label, openssh_public_key).await
        }
        Enrolment::Piv { certificate_pem } => {
            keys::enroll_piv(pool, login, label, certificate_pem).await
        }
    }
}

/// The first admin and their first key, in one go. Works only while the
/// operator table is empty (so it needs no MFA: there is nobody to ask).
pub async fn bootstrap(
    pool: &PgPool,
    master: Option<&MasterKey>,
    login: &str,
    display_name: &str,
    how: &Enrolment,
) -> Result<(Operator, KeyInfo)> {
    let op = operators::bootstrap(pool, login, display_name).await?;
    match enroll(pool, master, login, "first key", how).await {
        Ok(key) => Ok((op, key)),
        Err(e) => {
            // Without a key the admin could never pass the gate: undo, so
            // that bootstrap can be run again.
            let _ =
                sqlx::query("DELETE FROM operators WHERE login = $1 AND created_by = 'bootstrap'")
                    .bind(login)
                    .execute(pool)
                    .await;
            Err(e)
        }
    }
}

/// Parses an operator role typed by an admin.
pub fn parse_role(s: &str) -> Result<Role> {
    Role::parse(s).ok_or_else(|| {
        Error::InvalidInput(format!(
            "unknown role `{s}`: one of support, compliance, sre, auditor, admin"
        ))
    })
}

/// Reads an OTP key's secret file: `AES_KEY_HEX PRIVATE_ID_HEX` (32 and 12
/// hex digits), mode 0600 or 0400.
pub fn read_otp_secret(path: &std::path::Path) -> Result<([u8; 16], [u8; 6])> {
    let text = crate::core::secrets::read_protected_file(path, "OTP secret file")?;
    let mut parts = text.split_whitespace();
    let (Some(aes), Some(pid), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Error::InvalidInput(format!(
            "{}: expected `AES_KEY_HEX PRIVATE_ID_HEX`",
            path.display()
        )));
    };
    let bad = |what: &str| {
        Error::InvalidInput(format!(
            "{}: {what} is not valid hex of the right length",
            path.display()
        ))
    };
    let aes: [u8; 16] = hex::decode(aes)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| bad("the AES key (32 hex digits)"))?;
    let pid: [u8; 6] = hex::decode(pid)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| bad("the private id (12 hex digits)"))?;
    Ok((aes, pid))
}

/// Ids are parsed before they reach the database.
pub fn parse_key_id(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s.trim()).map_err(|_| Error::InvalidInput(format!("`{s}` is not a key id")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_secret() {
        let e = Enrolment::Otp {
            public_id: "cccccbhkevbl".into(),
            aes_key: [0xab; 16],
            private_id: [0xcd; 6],
        };
        let d = format!("{e:?}");
        for secret in ["abab", "171", "cdcd", "205"] {
            assert!(!d.contains(secret), "{d}");
        }
    }

    #[test]
    fn otp_secret_file_is_checked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("otp.secret");
        std::fs::write(&p, format!("{} {}\n", "11".repeat(16), "010203040506"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(read_otp_secret(&p).is_err(), "0644 refused");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
        let (aes, pid) = read_otp_secret(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(aes, [0x11; 16]);
        assert_eq!(pid, [1, 2, 3, 4, 5, 6]);
    }
}
