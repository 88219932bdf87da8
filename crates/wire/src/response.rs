//! What a handler answers: OK packets, errors, result sets (materialised or streamed), and the
//! reply to COM_STMT_PREPARE.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::constants::{ColumnType, charset, column_flag};
use crate::value::Value;

/// A column definition, sent before the rows of a result set, as a prepared statement's result
/// and parameter metadata, and in answer to COM_FIELD_LIST.
///
/// Clients read types, signedness and text-versus-binary from these fields (CLIENTS.md §2.6),
/// so they must describe the values truly: `charset` 63 for binary strings, the `UNSIGNED` flag
/// for unsigned integers, `column_length` in bytes (characters × 4 for utf8mb4 text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub schema: String,
    pub table: String,
    pub org_table: String,
    pub name: String,
    pub org_name: String,
    /// Collation id: 63 (`binary`) for numbers, temporals and binary strings.
    pub charset: u16,
    pub column_length: u32,
    pub column_type: ColumnType,
    /// Bits from [`column_flag`].
    pub flags: u16,
    /// Digits after the point: the scale of DECIMAL, the fractional-second precision of
    /// temporal types, 31 for "not fixed" (computed floats and strings).
    pub decimals: u8,
}

impl Column {
    /// A column with defaults that suit the type: `binary` charset and the MySQL display width
    /// for numbers and temporals, utf8mb4 for character strings. Adjust with the builder
    /// methods.
    pub fn new(name: impl Into<String>, column_type: ColumnType) -> Self {
        let name = name.into();
        let (charset_id, column_length, flags, decimals) = match column_type {
            ColumnType::TINY => (charset::BINARY, 4, column_flag::NUM, 0),
            ColumnType::SHORT => (charset::BINARY, 6, column_flag::NUM, 0),
            ColumnType::INT24 => (charset::BINARY, 9, column_flag::NUM, 0),
            ColumnType::LONG => (charset::BINARY, 11, column_flag::NUM, 0),
            ColumnType::LONGLONG => (charset::BINARY, 20, column_flag::NUM, 0),
            ColumnType::FLOAT => (charset::BINARY, 12, column_flag::NUM, 31),
            ColumnType::DOUBLE => (charset::BINARY, 22, column_flag::NUM, 31),
            // DECIMAL(10,0), MySQL's default precision and scale.
            ColumnType::DECIMAL | ColumnType::NEWDECIMAL => {
                (charset::BINARY, 11, column_flag::NUM, 0)
            }
            ColumnType::YEAR => (
                charset::BINARY,
                4,
                column_flag::NUM | column_flag::UNSIGNED | column_flag::ZEROFILL,
                0,
            ),
            ColumnType::DATE | ColumnType::NEWDATE => (charset::BINARY, 10, column_flag::BINARY, 0),
            ColumnType::DATETIME | ColumnType::TIMESTAMP => {
                (charset::BINARY, 19, column_flag::BINARY, 0)
            }
            ColumnType::TIME => (charset::BINARY, 10, column_flag::BINARY, 0),
            ColumnType::BIT => (charset::BINARY, 1, column_flag::UNSIGNED, 0),
            ColumnType::NULL => (charset::BINARY, 0, column_flag::BINARY, 0),
            ColumnType::TINY_BLOB
            | ColumnType::BLOB
            | ColumnType::MEDIUM_BLOB
            | ColumnType::LONG_BLOB => (charset::UTF8MB4_GENERAL_CI, 262_140, column_flag::BLOB, 0),
            ColumnType::JSON => (
                charset::BINARY,
                u32::MAX,
                column_flag::BLOB | column_flag::BINARY,
                0,
            ),
            _ => (charset::UTF8MB4_GENERAL_CI, 1020, 0, 0),
        };
        Column {
            schema: String::new(),
            table: String::new(),
            org_table: String::new(),
            org_name: name.clone(),
            name,
            charset: charset_id,
            column_length,
            column_type,
            flags,
            decimals,
        }
    }

    /// The schema, table and original table this column comes from.
    pub fn source(mut self, schema: impl Into<String>, table: impl Into<String>) -> Self {
        self.schema = schema.into();
        self.table = table.into();
        self.org_table = self.table.clone();
        self
    }

    pub fn charset(mut self, charset: u16) -> Self {
        self.charset = charset;
        self
    }

