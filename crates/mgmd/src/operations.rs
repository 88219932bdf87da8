//! Admin commands that act on nodes: `N STOP`, `N RESTART [-n] [-i]`, `N START`, `SHUTDOWN`,
//! `START BACKUP` and `ABORT BACKUP`, answered in ndb_mgm's words.
//!
//! **Stops and restarts.** The management node sends the data node a [`NodeAction`] over the
//! link the node registered on, waits for the ack, marks the node "stopping" and waits (up to
//! [`STOP_WAIT`]) until it disconnects. The node's angel process then starts it again as asked
//! (see `cairn-datad`'s `angel`). `ALL RESTART` is NDB's system restart: every data node stops
//! at once and recovers from its own disk.
//!
//! **Backups.** `START BACKUP` takes a transactionally consistent backup of every table across
//! all node groups while writes go on:
//!
//! 1. *Barrier.* Every data node is asked to place the backup's marker; the leader of each node
//!    group holds new writes (reads go on) and proposes the marker as an entry of its Raft log,
//!    and answers with the entry's index. Other replicas answer "not the leader".
//! 2. *Release.* Once every node group has placed its marker, the leaders take writes again.
//!    Between the last marker placed and the release, no node group accepts a write, so the
//!    entries before the markers are exactly the cluster's state at one instant: a write
//!    acknowledged before that instant is before its group's marker, and a write that started
//!    after another write was acknowledged is never before a marker when that other write is
//!    after one (it would have been held). The hold is bounded ([`BARRIER_HOLD`]); if a group
//!    cannot place its marker in time the backup is aborted and writes resume.
//! 3. *Copy.* The data node that proposed a marker writes its node group's rows as they were
//!    at the marker (copy-before-write, see `cairn_storage::backup`) into
//!    `BACKUP/BACKUP-<id>/` of its backup directory, throttled like a local checkpoint, and
//!    reports Started and Completed.
//!
//! With the two-phase commit that spans node groups, step 1 also waits until no prepared
//! transaction of the group is undecided (holding new prepares and one-phase commits, letting
//! decisions through; see `cairn-datad`'s `node_group::durability`), so that no transaction
//! straddles the cut.
//!
//! Left out: several backups at once (a second START BACKUP while one runs is refused by the
//! data nodes), and NDB's SNAPSHOTSTART/SNAPSHOTEND options (the cut is the start).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cairn_common::ids::NodeId;
use cairn_proto::data::encode;
use cairn_proto::recovery::{BackupEvent, BackupRequest, NodeAction, RecoveryMessage};

use crate::admin::{AdminCommand, BackupWait, Target};
use crate::server::Shared;

/// How long a node has to acknowledge a stop or restart.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping node has to disconnect before the command reports it still stopping.
const STOP_WAIT: Duration = Duration::from_secs(60);
/// The longest a node group holds writes for a backup's marker.
pub const BARRIER_HOLD: Duration = Duration::from_secs(5);
/// How long each node group leader has to place its marker.
const BARRIER_TIMEOUT: Duration = Duration::from_secs(4);
/// How long the markers may take to be applied (the backups to start).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether a parsed command is one of the operations run here.
pub fn is_operation(command: &AdminCommand) -> bool {
    matches!(
        command,
        AdminCommand::Stop(_)
            | AdminCommand::Restart { .. }
            | AdminCommand::Start(_)
            | AdminCommand::Shutdown
            | AdminCommand::StartBackup { .. }
            | AdminCommand::AbortBackup(_)
    )
}

/// Runs an operation; returns the text to print and whether it succeeded.
pub async fn run(command: &AdminCommand, shared: &Arc<Shared>) -> (String, bool) {
    match command {
        AdminCommand::Stop(target) => stop(shared, target).await,
        AdminCommand::Restart { target, initial, no_start } => restart(shared, target, *initial, *no_start).await,
        AdminCommand::Start(target) => start(shared, target).await,
        AdminCommand::Shutdown => shutdown(shared).await,
        AdminCommand::StartBackup { id, wait } => start_backup(shared, *id, *wait).await,
        AdminCommand::AbortBackup(id) => abort_backup(shared, *id).await,
        _ => ("not an operation".into(), false),
    }
}

fn data_node_ids(shared: &Shared) -> Vec<u32> {
    shared.config.data_nodes.iter().map(|d| d.id.0).collect()
}

fn phase(shared: &Shared, id: u32) -> Option<String> {
    shared.nodes.snapshot().get(&id).map(|n| n.status.as_ref().map(|s| s.phase.clone()).unwrap_or_default())
}

