//! Detectors for personal data inside free text: payment card numbers (Luhn
//! checked), IBANs (mod-97 checked), e-mail addresses and phone numbers.
//!
//! They return byte spans, so callers can mask (`mask_free_text`), redact
//! (`redact`) or count matches without ever copying a value elsewhere. The
//! scanners are hand-written (no regular expressions): each looks for a
//! candidate at a word boundary, then checks it (checksums for cards and
//! IBANs), so a random 16-digit order number is not a card.

use serde::Serialize;

use crate::core::mask;

/// What a span was detected as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    Card,
    Iban,
    Email,
    Phone,
}

impl Detector {
    pub const ALL: [Detector; 4] = [
        Detector::Email,
        Detector::Iban,
        Detector::Card,
        Detector::Phone,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Detector::Card => "card",
            Detector::Iban => "iban",
            Detector::Email => "email",
            Detector::Phone => "phone",
        }
    }

    /// The marker that replaces a redacted span: `[REDACTED:card]`.
    pub fn marker(self) -> String {
        format!("[REDACTED:{}]", self.name())
    }

    pub fn parse(s: &str) -> Option<Detector> {
        match s {
            "card" => Some(Detector::Card),
            "iban" => Some(Detector::Iban),
            "email" => Some(Detector::Email),
            "phone" => Some(Detector::Phone),
            _ => None,
        }
    }
}

/// A match: `text[start..end]` (byte offsets on char boundaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    pub detector: Detector,
    pub start: usize,
    pub end: usize,
}

/// Every match of one detector, in order, non-overlapping.
pub fn find(text: &str, detector: Detector) -> Vec<Span> {
    let ranges = match detector {
        Detector::Card => cards(text),
        Detector::Iban => ibans(text),
        Detector::Email => emails(text),
        Detector::Phone => phones(text),
    };
    ranges
        .into_iter()
        .map(|(start, end)| Span {
            detector,
            start,
            end,
        })
        .collect()
}

/// Matches of all detectors, in text order and non-overlapping. Where two
/// overlap, the earlier detector of [`Detector::ALL`] wins (an e-mail over a
/// phone number inside it, an IBAN or card over a phone-shaped digit run).
pub fn find_all(text: &str) -> Vec<Span> {
    let mut taken: Vec<Span> = Vec::new();
    for d in Detector::ALL {
        for s in find(text, d) {
            if !taken.iter().any(|t| s.start < t.end && t.start < s.end) {
                taken.push(s);
            }
        }
    }
    taken.sort_by_key(|s| s.start);
    taken
}

/// The text with every detected value masked: card numbers and IBANs to
/// their last 4 characters (separators kept), e-mails like `j***@g***.com`,
/// phone numbers to their last 2 digits.
pub fn mask_free_text(text: &str) -> String {
    replace_spans(text, &find_all(text), |span, value| match span.detector {
        Detector::Card | Detector::Iban => keep_last4(value),
        Detector::Email => mask::email(value),
        Detector::Phone => mask::phone(value),
    })
}

/// The text with every match of `detector` replaced by `[REDACTED:<name>]`,
/// and the number of replacements.
pub fn redact(text: &str, detector: Detector) -> (String, usize) {
    let spans = find(text, detector);
    let n = spans.len();
    (replace_spans(text, &spans, |s, _| s.detector.marker()), n)
}

/// True when the text contains at least one match of `detector`.
pub fn contains(text: &str, detector: Detector) -> bool {
    !find(text, detector).is_empty()
}

fn replace_spans(text: &str, spans: &[Span], f: impl Fn(&Span, &str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for s in spans {
        if s.start < at {
            continue;
        }
        out.push_str(&text[at..s.start]);
        out.push_str(&f(s, &text[s.start..s.end]));
        at = s.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Every alphanumeric character but the last four becomes `•`; separators
/// stay, so the shape of the number is still recognisable.
fn keep_last4(value: &str) -> String {
    let total = value.chars().filter(char::is_ascii_alphanumeric).count();
    let mut seen = 0;
    value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                seen += 1;
                if seen + 4 > total { c } else { '•' }
            } else {
                c
            }
        })
        .collect()
}

