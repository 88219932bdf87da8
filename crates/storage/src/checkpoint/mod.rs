//! # Local checkpoints (NDB's LCP) of a data node's store
//!
//! A data node keeps its partitions in RAM ([`Store`]) and its node group's Raft log on disk.
//! Without checkpoints a restart replays the log from its first entry and the log grows without
//! end. A *local checkpoint* writes the whole store to disk as it stood after one Raft log entry
//! (the *cut*, index `I`): a restart loads it and replays the log from `I + 1`, the log can be
//! truncated, and the same files are the Raft snapshot a replica that fell too far behind
//! receives ([`transfer`]).
//!
//! ## The consistent cut: a moving cursor plus a record of slot changes
//!
//! A checkpoint must not stall the thread that applies the log, so the store is copied in
//! slices ([`Capture::capture`], about 1 MiB each) between applied entries, while it keeps
//! changing. Three ways to get a consistent image out of that were weighed:
//!
//! 1. *Copy-on-write per partition*: freeze partitions and copy rows before they change. It
//!    needs a second version of rows inside the store (a change to its arena, slot directory and
//!    index on every write), doubles memory for hot rows, and the store is shared code. Rejected.
//! 2. *Fuzzy copy plus log replay* (NDB's LCP, and what DESIGN.md names): copy partitions at
//!    different moments, note where the copy started, and on restart replay the log from there;
//!    idempotent full-row write sets make the *rows* right. But not the *slots*: replaying an
//!    insert over a partition that already holds later rows can put a row in a different slot
//!    than it had (a deleted row's slot is reused lowest-first, and a replayed insert of a row
//!    that is deleted again later can take that slot first). Slots must survive a restart
//!    exactly: scans resume by slot and the replicas of a node group must agree on them. A fuzzy
//!    image with per-partition start indexes would also not be a Raft snapshot at one index,
//!    and it would pin the log behind the oldest partition's start.
//! 3. **Chosen: a cursor over row positions, and a record of the slot changes behind it.** The
//!    copy walks every row position `(table, partition, slot)` in order. Everything before the
//!    cursor is *captured*. While the checkpoint runs, the data node applies committed write sets
//!    through [`Capture::apply_write_set`] (or [`LocalCheckpoint::apply_write_set`]), which looks
//!    up, before and after applying, the slot of every key the write set touches
//!    ([`Store::find_slot`]) and records, for captured positions only, "slot := row", "slot :=
//!    empty" or "partition := empty" (TRUNCATE, DROP). Positions at or after the cursor need
//!    nothing: the copy sees them when it gets there. So at every moment the records written so
//!    far, replayed, give exactly what the store holds at every captured position. Once the
//!    cursor has passed the last partition, the records describe the store *as it is now*: the
//!    cut is just the last entry applied before [`Capture::finish`], and table-level state (the
//!    definitions, AUTO_INCREMENT counters, row counts) is taken then, in one go.
//!
//!    The cost: two hash lookups per row change that touches an already-captured partition,
//!    records for those changes (a heavy write load makes the checkpoint longer, not wrong), and
//!    one new read-only `Store` method ([`Store::find_slot`], with
//!    [`Store::partition_rows_from`] to resume a partition mid-way). Every change must go through
//!    the capture while it runs; the data node's apply loop is the only writer, so that is one
//!    call site.
//!
//! ## Files
//!
//! `lcp/<id>/` holds up to [`CheckpointConfig::streams`] data files `data-<n>.lcp` and a
//! `MANIFEST` ([`format`](mod@format) has the byte layout). Every partition's records go to one data file, in
//! order, so each file can be replayed, sent and restored on its own (in parallel). Files are
//! made of blocks (64 KiB by default), each with a crc32c; rows keep their slot numbers. The
//! manifest is written last (temporary file, fsync, rename, fsync of the directory) and names
//! every file with its size, block count and whole-file crc32c, the cut (applied index and term,
//! catalog version, Raft membership), the table definitions the rows were stored under (with
//! their versions), AUTO_INCREMENT counters and row counts, and the cluster id, node id and node
//! group. A directory without a manifest is an incomplete checkpoint and is ignored (and removed
//! by the next checkpoint). After a new manifest is durable, checkpoints beyond the newest two are
//! removed.
//!
//! **Log truncation.** Keeping two checkpoints is only useful if the log reaches back to the
//! older one: the data node should truncate its Raft log behind the *older* kept checkpoint's
//! applied index, so that a damaged newest checkpoint can be replaced by the older one plus a
//! longer replay. If both are damaged, the node must do an initial node restart from a replica.
//!
//! ## Restore
//!
//! [`restore_newest`] picks the newest complete checkpoint, refuses one of another cluster, node
//! or node group, checks each file's size, header, every block's checksum and the whole-file
//! checksum, and rebuilds a store with [`Store::restore_partition`] (files read on parallel
//! threads). Any damage is a [`CheckpointError::Corrupt`] naming the file and offset; a store is
//! only handed out whole, with row counts matching the manifest.
//!
//! ## Throttling
//!
//! [`Throttle`] paces the copy at a rate between NDB's MinDiskWriteSpeed and MaxDiskWriteSpeed
//! (10 and 20 MiB/s by default). It is sans-IO: [`LocalCheckpoint::step`] takes the current time
//! and answers when the next slice may be copied; the data node sleeps or serves meanwhile.
//!
//! ## Sans-IO boundary
//!
//! [`Capture`], [`format`](mod@format) and [`Throttle`] do no I/O. [`CheckpointWriter`], the restore
//! functions and [`transfer`] reach files only through the [`Disk`] trait ([`FsDisk`] is the real
//! file system); a simulator can supply a disk that loses unsynced data when it "crashes".
//!
//! ## Left out
//!
//! - Incremental (partial) checkpoints as NDB 7.6 writes them: every checkpoint is a full copy.
//! - Compression of data files.
//! - Ordered and unique indexes are not stored: the store has none yet, and they would be
//!   rebuilt from rows anyway.
//! - The data node's side: when to start a checkpoint, truncating the Raft log, and carrying
//!   chunks over the network. The daemon owns those (`cairn-datad`'s `node_group::durability`
//!   and `snapshot`).

