//! Rows in PostgreSQL's COPY text format, written straight into a byte buffer.
//!
//! The text format separates columns with a tab and rows with a newline; `\N`
//! is NULL; inside a value a backslash starts an escape. [`escape_into`] is the
//! one place that makes a value safe for it. Timestamps are formatted here too,
//! from seconds since the Unix epoch, without going through `now()`.

use std::io::Write;

use uuid::Uuid;

/// Appends `value` to `out`, escaped for the COPY text format: backslash, tab,
/// newline and carriage return become `\\`, `\t`, `\n`, `\r`. PostgreSQL text
/// cannot hold a NUL character, so NUL is dropped.
pub fn escape_into(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            0 => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escaped);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Builds the rows of one table in COPY text format.
#[derive(Debug, Default)]
pub struct RowWriter {
    buf: Vec<u8>,
    rows: u64,
    /// True when the next field is the first one of its row.
    at_row_start: bool,
}

impl RowWriter {
    pub fn new() -> RowWriter {
        RowWriter {
            buf: Vec::with_capacity(64 * 1024),
            rows: 0,
            at_row_start: true,
        }
    }

    fn sep(&mut self) {
        if self.at_row_start {
            self.at_row_start = false;
        } else {
            self.buf.push(b'\t');
        }
    }

    /// A text value, escaped.
    pub fn str(&mut self, value: &str) -> &mut Self {
        self.sep();
        escape_into(&mut self.buf, value);
        self
    }

    /// A text value or NULL.
    pub fn opt_str(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.str(v),
            None => self.null(),
        }
    }

    pub fn null(&mut self) -> &mut Self {
        self.sep();
        self.buf.extend_from_slice(b"\\N");
        self
    }

    pub fn int(&mut self, value: i64) -> &mut Self {
        self.sep();
        // Writing into a Vec cannot fail.
        let _ = write!(self.buf, "{value}");
        self
    }

    /// A float with six decimals (about 0.1 m for a latitude).
    pub fn coord(&mut self, value: f64) -> &mut Self {
        self.sep();
        let _ = write!(self.buf, "{value:.6}");
        self
    }

    pub fn uuid(&mut self, value: &Uuid) -> &mut Self {
        self.sep();
        let mut tmp = [0u8; uuid::fmt::Hyphenated::LENGTH];
        self.buf
            .extend_from_slice(value.hyphenated().encode_lower(&mut tmp).as_bytes());
        self
    }

    /// A `timestamptz` from seconds since 1970-01-01 UTC.
    pub fn ts(&mut self, unix_secs: i64) -> &mut Self {
        self.sep();
        write_timestamp(&mut self.buf, unix_secs);
        self
    }

    /// A `date` from days since 1970-01-01.
    pub fn date(&mut self, unix_days: i64) -> &mut Self {
        self.sep();
        write_date(&mut self.buf, unix_days);
        self
    }

    /// Ends the current row.
    pub fn end(&mut self) {
        self.buf.push(b'\n');
        self.rows += 1;
        self.at_row_start = true;
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The finished rows, and the writer emptied for the next batch.
    pub fn take(&mut self) -> (Vec<u8>, u64) {
        let rows = std::mem::take(&mut self.rows);
        self.at_row_start = true;
        (std::mem::take(&mut self.buf), rows)
    }
}

/// (year, month, day) of a day number counted from 1970-01-01 (proleptic
/// Gregorian; Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a civil date (inverse of [`civil_from_days`]).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Years 1 to 9999 only (all the generator writes).
fn write_date(buf: &mut Vec<u8>, days: i64) {
    let (y, m, d) = civil_from_days(days);
    let _ = write!(buf, "{y:04}-{m:02}-{d:02}");
}

fn write_timestamp(buf: &mut Vec<u8>, secs: i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    write_date(buf, days);
    let _ = write!(
        buf,
        " {:02}:{:02}:{:02}+00",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str) -> String {
        let mut out = Vec::new();
        escape_into(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    /// Reverses the COPY text escaping, as PostgreSQL does on input.
    fn unescape(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('\\') => out.push('\\'),
                    Some('t') => out.push('\t'),
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    other => panic!("unexpected escape {other:?}"),
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn escapes_hostile_values() {
        assert_eq!(esc("plain"), "plain");
        assert_eq!(esc(""), "");
        assert_eq!(esc("a\tb"), "a\\tb");
        assert_eq!(esc("a\nb\r\n"), "a\\nb\\r\\n");
        assert_eq!(esc("C:\\temp\\new"), "C:\\\\temp\\\\new");
        // The end-of-data marker and a literal NULL marker stay data.
        assert_eq!(esc("\\."), "\\\\.");
        assert_eq!(esc("\\N"), "\\\\N");
        assert_eq!(esc("nul\0byte"), "nulbyte");
        assert_eq!(esc("José\tZoë\nŁukasz"), "José\\tZoë\\nŁukasz");
        assert_eq!(esc("\x1b[2J\x07"), "\x1b[2J\x07");
    }

    #[test]
    fn escaped_values_never_contain_raw_separators_and_round_trip() {
        let hostile = [
            "\\",
            "\\\\\t\t\n\n\r\r",
            "tab\there",
            "quote ' \" , ; -- %_",
            "\u{2028}\u{feff}emoji 🧾",
            "ends with backslash\\",
        ];
        for h in hostile {
            let e = esc(h);
            assert!(!e.contains('\t') && !e.contains('\n') && !e.contains('\r'));
            assert_eq!(unescape(&e), h);
        }
    }

    #[test]
    fn row_writer_builds_rows() {
        let mut w = RowWriter::new();
        w.int(7).str("a\tb").null().opt_str(Some("x")).opt_str(None);
        w.end();
        w.coord(51.5).ts(0).date(0);
        w.end();
        let (buf, rows) = w.take();
        assert_eq!(rows, 2);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "7\ta\\tb\t\\N\tx\t\\N\n51.500000\t1970-01-01 00:00:00+00\t1970-01-01\n"
        );
        assert!(w.is_empty());
        assert_eq!(w.rows(), 0);
    }

    #[test]
    fn dates_match_chrono() {
        for days in [
            -100_000i64,
            -1,
            0,
            59,
            60,
            365,
            10_957,
            11_016,
            20_454,
            2_932_896,
        ] {
            let expected = chrono::DateTime::from_timestamp(days * 86_400, 0)
                .unwrap()
                .format("%Y-%m-%d")
                .to_string();
            let mut buf = Vec::new();
            write_date(&mut buf, days);
            assert_eq!(String::from_utf8(buf).unwrap(), expected, "day {days}");
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        let secs = 1_709_641_234; // 2024-03-05 12:20:34 UTC
        let mut buf = Vec::new();
        write_timestamp(&mut buf, secs);
        assert_eq!(String::from_utf8(buf).unwrap(), "2024-03-05 12:20:34+00");
    }
}
