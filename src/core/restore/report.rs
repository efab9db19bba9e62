//! The report of a restore test, as JSON and as Markdown.

use super::Verdict;

impl Verdict {
    /// The whole verdict as JSON (what `--json` prints and the history keeps).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
    }

    /// A Markdown report: backup, source, times, every check, the verdict.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let verdict = if self.passed { "PASS" } else { "FAIL" };
        s.push_str(&format!("# Restore test: {verdict}\n\n"));
        s.push_str(&format!("- Source: `{}`\n", md(&self.source)));
        s.push_str(&format!(
            "- Backup: `{}` ({} bytes, {})\n",
            md(&self.backup.id),
            self.backup.size,
            self.backup
                .taken_at
                .map(|t| format!("taken {}", t.to_rfc3339()))
                .unwrap_or_else(|| "time unknown".into())
        ));
        if let Some(a) = self.backup_age_secs {
            s.push_str(&format!("- Backup age at test time: {a} s\n"));
        }
        s.push_str(&format!(
            "- Started {}, finished {} ({} ms)\n",
            self.started_at.to_rfc3339(),
            self.finished_at.to_rfc3339(),
            self.total_ms
        ));
        if let Some(ms) = self.restore_ms {
            s.push_str(&format!("- Restore took {ms} ms\n"));
        }
        if let Some(db) = &self.scratch_db {
            s.push_str(&format!("- Scratch database: `{}`\n", md(db)));
        }
        s.push_str("\n| Check | Result | Reason |\n|---|---|---|\n");
        for c in &self.checks {
            let result = match (c.passed, c.skipped) {
                (true, false) => "pass",
                (true, true) => "skipped",
                (false, true) => "not run",
                (false, false) => "FAIL",
            };
            s.push_str(&format!(
                "| {} | {result} | {} |\n",
                md(&c.name),
                md(&c.reason)
            ));
        }
        s
    }
}

/// Text safe inside a Markdown table cell.
fn md(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}
