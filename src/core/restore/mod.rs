//! Restore tests: prove that a backup restores and is whole.
//!
//! [`run_restore_test`] takes one backup of a [`Source`] (`dir`, `ssh` or
//! `pgbackrest`), checks its integrity and age, restores it into a fresh
//! scratch database (`charon_restore_<random>` on the restore server) or,
//! for pgBackRest, a throwaway cluster, re-applies the erasure ledger,
//! compares the restore with the live database (schema, row counts), checks
//! every foreign key, the data map, the measured RPO, the receipts' objects
//! and (where installed) `pg_amcheck`, and always removes the scratch
//! target. The [`Verdict`] lists every check with a reason and renders as
//! JSON and Markdown; [`record`] writes it to the history.

pub mod compare;
pub mod history;
pub mod invariants;
pub mod pgbackrest;
pub mod replay;
pub mod report;
pub mod source;
pub mod ssh;
pub mod tools;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};

pub use history::{HistoryRow, history, record};
pub use replay::Ledger;
pub use source::{Backup, DirSource, PgBackRestSource, Source, SshSource};

use crate::core::Error;
use crate::core::config::with_database;
use crate::core::datamap::{DataMap, validate_against_catalog};

/// Prefix of every scratch database; the cleanup drops nothing else.
pub const SCRATCH_PREFIX: &str = "charon_restore_";

/// The first key of the advisory lock a run holds on its scratch database's
/// name (the second is `hashtext(name)`), for as long as the database
/// exists: a scratch database whose lock is free belongs to no live run.
const SCRATCH_LOCK_CLASS: i32 = 0x6368_7273;

/// Limits and knobs of one restore test.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Recovery point objective: the backup may be at most this old.
    pub rpo: Duration,
    /// Recovery time objective: the restore may take at most this long.
    pub rto: Duration,
    /// `pg_restore -j`.
    pub jobs: u32,
    /// Allowed relative difference of a table's row count between the live
    /// database and the restore (the live one has moved on since the backup).
    pub row_tolerance: f64,
    /// The scratch database's name; `None` (the normal case) makes a fresh
    /// `charon_restore_<random>` each run.
    pub scratch_name: Option<String>,
    /// The data map to validate against the restore; `None`: the bundled one.
    pub datamap: Option<DataMap>,
    /// Where pg_restore / pg_amcheck are looked for first (else the
    /// source's `pg_bin_dir`, else `PATH`, else `/usr/lib/postgresql/*/bin`).
    pub pg_bin_dir: Option<PathBuf>,
    /// The erasure ledger to re-apply. `None` fails the "erasure ledger"
    /// check (fail closed: without it an erased person could come back).
    pub ledger: Option<Ledger>,
    /// Object storage of the receipts' objects; `None` skips that check.
    pub object_store_url: Option<String>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            rpo: Duration::from_secs(15 * 60),
            rto: Duration::from_secs(4 * 3600),
            jobs: 2,
            row_tolerance: 0.05,
            scratch_name: None,
            datamap: None,
            pg_bin_dir: None,
            ledger: None,
            object_store_url: None,
        }
    }
}

/// One check of a restore test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    /// Not run (an earlier step failed, or the tool is not installed).
    /// A skipped check after a failure has `passed: false`.
    pub skipped: bool,
    pub reason: String,
}

impl Check {
    fn pass(name: &str, reason: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            passed: true,
            skipped: false,
            reason: reason.into(),
        }
    }
    fn fail(name: &str, reason: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            passed: false,
            skipped: false,
            reason: reason.into(),
        }
    }
    /// Not run for a reason that is not a failure (the tool or the
    /// configuration is absent): passes, marked skipped.
    fn skip(name: &str, why: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            passed: true,
            skipped: true,
            reason: why.into(),
        }
    }
    fn not_run(name: &str, why: &str) -> Check {
        Check {
            name: name.into(),
            passed: false,
            skipped: true,
            reason: format!("not run: {why}"),
        }
    }
}

/// The names of the checks, in order.
pub const CHECKS: [&str; 14] = [
    "checksum",
    "age",
    "scratch target",
    "restore",
    "rto",
    "data map",
    "erasure ledger",
    "schema",
    "row counts",
    "foreign keys",
    "measured rpo",
    "receipt objects",
    "amcheck",
    "cleanup",
];

