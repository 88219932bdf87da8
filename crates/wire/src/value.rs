//! Values, and their two wire forms.
//!
//! The text protocol (COM_QUERY results) sends every value as a length-encoded string, NULL as
//! the byte 0xFB. The binary protocol (COM_STMT_EXECUTE results and parameters) sends each value
//! in a layout fixed by its column or parameter type: integers as 1/2/4/8 little-endian bytes,
//! FLOAT/DOUBLE as IEEE floats, dates, datetimes and times as a length byte plus only the fields
//! that are not zero, everything else as a length-encoded string; NULLs go in a bitmap.
//!
//! The layout always follows the column's declared type, never the Rust variant of the value:
//! a client decodes by the type it was told. A value whose variant does not fit its column (a
//! string in a DATETIME column, 300 in a TINYINT column) is converted when that is exact and
//! refused otherwise; the refusal ends the result with an error instead of sending bytes the
//! client would misread. Temporal text uses the column's `decimals` as the fractional-second
//! precision, as MySQL does.

use std::io::Write as _;

use crate::codec::{DecodeResult, Malformed, Reader, put_lenenc_bytes, put_lenenc_int};
use crate::constants::{BinaryClass, ColumnType, column_flag};
use crate::response::Column;

/// One value of a result row or of a bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    /// Character and binary strings, DECIMAL values as their exact decimal text, JSON text,
    /// ENUM/SET names, BIT values as big-endian bytes.
    Bytes(Vec<u8>),
    Date {
        year: u16,
        month: u8,
        day: u8,
    },
    DateTime {
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        micros: u32,
    },
    /// A TIME value: `hours` is below 24 and `days` carries the rest, as on the wire.
    Time {
        negative: bool,
        days: u32,
        hours: u8,
        minutes: u8,
        seconds: u8,
        micros: u32,
    },
}

impl Value {
    /// The bytes of a `Bytes` value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "integer",
            Value::UInt(_) => "unsigned integer",
            Value::Float(_) => "float",
            Value::Double(_) => "double",
            Value::Bytes(_) => "string",
            Value::Date { .. } => "date",
            Value::DateTime { .. } => "datetime",
            Value::Time { .. } => "time",
        }
    }
}

macro_rules! value_from_int {
    ($variant:ident, $wide:ty, $($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant(<$wide>::from(v))
            }
        }
    )*};
}
value_from_int!(Int, i64, i8, i16, i32, i64);
value_from_int!(UInt, u64, u8, u16, u32, u64);

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Float(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Double(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Bytes(v.as_bytes().to_vec())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Bytes(v.into_bytes())
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.to_vec())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A parameter bound to COM_STMT_EXECUTE: the type the client declared, its UNSIGNED flag and
/// the decoded value (`Null` when its NULL bit was set).
///
/// Integers arrive as `Int` or `UInt` by the unsigned flag, FLOAT as `Float`, DOUBLE as
/// `Double`, DATE as `Date`, DATETIME and TIMESTAMP as `DateTime`, TIME as `Time`; every other
/// type (strings, DECIMAL text, blobs, JSON, and type codes MySQL does not define) as `Bytes`,
/// as does a parameter whose value came through COM_STMT_SEND_LONG_DATA. The values are not
/// range-checked: a DATETIME with month 13 arrives as sent, and the SQL layer judges it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamValue {
    pub column_type: ColumnType,
    pub unsigned: bool,
    pub value: Value,
}

/// MySQL's marker for "decimals not fixed" in a column definition.
const NOT_FIXED_DECIMALS: u8 = 31;

/// Appends one text-protocol cell.
pub(crate) fn write_text_value(out: &mut Vec<u8>, column: &Column, value: &Value) {
    match value {
        Value::Null => out.push(0xFB),
        Value::Bytes(bytes) => put_lenenc_bytes(out, bytes),
        Value::Int(_) | Value::UInt(_) if column.column_type == ColumnType::BIT => {
            put_lenenc_bytes(out, &bit_bytes(column, value));
        }
        _ => put_lenenc_with(out, |out| write_text_body(out, column, value)),
    }
}

/// Writes a length-encoded string produced by `f`, assuming it is short (it is for numbers and
/// temporals) and moving it if it is not.
fn put_lenenc_with(out: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.push(0);
    f(out);
    let len = out.len() - at - 1;
    if len < 0xFB {
        out[at] = len as u8;
    } else {
        let mut prefix = Vec::with_capacity(9);
        put_lenenc_int(&mut prefix, len as u64);
        out.splice(at..at + 1, prefix);
    }
}