    pub fn length(mut self, column_length: u32) -> Self {
        self.column_length = column_length;
        self
    }

    /// Replaces the flags.
    pub fn flags(mut self, flags: u16) -> Self {
        self.flags = flags;
        self
    }

    pub fn decimals(mut self, decimals: u8) -> Self {
        self.decimals = decimals;
        self
    }

    /// The definition MySQL sends for a statement parameter: a nameless binary VAR_STRING.
    pub fn parameter() -> Self {
        Column::new("?", ColumnType::VAR_STRING)
            .charset(charset::BINARY)
            .length(0)
    }
}

/// An OK packet: the result of a statement that returns no rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OkPacket {
    pub affected_rows: u64,
    pub last_insert_id: u64,
    pub warnings: u16,
    /// Human-readable info, e.g. `Rows matched: 1  Changed: 1  Warnings: 0` (mysql2 parses it).
    pub info: String,
    /// Status bits ORed into the handler's [`crate::Handler::status_flags`] for this packet only.
    pub extra_status: u16,
}

/// An ERR packet: a MySQL error number, a five-character SQLSTATE and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPacket {
    pub code: u16,
    pub sqlstate: [u8; 5],
    pub message: String,
}

impl ErrorPacket {
    /// An error with the given SQLSTATE. A state that is not five ASCII characters becomes the
    /// generic `HY000`, so that a mistake in a caller never produces a malformed packet.
    pub fn new(code: u16, sqlstate: &str, message: impl Into<String>) -> Self {
        let state = match <[u8; 5]>::try_from(sqlstate.as_bytes()) {
            Ok(state) if state.iter().all(|b| b.is_ascii_alphanumeric()) => state,
            _ => *b"HY000",
        };
        ErrorPacket {
            code,
            sqlstate: state,
            message: message.into(),
        }
    }

    /// The SQLSTATE as text.
    pub fn sqlstate_str(&self) -> &str {
        std::str::from_utf8(&self.sqlstate).unwrap_or("HY000")
    }
}

impl std::fmt::Display for ErrorPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ERROR {} ({}): {}",
            self.code,
            self.sqlstate_str(),
            self.message
        )
    }
}

impl std::error::Error for ErrorPacket {}

/// One row: one value per column, in column order.
pub type Row = Vec<Value>;

/// A batch of rows from a [`RowSource`], or the error that ends the result.
pub type RowBatch = Result<Vec<Row>, ErrorPacket>;

/// A source of rows produced while the result is being sent, so that a large scan is never
/// held in memory whole. The connection asks for batches until `None`; an `Err` batch ends the
/// result with that ERR packet (the client sees the rows before it, then the error).
///
/// A bounded `tokio::sync::mpsc::Receiver<RowBatch>` is a ready-made source: a producer task
/// feeds it and waits whenever the client reads slower than the scan runs.
pub trait RowSource: Send {
    fn next_batch(&mut self) -> Pin<Box<dyn Future<Output = Option<RowBatch>> + Send + '_>>;
}

impl RowSource for tokio::sync::mpsc::Receiver<RowBatch> {
    fn next_batch(&mut self) -> Pin<Box<dyn Future<Output = Option<RowBatch>> + Send + '_>> {
        Box::pin(self.recv())
    }
}

/// The rows of a result set.
pub enum Rows {
    /// All rows at hand.
    Materialized(Vec<Row>),
    /// Rows produced while sending.
    Stream(Box<dyn RowSource>),
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rows::Materialized(rows) => write!(f, "Rows::Materialized({} rows)", rows.len()),
            Rows::Stream(_) => f.write_str("Rows::Stream"),
        }
    }
}

/// A result set: column definitions and rows. The crate writes it in the text protocol for
/// COM_QUERY and in the binary protocol for COM_STMT_EXECUTE.
#[derive(Debug)]
pub struct ResultSet {
    pub columns: Arc<[Column]>,
    pub rows: Rows,
    /// Warning count reported in the packet that ends the rows.
    pub warnings: u16,
}

impl ResultSet {
    pub fn new(columns: impl Into<Arc<[Column]>>, rows: Vec<Row>) -> Self {
        ResultSet {
            columns: columns.into(),
            rows: Rows::Materialized(rows),
            warnings: 0,
        }
    }

    pub fn streamed(columns: impl Into<Arc<[Column]>>, source: impl RowSource + 'static) -> Self {
        ResultSet {
            columns: columns.into(),
            rows: Rows::Stream(Box::new(source)),
            warnings: 0,
        }
    }
}

