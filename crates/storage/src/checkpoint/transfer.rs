//! Shipping a complete checkpoint to a replica that fell behind (a Raft snapshot).
//!
//! The leader's data node does not send rows: it streams the files of its newest complete
//! checkpoint in chunks of bounded size ([`SnapshotSource`]); the receiver writes them into a new
//! checkpoint directory of its own ([`SnapshotReceiver`]), checks every file against the
//! sender's manifest and every block's checksum, and only then writes its manifest, which makes
//! the checkpoint exist. The data node then restores from it like from any local checkpoint and
//! replays the log from the snapshot's index on.
//!
//! Chunks of different files are independent (each file's chunks must arrive in order), so the
//! files can be sent over several connections at once. A chunk's own encoding
//! ([`SnapshotChunk::encode`]) carries a crc32c, so a damaged chunk is refused where it arrives.
//!
//! The sender reads from a checkpoint that a newer one may prune once it completes (the node
//! keeps two); a transfer is expected to finish well within one checkpoint interval, and a
//! receiver that misses a file is told so and starts again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::disk::{Disk, DiskFile};
use super::format::{MAX_MANIFEST_BYTES, Manifest, SnapshotOrigin};
use super::restore::verify_files;
use super::writer::{
    Completed, MANIFEST_NAME, check_identity, checkpoint_dir, create_checkpoint_dir, data_file_name, prune,
    write_manifest,
};
use super::{CheckpointConfig, CheckpointError, Identity, io_error};

/// The default chunk size.
pub const DEFAULT_CHUNK_BYTES: usize = 1 << 20;
/// The largest chunk payload accepted.
pub const MAX_CHUNK_BYTES: usize = 16 << 20;

const CHUNK_MAGIC: u32 = u32::from_le_bytes(*b"CSNP");
const CHUNK_HEADER_BYTES: usize = 4 + 8 + 4 + 8 + 8 + 4;
const MANIFEST_PART: u32 = u32::MAX;

/// Which part of a checkpoint a chunk carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkPart {
    Manifest,
    /// The data file at this index of the manifest's `files`.
    File(u32),
}

/// A piece of a checkpoint in transit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotChunk {
    /// The sender's checkpoint id; every chunk of one transfer carries the same.
    pub checkpoint_id: u64,
    pub part: ChunkPart,
    /// Where `data` starts within the part.
    pub offset: u64,
    /// The part's whole size.
    pub total: u64,
    pub data: Vec<u8>,
}

fn transfer_error(reason: impl Into<String>) -> CheckpointError {
    CheckpointError::Transfer(reason.into())
}

impl SnapshotChunk {
    /// The chunk's bytes for the wire: header, data, crc32c of both.
    pub fn encode(&self) -> Vec<u8> {
        let part = match self.part {
            ChunkPart::Manifest => MANIFEST_PART,
            ChunkPart::File(index) => index,
        };
        let mut out = Vec::with_capacity(CHUNK_HEADER_BYTES + self.data.len() + 4);
        out.extend_from_slice(&CHUNK_MAGIC.to_le_bytes());
        out.extend_from_slice(&self.checkpoint_id.to_le_bytes());
        out.extend_from_slice(&part.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.total.to_le_bytes());
        out.extend_from_slice(&(self.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.data);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and checks a chunk received from the wire.
    pub fn decode(bytes: &[u8]) -> Result<SnapshotChunk, CheckpointError> {
        if bytes.len() < CHUNK_HEADER_BYTES + 4 {
            return Err(transfer_error(format!(
                "a snapshot chunk of {} bytes is shorter than its header",
                bytes.len()
            )));
        }
        let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        if u32_at(0) != CHUNK_MAGIC {
            return Err(transfer_error("not a snapshot chunk (bad magic)"));
        }
        let len = u32_at(32) as usize;
        if len > MAX_CHUNK_BYTES || bytes.len() != CHUNK_HEADER_BYTES + len + 4 {
            return Err(transfer_error(format!(
                "a snapshot chunk says it carries {len} bytes but is {} bytes long",
                bytes.len()
            )));
        }
        let crc_at = CHUNK_HEADER_BYTES + len;
        let stored = u32_at(crc_at);
        let actual = crc32c::crc32c(&bytes[..crc_at]);
        if stored != actual {
            return Err(transfer_error(format!(
                "snapshot chunk checksum mismatch (stored {stored:08x}, computed {actual:08x})"
            )));
        }
        let part = match u32_at(12) {
            MANIFEST_PART => ChunkPart::Manifest,
            index => ChunkPart::File(index),
        };
        Ok(SnapshotChunk {
            checkpoint_id: u64_at(4),
            part,
            offset: u64_at(16),
            total: u64_at(24),
            data: bytes[CHUNK_HEADER_BYTES..crc_at].to_vec(),
        })
    }
}

/// A complete local checkpoint, read for sending.
pub struct SnapshotSource {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    manifest: Manifest,
    manifest_bytes: Vec<u8>,
    chunk_bytes: usize,
}

impl std::fmt::Debug for SnapshotSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotSource").field("dir", &self.dir).field("chunk_bytes", &self.chunk_bytes).finish()
    }
}

