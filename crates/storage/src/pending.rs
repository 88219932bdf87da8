//! The leader's overlay of write sets it has proposed but not yet applied.
//!
//! Between proposing a write set and applying it (once the Raft log commits it) the leader keeps
//! evaluating new writes. They must see the proposed ones, or two inserts of one key proposed
//! back to back would both succeed. [`Pending`] holds, per (table, partition, primary key), the
//! latest proposed row image or a tombstone, and per table the pending TRUNCATEs and
//! AUTO_INCREMENT counter. Evaluation reads the batch being built, then this overlay, then the
//! store.
//!
//! Every entry counts the pending write sets that touched it. When a write set applies
//! ([`Pending::applied`]) its entries are released; an entry whose count reaches zero is
//! dropped, because the store now holds exactly that image (write sets apply in proposal order).
//! Each write set is remembered by a caller-chosen token (the Raft log index or a proposal id),
//! so applying an entry this leader did not propose (an older term's) releases nothing.
//! On leadership loss the overlay is cleared ([`Pending::clear`]).
//!
//! Invariant: the overlay's view (latest image per key, tables hidden by a pending TRUNCATE)
//! equals the store after applying every pending write set in order.

use std::collections::{HashMap, VecDeque};

use cairn_common::catalog::Catalog;
use cairn_common::ids::{PartitionId, TableId};
use cairn_common::ops::{RowChange, WriteSet};
use cairn_common::{Error, Result};

use crate::schema::TableSchema;

/// What the overlay knows about one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The latest image.
    Row(&'a [u8]),
    /// Deleted (or its table truncated).
    Deleted,
    /// Not touched: ask the layer below.
    Unknown,
}

#[derive(Clone, Debug)]
pub(crate) struct OverlayRow {
    pub image: Option<Box<[u8]>>,
    refs: u32,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct TableOverlay {
    /// TRUNCATE / DROP TABLE pending: rows below this layer are hidden.
    truncates: u32,
    pub rows: HashMap<PartitionId, HashMap<Box<[u8]>, OverlayRow>>,
    /// The latest AUTO_INCREMENT next value and the write sets that set it.
    auto_increment: Option<(u64, u32)>,
}

/// Layered row images keyed by table, partition and encoded primary key. Used for the pending
/// write sets and for the batch being evaluated.
#[derive(Clone, Debug, Default)]
pub(crate) struct Overlay {
    tables: HashMap<TableId, TableOverlay>,
}

/// One change as the overlay records it (with the key a Put's row carries).
#[derive(Clone, Debug)]
pub(crate) enum Touch {
    Row { table: TableId, partition: PartitionId, key: Box<[u8]> },
    Truncate { table: TableId },
    AutoIncrement { table: TableId },
}

impl Overlay {
    pub fn lookup(&self, table: TableId, partition: PartitionId, key: &[u8]) -> Lookup<'_> {
        let Some(t) = self.tables.get(&table) else { return Lookup::Unknown };
        if let Some(row) = t.rows.get(&partition).and_then(|rows| rows.get(key)) {
            return match &row.image {
                Some(image) => Lookup::Row(image),
                None => Lookup::Deleted,
            };
        }
        if t.truncates > 0 { Lookup::Deleted } else { Lookup::Unknown }
    }

    /// Whether rows of the layers below are hidden for this table.
    pub fn hides_below(&self, table: TableId) -> bool {
        self.tables.get(&table).is_some_and(|t| t.truncates > 0)
    }

    /// Entries of one partition (images and tombstones).
    pub fn partition(&self, table: TableId, partition: PartitionId) -> Option<&HashMap<Box<[u8]>, OverlayRow>> {
        self.tables.get(&table).and_then(|t| t.rows.get(&partition))
    }

    /// Whether the overlay has any entry for this partition or hides the table.
    pub fn touches(&self, table: TableId, partition: PartitionId) -> bool {
        self.tables
            .get(&table)
            .is_some_and(|t| t.truncates > 0 || t.rows.get(&partition).is_some_and(|r| !r.is_empty()))
    }

