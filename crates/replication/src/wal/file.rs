//! The on-disk Raft log: segment files of checksummed records in one directory per group.
//!
//! Layout of a group directory (`<data-dir>/raft/<group>/`, see [`group_dir`]):
//!
//! ```text
//! LOCK                     held (flock) while a store has the directory open
//! 0000000000000001.wal     segments, numbered consecutively; the last one is appended to
//! 0000000000000002.wal
//! ```
//!
//! Each segment starts with a header (magic, format version, cluster/node/group identity,
//! sequence number) and a `SegmentStart` record that restates the log state (base, last entry,
//! hard state, membership). Then come records: entries, hard states, memberships, and marks for
//! truncation (a new leader overwrote a suffix), compaction and snapshots. A batch is one
//! `write` and at most one `fdatasync`; a segment is rolled at the start of a batch once it
//! has reached the size limit, so a batch never spans two segments.
//!
//! New segments are written as `*.wal.tmp`, synced, renamed and the directory synced, so a
//! segment with its final name always has a whole header and start record.
//!
//! Recovery reads every segment and checks every checksum:
//!
//! - The tail of the **last** segment may be torn by a crash in the middle of a write: the
//!   file ends inside a record, or the rest of the file is zeros (the size grew before the
//!   data reached the disk), or the very last record is complete but fails its checksum
//!   (pages of one write reach the disk in any order). That tail was never acknowledged as
//!   synced; it is cut off and a warning is logged.
//! - Anything else (a bad checksum with valid-looking data after it, damage in an older
//!   segment, a missing segment, records that do not continue each other) is corruption and
//!   opening fails with [`LogError::Corrupt`] naming the file and offset. Nothing is skipped.
//!
//! Compaction writes a durable mark, then deletes whole segments whose entries all lie at or
//! below the compaction index (never the last segment). The segments that remain are
//! self-sufficient because each restates the state at its start.
//!
//! Reads: an index of `(term, segment, offset)` per entry stays in memory, and the newest
//! entries (up to `cache_bytes`) are kept decoded; older entries are read back from the file
//! and their checksums checked again.
//!
//! Known limits: a segment lost from the *end* of the directory cannot be told from a log
//! that ended earlier (there is no separate manifest); a bit flip inside the last record of
//! the last segment is treated as a torn write and that record is dropped (with a warning),
//! because the two look the same on disk.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use raft::eraftpb::{Entry, HardState};

use super::record::{
    self, FORMAT_VERSION, HEADER_BYTES, HeaderError, Record, SegmentStart, WalIdentity,
};
use super::{
    LogBatch, LogError, LogStore, LogView, MAX_ENTRY_PAYLOAD_BYTES, StoredConfState, check_batch,
    push_limited,
};

/// Where the log of Raft group `group_id` lives under a node's data directory.
pub fn group_dir(data_dir: &Path, group_id: u64) -> PathBuf {
    data_dir.join("raft").join(group_id.to_string())
}

/// Settings of a [`FileLogStore`].
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Whose log this is; every segment header must match.
    pub identity: WalIdentity,
    /// A segment is closed and a new one started once it reaches this size (64 MiB default).
    pub segment_bytes: u64,
    /// `fdatasync` every batch that asks for it (the default, `DiskSync` per Raft `Ready`).
    /// With `false`, data is written but only made durable by
    /// [`LogStore::flush_and_sync`], which the daemon calls on a timer.
    pub sync: bool,
    /// How many bytes of the newest entries to keep decoded in memory (4 MiB default). The
    /// cache serves what Raft reads back soon after a write: entries to send to followers and
    /// committed entries to apply. A follower that lags further is sent entries read back
    /// from the segment files. Every replica pays for it in resident memory until the next
    /// local checkpoint compacts the log, so it is kept small (docs/performance.md).
    pub cache_bytes: usize,
}

impl WalOptions {
    /// Default settings for `identity`.
    pub fn new(identity: WalIdentity) -> WalOptions {
        WalOptions {
            identity,
            segment_bytes: 64 << 20,
            sync: true,
            cache_bytes: 4 << 20,
        }
    }
}

