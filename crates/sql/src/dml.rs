//! INSERT, UPDATE and DELETE: planning and execution.
//!
//! Writes are grouped per node group: each statement sends one `write()` per node group it
//! touches (a batch is atomic within its group), all groups at once.
//!
//! - INSERT builds full rows on the SQL node: defaults, AUTO_INCREMENT values (from this
//!   node's reserved range), MySQL's conversions and strict-mode errors (`cairn_storage::
//!   coerce`), then the packed row; each row goes to the node group of its partition.
//! - UPDATE/DELETE by primary key send `UpdateKey`/`DeleteKey`: the leader evaluates the
//!   assignments (`n = n + 1`) under its row lock, so a read-modify-write is one round trip.
//!   Otherwise `UpdateWhere`/`DeleteWhere` go to every node group with the WHERE as a filter.
//!   With ORDER BY or LIMIT, the keys are read and sorted first, then updated by key.
//! - An UPDATE that changes the partition key moves rows: the SQL node reads them, computes the
//!   new rows, inserts them and deletes the old ones.
//!
//! Until transactions exist, a statement touching several node groups is atomic per group
//! only: an error in one group leaves the others' changes in place (as a non-transactional
//! MySQL engine does).

use std::collections::BTreeMap;
use std::sync::Arc;

use sqlparser::ast;

use cairn_common::catalog::{ColumnDefault, TableDef};
use cairn_common::collation::Collation;
use cairn_common::error::{Error, ErrorKind};
use cairn_common::expr::{CastTarget, CmpOp, Expr, Warning, WarningLevel};
use cairn_common::functions::Func;
use cairn_common::ids::NodeGroupId;
use cairn_common::key;
use cairn_common::ops::{OnDuplicate, TableRef, WriteOp, WriteOutcome};
use cairn_common::types::ColumnType;
use cairn_common::{Value, bail, err};
use cairn_storage::coerce::{Coercion, coerce};

use crate::backend::Backend;
use crate::compile::{Compiler, PlanContext, Scope, ScopeColumn};
use crate::exec::{Exec, KeyValue, bind, collect_query, key_value};

use crate::plan::{JoinKind, Node, QueryPlan, SortKey, object_table_name, plan_access, plan_query, resolve_table};
use crate::types::{ColumnOrigin, SqlType};

/// Most write ops one `write()` call carries; bigger statements send several batches per node
/// group (the data nodes refuse batches beyond 32,768 row changes).

/// One value of an INSERT row.
#[derive(Clone, Debug)]
pub(crate) enum InsertValue {
    Expr(Expr),
    /// The DEFAULT keyword.
    Default,
}

#[derive(Clone, Debug)]
pub(crate) enum InsertSource {
    Values(Vec<Vec<InsertValue>>),
    Select(Box<QueryPlan>),
}

#[derive(Clone, Debug)]
pub(crate) struct InsertPlan {
    pub table: Arc<TableDef>,
    /// Target columns, in the order the values come.
    pub columns: Vec<usize>,
    pub source: InsertSource,
    pub on_duplicate: OnDuplicate,
    /// INSERT IGNORE: conversion errors become warnings, duplicates are skipped.
    pub ignore: bool,
}

/// How an UPDATE or DELETE finds its rows.
#[derive(Clone, Debug)]
pub(crate) enum WriteAccess {
    /// By primary key; `residual` is checked by the leader on each row.
    Keys { keys: Vec<Vec<Expr>>, residual: Option<Expr>, fallback: Option<Expr> },
    /// Every row passing the filter, on every node group.
    Where { filter: Option<Expr> },
    /// ORDER BY / LIMIT: keys read and sorted first.
    Ordered { filter: Option<Expr>, order: Vec<SortKey>, limit: Option<Expr> },
}

#[derive(Clone, Debug)]
pub(crate) struct UpdatePlan {
    pub table: Arc<TableDef>,
    /// Assignments over the table row, applied left to right.
    pub assignments: Vec<(u32, Expr)>,
    pub access: WriteAccess,
    /// Whether an assignment changes the partition key (the rows must move).
    pub moves_rows: bool,
    /// A multiple-table UPDATE (`multi_dml`); `table` is then its first target.
    pub multi: Option<Box<crate::multi_dml::MultiPlan>>,
}

#[derive(Clone, Debug)]
pub(crate) struct DeletePlan {
    pub table: Arc<TableDef>,
    pub access: WriteAccess,
    /// A multiple-table DELETE (`multi_dml`); `table` is then its first target.
    pub multi: Option<Box<crate::multi_dml::MultiPlan>>,
}

/// An UPDATE of the rows with `keys` (primary-key values) by constant assignments, for
/// multiple-table UPDATE.
pub(crate) fn keyed_update(table: &Arc<TableDef>, assignments: Vec<(u32, Expr)>, keys: Vec<Vec<Expr>>) -> UpdatePlan {
    let moves_rows = assignments.iter().any(|(c, _)| table.partition_key.contains(&(*c as usize)));
    let mut all = on_update_now(table, &assignments);
    all.extend(assignments);
    UpdatePlan { table: table.clone(), assignments: all, access: WriteAccess::Keys { keys, residual: None, fallback: None }, moves_rows, multi: None }
}

/// A planned multiple-table statement as the single-table plan shape the session runs.
fn multi_update(plan: crate::multi_dml::MultiPlan) -> Result<UpdatePlan, Error> {
    let table = plan.targets.first().map(|t| t.table.clone()).ok_or_else(|| Error::internal("UPDATE without a target"))?;
    Ok(UpdatePlan { table, assignments: Vec::new(), access: WriteAccess::Where { filter: None }, moves_rows: false, multi: Some(Box::new(plan)) })
}

fn table_scope(def: &TableDef, alias: &str) -> Scope {
    Scope {
        columns: def
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| ScopeColumn {
                table: Some(alias.to_string()),
                database: Some(def.database.clone()),
                name: c.name.clone(),
                ty: SqlType::from_column(c),
                origin: Some(ColumnOrigin::of(def, alias, i)),
                hidden: c.hidden,
            })
            .collect(),
    }
}

