//! Key encoding and partitioning.
//!
//! A key (primary, unique or ordered-index) is encoded so that comparing the encodings as
//! byte strings gives the SQL order of the values under their collation ("memcomparable"):
//! `'Alice'` and `'alice '` encode the same under the default collation, so they are the same
//! primary key, as in MySQL. The encoding is also what the partition hash is taken over, so the
//! partition of a row never depends on letter case.
//!
//! Layout per column: `0x00` for NULL, or `0x01` then the value:
//! - signed integers: 8 bytes big-endian with the sign bit flipped; unsigned: 8 bytes big-endian;
//! - decimals: the mantissa at the column's scale, 16 bytes big-endian, sign bit flipped;
//! - doubles: IEEE bits, flipped so that byte order is numeric order;
//! - strings: the collation's sort key with `0x00` escaped as `0x00 0xFF`, ended by `0x00 0x00`;
//! - dates and times: their packed numbers, big-endian.
//!
//! The partition of a row is `crc32c(encoding of the partition-key columns) % partitions`.
//! This function is part of the on-disk and cross-node contract: changing it moves rows.

use crate::catalog::TableDef;
use crate::collation::Collation;
use crate::error::{Error, Result};
use crate::ids::PartitionId;
use crate::types::ColumnType;
use crate::value::Value;

