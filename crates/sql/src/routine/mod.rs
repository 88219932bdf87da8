//! Stored functions and procedures: their statements, their body language, and the form a SQL
//! node runs.
//!
//! ## Where things live
//!
//! - The definitions are in the cluster catalog (`cairn_common::routine`): created through any
//!   SQL node, they run on every SQL node, and survive restarts with the catalog.
//! - `parse` reads `CREATE FUNCTION/PROCEDURE`, `DROP`, `ALTER`, `CALL` and `SELECT … INTO` by
//!   hand (sqlparser has no MySQL routine grammar: DEPENDENCIES.md §2), and the body language
//!   into a [`Program`]. The leaf statements of a body (SELECT, INSERT, UPDATE, DELETE, …) are
//!   cut out on tokens and parsed by the ordinary statement path (`crate::parse`).
//! - `cache` keeps each SQL node's parsed programs, keyed by the routine's catalog version:
//!   a routine is parsed once per node and version, and a change through any SQL node makes
//!   every node parse it again on its next call.
//! - `show` answers SHOW CREATE FUNCTION/PROCEDURE, SHOW FUNCTION/PROCEDURE STATUS and the
//!   rows of information_schema.ROUTINES.
//! - The interpreter is `crate::session::routines`: it runs a program's statements through the
//!   session's own statement path (plan, bind, execute), so that they run exactly as the same
//!   statements sent by a client would, in the caller's session and transaction.
//!
//! ## The executable form
//!
//! Names are resolved when a body is parsed: every local variable and parameter becomes a slot
//! of the call's frame (an index), every label an id, every cursor an id, every condition name
//! its SQLSTATE or error number. A leaf statement or expression of the body is compiled with
//! the variables it can see; a variable reads like a `?` parameter of a prepared statement
//! whose value is the frame slot, so the plan of each statement is built once and kept with the
//! program (re-planned only when a table it uses changes), exactly like a prepared statement's.
//!
//! ## What is left out
//!
//! - `GET DIAGNOSTICS`, `UNDO` handlers (MySQL does not have them either), triggers and events.
//! - A stored function whose arguments read the columns of the rows a query scans
//!   (`SELECT f(col) FROM t`) is refused with 1235: calls are bound once per statement, like
//!   uncorrelated subqueries. Arguments may be constants, parameters, variables and
//!   expressions of them (`SELECT f('x', @n + 1)`, `SET v = f(v)`).
//! - Privileges are checked by `crate::privileges`: CREATE ROUTINE (and ALTER ROUTINE on a
//!   routine that OR REPLACE replaces) when a routine is created, ALTER ROUTINE to alter or drop
//!   one, EXECUTE before every call; a SQL SECURITY DEFINER routine's body runs with its
//!   definer's privileges. Left out: MySQL's automatic EXECUTE and ALTER ROUTINE grant to a
//!   routine's creator (`automatic_sp_privileges`); grant them explicitly.

pub(crate) mod cache;
pub(crate) mod parse;
pub(crate) mod show;

use std::sync::{Arc, Mutex};

use sqlparser::ast;

use cairn_common::catalog::ColumnDef;
use cairn_common::expr::Expr;
use cairn_common::ids::TableId;
use cairn_common::routine::{DataAccess, RoutineKey, RoutineKind, RoutineParam, RoutineType, SqlSecurity};

use crate::compile::Slot;
use crate::lexer::StatementText;
use crate::parse::Statement;
use crate::session::CachedPlan;
use crate::types::SqlType;

/// Deepest nesting of routine calls (functions and procedures together) one statement may
/// reach. Each level runs on the session task's stack through boxed futures; beyond this the
/// call fails with MySQL's "Thread stack overrun" (1436) rather than exhausting memory.
pub(crate) const MAX_CALL_DEPTH: usize = 64;

/// Most rows a cursor holds: an OPEN materializes the cursor's query (MySQL does the same, in a
/// temporary table).
pub(crate) const MAX_CURSOR_ROWS: usize = 1_000_000;

/// `name` or `db.name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QualifiedName {
    pub database: Option<String>,
    pub name: String,
}

/// The optional characteristics of CREATE and ALTER.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Characteristics {
    pub comment: Option<String>,
    pub deterministic: Option<bool>,
    pub data_access: Option<DataAccess>,
    pub security: Option<SqlSecurity>,
}

