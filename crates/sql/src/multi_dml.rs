//! Multiple-table UPDATE and DELETE: `UPDATE a JOIN b ON … SET a.x = … WHERE …`,
//! `DELETE a[, b] FROM a JOIN b ON … WHERE …` and `DELETE FROM a[, b] USING a JOIN b …`.
//!
//! The statement is planned as a query over its FROM clause and WHERE that returns, for each
//! joined row, the primary key of every target table and (UPDATE) the assigned values. It runs
//! in two phases: the query's rows are read (READ COMMITTED, like any read), then each target
//! row is written by its primary key with the ordinary single-table machinery (`dml`), so
//! unique-index entries, `ON UPDATE CURRENT_TIMESTAMP`, partition-key moves and MySQL's
//! matched/changed counts are the single-table ones. As in MySQL, a target row that several
//! joined rows match is updated or deleted once, with the values of the first of them; a
//! null-extended side of a LEFT JOIN names no row.
//!
//! All the writes of the statement belong to one transaction: the open one (a failure rolls
//! the statement back to where it began), or else an implicit one committed at its end (two-
//! phase commit when it spans node groups), so the statement is atomic.
//!
//! Left out: ORDER BY / LIMIT (MySQL refuses them too, with 1221), correlated subqueries, and
//! batching: target rows whose assignments differ are written by one key request each.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use sqlparser::ast;

use cairn_common::catalog::TableDef;
use cairn_common::error::Error;
use cairn_common::expr::Expr;
use cairn_common::{Value, bail, err};

use crate::backend::Backend;
use crate::compile::PlanContext;
use crate::dml::{DeletePlan, WriteAccess, WriteResult};
use crate::exec::{Exec, collect_query};
use crate::plan::{QueryPlan, object_table_name, plan_query, resolve_table};

/// One table a multiple-table statement writes.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub table: Arc<TableDef>,
    /// Where its primary key starts in the query's rows.
    key_at: usize,
    /// UPDATE: (column, position of its value in the query's rows), in written order.
    assignments: Vec<(u32, usize)>,
}

impl Target {
    /// The columns an UPDATE assigns in this table.
    pub fn assigned(&self) -> impl Iterator<Item = u32> + '_ {
        self.assignments.iter().map(|&(c, _)| c)
    }
}

/// A planned multiple-table UPDATE or DELETE.
#[derive(Clone, Debug)]
pub(crate) struct MultiPlan {
    query: Box<QueryPlan>,
    pub targets: Vec<Target>,
}

/// The tables of a FROM clause, by alias (or name).
fn from_tables(ctx: &mut PlanContext<'_>, from: &[ast::TableWithJoins]) -> Result<Vec<(String, Arc<TableDef>)>, Error> {
    let mut out = Vec::new();
    let mut add = |ctx: &mut PlanContext<'_>, factor: &ast::TableFactor| -> Result<(), Error> {
        if let ast::TableFactor::Table { name, alias, .. } = factor {
            let def = resolve_table(ctx, &object_table_name(name)?)?;
            let alias = alias.as_ref().map_or_else(|| def.name.clone(), |a| a.name.value.clone());
            out.push((alias, def));
        }
        Ok(())
    };
    for twj in from {
        add(ctx, &twj.relation)?;
        for j in &twj.joins {
            add(ctx, &j.relation)?;
        }
    }
    Ok(out)
}

fn column_ref(alias: &str, column: &str) -> ast::Expr {
    ast::Expr::CompoundIdentifier(vec![ast::Ident::new(alias), ast::Ident::new(column)])
}

fn item(expr: ast::Expr, n: usize) -> ast::SelectItem {
    // Every item is aliased, so naming never looks at the (absent) source text.
    ast::SelectItem::ExprWithAlias { expr, alias: ast::Ident::new(format!("#{n}")) }
}