/// The checks run on a finished restore (between "rto" and "cleanup").
const AFTER_RESTORE: [&str; 8] = [
    "data map",
    "erasure ledger",
    "schema",
    "row counts",
    "foreign keys",
    "measured rpo",
    "receipt objects",
    "amcheck",
];

/// The outcome of one restore test.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub source: String,
    pub backup: Backup,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// True only when every check passed (or was skipped because its tool
    /// is not installed).
    pub passed: bool,
    /// Age of the backup when the test started, in seconds.
    pub backup_age_secs: Option<i64>,
    pub restore_ms: Option<u64>,
    pub total_ms: u64,
    /// The scratch database, if one was created.
    pub scratch_db: Option<String>,
    pub checks: Vec<Check>,
}

impl Verdict {
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The first failed check's name and reason.
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| !c.passed)
    }

    /// The verdict of a test that could not even pick its backup (the
    /// source cannot be listed, e.g. an unreachable backup host, or the
    /// backup does not exist): failed, naming the reason, nothing created.
    pub fn not_started(source: &str, backup_id: &str, why: &str) -> Verdict {
        let now = Utc::now();
        let mut checks = vec![Check::fail("checksum", why.to_string())];
        for n in CHECKS.iter().skip(1).filter(|n| **n != "cleanup") {
            checks.push(Check::not_run(n, "the backup could not be read"));
        }
        Verdict {
            source: source.to_string(),
            backup: Backup {
                id: backup_id.to_string(),
                path: PathBuf::new(),
                size: 0,
                sha256_expected: None,
                taken_at: None,
                header_error: Some(why.to_string()),
            },
            started_at: now,
            finished_at: now,
            passed: false,
            backup_age_secs: None,
            restore_ms: None,
            total_ms: 0,
            scratch_db: None,
            checks,
        }
    }
}

/// Where a restore test is, for a live progress line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreProgress {
    /// One of [`CHECKS`].
    pub step: &'static str,
    pub elapsed: Duration,
    /// Bytes read so far (checksum step).
    pub bytes: u64,
}

