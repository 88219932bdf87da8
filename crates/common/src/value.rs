//! SQL values and MySQL's rules for comparing and converting them.
//!
//! A [`Value`] is what an expression produces and what a row holds once decoded. Character
//! strings ([`Value::Text`]) and binary strings ([`Value::Bytes`]) are distinct because they
//! compare differently: text under a collation, bytes byte by byte.
//!
//! The conversions follow MySQL, not Rust: `'12abc' + 1` is 13 (with a warning), comparing a
//! number with a string compares them as numbers, comparing a date with a string reads the
//! string as a date.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::collation::Collation;
use crate::decimal::Decimal;
use crate::temporal::{self, Date, DateTime, Time};

/// `PartialEq` is structural (same variant, same contents), for tests and plan comparison;
/// SQL equality is [`Value::sql_eq`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    Int(i64),
    UInt(u64),
    Double(f64),
    Decimal(Decimal),
    Text(String),
    Bytes(Vec<u8>),
    Date(Date),
    DateTime(DateTime),
    Time(Time),
}

/// Result of reading a number out of a string the MySQL way.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParsedNumber<T> {
    pub value: T,
    /// False when characters were ignored (`'12abc'`) or the string had no number at all.
    pub clean: bool,
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn text(s: impl Into<String>) -> Value {
        Value::Text(s.into())
    }

    pub fn from_bool(b: bool) -> Value {
        Value::Int(b as i64)
    }

    /// Whether the value is a number (for choosing how two values compare).
    pub fn is_numeric(&self) -> bool {
        matches!(self, Value::Int(_) | Value::UInt(_) | Value::Double(_) | Value::Decimal(_))
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Value::Text(_) | Value::Bytes(_))
    }

    pub fn is_temporal(&self) -> bool {
        matches!(self, Value::Date(_) | Value::DateTime(_) | Value::Time(_))
    }

    /// SQL truth: NULL is unknown, numbers are true when non-zero, strings are read as numbers.
    pub fn truthy(&self) -> Option<bool> {
        match self {
            Value::Null => None,
            Value::Int(v) => Some(*v != 0),
            Value::UInt(v) => Some(*v != 0),
            Value::Double(v) => Some(*v != 0.0),
            Value::Decimal(d) => Some(!d.is_zero()),
            Value::Text(_) | Value::Bytes(_) => Some(self.to_f64().unwrap_or(0.0) != 0.0),
            Value::Date(d) => Some(!d.is_zero()),
            Value::DateTime(dt) => Some(*dt != DateTime::ZERO),
            Value::Time(t) => Some(t.to_micros() != 0),
        }
    }

    /// The value as a double (NULL gives None). Strings are read leniently.
    pub fn to_f64(&self) -> Option<f64> {
        Some(match self {
            Value::Null => return None,
            Value::Int(v) => *v as f64,
            Value::UInt(v) => *v as f64,
            Value::Double(v) => *v,
            Value::Decimal(d) => d.to_f64(),
            Value::Text(s) => parse_f64_prefix(s).value,
            Value::Bytes(b) => parse_f64_prefix(&String::from_utf8_lossy(b)).value,
            Value::Date(d) => date_number(*d) as f64,
            Value::DateTime(dt) => {
                datetime_number(*dt) as f64 + dt.micros as f64 / 1e6
            }
            Value::Time(t) => time_number(*t) as f64 + t.micros as f64 / 1e6 * if t.negative { -1.0 } else { 1.0 },
        })
    }

    /// The value as a decimal (NULL gives None; doubles outside 38 digits give None).
    pub fn to_decimal(&self) -> Option<Decimal> {
        match self {
            Value::Null => None,
            Value::Int(v) => Some(Decimal::from_i64(*v)),
            Value::UInt(v) => Some(Decimal::from_u64(*v)),
            Value::Double(v) => Decimal::from_f64(*v),
            Value::Decimal(d) => Some(*d),
            Value::Text(_) | Value::Bytes(_) => {
                let text = self.to_text();
                Some(parse_decimal_prefix(&text).value)
            }
            Value::Date(_) | Value::DateTime(_) | Value::Time(_) => {
                Decimal::parse(&self.to_text().replace(['-', ':', ' '], ""))
            }
        }
    }

    /// The value as a signed integer, rounding as MySQL does; None for NULL or when it does
    /// not fit.
    pub fn to_i64(&self) -> Option<i64> {
        match self {
            Value::Null => None,
            Value::Int(v) => Some(*v),
            Value::UInt(v) => i64::try_from(*v).ok(),
            Value::Double(v) => {
                let r = v.round();
                (r >= i64::MIN as f64 && r < i64::MAX as f64).then_some(r as i64)
            }
            Value::Decimal(d) => i64::try_from(d.round_to_i128()).ok(),
            Value::Text(_) | Value::Bytes(_) => {
                let text = self.to_text();
                match parse_int_prefix(&text) {
                    Some(n) => i64::try_from(n.value).ok(),
                    None => Value::Double(parse_f64_prefix(&text).value).to_i64(),
                }
            }
            Value::Date(d) => Some(date_number(*d)),
            Value::DateTime(dt) => Some(datetime_number(*dt)),
            Value::Time(t) => Some(time_number(*t)),
        }
    }

    /// The value as an unsigned integer; None for NULL, negatives, or overflow.
    pub fn to_u64(&self) -> Option<u64> {
        match self {
            Value::UInt(v) => Some(*v),
            Value::Int(v) => u64::try_from(*v).ok(),
            Value::Double(v) => {
                let r = v.round();
                (r >= 0.0 && r < u64::MAX as f64).then_some(r as u64)
            }
            Value::Decimal(d) => u64::try_from(d.round_to_i128()).ok(),
            Value::Text(_) | Value::Bytes(_) => {
                let text = self.to_text();
                match parse_int_prefix(&text) {
                    Some(n) => u64::try_from(n.value).ok(),
                    None => Value::Double(parse_f64_prefix(&text).value).to_u64(),
                }
            }
            other => other.to_i64().and_then(|v| u64::try_from(v).ok()),
        }
    }

    /// The value as text, as `CAST(x AS CHAR)` or `CONCAT` would show it.
    pub fn to_text(&self) -> Cow<'_, str> {
        match self {
            Value::Null => Cow::Borrowed(""),
            Value::Int(v) => Cow::Owned(v.to_string()),
            Value::UInt(v) => Cow::Owned(v.to_string()),
            Value::Double(v) => Cow::Owned(format_double(*v)),
            Value::Decimal(d) => Cow::Owned(d.to_string()),
            Value::Text(s) => Cow::Borrowed(s),
            Value::Bytes(b) => String::from_utf8_lossy(b),
            Value::Date(d) => Cow::Owned(d.to_string()),
            Value::DateTime(dt) => Cow::Owned(dt.to_string()),
            Value::Time(t) => Cow::Owned(t.to_string()),
        }
    }

    /// The value as bytes (strings as their UTF-8 encoding).
    pub fn to_bytes(&self) -> Cow<'_, [u8]> {
        match self {
            Value::Bytes(b) => Cow::Borrowed(b),
            Value::Text(s) => Cow::Borrowed(s.as_bytes()),
            other => match other.to_text() {
                Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
                Cow::Owned(s) => Cow::Owned(s.into_bytes()),
            },
        }
    }

    /// The value read as a datetime (strings parsed, numbers as YYYYMMDDhhmmss).
    pub fn to_datetime(&self) -> Option<DateTime> {
        match self {
            Value::DateTime(dt) => Some(*dt),
            Value::Date(d) => Some(DateTime::from_date(*d)),
            Value::Text(_) | Value::Bytes(_) => temporal::parse_datetime(&self.to_text()),
            Value::Int(_) | Value::UInt(_) | Value::Decimal(_) | Value::Double(_) => {
                number_to_datetime(self.to_text().as_ref())
            }
            Value::Time(_) | Value::Null => None,
        }
    }

    pub fn to_date(&self) -> Option<Date> {
        self.to_datetime().map(|dt| dt.date)
    }

    pub fn to_time(&self) -> Option<Time> {
        match self {
            Value::Time(t) => Some(*t),
            Value::DateTime(dt) => Some(dt.time_of_day()),
            Value::Date(_) => Some(Time::ZERO),
            Value::Null => None,
            other => temporal::parse_time(&other.to_text()),
        }
    }

    /// Compares two values with MySQL's rules; None when either is NULL.
    ///
    /// Two strings compare as strings (under `collation`, unless either is binary); a number
    /// and a string, or two numbers, compare numerically (exactly for integers and decimals,
    /// as doubles otherwise); a temporal and a string compare as temporals.
    pub fn sql_cmp(&self, other: &Value, collation: Collation) -> Option<Ordering> {
        use Value::*;
        Some(match (self, other) {
            (Null, _) | (_, Null) => return None,
            (Int(a), Int(b)) => a.cmp(b),
            (UInt(a), UInt(b)) => a.cmp(b),
            (Int(a), UInt(b)) => cmp_i_u(*a, *b),
            (UInt(a), Int(b)) => cmp_i_u(*b, *a).reverse(),
            (Text(a), Text(b)) => collation.compare(a, b),
            (Bytes(a), Bytes(b)) => trim_spaces(a).cmp(trim_spaces(b)),
            (Text(a), Bytes(b)) => trim_spaces(a.as_bytes()).cmp(trim_spaces(b)),
            (Bytes(a), Text(b)) => trim_spaces(a).cmp(trim_spaces(b.as_bytes())),
            (Date(a), Date(b)) => a.cmp(b),
            (Time(a), Time(b)) => a.cmp(b),
            (DateTime(_) | Date(_), DateTime(_) | Date(_)) => self.to_datetime()?.cmp(&other.to_datetime()?),
            (Time(_), Text(_) | Bytes(_)) => self.to_time()?.cmp(&other.to_time()?),
            (Text(_) | Bytes(_), Time(_)) => self.to_time()?.cmp(&other.to_time()?),
            (Date(_) | DateTime(_), Text(_) | Bytes(_)) | (Text(_) | Bytes(_), Date(_) | DateTime(_)) => {
                match (self.to_datetime(), other.to_datetime()) {
                    (Some(a), Some(b)) => a.cmp(&b),
                    // A string that is not a date compares as a string, as MySQL does.
                    _ => self.to_text().as_ref().cmp(other.to_text().as_ref()),
                }
            }
            (Decimal(_) | Int(_) | UInt(_), Decimal(_) | Int(_) | UInt(_)) => {
                self.to_decimal()?.cmp(&other.to_decimal()?)
            }
            _ => {
                let a = self.to_f64()?;
                let b = other.to_f64()?;
                a.partial_cmp(&b)?
            }
        })
    }

    pub fn sql_eq(&self, other: &Value, collation: Collation) -> Option<bool> {
        self.sql_cmp(other, collation).map(|o| o == Ordering::Equal)
    }

    /// Order for ORDER BY and sorting: NULLs first, then `sql_cmp`; never fails.
    pub fn order_cmp(&self, other: &Value, collation: Collation) -> Ordering {
        match (self.is_null(), other.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => self.sql_cmp(other, collation).unwrap_or(Ordering::Equal),
        }
    }

    /// Appends the value in MySQL's text-protocol form (numbers and strings as they print).
    pub fn write_text(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("NULL"),
            Value::Int(v) => {
                let _ = write!(out, "{v}");
            }
            Value::UInt(v) => {
                let _ = write!(out, "{v}");
            }
            other => out.push_str(&other.to_text()),
        }
    }

    /// An SQL literal for this value (for SHOW CREATE TABLE defaults, error messages, dumps).
    pub fn to_sql_literal(&self) -> String {
        match self {
            Value::Null => "NULL".to_string(),
            Value::Int(_) | Value::UInt(_) | Value::Double(_) | Value::Decimal(_) => self.to_text().into_owned(),
            Value::Bytes(b) if std::str::from_utf8(b).is_err() => {
                let mut s = String::from("0x");
                for byte in b {
                    let _ = write!(s, "{byte:02X}");
                }
                s
            }
            other => quote_string(&other.to_text()),
        }
    }
}

