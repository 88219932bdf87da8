//! Planning queries: from a parsed SELECT to a tree of operators ([`Node`]).
//!
//! The access to each table is chosen here, and it is where Cairn's performance comes from:
//!
//! - **Primary-key lookup** ([`Node::Get`]): when the WHERE clause pins every primary-key
//!   column to a value known before the query runs (`id = 5`, `id = ?`, `(a, b) = (1, 2)`,
//!   `id IN (1, 2, 3)`), the rows are read by key: one `ReadOp::Get` per node group that holds
//!   one of the keys, nothing else. The rest of the WHERE clause is checked on the SQL node.
//! - **Scan** ([`Node::Scan`]): otherwise every node group scans its partitions in parallel,
//!   with the WHERE conjuncts that a data node can evaluate pushed down as a filter and only
//!   the needed columns sent back (projection). Without ORDER BY, GROUP BY or DISTINCT, LIMIT is
//!   pushed down too.
//! - Joins are hash joins on their equality conditions, or, when the inner table's whole
//!   primary key is given by the outer row, batched key lookups ([`Node::LookupJoin`]).
//!
//! Above the accesses: filter, aggregate, having, project, distinct, sort and limit operators,
//! evaluated on the SQL node (exec.rs).

use std::collections::BTreeSet;
use std::sync::Arc;

use sqlparser::ast::{self, GroupByExpr, JoinConstraint, JoinOperator, SelectItem, SetExpr, TableFactor};

use cairn_common::catalog::TableDef;
use cairn_common::collation::Collation;
use cairn_common::error::{Error, ErrorKind};
use cairn_common::expr::{CmpOp, Expr};
use cairn_common::{Value, bail, err};

use crate::compile::{AggregateCall, AggregateScope, Compiler, PlanContext, Scope, ScopeColumn};
use crate::parse::TableName;
use crate::types::{ColumnOrigin, SqlType};

pub(crate) use crate::access::plan_access;
use crate::access::{IndexRange, LookupVia};

/// One column of a query's result.
#[derive(Clone, Debug)]
pub(crate) struct OutputColumn {
    pub name: String,
    pub ty: SqlType,
    pub origin: Option<ColumnOrigin>,
}

/// A planned query: its operator tree and its visible result columns.
#[derive(Clone, Debug)]
pub(crate) struct QueryPlan {
    pub root: Node,
    pub columns: Vec<OutputColumn>,
    /// `FOR UPDATE` (exclusive) or `FOR SHARE` / `LOCK IN SHARE MODE` (shared) row locks.
    pub lock: Option<cairn_common::ops::LockMode>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JoinKind {
    Inner,
    Left,
}

#[derive(Clone, Debug)]
pub(crate) struct SortKey {
    pub expr: Expr,
    pub descending: bool,
    pub collation: Collation,
}

/// An operator. Each produces rows; the comment says what a row holds.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    /// One row with no columns (SELECT without FROM).
    Single,
    /// Rows of `table` by primary key. Rows are full table rows.
    Get {
        table: Arc<TableDef>,
        /// The table's name in the query (EXPLAIN's `table`).
        alias: Arc<str>,
        /// One entry per key: the value of each primary-key column, in key order.
        keys: Vec<Vec<Expr>>,
        /// The whole WHERE of this table: used instead of the keys when a key value turns out
        /// not to be comparable as a key (a number bound for a string key).
        fallback: Option<Expr>,
    },
    /// Every row of `table` passing `filter` (evaluated on the data nodes). Rows are full
    /// table rows with NULL in the columns not in `projection`.
    Scan { table: Arc<TableDef>, alias: Arc<str>, filter: Option<Expr>, projection: Vec<u32>, limit: Option<u64> },
    /// Rows of `table` through unique index `index`: the index's hidden table gives each key's
    /// primary key, then the row is read by it. Rows are full table rows; the conditions that
    /// chose the keys are checked again above.
    UniqueGet {
        table: Arc<TableDef>,
        alias: Arc<str>,
        index: u32,
        /// One entry per key: the value of each index column, in index order.
        keys: Vec<Vec<Expr>>,
        /// The whole WHERE of this table, used with a scan when a key value is not comparable
        /// as a key.
        fallback: Option<Expr>,
    },
    /// Rows of `table` whose entries in ordered index `index` fall in `ranges`, `filter`
    /// evaluated on the data nodes. With `ordered`, in index order (descending if asked),
    /// merged across node groups; `limit` then bounds each node group's part. Rows are full
    /// table rows with NULL outside `projection`.
    IndexScan {
        table: Arc<TableDef>,
        alias: Arc<str>,
        index: u32,
        ranges: Vec<IndexRange>,
        descending: bool,
        ordered: bool,
        filter: Option<Expr>,
        projection: Vec<u32>,
        limit: Option<u64>,
    },
    /// An aggregation done by the data nodes (partial groups per node group, merged here):
    /// rows shaped as [`Node::Aggregate`]'s, with NULL for the first-row columns (none of which
    /// the plan reads).
    PushedAggregate {
        table: Arc<TableDef>,
        alias: Arc<str>,
        filter: Option<Expr>,
        keys: Vec<(Expr, Collation)>,
        calls: Vec<AggregateCall>,
        input_width: usize,
    },
    /// Rows of several queries with the same column count, one after the other; with
    /// `distinct`, each distinct row once (UNION without ALL).
    Union { inputs: Vec<Node>, distinct: bool, collations: Vec<Collation> },
    /// The rows of a subquery in FROM (a derived table).
    Derived { plan: Box<QueryPlan>, alias: Arc<str> },
    Filter { input: Box<Node>, predicate: Expr },
    /// Rows `[input row (input_width columns)…][one value per window call…]`, in the order of
    /// the last call's partition and order (see `window`).
    Window { input: Box<Node>, calls: Vec<crate::window::WindowCall>, input_width: usize },
    /// The rows of a recursive CTE (see `cte`): `seed`'s rows, then rounds of `recursive`
    /// (each operand run over the rows the last round added, which its `WorkingTable { id }`
    /// reads) until a round adds nothing; with `distinct`, rows already present are not added.
    /// More than `depth_limit` (`@@cte_max_recursion_depth`) rounds is error 3636.
    RecursiveCte { seed: Box<Node>, recursive: Vec<Node>, id: u64, distinct: bool, collations: Vec<Collation>, depth_limit: Expr },
    /// The rows the current round of recursive CTE `id` reads (set when the round runs).
    WorkingTable { id: u64, rows: Arc<Vec<Vec<Value>>> },
    /// Rows of the expressions' values.
    Project { input: Box<Node>, exprs: Vec<Expr> },
    /// Rows `[keys…][the group's first input row…][aggregate results…]`.
    Aggregate { input: Box<Node>, keys: Vec<(Expr, Collation)>, calls: Vec<AggregateCall>, input_width: usize },
    /// Removes rows equal in their first `columns` values.
    Distinct { input: Box<Node>, columns: usize, collations: Vec<Collation> },
    Sort { input: Box<Node>, keys: Vec<SortKey> },
    Limit { input: Box<Node>, offset: Option<Expr>, limit: Option<Expr> },
    /// Rows `[left row…][right row…]` (right all NULL for unmatched LEFT JOIN rows).
    HashJoin {
        left: Box<Node>,
        right: Box<Node>,
        kind: JoinKind,
        /// Equality keys: expressions over the left row and over the right row.
        keys: Vec<(Expr, Expr, Collation)>,
        /// Further ON conditions over the joined row.
        condition: Option<Expr>,
        right_width: usize,
    },
    /// Rows of `input` with one more column per correlated subquery: its result for the row
    /// (run once per row with the row's columns bound to the subquery's outer references).
    Apply { input: Box<Node>, subqueries: Vec<crate::compile::Correlated> },
    /// One row shaped as an aggregation's output (`input_width` NULLs, then `count` copies of
    /// the table's row count): `SELECT COUNT(*) FROM t` answered from the node groups'
    /// partition counts, without reading rows.
    CountAll { table: Arc<TableDef>, input_width: usize, count: usize },
    /// Rows `[left row…][right table row…]`: for each batch of left rows, the right rows are
    /// read by primary key (values computed from the left row).
    LookupJoin {
        left: Box<Node>,
        table: Arc<TableDef>,
        alias: Arc<str>,
        kind: JoinKind,
        /// Which key of `table` the lookup uses.
        via: LookupVia,
        /// Per column of that key (all of them for the primary key and unique indexes, the
        /// leading ones for an ordered index), an expression over the left row.
        key: Vec<Expr>,
        /// Conditions on the right row alone (checked after the lookup), over the joined row.
        condition: Option<Expr>,
    },
}

fn table_scope(def: &TableDef, alias: &str) -> Vec<ScopeColumn> {
    def.columns
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
        .collect()
}

/// Looks a table up by name in the current database (1046 with none selected, 1146 if
/// missing).
pub(crate) fn resolve_table(ctx: &mut PlanContext<'_>, name: &TableName) -> Result<Arc<TableDef>, Error> {
    let database = match &name.database {
        Some(db) => db.clone(),
        None => match ctx.env.database {
            Some(db) => db.to_string(),
            None => bail!(NoDatabaseSelected, "No database selected"),
        },
    };
    if crate::information_schema::is_name(&database) {
        return crate::information_schema::resolve(&name.name);
    }
    let def = ctx
        .env
        .catalog
        .table_by_name(&database, &name.name)
        .ok_or_else(|| err!(NoSuchTable, "Table '{database}.{}' doesn't exist", name.name))?;
    ctx.note_table(def.id, def.version);
    Ok(Arc::new(def.clone()))
}

pub(crate) fn object_table_name(name: &ast::ObjectName) -> Result<TableName, Error> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ast::ObjectNamePart::Identifier(i) => Ok(i.value.clone()),
            other => Err(Error::not_supported(format!("the table name {other}"))),
        })
        .collect::<Result<_, _>>()?;
    match parts.as_slice() {
        [name] => Ok(TableName { database: None, name: name.clone() }),
        [db, name] => Ok(TableName { database: Some(db.clone()), name: name.clone() }),
        _ => Err(err!(WrongArguments, "Incorrect table name '{name}'")),
    }
}

