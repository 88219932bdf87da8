//! The in-memory log store, for tests and the deterministic simulator.
//!
//! It behaves like [`FileLogStore`](super::FileLogStore) (same batch checks, same compaction
//! rules) and models durability: it keeps the state as the disk would have it after a crash
//! (everything written up to the last sync) next to the current state. [`MemLogStore::crash`]
//! throws away what was never synced, which is what a power cut does to a real log.
//!
//! The store is a cheap handle (`Clone` shares the same state), so a test can keep one handle
//! as "the node's disk", drop the replica that writes through another, crash the disk and open
//! a new replica on it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use raft::eraftpb::{Entry, HardState};

use super::{
    LogBatch, LogError, LogStore, LogView, MAX_ENTRY_PAYLOAD_BYTES, StoredConfState, check_batch,
    push_limited,
};

/// A log kept in memory, with a model of what has been synced. See the module documentation.
#[derive(Clone, Debug)]
pub struct MemLogStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    current: MemLog,
    durable: MemLog,
    /// Batches applied to `current` but not yet to `durable`.
    unsynced: Vec<LogBatch>,
    sync: bool,
    sync_count: u64,
}

/// The log state itself: the same shape the file store keeps in its index.
#[derive(Debug, Clone, Default)]
struct MemLog {
    base_index: u64,
    base_term: u64,
    entries: VecDeque<Entry>,
    hard_state: HardState,
    conf: StoredConfState,
}

impl MemLog {
    fn last_index(&self) -> u64 {
        self.base_index + self.entries.len() as u64
    }

    fn term(&self, index: u64) -> Result<u64, LogError> {
        if index == self.base_index {
            return Ok(self.base_term);
        }
        if index < self.base_index {
            return Err(LogError::Compacted {
                index,
                first_index: self.base_index + 1,
            });
        }
        if index > self.last_index() {
            return Err(LogError::Unavailable {
                index,
                last_index: self.last_index(),
            });
        }
        Ok(self.entries[(index - self.base_index - 1) as usize].term)
    }

    /// Applies a batch that `check_batch` accepted.
    fn apply(&mut self, batch: &LogBatch) {
        if let Some(meta) = &batch.snapshot {
            self.entries.clear();
            self.base_index = meta.index;
            self.base_term = meta.term;
            self.hard_state.commit = self.hard_state.commit.max(meta.index);
            self.hard_state.term = self.hard_state.term.max(meta.term);
            self.conf = StoredConfState {
                conf_state: meta.get_conf_state().clone(),
                index: meta.index,
            };
        }
        if let Some(first) = batch.entries.first() {
            let keep = (first.index - self.base_index - 1) as usize;
            self.entries.truncate(keep);
            self.entries.extend(batch.entries.iter().cloned());
        }
        if let Some(conf) = &batch.conf_state {
            self.conf = conf.clone();
        }
        if let Some(hard_state) = &batch.hard_state {
            self.hard_state = hard_state.clone();
        }
    }

    fn compact(&mut self, index: u64, term: u64) {
        let drop = (index - self.base_index) as usize;
        self.entries.drain(..drop);
        self.base_index = index;
        self.base_term = term;
        self.hard_state.commit = self.hard_state.commit.max(index);
    }
}

impl Default for MemLogStore {
    fn default() -> Self {
        MemLogStore::new()
    }
}

impl MemLogStore {
    /// An empty log that syncs every batch that asks for it (the default `DiskSync`).
    pub fn new() -> MemLogStore {
        MemLogStore::with_sync(true)
    }

    /// An empty log; with `sync == false` nothing is durable until
    /// [`LogStore::flush_and_sync`] (the `DiskSync = interval` mode).
    pub fn with_sync(sync: bool) -> MemLogStore {
        MemLogStore {
            inner: Arc::new(Mutex::new(Inner {
                current: MemLog::default(),
                durable: MemLog::default(),
                unsynced: Vec::new(),
                sync,
                sync_count: 0,
            })),
        }
    }

    /// Simulates a crash: every write since the last sync is lost.
    pub fn crash(&self) {
        let mut inner = self.lock();
        inner.current = inner.durable.clone();
        inner.unsynced.clear();
    }

    /// How many syncs the store has done (each models one `fsync`).
    pub fn sync_count(&self) -> u64 {
        self.lock().sync_count
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the state half-updated (every update is
        // a plain assignment after all checks), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    fn sync(&mut self) {
        for batch in self.unsynced.drain(..) {
            self.durable.apply(&batch);
        }
        self.sync_count += 1;
    }
}

impl LogStore for MemLogStore {
    fn first_index(&self) -> u64 {
        self.lock().current.base_index + 1
    }

    fn last_index(&self) -> u64 {
        self.lock().current.last_index()
    }

