//! Recovering a data node's state from its own disk at start (NDB's node and system restart).
//!
//! 1. Open the Raft log ([`FileLogStore::open`] checks every record's checksum and the
//!    directory's owner).
//! 2. Restore the newest complete local checkpoint (every block's checksum, the manifest's
//!    sizes and whole-file checksums, the owner). If it is damaged, fall back to the older one
//!    the log still reaches back to (the log is only ever truncated behind the *older* kept
//!    checkpoint, for exactly this).
//! 3. Reconcile the log with the checkpoint: a checkpoint may be ahead of the commit index the
//!    log recorded (the commit index is written lazily; a checkpoint received from another
//!    replica is made durable before the log learns of it).
//! 4. The node group loop then replays the log's committed entries after the checkpoint
//!    (raft-rs hands them out again) and catches up from the leader.
//!
//! **Damage.** A damaged log, or checkpoints the log cannot be replayed from, are never served
//! from: the files are moved aside to `damaged-<unix time>/` in the data directory, the reason
//! is logged and shown by `N STATUS`, and the node starts empty, as an initial node restart
//! does, copying everything from a live replica (a Raft snapshot of the leader's checkpoint, or
//! its log). With `NoOfReplicas = 1` there is no replica to copy from, so the node refuses to
//! start instead.
//!
//! **Refusal.** A data directory that belongs to another cluster, node or node group (the log's
//! and the checkpoints' identities say so) is refused: nothing is moved or changed.
//!
//! **Votes after a wipe.** A node that lost (or wiped) its log may have acknowledged entries
//! that a majority needed, and may have voted in the current term. In a group of three or more
//! voters it must not vote until it has caught up with a leader, or it could help elect a leader
//! that lacks committed entries ([`Recovered::vote_barrier`]; the node group loop enforces it).
//! In a group of two it must vote, and may: the only candidate is the survivor, which holds
//! every committed entry.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_replication::eraftpb::{ConfState, HardState, SnapshotMetadata};
use cairn_replication::wal::{FileLogStore, LogBatch, LogError, LogStore, WalOptions};
use cairn_storage::Store;
use cairn_storage::checkpoint::{
    CheckpointError, FsDisk, Identity, RestoreStats, lcp_root, list_checkpoints, read_manifest, restore_checkpoint,
};
use protobuf::Message as _;

/// A complete local checkpoint on disk, as the node group loop tracks them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptCheckpoint {
    pub id: u64,
    pub applied_index: u64,
    pub applied_term: u64,
    /// The Raft membership at the cut (protobuf `ConfState`).
    pub membership: Vec<u8>,
}

/// What a data node starts from.
pub struct Recovered {
    pub log: FileLogStore,
    pub store: Store,
    /// The Raft index and term of the last entry the store holds.
    pub applied_index: u64,
    pub applied_term: u64,
    /// The replicated transaction state at the restored checkpoint's cut (empty: none).
    pub txn_state: Vec<u8>,
    /// Complete checkpoints on disk, oldest first.
    pub kept: Vec<KeptCheckpoint>,
    /// What the operator must know (damage recovered from); shown by `N STATUS`.
    pub notices: Vec<String>,
    /// The node lost its log: it must not vote until it caught up with a leader.
    pub vote_barrier: bool,
    /// How the checkpoint restore went, if there was one.
    pub restored: Option<(u64, RestoreStats, Duration)>,
}

impl std::fmt::Debug for Recovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recovered")
            .field("applied_index", &self.applied_index)
            .field("kept", &self.kept)
            .field("notices", &self.notices)
            .field("vote_barrier", &self.vote_barrier)
            .finish_non_exhaustive()
    }
}

/// Why a node cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory is not this node's, or cannot be recovered here: the node waits for
    /// the operator (`N RESTART -i` copies everything from a replica).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Where and who.
pub struct StartParams<'a> {
    pub data_dir: &'a Path,
    pub log_dir: PathBuf,
    pub wal_options: WalOptions,
    pub identity: Identity,
    /// `--initial`: wipe checkpoints and log first.
    pub initial: bool,
    /// NoOfReplicas: whether another replica can supply what a damaged node lost.
    pub replicas: u32,
    /// Threads for reading checkpoint files.
    pub restore_threads: usize,
    /// Reports the start phase completed (1: log open, 2: checkpoint restored) and a notice.
    pub progress: &'a (dyn Fn(u32, Option<String>) + Sync),
}

/// How long a log still locked by a dying predecessor is waited for.
const LOCK_WAIT: Duration = Duration::from_secs(15);

