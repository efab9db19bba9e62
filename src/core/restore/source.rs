//! Backup sources. Only `dir` exists so far: a directory of `pg_dump -Fc`
//! archives (`*.dump`), each with a `NAME.dump.sha256` beside it.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::tools;
use crate::core::{Error, Result};

/// One backup as listed by a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backup {
    /// The archive's file name (e.g. `pluto-2026-11-24T0100.dump`).
    pub id: String,
    pub path: PathBuf,
    pub size: u64,
    /// Lower-case hex from the `.sha256` file beside the archive; `None` when
    /// that file is missing or does not hold a SHA-256.
    pub sha256_expected: Option<String>,
    /// When the dump started, read from the archive's own header
    /// (`pg_restore --list`), not from the file name. `None` when the header
    /// cannot be read; `header_error` then says why.
    pub taken_at: Option<DateTime<Utc>>,
    pub header_error: Option<String>,
}

/// A directory of `pg_dump -Fc` archives with checksums.
#[derive(Debug, Clone)]
pub struct DirSource {
    /// The name the source has in the configuration (for reports).
    pub name: String,
    pub path: PathBuf,
    /// Where `pg_restore` is looked for first (else `PATH`, else
    /// `/usr/lib/postgresql/*/bin`).
    pub pg_bin_dir: Option<PathBuf>,
}

impl DirSource {
    pub fn new(name: &str, path: impl Into<PathBuf>) -> DirSource {
        DirSource {
            name: name.to_string(),
            path: path.into(),
            pg_bin_dir: None,
        }
    }

    /// Every `*.dump` archive in the directory, oldest first (by the time in
    /// the archive header; unreadable headers first).
    pub async fn list(&self) -> Result<Vec<Backup>> {
        let mut out = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.path).await.map_err(|e| {
            Error::Config(format!(
                "backup source `{}`: cannot read directory {}: {e}",
                self.name,
                self.path.display()
            ))
        })?;
        while let Some(entry) = entries.next_entry().await? {
            let path = entry.path();
            let Some(id) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !id.ends_with(".dump") || !entry.file_type().await?.is_file() {
                continue;
            }
            out.push(self.describe(&path).await?);
        }
        out.sort_by(|a, b| (a.taken_at, &a.id).cmp(&(b.taken_at, &b.id)));
        Ok(out)
    }

    /// The newest backup, if any.
    pub async fn latest(&self) -> Result<Option<Backup>> {
        Ok(self.list().await?.pop())
    }

    /// The backup with this id (file name).
    pub async fn get(&self, id: &str) -> Result<Backup> {
        self.list()
            .await?
            .into_iter()
            .find(|b| b.id == id)
            .ok_or_else(|| Error::NotFound(format!("backup `{id}` in source `{}`", self.name)))
    }

    async fn describe(&self, path: &Path) -> Result<Backup> {
        let id = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let size = tokio::fs::metadata(path).await?.len();
        let mut sum_path = path.as_os_str().to_owned();
        sum_path.push(".sha256");
        let sha256_expected = match tokio::fs::read_to_string(PathBuf::from(sum_path)).await {
            Ok(text) => parse_sha256_file(&text),
            Err(_) => None,
        };
        let (taken_at, header_error) =
            match archive_created_at(self.pg_bin_dir.as_deref(), path).await {
                Ok(t) => (Some(t), None),
                Err(e) => (None, Some(e)),
            };
        Ok(Backup {
            id,
            path: path.to_path_buf(),
            size,
            sha256_expected,
            taken_at,
            header_error,
        })
    }
}

/// The hash in a `sha256sum`-style file (`HEX  NAME` or just `HEX`).
pub fn parse_sha256_file(text: &str) -> Option<String> {
    let first = text.split_whitespace().next()?;
    (first.len() == 64 && first.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| first.to_ascii_lowercase())
}

/// SHA-256 of a file, read in 1 MiB chunks; `bytes` is called with the
/// running total after each chunk.
pub async fn sha256_file(path: &Path, bytes: &(dyn Fn(u64) + Sync)) -> Result<String> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(buf.get(..n).unwrap_or_default());
        total += n as u64;
        bytes(total);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The "Archive created at" time from `pg_restore --list`. The archive holds
/// the dumping host's wall-clock time without a zone; it is read as UTC
/// (`TZ=UTC`), so dumps must be taken with `TZ=UTC` (see docs/restore.md).
pub async fn archive_created_at(
    bin_dir: Option<&Path>,
    archive: &Path,
) -> std::result::Result<DateTime<Utc>, String> {
    let pg_restore = tools::find("pg_restore", bin_dir)
        .ok_or_else(|| "pg_restore is not installed".to_string())?;
    let out = tokio::process::Command::new(&pg_restore)
        .arg("--list")
        .arg(archive)
        .env("TZ", "UTC")
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", pg_restore.display()))?;
    if !out.status.success() {
        return Err(format!(
            "pg_restore --list failed: {}",
            tools::tail(&String::from_utf8_lossy(&out.stderr))
        ));
    }
    parse_created_at(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| "no \"Archive created at\" line in the archive header".to_string())
}

/// Parses `; Archive created at 2026-11-24 00:58:24 UTC`.
pub fn parse_created_at(listing: &str) -> Option<DateTime<Utc>> {
    let line = listing.lines().find_map(|l| {
        l.trim_start_matches(';')
            .trim()
            .strip_prefix("Archive created at ")
    })?;
    let mut parts = line.split_whitespace();
    let date = parts.next()?;
    let time = parts.next()?;
    let zone = parts.next().unwrap_or("UTC");
    if !matches!(zone, "UTC" | "GMT" | "Z") {
        return None;
    }
    let naive =
        NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H:%M:%S").ok()?;
    Some(naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_time() {
        let l = ";\n; Archive created at 2026-11-24 00:58:24 UTC\n;     dbname: x\n";
        assert_eq!(
            parse_created_at(l).map(|t| t.to_rfc3339()),
            Some("2026-11-24T00:58:24+00:00".to_string())
        );
        assert_eq!(
            parse_created_at("; Archive created at 2026-11-24 00:58:24 CET"),
            None
        );
        assert_eq!(parse_created_at("nothing"), None);
    }

    #[test]
    fn sha_file() {
        let h = "A".repeat(64);
        assert_eq!(
            parse_sha256_file(&format!("{h}  x.dump\n")),
            Some("a".repeat(64))
        );
        assert_eq!(parse_sha256_file("abc x.dump"), None);
        assert_eq!(parse_sha256_file(""), None);
    }
}
