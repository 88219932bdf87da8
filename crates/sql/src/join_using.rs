//! `JOIN … USING (cols)` and `NATURAL JOIN`: MySQL's coalesced join columns.
//!
//! MySQL gives a USING or NATURAL join one column per common name (the coalesced column)
//! instead of both tables' columns: `SELECT *` shows the coalesced columns first, in the order
//! of the first (left) operand, then the left operand's other columns, then the right
//! operand's; an unqualified name means the coalesced column; `t.col` still names each table's
//! own column (and `t.*` shows all of `t`'s columns).
//!
//! The planner does not compute `COALESCE(l.c, r.c)`: in an inner or LEFT join, a joined row
//! has `l.c = r.c` or a null-extended right side, so the coalesced value is always the left
//! column's; in a RIGHT join (planned as a LEFT join with the sides swapped) it is the right
//! column's. So the coalesced column *is* the preserved side's column, and the other side's
//! column is hidden from unqualified names and from `*` (the scope's `hidden` flag). The join
//! condition is `l.c = r.c` for each common name, written as an ON expression over the two
//! tables' aliases.
//!
//! Left out: `USING (…) AS alias` (1235), and the case where the type of the coalesced column
//! of an inner join would differ from the left column's (MySQL types it over both columns).

use sqlparser::ast;

use cairn_common::error::Error;
use cairn_common::{bail, err};

use crate::compile::Scope;

/// The constraint of a USING or NATURAL join, resolved against the scope.
pub(crate) struct Coalesced {
    /// The join condition (`l.c = r.c AND …`), or `None` for a NATURAL join without common
    /// columns (a cross join).
    pub on: Option<ast::Expr>,
    /// The join's visible columns in `SELECT *` order (scope positions).
    pub visible: Vec<usize>,
    /// Columns that the coalescing hides (from `*` and unqualified names).
    pub hide: Vec<usize>,
}

/// Which columns a USING or NATURAL join matches.
pub(crate) enum Matching<'q> {
    Using(&'q [ast::ObjectName]),
    Natural,
}

/// Resolves a USING or NATURAL join of the left operand (its visible columns, in `*` order)
/// with the right table (scope positions `right`). With `right_join`, the right side is the
/// preserved one and its columns come first.
pub(crate) fn coalesce(
    scope: &Scope,
    left_visible: &[usize],
    right: std::ops::Range<usize>,
    matching: Matching<'_>,
    right_join: bool,
) -> Result<Coalesced, Error> {
    let right_visible: Vec<usize> = right.filter(|&i| !scope.columns[i].hidden).collect();
    let find = |among: &[usize], name: &str| -> Result<Option<usize>, Error> {
        let mut found = None;
        for &i in among {
            if scope.columns[i].name.eq_ignore_ascii_case(name) {
                if found.is_some() {
                    bail!(AmbiguousColumn, "Column '{name}' in from clause is ambiguous");
                }
                found = Some(i);
            }
        }
        Ok(found)
    };
    // The common names, as (left column, right column) pairs.
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    match matching {
        Matching::Using(names) => {
            for name in names {
                let name = match name.0.as_slice() {
                    [ast::ObjectNamePart::Identifier(i)] => i.value.clone(),
                    _ => return Err(crate::lexer::syntax_error_near(&name.to_string(), 1)),
                };
                let missing = || err!(UnknownColumn, "Unknown column '{name}' in 'from clause'");
                let l = find(left_visible, &name)?.ok_or_else(missing)?;
                let r = find(&right_visible, &name)?.ok_or_else(missing)?;
                if pairs.iter().any(|&(pl, _)| pl == l) {
                    bail!(AmbiguousColumn, "Column '{name}' in from clause is ambiguous");
                }
                pairs.push((l, r));
            }
        }
        Matching::Natural => {
            for &r in &right_visible {
                if let Some(l) = find(left_visible, &scope.columns[r].name)? {
                    pairs.push((l, r));
                }
            }
        }
    }
    // The coalesced columns follow the first operand's order: the left one's, or the right
    // one's in a RIGHT join.
    if right_join {
        pairs.sort_by_key(|&(_, r)| r);
    } else {
        pairs.sort_by_key(|&(l, _)| left_visible.iter().position(|&v| v == l));
    }
    let column_ref = |i: usize| -> Result<ast::Expr, Error> {
        let c = &scope.columns[i];
        let table = c.table.clone().ok_or_else(|| Error::internal("a joined column without its table"))?;
        Ok(ast::Expr::CompoundIdentifier(vec![ast::Ident::new(table), ast::Ident::new(c.name.clone())]))
    };
    let mut on: Option<ast::Expr> = None;
    for &(l, r) in &pairs {
        let eq = ast::Expr::BinaryOp { left: Box::new(column_ref(l)?), op: ast::BinaryOperator::Eq, right: Box::new(column_ref(r)?) };
        on = Some(match on {
            None => eq,
            Some(prev) => ast::Expr::BinaryOp { left: Box::new(prev), op: ast::BinaryOperator::And, right: Box::new(eq) },
        });
    }
    let kept: Vec<usize> = pairs.iter().map(|&(l, r)| if right_join { r } else { l }).collect();
    let hide: Vec<usize> = pairs.iter().map(|&(l, r)| if right_join { l } else { r }).collect();
    let rest_left = left_visible.iter().copied().filter(|i| !pairs.iter().any(|&(l, _)| l == *i));
    let rest_right = right_visible.iter().copied().filter(|i| !pairs.iter().any(|&(_, r)| r == *i));
    let mut visible = kept;
    if right_join {
        visible.extend(rest_right);
        visible.extend(rest_left);
    } else {
        visible.extend(rest_left);
        visible.extend(rest_right);
    }
    Ok(Coalesced { on, visible, hide })
}
