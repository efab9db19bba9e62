//! `charon restore-test run|history` and `charon backups list`: restore
//! tests for SREs and cron (docs/restore.md).
//!
//! ```text
//! charon restore-test run --source NAME [--backup ID | --latest] [--json] [--report FILE.md]
//! charon restore-test history [--limit N] [--json]
//! charon backups list --source NAME [--json]
//! ```
//!
//! `restore-test run` exits 0 when every check passed, 1 when the verdict
//! is fail (the report says which check and why), 2 on an error before any
//! test ran (no such source, no session). Everything goes through the
//! console's dispatch point (MFA gate, permission table, audit).

use clap::{Args, Subcommand};

use super::output;
use crate::core::action::{Action, Reply};
use crate::core::console::Console;

#[derive(Debug, Subcommand)]
pub enum RestoreTestCommand {
    /// Restore-test one backup: exit 0 on pass, 1 on fail (for cron).
    Run(RunArgs),
    /// Past restore tests, newest first.
    History {
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The source's name in the configuration (`[backups.NAME]`).
    #[arg(long)]
    pub source: String,
    /// The backup's id (file name or pgBackRest label).
    #[arg(long, conflicts_with = "latest")]
    pub backup: Option<String>,
    /// The newest backup (the default).
    #[arg(long)]
    pub latest: bool,
    /// Print the verdict as JSON instead of the Markdown report.
    #[arg(long)]
    pub json: bool,
    /// Also write the Markdown report to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum BackupsCommand {
    /// The backups of a source, oldest first.
    List {
        #[arg(long)]
        source: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn restore_test(console: &Console, cmd: RestoreTestCommand) -> anyhow::Result<i32> {
    match cmd {
        RestoreTestCommand::Run(args) => {
            let action = Action::RestoreTestRun {
                source: args.source,
                backup: args.backup,
            };
            let Reply::RestoreTested {
                history_id,
                verdict,
            } = console.dispatch(action).await?
            else {
                anyhow::bail!("unexpected reply to restore.run");
            };
            if let Some(path) = &args.report {
                std::fs::write(path, verdict.to_markdown())?;
            }
            if args.json {
                let mut v = verdict.to_json();
                if let Some(o) = v.as_object_mut() {
                    o.insert("history_id".into(), history_id.to_string().into());
                }
                output::json(&v)?;
            } else {
                for line in verdict.to_markdown().lines() {
                    output::line(line);
                }
                output::line(&format!("\nhistory id: {history_id}"));
            }
            if !verdict.passed
                && let Some(c) = verdict.first_failure()
            {
                eprintln!(
                    "charon: restore test FAILED at `{}`: {}",
                    c.name,
                    crate::core::sanitize::sanitize(&c.reason)
                );
            }
            Ok(if verdict.passed { 0 } else { 1 })
        }
        RestoreTestCommand::History { limit, json } => {
            let Reply::RestoreHistory(rows) = console
                .dispatch(Action::RestoreTestHistory { limit })
                .await?
            else {
                anyhow::bail!("unexpected reply to restore.history");
            };
            if json {
                output::json(&rows)?;
            } else {
                output::line(
                    "started                    verdict  source       backup                         restore   age      failed check",
                );
                for r in rows {
                    output::line(&format!(
                        "{:<26} {:<8} {:<12} {:<30} {:>8} {:>8} {}",
                        r.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
                        if r.passed { "pass" } else { "FAIL" },
                        r.source,
                        r.backup_id,
                        r.restore_ms
                            .map(|m| format!("{:.1}s", m as f64 / 1000.0))
                            .unwrap_or_else(|| "-".into()),
                        r.backup_age_s
                            .map(|s| format!("{}m", s / 60))
                            .unwrap_or_else(|| "-".into()),
                        r.failed_check.unwrap_or_default()
                    ));
                }
            }
            Ok(0)
        }
    }
}

pub async fn backups(console: &Console, cmd: BackupsCommand) -> anyhow::Result<i32> {
    match cmd {
        BackupsCommand::List { source, json } => {
            let Reply::Backups {
                source,
                kind,
                location,
                backups,
            } = console.dispatch(Action::BackupsList { source }).await?
            else {
                anyhow::bail!("unexpected reply to backups.list");
            };
            if json {
                output::json(&serde_json::json!({
                    "source": source,
                    "kind": kind,
                    "location": location,
                    "backups": backups,
                }))?;
            } else {
                output::line(&format!("{source} ({kind}, {location})"));
                for b in backups {
                    output::line(&format!(
                        "{:<40} {:>14} bytes  {}  {}",
                        b.id,
                        b.size,
                        b.taken_at
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_else(|| "time unknown".into()),
                        match (&b.sha256_expected, &b.header_error) {
                            (_, Some(e)) => format!("header: {e}"),
                            (Some(_), None) => "sha256 on file".into(),
                            (None, None) if kind == "pgbackrest" => {
                                "checksums in the repository".into()
                            }
                            (None, None) => "no .sha256".into(),
                        }
                    ));
                }
            }
            Ok(0)
        }
    }
}
