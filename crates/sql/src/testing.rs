//! An in-process [`Backend`] over `cairn-storage`, for tests (feature `testing`).
//!
//! [`MemoryCluster`] has several node groups, each one [`Store`] evaluated and applied as a
//! leader would (`evaluate` then `apply_write_set`, no replication), and a catalog applying
//! [`CatalogOp`]s directly. Tables are spread over the groups exactly as in a real cluster, so
//! partitioning, fan-out and per-group batching are exercised. It counts the requests each
//! group receives, so tests can check that a key lookup is one `Get` to one group.
//!
//! Transactions run through the same [`TxnManager`] the data nodes use (row locks, a
//! transaction's own writes, two-phase commit), with every log entry applied at once; a
//! request that waits for a lock polls until TransactionDeadlockDetectionTimeout (1200 ms).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use cairn_common::catalog::{Catalog, CatalogOp, CatalogOutcome};
use cairn_common::error::Error;
use cairn_common::ids::NodeGroupId;
use cairn_common::ops::{
    LockMode, LogEntry, ReadOp, ReadResult, RowChange, TxnControl, TxnId, TxnOutcome, TxnStep, WriteOp, WriteOutcome,
};
use cairn_common::{ErrorKind, Result};
use cairn_storage::txn::ControlAttempt;
use cairn_storage::{Limits, Pending, ReadAttempt, Store, TxnLimits, TxnManager, WriteAttempt};

/// The one leader term of an in-process node group.
const TERM: u64 = 1;
/// TransactionDeadlockDetectionTimeout's default.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(1200);

/// One node group: its store, its transactions, its log position.
struct Group {
    store: Store,
    txns: TxnManager,
    index: u64,
}

impl Group {
    fn apply(&mut self, entry: &LogEntry, catalog: &Catalog) -> Result<Option<TxnOutcome>> {
        self.index += 1;
        let applied = self.txns.apply(entry, self.index, &mut self.store, catalog)?;
        Ok(applied.txn.map(|(_, o)| o))
    }
}

fn lock_wait_timeout() -> Error {
    Error::new(ErrorKind::LockWaitTimeout, "Lock wait timeout exceeded; try restarting transaction")
}

use crate::backend::Backend;

/// Requests one node group received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupRequests {
    pub gets: u64,
    pub scans: u64,
    pub counts: u64,
    /// Ordered-index range scans.
    pub index_scans: u64,
    /// Partial aggregations.
    pub aggregates: u64,
    pub writes: u64,
    /// Write ops across all write batches.
    pub write_ops: u64,
    /// Most keys one `Get`/`GetThrough` asked for, and most items of one IN list in a filter
    /// shipped with a read or a write (the bounds of `exec::keys_per_lookup` and `exec::MAX_PUSHED_IN_ITEMS`).
    pub largest_lookup: u64,
    pub largest_pushed_in_list: u64,
}

impl GroupRequests {
    fn note_read(&mut self, op: &ReadOp) {
        match op {
            ReadOp::Get { keys, .. } => self.gets_of(keys.len()),
            ReadOp::GetThrough { keys, .. } => self.gets_of(keys.len()),
            ReadOp::Scan { .. } => self.scans += 1,
            ReadOp::Count { .. } | ReadOp::IndexStatus { .. } => self.counts += 1,
            ReadOp::IndexScan { .. } => self.index_scans += 1,
            ReadOp::Aggregate { .. } => self.aggregates += 1,
        }
        let filter = match op {
            ReadOp::Scan { filter, .. } | ReadOp::IndexScan { filter, .. } | ReadOp::Aggregate { filter, .. } => filter.as_ref(),
            _ => None,
        };
        if let Some(filter) = filter {
            self.note_filter(filter);
        }
    }

