//! The HMAC key of the audit chain. It comes from a file named in the
//! configuration (mode 0600 or 0400, checked) or from the environment variable
//! `CHARON_AUDIT_KEY` (hex); never from the database, so that a database
//! administrator cannot rewrite the chain and recompute its hashes.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::core::{Error, Result};

/// The environment variable holding the key (hex) when no key file is configured.
pub const KEY_ENV: &str = "CHARON_AUDIT_KEY";

/// Shortest accepted key, in bytes (HMAC-SHA256's block-size-independent
/// recommendation: at least the output length).
pub const MIN_KEY_BYTES: usize = 32;

/// The audit HMAC key. Debug and Display print a mask and the key's id.
#[derive(Clone)]
pub struct AuditKey {
    bytes: Vec<u8>,
    /// HMAC state with the key already absorbed; cloned for each message.
    prepared: Hmac<Sha256>,
}

impl AuditKey {
    /// A key from hex text (whitespace around it is ignored).
    pub fn from_hex(text: &str) -> Result<AuditKey> {
        let bytes = hex::decode(text.trim())
            .map_err(|e| Error::Config(format!("audit key is not valid hex: {e}")))?;
        AuditKey::from_bytes(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<AuditKey> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(Error::Config(format!(
                "audit key is too short: {} bytes, at least {MIN_KEY_BYTES} needed",
                bytes.len()
            )));
        }
        AuditKey::keyed(bytes)
    }

    fn keyed(bytes: Vec<u8>) -> Result<AuditKey> {
        let prepared = Hmac::<Sha256>::new_from_slice(&bytes)
            .map_err(|e| Error::Config(format!("audit key refused by HMAC: {e}")))?;
        Ok(AuditKey { bytes, prepared })
    }

    /// Reads a key file holding the key in hex. Refuses a file whose mode is
    /// anything but 0600 or 0400, naming the file and its mode.
    pub fn from_file(path: &Path) -> Result<AuditKey> {
        let meta = std::fs::metadata(path).map_err(|e| {
            Error::Config(format!(
                "audit key file {}: cannot read: {e}",
                path.display()
            ))
        })?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode != 0o600 && mode != 0o400 {
            return Err(Error::Config(format!(
                "audit key file {} has mode {mode:04o}; it must be 0600 or 0400 (chmod 600 {})",
                path.display(),
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "audit key file {}: cannot read: {e}",
                path.display()
            ))
        })?;
        AuditKey::from_hex(&text)
            .map_err(|e| Error::Config(format!("audit key file {}: {e}", path.display())))
    }

    /// The key from `CHARON_AUDIT_KEY`, if the variable is set.
    pub fn from_env() -> Result<Option<AuditKey>> {
        match std::env::var(KEY_ENV) {
            Ok(v) if !v.trim().is_empty() => AuditKey::from_hex(&v)
                .map(Some)
                .map_err(|e| Error::Config(format!("{KEY_ENV}: {e}"))),
            _ => Ok(None),
        }
    }

    /// A fresh random key, for the demo and tests. A chain written with it
    /// cannot be verified once the key is gone.
    pub fn generate() -> Result<AuditKey> {
        let mut bytes = vec![0u8; MIN_KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        AuditKey::keyed(bytes)
    }

    /// A short public fingerprint of the key (not the key): the first 8 bytes
    /// of SHA-256("charon-audit-key-id\0" ‖ key), in hex. Safe to print.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"charon-audit-key-id\0");
        h.update(&self.bytes);
        hex::encode(&h.finalize()[..8])
    }

    /// HMAC-SHA256 of `message` under this key.
    pub fn mac(&self, message: &[u8]) -> [u8; 32] {
        let mut m = self.prepared.clone();
        m.update(message);
        m.finalize().into_bytes().into()
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuditKey(***, id {})", self.id())
    }
}

