//! Writing checkpoints to disk: the `lcp/<id>/` directories, manifest last, and the paced
//! driver the data node calls between log entries.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_common::catalog::Catalog;
use cairn_common::ops::{RowChange, WriteSet};

use super::capture::{Block, Capture, CaptureStats, CapturedCheckpoint, Cut};
use super::disk::{Disk, DiskFile};
use super::format::{FileEntry, Manifest, encode_file_header};
use super::throttle::Throttle;
use super::{CheckpointConfig, CheckpointError, Identity, io_error};
use crate::Store;

/// Name of the file that makes a checkpoint directory complete.
pub const MANIFEST_NAME: &str = "MANIFEST";
/// The manifest while it is being written; a leftover one means the write did not finish.
pub const MANIFEST_TEMP_NAME: &str = "MANIFEST.tmp";

/// The name of data file `stream`.
pub fn data_file_name(stream: u32) -> String {
    format!("data-{stream}.lcp")
}

/// The directory of checkpoint `id` under `root` (the data node's `lcp/`).
pub fn checkpoint_dir(root: &Path, id: u64) -> PathBuf {
    root.join(id.to_string())
}

/// A checkpoint directory found under `lcp/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointListing {
    pub id: u64,
    /// Whether its manifest exists (it may still turn out to be corrupt when read).
    pub complete: bool,
}

/// The checkpoint directories under `root`, ascending by id. Names that are not decimal ids are
/// not ours and are left alone. A missing `root` has no checkpoints.
pub fn list_checkpoints(disk: &dyn Disk, root: &Path) -> Result<Vec<CheckpointListing>, CheckpointError> {
    let names = match disk.list_dir(root) {
        Ok(names) => names,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("listing", root, e)),
    };
    let mut found = Vec::new();
    for name in names {
        let Ok(id) = name.parse::<u64>() else { continue };
        if id.to_string() != name {
            continue;
        }
        let manifest = checkpoint_dir(root, id).join(MANIFEST_NAME);
        let complete = disk.exists(&manifest).map_err(|e| io_error("checking", &manifest, e))?;
        found.push(CheckpointListing { id, complete });
    }
    found.sort_by_key(|c| c.id);
    Ok(found)
}

/// Reads and checks the manifest of checkpoint `id` (its checksum, and that it names `id`).
pub fn read_manifest(disk: &dyn Disk, root: &Path, id: u64) -> Result<Manifest, CheckpointError> {
    let path = checkpoint_dir(root, id).join(MANIFEST_NAME);
    let bytes = disk.read_file(&path).map_err(|e| io_error("reading", &path, e))?;
    let manifest = Manifest::decode(&bytes, &path)?;
    if manifest.checkpoint_id != id {
        return Err(CheckpointError::Corrupt {
            file: path,
            offset: 0,
            reason: format!("the manifest describes checkpoint {}, not the directory's {id}", manifest.checkpoint_id),
        });
    }
    Ok(manifest)
}

/// Refuses a checkpoint of another cluster, node group or node.
pub fn check_identity(manifest: &Manifest, identity: &Identity, dir: &Path) -> Result<(), CheckpointError> {
    if manifest.cluster_id != identity.cluster_id
        || manifest.node_id != identity.node_id
        || manifest.node_group != identity.node_group
    {
        return Err(CheckpointError::Refused(format!(
            "checkpoint {} belongs to cluster {:#x}, node {} (node group {}), but this is cluster {:#x}, node {} (node group {}); \
             refusing to use it: check the data directory, or start this node with an initial restart",
            dir.display(),
            manifest.cluster_id,
            manifest.node_id,
            manifest.node_group,
            identity.cluster_id,
            identity.node_id,
            identity.node_group,
        )));
    }
    Ok(())
}