impl SnapshotSource {
    /// Opens checkpoint `id` under `root` for sending in chunks of at most `chunk_bytes`. The
    /// manifest is checked (and must be this node's); file sizes are checked against it. The
    /// receiver checks every byte.
    pub fn open(
        disk: Arc<dyn Disk>,
        root: &Path,
        id: u64,
        identity: &Identity,
        chunk_bytes: usize,
    ) -> Result<SnapshotSource, CheckpointError> {
        if chunk_bytes == 0 || chunk_bytes > MAX_CHUNK_BYTES {
            return Err(CheckpointError::Invalid(format!(
                "chunk size {chunk_bytes} is not within 1..={MAX_CHUNK_BYTES}"
            )));
        }
        let dir = checkpoint_dir(root, id);
        let path = dir.join(MANIFEST_NAME);
        let manifest_bytes = disk.read_file(&path).map_err(|e| io_error("reading", &path, e))?;
        let manifest = Manifest::decode(&manifest_bytes, &path)?;
        if manifest.checkpoint_id != id {
            return Err(CheckpointError::Corrupt {
                file: path,
                offset: 0,
                reason: format!(
                    "the manifest describes checkpoint {}, not the directory's {id}",
                    manifest.checkpoint_id
                ),
            });
        }
        check_identity(&manifest, identity, &dir)?;
        for entry in &manifest.files {
            let file = dir.join(&entry.name);
            let len = disk.file_len(&file).map_err(|e| io_error("reading the size of", &file, e))?;
            if len != entry.bytes {
                return Err(CheckpointError::Corrupt {
                    file,
                    offset: len.min(entry.bytes),
                    reason: format!("the file has {len} bytes, the manifest says {}", entry.bytes),
                });
            }
        }
        Ok(SnapshotSource { disk, dir, manifest, manifest_bytes, chunk_bytes })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Bytes the whole transfer carries (manifest and data files).
    pub fn total_bytes(&self) -> u64 {
        self.manifest_bytes.len() as u64 + self.manifest.data_bytes()
    }

    /// The manifest's chunks; they go first.
    pub fn manifest_chunks(&self) -> Vec<SnapshotChunk> {
        let total = self.manifest_bytes.len() as u64;
        self.manifest_bytes
            .chunks(self.chunk_bytes)
            .scan(0u64, |offset, data| {
                let chunk = SnapshotChunk {
                    checkpoint_id: self.manifest.checkpoint_id,
                    part: ChunkPart::Manifest,
                    offset: *offset,
                    total,
                    data: data.to_vec(),
                };
                *offset += data.len() as u64;
                Some(chunk)
            })
            .collect()
    }

    /// The number of data files (each can be streamed on its own).
    pub fn file_count(&self) -> usize {
        self.manifest.files.len()
    }

    /// The chunks of data file `index`, read from disk one at a time.
    pub fn file_chunks(&self, index: usize) -> FileChunks<'_> {
        FileChunks { source: self, index, offset: 0 }
    }

