//! Test support: a toy in-memory handler, a server that runs it on a free port and accounts
//! for every connection task, and a raw protocol client for what real clients cannot be made
//! to send.

#![allow(dead_code)]

pub mod caching_sha2;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_wire::{
    AuthRequest, Column, ColumnType, Error, ErrorPacket, Handler, KillHandle, OkPacket, ParamValue, Prepared,
    Response, Responses, ResultSet, RowBatch, ServerOptions, Value, capability, charset,
    column_flag, native_password_hash, serve, status, verify_native_password,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub const ROOT_PASSWORD: &str = "secret";

/// How a [`LoginOnly`] server decides a `caching_sha2_password` login.
pub trait Login: Send {
    fn login(&mut self, request: &AuthRequest<'_>) -> Result<(), ErrorPacket>;
}

/// A handler for tests of logging in: every account uses `caching_sha2_password`, `L` decides
/// each login (and each COM_CHANGE_USER), and every command after login gets a fixed answer
/// (a query: OK with 7 affected rows).
pub struct LoginOnly<L>(pub L);

impl<L: Login> Handler for LoginOnly<L> {
    fn auth_plugin(&mut self, _user: &str, _client_addr: Option<SocketAddr>) -> &'static str {
        cairn_wire::CACHING_SHA2_PLUGIN
    }

    async fn authenticate(&mut self, request: &AuthRequest<'_>) -> Result<(), ErrorPacket> {
        self.0.login(request)
    }

    async fn query(&mut self, _sql: &[u8], out: &mut Responses) {
        out.push(OkPacket { affected_rows: 7, ..OkPacket::default() });
    }

    async fn prepare(&mut self, _sql: &[u8]) -> Result<Prepared, ErrorPacket> {
        Err(ErrorPacket::new(1295, "HY000", "not here"))
    }

    async fn execute(&mut self, _id: u32, _params: &[ParamValue], _out: &mut Responses) {}

    fn close_statement(&mut self, _id: u32) {}

    async fn init_db(&mut self, _database: &str) -> Result<(), ErrorPacket> {
        Ok(())
    }

    async fn field_list(&mut self, _table: &str, _wildcard: &str) -> Result<Vec<Column>, ErrorPacket> {
        Ok(Vec::new())
    }

    async fn reset_connection(&mut self) {}

    async fn change_user(&mut self, request: &AuthRequest<'_>) -> Result<(), ErrorPacket> {
        self.0.login(request)
    }

    fn status_flags(&self) -> u16 {
        2
    }

    fn statistics(&mut self) -> String {
        String::new()
    }
}

/// State shared by every connection of one test server, for assertions.
#[derive(Debug, Default)]
pub struct Shared {
    /// Statements the handlers prepared and have not closed yet.
    pub open_statements: AtomicUsize,
    pub queries: AtomicUsize,
    pub logins: Mutex<Vec<LoginRecord>>,
    /// Each connection's kill handle, by connection id.
    pub kills: Mutex<HashMap<u32, KillHandle>>,
    /// Commands the handlers were interrupted in.
    pub interrupted: AtomicUsize,
}

#[derive(Debug, Clone)]
pub struct LoginRecord {
    pub user: String,
    pub database: Option<String>,
    pub collation: u16,
    pub capabilities: u32,
    pub connect_attrs: Vec<(String, String)>,
    pub change_user: bool,
}

#[derive(Debug, Clone, Copy)]
enum Statement {
    /// `SELECT ?, ?, ...`: returns its parameters as one row.
    Echo,
    SelectTable,
    SelectById,
    Insert,
    /// Fails at execute time with 1062.
    FailExecute,
    /// A TINYINT column holding 1000 in its second row: the result must end with an error.
    BadValue,
    Select1,
    Stream(usize),
    /// Two result sets and an OK, as a CALL would give.
    MultiResult,
}

/// The toy handler: one fixed table `calmail.t`, a few users, session variables.
pub struct Dummy {
    shared: Arc<Shared>,
    user: String,
    database: Option<String>,
    in_transaction: bool,
    autocommit: bool,
    variables: HashMap<String, Value>,
    next_statement: u32,
    statements: HashMap<u32, Statement>,
    /// The LOAD DATA LOCAL file received so far.
    infile: Vec<u8>,
    infile_packets: usize,
}

impl Dummy {
    pub fn new(shared: Arc<Shared>) -> Self {
        Dummy {
            shared,
            user: String::new(),
            database: None,
            in_transaction: false,
            autocommit: true,
            variables: HashMap::new(),
            next_statement: 1,
            statements: HashMap::new(),
            infile: Vec::new(),
            infile_packets: 0,
        }
    }

    fn check_login(
        &mut self,
        request: &AuthRequest<'_>,
        change_user: bool,
    ) -> Result<(), ErrorPacket> {
        let stored = match request.user {
            "root" => Some(native_password_hash(ROOT_PASSWORD)),
            "alice" => Some(native_password_hash("")),
            "bob" => Some(native_password_hash("bobpw")),
            _ => None,
        };
        let good = stored.is_some_and(|hash| {
            verify_native_password(request.scramble, request.auth_response, &hash)
        });
        if !good {
            let host = request
                .client_addr
                .map_or("localhost".to_string(), |a| a.ip().to_string());
            let using = if request.auth_response.is_empty() {
                "NO"
            } else {
                "YES"
            };
            return Err(ErrorPacket::new(
                1045,
                "28000",
                format!(
                    "Access denied for user '{}'@'{host}' (using password: {using})",
                    request.user
                ),
            ));
        }
        if let Some(db) = request.database {
            check_database(db)?;
        }
        self.shared.logins.lock().unwrap().push(LoginRecord {
            user: request.user.to_string(),
            database: request.database.map(str::to_string),
            collation: request.collation,
            capabilities: request.capabilities,
            connect_attrs: request.connect_attrs.to_vec(),
            change_user,
        });
        self.user = request.user.to_string();
        self.database = request.database.map(str::to_string);
        Ok(())
    }

