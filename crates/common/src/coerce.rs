//! Converting a value to a column's type the way MySQL stores values (store assignment).
//!
//! The row encoder only accepts values already of their column's kind and range; this module
//! gets them there, with MySQL's rules:
//!
//! - Integers from decimals and numeric strings round half away from zero (`'2.5'` → 3); from
//!   doubles they round half to even, as MySQL's `rint()` does (`2.5e0` → 2). Outside the
//!   column's range: 1264 "Out of range value".
//! - DECIMAL(p, s) rounds extra fractional digits (half away from zero) and refuses values with
//!   more than p − s integer digits (1264).
//! - Strings longer than the column: 1406 "Data too long", except that trailing spaces beyond
//!   the length are dropped silently, as MySQL does for CHAR and VARCHAR. BINARY(n) is padded
//!   with zero bytes to n.
//! - Dates and times parse from strings and numbers; invalid ones give 1292. TIMESTAMP must lie
//!   in 1970-01-01 00:00:01 .. 2038-01-19 03:14:07 UTC. Fractional seconds round to the
//!   column's precision.
//! - NULL in a NOT NULL column: 1048 "Column 'c' cannot be null", in every mode (the SQL layer
//!   decides when a multi-row INSERT substitutes the implicit default instead).
//!
//! Strict mode (MySQL 8's default, STRICT_TRANS_TABLES) turns every lossy conversion into an
//! error; without it (INSERT IGNORE, UPDATE IGNORE, a non-strict sql_mode) the value is clipped
//! or truncated and a warning is recorded, as MySQL does.
//!
//! Differences from MySQL: a numeric string with trailing garbage (`'12abc'`) is reported with
//! 1366 "Incorrect integer value" in strict mode, where MySQL says 1265 "Data truncated" (1265
//! is not in the error registry; as a warning it is used). SET columns and BIT are not types
//! Cairn has.

use crate::catalog::ColumnDef;
use crate::decimal::Decimal;
use crate::expr::{Warning, WarningLevel};
use crate::temporal::{Date, DateTime, Time};
use crate::types::{ColumnType, IntWidth};
use crate::value::{Value, format_double, parse_decimal_prefix, parse_f64_prefix};
use crate::{Error, ErrorKind, Result};

/// MySQL's "Data truncated for column" warning.
const WARN_DATA_TRUNCATED: u16 = 1265;

/// Mode and state of a run of conversions (one statement).
#[derive(Clone, Debug)]
pub struct Coercion {
    /// Lossy conversions fail instead of warning.
    pub strict: bool,
    /// The zero date `0000-00-00` (and zero datetime/timestamp) is refused (NO_ZERO_DATE).
    pub no_zero_date: bool,
    /// The row number messages name ("at row 3"), 1-based.
    pub row: u64,
    /// Warnings of non-strict conversions, bounded as MySQL's max_error_count (64).
    pub warnings: Vec<Warning>,
}

impl Coercion {
    /// MySQL 8's default sql_mode: strict, no zero dates.
    pub fn strict() -> Coercion {
        Coercion { strict: true, no_zero_date: true, row: 1, warnings: Vec::new() }
    }

    /// Non-strict: values are clipped with a warning.
    pub fn lenient() -> Coercion {
        Coercion { strict: false, no_zero_date: false, row: 1, warnings: Vec::new() }
    }

    fn warn(&mut self, code: u16, message: String) {
        if self.warnings.len() < 64 {
            self.warnings.push(Warning { level: WarningLevel::Warning, code, message });
        }
    }

    /// Fails in strict mode; otherwise records a warning and goes on with `fallback`.
    fn fail(&mut self, kind: ErrorKind, warning: u16, message: String, fallback: Value) -> Result<Value> {
        if self.strict {
            return Err(Error::new(kind, message));
        }
        self.warn(warning, message);
        Ok(fallback)
    }

    fn out_of_range(&mut self, column: &ColumnDef, clipped: Value) -> Result<Value> {
        let message = format!("Out of range value for column '{}' at row {}", column.name, self.row);
        self.fail(ErrorKind::OutOfRange, ErrorKind::OutOfRange.code(), message, clipped)
    }

