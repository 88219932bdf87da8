//! Tests of the on-disk Raft log: round trips, crash recovery at every byte of the last record,
//! corruption detection, overwrites, compaction, segment rolls and identity checks.

#![allow(clippy::field_reassign_with_default)]

use std::fs;
use std::path::{Path, PathBuf};

use cairn_replication::eraftpb::{ConfState, Entry, HardState, SnapshotMetadata};
use cairn_replication::wal::{
    FileLogStore, LogBatch, LogError, LogStore, StoredConfState, WalIdentity, WalOptions,
};

const IDENTITY: WalIdentity = WalIdentity {
    cluster_id: 77,
    node_id: 2,
    group_id: 5,
};

fn options() -> WalOptions {
    WalOptions::new(IDENTITY)
}

fn small_segments() -> WalOptions {
    WalOptions {
        segment_bytes: 4096,
        cache_bytes: 0,
        ..options()
    }
}

fn entry(index: u64, term: u64) -> Entry {
    let mut entry = Entry::default();
    entry.index = index;
    entry.term = term;
    entry.data = format!("entry {index} of term {term}").into_bytes().into();
    entry
}

fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
    let mut hard_state = HardState::default();
    hard_state.term = term;
    hard_state.vote = vote;
    hard_state.commit = commit;
    hard_state
}

