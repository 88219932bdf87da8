//! Built-in functions, by name, with MySQL's argument and NULL rules.
//!
//! Each function is one [`Func`] variant so that expressions serialize compactly for data
//! nodes and dispatch without string lookups. Functions that need the session (time of the
//! statement, current database, random numbers, last insert id) are marked by
//! [`Func::needs_session`] and are evaluated on the SQL node only.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::collation::Collation;
use crate::decimal::Decimal;
use crate::error::{Error, ErrorKind, Result};
use crate::expr::{EvalContext, Expr};
use crate::temporal::{Date, DateTime, Time};
use crate::value::{Value, format_double};

macro_rules! functions {
    ($( $(#[$doc:meta])* $variant:ident = [$($name:literal),+] ($min:expr, $max:expr) ),* $(,)?) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum Func { $( $(#[$doc])* $variant ),* }

        impl Func {
            /// Looks a function up by its SQL name (any case).
            pub fn from_name(name: &str) -> Option<Func> {
                let upper = name.to_ascii_uppercase();
                match upper.as_str() {
                    $( $($name)|+ => Some(Func::$variant), )*
                    _ => None,
                }
            }

            /// The canonical SQL name.
            pub fn name(self) -> &'static str {
                match self { $( Func::$variant => [$($name),+][0] ),* }
            }

            /// Inclusive bounds on the argument count (`usize::MAX` = variadic).
            pub fn arity(self) -> (usize, usize) {
                match self { $( Func::$variant => ($min, $max) ),* }
            }
        }
    };
}

const MANY: usize = usize::MAX;

functions! {
    // Strings.
    Concat = ["CONCAT"] (1, MANY),
    ConcatWs = ["CONCAT_WS"] (2, MANY),
    Lower = ["LOWER", "LCASE"] (1, 1),
    Upper = ["UPPER", "UCASE"] (1, 1),
    Length = ["LENGTH", "OCTET_LENGTH"] (1, 1),
    CharLength = ["CHAR_LENGTH", "CHARACTER_LENGTH"] (1, 1),
    Substring = ["SUBSTRING", "SUBSTR", "MID"] (2, 3),
    Left = ["LEFT"] (2, 2),
    Right = ["RIGHT"] (2, 2),
    SubstringIndex = ["SUBSTRING_INDEX"] (3, 3),
    Locate = ["LOCATE"] (2, 3),
    Instr = ["INSTR"] (2, 2),
    Replace = ["REPLACE"] (3, 3),
    Trim = ["TRIM"] (1, 1),
    LTrim = ["LTRIM"] (1, 1),
    RTrim = ["RTRIM"] (1, 1),
    /// TRIM([BOTH|LEADING|TRAILING] remstr FROM str): args (str, remstr, where: 0 both, 1 leading, 2 trailing).
    TrimChars = ["$TRIM_CHARS"] (3, 3),
    LPad = ["LPAD"] (3, 3),
    RPad = ["RPAD"] (3, 3),
    Repeat = ["REPEAT"] (2, 2),
    Reverse = ["REVERSE"] (1, 1),
    Space = ["SPACE"] (1, 1),
    Ascii = ["ASCII"] (1, 1),
    Hex = ["HEX"] (1, 1),
    Strcmp = ["STRCMP"] (2, 2),
    FindInSet = ["FIND_IN_SET"] (2, 2),
    Field = ["FIELD"] (2, MANY),
    // Control flow and NULLs.
    IfNull = ["IFNULL"] (2, 2),
    NullIf = ["NULLIF"] (2, 2),
    If = ["IF"] (3, 3),
    Coalesce = ["COALESCE"] (1, MANY),
    IsNull = ["ISNULL"] (1, 1),
    Greatest = ["GREATEST"] (2, MANY),
    Least = ["LEAST"] (2, MANY),
    // Numbers.
    Abs = ["ABS"] (1, 1),
    Round = ["ROUND"] (1, 2),
    Truncate = ["TRUNCATE"] (2, 2),
    Floor = ["FLOOR"] (1, 1),
    Ceil = ["CEIL", "CEILING"] (1, 1),
    Mod = ["MOD"] (2, 2),
    Sign = ["SIGN"] (1, 1),
    Power = ["POW", "POWER"] (2, 2),
    Sqrt = ["SQRT"] (1, 1),
    Exp = ["EXP"] (1, 1),
    Ln = ["LN"] (1, 1),
    Log10 = ["LOG10"] (1, 1),
    Log2 = ["LOG2"] (1, 1),
    Pi = ["PI"] (0, 0),
    Crc32 = ["CRC32"] (1, 1),
    Md5 = ["MD5"] (1, 1),
    Sha1 = ["SHA1", "SHA"] (1, 1),
    /// SHA2(str, bits): bits 224, 256, 384, 512 (0 means 256); anything else gives NULL.
    Sha2 = ["SHA2"] (2, 2),
    // Dates and times.
    UnixTimestamp = ["UNIX_TIMESTAMP"] (0, 1),
    FromUnixtime = ["FROM_UNIXTIME"] (1, 1),
    DatePart = ["DATE"] (1, 1),
    TimePart = ["TIME"] (1, 1),
    Year = ["YEAR"] (1, 1),
    Month = ["MONTH"] (1, 1),
    Day = ["DAY", "DAYOFMONTH"] (1, 1),
    Hour = ["HOUR"] (1, 1),
    Minute = ["MINUTE"] (1, 1),
    Second = ["SECOND"] (1, 1),
    DayOfWeek = ["DAYOFWEEK"] (1, 1),
    WeekDay = ["WEEKDAY"] (1, 1),
    DayOfYear = ["DAYOFYEAR"] (1, 1),
    ToDays = ["TO_DAYS"] (1, 1),
    LastDay = ["LAST_DAY"] (1, 1),
    /// DATE_ADD(d, n, 'UNIT'): the SQL layer lowers `INTERVAL n UNIT` into the last two args.
    DateAdd = ["DATE_ADD", "ADDDATE"] (3, 3),
    DateSub = ["DATE_SUB", "SUBDATE"] (3, 3),
    DateDiff = ["DATEDIFF"] (2, 2),
    /// TIMESTAMPDIFF('UNIT', a, b).
    TimestampDiff = ["TIMESTAMPDIFF"] (3, 3),
    DateFormat = ["DATE_FORMAT"] (2, 2),
    // Network addresses.
    InetAton = ["INET_ATON"] (1, 1),
    InetNtoa = ["INET_NTOA"] (1, 1),
    Inet6Aton = ["INET6_ATON"] (1, 1),
    Inet6Ntoa = ["INET6_NTOA"] (1, 1),
    // Session (evaluated on the SQL node only).
    Now = ["NOW", "CURRENT_TIMESTAMP", "LOCALTIME", "LOCALTIMESTAMP", "SYSDATE"] (0, 1),
    CurDate = ["CURDATE", "CURRENT_DATE"] (0, 0),
    CurTime = ["CURTIME", "CURRENT_TIME"] (0, 1),
    UtcTimestamp = ["UTC_TIMESTAMP"] (0, 1),
    Database = ["DATABASE", "SCHEMA"] (0, 0),
    User = ["USER", "SESSION_USER", "SYSTEM_USER"] (0, 0),
    CurrentUser = ["CURRENT_USER"] (0, 0),
    Version = ["VERSION"] (0, 0),
    ConnectionId = ["CONNECTION_ID"] (0, 0),
    LastInsertId = ["LAST_INSERT_ID"] (0, 1),
    FoundRows = ["FOUND_ROWS"] (0, 0),
    RowCount = ["ROW_COUNT"] (0, 0),
    Rand = ["RAND"] (0, 1),
    Uuid = ["UUID"] (0, 0),
}

impl Func {
    /// Needs state only the SQL node has; never shipped to a data node.
    pub fn needs_session(self) -> bool {
        matches!(
            self,
            Func::Now
                | Func::CurDate
                | Func::CurTime
                | Func::UtcTimestamp
                | Func::Database
                | Func::User
                | Func::CurrentUser
                | Func::Version
                | Func::ConnectionId
                | Func::LastInsertId
                | Func::FoundRows
                | Func::RowCount
                | Func::Rand
                | Func::Uuid
        ) || self == Func::UnixTimestamp // without an argument it reads the clock
    }

    /// Same arguments give the same result within a statement.
    pub fn is_deterministic(self) -> bool {
        !matches!(self, Func::Rand | Func::Uuid)
    }

    pub fn check_arity(self, count: usize) -> Result<()> {
        let (min, max) = self.arity();
        if count < min || count > max {
            return Err(Error::new(
                ErrorKind::WrongParameterCount,
                format!("Incorrect parameter count in the call to native function '{}'", self.name()),
            ));
        }
        Ok(())
    }
}

fn text_arg(v: &Value) -> std::borrow::Cow<'_, str> {
    match v {
        Value::Double(d) => std::borrow::Cow::Owned(format_double(*d)),
        other => other.to_text(),
    }
}