// ---------------------------------------------------------------- checks

/// Luhn check over the digits of `s` (other characters ignored); at least
/// 12 digits.
pub fn luhn_valid(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() < 12 {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let dd = d * 2;
                if dd > 9 { dd - 9 } else { dd }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// True when `s` (spaces ignored) is a well-formed IBAN: a known country's
/// length, two check digits, and mod-97 equal to 1.
pub fn iban_valid(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
    if compact.len() < 4
        || !compact[..2].iter().all(u8::is_ascii_uppercase)
        || !compact[2..4].iter().all(u8::is_ascii_digit)
        || !compact[4..].iter().all(u8::is_ascii_alphanumeric)
    {
        return false;
    }
    match iban_length(&compact[..2]) {
        Some(len) if len == compact.len() => {}
        _ => return false,
    }
    iban_mod97(&String::from_utf8_lossy(&compact)) == 1
}

/// mod-97 of an IBAN (spaces ignored; country and check digits moved to the
/// end, letters as numbers): 1 for a valid IBAN, 0 for one that has other
/// characters. The generator uses it to compute check digits.
pub fn iban_mod97(iban: &str) -> u32 {
    let compact: String = iban.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() < 4 || !compact.is_ascii() {
        return 0;
    }
    let mut rem: u32 = 0;
    for c in compact[4..].chars().chain(compact[..4].chars()) {
        if let Some(d) = c.to_digit(10) {
            rem = (rem * 10 + d) % 97;
        } else if c.is_ascii_alphabetic() {
            let v = c.to_ascii_uppercase() as u32 - 'A' as u32 + 10;
            rem = (rem * 100 + v) % 97;
        } else {
            return 0;
        }
    }
    rem
}

/// IBAN lengths by country (the SWIFT IBAN registry).
fn iban_length(cc: &[u8]) -> Option<usize> {
    const LENGTHS: &[(&[u8; 2], usize)] = &[
        (b"AD", 24),
        (b"AE", 23),
        (b"AL", 28),
        (b"AT", 20),
        (b"AZ", 28),
        (b"BA", 20),
        (b"BE", 16),
        (b"BG", 22),
        (b"BH", 22),
        (b"BR", 29),
        (b"BY", 28),
        (b"CH", 21),
        (b"CR", 22),
        (b"CY", 28),
        (b"CZ", 24),
        (b"DE", 22),
        (b"DK", 18),
        (b"DO", 28),
        (b"EE", 20),
        (b"EG", 29),
        (b"ES", 24),
        (b"FI", 18),
        (b"FO", 18),
        (b"FR", 27),
        (b"GB", 22),
        (b"GE", 22),
        (b"GI", 23),
        (b"GL", 18),
        (b"GR", 27),
        (b"GT", 28),
        (b"HR", 21),
        (b"HU", 28),
        (b"IE", 22),
        (b"IL", 23),
        (b"IQ", 23),
        (b"IS", 26),
        (b"IT", 27),
        (b"JO", 30),
        (b"KW", 30),
        (b"KZ", 20),
        (b"LB", 28),
        (b"LC", 32),
        (b"LI", 21),
        (b"LT", 20),
        (b"LU", 20),
        (b"LV", 21),
        (b"MC", 27),
        (b"MD", 24),
        (b"ME", 22),
        (b"MK", 19),
        (b"MR", 27),
        (b"MT", 31),
        (b"MU", 30),
        (b"NL", 18),
        (b"NO", 15),
        (b"PK", 24),
        (b"PL", 28),
        (b"PS", 29),
        (b"PT", 25),
        (b"QA", 29),
        (b"RO", 24),
        (b"RS", 22),
        (b"SA", 24),
        (b"SC", 31),
        (b"SE", 24),
        (b"SI", 19),
        (b"SK", 24),
        (b"SM", 27),
        (b"ST", 25),
        (b"SV", 28),
        (b"TL", 23),
        (b"TN", 24),
        (b"TR", 26),
        (b"UA", 29),
        (b"VA", 22),
        (b"VG", 24),
        (b"XK", 20),
    ];
    LENGTHS
        .iter()
        .find(|(c, _)| c.as_slice() == cc)
        .map(|(_, l)| *l)
}

// ---------------------------------------------------------------- scanners

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// True when position `i` starts a word: the previous byte is not part of
/// one (non-ASCII bytes count as a boundary only for ASCII-only matches).
fn boundary_before(bytes: &[u8], i: usize) -> bool {
    i == 0 || !is_word(bytes[i - 1])
}

fn boundary_after(bytes: &[u8], i: usize) -> bool {
    i >= bytes.len() || !is_word(bytes[i])
}

/// Card numbers: 13 to 19 digits in groups separated by single spaces or
/// dashes, at word boundaries, Luhn-valid, not starting with 0, not one
/// repeated digit.
fn cards(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() || !boundary_before(b, i) {
            i += 1;
            continue;
        }
        // Groups of digits: (start, end) byte ranges.
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut j = i;
        loop {
            let gs = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            groups.push((gs, j));
            if j + 1 < b.len() && (b[j] == b' ' || b[j] == b'-') && b[j + 1].is_ascii_digit() {
                j += 1;
            } else {
                break;
            }
        }
        let run_end = j;
        // The longest run of whole groups, from the first, that is a card.
        let mut digits = 0;
        let mut found = None;
        for (k, &(gs, ge)) in groups.iter().enumerate() {
            digits += ge - gs;
            if digits > 19 {
                break;
            }
            let last_group = k + 1 == groups.len();
            if (13..=19).contains(&digits)
                && (!last_group || boundary_after(b, run_end))
                && card_ok(&text[i..ge])
            {
                found = Some(ge);
            }
        }
        match found {
            Some(end) => {
                out.push((i, end));
                i = end;
            }
            None => {
                // Skip the first group; a card may start at a later group
                // only if it is a separate word, which the loop re-checks.
                i = groups.first().map(|g| g.1).unwrap_or(i + 1).max(i + 1);
            }
        }
    }
    out
}

fn card_ok(candidate: &str) -> bool {
    let digits: Vec<u8> = candidate.bytes().filter(u8::is_ascii_digit).collect();
    if digits.first() == Some(&b'0') {
        return false;
    }
    if digits.windows(2).all(|w| w[0] == w[1]) {
        return false;
    }
    luhn_valid(candidate)
}

/// IBANs: a country code, two check digits and the BBAN, written compact or
/// in groups separated by single spaces; the country's length and mod-97.
fn ibans(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= b.len() {
        let head = &b[i..i + 4];
        if !(head[0].is_ascii_uppercase() && head[1].is_ascii_uppercase() && boundary_before(b, i))
        {
            i += 1;
            continue;
        }
        let Some(len) = iban_length(&head[..2]) else {
            i += 1;
            continue;
        };
        // Collect `len` alphanumerics, allowing single spaces between them.
        let mut j = i;
        let mut count = 0;
        let mut compact = Vec::with_capacity(len);
        while j < b.len() && count < len {
            if b[j].is_ascii_alphanumeric() {
                compact.push(b[j].to_ascii_uppercase());
                count += 1;
                j += 1;
            } else if b[j] == b' '
                && count >= 2
                && j + 1 < b.len()
                && b[j + 1].is_ascii_alphanumeric()
            {
                j += 1;
            } else {
                break;
            }
        }
        if count == len && boundary_after(b, j) && iban_valid(&String::from_utf8_lossy(&compact)) {
            out.push((i, j));
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

/// E-mail addresses: `local@domain.tld`, the TLD at least two letters.
fn emails(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (at, _) in text.match_indices('@') {
        if out.last().is_some_and(|&(_, e)| at < e) {
            continue;
        }
        let mut s = at;
        while s > 0 && is_local(b[s - 1]) {
            s -= 1;
        }
        while s < at && matches!(b[s], b'.' | b'-' | b'+') {
            s += 1;
        }
        let mut e = at + 1;
        while e < b.len() && is_domain(b[e]) {
            e += 1;
        }
        while e > at + 1 && matches!(b[e - 1], b'.' | b'-') {
            e -= 1;
        }
        if s == at || e <= at + 1 {
            continue;
        }
        let domain = &text[at + 1..e];
        let Some((host, tld)) = domain.rsplit_once('.') else {
            continue;
        };
        if host.is_empty()
            || host.starts_with(['.', '-'])
            || host.contains("..")
            || tld.len() < 2
            || !tld.bytes().all(|c| c.is_ascii_alphabetic())
        {
            continue;
        }
        if out.last().is_some_and(|&(_, pe)| s < pe) {
            continue;
        }
        out.push((s, e));
    }
    out
}

/// Phone numbers: either `+` and 8 to 15 digits (separators allowed), or 7
/// to 12 digits written with phone separators (space, `-`, `.`, or an area
/// code in parentheses). Plain digit runs, dates (`2024-03-14`) and amounts
/// are not phone numbers.
fn phones(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts = (b[i] == b'+' || b[i] == b'(' || b[i].is_ascii_digit())
            && (i == 0 || !(is_word(b[i - 1]) || b[i - 1] == b'+' || b[i - 1] == b'.'));
        if !starts {
            i += 1;
            continue;
        }
        match phone_at(b, i) {
            Some(end) => {
                out.push((i, end));
                i = end;
            }
            None => {
                // Move past the whole run of digits and separators: a phone
                // number is never the tail of a longer number.
                let mut j = i + 1;
                while j < b.len()
                    && (b[j].is_ascii_digit()
                        || matches!(b[j], b'+' | b'(' | b')')
                        || (matches!(b[j], b' ' | b'-' | b'.')
                            && j + 1 < b.len()
                            && b[j + 1].is_ascii_digit()))
                {
                    j += 1;
                }
                i = j;
            }
        }
    }
    out
}

fn phone_at(b: &[u8], start: usize) -> Option<usize> {
    let mut j = start;
    let plus = b[j] == b'+';
    if plus {
        j += 1;
    }
    let mut groups: Vec<usize> = Vec::new();
    let mut seps: Vec<u8> = Vec::new();
    let mut paren = false;
    let mut end = j;
    loop {
        let open = j < b.len() && b[j] == b'(';
        let gs = j + usize::from(open);
        let mut k = gs;
        while k < b.len() && b[k].is_ascii_digit() {
            k += 1;
        }
        if k == gs {
            break;
        }
        if open {
            if k < b.len() && b[k] == b')' {
                paren = true;
                groups.push(k - gs);
                k += 1;
            } else {
                return None;
            }
        } else {
            groups.push(k - gs);
        }
        j = k;
        end = k;
        if j + 1 < b.len()
            && matches!(b[j], b' ' | b'-' | b'.')
            && (b[j + 1].is_ascii_digit() || b[j + 1] == b'(')
        {
            seps.push(b[j]);
            j += 1;
        } else if open && j < b.len() && b[j].is_ascii_digit() {
            // `(415)555-0134`: the parenthesis is the separator.
        } else {
            break;
        }
    }
    if groups.is_empty() || !boundary_after(b, end) {
        return None;
    }
    // `1.5` style continuations: a dot followed by a digit is a decimal.
    if end + 1 < b.len() && b[end] == b'.' && b[end + 1].is_ascii_digit() {
        return None;
    }
    let digits: usize = groups.iter().sum();
    let ok = if plus {
        (8..=15).contains(&digits)
    } else {
        let separated = !seps.is_empty() || paren;
        let date_like = groups.len() == 3 && (groups[..] == [4, 2, 2] || groups[..] == [2, 2, 4]);
        let dotted_amount = groups.len() == 2 && seps.iter().all(|&s| s == b'.');
        separated && !date_like && !dotted_amount && (7..=12).contains(&digits)
    };
    ok.then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(text: &str, d: Detector) -> Vec<&str> {
        find(text, d)
            .into_iter()
            .map(|s| &text[s.start..s.end])
            .collect()
    }

    #[test]
    fn luhn_and_mod97_checks() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("5500 0000 0000 0004"));
        assert!(luhn_valid("3782 822463 10005"));
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid("411111"));
        assert!(iban_valid("GB82 WEST 1234 5698 7654 32"));
        assert!(iban_valid("DE89370400440532013000"));
        assert!(!iban_valid("GB83 WEST 1234 5698 7654 32"));
        assert!(!iban_valid("DE88370400440532013000"));
        assert!(!iban_valid("DE8937040044053201300")); // one digit short
        assert!(!iban_valid("ZZ89370400440532013000")); // no such country
    }

    #[test]
    fn cards_valid_numbers_match() {
        for (text, want) in [
            ("4111111111111111", "4111111111111111"),
            ("card 4111 1111 1111 1111 exp", "4111 1111 1111 1111"),
            ("paid with 5500 0000 0000 0004.", "5500 0000 0000 0004"),
            ("AMEX 3782 822463 10005", "3782 822463 10005"),
            ("(4111-1111-1111-1111)", "4111-1111-1111-1111"),
            ("VISA 4111 1111 1111 1111 12/25", "4111 1111 1111 1111"),
            ("5555555555554444 is a test number", "5555555555554444"),
            ("4222222222222", "4222222222222"),       // 13 digits
            ("6011000990139424", "6011000990139424"), // Discover
        ] {
            assert_eq!(spans(text, Detector::Card), vec![want], "{text}");
        }
        assert_eq!(
            spans(
                "two: 4111111111111111 and 5500-0000-0000-0004",
                Detector::Card
            ),
            vec!["4111111111111111", "5500-0000-0000-0004"]
        );
    }

    #[test]
    fn cards_invalid_numbers_do_not_match() {
        for text in [
            "order 1234567890123456",   // random 16 digits, Luhn fails
            "order #4111111111111112",  // one digit off
            "4111 1111 1111 1112",      // grouped, Luhn fails
            "0000 0000 0000 0000",      // all zeros (Luhn-valid, not a card)
            "ref 41111111111111110000", // too long, one token
            "VISA **** **** **** 1111", // already masked
            "X4111111111111111",        // inside a word
            "4111111111111111X",        // inside a word
            "411111111111",             // 12 digits
            "AUTH 123456  THANK YOU!",
            "tel +1 415-555-0134",
            "12/25 4111",
        ] {
            assert!(spans(text, Detector::Card).is_empty(), "{text}");
        }
    }

    #[test]
    fn ibans_match_with_or_without_spaces() {
        for (text, want) in [
            ("GB82 WEST 1234 5698 7654 32", "GB82 WEST 1234 5698 7654 32"),
            (
                "pay to DE89370400440532013000 today",
                "DE89370400440532013000",
            ),
            (
                "IBAN: DE89 3704 0044 0532 0130 00.",
                "DE89 3704 0044 0532 0130 00",
            ),
            ("GB82WEST12345698765432 EUR", "GB82WEST12345698765432"),
            ("NL91 ABNA 0417 1643 00", "NL91 ABNA 0417 1643 00"),
            (
                "FR14 2004 1010 0505 0001 3M02 606",
                "FR14 2004 1010 0505 0001 3M02 606",
            ),
        ] {
            assert_eq!(spans(text, Detector::Iban), vec![want], "{text}");
        }
    }

    #[test]
    fn ibans_with_wrong_check_digits_or_shape_do_not_match() {
        for text in [
            "GB83 WEST 1234 5698 7654 32",  // check digits wrong
            "DE88370400440532013000",       // check digits wrong
            "DE89370400440532013001",       // BBAN changed
            "DE8937040044053201300",        // too short
            "DE893704004405320130001",      // too long (inside a word)
            "XDE89370400440532013000",      // inside a word
            "ZZ89370400440532013000",       // no such country
            "GB82  WEST 1234 5698 7654 32", // double space breaks it
            "AB12 nothing here",
        ] {
            assert!(spans(text, Detector::Iban).is_empty(), "{text}");
        }
    }

    #[test]
    fn emails_match() {
        assert_eq!(
            spans(
                "mail jane.doe+x@gmail.com, or bob@example.co.uk.",
                Detector::Email
            ),
            vec!["jane.doe+x@gmail.com", "bob@example.co.uk"]
        );
        assert_eq!(
            spans("<a_b-c@x-y.org>", Detector::Email),
            vec!["a_b-c@x-y.org"]
        );
        for text in [
            "@gmail.com",
            "jane@",
            "jane@localhost",
            "a@b.c",
            "a@.com",
            "x@y.12",
        ] {
            assert!(spans(text, Detector::Email).is_empty(), "{text}");
        }
    }

    #[test]
    fn phones_match() {
        for (text, want) in [
            ("call +1 415-555-0134 now", "+1 415-555-0134"),
            ("(415) 555-0134", "(415) 555-0134"),
            ("415.555.0134", "415.555.0134"),
            ("+14155550134", "+14155550134"),
            ("07700 900123", "07700 900123"),
            ("tel: +44 20 7946 0123.", "+44 20 7946 0123"),
            ("415-555-0134", "415-555-0134"),
        ] {
            assert_eq!(spans(text, Detector::Phone), vec![want], "{text}");
        }
    }

    #[test]
    fn phone_lookalikes_do_not_match() {
        for text in [
            "AUTH 123456  THANK YOU!",
            "on 2024-03-14",
            "03/14/2024 12:30",
            "TOTAL 1234.56",
            "order 1234567890",
            "qty 3 x 12",
            "v1.2.3",
            "+123",
            "ABC-1234567",
            "card 4111 1111 1111 1111",
            "ref 1234 5678 9012 3456 7890",
        ] {
            assert!(spans(text, Detector::Phone).is_empty(), "{text}");
        }
    }

    #[test]
    fn masking_free_text() {
        let text = "Card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32, \
                    mail jane.doe@gmail.com, call +1 415-555-0134, order 1234567890123456";
        let out = mask_free_text(text);
        assert_eq!(
            out,
            "Card •••• •••• •••• 1111, IBAN •••• •••• •••• •••• ••54 32, \
             mail j***@g***.com, call •••••••••34, order 1234567890123456"
        );
    }

    #[test]
    fn redaction_counts_and_markers() {
        let text = "4111111111111111 then 5500 0000 0000 0004 and 1234567890123456";
        let (out, n) = redact(text, Detector::Card);
        assert_eq!(n, 2);
        assert_eq!(
            out,
            "[REDACTED:card] then [REDACTED:card] and 1234567890123456"
        );
        let (out, n) = redact("to DE89370400440532013000.", Detector::Iban);
        assert_eq!((out.as_str(), n), ("to [REDACTED:iban].", 1));
        let (out, n) = redact("nothing here", Detector::Iban);
        assert_eq!((out.as_str(), n), ("nothing here", 0));
    }

    #[test]
    fn non_ascii_text_is_safe() {
        let text = "Café 東京 4111111111111111 — é@é.com ☎ +33 1 23 45 67 89";
        let out = mask_free_text(text);
        assert!(out.contains("•••••••••••1111"), "{out}");
        assert!(out.contains("•••••••••89"), "{out}");
        let _ = find_all("é@");
        let _ = find_all("@");
        let _ = find_all("+");
    }

    #[test]
    fn random_digit_runs_match_only_when_luhn_valid() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut matched = 0;
        for _ in 0..2000 {
            let n: String = (0..16)
                .map(|k| {
                    let lo = if k == 0 { 1 } else { 0 };
                    char::from(b'0' + rng.gen_range(lo..10u8))
                })
                .collect();
            let text = format!("order {n} shipped");
            let hit = !find(&text, Detector::Card).is_empty();
            assert_eq!(hit, luhn_valid(&n), "{n}");
            matched += usize::from(hit);
        }
        // About one in ten random numbers passes Luhn by chance.
        assert!((100..400).contains(&matched), "{matched}");
    }

    #[test]
    fn synthetic_receipts_only_match_their_real_secrets() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let city = &crate::pluto::names::CITIES[0];
        for k in 0..300 {
            let full_card = k % 3 == 0;
            let r = crate::pluto::fake::receipt_ocr(
                &mut rng,
                "Blue Fern Bakery",
                city,
                (2024, 3, 14),
                full_card,
                None,
            );
            let cards = find(&r.ocr, Detector::Card).len();
            assert_eq!(cards, usize::from(full_card), "{}", r.ocr);
            assert!(find(&r.ocr, Detector::Iban).is_empty(), "{}", r.ocr);
            assert!(find(&r.ocr, Detector::Email).is_empty(), "{}", r.ocr);
        }
    }
}