/// Quotes a string as an SQL literal: `'it''s'` style with backslash escapes for control bytes.
pub fn quote_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1a}' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn trim_spaces(b: &[u8]) -> &[u8] {
    let mut end = b.len();
    while end > 0 && b[end - 1] == b' ' {
        end -= 1;
    }
    &b[..end]
}

fn cmp_i_u(a: i64, b: u64) -> Ordering {
    if a < 0 { Ordering::Less } else { (a as u64).cmp(&b) }
}

fn date_number(d: Date) -> i64 {
    d.year as i64 * 10_000 + d.month as i64 * 100 + d.day as i64
}

fn datetime_number(dt: DateTime) -> i64 {
    date_number(dt.date) * 1_000_000 + dt.hour as i64 * 10_000 + dt.minute as i64 * 100 + dt.second as i64
}

fn time_number(t: Time) -> i64 {
    let n = t.hours as i64 * 10_000 + t.minute as i64 * 100 + t.second as i64;
    if t.negative { -n } else { n }
}

/// Reads a number such as 20240131 or 20240131120000 as a datetime.
fn number_to_datetime(text: &str) -> Option<DateTime> {
    let digits = text.split('.').next()?;
    let n: u64 = digits.parse().ok()?;
    if n == 0 {
        return Some(DateTime::ZERO);
    }
    let (date, time) = if digits.len() <= 8 { (n, 0) } else { (n / 1_000_000, n % 1_000_000) };
    let (mut y, m, d) = (date / 10_000, date / 100 % 100, date % 100);
    if digits.len() <= 6 {
        y += if y < 70 { 2000 } else { 1900 };
    }
    let date = Date::new(u16::try_from(y).ok()?, m as u8, d as u8)?;
    DateTime::new(date, (time / 10_000) as u8, (time / 100 % 100) as u8, (time % 100) as u8, 0)
}

