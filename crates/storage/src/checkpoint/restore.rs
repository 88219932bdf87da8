//! Reading a checkpoint back: verify everything, rebuild a [`Store`], or refuse.
//!
//! A restore reads the manifest (checksummed), refuses a checkpoint of another cluster, node or
//! node group, compares every data file's size with the manifest, then reads each data file,
//! checking its header, every block's checksum and the whole file's checksum while replaying
//! its records into per-partition images (slot → row). Partitions are rebuilt with
//! [`Store::restore_partition`] into a store that is handed out only if everything succeeded, and
//! whose row counts match the manifest's. Any damage is an error that names the file and the
//! offset; nothing panics on bad bytes.
//!
//! Data files are independent (each partition's records are all in one file), so several
//! threads read and check files while the calling thread rebuilds partitions from the files
//! already read. Each file is held in memory while its partitions are rebuilt: peak memory is
//! the store plus about `threads + 2` data files.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use cairn_common::catalog::{Catalog, TableDef};
use cairn_common::ids::{PartitionId, TableId};
use cairn_common::ops::RowChange;

use super::disk::Disk;
use super::format::{FileEntry, Manifest, Record, decode_blocks, decode_file_header};
use super::writer::{check_identity, checkpoint_dir, list_checkpoints, read_manifest};
use super::{CheckpointError, Identity, io_error};
use crate::Store;

/// A store rebuilt from a checkpoint.
#[derive(Debug)]
pub struct Restored {
    pub store: Store,
    /// Where to resume: replay the Raft log from `manifest.applied_index + 1`.
    pub manifest: Manifest,
    pub stats: RestoreStats,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreStats {
    pub rows: u64,
    pub bytes_read: u64,
    pub files: usize,
    pub partitions: usize,
}

/// A row's place in its file's bytes.
#[derive(Clone, Copy, Debug)]
struct RowRef {
    start: usize,
    len: usize,
}

/// One partition's slots as a data file's records leave them.
///
/// Copied rows arrive in ascending slot order and go to `base`; recorded changes may land
/// anywhere and go to `overrides`, which only ever holds slots at or below `base`'s last, so a
/// merge of the two in slot order gives the final image.
#[derive(Debug, Default)]
struct PartitionImage {
    base: Vec<(u32, RowRef)>,
    overrides: BTreeMap<u32, Option<RowRef>>,
}

impl PartitionImage {
    fn set(&mut self, slot: u32, row: RowRef) {
        match self.base.last() {
            Some(&(last, _)) if slot <= last => {
                self.overrides.insert(slot, Some(row));
            }
            _ => self.base.push((slot, row)),
        }
    }

    fn vacate(&mut self, slot: u32) {
        // A slot above every copied one holds nothing yet (overrides hold only lower slots).
        if self.base.last().is_some_and(|&(last, _)| slot <= last) {
            self.overrides.insert(slot, None);
        }
    }

    fn clear(&mut self) {
        self.base.clear();
        self.overrides.clear();
    }

    /// The final (slot, row) pairs in ascending slot order.
    fn rows<'a>(&self, bytes: &'a [u8]) -> Vec<(u64, &'a [u8])> {
        let row = |r: &RowRef| &bytes[r.start..r.start + r.len];
        let mut out = Vec::with_capacity(self.base.len() + self.overrides.len());
        let mut base = self.base.iter().peekable();
        let mut overrides = self.overrides.iter().peekable();
        loop {
            match (base.peek(), overrides.peek()) {
                (Some(&&(slot, copied)), Some(&(&changed, value))) => {
                    if changed <= slot {
                        if let Some(r) = value {
                            out.push((changed as u64, row(r)));
                        }
                        overrides.next();
                        if changed == slot {
                            // The change replaced (or emptied) the copied row.
                            base.next();
                        }
                    } else {
                        out.push((slot as u64, row(&copied)));
                        base.next();
                    }
                }
                (Some(&&(slot, copied)), None) => {
                    out.push((slot as u64, row(&copied)));
                    base.next();
                }
                (None, Some(&(&changed, value))) => {
                    if let Some(r) = value {
                        out.push((changed as u64, row(r)));
                    }
                    overrides.next();
                }
                (None, None) => return out,
            }
        }
    }
}

