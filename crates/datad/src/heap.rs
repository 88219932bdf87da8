//! Giving freed heap memory back to the system.
//!
//! A data node's store lives in its own 32 KiB pages (`cairn_storage::arena`), but everything
//! around it (decoded requests and write sets, Raft messages, log entries, checkpoint slices) is
//! ordinary heap memory that is freed soon after use. glibc's malloc keeps such freed memory in
//! its arenas and returns only a free tail of the main heap to the system on its own, so after a
//! bulk load a data node's resident memory stays well above what it holds: on the CalMail data set
//! (1.5M rows, docs/performance.md) the leader stayed at 155 MiB for 111 MiB of store, and
//! `malloc_trim(0)` brought it to 135 MiB without touching a single live allocation.
//!
//! [`release_free_memory`] asks malloc to return every whole free page of every arena
//! (`malloc_trim(0)`, glibc 2.8 and later: free pages inside the heap are released too, not only
//! the top). It is called after each local checkpoint, when the log behind it has just been
//! truncated and bursts of writes have passed, so its cost (a walk over the arenas' free lists,
//! milliseconds) is paid once per checkpoint. Live memory is never moved or freed by it.
//!
//! Left out: other allocators and C libraries (musl, macOS) have no such call; there the function
//! does nothing.

/// Returns free heap memory to the system; true if malloc released any.
pub fn release_free_memory() -> bool {
    trim()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() -> bool {
    // SAFETY: malloc_trim only inspects and releases memory malloc itself holds free; it takes
    // malloc's own locks, may be called from any thread at any time, and changes no live block.
    unsafe { libc::malloc_trim(0) != 0 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}