/// Length of the longest prefix of `s` (after leading spaces) that reads as a number, and
/// whether the whole string was consumed.
fn numeric_prefix(s: &str) -> (&str, bool) {
    let trimmed = s.trim_start();
    let b = trimmed.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        let frac_start = i + 1;
        let mut j = frac_start;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        digits += j - frac_start;
        if digits > 0 {
            i = j;
        }
    }
    if digits == 0 {
        return ("", trimmed.is_empty());
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let exp_start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_start {
            i = j;
        }
    }
    let clean = trimmed[i..].trim_end().is_empty();
    (&trimmed[..i], clean)
}

/// Reads a double from the start of a string as MySQL does (`'3.5kg'` is 3.5, not clean).
pub fn parse_f64_prefix(s: &str) -> ParsedNumber<f64> {
    let (prefix, clean) = numeric_prefix(s);
    let value = prefix.parse::<f64>().unwrap_or(0.0);
    ParsedNumber { value: if value.is_finite() { value } else { f64::MAX.copysign(value) }, clean: clean && !prefix.is_empty() }
}

/// Reads a decimal from the start of a string.
pub fn parse_decimal_prefix(s: &str) -> ParsedNumber<Decimal> {
    let (prefix, clean) = numeric_prefix(s);
    match Decimal::parse(prefix) {
        Some(d) => ParsedNumber { value: d, clean },
        None => ParsedNumber {
            value: Decimal::from_f64(parse_f64_prefix(s).value).unwrap_or(Decimal::ZERO),
            clean: false,
        },
    }
}

