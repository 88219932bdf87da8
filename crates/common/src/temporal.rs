//! Dates, times and datetimes as MySQL has them.
//!
//! Values are kept as their calendar fields, not as instants, because MySQL allows
//! values no instant has: the zero date `0000-00-00`, and (for `TIME`) durations beyond a
//! day. `TIMESTAMP` columns store seconds since the Unix epoch in UTC and convert through
//! the session time zone, which Cairn supports as a fixed offset (`+00:00`, `SYSTEM` = UTC).

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DateTime {
    pub date: Date,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micros: u32,
}

/// A `TIME` value: a signed duration of up to 838:59:59.999999.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Time {
    pub negative: bool,
    pub hours: u16,
    pub minute: u8,
    pub second: u8,
    pub micros: u32,
}

pub const MAX_TIME_HOURS: u16 = 838;

pub fn is_leap_year(year: u16) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

pub fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

impl Date {
    pub const ZERO: Date = Date { year: 0, month: 0, day: 0 };

    /// A checked date; the zero date is allowed, other zero parts are not.
    pub fn new(year: u16, month: u8, day: u8) -> Option<Date> {
        let date = Date { year, month, day };
        if date == Date::ZERO {
            return Some(date);
        }
        (year <= 9999 && (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month))
            .then_some(date)
    }

    pub fn is_zero(self) -> bool {
        self == Date::ZERO
    }

    /// Days since 1970-01-01 (negative before). The zero date has none.
    pub fn to_days(self) -> Option<i64> {
        if self.is_zero() {
            return None;
        }
        Some(days_from_civil(self.year as i64, self.month as i64, self.day as i64))
    }

    pub fn from_days(days: i64) -> Option<Date> {
        let (y, m, d) = civil_from_days(days);
        if !(0..=9999).contains(&y) {
            return None;
        }
        Date::new(y as u16, m as u8, d as u8)
    }

    /// Day number as MySQL's TO_DAYS (days since year 0).
    pub fn to_mysql_daynr(self) -> Option<i64> {
        self.to_days().map(|d| d + 719_528)
    }

    /// 1 = Sunday … 7 = Saturday (DAYOFWEEK).
    pub fn day_of_week(self) -> Option<u8> {
        // 1970-01-01 was a Thursday (DAYOFWEEK 5).
        self.to_days().map(|d| ((d + 4).rem_euclid(7) + 1) as u8)
    }

    pub fn day_of_year(self) -> Option<u16> {
        let start = Date { year: self.year, month: 1, day: 1 }.to_days()?;
        Some((self.to_days()? - start + 1) as u16)
    }
}

impl DateTime {
    pub const ZERO: DateTime = DateTime { date: Date::ZERO, hour: 0, minute: 0, second: 0, micros: 0 };

    pub fn new(date: Date, hour: u8, minute: u8, second: u8, micros: u32) -> Option<DateTime> {
        (hour < 24 && minute < 60 && second < 60 && micros < 1_000_000)
            .then_some(DateTime { date, hour, minute, second, micros })
    }

    pub fn from_date(date: Date) -> DateTime {
        DateTime { date, hour: 0, minute: 0, second: 0, micros: 0 }
    }

    /// Seconds since the Unix epoch, reading the fields as UTC. None for the zero date.
    pub fn to_unix_seconds(self) -> Option<i64> {
        let days = self.date.to_days()?;
        Some(days * 86_400 + self.hour as i64 * 3600 + self.minute as i64 * 60 + self.second as i64)
    }

    pub fn from_unix_seconds(seconds: i64, micros: u32) -> Option<DateTime> {
        let days = seconds.div_euclid(86_400);
        let in_day = seconds.rem_euclid(86_400);
        let date = Date::from_days(days)?;
        DateTime::new(date, (in_day / 3600) as u8, (in_day / 60 % 60) as u8, (in_day % 60) as u8, micros)
    }

