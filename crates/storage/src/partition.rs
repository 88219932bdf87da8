//! One partition (NDB: fragment) of one table on this node: a slot directory and a primary-key
//! hash index over it.
//!
//! - The **slot directory** gives every row a stable slot number for as long as the row exists
//!   (an overwrite of the row keeps its slot). Scans walk slots in ascending order and resume
//!   from a slot number, so a row that exists for the whole scan is returned exactly once while
//!   others come and go. A freed slot is reused lowest-first, and trailing free slots are
//!   trimmed, so slot assignment depends only on which slots are occupied: replicas that apply
//!   the same log, and a replica restored from a checkpoint that kept slot numbers, agree on
//!   every row's slot.
//! - The **index** is a `hashbrown::HashTable<u32>` of slot numbers. It stores no key: the hash
//!   and the equality check re-derive the key from the stored row.
//!
//! Costs per row: the cell in the arena, 8 bytes of directory, and 4 bytes plus one control
//! byte per index bucket (buckets are 1.15 to 2.3 times the rows).

use std::cell::RefCell;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use cairn_common::{Error, Result};

use crate::arena::{Arena, RowHandle};
use crate::schema::TableSchema;

/// Slots per directory chunk. Chunks keep the directory from doubling on growth (a Vec would
/// hold up to twice the slots it needs) and from copying itself when it grows.
const CHUNK_SLOTS: usize = 1024;

/// What a put did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Inserted { slot: u32 },
    Overwrote { slot: u32, old_len: usize },
}

#[derive(Default)]
pub struct Partition {
    chunks: Vec<Box<[Option<RowHandle>]>>,
    /// Slots in use or free below this; every slot at or above it is free.
    slot_count: u32,
    /// Bit per slot below `slot_count`: set when the slot is free.
    free_bits: Vec<u64>,
    free_count: u32,
    /// No free bit in `free_bits` words below this.
    free_hint: usize,
    index: HashTable<u32>,
    rows: u64,
    row_bytes: u64,
    cell_bytes: u64,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition").field("rows", &self.rows).field("slots", &self.slot_count).finish()
    }
}

/// Hashes an encoded primary key.
pub fn hash_key(hasher: &DefaultHashBuilder, key: &[u8]) -> u64 {
    hasher.hash_one(key)
}

fn derived_key(schema: &TableSchema, row: &[u8], out: &mut Vec<u8>) {
    out.clear();
    // Stored rows were checked to yield a key when they were put, so failing now means the
    // memory under the store is corrupt; there is no sane way to go on.
    schema.primary_key(row, out).expect("a stored row yields its primary key");
}