fn column_index(def: &TableDef, name: &ast::ObjectName) -> Result<usize, Error> {
    let text = name.0.last().map(|p| p.to_string().trim_matches('`').to_string()).unwrap_or_default();
    def.column_index(&text).ok_or_else(|| err!(UnknownColumn, "Unknown column '{text}' in 'field list'"))
}

/// The `ON UPDATE CURRENT_TIMESTAMP` assignments MySQL makes implicitly: for each such column
/// not assigned explicitly, `col = IF(every assigned column keeps its value, col, NOW())`,
/// placed first so that it sees the row before the other assignments.
fn on_update_now(def: &TableDef, assignments: &[(u32, Expr)]) -> Vec<(u32, Expr)> {
    let mut implicit = Vec::new();
    for (i, c) in def.columns.iter().enumerate() {
        if !c.on_update_now || assignments.iter().any(|(a, _)| *a as usize == i) {
            continue;
        }
        let unchanged: Vec<Expr> = assignments
            .iter()
            .map(|(col, e)| {
                let ty = &def.columns[*col as usize].ty;
                let stored = match ty {
                    ColumnType::Decimal { precision, scale } => Expr::Cast { arg: Box::new(e.clone()), to: CastTarget::Decimal { precision: *precision, scale: *scale } },
                    ColumnType::Int { unsigned: false, .. } => Expr::Cast { arg: Box::new(e.clone()), to: CastTarget::Signed },
                    ColumnType::Int { unsigned: true, .. } => Expr::Cast { arg: Box::new(e.clone()), to: CastTarget::Unsigned },
                    _ => e.clone(),
                };
                Expr::Compare { op: CmpOp::NullSafeEq, left: Box::new(Expr::Column(*col)), right: Box::new(stored), collation: Collation::Binary }
            })
            .collect();
        let Some(condition) = Expr::conjunction(unchanged) else { continue };
        let now = Expr::Call { func: Func::Now, args: vec![Expr::Literal(Value::Int(c.ty.fsp() as i64))] };
        implicit.push((i as u32, Expr::Call { func: Func::If, args: vec![condition, Expr::Column(i as u32), now] }));
    }
    implicit
}

pub(crate) fn plan_insert(ctx: &mut PlanContext<'_>, insert: &ast::Insert) -> Result<InsertPlan, Error> {
    let ast::TableObject::TableName(name) = &insert.table else {
        return Err(Error::not_supported("INSERT INTO TABLE FUNCTION"));
    };
    if insert.returning.is_some() {
        return Err(Error::not_supported("INSERT ... RETURNING"));
    }
    if insert.partitioned.is_some() {
        return Err(Error::not_supported("INSERT ... PARTITION"));
    }
    let table = resolve_table(ctx, &object_table_name(name)?)?;
    let mut columns = Vec::with_capacity(insert.columns.len());
    for c in &insert.columns {
        let i = column_index(&table, c)?;
        if columns.contains(&i) {
            bail!(ColumnSpecifiedTwice, "Column '{}' specified twice", table.columns[i].name);
        }
        columns.push(i);
    }
    let visible: Vec<usize> = (0..table.columns.len()).filter(|&i| !table.columns[i].hidden).collect();
    let empty = Scope::default();
    let value_of = |ctx: &mut PlanContext<'_>, e: &ast::Expr| -> Result<InsertValue, Error> {
        if let ast::Expr::Identifier(i) = e
            && i.quote_style.is_none() && i.value.eq_ignore_ascii_case("DEFAULT") {
                return Ok(InsertValue::Default);
            }
        let mut c = Compiler::new(ctx, &empty, "field list");
        Ok(InsertValue::Expr(c.compile(e)?.0))
    };
    let source = if !insert.assignments.is_empty() {
        // INSERT … SET a = 1, b = 2.
        columns.clear();
        let mut row = Vec::new();
        for a in &insert.assignments {
            let ast::AssignmentTarget::ColumnName(name) = &a.target else {
                return Err(Error::not_supported("tuple assignments"));
            };
            let i = column_index(&table, name)?;
            if columns.contains(&i) {
                bail!(ColumnSpecifiedTwice, "Column '{}' specified twice", table.columns[i].name);
            }
            columns.push(i);
            row.push(value_of(ctx, &a.value)?);
        }
        InsertSource::Values(vec![row])
    } else {
        let Some(source) = &insert.source else {
            return Err(crate::lexer::syntax_error_near("", 1));
        };
        match source.body.as_ref() {
            ast::SetExpr::Values(values) if source.order_by.is_none() && source.limit_clause.is_none() => {
                let mut rows = Vec::with_capacity(values.rows.len());
                for row in &values.rows {
                    let mut out = Vec::with_capacity(row.content.len());
                    for e in &row.content {
                        out.push(value_of(ctx, e)?);
                    }
                    rows.push(out);
                }
                InsertSource::Values(rows)
            }
            _ => InsertSource::Select(Box::new(plan_query(ctx, source)?)),
        }
    };
    if insert.columns.is_empty() && insert.assignments.is_empty() {
        // No column list: values for every visible column, unless the rows are empty
        // (`VALUES ()`, all defaults).
        let all_empty = matches!(&source, InsertSource::Values(rows) if rows.iter().all(Vec::is_empty));
        if !all_empty {
            columns = visible.clone();
        }
    }
    // Every row must match the column list.
    match &source {
        InsertSource::Values(rows) => {
            for (n, row) in rows.iter().enumerate() {
                if row.len() != columns.len() {
                    bail!(WrongValueCount, "Column count doesn't match value count at row {}", n + 1);
                }
            }
        }
        InsertSource::Select(plan) => {
            if plan.columns.len() != columns.len() {
                bail!(WrongValueCount, "Column count doesn't match value count at row 1");
            }
        }
    }
    let on_duplicate = match &insert.on {
        None if insert.replace_into => OnDuplicate::Replace,
        None if insert.ignore => OnDuplicate::Ignore,
        None => OnDuplicate::Error,
        Some(ast::OnInsert::DuplicateKeyUpdate(assignments)) => {
            if insert.replace_into {
                return Err(crate::lexer::syntax_error_near("ON DUPLICATE KEY UPDATE", 1));
            }
            // Assignments see the existing row (columns 0..n) and the proposed one (n..2n),
            // the latter through VALUES(col) or the row alias of `INSERT … AS new`.
            let alias = match &insert.insert_alias {
                Some(a) => {
                    if a.col_aliases.as_ref().is_some_and(|c| !c.is_empty()) {
                        return Err(Error::not_supported("column aliases of INSERT ... AS"));
                    }
                    a.row_alias.to_string().trim_matches('`').to_string()
                }
                None => "\u{0}values".to_string(),
            };
            let mut scope = table_scope(&table, &table.name);
            let mut proposed = table_scope(&table, &alias);
            for c in &mut proposed.columns {
                c.hidden = true;
            }
            scope.columns.extend(proposed.columns);
            let mut compiled = Vec::with_capacity(assignments.len());
            for a in assignments {
                let ast::AssignmentTarget::ColumnName(name) = &a.target else {
                    return Err(Error::not_supported("tuple assignments"));
                };
                let i = column_index(&table, name)?;
                let mut c = Compiler::new(ctx, &scope, "field list");
                c.values_alias = Some(alias.clone());
                compiled.push((i as u32, c.compile(&a.value)?.0));
            }
            if !ctx.correlated.is_empty() {
                return Err(Error::not_supported("correlated subqueries in ON DUPLICATE KEY UPDATE"));
            }
            let mut all = on_update_now(&table, &compiled);
            all.extend(compiled);
            OnDuplicate::Update(all)
        }
        Some(_) => return Err(Error::not_supported("ON CONFLICT")),
    };
    Ok(InsertPlan { table, columns, source, on_duplicate, ignore: insert.ignore })
}

