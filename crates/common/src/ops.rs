//! The operations an SQL node sends to a node group, and the write sets that enter its Raft log.
//!
//! Two languages, deliberately different:
//!
//! - **Requests** ([`ReadOp`], [`WriteOp`]) say what the SQL node wants: "insert this row unless
//!   the key exists", "add 1 to n in the row with this key". The leader of the node group
//!   evaluates a write against its current state (including writes it has proposed but not yet
//!   applied), under its single-threaded event loop, so no concurrent write to the same row can
//!   interleave: that is the row lock.
//! - **Write sets** ([`WriteSet`]) are what the leader computed: full row images to put and keys
//!   to delete. Only write sets enter the Raft log, so applying a log entry is deterministic and
//!   idempotent (applying it twice leaves the same state), which fuzzy checkpoints plus log
//!   replay rely on.

use serde::{Deserialize, Serialize};

use crate::collation::Collation;
use crate::expr::Expr;
use crate::ids::{PartitionId, TableId};
use crate::value::Value;

/// A transaction, unique across the cluster: the SQL node that coordinates it in the top 8
/// bits, then a counter that SQL node starts from its start time in milliseconds (so ids are
/// not reused across its restarts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TxnId(pub u64);

impl TxnId {
    pub fn new(sql_node: u32, counter: u64) -> TxnId {
        TxnId(((sql_node as u64 & 0xff) << 56) | (counter & ((1 << 56) - 1)))
    }

    /// The SQL node that coordinates the transaction.
    pub fn coordinator(self) -> u32 {
        (self.0 >> 56) as u32
    }
}

impl std::fmt::Display for TxnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.coordinator(), self.0 & ((1 << 56) - 1))
    }
}

/// One request of a transaction at one node group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnStep {
    pub txn: TxnId,
    /// The statement's sequence number in its transaction (for ROLLBACK TO SAVEPOINT).
    pub seq: u64,
    /// The coordinator already wrote or locked here in this transaction: the leader must have
    /// its state, and if it has none, the transaction lost it with a previous leader.
    pub known_here: bool,
}

/// Row locks a read takes: none (READ COMMITTED), shared (LOCK IN SHARE MODE), exclusive
/// (FOR UPDATE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockMode {
    Shared,
    Exclusive,
}

/// What the coordinator of a transaction asks one participant node group to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TxnControl {
    /// The transaction touched only this node group: make its writes durable and visible in one
    /// Raft entry, then release its locks.
    CommitOnePhase,
    /// First phase of two-phase commit: make the transaction's writes durable in this group's
    /// log without applying them, keep its locks. `decision_group` is the participant whose log
    /// records the outcome; every participant asks it if the coordinator goes silent.
    Prepare { participants: Vec<crate::ids::NodeGroupId>, decision_group: crate::ids::NodeGroupId },
    /// Second phase: apply (true) or discard (false) a prepared transaction. Sent to the decision
    /// group first: its answer is the outcome.
    Decide { commit: bool },
    /// Discard the transaction's writes and locks (not prepared yet).
    Rollback,
    /// Discard the writes of statements after `seq` (ROLLBACK TO SAVEPOINT, a failed statement).
    RollbackTo { seq: u64 },
    /// A participant asks the decision group how a transaction ended; the decision group decides
    /// abort if it has no decision yet (presumed abort).
    Resolve,
}

/// A participant's answer to [`TxnControl`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOutcome {
    Done,
    Prepared,
    Committed,
    Aborted,
}

/// An entry of a node group's Raft log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LogEntry {
    /// Apply these changes now: an autocommit statement, or a transaction committed in one
    /// phase (its locks are released when this applies).
    Write { txn: Option<TxnId>, write_set: WriteSet },
    /// Phase one of two-phase commit: the transaction's changes, durable but not applied.
    Prepare {
        txn: TxnId,
        write_set: WriteSet,
        participants: Vec<crate::ids::NodeGroupId>,
        decision_group: crate::ids::NodeGroupId,
    },
    /// The outcome of a prepared (or, for an abort, possibly unknown) transaction.
    Decide { txn: TxnId, commit: bool },
}

impl LogEntry {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a log entry always serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<LogEntry, crate::error::Error> {
        postcard::from_bytes(bytes).map_err(|e| crate::error::Error::internal(format!("undecodable log entry: {e}")))
    }
}

/// A table as a request names it: id plus the definition version the SQL node planned with.
/// A data node holding another version answers `SchemaMismatch` and the SQL node replans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRef {
    pub id: TableId,
    pub version: u64,
}

/// Where a scan resumes: a partition and a position inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanPosition {
    pub partition: PartitionId,
    pub slot: u64,
}

/// One end of an index range: the key encoding ([`crate::key`]) of the first n index columns,
/// and whether entries whose first n columns equal it are inside the range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyBound {
    pub key: Vec<u8>,
    pub inclusive: bool,
}