    /// Microseconds since the epoch (UTC reading), for arithmetic.
    pub fn to_unix_micros(self) -> Option<i64> {
        Some(self.to_unix_seconds()? * 1_000_000 + self.micros as i64)
    }

    pub fn from_unix_micros(micros: i64) -> Option<DateTime> {
        DateTime::from_unix_seconds(micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000) as u32)
    }

    /// Rounds the fractional part to `fsp` digits (MySQL rounds when storing).
    pub fn round_to_fsp(self, fsp: u8) -> Option<DateTime> {
        let unit = 10u32.pow(6 - fsp.min(6) as u32);
        let rounded = (self.micros + unit / 2) / unit * unit;
        if rounded < 1_000_000 {
            return Some(DateTime { micros: rounded, ..self });
        }
        if self.date.is_zero() {
            return Some(DateTime { micros: 0, ..self });
        }
        DateTime::from_unix_micros(self.to_unix_micros()? - self.micros as i64 + 1_000_000)
    }

    pub fn time_of_day(self) -> Time {
        Time { negative: false, hours: self.hour as u16, minute: self.minute, second: self.second, micros: self.micros }
    }
}

impl Time {
    pub const ZERO: Time = Time { negative: false, hours: 0, minute: 0, second: 0, micros: 0 };

    pub fn from_micros(total: i64) -> Option<Time> {
        let negative = total < 0;
        let magnitude = total.unsigned_abs();
        let hours = magnitude / 3_600_000_000;
        if hours > MAX_TIME_HOURS as u64 {
            return None;
        }
        Some(Time {
            negative: negative && magnitude != 0,
            hours: hours as u16,
            minute: (magnitude / 60_000_000 % 60) as u8,
            second: (magnitude / 1_000_000 % 60) as u8,
            micros: (magnitude % 1_000_000) as u32,
        })
    }

    pub fn to_micros(self) -> i64 {
        let magnitude = ((self.hours as i64 * 60 + self.minute as i64) * 60 + self.second as i64) * 1_000_000
            + self.micros as i64;
        if self.negative { -magnitude } else { magnitude }
    }
}

impl PartialOrd for Time {
    fn partial_cmp(&self, other: &Time) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Time {
    fn cmp(&self, other: &Time) -> Ordering {
        self.to_micros().cmp(&other.to_micros())
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u32, |acc, b| acc.checked_mul(10)?.checked_add((b - b'0') as u32))
}

/// Two-digit years as MySQL reads them: 70-99 are 1970-1999, 00-69 are 2000-2069.
fn expand_year(year: u32, width: usize) -> u32 {
    if width <= 2 { if year < 70 { 2000 + year } else { 1900 + year } } else { year }
}

fn parse_micros(frac: &[u8]) -> Option<u32> {
    if frac.is_empty() {
        return Some(0);
    }
    if !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Keep six digits; round on the seventh.
    let mut micros = 0u32;
    for i in 0..6 {
        micros = micros * 10 + frac.get(i).map_or(0, |b| (b - b'0') as u32);
    }
    if frac.get(6).is_some_and(|b| *b >= b'5') {
        micros += 1;
    }
    Some(micros.min(999_999))
}

/// Parses `YYYY-MM-DD`, `YY-MM-DD`, `YYYYMMDD`, `YYMMDD`, with any punctuation as separator.
pub fn parse_date(text: &str) -> Option<Date> {
    // A datetime string given where a date is wanted keeps its date part, as MySQL does.
    parse_datetime(text).map(|dt| dt.date)
}

/// Parses the datetime forms MySQL accepts: `YYYY-MM-DD[ T]HH:MM:SS[.ffffff]`, with any
/// punctuation as delimiter and optional time part, or the delimiter-free forms
/// `YYYYMMDD[HHMMSS[.ffffff]]` and `YYMMDD[HHMMSS]`.
pub fn parse_datetime(text: &str) -> Option<DateTime> {
    let s = text.trim().as_bytes();
    if s.is_empty() {
        return None;
    }
    if s.iter().all(|b| b.is_ascii_digit() || *b == b'.') && !s.contains(&b'-') {
        return parse_compact_datetime(s);
    }
    // Split into numeric fields on any non-digit; the date/time separator may be ' ' or 'T'.
    let mut fields: Vec<&[u8]> = Vec::with_capacity(7);
    let mut frac: &[u8] = &[];
    let mut i = 0;
    while i < s.len() {
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return None;
        }
        fields.push(&s[start..i]);
        if i == s.len() {
            break;
        }
        let sep = s[i];
        if sep == b'.' && fields.len() == 6 {
            frac = &s[i + 1..];
            break;
        }
        if sep.is_ascii_alphanumeric() && sep != b'T' {
            return None;
        }
        i += 1;
        // Collapse runs of spaces between date and time.
        while i < s.len() && s[i] == b' ' && fields.len() == 3 {
            i += 1;
        }
    }
    if fields.len() != 3 && fields.len() != 5 && fields.len() != 6 {
        return None;
    }
    let year = expand_year(digits(fields[0])?, fields[0].len());
    let month = digits(fields[1])?;
    let day = digits(fields[2])?;
    let hour = fields.get(3).map_or(Some(0), |f| digits(f))?;
    let minute = fields.get(4).map_or(Some(0), |f| digits(f))?;
    let second = fields.get(5).map_or(Some(0), |f| digits(f))?;
    if year > 9999 || month > 255 || day > 255 || hour > 255 || minute > 255 || second > 255 {
        return None;
    }
    let date = Date::new(year as u16, month as u8, day as u8)?;
    DateTime::new(date, hour as u8, minute as u8, second as u8, parse_micros(frac)?)
}

