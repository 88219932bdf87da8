//! The store: every partition this node group holds, of every table, in RAM.
//!
//! Replicas change it only through [`Store::apply`] / [`Store::apply_write_set`] with changes
//! from committed Raft log entries. Applying is deterministic and idempotent: a Put of an
//! existing key overwrites it, a Delete of a missing key does nothing, AutoIncrement only ever
//! raises the counter (until a Truncate resets it), so replaying a log suffix over a fuzzy
//! checkpoint reaches the same state.
//!
//! Reads ([`Store::get`], [`Store::scan`], [`Store::count`], or [`Store::read`] for a whole
//! [`ReadOp`]) see applied changes only; the leader's evaluation of writes reads through the
//! pending overlay as well (see `evaluate`).

use std::collections::BTreeMap;
use std::fmt;

use hashbrown::DefaultHashBuilder;

use cairn_common::catalog::{Catalog, TableDef};
use cairn_common::expr::{EvalContext, Expr};
use cairn_common::ids::{NodeGroupId, PartitionId, TableId};
use cairn_common::ops::{ReadOp, ReadResult, RowChange, ScanPosition, TableRef, Through, WriteSet};
use cairn_common::value::Value;
use cairn_common::{Error, ErrorKind, Result};

use crate::arena::{Arena, PAGE_BYTES};
use crate::ordered::OrderedIndex;
use crate::partition::{Partition, PutOutcome};
use crate::schema::TableSchema;
use cairn_common::catalog::IndexKind;

/// Rows one scan answer holds when the request gives no bound.
pub const DEFAULT_SCAN_ROWS: u32 = 1024;
/// Most rows one scan answer holds, whatever the request says.
pub const MAX_SCAN_ROWS: u32 = 65_536;
/// Most bytes of rows one scan answer holds (it may exceed this by one row).
pub const MAX_SCAN_BYTES: u32 = 4 << 20;
/// Most rows one scan request examines before answering (possibly with no rows and a resume
/// position), so that a selective scan of a large table does not hold up the node's event loop.
pub const MAX_SCAN_EXAMINED: u64 = 100_000;

/// The rows of one table on this node.
#[derive(Debug, Default)]
pub(crate) struct TableStore {
    /// Known once a row of the table has been stored (or the catalog has been asked).
    pub(crate) schema: Option<TableSchema>,
    pub(crate) partitions: BTreeMap<PartitionId, Partition>,
    /// The next AUTO_INCREMENT value (0: none handed out since creation or TRUNCATE).
    auto_increment_next: u64,
    /// The table's ordered indexes, derived from its rows (see `ordered`).
    pub(crate) ordered: Vec<OrderedIndex>,
}

impl TableStore {
    /// Makes the ordered indexes those of `def`: drops the ones it no longer has, and starts
    /// new ones (maintained from now on, existing rows walked by `backfill_indexes`).
    pub(crate) fn sync_ordered(&mut self, def: &TableDef) {
        let wanted: Vec<(u32, Vec<usize>)> =
            def.indexes.iter().filter(|ix| ix.kind == IndexKind::Ordered).map(|ix| (ix.id, ix.columns.clone())).collect();
        self.ordered.retain(|ix| wanted.iter().any(|(id, columns)| *id == ix.id && *columns == ix.columns));
        for (id, columns) in wanted {
            if self.ordered.iter().any(|ix| ix.id == id) {
                continue;
            }
            let mut index = OrderedIndex::new(id, columns);
            for (&partition, p) in &self.partitions {
                if p.rows() > 0 {
                    index.start_backfill(partition);
                }
            }
            self.ordered.push(index);
        }
    }
}

/// A scan of one table, as [`ReadOp::Scan`] asks for it.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScanRequest<'a> {
    /// Partitions to scan, in this order; empty: every partition of the table on this node
    /// group, ascending.
    pub partitions: &'a [PartitionId],
    /// Only rows for which the filter is TRUE.
    pub filter: Option<&'a Expr>,
    /// Columns of the answer rows, in this order (a projected layout); None: full rows.
    pub projection: Option<&'a [u32]>,
    /// Stop after this many matching rows. When resuming, the caller passes what is left.
    pub limit: Option<u64>,
    pub resume: Option<ScanPosition>,
    /// Bounds on this answer (0: the defaults, [`DEFAULT_SCAN_ROWS`] and [`MAX_SCAN_BYTES`]).
    pub max_rows: u32,
    pub max_bytes: u32,
}

/// One answer to a scan: rows, and where to resume if there may be more.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanBatch {
    pub rows: Vec<Vec<u8>>,
    pub resume: Option<ScanPosition>,
}

/// Memory of one table on this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableMemory {
    pub table: TableId,
    pub rows: u64,
    /// Packed row bytes.
    pub row_bytes: u64,
    /// Arena cells the rows occupy (row bytes rounded up to their size class).
    pub cell_bytes: u64,
    pub index_bytes: u64,
    pub directory_bytes: u64,
    /// Rows per partition held here.
    pub partitions: Vec<(PartitionId, u64)>,
}

impl TableMemory {
    /// The bytes the table is charged: cells, index and directory.
    pub fn bytes(&self) -> u64 {
        self.cell_bytes + self.index_bytes + self.directory_bytes
    }
}

/// Memory of the whole store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    pub rows: u64,
    pub row_bytes: u64,
    pub cell_bytes: u64,
    pub index_bytes: u64,
    pub directory_bytes: u64,
    /// Pages holding rows, times 32 KiB (includes free cells inside them).
    pub page_bytes: u64,
    /// Empty pages kept for reuse by any table.
    pub spare_page_bytes: u64,
    /// Rows above the largest cell size, in their own allocations.
    pub large_row_bytes: u64,
    /// The arena's page table and lists.
    pub bookkeeping_bytes: u64,
}