/// Plans a subquery of an expression (run once, before the statement).
pub(crate) fn plan_subquery(ctx: &mut PlanContext<'_>, q: &ast::Query) -> Result<QueryPlan, Error> {
    plan_query(ctx, q).map_err(|e| {
        if e.kind == ErrorKind::UnknownColumn {
            // MySQL would look the name up in the outer query: a correlated subquery.
            Error::not_supported(format!("correlated subqueries ({})", e.message))
        } else {
            e
        }
    })
}

/// Plans a query (SELECT, or a parenthesized SELECT), with its WITH's CTEs in scope.
pub(crate) fn plan_query(ctx: &mut PlanContext<'_>, q: &ast::Query) -> Result<QueryPlan, Error> {
    match &q.with {
        Some(with) => crate::cte::with_ctes(ctx, with, |ctx| plan_query_body(ctx, q)),
        None => plan_query_body(ctx, q),
    }
}

fn plan_query_body(ctx: &mut PlanContext<'_>, q: &ast::Query) -> Result<QueryPlan, Error> {
    if q.fetch.is_some() || q.for_clause.is_some() {
        return Err(Error::not_supported("FETCH / FOR XML"));
    }
    let (limit, offset) = match &q.limit_clause {
        None => (None, None),
        Some(ast::LimitClause::LimitOffset { limit, offset, limit_by }) => {
            if !limit_by.is_empty() {
                return Err(Error::not_supported("LIMIT BY"));
            }
            (limit.as_ref(), offset.as_ref().map(|o| &o.value))
        }
        Some(ast::LimitClause::OffsetCommaLimit { offset, limit }) => (Some(limit), Some(offset)),
    };
    let order_by: &[ast::OrderByExpr] = match &q.order_by {
        None => &[],
        Some(o) => match &o.kind {
            ast::OrderByKind::Expressions(items) => items,
            ast::OrderByKind::All(_) => return Err(Error::not_supported("ORDER BY ALL")),
        },
    };
    // FOR UPDATE locks exclusively, FOR SHARE / LOCK IN SHARE MODE shared; the strongest wins.
    let lock = q
        .locks
        .iter()
        .map(|l| match l.lock_type {
            ast::LockType::Update => cairn_common::ops::LockMode::Exclusive,
            ast::LockType::Share => cairn_common::ops::LockMode::Shared,
        })
        .max_by_key(|m| matches!(m, cairn_common::ops::LockMode::Exclusive));
    let with_lock = |plan: Result<QueryPlan, Error>| plan.map(|p| QueryPlan { lock: lock.or(p.lock), ..p });
    match q.body.as_ref() {
        SetExpr::Select(select) => with_lock(plan_select(ctx, select, order_by, limit, offset)),
        SetExpr::Query(inner) if order_by.is_empty() && limit.is_none() => with_lock(plan_query(ctx, inner)),
        SetExpr::Query(_) => Err(Error::not_supported("ORDER BY/LIMIT around a parenthesized query")),
        SetExpr::SetOperation { op: ast::SetOperator::Union, .. } => plan_union(ctx, q.body.as_ref(), order_by, limit, offset),
        SetExpr::SetOperation { .. } => Err(Error::not_supported("INTERSECT / EXCEPT")),
        SetExpr::Values(_) => Err(Error::not_supported("VALUES statements")),
        _ => Err(Error::not_supported("this query form")),
    }
}

/// Plans one operand of a set operation (a SELECT, a parenthesized query, or another UNION).
pub(crate) fn plan_set_operand(ctx: &mut PlanContext<'_>, body: &SetExpr) -> Result<QueryPlan, Error> {
    match body {
        SetExpr::Select(select) => plan_select(ctx, select, &[], None, None),
        SetExpr::Query(inner) => plan_query(ctx, inner),
        SetExpr::SetOperation { op: ast::SetOperator::Union, .. } => plan_union(ctx, body, &[], None, None),
        SetExpr::SetOperation { .. } => Err(Error::not_supported("INTERSECT / EXCEPT")),
        _ => Err(Error::not_supported("this query form in UNION")),
    }
}

/// `a UNION [ALL | DISTINCT] b`, with the ORDER BY and LIMIT that follow the last operand
/// applying to the whole: columns are named after the first operand's, typed to hold every
/// operand's values; without ALL, each distinct row once.
fn plan_union(
    ctx: &mut PlanContext<'_>,
    body: &SetExpr,
    order_by: &[ast::OrderByExpr],
    limit: Option<&ast::Expr>,
    offset: Option<&ast::Expr>,
) -> Result<QueryPlan, Error> {
    let SetExpr::SetOperation { left, set_quantifier, right, .. } = body else {
        return Err(Error::internal("plan_union without a UNION"));
    };
    let distinct = match set_quantifier {
        ast::SetQuantifier::All => false,
        ast::SetQuantifier::Distinct | ast::SetQuantifier::None => true,
        _ => return Err(Error::not_supported("UNION BY NAME")),
    };
    let left = plan_set_operand(ctx, left)?;
    let right = plan_set_operand(ctx, right)?;
    if left.columns.len() != right.columns.len() {
        bail!(WrongColumnCountInUnion, "The used SELECT statements have a different number of columns");
    }
    let columns: Vec<OutputColumn> = left
        .columns
        .iter()
        .zip(&right.columns)
        .map(|(l, r)| {
            let mut ty = crate::types::common_type(&[l.ty.clone(), r.ty.clone()]);
            ty.nullable = l.ty.nullable || r.ty.nullable;
            OutputColumn { name: l.name.clone(), ty, origin: None }
        })
        .collect();
    let collations = columns.iter().map(|c| c.ty.collation).collect();
    let mut node = Node::Union { inputs: vec![left.root, right.root], distinct, collations };
    // ORDER BY names or positions of the result's columns.
    if !order_by.is_empty() {
        let scope = Scope {
            columns: columns
                .iter()
                .map(|c| ScopeColumn { table: None, database: None, name: c.name.clone(), ty: c.ty.clone(), origin: None, hidden: false })
                .collect(),
        };
        let mut keys = Vec::with_capacity(order_by.len());
        for o in order_by {
            let descending = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
            let (expr, collation) = match group_position(&o.expr, columns.len(), "order clause")? {
                Some(n) => (Expr::column(n), columns[n].ty.collation),
                None => {
                    let mut c = Compiler::new(ctx, &scope, "order clause");
                    let (e, ty) = c.compile(&o.expr)?;
                    (e, ty.collation)
                }
            };
            keys.push(SortKey { expr, descending, collation });
        }
        node = Node::Sort { input: Box::new(node), keys };
    }
    let limit = match limit {
        Some(l) => Some(limit_expr(ctx, l)?),
        None => None,
    };
    let offset = match offset {
        Some(o) => Some(limit_expr(ctx, o)?),
        None => None,
    };
    if limit.is_some() || offset.is_some() {
        node = Node::Limit { input: Box::new(node), offset, limit };
    }
    Ok(QueryPlan { root: node, columns, lock: None })
}

/// Compiles a LIMIT/OFFSET operand: a number or a `?`.
fn limit_expr(ctx: &mut PlanContext<'_>, e: &ast::Expr) -> Result<Expr, Error> {
    let scope = Scope::default();
    let mut c = Compiler::new(ctx, &scope, "limit clause");
    let (expr, ty) = c.compile(e)?;
    match (&expr, ty.kind()) {
        (Expr::Literal(Value::Int(i)), _) if *i >= 0 => Ok(expr),
        (Expr::Literal(Value::UInt(_)), _) => Ok(expr),
        (Expr::Param(_), _) => Ok(expr),
        _ => Err(crate::lexer::syntax_error_near(&e.to_string(), 1)),
    }
}

/// The FROM clause: accesses, joins, and where each WHERE conjunct goes.
struct FromPlan {
    node: Node,
    scope: Scope,
    /// WHERE conjuncts not consumed by table accesses or joins: applied above.
    residual: Vec<Expr>,
    /// The columns `SELECT *` shows, in order (USING and NATURAL joins reorder them).
    star: Vec<usize>,
    /// Columns that USING/NATURAL joins coalesced away: still shown by `t.*`.
    merged: Vec<usize>,
}

fn plan_select(
    ctx: &mut PlanContext<'_>,
    select: &ast::Select,
    order_by: &[ast::OrderByExpr],
    limit: Option<&ast::Expr>,
    offset: Option<&ast::Expr>,
) -> Result<QueryPlan, Error> {
    if select.into.is_some() {
        return Err(Error::not_supported("SELECT ... INTO"));
    }
    if select.qualify.is_some() || !select.lateral_views.is_empty() {
        return Err(Error::not_supported("QUALIFY / LATERAL VIEW"));
    }
    let distinct = match &select.distinct {
        None | Some(ast::Distinct::All) => false,
        Some(ast::Distinct::Distinct) => true,
        Some(_) => return Err(Error::not_supported("DISTINCT ON")),
    };
    let group_by: &[ast::Expr] = match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) => {
            if !modifiers.is_empty() {
                return Err(Error::not_supported("GROUP BY ... WITH ROLLUP"));
            }
            exprs
        }
        GroupByExpr::All(_) => return Err(Error::not_supported("GROUP BY ALL")),
    };

    // FROM and WHERE. Correlated subqueries met from here on belong to this select.
    let correlated_start = ctx.correlated.len();
    let from = plan_from(ctx, select, correlated_start)?;
    let limit_expr_v = match limit {
        Some(l) => Some(limit_expr(ctx, l)?),
        None => None,
    };
    let offset_expr = match offset {
        Some(o) => Some(limit_expr(ctx, o)?),
        None => None,
    };

    // Try as a plain query first; an aggregate call anywhere turns it into an aggregate query.
    let slots_after_from = ctx.slots.len();
    let correlated_after_from = ctx.correlated.len();
    let aggregate = !group_by.is_empty();
    let result = if aggregate {
        Err(crate::compile::needs_aggregation())
    } else {
        plan_projection(ctx, select, &from, order_by, distinct, None, &[], correlated_start)
    };
    let (mut node, columns, sort, hidden) = match result {
        Ok(r) => r,
        Err(e) if e.kind == ErrorKind::InvalidGroupFunctionUse => {
            ctx.slots.truncate(slots_after_from);
            ctx.correlated.truncate(correlated_after_from);
            plan_projection(ctx, select, &from, order_by, distinct, Some(()), group_by, correlated_start)?
        }
        Err(e) => return Err(e),
    };
    // This select's correlated subqueries now live in its Apply node.
    ctx.correlated.truncate(correlated_start);

    if !sort.is_empty() {
        node = Node::Sort { input: Box::new(node), keys: sort };
    }
    if limit_expr_v.is_some() || offset_expr.is_some() {
        node = Node::Limit { input: Box::new(node), offset: offset_expr, limit: limit_expr_v };
    }
    if hidden > 0 {
        let visible = columns.len();
        node = Node::Project { input: Box::new(node), exprs: (0..visible).map(Expr::column).collect() };
    }
    let mut plan = QueryPlan { root: node, columns, lock: None };
    count_from_partitions(&mut plan.root);
    crate::optimize::order_by_index(&mut plan.root);
    crate::optimize::min_max_index(&mut plan.root);
    push_limit(&mut plan.root);
    let needed: BTreeSet<usize> = (0..plan.columns.len()).collect();
    prune(&mut plan.root, &needed);
    Ok(plan)
}

