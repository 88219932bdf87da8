//! The node-group loop: one thread per data node that owns this node's Raft replica of its node
//! group, the in-memory store, and the leader's overlay of proposed-but-unapplied writes.
//!
//! Being one thread is what makes a leader's evaluation of a write and its proposal atomic with
//! respect to every other write: the loop is the row lock. Everything else talks to it through
//! its inbox. Each round it takes every queued event (so many requests share one Raft Ready and
//! one fsync: group commit), ticks Raft on time, persists, sends, applies, and answers.
//!
//! Checkpoints, snapshots, log truncation, `DiskSync = Interval` flushes and backups live in
//! [`durability`], called from a few hooks here.

mod durability;

pub use durability::{DurabilityEvent, DurabilitySetup};

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cairn_common::catalog::Catalog;
use cairn_common::ids::{NodeGroupId, TableId};
use cairn_common::ops::{ReadOp, RowChange, TableRef, WriteOp, WriteSet};
use cairn_common::{Error, ErrorKind};
use cairn_proto::data::{DataError, DataReply, DataResponseBody};
use cairn_proto::pb::{NodeStatus, TableRows};
use cairn_replication::eraftpb::Message;
use cairn_replication::wal::FileLogStore;
use cairn_replication::{CommittedEntry, EntryPayload, LeadershipChange, ProposalId, ProposeError, Replica};
use cairn_storage::{Limits, Pending, Store, evaluate};
use tokio::sync::oneshot;

const MAX_EVENTS_PER_ROUND: usize = 4096;
/// How long a request for a table this node does not know yet waits for the catalog push.
const CATALOG_WAIT: Duration = Duration::from_secs(5);

pub type Reply = oneshot::Sender<DataResponseBody>;

pub enum Event {
    Raft(Message),
    Read { op: ReadOp, reply: Reply },
    Write { ops: Vec<WriteOp>, reply: Reply },
    /// A read from this replica's applied state, leader or not (see `DataRequestBody::LocalRead`).
    LocalRead { op: ReadOp, reply: Reply },
    Catalog(Arc<Catalog>),
    Status(oneshot::Sender<NodeStatus>),
    /// Checkpoint, snapshot and backup work finished off the loop thread, or a backup request.
    Durability(DurabilityEvent),
    Shutdown,
}

/// Where Raft messages for a peer go (the peer's outbound link task).
pub type PeerSender = tokio::sync::mpsc::Sender<Message>;

enum Request {
    Read { op: ReadOp, reply: Reply },
    Write { ops: Vec<WriteOp>, reply: Reply },
}

impl Request {
    fn tables(&self) -> Vec<TableRef> {
        match self {
            Request::Read { op, .. } => vec![read_table(op)],
            Request::Write { ops, .. } => ops.iter().map(write_table).collect(),
        }
    }

    fn fail(self, error: DataError) {
        let reply = match self {
            Request::Read { reply, .. } | Request::Write { reply, .. } => reply,
        };
        let _ = reply.send(Err(error));
    }
}

