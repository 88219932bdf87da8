//! Local checkpoints: round trips, the consistent cut under concurrent writes, identity checks,
//! retention, corruption detection, crash safety of the manifest-last protocol, throttle pacing
//! and snapshot transfer.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_common::catalog::{Catalog, CatalogOp, TableDef};
use cairn_common::ids::{NodeGroupId, NodeId, PartitionId, TableId};
use cairn_common::key;
use cairn_common::ops::{RowChange, WriteSet};
use cairn_common::types::{ColumnType, LobSize};
use cairn_common::value::Value;
use cairn_storage::Store;
use cairn_storage::checkpoint::{
    CheckpointConfig, CheckpointError, CheckpointWriter, ChunkPart, Cut, Disk, DiskFile, FsDisk, Identity,
    LocalCheckpoint, SnapshotChunk, SnapshotReceiver, SnapshotSource, Step, Throttle, list_checkpoints,
    restore_checkpoint, restore_newest, write_checkpoint,
};
use support::{column, create, int, varchar};

const IDENTITY: Identity = Identity { cluster_id: 0xCA1_2000, node_id: NodeId(3), node_group: NodeGroupId(0) };

// ----- A store with tables, and the changes the tests apply -----

/// A small random generator (xorshift), so failures replay exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn put(def: &TableDef, values: Vec<Value>) -> RowChange {
    let row = def.layout().encode_to_vec(&values).unwrap();
    let partition = key::partition_of_row(def, &values).unwrap();
    RowChange::Put { table: def.id, partition, row }
}

fn delete(def: &TableDef, key_values: &[Value]) -> RowChange {
    let mut encoded = Vec::new();
    key::encode_key_values(def, &def.primary_key, key_values, &mut encoded).unwrap();
    let partition = key::partition_of_primary_key(def, key_values).unwrap();
    RowChange::Delete { table: def.id, partition, key: encoded }
}

/// The tables of the tests: plain rows, large rows, a partition key that is part of the
/// primary key, and tables that end up empty or hold only a counter.
struct Tables {
    accounts: TableDef,
    blobs: TableDef,
    members: TableDef,
    emptied: TableDef,
    counter_only: TableDef,
}

fn blob_type() -> ColumnType {
    ColumnType::Lob { size: LobSize::Long, binary: true }
}

fn make_tables(catalog: &mut Catalog) -> Tables {
    let mut add = |def: TableDef| {
        let id = create(catalog, def, 1);
        catalog.table(id).unwrap().clone()
    };
    let accounts = add(support::table(
        "accounts",
        vec![column("id", int(true), false), column("name", varchar(200), true)],
        vec![0],
        vec![0],
        4,
    ));
    let blobs = add(support::table(
        "blobs",
        vec![column("id", int(true), false), column("body", blob_type(), true)],
        vec![0],
        vec![0],
        2,
    ));
    let members = add(support::table(
        "members",
        vec![column("list", int(true), false), column("member", int(true), false), column("who", varchar(64), true)],
        vec![0, 1],
        vec![0],
        3,
    ));
    let emptied = add(support::table("emptied", vec![column("id", int(true), false)], vec![0], vec![0], 2));
    let counter_only = add(support::table("counter_only", vec![column("id", int(true), false)], vec![0], vec![0], 2));
    Tables { accounts, blobs, members, emptied, counter_only }
}

fn account(tables: &Tables, id: u64, name: &str) -> RowChange {
    put(&tables.accounts, vec![Value::UInt(id), Value::text(name)])
}

fn blob(tables: &Tables, id: u64, len: usize) -> RowChange {
    let body: Vec<u8> = (0..len).map(|i| (i as u64 * 31 + id) as u8).collect();
    put(&tables.blobs, vec![Value::UInt(id), Value::Bytes(body)])
}

fn member(tables: &Tables, list: u64, who: u64) -> RowChange {
    put(&tables.members, vec![Value::UInt(list), Value::UInt(who), Value::text(format!("user{who}@example.org"))])
}

fn apply(store: &mut Store, catalog: &Catalog, changes: Vec<RowChange>) {
    store.apply_write_set(&WriteSet { changes }, catalog).unwrap();
}

/// A store with several tables: holes left by deletes, rows above 8 KiB (their own
/// allocations), a table emptied again, a table with only an AUTO_INCREMENT counter.
fn populated() -> (Catalog, Tables, Store) {
    let mut catalog = support::catalog();
    let tables = make_tables(&mut catalog);
    let mut store = Store::new(NodeGroupId(0));
    apply(&mut store, &catalog, (1..=400).map(|i| account(&tables, i, &format!("name-{i}"))).collect());
    apply(
        &mut store,
        &catalog,
        (1..=400).filter(|i| i % 3 == 0).map(|i| delete(&tables.accounts, &[Value::UInt(i)])).collect(),
    );
    apply(&mut store, &catalog, (1..=12).map(|i| blob(&tables, i, 500 * i as usize * i as usize)).collect());
    apply(&mut store, &catalog, vec![blob(&tables, 100, 300_000)]);
    apply(
        &mut store,
        &catalog,
        (1..=5).flat_map(|l| (1..=30).map(move |m| (l, m))).map(|(l, m)| member(&tables, l, m)).collect(),
    );
    apply(&mut store, &catalog, (1..=10).map(|i| put(&tables.emptied, vec![Value::UInt(i)])).collect());
    apply(&mut store, &catalog, (1..=10).map(|i| delete(&tables.emptied, &[Value::UInt(i)])).collect());
    apply(
        &mut store,
        &catalog,
        vec![
            RowChange::AutoIncrement { table: tables.accounts.id, next: 401 },
            RowChange::AutoIncrement { table: tables.counter_only.id, next: 77 },
        ],
    );
    (catalog, tables, store)
}

