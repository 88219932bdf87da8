//! Row memory: 32 KiB pages carved into fixed-size cells by size class, shared by every table.
//!
//! A packed row is stored once, in a cell of the smallest size class that holds it. Size classes
//! step by 8 bytes up to 256 bytes and then by eighths of each power of two up to 8 KiB, so a
//! cell wastes at most 7 bytes (small rows) or 12.5% (larger ones). Rows above 8 KiB (TEXT and
//! BLOB values stored inline) get an allocation of their exact size.
//!
//! Why not one heap allocation per row: the system allocator adds a header of 8 bytes per chunk
//! and rounds to 16, about 15 bytes per row on average, and a row pointer plus length would take
//! 16 more. Here a row costs its cell and nothing else; its [`RowHandle`] (8 bytes) says where
//! the cell is and how many bytes of it are used.
//!
//! Memory freed by DELETE goes back to the node, for any table (NDB keeps it per table until
//! OPTIMIZE TABLE): a freed cell is reused by the next row of its size class from any table, and
//! a page whose last cell is freed is released. Cells left scattered over many half-empty pages
//! are gathered by [`Arena::begin_evacuation`] and the caller's walk over its rows (see
//! `Store::compact`), which moves the rows of sparse pages into fuller ones.
//!
//! Invariants: a page holds cells of one class only; `live` counts its allocated cells; a page
//! with free space and not being evacuated is in its class's `partial` list exactly once; a free
//! cell inside the bump region holds the offset of the next free cell in its first two bytes.

/// Size of one page, as NDB counts DataMemory ("32K pages").
pub const PAGE_BYTES: usize = 32 * 1024;

/// Largest cell; longer rows get their own allocation.
pub const MAX_CELL_BYTES: usize = 8192;

/// Bytes the system allocator is assumed to add to each large-row allocation (header and
/// rounding), for accounting.
const LARGE_ALLOCATION_OVERHEAD: usize = 16;

/// Empty pages kept for reuse instead of being returned at once, to avoid churning the system
/// allocator when rows come and go at a page boundary. Kept pages are free for any table.
const SPARE_PAGES: usize = 4;

const NO_CELL: u16 = u16::MAX;
const NOT_LISTED: u32 = u32::MAX;

/// The cell sizes, ascending.
const CLASS_SIZES: [u16; 72] = {
    let mut sizes = [0u16; 72];
    let mut i = 0;
    while i < 32 {
        sizes[i] = (i as u16 + 1) * 8;
        i += 1;
    }
    let mut base = 256u16;
    while i < 72 {
        let step = base / 8;
        let mut k = 1;
        while k <= 8 {
            sizes[i] = base + step * k;
            i += 1;
            k += 1;
        }
        base *= 2;
    }
    sizes
};

/// The size class for a row of `len` bytes, or None if it needs a large allocation.
pub fn class_of(len: usize) -> Option<usize> {
    if len <= 256 {
        return Some(len.max(1).div_ceil(8) - 1);
    }
    if len > MAX_CELL_BYTES {
        return None;
    }
    Some(CLASS_SIZES.partition_point(|&size| (size as usize) < len))
}

/// The bytes a row of `len` bytes occupies in the arena.
pub fn cell_bytes(len: usize) -> usize {
    match class_of(len) {
        Some(class) => CLASS_SIZES[class] as usize,
        None => len + LARGE_ALLOCATION_OVERHEAD,
    }
}

/// Where a row lives: 8 bytes, never zero (so `Option<RowHandle>` is 8 bytes too).
///
/// Small rows: bit 63 clear, page id in bits 32..63, cell offset in bits 16..32, row length in
/// bits 0..16. Large rows: bit 63 set, large-row id in bits 0..32. A small row is never empty
/// (every row has at least its format byte), so the encoding is never zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowHandle(std::num::NonZeroU64);

const LARGE_BIT: u64 = 1 << 63;

impl RowHandle {
    fn small(page: u32, offset: u16, len: u16) -> RowHandle {
        debug_assert!(len > 0 && page < (1 << 31));
        let raw = ((page as u64) << 32) | ((offset as u64) << 16) | len as u64;
        RowHandle(std::num::NonZeroU64::new(raw).expect("a small row has a non-zero length"))
    }

