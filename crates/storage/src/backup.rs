//! # Online backups (NDB's START BACKUP) of one node group's rows
//!
//! A backup must hold every row of every table *as it was at one point of the Raft log* (the
//! backup marker, see the data node's `backup` module for how every node group orders one at
//! the same moment), while writes go on. NDB copies fragments while logging changes and
//! replays (or undoes) that log at restore. Cairn does without a log: the copy is
//! **copy-before-write**.
//!
//! A cursor walks every row position `(table, partition, slot)` in order, as a local
//! checkpoint's does ([`crate::checkpoint::Capture`]). Positions before the cursor are done:
//! what they held at the cut was written. For positions at or after it, every write set applied
//! after the cut goes through [`BackupCapture::before_apply`] and
//! [`BackupCapture::after_apply`]:
//!
//! - before it is applied, the row at each slot it is about to change, if that slot still holds
//!   its cut-time row, is written now (its *before-image*) and the slot is marked;
//! - after it is applied, each slot a touched key now occupies is marked too (it holds a row
//!   newer than the cut).
//!
//! The cursor skips marked slots. So every row that existed at the cut is written exactly once,
//! either by the cursor or as a before-image, and no row newer than the cut is ever written.
//! TRUNCATE and DROP write every cut-time row of the table not yet written, then mark its
//! partitions done. The marks grow with the writes made during the backup (one entry per
//! changed slot), not with the data.
//!
//! Unlike a local checkpoint, a backup does not keep slots meaningful: a restore re-inserts the
//! rows through the normal write path of a cluster that may have another number of node groups,
//! so rows are re-partitioned anyway. The data file reuses the checkpoint format's checksummed
//! blocks and row records ([`crate::checkpoint::format`]); the control file (`.ctl`, written
//! last, as NDB names it) holds the catalog (schema and users), per-table row counts and
//! AUTO_INCREMENT counters at the cut, and each data file's size and checksum.
//!
//! Files of backup `B` written by node `N`, under the node's backup directory:
//!
//! ```text
//! BACKUP/BACKUP-B/BACKUP-B-0.N.Data   rows, in checksummed blocks
//! BACKUP/BACKUP-B/BACKUP-B.N.ctl      the control file; its presence makes the backup complete
//! ```
//!
//! Left out: NDB's `.log` file (there is no change log to replay), compression, and encrypted
//! backups.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use cairn_common::catalog::Catalog;
use cairn_common::ids::{NodeGroupId, NodeId, PartitionId, TableId};
use cairn_common::ops::RowChange;

use crate::Store;
use crate::checkpoint::format::{BlockBuilder, FileEntry, Record, decode_blocks, decode_file_header};
use crate::checkpoint::capture::{key_of_row, next_partition};
use crate::checkpoint::{CheckpointError, Disk, io_error};

/// The directory of backup `backup_id` under a node's backup directory.
pub fn backup_dir(backup_root: &Path, backup_id: u32) -> PathBuf {
    backup_root.join("BACKUP").join(format!("BACKUP-{backup_id}"))
}

/// The data file of backup `backup_id` written by `node`.
pub fn data_file_name(backup_id: u32, node: NodeId) -> String {
    format!("BACKUP-{backup_id}-0.{}.Data", node.0)
}

/// The control file of backup `backup_id` written by `node`.
pub fn control_file_name(backup_id: u32, node: NodeId) -> String {
    format!("BACKUP-{backup_id}.{}.ctl", node.0)
}

/// Backup ids present under a node's backup directory (complete or not), ascending.
pub fn list_backups(backup_root: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(backup_root.join("BACKUP")) else { return Vec::new() };
    let mut ids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| name.strip_prefix("BACKUP-")?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids
}

/// Where the copy stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cursor {
    At { table: TableId, partition: PartitionId, slot: u64 },
    Done,
}

/// What one [`BackupCapture::capture`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackupProgress {
    pub rows: u64,
    pub bytes: u64,
    pub done: bool,
}

/// A table at the backup's cut.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupTable {
    pub table: TableId,
    pub rows: u64,
    pub auto_increment_next: u64,
}

/// Keys a write set is about to change, noted by [`BackupCapture::before_apply`] for
/// [`BackupCapture::after_apply`].
#[derive(Debug, Default)]
pub struct Touched {
    keys: Vec<(TableId, PartitionId, Vec<u8>)>,
}

