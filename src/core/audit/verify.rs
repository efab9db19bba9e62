//! Verification of the chain, and checkpoints.
//!
//! [`verify`] reads the entries in seq order in batches of [`BATCH`] (memory
//! stays flat in the number of entries; the next batch is fetched while the
//! current one is hashed), recomputes each HMAC and each link, and stops at
//! the first problem, naming its seq and what is wrong ([`Problem`]).
//!
//! Without a checkpoint, verify compares the last entry with the one-row
//! `audit_head`; someone who can delete entries can also rewind the head, so
//! only a [`Checkpoint`] kept outside the database reliably catches a
//! truncated tail.

use std::fmt;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row};

use crate::core::audit::copy::{self, Batch, RowKind};
use crate::core::audit::{AuditKey, AuditRecord, COLUMNS, GENESIS, Hash, canonical, head};
use crate::core::audit::{record_from_row, verify as this};
use crate::core::{Error, Result};

/// Entries read per query.
pub const BATCH: i64 = 20_000;

/// How far (in seq) from its place an entry is looked for when its hash does
/// not match (to tell "reordered" from "changed").
const REORDER_WINDOW: i64 = 256;

/// Where a verification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyProgress {
    pub done: u64,
    pub total: u64,
}

/// What is wrong at the first broken seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The entry's hash does not match its content: it was changed.
    /// `or_bad_key`: it is the first entry checked and nothing follows to
    /// tell a changed entry from a wrong key.
    Changed { or_bad_key: bool },
    /// Entries seq..=through are absent: a gap in seq.
    Missing { through: i64 },
    /// The entry's content is authentic but was written as another seq.
    Reordered { written_as: i64 },
    /// The entry's hash is right but its prev_hash is not the hash of the
    /// entry before it.
    BrokenLink,
    /// Every entry checked from the start fails while the links between them
    /// are intact: the key is not the one the chain was written with.
    BadKey,
    /// The log ends before the seq that `audit_head` names: the tail was cut.
    TailMissing { head_seq: i64 },
    /// The last entry's hash differs from the hash `audit_head` holds.
    HeadMismatch,
    /// The log ends before the checkpoint's seq: the tail was truncated
    /// (and the head rewound).
    Truncated {
        checkpoint_seq: i64,
        checkpoint_at: DateTime<Utc>,
    },
    /// The entry at the checkpoint's seq has another hash than the
    /// checkpoint: the log was rewritten after the checkpoint.
    CheckpointMismatch,
    /// The stored row cannot be read back into an entry.
    Unreadable(String),
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every entry in `from..=to` is authentic and linked (`entries` of them;
    /// 0 when the range is empty).
    Intact { from: i64, to: i64, entries: u64 },
    /// The first broken seq and what is wrong there.
    Broken { seq: i64, problem: Problem },
}

impl Verdict {
    pub fn is_intact(&self) -> bool {
        matches!(self, Verdict::Intact { .. })
    }

