//! Executing the index-based operators: unique-index lookups, ordered-index range scans (merged
//! across node groups when the query wants index order), lookup joins through an index, and
//! aggregations pushed to the data nodes.
//!
//! - A unique lookup is two rounds: the index's hidden table (one `Get` per node group holding
//!   a key) gives primary keys, then the rows are read by primary key. An entry whose row is
//!   gone or no longer has the key (a statement cut off by a node failure before transactions
//!   span node groups) reads as no row, because the conditions are checked again above.
//! - An index scan sends `IndexScan` to every node group. Each answers in index order over
//!   its partitions; when the plan needs index order (ORDER BY, MIN/MAX), the groups' streams
//!   are merged here by re-encoding each row's index key.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use cairn_common::catalog::{IndexDef, TableDef};
use cairn_common::collation::Collation;
use cairn_common::decimal::Decimal;
use cairn_common::error::Error;
use cairn_common::expr::Expr;
use cairn_common::ids::NodeGroupId;
use cairn_common::key::{self, encode_key_value};
use cairn_common::ops::{IndexPosition, KeyBound, KeyRange, PartialAggregate, ReadOp, ReadResult, ScanPosition, TableRef, Through};
use cairn_common::row::RowLayout;
use cairn_common::Value;

use crate::access::{IndexRange, LookupVia};
use crate::backend::Backend;
use crate::compile::{AggregateCall, AggregateFunc};
use crate::engine::Stats;
use crate::exec::{BoxStream, Exec, KeyValue, ScanStream, bind, encode_pk, fetch_keys, key_value, normalize_into, vec_stream};
use crate::join::join_all;
use crate::outcome::{Row, RowStream};
use crate::types::Kind;

type BatchFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Option<Result<Vec<Row>, Error>>> + Send + 'a>>;

/// The index definition with this id.
pub(crate) fn index_def(table: &TableDef, index: u32) -> Result<&IndexDef, Error> {
    table
        .indexes
        .iter()
        .find(|ix| ix.id == index)
        .ok_or_else(|| Error::temporary(format!("index {index} of {}.{} is gone; retry the statement", table.database, table.name)))
}

/// The hidden table of a unique index, from the current catalog.
fn index_table<B: Backend>(exec: &Exec<B>, ix: &IndexDef) -> Result<Arc<TableDef>, Error> {
    let id = ix.table.ok_or_else(|| Error::internal(format!("unique index {} has no table", ix.name)))?;
    let catalog = exec.engine.backend.catalog();
    let def = catalog.table(id).ok_or_else(|| Error::temporary(format!("the table of index {} is gone; retry the statement", ix.name)))?;
    Ok(Arc::new(def.clone()))
}

/// The table's node groups, each once.
fn groups_of(table: &TableDef) -> Vec<NodeGroupId> {
    let mut groups = table.partitions.clone();
    groups.sort();
    groups.dedup();
    groups
}

/// Key values converted to the columns' types; None when one cannot match any stored value,
/// Err(()) when one is not comparable as a key (the caller falls back to a scan).
fn key_values(table: &TableDef, columns: &[usize], values: Vec<Value>) -> Result<Option<Vec<Value>>, ()> {
    let mut out = Vec::with_capacity(values.len());
    for (v, &c) in values.into_iter().zip(columns) {
        match key_value(v, &table.columns[c].ty) {
            KeyValue::Exact(v) => out.push(v),
            KeyValue::NoMatch => return Ok(None),
            KeyValue::Incompatible => return Err(()),
        }
    }
    Ok(Some(out))
}

fn encode_values(table: &TableDef, columns: &[usize], values: &[Value]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(16);
    for (v, &c) in values.iter().zip(columns) {
        let column = &table.columns[c];
        encode_key_value(v, &column.ty, column.comparison(), &mut out)?;
    }
    Ok(out)
}