/// A backup of one node group's rows being copied (sans-IO: it produces sealed blocks).
#[derive(Debug)]
pub struct BackupCapture {
    /// Only these tables are backed up (the backup's catalog); rows of others are skipped.
    tables: BTreeSet<TableId>,
    cursor: Cursor,
    /// Row positions not yet reached whose cut-time content is already written or that hold
    /// newer rows: the cursor skips them.
    marked: HashSet<(TableId, PartitionId, u32)>,
    /// Partitions written in full ahead of the cursor (TRUNCATE, DROP during the backup).
    finished: HashSet<(TableId, PartitionId)>,
    builder: BlockBuilder,
    block_bytes: usize,
    sealed: Vec<Vec<u8>>,
    /// Table-level state at the cut.
    cut_tables: Vec<BackupTable>,
    records: u64,
    record_bytes: u64,
    /// Set if a change could not be tracked: the backup is then refused at `finish`.
    broken: Option<String>,
}

impl BackupCapture {
    /// Starts a backup of `store` as it is now (the cut), of the tables in `catalog`.
    pub fn start(store: &Store, catalog: &Catalog, block_bytes: usize) -> BackupCapture {
        let tables: BTreeSet<TableId> = catalog.tables.keys().copied().collect();
        let cut_tables = tables
            .iter()
            .map(|&table| BackupTable {
                table,
                rows: store.table_memory(table).map_or(0, |m| m.rows),
                auto_increment_next: store.auto_increment_next(table),
            })
            .collect();
        let cursor = match first_partition(store, &tables) {
            Some((table, partition)) => Cursor::At { table, partition, slot: 0 },
            None => Cursor::Done,
        };
        BackupCapture {
            tables,
            cursor,
            marked: HashSet::new(),
            finished: HashSet::new(),
            builder: BlockBuilder::default(),
            block_bytes: block_bytes.clamp(4 << 10, 8 << 20),
            sealed: Vec::new(),
            cut_tables,
            records: 0,
            record_bytes: 0,
            broken: None,
        }
    }

    pub fn is_captured(&self) -> bool {
        self.cursor == Cursor::Done
    }

    /// Rows written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Whether position `(table, partition, slot)` is still ahead of the cursor.
    fn ahead(&self, table: TableId, partition: PartitionId, slot: u64) -> bool {
        if self.finished.contains(&(table, partition)) {
            return false;
        }
        match self.cursor {
            Cursor::Done => false,
            Cursor::At { table: t, partition: p, slot: s } => {
                (table, partition) > (t, p) || ((table, partition) == (t, p) && slot >= s)
            }
        }
    }

    fn write_row(&mut self, table: TableId, partition: PartitionId, slot: u64, row: &[u8]) -> u64 {
        // Slots are u32 in the store; the cast cannot lose bits.
        let added = self.builder.push_row(table, partition, slot as u32, row) as u64;
        self.records += 1;
        self.record_bytes += added;
        if self.builder.payload_len() >= self.block_bytes {
            self.sealed.push(self.builder.seal());
        }
        added
    }

    /// Copies rows at the cursor until about `max_bytes` were written (at least one row if any
    /// is left) and moves the cursor past them.
    pub fn capture(&mut self, store: &Store, max_bytes: usize) -> BackupProgress {
        let mut progress = BackupProgress::default();
        loop {
            let Cursor::At { table, partition, slot } = self.cursor else {
                progress.done = true;
                return progress;
            };
            if !self.finished.contains(&(table, partition)) {
                for (found, row) in store.partition_rows_from(table, partition, slot) {
                    if progress.bytes >= max_bytes as u64 && progress.rows > 0 {
                        self.cursor = Cursor::At { table, partition, slot: found };
                        return progress;
                    }
                    if self.marked.remove(&(table, partition, found as u32)) {
                        continue;
                    }
                    progress.bytes += self.write_row(table, partition, found, row);
                    progress.rows += 1;
                }
            }
            // The partition is done: its marks are no longer needed.
            self.marked.retain(|(t, p, _)| (*t, *p) != (table, partition));
            self.cursor = match next_partition(store, self.tables.range(table..).copied(), table, partition) {
                Some((table, partition)) => Cursor::At { table, partition, slot: 0 },
                None => Cursor::Done,
            };
        }
    }

