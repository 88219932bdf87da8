//! The readers of local checkpoints (`cairn-storage`): the manifest, the data files' headers,
//! blocks and records, a whole restore into a store, and the chunks of a checkpoint streamed
//! from another replica as a Raft snapshot.
//!
//! The first input byte chooses what the rest is:
//!
//! - `0`: the bytes of a MANIFEST file;
//! - `1`: the bytes of a data file;
//! - `2`: a snapshot chunk as it arrives from a peer;
//! - otherwise a **sealed checkpoint**: `[u32 n][n bytes of manifest payload (postcard)]`
//!   `[u32 record count][block payload]`. The target frames the payload as a manifest and the
//!   records as the one block of the one data file, computes every length and checksum, points
//!   the manifest at that file, and restores the checkpoint from an in-memory disk. Checksums
//!   stop random bytes at the door; sealing lets the fuzzer reach the record decoder, the
//!   manifest's consistency checks and the rebuilding of partitions behind them.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cairn_storage::checkpoint::format::{BLOCK_HEADER_BYTES, decode_blocks, decode_file_header, encode_file_header};
use cairn_storage::checkpoint::writer::{MANIFEST_NAME, checkpoint_dir, data_file_name};
use cairn_storage::checkpoint::{
    Disk, DiskFile, FileEntry, Identity, Manifest, SnapshotChunk, restore_checkpoint, verify_checkpoint,
};

const BLOCK_MAGIC: &[u8; 4] = b"CBLK";
const MANIFEST_MAGIC: &[u8; 8] = b"CAIRNMAN";
/// The checkpoint format version the sealed form is written in.
const FORMAT_VERSION: u32 = 2;

pub fn checkpoint(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let name = Path::new("fuzz");
    match mode {
        0 => {
            let _ = Manifest::decode(rest, name);
        }
        1 => {
            if decode_file_header(rest, name).is_ok() {
                let _ = decode_blocks(rest, name, |_| Ok(()));
            }
        }
        2 => {
            let _ = SnapshotChunk::decode(rest);
        }
        _ => sealed(rest),
    }
}

/// Splits a sealed checkpoint input (see the module documentation) into its parts.
pub fn split_sealed(rest: &[u8]) -> Option<(&[u8], u32, &[u8])> {
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return None;
    }
    let (manifest_payload, rest) = rest.split_at(len);
    let (count, records) = rest.split_first_chunk::<4>()?;
    Some((manifest_payload, u32::from_le_bytes(*count), records))
}

/// The MANIFEST file's bytes around a postcard payload.
pub fn manifest_file(payload: &[u8]) -> Vec<u8> {
    let mut out = MANIFEST_MAGIC.to_vec();
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A data file of stream 0 holding one block of `records` that says it has `count` records.
pub fn data_file(count: u32, records: &[u8]) -> Vec<u8> {
    let mut out = encode_file_header(0).to_vec();
    let mut header = [0u8; BLOCK_HEADER_BYTES];
    header[0..4].copy_from_slice(BLOCK_MAGIC);
    header[4..8].copy_from_slice(&(records.len() as u32).to_le_bytes());
    header[8..12].copy_from_slice(&count.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[..12]), records);
    header[12..16].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(records);
    out
}

fn sealed(rest: &[u8]) {
    let Some((manifest_payload, count, records)) = split_sealed(rest) else {
        return;
    };
    let Ok(mut manifest) = Manifest::decode(&manifest_file(manifest_payload), Path::new("MANIFEST")) else {
        return;
    };
    let file = data_file(count, records);
    let name = data_file_name(0);
    manifest.checkpoint_id = 1;
    manifest.files = vec![FileEntry {
        name: name.clone(),
        stream: 0,
        bytes: file.len() as u64,
        crc32c: crc32c::crc32c(&file),
        blocks: 1,
    }];
    let root = PathBuf::from("/lcp");
    let dir = checkpoint_dir(&root, 1);
    let disk = MemoryDisk::default();
    disk.put(dir.join(MANIFEST_NAME), manifest.encode());
    disk.put(dir.join(name), file);
    let identity = Identity { cluster_id: manifest.cluster_id, node_id: manifest.node_id, node_group: manifest.node_group };
    let verified = verify_checkpoint(&disk, &root, 1, &identity);
    let restored = restore_checkpoint(&disk, &root, 1, &identity, 0);
    // Both read the same bytes with the same checks; only the restore also rebuilds partitions,
    // so a checkpoint the restore accepts must also pass verification.
    if restored.is_ok() {
        assert!(verified.is_ok(), "a checkpoint restored but failed verification: {verified:?}");
    }
}

/// Files in memory, read-only for the code under test: a restore never writes.
#[derive(Default)]
struct MemoryDisk {
    files: Mutex<BTreeMap<PathBuf, Vec<u8>>>,
}

impl MemoryDisk {
    fn put(&self, path: PathBuf, bytes: Vec<u8>) {
        self.lock().insert(path, bytes);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<PathBuf, Vec<u8>>> {
        match self.files.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.lock().get(path).cloned().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }
}

fn read_only() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, "the fuzz disk is read-only")
}

impl Disk for MemoryDisk {
    fn create_dir_all(&self, _: &Path) -> io::Result<()> {
        Err(read_only())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names: Vec<String> = Vec::new();
        for file in self.lock().keys() {
            if let Ok(inside) = file.strip_prefix(path)
                && let Some(first) = inside.components().next()
            {
                let name = first.as_os_str().to_string_lossy().into_owned();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        Ok(names)
    }

    fn create_file(&self, _: &Path) -> io::Result<Box<dyn DiskFile>> {
        Err(read_only())
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(self.file(path)?.len() as u64)
    }

    fn read_range(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let bytes = self.file(path)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
        let end = start.saturating_add(len).min(bytes.len());
        Ok(bytes[start..end].to_vec())
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.file(path)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        Ok(self.lock().keys().any(|file| file.starts_with(path)))
    }

    fn rename(&self, _: &Path, _: &Path) -> io::Result<()> {
        Err(read_only())
    }

    fn sync_dir(&self, _: &Path) -> io::Result<()> {
        Err(read_only())
    }

    fn remove_dir_all(&self, _: &Path) -> io::Result<()> {
        Err(read_only())
    }
}