fn secs(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

fn valid_scratch_name(name: &str) -> bool {
    name.starts_with(SCRATCH_PREFIX)
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Runs one restore test of `backup` from `source`. `live` is the live
/// Pluto database (only read); `restore_server_url` names a database on the
/// server where the scratch database is created for `dir` and `ssh` sources
/// (it is used to CREATE and DROP the scratch database only; a `pgbackrest`
/// source restores into a throwaway cluster instead and ignores it). Never
/// restores into an existing database: the scratch database is created
/// fresh, and a scratch name equal to the live database's is refused. The
/// scratch target is always removed, also on failure and when the returned
/// future is dropped.
///
/// Nothing is returned as an error: every failure (of the backup, of the
/// restore server, of the live database) is a failed check in the verdict.
pub async fn run_restore_test(
    source: &Source,
    backup: &Backup,
    live: &sqlx::PgPool,
    restore_server_url: &str,
    opts: &RestoreOptions,
    progress: &(dyn Fn(RestoreProgress) + Sync),
) -> Verdict {
    let started = Instant::now();
    let started_at = Utc::now();
    let opts = &RestoreOptions {
        pg_bin_dir: opts
            .pg_bin_dir
            .clone()
            .or_else(|| source.pg_bin_dir().map(PathBuf::from)),
        ..opts.clone()
    };
    let step = |step: &'static str, bytes: u64| {
        progress(RestoreProgress {
            step,
            elapsed: started.elapsed(),
            bytes,
        })
    };
    let mut checks = Vec::new();

    // 1. Integrity. `dir` and `ssh` end with a local archive whose bytes
    // were hashed (an `ssh` archive is streamed into a temporary directory
    // removed when `_fetched` is dropped).
    step("checksum", 0);
    let mut archive: Option<PathBuf> = None;
    let mut _fetched: Option<tempfile::TempDir> = None;
    let checksum = match source {
        Source::Dir(_) => match &backup.sha256_expected {
            None => no_sha256(backup),
            Some(expected) => {
                match source::sha256_file(&backup.path, &|b| step("checksum", b)).await {
                    Ok(actual) => {
                        archive = Some(backup.path.clone());
                        compare_sha256(&actual, expected)
                    }
                    Err(e) => Check::fail("checksum", format!("cannot read the archive: {e}")),
                }
            }
        },
        Source::Ssh(ssh) => match &backup.sha256_expected {
            None => no_sha256(backup),
            Some(expected) => match tempfile::Builder::new().prefix("charon-fetch-").tempdir() {
                Err(e) => Check::fail("checksum", format!("no local temporary directory: {e}")),
                Ok(dir) => {
                    let dest = dir.path().join("archive.dump");
                    let fetched = ssh.fetch(backup, &dest, &|b| step("checksum", b)).await;
                    _fetched = Some(dir);
                    match fetched {
                        Ok(actual) => {
                            archive = Some(dest);
                            compare_sha256(&actual, expected)
                        }
                        Err(e) => Check::fail("checksum", e),
                    }
                }
            },
        },
        Source::PgBackRest(pgb) => match pgb.verify(backup).await {
            Ok(why) => Check::pass("checksum", why),
            Err(why) => Check::fail("checksum", why),
        },
    };
    let checksum_ok = checksum.passed;
    checks.push(checksum);

    step("age", 0);
    let age = backup.taken_at.map(|t| started_at - t);
    checks.push(match (age, &backup.header_error) {
        (Some(a), _) if a < chrono::TimeDelta::zero() => Check::fail(
            "age",
            format!(
                "the archive says it was created in the future ({} s ahead)",
                -a.num_seconds()
            ),
        ),
        (Some(a), _) => {
            let a = a.to_std().unwrap_or_default();
            if a <= opts.rpo {
                Check::pass("age", format!("{} old, RPO {}", secs(a), secs(opts.rpo)))
            } else {
                Check::fail(
                    "age",
                    format!("{} old: older than the RPO of {}", secs(a), secs(opts.rpo)),
                )
            }
        }
        (None, why) => Check::fail(
            "age",
            format!(
                "archive header unreadable: {}",
                why.as_deref().unwrap_or("no creation time")
            ),
        ),
    });

    // Ends the test early: the remaining checks are listed as not run (no
    // scratch target exists yet, so there is nothing to clean up).
    let finish = |mut checks: Vec<Check>, from: usize, why: &str| {
        for name in CHECKS.iter().skip(from).filter(|n| **n != "cleanup") {
            checks.push(Check::not_run(name, why));
        }
        verdict(source, backup, started_at, started, age, None, None, checks)
    };

    if !checksum_ok {
        return finish(
            checks,
            2,
            "the integrity check failed; a corrupt backup is not restored",
        );
    }

    // 2. The scratch target.
    step("scratch target", 0);
    let name = opts.scratch_name.clone().unwrap_or_else(|| {
        format!(
            "{SCRATCH_PREFIX}{}",
            uuid::Uuid::new_v4()
                .simple()
                .to_string()
                .get(..16)
                .unwrap_or("x")
        )
    });
    let live_name: Result<String, sqlx::Error> = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(live)
        .await;
    let target = match (live_name, source) {
        (Err(e), _) => Check::fail(
            "scratch target",
            format!("the live database is unreachable: {e}"),
        ),
        (Ok(_), Source::PgBackRest(p)) => {
            // Throwaway clusters of runs that were killed (a stopped server
            // and its directory would stay for good) are removed first.
            let swept = tokio::task::spawn_blocking(|| {
                crate::demo::cluster::sweep_leftovers(pgbackrest::CLUSTER_PREFIX)
            })
            .await
            .unwrap_or_default();
            let new = format!(
                "a new throwaway cluster in a fresh temporary directory (database {})",
                p.database
            );
            if swept.is_empty() {
                Check::pass("scratch target", new)
            } else {
                let names: Vec<String> = swept.iter().map(|d| d.display().to_string()).collect();
                Check::pass(
                    "scratch target",
                    format!(
                        "{new}; removed {} left by an interrupted run: {}",
                        names.len(),
                        names.join(", ")
                    ),
                )
            }
        }
        (Ok(live_name), _) if live_name == name => Check::fail(
            "scratch target",
            format!("refused: the scratch database `{name}` is the live database"),
        ),
        (Ok(_), _) if !valid_scratch_name(&name) => Check::fail(
            "scratch target",
            format!("refused: scratch database names are {SCRATCH_PREFIX}[a-z0-9_]*, not `{name}`"),
        ),
        (Ok(_), _) if restore_server_url.is_empty() => Check::fail(
            "scratch target",
            "no restore server configured ([restore] server_url)",
        ),
        (Ok(_), _) => {
            // Scratch databases of runs that were killed (SIGKILL, a lost
            // machine) are removed first; a live run's are left alone.
            match sweep_leftovers(restore_server_url).await {
                Ok(swept) if !swept.is_empty() => Check::pass(
                    "scratch target",
                    format!(
                        "{name} (new); removed {} left by an interrupted run: {}",
                        swept.len(),
                        swept.join(", ")
                    ),
                ),
                _ => Check::pass("scratch target", format!("{name} (new)")),
            }
        }
    };
    let target_ok = target.passed;
    checks.push(target);
    if !target_ok {
        return finish(checks, 3, "no scratch target");
    }

    // 3. Create it; from here on the guard removes it whatever happens.
    step("restore", 0);
    // Timed: the restore itself (pg_restore; for pgBackRest the restore,
    // start, recovery and promotion), not creating the empty database.
    let restore_started = Instant::now();
    let (mut scratch, scratch_url, restored, took) = match source {
        Source::PgBackRest(p) => match p.restore(backup, opts.rto).await {
            Ok(cluster) => {
                let url = cluster.url(&p.database);
                let label = format!("cluster {}", cluster.dir().display());
                let took = restore_started.elapsed();
                (Target::Cluster(cluster, label), url, Ok(()), took)
            }
            Err(e) => {
                checks.push(Check::fail("restore", e));
                return finish(checks, 4, "the restore failed");
            }
        },
        _ => {
            let scratch = match Scratch::create(restore_server_url, &name).await {
                Ok(s) => s,
                Err(e) => {
                    checks.push(Check::fail(
                        "restore",
                        format!("cannot create the scratch database `{name}`: {e}"),
                    ));
                    return finish(checks, 4, "no scratch database");
                }
            };
            let url = with_database(restore_server_url, &name);
            let t = Instant::now();
            let restored = match &archive {
                Some(path) => pg_restore(opts, path, &url).await,
                None => Err("no archive to restore".to_string()),
            };
            let took = t.elapsed();
            (Target::Database(scratch), url, restored, took)
        }
    };
    // A test hook: the crash tests SIGKILL the run here, restored but not
    // yet checked or cleaned up.
    crate::core::pause_point("CHARON_RESTORE_PAUSE_AT", "restored").await;
    let scratch_db = Some(scratch.label(&name));
    // The local copy of an ssh archive is not needed any more.
    drop(_fetched.take());
    let restore_ms = Some(took.as_millis() as u64);
    match restored {
        Ok(()) => {
            checks.push(Check::pass(
                "restore",
                match source {
                    Source::PgBackRest(_) => format!(
                        "pgbackrest restore, recovery and promotion in {}",
                        secs(took)
                    ),
                    _ => format!(
                        "restored in {} with {} jobs into {name}",
                        secs(took),
                        opts.jobs.max(1)
                    ),
                },
            ));
            checks.push(if took <= opts.rto {
                Check::pass(
                    "rto",
                    format!("{} within the RTO of {}", secs(took), secs(opts.rto)),
                )
            } else {
                Check::fail(
                    "rto",
                    format!("{} exceeds the RTO of {}", secs(took), secs(opts.rto)),
                )
            });
            run_checks(&mut checks, live, &scratch_url, backup, opts, &step).await;
        }
        Err(why) => {
            checks.push(Check::fail("restore", why));
            checks.push(Check::not_run("rto", "the restore failed"));
            for n in AFTER_RESTORE {
                checks.push(Check::not_run(n, "the restore failed"));
            }
        }
    }

    // 4. Remove it and prove it is gone.
    step("cleanup", 0);
    checks.push(match scratch.remove().await {
        Ok(what) => Check::pass("cleanup", what),
        Err(e) => Check::fail("cleanup", e),
    });
    verdict(
        source, backup, started_at, started, age, restore_ms, scratch_db, checks,
    )
}

fn no_sha256(backup: &Backup) -> Check {
    Check::fail(
        "checksum",
        format!(
            "no valid SHA-256 in {}.sha256 beside the archive",
            backup.id
        ),
    )
}

fn compare_sha256(actual: &str, expected: &str) -> Check {
    if actual == expected {
        Check::pass("checksum", format!("sha256 {actual}"))
    } else {
        Check::fail(
            "checksum",
            format!(
                "sha256 mismatch: the archive hashes to {actual}, the .sha256 file says {expected}"
            ),
        )
    }
}

/// Where a test restored to: a scratch database on the restore server, or
/// a throwaway cluster (pgBackRest). Both remove themselves when dropped.
enum Target {
    Database(Scratch),
    Cluster(crate::demo::cluster::Cluster, String),
}

impl Target {
    fn label(&self, name: &str) -> String {
        match self {
            Target::Database(_) => name.to_string(),
            Target::Cluster(_, label) => label.clone(),
        }
    }

    async fn remove(&mut self) -> Result<String, String> {
        match self {
            Target::Database(s) => {
                s.drop_now()
                    .await
                    .map_err(|e| format!("could not drop the scratch database {}: {e}", s.name))?;
                Ok(format!("scratch database {} dropped", s.name))
            }
            Target::Cluster(c, _) => {
                let dir = c.dir().to_path_buf();
                c.stop();
                if pgbackrest::gone(&dir) {
                    Ok(format!(
                        "throwaway cluster stopped and {} deleted",
                        dir.display()
                    ))
                } else {
                    Err(format!(
                        "{} is still there after the cleanup",
                        dir.display()
                    ))
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn verdict(
    source: &Source,
    backup: &Backup,
    started_at: DateTime<Utc>,
    started: Instant,
    age: Option<chrono::TimeDelta>,
    restore_ms: Option<u64>,
    scratch_db: Option<String>,
    checks: Vec<Check>,
) -> Verdict {
    Verdict {
        source: source.name().to_string(),
        backup: backup.clone(),
        started_at,
        finished_at: Utc::now(),
        passed: checks.iter().all(|c| c.passed),
        backup_age_secs: age.map(|a| a.num_seconds()),
        restore_ms,
        total_ms: started.elapsed().as_millis() as u64,
        scratch_db,
        checks,
    }
}

async fn pg_restore(
    opts: &RestoreOptions,
    archive: &std::path::Path,
    scratch_url: &str,
) -> Result<(), String> {
    let program = tools::find("pg_restore", opts.pg_bin_dir.as_deref())
        .ok_or_else(|| "pg_restore is not installed".to_string())?;
    let out = tools::command_for(&program, scratch_url, false)
        .args(["--no-owner", "--no-acl", "--exit-on-error"])
        .arg(format!("--jobs={}", opts.jobs.max(1)))
        .arg(archive)
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "pg_restore failed ({}): {}",
            out.status,
            tools::tail_without_values(&String::from_utf8_lossy(&out.stderr))
        ))
    }
}

/// The checks on a finished restore, in [`AFTER_RESTORE`] order.
async fn run_checks(
    checks: &mut Vec<Check>,
    live: &sqlx::PgPool,
    scratch_url: &str,
    backup: &Backup,
    opts: &RestoreOptions,
    step: &(dyn Fn(&'static str, u64) + Sync),
) {
    let pool = match PgPoolOptions::new()
        .max_connections(4)
        .connect(scratch_url)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            for n in AFTER_RESTORE {
                checks.push(Check::fail(
                    n,
                    format!("cannot connect to the restore: {e}"),
                ));
            }
            return;
        }
    };

    step("data map", 0);
    let map = match &opts.datamap {
        Some(m) => Ok(m.clone()),
        None => DataMap::bundled(),
    };
    let mut mapped = None;
    checks.push(match map {
        Err(e) => Check::fail("data map", format!("cannot load the data map: {e}")),
        Ok(map) => match validate_against_catalog(&pool, &map).await {
            Ok(catalog) => {
                let c = Check::pass(
                    "data map",
                    format!(
                        "{} matches the restored schema ({} tables)",
                        map.source.display(),
                        map.tables.len()
                    ),
                );
                mapped = Some((map, catalog));
                c
            }
            Err(Error::Config(problems)) => Check::fail("data map", problems.replace('\n', "; ")),
            Err(e) => Check::fail("data map", format!("cannot check: {e}")),
        },
    });

    // Before the comparisons: the live database no longer has what was
    // erased after the backup, and neither must the restore.
    step("erasure ledger", 0);
    checks.push(match (&opts.ledger, &mapped) {
        (None, _) => Check::fail(
            "erasure ledger",
            "no erasure ledger given: erasures after the backup cannot be re-applied",
        ),
        (Some(_), None) => Check::fail(
            "erasure ledger",
            "not replayed: the data map does not match the restore",
        ),
        (Some(l), Some((map, catalog))) => ledger_check(&pool, map, catalog, l, backup).await,
    });

    // The comparisons, the measured RPO, the receipts and amcheck are
    // independent of each other: they run concurrently (the progress shows
    // "schema" for the whole group), and are listed in [`CHECKS`] order.
    step("schema", 0);
    let schema = async {
        match tokio::join!(compare::schema_lines(live), compare::schema_lines(&pool)) {
            (Ok(l), Ok(r)) => {
                let diff = compare::schema_diff(&l, &r);
                if diff.is_empty() {
                    Check::pass("schema", format!("identical ({} objects)", l.len()))
                } else {
                    Check::fail(
                        "schema",
                        format!("{} differences: {}", diff.len(), list(&diff, 30)),
                    )
                }
            }
            (Err(e), _) => Check::fail("schema", format!("cannot read the live catalog: {e}")),
            (_, Err(e)) => Check::fail("schema", format!("cannot read the restored catalog: {e}")),
        }
    };
    let counts = async {
        match tokio::join!(compare::row_counts(live), compare::row_counts(&pool)) {
            (Ok(l), Ok(r)) => row_count_check(&l, &r, opts.row_tolerance),
            (Err(e), _) => Check::fail("row counts", format!("cannot count live rows: {e}")),
            (_, Err(e)) => Check::fail("row counts", format!("cannot count restored rows: {e}")),
        }
    };
    let fks = async {
        match compare::foreign_keys(&pool).await {
            Ok(fks) => {
                let bad: Vec<String> = fks
                    .iter()
                    .filter(|f| f.orphans > 0)
                    .map(|f| format!("{}.{}: {} orphan rows", f.table, f.name, f.orphans))
                    .collect();
                if bad.is_empty() {
                    Check::pass(
                        "foreign keys",
                        format!("{} foreign keys, no orphan rows", fks.len()),
                    )
                } else {
                    Check::fail("foreign keys", list(&bad, 30))
                }
            }
            Err(e) => Check::fail("foreign keys", format!("cannot check: {e}")),
        }
    };
    let rpo = invariants::measured_rpo(live, &pool, backup.taken_at, opts.rpo);
    let objects = invariants::receipt_objects(&pool, opts.object_store_url.as_deref());
    let (schema, counts, fks, rpo, objects, amcheck) = tokio::join!(
        schema,
        counts,
        fks,
        rpo,
        objects,
        amcheck(opts, scratch_url)
    );
    checks.extend([schema, counts, fks, rpo, objects, amcheck]);
    pool.close().await;
}

/// `pg_amcheck` on the restore (heap and btree), where installed.
async fn amcheck(opts: &RestoreOptions, scratch_url: &str) -> Check {
    match tools::find("pg_amcheck", opts.pg_bin_dir.as_deref()) {
        None => Check::skip("amcheck", "pg_amcheck is not installed"),
        Some(program) => {
            let out = tools::command_for(&program, scratch_url, true)
                .args(["--install-missing", "--no-dependent-toast"])
                .output()
                .await;
            match out {
                Ok(o) if o.status.success() => {
                    Check::pass("amcheck", "pg_amcheck found no corruption (heap and btree)")
                }
                Ok(o) => Check::fail(
                    "amcheck",
                    format!(
                        "pg_amcheck failed ({}): {}",
                        o.status,
                        tools::tail_without_values(&format!(
                            "{}\n{}",
                            String::from_utf8_lossy(&o.stdout),
                            String::from_utf8_lossy(&o.stderr)
                        ))
                    ),
                ),
                Err(e) => Check::fail("amcheck", format!("cannot run {}: {e}", program.display())),
            }
        }
    }
}

/// Re-applies the ledger entries executed since the backup's start, then
/// proves that none of their subjects remains.
async fn ledger_check(
    pool: &sqlx::PgPool,
    map: &DataMap,
    catalog: &crate::core::datamap::Catalog,
    ledger: &Ledger,
    backup: &Backup,
) -> Check {
    const NAME: &str = "erasure ledger";
    let pending = match replay::pending(&ledger.console, backup.taken_at).await {
        Ok(p) => p,
        Err(e) => return Check::fail(NAME, format!("cannot read the erasure ledger: {e}")),
    };
    let since = backup
        .taken_at
        .map(|t| format!("since {}", t.to_rfc3339()))
        .unwrap_or_else(|| "(backup time unknown: all)".into());
    if pending.entries == 0 {
        return Check::pass(NAME, format!("no erasure executed {since}"));
    }
    let done = match replay::replay(pool, map, catalog, &ledger.key, &pending).await {
        Ok(d) => d,
        Err(e) => return Check::fail(NAME, format!("the replay failed: {e}")),
    };
    match replay::remaining(pool, map, catalog, &ledger.key, &pending).await {
        Ok(left) if left.is_empty() => Check::pass(
            NAME,
            format!(
                "{} erasure(s) executed {since} re-applied ({} rows deleted, {} changed); none of their {} subject identifier(s) remains",
                done.entries,
                done.rows_deleted,
                done.rows_changed,
                pending.hashes.len()
            ),
        ),
        Ok(left) => Check::fail(
            NAME,
            format!(
                "erased subjects remain after the replay: {}",
                list(&left, 30)
            ),
        ),
        Err(e) => Check::fail(NAME, format!("cannot prove the erasures: {e}")),
    }
}

fn list(items: &[String], max: usize) -> String {
    let mut s = items
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > max {
        s.push_str(&format!("; ({} more)", items.len() - max));
    }
    s
}

/// Row counts of the restore against the live database: every live table
/// must be in the restore, and differ by at most `tolerance` (relative).
pub fn row_count_check(
    live: &std::collections::BTreeMap<String, i64>,
    restored: &std::collections::BTreeMap<String, i64>,
    tolerance: f64,
) -> Check {
    let mut bad = Vec::new();
    let mut diffs = Vec::new();
    for (t, &l) in live {
        let Some(&r) = restored.get(t) else {
            bad.push(format!("{t}: missing from the restore ({l} rows live)"));
            continue;
        };
        if l == r {
            continue;
        }
        let line = format!("{t}: live {l}, restore {r} ({:+})", r - l);
        let rel = (r - l).unsigned_abs() as f64 / (l.max(1) as f64);
        if rel > tolerance || (r == 0 && l > 0) {
            bad.push(line);
        } else {
            diffs.push(line);
        }
    }
    for t in restored.keys().filter(|t| !live.contains_key(*t)) {
        diffs.push(format!("{t}: only in the restore"));
    }
    let total: i64 = restored.values().sum();
    if bad.is_empty() {
        let detail = if diffs.is_empty() {
            "all equal".to_string()
        } else {
            format!("within {:.0}%: {}", tolerance * 100.0, list(&diffs, 30))
        };
        Check::pass(
            "row counts",
            format!("{} tables, {total} rows; {detail}", restored.len()),
        )
    } else {
        bad.extend(diffs);
        Check::fail(
            "row counts",
            format!("beyond {:.0}%: {}", tolerance * 100.0, list(&bad, 30)),
        )
    }
}

/// A scratch database this test created; dropped by [`Scratch::drop_now`],
/// or, if that never ran (an error, a panic, a cancelled future), when the
/// guard is dropped.
struct Scratch {
    server_url: String,
    name: String,
    armed: bool,
    /// The connection holding the advisory lock on `name` (see
    /// [`SCRATCH_LOCK_CLASS`]); closed once the database is gone, and with
    /// the process if it dies.
    lock: Option<PgConnection>,
}

impl Scratch {
    /// Creates the database. The guard is armed *before* `CREATE DATABASE`
    /// is sent: if the future is dropped while the statement is in flight
    /// (the server may already have committed it), the guard still drops
    /// it. If the statement fails (e.g. the name exists), the guard is
    /// disarmed: a database this test did not create is never dropped.
    async fn create(server_url: &str, name: &str) -> Result<Scratch, String> {
        if !valid_scratch_name(name) {
            return Err(format!("`{name}` is not a scratch database name"));
        }
        let mut lock = PgConnection::connect(server_url)
            .await
            .map_err(|e| format!("restore server unreachable: {e}"))?;
        sqlx::query("SELECT pg_advisory_lock($1, hashtext($2))")
            .bind(SCRATCH_LOCK_CLASS)
            .bind(name)
            .execute(&mut lock)
            .await
            .map_err(|e| format!("cannot lock the scratch database name: {e}"))?;
        let mut admin = PgConnection::connect(server_url)
            .await
            .map_err(|e| format!("restore server unreachable: {e}"))?;
        let mut guard = Scratch {
            server_url: server_url.to_string(),
            name: name.to_string(),
            armed: true,
            lock: Some(lock),
        };
        // The name was checked above: charon_restore_[a-z0-9_]*.
        let created = sqlx::query(sqlx::AssertSqlSafe(create_sql(name)))
            .execute(&mut admin)
            .await;
        if let Err(e) = created {
            guard.armed = false;
            return Err(e.to_string());
        }
        admin.close().await.ok();
        Ok(guard)
    }

    async fn drop_now(&mut self) -> Result<(), String> {
        drop_database(&self.server_url, &self.name).await?;
        self.armed = false;
        if let Some(lock) = self.lock.take() {
            lock.close().await.ok();
        }
        Ok(())
    }
}

fn create_sql(name: &str) -> String {
    format!("CREATE DATABASE \"{name}\"")
}

/// After a cancel: a `CREATE DATABASE` of this name may still be running
/// in the server (its client is gone); cancel it and wait (at most 30 s)
/// until it has ended, so that the drop that follows sees its outcome.
async fn end_pending_create(server_url: &str, name: &str) {
    let Ok(mut admin) = PgConnection::connect(server_url).await else {
        return;
    };
    let sql = create_sql(name);
    for _ in 0..300 {
        let running: Result<bool, sqlx::Error> = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
              WHERE pid <> pg_backend_pid() AND state = 'active' AND query = $1)",
        )
        .bind(&sql)
        .fetch_one(&mut admin)
        .await;
        if !matches!(running, Ok(true)) {
            break;
        }
        let _ = sqlx::query(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
              WHERE pid <> pg_backend_pid() AND state = 'active' AND query = $1",
        )
        .bind(&sql)
        .execute(&mut admin)
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    admin.close().await.ok();
}

/// Drops the scratch databases on the restore server that no live run
/// holds (their advisory lock is free: the run that created them was killed
/// before it could drop them). Returns the names dropped.
async fn sweep_leftovers(server_url: &str) -> Result<Vec<String>, String> {
    let mut admin = PgConnection::connect(server_url)
        .await
        .map_err(|e| format!("restore server unreachable: {e}"))?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname",
    )
    .bind(SCRATCH_PREFIX)
    .fetch_all(&mut admin)
    .await
    .map_err(|e| e.to_string())?;
    let mut dropped = Vec::new();
    for name in names.into_iter().filter(|n| valid_scratch_name(n)) {
        let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext($2))")
            .bind(SCRATCH_LOCK_CLASS)
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .map_err(|e| e.to_string())?;
        if !free {
            continue;
        }
        let gone = drop_database(server_url, &name).await;
        sqlx::query("SELECT pg_advisory_unlock($1, hashtext($2))")
            .bind(SCRATCH_LOCK_CLASS)
            .bind(&name)
            .execute(&mut admin)
            .await
            .map_err(|e| e.to_string())?;
        if gone.is_ok() {
            dropped.push(name);
        }
    }
    admin.close().await.ok();
    Ok(dropped)
}

