//! Compiling sqlparser expressions into Cairn expressions ([`cairn_common::expr::Expr`]) with
//! their MySQL result types.
//!
//! Column references become positions in the input row of the operator that evaluates the
//! expression (a [`Scope`] says which name is where). Things whose values are known only when
//! the statement runs become [`Expr::Param`] slots bound at execution: `?` placeholders,
//! `@@system` and `@user` variables, and uncorrelated subqueries (run once before the query).
//! Keeping them as slots is what lets a prepared statement keep its plan across executions.

use std::collections::HashMap;

use sqlparser::ast::{
    self, BinaryOperator, DataType, DateTimeField, FunctionArg, FunctionArgExpr, FunctionArguments, UnaryOperator,
};

use cairn_common::catalog::Catalog;
use cairn_common::collation::Collation;
use cairn_common::decimal::Decimal;
use cairn_common::error::{Error, ErrorKind};
use cairn_common::expr::{ArithOp, CastTarget, CmpOp, Expr};
use cairn_common::functions::Func;
use cairn_common::ids::TableId;
use cairn_common::temporal;
use cairn_common::types::{ColumnType, IntWidth};
use cairn_common::{Value, bail, err};

use crate::parse::VarScope;
use crate::plan::QueryPlan;
use crate::types::{ColumnOrigin, Kind, SqlType, arithmetic_type, common_type, decimal_literal_type};

/// One column visible to expressions: where it sits in the input row and what it is.
#[derive(Clone, Debug)]
pub(crate) struct ScopeColumn {
    /// The table's alias (or name) in the query.
    pub table: Option<String>,
    pub database: Option<String>,
    pub name: String,
    pub ty: SqlType,
    pub origin: Option<ColumnOrigin>,
    /// Not expanded by `*` (the hidden primary key).
    pub hidden: bool,
}

/// The columns an expression may reference, in input-row order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scope {
    pub columns: Vec<ScopeColumn>,
}

impl Scope {
    /// Finds a column by `[db.][table.]name`. MySQL column names are case-insensitive; table
    /// aliases and database names are case-sensitive (lower_case_table_names = 0).
    pub fn resolve(&self, qualifier: &[String], name: &str) -> Result<Option<usize>, Error> {
        let mut found = None;
        for (i, c) in self.columns.iter().enumerate() {
            if !c.name.eq_ignore_ascii_case(name) {
                continue;
            }
            let matches = match qualifier {
                [] => !c.hidden,
                [table] => c.table.as_deref() == Some(table.as_str()),
                [db, table] => c.table.as_deref() == Some(table.as_str()) && c.database.as_deref() == Some(db.as_str()),
                _ => false,
            };
            if matches {
                if found.is_some() {
                    bail!(AmbiguousColumn, "Column '{name}' in field list is ambiguous");
                }
                found = Some(i);
            }
        }
        Ok(found)
    }

    pub fn width(&self) -> usize {
        self.columns.len()
    }
}

/// Why a subquery is run before the statement and how its result is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SubqueryKind {
    /// `(SELECT x …)`: one value (NULL for no row, 1242 for several).
    Scalar,
    /// `EXISTS (SELECT …)`: 1 or 0.
    Exists,
    /// `x IN (SELECT …)`: the list of first-column values.
    InList,
}

/// Something bound when a statement runs, referenced by [`Expr::Param`] with its index.
#[derive(Clone, Debug)]
pub(crate) enum Slot {
    /// The n-th `?` of a prepared statement.
    Param(u16),
    SystemVar { scope: VarScope, name: String },
    UserVar(String),
    Subquery { kind: SubqueryKind, plan: Box<QueryPlan> },
    /// UTC_TIMESTAMP(fsp): the statement's time in UTC (NOW() is in the session time zone).
    UtcNow { fsp: u8 },
    /// UNIX_TIMESTAMP(): the statement's time as seconds since the epoch.
    UnixNow,
    /// A column of the enclosing query's current row, referenced by a correlated subquery;
    /// bound for each row by the Apply operator that runs the subquery.
    Outer { level: usize, column: usize },
    /// The per-row result of correlated subquery `index` of `PlanContext::correlated`; the
    /// planner replaces references to it by a column the Apply operator appends.
    Correlated { index: usize },
    /// A stored function's value for these arguments (crate::routine), computed when the
    /// statement is bound.
    Routine(Box<crate::routine::RoutineCall>),
}

/// A subquery that reads columns of the enclosing query: run once per row of it.
#[derive(Clone, Debug)]
pub(crate) struct Correlated {
    pub kind: SubqueryKind,
    pub plan: QueryPlan,
    /// Its `Slot::Outer` slots and the enclosing row's columns they take.
    pub outer: Vec<(u32, usize)>,
    /// For `x [NOT] IN (subquery)`: x (over the enclosing row), NOT, and the collation.
    pub membership: Option<(Expr, bool, Collation)>,
}

/// What the session tells the planner (read-only while planning).
pub(crate) struct PlanEnv<'a> {
    pub catalog: &'a Catalog,
    pub database: Option<&'a str>,
    /// Reads a system variable's current value (for type inference and `SET`).
    pub system_var: &'a (dyn Fn(VarScope, &str) -> Result<Value, Error> + Sync),
    pub user_var: &'a (dyn Fn(&str) -> Value + Sync),
    /// sql_mode allows `||` as string concatenation (PIPES_AS_CONCAT).
    pub pipes_as_concat: bool,
    /// sql_mode has ONLY_FULL_GROUP_BY.
    pub only_full_group_by: bool,
    /// The statement's text and tokens, for naming result columns as written.
    pub source: Option<&'a crate::lexer::StatementText>,
}

/// State shared by every expression of one statement while it is planned.
pub(crate) struct PlanContext<'a> {
    pub env: PlanEnv<'a>,
    pub slots: Vec<Slot>,
    /// Placeholder locations (line, column) in textual order → their index.
    pub placeholders: HashMap<(u64, u64), u16>,
    next_placeholder: u16,
    /// Tables the plan depends on, with the definition versions it was built from.
    pub tables: Vec<(TableId, u64)>,
    /// How deep compilation currently is (bounds the depth of what it builds).
    depth: usize,
    /// Scopes of the queries enclosing the subquery being planned (innermost last): names a
    /// subquery does not know are looked up in the last one.
    pub outer: Vec<Scope>,
    /// Correlated subqueries met so far; each select plans an Apply for its own.
    pub correlated: Vec<Correlated>,
    /// The variables of the stored routine whose statement is being planned: an unqualified
    /// name that is one of them reads it, bound like the `?` parameter of its frame slot.
    pub locals: Option<std::sync::Arc<crate::routine::Locals>>,
    /// Stored functions the plan calls, with the catalog versions it was built against.
    pub routines: Vec<(cairn_common::routine::RoutineKey, u64)>,
    /// The common table expressions in scope (innermost last): see `cte`.
    pub ctes: Vec<crate::cte::Cte>,
    /// The window-function calls of the select being planned (see `window`): a call found
    /// here compiles to the column the Window operator appends for it.
    pub windows: Vec<crate::window::WindowSlot>,
}

impl<'a> PlanContext<'a> {
    pub fn new(env: PlanEnv<'a>, placeholder_locations: Vec<(u64, u64)>) -> PlanContext<'a> {
        let placeholders = placeholder_locations.into_iter().enumerate().map(|(i, l)| (l, i as u16)).collect();
        PlanContext {
            env,
            slots: Vec::new(),
            placeholders,
            next_placeholder: 0,
            tables: Vec::new(),
            depth: 0,
            outer: Vec::new(),
            correlated: Vec::new(),
            locals: None,
            routines: Vec::new(),
            ctes: Vec::new(),
            windows: Vec::new(),
        }
    }

    fn add_slot(&mut self, slot: Slot) -> u32 {
        self.slots.push(slot);
        (self.slots.len() - 1) as u32
    }

    fn placeholder(&mut self, location: (u64, u64)) -> u16 {
        match self.placeholders.get(&location) {
            Some(&i) => i,
            None => {
                // A placeholder the tokens did not show (should not happen): number it next.
                let i = self.placeholders.len() as u16 + self.next_placeholder;
                self.next_placeholder += 1;
                i
            }
        }
    }

    /// The slot of the i-th `?`, shared by every reference to it.
    fn param_slot(&mut self, index: u16) -> u32 {
        if let Some(at) = self.slots.iter().position(|s| matches!(s, Slot::Param(i) if *i == index)) {
            return at as u32;
        }
        self.add_slot(Slot::Param(index))
    }

    /// A slot for a column of the innermost enclosing query (its nesting level tells which
    /// subquery's Apply binds it).
    fn outer_slot(&mut self, column: usize) -> u32 {
        let level = self.outer.len();
        self.add_slot(Slot::Outer { level, column })
    }

    pub fn note_table(&mut self, id: TableId, version: u64) {
        if !self.tables.contains(&(id, version)) {
            self.tables.push((id, version));
        }
    }
}

/// An aggregate function call found while compiling post-aggregation expressions.
#[derive(Clone, Debug)]
pub(crate) struct AggregateCall {
    pub func: AggregateFunc,
    pub args: Vec<Expr>,
    pub distinct: bool,
    /// GROUP_CONCAT's separator and ORDER BY (expressions over the input row, descending?).
    pub separator: String,
    pub order: Vec<(Expr, bool, Collation)>,
    pub ty: SqlType,
    /// The argument's collation (MIN/MAX of strings, DISTINCT).
    pub collation: Collation,
    /// Textual form, to share one computation between identical calls.
    pub key: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AggregateFunc {
    CountStar,
    Count,
    Sum,
    Avg,
    Min,
    Max,
    GroupConcat,
    BitAnd,
    BitOr,
    BitXor,
    AnyValue,
}

/// Whether an unqualified function name is a built-in one (which then hides a stored function
/// of the same name, as in MySQL). `upper` is the name in upper case.
pub(crate) fn is_builtin_function(upper: &str) -> bool {
    aggregate_func(upper).is_some()
        || matches!(
            upper,
            "DATE_ADD" | "DATE_SUB" | "ADDDATE" | "SUBDATE" | "TIMESTAMPDIFF" | "TIMESTAMPADD" | "CHAR" | "INSERT" | "VALUES" | "FORMAT"
                | "REGEXP_LIKE" | "REGEXP_REPLACE" | "REGEXP_SUBSTR" | "JSON_EXTRACT"
        )
        || Func::from_name(upper).is_some_and(|f| !f.name().starts_with('$'))
}

pub(crate) fn aggregate_func(name: &str) -> Option<AggregateFunc> {
    Some(match name.to_ascii_uppercase().as_str() {
        "COUNT" => AggregateFunc::Count,
        "SUM" => AggregateFunc::Sum,
        "AVG" => AggregateFunc::Avg,
        "MIN" => AggregateFunc::Min,
        "MAX" => AggregateFunc::Max,
        "GROUP_CONCAT" => AggregateFunc::GroupConcat,
        "BIT_AND" => AggregateFunc::BitAnd,
        "BIT_OR" => AggregateFunc::BitOr,
        "BIT_XOR" => AggregateFunc::BitXor,
        "ANY_VALUE" => AggregateFunc::AnyValue,
        _ => return None,
    })
}

/// Post-aggregation compilation: the input row of expressions is `[group keys…][first input
/// row of the group…][aggregate results…]`.
pub(crate) struct AggregateScope<'s> {
    pub input: &'s Scope,
    /// Group key expressions: their text (to match select-list expressions), type, and the
    /// input column when the key is a plain column.
    pub keys: Vec<(String, SqlType, Option<usize>)>,
    pub calls: Vec<AggregateCall>,
    /// sql_mode has ONLY_FULL_GROUP_BY: a column that is neither grouped nor functionally
    /// dependent on the group keys is an error (1055, or 1140 without GROUP BY).
    pub only_full_group_by: bool,
    /// Whether the query has GROUP BY.
    pub grouped: bool,
    /// The clause and 1-based position of the expression being compiled, for the messages.
    pub position: Option<(&'static str, usize)>,
}

impl AggregateScope<'_> {
    /// Whether input column `i` is determined by the group keys: a key itself, or a column of
    /// a table whose whole primary key is among the keys.
    fn determined(&self, i: usize) -> bool {
        let keyed = |c: usize| self.keys.iter().any(|k| k.2 == Some(c));
        if keyed(i) {
            return true;
        }
        let table = &self.input.columns[i].table;
        let pk: Vec<usize> = (0..self.input.columns.len())
            .filter(|&c| &self.input.columns[c].table == table)
            .filter(|&c| self.input.columns[c].origin.as_ref().is_some_and(|o| o.flags & cairn_common::types::column_flag::PRI_KEY != 0))
            .collect();
        !pk.is_empty() && pk.iter().all(|&c| keyed(c))
    }

