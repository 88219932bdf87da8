//! The Raft log store: where a replica keeps its Raft log, hard state and membership.
//!
//! raft-rs only *reads* a log (its `Storage` trait); writing is the application's job. This
//! module defines what Cairn writes and how:
//!
//! - [`LogStore`] is the trait the [`Replica`](crate::Replica) writes through. One
//!   [`LogBatch`] per Raft `Ready` (entries, hard state, membership, optionally a snapshot
//!   mark) is written with one `fsync` (group commit).
//! - [`FileLogStore`] is the on-disk implementation: segment files of checksummed records in
//!   one directory per Raft group, recovered on open. See `file.rs` for the recovery rules.
//! - [`MemLogStore`] keeps the same state in memory and models what an `fsync` made durable,
//!   so that tests and the simulator can crash a node and lose exactly its unsynced writes.
//!
//! Guarantees of every implementation:
//!
//! - A batch is applied entirely or (after a crash) as a prefix of its records; a batch whose
//!   `must_sync` is set and that returned `Ok` survives a crash when syncing is enabled.
//! - The log is a contiguous range of entries `first_index..=last_index` after a base
//!   (`first_index - 1`, whose term is kept for Raft's log matching).
//! - The stored commit index never exceeds the last index, and never lies below the base.
//! - Bad input (a gap, an overwrite of compacted entries, a term going backwards) is refused
//!   with [`LogError::InvalidBatch`] and changes nothing.
//!
//! Left out: log entries are not shared between Raft groups (one store per group; TiKV's
//! multi-group engine is a later optimisation), and there is no background compaction: the
//! owner calls `compact_to` after a checkpoint.

mod file;
mod mem;
mod record;

use std::path::PathBuf;

use raft::eraftpb::{ConfState, Entry, HardState, SnapshotMetadata};

pub use file::{FileLogStore, WalOptions, group_dir};
pub use mem::MemLogStore;
pub use record::WalIdentity;

/// The membership of a group together with the index of the log entry that produced it.
///
/// The index lets a replica that replays its log after a restart skip configuration changes
/// that the stored membership already includes: raft-rs refuses to apply some changes twice
/// (entering a joint configuration while already joint).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredConfState {
    /// The voters and learners (and the joint-consensus halves, while joint).
    pub conf_state: ConfState,
    /// Index of the configuration-change entry that produced `conf_state`; 0 for the bootstrap
    /// membership, the snapshot index for a membership that came with a snapshot.
    pub index: u64,
}

/// What one Raft `Ready` asks to persist, written by [`LogStore::write`] as one unit.
#[derive(Debug, Clone, Default)]
pub struct LogBatch {
    /// A snapshot received from the leader: every entry is dropped and the log continues after
    /// `(index, term)`; the snapshot's membership becomes the stored one.
    pub snapshot: Option<SnapshotMetadata>,
    /// New entries. If the first one's index is at or below the last index, the stored entries
    /// from that index on are replaced (a new leader overwriting uncommitted entries).
    pub entries: Vec<Entry>,
    /// The new hard state (term, vote, commit), if it changed.
    pub hard_state: Option<HardState>,
    /// A new membership, after a configuration change was applied.
    pub conf_state: Option<StoredConfState>,
    /// Whether the batch must be durable before the caller goes on (raft-rs `must_sync`: new
    /// entries, a snapshot, a new term or vote). A batch that only moves the commit index need
    /// not be synced: a lost commit index is learnt again from the leader.
    pub must_sync: bool,
}

impl LogBatch {
    /// True if the batch carries nothing to write.
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none()
            && self.entries.is_empty()
            && self.hard_state.is_none()
            && self.conf_state.is_none()
    }
}

