//! Window functions: `f(…) OVER ([PARTITION BY …] [ORDER BY …] [frame])`.
//!
//! A window function computes, for every row of a query's result, a value over a set of rows
//! related to it (its *partition*, ordered, and within it a *frame*), without folding the rows
//! together as GROUP BY does. As in MySQL, window functions are evaluated on the SQL node after
//! FROM, WHERE, GROUP BY and HAVING, and before the select list is projected, DISTINCT and the
//! query's ORDER BY and LIMIT: they see the rows HAVING let through, and the query may sort by
//! their results.
//!
//! ## How a query with window functions is planned
//!
//! `plan_projection` (plan.rs) first [`collect`]s the window calls of the select list and
//! ORDER BY (not those inside subqueries, aggregates or other window calls, which are errors),
//! then compiles each call's arguments, PARTITION BY and ORDER BY over the rows the window
//! sees: the FROM row (plus correlated subquery results), or in an aggregate query the
//! aggregation's output row, so `RANK() OVER (ORDER BY SUM(x))` works. Each call gets a
//! [`WindowSlot`]; when the select list or ORDER BY is then compiled, a reference to the call
//! ([`reference`]) becomes a placeholder column `WINDOW_COLUMN_BASE + k`, renumbered at the end
//! to the column the [`Node::Window`](crate::plan::Node::Window) operator appends for call k.
//!
//! ## How it runs
//!
//! The Window operator materializes its input (bounded by `max_materialized_rows`), and for each
//! call sorts the rows by (partition keys, order keys), stably, and computes the call partition
//! by partition. Rows come out in the order of the last call's sort, as MySQL's do; only an
//! ORDER BY of the query guarantees an order.
//!
//! - ROW_NUMBER, RANK, DENSE_RANK, PERCENT_RANK, CUME_DIST, NTILE, LAG and LEAD look at the
//!   partition and the order only (a frame does not change them).
//! - COUNT, SUM, AVG, MIN, MAX, BIT_AND/OR/XOR, FIRST_VALUE, LAST_VALUE and NTH_VALUE are computed
//!   over the frame. Without a frame clause MySQL's default applies: with ORDER BY, `RANGE
//!   BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW` (up to the current row's last peer: rows with
//!   equal order keys get the same value); without it, the whole partition.
//! - Explicit frames: `ROWS` with `UNBOUNDED PRECEDING`, `n PRECEDING`, `CURRENT ROW`,
//!   `n FOLLOWING`, `UNBOUNDED FOLLOWING` (n a constant), and `RANGE` with UNBOUNDED and CURRENT
//!   ROW bounds. Aggregates over frames that start at the partition's first row are computed
//!   incrementally; sliding frames recompute each row's frame (cost rows × frame length).
//!
//! Left out (1235 "not supported"): `RANGE` frames with value offsets (`RANGE 5 PRECEDING`,
//! `INTERVAL` bounds), `GROUPS` frames, `EXCLUDE`, `IGNORE NULLS`, `FROM LAST`, `DISTINCT` in a
//! window aggregate (MySQL refuses it too), GROUP_CONCAT and the JSON aggregates as window
//! functions.

use std::cmp::Ordering;

use sqlparser::ast::{self, FunctionArg, FunctionArgExpr, FunctionArguments};

use cairn_common::collation::Collation;
use cairn_common::error::{Error, ErrorKind};
use cairn_common::expr::Expr;
use cairn_common::{Value, bail};

use crate::backend::Backend;
use crate::compile::{AggregateCall, AggregateFunc, Compiler};
use crate::exec::{AggSlot, Exec, INTERRUPT_CHECK_ROWS};
use crate::plan::SortKey;
use crate::types::SqlType;

type Row = Vec<Value>;

/// Placeholder column numbers for window results while a select is compiled: call k is
/// `WINDOW_COLUMN_BASE + k` until the planner knows the width of the rows the Window operator
/// reads. No real row is this wide (rows are bounded by the 4,096-column table limit).
pub(crate) const WINDOW_COLUMN_BASE: u32 = 1 << 30;

/// The most window calls one select may hold (each one sorts the result rows once).
const MAX_WINDOW_CALLS: usize = 64;