    fn ungrouped_column(&self, i: usize) -> Error {
        let c = &self.input.columns[i];
        let name = format!("{}.{}.{}", c.database.as_deref().unwrap_or(""), c.table.as_deref().unwrap_or(""), c.name);
        let (clause, n) = self.position.unwrap_or(("SELECT list", 1));
        if self.grouped {
            err!(
                WrongFieldWithGroup,
                "Expression #{n} of {clause} is not in GROUP BY clause and contains nonaggregated column '{name}' which is not functionally dependent on columns in GROUP BY clause; this is incompatible with sql_mode=only_full_group_by"
            )
        } else {
            err!(
                MixOfGroupFuncAndFields,
                "In aggregated query without GROUP BY, expression #{n} of {clause} contains nonaggregated column '{name}'; this is incompatible with sql_mode=only_full_group_by"
            )
        }
    }
}

impl AggregateScope<'_> {
    fn first_row_offset(&self) -> usize {
        self.keys.len()
    }

    fn aggregate_offset(&self) -> usize {
        self.keys.len() + self.input.width()
    }
}

/// Raised (internally) when an aggregate call is met outside aggregation: the planner then
/// plans the SELECT as an aggregate query.
pub(crate) fn needs_aggregation() -> Error {
    Error::new(ErrorKind::InvalidGroupFunctionUse, "Invalid use of group function")
}

/// Compiles expressions of one clause.
pub(crate) struct Compiler<'c, 'a, 's> {
    pub ctx: &'c mut PlanContext<'a>,
    pub scope: &'s Scope,
    /// Set when compiling over an aggregation's output.
    pub aggregate: Option<&'c mut AggregateScope<'s>>,
    /// The clause, for MySQL's "Unknown column 'x' in 'where clause'".
    pub clause: &'static str,
    /// Whether aggregate calls are allowed here (not in WHERE, not inside another aggregate).
    pub allow_aggregates: bool,
    /// Select-list aliases a name may refer to (HAVING), already compiled.
    pub aliases: Vec<(String, Expr, SqlType)>,
    /// In ON DUPLICATE KEY UPDATE: the qualifier under which `VALUES(col)` finds the proposed
    /// row's columns.
    pub values_alias: Option<String>,
}

type Typed = (Expr, SqlType);

fn literal(value: Value, ty: SqlType) -> Typed {
    (Expr::Literal(value), ty)
}

fn boxed(e: Expr) -> Box<Expr> {
    Box::new(e)
}

/// A number token as MySQL reads it: integers are BIGINT (unsigned above 2^63-1, DECIMAL above
/// 2^64-1), a point makes DECIMAL, an exponent DOUBLE.
pub(crate) fn number_literal(text: &str) -> Result<Typed, Error> {
    if text.contains(['e', 'E']) {
        let v: f64 = text.parse().map_err(|_| err!(ParseError, "Invalid number '{text}'"))?;
        return Ok(literal(Value::Double(v), SqlType::double(false).with_length(text.len() as u32)));
    }
    if !text.contains('.') {
        if let Ok(i) = text.parse::<i64>() {
            return Ok(literal(Value::Int(i), SqlType::bigint(false, false).with_length(text.len() as u32)));
        }
        if let Ok(u) = text.parse::<u64>() {
            return Ok(literal(Value::UInt(u), SqlType::bigint(true, false).with_length(text.len() as u32)));
        }
    }
    match Decimal::parse(text) {
        Some(d) => {
            let ty = decimal_literal_type(&d);
            Ok(literal(Value::Decimal(d), ty))
        }
        None => {
            let v: f64 = text.parse().map_err(|_| err!(ParseError, "Invalid number '{text}'"))?;
            Ok(literal(Value::Double(v), SqlType::double(false)))
        }
    }
}

fn string_literal(s: &str) -> Typed {
    literal(Value::text(s), SqlType::varchar(s.chars().count() as u32, false, false))
}

fn hex_literal(hex: &str) -> Result<Typed, Error> {
    let digits: String = if hex.len() % 2 == 1 { format!("0{hex}") } else { hex.to_string() };
    let mut bytes = Vec::with_capacity(digits.len() / 2);
    for pair in digits.as_bytes().chunks(2) {
        let text = std::str::from_utf8(pair).map_err(|_| bad_hex(hex))?;
        bytes.push(u8::from_str_radix(text, 16).map_err(|_| bad_hex(hex))?);
    }
    let len = bytes.len() as u32;
    Ok(literal(Value::Bytes(bytes), SqlType::varchar(len, true, false)))
}

fn bad_hex(hex: &str) -> Error {
    crate::lexer::syntax_error_near(&format!("X'{hex}'"), 1)
}

fn bit_literal(bits: &str) -> Result<Typed, Error> {
    if !bits.bytes().all(|b| b == b'0' || b == b'1') {
        return Err(crate::lexer::syntax_error_near(&format!("b'{bits}'"), 1));
    }
    let mut bytes = Vec::new();
    let padded = format!("{}{bits}", "0".repeat((8 - bits.len() % 8) % 8));
    for chunk in padded.as_bytes().chunks(8) {
        let mut byte = 0u8;
        for &b in chunk {
            byte = byte << 1 | (b - b'0');
        }
        bytes.push(byte);
    }
    let len = bytes.len() as u32;
    Ok(literal(Value::Bytes(bytes), SqlType::varchar(len, true, false)))
}

/// The collation two operands of a comparison are compared under: binary if either side is
/// a binary string or has a binary collation, else the column's (case-insensitive).
fn comparison_collation(a: &SqlType, b: &SqlType) -> Collation {
    let binary = |t: &SqlType| matches!(t.kind(), Kind::String { binary: true }) || (t.is_string() && t.collation == Collation::Binary);
    if binary(a) || binary(b) { Collation::Binary } else { Collation::CaseInsensitive }
}

/// The type of a comparison or logical operator: INT(1), MYSQL_TYPE_LONG on the wire, as MySQL
/// 8.0 (`set_data_type_bool`) and MariaDB send it. Drivers that read BIGINT as a string or a
/// big number (mysql2 with bigNumberStrings, JDBC's Long) then give a plain integer.
fn bool_type(nullable: bool) -> SqlType {
    SqlType::of(ColumnType::Int { width: IntWidth::Int, unsigned: false, display: None }, nullable).with_length(1)
}

fn interval_unit(field: &DateTimeField) -> Result<&'static str, Error> {
    Ok(match field {
        DateTimeField::Microsecond | DateTimeField::Microseconds => "MICROSECOND",
        DateTimeField::Second | DateTimeField::Seconds => "SECOND",
        DateTimeField::Minute | DateTimeField::Minutes => "MINUTE",
        DateTimeField::Hour | DateTimeField::Hours => "HOUR",
        DateTimeField::Day | DateTimeField::Days => "DAY",
        DateTimeField::Week(_) | DateTimeField::Weeks => "WEEK",
        DateTimeField::Month | DateTimeField::Months => "MONTH",
        DateTimeField::Quarter => "QUARTER",
        DateTimeField::Year | DateTimeField::Years => "YEAR",
        other => return Err(Error::not_supported(format!("INTERVAL unit {other}"))),
    })
}

fn unit_from_name(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_uppercase().as_str() {
        "MICROSECOND" | "FRAC_SECOND" => "MICROSECOND",
        "SECOND" => "SECOND",
        "MINUTE" => "MINUTE",
        "HOUR" => "HOUR",
        "DAY" => "DAY",
        "WEEK" => "WEEK",
        "MONTH" => "MONTH",
        "QUARTER" => "QUARTER",
        "YEAR" => "YEAR",
        _ => return None,
    })
}

/// The text MySQL uses as the name of an unaliased select-list expression.
pub(crate) fn expression_name(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Identifier(i) => i.value.clone(),
        ast::Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(last) if !parts[0].value.starts_with("@@") => last.value.clone(),
            _ => parts.iter().map(|p| p.value.as_str()).collect::<Vec<_>>().join("."),
        },
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => s.clone(),
            ast::Value::Null => "NULL".into(),
            other => other.to_string(),
        },
        ast::Expr::Nested(inner) => expression_name(inner),
        other => other.to_string(),
    }
}