    /// Every chunk: the manifest, then each file in turn.
    pub fn chunks(&self) -> impl Iterator<Item = Result<SnapshotChunk, CheckpointError>> + '_ {
        self.manifest_chunks().into_iter().map(Ok).chain((0..self.file_count()).flat_map(|i| self.file_chunks(i)))
    }
}

/// The chunks of one data file; see [`SnapshotSource::file_chunks`].
#[derive(Debug)]
pub struct FileChunks<'a> {
    source: &'a SnapshotSource,
    index: usize,
    offset: u64,
}

impl Iterator for FileChunks<'_> {
    type Item = Result<SnapshotChunk, CheckpointError>;

    fn next(&mut self) -> Option<Self::Item> {
        let entry = self.source.manifest.files.get(self.index)?;
        if self.offset >= entry.bytes {
            return None;
        }
        let want = (entry.bytes - self.offset).min(self.source.chunk_bytes as u64) as usize;
        let path = self.source.dir.join(&entry.name);
        let data = match self.source.disk.read_range(&path, self.offset, want) {
            Ok(data) if data.len() == want => data,
            Ok(data) => {
                // Stop after reporting: the file is shorter than the manifest says.
                let at = self.offset + data.len() as u64;
                self.offset = entry.bytes;
                return Some(Err(CheckpointError::Corrupt {
                    file: path,
                    offset: at,
                    reason: format!("truncated: the file ends before the {} bytes the manifest says", entry.bytes),
                }));
            }
            Err(e) => {
                self.offset = entry.bytes;
                return Some(Err(io_error("reading", &path, e)));
            }
        };
        let chunk = SnapshotChunk {
            checkpoint_id: self.source.manifest.checkpoint_id,
            part: ChunkPart::File(self.index as u32),
            offset: self.offset,
            total: entry.bytes,
            data,
        };
        self.offset += want as u64;
        Some(Ok(chunk))
    }
}

/// A data file being received.
struct ReceivingFile {
    file: Box<dyn DiskFile>,
    path: PathBuf,
    received: u64,
    crc: u32,
}

/// A checkpoint being received from another replica of the node group.
pub struct SnapshotReceiver {
    disk: Arc<dyn Disk>,
    root: PathBuf,
    identity: Identity,
    keep: usize,
    /// The sender's checkpoint id, from the first chunk.
    source_id: Option<u64>,
    manifest_bytes: Vec<u8>,
    /// Set once every manifest chunk arrived and the manifest checked out.
    source: Option<Manifest>,
    /// The local checkpoint directory (created once the manifest is known) and its id.
    target: Option<(u64, PathBuf)>,
    files: Vec<Option<ReceivingFile>>,
}

impl std::fmt::Debug for SnapshotReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotReceiver").field("root", &self.root).field("target", &self.target).finish()
    }
}

impl SnapshotReceiver {
    /// A receiver that will install into `root` (this node's `lcp/`). Nothing is written until
    /// the manifest has arrived and was accepted.
    pub fn new(
        disk: Arc<dyn Disk>,
        root: &Path,
        identity: Identity,
        config: &CheckpointConfig,
    ) -> Result<SnapshotReceiver, CheckpointError> {
        config.validate()?;
        Ok(SnapshotReceiver {
            disk,
            root: root.to_path_buf(),
            identity,
            keep: config.keep,
            source_id: None,
            manifest_bytes: Vec::new(),
            source: None,
            target: None,
            files: Vec::new(),
        })
    }

    /// The sender's manifest, once received.
    pub fn source_manifest(&self) -> Option<&Manifest> {
        self.source.as_ref()
    }

