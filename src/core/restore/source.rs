//! Backup sources, configured by name (`[backups.NAME]`): a [`DirSource`]
//! (a directory of `pg_dump -Fc` archives, each with a `NAME.dump.sha256`
//! beside it), an [`SshSource`] (the same layout on a backup host) or a
//! [`PgBackRestSource`] (a pgBackRest repository).

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

pub use super::pgbackrest::PgBackRestSource;
pub use super::ssh::SshSource;
use super::tools;
use crate::core::{Error, Result};

/// A configured backup source.
#[derive(Debug, Clone)]
pub enum Source {
    Dir(DirSource),
    Ssh(SshSource),
    PgBackRest(PgBackRestSource),
}

impl Source {
    /// The name the source has in the configuration.
    pub fn name(&self) -> &str {
        match self {
            Source::Dir(s) => &s.name,
            Source::Ssh(s) => &s.name,
            Source::PgBackRest(s) => &s.name,
        }
    }

    /// `dir`, `ssh` or `pgbackrest`.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Dir(_) => "dir",
            Source::Ssh(_) => "ssh",
            Source::PgBackRest(_) => "pgbackrest",
        }
    }

    /// Where the source is, for listings (no secret: paths and host names).
    pub fn location(&self) -> String {
        match self {
            Source::Dir(s) => s.path.display().to_string(),
            Source::Ssh(s) => format!("{}@{}:{}:{}", s.user, s.host, s.port, s.path),
            Source::PgBackRest(s) => format!("stanza {}", s.stanza),
        }
    }

    pub fn pg_bin_dir(&self) -> Option<&Path> {
        match self {
            Source::Dir(s) => s.pg_bin_dir.as_deref(),
            Source::Ssh(s) => s.pg_bin_dir.as_deref(),
            Source::PgBackRest(s) => s.pg_bin_dir.as_deref(),
        }
    }

    /// Every backup, oldest first.
    pub async fn list(&self) -> Result<Vec<Backup>> {
        match self {
            Source::Dir(s) => s.list().await,
            Source::Ssh(s) => s.list().await,
            Source::PgBackRest(s) => s.list().await,
        }
    }

    /// The newest backup, if any.
    pub async fn latest(&self) -> Result<Option<Backup>> {
        Ok(self.list().await?.pop())
    }

    /// The backup with this id.
    pub async fn get(&self, id: &str) -> Result<Backup> {
        self.list()
            .await?
            .into_iter()
            .find(|b| b.id == id)
            .ok_or_else(|| Error::NotFound(format!("backup `{id}` in source `{}`", self.name())))
    }
}

/// What a front end shows of a source (no secret: names, paths, hosts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceInfo {
    pub name: String,
    pub kind: String,
    pub location: String,
}

impl Source {
    pub fn info(&self) -> SourceInfo {
        SourceInfo {
            name: self.name().to_string(),
            kind: self.kind().to_string(),
            location: self.location(),
        }
    }
}

impl From<DirSource> for Source {
    fn from(s: DirSource) -> Source {
        Source::Dir(s)
    }
}

/// One backup as listed by a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backup {
    /// The archive's file name (e.g. `pluto-2026-11-24T0100.dump`), or the
    /// pgBackRest backup label.
    pub id: String,
    /// Where it is: a local path (`dir`), a path on the backup host
    /// (`ssh`), the repository path of the backup set (`pgbackrest`).
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

/// The creation time in the header of a custom-format archive (`PGDMP`),
/// read from its first bytes without pg_restore (the `ssh` source reads the
/// first 4 KiB of each archive over the connection). Like
/// [`archive_created_at`], the zone-less time is read as UTC.
pub fn parse_archive_header(bytes: &[u8]) -> std::result::Result<DateTime<Utc>, String> {
    struct Cursor<'a> {
        bytes: &'a [u8],
        at: usize,
        int_size: u8,
    }
    impl Cursor<'_> {
        fn byte(&mut self) -> std::result::Result<u8, String> {
            let b = self
                .bytes
                .get(self.at)
                .copied()
                .ok_or_else(|| "the archive header is cut short".to_string())?;
            self.at += 1;
            Ok(b)
        }
        /// pg_dump's ReadInt: a sign byte, then the value little-endian.
        fn int(&mut self) -> std::result::Result<i64, String> {
            let negative = self.byte()? != 0;
            let mut v: i64 = 0;
            for i in 0..self.int_size {
                v |= i64::from(self.byte()?) << (8 * u32::from(i));
            }
            Ok(if negative { -v } else { v })
        }
    }
    let mut c = Cursor {
        bytes,
        at: 0,
        int_size: 4,
    };
    let mut magic = [0u8; 5];
    for m in &mut magic {
        *m = c.byte()?;
    }
    if &magic != b"PGDMP" {
        return Err("not a pg_dump custom-format archive (no PGDMP signature)".into());
    }
    let (vmaj, vmin, vrev) = (c.byte()?, c.byte()?, c.byte()?);
    let version = (u32::from(vmaj) << 16) | (u32::from(vmin) << 8) | u32::from(vrev);
    if version < 0x010700 {
        return Err(format!("archive version {vmaj}.{vmin} is too old"));
    }
    c.int_size = c.byte()?;
    if !(1..=8).contains(&c.int_size) {
        return Err(format!(
            "implausible integer size {} in the header",
            c.int_size
        ));
    }
    let _off_size = c.byte()?;
    let format = c.byte()?;
    if format != 1 {
        return Err(format!(
            "archive format {format} is not the custom format (-Fc)"
        ));
    }
    if version >= 0x010F00 {
        // 1.15+: the compression algorithm is one byte.
        c.byte()?;
    } else {
        c.int()?;
    }
    let sec = c.int()?;
    let min = c.int()?;
    let hour = c.int()?;
    let mday = c.int()?;
    let mon = c.int()?;
    let year = c.int()?;
    let u = |v: i64| u32::try_from(v).ok();
    let naive = i32::try_from(year + 1900)
        .ok()
        .and_then(|y| chrono::NaiveDate::from_ymd_opt(y, u(mon + 1)?, u(mday)?))
        .and_then(|d| d.and_hms_opt(u(hour)?, u(min)?, u(sec)?))
        .ok_or_else(|| "no valid creation time in the archive header".to_string())?;
    Ok(naive.and_utc())
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