/// Entries of an ordered index between two bounds (None: unbounded on that side).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRange {
    pub low: Option<KeyBound>,
    pub high: Option<KeyBound>,
}

impl KeyRange {
    /// Entries whose first columns encode exactly `prefix`.
    pub fn prefix(prefix: Vec<u8>) -> KeyRange {
        KeyRange { low: Some(KeyBound { key: prefix.clone(), inclusive: true }), high: Some(KeyBound { key: prefix, inclusive: true }) }
    }
}

/// Where an index scan resumes: after this entry (index key and slot) of this partition, in
/// range `range` of the request; an empty entry means from the start of that range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPosition {
    pub range: u32,
    pub entry: Vec<u8>,
    pub partition: PartitionId,
}

/// What a data node computes per group of an aggregating scan ([`ReadOp::Aggregate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartialAggregate {
    /// COUNT(*): rows.
    CountRows,
    /// COUNT(expr): rows where expr is not NULL.
    Count,
    /// SUM(expr) of exact values (integers, decimals): a DECIMAL, NULL if no value.
    SumExact,
    /// SUM(expr) as a DOUBLE (floating-point and string arguments), NULL if no value.
    SumDouble,
    /// MIN/MAX(expr) under a collation; NULL if no value.
    Min,
    Max,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ReadOp {
    /// Rows by primary key (values in primary-key order, already coerced to the column types).
    /// The answer holds full rows in table layout, one per key, None where absent.
    Get { table: TableRef, keys: Vec<Vec<Value>> },
    /// Rows of the listed partitions (all partitions of this node group if empty) that pass
    /// `filter`, with only the `projection` columns (all if None), in projected layout.
    Scan {
        table: TableRef,
        partitions: Vec<PartitionId>,
        filter: Option<Expr>,
        projection: Option<Vec<u32>>,
        /// Stop after this many matching rows in total.
        limit: Option<u64>,
        resume: Option<ScanPosition>,
        /// Bounds on one answer; the SQL node asks again from `resume` for more.
        max_rows: u32,
        max_bytes: u32,
    },
    /// Row counts per partition of a table, for admin output and planning.
    Count { table: TableRef },
    /// Rows of the listed partitions (all of this node group's if empty) whose entries in
    /// ordered index `index` fall in `ranges` (the whole index if empty), in index order:
    /// ascending (or descending) by the index key, then slot, then partition, the ranges taken
    /// in the order given (reversed when descending). Then as [`ReadOp::Scan`]: `filter`,
    /// `projection`, `limit`, bounded answers resumed from `resume`.
    IndexScan {
        table: TableRef,
        index: u32,
        partitions: Vec<PartitionId>,
        ranges: Vec<KeyRange>,
        descending: bool,
        filter: Option<Expr>,
        projection: Option<Vec<u32>>,
        limit: Option<u64>,
        resume: Option<IndexPosition>,
        max_rows: u32,
        max_bytes: u32,
    },
    /// Whether ordered index `index` is complete (backfilled) on this replica.
    IndexStatus { table: TableRef, index: u32 },
    /// Partial aggregation: the rows of this node group's partitions that pass `filter`,
    /// grouped by the values of `group_by`, with `aggregates` computed per group. Answered in
    /// slices (resumed like a scan); every slice holds partial results that the SQL node merges.
    Aggregate {
        table: TableRef,
        filter: Option<Expr>,
        group_by: Vec<(Expr, Collation)>,
        /// What to compute, over which expression (ignored for CountRows), compared under
        /// which collation (MIN/MAX).
        aggregates: Vec<(PartialAggregate, Expr, Collation)>,
        resume: Option<ScanPosition>,
    },
    /// Rows of `base` through its unique index whose hidden table is `index`, in one round
    /// trip: for each key (values of the index columns, coerced to their types), the index
    /// entry, then the base row it points at when that row's partition is in this node group
    /// (the answer is [`Through::Entry`] when it is elsewhere, for the SQL node to fetch). The
    /// caller checks the row's key again, as for any lookup through an index.
    GetThrough { index: TableRef, base: TableRef, keys: Vec<Vec<Value>> },
}

impl ReadOp {
    /// The table a read is addressed to (the hidden index table for [`ReadOp::GetThrough`]).
    pub fn table(&self) -> TableRef {
        match self {
            ReadOp::Get { table, .. }
            | ReadOp::Scan { table, .. }
            | ReadOp::Count { table }
            | ReadOp::IndexScan { table, .. }
            | ReadOp::IndexStatus { table, .. }
            | ReadOp::Aggregate { table, .. }
            | ReadOp::GetThrough { index: table, .. } => *table,
        }
    }

    /// A second table the read also reads, if any.
    pub fn second_table(&self) -> Option<TableRef> {
        match self {
            ReadOp::GetThrough { base, .. } => Some(*base),
            _ => None,
        }
    }
}

