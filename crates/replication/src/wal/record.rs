//! The byte format of log segments: the file header and the checksummed records.
//!
//! A segment file is a fixed 48-byte header followed by records:
//!
//! ```text
//! header:  magic "CAIRNWAL" | u32 format version | u64 cluster id | u64 node id | u64 group id
//!          | u64 segment sequence number | u32 crc32c of the preceding 44 bytes
//! record:  u32 payload length | u32 crc32c | u8 kind | payload
//! ```
//!
//! All integers are little-endian. A record's checksum covers its length field, its kind byte and
//! its payload, so that a corrupted length is caught as surely as a corrupted payload. Payloads
//! are a hand-written, versioned layout (the format version lives in the header), not protobuf,
//! so the on-disk format does not move when raft-rs's codec does.

use raft::eraftpb::{ConfState, Entry, EntryType, HardState};

/// Magic bytes that start every segment file.
pub(crate) const MAGIC: &[u8; 8] = b"CAIRNWAL";
/// The one format version this code reads and writes.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Size of the segment header in bytes.
pub(crate) const HEADER_BYTES: usize = 48;
/// Size of a record header (length, checksum, kind) in bytes.
pub(crate) const RECORD_HEADER_BYTES: usize = 9;
/// The largest record payload accepted, written or read. A larger length field on disk is
/// treated as damage, which bounds the memory a corrupted length can make recovery allocate.
pub(crate) const MAX_RECORD_PAYLOAD_BYTES: usize = 256 << 20;

/// Which cluster, node and Raft group a log directory belongs to.
///
/// Every segment header carries it, and opening a directory whose segments carry another
/// identity fails, so that a data directory copied from another node or cluster is never
/// mistaken for this node's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WalIdentity {
    /// The cluster's id (from the cluster configuration).
    pub cluster_id: u64,
    /// This node's id.
    pub node_id: u64,
    /// The Raft group's id (a node group number, or the management group).
    pub group_id: u64,
}

/// The decoded fixed header of a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub(crate) version: u32,
    pub(crate) identity: WalIdentity,
    pub(crate) sequence: u64,
}

/// Why a segment header could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderError {
    TooShort,
    BadMagic,
    BadChecksum,
}

pub(crate) fn encode_header(identity: WalIdentity, sequence: u64) -> [u8; HEADER_BYTES] {
    let mut out = [0u8; HEADER_BYTES];
    out[0..8].copy_from_slice(MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[12..20].copy_from_slice(&identity.cluster_id.to_le_bytes());
    out[20..28].copy_from_slice(&identity.node_id.to_le_bytes());
    out[28..36].copy_from_slice(&identity.group_id.to_le_bytes());
    out[36..44].copy_from_slice(&sequence.to_le_bytes());
    let crc = crc32c::crc32c(&out[0..44]);
    out[44..48].copy_from_slice(&crc.to_le_bytes());
    out
}

pub(crate) fn decode_header(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
    if bytes.len() < HEADER_BYTES {
        return Err(HeaderError::TooShort);
    }
    if &bytes[0..8] != MAGIC {
        return Err(HeaderError::BadMagic);
    }
    let stored_crc = u32_at(bytes, 44);
    if crc32c::crc32c(&bytes[0..44]) != stored_crc {
        return Err(HeaderError::BadChecksum);
    }
    Ok(SegmentHeader {
        version: u32_at(bytes, 8),
        identity: WalIdentity {
            cluster_id: u64_at(bytes, 12),
            node_id: u64_at(bytes, 20),
            group_id: u64_at(bytes, 28),
        },
        sequence: u64_at(bytes, 36),
    })
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(raw)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(raw)
}

/// Record kinds. The numbers are part of the on-disk format: never reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum RecordKind {
    SegmentStart = 1,
    Entry = 2,
    HardState = 3,
    ConfState = 4,
    Truncate = 5,
    Compact = 6,
    Snapshot = 7,
}

impl RecordKind {
    fn from_byte(byte: u8) -> Option<RecordKind> {
        Some(match byte {
            1 => RecordKind::SegmentStart,
            2 => RecordKind::Entry,
            3 => RecordKind::HardState,
            4 => RecordKind::ConfState,
            5 => RecordKind::Truncate,
            6 => RecordKind::Compact,
            7 => RecordKind::Snapshot,
            _ => return None,
        })
    }
}