async fn drop_database(server_url: &str, name: &str) -> Result<(), String> {
    if !valid_scratch_name(name) {
        return Err(format!("`{name}` is not a scratch database name"));
    }
    let mut admin = PgConnection::connect(server_url)
        .await
        .map_err(|e| format!("restore server unreachable: {e}"))?;
    // The name was checked above: charon_restore_[a-z0-9_]*.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .map_err(|e| e.to_string())?;
    let left: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut admin)
            .await
            .map_err(|e| e.to_string())?;
    admin.close().await.ok();
    if left {
        Err("it still exists after DROP DATABASE".into())
    } else {
        Ok(())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let server = self.server_url.clone();
        let name = self.name.clone();
        // The caller's runtime may be blocked or shutting down: a thread with
        // its own runtime drops the database.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                end_pending_create(&server, &name).await;
                let _ = drop_database(&server, &name).await;
            });
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_names() {
        assert!(valid_scratch_name("charon_restore_0123abcd"));
        assert!(!valid_scratch_name("pluto"));
        assert!(!valid_scratch_name("charon_restore_x\"; DROP"));
    }

    #[test]
    fn row_counts_tolerance() {
        let live = [("a".to_string(), 100), ("b".to_string(), 10)].into();
        let same = row_count_check(&live, &live, 0.05);
        assert!(same.passed, "{}", same.reason);
        let near = [("a".to_string(), 98), ("b".to_string(), 10)].into();
        let c = row_count_check(&live, &near, 0.05);
        assert!(
            c.passed && c.reason.contains("a: live 100, restore 98 (-2)"),
            "{}",
            c.reason
        );
        let far = [("a".to_string(), 50)].into();
        let c = row_count_check(&live, &far, 0.05);
        assert!(!c.passed && c.reason.contains("b: missing"), "{}", c.reason);
    }
}
