//! The packed row format: how a row sits in a data node's memory, in the Raft log and on the
//! wire between SQL and data nodes.
//!
//! ```text
//! [format: u8][null bitmap: one bit per nullable column][fixed part][var part]
//! ```
//!
//! - Fixed-width columns (integers, decimals, floats, temporals, BINARY(n), ENUM) sit at fixed
//!   offsets in column order, taking their width and no more: INT 4 bytes, DATE 3, DATETIME 5
//!   (+3 with fractional seconds). A NULL fixed column still takes its width (zeroed) so that
//!   every offset stays fixed and one column decodes without walking the row.
//! - Variable-length columns (CHAR, VARCHAR, TEXT, BLOB) follow in column order, each a LEB128
//!   length and the bytes; a NULL one takes nothing.
//! - The format byte names the table's layout version. An online ALTER TABLE that changes
//!   columns gives the table a new layout with the next format number; a [`RowLayout`] keeps
//!   the layouts of the table's earlier formats ([`OlderLayout`]) with where each current column
//!   comes from, so a row stored before the change decodes into the current columns: an added
//!   column reads as its default, a dropped one is skipped, a retyped one is converted with
//!   MySQL's store-assignment rules (`crate::coerce`). Rows are never rewritten by a change.
//!
//! Every byte counts: a row of an INT key, a 20-character VARCHAR and a DATETIME takes
//! 1 + 1 + 4 + 5 + 21 = 32 bytes.

use serde::{Deserialize, Serialize};

use crate::decimal::Decimal;
use crate::error::{Error, Result};
use crate::temporal::{Date, DateTime, Time};
use crate::types::ColumnType;
use crate::value::Value;

/// Largest encoded row Cairn stores (BLOB and TEXT live inline, up to this).
pub const MAX_ROW_BYTES: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Slot {
    Fixed { offset: usize, width: usize },
    Var { ordinal: usize },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ColumnSlot {
    ty: ColumnType,
    /// Bit in the null bitmap, if the column is nullable.
    null_bit: Option<usize>,
    slot: Slot,
}

/// How the columns of one table (or one projection) lie in a packed row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowLayout {
    columns: Vec<ColumnSlot>,
    format: u8,
    null_bytes: usize,
    /// Offset where the var part begins.
    fixed_end: usize,
    /// Earlier layouts of the same table whose rows may still be stored (empty for a table
    /// never altered and for projections).
    #[serde(default)]
    older: Vec<OlderLayout>,
}

/// Where a column of the current layout takes its value from in a row of an older layout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ColumnSource {
    /// Column `column` of the older layout; `convert`: its type differs, so the value goes
    /// through store assignment to the current type.
    Column { column: usize, convert: bool },
    /// The column did not exist then: this value (its default when it was added).
    Value(Value),
}

/// An earlier layout of a table and how its rows map onto the current columns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OlderLayout {
    pub format: u8,
    pub columns: Vec<(ColumnType, bool)>,
    /// One entry per column of the current layout.
    pub sources: Vec<ColumnSource>,
}

fn decimal_width(precision: u8) -> usize {
    match precision {
        0..=2 => 1,
        3..=4 => 2,
        5..=6 => 3,
        7..=9 => 4,
        10..=18 => 8,
        _ => 16,
    }
}

/// Width in the fixed part, or None for a variable-length type.
fn fixed_width(ty: &ColumnType) -> Option<usize> {
    Some(match ty {
        ColumnType::Int { width, .. } => width.bytes(),
        ColumnType::Decimal { precision, .. } => decimal_width(*precision),
        ColumnType::Float => 4,
        ColumnType::Double => 8,
        ColumnType::Char { length, binary: true } => *length as usize,
        ColumnType::Date => 3,
        ColumnType::DateTime { fsp } => 5 + if *fsp > 0 { 3 } else { 0 },
        ColumnType::Timestamp { fsp } => 4 + if *fsp > 0 { 3 } else { 0 },
        ColumnType::Time { fsp } => 3 + if *fsp > 0 { 3 } else { 0 },
        ColumnType::Year => 1,
        ColumnType::Enum { values } => if values.len() < 256 { 1 } else { 2 },
        ColumnType::Set { values } => crate::set_value::storage_bytes(values.len()),
        ColumnType::Char { binary: false, .. } | ColumnType::VarChar { .. } | ColumnType::Lob { .. } => return None,
    })
}

