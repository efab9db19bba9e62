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

/// Fast path for verify: writes to `out` the canonical JSON of the JSON text
/// `text` (as PostgreSQL prints a jsonb value) without building a
/// [`Value`], and returns true; or returns false (with `out` in an
/// unspecified state) when the text holds anything the fast path does not
/// handle, and the caller must take the slow path
/// (`canonical_json(&serde_json::from_slice(text)?)`).
///
/// It handles exactly the inputs for which copying is provably what the slow
/// path would print: strings without any backslash or control character
/// (serde_json escapes only `"`, `\` and control characters, so such a string
/// prints as its own bytes), integers `0` or `-?[1-9][0-9]{0,17}` (parsed into
/// an i64/u64 and printed back by itoa unchanged), `true`, `false`, `null`,
/// arrays, and objects whose keys are distinct (members re-sorted by key
/// bytes). Everything else (escapes, fractions, exponents, long integers, `-0`,
/// duplicate keys, nesting deeper than 64, invalid UTF-8) goes to the slow path.
pub fn canonical_json_fast(text: &[u8], out: &mut Vec<u8>) -> bool {
    if std::str::from_utf8(text).is_err() {
        return false;
    }
    let mut p = Fast { b: text, i: 0 };
    if !p.value(out, 0) {
        return false;
    }
    p.ws();
    p.i == text.len()
}

const FAST_MAX_DEPTH: usize = 64;

