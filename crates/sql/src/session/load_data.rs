//! LOAD DATA [LOCAL] INFILE: rows from a text file, inserted in batches as the file arrives.
//!
//! With LOCAL the client sends the file: the statement answers [`Outcome::LocalInfile`], the
//! daemon relays the file's packets to [`Session::local_infile_data`] and its end to
//! [`Session::local_infile_end`], which answers the statement's OK (`Records: N  Deleted: D
//! Skipped: S  Warnings: W`) and then runs the statements that followed it in the same text.
//! Rows are parsed as the bytes come and inserted 1000 at a time, so memory holds one batch and
//! one unfinished line, never the file.
//!
//! Parsing follows MySQL: `FIELDS TERMINATED BY` (default tab), `[OPTIONALLY] ENCLOSED BY`
//! (default none; a doubled enclosing character inside a field is one), `ESCAPED BY` (default
//! backslash: `\0 \b \n \r \t \Z`, `\N` for NULL, any other escaped character stands for
//! itself), `LINES STARTING BY` (text before it on a line is skipped) and `TERMINATED BY`
//! (default newline), `IGNORE n LINES`, a column list that may send fields to `@variables`, and
//! `SET col = expr` evaluated per row with those variables and the row's loaded columns. With
//! ENCLOSED BY set, an unenclosed `NULL` is NULL too. A line with too few fields fills the rest
//! with their defaults (warning 1261), one with too many drops the rest (warning 1262).
//!
//! As MySQL: LOCAL implies IGNORE (a duplicate key skips the row, a bad value is a warning),
//! because the server cannot stop the client mid-file; REPLACE replaces rows with the same key.
//! A server-side file (no LOCAL) is refused as MySQL does when `secure_file_priv` is NULL
//! (1290): an SQL node is stateless and reads no files of its host for clients. A client that
//! did not offer CLIENT_LOCAL_FILES gets 3948.
//!
//! Left out: fixed-width rows (both FIELDS TERMINATED BY and ENCLOSED BY empty: 1083 with a
//! note to use a separator), CHARACTER SET other than utf8mb4/binary, PARTITION selection.
//! Statements after a LOAD DATA in a multi-statement text run after the file, not before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlparser::ast;
use sqlparser::tokenizer::Token;

use cairn_common::catalog::TableDef;
use cairn_common::expr::{Expr, Warning, WarningLevel};
use cairn_common::ops::OnDuplicate;
use cairn_common::{Error, Value, bail, err};

use crate::backend::Backend;
use crate::compile::{Compiler, PlanContext, PlanEnv, Scope, ScopeColumn, Slot};
use crate::dml::{self, InsertPlan, InsertSource, InsertValue};
use crate::exec::{Bound, Exec};
use crate::lexer::StatementText;
use crate::outcome::Outcome;
use crate::parse::{Cursor, Statement, TableName, VarScope};
use crate::session::Session;
use crate::types::{ColumnOrigin, SqlType};

/// Rows inserted per write to the cluster.
const BATCH_ROWS: usize = 1000;
/// The longest line accepted (an unterminated line grows the buffer up to this).
const MAX_LINE_BYTES: usize = 64 << 20;

/// Where a field of the file goes.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    Column(String),
    UserVar(String),
}