/// A window call of the select being planned: which AST node it is and its result type.
#[derive(Clone, Debug)]
pub(crate) struct WindowSlot {
    /// The address of the call's `ast::Function` node (the compiler meets the same nodes).
    address: usize,
    ty: SqlType,
}

/// One frame bound, as positions relative to the current row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameBound {
    UnboundedPreceding,
    /// `n PRECEDING`: n rows before (ROWS only).
    Preceding(u64),
    /// The current row (ROWS), or its first/last peer (RANGE).
    CurrentRow,
    Following(u64),
    UnboundedFollowing,
}

/// Which rows of the partition a frame-aware function sees for a given row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    /// ROWS (physical rows) or RANGE (peer groups: rows with equal ORDER BY keys).
    pub rows: bool,
    pub start: FrameBound,
    pub end: FrameBound,
}

impl Frame {
    /// MySQL's frame when none is written: RANGE UNBOUNDED PRECEDING to CURRENT ROW, which
    /// without ORDER BY (every row a peer of every other) is the whole partition.
    const DEFAULT: Frame = Frame { rows: false, start: FrameBound::UnboundedPreceding, end: FrameBound::CurrentRow };
}

/// What a window call computes.
#[derive(Clone, Debug)]
pub(crate) enum WindowFunc {
    RowNumber,
    Rank,
    DenseRank,
    PercentRank,
    CumeDist,
    /// NTILE(n): n is evaluated on the partition's first row and must be a positive integer.
    Ntile(Expr),
    /// LAG (negative offset) and LEAD (positive): the value `offset` rows away in the
    /// partition, or `default` (over the current row) past its end.
    Shift { value: Expr, offset: i64, default: Option<Expr> },
    FirstValue(Expr),
    LastValue(Expr),
    /// NTH_VALUE(expr, n): the frame's n-th row (1-based).
    NthValue(Expr, u64),
    Aggregate(AggregateCall),
}

/// One window function call, over the rows the Window operator reads.
#[derive(Clone, Debug)]
pub(crate) struct WindowCall {
    pub func: WindowFunc,
    pub partition: Vec<(Expr, Collation)>,
    pub order: Vec<SortKey>,
    pub frame: Frame,
}

impl WindowCall {
    /// Calls `f` on every expression of the call (for binding, renumbering and pruning).
    pub(crate) fn for_each_expr(&mut self, f: &mut dyn FnMut(&mut Expr)) {
        match &mut self.func {
            WindowFunc::RowNumber | WindowFunc::Rank | WindowFunc::DenseRank | WindowFunc::PercentRank | WindowFunc::CumeDist => {}
            WindowFunc::Ntile(e) | WindowFunc::FirstValue(e) | WindowFunc::LastValue(e) | WindowFunc::NthValue(e, _) => f(e),
            WindowFunc::Shift { value, default, .. } => {
                f(value);
                if let Some(d) = default {
                    f(d);
                }
            }
            WindowFunc::Aggregate(call) => call.args.iter_mut().for_each(&mut *f),
        }
        self.partition.iter_mut().for_each(|(e, _)| f(e));
        self.order.iter_mut().for_each(|k| f(&mut k.expr));
    }

    /// The columns of the input row the call reads.
    pub(crate) fn columns(&self) -> Vec<u32> {
        let mut copy = self.clone();
        let mut out = Vec::new();
        copy.for_each_expr(&mut |e| out.extend(e.columns()));
        out
    }
}

fn invalid_use(f: &ast::Function) -> Error {
    Error::new(
        ErrorKind::WindowInvalidUse,
        format!("You cannot use the window function '{}' in this context.'", f.name.to_string().to_ascii_lowercase()),
    )
}

/// Compiles a window call met in an expression: the placeholder column of its result if the
/// select being planned collected it, else 3593 (a window call in WHERE, GROUP BY, HAVING, or
/// inside an aggregate's or another window call's arguments).
pub(crate) fn reference(comp: &mut Compiler<'_, '_, '_>, f: &ast::Function) -> Result<(Expr, SqlType), Error> {
    let address = f as *const ast::Function as usize;
    match comp.ctx.windows.iter().position(|w| w.address == address) {
        Some(k) if comp.allow_aggregates => Ok((Expr::Column(WINDOW_COLUMN_BASE + k as u32), comp.ctx.windows[k].ty.clone())),
        _ => Err(invalid_use(f)),
    }
}