struct Fast<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Fast<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// A string without escapes or control characters: its bytes between
    /// the quotes (the opening quote is at `self.i`).
    fn string(&mut self) -> Option<&'a [u8]> {
        if self.b.get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i + 1;
        let mut j = start;
        loop {
            match *self.b.get(j)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => j += 1,
            }
        }
        self.i = j + 1;
        self.b.get(start..j)
    }

    fn value(&mut self, out: &mut Vec<u8>, depth: usize) -> bool {
        self.ws();
        let Some(&c) = self.b.get(self.i) else {
            return false;
        };
        match c {
            b'"' => match self.string() {
                Some(s) => {
                    out.push(b'"');
                    out.extend_from_slice(s);
                    out.push(b'"');
                    true
                }
                None => false,
            },
            b't' => self.literal(b"true", out),
            b'f' => self.literal(b"false", out),
            b'n' => self.literal(b"null", out),
            b'-' | b'0'..=b'9' => self.integer(out),
            b'[' if depth < FAST_MAX_DEPTH => self.array(out, depth),
            b'{' if depth < FAST_MAX_DEPTH => self.object(out, depth),
            _ => false,
        }
    }

    fn literal(&mut self, word: &[u8], out: &mut Vec<u8>) -> bool {
        if self.b.get(self.i..self.i + word.len()) != Some(word) {
            return false;
        }
        self.i += word.len();
        out.extend_from_slice(word);
        true
    }

    fn integer(&mut self, out: &mut Vec<u8>) -> bool {
        let start = self.i;
        let neg = self.b.get(self.i) == Some(&b'-');
        if neg {
            self.i += 1;
        }
        let digits = self.i;
        while let Some(b'0'..=b'9') = self.b.get(self.i) {
            self.i += 1;
        }
        let n = self.i - digits;
        if n == 0 || n > 18 {
            return false;
        }
        if let Some(b'.' | b'e' | b'E') = self.b.get(self.i) {
            return false;
        }
        if self.b[digits] == b'0' && (n > 1 || neg) {
            return false;
        }
        out.extend_from_slice(&self.b[start..self.i]);
        true
    }

    fn array(&mut self, out: &mut Vec<u8>, depth: usize) -> bool {
        self.i += 1;
        out.push(b'[');
        if self.eat(b']') {
            out.push(b']');
            return true;
        }
        loop {
            if !self.value(out, depth + 1) {
                return false;
            }
            if self.eat(b',') {
                out.push(b',');
            } else if self.eat(b']') {
                out.push(b']');
                return true;
            } else {
                return false;
            }
        }
    }

    fn object(&mut self, out: &mut Vec<u8>, depth: usize) -> bool {
        self.i += 1;
        if self.eat(b'}') {
            out.extend_from_slice(b"{}");
            return true;
        }
        // Members' values are printed into `vals`; sorted by key afterwards.
        let mut members: Vec<(&'a [u8], usize, usize)> = Vec::new();
        let mut vals: Vec<u8> = Vec::new();
        loop {
            self.ws();
            let Some(k) = self.string() else {
                return false;
            };
            if !self.eat(b':') {
                return false;
            }
            let start = vals.len();
            if !self.value(&mut vals, depth + 1) {
                return false;
            }
            members.push((k, start, vals.len()));
            if self.eat(b',') {
                continue;
            }
            if self.eat(b'}') {
                break;
            }
            return false;
        }
        members.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if members.windows(2).any(|w| w[0].0 == w[1].0) {
            return false;
        }
        out.push(b'{');
        for (n, (k, s, e)) in members.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(k);
            out.extend_from_slice(b"\":");
            out.extend_from_slice(&vals[*s..*e]);
        }
        out.push(b'}');
        true
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

    /// The slow path's canonical JSON of a JSON text.
    fn slow(text: &str) -> Option<String> {
        let v: Value = serde_json::from_str(text).ok()?;
        let mut s = String::new();
        canonical_json(&v, &mut s);
        Some(s)
    }

    fn fast(text: &str) -> Option<String> {
        let mut out = Vec::new();
        canonical_json_fast(text.as_bytes(), &mut out).then(|| String::from_utf8(out).ok())?
    }

    /// PostgreSQL's jsonb output: keys by length then bytes, ", " and ": ".
    fn pg_text(v: &Value) -> String {
        match v {
            Value::Array(a) => {
                let parts: Vec<String> = a.iter().map(pg_text).collect();
                format!("[{}]", parts.join(", "))
            }
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort_by(|a, b| (a.len(), a.as_bytes()).cmp(&(b.len(), b.as_bytes())));
                let parts: Vec<String> = keys
                    .iter()
                    .map(|k| format!("{}: {}", Value::String((*k).clone()), pg_text(&m[*k])))
                    .collect();
                format!("{{{}}}", parts.join(", "))
            }
            other => other.to_string(),
        }
    }

    fn random_value(rng: &mut rand_chacha::ChaCha8Rng, depth: u32) -> Value {
        use rand::Rng;
        const KEYS: [&str; 12] = [
            "a",
            "b",
            "ab",
            "ba",
            "B",
            "é",
            "z",
            "query_kind",
            "",
            "a\"b",
            "x\ny",
            "\u{7f}",
        ];
        const STRS: [&str; 10] = [
            "",
            "x",
            "é",
            "a/b",
            "tab\t",
            "quote\"",
            "back\\slash",
            "\u{1}",
            "\u{7f}",
            "日本",
        ];
        match rng.gen_range(0..if depth > 3 { 6 } else { 8 }) {
            0 => Value::Null,
            1 => Value::Bool(rng.r#gen()),
            2 => json!(rng.gen_range(-1_000_000i64..1_000_000)),
            3 => match rng.gen_range(0..4) {
                0 => json!(i64::MIN),
                1 => json!(u64::MAX),
                2 => json!(rng.gen_range(-1e6f64..1e6)),
                _ => json!(0.5),
            },
            4 | 5 => Value::String(STRS[rng.gen_range(0..STRS.len())].to_string()),
            6 => Value::Array(
                (0..rng.gen_range(0..4))
                    .map(|_| random_value(rng, depth + 1))
                    .collect(),
            ),
            _ => Value::Object(
                (0..rng.gen_range(0..5))
                    .map(|_| {
                        (
                            KEYS[rng.gen_range(0..KEYS.len())].to_string(),
                            random_value(rng, depth + 1),
                        )
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn json_fast_path_equals_the_slow_path_or_declines() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let mut taken = 0;
        for _ in 0..20_000 {
            let v = random_value(&mut rng, 0);
            for text in [
                pg_text(&v),
                v.to_string(),
                serde_json::to_string_pretty(&v).unwrap_or_default(),
            ] {
                let want = slow(&text);
                assert!(want.is_some(), "{text}");
                if let Some(got) = fast(&text) {
                    assert_eq!(Some(got), want, "{text}");
                    taken += 1;
                }
            }
        }
        assert!(taken > 20_000, "the fast path is taken too rarely: {taken}");
    }

    #[test]
    fn json_fast_path_edge_cases() {
        // Taken, and equal to the slow path.
        for text in [
            r#"{"query_len": 27, "query_kind": "email"}"#,
            r#"{"b": [1, -2, 0, true, false, null, {}], "a": {"d": [], "c": "é/日"}}"#,
            "  123456789012345678 ",
            "-123456789012345678",
            "\"\u{7f}\"",
            "{}",
            "[]",
        ] {
            assert_eq!(fast(text), slow(text), "{text}");
            assert!(fast(text).is_some(), "{text}");
        }
        // Declined (the slow path decides, including invalid JSON).
        for text in [
            "-0",
            "01",
            "1.0",
            "1e5",
            "1E5",
            "1234567890123456789",
            r#""a\nb""#,
            r#""\u00e9""#,
            r#"{"a": 1, "a": 2}"#,
            "[1,]",
            "{\"a\" 1}",
            "tru",
            "1 2",
            "",
            "[",
            "\"\u{1}\"",
        ] {
            assert_eq!(fast(text), None, "{text}");
        }
        assert!(!canonical_json_fast(b"\"\xff\"", &mut Vec::new()));
        let deep = format!("{}{}", "[".repeat(70), "]".repeat(70));
        assert_eq!(fast(&deep), None);
        // The depth counts objects too, not only arrays.
        let deep_objects = format!("{}1{}", "{\"a\":".repeat(70), "}".repeat(70));
        assert_eq!(fast(&deep_objects), None);
        let ok_objects = format!("{}1{}", "{\"a\":".repeat(64), "}".repeat(64));
        assert_eq!(fast(&ok_objects), slow(&ok_objects));
        assert!(fast(&ok_objects).is_some());
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert_eq!(fast(&ok), slow(&ok));
    }
}
