//! Checkpoint and restore speed, printed with `--nocapture`; run in release for real numbers:
//! `cargo test --release -p cairn-storage --test checkpoint_timing -- --nocapture`
//! (1,000,000 rows in release, 50,000 in a debug build).

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_common::catalog::TableDef;
use cairn_common::ids::{NodeGroupId, NodeId};
use cairn_common::key;
use cairn_common::ops::{RowChange, WriteSet};
use cairn_common::types::{ColumnType, IntWidth};
use cairn_common::value::Value;
use cairn_storage::Store;
use cairn_storage::checkpoint::{
    Capture, CheckpointConfig, Cut, Disk, FsDisk, Identity, LocalCheckpoint, Step, Throttle, restore_newest,
    write_checkpoint,
};
use support::{column, create, int, varchar};

const IDENTITY: Identity = Identity { cluster_id: 7, node_id: NodeId(1), node_group: NodeGroupId(0) };

/// A mailbox-account-like table: about 80 bytes per packed row.
fn accounts_store(rows: u64) -> Store {
    let mut catalog = support::catalog();
    let bigint = ColumnType::Int { width: IntWidth::Big, unsigned: true, display: None };
    let def = support::table(
        "accounts",
        vec![
            column("id", bigint, false),
            column("email", varchar(64), false),
            column("domain", varchar(32), false),
            column("quota", int(true), true),
            column("active", int(false), true),
        ],
        vec![0],
        vec![0],
        8,
    );
    let id = create(&mut catalog, def, 1);
    let def: TableDef = catalog.table(id).unwrap().clone();
    let mut store = Store::new(NodeGroupId(0));
    for batch in 0..rows.div_ceil(1000) {
        let changes = (batch * 1000..((batch + 1) * 1000).min(rows))
            .map(|i| {
                let values = vec![
                    Value::UInt(i),
                    Value::text(format!("user{i:08}@mail{}.example.edu", i % 97)),
                    Value::text(format!("mail{}.example.edu", i % 97)),
                    Value::UInt(1 << 30),
                    Value::Int(1),
                ];
                let row = def.layout().encode_to_vec(&values).unwrap();
                RowChange::Put { table: def.id, partition: key::partition_of_row(&def, &values).unwrap(), row }
            })
            .collect();
        store.apply_write_set(&WriteSet { changes }, &catalog).unwrap();
    }
    store
}

/// A checksum over every (table, partition, slot, row) of a store.
fn fingerprint(store: &Store) -> u32 {
    let mut crc = 0u32;
    for t in store.tables() {
        for p in store.partitions(t) {
            for (slot, row) in store.partition_rows(t, p) {
                crc = crc32c::crc32c_append(crc, &t.0.to_le_bytes());
                crc = crc32c::crc32c_append(crc, &p.0.to_le_bytes());
                crc = crc32c::crc32c_append(crc, &slot.to_le_bytes());
                crc = crc32c::crc32c_append(crc, row);
            }
        }
    }
    crc
}

fn rate(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / elapsed.as_secs_f64()
}

#[test]
fn checkpoint_and_restore_timing() {
    let rows = if cfg!(debug_assertions) { 50_000 } else { 1_000_000 };
    let started = Instant::now();
    let store = accounts_store(rows);
    let memory = store.memory();
    println!(
        "store: {rows} rows, {:.1} MiB of packed rows, {:.1} MiB in memory, built in {:.2?}",
        memory.row_bytes as f64 / (1 << 20) as f64,
        memory.total_bytes() as f64 / (1 << 20) as f64,
        started.elapsed()
    );
    let config = CheckpointConfig::default();

    // The copy alone (CPU: records, blocks, checksums), no disk.
    let started = Instant::now();
    let mut capture = Capture::new(&config).unwrap();
    let mut bytes = 0u64;
    while !capture.capture(&store, config.slice_bytes).done {
        bytes += capture.take_blocks().iter().map(|b| b.bytes.len() as u64).sum::<u64>();
    }
    let captured = capture.finish(&store, Cut::default()).unwrap();
    bytes += captured.blocks.iter().map(|b| b.bytes.len() as u64).sum::<u64>();
    let elapsed = started.elapsed();
    println!(
        "capture only:   {:>7.1} MiB/s, {:>10.0} rows/s ({bytes} bytes in {elapsed:.2?}, 1 MiB slices take {:.2?} each)",
        rate(bytes, elapsed),
        rows as f64 / elapsed.as_secs_f64(),
        elapsed.mul_f64((1 << 20) as f64 / bytes as f64)
    );

    // The whole checkpoint to disk, unthrottled, fsyncs included.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let root = dir.path().join("lcp");
    let disk: Arc<dyn Disk> = Arc::new(FsDisk);
    let started = Instant::now();
    let completed =
        write_checkpoint(disk, &root, IDENTITY, &config, &store, Cut { applied_index: rows, ..Cut::default() })
            .unwrap();
    let elapsed = started.elapsed();
    let data_bytes = completed.manifest.data_bytes();
    println!(
        "write to disk:  {:>7.1} MiB/s, {:>10.0} rows/s ({data_bytes} bytes in {} files, {elapsed:.2?})",
        rate(data_bytes, elapsed),
        rows as f64 / elapsed.as_secs_f64(),
        completed.manifest.files.len()
    );

    let expected = fingerprint(&store);
    drop(store);
    for threads in [0, 1, 2] {
        let started = Instant::now();
        let restored = restore_newest(&FsDisk, &root, &IDENTITY, threads).unwrap().unwrap();
        let elapsed = started.elapsed();
        println!(
            "restore ({threads} extra threads): {:>7.1} MiB/s, {:>10.0} rows/s ({elapsed:.2?})",
            rate(data_bytes, elapsed),
            rows as f64 / elapsed.as_secs_f64()
        );
        assert_eq!(restored.stats.rows, rows);
        assert_eq!(fingerprint(&restored.store), expected);
    }
}

#[test]
fn a_throttled_checkpoint_takes_real_time_at_its_rate() {
    let store = accounts_store(if cfg!(debug_assertions) { 10_000 } else { 40_000 });
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let root: &Path = &dir.path().join("lcp");
    let bytes_per_second = 8 << 20;
    let burst = 256 << 10;
    let config = CheckpointConfig { slice_bytes: burst as usize, ..CheckpointConfig::default() };
    let mut checkpoint =
        LocalCheckpoint::start(Arc::new(FsDisk), root, IDENTITY, &config, Throttle::new(bytes_per_second, burst))
            .unwrap();
    let origin = Instant::now();
    let mut written = 0u64;
    loop {
        let now = origin.elapsed();
        match checkpoint.step(&store, now).unwrap() {
            Step::Wrote { bytes, next_at } => {
                written += bytes;
                std::thread::sleep(next_at.saturating_sub(origin.elapsed()));
            }
            Step::Wait { until, .. } => std::thread::sleep(until.saturating_sub(origin.elapsed())),
            Step::Captured => break,
        }
    }
    checkpoint.finish(&store, Cut::default()).unwrap();
    let elapsed = origin.elapsed();
    let floor = Duration::from_secs_f64(written.saturating_sub(burst) as f64 / bytes_per_second as f64);
    println!(
        "throttled at {} MiB/s: {written} bytes in {elapsed:.2?} ({:.1} MiB/s; the pacing allows no less than {floor:.2?})",
        bytes_per_second >> 20,
        rate(written, elapsed)
    );
    assert!(elapsed >= floor, "the writer went faster than its budget");
    assert!(elapsed < floor + Duration::from_secs(5), "the writer is far slower than its budget");
}