/// Reads base rows through a unique index: for each key (values of the index columns), the
/// row whose entry the index holds, if any. Returns the rows found, by encoded unique key.
///
/// Where the statement reads a node group plainly (see `Access::reads_plainly`), the node
/// group holding a key's entry follows it to the base row itself (`ReadOp::GetThrough`): one
/// round trip when the row lives in the same node group (always, with one node group). Entries
/// whose rows live elsewhere, and keys read inside a transaction that holds state in their
/// node group, take a second round for the rows.
async fn fetch_by_unique<B: Backend>(exec: &Exec<B>, table: &TableDef, ix: &IndexDef, keys: Vec<Vec<Value>>) -> Result<HashMap<Vec<u8>, Vec<u8>>, Error> {
    let hidden = index_table(exec, ix)?;
    let width = ix.columns.len();
    let mut through: BTreeMap<NodeGroupId, Vec<(Vec<u8>, Vec<Value>)>> = BTreeMap::new();
    let mut entry_keys: Vec<Vec<Value>> = Vec::new();
    let mut seen = HashSet::with_capacity(keys.len());
    for k in keys {
        let ukey = encode_pk(&hidden, &k)?;
        if !seen.insert(ukey.clone()) {
            continue;
        }
        let partition = key::partition_of_primary_key(&hidden, &k)?;
        let group = hidden.node_group_of(partition).ok_or_else(|| Error::internal("partition without a node group"))?;
        if exec.access.reads_plainly(group) {
            through.entry(group).or_default().push((ukey, k));
        } else {
            entry_keys.push(k);
        }
    }
    let mut out = HashMap::with_capacity(seen.len());
    // (encoded unique key, primary key of the base row) of entries whose rows are still to read.
    let mut pending: Vec<(Vec<u8>, Vec<Value>)> = Vec::new();
    let layout = exec.engine.layout(&hidden);
    if !through.is_empty() {
        let index_ref = TableRef { id: hidden.id, version: hidden.version };
        let base_ref = TableRef { id: table.id, version: table.version };
        // In rounds, as `fetch_keys` does: the answers carry base rows, so the base table's
        // width sets how many keys one request may ask for.
        let mut queues: Vec<(NodeGroupId, Vec<(Vec<u8>, Vec<Value>)>)> = through.into_iter().collect();
        let per_request = crate::exec::keys_per_lookup(table);
        loop {
            let requests = crate::exec::next_round(&mut queues, per_request);
            if requests.is_empty() {
                break;
            }
            let futures: Vec<_> = requests
                .iter()
                .map(|(group, keys)| {
                    Stats::bump(&exec.engine.stats.key_lookups);
                    let op = ReadOp::GetThrough { index: index_ref, base: base_ref, keys: keys.iter().map(|(_, k)| k.clone()).collect() };
                    exec.access.read(*group, op)
                })
                .collect();
            let answers = join_all(futures).await;
            for ((_, keys), answer) in requests.into_iter().zip(answers) {
                let ReadResult::Through(found) = answer? else {
                    return Err(Error::internal("a node group answered a lookup through an index with something else"));
                };
                if found.len() != keys.len() {
                    return Err(Error::internal("a node group answered a different number of keys than asked"));
                }
                for ((ukey, _), found) in keys.into_iter().zip(found) {
                    match found {
                        Through::Absent => {}
                        Through::Row(row) => {
                            out.insert(ukey, row);
                        }
                        Through::Entry(entry) => pending.push((ukey, layout.decode(&entry)?.split_off(width))),
                    }
                }
            }
            if out.len() + pending.len() > exec.limit() {
                return Err(crate::exec::too_many_rows(exec.limit()));
            }
        }
    }
    if !entry_keys.is_empty() {
        for (ukey, entry) in fetch_keys(exec, &hidden, entry_keys).await? {
            pending.push((ukey, layout.decode(&entry)?.split_off(width)));
        }
    }
    if pending.is_empty() {
        return Ok(out);
    }
    let rows = fetch_keys(exec, table, pending.iter().map(|(_, pk)| pk.clone()).collect()).await?;
    for (ukey, pk) in pending {
        let encoded = encode_values(table, &table.primary_key, &pk)?;
        if let Some(row) = rows.get(&encoded) {
            out.insert(ukey, row.clone());
        }
    }
    Ok(out)
}