impl<'c, 'a, 's> Compiler<'c, 'a, 's> {
    pub fn new(ctx: &'c mut PlanContext<'a>, scope: &'s Scope, clause: &'static str) -> Compiler<'c, 'a, 's> {
        Compiler { ctx, scope, aggregate: None, clause, allow_aggregates: false, aliases: Vec::new(), values_alias: None }
    }

    fn unknown_column(&self, name: &str) -> Error {
        err!(UnknownColumn, "Unknown column '{name}' in '{}'", self.clause)
    }

    /// Compiles one expression. Its depth is bounded (`MAX_EXPR_DEPTH`, 1436 beyond), and the
    /// stack grows on demand below that: expressions come from clients.
    #[recursive::recursive]
    pub fn compile(&mut self, e: &ast::Expr) -> Result<Typed, Error> {
        self.ctx.depth += 1;
        let result = if self.ctx.depth > MAX_EXPR_DEPTH {
            Err(Error::new(ErrorKind::StackOverrun, format!("Thread stack overrun: an expression nests deeper than {MAX_EXPR_DEPTH} levels")))
        } else {
            self.compile_node(e)
        };
        self.ctx.depth -= 1;
        result
    }

    fn compile_node(&mut self, e: &ast::Expr) -> Result<Typed, Error> {
        // Over an aggregation, a select-list expression equal to a GROUP BY key reads the key.
        if let Some(agg) = self.aggregate.as_deref() {
            let logical = matches!(e, ast::Expr::BinaryOp { op: BinaryOperator::And | BinaryOperator::Or | BinaryOperator::Xor, .. });
            if !matches!(e, ast::Expr::Value(_)) && !logical && agg.keys.iter().any(|k| k.2.is_none()) {
                let text = e.to_string();
                if let Some(i) = agg.keys.iter().position(|k| k.0 == text) {
                    return Ok((Expr::column(i), agg.keys[i].1.clone()));
                }
            }
        }
        match e {
            ast::Expr::Identifier(ident) => self.identifier(std::slice::from_ref(ident)),
            ast::Expr::CompoundIdentifier(parts) => self.identifier(parts),
            ast::Expr::Value(v) => self.value(v),
            ast::Expr::Nested(inner) => self.compile(inner),
            ast::Expr::Prefixed { prefix, value } => {
                let (expr, ty) = self.compile(value)?;
                if prefix.value.eq_ignore_ascii_case("_binary") {
                    let len = ty.char_length();
                    return Ok(match expr {
                        Expr::Literal(v) => literal(Value::Bytes(v.to_bytes().into_owned()), SqlType::varchar(len, true, ty.nullable)),
                        other => (Expr::Cast { arg: boxed(other), to: CastTarget::Binary(None) }, SqlType::varchar(len, true, ty.nullable)),
                    });
                }
                Ok((expr, ty))
            }
            ast::Expr::TypedString(ts) => {
                let text = match &ts.value.value {
                    ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                let bad = || err!(TruncatedWrongValue, "Incorrect DATE value: '{text}'");
                match &ts.data_type {
                    DataType::Date => {
                        let d = temporal::parse_date(&text).ok_or_else(bad)?;
                        Ok(literal(Value::Date(d), SqlType::of(ColumnType::Date, false)))
                    }
                    DataType::Timestamp(..) | DataType::Datetime(_) => {
                        let dt = temporal::parse_datetime(&text).ok_or_else(|| err!(TruncatedWrongValue, "Incorrect DATETIME value: '{text}'"))?;
                        let fsp = text.split_once('.').map_or(0, |(_, f)| f.len().min(6) as u8);
                        Ok(literal(Value::DateTime(dt), SqlType::datetime(fsp, false)))
                    }
                    DataType::Time(..) => {
                        let t = temporal::parse_time(&text).ok_or_else(|| err!(TruncatedWrongValue, "Incorrect TIME value: '{text}'"))?;
                        let fsp = text.split_once('.').map_or(0, |(_, f)| f.len().min(6) as u8);
                        Ok(literal(Value::Time(t), SqlType::of(ColumnType::Time { fsp }, false)))
                    }
                    other => Err(Error::not_supported(format!("{other} literals"))),
                }
            }
            ast::Expr::UnaryOp { op, expr } => self.unary(*op, expr),
            ast::Expr::BinaryOp { left, op, right } => self.binary(left, op, right),
            ast::Expr::IsNull(a) => self.is_null(a, false),
            ast::Expr::IsNotNull(a) => self.is_null(a, true),
            ast::Expr::IsTrue(a) => self.is_bool(a, true, false),
            ast::Expr::IsNotTrue(a) => self.is_bool(a, true, true),
            ast::Expr::IsFalse(a) => self.is_bool(a, false, false),
            ast::Expr::IsNotFalse(a) => self.is_bool(a, false, true),
            ast::Expr::IsUnknown(a) => self.is_null(a, false),
            ast::Expr::IsNotUnknown(a) => self.is_null(a, true),
            ast::Expr::Between { expr, negated, low, high } => {
                let (a, ta) = self.compile(expr)?;
                let (l, tl) = self.compile(low)?;
                let (h, th) = self.compile(high)?;
                let collation = comparison_collation(&ta, &common_type(&[tl.clone(), th.clone()]));
                let nullable = ta.nullable || tl.nullable || th.nullable;
                Ok((
                    Expr::Between { arg: boxed(a), low: boxed(l), high: boxed(h), negated: *negated, collation },
                    bool_type(nullable),
                ))
            }
            ast::Expr::Like { negated, any, expr, pattern, escape_char } => {
                if *any {
                    return Err(Error::not_supported("LIKE ANY"));
                }
                let (a, ta) = self.compile(expr)?;
                let (p, tp) = self.compile(pattern)?;
                let escape = match escape_char.as_deref() {
                    None => '\\',
                    Some(ast::Expr::Value(v)) => match &v.value {
                        ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => {
                            let mut chars = s.chars();
                            match (chars.next(), chars.next()) {
                                (Some(c), None) => c,
                                (None, None) => '\\',
                                _ => bail!(WrongArguments, "Incorrect arguments to ESCAPE"),
                            }
                        }
                        _ => bail!(WrongArguments, "Incorrect arguments to ESCAPE"),
                    },
                    Some(_) => bail!(WrongArguments, "Incorrect arguments to ESCAPE"),
                };
                let collation = comparison_collation(&ta, &tp);
                Ok((
                    Expr::Like { arg: boxed(a), pattern: boxed(p), escape, negated: *negated, collation },
                    bool_type(ta.nullable || tp.nullable),
                ))
            }
            ast::Expr::ILike { .. } | ast::Expr::SimilarTo { .. } => Err(Error::not_supported("ILIKE / SIMILAR TO")),
            ast::Expr::RLike { .. } => Err(Error::not_supported("REGEXP")),
            ast::Expr::In { expr, target, negated, .. } => self.in_expr(expr, target, *negated),
            ast::Expr::Case { operand, conditions, else_result, .. } => {
                let operand = match operand {
                    Some(o) => Some(self.compile(o)?),
                    None => None,
                };
                let mut whens = Vec::with_capacity(conditions.len());
                let mut result_types = Vec::new();
                let mut when_types = Vec::new();
                for w in conditions {
                    let (c, tc) = self.compile(&w.condition)?;
                    let (r, tr) = self.compile(&w.result)?;
                    when_types.push(tc);
                    result_types.push(tr);
                    whens.push((c, r));
                }
                let otherwise = match else_result {
                    Some(e) => {
                        let (x, tx) = self.compile(e)?;
                        result_types.push(tx);
                        Some(boxed(x))
                    }
                    None => {
                        result_types.push(SqlType::null());
                        None
                    }
                };
                let collation = match &operand {
                    Some((_, to)) => comparison_collation(to, &common_type(&when_types)),
                    None => Collation::CaseInsensitive,
                };
                let ty = common_type(&result_types);
                Ok((Expr::Case { operand: operand.map(|(o, _)| boxed(o)), whens, otherwise, collation }, ty))
            }
            ast::Expr::Cast { expr, data_type, .. } => {
                let (a, ta) = self.compile(expr)?;
                self.cast(a, ta, data_type)
            }
            ast::Expr::Convert { expr, data_type, charset, .. } => {
                let (a, ta) = self.compile(expr)?;
                if let Some(dt) = data_type {
                    return self.cast(a, ta, dt);
                }
                let binary = charset.as_ref().is_some_and(|c| c.to_string().eq_ignore_ascii_case("binary"));
                let len = ta.char_length();
                let to = if binary { CastTarget::Binary(None) } else { CastTarget::Char(None) };
                Ok((Expr::Cast { arg: boxed(a), to }, SqlType::varchar(len, binary, ta.nullable)))
            }
            ast::Expr::Collate { expr, collation } => {
                let (a, mut ta) = self.compile(expr)?;
                let name = collation.to_string();
                let known = crate::types::normalize_collation(&name)
                    .ok_or_else(|| err!(UnknownCollation, "Unknown collation: '{name}'"))?;
                ta.collation = Collation::from_name(known).unwrap_or_default();
                Ok((a, ta))
            }
            ast::Expr::Extract { field, expr, .. } => {
                let func = match field {
                    DateTimeField::Year => Func::Year,
                    DateTimeField::Month => Func::Month,
                    DateTimeField::Day => Func::Day,
                    DateTimeField::Hour => Func::Hour,
                    DateTimeField::Minute => Func::Minute,
                    DateTimeField::Second => Func::Second,
                    other => return Err(Error::not_supported(format!("EXTRACT({other})"))),
                };
                // NULL for a value that is not a date, whatever the argument's nullability.
                let (a, _) = self.compile(expr)?;
                Ok((Expr::Call { func, args: vec![a] }, SqlType::bigint(false, true).with_length(4)))
            }
            ast::Expr::Ceil { expr, .. } => self.call_func(Func::Ceil, &[expr.as_ref()]),
            ast::Expr::Floor { expr, .. } => self.call_func(Func::Floor, &[expr.as_ref()]),
            ast::Expr::Position { expr, r#in } => self.call_func(Func::Locate, &[expr.as_ref(), r#in.as_ref()]),
            ast::Expr::Substring { expr, substring_from, substring_for, .. } => {
                let mut args: Vec<&ast::Expr> = vec![expr.as_ref()];
                match substring_from {
                    Some(f) => args.push(f),
                    None => bail!(WrongParameterCount, "Incorrect parameter count in the call to native function 'SUBSTRING'"),
                }
                if let Some(f) = substring_for {
                    args.push(f);
                }
                self.call_func(Func::Substring, &args)
            }
            ast::Expr::Trim { trim_where, trim_what, expr, trim_characters } => {
                if trim_characters.is_some() {
                    return Err(Error::not_supported("TRIM with a character list"));
                }
                match trim_what {
                    None => {
                        let func = match trim_where {
                            Some(ast::TrimWhereField::Leading) => Func::LTrim,
                            Some(ast::TrimWhereField::Trailing) => Func::RTrim,
                            _ => Func::Trim,
                        };
                        self.call_func(func, &[expr.as_ref()])
                    }
                    Some(what) => {
                        let (s, ts) = self.compile(expr)?;
                        let (r, tr) = self.compile(what)?;
                        let mode = match trim_where {
                            Some(ast::TrimWhereField::Leading) => 1,
                            Some(ast::TrimWhereField::Trailing) => 2,
                            _ => 0,
                        };
                        let ty = SqlType::varchar(ts.char_length(), matches!(ts.kind(), Kind::String { binary: true }), ts.nullable || tr.nullable);
                        Ok((Expr::Call { func: Func::TrimChars, args: vec![s, r, Expr::Literal(Value::Int(mode))] }, ty))
                    }
                }
            }
            ast::Expr::Function(f) => self.function(f),
            ast::Expr::Exists { subquery, negated } => {
                let slot = self.subquery(subquery, SubqueryKind::Exists, None)?.0;
                let e = Expr::Param(slot);
                Ok((if *negated { Expr::Not(boxed(e)) } else { e }, bool_type(false)))
            }
            ast::Expr::Subquery(q) => {
                let (slot, ty) = self.subquery(q, SubqueryKind::Scalar, None)?;
                Ok((Expr::Param(slot), ty.nullable(true)))
            }
            ast::Expr::Tuple(_) => Err(Error::new(ErrorKind::OperandColumns, "Operand should contain 1 column(s)")),
            ast::Expr::Interval(_) => Err(crate::lexer::syntax_error_near(&e.to_string(), 1)),
            ast::Expr::Wildcard(_) | ast::Expr::QualifiedWildcard(..) => Err(crate::lexer::syntax_error_near("*", 1)),
            ast::Expr::MatchAgainst { .. } => Err(Error::not_supported("MATCH ... AGAINST (full-text search)")),
            ast::Expr::AnyOp { .. } | ast::Expr::AllOp { .. } => Err(Error::not_supported("ANY/ALL subqueries")),
            ast::Expr::JsonAccess { .. } | ast::Expr::CompoundFieldAccess { .. } => Err(Error::not_supported("JSON paths")),
            other => Err(Error::not_supported(format!("the expression {other}"))),
        }
    }

    fn identifier(&mut self, parts: &[ast::Ident]) -> Result<Typed, Error> {
        let first = &parts[0];
        if first.quote_style.is_none() && first.value.starts_with("@@") {
            let (scope, name) = match parts {
                [one] => (VarScope::Default, one.value[2..].to_string()),
                [scope, name] => {
                    let scope = match scope.value[2..].to_ascii_lowercase().as_str() {
                        "session" | "local" => VarScope::Session,
                        "global" => VarScope::Global,
                        _ => return Err(crate::variables::unknown(&format!("{}.{}", &scope.value[2..], name.value))),
                    };
                    (scope, name.value.clone())
                }
                _ => return Err(Error::not_supported("structured system variables")),
            };
            return self.system_var(scope, &name);
        }
        if first.quote_style.is_none() && first.value.starts_with('@') && parts.len() == 1 {
            let name = first.value[1..].to_ascii_lowercase();
            let current = (self.ctx.env.user_var)(&name);
            let ty = value_type(&current).nullable(true);
            let slot = self.ctx.add_slot(Slot::UserVar(name));
            return Ok((Expr::Param(slot), ty));
        }
        // A stored routine's variable (and parameter) hides a column of the same name, as in
        // MySQL.
        if let ([one], Some(locals)) = (parts, self.ctx.locals.as_ref())
            && let Some((index, ty)) = locals.lookup(&one.value)
        {
            let ty = ty.clone();
            let slot = self.ctx.param_slot(index);
            return Ok((Expr::Param(slot), ty));
        }
        let names: Vec<String> = parts.iter().map(|p| p.value.clone()).collect();
        let (qualifier, name) = names.split_at(names.len() - 1);
        let name = &name[0];
        if qualifier.is_empty()
            && let Some((_, e, ty)) = self.aliases.iter().find(|(a, _, _)| a.eq_ignore_ascii_case(name)) {
                return Ok((e.clone(), ty.clone()));
            }
        if let Some(agg) = self.aggregate.as_deref() {
            return match agg.input.resolve(qualifier, name)? {
                Some(i) => {
                    let ty = agg.input.columns[i].ty.clone();
                    match agg.keys.iter().position(|k| k.2 == Some(i)) {
                        Some(k) => Ok((Expr::column(k), ty)),
                        None if agg.only_full_group_by && agg.position.is_some() && !agg.determined(i) => Err(agg.ungrouped_column(i)),
                        // Not a group key: the value from the group's first row (MySQL's
                        // ANY_VALUE, what it returns without ONLY_FULL_GROUP_BY).
                        None => Ok((Expr::column(agg.first_row_offset() + i), ty)),
                    }
                }
                None => self.keyword_function(parts).unwrap_or_else(|| Err(self.unknown_column(&names.join(".")))),
            };
        }
        match self.scope.resolve(qualifier, name)? {
            Some(i) => Ok((Expr::column(i), self.scope.columns[i].ty.clone())),
            None => {
                // A name of the enclosing query: a correlated subquery's outer reference.
                let outer = match self.ctx.outer.last() {
                    Some(scope) => scope.resolve(qualifier, name)?.map(|i| (i, scope.columns[i].ty.clone())),
                    None => None,
                };
                match outer {
                    Some((i, ty)) => {
                        let slot = self.ctx.outer_slot(i);
                        Ok((Expr::Param(slot), ty))
                    }
                    None => self.keyword_function(parts).unwrap_or_else(|| Err(self.unknown_column(&names.join(".")))),
                }
            }
        }
    }

    /// `CURRENT_USER`, `CURRENT_TIMESTAMP` and friends written without parentheses.
    fn keyword_function(&mut self, parts: &[ast::Ident]) -> Option<Result<Typed, Error>> {
        let [one] = parts else { return None };
        if one.quote_style.is_some() {
            return None;
        }
        let upper = one.value.to_ascii_uppercase();
        match upper.as_str() {
            "CURRENT_USER" | "CURRENT_TIMESTAMP" | "CURRENT_DATE" | "CURRENT_TIME" | "LOCALTIME" | "LOCALTIMESTAMP"
            | "UTC_TIMESTAMP" | "UTC_DATE" | "UTC_TIME" => {
                let func = Func::from_name(&upper).or(match upper.as_str() {
                    "UTC_DATE" => Some(Func::CurDate),
                    "UTC_TIME" => Some(Func::CurTime),
                    _ => None,
                })?;
                Some(self.call_func(func, &[]))
            }
            _ => None,
        }
    }

    fn system_var(&mut self, scope: VarScope, name: &str) -> Result<Typed, Error> {
        let current = (self.ctx.env.system_var)(scope, name)?;
        let ty = value_type(&current);
        let slot = self.ctx.add_slot(Slot::SystemVar { scope, name: name.to_string() });
        Ok((Expr::Param(slot), ty))
    }

    fn value(&mut self, v: &ast::ValueWithSpan) -> Result<Typed, Error> {
        match &v.value {
            ast::Value::Number(text, _) => number_literal(text),
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) | ast::Value::NationalStringLiteral(s) => {
                Ok(string_literal(s))
            }
            ast::Value::HexStringLiteral(h) => hex_literal(h),
            ast::Value::SingleQuotedByteStringLiteral(b) => bit_literal(b),
            ast::Value::Boolean(b) => Ok(literal(Value::Int(*b as i64), bool_type(false))),
            ast::Value::Null => Ok(literal(Value::Null, SqlType::null())),
            ast::Value::Placeholder(p) if p == "?" => {
                let index = self.ctx.placeholder((v.span.start.line, v.span.start.column));
                let slot = self.ctx.param_slot(index);
                // A parameter's type is known only when it is bound; MySQL describes it as a
                // nullable string until then.
                let mut ty = SqlType::varchar(0, false, true);
                ty.length = Some(0);
                Ok((Expr::Param(slot), ty))
            }
            other => Err(Error::not_supported(format!("the literal {other}"))),
        }
    }

    fn unary(&mut self, op: UnaryOperator, expr: &ast::Expr) -> Result<Typed, Error> {
        match op {
            UnaryOperator::Minus => {
                // Fold negative number literals so that -9223372036854775808 is a BIGINT.
                if let ast::Expr::Value(v) = expr
                    && let ast::Value::Number(text, _) = &v.value {
                        let negated = format!("-{text}");
                        if !text.contains(['.', 'e', 'E'])
                            && let Ok(i) = negated.parse::<i64>() {
                                return Ok(literal(Value::Int(i), SqlType::bigint(false, false).with_length(negated.len() as u32)));
                            }
                        let (e, t) = number_literal(text)?;
                        if let Expr::Literal(value) = e {
                            let folded = Expr::Neg(boxed(Expr::Literal(value)))
                                .eval(&[], &mut cairn_common::expr::EvalContext::detached())?;
                            let t = match t.kind() {
                                Kind::Int { .. } => SqlType::decimal(20, 0, false),
                                _ => t,
                            };
                            return Ok(literal(folded, t.with_length(negated.len() as u32)));
                        }
                    }
                let (a, ta) = self.compile(expr)?;
                let ty = match ta.kind() {
                    Kind::Int { .. } => SqlType::bigint(false, ta.nullable).with_length(ta.char_length() + 1),
                    Kind::Decimal { .. } => ta.clone(),
                    Kind::Null => SqlType::null(),
                    _ => SqlType::double(ta.nullable),
                };
                Ok((Expr::Neg(boxed(a)), ty))
            }
            UnaryOperator::Plus => self.compile(expr),
            UnaryOperator::Not | UnaryOperator::BangNot => {
                let (a, ta) = self.compile(expr)?;
                Ok((Expr::Not(boxed(a)), bool_type(ta.nullable)))
            }
            UnaryOperator::BitwiseNot => {
                let (a, ta) = self.compile(expr)?;
                Ok((Expr::BitNot(boxed(a)), SqlType::bigint(true, ta.nullable)))
            }
            other => Err(Error::not_supported(format!("the operator {other}"))),
        }
    }

    fn binary(&mut self, left: &ast::Expr, op: &BinaryOperator, right: &ast::Expr) -> Result<Typed, Error> {
        // `d + INTERVAL n unit`, `INTERVAL n unit + d`, `d - INTERVAL n unit`.
        if let (BinaryOperator::Plus | BinaryOperator::Minus, ast::Expr::Interval(iv)) = (op, right) {
            return self.date_arith(left, iv, matches!(op, BinaryOperator::Minus));
        }
        if let (BinaryOperator::Plus, ast::Expr::Interval(iv)) = (op, left) {
            return self.date_arith(right, iv, false);
        }
        // Row comparisons: (a, b) = (1, 2).
        if let (ast::Expr::Tuple(l), ast::Expr::Tuple(r)) = (left, right) {
            return self.row_comparison(l, op, r);
        }
        // AND/OR/XOR chains (`a = 1 OR a = 2 OR …`) become balanced trees, walked without
        // recursion, so that long chains stay shallow.
        if matches!(op, BinaryOperator::And | BinaryOperator::Or | BinaryOperator::Xor)
            || (matches!(op, BinaryOperator::StringConcat) && !self.ctx.env.pipes_as_concat)
        {
            let mut operands = vec![right];
            let mut current = left;
            while let ast::Expr::BinaryOp { left: l, op: o, right: r } = current {
                if o != op {
                    break;
                }
                operands.push(r);
                current = l;
            }
            operands.push(current);
            operands.reverse();
            let mut compiled = Vec::with_capacity(operands.len());
            let mut nullable = false;
            for operand in operands {
                let (e, t) = self.compile(operand)?;
                nullable |= t.nullable;
                compiled.push(e);
            }
            let combine: fn(Box<Expr>, Box<Expr>) -> Expr = match op {
                BinaryOperator::And => Expr::And,
                BinaryOperator::Xor => Expr::Xor,
                _ => Expr::Or,
            };
            return Ok((balanced(compiled, combine), bool_type(nullable)));
        }
        let (l, tl) = self.compile(left)?;
        let (r, tr) = self.compile(right)?;
        let nullable = tl.nullable || tr.nullable;
        let cmp = |op: CmpOp| {
            let collation = comparison_collation(&tl, &tr);
            let nullable = if op == CmpOp::NullSafeEq { false } else { nullable };
            Ok((Expr::Compare { op, left: boxed(l.clone()), right: boxed(r.clone()), collation }, bool_type(nullable)))
        };
        let arith = |op: ArithOp, ty: SqlType| Ok((Expr::Arith { op, left: boxed(l.clone()), right: boxed(r.clone()) }, ty));
        match op {
            BinaryOperator::Eq => cmp(CmpOp::Eq),
            BinaryOperator::NotEq => cmp(CmpOp::Ne),
            BinaryOperator::Lt => cmp(CmpOp::Lt),
            BinaryOperator::LtEq => cmp(CmpOp::Le),
            BinaryOperator::Gt => cmp(CmpOp::Gt),
            BinaryOperator::GtEq => cmp(CmpOp::Ge),
            BinaryOperator::Spaceship => cmp(CmpOp::NullSafeEq),
            BinaryOperator::And => Ok((Expr::And(boxed(l), boxed(r)), bool_type(nullable))),
            BinaryOperator::Or => Ok((Expr::Or(boxed(l), boxed(r)), bool_type(nullable))),
            BinaryOperator::StringConcat if !self.ctx.env.pipes_as_concat => Ok((Expr::Or(boxed(l), boxed(r)), bool_type(nullable))),
            BinaryOperator::StringConcat => {
                let binary = matches!(tl.kind(), Kind::String { binary: true }) || matches!(tr.kind(), Kind::String { binary: true });
                let ty = SqlType::varchar(tl.char_length() + tr.char_length(), binary, nullable);
                Ok((Expr::Call { func: Func::Concat, args: vec![l, r] }, ty))
            }
            BinaryOperator::Xor => Ok((Expr::Xor(boxed(l), boxed(r)), bool_type(nullable))),
            BinaryOperator::Plus => arith(ArithOp::Add, arithmetic_type(&tl, &tr, false)),
            BinaryOperator::Minus => arith(ArithOp::Sub, arithmetic_type(&tl, &tr, false)),
            BinaryOperator::Multiply => arith(ArithOp::Mul, arithmetic_type(&tl, &tr, true)),
            BinaryOperator::Divide => {
                let ty = match (tl.kind(), tr.kind()) {
                    (Kind::Null, _) | (_, Kind::Null) => SqlType::null(),
                    (Kind::Int { .. } | Kind::Decimal { .. }, Kind::Int { .. } | Kind::Decimal { .. }) => {
                        let scale = (tl.scale_exact() + cairn_common::expr::DIV_PRECISION_INCREMENT).min(30);
                        SqlType::decimal(tl.integer_digits().saturating_add(tr.scale_exact()).saturating_add(scale), scale, true)
                    }
                    _ => SqlType::double(true),
                };
                arith(ArithOp::Div, ty)
            }
            BinaryOperator::MyIntegerDivide | BinaryOperator::DuckIntegerDivide => arith(ArithOp::IntDiv, SqlType::bigint(false, true)),
            BinaryOperator::Modulo => {
                let ty = arithmetic_type(&tl, &tr, false).nullable(true);
                arith(ArithOp::Mod, ty)
            }
            BinaryOperator::BitwiseAnd => arith(ArithOp::BitAnd, SqlType::bigint(true, nullable)),
            BinaryOperator::BitwiseOr => arith(ArithOp::BitOr, SqlType::bigint(true, nullable)),
            BinaryOperator::BitwiseXor | BinaryOperator::PGBitwiseXor => arith(ArithOp::BitXor, SqlType::bigint(true, nullable)),
            BinaryOperator::PGBitwiseShiftLeft => arith(ArithOp::ShiftLeft, SqlType::bigint(true, nullable)),
            BinaryOperator::PGBitwiseShiftRight => arith(ArithOp::ShiftRight, SqlType::bigint(true, nullable)),
            BinaryOperator::Regexp => Err(Error::not_supported("REGEXP")),
            BinaryOperator::Arrow | BinaryOperator::LongArrow => Err(Error::not_supported("JSON paths")),
            other => Err(Error::not_supported(format!("the operator {other}"))),
        }
    }

    fn row_comparison(&mut self, l: &[ast::Expr], op: &BinaryOperator, r: &[ast::Expr]) -> Result<Typed, Error> {
        if l.len() != r.len() {
            bail!(OperandColumns, "Operand should contain {} column(s)", l.len());
        }
        let negate = match op {
            BinaryOperator::Eq => false,
            BinaryOperator::NotEq => true,
            _ => return Err(Error::not_supported("row comparisons other than = and <>")),
        };
        let mut parts = Vec::new();
        let mut nullable = false;
        for (a, b) in l.iter().zip(r) {
            let (ea, ta) = self.compile(a)?;
            let (eb, tb) = self.compile(b)?;
            nullable |= ta.nullable || tb.nullable;
            let collation = comparison_collation(&ta, &tb);
            parts.push(Expr::Compare { op: CmpOp::Eq, left: boxed(ea), right: boxed(eb), collation });
        }
        let all = Expr::conjunction(parts).unwrap_or(Expr::Literal(Value::Int(1)));
        Ok((if negate { Expr::Not(boxed(all)) } else { all }, bool_type(nullable)))
    }

    fn date_arith(&mut self, base: &ast::Expr, interval: &ast::Interval, subtract: bool) -> Result<Typed, Error> {
        let (b, tb) = self.compile(base)?;
        let (amount, unit) = self.interval(interval)?;
        let func = if subtract { Func::DateSub } else { Func::DateAdd };
        let ty = date_add_type(&tb, unit);
        Ok((Expr::Call { func, args: vec![b, amount, Expr::Literal(Value::text(unit))] }, ty))
    }

    fn interval(&mut self, interval: &ast::Interval) -> Result<(Expr, &'static str), Error> {
        if interval.last_field.is_some() {
            return Err(Error::not_supported("compound INTERVAL units"));
        }
        let unit = match &interval.leading_field {
            Some(f) => interval_unit(f)?,
            None => return Err(crate::lexer::syntax_error_near("INTERVAL", 1)),
        };
        let (amount, _) = self.compile(&interval.value)?;
        Ok((amount, unit))
    }

    fn is_null(&mut self, a: &ast::Expr, negated: bool) -> Result<Typed, Error> {
        let (e, _) = self.compile(a)?;
        Ok((Expr::IsNull { arg: boxed(e), negated }, bool_type(false)))
    }

    fn is_bool(&mut self, a: &ast::Expr, value: bool, negated: bool) -> Result<Typed, Error> {
        let (e, _) = self.compile(a)?;
        Ok((Expr::IsBool { arg: boxed(e), value, negated }, bool_type(false)))
    }

    fn in_expr(&mut self, expr: &ast::Expr, target: &ast::InTarget, negated: bool) -> Result<Typed, Error> {
        match target {
            ast::InTarget::List(list) => {
                if let ast::Expr::Tuple(left) = expr {
                    // (a, b) IN ((1, 2), (3, 4)): a disjunction of row equalities.
                    let mut alternatives = Vec::with_capacity(list.len());
                    let mut nullable = false;
                    for item in list {
                        let ast::Expr::Tuple(right) = item else {
                            bail!(OperandColumns, "Operand should contain {} column(s)", left.len());
                        };
                        let (e, t) = self.row_comparison(left, &BinaryOperator::Eq, right)?;
                        nullable |= t.nullable;
                        alternatives.push(e);
                    }
                    let any = alternatives.into_iter().reduce(|a, b| Expr::Or(boxed(a), boxed(b))).unwrap_or(Expr::Literal(Value::Int(0)));
                    return Ok((if negated { Expr::Not(boxed(any)) } else { any }, bool_type(nullable)));
                }
                let (a, ta) = self.compile(expr)?;
                let mut items = Vec::with_capacity(list.len());
                let mut types = Vec::with_capacity(list.len());
                for item in list {
                    let (e, t) = self.compile(item)?;
                    items.push(e);
                    types.push(t);
                }
                let nullable = ta.nullable || types.iter().any(|t| t.nullable);
                let collation = comparison_collation(&ta, &common_type(&types));
                Ok((Expr::InList { arg: boxed(a), list: items, negated, collation }, bool_type(nullable)))
            }
            ast::InTarget::Subquery(q) => {
                if matches!(expr, ast::Expr::Tuple(_)) {
                    return Err(Error::not_supported("row IN (subquery)"));
                }
                let (a, ta) = self.compile(expr)?;
                let (slot, collation) = self.subquery(q, SubqueryKind::InList, Some((a.clone(), negated, &ta)))?;
                // The list is filled in when the subquery has run (see exec::substitute_lists),
                // or, correlated, the planner replaces the whole test by the Apply's column.
                Ok((Expr::InList { arg: boxed(a), list: vec![Expr::Param(slot)], negated, collation: collation.collation }, bool_type(true)))
            }
            _ => Err(Error::not_supported("IN UNNEST / IN table")),
        }
    }

    /// Plans a subquery and gives it a slot: bound once before the statement, or, when it
    /// reads the enclosing query's columns, computed per row (`Slot::Correlated`). Returns the
    /// slot and the type of its first column (for IN: the comparison's collation in it).
    fn subquery(&mut self, q: &ast::Query, kind: SubqueryKind, membership: Option<(Expr, bool, &SqlType)>) -> Result<(u32, SqlType), Error> {
        let slots_before = self.ctx.slots.len();
        self.ctx.outer.push(self.scope.clone());
        let level = self.ctx.outer.len();
        let planned = crate::plan::plan_subquery(self.ctx, q);
        self.ctx.outer.pop();
        let plan = planned?;
        if kind != SubqueryKind::Exists && plan.columns.len() != 1 {
            bail!(OperandColumns, "Operand should contain 1 column(s)");
        }
        let mut first = plan.columns.first().map_or_else(SqlType::null, |c| c.ty.clone());
        let collation = match &membership {
            Some((_, _, ta)) => comparison_collation(ta, &first),
            None => first.collation,
        };
        first.collation = collation;
        let outer: Vec<(u32, usize)> = self.ctx.slots[slots_before..]
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Outer { level: l, column } if *l == level => Some(((slots_before + i) as u32, *column)),
                _ => None,
            })
            .collect();
        if outer.is_empty() {
            let slot = self.ctx.add_slot(Slot::Subquery { kind, plan: Box::new(plan) });
            return Ok((slot, first));
        }
        if self.aggregate.is_some() {
            return Err(Error::not_supported("correlated subqueries in aggregated queries"));
        }
        let index = self.ctx.correlated.len();
        self.ctx.correlated.push(Correlated { kind, plan, outer, membership: membership.map(|(a, negated, _)| (a, negated, collation)) });
        let slot = self.ctx.add_slot(Slot::Correlated { index });
        Ok((slot, first))
    }

    fn cast(&mut self, a: Expr, ta: SqlType, dt: &DataType) -> Result<Typed, Error> {
        let nullable = ta.nullable;
        let (to, ty) = match dt {
            DataType::Signed | DataType::SignedInteger | DataType::Int(_) | DataType::Integer(_) | DataType::BigInt(_) => {
                (CastTarget::Signed, SqlType::bigint(false, nullable))
            }
            DataType::Unsigned | DataType::UnsignedInteger | DataType::IntUnsigned(_) | DataType::BigIntUnsigned(_) => {
                (CastTarget::Unsigned, SqlType::bigint(true, nullable))
            }
            DataType::Char(len) | DataType::Character(len) | DataType::Varchar(len) | DataType::Nvarchar(len) => {
                let n = char_length(len)?;
                let chars = n.unwrap_or_else(|| ta.char_length().max(1));
                (CastTarget::Char(n), SqlType::varchar(chars, false, nullable))
            }
            DataType::Binary(len) => {
                let n = len.map(|l| l as u32);
                let chars = n.unwrap_or_else(|| ta.char_length().max(1));
                (CastTarget::Binary(n), SqlType::varchar(chars, true, nullable))
            }
            DataType::Decimal(info) | DataType::Numeric(info) | DataType::Dec(info) => {
                let (p, s) = match info {
                    ast::ExactNumberInfo::None => (10, 0),
                    ast::ExactNumberInfo::Precision(p) => (*p, 0),
                    ast::ExactNumberInfo::PrecisionAndScale(p, s) => (*p, (*s).max(0) as u64),
                };
                let (p, s) = check_decimal(p, s, "")?;
                (CastTarget::Decimal { precision: p, scale: s }, SqlType::decimal(p, s, nullable))
            }
            DataType::Double(_) | DataType::DoublePrecision | DataType::Real | DataType::Float(_) => {
                (CastTarget::Double, SqlType::double(nullable))
            }
            DataType::Date => (CastTarget::Date, SqlType::of(ColumnType::Date, true)),
            DataType::Datetime(fsp) | DataType::Timestamp(fsp, _) => {
                let fsp = fsp.unwrap_or(0).min(6) as u8;
                (CastTarget::DateTime { fsp }, SqlType::datetime(fsp, true))
            }
            DataType::Time(fsp, _) => {
                let fsp = fsp.unwrap_or(0).min(6) as u8;
                (CastTarget::Time { fsp }, SqlType::of(ColumnType::Time { fsp }, true))
            }
            other => return Err(Error::not_supported(format!("CAST to {other}"))),
        };
        Ok((Expr::Cast { arg: boxed(a), to }, ty))
    }

    fn function_args<'f>(&self, f: &'f ast::Function) -> Result<(Vec<&'f ast::Expr>, bool, bool), Error> {
        // (args, star, distinct)
        match &f.args {
            FunctionArguments::None => Ok((Vec::new(), false, false)),
            FunctionArguments::Subquery(_) => Err(Error::not_supported("a subquery as function arguments")),
            FunctionArguments::List(list) => {
                let distinct = matches!(list.duplicate_treatment, Some(ast::DuplicateTreatment::Distinct));
                let mut args = Vec::with_capacity(list.args.len());
                let mut star = false;
                for a in &list.args {
                    match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(e),
                        FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => star = true,
                        _ => return Err(Error::not_supported(format!("the function arguments of {}", f.name))),
                    }
                }
                Ok((args, star, distinct))
            }
        }
    }

    fn function(&mut self, f: &ast::Function) -> Result<Typed, Error> {
        if f.over.is_some() {
            return crate::window::reference(self, f);
        }
        if f.name.0.len() == 2 {
            // `db.f(…)`: always a stored function.
            let parts: Vec<String> = f.name.0.iter().map(|p| p.as_ident().map_or_else(|| p.to_string(), |i| i.value.clone())).collect();
            return self.stored_function(f, &parts[0], &parts[1]);
        }
        if f.name.0.len() != 1 {
            return Err(Error::new(ErrorKind::RoutineDoesNotExist, format!("FUNCTION {} does not exist", f.name)));
        }
        let name = f.name.to_string();
        let upper = name.to_ascii_uppercase();
        if let Some(func) = aggregate_func(&upper) {
            return self.aggregate_call(f, func);
        }
        let (args, star, _) = self.function_args(f)?;
        if star {
            return Err(crate::lexer::syntax_error_near("*)", 1));
        }
        if upper == "VALUES"
            && let (Some(alias), [ast::Expr::Identifier(column)]) = (self.values_alias.clone(), args.as_slice()) {
                return self.identifier(&[ast::Ident::new(alias), column.clone()]);
            }
        match upper.as_str() {
            "DATE_ADD" | "DATE_SUB" | "ADDDATE" | "SUBDATE" => {
                if args.len() != 2 {
                    bail!(WrongParameterCount, "Incorrect parameter count in the call to native function '{upper}'");
                }
                let subtract = upper == "DATE_SUB" || upper == "SUBDATE";
                if let ast::Expr::Interval(iv) = args[1] {
                    return self.date_arith(args[0], iv, subtract);
                }
                // ADDDATE(d, n): n days.
                let (b, tb) = self.compile(args[0])?;
                let (n, _) = self.compile(args[1])?;
                let func = if subtract { Func::DateSub } else { Func::DateAdd };
                let ty = date_add_type(&tb, "DAY");
                return Ok((Expr::Call { func, args: vec![b, n, Expr::Literal(Value::text("DAY"))] }, ty));
            }
            "TIMESTAMPDIFF" | "TIMESTAMPADD" => {
                if args.len() != 3 {
                    bail!(WrongParameterCount, "Incorrect parameter count in the call to native function '{upper}'");
                }
                let unit = match args[0] {
                    ast::Expr::Identifier(i) => unit_from_name(&i.value),
                    _ => None,
                }
                .ok_or_else(|| crate::lexer::syntax_error_near(&args[0].to_string(), 1))?;
                if upper == "TIMESTAMPADD" {
                    let (n, _) = self.compile(args[1])?;
                    let (b, tb) = self.compile(args[2])?;
                    let ty = date_add_type(&tb, unit);
                    return Ok((Expr::Call { func: Func::DateAdd, args: vec![b, n, Expr::Literal(Value::text(unit))] }, ty));
                }
                let (a, _) = self.compile(args[1])?;
                let (b, _) = self.compile(args[2])?;
                return Ok((
                    Expr::Call { func: Func::TimestampDiff, args: vec![Expr::Literal(Value::text(unit)), a, b] },
                    SqlType::bigint(false, true),
                ));
            }
            "CHAR" | "INSERT" | "VALUES" | "FORMAT" | "REGEXP_LIKE" | "REGEXP_REPLACE" | "REGEXP_SUBSTR" | "JSON_EXTRACT" => {
                return Err(Error::not_supported(format!("the function {upper}()")));
            }
            _ => {}
        }
        let Some(func) = Func::from_name(&upper).filter(|f| !f.name().starts_with('$')) else {
            let db = self.ctx.env.database.unwrap_or("");
            let plain = f.name.0.first().and_then(|p| p.as_ident()).map_or_else(|| name.clone(), |i| i.value.clone());
            if !db.is_empty() && self.ctx.env.catalog.routine(db, cairn_common::routine::RoutineKind::Function, &plain).is_some() {
                let db = db.to_string();
                return self.stored_function(f, &db, &plain);
            }
            return Err(Error::new(ErrorKind::RoutineDoesNotExist, format!("FUNCTION {db}{}{name} does not exist", if db.is_empty() { "" } else { "." })));
        };
        self.call_func(func, &args)
    }

    /// A call of a stored function: its arguments are compiled here and the call becomes a
    /// slot, bound (the function run) once per execution of the statement. Arguments that read
    /// the columns of the rows being processed would need one call per row: refused (1235).
    fn stored_function(&mut self, f: &ast::Function, database: &str, name: &str) -> Result<Typed, Error> {
        use cairn_common::routine::{RoutineKey, RoutineKind, does_not_exist};
        let Some(def) = self.ctx.env.catalog.routine(database, RoutineKind::Function, name) else {
            return Err(does_not_exist(RoutineKind::Function, database, name));
        };
        let (expected, version, routine_name) = (def.params.len(), def.version, def.name.clone());
        let ty = match &def.returns {
            Some(r) => crate::routine::return_sql_type(r),
            None => return Err(Error::internal("a stored function without a return type")),
        };
        let (args, star, _) = self.function_args(f)?;
        if star {
            return Err(crate::lexer::syntax_error_near("*)", 1));
        }
        if args.len() != expected {
            bail!(
                RoutineArgumentCount,
                "Incorrect number of arguments for FUNCTION {database}.{routine_name}; expected {expected}, got {}",
                args.len()
            );
        }
        let mut exprs = Vec::with_capacity(args.len());
        for a in args {
            let (e, _) = self.compile(a)?;
            exprs.push(e);
        }
        let per_row = exprs.iter().any(|e| {
            let mut found = false;
            let mut stack = vec![e];
            while let Some(node) = stack.pop() {
                match node {
                    Expr::Column(_) => found = true,
                    Expr::Param(slot) => {
                        found |= matches!(self.ctx.slots.get(*slot as usize), Some(Slot::Outer { .. } | Slot::Correlated { .. }));
                    }
                    other => stack.extend(children(other)),
                }
            }
            found
        });
        if per_row {
            return Err(Error::not_supported("stored function calls whose arguments read the columns of the rows being read"));
        }
        let key = RoutineKey::new(database, RoutineKind::Function, &routine_name);
        if !self.ctx.routines.iter().any(|(k, _)| *k == key) {
            self.ctx.routines.push((key, version));
        }
        let call = crate::routine::RoutineCall { database: database.to_string(), name: routine_name, args: exprs, display: f.to_string() };
        let slot = self.ctx.add_slot(Slot::Routine(Box::new(call)));
        Ok((Expr::Param(slot), ty))
    }

    /// Compiles a call of a built-in function with its MySQL result type.
    fn call_func(&mut self, func: Func, args: &[&ast::Expr]) -> Result<Typed, Error> {
        func.check_arity(args.len())?;
        // The session's clock in UTC is known only to the SQL node at execution: a slot.
        match (func, args) {
            (Func::UtcTimestamp, _) => {
                let fsp = match args.first() {
                    Some(a) => match self.compile(a)?.0 {
                        Expr::Literal(v) => v.to_i64().unwrap_or(0).clamp(0, 6) as u8,
                        _ => return Err(Error::new(ErrorKind::WrongArguments, "Incorrect arguments to UTC_TIMESTAMP")),
                    },
                    None => 0,
                };
                let slot = self.ctx.add_slot(Slot::UtcNow { fsp });
                return Ok((Expr::Param(slot), SqlType::datetime(fsp, false)));
            }
            (Func::UnixTimestamp, []) => {
                let slot = self.ctx.add_slot(Slot::UnixNow);
                return Ok((Expr::Param(slot), SqlType::bigint(false, false).with_length(11)));
            }
            _ => {}
        }
        let mut exprs = Vec::with_capacity(args.len());
        let mut types = Vec::with_capacity(args.len());
        for a in args {
            let (e, t) = self.compile(a)?;
            exprs.push(e);
            types.push(t);
        }
        let ty = function_type(func, &types, &exprs);
        Ok((Expr::Call { func, args: exprs }, ty))
    }

    fn aggregate_call(&mut self, f: &ast::Function, func: AggregateFunc) -> Result<Typed, Error> {
        if !self.allow_aggregates {
            if self.aggregate.is_none() && self.clause == "field list" {
                return Err(needs_aggregation());
            }
            return Err(Error::new(ErrorKind::InvalidGroupFunctionUse, "Invalid use of group function"));
        }
        let key = f.to_string();
        if let Some(agg) = self.aggregate.as_deref() {
            if let Some(j) = agg.calls.iter().position(|c| c.key == key) {
                return Ok((Expr::column(agg.aggregate_offset() + j), agg.calls[j].ty.clone()));
            }
        } else {
            return Err(needs_aggregation());
        }
        let (args, star, distinct) = self.function_args(f)?;
        let mut separator = ",".to_string();
        let mut order_ast = Vec::new();
        if let FunctionArguments::List(list) = &f.args {
            for clause in &list.clauses {
                match clause {
                    ast::FunctionArgumentClause::Separator(v) => {
                        separator = match &v.value {
                            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => s.clone(),
                            other => other.to_string(),
                        }
                    }
                    ast::FunctionArgumentClause::OrderBy(items) if func == AggregateFunc::GroupConcat => order_ast = items.clone(),
                    _ => return Err(Error::not_supported(format!("{} with {clause}", f.name))),
                }
            }
        }
        let func = if func == AggregateFunc::Count && star { AggregateFunc::CountStar } else { func };
        let arity_ok = match func {
            AggregateFunc::CountStar => args.is_empty(),
            AggregateFunc::Count | AggregateFunc::GroupConcat => !args.is_empty() && (distinct || args.len() == 1 || func == AggregateFunc::GroupConcat),
            _ => args.len() == 1 && !star,
        };
        if !arity_ok {
            return Err(crate::lexer::syntax_error_near(&f.to_string(), 1));
        }
        // Arguments are evaluated over the input rows, and may not hold aggregates.
        let input = self.aggregate.as_deref().map(|a| a.input).unwrap_or(self.scope);
        let mut inner = Compiler { ctx: &mut *self.ctx, scope: input, aggregate: None, clause: self.clause, allow_aggregates: false, aliases: Vec::new(), values_alias: None };
        let mut arg_exprs = Vec::with_capacity(args.len());
        let mut arg_types = Vec::with_capacity(args.len());
        for a in &args {
            let (e, t) = inner.compile(a)?;
            arg_exprs.push(e);
            arg_types.push(t);
        }
        let mut order = Vec::new();
        for item in &order_ast {
            let (e, t) = inner.compile(&item.expr)?;
            order.push((e, matches!(item.options.sort, Some(ast::OrderBySort::Desc)), t.collation));
        }
        let arg_ty = arg_types.first().cloned().unwrap_or_else(|| SqlType::bigint(false, false));
        let ty = aggregate_type(func, &arg_types);
        let collation = arg_ty.collation;
        let agg = self.aggregate.as_deref_mut().ok_or_else(needs_aggregation)?;
        agg.calls.push(AggregateCall { func, args: arg_exprs, distinct, separator, order, ty: ty.clone(), collation, key });
        Ok((Expr::column(agg.aggregate_offset() + agg.calls.len() - 1), ty))
    }
}