    fn incorrect(&mut self, what: &str, value: &Value, column: &ColumnDef, fallback: Value) -> Result<Value> {
        let message =
            format!("Incorrect {what} value: '{}' for column '{}' at row {}", value.to_text(), column.name, self.row);
        self.fail(ErrorKind::IncorrectValueForField, ErrorKind::IncorrectValueForField.code(), message, fallback)
    }

    fn truncated_number(&mut self, what: &str, value: &Value, column: &ColumnDef, kept: Value) -> Result<Value> {
        if self.strict {
            return self.incorrect(what, value, column, kept);
        }
        let message = format!("Data truncated for column '{}' at row {}", column.name, self.row);
        self.warn(WARN_DATA_TRUNCATED, message);
        Ok(kept)
    }

    fn too_long(&mut self, column: &ColumnDef, truncated: Value) -> Result<Value> {
        let message = format!("Data too long for column '{}' at row {}", column.name, self.row);
        if self.strict {
            return Err(Error::new(ErrorKind::DataTooLong, message));
        }
        self.warn(WARN_DATA_TRUNCATED, format!("Data truncated for column '{}' at row {}", column.name, self.row));
        Ok(truncated)
    }

    fn bad_temporal(&mut self, what: &str, value: &Value, column: &ColumnDef, zero: Value) -> Result<Value> {
        let message =
            format!("Incorrect {what} value: '{}' for column '{}' at row {}", value.to_text(), column.name, self.row);
        self.fail(ErrorKind::TruncatedWrongValue, ErrorKind::TruncatedWrongValue.code(), message, zero)
    }
}

/// Converts `value` to the type of `column` for storing, with MySQL's rules (see the module
/// doc). Strict errors carry MySQL's numbers and messages.
pub fn coerce(value: Value, column: &ColumnDef, cx: &mut Coercion) -> Result<Value> {
    if value.is_null() {
        if column.nullable {
            return Ok(Value::Null);
        }
        return Err(Error::new(ErrorKind::NullNotAllowed, format!("Column '{}' cannot be null", column.name)));
    }
    match &column.ty {
        ColumnType::Int { width, unsigned, .. } => coerce_int(value, *width, *unsigned, column, cx),
        ColumnType::Year => coerce_year(value, column, cx),
        ColumnType::Decimal { precision, scale } => coerce_decimal(value, *precision, *scale, column, cx),
        ColumnType::Float | ColumnType::Double => {
            coerce_double(value, matches!(column.ty, ColumnType::Float), column, cx)
        }
        ColumnType::Char { length, binary: false } | ColumnType::VarChar { length, binary: false } => {
            coerce_text(value, Limit::Chars(*length as usize), column, cx)
        }
        ColumnType::Lob { size, binary: false } => coerce_text(value, Limit::Bytes(size.max_bytes()), column, cx),
        ColumnType::Char { length, binary: true } => {
            let bytes = coerce_bytes(value, *length as u64, column, cx)?;
            match bytes {
                Value::Bytes(mut b) => {
                    b.resize(*length as usize, 0);
                    Ok(Value::Bytes(b))
                }
                other => Ok(other),
            }
        }
        ColumnType::VarChar { length, binary: true } => coerce_bytes(value, *length as u64, column, cx),
        ColumnType::Lob { size, binary: true } => coerce_bytes(value, size.max_bytes(), column, cx),
        ColumnType::Enum { values } => coerce_enum(value, values, column, cx),
        ColumnType::Set { values } => coerce_set(value, values, column, cx),
        ColumnType::Date => coerce_date(value, column, cx),
        ColumnType::DateTime { fsp } => coerce_datetime(value, *fsp, false, column, cx),
        ColumnType::Timestamp { fsp } => coerce_datetime(value, *fsp, true, column, cx),
        ColumnType::Time { fsp } => coerce_time(value, *fsp, column, cx),
    }
}

/// How a string starts: whether it has a number at all.
fn starts_with_number(s: &str) -> bool {
    let t = s.trim_start();
    let t = t.strip_prefix(['+', '-']).unwrap_or(t);
    let t = t.strip_prefix('.').unwrap_or(t);
    t.as_bytes().first().is_some_and(u8::is_ascii_digit)
}

/// A number read from a string for an exact (integer or decimal) column.
enum TextNumber {
    /// No number at all ('abc', '').
    Invalid,
    /// A number (None if it has more than 38 digits), and whether the whole string was used.
    Number { exact: Option<Decimal>, approx: f64, clean: bool },
}