fn parse_compact_datetime(s: &[u8]) -> Option<DateTime> {
    let (main, frac) = match s.iter().position(|b| *b == b'.') {
        Some(at) => (&s[..at], &s[at + 1..]),
        None => (s, &[][..]),
    };
    let (year_len, has_time) = match main.len() {
        6 => (2, false),
        8 => (4, false),
        12 => (2, true),
        14 => (4, true),
        _ => return None,
    };
    let year = expand_year(digits(&main[..year_len])?, year_len);
    let rest = &main[year_len..];
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let (hour, minute, second) = if has_time {
        (digits(&rest[4..6])?, digits(&rest[6..8])?, digits(&rest[8..10])?)
    } else {
        (0, 0, 0)
    };
    let date = Date::new(year as u16, month as u8, day as u8)?;
    DateTime::new(date, hour as u8, minute as u8, second as u8, parse_micros(frac)?)
}

/// Parses `[-][D ]HH:MM:SS[.ffffff]`, `HH:MM`, `SS`, and `HHMMSS` forms.
pub fn parse_time(text: &str) -> Option<Time> {
    let s = text.trim();
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (main, frac) = match s.find('.') {
        Some(at) => (&s[..at], &s[at + 1..]),
        None => (s, ""),
    };
    let micros = parse_micros(frac.as_bytes())? as i64;
    let (days, clock) = match main.split_once(' ') {
        Some((d, c)) => (digits(d.as_bytes())? as i64, c),
        None => (0, main),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    let (h, m, sec) = match parts.as_slice() {
        [h, m, s] => (digits(h.as_bytes())?, digits(m.as_bytes())?, digits(s.as_bytes())?),
        [h, m] => (digits(h.as_bytes())?, digits(m.as_bytes())?, 0),
        [compact] => {
            let n = digits(compact.as_bytes())?;
            (n / 10_000, n / 100 % 100, n % 100)
        }
        _ => return None,
    };
    if m >= 60 || sec >= 60 {
        return None;
    }
    let total = (((days * 24 + h as i64) * 60 + m as i64) * 60 + sec as i64) * 1_000_000 + micros;
    Time::from_micros(if negative { -total } else { total })
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Formats the fractional seconds with `fsp` digits (0 = none).
pub fn write_fraction(f: &mut impl fmt::Write, micros: u32, fsp: u8) -> fmt::Result {
    if fsp == 0 {
        return Ok(());
    }
    let fsp = fsp.min(6);
    let value = micros / 10u32.pow(6 - fsp as u32);
    write!(f, ".{:0width$}", value, width = fsp as usize)
}

impl DateTime {
    /// Formats with `fsp` fractional digits, as a `DATETIME(fsp)` column shows.
    pub fn format(&self, fsp: u8) -> String {
        let mut out = format!(
            "{} {:02}:{:02}:{:02}",
            self.date, self.hour, self.minute, self.second
        );
        let _ = write_fraction(&mut out, self.micros, fsp);
        out
    }
}

impl fmt::Display for DateTime {
    /// Without a column type at hand, shows microseconds only when there are any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format(if self.micros == 0 { 0 } else { 6 }))
    }
}

impl Time {
    pub fn format(&self, fsp: u8) -> String {
        let mut out = format!(
            "{}{:02}:{:02}:{:02}",
            if self.negative { "-" } else { "" },
            self.hours,
            self.minute,
            self.second
        );
        let _ = write_fraction(&mut out, self.micros, fsp);
        out
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format(if self.micros == 0 { 0 } else { 6 }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let dt = parse_datetime("2024-02-29 13:05:09.25").unwrap();
        assert_eq!(dt.format(2), "2024-02-29 13:05:09.25");
        assert_eq!(parse_datetime("2024-02-29T13:05:09").unwrap().format(0), "2024-02-29 13:05:09");
        assert_eq!(parse_datetime("20240229130509").unwrap().format(0), "2024-02-29 13:05:09");
        assert_eq!(parse_datetime("99-12-31").unwrap().format(0), "1999-12-31 00:00:00");
        assert_eq!(parse_datetime("0000-00-00 00:00:00").unwrap(), DateTime::ZERO);
        assert_eq!(parse_date("2024/1/5").unwrap().to_string(), "2024-01-05");
        assert!(parse_datetime("2023-02-29").is_none(), "not a leap year");
        assert!(parse_datetime("2024-13-01").is_none());
        assert!(parse_datetime("hello").is_none());
        assert!(parse_datetime("2024-01-01 25:00:00").is_none());
    }

    #[test]
    fn epoch_conversions_round_trip() {
        let dt = parse_datetime("2038-01-19 03:14:07").unwrap();
        assert_eq!(dt.to_unix_seconds(), Some(2_147_483_647));
        assert_eq!(DateTime::from_unix_seconds(0, 0).unwrap().format(0), "1970-01-01 00:00:00");
        for days in [-719_528i64, -1, 0, 1, 11_016, 2_932_896] {
            let date = Date::from_days(days).unwrap();
            assert_eq!(date.to_days(), Some(days));
        }
        assert_eq!(parse_date("2024-03-10").unwrap().day_of_week(), Some(1), "a Sunday");
    }

    #[test]
    fn time_values() {
        assert_eq!(parse_time("-838:59:59").unwrap().format(0), "-838:59:59");
        assert!(parse_time("839:00:00").is_none());
        assert_eq!(parse_time("1 02:03:04.5").unwrap().format(1), "26:03:04.5");
        assert_eq!(parse_time("123456").unwrap().format(0), "12:34:56");
    }

    #[test]
    fn fsp_rounding_carries() {
        let dt = parse_datetime("2024-12-31 23:59:59.9999996").unwrap();
        assert_eq!(dt.micros, 999_999, "seven digits round within the micro range");
        let dt = parse_datetime("2024-12-31 23:59:59.96").unwrap();
        assert_eq!(dt.round_to_fsp(1).unwrap().format(1), "2025-01-01 00:00:00.0");
    }
}