    fn note_writes(&mut self, ops: &[WriteOp]) {
        self.writes += 1;
        self.write_ops += ops.len() as u64;
        for op in ops {
            match op {
                WriteOp::UpdateKey { filter: Some(f), .. }
                | WriteOp::DeleteKey { filter: Some(f), .. }
                | WriteOp::UpdateWhere { filter: Some(f), .. }
                | WriteOp::DeleteWhere { filter: Some(f), .. } => self.note_filter(f),
                _ => {}
            }
        }
    }

    fn note_filter(&mut self, filter: &cairn_common::expr::Expr) {
        filter.walk(&mut |e| {
            if let cairn_common::expr::Expr::InList { list, .. } = e {
                self.largest_pushed_in_list = self.largest_pushed_in_list.max(list.len() as u64);
            }
        });
    }

    fn gets_of(&mut self, keys: usize) {
        self.gets += 1;
        self.largest_lookup = self.largest_lookup.max(keys as u64);
    }
}

/// A whole cluster in one process: a catalog and one store per node group.
pub struct MemoryCluster {
    catalog: RwLock<Arc<Catalog>>,
    groups: Vec<NodeGroupId>,
    stores: BTreeMap<NodeGroupId, Mutex<Group>>,
    requests: Mutex<BTreeMap<NodeGroupId, GroupRequests>>,
    limits: Limits,
}

impl std::fmt::Debug for MemoryCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCluster").field("groups", &self.groups).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryCluster {
    /// A cluster of `node_groups` node groups (numbered from 0) and an empty catalog.
    pub fn new(node_groups: u32) -> Arc<MemoryCluster> {
        let groups: Vec<NodeGroupId> = (0..node_groups.max(1)).map(NodeGroupId).collect();
        Arc::new(MemoryCluster {
            catalog: RwLock::new(Arc::new(Catalog::new())),
            stores: groups
                .iter()
                .map(|&g| {
                    let group = Group { store: Store::new(g), txns: TxnManager::new(TxnLimits::default()), index: 0 };
                    (g, Mutex::new(group))
                })
                .collect(),
            requests: Mutex::new(groups.iter().map(|&g| (g, GroupRequests::default())).collect()),
            groups,
            limits: Limits::default(),
        })
    }

    /// Requests received so far, per node group.
    pub fn requests(&self) -> BTreeMap<NodeGroupId, GroupRequests> {
        lock(&self.requests).clone()
    }

    pub fn reset_requests(&self) {
        for r in lock(&self.requests).values_mut() {
            *r = GroupRequests::default();
        }
    }

    fn store(&self, group: NodeGroupId) -> Result<&Mutex<Group>, Error> {
        self.stores.get(&group).ok_or_else(|| Error::temporary(format!("no node group {group}")))
    }

    fn count(&self, group: NodeGroupId, f: impl FnOnce(&mut GroupRequests)) {
        if let Some(r) = lock(&self.requests).get_mut(&group) {
            f(r);
        }
    }
}

impl Backend for MemoryCluster {
    fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn node_groups(&self) -> Vec<NodeGroupId> {
        self.groups.clone()
    }

    async fn ddl(&self, op: CatalogOp) -> Result<CatalogOutcome, Error> {
        let mut guard = self.catalog.write().unwrap_or_else(|e| e.into_inner());
        let mut next = (**guard).clone();
        let outcome = next.apply(op, &self.groups)?;
        // Rows of tables the catalog no longer has (dropped tables, the hidden tables of
        // dropped unique indexes) are freed, as data nodes free them through their logs.
        for group in self.stores.values() {
            let mut group = lock(group);
            for id in group.store.tables() {
                if next.table(id).is_none() {
                    group.store.apply(&RowChange::DropTable { table: id }, &next)?;
                }
            }
        }
        // Ordered indexes follow the catalog and are built at once here (a data node builds
        // them a slice per round of its loop).
        for group in self.stores.values() {
            let mut group = lock(group);
            group.store.sync_catalog(&next);
            while group.store.backfill_indexes(usize::MAX) {}
        }
        *guard = Arc::new(next);
        Ok(outcome)
    }