fn int_arg(v: &Value) -> i64 {
    v.to_i64().unwrap_or_else(|| if v.to_f64().unwrap_or(0.0) < 0.0 { i64::MIN } else { i64::MAX })
}

/// Whether a string result should stay binary (any binary argument makes it binary).
fn string_result(binary: bool, s: String) -> Value {
    if binary { Value::Bytes(s.into_bytes()) } else { Value::Text(s) }
}

/// Evaluates a call. Arguments are evaluated lazily where SQL requires it (IF, COALESCE…).
pub fn call(func: Func, args: &[Expr], row: &[Value], ctx: &mut EvalContext<'_>) -> Result<Value> {
    // Lazily evaluated functions first.
    match func {
        Func::If => {
            let cond = args[0].eval(row, ctx)?.truthy() == Some(true);
            return args[if cond { 1 } else { 2 }].eval(row, ctx);
        }
        Func::IfNull => {
            let first = args[0].eval(row, ctx)?;
            return if first.is_null() { args[1].eval(row, ctx) } else { Ok(first) };
        }
        Func::Coalesce => {
            for a in args {
                let v = a.eval(row, ctx)?;
                if !v.is_null() {
                    return Ok(v);
                }
            }
            return Ok(Value::Null);
        }
        _ => {}
    }
    let values: Vec<Value> = args.iter().map(|a| a.eval(row, ctx)).collect::<Result<_>>()?;
    call_values(func, values, ctx)
}

/// Functions returning NULL when any argument is NULL.
fn null_in(values: &[Value]) -> bool {
    values.iter().any(Value::is_null)
}