/// The text form of a non-NULL, non-string value.
fn write_text_body(out: &mut Vec<u8>, column: &Column, value: &Value) {
    // `write!` into a Vec<u8> cannot fail; the results are ignored for that reason.
    match *value {
        Value::Null => {}
        Value::Bytes(ref b) => out.extend_from_slice(b),
        Value::Int(v) => write_integer(out, column, v < 0, v.unsigned_abs()),
        Value::UInt(v) => write_integer(out, column, false, v),
        Value::Float(v) => {
            if let Some(decimals) = fixed_decimals(column) {
                let _ = write!(out, "{v:.decimals$}");
            } else {
                write_shortest(
                    out,
                    v.abs() as f64,
                    v.is_finite(),
                    |out| {
                        let _ = write!(out, "{v}");
                    },
                    |out| {
                        let _ = write!(out, "{v:e}");
                    },
                );
            }
        }
        Value::Double(v) => {
            if let Some(decimals) = fixed_decimals(column) {
                let _ = write!(out, "{v:.decimals$}");
            } else {
                write_shortest(
                    out,
                    v.abs(),
                    v.is_finite(),
                    |out| {
                        let _ = write!(out, "{v}");
                    },
                    |out| {
                        let _ = write!(out, "{v:e}");
                    },
                );
            }
        }
        Value::Date { year, month, day } => {
            let _ = write!(out, "{year:04}-{month:02}-{day:02}");
            if is_datetime_column(column) {
                out.extend_from_slice(b" 00:00:00");
                write_fraction(out, 0, text_fsp(column, 0));
            }
        }
        Value::DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
        } => {
            let _ = write!(out, "{year:04}-{month:02}-{day:02}");
            if !is_date_column(column) {
                let _ = write!(out, " {hour:02}:{minute:02}:{second:02}");
                write_fraction(out, micros, text_fsp(column, micros));
            }
        }
        Value::Time {
            negative,
            days,
            hours,
            minutes,
            seconds,
            micros,
        } => {
            let total_hours = u64::from(days) * 24 + u64::from(hours);
            let sign = if negative { "-" } else { "" };
            let _ = write!(out, "{sign}{total_hours:02}:{minutes:02}:{seconds:02}");
            write_fraction(out, micros, text_fsp(column, micros));
        }
    }
}

fn write_integer(out: &mut Vec<u8>, column: &Column, negative: bool, magnitude: u64) {
    if negative {
        out.push(b'-');
    }
    let start = out.len();
    let _ = write!(out, "{magnitude}");
    // ZEROFILL columns print their declared width with leading zeros (YEAR is one).
    let width = column.column_length as usize;
    if column.flags & column_flag::ZEROFILL != 0 && !negative && width <= 64 {
        let digits = out.len() - start;
        if digits < width {
            out.splice(start..start, std::iter::repeat_n(b'0', width - digits));
        }
    }
}

/// Floats print like MySQL's `%g`-style output: plain digits for ordinary magnitudes, an
/// exponent for very large or very small ones, the shortest digits that read back exactly.
fn write_shortest(
    out: &mut Vec<u8>,
    magnitude: f64,
    finite: bool,
    plain: impl FnOnce(&mut Vec<u8>),
    exponent: impl FnOnce(&mut Vec<u8>),
) {
    if !finite || magnitude == 0.0 || (1e-5..1e15).contains(&magnitude) {
        plain(out);
    } else {
        exponent(out);
    }
}

/// The fixed number of decimals a FLOAT, DOUBLE or DECIMAL column prints, if it has one.
fn fixed_decimals(column: &Column) -> Option<usize> {
    let numeric = matches!(
        column.column_type,
        ColumnType::FLOAT | ColumnType::DOUBLE | ColumnType::DECIMAL | ColumnType::NEWDECIMAL
    );
    (numeric && column.decimals < NOT_FIXED_DECIMALS).then_some(usize::from(column.decimals))
}

fn is_date_column(column: &Column) -> bool {
    matches!(column.column_type, ColumnType::DATE | ColumnType::NEWDATE)
}

