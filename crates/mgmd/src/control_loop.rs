//! The control loop: one thread that owns the management Raft replica and the control state.
//!
//! Everything that changes replicated state goes through its inbox (Raft messages from peer
//! management nodes, proposals from connection tasks); it ticks Raft on a timer, persists each
//! Ready with one fsync, sends Raft messages, applies committed commands and publishes the new
//! catalog on a watch channel that connection tasks push to every node.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cairn_common::catalog::{Catalog, CatalogOp, CatalogOutcome};
use cairn_common::ids::NodeGroupId;
use cairn_common::{Error, Result};
use cairn_control::state::{ControlCommand, ControlOutcome, ControlState, root_account_ops};
use cairn_replication::eraftpb::Message;
use cairn_replication::wal::FileLogStore;
use cairn_replication::{EntryPayload, LeadershipChange, ProposalId, ProposeError, Replica};
use tokio::sync::{oneshot, watch};

/// Most events handled before the loop looks at Raft again, so a flood of requests cannot
/// starve ticks and persistence.
const MAX_EVENTS_PER_ROUND: usize = 1024;

pub enum ControlEvent {
    Raft(Message),
    Propose { command: ControlCommand, reply: oneshot::Sender<Result<(ControlOutcome, u64)>> },
    Shutdown,
}

/// Where the loop sends Raft messages for a peer management node.
pub type PeerSender = tokio::sync::mpsc::Sender<Message>;

/// The handle connection tasks use.
#[derive(Clone)]
pub struct ControlHandle {
    inbox: mpsc::Sender<ControlEvent>,
    pub catalog: watch::Receiver<Arc<Catalog>>,
    /// The current Raft leader among management nodes (0 = unknown).
    pub leader: Arc<AtomicU32>,
}

impl ControlHandle {
    pub fn send(&self, event: ControlEvent) -> bool {
        self.inbox.send(event).is_ok()
    }

    /// Proposes a catalog change and waits until it is applied here; returns the outcome and
    /// the catalog version that includes it.
    pub async fn propose(&self, op: CatalogOp, timeout: Duration) -> Result<(CatalogOutcome, u64)> {
        match self.propose_command(ControlCommand::Catalog(op), timeout).await? {
            (ControlOutcome::Catalog(outcome), version) => Ok((outcome, version)),
            _ => Err(Error::internal("a catalog change had another kind of outcome")),
        }
    }

    /// Proposes any control command and waits until it is applied here.
    pub async fn propose_command(&self, command: ControlCommand, timeout: Duration) -> Result<(ControlOutcome, u64)> {
        let (reply, rx) = oneshot::channel();
        if !self.send(ControlEvent::Propose { command, reply }) {
            return Err(Error::temporary("the management node is shutting down"));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::temporary("the management node dropped the request")),
            Err(_) => Err(Error::temporary("the management nodes did not commit the change in time (no quorum?)")),
        }
    }

    pub fn leader_id(&self) -> u32 {
        self.leader.load(Ordering::Relaxed)
    }
}

pub struct ControlLoop {
    replica: Replica<FileLogStore>,
    state: ControlState,
    node_groups: Vec<NodeGroupId>,
    root_password: Option<String>,
    inbox: mpsc::Receiver<ControlEvent>,
    peers: HashMap<u64, PeerSender>,
    catalog_tx: watch::Sender<Arc<Catalog>>,
    leader: Arc<AtomicU32>,
    waiting: HashMap<ProposalId, oneshot::Sender<Result<(ControlOutcome, u64)>>>,
    bootstrap_proposed: bool,
    tick: Duration,
}

impl ControlLoop {
    pub fn new(
        replica: Replica<FileLogStore>,
        node_groups: Vec<NodeGroupId>,
        root_password: Option<String>,
        peers: HashMap<u64, PeerSender>,
        tick: Duration,
    ) -> (ControlLoop, ControlHandle) {
        let (inbox_tx, inbox) = mpsc::channel();
        let state = ControlState::new();
        let (catalog_tx, catalog_rx) = watch::channel(Arc::new(state.catalog.clone()));
        let leader = Arc::new(AtomicU32::new(0));
        let handle = ControlHandle { inbox: inbox_tx, catalog: catalog_rx, leader: leader.clone() };
        let control = ControlLoop {
            replica,
            state,
            node_groups,
            root_password,
            inbox,
            peers,
            catalog_tx,
            leader,
            waiting: HashMap::new(),
            bootstrap_proposed: false,
            tick,
        };
        (control, handle)
    }