/// Everything observable about a store: per table its definition, counter and every
/// partition's (slot, row) pairs.
type Dump = BTreeMap<TableId, (Option<TableDef>, u64, Vec<(PartitionId, Vec<(u64, Vec<u8>)>)>)>;

fn dump(store: &Store) -> Dump {
    store
        .tables()
        .into_iter()
        .map(|t| {
            let partitions = store
                .partitions(t)
                .into_iter()
                .map(|p| (p, store.partition_rows(t, p).map(|(s, r)| (s, r.to_vec())).collect()))
                .collect();
            (t, (store.schema(t).map(|s| s.def.clone()), store.auto_increment_next(t), partitions))
        })
        .collect()
}

fn cut(index: u64) -> Cut {
    Cut { applied_index: index, applied_term: 2, catalog_version: 9, raft_membership: vec![1, 2, 3], txn_state: vec![7] }
}

fn small_config() -> CheckpointConfig {
    CheckpointConfig { streams: 3, block_bytes: 4096, slice_bytes: 2048, keep: 2 }
}

fn fs() -> Arc<dyn Disk> {
    Arc::new(FsDisk)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

// ----- Round trips -----

#[test]
fn round_trip_keeps_rows_slots_counters_and_definitions() {
    let (catalog, tables, mut store) = populated();
    let dir = tempdir();
    let root = dir.path().join("lcp");
    let completed = write_checkpoint(fs(), &root, IDENTITY, &small_config(), &store, cut(42)).unwrap();
    let manifest = &completed.manifest;
    assert_eq!((manifest.applied_index, manifest.applied_term, manifest.catalog_version), (42, 2, 9));
    assert_eq!((manifest.cluster_id, manifest.node_id, manifest.node_group), (0xCA1_2000, NodeId(3), NodeGroupId(0)));
    assert_eq!(manifest.raft_membership, vec![1, 2, 3]);
    assert_eq!(manifest.txn_state, vec![7], "the transaction state of the cut is kept");
    assert_eq!(manifest.rows, store.memory().rows);
    assert_eq!(manifest.files.len(), 3, "partitions are spread over every stream");
    for file in &manifest.files {
        let path = root.join(manifest.checkpoint_id.to_string()).join(&file.name);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), file.bytes);
        assert!(file.blocks > 1, "{} has several blocks", file.name);
    }
    let versions: Vec<(TableId, Option<u64>)> =
        manifest.tables.iter().map(|t| (t.table, t.definition.as_ref().map(|d| d.version))).collect();
    assert!(versions.contains(&(tables.counter_only.id, None)), "{versions:?}");
    assert!(versions.contains(&(tables.accounts.id, Some(tables.accounts.version))));

    for threads in [0, 2] {
        let restored = restore_newest(&FsDisk, &root, &IDENTITY, threads).unwrap().expect("a checkpoint exists");
        assert_eq!(dump(&restored.store), dump(&store), "threads={threads}");
        assert_eq!(restored.manifest, *manifest);
        restored.store.check().unwrap();
    }

    // The restored store allocates slots exactly as the original does: the same changes land in
    // the same slots (holes reused lowest-first, large rows and all).
    let mut restored = restore_newest(&FsDisk, &root, &IDENTITY, 0).unwrap().unwrap().store;
    let more = |tables: &Tables| {
        vec![
            account(tables, 1000, "new"),
            account(tables, 1001, "newer"),
            delete(&tables.accounts, &[Value::UInt(1)]),
            blob(tables, 50, 20_000),
            put(&tables.emptied, vec![Value::UInt(5)]),
            RowChange::Truncate { table: tables.members.id },
            member(tables, 9, 9),
        ]
    };
    apply(&mut store, &catalog, more(&tables));
    apply(&mut restored, &catalog, more(&tables));
    assert_eq!(dump(&restored), dump(&store));
}

#[test]
fn an_empty_store_round_trips_and_no_checkpoint_means_none() {
    let dir = tempdir();
    let root = dir.path().join("lcp");
    assert!(restore_newest(&FsDisk, &root, &IDENTITY, 0).unwrap().is_none(), "a missing lcp/ has no checkpoint");
    let store = Store::new(NodeGroupId(0));
    let completed = write_checkpoint(fs(), &root, IDENTITY, &small_config(), &store, cut(0)).unwrap();
    assert!(completed.manifest.files.is_empty());
    let restored = restore_newest(&FsDisk, &root, &IDENTITY, 2).unwrap().unwrap();
    assert!(restored.store.tables().is_empty());
    assert_eq!(restored.stats.rows, 0);
}

// ----- The consistent cut -----

/// Random write sets over the test tables, including a key touched twice in one write set,
/// truncates, counters, and a table created and one dropped mid-checkpoint.
struct Workload {
    rng: Rng,
    next_table: u32,
}