fn corrupt(what: &str) -> Error {
    Error::internal(format!("corrupt row: {what}"))
}

fn put_uint(out: &mut [u8], v: u64, width: usize) {
    out[..width].copy_from_slice(&v.to_le_bytes()[..width]);
}

fn get_uint(b: &[u8], width: usize) -> u64 {
    let mut buf = [0u8; 8];
    buf[..width].copy_from_slice(&b[..width]);
    u64::from_le_bytes(buf)
}

fn get_int(b: &[u8], width: usize) -> i64 {
    let raw = get_uint(b, width);
    let shift = 64 - 8 * width as u32;
    ((raw << shift) as i64) >> shift
}

pub fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a LEB128 integer; returns the value and the bytes it took.
pub fn read_varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn pack_date(d: Date) -> u64 {
    (d.year as u64 * 13 + d.month as u64) * 32 + d.day as u64
}

fn unpack_date(v: u64) -> Option<Date> {
    let day = (v % 32) as u8;
    let ym = v / 32;
    let month = (ym % 13) as u8;
    let year = u16::try_from(ym / 13).ok()?;
    Date::new(year, month, day)
}

fn pack_datetime_seconds(dt: DateTime) -> u64 {
    ((pack_date(dt.date) * 24 + dt.hour as u64) * 60 + dt.minute as u64) * 60 + dt.second as u64
}

fn unpack_datetime(v: u64, micros: u32) -> Option<DateTime> {
    let second = (v % 60) as u8;
    let minute = (v / 60 % 60) as u8;
    let hour = (v / 3600 % 24) as u8;
    let date = unpack_date(v / 86_400)?;
    DateTime::new(date, hour, minute, second, micros)
}

impl RowLayout {
    /// A layout for columns of these types and nullabilities, in this order.
    pub fn new(columns: Vec<(ColumnType, bool)>) -> RowLayout {
        RowLayout::with_format(columns, 0)
    }

    pub fn with_format(columns: Vec<(ColumnType, bool)>, format: u8) -> RowLayout {
        let nullable = columns.iter().filter(|(_, n)| *n).count();
        let null_bytes = nullable.div_ceil(8);
        let mut offset = 1 + null_bytes;
        let mut next_null = 0;
        let mut next_var = 0;
        let columns = columns
            .into_iter()
            .map(|(ty, is_nullable)| {
                let null_bit = is_nullable.then(|| {
                    next_null += 1;
                    next_null - 1
                });
                let slot = match fixed_width(&ty) {
                    Some(width) => {
                        offset += width;
                        Slot::Fixed { offset: offset - width, width }
                    }
                    None => {
                        next_var += 1;
                        Slot::Var { ordinal: next_var - 1 }
                    }
                };
                ColumnSlot { ty, null_bit, slot }
            })
            .collect();
        RowLayout { columns, format, null_bytes, fixed_end: offset, older: Vec::new() }
    }

    /// The current layout of an altered table: `columns` in format `format`, able to decode rows
    /// of the `older` formats too.
    pub fn with_history(columns: Vec<(ColumnType, bool)>, format: u8, older: Vec<OlderLayout>) -> RowLayout {
        let mut layout = RowLayout::with_format(columns, format);
        layout.older = older;
        layout
    }

    /// The format byte rows encoded with this layout carry.
    pub fn format(&self) -> u8 {
        self.format
    }

    /// Whether rows of format `format` decode with this layout.
    pub fn reads_format(&self, format: u8) -> bool {
        format == self.format || self.older.iter().any(|o| o.format == format)
    }

