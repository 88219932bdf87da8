//! Taking the consistent cut: copying the store in slices while it keeps changing.
//!
//! See the module doc of [`crate::checkpoint`] for why this design. In short: a cursor walks
//! every row position `(table, partition, slot)` of the store in order. Positions before the
//! cursor are *captured*: the records written so far, replayed, give exactly what the store now
//! holds there. [`Capture::capture`] copies rows at the cursor and moves it on; every write set
//! applied meanwhile goes through [`Capture::apply_write_set`], which applies it to the store and
//! records, for captured positions only, which slots it changed (the slot a row landed in, the
//! slot a row left). Positions at or after the cursor need nothing: the copy will see them as
//! they are when it gets there. When the cursor has passed the last partition the records
//! describe the store as it is *now*, so the cut is simply the index of the last entry applied
//! before [`Capture::finish`], whatever was applied during the copy.

use std::collections::HashMap;

use cairn_common::catalog::Catalog;
use cairn_common::ids::{PartitionId, TableId};
use cairn_common::ops::{RowChange, WriteSet};

use super::format::{BlockBuilder, TableEntry};
use super::{CheckpointConfig, CheckpointError};
use crate::Store;
use crate::schema::TableSchema;

/// A sealed block of one data file, ready to be appended to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The data file (stream) it belongs to.
    pub stream: u32,
    pub bytes: Vec<u8>,
}

/// Where the copy stands. Every position before it is captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cursor {
    At { table: TableId, partition: PartitionId, slot: u64 },
    Done,
}

/// What one call of [`Capture::capture`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureProgress {
    /// Record bytes produced by this call.
    pub bytes: u64,
    pub rows: u64,
    /// Every partition has been copied; [`Capture::finish`] may be called.
    pub done: bool,
}

/// Counters of a capture so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    pub rows_copied: u64,
    pub bytes_copied: u64,
    /// Slot changes recorded for captured positions while the copy went on.
    pub changes_recorded: u64,
    pub blocks_sealed: u64,
}

/// The position of the cut, which the data node knows and the store does not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cut {
    /// The index of the last Raft log entry applied to the store.
    pub applied_index: u64,
    pub applied_term: u64,
    pub catalog_version: u64,
    /// The Raft membership at the cut, encoded by the data node; kept opaque.
    pub raft_membership: Vec<u8>,
    /// The node group's replicated transaction state at the cut (prepared transactions waiting
    /// for their decision, remembered decisions), encoded by the data node; kept opaque. It is
    /// part of the state the log entries up to the cut built, so a restore needs it as much as
    /// the rows.
    pub txn_state: Vec<u8>,
}

/// The end of a capture: the last blocks and what the manifest says about the store.
#[derive(Clone, Debug, PartialEq)]
pub struct CapturedCheckpoint {
    pub blocks: Vec<Block>,
    pub tables: Vec<TableEntry>,
    pub cut: Cut,
    pub rows: u64,
    pub row_bytes: u64,
}

/// A slot a write set touched, learnt before it was applied.
struct Touch {
    table: TableId,
    partition: PartitionId,
    key: Vec<u8>,
    before: Option<u64>,
}

/// The copy of the store in progress (sans-IO: it produces [`Block`]s; see the module doc).
#[derive(Debug)]
pub struct Capture {
    cursor: Cursor,
    streams: Vec<BlockBuilder>,
    /// Bytes given to each stream so far, to place each new partition on the lightest one.
    stream_bytes: Vec<u64>,
    /// The stream of every partition that has records: all its records go to one data file, in
    /// order, so that a reader can replay each file on its own.
    assigned: HashMap<(TableId, PartitionId), u32>,
    sealed: Vec<Block>,
    block_bytes: usize,
    /// Set if a change could not be tracked; the checkpoint is then refused at `finish`.
    broken: Option<String>,
    stats: CaptureStats,
}