/// A parsed LOAD DATA statement.
#[derive(Clone, Debug)]
pub(crate) struct LoadData {
    local: bool,
    file_name: String,
    duplicates: Duplicates,
    table: TableName,
    format: Format,
    ignore_lines: u64,
    targets: Option<Vec<Target>>,
    set: Vec<(String, Option<ast::Expr>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Duplicates {
    /// Neither REPLACE nor IGNORE: an error for a server file, IGNORE for LOCAL.
    Error,
    Ignore,
    Replace,
}

/// FIELDS and LINES options.
#[derive(Clone, Debug)]
struct Format {
    field_terminator: Vec<u8>,
    enclosure: Option<u8>,
    escape: Option<u8>,
    line_start: Vec<u8>,
    line_terminator: Vec<u8>,
}

impl Default for Format {
    fn default() -> Format {
        Format { field_terminator: b"\t".to_vec(), enclosure: None, escape: Some(b'\\'), line_start: Vec::new(), line_terminator: b"\n".to_vec() }
    }
}

fn one_char(s: &str, what: &str) -> Result<Option<u8>, Error> {
    match s.as_bytes() {
        [] => Ok(None),
        [b] => Ok(Some(*b)),
        _ => Err(err!(WrongFieldTerminators, "Field separator argument is not what is expected; check the manual ({what} must be one character)")),
    }
}

/// Parses `LOAD DATA …` (the caller saw LOAD).
pub(crate) fn parse(statement: &StatementText) -> Result<Statement, Error> {
    let mut c = Cursor::new(statement);
    c.next(); // LOAD
    if c.eat("XML") {
        return Ok(Statement::Unsupported("LOAD XML".into()));
    }
    c.expect("DATA")?;
    let _ = c.eat("LOW_PRIORITY") || c.eat("CONCURRENT");
    let local = c.eat("LOCAL");
    c.expect("INFILE")?;
    let file_name = c.string()?;
    let duplicates = if c.eat("REPLACE") {
        Duplicates::Replace
    } else if c.eat("IGNORE") {
        Duplicates::Ignore
    } else {
        Duplicates::Error
    };
    c.expect("INTO")?;
    c.expect("TABLE")?;
    let table = c.table_name()?;
    if c.eat("PARTITION") {
        return Ok(Statement::Unsupported("LOAD DATA … PARTITION".into()));
    }
    if c.eat("CHARACTER") {
        c.expect("SET")?;
        let cs = c.name_or_string()?;
        if !matches!(cs.to_ascii_lowercase().as_str(), "utf8mb4" | "utf8" | "utf8mb3" | "binary") {
            return Err(Error::not_supported(format!("LOAD DATA … CHARACTER SET {cs}")));
        }
    }
    let mut format = Format::default();
    if c.eat("FIELDS") || c.eat("COLUMNS") {
        loop {
            if c.eat("TERMINATED") {
                c.expect("BY")?;
                format.field_terminator = c.string()?.into_bytes();
            } else if c.eat("OPTIONALLY") {
                c.expect("ENCLOSED")?;
                c.expect("BY")?;
                format.enclosure = one_char(&c.string()?, "ENCLOSED BY")?;
            } else if c.eat("ENCLOSED") {
                c.expect("BY")?;
                format.enclosure = one_char(&c.string()?, "ENCLOSED BY")?;
            } else if c.eat("ESCAPED") {
                c.expect("BY")?;
                format.escape = one_char(&c.string()?, "ESCAPED BY")?;
            } else {
                break;
            }
        }
    }
    if c.eat("LINES") {
        loop {
            if c.eat("STARTING") {
                c.expect("BY")?;
                format.line_start = c.string()?.into_bytes();
            } else if c.eat("TERMINATED") {
                c.expect("BY")?;
                format.line_terminator = c.string()?.into_bytes();
            } else {
                break;
            }
        }
    }
    let mut ignore_lines = 0;
    if c.eat("IGNORE") {
        ignore_lines = c.number()?;
        if !(c.eat("LINES") || c.eat("ROWS")) {
            return Err(c.error());
        }
    }
    let mut targets = None;
    if c.eat_token(&Token::LParen) {
        let mut list = Vec::new();
        if !c.eat_token(&Token::RParen) {
            loop {
                let name = c.ident_any()?;
                list.push(match name.strip_prefix('@') {
                    Some(var) if !var.is_empty() => Target::UserVar(var.to_ascii_lowercase()),
                    _ => Target::Column(name),
                });
                if c.eat_token(&Token::RParen) {
                    break;
                }
                c.expect_token(&Token::Comma)?;
            }
        }
        targets = Some(list);
    }
    let mut set = Vec::new();
    if c.eat("SET") {
        loop {
            let column = c.ident()?;
            if !(c.eat_token(&Token::Eq) || c.eat_token(&Token::Assignment)) {
                return Err(c.error());
            }
            let value = if c.peek_is("DEFAULT") && matches!(c.peek_nth(1).map(|t| &t.token), None | Some(Token::Comma)) {
                c.next();
                None
            } else {
                Some(c.expr()?)
            };
            set.push((column, value));
            if !c.eat_token(&Token::Comma) {
                break;
            }
        }
    }
    c.expect_end()?;
    if format.field_terminator.is_empty() && format.enclosure.is_none() {
        bail!(WrongFieldTerminators, "Field separator argument is not what is expected; check the manual (fixed-width rows are not supported: give FIELDS TERMINATED BY)");
    }
    if format.line_terminator.is_empty() {
        bail!(WrongFieldTerminators, "Field separator argument is not what is expected; check the manual (LINES TERMINATED BY must not be empty)");
    }
    Ok(Statement::LoadData(Box::new(LoadData { local, file_name, duplicates, table, format, ignore_lines, targets, set })))
}

/// A field: its bytes, or NULL.
type Field = Option<Vec<u8>>;

/// Splits a byte stream into records.
struct Parser {
    format: Format,
    /// Bytes received and not yet consumed (at most one unfinished record).
    pending: Vec<u8>,
}

enum Parsed {
    Record(Vec<Field>, usize),
    /// Needs more bytes.
    More,
    /// Nothing left.
    End,
}

impl Parser {
    fn at(buf: &[u8], i: usize, s: &[u8]) -> bool {
        !s.is_empty() && buf.len() >= i + s.len() && &buf[i..i + s.len()] == s
    }

    /// Parses one record from the start of `buf`; at `eof` a final record may lack its line
    /// terminator.
    fn record(&self, buf: &[u8], eof: bool) -> Parsed {
        let f = &self.format;
        let mut i = 0;
        // LINES STARTING BY: skip to just after the prefix (a line without it is skipped whole).
        if !f.line_start.is_empty() {
            loop {
                if Self::at(buf, i, &f.line_start) {
                    i += f.line_start.len();
                    break;
                }
                if Self::at(buf, i, &f.line_terminator) {
                    i += f.line_terminator.len();
                    continue;
                }
                if i >= buf.len() {
                    return if eof { Parsed::End } else { Parsed::More };
                }
                i += 1;
            }
        } else if i >= buf.len() {
            return if eof { Parsed::End } else { Parsed::More };
        }
        let mut fields: Vec<Field> = Vec::new();
        loop {
            // One field starting at i.
            let mut value = Vec::new();
            let mut escaped_null = false;
            let enclosed = f.enclosure.is_some_and(|e| buf.get(i) == Some(&e));
            if enclosed {
                i += 1;
            }
            let mut closed = false;
            let end_of_record;
            loop {
                if i >= buf.len() {
                    if !eof {
                        return Parsed::More;
                    }
                    end_of_record = true;
                    break;
                }
                let b = buf[i];
                if Some(b) == f.escape {
                    let Some(&next) = buf.get(i + 1) else {
                        if !eof {
                            return Parsed::More;
                        }
                        value.push(b);
                        i += 1;
                        continue;
                    };
                    match next {
                        b'0' => value.push(0),
                        b'b' => value.push(8),
                        b'n' => value.push(b'\n'),
                        b'r' => value.push(b'\r'),
                        b't' => value.push(b'\t'),
                        b'Z' => value.push(26),
                        b'N' if value.is_empty() && !enclosed => escaped_null = true,
                        other => value.push(other),
                    }
                    i += 2;
                    continue;
                }
                if enclosed && !closed && Some(b) == f.enclosure {
                    if buf.get(i + 1) == Some(&b) {
                        value.push(b);
                        i += 2;
                        continue;
                    }
                    // A closing quote counts only before a separator or the end of the line.
                    let after = i + 1;
                    let need = f.field_terminator.len().max(f.line_terminator.len());
                    if buf.len() < after + need && !eof {
                        return Parsed::More;
                    }
                    if after >= buf.len() || Self::at(buf, after, &f.field_terminator) || Self::at(buf, after, &f.line_terminator) {
                        closed = true;
                        i = after;
                        continue;
                    }
                    value.push(b);
                    i += 1;
                    continue;
                }
                if !enclosed || closed {
                    if Self::at(buf, i, &f.field_terminator) {
                        i += f.field_terminator.len();
                        end_of_record = false;
                        break;
                    }
                    if Self::at(buf, i, &f.line_terminator) {
                        i += f.line_terminator.len();
                        end_of_record = true;
                        break;
                    }
                    // A terminator may be split across packets: wait for enough bytes.
                    let need = f.field_terminator.len().max(f.line_terminator.len());
                    if !eof && buf.len() - i < need && (f.field_terminator.starts_with(&buf[i..]) || f.line_terminator.starts_with(&buf[i..])) {
                        return Parsed::More;
                    }
                }
                value.push(b);
                i += 1;
            }
            let null = escaped_null || (f.enclosure.is_some() && !enclosed && value == b"NULL");
            fields.push(if null { None } else { Some(value) });
            if end_of_record {
                return Parsed::Record(fields, i);
            }
        }
    }
}

/// A LOAD DATA LOCAL waiting for (or receiving) its file.
pub(crate) struct PendingLoad {
    plan: InsertPlan,
    /// Per loaded field: the position in `plan.columns`, or a user variable.
    fields: Vec<FieldTarget>,
    /// SET assignments: position in `plan.columns` and the compiled expression (None: DEFAULT)
    /// over the table row.
    set: Vec<(usize, Option<Expr>)>,
    slots: Vec<Slot>,
    parser: Parser,
    ignore_lines: u64,
    line: u64,
    rows: Vec<Vec<InsertValue>>,
    records: u64,
    inserted: u64,
    deleted: u64,
    skipped: u64,
    error: Option<Error>,
    warnings: Arc<Mutex<Vec<Warning>>>,
}

#[derive(Clone, Debug)]
enum FieldTarget {
    Column { position: usize, table_index: usize, binary: bool },
    UserVar(String),
}

/// The session's LOAD DATA state.
#[derive(Default)]
pub(crate) struct LoadState {
    /// Whether the client offered CLIENT_LOCAL_FILES.
    local_files: bool,
    pending: Option<Box<PendingLoad>>,
    /// Statements that followed the LOAD DATA in its text, run after the file.
    deferred: Vec<StatementText>,
}

impl std::fmt::Debug for LoadState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadState").field("local_files", &self.local_files).field("pending", &self.pending.is_some()).finish()
    }
}