fn read_text_number(s: &str) -> TextNumber {
    if !starts_with_number(s) {
        return TextNumber::Invalid;
    }
    let approx = parse_f64_prefix(s);
    let exact = parse_decimal_prefix(s);
    // parse_decimal_prefix falls back to a rounded double when the digits do not fit 38; keep
    // it only when it agrees with a clean reading.
    let exact_ok = exact.clean == approx.clean && (approx.value == 0.0 || !exact.value.is_zero());
    TextNumber::Number { exact: exact_ok.then_some(exact.value), approx: approx.value, clean: approx.clean }
}

/// An integer value as i128 (enough for every integer column's range check), or a sign when it
/// is beyond any integer range.
enum Integer {
    Exact(i128),
    Beyond { negative: bool },
}

fn round_double(v: f64) -> Integer {
    if !v.is_finite() || v.abs() >= 1.7e38 {
        return Integer::Beyond { negative: v < 0.0 };
    }
    Integer::Exact(v.round_ties_even() as i128)
}

fn coerce_int(value: Value, width: IntWidth, unsigned: bool, column: &ColumnDef, cx: &mut Coercion) -> Result<Value> {
    let (integer, lossy) = match &value {
        Value::Int(v) => (Integer::Exact(*v as i128), false),
        Value::UInt(v) => (Integer::Exact(*v as i128), false),
        Value::Double(v) => (round_double(*v), false),
        Value::Decimal(d) => (Integer::Exact(d.round_to_i128()), false),
        Value::Text(_) | Value::Bytes(_) => {
            let text = value.to_text();
            match read_text_number(&text) {
                TextNumber::Invalid => {
                    return cx.incorrect("integer", &value, column, int_value(0, unsigned));
                }
                TextNumber::Number { exact, approx, clean } => {
                    let integer = match exact {
                        Some(d) => Integer::Exact(d.round_to_i128()),
                        None => round_double(approx),
                    };
                    (integer, !clean)
                }
            }
        }
        Value::Date(_) | Value::DateTime(_) | Value::Time(_) => {
            (Integer::Exact(value.to_i64().unwrap_or(0) as i128), false)
        }
        Value::Null => unreachable!("NULL is handled by coerce"),
    };
    let (low, high): (i128, i128) = if unsigned {
        (0, width.unsigned_max() as i128)
    } else {
        let (lo, hi) = width.signed_range();
        (lo as i128, hi as i128)
    };
    let stored = match integer {
        Integer::Exact(n) if n < low => return cx.out_of_range(column, int_value(low, unsigned)),
        Integer::Exact(n) if n > high => return cx.out_of_range(column, int_value(high, unsigned)),
        Integer::Beyond { negative: true } => return cx.out_of_range(column, int_value(low, unsigned)),
        Integer::Beyond { negative: false } => return cx.out_of_range(column, int_value(high, unsigned)),
        Integer::Exact(n) => int_value(n, unsigned),
    };
    if lossy {
        return cx.truncated_number("integer", &value, column, stored);
    }
    Ok(stored)
}

fn int_value(n: i128, unsigned: bool) -> Value {
    if unsigned { Value::UInt(n as u64) } else { Value::Int(n as i64) }
}

fn coerce_year(value: Value, column: &ColumnDef, cx: &mut Coercion) -> Result<Value> {
    // Two-digit years: 1-69 are 2001-2069 and 70-99 are 1970-1999; as a string, '0' and '00'
    // are 2000 while the number 0 is the zero year.
    let (n, two_digit_string) = match &value {
        Value::Text(_) | Value::Bytes(_) => {
            let text = value.to_text();
            let trimmed = text.trim();
            match read_text_number(trimmed) {
                TextNumber::Invalid => return cx.incorrect("integer", &value, column, Value::Int(0)),
                TextNumber::Number { exact, approx, clean } => {
                    let n = exact.map(|d| d.round_to_i128()).unwrap_or(approx.round() as i128);
                    if !clean {
                        return cx.truncated_number("integer", &value, column, Value::Int(0));
                    }
                    (n, trimmed.len() <= 2)
                }
            }
        }
        Value::Double(v) => match round_double(*v) {
            Integer::Exact(n) => (n, false),
            Integer::Beyond { .. } => return cx.out_of_range(column, Value::Int(0)),
        },
        other => (other.to_decimal().map(|d| d.round_to_i128()).unwrap_or(0), false),
    };
    let year = match n {
        0 if two_digit_string => 2000,
        0 => 0,
        1..=69 => 2000 + n,
        70..=99 => 1900 + n,
        1901..=2155 => n,
        _ => return cx.out_of_range(column, Value::Int(0)),
    };
    Ok(Value::Int(year as i64))
}

