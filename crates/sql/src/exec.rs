//! Executing query plans: each [`Node`] becomes an operator that yields batches of rows.
//!
//! Operators are pulled by their parent ([`RowStream::next_batch`]); the root is handed to the
//! daemon as the result's [`RowSource`], so a `SELECT *` over a million rows flows from the
//! node groups to the client a batch at a time. Operators that must see every row first (sort,
//! aggregation, the build side of a hash join) hold at most `max_materialized_rows` rows and
//! fail with ER_TOO_MANY_ROWS beyond that, rather than exhausting memory.
//!
//! Key lookups and scans talk to the node groups: every node group that holds one of the keys
//! (or, for a scan, every node group) is asked at the same time.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cairn_common::catalog::TableDef;
use cairn_common::collation::Collation;
use cairn_common::decimal::Decimal;
use cairn_common::error::{Error, ErrorKind};
use cairn_common::expr::{EvalContext, Expr, SessionContext, Warning};
use cairn_common::ids::NodeGroupId;
use cairn_common::key;
use cairn_common::ops::{ReadOp, ReadResult, ScanPosition, TableRef};
use cairn_common::row::RowLayout;
use cairn_common::temporal::{self, DateTime};
use cairn_common::types::ColumnType;
use cairn_common::{Value, err};

use crate::backend::Backend;
use crate::compile::{AggregateCall, AggregateFunc};
use crate::engine::{Engine, Stats};
use crate::join::join_all;
use crate::memory::RowBudget;
use crate::outcome::{Row, RowStream};
use crate::plan::{JoinKind, Node, SortKey};
use crate::types::Kind;

type BatchFuture<'a> = Pin<Box<dyn Future<Output = Option<Result<Vec<Row>, Error>>> + Send + 'a>>;
pub(crate) type BoxStream = Box<dyn RowStream>;

/// What a session knows that a data node does not, frozen at the start of a statement.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    pub now: DateTime,
    pub utc_now: DateTime,
    pub database: Option<String>,
    pub user: Arc<str>,
    /// The matched account as `user@host` (CURRENT_USER()).
    pub account: Arc<str>,
    pub connection_id: u64,
    pub last_insert_id: u64,
    pub found_rows: u64,
    pub row_count: i64,
    pub rng: u64,
    pub version: Arc<str>,
    /// The session's privileges, which filter what information_schema shows; `None` for an
    /// unchecked internal session, which sees everything.
    pub authorization: Option<Arc<cairn_common::accounts::Authorization>>,
}

impl SessionContext for Snapshot {
    fn now(&self) -> DateTime {
        self.now
    }
    fn current_database(&self) -> Option<String> {
        self.database.clone()
    }
    fn current_user(&self) -> String {
        self.user.to_string()
    }
    fn account(&self) -> String {
        self.account.to_string()
    }
    fn connection_id(&self) -> u64 {
        self.connection_id
    }
    fn last_insert_id(&self) -> u64 {
        self.last_insert_id
    }
    fn found_rows(&self) -> u64 {
        self.found_rows
    }
    fn row_count(&self) -> i64 {
        self.row_count
    }
    fn random(&mut self) -> f64 {
        // xorshift64*: deterministic per seed, good enough for RAND().
        let mut x = self.rng.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn version(&self) -> String {
        self.version.to_string()
    }
}

/// Values bound for one execution: one per plan slot, and the lists of `IN (subquery)`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bound {
    pub values: Vec<Value>,
    pub lists: HashMap<u32, Vec<Value>>,
}

/// The running statement, shared by its operators.
pub(crate) struct Exec<B: Backend> {
    pub engine: Arc<Engine<B>>,
    /// How this statement reaches the data (inside its transaction, if any).
    pub access: crate::txn::Access<B>,
    pub bound: Arc<Bound>,
    pub snapshot: Snapshot,
    pub warnings: Arc<Mutex<Vec<Warning>>>,
    pub group_concat_max_len: usize,
    /// Strict evaluation (a write's values in strict sql_mode: division by zero is 1365).
    pub strict: bool,
    /// The session's KILL flag, while the statement may be interrupted (a read outside a
    /// transaction); `None` otherwise. Long loops poll it through [`Exec::check_interrupted`].
    pub interrupt: Option<Arc<AtomicBool>>,
}

impl<B: Backend> Clone for Exec<B> {
    fn clone(&self) -> Self {
        Exec {
            engine: self.engine.clone(),
            access: self.access.clone(),
            bound: self.bound.clone(),
            snapshot: self.snapshot.clone(),
            warnings: self.warnings.clone(),
            group_concat_max_len: self.group_concat_max_len,
            strict: self.strict,
            interrupt: self.interrupt.clone(),
        }
    }
}

/// Bounded warning list (MySQL's max_error_count is 1024 by default; 64 is what evaluation
/// keeps per context).
const MAX_WARNINGS: usize = 1024;

/// How many rows a long loop handles between two looks at the KILL flag: an atomic load is cheap,
/// but not free in a loop that does little else per row.
pub(crate) const INTERRUPT_CHECK_ROWS: usize = 4096;

impl<B: Backend> Exec<B> {
    /// 1317 once KILL QUERY (or KILL CONNECTION) hit this statement's session, if the statement
    /// may be interrupted. Called every [`INTERRUPT_CHECK_ROWS`] rows by loops that compute
    /// without awaiting anything (joins, sorts, aggregation, DISTINCT), where the connection's
    /// own interruption, which drops the statement at its next wait, cannot reach.
    pub fn check_interrupted(&self) -> Result<(), Error> {
        match &self.interrupt {
            Some(flag) if flag.load(Ordering::Relaxed) => Err(err!(QueryInterrupted, "Query execution was interrupted")),
            _ => Ok(()),
        }
    }

    /// Evaluates with the session and the bound values; warnings go to the statement's list.
    pub fn eval(&mut self, e: &Expr, row: &[Value]) -> Result<Value, Error> {
        self.eval_partly(e, row, &[]).0
    }

    /// Evaluates with some parameters not bound yet: when evaluation reaches one of `unbound`,
    /// it stops and names it (the caller computes it and evaluates again, so that a stored
    /// function call runs only if evaluation gets to it). Warnings of a stopped evaluation are
    /// dropped: the next one produces them again.
    pub fn eval_partly(&mut self, e: &Expr, row: &[Value], unbound: &[u32]) -> (Result<Value, Error>, Option<u32>) {
        let bound = self.bound.clone();
        let mut ctx = EvalContext {
            params: &bound.values,
            warnings: Vec::new(),
            session: Some(&mut self.snapshot),
            strict: self.strict,
            unbound,
            missing: None,
        };
        let result = e.eval(row, &mut ctx);
        let missing = ctx.missing;
        let warnings = std::mem::take(&mut ctx.warnings);
        drop(ctx);
        if missing.is_none() {
            self.add_warnings(warnings);
        }
        (result, missing)
    }

    pub fn matches(&mut self, e: &Expr, row: &[Value]) -> Result<bool, Error> {
        Ok(self.eval(e, row)?.truthy() == Some(true))
    }

    pub fn add_warnings(&self, warnings: Vec<Warning>) {
        if warnings.is_empty() {
            return;
        }
        let mut list = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        for w in warnings {
            if list.len() < MAX_WARNINGS {
                list.push(w);
            }
        }
    }

    pub(crate) fn limit(&self) -> usize {
        self.engine.config.max_materialized_rows
    }

    /// What one materializing operator may keep (memory.rs).
    pub(crate) fn budget(&self) -> RowBudget {
        RowBudget::new(self.limit(), self.engine.config.max_statement_memory)
    }
}

/// Most items of one IN list a data node is asked to evaluate. A data node compares a row with
/// every item of a list in turn, inside its node-group loop, and one scan request examines up
/// to 100,000 rows (`cairn_storage::store::MAX_SCAN_EXAMINED`): a list of 128 items costs at
/// most about 13 million comparisons per request, tens of milliseconds, while a list of a
/// million would hold every other client of the node group for minutes. Longer lists are
/// evaluated on the SQL node, on the rows the rest of the filter lets through (the planner
/// keeps literal lists there, `access::is_pushable`; an `IN (subquery)` list, whose length is
/// known only when the query runs, is taken out of the filter by [`split_long_lists`]).
pub(crate) const MAX_PUSHED_IN_ITEMS: usize = 128;

