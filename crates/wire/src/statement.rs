//! The crate's side of prepared statements: per statement, the parameter count, the parameter
//! types last bound (clients send them only when they change), and the COM_STMT_SEND_LONG_DATA
//! chunks waiting for the next execute. The handler owns everything else (the plan, the ids).
//!
//! Limits: at most `max_statements` open statements per connection, and at most
//! `max_long_data` bytes of long data buffered across all statements of the connection (the
//! connection's `max_allowed_packet`; MySQL bounds each parameter by it, this bounds their sum so
//! that a connection's memory stays bounded by a small multiple of the limit).

use std::collections::HashMap;

use crate::codec::{Malformed, Reader};
use crate::constants::{ColumnType, error_code};
use crate::response::ErrorPacket;
use crate::value::{ParamValue, Value, read_binary_param};

#[derive(Debug)]
pub(crate) struct Statement {
    pub param_count: u16,
    /// `(type, unsigned)` per parameter, from the last execute that bound them.
    param_types: Option<Vec<(ColumnType, bool)>>,
    /// Long data per parameter; empty until the first chunk arrives.
    long_data: Vec<Option<Vec<u8>>>,
    long_data_bytes: usize,
    /// An error in SEND_LONG_DATA, which has no reply, reported by the next execute.
    long_data_error: Option<ErrorPacket>,
}

