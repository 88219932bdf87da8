//! [`Replica`]: one member of one Raft group, driven without I/O.
//!
//! A replica wraps raft-rs's `RawNode` and a [`LogStore`]. The owner (a daemon shell or the
//! simulator) feeds it time ([`Replica::tick`]), messages from peers ([`Replica::step`]) and
//! requests ([`Replica::propose`], [`Replica::read_index`]), and after each batch of those
//! calls drains it with [`Replica::handle_ready`], which persists what Raft asks to persist
//! (one [`LogBatch`], one `fsync`) and returns a [`ReadyOutput`]: messages to send, committed
//! entries to apply, read states, leadership changes and proposal outcomes. The replica never
//! touches a socket, a thread or a clock; only its log store touches the disk.
//!
//! # The driving loop
//!
//! ```text
//! loop {
//!     replica.tick() every tick interval; replica.step(msg) for each message received;
//!     replica.propose(..) / read_index(..) for client requests;
//!     while replica.has_ready() {
//!         let out = replica.handle_ready()?;      // persisted and synced on return
//!         send out.messages;                      // any order across destinations
//!         restore out.snapshot if any, then apply out.committed in order;
//!         answer out.read_states once applied_index() >= their index;
//!     }
//! }
//! ```
//!
//! # Contracts
//!
//! - **Applying.** The replica counts the entries it returns in `committed` as applied
//!   ([`Replica::applied_index`] moves past them when `handle_ready` returns). The owner must
//!   apply them, in order, before it serves reads or calls `handle_ready` again. This fits
//!   Cairn's in-memory state machines, which apply synchronously.
//! - **Proposals.** [`Replica::propose`] returns a [`ProposalId`] (index, term). The proposal
//!   is *committed* when a committed entry with the same index and term comes out; it is
//!   *dropped* (will never commit) when the committed entry at that index has another term,
//!   and then it is listed in `dropped_proposals`. If a snapshot covers its index first, the
//!   outcome cannot be known and it is listed in `unknown_proposals`. Until then it is pending,
//!   even after this replica lost leadership: an entry of an old term that survives on a
//!   majority is still committed by the next leader. Seeing one's own entry overwritten in the
//!   local log is *not* proof it was dropped (another node holding it may become leader), so
//!   the replica does not report that. A shell that wants to fail fast on
//!   [`LeadershipChange::LostLeadership`] must treat its pending proposals as "outcome
//!   unknown", not as failed. Pending proposals do not survive a restart.
//! - **Ready to lead.** A new leader has not yet applied the entries of earlier terms that it
//!   commits with its first entry. [`Replica::is_ready_leader`] is true once it has applied an
//!   entry of its own term; before that it must not serve reads or evaluate writes.
//! - **Reads.** [`Replica::read_index`] yields a [`ReadReady`]; the read is served once
//!   `applied_index() >= index`. A ready leader answers at once while it holds a lease (a
//!   quorum echoed a heartbeat sent less than [`ReplicaConfig::lease_ticks`] ago), and
//!   otherwise after one heartbeat round that confirms its leadership (ReadIndex). The leader
//!   checks both itself, in `read.rs`: raft-rs 0.7's own lease option serves stale reads
//!   from a deposed leader for up to an election timeout. Followers forward the request to
//!   the leader. A request that is dropped (the leader is not ready, or leadership moves)
//!   never gets an answer, so the caller needs a timeout.
//! - **Membership.** Every member of a new group starts from the same membership, the voters
//!   in [`ReplicaConfig::voters`]; it is written to the log store before the first use. Later
//!   the stored membership wins over the configuration. Configuration changes
//!   (`ConfChangeV2`, joint consensus with automatic leave) are applied by the replica when
//!   they commit; the owner sees them as [`EntryPayload::ConfChange`].
//! - **Failures.** An error from `handle_ready` (the log store failed to persist) is fatal for
//!   the replica: it refuses all further work and the owner must restart it from its log.
//!
//! # Snapshots
//!
//! A [`SnapshotSource`] gives raft-rs a state-machine snapshot when a follower needs entries
//! that were compacted away ([`NoSnapshots`], the default, answers "temporarily unavailable"
//! and raft-rs retries later; that is safe as long as the owner compacts only entries that every
//! member already has). Data nodes offer their newest local checkpoint, whose data travels
//! outside Raft: the leader calls [`Replica::report_snapshot`] once the (small) snapshot message
//! left, and the follower steps it only when it holds the data. A follower that receives a
//! snapshot gets it in [`ReadyOutput::snapshot`], with its metadata already written to the log;
//! the owner restores its state machine from it before applying the committed entries of the
//! same output.
//!
//! # Messages
//!
//! The proposals made between two Readies go to each follower as one append message (raft-rs's
//! `batch_append`, capped at `max_size_per_msg` bytes per Ready), so a follower steps, persists
//! and answers once per leader round, not once per proposal. With
//! [`ReplicaConfig::defer_commit_broadcast`] a leader also stops sending an append of its own
//! for each advance of the commit index: the next append carries it, or a heartbeat the owner
//! asks for with [`Replica::send_commit`] once [`Replica::commit_unsent`] has been true for a
//! moment. Neither changes what a message means, only how many there are.
//!
//! Left out: proposal forwarding (followers refuse proposals with a leader hint), witnesses,
//! and asynchronous persistence (`advance_append_async`): the log write of a `Ready` blocks its
//! owner's thread, which only its already-committed entries may overtake
//! ([`Replica::begin_ready`]).

use std::cell::RefCell;
use std::collections::BTreeMap;

use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeSingle, ConfChangeV2, ConfState, Entry, EntryType, Message, MessageType,
    Snapshot,
};
use raft::{
    GetEntriesContext, RaftState, RawNode, ReadOnlyOption, StateRole, Storage, StorageError,
};

use crate::codec::{CodecError, decode_message};
use crate::logging::raft_logger;
use crate::read::{Answer, ReadTracker};
use crate::wal::{LogBatch, LogError, LogStore, StoredConfState};