/// A data file read and checked.
struct DecodedFile {
    path: PathBuf,
    bytes: Vec<u8>,
    partitions: Vec<((TableId, PartitionId), PartitionImage)>,
}

fn corrupt(file: &Path, offset: u64, reason: String) -> CheckpointError {
    CheckpointError::Corrupt { file: file.to_path_buf(), offset, reason }
}

/// Checks a data file's size against the manifest before reading it.
fn check_size(disk: &dyn Disk, path: &Path, entry: &FileEntry) -> Result<(), CheckpointError> {
    let len = disk.file_len(path).map_err(|e| io_error("reading the size of", path, e))?;
    if len < entry.bytes {
        return Err(corrupt(
            path,
            len,
            format!("truncated: the file has {len} bytes, the manifest says {}", entry.bytes),
        ));
    }
    if len > entry.bytes {
        return Err(corrupt(
            path,
            entry.bytes,
            format!(
                "the file has {len} bytes, the manifest says {}: bytes were appended after the checkpoint",
                entry.bytes
            ),
        ));
    }
    Ok(())
}

/// Reads one data file and replays its records into partition images, checking everything.
fn decode_file(disk: &dyn Disk, dir: &Path, entry: &FileEntry) -> Result<DecodedFile, CheckpointError> {
    if entry.name.contains(['/', '\\']) || entry.name.starts_with('.') {
        return Err(CheckpointError::Inconsistent(format!("the manifest names an unsafe data file {:?}", entry.name)));
    }
    let path = dir.join(&entry.name);
    check_size(disk, &path, entry)?;
    let bytes = disk.read_file(&path).map_err(|e| io_error("reading", &path, e))?;
    if bytes.len() as u64 != entry.bytes {
        // The file changed between the size check and the read.
        return Err(corrupt(
            &path,
            bytes.len().min(entry.bytes as usize) as u64,
            format!("read {} bytes, the manifest says {}", bytes.len(), entry.bytes),
        ));
    }
    let stream = decode_file_header(&bytes, &path)?;
    if stream != entry.stream {
        return Err(corrupt(
            &path,
            12,
            format!("the file is data stream {stream}, the manifest says {}", entry.stream),
        ));
    }
    let mut images: HashMap<(TableId, PartitionId), PartitionImage> = HashMap::new();
    let blocks = decode_blocks(&bytes, &path, |record| {
        match record {
            Record::Row { table, partition, slot, row, row_offset } => {
                images
                    .entry((table, partition))
                    .or_default()
                    .set(slot, RowRef { start: row_offset as usize, len: row.len() });
            }
            Record::Vacate { table, partition, slot } => images.entry((table, partition)).or_default().vacate(slot),
            Record::Clear { table, partition } => images.entry((table, partition)).or_default().clear(),
        }
        Ok(())
    })?;
    if blocks != entry.blocks {
        return Err(corrupt(&path, bytes.len() as u64, format!("{blocks} blocks, the manifest says {}", entry.blocks)));
    }
    let crc = crc32c::crc32c(&bytes);
    if crc != entry.crc32c {
        return Err(corrupt(
            &path,
            0,
            format!("whole-file checksum mismatch (computed {crc:08x}, the manifest says {:08x})", entry.crc32c),
        ));
    }
    let mut partitions: Vec<_> = images.into_iter().collect();
    partitions.sort_by_key(|(key, _)| *key);
    Ok(DecodedFile { path, bytes, partitions })
}