/// A parsed `CREATE FUNCTION` / `CREATE PROCEDURE`.
#[derive(Clone, Debug)]
pub(crate) struct CreateRoutine {
    pub or_replace: bool,
    pub if_not_exists: bool,
    /// `DEFINER = user@host`; None is the current user.
    pub definer: Option<(String, String)>,
    pub kind: RoutineKind,
    pub name: QualifiedName,
    pub params: Vec<RoutineParam>,
    pub returns: Option<RoutineType>,
    /// The parameter list and the body, verbatim.
    pub param_list: String,
    pub body_text: String,
    pub characteristics: Characteristics,
    pub program: Arc<Program>,
}

/// Statements about routines, and those that only routines' variables make useful.
#[derive(Clone, Debug)]
pub(crate) enum RoutineStatement {
    Create(Box<CreateRoutine>),
    Drop { kind: RoutineKind, name: QualifiedName, if_exists: bool },
    Alter { kind: RoutineKind, name: QualifiedName, changes: Characteristics },
    /// `CALL p(args)` sent by a client: OUT and INOUT arguments must be user variables.
    Call { name: QualifiedName, args: Vec<ast::Expr> },
    /// `SELECT … INTO @a, @b` sent by a client.
    SelectInto { query: Box<Statement>, targets: Vec<String> },
}

/// Where a value is stored: a slot of the running routine's frame, or a user variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Local(u16),
    /// Lower-cased, without the `@`.
    User(String),
}

/// A local variable or parameter of a program.
#[derive(Clone, Debug)]
pub(crate) struct LocalVar {
    /// The declared type as a column, for store-assignment conversion (`cairn_storage::coerce`);
    /// None for the interpreter's own hidden slots (a CASE operand), which hold any value as
    /// it is.
    pub column: Option<ColumnDef>,
    /// The type expressions see.
    pub sql: SqlType,
}

/// The variables one statement of a body can see, innermost declarations last.
#[derive(Debug, Default)]
pub(crate) struct Locals {
    pub visible: Vec<(String, u16, SqlType)>,
}

impl Locals {
    /// The variable a name refers to (names are case-insensitive; inner ones hide outer ones).
    pub fn lookup(&self, name: &str) -> Option<(u16, &SqlType)> {
        self.visible.iter().rev().find(|(n, _, _)| n.eq_ignore_ascii_case(name)).map(|(_, i, t)| (*i, t))
    }
}

/// An expression of the body (a condition, a value to assign or return), compiled on first use
/// and kept with the program.
#[derive(Debug)]
pub(crate) struct RoutineExpr {
    pub ast: ast::Expr,
    pub locals: Arc<Locals>,
    pub compiled: Mutex<Option<Arc<CompiledExpr>>>,
}

impl RoutineExpr {
    pub fn new(ast: ast::Expr, locals: Arc<Locals>) -> RoutineExpr {
        RoutineExpr { ast, locals, compiled: Mutex::new(None) }
    }
}

/// An expression ready to evaluate: its slots are bound like a statement's.
#[derive(Debug)]
pub(crate) struct CompiledExpr {
    pub expr: Expr,
    pub slots: Arc<Vec<Slot>>,
    /// Tables read by its subqueries, with the definition versions it was compiled against.
    pub tables: Vec<(TableId, u64)>,
    /// Stored functions it calls, with the versions it was compiled against.
    pub routines: Vec<(RoutineKey, u64)>,
}

/// A call of a stored function inside an expression, bound once per execution of the
/// statement (`Slot::Routine`), like an uncorrelated subquery. The arguments are expressions
/// over earlier slots only (parameters, variables, other calls), never over a row's columns.
#[derive(Clone, Debug)]
pub(crate) struct RoutineCall {
    pub database: String,
    pub name: String,
    pub args: Vec<Expr>,
    /// The call as written (`f(1, 'a')`): MySQL names the function's value by it in messages.
    pub display: String,
}

/// A statement of the body run through the session's statement path, with its plan kept.
#[derive(Debug)]
pub(crate) struct Leaf {
    pub statement: Statement,
    pub text: StatementText,
    pub locals: Arc<Locals>,
    pub plan: Mutex<Option<CachedPlan>>,
}