/// Prepares `root` for a new checkpoint and creates its directory: refuses a directory holding
/// another node's checkpoints, removes directories of checkpoints that never completed (only one
/// writer works in `root` at a time, so none is in progress), and makes the new directory's name
/// durable. Returns the new id: one above every id present, so ids never repeat.
pub(crate) fn create_checkpoint_dir(
    disk: &dyn Disk,
    root: &Path,
    identity: &Identity,
) -> Result<(u64, PathBuf), CheckpointError> {
    disk.create_dir_all(root).map_err(|e| io_error("creating", root, e))?;
    if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
        disk.sync_dir(parent).map_err(|e| io_error("syncing", parent, e))?;
    }
    let listing = list_checkpoints(disk, root)?;
    for entry in &listing {
        let dir = checkpoint_dir(root, entry.id);
        if entry.complete {
            // A corrupt manifest is reported by restore; it says nothing about ownership here.
            if let Ok(manifest) = read_manifest(disk, root, entry.id) {
                check_identity(&manifest, identity, &dir)?;
            }
        } else {
            disk.remove_dir_all(&dir).map_err(|e| io_error("removing", &dir, e))?;
        }
    }
    let id = listing.last().map_or(1, |c| c.id + 1);
    let dir = checkpoint_dir(root, id);
    disk.create_dir_all(&dir).map_err(|e| io_error("creating", &dir, e))?;
    disk.sync_dir(root).map_err(|e| io_error("syncing", root, e))?;
    Ok((id, dir))
}

/// Writes `manifest` into `dir` atomically and durably: a temporary file, fsync, rename, fsync of
/// the directory. Before this the checkpoint does not exist; after it, it does, entirely.
pub(crate) fn write_manifest(disk: &dyn Disk, dir: &Path, manifest: &Manifest) -> Result<(), CheckpointError> {
    let temp = dir.join(MANIFEST_TEMP_NAME);
    let target = dir.join(MANIFEST_NAME);
    let mut file = disk.create_file(&temp).map_err(|e| io_error("creating", &temp, e))?;
    file.append(&manifest.encode()).map_err(|e| io_error("writing", &temp, e))?;
    file.sync().map_err(|e| io_error("syncing", &temp, e))?;
    drop(file);
    disk.rename(&temp, &target).map_err(|e| io_error("renaming", &temp, e))?;
    disk.sync_dir(dir).map_err(|e| io_error("syncing", dir, e))
}

/// Removes every checkpoint below `newest` except the `keep` newest complete ones (counting
/// `newest`). Called only once `newest`'s manifest is durable, so a crash at any point leaves
/// `newest` or the checkpoints before it.
pub(crate) fn prune(disk: &dyn Disk, root: &Path, newest: u64, keep: usize) -> Result<Vec<u64>, CheckpointError> {
    let listing = list_checkpoints(disk, root)?;
    let mut kept = 0usize;
    let mut removed = Vec::new();
    for entry in listing.iter().rev() {
        if entry.id > newest {
            continue;
        }
        // A complete checkpoint counts towards `keep` only if its manifest reads back: a corrupt
        // one cannot be restored and must not push a good one out.
        let usable = entry.complete && read_manifest(disk, root, entry.id).is_ok();
        if usable && kept < keep {
            kept += 1;
            continue;
        }
        let dir = checkpoint_dir(root, entry.id);
        disk.remove_dir_all(&dir).map_err(|e| io_error("removing", &dir, e))?;
        removed.push(entry.id);
    }
    if !removed.is_empty() {
        disk.sync_dir(root).map_err(|e| io_error("syncing", root, e))?;
    }
    Ok(removed)
}

/// A checkpoint made durable.
#[derive(Debug)]
pub struct Completed {
    pub manifest: Manifest,
    /// Older checkpoints removed after it.
    pub removed: Vec<u64>,
    /// Removing older checkpoints failed (the new one is complete all the same; the next
    /// checkpoint tries again). The data node should log it.
    pub prune_error: Option<CheckpointError>,
}

/// One data file being written.
struct StreamFile {
    file: Box<dyn DiskFile>,
    path: PathBuf,
    bytes: u64,
    crc: u32,
    blocks: u64,
}

/// The files of one checkpoint being written (the I/O half of a checkpoint; [`Capture`] makes
/// the blocks).
pub struct CheckpointWriter {
    disk: Arc<dyn Disk>,
    root: PathBuf,
    dir: PathBuf,
    id: u64,
    identity: Identity,
    keep: usize,
    files: Vec<Option<StreamFile>>,
    bytes_written: u64,
}

impl std::fmt::Debug for CheckpointWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointWriter").field("dir", &self.dir).field("bytes_written", &self.bytes_written).finish()
    }
}