/// Reads every data file of a manifest (on `threads` extra threads, 0: on the calling thread),
/// handing each to `consume` on the calling thread as soon as it is read and checked.
fn for_each_file(
    disk: &dyn Disk,
    dir: &Path,
    manifest: &Manifest,
    threads: usize,
    mut consume: impl FnMut(DecodedFile) -> Result<(), CheckpointError>,
) -> Result<(), CheckpointError> {
    // Sizes first: a truncated file is reported before anything is read.
    for entry in &manifest.files {
        check_size(disk, &dir.join(&entry.name), entry)?;
    }
    if threads == 0 || manifest.files.len() <= 1 {
        for entry in &manifest.files {
            consume(decode_file(disk, dir, entry)?)?;
        }
        return Ok(());
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::sync_channel::<Result<DecodedFile, CheckpointError>>(1);
        for _ in 0..threads.min(manifest.files.len()) {
            let sender = sender.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || {
                loop {
                    let at = next.fetch_add(1, Ordering::Relaxed);
                    if at >= manifest.files.len() || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if sender.send(decode_file(disk, dir, &manifest.files[at])).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        let mut outcome = Ok(());
        for decoded in receiver.iter() {
            if let Err(e) = decoded.and_then(&mut consume) {
                outcome = Err(e);
                stop.store(true, Ordering::Relaxed);
                break;
            }
        }
        // Dropping the receiver releases workers blocked on a send.
        drop(receiver);
        outcome
    })
}

/// Checks every byte of checkpoint files against `manifest` without building a store (a
/// received snapshot is checked so before it is installed).
pub(crate) fn verify_files(disk: &dyn Disk, dir: &Path, manifest: &Manifest) -> Result<(), CheckpointError> {
    let mut seen = HashMap::new();
    for_each_file(disk, dir, manifest, 0, |decoded| {
        for (key, _) in &decoded.partitions {
            if let Some(other) = seen.insert(*key, decoded.path.clone()) {
                return Err(duplicate_partition(*key, &other, &decoded.path));
            }
        }
        Ok(())
    })
}

fn duplicate_partition(key: (TableId, PartitionId), first: &Path, second: &Path) -> CheckpointError {
    CheckpointError::Inconsistent(format!(
        "partition {} of table {} has records in both {} and {}",
        key.1,
        key.0,
        first.display(),
        second.display()
    ))
}

/// Checks checkpoint `id` entirely (identity, manifest, every file and block) without building
/// a store; returns its manifest.
pub fn verify_checkpoint(
    disk: &dyn Disk,
    root: &Path,
    id: u64,
    identity: &Identity,
) -> Result<Manifest, CheckpointError> {
    let dir = checkpoint_dir(root, id);
    let manifest = read_manifest(disk, root, id)?;
    check_identity(&manifest, identity, &dir)?;
    verify_files(disk, &dir, &manifest)?;
    Ok(manifest)
}

/// The id of the newest checkpoint whose manifest exists, if any.
pub fn newest_complete(disk: &dyn Disk, root: &Path) -> Result<Option<u64>, CheckpointError> {
    Ok(list_checkpoints(disk, root)?.iter().rev().find(|c| c.complete).map(|c| c.id))
}

/// Restores the newest complete checkpoint under `root`; `None` if there is none (a node that
/// never checkpointed replays its whole log). A damaged newest checkpoint is an error, not a
/// reason to fall back silently: the data node decides (an older checkpoint if the log still
/// reaches back to it, else an initial node restart from a replica).
pub fn restore_newest(
    disk: &dyn Disk,
    root: &Path,
    identity: &Identity,
    threads: usize,
) -> Result<Option<Restored>, CheckpointError> {
    match newest_complete(disk, root)? {
        Some(id) => restore_checkpoint(disk, root, id, identity, threads).map(Some),
        None => Ok(None),
    }
}

/// Restores checkpoint `id`, reading data files on `threads` extra threads (0: all on the
/// calling thread, as a deterministic simulator wants).
pub fn restore_checkpoint(
    disk: &dyn Disk,
    root: &Path,
    id: u64,
    identity: &Identity,
    threads: usize,
) -> Result<Restored, CheckpointError> {
    let dir = checkpoint_dir(root, id);
    let manifest = read_manifest(disk, root, id)?;
    check_identity(&manifest, identity, &dir)?;
    let inconsistent =
        |reason: String| CheckpointError::Inconsistent(format!("checkpoint {}: {reason}", dir.display()));

    let mut store = Store::new(manifest.node_group);
    let mut definitions: HashMap<TableId, &TableDef> = HashMap::new();
    let no_catalog = Catalog::new();
    for entry in &manifest.tables {
        match &entry.definition {
            Some(def) => {
                if def.id != entry.table {
                    return Err(inconsistent(format!(
                        "table entry {} holds the definition of table {}",
                        entry.table, def.id
                    )));
                }
                // An empty partition 0 registers the definition (the table may have no rows).
                store
                    .restore_partition(def, PartitionId(0), std::iter::empty())
                    .map_err(|e| inconsistent(format!("table {}: {}", entry.table, e.message)))?;
                definitions.insert(entry.table, def);
            }
            None if entry.rows > 0 => {
                return Err(inconsistent(format!("table {} has {} rows but no definition", entry.table, entry.rows)));
            }
            None => {}
        }
        if entry.definition.is_none() || entry.auto_increment_next > 0 {
            store
                .apply(&RowChange::AutoIncrement { table: entry.table, next: entry.auto_increment_next }, &no_catalog)
                .map_err(|e| inconsistent(format!("table {}: {}", entry.table, e.message)))?;
        }
    }

    let mut stats = RestoreStats::default();
    let mut placed: HashMap<(TableId, PartitionId), PathBuf> = HashMap::new();
    for_each_file(disk, &dir, &manifest, threads, |decoded| {
        stats.files += 1;
        stats.bytes_read += decoded.bytes.len() as u64;
        for (key, image) in &decoded.partitions {
            if let Some(other) = placed.insert(*key, decoded.path.clone()) {
                return Err(duplicate_partition(*key, &other, &decoded.path));
            }
            let rows = image.rows(&decoded.bytes);
            if rows.is_empty() {
                // A partition emptied (or a table dropped) while the checkpoint was taken.
                continue;
            }
            let (table, partition) = *key;
            let def = definitions.get(&table).ok_or_else(|| {
                inconsistent(format!(
                    "{} holds rows of partition {partition} of table {table}, which the manifest does not define",
                    decoded.path.display()
                ))
            })?;
            stats.rows += rows.len() as u64;
            stats.partitions += 1;
            // The store takes owned rows; each copy lives only until the row is in its arena.
            let owned = rows.into_iter().map(|(slot, row)| (slot, row.to_vec()));
            store.restore_partition(def, partition, owned).map_err(|e| {
                inconsistent(format!(
                    "{}: partition {partition} of table {table} does not rebuild: {}",
                    decoded.path.display(),
                    e.message
                ))
            })?;
        }
        Ok(())
    })?;

    for entry in &manifest.tables {
        let rows = store.table_memory(entry.table).map_or(0, |m| m.rows);
        if rows != entry.rows {
            return Err(inconsistent(format!(
                "table {} restored with {rows} rows, the manifest says {}",
                entry.table, entry.rows
            )));
        }
    }
    let memory = store.memory();
    if memory.rows != manifest.rows || memory.row_bytes != manifest.row_bytes {
        return Err(inconsistent(format!(
            "restored {} rows of {} bytes, the manifest says {} rows of {} bytes",
            memory.rows, memory.row_bytes, manifest.rows, manifest.row_bytes
        )));
    }
    Ok(Restored { store, manifest, stats })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: usize) -> RowRef {
        RowRef { start, len: 1 }
    }

    #[test]
    fn images_merge_copied_rows_with_later_changes() {
        let bytes: Vec<u8> = (0u8..20).collect();
        let mut image = PartitionImage::default();
        image.set(1, r(1));
        image.set(3, r(3));
        image.set(6, r(6));
        image.set(3, r(13)); // overwrite of a copied row
        image.vacate(1); // a copied row deleted
        image.set(2, r(12)); // a new row in a hole
        image.vacate(9); // above everything copied: nothing there yet
        image.set(9, r(9));
        image.vacate(6);
        image.set(0, r(10));
        let got: Vec<(u64, u8)> = image.rows(&bytes).into_iter().map(|(s, b)| (s, b[0])).collect();
        assert_eq!(got, vec![(0, 10), (2, 12), (3, 13), (9, 9)]);
        image.clear();
        image.set(4, r(4));
        let got: Vec<(u64, u8)> = image.rows(&bytes).into_iter().map(|(s, b)| (s, b[0])).collect();
        assert_eq!(got, vec![(4, 4)]);
    }
}