/// Sends `action` to data node `id`; Ok once it acknowledged.
async fn order(shared: &Shared, id: u32, action: NodeAction) -> Result<(), String> {
    if shared.config.data_node(NodeId(id)).is_none() {
        return Err(format!("Node {id}: is not a data node"));
    }
    let Some(channel) = shared.nodes.channel(id) else {
        return Err(format!("Node {id}: not connected"));
    };
    match channel.call(RecoveryMessage::Node(action), ACK_TIMEOUT).await {
        Ok(RecoveryMessage::Ack) => Ok(()),
        Ok(RecoveryMessage::Refused(reason)) => Err(format!("Node {id}: {reason}")),
        Ok(other) => Err(format!("Node {id}: unexpected answer {other:?}")),
        Err(e) => Err(format!("Node {id}: {e}")),
    }
}

/// Waits until every node in `ids` has disconnected, or registered again since `before` (a
/// restarting node comes back quickly), or the wait runs out; returns those still connected.
async fn wait_disconnected(
    shared: &Shared,
    ids: &[u32],
    before: &BTreeMap<u32, std::time::Instant>,
    limit: Duration,
) -> Vec<u32> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let live = shared.nodes.snapshot();
        let left: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|id| live.get(id).is_some_and(|node| before.get(id) == Some(&node.connected_at)))
            .collect();
        if left.is_empty() || tokio::time::Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Orders `action` on every target, marks them stopping and waits for them to go.
async fn stop_nodes(shared: &Shared, ids: &[u32], action: NodeAction) -> (Vec<u32>, Vec<String>) {
    let mut ordered = Vec::new();
    let mut errors = Vec::new();
    let before: BTreeMap<u32, std::time::Instant> =
        shared.nodes.snapshot().into_iter().map(|(id, node)| (id, node.connected_at)).collect();
    let before = &before;
    let results = futures_join(ids.iter().map(|&id| async move {
        let result = order(shared, id, action).await;
        // Marked as soon as it acknowledged, and only the registration that was ordered.
        if result.is_ok()
            && let Some(connected_at) = before.get(&id)
        {
            shared.nodes.mark_stopping(id, *connected_at);
        }
        (id, result)
    }))
    .await;
    for (id, result) in results {
        match result {
            Ok(()) => ordered.push(id),
            Err(e) => errors.push(e),
        }
    }
    let left = wait_disconnected(shared, &ordered, &before, STOP_WAIT).await;
    for id in left {
        errors.push(format!("Node {id}: still shutting down after {STOP_WAIT:?}"));
    }
    (ordered, errors)
}

/// Runs futures concurrently and collects their outputs in order.
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut running: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = running.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for (future, output) in running.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => all_done = false,
                }
            }
        }
        if all_done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

fn targets(shared: &Shared, target: &Target) -> Vec<u32> {
    match target {
        Target::All => data_node_ids(shared).into_iter().filter(|id| shared.nodes.is_connected(*id)).collect(),
        Target::Node(id) => vec![*id],
    }
}

async fn stop(shared: &Arc<Shared>, target: &Target) -> (String, bool) {
    let ids = targets(shared, target);
    let (stopped, errors) = stop_nodes(shared, &ids, NodeAction::Stop).await;
    let mut lines = Vec::new();
    match target {
        Target::All => {
            lines.push("Executing STOP on all nodes.".to_string());
            if !stopped.is_empty() {
                lines.push("NDB Cluster has shutdown.".to_string());
            }
        }
        Target::Node(id) if stopped.contains(id) => {
            lines.push(format!("Node {id}: Node shutdown initiated"));
            lines.push(format!("Node {id}: Node shutdown completed."));
            lines.push(format!("Node {id} has shutdown."));
        }
        Target::Node(_) => {}
    }
    let ok = errors.is_empty();
    lines.extend(errors);
    (lines.join("\n"), ok)
}

async fn restart(shared: &Arc<Shared>, target: &Target, initial: bool, no_start: bool) -> (String, bool) {
    let ids = targets(shared, target);
    let mut lines = Vec::new();
    if *target == Target::All {
        lines.push("Executing RESTART on all nodes.".to_string());
        lines.push("Starting shutdown. This may take a while. Please wait...".to_string());
    }
    let (restarted, errors) = stop_nodes(shared, &ids, NodeAction::Restart { initial, no_start }).await;
    match target {
        Target::All if !restarted.is_empty() => lines.push("All DB nodes are being restarted.".to_string()),
        Target::Node(id) if restarted.contains(id) => {
            let how = match (initial, no_start) {
                (_, true) => ", no start",
                (true, false) => ", initial",
                (false, false) => "",
            };
            lines.push(format!("Node {id}: Node shutdown initiated"));
            lines.push(format!("Node {id}: Node shutdown completed, restarting{how}."));
            lines.push(format!("Node {id} is being restarted"));
        }
        _ => {}
    }
    let ok = errors.is_empty();
    lines.extend(errors);
    (lines.join("\n"), ok)
}