    fn large(id: u32) -> RowHandle {
        RowHandle(std::num::NonZeroU64::new(LARGE_BIT | id as u64).expect("the large bit is set"))
    }

    fn is_large(self) -> bool {
        self.0.get() & LARGE_BIT != 0
    }

    fn page(self) -> u32 {
        (self.0.get() >> 32) as u32
    }

    fn offset(self) -> u16 {
        (self.0.get() >> 16) as u16
    }

    fn small_len(self) -> u16 {
        self.0.get() as u16
    }

    fn large_id(self) -> u32 {
        self.0.get() as u32
    }
}

struct Page {
    bytes: Box<[u8]>,
    class: u8,
    /// Allocated cells.
    live: u16,
    /// Head of the free-cell list (offsets below `bump`), or NO_CELL.
    free_head: u16,
    /// Offset of the first never-used cell.
    bump: u16,
    /// Position in the class's partial list, or NOT_LISTED.
    listed_at: u32,
    /// Set while the page is being emptied by compaction: no new cells go into it.
    evacuating: bool,
}

impl Page {
    fn cell_size(&self) -> usize {
        CLASS_SIZES[self.class as usize] as usize
    }

    fn capacity(&self) -> usize {
        PAGE_BYTES / self.cell_size()
    }

    fn has_room(&self) -> bool {
        (self.live as usize) < self.capacity()
    }
}

/// Counters describing the arena, for memory reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArenaStats {
    /// Pages holding at least one row.
    pub pages: u64,
    /// Empty pages kept for reuse.
    pub spare_pages: u64,
    /// Rows stored in their own allocation, and their bytes (with allocator overhead).
    pub large_rows: u64,
    pub large_bytes: u64,
    /// Bytes of allocated cells (what rows occupy, rounded up to their class).
    pub cell_bytes: u64,
    /// Bytes of the arena's own bookkeeping (page table, lists).
    pub bookkeeping_bytes: u64,
}

impl ArenaStats {
    /// Everything the arena holds from the system allocator.
    pub fn total_bytes(&self) -> u64 {
        (self.pages + self.spare_pages) * PAGE_BYTES as u64 + self.large_bytes + self.bookkeeping_bytes
    }
}

/// The row memory of one data node.
#[derive(Default)]
pub struct Arena {
    pages: Vec<Option<Page>>,
    free_page_ids: Vec<u32>,
    /// Per class: pages with free cells, not being evacuated.
    partial: Vec<Vec<u32>>,
    spare: Vec<Box<[u8]>>,
    large: Vec<Option<Box<[u8]>>>,
    free_large_ids: Vec<u32>,
    live_pages: u64,
    large_rows: u64,
    large_bytes: u64,
    cell_bytes: u64,
}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena").field("stats", &self.stats()).finish()
    }
}

impl Arena {
    pub fn new() -> Arena {
        Arena { partial: vec![Vec::new(); CLASS_SIZES.len()], ..Default::default() }
    }

    /// Stores a copy of `row` and returns where it is.
    pub fn alloc(&mut self, row: &[u8]) -> RowHandle {
        assert!(!row.is_empty(), "a packed row always has its format byte");
        let Some(class) = class_of(row.len()) else {
            return self.alloc_large(row);
        };
        let page_id = match self.partial[class].last() {
            Some(&id) => id,
            None => self.new_page(class),
        };
        let page = self.pages[page_id as usize].as_mut().expect("a listed page exists");
        let offset = if page.free_head != NO_CELL {
            let at = page.free_head as usize;
            page.free_head = u16::from_le_bytes([page.bytes[at], page.bytes[at + 1]]);
            at as u16
        } else {
            let at = page.bump;
            page.bump += page.cell_size() as u16;
            at
        };
        page.live += 1;
        let start = offset as usize;
        page.bytes[start..start + row.len()].copy_from_slice(row);
        let full = !page.has_room();
        let cell = page.cell_size();
        if full {
            self.unlist(page_id);
        }
        self.cell_bytes += cell as u64;
        RowHandle::small(page_id, offset, row.len() as u16)
    }