fn batch(entries: Vec<Entry>, hard_state: Option<HardState>) -> LogBatch {
    LogBatch {
        entries,
        hard_state,
        must_sync: true,
        ..LogBatch::default()
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|item| item.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .collect();
    paths.sort();
    paths
}

fn all_entries(store: &FileLogStore) -> Vec<(u64, u64, Vec<u8>)> {
    store
        .entries(store.first_index(), store.last_index() + 1, None)
        .unwrap()
        .into_iter()
        .map(|entry| (entry.index, entry.term, entry.data.to_vec()))
        .collect()
}

fn expected(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<(u64, u64, Vec<u8>)> {
    range
        .map(|index| (index, term, entry(index, term).data.to_vec()))
        .collect()
}

#[test]
fn round_trip_through_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let voters = ConfState::from((vec![1, 2, 3], vec![4]));
    {
        let mut store = FileLogStore::open(dir.path(), options()).unwrap();
        assert_eq!((store.first_index(), store.last_index()), (1, 0));
        store
            .write(LogBatch {
                conf_state: Some(StoredConfState {
                    conf_state: voters.clone(),
                    index: 0,
                }),
                must_sync: true,
                ..LogBatch::default()
            })
            .unwrap();
        store
            .write(batch(
                (1..=3).map(|i| entry(i, 1)).collect(),
                Some(hard_state(1, 1, 2)),
            ))
            .unwrap();
        store
            .write(batch(
                (4..=5).map(|i| entry(i, 2)).collect(),
                Some(hard_state(2, 3, 5)),
            ))
            .unwrap();
    }
    let store = FileLogStore::open(dir.path(), options()).unwrap();
    assert_eq!(store.last_index(), 5);
    assert_eq!(store.term(0).unwrap(), 0);
    assert_eq!(store.term(3).unwrap(), 1);
    assert_eq!(store.term(5).unwrap(), 2);
    assert!(matches!(store.term(6), Err(LogError::Unavailable { .. })));
    assert_eq!(store.hard_state(), hard_state(2, 3, 5));
    assert_eq!(store.conf_state().conf_state, voters);
    let mut want = expected(1..=3, 1);
    want.extend(expected(4..=5, 2));
    assert_eq!(all_entries(&store), want);
}

#[test]
fn entries_respect_the_size_limit_from_cache_and_from_disk() {
    for cache_bytes in [0, 1 << 20] {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileLogStore::open(
            dir.path(),
            WalOptions {
                cache_bytes,
                ..options()
            },
        )
        .unwrap();
        store
            .write(batch((1..=10).map(|i| entry(i, 1)).collect(), None))
            .unwrap();
        let one = store.entries(1, 11, Some(1)).unwrap();
        assert_eq!(
            one.len(),
            1,
            "at least one entry comes back even over the limit"
        );
        let some = store.entries(2, 11, Some(100)).unwrap();
        assert!(some.len() > 1 && some.len() < 9, "got {}", some.len());
        assert_eq!(some[0].index, 2);
        assert_eq!(store.entries(3, 3, None).unwrap().len(), 0);
        assert!(matches!(
            store.entries(0, 3, None),
            Err(LogError::Compacted { .. })
        ));
        assert!(matches!(
            store.entries(1, 12, None),
            Err(LogError::Unavailable { .. })
        ));
    }
}

/// Writes three batches and returns the segment file and the offsets where the last batch
/// (one entry and a hard state) starts and ends.
fn three_batches(dir: &Path) -> (PathBuf, u64, u64) {
    let mut store = FileLogStore::open(dir, options()).unwrap();
    store
        .write(batch(
            vec![entry(1, 1), entry(2, 1)],
            Some(hard_state(1, 1, 1)),
        ))
        .unwrap();
    store
        .write(batch(vec![entry(3, 1)], Some(hard_state(1, 1, 2))))
        .unwrap();
    let segment = segments(dir).pop().unwrap();
    let before = fs::metadata(&segment).unwrap().len();
    store
        .write(batch(vec![entry(4, 2)], Some(hard_state(2, 1, 3))))
        .unwrap();
    let after = fs::metadata(&segment).unwrap().len();
    (segment, before, after)
}

fn assert_recovered_to_three(dir: &Path, segment: &Path, good_len: u64) {
    assert_recovered(dir, segment, good_len, 3, hard_state(1, 1, 2));
}

/// Opens the log after a simulated crash and checks what survived, that the torn tail was cut
/// at `good_len`, and that the log continues from there.
fn assert_recovered(dir: &Path, segment: &Path, good_len: u64, last: u64, state: HardState) {
    let mut store = FileLogStore::open(dir, options()).unwrap();
    assert_eq!(store.last_index(), last);
    let mut want = expected(1..=3, 1);
    want.extend(expected(4..=last, 2));
    assert_eq!(all_entries(&store), want);
    assert_eq!(store.hard_state(), state);
    assert_eq!(
        fs::metadata(segment).unwrap().len(),
        good_len,
        "the torn tail is cut off"
    );
    // The log goes on from the cut.
    store
        .write(batch(
            vec![entry(last + 1, 3)],
            Some(hard_state(3, 2, last)),
        ))
        .unwrap();
    drop(store);
    let store = FileLogStore::open(dir, options()).unwrap();
    assert_eq!(store.last_index(), last + 1);
    assert_eq!(store.term(last + 1).unwrap(), 3);
}

#[test]
fn crash_at_every_byte_of_the_last_batch_keeps_earlier_records() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, before, after) = three_batches(dir.path());
    let original = fs::read(&segment).unwrap();
    // The last batch is an entry record (9-byte header, 21 bytes of fields, the data) followed
    // by a hard-state record. A cut inside the entry record loses the batch; a cut inside the
    // hard-state record keeps the entry (a prefix of the batch) with the previous hard state.
    let entry_end = before + 9 + 21 + entry(4, 2).data.len() as u64;
    assert!(entry_end < after);
    for cut in before..after {
        fs::write(&segment, &original[..cut as usize]).unwrap();
        if cut < entry_end {
            assert_recovered(dir.path(), &segment, before, 3, hard_state(1, 1, 2));
        } else {
            assert_recovered(dir.path(), &segment, entry_end, 4, hard_state(1, 1, 2));
        }
    }
    // A crash after the last byte loses nothing.
    fs::write(&segment, &original).unwrap();
    let store = FileLogStore::open(dir.path(), options()).unwrap();
    assert_eq!(store.last_index(), 4);
    assert_eq!(store.hard_state(), hard_state(2, 1, 3));
}

