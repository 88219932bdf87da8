//! An in-process [`Backend`] over `cairn-storage`, for tests (feature `testing`).
//!
//! [`MemoryCluster`] has several node groups, each one [`Store`] evaluated and applied as a
//! leader would (`evaluate` then `apply_write_set`, no replication), and a catalog applying
//! [`CatalogOp`]s directly. Tables are spread over the groups exactly as in a real cluster, so
//! partitioning, fan-out and per-group batching are exercised. It counts the requests each
//! group receives, so tests can check that a key lookup is one `Get` to one group.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use cairn_common::catalog::{Catalog, CatalogOp, CatalogOutcome};
use cairn_common::error::Error;
use cairn_common::ids::NodeGroupId;
use cairn_common::ops::{ReadOp, ReadResult, RowChange, WriteOp, WriteOutcome};
use cairn_storage::{Limits, Pending, Store, evaluate};

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
}

/// A whole cluster in one process: a catalog and one store per node group.
pub struct MemoryCluster {
    catalog: RwLock<Arc<Catalog>>,
    groups: Vec<NodeGroupId>,
    stores: BTreeMap<NodeGroupId, Mutex<Store>>,
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
            stores: groups.iter().map(|&g| (g, Mutex::new(Store::new(g)))).collect(),
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

    fn store(&self, group: NodeGroupId) -> Result<&Mutex<Store>, Error> {
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
        for store in self.stores.values() {
            let mut store = lock(store);
            for id in store.tables() {
                if next.table(id).is_none() {
                    store.apply(&RowChange::DropTable { table: id }, &next)?;
                }
            }
        }
        // Ordered indexes follow the catalog and are built at once here (a data node builds
        // them a slice per round of its loop).
        for store in self.stores.values() {
            let mut store = lock(store);
            store.sync_catalog(&next);
            while store.backfill_indexes(usize::MAX) {}
        }
        *guard = Arc::new(next);
        Ok(outcome)
    }

    async fn read(&self, group: NodeGroupId, op: ReadOp) -> Result<ReadResult, Error> {
        self.count(group, |r| match op {
            ReadOp::Get { .. } => r.gets += 1,
            ReadOp::Scan { .. } => r.scans += 1,
            ReadOp::Count { .. } | ReadOp::IndexStatus { .. } => r.counts += 1,
            ReadOp::IndexScan { .. } => r.index_scans += 1,
            ReadOp::Aggregate { .. } => r.aggregates += 1,
        });
        let catalog = self.catalog();
        let store = lock(self.store(group)?);
        store.read(&op, &catalog)
    }

    async fn write(&self, group: NodeGroupId, ops: Vec<WriteOp>) -> Result<WriteOutcome, Error> {
        self.count(group, |r| {
            r.writes += 1;
            r.write_ops += ops.len() as u64;
        });
        let catalog = self.catalog();
        let mut store = lock(self.store(group)?);
        let (write_set, outcome) = evaluate(&store, &Pending::new(), &catalog, &ops, &self.limits)?;
        store.apply_write_set(&write_set, &catalog)?;
        Ok(outcome)
    }
}
