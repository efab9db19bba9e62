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