#[test]
fn zero_filled_or_garbled_last_write_counts_as_torn() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, before, after) = three_batches(dir.path());
    let original = fs::read(&segment).unwrap();

    // The file grew but the data never reached the disk.
    let mut zeroed = original[..before as usize].to_vec();
    zeroed.resize(after as usize, 0);
    fs::write(&segment, &zeroed).unwrap();
    assert_recovered_to_three(dir.path(), &segment, before);

    // The last record is whole in length but one of its pages is stale: its checksum fails
    // and nothing follows it.
    let mut garbled = original.clone();
    garbled[after as usize - 3] ^= 0xff;
    fs::write(&segment, &garbled).unwrap();
    let store = FileLogStore::open(dir.path(), options()).unwrap();
    assert_eq!(
        store.last_index(),
        4,
        "only the final hard-state record was dropped"
    );
    assert_eq!(store.hard_state(), hard_state(1, 1, 2));
}

#[test]
fn a_flipped_byte_before_the_tail_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let (segment, before, _after) = three_batches(dir.path());
    let original = fs::read(&segment).unwrap();
    // Flip a byte in the middle of the second batch's entry record.
    let mut damaged = original.clone();
    let at = before as usize - 40;
    damaged[at] ^= 0x10;
    fs::write(&segment, &damaged).unwrap();
    let error = FileLogStore::open(dir.path(), options()).unwrap_err();
    match &error {
        LogError::Corrupt {
            file,
            offset,
            reason,
        } => {
            assert_eq!(file, &segment);
            assert!(
                *offset < before && *offset + 60 > at as u64,
                "offset {offset}, flip at {at}"
            );
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    let text = error.to_string();
    assert!(text.contains("corrupt") && text.contains(".wal"), "{text}");

    // Damage in the segment header is corruption too.
    let mut damaged = original.clone();
    damaged[20] ^= 1;
    fs::write(&segment, &damaged).unwrap();
    assert!(matches!(
        FileLogStore::open(dir.path(), options()),
        Err(LogError::Corrupt { offset: 0, .. })
    ));
}

#[test]
fn damage_in_an_older_segment_is_corruption_even_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = FileLogStore::open(dir.path(), small_segments()).unwrap();
        for index in 1..=200 {
            store.write(batch(vec![entry(index, 1)], None)).unwrap();
        }
    }
    let files = segments(dir.path());
    assert!(files.len() >= 3);
    let first = &files[0];
    let bytes = fs::read(first).unwrap();
    fs::write(first, &bytes[..bytes.len() - 5]).unwrap();
    let error = FileLogStore::open(dir.path(), small_segments()).unwrap_err();
    assert!(
        matches!(&error, LogError::Corrupt { file, reason, .. } if file == first && reason.contains("not the last")),
        "{error:?}"
    );
}

#[test]
fn missing_segments_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = FileLogStore::open(dir.path(), small_segments()).unwrap();
        for index in 1..=300 {
            store.write(batch(vec![entry(index, 1)], None)).unwrap();
        }
    }
    let files = segments(dir.path());
    assert!(files.len() >= 4);
    let saved = fs::read(&files[1]).unwrap();
    fs::remove_file(&files[1]).unwrap();
    let error = FileLogStore::open(dir.path(), small_segments()).unwrap_err();
    assert!(
        matches!(&error, LogError::Corrupt { reason, .. } if reason.contains("missing")),
        "{error:?}"
    );
    fs::write(&files[1], saved).unwrap();

    // Without the first segment (and no compaction recorded), the log would silently start
    // later: refused.
    fs::remove_file(&files[0]).unwrap();
    let error = FileLogStore::open(dir.path(), small_segments()).unwrap_err();
    assert!(
        matches!(&error, LogError::Corrupt { reason, .. } if reason.contains("missing")),
        "{error:?}"
    );
}