async fn start(shared: &Arc<Shared>, target: &Target) -> (String, bool) {
    let ids: Vec<u32> = match target {
        Target::All => data_node_ids(shared)
            .into_iter()
            .filter(|id| phase(shared, *id).as_deref() == Some("not started"))
            .collect(),
        Target::Node(id) => vec![*id],
    };
    let mut lines = Vec::new();
    let mut ok = true;
    for id in ids {
        if phase(shared, id).as_deref() != Some("not started") {
            ok = false;
            lines.push(format!("Start failed.\n*  Node {id} is not waiting to be started (start it with N RESTART -n first)"));
            continue;
        }
        match order(shared, id, NodeAction::Start).await {
            Ok(()) => lines.push(format!("Database node {id} is being started.")),
            Err(e) => {
                ok = false;
                lines.push(e);
            }
        }
    }
    if lines.is_empty() {
        lines.push("No data node is waiting to be started.".into());
    }
    (lines.join("\n"), ok)
}

async fn shutdown(shared: &Arc<Shared>) -> (String, bool) {
    let ids = targets(shared, &Target::All);
    let (stopped, errors) = stop_nodes(shared, &ids, NodeAction::Stop).await;
    let mut lines = vec![format!("{} NDB Cluster node(s) have shutdown.", stopped.len())];
    lines.push("Disconnecting to allow management server to shutdown.".into());
    let ok = errors.is_empty();
    lines.extend(errors);
    // Let the answer leave before the management node goes.
    let shared = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        shared.shutdown.notify_one();
    });
    (lines.join("\n"), ok)
}

fn backup_failed(reason: &str) -> (String, bool) {
    (format!("Backup failed\n*  3001: Could not start backup\n*        {reason}: Temporary error: Temporary Resource"), false)
}

/// The next free backup id: above every id a data node reports on its disk and every id this
/// management node handed out.
fn next_backup_id(shared: &Shared) -> u32 {
    let on_disk =
        shared.nodes.snapshot().values().filter_map(|n| n.status.as_ref()).map(|s| s.last_backup_id).max().unwrap_or(0);
    on_disk.max(shared.last_backup_id.load(Ordering::Relaxed)) + 1
}

async fn tell_all(shared: &Shared, request: BackupRequest) {
    for id in data_node_ids(shared) {
        if let Some(channel) = shared.nodes.channel(id) {
            let _ = channel.call(RecoveryMessage::Backup(request.clone()), ACK_TIMEOUT).await;
        }
    }
}