impl Workload {
    fn write_set(&mut self, catalog: &mut Catalog, tables: &Tables) -> WriteSet {
        let rng = &mut self.rng;
        let mut changes = Vec::new();
        for _ in 0..1 + rng.below(6) {
            let id = 1 + rng.below(500);
            let change = match rng.below(100) {
                0..=34 => account(tables, id, &"x".repeat(rng.below(150) as usize)),
                35..=59 => delete(&tables.accounts, &[Value::UInt(id)]),
                60..=64 => blob(tables, id % 40, rng.below(20_000) as usize),
                65..=69 => delete(&tables.blobs, &[Value::UInt(id % 40)]),
                70..=79 => member(tables, id % 7, id % 50),
                80..=86 => delete(&tables.members, &[Value::UInt(id % 7), Value::UInt(id % 50)]),
                87..=89 => {
                    // Delete and put again in one write set: the row may change slots.
                    changes.push(delete(&tables.accounts, &[Value::UInt(id)]));
                    account(tables, id, "again")
                }
                90..=91 => RowChange::AutoIncrement { table: tables.accounts.id, next: 1000 + rng.below(1000) },
                92 => RowChange::Truncate { table: tables.members.id },
                93..=94 => put(&tables.emptied, vec![Value::UInt(id % 20)]),
                95 => delete(&tables.emptied, &[Value::UInt(id % 20)]),
                96 => {
                    let name = format!("late{}", self.next_table);
                    self.next_table += 1;
                    let def = support::table(&name, vec![column("id", int(true), false)], vec![0], vec![0], 2);
                    let table = create(catalog, def, 1);
                    let def = catalog.table(table).unwrap().clone();
                    changes.extend((0..rng.below(30)).map(|i| put(&def, vec![Value::UInt(i)])));
                    continue;
                }
                97 => {
                    // Drop the newest late table, if any.
                    let Some(def) = catalog.tables.values().rfind(|d| d.name.starts_with("late")).cloned() else {
                        continue;
                    };
                    catalog
                        .apply(
                            CatalogOp::DropTable {
                                database: def.database.clone(),
                                name: def.name.clone(),
                                if_exists: false,
                            },
                            &[NodeGroupId(0)],
                        )
                        .unwrap();
                    RowChange::DropTable { table: def.id }
                }
                _ => account(tables, id, "overwrite"),
            };
            changes.push(change);
        }
        WriteSet { changes }
    }
}

#[test]
fn a_cut_taken_while_writes_continue_is_exact() {
    for seed in 1..=12u64 {
        let (mut catalog, tables, mut store) = populated();
        let dir = tempdir();
        let root = dir.path().join("lcp");
        let mut workload = Workload { rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)), next_table: 0 };
        let mut checkpoint =
            LocalCheckpoint::start(fs(), &root, IDENTITY, &small_config(), Throttle::unlimited()).unwrap();
        let mut index = 100;
        let mut steps = 0;
        loop {
            for _ in 0..workload.rng.below(4) {
                let ws = workload.write_set(&mut catalog, &tables);
                checkpoint.apply_write_set(&mut store, &ws, &catalog).unwrap();
                index += 1;
            }
            match checkpoint.step(&store, Duration::ZERO).unwrap() {
                Step::Captured => break,
                Step::Wrote { .. } => steps += 1,
                Step::Wait { .. } => panic!("an unlimited throttle never waits"),
            }
        }
        assert!(steps > 10, "seed {seed}: the copy took {steps} slices; too few to interleave");
        // Entries applied between the end of the copy and finish are part of the cut too.
        for _ in 0..3 {
            let ws = workload.write_set(&mut catalog, &tables);
            checkpoint.apply_write_set(&mut store, &ws, &catalog).unwrap();
            index += 1;
        }
        assert!(checkpoint.stats().changes_recorded > 0, "seed {seed}: changes behind the cursor were recorded");
        let completed = checkpoint.finish(&store, cut(index)).unwrap();
        assert_eq!(completed.manifest.applied_index, index);
        let mut restored = restore_newest(&FsDisk, &root, &IDENTITY, 1).unwrap().unwrap().store;
        assert_eq!(dump(&restored), dump(&store), "seed {seed}");
        restored.check().unwrap();
        // Both go on identically: the free slots were restored too.
        for _ in 0..50 {
            let ws = workload.write_set(&mut catalog, &tables);
            store.apply_write_set(&ws, &catalog).unwrap();
            restored.apply_write_set(&ws, &catalog).unwrap();
        }
        assert_eq!(dump(&restored), dump(&store), "seed {seed}, after more writes");
    }
}

#[test]
fn a_row_deleted_and_inserted_again_behind_the_cursor_keeps_its_new_slot() {
    // Slot 0 (Q) is copied, slot 1 (W) not yet; then Q is deleted, Z takes slot 0 and Q comes
    // back in slot 2. A fuzzy copy would hold Q twice (slot 0 copied before the delete, slot 2
    // after) and Z nowhere. Recording slot changes behind the cursor gives the store's slots.
    let mut catalog = support::catalog();
    let tables = make_tables(&mut catalog);
    let def = &tables.emptied;
    let one_partition = |id: u64| key::partition_of_row(def, &[Value::UInt(id)]).unwrap();
    let ids: Vec<u64> = (0..1000).filter(|&i| one_partition(i) == PartitionId(0)).take(4).collect();
    let (q, w, z, extra) = (ids[0], ids[1], ids[2], ids[3]);
    let mut store = Store::new(NodeGroupId(0));
    apply(&mut store, &catalog, vec![put(def, vec![Value::UInt(q)]), put(def, vec![Value::UInt(w)])]);
    let dir = tempdir();
    let root = dir.path().join("lcp");
    let config = CheckpointConfig { slice_bytes: 1, ..small_config() };
    let mut checkpoint = LocalCheckpoint::start(fs(), &root, IDENTITY, &config, Throttle::unlimited()).unwrap();
    // One row per slice: after this step slot 0 is captured, slot 1 is not yet.
    checkpoint.step(&store, Duration::ZERO).unwrap();
    for change in [
        delete(def, &[Value::UInt(q)]),
        put(def, vec![Value::UInt(z)]),
        put(def, vec![Value::UInt(q)]),
        put(def, vec![Value::UInt(extra)]),
    ] {
        checkpoint.apply(&mut store, &change, &catalog).unwrap();
    }
    checkpoint.capture_rest(&store).unwrap();
    checkpoint.finish(&store, cut(7)).unwrap();
    let restored = restore_newest(&FsDisk, &root, &IDENTITY, 0).unwrap().unwrap().store;
    let slots = |s: &Store| s.partition_rows(def.id, PartitionId(0)).map(|(slot, _)| slot).collect::<Vec<_>>();
    assert_eq!(slots(&store), vec![0, 1, 2, 3]);
    assert_eq!(dump(&restored), dump(&store));
}

