//! The optional JSONL mirror: each entry, once committed, is also appended as
//! one JSON line (hashes in hex, the same form as `export --format jsonl`) to a
//! local file, for shipping to an immutable store. The database stays the
//! record; a mirror that cannot be written makes the action refused (fail
//! closed), like the database append.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::core::audit::AuditRecord;
use crate::core::{Error, Result};

#[derive(Debug)]
pub struct Mirror {
    path: PathBuf,
    /// Serialises this process's writers; each line is also one `write` to an
    /// `O_APPEND` file, so processes sharing the file do not interleave lines.
    lock: Mutex<()>,
}

impl Mirror {
    pub fn new(path: PathBuf) -> Mirror {
        Mirror {
            path,
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the record as one line. The file is created with mode 0600.
    pub fn write(&self, record: &AuditRecord) -> Result<()> {
        let mut line = record.to_json().to_string();
        line.push('\n');
        let _guard = self
            .lock
            .lock()
            .map_err(|_| Error::Io(std::io::Error::other("audit mirror lock poisoned")))?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| mirror_error(&self.path, e))?;
        f.write_all(line.as_bytes())
            .map_err(|e| mirror_error(&self.path, e))
    }
}

fn mirror_error(path: &Path, e: std::io::Error) -> Error {
    Error::Io(std::io::Error::new(
        e.kind(),
        format!("audit mirror {}: {e}", path.display()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::audit::{NewEntry, Outcome};

    fn record(seq: i64) -> AuditRecord {
        AuditRecord {
            seq,
            at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            entry: NewEntry {
                operator: "ana".into(),
                role: "support".into(),
                key_id: None,
                session_id: uuid::Uuid::nil(),
                event_code: "CH2001I".into(),
                action: "tenant.search".into(),
                tenant_id: None,
                target_table: None,
                target_pk: None,
                target_columns: vec![],
                reason: None,
                outcome: Outcome::Allowed,
                error: None,
                details: serde_json::json!({}),
            },
            prev_hash: [0; 32],
            hash: [1; 32],
        }
    }

    #[test]
    fn each_record_is_one_json_line_in_a_0600_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let m = Mirror::new(path.clone());
        assert_eq!(m.path(), path.as_path());
        m.write(&record(1)).unwrap();
        m.write(&record(2)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["seq"], 2);
        assert_eq!(lines[0]["hash"], hex::encode([1u8; 32]));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_mirror_that_cannot_be_opened_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone").join("audit.jsonl");
        match Mirror::new(path).write(&record(1)) {
            Err(Error::Io(e)) => {
                assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
                let m = e.to_string();
                assert!(m.starts_with("audit mirror "), "{m}");
                assert!(m.contains("audit.jsonl"), "{m}");
            }
            other => panic!("expected an I/O error, got {other:?}"),
        }
    }
}
