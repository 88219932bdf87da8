//! The SQL node's side of transactions: it coordinates them.
//!
//! A [`Transaction`] remembers which node groups hold state for it (rows it changed or locked
//! there) and numbers its requests. [`Access`] is how a statement reaches the data: outside a
//! transaction it sends plain reads and autocommit writes; inside one it sends transactional
//! reads (which see the transaction's own writes, and lock rows for `FOR UPDATE` /
//! `LOCK IN SHARE MODE`) and transactional writes (evaluated and locked at each group's leader
//! now, applied at commit).
//!
//! Commit ([`commit`]): a transaction that touched one node group commits there in one Raft
//! entry. One that touched several uses two-phase commit: every participant prepares (its
//! changes durable in its log, locks kept), then the *decision group* (the lowest participant)
//! logs the decision, then the others. If this SQL node dies after preparing, the participants
//! ask the decision group, which decides abort if it has no decision yet; so the transaction
//! ends all-or-nothing and its locks go within a few seconds.
//!
//! An autocommit statement is its own transaction: when it writes to one node group in one
//! batch it is a single Raft entry (the fast path); when it spans node groups (or batches) it
//! runs as an implicit transaction with the same commit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use cairn_common::error::Action;
use cairn_common::ids::NodeGroupId;
use cairn_common::ops::{LockMode, ReadOp, ReadResult, TxnControl, TxnId, TxnOutcome, TxnStep, WriteOp, WriteOutcome};
use cairn_common::{Error, ErrorKind};

use crate::backend::Backend;

/// Most ops in one request to a node group; bigger statements are sent in several.
pub(crate) const MAX_OPS_PER_WRITE: usize = 8192;

