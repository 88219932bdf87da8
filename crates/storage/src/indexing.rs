//! The store's side of ordered indexes: keeping the set of indexes in step with the catalog,
//! walking existing rows into new indexes, and answering index range scans
//! ([`cairn_common::ops::ReadOp::IndexScan`]). The structure itself is in `ordered`.
//!
//! An index scan of one node group merges the partitions it holds into one stream ordered by
//! (index key, slot, partition), ascending or descending; the SQL node merges the node groups'
//! streams by index key. Answers are bounded like scans' and resume after the last entry
//! returned, so a row that exists for the whole scan and stays in range is returned once.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::ops::Bound;

use cairn_common::catalog::{Catalog, TableDef};
use cairn_common::expr::Expr;
use cairn_common::ids::PartitionId;
use cairn_common::ops::{IndexPosition, KeyRange};
use cairn_common::{Error, Result};

use crate::ordered::{OrderedIndex, entry_slot, prefix_successor};
use crate::store::{DEFAULT_SCAN_ROWS, MAX_SCAN_BYTES, MAX_SCAN_EXAMINED, MAX_SCAN_ROWS, RowShaper, Store, TableStore};

/// An index range scan, as [`cairn_common::ops::ReadOp::IndexScan`] asks for it.
#[derive(Clone, Copy, Debug)]
pub struct IndexScanRequest<'a> {
    pub index: u32,
    pub partitions: &'a [PartitionId],
    pub ranges: &'a [KeyRange],
    pub descending: bool,
    pub filter: Option<&'a Expr>,
    pub projection: Option<&'a [u32]>,
    pub limit: Option<u64>,
    pub resume: Option<&'a IndexPosition>,
    pub max_rows: u32,
    pub max_bytes: u32,
}

/// One answer to an index scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexBatch {
    pub rows: Vec<Vec<u8>>,
    pub resume: Option<IndexPosition>,
}

/// The byte bounds of the entries in a range (exact: every entry between them is in the range).
fn byte_bounds(range: &KeyRange) -> Option<(Bound<Vec<u8>>, Bound<Vec<u8>>)> {
    let low = match &range.low {
        None => Bound::Unbounded,
        Some(b) if b.inclusive => Bound::Included(b.key.clone()),
        // Past every entry that starts with the bound.
        Some(b) => Bound::Included(prefix_successor(&b.key)?),
    };
    let high = match &range.high {
        None => Bound::Unbounded,
        Some(b) if b.inclusive => match prefix_successor(&b.key) {
            Some(s) => Bound::Excluded(s),
            None => Bound::Unbounded,
        },
        Some(b) => Bound::Excluded(b.key.clone()),
    };
    if let (Bound::Included(l), Bound::Excluded(h)) = (&low, &high) {
        if l >= h {
            return None;
        }
    }
    Some((low, high))
}

/// Narrows byte bounds to what comes after (or, descending, before) a resume position in one
/// partition: an equal entry of a later partition (earlier, descending) is still to come.
fn after_resume(
    bounds: (Bound<Vec<u8>>, Bound<Vec<u8>>),
    resume: &IndexPosition,
    partition: PartitionId,
    descending: bool,
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    if resume.entry.is_empty() {
        // Resuming at the start of a range.
        return bounds;
    }
    let (low, high) = bounds;
    let entry = resume.entry.clone();
    if !descending {
        let from = if partition > resume.partition { Bound::Included(entry) } else { Bound::Excluded(entry) };
        (tighter_low(low, from), high)
    } else {
        let to = if partition < resume.partition { Bound::Included(entry) } else { Bound::Excluded(entry) };
        (low, tighter_high(high, to))
    }
}

fn tighter_low(a: Bound<Vec<u8>>, b: Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    match (&a, &b) {
        (Bound::Unbounded, _) => b,
        (_, Bound::Unbounded) => a,
        (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) => {
            if x > y || (x == y && matches!(a, Bound::Excluded(_))) { a } else { b }
        }
    }
}

fn tighter_high(a: Bound<Vec<u8>>, b: Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    match (&a, &b) {
        (Bound::Unbounded, _) => b,
        (_, Bound::Unbounded) => a,
        (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) => {
            if x < y || (x == y && matches!(a, Bound::Excluded(_))) { a } else { b }
        }
    }
}

fn empty_bounds(bounds: &(Bound<Vec<u8>>, Bound<Vec<u8>>)) -> bool {
    match bounds {
        (Bound::Included(l), Bound::Excluded(h)) | (Bound::Excluded(l), Bound::Included(h)) | (Bound::Excluded(l), Bound::Excluded(h)) => l >= h,
        (Bound::Included(l), Bound::Included(h)) => l > h,
        _ => false,
    }
}

fn as_slice(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn as_slices(bounds: &(Bound<Vec<u8>>, Bound<Vec<u8>>)) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (as_slice(&bounds.0), as_slice(&bounds.1))
}

