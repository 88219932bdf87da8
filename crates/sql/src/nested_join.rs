//! Parenthesized joins: `FROM a JOIN (b JOIN c ON …) ON …`, `FROM (a, b) JOIN c`.
//!
//! The planner (`plan_from`) plans a FROM clause as a left-deep sequence of tables, each joined
//! to those before it. A parenthesized join is rewritten into that shape before planning, when
//! the rewrite keeps the meaning:
//!
//! - A parenthesized join at the start of a FROM item, `(a JOIN b ON x) JOIN c`, is the same
//!   sequence without the parentheses (a join sequence is evaluated left to right anyway).
//! - A parenthesized join on the right of an inner join, `a JOIN (b LEFT JOIN c ON x) ON y`,
//!   becomes `a CROSS JOIN b LEFT JOIN c ON x` with `y` moved to the WHERE clause. An inner
//!   join's ON condition is a filter over the joined rows, and the joins inside the parentheses
//!   read only their own tables, so `a × (b ⟕ c)` = `(a × b) ⟕ c`; the filter `y` reads no table
//!   of a later LEFT JOIN's right side, so it may be applied after it.
//! - Parentheses around one table are dropped.
//!
//! Left out (1235): a parenthesized join of several tables on the right of a LEFT or RIGHT
//! JOIN (`a LEFT JOIN (b JOIN c ON x) ON y` keeps `a`'s rows whose match in `b ⋈ c` fails,
//! which no left-deep sequence does), a parenthesized join with USING or NATURAL, and an alias
//! on a parenthesized join.

use sqlparser::ast::{self, JoinConstraint, JoinOperator, TableFactor, TableWithJoins};

use cairn_common::error::Error;

/// The most parentheses one FROM clause may nest (each level is one recursion here).
const MAX_NESTING: usize = 32;

/// Whether `select`'s FROM holds a parenthesized join.
pub(crate) fn has_nested(select: &ast::Select) -> bool {
    select.from.iter().any(|t| matches!(t.relation, TableFactor::NestedJoin { .. }) || t.joins.iter().any(|j| matches!(j.relation, TableFactor::NestedJoin { .. })))
}

/// `select` with its parenthesized joins flattened (see the module doc), or 1235.
pub(crate) fn flatten(select: &ast::Select) -> Result<ast::Select, Error> {
    let mut extra = Vec::new();
    let mut from = Vec::with_capacity(select.from.len());
    for twj in &select.from {
        from.push(flatten_item(twj, &mut extra, 0)?);
    }
    let mut flat = select.clone();
    flat.from = from;
    for condition in extra {
        flat.selection = Some(match flat.selection.take() {
            None => condition,
            Some(w) => ast::Expr::BinaryOp { left: Box::new(nested(w)), op: ast::BinaryOperator::And, right: Box::new(nested(condition)) },
        });
    }
    Ok(flat)
}

fn nested(e: ast::Expr) -> ast::Expr {
    match e {
        ast::Expr::Nested(_) | ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_) => e,
        other => ast::Expr::Nested(Box::new(other)),
    }
}

fn inner_join(op: &JoinOperator) -> Option<&JoinConstraint> {
    match op {
        JoinOperator::Join(c) | JoinOperator::Inner(c) | JoinOperator::CrossJoin(c) => Some(c),
        _ => None,
    }
}

/// One FROM item as a join sequence without parentheses; inner-join ON conditions that had to
/// move go to `extra` (WHERE conjuncts).
fn flatten_item(twj: &TableWithJoins, extra: &mut Vec<ast::Expr>, depth: usize) -> Result<TableWithJoins, Error> {
    if depth > MAX_NESTING {
        return Err(Error::not_supported(format!("parenthesized joins nested more than {MAX_NESTING} deep")));
    }
    let mut out = match &twj.relation {
        TableFactor::NestedJoin { table_with_joins, alias } => {
            if alias.is_some() {
                return Err(Error::not_supported("an alias on a parenthesized join"));
            }
            flatten_item(table_with_joins, extra, depth + 1)?
        }
        other => TableWithJoins { relation: other.clone(), joins: Vec::new() },
    };
    for join in &twj.joins {
        let TableFactor::NestedJoin { table_with_joins, alias } = &join.relation else {
            out.joins.push(join.clone());
            continue;
        };
        if alias.is_some() {
            return Err(Error::not_supported("an alias on a parenthesized join"));
        }
        let inner = flatten_item(table_with_joins, extra, depth + 1)?;
        if inner.joins.is_empty() {
            // `a JOIN (b) ON …`: parentheses around one table.
            out.joins.push(ast::Join { relation: inner.relation, global: join.global, join_operator: join.join_operator.clone() });
            continue;
        }
        let condition = match inner_join(&join.join_operator) {
            Some(JoinConstraint::On(e)) => Some(e.clone()),
            Some(JoinConstraint::None) => None,
            Some(_) => return Err(Error::not_supported("USING or NATURAL with a parenthesized join")),
            None => return Err(Error::not_supported("a parenthesized join on the right of an outer join")),
        };
        out.joins.push(ast::Join { relation: inner.relation, global: join.global, join_operator: JoinOperator::CrossJoin(JoinConstraint::None) });
        out.joins.extend(inner.joins);
        extra.extend(condition);
    }
    Ok(out)
}
