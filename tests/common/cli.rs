//! The real `charon` binary for CLI tests, and a Yubico OTP key that types
//! valid OTPs for it.

use std::io::Write;
use std::process::{Command, Stdio};

use charon::core::config::DbUrl;
use charon::core::keys;
use charon::core::mfa::otp::{self, AesKey, OtpToken, PrivateId};
use charon::core::secrets::MasterKey;
use sqlx::PgPool;

/// The real binary, configured for a setup's two databases, with the audit
/// key and the master key in its environment (as a deployment passes them).
pub struct Binary {
    pub dir: tempfile::TempDir,
    pub cfg: std::path::PathBuf,
    pub master: [u8; 32],
}

impl Binary {
    pub fn new(pluto: &DbUrl, console: &DbUrl, master: [u8; 32]) -> Binary {
        Binary::with_config(pluto, console, master, "")
    }

    /// With more configuration (TOML appended after the database URLs).
    pub fn with_config(pluto: &DbUrl, console: &DbUrl, master: [u8; 32], extra: &str) -> Binary {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.toml");
        std::fs::write(
            &cfg,
            format!(
                "environment = \"ci\"\npluto_url = \"{}\"\nconsole_url = \"{}\"\n{extra}\n",
                pluto.expose(),
                console.expose()
            ),
        )
        .unwrap();
        Binary { dir, cfg, master }
    }

    /// `charon --config CFG ARGS…` with the keys in its environment, not
    /// started yet.
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_charon"));
        c.arg("--config")
            .arg(&self.cfg)
            .args(args)
            .env("CHARON_AUDIT_KEY", "ab".repeat(32))
            .env("CHARON_MASTER_KEY", hex::encode(self.master));
        c
    }

    /// Runs `charon --config CFG ARGS…` with `stdin`; (exit code, stdout, stderr).
    pub fn run<S: AsRef<std::ffi::OsStr>>(
        &self,
        args: &[S],
        stdin: &str,
    ) -> (Option<i32>, String, String) {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }
}

/// A Yubico OTP key as the tests use it: enrolled for an operator, and the
/// OTPs it types (the session counter counts up with `n`).
pub struct TestOtpKey {
    pub public_id: &'static str,
    pub aes: [u8; 16],
    pub private_id: [u8; 6],
}

impl TestOtpKey {
    pub async fn enroll(&self, console: &PgPool, master: [u8; 32], login: &str) {
        keys::enroll_otp(
            console,
            &MasterKey::new(master),
            login,
            "key",
            self.public_id,
            &AesKey::new(self.aes),
            &PrivateId::new(self.private_id),
        )
        .await
        .unwrap();
    }

    pub fn otp(&self, n: u8) -> String {
        otp::generate_otp(
            self.public_id,
            &AesKey::new(self.aes),
            &OtpToken {
                private_id: PrivateId::new(self.private_id),
                usage_counter: 1,
                timestamp: 500 + u32::from(n),
                session_use: n,
                random: 7,
            },
        )
        .unwrap()
    }
}
