//! The bytes of a checkpoint on disk: data files of checksummed blocks, and the manifest.
//!
//! Everything here is pure: encoding into and decoding from byte slices. Integers are little
//! endian.
//!
//! ```text
//! data file  = file header (32 bytes) , block*
//! file header = "CAIRNLCP" , format u16 , kind u16 , stream u32 , reserved [u8; 12] , crc32c u32
//! block      = magic u32 ("CBLK") , payload_len u32 , record_count u32 , crc32c u32 , payload
//!              (the crc32c covers the first 12 header bytes and the payload)
//! payload    = record*
//! record     = 0x01 table u32 partition u32        -- the partition the next records are about
//!            | 0x02 slot u32 len u32 row[len]      -- slot := row
//!            | 0x03 slot u32                       -- slot := empty
//!            | 0x04                                -- every slot := empty
//! MANIFEST   = "CAIRNMAN" , format u32 , payload_len u32 , payload (postcard) , crc32c u32
//! ```
//!
//! Every block starts without a partition context, so a block can be decoded on its own and an
//! error can name the block's offset. The manifest pins each data file's exact size and whole-file
//! crc32c, so a file cannot be swapped, extended or truncated without notice; the per-block
//! checksums say *where* the damage is.

use std::path::Path;

use serde::{Deserialize, Serialize};

use cairn_common::catalog::TableDef;
use cairn_common::ids::{NodeGroupId, NodeId, PartitionId, TableId};
use cairn_common::row::MAX_ROW_BYTES;

use super::CheckpointError;

/// The on-disk format version this code writes and reads.
pub const FORMAT_VERSION: u16 = 2;

const FILE_MAGIC: &[u8; 8] = b"CAIRNLCP";
/// Bytes of a data file's header.
pub const FILE_HEADER_BYTES: usize = 32;
/// The only kind of data file so far: a stream of partition records.
const KIND_PARTITION_STREAM: u16 = 1;

const BLOCK_MAGIC: u32 = u32::from_le_bytes(*b"CBLK");
/// Bytes of a block's header.
pub const BLOCK_HEADER_BYTES: usize = 16;
/// The largest block payload a reader accepts. Writers stay far below it (a block holds at least
/// one record and is sealed once it passes its target size, at most 8 MiB, so the largest block is
/// the target plus one row); the bound keeps a corrupt length from making a reader allocate or
/// skip wildly.
pub const MAX_BLOCK_PAYLOAD: usize = 16 << 20;

const MANIFEST_MAGIC: &[u8; 8] = b"CAIRNMAN";
/// The largest manifest a reader accepts (table definitions make up most of it).
pub const MAX_MANIFEST_BYTES: usize = 64 << 20;

const TAG_PARTITION: u8 = 1;
const TAG_ROW: u8 = 2;
const TAG_VACATE: u8 = 3;
const TAG_CLEAR: u8 = 4;

/// Bytes a row record adds to the row itself.
pub const ROW_RECORD_OVERHEAD: usize = 9;