/// Errors of a log store. Only `Compacted` and `Unavailable` are expected during normal
/// operation; everything else means the store (or the disk) cannot be trusted and the node
/// should stop this replica.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An operating-system call failed. After a failed write or `fsync` the store refuses all
    /// further writes ([`LogError::Failed`]): what reached the disk is unknown until the next
    /// recovery.
    #[error("log I/O error while {context}: {source}")]
    Io {
        /// What the store was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The files hold something a correct writer cannot have produced: a bad checksum or a cut
    /// record before the tail of the last segment, a missing segment, an inconsistent state.
    #[error("Raft log corrupt in {}, offset {offset}: {reason}", file.display())]
    Corrupt {
        /// The segment file.
        file: PathBuf,
        /// Byte offset of the damaged record or header.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The directory belongs to another cluster, node or group.
    #[error(
        "{} belongs to cluster {} node {} group {}, but this is cluster {} node {} group {}; \
         refusing to use another node's Raft log",
        file.display(), found.cluster_id, found.node_id, found.group_id,
        expected.cluster_id, expected.node_id, expected.group_id
    )]
    Foreign {
        /// The segment file whose header names another owner.
        file: PathBuf,
        /// Who we are.
        expected: WalIdentity,
        /// Who wrote the file.
        found: WalIdentity,
    },
    /// The segment was written in a format version this build does not read.
    #[error("{} has log format version {version}, this build reads version {supported}", file.display())]
    UnsupportedVersion {
        /// The segment file.
        file: PathBuf,
        /// The version in its header.
        version: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// Another process (or another store in this process) has the directory open.
    #[error("Raft log directory {} is in use by another process", dir.display())]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// The entry was compacted away.
    #[error("log entry {index} is compacted (first index is {first_index})")]
    Compacted {
        /// The requested index.
        index: u64,
        /// The first index still in the log.
        first_index: u64,
    },
    /// The entry is beyond the end of the log.
    #[error("log entry {index} is not in the log (last index is {last_index})")]
    Unavailable {
        /// The requested index.
        index: u64,
        /// The last index in the log.
        last_index: u64,
    },
    /// The batch or request does not fit the log (a gap, an overwrite of compacted entries, a
    /// commit index past the last entry, an entry too large). Nothing was written.
    #[error("invalid log write: {reason}")]
    InvalidBatch {
        /// What is wrong with it.
        reason: String,
    },
    /// An earlier write or sync failed; the store accepts no more writes.
    #[error("Raft log store failed earlier and refuses further writes: {reason}")]
    Failed {
        /// The first failure.
        reason: String,
    },
}

impl LogError {
    fn invalid(reason: impl Into<String>) -> LogError {
        LogError::InvalidBatch {
            reason: reason.into(),
        }
    }
}

/// A Raft log store for one group. See the module documentation for the guarantees.
///
/// Reads take `&self` because raft-rs reads through `&self`; writes happen only from the
/// replica's ready handling, between raft-rs calls, never concurrently with reads.
pub trait LogStore: Send {
    /// Index of the first entry still in the log (base + 1).
    fn first_index(&self) -> u64;
    /// Index of the last entry (the base if the log holds no entries).
    fn last_index(&self) -> u64;
    /// The term of entry `index`, for `first_index() - 1 <= index <= last_index()`.
    fn term(&self, index: u64) -> Result<u64, LogError>;
    /// Entries `low..high`, at least one if the range is not empty, and no more than fit in
    /// `max_bytes` (protobuf-encoded size, as raft-rs counts it).
    fn entries(&self, low: u64, high: u64, max_bytes: Option<u64>) -> Result<Vec<Entry>, LogError>;
    /// The stored hard state.
    fn hard_state(&self) -> HardState;
    /// The stored membership.
    fn conf_state(&self) -> StoredConfState;
    /// Writes a batch: one write and, if `batch.must_sync` and syncing is enabled, one `fsync`.
    fn write(&mut self, batch: LogBatch) -> Result<(), LogError>;
    /// Drops the entries up to and including `index` (after a checkpoint made them
    /// unnecessary). Durable on return, whatever the sync setting. A no-op at or below the base.
    fn compact_to(&mut self, index: u64) -> Result<(), LogError>;
    /// Makes everything written so far durable (for `DiskSync` on a timer).
    fn flush_and_sync(&mut self) -> Result<(), LogError>;
}

