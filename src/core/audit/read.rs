//! Reading the audit log: pages (newest first, keyset), one entry, export.
//! Front ends reach these through audited actions (`Action::AuditList`,
//! `AuditShow`, `AuditExport`), so reading the log is itself recorded.

use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::core::audit::{AuditRecord, COLUMNS, Outcome, canonical, record_from_row};
use crate::core::{Error, Result};

/// Entries per page of the audit screen.
pub const PAGE_SIZE: i64 = 100;

/// Entries read per query by [`export`].
const EXPORT_BATCH: i64 = 5_000;

/// Which entries a page shows. Every field narrows; `None` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub operator: Option<String>,
    /// An action name, e.g. `tenant.open`.
    pub action: Option<String>,
    pub tenant: Option<Uuid>,
    pub outcome: Option<Outcome>,
    /// `at >= since`
    pub since: Option<DateTime<Utc>>,
    /// `at < until`
    pub until: Option<DateTime<Utc>>,
}

impl AuditFilter {
    /// The filter as JSON, for the audit entry of the read itself.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "operator": self.operator,
            "action": self.action,
            "tenant": self.tenant,
            "outcome": self.outcome,
            "since": self.since.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            "until": self.until.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        })
    }
}

/// One page, newest first. `next_before` is the cursor for the next (older)
/// page: pass it as `before`; `None` when this is the last page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    pub entries: Vec<AuditRecord>,
    pub next_before: Option<i64>,
}

/// One page of entries matching `filter` with `seq < before`, newest first,
/// at most `limit` (1..=1000). Keyset pagination: the cost of a page does not
/// grow with how far back it is.
pub async fn list(
    pool: &PgPool,
    filter: &AuditFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<AuditPage> {
    let limit = limit.clamp(1, 1000);
    // Built from fixed fragments only; every value is a bound parameter.
    let mut sql = format!("SELECT {COLUMNS} FROM audit_log WHERE true");
    let mut n = 0;
    let mut arg = |sql: &mut String, fragment: &str| {
        n += 1;
        sql.push_str(&fragment.replace('?', &format!("${n}")));
    };
    if filter.operator.is_some() {
        arg(&mut sql, " AND operator = ?");
    }
    if filter.action.is_some() {
        arg(&mut sql, " AND action = ?");
    }
    if filter.tenant.is_some() {
        arg(&mut sql, " AND tenant_id = ?");
    }
    if filter.outcome.is_some() {
        arg(&mut sql, " AND outcome = ?");
    }
    if filter.since.is_some() {
        arg(&mut sql, " AND at >= ?");
    }
    if filter.until.is_some() {
        arg(&mut sql, " AND at < ?");
    }
    if before.is_some() {
        arg(&mut sql, " AND seq < ?");
    }
    arg(&mut sql, " ORDER BY seq DESC LIMIT ?");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    if let Some(v) = &filter.operator {
        q = q.bind(v.clone());
    }
    if let Some(v) = &filter.action {
        q = q.bind(v.clone());
    }
    if let Some(v) = filter.tenant {
        q = q.bind(v);
    }
    if let Some(v) = filter.outcome {
        q = q.bind(v.as_str());
    }
    if let Some(v) = filter.since {
        q = q.bind(v);
    }
    if let Some(v) = filter.until {
        q = q.bind(v);
    }
    if let Some(v) = before {
        q = q.bind(v);
    }
    // One more than asked, to know whether an older page exists.
    let rows = q.bind(limit + 1).fetch_all(pool).await?;
    let mut entries = rows
        .iter()
        .map(record_from_row)
        .collect::<Result<Vec<_>>>()?;
    let more = entries.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    entries.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_before = if more {
        entries.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(AuditPage {
        entries,
        next_before,
    })
}

/// One entry in full.
pub async fn show(pool: &PgPool, seq: i64) -> Result<Option<AuditRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(seq)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(record_from_row).transpose()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per line, hashes in hex (the mirror's form).
    Jsonl,
    /// A header line, then one line per entry; see [`CSV_HEADER`].
    Csv,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Option<ExportFormat> {
        match s {
            "jsonl" => Some(ExportFormat::Jsonl),
            "csv" => Some(ExportFormat::Csv),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Csv => "csv",
        }
    }
}

/// Where an export goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportDest {
    /// A new file (an existing file is not overwritten).
    File(PathBuf),
    Stdout,
}

pub const CSV_HEADER: &str = "seq,at,operator,role,key_id,session_id,event_code,action,tenant_id,\
target_table,target_pk,target_columns,reason,outcome,error,details,prev_hash,hash";

/// Writes the entries with `since <= at < until` in seq order to `out`,
/// reading in batches (memory stays flat). Returns how many were written.
///
/// CSV: RFC 4180 quoting; `target_columns` and `details` are JSON text; a
/// cell starting with `=`, `+`, `-`, `@`, tab or CR is prefixed with `'` so a
/// spreadsheet does not run it as a formula (use JSONL to re-verify hashes).
pub async fn export<W: Write + Send>(
    pool: &PgPool,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    format: ExportFormat,
    out: &mut W,
) -> Result<u64> {
    let io = |e: std::io::Error| Error::Io(e);
    if format == ExportFormat::Csv {
        writeln!(out, "{CSV_HEADER}").map_err(io)?;
    }
    // The seq range of the time range (the `at` index), then keyset by seq.
    let bounds = sqlx::query(
        "SELECT min(seq), max(seq) FROM audit_log
          WHERE ($1::timestamptz IS NULL OR at >= $1) AND ($2::timestamptz IS NULL OR at < $2)",
    )
    .bind(since)
    .bind(until)
    .fetch_one(pool)
    .await?;
    let (Some(lo), Some(hi)) = (
        bounds.try_get::<Option<i64>, _>(0)?,
        bounds.try_get::<Option<i64>, _>(1)?,
    ) else {
        out.flush().map_err(io)?;
        return Ok(0);
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_log
          WHERE seq > $1 AND seq <= $2
            AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4)
          ORDER BY seq LIMIT $5"
    );
    let mut after = lo - 1;
    let mut written = 0u64;
    let mut line = String::with_capacity(1024);
    while after < hi {
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(after)
            .bind(hi)
            .bind(since)
            .bind(until)
            .bind(EXPORT_BATCH)
            .fetch_all(pool)
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get(0)?;
        for row in &rows {
            let rec = record_from_row(row)?;
            line.clear();
            match format {
                ExportFormat::Jsonl => line.push_str(&rec.to_json().to_string()),
                ExportFormat::Csv => csv_line(&rec, &mut line),
            }
            line.push('\n');
            out.write_all(line.as_bytes()).map_err(io)?;
            written += 1;
        }
    }
    out.flush().map_err(io)?;
    Ok(written)
}

