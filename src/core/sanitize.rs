//! Terminal safety: text from the Pluto database (customers' notes, OCR) is
//! made inert before it reaches a terminal. Control characters, escape
//! sequences, bidi overrides and zero-width characters become visible escapes
//! such as `\x1b` or `\u{202e}`, so a record cannot move the cursor, rewrite
//! the screen or set the terminal title of the engineer who opens it.

use std::borrow::Cow;
use std::fmt::Write;

/// True for characters that must never reach a terminal raw.
pub fn is_unsafe(c: char) -> bool {
    let u = c as u32;
    u < 0x20                            // C0 controls, ESC included
        || u == 0x7f                    // DEL
        || (0x80..=0x9f).contains(&u)   // C1 controls (CSI, OSC, DCS as one char)
        || matches!(u,
            0x061c                      // arabic letter mark
            | 0x200b..=0x200f           // zero-width space/joiners, LRM, RLM
            | 0x2028 | 0x2029           // line and paragraph separators
            | 0x202a..=0x202e           // bidi embeddings and overrides
            | 0x2060..=0x2064           // word joiner, invisible operators
            | 0x2066..=0x2069           // bidi isolates
            | 0xfeff                    // zero-width no-break space
            | 0xfff9..=0xfffb) // interlinear annotations
}

/// The text with every unsafe character replaced by a visible escape.
/// Borrowed (no allocation) when the text is already safe.
pub fn sanitize(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            let u = c as u32;
            // Writing to a String cannot fail.
            let _ = if u <= 0xff {
                write!(out, "\\x{u:02x}")
            } else {
                write!(out, "\\u{{{u:04x}}}")
            };
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A short, safe excerpt of text from outside (a server's answer, a
/// library's error): sanitized, and cut after `max` characters with `…`.
/// For messages that quote what another party said.
pub fn excerpt(s: &str, max: usize) -> String {
    let s = sanitize(s);
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", s.get(..i).unwrap_or("")),
        None => s.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_safe_and_short() {
        assert_eq!(excerpt("plain", 10), "plain");
        assert_eq!(excerpt("exactly10!", 10), "exactly10!");
        assert_eq!(excerpt("eleven chars", 10), "eleven cha…");
        assert_eq!(excerpt("\u{1b}[2Jx", 5), "\\x1b[…");
        assert_eq!(excerpt("", 3), "");
    }

    #[test]
    fn safe_text_is_borrowed_unchanged() {
        assert!(matches!(sanitize("Café Ünïcode 東京 ok"), Cow::Borrowed(_)));
    }

    #[test]
    fn escape_sequences_become_visible() {
        let hostile = "a\x1b[2J\x1b]0;pwned\x07b\u{9b}31m\u{202e}evil\u{200b}\r\n\t";
        let out = sanitize(hostile);
        assert!(!out.chars().any(is_unsafe), "{out}");
        assert_eq!(
            out,
            "a\\x1b[2J\\x1b]0;pwned\\x07b\\x9b31m\\u{202e}evil\\u{200b}\\x0d\\x0a\\x09"
        );
    }

    #[test]
    fn osc52_clipboard_and_dcs_are_neutralised() {
        let out = sanitize("\x1b]52;c;ZXZpbA==\x07\x1bP1$qm\x1b\\");
        assert!(!out.contains('\x1b'));
        assert!(!out.contains('\x07'));
    }
}

/// JSON text (as serde_json writes it) with every unsafe character inside
/// strings written as a `\uXXXX` escape: serde_json escapes C0 controls but
/// passes C1, bidi and zero-width characters through raw.
pub fn json_safe(json: &str) -> Cow<'_, str> {
    // serde_json escapes every C0 control inside strings, so a raw newline,
    // tab or carriage return can only be structural whitespace: kept.
    let unsafe_in_json = |c: char| is_unsafe(c) && !matches!(c, '\n' | '\t' | '\r');
    if !json.chars().any(unsafe_in_json) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if unsafe_in_json(c) {
            // Unsafe characters are all in the Basic Multilingual Plane.
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod json_tests {
    use super::*;

    #[test]
    fn json_output_keeps_meaning_without_raw_controls() {
        let value = "x\u{9b}y\u{202e}z\u{200b}\x1b";
        let json = serde_json::to_string(&value).unwrap_or_default();
        let safe = json_safe(&json);
        assert!(!safe.chars().any(is_unsafe), "{safe}");
        let back: String = serde_json::from_str(&safe).unwrap_or_default();
        assert_eq!(back, value);
    }

    #[test]
    fn pretty_json_keeps_its_layout_and_stays_valid() {
        let value = vec!["a\u{202e}b", "c\nd"];
        let json = serde_json::to_string_pretty(&value).unwrap_or_default();
        let safe = json_safe(&json);
        assert!(safe.contains('\n'), "layout kept: {safe}");
        assert!(!safe.contains('\u{202e}'), "{safe}");
        let back: Vec<String> = serde_json::from_str(&safe).unwrap_or_default();
        assert_eq!(back, value);
    }
}