/// Plans the select list, HAVING, DISTINCT and ORDER BY over the FROM plan. With `aggregate`
/// set, expressions are compiled over the aggregation of the FROM rows grouped by `group_by`.
/// Returns the node, the visible columns, the sort keys (over the projected row) and the count
/// of hidden trailing columns (sort keys not in the select list).
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn plan_projection(
    ctx: &mut PlanContext<'_>,
    select: &ast::Select,
    from: &FromPlan,
    order_by: &[ast::OrderByExpr],
    distinct: bool,
    aggregate: Option<()>,
    group_by: &[ast::Expr],
    correlated_start: usize,
) -> Result<(Node, Vec<OutputColumn>, Vec<SortKey>, usize), Error> {
    // The window calls of an enclosing select are not this one's.
    let enclosing_windows = std::mem::take(&mut ctx.windows);
    let result = plan_projection_inner(ctx, select, from, order_by, distinct, aggregate, group_by, correlated_start);
    ctx.windows = enclosing_windows;
    result
}

#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn plan_projection_inner(
    ctx: &mut PlanContext<'_>,
    select: &ast::Select,
    from: &FromPlan,
    order_by: &[ast::OrderByExpr],
    distinct: bool,
    aggregate: Option<()>,
    group_by: &[ast::Expr],
    correlated_start: usize,
) -> Result<(Node, Vec<OutputColumn>, Vec<SortKey>, usize), Error> {
    let scope = &from.scope;

    // Select items: expand wildcards into (ast or column index, name, alias?).
    enum Item<'q> {
        Column(usize),
        /// An expression, its alias, and its position in the select list as written.
        Expr(&'q ast::Expr, Option<String>, usize),
    }
    let mut items = Vec::new();
    for (written_at, item) in select.projection.iter().enumerate() {
        match item {
            SelectItem::Wildcard(_) => {
                if scope.columns.is_empty() {
                    bail!(ParseError, "You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version for the right syntax to use near '*' at line 1");
                }
                items.extend(from.star.iter().map(|&i| Item::Column(i)));
            }
            SelectItem::QualifiedWildcard(kind, _) => {
                let ast::SelectItemQualifiedWildcardKind::ObjectName(name) = kind else {
                    return Err(Error::not_supported("expression.*"));
                };
                let parts: Vec<String> = name.0.iter().map(|p| p.to_string().trim_matches('`').to_string()).collect();
                let (db, table) = match parts.as_slice() {
                    [t] => (None, t.clone()),
                    [d, t] => (Some(d.clone()), t.clone()),
                    _ => bail!(UnknownTableInList, "Unknown table '{name}'"),
                };
                let mut any = false;
                for (i, c) in scope.columns.iter().enumerate() {
                    if (!c.hidden || from.merged.contains(&i)) && c.table.as_deref() == Some(table.as_str()) && db.as_ref().is_none_or(|d| c.database.as_deref() == Some(d.as_str())) {
                        items.push(Item::Column(i));
                        any = true;
                    }
                }
                if !any {
                    bail!(UnknownTableInList, "Unknown table '{name}'");
                }
            }
            SelectItem::UnnamedExpr(e) => items.push(Item::Expr(e, None, written_at)),
            SelectItem::ExprWithAlias { expr, alias } => items.push(Item::Expr(expr, Some(alias.value.clone()), written_at)),
            SelectItem::ExprWithAliases { .. } => return Err(Error::not_supported("multiple aliases")),
        }
    }

    // Compile the select list, HAVING and ORDER BY, over the FROM scope or its aggregation.
    let mut agg_scope = AggregateScope {
        input: scope,
        keys: Vec::new(),
        calls: Vec::new(),
        only_full_group_by: ctx.env.only_full_group_by,
        grouped: !group_by.is_empty(),
        position: None,
    };
    let mut key_exprs = Vec::new();
    if aggregate.is_some() {
        for g in group_by {
            // GROUP BY n: the n-th select item; GROUP BY alias: that item's expression.
            let resolved: &ast::Expr = match group_position(g, items.len(), "group statement")? {
                Some(n) => match &items[n] {
                    Item::Expr(e, _, _) => e,
                    Item::Column(i) => {
                        let c = &scope.columns[*i];
                        key_exprs.push((Expr::column(*i), c.ty.collation));
                        agg_scope.keys.push((format!("#{i}"), c.ty.clone(), Some(*i)));
                        continue;
                    }
                },
                None => match alias_target(g, &items.iter().map(|i| match i {
                    Item::Expr(e, a, _) => (Some(*e), a.clone()),
                    Item::Column(_) => (None, None),
                }).collect::<Vec<_>>(), scope) {
                    Some(e) => e,
                    None => g,
                },
            };
            let mut c = Compiler::new(ctx, scope, "group statement");
            let (e, ty) = c.compile(resolved)?;
            let column = match &e {
                Expr::Column(i) => Some(*i as usize),
                _ => None,
            };
            key_exprs.push((e, ty.collation));
            agg_scope.keys.push((resolved.to_string(), ty, column));
        }
    }
    let is_agg = aggregate.is_some();

    // Window calls of the select list and ORDER BY, compiled over the rows the Window operator
    // reads (the FROM rows, or the aggregation's): see `window`.
    let window_asts = {
        let mut exprs: Vec<&ast::Expr> = items
            .iter()
            .filter_map(|i| match i {
                Item::Expr(e, _, _) => Some(*e),
                Item::Column(_) => None,
            })
            .collect();
        exprs.extend(order_by.iter().map(|o| &o.expr));
        crate::window::collect(&exprs)
    };
    let mut window_calls = Vec::with_capacity(window_asts.len());
    let mut window_types = Vec::with_capacity(window_asts.len());
    for f in &window_asts {
        let mut comp = Compiler {
            ctx: &mut *ctx,
            scope,
            aggregate: if is_agg { Some(&mut agg_scope) } else { None },
            clause: "field list",
            allow_aggregates: true,
            aliases: Vec::new(),
            values_alias: None,
        };
        let (call, ty) = crate::window::plan_call(&mut comp, f, &select.named_window)?;
        window_calls.push(call);
        window_types.push(ty);
    }
    ctx.windows = crate::window::slots(&window_asts, window_types)?;

    // Unaliased expressions are named by their text as written.
    let aliased: Vec<bool> = select.projection.iter().map(|i| matches!(i, SelectItem::ExprWithAlias { .. })).collect();
    let written: Option<Vec<String>> = ctx.env.source.and_then(|s| crate::lexer::select_item_texts(s, select.select_token.0.span.start, &aliased));
    let mut exprs = Vec::new();
    let mut columns = Vec::new();
    for (n, item) in items.iter().enumerate() {
        agg_scope.position = Some(("SELECT list", n + 1));
        match item {
            Item::Column(i) => {
                let c = &scope.columns[*i];
                let e = if is_agg {
                    let mut comp = Compiler { ctx: &mut *ctx, scope, aggregate: Some(&mut agg_scope), clause: "field list", allow_aggregates: true, aliases: Vec::new(), values_alias: None };
                    comp.compile(&ast::Expr::CompoundIdentifier(vec![ast::Ident::new(c.table.clone().unwrap_or_default()), ast::Ident::new(c.name.clone())]))?.0
                } else {
                    Expr::column(*i)
                };
                exprs.push(e);
                columns.push(OutputColumn { name: c.name.clone(), ty: c.ty.clone(), origin: c.origin.clone() });
            }
            Item::Expr(e, alias, position) => {
                let mut comp = Compiler {
                    ctx: &mut *ctx,
                    scope,
                    aggregate: if is_agg { Some(&mut agg_scope) } else { None },
                    clause: "field list",
                    allow_aggregates: true,
                    aliases: Vec::new(),
                    values_alias: None,
                };
                let (expr, ty) = comp.compile(e)?;
                let expr = rewrite_correlated(expr, ctx, correlated_start, scope.width())?;
                let origin = match (&expr, e) {
                    (Expr::Column(i), ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_)) if !is_agg => scope.columns[*i as usize].origin.clone(),
                    (Expr::Column(i), ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_)) if is_agg => {
                        agg_origin(&agg_scope, *i as usize)
                    }
                    _ => None,
                };
                let name = match alias {
                    Some(a) => a.clone(),
                    None => match (e, &written) {
                        (ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_) | ast::Expr::Value(_), _) => crate::compile::expression_name(e),
                        (ast::Expr::Nested(inner), _) if matches!(inner.as_ref(), ast::Expr::Value(_)) => crate::compile::expression_name(e),
                        (_, Some(texts)) => texts[*position].clone(),
                        _ => crate::compile::expression_name(e),
                    },
                };
                exprs.push(expr);
                columns.push(OutputColumn { name, ty, origin });
            }
        }
    }

    let correlated_in_select = ctx.correlated.len();
    agg_scope.position = None;
    let having = match &select.having {
        Some(h) => {
            if !is_agg {
                return Err(crate::compile::needs_aggregation());
            }
            // HAVING may name select-list aliases (`HAVING total > 5`).
            let aliases: Vec<(String, Expr, SqlType)> = items
                .iter()
                .zip(exprs.iter().zip(&columns))
                .filter_map(|(item, (e, c))| match item {
                    // An alias of a window call's result is not known below the Window operator.
                    Item::Expr(_, Some(_), _) if e.columns().iter().any(|&c| c >= crate::window::WINDOW_COLUMN_BASE) => None,
                    Item::Expr(_, Some(alias), _) => Some((alias.clone(), e.clone(), c.ty.clone())),
                    _ => None,
                })
                .collect();
            let mut comp = Compiler { ctx: &mut *ctx, scope, aggregate: Some(&mut agg_scope), clause: "having clause", allow_aggregates: true, aliases, values_alias: None };
            Some(comp.compile(h)?.0)
        }
        None => None,
    };

    // ORDER BY: a position, a select alias, or an expression (hidden column if not selected).
    let mut sort = Vec::new();
    let mut hidden = 0;
    for o in order_by {
        let descending = match &o.options.sort {
            None | Some(ast::OrderBySort::Asc) => false,
            Some(ast::OrderBySort::Desc) => true,
            Some(_) => return Err(Error::not_supported("ORDER BY ... USING")),
        };
        if o.options.nulls_first.is_some() {
            return Err(Error::not_supported("NULLS FIRST / NULLS LAST"));
        }
        if let Some(n) = group_position(&o.expr, columns.len(), "order clause")? {
            sort.push(SortKey { expr: Expr::column(n), descending, collation: columns[n].ty.collation });
            continue;
        }
        if let ast::Expr::Identifier(ident) = &o.expr
            && let Some(n) = columns.iter().position(|c| c.name.eq_ignore_ascii_case(&ident.value)) {
                // A select alias (or an output name), unless it is also a FROM column with
                // another meaning: MySQL prefers the alias in ORDER BY.
                sort.push(SortKey { expr: Expr::column(n), descending, collation: columns[n].ty.collation });
                continue;
            }
        let text = o.expr.to_string();
        if let Some(n) = items.iter().position(|i| matches!(i, Item::Expr(e, _, _) if e.to_string() == text)) {
            sort.push(SortKey { expr: Expr::column(n), descending, collation: columns[n].ty.collation });
            continue;
        }
        agg_scope.position = Some(("ORDER BY clause", sort.len() + 1));
        let mut comp = Compiler {
            ctx: &mut *ctx,
            scope,
            aggregate: if is_agg { Some(&mut agg_scope) } else { None },
            clause: "order clause",
            allow_aggregates: true,
            aliases: Vec::new(),
            values_alias: None,
        };
        let (e, ty) = comp.compile(&o.expr)?;
        if distinct {
            bail!(NotSupported, "Expression #{} of ORDER BY clause is not in SELECT list, references column which is not in SELECT list; this is incompatible with DISTINCT", sort.len() + 1);
        }
        exprs.push(e);
        sort.push(SortKey { expr: Expr::column(exprs.len() - 1), descending, collation: ty.collation });
        hidden += 1;
    }

    if ctx.correlated.len() > correlated_in_select {
        return Err(Error::not_supported("correlated subqueries in HAVING or ORDER BY"));
    }
    // FROM rows, then the correlated subqueries' results per row, then WHERE's remainder.
    let mut node = from.node.clone();
    if ctx.correlated.len() > correlated_start {
        node = Node::Apply { input: Box::new(node), subqueries: ctx.correlated[correlated_start..].to_vec() };
    }
    if let Some(predicate) = Expr::conjunction(from.residual.clone()) {
        node = Node::Filter { input: Box::new(node), predicate };
    }
    // The width of the rows the Window operator reads: the FROM row and correlated results, or
    // the aggregation's output row.
    let window_input_width = if is_agg {
        agg_scope.keys.len() + scope.width() + agg_scope.calls.len()
    } else {
        scope.width() + (ctx.correlated.len() - correlated_start)
    };
    if is_agg {
        let input_width = scope.width();
        node = Node::Aggregate { input: Box::new(node), keys: key_exprs, calls: agg_scope.calls, input_width };
        if let Some(h) = having {
            node = Node::Filter { input: Box::new(node), predicate: h };
        }
    }
    let mut exprs = exprs;
    if !window_calls.is_empty() {
        if !is_agg {
            for call in window_calls.iter_mut() {
                let mut failed = None;
                call.for_each_expr(&mut |e| {
                    let taken = std::mem::replace(e, Expr::Literal(Value::Null));
                    match rewrite_correlated(taken, ctx, correlated_start, scope.width()) {
                        Ok(rewritten) => *e = rewritten,
                        Err(err) => failed = Some(err),
                    }
                });
                if let Some(err) = failed {
                    return Err(err);
                }
            }
        }
        let base = crate::window::WINDOW_COLUMN_BASE;
        let width = window_input_width as u32;
        exprs = exprs
            .into_iter()
            .map(|e| e.remap_columns(&|c| if c >= base { width + (c - base) } else { c }))
            .collect();
        node = Node::Window { input: Box::new(node), calls: window_calls, input_width: window_input_width };
    }
    node = Node::Project { input: Box::new(node), exprs };
    if distinct {
        let collations = columns.iter().map(|c| c.ty.collation).collect();
        node = Node::Distinct { input: Box::new(node), columns: columns.len(), collations };
    }
    Ok((node, columns, sort, hidden))
}