/// Plans how an UPDATE or DELETE reaches its rows.
fn plan_write_access(
    ctx: &mut PlanContext<'_>,
    table: &Arc<TableDef>,
    scope: &Scope,
    selection: Option<&ast::Expr>,
    order_by: &[ast::OrderByExpr],
    limit: Option<&ast::Expr>,
) -> Result<WriteAccess, Error> {
    let correlated_before = ctx.correlated.len();
    let conditions = match selection {
        Some(w) => {
            let mut c = Compiler::new(ctx, scope, "where clause");
            c.compile(w)?.0.into_conjuncts()
        }
        None => Vec::new(),
    };
    if ctx.correlated.len() > correlated_before {
        return Err(Error::not_supported("correlated subqueries in UPDATE/DELETE"));
    }
    if !order_by.is_empty() || limit.is_some() {
        let mut order = Vec::with_capacity(order_by.len());
        for o in order_by {
            let mut c = Compiler::new(ctx, scope, "order clause");
            let (e, ty) = c.compile(&o.expr)?;
            let descending = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
            order.push(SortKey { expr: e, descending, collation: ty.collation });
        }
        let limit = match limit {
            Some(l) => {
                let empty = Scope::default();
                let mut c = Compiler::new(ctx, &empty, "limit clause");
                Some(c.compile(l)?.0)
            }
            None => None,
        };
        return Ok(WriteAccess::Ordered { filter: Expr::conjunction(conditions), order, limit });
    }
    let all = Expr::conjunction(conditions.clone());
    Ok(match plan_access(table.clone(), &table.name, conditions, JoinKind::Inner)? {
        Node::Get { keys, fallback, .. } => WriteAccess::Keys { keys, residual: None, fallback },
        Node::Filter { input, predicate } => match *input {
            Node::Get { keys, fallback, .. } => WriteAccess::Keys { keys, residual: Some(predicate), fallback },
            // An index finds the rows: read their keys, then write by key.
            Node::UniqueGet { .. } | Node::IndexScan { .. } => WriteAccess::Ordered { filter: all, order: Vec::new(), limit: None },
            _ => WriteAccess::Where { filter: all },
        },
        Node::UniqueGet { .. } | Node::IndexScan { .. } => WriteAccess::Ordered { filter: all, order: Vec::new(), limit: None },
        _ => WriteAccess::Where { filter: all },
    })
}

fn single_table(from: &[ast::TableWithJoins]) -> Result<(&ast::ObjectName, Option<String>), Error> {
    match from {
        [t] if t.joins.is_empty() => match &t.relation {
            ast::TableFactor::Table { name, alias, .. } => Ok((name, alias.as_ref().map(|a| a.name.value.clone()))),
            _ => Err(Error::not_supported("UPDATE/DELETE of a derived table")),
        },
        _ => Err(Error::not_supported("multiple-table UPDATE/DELETE")),
    }
}

pub(crate) fn plan_update(ctx: &mut PlanContext<'_>, update: &ast::Update) -> Result<UpdatePlan, Error> {
    if update.from.is_some() || update.returning.is_some() {
        return Err(Error::not_supported("UPDATE ... FROM / RETURNING"));
    }
    if !update.table.joins.is_empty() {
        return multi_update(crate::multi_dml::plan_update(ctx, update)?);
    }
    let (name, alias) = single_table(std::slice::from_ref(&update.table))?;
    let table = resolve_table(ctx, &object_table_name(name)?)?;
    let alias = alias.unwrap_or_else(|| table.name.clone());
    let scope = table_scope(&table, &alias);
    let correlated_before = ctx.correlated.len();
    let mut assignments = Vec::with_capacity(update.assignments.len());
    for a in &update.assignments {
        let ast::AssignmentTarget::ColumnName(target) = &a.target else {
            return Err(Error::not_supported("tuple assignments"));
        };
        // `SET t.col = …` names the table too.
        if target.0.len() > 1 {
            let qualifier = target.0[target.0.len() - 2].to_string().trim_matches('`').to_string();
            if qualifier != alias {
                bail!(UnknownColumn, "Unknown column '{target}' in 'field list'");
            }
        }
        let i = column_index(&table, target)?;
        let mut c = Compiler::new(ctx, &scope, "field list");
        assignments.push((i as u32, c.compile(&a.value)?.0));
    }
    if ctx.correlated.len() > correlated_before {
        return Err(Error::not_supported("correlated subqueries in UPDATE"));
    }
    let moves_rows = assignments.iter().any(|(c, _)| table.partition_key.contains(&(*c as usize)));
    let mut all = on_update_now(&table, &assignments);
    all.extend(assignments);
    let access = plan_write_access(ctx, &table, &scope, update.selection.as_ref(), &update.order_by, update.limit.as_ref())?;
    Ok(UpdatePlan { table, assignments: all, access, moves_rows, multi: None })
}