/// Settings of one replica. [`ReplicaConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// The Raft group (for logs only).
    pub group_id: u64,
    /// This replica's node id; not 0.
    pub node_id: u64,
    /// The voters every member of a new group starts with (ignored once the log store holds a
    /// membership).
    pub voters: Vec<u64>,
    /// Learners (non-voting members) a new group starts with; usually empty.
    pub learners: Vec<u64>,
    /// Ticks without hearing from a leader before a follower campaigns (default 10).
    pub election_tick: usize,
    /// Ticks between leader heartbeats (default 2; must be below `election_tick`).
    pub heartbeat_tick: usize,
    /// The election timeout is drawn from `min_election_tick..max_election_tick`; 0 means
    /// raft-rs's default (`election_tick..2 * election_tick`). A simulator sets
    /// `max = min + 1` to make elections deterministic.
    pub min_election_tick: usize,
    /// See `min_election_tick`.
    pub max_election_tick: usize,
    /// The index the owner's state machine already holds (from a checkpoint); 0 for an empty
    /// state machine. Committed entries after it are delivered again after a restart.
    pub applied_index: u64,
    /// The most entry bytes in one append message (default 1 MiB).
    pub max_size_per_msg: u64,
    /// The most append messages in flight to one follower (default 256).
    pub max_inflight_msgs: usize,
    /// A leader refuses proposals while this many bytes are uncommitted (default 64 MiB).
    pub max_uncommitted_bytes: u64,
    /// The most entry bytes delivered by one `handle_ready` (default 64 MiB).
    pub max_committed_bytes_per_ready: u64,
    /// The largest encoded message [`Replica::step_bytes`] accepts (default 256 MiB).
    pub max_message_bytes: usize,
    /// How long (in the leader's ticks after sending a heartbeat that a quorum echoed) the
    /// leader answers reads without a round trip; at most `election_tick - 2`, 0 to always
    /// confirm with a heartbeat round (default 8).
    pub lease_ticks: usize,
    /// A leader whose commit index advances does not send it to the followers at once in an
    /// append of its own (raft-rs's `skip_bcast_commit`): it travels with the next append, or
    /// when the owner calls [`Replica::send_commit`], which it should do soon after
    /// [`Replica::commit_unsent`] turns true (default false: sent at once).
    pub defer_commit_broadcast: bool,
}

impl ReplicaConfig {
    /// Defaults for node `node_id` of a group whose initial voters are `voters`.
    pub fn new(group_id: u64, node_id: u64, voters: Vec<u64>) -> ReplicaConfig {
        ReplicaConfig {
            group_id,
            node_id,
            voters,
            learners: Vec::new(),
            election_tick: 10,
            heartbeat_tick: 2,
            min_election_tick: 0,
            max_election_tick: 0,
            applied_index: 0,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            max_uncommitted_bytes: 64 << 20,
            max_committed_bytes_per_ready: 64 << 20,
            max_message_bytes: 256 << 20,
            lease_ticks: 8,
            defer_commit_broadcast: false,
        }
    }
}

/// Provides state-machine snapshots to raft-rs (see the module documentation).
pub trait SnapshotSource: Send {
    /// A snapshot whose metadata index is at least `request_index` (with that index's term
    /// and membership, and the state machine image or a handle to it as data), for peer `to`;
    /// `None` while none is ready, and raft-rs will ask again later.
    fn snapshot(&self, request_index: u64, to: u64) -> Option<Snapshot>;
}

/// The snapshot source used until checkpoints exist: never has a snapshot.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSnapshots;

impl SnapshotSource for NoSnapshots {
    fn snapshot(&self, _request_index: u64, _to: u64) -> Option<Snapshot> {
        None
    }
}

/// Identifies a proposal: the log position the leader gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProposalId {
    /// Log index.
    pub index: u64,
    /// The leader's term when it was proposed.
    pub term: u64,
}

/// A committed log entry, to be applied by the owner.
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedEntry {
    /// Log index.
    pub index: u64,
    /// Term of the entry; with `index`, it matches a [`ProposalId`].
    pub term: u64,
    /// What to apply.
    pub payload: EntryPayload,
}

/// The content of a committed entry.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryPayload {
    /// An empty entry: a new leader's first entry of its term (or a configuration change that
    /// raft-rs refused at proposal time because another one was pending). Nothing to apply.
    Noop,
    /// Data proposed with [`Replica::propose`].
    Data(Bytes),
    /// A membership change, already applied to Raft by the replica. The empty change is the
    /// "leave the joint configuration" entry.
    ConfChange {
        /// The change as proposed (version-1 changes are converted).
        change: ConfChangeV2,
        /// What applying it did.
        outcome: ConfChangeOutcome,
    },
}

/// The result of applying a committed membership change.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfChangeOutcome {
    /// The membership after the change.
    Applied(ConfState),
    /// The change is replayed after a restart and the stored membership already includes it;
    /// [`Replica::conf_state`] is the current membership.
    AlreadyApplied,
    /// raft-rs refused the change, or the entry does not decode; the membership is unchanged.
    Refused(String),
}

/// A change of this replica's leadership, reported once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadershipChange {
    /// This replica became leader at `term`. It is not ready to serve until
    /// [`Replica::is_ready_leader`].
    BecameLeader {
        /// The new term.
        term: u64,
    },
    /// This replica stopped being the leader of `term`.
    LostLeadership {
        /// The term it led.
        term: u64,
    },
}

/// Messages for one destination, in the order raft-rs produced them.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    /// Destination node id.
    pub to: u64,
    /// The messages.
    pub messages: Vec<Message>,
}

/// A read request that can be served once the replica has applied `index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadReady {
    /// Serve the read once `applied_index() >= index`.
    pub index: u64,
    /// The context passed to [`Replica::read_index`].
    pub context: Vec<u8>,
}

/// A `Ready` between [`Replica::begin_ready`] and [`Replica::finish_ready`]: its committed entries
/// are handed out, its log write is still to do.
#[must_use = "a started Ready must be finished with Replica::finish_ready"]
pub struct ReadyInProgress {
    ready: Option<raft::Ready>,
    out: ReadyOutput,
}

/// What one [`Replica::handle_ready`] produced. Everything in it has been persisted (committed
/// entries on a majority of the replicas, this one included).
#[derive(Debug, Default)]
pub struct ReadyOutput {
    /// Messages to send, grouped by destination.
    pub messages: Vec<Outbox>,
    /// A snapshot from the leader: restore the state machine from it first.
    pub snapshot: Option<Snapshot>,
    /// Committed entries to apply, in order, after the snapshot if any.
    pub committed: Vec<CommittedEntry>,
    /// Read requests that became answerable (see [`ReadReady`]).
    pub read_states: Vec<ReadReady>,
    /// Leadership changes since the previous call, oldest first.
    pub leadership: Vec<LeadershipChange>,
    /// This replica's proposals that will never commit (another entry committed at their
    /// index).
    pub dropped_proposals: Vec<ProposalId>,
    /// This replica's proposals whose index a snapshot covered: they may or may not have
    /// committed.
    pub unknown_proposals: Vec<ProposalId>,
}

impl ReadyOutput {
    /// True if there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.snapshot.is_none()
            && self.committed.is_empty()
            && self.read_states.is_empty()
            && self.leadership.is_empty()
            && self.dropped_proposals.is_empty()
            && self.unknown_proposals.is_empty()
    }
}

