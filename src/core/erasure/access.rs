//! Access requests (the right of access): the same discovery as an erasure,
//! exported instead of erased, so that "what we found" and "what we erase"
//! can never disagree. The export is one tar archive (mode 0600):
//!
//! - `manifest.json`: request id, time, per table the rows and the file's SHA-256;
//! - `tables/<table>.json`: a JSON array of the subject's rows, every column
//!   but credentials (e.g. Plaid access tokens);
//! - `external.json`: the external objects (receipt images, Plaid items).
//!
//! Rows of other people that merely mention the subject (the `redact`
//! groups of an erasure plan) are counted, not exported: they are someone
//! else's records.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use futures::TryStreamExt;

use super::execute::{filters, push_filter};
use super::{RowAction, Subject, TableFind, discover_in};
use crate::core::datamap::{Catalog, Category, DataMap};
use crate::core::{Error, Result};

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccessExport {
    pub path: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    /// Rows exported per table.
    pub tables: BTreeMap<String, u64>,
    /// Rows of other people naming the subject, not exported.
    pub mentions_not_exported: u64,
    pub external_objects: u64,
}

fn io(what: &str, e: std::io::Error) -> Error {
    Error::Config(format!("access export: {what}: {e}"))
}

/// Discovers the subject on `pool` (one REPEATABLE READ, read-only
/// transaction) and writes `dir/access-<id>.tar`.
pub async fn export(
    pool: &PgPool,
    map: &DataMap,
    catalog: &Catalog,
    subject: &Subject,
    id: Uuid,
    dir: &Path,
) -> Result<AccessExport> {
    std::fs::create_dir_all(dir).map_err(|e| io(&format!("creating {}", dir.display()), e))?;
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let d = discover_in(&mut tx, map, catalog, subject).await?;

    // The subject's rows per table (any action but redact).
    let mut per_table: BTreeMap<String, Vec<&TableFind>> = BTreeMap::new();
    let mut mentions = 0u64;
    for f in &d.tables {
        if f.action == RowAction::Redact {
            mentions += f.count;
            continue;
        }
        per_table.entry(f.table.clone()).or_default().push(f);
    }

    let scratch = tempfile::tempdir_in(dir).map_err(|e| io("temporary directory", e))?;
    let mut manifest_tables = Vec::new();
    let mut counts = BTreeMap::new();
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for (table, finds) in &per_table {
        let hidden: Vec<String> = map
            .table(table)
            .map(|t| {
                t.columns
                    .iter()
                    .filter(|c| c.category == Category::Credential)
                    .map(|c| c.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        let file = scratch.path().join(format!("{table}.json"));
        let mut w = std::io::BufWriter::new(
            std::fs::File::create(&file).map_err(|e| io("temporary file", e))?,
        );
        let mut h = Sha256::new();
        let mut put = |w: &mut std::io::BufWriter<std::fs::File>, s: &[u8]| {
            h.update(s);
            w.write_all(s)
        };
        put(&mut w, b"[").map_err(|e| io("writing", e))?;
        let mut n = 0u64;
        for find in finds {
            for filter in filters(find) {
                let mut qb = QueryBuilder::<Postgres>::new("SELECT (to_jsonb(t0) - ");
                qb.push_bind(hidden.clone())
                    .push("::text[])::text FROM ")
                    .push(catalog.table(table)?.as_str())
                    .push(" AS t0");
                push_filter(&mut qb, map, catalog, &d, find, &filter)?;
                let mut rows = qb.build_query_scalar::<String>().fetch(&mut *tx);
                while let Some(r) = rows.try_next().await? {
                    put(&mut w, if n == 0 { b"\n" } else { b",\n" })
                        .map_err(|e| io("writing", e))?;
                    put(&mut w, r.as_bytes()).map_err(|e| io("writing", e))?;
                    n += 1;
                }
            }
        }
        put(&mut w, b"\n]\n").map_err(|e| io("writing", e))?;
        w.flush().map_err(|e| io("writing", e))?;
        manifest_tables.push(serde_json::json!({
            "table": table,
            "rows": n,
            "file": format!("tables/{table}.json"),
            "sha256": hex::encode(h.finalize()),
        }));
        counts.insert(table.clone(), n);
        files.push((format!("tables/{table}.json"), file));
    }
    tx.commit().await?;

    let external: Vec<serde_json::Value> = d
        .external
        .iter()
        .map(|e| serde_json::json!({ "system": e.system, "objects": e.objects }))
        .collect();
    let external_objects = d.external.iter().map(|e| e.objects.len() as u64).sum();
    let manifest = serde_json::json!({
        "request": id.to_string(),
        "subject": d.subject_ref,
        "generated_at": chrono::Utc::now().to_rfc3339(),
        "tables": manifest_tables,
        "external_objects": external_objects,
        "mentions_in_other_records_not_exported": mentions,
    });

    let path = dir.join(format!("access-{id}.tar"));
    let out = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io(&format!("creating {}", path.display()), e))?
    };
    let mut tar = tar::Builder::new(out);
    let add_bytes = |tar: &mut tar::Builder<std::fs::File>, name: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
        header.set_cksum();
        tar.append_data(&mut header, name, data)
    };
    let pretty = |v: &serde_json::Value| serde_json::to_vec_pretty(v).unwrap_or_default();
    add_bytes(&mut tar, "manifest.json", &pretty(&manifest)).map_err(|e| io("archive", e))?;
    add_bytes(
        &mut tar,
        "external.json",
        &pretty(&serde_json::Value::from(external)),
    )
    .map_err(|e| io("archive", e))?;
    for (name, file) in &files {
        tar.append_path_with_name(file, name)
            .map_err(|e| io("archive", e))?;
    }
    let mut f = tar.into_inner().map_err(|e| io("archive", e))?;
    f.flush().map_err(|e| io("archive", e))?;
    f.sync_all().map_err(|e| io("archive", e))?;
    drop(f);

    let mut h = Sha256::new();
    let mut r = std::fs::File::open(&path).map_err(|e| io("reading the archive", e))?;
    let bytes = std::io::copy(&mut r, &mut h).map_err(|e| io("reading the archive", e))?;
    Ok(AccessExport {
        path,
        sha256: hex::encode(h.finalize()),
        bytes,
        tables: counts,
        mentions_not_exported: mentions,
        external_objects,
    })
}
