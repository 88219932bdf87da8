//! Transactions at a node group: row locks, each transaction's uncommitted writes, and the
//! replicated state of two-phase commit.
//!
//! Cairn runs transactions the way NDB does: a transaction's statements are evaluated at the
//! leader (primary replica) of each node group they touch, *when they run*, so errors such as a
//! duplicate key come back at statement time. The leader keeps
//!
//! - **row locks** ([`LockTable`]): a write locks every row it changes (exclusive), a locking
//!   read every row it returns (`FOR UPDATE` exclusive, `LOCK IN SHARE MODE` shared). Locks are
//!   held until the transaction ends. A conflicting request waits (the caller parks it and
//!   retries when locks are released) until `TransactionDeadlockDetectionTimeout`, then fails
//!   with 1205 and aborts its transaction, as NDB does (deadlocks end the same way);
//! - **the transaction's own writes** (a [`Pending`] overlay, one token per statement): later
//!   statements of the transaction evaluate against them and its reads see them; nobody else
//!   does (READ COMMITTED).
//!
//! Leader-only state is lost when leadership moves: a transaction that had not prepared is then
//! aborted (its next request gets a "node failure" error, NDB's 4010 in spirit, MySQL 1297).
//!
//! Commit:
//! - one node group: one Raft entry, [`LogEntry::Write`] with the transaction's changes; they
//!   apply on every replica and the locks go when it applies.
//! - several node groups: two-phase commit. Each participant logs [`LogEntry::Prepare`] (the
//!   changes, durable, not applied; locks kept), then the coordinator asks the *decision group*
//!   (one of the participants) to log [`LogEntry::Decide`]: that entry is the commit point.
//!   Then every other participant logs its own Decide. A participant whose prepared
//!   transaction hears nothing asks the decision group ([`TxnControl::Resolve`]); a decision
//!   group without a decision logs an abort first (presumed abort), so whichever of the
//!   coordinator's commit and a participant's question reaches its log first wins, on every
//!   replica alike.
//!
//! The replicated part (prepared transactions and recent decisions) changes only by applying
//! log entries ([`TxnManager::apply`]), so every replica holds the same, and a new leader
//! re-locks the rows of every prepared transaction before it serves.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use cairn_common::catalog::Catalog;
use cairn_common::expr::EvalContext;
use cairn_common::ids::{NodeGroupId, PartitionId, TableId};
use cairn_common::ops::{LockMode, LogEntry, ReadOp, ReadResult, RowChange, TxnId, TxnStep, WriteOp, WriteOutcome, WriteSet};
use cairn_common::{Error, ErrorKind, Result};

use crate::evaluate::{Limits, evaluate_in};
use crate::pending::{Lookup, Pending};
use crate::schema::TableSchema;
use crate::store::{ScanRequest, Store, resolve_table};

/// A row, as locks name it.
pub type RowKey = (TableId, PartitionId, Box<[u8]>);

/// How many decided transactions every replica remembers, for late or repeated questions.
pub const DECISIONS_KEPT: usize = 65_536;

/// Bounds on one transaction at one node group.
#[derive(Clone, Copy, Debug)]
pub struct TxnLimits {
    /// Row locks (NDB: MaxNoOfConcurrentOperations); past it, 1206.
    pub max_locks: usize,
    /// Bytes of changes; past it, 1197.
    pub max_bytes: u64,
}

impl Default for TxnLimits {
    fn default() -> TxnLimits {
        TxnLimits { max_locks: 100_000, max_bytes: 64 << 20 }
    }
}

#[derive(Clone, Debug, Default)]
struct LockState {
    exclusive: Option<TxnId>,
    shared: Vec<TxnId>,
}

/// Row locks of the transactions running at this leader.
#[derive(Debug, Default)]
pub struct LockTable {
    locks: HashMap<RowKey, LockState>,
    held: HashMap<TxnId, Vec<RowKey>>,
}