/// One key's answer to [`ReadOp::GetThrough`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Through {
    /// No entry, or an entry whose row is gone.
    Absent,
    /// The base row, in table layout.
    Row(Vec<u8>),
    /// The entry (hidden-table layout): its base row lives in another node group.
    Entry(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ReadResult {
    Rows(Vec<Option<Vec<u8>>>),
    ScanBatch { rows: Vec<Vec<u8>>, resume: Option<ScanPosition> },
    Counts(Vec<(PartitionId, u64)>),
    IndexBatch { rows: Vec<Vec<u8>>, resume: Option<IndexPosition> },
    IndexBuilt(bool),
    /// Partial groups: the group-by values then one value per aggregate (COUNTs as BIGINT,
    /// SUM as DECIMAL or DOUBLE, MIN/MAX as the value), and where to resume.
    Groups { groups: Vec<Vec<Value>>, resume: Option<ScanPosition> },
    /// The answer to [`ReadOp::GetThrough`], one per key in order.
    Through(Vec<Through>),
}

/// What an INSERT does when the key already exists.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OnDuplicate {
    /// Fail with 1062 (plain INSERT).
    Error,
    /// Keep the existing row (INSERT IGNORE).
    Ignore,
    /// Delete the existing row and insert the new one (REPLACE).
    Replace,
    /// `ON DUPLICATE KEY UPDATE`: assignments evaluated over the existing row (columns
    /// 0..n) followed by the proposed row (columns n..2n, for `VALUES(col)`).
    Update(Vec<(u32, Expr)>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WriteOp {
    /// Insert a full row (table layout).
    Insert { table: TableRef, row: Vec<u8>, on_duplicate: OnDuplicate },
    /// Update the row with this primary key if it passes `filter`: each `(column, expr)`
    /// assigns `expr` evaluated over the current row.
    UpdateKey { table: TableRef, key: Vec<Value>, filter: Option<Expr>, assignments: Vec<(u32, Expr)> },
    /// Delete the row with this primary key if it passes `filter`.
    DeleteKey { table: TableRef, key: Vec<Value>, filter: Option<Expr> },
    /// Update every row of this node group's partitions of the table that passes `filter`.
    UpdateWhere { table: TableRef, filter: Option<Expr>, assignments: Vec<(u32, Expr)>, limit: Option<u64> },
    /// Delete every row of this node group's partitions of the table that passes `filter`.
    DeleteWhere { table: TableRef, filter: Option<Expr>, limit: Option<u64> },
    /// Remove every row of the table held by this node group.
    Truncate { table: TableRef },
    /// Reserve `count` AUTO_INCREMENT values of a table, starting no lower than `at_least`.
    /// The answer's `auto_increment` is the first reserved value.
    ReserveAutoIncrement { table: TableRef, count: u64, at_least: u64 },
}

/// What a batch of write ops did, summed; the SQL node turns it into MySQL's affected rows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteOutcome {
    /// Rows inserted (new keys).
    pub inserted: u64,
    /// Rows that matched an UPDATE/ON DUPLICATE KEY UPDATE condition.
    pub matched: u64,
    /// Matched rows whose value actually changed.
    pub changed: u64,
    /// Rows deleted, including those REPLACE removed.
    pub deleted: u64,
    /// Rows an INSERT IGNORE skipped.
    pub ignored: u64,
    /// Rows ON DUPLICATE KEY UPDATE updated (counted twice in MySQL's affected rows).
    pub upserted: u64,
    /// The first value of a ReserveAutoIncrement.
    pub auto_increment: Option<u64>,
    /// Changes in the write set the ops produced (0: the ops changed nothing, and a
    /// transaction holds no state for them at that node group).
    pub changes: u64,
}

impl WriteOutcome {
    pub fn merge(&mut self, other: &WriteOutcome) {
        self.inserted += other.inserted;
        self.matched += other.matched;
        self.changed += other.changed;
        self.deleted += other.deleted;
        self.ignored += other.ignored;
        self.upserted += other.upserted;
        self.changes += other.changes;
        if self.auto_increment.is_none() {
            self.auto_increment = other.auto_increment;
        }
    }
}

/// One change in a write set: what the Raft log carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RowChange {
    /// Insert or overwrite the row whose primary key the row's key columns give.
    Put { table: TableId, partition: PartitionId, row: Vec<u8> },
    /// Remove the row with this encoded primary key.
    Delete { table: TableId, partition: PartitionId, key: Vec<u8> },
    /// Remove every row of the table held by this node group.
    Truncate { table: TableId },
    /// Forget the table (after DROP TABLE).
    DropTable { table: TableId },
    /// The next AUTO_INCREMENT value of a table is at least this.
    AutoIncrement { table: TableId, next: u64 },
}

/// A node group's unit of replication: applied all together or not at all.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WriteSet {
    pub changes: Vec<RowChange>,
}

impl WriteSet {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a write set always serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<WriteSet, crate::error::Error> {
        postcard::from_bytes(bytes).map_err(|e| crate::error::Error::internal(format!("undecodable write set: {e}")))
    }
}
