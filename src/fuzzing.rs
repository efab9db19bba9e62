//! The checks behind the fuzz targets (`fuzz/fuzz_targets/*.rs`), shared with
//! the ordinary test that replays their corpora (`tests/fuzz_corpus.rs`).
//!
//! Each `check_*` function takes arbitrary bytes, runs them through one parser
//! or loader and panics (an `assert!`) when an invariant does not hold. A
//! returned error is fine; a panic anywhere, in the product or here, is a
//! finding. Not part of charon's interface: hidden from the docs.

use std::path::Path;

use crate::core::config::{Config, DbUrl};
use crate::core::datamap::DataMap;
use crate::core::detect::{self, Detector};
use crate::core::mfa::otp::{self, AesKey, OtpKeyRecord, OtpToken, PrivateId};
use crate::core::mfa::sk::{self, SkKeyRecord};
use crate::core::sanitize::{is_unsafe, json_safe, sanitize};
use crate::core::tenants::{self, QueryKind};
use crate::tui::theme::{Meaning, ThemeSet};

/// One check: panics when an invariant does not hold for the input.
pub type Check = fn(&[u8]);

/// The fuzz targets, by name: the directory names under `fuzz/corpus/` and
/// `fuzz/regressions/`.
pub const TARGETS: [(&str, Check); 7] = [
    ("otp", check_otp),
    ("sk_signature", check_sk_signature),
    ("config", check_config),
    ("theme", check_theme),
    ("datamap", check_datamap),
    ("sanitize", check_sanitize),
    ("search", check_search),
];

/// Runs the check of the target `name` (see [`TARGETS`]).
pub fn check(name: &str, data: &[u8]) {
    let Some((_, f)) = TARGETS.iter().find(|(n, _)| *n == name) else {
        panic!("no fuzz target named {name}");
    };
    f(data);
}

// ---------------------------------------------------------------------------
// Yubico OTP

const OTP_PUBLIC_ID: &str = "vvccccdddeee";
const OTP_AES: [u8; 16] = *b"charon-fuzz-key!";
const OTP_PRIVATE: [u8; 6] = *b"fuzzid";

fn otp_record(last_counter: Option<(u16, u8)>) -> OtpKeyRecord {
    OtpKeyRecord {
        public_id: OTP_PUBLIC_ID.to_string(),
        aes_key: AesKey::new(OTP_AES),
        private_id: PrivateId::new(OTP_PRIVATE),
        last_counter,
    }
}

/// The OTP parser: what is typed at the gate (any text), modhex, the
/// validation server's response. Normalising is idempotent and yields 44
/// modhex characters; only a genuine OTP of the enrolled key is accepted; a
/// generated OTP verifies, and is refused as a replay afterwards.
pub fn check_otp(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match otp::normalise(&text) {
        Ok(n) => {
            assert_eq!(n.len(), otp::OTP_LEN);
            assert!(n.bytes().all(|b| b"cbdefghijklnrtuv".contains(&b)), "{n:?}");
            assert_eq!(otp::normalise(&n).ok().as_deref(), Some(n.as_str()));
            let id = otp::public_id_of(&text);
            assert_eq!(id.ok().as_deref(), Some(&n[..otp::PUBLIC_ID_LEN]));
            let mut block = [0u8; 16];
            assert!(otp::modhex_decode(&n[otp::PUBLIC_ID_LEN..], &mut block).is_ok());
            assert_eq!(otp::modhex_encode(&block), n[otp::PUBLIC_ID_LEN..]);
        }
        Err(_) => assert!(otp::public_id_of(&text).is_err()),
    }
    let mut out = [0u8; 8];
    let _ = otp::modhex_decode(&text, &mut out);
    // Random text is an accepted OTP only by breaking AES-128 and the CRC.
    if let Ok(ok) = otp::verify_otp(&text, &otp_record(None)) {
        panic!("random input accepted as an OTP: {:?}", ok.counter);
    }
    if let Ok(fields) = otp::validation::parse_response(&text) {
        assert!(!fields.is_empty());
        let _ = otp::validation::check_response(&fields, b"key", &text, "nonce");
    }

    // A genuine OTP built from the input's first bytes.
    if data.len() >= 10 {
        let token = OtpToken {
            private_id: PrivateId::new(OTP_PRIVATE),
            usage_counter: u16::from_le_bytes([data[0], data[1]]),
            timestamp: u32::from_le_bytes([data[2], data[3], data[4], 0]),
            session_use: data[5],
            random: u16::from_le_bytes([data[6], data[7]]),
        };
        let key = AesKey::new(OTP_AES);
        let Ok(typed) = otp::generate_otp(OTP_PUBLIC_ID, &key, &token) else {
            panic!("generate_otp refused a valid public id");
        };
        let counter = (token.usage_counter & 0x7fff, token.session_use);
        let accepted = otp::verify_otp(&typed, &otp_record(None));
        assert_eq!(accepted.map(|a| a.counter).ok(), Some(counter));
        // Typed in upper case, with whitespace around: still the same OTP.
        let shouted = format!("  {}\n", typed.to_ascii_uppercase());
        assert!(otp::verify_otp(&shouted, &otp_record(None)).is_ok());
        assert!(otp::verify_otp(&typed, &otp_record(Some(counter))).is_err());
        // One character changed: refused.
        let i = usize::from(data[8]) % otp::OTP_LEN;
        let mut bytes = typed.clone().into_bytes();
        bytes[i] = if bytes[i] == b'c' { b'b' } else { b'c' };
        let changed = String::from_utf8_lossy(&bytes).into_owned();
        assert!(otp::verify_otp(&changed, &otp_record(None)).is_err());
    }
}

