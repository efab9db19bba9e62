//! The `ssh` backup source: a directory of `pg_dump -Fc` archives (with
//! `.sha256` files) on a backup host, reached with the `openssh` crate.
//!
//! - Host keys are always checked (`StrictHostKeyChecking=yes` against the
//!   configured `known_hosts` file), the user's ssh configuration is ignored
//!   (`-F /dev/null`), and there are no prompts (`BatchMode=yes`, set by the
//!   crate): a missing or wrong key fails instead of asking.
//! - Listing runs one `sh` script on the host that prints each archive's
//!   size, its `.sha256` line and the first 4 KiB of the archive in hex (the
//!   header holds the creation time, parsed locally).
//! - The archive is streamed once (`cat`) into a local temporary file while
//!   it is hashed: the checksum is checked on exactly the bytes that are
//!   restored, and `pg_restore -j` gets the seekable file it needs. The file
//!   is removed when the test ends (also on failure or cancel). Nothing is
//!   written on the backup host.

use std::path::{Path, PathBuf};
use std::time::Duration;

use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::source::{Backup, parse_archive_header, parse_sha256_file};
use crate::core::{Error, Result};

/// A directory of archives on a backup host.
#[derive(Debug, Clone)]
pub struct SshSource {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The private key charon logs in with (never a password).
    pub identity_file: PathBuf,
    /// The only known-hosts file consulted; the host's key must be in it.
    pub known_hosts: PathBuf,
    /// The directory on the host.
    pub path: String,
    pub connect_timeout: Duration,
    pub pg_bin_dir: Option<PathBuf>,
}

/// The listing script: `$1` is the directory. One block per archive:
/// `F<TAB>size<TAB>name`, `S<TAB>first line of NAME.sha256` (if any),
/// `H<TAB>hex of the first 4 KiB`.
const LIST_SCRIPT: &str = r#"cd -- "$1" || exit 3
for f in *.dump; do
  [ -f "$f" ] || continue
  printf 'F\t%s\t%s\n' "$(wc -c < "$f" | tr -d ' ')" "$f"
  if [ -f "$f.sha256" ]; then printf 'S\t%s\n' "$(head -c 256 "$f.sha256" | head -n 1)"; fi
  printf 'H\t%s\n' "$(head -c 4096 "$f" | od -An -v -tx1 | tr -d ' \n')"
done"#;

impl SshSource {
    /// Opens a connection (one ssh master process, multiplexed).
    pub async fn connect(&self) -> std::result::Result<Session, String> {
        let mut b = SessionBuilder::default();
        b.user(self.user.clone())
            .port(self.port)
            .keyfile(&self.identity_file)
            .known_hosts_check(KnownHosts::Strict)
            .user_known_hosts_file(&self.known_hosts)
            .config_file("/dev/null")
            .connect_timeout(self.connect_timeout)
            .control_directory(std::env::temp_dir());
        b.connect_mux(&self.host).await.map_err(|e| {
            format!(
                "cannot connect to {}@{} port {}: {}",
                self.user,
                self.host,
                self.port,
                error_chain(&e)
            )
        })
    }

    fn unavailable(&self, why: String) -> Error {
        Error::Io(std::io::Error::other(format!(
            "backup source `{}`: {why}",
            self.name
        )))
    }

    /// Every `*.dump` archive in the directory, oldest first.
    pub async fn list(&self) -> Result<Vec<Backup>> {
        let session = self.connect().await.map_err(|e| self.unavailable(e))?;
        let out = session
            .command("sh")
            .arg("-c")
            .arg(LIST_SCRIPT)
            .arg("charon-list")
            .arg(&self.path)
            .output()
            .await;
        let _ = session.close().await;
        let out =
            out.map_err(|e| self.unavailable(format!("listing failed: {}", error_chain(&e))))?;
        if !out.status.success() {
            return Err(self.unavailable(format!(
                "cannot list {} on {}: {}",
                self.path,
                self.host,
                super::tools::tail(&String::from_utf8_lossy(&out.stderr))
            )));
        }
        let mut list = parse_listing(&self.path, &String::from_utf8_lossy(&out.stdout));
        list.sort_by(|a, b| (a.taken_at, &a.id).cmp(&(b.taken_at, &b.id)));
        Ok(list)
    }