fn table_scope(table: &TableDef) -> Scope {
    Scope {
        columns: table
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| ScopeColumn {
                table: Some(table.name.clone()),
                database: Some(table.database.clone()),
                name: c.name.clone(),
                ty: SqlType::from_column(c),
                origin: Some(ColumnOrigin::of(table, &table.name, i)),
                hidden: c.hidden,
            })
            .collect(),
    }
}

impl LoadState {
    /// COM_RESET_CONNECTION: forgets a load in progress (the client's capability stays).
    pub(crate) fn reset(&mut self) {
        self.pending = None;
        self.deferred.clear();
    }
}

impl<B: Backend> Session<B> {
    /// Whether the client may be asked for files (CLIENT_LOCAL_FILES in its handshake).
    pub fn set_local_files(&mut self, allowed: bool) {
        self.load.local_files = allowed;
    }

    /// Keeps the statements after a LOAD DATA LOCAL for when its file has arrived.
    pub(crate) fn defer_statements(&mut self, rest: Vec<StatementText>) {
        self.load.deferred = rest;
    }

    /// Runs LOAD DATA up to the point where the client must send the file.
    pub(crate) async fn start_load_data(&mut self, load: &LoadData) -> Result<Outcome, Error> {
        if !load.local {
            bail!(OptionPreventsStatement, "The MySQL server is running with the --secure-file-priv option so it cannot execute this statement");
        }
        if !self.load.local_files {
            bail!(LocalFilesDisabled, "Loading local data is disabled; this must be enabled on both the client and server sides");
        }
        let catalog = self.engine.backend.catalog();
        let table = Arc::new(self.resolve(&catalog, &load.table)?);
        crate::information_schema::check_writable(&table, &self.info.user, &self.info.host)?;
        let column = |name: &str| {
            table.column_index(name).ok_or_else(|| err!(UnknownColumn, "Unknown column '{name}' in 'field list'"))
        };
        let targets: Vec<Target> = match &load.targets {
            Some(t) => t.clone(),
            None => table.columns.iter().filter(|c| !c.hidden).map(|c| Target::Column(c.name.clone())).collect(),
        };
        let mut columns: Vec<usize> = Vec::new();
        let mut fields = Vec::with_capacity(targets.len());
        for target in &targets {
            fields.push(match target {
                Target::Column(name) => {
                    let index = column(name)?;
                    if columns.contains(&index) {
                        bail!(ColumnSpecifiedTwice, "Column '{name}' specified twice");
                    }
                    columns.push(index);
                    FieldTarget::Column { position: columns.len() - 1, table_index: index, binary: table.columns[index].ty.is_binary_string() }
                }
                Target::UserVar(name) => FieldTarget::UserVar(name.clone()),
            });
        }
        // SET expressions are compiled once, over the table's row, with user variables as slots
        // bound again for every row.
        let scope = table_scope(&table);
        let mut set = Vec::new();
        let slots;
        {
            let system_var = |scope: VarScope, name: &str| self.system_var(scope, name);
            let user_var = |name: &str| self.user_vars.get(name).cloned().unwrap_or(Value::Null);
            let env = PlanEnv {
                catalog: &catalog,
                database: self.database.as_deref(),
                system_var: &system_var,
                user_var: &user_var,
                pipes_as_concat: self.has_mode("PIPES_AS_CONCAT"),
                only_full_group_by: false,
                source: None,
            };
            let mut ctx = PlanContext::new(env, Vec::new());
            for (name, value) in &load.set {
                let index = column(name)?;
                if columns.contains(&index) {
                    bail!(ColumnSpecifiedTwice, "Column '{name}' specified twice");
                }
                columns.push(index);
                let compiled = match value {
                    None => None,
                    Some(e) => {
                        let mut compiler = Compiler::new(&mut ctx, &scope, "field list");
                        let (expr, _) = compiler.compile(e)?;
                        crate::compile::check_depth(&expr)?;
                        Some(expr)
                    }
                };
                set.push((columns.len() - 1, compiled));
            }
            if ctx.slots.iter().any(|s| !matches!(s, Slot::SystemVar { .. } | Slot::UserVar(_) | Slot::UtcNow { .. } | Slot::UnixNow)) {
                return Err(Error::not_supported("subqueries in LOAD DATA … SET"));
            }
            slots = ctx.slots;
        }
        let on_duplicate = if load.duplicates == Duplicates::Replace { OnDuplicate::Replace } else { OnDuplicate::Ignore };
        let plan = InsertPlan { table, columns, source: InsertSource::Values(Vec::new()), on_duplicate, ignore: load.duplicates != Duplicates::Replace };
        self.touch_transaction(true);
        self.load.pending = Some(Box::new(PendingLoad {
            plan,
            fields,
            set,
            slots,
            parser: Parser { format: load.format.clone(), pending: Vec::new() },
            ignore_lines: load.ignore_lines,
            line: 0,
            rows: Vec::new(),
            records: 0,
            inserted: 0,
            deleted: 0,
            skipped: 0,
            error: None,
            warnings: self.warnings.clone(),
        }));
        Ok(Outcome::LocalInfile(load.file_name.clone()))
    }