    /// Writes the cut-time row at `slot` if it is still ahead of the cursor and not written yet,
    /// and marks the slot.
    fn preserve(&mut self, store: &Store, table: TableId, partition: PartitionId, slot: u64) {
        if !self.ahead(table, partition, slot) || !self.marked.insert((table, partition, slot as u32)) {
            return;
        }
        let row = store.partition_rows_from(table, partition, slot).next().filter(|(s, _)| *s == slot).map(|(_, r)| r);
        if let Some(row) = row {
            let row = row.to_vec();
            self.write_row(table, partition, slot, &row);
        }
    }

    /// Call before applying committed `changes` to `store`: writes the before-images of the
    /// rows they will change. Pass the result to [`BackupCapture::after_apply`].
    pub fn before_apply(&mut self, store: &Store, changes: &[RowChange], catalog: &Catalog) -> Touched {
        let mut touched = Touched::default();
        if self.cursor == Cursor::Done {
            return touched;
        }
        for change in changes {
            match change {
                RowChange::Put { table, partition, row } => {
                    if !self.tables.contains(table) {
                        continue;
                    }
                    match key_of_row(store, catalog, *table, row) {
                        Ok(key) => {
                            if let Some((slot, _)) = store.find_slot(*table, *partition, &key) {
                                self.preserve(store, *table, *partition, slot);
                            }
                            touched.keys.push((*table, *partition, key));
                        }
                        Err(reason) => {
                            self.broken.get_or_insert(format!("a change could not be tracked: {reason}"));
                        }
                    }
                }
                RowChange::Delete { table, partition, key } => {
                    if !self.tables.contains(table) {
                        continue;
                    }
                    if let Some((slot, _)) = store.find_slot(*table, *partition, key) {
                        self.preserve(store, *table, *partition, slot);
                    }
                }
                RowChange::Truncate { table } | RowChange::DropTable { table } => {
                    if !self.tables.contains(table) {
                        continue;
                    }
                    for partition in store.partitions(*table) {
                        let slots: Vec<u64> = store.partition_rows(*table, partition).map(|(s, _)| s).collect();
                        for slot in slots {
                            self.preserve(store, *table, partition, slot);
                        }
                        if self.ahead(*table, partition, u64::MAX) {
                            self.finished.insert((*table, partition));
                        }
                    }
                }
                RowChange::AutoIncrement { .. } => {}
            }
        }
        touched
    }

    /// Call after applying the changes: marks the slots touched keys now hold (newer rows).
    pub fn after_apply(&mut self, store: &Store, touched: Touched) {
        for (table, partition, key) in touched.keys {
            if let Some((slot, _)) = store.find_slot(table, partition, &key)
                && self.ahead(table, partition, slot)
            {
                self.marked.insert((table, partition, slot as u32));
            }
        }
    }

    /// Takes the blocks sealed so far, to be appended to the data file in this order.
    pub fn take_blocks(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.sealed)
    }

    /// Ends the backup once captured: the last block and the table-level state at the cut.
    pub fn finish(mut self) -> Result<(Vec<Vec<u8>>, Vec<BackupTable>, u64), CheckpointError> {
        if let Some(reason) = self.broken.take() {
            return Err(CheckpointError::Invalid(format!("the backup was abandoned: {reason}")));
        }
        if self.cursor != Cursor::Done {
            return Err(CheckpointError::Invalid("finish called before every partition was copied".into()));
        }
        if !self.builder.is_empty() {
            self.sealed.push(self.builder.seal());
        }
        Ok((std::mem::take(&mut self.sealed), self.cut_tables, self.records))
    }
}

fn first_partition(store: &Store, tables: &BTreeSet<TableId>) -> Option<(TableId, PartitionId)> {
    tables.iter().find_map(|&t| store.partitions(t).first().map(|&p| (t, p)))
}

// ----- The control file -----

const CONTROL_MAGIC: &[u8; 8] = b"CAIRNBKP";
const CONTROL_VERSION: u32 = 1;
/// The largest control file a reader accepts.
const MAX_CONTROL_BYTES: usize = 256 << 20;

/// The description of one node's part of a backup, written last.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupControl {
    pub backup_id: u32,
    pub cluster_id: u64,
    pub node_id: NodeId,
    pub node_group: NodeGroupId,
    /// The rows are those of the node group after applying Raft log entries up to (and not
    /// including) the marker at this index.
    pub cut_index: u64,
    /// The catalog (schema and users) at the backup, as the management node sent it
    /// (postcard-encoded `Catalog`).
    pub catalog: Vec<u8>,
    pub tables: Vec<BackupTable>,
    pub files: Vec<FileEntry>,
    pub records: u64,
    pub started_unix_ms: u64,
    pub completed_unix_ms: u64,
}