impl fmt::Display for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "audit key {}", self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn key_file(mode: u32) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "{HEX}").unwrap();
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        f
    }

    #[test]
    fn file_with_mode_0600_or_0400_is_accepted() {
        for mode in [0o600, 0o400] {
            let f = key_file(mode);
            let k = AuditKey::from_file(f.path()).unwrap();
            assert_eq!(k.id(), AuditKey::from_hex(HEX).unwrap().id());
        }
    }

    #[test]
    fn file_readable_by_others_is_refused_naming_file_and_mode() {
        for mode in [0o644, 0o640, 0o660, 0o700, 0o604] {
            let f = key_file(mode);
            let e = AuditKey::from_file(f.path()).unwrap_err().to_string();
            assert!(e.contains(&f.path().display().to_string()), "{e}");
            assert!(e.contains(&format!("{mode:04o}")), "{e}");
        }
    }

    #[test]
    fn short_or_bad_hex_is_refused() {
        assert!(AuditKey::from_hex("abcd").is_err());
        assert!(AuditKey::from_hex("zz").is_err());
    }

    #[test]
    fn debug_and_display_never_print_the_key() {
        let k = AuditKey::from_hex(HEX).unwrap();
        let shown = format!("{k:?} {k}");
        assert!(!shown.contains("00112233"), "{shown}");
        // Each form names the key by its id, so that logs tell keys apart.
        assert_eq!(format!("{k:?}"), format!("AuditKey(***, id {})", k.id()));
        assert_eq!(k.to_string(), format!("audit key {}", k.id()));
        assert_eq!(k.id().len(), 16);
        assert_ne!(k.id(), AuditKey::generate().unwrap().id());
    }

    #[test]
    fn mac_matches_rfc4231_case_2() {
        // RFC 4231 test case 2 uses a 4-byte key; build the MAC directly.
        let k = AuditKey::keyed(b"Jefe".to_vec()).unwrap();
        assert_eq!(
            hex::encode(k.mac(b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_directory_with_mode_0600_is_refused_as_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.d");
        std::fs::create_dir(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = AuditKey::from_file(&path).unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("cannot read"), "{e}");
        assert!(e.contains("key.d"), "{e}");
    }

    /// `CHARON_AUDIT_KEY` is read in a child process (this test binary run
    /// again for this one test, with the variable set), as setting the
    /// environment of a running multi-threaded test process is not sound.
    #[test]
    fn the_key_comes_from_the_environment_and_a_bad_one_is_refused_unquoted() {
        const CHILD: &str = "CHARON_TEST_AUDIT_KEY_CHILD";
        const NAME: &str = "core::audit::key::tests::the_key_comes_from_the_environment_and_a_bad_one_is_refused_unquoted";
        if let Some(expect) = std::env::var_os(CHILD) {
            match (expect.to_str(), AuditKey::from_env()) {
                (Some("key"), Ok(Some(k))) => {
                    assert_eq!(k.id(), AuditKey::from_hex(&"c3".repeat(32)).unwrap().id());
                }
                (Some("blank"), Ok(None)) => {}
                (Some("bad"), Err(Error::Config(m))) => {
                    assert!(m.starts_with("CHARON_AUDIT_KEY: "), "{m}");
                    assert!(!m.contains("zz-not-hex"), "the value is quoted: {m}");
                }
                (what, got) => panic!("{what:?}: {got:?}"),
            }
            return;
        }
        for (case, value) in [
            ("key", "c3".repeat(32)),
            ("blank", "   ".into()),
            ("bad", format!("zz-not-hex{}", "0".repeat(60))),
        ] {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
                .env(CHILD, case)
                .env(KEY_ENV, value)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && text.contains("1 passed"),
                "{case}: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn no_key_in_the_environment_is_none() {
        // No test sets CHARON_AUDIT_KEY; the process runs without it.
        if std::env::var_os(KEY_ENV).is_none() {
            assert!(AuditKey::from_env().unwrap().is_none());
        }
    }
}
