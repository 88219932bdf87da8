//! # What one operator of a statement may hold in memory on the SQL node
//!
//! Most of a query streams: a scan's rows flow to the client a batch at a time, and the MySQL
//! writer flushes every 128 KiB and waits for the socket, so a slow client holds back the
//! stream instead of making the SQL node buffer its result. Some operators must see every row
//! first: a sort, a window, the build side of a hash join, the groups of GROUP BY, the keys
//! DISTINCT has seen, a recursive CTE, a subquery's result. Each of them takes a [`RowBudget`]
//! and charges what it keeps; past `max_materialized_rows` rows the statement fails with
//! ER_TOO_MANY_ROWS (1172), past `max_statement_memory` bytes (the `MaxStatementMemory` key of
//! `[[mysqld]]`) with 3170 ER_CAPACITY_EXCEEDED, MySQL's error for its own memory limits
//! (`range_optimizer_max_mem_size`, `parser_max_mem_size`), naming the setting. The statement
//! ends with its memory freed; the session and other sessions go on.
//!
//! The bytes are an estimate of the heap a row takes ([`row_bytes`]: the value slots plus the
//! text and byte strings they own), close enough to bound memory, not an allocator's count.
//!
//! Left out: a bound per statement across its operators (each operator has its own budget, so
//! a statement with a sort above a join may hold two budgets' worth), and one across sessions
//! (a node-wide budget would let one session's query fail because of another's).

use cairn_common::{Error, ErrorKind, Value};

/// The default `max_statement_memory`: 1 GiB per operator. A sort of 4 million rows
/// (`max_materialized_rows`) of 200 bytes each fits.
pub const DEFAULT_MAX_STATEMENT_MEMORY: u64 = 1 << 30;

/// The heap one row takes: its slot vector and what its values own.
pub fn row_bytes(row: &[Value]) -> u64 {
    let mut bytes = (std::mem::size_of::<Vec<Value>>() + std::mem::size_of_val(row)) as u64;
    for v in row {
        bytes += match v {
            Value::Text(s) => s.capacity() as u64,
            Value::Bytes(b) => b.capacity() as u64,
            _ => 0,
        };
    }
    bytes
}

/// MySQL's 3170 for `max_statement_memory`.
pub fn capacity_exceeded(limit: u64) -> Error {
    Error::new(
        ErrorKind::CapacityExceeded,
        format!(
            "Memory capacity of {limit} bytes for 'max_statement_memory' exceeded. The statement holds more on the SQL node (sort, GROUP BY, DISTINCT, join or subquery result); add a WHERE or LIMIT."
        ),
    )
}

/// Rows and bytes one materializing operator has kept, against its limits.
#[derive(Clone, Copy, Debug)]
pub struct RowBudget {
    max_rows: usize,
    max_bytes: u64,
    rows: usize,
    bytes: u64,
}

impl RowBudget {
    pub fn new(max_rows: usize, max_bytes: u64) -> RowBudget {
        RowBudget { max_rows, max_bytes, rows: 0, bytes: 0 }
    }

    /// Charges one kept row of `bytes` bytes.
    pub fn charge(&mut self, bytes: u64) -> Result<(), Error> {
        self.rows += 1;
        if self.rows > self.max_rows {
            return Err(crate::exec::too_many_rows(self.max_rows));
        }
        self.charge_bytes(bytes)
    }

    /// Charges bytes that come with no new row (an aggregate's growing state).
    pub fn charge_bytes(&mut self, bytes: u64) -> Result<(), Error> {
        self.bytes = self.bytes.saturating_add(bytes);
        if self.bytes > self.max_bytes {
            return Err(capacity_exceeded(self.max_bytes));
        }
        Ok(())
    }

    /// Charges one kept row.
    pub fn charge_row(&mut self, row: &[Value]) -> Result<(), Error> {
        self.charge(row_bytes(row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_bytes_are_both_bounded() {
        let mut budget = RowBudget::new(2, 1 << 20);
        budget.charge_row(&[Value::Int(1)]).unwrap();
        budget.charge_row(&[Value::Int(2)]).unwrap();
        assert_eq!(budget.charge_row(&[Value::Int(3)]).unwrap_err().code(), 1172);

        let mut budget = RowBudget::new(100, 10_000);
        budget.charge_row(&[Value::Text("x".repeat(5_000))]).unwrap();
        let refused = budget.charge_row(&[Value::Text("y".repeat(5_000))]).unwrap_err();
        assert_eq!((refused.code(), refused.kind.sqlstate()), (3170, "HY000"));
        assert!(refused.message.starts_with("Memory capacity of 10000 bytes for 'max_statement_memory' exceeded."), "{}", refused.message);
    }
}