#[test]
fn finish_before_the_copy_is_done_is_refused_and_leaves_the_previous_checkpoint() {
    let (_, _, store) = populated();
    let dir = tempdir();
    let root = dir.path().join("lcp");
    let first = write_checkpoint(fs(), &root, IDENTITY, &small_config(), &store, cut(1)).unwrap();
    let mut checkpoint = LocalCheckpoint::start(fs(), &root, IDENTITY, &small_config(), Throttle::unlimited()).unwrap();
    checkpoint.step(&store, Duration::ZERO).unwrap();
    let err = checkpoint.finish(&store, cut(2)).unwrap_err();
    assert!(matches!(err, CheckpointError::Invalid(_)), "{err}");
    let listing = list_checkpoints(&FsDisk, &root).unwrap();
    assert_eq!(listing.len(), 1, "the unfinished directory was removed: {listing:?}");
    let restored = restore_newest(&FsDisk, &root, &IDENTITY, 0).unwrap().unwrap();
    assert_eq!(restored.manifest.checkpoint_id, first.manifest.checkpoint_id);
}

// ----- Identity and retention -----

#[test]
fn checkpoints_of_another_cluster_node_or_node_group_are_refused() {
    let (_, _, store) = populated();
    let dir = tempdir();
    let root = dir.path().join("lcp");
    write_checkpoint(fs(), &root, IDENTITY, &small_config(), &store, cut(5)).unwrap();
    let others = [
        Identity { cluster_id: 1, ..IDENTITY },
        Identity { node_id: NodeId(4), ..IDENTITY },
        Identity { node_group: NodeGroupId(1), ..IDENTITY },
    ];
    for other in others {
        let err = restore_newest(&FsDisk, &root, &other, 0).unwrap_err();
        assert!(matches!(err, CheckpointError::Refused(_)), "{err}");
        assert!(err.to_string().contains("refusing"), "{err}");
        let err = CheckpointWriter::begin(fs(), &root, other, &small_config()).unwrap_err();
        assert!(matches!(err, CheckpointError::Refused(_)), "a writer does not prune another node's checkpoints");
    }
    assert!(restore_newest(&FsDisk, &root, &IDENTITY, 0).unwrap().is_some());
}

#[test]
fn the_two_newest_complete_checkpoints_are_kept_and_incomplete_ones_ignored() {
    let (catalog, tables, mut store) = populated();
    let dir = tempdir();
    let root = dir.path().join("lcp");
    let mut ids = Vec::new();
    for round in 1..=4u64 {
        apply(&mut store, &catalog, vec![account(&tables, 10_000 + round, "round")]);
        let completed = write_checkpoint(fs(), &root, IDENTITY, &small_config(), &store, cut(round)).unwrap();
        ids.push(completed.manifest.checkpoint_id);
        if round >= 3 {
            assert_eq!(completed.removed, vec![ids[ids.len() - 3]]);
        }
    }
    let listing = list_checkpoints(&FsDisk, &root).unwrap();
    assert_eq!(listing.iter().map(|c| c.id).collect::<Vec<_>>(), ids[2..].to_vec());
    // A directory without a manifest (a crash mid-checkpoint) is not a checkpoint.
    let crashed = root.join((ids[3] + 1).to_string());
    std::fs::create_dir_all(&crashed).unwrap();
    std::fs::write(crashed.join("data-0.lcp"), b"partial").unwrap();
    let restored = restore_newest(&FsDisk, &root, &IDENTITY, 0).unwrap().unwrap();
    assert_eq!(restored.manifest.checkpoint_id, ids[3]);
    assert_eq!(dump(&restored.store), dump(&store));
    // The next checkpoint removes the leftover and takes a fresh id.
    let next = write_checkpoint(fs(), &root, IDENTITY, &small_config(), &store, cut(9)).unwrap();
    assert_eq!(next.manifest.checkpoint_id, ids[3] + 2, "ids never repeat");
    assert!(!crashed.exists());
    // The older kept checkpoint restores too (the fallback when the newest is damaged).
    let older = restore_checkpoint(&FsDisk, &root, ids[3], &IDENTITY, 0).unwrap();
    assert_eq!(older.manifest.applied_index, 4);
}

// ----- Corruption -----

/// Offsets of the blocks of a data file, read from their headers.
fn block_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 32;
    while at < bytes.len() {
        offsets.push(at);
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        at += 16 + len;
    }
    offsets
}

fn checkpoint_files(root: &Path) -> (u64, Vec<PathBuf>) {
    let id = list_checkpoints(&FsDisk, root).unwrap().last().unwrap().id;
    let dir = root.join(id.to_string());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    (id, files)
}