    /// A row of an older format, decoded into the current columns; None if the row has the
    /// current format (or no format byte, which `check_header` reports).
    fn decode_older(&self, row: &[u8]) -> Result<Option<Vec<Value>>> {
        let Some(&format) = row.first() else { return Ok(None) };
        if format == self.format || self.older.is_empty() {
            return Ok(None);
        }
        let older = self.older.iter().find(|o| o.format == format).ok_or_else(|| corrupt("unknown layout format"))?;
        let stored = RowLayout::with_format(older.columns.clone(), older.format).decode(row)?;
        let mut out = Vec::with_capacity(self.columns.len());
        for (source, current) in older.sources.iter().zip(&self.columns) {
            out.push(match source {
                ColumnSource::Value(v) => v.clone(),
                ColumnSource::Column { column, convert } => {
                    let value = stored.get(*column).cloned().ok_or_else(|| corrupt("older layout maps a missing column"))?;
                    if *convert && !value.is_null() {
                        // The ALTER that changed the type checked every stored value in strict
                        // mode; a value written meanwhile is clipped as non-strict mode would.
                        let target = crate::catalog::ColumnDef::new("", current.ty.clone());
                        crate::coerce::coerce(value, &target, &mut crate::coerce::Coercion::lenient())?
                    } else {
                        value
                    }
                }
            });
        }
        if out.len() != self.columns.len() {
            return Err(corrupt("older layout maps too few columns"));
        }
        Ok(Some(out))
    }

    pub fn column_count(&self) -> usize {
        self.columns.len()
    }

    pub fn column_type(&self, i: usize) -> &ColumnType {
        &self.columns[i].ty
    }

    /// A layout holding only the given columns of this one, in the given order (for projected
    /// scan results).
    pub fn project(&self, columns: &[usize]) -> RowLayout {
        RowLayout::new(
            columns
                .iter()
                .map(|&i| (self.columns[i].ty.clone(), self.columns[i].null_bit.is_some()))
                .collect(),
        )
    }

    /// Encodes a row. Values must already be coerced to their column types (the SQL layer
    /// does this with MySQL's conversion rules); a value of the wrong kind is an error.
    pub fn encode(&self, values: &[Value], out: &mut Vec<u8>) -> Result<()> {
        if values.len() != self.columns.len() {
            return Err(Error::internal(format!(
                "row has {} values for {} columns",
                values.len(),
                self.columns.len()
            )));
        }
        let start = out.len();
        out.resize(start + self.fixed_end, 0);
        out[start] = self.format;
        for (col, value) in self.columns.iter().zip(values) {
            if value.is_null() {
                match col.null_bit {
                    Some(bit) => out[start + 1 + bit / 8] |= 1 << (bit % 8),
                    None => return Err(Error::internal("NULL in a NOT NULL column reached the row encoder")),
                }
                continue;
            }
            match col.slot {
                Slot::Fixed { offset, width } => {
                    let at = start + offset;
                    encode_fixed(&col.ty, value, &mut out[at..at + width])?;
                }
                Slot::Var { .. } => {} // written below, in column order
            }
        }
        for (col, value) in self.columns.iter().zip(values) {
            if matches!(col.slot, Slot::Var { .. }) && !value.is_null() {
                let bytes: &[u8] = match (value, &col.ty) {
                    (Value::Text(s), ColumnType::Char { binary: false, .. }) => s.trim_end_matches(' ').as_bytes(),
                    (Value::Text(s), _) => s.as_bytes(),
                    (Value::Bytes(b), _) => b,
                    (other, ty) => return Err(mismatch(other, ty)),
                };
                write_varint(out, bytes.len() as u64);
                out.extend_from_slice(bytes);
            }
        }
        if out.len() - start > MAX_ROW_BYTES {
            out.truncate(start);
            return Err(Error::new(
                crate::error::ErrorKind::RowTooLarge,
                format!("Row size too large. The maximum row size is {MAX_ROW_BYTES} bytes"),
            ));
        }
        Ok(())
    }

