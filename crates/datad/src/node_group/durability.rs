//! The node group loop's durability work, kept apart from its serving logic: local checkpoints
//! (NDB's LCP), Raft log truncation behind them, snapshots to and from other replicas,
//! `DiskSync = Interval` flushing, backups, and the start phases a node reports.
//!
//! Everything here runs on the loop thread, between rounds of serving (see
//! [`NodeGroupLoop::durability_round`]); file writes go to the [`DiskWriter`] thread and
//! network transfers to tokio tasks, whose outcomes come back as [`DurabilityEvent`]s.
//!
//! **Local checkpoints.** A checkpoint starts once TimeBetweenLocalCheckpoints' worth of log
//! (4 × 2^n bytes of applied entries) was applied since the previous one started, or
//! MaxTimeBetweenLocalCheckpoints passed with anything applied. A [`Capture`] copies the store
//! in slices paced by a [`Throttle`] between MinDiskWriteSpeed (busy) and MaxDiskWriteSpeed
//! (idle); while it runs every committed write set is applied through it. When every partition
//! is copied and nothing waits to be applied, the cut is the last applied entry; the writer
//! makes the files durable and writes the manifest. Then the Raft log is truncated behind the
//! *older* of the two kept checkpoints, so that a damaged newest one can fall back to the older
//! one plus a longer replay, and the newest becomes the snapshot offered to lagging replicas.
//!
//! **Snapshots in.** See [`crate::snapshot`]: a `MsgSnapshot` is held back from Raft until its
//! checkpoint is fetched, installed and restored; no local checkpoint runs meanwhile (both
//! write into `lcp/`).
//!
//! **Catching up.** A node that lost its log (initial restart, damage) is not "started" until it
//! has applied everything the leader had committed when it first heard from it, and in groups of
//! three or more voters it drops vote requests until then (see [`CatchUp`]).
//!
//! **Backups.** See `cairn_mgmd::operations` for the protocol and `cairn_storage::backup` for
//! the copy. Here: holding writes during the barrier, ordering the marker, and writing this
//! node group's part when this node proposed the marker.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cairn_common::catalog::Catalog;
use cairn_common::ops::{LogEntry, TxnControl};
use cairn_proto::data::DataError;
use cairn_proto::pb::NodeStatus;
use cairn_proto::recovery::{BackupEvent, BackupRequest, RecoveryMessage};
use cairn_replication::eraftpb::{Message, MessageType, Snapshot};
use cairn_storage::txn::Applied;
use cairn_storage::backup::{BackupCapture, BackupControl, Touched, list_backups};
use cairn_storage::checkpoint::{
    Capture, CheckpointConfig, Cut, DiskWriteSpeed, Identity, Throttle, checkpoint_dir, lcp_root,
};
use protobuf::Message as _;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::{Event, NodeGroupLoop, Request, Waiter};
use crate::disk_writer::{DiskWriter, WriterDone, WriterJob};
use crate::snapshot::{FetchContext, Fetched, OfferedSnapshot, SnapshotHandle};
use crate::start::{KeptCheckpoint, kept_checkpoints};

/// Bytes handed to the writer thread and not yet written, past which copying pauses.
const MAX_IN_FLIGHT_BYTES: u64 = 16 << 20;
/// How soon a failed snapshot fetch may be tried again.
const FETCH_RETRY: Duration = Duration::from_secs(1);
/// How often the load that picks the checkpoint write speed is measured.
const LOAD_WINDOW: Duration = Duration::from_secs(1);

/// Outcomes of work done off the loop thread.
pub enum DurabilityEvent {
    Writer(WriterDone),
    Fetched(SnapshotHandle, Result<Box<Fetched>, String>),
    Backup { request: BackupRequest, reply: oneshot::Sender<RecoveryMessage> },
}

/// What the data node's start-up hands the loop.
pub struct DurabilitySetup {
    pub data_dir: PathBuf,
    pub backup_root: PathBuf,
    pub identity: Identity,
    pub checkpoint_config: CheckpointConfig,
    pub speed: DiskWriteSpeed,
    /// Applied log bytes that start a checkpoint.
    pub lcp_log_bytes: u64,
    pub lcp_max_interval: Option<Duration>,
    /// `DiskSync = Interval`: flush the log this often.
    pub flush_interval: Option<Duration>,
    pub applied_term: u64,
    pub kept: Vec<KeptCheckpoint>,
    pub notices: Vec<String>,
    /// The node lost its log: it is not started before it caught up with the leader.
    pub lost_log: bool,
    /// ... and it must not vote meanwhile (groups of three or more voters; see `CatchUp`).
    pub block_votes: bool,
    pub offered: OfferedSnapshot,
    pub fetch: FetchContext,
    pub runtime: tokio::runtime::Handle,
    pub inbox: mpsc::Sender<Event>,
    /// Messages for the management node (backup progress).
    pub management: tokio::sync::mpsc::UnboundedSender<RecoveryMessage>,
    /// The log's commit index when it was opened: the start's replay ends there.
    pub replay_until: u64,
}

enum LcpState {
    Idle,
    Capturing { capture: Box<Capture>, started: Instant },
    Finishing { started: Instant, cut_index: u64 },
    Abandoning,
}

/// A node that lost its log catches up before it calls itself started and, in groups of three
/// or more voters, before it votes: it may have acknowledged entries a majority needed. In a
/// group of two it must vote (the survivor cannot be elected otherwise), and that is safe: the
/// only candidate is the other voter, which holds every committed entry.
struct CatchUp {
    /// The commit index the leader first told us; caught up once the store applied it.
    leader_commit: Option<u64>,
    blocks_votes: bool,
}

/// A backup barrier at this leader: requests that would log a change are held until release.
struct Hold {
    backup_id: u32,
    until: Instant,
    held: VecDeque<Request>,
    /// The marker waits for the node group's prepared transactions to be decided (see
    /// [`NodeGroupLoop::place_waiting_marker`]); the management node waits for the answer.
    waiting: Option<(Vec<u8>, oneshot::Sender<RecoveryMessage>)>,
}

