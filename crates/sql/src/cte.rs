//! Common table expressions: `WITH [RECURSIVE] name [(cols)] AS (SELECT …) SELECT …`.
//!
//! A CTE is planned as a derived table wherever the query names it: each reference plans the
//! CTE's query again (as MySQL merges or materializes a derived table per reference), with the
//! CTEs visible where it was defined (those before it in its WITH, and those of enclosing
//! queries) and, like a derived table, no columns of the query around it. The names a query's
//! WITH defines are visible in that query and in every subquery and derived table inside it;
//! an inner WITH hides an outer CTE of the same name. Only an unqualified table name refers to
//! a CTE (`db.name` is always a table), and a CTE hides a table of the same name.
//!
//! ## Recursive CTEs
//!
//! In `WITH RECURSIVE`, a CTE's query also sees the CTE itself. A CTE that reads itself must be
//! `seed [UNION [ALL] seed …] UNION [ALL] recursive [UNION [ALL] recursive …]`: the seed
//! query blocks do not read it, each recursive one reads it exactly once, in its FROM clause
//! (3573, 3574 and 3577 otherwise, as in MySQL). The result's columns are named and typed by the
//! seeds. It runs as MySQL runs it ([`run_recursive`]): the seeds' rows, then rounds in which
//! every recursive block reads the rows the previous round added (the *working table*,
//! [`Node::WorkingTable`]), until a round adds nothing. With UNION (DISTINCT) a row already in
//! the result is not added again, so cycles end. A round beyond `@@cte_max_recursion_depth`
//! (1000 by default) is error 3636, and the whole result is bounded by
//! `max_materialized_rows`.
//!
//! Left out (1235): ORDER BY and LIMIT in a recursive CTE's own query. Aggregates, DISTINCT
//! and window functions in a recursive block, which MySQL refuses (3575), are evaluated per
//! round here.

use std::sync::Arc;

use sqlparser::ast;

use cairn_common::bail;
use cairn_common::error::Error;

use crate::compile::PlanContext;
use crate::parse::TableName;
use crate::backend::Backend;
use crate::exec::Exec;
use crate::outcome::Row;
use crate::plan::{Node, OutputColumn, QueryPlan};

/// One CTE in scope while a query is planned.
#[derive(Clone, Debug)]
pub(crate) struct Cte {
    name: String,
    columns: Vec<String>,
    query: Arc<ast::Query>,
    /// How many entries of the CTE stack its own query sees (the CTEs defined before it, and
    /// itself in `WITH RECURSIVE`).
    visible: usize,
    /// Defined in `WITH RECURSIVE`.
    recursive: bool,
    /// While its recursive query blocks are planned: what a reference to itself reads.
    working: Option<Working>,
}

/// The working table of a recursive CTE being planned.
#[derive(Clone, Debug)]
struct Working {
    id: u64,
    columns: Vec<OutputColumn>,
    /// References planned so far (to check them against those in FROM clauses).
    references: usize,
}