fn open_log(params: &StartParams<'_>) -> Result<FileLogStore, LogError> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match FileLogStore::open(&params.log_dir, params.wal_options.clone()) {
            // The previous worker may still be exiting after kill -9 of its angel.
            Err(LogError::Locked { .. }) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            other => return other,
        }
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Moves `what` (a path inside the data directory) to `damaged-<time>/<name>`; returns where.
fn move_aside(data_dir: &Path, what: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let target_dir = data_dir.join(format!("damaged-{}", unix_seconds()));
    std::fs::create_dir_all(&target_dir)?;
    let mut target = target_dir.join(name);
    let mut n = 1;
    while target.exists() {
        target = target_dir.join(format!("{name}.{n}"));
        n += 1;
    }
    std::fs::rename(what, &target)
        .map_err(|e| anyhow::anyhow!("cannot move {} aside to {}: {e}", what.display(), target.display()))?;
    Ok(target)
}

/// Removes the checkpoints and the Raft log (an initial node restart); backups stay.
pub fn wipe(data_dir: &Path, log_dir: &Path) -> anyhow::Result<()> {
    for dir in [lcp_root(data_dir), log_dir.to_path_buf()] {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("cannot remove {}: {e}", dir.display()),
        }
    }
    Ok(())
}

/// Moves the log and every checkpoint aside after damage, so the node starts empty.
fn set_everything_aside(params: &StartParams<'_>, reason: &str) -> Result<String, StartError> {
    if params.replicas < 2 {
        return Err(StartError::Refused(format!(
            "{reason}; with NoOfReplicas = 1 there is no replica to recover from: restore a backup \
             (cairn restore) or move the damaged files away and start with --initial"
        )));
    }
    let mut moved = Vec::new();
    for (path, name) in [(params.log_dir.clone(), "raft"), (lcp_root(params.data_dir), "lcp")] {
        if path.exists() {
            moved.push(move_aside(params.data_dir, &path, name)?.display().to_string());
        }
    }
    Ok(format!(
        "{reason}; moved {} aside and copying everything from a live replica (initial node restart)",
        if moved.is_empty() { "nothing".to_string() } else { moved.join(" and ") }
    ))
}

/// Lists the complete checkpoints whose manifests read back, oldest first.
pub fn kept_checkpoints(data_dir: &Path) -> Vec<KeptCheckpoint> {
    let root = lcp_root(data_dir);
    let Ok(listing) = list_checkpoints(&FsDisk, &root) else { return Vec::new() };
    listing
        .into_iter()
        .filter(|c| c.complete)
        .filter_map(|c| read_manifest(&FsDisk, &root, c.id).ok())
        .map(|m| KeptCheckpoint {
            id: m.checkpoint_id,
            applied_index: m.applied_index,
            applied_term: m.applied_term,
            membership: m.raft_membership,
        })
        .collect()
}