/// What recovery learns across segments.
#[derive(Debug, Default)]
struct RecoveryState {
    /// Set when the first segment's start record says older entries exist (their segments
    /// were deleted by compaction): the file and the last such entry. A compaction or snapshot
    /// mark must confirm it, or segments went missing.
    inferred_base: Option<(PathBuf, u64)>,
    /// The highest compaction index recorded by a mark or a later segment's start record.
    confirmed_base: u64,
    saw_snapshot: bool,
}

/// Where one entry is stored.
#[derive(Debug, Clone, Copy)]
struct Slot {
    term: u64,
    sequence: u64,
    offset: u64,
    len: u32,
}

#[derive(Debug)]
struct Segment {
    sequence: u64,
    path: PathBuf,
    file: File,
    size: u64,
    /// The highest entry index ever written to this segment (0 if none), which decides when
    /// compaction may delete it.
    max_entry_index: u64,
}

/// The on-disk Raft log of one group. See the module documentation.
#[derive(Debug)]
pub struct FileLogStore {
    dir: PathBuf,
    options: WalOptions,
    /// Held for the store's lifetime; dropping the file releases the lock.
    _lock: File,
    /// Consecutive sequence numbers; the last one is written to.
    segments: VecDeque<Segment>,
    base_index: u64,
    base_term: u64,
    /// `slots[i]` describes entry `base_index + 1 + i`.
    slots: VecDeque<Slot>,
    /// The newest entries, decoded: a suffix of the log.
    cache: VecDeque<Entry>,
    cache_used: usize,
    hard_state: HardState,
    conf: StoredConfState,
    /// Bytes written to the last segment that have not been synced yet.
    unsynced: bool,
    /// Set by the first failed write, sync or read; the store then refuses writes.
    failure: RefCell<Option<String>>,
}

/// Wraps an I/O error with what was being done. The context is a closure so that the hot paths
/// (every append and sync) format a file name only when the call fails.
fn io_error(context: impl FnOnce() -> String) -> impl FnOnce(io::Error) -> LogError {
    move |source| LogError::Io { context: context(), source }
}

fn segment_name(sequence: u64) -> String {
    format!("{sequence:016}.wal")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 16 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(io_error(|| format!("syncing directory {}", dir.display())))
}

/// What a decoded entry costs the heap: the entry itself and its two buffers, each with the
/// allocator's header (16 bytes in glibc's malloc). Counting only the payload made a cache of
/// small entries (one row each, about 100 bytes) take half again its budget.
fn cached_size(entry: &Entry) -> usize {
    const ALLOCATION_OVERHEAD: usize = 16;
    let buffer = |len: usize| if len == 0 { 0 } else { len + ALLOCATION_OVERHEAD };
    std::mem::size_of::<Entry>() + buffer(entry.data.len()) + buffer(entry.context.len())
}