fn push_grouped(groups: &mut Vec<Outbox>, messages: Vec<Message>) {
    for message in messages {
        match groups.iter_mut().find(|group| group.to == message.to) {
            Some(group) => group.messages.push(message),
            None => groups.push(Outbox {
                to: message.to,
                messages: vec![message],
            }),
        }
    }
}

/// Errors that end a replica's usefulness, or prevent creating one.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The configuration is invalid.
    #[error("invalid replica configuration: {0}")]
    Config(String),
    /// The log store failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// raft-rs refused (its configuration checks, or a membership it cannot restore).
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// The log was compacted past the state machine's applied index: the state machine must
    /// be restored from a checkpoint at or after `first_index - 1` first.
    #[error(
        "log starts at {first_index}, but the state machine has applied only {applied_index}; restore a checkpoint first"
    )]
    NeedsSnapshot {
        /// The state machine's applied index.
        applied_index: u64,
        /// The first index still in the log.
        first_index: u64,
    },
    /// An earlier failure stopped this replica; restart it from its log.
    #[error("replica stopped after an earlier failure: {reason}")]
    Failed {
        /// The first failure.
        reason: String,
    },
}

/// Why a message was not stepped.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The bytes are not a Raft message.
    #[error(transparent)]
    Decode(#[from] CodecError),
    /// The message is not one a peer may send to this node.
    #[error("refused Raft message: {0}")]
    Invalid(String),
    /// raft-rs refused it (for example a response from a node that is not a member).
    #[error("raft: {0}")]
    Raft(raft::Error),
    /// The replica stopped after an earlier failure.
    #[error("replica stopped after an earlier failure: {reason}")]
    Failed {
        /// The first failure.
        reason: String,
    },
}

/// Why a proposal or read request was not accepted. All of them leave nothing behind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader takes proposals; retry at `leader_hint` if known.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The leader this replica knows of.
        leader_hint: Option<u64>,
    },
    /// The leader has not committed an entry of its term yet; retry shortly.
    #[error("leader is not ready yet")]
    LeaderNotReady,
    /// raft-rs refused it for now (a leadership transfer is under way, or too many bytes are
    /// uncommitted); retry later.
    #[error("proposal dropped: {reason}")]
    Dropped {
        /// Why.
        reason: String,
    },
    /// The request itself is wrong (for example empty data, which would read as a no-op).
    #[error("invalid proposal: {reason}")]
    Invalid {
        /// Why.
        reason: String,
    },
    /// The replica stopped after an earlier failure.
    #[error("replica stopped after an earlier failure: {reason}")]
    Failed {
        /// The first failure.
        reason: String,
    },
}

/// raft-rs's view of the log store: reads go to the log store, snapshots to the source.
struct RaftStore<L> {
    log: L,
    snapshots: Box<dyn SnapshotSource>,
    /// The first read failure, which raft-rs cannot be told about without panicking; the next
    /// `handle_ready` reports it.
    read_failure: RefCell<Option<String>>,
}

impl<L: LogStore> RaftStore<L> {
    fn storage_error(&self, error: LogError, can_wait: bool) -> raft::Error {
        match error {
            LogError::Compacted { .. } => raft::Error::Store(StorageError::Compacted),
            LogError::Unavailable { .. } => raft::Error::Store(StorageError::Unavailable),
            other => {
                let mut failure = self.read_failure.borrow_mut();
                if failure.is_none() {
                    *failure = Some(other.to_string());
                }
                if can_wait {
                    // "Fetching asynchronously": raft-rs stops sending to that follower
                    // instead of panicking, and the next handle_ready stops the replica.
                    raft::Error::Store(StorageError::LogTemporarilyUnavailable)
                } else {
                    raft::Error::Store(StorageError::Other(Box::new(other)))
                }
            }
        }
    }
}

impl<L: LogStore> Storage for RaftStore<L> {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.log.hard_state(),
            self.log.conf_state().conf_state,
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.log
            .entries(low, high, max_size.into())
            .map_err(|error| self.storage_error(error, context.can_async()))
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        self.log
            .term(index)
            .map_err(|error| self.storage_error(error, false))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.log.first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.log.last_index())
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        match self.snapshots.snapshot(request_index, to) {
            Some(snapshot) if snapshot.get_metadata().index >= request_index => Ok(snapshot),
            _ => Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            )),
        }
    }
}

/// One member of one Raft group. See the module documentation for how to drive it.
pub struct Replica<L: LogStore> {
    raw: RawNode<RaftStore<L>>,
    node_id: u64,
    max_message_bytes: usize,
    /// This replica's own proposals not yet resolved: index → term.
    pending: BTreeMap<u64, u64>,
    /// Term of the last applied entry (or snapshot).
    applied_term: u64,
    /// The term this replica was leader of when last observed.
    leader_term: Option<u64>,
    /// Configuration changes at or below this index are already part of the stored
    /// membership (they are being replayed after a restart) and must not be applied again.
    replay_conf_until: u64,
    /// Which membership this is: the log index of the change that produced it (0 for the
    /// bootstrap one). A membership forced by arbitration takes the last log index then.
    conf_epoch: u64,
    /// The commit index moved after the last write.
    commit_unpersisted: bool,
    /// A membership change applied after the last write.
    conf_unpersisted: Option<StoredConfState>,
    failure: Option<String>,
    /// Ticks since the replica started: the clock of the read lease.
    ticks: u64,
    election_tick: u64,
    lease_ticks: u64,
    /// The leader's reads (see `read.rs`).
    reads: ReadTracker,
    /// Set when a read may have become answerable.
    reads_dirty: bool,
    /// Bytes proposed since the last `Ready` was taken. Past `max_size_per_msg` the appends of
    /// later proposals are no longer merged into one message, so that a merged append stays
    /// far below the frame and decode limits of the followers.
    proposed_since_ready: u64,
    max_size_per_msg: u64,
    /// The highest commit index this leader sent to each peer (in an append or a heartbeat),
    /// for [`Replica::commit_unsent`]; cleared when leadership changes.
    commit_sent: BTreeMap<u64, u64>,
}

impl<L: LogStore> std::fmt::Debug for Replica<L> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Replica")
            .field("node_id", &self.node_id)
            .field("term", &self.term())
            .field("leader", &self.leader_id())
            .field("commit", &self.commit_index())
            .field("applied", &self.applied_index())
            .finish_non_exhaustive()
    }
}

fn is_voter_set_empty(conf_state: &ConfState) -> bool {
    conf_state.voters.is_empty()
        && conf_state.learners.is_empty()
        && conf_state.voters_outgoing.is_empty()
        && conf_state.learners_next.is_empty()
}