/// The MySQL result type of an aggregate function over arguments of these types (the same for
/// GROUP BY aggregates and their window-function forms).
pub(crate) fn aggregate_type(func: AggregateFunc, arg_types: &[SqlType]) -> SqlType {
    let arg_ty = arg_types.first().cloned().unwrap_or_else(|| SqlType::bigint(false, false));
    match func {
        AggregateFunc::CountStar | AggregateFunc::Count => SqlType::bigint(false, false).with_length(21),
        AggregateFunc::Sum => match arg_ty.kind() {
            Kind::Int { .. } | Kind::Decimal { .. } => {
                SqlType::decimal(arg_ty.integer_digits().saturating_add(22).saturating_add(arg_ty.scale_exact()), arg_ty.scale_exact(), true)
            }
            _ => SqlType::double(true),
        },
        AggregateFunc::Avg => match arg_ty.kind() {
            Kind::Int { .. } | Kind::Decimal { .. } => {
                let scale = (arg_ty.scale_exact() + 4).min(30);
                SqlType::decimal(arg_ty.integer_digits().saturating_add(4).saturating_add(scale), scale, true)
            }
            _ => SqlType::double(true),
        },
        AggregateFunc::Min | AggregateFunc::Max | AggregateFunc::AnyValue => arg_ty.clone().nullable(true),
        AggregateFunc::GroupConcat => {
            let binary = arg_types.iter().any(|t| matches!(t.kind(), Kind::String { binary: true }));
            let mut t = SqlType::varchar(1024, binary, true);
            t.collation = arg_ty.collation;
            t
        }
        AggregateFunc::BitAnd | AggregateFunc::BitOr | AggregateFunc::BitXor => SqlType::bigint(true, false),
    }
}