struct RunningBackup {
    backup_id: u32,
    capture: BackupCapture,
    index: u64,
    catalog: Vec<u8>,
    started_unix_ms: u64,
    throttle: Throttle,
}

/// A backup marker in the Raft log. Every other entry the data node proposes is a postcard
/// `LogEntry`: its first byte is the variant (0 is `Write`) and, for `Write`, the second is an
/// `Option` tag (0 or 1). A marker starts with 0 then `C`, which no `LogEntry` encoding does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct BackupMarker {
    backup_id: u32,
    /// The node that proposed it and writes the backup of this node group.
    node: u32,
}

const MARKER_TAG: &[u8; 5] = b"\0CBKP";

fn encode_marker(marker: &BackupMarker) -> Vec<u8> {
    let mut bytes = MARKER_TAG.to_vec();
    bytes.extend(postcard::to_stdvec(marker).expect("a backup marker always serializes"));
    bytes
}

fn decode_marker(data: &[u8]) -> Option<BackupMarker> {
    postcard::from_bytes(data.strip_prefix(MARKER_TAG.as_slice())?).ok()
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The loop's durability state (see the module doc).
pub struct Durability {
    setup: DurabilitySetup,
    writer: DiskWriter,
    epoch: Instant,
    lcp: LcpState,
    throttle: Throttle,
    kept: Vec<KeptCheckpoint>,
    applied_term: u64,
    applied_bytes_since_start: u64,
    last_start: Instant,
    /// Where the last checkpoint's cut was (0: none).
    last_cut: u64,
    idle: Duration,
    window_start: Instant,
    next_flush: Option<Instant>,
    fetching: Option<(SnapshotHandle, Message)>,
    prepared: Option<Box<Fetched>>,
    prepared_stepped: bool,
    last_fetch_failure: Option<Instant>,
    catch_up: Option<CatchUp>,
    hold: Option<Hold>,
    /// Catalogs of backups whose marker this node proposed, until the marker applies.
    backup_catalogs: HashMap<u32, Vec<u8>>,
    aborted_backups: HashSet<u32>,
    backup: Option<RunningBackup>,
    /// The backup whose files the writer thread has (from its start to its completion).
    backup_in_writer: Option<u32>,
    last_backup_id: u32,
    phase_logged: u32,
}

impl Durability {
    /// The durability state of a loop that has none (tests of the loop alone).
    fn start(setup: DurabilitySetup) -> std::io::Result<Durability> {
        let inbox = setup.inbox.clone();
        let writer = DiskWriter::start(format!("datad-{}-writer", setup.identity.node_id), move |done| {
            let _ = inbox.send(Event::Durability(DurabilityEvent::Writer(done)));
        })?;
        let now = Instant::now();
        let kept = setup.kept.clone();
        if let Some(newest) = kept.last() {
            setup.offered.offer(&setup.identity, newest);
        }
        let throttle = Throttle::new(setup.speed.max_bytes_per_second, 1 << 20);
        let catch_up = setup.lost_log.then_some(CatchUp { leader_commit: None, blocks_votes: setup.block_votes });
        let last_backup_id = list_backups(&setup.backup_root).last().copied().unwrap_or(0);
        Ok(Durability {
            epoch: now,
            lcp: LcpState::Idle,
            throttle,
            last_cut: kept.last().map_or(0, |k| k.applied_index),
            kept,
            applied_term: setup.applied_term,
            applied_bytes_since_start: 0,
            last_start: now,
            idle: Duration::ZERO,
            window_start: now,
            next_flush: setup.flush_interval.map(|i| now + i),
            fetching: None,
            prepared: None,
            prepared_stepped: false,
            last_fetch_failure: None,
            catch_up,
            hold: None,
            backup_catalogs: HashMap::new(),
            aborted_backups: HashSet::new(),
            backup: None,
            backup_in_writer: None,
            last_backup_id,
            phase_logged: 0,
            writer,
            setup,
        })
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Time the loop spent waiting for events (for the checkpoint write speed).
    pub fn note_idle(&mut self, idle: Duration) {
        self.idle += idle;
    }

    /// The latest moment the loop should wake up for durability work.
    pub fn wakeup(&self) -> Option<Instant> {
        let mut at = self.next_flush;
        let mut earliest = |t: Instant| at = Some(at.map_or(t, |a| a.min(t)));
        if let LcpState::Capturing { capture, .. } = &self.lcp {
            if !capture.is_captured() {
                earliest(self.epoch + self.throttle.ready_at());
            }
        }
        if let Some(backup) = &self.backup {
            earliest(self.epoch + backup.throttle.ready_at());
        }
        if let Some(hold) = &self.hold {
            earliest(hold.until);
        }
        if matches!(self.lcp, LcpState::Idle) {
            if let Some(interval) = self.setup.lcp_max_interval {
                earliest(self.last_start + interval);
            }
        }
        at
    }
}

impl NodeGroupLoop {
    /// Gives the loop its durability work (see the module doc).
    pub fn with_durability(mut self, setup: DurabilitySetup) -> std::io::Result<NodeGroupLoop> {
        self.durability = Some(Durability::start(setup)?);
        Ok(self)
    }

    /// Installs a restored store, and the transaction state of the same cut, before the loop
    /// starts.
    pub fn with_store(mut self, mut store: cairn_storage::Store, applied_index: u64, txn_state: &[u8]) -> anyhow::Result<NodeGroupLoop> {
        // Ordered indexes are not in checkpoints: the restored partitions rebuild theirs by the
        // online backfill, for the indexes the current catalog has.
        store.sync_catalog(&self.catalog);
        *self.shared.store.write().unwrap_or_else(|e| e.into_inner()) = store;
        if !txn_state.is_empty() {
            self.txns
                .restore_replicated_state(txn_state)
                .map_err(|e| anyhow::anyhow!("the checkpoint's transaction state: {e}"))?;
        }
        self.store_applied = applied_index;
        Ok(self)
    }

    // ----- Applying -----

    /// Applies a committed log entry, its write sets through the checkpoint and backup captures
    /// when they run. `entry_bytes` is the Raft entry's size, for the checkpoint trigger.
    pub(super) fn apply_committed(&mut self, entry: &LogEntry, index: u64, entry_bytes: usize) -> cairn_common::Result<Applied> {
        let mut store = self.shared.store.write().unwrap_or_else(|e| e.into_inner());
        let catalog = &self.catalog;
        let Some(d) = self.durability.as_mut() else {
            return self.txns.apply(entry, index, &mut store, catalog);
        };
        d.applied_bytes_since_start += entry_bytes as u64;
        let (lcp, backup) = (&mut d.lcp, &mut d.backup);
        self.txns.apply_with(entry, index, &mut store, |store, write_set| {
            let touched: Option<Touched> =
                backup.as_mut().map(|b| b.capture.before_apply(store, &write_set.changes, catalog));
            match lcp {
                LcpState::Capturing { capture, .. } => capture.apply_write_set(store, write_set, catalog)?,
                _ => store.apply_write_set(write_set, catalog)?,
            }
            if let (Some(backup), Some(touched)) = (backup.as_mut(), touched) {
                backup.capture.after_apply(store, touched);
            }
            Ok(())
        })
    }

    /// Notes the term of the last applied entry (the checkpoint's cut needs it).
    pub(super) fn note_applied(&mut self, term: u64) {
        if let Some(d) = self.durability.as_mut() {
            d.applied_term = term;
        }
    }

    /// Handles a control entry (a backup marker); false if `data` is not one.
    pub(super) fn apply_control_entry(&mut self, index: u64, data: &[u8]) -> bool {
        let Some(marker) = decode_marker(data) else { return false };
        let node_id = self.node_id;
        let group = self.group.0;
        let Some(d) = self.durability.as_mut() else { return true };
        if marker.node != node_id {
            return true;
        }
        let Some(catalog_bytes) = d.backup_catalogs.remove(&marker.backup_id) else {
            // Proposed by this node before a restart: the management node has given up on it.
            return true;
        };
        if d.aborted_backups.contains(&marker.backup_id) {
            return true;
        }
        let catalog: Catalog = match cairn_proto::data::decode(&catalog_bytes) {
            Ok(catalog) => catalog,
            Err(e) => {
                let _ = d.setup.management.send(RecoveryMessage::BackupEvent(BackupEvent::Failed {
                    backup_id: marker.backup_id,
                    node: node_id,
                    reason: format!("the backup's catalog does not decode: {e}"),
                }));
                return true;
            }
        };
        let capture = {
            let store = self.shared.store.read().unwrap_or_else(|e| e.into_inner());
            BackupCapture::start(&store, &catalog, d.setup.checkpoint_config.block_bytes)
        };
        d.writer.send(WriterJob::BackupBegin {
            root: d.setup.backup_root.clone(),
            backup_id: marker.backup_id,
            node: d.setup.identity.node_id,
        });
        d.last_backup_id = d.last_backup_id.max(marker.backup_id);
        d.backup_in_writer = Some(marker.backup_id);
        d.backup = Some(RunningBackup {
            backup_id: marker.backup_id,
            capture,
            index,
            catalog: catalog_bytes,
            started_unix_ms: unix_ms(),
            throttle: Throttle::new(d.setup.speed.max_bytes_per_second, 1 << 20),
        });
        tracing::info!(node = node_id, backup = marker.backup_id, index, "backup started: writing node group {group}");
        let _ = d.setup.management.send(RecoveryMessage::BackupEvent(BackupEvent::Started {
            backup_id: marker.backup_id,
            node: node_id,
            node_group: group,
            index,
        }));
        true
    }

    // ----- Raft messages -----

    /// Looks at a Raft message before it is stepped; None holds it back (see the module doc).
    pub(super) fn filter_raft(&mut self, message: Message) -> Option<Message> {
        let Some(d) = self.durability.as_mut() else { return Some(message) };
        match message.get_msg_type() {
            MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
                if d.catch_up.as_ref().is_some_and(|c| c.blocks_votes) =>
            {
                tracing::debug!(from = message.from, "not voting: this node is still catching up after losing its log");
                None
            }
            MessageType::MsgAppend => {
                if let Some(catch_up) = d.catch_up.as_mut() {
                    catch_up.leader_commit = Some(catch_up.leader_commit.unwrap_or(0).max(message.commit));
                }
                Some(message)
            }
            MessageType::MsgSnapshot => self.on_snapshot_message(message),
            _ => Some(message),
        }
    }

    fn on_snapshot_message(&mut self, message: Message) -> Option<Message> {
        let commit = self.replica.commit_index();
        let group = self.group.0;
        let meta = message.get_snapshot().get_metadata();
        let (index, term) = (meta.index, meta.term);
        let log_has_it = self.replica.log_term(index) == Some(term);
        let d = self.durability.as_mut()?;
        let Some(handle) = SnapshotHandle::decode(&message.get_snapshot().data) else {
            tracing::warn!(from = message.from, "dropped a Raft snapshot whose handle does not decode");
            return None;
        };
        if handle.cluster_id != d.setup.identity.cluster_id || handle.node_group != group {
            tracing::warn!(from = message.from, ?handle, "dropped a Raft snapshot of another cluster or node group");
            return None;
        }
        if d.prepared.as_ref().is_some_and(|p| p.handle == handle) {
            d.prepared_stepped = true;
            return Some(message);
        }
        if let Some((fetching, saved)) = d.fetching.as_mut() {
            if *fetching == handle {
                // The newest copy of the message carries the current term.
                *saved = message;
            }
            return None;
        }
        if index < commit || log_has_it {
            // Raft will ignore it or just move its commit index: nothing to fetch.
            return Some(message);
        }
        match d.lcp {
            LcpState::Idle => {}
            LcpState::Capturing { .. } => {
                // Both write into lcp/: the local checkpoint gives way to the snapshot.
                d.writer.send(WriterJob::LcpAbandon);
                d.lcp = LcpState::Abandoning;
                return None;
            }
            LcpState::Finishing { .. } | LcpState::Abandoning => return None,
        }
        if d.last_fetch_failure.is_some_and(|at| at.elapsed() < FETCH_RETRY) {
            return None;
        }
        tracing::info!(
            node = self.node_id,
            source = handle.source,
            checkpoint = handle.checkpoint_id,
            index = handle.applied_index,
            "fetching a snapshot from a live replica"
        );
        let (context, inbox, fetch_handle) = (d.setup.fetch.clone(), d.setup.inbox.clone(), handle.clone());
        d.setup.runtime.spawn(async move {
            let result = crate::snapshot::fetch(context, fetch_handle.clone()).await.map(Box::new).map_err(|e| format!("{e:#}"));
            let _ = inbox.send(Event::Durability(DurabilityEvent::Fetched(fetch_handle, result)));
        });
        d.fetching = Some((handle, message));
        None
    }

    /// The leader sent snapshots to these followers: tell Raft (see `Replica::report_snapshot`).
    pub(super) fn snapshots_sent(&mut self, to: Vec<u64>) {
        for peer in to {
            self.replica.report_snapshot(peer, true);
        }
    }

    /// Replaces the store with the fetched checkpoint Raft just accepted.
    pub(super) fn install_snapshot(&mut self, snapshot: &Snapshot) -> anyhow::Result<()> {
        let meta = snapshot.get_metadata();
        let Some(d) = self.durability.as_mut() else {
            anyhow::bail!("received a Raft snapshot, but this loop has no checkpoints");
        };
        let Some(fetched) = d.prepared.take() else {
            anyhow::bail!("Raft delivered a snapshot at index {} that this node has not fetched", meta.index);
        };
        d.prepared_stepped = false;
        if fetched.manifest.applied_index != meta.index || fetched.manifest.applied_term != meta.term {
            anyhow::bail!(
                "Raft delivered a snapshot at {}@{} but the fetched checkpoint is at {}@{}",
                meta.index,
                meta.term,
                fetched.manifest.applied_index,
                fetched.manifest.applied_term
            );
        }
        if let Some(backup) = d.backup.take() {
            fail_backup(d, backup.backup_id, "the node's store was replaced by a snapshot".into());
        }
        let Fetched { mut store, manifest, bytes, elapsed, handle } = *fetched;
        store.sync_catalog(&self.catalog);
        // The transactions of the snapshot's cut replace this node's: a follower runs none of
        // its own (only a leader has running transactions and locks), and the prepared ones and
        // the remembered decisions are the cut's.
        let mut txns = cairn_storage::TxnManager::new(self.settings.txn_limits);
        if !manifest.txn_state.is_empty() {
            txns.restore_replicated_state(&manifest.txn_state)
                .map_err(|e| anyhow::anyhow!("the snapshot's transaction state: {e}"))?;
        }
        self.txns = txns;
        *self.shared.store.write().unwrap_or_else(|e| e.into_inner()) = store;
        self.store_applied = meta.index;
        self.apply_queue.clear();
        self.pending.clear();
        d.applied_term = meta.term;
        d.kept = kept_checkpoints(&d.setup.data_dir);
        d.last_cut = meta.index;
        d.applied_bytes_since_start = 0;
        if let Some(newest) = d.kept.last() {
            d.setup.offered.offer(&d.setup.identity, newest);
        }
        if let Some(catch_up) = d.catch_up.as_mut() {
            catch_up.leader_commit = Some(catch_up.leader_commit.unwrap_or(0).max(meta.index));
        }
        let seconds = elapsed.as_secs_f64().max(1e-3);
        tracing::info!(
            node = self.node_id,
            source = handle.source,
            index = meta.index,
            rows = manifest.rows,
            bytes,
            elapsed_ms = elapsed.as_millis() as u64,
            mib_per_s = format!("{:.1}", bytes as f64 / seconds / (1 << 20) as f64),
            "installed a snapshot from a live replica"
        );
        Ok(())
    }

    // ----- Requests held by a backup barrier -----

    /// Holds a request that would put a change into the log (an autocommit write, a one-phase
    /// commit, a prepare) while a backup barrier is up; gives it back otherwise. Decisions of
    /// prepared transactions go through: the marker waits for them.
    pub(super) fn hold_for_backup(&mut self, request: Request) -> Option<Request> {
        let logs_a_change = match &request {
            Request::Write { .. } => true,
            Request::Txn { control, .. } => matches!(control, TxnControl::CommitOnePhase | TxnControl::Prepare { .. }),
            _ => false,
        };
        match self.durability.as_mut().and_then(|d| d.hold.as_mut()) {
            Some(hold) if logs_a_change => {
                hold.held.push_back(request);
                None
            }
            _ => Some(request),
        }
    }

    fn release_hold(&mut self) {
        let Some(hold) = self.durability.as_mut().and_then(|d| d.hold.take()) else { return };
        if let Some((_, reply)) = hold.waiting {
            let _ = reply.send(RecoveryMessage::Refused("the backup barrier was released before its marker was placed".into()));
        }
        for request in hold.held {
            self.request(request);
        }
    }

    /// Whether no transaction of this node group is prepared and undecided, or on its way into
    /// the log: a marker placed now has every transaction wholly before or wholly after it (new
    /// prepares and one-phase commits are held by the barrier).
    fn no_transaction_in_doubt(&self) -> bool {
        self.txns.prepared().is_empty() && !self.waiting.values().any(|w| matches!(w, Waiter::Txn(_)))
    }

    /// Proposes the marker of a barrier that waited for prepared transactions, once they are
    /// decided, and answers the management node.
    fn place_waiting_marker(&mut self) {
        let waiting = self.durability.as_ref().and_then(|d| d.hold.as_ref()).is_some_and(|h| h.waiting.is_some());
        if !waiting || !self.no_transaction_in_doubt() {
            return;
        }
        let Some(hold) = self.durability.as_mut().and_then(|d| d.hold.as_mut()) else { return };
        let backup_id = hold.backup_id;
        let Some((catalog, reply)) = hold.waiting.take() else { return };
        let answer = self.propose_marker(backup_id, catalog);
        if matches!(answer, RecoveryMessage::Refused(_)) {
            self.release_hold();
        }
        let _ = reply.send(answer);
    }

    fn propose_marker(&mut self, backup_id: u32, catalog: Vec<u8>) -> RecoveryMessage {
        let node = self.node_id;
        match self.replica.propose(encode_marker(&BackupMarker { backup_id, node })) {
            Ok(id) => {
                if let Some(d) = self.durability.as_mut() {
                    d.backup_catalogs.insert(backup_id, catalog);
                }
                RecoveryMessage::BackupPlaced { node_group: self.group.0, index: id.index }
            }
            Err(e) => RecoveryMessage::Refused(format!("cannot order the backup marker: {e}")),
        }
    }

    // ----- Events -----

    pub(super) fn on_durability_event(&mut self, event: DurabilityEvent) -> anyhow::Result<()> {
        match event {
            DurabilityEvent::Writer(done) => self.on_writer_done(done),
            DurabilityEvent::Fetched(handle, result) => {
                let Some(d) = self.durability.as_mut() else { return Ok(()) };
                let saved = match d.fetching.take() {
                    Some((fetching, saved)) if fetching == handle => saved,
                    other => {
                        d.fetching = other;
                        return Ok(());
                    }
                };
                match result {
                    Ok(fetched) => {
                        d.prepared = Some(fetched);
                        d.prepared_stepped = true;
                        if let Err(e) = self.replica.step(saved) {
                            tracing::warn!(error = %e, "Raft refused the snapshot message");
                        }
                    }
                    Err(reason) => {
                        tracing::warn!(source = handle.source, checkpoint = handle.checkpoint_id, %reason, "fetching a snapshot failed; will retry");
                        d.last_fetch_failure = Some(Instant::now());
                    }
                }
            }
            DurabilityEvent::Backup { request, reply } => {
                self.on_backup_request(request, reply);
            }
        }
        Ok(())
    }

    fn on_writer_done(&mut self, done: WriterDone) {
        let node_id = self.node_id;
        let first_index = self.replica_first_index();
        let applied = self.store_applied;
        let Some(d) = self.durability.as_mut() else { return };
        match done {
            WriterDone::LcpCompleted(Ok(completed)) => {
                let LcpState::Finishing { started, cut_index } = std::mem::replace(&mut d.lcp, LcpState::Idle) else {
                    return;
                };
                if let Some(e) = &completed.prune_error {
                    tracing::warn!(error = %e, "could not remove older local checkpoints");
                }
                let manifest = &completed.manifest;
                d.kept.retain(|k| !completed.removed.contains(&k.id));
                d.kept.push(KeptCheckpoint {
                    id: manifest.checkpoint_id,
                    applied_index: manifest.applied_index,
                    applied_term: manifest.applied_term,
                    membership: manifest.raft_membership.clone(),
                });
                d.kept.sort_by_key(|k| k.id);
                if let Some(newest) = d.kept.last() {
                    d.setup.offered.offer(&d.setup.identity, newest);
                }
                let bytes = manifest.data_bytes();
                let elapsed = started.elapsed();
                tracing::info!(
                    node = node_id,
                    checkpoint = manifest.checkpoint_id,
                    index = cut_index,
                    rows = manifest.rows,
                    bytes,
                    elapsed_ms = elapsed.as_millis() as u64,
                    mib_per_s = format!("{:.1}", bytes as f64 / elapsed.as_secs_f64().max(1e-3) / (1 << 20) as f64),
                    "local checkpoint completed"
                );
                // The log goes only behind the older kept checkpoint (see the module doc).
                if d.kept.len() >= 2 {
                    let older = d.kept[d.kept.len() - 2].applied_index.min(applied);
                    if older + 1 > first_index {
                        if let Err(e) = self.replica.compact_log(older) {
                            tracing::error!(error = %e, "could not truncate the Raft log behind a checkpoint");
                        } else {
                            tracing::debug!(node = node_id, through = older, "Raft log truncated");
                        }
                    }
                }
                // Memory freed since the last checkpoint (write sets, log entries just
                // truncated, checkpoint slices) goes back to the system, not only to malloc.
                crate::heap::release_free_memory();
            }
            WriterDone::LcpCompleted(Err(reason)) | WriterDone::LcpFailed(reason) => {
                tracing::error!(node = node_id, %reason, "local checkpoint failed; the previous ones stay");
                d.lcp = LcpState::Idle;
            }
            WriterDone::LcpAbandoned => {
                if matches!(d.lcp, LcpState::Abandoning) {
                    d.lcp = LcpState::Idle;
                }
            }
            WriterDone::BackupCompleted(result) => {
                let backup_id = d.backup_in_writer.take().unwrap_or(d.last_backup_id);
                if result.is_err() && d.backup.as_ref().is_some_and(|b| b.backup_id == backup_id) {
                    // The files could not even be created: stop copying.
                    d.backup = None;
                }
                let message = match result {
                    Ok(control) => {
                        tracing::info!(node = node_id, backup = control.backup_id, records = control.records, "backup completed");
                        BackupEvent::Completed {
                            backup_id: control.backup_id,
                            node: node_id,
                            node_group: control.node_group.0,
                            index: control.cut_index,
                            records: control.records,
                            data_bytes: control.data_bytes(),
                        }
                    }
                    Err(reason) => {
                        tracing::error!(node = node_id, %reason, "backup failed");
                        BackupEvent::Failed { backup_id, node: node_id, reason }
                    }
                };
                let _ = d.setup.management.send(RecoveryMessage::BackupEvent(message));
            }
        }
    }

    fn replica_first_index(&self) -> u64 {
        use cairn_replication::wal::LogStore;
        self.replica.log_store().first_index()
    }

    fn on_backup_request(&mut self, request: BackupRequest, reply: oneshot::Sender<RecoveryMessage>) {
        match request {
            BackupRequest::Barrier { backup_id, catalog, hold_ms } => self.barrier(backup_id, catalog, hold_ms, reply),
            other => {
                let answer = self.backup_control(other);
                let _ = reply.send(answer);
            }
        }
    }

    /// Raises a backup barrier: holds requests that would log a change and proposes the marker,
    /// at once or, while a transaction of the group is in doubt, once none is (see
    /// [`NodeGroupLoop::place_waiting_marker`]); answers the management node with the marker's
    /// index.
    fn barrier(&mut self, backup_id: u32, catalog: Vec<u8>, hold_ms: u64, reply: oneshot::Sender<RecoveryMessage>) {
        if let Err(refusal) = self.may_raise_barrier(backup_id) {
            let _ = reply.send(RecoveryMessage::Refused(refusal));
            return;
        }
        let in_doubt = !self.no_transaction_in_doubt();
        let Some(d) = self.durability.as_mut() else { return };
        d.aborted_backups.remove(&backup_id);
        let mut hold = Hold {
            backup_id,
            until: Instant::now() + Duration::from_millis(hold_ms.min(60_000)),
            held: VecDeque::new(),
            waiting: None,
        };
        if in_doubt {
            hold.waiting = Some((catalog, reply));
            d.hold = Some(hold);
            return;
        }
        d.hold = Some(hold);
        let answer = self.propose_marker(backup_id, catalog);
        if matches!(answer, RecoveryMessage::Refused(_)) {
            if let Some(d) = self.durability.as_mut() {
                d.hold = None;
            }
        }
        let _ = reply.send(answer);
    }

    /// Why this node cannot raise a barrier for `backup_id` now, if it cannot.
    fn may_raise_barrier(&self, backup_id: u32) -> Result<(), String> {
        if !self.serving() {
            return Err("not the leader".into());
        }
        let node_id = self.node_id;
        let Some(d) = self.durability.as_ref() else {
            return Err("this node does not write backups".into());
        };
        if let Some(running) = &d.backup {
            return Err(format!("backup {} is still being written", running.backup_id));
        }
        if d.hold.is_some() {
            return Err("another backup is starting".into());
        }
        let control = cairn_storage::backup::backup_dir(&d.setup.backup_root, backup_id)
            .join(cairn_storage::backup::control_file_name(backup_id, d.setup.identity.node_id));
        if control.exists() {
            return Err(format!("backup {backup_id} already exists on node {node_id}"));
        }
        Ok(())
    }

    /// Release and abort of a backup.
    fn backup_control(&mut self, request: BackupRequest) -> RecoveryMessage {
        match request {
            BackupRequest::Barrier { .. } => RecoveryMessage::Refused("a barrier is not a control request".into()),
            BackupRequest::Release { backup_id } => {
                if self.durability.as_ref().and_then(|d| d.hold.as_ref()).is_some_and(|h| h.backup_id == backup_id) {
                    self.release_hold();
                }
                RecoveryMessage::Ack
            }
            BackupRequest::Abort { backup_id } => {
                if self.durability.as_ref().and_then(|d| d.hold.as_ref()).is_some_and(|h| h.backup_id == backup_id) {
                    self.release_hold();
                }
                if let Some(d) = self.durability.as_mut() {
                    d.aborted_backups.insert(backup_id);
                    d.backup_catalogs.remove(&backup_id);
                    if d.backup.as_ref().is_some_and(|b| b.backup_id == backup_id) {
                        d.backup = None;
                        fail_backup(d, backup_id, "aborted by ABORT BACKUP".into());
                    }
                }
                RecoveryMessage::Ack
            }
        }
    }

    // ----- Each round -----

    /// Durability work of one loop round (after Raft's Ready was processed).
    pub(super) fn durability_round(&mut self) -> anyhow::Result<()> {
        if self.durability.is_none() {
            return Ok(());
        }
        self.release_expired_hold();
        self.place_waiting_marker();
        self.discard_unaccepted_snapshot();
        self.flush_if_due()?;
        self.update_write_speed();
        self.end_catch_up();
        self.maybe_start_checkpoint();
        self.step_checkpoint();
        self.step_backup();
        Ok(())
    }

    fn release_expired_hold(&mut self) {
        let expired = self.durability.as_ref().and_then(|d| d.hold.as_ref()).is_some_and(|h| Instant::now() >= h.until);
        if expired {
            tracing::warn!(node = self.node_id, "a backup barrier was not released in time; taking writes again");
            self.release_hold();
        }
    }

    fn discard_unaccepted_snapshot(&mut self) {
        let Some(d) = self.durability.as_mut() else { return };
        if !d.prepared_stepped || d.prepared.is_none() {
            return;
        }
        // Raft had its chance in this round's Ready and did not take the snapshot (it was
        // stale, or its term was old): the installed copy is not this node's state.
        if let Some(fetched) = d.prepared.take() {
            let dir = checkpoint_dir(&lcp_root(&d.setup.data_dir), fetched.manifest.checkpoint_id);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove an unused snapshot");
            }
            d.kept = kept_checkpoints(&d.setup.data_dir);
            tracing::info!(node = self.node_id, index = fetched.manifest.applied_index, "Raft did not take the fetched snapshot");
        }
        d.prepared_stepped = false;
    }

    fn flush_if_due(&mut self) -> anyhow::Result<()> {
        let due = self.durability.as_ref().and_then(|d| d.next_flush).is_some_and(|at| Instant::now() >= at);
        if due {
            self.replica
                .flush_and_sync()
                .map_err(|e| anyhow::anyhow!("the Raft log of node group {} failed to sync: {e}", self.group))?;
            if let Some(d) = self.durability.as_mut() {
                d.next_flush = d.setup.flush_interval.map(|i| Instant::now() + i);
            }
        }
        Ok(())
    }

    fn update_write_speed(&mut self) {
        let Some(d) = self.durability.as_mut() else { return };
        let elapsed = d.window_start.elapsed();
        if elapsed < LOAD_WINDOW {
            return;
        }
        let busy = 1.0 - d.idle.as_secs_f64() / elapsed.as_secs_f64();
        let rate = d.setup.speed.rate_for_load(busy);
        d.throttle.set_rate(rate);
        if let Some(backup) = d.backup.as_mut() {
            backup.throttle.set_rate(rate);
        }
        d.idle = Duration::ZERO;
        d.window_start = Instant::now();
    }

    fn end_catch_up(&mut self) {
        let applied = self.store_applied;
        let Some(d) = self.durability.as_mut() else { return };
        if let Some(CatchUp { leader_commit: Some(commit), .. }) = d.catch_up
            && applied >= commit
        {
            tracing::info!(node = self.node_id, applied, "caught up with the leader after losing the log");
            d.catch_up = None;
        }
    }

    fn maybe_start_checkpoint(&mut self) {
        let applied = self.store_applied;
        let Some(d) = self.durability.as_mut() else { return };
        if !matches!(d.lcp, LcpState::Idle) || d.fetching.is_some() || d.prepared.is_some() {
            return;
        }
        if applied <= d.last_cut {
            // Nothing to write: the time trigger starts counting again (the loop's wakeup
            // follows it, and must not stay in the past).
            if d.setup.lcp_max_interval.is_some_and(|interval| d.last_start.elapsed() >= interval) {
                d.last_start = Instant::now();
            }
            return;
        }
        let by_log = d.applied_bytes_since_start >= d.setup.lcp_log_bytes;
        let by_time = d.setup.lcp_max_interval.is_some_and(|interval| d.last_start.elapsed() >= interval);
        if !by_log && !by_time {
            return;
        }
        let capture = match Capture::new(&d.setup.checkpoint_config) {
            Ok(capture) => capture,
            Err(e) => {
                tracing::error!(error = %e, "cannot start a local checkpoint");
                return;
            }
        };
        d.writer.send(WriterJob::LcpBegin {
            root: lcp_root(&d.setup.data_dir),
            identity: d.setup.identity,
            config: d.setup.checkpoint_config.clone(),
        });
        d.applied_bytes_since_start = 0;
        d.last_start = Instant::now();
        d.lcp = LcpState::Capturing { capture: Box::new(capture), started: Instant::now() };
        tracing::debug!(node = self.node_id, by_log, by_time, "local checkpoint started");
    }

    fn step_checkpoint(&mut self) {
        let queue_empty = self.apply_queue.is_empty();
        let Some(d) = self.durability.as_mut() else { return };
        let now = d.now();
        let LcpState::Capturing { capture, started } = &mut d.lcp else { return };
        // Blocks of changes applied since the last round go out whatever the throttle says
        // (holding them would let memory grow with the write load); they count against it.
        let mut written = 0u64;
        for block in capture.take_blocks() {
            written += block.bytes.len() as u64;
            d.writer.send(WriterJob::LcpBlock(block));
        }
        if !capture.is_captured() && d.throttle.is_ready(now) && d.writer.in_flight() < MAX_IN_FLIGHT_BYTES {
            let store = self.shared.store.read().unwrap_or_else(|e| e.into_inner());
            capture.capture(&store, d.setup.checkpoint_config.slice_bytes);
            for block in capture.take_blocks() {
                written += block.bytes.len() as u64;
                d.writer.send(WriterJob::LcpBlock(block));
            }
        }
        if written > 0 {
            d.throttle.consume(now, written);
        }
        // The membership in the cut is Raft's current one, which matches the store only when
        // nothing committed waits to be applied.
        if capture.is_captured() && queue_empty {
            // The cut is made only here, once per checkpoint: it serializes the membership and
            // the transaction state (up to DECISIONS_KEPT remembered decisions), which every
            // loop round used to pay for.
            let cut = Cut {
                applied_index: self.store_applied,
                applied_term: d.applied_term,
                catalog_version: self.catalog.version,
                raft_membership: self.replica.conf_state().write_to_bytes().unwrap_or_default(),
                txn_state: self.txns.replicated_state(),
            };
            let started = *started;
            let LcpState::Capturing { capture, .. } = std::mem::replace(&mut d.lcp, LcpState::Idle) else { return };
            let cut_index = cut.applied_index;
            let finished = {
                let store = self.shared.store.read().unwrap_or_else(|e| e.into_inner());
                capture.finish(&store, cut)
            };
            match finished {
                Ok(captured) => {
                    d.writer.send(WriterJob::LcpComplete(Box::new(captured)));
                    d.last_cut = cut_index;
                    d.lcp = LcpState::Finishing { started, cut_index };
                }
                Err(e) => {
                    tracing::error!(error = %e, "local checkpoint abandoned");
                    d.writer.send(WriterJob::LcpAbandon);
                    d.lcp = LcpState::Abandoning;
                }
            }
        }
    }

    fn step_backup(&mut self) {
        let node_id = self.node_id;
        let Some(d) = self.durability.as_mut() else { return };
        let now = d.now();
        let Some(backup) = d.backup.as_mut() else { return };
        let mut written = 0u64;
        for block in backup.capture.take_blocks() {
            written += block.len() as u64;
            d.writer.send(WriterJob::BackupBlock(block));
        }
        if !backup.capture.is_captured() && backup.throttle.is_ready(now) && d.writer.in_flight() < MAX_IN_FLIGHT_BYTES {
            let store = self.shared.store.read().unwrap_or_else(|e| e.into_inner());
            backup.capture.capture(&store, d.setup.checkpoint_config.slice_bytes);
            for block in backup.capture.take_blocks() {
                written += block.len() as u64;
                d.writer.send(WriterJob::BackupBlock(block));
            }
        }
        if written > 0 {
            backup.throttle.consume(now, written);
        }
        if !backup.capture.is_captured() {
            return;
        }
        let Some(backup) = d.backup.take() else { return };
        match backup.capture.finish() {
            Ok((blocks, tables, records)) => {
                for block in blocks {
                    d.writer.send(WriterJob::BackupBlock(block));
                }
                let control = BackupControl {
                    backup_id: backup.backup_id,
                    cluster_id: d.setup.identity.cluster_id,
                    node_id: d.setup.identity.node_id,
                    node_group: d.setup.identity.node_group,
                    cut_index: backup.index,
                    catalog: backup.catalog,
                    tables,
                    files: Vec::new(),
                    records,
                    started_unix_ms: backup.started_unix_ms,
                    completed_unix_ms: unix_ms(),
                };
                d.writer.send(WriterJob::BackupComplete(Box::new(control)));
            }
            Err(e) => {
                tracing::error!(node = node_id, error = %e, "backup abandoned");
                fail_backup(d, backup.backup_id, e.to_string());
            }
        }
    }

    // ----- Status and shutdown -----

    /// Fills in the start phase, notices and backup ids of a heartbeat's status.
    pub(super) fn durability_status(&mut self, status: &mut NodeStatus) {
        let leader_known = self.replica.leader_id().is_some();
        let applied = self.store_applied;
        let node_id = self.node_id;
        let Some(d) = self.durability.as_mut() else { return };
        let phase = if self.started {
            5
        } else if applied >= d.setup.replay_until && leader_known {
            4
        } else if applied >= d.setup.replay_until {
            3
        } else {
            2
        };
        if phase > d.phase_logged {
            d.phase_logged = phase;
            if phase < 5 {
                tracing::info!(node = node_id, phase, "start phase completed");
            }
        }
        status.start_phase = phase;
        let mut notices = d.setup.notices.clone();
        if let Some((handle, _)) = &d.fetching {
            notices.push(format!("copying a snapshot (checkpoint {}) from node {}", handle.checkpoint_id, handle.source));
        }
        if let Some(catch_up) = &d.catch_up {
            notices.push(if catch_up.blocks_votes {
                "catching up from the node group's leader before taking part in elections".into()
            } else {
                "catching up from the node group's leader".into()
            });
        }
        status.notice = notices.join("; ");
        status.last_backup_id = d.last_backup_id;
    }

    /// Before the loop returns: the log made durable, unfinished files given up.
    pub(super) fn durability_exit(&mut self) {
        if let Err(e) = self.replica.flush_and_sync() {
            tracing::error!(error = %e, "could not sync the Raft log at shutdown");
        }
        let Some(d) = self.durability.as_mut() else { return };
        if matches!(d.lcp, LcpState::Capturing { .. }) {
            d.writer.send(WriterJob::LcpAbandon);
        }
        if let Some(backup) = d.backup.take() {
            fail_backup(d, backup.backup_id, "the node is shutting down".into());
        }
        let error = DataError::Unavailable("the data node is shutting down".into());
        if let Some(hold) = d.hold.take() {
            if let Some((_, reply)) = hold.waiting {
                let _ = reply.send(RecoveryMessage::Refused("the data node is shutting down".into()));
            }
            for request in hold.held {
                request.fail(error.clone());
            }
        }
    }

    /// Whether this node holds everything it needs to call itself started: not catching up
    /// after losing its log, not copying a snapshot.
    pub(super) fn durability_caught_up(&self) -> bool {
        self.durability
            .as_ref()
            .is_none_or(|d| d.catch_up.is_none() && d.fetching.is_none() && d.prepared.is_none())
    }

    /// The durability part of the loop's wait.
    pub(super) fn durability_wakeup(&self) -> Option<Instant> {
        self.durability.as_ref().and_then(Durability::wakeup)
    }

    pub(super) fn note_idle(&mut self, idle: Duration) {
        if let Some(d) = self.durability.as_mut() {
            d.note_idle(idle);
        }
    }
}

fn fail_backup(d: &mut Durability, backup_id: u32, reason: String) {
    if d.backup_in_writer == Some(backup_id) {
        d.backup_in_writer = None;
    }
    d.writer.send(WriterJob::BackupAbandon { root: d.setup.backup_root.clone(), backup_id, node: d.setup.identity.node_id });
    let _ = d.setup.management.send(RecoveryMessage::BackupEvent(BackupEvent::Failed {
        backup_id,
        node: d.setup.identity.node_id.0,
        reason,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_never_log_entries_and_round_trip() {
        use cairn_common::ids::{NodeGroupId, TableId};
        use cairn_common::ops::{RowChange, TxnId, WriteSet};
        let marker = BackupMarker { backup_id: 7, node: 2 };
        let bytes = encode_marker(&marker);
        assert_eq!(decode_marker(&bytes), Some(marker));
        assert!(LogEntry::decode(&bytes).is_err());
        let write_set = WriteSet { changes: vec![RowChange::Truncate { table: TableId(3) }] };
        let txn = TxnId(0x4342_4b50);
        for entry in [
            LogEntry::Write { txn: None, write_set: write_set.clone() },
            LogEntry::Write { txn: Some(txn), write_set: write_set.clone() },
            LogEntry::Prepare { txn, write_set, participants: vec![NodeGroupId(0)], decision_group: NodeGroupId(0) },
            LogEntry::Decide { txn, commit: true },
        ] {
            assert_eq!(decode_marker(&entry.encode()), None, "{entry:?}");
        }
    }
}