    /// Streams the archive into `dest` (created new), hashing it on the
    /// way; returns the SHA-256 of the bytes written. `bytes` hears the
    /// running total.
    pub async fn fetch(
        &self,
        backup: &Backup,
        dest: &Path,
        bytes: &(dyn Fn(u64) + Sync),
    ) -> std::result::Result<String, String> {
        let session = self.connect().await?;
        let result = self.fetch_over(&session, backup, dest, bytes).await;
        let _ = session.close().await;
        result
    }

    async fn fetch_over(
        &self,
        session: &Session,
        backup: &Backup,
        dest: &Path,
        bytes: &(dyn Fn(u64) + Sync),
    ) -> std::result::Result<String, String> {
        let remote = backup.path.to_string_lossy().to_string();
        let mut child = session
            .command("cat")
            .arg("--")
            .arg(&remote)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .map_err(|e| format!("cannot start cat on the backup host: {}", error_chain(&e)))?;
        let mut stdout = child
            .stdout()
            .take()
            .ok_or_else(|| "no output stream from the backup host".to_string())?;
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .await
            .map_err(|e| format!("cannot create the local copy {}: {e}", dest.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = stdout
                .read(&mut buf)
                .await
                .map_err(|e| format!("reading from the backup host: {e}"))?;
            if n == 0 {
                break;
            }
            let chunk = buf.get(..n).unwrap_or_default();
            hasher.update(chunk);
            file.write_all(chunk)
                .await
                .map_err(|e| format!("writing the local copy: {e}"))?;
            total += n as u64;
            bytes(total);
        }
        file.flush()
            .await
            .map_err(|e| format!("writing the local copy: {e}"))?;
        drop(stdout);
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| format!("cat on the backup host: {}", error_chain(&e)))?;
        if !out.status.success() {
            return Err(format!(
                "cat {remote} failed on the backup host: {}",
                super::tools::tail(&String::from_utf8_lossy(&out.stderr))
            ));
        }
        Ok(hex::encode(hasher.finalize()))
    }
}

/// An error with its sources, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let more = c.to_string();
        if !s.contains(&more) {
            s.push_str(": ");
            s.push_str(more.trim());
        }
        cur = c.source();
    }
    s.replace('\n', " ")
}

/// Parses the listing script's output.
pub fn parse_listing(dir: &str, text: &str) -> Vec<Backup> {
    let mut out: Vec<Backup> = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, '\t');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("F"), Some(size), Some(name)) => {
                // Names with control characters are not archives charon touches.
                if name.chars().any(char::is_control) || name.contains('/') {
                    continue;
                }
                out.push(Backup {
                    id: name.to_string(),
                    path: PathBuf::from(format!("{}/{name}", dir.trim_end_matches('/'))),
                    size: size.trim().parse().unwrap_or(0),
                    sha256_expected: None,
                    taken_at: None,
                    header_error: Some("no header read".into()),
                });
            }
            (Some("S"), Some(sum), rest) => {
                if let Some(b) = out.last_mut() {
                    let text = match rest {
                        Some(r) => format!("{sum}\t{r}"),
                        None => sum.to_string(),
                    };
                    b.sha256_expected = parse_sha256_file(&text);
                }
            }
            (Some("H"), hex_text, _) => {
                if let Some(b) = out.last_mut() {
                    let parsed = hex::decode(hex_text.unwrap_or("").trim())
                        .map_err(|e| format!("header bytes unreadable: {e}"))
                        .and_then(|bytes| parse_archive_header(&bytes));
                    match parsed {
                        Ok(t) => {
                            b.taken_at = Some(t);
                            b.header_error = None;
                        }
                        Err(e) => b.header_error = Some(e),
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_is_parsed() {
        let text = format!(
            "F\t12\ta.dump\nS\t{}  a.dump\nH\t00\nF\t3\tb.dump\nH\t\n",
            "ab".repeat(32)
        );
        let l = parse_listing("/srv/b/", &text);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].path, PathBuf::from("/srv/b/a.dump"));
        assert_eq!(l[0].size, 12);
        assert_eq!(l[0].sha256_expected, Some("ab".repeat(32)));
        assert!(l[0].header_error.is_some());
        assert_eq!(l[1].sha256_expected, None);
    }
}