/// Recovers the node's state from its data directory (see the module doc).
pub fn recover(params: &StartParams<'_>) -> Result<Recovered, StartError> {
    let mut notices = Vec::new();
    let mut vote_barrier = false;
    if params.initial {
        wipe(params.data_dir, &params.log_dir)?;
        vote_barrier = true;
        tracing::info!(data_dir = %params.data_dir.display(), "initial start: checkpoints and Raft log removed");
    }

    // 1. The Raft log.
    let mut log = match open_log(params) {
        Ok(log) => log,
        Err(e @ (LogError::Foreign { .. } | LogError::UnsupportedVersion { .. })) => {
            return Err(StartError::Refused(format!("refusing to start: {e}")));
        }
        Err(e @ LogError::Corrupt { .. }) => {
            tracing::error!(error = %e, "the Raft log is damaged; not serving from it");
            let notice = set_everything_aside(params, &format!("the Raft log was damaged ({e})"))?;
            tracing::warn!("{notice}");
            (params.progress)(0, Some(notice.clone()));
            notices.push(notice);
            vote_barrier = true;
            open_log(params).map_err(|e| anyhow::anyhow!("cannot open a fresh Raft log: {e}"))?
        }
        Err(e) => return Err(StartError::Failed(anyhow::anyhow!("the Raft log in {} cannot be used: {e}", params.log_dir.display()))),
    };
    (params.progress)(1, None);

    // 2. The newest checkpoint that restores and that the log reaches back to.
    let root = lcp_root(params.data_dir);
    let complete: Vec<u64> = list_checkpoints(&FsDisk, &root)
        .map_err(|e| anyhow::anyhow!("cannot list local checkpoints: {e}"))?
        .into_iter()
        .filter(|c| c.complete)
        .map(|c| c.id)
        .collect();
    let mut chosen = None;
    for &id in complete.iter().rev() {
        let started = Instant::now();
        match restore_checkpoint(&FsDisk, &root, id, &params.identity, params.restore_threads) {
            Ok(restored) if log.first_index() > restored.manifest.applied_index + 1 => {
                tracing::warn!(
                    checkpoint = id,
                    applied = restored.manifest.applied_index,
                    log_first = log.first_index(),
                    "the Raft log no longer reaches back to this checkpoint"
                );
            }
            Ok(restored) => {
                chosen = Some((id, restored, started.elapsed()));
                break;
            }
            Err(CheckpointError::Refused(reason)) => return Err(StartError::Refused(format!("refusing to start: {reason}"))),
            Err(e) if e.is_damage() => {
                tracing::error!(checkpoint = id, error = %e, "local checkpoint is damaged; not serving from it");
                let moved = move_aside(params.data_dir, &root.join(id.to_string()), &format!("lcp-{id}"))?;
                let notice = format!("local checkpoint {id} was damaged ({e}); moved it to {}", moved.display());
                tracing::warn!("{notice}");
                (params.progress)(1, Some(notice.clone()));
                notices.push(notice);
            }
            Err(e) => return Err(StartError::Failed(anyhow::anyhow!("cannot restore local checkpoint {id}: {e}"))),
        }
    }
    if chosen.is_none() && log.first_index() > 1 {
        // The log starts after a checkpoint that is gone or damaged: the entries before it
        // exist nowhere on this node.
        let first = log.first_index();
        drop(log);
        let notice = set_everything_aside(
            params,
            &format!(
                "no usable local checkpoint, and the Raft log starts at entry {first} (the entries before it were only in checkpoints)"
            ),
        )?;
        tracing::warn!("{notice}");
        (params.progress)(1, Some(notice.clone()));
        notices.push(notice);
        vote_barrier = true;
        log = open_log(params).map_err(|e| anyhow::anyhow!("cannot open a fresh Raft log: {e}"))?;
    }

    // 3. Reconcile the log with the checkpoint.
    let (store, applied_index, applied_term, txn_state, restored) = match chosen {
        Some((id, restored, elapsed)) => {
            let manifest = &restored.manifest;
            reconcile(&mut log, manifest.applied_index, manifest.applied_term, &manifest.raft_membership)
                .map_err(|e| anyhow::anyhow!("cannot align the Raft log with checkpoint {id}: {e}"))?;
            tracing::info!(
                checkpoint = id,
                applied_index = manifest.applied_index,
                rows = restored.stats.rows,
                bytes = restored.stats.bytes_read,
                elapsed_ms = elapsed.as_millis() as u64,
                "local checkpoint restored"
            );
            let (index, term) = (manifest.applied_index, manifest.applied_term);
            let txn_state = manifest.txn_state.clone();
            (restored.store, index, term, txn_state, Some((id, restored.stats, elapsed)))
        }
        None => (Store::new(params.identity.node_group), 0, 0, Vec::new(), None),
    };
    (params.progress)(2, None);
    Ok(Recovered {
        log,
        store,
        applied_index,
        applied_term,
        txn_state,
        kept: kept_checkpoints(params.data_dir),
        notices,
        vote_barrier,
        restored,
    })
}

/// Makes the log agree that entry `index` (of `term`) is committed: a checkpoint only holds
/// committed state, but the log may not have recorded the commit (it is written lazily), or
/// may not hold the entry at all (a checkpoint received from another replica). In the first
/// case the commit index is raised; in the second the log is reset to continue after the
/// checkpoint, as a Raft snapshot does.
pub fn reconcile(log: &mut FileLogStore, index: u64, term: u64, membership: &[u8]) -> Result<(), LogError> {
    let stored = log.hard_state();
    if index <= stored.commit {
        return Ok(());
    }
    let mut hard_state = HardState::default();
    hard_state.term = stored.term.max(term);
    hard_state.vote = if hard_state.term == stored.term { stored.vote } else { 0 };
    hard_state.commit = index;
    if log.first_index() <= index && index <= log.last_index() && log.term(index).ok() == Some(term) {
        log.write(LogBatch { hard_state: Some(hard_state), must_sync: true, ..LogBatch::default() })?;
    } else {
        let conf_state = ConfState::parse_from_bytes(membership).unwrap_or_else(|_| log.conf_state().conf_state);
        let mut metadata = SnapshotMetadata::default();
        metadata.index = index;
        metadata.term = term;
        metadata.set_conf_state(conf_state);
        log.write(LogBatch { snapshot: Some(metadata), hard_state: Some(hard_state), must_sync: true, ..LogBatch::default() })?;
    }
    log.flush_and_sync()
}