/// Reads an integer from the start of a string if the prefix is a plain integer (no point or
/// exponent); values are returned as i128 so callers can range-check either signedness.
pub fn parse_int_prefix(s: &str) -> Option<ParsedNumber<i128>> {
    let (prefix, clean) = numeric_prefix(s);
    if prefix.is_empty() {
        return Some(ParsedNumber { value: 0, clean: false });
    }
    if prefix.contains(['.', 'e', 'E']) {
        return None;
    }
    let value = prefix.parse::<i128>().ok()?;
    Some(ParsedNumber { value, clean })
}

/// Formats a double as MySQL prints DOUBLE values: the shortest digits that read back the
/// same, in plain notation for moderate exponents and `1e20` style otherwise.
pub fn format_double(v: f64) -> String {
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    if !v.is_finite() {
        return if v.is_nan() { "NaN".into() } else if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let sci = format!("{v:e}"); // shortest round-trip digits, e.g. "1.2345e-7"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-5..15).contains(&exp) {
        // Plain notation; Rust's Display already gives the shortest round-trip digits.
        let plain = format!("{v}");
        return plain;
    }
    format!("{mantissa}e{exp}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ci() -> Collation {
        Collation::CaseInsensitive
    }

    #[test]
    fn numbers_and_strings_compare_as_numbers() {
        assert_eq!(Value::Int(10).sql_cmp(&Value::text("9"), ci()), Some(Ordering::Greater));
        assert_eq!(Value::text("10").sql_cmp(&Value::text("9"), ci()), Some(Ordering::Less), "two strings compare as strings");
        assert_eq!(Value::Int(1).sql_cmp(&Value::text("1abc"), ci()), Some(Ordering::Equal));
        assert_eq!(Value::Int(-1).sql_cmp(&Value::UInt(u64::MAX), ci()), Some(Ordering::Less));
        assert_eq!(Value::UInt(u64::MAX).sql_cmp(&Value::Int(i64::MAX), ci()), Some(Ordering::Greater));
        assert_eq!(Value::Null.sql_cmp(&Value::Int(1), ci()), None);
        let half = Value::Decimal(Decimal::parse("0.5").unwrap());
        assert_eq!(half.sql_cmp(&Value::Double(0.5), ci()), Some(Ordering::Equal));
    }

    #[test]
    fn strings_compare_under_collation() {
        assert_eq!(Value::text("Alice").sql_eq(&Value::text("ALICE "), ci()), Some(true));
        assert_eq!(Value::text("Alice").sql_eq(&Value::text("ALICE"), Collation::Binary), Some(false));
        assert_eq!(Value::Bytes(b"a".to_vec()).sql_eq(&Value::Bytes(b"A".to_vec()), ci()), Some(false));
    }

    #[test]
    fn dates_compare_with_strings() {
        let d = Value::Date(temporal::parse_date("2024-01-31").unwrap());
        assert_eq!(d.sql_cmp(&Value::text("2024-01-31"), ci()), Some(Ordering::Equal));
        assert_eq!(d.sql_cmp(&Value::text("2024-02-01 00:00:00"), ci()), Some(Ordering::Less));
    }

    #[test]
    fn lenient_number_parsing() {
        assert_eq!(parse_f64_prefix("  3.5kg"), ParsedNumber { value: 3.5, clean: false });
        assert_eq!(parse_f64_prefix("1e3"), ParsedNumber { value: 1000.0, clean: true });
        assert_eq!(parse_f64_prefix("abc"), ParsedNumber { value: 0.0, clean: false });
        assert_eq!(parse_f64_prefix(" 12 "), ParsedNumber { value: 12.0, clean: true });
        assert_eq!(parse_int_prefix("-42x").unwrap(), ParsedNumber { value: -42, clean: false });
        assert!(parse_int_prefix("4.2").is_none());
        assert_eq!(Value::text("12abc").to_i64(), Some(12));
        assert_eq!(Value::text("2.5").to_i64(), Some(3), "MySQL rounds");
    }

    #[test]
    fn doubles_print_like_mysql() {
        assert_eq!(format_double(1.5), "1.5");
        assert_eq!(format_double(100.0), "100");
        assert_eq!(format_double(1e20), "1e20");
        assert_eq!(format_double(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_double(-2.5e-7), "-2.5e-7");
        assert_eq!(format_double(123456789012345.0), "123456789012345");
    }

    #[test]
    fn truthiness() {
        assert_eq!(Value::text("0.0").truthy(), Some(false));
        assert_eq!(Value::text("x").truthy(), Some(false));
        assert_eq!(Value::text("1x").truthy(), Some(true));
        assert_eq!(Value::Null.truthy(), None);
    }

    #[test]
    fn literals_quote_safely() {
        assert_eq!(Value::text("it's \\ \n").to_sql_literal(), "'it''s \\\\ \\n'");
        assert_eq!(Value::Bytes(vec![0xff, 0x00]).to_sql_literal(), "0xFF00");
    }
}