fn decimal_max(precision: u8, scale: u8, negative: bool) -> Value {
    let max = 10i128.pow(precision as u32) - 1;
    Value::Decimal(Decimal::new(if negative { -max } else { max }, scale).unwrap_or(Decimal::ZERO))
}

fn coerce_decimal(value: Value, precision: u8, scale: u8, column: &ColumnDef, cx: &mut Coercion) -> Result<Value> {
    let mut lossy = false;
    let decimal = match &value {
        Value::Int(v) => Some(Decimal::from_i64(*v)),
        Value::UInt(v) => Some(Decimal::from_u64(*v)),
        Value::Decimal(d) => Some(*d),
        Value::Double(v) => {
            if !v.is_finite() {
                return cx.out_of_range(column, decimal_max(precision, scale, *v < 0.0));
            }
            Decimal::from_f64(*v)
        }
        Value::Text(_) | Value::Bytes(_) => {
            let text = value.to_text();
            match read_text_number(&text) {
                TextNumber::Invalid => {
                    return cx.incorrect(
                        "decimal",
                        &value,
                        column,
                        Value::Decimal(Decimal::new(0, scale).unwrap_or_default()),
                    );
                }
                TextNumber::Number { exact, approx, clean } => {
                    lossy = !clean;
                    match exact {
                        Some(d) => Some(d),
                        None => return cx.out_of_range(column, decimal_max(precision, scale, approx < 0.0)),
                    }
                }
            }
        }
        other => other.to_decimal(),
    };
    let negative = decimal.is_some_and(Decimal::is_negative) || value.to_f64().is_some_and(|f| f < 0.0);
    let Some(stored) = decimal.and_then(|d| d.rescale(scale)).filter(|d| d.fits(precision, scale)) else {
        return cx.out_of_range(column, decimal_max(precision, scale, negative));
    };
    if lossy {
        return cx.truncated_number("decimal", &value, column, Value::Decimal(stored));
    }
    Ok(Value::Decimal(stored))
}

fn coerce_double(value: Value, single: bool, column: &ColumnDef, cx: &mut Coercion) -> Result<Value> {
    let (v, lossy) = match &value {
        Value::Text(_) | Value::Bytes(_) => {
            let text = value.to_text();
            if !starts_with_number(&text) {
                return cx.incorrect("double", &value, column, Value::Double(0.0));
            }
            let parsed = parse_f64_prefix(&text);
            (parsed.value, !parsed.clean)
        }
        other => (other.to_f64().unwrap_or(0.0), false),
    };
    let limit = if single { f32::MAX as f64 } else { f64::MAX };
    if !v.is_finite() || v.abs() > limit {
        return cx.out_of_range(column, Value::Double(limit.copysign(v)));
    }
    let stored = Value::Double(if single { v as f32 as f64 } else { v });
    if lossy {
        return cx.truncated_number("double", &value, column, stored);
    }
    Ok(stored)
}

enum Limit {
    /// At most this many characters.
    Chars(usize),
    /// At most this many bytes (TEXT family).
    Bytes(u64),
}

fn text_of(value: &Value) -> std::result::Result<String, Vec<u8>> {
    match value {
        Value::Text(s) => Ok(s.clone()),
        Value::Bytes(b) => String::from_utf8(b.clone()).map_err(|e| e.into_bytes()),
        Value::Double(v) => Ok(format_double(*v)),
        other => Ok(other.to_text().into_owned()),
    }
}