fn expect_corrupt(root: &Path, file: &Path, offset: u64, what: &str) {
    let err = match restore_newest(&FsDisk, root, &IDENTITY, 2) {
        Ok(_) => panic!("{what}: restored from a damaged checkpoint"),
        Err(e) => e,
    };
    let CheckpointError::Corrupt { file: named, offset: reported, .. } = &err else {
        panic!("{what}: expected a corruption error, got {err}")
    };
    assert_eq!(named, file, "{what}: {err}");
    assert_eq!(*reported, offset, "{what}: {err}");
    let message = err.to_string();
    assert!(
        message.contains(&file.display().to_string()) && message.contains(&format!("offset {offset}")),
        "{message}"
    );
    assert!(err.is_damage());
}

#[test]
fn a_flipped_byte_in_any_block_is_reported_with_file_and_offset() {
    let (_, _, store) = populated();
    let dir = tempdir();
    let root = dir.path().join("lcp");
    write_checkpoint(fs(), &root, IDENTITY, &small_config(), &store, cut(3)).unwrap();
    let (_, files) = checkpoint_files(&root);
    let mut blocks_checked = 0;
    for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "lcp")) {
        let original = std::fs::read(file).unwrap();
        for at in [0usize, 13, 31] {
            let mut bad = original.clone();
            bad[at] ^= 0x40;
            std::fs::write(file, &bad).unwrap();
            expect_corrupt(&root, file, 0, "file header");
        }
        for block in block_offsets(&original) {
            let next = block_offsets(&original).into_iter().find(|&b| b > block).unwrap_or(original.len());
            for at in [block, block + 5, block + 9, block + 14, block + 16, (block + next) / 2, next - 1] {
                let mut bad = original.clone();
                bad[at] ^= 0x01;
                std::fs::write(file, &bad).unwrap();
                expect_corrupt(&root, file, block as u64, &format!("{} byte {at}", file.display()));
            }
            blocks_checked += 1;
        }
        std::fs::write(file, &original).unwrap();
    }
    assert!(blocks_checked > 10, "{blocks_checked} blocks");
    assert!(restore_newest(&FsDisk, &root, &IDENTITY, 0).is_ok(), "the repaired files restore");
}

#[test]
fn a_truncated_or_extended_file_is_reported() {
    let (_, _, store) = populated();
    let dir = tempdir();
    let root = dir.path().join("lcp");
    write_checkpoint(fs(), &root, IDENTITY, &small_config(), &store, cut(3)).unwrap();
    let (_, files) = checkpoint_files(&root);
    for file in &files {
        let original = std::fs::read(file).unwrap();
        let is_manifest = file.file_name().unwrap() == "MANIFEST";
        for len in [0, 1, 31, 32, 40, original.len() / 2, original.len() - 1] {
            std::fs::write(file, &original[..len]).unwrap();
            let err = restore_newest(&FsDisk, &root, &IDENTITY, 0).map(|_| ()).unwrap_err();
            let CheckpointError::Corrupt { file: named, offset, .. } = &err else { panic!("{err}") };
            assert_eq!(named, file);
            if !is_manifest {
                assert_eq!(*offset, len as u64, "{err}");
                assert!(err.to_string().contains("truncated"), "{err}");
            }
        }
        let mut longer = original.clone();
        longer.extend_from_slice(b"tail");
        std::fs::write(file, &longer).unwrap();
        assert!(restore_newest(&FsDisk, &root, &IDENTITY, 0).unwrap_err().is_damage());
        std::fs::write(file, &original).unwrap();
    }
    assert!(restore_newest(&FsDisk, &root, &IDENTITY, 0).is_ok());
}

#[test]
fn every_single_flipped_byte_of_a_small_checkpoint_is_detected() {
    let mut catalog = support::catalog();
    let tables = make_tables(&mut catalog);
    let mut store = Store::new(NodeGroupId(0));
    apply(&mut store, &catalog, (1..=30).map(|i| account(&tables, i, "abc")).collect());
    apply(&mut store, &catalog, vec![RowChange::AutoIncrement { table: tables.counter_only.id, next: 5 }]);
    let dir = tempdir();
    let root = dir.path().join("lcp");
    write_checkpoint(fs(), &root, IDENTITY, &small_config(), &store, cut(3)).unwrap();
    let (_, files) = checkpoint_files(&root);
    for file in &files {
        let original = std::fs::read(file).unwrap();
        for at in 0..original.len() {
            let mut bad = original.clone();
            bad[at] ^= 0x80;
            std::fs::write(file, &bad).unwrap();
            match restore_newest(&FsDisk, &root, &IDENTITY, 0) {
                Err(e) => assert!(e.is_damage(), "{}: byte {at}: {e}", file.display()),
                Ok(_) => panic!("{}: a flip of byte {at} went unnoticed", file.display()),
            }
        }
        std::fs::write(file, &original).unwrap();
    }
}

// ----- Crash safety: a disk that forgets what was not made durable -----

#[derive(Clone, Copy, Debug)]
enum Node {
    Dir,
    File(u64),
}

#[derive(Default)]
struct SimFile {
    data: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Default)]
struct SimState {
    names: BTreeMap<PathBuf, Node>,
    durable_names: BTreeMap<PathBuf, Node>,
    files: HashMap<u64, SimFile>,
    next_file: u64,
    ops: u64,
    crash_at: Option<u64>,
}

/// A disk in memory that models POSIX durability: file contents survive a crash only up to the
/// last fsync of the file, names only as of the last fsync of their directory. It can crash at
/// its n-th mutating operation: that operation and every later one fail.
#[derive(Clone, Default)]
struct SimDisk(Arc<Mutex<SimState>>);