async fn start_backup(shared: &Arc<Shared>, id: Option<u32>, wait: BackupWait) -> (String, bool) {
    let backup_id = id.unwrap_or_else(|| next_backup_id(shared));
    shared.last_backup_id.fetch_max(backup_id, Ordering::Relaxed);
    let me = shared.identity.node_id;
    let groups: BTreeSet<u32> = shared.config.data_nodes.iter().map(|d| d.node_group.0).collect();
    let mut events = shared.backup_events.subscribe();
    let catalog = shared.control.catalog.borrow().clone();

    // 1. Barrier: every node group's leader holds writes and places the marker.
    let request = RecoveryMessage::Backup(BackupRequest::Barrier {
        backup_id,
        catalog: encode(catalog.as_ref()).to_vec(),
        hold_ms: BARRIER_HOLD.as_millis() as u64,
    });
    let mut placed: BTreeMap<u32, (u32, u64)> = BTreeMap::new();
    let mut refusals = Vec::new();
    let calls = data_node_ids(shared).into_iter().filter_map(|node| {
        let channel = shared.nodes.channel(node)?;
        let request = request.clone();
        Some(async move { (node, channel.call(request, BARRIER_TIMEOUT).await) })
    });
    for (node, answer) in futures_join(calls).await {
        match answer {
            Ok(RecoveryMessage::BackupPlaced { node_group, index }) => {
                placed.insert(node_group, (node, index));
            }
            Ok(RecoveryMessage::Refused(reason)) if reason == "not the leader" => {}
            Ok(RecoveryMessage::Refused(reason)) => refusals.push(format!("node {node}: {reason}")),
            Ok(other) => refusals.push(format!("node {node}: unexpected answer {other:?}")),
            Err(e) => refusals.push(format!("node {node}: {e}")),
        }
    }
    let missing: Vec<u32> = groups.iter().copied().filter(|g| !placed.contains_key(g)).collect();
    if !missing.is_empty() || !refusals.is_empty() {
        tell_all(shared, BackupRequest::Abort { backup_id }).await;
        tell_all(shared, BackupRequest::Release { backup_id }).await;
        let mut reason = String::new();
        if !missing.is_empty() {
            reason.push_str(&format!("no leader of node group(s) {missing:?} placed the backup marker"));
        }
        if !refusals.is_empty() {
            if !reason.is_empty() {
                reason.push_str("; ");
            }
            reason.push_str(&refusals.join("; "));
        }
        return backup_failed(&reason);
    }

    // 2. Release: every group's marker is placed; writes go on.
    tell_all(shared, BackupRequest::Release { backup_id }).await;
    let designated: BTreeMap<u32, u32> = placed.iter().map(|(group, (node, _))| (*node, *group)).collect();
    let reporter = designated.keys().next().copied().unwrap_or(0);
    let cut: Vec<u64> = placed.values().map(|(_, index)| *index).collect();
    if wait == BackupWait::NoWait {
        return (format!("Backup {backup_id} started from node {me} (NOWAIT)"), true);
    }

    // 3. Wait for the designated nodes to start (and complete).
    let mut lines = vec![match wait {
        BackupWait::Completed => "Waiting for completed, this may take several minutes".to_string(),
        _ => "Waiting for started, this may take several minutes".to_string(),
    }];
    let mut started: BTreeSet<u32> = BTreeSet::new();
    let mut completed: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    let started_by = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        let all_started = started.len() == designated.len();
        if all_started && (wait == BackupWait::Started || completed.len() == designated.len()) {
            break;
        }
        // A designated node that went away takes the backup with it.
        let live = shared.nodes.snapshot();
        if let Some(gone) = designated.keys().find(|n| !live.contains_key(n) && !completed.contains_key(n)) {
            tell_all(shared, BackupRequest::Abort { backup_id }).await;
            lines.push(format!("Node {reporter}: Backup {backup_id} started from {me} has been aborted. Error: 1326"));
            lines.push(format!("*  Node {gone}, which was writing the backup of its node group, failed"));
            return (lines.join("\n"), false);
        }
        if !all_started && tokio::time::Instant::now() > started_by {
            tell_all(shared, BackupRequest::Abort { backup_id }).await;
            lines.push(format!("Node {reporter}: Backup {backup_id} started from {me} has been aborted. Error: 1326"));
            lines.push(format!("*  the backup markers were not applied within {START_TIMEOUT:?}"));
            return (lines.join("\n"), false);
        }
        let event = match tokio::time::timeout(Duration::from_millis(250), events.recv()).await {
            Ok(Ok(event)) => event,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) | Err(_) => continue,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => break,
        };
        match event {
            BackupEvent::Started { backup_id: b, node, .. } if b == backup_id && designated.contains_key(&node) => {
                if started.insert(node) && started.len() == designated.len() {
                    lines.push(format!("Node {reporter}: Backup {backup_id} started from node {me}"));
                }
            }
            BackupEvent::Completed { backup_id: b, node, records, data_bytes, .. }
                if b == backup_id && designated.contains_key(&node) =>
            {
                started.insert(node);
                completed.insert(node, (records, data_bytes));
            }
            BackupEvent::Failed { backup_id: b, node, reason } if b == backup_id => {
                tell_all(shared, BackupRequest::Abort { backup_id }).await;
                lines.push(format!("Node {reporter}: Backup {backup_id} started from {me} has been aborted. Error: 1326"));
                lines.push(format!("*  Node {node}: {reason}"));
                return (lines.join("\n"), false);
            }
            _ => {}
        }
    }
    if wait == BackupWait::Completed {
        let records: u64 = completed.values().map(|(r, _)| r).sum();
        let bytes: u64 = completed.values().map(|(_, b)| b).sum();
        let (start, stop) = (cut.iter().min().copied().unwrap_or(0), cut.iter().max().copied().unwrap_or(0));
        lines.push(format!("Node {reporter}: Backup {backup_id} started from node {me} completed"));
        lines.push(format!(" StartGCP: {start} StopGCP: {stop}"));
        lines.push(format!(" #Records: {records} #LogRecords: 0"));
        lines.push(format!(" Data: {bytes} bytes Log: 0 bytes"));
    }
    (lines.join("\n"), true)
}

async fn abort_backup(shared: &Arc<Shared>, backup_id: u32) -> (String, bool) {
    tell_all(shared, BackupRequest::Abort { backup_id }).await;
    tell_all(shared, BackupRequest::Release { backup_id }).await;
    (format!("Abort of backup {backup_id} ordered"), true)
}
