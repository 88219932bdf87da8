//! Grouping keys: a byte form of values under which two values are equal exactly when MySQL's
//! comparison calls them equal (GROUP BY, DISTINCT, hash-join keys, partial aggregation on data
//! nodes). SQL nodes and data nodes share it, so that a group formed on a data node and one
//! formed on the SQL node agree.

use crate::collation::Collation;
use crate::decimal::Decimal;
use crate::value::Value;

/// Appends a representation of a value such that two values that are equal under MySQL's
/// comparison (with this collation) give equal bytes: numbers by their exact value whatever
/// their type, strings by their collation sort key. Each value is length-prefixed.
pub fn normalize_into(v: &Value, collation: Collation, out: &mut Vec<u8>) {
    let mut part = Vec::with_capacity(16);
    match v {
        Value::Null => part.push(0),
        Value::Int(_) | Value::UInt(_) | Value::Decimal(_) | Value::Double(_) => {
            let exact = match v {
                Value::Double(d) => Decimal::from_f64(*d),
                other => other.to_decimal(),
            };
            match exact {
                Some(d) if d.rescale(0).is_some_and(|i| i.rescale(d.scale()) == Some(d)) => {
                    part.push(1);
                    part.extend_from_slice(&d.rescale(0).map_or(0, |i| i.mantissa()).to_be_bytes());
                }
                Some(d) => {
                    part.push(2);
                    let text = d.to_string();
                    let trimmed = if text.contains('.') { text.trim_end_matches('0').to_string() } else { text };
                    part.extend_from_slice(trimmed.as_bytes());
                }
                None => {
                    part.push(3);
                    part.extend_from_slice(&v.to_f64().unwrap_or(0.0).to_bits().to_be_bytes());
                }
            }
        }
        Value::Text(s) => {
            part.push(4);
            collation.sort_key(s, &mut part);
        }
        Value::Bytes(b) => {
            part.push(4);
            let mut end = b.len();
            while end > 0 && b[end - 1] == b' ' {
                end -= 1;
            }
            part.extend_from_slice(&b[..end]);
        }
        Value::Date(_) | Value::DateTime(_) => {
            part.push(5);
            if let Some(dt) = v.to_datetime() {
                part.extend_from_slice(dt.format(6).as_bytes());
            }
        }
        Value::Time(t) => {
            part.push(6);
            part.extend_from_slice(&t.to_micros().to_be_bytes());
        }
    }
    out.extend_from_slice(&(part.len() as u32).to_be_bytes());
    out.extend_from_slice(&part);
}