fn crash_error() -> io::Error {
    io::Error::other("simulated crash")
}

impl SimState {
    fn mutate(&mut self) -> io::Result<()> {
        self.ops += 1;
        match self.crash_at {
            Some(at) if self.ops >= at => Err(crash_error()),
            _ => Ok(()),
        }
    }

    fn node(&self, path: &Path) -> io::Result<Node> {
        self.names.get(path).copied().ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn file(&self, path: &Path) -> io::Result<&SimFile> {
        match self.node(path)? {
            Node::File(id) => Ok(&self.files[&id]),
            Node::Dir => Err(io::Error::other("is a directory")),
        }
    }
}

impl SimDisk {
    fn with_root(root: &Path) -> SimDisk {
        let disk = SimDisk::default();
        {
            let mut state = disk.0.lock().unwrap();
            for ancestor in root.ancestors().filter(|a| !a.as_os_str().is_empty()) {
                state.names.insert(ancestor.to_path_buf(), Node::Dir);
                state.durable_names.insert(ancestor.to_path_buf(), Node::Dir);
            }
        }
        disk
    }

    fn ops(&self) -> u64 {
        self.0.lock().unwrap().ops
    }

    fn crash_at(&self, op: u64) {
        self.0.lock().unwrap().crash_at = Some(op);
    }

    /// The machine restarts: only durable names and contents remain.
    fn restart(&self) {
        let mut state = self.0.lock().unwrap();
        state.names = state.durable_names.clone();
        for file in state.files.values_mut() {
            file.data = file.durable.clone();
        }
        state.crash_at = None;
    }
}

struct SimHandle {
    disk: SimDisk,
    id: u64,
}

impl DiskFile for SimHandle {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.disk.0.lock().unwrap();
        state.mutate()?;
        state.files.get_mut(&self.id).unwrap().data.extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut state = self.disk.0.lock().unwrap();
        state.mutate()?;
        let file = state.files.get_mut(&self.id).unwrap();
        file.durable = file.data.clone();
        Ok(())
    }
}

impl Disk for SimDisk {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.0.lock().unwrap();
        state.mutate()?;
        for ancestor in path.ancestors().filter(|a| !a.as_os_str().is_empty()) {
            state.names.entry(ancestor.to_path_buf()).or_insert(Node::Dir);
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let state = self.0.lock().unwrap();
        state.node(path)?;
        Ok(state
            .names
            .keys()
            .filter(|p| p.parent() == Some(path))
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect())
    }

    fn create_file(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let mut state = self.0.lock().unwrap();
        state.mutate()?;
        match path.parent().map(|p| state.node(p)) {
            Some(Ok(Node::Dir)) => {}
            _ => return Err(io::Error::from(io::ErrorKind::NotFound)),
        }
        let id = state.next_file;
        state.next_file += 1;
        state.files.insert(id, SimFile::default());
        state.names.insert(path.to_path_buf(), Node::File(id));
        Ok(Box::new(SimHandle { disk: self.clone(), id }))
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(self.0.lock().unwrap().file(path)?.data.len() as u64)
    }