    async fn read(&self, group: NodeGroupId, op: ReadOp) -> Result<ReadResult, Error> {
        self.count(group, |r| r.note_read(&op));
        let catalog = self.catalog();
        let group = lock(self.store(group)?);
        group.store.read(&op, &catalog)
    }

    async fn write(&self, group: NodeGroupId, ops: Vec<WriteOp>) -> Result<WriteOutcome, Error> {
        self.count(group, |r| r.note_writes(&ops));
        let catalog = self.catalog();
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            {
                let mut g = lock(self.store(group)?);
                let Group { store, txns, .. } = &mut *g;
                match txns.write(None, TERM, store, &Pending::new(), &catalog, &ops, &self.limits)? {
                    WriteAttempt::Propose(write_set, outcome) => {
                        g.apply(&LogEntry::Write { txn: None, write_set }, &catalog)?;
                        return Ok(outcome);
                    }
                    WriteAttempt::Done(outcome) => return Ok(outcome),
                    WriteAttempt::Wait { .. } => {}
                }
            }
            if std::time::Instant::now() > deadline {
                return Err(lock_wait_timeout());
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    async fn txn_read(&self, group: NodeGroupId, step: TxnStep, lock_mode: Option<LockMode>, op: ReadOp) -> Result<ReadResult> {
        self.count(group, |r| r.note_read(&op));
        let catalog = self.catalog();
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            {
                let mut g = lock(self.store(group)?);
                let Group { store, txns, .. } = &mut *g;
                match txns.read(Some(step), TERM, lock_mode, &op, store, &catalog)? {
                    ReadAttempt::Done(result) => return Ok(result),
                    ReadAttempt::Wait { .. } => {}
                }
            }
            if std::time::Instant::now() > deadline {
                lock(self.store(group)?).txns.rollback(step.txn);
                return Err(lock_wait_timeout());
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    async fn txn_write(&self, group: NodeGroupId, step: TxnStep, ops: Vec<WriteOp>) -> Result<WriteOutcome> {
        self.count(group, |r| r.note_writes(&ops));
        let catalog = self.catalog();
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            {
                let mut g = lock(self.store(group)?);
                let Group { store, txns, .. } = &mut *g;
                match txns.write(Some(step), TERM, store, &Pending::new(), &catalog, &ops, &self.limits)? {
                    WriteAttempt::Done(outcome) => return Ok(outcome),
                    WriteAttempt::Propose(..) => return Err(Error::internal("a transactional write asked to be proposed")),
                    WriteAttempt::Wait { .. } => {}
                }
            }
            if std::time::Instant::now() > deadline {
                lock(self.store(group)?).txns.rollback(step.txn);
                return Err(lock_wait_timeout());
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    async fn txn_control(&self, group: NodeGroupId, txn: TxnId, control: TxnControl) -> Result<TxnOutcome> {
        let catalog = self.catalog();
        let mut g = lock(self.store(group)?);
        let entry = match control {
            TxnControl::CommitOnePhase => match g.txns.commit_one_phase(txn, TERM)? {
                Some(entry) => entry,
                None => return Ok(TxnOutcome::Committed),
            },
            TxnControl::Prepare { participants, decision_group } => g.txns.prepare(txn, TERM, participants, decision_group)?,
            TxnControl::Decide { commit } => match g.txns.decide(txn, Some(commit)) {
                ControlAttempt::Answer(outcome) => return Ok(outcome),
                ControlAttempt::Propose(entry, _) => entry,
            },
            TxnControl::Resolve => match g.txns.decide(txn, None) {
                ControlAttempt::Answer(outcome) => return Ok(outcome),
                ControlAttempt::Propose(entry, _) => entry,
            },
            TxnControl::Rollback => {
                g.txns.rollback(txn);
                return Ok(TxnOutcome::Aborted);
            }
            TxnControl::RollbackTo { seq } => {
                g.txns.rollback_to(txn, seq, &catalog)?;
                return Ok(TxnOutcome::Done);
            }
        };
        Ok(g.apply(&entry, &catalog)?.unwrap_or(TxnOutcome::Done))
    }
}