    /// A piece of the file of the LOAD DATA LOCAL in progress.
    pub async fn local_infile_data(&mut self, data: &[u8]) {
        let Some(mut load) = self.load.pending.take() else { return };
        if load.error.is_none() {
            load.parser.pending.extend_from_slice(data);
            if let Err(e) = self.load_records(&mut load, false).await {
                load.error = Some(e);
                load.parser.pending = Vec::new();
            }
        }
        self.load.pending = Some(load);
    }

    /// The file is complete: the LOAD DATA's outcome, then those of the statements after it,
    /// each with the session's status flags after it.
    pub async fn local_infile_end(&mut self) -> Vec<(Outcome, u16)> {
        let Some(mut load) = self.load.pending.take() else {
            return vec![(self.fail(Error::internal("no LOAD DATA LOCAL is waiting for a file")), self.status_flags())];
        };
        let deferred = std::mem::take(&mut self.load.deferred);
        let result = match load.error.take() {
            Some(e) => Err(e),
            None => self.load_records(&mut load, true).await,
        };
        let outcome = match result {
            Err(e) => self.fail(e),
            Ok(()) => {
                let warnings = self.warning_count();
                self.row_count = (load.inserted + load.deleted) as i64;
                Outcome::Ok {
                    affected_rows: load.inserted + load.deleted,
                    last_insert_id: 0,
                    info: format!("Records: {}  Deleted: {}  Skipped: {}  Warnings: {warnings}", load.records, load.deleted, load.skipped),
                    warnings,
                }
            }
        };
        let failed = outcome.is_error();
        let mut outcomes = vec![(outcome, self.status_flags())];
        if !failed && !deferred.is_empty() {
            outcomes.extend(self.run_statements(deferred).await);
        }
        outcomes
    }