impl MemoryUsage {
    /// Everything the store holds: what DataMemory is compared with.
    pub fn total_bytes(&self) -> u64 {
        self.page_bytes
            + self.spare_page_bytes
            + self.large_row_bytes
            + self.bookkeeping_bytes
            + self.index_bytes
            + self.directory_bytes
    }

    /// Usage in NDB's terms, against a DataMemory of `data_memory_bytes`.
    pub fn data_usage(&self, data_memory_bytes: u64) -> DataUsage {
        DataUsage {
            used_pages: self.total_bytes().div_ceil(PAGE_BYTES as u64),
            total_pages: data_memory_bytes / PAGE_BYTES as u64,
        }
    }
}

/// DataMemory use in 32 KiB pages, printed as `ALL REPORT MEMORY` prints it after `Node N: `.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataUsage {
    pub used_pages: u64,
    pub total_pages: u64,
}

impl DataUsage {
    /// Whole percent, rounded down as NDB prints it.
    pub fn percent(&self) -> u64 {
        (self.used_pages * 100).checked_div(self.total_pages).unwrap_or(0)
    }
}

impl fmt::Display for DataUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Data usage is {}%({} 32K pages of total {})", self.percent(), self.used_pages, self.total_pages)
    }
}

/// What [`Store::compact`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compaction {
    pub pages_evacuated: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// A change checked against the schema, ready to apply without failing.
enum Prepared<'a> {
    Put { table: TableId, partition: PartitionId, key: Vec<u8>, row: &'a [u8], schema: Option<Box<TableSchema>> },
    Delete { table: TableId, partition: PartitionId, key: &'a [u8] },
    Truncate { table: TableId },
    DropTable { table: TableId },
    AutoIncrement { table: TableId, next: u64 },
}

/// The in-memory partitions of one data node.
pub struct Store {
    node_group: NodeGroupId,
    pub(crate) tables: BTreeMap<TableId, TableStore>,
    pub(crate) arena: Arena,
    hasher: DefaultHashBuilder,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("node_group", &self.node_group).field("tables", &self.tables.len()).finish()
    }
}

fn wrong_group(table: &TableDef, partition: PartitionId, group: NodeGroupId) -> Error {
    Error::temporary(format!(
        "partition {partition} of table {}.{} is not held by node group {group}; refresh the partition map and retry",
        table.database, table.name
    ))
}

/// The schema for a newer definition of a table the store holds rows of, if the rows read the
/// same under it.
pub(crate) fn upgraded_schema(current: &TableSchema, def: &TableDef) -> Result<TableSchema> {
    let upgraded = TableSchema::new(def)?;
    if !current.compatible_with(&upgraded) {
        return Err(Error::internal(format!(
            "table {}.{} changed its row layout or keys (definition {} to {}) under stored rows; \
             the store cannot reinterpret them",
            def.database, def.name, current.def.version, def.version
        )));
    }
    Ok(upgraded)
}

/// Checks that a request names the table version this node has.
pub fn resolve_table(catalog: &Catalog, table: TableRef) -> Result<&TableDef> {
    let def = catalog
        .table(table.id)
        .ok_or_else(|| Error::new(ErrorKind::NoSuchTable, format!("Table with id {} doesn't exist", table.id)))?;
    if def.version != table.version {
        return Err(Error::new(
            ErrorKind::TableDefinitionChanged,
            format!(
                "Table definition has changed, please retry transaction (table {}.{} is at definition version {} on this node, the request planned with {})",
                def.database, def.name, def.version, table.version
            ),
        ));
    }
    Ok(def)
}

impl Store {
    /// An empty store for a node of `node_group`.
    pub fn new(node_group: NodeGroupId) -> Store {
        Store { node_group, tables: BTreeMap::new(), arena: Arena::new(), hasher: DefaultHashBuilder::default() }
    }

    pub fn node_group(&self) -> NodeGroupId {
        self.node_group
    }

    // ----- Applying committed changes -----

    /// Applies one change from a committed write set. On error (a row that does not decode, a
    /// table neither the store nor the catalog knows) nothing changes.
    pub fn apply(&mut self, change: &RowChange, catalog: &Catalog) -> Result<()> {
        let prepared = self.prepare(change, catalog)?;
        self.apply_prepared(prepared);
        Ok(())
    }

    /// Applies a whole write set, all or nothing: every change is checked before any is made.
    pub fn apply_write_set(&mut self, write_set: &WriteSet, catalog: &Catalog) -> Result<()> {
        let mut prepared = Vec::with_capacity(write_set.changes.len());
        for change in &write_set.changes {
            prepared.push(self.prepare(change, catalog)?);
        }
        for p in prepared {
            self.apply_prepared(p);
        }
        Ok(())
    }