impl Statement {
    fn new(param_count: u16) -> Self {
        Statement {
            param_count,
            param_types: None,
            long_data: Vec::new(),
            long_data_bytes: 0,
            long_data_error: None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Statements {
    map: HashMap<u32, Statement>,
    max_statements: usize,
    max_long_data: usize,
    long_data_total: usize,
}

pub(crate) fn unknown_statement(id: u32, command: &str) -> ErrorPacket {
    ErrorPacket::new(
        error_code::ER_UNKNOWN_STMT_HANDLER,
        "HY000",
        format!("Unknown prepared statement handler ({id}) given to {command}"),
    )
}

fn malformed(_: Malformed) -> ErrorPacket {
    ErrorPacket::new(
        error_code::ER_MALFORMED_PACKET,
        "HY000",
        "Malformed communication packet.",
    )
}

impl Statements {
    pub fn new(max_statements: usize, max_long_data: usize) -> Self {
        Statements {
            map: HashMap::new(),
            max_statements,
            max_long_data,
            long_data_total: 0,
        }
    }

    /// Refuses a new statement when the connection already has the maximum.
    pub fn check_capacity(&self) -> Result<(), ErrorPacket> {
        if self.map.len() >= self.max_statements {
            return Err(ErrorPacket::new(
                error_code::ER_MAX_PREPARED_STMT_COUNT_REACHED,
                "42000",
                format!(
                    "Can't create more than max_prepared_stmt_count statements (current value: {})",
                    self.max_statements
                ),
            ));
        }
        Ok(())
    }

    pub fn insert(&mut self, id: u32, param_count: u16) {
        if let Some(old) = self.map.insert(id, Statement::new(param_count)) {
            self.long_data_total -= old.long_data_bytes;
        }
    }

    pub fn contains(&self, id: u32) -> bool {
        self.map.contains_key(&id)
    }

    pub fn remove(&mut self, id: u32) -> bool {
        match self.map.remove(&id) {
            Some(old) => {
                self.long_data_total -= old.long_data_bytes;
                true
            }
            None => false,
        }
    }

    /// Forgets every statement and returns their ids.
    pub fn clear(&mut self) -> Vec<u32> {
        self.long_data_total = 0;
        self.map.drain().map(|(id, _)| id).collect()
    }

    /// Discards long data and a pending long-data error (COM_STMT_RESET).
    pub fn reset(&mut self, id: u32) -> bool {
        let Some(stmt) = self.map.get_mut(&id) else {
            return false;
        };
        self.long_data_total -= stmt.long_data_bytes;
        stmt.long_data.clear();
        stmt.long_data_bytes = 0;
        stmt.long_data_error = None;
        true
    }

    /// Handles COM_STMT_SEND_LONG_DATA (the body after the command byte). It has no reply, so
    /// problems are remembered and reported by the next execute, as MySQL does; a chunk for an
    /// unknown statement is dropped silently.
    pub fn append_long_data(&mut self, body: &[u8]) {
        let mut r = Reader::new(body);
        let (Ok(id), Ok(param)) = (r.u32("statement id"), r.u16("parameter id")) else {
            return;
        };
        let chunk = r.rest();
        let Some(stmt) = self.map.get_mut(&id) else {
            return;
        };
        if stmt.long_data_error.is_some() {
            return;
        }
        if param >= stmt.param_count {
            stmt.long_data_error = Some(ErrorPacket::new(
                error_code::ER_WRONG_ARGUMENTS,
                "HY000",
                "Incorrect arguments to mysqld_stmt_send_long_data",
            ));
            return;
        }
        if self.long_data_total + chunk.len() > self.max_long_data {
            stmt.long_data_error = Some(ErrorPacket::new(
                error_code::ER_UNKNOWN_ERROR,
                "HY000",
                "Parameter of prepared statement which is set through mysql_send_long_data() is \
                 longer than 'max_allowed_packet' bytes",
            ));
            return;
        }
        if stmt.long_data.is_empty() {
            stmt.long_data.resize(usize::from(stmt.param_count), None);
        }
        stmt.long_data[usize::from(param)]
            .get_or_insert_with(Vec::new)
            .extend_from_slice(chunk);
        stmt.long_data_bytes += chunk.len();
        self.long_data_total += chunk.len();
    }

    /// Decodes the parameters of COM_STMT_EXECUTE (the body after the statement id). Long data
    /// is consumed whatever the outcome, as an execute ends its life in MySQL too.
    pub fn decode_execute(&mut self, id: u32, body: &[u8]) -> Result<Vec<ParamValue>, ErrorPacket> {
        let Some(stmt) = self.map.get_mut(&id) else {
            return Err(unknown_statement(id, "mysqld_stmt_execute"));
        };
        let long_data = std::mem::take(&mut stmt.long_data);
        self.long_data_total -= stmt.long_data_bytes;
        stmt.long_data_bytes = 0;
        if let Some(error) = stmt.long_data_error.take() {
            return Err(error);
        }
        decode_params(stmt, body, long_data)
    }
}

fn decode_params(
    stmt: &mut Statement,
    body: &[u8],
    mut long_data: Vec<Option<Vec<u8>>>,
) -> Result<Vec<ParamValue>, ErrorPacket> {
    let mut r = Reader::new(body);
    // Cursor flags are ignored: without SERVER_STATUS_CURSOR_EXISTS in the reply, clients read
    // the rows inline. The iteration count is always 1 in practice.
    let _flags = r.u8("execute flags").map_err(malformed)?;
    let _iterations = r.u32("iteration count").map_err(malformed)?;
    let count = usize::from(stmt.param_count);
    if count == 0 {
        return Ok(Vec::new());
    }
    let null_bitmap = r
        .bytes(count.div_ceil(8), "null bitmap")
        .map_err(malformed)?;
    let new_params_bound = r.u8("new params bound flag").map_err(malformed)?;
    let mut new_types = None;
    if new_params_bound == 1 {
        let mut types = Vec::with_capacity(count);
        for _ in 0..count {
            let code = r.u8("parameter type").map_err(malformed)?;
            let flags = r.u8("parameter flags").map_err(malformed)?;
            types.push((ColumnType(code), flags & 0x80 != 0));
        }
        new_types = Some(types);
    }
    let Some(types) = new_types.as_ref().or(stmt.param_types.as_ref()) else {
        return Err(ErrorPacket::new(
            error_code::ER_WRONG_ARGUMENTS,
            "HY000",
            "Incorrect arguments to mysqld_stmt_execute",
        ));
    };
    let mut params = Vec::with_capacity(count);
    for (i, &(column_type, unsigned)) in types.iter().enumerate() {
        let value = if let Some(data) = long_data.get_mut(i).and_then(Option::take) {
            Value::Bytes(data)
        } else if null_bitmap[i / 8] & (1 << (i % 8)) != 0 {
            Value::Null
        } else {
            read_binary_param(&mut r, column_type, unsigned).map_err(malformed)?
        };
        params.push(ParamValue {
            column_type,
            unsigned,
            value,
        });
    }
    if new_types.is_some() {
        stmt.param_types = new_types;
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn execute_body(null_bitmap: &[u8], types: Option<&[(u8, u8)]>, values: &[u8]) -> Vec<u8> {
        let mut body = vec![0, 1, 0, 0, 0];
        body.extend_from_slice(null_bitmap);
        match types {
            Some(types) => {
                body.push(1);
                for &(t, f) in types {
                    body.extend_from_slice(&[t, f]);
                }
            }
            None => body.push(0),
        }
        body.extend_from_slice(values);
        body
    }

    #[test]
    fn types_are_remembered_between_executes() {
        let mut s = Statements::new(10, 1024);
        s.insert(1, 2);
        let first = execute_body(&[0b10], Some(&[(8, 0x80), (253, 0)]), &[0xFF; 8]);
        let params = s.decode_execute(1, &first).unwrap();
        assert_eq!(params[0].value, Value::UInt(u64::MAX));
        assert!(params[0].unsigned);
        assert_eq!(params[1].value, Value::Null);
        let second = execute_body(&[0], None, &[1, 0, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
        let params = s.decode_execute(1, &second).unwrap();
        assert_eq!(params[0].value, Value::UInt(1));
        assert_eq!(params[1].value, Value::from("hi"));
    }

    #[test]
    fn missing_types_and_truncation_are_errors() {
        let mut s = Statements::new(10, 1024);
        s.insert(1, 1);
        assert_eq!(
            s.decode_execute(1, &execute_body(&[0], None, &[1]))
                .unwrap_err()
                .code,
            1210
        );
        let truncated = execute_body(&[0], Some(&[(8, 0)]), &[1, 2, 3]);
        assert_eq!(s.decode_execute(1, &truncated).unwrap_err().code, 1835);
        assert_eq!(s.decode_execute(1, &[0]).unwrap_err().code, 1835);
        assert_eq!(s.decode_execute(2, &[]).unwrap_err().code, 1243);
        // Zero-parameter statements need nothing after the iteration count.
        s.insert(3, 0);
        assert!(s.decode_execute(3, &[0, 1, 0, 0, 0]).unwrap().is_empty());
    }

    #[test]
    fn long_data_is_merged_used_once_and_bounded() {
        let mut s = Statements::new(10, 10);
        s.insert(5, 2);
        let chunk = |param: u16, data: &[u8]| {
            let mut body = 5u32.to_le_bytes().to_vec();
            body.extend_from_slice(&param.to_le_bytes());
            body.extend_from_slice(data);
            body
        };
        s.append_long_data(&chunk(1, b"abc"));
        s.append_long_data(&chunk(1, b"def"));
        // Parameter 1's value is not in the packet; parameter 0 is NULL.
        let body = execute_body(&[0b01], Some(&[(252, 0), (252, 0)]), &[]);
        let params = s.decode_execute(5, &body).unwrap();
        assert_eq!(params[1].value, Value::from("abcdef"));
        assert_eq!(params[0].value, Value::Null);
        assert_eq!(s.long_data_total, 0);
        // Over the budget: the error surfaces at the next execute, then clears.
        s.append_long_data(&chunk(0, b"0123456789A"));
        assert_eq!(
            s.decode_execute(5, &execute_body(&[0b11], None, &[]))
                .unwrap_err()
                .code,
            1105
        );
        assert!(
            s.decode_execute(5, &execute_body(&[0b11], None, &[]))
                .is_ok()
        );
        s.append_long_data(&chunk(7, b"x"));
        assert_eq!(
            s.decode_execute(5, &execute_body(&[0b11], None, &[]))
                .unwrap_err()
                .code,
            1210
        );
        s.append_long_data(&chunk(0, b"xy"));
        assert!(s.reset(5));
        assert_eq!(s.long_data_total, 0);
        s.append_long_data(&chunk(0, b"xy"));
        assert!(s.remove(5));
        assert_eq!(s.long_data_total, 0);
        s.append_long_data(&[1, 2]);
    }

    #[test]
    fn random_execute_bodies_never_panic() {
        use rand::rngs::StdRng;
        use rand::{Rng, RngCore, SeedableRng};
        let mut rng = StdRng::seed_from_u64(7);
        let mut s = Statements::new(10, 1 << 16);
        for round in 0..50_000u32 {
            let id = round % 4;
            if round % 1000 == 0 {
                s.clear();
                for id in 0..4u32 {
                    s.insert(id, (id * 3) as u16);
                }
            }
            let mut body = vec![0u8; rng.random_range(0..64)];
            rng.fill_bytes(&mut body);
            if rng.random_bool(0.5) {
                // Make the fixed header plausible so decoding reaches the parameters.
                body.splice(0..body.len().min(5), [0, 1, 0, 0, 0]);
            }
            if rng.random_bool(0.2) {
                let mut chunk = id.to_le_bytes().to_vec();
                chunk.extend_from_slice(&rng.random_range(0..8u16).to_le_bytes());
                chunk.extend_from_slice(&body);
                s.append_long_data(&chunk);
            }
            let _ = s.decode_execute(id, &body);
        }
    }

    #[test]
    fn capacity_is_enforced() {
        let mut s = Statements::new(2, 0);
        s.insert(1, 0);
        s.insert(2, 0);
        assert_eq!(s.check_capacity().unwrap_err().code, 1461);
        s.remove(1);
        assert!(s.check_capacity().is_ok());
        assert_eq!(s.clear().len(), 1);
    }
}