    /// Runs until shutdown or a fatal storage error (which ends the process: a management node
    /// that cannot persist must not go on voting).
    pub fn run(mut self) -> anyhow::Result<()> {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let now = Instant::now();
            let wait = next_tick.saturating_duration_since(now);
            match self.inbox.recv_timeout(wait) {
                Ok(event) => {
                    if !self.handle(event) {
                        return Ok(());
                    }
                    for _ in 0..MAX_EVENTS_PER_ROUND {
                        match self.inbox.try_recv() {
                            Ok(event) => {
                                if !self.handle(event) {
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
            }
            self.process_ready()?;
            self.maybe_bootstrap();
        }
    }

    fn handle(&mut self, event: ControlEvent) -> bool {
        match event {
            ControlEvent::Raft(message) => {
                if let Err(e) = self.replica.step(message) {
                    tracing::warn!(error = %e, "dropped a raft message");
                }
            }
            ControlEvent::Propose { command, reply } => match self.replica.propose(command.encode()) {
                Ok(id) => {
                    self.waiting.insert(id, reply);
                }
                Err(ProposeError::NotLeader { leader_hint }) => {
                    let hint = leader_hint.map_or("unknown".to_string(), |l| l.to_string());
                    let _ = reply.send(Err(Error::temporary(format!(
                        "this management node is not the leader (leader: {hint}); retry"
                    ))));
                }
                Err(e) => {
                    let _ = reply.send(Err(Error::temporary(format!("management proposal failed: {e}"))));
                }
            },
            ControlEvent::Shutdown => return false,
        }
        true
    }

    fn send_messages(peers: &HashMap<u64, PeerSender>, to: u64, messages: Vec<Message>) {
        if let Some(peer) = peers.get(&to) {
            for m in messages {
                // A full queue drops the message; Raft retransmits.
                let _ = peer.try_send(m);
            }
        }
    }

    fn process_ready(&mut self) -> anyhow::Result<()> {
        while self.replica.has_ready() {
            let peers = &self.peers;
            let output = self
                .replica
                .handle_ready_with(|outbox| Self::send_messages(peers, outbox.to, outbox.messages))
                .map_err(|e| anyhow::anyhow!("control-plane raft log failed: {e}"))?;
            for outbox in output.messages {
                Self::send_messages(&self.peers, outbox.to, outbox.messages);
            }
            let mut catalog_changed = false;
            for entry in output.committed {
                let EntryPayload::Data(data) = entry.payload else { continue };
                let id = ProposalId { index: entry.index, term: entry.term };
                let before = self.state.catalog.version;
                let result = match ControlCommand::decode(&data) {
                    Ok(command) => self.state.apply(entry.index, command, &self.node_groups),
                    Err(e) => Some(Err(e)),
                };
                let version = self.state.catalog.version;
                if let Some(result) = result {
                    // Only a new version is pushed: ops that change nothing (IF NOT EXISTS
                    // matches, catalog barriers) cost no push to every node.
                    catalog_changed |= version != before;
                    if let Some(reply) = self.waiting.remove(&id) {
                        let _ = reply.send(result.map(|outcome| (outcome, version)));
                    }
                }
            }
            for id in output.dropped_proposals.into_iter().chain(output.unknown_proposals) {
                if let Some(reply) = self.waiting.remove(&id) {
                    let _ = reply.send(Err(Error::temporary("the management leader changed; retry")));
                }
            }
            for change in output.leadership {
                match change {
                    LeadershipChange::BecameLeader { term } => tracing::info!(term, "became management leader"),
                    LeadershipChange::LostLeadership { term } => {
                        tracing::info!(term, "lost management leadership");
                        self.bootstrap_proposed = false;
                    }
                }
            }
            if catalog_changed {
                let _ = self.catalog_tx.send(Arc::new(self.state.catalog.clone()));
            }
        }
        self.leader.store(self.replica.leader_id().unwrap_or(0) as u32, Ordering::Relaxed);
        Ok(())
    }

    /// The first leader of a new cluster creates the root account the config asks for.
    fn maybe_bootstrap(&mut self) {
        if self.bootstrap_proposed || !self.replica.is_ready_leader() || !self.state.catalog.accounts.is_empty() {
            return;
        }
        let ops = root_account_ops(self.root_password.as_deref());
        let command = ControlCommand::Catalog(CatalogOp::Accounts(ops));
        match self.replica.propose(command.encode()) {
            Ok(_) => self.bootstrap_proposed = true,
            Err(e) => tracing::debug!(error = %e, "bootstrap proposal deferred"),
        }
    }
}