/// The log state restated at the start of every segment, so that a segment never depends on
/// state records kept in older segments (which compaction deletes).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SegmentStart {
    /// Index and term of the last compacted (or snapshotted) entry.
    pub(crate) base_index: u64,
    pub(crate) base_term: u64,
    /// Index and term of the last entry in the log when the segment was created; the first
    /// entry record of this segment (if any, and if not preceded by a truncation) is
    /// `last_index + 1`.
    pub(crate) last_index: u64,
    pub(crate) last_term: u64,
    pub(crate) hard_state: HardState,
    pub(crate) conf_state: ConfState,
    pub(crate) conf_index: u64,
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Record {
    SegmentStart(SegmentStart),
    Entry(Entry),
    HardState(HardState),
    /// The membership and the index of the entry that produced it (0 for the bootstrap
    /// membership, the snapshot index for a snapshot's membership).
    ConfState {
        conf_state: ConfState,
        index: u64,
    },
    /// Entries with index >= `from` are discarded (a new leader overwrote them).
    Truncate {
        from: u64,
    },
    /// Entries with index <= `index` are discarded; `term` is the term of entry `index`.
    Compact {
        index: u64,
        term: u64,
    },
    /// Every entry is discarded; the log continues after (`index`, `term`).
    Snapshot {
        index: u64,
        term: u64,
    },
}

/// Appends one encoded record to `out` and returns the number of bytes appended.
pub(crate) fn encode_record(out: &mut Vec<u8>, record: &Record) -> usize {
    if let Record::Entry(entry) = record {
        return encode_entry(out, entry);
    }
    let start = begin_record(out);
    match record {
        Record::SegmentStart(start_state) => {
            out.push(RecordKind::SegmentStart as u8);
            put_u64(out, start_state.base_index);
            put_u64(out, start_state.base_term);
            put_u64(out, start_state.last_index);
            put_u64(out, start_state.last_term);
            put_hard_state(out, &start_state.hard_state);
            put_u64(out, start_state.conf_index);
            put_conf_state(out, &start_state.conf_state);
        }
        Record::Entry(_) => {}
        Record::HardState(hard_state) => {
            out.push(RecordKind::HardState as u8);
            put_hard_state(out, hard_state);
        }
        Record::ConfState { conf_state, index } => {
            out.push(RecordKind::ConfState as u8);
            put_u64(out, *index);
            put_conf_state(out, conf_state);
        }
        Record::Truncate { from } => {
            out.push(RecordKind::Truncate as u8);
            put_u64(out, *from);
        }
        Record::Compact { index, term } => {
            out.push(RecordKind::Compact as u8);
            put_u64(out, *index);
            put_u64(out, *term);
        }
        Record::Snapshot { index, term } => {
            out.push(RecordKind::Snapshot as u8);
            put_u64(out, *index);
            put_u64(out, *term);
        }
    }
    finish_record(out, start)
}

/// Appends one entry record to `out` (without cloning the entry) and returns its size.
pub(crate) fn encode_entry(out: &mut Vec<u8>, entry: &Entry) -> usize {
    let start = begin_record(out);
    out.push(RecordKind::Entry as u8);
    put_u64(out, entry.index);
    put_u64(out, entry.term);
    out.push(entry_type_byte(entry.get_entry_type()));
    put_u32(out, entry.context.len() as u32);
    out.extend_from_slice(&entry.context);
    out.extend_from_slice(&entry.data);
    finish_record(out, start)
}

/// Reserves the length and checksum fields; returns where the record starts.
fn begin_record(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0u8; 8]);
    start
}

/// Fills in the length and checksum of the record that starts at `start`.
fn finish_record(out: &mut [u8], start: usize) -> usize {
    let payload_len = (out.len() - start - RECORD_HEADER_BYTES) as u32;
    out[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
    let crc = record_crc(&out[start..start + 4], &out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.len() - start
}

/// The number of payload bytes an entry record needs, used to refuse oversized entries before
/// anything is written.
pub(crate) fn entry_payload_len(entry: &Entry) -> usize {
    8 + 8 + 1 + 4 + entry.context.len() + entry.data.len()
}

fn record_crc(length_field: &[u8], kind_and_payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(length_field), kind_and_payload)
}

/// The result of looking at the bytes at one offset of a segment.
#[derive(Debug)]
pub(crate) enum Scan<'a> {
    /// A whole record whose checksum matches; `len` is its total size including the header.
    Record {
        kind_byte: u8,
        payload: &'a [u8],
        len: usize,
    },
    /// The bytes end before the record does (header or payload cut short).
    Short,
    /// The length field is larger than any record this code writes.
    BadLength { payload_len: usize },
    /// The record is complete but its checksum does not match.
    BadChecksum { len: usize },
}

