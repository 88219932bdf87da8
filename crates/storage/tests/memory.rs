//! Memory per row for the CalMail account shape:
//! `(id INT UNSIGNED PK, domain_id INT UNSIGNED, localpart VARCHAR(64), host VARCHAR(64),
//! state VARCHAR(16))` with realistic short values, in 8 partitions of one node group.
//!
//! A counting global allocator measures what the store really asks of the heap; the test checks
//! the store's own accounting against it and prints bytes per row. It builds 1,000,000 rows in
//! release builds and 200,000 in debug builds (to stay within seconds) and extrapolates:
//! `cargo test -p cairn-storage --release --test memory -- --nocapture`.
//!
//! The budget: 1.5M rows in under 150 MiB per replica, index included, is 104 bytes per row.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use cairn_common::ids::{NodeGroupId, PartitionId};
use cairn_common::ops::RowChange;
use cairn_common::value::Value;
use cairn_storage::Store;

/// The system allocator, counting live bytes and allocations.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_ALLOCATIONS: AtomicIsize = AtomicIsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed) + layout.size() as isize;
        LIVE_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        PEAK_BYTES.fetch_max(now.max(0) as usize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator, with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        LIVE_ALLOCATIONS.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator, with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let delta = new_size as isize - layout.size() as isize;
        let now = LIVE_BYTES.fetch_add(delta, Ordering::Relaxed) + delta;
        PEAK_BYTES.fetch_max(now.max(0) as usize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator, with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const FIRST_NAMES: [&str; 16] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar", "peggy",
    "trent", "victor", "wendy",
];
const HOSTS: [&str; 6] =
    ["berkeley.edu", "calmail.berkeley.edu", "eecs.berkeley.edu", "law.berkeley.edu", "ucop.edu", "lists.berkeley.edu"];
const STATES: [&str; 3] = ["active", "active", "disabled"];

/// Glibc malloc's cost of one allocation of `size` bytes: an 8-byte header, rounded up to 16,
/// at least 32 (for the estimate of allocator overhead).
fn glibc_chunk(size: usize) -> usize {
    (size + 8).div_ceil(16).max(2) * 16
}

#[test]
fn bytes_per_row_for_the_account_table() {
    let rows: u64 = if cfg!(debug_assertions) { 200_000 } else { 1_000_000 };
    let mut catalog = support::catalog();
    let def = support::table(
        "account",
        vec![
            support::column("id", support::int(true), false),
            support::column("domain_id", support::int(true), false),
            support::column("localpart", support::varchar(64), false),
            support::column("host", support::varchar(64), false),
            support::column("state", support::varchar(16), false),
        ],
        vec![0],
        vec![0],
        8,
    );
    let id = support::create(&mut catalog, def, 1);
    let def = catalog.table(id).unwrap().clone();
    let layout = def.layout();
    let schema = cairn_storage::schema::TableSchema::new(&def).unwrap();

    // Encode the rows before measuring, so that only the store's memory is counted.
    let mut changes = Vec::with_capacity(rows as usize);
    let mut row_bytes = 0u64;
    for i in 0..rows {
        let first = FIRST_NAMES[(i % 16) as usize];
        let localpart = format!("{first}{}", i / 16 % 10_000);
        let values = [
            Value::UInt(i + 1),
            Value::UInt(i % 500 + 1),
            Value::text(localpart),
            Value::text(HOSTS[(i % 6) as usize]),
            Value::text(STATES[(i % 3) as usize]),
        ];
        let row = layout.encode_to_vec(&values).unwrap();
        row_bytes += row.len() as u64;
        let key = schema.primary_key_vec(&row).unwrap();
        let partition: PartitionId = schema.partition_of_row(&row, &key).unwrap();
        changes.push(RowChange::Put { table: id, partition, row });
    }

    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let allocations_before = LIVE_ALLOCATIONS.load(Ordering::Relaxed);
    let mut store = Store::new(NodeGroupId(0));
    let started = std::time::Instant::now();
    for change in &changes {
        store.apply(change, &catalog).unwrap();
    }
    let elapsed = started.elapsed();
    let heap = (LIVE_BYTES.load(Ordering::Relaxed) - before).max(0) as u64;
    let allocations = (LIVE_ALLOCATIONS.load(Ordering::Relaxed) - allocations_before).max(0) as u64;
    drop(changes);
    let before = LIVE_BYTES.load(Ordering::Relaxed) - heap as isize;
    let memory = store.memory();
    let accounted = memory.total_bytes();

    // Allocator overhead: every allocation the store holds costs a glibc header; the pages and
    // the directory chunks are the bulk, the index tables are few and large (mmap'd, rounded to
    // 4 KiB pages).
    let pages = memory.page_bytes / 32_768;
    let chunk_allocations = allocations.saturating_sub(pages);
    let overhead = pages * (glibc_chunk(32_768) - 32_768) as u64 + chunk_allocations * 16;

    let per_row = |bytes: u64| bytes as f64 / rows as f64;
    println!(
        "rows: {rows} (build: {}, {:.0} ns per apply)",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        elapsed.as_nanos() as f64 / rows as f64
    );
    println!("packed row bytes:        {:7.1} per row", per_row(row_bytes));
    println!("arena cells:             {:7.1} per row", per_row(memory.cell_bytes));
    println!("arena pages:             {:7.1} per row ({} pages)", per_row(memory.page_bytes), pages);
    println!("hash index:              {:7.1} per row", per_row(memory.index_bytes));
    println!("slot directory:          {:7.1} per row", per_row(memory.directory_bytes));
    println!("store accounting total:  {:7.1} per row", per_row(accounted));
    println!("heap measured:           {:7.1} per row ({allocations} live allocations)", per_row(heap));
    println!("allocator overhead est.: {:7.1} per row", per_row(overhead));
    println!(
        "1.5M rows: {:.1} MiB measured + {:.1} MiB allocator overhead (budget 150 MiB)",
        per_row(heap) * 1.5e6 / 1048576.0,
        per_row(overhead) * 1.5e6 / 1048576.0
    );

    assert_eq!(memory.rows, rows);
    let measured = heap as f64;
    assert!(
        (accounted as f64 - measured).abs() / measured < 0.05,
        "the store accounts {accounted} bytes, the heap holds {heap}"
    );
    assert!(per_row(heap + overhead) < 104.0, "over the 150 MiB budget for 1.5M rows");

    // Deleting every row gives the memory back.
    for i in 0..rows {
        let values = [Value::UInt(i + 1)];
        let mut key = Vec::new();
        cairn_common::key::encode_key_values(&def, &def.primary_key, &values, &mut key).unwrap();
        let partition = cairn_common::key::partition_of_encoded(&key, def.partition_count());
        store.apply(&RowChange::Delete { table: id, partition, key }, &catalog).unwrap();
    }
    store.compact(0.5);
    let left = (LIVE_BYTES.load(Ordering::Relaxed) - before).max(0) as u64;
    println!("after deleting every row: {left} bytes held");
    assert!(left < 16 * 1024, "{left} bytes still held after deleting every row");
    assert_eq!(store.memory().rows, 0);
}