fn is_datetime_column(column: &Column) -> bool {
    matches!(
        column.column_type,
        ColumnType::DATETIME
            | ColumnType::TIMESTAMP
            | ColumnType::DATETIME2
            | ColumnType::TIMESTAMP2
    )
}

/// Fractional-second digits for text output: the column's precision when it declares one
/// (0 to 6), otherwise 6 digits only when there is a fraction.
fn text_fsp(column: &Column, micros: u32) -> usize {
    if column.decimals <= 6 {
        usize::from(column.decimals)
    } else if micros != 0 {
        6
    } else {
        0
    }
}

fn write_fraction(out: &mut Vec<u8>, micros: u32, fsp: usize) {
    if fsp > 0 {
        let mut digits = [0u8; 6];
        let mut rest = micros.min(999_999);
        for d in digits.iter_mut().rev() {
            *d = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        out.push(b'.');
        out.extend_from_slice(&digits[..fsp]);
    }
}

/// Microseconds cut to the column's precision, so that text and binary agree.
fn truncate_micros(column: &Column, micros: u32) -> u32 {
    let micros = micros.min(999_999);
    if column.decimals <= 6 {
        let unit = 10u32.pow(6 - u32::from(column.decimals));
        micros - micros % unit
    } else {
        micros
    }
}

/// A BIT(n) value given as an integer, as the (n+7)/8 big-endian bytes MySQL sends.
fn bit_bytes(column: &Column, value: &Value) -> Vec<u8> {
    let raw = match *value {
        Value::Int(v) => v as u64,
        Value::UInt(v) => v,
        _ => 0,
    };
    let width = (column.column_length as usize).div_ceil(8).clamp(1, 8);
    raw.to_be_bytes()[8 - width..].to_vec()
}

/// Appends the binary-protocol form of a non-NULL value, or says why it cannot be sent in
/// this column. On error, `out` may hold a partial value; the caller discards the packet.
pub(crate) fn write_binary_value(
    out: &mut Vec<u8>,
    column: &Column,
    value: &Value,
) -> Result<(), String> {
    let mismatch = || {
        format!(
            "column `{}`: a {} value cannot be sent as {}",
            column.name,
            value.kind(),
            column.column_type.name()
        )
    };
    match column.column_type.binary_class() {
        BinaryClass::Integer(width) => {
            let v = integer_of(value).ok_or_else(mismatch)?;
            let unsigned = column.flags & column_flag::UNSIGNED != 0;
            let bits = 8 * width as u32;
            let (min, max) = if unsigned {
                (0i128, (1i128 << bits) - 1)
            } else {
                (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
            };
            if v < min || v > max {
                return Err(format!(
                    "column `{}`: {v} is out of range for {}{}",
                    column.name,
                    column.column_type.name(),
                    if unsigned { " UNSIGNED" } else { "" }
                ));
            }
            out.extend_from_slice(&v.to_le_bytes()[..width]);
        }
        BinaryClass::Float => {
            let v = float_of(value).ok_or_else(mismatch)?;
            out.extend_from_slice(&(v as f32).to_le_bytes());
        }
        BinaryClass::Double => {
            let v = match *value {
                // Widening an f32 directly keeps its exact value.
                Value::Float(f) => f64::from(f),
                _ => float_of(value).ok_or_else(mismatch)?,
            };
            out.extend_from_slice(&v.to_le_bytes());
        }
        BinaryClass::Date => {
            let (year, month, day) = match *value {
                Value::Date { year, month, day }
                | Value::DateTime {
                    year, month, day, ..
                } => (year, month, day),
                _ => return Err(mismatch()),
            };
            put_binary_datetime(out, year, month, day, 0, 0, 0, 0);
        }
        BinaryClass::DateTime => match *value {
            Value::Date { year, month, day } => {
                put_binary_datetime(out, year, month, day, 0, 0, 0, 0)
            }
            Value::DateTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
                micros,
            } => {
                let micros = truncate_micros(column, micros);
                put_binary_datetime(out, year, month, day, hour, minute, second, micros);
            }
            _ => return Err(mismatch()),
        },
        BinaryClass::Time => match *value {
            Value::Time {
                negative,
                days,
                hours,
                minutes,
                seconds,
                micros,
            } => {
                let micros = truncate_micros(column, micros);
                if days == 0 && hours == 0 && minutes == 0 && seconds == 0 && micros == 0 {
                    out.push(0);
                } else {
                    out.push(if micros == 0 { 8 } else { 12 });
                    out.push(u8::from(negative));
                    out.extend_from_slice(&days.to_le_bytes());
                    out.extend_from_slice(&[hours, minutes, seconds]);
                    if micros != 0 {
                        out.extend_from_slice(&micros.to_le_bytes());
                    }
                }
            }
            _ => return Err(mismatch()),
        },
        BinaryClass::Null => return Err(mismatch()),
        BinaryClass::LengthEncoded => write_text_value(out, column, value),
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn put_binary_datetime(
    out: &mut Vec<u8>,
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    micros: u32,
) {
    // The shortest form that holds every non-zero field: 0, 4, 7 or 11 bytes.
    let len: u8 = if micros != 0 {
        11
    } else if hour != 0 || minute != 0 || second != 0 {
        7
    } else if year != 0 || month != 0 || day != 0 {
        4
    } else {
        0
    };
    out.push(len);
    if len >= 4 {
        out.extend_from_slice(&year.to_le_bytes());
        out.extend_from_slice(&[month, day]);
    }
    if len >= 7 {
        out.extend_from_slice(&[hour, minute, second]);
    }
    if len == 11 {
        out.extend_from_slice(&micros.to_le_bytes());
    }
}

/// The exact integer a value stands for, if it stands for one.
fn integer_of(value: &Value) -> Option<i128> {
    match *value {
        Value::Int(v) => Some(i128::from(v)),
        Value::UInt(v) => Some(i128::from(v)),
        Value::Float(v) => integral_float(f64::from(v)),
        Value::Double(v) => integral_float(v),
        Value::Bytes(ref b) => std::str::from_utf8(b).ok()?.trim().parse::<i128>().ok(),
        _ => None,
    }
}

/// Floats go into integer columns rounded, as MySQL stores them; infinities and NaN do not.
fn integral_float(v: f64) -> Option<i128> {
    (v.is_finite() && v.abs() < 1e38).then(|| v.round() as i128)
}

fn float_of(value: &Value) -> Option<f64> {
    match *value {
        Value::Int(v) => Some(v as f64),
        Value::UInt(v) => Some(v as f64),
        Value::Float(v) => Some(f64::from(v)),
        Value::Double(v) => Some(v),
        Value::Bytes(ref b) => std::str::from_utf8(b).ok()?.trim().parse::<f64>().ok(),
        _ => None,
    }
}

/// Reads one non-NULL binary-protocol parameter value of the given type.
pub(crate) fn read_binary_param(
    reader: &mut Reader<'_>,
    column_type: ColumnType,
    unsigned: bool,
) -> DecodeResult<Value> {
    const WHAT: &str = "parameter value";
    Ok(match column_type.binary_class() {
        BinaryClass::Integer(width) => {
            let bytes = reader.bytes(width, WHAT)?;
            let mut le = [0u8; 8];
            le[..width].copy_from_slice(bytes);
            if unsigned {
                Value::UInt(u64::from_le_bytes(le))
            } else {
                // Sign-extend from the top bit of the received width.
                let shift = 64 - 8 * width as u32;
                Value::Int((i64::from_le_bytes(le) << shift) >> shift)
            }
        }
        BinaryClass::Float => Value::Float(reader.f32(WHAT)?),
        BinaryClass::Double => Value::Double(reader.f64(WHAT)?),
        BinaryClass::Date | BinaryClass::DateTime => {
            let len = reader.u8(WHAT)?;
            if !matches!(len, 0 | 4 | 7 | 11) {
                return Err(Malformed("datetime parameter length"));
            }
            let mut fields = Reader::new(reader.bytes(usize::from(len), WHAT)?);
            let (mut year, mut month, mut day) = (0, 0, 0);
            let (mut hour, mut minute, mut second, mut micros) = (0, 0, 0, 0);
            if len >= 4 {
                year = fields.u16(WHAT)?;
                month = fields.u8(WHAT)?;
                day = fields.u8(WHAT)?;
            }
            if len >= 7 {
                hour = fields.u8(WHAT)?;
                minute = fields.u8(WHAT)?;
                second = fields.u8(WHAT)?;
            }
            if len == 11 {
                micros = fields.u32(WHAT)?;
            }
            if column_type.binary_class() == BinaryClass::Date {
                Value::Date { year, month, day }
            } else {
                Value::DateTime {
                    year,
                    month,
                    day,
                    hour,
                    minute,
                    second,
                    micros,
                }
            }
        }
        BinaryClass::Time => {
            let len = reader.u8(WHAT)?;
            if !matches!(len, 0 | 8 | 12) {
                return Err(Malformed("time parameter length"));
            }
            let mut fields = Reader::new(reader.bytes(usize::from(len), WHAT)?);
            if len == 0 {
                Value::Time {
                    negative: false,
                    days: 0,
                    hours: 0,
                    minutes: 0,
                    seconds: 0,
                    micros: 0,
                }
            } else {
                let negative = fields.u8(WHAT)? != 0;
                let days = fields.u32(WHAT)?;
                let hours = fields.u8(WHAT)?;
                let minutes = fields.u8(WHAT)?;
                let seconds = fields.u8(WHAT)?;
                let micros = if len == 12 { fields.u32(WHAT)? } else { 0 };
                Value::Time {
                    negative,
                    days,
                    hours,
                    minutes,
                    seconds,
                    micros,
                }
            }
        }
        BinaryClass::Null => Value::Null,
        BinaryClass::LengthEncoded => Value::Bytes(reader.lenenc_bytes(WHAT)?.to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constants::charset;

    fn col(column_type: ColumnType) -> Column {
        Column::new("c", column_type)
    }

    fn text(column: &Column, value: &Value) -> String {
        let mut out = Vec::new();
        write_text_value(&mut out, column, value);
        let mut reader = Reader::new(&out);
        let body = reader.lenenc_bytes("cell").unwrap();
        assert!(reader.is_empty());
        String::from_utf8(body.to_vec()).unwrap()
    }

    fn binary(column: &Column, value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        write_binary_value(&mut out, column, value).unwrap();
        out
    }

    #[test]
    fn text_numbers() {
        let c = col(ColumnType::LONGLONG);
        assert_eq!(text(&c, &Value::Int(i64::MIN)), "-9223372036854775808");
        assert_eq!(text(&c, &Value::UInt(u64::MAX)), "18446744073709551615");
        let d = col(ColumnType::DOUBLE);
        assert_eq!(text(&d, &Value::Double(1.5)), "1.5");
        assert_eq!(text(&d, &Value::Double(0.1)), "0.1");
        assert_eq!(text(&d, &Value::Double(1e20)), "1e20");
        assert_eq!(text(&d, &Value::Double(-2.5e-7)), "-2.5e-7");
        assert_eq!(
            text(&d, &Value::Double(123456789012345.0)),
            "123456789012345"
        );
        assert_eq!(text(&col(ColumnType::FLOAT), &Value::Float(0.1)), "0.1");
        let fixed = Column::new("f", ColumnType::DOUBLE).decimals(2);
        assert_eq!(text(&fixed, &Value::Double(1.5)), "1.50");
        // A VARCHAR column's decimals (0) must not round a double.
        assert_eq!(
            text(&col(ColumnType::VAR_STRING), &Value::Double(1.5)),
            "1.5"
        );
        let zerofill = Column::new("z", ColumnType::LONG)
            .flags(column_flag::ZEROFILL)
            .length(5);
        assert_eq!(text(&zerofill, &Value::Int(42)), "00042");
    }

    #[test]
    fn text_temporals_follow_column_precision() {
        let dt = Value::DateTime {
            year: 2024,
            month: 2,
            day: 29,
            hour: 23,
            minute: 59,
            second: 58,
            micros: 123_456,
        };
        assert_eq!(text(&col(ColumnType::DATETIME), &dt), "2024-02-29 23:59:58");
        let fsp3 = Column::new("t", ColumnType::DATETIME).decimals(3);
        assert_eq!(text(&fsp3, &dt), "2024-02-29 23:59:58.123");
        assert_eq!(text(&col(ColumnType::DATE), &dt), "2024-02-29");
        let unfixed = Column::new("s", ColumnType::VAR_STRING).decimals(31);
        assert_eq!(text(&unfixed, &dt), "2024-02-29 23:59:58.123456");
        let date = Value::Date {
            year: 1,
            month: 1,
            day: 1,
        };
        assert_eq!(text(&col(ColumnType::DATE), &date), "0001-01-01");
        assert_eq!(
            text(&Column::new("d", ColumnType::DATETIME).decimals(2), &date),
            "0001-01-01 00:00:00.00"
        );
        let time = Value::Time {
            negative: true,
            days: 34,
            hours: 22,
            minutes: 59,
            seconds: 59,
            micros: 500_000,
        };
        assert_eq!(text(&col(ColumnType::TIME), &time), "-838:59:59");
        assert_eq!(
            text(&Column::new("t", ColumnType::TIME).decimals(1), &time),
            "-838:59:59.5"
        );
    }

    #[test]
    fn text_null_and_long_strings() {
        let mut out = Vec::new();
        write_text_value(&mut out, &col(ColumnType::VAR_STRING), &Value::Null);
        assert_eq!(out, [0xFB]);
        let long = "x".repeat(300);
        assert_eq!(
            text(&col(ColumnType::VAR_STRING), &Value::from(long.as_str())),
            long
        );
        // A fixed-decimal double longer than 250 characters still gets a correct prefix.
        let wide = Column::new("w", ColumnType::DOUBLE).decimals(30);
        assert_eq!(text(&wide, &Value::Double(1e300)).len(), 301 + 1 + 30);
    }

    #[test]
    fn binary_integers_follow_the_column_width_and_sign() {
        assert_eq!(binary(&col(ColumnType::TINY), &Value::Int(-128)), [0x80]);
        let tiny_unsigned = Column::new("u", ColumnType::TINY).flags(column_flag::UNSIGNED);
        assert_eq!(binary(&tiny_unsigned, &Value::UInt(255)), [0xFF]);
        assert!(write_binary_value(&mut Vec::new(), &tiny_unsigned, &Value::Int(-1)).is_err());
        assert!(
            write_binary_value(&mut Vec::new(), &col(ColumnType::TINY), &Value::Int(128)).is_err()
        );
        assert_eq!(
            binary(&col(ColumnType::SHORT), &Value::Int(-2)),
            [0xFE, 0xFF]
        );
        assert_eq!(
            binary(&col(ColumnType::LONG), &Value::from("7")),
            [7, 0, 0, 0]
        );
        let big_unsigned = Column::new("b", ColumnType::LONGLONG).flags(column_flag::UNSIGNED);
        assert_eq!(binary(&big_unsigned, &Value::UInt(u64::MAX)), [0xFF; 8]);
        assert!(
            write_binary_value(
                &mut Vec::new(),
                &col(ColumnType::LONGLONG),
                &Value::UInt(u64::MAX)
            )
            .is_err()
        );
        assert_eq!(
            binary(
                &col(ColumnType::LONG),
                &Value::Double(4294967295.0 / 2.0 - 0.5)
            ),
            2147483647i32.to_le_bytes()
        );
        assert!(
            write_binary_value(&mut Vec::new(), &col(ColumnType::LONG), &Value::from("abc"))
                .is_err()
        );
    }

    #[test]
    fn binary_temporals_use_the_shortest_length() {
        let dt = |hour, micros| Value::DateTime {
            year: 2024,
            month: 2,
            day: 29,
            hour,
            minute: 0,
            second: 0,
            micros,
        };
        let c = Column::new("t", ColumnType::DATETIME).decimals(6);
        assert_eq!(binary(&c, &dt(0, 0)), [4, 0xE8, 0x07, 2, 29]);
        assert_eq!(binary(&c, &dt(13, 0)), [7, 0xE8, 0x07, 2, 29, 13, 0, 0]);
        assert_eq!(
            binary(&c, &dt(13, 1)),
            [11, 0xE8, 0x07, 2, 29, 13, 0, 0, 1, 0, 0, 0]
        );
        // A DATETIME(0) column drops the fraction, as the text protocol does.
        assert_eq!(binary(&col(ColumnType::DATETIME), &dt(13, 1)).len(), 8);
        let zero = Value::DateTime {
            year: 0,
            month: 0,
            day: 0,
            hour: 0,
            minute: 0,
            second: 0,
            micros: 0,
        };
        assert_eq!(binary(&c, &zero), [0]);
        assert_eq!(
            binary(&col(ColumnType::DATE), &dt(13, 1)),
            [4, 0xE8, 0x07, 2, 29]
        );
        let time = Value::Time {
            negative: true,
            days: 1,
            hours: 2,
            minutes: 3,
            seconds: 4,
            micros: 0,
        };
        assert_eq!(
            binary(&col(ColumnType::TIME), &time),
            [8, 1, 1, 0, 0, 0, 2, 3, 4]
        );
        let with_micros = Value::Time {
            negative: false,
            days: 0,
            hours: 0,
            minutes: 0,
            seconds: 0,
            micros: 5,
        };
        assert_eq!(
            binary(
                &Column::new("t", ColumnType::TIME).decimals(6),
                &with_micros
            ),
            [12, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0]
        );
        assert!(
            write_binary_value(
                &mut Vec::new(),
                &col(ColumnType::DATETIME),
                &Value::from("2024-01-01")
            )
            .is_err()
        );
    }

    #[test]
    fn binary_strings_and_bits_are_length_encoded() {
        let blob = Column::new("b", ColumnType::BLOB).charset(charset::BINARY);
        assert_eq!(binary(&blob, &Value::Bytes(vec![0xFF])), [1, 0xFF]);
        assert_eq!(
            binary(&col(ColumnType::NEWDECIMAL), &Value::from("-1.50")),
            b"\x05-1.50"
        );
        assert_eq!(
            binary(&col(ColumnType::VAR_STRING), &Value::Int(-3)),
            b"\x02-3"
        );
        let bit = Column::new("b", ColumnType::BIT).length(12);
        assert_eq!(binary(&bit, &Value::UInt(0x0ABC)), [2, 0x0A, 0xBC]);
        let mut cell = Vec::new();
        write_text_value(&mut cell, &bit, &Value::UInt(0x0ABC));
        assert_eq!(cell, [2, 0x0A, 0xBC]);
    }

    #[test]
    fn params_decode_every_class() {
        fn read(bytes: &[u8], ty: ColumnType, unsigned: bool) -> Value {
            let mut r = Reader::new(bytes);
            let v = read_binary_param(&mut r, ty, unsigned).unwrap();
            assert!(r.is_empty(), "{ty:?} left bytes");
            v
        }
        assert_eq!(read(&[0xFF], ColumnType::TINY, false), Value::Int(-1));
        assert_eq!(read(&[0xFF], ColumnType::TINY, true), Value::UInt(255));
        assert_eq!(
            read(&[0x00, 0x80], ColumnType::SHORT, false),
            Value::Int(-32768)
        );
        assert_eq!(
            read(&[0xFF; 4], ColumnType::LONG, true),
            Value::UInt(u64::from(u32::MAX))
        );
        assert_eq!(
            read(&[0xFF; 8], ColumnType::LONGLONG, true),
            Value::UInt(u64::MAX)
        );
        assert_eq!(
            read(&i64::MIN.to_le_bytes(), ColumnType::LONGLONG, false),
            Value::Int(i64::MIN)
        );
        assert_eq!(
            read(&1.25f64.to_le_bytes(), ColumnType::DOUBLE, false),
            Value::Double(1.25)
        );
        assert_eq!(
            read(&1.25f32.to_le_bytes(), ColumnType::FLOAT, false),
            Value::Float(1.25)
        );
        assert_eq!(
            read(b"\x03abc", ColumnType::VAR_STRING, false),
            Value::from("abc")
        );
        assert_eq!(read(b"\x00", ColumnType::BLOB, false), Value::from(""));
        assert_eq!(
            read(b"\x01z", ColumnType(100), false),
            Value::from("z"),
            "unknown types read as strings"
        );
        assert_eq!(read(&[], ColumnType::NULL, false), Value::Null);
        assert_eq!(
            read(
                &[7, 0xE8, 0x07, 2, 29, 1, 2, 3],
                ColumnType::DATETIME,
                false
            ),
            Value::DateTime {
                year: 2024,
                month: 2,
                day: 29,
                hour: 1,
                minute: 2,
                second: 3,
                micros: 0
            }
        );
        assert_eq!(
            read(&[4, 0xE8, 0x07, 2, 29], ColumnType::DATE, false),
            Value::Date {
                year: 2024,
                month: 2,
                day: 29
            }
        );
        assert_eq!(
            read(
                &[12, 1, 2, 0, 0, 0, 3, 4, 5, 6, 0, 0, 0],
                ColumnType::TIME,
                false
            ),
            Value::Time {
                negative: true,
                days: 2,
                hours: 3,
                minutes: 4,
                seconds: 5,
                micros: 6
            }
        );
        for (bytes, ty) in [
            (&[5u8, 0, 0, 0, 0, 0][..], ColumnType::DATETIME),
            (&[7, 0, 0], ColumnType::DATETIME),
            (&[9, 0, 0, 0, 0, 0, 0, 0, 0, 0], ColumnType::TIME),
            (&[1, 2, 3], ColumnType::LONG),
            (&[5, b'a'], ColumnType::STRING),
        ] {
            assert!(
                read_binary_param(&mut Reader::new(bytes), ty, false).is_err(),
                "{ty:?} {bytes:?}"
            );
        }
    }

    #[test]
    fn random_params_and_mismatched_values_never_panic() {
        use rand::rngs::StdRng;
        use rand::{Rng, RngCore, SeedableRng};
        let mut rng = StdRng::seed_from_u64(3);
        let values = [
            Value::Null,
            Value::Int(i64::MIN),
            Value::UInt(u64::MAX),
            Value::Float(f32::NAN),
            Value::Double(f64::INFINITY),
            Value::Double(-1e300),
            Value::from("not a number"),
            Value::from("12"),
            Value::Date {
                year: 9999,
                month: 255,
                day: 255,
            },
            Value::DateTime {
                year: 0,
                month: 0,
                day: 0,
                hour: 255,
                minute: 255,
                second: 255,
                micros: u32::MAX,
            },
            Value::Time {
                negative: true,
                days: u32::MAX,
                hours: 255,
                minutes: 255,
                seconds: 255,
                micros: u32::MAX,
            },
        ];
        for _ in 0..20_000 {
            let mut bytes = vec![0u8; rng.random_range(0..24)];
            rng.fill_bytes(&mut bytes);
            let ty = ColumnType(rng.random());
            let _ = read_binary_param(&mut Reader::new(&bytes), ty, rng.random());
            let column = Column::new("c", ty)
                .flags(rng.random())
                .decimals(rng.random())
                .length(rng.random());
            let value = &values[rng.random_range(0..values.len())];
            let mut out = Vec::new();
            write_text_value(&mut out, &column, value);
            let _ = write_binary_value(&mut out, &column, value);
        }
    }

    #[test]
    fn binary_rows_round_trip_through_an_independent_decoder() {
        use mysql_common::constants::{ColumnFlags, ColumnType as OracleType};
        use mysql_common::io::ParseBuf;
        use mysql_common::proto::MyDeserialize;
        use mysql_common::value::{BinValue, Value as OracleValue, ValueDeserializer};
        let cases: Vec<(Column, Value, OracleValue)> = vec![
            (
                col(ColumnType::LONGLONG),
                Value::Int(i64::MIN),
                OracleValue::Int(i64::MIN),
            ),
            (
                Column::new("u", ColumnType::LONGLONG).flags(column_flag::UNSIGNED),
                Value::UInt(u64::MAX),
                OracleValue::UInt(u64::MAX),
            ),
            (col(ColumnType::TINY), Value::Int(-5), OracleValue::Int(-5)),
            (
                col(ColumnType::DOUBLE),
                Value::Double(-0.25),
                OracleValue::Double(-0.25),
            ),
            (
                col(ColumnType::BLOB),
                Value::Bytes(vec![0, 0xFF]),
                OracleValue::Bytes(vec![0, 0xFF]),
            ),
            (
                Column::new("t", ColumnType::DATETIME).decimals(6),
                Value::DateTime {
                    year: 2000,
                    month: 1,
                    day: 2,
                    hour: 3,
                    minute: 4,
                    second: 5,
                    micros: 6,
                },
                OracleValue::Date(2000, 1, 2, 3, 4, 5, 6),
            ),
            (
                Column::new("t", ColumnType::TIME).decimals(6),
                Value::Time {
                    negative: true,
                    days: 3,
                    hours: 4,
                    minutes: 5,
                    seconds: 6,
                    micros: 7,
                },
                OracleValue::Time(true, 3, 4, 5, 6, 7),
            ),
        ];
        for (column, value, expected) in cases {
            let bytes = binary(&column, &value);
            let flags = ColumnFlags::from_bits_truncate(column.flags);
            let oracle_type = OracleType::try_from(column.column_type.0).unwrap();
            let mut buf = ParseBuf(&bytes);
            let decoded =
                ValueDeserializer::<BinValue>::deserialize((oracle_type, flags), &mut buf).unwrap();
            assert_eq!(decoded.0, expected, "{column:?}");
            assert!(buf.is_empty());
        }
    }
}