pub(crate) fn plan_delete(ctx: &mut PlanContext<'_>, delete: &ast::Delete) -> Result<DeletePlan, Error> {
    if delete.returning.is_some() {
        return Err(Error::not_supported("DELETE ... RETURNING"));
    }
    if !delete.tables.is_empty() || delete.using.is_some() {
        let plan = crate::multi_dml::plan_delete(ctx, delete)?;
        let table = plan.targets.first().map(|t| t.table.clone()).ok_or_else(|| Error::internal("DELETE without a target"))?;
        return Ok(DeletePlan { table, access: WriteAccess::Where { filter: None }, multi: Some(Box::new(plan)) });
    }
    let from = match &delete.from {
        ast::FromTable::WithFromKeyword(f) | ast::FromTable::WithoutKeyword(f) => f,
    };
    let (name, alias) = single_table(from)?;
    let table = resolve_table(ctx, &object_table_name(name)?)?;
    let alias = alias.unwrap_or_else(|| table.name.clone());
    let scope = table_scope(&table, &alias);
    let access = plan_write_access(ctx, &table, &scope, delete.selection.as_ref(), &delete.order_by, delete.limit.as_ref())?;
    Ok(DeletePlan { table, access, multi: None })
}

/// What a write statement did, for the OK packet.
#[derive(Debug, Default)]
pub(crate) struct WriteResult {
    pub outcome: WriteOutcome,
    /// The OK packet's last insert id.
    pub insert_id: u64,
    /// The first generated AUTO_INCREMENT value (what LAST_INSERT_ID() returns next).
    pub generated_id: Option<u64>,
    pub rows: u64,
}

/// The node groups a table lives on, each once, in order.
fn table_groups(table: &TableDef) -> Vec<NodeGroupId> {
    let mut groups = table.partitions.clone();
    groups.sort();
    groups.dedup();
    groups
}

/// The implicit default of a type (what a non-strict INSERT stores for a missing NOT NULL
/// value): 0, '', the zero date.
pub(crate) fn implicit_default(ty: &ColumnType) -> Value {
    match ty {
        ColumnType::Int { unsigned: true, .. } => Value::UInt(0),
        ColumnType::Int { .. } | ColumnType::Year => Value::Int(0),
        ColumnType::Decimal { .. } => Value::Decimal(cairn_common::decimal::Decimal::ZERO),
        ColumnType::Float | ColumnType::Double => Value::Double(0.0),
        ColumnType::Enum { values } => Value::Text(values.first().cloned().unwrap_or_default()),
        ColumnType::Date => Value::Date(cairn_common::temporal::Date::ZERO),
        ColumnType::DateTime { .. } | ColumnType::Timestamp { .. } => Value::DateTime(cairn_common::temporal::DateTime::ZERO),
        ColumnType::Time { .. } => Value::Time(cairn_common::temporal::Time::ZERO),
        ty if ty.is_binary_string() => Value::Bytes(Vec::new()),
        _ => Value::Text(String::new()),
    }
}

/// Statement-level settings of a write.
pub(crate) struct WriteMode {
    pub strict: bool,
    pub no_zero_date: bool,
    pub no_auto_value_on_zero: bool,
}

fn warning(code: u16, message: String) -> Warning {
    Warning { level: WarningLevel::Warning, code, message }
}