    /// The AUTO_INCREMENT next value this layer sets: `(value, authoritative)`. Authoritative
    /// when a TRUNCATE in this layer reset the counter, so that lower layers no longer count.
    pub fn auto_increment(&self, table: TableId) -> Option<(u64, bool)> {
        let t = self.tables.get(&table)?;
        match t.auto_increment {
            Some((next, _)) => Some((next, t.truncates > 0)),
            None if t.truncates > 0 => Some((0, true)),
            None => None,
        }
    }

    pub fn put(&mut self, table: TableId, partition: PartitionId, key: &[u8], row: &[u8]) {
        let rows = self.tables.entry(table).or_default().rows.entry(partition).or_default();
        let entry = rows.entry(key.into()).or_insert(OverlayRow { image: None, refs: 0 });
        entry.image = Some(row.into());
        entry.refs += 1;
    }

    pub fn delete(&mut self, table: TableId, partition: PartitionId, key: &[u8]) {
        let rows = self.tables.entry(table).or_default().rows.entry(partition).or_default();
        let entry = rows.entry(key.into()).or_insert(OverlayRow { image: None, refs: 0 });
        entry.image = None;
        entry.refs += 1;
    }

    pub fn truncate(&mut self, table: TableId) {
        let t = self.tables.entry(table).or_default();
        t.truncates += 1;
        for rows in t.rows.values_mut() {
            for entry in rows.values_mut() {
                entry.image = None;
            }
        }
        if let Some((next, _)) = t.auto_increment.as_mut() {
            *next = 0;
        }
    }

    pub fn set_auto_increment(&mut self, table: TableId, next: u64) {
        let t = self.tables.entry(table).or_default();
        match t.auto_increment.as_mut() {
            Some((value, refs)) => {
                *value = (*value).max(next);
                *refs += 1;
            }
            None => t.auto_increment = Some((next, 1)),
        }
    }

    /// Releases one reference taken by an earlier put, delete, truncate or counter change.
    fn release(&mut self, touch: &Touch) {
        let table = match touch {
            Touch::Row { table, .. } | Touch::Truncate { table } | Touch::AutoIncrement { table } => *table,
        };
        let Some(t) = self.tables.get_mut(&table) else { return };
        match touch {
            Touch::Row { partition, key, .. } => {
                if let Some(rows) = t.rows.get_mut(partition) {
                    if let Some(entry) = rows.get_mut(key) {
                        entry.refs -= 1;
                        if entry.refs == 0 {
                            rows.remove(key);
                        }
                    }
                    if rows.is_empty() {
                        t.rows.remove(partition);
                    }
                }
            }
            Touch::Truncate { .. } => t.truncates = t.truncates.saturating_sub(1),
            Touch::AutoIncrement { .. } => {
                if let Some((_, refs)) = t.auto_increment.as_mut() {
                    *refs -= 1;
                    if *refs == 0 {
                        t.auto_increment = None;
                    }
                }
            }
        }
        if t.truncates == 0 && t.rows.is_empty() && t.auto_increment.is_none() {
            self.tables.remove(&table);
        }
    }
}

/// A proposed write set, remembered until it applies.
#[derive(Debug)]
struct Proposed {
    token: u64,
    touches: Vec<Touch>,
    /// The memory its rows may take once applied (an upper bound).
    bytes: u64,
}

/// Write sets the leader proposed and has not applied yet; see the module doc.
#[derive(Debug, Default)]
pub struct Pending {
    overlay: Overlay,
    proposed: VecDeque<Proposed>,
    bytes: u64,
    /// Schemas used to find the keys of proposed rows, kept across proposals (rebuilt when the
    /// catalog's definition version changes).
    schemas: HashMap<TableId, TableSchema>,
}

/// Bytes the store may need for one more row beyond its cell: a directory slot and its share of
/// the hash index.
pub(crate) const ROW_OVERHEAD_BYTES: u64 = 20;