fn corrupt(file: &Path, offset: u64, reason: impl Into<String>) -> CheckpointError {
    CheckpointError::Corrupt { file: file.to_path_buf(), offset, reason: reason.into() }
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

// ----- Data file header -----

/// The header of data file `stream`.
pub fn encode_file_header(stream: u32) -> [u8; FILE_HEADER_BYTES] {
    let mut header = [0u8; FILE_HEADER_BYTES];
    header[0..8].copy_from_slice(FILE_MAGIC);
    header[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[10..12].copy_from_slice(&KIND_PARTITION_STREAM.to_le_bytes());
    header[12..16].copy_from_slice(&stream.to_le_bytes());
    let crc = crc32c::crc32c(&header[..28]);
    header[28..32].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Checks a data file's header and returns its stream number.
pub fn decode_file_header(bytes: &[u8], file: &Path) -> Result<u32, CheckpointError> {
    if bytes.len() < FILE_HEADER_BYTES {
        return Err(corrupt(
            file,
            bytes.len() as u64,
            format!("truncated: the file ends within its {FILE_HEADER_BYTES}-byte header"),
        ));
    }
    if &bytes[0..8] != FILE_MAGIC {
        return Err(corrupt(file, 0, "not a checkpoint data file (bad magic)"));
    }
    let stored = u32_at(bytes, 28);
    let actual = crc32c::crc32c(&bytes[..28]);
    if stored != actual {
        return Err(corrupt(
            file,
            0,
            format!("file header checksum mismatch (stored {stored:08x}, computed {actual:08x})"),
        ));
    }
    let version = u16_at(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(corrupt(file, 8, format!("format version {version}, this build reads version {FORMAT_VERSION}")));
    }
    let kind = u16_at(bytes, 10);
    if kind != KIND_PARTITION_STREAM {
        return Err(corrupt(file, 10, format!("unknown data file kind {kind}")));
    }
    Ok(u32_at(bytes, 12))
}

// ----- Blocks and records (writing) -----

/// A block being filled with records, for one data file.
#[derive(Debug, Default)]
pub struct BlockBuilder {
    payload: Vec<u8>,
    records: u32,
    /// The partition the last context record named, within this block.
    context: Option<(TableId, PartitionId)>,
}

impl BlockBuilder {
    pub fn payload_len(&self) -> usize {
        self.payload.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    fn enter(&mut self, table: TableId, partition: PartitionId) {
        if self.context != Some((table, partition)) {
            self.payload.push(TAG_PARTITION);
            self.payload.extend_from_slice(&table.0.to_le_bytes());
            self.payload.extend_from_slice(&partition.0.to_le_bytes());
            self.records += 1;
            self.context = Some((table, partition));
        }
    }

    /// Adds "slot := row"; returns the bytes added.
    pub fn push_row(&mut self, table: TableId, partition: PartitionId, slot: u32, row: &[u8]) -> usize {
        let before = self.payload.len();
        self.enter(table, partition);
        self.payload.push(TAG_ROW);
        self.payload.extend_from_slice(&slot.to_le_bytes());
        // Rows are at most MAX_ROW_BYTES (1 MiB), which the store enforces.
        self.payload.extend_from_slice(&(row.len() as u32).to_le_bytes());
        self.payload.extend_from_slice(row);
        self.records += 1;
        self.payload.len() - before
    }

    /// Adds "slot := empty"; returns the bytes added.
    pub fn push_vacate(&mut self, table: TableId, partition: PartitionId, slot: u32) -> usize {
        let before = self.payload.len();
        self.enter(table, partition);
        self.payload.push(TAG_VACATE);
        self.payload.extend_from_slice(&slot.to_le_bytes());
        self.records += 1;
        self.payload.len() - before
    }

    /// Adds "every slot := empty"; returns the bytes added.
    pub fn push_clear(&mut self, table: TableId, partition: PartitionId) -> usize {
        let before = self.payload.len();
        self.enter(table, partition);
        self.payload.push(TAG_CLEAR);
        self.records += 1;
        self.payload.len() - before
    }

    /// The finished block (header and payload); the builder starts a new, empty block.
    pub fn seal(&mut self) -> Vec<u8> {
        let mut block = Vec::with_capacity(BLOCK_HEADER_BYTES + self.payload.len());
        block.extend_from_slice(&BLOCK_MAGIC.to_le_bytes());
        block.extend_from_slice(&(self.payload.len() as u32).to_le_bytes());
        block.extend_from_slice(&self.records.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&block[..12]), &self.payload);
        block.extend_from_slice(&crc.to_le_bytes());
        block.extend_from_slice(&self.payload);
        self.payload.clear();
        self.records = 0;
        self.context = None;
        block
    }
}

// ----- Blocks and records (reading) -----

/// One record of a block, borrowing from the file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    Row { table: TableId, partition: PartitionId, slot: u32, row: &'a [u8], row_offset: u64 },
    Vacate { table: TableId, partition: PartitionId, slot: u32 },
    Clear { table: TableId, partition: PartitionId },
}

/// Walks the blocks of a data file (after its header), checking each block's checksum, and
/// hands every record to `visit` in file order.
pub fn decode_blocks<'a>(
    bytes: &'a [u8],
    file: &Path,
    mut visit: impl FnMut(Record<'a>) -> Result<(), CheckpointError>,
) -> Result<u64, CheckpointError> {
    let mut offset = FILE_HEADER_BYTES;
    let mut blocks = 0u64;
    while offset < bytes.len() {
        let block_at = offset as u64;
        let remaining = bytes.len() - offset;
        if remaining < BLOCK_HEADER_BYTES {
            return Err(corrupt(
                file,
                block_at,
                format!("truncated: {remaining} bytes left, less than a {BLOCK_HEADER_BYTES}-byte block header"),
            ));
        }
        let header = &bytes[offset..offset + BLOCK_HEADER_BYTES];
        let magic = u32_at(header, 0);
        let payload_len = u32_at(header, 4) as usize;
        let record_count = u32_at(header, 8);
        let stored_crc = u32_at(header, 12);
        if magic != BLOCK_MAGIC {
            return Err(corrupt(file, block_at, "block header damaged (bad block magic)"));
        }
        if payload_len > MAX_BLOCK_PAYLOAD {
            return Err(corrupt(
                file,
                block_at,
                format!(
                    "block header damaged: payload length {payload_len} exceeds the {MAX_BLOCK_PAYLOAD}-byte limit"
                ),
            ));
        }
        let payload_at = offset + BLOCK_HEADER_BYTES;
        if bytes.len() - payload_at < payload_len {
            return Err(corrupt(
                file,
                block_at,
                format!(
                    "truncated: the block's payload is {payload_len} bytes but the file ends {} bytes later",
                    bytes.len() - payload_at
                ),
            ));
        }
        let payload = &bytes[payload_at..payload_at + payload_len];
        let actual_crc = crc32c::crc32c_append(crc32c::crc32c(&header[..12]), payload);
        if actual_crc != stored_crc {
            return Err(corrupt(
                file,
                block_at,
                format!(
                    "block checksum mismatch (block of {payload_len} payload bytes at offsets {block_at}..{}; stored {stored_crc:08x}, computed {actual_crc:08x})",
                    payload_at + payload_len
                ),
            ));
        }
        let decoded = decode_records(payload, payload_at as u64, block_at, file, &mut visit)?;
        if decoded != record_count {
            return Err(corrupt(
                file,
                block_at,
                format!("block holds {decoded} records, its header says {record_count}"),
            ));
        }
        offset = payload_at + payload_len;
        blocks += 1;
    }
    Ok(blocks)
}

fn decode_records<'a>(
    payload: &'a [u8],
    payload_at: u64,
    block_at: u64,
    file: &Path,
    visit: &mut impl FnMut(Record<'a>) -> Result<(), CheckpointError>,
) -> Result<u32, CheckpointError> {
    let mut at = 0usize;
    let mut count = 0u32;
    let mut context: Option<(TableId, PartitionId)> = None;
    let bad = |at: usize, reason: String| {
        corrupt(file, payload_at + at as u64, format!("{reason} (in the block at offset {block_at})"))
    };
    while at < payload.len() {
        let record_at = at;
        let tag = payload[at];
        at += 1;
        let need = |n: usize, at: usize| -> Result<(), CheckpointError> {
            if payload.len() - at < n {
                Err(bad(record_at, format!("record of kind {tag} runs past the end of its block")))
            } else {
                Ok(())
            }
        };
        let in_context = |context: Option<(TableId, PartitionId)>| {
            context.ok_or_else(|| bad(record_at, format!("record of kind {tag} before any partition record")))
        };
        match tag {
            TAG_PARTITION => {
                need(8, at)?;
                context = Some((TableId(u32_at(payload, at)), PartitionId(u32_at(payload, at + 4))));
                at += 8;
            }
            TAG_ROW => {
                let (table, partition) = in_context(context)?;
                need(8, at)?;
                let slot = u32_at(payload, at);
                let len = u32_at(payload, at + 4) as usize;
                at += 8;
                if len == 0 || len > MAX_ROW_BYTES {
                    return Err(bad(record_at, format!("row of {len} bytes (rows are 1..={MAX_ROW_BYTES} bytes)")));
                }
                need(len, at)?;
                let row = &payload[at..at + len];
                visit(Record::Row { table, partition, slot, row, row_offset: payload_at + at as u64 })?;
                at += len;
            }
            TAG_VACATE => {
                let (table, partition) = in_context(context)?;
                need(4, at)?;
                let slot = u32_at(payload, at);
                at += 4;
                visit(Record::Vacate { table, partition, slot })?;
            }
            TAG_CLEAR => {
                let (table, partition) = in_context(context)?;
                visit(Record::Clear { table, partition })?;
            }
            other => return Err(bad(record_at, format!("unknown record kind {other}"))),
        }
        count += 1;
    }
    Ok(count)
}

// ----- Manifest -----

/// One table as the checkpoint saw it at its cut.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableEntry {
    pub table: TableId,
    /// The definition the store held for the table (its version is the table version the rows
    /// were stored under); None when the store held only an AUTO_INCREMENT counter for it.
    pub definition: Option<TableDef>,
    pub auto_increment_next: u64,
    /// Rows of the table at the cut, checked after a restore.
    pub rows: u64,
}

/// One data file of a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name inside the checkpoint directory.
    pub name: String,
    pub stream: u32,
    pub bytes: u64,
    /// crc32c of the whole file.
    pub crc32c: u32,
    pub blocks: u64,
}