    fn term(&self, index: u64) -> Result<u64, LogError> {
        self.lock().current.term(index)
    }

    fn entries(&self, low: u64, high: u64, max_bytes: Option<u64>) -> Result<Vec<Entry>, LogError> {
        let inner = self.lock();
        let log = &inner.current;
        if low <= log.base_index {
            return Err(LogError::Compacted {
                index: low,
                first_index: log.base_index + 1,
            });
        }
        if high > log.last_index() + 1 {
            return Err(LogError::Unavailable {
                index: high - 1,
                last_index: log.last_index(),
            });
        }
        let mut out = Vec::new();
        let mut used = 0;
        for index in low..high {
            let entry = log.entries[(index - log.base_index - 1) as usize].clone();
            if !push_limited(&mut out, &mut used, entry, max_bytes) {
                break;
            }
        }
        Ok(out)
    }

    fn hard_state(&self) -> HardState {
        self.lock().current.hard_state.clone()
    }

    fn conf_state(&self) -> StoredConfState {
        self.lock().current.conf.clone()
    }

    fn write(&mut self, batch: LogBatch) -> Result<(), LogError> {
        let mut inner = self.lock();
        let view = LogView {
            base_index: inner.current.base_index,
            last_index: inner.current.last_index(),
        };
        check_batch(
            &batch,
            view,
            |index| inner.current.term(index).ok(),
            MAX_ENTRY_PAYLOAD_BYTES,
        )?;
        if batch.is_empty() {
            return Ok(());
        }
        let must_sync = batch.must_sync;
        inner.current.apply(&batch);
        inner.unsynced.push(batch);
        if must_sync && inner.sync {
            inner.sync();
        }
        Ok(())
    }

    fn compact_to(&mut self, index: u64) -> Result<(), LogError> {
        let mut inner = self.lock();
        if index <= inner.current.base_index {
            return Ok(());
        }
        if index > inner.current.last_index() {
            return Err(LogError::invalid(format!(
                "cannot compact to {index}, beyond the last index {}",
                inner.current.last_index()
            )));
        }
        let term = inner.current.term(index)?;
        // Compaction is durable on return, like the file store's: sync what came before, then
        // apply the compaction to both states.
        inner.sync();
        inner.current.compact(index, term);
        inner.durable.compact(index, term);
        Ok(())
    }

    fn flush_and_sync(&mut self) -> Result<(), LogError> {
        self.lock().sync();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        let mut entry = Entry::default();
        entry.index = index;
        entry.term = term;
        entry.data = format!("e{index}").into_bytes().into();
        entry
    }

    fn batch(entries: Vec<Entry>, sync: bool) -> LogBatch {
        LogBatch {
            entries,
            must_sync: sync,
            ..LogBatch::default()
        }
    }

    #[test]
    fn crash_keeps_only_synced_batches() {
        let mut store = MemLogStore::with_sync(false);
        store
            .write(batch(vec![entry(1, 1), entry(2, 1)], true))
            .unwrap();
        store.flush_and_sync().unwrap();
        store.write(batch(vec![entry(3, 1)], true)).unwrap();
        assert_eq!(store.last_index(), 3);
        store.crash();
        assert_eq!(store.last_index(), 2);

        let mut synced = MemLogStore::new();
        synced.write(batch(vec![entry(1, 1)], true)).unwrap();
        synced.write(batch(vec![entry(2, 1)], false)).unwrap();
        synced.crash();
        assert_eq!(
            synced.last_index(),
            1,
            "a batch that did not ask for a sync is not durable"
        );
    }

    #[test]
    fn overwrite_and_compact() {
        let mut store = MemLogStore::new();
        store
            .write(batch((1..=5).map(|i| entry(i, 1)).collect(), true))
            .unwrap();
        store.write(batch(vec![entry(4, 2)], true)).unwrap();
        assert_eq!(store.last_index(), 4);
        assert_eq!(store.term(4).unwrap(), 2);
        store.compact_to(2).unwrap();
        assert_eq!(store.first_index(), 3);
        assert_eq!(store.term(2).unwrap(), 1);
        assert!(matches!(store.term(1), Err(LogError::Compacted { .. })));
        assert!(matches!(
            store.write(batch(vec![entry(2, 3)], true)),
            Err(LogError::InvalidBatch { .. })
        ));
        assert!(matches!(
            store.write(batch(vec![entry(9, 3)], true)),
            Err(LogError::InvalidBatch { .. })
        ));
        assert!(matches!(
            store.write(batch(vec![entry(5, 1)], true)),
            Err(LogError::InvalidBatch { .. })
        ));
        store.crash();
        assert_eq!((store.first_index(), store.last_index()), (3, 4));
    }
}