impl Capture {
    pub fn new(config: &CheckpointConfig) -> Result<Capture, CheckpointError> {
        config.validate()?;
        let streams = config.streams as usize;
        Ok(Capture {
            cursor: Cursor::At { table: TableId(0), partition: PartitionId(0), slot: 0 },
            streams: (0..streams).map(|_| BlockBuilder::default()).collect(),
            stream_bytes: vec![0; streams],
            assigned: HashMap::new(),
            sealed: Vec::new(),
            block_bytes: config.block_bytes,
            broken: None,
            stats: CaptureStats::default(),
        })
    }

    pub fn stats(&self) -> CaptureStats {
        self.stats
    }

    /// Whether every partition has been copied.
    pub fn is_captured(&self) -> bool {
        self.cursor == Cursor::Done
    }

    /// Whether some slot of the partition is captured (so changes to it must be recorded).
    fn partition_started(&self, table: TableId, partition: PartitionId) -> bool {
        match self.cursor {
            Cursor::Done => true,
            Cursor::At { table: t, partition: p, slot } => {
                (table, partition) < (t, p) || ((table, partition) == (t, p) && slot > 0)
            }
        }
    }

    fn slot_captured(&self, table: TableId, partition: PartitionId, slot: u64) -> bool {
        match self.cursor {
            Cursor::Done => true,
            Cursor::At { table: t, partition: p, slot: s } => {
                (table, partition) < (t, p) || ((table, partition) == (t, p) && slot < s)
            }
        }
    }

    fn stream_of(&mut self, table: TableId, partition: PartitionId) -> usize {
        if let Some(&stream) = self.assigned.get(&(table, partition)) {
            return stream as usize;
        }
        let lightest = (0..self.streams.len()).min_by_key(|&s| self.stream_bytes[s]).unwrap_or(0);
        self.assigned.insert((table, partition), lightest as u32);
        lightest
    }

    fn after_push(&mut self, stream: usize, added: usize) {
        self.stream_bytes[stream] += added as u64;
        if self.streams[stream].payload_len() >= self.block_bytes {
            let bytes = self.streams[stream].seal();
            self.sealed.push(Block { stream: stream as u32, bytes });
            self.stats.blocks_sealed += 1;
        }
    }

    fn record_row(&mut self, table: TableId, partition: PartitionId, slot: u64, row: &[u8]) -> usize {
        let stream = self.stream_of(table, partition);
        self.record_row_in(stream, table, partition, slot, row)
    }

    fn record_row_in(&mut self, stream: usize, table: TableId, partition: PartitionId, slot: u64, row: &[u8]) -> usize {
        // Slots are u32 in the store; the cast cannot lose bits.
        let added = self.streams[stream].push_row(table, partition, slot as u32, row);
        self.after_push(stream, added);
        added
    }

    fn record_vacate(&mut self, table: TableId, partition: PartitionId, slot: u64) {
        let stream = self.stream_of(table, partition);
        let added = self.streams[stream].push_vacate(table, partition, slot as u32);
        self.after_push(stream, added);
    }

    fn record_clear(&mut self, table: TableId, partition: PartitionId) {
        let stream = self.stream_of(table, partition);
        let added = self.streams[stream].push_clear(table, partition);
        self.after_push(stream, added);
    }

    /// Copies rows at the cursor until about `max_bytes` of records were produced (at least one
    /// row if any is left) and moves the cursor past them.
    pub fn capture(&mut self, store: &Store, max_bytes: usize) -> CaptureProgress {
        let mut progress = CaptureProgress::default();
        loop {
            let Cursor::At { table, partition, slot } = self.cursor else {
                progress.done = true;
                return progress;
            };
            let mut next_slot = slot;
            let mut rows = store.partition_rows_from(table, partition, slot).peekable();
            // The partition's stream, looked up once per slice rather than once per row.
            let stream = match rows.peek() {
                Some(_) => self.stream_of(table, partition),
                None => 0,
            };
            loop {
                if progress.bytes >= max_bytes as u64 && progress.rows > 0 {
                    self.cursor = Cursor::At { table, partition, slot: next_slot };
                    return progress;
                }
                let Some((found, row)) = rows.next() else { break };
                let added = self.record_row_in(stream, table, partition, found, row);
                next_slot = found + 1;
                progress.bytes += added as u64;
                progress.rows += 1;
                self.stats.rows_copied += 1;
                self.stats.bytes_copied += added as u64;
            }
            // The partition is copied; every position up to the next partition holding rows is
            // captured too (empty now, and changes to it are recorded from now on).
            self.cursor = match next_partition(store, store.tables(), table, partition) {
                Some((table, partition)) => Cursor::At { table, partition, slot: 0 },
                None => Cursor::Done,
            };
        }
    }