fn agg_origin(agg: &AggregateScope<'_>, position: usize) -> Option<ColumnOrigin> {
    if position < agg.keys.len() {
        return agg.keys[position].2.and_then(|i| agg.input.columns[i].origin.clone());
    }
    let first = position - agg.keys.len();
    agg.input.columns.get(first).and_then(|c| c.origin.clone())
}

/// `GROUP BY 2` / `ORDER BY 2`: a 0-based select-list position.
fn group_position(e: &ast::Expr, count: usize, clause: &str) -> Result<Option<usize>, Error> {
    if let ast::Expr::Value(v) = e
        && let ast::Value::Number(text, _) = &v.value
            && let Ok(n) = text.parse::<usize>() {
                if n == 0 || n > count {
                    bail!(UnknownColumn, "Unknown column '{n}' in '{clause}'");
                }
                return Ok(Some(n - 1));
            }
    Ok(None)
}

/// A GROUP BY identifier naming a select alias (and no FROM column): that item's expression.
fn alias_target<'q>(e: &ast::Expr, items: &[(Option<&'q ast::Expr>, Option<String>)], scope: &Scope) -> Option<&'q ast::Expr> {
    let ast::Expr::Identifier(ident) = e else { return None };
    if scope.resolve(&[], &ident.value).ok().flatten().is_some() {
        return None;
    }
    items.iter().find_map(|(expr, alias)| match (expr, alias) {
        (Some(expr), Some(a)) if a.eq_ignore_ascii_case(&ident.value) => Some(*expr),
        _ => None,
    })
}

/// Where a FROM item's rows come from.
#[derive(Clone)]
enum Source {
    Table(Arc<TableDef>),
    /// A subquery in FROM.
    Derived(Box<QueryPlan>),
}

impl Source {
    fn width(&self) -> usize {
        match self {
            Source::Table(def) => def.columns.len(),
            Source::Derived(plan) => plan.columns.len(),
        }
    }
}

/// One FROM item, resolved.
struct Step<'q> {
    source: Source,
    alias: String,
    kind: JoinKind,
    on: Option<std::borrow::Cow<'q, ast::Expr>>,
    /// How many scope columns (from the first) its ON condition sees: up to its own table's,
    /// or the swapped partner's in a RIGHT JOIN.
    on_scope: usize,
    /// Offset of its columns in the scope (the FROM clause's written order).
    offset: usize,
    /// Whether the join order may not change here (STRAIGHT_JOIN).
    straight: bool,
}

fn derived_scope(plan: &QueryPlan, alias: &str) -> Vec<ScopeColumn> {
    plan.columns
        .iter()
        .map(|c| ScopeColumn { table: Some(alias.to_string()), database: None, name: c.name.clone(), ty: c.ty.clone(), origin: None, hidden: false })
        .collect()
}

/// The columns of `step` that equalities in `conditions` pin to columns of `placed` steps
/// (conditions over the scope's numbering).
fn joined_columns(conditions: &[Expr], step: &Step<'_>, placed: &[&Step<'_>]) -> Vec<usize> {
    let width = step.source.width();
    let in_step = |c: u32| (c as usize) >= step.offset && (c as usize) < step.offset + width;
    let in_placed = |c: u32| placed.iter().any(|p| (c as usize) >= p.offset && (c as usize) < p.offset + p.source.width());
    let mut out = Vec::new();
    for cond in conditions {
        let Expr::Compare { op: CmpOp::Eq, left, right, .. } = cond else { continue };
        for (mine, other) in [(left, right), (right, left)] {
            if let Expr::Column(c) = mine.as_ref() {
                let cols = other.columns();
                if in_step(*c) && !cols.is_empty() && cols.iter().all(|&o| in_placed(o)) {
                    out.push(*c as usize - step.offset);
                }
            }
        }
    }
    out
}

/// Conditions on `step` alone, renumbered to its own columns.
fn local_conditions(conditions: &[Expr], step: &Step<'_>) -> Vec<Expr> {
    let width = step.source.width();
    let offset = step.offset as u32;
    conditions
        .iter()
        .filter(|e| {
            let cols = e.columns();
            !cols.is_empty() && cols.iter().all(|&c| c >= offset && (c as usize) < step.offset + width)
        })
        .map(|e| e.clone().remap_columns(&|c| c - offset))
        .collect()
}