    /// Takes one chunk. Chunks of one part must come in order; the manifest's come first.
    pub fn accept(&mut self, chunk: SnapshotChunk) -> Result<(), CheckpointError> {
        if chunk.data.len() > MAX_CHUNK_BYTES {
            return Err(transfer_error(format!("a chunk of {} bytes exceeds {MAX_CHUNK_BYTES}", chunk.data.len())));
        }
        match self.source_id {
            None => {
                self.source_id = Some(chunk.checkpoint_id);
            }
            Some(id) if id != chunk.checkpoint_id => {
                return Err(transfer_error(format!(
                    "a chunk of checkpoint {} arrived during the transfer of checkpoint {id}",
                    chunk.checkpoint_id
                )));
            }
            Some(_) => {}
        }
        match chunk.part {
            ChunkPart::Manifest => self.accept_manifest(chunk),
            ChunkPart::File(index) => self.accept_file(index, chunk),
        }
    }

    fn accept_manifest(&mut self, chunk: SnapshotChunk) -> Result<(), CheckpointError> {
        if self.source.is_some() {
            return Err(transfer_error("a manifest chunk arrived after the whole manifest"));
        }
        if chunk.total > (MAX_MANIFEST_BYTES + 20) as u64 {
            return Err(transfer_error(format!("a manifest of {} bytes is beyond the limit", chunk.total)));
        }
        if chunk.offset != self.manifest_bytes.len() as u64 {
            return Err(transfer_error(format!(
                "manifest chunk at offset {} arrived, expected offset {}",
                chunk.offset,
                self.manifest_bytes.len()
            )));
        }
        let end = chunk.offset + chunk.data.len() as u64;
        if end > chunk.total {
            return Err(transfer_error(format!(
                "a manifest chunk ends at {end}, past the manifest's {} bytes",
                chunk.total
            )));
        }
        self.manifest_bytes.extend_from_slice(&chunk.data);
        if end < chunk.total {
            return Ok(());
        }
        let label =
            PathBuf::from(format!("{} (received manifest of checkpoint {})", MANIFEST_NAME, chunk.checkpoint_id));
        let manifest = Manifest::decode(&self.manifest_bytes, &label)?;
        if manifest.checkpoint_id != chunk.checkpoint_id {
            return Err(transfer_error(format!(
                "the received manifest describes checkpoint {}, the chunks say {}",
                manifest.checkpoint_id, chunk.checkpoint_id
            )));
        }
        if manifest.cluster_id != self.identity.cluster_id || manifest.node_group != self.identity.node_group {
            return Err(CheckpointError::Refused(format!(
                "the snapshot comes from cluster {:#x}, node group {} (node {}), but this node is in cluster {:#x}, node group {}; refusing it",
                manifest.cluster_id,
                manifest.node_group,
                manifest.node_id,
                self.identity.cluster_id,
                self.identity.node_group
            )));
        }
        for (index, entry) in manifest.files.iter().enumerate() {
            if entry.name != data_file_name(entry.stream) {
                return Err(transfer_error(format!("the received manifest names an unexpected file {:?}", entry.name)));
            }
            if manifest.files[..index].iter().any(|other| other.stream == entry.stream) {
                return Err(transfer_error(format!("the received manifest names {} twice", entry.name)));
            }
        }
        let (id, dir) = create_checkpoint_dir(self.disk.as_ref(), &self.root, &self.identity)?;
        self.files = manifest.files.iter().map(|_| None).collect();
        self.target = Some((id, dir));
        self.source = Some(manifest);
        Ok(())
    }