pub(crate) async fn execute_insert<B: Backend>(plan: &InsertPlan, exec: &mut Exec<B>, mode: &WriteMode) -> Result<WriteResult, Error> {
    let table = &plan.table;
    let strict = mode.strict && !plan.ignore;
    // Values as given, per row.
    let given: Vec<Vec<Option<Value>>> = match &plan.source {
        InsertSource::Values(rows) => {
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let mut values = Vec::with_capacity(row.len());
                // In strict mode the values are computed strictly too (1365 for a division by
                // zero, as MySQL's ERROR_FOR_DIVISION_BY_ZERO gives).
                exec.strict = strict;
                for v in row {
                    let value = match v {
                        InsertValue::Default => None,
                        InsertValue::Expr(e) => Some(exec.eval(e, &[])),
                    };
                    values.push(match value {
                        None => None,
                        Some(Ok(v)) => Some(v),
                        Some(Err(e)) => {
                            exec.strict = false;
                            return Err(e);
                        }
                    });
                }
                exec.strict = false;
                out.push(values);
            }
            out
        }
        InsertSource::Select(query) => {
            let rows = collect_query(&query.root, exec).await?;
            rows.into_iter().map(|r| r.into_iter().map(Some).collect()).collect()
        }
    };
    let multi_row = given.len() > 1 || matches!(plan.source, InsertSource::Select(_));
    let auto_column = table.auto_increment_column();
    let hidden_pk = if table.hidden_primary_key { table.primary_key.first().copied() } else { None };
    let now = exec.snapshot.now;

    // Full rows; None marks a value the AUTO_INCREMENT counter must supply.
    let mut rows: Vec<Vec<Option<Value>>> = Vec::with_capacity(given.len());
    let mut coercion = Coercion { strict, no_zero_date: mode.no_zero_date && strict, row: 1, warnings: Vec::new() };
    let mut explicit_auto_max: Option<u64> = None;
    let mut last_explicit_auto: Option<u64> = None;
    for (n, values) in given.into_iter().enumerate() {
        coercion.row = n as u64 + 1;
        let mut row: Vec<Option<Value>> = vec![Some(Value::Null); table.columns.len()];
        let mut supplied = vec![false; table.columns.len()];
        for (&col, v) in plan.columns.iter().zip(values) {
            if let Some(v) = v {
                row[col] = Some(v);
                supplied[col] = true;
            }
        }
        for (i, column) in table.columns.iter().enumerate() {
            let is_auto = Some(i) == auto_column || Some(i) == hidden_pk;
            if !supplied[i] {
                row[i] = if is_auto {
                    None
                } else {
                    Some(match &column.default {
                        ColumnDefault::Value(v) => v.clone(),
                        ColumnDefault::CurrentTimestamp => Value::DateTime(now.round_to_fsp(column.ty.fsp()).unwrap_or(now)),
                        ColumnDefault::None if column.nullable => Value::Null,
                        ColumnDefault::None => {
                            let message = format!("Field '{}' doesn't have a default value", column.name);
                            if strict {
                                return Err(Error::new(ErrorKind::NoDefaultForField, message));
                            }
                            coercion.warnings.push(warning(ErrorKind::NoDefaultForField.code(), message));
                            implicit_default(&column.ty)
                        }
                    })
                };
                continue;
            }
            let value = row[i].take().unwrap_or(Value::Null);
            if is_auto && (value.is_null() || (!mode.no_auto_value_on_zero && value.to_f64() == Some(0.0) && !value.is_string())) {
                // NULL (or 0) asks for a generated value.
                row[i] = None;
                continue;
            }
            if value.is_null() && !column.nullable {
                let message = format!("Column '{}' cannot be null", column.name);
                if strict || !multi_row {
                    if plan.ignore {
                        coercion.warnings.push(warning(ErrorKind::NullNotAllowed.code(), message));
                        row[i] = Some(implicit_default(&column.ty));
                        continue;
                    }
                    return Err(Error::new(ErrorKind::NullNotAllowed, message));
                }
                coercion.warnings.push(warning(ErrorKind::NullNotAllowed.code(), message));
                row[i] = Some(implicit_default(&column.ty));
                continue;
            }
            let stored = coerce(value, column, &mut coercion)?;
            if is_auto
                && let Some(u) = stored.to_u64() {
                    explicit_auto_max = Some(explicit_auto_max.map_or(u, |m: u64| m.max(u)));
                    last_explicit_auto = Some(u);
                }
            row[i] = Some(stored);
        }
        rows.push(row);
    }
    exec.add_warnings(std::mem::take(&mut coercion.warnings));

    // AUTO_INCREMENT: explicit values raise the counter; missing ones are generated in order.
    if let Some(max) = explicit_auto_max {
        exec.engine.note_explicit_auto_increment(table, max).await?;
    }
    let needed = rows.iter().map(|r| r.iter().filter(|v| v.is_none()).count() as u64).sum::<u64>();
    let mut generated_id = None;
    // The AUTO_INCREMENT value generated for each row, if one was.
    let mut generated: Vec<Option<u64>> = vec![None; rows.len()];
    if needed > 0 {
        let values = exec.engine.auto_increment_values(table, needed).await?;
        let mut next = values.into_iter();
        for (n, row) in rows.iter_mut().enumerate() {
            for (i, slot) in row.iter_mut().enumerate() {
                if slot.is_none() {
                    let v = next.next().ok_or_else(|| Error::internal("too few AUTO_INCREMENT values"))?;
                    if Some(i) == auto_column {
                        generated[n] = Some(v);
                    }
                    if Some(i) == auto_column && generated_id.is_none() {
                        generated_id = Some(v);
                    }
                    let column = &table.columns[i];
                    let mut cx = Coercion::strict();
                    *slot = Some(coerce(Value::UInt(v), column, &mut cx).map_err(|_| {
                        err!(ValueOutOfRange, "Failed to read auto-increment value from storage engine")
                    })?);
                }
            }
        }
    }

    // Tables with unique indexes keep their entries (unique.rs); INSERT IGNORE anywhere takes
    // that path too, so that every skipped row gets its 1062 warning.
    if crate::unique::has_unique(table) || matches!(plan.on_duplicate, OnDuplicate::Ignore) {
        let rows: Vec<Vec<Value>> = rows.into_iter().map(|r| r.into_iter().map(|v| v.unwrap_or(Value::Null)).collect()).collect();
        let row_count = rows.len() as u64;
        let (outcome, inserted) = crate::unique::insert(exec, table, &plan.on_duplicate, rows).await?;
        // LAST_INSERT_ID() is the first value generated for a row that went in.
        if let Some(first) = inserted.iter().position(|&i| i).and_then(|n| generated[n]) {
            generated_id = Some(first);
        } else if matches!(plan.on_duplicate, OnDuplicate::Ignore) {
            generated_id = None;
        }
        let insert_id = generated_id.or(if auto_column.is_some() { last_explicit_auto } else { None }).unwrap_or(0);
        return Ok(WriteResult { outcome, insert_id, generated_id, rows: row_count });
    }

    // Encode and route.
    let layout = exec.engine.layout(table);
    let table_ref = TableRef { id: table.id, version: table.version };
    let mut ops: BTreeMap<NodeGroupId, Vec<WriteOp>> = BTreeMap::new();
    let row_count = rows.len() as u64;
    for row in rows {
        let values: Vec<Value> = row.into_iter().map(|v| v.unwrap_or(Value::Null)).collect();
        let partition = key::partition_of_row(table, &values)?;
        let group = table.node_group_of(partition).ok_or_else(|| Error::internal("partition without a node group"))?;
        let encoded = layout.encode_to_vec(&values)?;
        ops.entry(group).or_default().push(WriteOp::Insert { table: table_ref, row: encoded, on_duplicate: plan.on_duplicate.clone() });
    }
    let on_duplicate = match &plan.on_duplicate {
        OnDuplicate::Update(assignments) => {
            let mut bound = Vec::with_capacity(assignments.len());
            for (c, e) in assignments {
                bound.push((*c, bind(e, &exec.bound, &exec.snapshot)?));
            }
            Some(OnDuplicate::Update(bound))
        }
        _ => None,
    };
    if let Some(od) = on_duplicate {
        for list in ops.values_mut() {
            for op in list.iter_mut() {
                if let WriteOp::Insert { on_duplicate, .. } = op {
                    *on_duplicate = od.clone();
                }
            }
        }
    }
    let outcome = exec.access.write_groups(ops).await?;
    let insert_id = generated_id.or(if auto_column.is_some() { last_explicit_auto } else { None }).unwrap_or(0);
    Ok(WriteResult { outcome, insert_id, generated_id, rows: row_count })
}