impl<L: LogStore> Replica<L> {
    /// Creates the replica from its log store (bootstrapping the membership into an empty
    /// store). Committed entries after `config.applied_index` come out of the first
    /// `handle_ready` calls again.
    pub fn new(config: ReplicaConfig, mut log: L) -> Result<Replica<L>, ReplicaError> {
        if config.node_id == 0 {
            return Err(ReplicaError::Config("node id 0 is reserved".to_string()));
        }
        if config.lease_ticks + 2 > config.election_tick && config.lease_ticks != 0 {
            return Err(ReplicaError::Config(format!(
                "lease_ticks ({}) must be at most election_tick - 2 ({})",
                config.lease_ticks,
                config.election_tick.saturating_sub(2)
            )));
        }
        if is_voter_set_empty(&log.conf_state().conf_state) {
            if config.voters.is_empty() {
                return Err(ReplicaError::Config(
                    "a new group needs at least one voter".to_string(),
                ));
            }
            if log.last_index() != 0 {
                return Err(ReplicaError::Config(format!(
                    "the log holds entries up to {} but no membership",
                    log.last_index()
                )));
            }
            let conf_state = ConfState::from((config.voters.clone(), config.learners.clone()));
            log.write(LogBatch {
                conf_state: Some(StoredConfState {
                    conf_state,
                    index: 0,
                }),
                must_sync: true,
                ..LogBatch::default()
            })?;
            log.flush_and_sync()?;
        }
        let hard_state = log.hard_state();
        let first_index = log.first_index();
        let applied_index = config.applied_index;
        if applied_index > hard_state.commit {
            return Err(ReplicaError::Config(format!(
                "applied index {applied_index} is beyond the log's commit index {}",
                hard_state.commit
            )));
        }
        if applied_index + 1 < first_index {
            return Err(ReplicaError::NeedsSnapshot {
                applied_index,
                first_index,
            });
        }
        let applied_term = log.term(applied_index).unwrap_or(0);
        let replay_conf_until = log.conf_state().index;

        let raft_config = raft::Config {
            id: config.node_id,
            election_tick: config.election_tick,
            heartbeat_tick: config.heartbeat_tick,
            min_election_tick: config.min_election_tick,
            max_election_tick: config.max_election_tick,
            applied: applied_index,
            max_size_per_msg: config.max_size_per_msg,
            max_inflight_msgs: config.max_inflight_msgs,
            check_quorum: true,
            pre_vote: true,
            // Leader reads are answered by `read.rs`, never by raft-rs (whose lease option
            // serves stale reads after a partition); raft-rs only forwards followers'
            // requests. LeaseBased keeps it from putting read contexts into heartbeats, whose
            // context field carries our lease stamps.
            read_only_option: ReadOnlyOption::LeaseBased,
            max_uncommitted_size: config.max_uncommitted_bytes,
            max_committed_size_per_ready: config.max_committed_bytes_per_ready,
            // Proposals made between two Readies go to each follower as one append message
            // (see `propose_with` for the size cap): one message to encode, send, decode and
            // step, and one answer, instead of one per proposal.
            batch_append: true,
            skip_bcast_commit: config.defer_commit_broadcast,
            ..raft::Config::default()
        };
        raft_config
            .validate()
            .map_err(|error| ReplicaError::Config(error.to_string()))?;
        let store = RaftStore {
            log,
            snapshots: Box::new(NoSnapshots),
            read_failure: RefCell::new(None),
        };
        let logger = raft_logger(config.group_id, config.node_id);
        let raw = RawNode::new(&raft_config, store, &logger)?;
        Ok(Replica {
            raw,
            node_id: config.node_id,
            max_message_bytes: config.max_message_bytes,
            pending: BTreeMap::new(),
            applied_term,
            leader_term: None,
            replay_conf_until,
            conf_epoch: replay_conf_until,
            commit_unpersisted: false,
            conf_unpersisted: None,
            failure: None,
            ticks: 0,
            election_tick: config.election_tick as u64,
            lease_ticks: config.lease_ticks as u64,
            reads: ReadTracker::default(),
            reads_dirty: false,
            proposed_since_ready: 0,
            max_size_per_msg: config.max_size_per_msg,
            commit_sent: BTreeMap::new(),
        })
    }

    /// Installs the snapshot provider (see [`SnapshotSource`]).
    pub fn set_snapshot_source(&mut self, source: Box<dyn SnapshotSource>) {
        self.raw.mut_store().snapshots = source;
    }

    // ----- Inputs. -----

    /// Advances Raft's logical clock by one tick. Returns true if there may be work for
    /// `handle_ready`.
    pub fn tick(&mut self) -> bool {
        if self.failure.is_some() {
            return false;
        }
        self.ticks += 1;
        self.note_transfer();
        self.raw.tick()
    }

    /// Suspends the read lease while a leadership transfer is under way and for an election
    /// timeout after it (see `read.rs`).
    fn note_transfer(&mut self) {
        if self.raw.raft.lead_transferee.is_some() {
            self.reads
                .block_lease_until(self.ticks + self.election_tick);
        }
    }

