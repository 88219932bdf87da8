//! The Raft log reader (`cairn-replication`, `FileLogStore::open`): recovery of a log directory
//! from segment files left on disk, then reading back every entry it reports.
//!
//! The first input byte chooses what the rest is:
//!
//! - even: the raw bytes of one segment file (`0000000000000001.wal`); the identity the store is
//!   opened with is taken from the bytes where a header keeps it, so that a real segment is read
//!   past its header;
//! - odd: **sealed records**: a sequence of `[u32 payload length][u8 kind][payload]`, which the
//!   target writes behind a valid segment header with correct record checksums (a length past
//!   the end of the input is cut to what is left). The kind byte `0xFF` is not written: it starts
//!   the next segment file. With bit 1 of the mode byte set, the bytes after the last whole
//!   record are appended raw, as a torn or damaged tail.
//!
//! The files live in a directory of the process's own ([`directory`]), emptied before each
//! input.

use std::path::PathBuf;
use std::sync::OnceLock;

use cairn_replication::wal::{FileLogStore, LogStore, WalIdentity, WalOptions};

const MAGIC: &[u8; 8] = b"CAIRNWAL";
const FORMAT_VERSION: u32 = 1;
const HEADER_BYTES: usize = 48;
/// The kind byte of the sealed form that starts a new segment instead of being written.
const NEXT_SEGMENT: u8 = 0xFF;
/// Entries read back per call, as the Raft core asks in pages.
const READ_PAGE_BYTES: u64 = 64 << 10;
const IDENTITY: WalIdentity = WalIdentity { cluster_id: 1, node_id: 2, group_id: 3 };

pub fn wal(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (identity, segments) = if mode & 1 == 0 {
        (raw_identity(rest), vec![rest.to_vec()])
    } else {
        (IDENTITY, sealed_segments(rest, mode & 2 != 0))
    };
    let dir = directory();
    if let Ok(items) = std::fs::read_dir(&dir) {
        for item in items.flatten() {
            let _ = std::fs::remove_file(item.path());
        }
    }
    for (i, bytes) in segments.iter().enumerate() {
        let path = dir.join(format!("{:016}.wal", i + 1));
        if let Err(e) = std::fs::write(&path, bytes) {
            panic!("the fuzz target cannot write {}: {e}", path.display());
        }
    }
    let mut options = WalOptions::new(identity);
    options.sync = false;
    options.cache_bytes = 16 << 10;
    options.segment_bytes = 4096;
    let Ok(store) = FileLogStore::open(&dir, options) else {
        return;
    };
    let _ = store.hard_state();
    let _ = store.conf_state();
    let mut next = store.first_index();
    let last = store.last_index();
    while next <= last {
        let Ok(entries) = store.entries(next, last + 1, Some(READ_PAGE_BYTES)) else {
            return;
        };
        // A page holds at least one entry (raft-rs's contract), so the loop advances.
        assert!(!entries.is_empty(), "entries({next}, {}) returned nothing", last + 1);
        for entry in &entries {
            assert_eq!(entry.index, next, "entries out of order");
            assert_eq!(store.term(entry.index).ok(), Some(entry.term), "term() disagrees with entries()");
            next += 1;
        }
    }
}

/// The identity a raw segment's header claims, or the default one for shorter inputs.
fn raw_identity(bytes: &[u8]) -> WalIdentity {
    let u64_at = |at: usize| bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    match (u64_at(12), u64_at(20), u64_at(28)) {
        (Some(cluster_id), Some(node_id), Some(group_id)) => WalIdentity { cluster_id, node_id, group_id },
        _ => IDENTITY,
    }
}

/// A valid segment header.
pub fn segment_header(identity: WalIdentity, sequence: u64) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&identity.cluster_id.to_le_bytes());
    out.extend_from_slice(&identity.node_id.to_le_bytes());
    out.extend_from_slice(&identity.group_id.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(out.len(), HEADER_BYTES);
    out
}

/// Appends one record with a correct checksum.
pub fn put_record(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    let length = (payload.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c_append(crc32c::crc32c(&length), &[kind]), payload);
    out.extend_from_slice(&length);
    out.extend_from_slice(&crc.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
}

fn sealed_segments(mut rest: &[u8], torn_tail: bool) -> Vec<Vec<u8>> {
    let mut segments = vec![segment_header(IDENTITY, 1)];
    while let Some((length, after)) = rest.split_first_chunk::<4>() {
        let Some((&kind, after)) = after.split_first() else {
            break;
        };
        let len = (u32::from_le_bytes(*length) as usize).min(after.len());
        let (payload, after) = after.split_at(len);
        rest = after;
        if kind == NEXT_SEGMENT {
            let sequence = segments.len() as u64 + 1;
            segments.push(segment_header(IDENTITY, sequence));
        } else if let Some(segment) = segments.last_mut() {
            put_record(segment, kind, payload);
        }
    }
    if torn_tail && let Some(segment) = segments.last_mut() {
        segment.extend_from_slice(rest);
    }
    segments
}

/// This process's log directory, created once: under `CAIRN_FUZZ_DIR` when it is set (the CI
/// script points it at a directory it removes afterwards), else under the temporary directory.
pub fn directory() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let parent = std::env::var_os("CAIRN_FUZZ_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        let dir = parent.join(format!("cairn-fuzz-wal-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("the fuzz target cannot create {}: {e}", dir.display());
        }
        dir
    })
    .clone()
}