/// Plans the query of a multiple-table statement: the targets' keys, then `values`.
fn plan_multi(
    ctx: &mut PlanContext<'_>,
    from: &[ast::TableWithJoins],
    selection: Option<&ast::Expr>,
    targets: Vec<(String, Arc<TableDef>, Vec<(u32, ast::Expr)>)>,
) -> Result<MultiPlan, Error> {
    let mut projection = Vec::new();
    let mut planned = Vec::with_capacity(targets.len());
    for (alias, table, _) in &targets {
        let key_at = projection.len();
        for &k in &table.primary_key {
            let n = projection.len();
            projection.push(item(column_ref(alias, &table.columns[k].name), n));
        }
        planned.push(Target { table: table.clone(), key_at, assignments: Vec::new() });
    }
    for (t, (_, _, assignments)) in targets.into_iter().enumerate() {
        for (column, value) in assignments {
            let n = projection.len();
            projection.push(item(value, n));
            planned[t].assignments.push((column, n));
        }
    }
    let select = ast::Select {
        select_token: ast::helpers::attached_token::AttachedToken::empty(),
        optimizer_hints: Vec::new(),
        distinct: None,
        select_modifiers: None,
        top: None,
        top_before_distinct: false,
        projection,
        exclude: None,
        into: None,
        from: from.to_vec(),
        lateral_views: Vec::new(),
        prewhere: None,
        selection: selection.cloned(),
        connect_by: Vec::new(),
        group_by: ast::GroupByExpr::Expressions(Vec::new(), Vec::new()),
        cluster_by: Vec::new(),
        distribute_by: Vec::new(),
        sort_by: Vec::new(),
        having: None,
        named_window: Vec::new(),
        qualify: None,
        window_before_qualify: false,
        value_table_mode: None,
        flavor: ast::SelectFlavor::Standard,
    };
    let query = ast::Query {
        with: None,
        body: Box::new(ast::SetExpr::Select(Box::new(select))),
        order_by: None,
        limit_clause: None,
        fetch: None,
        locks: Vec::new(),
        for_clause: None,
        settings: None,
        format_clause: None,
        pipe_operators: Vec::new(),
    };
    let correlated_before = ctx.correlated.len();
    let source = ctx.env.source.take();
    let plan = plan_query(ctx, &query);
    ctx.env.source = source;
    let plan = plan.map_err(|e| {
        if e.kind == cairn_common::ErrorKind::UnknownColumn {
            err!(UnknownColumn, "{}", e.message.replace("'field list'", "'where clause'"))
        } else {
            e
        }
    })?;
    if ctx.correlated.len() > correlated_before {
        return Err(Error::not_supported("correlated subqueries in UPDATE/DELETE"));
    }
    Ok(MultiPlan { query: Box::new(plan), targets: planned })
}

/// Plans `UPDATE a JOIN b … SET … WHERE …`.
pub(crate) fn plan_update(ctx: &mut PlanContext<'_>, update: &ast::Update) -> Result<MultiPlan, Error> {
    if !update.order_by.is_empty() || update.limit.is_some() {
        bail!(WrongUsage, "Incorrect usage of UPDATE and ORDER BY");
    }
    let from = std::slice::from_ref(&update.table);
    let tables = from_tables(ctx, from)?;
    let mut targets: Vec<(String, Arc<TableDef>, Vec<(u32, ast::Expr)>)> = Vec::new();
    for a in &update.assignments {
        let ast::AssignmentTarget::ColumnName(target) = &a.target else {
            return Err(Error::not_supported("tuple assignments"));
        };
        let parts: Vec<String> = target.0.iter().map(|p| p.to_string().trim_matches('`').to_string()).collect();
        let (qualifier, column) = match parts.as_slice() {
            [c] => (None, c.clone()),
            [t, c] | [_, t, c] => (Some(t.clone()), c.clone()),
            _ => bail!(UnknownColumn, "Unknown column '{target}' in 'field list'"),
        };
        let candidates: Vec<&(String, Arc<TableDef>)> = tables
            .iter()
            .filter(|(alias, def)| qualifier.as_ref().is_none_or(|q| q == alias) && def.column_index(&column).is_some())
            .collect();
        let (alias, def) = match candidates.as_slice() {
            [one] => (*one).clone(),
            [] => bail!(UnknownColumn, "Unknown column '{target}' in 'field list'"),
            _ => bail!(AmbiguousColumn, "Column '{column}' in field list is ambiguous"),
        };
        let index = def.column_index(&column).ok_or_else(|| err!(UnknownColumn, "Unknown column '{target}' in 'field list'"))?;
        match targets.iter_mut().find(|(a, _, _)| *a == alias) {
            Some(t) => t.2.push((index as u32, a.value.clone())),
            None => targets.push((alias, def, vec![(index as u32, a.value.clone())])),
        }
    }
    plan_multi(ctx, from, update.selection.as_ref(), targets)
}

/// Plans `DELETE a, b FROM a JOIN b …` and `DELETE FROM a, b USING a JOIN b …`.
pub(crate) fn plan_delete(ctx: &mut PlanContext<'_>, delete: &ast::Delete) -> Result<MultiPlan, Error> {
    if !delete.order_by.is_empty() || delete.limit.is_some() {
        bail!(WrongUsage, "Incorrect usage of DELETE and ORDER BY");
    }
    let written_from = match &delete.from {
        ast::FromTable::WithFromKeyword(f) | ast::FromTable::WithoutKeyword(f) => f,
    };
    // `DELETE t FROM <join>`, or `DELETE FROM t USING <join>`.
    let (names, from): (Vec<ast::ObjectName>, &[ast::TableWithJoins]) = match &delete.using {
        Some(using) => {
            let mut names = Vec::new();
            for t in written_from {
                match &t.relation {
                    ast::TableFactor::Table { name, .. } if t.joins.is_empty() => names.push(name.clone()),
                    _ => return Err(crate::lexer::syntax_error_near(&t.to_string(), 1)),
                }
            }
            (names, using)
        }
        None => (delete.tables.clone(), written_from),
    };
    let tables = from_tables(ctx, from)?;
    let mut targets: Vec<(String, Arc<TableDef>, Vec<(u32, ast::Expr)>)> = Vec::new();
    for name in &names {
        // A target names a table of the FROM clause by its alias (`t`, `t.*`, `db.t`).
        let parts: Vec<String> =
            name.0.iter().map(|p| p.to_string().trim_matches('`').to_string()).filter(|p| p != "*").collect();
        let wanted = parts.last().cloned().unwrap_or_default();
        let Some((alias, def)) = tables.iter().find(|(alias, def)| {
            *alias == wanted && (parts.len() < 2 || parts[parts.len() - 2] == def.database)
        }) else {
            bail!(UnknownTableInList, "Unknown table '{wanted}' in MULTI DELETE");
        };
        if !targets.iter().any(|(a, _, _)| a == alias) {
            targets.push((alias.clone(), def.clone(), Vec::new()));
        }
    }
    plan_multi(ctx, from, delete.selection.as_ref(), targets)
}