    /// Turns the complete records in the parser's buffer into rows, inserting full batches
    /// (and, at the end, the rest).
    async fn load_records(&mut self, load: &mut PendingLoad, eof: bool) -> Result<(), Error> {
        let mut consumed = 0;
        loop {
            let parsed = load.parser.record(&load.parser.pending[consumed..], eof);
            let (fields, used) = match parsed {
                Parsed::Record(fields, used) => (fields, used),
                Parsed::More | Parsed::End => break,
            };
            consumed += used;
            load.line += 1;
            if load.line <= load.ignore_lines {
                continue;
            }
            let row = self.load_row(load, fields)?;
            load.rows.push(row);
            if load.rows.len() >= BATCH_ROWS {
                load.parser.pending.drain(..consumed);
                consumed = 0;
                self.insert_batch(load).await?;
            }
        }
        load.parser.pending.drain(..consumed);
        if load.parser.pending.len() > MAX_LINE_BYTES {
            bail!(TooManyRows, "A line of the LOAD DATA file is longer than {MAX_LINE_BYTES} bytes");
        }
        if eof && !load.rows.is_empty() {
            self.insert_batch(load).await?;
        }
        Ok(())
    }

    fn load_row(&mut self, load: &mut PendingLoad, fields: Vec<Field>) -> Result<Vec<InsertValue>, Error> {
        load.records += 1;
        let row_number = load.records;
        let width = load.plan.columns.len();
        let mut values: Vec<Option<Value>> = vec![None; width];
        let mut table_row = vec![Value::Null; load.plan.table.columns.len()];
        if fields.len() < load.fields.len() {
            load.warnings.lock().unwrap_or_else(|e| e.into_inner()).push(Warning {
                level: WarningLevel::Warning,
                code: 1261,
                message: format!("Row {row_number} doesn't contain data for all columns"),
            });
        } else if fields.len() > load.fields.len() {
            load.warnings.lock().unwrap_or_else(|e| e.into_inner()).push(Warning {
                level: WarningLevel::Warning,
                code: 1262,
                message: format!("Row {row_number} was truncated; it contained more data than there were input columns"),
            });
        }
        for (target, field) in load.fields.iter().zip(fields) {
            match target {
                FieldTarget::Column { position, table_index, binary } => {
                    let value = match field {
                        None => Value::Null,
                        Some(bytes) if *binary => Value::Bytes(bytes),
                        Some(bytes) => match String::from_utf8(bytes) {
                            Ok(s) => Value::Text(s),
                            Err(e) => Value::Bytes(e.into_bytes()),
                        },
                    };
                    table_row[*table_index] = value.clone();
                    values[*position] = Some(value);
                }
                FieldTarget::UserVar(name) => {
                    let value = match field {
                        None => Value::Null,
                        Some(bytes) => match String::from_utf8(bytes) {
                            Ok(s) => Value::Text(s),
                            Err(e) => Value::Bytes(e.into_bytes()),
                        },
                    };
                    self.user_vars.insert(name.clone(), value);
                }
            }
        }
        if !load.set.is_empty() {
            let mut exec = self.load_exec(load)?;
            for (position, expr) in &load.set {
                if let Some(expr) = expr {
                    let value = exec.eval(expr, &table_row)?;
                    values[*position] = Some(value);
                }
            }
        }
        Ok(values.into_iter().map(|v| v.map_or(InsertValue::Default, |v| InsertValue::Expr(Expr::Literal(v)))).collect())
    }