/// Primary keys of the rows a keyed access names (exact key values), or None when a value is
/// not comparable as a key (the WHERE is then used as a filter instead).
fn resolve_keys<B: Backend>(exec: &mut Exec<B>, table: &TableDef, keys: &[Vec<Expr>]) -> Result<Option<Vec<Vec<Value>>>, Error> {
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let mut values = Vec::with_capacity(k.len());
        let mut matchable = true;
        for (e, &col) in k.iter().zip(&table.primary_key) {
            match key_value(exec.eval(e, &[])?, &table.columns[col].ty) {
                KeyValue::Exact(v) => values.push(v),
                KeyValue::NoMatch => {
                    matchable = false;
                    break;
                }
                KeyValue::Incompatible => return Ok(None),
            }
        }
        if matchable {
            out.push(values);
        }
    }
    // Each key once, in key order.
    let mut encoded: Vec<(Vec<u8>, Vec<Value>)> = Vec::with_capacity(out.len());
    for k in out {
        let mut e = Vec::new();
        key::encode_key_values(table, &table.primary_key, &k, &mut e)?;
        encoded.push((e, k));
    }
    encoded.sort_by(|a, b| a.0.cmp(&b.0));
    encoded.dedup_by(|a, b| a.0 == b.0);
    Ok(Some(encoded.into_iter().map(|(_, k)| k).collect()))
}

fn group_of_key(table: &TableDef, key_values: &[Value]) -> Result<NodeGroupId, Error> {
    let partition = key::partition_of_primary_key(table, key_values)?;
    table.node_group_of(partition).ok_or_else(|| Error::internal("partition without a node group"))
}

/// How an UPDATE/DELETE without usable keys finds its rows.
enum WhereFilter {
    /// Every node group applies the (bound) filter to its rows.
    Shipped(Option<Expr>),
    /// The filter has an IN list too long to ship (`exec::MAX_PUSHED_IN_ITEMS`): the rows'
    /// keys were read here (the scan keeps the long list on this node), and each key's write
    /// checks the rest of the filter again at the leader.
    ByKey(Vec<Vec<Value>>, Option<Expr>),
}

async fn where_filter<B: Backend>(exec: &mut Exec<B>, table: &Arc<TableDef>, filter: &Option<Expr>) -> Result<WhereFilter, Error> {
    let bound = filter.as_ref().map(|f| bind(f, &exec.bound, &exec.snapshot)).transpose()?;
    let (shipped, kept) = crate::exec::split_long_lists(bound);
    if kept.is_none() {
        return Ok(WhereFilter::Shipped(shipped));
    }
    let keys = ordered_keys(exec, table, filter, &[], &None).await?;
    Ok(WhereFilter::ByKey(keys, shipped))
}

/// Reads the rows an ordered UPDATE/DELETE applies to, sorted and limited; returns their keys.
async fn ordered_keys<B: Backend>(
    exec: &mut Exec<B>,
    table: &Arc<TableDef>,
    filter: &Option<Expr>,
    order: &[SortKey],
    limit: &Option<Expr>,
) -> Result<Vec<Vec<Value>>, Error> {
    let conditions = filter.clone().map(Expr::into_conjuncts).unwrap_or_default();
    let mut node = plan_access(table.clone(), &table.name, conditions, JoinKind::Inner)?;
    if !order.is_empty() {
        node = Node::Sort { input: Box::new(node), keys: order.to_vec() };
    }
    if limit.is_some() {
        node = Node::Limit { input: Box::new(node), offset: None, limit: limit.clone() };
    }
    let rows = collect_query(&node, exec).await?;
    Ok(rows.into_iter().map(|r| table.primary_key.iter().map(|&c| r[c].clone()).collect()).collect())
}