/// Rows by unique index, in key order; a scan with the table's WHERE when a key value is not
/// comparable as a key.
pub(crate) async fn run_unique_get<B: Backend>(exec: &Exec<B>, table: Arc<TableDef>, index: u32, keys: &[Vec<Expr>], fallback: Option<&Expr>) -> Result<BoxStream, Error> {
    let ix = index_def(&table, index)?.clone();
    let mut ex = exec.clone();
    let mut wanted: Vec<(Vec<u8>, Vec<Value>)> = Vec::with_capacity(keys.len());
    for k in keys {
        let mut values = Vec::with_capacity(k.len());
        for e in k {
            values.push(ex.eval(e, &[])?);
        }
        match key_values(&table, &ix.columns, values) {
            Ok(Some(v)) => wanted.push((encode_values(&table, &ix.columns, &v)?, v)),
            Ok(None) => {}
            Err(()) => {
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
    wanted.sort_by(|a, b| a.0.cmp(&b.0));
    wanted.dedup_by(|a, b| a.0 == b.0);
    Stats::bump(&exec.engine.stats.key_lookups);
    let found = fetch_by_unique(exec, &table, &ix, wanted.iter().map(|(_, k)| k.clone()).collect()).await?;
    let layout = exec.engine.layout(&table);
    let mut rows = Vec::with_capacity(found.len());
    for (encoded, _) in wanted {
        if let Some(bytes) = found.get(&encoded) {
            rows.push(layout.decode(bytes)?);
        }
    }
    Ok(vec_stream(rows))
}

/// The columns a lookup's key gives values for.
pub(crate) fn lookup_columns(table: &TableDef, via: LookupVia, key_len: usize) -> Result<Vec<usize>, Error> {
    Ok(match via {
        LookupVia::Primary => table.primary_key.clone(),
        LookupVia::Unique(index) => index_def(table, index)?.columns.clone(),
        LookupVia::Ordered(index) => index_def(table, index)?.columns.iter().take(key_len).copied().collect(),
    })
}

/// The rows of `table` matching each key (None: a key that matches nothing), for a batch of a
/// lookup join's left rows.
pub(crate) async fn lookup_rows<B: Backend>(exec: &Exec<B>, table: &TableDef, via: LookupVia, columns: &[usize], keys: &[Option<Vec<Value>>]) -> Result<Vec<Vec<Row>>, Error> {
    let layout = exec.engine.layout(table);
    let wanted: Vec<Vec<Value>> = keys.iter().flatten().cloned().collect();
    let mut out: Vec<Vec<Row>> = Vec::with_capacity(keys.len());
    match via {
        LookupVia::Primary | LookupVia::Unique(_) => {
            let found = match via {
                LookupVia::Unique(index) => fetch_by_unique(exec, table, index_def(table, index)?, wanted).await?,
                _ => fetch_keys(exec, table, wanted).await?,
            };
            for k in keys {
                let row = match k {
                    Some(k) => match found.get(&encode_values(table, columns, k)?) {
                        Some(bytes) => vec![layout.decode(bytes)?],
                        None => Vec::new(),
                    },
                    None => Vec::new(),
                };
                out.push(row);
            }
        }
        LookupVia::Ordered(index) => {
            let mut prefixes: Vec<Vec<u8>> = Vec::with_capacity(wanted.len());
            for k in &wanted {
                prefixes.push(encode_values(table, columns, k)?);
            }
            prefixes.sort();
            prefixes.dedup();
            let mut by_prefix: HashMap<Vec<u8>, Vec<Row>> = HashMap::new();
            if !prefixes.is_empty() {
                let ranges: Vec<KeyRange> = prefixes.into_iter().map(KeyRange::prefix).collect();
                let projection: Vec<u32> = (0..table.columns.len() as u32).collect();
                let mut stream = IndexScanStream::new(exec, Arc::new(table.clone()), index, ranges, false, false, None, projection, None);
                let mut budget = exec.budget();
                while let Some(batch) = stream.next_batch().await {
                    for row in batch? {
                        budget.charge_row(&row)?;
                        let prefix: Vec<Value> = columns.iter().map(|&c| row[c].clone()).collect();
                        by_prefix.entry(encode_values(table, columns, &prefix)?).or_default().push(row);
                    }
                }
            }
            for k in keys {
                let rows = match k {
                    Some(k) => by_prefix.get(&encode_values(table, columns, k)?).cloned().unwrap_or_default(),
                    None => Vec::new(),
                };
                out.push(rows);
            }
        }
    }
    Ok(out)
}

/// What binding planned ranges gave.
pub(crate) enum BoundRanges {
    /// These ranges (empty: the whole index).
    Ranges(Vec<KeyRange>),
    /// No row can match.
    Nothing,
}

/// Evaluates planned ranges into key ranges of the index's encoding, sorted and without
/// duplicates. Values that cannot be expressed exactly leave their bound open (the pushed
/// filter decides); an equality value no stored key can equal drops its range.
pub(crate) fn bind_ranges<B: Backend>(exec: &mut Exec<B>, table: &TableDef, ix: &IndexDef, ranges: &[IndexRange]) -> Result<BoundRanges, Error> {
    if ranges.is_empty() {
        // No range planned: the whole index (ORDER BY, MIN/MAX).
        return Ok(BoundRanges::Ranges(Vec::new()));
    }
    let mut out: Vec<KeyRange> = Vec::with_capacity(ranges.len());
    'ranges: for r in ranges {
        let mut prefix = Vec::with_capacity(16);
        for (e, &c) in r.eq.iter().zip(&ix.columns) {
            let column = &table.columns[c];
            match key_value(exec.eval(e, &[])?, &column.ty) {
                KeyValue::Exact(v) => encode_key_value(&v, &column.ty, column.comparison(), &mut prefix)?,
                KeyValue::NoMatch => continue 'ranges,
                // Compared otherwise than as a key: the whole index, filtered.
                KeyValue::Incompatible => return Ok(BoundRanges::Ranges(Vec::new())),
            }
        }
        let next = ix.columns.get(r.eq.len()).map(|&c| &table.columns[c]);
        let mut bound = |b: &Option<(Expr, bool)>| -> Result<Option<KeyBound>, Error> {
            let (Some((e, inclusive)), Some(column)) = (b, next) else {
                return Ok((!prefix.is_empty()).then(|| KeyBound { key: prefix.clone(), inclusive: true }));
            };
            let v = exec.eval(e, &[])?;
            Ok(match key_value(v, &column.ty) {
                KeyValue::Exact(v) => {
                    let mut key = prefix.clone();
                    encode_key_value(&v, &column.ty, column.comparison(), &mut key)?;
                    Some(KeyBound { key, inclusive: *inclusive })
                }
                // Open on this side (within the prefix): the filter decides.
                KeyValue::NoMatch | KeyValue::Incompatible => (!prefix.is_empty()).then(|| KeyBound { key: prefix.clone(), inclusive: true }),
            })
        };
        let low = bound(&r.low)?;
        let high = bound(&r.high)?;
        out.push(KeyRange { low, high });
    }
    if out.is_empty() {
        return Ok(BoundRanges::Nothing);
    }
    if out.iter().any(|r| r.low.is_none() && r.high.is_none()) {
        return Ok(BoundRanges::Ranges(Vec::new()));
    }
    out.sort_by(|a, b| {
        let key = |r: &KeyRange| r.low.as_ref().map(|b| b.key.clone()).unwrap_or_default();
        key(a).cmp(&key(b))
    });
    out.dedup();
    Ok(BoundRanges::Ranges(out))
}

/// One node group's part of an index scan.
struct GroupPart {
    group: NodeGroupId,
    resume: Option<IndexPosition>,
    done: bool,
    remaining: Option<u64>,
    /// Rows received and not yet passed on (merging), with their index keys.
    buffer: VecDeque<(Vec<u8>, Row)>,
}

/// A parallel index scan of every node group of a table; merged by index key when `ordered`.
pub(crate) struct IndexScanStream<B: Backend> {
    backend: Arc<B>,
    table: Arc<TableDef>,
    table_ref: TableRef,
    index: u32,
    index_columns: Vec<usize>,
    ranges: Vec<KeyRange>,
    descending: bool,
    ordered: bool,
    filter: Option<Expr>,
    projection: Vec<u32>,
    layout: RowLayout,
    parts: Vec<GroupPart>,
    max_rows: u32,
    max_bytes: u32,
}

impl<B: Backend> IndexScanStream<B> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        exec: &Exec<B>,
        table: Arc<TableDef>,
        index: u32,
        ranges: Vec<KeyRange>,
        descending: bool,
        ordered: bool,
        filter: Option<Expr>,
        projection: Vec<u32>,
        limit: Option<u64>,
    ) -> IndexScanStream<B> {
        let indexes: Vec<usize> = projection.iter().map(|&c| c as usize).collect();
        let index_columns = table.indexes.iter().find(|ix| ix.id == index).map(|ix| ix.columns.clone()).unwrap_or_default();
        Stats::bump(&exec.engine.stats.index_scans);
        IndexScanStream {
            backend: exec.engine.backend.clone(),
            table_ref: TableRef { id: table.id, version: table.version },
            layout: exec.engine.layout(&table).project(&indexes),
            parts: groups_of(&table)
                .into_iter()
                .map(|group| GroupPart { group, resume: None, done: false, remaining: limit, buffer: VecDeque::new() })
                .collect(),
            table,
            index,
            index_columns,
            ranges,
            descending,
            ordered,
            filter,
            projection,
            max_rows: exec.engine.config.scan_batch_rows,
            max_bytes: exec.engine.config.scan_batch_bytes,
        }
    }

    /// Asks the listed groups for their next page at once, and buffers the rows.
    async fn fetch(&mut self, which: Vec<usize>) -> Result<(), Error> {
        let futures: Vec<_> = which
            .iter()
            .map(|&i| {
                let p = &self.parts[i];
                let op = ReadOp::IndexScan {
                    table: self.table_ref,
                    index: self.index,
                    partitions: Vec::new(),
                    ranges: self.ranges.clone(),
                    descending: self.descending,
                    filter: self.filter.clone(),
                    projection: Some(self.projection.clone()),
                    limit: p.remaining,
                    resume: p.resume.clone(),
                    max_rows: self.max_rows,
                    max_bytes: self.max_bytes,
                };
                self.backend.read(p.group, op)
            })
            .collect();
        let answers = join_all(futures).await;
        for (&i, answer) in which.iter().zip(answers) {
            let (rows, resume) = match answer? {
                ReadResult::IndexBatch { rows, resume } => (rows, resume),
                _ => return Err(Error::internal("a node group answered an index scan with something else")),
            };
            let width = self.table.columns.len();
            let part = &mut self.parts[i];
            if let Some(r) = part.remaining.as_mut() {
                *r = r.saturating_sub(rows.len() as u64);
            }
            part.done = resume.is_none() || part.remaining == Some(0);
            part.resume = resume;
            for bytes in rows {
                let values = self.layout.decode(&bytes)?;
                let mut row = vec![Value::Null; width];
                for (&c, v) in self.projection.iter().zip(values) {
                    if let Some(slot) = row.get_mut(c as usize) {
                        *slot = v;
                    }
                }
                let key = if self.ordered {
                    let values: Vec<Value> = self.index_columns.iter().map(|&c| row[c].clone()).collect();
                    encode_values(&self.table, &self.index_columns, &values)?
                } else {
                    Vec::new()
                };
                part.buffer.push_back((key, row));
            }
        }
        Ok(())
    }

    async fn next_unordered(&mut self) -> Option<Result<Vec<Row>, Error>> {
        loop {
            let active: Vec<usize> = (0..self.parts.len()).filter(|&i| !self.parts[i].done).collect();
            if active.is_empty() {
                return None;
            }
            if let Err(e) = self.fetch(active).await {
                return Some(Err(e));
            }
            let out: Vec<Row> = self.parts.iter_mut().flat_map(|p| p.buffer.drain(..).map(|(_, r)| r)).collect();
            if !out.is_empty() {
                return Some(Ok(out));
            }
        }
    }

    async fn next_ordered(&mut self) -> Option<Result<Vec<Row>, Error>> {
        let batch_size = self.max_rows.max(1) as usize;
        let mut out = Vec::with_capacity(batch_size);
        loop {
            // Every group that may still have rows must show its next one before choosing.
            let starved: Vec<usize> = (0..self.parts.len()).filter(|&i| self.parts[i].buffer.is_empty() && !self.parts[i].done).collect();
            if !starved.is_empty() {
                if !out.is_empty() {
                    return Some(Ok(out));
                }
                if let Err(e) = self.fetch(starved).await {
                    return Some(Err(e));
                }
                continue;
            }
            let mut best: Option<usize> = None;
            for (i, p) in self.parts.iter().enumerate() {
                let Some((key, _)) = p.buffer.front() else { continue };
                best = match best {
                    None => Some(i),
                    Some(b) => {
                        let current = &self.parts[b].buffer.front().expect("best has a row").0;
                        let better = if self.descending { key > current } else { key < current };
                        if better { Some(i) } else { Some(b) }
                    }
                };
            }
            let Some(b) = best else {
                return if out.is_empty() { None } else { Some(Ok(out)) };
            };
            let (_, row) = self.parts[b].buffer.pop_front().expect("chosen row");
            out.push(row);
            if out.len() >= batch_size {
                return Some(Ok(out));
            }
        }
    }
}