/// Looks at the record starting at `bytes[0]`.
pub(crate) fn scan_record(bytes: &[u8]) -> Scan<'_> {
    if bytes.len() < RECORD_HEADER_BYTES {
        return Scan::Short;
    }
    let payload_len = u32_at(bytes, 0) as usize;
    if payload_len > MAX_RECORD_PAYLOAD_BYTES {
        return Scan::BadLength { payload_len };
    }
    let len = RECORD_HEADER_BYTES + payload_len;
    if bytes.len() < len {
        return Scan::Short;
    }
    let stored_crc = u32_at(bytes, 4);
    if record_crc(&bytes[0..4], &bytes[8..len]) != stored_crc {
        return Scan::BadChecksum { len };
    }
    Scan::Record {
        kind_byte: bytes[8],
        payload: &bytes[9..len],
        len,
    }
}

/// Decodes a record whose checksum already matched. An error here means the bytes are what
/// some writer wrote but not what this version understands: a bug or a format mismatch.
pub(crate) fn decode_record(kind_byte: u8, payload: &[u8]) -> Result<Record, String> {
    let kind = RecordKind::from_byte(kind_byte)
        .ok_or_else(|| format!("unknown record kind {kind_byte}"))?;
    let mut reader = Reader {
        bytes: payload,
        at: 0,
    };
    let record = match kind {
        RecordKind::SegmentStart => {
            let base_index = reader.u64()?;
            let base_term = reader.u64()?;
            let last_index = reader.u64()?;
            let last_term = reader.u64()?;
            let hard_state = reader.hard_state()?;
            let conf_index = reader.u64()?;
            let conf_state = reader.conf_state()?;
            Record::SegmentStart(SegmentStart {
                base_index,
                base_term,
                last_index,
                last_term,
                hard_state,
                conf_state,
                conf_index,
            })
        }
        RecordKind::Entry => {
            let mut entry = Entry::default();
            entry.index = reader.u64()?;
            entry.term = reader.u64()?;
            let type_byte = reader.u8()?;
            entry.set_entry_type(entry_type_from_byte(type_byte)?);
            let context_len = reader.u32()? as usize;
            entry.context = reader.take(context_len)?.to_vec().into();
            entry.data = reader.rest().to_vec().into();
            Record::Entry(entry)
        }
        RecordKind::HardState => Record::HardState(reader.hard_state()?),
        RecordKind::ConfState => {
            let index = reader.u64()?;
            let conf_state = reader.conf_state()?;
            Record::ConfState { conf_state, index }
        }
        RecordKind::Truncate => Record::Truncate {
            from: reader.u64()?,
        },
        RecordKind::Compact => Record::Compact {
            index: reader.u64()?,
            term: reader.u64()?,
        },
        RecordKind::Snapshot => Record::Snapshot {
            index: reader.u64()?,
            term: reader.u64()?,
        },
    };
    if kind != RecordKind::Entry && !reader.rest().is_empty() {
        return Err(format!(
            "{} trailing bytes after a {kind:?} record",
            reader.rest().len()
        ));
    }
    Ok(record)
}

fn entry_type_byte(entry_type: EntryType) -> u8 {
    match entry_type {
        EntryType::EntryNormal => 0,
        EntryType::EntryConfChange => 1,
        EntryType::EntryConfChangeV2 => 2,
    }
}