/// Deepest compiled expression a plan may hold. Expressions are evaluated recursively (on this
/// node and, pushed down, on data nodes), so their depth is bounded; MySQL answers "Thread
/// stack overrun" (1436) in the same situation.
pub(crate) const MAX_EXPR_DEPTH: usize = 96;

/// Checks an expression's depth without recursing.
pub(crate) fn check_depth(e: &Expr) -> Result<(), Error> {
    let mut stack: Vec<(&Expr, usize)> = vec![(e, 1)];
    while let Some((node, depth)) = stack.pop() {
        if depth > MAX_EXPR_DEPTH {
            bail!(StackOverrun, "Thread stack overrun: an expression nests deeper than {MAX_EXPR_DEPTH} levels");
        }
        stack.extend(children(node).into_iter().map(|c| (c, depth + 1)));
    }
    Ok(())
}

/// The direct subexpressions of an expression.
fn children(node: &Expr) -> Vec<&Expr> {
    match node {
        Expr::Column(_) | Expr::Literal(_) | Expr::Param(_) => Vec::new(),
        Expr::Not(a) | Expr::Neg(a) | Expr::BitNot(a) => vec![a],
        Expr::IsNull { arg, .. } | Expr::IsBool { arg, .. } | Expr::Cast { arg, .. } => vec![arg],
        Expr::And(a, b) | Expr::Or(a, b) | Expr::Xor(a, b) => vec![a, b],
        Expr::Compare { left, right, .. } | Expr::Arith { left, right, .. } => vec![left, right],
        Expr::Like { arg, pattern, .. } => vec![arg, pattern],
        Expr::InList { arg, list, .. } => std::iter::once(arg.as_ref()).chain(list.iter()).collect(),
        Expr::Between { arg, low, high, .. } => vec![arg, low, high],
        Expr::Case { operand, whens, otherwise, .. } => operand
            .iter()
            .map(|o| o.as_ref())
            .chain(whens.iter().flat_map(|(w, t)| [w, t]))
            .chain(otherwise.iter().map(|o| o.as_ref()))
            .collect(),
        Expr::Call { args, .. } => args.iter().collect(),
    }
}