impl LockTable {
    /// The transaction that stops `txn` (None: an autocommit write) from taking `mode` on `key`.
    pub fn conflict(&self, txn: Option<TxnId>, key: &RowKey, mode: LockMode) -> Option<TxnId> {
        let state = self.locks.get(key)?;
        if let Some(holder) = state.exclusive {
            if Some(holder) != txn {
                return Some(holder);
            }
        }
        if mode == LockMode::Exclusive {
            return state.shared.iter().copied().find(|holder| Some(*holder) != txn);
        }
        None
    }

    /// Takes the lock (the caller checked [`LockTable::conflict`]). Re-entrant; a shared lock
    /// becomes exclusive when its only holder asks.
    fn acquire(&mut self, txn: TxnId, key: RowKey, mode: LockMode) {
        let state = self.locks.entry(key.clone()).or_default();
        let new = match mode {
            LockMode::Exclusive => {
                let had = state.exclusive == Some(txn) || state.shared.contains(&txn);
                state.exclusive = Some(txn);
                state.shared.retain(|t| *t != txn);
                !had
            }
            LockMode::Shared => {
                if state.exclusive == Some(txn) || state.shared.contains(&txn) {
                    false
                } else {
                    state.shared.push(txn);
                    true
                }
            }
        };
        if new {
            self.held.entry(txn).or_default().push(key);
        }
    }

    /// Releases every lock of `txn`; true if it held any.
    fn release(&mut self, txn: TxnId) -> bool {
        let Some(keys) = self.held.remove(&txn) else { return false };
        for key in keys {
            if let Some(state) = self.locks.get_mut(&key) {
                if state.exclusive == Some(txn) {
                    state.exclusive = None;
                }
                state.shared.retain(|t| *t != txn);
                if state.exclusive.is_none() && state.shared.is_empty() {
                    self.locks.remove(&key);
                }
            }
        }
        true
    }

    pub fn held_by(&self, txn: TxnId) -> usize {
        self.held.get(&txn).map_or(0, Vec::len)
    }

    pub fn len(&self) -> usize {
        self.locks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.locks.is_empty()
    }

    fn clear(&mut self) {
        self.locks.clear();
        self.held.clear();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Running statements.
    Active,
    /// Its one-phase commit or prepare entry is proposed; no more statements.
    Ending,
}

/// A transaction running at this leader.
#[derive(Debug)]
struct ActiveTxn {
    /// The leader term it started in: a transaction never outlives its leader.
    term: u64,
    phase: Phase,
    /// Its uncommitted writes, one token per statement sequence number.
    writes: Pending,
    statements: Vec<(u64, WriteSet)>,
    bytes: u64,
}

/// A prepared transaction: replicated, waiting for its decision.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedTxn {
    pub write_set: WriteSet,
    pub participants: Vec<NodeGroupId>,
    pub decision_group: NodeGroupId,
    /// The log index of its Prepare entry (how long it has waited, in log terms).
    pub prepared_at: u64,
}

/// What a write request leads to.
#[derive(Debug)]
pub enum WriteAttempt {
    /// Done: a transaction's statement, recorded in its private writes.
    Done(WriteOutcome),
    /// An autocommit write: propose this write set and answer with the outcome once it applies.
    Propose(WriteSet, WriteOutcome),
    /// A row it needs is locked by another transaction; try again when locks are released.
    Wait { holder: TxnId },
}

/// What a read request leads to.
#[derive(Debug)]
pub enum ReadAttempt {
    Done(ReadResult),
    Wait { holder: TxnId },
}

/// What a transaction-control request leads to.
#[derive(Debug)]
pub enum ControlAttempt {
    /// Answer now.
    Answer(cairn_common::ops::TxnOutcome),
    /// Propose this entry; answer with the given outcome once it applies.
    Propose(LogEntry, cairn_common::ops::TxnOutcome),
}