/// A named point of the commit protocol where tests can make the SQL node die.
pub type Failpoint = Arc<dyn Fn(&'static str) + Send + Sync>;

#[derive(Debug)]
pub(crate) struct Transaction {
    pub id: TxnId,
    /// Node groups holding state for this transaction (rows it changed or locked there).
    touched: BTreeSet<NodeGroupId>,
    /// The last request number given out (each transactional write is one).
    seq: u64,
    pub savepoints: Vec<(String, u64)>,
}

impl Transaction {
    pub fn new(id: TxnId) -> Transaction {
        Transaction { id, touched: BTreeSet::new(), seq: 0, savepoints: Vec::new() }
    }

    /// The request number statements after this point would follow (for savepoints and for
    /// rolling back a failed statement).
    pub fn mark(&self) -> u64 {
        self.seq
    }

    pub fn participants(&self) -> Vec<NodeGroupId> {
        self.touched.iter().copied().collect()
    }
}

pub(crate) type SharedTxn = Arc<Mutex<Transaction>>;

fn locked(txn: &SharedTxn) -> std::sync::MutexGuard<'_, Transaction> {
    txn.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether an error ends the whole transaction (the data nodes already dropped their part):
/// lock wait timeouts and node failures, as in NDB.
pub(crate) fn aborts_transaction(e: &Error) -> bool {
    e.kind.action() == Action::Abort || e.kind == ErrorKind::ClusterTemporary
}

fn changed_anything(outcome: &WriteOutcome) -> bool {
    outcome.changes > 0
}

/// How a statement reaches the data.
pub(crate) struct Access<B: Backend> {
    pub backend: Arc<B>,
    pub txn: Option<SharedTxn>,
    /// Row locks the statement's reads take (`FOR UPDATE`, `LOCK IN SHARE MODE`).
    pub lock: Option<LockMode>,
    pub failpoint: Option<Failpoint>,
    /// Makes ids for implicit transactions of autocommit statements.
    pub next_id: Arc<dyn Fn() -> TxnId + Send + Sync>,
}

impl<B: Backend> Clone for Access<B> {
    fn clone(&self) -> Self {
        Access {
            backend: self.backend.clone(),
            txn: self.txn.clone(),
            lock: self.lock,
            failpoint: self.failpoint.clone(),
            next_id: self.next_id.clone(),
        }
    }
}

impl<B: Backend> Access<B> {
    /// Whether this statement's reads of `group` are plain READ COMMITTED reads: outside a
    /// transaction, or inside one that holds nothing there (no writes, no locks) and takes no
    /// locks now, so that a transactional read would see exactly the committed rows.
    pub fn reads_plainly(&self, group: NodeGroupId) -> bool {
        match &self.txn {
            None => true,
            Some(txn) => self.lock.is_none() && !locked(txn).touched.contains(&group),
        }
    }

    /// A read of one node group, inside the transaction if there is one.
    pub async fn read(&self, group: NodeGroupId, op: ReadOp) -> Result<ReadResult, Error> {
        let Some(txn) = &self.txn else {
            return self.backend.read(group, op).await;
        };
        let step = {
            let t = locked(txn);
            TxnStep { txn: t.id, seq: t.seq, known_here: t.touched.contains(&group) }
        };
        if !step.known_here && self.lock.is_none() {
            // See `reads_plainly`: the plain read takes the leader's lease fast path instead of
            // going through its node-group loop.
            return self.backend.read(group, op).await;
        }
        let result = self.backend.txn_read(group, step, self.lock, op).await?;
        if self.lock.is_some() {
            let any = match &result {
                ReadResult::Rows(rows) => rows.iter().any(Option::is_some),
                ReadResult::ScanBatch { rows, .. } => !rows.is_empty(),
                ReadResult::IndexBatch { rows, .. } => !rows.is_empty(),
                ReadResult::Through(_) | ReadResult::Counts(_) | ReadResult::IndexBuilt(_) | ReadResult::Groups { .. } => false,
            };
            if any {
                locked(txn).touched.insert(group);
            }
        }
        Ok(result)
    }

    /// One statement's writes, per node group (all groups at once). Inside a transaction they
    /// join it; a failure takes back this statement's writes in every group (the statement is
    /// atomic). Outside one, a statement that fits one Raft entry is one; anything bigger runs
    /// as an implicit transaction.
    pub async fn write_groups(&self, ops: BTreeMap<NodeGroupId, Vec<WriteOp>>) -> Result<WriteOutcome, Error> {
        if ops.is_empty() {
            return Ok(WriteOutcome::default());
        }
        if let Some(txn) = &self.txn {
            return self.transactional_write(txn, ops).await;
        }
        if ops.len() == 1 && ops.values().all(|o| o.len() <= MAX_OPS_PER_WRITE) {
            let Some((group, ops)) = ops.into_iter().next() else { return Ok(WriteOutcome::default()) };
            return self.backend.write(group, ops).await;
        }
        let txn: SharedTxn = Arc::new(Mutex::new(Transaction::new((self.next_id)())));
        match self.transactional_write(&txn, ops).await {
            Ok(outcome) => {
                commit(self.backend.as_ref(), &txn, self.failpoint.as_ref()).await?;
                Ok(outcome)
            }
            Err(e) => {
                rollback(self.backend.as_ref(), &txn).await;
                Err(e)
            }
        }
    }

    async fn transactional_write(&self, txn: &SharedTxn, ops: BTreeMap<NodeGroupId, Vec<WriteOp>>) -> Result<WriteOutcome, Error> {
        let (id, statement_start) = {
            let t = locked(txn);
            (t.id, t.seq)
        };
        // Number every request of the statement up front: each group's batches in order.
        let mut requests: Vec<(NodeGroupId, Vec<(TxnStep, Vec<WriteOp>)>)> = Vec::new();
        {
            let mut t = locked(txn);
            for (group, mut ops) in ops {
                let mut batches = Vec::new();
                let known_here = t.touched.contains(&group);
                while !ops.is_empty() {
                    let rest = if ops.len() > MAX_OPS_PER_WRITE { ops.split_off(MAX_OPS_PER_WRITE) } else { Vec::new() };
                    t.seq += 1;
                    // Later batches of the statement need not insist on state either: the
                    // leader creates it on the first change.
                    batches.push((TxnStep { txn: id, seq: t.seq, known_here }, ops));
                    ops = rest;
                }
                requests.push((group, batches));
            }
        }
        let futures = requests.into_iter().map(|(group, batches)| {
            let backend = self.backend.clone();
            async move {
                let mut total = WriteOutcome::default();
                let mut changed = false;
                for (step, ops) in batches {
                    match backend.txn_write(group, step, ops).await {
                        Ok(outcome) => {
                            changed |= changed_anything(&outcome);
                            total.merge(&outcome);
                        }
                        Err(e) => return (group, changed, Err(e)),
                    }
                }
                (group, changed, Ok(total))
            }
        });
        let results = futures_join_all(futures).await;
        let mut total = WriteOutcome::default();
        let mut first_error = None;
        let mut written = Vec::new();
        {
            let mut t = locked(txn);
            for (group, changed, result) in results {
                if changed {
                    t.touched.insert(group);
                    written.push(group);
                }
                match result {
                    Ok(outcome) => total.merge(&outcome),
                    Err(e) => {
                        if first_error.is_none() {
                            first_error = Some(e);
                        }
                    }
                }
            }
        }
        let Some(error) = first_error else { return Ok(total) };
        if !aborts_transaction(&error) {
            // Take back this statement's writes where they succeeded: the statement fails whole.
            for group in written {
                let _ = self.backend.txn_control(group, id, TxnControl::RollbackTo { seq: statement_start }).await;
            }
        }
        Err(error)
    }
}

/// Joins futures without an extra dependency: they run concurrently on the current task.
async fn futures_join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    crate::join::join_all(futures.into_iter().collect()).await
}

