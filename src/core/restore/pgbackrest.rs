//! The `pgbackrest` backup source: a pgBackRest repository (stanza and
//! configuration file from charon's configuration).
//!
//! - The catalogue is `pgbackrest info --output=json`; a backup's id is its
//!   label, its time the backup's start.
//! - Integrity is `pgbackrest verify` (every file of every backup and the
//!   WAL archive against the repository's checksums), plus the backup's own
//!   `error` flag.
//! - The restore goes into the data directory of a throwaway cluster (a new
//!   temporary directory, never an existing data directory): `pgbackrest
//!   restore --set=LABEL --type=immediate --target-action=promote
//!   --archive-mode=off`, then the cluster is started on a Unix socket in
//!   that directory with its own `pg_hba.conf` (local trust) and
//!   `archive_mode=off` (a restored copy must never archive WAL into the
//!   live repository). The checks connect to the configured database in it.
//!   The cluster is stopped and its directory deleted afterwards, also on
//!   failure and when the test is cancelled.
//! - When charon runs as root, pgBackRest and the server run as the
//!   `postgres` account (as the demo cluster does).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};

use super::source::Backup;
use super::tools;
use crate::core::{Error, Result};
use crate::demo::cluster::Cluster;

/// A pgBackRest repository's stanza.
#[derive(Debug, Clone)]
pub struct PgBackRestSource {
    pub name: String,
    pub stanza: String,
    /// `--config`; `None`: pgBackRest's default.
    pub config: Option<PathBuf>,
    /// The Pluto database inside the backed-up cluster.
    pub database: String,
    pub pg_bin_dir: Option<PathBuf>,
}

