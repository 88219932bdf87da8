//! Online backups: the copy holds exactly the rows at the cut, whatever is written meanwhile,
//! and a damaged or truncated backup file is refused.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use cairn_common::catalog::{Catalog, TableDef};
use cairn_common::ids::{NodeGroupId, NodeId, TableId};
use cairn_common::key;
use cairn_common::ops::{RowChange, WriteSet};
use cairn_common::value::Value;
use cairn_storage::Store;
use cairn_storage::backup::{
    BackupCapture, BackupControl, BackupFile, backup_dir, find_controls, read_rows, write_control,
};
use cairn_storage::checkpoint::FsDisk;
use support::{column, create, int, varchar};

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

fn put(def: &TableDef, id: u64, name: &str) -> RowChange {
    let values = vec![Value::UInt(id), Value::text(name)];
    let row = def.layout().encode_to_vec(&values).unwrap();
    RowChange::Put { table: def.id, partition: key::partition_of_row(def, &values).unwrap(), row }
}

fn delete(def: &TableDef, id: u64) -> RowChange {
    let mut encoded = Vec::new();
    key::encode_key_values(def, &def.primary_key, &[Value::UInt(id)], &mut encoded).unwrap();
    let partition = key::partition_of_primary_key(def, &[Value::UInt(id)]).unwrap();
    RowChange::Delete { table: def.id, partition, key: encoded }
}

fn tables(catalog: &mut Catalog) -> Vec<TableDef> {
    ["accounts", "aliases", "greylist"]
        .iter()
        .map(|name| {
            let def = support::table(
                name,
                vec![column("id", int(true), false), column("name", varchar(300), true)],
                vec![0],
                vec![0],
                4,
            );
            let id = create(catalog, def, 1);
            catalog.table(id).unwrap().clone()
        })
        .collect()
}

/// Every row of the store, per table, sorted: what a backup at this moment must hold.
fn rows_now(store: &Store) -> BTreeMap<TableId, Vec<Vec<u8>>> {
    let mut out: BTreeMap<TableId, Vec<Vec<u8>>> = BTreeMap::new();
    for table in store.tables() {
        for partition in store.partitions(table) {
            out.entry(table).or_default().extend(store.partition_rows(table, partition).map(|(_, r)| r.to_vec()));
        }
    }
    for rows in out.values_mut() {
        rows.sort();
    }
    out.retain(|_, rows| !rows.is_empty());
    out
}

fn write_backup(root: &Path, capture: BackupCapture, blocks_so_far: Vec<Vec<u8>>, catalog: &Catalog) -> BackupControl {
    let mut file = BackupFile::create(&FsDisk, root, 1, NodeId(2)).unwrap();
    for block in &blocks_so_far {
        file.write(block).unwrap();
    }
    let (blocks, tables, records) = capture.finish().unwrap();
    for block in &blocks {
        file.write(block).unwrap();
    }
    let dir = file.dir().to_path_buf();
    let entry = file.finish().unwrap();
    let control = BackupControl {
        backup_id: 1,
        cluster_id: 7,
        node_id: NodeId(2),
        node_group: NodeGroupId(0),
        cut_index: 99,
        catalog: postcard::to_stdvec(catalog).unwrap(),
        tables,
        files: vec![entry],
        records,
        started_unix_ms: 1,
        completed_unix_ms: 2,
    };
    write_control(&FsDisk, &dir, &control).unwrap();
    control
}

fn read_back(root: &Path) -> BTreeMap<TableId, Vec<Vec<u8>>> {
    let dir = backup_dir(root, 1);
    let controls = find_controls(&FsDisk, &dir, 1).unwrap();
    assert_eq!(controls.len(), 1);
    let mut out: BTreeMap<TableId, Vec<Vec<u8>>> = BTreeMap::new();
    read_rows(&FsDisk, &dir, &controls[0], |table, row| {
        out.entry(table).or_default().push(row.to_vec());
        Ok(())
    })
    .unwrap();
    for rows in out.values_mut() {
        rows.sort();
    }
    out
}