/// The join order of inner joins: greedily, the table that can be read best given the tables
/// read before it (a key pinned by constants first, then keys pinned by earlier tables, then
/// index ranges, filtered scans and plain scans), preferring tables joined to those already
/// placed, then the written order.
fn choose_join_order(steps: &[Step<'_>], conditions: &[Expr]) -> Vec<usize> {
    let mut order: Vec<usize> = Vec::with_capacity(steps.len());
    while order.len() < steps.len() {
        let placed: Vec<&Step<'_>> = order.iter().map(|&i| &steps[i]).collect();
        let mut best: Option<(crate::access::AccessRank, bool, usize)> = None;
        for (i, step) in steps.iter().enumerate() {
            if order.contains(&i) {
                continue;
            }
            let local = local_conditions(conditions, step);
            let joined = joined_columns(conditions, step, &placed);
            let rank = match &step.source {
                Source::Table(def) if placed.is_empty() => crate::access::rank_const_access(def, &local),
                Source::Table(def) => crate::access::rank_join_access(def, &local, &joined),
                Source::Derived(_) => crate::access::AccessRank::All,
            };
            let unconnected = !placed.is_empty() && joined.is_empty();
            let score = (rank, unconnected, i);
            if best.is_none_or(|b| score < b) {
                best = Some(score);
            }
        }
        let Some((_, _, i)) = best else { break };
        order.push(i);
    }
    order
}

/// Builds the FROM clause's tree and scope, placing WHERE conjuncts.
fn plan_from<'q>(ctx: &mut PlanContext<'_>, select: &'q ast::Select, correlated_start: usize) -> Result<FromPlan, Error> {
    if crate::nested_join::has_nested(select) {
        // Parenthesized joins are planned as the equivalent join sequence (`nested_join`).
        let flat = crate::nested_join::flatten(select)?;
        return plan_from(ctx, &flat, correlated_start);
    }
    if select.from.is_empty() {
        let scope = Scope::default();
        let mut residual = Vec::new();
        if let Some(w) = &select.selection {
            let mut c = Compiler::new(ctx, &scope, "where clause");
            residual.push(c.compile(w)?.0);
        }
        return Ok(FromPlan { node: Node::Single, scope, residual, star: Vec::new(), merged: Vec::new() });
    }
    // Resolve every table (in written order) and build the full scope.
    let mut steps: Vec<Step<'q>> = Vec::new();
    let mut scope = Scope::default();
    let add_table = |ctx: &mut PlanContext<'_>, factor: &'q TableFactor, kind: JoinKind, on: Option<&'q ast::Expr>, straight: bool, steps: &mut Vec<Step<'q>>, scope: &mut Scope| -> Result<(), Error> {
        let (source, alias) = match factor {
            TableFactor::Table { name, alias, args, .. } => {
                if args.is_some() {
                    return Err(Error::not_supported("table functions"));
                }
                let table_name = object_table_name(name)?;
                if table_name.database.is_none() && table_name.name.eq_ignore_ascii_case("dual") && steps.is_empty() {
                    return Ok(());
                }
                if let Some(planned) = crate::cte::plan_reference(ctx, &table_name)? {
                    let alias = alias.as_ref().map_or_else(|| table_name.name.clone(), |a| a.name.value.clone());
                    (Source::Derived(Box::new(planned)), alias)
                } else {
                    let def = resolve_table(ctx, &table_name)?;
                    let alias = alias.as_ref().map_or_else(|| def.name.clone(), |a| a.name.value.clone());
                    (Source::Table(def), alias)
                }
            }
            TableFactor::Derived { lateral, subquery, alias, .. } => {
                if *lateral {
                    return Err(Error::not_supported("LATERAL derived tables"));
                }
                let Some(alias) = alias else {
                    bail!(DerivedNeedsAlias, "Every derived table must have its own alias");
                };
                if !alias.columns.is_empty() {
                    return Err(Error::not_supported("column names of a derived table"));
                }
                // A derived table sees no columns of the query around it (it is not LATERAL).
                let outer = std::mem::take(&mut ctx.outer);
                let correlated = std::mem::take(&mut ctx.correlated);
                let planned = plan_query(ctx, subquery);
                ctx.outer = outer;
                ctx.correlated = correlated;
                (Source::Derived(Box::new(planned?)), alias.name.value.clone())
            }
            TableFactor::NestedJoin { .. } => return Err(Error::not_supported("parenthesized joins")),
            _ => return Err(Error::not_supported("this kind of table in FROM")),
        };
        if steps.iter().any(|s| s.alias == alias) {
            bail!(DuplicateTableAlias, "Not unique table/alias: '{alias}'");
        }
        let offset = scope.width();
        match &source {
            Source::Table(def) => scope.columns.extend(table_scope(def, &alias)),
            Source::Derived(plan) => scope.columns.extend(derived_scope(plan, &alias)),
        }
        let on_scope = offset + source.width();
        steps.push(Step { source, alias, kind, on: on.map(std::borrow::Cow::Borrowed), on_scope, offset, straight });
        Ok(())
    };
    // The columns of `SELECT *` in order, and those USING/NATURAL joins coalesced away
    // (`join_using`). A RIGHT JOIN is planned as a LEFT JOIN with its two tables trading
    // places in the join order (`swaps`); the scope keeps the written order.
    let mut star: Vec<usize> = Vec::new();
    let mut merged: Vec<usize> = Vec::new();
    let mut swaps: Vec<(usize, usize)> = Vec::new();
    for twj in &select.from {
        let first_step = steps.len();
        let first_column = scope.width();
        add_table(ctx, &twj.relation, JoinKind::Inner, None, false, &mut steps, &mut scope)?;
        let mut visible: Vec<usize> = (first_column..scope.width()).filter(|&i| !scope.columns[i].hidden).collect();
        for (j, join) in twj.joins.iter().enumerate() {
            let straight = matches!(join.join_operator, JoinOperator::StraightJoin(_));
            let (kind, constraint, right_join) = match &join.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) | JoinOperator::StraightJoin(c) => (JoinKind::Inner, c, false),
                JoinOperator::CrossJoin(c) => (JoinKind::Inner, c, false),
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (JoinKind::Left, c, false),
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (JoinKind::Inner, c, true),
                _ => return Err(Error::not_supported("this kind of join")),
            };
            if right_join && (j > 0 || steps.len() == first_step) {
                // `a JOIN b RIGHT JOIN c` is `c LEFT JOIN (a JOIN b)`: a parenthesized join.
                return Err(Error::not_supported("RIGHT JOIN after another join"));
            }
            let (on, matching) = match constraint {
                JoinConstraint::On(e) => (Some(e), None),
                JoinConstraint::None => (None, None),
                JoinConstraint::Using(cols) => (None, Some(crate::join_using::Matching::Using(cols))),
                JoinConstraint::UsingAlias(..) => return Err(Error::not_supported("JOIN ... USING (...) AS alias")),
                JoinConstraint::Natural => (None, Some(crate::join_using::Matching::Natural)),
            };
            if (kind == JoinKind::Left || right_join) && on.is_none() && matching.is_none() {
                return Err(crate::lexer::syntax_error_near("", 1));
            }
            let before = scope.width();
            add_table(ctx, &join.relation, kind, on, straight, &mut steps, &mut scope)?;
            let last = steps.len() - 1;
            match matching {
                Some(m) => {
                    let c = crate::join_using::coalesce(&scope, &visible, before..scope.width(), m, right_join)?;
                    for &h in &c.hide {
                        scope.columns[h].hidden = true;
                    }
                    merged.extend(&c.hide);
                    visible = c.visible;
                    steps[last].on = c.on.map(std::borrow::Cow::Owned);
                }
                None => visible.extend((before..scope.width()).filter(|&i| !scope.columns[i].hidden)),
            }
            if right_join {
                // The written left table becomes the null-extended one, joined by the ON.
                steps[last - 1].kind = JoinKind::Left;
                steps[last - 1].on = steps[last].on.take();
                steps[last - 1].on_scope = steps[last].on_scope;
                swaps.push((last - 1, last));
            }
        }
        star.extend(visible);
    }
    if steps.is_empty() {
        // FROM DUAL.
        let empty = Scope::default();
        let mut residual = Vec::new();
        if let Some(w) = &select.selection {
            let mut c = Compiler::new(ctx, &empty, "where clause");
            residual.push(c.compile(w)?.0);
        }
        return Ok(FromPlan { node: Node::Single, scope: empty, residual, star: Vec::new(), merged: Vec::new() });
    }

    // WHERE conjuncts over the full scope; a correlated subquery's result is a column the
    // Apply above the FROM tree adds, so conditions on it stay above it.
    let mut conjuncts: Vec<Expr> = match &select.selection {
        Some(w) => {
            let mut c = Compiler::new(ctx, &scope, "where clause");
            let e = c.compile(w)?.0;
            rewrite_correlated(e, ctx, correlated_start, scope.width())?.into_conjuncts()
        }
        None => Vec::new(),
    };
    // ON conditions, compiled over the scope up to their table (as MySQL resolves them).
    let mut on_conjuncts: Vec<Vec<Expr>> = Vec::with_capacity(steps.len());
    for step in &steps {
        on_conjuncts.push(match step.on.as_deref() {
            Some(on) => {
                let partial = Scope { columns: scope.columns[..step.on_scope].to_vec() };
                let before = ctx.correlated.len();
                let mut c = Compiler::new(ctx, &partial, "on clause");
                let e = c.compile(on)?.0;
                if ctx.correlated.len() > before {
                    return Err(Error::not_supported("correlated subqueries in ON"));
                }
                e.into_conjuncts()
            }
            None => Vec::new(),
        });
    }
    let scope_width = scope.width();

    // Inner joins only: ON is WHERE, and the order is free (unless STRAIGHT_JOIN).
    let all_inner = steps.iter().all(|s| s.kind == JoinKind::Inner);
    let mut order: Vec<usize> = (0..steps.len()).collect();
    if all_inner && steps.len() > 1 && !steps.iter().any(|s| s.straight) {
        for on in &mut on_conjuncts {
            conjuncts.append(on);
        }
        let evaluable: Vec<Expr> = conjuncts.iter().filter(|e| e.columns().iter().all(|&c| (c as usize) < scope_width)).cloned().collect();
        order = choose_join_order(&steps, &evaluable);
    }
    for &(a, b) in &swaps {
        order.swap(a, b);
    }
    let reordered = order.iter().enumerate().any(|(i, &o)| i != o);
    // Column positions in the join's row, in the chosen order.
    let mut new_position = vec![0u32; scope_width];
    let mut at = 0usize;
    for &i in &order {
        for k in 0..steps[i].source.width() {
            new_position[steps[i].offset + k] = (at + k) as u32;
        }
        at += steps[i].source.width();
    }
    let to_new = |e: Expr| -> Expr {
        if !reordered {
            return e;
        }
        e.remap_columns(&|c| if (c as usize) < scope_width { new_position[c as usize] } else { c })
    };
    let mut conjuncts: Vec<Expr> = conjuncts.into_iter().map(to_new).collect();
    let on_conjuncts: Vec<Vec<Expr>> = on_conjuncts.into_iter().map(|v| v.into_iter().map(to_new).collect()).collect();
    // The steps in join order, with their offsets in the join's row.
    let mut joined_scope = Scope::default();
    let mut ordered_steps: Vec<(usize, usize)> = Vec::with_capacity(order.len());
    for &i in &order {
        ordered_steps.push((i, joined_scope.width()));
        let step = &steps[i];
        match &step.source {
            Source::Table(def) => joined_scope.columns.extend(table_scope(def, &step.alias)),
            Source::Derived(plan) => joined_scope.columns.extend(derived_scope(plan, &step.alias)),
        }
    }
    let within_scope = |e: &Expr| e.columns().iter().all(|&c| (c as usize) < scope_width);
    // Tables on the inner side of a LEFT JOIN: WHERE conditions on them stay above the join.
    let nullable: Vec<bool> = ordered_steps.iter().map(|(i, _)| steps[*i].kind == JoinKind::Left).collect();
    let table_of = |col: usize| ordered_steps.iter().rposition(|(_, offset)| *offset <= col).unwrap_or(0);
    let only_table = |e: &Expr| -> Option<usize> {
        let cols = e.columns();
        let first = table_of(*cols.first()? as usize);
        cols.iter().all(|&c| table_of(c as usize) == first).then_some(first)
    };

    let mut node: Option<Node> = None;
    for (t, &(i, offset)) in ordered_steps.iter().enumerate() {
        let step = &steps[i];
        let width = step.source.width();
        let alias = step.alias.as_str();
        let mut on_here = on_conjuncts[i].clone();
        // Conditions on this table alone go to its access: WHERE ones unless the table is
        // null-extended, ON ones always.
        let mut local = Vec::new();
        if !nullable[t] {
            conjuncts.retain(|e| {
                if within_scope(e) && only_table(e) == Some(t) && is_pushable_shape(e) {
                    local.push(e.clone());
                    false
                } else {
                    true
                }
            });
        }
        on_here.retain(|e| {
            if only_table(e) == Some(t) && is_pushable_shape(e) {
                local.push(e.clone());
                false
            } else {
                true
            }
        });
        let local: Vec<Expr> = local.into_iter().map(|e| e.remap_columns(&|c| c - offset as u32)).collect();

        let Some(left) = node.take() else {
            node = Some(source_access(&step.source, alias, local, step.kind)?);
            continue;
        };
        // Join with what came before: equality conditions between the two sides are keys.
        let mut join_conditions = on_here;
        if step.kind == JoinKind::Inner {
            // WHERE conditions that now become evaluable join the condition set.
            conjuncts.retain(|e| {
                let cols = e.columns();
                let evaluable = within_scope(e) && cols.iter().all(|&c| (c as usize) < offset + width) && cols.iter().any(|&c| c as usize >= offset);
                if evaluable && !cols.iter().any(|&c| nullable[table_of(c as usize)] && table_of(c as usize) != t) {
                    join_conditions.push(e.clone());
                    false
                } else {
                    true
                }
            });
        }
        let mut keys = Vec::new();
        let mut rest = Vec::new();
        for cond in join_conditions {
            match equi_key(&cond, offset, width) {
                Some(k) => keys.push(k),
                None => rest.push(cond),
            }
        }
        if let Source::Table(def) = &step.source {
            if let Some(lookup) = lookup_join(def, alias, &keys, &rest, &local, offset, &joined_scope, step.kind, left.clone())? {
                node = Some(lookup);
                continue;
            }
        }
        let right = source_access(&step.source, alias, local, JoinKind::Inner)?;
        node = Some(Node::HashJoin {
            left: Box::new(left),
            right: Box::new(right),
            kind: step.kind,
            keys,
            condition: Expr::conjunction(rest),
            right_width: width,
        });
    }
    let mut node = node.unwrap_or(Node::Single);
    let mut residual = conjuncts;
    if reordered {
        // Back to the written order, which the scope (and `SELECT *`) follows.
        node = Node::Project { input: Box::new(node), exprs: (0..scope_width).map(|c| Expr::Column(new_position[c])).collect() };
        let mut old_position = vec![0u32; scope_width];
        for (old, &new) in new_position.iter().enumerate() {
            old_position[new as usize] = old as u32;
        }
        residual = residual
            .into_iter()
            .map(|e| e.remap_columns(&|c| if (c as usize) < scope_width { old_position[c as usize] } else { c }))
            .collect();
    }
    Ok(FromPlan { node, scope, residual, star, merged })
}

