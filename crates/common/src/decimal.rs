//! Fixed-point decimals for `DECIMAL(p, s)` columns and exact arithmetic.
//!
//! A [`Decimal`] is an `i128` mantissa and a scale (digits after the point), so
//! `12.50` is `(1250, 2)`. That covers 38 significant digits; MySQL allows 65, and
//! Cairn refuses `DECIMAL` precisions above 38 at `CREATE TABLE` with a clear error
//! rather than storing something it cannot compute with exactly.
//!
//! Rounding is MySQL's: half away from zero.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Most significant digits a decimal holds.
pub const MAX_PRECISION: u8 = 38;
/// Most digits after the point.
pub const MAX_SCALE: u8 = 30;

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Decimal {
    mantissa: i128,
    scale: u8,
}

const POW10: [i128; 39] = {
    let mut table = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

fn pow10(n: u32) -> Option<i128> {
    POW10.get(n as usize).copied()
}

impl Decimal {
    pub const ZERO: Decimal = Decimal { mantissa: 0, scale: 0 };

    pub fn new(mantissa: i128, scale: u8) -> Option<Decimal> {
        (scale <= MAX_SCALE).then_some(Decimal { mantissa, scale })
    }

    pub fn from_i64(v: i64) -> Decimal {
        Decimal { mantissa: v as i128, scale: 0 }
    }

    pub fn from_u64(v: u64) -> Decimal {
        Decimal { mantissa: v as i128, scale: 0 }
    }

    pub fn mantissa(self) -> i128 {
        self.mantissa
    }

    pub fn scale(self) -> u8 {
        self.scale
    }

    pub fn is_zero(self) -> bool {
        self.mantissa == 0
    }

    pub fn is_negative(self) -> bool {
        self.mantissa < 0
    }

    /// Number of digits before the point (at least 1 for display purposes is not implied:
    /// `0.5` has 0 integer digits).
    pub fn integer_digits(self) -> u32 {
        let int = (self.mantissa / POW10[self.scale as usize]).unsigned_abs();
        if int == 0 { 0 } else { int.ilog10() + 1 }
    }

    /// Parses the text form of a decimal: optional sign, digits, optional point and digits,
    /// optional exponent. Leading/trailing spaces are ignored. Returns None for anything else
    /// or for values beyond 38 digits.
    pub fn parse(text: &str) -> Option<Decimal> {
        let s = text.trim();
        let (negative, s) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let (number, exponent) = match s.find(['e', 'E']) {
            Some(at) => (&s[..at], s[at + 1..].parse::<i32>().ok()?),
            None => (s, 0),
        };
        let (int_part, frac_part) = match number.find('.') {
            Some(at) => (&number[..at], &number[at + 1..]),
            None => (number, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        if !int_part.bytes().chain(frac_part.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut mantissa: i128 = 0;
        let mut digits = 0u32;
        for b in int_part.bytes().chain(frac_part.bytes()) {
            if digits == 0 && b == b'0' {
                continue; // leading zeros do not count toward precision
            }
            mantissa = mantissa.checked_mul(10)?.checked_add((b - b'0') as i128)?;
            digits += 1;
            if digits > MAX_PRECISION as u32 {
                return None;
            }
        }
        let mut scale = frac_part.len() as i32 - exponent;
        if scale < 0 {
            mantissa = mantissa.checked_mul(pow10((-scale) as u32)?)?;
            scale = 0;
        }
        let mut d = Decimal { mantissa: if negative { -mantissa } else { mantissa }, scale: 0 };
        if scale > MAX_SCALE as i32 {
            // Too many fractional digits: round to the largest scale we keep.
            let drop = (scale - MAX_SCALE as i32) as u32;
            d.mantissa = div_round(d.mantissa, pow10(drop)?);
            scale = MAX_SCALE as i32;
        }
        d.scale = scale as u8;
        Some(d)
    }

    /// The same value at another scale, rounding half away from zero when digits are dropped.
    /// None if the result does not fit.
    pub fn rescale(self, scale: u8) -> Option<Decimal> {
        if scale > MAX_SCALE {
            return None;
        }
        let mantissa = match scale.cmp(&self.scale) {
            Ordering::Equal => self.mantissa,
            Ordering::Greater => self.mantissa.checked_mul(pow10((scale - self.scale) as u32)?)?,
            Ordering::Less => div_round(self.mantissa, pow10((self.scale - scale) as u32)?),
        };
        Some(Decimal { mantissa, scale })
    }

    /// Whether the value fits `DECIMAL(precision, scale)` once rescaled to `scale`.
    pub fn fits(self, precision: u8, scale: u8) -> bool {
        match self.rescale(scale) {
            Some(d) => d.mantissa.unsigned_abs() < POW10[precision as usize] as u128,
            None => false,
        }
    }

    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale.max(other.scale);
        let a = self.rescale(scale)?;
        let b = other.rescale(scale)?;
        Some(Decimal { mantissa: a.mantissa.checked_add(b.mantissa)?, scale }).filter(Decimal::in_range)
    }

    pub fn checked_sub(self, other: Decimal) -> Option<Decimal> {
        self.checked_add(other.negate())
    }

    pub fn checked_mul(self, other: Decimal) -> Option<Decimal> {
        let mut scale = self.scale as u32 + other.scale as u32;
        let mut mantissa = self.mantissa.checked_mul(other.mantissa)?;
        if scale > MAX_SCALE as u32 {
            mantissa = div_round(mantissa, pow10(scale - MAX_SCALE as u32)?);
            scale = MAX_SCALE as u32;
        }
        Some(Decimal { mantissa, scale: scale as u8 }).filter(Decimal::in_range)
    }

    /// Division as MySQL does it: the result gets `extra_scale` (div_precision_increment, 4 by
    /// default) more digits than the dividend. None on division by zero or overflow.
    pub fn checked_div(self, other: Decimal, extra_scale: u8) -> Option<Decimal> {
        if other.mantissa == 0 {
            return None;
        }
        let scale = (self.scale + extra_scale).min(MAX_SCALE);
        // self / other = (m1 / 10^s1) / (m2 / 10^s2); we want the mantissa at `scale`:
        // m1 * 10^(scale - s1 + s2) / m2.
        let shift = scale as i32 - self.scale as i32 + other.scale as i32;
        let (numerator, denominator) = if shift >= 0 {
            (self.mantissa.checked_mul(pow10(shift as u32)?)?, other.mantissa)
        } else {
            (self.mantissa, other.mantissa.checked_mul(pow10((-shift) as u32)?)?)
        };
        Some(Decimal { mantissa: div_round(numerator, denominator), scale }).filter(Decimal::in_range)
    }

    /// Remainder with the sign of the dividend, as MySQL's `%`.
    pub fn checked_rem(self, other: Decimal) -> Option<Decimal> {
        if other.mantissa == 0 {
            return None;
        }
        let scale = self.scale.max(other.scale);
        let a = self.rescale(scale)?;
        let b = other.rescale(scale)?;
        Some(Decimal { mantissa: a.mantissa % b.mantissa, scale })
    }

    pub fn negate(self) -> Decimal {
        Decimal { mantissa: -self.mantissa, scale: self.scale }
    }

    pub fn abs(self) -> Decimal {
        Decimal { mantissa: self.mantissa.abs(), scale: self.scale }
    }

    /// Rounds to `digits` after the point (negative rounds left of it), half away from zero;
    /// the result keeps `max(digits, 0)` as its scale.
    pub fn round(self, digits: i32) -> Option<Decimal> {
        if digits >= self.scale as i32 {
            return Some(self);
        }
        if digits >= 0 {
            return self.rescale(digits as u8);
        }
        let unit = pow10((self.scale as i32 - digits) as u32)?;
        let rounded = div_round(self.mantissa, unit).checked_mul(pow10((-digits) as u32)?)?;
        Some(Decimal { mantissa: rounded, scale: 0 })
    }

    /// Truncates toward zero to `digits` after the point.
    pub fn truncate(self, digits: u8) -> Decimal {
        if digits >= self.scale {
            return self;
        }
        let unit = POW10[(self.scale - digits) as usize];
        Decimal { mantissa: self.mantissa / unit, scale: digits }
    }

    pub fn floor(self) -> Decimal {
        let unit = POW10[self.scale as usize];
        Decimal { mantissa: self.mantissa.div_euclid(unit), scale: 0 }
    }

    pub fn ceil(self) -> Decimal {
        let unit = POW10[self.scale as usize];
        let q = self.mantissa.div_euclid(unit);
        let mantissa = if self.mantissa.rem_euclid(unit) == 0 { q } else { q + 1 };
        Decimal { mantissa, scale: 0 }
    }

    pub fn to_f64(self) -> f64 {
        // Going through the text form gives the correctly rounded double.
        self.to_string().parse().unwrap_or(f64::NAN)
    }

    /// Converts a double, keeping up to 17 significant digits (as MySQL does for DOUBLE to
    /// DECIMAL). None for NaN, infinities and values beyond 38 digits.
    pub fn from_f64(v: f64) -> Option<Decimal> {
        if !v.is_finite() {
            return None;
        }
        Decimal::parse(&format!("{v:e}"))
    }

    /// The integer part, rounded half away from zero as MySQL does when a decimal is stored in
    /// an integer column. None if it does not fit an i128 (it always does) — kept for symmetry.
    pub fn round_to_i128(self) -> i128 {
        div_round(self.mantissa, POW10[self.scale as usize])
    }

    fn in_range(&self) -> bool {
        self.mantissa.unsigned_abs() < POW10[MAX_PRECISION as usize] as u128
    }

    /// Magnitude split into integer part and fraction scaled to MAX_SCALE digits, for comparing
    /// decimals of different scales without overflow.
    fn parts(self) -> (u128, u128) {
        let unit = POW10[self.scale as usize] as u128;
        let magnitude = self.mantissa.unsigned_abs();
        let frac = (magnitude % unit) * POW10[(MAX_SCALE - self.scale) as usize] as u128;
        (magnitude / unit, frac)
    }
}

/// Integer division rounding half away from zero.
fn div_round(numerator: i128, denominator: i128) -> i128 {
    let q = numerator / denominator;
    let r = numerator % denominator;
    if r.unsigned_abs() * 2 >= denominator.unsigned_abs() {
        if (numerator < 0) != (denominator < 0) { q - 1 } else { q + 1 }
    } else {
        q
    }
}

impl Default for Decimal {
    fn default() -> Decimal {
        Decimal::ZERO
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Decimal) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Decimal) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Decimal) -> Ordering {
        let sign = |d: &Decimal| d.mantissa.signum();
        match sign(self).cmp(&sign(other)) {
            Ordering::Equal => {}
            unequal => return unequal,
        }
        let by_magnitude = self.parts().cmp(&other.parts());
        if self.mantissa < 0 { by_magnitude.reverse() } else { by_magnitude }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let magnitude = self.mantissa.unsigned_abs();
        let unit = POW10[self.scale as usize] as u128;
        if self.mantissa < 0 {
            f.write_str("-")?;
        }
        write!(f, "{}", magnitude / unit)?;
        if self.scale > 0 {
            write!(f, ".{:0width$}", magnitude % unit, width = self.scale as usize)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap_or_else(|| panic!("parse {s}"))
    }

    #[test]
    fn parse_and_display_round_trip() {
        for s in ["0", "1", "-1", "12.50", "-0.001", "99999999999999999999999999999999999999", "0.000000000000000000000000000001"] {
            assert_eq!(d(s).to_string(), s);
        }
        assert_eq!(d("+.5").to_string(), "0.5");
        assert_eq!(d("1.5e2").to_string(), "150");
        assert_eq!(d("15e-1").to_string(), "1.5");
        assert!(Decimal::parse("1.2.3").is_none());
        assert!(Decimal::parse("").is_none());
        assert!(Decimal::parse("-").is_none());
        assert!(Decimal::parse("123456789012345678901234567890123456789").is_none());
    }

    #[test]
    fn arithmetic_follows_mysql_scales() {
        assert_eq!(d("1.10").checked_add(d("2.205")).unwrap().to_string(), "3.305");
        assert_eq!(d("1.5").checked_mul(d("1.5")).unwrap().to_string(), "2.25");
        assert_eq!(d("1").checked_div(d("3"), 4).unwrap().to_string(), "0.3333");
        assert_eq!(d("2").checked_div(d("3"), 4).unwrap().to_string(), "0.6667");
        assert_eq!(d("-2").checked_div(d("3"), 4).unwrap().to_string(), "-0.6667");
        assert!(d("1").checked_div(d("0"), 4).is_none());
        assert_eq!(d("-7.5").checked_rem(d("2")).unwrap().to_string(), "-1.5");
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(d("2.5").rescale(0).unwrap().to_string(), "3");
        assert_eq!(d("-2.5").rescale(0).unwrap().to_string(), "-3");
        assert_eq!(d("2.45").rescale(1).unwrap().to_string(), "2.5");
        assert_eq!(d("1234.5").round(-2).unwrap().to_string(), "1200");
        assert_eq!(d("-1.5").floor().to_string(), "-2");
        assert_eq!(d("-1.5").ceil().to_string(), "-1");
        assert_eq!(d("1.01").ceil().to_string(), "2");
    }

    #[test]
    fn comparison_across_scales() {
        assert_eq!(d("1.0"), d("1"));
        assert!(d("1.01") > d("1.001"));
        assert!(d("-1.01") < d("-1.001"));
        assert!(d("-0.5") < d("0"));
        assert!(d("99999999999999999999999999999999999999") > d("0.000000000000000000000000000001"));
    }

    #[test]
    fn fits_precision() {
        assert!(d("999.99").fits(5, 2));
        assert!(!d("1000.00").fits(5, 2));
        assert!(d("999.994").fits(5, 2));
        assert!(!d("999.995").fits(5, 2));
    }
}