/// The distinct target rows of the query's rows: (key, assigned values) in first-seen order.
fn target_rows(target: &Target, rows: &[Vec<Value>]) -> Result<Vec<(Vec<Value>, Vec<Value>)>, Error> {
    let width = target.table.primary_key.len();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for row in rows {
        let key = row.get(target.key_at..target.key_at + width).ok_or_else(|| Error::internal("multi-table row too short"))?;
        if key.iter().any(|v| matches!(v, Value::Null)) {
            // The null-extended side of a LEFT JOIN: no row of this table.
            continue;
        }
        let mut encoded = Vec::new();
        cairn_common::key::encode_key_values(&target.table, &target.table.primary_key, key, &mut encoded)?;
        if seen.insert(encoded) {
            let values = target.assignments.iter().map(|&(_, at)| row.get(at).cloned().unwrap_or(Value::Null)).collect();
            out.push((key.to_vec(), values));
        }
    }
    Ok(out)
}

/// Runs the writes of a multiple-table statement in one transaction (see the module doc).
async fn in_one_transaction<B: Backend>(
    exec: &mut Exec<B>,
    writes: impl AsyncFnOnce(&mut Exec<B>) -> Result<WriteResult, Error>,
) -> Result<WriteResult, Error> {
    let backend = exec.access.backend.clone();
    if let Some(txn) = exec.access.txn.clone() {
        let mark = txn.lock().unwrap_or_else(|e| e.into_inner()).mark();
        let result = writes(exec).await;
        if result.is_err() {
            crate::txn::rollback_to(backend.as_ref(), &txn, mark).await?;
        }
        return result;
    }
    let txn: crate::txn::SharedTxn = Arc::new(Mutex::new(crate::txn::Transaction::new((exec.access.next_id)())));
    exec.access.txn = Some(txn.clone());
    let result = writes(exec).await;
    exec.access.txn = None;
    match result {
        Ok(r) => {
            crate::txn::commit(backend.as_ref(), &txn, exec.access.failpoint.as_ref()).await?;
            Ok(r)
        }
        Err(e) => {
            crate::txn::rollback(backend.as_ref(), &txn).await;
            Err(e)
        }
    }
}

fn add(total: &mut WriteResult, part: WriteResult) {
    total.outcome.merge(&part.outcome);
    total.rows += part.rows;
}

/// Executes a multiple-table UPDATE: matched and changed rows as MySQL counts them.
pub(crate) async fn execute_update<B: Backend>(plan: &MultiPlan, exec: &mut Exec<B>) -> Result<WriteResult, Error> {
    let rows = collect_query(&plan.query.root, exec).await?;
    in_one_transaction(exec, async |exec: &mut Exec<B>| {
        let mut total = WriteResult::default();
        for target in &plan.targets {
            // Rows given the same values share one request.
            let mut by_values: BTreeMap<String, (Vec<Value>, Vec<Vec<Expr>>)> = BTreeMap::new();
            for (key, values) in target_rows(target, &rows)? {
                let entry = by_values.entry(format!("{values:?}")).or_insert_with(|| (values, Vec::new()));
                entry.1.push(key.into_iter().map(Expr::Literal).collect());
            }
            for (_, (values, keys)) in by_values {
                let assignments: Vec<(u32, Expr)> =
                    target.assignments.iter().zip(values).map(|(&(c, _), v)| (c, Expr::Literal(v))).collect();
                let update = crate::dml::keyed_update(&target.table, assignments, keys);
                add(&mut total, crate::dml::execute_update(&update, exec).await?);
            }
        }
        Ok(total)
    })
    .await
}

/// Executes a multiple-table DELETE: the rows deleted from every target.
pub(crate) async fn execute_delete<B: Backend>(plan: &MultiPlan, exec: &mut Exec<B>) -> Result<WriteResult, Error> {
    let rows = collect_query(&plan.query.root, exec).await?;
    in_one_transaction(exec, async |exec: &mut Exec<B>| {
        let mut total = WriteResult::default();
        for target in &plan.targets {
            let keys: Vec<Vec<Expr>> =
                target_rows(target, &rows)?.into_iter().map(|(k, _)| k.into_iter().map(Expr::Literal).collect()).collect();
            if keys.is_empty() {
                continue;
            }
            let delete = DeletePlan { table: target.table.clone(), access: WriteAccess::Keys { keys, residual: None, fallback: None }, multi: None };
            add(&mut total, crate::dml::execute_delete(&delete, exec).await?);
        }
        Ok(total)
    })
    .await
}