/// The view of a log that [`check_batch`] needs.
pub(crate) struct LogView {
    pub(crate) base_index: u64,
    pub(crate) last_index: u64,
}

/// Checks that `batch` fits a log whose shape is `view`; `term_of` returns the term of a stored
/// entry. Used by both stores so that they refuse exactly the same batches.
pub(crate) fn check_batch(
    batch: &LogBatch,
    view: LogView,
    term_of: impl Fn(u64) -> Option<u64>,
    max_entry_payload: usize,
) -> Result<(), LogError> {
    let (base_index, mut last_index) = (view.base_index, view.last_index);
    let mut snapshot_term = None;
    if let Some(meta) = &batch.snapshot {
        if meta.index < base_index {
            return Err(LogError::invalid(format!(
                "snapshot at index {} is older than the compacted log (base {base_index})",
                meta.index
            )));
        }
        last_index = meta.index;
        snapshot_term = Some((meta.index, meta.term));
    }
    let effective_base = batch
        .snapshot
        .as_ref()
        .map_or(base_index, |meta| meta.index);
    if let Some(first) = batch.entries.first() {
        if first.index <= effective_base {
            return Err(LogError::invalid(format!(
                "entry {} would overwrite the compacted log (base {effective_base})",
                first.index
            )));
        }
        if first.index > last_index + 1 {
            return Err(LogError::invalid(format!(
                "entry {} leaves a gap after last index {last_index}",
                first.index
            )));
        }
        let previous_term = match snapshot_term {
            Some((index, term)) if index == first.index - 1 => Some(term),
            _ => term_of(first.index - 1),
        };
        if let Some(previous_term) = previous_term
            && first.term < previous_term
        {
            return Err(LogError::invalid(format!(
                "entry {} has term {} below the previous entry's term {previous_term}",
                first.index, first.term
            )));
        }
        for pair in batch.entries.windows(2) {
            if pair[1].index != pair[0].index + 1 || pair[1].term < pair[0].term {
                return Err(LogError::invalid(format!(
                    "entries are not contiguous: {}@{} followed by {}@{}",
                    pair[0].index, pair[0].term, pair[1].index, pair[1].term
                )));
            }
        }
        for entry in &batch.entries {
            let payload = record::entry_payload_len(entry);
            if payload > max_entry_payload {
                return Err(LogError::invalid(format!(
                    "entry {} is {payload} bytes, more than the limit of {max_entry_payload}",
                    entry.index
                )));
            }
        }
        last_index = batch.entries.last().map_or(last_index, |entry| entry.index);
    }
    if let Some(hard_state) = &batch.hard_state
        && hard_state.commit > last_index
    {
        return Err(LogError::invalid(format!(
            "commit index {} is beyond the last index {last_index}",
            hard_state.commit
        )));
    }
    Ok(())
}

/// The protobuf-encoded size of an entry, the unit raft-rs uses for its size limits.
pub(crate) fn entry_size(entry: &Entry) -> u64 {
    u64::from(protobuf::Message::compute_size(entry))
}

/// Pushes `entry` to `out` unless that would exceed `max_bytes` (the first entry always fits).
/// Returns false when the limit is reached and the caller should stop.
pub(crate) fn push_limited(
    out: &mut Vec<Entry>,
    used: &mut u64,
    entry: Entry,
    max_bytes: Option<u64>,
) -> bool {
    let size = entry_size(&entry);
    if let Some(max) = max_bytes
        && !out.is_empty()
        && *used + size > max
    {
        return false;
    }
    *used += size;
    out.push(entry);
    true
}

/// The limit on one entry's encoded payload (a record must fit the on-disk record limit).
pub(crate) const MAX_ENTRY_PAYLOAD_BYTES: usize = record::MAX_RECORD_PAYLOAD_BYTES;
