//! Choosing how to read one table: the access path.
//!
//! Given the conditions on one table alone (compiled over its own columns), the planner picks,
//! in this order of preference (MySQL's `const`, `ref`/`range`, `ALL`):
//!
//! 1. **Primary key** ([`Node::Get`]): every primary-key column pinned to a value known before
//!    the rows are read (`id = 5`, `id = ?`, `id IN (…)`): one `Get` per node group holding a
//!    key, nothing else.
//! 2. **Unique index** ([`Node::UniqueGet`]): every column of a Ready unique index pinned. The
//!    index's hidden table, partitioned by the unique key, gives the primary key (one round
//!    trip to one node group), then the row is read by primary key (a second one): at most
//!    two node-group round trips, as NDB's unique index access.
//! 3. **Ordered index** ([`Node::IndexScan`]): the longest prefix of a Ready ordered index
//!    pinned by equalities (`IN` lists give several ranges), then a range on the next column
//!    (`<`, `<=`, `>`, `>=`, `BETWEEN`). Every node group scans its partitions' index entries
//!    in the ranges, with the table's conditions pushed as a filter.
//! 4. **Scan** ([`Node::Scan`]): every node group scans its partitions, conditions pushed.
//!
//! Index ranges only narrow what is read: the conditions they come from stay in the pushed
//! filter (or in a filter above a lookup), so a bound that cannot be expressed exactly in the
//! index's key encoding (a `1.5` bound on an INT column, a string compared under another
//! collation, a value of an incompatible kind) is simply left open, never wrong.

use std::sync::Arc;

use cairn_common::catalog::{IndexDef, IndexKind, TableDef};
use cairn_common::collation::Collation;
use cairn_common::error::Error;
use cairn_common::expr::{CmpOp, Expr};
use cairn_common::functions::Func;
use cairn_common::types::ColumnType;

use crate::plan::{JoinKind, Node};
use crate::types::{Kind, SqlType};

/// Most primary keys one lookup plan may carry (an IN list times other key columns' lists);
/// beyond it the planner scans instead.
pub(crate) const MAX_LOOKUP_KEYS: usize = 4096;

/// One range of an ordered index, as planned: values known when the statement runs.
#[derive(Clone, Debug)]
pub(crate) struct IndexRange {
    /// Values of the first index columns (equalities), in index order.
    pub eq: Vec<Expr>,
    /// A bound on the next index column: the value and whether it is inclusive.
    pub low: Option<(Expr, bool)>,
    pub high: Option<(Expr, bool)>,
}

/// How a lookup join reaches the inner table's rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LookupVia {
    /// By primary key (`eq_ref`).
    Primary,
    /// By a unique index (`eq_ref`): its id.
    Unique(u32),
    /// By an ordered index's leading columns (`ref`): its id; the key gives that many columns.
    Ordered(u32),
}

/// How good an access is, best first (for join ordering and EXPLAIN's `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum AccessRank {
    /// Primary or unique key pinned by constants.
    Const,
    /// Primary or unique key pinned by constants and columns of tables read before.
    EqRef,
    /// Leading columns of an ordered index pinned.
    Ref,
    /// A range of an ordered index.
    Range,
    /// A scan with a pushed condition.
    Filtered,
    /// A scan of everything.
    All,
}

/// Whether an expression's value is known before the rows are read (no column, no per-row
/// randomness).
pub(crate) fn is_row_independent(e: &Expr) -> bool {
    let mut ok = e.columns().is_empty();
    e.walk(&mut |x| {
        if let Expr::Call { func: Func::Rand | Func::Uuid, .. } = x {
            ok = false;
        }
    });
    ok
}

/// Whether values of an expression's kind can be looked up as keys of a column of type `ty`
/// (MySQL compares a number with a string column numerically, which no key lookup does).
pub(crate) fn key_kind_compatible(ty: &ColumnType, value: &SqlType) -> bool {
    let kind = value.kind();
    match ty {
        ColumnType::Int { .. } | ColumnType::Year | ColumnType::Decimal { .. } => {
            matches!(kind, Kind::Int { .. } | Kind::Decimal { .. } | Kind::String { .. })
        }
        ColumnType::Float | ColumnType::Double => false,
        ColumnType::Char { .. }
        | ColumnType::VarChar { .. }
        | ColumnType::Lob { .. }
        | ColumnType::Enum { .. }
        | ColumnType::Set { .. } => {
            matches!(kind, Kind::String { .. })
        }
        ColumnType::Date | ColumnType::DateTime { .. } | ColumnType::Timestamp { .. } | ColumnType::Time { .. } => {
            matches!(kind, Kind::String { .. } | Kind::Temporal)
        }
    }
}