/// An upper bound on the memory a put of a row of `len` bytes takes.
pub(crate) fn put_cost(len: usize) -> u64 {
    crate::arena::cell_bytes(len) as u64 + ROW_OVERHEAD_BYTES
}

impl Pending {
    pub fn new() -> Pending {
        Pending::default()
    }

    /// Records a write set just proposed, under `token` (the caller's name for it, such as the
    /// Raft log index it was proposed at). Row keys are found with the table definitions in
    /// `catalog` (the ones evaluation used). On error nothing is recorded.
    pub fn add(&mut self, token: u64, write_set: &WriteSet, catalog: &Catalog) -> Result<()> {
        if self.proposed.iter().any(|p| p.token == token) {
            return Err(Error::internal(format!("write set token {token} is already pending")));
        }
        let mut touches = Vec::with_capacity(write_set.changes.len());
        let mut bytes = 0u64;
        for change in &write_set.changes {
            touches.push(match change {
                RowChange::Put { table, partition, row } => {
                    let def = catalog.table(*table).ok_or_else(|| {
                        Error::internal(format!("a proposed write set names table {table}, unknown to the catalog"))
                    })?;
                    if self.schemas.get(table).is_none_or(|s| s.def.version != def.version) {
                        self.schemas.insert(*table, TableSchema::new(def)?);
                    }
                    let key = self.schemas[table].primary_key_vec(row)?;
                    bytes += put_cost(row.len());
                    Touch::Row { table: *table, partition: *partition, key: key.into() }
                }
                RowChange::Delete { table, partition, key } => {
                    Touch::Row { table: *table, partition: *partition, key: key.as_slice().into() }
                }
                RowChange::Truncate { table } => Touch::Truncate { table: *table },
                RowChange::DropTable { table } => {
                    self.schemas.remove(table);
                    Touch::Truncate { table: *table }
                }
                RowChange::AutoIncrement { table, .. } => Touch::AutoIncrement { table: *table },
            });
        }
        for (change, touch) in write_set.changes.iter().zip(&touches) {
            match (change, touch) {
                (RowChange::Put { row, .. }, Touch::Row { table, partition, key }) => {
                    self.overlay.put(*table, *partition, key, row)
                }
                (RowChange::Delete { .. }, Touch::Row { table, partition, key }) => {
                    self.overlay.delete(*table, *partition, key)
                }
                (_, Touch::Truncate { table }) => self.overlay.truncate(*table),
                (RowChange::AutoIncrement { next, .. }, Touch::AutoIncrement { table }) => {
                    self.overlay.set_auto_increment(*table, *next)
                }
                _ => unreachable!("touches are built from the same changes"),
            }
        }
        self.bytes += bytes;
        self.proposed.push_back(Proposed { token, touches, bytes });
        Ok(())
    }

    /// Releases the write set proposed under `token` once the store has applied it. Returns
    /// false (and changes nothing) if no pending write set has that token, as for entries a
    /// previous leader proposed.
    pub fn applied(&mut self, token: u64) -> bool {
        let Some(at) = self.proposed.iter().position(|p| p.token == token) else { return false };
        let proposed = self.proposed.remove(at).expect("position is in range");
        for touch in &proposed.touches {
            self.overlay.release(touch);
        }
        self.bytes -= proposed.bytes;
        true
    }

    /// Forgets everything (on losing leadership: the new leader's log decides what applies).
    pub fn clear(&mut self) {
        self.overlay = Overlay::default();
        self.proposed.clear();
        self.bytes = 0;
    }

    /// Write sets pending.
    pub fn len(&self) -> usize {
        self.proposed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.proposed.is_empty()
    }

    /// Tokens of the pending write sets, oldest first.
    pub fn tokens(&self) -> Vec<u64> {
        self.proposed.iter().map(|p| p.token).collect()
    }

    /// An upper bound on the memory the pending write sets will take once applied.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(crate) fn overlay(&self) -> &Overlay {
        &self.overlay
    }
}