/// The window calls in `exprs`, outermost first, not looking inside subqueries (planned on
/// their own), aggregate calls or window calls (where a window call is an error).
pub(crate) fn collect<'q>(exprs: &[&'q ast::Expr]) -> Vec<&'q ast::Function> {
    let mut found = Vec::new();
    let mut stack: Vec<&'q ast::Expr> = exprs.iter().rev().copied().collect();
    while let Some(e) = stack.pop() {
        let mut children: Vec<&'q ast::Expr> = Vec::new();
        match e {
            ast::Expr::Function(f) if f.over.is_some() => {
                found.push(f);
                continue;
            }
            ast::Expr::Function(f) => {
                if crate::compile::aggregate_func(&f.name.to_string()).is_some() {
                    continue;
                }
                if let FunctionArguments::List(list) = &f.args {
                    for a in &list.args {
                        if let FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) | FunctionArg::Named { arg: FunctionArgExpr::Expr(x), .. } = a {
                            children.push(x);
                        }
                    }
                }
            }
            ast::Expr::BinaryOp { left, right, .. } => children.extend([left.as_ref(), right.as_ref()]),
            ast::Expr::UnaryOp { expr, .. }
            | ast::Expr::Nested(expr)
            | ast::Expr::IsNull(expr)
            | ast::Expr::IsNotNull(expr)
            | ast::Expr::IsTrue(expr)
            | ast::Expr::IsFalse(expr)
            | ast::Expr::IsNotTrue(expr)
            | ast::Expr::IsNotFalse(expr)
            | ast::Expr::Cast { expr, .. }
            | ast::Expr::Floor { expr, .. }
            | ast::Expr::Ceil { expr, .. }
            | ast::Expr::Collate { expr, .. } => children.push(expr),
            ast::Expr::Between { expr, low, high, .. } => children.extend([expr.as_ref(), low.as_ref(), high.as_ref()]),
            ast::Expr::In { expr, target, .. } => {
                children.push(expr);
                if let ast::InTarget::List(list) = target {
                    children.extend(list.iter());
                }
            }
            ast::Expr::Like { expr, pattern, .. } | ast::Expr::ILike { expr, pattern, .. } => children.extend([expr.as_ref(), pattern.as_ref()]),
            ast::Expr::Case { operand, conditions, else_result, .. } => {
                children.extend(operand.as_deref());
                for w in conditions {
                    children.extend([&w.condition, &w.result]);
                }
                children.extend(else_result.as_deref());
            }
            ast::Expr::Tuple(items) => children.extend(items.iter()),
            // Anything else holds no window call, or one this walk does not reach: compiling it
            // then fails with 3593, never with a wrong result.
            _ => {}
        }
        stack.extend(children.into_iter().rev());
    }
    found
}

/// Resolves `OVER w` / `OVER (w …)` against the select's WINDOW clause into one spec:
/// PARTITION BY from the named window, ORDER BY from whichever has one, the frame from the
/// referencing spec if it has one.
fn resolve_spec(over: &ast::WindowType, named: &[ast::NamedWindowDefinition]) -> Result<ast::WindowSpec, Error> {
    let mut spec = match over {
        ast::WindowType::WindowSpec(spec) => spec.clone(),
        ast::WindowType::NamedWindow(name) => {
            ast::WindowSpec { window_name: Some(name.clone()), partition_by: Vec::new(), order_by: Vec::new(), window_frame: None }
        }
    };
    // Each step follows one name; a cycle ends at the bound.
    for _ in 0..=named.len() {
        let Some(name) = spec.window_name.take() else { return Ok(spec) };
        let Some(def) = named.iter().find(|d| d.0.value.eq_ignore_ascii_case(&name.value)) else {
            bail!(WindowNoSuchWindow, "Window name '{}' is not defined.", name.value);
        };
        let base = match &def.1 {
            ast::NamedWindowExpr::WindowSpec(s) => s.clone(),
            ast::NamedWindowExpr::NamedWindow(other) => {
                ast::WindowSpec { window_name: Some(other.clone()), partition_by: Vec::new(), order_by: Vec::new(), window_frame: None }
            }
        };
        if !spec.partition_by.is_empty() {
            return Err(Error::not_supported("PARTITION BY in a window that refers to a named window"));
        }
        spec.partition_by = base.partition_by;
        if spec.order_by.is_empty() {
            spec.order_by = base.order_by;
        }
        if spec.window_frame.is_none() {
            spec.window_frame = base.window_frame;
        }
        spec.window_name = base.window_name;
    }
    Err(Error::not_supported("circular window references"))
}