    /// An executor with the SET expressions' variables bound to their values now.
    fn load_exec(&mut self, load: &PendingLoad) -> Result<Exec<B>, Error> {
        let mut exec = self.new_exec(load.warnings.clone());
        let mut values = Vec::with_capacity(load.slots.len());
        for slot in &load.slots {
            values.push(match slot {
                Slot::SystemVar { scope, name } => self.system_var(*scope, name)?,
                Slot::UserVar(name) => self.user_vars.get(name).cloned().unwrap_or(Value::Null),
                Slot::UtcNow { fsp } => {
                    let now = exec.snapshot.utc_now;
                    Value::DateTime(now.round_to_fsp(*fsp).unwrap_or(now))
                }
                Slot::UnixNow => Value::Int(exec.snapshot.utc_now.to_unix_seconds().unwrap_or(0)),
                _ => Value::Null,
            });
        }
        exec.bound = Arc::new(Bound { values, lists: HashMap::new() });
        Ok(exec)
    }

    async fn insert_batch(&mut self, load: &mut PendingLoad) -> Result<(), Error> {
        let rows = std::mem::take(&mut load.rows);
        let count = rows.len() as u64;
        load.plan.source = InsertSource::Values(rows);
        let mut exec = self.new_exec(load.warnings.clone());
        let mode = self.write_mode();
        let result = dml::execute_insert(&load.plan, &mut exec, &mode).await;
        load.plan.source = InsertSource::Values(Vec::new());
        let result = result?;
        if let Some(id) = result.generated_id
            && self.last_insert_id == 0
        {
            self.last_insert_id = id;
        }
        let o = &result.outcome;
        load.inserted += o.inserted;
        load.deleted += o.deleted;
        load.skipped += o.ignored.min(count);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(format: Format, input: &[u8], chunk: usize) -> Vec<Vec<Field>> {
        let mut parser = Parser { format, pending: Vec::new() };
        let mut out = Vec::new();
        let mut feed = |parser: &mut Parser, eof: bool| {
            let mut consumed = 0;
            while let Parsed::Record(fields, used) = parser.record(&parser.pending[consumed..], eof) {
                consumed += used;
                out.push(fields);
            }
            parser.pending.drain(..consumed);
        };
        for piece in input.chunks(chunk.max(1)) {
            parser.pending.extend_from_slice(piece);
            feed(&mut parser, false);
        }
        feed(&mut parser, true);
        out
    }

    fn f(s: &str) -> Field {
        Some(s.as_bytes().to_vec())
    }

    #[test]
    fn tab_separated_with_escapes_in_any_chunking() {
        let input = b"1\talice\\tx\\n\t\\N\n2\tbob\t\n3\t\\\\\tlast";
        for chunk in 1..8 {
            let rows = parse_all(Format::default(), input, chunk);
            assert_eq!(
                rows,
                vec![vec![f("1"), f("alice\tx\n"), None], vec![f("2"), f("bob"), f("")], vec![f("3"), f("\\"), f("last")]],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn csv_with_quotes_separators_inside_and_crlf() {
        let format = Format {
            field_terminator: b",".to_vec(),
            enclosure: Some(b'"'),
            escape: Some(b'\\'),
            line_start: Vec::new(),
            line_terminator: b"\r\n".to_vec(),
        };
        let input = b"\"a,b\",\"say \"\"hi\"\"\",NULL,\"NULL\"\r\n7,\"multi\r\nline\",,x\r\n";
        for chunk in 1..6 {
            let rows = parse_all(format.clone(), input, chunk);
            assert_eq!(rows, vec![vec![f("a,b"), f("say \"hi\""), None, f("NULL")], vec![f("7"), f("multi\r\nline"), f(""), f("x")]], "chunk {chunk}");
        }
    }

    #[test]
    fn lines_starting_by_skips_prefixes_and_lines_without_it() {
        let format = Format { line_start: b"xxx".to_vec(), field_terminator: b",".to_vec(), ..Format::default() };
        let rows = parse_all(format, b"xxx\"abc\",1\nsomething else\nfooxxx\"def\",2\n", 3);
        assert_eq!(rows, vec![vec![f("\"abc\""), f("1")], vec![f("\"def\""), f("2")]]);
    }

    #[test]
    fn empty_input_and_a_lone_newline() {
        assert!(parse_all(Format::default(), b"", 4).is_empty());
        assert_eq!(parse_all(Format::default(), b"\n", 4), vec![vec![f("")]]);
    }
}

impl LoadData {
    /// The table the rows go into (INSERT is checked on it; DELETE too with REPLACE).
    pub(crate) fn table(&self) -> &TableName {
        &self.table
    }

    /// Whether existing rows with the same key are replaced (REPLACE).
    pub(crate) fn replaces(&self) -> bool {
        matches!(self.duplicates, Duplicates::Replace)
    }
}