/// One statement's outcome.
#[derive(Debug)]
pub enum Response {
    Ok(OkPacket),
    ResultSet(ResultSet),
    Error(ErrorPacket),
    /// LOAD DATA LOCAL INFILE: ask the client for the named file. It must be the last response
    /// of a command; the crate sends the request, feeds the file to
    /// [`crate::Handler::local_infile_data`] and then asks [`crate::Handler::local_infile_end`]
    /// for the statement's outcome and those of the statements after it.
    LocalInfile(String),
}

impl From<OkPacket> for Response {
    fn from(ok: OkPacket) -> Self {
        Response::Ok(ok)
    }
}
impl From<ResultSet> for Response {
    fn from(rs: ResultSet) -> Self {
        Response::ResultSet(rs)
    }
}
impl From<ErrorPacket> for Response {
    fn from(e: ErrorPacket) -> Self {
        Response::Error(e)
    }
}

/// The outcomes of one COM_QUERY or COM_STMT_EXECUTE, in order, collected from the handler and
/// written after it returns. Every response but the last carries MORE_RESULTS_EXISTS; writing
/// stops at the first error, as MySQL stops executing a multi-statement at its first error. A
/// command that pushes nothing is answered with a plain OK.
#[derive(Debug)]
pub struct Responses {
    pub(crate) items: Vec<Response>,
    /// The status flags to send with each response, when the handler knows them per statement
    /// (IN_TRANS and AUTOCOMMIT as of that statement); `None` sends the status read after the
    /// command.
    pub(crate) statuses: Vec<Option<u16>>,
    multi_statements: bool,
    client_capabilities: u32,
}

impl Responses {
    /// An empty collector. The connection makes one per command; handler tests make their own.
    pub fn new(multi_statements: bool, client_capabilities: u32) -> Self {
        Responses {
            items: Vec::new(),
            statuses: Vec::new(),
            multi_statements,
            client_capabilities,
        }
    }

    /// The collected responses, in order.
    pub fn into_vec(self) -> Vec<Response> {
        self.items
    }

    pub fn iter(&self) -> impl Iterator<Item = &Response> {
        self.items.iter()
    }

    pub fn push(&mut self, response: impl Into<Response>) {
        self.items.push(response.into());
        self.statuses.push(None);
    }

    /// Pushes a response with the status flags of the session as that statement left it, so
    /// that each result of a multi-statement carries its own IN_TRANS and AUTOCOMMIT.
    pub fn push_with_status(&mut self, response: impl Into<Response>, status: u16) {
        self.items.push(response.into());
        self.statuses.push(Some(status));
    }

    pub fn ok(&mut self, ok: OkPacket) {
        self.push(ok);
    }

    pub fn error(&mut self, error: ErrorPacket) {
        self.push(error);
    }

    pub fn result_set(&mut self, result_set: ResultSet) {
        self.push(result_set);
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The last response pushed: a multi-statement loop stops once it is an error.
    pub fn last(&self) -> Option<&Response> {
        self.items.last()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether the client may send several statements in one COM_QUERY (CLIENT_MULTI_STATEMENTS
    /// at connect time, changed by COM_SET_OPTION). When false, MySQL answers a text holding
    /// several statements with a syntax error (1064).
    pub fn multi_statements(&self) -> bool {
        self.multi_statements
    }

    /// The capabilities in effect for this connection (the client's, limited to the server's).
    /// FOUND_ROWS decides whether affected rows count matched or changed rows.
    pub fn client_capabilities(&self) -> u32 {
        self.client_capabilities
    }
}

/// The handler's answer to COM_STMT_PREPARE.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Chosen by the handler, unique among this connection's open statements.
    pub statement_id: u32,
    /// One definition per `?` placeholder; [`Column::parameter`] is what MySQL sends.
    pub params: Vec<Column>,
    /// The result columns, empty for statements that return no rows.
    pub columns: Vec<Column>,
    pub warnings: u16,
}

impl Prepared {
    /// A prepared statement with `param_count` default parameter definitions.
    pub fn new(statement_id: u32, param_count: u16, columns: Vec<Column>) -> Self {
        Prepared {
            statement_id,
            params: vec![Column::parameter(); usize::from(param_count)],
            columns,
            warnings: 0,
        }
    }
}