    /// The first broken seq, if any.
    pub fn broken_seq(&self) -> Option<i64> {
        match self {
            Verdict::Intact { .. } => None,
            Verdict::Broken { seq, .. } => Some(*seq),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (seq, problem) = match self {
            Verdict::Intact { entries: 0, .. } => return write!(f, "ok: no entries to verify"),
            Verdict::Intact { from, to, entries } => {
                return write!(f, "ok: {entries} entries verified, seq {from} to {to}");
            }
            Verdict::Broken { seq, problem } => (*seq, problem),
        };
        match problem {
            Problem::Changed { or_bad_key: false } => {
                write!(
                    f,
                    "changed: hash mismatch at seq {seq}: the entry was changed"
                )
            }
            Problem::Changed { or_bad_key: true } => {
                write!(
                    f,
                    "changed: hash mismatch at seq {seq}: wrong key or changed entry"
                )
            }
            Problem::Missing { through } if *through == seq => {
                write!(f, "missing: entry seq {seq} is absent (gap in seq)")
            }
            Problem::Missing { through } => {
                write!(
                    f,
                    "missing: entries seq {seq} to {through} are absent (gap in seq)"
                )
            }
            Problem::Reordered { written_as } => write!(
                f,
                "reordered: seq {seq} holds the entry written as seq {written_as}"
            ),
            Problem::BrokenLink => write!(
                f,
                "reordered: broken link at seq {seq}: its prev_hash is not the hash of seq {}",
                seq - 1
            ),
            Problem::BadKey => write!(
                f,
                "bad key: hash mismatch at seq {seq}: every entry from seq {seq} on fails while the links between them are intact; wrong key"
            ),
            Problem::TailMissing { head_seq } => write!(
                f,
                "missing: the log ends at seq {} but its head names seq {head_seq}: the tail was truncated",
                seq - 1
            ),
            Problem::HeadMismatch => write!(
                f,
                "changed: the head's hash differs from the hash of seq {seq}"
            ),
            Problem::Truncated {
                checkpoint_seq,
                checkpoint_at,
            } => write!(
                f,
                "truncated: the log ends at seq {} but the checkpoint of {} names seq {checkpoint_seq}",
                seq - 1,
                checkpoint_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            Problem::CheckpointMismatch => write!(
                f,
                "changed: seq {seq} differs from the checkpoint: the log was rewritten after it"
            ),
            Problem::Unreadable(why) => write!(f, "changed: seq {seq} cannot be read: {why}"),
        }
    }
}

/// The head of the chain, kept outside the database (a file, an object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: Hash,
    /// The time of the head entry (the database clock).
    pub at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointJson {
    seq: i64,
    hash: String,
    at: DateTime<Utc>,
}

impl Checkpoint {
    pub fn to_json(&self) -> String {
        let j = CheckpointJson {
            seq: self.seq,
            hash: hex::encode(self.hash),
            at: self.at,
        };
        serde_json::to_string_pretty(&j).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Result<Checkpoint> {
        let j: CheckpointJson = serde_json::from_str(text)
            .map_err(|e| Error::InvalidInput(format!("checkpoint is not valid: {e}")))?;
        let hash = hex::decode(&j.hash)
            .ok()
            .and_then(|h| Hash::try_from(h).ok())
            .ok_or_else(|| Error::InvalidInput("checkpoint hash is not 32 bytes of hex".into()))?;
        Ok(Checkpoint {
            seq: j.seq,
            hash,
            at: j.at,
        })
    }

    /// Writes the checkpoint as JSON (replacing the file atomically).
    pub fn write(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("tmp-checkpoint");
        std::fs::write(&tmp, self.to_json() + "\n")
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| {
                Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("checkpoint {}: {e}", path.display()),
                ))
            })
    }

    pub fn read(path: &Path) -> Result<Checkpoint> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("checkpoint {}: {e}", path.display()),
            ))
        })?;
        Checkpoint::from_json(&text)
            .map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))
    }
}

/// The current head as a checkpoint (seq 0, [`GENESIS`] and the database's
/// time for an empty log).
pub async fn checkpoint(pool: &PgPool) -> Result<Checkpoint> {
    let row = sqlx::query(
        "SELECT h.seq, h.hash, coalesce(l.at, now())
           FROM audit_head h LEFT JOIN audit_log l ON l.seq = h.seq
          WHERE h.id",
    )
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| Error::NotFound("audit_head row is missing".into()))?;
    let hash: Vec<u8> = row.try_get(1)?;
    Ok(Checkpoint {
        seq: row.try_get(0)?,
        hash: hash
            .try_into()
            .map_err(|_| Error::InvalidInput("audit_head hash is not 32 bytes".into()))?,
        at: row.try_get(2)?,
    })
}

/// A prefetch task that is aborted when verify returns early.
struct Prefetch(tokio::task::JoinHandle<Result<Batch>>);