#[test]
fn overwriting_a_suffix_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = FileLogStore::open(dir.path(), options()).unwrap();
        store
            .write(batch(
                (1..=10).map(|i| entry(i, 1)).collect(),
                Some(hard_state(1, 1, 4)),
            ))
            .unwrap();
        // A new leader of term 2 replaces 6..=10 with 6..=7.
        store
            .write(batch(
                vec![entry(6, 2), entry(7, 2)],
                Some(hard_state(2, 2, 4)),
            ))
            .unwrap();
        assert_eq!(store.last_index(), 7);
        // Entries below the commit are never overwritten by Raft, but compacted ones are
        // refused outright, and so are gaps and terms going backwards.
        store.compact_to(2).unwrap();
        let refused = [
            batch(vec![entry(2, 3)], None),
            batch(vec![entry(9, 3)], None),
            batch(vec![entry(8, 1)], None),
            batch(vec![entry(8, 2), entry(10, 2)], None),
            batch(Vec::new(), Some(hard_state(2, 2, 8))),
        ];
        for bad in refused {
            assert!(matches!(
                store.write(bad),
                Err(LogError::InvalidBatch { .. })
            ));
        }
        assert_eq!(store.last_index(), 7, "a refused batch changes nothing");
    }
    let store = FileLogStore::open(dir.path(), options()).unwrap();
    let mut want = expected(3..=5, 1);
    want.extend(expected(6..=7, 2));
    assert_eq!(all_entries(&store), want);
    assert_eq!(store.hard_state(), hard_state(2, 2, 4));
}

#[test]
fn segments_roll_and_read_back_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = FileLogStore::open(dir.path(), small_segments()).unwrap();
        for start in (1..=500).step_by(5) {
            store
                .write(batch(
                    (start..start + 5)
                        .map(|i| entry(i, 1 + start / 100))
                        .collect(),
                    None,
                ))
                .unwrap();
        }
        assert!(
            store.segment_count() > 5,
            "{} segments",
            store.segment_count()
        );
        assert_eq!(segments(dir.path()).len(), store.segment_count());
        for path in segments(dir.path()) {
            // A segment may exceed the limit by at most one batch.
            assert!(fs::metadata(&path).unwrap().len() < 4096 + 1024);
        }
    }
    let store = FileLogStore::open(dir.path(), small_segments()).unwrap();
    let got = all_entries(&store);
    assert_eq!(got.len(), 500);
    for (position, (index, term, data)) in got.iter().enumerate() {
        let index_expected = position as u64 + 1;
        let start = (index_expected - 1) / 5 * 5 + 1;
        assert_eq!(*index, index_expected);
        assert_eq!(*term, 1 + start / 100);
        assert_eq!(data, &entry(*index, *term).data.to_vec());
    }
}

#[test]
fn compaction_deletes_whole_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileLogStore::open(dir.path(), small_segments()).unwrap();
    for index in 1..=400 {
        store
            .write(batch(vec![entry(index, 1)], Some(hard_state(1, 1, index))))
            .unwrap();
    }
    let before = store.segment_count();
    assert!(before > 4);
    store.compact_to(250).unwrap();
    assert!(
        store.segment_count() < before,
        "{} of {before} segments left",
        store.segment_count()
    );
    assert_eq!(store.segment_count(), segments(dir.path()).len());
    assert_eq!(store.first_index(), 251);
    assert_eq!(store.term(250).unwrap(), 1);
    assert!(matches!(store.term(249), Err(LogError::Compacted { .. })));
    store.compact_to(100).unwrap();
    assert_eq!(
        store.first_index(),
        251,
        "compacting below the base is a no-op"
    );
    assert!(matches!(
        store.compact_to(401),
        Err(LogError::InvalidBatch { .. })
    ));
    drop(store);

    let store = FileLogStore::open(dir.path(), small_segments()).unwrap();
    assert_eq!((store.first_index(), store.last_index()), (251, 400));
    assert_eq!(all_entries(&store), expected(251..=400, 1));
    assert_eq!(store.hard_state().commit, 400);
}