    fn reset_session(&mut self) {
        self.variables.clear();
        self.in_transaction = false;
        self.autocommit = true;
    }

    /// Runs one statement of a COM_QUERY.
    fn run_one(&mut self, sql: &[u8], out: &mut Responses) {
        let text = String::from_utf8_lossy(sql);
        let lower = text.trim().to_ascii_lowercase();
        if let Some(rest) = sql.strip_prefix(b"select _binary'")
            && let Some(bytes) = rest.strip_suffix(b"'")
        {
            // Raw bytes, not UTF-8, as older PyMySQL and hand-written clients send them.
            let column = Column::new("b", ColumnType::BLOB).charset(charset::BINARY);
            out.push(ResultSet::new(
                vec![column],
                vec![vec![Value::Bytes(bytes.to_vec())]],
            ));
            return;
        }
        if let Some(hex) = lower
            .strip_prefix("select x'")
            .and_then(|rest| rest.strip_suffix('\''))
            && let Some(bytes) = decode_hex(hex)
        {
            // A hex literal: what PyMySQL 2 sends for a bytes parameter.
            let column = Column::new("b", ColumnType::BLOB).charset(charset::BINARY);
            out.push(ResultSet::new(
                vec![column],
                vec![vec![Value::Bytes(bytes)]],
            ));
            return;
        }
        if lower.starts_with("/*len*/") {
            let column = Column::new("len", ColumnType::LONGLONG);
            out.push(ResultSet::new(
                vec![column],
                vec![vec![Value::from(sql.len() as u64)]],
            ));
            return;
        }
        let words: Vec<&str> = lower.split_whitespace().collect();
        match words.as_slice() {
            [] => out.push(ErrorPacket::new(1065, "42000", "Query was empty")),
            ["select", "1"] => out.push(select_one()),
            ["select", "*", "from", "t"] => out.push(ResultSet::new(table_columns(), table_rows())),
            ["select", "*", "from", "missing"] => out.push(missing_table()),
            ["select", "database()"] => {
                let column = Column::new("DATABASE()", ColumnType::VAR_STRING);
                out.push(ResultSet::new(
                    vec![column],
                    vec![vec![Value::from(self.database.clone())]],
                ));
            }
            ["select", "current_user()"] => {
                let column = Column::new("CURRENT_USER()", ColumnType::VAR_STRING);
                out.push(ResultSet::new(
                    vec![column],
                    vec![vec![Value::from(format!("{}@%", self.user))]],
                ));
            }
            ["select", "@@version_comment", "limit", "1"] => {
                let column = Column::new("@@version_comment", ColumnType::VAR_STRING);
                out.push(ResultSet::new(
                    vec![column],
                    vec![vec![Value::from("Cairn test server")]],
                ));
            }
            ["select", var] if var.starts_with('@') && !var.starts_with("@@") => {
                let value = self
                    .variables
                    .get(&var[1..])
                    .cloned()
                    .unwrap_or(Value::Null);
                let column = match value {
                    Value::Int(_) => Column::new(*var, ColumnType::LONGLONG),
                    _ => Column::new(*var, ColumnType::VAR_STRING),
                };
                out.push(ResultSet::new(vec![column], vec![vec![value]]));
            }
            ["set", var, "=", value] if var.starts_with('@') => {
                let value = value
                    .parse::<i64>()
                    .map_or_else(|_| Value::from(*value), Value::Int);
                self.variables.insert(var[1..].to_string(), value);
                out.push(OkPacket::default());
            }
            ["set", rest @ ..] if rest.concat().starts_with("autocommit") => {
                let setting = rest.concat();
                self.autocommit = setting.ends_with('1') || setting.ends_with("on");
                out.push(OkPacket::default());
            }
            ["set", ..] => out.push(OkPacket::default()),
            ["begin"] | ["start", "transaction"] => {
                self.in_transaction = true;
                out.push(OkPacket::default());
            }
            ["commit"] | ["rollback"] => {
                self.in_transaction = false;
                out.push(OkPacket::default());
            }
            ["insert", "dup", ..] => out.push(duplicate_key()),
            ["insert", "into", "t", ..] => out.push(OkPacket {
                affected_rows: 3,
                last_insert_id: 42,
                info: "Records: 3  Duplicates: 0  Warnings: 0".to_string(),
                ..OkPacket::default()
            }),
            ["update", "t", ..] => {
                // Three rows match, one changes: FOUND_ROWS decides which count is reported.
                let found_rows = out.client_capabilities() & capability::FOUND_ROWS != 0;
                out.push(OkPacket {
                    affected_rows: if found_rows { 3 } else { 1 },
                    info: "Rows matched: 3  Changed: 1  Warnings: 0".to_string(),
                    ..OkPacket::default()
                });
            }
            ["warn"] => out.push(OkPacket {
                warnings: 2,
                ..OkPacket::default()
            }),
            ["stream", n] => match n.parse::<usize>() {
                Ok(n) => out.push(stream_rows(n, false)),
                Err(_) => out.push(syntax_error(&text)),
            },
            ["stream_error", n] => match n.parse::<usize>() {
                Ok(n) => out.push(stream_rows(n, true)),
                Err(_) => out.push(syntax_error(&text)),
            },
            ["big", n] => match n.parse::<usize>() {
                Ok(n) => {
                    let column = Column::new("big", ColumnType::LONG_BLOB).charset(charset::BINARY);
                    out.push(ResultSet::new(
                        vec![column],
                        vec![vec![Value::Bytes(vec![b'x'; n])]],
                    ));
                }
                Err(_) => out.push(syntax_error(&text)),
            },
            _ => out.push(syntax_error(&text)),
        }
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

fn check_database(db: &str) -> Result<(), ErrorPacket> {
    match db {
        "calmail" | "test" => Ok(()),
        _ => Err(ErrorPacket::new(
            1049,
            "42000",
            format!("Unknown database '{db}'"),
        )),
    }
}

fn select_one() -> ResultSet {
    ResultSet::new(
        vec![
            Column::new("1", ColumnType::LONGLONG).flags(column_flag::NOT_NULL | column_flag::NUM),
        ],
        vec![vec![Value::Int(1)]],
    )
}

fn missing_table() -> ErrorPacket {
    ErrorPacket::new(1146, "42S02", "Table 'calmail.missing' doesn't exist")
}

fn duplicate_key() -> ErrorPacket {
    ErrorPacket::new(1062, "23000", "Duplicate entry '1' for key 't.PRIMARY'")
}

fn syntax_error(sql: &str) -> ErrorPacket {
    ErrorPacket::new(
        1064,
        "42000",
        format!("You have an error in your SQL syntax; check the manual near '{sql}' at line 1"),
    )
}

/// Splits statement text on semicolons outside quotes (enough for the tests; the SQL node's
/// splitter is token-aware).
fn split_statements(sql: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut quote = None;
    let mut start = 0;
    for (i, &b) in sql.iter().enumerate() {
        match (quote, b) {
            (None, b'\'' | b'"') => quote = Some(b),
            (Some(q), _) if q == b => quote = None,
            (None, b';') => {
                parts.push(&sql[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&sql[start..]);
    let non_empty: Vec<&[u8]> = parts
        .into_iter()
        .filter(|p| !p.trim_ascii().is_empty())
        .collect();
    if non_empty.is_empty() {
        vec![&sql[..0]]
    } else {
        non_empty
    }
}

pub fn table_columns() -> Vec<Column> {
    let source = |c: Column| c.source("calmail", "t");
    vec![
        source(Column::new("id", ColumnType::LONGLONG).flags(
            column_flag::NOT_NULL
                | column_flag::PRI_KEY
                | column_flag::AUTO_INCREMENT
                | column_flag::NUM,
        )),
        source(Column::new("name", ColumnType::VAR_STRING).length(255 * 4)),
        source(
            Column::new("price", ColumnType::NEWDECIMAL)
                .length(12)
                .decimals(2),
        ),
        source(Column::new("created", ColumnType::DATETIME)),
        source(
            Column::new("data", ColumnType::BLOB)
                .charset(charset::BINARY)
                .flags(column_flag::BLOB | column_flag::BINARY),
        ),
        source(
            Column::new("big", ColumnType::LONGLONG)
                .flags(column_flag::UNSIGNED | column_flag::NUM),
        ),
        source(Column::new("ratio", ColumnType::DOUBLE)),
        source(Column::new("born", ColumnType::DATE)),
        source(Column::new("dur", ColumnType::TIME).decimals(6)),
    ]
}

pub const TRICKY_NAME: &str = "bob's \"quoted\"\tname\\\nline 😀";

pub fn table_rows() -> Vec<Vec<Value>> {
    vec![
        vec![
            Value::Int(1),
            Value::from("alice"),
            Value::from("12.50"),
            Value::DateTime {
                year: 2024,
                month: 2,
                day: 29,
                hour: 13,
                minute: 14,
                second: 15,
                micros: 0,
            },
            Value::Bytes(vec![0xFF, 0x00]),
            Value::UInt(u64::MAX),
            Value::Double(0.5),
            Value::Date {
                year: 2000,
                month: 1,
                day: 1,
            },
            Value::Time {
                negative: false,
                days: 0,
                hours: 1,
                minutes: 2,
                seconds: 3,
                micros: 0,
            },
        ],
        vec![
            Value::Int(2),
            Value::from(TRICKY_NAME),
            Value::from("-0.01"),
            Value::DateTime {
                year: 1999,
                month: 12,
                day: 31,
                hour: 23,
                minute: 59,
                second: 59,
                micros: 0,
            },
            Value::Bytes(Vec::new()),
            Value::UInt(0),
            Value::Double(-1e300),
            Value::Date {
                year: 2024,
                month: 2,
                day: 29,
            },
            Value::Time {
                negative: true,
                days: 1,
                hours: 2,
                minutes: 3,
                seconds: 4,
                micros: 500_000,
            },
        ],
        vec![
            Value::Int(3),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        ],
    ]
}

/// `n` rows produced by a task through a bounded channel, optionally ending with an error.
fn stream_rows(n: usize, fail: bool) -> ResultSet {
    let (tx, rx) = tokio::sync::mpsc::channel::<RowBatch>(4);
    tokio::spawn(async move {
        let mut sent = 0;
        while sent < n {
            let batch: Vec<Vec<Value>> = (sent..n.min(sent + 500))
                .map(|i| vec![Value::Int(i as i64), Value::from(format!("row {i}"))])
                .collect();
            sent += batch.len();
            if tx.send(Ok(batch)).await.is_err() {
                return;
            }
        }
        if fail {
            let _ = tx
                .send(Err(ErrorPacket::new(
                    1317,
                    "70100",
                    "Query execution was interrupted",
                )))
                .await;
        }
    });
    let columns = vec![
        Column::new("i", ColumnType::LONGLONG),
        Column::new("s", ColumnType::VAR_STRING),
    ];
    ResultSet::streamed(columns, rx)
}

fn echo_column(param: &ParamValue) -> Column {
    match param.value {
        Value::Int(_) => Column::new("?", ColumnType::LONGLONG),
        Value::UInt(_) => {
            Column::new("?", ColumnType::LONGLONG).flags(column_flag::UNSIGNED | column_flag::NUM)
        }
        Value::Float(_) => Column::new("?", ColumnType::FLOAT),
        Value::Double(_) => Column::new("?", ColumnType::DOUBLE),
        Value::Bytes(_) => Column::new("?", ColumnType::VAR_STRING),
        Value::Date { .. } => Column::new("?", ColumnType::DATE),
        Value::DateTime { .. } => Column::new("?", ColumnType::DATETIME).decimals(6),
        Value::Time { .. } => Column::new("?", ColumnType::TIME).decimals(6),
        Value::Null => Column::new("?", ColumnType::NULL),
    }
}

fn integer_param(param: &ParamValue) -> Option<i64> {
    match &param.value {
        Value::Int(v) => Some(*v),
        Value::UInt(v) => i64::try_from(*v).ok(),
        Value::Double(v) => Some(*v as i64),
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

impl Handler for Dummy {
    async fn authenticate(&mut self, request: &AuthRequest<'_>) -> Result<(), ErrorPacket> {
        self.check_login(request, false)
    }

    async fn query(&mut self, sql: &[u8], out: &mut Responses) {
        self.shared.queries.fetch_add(1, Ordering::Relaxed);
        match sql {
            // Runs until KILL QUERY interrupts it.
            b"sleep" => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                out.push(OkPacket::default());
                return;
            }
            // Three statements, each with the status it left: in a transaction, then not.
            b"begin; insert; commit" => {
                out.push_with_status(OkPacket::default(), status::IN_TRANS | status::AUTOCOMMIT);
                out.push_with_status(OkPacket { affected_rows: 1, ..OkPacket::default() }, status::IN_TRANS | status::AUTOCOMMIT);
                out.push_with_status(OkPacket::default(), status::AUTOCOMMIT);
                return;
            }
            _ => {}
        }
        if let Some(name) = sql.strip_prefix(b"load ") {
            // LOAD DATA LOCAL: a result first when asked, then the request for the file.
            let name = match name.strip_prefix(b"after-select ") {
                Some(rest) => {
                    out.push(select_one());
                    rest
                }
                None => name,
            };
            self.infile.clear();
            self.infile_packets = 0;
            out.push(Response::LocalInfile(String::from_utf8_lossy(name).into_owned()));
            return;
        }
        let statements = split_statements(sql);
        if statements.len() > 1 && !out.multi_statements() {
            out.push(syntax_error(&String::from_utf8_lossy(sql)));
            return;
        }
        for statement in statements {
            self.run_one(statement.trim_ascii(), out);
            if matches!(out.last(), Some(Response::Error(_))) {
                break;
            }
        }
    }

    async fn local_infile_data(&mut self, data: &[u8]) {
        self.infile.extend_from_slice(data);
        self.infile_packets += 1;
    }

    async fn local_infile_end(&mut self, out: &mut Responses) {
        let lines = self.infile.iter().filter(|&&b| b == b'\n').count();
        out.push(OkPacket {
            affected_rows: lines as u64,
            info: format!("bytes={} packets={} lines={lines}", self.infile.len(), self.infile_packets),
            ..OkPacket::default()
        });
        // A statement after the LOAD DATA in the same text.
        out.push(select_one());
    }

    fn command_interrupted(&mut self) {
        self.shared.interrupted.fetch_add(1, Ordering::Relaxed);
    }

    async fn prepare(&mut self, sql: &[u8]) -> Result<Prepared, ErrorPacket> {
        let text = String::from_utf8_lossy(sql).trim().to_ascii_lowercase();
        let placeholders = text.matches('?').count() as u16;
        let (statement, columns) = if text.starts_with("select ?") {
            (
                Statement::Echo,
                vec![Column::new("?", ColumnType::VAR_STRING); usize::from(placeholders)],
            )
        } else if text == "select * from t where id = ?" {
            (Statement::SelectById, table_columns())
        } else if text == "select * from t" {
            (Statement::SelectTable, table_columns())
        } else if text.starts_with("insert into t") {
            (Statement::Insert, Vec::new())
        } else if text.starts_with("fail") {
            (Statement::FailExecute, Vec::new())
        } else if text == "select bad" {
            (
                Statement::BadValue,
                vec![Column::new("tiny", ColumnType::TINY)],
            )
        } else if text == "select 1" {
            (Statement::Select1, select_one().columns.to_vec())
        } else if text == "multi" {
            (Statement::MultiResult, Vec::new())
        } else if let Some(n) = text.strip_prefix("stream ").and_then(|n| n.parse().ok()) {
            (Statement::Stream(n), Vec::new())
        } else if text == "select * from missing" {
            return Err(missing_table());
        } else {
            return Err(syntax_error(&text));
        };
        let id = self.next_statement;
        self.next_statement += 1;
        self.statements.insert(id, statement);
        self.shared.open_statements.fetch_add(1, Ordering::SeqCst);
        Ok(Prepared::new(id, placeholders, columns))
    }

    async fn execute(&mut self, statement_id: u32, params: &[ParamValue], out: &mut Responses) {
        let Some(&statement) = self.statements.get(&statement_id) else {
            out.push(ErrorPacket::new(
                1243,
                "HY000",
                "unknown statement in the handler",
            ));
            return;
        };
        match statement {
            Statement::Echo => {
                let columns: Vec<Column> = params.iter().map(echo_column).collect();
                let row = params.iter().map(|p| p.value.clone()).collect();
                out.push(ResultSet::new(columns, vec![row]));
            }
            Statement::SelectTable => out.push(ResultSet::new(table_columns(), table_rows())),
            Statement::SelectById => {
                let id = params.first().and_then(integer_param);
                let rows = table_rows()
                    .into_iter()
                    .filter(|r| Some(&Value::Int(id.unwrap_or(-1))) == r.first())
                    .collect();
                out.push(ResultSet::new(table_columns(), rows));
            }
            Statement::Insert => out.push(OkPacket {
                affected_rows: 1,
                last_insert_id: 7 + params.len() as u64,
                ..OkPacket::default()
            }),
            Statement::FailExecute => out.push(duplicate_key()),
            Statement::BadValue => out.push(ResultSet::new(
                vec![Column::new("tiny", ColumnType::TINY)],
                vec![vec![Value::Int(1)], vec![Value::Int(1000)]],
            )),
            Statement::Select1 => out.push(select_one()),
            Statement::Stream(n) => out.push(stream_rows(n, false)),
            Statement::MultiResult => {
                out.push(select_one());
                out.push(ResultSet::new(table_columns(), table_rows()));
                out.push(OkPacket::default());
            }
        }
    }

    fn close_statement(&mut self, statement_id: u32) {
        if self.statements.remove(&statement_id).is_some() {
            self.shared.open_statements.fetch_sub(1, Ordering::SeqCst);
        }
    }

    async fn init_db(&mut self, database: &str) -> Result<(), ErrorPacket> {
        check_database(database)?;
        self.database = Some(database.to_string());
        Ok(())
    }

    async fn field_list(
        &mut self,
        table: &str,
        wildcard: &str,
    ) -> Result<Vec<Column>, ErrorPacket> {
        if table != "t" {
            return Err(ErrorPacket::new(
                1146,
                "42S02",
                format!("Table 'calmail.{table}' doesn't exist"),
            ));
        }
        let prefix = wildcard.trim_end_matches('%');
        Ok(table_columns()
            .into_iter()
            .filter(|c| c.name.starts_with(prefix))
            .collect())
    }

    async fn reset_connection(&mut self) {
        self.reset_session();
    }

    async fn change_user(&mut self, request: &AuthRequest<'_>) -> Result<(), ErrorPacket> {
        self.check_login(request, true)?;
        self.reset_session();
        Ok(())
    }

    fn status_flags(&self) -> u16 {
        let mut flags = 0;
        if self.autocommit {
            flags |= status::AUTOCOMMIT;
        }
        if self.in_transaction {
            flags |= status::IN_TRANS;
        }
        flags
    }

    fn statistics(&mut self) -> String {
        format!(
            "Uptime: 1  Threads: 1  Questions: {}  Slow queries: 0  Opens: 0  Flush tables: 1  Open tables: 1  Queries per second avg: 1.000",
            self.shared.queries.load(Ordering::Relaxed)
        )
    }
}

/// Every connection task a test server started.
type ConnectionTasks = Arc<Mutex<Vec<JoinHandle<Result<(), Error>>>>>;

/// A server running the dummy handler on a free port, keeping every connection task so that
/// a test can check that each one ended without panicking.
pub struct TestServer {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    accept: JoinHandle<()>,
    connections: ConnectionTasks,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with_options(ServerOptions::default()).await
    }

    pub async fn with_options(options: ServerOptions) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared::default());
        let connections: ConnectionTasks = Arc::default();
        let accept = {
            let shared = shared.clone();
            let connections = connections.clone();
            tokio::spawn(async move {
                let mut next_id = 1u32;
                while let Ok((stream, peer)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    let mut options = options.clone();
                    options.connection_id = next_id;
                    options.client_addr = Some(peer);
                    options.kill = KillHandle::new();
                    shared.kills.lock().unwrap().insert(next_id, options.kill.clone());
                    next_id += 1;
                    let task = tokio::spawn(serve(stream, Dummy::new(shared.clone()), options));
                    connections.lock().unwrap().push(task);
                }
            })
        };
        TestServer {
            addr,
            shared,
            accept,
            connections,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// mysql_async options for this server: no start-up queries, a 64 MiB client packet limit.
    pub fn opts(&self, user: &str, password: &str) -> mysql_async::OptsBuilder {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port())
            .user(Some(user))
            .pass(Some(password))
            .prefer_socket(false)
            .max_allowed_packet(Some(64 << 20))
            .wait_timeout(Some(28_800))
    }

    pub async fn connect(&self) -> mysql_async::Conn {
        mysql_async::Conn::new(self.opts("root", ROOT_PASSWORD).db_name(Some("calmail")))
            .await
            .expect("connect as root")
    }

    /// Stops accepting and waits for every connection task: each must end (within a deadline)
    /// and none may have panicked. Returns their results in accept order.
    pub async fn finish(self) -> Vec<Result<(), Error>> {
        self.accept.abort();
        let tasks = std::mem::take(&mut *self.connections.lock().unwrap());
        let mut results = Vec::with_capacity(tasks.len());
        for task in tasks {
            match tokio::time::timeout(Duration::from_secs(30), task).await {
                Err(_) => panic!("a connection task did not end"),
                Ok(Err(join_error)) => panic!("a connection task failed: {join_error}"),
                Ok(Ok(result)) => results.push(result),
            }
        }
        results
    }

    /// How many connection tasks have been started so far.
    pub fn connection_count(&self) -> usize {
        self.connections.lock().unwrap().len()
    }
}

// ----- A raw protocol client -----

/// Frames a payload the way a client does, splitting at 0xFFFFFF bytes.
pub fn frame(payload: &[u8], mut seq: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    let mut offset = 0;
    loop {
        let n = (payload.len() - offset).min(0xFF_FFFF);
        out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        out.push(seq);
        out.extend_from_slice(&payload[offset..offset + n]);
        seq = seq.wrapping_add(1);
        offset += n;
        if n < 0xFF_FFFF {
            return out;
        }
    }
}

#[derive(Debug, Clone)]
pub struct Greeting {
    pub version: String,
    pub connection_id: u32,
    pub scramble: [u8; 20],
    pub capabilities: u32,
    pub collation: u8,
    pub status: u16,
    pub plugin: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub schema: String,
    pub table: String,
    pub name: String,
    pub charset: u16,
    pub length: u32,
    pub column_type: u8,
    pub flags: u16,
    pub decimals: u8,
    /// Bytes after the fixed fields (COM_FIELD_LIST's default value).
    pub extra: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Ok {
        affected_rows: u64,
        last_insert_id: u64,
        status: u16,
        warnings: u16,
        info: String,
    },
    Err {
        code: u16,
        sqlstate: String,
        message: String,
    },
    /// A result set; `error` is set when it ended with an ERR packet instead of a terminator.
    Rows {
        columns: Vec<ColumnDef>,
        rows: Vec<Vec<u8>>,
        status: u16,
        warnings: u16,
        error: Option<Box<Reply>>,
    },
}

impl Reply {
    pub fn status(&self) -> u16 {
        match self {
            Reply::Ok { status, .. } | Reply::Rows { status, .. } => *status,
            Reply::Err { .. } => 0,
        }
    }

    /// Text-protocol rows as optional byte strings.
    pub fn text_rows(&self) -> Vec<Vec<Option<Vec<u8>>>> {
        let Reply::Rows { rows, columns, .. } = self else {
            panic!("not a result set: {self:?}")
        };
        rows.iter()
            .map(|row| {
                let mut r = Cursor::new(row);
                (0..columns.len())
                    .map(|_| {
                        if r.peek() == Some(0xFB) {
                            r.u8();
                            None
                        } else {
                            Some(r.lenenc_bytes().to_vec())
                        }
                    })
                    .collect()
            })
            .collect()
    }
}

/// A tiny reader for test assertions; panics on malformed input (the server under test must
/// never produce it).
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }
    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        out
    }
    pub fn u8(&mut self) -> u8 {
        self.bytes(1)[0]
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes(2).try_into().unwrap())
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes(4).try_into().unwrap())
    }
    pub fn lenenc(&mut self) -> u64 {
        match self.u8() {
            b @ 0..=0xFA => u64::from(b),
            0xFC => u64::from(self.u16()),
            0xFD => {
                let b = self.bytes(3);
                u64::from(b[0]) | u64::from(b[1]) << 8 | u64::from(b[2]) << 16
            }
            0xFE => u64::from_le_bytes(self.bytes(8).try_into().unwrap()),
            b => panic!("bad lenenc marker {b:#x}"),
        }
    }
    pub fn lenenc_bytes(&mut self) -> &'a [u8] {
        let n = self.lenenc() as usize;
        self.bytes(n)
    }
    pub fn null_terminated(&mut self) -> &'a [u8] {
        let end = self.buf[self.pos..]
            .iter()
            .position(|&b| b == 0)
            .expect("NUL");
        let out = &self.buf[self.pos..self.pos + end];
        self.pos += end + 1;
        out
    }
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }
    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }
}

