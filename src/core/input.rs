//! Free text an operator types (a search, a reason, a ticket, an
//! identifier), checked once at the dispatch point before it reaches an
//! audit entry or a query: a bounded length and no control characters.
//! PostgreSQL refuses NUL in text, and a control character in a reason or a
//! ticket would reach the terminal of whoever reads the audit log later.
//! Refusals are [`Error::InvalidInput`] naming the field, never echoing the
//! value (a reason or an identifier may be personal).

use crate::core::{Error, Result};

/// The longest search text. Names, e-mails and phone numbers are far shorter;
/// a longer text would only make the trigram search slow.
pub const MAX_QUERY: usize = 200;
/// The longest reason or ticket reference for a reveal or a redaction (the
/// console's redactions table checks the same).
pub const MAX_REASON: usize = 2000;
/// The longest ticket reference of an erasure request (checked by the
/// console database too).
pub const MAX_TICKET: usize = 200;
/// The longest note of an erasure request.
pub const MAX_NOTE: usize = 2000;
/// The longest e-mail address or phone number naming a data subject.
pub const MAX_IDENTIFIER: usize = 320;
/// The longest column name (PostgreSQL's identifier limit, in bytes).
pub const MAX_FIELD_BYTES: usize = 63;

/// True for characters that may not appear in typed text: C0 and C1 control
/// characters (NUL, ESC, CR, LF, tab, CSI ...).
pub fn is_forbidden(c: char) -> bool {
    c.is_control()
}

/// Checks `value` (trimmed) for the field `what`: at most `max` characters,
/// no control characters, and not empty when `required`.
pub fn text(what: &str, value: &str, max: usize, required: bool) -> Result<()> {
    let v = value.trim();
    if required && v.is_empty() {
        return Err(Error::InvalidInput(format!("{what} is needed")));
    }
    if v.chars().count() > max {
        return Err(Error::InvalidInput(format!(
            "{what} is longer than {max} characters"
        )));
    }
    if value.chars().any(is_forbidden) {
        return Err(Error::InvalidInput(format!(
            "{what} holds a control character (such as NUL, a line break or an escape)"
        )));
    }
    Ok(())
}

/// A column name as typed (`--field`): 1 to 63 bytes, no control characters.
pub fn field(value: &str) -> Result<()> {
    if value.is_empty() || value.len() > MAX_FIELD_BYTES || value.chars().any(is_forbidden) {
        return Err(Error::InvalidInput(format!(
            "a field name is 1 to {MAX_FIELD_BYTES} bytes without control characters"
        )));
    }
    Ok(())
}

/// The identifiers naming a data subject.
pub fn subject(s: &crate::core::erasure::Subject) -> Result<()> {
    for e in &s.emails {
        text("an e-mail address", e, MAX_IDENTIFIER, false)?;
    }
    for p in &s.phones {
        text("a phone number", p, MAX_IDENTIFIER, false)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_field_and_never_the_value() {
        for (value, want) in [
            ("", "is needed"),
            ("   ", "is needed"),
            ("secret\0value", "control character"),
            ("secret\u{1b}[2J", "control character"),
            ("secret\u{9b}", "control character"),
        ] {
            let e = text("the reason", value, 100, true)
                .unwrap_err()
                .to_string();
            assert!(e.contains("the reason") && e.contains(want), "{e}");
            assert!(!e.contains("secret"), "{e}");
        }
        let long = "x".repeat(11);
        let e = text("the reason", &long, 10, true).unwrap_err().to_string();
        assert!(e.contains("longer than 10") && !e.contains(&long), "{e}");
        assert!(text("the reason", "  T-1 % _ \\ ' é  ", 100, true).is_ok());
        assert!(text("a note", "", 10, false).is_ok());
        assert!(field("notes").is_ok());
        assert!(field("").is_err() && field(&"a".repeat(64)).is_err() && field("a\0").is_err());
    }
}