/// What applying a log entry did to transactions.
#[derive(Debug, Default)]
pub struct Applied {
    /// Locks were released: parked requests may proceed now.
    pub released: bool,
    /// The transaction an entry ended or prepared, with how.
    pub txn: Option<(TxnId, cairn_common::ops::TxnOutcome)>,
}

#[derive(Debug, Default)]
pub struct TxnManager {
    locks: LockTable,
    active: HashMap<TxnId, ActiveTxn>,
    prepared: BTreeMap<TxnId, PreparedTxn>,
    decided: HashMap<TxnId, bool>,
    decided_order: VecDeque<TxnId>,
    limits: TxnLimits,
    schemas: HashMap<TableId, TableSchema>,
}

fn node_failure(txn: TxnId) -> Error {
    Error::temporary(format!(
        "transaction {txn} was aborted: the node group's primary replica changed while it ran (node failure); retry it"
    ))
}

fn unknown(txn: TxnId) -> Error {
    Error::temporary(format!("transaction {txn} is unknown to this node group's primary (aborted by a failure?); retry it"))
}

impl TxnManager {
    pub fn new(limits: TxnLimits) -> TxnManager {
        TxnManager { limits, ..Default::default() }
    }

    pub fn locks(&self) -> &LockTable {
        &self.locks
    }

    pub fn prepared(&self) -> &BTreeMap<TxnId, PreparedTxn> {
        &self.prepared
    }

    /// The outcome of a decided transaction, if still remembered.
    pub fn decision(&self, txn: TxnId) -> Option<bool> {
        self.decided.get(&txn).copied()
    }

    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    fn schema(&mut self, catalog: &Catalog, table: TableId) -> Result<&TableSchema> {
        let def = catalog
            .table(table)
            .ok_or_else(|| Error::internal(format!("a write set names table {table}, unknown to the catalog")))?;
        if self.schemas.get(&table).is_none_or(|s| s.def.version != def.version) {
            self.schemas.insert(table, TableSchema::new(def)?);
        }
        Ok(&self.schemas[&table])
    }

    /// The rows a write set changes.
    fn touched(&mut self, write_set: &WriteSet, catalog: &Catalog) -> Result<Vec<RowKey>> {
        let mut keys = Vec::with_capacity(write_set.changes.len());
        for change in &write_set.changes {
            match change {
                RowChange::Put { table, partition, row } => {
                    let key = self.schema(catalog, *table)?.primary_key_vec(row)?;
                    keys.push((*table, *partition, key.into()));
                }
                RowChange::Delete { table, partition, key } => keys.push((*table, *partition, key.as_slice().into())),
                // Whole-table changes and counters take no row locks.
                RowChange::Truncate { .. } | RowChange::DropTable { .. } | RowChange::AutoIncrement { .. } => {}
            }
        }
        Ok(keys)
    }

    fn first_conflict(&self, txn: Option<TxnId>, keys: &[RowKey], mode: LockMode) -> Option<TxnId> {
        keys.iter().find_map(|k| self.locks.conflict(txn, k, mode))
    }