impl PgBackRestSource {
    fn command(&self, run_as: Option<(u32, u32)>) -> Result<tokio::process::Command> {
        let program = tools::find("pgbackrest", None).ok_or_else(|| {
            Error::Config("pgbackrest is not installed (Debian package `pgbackrest`)".into())
        })?;
        let mut c = tokio::process::Command::new(program);
        c.arg(format!("--stanza={}", self.stanza))
            .arg("--log-level-console=error")
            .arg("--log-level-stderr=off")
            .arg("--log-level-file=off")
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null());
        if let Some(cfg) = &self.config {
            c.arg(format!("--config={}", cfg.display()));
        }
        if let Some((uid, gid)) = run_as {
            c.uid(uid).gid(gid);
            // pgBackRest resolves paths from here; / is readable by anyone.
            c.current_dir("/");
        }
        Ok(c)
    }

    /// The account pgBackRest runs as when charon is root: `postgres`.
    fn default_run_as() -> Option<(u32, u32)> {
        if !nix::unistd::geteuid().is_root() {
            return None;
        }
        nix::unistd::User::from_name("postgres")
            .ok()
            .flatten()
            .map(|u| (u.uid.as_raw(), u.gid.as_raw()))
    }

    fn unavailable(&self, why: String) -> Error {
        Error::Io(std::io::Error::other(format!(
            "backup source `{}`: {why}",
            self.name
        )))
    }

    /// The backups of the stanza, oldest first.
    pub async fn list(&self) -> Result<Vec<Backup>> {
        let out = self
            .command(Self::default_run_as())?
            .args(["info", "--output=json"])
            .output()
            .await
            .map_err(|e| self.unavailable(format!("cannot run pgbackrest: {e}")))?;
        if !out.status.success() {
            return Err(self.unavailable(format!(
                "pgbackrest info failed ({}): {}",
                out.status,
                tools::tail(&format!(
                    "{}\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ))
            )));
        }
        parse_info(&self.stanza, &String::from_utf8_lossy(&out.stdout))
            .map_err(|e| self.unavailable(e))
    }

    /// `pgbackrest verify`, and the backup's own error flag: `Ok(reason)` or
    /// `Err(reason)`.
    pub async fn verify(&self, backup: &Backup) -> std::result::Result<String, String> {
        if backup.header_error.is_some() {
            return Err(format!(
                "pgbackrest info marks backup {} as having errors",
                backup.id
            ));
        }
        let out = self
            .command(Self::default_run_as())
            .map_err(|e| e.to_string())?
            .args(["verify", "--output=text"])
            .output()
            .await
            .map_err(|e| format!("cannot run pgbackrest verify: {e}"))?;
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // verify exits non-zero when a file does not match; its text
        // summary (when it prints one) says `status: error` or `invalid`.
        let summary = String::from_utf8_lossy(&out.stdout).to_lowercase();
        let flagged = summary.contains("status: error")
            || summary
                .lines()
                .any(|l| l.contains("invalid") && !l.contains("invalid: 0"));
        if out.status.success() && !flagged {
            Ok("pgbackrest verify: every backup file and WAL segment in the repository matches its checksum".into())
        } else {
            Err(format!(
                "pgbackrest verify failed ({}): {}",
                out.status,
                tools::tail(&text)
            ))
        }
    }

    /// Restores `backup` into a new throwaway cluster and starts it; the
    /// cluster is stopped and deleted when dropped.
    pub async fn restore(
        &self,
        backup: &Backup,
        limit: Duration,
    ) -> std::result::Result<Cluster, String> {
        let cluster = Cluster::empty(CLUSTER_PREFIX).map_err(|e| e.to_string())?;
        let data = cluster.data_dir();
        std::fs::create_dir(&data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| e.to_string())?;
        cluster.own(&data).map_err(|e| e.to_string())?;
        let out = self
            .command(cluster.run_as())
            .map_err(|e| e.to_string())?
            .arg("restore")
            .arg(format!("--set={}", backup.id))
            .arg(format!("--pg1-path={}", data.display()))
            .args([
                "--type=immediate",
                "--target-action=promote",
                "--archive-mode=off",
            ])
            .output()
            .await
            .map_err(|e| format!("cannot run pgbackrest restore: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "pgbackrest restore failed ({}): {}",
                out.status,
                tools::tail(&format!(
                    "{}\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ))
            ));
        }
        // charon's own access rules: local trust, nothing else.
        let hba = cluster.dir().join("charon_hba.conf");
        std::fs::write(&hba, "local all all trust\n").map_err(|e| e.to_string())?;
        cluster.own(&hba).map_err(|e| e.to_string())?;
        let extra = format!(
            "-c port=5432 -c archive_mode=off -c hba_file='{}' -c ssl=off",
            hba.display()
        );
        let started = Instant::now();
        cluster
            .start_server(&extra)
            .map_err(|e| format!("the restored cluster does not start: {e}"))?;
        // Recovery to the end of the backup, then promotion.
        let url = cluster.url(&self.database);
        loop {
            let state = async {
                let mut c = PgConnection::connect(&url).await?;
                let r: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
                    .fetch_one(&mut c)
                    .await?;
                c.close().await.ok();
                Ok::<bool, sqlx::Error>(r)
            }
            .await;
            match state {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) if started.elapsed() > limit => {
                    return Err(format!("the restored cluster is not usable: {e}"));
                }
                Err(_) => {}
            }
            if started.elapsed() > limit {
                return Err("the restored cluster is still in recovery at the RTO".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(cluster)
    }
}

/// The name prefix of the throwaway clusters under `$TMPDIR`.
pub const CLUSTER_PREFIX: &str = "charon-restore-";

/// Parses `pgbackrest info --output=json` for one stanza.
pub fn parse_info(stanza: &str, json: &str) -> std::result::Result<Vec<Backup>, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("pgbackrest info: not JSON: {e}"))?;
    let entry = v
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == stanza))
        .ok_or_else(|| format!("pgbackrest info lists no stanza `{stanza}`"))?;
    let status = &entry["status"];
    let code = status["code"].as_i64().unwrap_or(-1);
    // 0: ok; 2: no valid backups (an empty list, not an error).
    if code != 0 && code != 2 {
        return Err(format!(
            "stanza `{stanza}`: {}",
            status["message"].as_str().unwrap_or("unknown status")
        ));
    }
    let mut out = Vec::new();
    for b in entry["backup"].as_array().into_iter().flatten() {
        let Some(label) = b["label"].as_str() else {
            continue;
        };
        let start = b["timestamp"]["start"]
            .as_i64()
            .and_then(|t| DateTime::<Utc>::from_timestamp(t, 0));
        let size = b["info"]["repository"]["size"]
            .as_u64()
            .or_else(|| b["info"]["size"].as_u64())
            .unwrap_or(0);
        let error = b["error"].as_bool().unwrap_or(false);
        out.push(Backup {
            id: label.to_string(),
            path: PathBuf::from(format!("backup/{stanza}/{label}")),
            size,
            sha256_expected: None,
            taken_at: start,
            header_error: error.then(|| "pgbackrest marks this backup as having errors".into()),
        });
    }
    out.sort_by(|a, b| (a.taken_at, &a.id).cmp(&(b.taken_at, &b.id)));
    Ok(out)
}

/// Whether `path` (a data directory) is gone.
pub fn gone(path: &Path) -> bool {
    !path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_is_parsed() {
        let json = r#"[{"name":"pluto","status":{"code":0,"message":"ok"},
          "backup":[{"label":"20261124-010000F","type":"full","error":false,
            "timestamp":{"start":1795482000,"stop":1795482060},
            "info":{"size":100,"repository":{"size":40,"delta":40}}}]}]"#;
        let l = parse_info("pluto", json).unwrap_or_default();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].id, "20261124-010000F");
        assert_eq!(l[0].size, 40);
        assert_eq!(l[0].taken_at.map(|t| t.timestamp()), Some(1795482000));
        assert!(parse_info("other", json).is_err());
    }
}