pub mod capture;
pub mod disk;
pub mod format;
pub mod restore;
pub mod throttle;
pub mod transfer;
pub mod writer;

use std::path::{Path, PathBuf};

use cairn_common::ids::{NodeGroupId, NodeId};

use crate::Store;

pub use capture::{Block, Capture, CaptureProgress, CaptureStats, CapturedCheckpoint, Cut};
pub use disk::{Disk, DiskFile, FsDisk};
pub use format::{FileEntry, Manifest, SnapshotOrigin, TableEntry};
pub use restore::{RestoreStats, Restored, newest_complete, restore_checkpoint, restore_newest, verify_checkpoint};
pub use throttle::{DiskWriteSpeed, Throttle};
pub use transfer::{ChunkPart, SnapshotChunk, SnapshotReceiver, SnapshotSource};
pub use writer::{
    CheckpointListing, CheckpointWriter, Completed, LocalCheckpoint, Step, checkpoint_dir, list_checkpoints,
    read_manifest,
};

/// Who a checkpoint belongs to. A checkpoint of another cluster, node group or node is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The cluster's id (as the Raft log's WAL identity uses it).
    pub cluster_id: u64,
    pub node_id: NodeId,
    pub node_group: NodeGroupId,
}

/// The directory of a data node's checkpoints inside its data directory.
pub fn lcp_root(data_dir: &Path) -> PathBuf {
    data_dir.join("lcp")
}

/// How checkpoints are laid out and sliced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// Data files per checkpoint (1..=64): the parallelism of restores and transfers.
    pub streams: u32,
    /// A block is sealed once its records pass this many bytes (4 KiB..=8 MiB).
    pub block_bytes: usize,
    /// Record bytes one [`LocalCheckpoint::step`] copies (at least one row).
    pub slice_bytes: usize,
    /// Complete checkpoints kept (at least 1; 2 lets a damaged newest one fall back).
    pub keep: usize,
}

impl Default for CheckpointConfig {
    fn default() -> CheckpointConfig {
        CheckpointConfig { streams: 4, block_bytes: 64 << 10, slice_bytes: 1 << 20, keep: 2 }
    }
}

impl CheckpointConfig {
    pub fn validate(&self) -> Result<(), CheckpointError> {
        let bad = |what: String| Err(CheckpointError::Invalid(what));
        if !(1..=64).contains(&self.streams) {
            return bad(format!("checkpoint streams must be 1..=64, not {}", self.streams));
        }
        if !(4 << 10..=8 << 20).contains(&self.block_bytes) {
            return bad(format!("checkpoint block size must be 4 KiB..=8 MiB, not {} bytes", self.block_bytes));
        }
        if self.slice_bytes == 0 {
            return bad("checkpoint slice size must be positive".into());
        }
        if self.keep == 0 {
            return bad("at least one checkpoint must be kept".into());
        }
        Ok(())
    }
}

/// What went wrong with a checkpoint, and so what the data node must do.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The disk failed; retry later or report.
    #[error("checkpoint I/O error {operation} {}: {source}", path.display())]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bytes on disk are damaged: do not serve from this checkpoint.
    #[error("checkpoint file {} is corrupt at offset {offset}: {reason}", file.display())]
    Corrupt { file: PathBuf, offset: u64, reason: String },
    /// The checksums hold but the contents contradict each other or the manifest: do not serve.
    #[error("checkpoint is inconsistent: {0}")]
    Inconsistent(String),
    /// The checkpoint belongs to another cluster, node group or node.
    #[error("{0}")]
    Refused(String),
    /// A snapshot transfer went wrong (a chunk out of order, damaged or missing): start again.
    #[error("snapshot transfer failed: {0}")]
    Transfer(String),
    /// The API was misused or configured wrongly.
    #[error("{0}")]
    Invalid(String),
}

impl CheckpointError {
    /// Whether the checkpoint's contents cannot be trusted (as opposed to an I/O failure or a
    /// misuse): the node must not serve from it.
    pub fn is_damage(&self) -> bool {
        matches!(self, CheckpointError::Corrupt { .. } | CheckpointError::Inconsistent(_))
    }
}

pub(crate) fn io_error(operation: &'static str, path: &Path, source: std::io::Error) -> CheckpointError {
    CheckpointError::Io { operation, path: path.to_path_buf(), source }
}

/// Writes a whole checkpoint of `store` at `cut` at once, with no pacing (tests, a clean
/// shutdown, a node that is not serving yet).
pub fn write_checkpoint(
    disk: std::sync::Arc<dyn Disk>,
    root: &Path,
    identity: Identity,
    config: &CheckpointConfig,
    store: &Store,
    cut: Cut,
) -> Result<Completed, CheckpointError> {
    let mut checkpoint = LocalCheckpoint::start(disk, root, identity, config, Throttle::unlimited())?;
    checkpoint.capture_rest(store)?;
    checkpoint.finish(store, cut)
}