fn call_values(func: Func, v: Vec<Value>, ctx: &mut EvalContext<'_>) -> Result<Value> {
    use Func::*;
    let null_tolerant = matches!(func, ConcatWs | Coalesce | IsNull | NullIf | Field | Now | CurDate | CurTime | UtcTimestamp
        | Database | User | CurrentUser | Version | ConnectionId | LastInsertId | FoundRows | RowCount | Rand | Uuid | UnixTimestamp | Pi);
    if !null_tolerant && null_in(&v) {
        return Ok(Value::Null);
    }
    let binary = v.iter().any(|x| matches!(x, Value::Bytes(_)));
    Ok(match func {
        Concat => {
            let mut out = String::new();
            for x in &v {
                out.push_str(&text_arg(x));
            }
            string_result(binary, out)
        }
        ConcatWs => {
            if v[0].is_null() {
                return Ok(Value::Null);
            }
            let sep = text_arg(&v[0]).into_owned();
            let parts: Vec<String> = v[1..].iter().filter(|x| !x.is_null()).map(|x| text_arg(x).into_owned()).collect();
            string_result(binary, parts.join(&sep))
        }
        Lower => match &v[0] {
            Value::Bytes(b) => Value::Bytes(b.clone()), // binary strings have no case (MySQL)
            x => Value::Text(text_arg(x).to_lowercase()),
        },
        Upper => match &v[0] {
            Value::Bytes(b) => Value::Bytes(b.clone()),
            // Character by character, as MySQL maps case: a character whose upper case is
            // several characters ('ß') stays as it is.
            x => Value::Text(
                text_arg(x)
                    .chars()
                    .map(|c| {
                        let mut up = c.to_uppercase();
                        match (up.next(), up.next()) {
                            (Some(u), None) => u,
                            _ => c,
                        }
                    })
                    .collect(),
            ),
        },
        Length => Value::Int(v[0].to_bytes().len() as i64),
        CharLength => match &v[0] {
            Value::Bytes(b) => Value::Int(b.len() as i64),
            x => Value::Int(text_arg(x).chars().count() as i64),
        },
        Substring => {
            let s: Vec<char> = text_arg(&v[0]).chars().collect();
            let pos = int_arg(&v[1]);
            let len = v.get(2).map(int_arg);
            let start = if pos > 0 {
                (pos - 1) as usize
            } else if pos < 0 && pos.unsigned_abs() as usize <= s.len() {
                s.len() - pos.unsigned_abs() as usize
            } else {
                return Ok(string_result(binary, String::new()));
            };
            let take = match len {
                Some(l) if l <= 0 => 0,
                Some(l) => l as usize,
                None => usize::MAX,
            };
            string_result(binary, s.iter().skip(start).take(take).collect())
        }
        Left => {
            let n = int_arg(&v[1]).max(0) as usize;
            string_result(binary, text_arg(&v[0]).chars().take(n).collect())
        }
        Right => {
            let s: Vec<char> = text_arg(&v[0]).chars().collect();
            let n = (int_arg(&v[1]).max(0) as usize).min(s.len());
            string_result(binary, s[s.len() - n..].iter().collect())
        }
        SubstringIndex => {
            let s = text_arg(&v[0]).into_owned();
            let delim = text_arg(&v[1]).into_owned();
            let count = int_arg(&v[2]);
            if delim.is_empty() || count == 0 {
                return Ok(string_result(binary, String::new()));
            }
            let pieces: Vec<&str> = s.split(delim.as_str()).collect();
            let n = count.unsigned_abs() as usize;
            let result = if n >= pieces.len() {
                s.clone()
            } else if count > 0 {
                pieces[..n].join(&delim)
            } else {
                pieces[pieces.len() - n..].join(&delim)
            };
            string_result(binary, result)
        }
        Locate | Instr => {
            let (needle, haystack, from) = if func == Instr {
                (text_arg(&v[1]).into_owned(), text_arg(&v[0]).into_owned(), 1)
            } else {
                (text_arg(&v[0]).into_owned(), text_arg(&v[1]).into_owned(), v.get(2).map_or(1, int_arg))
            };
            Value::Int(locate(&needle, &haystack, from, binary))
        }
        Replace => {
            let from = text_arg(&v[1]).into_owned();
            let s = text_arg(&v[0]).into_owned();
            let result = if from.is_empty() { s } else { s.replace(&from, &text_arg(&v[2])) };
            string_result(binary, result)
        }
        Trim => string_result(binary, text_arg(&v[0]).trim_matches(' ').to_string()),
        LTrim => string_result(binary, text_arg(&v[0]).trim_start_matches(' ').to_string()),
        RTrim => string_result(binary, text_arg(&v[0]).trim_end_matches(' ').to_string()),
        TrimChars => {
            let s = text_arg(&v[0]).into_owned();
            let rem = text_arg(&v[1]).into_owned();
            let mode = int_arg(&v[2]);
            let mut out = s.as_str();
            if !rem.is_empty() {
                if mode != 2 {
                    while let Some(rest) = out.strip_prefix(rem.as_str()) {
                        out = rest;
                    }
                }
                if mode != 1 {
                    while let Some(rest) = out.strip_suffix(rem.as_str()) {
                        out = rest;
                    }
                }
            }
            string_result(binary, out.to_string())
        }
        LPad | RPad => {
            let s: Vec<char> = text_arg(&v[0]).chars().collect();
            let len = int_arg(&v[1]);
            let pad: Vec<char> = text_arg(&v[2]).chars().collect();
            if len < 0 {
                return Ok(Value::Null);
            }
            let len = len as usize;
            if len > crate::row::MAX_ROW_BYTES {
                ctx.warn(1301, "Result of lpad() was larger than max_allowed_packet; truncated");
                return Ok(Value::Null);
            }
            if s.len() >= len {
                return Ok(string_result(binary, s[..len].iter().collect()));
            }
            if pad.is_empty() {
                return Ok(Value::Null);
            }
            let fill: String = pad.iter().cycle().take(len - s.len()).collect();
            let body: String = s.iter().collect();
            string_result(binary, if func == LPad { fill + &body } else { body + &fill })
        }
        Repeat => {
            let n = int_arg(&v[1]).max(0) as usize;
            let s = text_arg(&v[0]);
            if s.len().saturating_mul(n) > crate::row::MAX_ROW_BYTES {
                ctx.warn(1301, "Result of repeat() was larger than max_allowed_packet; truncated");
                return Ok(Value::Null);
            }
            string_result(binary, s.repeat(n))
        }
        Reverse => string_result(binary, text_arg(&v[0]).chars().rev().collect()),
        Space => {
            let n = int_arg(&v[0]).max(0) as usize;
            if n > crate::row::MAX_ROW_BYTES {
                return Ok(Value::Null);
            }
            Value::Text(" ".repeat(n))
        }
        Ascii => Value::Int(v[0].to_bytes().first().copied().unwrap_or(0) as i64),
        Hex => match &v[0] {
            Value::Int(_) | Value::UInt(_) | Value::Decimal(_) | Value::Double(_) => {
                Value::Text(format!("{:X}", v[0].to_u64().unwrap_or_else(|| v[0].to_i64().unwrap_or(0) as u64)))
            }
            x => Value::Text(x.to_bytes().iter().map(|b| format!("{b:02X}")).collect()),
        },
        Strcmp => {
            let coll = if binary { Collation::Binary } else { Collation::CaseInsensitive };
            Value::Int(match coll.compare(&text_arg(&v[0]), &text_arg(&v[1])) {
                std::cmp::Ordering::Less => -1,
                std::cmp::Ordering::Equal => 0,
                std::cmp::Ordering::Greater => 1,
            })
        }
        FindInSet => {
            let needle = text_arg(&v[0]).into_owned();
            let list = text_arg(&v[1]).into_owned();
            let position = list
                .split(',')
                .position(|item| Collation::CaseInsensitive.equal(item, &needle))
                .map_or(0, |p| p + 1);
            Value::Int(if needle.contains(',') { 0 } else { position as i64 })
        }
        Field => {
            if v[0].is_null() {
                return Ok(Value::Int(0));
            }
            let position = v[1..].iter().position(|x| v[0].sql_eq(x, Collation::CaseInsensitive) == Some(true));
            Value::Int(position.map_or(0, |p| p as i64 + 1))
        }
        NullIf => {
            if v[0].sql_eq(&v[1], Collation::CaseInsensitive) == Some(true) { Value::Null } else { v[0].clone() }
        }
        IsNull => Value::from_bool(v[0].is_null()),
        Greatest | Least => {
            let mut best = v[0].clone();
            for x in &v[1..] {
                let ord = x.sql_cmp(&best, Collation::CaseInsensitive).unwrap_or(std::cmp::Ordering::Equal);
                let better = if func == Greatest { ord.is_gt() } else { ord.is_lt() };
                if better {
                    best = x.clone();
                }
            }
            best
        }
        Abs => match &v[0] {
            Value::Int(i) => match i.checked_abs() {
                Some(a) => Value::Int(a),
                None => return Err(Error::new(ErrorKind::ValueOutOfRange, "BIGINT value is out of range in 'abs'")),
            },
            Value::UInt(u) => Value::UInt(*u),
            Value::Decimal(d) => Value::Decimal(d.abs()),
            x => Value::Double(x.to_f64().unwrap_or(0.0).abs()),
        },
        Round | Truncate => {
            let digits = v.get(1).map_or(0, int_arg).clamp(-64, 30) as i32;
            match &v[0] {
                Value::Int(_) | Value::UInt(_) | Value::Decimal(_) => {
                    let d = v[0].to_decimal().unwrap_or_default();
                    let r = if func == Round {
                        d.round(digits)
                    } else if digits >= 0 {
                        Some(d.truncate(digits as u8))
                    } else {
                        let unit = Decimal::new(10i128.pow((-digits).min(37) as u32), 0).unwrap_or_default();
                        d.checked_div(unit, 0).map(|q| q.truncate(0)).and_then(|q| q.checked_mul(unit))
                    };
                    let r = r.ok_or_else(|| Error::new(ErrorKind::ValueOutOfRange, "DECIMAL value is out of range"))?;
                    match &v[0] {
                        Value::Int(_) if r.scale() == 0 => Value::Int(r.round_to_i128() as i64),
                        Value::UInt(_) if r.scale() == 0 => Value::UInt(r.round_to_i128() as u64),
                        _ => Value::Decimal(r),
                    }
                }
                x => {
                    let f = x.to_f64().unwrap_or(0.0);
                    let scale = 10f64.powi(digits);
                    let r = if func == Round { round_half_even_free(f * scale) / scale } else { (f * scale).trunc() / scale };
                    Value::Double(r)
                }
            }
        }
        Floor | Ceil => match &v[0] {
            Value::Int(_) | Value::UInt(_) => v[0].clone(),
            Value::Decimal(d) => {
                let r = if func == Floor { d.floor() } else { d.ceil() };
                match i64::try_from(r.round_to_i128()) {
                    Ok(i) => Value::Int(i),
                    Err(_) => Value::Decimal(r),
                }
            }
            x => {
                let f = x.to_f64().unwrap_or(0.0);
                Value::Double(if func == Floor { f.floor() } else { f.ceil() })
            }
        },
        Mod => crate::expr::arithmetic(crate::expr::ArithOp::Mod, v[0].clone(), v[1].clone(), ctx)?,
        Sign => {
            let f = v[0].to_f64().unwrap_or(0.0);
            Value::Int(if f > 0.0 { 1 } else if f < 0.0 { -1 } else { 0 })
        }
        Power => Value::Double(v[0].to_f64().unwrap_or(0.0).powf(v[1].to_f64().unwrap_or(0.0))),
        Sqrt => {
            let f = v[0].to_f64().unwrap_or(0.0);
            if f < 0.0 { Value::Null } else { Value::Double(f.sqrt()) }
        }
        Exp => Value::Double(v[0].to_f64().unwrap_or(0.0).exp()),
        Ln | Log10 | Log2 => {
            let f = v[0].to_f64().unwrap_or(0.0);
            if f <= 0.0 {
                ctx.warn(3020, "Invalid argument for logarithm");
                return Ok(Value::Null);
            }
            Value::Double(match func {
                Ln => f.ln(),
                Log10 => f.log10(),
                _ => f.log2(),
            })
        }
        Pi => Value::Double(std::f64::consts::PI),
        Crc32 => Value::UInt(crc32_ieee(&v[0].to_bytes()) as u64),
        Md5 => Value::Text(hex_lower(&md5(&text_arg(&v[0]).as_bytes_owned(&v[0])))),
        Sha1 => {
            use sha1::Digest;
            Value::Text(hex_lower(&sha1::Sha1::digest(text_arg(&v[0]).as_bytes_owned(&v[0]))))
        }
        Sha2 => {
            use sha2::Digest;
            let data = text_arg(&v[0]).as_bytes_owned(&v[0]);
            match int_arg(&v[1]) {
                224 => Value::Text(hex_lower(&sha2::Sha224::digest(&data))),
                0 | 256 => Value::Text(hex_lower(&sha2::Sha256::digest(&data))),
                384 => Value::Text(hex_lower(&sha2::Sha384::digest(&data))),
                512 => Value::Text(hex_lower(&sha2::Sha512::digest(&data))),
                _ => Value::Null,
            }
        }
        UnixTimestamp => match v.first() {
            None => Value::Int(ctx.session()?.now().to_unix_seconds().unwrap_or(0)),
            Some(Value::Null) => Value::Null,
            Some(x) => match x.to_datetime() {
                Some(dt) if !dt.date.is_zero() => {
                    let secs = dt.to_unix_seconds().unwrap_or(0);
                    if secs < 0 {
                        Value::Int(0)
                    } else if dt.micros > 0 {
                        Value::Decimal(Decimal::new(secs as i128 * 1_000_000 + dt.micros as i128, 6).unwrap_or_default())
                    } else {
                        Value::Int(secs)
                    }
                }
                _ => Value::Int(0),
            },
        },
        FromUnixtime => {
            let d = v[0].to_decimal().unwrap_or_default();
            if d.is_negative() {
                return Ok(Value::Null);
            }
            let micros = d.rescale(6).map(|d| d.mantissa()).unwrap_or(0);
            match i64::try_from(micros).ok().and_then(DateTime::from_unix_micros) {
                Some(dt) => Value::DateTime(dt),
                None => Value::Null,
            }
        }
        DatePart => v[0].to_date().map_or(Value::Null, Value::Date),
        TimePart => {
            // A string holding a date and a time gives its time of day, as MySQL's TIME().
            let text = v[0].to_text();
            let datetime = matches!(v[0], Value::Text(_) | Value::Bytes(_)) && text.trim().contains(' ');
            match datetime.then(|| v[0].to_datetime()).flatten() {
                Some(dt) => Value::Time(dt.time_of_day()),
                None => v[0].to_time().map_or(Value::Null, Value::Time),
            }
        }
        Year | Month | Day => match v[0].to_date() {
            Some(d) => Value::Int(match func {
                Year => d.year as i64,
                Month => d.month as i64,
                _ => d.day as i64,
            }),
            None => Value::Null,
        },
        Hour | Minute | Second => match v[0].to_time() {
            Some(t) => Value::Int(match func {
                Hour => t.hours as i64,
                Minute => t.minute as i64,
                _ => t.second as i64,
            }),
            None => Value::Null,
        },
        DayOfWeek => v[0].to_date().and_then(Date::day_of_week).map_or(Value::Null, |d| Value::Int(d as i64)),
        WeekDay => v[0].to_date().and_then(Date::day_of_week).map_or(Value::Null, |d| Value::Int((d as i64 + 5) % 7)),
        DayOfYear => v[0].to_date().and_then(Date::day_of_year).map_or(Value::Null, |d| Value::Int(d as i64)),
        ToDays => v[0].to_date().and_then(Date::to_mysql_daynr).map_or(Value::Null, Value::Int),
        LastDay => match v[0].to_date() {
            Some(d) if !d.is_zero() => {
                Value::Date(Date { day: crate::temporal::days_in_month(d.year, d.month), ..d })
            }
            _ => Value::Null,
        },
        DateAdd | DateSub => {
            let unit = text_arg(&v[2]).to_ascii_uppercase();
            let amount = &v[1];
            date_add(&v[0], amount, &unit, func == DateSub, ctx)?
        }
        DateDiff => match (v[0].to_date().and_then(Date::to_days), v[1].to_date().and_then(Date::to_days)) {
            (Some(a), Some(b)) => Value::Int(a - b),
            _ => Value::Null,
        },
        TimestampDiff => {
            let unit = text_arg(&v[0]).to_ascii_uppercase();
            match (v[1].to_datetime(), v[2].to_datetime()) {
                (Some(a), Some(b)) => timestamp_diff(&unit, a, b)?,
                _ => Value::Null,
            }
        }
        DateFormat => match v[0].to_datetime() {
            Some(dt) => Value::Text(date_format(dt, &text_arg(&v[1]))),
            None => Value::Null,
        },
        InetAton => {
            let text = text_arg(&v[0]).into_owned();
            match inet_aton(&text) {
                Some(n) => Value::UInt(n as u64),
                None => {
                    ctx.warn(1411, format!("Incorrect string value: '{text}' for function inet_aton"));
                    Value::Null
                }
            }
        }
        InetNtoa => match v[0].to_u64() {
            Some(n) if n <= u32::MAX as u64 => Value::Text(Ipv4Addr::from(n as u32).to_string()),
            _ => Value::Null,
        },
        Inet6Aton => {
            let text = text_arg(&v[0]).into_owned();
            if let Ok(a) = text.parse::<Ipv4Addr>() {
                Value::Bytes(a.octets().to_vec())
            } else if let Ok(a) = text.parse::<Ipv6Addr>() {
                Value::Bytes(a.octets().to_vec())
            } else {
                Value::Null
            }
        }
        Inet6Ntoa => {
            let b = v[0].to_bytes();
            match b.len() {
                4 => Value::Text(Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()),
                16 => {
                    let mut octets = [0u8; 16];
                    octets.copy_from_slice(&b);
                    Value::Text(Ipv6Addr::from(octets).to_string())
                }
                _ => Value::Null,
            }
        }
        Now | UtcTimestamp => {
            let fsp = v.first().and_then(Value::to_i64).unwrap_or(0).clamp(0, 6) as u8;
            let now = ctx.session()?.now();
            Value::DateTime(now.round_to_fsp(fsp).unwrap_or(now))
        }
        CurDate => Value::Date(ctx.session()?.now().date),
        CurTime => {
            let fsp = v.first().and_then(Value::to_i64).unwrap_or(0).clamp(0, 6) as u8;
            let now = ctx.session()?.now();
            let t = now.round_to_fsp(fsp).unwrap_or(now).time_of_day();
            Value::Time(Time { micros: if fsp == 0 { 0 } else { t.micros }, ..t })
        }
        Database => ctx.session()?.current_database().map_or(Value::Null, Value::Text),
        User => Value::Text(ctx.session()?.current_user()),
        CurrentUser => Value::Text(ctx.session()?.account()),
        Version => Value::Text(ctx.session()?.version()),
        ConnectionId => Value::UInt(ctx.session()?.connection_id()),
        LastInsertId => match v.first() {
            // LAST_INSERT_ID(expr) returns expr; the SQL node also remembers it.
            Some(x) => x.to_u64().map_or(Value::Null, Value::UInt),
            None => Value::UInt(ctx.session()?.last_insert_id()),
        },
        FoundRows => Value::UInt(ctx.session()?.found_rows()),
        RowCount => Value::Int(ctx.session()?.row_count()),
        Rand => Value::Double(ctx.session()?.random()),
        Uuid => {
            let s = ctx.session()?;
            let mut bytes = [0u8; 16];
            for chunk in bytes.chunks_mut(4) {
                let r = (s.random() * u32::MAX as f64) as u32;
                chunk.copy_from_slice(&r.to_le_bytes());
            }
            bytes[6] = (bytes[6] & 0x0f) | 0x40;
            bytes[8] = (bytes[8] & 0x3f) | 0x80;
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            Value::Text(format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32]))
        }
        If | IfNull | Coalesce => unreachable!("evaluated lazily in call()"),
    })
}