fn read_table(op: &ReadOp) -> TableRef {
    match op {
        ReadOp::Get { table, .. } | ReadOp::Scan { table, .. } | ReadOp::Count { table } => *table,
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

pub struct NodeGroupLoop {
    node_id: u32,
    group: NodeGroupId,
    replica: Replica<FileLogStore>,
    store: Store,
    pending: Pending,
    catalog: Arc<Catalog>,
    limits: Limits,
    data_memory: u64,
    inbox: mpsc::Receiver<Event>,
    peers: HashMap<u64, PeerSender>,
    tick: Duration,
    writes_waiting: HashMap<ProposalId, (Reply, cairn_common::ops::WriteOutcome)>,
    read_batches: HashMap<u64, Vec<(ReadOp, Reply)>>,
    /// Read batches confirmed by Raft, waiting for the store to reach their index.
    reads_ready: Vec<(u64, Vec<(ReadOp, Reply)>)>,
    next_read_batch: u64,
    reads_this_round: Vec<(ReadOp, Reply)>,
    /// Requests for tables newer than this node's catalog, until the push arrives.
    parked: VecDeque<(Instant, Request)>,
    /// Committed entries not yet applied because they name a table the catalog does not have yet.
    apply_queue: VecDeque<CommittedEntry>,
    /// Raft index of the last entry applied to the store.
    store_applied: u64,
    started: bool,
    /// Dropped tables whose rows this leader has proposed to free.
    drops_proposed: std::collections::HashSet<TableId>,
    durability: Option<durability::Durability>,
}

impl NodeGroupLoop {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node_id: u32,
        group: NodeGroupId,
        replica: Replica<FileLogStore>,
        catalog: Arc<Catalog>,
        data_memory: u64,
        peers: HashMap<u64, PeerSender>,
        tick: Duration,
    ) -> (NodeGroupLoop, mpsc::Sender<Event>) {
        let (tx, inbox) = mpsc::channel();
        let store_applied = replica.applied_index();
        let this = NodeGroupLoop {
            node_id,
            group,
            replica,
            store: Store::new(group),
            pending: Pending::new(),
            catalog,
            limits: Limits::new(data_memory),
            data_memory,
            inbox,
            peers,
            tick,
            writes_waiting: HashMap::new(),
            read_batches: HashMap::new(),
            reads_ready: Vec::new(),
            next_read_batch: 1,
            reads_this_round: Vec::new(),
            parked: VecDeque::new(),
            apply_queue: VecDeque::new(),
            store_applied,
            started: false,
            drops_proposed: Default::default(),
            durability: None,
        };
        (this, tx)
    }

    pub fn run(mut self) -> anyhow::Result<()> {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let wake = self.durability_wakeup().map_or(next_tick, |at| at.min(next_tick));
            let wait = wake.saturating_duration_since(Instant::now());
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
                next_tick += self.tick;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + self.tick;
                }
                self.expire_parked();
            }
            self.start_read_batch();
            self.free_dropped_tables();
            self.process_ready()?;
            self.serve_ready_reads();
            self.durability_round()?;
            if !self.started && self.replica.leader_id().is_some() && self.apply_queue.is_empty()
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
            Event::LocalRead { op, reply } => {
                let result = match check_table(&self.catalog, read_table(&op)) {
                    TableCheck::Ready => self.store.read(&op, &self.catalog).map(DataReply::Read).map_err(DataError::Failed),
                    TableCheck::Behind => Err(DataError::Unavailable("this replica's catalog is behind".into())),
                    TableCheck::Mismatch(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            Event::Catalog(catalog) => {
                if catalog.version >= self.catalog.version {
                    self.catalog = catalog;
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
        self.replica.is_ready_leader() && self.apply_queue.is_empty()
    }

    fn request(&mut self, request: Request) {
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
        match request {
            Request::Read { op, reply } => self.reads_this_round.push((op, reply)),
            Request::Write { ops, reply } => self.write(ops, reply),
        }
    }

    fn write(&mut self, ops: Vec<WriteOp>, reply: Reply) {
        let Some((ops, reply)) = self.hold_write(ops, reply) else { return };
        let (write_set, outcome) = match evaluate(&self.store, &self.pending, &self.catalog, &ops, &self.limits) {
            Ok(result) => result,
            Err(e) => {
                let _ = reply.send(Err(DataError::Failed(e)));
                return;
            }
        };
        if write_set.is_empty() {
            let _ = reply.send(Ok(DataReply::Write(outcome)));
            return;
        }
        match self.replica.propose(write_set.encode()) {
            Ok(id) => {
                if let Err(e) = self.pending.add(id.index, &write_set, &self.catalog) {
                    tracing::error!(error = %e, "could not record a proposed write set in the overlay");
                }
                self.writes_waiting.insert(id, (reply, outcome));
            }
            Err(ProposeError::NotLeader { .. }) | Err(ProposeError::LeaderNotReady) => {
                let _ = reply.send(Err(self.not_leader()));
            }
            Err(e) => {
                let _ = reply.send(Err(DataError::Unavailable(format!("proposal refused: {e}"))));
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
                for (_, reply) in batch {
                    let _ = reply.send(Err(error.clone()));
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
            for (op, reply) in batch {
                let result = self.store.read(&op, &self.catalog).map(DataReply::Read).map_err(DataError::Failed);
                let _ = reply.send(result);
            }
        }
        self.reads_ready = still_waiting;
    }

    fn expire_parked(&mut self) {
        let now = Instant::now();
        while self.parked.front().is_some_and(|(deadline, _)| *deadline <= now) {
            if let Some((_, request)) = self.parked.pop_front() {
                request.fail(DataError::Unavailable("this data node has not received the table's definition yet".into()));
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
            let output = self
                .replica
                .handle_ready_with(|outbox| {
                    note_snapshots(&outbox.messages, outbox.to, &mut snapshots_sent);
                    Self::send(peers, outbox.to, outbox.messages)
                })
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
            for id in output.dropped_proposals {
                self.pending.applied(id.index);
                if let Some((reply, _)) = self.writes_waiting.remove(&id) {
                    // Another leader's entry took this index: ours was never committed.
                    let _ = reply.send(Err(self.not_leader()));
                }
            }
            for id in output.unknown_proposals {
                self.pending.applied(id.index);
                if let Some((reply, _)) = self.writes_waiting.remove(&id) {
                    let _ = reply.send(Err(DataError::Unavailable(
                        "leadership changed while the write was in flight; it may or may not have been applied".into(),
                    )));
                }
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
                        let error = self.not_leader();
                        for (_, batch) in self.read_batches.drain().chain(self.reads_ready.drain(..)) {
                            for (_, reply) in batch {
                                let _ = reply.send(Err(error.clone()));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies committed entries in order, stopping at one that names a table the catalog does
    /// not have yet (the push is on its way); a table id below the catalog's next id that is
    /// missing was dropped, and its changes are skipped.
    fn drain_apply_queue(&mut self) -> anyhow::Result<()> {
        while let Some(front) = self.apply_queue.front() {
            // Control entries (backup markers) are not write sets; `Bytes` clones share.
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
            let write_set = match &entry.payload {
                EntryPayload::Data(data) => Some(
                    WriteSet::decode(data).map_err(|e| anyhow::anyhow!("committed entry {} is undecodable: {e}", entry.index))?,
                ),
                _ => None,
            };
            if let Some(ws) = &write_set {
                if self.waits_for_catalog(ws) {
                    return Ok(());
                }
            }
            let Some(entry) = self.apply_queue.pop_front() else { break };
            if let Some(ws) = write_set {
                let ws = self.without_dropped_tables(ws);
                self.apply_committed(&ws, entry_bytes)
                    .map_err(|e| anyhow::anyhow!("applying committed entry {} failed: {e}", entry.index))?;
                self.pending.applied(entry.index);
                let id = ProposalId { index: entry.index, term: entry.term };
                if let Some((reply, outcome)) = self.writes_waiting.remove(&id) {
                    let _ = reply.send(Ok(DataReply::Write(outcome)));
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

    fn without_dropped_tables(&self, mut ws: WriteSet) -> WriteSet {
        ws.changes.retain(|c| {
            matches!(c, RowChange::DropTable { .. }) || self.catalog.table(Self::change_table(c)).is_some()
        });
        ws
    }

    /// The leader frees the rows of tables the catalog no longer has, through the log so that
    /// every replica does the same.
    fn free_dropped_tables(&mut self) {
        if !self.serving() {
            return;
        }
        let doomed: Vec<TableId> = self
            .store
            .tables()
            .into_iter()
            .filter(|t| self.catalog.table(*t).is_none() && t.0 < self.catalog.next_table_id)
            .filter(|t| !self.drops_proposed.contains(t))
            .collect();
        if doomed.is_empty() {
            return;
        }
        let write_set = WriteSet { changes: doomed.iter().map(|t| RowChange::DropTable { table: *t }).collect() };
        if self.replica.propose(write_set.encode()).is_ok() {
            tracing::info!(node = self.node_id, tables = ?doomed, "freeing the rows of dropped tables");
            self.drops_proposed.extend(doomed);
        }
    }

    fn status(&mut self) -> NodeStatus {
        let mut rows = 0;
        let tables = self
            .store
            .tables()
            .into_iter()
            .filter_map(|id| {
                let def = self.catalog.table(id)?;
                let counts = self.store.count(def);
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
            data_memory_used: self.store.memory_used(),
            data_memory_total: self.data_memory,
            leader_id: self.replica.leader_id().unwrap_or(0) as u32,
            rows,
            tables,
            software_version: cairn_mgmd::admin::SOFTWARE_VERSION.into(),
            ..Default::default()
        };
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