/// The static type of a key-candidate expression, for the compatibility check (literals and
/// parameters; anything else counts as a string, which keeps the lookup with its fallback).
pub(crate) fn candidate_type(e: &Expr) -> SqlType {
    match e {
        Expr::Literal(v) => crate::compile::value_type(v),
        Expr::Neg(inner) => candidate_type(inner),
        _ => SqlType::varchar(0, false, true),
    }
}

/// Conditions a data node can evaluate (no per-row randomness, which must be drawn once per
/// row on the SQL node), and should: an IN list longer than
/// [`crate::exec::MAX_PUSHED_IN_ITEMS`] stays on the SQL node (see there).
pub(crate) fn is_pushable(e: &Expr) -> bool {
    let mut ok = true;
    e.walk(&mut |x| match x {
        Expr::Call { func: Func::Rand | Func::Uuid, .. } => ok = false,
        Expr::InList { list, .. } if list.len() > crate::exec::MAX_PUSHED_IN_ITEMS => ok = false,
        _ => {}
    });
    ok
}

/// Equality candidates per column: the condition's position and its values (one, or an IN
/// list). The shortest list wins when a column has several.
fn const_bindings(def: &TableDef, conditions: &[Expr]) -> Vec<Option<(usize, Vec<Expr>)>> {
    let mut chosen: Vec<Option<(usize, Vec<Expr>)>> = vec![None; def.columns.len()];
    for (ci, cond) in conditions.iter().enumerate() {
        let candidate = match cond {
            Expr::Compare { op: CmpOp::Eq | CmpOp::NullSafeEq, left, right, .. } => match (left.as_ref(), right.as_ref()) {
                (Expr::Column(c), v) if is_row_independent(v) => Some((*c as usize, vec![v.clone()])),
                (v, Expr::Column(c)) if is_row_independent(v) => Some((*c as usize, vec![v.clone()])),
                _ => None,
            },
            // `IN (subquery)` is planned as a one-parameter list filled in at execution; it is
            // not a key list.
            Expr::InList { arg, list, negated: false, .. } => match arg.as_ref() {
                Expr::Column(c) if list.iter().all(is_row_independent) && !(list.len() == 1 && matches!(list[0], Expr::Param(_))) => {
                    Some((*c as usize, list.clone()))
                }
                _ => None,
            },
            _ => None,
        };
        let Some((column, values)) = candidate else { continue };
        let Some(col) = def.columns.get(column) else { continue };
        if !values.iter().all(|v| key_kind_compatible(&col.ty, &candidate_type(v))) {
            continue;
        }
        let better = match &chosen[column] {
            None => true,
            Some((_, existing)) => values.len() < existing.len(),
        };
        if better {
            chosen[column] = Some((ci, values));
        }
    }
    chosen
}

/// The cross product of the candidate values of `columns`, if every column has some and the
/// product is small enough.
fn key_product(bindings: &[Option<(usize, Vec<Expr>)>], columns: &[usize]) -> Option<(Vec<Vec<Expr>>, Vec<usize>)> {
    let mut keys: Vec<Vec<Expr>> = vec![Vec::new()];
    let mut used = Vec::with_capacity(columns.len());
    for &c in columns {
        let (ci, values) = bindings.get(c)?.as_ref()?;
        if keys.len().saturating_mul(values.len()) > MAX_LOOKUP_KEYS {
            return None;
        }
        keys = keys
            .into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut k = prefix.clone();
                    k.push(v.clone());
                    k
                })
            })
            .collect();
        used.push(*ci);
    }
    Some((keys, used))
}

/// Unique indexes queries may use.
pub(crate) fn ready_unique(def: &TableDef) -> impl Iterator<Item = &IndexDef> {
    def.indexes.iter().filter(|ix| ix.kind == IndexKind::Unique && ix.is_ready() && ix.table.is_some())
}