/// A non-negative integer constant argument (LAG's offset, NTH_VALUE's n, frame offsets).
fn constant_count(comp: &mut Compiler<'_, '_, '_>, e: &ast::Expr, what: &str) -> Result<u64, Error> {
    let (compiled, _) = comp.compile(e)?;
    match compiled {
        Expr::Literal(Value::Int(i)) if i >= 0 => Ok(i as u64),
        Expr::Literal(Value::UInt(u)) => Ok(u),
        _ => Err(Error::new(ErrorKind::WrongArguments, format!("Incorrect arguments to {what}"))),
    }
}

fn frame_bound(comp: &mut Compiler<'_, '_, '_>, bound: &ast::WindowFrameBound, rows: bool) -> Result<FrameBound, Error> {
    Ok(match bound {
        ast::WindowFrameBound::CurrentRow => FrameBound::CurrentRow,
        ast::WindowFrameBound::Preceding(None) => FrameBound::UnboundedPreceding,
        ast::WindowFrameBound::Following(None) => FrameBound::UnboundedFollowing,
        ast::WindowFrameBound::Preceding(Some(_)) | ast::WindowFrameBound::Following(Some(_)) if !rows => {
            return Err(Error::not_supported("RANGE frames with value offsets"));
        }
        ast::WindowFrameBound::Preceding(Some(n)) => FrameBound::Preceding(constant_count(comp, n, "window frame")?),
        ast::WindowFrameBound::Following(Some(n)) => FrameBound::Following(constant_count(comp, n, "window frame")?),
    })
}