fn coerce_text(value: Value, limit: Limit, column: &ColumnDef, cx: &mut Coercion) -> Result<Value> {
    let text = match text_of(&value) {
        Ok(s) => s,
        Err(bytes) => {
            let shown: String = bytes.iter().take(4).map(|b| format!("\\x{b:02X}")).collect();
            let message = format!("Incorrect string value: '{shown}' for column '{}' at row {}", column.name, cx.row);
            let lossy = String::from_utf8_lossy(&bytes).into_owned();
            cx.fail(ErrorKind::IncorrectValueForField, ErrorKind::IncorrectValueForField.code(), message, Value::Null)?;
            lossy
        }
    };
    let fits_at = match limit {
        Limit::Chars(max) => text.char_indices().nth(max).map(|(at, _)| at),
        Limit::Bytes(max) => {
            if text.len() as u64 <= max {
                None
            } else {
                let mut at = max as usize;
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                Some(at)
            }
        }
    };
    match fits_at {
        None => Ok(Value::Text(text)),
        // Trailing spaces beyond the length go silently, as MySQL does for CHAR and VARCHAR.
        Some(at) if text[at..].bytes().all(|b| b == b' ') => Ok(Value::Text(text[..at].to_string())),
        Some(at) => cx.too_long(column, Value::Text(text[..at].to_string())),
    }
}

fn coerce_bytes(value: Value, max: u64, column: &ColumnDef, cx: &mut Coercion) -> Result<Value> {
    let bytes = match value {
        Value::Bytes(b) => b,
        Value::Text(s) => s.into_bytes(),
        Value::Double(v) => format_double(v).into_bytes(),
        other => other.to_text().into_owned().into_bytes(),
    };
    if bytes.len() as u64 > max {
        let kept = bytes[..max as usize].to_vec();
        return cx.too_long(column, Value::Bytes(kept));
    }
    Ok(Value::Bytes(bytes))
}

fn coerce_enum(value: Value, members: &[String], column: &ColumnDef, cx: &mut Coercion) -> Result<Value> {
    let index = match &value {
        Value::Text(_) | Value::Bytes(_) => {
            let text = value.to_text();
            let collation = column.comparison();
            members.iter().position(|m| collation.equal(m, &text)).map(|i| i + 1)
        }
        other => other.to_u64().and_then(|n| usize::try_from(n).ok()).filter(|&n| n >= 1 && n <= members.len()),
    };
    match index {
        Some(i) => Ok(Value::Text(members[i - 1].clone())),
        None => {
            // MySQL reports an ENUM value outside the list as 1265 (01000), also in strict mode.
            let message = format!("Data truncated for column '{}' at row {}", column.name, cx.row);
            cx.fail(ErrorKind::DataTruncated, WARN_DATA_TRUNCATED, message, Value::Text(String::new()))
        }
    }
}

/// A SET value from text (a member list in any order and case, repeats allowed) or from a
/// number (the bit mask, as MySQL accepts it). Unknown members are a truncation: an error in
/// strict mode, otherwise the known members are kept with a warning, as MySQL does.
fn coerce_set(value: Value, members: &[String], column: &ColumnDef, cx: &mut Coercion) -> Result<Value> {
    use crate::set_value;
    let (mask, unknown) = match &value {
        Value::Text(_) | Value::Bytes(_) => {
            let parsed = set_value::parse_text(members, &value.to_text());
            (parsed.mask, parsed.unknown)
        }
        other => match other.to_u64() {
            Some(mask) if set_value::mask_fits(members, mask) => (mask, false),
            Some(mask) => (mask & set_value::all_members(members), true),
            None => (0, true),
        },
    };
    let canonical = Value::Text(set_value::render(members, mask));
    if unknown {
        let message = format!("Data truncated for column '{}' at row {}", column.name, cx.row);
        return cx.fail(ErrorKind::DataTruncated, WARN_DATA_TRUNCATED, message, canonical);
    }
    Ok(canonical)
}

fn is_zero_datetime(dt: &DateTime) -> bool {
    dt.date.is_zero()
}

fn coerce_date(value: Value, column: &ColumnDef, cx: &mut Coercion) -> Result<Value> {
    let zero = Value::Date(Date::ZERO);
    let Some(dt) = read_datetime(&value) else {
        return cx.bad_temporal("date", &value, column, zero);
    };
    if is_zero_datetime(&dt) && cx.no_zero_date {
        return cx.bad_temporal("date", &value, column, zero);
    }
    Ok(Value::Date(dt.date))
}

fn read_datetime(value: &Value) -> Option<DateTime> {
    match value {
        Value::Time(_) => None,
        // A number such as 20240131 or 20240131120000 reads as a date; 0 is the zero date.
        other => other.to_datetime(),
    }
}