fn has_long_list(e: &Expr) -> bool {
    let mut long = false;
    e.walk(&mut |x| {
        if let Expr::InList { list, .. } = x {
            long |= list.len() > MAX_PUSHED_IN_ITEMS;
        }
    });
    long
}

/// Splits a bound filter into the conjuncts a data node evaluates and those with an IN list
/// longer than [`MAX_PUSHED_IN_ITEMS`], which stay on the SQL node.
pub(crate) fn split_long_lists(filter: Option<Expr>) -> (Option<Expr>, Option<Expr>) {
    match filter {
        Some(f) if has_long_list(&f) => {
            let (local, pushed): (Vec<Expr>, Vec<Expr>) = f.into_conjuncts().into_iter().partition(has_long_list);
            (Expr::conjunction(pushed), Expr::conjunction(local))
        }
        other => (other, None),
    }
}

/// Wraps a stream in a filter evaluated on the SQL node.
pub(crate) fn filtered<B: Backend>(input: BoxStream, predicate: Option<Expr>, exec: &Exec<B>) -> BoxStream {
    match predicate {
        Some(predicate) => Box::new(FilterStream { input, predicate, exec: exec.clone() }),
        None => input,
    }
}

pub(crate) fn too_many_rows(limit: usize) -> Error {
    Error::new(
        ErrorKind::TooManyRows,
        format!("The statement needs more than {limit} rows in memory on the SQL node (max_materialized_rows); add a WHERE or LIMIT"),
    )
}

/// Replaces parameters and session functions by their values, so that the expression can be
/// shipped to a data node. `IN (subquery)` lists must already be substituted
/// ([`substitute_lists`]).
pub(crate) fn bind(e: &Expr, bound: &Bound, snapshot: &Snapshot) -> Result<Expr, Error> {
    let mut snap = snapshot.clone();
    e.clone().transform(&mut |node| {
        Ok(match node {
            Expr::Param(i) => Expr::Literal(bound.values.get(i as usize).cloned().unwrap_or(Value::Null)),
            Expr::Call { func, args } if func.needs_session() && args.iter().all(|a| matches!(a, Expr::Literal(_))) => {
                let mut ctx = EvalContext { params: &[], warnings: Vec::new(), session: Some(&mut snap), strict: false, unbound: &[], missing: None };
                Expr::Literal(Expr::Call { func, args }.eval(&[], &mut ctx)?)
            }
            other => other,
        })
    })
}

/// `x IN (subquery)` is planned as `InList { list: [Param(slot)] }`; once the subquery has run,
/// the list becomes its values.
fn list_of(e: Expr, bound: &Bound) -> Expr {
    e.transform(&mut |node| {
        Ok(match node {
            Expr::InList { arg, list, negated, collation } => {
                let replaced = match list.as_slice() {
                    [Expr::Param(slot)] => bound.lists.get(slot).map(|values| values.iter().cloned().map(Expr::Literal).collect()),
                    _ => None,
                };
                Expr::InList { arg, list: replaced.unwrap_or(list), negated, collation }
            }
            other => other,
        })
    })
    .unwrap_or(Expr::Literal(Value::Null))
}

/// Calls `f` on every expression of a plan tree.
pub(crate) fn for_each_expr(node: &mut Node, f: &mut dyn FnMut(&mut Expr)) {
    match node {
        Node::Single | Node::CountAll { .. } => {}
        Node::Get { keys, fallback, .. } => {
            keys.iter_mut().flatten().for_each(&mut *f);
            if let Some(e) = fallback {
                f(e);
            }
        }
        Node::Scan { filter, .. } => {
            if let Some(e) = filter {
                f(e);
            }
        }
        Node::UniqueGet { keys, fallback, .. } => {
            keys.iter_mut().flatten().for_each(&mut *f);
            if let Some(e) = fallback {
                f(e);
            }
        }
        Node::IndexScan { ranges, filter, .. } => {
            for r in ranges.iter_mut() {
                r.eq.iter_mut().for_each(&mut *f);
                if let Some((e, _)) = &mut r.low {
                    f(e);
                }
                if let Some((e, _)) = &mut r.high {
                    f(e);
                }
            }
            if let Some(e) = filter {
                f(e);
            }
        }
        Node::PushedAggregate { filter, keys, calls, .. } => {
            if let Some(e) = filter {
                f(e);
            }
            keys.iter_mut().for_each(|(e, _)| f(e));
            for c in calls.iter_mut() {
                c.args.iter_mut().for_each(&mut *f);
            }
        }
        Node::Union { inputs, .. } => inputs.iter_mut().for_each(|i| for_each_expr(i, f)),
        Node::Derived { plan, .. } => for_each_expr(&mut plan.root, f),
        Node::WorkingTable { .. } => {}
        Node::RecursiveCte { seed, recursive, depth_limit, .. } => {
            f(depth_limit);
            for_each_expr(seed, f);
            recursive.iter_mut().for_each(|r| for_each_expr(r, f));
        }
        Node::Filter { input, predicate } => {
            f(predicate);
            for_each_expr(input, f);
        }
        Node::Project { input, exprs } => {
            exprs.iter_mut().for_each(&mut *f);
            for_each_expr(input, f);
        }
        Node::Aggregate { input, keys, calls, .. } => {
            keys.iter_mut().for_each(|(e, _)| f(e));
            for c in calls.iter_mut() {
                c.args.iter_mut().for_each(&mut *f);
                c.order.iter_mut().for_each(|(e, _, _)| f(e));
            }
            for_each_expr(input, f);
        }
        Node::Distinct { input, .. } => for_each_expr(input, f),
        Node::Window { input, calls, .. } => {
            calls.iter_mut().for_each(|c| c.for_each_expr(f));
            for_each_expr(input, f);
        }
        Node::Apply { input, subqueries } => {
            for s in subqueries.iter_mut() {
                if let Some((arg, _, _)) = &mut s.membership {
                    f(arg);
                }
                for_each_expr(&mut s.plan.root, f);
            }
            for_each_expr(input, f);
        }
        Node::Sort { input, keys } => {
            keys.iter_mut().for_each(|k| f(&mut k.expr));
            for_each_expr(input, f);
        }
        Node::Limit { input, offset, limit } => {
            if let Some(e) = offset {
                f(e);
            }
            if let Some(e) = limit {
                f(e);
            }
            for_each_expr(input, f);
        }
        Node::HashJoin { left, right, keys, condition, .. } => {
            keys.iter_mut().for_each(|(l, r, _)| {
                f(l);
                f(r);
            });
            if let Some(e) = condition {
                f(e);
            }
            for_each_expr(left, f);
            for_each_expr(right, f);
        }
        Node::LookupJoin { left, key, condition, .. } => {
            key.iter_mut().for_each(&mut *f);
            if let Some(e) = condition {
                f(e);
            }
            for_each_expr(left, f);
        }
    }
}

/// Substitutes the results of `IN (subquery)` slots into a plan (a copy, so that a prepared
/// plan stays reusable).
pub(crate) fn substitute_lists(node: &Node, bound: &Bound) -> Node {
    let mut copy = node.clone();
    if !bound.lists.is_empty() {
        for_each_expr(&mut copy, &mut |e| {
            let taken = std::mem::replace(e, Expr::Literal(Value::Null));
            *e = list_of(taken, bound);
        });
    }
    copy
}

/// A stream over rows already in memory.
struct VecStream {
    rows: std::vec::IntoIter<Row>,
    batch: usize,
}

impl VecStream {
    fn boxed(rows: Vec<Row>) -> BoxStream {
        Box::new(VecStream { rows: rows.into_iter(), batch: 1024 })
    }
}

impl RowStream for VecStream {
    fn next_batch(&mut self) -> BatchFuture<'_> {
        let batch: Vec<Row> = self.rows.by_ref().take(self.batch).collect();
        Box::pin(async move { if batch.is_empty() { None } else { Some(Ok(batch)) } })
    }
}

/// A stream over rows already in memory.
pub(crate) fn vec_stream(rows: Vec<Row>) -> BoxStream {
    VecStream::boxed(rows)
}

