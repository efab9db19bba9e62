//! The certificate of a finished request: a JSON document (canonical: keys
//! sorted, no white space, so its SHA-256 can be checked later with
//! `sha256sum`) and the same content as Markdown for people. It is made once,
//! when the request becomes `done`, and stored with its SHA-256.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::core::{Error, Result};

/// A stored certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct Certificate {
    pub json: Value,
    pub sha256: String,
}

impl Certificate {
    /// The exact bytes whose SHA-256 is [`Certificate::sha256`].
    pub fn canonical_json(&self) -> String {
        canonical(&self.json)
    }

    pub fn markdown(&self) -> String {
        render_markdown(&self.json, &self.sha256)
    }
}

/// JSON with object keys sorted at every level and no white space.
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(x) = m.get(k) {
                    write_canonical(x, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// When the request is `executing`, Pluto has committed and no external
/// step is left pending or failed: makes the certificate, stores it, and
/// marks the request `done`. Returns the certificate's SHA-256 when the
/// request is (now or already) done.
pub async fn finish_if_complete(console: &PgPool, id: Uuid) -> Result<Option<String>> {
    let mut tx = console.begin().await?;
    let row = sqlx::query(
        "SELECT state, pluto_committed_at IS NOT NULL, certificate_sha256
           FROM erasure_requests WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::NotFound(format!("erasure request {id}")))?;
    let state: String = row.try_get(0)?;
    let committed: bool = row.try_get(1)?;
    let existing: Option<String> = row.try_get(2)?;
    if state == "done" {
        return Ok(existing);
    }
    if state != "executing" || !committed {
        return Ok(None);
    }
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM erasure_external_queue WHERE request_id = $1 AND state <> 'done'",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    if open > 0 {
        return Ok(None);
    }
    let json = build(&mut tx, id).await?;
    let sha = sha256_hex(&canonical(&json));
    sqlx::query(
        "UPDATE erasure_requests
            SET state = 'done', certificate = $2, certificate_sha256 = $3, failure = NULL
          WHERE id = $1",
    )
    .bind(id)
    .bind(&json)
    .bind(&sha)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(sha))
}