impl Store {
    /// Brings every table's ordered indexes in line with the catalog (a newer definition whose
    /// rows read the same is adopted, as a write would adopt it). Called when a catalog push
    /// arrives; replicas may call it at different moments, since indexes are derived.
    pub fn sync_catalog(&mut self, catalog: &Catalog) {
        for (id, t) in self.tables.iter_mut() {
            let Some(def) = catalog.table(*id) else { continue };
            if let Some(schema) = &t.schema {
                if def.version > schema.def.version {
                    if let Ok(upgraded) = crate::store::upgraded_schema(schema, def) {
                        // Indexes first, while the schema still names the columns' old places.
                        t.sync_ordered(&upgraded.def);
                        t.schema = Some(upgraded);
                    }
                }
            }
            let current = match &t.schema {
                Some(s) => s.def.clone(),
                None => continue,
            };
            t.sync_ordered(&current);
        }
    }

    /// Whether some ordered index is still walking existing rows.
    pub fn indexes_pending(&self) -> bool {
        self.tables.values().any(|t| t.ordered.iter().any(|ix| !ix.is_complete()))
    }

    /// Walks up to `budget` existing rows into ordered indexes still being built; returns
    /// whether work remains.
    pub fn backfill_indexes(&mut self, budget: usize) -> bool {
        let mut left = budget;
        let Store { tables, arena, .. } = self;
        for t in tables.values_mut() {
            let TableStore { schema, partitions, ordered, .. } = t;
            let Some(schema) = schema.as_ref() else { continue };
            for ix in ordered.iter_mut() {
                while let Some((partition, from)) = ix.next_backfill() {
                    if left == 0 {
                        return true;
                    }
                    let Some(p) = partitions.get(&partition) else {
                        ix.set_backfill(partition, None);
                        continue;
                    };
                    let mut slot = from;
                    let mut finished = true;
                    while let Some((found, row)) = p.next_row(arena, slot) {
                        if left == 0 {
                            finished = false;
                            break;
                        }
                        slot = found + 1;
                        left -= 1;
                        if let Ok(entry) = ix.entry(schema, row, found) {
                            ix.insert(partition, entry);
                        }
                    }
                    ix.set_backfill(partition, if finished { None } else { Some(slot) });
                }
            }
        }
        self.indexes_pending()
    }

    /// Whether ordered index `index` of `def` is complete here. A table without rows here has
    /// nothing to index.
    pub fn index_complete(&self, def: &TableDef, index: u32) -> Result<bool> {
        let Some(ix) = def.indexes.iter().find(|ix| ix.id == index) else {
            return Err(Error::internal(format!("table {}.{} has no index {index}", def.database, def.name)));
        };
        if ix.kind != cairn_common::catalog::IndexKind::Ordered {
            return Err(Error::internal(format!("index {} is not an ordered index", ix.name)));
        }
        let Some(t) = self.tables.get(&def.id) else { return Ok(true) };
        if t.partitions.is_empty() {
            return Ok(true);
        }
        Ok(t.ordered.iter().find(|o| o.id == index).is_some_and(OrderedIndex::is_complete))
    }