    /// Applies a committed write set to the store, recording the slots it changed in captured
    /// positions. On error nothing changed (as with [`Store::apply_write_set`]).
    pub fn apply_write_set(
        &mut self,
        store: &mut Store,
        write_set: &WriteSet,
        catalog: &Catalog,
    ) -> cairn_common::Result<()> {
        self.apply_tracked(store, &write_set.changes, catalog, |store| store.apply_write_set(write_set, catalog))
    }

    /// Applies one committed change (as [`Store::apply`]), recording what it changed.
    pub fn apply(&mut self, store: &mut Store, change: &RowChange, catalog: &Catalog) -> cairn_common::Result<()> {
        self.apply_tracked(store, std::slice::from_ref(change), catalog, |store| store.apply(change, catalog))
    }

    fn apply_tracked(
        &mut self,
        store: &mut Store,
        changes: &[RowChange],
        catalog: &Catalog,
        apply: impl FnOnce(&mut Store) -> cairn_common::Result<()>,
    ) -> cairn_common::Result<()> {
        if self.cursor == (Cursor::At { table: TableId(0), partition: PartitionId(0), slot: 0 }) {
            // Nothing is captured yet: the copy will see the result.
            return apply(store);
        }
        let mut touches: Vec<Touch> = Vec::new();
        let mut clears: Vec<(TableId, PartitionId)> = Vec::new();
        let mut untracked: Option<String> = None;
        for change in changes {
            match change {
                RowChange::Put { table, partition, row } => {
                    if !self.partition_started(*table, *partition) {
                        continue;
                    }
                    match key_of_row(store, catalog, *table, row) {
                        Ok(key) => {
                            let before = store.find_slot(*table, *partition, &key).map(|(slot, _)| slot);
                            touches.push(Touch { table: *table, partition: *partition, key, before });
                        }
                        Err(e) => untracked = Some(e),
                    }
                }
                RowChange::Delete { table, partition, key } => {
                    if !self.partition_started(*table, *partition) {
                        continue;
                    }
                    let before = store.find_slot(*table, *partition, key).map(|(slot, _)| slot);
                    touches.push(Touch { table: *table, partition: *partition, key: key.clone(), before });
                }
                RowChange::Truncate { table } | RowChange::DropTable { table } => {
                    for partition in store.partitions(*table) {
                        if self.partition_started(*table, partition) {
                            clears.push((*table, partition));
                        }
                    }
                }
                // Table-level state is taken at the cut, in `finish`.
                RowChange::AutoIncrement { .. } => {}
            }
        }
        apply(store)?;
        if let Some(reason) = untracked {
            // The store took a row whose key this capture could not derive: its slot is unknown,
            // so the checkpoint cannot be trusted. It is refused at `finish`; applying goes on.
            self.broken.get_or_insert(format!("a change could not be tracked: {reason}"));
            return Ok(());
        }
        // The slot map after the write set is the one before, minus the slots keys left, plus
        // the slots keys now hold: clears first, then vacated slots, then filled ones.
        for (table, partition) in clears {
            self.record_clear(table, partition);
            self.stats.changes_recorded += 1;
        }
        let mut seen = std::collections::HashSet::new();
        let mut filled = Vec::new();
        for touch in touches {
            // A key touched twice: its first "before" is the state before the write set.
            if !seen.insert((touch.table, touch.partition, touch.key.clone())) {
                continue;
            }
            let after = store.find_slot(touch.table, touch.partition, &touch.key);
            let after_slot = after.map(|(slot, _)| slot);
            if let Some(before) = touch.before
                && after_slot != Some(before)
                && self.slot_captured(touch.table, touch.partition, before)
            {
                self.record_vacate(touch.table, touch.partition, before);
                self.stats.changes_recorded += 1;
            }
            if let Some((slot, row)) = after
                && self.slot_captured(touch.table, touch.partition, slot)
            {
                filled.push((touch.table, touch.partition, slot, row.to_vec()));
            }
        }
        for (table, partition, slot, row) in filled {
            self.record_row(table, partition, slot, &row);
            self.stats.changes_recorded += 1;
        }
        Ok(())
    }