/// Plans one window call: its function, arguments, partition, order and frame, compiled with
/// `comp` (over the rows the Window operator reads).
pub(crate) fn plan_call(
    comp: &mut Compiler<'_, '_, '_>,
    f: &ast::Function,
    named: &[ast::NamedWindowDefinition],
) -> Result<(WindowCall, SqlType), Error> {
    let Some(over) = &f.over else { return Err(Error::internal("a window call without OVER")) };
    let spec = resolve_spec(over, named)?;
    if f.filter.is_some() || f.null_treatment.is_some() || !f.within_group.is_empty() {
        return Err(Error::not_supported(format!("{} with FILTER / IGNORE NULLS / WITHIN GROUP", f.name)));
    }
    let name = f.name.to_string().to_ascii_uppercase();
    let (args, star, distinct) = match &f.args {
        FunctionArguments::None => (Vec::new(), false, false),
        FunctionArguments::Subquery(_) => return Err(Error::not_supported("a subquery as function arguments")),
        FunctionArguments::List(list) => {
            if !list.clauses.is_empty() {
                return Err(Error::not_supported(format!("{name}(… {})", list.clauses[0])));
            }
            let mut args = Vec::new();
            let mut star = false;
            for a in &list.args {
                match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(e),
                    FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => star = true,
                    _ => return Err(Error::not_supported(format!("the function arguments of {name}"))),
                }
            }
            (args, star, matches!(list.duplicate_treatment, Some(ast::DuplicateTreatment::Distinct)))
        }
    };
    if distinct {
        return Err(Error::not_supported("<window function>(DISTINCT ..)"));
    }
    let arity = |n: std::ops::RangeInclusive<usize>| -> Result<(), Error> {
        if star || !n.contains(&args.len()) {
            bail!(WrongParameterCount, "Incorrect parameter count in the call to native function '{name}'");
        }
        Ok(())
    };
    let rank_type = || SqlType::bigint(false, false).with_length(21);
    let (func, ty) = match name.as_str() {
        "ROW_NUMBER" => (arity(0..=0).map(|_| WindowFunc::RowNumber)?, rank_type()),
        "RANK" => (arity(0..=0).map(|_| WindowFunc::Rank)?, rank_type()),
        "DENSE_RANK" => (arity(0..=0).map(|_| WindowFunc::DenseRank)?, rank_type()),
        "PERCENT_RANK" => (arity(0..=0).map(|_| WindowFunc::PercentRank)?, SqlType::double(false)),
        "CUME_DIST" => (arity(0..=0).map(|_| WindowFunc::CumeDist)?, SqlType::double(false)),
        "NTILE" => {
            arity(1..=1)?;
            let (n, _) = comp.compile(args[0])?;
            (WindowFunc::Ntile(n), rank_type().nullable(true))
        }
        "LAG" | "LEAD" => {
            arity(1..=3)?;
            let (value, value_ty) = comp.compile(args[0])?;
            let offset = match args.get(1) {
                Some(n) => constant_count(comp, n, &name)?,
                None => 1,
            };
            let offset = i64::try_from(offset).map_err(|_| Error::new(ErrorKind::WrongArguments, format!("Incorrect arguments to {name}")))?;
            let (default, ty) = match args.get(2) {
                Some(d) => {
                    let (d, d_ty) = comp.compile(d)?;
                    (Some(d), crate::types::common_type(&[value_ty, d_ty]).nullable(true))
                }
                None => (None, value_ty.nullable(true)),
            };
            (WindowFunc::Shift { value, offset: if name == "LAG" { -offset } else { offset }, default }, ty)
        }
        "FIRST_VALUE" | "LAST_VALUE" => {
            arity(1..=1)?;
            let (value, ty) = comp.compile(args[0])?;
            let func = if name == "FIRST_VALUE" { WindowFunc::FirstValue(value) } else { WindowFunc::LastValue(value) };
            (func, ty.nullable(true))
        }
        "NTH_VALUE" => {
            arity(2..=2)?;
            let (value, ty) = comp.compile(args[0])?;
            let n = constant_count(comp, args[1], "nth_value")?;
            if n == 0 {
                bail!(WrongArguments, "Incorrect arguments to nth_value");
            }
            (WindowFunc::NthValue(value, n), ty.nullable(true))
        }
        _ => {
            let func = match crate::compile::aggregate_func(&name) {
                Some(AggregateFunc::Count) if star => AggregateFunc::CountStar,
                Some(
                    func @ (AggregateFunc::Count
                    | AggregateFunc::Sum
                    | AggregateFunc::Avg
                    | AggregateFunc::Min
                    | AggregateFunc::Max
                    | AggregateFunc::BitAnd
                    | AggregateFunc::BitOr
                    | AggregateFunc::BitXor),
                ) => func,
                Some(_) => return Err(Error::not_supported(format!("{name} as a window function"))),
                None => return Err(Error::not_supported(format!("{name} as a window function"))),
            };
            if func == AggregateFunc::CountStar {
                if !args.is_empty() {
                    return Err(crate::lexer::syntax_error_near(&f.to_string(), 1));
                }
            } else if star || args.len() != 1 {
                return Err(crate::lexer::syntax_error_near(&f.to_string(), 1));
            }
            let mut arg_exprs = Vec::with_capacity(args.len());
            let mut arg_types = Vec::with_capacity(args.len());
            for a in &args {
                let (e, t) = comp.compile(a)?;
                arg_exprs.push(e);
                arg_types.push(t);
            }
            let ty = crate::compile::aggregate_type(func, &arg_types);
            let collation = arg_types.first().map(|t| t.collation).unwrap_or_default();
            let call = AggregateCall {
                func,
                args: arg_exprs,
                distinct: false,
                separator: String::new(),
                order: Vec::new(),
                ty: ty.clone(),
                collation,
                key: f.to_string(),
            };
            (WindowFunc::Aggregate(call), ty)
        }
    };

    let mut partition = Vec::with_capacity(spec.partition_by.len());
    for p in &spec.partition_by {
        let (e, t) = comp.compile(p)?;
        partition.push((e, t.collation));
    }
    let mut order = Vec::with_capacity(spec.order_by.len());
    for o in &spec.order_by {
        if o.options.nulls_first.is_some() {
            return Err(Error::not_supported("NULLS FIRST / NULLS LAST"));
        }
        let (e, t) = comp.compile(&o.expr)?;
        order.push(SortKey { expr: e, descending: matches!(o.options.sort, Some(ast::OrderBySort::Desc)), collation: t.collation });
    }
    let frame = match &spec.window_frame {
        None => Frame::DEFAULT,
        Some(frame) => {
            let rows = match frame.units {
                ast::WindowFrameUnits::Rows => true,
                ast::WindowFrameUnits::Range => false,
                ast::WindowFrameUnits::Groups => return Err(Error::not_supported("GROUPS frames")),
            };
            let start = frame_bound(comp, &frame.start_bound, rows)?;
            let end = match &frame.end_bound {
                Some(b) => frame_bound(comp, b, rows)?,
                None => FrameBound::CurrentRow,
            };
            // MySQL's 3584/3585-style checks: a frame cannot start after its end's kind.
            if start == FrameBound::UnboundedFollowing || end == FrameBound::UnboundedPreceding {
                return Err(crate::lexer::syntax_error_near(&format!("{} {}", frame.units, frame.start_bound), 1));
            }
            Frame { rows, start, end }
        }
    };
    Ok((WindowCall { func, partition, order, frame }, ty))
}