    fn alloc_large(&mut self, row: &[u8]) -> RowHandle {
        let boxed: Box<[u8]> = row.into();
        self.large_rows += 1;
        self.large_bytes += (row.len() + LARGE_ALLOCATION_OVERHEAD) as u64;
        self.cell_bytes += (row.len() + LARGE_ALLOCATION_OVERHEAD) as u64;
        match self.free_large_ids.pop() {
            Some(id) => {
                self.large[id as usize] = Some(boxed);
                RowHandle::large(id)
            }
            None => {
                let id = u32::try_from(self.large.len()).expect("fewer than 2^32 large rows");
                self.large.push(Some(boxed));
                RowHandle::large(id)
            }
        }
    }

    fn new_page(&mut self, class: usize) -> u32 {
        let bytes = self.spare.pop().unwrap_or_else(|| vec![0u8; PAGE_BYTES].into_boxed_slice());
        let page = Page {
            bytes,
            class: class as u8,
            live: 0,
            free_head: NO_CELL,
            bump: 0,
            listed_at: NOT_LISTED,
            evacuating: false,
        };
        let id = match self.free_page_ids.pop() {
            Some(id) => {
                self.pages[id as usize] = Some(page);
                id
            }
            None => {
                let id = self.pages.len() as u32;
                assert!(id < (1 << 31), "row memory beyond 64 TiB");
                self.pages.push(Some(page));
                id
            }
        };
        self.live_pages += 1;
        self.list(id);
        id
    }

    fn list(&mut self, page_id: u32) {
        let page = self.pages[page_id as usize].as_mut().expect("page exists");
        debug_assert_eq!(page.listed_at, NOT_LISTED);
        let list = &mut self.partial[page.class as usize];
        page.listed_at = list.len() as u32;
        list.push(page_id);
    }

    fn unlist(&mut self, page_id: u32) {
        let page = self.pages[page_id as usize].as_mut().expect("page exists");
        let at = page.listed_at;
        if at == NOT_LISTED {
            return;
        }
        page.listed_at = NOT_LISTED;
        let class = page.class as usize;
        let list = &mut self.partial[class];
        list.swap_remove(at as usize);
        if let Some(&moved) = list.get(at as usize) {
            self.pages[moved as usize].as_mut().expect("listed page exists").listed_at = at;
        }
    }

    /// The row bytes behind a handle.
    pub fn get(&self, handle: RowHandle) -> &[u8] {
        if handle.is_large() {
            return self.large[handle.large_id() as usize].as_deref().expect("a live large row");
        }
        let page = self.pages[handle.page() as usize].as_ref().expect("a live page");
        let start = handle.offset() as usize;
        &page.bytes[start..start + handle.small_len() as usize]
    }

    /// Frees the cell behind a handle. The handle must not be used again.
    pub fn free(&mut self, handle: RowHandle) {
        if handle.is_large() {
            let row = self.large[handle.large_id() as usize].take().expect("a live large row");
            self.large_rows -= 1;
            self.large_bytes -= (row.len() + LARGE_ALLOCATION_OVERHEAD) as u64;
            self.cell_bytes -= (row.len() + LARGE_ALLOCATION_OVERHEAD) as u64;
            self.free_large_ids.push(handle.large_id());
            return;
        }
        let page_id = handle.page();
        let page = self.pages[page_id as usize].as_mut().expect("a live page");
        let at = handle.offset() as usize;
        page.bytes[at..at + 2].copy_from_slice(&page.free_head.to_le_bytes());
        page.free_head = handle.offset();
        let was_full = !page.has_room();
        page.live -= 1;
        self.cell_bytes -= page.cell_size() as u64;
        if page.live == 0 {
            self.release_page(page_id);
        } else if was_full && !page.evacuating {
            self.list(page_id);
        }
    }

    fn release_page(&mut self, page_id: u32) {
        self.unlist(page_id);
        let page = self.pages[page_id as usize].take().expect("a live page");
        self.live_pages -= 1;
        if self.spare.len() < SPARE_PAGES {
            self.spare.push(page.bytes);
        }
        // The page table entry stays, for the next page: it costs a few dozen bytes per 32 KiB
        // page at the table's high-water mark, until the arena is empty again.
        self.free_page_ids.push(page_id);
        if self.live_pages == 0 {
            self.pages = Vec::new();
            self.free_page_ids = Vec::new();
        }
    }