    /// Takes the blocks sealed so far, to be appended to their data files in this order.
    pub fn take_blocks(&mut self) -> Vec<Block> {
        std::mem::take(&mut self.sealed)
    }

    /// Bytes of sealed blocks not yet taken.
    pub fn pending_bytes(&self) -> usize {
        self.sealed.iter().map(|b| b.bytes.len()).sum()
    }

    /// Ends the capture at `cut` (the last entry applied to `store`): seals the last blocks and
    /// takes the table-level state (definitions, AUTO_INCREMENT counters, row counts).
    pub fn finish(mut self, store: &Store, cut: Cut) -> Result<CapturedCheckpoint, CheckpointError> {
        if let Some(reason) = self.broken.take() {
            return Err(CheckpointError::Invalid(format!("the checkpoint was abandoned: {reason}")));
        }
        if self.cursor != Cursor::Done {
            return Err(CheckpointError::Invalid(
                "finish called before every partition was captured; call capture until it reports done".into(),
            ));
        }
        for (stream, builder) in self.streams.iter_mut().enumerate() {
            if !builder.is_empty() {
                self.sealed.push(Block { stream: stream as u32, bytes: builder.seal() });
                self.stats.blocks_sealed += 1;
            }
        }
        let tables = store
            .tables()
            .into_iter()
            .map(|table| TableEntry {
                table,
                definition: store.schema(table).map(|s| s.def.clone()),
                auto_increment_next: store.auto_increment_next(table),
                rows: store.table_memory(table).map_or(0, |m| m.rows),
            })
            .collect();
        let memory = store.memory();
        Ok(CapturedCheckpoint {
            blocks: std::mem::take(&mut self.sealed),
            tables,
            cut,
            rows: memory.rows,
            row_bytes: memory.row_bytes,
        })
    }
}

/// The first partition after `(table, partition)`, in (table, partition) order, among `tables`
/// (ascending). Checkpoints walk every table; backups (`crate::backup`) the ones they copy.
pub(crate) fn next_partition(
    store: &Store,
    tables: impl IntoIterator<Item = TableId>,
    table: TableId,
    partition: PartitionId,
) -> Option<(TableId, PartitionId)> {
    for t in tables {
        if t < table {
            continue;
        }
        for p in store.partitions(t) {
            if (t, p) > (table, partition) {
                return Some((t, p));
            }
        }
    }
    None
}

/// The encoded primary key of a row put into `table`, under the schema the store (or else the
/// catalog) has: the same encoding the store derives when it applies the put.
pub(crate) fn key_of_row(store: &Store, catalog: &Catalog, table: TableId, row: &[u8]) -> Result<Vec<u8>, String> {
    let built;
    let schema = match (store.schema(table), catalog.table(table)) {
        (Some(schema), _) => schema,
        (None, Some(def)) => {
            built = TableSchema::new(def).map_err(|e| e.message)?;
            &built
        }
        (None, None) => return Err(format!("table {table} is unknown")),
    };
    schema.primary_key_vec(row).map_err(|e| e.message)
}