    fn read_range(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let state = self.0.lock().unwrap();
        let data = &state.file(path)?.data;
        let start = (offset as usize).min(data.len());
        Ok(data[start..(start + len).min(data.len())].to_vec())
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        Ok(self.0.lock().unwrap().file(path)?.data.clone())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        Ok(self.0.lock().unwrap().names.contains_key(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.0.lock().unwrap();
        state.mutate()?;
        let node = state.names.remove(from).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        state.names.insert(to.to_path_buf(), node);
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.0.lock().unwrap();
        state.mutate()?;
        let SimState { names, durable_names, .. } = &mut *state;
        // The directory's entries become durable as they are now; an entry removed from it takes
        // everything below it along.
        let gone: Vec<PathBuf> =
            durable_names.keys().filter(|p| p.parent() == Some(path) && !names.contains_key(*p)).cloned().collect();
        for entry in gone {
            durable_names.retain(|p, _| !p.starts_with(&entry));
        }
        for (p, node) in names.iter().filter(|(p, _)| p.parent() == Some(path)) {
            durable_names.insert(p.clone(), *node);
        }
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.0.lock().unwrap();
        state.mutate()?;
        state.node(path)?;
        state.names.retain(|p, _| !p.starts_with(path));
        Ok(())
    }
}

/// The populated store after `rounds` more rounds of changes.
fn store_after_rounds(rounds: u64) -> Store {
    let (catalog, tables, mut store) = populated();
    for round in 0..rounds {
        apply(
            &mut store,
            &catalog,
            vec![account(&tables, 20_000 + round, "r"), delete(&tables.accounts, &[Value::UInt(2 + round)])],
        );
    }
    store
}

#[test]
fn a_crash_at_any_point_of_writing_leaves_the_previous_checkpoint_usable() {
    let root = PathBuf::from("/data/lcp");
    let config = CheckpointConfig { streams: 2, block_bytes: 16 << 10, slice_bytes: 64 << 10, keep: 2 };
    let stores: Vec<Store> = (0..3).map(store_after_rounds).collect();
    let states: Vec<Dump> = stores.iter().map(dump).collect();
    assert!(states[1] != states[2]);
    let mut crash_points = 0;
    for crash_at in 1.. {
        let disk = SimDisk::with_root(Path::new("/data"));
        let shared: Arc<dyn Disk> = Arc::new(disk.clone());
        // Two complete checkpoints first, so that the third also prunes the oldest.
        write_checkpoint(shared.clone(), &root, IDENTITY, &config, &stores[0], cut(1)).unwrap();
        write_checkpoint(shared.clone(), &root, IDENTITY, &config, &stores[1], cut(2)).unwrap();
        let start = disk.ops();
        disk.crash_at(start + crash_at);
        let outcome = write_checkpoint(shared.clone(), &root, IDENTITY, &config, &stores[2], cut(3));
        let crashed = disk.ops() >= start + crash_at;
        disk.restart();
        let restored = restore_newest(&disk, &root, &IDENTITY, 0)
            .unwrap_or_else(|e| panic!("crash at op {crash_at}: no usable checkpoint: {e}"))
            .expect("a checkpoint survives");
        let got = dump(&restored.store);
        if !crashed {
            let completed = outcome.unwrap();
            assert!(completed.prune_error.is_none());
            assert_eq!(completed.removed.len(), 1, "the oldest checkpoint was removed");
            assert_eq!(got, states[2]);
            break;
        }
        match &outcome {
            // Once the write returned, its manifest was durable: the new state is there (the
            // crash hit the removal of the oldest checkpoint).
            Ok(completed) => {
                assert!(completed.prune_error.is_some());
                assert_eq!(got, states[2], "crash at op {crash_at} after the manifest");
            }
            Err(_) => assert!(got == states[1] || got == states[2], "crash at op {crash_at}: an unexpected state"),
        }
        // The node goes on: the next checkpoint succeeds and cleans up after the crash.
        write_checkpoint(shared.clone(), &root, IDENTITY, &config, &stores[2], cut(4)).unwrap();
        let listing = list_checkpoints(&disk, &root).unwrap();
        assert!(listing.iter().all(|c| c.complete) && listing.len() == 2, "crash at op {crash_at}: {listing:?}");
        assert_eq!(dump(&restore_newest(&disk, &root, &IDENTITY, 0).unwrap().unwrap().store), states[2]);
        crash_points += 1;
    }
    assert!(crash_points > 15, "only {crash_points} crash points were exercised");
}

// ----- Throttling -----

#[test]
fn the_throttle_paces_a_checkpoint_at_its_rate() {
    let (_, _, store) = populated();
    let dir = tempdir();
    let root = dir.path().join("lcp");
    let rate = 1 << 20;
    let config = CheckpointConfig { slice_bytes: 16 << 10, ..small_config() };
    let throttle = Throttle::new(rate, 16 << 10);
    let mut checkpoint = LocalCheckpoint::start(fs(), &root, IDENTITY, &config, throttle).unwrap();
    let mut now = Duration::ZERO;
    let mut written = 0u64;
    let mut waits = 0;
    let mut allowed_at = Duration::ZERO;
    loop {
        match checkpoint.step(&store, now).unwrap() {
            Step::Wrote { bytes, next_at } => {
                assert!(now >= allowed_at, "a slice went before the throttle allowed it");
                written += bytes;
                // The next slice is allowed once the bytes so far, less one burst, are paid for.
                let paid = Duration::from_secs_f64(written.saturating_sub(16 << 10) as f64 / rate as f64);
                assert!(next_at + Duration::from_micros(1) >= paid, "{next_at:?} < {paid:?}");
                allowed_at = next_at;
                // Come back too early (half way): the throttle says to wait until `next_at`.
                now = if next_at > now { now + (next_at - now) / 2 } else { next_at };
            }
            Step::Wait { until, bytes } => {
                assert_eq!((until, bytes), (allowed_at, 0));
                waits += 1;
                now = until;
            }
            Step::Captured => break,
        }
    }
    assert!(waits > 5);
    checkpoint.finish(&store, cut(1)).unwrap();
    // Virtual time spent is the bytes over the rate, give or take one burst and one slice.
    let expected = written as f64 / rate as f64;
    let spent = now.as_secs_f64();
    assert!(
        spent <= expected && spent >= expected - 2.0 * (16 << 10) as f64 / rate as f64 - 0.05,
        "{spent} s for {written} bytes"
    );
}

// ----- Snapshot transfer -----

#[test]
fn a_checkpoint_streams_to_another_replica_in_bounded_chunks() {
    let (catalog, tables, mut store) = populated();
    let sender_dir = tempdir();
    let receiver_dir = tempdir();
    let (sender_root, receiver_root) = (sender_dir.path().join("lcp"), receiver_dir.path().join("lcp"));
    let sender = IDENTITY;
    let receiver = Identity { node_id: NodeId(4), ..IDENTITY };
    let sent = write_checkpoint(fs(), &sender_root, sender, &small_config(), &store, cut(77)).unwrap();
    // The receiver has an older checkpoint of its own; the snapshot becomes its newest.
    apply(&mut store, &catalog, vec![account(&tables, 1, "only on the sender")]);
    let own =
        write_checkpoint(fs(), &receiver_root, receiver, &small_config(), &Store::new(NodeGroupId(0)), cut(5)).unwrap();
    let source = SnapshotSource::open(fs(), &sender_root, sent.manifest.checkpoint_id, &sender, 4096).unwrap();
    assert_eq!(source.file_count(), 3);
    let mut incoming = SnapshotReceiver::new(fs(), &receiver_root, receiver, &small_config()).unwrap();
    let mut total = 0u64;
    let mut send = |chunk: SnapshotChunk, incoming: &mut SnapshotReceiver| {
        assert!(chunk.data.len() <= 4096);
        total += chunk.data.len() as u64;
        let wire = chunk.encode();
        incoming.accept(SnapshotChunk::decode(&wire).unwrap()).unwrap();
    };
    for chunk in source.manifest_chunks() {
        send(chunk, &mut incoming);
    }
    // The files go "in parallel": their chunks interleave.
    let mut streams: Vec<_> = (0..source.file_count()).map(|i| source.file_chunks(i)).collect();
    loop {
        let mut any = false;
        for stream in &mut streams {
            if let Some(chunk) = stream.next() {
                send(chunk.unwrap(), &mut incoming);
                any = true;
            }
        }
        if !any {
            break;
        }
    }
    assert_eq!(total, source.total_bytes());
    assert!(incoming.is_complete());
    let installed = incoming.install().unwrap();
    assert!(installed.manifest.checkpoint_id > own.manifest.checkpoint_id);
    assert_eq!(installed.manifest.node_id, NodeId(4));
    assert_eq!(installed.manifest.applied_index, 77);
    assert_eq!(installed.manifest.received_from.unwrap().node_id, NodeId(3));
    let restored = restore_newest(&FsDisk, &receiver_root, &receiver, 2).unwrap().unwrap();
    let original = restore_newest(&FsDisk, &sender_root, &sender, 0).unwrap().unwrap();
    assert_eq!(dump(&restored.store), dump(&original.store));
}

#[test]
fn damaged_missing_or_foreign_snapshots_are_refused_and_leave_the_receiver_as_it_was() {
    let (_, _, store) = populated();
    let sender_dir = tempdir();
    let receiver_dir = tempdir();
    let (sender_root, receiver_root) = (sender_dir.path().join("lcp"), receiver_dir.path().join("lcp"));
    let receiver = Identity { node_id: NodeId(4), ..IDENTITY };
    let sent = write_checkpoint(fs(), &sender_root, IDENTITY, &small_config(), &store, cut(8)).unwrap();
    let own = write_checkpoint(fs(), &receiver_root, receiver, &small_config(), &store, cut(2)).unwrap();
    let source = SnapshotSource::open(fs(), &sender_root, sent.manifest.checkpoint_id, &IDENTITY, 8192).unwrap();
    let chunks: Vec<SnapshotChunk> = source.chunks().map(Result::unwrap).collect();
    let receiver_is_unchanged = || {
        let listing = list_checkpoints(&FsDisk, &receiver_root).unwrap();
        assert_eq!(listing.iter().map(|c| c.id).collect::<Vec<_>>(), vec![own.manifest.checkpoint_id]);
    };

    // A byte damaged on the wire: the chunk's checksum catches it.
    let mut wire = chunks[3].encode();
    wire[40] ^= 1;
    assert!(matches!(SnapshotChunk::decode(&wire), Err(CheckpointError::Transfer(_))));

    // A sender that ships wrong bytes with a valid chunk checksum: caught at install.
    let mut incoming = SnapshotReceiver::new(fs(), &receiver_root, receiver, &small_config()).unwrap();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut chunk = chunk.clone();
        if i == chunks.len() - 1 {
            let last = chunk.data.len() - 1;
            chunk.data[last] ^= 0xFF;
        }
        incoming.accept(chunk).unwrap();
    }
    let err = incoming.install().unwrap_err();
    assert!(err.is_damage(), "{err}");
    receiver_is_unchanged();

    // A missing file chunk.
    let mut incoming = SnapshotReceiver::new(fs(), &receiver_root, receiver, &small_config()).unwrap();
    let file_chunks: Vec<usize> = (0..chunks.len()).filter(|&i| matches!(chunks[i].part, ChunkPart::File(_))).collect();
    let skipped = file_chunks[file_chunks.len() / 2];
    let mut out_of_order = None;
    for (i, chunk) in chunks.iter().enumerate() {
        if i == skipped {
            continue;
        }
        if let Err(e) = incoming.accept(chunk.clone()) {
            out_of_order.get_or_insert(e);
        }
    }
    let err = out_of_order.expect("a gap in a file is noticed at the next chunk");
    assert!(matches!(err, CheckpointError::Transfer(_)), "{err}");
    assert!(!incoming.is_complete());
    assert!(matches!(incoming.install().unwrap_err(), CheckpointError::Transfer(_)));
    receiver_is_unchanged();

    // A snapshot of another cluster is refused before anything is written.
    let foreign = Identity { cluster_id: 99, ..receiver };
    let mut incoming = SnapshotReceiver::new(fs(), &receiver_root, foreign, &small_config()).unwrap();
    let err = source.manifest_chunks().into_iter().map(|c| incoming.accept(c)).find_map(Result::err).unwrap();
    assert!(matches!(err, CheckpointError::Refused(_)), "{err}");
    incoming.abandon().unwrap();
    receiver_is_unchanged();

    // File chunks before the manifest, or of another checkpoint, are refused.
    let mut incoming = SnapshotReceiver::new(fs(), &receiver_root, receiver, &small_config()).unwrap();
    let first_file = chunks.iter().find(|c| matches!(c.part, ChunkPart::File(_))).unwrap().clone();
    assert!(matches!(incoming.accept(first_file.clone()), Err(CheckpointError::Transfer(_))));
    let mut incoming = SnapshotReceiver::new(fs(), &receiver_root, receiver, &small_config()).unwrap();
    for chunk in source.manifest_chunks() {
        incoming.accept(chunk).unwrap();
    }
    let stranger = SnapshotChunk { checkpoint_id: first_file.checkpoint_id + 1, ..first_file };
    assert!(matches!(incoming.accept(stranger), Err(CheckpointError::Transfer(_))));
    incoming.abandon().unwrap();
    receiver_is_unchanged();
}