#[test]
fn a_backup_holds_exactly_the_rows_at_its_cut_while_writes_go_on() {
    for seed in 1..=12u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut catalog = support::catalog();
        let defs = tables(&mut catalog);
        let mut store = Store::new(NodeGroupId(0));
        let initial: Vec<RowChange> =
            (0..600).map(|i| put(&defs[(i % 3) as usize], i, &format!("row-{i}-{}", "x".repeat((i % 40) as usize)))).collect();
        store.apply_write_set(&WriteSet { changes: initial }, &catalog).unwrap();
        let expected = rows_now(&store);

        let mut capture = BackupCapture::start(&store, &catalog, 4096);
        let mut blocks = Vec::new();
        let mut step = 0u64;
        while !capture.is_captured() {
            capture.capture(&store, 1500);
            blocks.extend(capture.take_blocks());
            // Writes between slices: updates, deletes, inserts that reuse freed slots, and now
            // and then a truncate.
            for _ in 0..rng.below(12) {
                let def = &defs[rng.below(3) as usize];
                let id = rng.below(800);
                let change = match rng.below(10) {
                    0..=3 => put(def, id, &format!("updated-{step}")),
                    4..=7 => delete(def, id),
                    8 => put(def, 1000 + step, "fresh"),
                    _ if rng.below(8) == 0 => RowChange::Truncate { table: def.id },
                    _ => put(def, id, "again"),
                };
                step += 1;
                let changes = vec![change];
                let touched = capture.before_apply(&store, &changes, &catalog);
                store.apply_write_set(&WriteSet { changes }, &catalog).unwrap();
                capture.after_apply(&store, touched);
                blocks.extend(capture.take_blocks());
            }
        }
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let control = write_backup(dir.path(), capture, blocks, &catalog);
        assert_eq!(read_back(dir.path()), expected, "seed {seed}: the backup differs from the cut");
        let counted: u64 = control.tables.iter().map(|t| t.rows).sum();
        assert_eq!(counted, expected.values().map(|r| r.len() as u64).sum::<u64>(), "seed {seed}: row counts at the cut");
    }
}

#[test]
fn damaged_or_truncated_backup_files_are_refused() {
    let mut catalog = support::catalog();
    let defs = tables(&mut catalog);
    let mut store = Store::new(NodeGroupId(0));
    let rows: Vec<RowChange> = (0..300).map(|i| put(&defs[0], i, &format!("name-{i}"))).collect();
    store.apply_write_set(&WriteSet { changes: rows }, &catalog).unwrap();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut capture = BackupCapture::start(&store, &catalog, 4096);
    let mut blocks = Vec::new();
    while !capture.is_captured() {
        capture.capture(&store, 1 << 20);
        blocks.extend(capture.take_blocks());
    }
    let control = write_backup(dir.path(), capture, blocks, &catalog);
    let data = backup_dir(dir.path(), 1).join(&control.files[0].name);
    let good = std::fs::read(&data).unwrap();
    let check = || read_rows(&FsDisk, &backup_dir(dir.path(), 1), &control, |_, _| Ok(()));
    assert_eq!(check().unwrap(), 300);
    for at in [40usize, good.len() / 2, good.len() - 3] {
        let mut bad = good.clone();
        bad[at] ^= 0x20;
        std::fs::write(&data, &bad).unwrap();
        let error = check().unwrap_err();
        assert!(error.is_damage(), "flip at {at}: {error}");
    }
    std::fs::write(&data, &good[..good.len() - 100]).unwrap();
    assert!(check().unwrap_err().is_damage());
    std::fs::write(&data, &good).unwrap();
    assert_eq!(check().unwrap(), 300);
    // A damaged control file is refused too.
    let ctl = backup_dir(dir.path(), 1).join(cairn_storage::backup::control_file_name(1, NodeId(2)));
    let mut bytes = std::fs::read(&ctl).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 1;
    std::fs::write(&ctl, &bytes).unwrap();
    assert!(find_controls(&FsDisk, &backup_dir(dir.path(), 1), 1).is_err());
    // And a second backup with the same id is refused.
    std::fs::write(&ctl, std::fs::read(&ctl).unwrap()).unwrap();
    assert!(BackupFile::create(&FsDisk, dir.path(), 1, NodeId(2)).is_err());
}