/// Reads every row of a stream (for materializing operators), bounded by `budget`.
pub(crate) async fn drain(stream: &mut BoxStream, mut budget: RowBudget) -> Result<Vec<Row>, Error> {
    let mut rows = Vec::new();
    while let Some(batch) = stream.next_batch().await {
        for row in batch? {
            budget.charge_row(&row)?;
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Opens an operator tree.
pub(crate) fn open<'a, B: Backend>(node: &'a Node, exec: &'a Exec<B>) -> Pin<Box<dyn Future<Output = Result<BoxStream, Error>> + Send + 'a>> {
    Box::pin(async move {
        Ok(match node {
            Node::Single => VecStream::boxed(vec![Vec::new()]),
            Node::CountAll { table, input_width, count } => {
                let total = if crate::information_schema::is_view(table) {
                    crate::information_schema::scan(&mut exec.clone(), table, None, None)?.len() as u64
                } else {
                    count_rows(exec, table).await?
                };
                let mut row = vec![Value::Null; *input_width];
                row.extend(std::iter::repeat_n(Value::Int(i64::try_from(total).unwrap_or(i64::MAX)), *count));
                VecStream::boxed(vec![row])
            }
            Node::Get { table, keys, fallback, .. } => run_get(exec, table.clone(), keys, fallback.as_ref()).await?,
            Node::UniqueGet { table, index, keys, fallback, .. } => {
                crate::exec_index::run_unique_get(exec, table.clone(), *index, keys, fallback.as_ref()).await?
            }
            Node::IndexScan { table, index, ranges, descending, ordered, filter, projection, limit, .. } => {
                crate::exec_index::open_index_scan(exec, table, *index, ranges, *descending, *ordered, filter, projection, *limit)?
            }
            Node::PushedAggregate { table, filter, keys, calls, input_width, .. } => {
                crate::exec_index::run_pushed_aggregate(exec, table, filter, keys, calls, *input_width).await?
            }
            Node::Union { inputs, distinct, collations } => {
                let mut streams = Vec::with_capacity(inputs.len());
                for input in inputs {
                    streams.push(open(input, exec).await?);
                }
                let chained: BoxStream = Box::new(ChainStream { streams: streams.into() });
                if *distinct {
                    Box::new(DistinctStream { input: chained, columns: collations.len(), collations: collations.clone(), seen: HashSet::new(), budget: exec.budget() })
                } else {
                    chained
                }
            }
            Node::Derived { plan, .. } => open(&plan.root, exec).await?,
            Node::WorkingTable { rows, .. } => VecStream::boxed(rows.as_ref().clone()),
            Node::RecursiveCte { seed, recursive, id, distinct, collations, depth_limit } => {
                VecStream::boxed(crate::cte::run_recursive(exec, seed, recursive, *id, *distinct, collations, depth_limit).await?)
            }
            Node::Scan { table, filter, projection, limit, .. } => {
                let filter = match filter {
                    Some(f) => Some(bind(f, &exec.bound, &exec.snapshot)?),
                    None => None,
                };
                if crate::information_schema::is_view(table) {
                    // A view's rows come from the catalog on this node, not from node groups.
                    return Ok(VecStream::boxed(crate::information_schema::scan(&mut exec.clone(), table, filter.as_ref(), *limit)?));
                }
                Stats::bump(&exec.engine.stats.scans);
                Box::new(ScanStream::new(exec, table.clone(), filter, projection.clone(), *limit))
            }
            Node::Filter { input, predicate } => {
                let input = open(input, exec).await?;
                Box::new(FilterStream { input, predicate: predicate.clone(), exec: exec.clone() })
            }
            Node::Project { input, exprs } => {
                let input = open(input, exec).await?;
                let exprs = exprs.clone();
                Box::new(ProjectStream { input, exprs, exec: exec.clone() })
            }
            Node::Limit { input, offset, limit } => {
                let mut ex = exec.clone();
                let offset = match offset {
                    Some(e) => limit_value(&mut ex, e)?,
                    None => 0,
                };
                let limit = match limit {
                    Some(e) => Some(limit_value(&mut ex, e)?),
                    None => None,
                };
                let input = open(input, exec).await?;
                Box::new(LimitStream { input: Some(input), skip: offset, left: limit })
            }
            Node::Sort { input, keys } => {
                let mut input = open(input, exec).await?;
                let rows = drain(&mut input, exec.budget()).await?;
                VecStream::boxed(sort_rows(exec.clone(), rows, keys)?)
            }
            Node::Window { input, calls, input_width } => {
                let mut input = open(input, exec).await?;
                let rows = drain(&mut input, exec.budget()).await?;
                VecStream::boxed(crate::window::evaluate(exec.clone(), rows, calls, *input_width)?)
            }
            Node::Apply { input, subqueries } => {
                let input = open(input, exec).await?;
                Box::new(ApplyStream { input, subqueries: subqueries.clone(), exec: exec.clone() })
            }
            Node::Distinct { input, columns, collations } => {
                let input = open(input, exec).await?;
                Box::new(DistinctStream { input, columns: *columns, collations: collations.clone(), seen: HashSet::new(), budget: exec.budget() })
            }
            Node::Aggregate { input, keys, calls, input_width } => {
                let input = open(input, exec).await?;
                VecStream::boxed(aggregate(exec.clone(), input, keys, calls, *input_width).await?)
            }
            Node::HashJoin { left, right, kind, keys, condition, right_width } => {
                let mut right_stream = open(right, exec).await?;
                let right_rows = drain(&mut right_stream, exec.budget()).await?;
                let mut ex = exec.clone();
                let mut table: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
                for (i, row) in right_rows.iter().enumerate() {
                    if i % INTERRUPT_CHECK_ROWS == INTERRUPT_CHECK_ROWS - 1 {
                        ex.check_interrupted()?;
                    }
                    let mut k = Vec::new();
                    let mut null = false;
                    for (_, rk, collation) in keys {
                        let v = ex.eval(rk, row)?;
                        null |= v.is_null();
                        normalize_into(&v, *collation, &mut k);
                    }
                    if !null {
                        table.entry(k).or_default().push(i);
                    }
                }
                let left = open(left, exec).await?;
                Box::new(HashJoinStream {
                    left,
                    right_rows,
                    table,
                    kind: *kind,
                    left_keys: keys.iter().map(|(l, _, c)| (l.clone(), *c)).collect(),
                    condition: condition.clone(),
                    right_width: *right_width,
                    exec: ex,
                })
            }
            Node::LookupJoin { left, table, kind, via, key, condition, .. } => {
                let left = open(left, exec).await?;
                Box::new(LookupJoinStream {
                    left,
                    table: table.clone(),
                    columns: crate::exec_index::lookup_columns(table, *via, key.len())?,
                    via: *via,
                    kind: *kind,
                    key: key.clone(),
                    condition: condition.clone(),
                    exec: exec.clone(),
                })
            }
        })
    })
}

fn limit_value<B: Backend>(exec: &mut Exec<B>, e: &Expr) -> Result<u64, Error> {
    let v = exec.eval(e, &[])?;
    match v {
        Value::Int(i) if i >= 0 => Ok(i as u64),
        Value::UInt(u) => Ok(u),
        other => other
            .to_u64()
            .filter(|_| matches!(other, Value::Text(_) | Value::Bytes(_) | Value::Decimal(_) | Value::Double(_)))
            .ok_or_else(|| err!(WrongArguments, "Incorrect arguments to LIMIT")),
    }
}

struct FilterStream<B: Backend> {
    input: BoxStream,
    predicate: Expr,
    exec: Exec<B>,
}

impl<B: Backend> RowStream for FilterStream<B> {
    fn next_batch(&mut self) -> BatchFuture<'_> {
        Box::pin(async move {
            loop {
                let batch = match self.input.next_batch().await? {
                    Ok(b) => b,
                    Err(e) => return Some(Err(e)),
                };
                let mut out = Vec::with_capacity(batch.len());
                for row in batch {
                    match self.exec.matches(&self.predicate, &row) {
                        Ok(true) => out.push(row),
                        Ok(false) => {}
                        Err(e) => return Some(Err(e)),
                    }
                }
                if !out.is_empty() {
                    return Some(Ok(out));
                }
            }
        })
    }
}

struct ProjectStream<B: Backend> {
    input: BoxStream,
    exprs: Vec<Expr>,
    exec: Exec<B>,
}

impl<B: Backend> RowStream for ProjectStream<B> {
    fn next_batch(&mut self) -> BatchFuture<'_> {
        Box::pin(async move {
            let batch = match self.input.next_batch().await? {
                Ok(b) => b,
                Err(e) => return Some(Err(e)),
            };
            let mut out = Vec::with_capacity(batch.len());
            for row in batch {
                let mut projected = Vec::with_capacity(self.exprs.len());
                for e in &self.exprs {
                    // A plain column is moved, not evaluated.
                    let v = match e {
                        Expr::Column(i) => row.get(*i as usize).cloned().unwrap_or(Value::Null),
                        other => match self.exec.eval(other, &row) {
                            Ok(v) => v,
                            Err(e) => return Some(Err(e)),
                        },
                    };
                    projected.push(v);
                }
                out.push(projected);
            }
            Some(Ok(out))
        })
    }
}

/// Runs correlated subqueries once per input row and appends their results.
struct ApplyStream<B: Backend> {
    input: BoxStream,
    subqueries: Vec<crate::compile::Correlated>,
    exec: Exec<B>,
}

impl<B: Backend> ApplyStream<B> {
    async fn result(&mut self, s: usize, row: &[Value]) -> Result<Value, Error> {
        let sub = &self.subqueries[s];
        let mut bound = (*self.exec.bound).clone();
        for (slot, column) in &sub.outer {
            if let Some(v) = bound.values.get_mut(*slot as usize) {
                *v = row.get(*column).cloned().unwrap_or(Value::Null);
            }
        }
        let mut inner = self.exec.clone();
        inner.bound = Arc::new(bound);
        let rows = collect_query(&sub.plan.root, &inner).await?;
        Ok(match sub.kind {
            crate::compile::SubqueryKind::Exists => Value::Int(i64::from(!rows.is_empty())),
            crate::compile::SubqueryKind::Scalar => match rows.len() {
                0 => Value::Null,
                1 => rows[0].first().cloned().unwrap_or(Value::Null),
                _ => return Err(err!(SubqueryMultipleRows, "Subquery returns more than 1 row")),
            },
            crate::compile::SubqueryKind::InList => {
                let Some((arg, negated, collation)) = &sub.membership else {
                    return Err(Error::internal("a correlated IN subquery without its left side"));
                };
                let (arg, negated, collation) = (arg.clone(), *negated, *collation);
                let v = self.exec.eval(&arg, row)?;
                if v.is_null() {
                    return Ok(if rows.is_empty() { Value::from_bool(negated) } else { Value::Null });
                }
                let mut saw_null = false;
                for r in &rows {
                    match r.first().and_then(|c| v.sql_eq(c, collation)) {
                        Some(true) => return Ok(Value::from_bool(!negated)),
                        Some(false) => {}
                        None => saw_null = true,
                    }
                }
                if saw_null { Value::Null } else { Value::from_bool(negated) }
            }
        })
    }
}

impl<B: Backend> RowStream for ApplyStream<B> {
    fn next_batch(&mut self) -> BatchFuture<'_> {
        Box::pin(async move {
            let batch = match self.input.next_batch().await? {
                Ok(b) => b,
                Err(e) => return Some(Err(e)),
            };
            let mut out = Vec::with_capacity(batch.len());
            for mut row in batch {
                for s in 0..self.subqueries.len() {
                    match self.result(s, &row).await {
                        Ok(v) => row.push(v),
                        Err(e) => return Some(Err(e)),
                    }
                }
                out.push(row);
            }
            Some(Ok(out))
        })
    }
}