/// How to read a FROM item given the conditions on it alone.
fn source_access(source: &Source, alias: &str, local: Vec<Expr>, kind: JoinKind) -> Result<Node, Error> {
    match source {
        Source::Table(def) => plan_access(def.clone(), alias, local, kind),
        Source::Derived(plan) => {
            let derived = Node::Derived { plan: plan.clone(), alias: alias.into() };
            Ok(match Expr::conjunction(local) {
                Some(predicate) => Node::Filter { input: Box::new(derived), predicate },
                None => derived,
            })
        }
    }
}

/// A lookup join into `def` when the equality keys (and constants among the table's own
/// conditions) pin its primary key, a unique index, or the leading columns of an ordered
/// index; None when only a hash join fits.
#[allow(clippy::too_many_arguments)]
fn lookup_join(
    def: &Arc<TableDef>,
    alias: &str,
    keys: &[(Expr, Expr, Collation)],
    rest: &[Expr],
    local: &[Expr],
    offset: usize,
    scope: &Scope,
    kind: JoinKind,
    left: Node,
) -> Result<Option<Node>, Error> {
    // What pins each column of the right table: a left-row expression or a constant.
    let mut pinned: Vec<Option<Expr>> = vec![None; def.columns.len()];
    // Which equality key pins each column (the primary-key lookup checks those exactly).
    let mut pinned_by: Vec<Option<usize>> = vec![None; def.columns.len()];
    for (k, (l, r, _)) in keys.iter().enumerate() {
        let Expr::Column(rc) = r else { continue };
        let rc = *rc as usize;
        if pinned[rc].is_none() && crate::access::key_kind_compatible(&def.columns[rc].ty, &left_type(l, scope)) {
            pinned[rc] = Some(l.clone());
            pinned_by[rc] = Some(k);
        }
    }
    let joined: Vec<usize> = (0..def.columns.len()).filter(|&c| pinned[c].is_some()).collect();
    if joined.is_empty() {
        return Ok(None);
    }
    for cond in local {
        if let Expr::Compare { op: CmpOp::Eq, left: a, right: b, .. } = cond {
            for (col, value) in [(a, b), (b, a)] {
                if let Expr::Column(c) = col.as_ref() {
                    let c = *c as usize;
                    if pinned[c].is_none()
                        && crate::access::is_row_independent(value)
                        && crate::access::key_kind_compatible(&def.columns[c].ty, &crate::access::candidate_type(value))
                    {
                        pinned[c] = Some(value.as_ref().clone());
                    }
                }
            }
        }
    }
    let cover = |columns: &[usize]| -> Option<Vec<Expr>> { columns.iter().map(|&c| pinned[c].clone()).collect() };
    let shifted_local = || local.iter().cloned().map(|e| e.remap_columns(&|c| c + offset as u32)).collect::<Vec<_>>();
    let key_checks = || {
        keys.iter()
            .map(|(l, r, collation)| Expr::Compare { op: CmpOp::Eq, left: Box::new(l.clone()), right: Box::new(r.clone().remap_columns(&|c| c + offset as u32)), collation: *collation })
            .collect::<Vec<_>>()
    };
    let (via, key, mut condition) = if let (false, Some(key)) = (def.hidden_primary_key, cover(&def.primary_key)) {
        // By primary key: the lookup itself checks the key columns exactly.
        let mut condition = shifted_local();
        for (k, (l, r, collation)) in keys.iter().enumerate() {
            let exact = matches!(r, Expr::Column(rc) if def.primary_key.contains(&(*rc as usize)) && pinned_by[*rc as usize] == Some(k));
            if !exact {
                let right = r.clone().remap_columns(&|c| c + offset as u32);
                condition.push(Expr::Compare { op: CmpOp::Eq, left: Box::new(l.clone()), right: Box::new(right), collation: *collation });
            }
        }
        (LookupVia::Primary, key, condition)
    } else if let Some((ix, key)) = crate::access::ready_unique(def).find_map(|ix| cover(&ix.columns).map(|k| (ix, k))) {
        let mut condition = shifted_local();
        condition.extend(key_checks());
        (LookupVia::Unique(ix.id), key, condition)
    } else {
        // The ordered index whose pinned leading columns are the most, if they include a
        // column pinned by the left row.
        let mut best: Option<(u32, Vec<Expr>)> = None;
        for ix in crate::access::ready_ordered(def) {
            let prefix: Vec<Expr> = ix.columns.iter().map_while(|&c| pinned[c].clone()).collect();
            let uses_join = ix.columns[..prefix.len()].iter().any(|c| joined.contains(c));
            if uses_join && best.as_ref().is_none_or(|(_, k)| prefix.len() > k.len()) {
                best = Some((ix.id, prefix));
            }
        }
        let Some((index, key)) = best else { return Ok(None) };
        let mut condition = shifted_local();
        condition.extend(key_checks());
        (LookupVia::Ordered(index), key, condition)
    };
    condition.extend(rest.iter().cloned());
    Ok(Some(Node::LookupJoin { left: Box::new(left), table: def.clone(), alias: alias.into(), kind, via, key, condition: Expr::conjunction(condition) }))
}