/// Plans `body` with the CTEs of `with` in scope.
pub(crate) fn with_ctes<T>(
    ctx: &mut PlanContext<'_>,
    with: &ast::With,
    body: impl FnOnce(&mut PlanContext<'_>) -> Result<T, Error>,
) -> Result<T, Error> {
    let before = ctx.ctes.len();
    for (i, cte) in with.cte_tables.iter().enumerate() {
        let name = cte.alias.name.value.clone();
        if with.cte_tables[..i].iter().any(|c| c.alias.name.value == name) {
            ctx.ctes.truncate(before);
            bail!(DuplicateTableAlias, "Not unique table/alias: '{name}'");
        }
        let visible = ctx.ctes.len() + usize::from(with.recursive);
        ctx.ctes.push(Cte {
            name,
            columns: cte.alias.columns.iter().map(|c| c.name.value.clone()).collect(),
            query: Arc::new((*cte.query).clone()),
            visible,
            recursive: with.recursive,
            working: None,
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
    let Some(index) = ctx.ctes.iter().rposition(|c| c.name == name.name) else {
        return Ok(None);
    };
    if let Some(working) = &mut ctx.ctes[index].working {
        // A recursive CTE's reference to itself: the rows of the last round.
        working.references += 1;
        let root = Node::WorkingTable { id: working.id, rows: Arc::new(Vec::new()) };
        return Ok(Some(QueryPlan { root, columns: working.columns.clone(), lock: None }));
    }
    let cte = ctx.ctes[index].clone();
    // Like a derived table: none of the enclosing query's columns, and only the CTEs defined
    // before this one.
    let outer = std::mem::take(&mut ctx.outer);
    let correlated = std::mem::take(&mut ctx.correlated);
    let hidden = ctx.ctes.split_off(cte.visible);
    let planned = if cte.recursive && reads_itself(&cte.query.body, &cte.name) {
        plan_recursive(ctx, index, &cte)
    } else {
        crate::plan::plan_query(ctx, &cte.query)
    };
    ctx.ctes.extend(hidden);
    ctx.outer = outer;
    ctx.correlated = correlated;
    let mut plan = planned?;
    if !cte.columns.is_empty() && !matches!(plan.root, Node::RecursiveCte { .. }) {
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

/// How many times a query block's FROM clause names `name` (an unqualified table name, in
/// joins and nested joins; subqueries and derived tables are not counted).
fn from_references(body: &ast::SetExpr, name: &str) -> usize {
    fn factor(f: &ast::TableFactor, name: &str) -> usize {
        match f {
            ast::TableFactor::Table { name: n, .. } => usize::from(n.0.len() == 1 && crate::plan::object_table_name(n).is_ok_and(|t| t.name == name)),
            ast::TableFactor::NestedJoin { table_with_joins, .. } => joined(table_with_joins, name),
            _ => 0,
        }
    }
    fn joined(t: &ast::TableWithJoins, name: &str) -> usize {
        factor(&t.relation, name) + t.joins.iter().map(|j| factor(&j.relation, name)).sum::<usize>()
    }
    match body {
        ast::SetExpr::Select(select) => select.from.iter().map(|t| joined(t, name)).sum(),
        ast::SetExpr::Query(q) => from_references(&q.body, name),
        ast::SetExpr::SetOperation { left, right, .. } => from_references(left, name) + from_references(right, name),
        _ => 0,
    }
}

/// Whether a CTE's query reads the CTE in a FROM clause (then it is planned as recursive).
fn reads_itself(body: &ast::SetExpr, name: &str) -> bool {
    from_references(body, name) > 0
}

/// The query blocks of `a UNION b UNION …`, each with whether the UNION before it is DISTINCT.
fn union_blocks<'q>(body: &'q ast::SetExpr, out: &mut Vec<(&'q ast::SetExpr, bool)>) -> Result<(), Error> {
    match body {
        ast::SetExpr::SetOperation { op: ast::SetOperator::Union, left, right, set_quantifier } => {
            union_blocks(left, out)?;
            let distinct = match set_quantifier {
                ast::SetQuantifier::All => false,
                ast::SetQuantifier::Distinct | ast::SetQuantifier::None => true,
                _ => return Err(Error::not_supported("UNION BY NAME")),
            };
            let before = out.len();
            union_blocks(right, out)?;
            if let Some(first) = out.get_mut(before) {
                first.1 = distinct;
            }
            Ok(())
        }
        ast::SetExpr::SetOperation { .. } => Err(Error::not_supported("INTERSECT / EXCEPT")),
        other => {
            out.push((other, false));
            Ok(())
        }
    }
}

/// The source of working-table ids (unique in the process, so nested recursive CTEs never
/// mistake each other's working tables).
static NEXT_WORKING_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Plans a recursive CTE (the one at `index` of the CTE stack) into a [`Node::RecursiveCte`].
fn plan_recursive(ctx: &mut PlanContext<'_>, index: usize, cte: &Cte) -> Result<QueryPlan, Error> {
    let q = &cte.query;
    if q.order_by.is_some() || q.limit_clause.is_some() || q.with.is_some() {
        return Err(Error::not_supported("ORDER BY, LIMIT or WITH in a recursive common table expression"));
    }
    let mut blocks = Vec::new();
    union_blocks(&q.body, &mut blocks)?;
    let name = &cte.name;
    let seeds = blocks.iter().take_while(|(b, _)| from_references(b, name) == 0).count();
    if blocks.len() == 1 {
        bail!(CteRecursiveRequiresUnion, "Recursive Common Table Expression '{name}' should contain a UNION");
    }
    if seeds == 0 || blocks[seeds..].iter().any(|(b, _)| from_references(b, name) == 0) {
        bail!(
            CteRecursiveSeedFirst,
            "Recursive Common Table Expression '{name}' should have one or more non-recursive query blocks followed by one or more recursive ones"
        );
    }
    let distinct = blocks.iter().skip(1).any(|(_, d)| *d);

    // The seeds give the columns' names and types.
    let mut seed_plans = Vec::with_capacity(seeds);
    for (block, _) in &blocks[..seeds] {
        seed_plans.push(crate::plan::plan_set_operand(ctx, block)?);
    }
    let width = seed_plans[0].columns.len();
    if seed_plans.iter().any(|p| p.columns.len() != width) {
        bail!(WrongColumnCountInUnion, "The used SELECT statements have a different number of columns");
    }
    let mut columns: Vec<OutputColumn> = seed_plans[0]
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let types: Vec<_> = seed_plans.iter().map(|p| p.columns[i].ty.clone()).collect();
            let mut ty = crate::types::common_type(&types);
            ty.nullable = types.iter().any(|t| t.nullable);
            OutputColumn { name: c.name.clone(), ty, origin: None }
        })
        .collect();
    if !cte.columns.is_empty() {
        if cte.columns.len() != columns.len() {
            bail!(
                ViewWrongList,
                "In definition of view, derived table or common table expression, SELECT list and column names list have different column counts"
            );
        }
        for (column, name) in columns.iter_mut().zip(&cte.columns) {
            column.name = name.clone();
        }
    }
    let collations: Vec<_> = columns.iter().map(|c| c.ty.collation).collect();
    let seed = if seed_plans.len() == 1 && !distinct {
        seed_plans.remove(0).root
    } else {
        Node::Union { inputs: seed_plans.into_iter().map(|p| p.root).collect(), distinct, collations: collations.clone() }
    };

    // The recursive blocks, each reading the working table once in its FROM clause.
    let id = NEXT_WORKING_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut recursive = Vec::with_capacity(blocks.len() - seeds);
    for (block, _) in &blocks[seeds..] {
        ctx.ctes[index].working = Some(Working { id, columns: columns.clone(), references: 0 });
        let planned = crate::plan::plan_set_operand(ctx, block);
        let references = ctx.ctes[index].working.take().map_or(0, |w| w.references);
        let plan = planned?;
        if references != 1 || from_references(block, name) != 1 {
            bail!(
                CteRecursiveReference,
                "In recursive query block of Recursive Common Table Expression '{name}', the recursive table must be referenced only once, and not in any subquery"
            );
        }
        if plan.columns.len() != width {
            bail!(WrongColumnCountInUnion, "The used SELECT statements have a different number of columns");
        }
        recursive.push(plan.root);
    }

    // The depth limit is read when the query runs (a session may change it between runs of a
    // prepared statement).
    let scope = crate::compile::Scope::default();
    let limit_ast = ast::Expr::Identifier(ast::Ident::new("@@cte_max_recursion_depth"));
    let (depth_limit, _) = crate::compile::Compiler::new(ctx, &scope, "field list").compile(&limit_ast)?;
    let root = Node::RecursiveCte { seed: Box::new(seed), recursive, id, distinct, collations, depth_limit };
    Ok(QueryPlan { root, columns, lock: None })
}

/// A copy of `node` whose working tables `id` hold `rows`.
fn with_working_rows(node: &Node, id: u64, rows: &Arc<Vec<Row>>) -> Node {
    fn fill(node: &mut Node, id: u64, rows: &Arc<Vec<Row>>) {
        match node {
            Node::WorkingTable { id: this, rows: slot } if *this == id => *slot = rows.clone(),
            Node::WorkingTable { .. }
            | Node::Single
            | Node::Get { .. }
            | Node::Scan { .. }
            | Node::UniqueGet { .. }
            | Node::IndexScan { .. }
            | Node::PushedAggregate { .. }
            | Node::CountAll { .. } => {}
            Node::Union { inputs, .. } => inputs.iter_mut().for_each(|i| fill(i, id, rows)),
            Node::Derived { plan, .. } => fill(&mut plan.root, id, rows),
            Node::RecursiveCte { seed, recursive, .. } => {
                fill(seed, id, rows);
                recursive.iter_mut().for_each(|r| fill(r, id, rows));
            }
            Node::Filter { input, .. }
            | Node::Window { input, .. }
            | Node::Project { input, .. }
            | Node::Aggregate { input, .. }
            | Node::Distinct { input, .. }
            | Node::Sort { input, .. }
            | Node::Limit { input, .. } => fill(input, id, rows),
            Node::Apply { input, subqueries } => {
                fill(input, id, rows);
                subqueries.iter_mut().for_each(|s| fill(&mut s.plan.root, id, rows));
            }
            Node::HashJoin { left, right, .. } => {
                fill(left, id, rows);
                fill(right, id, rows);
            }
            Node::LookupJoin { left, .. } => fill(left, id, rows),
        }
    }
    let mut copy = node.clone();
    fill(&mut copy, id, rows);
    copy
}

/// Runs a recursive CTE: the seed's rows, then rounds of the recursive blocks over the rows the
/// last round added, until a round adds none.
pub(crate) async fn run_recursive<B: Backend>(
    exec: &Exec<B>,
    seed: &Node,
    recursive: &[Node],
    id: u64,
    distinct: bool,
    collations: &[cairn_common::collation::Collation],
    depth_limit: &cairn_common::expr::Expr,
) -> Result<Vec<Row>, Error> {
    let limit = exec.limit();
    let mut ex = exec.clone();
    let max_rounds = ex.eval(depth_limit, &[])?.to_u64().unwrap_or(1000);
    let mut seen = std::collections::HashSet::new();
    let mut is_new = |row: &Row| {
        if !distinct {
            return true;
        }
        let mut key = Vec::new();
        for (v, c) in row.iter().zip(collations) {
            crate::exec::normalize_into(v, *c, &mut key);
        }
        seen.insert(key)
    };
    let mut stream = crate::exec::open(seed, exec).await?;
    let mut all: Vec<Row> = crate::exec::drain(&mut stream, exec.budget()).await?;
    all.retain(|r| is_new(r));
    let mut working = all.clone();
    let mut round: u64 = 0;
    while !working.is_empty() {
        round += 1;
        if round > max_rounds {
            bail!(
                CteMaxRecursionDepth,
                "Recursive query aborted after {round} iterations. Try increasing @@cte_max_recursion_depth to a larger value."
            );
        }
        ex.check_interrupted()?;
        let rows = Arc::new(std::mem::take(&mut working));
        for block in recursive {
            let node = with_working_rows(block, id, &rows);
            let mut stream = crate::exec::open(&node, exec).await?;
            let mut added = crate::exec::drain(&mut stream, exec.budget()).await?;
            added.retain(|r| is_new(r));
            working.extend(added);
        }
        if all.len() + working.len() > limit {
            return Err(crate::exec::too_many_rows(limit));
        }
        all.extend(working.iter().cloned());
    }
    Ok(all)
}