impl Partition {
    pub fn new() -> Partition {
        Partition::default()
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Sum of the packed row lengths.
    pub fn row_bytes(&self) -> u64 {
        self.row_bytes
    }

    /// Sum of the arena cells the rows occupy.
    pub fn cell_bytes(&self) -> u64 {
        self.cell_bytes
    }

    /// Bytes of the slot directory (chunks and free bitmap).
    pub fn directory_bytes(&self) -> u64 {
        (self.chunks.len() * CHUNK_SLOTS * std::mem::size_of::<Option<RowHandle>>()
            + self.chunks.capacity() * std::mem::size_of::<Box<[Option<RowHandle>]>>()
            + self.free_bits.capacity() * 8) as u64
    }

    /// Bytes of the hash index.
    pub fn index_bytes(&self) -> u64 {
        self.index.allocation_size() as u64
    }

    /// One past the highest slot that may hold a row.
    pub fn slot_count(&self) -> u32 {
        self.slot_count
    }

    fn handle(&self, slot: u32) -> Option<RowHandle> {
        let slot = slot as usize;
        self.chunks.get(slot / CHUNK_SLOTS).and_then(|chunk| chunk[slot % CHUNK_SLOTS])
    }

    fn set_handle(&mut self, slot: u32, handle: Option<RowHandle>) {
        let slot = slot as usize;
        self.chunks[slot / CHUNK_SLOTS][slot % CHUNK_SLOTS] = handle;
    }

    /// The row in `slot`, if any.
    pub fn row_at<'a>(&self, arena: &'a Arena, slot: u32) -> Option<&'a [u8]> {
        self.handle(slot).map(|h| arena.get(h))
    }

    /// The first occupied slot at or after `from`, with its row.
    pub fn next_row<'a>(&self, arena: &'a Arena, from: u32) -> Option<(u32, &'a [u8])> {
        (from..self.slot_count).find_map(|slot| self.handle(slot).map(|h| (slot, arena.get(h))))
    }

    /// The slot of the row with this encoded primary key.
    pub fn find(&self, arena: &Arena, schema: &TableSchema, hasher: &DefaultHashBuilder, key: &[u8]) -> Option<u32> {
        let mut scratch = Vec::with_capacity(key.len());
        self.index
            .find(hash_key(hasher, key), |&slot| {
                let row = arena.get(self.handle(slot).expect("indexed slots hold rows"));
                derived_key(schema, row, &mut scratch);
                scratch == key
            })
            .copied()
    }

    /// Stores `row` (whose encoded primary key is `key`), overwriting the row with that key.
    pub fn put(
        &mut self,
        arena: &mut Arena,
        schema: &TableSchema,
        hasher: &DefaultHashBuilder,
        key: &[u8],
        row: &[u8],
    ) -> PutOutcome {
        if let Some(slot) = self.find(arena, schema, hasher, key) {
            let old = self.handle(slot).expect("indexed slots hold rows");
            let old_len = arena.get(old).len();
            let new = arena.replace(old, row);
            self.set_handle(slot, Some(new));
            self.row_bytes = self.row_bytes - old_len as u64 + row.len() as u64;
            self.cell_bytes =
                self.cell_bytes - crate::arena::cell_bytes(old_len) as u64 + crate::arena::cell_bytes(row.len()) as u64;
            return PutOutcome::Overwrote { slot, old_len };
        }
        let slot = self.alloc_slot();
        self.insert_at(arena, schema, hasher, slot, key, row);
        PutOutcome::Inserted { slot }
    }

    /// Stores a new row in a slot just allocated for it.
    fn insert_at(
        &mut self,
        arena: &mut Arena,
        schema: &TableSchema,
        hasher: &DefaultHashBuilder,
        slot: u32,
        key: &[u8],
        row: &[u8],
    ) {
        let handle = arena.alloc(row);
        self.set_handle(slot, Some(handle));
        self.rows += 1;
        self.row_bytes += row.len() as u64;
        self.cell_bytes += crate::arena::cell_bytes(row.len()) as u64;
        let Partition { index, chunks, .. } = self;
        let arena: &Arena = arena;
        let scratch = RefCell::new(Vec::new());
        index.insert_unique(hash_key(hasher, key), slot, |&other| {
            let s = other as usize;
            let handle = chunks[s / CHUNK_SLOTS][s % CHUNK_SLOTS].expect("indexed slots hold rows");
            let mut buf = scratch.borrow_mut();
            derived_key(schema, arena.get(handle), &mut buf);
            hash_key(hasher, &buf)
        });
    }

    /// Removes the row with this encoded primary key; returns its length if there was one.
    pub fn delete(
        &mut self,
        arena: &mut Arena,
        schema: &TableSchema,
        hasher: &DefaultHashBuilder,
        key: &[u8],
    ) -> Option<usize> {
        let Partition { index, chunks, .. } = self;
        let mut scratch = Vec::with_capacity(key.len());
        let entry = {
            let arena: &Arena = arena;
            index
                .find_entry(hash_key(hasher, key), |&slot| {
                    let s = slot as usize;
                    let handle = chunks[s / CHUNK_SLOTS][s % CHUNK_SLOTS].expect("indexed slots hold rows");
                    derived_key(schema, arena.get(handle), &mut scratch);
                    scratch == key
                })
                .ok()?
        };
        let (slot, _) = entry.remove();
        let handle = self.handle(slot).expect("indexed slots hold rows");
        let len = arena.get(handle).len();
        arena.free(handle);
        self.free_slot(slot);
        self.rows -= 1;
        self.row_bytes -= len as u64;
        self.cell_bytes -= crate::arena::cell_bytes(len) as u64;
        Some(len)
    }

    /// Frees every row.
    pub fn clear(&mut self, arena: &mut Arena) {
        for chunk in &self.chunks {
            for handle in chunk.iter().flatten() {
                arena.free(*handle);
            }
        }
        *self = Partition::new();
    }

    fn alloc_slot(&mut self) -> u32 {
        if self.free_count > 0 {
            for word_at in self.free_hint..self.free_bits.len() {
                let word = self.free_bits[word_at];
                if word != 0 {
                    let bit = word.trailing_zeros() as usize;
                    self.free_bits[word_at] &= !(1u64 << bit);
                    self.free_count -= 1;
                    self.free_hint = word_at;
                    return (word_at * 64 + bit) as u32;
                }
            }
            unreachable!("free_count counts the set bits of free_bits");
        }
        self.extend_slots()
    }

    /// Adds a slot at the end of the directory.
    fn extend_slots(&mut self) -> u32 {
        let slot = self.slot_count;
        assert!(slot < u32::MAX, "a partition holds fewer than 2^32 rows");
        self.slot_count += 1;
        let needed_chunks = (self.slot_count as usize).div_ceil(CHUNK_SLOTS);
        if self.chunks.len() < needed_chunks {
            self.chunks.push(vec![None; CHUNK_SLOTS].into_boxed_slice());
        }
        let needed_words = (self.slot_count as usize).div_ceil(64);
        if self.free_bits.len() < needed_words {
            self.free_bits.push(0);
        }
        slot
    }

    fn free_slot(&mut self, slot: u32) {
        self.set_handle(slot, None);
        let s = slot as usize;
        self.free_bits[s / 64] |= 1u64 << (s % 64);
        self.free_count += 1;
        self.free_hint = self.free_hint.min(s / 64);
        // Trailing free slots are given up, so the directory shrinks after deletes at its end.
        while self.slot_count > 0 && self.handle(self.slot_count - 1).is_none() {
            let last = (self.slot_count - 1) as usize;
            self.free_bits[last / 64] &= !(1u64 << (last % 64));
            self.free_count -= 1;
            self.slot_count -= 1;
        }
        let needed_chunks = (self.slot_count as usize).div_ceil(CHUNK_SLOTS);
        self.chunks.truncate(needed_chunks);
        let needed_words = (self.slot_count as usize).div_ceil(64);
        self.free_bits.truncate(needed_words);
        self.free_hint = self.free_hint.min(self.free_bits.len());
    }

    /// Places a row at a given slot while rebuilding a partition from a checkpoint. Rows must
    /// come in ascending slot order; slots skipped over become free.
    pub fn restore_row(
        &mut self,
        arena: &mut Arena,
        schema: &TableSchema,
        hasher: &DefaultHashBuilder,
        slot: u32,
        key: &[u8],
        row: &[u8],
    ) -> Result<()> {
        if slot < self.slot_count || slot == u32::MAX {
            return Err(Error::internal(format!("checkpoint rows out of slot order at slot {slot}")));
        }
        if self.find(arena, schema, hasher, key).is_some() {
            return Err(Error::internal(format!("checkpoint holds a primary key twice (slot {slot})")));
        }
        while self.slot_count < slot {
            let hole = self.extend_slots() as usize;
            self.free_bits[hole / 64] |= 1u64 << (hole % 64);
            self.free_count += 1;
            self.free_hint = self.free_hint.min(hole / 64);
        }
        let placed = self.extend_slots();
        debug_assert_eq!(placed, slot);
        self.insert_at(arena, schema, hasher, placed, key, row);
        Ok(())
    }

    /// Moves rows out of pages the arena is evacuating.
    pub fn relocate_rows(&mut self, arena: &mut Arena) {
        for chunk in &mut self.chunks {
            for handle in chunk.iter_mut().flatten() {
                *handle = arena.relocate(*handle);
            }
        }
    }

    /// Gives back index and directory capacity that deletes left unused.
    pub fn shrink(&mut self, arena: &Arena, schema: &TableSchema, hasher: &DefaultHashBuilder) {
        let Partition { index, chunks, .. } = self;
        let scratch = RefCell::new(Vec::new());
        index.shrink_to_fit(|&slot| {
            let s = slot as usize;
            let handle = chunks[s / CHUNK_SLOTS][s % CHUNK_SLOTS].expect("indexed slots hold rows");
            let mut buf = scratch.borrow_mut();
            derived_key(schema, arena.get(handle), &mut buf);
            hash_key(hasher, &buf)
        });
        self.chunks.shrink_to_fit();
        self.free_bits.shrink_to_fit();
    }

    /// Checks the partition's invariants (tests and debugging).
    pub fn check(&self, arena: &Arena, schema: &TableSchema, hasher: &DefaultHashBuilder) -> Result<()> {
        let mut rows = 0u64;
        let mut free = 0u32;
        for slot in 0..self.slot_count {
            let is_free = self.free_bits[slot as usize / 64] & (1u64 << (slot % 64)) != 0;
            match self.handle(slot) {
                Some(handle) => {
                    if is_free {
                        return Err(Error::internal(format!("slot {slot} holds a row but is marked free")));
                    }
                    rows += 1;
                    let key = schema.primary_key_vec(arena.get(handle))?;
                    if self.find(arena, schema, hasher, &key) != Some(slot) {
                        return Err(Error::internal(format!("slot {slot} is not found through the index")));
                    }
                }
                None => {
                    if !is_free {
                        return Err(Error::internal(format!("empty slot {slot} is not marked free")));
                    }
                    free += 1;
                }
            }
        }
        if rows != self.rows || rows != self.index.len() as u64 || free != self.free_count {
            return Err(Error::internal(format!(
                "counts disagree: {rows} rows in slots, {} counted, {} indexed, {free} free slots vs {}",
                self.rows,
                self.index.len(),
                self.free_count
            )));
        }
        if self.slot_count > 0 && self.handle(self.slot_count - 1).is_none() {
            return Err(Error::internal("the last slot is free but was not trimmed"));
        }
        Ok(())
    }
}