/// Replaces references to this select's correlated subqueries (`Slot::Correlated` params, and
/// `x IN (correlated subquery)` tests) by the columns its Apply appends after the
/// `width` columns of the FROM row.
fn rewrite_correlated(e: Expr, ctx: &PlanContext<'_>, start: usize, width: usize) -> Result<Expr, Error> {
    if ctx.correlated.len() <= start {
        return Ok(e);
    }
    let index_of = |slot: u32| match ctx.slots.get(slot as usize) {
        Some(crate::compile::Slot::Correlated { index }) if *index >= start => Some(*index),
        _ => None,
    };
    // Membership tests first (bottom-up, their list still holds the parameter), then the rest.
    let e = e.transform(&mut |node| {
        Ok(match node {
            Expr::InList { list, arg, negated, collation } => match list.as_slice() {
                [Expr::Param(slot)] if index_of(*slot).is_some() => {
                    let index = index_of(*slot).unwrap_or(start);
                    Expr::Column((width + index - start) as u32)
                }
                _ => Expr::InList { arg, list, negated, collation },
            },
            other => other,
        })
    })?;
    e.transform(&mut |node| {
        Ok(match node {
            Expr::Param(slot) => match index_of(slot) {
                Some(index) => Expr::Column((width + index - start) as u32),
                None => Expr::Param(slot),
            },
            other => other,
        })
    })
}

fn left_type(e: &Expr, scope: &Scope) -> SqlType {
    match e {
        Expr::Column(c) => scope.columns[*c as usize].ty.clone(),
        _ => SqlType::varchar(0, false, true),
    }
}

/// `left_expr = right_column_expr`, with one side over the tables before `offset` and the other
/// over the table at `offset..offset + width`; returns (left expr, right expr remapped to the
/// right table's own columns, collation).
fn equi_key(cond: &Expr, offset: usize, width: usize) -> Option<(Expr, Expr, Collation)> {
    let Expr::Compare { op: CmpOp::Eq, left, right, collation } = cond else { return None };
    let side = |e: &Expr| -> Option<bool> {
        let cols = e.columns();
        if cols.is_empty() {
            return None;
        }
        if cols.iter().all(|&c| (c as usize) < offset) {
            Some(false)
        } else if cols.iter().all(|&c| (c as usize) >= offset && (c as usize) < offset + width) {
            Some(true)
        } else {
            None
        }
    };
    let (l, r) = match (side(left)?, side(right)?) {
        (false, true) => (left.as_ref().clone(), right.as_ref().clone()),
        (true, false) => (right.as_ref().clone(), left.as_ref().clone()),
        _ => return None,
    };
    Some((l, r.remap_columns(&|c| c - offset as u32), *collation))
}

/// Whether a condition may be evaluated at a table access (no subquery lists that the access
/// would need before they are bound; everything else is fine).
fn is_pushable_shape(e: &Expr) -> bool {
    !e.columns().is_empty()
}

/// `COUNT(*)` over a whole table (no WHERE, no GROUP BY, only COUNT(*) aggregates) reads the
/// partitions' row counts instead of the rows.
fn count_from_partitions(node: &mut Node) {
    match node {
        Node::Project { input, .. } | Node::Filter { input, .. } | Node::Limit { input, .. } | Node::Sort { input, .. } => {
            count_from_partitions(input)
        }
        Node::Aggregate { input, keys, calls, input_width } => {
            let only_count_star = !calls.is_empty() && calls.iter().all(|c| c.func == crate::compile::AggregateFunc::CountStar);
            if let (true, true, Node::Scan { table, filter: None, .. }) = (keys.is_empty(), only_count_star, input.as_ref()) {
                *node = Node::CountAll { table: table.clone(), input_width: *input_width, count: calls.len() };
            }
        }
        _ => {}
    }
}

/// Pushes a constant LIMIT (plus OFFSET) into a scan when nothing between them changes the
/// row count or order.
fn push_limit(node: &mut Node) {
    fn const_u64(e: &Option<Expr>) -> Option<u64> {
        match e {
            None => Some(0),
            Some(Expr::Literal(Value::Int(i))) => u64::try_from(*i).ok(),
            Some(Expr::Literal(Value::UInt(u))) => Some(*u),
            _ => None,
        }
    }
    fn scan_below(node: &mut Node) -> Option<&mut Option<u64>> {
        match node {
            Node::Project { input, .. } => scan_below(input),
            Node::Scan { limit, .. } | Node::IndexScan { limit, .. } => Some(limit),
            _ => None,
        }
    }
    match node {
        Node::Limit { input, offset, limit: Some(limit) } => {
            let (Some(o), Some(l)) = (const_u64(offset), const_u64(&Some(limit.clone()))) else { return };
            if let Some(slot) = scan_below(input) {
                *slot = Some(o.saturating_add(l));
            }
        }
        Node::Project { input, .. } => push_limit(input),
        _ => {}
    }
}

/// Narrows every scan's projection to the columns the operators above it read.
fn prune(node: &mut Node, needed: &BTreeSet<usize>) {
    fn add_cols(set: &mut BTreeSet<usize>, e: &Expr) {
        for c in e.columns() {
            set.insert(c as usize);
        }
    }
    match node {
        Node::Single | Node::Get { .. } | Node::CountAll { .. } | Node::UniqueGet { .. } | Node::PushedAggregate { .. } => {}
        Node::Scan { projection, .. } | Node::IndexScan { projection, .. } => {
            *projection = needed.iter().map(|&c| c as u32).collect();
        }
        Node::Union { inputs, collations, .. } => {
            let all: BTreeSet<usize> = (0..collations.len()).collect();
            for input in inputs.iter_mut() {
                prune(input, &all);
            }
        }
        Node::Derived { plan, .. } => prune(&mut plan.root, needed),
        Node::WorkingTable { .. } => {}
        Node::RecursiveCte { seed, recursive, collations, .. } => {
            // Every column of each round is the next round's input.
            let all: BTreeSet<usize> = (0..collations.len()).collect();
            prune(seed, &all);
            for r in recursive.iter_mut() {
                prune(r, &all);
            }
        }
        Node::Filter { input, predicate } => {
            let mut n = needed.clone();
            add_cols(&mut n, predicate);
            prune(input, &n);
        }
        Node::Project { input, exprs } => {
            let mut n = BTreeSet::new();
            for (i, e) in exprs.iter().enumerate() {
                if needed.contains(&i) {
                    add_cols(&mut n, e);
                }
            }
            prune(input, &n);
        }
        Node::Aggregate { input, keys, calls, input_width } => {
            // A whole-table aggregation whose input rows the query does not read (no first-row
            // columns) runs on the data nodes: partial groups per node group, merged here.
            let first = keys.len();
            let reads_rows = needed.iter().any(|&c| c >= first && c < first + *input_width);
            if let Node::Scan { table, alias, filter, limit: None, .. } = input.as_ref() {
                let keys_pushable = keys.iter().all(|(k, _)| crate::access::is_pushable(k));
                // An information_schema view has no node group to push to: its rows are made here.
                let stored = !crate::information_schema::is_view(table);
                if stored && !reads_rows && keys_pushable && crate::exec_index::can_push(calls) {
                    *node = Node::PushedAggregate {
                        table: table.clone(),
                        alias: alias.clone(),
                        filter: filter.clone(),
                        keys: keys.clone(),
                        calls: calls.clone(),
                        input_width: *input_width,
                    };
                    return;
                }
            }
            let mut n = BTreeSet::new();
            for (k, _) in keys.iter() {
                add_cols(&mut n, k);
            }
            for call in calls.iter() {
                for a in &call.args {
                    add_cols(&mut n, a);
                }
                for (o, _, _) in &call.order {
                    add_cols(&mut n, o);
                }
            }
            let first = keys.len();
            for &c in needed {
                if c >= first && c < first + *input_width {
                    n.insert(c - first);
                }
            }
            prune(input, &n);
        }
        Node::Distinct { input, columns, .. } => {
            let mut n = needed.clone();
            n.extend(0..*columns);
            prune(input, &n);
        }
        Node::Sort { input, keys } => {
            let mut n = needed.clone();
            for k in keys.iter() {
                add_cols(&mut n, &k.expr);
            }
            prune(input, &n);
        }
        Node::Limit { input, .. } => prune(input, needed),
        Node::Window { input, calls, input_width } => {
            let mut n: BTreeSet<usize> = needed.iter().copied().filter(|&c| c < *input_width).collect();
            for call in calls.iter() {
                n.extend(call.columns().into_iter().map(|c| c as usize));
            }
            prune(input, &n);
        }
        Node::Apply { input, subqueries } => {
            let width = needed_width(input).unwrap_or(usize::MAX);
            let mut n: BTreeSet<usize> = needed.iter().copied().filter(|&c| c < width).collect();
            for s in subqueries.iter() {
                n.extend(s.outer.iter().map(|(_, c)| *c));
                if let Some((arg, _, _)) = &s.membership {
                    add_cols(&mut n, arg);
                }
            }
            prune(input, &n);
        }
        Node::HashJoin { left, right, keys, condition, right_width, .. } => {
            let left_width = needed_width(left).unwrap_or(usize::MAX);
            let mut n = needed.clone();
            if let Some(c) = condition {
                add_cols(&mut n, c);
            }
            let mut l: BTreeSet<usize> = n.iter().copied().filter(|&c| c < left_width).collect();
            let mut r: BTreeSet<usize> = n.iter().copied().filter(|&c| c >= left_width && c < left_width + *right_width).map(|c| c - left_width).collect();
            for (lk, rk, _) in keys.iter() {
                add_cols(&mut l, lk);
                add_cols(&mut r, rk);
            }
            prune(left, &l);
            prune(right, &r);
        }
        Node::LookupJoin { left, key, condition, .. } => {
            let left_width = needed_width(left).unwrap_or(usize::MAX);
            let mut n: BTreeSet<usize> = needed.iter().copied().filter(|&c| c < left_width).collect();
            for k in key.iter() {
                add_cols(&mut n, k);
            }
            if let Some(c) = condition {
                for col in c.columns() {
                    if (col as usize) < left_width {
                        n.insert(col as usize);
                    }
                }
            }
            prune(left, &n);
        }
    }
}