struct LimitStream {
    input: Option<BoxStream>,
    skip: u64,
    left: Option<u64>,
}

impl RowStream for LimitStream {
    fn next_batch(&mut self) -> BatchFuture<'_> {
        Box::pin(async move {
            loop {
                if self.left == Some(0) {
                    // Dropping the input stops a scan early.
                    self.input = None;
                    return None;
                }
                let input = self.input.as_mut()?;
                let mut batch = match input.next_batch().await? {
                    Ok(b) => b,
                    Err(e) => return Some(Err(e)),
                };
                if self.skip > 0 {
                    let drop = (self.skip as usize).min(batch.len());
                    batch.drain(..drop);
                    self.skip -= drop as u64;
                }
                if let Some(left) = self.left.as_mut() {
                    if batch.len() as u64 > *left {
                        batch.truncate(*left as usize);
                    }
                    *left -= batch.len() as u64;
                }
                if !batch.is_empty() {
                    return Some(Ok(batch));
                }
            }
        })
    }
}

struct DistinctStream {
    input: BoxStream,
    columns: usize,
    collations: Vec<Collation>,
    seen: HashSet<Vec<u8>>,
    budget: RowBudget,
}

impl RowStream for DistinctStream {
    fn next_batch(&mut self) -> BatchFuture<'_> {
        Box::pin(async move {
            loop {
                let batch = match self.input.next_batch().await? {
                    Ok(b) => b,
                    Err(e) => return Some(Err(e)),
                };
                let mut out = Vec::new();
                for row in batch {
                    let mut k = Vec::new();
                    for (i, v) in row.iter().take(self.columns).enumerate() {
                        normalize_into(v, self.collations.get(i).copied().unwrap_or_default(), &mut k);
                    }
                    let key_bytes = (k.capacity() + std::mem::size_of::<Vec<u8>>()) as u64;
                    if self.seen.insert(k) {
                        if let Err(e) = self.budget.charge(key_bytes) {
                            return Some(Err(e));
                        }
                        out.push(row);
                    }
                }
                if !out.is_empty() {
                    return Some(Ok(out));
                }
            }
        })
    }
}

/// See [`cairn_common::group::normalize_into`].
pub(crate) fn normalize_into(v: &Value, collation: Collation, out: &mut Vec<u8>) {
    cairn_common::group::normalize_into(v, collation, out)
}

pub(crate) fn sort_rows<B: Backend>(mut exec: Exec<B>, rows: Vec<Row>, keys: &[SortKey]) -> Result<Vec<Row>, Error> {
    let mut keyed: Vec<(Vec<Value>, Row)> = Vec::with_capacity(rows.len());
    for (n, row) in rows.into_iter().enumerate() {
        if n % INTERRUPT_CHECK_ROWS == INTERRUPT_CHECK_ROWS - 1 {
            exec.check_interrupted()?;
        }
        let mut k = Vec::with_capacity(keys.len());
        for key in keys {
            k.push(match &key.expr {
                Expr::Column(i) => row.get(*i as usize).cloned().unwrap_or(Value::Null),
                e => exec.eval(e, &row)?,
            });
        }
        keyed.push((k, row));
    }
    keyed.sort_by(|(a, _), (b, _)| {
        for (i, key) in keys.iter().enumerate() {
            let ord = a[i].order_cmp(&b[i], key.collation);
            let ord = if key.descending { ord.reverse() } else { ord };
            if ord != std::cmp::Ordering::Equal {
                return ord;
            }
        }
        std::cmp::Ordering::Equal
    });
    // The sort itself runs to its end (a comparator must stay a total order); a KILL that came
    // meanwhile ends the statement here, before the rows go anywhere.
    exec.check_interrupted()?;
    Ok(keyed.into_iter().map(|(_, r)| r).collect())
}

/// The running state of one aggregate in one group.
#[derive(Clone)]
enum AggState {
    Count(u64),
    SumExact { sum: Option<Decimal> },
    SumDouble { sum: Option<f64> },
    AvgExact { sum: Decimal, count: u64 },
    AvgDouble { sum: f64, count: u64 },
    Extreme { best: Option<Value>, max: bool, collation: Collation },
    GroupConcat { parts: Vec<(Vec<Value>, String)> },
    Bit { value: u64, op: AggregateFunc },
    Any(Option<Value>),
}

/// One aggregate's state: what GROUP BY keeps per group and a window function per frame.
#[derive(Clone)]
pub(crate) struct AggSlot {
    state: AggState,
    /// Distinct arguments seen (DISTINCT aggregates).
    seen: Option<HashSet<Vec<u8>>>,
}