/// The stored certificate of a done request.
pub async fn get(console: &PgPool, id: Uuid) -> Result<Certificate> {
    let row = sqlx::query(
        "SELECT state, certificate, certificate_sha256 FROM erasure_requests WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(console)
    .await?
    .ok_or_else(|| Error::NotFound(format!("erasure request {id}")))?;
    let state: String = row.try_get(0)?;
    let json: Option<Value> = row.try_get(1)?;
    let sha: Option<String> = row.try_get(2)?;
    match (json, sha) {
        (Some(json), Some(sha256)) => {
            let c = Certificate { json, sha256 };
            // Stored in jsonb (which reorders keys): the canonical form must
            // still give the stored hash, else the row was altered.
            if sha256_hex(&c.canonical_json()) != c.sha256 {
                return Err(Error::Conflict(
                    "the stored certificate does not match its SHA-256".into(),
                ));
            }
            Ok(c)
        }
        _ => Err(Error::Conflict(format!(
            "the request is {state}: a certificate exists once it is done"
        ))),
    }
}

async fn build(tx: &mut sqlx::PgConnection, id: Uuid) -> Result<Value> {
    let r = sqlx::query(
        "SELECT kind, subject_ref, ticket, regime, received_at, due_at, executed_at,
                created_by, planned_by, approved_by, executed_by, plan_sha256, plan, result,
                now()
           FROM erasure_requests WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    let kind: String = r.try_get(0)?;
    let access = kind == "access";
    let due: DateTime<Utc> = r.try_get(5)?;
    let executed: Option<DateTime<Utc>> = r.try_get(6)?;
    let now: DateTime<Utc> = r.try_get(14)?;
    let plan: Option<Value> = r.try_get(12)?;
    let plan = plan.unwrap_or(Value::Null);
    let tables: Vec<Value> = plan
        .get("per_table")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .map(|t| {
                    let action = match (access, t.get("action").and_then(|a| a.as_str())) {
                        (true, Some("redact")) => json!("mentioned (not exported)"),
                        (true, _) => json!("exported"),
                        (false, a) => json!(a),
                    };
                    let reason = if access {
                        json!("found for the subject")
                    } else {
                        t.get("reason").cloned().unwrap_or(Value::Null)
                    };
                    json!({
                        "table": t.get("table"),
                        "action": action,
                        "rows": t.get("rows"),
                        "reason": reason,
                        "columns": t.get("columns"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let steps = sqlx::query(
        "SELECT system, object, outcome, done_at FROM erasure_external_queue
          WHERE request_id = $1 ORDER BY system, object",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let mut external: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for s in steps {
        let system: String = s.try_get(0)?;
        let done_at: Option<DateTime<Utc>> = s.try_get(3)?;
        external.entry(system).or_default().push(json!({
            "object": s.try_get::<String, _>(1)?,
            "result": s.try_get::<Option<String>, _>(2)?,
            "at": done_at.map(|t| t.to_rfc3339()),
        }));
    }
    let seqs: Vec<i64> = sqlx::query_scalar(
        "SELECT seq FROM audit_log
          WHERE target_table = 'erasure_requests' AND target_pk = $1 ORDER BY seq",
    )
    .bind(id.to_string())
    .fetch_all(&mut *tx)
    .await?;
    let ts = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339());
    let found_nothing = tables.is_empty() && external.is_empty();
    Ok(json!({
        "document": format!("charon {kind} certificate"),
        "version": 1,
        "request": {
            "id": id.to_string(),
            "kind": kind,
            "subject": r.try_get::<String, _>(1)?,
            "ticket": r.try_get::<String, _>(2)?,
            "regime": r.try_get::<String, _>(3)?,
            "received_at": ts(Some(r.try_get(4)?)),
            "due_at": ts(Some(due)),
            "executed_at": ts(executed),
            "completed_at": ts(Some(now)),
            "on_time": now <= due,
        },
        "operators": {
            "created_by": r.try_get::<String, _>(7)?,
            "planned_by": r.try_get::<Option<String>, _>(8)?,
            "approved_by": r.try_get::<Option<String>, _>(9)?,
            "executed_by": r.try_get::<Option<String>, _>(10)?,
        },
        "plan_sha256": r.try_get::<Option<String>, _>(11)?,
        "found_nothing": found_nothing,
        "tables": tables,
        "external": external
            .into_iter()
            .map(|(system, objects)| json!({ "system": system, "objects": objects }))
            .collect::<Vec<_>>(),
        "totals": r.try_get::<Option<Value>, _>(13)?,
        "audit_seqs": seqs,
    }))
}

fn s(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "—".into(),
        Some(other) => other.to_string(),
    }
}

/// Markdown table cells: no pipes or line breaks from values.
fn cell(v: String) -> String {
    v.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn render_markdown(c: &Value, sha: &str) -> String {
    let req = c.get("request");
    let get = |k: &str| s(req.and_then(|r| r.get(k)));
    let ops = c.get("operators");
    let op = |k: &str| s(ops.and_then(|o| o.get(k)));
    let kind = get("kind");
    let mut md = String::new();
    md.push_str(&format!(
        "# {} certificate\n\n",
        if kind == "access" {
            "Access request"
        } else {
            "Erasure"
        }
    ));
    md.push_str(&format!(
        "| | |\n| --- | --- |\n| Request | `{}` |\n| Subject | {} |\n| Ticket | {} |\n| Regime | {} |\n| Received | {} |\n| Due | {} |\n| Executed | {} |\n| Completed | {} (on time: {}) |\n| Plan SHA-256 | `{}` |\n\n",
        get("id"),
        cell(get("subject")),
        cell(get("ticket")),
        get("regime"),
        get("received_at"),
        get("due_at"),
        get("executed_at"),
        get("completed_at"),
        get("on_time"),
        s(c.get("plan_sha256")),
    ));
    md.push_str(&format!(
        "## Operators\n\n- created by {}\n- planned by {}\n- approved by {}\n- executed by {}\n\n",
        cell(op("created_by")),
        cell(op("planned_by")),
        cell(op("approved_by")),
        cell(op("executed_by"))
    ));
    md.push_str("## Pluto database\n\n");
    let tables = c.get("tables").and_then(|t| t.as_array());
    match tables {
        Some(t) if !t.is_empty() => {
            md.push_str("| table | action | rows | why |\n| --- | --- | ---: | --- |\n");
            for t in t {
                md.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    cell(s(t.get("table"))),
                    s(t.get("action")),
                    s(t.get("rows")),
                    cell(s(t.get("reason")))
                ));
            }
        }
        _ => md.push_str("Nothing was found for this subject.\n"),
    }
    md.push_str("\n## External systems\n\n");
    let ext = c.get("external").and_then(|e| e.as_array());
    match ext {
        Some(e) if !e.is_empty() => {
            for sys in e {
                md.push_str(&format!("### {}\n\n", cell(s(sys.get("system")))));
                for o in sys
                    .get("objects")
                    .and_then(|o| o.as_array())
                    .into_iter()
                    .flatten()
                {
                    md.push_str(&format!(
                        "- `{}`: {}\n",
                        cell(s(o.get("object"))).replace('`', "'"),
                        s(o.get("result"))
                    ));
                }
                md.push('\n');
            }
        }
        _ => md.push_str("No external objects.\n\n"),
    }
    let seqs: Vec<String> = c
        .get("audit_seqs")
        .and_then(|a| a.as_array())
        .map(|a| a.iter().map(|v| v.to_string()).collect())
        .unwrap_or_default();
    md.push_str(&format!(
        "## Audit\n\nRecorded in charon's audit log at sequence numbers {}.\n\n",
        if seqs.is_empty() {
            "—".to_string()
        } else {
            seqs.join(", ")
        }
    ));
    md.push_str(&format!(
        "---\nSHA-256 of the JSON certificate: `{sha}` (check with `sha256sum` on the .json file).\n"
    ));
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = json!({"b": 1, "a": {"z": [ {"y": 1, "x": 2} ], "c": "q\""}});
        assert_eq!(
            canonical(&v),
            r#"{"a":{"c":"q\"","z":[{"x":2,"y":1}]},"b":1}"#
        );
    }

    #[test]
    fn markdown_of_an_empty_result_says_nothing_was_found() {
        let v =
            json!({"request": {"kind": "erasure", "ticket": "T|1"}, "tables": [], "external": []});
        let md = render_markdown(&v, "ab");
        assert!(md.contains("Nothing was found"), "{md}");
        assert!(md.contains("T\\|1"), "{md}");
    }
}