impl BackupControl {
    pub fn encode(&self) -> Vec<u8> {
        let payload = postcard::to_stdvec(self).expect("a backup control file always serializes");
        let mut out = Vec::with_capacity(payload.len() + 20);
        out.extend_from_slice(CONTROL_MAGIC);
        out.extend_from_slice(&CONTROL_VERSION.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&payload);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8], file: &Path) -> Result<BackupControl, CheckpointError> {
        let corrupt =
            |offset: u64, reason: String| CheckpointError::Corrupt { file: file.to_path_buf(), offset, reason };
        if bytes.len() < 20 || &bytes[0..8] != CONTROL_MAGIC {
            return Err(corrupt(0, "not a backup control file (bad magic or too short)".into()));
        }
        let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let len = u32_at(12) as usize;
        if len > MAX_CONTROL_BYTES || bytes.len() != 16 + len + 4 {
            return Err(corrupt(12, format!("length field says {len} bytes, the file has {}", bytes.len())));
        }
        let stored = u32_at(16 + len);
        let actual = crc32c::crc32c(&bytes[..16 + len]);
        if stored != actual {
            return Err(corrupt(
                (16 + len) as u64,
                format!("checksum mismatch (stored {stored:08x}, computed {actual:08x})"),
            ));
        }
        if u32_at(8) != CONTROL_VERSION {
            return Err(corrupt(8, format!("format version {}, this build reads {CONTROL_VERSION}", u32_at(8))));
        }
        postcard::from_bytes(&bytes[16..16 + len]).map_err(|e| corrupt(16, format!("does not decode: {e}")))
    }

    /// The catalog stored with the backup.
    pub fn catalog(&self) -> Result<Catalog, CheckpointError> {
        let mut catalog: Catalog = postcard::from_bytes(&self.catalog)
            .map_err(|e| CheckpointError::Inconsistent(format!("the backup's catalog does not decode: {e}")))?;
        catalog.reindex();
        Ok(catalog)
    }

    /// Sum of the data files' sizes.
    pub fn data_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// The data file of one node's part of a backup, being written (the I/O half; the capture
/// makes the blocks).
pub struct BackupFile {
    file: Box<dyn crate::checkpoint::DiskFile>,
    path: PathBuf,
    name: String,
    bytes: u64,
    crc: u32,
    blocks: u64,
}

impl std::fmt::Debug for BackupFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupFile").field("path", &self.path).field("bytes", &self.bytes).finish()
    }
}

impl BackupFile {
    /// Creates backup `backup_id`'s directory under `backup_root` and its data file for `node`.
    /// Refuses a backup id whose directory already holds this node's control file.
    pub fn create(disk: &dyn Disk, backup_root: &Path, backup_id: u32, node: NodeId) -> Result<BackupFile, CheckpointError> {
        let dir = backup_dir(backup_root, backup_id);
        let control = dir.join(control_file_name(backup_id, node));
        if disk.exists(&control).map_err(|e| io_error("checking", &control, e))? {
            return Err(CheckpointError::Refused(format!(
                "backup {backup_id} already exists in {}; choose another backup id",
                dir.display()
            )));
        }
        disk.create_dir_all(&dir).map_err(|e| io_error("creating", &dir, e))?;
        let name = data_file_name(backup_id, node);
        let path = dir.join(&name);
        let mut file = disk.create_file(&path).map_err(|e| io_error("creating", &path, e))?;
        let header = crate::checkpoint::format::encode_file_header(0);
        file.append(&header).map_err(|e| io_error("writing", &path, e))?;
        Ok(BackupFile { file, path, name, bytes: header.len() as u64, crc: crc32c::crc32c(&header), blocks: 0 })
    }

    /// Appends a sealed block; returns its size.
    pub fn write(&mut self, block: &[u8]) -> Result<u64, CheckpointError> {
        self.file.append(block).map_err(|e| io_error("writing", &self.path, e))?;
        self.bytes += block.len() as u64;
        self.crc = crc32c::crc32c_append(self.crc, block);
        self.blocks += 1;
        Ok(block.len() as u64)
    }