/// Registers the planned calls of a select so that the compiler finds them.
pub(crate) fn slots(calls: &[&ast::Function], types: Vec<SqlType>) -> Result<Vec<WindowSlot>, Error> {
    if calls.len() > MAX_WINDOW_CALLS {
        return Err(Error::not_supported(format!("more than {MAX_WINDOW_CALLS} window functions in one SELECT")));
    }
    Ok(calls.iter().zip(types).map(|(f, ty)| WindowSlot { address: *f as *const ast::Function as usize, ty }).collect())
}

// ---------------------------------------------------------------------------------------------
// Execution.

/// Computes every call over `rows` (each `input_width` columns wide) and returns the rows with
/// one more column per call, in the order of the last call's partition and order.
pub(crate) fn evaluate<B: Backend>(mut exec: Exec<B>, rows: Vec<Row>, calls: &[WindowCall], input_width: usize) -> Result<Vec<Row>, Error> {
    let mut rows: Vec<Row> = rows
        .into_iter()
        .map(|mut r| {
            r.resize(input_width, Value::Null);
            r.reserve(calls.len());
            r
        })
        .collect();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    for call in calls {
        let (sorted, partition_keys, order_keys) = sort_for(&mut exec, &rows, call)?;
        let mut results = vec![Value::Null; rows.len()];
        let mut start = 0;
        while start < sorted.len() {
            let mut end = start + 1;
            while end < sorted.len() && same(&partition_keys[sorted[start]], &partition_keys[sorted[end]], call.partition.iter().map(|p| p.1)) {
                end += 1;
            }
            let part = &sorted[start..end];
            let peers = peer_groups(part, &order_keys, call);
            compute_partition(&mut exec, &rows, part, &peers, call, &mut results)?;
            start = end;
        }
        for (row, value) in rows.iter_mut().zip(results) {
            row.push(value);
        }
        order = sorted;
    }
    let mut slots: Vec<Option<Row>> = rows.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

fn same(a: &[Value], b: &[Value], collations: impl Iterator<Item = Collation>) -> bool {
    a.iter().zip(b).zip(collations).all(|((x, y), c)| x.order_cmp(y, c) == Ordering::Equal)
}

/// The row positions sorted by (partition, order), stably, with each row's partition and
/// order key values.
#[allow(clippy::type_complexity)]
fn sort_for<B: Backend>(exec: &mut Exec<B>, rows: &[Row], call: &WindowCall) -> Result<(Vec<usize>, Vec<Vec<Value>>, Vec<Vec<Value>>), Error> {
    let mut partition_keys = Vec::with_capacity(rows.len());
    let mut order_keys = Vec::with_capacity(rows.len());
    for (n, row) in rows.iter().enumerate() {
        if n % INTERRUPT_CHECK_ROWS == INTERRUPT_CHECK_ROWS - 1 {
            exec.check_interrupted()?;
        }
        let mut p = Vec::with_capacity(call.partition.len());
        for (e, _) in &call.partition {
            p.push(exec.eval(e, row)?);
        }
        let mut o = Vec::with_capacity(call.order.len());
        for k in &call.order {
            o.push(exec.eval(&k.expr, row)?);
        }
        partition_keys.push(p);
        order_keys.push(o);
    }
    let mut sorted: Vec<usize> = (0..rows.len()).collect();
    sorted.sort_by(|&a, &b| {
        for (i, (_, collation)) in call.partition.iter().enumerate() {
            let ord = partition_keys[a][i].order_cmp(&partition_keys[b][i], *collation);
            if ord.is_ne() {
                return ord;
            }
        }
        for (i, key) in call.order.iter().enumerate() {
            let ord = order_keys[a][i].order_cmp(&order_keys[b][i], key.collation);
            let ord = if key.descending { ord.reverse() } else { ord };
            if ord.is_ne() {
                return ord;
            }
        }
        Ordering::Equal
    });
    exec.check_interrupted()?;
    Ok((sorted, partition_keys, order_keys))
}

/// For each position of a partition, the range `[first, end)` of its peer group (rows with
/// equal ORDER BY keys; without ORDER BY, the whole partition).
fn peer_groups(part: &[usize], order_keys: &[Vec<Value>], call: &WindowCall) -> Vec<(usize, usize)> {
    let mut out = vec![(0, part.len()); part.len()];
    let mut start = 0;
    while start < part.len() {
        let mut end = start + 1;
        while end < part.len() && same(&order_keys[part[start]], &order_keys[part[end]], call.order.iter().map(|k| k.collation)) {
            end += 1;
        }
        for slot in &mut out[start..end] {
            *slot = (start, end);
        }
        start = end;
    }
    out
}

/// The frame of position `i` as a half-open range of partition positions (empty when the
/// frame holds no row).
fn frame_range(frame: &Frame, i: usize, len: usize, peers: (usize, usize)) -> (usize, usize) {
    let start = match frame.start {
        FrameBound::UnboundedPreceding => 0,
        FrameBound::Preceding(n) => i.saturating_sub(usize::try_from(n).unwrap_or(usize::MAX)),
        FrameBound::CurrentRow if frame.rows => i,
        FrameBound::CurrentRow => peers.0,
        FrameBound::Following(n) => i.saturating_add(usize::try_from(n).unwrap_or(usize::MAX)).min(len),
        FrameBound::UnboundedFollowing => len,
    };
    let end = match frame.end {
        FrameBound::UnboundedPreceding => 0,
        FrameBound::Preceding(n) => match usize::try_from(n) {
            Ok(n) if n <= i => i - n + 1,
            _ => 0,
        },
        FrameBound::CurrentRow if frame.rows => i + 1,
        FrameBound::CurrentRow => peers.1,
        FrameBound::Following(n) => i.saturating_add(usize::try_from(n).unwrap_or(usize::MAX)).saturating_add(1).min(len),
        FrameBound::UnboundedFollowing => len,
    };
    if start >= end { (start, start) } else { (start, end) }
}

fn compute_partition<B: Backend>(
    exec: &mut Exec<B>,
    rows: &[Row],
    part: &[usize],
    peers: &[(usize, usize)],
    call: &WindowCall,
    results: &mut [Value],
) -> Result<(), Error> {
    let len = part.len();
    let count = |n: usize| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
    match &call.func {
        WindowFunc::RowNumber => {
            for (i, &r) in part.iter().enumerate() {
                results[r] = count(i + 1);
            }
        }
        WindowFunc::Rank => {
            for (i, &r) in part.iter().enumerate() {
                results[r] = count(peers[i].0 + 1);
            }
        }
        WindowFunc::DenseRank => {
            let mut rank = 0;
            for (i, &r) in part.iter().enumerate() {
                if peers[i].0 == i {
                    rank += 1;
                }
                results[r] = count(rank);
            }
        }
        WindowFunc::PercentRank => {
            for (i, &r) in part.iter().enumerate() {
                let value = if len <= 1 { 0.0 } else { peers[i].0 as f64 / (len - 1) as f64 };
                results[r] = Value::Double(value);
            }
        }
        WindowFunc::CumeDist => {
            for (i, &r) in part.iter().enumerate() {
                results[r] = Value::Double(peers[i].1 as f64 / len as f64);
            }
        }
        WindowFunc::Ntile(n) => {
            let buckets = match exec.eval(n, &rows[part[0]])? {
                Value::Null => None,
                v => match v.to_i64() {
                    Some(b) if b > 0 => Some(b as usize),
                    _ => bail!(WrongArguments, "Incorrect arguments to ntile"),
                },
            };
            for (i, &r) in part.iter().enumerate() {
                results[r] = match buckets {
                    None => Value::Null,
                    Some(b) => {
                        // The first len % b buckets hold one row more than the others.
                        let small = len / b;
                        let big_count = len % b;
                        let big_rows = big_count * (small + 1);
                        let bucket = if i < big_rows { i / (small + 1) } else { big_count + (i - big_rows) / small.max(1) };
                        count(bucket + 1)
                    }
                };
            }
        }
        WindowFunc::Shift { value, offset, default } => {
            for (i, &r) in part.iter().enumerate() {
                let target = i64::try_from(i).unwrap_or(i64::MAX).checked_add(*offset);
                results[r] = match target.and_then(|t| usize::try_from(t).ok()).filter(|&t| t < len) {
                    Some(t) => exec.eval(value, &rows[part[t]])?,
                    None => match default {
                        Some(d) => exec.eval(d, &rows[r])?,
                        None => Value::Null,
                    },
                };
            }
        }
        WindowFunc::FirstValue(value) | WindowFunc::LastValue(value) | WindowFunc::NthValue(value, _) => {
            for (i, &r) in part.iter().enumerate() {
                let (start, end) = frame_range(&call.frame, i, len, peers[i]);
                let pick = match &call.func {
                    WindowFunc::FirstValue(_) => (start < end).then_some(start),
                    WindowFunc::LastValue(_) => (start < end).then(|| end - 1),
                    WindowFunc::NthValue(_, n) => usize::try_from(*n).ok().and_then(|n| start.checked_add(n - 1)).filter(|&p| p < end),
                    _ => None,
                };
                results[r] = match pick {
                    Some(p) => exec.eval(value, &rows[part[p]])?,
                    None => Value::Null,
                };
            }
        }
        WindowFunc::Aggregate(agg) => {
            let grows_from_start = call.frame.start == FrameBound::UnboundedPreceding;
            let mut running = AggSlot::new(agg);
            let mut added = 0;
            for (i, &r) in part.iter().enumerate() {
                if i % INTERRUPT_CHECK_ROWS == INTERRUPT_CHECK_ROWS - 1 {
                    exec.check_interrupted()?;
                }
                let (start, end) = frame_range(&call.frame, i, len, peers[i]);
                if grows_from_start {
                    // Frames that start at the partition's first row only grow: add the new rows.
                    while added < end {
                        running.add(agg, &rows[part[added]], exec)?;
                        added += 1;
                    }
                    results[r] = if start < end { running.clone().finish(agg, exec) } else { AggSlot::new(agg).finish(agg, exec) };
                } else {
                    let mut slot = AggSlot::new(agg);
                    for &p in &part[start..end] {
                        slot.add(agg, &rows[p], exec)?;
                    }
                    results[r] = slot.finish(agg, exec);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows_frame(start: FrameBound, end: FrameBound) -> Frame {
        Frame { rows: true, start, end }
    }

    #[test]
    fn frames_are_clipped_to_the_partition() {
        let f = rows_frame(FrameBound::Preceding(1), FrameBound::Following(1));
        assert_eq!(frame_range(&f, 0, 5, (0, 1)), (0, 2));
        assert_eq!(frame_range(&f, 2, 5, (2, 3)), (1, 4));
        assert_eq!(frame_range(&f, 4, 5, (4, 5)), (3, 5));
        // A frame wholly before the partition's start is empty.
        let f = rows_frame(FrameBound::Preceding(3), FrameBound::Preceding(2));
        assert_eq!(frame_range(&f, 1, 5, (1, 2)).0, frame_range(&f, 1, 5, (1, 2)).1);
        assert_eq!(frame_range(&f, 3, 5, (3, 4)), (0, 2));
        // RANGE with CURRENT ROW reaches the current row's peers.
        assert_eq!(frame_range(&Frame::DEFAULT, 1, 5, (1, 3)), (0, 3));
        let whole = Frame { rows: false, start: FrameBound::CurrentRow, end: FrameBound::UnboundedFollowing };
        assert_eq!(frame_range(&whole, 2, 5, (1, 3)), (1, 5));
    }
}