impl<B: Backend> RowStream for IndexScanStream<B> {
    fn next_batch(&mut self) -> BatchFuture<'_> {
        Box::pin(async move { if self.ordered { self.next_ordered().await } else { self.next_unordered().await } })
    }
}

/// Opens an index scan node: binds its ranges and starts the stream.
#[allow(clippy::too_many_arguments)]
pub(crate) fn open_index_scan<B: Backend>(
    exec: &Exec<B>,
    table: &Arc<TableDef>,
    index: u32,
    ranges: &[IndexRange],
    descending: bool,
    ordered: bool,
    filter: &Option<Expr>,
    projection: &[u32],
    limit: Option<u64>,
) -> Result<BoxStream, Error> {
    let ix = index_def(table, index)?.clone();
    let mut ex = exec.clone();
    if exec.access.txn.is_some() {
        // Inside a transaction the rows must include its own writes, which only plain reads
        // overlay: scan with the conditions, and sort here when index order is needed.
        return in_transaction_scan(exec, table, &ix, descending, ordered, filter, limit);
    }
    let bound = bind_ranges(&mut ex, table, &ix, ranges)?;
    let ranges = match bound {
        BoundRanges::Nothing => return Ok(vec_stream(Vec::new())),
        BoundRanges::Ranges(r) => r,
    };
    let filter = match filter {
        Some(f) => Some(bind(f, &exec.bound, &exec.snapshot)?),
        None => None,
    };
    // As in `ScanStream`: a long `IN (subquery)` list stays on the SQL node.
    let (filter, local) = crate::exec::split_long_lists(filter);
    let mut projection = projection.to_vec();
    let mut limit = limit;
    if let Some(local) = &local {
        crate::exec::widen_projection(&mut projection, local);
        limit = None;
    }
    if ordered {
        // Merging needs each row's index key.
        for &c in &ix.columns {
            if !projection.contains(&(c as u32)) {
                projection.push(c as u32);
            }
        }
        projection.sort_unstable();
    }
    let stream: BoxStream = Box::new(IndexScanStream::new(exec, table.clone(), index, ranges, descending, ordered, filter, projection, limit));
    Ok(crate::exec::filtered(stream, local, exec))
}