impl AggSlot {
    pub(crate) fn new(call: &AggregateCall) -> AggSlot {
        let exact = !call.args.is_empty() && matches!(call.ty.kind(), Kind::Decimal { .. });
        let state = match call.func {
            AggregateFunc::CountStar | AggregateFunc::Count => AggState::Count(0),
            AggregateFunc::Sum if exact => AggState::SumExact { sum: None },
            AggregateFunc::Sum => AggState::SumDouble { sum: None },
            AggregateFunc::Avg if exact => AggState::AvgExact { sum: Decimal::ZERO, count: 0 },
            AggregateFunc::Avg => AggState::AvgDouble { sum: 0.0, count: 0 },
            AggregateFunc::Min | AggregateFunc::Max => {
                AggState::Extreme { best: None, max: call.func == AggregateFunc::Max, collation: call.collation }
            }
            AggregateFunc::GroupConcat => AggState::GroupConcat { parts: Vec::new() },
            AggregateFunc::BitAnd => AggState::Bit { value: u64::MAX, op: call.func },
            AggregateFunc::BitOr | AggregateFunc::BitXor => AggState::Bit { value: 0, op: call.func },
            AggregateFunc::AnyValue => AggState::Any(None),
        };
        AggSlot { state, seen: call.distinct.then(HashSet::new) }
    }

    pub(crate) fn add<B: Backend>(&mut self, call: &AggregateCall, row: &[Value], exec: &mut Exec<B>) -> Result<(), Error> {
        if call.func == AggregateFunc::CountStar {
            if let AggState::Count(n) = &mut self.state {
                *n += 1;
            }
            return Ok(());
        }
        let mut args = Vec::with_capacity(call.args.len());
        for a in &call.args {
            args.push(exec.eval(a, row)?);
        }
        // Aggregates ignore NULL arguments (COUNT(a, b) skips rows where any is NULL).
        if call.func != AggregateFunc::GroupConcat && args.iter().any(Value::is_null) {
            return Ok(());
        }
        if call.func == AggregateFunc::GroupConcat && args.iter().any(Value::is_null) {
            return Ok(());
        }
        if let Some(seen) = &mut self.seen {
            let mut k = Vec::new();
            for a in &args {
                normalize_into(a, call.collation, &mut k);
            }
            if !seen.insert(k) {
                return Ok(());
            }
        }
        let v = &args[0];
        match &mut self.state {
            AggState::Count(n) => *n += 1,
            AggState::SumExact { sum } => {
                let d = v.to_decimal().unwrap_or_default();
                *sum = Some(match sum {
                    None => d,
                    Some(s) => s.checked_add(d).ok_or_else(|| err!(ValueOutOfRange, "DECIMAL value is out of range in 'sum'"))?,
                });
            }
            AggState::SumDouble { sum } => *sum = Some(sum.unwrap_or(0.0) + v.to_f64().unwrap_or(0.0)),
            AggState::AvgExact { sum, count } => {
                *sum = sum.checked_add(v.to_decimal().unwrap_or_default()).ok_or_else(|| err!(ValueOutOfRange, "DECIMAL value is out of range in 'avg'"))?;
                *count += 1;
            }
            AggState::AvgDouble { sum, count } => {
                *sum += v.to_f64().unwrap_or(0.0);
                *count += 1;
            }
            AggState::Extreme { best, max, collation } => {
                let better = match best {
                    None => true,
                    Some(b) => {
                        let ord = v.order_cmp(b, *collation);
                        if *max { ord.is_gt() } else { ord.is_lt() }
                    }
                };
                if better {
                    *best = Some(v.clone());
                }
            }
            AggState::GroupConcat { parts } => {
                let text: String = args.iter().map(|a| a.to_text().into_owned()).collect();
                let mut order = Vec::with_capacity(call.order.len());
                for (e, _, _) in &call.order {
                    order.push(exec.eval(e, row)?);
                }
                parts.push((order, text));
            }
            AggState::Bit { value, op } => {
                let bits = v.to_u64().unwrap_or_else(|| v.to_i64().unwrap_or(0) as u64);
                match op {
                    AggregateFunc::BitAnd => *value &= bits,
                    AggregateFunc::BitOr => *value |= bits,
                    _ => *value ^= bits,
                }
            }
            AggState::Any(first) => {
                if first.is_none() {
                    *first = Some(v.clone());
                }
            }
        }
        Ok(())
    }

    pub(crate) fn finish<B: Backend>(self, call: &AggregateCall, exec: &Exec<B>) -> Value {
        match self.state {
            AggState::Count(n) => Value::Int(n as i64),
            AggState::SumExact { sum } => sum.map_or(Value::Null, Value::Decimal),
            AggState::SumDouble { sum } => sum.map_or(Value::Null, Value::Double),
            AggState::AvgExact { sum, count } => {
                if count == 0 {
                    Value::Null
                } else {
                    sum.checked_div(Decimal::from_u64(count), 4).map_or(Value::Null, Value::Decimal)
                }
            }
            AggState::AvgDouble { sum, count } => {
                if count == 0 { Value::Null } else { Value::Double(sum / count as f64) }
            }
            AggState::Extreme { best, .. } => best.unwrap_or(Value::Null),
            AggState::GroupConcat { mut parts } => {
                if parts.is_empty() {
                    return Value::Null;
                }
                if !call.order.is_empty() {
                    parts.sort_by(|(a, _), (b, _)| {
                        for (i, (_, desc, collation)) in call.order.iter().enumerate() {
                            let ord = a[i].order_cmp(&b[i], *collation);
                            let ord = if *desc { ord.reverse() } else { ord };
                            if ord.is_ne() {
                                return ord;
                            }
                        }
                        std::cmp::Ordering::Equal
                    });
                }
                let joined = parts.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join(&call.separator);
                let max = exec.group_concat_max_len;
                if joined.len() > max {
                    let mut cut = max;
                    while cut > 0 && !joined.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    exec.add_warnings(vec![Warning {
                        level: cairn_common::expr::WarningLevel::Warning,
                        code: 1260,
                        message: "Row 1 was cut by GROUP_CONCAT()".into(),
                    }]);
                    Value::Text(joined[..cut].to_string())
                } else {
                    Value::Text(joined)
                }
            }
            AggState::Bit { value, .. } => Value::UInt(value),
            AggState::Any(v) => v.unwrap_or(Value::Null),
        }
    }
}

struct Group {
    keys: Vec<Value>,
    first: Row,
    slots: Vec<AggSlot>,
}

pub(crate) async fn aggregate<B: Backend>(
    mut exec: Exec<B>,
    mut input: BoxStream,
    keys: &[(Expr, Collation)],
    calls: &[AggregateCall],
    input_width: usize,
) -> Result<Vec<Row>, Error> {
    let mut budget = exec.budget();
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    // A batch from a join can be millions of rows long: look at the KILL flag as rows go by.
    let mut seen = 0usize;
    while let Some(batch) = input.next_batch().await {
        for row in batch? {
            seen += 1;
            if seen % INTERRUPT_CHECK_ROWS == 0 {
                exec.check_interrupted()?;
            }
            let mut key_values = Vec::with_capacity(keys.len());
            let mut k = Vec::new();
            for (e, collation) in keys {
                let v = exec.eval(e, &row)?;
                normalize_into(&v, *collation, &mut k);
                key_values.push(v);
            }
            let g = match index.get(&k) {
                Some(&g) => g,
                None => {
                    // The group keeps its key twice (index and values), its first row and
                    // its aggregate slots.
                    budget.charge(k.len() as u64 + crate::memory::row_bytes(&key_values) + crate::memory::row_bytes(&row))?;
                    groups.push(Group { keys: key_values, first: row.clone(), slots: calls.iter().map(AggSlot::new).collect() });
                    index.insert(k, groups.len() - 1);
                    groups.len() - 1
                }
            };
            let group = &mut groups[g];
            for (slot, call) in group.slots.iter_mut().zip(calls) {
                slot.add(call, &row, &mut exec)?;
            }
        }
    }
    if groups.is_empty() && keys.is_empty() {
        // An aggregate without GROUP BY over no rows still gives one row.
        groups.push(Group { keys: Vec::new(), first: vec![Value::Null; input_width], slots: calls.iter().map(AggSlot::new).collect() });
    }
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let mut row = g.keys;
        let mut first = g.first;
        first.resize(input_width, Value::Null);
        row.extend(first);
        for (slot, call) in g.slots.into_iter().zip(calls) {
            row.push(slot.finish(call, &exec));
        }
        out.push(row);
    }
    Ok(out)
}

struct HashJoinStream<B: Backend> {
    left: BoxStream,
    right_rows: Vec<Row>,
    table: HashMap<Vec<u8>, Vec<usize>>,
    kind: JoinKind,
    left_keys: Vec<(Expr, Collation)>,
    condition: Option<Expr>,
    right_width: usize,
    exec: Exec<B>,
}