/// Joins operands of an associative operator into a tree of logarithmic depth.
fn balanced(mut operands: Vec<Expr>, combine: fn(Box<Expr>, Box<Expr>) -> Expr) -> Expr {
    while operands.len() > 1 {
        let mut next = Vec::with_capacity(operands.len().div_ceil(2));
        let mut it = operands.into_iter();
        while let Some(a) = it.next() {
            match it.next() {
                Some(b) => next.push(combine(Box::new(a), Box::new(b))),
                None => next.push(a),
            }
        }
        operands = next;
    }
    operands.pop().unwrap_or(Expr::Literal(Value::Int(1)))
}

/// The type of DATE_ADD(base, n unit): DATE stays DATE for day-or-longer units, TIME and
/// fractional units give DATETIME(6)-like results, strings give DATETIME.
fn date_add_type(base: &SqlType, unit: &str) -> SqlType {
    let whole_days = matches!(unit, "DAY" | "WEEK" | "MONTH" | "QUARTER" | "YEAR");
    if base.is_string() {
        // A string argument gives a string: a date, or a date and time, as the value needs.
        return SqlType::varchar(29, false, true);
    }
    match &base.ty {
        Some(ColumnType::Date) if whole_days => SqlType::of(ColumnType::Date, true),
        Some(ColumnType::DateTime { fsp } | ColumnType::Timestamp { fsp }) => {
            SqlType::datetime(if unit == "MICROSECOND" { 6 } else { *fsp }, true)
        }
        _ => SqlType::datetime(if unit == "MICROSECOND" { 6 } else { 0 }, true),
    }
}

