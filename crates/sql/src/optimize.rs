//! Rewrites of a planned query that let ordered indexes and the data nodes do more.
//!
//! - **ORDER BY through an index** ([`order_by_index`]): a sort of one table's rows by columns
//!   that an ordered index holds in that order (after the columns its equalities pin) becomes
//!   an index scan merged in index order across node groups; the sort goes away, and a LIMIT
//!   above it is pushed into every node group's part.
//! - **MIN/MAX through an index** ([`min_max_index`]): `MIN(c)` or `MAX(c)` of one table with
//!   an ordered index leading with `c` reads one row per node group (the first non-NULL entry
//!   that passes the WHERE, from the right end), and the aggregate picks among them.
//! - Aggregations whose input is a plain scan are pushed to the data nodes in `plan::prune`,
//!   where the columns the query needs are known.

use cairn_common::catalog::TableDef;
use cairn_common::expr::Expr;

use crate::access::IndexRange;
use crate::compile::AggregateFunc;
use crate::plan::{Node, SortKey};

/// An index whose columns, from `skip` on, are `columns` in order.
fn index_with_order(table: &TableDef, columns: &[usize], skip: usize, only: Option<u32>) -> Option<u32> {
    crate::access::ready_ordered(table)
        .filter(|ix| only.is_none_or(|id| id == ix.id))
        .find(|ix| ix.columns.len() >= skip + columns.len() && ix.columns[skip..skip + columns.len()] == *columns)
        .map(|ix| ix.id)
}

/// Whether sorting by a table column under `key`'s collation is the index's order.
fn same_order(table: &TableDef, column: usize, key: &SortKey) -> bool {
    let c = &table.columns[column];
    !c.ty.is_string() || key.collation == c.comparison()
}

/// The table columns sort keys name through a projection, if they all do.
fn sort_columns(keys: &[SortKey], project: &[Expr]) -> Option<Vec<usize>> {
    keys.iter()
        .map(|k| match &k.expr {
            Expr::Column(n) => match project.get(*n as usize) {
                Some(Expr::Column(c)) => Some(*c as usize),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The access node under filters.
fn access_under_filters(node: &mut Node) -> &mut Node {
    match node {
        Node::Filter { input, .. } => access_under_filters(input),
        other => other,
    }
}

/// Replaces `Sort(Project(access))` by `Project(ordered index scan)` where an index gives the
/// order. Walks through the nodes a sort may sit under.
pub(crate) fn order_by_index(node: &mut Node) {
    match node {
        Node::Limit { input, .. } => order_by_index(input),
        Node::Project { input, .. } if !matches!(input.as_ref(), Node::Sort { .. }) => order_by_index(input),
        _ => {}
    }
    let Node::Sort { input, keys } = node else { return };
    let descending = keys.first().is_some_and(|k| k.descending);
    if keys.iter().any(|k| k.descending != descending) {
        return;
    }
    let Node::Project { input: below, exprs } = input.as_mut() else { return };
    let Some(columns) = sort_columns(keys, exprs) else { return };
    let access = access_under_filters(below);
    let replaced = match access {
        Node::Scan { table, alias, filter, projection, limit: None } => {
            if !columns.iter().zip(keys.iter()).all(|(&c, k)| same_order(table, c, k)) {
                return;
            }
            let Some(index) = index_with_order(table, &columns, 0, None) else { return };
            Node::IndexScan {
                table: table.clone(),
                alias: alias.clone(),
                index,
                ranges: Vec::new(),
                descending,
                ordered: true,
                filter: filter.clone(),
                projection: projection.clone(),
                limit: None,
            }
        }
        Node::IndexScan { table, alias, index, ranges, filter, projection, limit: None, ordered: false, .. } => {
            if !columns.iter().zip(keys.iter()).all(|(&c, k)| same_order(table, c, k)) {
                return;
            }
            let eq = ranges.first().map_or(0, |r| r.eq.len());
            let uniform = ranges.iter().all(|r| r.eq.len() == eq);
            // Several ranges keep the index order only when the sort starts at the first
            // column (they are scanned in key order).
            let skip = if ranges.len() == 1 && uniform { eq } else { 0 };
            if index_with_order(table, &columns, skip, Some(*index)).is_none() && (skip == 0 || index_with_order(table, &columns, 0, Some(*index)).is_none()) {
                return;
            }
            Node::IndexScan {
                table: table.clone(),
                alias: alias.clone(),
                index: *index,
                ranges: ranges.clone(),
                descending,
                ordered: true,
                filter: filter.clone(),
                projection: projection.clone(),
                limit: None,
            }
        }
        _ => return,
    };
    *access = replaced;
    let project = std::mem::replace(input.as_mut(), Node::Single);
    *node = project;
}

/// `MIN(c)` / `MAX(c)` with an ordered index leading with `c`: one index entry per node group.
pub(crate) fn min_max_index(node: &mut Node) {
    match node {
        Node::Project { input, .. } | Node::Filter { input, .. } | Node::Limit { input, .. } | Node::Sort { input, .. } => {
            return min_max_index(input);
        }
        Node::Aggregate { .. } => {}
        _ => return,
    }
    let Node::Aggregate { input, keys, calls, .. } = node else { return };
    if !keys.is_empty() || calls.is_empty() {
        return;
    }
    let func = calls[0].func;
    if !matches!(func, AggregateFunc::Min | AggregateFunc::Max) {
        return;
    }
    let Some(Expr::Column(c)) = calls[0].args.first() else { return };
    let column = *c as usize;
    if calls.iter().any(|call| call.func != func || call.distinct || call.args.first() != Some(&Expr::Column(column as u32))) {
        return;
    }
    let Node::Scan { table, alias, filter, projection, limit: None } = input.as_ref() else { return };
    if table.columns[column].ty.is_string() && calls[0].collation != table.columns[column].comparison() {
        return;
    }
    let Some(index) = index_with_order(table, &[column], 0, None) else { return };
    let not_null = Expr::IsNull { arg: Box::new(Expr::Column(column as u32)), negated: true };
    let filter = Some(match filter {
        Some(f) => Expr::and(f.clone(), not_null),
        None => not_null,
    });
    **input = Node::IndexScan {
        table: table.clone(),
        alias: alias.clone(),
        index,
        ranges: Vec::<IndexRange>::new(),
        descending: func == AggregateFunc::Max,
        ordered: false,
        filter,
        projection: projection.clone(),
        limit: Some(1),
    };
}