impl Leaf {
    pub fn new(statement: Statement, text: StatementText, locals: Arc<Locals>) -> Leaf {
        Leaf { statement, text, locals, plan: Mutex::new(None) }
    }
}

/// One assignment of a SET in a body.
#[derive(Debug)]
pub(crate) enum Assignment {
    Local(u16, RoutineExpr),
    User(String, RoutineExpr),
    /// `@@[scope.]name = value`, `SESSION name = value`; None is DEFAULT.
    System { scope: crate::parse::VarScope, name: String, value: Option<RoutineExpr> },
}

/// A condition a handler catches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ConditionValue {
    Code(u16),
    State(String),
    SqlWarning,
    NotFound,
    SqlException,
}

#[derive(Debug)]
pub(crate) struct Handler {
    /// EXIT leaves the block that declared the handler; CONTINUE goes on after the statement
    /// that raised the condition.
    pub exit: bool,
    pub conditions: Vec<ConditionValue>,
    pub body: Stmt,
}

/// `BEGIN … END`: its variables (with their DEFAULT), cursors and handlers, then statements.
#[derive(Debug)]
pub(crate) struct Block {
    pub label: Option<usize>,
    pub variables: Vec<(u16, Option<RoutineExpr>)>,
    pub cursors: Vec<usize>,
    pub handlers: Vec<Handler>,
    pub body: Vec<Stmt>,
}

#[derive(Debug)]
pub(crate) struct CursorDecl {
    pub query: Leaf,
}

/// `SIGNAL` or `RESIGNAL`.
#[derive(Debug)]
pub(crate) struct Signal {
    pub resignal: bool,
    /// The SQLSTATE and, for a condition declared with an error number, that number. None only
    /// for a bare RESIGNAL.
    pub state: Option<(String, Option<u16>)>,
    pub message: Option<RoutineExpr>,
    pub errno: Option<RoutineExpr>,
}

/// `CALL p(args)` inside a body.
#[derive(Debug)]
pub(crate) struct CallStmt {
    pub name: QualifiedName,
    pub args: Vec<RoutineExpr>,
    /// For each argument that is a plain variable, where an OUT value goes.
    pub targets: Vec<Option<Target>>,
}

#[derive(Debug)]
pub(crate) enum Stmt {
    Block(Box<Block>),
    Set(Vec<Assignment>),
    /// Any other statement, run as a client's would be (a SELECT sends its rows to the client).
    Sql(Box<Leaf>),
    SelectInto(Box<Leaf>, Vec<Target>),
    Call(Box<CallStmt>),
    If { branches: Vec<(RoutineExpr, Vec<Stmt>)>, otherwise: Option<Vec<Stmt>> },
    /// Both CASE forms: a simple CASE stores its operand in `operand` (a hidden slot) and its
    /// WHEN conditions compare with it.
    Case { operand: Option<(u16, RoutineExpr)>, whens: Vec<(RoutineExpr, Vec<Stmt>)>, otherwise: Option<Vec<Stmt>> },
    While { label: usize, condition: RoutineExpr, body: Vec<Stmt> },
    Repeat { label: usize, body: Vec<Stmt>, until: RoutineExpr },
    Loop { label: usize, body: Vec<Stmt> },
    Leave(usize),
    Iterate(usize),
    Return(RoutineExpr),
    Open(usize),
    Fetch(usize, Vec<Target>),
    Close(usize),
    Signal(Box<Signal>),
}

/// A parsed body with everything resolved: what a SQL node runs.
#[derive(Debug)]
pub(crate) struct Program {
    pub body: Stmt,
    /// Every variable of the body; the first `param_count` are the parameters.
    pub locals: Vec<LocalVar>,
    pub param_count: usize,
    pub cursors: Vec<CursorDecl>,
    /// The return type of a function, as a column for conversion and as a result type.
    pub returns: Option<(ColumnDef, SqlType)>,
}


/// The result type of a stored function call: its declared return type, nullable.
pub(crate) fn return_sql_type(returns: &RoutineType) -> SqlType {
    let column = type_column("", returns);
    SqlType::from_column(&column).nullable(true)
}

/// A declared type as a nullable column (for `coerce` and for result types).
pub(crate) fn type_column(name: &str, ty: &RoutineType) -> ColumnDef {
    let mut column = ColumnDef::new(name, ty.ty.clone());
    column.collation = ty.collation.clone();
    column
}