/// An index scan inside a transaction: a scan that sees the transaction's writes, with the
/// rows sorted by the index key when the plan needs index order.
#[allow(clippy::too_many_arguments)]
fn in_transaction_scan<B: Backend>(
    exec: &Exec<B>,
    table: &Arc<TableDef>,
    ix: &IndexDef,
    descending: bool,
    ordered: bool,
    filter: &Option<Expr>,
    limit: Option<u64>,
) -> Result<BoxStream, Error> {
    let filter = match filter {
        Some(f) => Some(bind(f, &exec.bound, &exec.snapshot)?),
        None => None,
    };
    let projection: Vec<u32> = (0..table.columns.len() as u32).collect();
    let scan: BoxStream = Box::new(ScanStream::new(exec, table.clone(), filter, projection, if ordered { None } else { limit }));
    if !ordered {
        return Ok(scan);
    }
    let keys = ix
        .columns
        .iter()
        .map(|&c| crate::plan::SortKey { expr: Expr::Column(c as u32), descending, collation: table.columns[c].comparison() })
        .collect();
    let sort = crate::plan::Node::Sort { input: Box::new(crate::plan::Node::Single), keys };
    Ok(Box::new(SortedStream { input: Some(scan), sort, exec: exec.clone(), limit, rows: None }))
}

