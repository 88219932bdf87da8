//! The node-group loop: one thread per data node that owns this node's Raft replica of its node
//! group, the in-memory store, the leader's overlay of proposed-but-unapplied writes, and the
//! transactions running at this leader (row locks, their private writes, two-phase commit).
//!
//! Being one thread is what makes a leader's evaluation of a write and its proposal atomic with
//! respect to every other write: the loop is the row lock of autocommit writes, and it owns the
//! lock table of transactions. Everything else talks to it through its inbox. Each round it
//! takes every queued event (so many requests share one Raft Ready and one fsync: group commit),
//! ticks Raft on time, persists, sends, applies, and answers.
//!
//! A request that needs a row another transaction has locked is parked; parked requests are
//! tried again whenever locks are released, and fail with MySQL's 1205 after
//! TransactionDeadlockDetectionTimeout (aborting their transaction here, as NDB does).
//!
//! Checkpoints, snapshots, log truncation, `DiskSync = Interval` flushes and backups live in
//! [`durability`], called from a few hooks here.

mod answers;
mod durability;

pub use durability::{DurabilityEvent, DurabilitySetup};

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cairn_common::catalog::Catalog;
use cairn_common::ids::{NodeGroupId, TableId};
use cairn_common::ops::{
    LockMode, LogEntry, ReadOp, RowChange, TableRef, TxnControl, TxnId, TxnOutcome, TxnStep, WriteOp, WriteOutcome, WriteSet,
};
use cairn_common::{Error, ErrorKind};
use cairn_proto::data::{DataError, DataReply, DataResponseBody, encode};
use cairn_proto::link::FrameSender;
use cairn_proto::pb::{DataResponse, Frame, NodeStatus, TableRows, frame::Body};
use cairn_replication::eraftpb::Message;
use cairn_replication::wal::FileLogStore;
use cairn_replication::{CommittedEntry, EntryPayload, LeadershipChange, ProposalId, ProposeError, Replica};
use cairn_storage::txn::ControlAttempt;
use cairn_storage::{Limits, Pending, ReadAttempt, Store, TxnLimits, TxnManager, WriteAttempt};
use tokio::sync::oneshot;

const MAX_EVENTS_PER_ROUND: usize = 4096;
/// Existing rows one round walks into ordered indexes being built (CREATE INDEX online): small
/// enough that requests queued meanwhile wait at most a few milliseconds.
const INDEX_BACKFILL_ROWS_PER_ROUND: usize = 10_000;
/// How long a request for a table this node does not know yet waits for the catalog push.
const CATALOG_WAIT: Duration = Duration::from_secs(5);
/// How long a leader leaves an advanced commit index unsent (`ReplicaConfig::defer_commit_broadcast`)
/// before it sends it in a heartbeat of its own. Under a stream of writes the next append
/// carries it sooner, which saves the followers a message, a wake-up and an answer per commit;
/// this bounds how far a follower's applied state trails when the writes stop.
const COMMIT_SEND_DELAY: Duration = Duration::from_millis(2);
/// How long a prepared transaction waits for its decision before this leader asks the decision
/// group (which decides abort if it has no decision: presumed abort).
pub const RESOLVE_AFTER: Duration = Duration::from_secs(3);

/// Where the answer to one request goes: straight into the send queue of the connection it
/// came on. The loop thread encodes the answer frame itself, so an answer costs no task, no
/// channel and no extra thread wake-up on its way out; the answers of one stretch of a round
/// are queued together (see [`answers`]), so that the connection's writer sends them in one
/// write. Only when that connection's queue is full
/// does a task wait for room, so that a slow SQL node never stalls the loop. A request dropped
/// unanswered (the loop stopping) is answered "unavailable" rather than left to time out.
pub struct Reply {
    request_id: u64,
    sender: Option<FrameSender>,
    runtime: tokio::runtime::Handle,
}

impl Reply {
    pub fn new(request_id: u64, sender: FrameSender, runtime: tokio::runtime::Handle) -> Reply {
        Reply { request_id, sender: Some(sender), runtime }
    }

    /// Sends the answer. An answer to a connection that has closed is dropped: the SQL node that
    /// asked is gone, and its transactions here are aborted by `Event::CoordinatorGone`.
    pub fn send(mut self, body: DataResponseBody) {
        self.deliver(body);
    }

    fn deliver(&mut self, body: DataResponseBody) {
        let Some(sender) = self.sender.take() else { return };
        let frame = Frame {
            request_id: self.request_id,
            body: Some(Body::DataResponse(DataResponse { body: encode(&body) })),
        };
        // On the loop thread the answer waits for the round's next flush (see `answers`).
        answers::send(sender, frame, &self.runtime);
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if self.sender.is_some() {
            self.deliver(Err(DataError::Unavailable("the data node is shutting down".into())));
        }
    }
}

pub enum Event {
    Raft(Message),
    Read { op: ReadOp, reply: Reply },
    Write { ops: Vec<WriteOp>, reply: Reply },
    /// A read from this replica's applied state, leader or not (see `DataRequestBody::LocalRead`).
    LocalRead { op: ReadOp, reply: Reply },
    TxnRead { step: TxnStep, lock: Option<LockMode>, op: ReadOp, reply: Reply },
    TxnWrite { step: TxnStep, ops: Vec<WriteOp>, reply: Reply },
    Txn { txn: TxnId, control: TxnControl, reply: Reply },
    /// The decision group answered how a prepared transaction ended.
    Resolved { txn: TxnId, commit: bool },
    /// The arbitrator answered whether this node may go on alone with membership `epoch`.
    Arbitrated { epoch: u64, granted: bool },
    /// The connection from an SQL node closed: its running transactions here are aborted.
    CoordinatorGone { sql_node: u32 },
    Catalog(Arc<Catalog>),
    Status(oneshot::Sender<NodeStatus>),
    /// Checkpoint, snapshot and backup work finished off the loop thread, or a backup request.
    Durability(DurabilityEvent),
    Shutdown,
}