    fn accept_file(&mut self, index: u32, chunk: SnapshotChunk) -> Result<(), CheckpointError> {
        let (Some(manifest), Some((_, dir))) = (&self.source, &self.target) else {
            return Err(transfer_error("a data file chunk arrived before the manifest"));
        };
        let entry = manifest.files.get(index as usize).ok_or_else(|| {
            transfer_error(format!("a chunk of data file {index}, but the manifest lists {}", manifest.files.len()))
        })?;
        if chunk.total != entry.bytes {
            return Err(transfer_error(format!(
                "a chunk of {} says the file has {} bytes, the manifest says {}",
                entry.name, chunk.total, entry.bytes
            )));
        }
        let slot = &mut self.files[index as usize];
        if slot.is_none() {
            let path = dir.join(&entry.name);
            let file = self.disk.create_file(&path).map_err(|e| io_error("creating", &path, e))?;
            *slot = Some(ReceivingFile { file, path, received: 0, crc: 0 });
        }
        let Some(receiving) = slot.as_mut() else { unreachable!("created above") };
        if chunk.offset != receiving.received {
            return Err(transfer_error(format!(
                "a chunk of {} at offset {} arrived, expected offset {}",
                entry.name, chunk.offset, receiving.received
            )));
        }
        let end = chunk.offset + chunk.data.len() as u64;
        if end > entry.bytes {
            return Err(transfer_error(format!(
                "a chunk of {} ends at {end}, past the file's {} bytes",
                entry.name, entry.bytes
            )));
        }
        receiving.file.append(&chunk.data).map_err(|e| io_error("writing", &receiving.path, e))?;
        receiving.crc = crc32c::crc32c_append(receiving.crc, &chunk.data);
        receiving.received = end;
        Ok(())
    }

    /// Bytes still missing (None until the manifest has arrived).
    pub fn missing_bytes(&self) -> Option<u64> {
        let manifest = self.source.as_ref()?;
        let received: u64 = self.files.iter().flatten().map(|f| f.received).sum();
        Some(manifest.data_bytes() - received)
    }

    pub fn is_complete(&self) -> bool {
        self.missing_bytes() == Some(0)
    }

    /// Checks everything received (sizes, whole-file checksums, then every block read back from
    /// disk), makes it durable and writes this node's manifest for it: from then on it is this
    /// node's newest checkpoint. Older checkpoints beyond the kept ones are removed.
    pub fn install(mut self) -> Result<Completed, CheckpointError> {
        let (Some(source), Some((id, dir))) = (self.source.take(), self.target.take()) else {
            return Err(transfer_error("install called before the manifest arrived"));
        };
        let result = self.install_into(&source, id, &dir);
        if result.is_err() {
            let _ = self.disk.remove_dir_all(&dir);
        }
        result
    }

    fn install_into(&mut self, source: &Manifest, id: u64, dir: &Path) -> Result<Completed, CheckpointError> {
        for (entry, slot) in source.files.iter().zip(self.files.iter_mut()) {
            let Some(receiving) = slot.as_mut() else {
                return Err(transfer_error(format!("{} was never received", entry.name)));
            };
            if receiving.received != entry.bytes {
                return Err(transfer_error(format!(
                    "{} is incomplete: {} of {} bytes received",
                    entry.name, receiving.received, entry.bytes
                )));
            }
            if receiving.crc != entry.crc32c {
                return Err(CheckpointError::Corrupt {
                    file: receiving.path.clone(),
                    offset: 0,
                    reason: format!(
                        "received file checksum {:08x}, the sender's manifest says {:08x}",
                        receiving.crc, entry.crc32c
                    ),
                });
            }
            receiving.file.sync().map_err(|e| io_error("syncing", &receiving.path, e))?;
        }
        self.files.clear();
        self.disk.sync_dir(dir).map_err(|e| io_error("syncing", dir, e))?;
        verify_files(self.disk.as_ref(), dir, source)?;
        let manifest = Manifest {
            checkpoint_id: id,
            node_id: self.identity.node_id,
            received_from: Some(SnapshotOrigin { node_id: source.node_id, checkpoint_id: source.checkpoint_id }),
            ..source.clone()
        };
        write_manifest(self.disk.as_ref(), dir, &manifest)?;
        let (removed, prune_error) = match prune(self.disk.as_ref(), &self.root, id, self.keep) {
            Ok(removed) => (removed, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        Ok(Completed { manifest, removed, prune_error })
    }

    /// Gives the transfer up and removes what was written.
    pub fn abandon(mut self) -> Result<(), CheckpointError> {
        self.files.clear();
        match self.target.take() {
            Some((_, dir)) => self.disk.remove_dir_all(&dir).map_err(|e| io_error("removing", &dir, e)),
            None => Ok(()),
        }
    }
}