    /// Steps a message received from a peer.
    pub fn step(&mut self, mut message: Message) -> Result<(), StepError> {
        if let Some(reason) = &self.failure {
            return Err(StepError::Failed {
                reason: reason.clone(),
            });
        }
        if message.to != self.node_id {
            return Err(StepError::Invalid(format!(
                "message for node {} delivered to node {}",
                message.to, self.node_id
            )));
        }
        match message.get_msg_type() {
            MessageType::MsgHup
            | MessageType::MsgBeat
            | MessageType::MsgUnreachable
            | MessageType::MsgSnapStatus
            | MessageType::MsgCheckQuorum
            | MessageType::MsgPropose => {
                return Err(StepError::Invalid(format!(
                    "{:?} is not accepted from the network",
                    message.get_msg_type()
                )));
            }
            MessageType::MsgAppend => check_append(&message).map_err(StepError::Invalid)?,
            // A replica that lost entries it had acknowledged (its files were wiped for an
            // initial node restart, or an operating-system crash took unsynced writes with
            // `DiskSync = Interval`) gets heartbeats committing entries it no longer has;
            // raft-rs would assert. Committing less is always safe: the append that brings the
            // entries back brings the commit index too.
            MessageType::MsgHeartbeat if message.commit > self.raw.raft.raft_log.last_index() => {
                let (leader, claimed) = (message.from, message.commit);
                message.commit = self.raw.raft.raft_log.last_index();
                self.raw.step(message).map_err(StepError::Raft)?;
                // Tell the leader, which may have nothing new to send and so would never learn
                // it from a refused append: the same refusal a short log gives an append.
                let last = self.raw.raft.raft_log.last_index();
                let mut refusal = Message::default();
                refusal.set_msg_type(MessageType::MsgAppendResponse);
                refusal.to = leader;
                refusal.from = self.node_id;
                refusal.term = self.raw.raft.term;
                refusal.reject = true;
                refusal.index = claimed;
                refusal.reject_hint = last;
                refusal.log_term = self.raw.raft.raft_log.term(last).unwrap_or(0);
                self.raw.raft.msgs.push(refusal);
                return Ok(());
            }
            // The leader learns of such a loss when the follower refuses an append with a hint
            // below what the leader thought it matched. raft-rs never lowers `matched` and would
            // keep probing above the follower's log forever; probing again from the hint finds
            // the entries (or a snapshot) the follower needs.
            MessageType::MsgAppendResponse if message.reject && self.is_leader() && message.term == self.term() => {
                let hint = message.reject_hint;
                if let Some(progress) = self.raw.raft.mut_prs().get_mut(message.from)
                    && hint < progress.matched
                {
                    tracing::warn!(
                        peer = message.from,
                        matched = progress.matched,
                        follower_last = hint,
                        "a follower lost log entries it had acknowledged; replicating to it again from its log's end"
                    );
                    progress.matched = hint;
                    progress.become_probe();
                    progress.next_idx = hint + 1;
                    return Ok(());
                }
            }
            MessageType::MsgHeartbeatResponse
                if self.is_leader() && message.term == self.term() =>
            {
                self.reads.sync_term(self.term());
                if self
                    .reads
                    .on_heartbeat_response(message.from, &message.context)
                {
                    self.reads_dirty = true;
                }
            }
            MessageType::MsgReadIndex if self.is_leader() => {
                // A follower's forwarded read: answered by this replica, not by raft-rs.
                let [entry] = message.get_entries() else {
                    return Err(StepError::Invalid(
                        "a read request must carry one entry".to_string(),
                    ));
                };
                if self.raw.raft.commit_to_current_term() {
                    let context = entry.data.to_vec();
                    self.request_read(context, Some(message.from));
                }
                return Ok(());
            }
            _ => {}
        }
        self.raw.step(message).map_err(StepError::Raft)
    }

    /// Decodes and steps a message received from a peer as bytes.
    pub fn step_bytes(&mut self, bytes: &[u8]) -> Result<(), StepError> {
        let message = decode_message(bytes, self.max_message_bytes)?;
        self.step(message)
    }