pub fn parse_ok(payload: &[u8]) -> Reply {
    let mut c = Cursor::new(payload);
    c.u8();
    let affected_rows = c.lenenc();
    let last_insert_id = c.lenenc();
    let status = c.u16();
    let warnings = c.u16();
    let info = if c.is_empty() {
        String::new()
    } else {
        String::from_utf8(c.lenenc_bytes().to_vec()).unwrap()
    };
    assert!(c.is_empty(), "nothing after the info");
    Reply::Ok {
        affected_rows,
        last_insert_id,
        status,
        warnings,
        info,
    }
}

pub fn parse_err(payload: &[u8]) -> Reply {
    let mut c = Cursor::new(payload);
    assert_eq!(c.u8(), 0xFF);
    let code = c.u16();
    assert_eq!(c.u8(), b'#', "ERR packets carry the SQLSTATE marker");
    let sqlstate = String::from_utf8(c.bytes(5).to_vec()).unwrap();
    let message = String::from_utf8(c.rest().to_vec()).unwrap();
    Reply::Err {
        code,
        sqlstate,
        message,
    }
}

pub fn parse_column(payload: &[u8]) -> ColumnDef {
    let mut c = Cursor::new(payload);
    assert_eq!(c.lenenc_bytes(), b"def");
    let schema = String::from_utf8(c.lenenc_bytes().to_vec()).unwrap();
    let table = String::from_utf8(c.lenenc_bytes().to_vec()).unwrap();
    c.lenenc_bytes();
    let name = String::from_utf8(c.lenenc_bytes().to_vec()).unwrap();
    c.lenenc_bytes();
    assert_eq!(c.lenenc(), 0x0C);
    let charset = c.u16();
    let length = c.u32();
    let column_type = c.u8();
    let flags = c.u16();
    let decimals = c.u8();
    assert_eq!(c.u16(), 0);
    let extra = c.rest().to_vec();
    ColumnDef {
        schema,
        table,
        name,
        charset,
        length,
        column_type,
        flags,
        decimals,
        extra,
    }
}

pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
    pub greeting: Greeting,
    /// Capabilities this client sent.
    pub capabilities: u32,
}

/// What the raw client announces unless a test says otherwise (no DEPRECATE_EOF: the classic
/// framing).
pub const RAW_CAPABILITIES: u32 = capability::LONG_PASSWORD
    | capability::PROTOCOL_41
    | capability::SECURE_CONNECTION
    | capability::PLUGIN_AUTH
    | capability::PLUGIN_AUTH_LENENC_CLIENT_DATA
    | capability::MULTI_STATEMENTS
    | capability::MULTI_RESULTS
    | capability::TRANSACTIONS
    | capability::CONNECT_WITH_DB;

impl RawClient {
    /// Connects and reads the greeting.
    pub async fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        let mut client = RawClient {
            stream,
            buf: Vec::new(),
            greeting: empty_greeting(),
            capabilities: 0,
        };
        let (seq, _, payload) = client.read_packet().await.expect("greeting");
        assert_eq!(seq, 0);
        client.greeting = parse_greeting(&payload);
        client
    }

    /// Connects and logs in as root with `capabilities`, expecting OK.
    pub async fn login(addr: SocketAddr, capabilities: u32) -> Self {
        let mut client = Self::open(addr).await;
        let auth = cairn_wire::native_password_response(
            &client.greeting.scramble,
            ROOT_PASSWORD.as_bytes(),
        );
        let response = client.handshake_response(
            capabilities,
            "root",
            &auth,
            Some("calmail"),
            Some("mysql_native_password"),
        );
        client.send(1, &response).await;
        let (seq, _, payload) = client.read_packet().await.expect("login reply");
        assert_eq!(seq, 2);
        assert_eq!(payload[0], 0x00, "login failed: {:?}", parse_err(&payload));
        client
    }

    pub fn handshake_response(
        &mut self,
        capabilities: u32,
        user: &str,
        auth: &[u8],
        database: Option<&str>,
        plugin: Option<&str>,
    ) -> Vec<u8> {
        self.capabilities = capabilities;
        let mut out = Vec::new();
        out.extend_from_slice(&capabilities.to_le_bytes());
        out.extend_from_slice(&(16u32 << 20).to_le_bytes());
        out.push(45);
        out.extend_from_slice(&[0; 23]);
        out.extend_from_slice(user.as_bytes());
        out.push(0);
        // One length byte: the lenenc form and the SECURE_CONNECTION form agree below 251.
        out.push(auth.len() as u8);
        out.extend_from_slice(auth);
        if capabilities & capability::CONNECT_WITH_DB != 0 {
            out.extend_from_slice(database.unwrap_or("").as_bytes());
            out.push(0);
        }
        if let Some(plugin) = plugin {
            out.extend_from_slice(plugin.as_bytes());
            out.push(0);
        }
        out
    }

    pub fn deprecate_eof(&self) -> bool {
        self.capabilities & capability::DEPRECATE_EOF != 0
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    pub async fn send(&mut self, seq: u8, payload: &[u8]) {
        let framed = frame(payload, seq);
        self.write(&framed).await;
    }

    /// Sends a command (sequence id 0).
    pub async fn command(&mut self, payload: &[u8]) {
        self.send(0, payload).await;
    }

    /// Reads one reassembled payload: `(first seq, last seq, payload)`, `None` at end of stream.
    pub async fn read_packet(&mut self) -> Option<(u8, u8, Vec<u8>)> {
        let mut payload = Vec::new();
        let mut first = None;
        loop {
            while self.buf.len() < 4 {
                if !self.fill().await {
                    return None;
                }
            }
            let len = usize::from(self.buf[0])
                | usize::from(self.buf[1]) << 8
                | usize::from(self.buf[2]) << 16;
            let seq = self.buf[3];
            while self.buf.len() < 4 + len {
                if !self.fill().await {
                    return None;
                }
            }
            payload.extend_from_slice(&self.buf[4..4 + len]);
            self.buf.drain(..4 + len);
            let first_seq = *first.get_or_insert(seq);
            if len < 0xFF_FFFF {
                return Some((first_seq, seq, payload));
            }
        }
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = vec![0u8; 256 * 1024];
        let read = tokio::time::timeout(Duration::from_secs(30), self.stream.read(&mut chunk))
            .await
            .expect("the server did not answer within 30 s");
        match read {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    pub async fn expect_packet(&mut self) -> Vec<u8> {
        self.read_packet().await.expect("a packet").2
    }

    /// Reads a complete reply to COM_QUERY / COM_STMT_EXECUTE (either framing).
    pub async fn read_reply(&mut self) -> Reply {
        let payload = self.expect_packet().await;
        match payload[0] {
            0x00 => return parse_ok(&payload),
            0xFF => return parse_err(&payload),
            _ => {}
        }
        let count = Cursor::new(&payload).lenenc() as usize;
        let mut columns = Vec::with_capacity(count);
        for _ in 0..count {
            columns.push(parse_column(&self.expect_packet().await));
        }
        if !self.deprecate_eof() {
            let eof = self.expect_packet().await;
            assert!(
                eof[0] == 0xFE && eof.len() == 5,
                "EOF after column definitions, got {eof:?}"
            );
        }
        let mut rows = Vec::new();
        loop {
            let packet = self.expect_packet().await;
            if packet[0] == 0xFF {
                return Reply::Rows {
                    columns,
                    rows,
                    status: 0,
                    warnings: 0,
                    error: Some(Box::new(parse_err(&packet))),
                };
            }
            if packet[0] == 0xFE && packet.len() < 0xFF_FFFF {
                if self.deprecate_eof() {
                    let Reply::Ok {
                        status, warnings, ..
                    } = parse_ok(&packet)
                    else {
                        unreachable!()
                    };
                    return Reply::Rows {
                        columns,
                        rows,
                        status,
                        warnings,
                        error: None,
                    };
                }
                assert_eq!(packet.len(), 5, "classic EOF packet");
                let mut c = Cursor::new(&packet[1..]);
                let warnings = c.u16();
                let status = c.u16();
                return Reply::Rows {
                    columns,
                    rows,
                    status,
                    warnings,
                    error: None,
                };
            }
            rows.push(packet);
        }
    }

    /// Reads replies while MORE_RESULTS_EXISTS is set.
    pub async fn read_replies(&mut self) -> Vec<Reply> {
        let mut replies = Vec::new();
        loop {
            let reply = self.read_reply().await;
            let more = reply.status() & status::MORE_RESULTS_EXISTS != 0
                && !matches!(&reply, Reply::Rows { error: Some(_), .. });
            replies.push(reply);
            if !more {
                return replies;
            }
        }
    }

    pub async fn query(&mut self, sql: &str) -> Reply {
        let mut payload = vec![cairn_wire::command::QUERY];
        payload.extend_from_slice(sql.as_bytes());
        self.command(&payload).await;
        self.read_reply().await
    }

    /// COM_STMT_PREPARE: returns (statement id, param defs, column defs).
    pub async fn prepare(
        &mut self,
        sql: &str,
    ) -> Result<(u32, Vec<ColumnDef>, Vec<ColumnDef>), Reply> {
        let mut payload = vec![cairn_wire::command::STMT_PREPARE];
        payload.extend_from_slice(sql.as_bytes());
        self.command(&payload).await;
        self.read_prepare_reply().await
    }

    pub async fn read_prepare_reply(
        &mut self,
    ) -> Result<(u32, Vec<ColumnDef>, Vec<ColumnDef>), Reply> {
        let head = self.expect_packet().await;
        if head[0] == 0xFF {
            return Err(parse_err(&head));
        }
        let mut c = Cursor::new(&head);
        assert_eq!(c.u8(), 0);
        let id = c.u32();
        let columns = c.u16();
        let params = c.u16();
        assert_eq!(c.u8(), 0);
        let _warnings = c.u16();
        let mut defs = [Vec::new(), Vec::new()];
        for (slot, count) in [(0, params), (1, columns)] {
            for _ in 0..count {
                defs[slot].push(parse_column(&self.expect_packet().await));
            }
            if count > 0 && !self.deprecate_eof() {
                let eof = self.expect_packet().await;
                assert!(eof[0] == 0xFE && eof.len() == 5, "EOF after definitions");
            }
        }
        let [params, columns] = defs;
        Ok((id, params, columns))
    }

    /// Reads until the server closes the connection, then closes this side too (so that a
    /// server lingering for the client's close can finish); returns what arrived.
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        let _ =
            tokio::time::timeout(Duration::from_secs(30), self.stream.read_to_end(&mut out)).await;
        let _ = self.stream.shutdown().await;
        out
    }
}

fn empty_greeting() -> Greeting {
    Greeting {
        version: String::new(),
        connection_id: 0,
        scramble: [0; 20],
        capabilities: 0,
        collation: 0,
        status: 0,
        plugin: String::new(),
    }
}

pub fn parse_greeting(payload: &[u8]) -> Greeting {
    let mut c = Cursor::new(payload);
    assert_eq!(c.u8(), 10);
    let version = String::from_utf8(c.null_terminated().to_vec()).unwrap();
    let connection_id = c.u32();
    let mut scramble = [0u8; 20];
    scramble[..8].copy_from_slice(c.bytes(8));
    assert_eq!(c.u8(), 0);
    let low = c.u16();
    let collation = c.u8();
    let status = c.u16();
    let high = c.u16();
    assert_eq!(c.u8(), 21);
    c.bytes(10);
    scramble[8..].copy_from_slice(c.bytes(12));
    assert_eq!(c.u8(), 0);
    let plugin = String::from_utf8(c.null_terminated().to_vec()).unwrap();
    Greeting {
        version,
        connection_id,
        scramble,
        capabilities: u32::from(low) | u32::from(high) << 16,
        collation,
        status,
        plugin,
    }
}

/// A COM_STMT_EXECUTE payload binding `params` as (type, unsigned flag, value bytes or None for
/// NULL), with new-params-bound set when `bind` is true.
pub fn execute_payload(id: u32, params: &[(u8, bool, Option<Vec<u8>>)], bind: bool) -> Vec<u8> {
    let mut out = vec![cairn_wire::command::STMT_EXECUTE];
    out.extend_from_slice(&id.to_le_bytes());
    out.push(0);
    out.extend_from_slice(&1u32.to_le_bytes());
    if !params.is_empty() {
        let mut bitmap = vec![0u8; params.len().div_ceil(8)];
        for (i, (_, _, v)) in params.iter().enumerate() {
            if v.is_none() {
                bitmap[i / 8] |= 1 << (i % 8);
            }
        }
        out.extend_from_slice(&bitmap);
        out.push(u8::from(bind));
        if bind {
            for (t, unsigned, _) in params {
                out.extend_from_slice(&[*t, if *unsigned { 0x80 } else { 0 }]);
            }
        }
        for (_, _, v) in params {
            if let Some(v) = v {
                out.extend_from_slice(v);
            }
        }
    }
    out
}

pub fn lenenc_string(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let n = bytes.len() as u64;
    if n < 251 {
        out.push(n as u8);
    } else if n < 1 << 16 {
        out.push(0xFC);
        out.extend_from_slice(&(n as u16).to_le_bytes());
    } else if n < 1 << 24 {
        out.push(0xFD);
        out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
    } else {
        out.push(0xFE);
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend_from_slice(bytes);
    out
}
