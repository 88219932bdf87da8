//! Ordered indexes: per partition, the table's rows sorted by some columns (NDB's ordered
//! index, a T-tree there, a B-tree here).
//!
//! An ordered index is local to its partition and derived from its rows: every replica keeps
//! its own, updated while it applies committed write sets, so nothing about it enters the Raft
//! log. An entry is the key encoding of the indexed columns ([`cairn_common::key`]: comparing
//! encodings as bytes gives the SQL order under the columns' collations, NULL first) followed
//! by the row's slot as 4 big-endian bytes. Slots are stable for a row's lifetime and assigned
//! the same way on every replica (see `partition`), so two replicas that applied the same log
//! hold the same entries, and an entry leads straight to its row without a primary-key probe.
//!
//! ## Building an index online
//!
//! When the catalog gains an ordered index (CREATE INDEX, ALTER TABLE … ADD INDEX), each
//! replica starts maintaining it at once for every row it applies, and walks the rows it
//! already holds in slot order, a bounded slice per round of the node-group loop
//! ([`crate::Store::backfill_indexes`]), so writes never stall for more than a slice. Applying
//! and backfilling commute: inserting an entry twice or removing a missing one changes
//! nothing, and a row deleted before the walk reaches it leaves no entry. When every partition
//! is walked, the index is complete on this replica; the SQL node that ran the DDL asks each
//! node group ([`cairn_common::ops::ReadOp::IndexStatus`]) and then marks the index Ready in
//! the catalog, from which point plans use it. A replica that becomes leader before its own
//! walk is done still answers index scans exactly, by sorting the rows of the partitions it has
//! not finished for that request.
//!
//! Memory: one allocation per entry (key bytes plus 4), charged to the table's index bytes.

use std::collections::{BTreeMap, BTreeSet};

use cairn_common::ids::PartitionId;
use cairn_common::key::encode_key_value;
use cairn_common::{Error, Result};

use crate::schema::TableSchema;

/// Bytes an entry costs beyond its key: the box, the B-tree's share, the slot.
const ENTRY_OVERHEAD_BYTES: u64 = 40;

/// One ordered index of one table on this node.
#[derive(Debug, Clone)]
pub struct OrderedIndex {
    /// The index's id in its table definition.
    pub id: u32,
    /// Indexed columns, in index order.
    pub columns: Vec<usize>,
    entries: BTreeMap<PartitionId, BTreeSet<Box<[u8]>>>,
    /// Partitions whose existing rows are still being walked: the next slot to index.
    backfill: BTreeMap<PartitionId, u32>,
    bytes: u64,
}

impl OrderedIndex {
    pub fn new(id: u32, columns: Vec<usize>) -> OrderedIndex {
        OrderedIndex { id, columns, entries: BTreeMap::new(), backfill: BTreeMap::new(), bytes: 0 }
    }

    /// Appends the key encoding of the indexed columns of a packed row.
    pub fn encode_key(&self, schema: &TableSchema, row: &[u8], out: &mut Vec<u8>) -> Result<()> {
        for &c in &self.columns {
            let column = schema.def.columns.get(c).ok_or_else(|| Error::internal("index column out of range"))?;
            let value = schema.layout.decode_column(row, c)?;
            encode_key_value(&value, &column.ty, column.comparison(), out)?;
        }
        Ok(())
    }

    /// The entry of a row: its key encoding, then its slot.
    pub fn entry(&self, schema: &TableSchema, row: &[u8], slot: u32) -> Result<Box<[u8]>> {
        let mut out = Vec::with_capacity(24);
        self.encode_key(schema, row, &mut out)?;
        out.extend_from_slice(&slot.to_be_bytes());
        Ok(out.into_boxed_slice())
    }

    pub fn insert(&mut self, partition: PartitionId, entry: Box<[u8]>) {
        let len = entry.len() as u64;
        if self.entries.entry(partition).or_default().insert(entry) {
            self.bytes += len + ENTRY_OVERHEAD_BYTES;
        }
    }

    pub fn remove(&mut self, partition: PartitionId, entry: &[u8]) {
        if let Some(set) = self.entries.get_mut(&partition) {
            if set.remove(entry) {
                self.bytes = self.bytes.saturating_sub(entry.len() as u64 + ENTRY_OVERHEAD_BYTES);
            }
            if set.is_empty() {
                self.entries.remove(&partition);
            }
        }
    }

    /// Forgets a partition's entries (its rows are gone) and any walk of it.
    pub fn clear_partition(&mut self, partition: PartitionId) {
        if let Some(set) = self.entries.remove(&partition) {
            let freed: u64 = set.iter().map(|e| e.len() as u64 + ENTRY_OVERHEAD_BYTES).sum();
            self.bytes = self.bytes.saturating_sub(freed);
        }
        self.backfill.remove(&partition);
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.backfill.clear();
        self.bytes = 0;
    }

    /// Starts (or restarts) the walk of a partition's existing rows.
    pub fn start_backfill(&mut self, partition: PartitionId) {
        self.backfill.insert(partition, 0);
    }

    /// The partition and next slot of a walk still to do, if any.
    pub fn next_backfill(&self) -> Option<(PartitionId, u32)> {
        self.backfill.iter().next().map(|(p, s)| (*p, *s))
    }

    pub fn set_backfill(&mut self, partition: PartitionId, next: Option<u32>) {
        match next {
            Some(slot) => {
                self.backfill.insert(partition, slot);
            }
            None => {
                self.backfill.remove(&partition);
            }
        }
    }

    /// Whether every partition's rows are indexed.
    pub fn is_complete(&self) -> bool {
        self.backfill.is_empty()
    }

    pub fn is_complete_for(&self, partition: PartitionId) -> bool {
        !self.backfill.contains_key(&partition)
    }

    /// The entries of a partition (None when it has none).
    pub fn partition(&self, partition: PartitionId) -> Option<&BTreeSet<Box<[u8]>>> {
        self.entries.get(&partition)
    }

    /// Memory the entries take (estimated).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.values().map(BTreeSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The slot an entry points at.
pub fn entry_slot(entry: &[u8]) -> u32 {
    let n = entry.len();
    if n < 4 {
        return u32::MAX;
    }
    u32::from_be_bytes([entry[n - 4], entry[n - 3], entry[n - 2], entry[n - 1]])
}

/// The smallest byte string greater than every string that starts with `prefix`, if any (a
/// prefix of only 0xFF bytes has none).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xFF {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_bounds_every_extension() {
        assert_eq!(prefix_successor(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_successor(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xFF, 0xFF]), None);
        let succ = prefix_successor(&[5, 7]).unwrap();
        for ext in [vec![5u8, 7], vec![5, 7, 0xFF, 0xFF, 0xFF], vec![5, 7, 0]] {
            assert!(ext.as_slice() < succ.as_slice());
        }
        assert!([5u8, 8].as_slice() >= succ.as_slice());
    }

    #[test]
    fn slots_read_back() {
        let mut e = vec![9, 9];
        e.extend_from_slice(&77u32.to_be_bytes());
        assert_eq!(entry_slot(&e), 77);
    }
}
