//! What a statement answers: an OK, rows with their column metadata, or an error.
//!
//! The daemon maps these onto MySQL packets; nothing here knows the wire format. Column
//! metadata is MySQL's ([`ColumnMeta`]): clients read types, signedness, nullability and
//! text-versus-binary from it (CLIENTS.md §2.6), so it is computed exactly as MySQL does, and
//! every value of a result is converted to its column's declared type before it leaves (an
//! INT column only ever carries `Value::Int`/`Value::UInt`, a DECIMAL column `Value::Decimal`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use cairn_common::types::{ColumnType, type_code};
use cairn_common::{Error, Result, Value};

/// One row of a result: one value per column.
pub type Row = Vec<Value>;

/// The metadata of one result column, as MySQL sends it in a column definition.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnMeta {
    /// The database of the table the column comes from (empty for expressions).
    pub schema: String,
    /// The table's alias in the query (or its name).
    pub table: String,
    /// The table's real name.
    pub org_table: String,
    /// The column's alias, or the expression's text.
    pub name: String,
    /// The column's real name (empty for expressions).
    pub org_name: String,
    /// The declared type; `None` is MySQL's NULL type (`SELECT NULL`), whose values are all
    /// NULL.
    pub ty: Option<ColumnType>,
    pub nullable: bool,
    /// Bits of `cairn_common::types::column_flag`.
    pub flags: u16,
    /// The collation id: 63 (binary) for numbers, temporals and binary strings, else the
    /// session's result collation.
    pub charset: u16,
    /// Display length: characters for numbers and temporals, bytes for strings.
    pub length: u32,
    /// Digits after the point (scale, fractional seconds), 31 for "not fixed".
    pub decimals: u8,
}

impl ColumnMeta {
    /// The protocol type code (`enum_field_types`).
    pub fn type_code(&self) -> u8 {
        match &self.ty {
            None => type_code::NULL,
            Some(ty) => ty.type_code(),
        }
    }

    pub fn is_unsigned(&self) -> bool {
        self.flags & cairn_common::types::column_flag::UNSIGNED != 0
    }
}

/// The future of one batch of a [`RowStream`].
pub type BatchFuture<'a> = Pin<Box<dyn Future<Output = Option<Result<Vec<Row>>>> + Send + 'a>>;

/// A source of row batches produced while the result is being sent, so that a scan of a
/// million rows is never held whole in memory. `None` ends the rows; an error ends them with
/// that error (the client sees the rows before it, then the error).
pub trait RowStream: Send {
    fn next_batch(&mut self) -> BatchFuture<'_>;
}

/// The rows of a result.
pub enum RowSource {
    /// Every row at hand.
    Rows(Vec<Row>),
    /// Rows fetched from the node groups as they are consumed.
    Stream(Box<dyn RowStream>),
}

impl RowSource {
    /// Gathers every row (tests and small results); stops at the first error.
    pub async fn collect(self) -> Result<Vec<Row>> {
        match self {
            RowSource::Rows(rows) => Ok(rows),
            RowSource::Stream(mut stream) => {
                let mut rows = Vec::new();
                while let Some(batch) = stream.next_batch().await {
                    rows.extend(batch?);
                }
                Ok(rows)
            }
        }
    }
}

impl fmt::Debug for RowSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowSource::Rows(rows) => write!(f, "RowSource::Rows({} rows)", rows.len()),
            RowSource::Stream(_) => f.write_str("RowSource::Stream"),
        }
    }
}

/// The result of one statement.
#[derive(Debug)]
pub enum Outcome {
    /// A statement that returns no rows (MySQL's OK packet).
    Ok { affected_rows: u64, last_insert_id: u64, info: String, warnings: u16 },
    /// A result set. `warnings` counts the warnings known when the result was produced (a
    /// streamed scan may add more, visible through SHOW WARNINGS afterwards).
    Rows { columns: Arc<[ColumnMeta]>, rows: RowSource, warnings: u16 },
    Error(Error),
    /// LOAD DATA LOCAL INFILE: the client must send this file (the daemon relays it to
    /// `Session::local_infile_data` and then calls `Session::local_infile_end`).
    LocalInfile(String),
}

impl Outcome {
    pub(crate) fn ok() -> Outcome {
        Outcome::Ok { affected_rows: 0, last_insert_id: 0, info: String::new(), warnings: 0 }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Outcome::Error(_))
    }
}

/// What COM_STMT_PREPARE answers.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedInfo {
    /// Unique among the session's open statements.
    pub id: u32,
    pub param_count: u16,
    /// The result columns of a SELECT (or SHOW); empty for statements returning no rows.
    pub columns: Vec<ColumnMeta>,
}
