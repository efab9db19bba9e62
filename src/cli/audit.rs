//! `charon audit ...` handlers, as plain functions over a [`Console`] (the
//! clap wiring lives with the rest of the CLI). Every one goes through
//! `Console::dispatch`, so it is authorised and audited like the TUI.
//!
//! Exit codes: [`EXIT_OK`] 0, [`EXIT_BROKEN`] 1 (verify found a broken chain),
//! [`EXIT_ERROR`] 2 (refused, audit log unavailable, database or file error).

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::core::action::{Action, Reply};
use crate::core::audit::{Checkpoint, ExportDest, ExportFormat};
use crate::core::console::Console;

pub const EXIT_OK: i32 = 0;
pub const EXIT_BROKEN: i32 = 1;
pub const EXIT_ERROR: i32 = 2;

/// `charon audit verify [--from SEQ] [--checkpoint FILE]`: prints the verdict
/// (progress to `err`), exits 1 naming the first broken seq.
pub async fn verify(
    console: &Console,
    from: Option<i64>,
    checkpoint: Option<&Path>,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> i32 {
    let checkpoint = match checkpoint.map(Checkpoint::read).transpose() {
        Ok(c) => c,
        Err(e) => return fail(err, &e),
    };
    let mut last_pct = u64::MAX;
    let reply = console
        .dispatch_with_progress(Action::AuditVerify { from, checkpoint }, |p| {
            let pct = (p.done * 100).checked_div(p.total).unwrap_or(100);
            if pct / 10 != last_pct / 10 {
                last_pct = pct;
                let _ = writeln!(err, "verify: {} of {} entries ({pct}%)", p.done, p.total);
            }
        })
        .await;
    match reply {
        Ok(Reply::AuditVerdict(v)) => {
            let _ = writeln!(out, "{v}");
            if v.is_intact() { EXIT_OK } else { EXIT_BROKEN }
        }
        Ok(_) => unexpected(err),
        Err(e) => fail(err, &e),
    }
}

/// `charon audit checkpoint FILE`: writes the head (seq, hash, time) as JSON.
pub async fn checkpoint(console: &Console, path: &Path, out: &mut (dyn Write + Send)) -> i32 {
    let mut err = std::io::stderr();
    match console
        .dispatch(Action::AuditCheckpoint {
            path: path.to_path_buf(),
        })
        .await
    {
        Ok(Reply::AuditCheckpoint(cp)) => {
            let _ = writeln!(
                out,
                "checkpoint: seq {} hash {} at {} written to {}",
                cp.seq,
                hex::encode(cp.hash),
                cp.at.to_rfc3339(),
                path.display()
            );
            EXIT_OK
        }
        Ok(_) => unexpected(&mut err),
        Err(e) => fail(&mut err, &e),
    }
}

/// `charon audit export [--since T] [--until T] --format jsonl|csv [--output FILE]`
/// (standard output without `--output`).
pub async fn export(
    console: &Console,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    format: &str,
    output: Option<PathBuf>,
    err: &mut (dyn Write + Send),
) -> i32 {
    let Some(format) = ExportFormat::parse(format) else {
        let _ = writeln!(err, "error: --format must be jsonl or csv, not {format:?}");
        return EXIT_ERROR;
    };
    let dest = output.map_or(ExportDest::Stdout, ExportDest::File);
    match console
        .dispatch(Action::AuditExport {
            since,
            until,
            format,
            dest,
        })
        .await
    {
        Ok(Reply::AuditExported { entries }) => {
            let _ = writeln!(err, "exported {entries} entries");
            EXIT_OK
        }
        Ok(_) => unexpected(err),
        Err(e) => fail(err, &e),
    }
}

fn fail(err: &mut (dyn Write + Send), e: &crate::core::Error) -> i32 {
    let _ = writeln!(err, "error: {e}");
    EXIT_ERROR
}

fn unexpected(err: &mut (dyn Write + Send)) -> i32 {
    let _ = writeln!(err, "error: unexpected reply");
    EXIT_ERROR
}