    /// Replaces the row behind `handle` with `row`, in place when it fits the same cell.
    pub fn replace(&mut self, handle: RowHandle, row: &[u8]) -> RowHandle {
        if !handle.is_large() && class_of(row.len()).is_some() {
            let page = self.pages[handle.page() as usize].as_mut().expect("a live page");
            if class_of(row.len()) == Some(page.class as usize) && !page.evacuating {
                let start = handle.offset() as usize;
                page.bytes[start..start + row.len()].copy_from_slice(row);
                return RowHandle::small(handle.page(), handle.offset(), row.len() as u16);
            }
        }
        let new = self.alloc(row);
        self.free(handle);
        new
    }

    /// Marks pages of each class whose cells are less than `max_fill` (0..1) used as being
    /// evacuated, when the class has more than one page with free cells. New rows stop going into
    /// them; the caller then passes every row handle through [`Arena::relocate`] and finally
    /// calls [`Arena::end_evacuation`]. Returns the number of pages marked.
    pub fn begin_evacuation(&mut self, max_fill: f64) -> usize {
        let mut marked = 0;
        for class in 0..CLASS_SIZES.len() {
            if self.partial[class].len() < 2 {
                continue;
            }
            let live = |id: u32| self.pages[id as usize].as_ref().expect("listed page exists").live;
            let mut candidates: Vec<u32> = self.partial[class]
                .iter()
                .copied()
                .filter(|&id| {
                    let page = self.pages[id as usize].as_ref().expect("listed page exists");
                    (page.live as f64) < max_fill * page.capacity() as f64
                })
                .collect();
            candidates.sort_by_key(|&id| std::cmp::Reverse(live(id)));
            // Keep at least one partial page of the class (the fullest) as a destination.
            let keep_one = candidates.len() == self.partial[class].len();
            for &id in candidates.iter().skip(usize::from(keep_one)) {
                self.unlist(id);
                self.pages[id as usize].as_mut().expect("page exists").evacuating = true;
                marked += 1;
            }
        }
        marked
    }

    /// Moves the row to another cell if its page is being evacuated; returns its handle.
    pub fn relocate(&mut self, handle: RowHandle) -> RowHandle {
        if handle.is_large() {
            return handle;
        }
        let evacuating = self.pages[handle.page() as usize].as_ref().is_some_and(|p| p.evacuating);
        if !evacuating {
            return handle;
        }
        let row = self.get(handle).to_vec();
        let new = self.alloc(&row);
        self.free(handle);
        new
    }

    /// Ends an evacuation: pages still holding rows (if the caller did not relocate every row)
    /// take new rows again.
    pub fn end_evacuation(&mut self) {
        for id in 0..self.pages.len() as u32 {
            let Some(page) = self.pages[id as usize].as_mut() else { continue };
            if page.evacuating {
                page.evacuating = false;
                if page.has_room() {
                    self.list(id);
                }
            }
        }
    }

    /// Whether a row of `len` bytes fits a free cell of a page the arena already has (large
    /// rows never do).
    pub fn has_room_for(&self, len: usize) -> bool {
        match class_of(len) {
            Some(class) => !self.partial[class].is_empty(),
            None => false,
        }
    }

    /// Empty pages kept for reuse: new pages that cost no new memory.
    pub fn spare_pages(&self) -> usize {
        self.spare.len()
    }

    /// Returns the spare pages to the system allocator.
    pub fn release_spare(&mut self) {
        self.spare.clear();
        self.spare.shrink_to_fit();
    }