impl<B: Backend> RowStream for HashJoinStream<B> {
    fn next_batch(&mut self) -> BatchFuture<'_> {
        Box::pin(async move {
            loop {
                let batch = match self.left.next_batch().await? {
                    Ok(b) => b,
                    Err(e) => return Some(Err(e)),
                };
                let mut out = Vec::new();
                // One left batch may pair with millions of right rows (a join without keys)
                // before anything is returned: look at the KILL flag as the pairs go by.
                let mut pairs = 0usize;
                for left in batch {
                    let mut k = Vec::new();
                    let mut null = false;
                    for (e, collation) in &self.left_keys {
                        match self.exec.eval(e, &left) {
                            Ok(v) => {
                                null |= v.is_null();
                                normalize_into(&v, *collation, &mut k);
                            }
                            Err(e) => return Some(Err(e)),
                        }
                    }
                    let mut matched = false;
                    let candidates: &[usize] = if null { &[] } else { self.table.get(&k).map_or(&[], |v| v.as_slice()) };
                    let all: Vec<usize>;
                    let candidates = if self.left_keys.is_empty() {
                        all = (0..self.right_rows.len()).collect();
                        &all[..]
                    } else {
                        candidates
                    };
                    for &r in candidates {
                        pairs += 1;
                        if pairs % INTERRUPT_CHECK_ROWS == 0
                            && let Err(e) = self.exec.check_interrupted()
                        {
                            return Some(Err(e));
                        }
                        let mut joined = left.clone();
                        joined.extend(self.right_rows[r].iter().cloned());
                        let pass = match &self.condition {
                            Some(c) => match self.exec.matches(c, &joined) {
                                Ok(b) => b,
                                Err(e) => return Some(Err(e)),
                            },
                            None => true,
                        };
                        if pass {
                            matched = true;
                            out.push(joined);
                        }
                    }
                    if !matched && self.kind == JoinKind::Left {
                        let mut joined = left;
                        joined.extend(std::iter::repeat_n(Value::Null, self.right_width));
                        out.push(joined);
                    }
                }
                if !out.is_empty() {
                    return Some(Ok(out));
                }
            }
        })
    }
}

struct LookupJoinStream<B: Backend> {
    left: BoxStream,
    table: Arc<TableDef>,
    via: crate::access::LookupVia,
    /// The columns of `table` the key gives values for.
    columns: Vec<usize>,
    kind: JoinKind,
    key: Vec<Expr>,
    condition: Option<Expr>,
    exec: Exec<B>,
}

impl<B: Backend> RowStream for LookupJoinStream<B> {
    fn next_batch(&mut self) -> BatchFuture<'_> {
        Box::pin(async move {
            loop {
                let batch = match self.left.next_batch().await? {
                    Ok(b) => b,
                    Err(e) => return Some(Err(e)),
                };
                // Keys for every left row (None when a key value cannot match).
                let mut keys: Vec<Option<Vec<Value>>> = Vec::with_capacity(batch.len());
                for row in &batch {
                    let mut k = Vec::with_capacity(self.key.len());
                    let mut usable = true;
                    for (e, &col) in self.key.iter().zip(&self.columns) {
                        let v = match self.exec.eval(e, row) {
                            Ok(v) => v,
                            Err(e) => return Some(Err(e)),
                        };
                        match key_value(v, &self.table.columns[col].ty) {
                            KeyValue::Exact(v) => k.push(v),
                            KeyValue::NoMatch | KeyValue::Incompatible => {
                                usable = false;
                                break;
                            }
                        }
                    }
                    keys.push(usable.then_some(k));
                }
                let matches = match crate::exec_index::lookup_rows(&self.exec, &self.table, self.via, &self.columns, &keys).await {
                    Ok(m) => m,
                    Err(e) => return Some(Err(e)),
                };
                let mut out = Vec::new();
                for (row, rights) in batch.into_iter().zip(matches) {
                    let mut matched = false;
                    for right in rights {
                        let mut joined = row.clone();
                        joined.extend(right);
                        let pass = match &self.condition {
                            Some(c) => match self.exec.matches(c, &joined) {
                                Ok(b) => b,
                                Err(e) => return Some(Err(e)),
                            },
                            None => true,
                        };
                        if pass {
                            matched = true;
                            out.push(joined);
                        }
                    }
                    if !matched && self.kind == JoinKind::Left {
                        let mut joined = row;
                        joined.extend(std::iter::repeat_n(Value::Null, self.table.columns.len()));
                        out.push(joined);
                    }
                }
                if !out.is_empty() {
                    return Some(Ok(out));
                }
            }
        })
    }
}

/// The rows of several streams, one after the other (UNION ALL).
struct ChainStream {
    streams: std::collections::VecDeque<BoxStream>,
}

impl RowStream for ChainStream {
    fn next_batch(&mut self) -> BatchFuture<'_> {
        Box::pin(async move {
            loop {
                let first = self.streams.front_mut()?;
                match first.next_batch().await {
                    Some(batch) => return Some(batch),
                    None => {
                        self.streams.pop_front();
                    }
                }
            }
        })
    }
}

pub(crate) fn encode_pk(table: &TableDef, key: &[Value]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(16);
    key::encode_key_values(table, &table.primary_key, key, &mut out)?;
    Ok(out)
}

/// Bytes of rows one key-lookup answer may carry at most, so that an answer frame stays far
/// below the inter-node frame limit (`cairn_proto::frame::DEFAULT_MAX_FRAME`, 64 MiB), which
/// would otherwise end the link and fail every statement using it.
const LOOKUP_ANSWER_BYTES: u64 = 8 << 20;
/// Most keys in one `Get` or `GetThrough` request, however narrow the rows.
pub(crate) const MAX_KEYS_PER_LOOKUP: usize = 4096;

/// Keys one lookup request of `table` may ask for: as many as fit [`LOOKUP_ANSWER_BYTES`] if
/// every row found were as wide as the table's columns allow.
pub(crate) fn keys_per_lookup(table: &TableDef) -> usize {
    let widest_row: u64 = table.columns.iter().map(|c| c.ty.max_value_bytes().saturating_add(4)).sum();
    let widest_row = widest_row.clamp(1, cairn_common::row::MAX_ROW_BYTES as u64);
    usize::try_from(LOOKUP_ANSWER_BYTES / widest_row).unwrap_or(MAX_KEYS_PER_LOOKUP).clamp(1, MAX_KEYS_PER_LOOKUP)
}

/// Takes the next request's worth of keys of each node group that has keys left (at most
/// `per_request` each, from the end: the order of the keys does not matter to the caller).
pub(crate) fn next_round<K>(queues: &mut [(NodeGroupId, Vec<K>)], per_request: usize) -> Vec<(NodeGroupId, Vec<K>)> {
    queues
        .iter_mut()
        .filter(|(_, keys)| !keys.is_empty())
        .map(|(group, keys)| {
            let keep = keys.len().saturating_sub(per_request);
            (*group, keys.split_off(keep))
        })
        .collect()
}