fn escape_into(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// Appends the key encoding of one value of a column of type `ty` compared under `collation`.
/// The value must already be of the column's kind (see the row encoder's contract).
pub fn encode_key_value(value: &Value, ty: &ColumnType, collation: Collation, out: &mut Vec<u8>) -> Result<()> {
    if value.is_null() {
        out.push(0);
        return Ok(());
    }
    out.push(1);
    match (ty, value) {
        (ColumnType::Int { unsigned: true, .. }, Value::UInt(v)) => out.extend_from_slice(&v.to_be_bytes()),
        (ColumnType::Int { unsigned: true, .. }, Value::Int(v)) if *v >= 0 => {
            out.extend_from_slice(&(*v as u64).to_be_bytes())
        }
        (ColumnType::Int { unsigned: false, .. } | ColumnType::Year, Value::Int(v)) => {
            out.extend_from_slice(&((*v as u64) ^ (1 << 63)).to_be_bytes())
        }
        (ColumnType::Decimal { scale, .. }, Value::Decimal(d)) => {
            let d = d.rescale(*scale).ok_or_else(|| Error::internal("decimal key out of range"))?;
            out.extend_from_slice(&((d.mantissa() as u128) ^ (1 << 127)).to_be_bytes());
        }
        (ColumnType::Float | ColumnType::Double, Value::Double(v)) => {
            let bits = v.to_bits();
            let ordered = if bits >> 63 == 1 { !bits } else { bits ^ (1 << 63) };
            out.extend_from_slice(&ordered.to_be_bytes());
        }
        (_, Value::Text(s)) if ty.is_string() => {
            let mut sort_key = Vec::with_capacity(s.len());
            if let ColumnType::Enum { values } = ty {
                // ENUMs sort by their index, as MySQL does.
                let index = values.iter().position(|v| v == s).map_or(0, |i| i + 1) as u16;
                out.extend_from_slice(&index.to_be_bytes());
                return Ok(());
            }
            collation.sort_key(s, &mut sort_key);
            escape_into(&sort_key, out);
        }
        (_, Value::Bytes(b)) if ty.is_string() => {
            let mut end = b.len();
            if !matches!(ty, ColumnType::Char { binary: true, .. }) {
                while end > 0 && b[end - 1] == b' ' {
                    end -= 1;
                }
            }
            escape_into(&b[..end], out);
        }
        (ColumnType::Date | ColumnType::DateTime { .. } | ColumnType::Timestamp { .. }, Value::DateTime(_) | Value::Date(_)) => {
            let dt = value.to_datetime().ok_or_else(|| Error::internal("bad datetime key"))?;
            let packed = (((((dt.date.year as u64 * 13 + dt.date.month as u64) * 32 + dt.date.day as u64) * 24
                + dt.hour as u64)
                * 60
                + dt.minute as u64)
                * 60
                + dt.second as u64)
                * 1_000_000
                + dt.micros as u64;
            out.extend_from_slice(&packed.to_be_bytes());
        }
        (ColumnType::Time { .. }, Value::Time(t)) => {
            out.extend_from_slice(&((t.to_micros() as u64) ^ (1 << 63)).to_be_bytes());
        }
        (ty, value) => {
            return Err(Error::internal(format!("cannot encode {value:?} as a key of type {ty}")));
        }
    }
    Ok(())
}

/// Encodes the values of `columns` (indexes into the table's columns) taken from `values`,
/// a full row of the table.
pub fn encode_key(table: &TableDef, columns: &[usize], values: &[Value], out: &mut Vec<u8>) -> Result<()> {
    for &c in columns {
        let column = table.columns.get(c).ok_or_else(|| Error::internal("key column out of range"))?;
        let value = values.get(c).ok_or_else(|| Error::internal("row shorter than its table"))?;
        encode_key_value(value, &column.ty, column.comparison(), out)?;
    }
    Ok(())
}

/// Encodes key values given in key order (the values of `columns`, not a full row).
pub fn encode_key_values(table: &TableDef, columns: &[usize], key_values: &[Value], out: &mut Vec<u8>) -> Result<()> {
    if key_values.len() != columns.len() {
        return Err(Error::internal("key value count differs from key column count"));
    }
    for (&c, value) in columns.iter().zip(key_values) {
        let column = table.columns.get(c).ok_or_else(|| Error::internal("key column out of range"))?;
        encode_key_value(value, &column.ty, column.comparison(), out)?;
    }
    Ok(())
}

/// The primary key encoding of a full row.
pub fn primary_key_of_row(table: &TableDef, values: &[Value]) -> Result<Vec<u8>> {
    let mut key = Vec::with_capacity(16);
    encode_key(table, &table.primary_key, values, &mut key)?;
    Ok(key)
}

/// The partition a full row belongs to.
pub fn partition_of_row(table: &TableDef, values: &[Value]) -> Result<PartitionId> {
    let mut key = Vec::with_capacity(16);
    encode_key(table, &table.partition_key, values, &mut key)?;
    Ok(partition_of_encoded(&key, table.partition_count()))
}

/// The partition for a primary-key lookup, given the key values in primary-key order.
pub fn partition_of_primary_key(table: &TableDef, key_values: &[Value]) -> Result<PartitionId> {
    if table.partition_key == table.primary_key {
        let mut key = Vec::with_capacity(16);
        encode_key_values(table, &table.primary_key, key_values, &mut key)?;
        return Ok(partition_of_encoded(&key, table.partition_count()));
    }
    let mut key = Vec::with_capacity(16);
    for &c in &table.partition_key {
        let position = table
            .primary_key
            .iter()
            .position(|&k| k == c)
            .ok_or_else(|| Error::internal("partition key column outside the primary key"))?;
        let column = &table.columns[c];
        encode_key_value(&key_values[position], &column.ty, column.comparison(), &mut key)?;
    }
    Ok(partition_of_encoded(&key, table.partition_count()))
}

/// The partition of an encoded partition key.
pub fn partition_of_encoded(encoded: &[u8], partitions: u32) -> PartitionId {
    PartitionId(crc32c::crc32c(encoded) % partitions.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decimal::Decimal;
    use crate::types::IntWidth;

    fn enc(v: Value, ty: &ColumnType) -> Vec<u8> {
        let mut out = Vec::new();
        encode_key_value(&v, ty, ty.collation(), &mut out).unwrap();
        out
    }

    #[test]
    fn integer_order_is_byte_order() {
        let ty = ColumnType::bigint();
        let values = [i64::MIN, -1, 0, 1, i64::MAX];
        for w in values.windows(2) {
            assert!(enc(Value::Int(w[0]), &ty) < enc(Value::Int(w[1]), &ty));
        }
        let uty = ColumnType::bigint_unsigned();
        assert!(enc(Value::UInt(5), &uty) < enc(Value::UInt(u64::MAX), &uty));
        assert!(enc(Value::Null, &ty) < enc(Value::Int(i64::MIN), &ty), "NULL sorts first");
    }

    #[test]
    fn strings_and_decimals_and_doubles_order() {
        let ty = ColumnType::VarChar { length: 10, binary: false };
        assert_eq!(enc(Value::text("Alice"), &ty), enc(Value::text("alice  "), &ty));
        assert!(enc(Value::text("a"), &ty) < enc(Value::text("ab"), &ty));
        assert!(enc(Value::text("ab"), &ty) < enc(Value::text("B"), &ty));
        let bin = ColumnType::VarChar { length: 10, binary: true };
        assert!(enc(Value::Bytes(b"a".to_vec()), &bin) < enc(Value::Bytes(b"a\0".to_vec()), &bin));
        let dec = ColumnType::Decimal { precision: 10, scale: 2 };
        let d = |s: &str| Value::Decimal(Decimal::parse(s).unwrap());
        assert!(enc(d("-1.5"), &dec) < enc(d("-1.25"), &dec));
        assert!(enc(d("-1.25"), &dec) < enc(d("0"), &dec));
        assert_eq!(enc(d("1.5"), &dec), enc(d("1.50"), &dec));
        let dbl = ColumnType::Double;
        let doubles = [f64::NEG_INFINITY, -2.5, -0.0, 0.0, 1e-300, 3.0, f64::INFINITY];
        for w in doubles.windows(2) {
            assert!(enc(Value::Double(w[0]), &dbl) <= enc(Value::Double(w[1]), &dbl), "{w:?}");
        }
    }

    #[test]
    fn partitioning_ignores_case_and_spreads_rows() {
        let ty = ColumnType::Int { width: IntWidth::Int, unsigned: true, display: None };
        let mut counts = [0u32; 8];
        for i in 0..8000u64 {
            counts[partition_of_encoded(&enc(Value::UInt(i), &ty), 8).0 as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800 && c < 1200), "{counts:?}");
        let s = ColumnType::VarChar { length: 10, binary: false };
        assert_eq!(
            partition_of_encoded(&enc(Value::text("MixedCase"), &s), 16),
            partition_of_encoded(&enc(Value::text("mixedcase"), &s), 16)
        );
    }
}