/// Sorts a stream's rows (bounded like every materializing operator), then passes them on.
struct SortedStream<B: Backend> {
    input: Option<BoxStream>,
    sort: crate::plan::Node,
    exec: Exec<B>,
    limit: Option<u64>,
    rows: Option<std::vec::IntoIter<Row>>,
}

impl<B: Backend> RowStream for SortedStream<B> {
    fn next_batch(&mut self) -> BatchFuture<'_> {
        Box::pin(async move {
            if self.rows.is_none() {
                let mut input = self.input.take()?;
                let all = match crate::exec::drain(&mut input, self.exec.budget()).await {
                    Ok(rows) => rows,
                    Err(e) => return Some(Err(e)),
                };
                let crate::plan::Node::Sort { keys, .. } = &self.sort else { return None };
                let mut sorted = match crate::exec::sort_rows(self.exec.clone(), all, keys) {
                    Ok(rows) => rows,
                    Err(e) => return Some(Err(e)),
                };
                if let Some(n) = self.limit {
                    sorted.truncate(n as usize);
                }
                self.rows = Some(sorted.into_iter());
            }
            let batch: Vec<Row> = self.rows.as_mut()?.by_ref().take(1024).collect();
            if batch.is_empty() { None } else { Some(Ok(batch)) }
        })
    }
}