fn char_length(len: &Option<ast::CharacterLength>) -> Result<Option<u32>, Error> {
    Ok(match len {
        None => None,
        Some(ast::CharacterLength::IntegerLength { length, .. }) => Some(u32::try_from(*length).map_err(|_| err!(ColumnLengthTooBig, "Column length too big"))?),
        Some(ast::CharacterLength::Max) => None,
    })
}

/// Checks DECIMAL(p, s) as MySQL does (1426, 1425, 1427) and narrows to Cairn's 38 digits.
pub(crate) fn check_decimal(p: u64, s: u64, column: &str) -> Result<(u8, u8), Error> {
    if s > cairn_common::decimal::MAX_SCALE as u64 {
        bail!(TooBigScale, "Too big scale {s} specified for column '{column}'. Maximum is {}.", cairn_common::decimal::MAX_SCALE);
    }
    if p > cairn_common::decimal::MAX_PRECISION as u64 {
        bail!(TooBigPrecision, "Too-big precision {p} specified for '{column}'. Maximum is {}.", cairn_common::decimal::MAX_PRECISION);
    }
    if s > p {
        bail!(ScaleBiggerThanPrecision, "For float(M,D), double(M,D) or decimal(M,D), M must be >= D (column '{column}').");
    }
    Ok((p.max(1) as u8, s as u8))
}