/// Ordered indexes queries may use.
pub(crate) fn ready_ordered(def: &TableDef) -> impl Iterator<Item = &IndexDef> {
    def.indexes.iter().filter(|ix| ix.kind == IndexKind::Ordered && ix.is_ready())
}

/// A chosen ordered-index access.
pub(crate) struct OrderedChoice {
    pub index: u32,
    pub ranges: Vec<IndexRange>,
    /// Index columns pinned by equalities.
    pub eq_len: usize,
    pub has_range: bool,
}

/// A bound on a column from a comparison with a row-independent value: (column, value, is the
/// bound low, inclusive, comparison collation).
fn bound_of(cond: &Expr) -> Vec<(usize, Expr, bool, bool, Collation)> {
    match cond {
        Expr::Compare { op, left, right, collation } => {
            let (column, value, flipped) = match (left.as_ref(), right.as_ref()) {
                (Expr::Column(c), v) if is_row_independent(v) => (*c as usize, v.clone(), false),
                (v, Expr::Column(c)) if is_row_independent(v) => (*c as usize, v.clone(), true),
                _ => return Vec::new(),
            };
            // `col op value`, or `value op col` read the other way round.
            let (low, inclusive) = match (op, flipped) {
                (CmpOp::Gt, false) | (CmpOp::Lt, true) => (true, false),
                (CmpOp::Ge, false) | (CmpOp::Le, true) => (true, true),
                (CmpOp::Lt, false) | (CmpOp::Gt, true) => (false, false),
                (CmpOp::Le, false) | (CmpOp::Ge, true) => (false, true),
                _ => return Vec::new(),
            };
            vec![(column, value, low, inclusive, *collation)]
        }
        Expr::Between { arg, low, high, negated: false, collation } => match arg.as_ref() {
            Expr::Column(c) if is_row_independent(low) && is_row_independent(high) => {
                vec![(*c as usize, low.as_ref().clone(), true, true, *collation), (*c as usize, high.as_ref().clone(), false, true, *collation)]
            }
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Whether a range bound on a column can be expressed in its index encoding: the value's kind
/// must be comparable as a key, and strings must be compared under the column's collation (the
/// index's order).
fn range_usable(def: &TableDef, column: usize, value: &Expr, collation: Collation) -> bool {
    let col = &def.columns[column];
    if !key_kind_compatible(&col.ty, &candidate_type(value)) {
        return false;
    }
    !col.ty.is_string() || collation == col.comparison()
}

/// The best ordered-index access for conditions on one table, if any index helps.
pub(crate) fn choose_ordered(def: &TableDef, conditions: &[Expr]) -> Option<OrderedChoice> {
    let bindings = const_bindings(def, conditions);
    let bounds: Vec<(usize, Expr, bool, bool, Collation)> = conditions.iter().flat_map(bound_of).collect();
    let mut best: Option<OrderedChoice> = None;
    for ix in ready_ordered(def) {
        // The longest pinned prefix whose key product stays small.
        let mut eq_len = 0;
        while eq_len < ix.columns.len() && key_product(&bindings, &ix.columns[..=eq_len]).is_some() {
            eq_len += 1;
        }
        let prefixes = key_product(&bindings, &ix.columns[..eq_len]).map(|(k, _)| k).unwrap_or_else(|| vec![Vec::new()]);
        let (mut low, mut high) = (None, None);
        if let Some(&next) = ix.columns.get(eq_len) {
            for (column, value, is_low, inclusive, collation) in &bounds {
                if *column != next || !range_usable(def, next, value, *collation) {
                    continue;
                }
                if *is_low && low.is_none() {
                    low = Some((value.clone(), *inclusive));
                } else if !*is_low && high.is_none() {
                    high = Some((value.clone(), *inclusive));
                }
            }
        }
        let has_range = low.is_some() || high.is_some();
        if eq_len == 0 && !has_range {
            continue;
        }
        let better = match &best {
            None => true,
            Some(b) => (eq_len, has_range) > (b.eq_len, b.has_range),
        };
        if better {
            let ranges = prefixes.into_iter().map(|eq| IndexRange { eq, low: low.clone(), high: high.clone() }).collect();
            best = Some(OrderedChoice { index: ix.id, ranges, eq_len, has_range });
        }
    }
    best
}

/// How the conditions of one table alone would let it be read.
pub(crate) fn rank_const_access(def: &TableDef, conditions: &[Expr]) -> AccessRank {
    let bindings = const_bindings(def, conditions);
    if !def.hidden_primary_key && key_product(&bindings, &def.primary_key).is_some() {
        return AccessRank::Const;
    }
    if ready_unique(def).any(|ix| key_product(&bindings, &ix.columns).is_some()) {
        return AccessRank::Const;
    }
    match choose_ordered(def, conditions) {
        Some(c) if c.eq_len > 0 => AccessRank::Ref,
        Some(_) => AccessRank::Range,
        None if conditions.is_empty() => AccessRank::All,
        None => AccessRank::Filtered,
    }
}

/// How a table could be read once the tables before it are read: `joined` are its columns
/// pinned by equalities with their columns.
pub(crate) fn rank_join_access(def: &TableDef, conditions: &[Expr], joined: &[usize]) -> AccessRank {
    let constant = rank_const_access(def, conditions);
    if constant == AccessRank::Const {
        return constant;
    }
    let bindings = const_bindings(def, conditions);
    let pinned = |c: &usize| joined.contains(c) || bindings[*c].as_ref().is_some_and(|(_, v)| v.len() == 1);
    if !def.hidden_primary_key && def.primary_key.iter().all(pinned) {
        return AccessRank::EqRef;
    }
    if ready_unique(def).any(|ix| ix.columns.iter().all(pinned)) {
        return AccessRank::EqRef;
    }
    if ready_ordered(def).any(|ix| ix.columns.first().is_some_and(|c| joined.contains(c))) {
        return AccessRank::Ref.min(constant);
    }
    constant
}

/// Chooses how to read one table given the conditions on it alone (over its own columns).
pub(crate) fn plan_access(def: Arc<TableDef>, alias: &str, conditions: Vec<Expr>, _kind: JoinKind) -> Result<Node, Error> {
    let alias: Arc<str> = alias.into();
    let bindings = const_bindings(&def, &conditions);
    // 1. The primary key.
    if !def.hidden_primary_key {
        if let Some((keys, used)) = key_product(&bindings, &def.primary_key) {
            let fallback = Expr::conjunction(conditions.clone());
            let residual: Vec<Expr> = conditions.into_iter().enumerate().filter(|(i, _)| !used.contains(i)).map(|(_, e)| e).collect();
            let get = Node::Get { table: def, alias, keys, fallback };
            return Ok(match Expr::conjunction(residual) {
                Some(predicate) => Node::Filter { input: Box::new(get), predicate },
                None => get,
            });
        }
    }
    // 2. A unique index. Every condition is checked again above the lookup: the index entry
    // only points at the row.
    let unique = ready_unique(&def).find_map(|ix| key_product(&bindings, &ix.columns).map(|(keys, _)| (ix.id, keys)));
    if let Some((index, keys)) = unique {
        let fallback = Expr::conjunction(conditions.clone());
        let get = Node::UniqueGet { table: def, alias, index, keys, fallback: fallback.clone() };
        return Ok(match fallback {
            Some(predicate) => Node::Filter { input: Box::new(get), predicate },
            None => get,
        });
    }
    // 3. An ordered index, and 4. a scan: conditions a data node can evaluate go down.
    let (pushed, kept): (Vec<Expr>, Vec<Expr>) = conditions.iter().cloned().partition(is_pushable);
    let projection = (0..def.columns.len() as u32).collect();
    let access = match choose_ordered(&def, &pushed) {
        Some(choice) => Node::IndexScan {
            table: def,
            alias,
            index: choice.index,
            ranges: choice.ranges,
            descending: false,
            ordered: false,
            filter: Expr::conjunction(pushed),
            projection,
            limit: None,
        },
        None => Node::Scan { table: def, alias, filter: Expr::conjunction(pushed), projection, limit: None },
    };
    Ok(match Expr::conjunction(kept) {
        Some(predicate) => Node::Filter { input: Box::new(access), predicate },
        None => access,
    })
}