/// Reads rows by primary key. Every node group holding any of the keys is asked at the same
/// time; many keys (a long IN list, a lookup join's batch) go in rounds of at most
/// [`keys_per_lookup`] keys per node group, one request per node group in flight, so that no
/// request or answer frame grows with the list. Returns the rows found, by encoded primary key,
/// within the statement's row budget (memory.rs).
pub(crate) async fn fetch_keys<B: Backend>(exec: &Exec<B>, table: &TableDef, keys: Vec<Vec<Value>>) -> Result<HashMap<Vec<u8>, Vec<u8>>, Error> {
    let mut by_group: HashMap<NodeGroupId, Vec<Vec<Value>>> = HashMap::new();
    let mut seen = HashSet::new();
    for k in keys {
        let encoded = encode_pk(table, &k)?;
        if !seen.insert(encoded) {
            continue;
        }
        let partition = key::partition_of_primary_key(table, &k)?;
        let group = table.node_group_of(partition).ok_or_else(|| Error::internal("partition without a node group"))?;
        by_group.entry(group).or_default().push(k);
    }
    let mut found = HashMap::new();
    if by_group.is_empty() {
        return Ok(found);
    }
    let table_ref = TableRef { id: table.id, version: table.version };
    let mut queues: Vec<(NodeGroupId, Vec<Vec<Value>>)> = by_group.into_iter().collect();
    queues.sort_by_key(|(g, _)| *g);
    let per_request = keys_per_lookup(table);
    let mut budget = exec.budget();
    loop {
        let requests = next_round(&mut queues, per_request);
        if requests.is_empty() {
            return Ok(found);
        }
        let access = exec.access.clone();
        let futures: Vec<_> = requests
            .iter()
            .map(|(group, keys)| {
                Stats::bump(&exec.engine.stats.key_lookups);
                access.read(*group, ReadOp::Get { table: table_ref, keys: keys.clone() })
            })
            .collect();
        let answers = join_all(futures).await;
        for ((_, keys), answer) in requests.into_iter().zip(answers) {
            match answer? {
                ReadResult::Rows(rows) => {
                    if rows.len() != keys.len() {
                        return Err(Error::internal("a node group answered a different number of keys than asked"));
                    }
                    for (k, row) in keys.iter().zip(rows) {
                        if let Some(row) = row {
                            let key = encode_pk(table, k)?;
                            budget.charge((key.len() + row.len() + 2 * std::mem::size_of::<Vec<u8>>()) as u64)?;
                            found.insert(key, row);
                        }
                    }
                }
                _ => return Err(Error::internal("a node group answered a key lookup with something else")),
            }
        }
    }
}

/// How a value compares as a key of a column.
pub(crate) enum KeyValue {
    /// The value as the column stores it: look it up.
    Exact(Value),
    /// No stored value can equal it (NULL, 1.5 for an INT key, a date that is not a date).
    NoMatch,
    /// Equality is not key equality here (a number against a string key compares
    /// numerically): evaluate the condition over scanned rows instead.
    Incompatible,
}

/// Converts a lookup value to the key column's type exactly, as the equality `col = value`
/// would compare.
pub(crate) fn key_value(v: Value, ty: &ColumnType) -> KeyValue {
    if v.is_null() {
        return KeyValue::NoMatch;
    }
    match ty {
        ColumnType::Int { width, unsigned, .. } => {
            let exact = match &v {
                Value::Int(i) => Some(Decimal::from_i64(*i)),
                Value::UInt(u) => Some(Decimal::from_u64(*u)),
                Value::Decimal(d) => Some(*d),
                Value::Double(f) => Decimal::from_f64(*f),
                Value::Text(_) | Value::Bytes(_) => {
                    // MySQL compares an integer column with a string as numbers.
                    let text = v.to_text();
                    Some(cairn_common::value::parse_decimal_prefix(&text).value)
                }
                _ => return KeyValue::Incompatible,
            };
            let Some(d) = exact else { return KeyValue::NoMatch };
            let Some(int) = d.rescale(0).filter(|i| i.rescale(d.scale()) == Some(d)) else { return KeyValue::NoMatch };
            let n = int.mantissa();
            if *unsigned {
                if n < 0 || n > width.unsigned_max() as i128 {
                    return KeyValue::NoMatch;
                }
                KeyValue::Exact(Value::UInt(n as u64))
            } else {
                let (lo, hi) = width.signed_range();
                if n < lo as i128 || n > hi as i128 {
                    return KeyValue::NoMatch;
                }
                KeyValue::Exact(Value::Int(n as i64))
            }
        }
        ColumnType::Year => match v.to_i64() {
            Some(y) if y == 0 || (1901..=2155).contains(&y) => KeyValue::Exact(Value::Int(y)),
            Some(_) => KeyValue::NoMatch,
            None => KeyValue::Incompatible,
        },
        ColumnType::Decimal { precision, scale } => {
            let d = match &v {
                Value::Text(_) | Value::Bytes(_) => Some(cairn_common::value::parse_decimal_prefix(&v.to_text()).value),
                Value::Date(_) | Value::DateTime(_) | Value::Time(_) => return KeyValue::Incompatible,
                other => other.to_decimal(),
            };
            match d.and_then(|d| d.rescale(*scale).filter(|r| r.rescale(d.scale()) == Some(d) || d.scale() <= *scale)) {
                Some(r) if r.fits(*precision, *scale) && Some(r) == d.and_then(|d| d.rescale(*scale)) => KeyValue::Exact(Value::Decimal(r)),
                _ => KeyValue::NoMatch,
            }
        }
        ColumnType::Float | ColumnType::Double => KeyValue::Incompatible,
        ColumnType::Char { binary: true, .. } | ColumnType::VarChar { binary: true, .. } | ColumnType::Lob { binary: true, .. } => {
            match v {
                Value::Text(s) => KeyValue::Exact(Value::Bytes(s.into_bytes())),
                Value::Bytes(b) => KeyValue::Exact(Value::Bytes(b)),
                _ => KeyValue::Incompatible,
            }
        }
        ColumnType::Enum { values } => match &v {
            Value::Text(s) => match values.iter().find(|e| Collation::CaseInsensitive.equal(e, s)) {
                Some(e) => KeyValue::Exact(Value::Text(e.clone())),
                None => KeyValue::NoMatch,
            },
            _ => KeyValue::Incompatible,
        },
        // A SET column equals a string only if the string is, up to case, the stored text: the
        // members in definition order (MySQL compares SET values as strings).
        ColumnType::Set { values } => match &v {
            Value::Text(s) => {
                let parsed = cairn_common::set_value::parse_text(values, s);
                let canonical = cairn_common::set_value::render(values, parsed.mask);
                if !parsed.unknown && Collation::CaseInsensitive.equal(&canonical, s) {
                    KeyValue::Exact(Value::Text(canonical))
                } else {
                    KeyValue::NoMatch
                }
            }
            _ => KeyValue::Incompatible,
        },
        ColumnType::Char { .. } | ColumnType::VarChar { .. } | ColumnType::Lob { .. } => match v {
            Value::Text(s) => KeyValue::Exact(Value::Text(s)),
            Value::Bytes(b) => match String::from_utf8(b) {
                Ok(s) => KeyValue::Exact(Value::Text(s)),
                Err(_) => KeyValue::Incompatible,
            },
            _ => KeyValue::Incompatible,
        },
        ColumnType::Date => match &v {
            Value::Date(d) => KeyValue::Exact(Value::Date(*d)),
            Value::DateTime(dt) if dt.time_of_day().to_micros() == 0 => KeyValue::Exact(Value::Date(dt.date)),
            Value::DateTime(_) => KeyValue::NoMatch,
            Value::Text(_) | Value::Bytes(_) => match temporal::parse_datetime(&v.to_text()) {
                Some(dt) if dt.time_of_day().to_micros() == 0 => KeyValue::Exact(Value::Date(dt.date)),
                Some(_) => KeyValue::NoMatch,
                None => KeyValue::Incompatible,
            },
            _ => KeyValue::Incompatible,
        },
        ColumnType::DateTime { fsp } | ColumnType::Timestamp { fsp } => match v.to_datetime() {
            Some(dt) if v.is_temporal() || v.is_string() => match dt.round_to_fsp(*fsp) {
                Some(r) if r == dt => KeyValue::Exact(Value::DateTime(dt)),
                _ => KeyValue::NoMatch,
            },
            _ => KeyValue::Incompatible,
        },
        ColumnType::Time { .. } => match v.to_time() {
            Some(t) if v.is_temporal() || v.is_string() => KeyValue::Exact(Value::Time(t)),
            _ => KeyValue::Incompatible,
        },
    }
}

/// The number of rows of a table: every node group's partition counts, asked at once.
pub(crate) async fn count_rows<B: Backend>(exec: &Exec<B>, table: &TableDef) -> Result<u64, Error> {
    let mut groups: Vec<NodeGroupId> = table.partitions.clone();
    groups.sort();
    groups.dedup();
    let table_ref = TableRef { id: table.id, version: table.version };
    let access = exec.access.clone();
    let futures: Vec<_> = groups.iter().map(|g| access.read(*g, ReadOp::Count { table: table_ref })).collect();
    let mut total = 0u64;
    for answer in join_all(futures).await {
        match answer? {
            ReadResult::Counts(counts) => total += counts.iter().map(|(_, n)| n).sum::<u64>(),
            _ => return Err(Error::internal("a node group answered a row count with something else")),
        }
    }
    Ok(total)
}