/// How an aggregate call is computed from partial results.
enum Merge {
    Count(usize),
    Sum { at: usize, exact: bool },
    Avg { sum: usize, count: usize, exact: bool },
    Extreme(usize),
}

/// Whether data nodes can compute these aggregate calls from partial results (not DISTINCT,
/// GROUP_CONCAT, several arguments, or arguments only the SQL node can evaluate).
pub(crate) fn can_push(calls: &[AggregateCall]) -> bool {
    plan_partials(calls).is_some()
}

/// The partial aggregates the data nodes compute for these calls, and how to finish each call.
fn plan_partials(calls: &[AggregateCall]) -> Option<(Vec<(PartialAggregate, Expr, Collation)>, Vec<Merge>)> {
    let mut partials: Vec<(PartialAggregate, Expr, Collation)> = Vec::new();
    let mut merges = Vec::with_capacity(calls.len());
    let null = Expr::Literal(Value::Null);
    for call in calls {
        if call.distinct {
            return None;
        }
        let exact = matches!(call.ty.kind(), Kind::Decimal { .. });
        let arg = || call.args.first().cloned();
        let merge = match call.func {
            AggregateFunc::CountStar => {
                partials.push((PartialAggregate::CountRows, null.clone(), Collation::Binary));
                Merge::Count(partials.len() - 1)
            }
            AggregateFunc::Count if call.args.len() == 1 => {
                partials.push((PartialAggregate::Count, arg()?, Collation::Binary));
                Merge::Count(partials.len() - 1)
            }
            AggregateFunc::Sum => {
                partials.push((if exact { PartialAggregate::SumExact } else { PartialAggregate::SumDouble }, arg()?, Collation::Binary));
                Merge::Sum { at: partials.len() - 1, exact }
            }
            AggregateFunc::Avg => {
                partials.push((if exact { PartialAggregate::SumExact } else { PartialAggregate::SumDouble }, arg()?, Collation::Binary));
                partials.push((PartialAggregate::Count, arg()?, Collation::Binary));
                Merge::Avg { sum: partials.len() - 2, count: partials.len() - 1, exact }
            }
            AggregateFunc::Min | AggregateFunc::Max => {
                let kind = if call.func == AggregateFunc::Min { PartialAggregate::Min } else { PartialAggregate::Max };
                partials.push((kind, arg()?, call.collation));
                Merge::Extreme(partials.len() - 1)
            }
            _ => return None,
        };
        merges.push(merge);
    }
    // Every argument must be evaluable on a data node.
    if !partials.iter().all(|(_, e, _)| crate::access::is_pushable(e)) {
        return None;
    }
    Some((partials, merges))
}