/// Largest TIMESTAMP: 2038-01-19 03:14:07 UTC.
const TIMESTAMP_MAX_SECONDS: i64 = 2_147_483_647;

fn coerce_datetime(value: Value, fsp: u8, timestamp: bool, column: &ColumnDef, cx: &mut Coercion) -> Result<Value> {
    let zero = Value::DateTime(DateTime::ZERO);
    let Some(dt) = read_datetime(&value).and_then(|dt| dt.round_to_fsp(fsp)) else {
        return cx.bad_temporal("datetime", &value, column, zero);
    };
    if is_zero_datetime(&dt) {
        if cx.no_zero_date {
            return cx.bad_temporal("datetime", &value, column, zero);
        }
        return Ok(Value::DateTime(DateTime::ZERO));
    }
    if timestamp {
        let in_range = dt.to_unix_seconds().is_some_and(|s| (1..=TIMESTAMP_MAX_SECONDS).contains(&s));
        if !in_range {
            return cx.bad_temporal("datetime", &value, column, zero);
        }
    }
    Ok(Value::DateTime(dt))
}

fn coerce_time(value: Value, fsp: u8, column: &ColumnDef, cx: &mut Coercion) -> Result<Value> {
    let zero = Value::Time(Time::ZERO);
    let Some(time) = value.to_time() else {
        return cx.bad_temporal("time", &value, column, zero);
    };
    let unit = 10i64.pow(6 - fsp.min(6) as u32);
    let micros = time.to_micros();
    let rounded = (micros.abs() + unit / 2) / unit * unit * micros.signum();
    match Time::from_micros(rounded) {
        Some(t) => Ok(Value::Time(t)),
        None => cx.bad_temporal("time", &value, column, zero),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::LobSize;

    fn col(ty: ColumnType) -> ColumnDef {
        let mut c = ColumnDef::new("c", ty);
        c.nullable = false;
        c
    }

    fn strict(value: Value, ty: ColumnType) -> Result<Value> {
        coerce(value, &col(ty), &mut Coercion::strict())
    }

    fn show(r: Result<Value>) -> String {
        match r {
            Ok(v) => format!("{v:?}"),
            Err(e) => format!("{} {}", e.code(), e.message),
        }
    }

    fn int() -> ColumnType {
        ColumnType::Int { width: IntWidth::Int, unsigned: false, display: None }
    }

    fn tiny_unsigned() -> ColumnType {
        ColumnType::Int { width: IntWidth::Tiny, unsigned: true, display: None }
    }

    #[test]
    fn integers() {
        assert_eq!(show(strict(Value::text("42"), int())), "Int(42)");
        assert_eq!(show(strict(Value::text(" -7 "), int())), "Int(-7)");
        assert_eq!(show(strict(Value::text("2.5"), int())), "Int(3)", "strings round half away from zero");
        assert_eq!(show(strict(Value::text("1e3"), int())), "Int(1000)");
        assert_eq!(show(strict(Value::Double(2.5), int())), "Int(2)", "doubles round half to even");
        assert_eq!(show(strict(Value::Double(3.5), int())), "Int(4)");
        assert_eq!(show(strict(Value::Decimal(Decimal::parse("-2.5").unwrap()), int())), "Int(-3)");
        assert_eq!(show(strict(Value::UInt(255), tiny_unsigned())), "UInt(255)");
        assert_eq!(show(strict(Value::Int(256), tiny_unsigned())), "1264 Out of range value for column 'c' at row 1");
        assert_eq!(show(strict(Value::Int(-1), tiny_unsigned())), "1264 Out of range value for column 'c' at row 1");
        assert_eq!(show(strict(Value::text("1e40"), int())), "1264 Out of range value for column 'c' at row 1");
        assert_eq!(
            show(strict(Value::text("abc"), int())),
            "1366 Incorrect integer value: 'abc' for column 'c' at row 1"
        );
        assert_eq!(show(strict(Value::text(""), int())), "1366 Incorrect integer value: '' for column 'c' at row 1");
        assert_eq!(
            show(strict(Value::text("12abc"), int())),
            "1366 Incorrect integer value: '12abc' for column 'c' at row 1"
        );
        assert_eq!(show(strict(Value::Null, int())), "1048 Column 'c' cannot be null");
        let date = Value::Date(crate::temporal::parse_date("2024-01-31").unwrap());
        assert_eq!(show(strict(date, ColumnType::bigint())), "Int(20240131)");
    }

    #[test]
    fn lenient_mode_clips_and_warns() {
        let mut cx = Coercion::lenient();
        let c = col(tiny_unsigned());
        assert_eq!(coerce(Value::Int(300), &c, &mut cx).unwrap(), Value::UInt(255));
        assert_eq!(coerce(Value::Int(-3), &c, &mut cx).unwrap(), Value::UInt(0));
        assert_eq!(coerce(Value::text("12abc"), &c, &mut cx).unwrap(), Value::UInt(12));
        assert_eq!(coerce(Value::text("abc"), &c, &mut cx).unwrap(), Value::UInt(0));
        let codes: Vec<u16> = cx.warnings.iter().map(|w| w.code).collect();
        assert_eq!(codes, vec![1264, 1264, 1265, 1366]);
        let v = coerce(Value::text("abcdef"), &col(ColumnType::VarChar { length: 3, binary: false }), &mut cx).unwrap();
        assert_eq!(v, Value::text("abc"));
    }

    #[test]
    fn years() {
        let y = || ColumnType::Year;
        assert_eq!(show(strict(Value::Int(5), y())), "Int(2005)");
        assert_eq!(show(strict(Value::Int(75), y())), "Int(1975)");
        assert_eq!(show(strict(Value::Int(0), y())), "Int(0)");
        assert_eq!(show(strict(Value::text("0"), y())), "Int(2000)");
        assert_eq!(show(strict(Value::text("2024"), y())), "Int(2024)");
        assert_eq!(show(strict(Value::Int(1900), y())), "1264 Out of range value for column 'c' at row 1");
    }

    #[test]
    fn decimals() {
        let d = || ColumnType::Decimal { precision: 5, scale: 2 };
        assert_eq!(show(strict(Value::text("1.005"), d())), show(Ok(Value::Decimal(Decimal::parse("1.01").unwrap()))));
        assert_eq!(strict(Value::Int(999), d()).unwrap().to_text(), "999.00");
        assert_eq!(strict(Value::Double(-0.125), d()).unwrap().to_text(), "-0.13");
        assert_eq!(show(strict(Value::Int(1000), d())), "1264 Out of range value for column 'c' at row 1");
        assert_eq!(show(strict(Value::text("x"), d())), "1366 Incorrect decimal value: 'x' for column 'c' at row 1");
        let mut cx = Coercion::lenient();
        assert_eq!(coerce(Value::Int(-100_000), &col(d()), &mut cx).unwrap().to_text(), "-999.99");
    }

    #[test]
    fn doubles() {
        assert_eq!(show(strict(Value::text("1.5"), ColumnType::Double)), "Double(1.5)");
        assert_eq!(
            show(strict(Value::Double(1e300), ColumnType::Float)),
            "1264 Out of range value for column 'c' at row 1"
        );
        assert_eq!(strict(Value::Double(0.1), ColumnType::Float).unwrap(), Value::Double(0.1f32 as f64));
        assert_eq!(
            show(strict(Value::text("x1"), ColumnType::Double)),
            "1366 Incorrect double value: 'x1' for column 'c' at row 1"
        );
    }

    #[test]
    fn strings() {
        let v = |n| ColumnType::VarChar { length: n, binary: false };
        assert_eq!(strict(Value::text("héllo"), v(5)).unwrap(), Value::text("héllo"), "length counts characters");
        assert_eq!(show(strict(Value::text("héllo!"), v(5))), "1406 Data too long for column 'c' at row 1");
        assert_eq!(strict(Value::text("abc   "), v(4)).unwrap(), Value::text("abc "), "trailing spaces go silently");
        assert_eq!(strict(Value::Int(42), v(5)).unwrap(), Value::text("42"));
        assert_eq!(strict(Value::Double(0.5), v(5)).unwrap(), Value::text("0.5"));
        assert_eq!(
            show(strict(Value::Bytes(vec![0xff, 0xfe]), v(5))),
            "1366 Incorrect string value: '\\xFF\\xFE' for column 'c' at row 1"
        );
        let binary = ColumnType::Char { length: 4, binary: true };
        assert_eq!(strict(Value::text("ab"), binary.clone()).unwrap(), Value::Bytes(b"ab\0\0".to_vec()));
        assert_eq!(show(strict(Value::text("abcde"), binary)), "1406 Data too long for column 'c' at row 1");
        let tiny = ColumnType::Lob { size: LobSize::Tiny, binary: false };
        assert_eq!(show(strict(Value::text("x".repeat(256)), tiny)), "1406 Data too long for column 'c' at row 1");
    }

    #[test]
    fn enums() {
        let e = || ColumnType::Enum { values: vec!["active".into(), "disabled".into()] };
        assert_eq!(strict(Value::text("ACTIVE"), e()).unwrap(), Value::text("active"));
        assert_eq!(strict(Value::Int(2), e()).unwrap(), Value::text("disabled"));
        assert_eq!(show(strict(Value::text("gone"), e())), "1265 Data truncated for column 'c' at row 1");
        assert_eq!(show(strict(Value::Int(3), e())), "1265 Data truncated for column 'c' at row 1");
    }

    #[test]
    fn sets() {
        let s = || ColumnType::Set { values: vec!["imap".into(), "pop".into(), "smtp".into()] };
        assert_eq!(strict(Value::text("SMTP,imap,smtp"), s()).unwrap(), Value::text("imap,smtp"));
        assert_eq!(strict(Value::text(""), s()).unwrap(), Value::text(""));
        assert_eq!(strict(Value::Int(6), s()).unwrap(), Value::text("pop,smtp"), "a number is the bit mask");
        assert_eq!(show(strict(Value::text("imap,web"), s())), "1265 Data truncated for column 'c' at row 1");
        assert_eq!(show(strict(Value::Int(8), s())), "1265 Data truncated for column 'c' at row 1");
        let mut cx = Coercion::lenient();
        assert_eq!(coerce(Value::text("imap,web"), &col(s()), &mut cx).unwrap(), Value::text("imap"));
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(strict(Value::text("2024-02-29"), ColumnType::Date).unwrap().to_text(), "2024-02-29");
        assert_eq!(strict(Value::Int(20240131), ColumnType::Date).unwrap().to_text(), "2024-01-31");
        assert_eq!(strict(Value::text("2024-02-29 13:00:00"), ColumnType::Date).unwrap().to_text(), "2024-02-29");
        assert_eq!(
            show(strict(Value::text("2023-02-29"), ColumnType::Date)),
            "1292 Incorrect date value: '2023-02-29' for column 'c' at row 1"
        );
        assert_eq!(
            show(strict(Value::text("0000-00-00"), ColumnType::Date)),
            "1292 Incorrect date value: '0000-00-00' for column 'c' at row 1"
        );
        let mut cx = Coercion::lenient();
        assert_eq!(
            coerce(Value::text("0000-00-00"), &col(ColumnType::Date), &mut cx).unwrap(),
            Value::Date(Date::ZERO)
        );
        assert!(cx.warnings.is_empty(), "zero dates are fine without NO_ZERO_DATE");
        let dt = strict(Value::text("2024-12-31 23:59:59.6"), ColumnType::DateTime { fsp: 0 }).unwrap();
        assert_eq!(dt.to_text(), "2025-01-01 00:00:00", "fractions round to the column's precision");
        assert_eq!(
            show(strict(Value::text("1969-12-31 23:59:59"), ColumnType::Timestamp { fsp: 0 })),
            "1292 Incorrect datetime value: '1969-12-31 23:59:59' for column 'c' at row 1"
        );
        assert!(strict(Value::text("2038-01-19 03:14:07"), ColumnType::Timestamp { fsp: 0 }).is_ok());
        assert!(strict(Value::text("2038-01-19 03:14:08"), ColumnType::Timestamp { fsp: 0 }).is_err());
        assert_eq!(strict(Value::text("12:34:56.7"), ColumnType::Time { fsp: 0 }).unwrap().to_text(), "12:34:57");
        assert_eq!(strict(Value::Int(123456), ColumnType::Time { fsp: 0 }).unwrap().to_text(), "12:34:56");
        assert!(strict(Value::text("900:00:00"), ColumnType::Time { fsp: 0 }).is_err());
    }
}