    pub fn encode_to_vec(&self, values: &[Value]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.fixed_end + 16);
        self.encode(values, &mut out)?;
        Ok(out)
    }

    fn check_header(&self, row: &[u8]) -> Result<()> {
        if row.len() < self.fixed_end {
            return Err(corrupt("shorter than its fixed part"));
        }
        Ok(())
    }

    fn is_null(&self, row: &[u8], col: &ColumnSlot) -> bool {
        col.null_bit.is_some_and(|bit| row[1 + bit / 8] & (1 << (bit % 8)) != 0)
    }

    /// Decodes every column.
    pub fn decode(&self, row: &[u8]) -> Result<Vec<Value>> {
        let mut out = Vec::with_capacity(self.columns.len());
        self.decode_into(row, &mut out)?;
        Ok(out)
    }

    pub fn decode_into(&self, row: &[u8], out: &mut Vec<Value>) -> Result<()> {
        if let Some(values) = self.decode_older(row)? {
            out.extend(values);
            return Ok(());
        }
        self.check_header(row)?;
        let mut var_at = self.fixed_end;
        for col in &self.columns {
            let null = self.is_null(row, col);
            let value = match col.slot {
                Slot::Fixed { offset, width } => {
                    if null { Value::Null } else { decode_fixed(&col.ty, &row[offset..offset + width])? }
                }
                Slot::Var { .. } => {
                    if null {
                        Value::Null
                    } else {
                        let (bytes, next) = read_var(row, var_at)?;
                        var_at = next;
                        decode_var(&col.ty, bytes)?
                    }
                }
            };
            out.push(value);
        }
        if var_at != row.len() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(())
    }

    /// Decodes one column without decoding the others.
    pub fn decode_column(&self, row: &[u8], index: usize) -> Result<Value> {
        if let Some(mut values) = self.decode_older(row)? {
            return if index < values.len() { Ok(values.swap_remove(index)) } else { Err(corrupt("column index out of range")) };
        }
        self.check_header(row)?;
        let col = self.columns.get(index).ok_or_else(|| corrupt("column index out of range"))?;
        if self.is_null(row, col) {
            return Ok(Value::Null);
        }
        match col.slot {
            Slot::Fixed { offset, width } => decode_fixed(&col.ty, &row[offset..offset + width]),
            Slot::Var { ordinal } => {
                let mut var_at = self.fixed_end;
                for other in &self.columns {
                    if let Slot::Var { ordinal: o } = other.slot {
                        if o == ordinal {
                            break;
                        }
                        if !self.is_null(row, other) {
                            var_at = read_var(row, var_at)?.1;
                        }
                    }
                }
                decode_var(&col.ty, read_var(row, var_at)?.0)
            }
        }
    }

    /// Decodes the listed columns (any order), walking the var part once.
    pub fn decode_columns(&self, row: &[u8], indexes: &[usize], out: &mut Vec<Value>) -> Result<()> {
        if indexes.len() <= 1 {
            for &i in indexes {
                out.push(self.decode_column(row, i)?);
            }
            return Ok(());
        }
        let all = self.decode(row)?;
        for &i in indexes {
            out.push(all.get(i).cloned().ok_or_else(|| corrupt("column index out of range"))?);
        }
        Ok(())
    }
}

fn read_var(row: &[u8], at: usize) -> Result<(&[u8], usize)> {
    let rest = row.get(at..).ok_or_else(|| corrupt("var part out of range"))?;
    let (len, used) = read_varint(rest).ok_or_else(|| corrupt("bad length"))?;
    let start = at + used;
    let end = start.checked_add(len as usize).filter(|e| *e <= row.len()).ok_or_else(|| corrupt("value past the end"))?;
    Ok((&row[start..end], end))
}

fn mismatch(value: &Value, ty: &ColumnType) -> Error {
    Error::internal(format!("value {value:?} was not coerced to column type {ty}"))
}