impl Prefetch {
    fn start(pool: &PgPool, after: i64, upto: i64) -> Prefetch {
        Prefetch(tokio::spawn(copy::fetch_batch(
            pool.clone(),
            after,
            upto,
            BATCH,
        )))
    }

    async fn rows(mut self) -> Result<Batch> {
        match (&mut self.0).await {
            Ok(r) => r,
            Err(e) => Err(Error::Unavailable {
                which: crate::core::db::CONSOLE,
                detail: format!("audit verify batch: {e}"),
            }),
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn broken(seq: i64, problem: Problem) -> Verdict {
    Verdict::Broken { seq, problem }
}

/// Recomputes the chain from `from` (default 1) up to the head read at the
/// start (entries appended meanwhile are left for the next run). With a
/// `from` above 1, the link into `from` is checked against the stored hash of
/// `from - 1`, which is itself not verified. `progress` is called after each batch.
///
/// Errors are for the database being unreachable; a damaged chain is a
/// [`Verdict::Broken`].
pub async fn verify<P>(
    pool: &PgPool,
    key: &AuditKey,
    from: Option<i64>,
    checkpoint: Option<&Checkpoint>,
    mut progress: P,
) -> Result<Verdict>
where
    P: FnMut(VerifyProgress) + Send,
{
    let (head_seq, head_hash) = head(pool).await?;
    let start = from.unwrap_or(1).max(1);
    let mut expected_prev: Option<Hash> = if start == 1 {
        Some(GENESIS)
    } else {
        let h: Option<Vec<u8>> = sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1")
            .bind(start - 1)
            .fetch_optional(pool)
            .await?;
        h.and_then(|h| Hash::try_from(h).ok())
    };
    if let Some(cp) = checkpoint.filter(|cp| cp.seq >= 1 && cp.seq < start) {
        let h: Option<Vec<u8>> = sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1")
            .bind(cp.seq)
            .fetch_optional(pool)
            .await?;
        match h {
            None => return Ok(broken(cp.seq, Problem::Missing { through: cp.seq })),
            Some(h) if h[..] != cp.hash[..] => {
                return Ok(broken(cp.seq, Problem::CheckpointMismatch));
            }
            Some(_) => {}
        }
    }
    let total = u64::try_from(head_seq - start + 1).unwrap_or(0);
    let mut expected_seq = start;
    let mut done: u64 = 0;
    let mut buf = Vec::with_capacity(512);
    let mut next = (start - 1 < head_seq).then(|| Prefetch::start(pool, start - 1, head_seq));
    while let Some(pending) = next.take() {
        let batch = pending.rows().await?;
        let Some(last) = batch.rows.last().map(|r| r.seq) else {
            break;
        };
        if last < head_seq {
            next = Some(Prefetch::start(pool, last, head_seq));
        }
        for (i, row) in batch.rows.iter().enumerate() {
            let seq = row.seq;
            if seq != expected_seq {
                return Ok(broken(expected_seq, Problem::Missing { through: seq - 1 }));
            }
            // The canonical bytes were prepared by the fetching task; the
            // slow rows are encoded here as before.
            let (prev_hash, hash, ok) = match &row.kind {
                RowKind::Fast {
                    start,
                    end,
                    prev_hash,
                    hash,
                } => (
                    *prev_hash,
                    *hash,
                    key.mac(batch.canonical(*start, *end)) == *hash,
                ),
                RowKind::Slow(slow) => {
                    let rec = match slow.as_ref() {
                        Ok(r) => r,
                        Err(e) => return Ok(broken(seq, Problem::Unreadable(e.clone()))),
                    };
                    canonical::encode_into(
                        &mut buf,
                        seq,
                        rec.at.timestamp_micros(),
                        &rec.entry,
                        &rec.prev_hash,
                    );
                    (rec.prev_hash, rec.hash, key.mac(&buf) == rec.hash)
                }
            };
            if !ok {
                drop(next.take());
                let rec = match batch.record(i) {
                    Ok(r) => r,
                    Err(e) => return Ok(broken(seq, Problem::Unreadable(e))),
                };
                canonical::encode_into(
                    &mut buf,
                    seq,
                    rec.at.timestamp_micros(),
                    &rec.entry,
                    &rec.prev_hash,
                );
                let problem = this::diagnose(pool, key, &rec, &mut buf, seq == start).await?;
                return Ok(broken(seq, problem));
            }
            if expected_prev.is_some_and(|p| p != prev_hash) {
                return Ok(broken(seq, Problem::BrokenLink));
            }
            if let Some(cp) = checkpoint.filter(|cp| cp.seq == seq && cp.hash != hash) {
                return Ok(broken(cp.seq, Problem::CheckpointMismatch));
            }
            expected_prev = Some(hash);
            expected_seq += 1;
            done += 1;
        }
        progress(VerifyProgress { done, total });
    }
    let last_seq = expected_seq - 1;
    if last_seq < head_seq {
        return Ok(broken(expected_seq, Problem::TailMissing { head_seq }));
    }
    if head_seq >= start && expected_prev != Some(head_hash) {
        return Ok(broken(head_seq, Problem::HeadMismatch));
    }
    if let Some(cp) = checkpoint {
        if cp.seq > last_seq {
            return Ok(broken(
                last_seq + 1,
                Problem::Truncated {
                    checkpoint_seq: cp.seq,
                    checkpoint_at: cp.at,
                },
            ));
        }
        if cp.seq == 0 && cp.hash != GENESIS {
            return Ok(broken(1, Problem::CheckpointMismatch));
        }
    }
    Ok(Verdict::Intact {
        from: start,
        to: last_seq,
        entries: done,
    })
}

/// Why the entry's hash does not match: moved from another seq, a wrong key,
/// or changed. `buf` holds its canonical bytes.
async fn diagnose(
    pool: &PgPool,
    key: &AuditKey,
    rec: &AuditRecord,
    buf: &mut [u8],
    first_checked: bool,
) -> Result<Problem> {
    let s = rec.seq;
    let matches_as = |buf: &mut [u8], x: i64| {
        buf[canonical::SEQ_OFFSET..canonical::SEQ_OFFSET + 8].copy_from_slice(&x.to_be_bytes());
        key.mac(buf) == rec.hash
    };
    // Nearest first: a swap of neighbours is the common case.
    for d in 1..=REORDER_WINDOW {
        for x in [s - d, s + d] {
            if x >= 1 && matches_as(buf, x) {
                return Ok(Problem::Reordered { written_as: x });
            }
        }
    }
    // Farther away: the entry written right after the one whose hash is our
    // prev_hash (that entry may itself have moved: look it up by hash).
    let before: Option<i64> = if rec.prev_hash == GENESIS {
        Some(0)
    } else {
        sqlx::query_scalar("SELECT seq FROM audit_log WHERE hash = $1 LIMIT 1")
            .bind(&rec.prev_hash[..])
            .fetch_optional(pool)
            .await?
    };
    if let Some(x) = before.map(|b| b + 1).filter(|x| *x != s)
        && matches_as(buf, x)
    {
        return Ok(Problem::Reordered { written_as: x });
    }
    if !first_checked {
        return Ok(Problem::Changed { or_bad_key: false });
    }
    // The first entry checked fails. If the next ones fail too while their
    // links are intact, the key is wrong; if only this one fails, it changed.
    let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 3");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(s)
        .fetch_all(pool)
        .await?;
    if rows.is_empty() {
        return Ok(Problem::Changed { or_bad_key: true });
    }
    let mut prev = rec.hash;
    for row in &rows {
        let Ok(next) = record_from_row(row) else {
            return Ok(Problem::Changed { or_bad_key: false });
        };
        if next.prev_hash != prev || key.mac(&next.canonical()) == next.hash {
            return Ok(Problem::Changed { or_bad_key: false });
        }
        prev = next.hash;
    }
    Ok(Problem::BadKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(seq: i64, problem: Problem) -> String {
        broken(seq, problem).to_string()
    }

    #[test]
    fn verdicts_read_as_plain_sentences() {
        let empty = Verdict::Intact {
            from: 1,
            to: 0,
            entries: 0,
        };
        assert_eq!(empty.to_string(), "ok: no entries to verify");
        assert!(empty.is_intact() && empty.broken_seq().is_none());
        assert_eq!(
            Verdict::Intact {
                from: 2,
                to: 9,
                entries: 8
            }
            .to_string(),
            "ok: 8 entries verified, seq 2 to 9"
        );
        let one = broken(7, Problem::Missing { through: 7 });
        assert!(!one.is_intact());
        assert_eq!(one.broken_seq(), Some(7));
        assert_eq!(
            one.to_string(),
            "missing: entry seq 7 is absent (gap in seq)"
        );
        assert_eq!(
            shown(7, Problem::Missing { through: 9 }),
            "missing: entries seq 7 to 9 are absent (gap in seq)"
        );
        assert_eq!(
            shown(4, Problem::BrokenLink),
            "reordered: broken link at seq 4: its prev_hash is not the hash of seq 3"
        );
        assert_eq!(
            shown(5, Problem::TailMissing { head_seq: 8 }),
            "missing: the log ends at seq 4 but its head names seq 8: the tail was truncated"
        );
        let at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            shown(
                6,
                Problem::Truncated {
                    checkpoint_seq: 9,
                    checkpoint_at: at
                }
            ),
            "truncated: the log ends at seq 5 but the checkpoint of 2026-01-02T03:04:05Z names seq 9"
        );
        assert_eq!(
            shown(5, Problem::HeadMismatch),
            "changed: the head's hash differs from the hash of seq 5"
        );
        assert_eq!(
            shown(3, Problem::CheckpointMismatch),
            "changed: seq 3 differs from the checkpoint: the log was rewritten after it"
        );
        assert_eq!(
            shown(2, Problem::Unreadable("unknown outcome".into())),
            "changed: seq 2 cannot be read: unknown outcome"
        );
    }

    #[test]
    fn a_checkpoint_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head.json");
        let cp = Checkpoint {
            seq: 42,
            hash: [7; 32],
            at: DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456Z")
                .unwrap()
                .with_timezone(&Utc),
        };
        cp.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("}\n"), "{text}");
        assert_eq!(Checkpoint::read(&path).unwrap(), cp);
        // Only the checkpoint remains: the temporary file was renamed.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let bad = cp.to_json().replace(&hex::encode([7u8; 32]), "abcd");
        assert!(Checkpoint::from_json(&bad).is_err());
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            seq: 42,
            hash: [7; 32],
            at: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
        }
    }

    #[test]
    fn checkpoint_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("head.json");
        match checkpoint().write(&path) {
            Err(Error::Io(e)) => {
                assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
                assert!(e.to_string().contains("checkpoint "), "{e}");
                assert!(e.to_string().contains("head.json"), "{e}");
            }
            other => panic!("expected an I/O error, got {other:?}"),
        }
        match Checkpoint::read(&path) {
            Err(Error::Io(e)) => {
                assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
                assert!(e.to_string().contains("head.json"), "{e}");
            }
            other => panic!("expected an I/O error, got {other:?}"),
        }
        let bad = dir.path().join("bad.json");
        std::fs::write(
            &bad,
            r#"{"seq": 1, "hash": "abcd", "at": "2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        match Checkpoint::read(&bad) {
            Err(Error::InvalidInput(m)) => {
                assert!(m.contains("bad.json"), "{m}");
                assert!(m.contains("not 32 bytes of hex"), "{m}");
            }
            other => panic!("expected invalid input, got {other:?}"),
        }
    }
}