fn entry_type_from_byte(byte: u8) -> Result<EntryType, String> {
    match byte {
        0 => Ok(EntryType::EntryNormal),
        1 => Ok(EntryType::EntryConfChange),
        2 => Ok(EntryType::EntryConfChangeV2),
        other => Err(format!("unknown entry type {other}")),
    }
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_hard_state(out: &mut Vec<u8>, hard_state: &HardState) {
    put_u64(out, hard_state.term);
    put_u64(out, hard_state.vote);
    put_u64(out, hard_state.commit);
}

fn put_ids(out: &mut Vec<u8>, ids: &[u64]) {
    put_u32(out, ids.len() as u32);
    for id in ids {
        put_u64(out, *id);
    }
}

fn put_conf_state(out: &mut Vec<u8>, conf_state: &ConfState) {
    put_ids(out, &conf_state.voters);
    put_ids(out, &conf_state.learners);
    put_ids(out, &conf_state.voters_outgoing);
    put_ids(out, &conf_state.learners_next);
    out.push(u8::from(conf_state.auto_leave));
}

/// A bounds-checked cursor over a payload; every read past the end is an error, never a panic.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| format!("payload too short: need {len} bytes at offset {}", self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn rest(&mut self) -> &'a [u8] {
        let slice = &self.bytes[self.at..];
        self.at = self.bytes.len();
        slice
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32_at(self.take(4)?, 0))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64_at(self.take(8)?, 0))
    }

    fn hard_state(&mut self) -> Result<HardState, String> {
        let mut hard_state = HardState::default();
        hard_state.term = self.u64()?;
        hard_state.vote = self.u64()?;
        hard_state.commit = self.u64()?;
        Ok(hard_state)
    }

    fn ids(&mut self) -> Result<Vec<u64>, String> {
        let count = self.u32()? as usize;
        // The count is checked against the bytes that are left before allocating, so that a
        // damaged count cannot make us reserve gigabytes.
        if count > (self.bytes.len() - self.at) / 8 {
            return Err(format!(
                "id list of {count} entries does not fit the payload"
            ));
        }
        (0..count).map(|_| self.u64()).collect()
    }

    fn conf_state(&mut self) -> Result<ConfState, String> {
        let mut conf_state = ConfState::default();
        conf_state.voters = self.ids()?;
        conf_state.learners = self.ids()?;
        conf_state.voters_outgoing = self.ids()?;
        conf_state.learners_next = self.ids()?;
        conf_state.auto_leave = match self.u8()? {
            0 => false,
            1 => true,
            other => return Err(format!("bad auto_leave flag {other}")),
        };
        Ok(conf_state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        let mut entry = Entry::default();
        entry.index = index;
        entry.term = term;
        entry.data = data.to_vec().into();
        entry.context = b"ctx".to_vec().into();
        entry
    }

    #[test]
    fn records_round_trip() {
        let mut conf_state = ConfState::default();
        conf_state.voters = vec![1, 2, 3];
        conf_state.learners = vec![4];
        conf_state.auto_leave = true;
        let mut hard_state = HardState::default();
        hard_state.term = 7;
        hard_state.vote = 2;
        hard_state.commit = 11;
        let mut conf_entry = entry(5, 2, b"");
        conf_entry.set_entry_type(EntryType::EntryConfChangeV2);
        let records = vec![
            Record::SegmentStart(SegmentStart {
                base_index: 3,
                base_term: 1,
                last_index: 9,
                last_term: 2,
                hard_state: hard_state.clone(),
                conf_state: conf_state.clone(),
                conf_index: 4,
            }),
            Record::Entry(entry(10, 2, b"hello")),
            Record::Entry(conf_entry),
            Record::HardState(hard_state),
            Record::ConfState {
                conf_state,
                index: 5,
            },
            Record::Truncate { from: 8 },
            Record::Compact { index: 6, term: 2 },
            Record::Snapshot {
                index: 100,
                term: 9,
            },
        ];
        let mut buf = Vec::new();
        for record in &records {
            encode_record(&mut buf, record);
        }
        let mut at = 0;
        for record in &records {
            match scan_record(&buf[at..]) {
                Scan::Record {
                    kind_byte,
                    payload,
                    len,
                } => {
                    assert_eq!(&decode_record(kind_byte, payload).unwrap(), record);
                    at += len;
                }
                other => panic!("unexpected scan result {other:?}"),
            }
        }
        assert_eq!(at, buf.len());
    }

    #[test]
    fn every_truncation_is_short_and_every_flip_is_caught() {
        let mut buf = Vec::new();
        encode_record(&mut buf, &Record::Entry(entry(1, 1, b"payload")));
        for cut in 0..buf.len() {
            assert!(
                matches!(scan_record(&buf[..cut]), Scan::Short),
                "cut at {cut}"
            );
        }
        for at in 0..buf.len() {
            let mut damaged = buf.clone();
            damaged[at] ^= 0x40;
            assert!(
                !matches!(scan_record(&damaged), Scan::Record { .. }),
                "flip at {at} went unnoticed"
            );
        }
    }

    #[test]
    fn header_round_trip_and_damage() {
        let identity = WalIdentity {
            cluster_id: 1,
            node_id: 2,
            group_id: 3,
        };
        let header = encode_header(identity, 42);
        let decoded = decode_header(&header).unwrap();
        assert_eq!(decoded.identity, identity);
        assert_eq!(decoded.sequence, 42);
        assert_eq!(decoded.version, FORMAT_VERSION);
        assert_eq!(decode_header(&header[..40]), Err(HeaderError::TooShort));
        let mut bad = header;
        bad[0] = b'X';
        assert_eq!(decode_header(&bad), Err(HeaderError::BadMagic));
        let mut bad = header;
        bad[30] ^= 1;
        assert_eq!(decode_header(&bad), Err(HeaderError::BadChecksum));
    }

    #[test]
    fn garbage_payloads_are_errors_not_panics() {
        for kind in 0..=9u8 {
            for len in 0..40usize {
                let payload: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(37)).collect();
                let _ = decode_record(kind, &payload);
                let zeros = vec![0xffu8; len];
                let _ = decode_record(kind, &zeros);
            }
        }
    }
}