/// The type of a value (for variables, whose types are known only from their current value).
pub(crate) fn value_type(v: &Value) -> SqlType {
    match v {
        Value::Null => SqlType::varchar(0, false, true),
        Value::Int(i) => SqlType::bigint(false, false).with_length(i.to_string().len() as u32),
        Value::UInt(u) => SqlType::bigint(true, false).with_length(u.to_string().len() as u32),
        Value::Double(_) => SqlType::double(false),
        Value::Decimal(d) => decimal_literal_type(d),
        Value::Text(s) => SqlType::varchar(s.chars().count() as u32, false, false),
        Value::Bytes(b) => SqlType::varchar(b.len() as u32, true, false),
        Value::Date(_) => SqlType::of(ColumnType::Date, false),
        Value::DateTime(dt) => SqlType::datetime(if dt.micros > 0 { 6 } else { 0 }, false),
        Value::Time(_) => SqlType::of(ColumnType::Time { fsp: 0 }, false),
    }
}

/// MySQL's result types of built-in functions.
fn function_type(func: Func, args: &[SqlType], exprs: &[Expr]) -> SqlType {
    let any_nullable = args.iter().any(|t| t.nullable);
    let binary = args.iter().any(|t| matches!(t.kind(), Kind::String { binary: true }));
    let first = args.first().cloned().unwrap_or_else(SqlType::null);
    let int = |unsigned: bool, nullable: bool| SqlType::bigint(unsigned, nullable);
    let string = |chars: u32, nullable: bool| SqlType::varchar(chars, binary, nullable);
    let literal_int = |i: usize| match exprs.get(i) {
        Some(Expr::Literal(v)) => v.to_i64(),
        _ => None,
    };
    use Func::*;
    match func {
        // Lengths saturate: CONCAT of LONGTEXT columns (information_schema's, for one) would
        // overflow a u32 sum.
        Concat => string(args.iter().map(SqlType::char_length).fold(0, u32::saturating_add), any_nullable),
        ConcatWs => string(args.iter().map(SqlType::char_length).fold(0, u32::saturating_add), first.nullable),
        Lower | Upper | Reverse | Trim | LTrim | RTrim | TrimChars => {
            let mut t = string(first.char_length(), any_nullable);
            t.collation = first.collation;
            t
        }
        Substring | Left | Right | SubstringIndex => {
            let mut t = string(first.char_length(), any_nullable);
            t.collation = first.collation;
            t
        }
        Replace => string(first.char_length().saturating_mul(2).max(first.char_length()), any_nullable),
        LPad | RPad => string(literal_int(1).map_or(first.char_length(), |n| n.max(0) as u32), true),
        Repeat => string(first.char_length().saturating_mul(literal_int(1).unwrap_or(1).max(1) as u32), true),
        Space => SqlType::varchar(literal_int(0).map_or(255, |n| n.max(0) as u32), false, true),
        Hex => SqlType::varchar(first.char_length().saturating_mul(2).max(2), false, any_nullable),
        Length | CharLength | Ascii | Locate | Instr | FindInSet | Field => int(false, any_nullable).with_length(10),
        Strcmp => int(false, any_nullable).with_length(2),
        IfNull | Coalesce => {
            let mut t = common_type(args);
            t.nullable = args.iter().all(|a| a.nullable);
            t
        }
        NullIf => first.nullable(true),
        If => {
            let mut t = common_type(&args[1..]);
            t.nullable = args[1..].iter().any(|a| a.nullable);
            t
        }
        Greatest | Least => common_type(args),
        IsNull => int(false, false).with_length(1),
        Abs | Floor | Ceil => match first.kind() {
            Kind::Int { unsigned } => int(unsigned, first.nullable),
            Kind::Decimal { precision, scale } if func == Abs => SqlType::decimal(precision, scale, first.nullable),
            Kind::Decimal { precision, scale } => SqlType::decimal(precision.saturating_sub(scale).max(1) + 1, 0, first.nullable),
            _ => SqlType::double(first.nullable),
        },
        Round | Truncate => {
            let digits = literal_int(1).unwrap_or(0);
            match first.kind() {
                Kind::Int { unsigned } if digits >= 0 => int(unsigned, any_nullable),
                Kind::Int { .. } | Kind::Decimal { .. } => {
                    let scale = digits.clamp(0, 30) as u8;
                    SqlType::decimal(first.integer_digits().saturating_add(1).saturating_add(scale), scale, any_nullable)
                }
                _ => SqlType::double(any_nullable),
            }
        }
        Mod => arithmetic_type(&first, args.get(1).unwrap_or(&first), false).nullable(true),
        Sign => int(false, any_nullable).with_length(2),
        Power | Sqrt | Exp | Ln | Log10 | Log2 | Pi | Rand => SqlType::double(any_nullable || matches!(func, Sqrt | Ln | Log10 | Log2)),
        Crc32 => int(true, any_nullable).with_length(10),
        Md5 => SqlType::varchar(32, false, any_nullable),
        Sha1 => SqlType::varchar(40, false, any_nullable),
        Sha2 => SqlType::varchar(128, false, true),
        UnixTimestamp => match first.ty.as_ref().map(ColumnType::fsp) {
            Some(fsp) if fsp > 0 => SqlType::decimal(16, fsp, any_nullable),
            _ if args.is_empty() => int(false, false).with_length(11),
            _ => int(false, true).with_length(11),
        },
        FromUnixtime => SqlType::datetime(first.scale_exact().min(6), true),
        DatePart => SqlType::of(ColumnType::Date, true),
        TimePart => SqlType::of(ColumnType::Time { fsp: first.ty.as_ref().map_or(0, ColumnType::fsp) }, true),
        Year | Month | Day | Hour | Minute | Second | DayOfWeek | WeekDay | DayOfYear | ToDays | DateDiff | TimestampDiff => {
            int(false, true)
        }
        LastDay => SqlType::of(ColumnType::Date, true),
        DateAdd | DateSub => SqlType::datetime(0, true),
        DateFormat => SqlType::varchar(64, false, true),
        InetAton => int(true, true),
        InetNtoa => SqlType::varchar(15, false, true),
        Inet6Aton => SqlType::varchar(16, true, true),
        Inet6Ntoa => SqlType::varchar(39, false, true),
        Now | UtcTimestamp => SqlType::datetime(literal_int(0).unwrap_or(0).clamp(0, 6) as u8, false),
        CurDate => SqlType::of(ColumnType::Date, false),
        CurTime => SqlType::of(ColumnType::Time { fsp: literal_int(0).unwrap_or(0).clamp(0, 6) as u8 }, false),
        Database => SqlType::varchar(64, false, true),
        User | CurrentUser => SqlType::varchar(288, false, false),
        Version => SqlType::varchar(64, false, false),
        ConnectionId | LastInsertId | FoundRows => int(true, false),
        RowCount => int(false, false),
        Uuid => SqlType::varchar(36, false, false),
    }
}
