//! What the SQL engine needs from the cluster, as a trait.
//!
//! The SQL node implements [`Backend`] over TCP (cluster client to data nodes, catalog client
//! to the management node); tests implement it in-process over `cairn-storage`, so the whole
//! SQL engine runs and is tested without sockets.
//!
//! Contract:
//! - [`Backend::catalog`] returns the newest catalog this node has; it changes only by
//!   whole-value replacement (cheap `Arc` clones for readers).
//! - [`Backend::ddl`] returns once the op is committed by the management nodes **and** this
//!   node's catalog includes it, so the next statement on this node sees the change.
//! - [`Backend::read`] and [`Backend::write`] go to the leader of one node group; retries
//!   after a leader change are the backend's business. A `write` batch is atomic within its
//!   node group (one Raft entry). Errors keep their MySQL kinds (1062 for duplicates, 1297
//!   when a node group is unavailable after retries).

use std::future::Future;
use std::sync::Arc;

use cairn_common::catalog::{Catalog, CatalogOp, CatalogOutcome};
use cairn_common::ids::NodeGroupId;
use cairn_common::ops::{LockMode, ReadOp, ReadResult, TxnControl, TxnId, TxnOutcome, TxnStep, WriteOp, WriteOutcome};
use cairn_common::Result;

pub trait Backend: Send + Sync + 'static {
    /// The newest catalog known to this node.
    fn catalog(&self) -> Arc<Catalog>;

    /// The node groups of the cluster, for placing new tables and fanning out scans.
    fn node_groups(&self) -> Vec<NodeGroupId>;

    /// Applies a catalog change cluster-wide.
    fn ddl(&self, op: CatalogOp) -> impl Future<Output = Result<CatalogOutcome>> + Send;

    /// Brings this node's catalog up to every change committed anywhere in the cluster before
    /// the call (a round trip through the management nodes' log). Called before reporting that
    /// a stored routine does not exist; backends whose catalog is always current need nothing.
    fn sync_catalog(&self) -> impl Future<Output = Result<()>> + Send {
        std::future::ready(Ok(()))
    }

    /// A read served by the leader of `group`.
    fn read(&self, group: NodeGroupId, op: ReadOp) -> impl Future<Output = Result<ReadResult>> + Send;

    /// An atomic batch of writes evaluated and replicated by the leader of `group`.
    fn write(&self, group: NodeGroupId, ops: Vec<WriteOp>) -> impl Future<Output = Result<WriteOutcome>> + Send;

    /// A read inside a transaction (its own writes visible; `lock` locks the rows returned).
    fn txn_read(
        &self,
        group: NodeGroupId,
        step: TxnStep,
        lock: Option<LockMode>,
        op: ReadOp,
    ) -> impl Future<Output = Result<ReadResult>> + Send;

    /// One statement's writes inside a transaction: evaluated and locked now, applied at commit.
    fn txn_write(&self, group: NodeGroupId, step: TxnStep, ops: Vec<WriteOp>) -> impl Future<Output = Result<WriteOutcome>> + Send;

    /// Commit, prepare, decide or roll back a transaction at one node group.
    fn txn_control(&self, group: NodeGroupId, txn: TxnId, control: TxnControl) -> impl Future<Output = Result<TxnOutcome>> + Send;

    /// Waits about `millis` milliseconds (the engine owns no clock): between checks of an index
    /// being built, and before a statement planned with a table definition that changed is
    /// planned again. The default does not wait, for backends whose work is done at once.
    fn pause(&self, millis: u64) -> impl Future<Output = ()> + Send {
        let _ = millis;
        std::future::ready(())
    }
}