/// Primary-key lookups, in key order; falls back to a scan with the table's WHERE when a key
/// value is not comparable as a key.
async fn run_get<B: Backend>(exec: &Exec<B>, table: Arc<TableDef>, keys: &[Vec<Expr>], fallback: Option<&Expr>) -> Result<BoxStream, Error> {
    let mut ex = exec.clone();
    let mut wanted = Vec::with_capacity(keys.len());
    for k in keys {
        let mut values = Vec::with_capacity(k.len());
        let mut matchable = true;
        for (e, &col) in k.iter().zip(&table.primary_key) {
            let v = ex.eval(e, &[])?;
            match key_value(v, &table.columns[col].ty) {
                KeyValue::Exact(v) => values.push(v),
                KeyValue::NoMatch => {
                    matchable = false;
                    break;
                }
                KeyValue::Incompatible => {
                    let filter = match fallback {
                        Some(f) => Some(bind(f, &exec.bound, &exec.snapshot)?),
                        None => None,
                    };
                    let projection = (0..table.columns.len() as u32).collect();
                    Stats::bump(&exec.engine.stats.scans);
                    return Ok(Box::new(ScanStream::new(exec, table, filter, projection, None)));
                }
            }
        }
        if matchable {
            wanted.push(values);
        }
    }
    // One key (the hot path): one request to the one node group that holds it.
    if let [key] = wanted.as_slice() {
        let partition = key::partition_of_primary_key(&table, key)?;
        let group = table.node_group_of(partition).ok_or_else(|| Error::internal("partition without a node group"))?;
        Stats::bump(&exec.engine.stats.key_lookups);
        let op = ReadOp::Get { table: TableRef { id: table.id, version: table.version }, keys: wanted };
        let rows = match exec.access.read(group, op).await? {
            ReadResult::Rows(rows) if rows.len() == 1 => rows,
            _ => return Err(Error::internal("a node group answered a one-key lookup with something else")),
        };
        let layout = exec.engine.layout(&table);
        let found = match rows.into_iter().next().flatten() {
            Some(bytes) => vec![layout.decode(&bytes)?],
            None => Vec::new(),
        };
        return Ok(VecStream::boxed(found));
    }
    // Rows come back in primary-key order, as MySQL returns a lookup of several keys.
    let mut ordered: Vec<(Vec<u8>, Vec<Value>)> = Vec::with_capacity(wanted.len());
    for k in wanted {
        ordered.push((encode_pk(&table, &k)?, k));
    }
    ordered.sort_by(|a, b| a.0.cmp(&b.0));
    ordered.dedup_by(|a, b| a.0 == b.0);
    let found = fetch_keys(exec, &table, ordered.iter().map(|(_, k)| k.clone()).collect()).await?;
    let layout = exec.engine.layout(&table);
    let mut rows = Vec::with_capacity(found.len());
    for (encoded, _) in ordered {
        if let Some(bytes) = found.get(&encoded) {
            rows.push(layout.decode(bytes)?);
        }
    }
    Ok(VecStream::boxed(rows))
}

/// One node group's part of a scan.
struct GroupScan {
    group: NodeGroupId,
    resume: Option<ScanPosition>,
    done: bool,
    /// Rows still wanted from this group (the scan's LIMIT), if limited.
    remaining: Option<u64>,
}

/// A parallel scan of every node group of a table, a batch from each at a time.
pub(crate) struct ScanStream<B: Backend> {
    access: crate::txn::Access<B>,
    table: TableRef,
    width: usize,
    projection: Vec<u32>,
    layout: RowLayout,
    filter: Option<Expr>,
    groups: Vec<GroupScan>,
    max_rows: u32,
    max_bytes: u32,
    /// Conjuncts of the filter with an IN list too long to ship ([`split_long_lists`]),
    /// checked here on each row the data nodes return.
    local: Option<(Expr, Exec<B>)>,
}

impl<B: Backend> ScanStream<B> {
    pub(crate) fn new(exec: &Exec<B>, table: Arc<TableDef>, filter: Option<Expr>, projection: Vec<u32>, limit: Option<u64>) -> ScanStream<B> {
        // With conditions kept here, the data nodes must return their columns and cannot stop
        // at a LIMIT (the Limit operator above the scan still does).
        let (filter, local) = split_long_lists(filter);
        let mut projection = projection;
        let mut limit = limit;
        if let Some(local) = &local {
            widen_projection(&mut projection, local);
            limit = None;
        }
        let mut groups: Vec<NodeGroupId> = table.partitions.clone();
        groups.sort();
        groups.dedup();
        let indexes: Vec<usize> = projection.iter().map(|&c| c as usize).collect();
        ScanStream {
            access: exec.access.clone(),
            table: TableRef { id: table.id, version: table.version },
            width: table.columns.len(),
            layout: exec.engine.layout(&table).project(&indexes),
            projection,
            filter,
            groups: groups.into_iter().map(|group| GroupScan { group, resume: None, done: false, remaining: limit }).collect(),
            max_rows: exec.engine.config.scan_batch_rows,
            max_bytes: exec.engine.config.scan_batch_bytes,
            local: local.map(|e| (e, exec.clone())),
        }
    }
}

impl<B: Backend> RowStream for ScanStream<B> {
    fn next_batch(&mut self) -> BatchFuture<'_> {
        Box::pin(async move {
            loop {
                let active: Vec<usize> = (0..self.groups.len()).filter(|&i| !self.groups[i].done).collect();
                if active.is_empty() {
                    return None;
                }
                let futures: Vec<_> = active
                    .iter()
                    .map(|&i| {
                        let g = &self.groups[i];
                        let op = ReadOp::Scan {
                            table: self.table,
                            partitions: Vec::new(),
                            filter: self.filter.clone(),
                            projection: Some(self.projection.clone()),
                            limit: g.remaining,
                            resume: g.resume,
                            max_rows: self.max_rows,
                            max_bytes: self.max_bytes,
                        };
                        self.access.read(g.group, op)
                    })
                    .collect();
                let answers = join_all(futures).await;
                let mut out = Vec::new();
                for (&i, answer) in active.iter().zip(answers) {
                    let (rows, resume) = match answer {
                        Ok(ReadResult::ScanBatch { rows, resume }) => (rows, resume),
                        Ok(_) => return Some(Err(Error::internal("a node group answered a scan with something else"))),
                        Err(e) => return Some(Err(e)),
                    };
                    let g = &mut self.groups[i];
                    if let Some(r) = g.remaining.as_mut() {
                        *r = r.saturating_sub(rows.len() as u64);
                    }
                    g.resume = resume;
                    g.done = resume.is_none() || g.remaining == Some(0);
                    for bytes in rows {
                        let values = match self.layout.decode(&bytes) {
                            Ok(v) => v,
                            Err(e) => return Some(Err(e)),
                        };
                        let mut row = vec![Value::Null; self.width];
                        for (&c, v) in self.projection.iter().zip(values) {
                            if let Some(slot) = row.get_mut(c as usize) {
                                *slot = v;
                            }
                        }
                        if let Some((predicate, exec)) = self.local.as_mut() {
                            match exec.matches(predicate, &row) {
                                Ok(true) => {}
                                Ok(false) => continue,
                                Err(e) => return Some(Err(e)),
                            }
                        }
                        out.push(row);
                    }
                }
                if !out.is_empty() {
                    return Some(Ok(out));
                }
            }
        })
    }
}

/// Adds the columns `e` reads to a scan's projection.
pub(crate) fn widen_projection(projection: &mut Vec<u32>, e: &Expr) {
    for c in e.columns() {
        if !projection.contains(&c) {
            projection.push(c);
        }
    }
}

/// Runs a plan and returns its rows as a stream. The stream owns what it needs, so it may
/// outlive the plan (a prepared statement's plan is borrowed only while opening).
pub(crate) async fn run_query<B: Backend>(root: &Node, exec: &Exec<B>) -> Result<BoxStream, Error> {
    if exec.bound.lists.is_empty() {
        return open(root, exec).await;
    }
    let substituted = substitute_lists(root, &exec.bound);
    open(&substituted, exec).await
}

/// Runs a plan to completion (subqueries, small results).
pub(crate) async fn collect_query<B: Backend>(root: &Node, exec: &Exec<B>) -> Result<Vec<Row>, Error> {
    let mut stream = run_query(root, exec).await?;
    drain(&mut stream, exec.budget()).await
}