pub(crate) async fn execute_update<B: Backend>(plan: &UpdatePlan, exec: &mut Exec<B>) -> Result<WriteResult, Error> {
    if let Some(multi) = &plan.multi {
        return Box::pin(crate::multi_dml::execute_update(multi, exec)).await;
    }
    let table = &plan.table;
    let assigned: Vec<u32> = plan.assignments.iter().map(|(c, _)| *c).collect();
    if crate::unique::update_touches_entries(table, &assigned) {
        return update_with_entries(plan, exec).await;
    }
    if plan.moves_rows {
        return move_rows(plan, exec).await;
    }
    let table_ref = TableRef { id: table.id, version: table.version };
    let mut assignments = Vec::with_capacity(plan.assignments.len());
    for (c, e) in &plan.assignments {
        assignments.push((*c, bind(e, &exec.bound, &exec.snapshot)?));
    }
    let mut ops: BTreeMap<NodeGroupId, Vec<WriteOp>> = BTreeMap::new();
    let keyed = |keys: Vec<Vec<Value>>, filter: Option<Expr>, ops: &mut BTreeMap<NodeGroupId, Vec<WriteOp>>| -> Result<(), Error> {
        for k in keys {
            let group = group_of_key(table, &k)?;
            ops.entry(group).or_default().push(WriteOp::UpdateKey { table: table_ref, key: k, filter: filter.clone(), assignments: assignments.clone() });
        }
        Ok(())
    };
    match &plan.access {
        WriteAccess::Keys { keys, residual, fallback } => match resolve_keys(exec, table, keys)? {
            Some(keys) => {
                let filter = residual.as_ref().map(|r| bind(r, &exec.bound, &exec.snapshot)).transpose()?;
                keyed(keys, filter, &mut ops)?;
            }
            None => match where_filter(exec, table, fallback).await? {
                WhereFilter::Shipped(filter) => {
                    for g in table_groups(table) {
                        ops.entry(g).or_default().push(WriteOp::UpdateWhere { table: table_ref, filter: filter.clone(), assignments: assignments.clone(), limit: None });
                    }
                }
                WhereFilter::ByKey(keys, filter) => keyed(keys, filter, &mut ops)?,
            },
        },
        WriteAccess::Where { filter } => match where_filter(exec, table, filter).await? {
            WhereFilter::Shipped(filter) => {
                for g in table_groups(table) {
                    ops.entry(g).or_default().push(WriteOp::UpdateWhere { table: table_ref, filter: filter.clone(), assignments: assignments.clone(), limit: None });
                }
            }
            WhereFilter::ByKey(keys, filter) => keyed(keys, filter, &mut ops)?,
        },
        WriteAccess::Ordered { filter, order, limit } => {
            let keys = ordered_keys(exec, table, filter, order, limit).await?;
            let filter = filter.as_ref().map(|f| bind(f, &exec.bound, &exec.snapshot)).transpose()?;
            keyed(keys, crate::exec::split_long_lists(filter).0, &mut ops)?;
        }
    }
    let outcome = exec.access.write_groups(ops).await?;
    Ok(WriteResult { outcome, ..Default::default() })
}

/// An UPDATE of the partition key: read the rows, compute their new values here, insert the
/// new rows and delete the old ones.
/// The rows an UPDATE or DELETE applies to, read with its access (sorted and limited if the
/// statement says so).
fn read_node(table: &Arc<TableDef>, access: &WriteAccess) -> Result<Node, Error> {
    Ok(match access {
        WriteAccess::Keys { keys, residual, fallback } => {
            let get = Node::Get { table: table.clone(), alias: table.name.as_str().into(), keys: keys.clone(), fallback: fallback.clone() };
            match residual {
                Some(r) => Node::Filter { input: Box::new(get), predicate: r.clone() },
                None => get,
            }
        }
        WriteAccess::Where { filter } => plan_access(table.clone(), &table.name, filter.clone().map(Expr::into_conjuncts).unwrap_or_default(), JoinKind::Inner)?,
        WriteAccess::Ordered { filter, order, limit } => {
            let mut node = plan_access(table.clone(), &table.name, filter.clone().map(Expr::into_conjuncts).unwrap_or_default(), JoinKind::Inner)?;
            if !order.is_empty() {
                node = Node::Sort { input: Box::new(node), keys: order.clone() };
            }
            if limit.is_some() {
                node = Node::Limit { input: Box::new(node), offset: None, limit: limit.clone() };
            }
            node
        }
    })
}

/// Applies UPDATE assignments to a row on the SQL node, left to right, each value stored as
/// its column stores it.
fn assign_row<B: Backend>(plan: &UpdatePlan, exec: &mut Exec<B>, mut row: Vec<Value>, number: u64) -> Result<Vec<Value>, Error> {
    let mut coercion = Coercion::strict();
    coercion.row = number;
    for (c, e) in &plan.assignments {
        let v = exec.eval(e, &row)?;
        row[*c as usize] = coerce(v, &plan.table.columns[*c as usize], &mut coercion)?;
    }
    exec.add_warnings(coercion.warnings);
    Ok(row)
}

/// An UPDATE that changes unique keys or primary keys of a table with unique indexes: the
/// rows are read, changed here, and written with their entries (unique.rs).
async fn update_with_entries<B: Backend>(plan: &UpdatePlan, exec: &mut Exec<B>) -> Result<WriteResult, Error> {
    let node = read_node(&plan.table, &plan.access)?;
    let rows = collect_query(&node, exec).await?;
    let mut assign = |exec: &mut Exec<B>, row: Vec<Value>, n: u64| assign_row(plan, exec, row, n);
    let outcome = crate::unique::update(exec, &plan.table, rows, &mut assign).await?;
    Ok(WriteResult { outcome, ..Default::default() })
}

async fn move_rows<B: Backend>(plan: &UpdatePlan, exec: &mut Exec<B>) -> Result<WriteResult, Error> {
    let table = &plan.table;
    let node = read_node(table, &plan.access)?;
    let rows = collect_query(&node, exec).await?;
    let table_ref = TableRef { id: table.id, version: table.version };
    let layout = exec.engine.layout(table);
    let mut inserts: BTreeMap<NodeGroupId, Vec<WriteOp>> = BTreeMap::new();
    let mut deletes: BTreeMap<NodeGroupId, Vec<WriteOp>> = BTreeMap::new();
    let mut outcome = WriteOutcome::default();
    let mut coercion = Coercion::strict();
    for old in rows {
        outcome.matched += 1;
        let mut new = old.clone();
        for (c, e) in &plan.assignments {
            let v = exec.eval(e, &new)?;
            new[*c as usize] = coerce(v, &table.columns[*c as usize], &mut coercion)?;
        }
        if old == new {
            continue;
        }
        outcome.changed += 1;
        let old_key: Vec<Value> = table.primary_key.iter().map(|&c| old[c].clone()).collect();
        let old_group = group_of_key(table, &old_key)?;
        let partition = key::partition_of_row(table, &new)?;
        let new_group = table.node_group_of(partition).ok_or_else(|| Error::internal("partition without a node group"))?;
        deletes.entry(old_group).or_default().push(WriteOp::DeleteKey { table: table_ref, key: old_key, filter: None });
        inserts.entry(new_group).or_default().push(WriteOp::Insert { table: table_ref, row: layout.encode_to_vec(&new)?, on_duplicate: OnDuplicate::Error });
    }
    exec.add_warnings(coercion.warnings);
    // Deletes first within the same statement would lose rows if an insert then failed on
    // another group; inserts first can at worst leave a duplicate behind, which is visible.
    exec.access.write_groups(inserts).await?;
    exec.access.write_groups(deletes).await?;
    Ok(WriteResult { outcome, ..Default::default() })
}