/// Where a checkpoint installed from a Raft snapshot came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotOrigin {
    pub node_id: NodeId,
    pub checkpoint_id: u64,
}

/// The description of a complete checkpoint, written last: a checkpoint directory without a
/// manifest is incomplete and ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Equals the directory's name under `lcp/`.
    pub checkpoint_id: u64,
    pub cluster_id: u64,
    pub node_id: NodeId,
    pub node_group: NodeGroupId,
    /// The checkpoint holds exactly the store's state after applying this Raft log entry.
    pub applied_index: u64,
    pub applied_term: u64,
    /// The catalog version the data node had at the cut.
    pub catalog_version: u64,
    /// The Raft membership at the cut, as the data node encoded it (opaque here); a Raft
    /// snapshot carries it to a lagging replica.
    pub raft_membership: Vec<u8>,
    /// The replicated transaction state at the cut, as the data node encoded it (opaque here).
    pub txn_state: Vec<u8>,
    pub tables: Vec<TableEntry>,
    pub files: Vec<FileEntry>,
    /// Rows and packed row bytes at the cut.
    pub rows: u64,
    pub row_bytes: u64,
    /// Set when the checkpoint was received from another replica as a Raft snapshot.
    pub received_from: Option<SnapshotOrigin>,
}

impl Manifest {
    /// Sum of the data files' sizes.
    pub fn data_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// The MANIFEST file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let payload = postcard::to_stdvec(self).expect("a manifest always serializes");
        let mut out = Vec::with_capacity(payload.len() + 20);
        out.extend_from_slice(MANIFEST_MAGIC);
        out.extend_from_slice(&(FORMAT_VERSION as u32).to_le_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&payload);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and checks a MANIFEST file's bytes; `file` names it in errors.
    pub fn decode(bytes: &[u8], file: &Path) -> Result<Manifest, CheckpointError> {
        if bytes.len() < 20 {
            return Err(corrupt(
                file,
                bytes.len() as u64,
                format!("truncated: {} bytes, less than a manifest header", bytes.len()),
            ));
        }
        if &bytes[0..8] != MANIFEST_MAGIC {
            return Err(corrupt(file, 0, "not a checkpoint manifest (bad magic)"));
        }
        let payload_len = u32_at(bytes, 12) as usize;
        if payload_len > MAX_MANIFEST_BYTES || bytes.len() != 16 + payload_len + 4 {
            return Err(corrupt(
                file,
                12,
                format!(
                    "manifest length field says {payload_len} payload bytes, the file has {} bytes in all",
                    bytes.len()
                ),
            ));
        }
        let crc_at = 16 + payload_len;
        let stored = u32_at(bytes, crc_at);
        let actual = crc32c::crc32c(&bytes[..crc_at]);
        if stored != actual {
            return Err(corrupt(
                file,
                crc_at as u64,
                format!(
                    "manifest checksum mismatch over bytes 0..{crc_at} (stored {stored:08x}, computed {actual:08x})"
                ),
            ));
        }
        let version = u32_at(bytes, 8);
        if version != FORMAT_VERSION as u32 {
            return Err(corrupt(
                file,
                8,
                format!("format version {version}, this build reads version {FORMAT_VERSION}"),
            ));
        }
        postcard::from_bytes(&bytes[16..crc_at])
            .map_err(|e| corrupt(file, 16, format!("manifest payload does not decode: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_and_name_the_damaged_offset() {
        let mut builder = BlockBuilder::default();
        builder.push_row(TableId(3), PartitionId(1), 7, b"\x01abc");
        builder.push_vacate(TableId(3), PartitionId(1), 2);
        builder.push_clear(TableId(4), PartitionId(0));
        let mut file = encode_file_header(5).to_vec();
        file.extend(builder.seal());
        let path = Path::new("data-5.lcp");
        assert_eq!(decode_file_header(&file, path).unwrap(), 5);
        let mut seen = Vec::new();
        let blocks = decode_blocks(&file, path, |r| {
            seen.push(format!("{r:?}"));
            Ok(())
        })
        .unwrap();
        assert_eq!(blocks, 1);
        assert_eq!(seen.len(), 3);
        for at in FILE_HEADER_BYTES..file.len() {
            let mut bad = file.clone();
            bad[at] ^= 0x10;
            let err = decode_blocks(&bad, path, |_| Ok(())).unwrap_err();
            let CheckpointError::Corrupt { offset, .. } = err else { panic!("{err}") };
            assert_eq!(offset, FILE_HEADER_BYTES as u64, "a flip anywhere in the block is reported at the block");
        }
    }

    #[test]
    fn manifests_refuse_any_flipped_byte() {
        let manifest = Manifest {
            checkpoint_id: 9,
            cluster_id: 77,
            node_id: NodeId(2),
            node_group: NodeGroupId(0),
            applied_index: 100,
            applied_term: 3,
            catalog_version: 12,
            raft_membership: vec![1, 2, 3],
            txn_state: vec![4, 5],
            tables: vec![],
            files: vec![FileEntry { name: "data-0.lcp".into(), stream: 0, bytes: 10, crc32c: 5, blocks: 1 }],
            rows: 0,
            row_bytes: 0,
            received_from: None,
        };
        let bytes = manifest.encode();
        let path = Path::new("MANIFEST");
        assert_eq!(Manifest::decode(&bytes, path).unwrap(), manifest);
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            assert!(Manifest::decode(&bad, path).is_err(), "flip at {at} went unnoticed");
        }
        for len in 0..bytes.len() {
            assert!(Manifest::decode(&bytes[..len], path).is_err(), "truncation to {len} went unnoticed");
        }
    }
}