/// Runs an aggregation on the data nodes and merges their partial groups: rows shaped as the
/// Aggregate operator's (`[keys…][input_width NULLs][results…]`).
pub(crate) async fn run_pushed_aggregate<B: Backend>(
    exec: &Exec<B>,
    table: &TableDef,
    filter: &Option<Expr>,
    keys: &[(Expr, Collation)],
    calls: &[AggregateCall],
    input_width: usize,
) -> Result<BoxStream, Error> {
    let bound_filter = match filter {
        Some(f) => Some(bind(f, &exec.bound, &exec.snapshot)?),
        None => None,
    };
    // Inside a transaction the rows must include its own writes; and a filter with an
    // `IN (subquery)` list too long to ship (`exec::MAX_PUSHED_IN_ITEMS`) must run here: then
    // the rows are scanned (the scan keeps the long list on this node) and aggregated here.
    let (_, long_lists) = crate::exec::split_long_lists(bound_filter.clone());
    if exec.access.txn.is_some() || long_lists.is_some() {
        let filter = bound_filter;
        let projection: Vec<u32> = (0..table.columns.len() as u32).collect();
        let scan: BoxStream = Box::new(ScanStream::new(exec, Arc::new(table.clone()), filter, projection, None));
        let rows = crate::exec::aggregate(exec.clone(), scan, keys, calls, input_width).await?;
        return Ok(vec_stream(rows));
    }
    let (partials, merges) = plan_partials(calls).ok_or_else(|| Error::internal("an aggregation that cannot be pushed was pushed"))?;
    let filter = bound_filter;
    let table_ref = TableRef { id: table.id, version: table.version };
    let mut budget = exec.budget();
    Stats::bump(&exec.engine.stats.pushed_aggregates);
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut groups: Vec<Vec<Value>> = Vec::new();
    let mut resume: Vec<(NodeGroupId, Option<ScanPosition>)> = groups_of(table).into_iter().map(|g| (g, None)).collect();
    let mut active: Vec<usize> = (0..resume.len()).collect();
    while !active.is_empty() {
        let futures: Vec<_> = active
            .iter()
            .map(|&i| {
                let op = ReadOp::Aggregate { table: table_ref, filter: filter.clone(), group_by: keys.to_vec(), aggregates: partials.clone(), resume: resume[i].1 };
                exec.engine.backend.read(resume[i].0, op)
            })
            .collect();
        let answers = join_all(futures).await;
        let mut still = Vec::new();
        for (&i, answer) in active.iter().zip(answers) {
            let (rows, next) = match answer? {
                ReadResult::Groups { groups, resume } => (groups, resume),
                _ => return Err(Error::internal("a node group answered an aggregation with something else")),
            };
            for row in rows {
                if row.len() != keys.len() + partials.len() {
                    return Err(Error::internal("a node group answered partial groups of another shape"));
                }
                let mut k = Vec::new();
                for (v, (_, collation)) in row.iter().zip(keys) {
                    normalize_into(v, *collation, &mut k);
                }
                match index.get(&k) {
                    Some(&g) => {
                        for (j, (kind, _, collation)) in partials.iter().enumerate() {
                            let at = keys.len() + j;
                            let partial = row[at].clone();
                            cairn_storage::aggregate::merge_partial(&mut groups[g][at], *kind, partial, *collation)?;
                        }
                    }
                    None => {
                        budget.charge(k.len() as u64 + crate::memory::row_bytes(&row))?;
                        index.insert(k, groups.len());
                        groups.push(row);
                    }
                }
            }
            resume[i].1 = next;
            if next.is_some() {
                still.push(i);
            }
        }
        active = still;
    }
    if groups.is_empty() && keys.is_empty() {
        // An aggregate without GROUP BY over no rows still gives one row.
        groups.push(partials.iter().map(|(kind, _, _)| match kind {
            PartialAggregate::CountRows | PartialAggregate::Count => Value::Int(0),
            _ => Value::Null,
        }).collect());
    }
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let (key_values, partial_values) = g.split_at(keys.len());
        let mut row: Vec<Value> = key_values.to_vec();
        row.extend(std::iter::repeat_n(Value::Null, input_width));
        for m in &merges {
            row.push(match m {
                Merge::Count(at) => Value::Int(partial_values[*at].to_i64().unwrap_or(0)),
                Merge::Sum { at, exact } => match &partial_values[*at] {
                    Value::Null => Value::Null,
                    v if *exact => Value::Decimal(v.to_decimal().unwrap_or(Decimal::ZERO)),
                    v => Value::Double(v.to_f64().unwrap_or(0.0)),
                },
                Merge::Avg { sum, count, exact } => {
                    let n = partial_values[*count].to_i64().unwrap_or(0);
                    match &partial_values[*sum] {
                        Value::Null => Value::Null,
                        _ if n == 0 => Value::Null,
                        v if *exact => v
                            .to_decimal()
                            .unwrap_or(Decimal::ZERO)
                            .checked_div(Decimal::from_u64(n as u64), 4)
                            .map_or(Value::Null, Value::Decimal),
                        v => Value::Double(v.to_f64().unwrap_or(0.0) / n as f64),
                    }
                }
                Merge::Extreme(at) => partial_values[*at].clone(),
            });
        }
        out.push(row);
    }
    Ok(vec_stream(out))
}