// ---------------------------------------------------------------------------
// FIDO sk signatures

/// An enrolled sk-ssh-ed25519 key (its private half is a constant the
/// fuzzer never sees).
fn sk_key() -> SkKeyRecord {
    let signing = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let public = ssh_key::public::Ed25519PublicKey(signing.verifying_key().to_bytes());
    let sk = ssh_key::public::SkEd25519::new(public, "ssh:".to_string());
    match SkKeyRecord::new(
        ssh_key::PublicKey::from(ssh_key::public::KeyData::from(sk)),
        None,
    ) {
        Ok(key) => key,
        Err(e) => panic!("the fuzz key does not load: {e}"),
    }
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(s);
}

/// The sk signature blob parser (what the ssh-agent answers) and the
/// enrolled-key parser: never a panic; a parsed blob re-frames to itself;
/// no blob verifies against a key without its private half.
pub fn check_sk_signature(data: &[u8]) {
    if let Ok((alg, info)) = sk::parse_sk_signature(data) {
        assert!(alg == sk::SK_ECDSA || alg == sk::SK_ED25519, "{alg}");
        // The framing is exact: string alg, string sig, flags, counter.
        let sig_len = data.len() - 4 - alg.len() - 4 - 1 - 4;
        let mut framed = Vec::new();
        put_string(&mut framed, alg.as_bytes());
        put_string(&mut framed, &data[8 + alg.len()..8 + alg.len() + sig_len]);
        framed.push(info.flags);
        framed.extend_from_slice(&info.counter.to_be_bytes());
        assert_eq!(framed, data);
    }
    let key = sk_key();
    for message in [&b"challenge"[..], data] {
        if sk::verify_sk_signature(&key, message, data).is_ok() {
            panic!("a blob verified without the private key");
        }
    }
    // Wrapped into a well-formed blob around the input as the signature.
    let mut blob = Vec::new();
    put_string(&mut blob, sk::SK_ED25519.as_bytes());
    put_string(&mut blob, data);
    blob.push(sk::FLAG_USER_PRESENT);
    blob.extend_from_slice(&7u32.to_be_bytes());
    assert!(sk::parse_sk_signature(&blob).is_ok());
    assert!(sk::verify_sk_signature(&key, b"challenge", &blob).is_err());
    let text = String::from_utf8_lossy(data);
    if let Ok(key) = SkKeyRecord::from_openssh(&text, None) {
        assert!(key.fingerprint().starts_with("SHA256:"));
    }
}

// ---------------------------------------------------------------------------
// Configuration

/// Where a URL's password would be: after `scheme://user:`, up to the last
/// `@` (the widest reading, so a mask that hides less is caught).
fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let (userinfo, _) = rest.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    Some(password)
}

/// The configuration loader: never a panic; errors name the file; a loaded
/// configuration never shows a database password (Debug, Display); loading
/// is deterministic.
pub fn check_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = Path::new("/etc/charon/fuzz.toml");
    match Config::parse(text, source) {
        Ok(config) => {
            let shown = format!("{config:?}");
            for url in [
                &config.pluto_url,
                &config.pluto_read_url,
                &config.console_url,
            ] {
                assert_db_url_masked(url);
            }
            let again = Config::parse(text, source).map(|c| format!("{c:?}"));
            assert_eq!(again.ok().as_deref(), Some(shown.as_str()));
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("fuzz.toml"), "error without the file: {msg}");
        }
    }
    if let Ok(url) = DbUrl::parse(text) {
        assert_db_url_masked(&url);
    }
}