    /// The entries of one partition of an index: the maintained set, or, while that
    /// partition's rows are still being walked, a sorted set built from its rows now.
    fn partition_entries<'a>(&'a self, t: &'a TableStore, ix: &'a OrderedIndex, partition: PartitionId) -> Result<Option<Cow<'a, BTreeSet<Box<[u8]>>>>> {
        if ix.is_complete_for(partition) {
            return Ok(ix.partition(partition).map(Cow::Borrowed));
        }
        let (Some(schema), Some(p)) = (t.schema.as_ref(), t.partitions.get(&partition)) else { return Ok(None) };
        let mut built = BTreeSet::new();
        let mut slot = 0;
        while let Some((found, row)) = p.next_row(&self.arena, slot) {
            slot = found + 1;
            built.insert(ix.entry(schema, row, found)?);
        }
        Ok(Some(Cow::Owned(built)))
    }

    /// Answers an index range scan.
    pub fn index_scan(&self, def: &TableDef, request: &IndexScanRequest<'_>) -> Result<IndexBatch> {
        let partitions = self.resolve_partitions(def, request.partitions)?;
        let mut batch = IndexBatch::default();
        let mut remaining = request.limit.unwrap_or(u64::MAX);
        if remaining == 0 {
            return Ok(batch);
        }
        if !def.indexes.iter().any(|ix| ix.id == request.index && ix.kind == cairn_common::catalog::IndexKind::Ordered) {
            return Err(Error::internal(format!("table {}.{} has no ordered index {}", def.database, def.name, request.index)));
        }
        let Some(t) = self.tables.get(&def.id) else { return Ok(batch) };
        let Some(schema) = t.schema.as_ref() else { return Ok(batch) };
        let Some(ix) = t.ordered.iter().find(|o| o.id == request.index) else {
            return Err(Error::temporary(format!(
                "index {} of {}.{} is not known on this data node yet; retry",
                request.index, def.database, def.name
            )));
        };
        let layout = &schema.layout;
        let mut shaper = RowShaper::new(layout, request.filter, request.projection)?;
        let max_rows = match request.max_rows {
            0 => DEFAULT_SCAN_ROWS,
            n => n.min(MAX_SCAN_ROWS),
        } as usize;
        let max_bytes = match request.max_bytes {
            0 => MAX_SCAN_BYTES,
            n => n.min(MAX_SCAN_BYTES),
        } as usize;
        let whole = [KeyRange::default()];
        let ranges: &[KeyRange] = if request.ranges.is_empty() { &whole } else { request.ranges };
        let order: Vec<usize> = if request.descending { (0..ranges.len()).rev().collect() } else { (0..ranges.len()).collect() };
        let start_at = match request.resume {
            None => 0,
            Some(r) => order.iter().position(|&i| i as u32 == r.range).ok_or_else(|| Error::internal("an index scan resumes in a range it does not have"))?,
        };
        // Entry sets of the partitions, fetched once per request.
        let mut sets = Vec::with_capacity(partitions.len());
        for &partition in &partitions {
            if let Some(set) = self.partition_entries(t, ix, partition)? {
                sets.push((partition, set));
            }
        }
        let mut bytes = 0usize;
        let mut examined = 0u64;
        for (n, &range_index) in order.iter().enumerate().skip(start_at) {
            let Some(base) = byte_bounds(&ranges[range_index]) else { continue };
            // One iterator per partition, merged by (entry, partition).
            let mut cursors: Vec<(PartitionId, Box<dyn Iterator<Item = &Box<[u8]>> + '_>)> = Vec::with_capacity(sets.len());
            for (partition, set) in &sets {
                let bounds = match request.resume {
                    Some(r) if n == start_at => after_resume(base.clone(), r, *partition, request.descending),
                    _ => base.clone(),
                };
                if empty_bounds(&bounds) {
                    continue;
                }
                let (lo, hi) = as_slices(&bounds);
                let iter = set.range::<[u8], _>((lo, hi));
                let boxed: Box<dyn Iterator<Item = &Box<[u8]>> + '_> = if request.descending { Box::new(iter.rev()) } else { Box::new(iter) };
                cursors.push((*partition, boxed));
            }
            let mut heads: Vec<Option<&Box<[u8]>>> = cursors.iter_mut().map(|(_, it)| it.next()).collect();
            loop {
                // The next entry in scan order among the partitions' heads.
                let mut best: Option<usize> = None;
                for (i, head) in heads.iter().enumerate() {
                    let Some(entry) = head else { continue };
                    best = match best {
                        None => Some(i),
                        Some(b) => {
                            let current = heads[b].expect("best has a head");
                            let ord = entry.as_ref().cmp(current.as_ref()).then(cursors[i].0.cmp(&cursors[b].0));
                            let better = if request.descending { ord.is_gt() } else { ord.is_lt() };
                            if better { Some(i) } else { Some(b) }
                        }
                    };
                }
                let Some(b) = best else { break };
                let entry = heads[b].expect("chosen head");
                let partition = cursors[b].0;
                heads[b] = cursors[b].1.next();
                examined += 1;
                let slot = entry_slot(entry);
                let Some(row) = t.partitions.get(&partition).and_then(|p| p.row_at(&self.arena, slot)) else { continue };
                if let Some(out) = shaper.shape(row)? {
                    bytes += out.len();
                    batch.rows.push(out);
                    remaining -= 1;
                    if remaining == 0 {
                        return Ok(batch);
                    }
                }
                let full = batch.rows.len() >= max_rows || bytes >= max_bytes;
                if full || examined >= MAX_SCAN_EXAMINED {
                    let more_here = heads.iter().any(Option::is_some);
                    let more_later = n + 1 < order.len();
                    if more_here || more_later {
                        batch.resume = Some(if more_here {
                            IndexPosition { range: range_index as u32, entry: entry.to_vec(), partition }
                        } else {
                            // The next range, from its start (an empty entry).
                            IndexPosition { range: order[n + 1] as u32, entry: Vec::new(), partition: PartitionId(0) }
                        });
                    }
                    return Ok(batch);
                }
            }
        }
        Ok(batch)
    }

    /// Checks that every complete ordered index holds exactly one entry per row (for tests).
    pub fn check_indexes(&self) -> Result<()> {
        for (id, t) in &self.tables {
            let Some(schema) = t.schema.as_ref() else { continue };
            for ix in &t.ordered {
                for (&partition, p) in &t.partitions {
                    if !ix.is_complete_for(partition) {
                        continue;
                    }
                    let mut expected = BTreeSet::new();
                    let mut slot = 0;
                    while let Some((found, row)) = p.next_row(&self.arena, slot) {
                        slot = found + 1;
                        expected.insert(ix.entry(schema, row, found)?);
                    }
                    let empty = BTreeSet::new();
                    let actual = ix.partition(partition).unwrap_or(&empty);
                    if *actual != expected {
                        return Err(Error::internal(format!(
                            "table {id} index {} partition {partition}: {} entries, {} rows",
                            ix.id,
                            actual.len(),
                            expected.len()
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}