    fn prepare<'a>(&self, change: &'a RowChange, catalog: &Catalog) -> Result<Prepared<'a>> {
        Ok(match change {
            RowChange::Put { table, partition, row } => {
                let known = self.tables.get(table).and_then(|t| t.schema.as_ref());
                let fresh = match (known, catalog.table(*table)) {
                    (Some(s), Some(def)) if def.version > s.def.version => Some(upgraded_schema(s, def)?),
                    (Some(_), _) => None,
                    (None, Some(def)) => Some(TableSchema::new(def)?),
                    (None, None) => {
                        return Err(Error::internal(format!(
                            "a write set puts a row into table {table}, which neither the store nor the catalog knows"
                        )));
                    }
                };
                let schema = fresh.as_ref().or(known).expect("one of them is set");
                let key = schema.primary_key_vec(row)?;
                let indexed = self.tables.get(table).is_some_and(|t| !t.ordered.is_empty())
                    || schema.def.indexes.iter().any(|ix| ix.kind == IndexKind::Ordered);
                if indexed {
                    // Ordered-index entries are computed from the row when it is applied: it
                    // must decode whole, so that applying cannot fail halfway.
                    schema.layout.decode(row)?;
                }
                let actual = schema.partition_of_row(row, &key)?;
                if actual != *partition {
                    return Err(Error::internal(format!(
                        "a write set puts a row of table {table} into partition {partition}, but its key hashes to {actual}"
                    )));
                }
                Prepared::Put { table: *table, partition: *partition, key, row, schema: fresh.map(Box::new) }
            }
            RowChange::Delete { table, partition, key } => {
                Prepared::Delete { table: *table, partition: *partition, key }
            }
            RowChange::Truncate { table } => Prepared::Truncate { table: *table },
            RowChange::DropTable { table } => Prepared::DropTable { table: *table },
            RowChange::AutoIncrement { table, next } => Prepared::AutoIncrement { table: *table, next: *next },
        })
    }

    fn apply_prepared(&mut self, prepared: Prepared<'_>) {
        let Store { tables, arena, hasher, .. } = self;
        match prepared {
            Prepared::Put { table, partition, key, row, schema } => {
                let t = tables.entry(table).or_default();
                if let Some(schema) = schema {
                    t.sync_ordered(&schema.def);
                    t.schema = Some(*schema);
                }
                let TableStore { schema, partitions, ordered, .. } = t;
                let schema = schema.as_ref().expect("set above or before");
                let p = partitions.entry(partition).or_default();
                if !ordered.is_empty() {
                    // The old image's entries go; the new image's come after the put.
                    if let Some(slot) = p.find(arena, schema, hasher, &key) {
                        if let Some(old) = p.row_at(arena, slot) {
                            for ix in ordered.iter_mut() {
                                if let Ok(entry) = ix.entry(schema, old, slot) {
                                    ix.remove(partition, &entry);
                                }
                            }
                        }
                    }
                }
                let slot = match p.put(arena, schema, hasher, &key, row) {
                    PutOutcome::Inserted { slot } | PutOutcome::Overwrote { slot, .. } => slot,
                };
                for ix in ordered.iter_mut() {
                    if let Ok(entry) = ix.entry(schema, row, slot) {
                        ix.insert(partition, entry);
                    }
                }
            }
            Prepared::Delete { table, partition, key } => {
                let Some(t) = tables.get_mut(&table) else { return };
                let TableStore { schema, partitions, ordered, .. } = t;
                let (Some(schema), Some(p)) = (schema.as_ref(), partitions.get_mut(&partition)) else { return };
                if !ordered.is_empty() {
                    if let Some(slot) = p.find(arena, schema, hasher, key) {
                        if let Some(old) = p.row_at(arena, slot) {
                            for ix in ordered.iter_mut() {
                                if let Ok(entry) = ix.entry(schema, old, slot) {
                                    ix.remove(partition, &entry);
                                }
                            }
                        }
                    }
                }
                p.delete(arena, schema, hasher, key);
                if p.rows() == 0 {
                    // An empty partition gives back its index and directory too.
                    partitions.remove(&partition);
                    for ix in ordered.iter_mut() {
                        ix.clear_partition(partition);
                    }
                }
            }
            Prepared::Truncate { table } => {
                if let Some(t) = tables.get_mut(&table) {
                    for p in t.partitions.values_mut() {
                        p.clear(arena);
                    }
                    t.partitions.clear();
                    for ix in t.ordered.iter_mut() {
                        ix.clear();
                    }
                    // TRUNCATE TABLE restarts AUTO_INCREMENT, as in MySQL.
                    t.auto_increment_next = 0;
                }
            }
            Prepared::DropTable { table } => {
                if let Some(mut t) = tables.remove(&table) {
                    for p in t.partitions.values_mut() {
                        p.clear(arena);
                    }
                }
            }
            Prepared::AutoIncrement { table, next } => {
                let t = tables.entry(table).or_default();
                t.auto_increment_next = t.auto_increment_next.max(next);
            }
        }
    }

    // ----- Reads -----

    /// The schema the store keeps for a table it holds rows of.
    pub fn schema(&self, table: TableId) -> Option<&TableSchema> {
        self.tables.get(&table).and_then(|t| t.schema.as_ref())
    }

    /// The full row with these primary-key values (in primary-key order, coerced to the column
    /// types), if this node holds it.
    pub fn get(&self, table: TableId, key: &[Value]) -> Result<Option<&[u8]>> {
        let Some(schema) = self.schema(table) else { return Ok(None) };
        let encoded = schema.encode_key_values(key)?;
        let partition = schema.partition_of_key(key, &encoded)?;
        Ok(self.get_encoded(table, partition, &encoded))
    }

    /// The full row with this encoded primary key in this partition.
    pub fn get_encoded(&self, table: TableId, partition: PartitionId, key: &[u8]) -> Option<&[u8]> {
        let t = self.tables.get(&table)?;
        let schema = t.schema.as_ref()?;
        let p = t.partitions.get(&partition)?;
        let slot = p.find(&self.arena, schema, &self.hasher, key)?;
        p.row_at(&self.arena, slot)
    }

    /// Answers a read request, checking the table version it was planned with.
    pub fn read(&self, op: &ReadOp, catalog: &Catalog) -> Result<ReadResult> {
        match op {
            ReadOp::Get { table, keys } => {
                let def = resolve_table(catalog, *table)?;
                let schema = self.schema_or_built(def)?;
                let mut rows = Vec::with_capacity(keys.len());
                for key in keys {
                    let (partition, encoded) = self.local_key(def, &schema, key)?;
                    rows.push(self.get_encoded(table.id, partition, &encoded).map(<[u8]>::to_vec));
                }
                Ok(ReadResult::Rows(rows))
            }
            ReadOp::GetThrough { index, base, keys } => {
                let index_def = resolve_table(catalog, *index)?;
                let base_def = resolve_table(catalog, *base)?;
                let index_schema = self.schema_or_built(index_def)?;
                let base_schema = self.schema_or_built(base_def)?;
                // An entry is the unique key's columns, then the base row's primary key.
                let width = index_def.primary_key.len();
                let pk_columns: Vec<usize> = (width..index_def.columns.len()).collect();
                let mut answers = Vec::with_capacity(keys.len());
                let mut pk = Vec::with_capacity(pk_columns.len());
                for key in keys {
                    let (partition, encoded) = self.local_key(index_def, &index_schema, key)?;
                    let Some(entry) = self.get_encoded(index.id, partition, &encoded) else {
                        answers.push(Through::Absent);
                        continue;
                    };
                    pk.clear();
                    index_schema.layout.decode_columns(entry, &pk_columns, &mut pk)?;
                    let base_key = base_schema.encode_key_values(&pk)?;
                    let base_partition = base_schema.partition_of_key(&pk, &base_key)?;
                    answers.push(if base_def.node_group_of(base_partition) == Some(self.node_group) {
                        match self.get_encoded(base.id, base_partition, &base_key) {
                            Some(row) => Through::Row(row.to_vec()),
                            None => Through::Absent,
                        }
                    } else {
                        Through::Entry(entry.to_vec())
                    });
                }
                Ok(ReadResult::Through(answers))
            }
            ReadOp::Scan { table, partitions, filter, projection, limit, resume, max_rows, max_bytes } => {
                let def = resolve_table(catalog, *table)?;
                let request = ScanRequest {
                    partitions,
                    filter: filter.as_ref(),
                    projection: projection.as_deref(),
                    limit: *limit,
                    resume: *resume,
                    max_rows: *max_rows,
                    max_bytes: *max_bytes,
                };
                let batch = self.scan(def, &request)?;
                Ok(ReadResult::ScanBatch { rows: batch.rows, resume: batch.resume })
            }
            ReadOp::Count { table } => {
                let def = resolve_table(catalog, *table)?;
                Ok(ReadResult::Counts(self.count(def)))
            }
            ReadOp::IndexScan { table, index, partitions, ranges, descending, filter, projection, limit, resume, max_rows, max_bytes } => {
                let def = resolve_table(catalog, *table)?;
                let request = crate::indexing::IndexScanRequest {
                    index: *index,
                    partitions,
                    ranges,
                    descending: *descending,
                    filter: filter.as_ref(),
                    projection: projection.as_deref(),
                    limit: *limit,
                    resume: resume.as_ref(),
                    max_rows: *max_rows,
                    max_bytes: *max_bytes,
                };
                let batch = self.index_scan(def, &request)?;
                Ok(ReadResult::IndexBatch { rows: batch.rows, resume: batch.resume })
            }
            ReadOp::IndexStatus { table, index } => {
                let def = resolve_table(catalog, *table)?;
                Ok(ReadResult::IndexBuilt(self.index_complete(def, *index)?))
            }
            ReadOp::Aggregate { table, filter, group_by, aggregates, resume } => {
                let def = resolve_table(catalog, *table)?;
                let (groups, resume) = self.aggregate(def, filter.as_ref(), group_by, aggregates, *resume)?;
                Ok(ReadResult::Groups { groups, resume })
            }
        }
    }

    /// The store's schema of a table, or (for a table the store has no rows of) one built only
    /// to find keys' partitions.
    fn schema_or_built(&self, def: &TableDef) -> Result<std::borrow::Cow<'_, TableSchema>> {
        Ok(match self.schema(def.id) {
            Some(schema) => std::borrow::Cow::Borrowed(schema),
            None => std::borrow::Cow::Owned(TableSchema::new(def)?),
        })
    }

    /// The partition and encoding of a primary key, which must be in this node group.
    fn local_key(&self, def: &TableDef, schema: &TableSchema, key: &[Value]) -> Result<(PartitionId, Vec<u8>)> {
        let encoded = schema.encode_key_values(key)?;
        let partition = schema.partition_of_key(key, &encoded)?;
        if def.node_group_of(partition) != Some(self.node_group) {
            return Err(wrong_group(def, partition, self.node_group));
        }
        Ok((partition, encoded))
    }

    /// The partitions of `def` on this node group, ascending.
    pub fn local_partitions(&self, def: &TableDef) -> Vec<PartitionId> {
        def.partitions_on(self.node_group)
    }

    /// Checks that every listed partition is on this node group; an empty list means all of
    /// them.
    pub fn resolve_partitions(&self, def: &TableDef, partitions: &[PartitionId]) -> Result<Vec<PartitionId>> {
        if partitions.is_empty() {
            return Ok(self.local_partitions(def));
        }
        for &p in partitions {
            if def.node_group_of(p) != Some(self.node_group) {
                return Err(wrong_group(def, p, self.node_group));
            }
        }
        Ok(partitions.to_vec())
    }

    /// Scans rows of a table with [`ReadOp::Scan`] semantics.
    pub fn scan(&self, def: &TableDef, request: &ScanRequest<'_>) -> Result<ScanBatch> {
        let partitions = self.resolve_partitions(def, request.partitions)?;
        let table = self.tables.get(&def.id);
        let built;
        let layout = match table.and_then(|t| t.schema.as_ref()) {
            Some(schema) => &schema.layout,
            None => {
                built = def.layout();
                &built
            }
        };
        let mut shaper = RowShaper::new(layout, request.filter, request.projection)?;
        let (start_at, start_slot) = match request.resume {
            None => (0, 0u32),
            Some(position) => {
                let at = partitions.iter().position(|&p| p == position.partition).ok_or_else(|| {
                    Error::internal(format!(
                        "scan resumes in partition {}, which the scan does not cover",
                        position.partition
                    ))
                })?;
                (at, u32::try_from(position.slot).unwrap_or(u32::MAX))
            }
        };
        let max_rows = match request.max_rows {
            0 => DEFAULT_SCAN_ROWS,
            n => n.min(MAX_SCAN_ROWS),
        } as usize;
        let max_bytes = match request.max_bytes {
            0 => MAX_SCAN_BYTES,
            n => n.min(MAX_SCAN_BYTES),
        } as usize;
        let mut batch = ScanBatch::default();
        let mut remaining = request.limit.unwrap_or(u64::MAX);
        if remaining == 0 {
            return Ok(batch);
        }
        let Some(table) = table else { return Ok(batch) };
        let mut bytes = 0usize;
        let mut examined = 0u64;
        for (at, &partition) in partitions.iter().enumerate().skip(start_at) {
            let Some(p) = table.partitions.get(&partition) else { continue };
            let mut slot = if at == start_at { start_slot } else { 0 };
            while let Some((found, row)) = p.next_row(&self.arena, slot) {
                slot = found + 1;
                examined += 1;
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
                    let more_here = p.next_row(&self.arena, slot).is_some();
                    let more_later =
                        partitions[at + 1..].iter().any(|q| table.partitions.get(q).is_some_and(|q| q.rows() > 0));
                    if more_here || more_later {
                        batch.resume = Some(ScanPosition { partition, slot: slot as u64 });
                    }
                    return Ok(batch);
                }
            }
        }
        Ok(batch)
    }

    /// Row counts of the partitions of `def` on this node group.
    pub fn count(&self, def: &TableDef) -> Vec<(PartitionId, u64)> {
        let table = self.tables.get(&def.id);
        self.local_partitions(def)
            .into_iter()
            .map(|p| (p, table.and_then(|t| t.partitions.get(&p)).map_or(0, Partition::rows)))
            .collect()
    }

    /// The next AUTO_INCREMENT value stored for a table (0 if none was handed out).
    pub fn auto_increment_next(&self, table: TableId) -> u64 {
        self.tables.get(&table).map_or(0, |t| t.auto_increment_next)
    }

    // ----- Iteration for checkpoints -----

    /// Tables the store holds rows or an AUTO_INCREMENT counter of.
    pub fn tables(&self) -> Vec<TableId> {
        self.tables.keys().copied().collect()
    }

    /// Partitions of a table that hold rows here, ascending.
    pub fn partitions(&self, table: TableId) -> Vec<PartitionId> {
        self.tables.get(&table).map(|t| t.partitions.keys().copied().collect()).unwrap_or_default()
    }

    /// Every row of a partition with its slot, in ascending slot order (stable while the
    /// partition is not changed).
    pub fn partition_rows(&self, table: TableId, partition: PartitionId) -> PartitionRows<'_> {
        self.partition_rows_from(table, partition, 0)
    }

    /// Like [`Store::partition_rows`], from slot `from_slot` on: a checkpoint copies a partition
    /// in slices and resumes where the last slice stopped.
    pub fn partition_rows_from(&self, table: TableId, partition: PartitionId, from_slot: u64) -> PartitionRows<'_> {
        PartitionRows {
            arena: &self.arena,
            partition: self.tables.get(&table).and_then(|t| t.partitions.get(&partition)),
            // A slot beyond the directory's range holds no row; saturating keeps it beyond.
            next: u32::try_from(from_slot).unwrap_or(u32::MAX),
        }
    }

    /// The slot and row of the row with this encoded primary key, if this node holds it. A
    /// checkpoint in progress uses it to learn which slots an applied write set changed.
    pub fn find_slot(&self, table: TableId, partition: PartitionId, key: &[u8]) -> Option<(u64, &[u8])> {
        let t = self.tables.get(&table)?;
        let schema = t.schema.as_ref()?;
        let p = t.partitions.get(&partition)?;
        let slot = p.find(&self.arena, schema, &self.hasher, key)?;
        p.row_at(&self.arena, slot).map(|row| (slot as u64, row))
    }

    /// Replaces a partition with rows read back from a checkpoint: `(slot, row)` pairs in
    /// ascending slot order, as [`Store::partition_rows`] gave them. Keeping the slots keeps
    /// scan positions valid across replicas. On error nothing changes.
    pub fn restore_partition(
        &mut self,
        def: &TableDef,
        partition: PartitionId,
        rows: impl IntoIterator<Item = (u64, Vec<u8>)>,
    ) -> Result<()> {
        if partition.0 >= def.partition_count() {
            return Err(Error::internal(format!(
                "checkpoint partition {partition} is beyond table {}'s partitions",
                def.id
            )));
        }
        let schema = match self.schema(def.id) {
            Some(s) if s.def.version >= def.version => s.clone(),
            Some(s) => upgraded_schema(s, def)?,
            None => TableSchema::new(def)?,
        };
        let mut rebuilt = Partition::new();
        let result = (|| {
            for (slot, row) in rows {
                let slot = u32::try_from(slot).map_err(|_| Error::internal("checkpoint slot beyond 2^32"))?;
                let key = schema.primary_key_vec(&row)?;
                let actual = schema.partition_of_row(&row, &key)?;
                if actual != partition {
                    return Err(Error::internal(format!(
                        "checkpoint row of partition {partition} hashes to partition {actual}"
                    )));
                }
                rebuilt.restore_row(&mut self.arena, &schema, &self.hasher, slot, &key, &row)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            rebuilt.clear(&mut self.arena);
            return Err(e);
        }
        let Store { tables, arena, .. } = self;
        let t = tables.entry(def.id).or_default();
        t.schema = Some(schema);
        if let Some(mut old) = t.partitions.remove(&partition) {
            old.clear(arena);
        }
        let has_rows = rebuilt.rows() > 0;
        if has_rows {
            t.partitions.insert(partition, rebuilt);
        }
        if let Some(schema) = t.schema.clone() {
            t.sync_ordered(&schema.def);
        }
        for ix in t.ordered.iter_mut() {
            ix.clear_partition(partition);
            if has_rows {
                ix.start_backfill(partition);
            }
        }
        Ok(())
    }

    // ----- Memory -----

    pub fn table_memory(&self, table: TableId) -> Option<TableMemory> {
        let t = self.tables.get(&table)?;
        let mut m = TableMemory { table, ..Default::default() };
        for (&id, p) in &t.partitions {
            m.rows += p.rows();
            m.row_bytes += p.row_bytes();
            m.cell_bytes += p.cell_bytes();
            m.index_bytes += p.index_bytes();
            m.directory_bytes += p.directory_bytes();
            m.partitions.push((id, p.rows()));
        }
        m.index_bytes += t.ordered.iter().map(OrderedIndex::bytes).sum::<u64>();
        Some(m)
    }

    pub fn memory(&self) -> MemoryUsage {
        let stats = self.arena.stats();
        let mut m = MemoryUsage {
            page_bytes: stats.pages * PAGE_BYTES as u64,
            spare_page_bytes: stats.spare_pages * PAGE_BYTES as u64,
            large_row_bytes: stats.large_bytes,
            bookkeeping_bytes: stats.bookkeeping_bytes,
            ..Default::default()
        };
        for t in self.tables.values() {
            for p in t.partitions.values() {
                m.rows += p.rows();
                m.row_bytes += p.row_bytes();
                m.cell_bytes += p.cell_bytes();
                m.index_bytes += p.index_bytes();
                m.directory_bytes += p.directory_bytes();
            }
            m.index_bytes += t.ordered.iter().map(OrderedIndex::bytes).sum::<u64>();
        }
        m
    }

    /// Whether a row of `len` bytes can be stored without taking a new page.
    pub fn has_room_for(&self, len: usize) -> bool {
        self.arena.has_room_for(len)
    }

    /// Empty pages the store keeps (already counted as used) that the next new pages reuse.
    pub fn spare_pages(&self) -> usize {
        self.arena.spare_pages()
    }

    /// [`MemoryUsage::total_bytes`], the figure DataMemory limits.
    pub fn memory_used(&self) -> u64 {
        self.memory().total_bytes()
    }

    /// Moves rows out of pages filled less than `max_fill` (0..1) so that those pages can be
    /// released, and gives back index and directory capacity left by deletes. Takes time in
    /// proportion to the rows held; the data node runs it when fragmentation is worth it.
    pub fn compact(&mut self, max_fill: f64) -> Compaction {
        let bytes_before = self.memory_used();
        let Store { tables, arena, hasher, .. } = self;
        let pages_evacuated = arena.begin_evacuation(max_fill);
        for t in tables.values_mut() {
            let Some(schema) = t.schema.as_ref() else { continue };
            for p in t.partitions.values_mut() {
                if pages_evacuated > 0 {
                    p.relocate_rows(arena);
                }
                p.shrink(arena, schema, hasher);
            }
        }
        arena.end_evacuation();
        arena.release_spare();
        Compaction { pages_evacuated, bytes_before, bytes_after: self.memory_used() }
    }

    /// Checks every partition's invariants (for tests).
    pub fn check(&self) -> Result<()> {
        for (id, t) in &self.tables {
            if t.partitions.is_empty() {
                continue;
            }
            let schema =
                t.schema.as_ref().ok_or_else(|| Error::internal(format!("table {id} has rows but no schema")))?;
            for (pid, p) in &t.partitions {
                p.check(&self.arena, schema, &self.hasher)
                    .map_err(|e| Error::internal(format!("table {id} partition {pid}: {}", e.message)))?;
                let mut slot = 0;
                while let Some((found, row)) = p.next_row(&self.arena, slot) {
                    slot = found + 1;
                    let key = schema.primary_key_vec(row)?;
                    if schema.partition_of_row(row, &key)? != *pid {
                        return Err(Error::internal(format!("table {id}: a row of partition {pid} hashes elsewhere")));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Rows of one partition in slot order; see [`Store::partition_rows`].
pub struct PartitionRows<'a> {
    arena: &'a Arena,
    partition: Option<&'a Partition>,
    next: u32,
}

impl<'a> Iterator for PartitionRows<'a> {
    type Item = (u64, &'a [u8]);

    fn next(&mut self) -> Option<(u64, &'a [u8])> {
        let (slot, row) = self.partition?.next_row(self.arena, self.next)?;
        self.next = slot + 1;
        Some((slot as u64, row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_common::catalog::{CatalogOp, CatalogOutcome, ColumnDef};
    use cairn_common::ops::ReadOp;
    use cairn_common::types::{ColumnType, IntWidth};

    fn catalog_with_table(partitions: u32) -> (Catalog, TableDef) {
        let mut catalog = Catalog::new();
        let groups = [NodeGroupId(0)];
        catalog
            .apply(
                CatalogOp::CreateDatabase {
                    name: "d".into(),
                    charset: "utf8mb4".into(),
                    collation: "utf8mb4_general_ci".into(),
                    if_not_exists: false,
                },
                &groups,
            )
            .unwrap();
        let mut id = ColumnDef::new("id", ColumnType::Int { width: IntWidth::Int, unsigned: true, display: None });
        id.nullable = false;
        let def = TableDef {
            id: TableId(0),
            version: 0,
            database: "d".into(),
            name: "t".into(),
            columns: vec![id, ColumnDef::new("name", ColumnType::VarChar { length: 32, binary: false })],
            primary_key: vec![0],
            hidden_primary_key: false,
            indexes: vec![],
            foreign_keys: vec![],
            partition_key: vec![0],
            partitions: vec![NodeGroupId(0); partitions as usize],
            explicit_partitioning: true,
            auto_increment_start: 1,
            charset: "utf8mb4".into(),
            collation: "utf8mb4_general_ci".into(),
            engine: "ndbcluster".into(),
            comment: String::new(),
        };
        let CatalogOutcome::TableCreated { id } =
            catalog.apply(CatalogOp::CreateTable { table: def, if_not_exists: false }, &groups).unwrap()
        else {
            panic!("table not created")
        };
        let def = catalog.table(id).unwrap().clone();
        (catalog, def)
    }

    fn put(def: &TableDef, id: u64, name: &str) -> RowChange {
        let values = [Value::UInt(id), Value::text(name)];
        let row = def.layout().encode_to_vec(&values).unwrap();
        let partition = cairn_common::key::partition_of_row(def, &values).unwrap();
        RowChange::Put { table: def.id, partition, row }
    }

    fn delete(def: &TableDef, id: u64) -> RowChange {
        let mut key = Vec::new();
        cairn_common::key::encode_key_values(def, &def.primary_key, &[Value::UInt(id)], &mut key).unwrap();
        let partition = cairn_common::key::partition_of_encoded(&key, def.partition_count());
        RowChange::Delete { table: def.id, partition, key }
    }

    #[test]
    fn reads_check_the_table_version() {
        let (catalog, def) = catalog_with_table(4);
        let mut store = Store::new(NodeGroupId(0));
        store.apply(&put(&def, 1, "a"), &catalog).unwrap();
        let stale = TableRef { id: def.id, version: def.version + 1 };
        let err = store.read(&ReadOp::Count { table: stale }, &catalog).unwrap_err();
        assert_eq!(err.code(), 1412, "a version mismatch is retried after replanning (ER_TABLE_DEF_CHANGED)");
        let missing = TableRef { id: TableId(99), version: 1 };
        assert_eq!(store.read(&ReadOp::Count { table: missing }, &catalog).unwrap_err().code(), 1146);
        let current = TableRef { id: def.id, version: def.version };
        let get = ReadOp::Get { table: current, keys: vec![vec![Value::UInt(1)], vec![Value::UInt(2)]] };
        let ReadResult::Rows(rows) = store.read(&get, &catalog).unwrap() else { panic!() };
        assert!(rows[0].is_some() && rows[1].is_none());
        let bad_key = ReadOp::Get { table: current, keys: vec![vec![Value::text("x")]] };
        assert!(store.read(&bad_key, &catalog).is_err(), "an uncoerced key is an error, not a panic");
    }

    #[test]
    fn write_sets_apply_all_or_nothing() {
        let (catalog, def) = catalog_with_table(4);
        let mut store = Store::new(NodeGroupId(0));
        let RowChange::Put { table, partition, .. } = put(&def, 2, "b") else { unreachable!() };
        let corrupt = RowChange::Put { table, partition, row: vec![0, 1] };
        let ws = WriteSet { changes: vec![put(&def, 1, "a"), corrupt] };
        assert!(store.apply_write_set(&ws, &catalog).is_err());
        assert_eq!(store.get(def.id, &[Value::UInt(1)]).unwrap(), None);
        let RowChange::Put { row, .. } = put(&def, 3, "c") else { unreachable!() };
        let misplaced = RowChange::Put { table: def.id, partition: PartitionId((partition.0 + 1) % 4), row };
        assert!(store.apply(&misplaced, &catalog).is_err(), "a row in the wrong partition is refused");
        let unknown = RowChange::Put { table: TableId(77), partition: PartitionId(0), row: vec![0] };
        assert!(store.apply(&unknown, &catalog).is_err());
        assert!(store.tables().is_empty());
    }

    #[test]
    fn a_newer_definition_must_keep_the_row_layout() {
        let (mut catalog, def) = catalog_with_table(2);
        let mut store = Store::new(NodeGroupId(0));
        store.apply(&put(&def, 1, "a"), &catalog).unwrap();
        // A comment change keeps the layout: the store takes the new definition.
        let mut renamed = def.clone();
        renamed.version += 1;
        renamed.comment = "accounts".into();
        catalog.tables.insert(def.id, renamed.clone());
        store.apply(&put(&renamed, 2, "b"), &catalog).unwrap();
        assert_eq!(store.schema(def.id).unwrap().def.version, renamed.version);
        // A changed key type would reinterpret stored rows: refused, nothing changes.
        let mut retyped = renamed.clone();
        retyped.version += 1;
        retyped.columns[0].ty = ColumnType::bigint_unsigned();
        catalog.tables.insert(def.id, retyped.clone());
        let values = [Value::UInt(3), Value::text("c")];
        let row = retyped.layout().encode_to_vec(&values).unwrap();
        let partition = cairn_common::key::partition_of_row(&retyped, &values).unwrap();
        let err = store.apply(&RowChange::Put { table: def.id, partition, row }, &catalog).unwrap_err();
        assert!(err.message.contains("cannot reinterpret"), "{err}");
        assert_eq!(store.memory().rows, 2);
        store.check().unwrap();
    }

    #[test]
    fn restore_refuses_bad_checkpoints_and_changes_nothing() {
        let (catalog, def) = catalog_with_table(1);
        let mut store = Store::new(NodeGroupId(0));
        for i in 1..=3 {
            store.apply(&put(&def, i, "x"), &catalog).unwrap();
        }
        let row = |id| match put(&def, id, "y") {
            RowChange::Put { row, .. } => row,
            _ => unreachable!(),
        };
        let p = PartitionId(0);
        assert!(store.restore_partition(&def, p, vec![(5, row(9)), (2, row(8))]).is_err(), "slots out of order");
        assert!(store.restore_partition(&def, p, vec![(0, row(9)), (1, row(9))]).is_err(), "a key twice");
        assert!(store.restore_partition(&def, PartitionId(3), vec![]).is_err(), "no such partition");
        assert_eq!(store.count(&def), vec![(p, 3)]);
        store.check().unwrap();
        let before = store.memory();
        store.restore_partition(&def, p, vec![(4, row(9))]).unwrap();
        assert_eq!(store.partition_rows(def.id, p).map(|(slot, _)| slot).collect::<Vec<_>>(), vec![4]);
        assert!(store.memory().cell_bytes < before.cell_bytes);
        store.check().unwrap();
    }

    #[test]
    fn random_puts_and_deletes_keep_the_invariants() {
        let (catalog, def) = catalog_with_table(3);
        let mut store = Store::new(NodeGroupId(0));
        let mut model = std::collections::BTreeMap::new();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for step in 0..20_000u32 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let id = state % 700;
            if state.is_multiple_of(3) {
                store.apply(&delete(&def, id), &catalog).unwrap();
                model.remove(&id);
            } else {
                // Names of varying length move rows between size classes.
                let name = "n".repeat((state >> 20) as usize % 40);
                store.apply(&put(&def, id, &name), &catalog).unwrap();
                model.insert(id, name);
            }
            if step % 2_000 == 0 {
                store.check().unwrap();
            }
        }
        store.check().unwrap();
        let layout = def.layout();
        let mut seen = std::collections::BTreeMap::new();
        for p in store.partitions(def.id) {
            for (_, row) in store.partition_rows(def.id, p) {
                let values = layout.decode(row).unwrap();
                let Value::UInt(id) = values[0] else { panic!() };
                seen.insert(id, values[1].to_text().into_owned());
            }
        }
        assert_eq!(seen, model);
        let memory = store.memory();
        assert_eq!(memory.rows, model.len() as u64);
        let compaction = store.compact(0.5);
        assert!(compaction.bytes_after <= compaction.bytes_before);
        store.check().unwrap();
        for id in 0..700 {
            store.apply(&delete(&def, id), &catalog).unwrap();
        }
        store.compact(0.5);
        let empty = store.memory();
        assert_eq!((empty.rows, empty.page_bytes, empty.index_bytes, empty.directory_bytes), (0, 0, 0, 0));
    }
}

/// What a scan does with each row it visits: evaluates the pushed-down filter and encodes the
/// projection. Table scans and index scans share it, so both answer rows the same way.
pub(crate) struct RowShaper<'a> {
    layout: &'a cairn_common::row::RowLayout,
    filter: Option<&'a Expr>,
    /// Column numbers of the answer and their projected layout; `None`: whole rows.
    projection: Option<(Vec<usize>, cairn_common::row::RowLayout)>,
    values: Vec<Value>,
    ctx: EvalContext<'static>,
}

impl<'a> RowShaper<'a> {
    /// Checks that the projection names columns of the layout.
    pub(crate) fn new(layout: &'a cairn_common::row::RowLayout, filter: Option<&'a Expr>, projection: Option<&[u32]>) -> Result<RowShaper<'a>> {
        let projection = match projection {
            Some(columns) => {
                let columns: Vec<usize> = columns.iter().map(|&c| c as usize).collect();
                if let Some(bad) = columns.iter().find(|&&c| c >= layout.column_count()) {
                    return Err(Error::internal(format!("projection names column {bad} of a {}-column table", layout.column_count())));
                }
                let projected = layout.project(&columns);
                Some((columns, projected))
            }
            None => None,
        };
        Ok(RowShaper { layout, filter, projection, values: Vec::with_capacity(layout.column_count()), ctx: EvalContext::detached() })
    }

    /// The answer row for a stored row: `None` when the filter does not pass it.
    pub(crate) fn shape(&mut self, row: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.filter.is_some() || self.projection.is_some() {
            self.values.clear();
            self.layout.decode_into(row, &mut self.values)?;
        }
        if let Some(filter) = self.filter
            && !filter.matches(&self.values, &mut self.ctx)?
        {
            return Ok(None);
        }
        Ok(Some(match &self.projection {
            Some((columns, projected)) => {
                let picked: Vec<Value> = columns.iter().map(|&c| self.values[c].clone()).collect();
                projected.encode_to_vec(&picked)?
            }
            None => row.to_vec(),
        }))
    }
}