fn encode_fixed(ty: &ColumnType, value: &Value, out: &mut [u8]) -> Result<()> {
    let width = out.len();
    match (ty, value) {
        (ColumnType::Int { unsigned: false, width: w, .. }, Value::Int(v)) => {
            let (lo, hi) = w.signed_range();
            if *v < lo || *v > hi {
                return Err(mismatch(value, ty));
            }
            put_uint(out, *v as u64, width)
        }
        (ColumnType::Int { unsigned: true, width: w, .. }, Value::UInt(v)) => {
            if *v > w.unsigned_max() {
                return Err(mismatch(value, ty));
            }
            put_uint(out, *v, width)
        }
        (ColumnType::Int { unsigned: true, width: w, .. }, Value::Int(v)) if *v >= 0 && (*v as u64) <= w.unsigned_max() => {
            put_uint(out, *v as u64, width)
        }
        (ColumnType::Decimal { precision, scale }, Value::Decimal(d)) => {
            let d = d.rescale(*scale).filter(|d| d.fits(*precision, *scale)).ok_or_else(|| mismatch(value, ty))?;
            out.copy_from_slice(&d.mantissa().to_le_bytes()[..width]);
        }
        (ColumnType::Float, Value::Double(v)) => out.copy_from_slice(&(*v as f32).to_le_bytes()),
        (ColumnType::Double, Value::Double(v)) => out.copy_from_slice(&v.to_le_bytes()),
        (ColumnType::Char { binary: true, length }, Value::Bytes(b)) => {
            if b.len() > *length as usize {
                return Err(mismatch(value, ty));
            }
            out[..b.len()].copy_from_slice(b);
        }
        (ColumnType::Date, Value::Date(d)) => put_uint(out, pack_date(*d), 3),
        (ColumnType::DateTime { fsp }, Value::DateTime(dt)) => {
            put_uint(out, pack_datetime_seconds(*dt), 5);
            if *fsp > 0 {
                put_uint(&mut out[5..], dt.micros as u64, 3);
            }
        }
        (ColumnType::Timestamp { fsp }, Value::DateTime(dt)) => {
            let seconds = if dt.date.is_zero() { 0 } else { dt.to_unix_seconds().unwrap_or(0) };
            let seconds = u32::try_from(seconds).map_err(|_| mismatch(value, ty))?;
            put_uint(out, seconds as u64, 4);
            if *fsp > 0 {
                put_uint(&mut out[4..], dt.micros as u64, 3);
            }
        }
        (ColumnType::Time { fsp }, Value::Time(t)) => {
            let micros = t.to_micros();
            put_uint(out, micros.div_euclid(1_000_000) as u64, 3);
            if *fsp > 0 {
                put_uint(&mut out[3..], micros.rem_euclid(1_000_000) as u64, 3);
            }
        }
        (ColumnType::Year, Value::Int(y)) => {
            let stored = match *y {
                0 => 0,
                1901..=2155 => y - 1900,
                _ => return Err(mismatch(value, ty)),
            };
            out[0] = stored as u8;
        }
        (ColumnType::Enum { values }, Value::Text(s)) => {
            let index = if s.is_empty() {
                0
            } else {
                values.iter().position(|v| v == s).ok_or_else(|| mismatch(value, ty))? + 1
            };
            put_uint(out, index as u64, width);
        }
        (ColumnType::Set { values }, Value::Text(s)) => {
            // Coercion has already made the text canonical; anything else is a bug upstream.
            let mask = crate::set_value::mask_of_canonical(values, s).ok_or_else(|| mismatch(value, ty))?;
            put_uint(out, mask, width);
        }
        _ => return Err(mismatch(value, ty)),
    }
    Ok(())
}

