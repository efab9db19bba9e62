//! Secrets at rest: files that must be readable by charon's account only,
//! and the master key that seals the OTP secrets stored in the console
//! database.
//!
//! Sealed format (AES-256-GCM):
//!
//! ```text
//! nonce (12 random bytes) || ciphertext || tag (16 bytes)
//! ```
//!
//! The associated data names the row the secret belongs to (see
//! `keys::otp_aad`), so a sealed secret copied into another row does not
//! decrypt there.

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use rand::RngCore;

use crate::core::mfa::Secret;
use crate::core::{Error, Result};

/// The environment variable that may hold the master key (64 hex digits).
pub const MASTER_KEY_ENV: &str = "CHARON_MASTER_KEY";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Larger protected files are not secrets but mistakes.
const MAX_PROTECTED_FILE: u64 = 64 * 1024;

/// Reads a secret file that must be readable by its owner only: mode 0600
/// or 0400, a regular file. `what` names it in messages ("master key file").
/// The mode is checked on the opened file, not on the path, so the file
/// cannot be swapped between the check and the read.
pub fn read_protected_file(path: &Path, what: &str) -> Result<String> {
    let shown = path.display();
    let mut file = std::fs::File::open(path)
        .map_err(|e| Error::Config(format!("{what} {shown}: cannot open: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::Config(format!("{what} {shown}: cannot stat: {e}")))?;
    if !meta.is_file() {
        return Err(Error::Config(format!("{what} {shown}: not a regular file")));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode != 0o600 && mode != 0o400 {
        return Err(Error::Config(format!(
            "{what} {shown} has mode {mode:04o}; it must be readable by its owner only \
             (0600 or 0400): chmod 600 {shown}"
        )));
    }
    if meta.len() > MAX_PROTECTED_FILE {
        return Err(Error::Config(format!(
            "{what} {shown}: {} bytes is too large for a key file",
            meta.len()
        )));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| Error::Config(format!("{what} {shown}: cannot read: {e}")))?;
    Ok(text)
}

/// Why a sealed secret could not be opened. Deliberately vague between the
/// cases AES-GCM cannot tell apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed secret is truncated ({0} bytes)")]
    Truncated(usize),
    #[error(
        "sealed secret does not decrypt: wrong master key, or the stored value was altered or copied from another row"
    )]
    Undecryptable,
    #[error("secret too large to seal")]
    TooLarge,
}

/// The 256-bit key that seals secrets stored in the console database.
/// `Debug` prints a mask.
#[derive(Clone)]
pub struct MasterKey(Secret<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    pub fn new(bytes: [u8; 32]) -> MasterKey {
        MasterKey(Secret::new(bytes))
    }

    /// A fresh random key (demo, tests, and `charon` printing one for a new
    /// deployment).
    pub fn generate() -> MasterKey {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        MasterKey::new(k)
    }

    /// From 64 hex digits (surrounding white space ignored). `source` names
    /// where it came from in the error, never the value.
    pub fn from_hex(text: &str, source: &str) -> Result<MasterKey> {
        let mut k = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut k).map_err(|_| {
            Error::Config(format!(
                "{source}: the master key must be 64 hex digits (32 bytes), e.g. from `openssl rand -hex 32`"
            ))
        })?;
        Ok(MasterKey::new(k))
    }

    /// From a file holding 64 hex digits, mode 0600 or 0400.
    pub fn from_file(path: &Path) -> Result<MasterKey> {
        let text = read_protected_file(path, "master key file")?;
        MasterKey::from_hex(&text, &format!("master key file {}", path.display()))
    }

    /// The key for this deployment: the configured file, else
    /// `CHARON_MASTER_KEY`; `None` when neither is set. Both set is refused
    /// rather than silently preferring one.
    pub fn load(
        configured_file: Option<&Path>,
        env_value: Option<&str>,
    ) -> Result<Option<MasterKey>> {
        let env_value = env_value.filter(|v| !v.trim().is_empty());
        match (configured_file, env_value) {
            (Some(p), Some(_)) => Err(Error::Config(format!(
                "both [mfa] master_key_file ({}) and {MASTER_KEY_ENV} are set; use one of them",
                p.display()
            ))),
            (Some(p), None) => MasterKey::from_file(p).map(Some),
            (None, Some(v)) => MasterKey::from_hex(v, MASTER_KEY_ENV).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// [`MasterKey::load`] with the process environment.
    pub fn load_env(configured_file: Option<&Path>) -> Result<Option<MasterKey>> {
        let env = std::env::var(MASTER_KEY_ENV).ok();
        MasterKey::load(configured_file, env.as_deref())
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.expose().into())
    }

    /// Encrypts `plain` bound to `aad`: random 96-bit nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> std::result::Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
            .map_err(|_| SealError::TooLarge)?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypts what [`MasterKey::seal`] made with the same `aad`.
    pub fn open(
        &self,
        sealed: &[u8],
        aad: &[u8],
    ) -> std::result::Result<Secret<Vec<u8>>, SealError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Truncated(sealed.len()));
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map(Secret::new)
            .map_err(|_| SealError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn file_with_mode(content: &str, mode: u32) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        f
    }

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn seal_open_round_trip_with_fresh_nonces() {
        let k = MasterKey::generate();
        let a = k.seal(b"secret bytes", b"row 1").unwrap();
        let b = k.seal(b"secret bytes", b"row 1").unwrap();
        assert_ne!(a, b, "nonce must be fresh");
        assert_eq!(a.len(), NONCE_LEN + 12 + TAG_LEN);
        assert_eq!(k.open(&a, b"row 1").unwrap().expose(), b"secret bytes");
        assert_eq!(k.open(&b, b"row 1").unwrap().expose(), b"secret bytes");
    }

    #[test]
    fn wrong_key_tamper_and_other_aad_fail() {
        let k = MasterKey::generate();
        let sealed = k.seal(b"secret", b"key-1/alice").unwrap();
        assert_eq!(
            MasterKey::generate()
                .open(&sealed, b"key-1/alice")
                .unwrap_err(),
            SealError::Undecryptable
        );
        assert_eq!(
            k.open(&sealed, b"key-2/alice").unwrap_err(),
            SealError::Undecryptable
        );
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert_eq!(
                k.open(&t, b"key-1/alice").unwrap_err(),
                SealError::Undecryptable,
                "byte {i}"
            );
        }
        assert_eq!(
            k.open(&sealed[..20], b"key-1/alice").unwrap_err(),
            SealError::Truncated(20)
        );
    }

    #[test]
    fn master_key_from_file_checks_mode() {
        for mode in [0o600, 0o400] {
            let f = file_with_mode(&format!("{HEX}\n"), mode);
            let k = MasterKey::from_file(f.path()).unwrap();
            assert_eq!(k.0.expose()[31], 0x1f);
        }
        for mode in [0o644, 0o640, 0o604, 0o700, 0o666] {
            let f = file_with_mode(HEX, mode);
            let e = MasterKey::from_file(f.path()).unwrap_err().to_string();
            assert!(e.contains(&f.path().display().to_string()), "{e}");
            assert!(e.contains(&format!("mode {mode:04o}")), "{e}");
            assert!(e.contains("master key file"), "{e}");
            assert!(!e.contains(HEX), "{e}");
        }
        let e = read_protected_file(Path::new("/nonexistent/charon.key"), "API key file")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("API key file /nonexistent/charon.key: cannot open"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = read_protected_file(dir.path(), "key file")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn master_key_hex_errors_never_show_the_value() {
        let f = file_with_mode("not-hex-but-secret", 0o600);
        let e = MasterKey::from_file(f.path()).unwrap_err().to_string();
        assert!(e.contains("64 hex digits"), "{e}");
        assert!(!e.contains("not-hex-but-secret"), "{e}");
        let e = MasterKey::from_hex(&HEX[..62], MASTER_KEY_ENV)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("CHARON_MASTER_KEY:"), "{e}");
    }

    #[test]
    fn load_prefers_neither_silently() {
        let f = file_with_mode(HEX, 0o600);
        assert!(MasterKey::load(None, None).unwrap().is_none());
        assert!(MasterKey::load(None, Some("  ")).unwrap().is_none());
        assert!(MasterKey::load(Some(f.path()), None).unwrap().is_some());
        assert!(MasterKey::load(None, Some(HEX)).unwrap().is_some());
        let e = MasterKey::load(Some(f.path()), Some(HEX))
            .unwrap_err()
            .to_string();
        assert!(e.contains("both"), "{e}");
    }

    #[test]
    fn debug_is_masked() {
        let k = MasterKey::from_hex(HEX, "test").unwrap();
        assert_eq!(format!("{k:?}"), "MasterKey(***)");
    }
}