#[test]
fn overwrite_reaching_into_a_deleted_segment_recovers() {
    // Entries 1..=60 are written, then a new leader overwrites from 55 on; the overwrite mark
    // lands in a later segment than the entries it replaces. Compaction then deletes the
    // segment holding the old 55..=60: recovery must still make sense of the mark.
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileLogStore::open(dir.path(), small_segments()).unwrap();
    for index in 1..=60 {
        store.write(batch(vec![entry(index, 1)], None)).unwrap();
    }
    while store.segment_count() < 4 {
        store
            .write(batch(Vec::new(), Some(hard_state(1, 1, 50))))
            .unwrap();
    }
    store
        .write(batch(
            (55..=120).map(|i| entry(i, 2)).collect(),
            Some(hard_state(2, 2, 100)),
        ))
        .unwrap();
    store.compact_to(100).unwrap();
    drop(store);
    let store = FileLogStore::open(dir.path(), small_segments()).unwrap();
    assert_eq!((store.first_index(), store.last_index()), (101, 120));
    assert_eq!(store.term(100).unwrap(), 2);
    assert_eq!(all_entries(&store), expected(101..=120, 2));
}

#[test]
fn snapshot_replaces_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileLogStore::open(dir.path(), small_segments()).unwrap();
    for index in 1..=300 {
        store
            .write(batch(
                vec![entry(index, 1)],
                Some(hard_state(1, 1, index / 2)),
            ))
            .unwrap();
    }
    let mut metadata = SnapshotMetadata::default();
    metadata.index = 1000;
    metadata.term = 4;
    metadata.set_conf_state(ConfState::from((vec![1, 2], vec![])));
    store
        .write(LogBatch {
            snapshot: Some(metadata),
            entries: vec![entry(1001, 4)],
            hard_state: Some(hard_state(4, 0, 1000)),
            must_sync: true,
            ..LogBatch::default()
        })
        .unwrap();
    assert_eq!(store.segment_count(), 1);
    drop(store);
    let store = FileLogStore::open(dir.path(), small_segments()).unwrap();
    assert_eq!((store.first_index(), store.last_index()), (1001, 1001));
    assert_eq!(store.term(1000).unwrap(), 4);
    assert_eq!(
        store.conf_state(),
        StoredConfState {
            conf_state: ConfState::from((vec![1, 2], vec![])),
            index: 1000
        }
    );
    assert_eq!(store.hard_state(), hard_state(4, 0, 1000));
}

#[test]
fn foreign_directories_and_double_opens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = FileLogStore::open(dir.path(), options()).unwrap();
        store.write(batch(vec![entry(1, 1)], None)).unwrap();
        let second = FileLogStore::open(dir.path(), options()).unwrap_err();
        assert!(matches!(second, LogError::Locked { .. }), "{second:?}");
    }
    for other in [
        WalIdentity {
            cluster_id: 78,
            ..IDENTITY
        },
        WalIdentity {
            node_id: 3,
            ..IDENTITY
        },
        WalIdentity {
            group_id: 6,
            ..IDENTITY
        },
    ] {
        let error = FileLogStore::open(dir.path(), WalOptions::new(other)).unwrap_err();
        match &error {
            LogError::Foreign {
                expected, found, ..
            } => {
                assert_eq!(*expected, other);
                assert_eq!(*found, IDENTITY);
            }
            unexpected => panic!("expected a foreign-log error, got {unexpected:?}"),
        }
        assert!(
            error.to_string().contains("another node's Raft log"),
            "{error}"
        );
    }
    // The rightful owner still opens it.
    assert_eq!(
        FileLogStore::open(dir.path(), options())
            .unwrap()
            .last_index(),
        1
    );
}

#[test]
fn unsynced_writes_and_leftover_temporary_segments() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = FileLogStore::open(
            dir.path(),
            WalOptions {
                sync: false,
                ..options()
            },
        )
        .unwrap();
        store.write(batch(vec![entry(1, 1)], None)).unwrap();
        store.flush_and_sync().unwrap();
        store.write(batch(vec![entry(2, 1)], None)).unwrap();
    }
    // A crash while creating a segment leaves a temporary file; it was never part of the log.
    fs::write(
        dir.path().join("0000000000000002.wal.tmp"),
        b"half a header",
    )
    .unwrap();
    let store = FileLogStore::open(dir.path(), options()).unwrap();
    assert_eq!(
        store.last_index(),
        2,
        "the page cache kept the unsynced write (no power cut here)"
    );
    assert!(!dir.path().join("0000000000000002.wal.tmp").exists());
}