fn decode_fixed(ty: &ColumnType, b: &[u8]) -> Result<Value> {
    let width = b.len();
    Ok(match ty {
        ColumnType::Int { unsigned: false, .. } => Value::Int(get_int(b, width)),
        ColumnType::Int { unsigned: true, .. } => Value::UInt(get_uint(b, width)),
        ColumnType::Decimal { scale, .. } => {
            let mut buf = if b[width - 1] & 0x80 != 0 { [0xffu8; 16] } else { [0u8; 16] };
            buf[..width].copy_from_slice(b);
            let d = Decimal::new(i128::from_le_bytes(buf), *scale).ok_or_else(|| corrupt("decimal scale"))?;
            Value::Decimal(d)
        }
        ColumnType::Float => Value::Double(f32::from_le_bytes(b.try_into().map_err(|_| corrupt("float"))?) as f64),
        ColumnType::Double => Value::Double(f64::from_le_bytes(b.try_into().map_err(|_| corrupt("double"))?)),
        ColumnType::Char { binary: true, .. } => Value::Bytes(b.to_vec()),
        ColumnType::Date => Value::Date(unpack_date(get_uint(b, 3)).ok_or_else(|| corrupt("date"))?),
        ColumnType::DateTime { fsp } => {
            let micros = if *fsp > 0 { get_uint(&b[5..], 3) as u32 } else { 0 };
            Value::DateTime(unpack_datetime(get_uint(b, 5), micros).ok_or_else(|| corrupt("datetime"))?)
        }
        ColumnType::Timestamp { fsp } => {
            let seconds = get_uint(b, 4) as i64;
            let micros = if *fsp > 0 { get_uint(&b[4..], 3) as u32 } else { 0 };
            if seconds == 0 && micros == 0 {
                Value::DateTime(DateTime::ZERO)
            } else {
                Value::DateTime(DateTime::from_unix_seconds(seconds, micros).ok_or_else(|| corrupt("timestamp"))?)
            }
        }
        ColumnType::Time { fsp } => {
            let seconds = get_int(b, 3);
            let micros = if *fsp > 0 { get_uint(&b[3..], 3) as i64 } else { 0 };
            Value::Time(Time::from_micros(seconds * 1_000_000 + micros).ok_or_else(|| corrupt("time"))?)
        }
        ColumnType::Year => Value::Int(if b[0] == 0 { 0 } else { b[0] as i64 + 1900 }),
        ColumnType::Enum { values } => {
            let index = get_uint(b, width) as usize;
            match index {
                0 => Value::Text(String::new()),
                i => Value::Text(values.get(i - 1).ok_or_else(|| corrupt("enum index"))?.clone()),
            }
        }
        ColumnType::Set { values } => {
            let mask = get_uint(b, width);
            if !crate::set_value::mask_fits(values, mask) {
                return Err(corrupt("set member bits"));
            }
            Value::Text(crate::set_value::render(values, mask))
        }
        ColumnType::Char { binary: false, .. } | ColumnType::VarChar { .. } | ColumnType::Lob { .. } => {
            return Err(corrupt("var type in the fixed part"));
        }
    })
}