fn assert_db_url_masked(url: &DbUrl) {
    let raw = url.expose();
    let shown = [format!("{url}"), format!("{url:?}"), url.display_name()];
    let Some(password) = url_password(raw) else {
        return;
    };
    // Every piece of the password (between raw URL delimiters) that cannot
    // be found elsewhere in the URL by chance must stay hidden.
    let elsewhere = raw.replacen(password, "", 1);
    for piece in password.split(['@', '/', ':', '?', '#']) {
        if piece.len() < 3 || elsewhere.contains(piece) || "***".contains(piece) {
            continue;
        }
        for s in &shown {
            let s = s.replace("***", "");
            assert!(!s.contains(piece), "password shown: {s:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// Themes

/// The theme loader, over up to four in-memory theme files (the input split
/// at `\n---\n`, named `t0` … `t3`, so `inherits` chains and cycles are
/// reached): never a panic; a loaded theme styles only known meanings;
/// loading is deterministic.
pub fn check_theme(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let files: Vec<(String, String)> = text
        .split("\n---\n")
        .take(4)
        .enumerate()
        .map(|(i, t)| (format!("t{i}"), t.to_string()))
        .collect();
    let set = ThemeSet::in_memory(files);
    let first = set.load("t0");
    match &first {
        Ok(loaded) => {
            for m in Meaning::ALL {
                let _ = loaded.theme.style(m);
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
        }
    }
    let again = set.load("t0");
    assert_eq!(
        format!("{:?}", first.map(|l| (l.theme, l.warnings))),
        format!("{:?}", again.map(|l| (l.theme, l.warnings)))
    );
}

// ---------------------------------------------------------------------------
// Data map

/// The data map loader: never a panic; errors name the file and a line
/// inside it; a loaded map has unique, sorted tables with usable identifiers
/// and serialises to JSON.
pub fn check_datamap(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = Path::new("datamap/fuzz.toml");
    match DataMap::parse(text, source) {
        Ok(map) => {
            let names: Vec<&str> = map.tables.iter().map(|t| t.name.as_str()).collect();
            let mut sorted = names.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(names, sorted, "tables sorted and unique");
            for t in &map.tables {
                assert_identifier(&t.name);
                for c in &t.columns {
                    assert_identifier(&c.name);
                }
            }
            assert!(serde_json::to_string(&map).is_ok());
        }
        Err(e) => {
            let msg = e.to_string();
            let lines = text.lines().count() + 1;
            for line in msg.lines() {
                assert!(line.starts_with("datamap/fuzz.toml"), "{line}");
                let n = line
                    .strip_prefix("datamap/fuzz.toml:")
                    .and_then(|r| r.split(':').next())
                    .and_then(|n| n.parse::<usize>().ok());
                if let Some(n) = n {
                    assert!(n >= 1 && n <= lines, "line {n} of {lines}: {line}");
                }
            }
        }
    }
}

fn assert_identifier(s: &str) {
    assert!(!s.is_empty() && s.len() <= 63 && !s.contains('\0'), "{s:?}");
}

// ---------------------------------------------------------------------------
// Terminal sanitiser

/// The sanitiser: nothing unsafe survives, safe text is untouched, a second
/// pass changes nothing; JSON made safe still means the same; the free-text
/// masks and redaction stay on char boundaries and leave nothing to find.
pub fn check_sanitize(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let out = sanitize(&text);
    assert!(
        !out.chars().any(is_unsafe),
        "unsafe character left: {out:?}"
    );
    assert!(!out.contains('\x1b') && !out.contains('\u{9b}'));
    if !text.chars().any(is_unsafe) {
        assert_eq!(out, text);
    }
    assert_eq!(sanitize(&out), out, "not idempotent");
    // Every unsafe character becomes one visible escape: never shorter.
    assert!(out.chars().count() >= text.chars().count());

    let json = serde_json::to_string(&*text).unwrap_or_default();
    let safe = json_safe(&json);
    assert!(
        !safe
            .chars()
            .any(|c| is_unsafe(c) && !matches!(c, '\n' | '\t' | '\r')),
        "{safe:?}"
    );
    let back: Result<String, _> = serde_json::from_str(&safe);
    assert_eq!(back.ok().as_deref(), Some(&*text));

    // Masking and redaction of free text (what a record shows).
    // A detected card number or IBAN never survives masking whole. (Digits
    // that the detectors did not take as one, e.g. the last two of a masked
    // phone number next to other digits, may look like a card afterwards:
    // they were shown unmasked before too.)
    let masked = detect::mask_free_text(&text);
    for s in detect::find_all(&text) {
        let value = &text[s.start..s.end];
        // Only a value that occurs once in the text, overlaps included.
        let occurs = (0..text.len())
            .filter(|&i| text.is_char_boundary(i) && text[i..].starts_with(value))
            .count();
        if matches!(s.detector, Detector::Card | Detector::Iban) && occurs == 1 {
            assert!(!masked.contains(value), "{value:?} left in {masked:?}");
        }
    }
    for d in Detector::ALL {
        let spans = detect::find(&text, d);
        for s in &spans {
            assert!(s.start < s.end && s.end <= text.len());
            assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
        }
        let (redacted, n) = detect::redact(&text, d);
        assert_eq!(n, spans.len());
        assert_eq!(detect::contains(&text, d), n > 0);
        if n > 0 {
            assert!(redacted.contains(&d.marker()));
        }
    }
}

// ---------------------------------------------------------------------------
// Search input

/// `LIKE pattern ESCAPE '\'`, as PostgreSQL evaluates it (on chars).
pub fn like_matches(pattern: &str, text: &str) -> bool {
    // Pattern as tokens: Some(c) a literal, None for `%`, Some('\0') never.
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Lit(char),
        One,
        Any,
    }
    let mut toks = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        toks.push(match c {
            '\\' => Tok::Lit(it.next().unwrap_or('\\')),
            '%' => Tok::Any,
            '_' => Tok::One,
            c => Tok::Lit(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    // reach[j]: the first i tokens can match text[..j].
    let mut reach = vec![false; text.len() + 1];
    reach[0] = true;
    for t in toks {
        let mut next = vec![false; text.len() + 1];
        for j in 0..=text.len() {
            match t {
                Tok::Any => next[j] = reach[j] || (j > 0 && next[j - 1]),
                Tok::One => next[j] = j > 0 && reach[j - 1],
                Tok::Lit(c) => next[j] = j > 0 && reach[j - 1] && text[j - 1] == c,
            }
        }
        reach = next;
    }
    reach[text.len()]
}

/// How the tenant search reads a query: never a panic; the kinds keep their
/// promises (an id is a UUID, an e-mail has `@`, a phone is digits); the
/// LIKE patterns match the typed text literally (`%`, `_`, `\` included).
pub fn check_search(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // The input is "query" or "query\u{1}haystack".
    let (query, haystack) = text.split_once('\u{1}').unwrap_or((&text, ""));
    let kind = tenants::classify(query);
    let q = query.trim();
    match &kind {
        QueryKind::Recent => assert!(q.is_empty()),
        QueryKind::Id(id) => assert_eq!(uuid::Uuid::parse_str(q).ok(), Some(*id)),
        QueryKind::Email(e) => {
            assert!(e.contains('@'));
            assert_eq!(*e, q.to_lowercase());
        }
        QueryKind::Phone(d) => {
            assert!(
                d.len() >= 4 && d.bytes().all(|b| b.is_ascii_digit()),
                "{d:?}"
            );
        }
        QueryKind::Name(n) => {
            assert_eq!(n, q);
            assert!(!n.is_empty());
        }
    }
    assert!(!kind.label().is_empty());

    let escaped = tenants::like_escape(query);
    if query.chars().count() <= 64 && haystack.chars().count() <= 256 {
        let contains = format!("%{escaped}%");
        assert!(like_matches(&contains, query), "{contains:?} ~ {query:?}");
        assert_eq!(
            like_matches(&contains, haystack),
            haystack.contains(query),
            "{contains:?} ~ {haystack:?}"
        );
        assert!(like_matches(&escaped, query));
        if let QueryKind::Name(name) = &kind {
            let (_, pattern) = tenants::name_query(name);
            if name.chars().count() < 3 {
                // Prefix of the lower-cased name.
                let lower = haystack.to_lowercase();
                assert_eq!(
                    like_matches(&pattern, &lower),
                    lower.starts_with(&name.to_lowercase()),
                    "{pattern:?} ~ {lower:?}"
                );
            } else {
                assert_eq!(
                    like_matches(&pattern, haystack),
                    haystack.contains(name.as_str())
                );
            }
        }
    }
}