    pub fn stats(&self) -> ArenaStats {
        let bookkeeping = self.pages.capacity() * std::mem::size_of::<Option<Page>>()
            + self.free_page_ids.capacity() * 4
            + self.partial.iter().map(|l| l.capacity() * 4).sum::<usize>()
            + self.large.capacity() * std::mem::size_of::<Option<Box<[u8]>>>()
            + self.free_large_ids.capacity() * 4;
        ArenaStats {
            pages: self.live_pages,
            spare_pages: self.spare.len() as u64,
            large_rows: self.large_rows,
            large_bytes: self.large_bytes,
            cell_bytes: self.cell_bytes,
            bookkeeping_bytes: bookkeeping as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_ascending_and_bounded() {
        for w in CLASS_SIZES.windows(2) {
            assert!(w[0] < w[1]);
        }
        assert_eq!(CLASS_SIZES[0], 8);
        assert_eq!(*CLASS_SIZES.last().unwrap() as usize, MAX_CELL_BYTES);
        for len in 1..=MAX_CELL_BYTES {
            let class = class_of(len).unwrap();
            let size = CLASS_SIZES[class] as usize;
            assert!(size >= len, "{len}");
            assert!(class == 0 || (CLASS_SIZES[class - 1] as usize) < len, "{len} fits a smaller class");
            assert!(size - len < 8 || (size - len) * 8 <= len, "waste for {len}: {size}");
        }
        assert_eq!(class_of(MAX_CELL_BYTES + 1), None);
    }

    #[test]
    fn alloc_get_free_reuse() {
        let mut arena = Arena::new();
        let a = arena.alloc(b"hello");
        let b = arena.alloc(b"world!!");
        let big = vec![7u8; 10_000];
        let c = arena.alloc(&big);
        assert_eq!(arena.get(a), b"hello");
        assert_eq!(arena.get(b), b"world!!");
        assert_eq!(arena.get(c), &big[..]);
        assert_eq!(arena.stats().pages, 1);
        assert_eq!(arena.stats().large_rows, 1);
        arena.free(a);
        let d = arena.alloc(b"again");
        assert_eq!(d.offset(), a.offset(), "the freed cell is reused");
        arena.free(b);
        arena.free(d);
        arena.free(c);
        let stats = arena.stats();
        assert_eq!((stats.pages, stats.large_rows, stats.cell_bytes), (0, 0, 0));
    }

    #[test]
    fn replace_in_place_or_moves() {
        let mut arena = Arena::new();
        let a = arena.alloc(b"12345");
        let same = arena.replace(a, b"1234567");
        assert_eq!(same.offset(), a.offset());
        assert_eq!(arena.get(same), b"1234567");
        let moved = arena.replace(same, &[1u8; 100]);
        assert_eq!(arena.get(moved), &[1u8; 100][..]);
        assert_eq!(arena.stats().cell_bytes, 104);
    }

    #[test]
    fn full_pages_leave_and_rejoin_the_partial_list() {
        let mut arena = Arena::new();
        let per_page = PAGE_BYTES / 16;
        let handles: Vec<RowHandle> = (0..per_page * 3).map(|i| arena.alloc(&(i as u128).to_le_bytes()[..])).collect();
        assert_eq!(arena.stats().pages, 3);
        for (i, h) in handles.iter().enumerate() {
            assert_eq!(arena.get(*h), &(i as u128).to_le_bytes()[..]);
        }
        // Free every row of the first page: it is released, the others stay.
        for h in handles.iter().filter(|h| h.page() == handles[0].page()) {
            arena.free(*h);
        }
        assert_eq!(arena.stats().pages, 2);
        for h in handles.iter().filter(|h| h.page() != handles[0].page()) {
            arena.free(*h);
        }
        assert_eq!(arena.stats().pages, 0);
        assert!(arena.stats().spare_pages > 0);
        arena.release_spare();
        assert_eq!(arena.stats().total_bytes(), arena.stats().bookkeeping_bytes);
    }

    #[test]
    fn evacuation_empties_sparse_pages() {
        let mut arena = Arena::new();
        let per_page = PAGE_BYTES / 32;
        let mut handles: Vec<Option<RowHandle>> =
            (0..per_page * 4).map(|i| Some(arena.alloc(&[i as u8; 30]))).collect();
        // Keep one row in eight: four sparse pages.
        for (i, h) in handles.iter_mut().enumerate() {
            if i % 8 != 0 {
                arena.free(h.take().unwrap());
            }
        }
        assert_eq!(arena.stats().pages, 4);
        assert_eq!(arena.begin_evacuation(0.5), 3);
        for (i, h) in handles.iter_mut().enumerate() {
            if let Some(handle) = h {
                *handle = arena.relocate(*handle);
                assert_eq!(arena.get(*handle), &[i as u8; 30][..]);
            }
        }
        arena.end_evacuation();
        assert_eq!(arena.stats().pages, 1, "every kept row fits one page");
    }
}