/// Rounds half away from zero (MySQL's ROUND on doubles uses the C library's rint on some
/// platforms; half away from zero is what users expect and what MariaDB prints for .5).
fn round_half_even_free(x: f64) -> f64 {
    x.round()
}

fn locate(needle: &str, haystack: &str, from: i64, binary: bool) -> i64 {
    if from < 1 {
        return 0;
    }
    let fold = |s: &str| -> Vec<char> {
        if binary { s.chars().collect() } else { s.chars().map(crate::collation::weight).collect() }
    };
    let n = fold(needle);
    let h = fold(haystack);
    let start = (from - 1) as usize;
    if n.is_empty() {
        return if start <= h.len() { from } else { 0 };
    }
    if n.len() > h.len() {
        return 0;
    }
    (start..=h.len() - n.len()).find(|&i| h[i..i + n.len()] == n[..]).map_or(0, |i| i as i64 + 1)
}

/// INET_ATON as MySQL reads it: dotted quads, short forms such as `127.1` (127.0.0.1).
pub fn inet_aton(text: &str) -> Option<u32> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.is_empty() || parts.len() > 4 || parts.iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 3) {
        return None;
    }
    let nums: Vec<u32> = parts.iter().map(|p| p.parse::<u32>().ok()).collect::<Option<_>>()?;
    if nums.iter().any(|&n| n > 255) {
        return None;
    }
    let mut result = 0u32;
    for (i, n) in nums.iter().enumerate() {
        if i + 1 == nums.len() {
            // The last part fills the remaining low-order bytes.
            result = (result << (8 * (4 - i as u32))) | n;
        } else {
            result = (result << 8) | n;
        }
    }
    Some(result)
}