    /// Evaluates a write: an autocommit batch (`txn` None) or one statement `seq` of a
    /// transaction. `term` is the leader's current term.
    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &mut self,
        txn: Option<TxnStep>,
        term: u64,
        store: &Store,
        pending: &Pending,
        catalog: &Catalog,
        ops: &[WriteOp],
        limits: &Limits,
    ) -> Result<WriteAttempt> {
        let Some(TxnStep { txn: id, seq, known_here }) = txn else {
            let (write_set, outcome) = evaluate_in(store, &[pending], catalog, ops, limits)?;
            let keys = self.touched(&write_set, catalog)?;
            if let Some(holder) = self.first_conflict(None, &keys, LockMode::Exclusive) {
                return Ok(WriteAttempt::Wait { holder });
            }
            return Ok(WriteAttempt::Propose(write_set, outcome));
        };
        if known_here && !self.active.contains_key(&id) {
            return Err(node_failure(id));
        }
        if let Some(active) = self.active.get(&id) {
            if active.term != term {
                return Err(node_failure(id));
            }
            if active.phase != Phase::Active {
                return Err(Error::internal(format!("transaction {id} is committing; no more statements")));
            }
        }
        let empty = Pending::new();
        let own = self.active.get(&id).map_or(&empty, |a| &a.writes);
        let (write_set, outcome) = evaluate_in(store, &[own, pending], catalog, ops, limits)?;
        if write_set.is_empty() {
            // Nothing changed: no locks, and no state here for a transaction that had none.
            return Ok(WriteAttempt::Done(outcome));
        }
        let keys = self.touched(&write_set, catalog)?;
        if let Some(holder) = self.first_conflict(Some(id), &keys, LockMode::Exclusive) {
            return Ok(WriteAttempt::Wait { holder });
        }
        let new_locks = keys.iter().filter(|k| self.locks.conflict(None, k, LockMode::Exclusive).is_none()).count();
        if self.locks.held_by(id) + new_locks > self.limits.max_locks {
            return Err(Error::new(
                ErrorKind::LockTableFull,
                format!("The total number of locks exceeds the lock table size ({} rows per transaction per node group)", self.limits.max_locks),
            ));
        }
        let bytes: u64 = write_set_bytes(&write_set);
        let active = self.active.entry(id).or_insert_with(|| ActiveTxn {
            term,
            phase: Phase::Active,
            writes: Pending::new(),
            statements: Vec::new(),
            bytes: 0,
        });
        if active.bytes + bytes > self.limits.max_bytes {
            return Err(Error::new(
                ErrorKind::TransactionTooLarge,
                format!(
                    "Multi-statement transaction required more than {} bytes of changes in one node group; commit in smaller transactions",
                    self.limits.max_bytes
                ),
            ));
        }
        active.writes.add(seq, &write_set, catalog)?;
        active.bytes += bytes;
        active.statements.push((seq, write_set));
        for key in keys {
            self.locks.acquire(id, key, LockMode::Exclusive);
        }
        Ok(WriteAttempt::Done(outcome))
    }

    /// A read: committed rows (READ COMMITTED), plus the transaction's own writes if it has
    /// any here; `lock` locks the rows returned.
    pub fn read(
        &mut self,
        step: Option<TxnStep>,
        term: u64,
        lock: Option<LockMode>,
        op: &ReadOp,
        store: &Store,
        catalog: &Catalog,
    ) -> Result<ReadAttempt> {
        let txn = step.map(|s| s.txn);
        if let Some(step) = step {
            match self.active.get(&step.txn) {
                Some(active) if active.term != term => return Err(node_failure(step.txn)),
                None if step.known_here => return Err(node_failure(step.txn)),
                _ => {}
            }
        }
        let own = txn.and_then(|id| self.active.get(&id)).map(|a| &a.writes).filter(|w| !w.is_empty());
        let (result, rows) = match (own, lock) {
            (Some(writes), _) => read_through(writes, op, store, catalog, lock.is_some())?,
            // A locking read needs the keys of what it returns: same path, nothing to overlay.
            (None, Some(_)) => read_through(&Pending::new(), op, store, catalog, true)?,
            (None, None) => (store.read(op, catalog)?, Vec::new()),
        };
        if let (Some(mode), Some(id)) = (lock, txn) {
            if rows.is_empty() {
                return Ok(ReadAttempt::Done(result));
            }
            if let Some(holder) = self.first_conflict(Some(id), &rows, mode) {
                return Ok(ReadAttempt::Wait { holder });
            }
            if self.locks.held_by(id) + rows.len() > self.limits.max_locks {
                return Err(Error::new(ErrorKind::LockTableFull, "The total number of locks exceeds the lock table size"));
            }
            self.active.entry(id).or_insert_with(|| ActiveTxn {
                term,
                phase: Phase::Active,
                writes: Pending::new(),
                statements: Vec::new(),
                bytes: 0,
            });
            for key in rows {
                self.locks.acquire(id, key, mode);
            }
        }
        Ok(ReadAttempt::Done(result))
    }

    /// Ends a transaction that touched only this node group: the entry to propose (its changes
    /// in one Raft entry), or nothing to do if it wrote nothing here (its locks are released).
    pub fn commit_one_phase(&mut self, txn: TxnId, term: u64) -> Result<Option<LogEntry>> {
        let Some(active) = self.active.get_mut(&txn) else { return Err(unknown(txn)) };
        if active.term != term {
            return Err(node_failure(txn));
        }
        if active.statements.is_empty() {
            self.active.remove(&txn);
            self.locks.release(txn);
            return Ok(None);
        }
        active.phase = Phase::Ending;
        let write_set = merged(&active.statements);
        Ok(Some(LogEntry::Write { txn: Some(txn), write_set }))
    }

    /// Phase one: the Prepare entry to propose.
    pub fn prepare(&mut self, txn: TxnId, term: u64, participants: Vec<NodeGroupId>, decision_group: NodeGroupId) -> Result<LogEntry> {
        if self.decided.get(&txn) == Some(&false) {
            return Err(Error::new(ErrorKind::ErrorDuringCommit, format!("transaction {txn} was already aborted")));
        }
        let Some(active) = self.active.get_mut(&txn) else { return Err(unknown(txn)) };
        if active.term != term {
            return Err(node_failure(txn));
        }
        active.phase = Phase::Ending;
        Ok(LogEntry::Prepare { txn, write_set: merged(&active.statements), participants, decision_group })
    }

    /// Phase two, or a participant's question to the decision group (`commit` None: decide
    /// abort unless decided).
    pub fn decide(&self, txn: TxnId, commit: Option<bool>) -> ControlAttempt {
        use cairn_common::ops::TxnOutcome;
        if let Some(committed) = self.decided.get(&txn) {
            return ControlAttempt::Answer(if *committed { TxnOutcome::Committed } else { TxnOutcome::Aborted });
        }
        let commit = commit.unwrap_or(false) && self.prepared.contains_key(&txn);
        let outcome = if commit { TxnOutcome::Committed } else { TxnOutcome::Aborted };
        ControlAttempt::Propose(LogEntry::Decide { txn, commit }, outcome)
    }

    /// Drops a transaction that has not prepared: its writes and locks. True if locks went.
    pub fn rollback(&mut self, txn: TxnId) -> bool {
        match self.active.get(&txn) {
            Some(a) if a.phase == Phase::Active => {
                self.active.remove(&txn);
                self.locks.release(txn)
            }
            Some(_) => false,
            None => self.locks.release(txn),
        }
    }

    /// Forgets the writes of statements after `seq` (their locks stay, as in MySQL).
    pub fn rollback_to(&mut self, txn: TxnId, seq: u64, catalog: &Catalog) -> Result<()> {
        let Some(active) = self.active.get_mut(&txn) else { return Ok(()) };
        if active.statements.iter().all(|(s, _)| *s <= seq) {
            return Ok(());
        }
        active.statements.retain(|(s, _)| *s <= seq);
        let mut writes = Pending::new();
        let mut bytes = 0;
        for (s, ws) in &active.statements {
            writes.add(*s, ws, catalog)?;
            bytes += write_set_bytes(ws);
        }
        active.writes = writes;
        active.bytes = bytes;
        Ok(())
    }

    /// Aborts the running (not prepared) transactions whose coordinator is gone. Returns them.
    pub fn abort_coordinated_by(&mut self, sql_node: u32) -> Vec<TxnId> {
        let doomed: Vec<TxnId> = self
            .active
            .iter()
            .filter(|(id, a)| id.coordinator() == sql_node && a.phase == Phase::Active)
            .map(|(id, _)| *id)
            .collect();
        for id in &doomed {
            self.active.remove(id);
            self.locks.release(*id);
        }
        doomed
    }

    /// This node became the leader: it holds no running transactions, and re-locks the rows of
    /// every prepared one so nothing changes them before their decision.
    pub fn became_leader(&mut self, catalog: &Catalog) -> Result<()> {
        self.active.clear();
        self.locks.clear();
        let prepared: Vec<(TxnId, WriteSet)> = self.prepared.iter().map(|(id, p)| (*id, p.write_set.clone())).collect();
        for (id, write_set) in prepared {
            for key in self.touched(&write_set, catalog)? {
                self.locks.acquire(id, key, LockMode::Exclusive);
            }
        }
        Ok(())
    }

    /// This node stopped leading: running transactions and locks are gone with it.
    pub fn lost_leadership(&mut self) {
        self.active.clear();
        self.locks.clear();
    }

    /// Applies a committed log entry (every replica, in log order).
    pub fn apply(&mut self, entry: &LogEntry, index: u64, store: &mut Store, catalog: &Catalog) -> Result<Applied> {
        self.apply_with(entry, index, store, |store, write_set| store.apply_write_set(write_set, catalog))
    }

    /// [`TxnManager::apply`], with the store changed only through `apply_write_set`: a data node
    /// that is writing a checkpoint or a backup must see every write set the store takes.
    pub fn apply_with(
        &mut self,
        entry: &LogEntry,
        index: u64,
        store: &mut Store,
        mut apply_write_set: impl FnMut(&mut Store, &WriteSet) -> Result<()>,
    ) -> Result<Applied> {
        use cairn_common::ops::TxnOutcome;
        let mut applied = Applied::default();
        match entry {
            LogEntry::Write { txn, write_set } => {
                apply_write_set(store, write_set)?;
                if let Some(id) = txn {
                    self.active.remove(id);
                    applied.released = self.locks.release(*id);
                    applied.txn = Some((*id, TxnOutcome::Committed));
                }
            }
            LogEntry::Prepare { txn, write_set, participants, decision_group } => {
                if self.decided.get(txn) == Some(&false) {
                    // Aborted (presumed abort) before its prepare arrived: stays aborted.
                    self.active.remove(txn);
                    applied.released = self.locks.release(*txn);
                    applied.txn = Some((*txn, TxnOutcome::Aborted));
                } else {
                    self.prepared.insert(
                        *txn,
                        PreparedTxn {
                            write_set: write_set.clone(),
                            participants: participants.clone(),
                            decision_group: *decision_group,
                            prepared_at: index,
                        },
                    );
                    // The private writes are in the prepared set now; the locks stay.
                    self.active.remove(txn);
                    applied.txn = Some((*txn, TxnOutcome::Prepared));
                }
            }
            LogEntry::Decide { txn, .. } if self.decided.contains_key(txn) => {
                // Decided already (the coordinator's commit and a participant's question can
                // both reach the log): the first decision stands and is what this one reports.
                let committed = self.decided[txn];
                applied.released = self.locks.release(*txn);
                applied.txn = Some((*txn, if committed { TxnOutcome::Committed } else { TxnOutcome::Aborted }));
            }
            LogEntry::Decide { txn, commit } => {
                let prepared = self.prepared.remove(txn);
                let committed = *commit && prepared.is_some();
                if committed {
                    if let Some(p) = &prepared {
                        apply_write_set(store, &p.write_set)?;
                    }
                }
                self.decided.insert(*txn, committed);
                self.decided_order.push_back(*txn);
                while self.decided_order.len() > DECISIONS_KEPT {
                    if let Some(old) = self.decided_order.pop_front() {
                        self.decided.remove(&old);
                    }
                }
                self.active.remove(txn);
                applied.released = self.locks.release(*txn);
                applied.txn = Some((*txn, if committed { TxnOutcome::Committed } else { TxnOutcome::Aborted }));
            }
        }
        Ok(applied)
    }

    /// Drops the changes of prepared transactions to tables the catalog no longer has (dropped
    /// while they waited for their decision), so that a commit applies what still exists.
    pub fn forget_tables(&mut self, keep: impl Fn(TableId) -> bool) {
        for prepared in self.prepared.values_mut() {
            prepared.write_set.changes.retain(|c| match c {
                RowChange::Put { table, .. }
                | RowChange::Delete { table, .. }
                | RowChange::Truncate { table }
                | RowChange::DropTable { table }
                | RowChange::AutoIncrement { table, .. } => keep(*table),
            });
        }
    }

    /// Serializes the replicated part (prepared transactions and remembered decisions), for
    /// checkpoints.
    pub fn replicated_state(&self) -> Vec<u8> {
        let prepared: Vec<(TxnId, WriteSet, Vec<NodeGroupId>, NodeGroupId, u64)> = self
            .prepared
            .iter()
            .map(|(id, p)| (*id, p.write_set.clone(), p.participants.clone(), p.decision_group, p.prepared_at))
            .collect();
        let decided: Vec<(TxnId, bool)> = self.decided_order.iter().map(|id| (*id, self.decided[id])).collect();
        postcard::to_stdvec(&(prepared, decided)).expect("transaction state always serializes")
    }

    /// Restores the replicated part from [`TxnManager::replicated_state`].
    pub fn restore_replicated_state(&mut self, bytes: &[u8]) -> Result<()> {
        type State = (Vec<(TxnId, WriteSet, Vec<NodeGroupId>, NodeGroupId, u64)>, Vec<(TxnId, bool)>);
        let (prepared, decided): State =
            postcard::from_bytes(bytes).map_err(|e| Error::internal(format!("undecodable transaction state: {e}")))?;
        self.prepared = prepared
            .into_iter()
            .map(|(id, write_set, participants, decision_group, prepared_at)| {
                (id, PreparedTxn { write_set, participants, decision_group, prepared_at })
            })
            .collect();
        self.decided = decided.iter().copied().collect();
        self.decided_order = decided.into_iter().map(|(id, _)| id).collect();
        Ok(())
    }
}