fn csv_line(r: &AuditRecord, out: &mut String) {
    let e = &r.entry;
    let mut details = String::new();
    canonical::canonical_json(&e.details, &mut details);
    let columns = serde_json::to_string(&e.target_columns).unwrap_or_default();
    let cells: [Option<String>; 18] = [
        Some(r.seq.to_string()),
        Some(r.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        Some(e.operator.clone()),
        Some(e.role.clone()),
        e.key_id.clone(),
        Some(e.session_id.to_string()),
        Some(e.event_code.clone()),
        Some(e.action.clone()),
        e.tenant_id.map(|t| t.to_string()),
        e.target_table.clone(),
        e.target_pk.clone(),
        Some(columns),
        e.reason.clone(),
        Some(e.outcome.as_str().to_string()),
        e.error.clone(),
        Some(details),
        Some(hex::encode(r.prev_hash)),
        Some(hex::encode(r.hash)),
    ];
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if let Some(c) = cell {
            csv_cell(c, out);
        }
    }
}

/// One CSV cell: quoted when needed, formula-looking text defused.
pub fn csv_cell(c: &str, out: &mut String) {
    let formula = c.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = formula || c.contains([',', '"', '\n', '\r']);
    if quote {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    for ch in c.chars() {
        if ch == '"' {
            out.push('"');
        }
        out.push(ch);
    }
    if quote {
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(s: &str) -> String {
        let mut o = String::new();
        csv_cell(s, &mut o);
        o
    }

    #[test]
    fn export_formats_round_trip_by_name() {
        // The name is what the CLI takes and what the export's audit entry records.
        for (f, name) in [(ExportFormat::Jsonl, "jsonl"), (ExportFormat::Csv, "csv")] {
            assert_eq!(f.as_str(), name);
            assert_eq!(ExportFormat::parse(name), Some(f));
        }
        assert_eq!(ExportFormat::parse("json"), None);
        assert_eq!(ExportFormat::parse("CSV"), None);
    }

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(1)"), "\"'=HYPERLINK(1)\"");
        assert_eq!(cell("line\nbreak"), "\"line\nbreak\"");
    }

    #[test]
    fn export_formats_parse_by_name_and_nothing_else() {
        for f in [ExportFormat::Jsonl, ExportFormat::Csv] {
            assert_eq!(ExportFormat::parse(f.as_str()), Some(f));
        }
        assert_eq!(ExportFormat::parse("jsonl"), Some(ExportFormat::Jsonl));
        assert_eq!(ExportFormat::parse("csv"), Some(ExportFormat::Csv));
        assert_eq!(ExportFormat::parse("CSV"), None);
        assert_eq!(ExportFormat::parse("xml"), None);
        assert_eq!(ExportFormat::parse(""), None);
    }
}