/// The bytes a hash function reads: a binary string's bytes, any other value's text in UTF-8.
trait HashInput {
    fn as_bytes_owned(&self, original: &Value) -> Vec<u8>;
}

impl HashInput for std::borrow::Cow<'_, str> {
    fn as_bytes_owned(&self, original: &Value) -> Vec<u8> {
        match original {
            Value::Bytes(b) => b.clone(),
            _ => self.as_bytes().to_vec(),
        }
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// MD5 (RFC 1321), for MySQL's MD5(): a 128-bit digest of the bytes.
fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23,
        4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    // K[i] = floor(abs(sin(i + 1)) * 2^32), as the RFC defines the table.
    let k: Vec<u32> = (0..64).map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32).collect();
    let (mut a0, mut b0, mut c0, mut d0) = (0x6745_2301u32, 0xefcd_ab89u32, 0x98ba_dcfeu32, 0x1032_5476u32);
    let mut message = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_le_bytes());
    for block in message.chunks(64) {
        let m: Vec<u32> = block.chunks(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect();
        let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        a0 = a0.wrapping_add(a);
        b0 = b0.wrapping_add(b);
        c0 = c0.wrapping_add(c);
        d0 = d0.wrapping_add(d);
    }
    let mut out = [0u8; 16];
    for (i, w) in [a0, b0, c0, d0].iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

fn crc32_ieee(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// DATE_ADD / DATE_SUB with an interval unit.
fn date_add(base: &Value, amount: &Value, unit: &str, subtract: bool, ctx: &mut EvalContext<'_>) -> Result<Value> {
    let sign: i64 = if subtract { -1 } else { 1 };
    let Some(dt) = base.to_datetime() else {
        ctx.warn(1292, format!("Incorrect datetime value: '{}'", base.to_text()));
        return Ok(Value::Null);
    };
    // A DATE, or a string holding only a date, stays a date for day-or-longer units (MySQL
    // returns '2024-02-29' for DATE_ADD('2024-01-31', INTERVAL 1 MONTH)).
    let date_only = match base {
        Value::Date(_) => true,
        Value::Text(_) | Value::Bytes(_) => !base.to_text().trim().contains([' ', 'T', ':']),
        _ => false,
    };
    let keep_date = date_only && matches!(unit, "DAY" | "WEEK" | "MONTH" | "QUARTER" | "YEAR");
    let result = match unit {
        "MONTH" | "QUARTER" | "YEAR" => {
            let n = amount.to_i64().unwrap_or(0) * sign * match unit {
                "YEAR" => 12,
                "QUARTER" => 3,
                _ => 1,
            };
            let months = dt.date.year as i64 * 12 + dt.date.month as i64 - 1 + n;
            if !(0..=9999 * 12 + 11).contains(&months) {
                return Ok(Value::Null);
            }
            let (year, month) = ((months / 12) as u16, (months % 12 + 1) as u8);
            let day = dt.date.day.min(crate::temporal::days_in_month(year, month));
            Date::new(year, month, day).map(|date| DateTime { date, ..dt })
        }
        _ => {
            let micros_per = match unit {
                "MICROSECOND" => 1i64,
                "SECOND" => 1_000_000,
                "MINUTE" => 60_000_000,
                "HOUR" => 3_600_000_000,
                "DAY" => 86_400_000_000,
                "WEEK" => 7 * 86_400_000_000,
                other => return Err(Error::new(ErrorKind::ParseError, format!("Unknown interval unit {other}"))),
            };
            let amount_micros = match amount {
                Value::Decimal(_) | Value::Double(_) if unit == "SECOND" => {
                    (amount.to_f64().unwrap_or(0.0) * 1e6).round() as i64
                }
                _ => amount.to_i64().unwrap_or(0).saturating_mul(micros_per),
            };
            dt.to_unix_micros().and_then(|m| DateTime::from_unix_micros(m + sign * amount_micros))
        }
    };
    Ok(match result {
        Some(r) if keep_date => Value::Date(r.date),
        Some(r) => Value::DateTime(r),
        None => Value::Null,
    })
}

fn timestamp_diff(unit: &str, a: DateTime, b: DateTime) -> Result<Value> {
    let (Some(ma), Some(mb)) = (a.to_unix_micros(), b.to_unix_micros()) else {
        return Ok(Value::Null);
    };
    let diff = mb - ma;
    Ok(Value::Int(match unit {
        "MICROSECOND" => diff,
        "SECOND" => diff / 1_000_000,
        "MINUTE" => diff / 60_000_000,
        "HOUR" => diff / 3_600_000_000,
        "DAY" => diff / 86_400_000_000,
        "WEEK" => diff / (7 * 86_400_000_000),
        "MONTH" | "QUARTER" | "YEAR" => {
            let months_a = a.date.year as i64 * 12 + a.date.month as i64;
            let months_b = b.date.year as i64 * 12 + b.date.month as i64;
            let mut months = months_b - months_a;
            // A partial month does not count: compare the rest of the timestamp.
            let rest_a = (a.date.day, a.hour, a.minute, a.second, a.micros);
            let rest_b = (b.date.day, b.hour, b.minute, b.second, b.micros);
            if months > 0 && rest_b < rest_a {
                months -= 1;
            } else if months < 0 && rest_b > rest_a {
                months += 1;
            }
            match unit {
                "MONTH" => months,
                "QUARTER" => months / 3,
                _ => months / 12,
            }
        }
        other => return Err(Error::new(ErrorKind::ParseError, format!("Unknown interval unit {other}"))),
    }))
}

const MONTH_NAMES: [&str; 12] = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December",
];
const DAY_NAMES: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/// DATE_FORMAT's common specifiers.
pub fn date_format(dt: DateTime, format: &str) -> String {
    let mut out = String::with_capacity(format.len() + 8);
    let mut chars = format.chars();
    let hour12 = |h: u8| if h % 12 == 0 { 12 } else { h % 12 };
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else { break };
        let d = dt.date;
        let dow = d.day_of_week().unwrap_or(1) as usize - 1;
        match spec {
            'Y' => out.push_str(&format!("{:04}", d.year)),
            'y' => out.push_str(&format!("{:02}", d.year % 100)),
            'm' => out.push_str(&format!("{:02}", d.month)),
            'c' => out.push_str(&d.month.to_string()),
            'd' => out.push_str(&format!("{:02}", d.day)),
            'e' => out.push_str(&d.day.to_string()),
            'H' => out.push_str(&format!("{:02}", dt.hour)),
            'k' => out.push_str(&dt.hour.to_string()),
            'h' | 'I' => out.push_str(&format!("{:02}", hour12(dt.hour))),
            'l' => out.push_str(&hour12(dt.hour).to_string()),
            'i' => out.push_str(&format!("{:02}", dt.minute)),
            's' | 'S' => out.push_str(&format!("{:02}", dt.second)),
            'f' => out.push_str(&format!("{:06}", dt.micros)),
            'p' => out.push_str(if dt.hour < 12 { "AM" } else { "PM" }),
            'T' => out.push_str(&format!("{:02}:{:02}:{:02}", dt.hour, dt.minute, dt.second)),
            'r' => out.push_str(&format!(
                "{:02}:{:02}:{:02} {}",
                hour12(dt.hour),
                dt.minute,
                dt.second,
                if dt.hour < 12 { "AM" } else { "PM" }
            )),
            'M' => out.push_str(MONTH_NAMES.get(d.month as usize - 1).unwrap_or(&"")),
            'b' => out.push_str(MONTH_NAMES.get(d.month as usize - 1).map_or("", |m| &m[..3])),
            'W' => out.push_str(DAY_NAMES[dow]),
            'a' => out.push_str(&DAY_NAMES[dow][..3]),
            'w' => out.push_str(&dow.to_string()),
            'j' => out.push_str(&format!("{:03}", d.day_of_year().unwrap_or(0))),
            '%' => out.push('%'),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::temporal::parse_datetime;

    fn f(func: Func, args: Vec<Value>) -> Value {
        let exprs: Vec<Expr> = args.into_iter().map(Expr::Literal).collect();
        call(func, &exprs, &[], &mut EvalContext::detached()).unwrap()
    }

    fn show(v: Value) -> String {
        if v.is_null() { "NULL".into() } else { v.to_text().into_owned() }
    }

    fn t(s: &str) -> Value {
        Value::text(s)
    }

    #[test]
    fn string_functions() {
        assert_eq!(show(f(Func::Concat, vec![t("a"), Value::Int(1), Value::Double(1.5)])), "a11.5");
        assert_eq!(show(f(Func::Concat, vec![t("a"), Value::Null])), "NULL");
        assert_eq!(show(f(Func::ConcatWs, vec![t(","), t("a"), Value::Null, t("b")])), "a,b");
        assert_eq!(show(f(Func::Substring, vec![t("Quadratically"), Value::Int(5), Value::Int(6)])), "ratica");
        assert_eq!(show(f(Func::Substring, vec![t("Sakila"), Value::Int(-3)])), "ila");
        assert_eq!(show(f(Func::SubstringIndex, vec![t("www.mysql.com"), t("."), Value::Int(2)])), "www.mysql");
        assert_eq!(show(f(Func::SubstringIndex, vec![t("www.mysql.com"), t("."), Value::Int(-2)])), "mysql.com");
        assert_eq!(show(f(Func::Locate, vec![t("bar"), t("foobarbar"), Value::Int(5)])), "7");
        assert_eq!(show(f(Func::Instr, vec![t("foobar"), t("BAR")])), "4");
        assert_eq!(show(f(Func::LPad, vec![t("hi"), Value::Int(4), t("??")])), "??hi");
        assert_eq!(show(f(Func::LPad, vec![t("hi"), Value::Int(1), t("??")])), "h");
        assert_eq!(show(f(Func::Length, vec![t("é")])), "2");
        assert_eq!(show(f(Func::CharLength, vec![t("é")])), "1");
        assert_eq!(show(f(Func::Hex, vec![Value::Int(255)])), "FF");
        assert_eq!(show(f(Func::Hex, vec![t("abc")])), "616263");
        assert_eq!(show(f(Func::FindInSet, vec![t("b"), t("a,b,c")])), "2");
    }

    #[test]
    fn inet_functions() {
        assert_eq!(show(f(Func::InetAton, vec![t("10.0.5.9")])), "167773449");
        assert_eq!(show(f(Func::InetAton, vec![t("127.1")])), "2130706433");
        assert_eq!(show(f(Func::InetAton, vec![t("1.2.3.256")])), "NULL");
        assert_eq!(show(f(Func::InetNtoa, vec![Value::Int(167_773_449)])), "10.0.5.9");
    }

    #[test]
    fn date_functions() {
        let dt = Value::DateTime(parse_datetime("2024-01-31 10:00:00").unwrap());
        assert_eq!(show(f(Func::DateAdd, vec![dt.clone(), Value::Int(1), t("MONTH")])), "2024-02-29 10:00:00");
        assert_eq!(show(f(Func::DateSub, vec![dt.clone(), Value::Int(5), t("MINUTE")])), "2024-01-31 09:55:00");
        assert_eq!(show(f(Func::DateDiff, vec![t("2024-03-01"), t("2024-02-01")])), "29");
        assert_eq!(show(f(Func::TimestampDiff, vec![t("MONTH"), t("2024-01-31"), t("2024-02-29")])), "0");
        assert_eq!(show(f(Func::TimestampDiff, vec![t("SECOND"), t("2024-01-01 00:00:00"), t("2024-01-01 00:05:00")])), "300");
        assert_eq!(show(f(Func::DateFormat, vec![dt.clone(), t("%Y/%m/%d %H:%i %W %b")])), "2024/01/31 10:00 Wednesday Jan");
        assert_eq!(show(f(Func::UnixTimestamp, vec![t("1970-01-02 00:00:00")])), "86400");
        assert_eq!(show(f(Func::FromUnixtime, vec![Value::Int(86_400)])), "1970-01-02 00:00:00");
        assert_eq!(show(f(Func::LastDay, vec![t("2024-02-10")])), "2024-02-29");
    }

    #[test]
    fn numeric_functions() {
        assert_eq!(show(f(Func::Round, vec![Value::Decimal(Decimal::parse("2.5").unwrap())])), "3");
        assert_eq!(show(f(Func::Round, vec![Value::Decimal(Decimal::parse("1.298").unwrap()), Value::Int(1)])), "1.3");
        assert_eq!(show(f(Func::Round, vec![Value::Int(1234), Value::Int(-2)])), "1200");
        assert_eq!(show(f(Func::Truncate, vec![Value::Decimal(Decimal::parse("1.999").unwrap()), Value::Int(1)])), "1.9");
        assert_eq!(show(f(Func::Floor, vec![Value::Decimal(Decimal::parse("-1.5").unwrap())])), "-2");
        assert_eq!(show(f(Func::Greatest, vec![Value::Int(1), Value::Int(3), Value::Int(2)])), "3");
        assert_eq!(show(f(Func::Mod, vec![Value::Int(10), Value::Int(3)])), "1");
        assert_eq!(show(f(Func::Crc32, vec![t("MySQL")])), "3259397556");
        // Test vectors of RFC 1321 and FIPS 180.
        assert_eq!(show(f(Func::Md5, vec![t("")])), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(show(f(Func::Md5, vec![t("The quick brown fox jumps over the lazy dog")])), "9e107d9d372bb6826bd81d3542a419d6");
        assert_eq!(show(f(Func::Sha1, vec![t("abc")])), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            show(f(Func::Sha2, vec![t("abc"), Value::Int(256)])),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(show(f(Func::Sha2, vec![t("abc"), Value::Int(7)])), "NULL");
    }

    #[test]
    fn lazy_control_flow() {
        // IF must not evaluate the branch it does not take (here a division by zero in strict mode).
        let div = Expr::Arith { op: crate::expr::ArithOp::Div, left: Box::new(Expr::Literal(Value::Int(1))), right: Box::new(Expr::Literal(Value::Int(0))) };
        let e = [Expr::Literal(Value::Int(1)), Expr::Literal(Value::Int(7)), div];
        let mut ctx = EvalContext::detached();
        ctx.strict = true;
        assert_eq!(show(call(Func::If, &e, &[], &mut ctx).unwrap()), "7");
    }

    #[test]
    fn names_and_arity() {
        assert_eq!(Func::from_name("lcase"), Some(Func::Lower));
        assert_eq!(Func::from_name("nope"), None);
        assert!(Func::Concat.check_arity(0).is_err());
        assert!(Func::Now.needs_session());
        assert!(!Func::Lower.needs_session());
    }
}
