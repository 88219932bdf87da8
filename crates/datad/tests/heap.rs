//! `release_free_memory` gives freed heap back to the system and leaves live memory intact.
//!
//! Its own test binary, so that no other test allocates while resident memory is measured.

/// Resident pages of this process, in bytes (Linux: /proc/self/statm).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux has /proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|field| field.parse().ok()).expect("statm's second field");
    pages * 4096
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn freed_heap_goes_back_and_live_blocks_keep_their_bytes() {
    // 64 MiB in 16 KiB blocks (below malloc's mmap threshold, so they come from the heap); keep
    // one block in 64, and the last one, so the freed memory lies inside the heap, not at its
    // top, where malloc would give it back on its own.
    const BLOCK: usize = 16 * 1024;
    const BLOCKS: usize = 4096;
    let mut blocks: Vec<Option<Vec<u8>>> = (0..BLOCKS).map(|index| Some(vec![(index % 251) as u8; BLOCK])).collect();
    for (index, block) in blocks.iter_mut().enumerate() {
        if index % 64 != 0 && index != BLOCKS - 1 {
            *block = None;
        }
    }
    let before = resident_bytes();
    cairn_datad::heap::release_free_memory();
    let after = resident_bytes();
    let freed = (BLOCKS - BLOCKS / 64 - 1) * BLOCK;
    assert!(
        before.saturating_sub(after) >= (freed / 2) as u64,
        "resident memory went from {before} to {after} bytes with {freed} bytes free in the heap"
    );
    for (index, block) in blocks.iter().enumerate() {
        if let Some(block) = block {
            assert!(block.iter().all(|byte| *byte == (index % 251) as u8), "block {index} changed");
        }
    }
    // The heap still works.
    let again = vec![7u8; 8 * BLOCK];
    assert_eq!(again.iter().map(|byte| u64::from(*byte)).sum::<u64>(), 7 * 8 * BLOCK as u64);
}