fn decode_var(ty: &ColumnType, b: &[u8]) -> Result<Value> {
    if ty.is_binary_string() {
        Ok(Value::Bytes(b.to_vec()))
    } else {
        let s = std::str::from_utf8(b).map_err(|_| corrupt("text column is not UTF-8"))?;
        Ok(Value::Text(s.to_string()))
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::temporal::{parse_datetime, parse_time};
    use crate::types::{IntWidth, LobSize};

    #[test]
    fn rows_of_an_older_layout_decode_into_the_current_columns() {
        let int = ColumnType::Int { width: IntWidth::Int, unsigned: false, display: None };
        let text = ColumnType::VarChar { length: 8, binary: false };
        let before = RowLayout::with_format(vec![(int.clone(), false), (text.clone(), true), (int.clone(), true)], 0);
        let old_row = before.encode_to_vec(&[Value::Int(7), Value::Text("x".into()), Value::Int(42)]).unwrap();
        // Now: a column added first (default 5), column 2 retyped to VARCHAR, column 1 dropped.
        let older = OlderLayout {
            format: 0,
            columns: vec![(int.clone(), false), (text.clone(), true), (int.clone(), true)],
            sources: vec![
                ColumnSource::Value(Value::Int(5)),
                ColumnSource::Column { column: 0, convert: false },
                ColumnSource::Column { column: 2, convert: true },
            ],
        };
        let now = RowLayout::with_history(vec![(int.clone(), false), (int.clone(), false), (text.clone(), true)], 1, vec![older]);
        assert_eq!(now.decode(&old_row).unwrap(), vec![Value::Int(5), Value::Int(7), Value::Text("42".into())]);
        assert_eq!(now.decode_column(&old_row, 2).unwrap(), Value::Text("42".into()));
        let new_row = now.encode_to_vec(&[Value::Int(1), Value::Int(2), Value::Null]).unwrap();
        assert_eq!(new_row[0], 1, "new rows carry the new format");
        assert_eq!(now.decode(&new_row).unwrap(), vec![Value::Int(1), Value::Int(2), Value::Null]);
        // A format the table never had is a corrupt row, not a panic.
        let mut unknown = new_row.clone();
        unknown[0] = 9;
        assert!(now.decode(&unknown).is_err());
    }

    fn sample_layout() -> RowLayout {
        RowLayout::new(vec![
            (ColumnType::Int { width: IntWidth::Int, unsigned: true, display: None }, false),
            (ColumnType::VarChar { length: 64, binary: false }, false),
            (ColumnType::Int { width: IntWidth::Tiny, unsigned: false, display: Some(1) }, true),
            (ColumnType::Decimal { precision: 10, scale: 2 }, true),
            (ColumnType::Lob { size: LobSize::Normal, binary: true }, true),
            (ColumnType::DateTime { fsp: 3 }, true),
            (ColumnType::Timestamp { fsp: 0 }, true),
            (ColumnType::Time { fsp: 0 }, true),
            (ColumnType::Date, true),
            (ColumnType::Double, true),
            (ColumnType::Char { length: 4, binary: false }, true),
            (ColumnType::Enum { values: vec!["active".into(), "disabled".into()] }, true),
            (ColumnType::Year, true),
            (ColumnType::Int { width: IntWidth::Big, unsigned: false, display: None }, true),
        ])
    }

    fn sample_values() -> Vec<Value> {
        vec![
            Value::UInt(4_294_967_295),
            Value::text("alice@example.org ✉"),
            Value::Int(-128),
            Value::Decimal(Decimal::parse("-12345678.90").unwrap()),
            Value::Bytes(vec![0xff, 0, 1]),
            Value::DateTime(parse_datetime("2024-02-29 23:59:59.123").unwrap()),
            Value::DateTime(parse_datetime("2038-01-19 03:14:07").unwrap()),
            Value::Time(parse_time("-838:59:59").unwrap()),
            Value::Null,
            Value::Double(0.1),
            Value::text("ab"),
            Value::text("disabled"),
            Value::Int(2155),
            Value::Int(i64::MIN),
        ]
    }

    fn assert_same(a: &[Value], b: &[Value]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert_eq!(format!("{x:?}"), format!("{y:?}"));
        }
    }

    #[test]
    fn round_trip_every_type() {
        let layout = sample_layout();
        let row = layout.encode_to_vec(&sample_values()).unwrap();
        assert_same(&layout.decode(&row).unwrap(), &sample_values());
        for i in 0..layout.column_count() {
            assert_eq!(format!("{:?}", layout.decode_column(&row, i).unwrap()), format!("{:?}", sample_values()[i]));
        }
        let mut some = Vec::new();
        layout.decode_columns(&row, &[10, 0], &mut some).unwrap();
        assert_same(&some, &[Value::text("ab"), Value::UInt(4_294_967_295)]);
    }

    #[test]
    fn nulls_take_no_var_space() {
        let layout = RowLayout::new(vec![
            (ColumnType::Int { width: IntWidth::Int, unsigned: false, display: None }, false),
            (ColumnType::VarChar { length: 20, binary: false }, true),
        ]);
        let with = layout.encode_to_vec(&[Value::Int(1), Value::text("abc")]).unwrap();
        let without = layout.encode_to_vec(&[Value::Int(1), Value::Null]).unwrap();
        assert_eq!(with.len(), 1 + 1 + 4 + 1 + 3);
        assert_eq!(without.len(), 1 + 1 + 4);
    }

    #[test]
    fn rejects_uncoerced_values_and_nulls_in_not_null() {
        let layout = sample_layout();
        let mut values = sample_values();
        values[0] = Value::Null;
        assert!(layout.encode_to_vec(&values).is_err());
        let mut values = sample_values();
        values[2] = Value::Int(300);
        assert!(layout.encode_to_vec(&values).is_err(), "out of TINYINT range");
    }

    #[test]
    fn decoding_garbage_never_panics() {
        let layout = sample_layout();
        let row = layout.encode_to_vec(&sample_values()).unwrap();
        for cut in 0..row.len() {
            let _ = layout.decode(&row[..cut]);
        }
        let mut state = 0x1234_5678u32;
        for _ in 0..2000 {
            let len = (state % 80) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (state >> 16) as u8
                })
                .collect();
            let _ = layout.decode(&bytes);
            for i in 0..layout.column_count() {
                let _ = layout.decode_column(&bytes, i);
            }
        }
    }

    #[test]
    fn projection_layout() {
        let layout = sample_layout();
        let projected = layout.project(&[1, 0]);
        let values = vec![Value::text("x"), Value::UInt(7)];
        let row = projected.encode_to_vec(&values).unwrap();
        assert_same(&projected.decode(&row).unwrap(), &values);
    }
}