/// Commits a transaction: one phase for one node group, two phases for several.
pub(crate) async fn commit<B: Backend>(backend: &B, txn: &SharedTxn, failpoint: Option<&Failpoint>) -> Result<(), Error> {
    let (id, participants) = {
        let t = locked(txn);
        (t.id, t.participants())
    };
    match participants.as_slice() {
        [] => Ok(()),
        [group] => match backend.txn_control(*group, id, TxnControl::CommitOnePhase).await? {
            TxnOutcome::Committed | TxnOutcome::Done => Ok(()),
            other => Err(Error::new(ErrorKind::ErrorDuringCommit, format!("Got error during COMMIT: transaction {id} ended {other:?}"))),
        },
        groups => two_phase_commit(backend, id, groups, failpoint).await,
    }
}

async fn two_phase_commit<B: Backend>(backend: &B, id: TxnId, groups: &[NodeGroupId], failpoint: Option<&Failpoint>) -> Result<(), Error> {
    let decision_group = groups[0];
    let prepare = TxnControl::Prepare { participants: groups.to_vec(), decision_group };
    let votes = futures_join_all(groups.iter().map(|g| backend.txn_control(*g, id, prepare.clone()))).await;
    let mut refusal = None;
    for (group, vote) in groups.iter().zip(votes) {
        match vote {
            Ok(TxnOutcome::Prepared) => {}
            Ok(other) => refusal = refusal.or(Some(format!("node group {group} ended it {other:?}"))),
            Err(e) => refusal = refusal.or(Some(format!("node group {group}: {}", e.message))),
        }
    }
    if let Some(why) = refusal {
        abort_everywhere(backend, id, groups).await;
        return Err(Error::temporary(format!("transaction {id} could not commit and was rolled back ({why}); retry it")));
    }
    if let Some(f) = failpoint {
        f("after-prepare");
    }
    // The decision: logged by the decision group, which answers with what its log says (an
    // abort logged first by a participant's question wins).
    let mut decision = None;
    let mut last_error = None;
    for _ in 0..5 {
        match backend.txn_control(decision_group, id, TxnControl::Decide { commit: true }).await {
            Ok(outcome) => {
                decision = Some(outcome);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let Some(decision) = decision else {
        return Err(Error::temporary(format!(
            "the outcome of transaction {id} is unknown: its decision group did not answer ({}); the participants will resolve it",
            last_error.map(|e| e.message).unwrap_or_default()
        )));
    };
    if let Some(f) = failpoint {
        f("after-decision");
    }
    let commit = decision == TxnOutcome::Committed;
    // Everybody else learns the decision; they would also ask on their own if this failed.
    let others: Vec<NodeGroupId> = groups[1..].to_vec();
    let acks = futures_join_all(others.iter().map(|g| backend.txn_control(*g, id, TxnControl::Decide { commit }))).await;
    for (group, ack) in others.iter().zip(acks) {
        if let Err(e) = ack {
            tracing::warn!(txn = %id, group = %group, error = %e, "a participant did not take the decision; it will ask the decision group");
        }
    }
    if commit {
        Ok(())
    } else {
        Err(Error::temporary(format!("transaction {id} was aborted while it committed (a participant gave up waiting); retry it")))
    }
}

async fn abort_everywhere<B: Backend>(backend: &B, id: TxnId, groups: &[NodeGroupId]) {
    // The decision group first, so that a late prepare there stays aborted.
    for group in groups {
        let _ = backend.txn_control(*group, id, TxnControl::Decide { commit: false }).await;
        let _ = backend.txn_control(*group, id, TxnControl::Rollback).await;
    }
}

/// Rolls a transaction back everywhere it holds state (errors are ignored: a group that lost
/// the transaction has nothing to roll back).
pub(crate) async fn rollback<B: Backend>(backend: &B, txn: &SharedTxn) {
    let (id, groups) = {
        let t = locked(txn);
        (t.id, t.participants())
    };
    let _ = futures_join_all(groups.iter().map(|g| backend.txn_control(*g, id, TxnControl::Rollback))).await;
}

/// ROLLBACK TO SAVEPOINT: forgets every write after `mark` in every group.
pub(crate) async fn rollback_to<B: Backend>(backend: &B, txn: &SharedTxn, mark: u64) -> Result<(), Error> {
    let (id, groups) = {
        let t = locked(txn);
        (t.id, t.participants())
    };
    for result in futures_join_all(groups.iter().map(|g| backend.txn_control(*g, id, TxnControl::RollbackTo { seq: mark }))).await {
        result?;
    }
    Ok(())
}