    /// Makes the file durable and describes it for the control file.
    pub fn finish(mut self) -> Result<FileEntry, CheckpointError> {
        self.file.sync().map_err(|e| io_error("syncing", &self.path, e))?;
        Ok(FileEntry { name: self.name, stream: 0, bytes: self.bytes, crc32c: self.crc, blocks: self.blocks })
    }

    /// The directory the file is in.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

/// Writes the control file into `dir` durably (temporary file, fsync, rename, fsync of the
/// directory): before this the node's part of the backup does not exist.
pub fn write_control(disk: &dyn Disk, dir: &Path, control: &BackupControl) -> Result<(), CheckpointError> {
    let name = control_file_name(control.backup_id, control.node_id);
    let temp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let mut file = disk.create_file(&temp).map_err(|e| io_error("creating", &temp, e))?;
    file.append(&control.encode()).map_err(|e| io_error("writing", &temp, e))?;
    file.sync().map_err(|e| io_error("syncing", &temp, e))?;
    drop(file);
    disk.rename(&temp, &target).map_err(|e| io_error("renaming", &temp, e))?;
    disk.sync_dir(dir).map_err(|e| io_error("syncing", dir, e))
}

/// The control files of backup `backup_id` found in `dir` (one per node that wrote a part).
pub fn find_controls(disk: &dyn Disk, dir: &Path, backup_id: u32) -> Result<Vec<BackupControl>, CheckpointError> {
    let names = disk.list_dir(dir).map_err(|e| io_error("listing", dir, e))?;
    let prefix = format!("BACKUP-{backup_id}.");
    let mut found = Vec::new();
    for name in names.into_iter().filter(|n| n.starts_with(&prefix) && n.ends_with(".ctl")) {
        let path = dir.join(&name);
        let bytes = disk.read_file(&path).map_err(|e| io_error("reading", &path, e))?;
        let control = BackupControl::decode(&bytes, &path)?;
        if control.backup_id != backup_id || control_file_name(backup_id, control.node_id) != name {
            return Err(CheckpointError::Inconsistent(format!(
                "{} describes backup {} of node {}",
                path.display(),
                control.backup_id,
                control.node_id
            )));
        }
        found.push(control);
    }
    found.sort_by_key(|c| c.node_id);
    Ok(found)
}

/// Reads and checks every data file of one node's part of a backup (sizes, every block's
/// checksum, whole-file checksums), handing each row (its table as the backup's catalog names
/// it, and its packed bytes in that table's layout) to `visit`.
pub fn read_rows(
    disk: &dyn Disk,
    dir: &Path,
    control: &BackupControl,
    mut visit: impl FnMut(TableId, &[u8]) -> Result<(), CheckpointError>,
) -> Result<u64, CheckpointError> {
    let mut rows = 0u64;
    for entry in &control.files {
        if entry.name.contains(['/', '\\']) || entry.name.starts_with('.') {
            return Err(CheckpointError::Inconsistent(format!("the control file names an unsafe file {:?}", entry.name)));
        }
        let path = dir.join(&entry.name);
        let bytes = disk.read_file(&path).map_err(|e| io_error("reading", &path, e))?;
        if bytes.len() as u64 != entry.bytes {
            return Err(CheckpointError::Corrupt {
                file: path,
                offset: bytes.len().min(entry.bytes as usize) as u64,
                reason: format!("the file has {} bytes, the control file says {}", bytes.len(), entry.bytes),
            });
        }
        let crc = crc32c::crc32c(&bytes);
        if crc != entry.crc32c {
            return Err(CheckpointError::Corrupt {
                file: path,
                offset: 0,
                reason: format!("whole-file checksum {crc:08x}, the control file says {:08x}", entry.crc32c),
            });
        }
        decode_file_header(&bytes, &path)?;
        let blocks = decode_blocks(&bytes, &path, |record| match record {
            Record::Row { table, row, .. } => {
                rows += 1;
                visit(table, row)
            }
            _ => Err(CheckpointError::Inconsistent(format!("{} holds a record that is not a row", path.display()))),
        })?;
        if blocks != entry.blocks {
            return Err(CheckpointError::Corrupt {
                file: path,
                offset: 0,
                reason: format!("{blocks} blocks, the control file says {}", entry.blocks),
            });
        }
    }
    if rows != control.records {
        return Err(CheckpointError::Inconsistent(format!(
            "backup {} of node {} holds {rows} rows, its control file says {}",
            control.backup_id, control.node_id, control.records
        )));
    }
    Ok(rows)
}