    /// Proposes `data` (not empty). Only the leader accepts proposals; see the module
    /// documentation for how the outcome is reported.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<ProposalId, ProposeError> {
        if data.is_empty() {
            return Err(ProposeError::Invalid {
                reason: "empty data would be indistinguishable from a no-op entry".to_string(),
            });
        }
        let len = data.len() as u64;
        let id = self.propose_with(|raw| raw.propose(Vec::new(), data))?;
        self.proposed_since_ready += len;
        if self.proposed_since_ready > self.max_size_per_msg {
            self.raw.raft.set_batch_append(false);
        }
        Ok(id)
    }

    /// Proposes a membership change. If raft-rs refuses it because another change is still
    /// pending, the proposal commits as [`EntryPayload::Noop`].
    pub fn propose_conf_change(
        &mut self,
        change: ConfChangeV2,
    ) -> Result<ProposalId, ProposeError> {
        self.propose_with(|raw| raw.propose_conf_change(Vec::new(), change))
    }

    fn propose_with(
        &mut self,
        propose: impl FnOnce(&mut RawNode<RaftStore<L>>) -> raft::Result<()>,
    ) -> Result<ProposalId, ProposeError> {
        if let Some(reason) = &self.failure {
            return Err(ProposeError::Failed {
                reason: reason.clone(),
            });
        }
        if !self.is_leader() {
            return Err(ProposeError::NotLeader {
                leader_hint: self.leader_id(),
            });
        }
        let before = self.raw.raft.raft_log.last_index();
        if let Err(error) = propose(&mut self.raw) {
            let reason = if self.raw.raft.lead_transferee.is_some() {
                "leadership transfer in progress".to_string()
            } else if error == raft::Error::ProposalDropped {
                "too many uncommitted bytes".to_string()
            } else {
                error.to_string()
            };
            return Err(ProposeError::Dropped { reason });
        }
        let index = self.raw.raft.raft_log.last_index();
        if index != before + 1 {
            return Err(ProposeError::Dropped {
                reason: "raft did not append the proposal".to_string(),
            });
        }
        let id = ProposalId {
            index,
            term: self.raw.raft.term,
        };
        self.pending.insert(id.index, id.term);
        Ok(id)
    }

    /// While this leader holds its read lease: how many more ticks it holds (None otherwise).
    /// A caller that applies every committed entry before answering writes may serve reads
    /// from its applied state without asking Raft, until that many ticks have passed.
    pub fn lease_remaining_ticks(&mut self) -> Option<u64> {
        if !self.is_leader() || !self.raw.raft.commit_to_current_term() {
            return None;
        }
        let term = self.term();
        self.reads.sync_term(term);
        self.reads.lease_remaining(&self.conf_state(), self.node_id, self.ticks, self.lease_ticks)
    }

    /// Asks for a linearizable read point; the answer comes as a [`ReadReady`] carrying
    /// `context`. A follower forwards the request to the leader.
    pub fn read_index(&mut self, context: Vec<u8>) -> Result<(), ProposeError> {
        if let Some(reason) = &self.failure {
            return Err(ProposeError::Failed {
                reason: reason.clone(),
            });
        }
        if self.is_leader() {
            if !self.raw.raft.commit_to_current_term() {
                return Err(ProposeError::LeaderNotReady);
            }
            self.request_read(context, None);
            return Ok(());
        }
        if self.leader_id().is_none() {
            return Err(ProposeError::NotLeader { leader_hint: None });
        }
        self.raw.read_index(context);
        Ok(())
    }

    /// Registers a read on the leader: answered now under the lease, or after a heartbeat
    /// round (which is started at once).
    fn request_read(&mut self, context: Vec<u8>, requester: Option<u64>) {
        let term = self.term();
        self.reads.sync_term(term);
        let lease = self.reads.has_lease(
            &self.conf_state(),
            self.node_id,
            self.ticks,
            self.lease_ticks,
        );
        let commit = self.commit_index();
        if self
            .reads
            .request(context, requester, commit, lease, (self.node_id, term))
        {
            self.raw.ping();
        }
        self.reads_dirty = true;
    }

    /// Starts an election now (pre-vote first), instead of waiting for the election timeout.
    pub fn campaign(&mut self) -> Result<(), ReplicaError> {
        self.check_failed()?;
        self.raw.campaign().map_err(ReplicaError::Raft)
    }

    /// Asks the leader (this replica) to hand leadership to `to`.
    pub fn transfer_leader(&mut self, to: u64) {
        if self.failure.is_none() {
            self.raw.transfer_leader(to);
            self.note_transfer();
        }
    }

    /// Tells Raft that the last message to `to` could not be delivered.
    pub fn report_unreachable(&mut self, to: u64) {
        if self.failure.is_none() {
            self.raw.report_unreachable(to);
        }
    }

    /// Tells Raft whether a snapshot sent to `to` arrived.
    pub fn report_snapshot(&mut self, to: u64, delivered: bool) {
        if self.failure.is_none() {
            let status = if delivered {
                raft::SnapshotStatus::Finish
            } else {
                raft::SnapshotStatus::Failure
            };
            self.raw.report_snapshot(to, status);
        }
    }

    // ----- Ready handling. -----

    /// True if `handle_ready` has work.
    pub fn has_ready(&self) -> bool {
        self.failure.is_none() && (self.raw.has_ready() || (self.reads_dirty && self.is_leader()))
    }

    /// Processes one Raft `Ready`: persists it (one batch, one sync) and returns what to send
    /// and apply. Returns an empty output if there was nothing to do.
    pub fn handle_ready(&mut self) -> Result<ReadyOutput, ReplicaError> {
        let mut early = Vec::new();
        let mut out = self.handle_ready_with(|outbox| early.push(outbox))?;
        if !early.is_empty() {
            let later = std::mem::take(&mut out.messages);
            for outbox in later {
                push_grouped(&mut early, outbox.messages);
            }
            out.messages = early;
        }
        Ok(out)
    }

    /// Like [`Replica::handle_ready`], but hands the leader's messages that may be sent before
    /// the log write to `send_early` before writing, so that the followers' writes overlap
    /// the leader's `fsync` (Raft thesis §10.2.1). The returned output holds only the messages
    /// that had to wait for the write.
    pub fn handle_ready_with(
        &mut self,
        send_early: impl FnMut(Outbox),
    ) -> Result<ReadyOutput, ReplicaError> {
        let (in_progress, early) = self.begin_ready(send_early)?;
        let mut out = self.finish_ready(in_progress)?;
        out.committed.splice(0..0, early.committed);
        out.dropped_proposals.splice(0..0, early.dropped_proposals);
        Ok(out)
    }

    /// The first half of [`Replica::handle_ready_with`]: sends the leader's early messages and
    /// returns the entries that are committed already, before this `Ready`'s log write.
    ///
    /// Those entries are on the disks of a majority and in this replica's own log (raft-rs hands
    /// out only entries that are both committed and persisted here), so the owner may apply them
    /// and answer their clients now, while [`Replica::finish_ready`] writes and syncs the new
    /// entries. Under a steady stream of writes that takes one `fsync` off every write's
    /// latency: otherwise an entry that became committed waits for the sync of the entries
    /// proposed after it.
    ///
    /// The early output holds only `committed` and `dropped_proposals`. When the `Ready` carries
    /// a snapshot, nothing is handed out early: the state machine must be restored from the
    /// snapshot first, so its committed entries come with the snapshot in `finish_ready`'s output.
    /// The owner must call `finish_ready` with the returned value before anything else touches
    /// the replica.
    pub fn begin_ready(
        &mut self,
        mut send_early: impl FnMut(Outbox),
    ) -> Result<(ReadyInProgress, ReadyOutput), ReplicaError> {
        self.check_failed()?;
        self.check_read_failure()?;
        let mut early_out = ReadyOutput::default();
        let mut in_progress = ReadyInProgress { ready: None, out: ReadyOutput::default() };
        if self.raw.has_ready() {
            let mut ready = self.raw.ready();
            // The messages of the proposals so far are taken: merging starts afresh.
            self.proposed_since_ready = 0;
            self.raw.raft.set_batch_append(true);
            let mut early = Vec::new();
            push_grouped(&mut early, self.stamped(ready.take_messages()));
            for outbox in early {
                send_early(outbox);
            }
            let committed = ready.take_committed_entries();
            if ready.snapshot().is_empty() {
                self.collect_committed(committed, &mut early_out);
            } else {
                let snapshot = ready.snapshot().clone();
                self.on_snapshot(&snapshot, &mut in_progress.out);
                self.collect_committed(committed, &mut in_progress.out);
                in_progress.out.snapshot = Some(snapshot);
            }
            in_progress.ready = Some(ready);
        }
        Ok((in_progress, early_out))
    }

    /// The second half of [`Replica::handle_ready_with`]: persists the `Ready` that
    /// [`Replica::begin_ready`] started (one batch, one sync) and returns the rest of the output:
    /// the messages that had to wait for the write, a snapshot with its committed entries,
    /// entries committed by the write itself, read states and leadership changes.
    pub fn finish_ready(&mut self, in_progress: ReadyInProgress) -> Result<ReadyOutput, ReplicaError> {
        let ReadyInProgress { ready, mut out } = in_progress;
        if let Some(mut ready) = ready {
            let hard_state = match ready.hs() {
                Some(hard_state) => Some(hard_state.clone()),
                None if self.commit_unpersisted => Some(self.raw.raft.hard_state()),
                None => None,
            };
            let batch = LogBatch {
                snapshot: out.snapshot.as_ref().map(|snapshot| snapshot.get_metadata().clone()),
                entries: ready.take_entries(),
                hard_state,
                conf_state: self.conf_unpersisted.take(),
                must_sync: ready.must_sync(),
            };
            self.commit_unpersisted = false;
            self.persist(batch)?;

            push_grouped(&mut out.messages, ready.take_persisted_messages());
            out.read_states
                .extend(ready.take_read_states().into_iter().map(|state| ReadReady {
                    index: state.index,
                    context: state.request_ctx,
                }));
            // Applying a joint configuration may append the entry that leaves it (inside
            // `advance` or `advance_apply`); see below.
            let last_before_apply = self.raw.raft.raft_log.last_index();
            let mut light = self.raw.advance(ready);
            if light.commit_index().is_some() {
                self.commit_unpersisted = true;
            }
            push_grouped(&mut out.messages, self.stamped(light.take_messages()));
            self.collect_committed(light.take_committed_entries(), &mut out);
            self.raw.advance_apply();
            if self.is_leader() && self.raw.raft.raft_log.last_index() > last_before_apply {
                // raft-rs appended the entry that leaves a joint configuration but does not
                // broadcast it; heartbeat responses make it send the entry right away instead
                // of with the next proposal.
                self.raw.ping();
            }
            // The commit index and any membership change that came after the write go to the
            // log now, without a sync of their own (the next synced batch covers them): the
            // stored state then matches what was handed out, and a restart replays less.
            self.write_unpersisted()?;
        }
        self.check_read_failure()?;
        self.note_leadership(&mut out);
        if self.is_leader() && self.reads_dirty {
            self.reads.sync_term(self.term());
            for answer in self.reads.take_answers(&self.conf_state(), self.node_id) {
                match answer {
                    Answer::Local(read) => out.read_states.push(read),
                    Answer::Remote(message) => push_grouped(&mut out.messages, vec![message]),
                }
            }
        }
        self.reads_dirty = false;
        Ok(out)
    }

    /// Stamps the leader's heartbeats for the read lease (see `read.rs`), and notes the commit
    /// index each append and heartbeat carries (see [`Replica::commit_unsent`]).
    fn stamped(&mut self, mut messages: Vec<Message>) -> Vec<Message> {
        if self.is_leader() {
            self.reads.sync_term(self.term());
            self.reads
                .stamp(&mut messages, self.ticks, self.lease_ticks);
            for message in &messages {
                if matches!(
                    message.get_msg_type(),
                    MessageType::MsgAppend | MessageType::MsgHeartbeat
                ) {
                    let sent = self.commit_sent.entry(message.to).or_insert(0);
                    *sent = (*sent).max(message.commit);
                }
            }
        }
        messages
    }

    /// On a leader: whether a peer has not been sent a commit index it could use (the commit
    /// index, or as much of it as the peer's log is known to hold). With
    /// [`ReplicaConfig::defer_commit_broadcast`] that is normal for a moment after a commit;
    /// [`Replica::send_commit`] ends it.
    pub fn commit_unsent(&self) -> bool {
        if self.failure.is_some() || !self.is_leader() {
            return false;
        }
        let commit = self.commit_index();
        self.raw
            .raft
            .prs()
            .iter()
            .filter(|(id, _)| **id != self.node_id)
            .any(|(id, progress)| {
                let usable = progress.matched.min(commit);
                usable > 0 && self.commit_sent.get(id).copied().unwrap_or(0) < usable
            })
    }

    /// On a leader: sends the commit index to every peer now, in a heartbeat (which also
    /// refreshes the read lease); the messages come out of the next Ready.
    pub fn send_commit(&mut self) {
        if self.failure.is_none() && self.is_leader() {
            self.raw.ping();
        }
    }

    fn persist(&mut self, batch: LogBatch) -> Result<(), ReplicaError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.raw.mut_store().log.write(batch).map_err(|error| {
            self.failure = Some(error.to_string());
            ReplicaError::Log(error)
        })
    }

    fn on_snapshot(&mut self, snapshot: &Snapshot, out: &mut ReadyOutput) {
        let metadata = snapshot.get_metadata();
        let covered: Vec<u64> = self
            .pending
            .range(..=metadata.index)
            .map(|(index, _)| *index)
            .collect();
        for index in covered {
            if let Some(term) = self.pending.remove(&index) {
                out.unknown_proposals.push(ProposalId { index, term });
            }
        }
        self.applied_term = metadata.term;
        self.replay_conf_until = self.replay_conf_until.max(metadata.index);
        // The snapshot's membership is written with the snapshot itself.
        self.conf_unpersisted = None;
    }

    fn collect_committed(&mut self, entries: Vec<Entry>, out: &mut ReadyOutput) {
        for entry in entries {
            let (index, term) = (entry.index, entry.term);
            if let Some(proposed_term) = self.pending.remove(&index)
                && proposed_term != term
            {
                out.dropped_proposals.push(ProposalId {
                    index,
                    term: proposed_term,
                });
            }
            let payload = match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() => EntryPayload::Noop,
                EntryType::EntryNormal => EntryPayload::Data(entry.data.clone()),
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    self.apply_conf_entry(&entry)
                }
            };
            self.applied_term = term;
            out.committed.push(CommittedEntry {
                index,
                term,
                payload,
            });
        }
    }

    fn apply_conf_entry(&mut self, entry: &Entry) -> EntryPayload {
        // Version-1 changes (from older proposers) are converted; an empty version-2 change
        // is the "leave the joint configuration" entry.
        let decoded = match entry.get_entry_type() {
            EntryType::EntryConfChange => ConfChange::parse_from_bytes(&entry.data).map(|change| {
                let mut single = ConfChangeSingle::default();
                single.set_change_type(change.get_change_type());
                single.node_id = change.node_id;
                let mut converted = ConfChangeV2::default();
                converted.mut_changes().push(single);
                converted.context = change.context;
                converted
            }),
            _ => ConfChangeV2::parse_from_bytes(&entry.data),
        };
        let change = match decoded {
            Ok(change) => change,
            Err(error) => {
                tracing::error!(index = entry.index, %error, "committed configuration change does not decode; ignoring it");
                let outcome = ConfChangeOutcome::Refused(format!("does not decode: {error}"));
                return EntryPayload::ConfChange {
                    change: ConfChangeV2::default(),
                    outcome,
                };
            }
        };
        if entry.index <= self.replay_conf_until {
            // Replayed after a restart: the stored membership already includes it, and
            // raft-rs refuses some changes the second time (entering a joint configuration
            // while joint).
            return EntryPayload::ConfChange {
                change,
                outcome: ConfChangeOutcome::AlreadyApplied,
            };
        }
        let outcome = match self.raw.apply_conf_change(&change) {
            Ok(conf_state) => {
                self.conf_unpersisted = Some(StoredConfState {
                    conf_state: conf_state.clone(),
                    index: entry.index,
                });
                self.conf_epoch = entry.index;
                ConfChangeOutcome::Applied(conf_state)
            }
            Err(error) => {
                tracing::warn!(index = entry.index, %error, "raft refused a committed configuration change");
                ConfChangeOutcome::Refused(error.to_string())
            }
        };
        EntryPayload::ConfChange { change, outcome }
    }

    fn note_leadership(&mut self, out: &mut ReadyOutput) {
        let now = (self.raw.raft.state == StateRole::Leader).then_some(self.raw.raft.term);
        if now != self.leader_term {
            if let Some(term) = self.leader_term {
                out.leadership
                    .push(LeadershipChange::LostLeadership { term });
                // Reads still waiting are dropped unanswered (see `read.rs`).
                self.reads = ReadTracker::default();
            }
            if let Some(term) = now {
                out.leadership.push(LeadershipChange::BecameLeader { term });
            }
            self.leader_term = now;
            self.commit_sent.clear();
        }
    }

    fn check_failed(&self) -> Result<(), ReplicaError> {
        match &self.failure {
            Some(reason) => Err(ReplicaError::Failed {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn check_read_failure(&mut self) -> Result<(), ReplicaError> {
        if let Some(reason) = self.raw.store().read_failure.borrow().clone() {
            self.failure.get_or_insert_with(|| reason.clone());
            return Err(ReplicaError::Failed { reason });
        }
        Ok(())
    }

    /// Writes the commit index and membership that have not been written yet.
    fn write_unpersisted(&mut self) -> Result<(), ReplicaError> {
        let batch = LogBatch {
            hard_state: self.commit_unpersisted.then(|| self.raw.raft.hard_state()),
            conf_state: self.conf_unpersisted.take(),
            ..LogBatch::default()
        };
        self.commit_unpersisted = false;
        self.persist(batch)
    }

    // ----- Log maintenance. -----

    /// The term of log entry `index`, if this replica's log holds it (or it is the compaction
    /// point).
    pub fn log_term(&self, index: u64) -> Option<u64> {
        if index + 1 < self.raw.store().log.first_index() || index > self.raw.store().log.last_index() {
            return None;
        }
        self.raw.store().log.term(index).ok()
    }

    /// Drops log entries up to `index` (at most the applied index), typically after a
    /// checkpoint at `index`. Followers that still need them will need a snapshot.
    pub fn compact_log(&mut self, index: u64) -> Result<(), ReplicaError> {
        self.check_failed()?;
        let applied = self.applied_index();
        if index > applied {
            return Err(ReplicaError::Config(format!(
                "cannot compact to {index}: only {applied} is applied"
            )));
        }
        self.write_unpersisted()?;
        self.raw.mut_store().log.compact_to(index).map_err(|error| {
            self.failure = Some(error.to_string());
            ReplicaError::Log(error)
        })
    }

    /// Makes everything written so far durable (for a log store running with `sync` off).
    pub fn flush_and_sync(&mut self) -> Result<(), ReplicaError> {
        self.check_failed()?;
        self.write_unpersisted()?;
        self.raw.mut_store().log.flush_and_sync().map_err(|error| {
            self.failure = Some(error.to_string());
            ReplicaError::Log(error)
        })
    }

    // ----- Observers. -----

    /// This replica's node id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// True if this replica is the leader (possibly not yet ready).
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// True if this replica is the leader and has applied an entry of its own term, so its
    /// state machine holds every committed entry: it may serve reads and evaluate writes.
    pub fn is_ready_leader(&self) -> bool {
        self.is_leader() && self.applied_term == self.raw.raft.term
    }

    /// The leader this replica knows of, if any.
    pub fn leader_id(&self) -> Option<u64> {
        match self.raw.raft.leader_id {
            0 => None,
            id => Some(id),
        }
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The highest index known to be committed.
    pub fn commit_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// The highest index handed out for applying (see the module documentation).
    pub fn applied_index(&self) -> u64 {
        self.raw.raft.raft_log.applied
    }

    /// The index of the last entry in the log (persisted or not).
    pub fn last_index(&self) -> u64 {
        self.raw.raft.raft_log.last_index()
    }

    /// The current membership.
    pub fn conf_state(&self) -> ConfState {
        self.raw.raft.prs().conf().to_conf_state()
    }

    /// Which membership is current: the log index of the change that produced it (0 for the
    /// bootstrap membership). Arbitration is asked per (group, epoch).
    pub fn conf_epoch(&self) -> u64 {
        self.conf_epoch
    }

    /// How far the leader knows `peer`'s log matches its own (None: not a member, or not the
    /// leader).
    pub fn peer_matched(&self, peer: u64) -> Option<u64> {
        if !self.is_leader() {
            return None;
        }
        self.raw.raft.prs().get(peer).map(|p| p.matched)
    }

    /// Replaces the voters by `voters` without a log entry, and makes the new membership
    /// durable at once. This is how a node group of two replicas goes on with one, after the
    /// arbitrator granted this node and nobody else the right to (NDB's arbitration): a two-voter
    /// group cannot commit the change through its log, since that needs the lost voter.
    ///
    /// Safe only under that grant: with two voters, every committed entry is on both, so the
    /// survivor holds all of them; the arbitrator ensures the other replica never gets a grant
    /// for the same membership, and without one it can never commit alone. Entries of the
    /// survivor that were not committed may commit now (their writes were never acknowledged).
    pub fn force_voters(&mut self, voters: &[u64]) -> Result<(), ReplicaError> {
        self.check_failed()?;
        let current = self.conf_state();
        if !current.voters_outgoing.is_empty() {
            return Err(ReplicaError::Failed { reason: "the membership is joint; cannot force it".into() });
        }
        let mut change = ConfChangeV2::default();
        for v in current.voters.iter().filter(|v| !voters.contains(v)) {
            let mut single = ConfChangeSingle::default();
            single.set_change_type(raft::eraftpb::ConfChangeType::RemoveNode);
            single.node_id = *v;
            change.mut_changes().push(single);
        }
        for v in voters.iter().filter(|v| !current.voters.contains(v)) {
            let mut single = ConfChangeSingle::default();
            single.set_change_type(raft::eraftpb::ConfChangeType::AddNode);
            single.node_id = *v;
            change.mut_changes().push(single);
        }
        if change.get_changes().is_empty() {
            return Ok(());
        }
        let conf_state = self
            .raw
            .apply_conf_change(&change)
            .map_err(|e| ReplicaError::Failed { reason: format!("forcing the membership failed: {e}") })?;
        let index = self.last_index();
        self.persist(LogBatch {
            conf_state: Some(StoredConfState { conf_state, index }),
            must_sync: true,
            ..LogBatch::default()
        })?;
        self.replay_conf_until = self.replay_conf_until.max(index);
        self.conf_epoch = index;
        Ok(())
    }

    /// How many of this replica's proposals are still unresolved.
    pub fn pending_proposals(&self) -> usize {
        self.pending.len()
    }

    /// The log store (read-only: all writes go through the replica).
    pub fn log_store(&self) -> &L {
        &self.raw.store().log
    }
}

/// Checks what raft-rs would otherwise assert on: the entries of an append message follow its
/// `index` contiguously and carry no term above the message's.
fn check_append(message: &Message) -> Result<(), String> {
    for (expected, entry) in (message.index + 1..).zip(message.get_entries()) {
        if entry.index != expected {
            return Err(format!(
                "append entries are not contiguous: expected {expected}, got {}",
                entry.index
            ));
        }
        if entry.term > message.term || entry.term < message.log_term {
            return Err(format!(
                "append entry {} has term {} outside {}..={}",
                entry.index, entry.term, message.log_term, message.term
            ));
        }
    }
    Ok(())
}
