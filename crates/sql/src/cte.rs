//! Non-recursive common table expressions: `WITH name [(cols)] AS (SELECT …) SELECT …`.
//!
//! A CTE is planned as a derived table wherever the query names it: each reference plans the
//! CTE's query again (as MySQL merges or materializes a derived table per reference), with the
//! CTEs visible where it was defined (those before it in its WITH, and those of enclosing
//! queries) and, like a derived table, no columns of the query around it. The names a query's
//! WITH defines are visible in that query and in every subquery and derived table inside it;
//! an inner WITH hides an outer CTE of the same name. Only an unqualified table name refers to
//! a CTE (`db.name` is always a table), and a CTE hides a table of the same name.
//!
//! Left out: `WITH RECURSIVE` (1235).

use std::sync::Arc;

use sqlparser::ast;

use cairn_common::bail;
use cairn_common::error::Error;

use crate::compile::PlanContext;
use crate::parse::TableName;
use crate::plan::QueryPlan;

/// One CTE in scope while a query is planned.
#[derive(Clone, Debug)]
pub(crate) struct Cte {
    name: String,
    columns: Vec<String>,
    query: Arc<ast::Query>,
    /// How many entries of the CTE stack its own query sees (the CTEs defined before it).
    visible: usize,
}

/// Plans `body` with the CTEs of `with` in scope.
pub(crate) fn with_ctes<T>(
    ctx: &mut PlanContext<'_>,
    with: &ast::With,
    body: impl FnOnce(&mut PlanContext<'_>) -> Result<T, Error>,
) -> Result<T, Error> {
    if with.recursive {
        return Err(Error::not_supported("WITH RECURSIVE"));
    }
    let before = ctx.ctes.len();
    for (i, cte) in with.cte_tables.iter().enumerate() {
        let name = cte.alias.name.value.clone();
        if with.cte_tables[..i].iter().any(|c| c.alias.name.value == name) {
            ctx.ctes.truncate(before);
            bail!(DuplicateTableAlias, "Not unique table/alias: '{name}'");
        }
        let visible = ctx.ctes.len();
        ctx.ctes.push(Cte {
            name,
            columns: cte.alias.columns.iter().map(|c| c.name.value.clone()).collect(),
            query: Arc::new((*cte.query).clone()),
            visible,
        });
    }
    let result = body(ctx);
    ctx.ctes.truncate(before);
    result
}

/// Plans a reference to a CTE, if `name` is one in scope (the innermost of that name).
pub(crate) fn plan_reference(ctx: &mut PlanContext<'_>, name: &TableName) -> Result<Option<QueryPlan>, Error> {
    if name.database.is_some() {
        return Ok(None);
    }
    let Some(cte) = ctx.ctes.iter().rev().find(|c| c.name == name.name).cloned() else {
        return Ok(None);
    };
    // Like a derived table: none of the enclosing query's columns, and only the CTEs defined
    // before this one.
    let outer = std::mem::take(&mut ctx.outer);
    let correlated = std::mem::take(&mut ctx.correlated);
    let hidden = ctx.ctes.split_off(cte.visible);
    let planned = crate::plan::plan_query(ctx, &cte.query);
    ctx.ctes.extend(hidden);
    ctx.outer = outer;
    ctx.correlated = correlated;
    let mut plan = planned?;
    if !cte.columns.is_empty() {
        if cte.columns.len() != plan.columns.len() {
            bail!(
                ViewWrongList,
                "In definition of view, derived table or common table expression, SELECT list and column names list have different column counts"
            );
        }
        for (column, name) in plan.columns.iter_mut().zip(&cte.columns) {
            column.name = name.clone();
        }
    }
    Ok(Some(plan))
}