impl FileLogStore {
    /// Opens (creating if needed) the log in `dir` and recovers it. See the module
    /// documentation for what recovery accepts and refuses.
    pub fn open(dir: &Path, options: WalOptions) -> Result<FileLogStore, LogError> {
        if options.segment_bytes < 4096 {
            return Err(LogError::invalid("segment_bytes must be at least 4096"));
        }
        let existed = dir.exists();
        fs::create_dir_all(dir).map_err(io_error(|| format!("creating {}", dir.display())))?;
        if !existed && let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(io_error(|| format!(
                "opening the lock file in {}",
                dir.display()
            )))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(LogError::Locked {
                    dir: dir.to_path_buf(),
                });
            }
            Err(fs::TryLockError::Error(source)) => {
                return Err(LogError::Io {
                    context: format!("locking {}", dir.display()),
                    source,
                });
            }
        }

        let mut sequences = Vec::new();
        let listing = fs::read_dir(dir).map_err(io_error(|| format!("listing {}", dir.display())))?;
        for item in listing {
            let item = item.map_err(io_error(|| format!("listing {}", dir.display())))?;
            let name = item.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".wal.tmp") {
                // A segment whose creation a crash interrupted; it was never renamed into
                // place, so nothing in it was ever part of the log.
                tracing::warn!(file = %item.path().display(), "removing unfinished segment");
                fs::remove_file(item.path())
                    .map_err(io_error(|| format!("removing {}", item.path().display())))?;
            } else if let Some(sequence) = parse_segment_name(name) {
                sequences.push(sequence);
            }
        }
        sequences.sort_unstable();

        let mut store = FileLogStore {
            dir: dir.to_path_buf(),
            options,
            _lock: lock,
            segments: VecDeque::new(),
            base_index: 0,
            base_term: 0,
            slots: VecDeque::new(),
            cache: VecDeque::new(),
            cache_used: 0,
            hard_state: HardState::default(),
            conf: StoredConfState::default(),
            unsynced: false,
            failure: RefCell::new(None),
        };
        if sequences.is_empty() {
            store.create_segment(1)?;
            sync_dir(&store.dir)?;
        } else {
            store.recover(&sequences)?;
        }
        Ok(store)
    }

    /// The directory this store uses.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The number of segment files currently in use.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    fn corrupt(&self, path: &Path, offset: u64, reason: impl Into<String>) -> LogError {
        LogError::Corrupt {
            file: path.to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }

    fn last_index_inner(&self) -> u64 {
        self.base_index + self.slots.len() as u64
    }

    fn term_inner(&self, index: u64) -> Result<u64, LogError> {
        if index == self.base_index {
            return Ok(self.base_term);
        }
        if index < self.base_index {
            return Err(LogError::Compacted {
                index,
                first_index: self.base_index + 1,
            });
        }
        let last_index = self.last_index_inner();
        if index > last_index {
            return Err(LogError::Unavailable { index, last_index });
        }
        Ok(self.slots[(index - self.base_index - 1) as usize].term)
    }

    fn check_failed(&self) -> Result<(), LogError> {
        match &*self.failure.borrow() {
            Some(reason) => Err(LogError::Failed {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Records the first failure and passes the error on.
    fn fail(&self, error: LogError) -> LogError {
        let mut failure = self.failure.borrow_mut();
        if failure.is_none() {
            *failure = Some(error.to_string());
        }
        error
    }

    // ----- In-memory state changes, shared by recovery and the write path. -----

    fn push_entry(&mut self, entry: Entry, slot: Slot) {
        self.slots.push_back(slot);
        self.cache_used += cached_size(&entry);
        self.cache.push_back(entry);
        while self.cache_used > self.options.cache_bytes {
            match self.cache.pop_front() {
                Some(evicted) => self.cache_used -= cached_size(&evicted),
                None => break,
            }
        }
    }

    fn apply_truncate(&mut self, from: u64) {
        let keep = (from - self.base_index - 1) as usize;
        self.slots.truncate(keep);
        while self.cache.back().is_some_and(|entry| entry.index >= from) {
            if let Some(removed) = self.cache.pop_back() {
                self.cache_used -= cached_size(&removed);
            }
        }
    }

    fn apply_compact(&mut self, index: u64, term: u64) {
        let drop = (index - self.base_index) as usize;
        self.slots.drain(..drop.min(self.slots.len()));
        self.base_index = index;
        self.base_term = term;
        while self.cache.front().is_some_and(|entry| entry.index <= index) {
            if let Some(removed) = self.cache.pop_front() {
                self.cache_used -= cached_size(&removed);
            }
        }
        // Raft restarts with its commit index at least at the base: keep the stored hard
        // state consistent with that even if the latest commit index was never written.
        self.hard_state.commit = self.hard_state.commit.max(index);
    }

    fn apply_snapshot(&mut self, index: u64, term: u64) {
        self.slots.clear();
        self.cache.clear();
        self.cache_used = 0;
        self.base_index = index;
        self.base_term = term;
        self.hard_state.commit = self.hard_state.commit.max(index);
        self.hard_state.term = self.hard_state.term.max(term);
    }

    fn start_state(&self) -> SegmentStart {
        let last_index = self.last_index_inner();
        SegmentStart {
            base_index: self.base_index,
            base_term: self.base_term,
            last_index,
            last_term: self.term_inner(last_index).unwrap_or(0),
            hard_state: self.hard_state.clone(),
            conf_state: self.conf.conf_state.clone(),
            conf_index: self.conf.index,
        }
    }

    // ----- Segment files. -----

    /// Creates segment `sequence` holding the header and the current state, durably, and makes
    /// it the segment written to. The caller syncs the directory.
    fn create_segment(&mut self, sequence: u64) -> Result<(), LogError> {
        let final_path = self.dir.join(segment_name(sequence));
        let temp_path = self.dir.join(format!("{}.tmp", segment_name(sequence)));
        let mut bytes = record::encode_header(self.options.identity, sequence).to_vec();
        record::encode_record(&mut bytes, &Record::SegmentStart(self.start_state()));
        let result = (|| {
            let file = OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&temp_path)
                .map_err(io_error(|| format!("creating {}", temp_path.display())))?;
            file.write_all_at(&bytes, 0)
                .and_then(|()| file.sync_data())
                .map_err(io_error(|| format!("writing {}", temp_path.display())))?;
            fs::rename(&temp_path, &final_path)
                .map_err(io_error(|| format!("renaming {}", temp_path.display())))?;
            Ok(file)
        })();
        let file = result.map_err(|error| self.fail(error))?;
        self.segments.push_back(Segment {
            sequence,
            path: final_path,
            file,
            size: bytes.len() as u64,
            max_entry_index: 0,
        });
        self.unsynced = false;
        Ok(())
    }

    fn active(&self) -> Result<&Segment, LogError> {
        self.segments.back().ok_or_else(|| LogError::Failed {
            reason: "the log has no segment".to_string(),
        })
    }

    fn roll(&mut self) -> Result<(), LogError> {
        // The old segment must be durable before a new one exists, or a crash could keep the
        // new segment and lose the old one's tail: a hole recovery would call corruption.
        self.sync_active()?;
        let next = self.active()?.sequence + 1;
        self.create_segment(next)?;
        sync_dir(&self.dir).map_err(|error| self.fail(error))
    }

    fn sync_active(&mut self) -> Result<(), LogError> {
        if !self.unsynced {
            return Ok(());
        }
        let segment = self.active()?;
        segment
            .file
            .sync_data()
            .map_err(io_error(|| format!("syncing {}", segment.path.display())))
            .map_err(|error| self.fail(error))?;
        self.unsynced = false;
        Ok(())
    }

    /// Appends `bytes` to the last segment, syncing if asked; returns the offset written at.
    fn append_bytes(&mut self, bytes: &[u8], sync: bool) -> Result<u64, LogError> {
        let segment = self.active()?;
        let offset = segment.size;
        let written = segment
            .file
            .write_all_at(bytes, offset)
            .and_then(|()| {
                if sync {
                    segment.file.sync_data()
                } else {
                    Ok(())
                }
            })
            .map_err(io_error(|| format!("appending to {}", segment.path.display())));
        written.map_err(|error| self.fail(error))?;
        if let Some(segment) = self.segments.back_mut() {
            segment.size += bytes.len() as u64;
        }
        self.unsynced = !sync;
        Ok(offset)
    }

    /// Deletes old segments from the front while they hold no entry above `index`. The last
    /// segment always stays.
    fn delete_segments_up_to(&mut self, index: u64) -> Result<(), LogError> {
        let mut removed = false;
        while self.segments.len() > 1
            && self
                .segments
                .front()
                .is_some_and(|s| s.max_entry_index <= index)
        {
            if let Some(segment) = self.segments.pop_front() {
                fs::remove_file(&segment.path)
                    .map_err(io_error(|| format!("removing {}", segment.path.display())))
                    .map_err(|error| self.fail(error))?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&self.dir).map_err(|error| self.fail(error))?;
        }
        Ok(())
    }

    fn segment(&self, sequence: u64) -> Option<&Segment> {
        let first = self.segments.front()?.sequence;
        self.segments
            .get(usize::try_from(sequence.checked_sub(first)?).ok()?)
    }

    /// Reads entries `low..high` (all below the cache) back from the segment files.
    fn read_from_disk(
        &self,
        low: u64,
        high: u64,
        out: &mut Vec<Entry>,
        used: &mut u64,
        max_bytes: Option<u64>,
    ) -> Result<bool, LogError> {
        let mut index = low;
        while index < high {
            // Read a run of entries that sit back to back in one segment with one call.
            let first = self.slots[(index - self.base_index - 1) as usize];
            let mut run_end = index + 1;
            let mut run_bytes = u64::from(first.len);
            let mut previous = first;
            while run_end < high && run_bytes < (1 << 20) {
                let next = self.slots[(run_end - self.base_index - 1) as usize];
                if next.sequence != previous.sequence
                    || next.offset != previous.offset + u64::from(previous.len)
                {
                    break;
                }
                run_bytes += u64::from(next.len);
                previous = next;
                run_end += 1;
            }
            let segment = self
                .segment(first.sequence)
                .ok_or_else(|| LogError::Corrupt {
                    file: self.dir.join(segment_name(first.sequence)),
                    offset: first.offset,
                    reason: format!("segment for entry {index} is missing"),
                })?;
            let mut buffer = vec![0u8; run_bytes as usize];
            segment
                .file
                .read_exact_at(&mut buffer, first.offset)
                .map_err(io_error(|| format!("reading {}", segment.path.display())))?;
            let mut at = 0usize;
            for entry_index in index..run_end {
                let slot = self.slots[(entry_index - self.base_index - 1) as usize];
                let offset = slot.offset;
                let entry = match record::scan_record(&buffer[at..]) {
                    record::Scan::Record {
                        kind_byte,
                        payload,
                        len,
                    } if len == slot.len as usize => {
                        at += len;
                        match record::decode_record(kind_byte, payload) {
                            Ok(Record::Entry(entry))
                                if entry.index == entry_index && entry.term == slot.term =>
                            {
                                entry
                            }
                            Ok(_) => {
                                return Err(self.corrupt(
                                    &segment.path,
                                    offset,
                                    format!("record is not entry {entry_index}"),
                                ));
                            }
                            Err(reason) => return Err(self.corrupt(&segment.path, offset, reason)),
                        }
                    }
                    other => {
                        return Err(self.corrupt(
                            &segment.path,
                            offset,
                            format!("entry {entry_index} no longer reads back: {other:?}"),
                        ));
                    }
                };
                if !push_limited(out, used, entry, max_bytes) {
                    return Ok(false);
                }
            }
            index = run_end;
        }
        Ok(true)
    }

    // ----- Recovery. -----

    fn recover(&mut self, sequences: &[u64]) -> Result<(), LogError> {
        for pair in sequences.windows(2) {
            if pair[1] != pair[0] + 1 {
                return Err(self.corrupt(
                    &self.dir.join(segment_name(pair[1])),
                    0,
                    format!("segment {} is missing", pair[0] + 1),
                ));
            }
        }
        let mut recovery = RecoveryState::default();
        for (position, &sequence) in sequences.iter().enumerate() {
            let is_first = position == 0;
            let is_last = position + 1 == sequences.len();
            let path = self.dir.join(segment_name(sequence));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io_error(|| format!("opening {}", path.display())))?;
            let bytes = fs::read(&path).map_err(io_error(|| format!("reading {}", path.display())))?;
            let header = record::decode_header(&bytes).map_err(|error| {
                let reason = match error {
                    HeaderError::TooShort => "segment header is cut short",
                    HeaderError::BadMagic => "not a Cairn Raft log segment (bad magic)",
                    HeaderError::BadChecksum => "segment header checksum mismatch",
                };
                self.corrupt(&path, 0, reason)
            })?;
            if header.version != FORMAT_VERSION {
                return Err(LogError::UnsupportedVersion {
                    file: path,
                    version: header.version,
                    supported: FORMAT_VERSION,
                });
            }
            if header.identity != self.options.identity {
                return Err(LogError::Foreign {
                    file: path,
                    expected: self.options.identity,
                    found: header.identity,
                });
            }
            if header.sequence != sequence {
                return Err(self.corrupt(
                    &path,
                    0,
                    format!(
                        "header says segment {} but the file name says {sequence}",
                        header.sequence
                    ),
                ));
            }
            self.segments.push_back(Segment {
                sequence,
                path: path.clone(),
                file,
                size: bytes.len() as u64,
                max_entry_index: 0,
            });

            let mut offset = HEADER_BYTES;
            while offset < bytes.len() {
                let (kind_byte, payload, len) = match record::scan_record(&bytes[offset..]) {
                    record::Scan::Record {
                        kind_byte,
                        payload,
                        len,
                    } => (kind_byte, payload, len),
                    damaged => {
                        let rest = &bytes[offset..];
                        let torn = match damaged {
                            record::Scan::Short => true,
                            record::Scan::BadChecksum { len } => {
                                offset + len == bytes.len() || rest.iter().all(|byte| *byte == 0)
                            }
                            _ => rest.iter().all(|byte| *byte == 0),
                        };
                        if is_last && torn && offset > HEADER_BYTES {
                            self.cut_torn_tail(offset as u64, bytes.len() as u64)?;
                            break;
                        }
                        let reason = match damaged {
                            record::Scan::Short => "record cut short".to_string(),
                            record::Scan::BadChecksum { .. } => {
                                "record checksum mismatch".to_string()
                            }
                            record::Scan::BadLength { payload_len } => {
                                format!("record length {payload_len} is impossible")
                            }
                            record::Scan::Record { .. } => String::new(),
                        };
                        let reason = if is_last {
                            format!("{reason}, and not at the tail of the log")
                        } else {
                            format!("{reason} in a segment that is not the last")
                        };
                        return Err(self.corrupt(&path, offset as u64, reason));
                    }
                };
                let decoded = record::decode_record(kind_byte, payload)
                    .map_err(|reason| self.corrupt(&path, offset as u64, reason))?;
                let at_start = offset == HEADER_BYTES;
                self.replay(
                    decoded,
                    sequence,
                    offset as u64,
                    len as u32,
                    at_start,
                    is_first,
                    &mut recovery,
                )
                .map_err(|reason| self.corrupt(&path, offset as u64, reason))?;
                offset += len;
            }
            if offset == HEADER_BYTES {
                return Err(self.corrupt(&path, offset as u64, "segment has no start record"));
            }
        }
        if let Some((path, needed)) = recovery.inferred_base
            && !recovery.saw_snapshot
            && recovery.confirmed_base < needed
        {
            return Err(self.corrupt(
                &path,
                0,
                format!(
                    "the log starts at entry {} but nothing records entries 1..={needed} as \
                         compacted: older segments are missing",
                    needed.saturating_add(1)
                ),
            ));
        }
        let last_index = self.last_index_inner();
        let last_path = self
            .segments
            .back()
            .map(|s| s.path.clone())
            .unwrap_or_default();
        if self.hard_state.commit > last_index {
            return Err(self.corrupt(
                &last_path,
                0,
                format!(
                    "commit index {} is beyond the last entry {last_index}",
                    self.hard_state.commit
                ),
            ));
        }
        self.hard_state.commit = self.hard_state.commit.max(self.base_index);
        tracing::debug!(
            dir = %self.dir.display(),
            segments = self.segments.len(),
            first_index = self.base_index + 1,
            last_index,
            commit = self.hard_state.commit,
            "recovered Raft log"
        );
        Ok(())
    }

    fn cut_torn_tail(&mut self, offset: u64, file_len: u64) -> Result<(), LogError> {
        let Some(segment) = self.segments.back_mut() else {
            return Ok(());
        };
        tracing::warn!(
            file = %segment.path.display(),
            offset,
            dropped_bytes = file_len - offset,
            "Raft log ends with a torn write (crash during a write); cutting it off"
        );
        segment
            .file
            .set_len(offset)
            .and_then(|()| segment.file.sync_data())
            .map_err(io_error(|| format!("truncating {}", segment.path.display())))?;
        segment.size = offset;
        Ok(())
    }

    /// Applies one recovered record to the in-memory state, checking that it continues the
    /// log. The error is the reason the record does not fit.
    #[allow(clippy::too_many_arguments)]
    fn replay(
        &mut self,
        decoded: Record,
        sequence: u64,
        offset: u64,
        len: u32,
        at_start: bool,
        is_first: bool,
        recovery: &mut RecoveryState,
    ) -> Result<(), String> {
        if at_start != matches!(decoded, Record::SegmentStart(_)) {
            return Err(if at_start {
                "segment does not begin with a start record".to_string()
            } else {
                "start record in the middle of a segment".to_string()
            });
        }
        let last_index = self.last_index_inner();
        match decoded {
            Record::SegmentStart(start) => {
                if is_first {
                    // Entries up to `start.last_index` live in older segments, which compaction
                    // may have deleted: the log known from here on begins after them.
                    self.base_index = start.last_index;
                    self.base_term = start.last_term;
                    if start.last_index > start.base_index {
                        let path = self
                            .segments
                            .back()
                            .map(|s| s.path.clone())
                            .unwrap_or_default();
                        recovery.inferred_base = Some((path, start.last_index));
                    }
                } else {
                    if start.last_index != last_index {
                        return Err(format!(
                            "segment starts after entry {} but the previous segment ends at {last_index}",
                            start.last_index
                        ));
                    }
                    let our_term = self.term_inner(last_index).unwrap_or(0);
                    if our_term != 0 && start.last_term != 0 && start.last_term != our_term {
                        return Err(format!(
                            "segment starts after term {} but the previous segment ends with term {our_term}",
                            start.last_term
                        ));
                    }
                    recovery.confirmed_base = recovery.confirmed_base.max(start.base_index);
                    if start.base_index > self.base_index {
                        self.apply_compact(start.base_index, start.base_term);
                    }
                }
                self.hard_state = start.hard_state;
                self.conf = StoredConfState {
                    conf_state: start.conf_state,
                    index: start.conf_index,
                };
            }
            Record::Entry(entry) => {
                if entry.index != last_index + 1 {
                    return Err(format!("entry {} follows entry {last_index}", entry.index));
                }
                let previous_term = self.term_inner(last_index).unwrap_or(0);
                if entry.term < previous_term {
                    return Err(format!(
                        "entry {} has term {} below the previous term {previous_term}",
                        entry.index, entry.term
                    ));
                }
                let slot = Slot {
                    term: entry.term,
                    sequence,
                    offset,
                    len,
                };
                if let Some(segment) = self.segments.back_mut() {
                    segment.max_entry_index = entry.index;
                }
                self.push_entry(entry, slot);
            }
            Record::HardState(hard_state) => self.hard_state = hard_state,
            Record::ConfState { conf_state, index } => {
                self.conf = StoredConfState { conf_state, index };
            }
            Record::Truncate { from } => {
                if from > last_index + 1 {
                    return Err(format!(
                        "truncation from {from} is beyond the last entry {last_index}"
                    ));
                }
                if from <= self.base_index {
                    if recovery.inferred_base.is_none() {
                        return Err(format!(
                            "truncation from {from} reaches into the compacted log"
                        ));
                    }
                    // The overwritten entries were in a deleted segment; the term before them
                    // is unknown until the compaction mark that follows sets the base again.
                    self.slots.clear();
                    self.cache.clear();
                    self.cache_used = 0;
                    self.base_index = from - 1;
                    self.base_term = 0;
                } else {
                    self.apply_truncate(from);
                }
            }
            Record::Compact { index, term } => {
                if index > last_index {
                    return Err(format!(
                        "compaction to {index} is beyond the last entry {last_index}"
                    ));
                }
                recovery.confirmed_base = recovery.confirmed_base.max(index);
                if index > self.base_index {
                    let stored = self.term_inner(index).unwrap_or(0);
                    if stored != term {
                        return Err(format!(
                            "compaction mark says entry {index} has term {term}, the log says {stored}"
                        ));
                    }
                    self.apply_compact(index, term);
                }
            }
            Record::Snapshot { index, term } => {
                if index < self.base_index && recovery.inferred_base.is_none() {
                    return Err(format!(
                        "snapshot at {index} is older than the compacted log"
                    ));
                }
                recovery.saw_snapshot = true;
                self.apply_snapshot(index, term);
            }
        }
        Ok(())
    }
}

impl LogStore for FileLogStore {
    fn first_index(&self) -> u64 {
        self.base_index + 1
    }

    fn last_index(&self) -> u64 {
        self.last_index_inner()
    }

    fn term(&self, index: u64) -> Result<u64, LogError> {
        self.term_inner(index)
    }

    fn entries(&self, low: u64, high: u64, max_bytes: Option<u64>) -> Result<Vec<Entry>, LogError> {
        if low <= self.base_index {
            return Err(LogError::Compacted {
                index: low,
                first_index: self.base_index + 1,
            });
        }
        let last_index = self.last_index_inner();
        if high > last_index + 1 {
            return Err(LogError::Unavailable {
                index: high - 1,
                last_index,
            });
        }
        let mut out = Vec::new();
        if low >= high {
            return Ok(out);
        }
        let mut used = 0;
        let cache_first = self
            .cache
            .front()
            .map_or(last_index + 1, |entry| entry.index);
        if low < cache_first {
            let disk_high = high.min(cache_first);
            let complete = self
                .read_from_disk(low, disk_high, &mut out, &mut used, max_bytes)
                .map_err(|error| self.fail(error))?;
            if !complete {
                return Ok(out);
            }
        }
        for index in low.max(cache_first)..high {
            let entry = self.cache[(index - cache_first) as usize].clone();
            if !push_limited(&mut out, &mut used, entry, max_bytes) {
                break;
            }
        }
        Ok(out)
    }

    fn hard_state(&self) -> HardState {
        self.hard_state.clone()
    }

    fn conf_state(&self) -> StoredConfState {
        self.conf.clone()
    }

    fn write(&mut self, batch: LogBatch) -> Result<(), LogError> {
        self.check_failed()?;
        let view = LogView {
            base_index: self.base_index,
            last_index: self.last_index_inner(),
        };
        check_batch(
            &batch,
            view,
            |index| self.term_inner(index).ok(),
            MAX_ENTRY_PAYLOAD_BYTES,
        )?;
        if batch.is_empty() {
            return Ok(());
        }
        if self.active()?.size >= self.options.segment_bytes {
            self.roll()?;
        }

        // Encode the whole batch first so that it reaches the file in one write.
        let mut bytes = Vec::new();
        if let Some(meta) = &batch.snapshot {
            record::encode_record(
                &mut bytes,
                &Record::Snapshot {
                    index: meta.index,
                    term: meta.term,
                },
            );
            record::encode_record(
                &mut bytes,
                &Record::ConfState {
                    conf_state: meta.get_conf_state().clone(),
                    index: meta.index,
                },
            );
        }
        let last_before = batch
            .snapshot
            .as_ref()
            .map_or(self.last_index_inner(), |meta| meta.index);
        let overwrite_from = batch
            .entries
            .first()
            .map(|entry| entry.index)
            .filter(|first| *first <= last_before);
        if let Some(from) = overwrite_from {
            record::encode_record(&mut bytes, &Record::Truncate { from });
        }
        let mut positions = Vec::with_capacity(batch.entries.len());
        for entry in &batch.entries {
            let at = bytes.len();
            let len = record::encode_entry(&mut bytes, entry);
            positions.push((at as u64, len as u32));
        }
        if let Some(conf) = &batch.conf_state {
            record::encode_record(
                &mut bytes,
                &Record::ConfState {
                    conf_state: conf.conf_state.clone(),
                    index: conf.index,
                },
            );
        }
        if let Some(hard_state) = &batch.hard_state {
            record::encode_record(&mut bytes, &Record::HardState(hard_state.clone()));
        }

        let sync = batch.must_sync && self.options.sync;
        let base_offset = self.append_bytes(&bytes, sync)?;

        // The bytes are written (and synced if asked): now update the in-memory view.
        let sequence = self.active()?.sequence;
        if let Some(meta) = &batch.snapshot {
            self.apply_snapshot(meta.index, meta.term);
            self.conf = StoredConfState {
                conf_state: meta.get_conf_state().clone(),
                index: meta.index,
            };
        }
        if let Some(from) = overwrite_from {
            self.apply_truncate(from);
        }
        let last_entry_index = batch.entries.last().map(|entry| entry.index);
        for (entry, (at, len)) in batch.entries.into_iter().zip(positions) {
            let slot = Slot {
                term: entry.term,
                sequence,
                offset: base_offset + at,
                len,
            };
            self.push_entry(entry, slot);
        }
        if let (Some(index), Some(segment)) = (last_entry_index, self.segments.back_mut()) {
            segment.max_entry_index = segment.max_entry_index.max(index);
        }
        if let Some(conf) = batch.conf_state {
            self.conf = conf;
        }
        if let Some(hard_state) = batch.hard_state {
            self.hard_state = hard_state;
        }
        if batch.snapshot.is_some() {
            // Every older segment holds only entries the snapshot replaced.
            self.delete_segments_up_to(u64::MAX)?;
        }
        Ok(())
    }

    fn compact_to(&mut self, index: u64) -> Result<(), LogError> {
        self.check_failed()?;
        if index <= self.base_index {
            return Ok(());
        }
        let last_index = self.last_index_inner();
        if index > last_index {
            return Err(LogError::invalid(format!(
                "cannot compact to {index}, beyond the last index {last_index}"
            )));
        }
        let term = self.term_inner(index)?;
        let mut bytes = Vec::new();
        record::encode_record(&mut bytes, &Record::Compact { index, term });
        // The mark is synced before any segment is deleted: recovery needs it to tell a
        // compacted log from one whose first segments went missing.
        self.append_bytes(&bytes, true)?;
        self.apply_compact(index, term);
        self.delete_segments_up_to(index)
    }

    fn flush_and_sync(&mut self) -> Result<(), LogError> {
        self.check_failed()?;
        self.sync_active()
    }
}