/// What the connection tasks share with the loop so that they can answer plain reads
/// themselves while the leader's lease holds: no thread handoff for the hot path.
///
/// Safe because the loop applies every committed entry before it acknowledges the write, and
/// publishes a lease deadline only while it is the ready leader with nothing waiting to apply;
/// under the lease no other node can be leader, so the applied store holds every acknowledged
/// write.
pub struct SharedReads {
    pub store: std::sync::RwLock<Store>,
    pub catalog: std::sync::RwLock<Arc<Catalog>>,
    /// Nanoseconds after `epoch` until which the lease holds (0: no lease).
    lease_until: std::sync::atomic::AtomicU64,
    epoch: Instant,
}

impl SharedReads {
    pub fn new(group: NodeGroupId, catalog: Arc<Catalog>) -> SharedReads {
        SharedReads {
            store: std::sync::RwLock::new(Store::new(group)),
            catalog: std::sync::RwLock::new(catalog),
            lease_until: std::sync::atomic::AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn publish_lease(&self, until: Option<Instant>) {
        let nanos = until.map_or(0, |t| t.saturating_duration_since(self.epoch).as_nanos() as u64);
        self.lease_until.store(nanos, std::sync::atomic::Ordering::Release);
    }

    /// Answers a plain read now if this node holds the lease and knows the table's version;
    /// None sends it through the loop.
    pub fn try_read(&self, op: &ReadOp) -> Option<DataResponseBody> {
        let until = self.lease_until.load(std::sync::atomic::Ordering::Acquire);
        if until == 0 || (self.epoch.elapsed().as_nanos() as u64) >= until {
            return None;
        }
        let catalog = self.catalog.read().unwrap_or_else(|e| e.into_inner()).clone();
        let ready = |table| matches!(check_table(&catalog, table), TableCheck::Ready);
        if !ready(op.table()) || !op.second_table().is_none_or(ready) {
            return None;
        }
        let store = self.store.read().unwrap_or_else(|e| e.into_inner());
        Some(store.read(op, &catalog).map(DataReply::Read).map_err(DataError::Failed))
    }
}

/// Where Raft messages for a peer go (the peer's outbound link task).
pub type PeerSender = tokio::sync::mpsc::Sender<Message>;

/// Asks another node group's leader how a transaction ended (`TxnControl::Resolve`); the answer
/// comes back as [`Event::Resolved`]. Runs on the daemon's async side.
pub type Resolver = Box<dyn Fn(NodeGroupId, TxnId) + Send>;

/// Asks the arbitrator (the management leader) whether this node may go on alone with the given
/// membership epoch; the answer comes back as [`Event::Arbitrated`].
pub type Arbitrator = Box<dyn Fn(u64) + Send>;

enum Request {
    Read { op: ReadOp, reply: Reply },
    Write { ops: Vec<WriteOp>, reply: Reply },
    TxnRead { step: TxnStep, lock: Option<LockMode>, op: ReadOp, reply: Reply },
    TxnWrite { step: TxnStep, ops: Vec<WriteOp>, reply: Reply },
    Txn { txn: TxnId, control: TxnControl, reply: Reply },
}

impl Request {
    fn tables(&self) -> Vec<TableRef> {
        match self {
            Request::Read { op, .. } | Request::TxnRead { op, .. } => op.second_table().into_iter().chain([op.table()]).collect(),
            Request::Write { ops, .. } | Request::TxnWrite { ops, .. } => ops.iter().map(write_table).collect(),
            Request::Txn { .. } => Vec::new(),
        }
    }

    fn txn(&self) -> Option<TxnId> {
        match self {
            Request::TxnRead { step, .. } | Request::TxnWrite { step, .. } => Some(step.txn),
            Request::Txn { txn, .. } => Some(*txn),
            Request::Read { .. } | Request::Write { .. } => None,
        }
    }

    fn fail(self, error: DataError) {
        let reply = match self {
            Request::Read { reply, .. }
            | Request::Write { reply, .. }
            | Request::TxnRead { reply, .. }
            | Request::TxnWrite { reply, .. }
            | Request::Txn { reply, .. } => reply,
        };
        reply.send(Err(error));
    }
}

fn write_table(op: &WriteOp) -> TableRef {
    match op {
        WriteOp::Insert { table, .. }
        | WriteOp::UpdateKey { table, .. }
        | WriteOp::DeleteKey { table, .. }
        | WriteOp::UpdateWhere { table, .. }
        | WriteOp::DeleteWhere { table, .. }
        | WriteOp::Truncate { table }
        | WriteOp::ReserveAutoIncrement { table, .. } => *table,
    }
}

/// Whether a request's table is known here in the version it was planned with.
enum TableCheck {
    Ready,
    /// This node's catalog is older than the request: wait for the push.
    Behind,
    Mismatch(DataError),
}

fn check_table(catalog: &Catalog, table: TableRef) -> TableCheck {
    match catalog.table(table.id) {
        Some(def) if def.version == table.version => TableCheck::Ready,
        _ if catalog.version < table.version => TableCheck::Behind,
        Some(def) => TableCheck::Mismatch(DataError::SchemaMismatch { table: table.id.0, have: def.version, wanted: table.version }),
        None => TableCheck::Mismatch(DataError::Failed(Error::new(
            ErrorKind::NoSuchTable,
            format!("Table with id {} doesn't exist (dropped?)", table.id),
        ))),
    }
}

/// Who waits for a proposed entry to apply.
enum Waiter {
    /// An autocommit write: answered with its outcome.
    Write(Reply, WriteOutcome),
    /// A transaction control request: answered with how the entry ended the transaction.
    Txn(Option<Reply>),
}

/// Timing and limits the loop runs with.
#[derive(Clone, Copy, Debug)]
pub struct LoopSettings {
    pub tick: Duration,
    pub data_memory: u64,
    /// TransactionDeadlockDetectionTimeout: how long a request waits for a row lock.
    pub lock_wait: Duration,
    pub txn_limits: TxnLimits,
    /// ArbitrationTimeout: how long a two-replica group may stay without a leader before the
    /// survivor asks the arbitrator to go on alone.
    pub arbitration_timeout: Duration,
}

pub struct NodeGroupLoop {
    node_id: u32,
    group: NodeGroupId,
    replica: Replica<FileLogStore>,
    shared: Arc<SharedReads>,
    pending: Pending,
    txns: TxnManager,
    catalog: Arc<Catalog>,
    limits: Limits,
    settings: LoopSettings,
    inbox: mpsc::Receiver<Event>,
    peers: HashMap<u64, PeerSender>,
    resolver: Resolver,
    arbitrator: Arbitrator,
    /// The data nodes the config puts in this node group.
    members: Vec<u64>,
    /// Since when a two-voter group has had no leader, and when arbitration was last asked.
    stalled_since: Option<Instant>,
    arbitration_asked: Option<Instant>,
    /// When this sole-voter leader last proposed taking its peer back.
    rejoin_proposed: Option<Instant>,
    waiting: HashMap<ProposalId, Waiter>,
    read_batches: HashMap<u64, Vec<Request>>,
    /// Read batches confirmed by Raft, waiting for the store to reach their index.
    reads_ready: Vec<(u64, Vec<Request>)>,
    next_read_batch: u64,
    reads_this_round: Vec<Request>,
    /// Requests for tables newer than this node's catalog, until the push arrives.
    parked: VecDeque<(Instant, Request)>,
    /// Requests waiting for row locks, with their deadlines, in arrival order.
    lock_waits: VecDeque<(Instant, Request)>,
    /// Locks were released this round: try the lock waiters again.
    locks_released: bool,
    /// Committed entries not yet applied because they name a table the catalog does not have yet.
    apply_queue: VecDeque<CommittedEntry>,
    /// Raft index of the last entry applied to the store.
    store_applied: u64,
    started: bool,
    /// The term in which this leader took over the transactions of the log (relocked prepared rows).
    txn_term: Option<u64>,
    /// When this leader first saw each prepared transaction, and whether it asked about it.
    prepared_seen: HashMap<TxnId, (Instant, bool)>,
    /// Dropped tables whose rows this leader has proposed to free.
    drops_proposed: std::collections::HashSet<TableId>,
    durability: Option<durability::Durability>,
    /// When this leader sends a commit index no append has carried yet (see
    /// [`COMMIT_SEND_DELAY`]).
    commit_due: Option<Instant>,
}

fn lock_wait_timeout() -> DataError {
    DataError::Failed(Error::new(ErrorKind::LockWaitTimeout, "Lock wait timeout exceeded; try restarting transaction"))
}

impl NodeGroupLoop {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node_id: u32,
        group: NodeGroupId,
        replica: Replica<FileLogStore>,
        catalog: Arc<Catalog>,
        settings: LoopSettings,
        peers: HashMap<u64, PeerSender>,
        resolver: Resolver,
        shared: Arc<SharedReads>,
        members: Vec<u64>,
        arbitrator: Arbitrator,
    ) -> (NodeGroupLoop, mpsc::Sender<Event>) {
        let (tx, inbox) = mpsc::channel();
        let store_applied = replica.applied_index();
        let this = NodeGroupLoop {
            node_id,
            group,
            replica,
            shared,
            pending: Pending::new(),
            txns: TxnManager::new(settings.txn_limits),
            catalog,
            limits: Limits::new(settings.data_memory),
            settings,
            inbox,
            peers,
            resolver,
            arbitrator,
            members,
            stalled_since: None,
            arbitration_asked: None,
            rejoin_proposed: None,
            waiting: HashMap::new(),
            read_batches: HashMap::new(),
            reads_ready: Vec::new(),
            next_read_batch: 1,
            reads_this_round: Vec::new(),
            parked: VecDeque::new(),
            lock_waits: VecDeque::new(),
            locks_released: false,
            apply_queue: VecDeque::new(),
            store_applied,
            started: false,
            txn_term: None,
            prepared_seen: HashMap::new(),
            drops_proposed: Default::default(),
            durability: None,
            commit_due: None,
        };
        (this, tx)
    }

    pub fn run(mut self) -> anyhow::Result<()> {
        let mut next_tick = Instant::now() + self.settings.tick;
        // Answers made on this thread go out together at the flush points of each round.
        let _holding = answers::Holding::start();
        loop {
            answers::flush();
            // While an index is being built, rounds follow each other without waiting.
            let indexing = self.shared.store.read().unwrap_or_else(|e| e.into_inner()).indexes_pending();
            let wake = self.durability_wakeup().map_or(next_tick, |at| at.min(next_tick));
            let wake = self.commit_due.map_or(wake, |at| at.min(wake));
            let wait = if indexing { Duration::ZERO } else { wake.saturating_duration_since(Instant::now()) };
            let waiting = Instant::now();
            let received = self.inbox.recv_timeout(wait);
            self.note_idle(waiting.elapsed());
            match received {
                Ok(event) => {
                    if !self.handle(event)? {
                        return Ok(());
                    }
                    for _ in 0..MAX_EVENTS_PER_ROUND {
                        match self.inbox.try_recv() {
                            Ok(event) => {
                                if !self.handle(event)? {
                                    return Ok(());
                                }
                            }
                            Err(_) => break,
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            }
            if Instant::now() >= next_tick {
                self.replica.tick();
                next_tick += self.settings.tick;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + self.settings.tick;
                }
                self.expire_parked();
                self.expire_lock_waits();
                self.resolve_stale_prepared();
                self.arbitrate_if_stalled();
                self.take_peer_back();
            }
            if self.commit_due.is_some_and(|at| Instant::now() >= at) {
                self.commit_due = None;
                if self.replica.commit_unsent() {
                    self.replica.send_commit();
                }
            }
            self.start_read_batch();
            self.free_dropped_tables();
            self.process_ready()?;
            if self.commit_due.is_none() && self.replica.commit_unsent() {
                self.commit_due = Some(Instant::now() + COMMIT_SEND_DELAY);
            }
            {
                // Under the store's write lock: lease reads on the network thread wait at most
                // one slice.
                let mut store = self.shared.store.write().unwrap_or_else(|e| e.into_inner());
                if store.indexes_pending() {
                    store.backfill_indexes(INDEX_BACKFILL_ROWS_PER_ROUND);
                }
            }
            self.take_over_transactions();
            self.publish_lease();
            self.serve_ready_reads();
            self.durability_round()?;
            if std::mem::take(&mut self.locks_released) {
                self.retry_lock_waits();
            }
            if !self.started
                && self.replica.leader_id().is_some()
                && self.apply_queue.is_empty()
                && self.store_applied >= self.replica.commit_index()
                && self.durability_caught_up()
            {
                self.started = true;
                tracing::info!(node = self.node_id, group = %self.group, "node started");
            }
        }
    }

    fn handle(&mut self, event: Event) -> anyhow::Result<bool> {
        match event {
            Event::Raft(message) => {
                if let Some(message) = self.filter_raft(message)
                    && let Err(e) = self.replica.step(message)
                {
                    tracing::debug!(error = %e, "dropped a raft message");
                }
            }
            Event::Durability(event) => self.on_durability_event(event)?,
            Event::Read { op, reply } => self.request(Request::Read { op, reply }),
            Event::Write { ops, reply } => self.request(Request::Write { ops, reply }),
            Event::TxnRead { step, lock, op, reply } => self.request(Request::TxnRead { step, lock, op, reply }),
            Event::TxnWrite { step, ops, reply } => self.request(Request::TxnWrite { step, ops, reply }),
            Event::Txn { txn, control, reply } => self.request(Request::Txn { txn, control, reply }),
            Event::LocalRead { op, reply } => {
                let result = match check_table(&self.catalog, op.table()) {
                    TableCheck::Ready => {
                        let store = self.shared.store.read().unwrap_or_else(|e| e.into_inner());
                        store.read(&op, &self.catalog).map(DataReply::Read).map_err(DataError::Failed)
                    }
                    TableCheck::Behind => Err(DataError::Unavailable("this replica's catalog is behind".into())),
                    TableCheck::Mismatch(e) => Err(e),
                };
                reply.send(result);
            }
            Event::Arbitrated { epoch, granted } => self.on_arbitrated(epoch, granted),
            Event::Resolved { txn, commit } => {
                if self.serving() && self.txns.prepared().contains_key(&txn) {
                    self.decide(txn, Some(commit), None);
                }
            }
            Event::CoordinatorGone { sql_node } => {
                // Its requests still waiting for a row lock go too: granted later, they would
                // lock rows for a transaction nobody is left to end.
                let (doomed, kept) = std::mem::take(&mut self.lock_waits)
                    .into_iter()
                    .partition::<VecDeque<_>, _>(|(_, request)| request.txn().is_some_and(|t| t.coordinator() == sql_node));
                self.lock_waits = kept;
                for (_, request) in doomed {
                    request.fail(DataError::Unavailable("the SQL node coordinating this transaction is gone".into()));
                }
                let aborted = self.txns.abort_coordinated_by(sql_node);
                if !aborted.is_empty() {
                    tracing::info!(node = self.node_id, sql_node, count = aborted.len(), "aborted the running transactions of a vanished SQL node");
                    self.locks_released = true;
                }
            }
            Event::Catalog(catalog) => {
                if catalog.version >= self.catalog.version {
                    self.catalog = catalog;
                    // New or dropped ordered indexes: derived state, kept in step here.
                    self.shared.store.write().unwrap_or_else(|e| e.into_inner()).sync_catalog(&self.catalog);
                    *self.shared.catalog.write().unwrap_or_else(|e| e.into_inner()) = self.catalog.clone();
                    let current = self.catalog.clone();
                    self.txns.forget_tables(|t| current.table(t).is_some() || t.0 >= current.next_table_id);
                    let parked: Vec<_> = self.parked.drain(..).collect();
                    for (_, request) in parked {
                        self.request(request);
                    }
                    if let Err(e) = self.drain_apply_queue() {
                        tracing::error!(error = %e, "applying committed entries failed");
                    }
                }
            }
            Event::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Event::Shutdown => {
                self.durability_exit();
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn not_leader(&self) -> DataError {
        let hint = self.replica.leader_id().filter(|l| *l != self.node_id as u64).map(|l| l as u32);
        DataError::NotLeader { leader: hint }
    }

    /// Whether this node may answer reads and evaluate writes now.
    fn serving(&self) -> bool {
        self.replica.is_ready_leader() && self.apply_queue.is_empty() && self.txn_term == Some(self.replica.term())
    }

    /// Once a new leader has applied its log, it takes over the transactions in it: prepared
    /// ones get their rows locked again before anything else is served.
    fn take_over_transactions(&mut self) {
        let term = self.replica.term();
        if self.txn_term == Some(term) || !self.replica.is_ready_leader() || !self.apply_queue.is_empty() {
            return;
        }
        match self.txns.became_leader(&self.catalog) {
            Ok(()) => {
                self.txn_term = Some(term);
                self.prepared_seen.clear();
                if !self.txns.prepared().is_empty() {
                    tracing::info!(node = self.node_id, count = self.txns.prepared().len(), "took over prepared transactions");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot take over the transactions of the log"),
        }
    }

    /// A two-replica node group without a leader for ArbitrationTimeout asks the arbitrator
    /// whether this node may go on alone (the other replica is dead or cut off). Groups of three
    /// or more replicas need no arbitration: a majority survives.
    fn arbitrate_if_stalled(&mut self) {
        let voters = self.replica.conf_state().voters;
        let stalled = self.members.len() == 2 && voters.len() == 2 && self.replica.leader_id().is_none();
        // A node that lost its log (initial restart, damage) or is still installing a snapshot
        // may lack entries the group committed: going on alone would make its store the node
        // group's truth and then replace the other replica's rows with it. It waits for the
        // other replica instead; only a node holding its whole log may survive alone.
        if !stalled || !self.durability_caught_up() {
            self.stalled_since = None;
            return;
        }
        let now = Instant::now();
        let since = *self.stalled_since.get_or_insert(now);
        if now.duration_since(since) < self.settings.arbitration_timeout {
            return;
        }
        if self.arbitration_asked.is_some_and(|at| now.duration_since(at) < self.settings.arbitration_timeout) {
            return;
        }
        self.arbitration_asked = Some(now);
        let epoch = self.replica.conf_epoch();
        tracing::warn!(node = self.node_id, group = %self.group, epoch, "node group has no leader; asking the arbitrator to go on alone");
        (self.arbitrator)(epoch);
    }

    fn on_arbitrated(&mut self, epoch: u64, granted: bool) {
        if !granted {
            tracing::warn!(node = self.node_id, group = %self.group, epoch, "arbitration lost: another replica of this node group goes on");
            return;
        }
        let still_stalled = self.replica.leader_id().is_none() && self.replica.conf_state().voters.len() == 2;
        // The same guard as when asking (see `arbitrate_if_stalled`): the answer may arrive
        // after this node started to copy from its replica.
        if !still_stalled || self.replica.conf_epoch() != epoch || !self.durability_caught_up() {
            return;
        }
        tracing::warn!(node = self.node_id, group = %self.group, epoch, "arbitration won: going on as the node group's only voter");
        if let Err(e) = self.replica.force_voters(&[self.node_id as u64]) {
            tracing::error!(error = %e, "could not take over the node group alone");
            return;
        }
        if let Err(e) = self.replica.campaign() {
            tracing::error!(error = %e, "could not start an election after arbitration");
        }
        self.stalled_since = None;
    }

    /// A leader that is its group's only voter (after arbitration) takes the configured peer
    /// back: first as a learner, which catches up from the log, then as a voter once it has.
    fn take_peer_back(&mut self) {
        if !self.serving() || self.members.len() != 2 {
            return;
        }
        let conf = self.replica.conf_state();
        if conf.voters.len() != 1 || !conf.voters_outgoing.is_empty() {
            return;
        }
        let Some(peer) = self.members.iter().copied().find(|m| *m != self.node_id as u64) else { return };
        let now = Instant::now();
        if self.rejoin_proposed.is_some_and(|at| now.duration_since(at) < Duration::from_secs(1)) {
            return;
        }
        use cairn_replication::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2};
        let kind = if !conf.learners.contains(&peer) {
            ConfChangeType::AddLearnerNode
        } else if self.replica.peer_matched(peer).is_some_and(|m| m >= self.replica.commit_index()) {
            ConfChangeType::AddNode
        } else {
            return; // still catching up
        };
        let mut single = ConfChangeSingle::default();
        single.set_change_type(kind);
        single.node_id = peer;
        let mut change = ConfChangeV2::default();
        change.mut_changes().push(single);
        if self.replica.propose_conf_change(change).is_ok() {
            tracing::info!(node = self.node_id, peer, ?kind, "taking the node group's other replica back");
            self.rejoin_proposed = Some(now);
        }
    }

    /// Lets connection tasks answer plain reads while the lease holds (see [`SharedReads`]),
    /// ending one tick early for safety.
    fn publish_lease(&mut self) {
        let until = if self.serving() {
            self.replica
                .lease_remaining_ticks()
                .filter(|ticks| *ticks > 1)
                .map(|ticks| Instant::now() + self.settings.tick * (ticks as u32 - 1))
        } else {
            None
        };
        self.shared.publish_lease(until);
    }

    fn request(&mut self, request: Request) {
        self.attempt(request, None);
    }

    /// Runs a request; `deadline` is set for a retry of a request that waited for a lock.
    fn attempt(&mut self, request: Request, deadline: Option<Instant>) {
        if !self.serving() {
            let error = self.not_leader();
            request.fail(error);
            return;
        }
        for table in request.tables() {
            match check_table(&self.catalog, table) {
                TableCheck::Ready => {}
                TableCheck::Behind => {
                    self.parked.push_back((Instant::now() + CATALOG_WAIT, request));
                    return;
                }
                TableCheck::Mismatch(error) => {
                    request.fail(error);
                    return;
                }
            }
        }
        let Some(request) = self.hold_for_backup(request) else { return };
        match request {
            Request::Read { .. } | Request::TxnRead { .. } if deadline.is_none() => self.reads_this_round.push(request),
            Request::Read { op, reply } => self.serve_read(Request::Read { op, reply }, deadline),
            Request::TxnRead { step, lock, op, reply } => {
                self.serve_read(Request::TxnRead { step, lock, op, reply }, deadline)
            }
            Request::Write { ops, reply } => self.write(None, ops, reply, deadline),
            Request::TxnWrite { step, ops, reply } => self.write(Some(step), ops, reply, deadline),
            Request::Txn { txn, control, reply } => self.control(txn, control, reply),
        }
    }

    fn park_for_lock(&mut self, request: Request, deadline: Option<Instant>) {
        let deadline = deadline.unwrap_or_else(|| Instant::now() + self.settings.lock_wait);
        self.lock_waits.push_back((deadline, request));
    }

    fn write(&mut self, step: Option<TxnStep>, ops: Vec<WriteOp>, reply: Reply, deadline: Option<Instant>) {
        let term = self.replica.term();
        let attempt = {
            let store = self.shared.store.read().unwrap_or_else(|e| e.into_inner());
            self.txns.write(step, term, &store, &self.pending, &self.catalog, &ops, &self.limits)
        };
        match attempt {
            Err(e) => {
                reply.send(Err(DataError::Failed(e)));
            }
            Ok(WriteAttempt::Done(outcome)) => {
                reply.send(Ok(DataReply::Write(outcome)));
            }
            Ok(WriteAttempt::Wait { .. }) => {
                let request = match step {
                    Some(step) => Request::TxnWrite { step, ops, reply },
                    None => Request::Write { ops, reply },
                };
                self.park_for_lock(request, deadline);
            }
            Ok(WriteAttempt::Propose(write_set, outcome)) => {
                if write_set.is_empty() {
                    reply.send(Ok(DataReply::Write(outcome)));
                    return;
                }
                let entry = LogEntry::Write { txn: None, write_set };
                if let Some(id) = self.propose(&entry, Waiter::Write(reply, outcome)) {
                    let LogEntry::Write { write_set, .. } = &entry else { unreachable!("built above") };
                    if let Err(e) = self.pending.add(id.index, write_set, &self.catalog) {
                        tracing::error!(error = %e, "could not record a proposed write set in the overlay");
                    }
                }
            }
        }
    }

    /// Proposes an entry; the waiter is answered when it applies (or fails now). Returns its id.
    fn propose(&mut self, entry: &LogEntry, waiter: Waiter) -> Option<ProposalId> {
        let error = match self.replica.propose(entry.encode()) {
            Ok(id) => {
                self.waiting.insert(id, waiter);
                return Some(id);
            }
            Err(ProposeError::NotLeader { .. }) | Err(ProposeError::LeaderNotReady) => self.not_leader(),
            Err(e) => DataError::Unavailable(format!("proposal refused: {e}")),
        };
        match waiter {
            Waiter::Write(reply, _) | Waiter::Txn(Some(reply)) => {
                reply.send(Err(error));
            }
            Waiter::Txn(None) => {}
        }
        None
    }

    fn control(&mut self, txn: TxnId, control: TxnControl, reply: Reply) {
        let term = self.replica.term();
        match control {
            TxnControl::CommitOnePhase => match self.txns.commit_one_phase(txn, term) {
                Ok(Some(entry)) => {
                    self.propose(&entry, Waiter::Txn(Some(reply)));
                }
                Ok(None) => {
                    self.locks_released = true;
                    reply.send(Ok(DataReply::Txn(TxnOutcome::Committed)));
                }
                Err(e) => {
                    reply.send(Err(DataError::Failed(e)));
                }
            },
            TxnControl::Prepare { participants, decision_group } => {
                match self.txns.prepare(txn, term, participants, decision_group) {
                    Ok(entry) => {
                        self.propose(&entry, Waiter::Txn(Some(reply)));
                    }
                    Err(e) => {
                        reply.send(Err(DataError::Failed(e)));
                    }
                }
            }
            TxnControl::Decide { commit } => self.decide(txn, Some(commit), Some(reply)),
            TxnControl::Resolve => self.decide(txn, None, Some(reply)),
            TxnControl::Rollback => {
                if self.txns.rollback(txn) {
                    self.locks_released = true;
                }
                reply.send(Ok(DataReply::Txn(TxnOutcome::Aborted)));
            }
            TxnControl::RollbackTo { seq } => {
                let result = self.txns.rollback_to(txn, seq, &self.catalog);
                reply.send(result.map(|()| DataReply::Txn(TxnOutcome::Done)).map_err(DataError::Failed));
            }
        }
    }

    /// Decides a transaction here: answers at once if decided, else logs the decision.
    fn decide(&mut self, txn: TxnId, commit: Option<bool>, reply: Option<Reply>) {
        match self.txns.decide(txn, commit) {
            ControlAttempt::Answer(outcome) => {
                if let Some(reply) = reply {
                    reply.send(Ok(DataReply::Txn(outcome)));
                }
            }
            ControlAttempt::Propose(entry, _) => {
                self.propose(&entry, Waiter::Txn(reply));
            }
        }
    }

    /// All reads that arrived this round share one leadership confirmation.
    fn start_read_batch(&mut self) {
        if self.reads_this_round.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.reads_this_round);
        let id = self.next_read_batch;
        self.next_read_batch += 1;
        match self.replica.read_index(id.to_le_bytes().to_vec()) {
            Ok(()) => {
                self.read_batches.insert(id, batch);
            }
            Err(_) => {
                let error = self.not_leader();
                for request in batch {
                    request.fail(error.clone());
                }
            }
        }
    }

    fn serve_ready_reads(&mut self) {
        let mut still_waiting = Vec::new();
        for (index, batch) in std::mem::take(&mut self.reads_ready) {
            if self.store_applied < index || !self.apply_queue.is_empty() {
                still_waiting.push((index, batch));
                continue;
            }
            for request in batch {
                self.serve_read(request, None);
            }
        }
        self.reads_ready = still_waiting;
    }

    /// Answers a read whose leadership is confirmed (or a retried locking read).
    fn serve_read(&mut self, request: Request, deadline: Option<Instant>) {
        match request {
            Request::Read { op, reply } => {
                let result = {
                    let store = self.shared.store.read().unwrap_or_else(|e| e.into_inner());
                    store.read(&op, &self.catalog).map(DataReply::Read).map_err(DataError::Failed)
                };
                reply.send(result);
            }
            Request::TxnRead { step, lock, op, reply } => {
                let term = self.replica.term();
                let attempt = {
                    let store = self.shared.store.read().unwrap_or_else(|e| e.into_inner());
                    self.txns.read(Some(step), term, lock, &op, &store, &self.catalog)
                };
                match attempt {
                    Ok(ReadAttempt::Done(result)) => {
                        reply.send(Ok(DataReply::Read(result)));
                    }
                    Ok(ReadAttempt::Wait { .. }) => self.park_for_lock(Request::TxnRead { step, lock, op, reply }, deadline),
                    Err(e) => {
                        reply.send(Err(DataError::Failed(e)));
                    }
                }
            }
            other => other.fail(DataError::Unavailable("not a read".into())),
        }
    }

    /// Tries every request waiting for a lock again, in arrival order.
    fn retry_lock_waits(&mut self) {
        let waits: Vec<_> = self.lock_waits.drain(..).collect();
        for (deadline, request) in waits {
            self.attempt(request, Some(deadline));
        }
    }

    /// Fails lock waits past their deadline with 1205 and aborts their transactions here.
    fn expire_lock_waits(&mut self) {
        let now = Instant::now();
        let mut kept = VecDeque::with_capacity(self.lock_waits.len());
        for (deadline, request) in std::mem::take(&mut self.lock_waits) {
            if deadline > now {
                kept.push_back((deadline, request));
                continue;
            }
            if let Some(txn) = request.txn() {
                if self.txns.rollback(txn) {
                    self.locks_released = true;
                }
            }
            request.fail(lock_wait_timeout());
        }
        self.lock_waits = kept;
    }

    fn expire_parked(&mut self) {
        let now = Instant::now();
        while self.parked.front().is_some_and(|(deadline, _)| *deadline <= now) {
            if let Some((_, request)) = self.parked.pop_front() {
                request.fail(DataError::Unavailable("this data node has not received the table's definition yet".into()));
            }
        }
    }

    /// Prepared transactions whose coordinator went silent are resolved through their decision
    /// group: directly if it is this group (presumed abort), else by asking it.
    fn resolve_stale_prepared(&mut self) {
        if !self.serving() {
            return;
        }
        let now = Instant::now();
        let prepared: Vec<(TxnId, NodeGroupId)> =
            self.txns.prepared().iter().map(|(id, p)| (*id, p.decision_group)).collect();
        self.prepared_seen.retain(|id, _| prepared.iter().any(|(p, _)| p == id));
        for (txn, decision_group) in prepared {
            let (seen, asked) = *self.prepared_seen.entry(txn).or_insert((now, false));
            if asked || now.duration_since(seen) < RESOLVE_AFTER {
                continue;
            }
            self.prepared_seen.insert(txn, (now, true));
            tracing::info!(node = self.node_id, %txn, decision_group = %decision_group, "resolving a prepared transaction whose coordinator went silent");
            if decision_group == self.group {
                self.decide(txn, None, None);
            } else {
                (self.resolver)(decision_group, txn);
            }
        }
        // Ask again later if an answer got lost.
        for (seen, asked) in self.prepared_seen.values_mut() {
            if *asked && now.duration_since(*seen) > RESOLVE_AFTER * 2 {
                *asked = false;
                *seen = now - RESOLVE_AFTER;
            }
        }
    }

    fn send(peers: &HashMap<u64, PeerSender>, to: u64, messages: Vec<Message>) {
        if let Some(peer) = peers.get(&to) {
            for m in messages {
                let _ = peer.try_send(m);
            }
        }
    }

    fn process_ready(&mut self) -> anyhow::Result<()> {
        while self.replica.has_ready() {
            let peers = &self.peers;
            let mut snapshots_sent = Vec::new();
            let (in_progress, early) = self
                .replica
                .begin_ready(|outbox| {
                    note_snapshots(&outbox.messages, outbox.to, &mut snapshots_sent);
                    Self::send(peers, outbox.to, outbox.messages)
                })
                .map_err(|e| anyhow::anyhow!("the Raft log of node group {} failed: {e}", self.group))?;
            // Entries committed before this Ready's log write are applied, and their writers
            // answered, before that write: they are on a majority's disks already, and waiting
            // would add the new entries' fsync to their latency.
            self.apply_queue.extend(early.committed);
            self.drain_apply_queue()?;
            self.drop_proposals(early.dropped_proposals);
            // Their answers leave now, not after the log write below.
            answers::flush();
            let output = self
                .replica
                .finish_ready(in_progress)
                .map_err(|e| anyhow::anyhow!("the Raft log of node group {} failed: {e}", self.group))?;
            for outbox in output.messages {
                note_snapshots(&outbox.messages, outbox.to, &mut snapshots_sent);
                Self::send(&self.peers, outbox.to, outbox.messages);
            }
            self.snapshots_sent(snapshots_sent);
            if let Some(snapshot) = &output.snapshot {
                self.install_snapshot(snapshot)?;
            }
            self.apply_queue.extend(output.committed);
            self.drain_apply_queue()?;
            for read in output.read_states {
                let Ok(bytes) = <[u8; 8]>::try_from(read.context.as_slice()) else { continue };
                if let Some(batch) = self.read_batches.remove(&u64::from_le_bytes(bytes)) {
                    self.reads_ready.push((read.index, batch));
                }
            }
            self.drop_proposals(output.dropped_proposals);
            for id in output.unknown_proposals {
                self.pending.applied(id.index);
                self.fail_waiter(
                    id,
                    DataError::Unavailable("leadership changed while the write was in flight; it may or may not have been applied".into()),
                );
            }
            for change in output.leadership {
                match change {
                    LeadershipChange::BecameLeader { term } => {
                        tracing::info!(node = self.node_id, group = %self.group, term, "became the primary replica");
                    }
                    LeadershipChange::LostLeadership { term } => {
                        tracing::info!(node = self.node_id, group = %self.group, term, "lost the primary role");
                        self.pending.clear();
                        self.drops_proposed.clear();
                        self.txns.lost_leadership();
                        self.txn_term = None;
                        let error = self.not_leader();
                        let mut doomed: Vec<Request> = Vec::new();
                        for (_, batch) in self.read_batches.drain().chain(self.reads_ready.drain(..)) {
                            doomed.extend(batch);
                        }
                        doomed.extend(self.lock_waits.drain(..).map(|(_, r)| r));
                        for request in doomed {
                            request.fail(error.clone());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Another leader's entries took these indexes: our proposals there were never committed.
    fn drop_proposals(&mut self, dropped: Vec<ProposalId>) {
        for id in dropped {
            self.pending.applied(id.index);
            let error = self.not_leader();
            self.fail_waiter(id, error);
        }
    }

    fn fail_waiter(&mut self, id: ProposalId, error: DataError) {
        match self.waiting.remove(&id) {
            Some(Waiter::Write(reply, _)) | Some(Waiter::Txn(Some(reply))) => {
                reply.send(Err(error));
            }
            _ => {}
        }
    }

    /// The write set an entry carries for the store now (Prepare entries carry one that applies
    /// later, at its decision).
    fn entry_write_set(entry: &mut LogEntry) -> Option<&mut WriteSet> {
        match entry {
            LogEntry::Write { write_set, .. } | LogEntry::Prepare { write_set, .. } => Some(write_set),
            LogEntry::Decide { .. } => None,
        }
    }

    /// Applies committed entries in order, stopping at one that names a table the catalog does
    /// not have yet (the push is on its way); a table id below the catalog's next id that is
    /// missing was dropped, and its changes are skipped.
    fn drain_apply_queue(&mut self) -> anyhow::Result<()> {
        while let Some(front) = self.apply_queue.front() {
            // Control entries (backup markers) are not log entries of the store; `Bytes` clones
            // share their buffer.
            let data = match &front.payload {
                EntryPayload::Data(data) => Some(data.clone()),
                _ => None,
            };
            let (index, term) = (front.index, front.term);
            if let Some(data) = data
                && self.apply_control_entry(index, &data)
            {
                self.apply_queue.pop_front();
                self.store_applied = index;
                self.note_applied(term);
                continue;
            }
            let Some(entry) = self.apply_queue.front() else { break };
            let entry_bytes = match &entry.payload {
                EntryPayload::Data(data) => data.len(),
                _ => 0,
            };
            let decoded = match &entry.payload {
                EntryPayload::Data(data) => Some(
                    LogEntry::decode(data).map_err(|e| anyhow::anyhow!("committed entry {} is undecodable: {e}", entry.index))?,
                ),
                _ => None,
            };
            if let Some(ws) = decoded.as_ref().and_then(|e| match e {
                LogEntry::Write { write_set, .. } | LogEntry::Prepare { write_set, .. } => Some(write_set),
                LogEntry::Decide { .. } => None,
            }) {
                if self.waits_for_catalog(ws) {
                    return Ok(());
                }
            }
            let Some(entry) = self.apply_queue.pop_front() else { break };
            if let Some(mut log_entry) = decoded {
                if let Some(ws) = Self::entry_write_set(&mut log_entry) {
                    self.keep_existing_tables(ws);
                }
                let applied = self
                    .apply_committed(&log_entry, entry.index, entry_bytes)
                    .map_err(|e| anyhow::anyhow!("applying committed entry {} failed: {e}", entry.index))?;
                if applied.released {
                    self.locks_released = true;
                }
                self.pending.applied(entry.index);
                let id = ProposalId { index: entry.index, term: entry.term };
                match self.waiting.remove(&id) {
                    Some(Waiter::Write(reply, outcome)) => {
                        reply.send(Ok(DataReply::Write(outcome)));
                    }
                    Some(Waiter::Txn(Some(reply))) => {
                        let outcome = applied.txn.map_or(TxnOutcome::Done, |(_, o)| o);
                        reply.send(Ok(DataReply::Txn(outcome)));
                    }
                    _ => {}
                }
            }
            self.store_applied = entry.index;
            self.note_applied(entry.term);
        }
        Ok(())
    }

    fn change_table(change: &RowChange) -> TableId {
        match change {
            RowChange::Put { table, .. }
            | RowChange::Delete { table, .. }
            | RowChange::Truncate { table }
            | RowChange::DropTable { table }
            | RowChange::AutoIncrement { table, .. } => *table,
        }
    }

    fn waits_for_catalog(&self, ws: &WriteSet) -> bool {
        ws.changes.iter().any(|c| {
            let table = Self::change_table(c);
            self.catalog.table(table).is_none() && table.0 >= self.catalog.next_table_id
        })
    }

    fn keep_existing_tables(&self, ws: &mut WriteSet) {
        ws.changes.retain(|c| matches!(c, RowChange::DropTable { .. }) || self.catalog.table(Self::change_table(c)).is_some());
    }

    /// The leader frees the rows of tables the catalog no longer has, through the log so that
    /// every replica does the same.
    fn free_dropped_tables(&mut self) {
        if !self.serving() {
            return;
        }
        let tables = self.shared.store.read().unwrap_or_else(|e| e.into_inner()).tables();
        let doomed: Vec<TableId> = tables
            .into_iter()
            .filter(|t| self.catalog.table(*t).is_none() && t.0 < self.catalog.next_table_id)
            .filter(|t| !self.drops_proposed.contains(t))
            .collect();
        if doomed.is_empty() {
            return;
        }
        let write_set = WriteSet { changes: doomed.iter().map(|t| RowChange::DropTable { table: *t }).collect() };
        let entry = LogEntry::Write { txn: None, write_set };
        if self.replica.propose(entry.encode()).is_ok() {
            tracing::info!(node = self.node_id, tables = ?doomed, "freeing the rows of dropped tables");
            self.drops_proposed.extend(doomed);
        }
    }

    fn status(&mut self) -> NodeStatus {
        let shared = self.shared.clone();
        let store = shared.store.read().unwrap_or_else(|e| e.into_inner());
        let mut rows = 0;
        let tables = store
            .tables()
            .into_iter()
            .filter_map(|id| {
                let def = self.catalog.table(id)?;
                let counts = store.count(def);
                let table_rows: u64 = counts.iter().map(|(_, n)| n).sum();
                rows += table_rows;
                Some(TableRows { table_id: id.0, rows: table_rows, partitions: counts.len() as u32 })
            })
            .collect();
        let mut status = NodeStatus {
            node_id: self.node_id,
            phase: if self.started { "started" } else { "starting" }.into(),
            node_group: self.group.0,
            is_leader: self.replica.is_leader(),
            term: self.replica.term(),
            applied_index: self.store_applied,
            data_memory_used: store.memory_used(),
            data_memory_total: self.settings.data_memory,
            leader_id: self.replica.leader_id().unwrap_or(0) as u32,
            rows,
            tables,
            software_version: cairn_mgmd::admin::SOFTWARE_VERSION.into(),
            ..Default::default()
        };
        drop(store);
        self.durability_status(&mut status);
        status
    }
}

/// Collects the followers this round's messages send a Raft snapshot to.
fn note_snapshots(messages: &[Message], to: u64, sent: &mut Vec<u64>) {
    if messages.iter().any(|m| m.get_msg_type() == cairn_replication::eraftpb::MessageType::MsgSnapshot) {
        sent.push(to);
    }
}