impl CheckpointWriter {
    /// Starts checkpoint directory `lcp/<id>/` under `root`: refuses a `root` holding another
    /// node's checkpoints, removes directories of checkpoints that never completed, and takes an
    /// id above every id present.
    pub fn begin(
        disk: Arc<dyn Disk>,
        root: &Path,
        identity: Identity,
        config: &CheckpointConfig,
    ) -> Result<CheckpointWriter, CheckpointError> {
        config.validate()?;
        let (id, dir) = create_checkpoint_dir(disk.as_ref(), root, &identity)?;
        Ok(CheckpointWriter {
            disk,
            root: root.to_path_buf(),
            dir,
            id,
            identity,
            keep: config.keep,
            files: (0..config.streams).map(|_| None).collect(),
            bytes_written: 0,
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Appends a block to its data file (created with its header on first use); returns the
    /// bytes written.
    pub fn write(&mut self, block: &Block) -> Result<u64, CheckpointError> {
        let stream = block.stream as usize;
        let slot = self.files.get_mut(stream).ok_or_else(|| {
            CheckpointError::Invalid(format!("a block for data file {stream} of a checkpoint with fewer files"))
        })?;
        let mut written = 0u64;
        if slot.is_none() {
            let path = self.dir.join(data_file_name(block.stream));
            let mut file = self.disk.create_file(&path).map_err(|e| io_error("creating", &path, e))?;
            let header = encode_file_header(block.stream);
            file.append(&header).map_err(|e| io_error("writing", &path, e))?;
            written += header.len() as u64;
            *slot =
                Some(StreamFile { file, path, bytes: header.len() as u64, crc: crc32c::crc32c(&header), blocks: 0 });
        }
        let Some(open) = slot.as_mut() else { unreachable!("opened above") };
        open.file.append(&block.bytes).map_err(|e| io_error("writing", &open.path, e))?;
        open.bytes += block.bytes.len() as u64;
        open.crc = crc32c::crc32c_append(open.crc, &block.bytes);
        open.blocks += 1;
        written += block.bytes.len() as u64;
        self.bytes_written += written;
        Ok(written)
    }

    /// Writes the last blocks, makes every data file durable, writes the manifest (the commit
    /// point) and then removes checkpoints older than the `keep` newest.
    pub fn complete(mut self, captured: CapturedCheckpoint) -> Result<Completed, CheckpointError> {
        for block in &captured.blocks {
            self.write(block)?;
        }
        let mut files = Vec::new();
        for (stream, slot) in self.files.iter_mut().enumerate() {
            let Some(open) = slot.as_mut() else { continue };
            open.file.sync().map_err(|e| io_error("syncing", &open.path, e))?;
            files.push(FileEntry {
                name: data_file_name(stream as u32),
                stream: stream as u32,
                bytes: open.bytes,
                crc32c: open.crc,
                blocks: open.blocks,
            });
        }
        self.disk.sync_dir(&self.dir).map_err(|e| io_error("syncing", &self.dir, e))?;
        let manifest = Manifest {
            checkpoint_id: self.id,
            cluster_id: self.identity.cluster_id,
            node_id: self.identity.node_id,
            node_group: self.identity.node_group,
            applied_index: captured.cut.applied_index,
            applied_term: captured.cut.applied_term,
            catalog_version: captured.cut.catalog_version,
            raft_membership: captured.cut.raft_membership,
            txn_state: captured.cut.txn_state,
            tables: captured.tables,
            files,
            rows: captured.rows,
            row_bytes: captured.row_bytes,
            received_from: None,
        };
        write_manifest(self.disk.as_ref(), &self.dir, &manifest)?;
        let (removed, prune_error) = match prune(self.disk.as_ref(), &self.root, self.id, self.keep) {
            Ok(removed) => (removed, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        Ok(Completed { manifest, removed, prune_error })
    }

    /// Gives the checkpoint up and removes its directory.
    pub fn abandon(self) -> Result<(), CheckpointError> {
        let CheckpointWriter { disk, dir, files, .. } = self;
        drop(files);
        disk.remove_dir_all(&dir).map_err(|e| io_error("removing", &dir, e))
    }
}

/// What [`LocalCheckpoint::step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The throttle allows no copying before `until`; call again then. (Blocks of changes applied
    /// meanwhile were written anyway: `bytes` of them.)
    Wait { until: Duration, bytes: u64 },
    /// Copied a slice and wrote `bytes`; call again at `next_at`.
    Wrote { bytes: u64, next_at: Duration },
    /// Every partition is captured: call [`LocalCheckpoint::finish`] with the cut.
    Captured,
}

/// A local checkpoint in progress, driven by the data node from the thread that applies the log:
/// [`LocalCheckpoint::apply_write_set`] instead of [`Store::apply_write_set`] while it runs,
/// [`LocalCheckpoint::step`] whenever the throttle allows, [`LocalCheckpoint::finish`] once
/// captured. It writes through the [`Disk`]; a data node that prefers to keep file writes off
/// that thread can use [`Capture`] and [`CheckpointWriter`] directly and hand blocks over.
#[derive(Debug)]
pub struct LocalCheckpoint {
    capture: Capture,
    writer: CheckpointWriter,
    throttle: Throttle,
    slice_bytes: usize,
}

impl LocalCheckpoint {
    /// Starts a checkpoint under `root` (the data node's `lcp/` directory).
    pub fn start(
        disk: Arc<dyn Disk>,
        root: &Path,
        identity: Identity,
        config: &CheckpointConfig,
        throttle: Throttle,
    ) -> Result<LocalCheckpoint, CheckpointError> {
        let capture = Capture::new(config)?;
        let writer = CheckpointWriter::begin(disk, root, identity, config)?;
        Ok(LocalCheckpoint { capture, writer, throttle, slice_bytes: config.slice_bytes })
    }

    pub fn id(&self) -> u64 {
        self.writer.id()
    }

    pub fn stats(&self) -> CaptureStats {
        self.capture.stats()
    }

    pub fn bytes_written(&self) -> u64 {
        self.writer.bytes_written()
    }

    /// The throttle, to change its rate between steps ([`super::DiskWriteSpeed::rate_for_load`]).
    pub fn throttle_mut(&mut self) -> &mut Throttle {
        &mut self.throttle
    }

    /// Applies a committed write set (see [`Capture::apply_write_set`]).
    pub fn apply_write_set(
        &mut self,
        store: &mut Store,
        write_set: &WriteSet,
        catalog: &Catalog,
    ) -> cairn_common::Result<()> {
        self.capture.apply_write_set(store, write_set, catalog)
    }

    /// Applies one committed change (see [`Capture::apply`]).
    pub fn apply(&mut self, store: &mut Store, change: &RowChange, catalog: &Catalog) -> cairn_common::Result<()> {
        self.capture.apply(store, change, catalog)
    }

    fn write_pending(&mut self) -> Result<u64, CheckpointError> {
        let mut bytes = 0;
        for block in self.capture.take_blocks() {
            bytes += self.writer.write(&block)?;
        }
        Ok(bytes)
    }

    /// Does the next slice of work if the throttle allows it at `now`.
    pub fn step(&mut self, store: &Store, now: Duration) -> Result<Step, CheckpointError> {
        // Blocks made by applied changes are written at once whatever the throttle says: holding
        // them back would let memory grow with the write load. They count against the budget.
        let changes = self.write_pending()?;
        if self.capture.is_captured() {
            if changes > 0 {
                self.throttle.consume(now, changes);
            }
            return Ok(Step::Captured);
        }
        if !self.throttle.is_ready(now) {
            let until = if changes > 0 { self.throttle.consume(now, changes) } else { self.throttle.ready_at() };
            return Ok(Step::Wait { until, bytes: changes });
        }
        self.capture.capture(store, self.slice_bytes);
        let bytes = changes + self.write_pending()?;
        let next_at = self.throttle.consume(now, bytes);
        Ok(Step::Wrote { bytes, next_at })
    }

    /// Copies whatever is left with no pacing (a shutdown, a test) and reports when captured.
    pub fn capture_rest(&mut self, store: &Store) -> Result<(), CheckpointError> {
        while !self.capture.is_captured() {
            self.capture.capture(store, self.slice_bytes);
            self.write_pending()?;
        }
        Ok(())
    }

    /// Ends the checkpoint at `cut` (the last entry applied to `store`), makes it durable and
    /// returns its manifest. The Raft log may then be truncated (see the module doc for where).
    /// On error the checkpoint's directory is removed (as far as the disk lets it) and the
    /// previous checkpoints stay.
    pub fn finish(mut self, store: &Store, cut: Cut) -> Result<Completed, CheckpointError> {
        let captured = match self.write_pending().and_then(|_| self.capture.finish(store, cut)) {
            Ok(captured) => captured,
            Err(e) => {
                let _ = self.writer.abandon();
                return Err(e);
            }
        };
        self.writer.complete(captured)
    }

    /// Gives the checkpoint up (the node is shutting down, or a change could not be tracked) and
    /// removes its directory; the previous checkpoints stay.
    pub fn abandon(self) -> Result<(), CheckpointError> {
        self.writer.abandon()
    }
}