/// Width of the rows a node produces, when it is a table-shaped row (for splitting join
/// columns).
pub(crate) fn needed_width(node: &Node) -> Option<usize> {
    match node {
        Node::Single => Some(0),
        Node::Get { table, .. } | Node::Scan { table, .. } | Node::UniqueGet { table, .. } | Node::IndexScan { table, .. } => {
            Some(table.columns.len())
        }
        Node::PushedAggregate { keys, calls, input_width, .. } => Some(keys.len() + input_width + calls.len()),
        Node::Union { collations, .. } | Node::RecursiveCte { collations, .. } => Some(collations.len()),
        Node::WorkingTable { .. } => None,
        Node::Derived { plan, .. } => Some(plan.columns.len()),
        Node::Filter { input, .. } | Node::Limit { input, .. } | Node::Sort { input, .. } | Node::Distinct { input, .. } => {
            needed_width(input)
        }
        Node::Project { exprs, .. } => Some(exprs.len()),
        Node::Window { calls, input_width, .. } => Some(input_width + calls.len()),
        Node::Aggregate { keys, calls, input_width, .. } => Some(keys.len() + input_width + calls.len()),
        Node::CountAll { input_width, count, .. } => Some(input_width + count),
        Node::Apply { input, subqueries } => Some(needed_width(input)? + subqueries.len()),
        Node::HashJoin { left, right_width, .. } => Some(needed_width(left)? + right_width),
        Node::LookupJoin { left, table, .. } => Some(needed_width(left)? + table.columns.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::PlanEnv;
    use crate::lexer::split;
    use crate::parse::{Statement, parse};
    use cairn_common::catalog::{Catalog, CatalogOp};
    use cairn_common::ids::NodeGroupId;

    fn catalog() -> Catalog {
        let groups = [NodeGroupId(0), NodeGroupId(1)];
        let mut catalog = Catalog::new();
        catalog
            .apply(CatalogOp::CreateDatabase { name: "d".into(), charset: "utf8mb4".into(), collation: "utf8mb4_0900_ai_ci".into(), if_not_exists: false }, &groups)
            .unwrap();
        for ddl in [
            "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20), qty INT, note TEXT)",
            "CREATE TABLE c (a INT, b VARCHAR(10), v INT, PRIMARY KEY (a, b))",
            "CREATE TABLE p (id INT PRIMARY KEY, t_id INT)",
        ] {
            let text = split(ddl).unwrap().remove(0);
            let Statement::CreateTable { table, partitioning } = parse(&text).unwrap() else { panic!() };
            let snapshot = catalog.clone();
            let system_var = |_: crate::parse::VarScope, _: &str| Ok(Value::Null);
            let user_var = |_: &str| Value::Null;
            let env = PlanEnv { catalog: &snapshot, database: Some("d"), system_var: &system_var, user_var: &user_var, pipes_as_concat: false, only_full_group_by: true, source: None };
            let mut ctx = PlanContext::new(env, Vec::new());
            let defaults = |_: &str| Some(crate::ddl::DatabaseDefaults { charset: "utf8mb4".into(), collation: "utf8mb4_0900_ai_ci".into() });
            let (def, _) = crate::ddl::table_def(&mut ctx, &table, partitioning.as_ref(), &defaults).unwrap();
            catalog.apply(CatalogOp::CreateTable { table: def, if_not_exists: false }, &groups).unwrap();
        }
        catalog
    }

    fn plan(sql: &str) -> Node {
        let catalog = catalog();
        let text = split(sql).unwrap().remove(0);
        let Statement::Query(q) = parse(&text).unwrap() else { panic!("not a query: {sql}") };
        let system_var = |_: crate::parse::VarScope, _: &str| Ok(Value::Null);
        let user_var = |_: &str| Value::Null;
        let placeholders: Vec<(u64, u64)> = text
            .tokens
            .iter()
            .filter(|t| matches!(t.token, sqlparser::tokenizer::Token::Placeholder(_)))
            .map(|t| (t.span.start.line, t.span.start.column))
            .collect();
        let env = PlanEnv { catalog: &catalog, database: Some("d"), system_var: &system_var, user_var: &user_var, pipes_as_concat: false, only_full_group_by: true, source: Some(&text) };
        let mut ctx = PlanContext::new(env, placeholders);
        plan_query(&mut ctx, &q).unwrap().root
    }

    /// The access node under projections and filters.
    fn access(node: &Node) -> &Node {
        match node {
            Node::Project { input, .. } | Node::Filter { input, .. } | Node::Limit { input, .. } | Node::Sort { input, .. } => access(input),
            other => other,
        }
    }

    #[test]
    fn primary_key_equality_is_one_lookup() {
        match access(&plan("SELECT name FROM t WHERE id = 5")) {
            Node::Get { keys, .. } => assert_eq!(keys, &vec![vec![Expr::Literal(Value::Int(5))]]),
            other => panic!("{other:?}"),
        }
        match access(&plan("SELECT name FROM t WHERE ? = id")) {
            Node::Get { keys, .. } => assert!(matches!(keys.as_slice(), [k] if matches!(k.as_slice(), [Expr::Param(_)]))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn in_lists_batch_keys_and_keep_other_conditions() {
        let node = plan("SELECT name FROM t WHERE id IN (1, 2, 3) AND qty > 1");
        let Node::Project { input, .. } = &node else { panic!("{node:?}") };
        let Node::Filter { input, predicate } = input.as_ref() else { panic!("{input:?}") };
        assert!(matches!(predicate, Expr::Compare { op: CmpOp::Gt, .. }));
        let Node::Get { keys, .. } = input.as_ref() else { panic!("{input:?}") };
        assert_eq!(keys.len(), 3);
        // Composite keys: the product of the candidates.
        match access(&plan("SELECT v FROM c WHERE a IN (1, 2) AND b IN ('x', 'y', 'z')")) {
            Node::Get { keys, .. } => assert_eq!(keys.len(), 6),
            other => panic!("{other:?}"),
        }
        match access(&plan("SELECT v FROM c WHERE (a, b) = (1, 'x')")) {
            Node::Get { keys, .. } => assert_eq!(keys.len(), 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_conditions_scan_with_the_filter_pushed_and_columns_pruned() {
        match access(&plan("SELECT name FROM t WHERE qty > 3")) {
            Node::Scan { filter: Some(Expr::Compare { op: CmpOp::Gt, .. }), projection, limit: None, .. } => {
                assert_eq!(projection, &vec![1], "only `name` travels back; the filter runs on the data node");
            }
            other => panic!("{other:?}"),
        }
        // Part of a composite key, an OR of keys, a string key compared with a number: scans.
        assert!(matches!(access(&plan("SELECT v FROM c WHERE a = 1")), Node::Scan { .. }));
        assert!(matches!(access(&plan("SELECT name FROM t WHERE id = 1 OR id = 2")), Node::Scan { .. }));
        assert!(matches!(access(&plan("SELECT v FROM c WHERE a = 1 AND b = 5")), Node::Scan { .. }));
        // RAND() cannot go to a data node: the condition stays on the SQL node.
        let node = plan("SELECT name FROM t WHERE qty > RAND()");
        let Node::Project { input, .. } = &node else { panic!() };
        assert!(matches!(input.as_ref(), Node::Filter { input, .. } if matches!(input.as_ref(), Node::Scan { filter: None, .. })));
    }

    #[test]
    fn limit_is_pushed_only_without_order() {
        assert!(matches!(access(&plan("SELECT name FROM t WHERE qty = 1 LIMIT 5, 10")), Node::Scan { limit: Some(15), .. }));
        assert!(matches!(access(&plan("SELECT name FROM t ORDER BY name LIMIT 10")), Node::Scan { limit: None, .. }));
        assert!(matches!(access(&plan("SELECT DISTINCT name FROM t LIMIT 10")), Node::Distinct { .. }));
    }

    #[test]
    fn joins_on_the_inner_primary_key_are_lookups() {
        let node = plan("SELECT t.name FROM p JOIN t ON t.id = p.t_id WHERE p.id > 5");
        match access(&node) {
            Node::LookupJoin { left, key, .. } => {
                assert!(matches!(left.as_ref(), Node::Scan { filter: Some(_), .. }), "the condition on p is pushed to p's scan");
                assert_eq!(key.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        let node = plan("SELECT t.name FROM t JOIN p ON t.id = p.t_id");
        assert!(matches!(access(&node), Node::HashJoin { keys, .. } if keys.len() == 1));
    }

    #[test]
    fn count_star_reads_partition_counts() {
        assert!(matches!(access(&plan("SELECT COUNT(*) FROM t")), Node::CountAll { count: 1, .. }));
        // With a WHERE, the data nodes count (partial aggregation) and the SQL node adds up.
        assert!(matches!(access(&plan("SELECT COUNT(*) FROM t WHERE qty > 1")), Node::PushedAggregate { filter: Some(_), .. }));
        assert!(matches!(access(&plan("SELECT name, SUM(qty), AVG(qty), MAX(note) FROM t GROUP BY name")), Node::PushedAggregate { .. }));
        // DISTINCT aggregates and GROUP_CONCAT need every row here.
        assert!(matches!(access(&plan("SELECT COUNT(DISTINCT name) FROM t")), Node::Aggregate { .. }));
        assert!(matches!(access(&plan("SELECT GROUP_CONCAT(name) FROM t")), Node::Aggregate { .. }));
    }
}