pub(crate) async fn execute_delete<B: Backend>(plan: &DeletePlan, exec: &mut Exec<B>) -> Result<WriteResult, Error> {
    if let Some(multi) = &plan.multi {
        return Box::pin(crate::multi_dml::execute_delete(multi, exec)).await;
    }
    let table = &plan.table;
    if crate::unique::has_unique(table) {
        // The rows' unique keys are needed to delete their entries: read, then delete by key.
        let node = read_node(table, &plan.access)?;
        let rows = collect_query(&node, exec).await?;
        let outcome = crate::unique::delete(exec, table, rows).await?;
        return Ok(WriteResult { outcome, ..Default::default() });
    }
    let table_ref = TableRef { id: table.id, version: table.version };
    let mut ops: BTreeMap<NodeGroupId, Vec<WriteOp>> = BTreeMap::new();
    let keyed = |keys: Vec<Vec<Value>>, filter: Option<Expr>, ops: &mut BTreeMap<NodeGroupId, Vec<WriteOp>>| -> Result<(), Error> {
        for k in keys {
            let group = group_of_key(table, &k)?;
            ops.entry(group).or_default().push(WriteOp::DeleteKey { table: table_ref, key: k, filter: filter.clone() });
        }
        Ok(())
    };
    match &plan.access {
        WriteAccess::Keys { keys, residual, fallback } => match resolve_keys(exec, table, keys)? {
            Some(keys) => {
                let filter = residual.as_ref().map(|r| bind(r, &exec.bound, &exec.snapshot)).transpose()?;
                keyed(keys, filter, &mut ops)?;
            }
            None => match where_filter(exec, table, fallback).await? {
                WhereFilter::Shipped(filter) => {
                    for g in table_groups(table) {
                        ops.entry(g).or_default().push(WriteOp::DeleteWhere { table: table_ref, filter: filter.clone(), limit: None });
                    }
                }
                WhereFilter::ByKey(keys, filter) => keyed(keys, filter, &mut ops)?,
            },
        },
        WriteAccess::Where { filter } => match where_filter(exec, table, filter).await? {
            WhereFilter::Shipped(filter) => {
                for g in table_groups(table) {
                    ops.entry(g).or_default().push(WriteOp::DeleteWhere { table: table_ref, filter: filter.clone(), limit: None });
                }
            }
            WhereFilter::ByKey(keys, filter) => keyed(keys, filter, &mut ops)?,
        },
        WriteAccess::Ordered { filter, order, limit } => {
            let keys = ordered_keys(exec, table, filter, order, limit).await?;
            let filter = filter.as_ref().map(|f| bind(f, &exec.bound, &exec.snapshot)).transpose()?;
            keyed(keys, crate::exec::split_long_lists(filter).0, &mut ops)?;
        }
    }
    let outcome = exec.access.write_groups(ops).await?;
    Ok(WriteResult { outcome, ..Default::default() })
}

/// TRUNCATE TABLE: every node group drops the table's rows.
pub(crate) async fn truncate<B: Backend>(exec: &Exec<B>, table: &TableDef) -> Result<(), Error> {
    let table_ref = TableRef { id: table.id, version: table.version };
    let mut ops: BTreeMap<NodeGroupId, Vec<WriteOp>> = table_groups(table).into_iter().map(|g| (g, vec![WriteOp::Truncate { table: table_ref }])).collect();
    // The entries of unique indexes go with the rows, in the same statement.
    for hidden in crate::unique::hidden_tables(exec, table)? {
        let hidden_ref = TableRef { id: hidden.id, version: hidden.version };
        for g in table_groups(&hidden) {
            ops.entry(g).or_default().push(WriteOp::Truncate { table: hidden_ref });
        }
    }
    exec.access.write_groups(ops).await?;
    exec.engine.forget_auto_increment(table.id);
    Ok(())
}


fn for_each_access_expr(access: &mut WriteAccess, f: &mut dyn FnMut(&mut Expr)) {
    match access {
        WriteAccess::Keys { keys, residual, fallback } => {
            keys.iter_mut().flatten().for_each(&mut *f);
            residual.iter_mut().chain(fallback.iter_mut()).for_each(&mut *f);
        }
        WriteAccess::Where { filter } => filter.iter_mut().for_each(&mut *f),
        WriteAccess::Ordered { filter, order, limit } => {
            filter.iter_mut().chain(limit.iter_mut()).for_each(&mut *f);
            order.iter_mut().for_each(|k| f(&mut k.expr));
        }
    }
}

/// Calls `f` on every expression of a planned statement.
pub(crate) fn for_each_planned_expr(planned: &mut crate::session::Planned, f: &mut dyn FnMut(&mut Expr)) {
    use crate::session::Planned;
    match planned {
        Planned::Query(q) => crate::exec::for_each_expr(&mut q.root, f),
        Planned::Insert(p) => {
            match &mut p.source {
                InsertSource::Values(rows) => {
                    for v in rows.iter_mut().flatten() {
                        if let InsertValue::Expr(e) = v {
                            f(e);
                        }
                    }
                }
                InsertSource::Select(q) => crate::exec::for_each_expr(&mut q.root, f),
            }
            if let OnDuplicate::Update(assignments) = &mut p.on_duplicate {
                assignments.iter_mut().for_each(|(_, e)| f(e));
            }
        }
        Planned::Update(p) => {
            p.assignments.iter_mut().for_each(|(_, e)| f(e));
            for_each_access_expr(&mut p.access, f);
        }
        Planned::Delete(p) => for_each_access_expr(&mut p.access, f),
    }
}
