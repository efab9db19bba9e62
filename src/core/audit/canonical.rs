//! The canonical bytes of an audit entry: what the HMAC is computed over.
//!
//! Version 1, in this fixed order, every field present:
//!
//! | # | field | encoding |
//! | - | ----- | -------- |
//! | 0 | tag | string `charon-audit-v1` |
//! | 1 | seq | i64, 8 bytes big-endian |
//! | 2 | at | i64 microseconds since 1970-01-01T00:00:00Z, 8 bytes big-endian |
//! | 3 | operator | string |
//! | 4 | role | string |
//! | 5 | key_id | optional string |
//! | 6 | session_id | 16 bytes (UUID) |
//! | 7 | event_code | string |
//! | 8 | action | string |
//! | 9 | tenant_id | optional 16 bytes |
//! | 10 | target_table | optional string |
//! | 11 | target_pk | optional string |
//! | 12 | target_columns | u32 big-endian count, then each as a string |
//! | 13 | reason | optional string |
//! | 14 | outcome | string (`allowed`, `denied`, `failed`) |
//! | 15 | error | optional string |
//! | 16 | details | string: canonical JSON (object keys sorted by their UTF-8 bytes, no whitespace, serde_json escaping and number formatting) |
//! | 17 | prev_hash | bytes (32) |
//!
//! A *string* or *bytes* is a u32 big-endian length followed by that many
//! bytes (UTF-8 for strings). An *optional* value is one byte, 0 for absent,
//! 1 for present, followed by the value. Length prefixes make the encoding
//! unambiguous: no two different entries have the same bytes.

use serde_json::Value;

use crate::core::audit::{Hash, NewEntry};

pub const TAG: &str = "charon-audit-v1";

/// Byte offset of the seq field (after the length-prefixed tag).
pub const SEQ_OFFSET: usize = 4 + TAG.len();

/// Appends the canonical bytes of the entry to `out` (which is cleared first).
pub fn encode_into(out: &mut Vec<u8>, seq: i64, at_micros: i64, e: &NewEntry, prev_hash: &Hash) {
    out.clear();
    put_str(out, TAG);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&at_micros.to_be_bytes());
    put_str(out, &e.operator);
    put_str(out, &e.role);
    put_opt_str(out, e.key_id.as_deref());
    out.extend_from_slice(e.session_id.as_bytes());
    put_str(out, &e.event_code);
    put_str(out, &e.action);
    match e.tenant_id {
        None => out.push(0),
        Some(t) => {
            out.push(1);
            out.extend_from_slice(t.as_bytes());
        }
    }
    put_opt_str(out, e.target_table.as_deref());
    put_opt_str(out, e.target_pk.as_deref());
    put_len(out, e.target_columns.len());
    for c in &e.target_columns {
        put_str(out, c);
    }
    put_opt_str(out, e.reason.as_deref());
    put_str(out, e.outcome.as_str());
    put_opt_str(out, e.error.as_deref());
    let mut json = String::new();
    canonical_json(&e.details, &mut json);
    put_str(out, &json);
    put_bytes(out, prev_hash);
}

/// The canonical bytes of an entry, as a new vector.
pub fn encode(seq: i64, at_micros: i64, e: &NewEntry, prev_hash: &Hash) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    encode_into(&mut out, seq, at_micros, e, prev_hash);
    out
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    // Fields longer than 4 GiB cannot be stored in PostgreSQL anyway (1 GiB limit).
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    out.extend_from_slice(&n.to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

/// JSON with object keys sorted and no whitespace, independent of how
/// serde_json's map orders keys and of how PostgreSQL's jsonb stores them.
pub fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => push_json_str(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_str(k, out);
                out.push(':');
                if let Some(x) = m.get(k) {
                    canonical_json(x, out);
                }
            }
            out.push('}');
        }
    }
}

fn push_json_str(s: &str, out: &mut String) {
    match serde_json::to_string(s) {
        Ok(q) => out.push_str(&q),
        // Serialising a &str cannot fail; keep the encoding total anyway.
        Err(_) => out.push_str("\"\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::audit::Outcome;
    use serde_json::json;
    use uuid::Uuid;

    fn entry() -> NewEntry {
        NewEntry {
            operator: "ana".into(),
            role: "support".into(),
            key_id: None,
            session_id: Uuid::nil(),
            event_code: "CH2001I".into(),
            action: "tenant.search".into(),
            tenant_id: None,
            target_table: None,
            target_pk: None,
            target_columns: vec![],
            reason: None,
            outcome: Outcome::Allowed,
            error: None,
            details: json!({"b": 1, "a": [true, null, "x"]}),
        }
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let mut a = entry();
        a.operator = "ab".into();
        a.role = "c".into();
        let mut b = entry();
        b.operator = "a".into();
        b.role = "bc".into();
        assert_ne!(encode(1, 0, &a, &[0; 32]), encode(1, 0, &b, &[0; 32]));

        let mut c = entry();
        c.target_columns = vec!["ab".into(), "c".into()];
        let mut d = entry();
        d.target_columns = vec!["a".into(), "bc".into()];
        assert_ne!(encode(1, 0, &c, &[0; 32]), encode(1, 0, &d, &[0; 32]));

        let mut e = entry();
        e.key_id = Some(String::new());
        assert_ne!(encode(1, 0, &e, &[0; 32]), encode(1, 0, &entry(), &[0; 32]));
    }

    #[test]
    fn every_positional_field_changes_the_bytes() {
        let base = encode(7, 1_000_001, &entry(), &[0; 32]);
        assert_ne!(base, encode(8, 1_000_001, &entry(), &[0; 32]));
        assert_ne!(base, encode(7, 1_000_002, &entry(), &[0; 32]));
        assert_ne!(base, encode(7, 1_000_001, &entry(), &[1; 32]));
        assert_eq!(base[SEQ_OFFSET..SEQ_OFFSET + 8], 7i64.to_be_bytes());
    }

    #[test]
    fn json_keys_are_sorted_whatever_the_input_order() {
        let mut s = String::new();
        canonical_json(&json!({"b": 1, "a": {"d": 2, "c": "é\n"}}), &mut s);
        assert_eq!(s, r#"{"a":{"c":"é\n","d":2},"b":1}"#);
    }
}