fn write_set_bytes(write_set: &WriteSet) -> u64 {
    write_set
        .changes
        .iter()
        .map(|c| match c {
            RowChange::Put { row, .. } => row.len() as u64 + 16,
            RowChange::Delete { key, .. } => key.len() as u64 + 16,
            _ => 16,
        })
        .sum()
}

/// A transaction's statements as one write set: their changes in order, so that applying it
/// leaves each row as the last statement left it.
fn merged(statements: &[(u64, WriteSet)]) -> WriteSet {
    WriteSet { changes: statements.iter().flat_map(|(_, ws)| ws.changes.iter().cloned()).collect() }
}

/// A read that sees a transaction's own writes over the committed rows. Returns the result and
/// (when `lock`) the keys of the rows returned.
fn read_through(
    writes: &Pending,
    op: &ReadOp,
    store: &Store,
    catalog: &Catalog,
    lock: bool,
) -> Result<(ReadResult, Vec<RowKey>)> {
    let overlay = writes.overlay();
    let mut locked = Vec::new();
    match op {
        ReadOp::Get { table, keys } => {
            let def = resolve_table(catalog, *table)?;
            let schema = TableSchema::new(def)?;
            let mut rows = Vec::with_capacity(keys.len());
            for key in keys {
                let encoded = schema.encode_key_values(key)?;
                let partition = schema.partition_of_key(key, &encoded)?;
                let row = match overlay.lookup(table.id, partition, &encoded) {
                    Lookup::Row(r) => Some(r.to_vec()),
                    Lookup::Deleted => None,
                    Lookup::Unknown => store.get_encoded(table.id, partition, &encoded).map(<[u8]>::to_vec),
                };
                if lock && row.is_some() {
                    locked.push((table.id, partition, encoded.into()));
                }
                rows.push(row);
            }
            Ok((ReadResult::Rows(rows), locked))
        }
        ReadOp::Count { table } => {
            let def = resolve_table(catalog, *table)?;
            let mut counts = store.count(def);
            for (partition, count) in counts.iter_mut() {
                if let Some(rows) = overlay.partition(table.id, *partition) {
                    for (key, entry) in rows {
                        let in_store = store.get_encoded(table.id, *partition, key).is_some();
                        match (entry.image.is_some(), in_store) {
                            (true, false) => *count += 1,
                            (false, true) => *count = count.saturating_sub(1),
                            _ => {}
                        }
                    }
                }
            }
            Ok((ReadResult::Counts(counts), locked))
        }
        ReadOp::Scan { table, partitions, filter, projection, limit, .. } => {
            let def = resolve_table(catalog, *table)?;
            let touched = store.resolve_partitions(def, partitions)?.into_iter().any(|p| overlay.touches(table.id, p));
            if !touched && !lock {
                return Ok((store.read(op, catalog)?, locked));
            }
            // The transaction changed rows of this table here: read every committed row that
            // passes the filter, replace or drop those it changed, add those it inserted. One
            // answer, no paging (a transaction's scan of its own writes is bounded by its size
            // limit and the table's partition on this node group).
            let schema = TableSchema::new(def)?;
            let layout = def.layout();
            let request = ScanRequest {
                partitions,
                filter: filter.as_ref(),
                projection: None,
                limit: None,
                resume: None,
                max_rows: u32::MAX,
                max_bytes: u32::MAX,
            };
            let committed = store.scan(def, &request)?;
            let mut out: Vec<(PartitionId, Vec<u8>, Vec<u8>)> = Vec::new();
            for row in committed.rows {
                let key = schema.primary_key_vec(&row)?;
                let partition = schema.partition_of_row(&row, &key)?;
                if overlay.lookup(table.id, partition, &key) == Lookup::Unknown {
                    out.push((partition, key, row));
                }
            }
            let mut ctx = EvalContext::detached();
            let mut seen = HashSet::new();
            for partition in store.resolve_partitions(def, partitions)? {
                if let Some(rows) = overlay.partition(table.id, partition) {
                    for (key, entry) in rows {
                        let Some(image) = entry.image.as_deref() else { continue };
                        if !seen.insert((partition, key.clone())) {
                            continue;
                        }
                        let values = layout.decode(image)?;
                        if let Some(f) = filter {
                            if !f.matches(&values, &mut ctx)? {
                                continue;
                            }
                        }
                        out.push((partition, key.to_vec(), image.to_vec()));
                    }
                }
            }
            if let Some(n) = limit {
                out.truncate(*n as usize);
            }
            let mut rows = Vec::with_capacity(out.len());
            for (partition, key, row) in out {
                if lock {
                    locked.push((table.id, partition, key.into()));
                }
                rows.push(match projection {
                    None => row,
                    Some(columns) => {
                        let values = layout.decode(&row)?;
                        let picked: Vec<cairn_common::Value> =
                            columns.iter().map(|&c| values.get(c as usize).cloned().unwrap_or(cairn_common::Value::Null)).collect();
                        let columns: Vec<usize> = columns.iter().map(|&c| c as usize).collect();
                        layout.project(&columns).encode_to_vec(&picked)?
                    }
                });
            }
            Ok((ReadResult::ScanBatch { rows, resume: None }, locked))
        }
        // The SQL node does not send these inside a transaction (it scans and sorts or
        // aggregates itself there, so that the transaction's own writes are seen): answered
        // from the committed rows.
        ReadOp::IndexScan { .. } | ReadOp::IndexStatus { .. } | ReadOp::Aggregate { .. } => Ok((store.read(op, catalog)?, locked)),
        // Sent only as a plain read (by a statement holding nothing in this node group): it
        // would need the own writes of both tables and locks on the base rows.
        ReadOp::GetThrough { .. } => Err(Error::internal("a lookup through a unique index was sent inside a transaction's own writes")),
    }
}
