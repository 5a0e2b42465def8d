//! Emulated chip memory: a sparse store of 4 KiB pages, the SpiNNaker memory map that decides
//! which store an address falls in, and the two allocators SC&MP runs for the host (the SDRAM
//! heap and the multicast-router entry allocator).
//!
//! A 1,200-board machine has 57,600 chips of 128 MiB SDRAM each, so nothing is allocated until
//! written: unwritten memory reads as zeros, a fill of whole pages is stored as one word per
//! page, and every data page counts against a global [`Budget`].

use std::collections::BTreeMap;

/// Bytes per page.
pub(crate) const PAGE: usize = 4096;
const PAGE_U32: u32 = PAGE as u32;

/// The global limit on materialised data pages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Data pages in use.
    pub used: usize,
    /// Most data pages allowed.
    pub limit: usize,
}

impl Budget {
    pub(crate) fn new(limit_bytes: usize) -> Budget {
        Budget {
            used: 0,
            limit: limit_bytes / PAGE,
        }
    }
    fn available(&self) -> usize {
        self.limit.saturating_sub(self.used)
    }
}

#[derive(Debug, Clone)]
enum Page {
    /// Every word holds this value (a fill).
    Uniform(u32),
    /// Real bytes.
    Data(Box<[u8; PAGE]>),
}

impl Page {
    fn byte(&self, off: usize) -> u8 {
        match self {
            Page::Uniform(v) => v.to_le_bytes()[off % 4],
            Page::Data(d) => d[off],
        }
    }
    fn materialise(&mut self) -> &mut [u8; PAGE] {
        if let Page::Uniform(v) = *self {
            let mut data = Box::new([0u8; PAGE]);
            for w in data.chunks_exact_mut(4) {
                w.copy_from_slice(&v.to_le_bytes());
            }
            *self = Page::Data(data);
        }
        match self {
            Page::Data(d) => d,
            Page::Uniform(_) => unreachable!("materialised above"),
        }
    }
}

/// A sparse byte store addressed by offset (u32), in 4 KiB pages.
#[derive(Debug, Clone, Default)]
pub(crate) struct PageStore {
    pages: BTreeMap<u32, Page>,
}

impl PageStore {
    /// Number of data pages (what counts against the budget).
    pub(crate) fn data_pages(&self) -> usize {
        self.pages.values().filter(|p| matches!(p, Page::Data(_))).count()
    }

    /// True if the page holding `offset` was ever written or filled.
    pub(crate) fn has_page(&self, offset: u32) -> bool {
        self.pages.contains_key(&(offset / PAGE_U32))
    }

    /// Number of pages of any kind (for memory estimates).
    pub(crate) fn page_entries(&self) -> usize {
        self.pages.len()
    }

    /// Reads `out.len()` bytes at `offset` (offsets wrap at 2³²; unwritten bytes are zero).
    pub(crate) fn read(&self, offset: u32, out: &mut [u8]) {
        let mut at = offset;
        let mut done = 0;
        while done < out.len() {
            let page = at / PAGE_U32;
            let off = (at % PAGE_U32) as usize;
            let n = (PAGE - off).min(out.len() - done);
            let dst = &mut out[done..done + n];
            match self.pages.get(&page) {
                None => dst.fill(0),
                Some(Page::Data(d)) => dst.copy_from_slice(&d[off..off + n]),
                Some(p @ Page::Uniform(_)) => {
                    for (i, b) in dst.iter_mut().enumerate() {
                        *b = p.byte(off + i);
                    }
                }
            }
            done += n;
            at = at.wrapping_add(n as u32);
        }
    }

    /// Number of new data pages writing `len` bytes at `offset` would need.
    fn new_pages_for(&self, offset: u32, len: usize) -> usize {
        if len == 0 {
            return 0;
        }
        let first = offset / PAGE_U32;
        let last = offset.wrapping_add(len as u32 - 1) / PAGE_U32;
        let mut n = 0;
        let mut p = first;
        loop {
            if !matches!(self.pages.get(&p), Some(Page::Data(_))) {
                n += 1;
            }
            if p == last {
                break;
            }
            p = p.wrapping_add(1);
        }
        n
    }

    /// Writes `data` at `offset`. Returns false (writing nothing) if the budget is exhausted.
    pub(crate) fn write(&mut self, offset: u32, data: &[u8], budget: &mut Budget) -> bool {
        if self.new_pages_for(offset, data.len()) > budget.available() {
            return false;
        }
        let mut at = offset;
        let mut done = 0;
        while done < data.len() {
            let page = at / PAGE_U32;
            let off = (at % PAGE_U32) as usize;
            let n = (PAGE - off).min(data.len() - done);
            let entry = self.pages.entry(page).or_insert(Page::Uniform(0));
            if !matches!(entry, Page::Data(_)) {
                budget.used += 1;
            }
            entry.materialise()[off..off + n].copy_from_slice(&data[done..done + n]);
            done += n;
            at = at.wrapping_add(n as u32);
        }
        true
    }

    /// Fills `len` bytes (a multiple of 4) at word-aligned `offset` with the word `value`.
    /// Returns false (filling nothing) if the budget is exhausted.
    pub(crate) fn fill(&mut self, offset: u32, len: u32, value: u32, budget: &mut Budget) -> bool {
        // Partial pages at either end need data pages; whole pages become Uniform.
        let end = offset as u64 + len as u64;
        let mut partial = Vec::new();
        let mut at = offset as u64;
        while at < end {
            let page = (at / PAGE as u64) as u32;
            let page_start = page as u64 * PAGE as u64;
            let page_end = page_start + PAGE as u64;
            let stop = end.min(page_end);
            if at == page_start && stop == page_end {
                partial.push((page, None));
            } else {
                partial.push((page, Some(((at - page_start) as usize, (stop - at) as usize))));
            }
            at = stop;
        }
        let need = partial
            .iter()
            .filter(|(p, part)| part.is_some() && !matches!(self.pages.get(p), Some(Page::Data(_))))
            .count();
        if need > budget.available() {
            return false;
        }
        let word = value.to_le_bytes();
        for (page, part) in partial {
            match part {
                None => {
                    let old = if value == 0 {
                        self.pages.remove(&page)
                    } else {
                        self.pages.insert(page, Page::Uniform(value))
                    };
                    if matches!(old, Some(Page::Data(_))) {
                        budget.used = budget.used.saturating_sub(1);
                    }
                }
                Some((off, n)) => {
                    let entry = self.pages.entry(page).or_insert(Page::Uniform(0));
                    if !matches!(entry, Page::Data(_)) {
                        budget.used += 1;
                    }
                    let bytes = entry.materialise();
                    for (i, b) in bytes[off..off + n].iter_mut().enumerate() {
                        *b = word[(off + i) % 4];
                    }
                }
            }
        }
        true
    }
}

/// Which store of a chip an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Area {
    /// SDRAM (0x6000_0000 or its alias 0x7000_0000), offset within the 128 MiB.
    Sdram(u32),
    /// SysRAM (0xE500_0000 or its alias 0xF500_0000), offset within the 32 KiB.
    Sysram(u32),
    /// Another mapped area (TCMs, router, system controller, Ethernet, ROM), by canonical
    /// address.
    Other(u32),
}

/// SDRAM size per chip.
pub(crate) const SDRAM_LEN: u32 = 128 << 20;
/// SysRAM size per chip.
pub(crate) const SYSRAM_LEN: u32 = 32 << 10;
/// Offset of the system variables in SysRAM.
pub(crate) const SV_OFFSET: u32 = 0x7F00;
/// Offset of the virtual-core table in SysRAM.
pub(crate) const VCPU_OFFSET: u32 = 0x7000;

/// The mapped areas other than SDRAM and SysRAM: (buffered base, unbuffered alias or 0, length).
const OTHER_AREAS: [(u32, u32, u32); 7] = [
    (0x0000_0000, 0, 0x8000),             // ITCM
    (0x0040_0000, 0, 0x1_0000),           // DTCM
    (0xE100_0000, 0xF100_0000, 0x2_0000), // router (P2P table at +0x10000)
    (0xE200_0000, 0xF200_0000, 0x100),    // system controller
    (0xE300_0000, 0xF300_0000, 0x100),    // watchdog
    (0xE400_0000, 0xF400_0000, 0x1_0000), // Ethernet
    (0xF600_0000, 0, 0x8000),             // ROM
];

/// The area holding `len` bytes at `addr`, or `None` if they are not all inside one mapped area
/// (SC&MP's monitor would take a data abort; the emulator answers RC_ARG instead).
pub(crate) fn area(addr: u32, len: u32) -> Option<Area> {
    let fits = |base: u32, size: u32| addr >= base && (addr - base) as u64 + len as u64 <= size as u64;
    for base in [0x6000_0000u32, 0x7000_0000] {
        if fits(base, SDRAM_LEN) {
            return Some(Area::Sdram(addr - base));
        }
    }
    for base in [0xE500_0000u32, 0xF500_0000] {
        if fits(base, SYSRAM_LEN) {
            return Some(Area::Sysram(addr - base));
        }
    }
    for (base, alias, size) in OTHER_AREAS {
        if fits(base, size) {
            return Some(Area::Other(addr));
        }
        if alias != 0 && fits(alias, size) {
            return Some(Area::Other(addr - alias + base));
        }
    }
    None
}

/// Size of the header SARK's heap puts in front of every block.
const BLOCK_HEADER: u32 = 8;
/// Size of the heap's own header at its base.
const HEAP_HEADER: u32 = 24;

/// One allocated heap block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    /// Bytes including the header.
    size: u32,
    app_id: u8,
    tag: u8,
}

/// SC&MP's SDRAM heap for one chip: first fit, 8-byte block headers, blocks coalesced on free,
/// heap tags unique per (app id, tag).
#[derive(Debug, Clone)]
pub(crate) struct Heap {
    /// Free blocks: start → size (header included).
    free: BTreeMap<u32, u32>,
    /// Allocated blocks by start (the pointer handed out is start + 8).
    used: BTreeMap<u32, Block>,
}

impl Heap {
    /// A fresh heap over `[base, end)`.
    pub(crate) fn new(base: u32, end: u32) -> Heap {
        let start = base.saturating_add(HEAP_HEADER);
        let mut free = BTreeMap::new();
        if end > start + BLOCK_HEADER {
            free.insert(start, end - start);
        }
        Heap {
            free,
            used: BTreeMap::new(),
        }
    }

    /// Allocates `size` bytes for `app_id` with heap tag `tag` (0 = none): the pointer, or 0
    /// if there is no room, `size` is 0 or the tag is taken.
    pub(crate) fn alloc(&mut self, size: u32, app_id: u8, tag: u8) -> u32 {
        if size == 0 || size > u32::MAX - 16 {
            return 0;
        }
        if tag != 0 && self.tag_pointer(app_id, tag) != 0 {
            return 0;
        }
        let need = size.div_ceil(4) * 4 + BLOCK_HEADER;
        let Some((&start, &len)) = self.free.iter().find(|(_, len)| **len >= need) else {
            return 0;
        };
        self.free.remove(&start);
        // Split unless the remainder could not even hold a header.
        let taken = if len - need > BLOCK_HEADER { need } else { len };
        if taken < len {
            self.free.insert(start + taken, len - taken);
        }
        self.used.insert(
            start,
            Block {
                size: taken,
                app_id,
                tag,
            },
        );
        start + BLOCK_HEADER
    }

    /// Frees the block whose pointer is `ptr`; returns false if there is none.
    pub(crate) fn free(&mut self, ptr: u32) -> bool {
        let start = ptr.wrapping_sub(BLOCK_HEADER);
        let Some(block) = self.used.remove(&start) else {
            return false;
        };
        self.release(start, block.size);
        true
    }

    fn release(&mut self, start: u32, size: u32) {
        let mut start = start;
        let mut size = size;
        if let Some((&prev, &plen)) = self.free.range(..start).next_back()
            && prev + plen == start
        {
            self.free.remove(&prev);
            start = prev;
            size += plen;
        }
        if let Some(&nlen) = self.free.get(&(start + size)) {
            self.free.remove(&(start + size));
            size += nlen;
        }
        self.free.insert(start, size);
    }

    /// Frees every block of `app_id`; returns how many.
    pub(crate) fn free_app(&mut self, app_id: u8) -> u32 {
        let blocks: Vec<(u32, u32)> = self
            .used
            .iter()
            .filter(|(_, b)| b.app_id == app_id)
            .map(|(s, b)| (*s, b.size))
            .collect();
        for &(s, size) in &blocks {
            self.used.remove(&s);
            self.release(s, size);
        }
        blocks.len() as u32
    }

    /// (free bytes, largest free block), as usable sizes (headers excluded).
    pub(crate) fn space(&self) -> (u32, u32) {
        let usable = |len: u32| len.saturating_sub(BLOCK_HEADER);
        let total = self.free.values().map(|&l| usable(l)).fold(0u32, u32::saturating_add);
        let largest = self.free.values().map(|&l| usable(l)).max().unwrap_or(0);
        (total, largest)
    }

    /// The pointer of `app_id`'s block with heap tag `tag`, or 0.
    pub(crate) fn tag_pointer(&self, app_id: u8, tag: u8) -> u32 {
        if tag == 0 {
            return 0;
        }
        self.used
            .iter()
            .find(|(_, b)| b.app_id == app_id && b.tag == tag)
            .map_or(0, |(s, _)| s + BLOCK_HEADER)
    }

    /// Number of allocated blocks.
    pub(crate) fn blocks(&self) -> usize {
        self.used.len()
    }
}

/// Number of multicast router entries per chip.
pub(crate) const ROUTER_ENTRIES: u16 = 1024;

/// SC&MP's router-entry allocator: entries 1..1024 (entry 0 is never handed out, so a reply of
/// 0 means failure), first fit, blocks owned by an app id.
#[derive(Debug, Clone)]
pub(crate) struct RangeAlloc {
    free: BTreeMap<u16, u16>,
    used: BTreeMap<u16, (u16, u8)>,
}

impl Default for RangeAlloc {
    fn default() -> RangeAlloc {
        let mut free = BTreeMap::new();
        free.insert(1, ROUTER_ENTRIES - 1);
        RangeAlloc {
            free,
            used: BTreeMap::new(),
        }
    }
}

impl RangeAlloc {
    /// Allocates `count` consecutive entries; the first, or 0.
    pub(crate) fn alloc(&mut self, count: u32, app_id: u8) -> u32 {
        let Ok(count) = u16::try_from(count) else {
            return 0;
        };
        if count == 0 {
            return 0;
        }
        let Some((&start, &len)) = self.free.iter().find(|(_, l)| **l >= count) else {
            return 0;
        };
        self.free.remove(&start);
        if len > count {
            self.free.insert(start + count, len - count);
        }
        self.used.insert(start, (count, app_id));
        u32::from(start)
    }

    /// Frees the block starting at `entry`; its (start, count) if there was one.
    pub(crate) fn free(&mut self, entry: u32) -> Option<(u16, u16)> {
        let start = u16::try_from(entry).ok()?;
        let (count, _) = self.used.remove(&start)?;
        self.release(start, count);
        Some((start, count))
    }

    fn release(&mut self, start: u16, count: u16) {
        let mut start = start;
        let mut count = count;
        if let Some((&prev, &plen)) = self.free.range(..start).next_back()
            && prev + plen == start
        {
            self.free.remove(&prev);
            start = prev;
            count += plen;
        }
        if let Some(&nlen) = self.free.get(&(start + count)) {
            self.free.remove(&(start + count));
            count += nlen;
        }
        self.free.insert(start, count);
    }

    /// Frees every block of `app_id`; the blocks freed as (start, count).
    pub(crate) fn free_app(&mut self, app_id: u8) -> Vec<(u16, u16)> {
        let blocks: Vec<(u16, u16)> = self
            .used
            .iter()
            .filter(|(_, (_, a))| *a == app_id)
            .map(|(s, (c, _))| (*s, *c))
            .collect();
        for &(s, c) in &blocks {
            self.used.remove(&s);
            self.release(s, c);
        }
        blocks
    }

    /// Largest free run of entries.
    pub(crate) fn largest_free(&self) -> u16 {
        self.free.values().copied().max().unwrap_or(0)
    }

    /// Total free entries.
    pub(crate) fn total_free(&self) -> u16 {
        self.free.values().copied().fold(0u16, u16::saturating_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn memory_map() {
        assert_eq!(area(0x6000_0000, 256), Some(Area::Sdram(0)));
        assert_eq!(area(0x7000_0010, 4), Some(Area::Sdram(0x10)));
        assert_eq!(area(0x67FF_FFFF, 1), Some(Area::Sdram(0x07FF_FFFF)));
        assert_eq!(area(0x67FF_FFFF, 2), None);
        assert_eq!(area(0xF500_7F00, 256), Some(Area::Sysram(0x7F00)));
        assert_eq!(area(0xE500_7F02, 2), Some(Area::Sysram(0x7F02)));
        assert_eq!(area(0xF100_0300, 64), Some(Area::Other(0xE100_0300)));
        assert_eq!(area(0x1234_5678, 4), None);
        assert_eq!(area(0x0000_7FFC, 8), None);
    }

    #[test]
    fn pages_are_sparse_and_exact() {
        let mut b = Budget::new(1 << 20);
        let mut s = PageStore::default();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 13) as u8).collect();
        assert!(s.write(4093, &data, &mut b));
        assert_eq!(b.used, s.data_pages());
        assert_eq!(s.data_pages(), 4);
        let mut out = vec![0u8; 10_004];
        s.read(4091, &mut out);
        assert_eq!(&out[..2], &[0, 0]);
        assert_eq!(&out[2..10_002], &data[..]);
        assert_eq!(&out[10_002..], &[0, 0]);
    }

    #[test]
    fn fill_whole_pages_costs_nothing() {
        let mut b = Budget::new(1 << 20);
        let mut s = PageStore::default();
        assert!(s.fill(0, 64 << 20, 0xDEAD_BEEF, &mut b));
        assert_eq!(b.used, 0);
        let mut out = [0u8; 8];
        s.read(12_345 * 4, &mut out);
        assert_eq!(out, [0xEF, 0xBE, 0xAD, 0xDE, 0xEF, 0xBE, 0xAD, 0xDE]);
        assert!(s.fill(4, 8, 0x0102_0304, &mut b));
        assert_eq!(b.used, 1);
        s.read(0, &mut out);
        assert_eq!(out, [0xEF, 0xBE, 0xAD, 0xDE, 4, 3, 2, 1]);
        // Zero-filling whole pages frees them.
        assert!(s.fill(0, 8192, 0, &mut b));
        assert_eq!(b.used, 0);
        assert_eq!(b.used, s.data_pages());
    }

    #[test]
    fn budget_refuses() {
        let mut b = Budget::new(2 * PAGE);
        let mut s = PageStore::default();
        assert!(s.write(0, &[1; 8192], &mut b));
        assert!(!s.write(8192, &[1], &mut b));
        assert!(s.write(10, &[2; 100], &mut b));
        assert_eq!(b.used, 2);
    }

    #[test]
    fn heap_alloc_free() {
        let mut h = Heap::new(0x6024_0000, 0x6780_0000);
        assert_eq!(h.space(), (123_469_792, 123_469_792));
        let a = h.alloc(1024, 66, 3);
        assert_eq!(a, 0x6024_0000 + 24 + 8);
        assert_eq!(h.alloc(16, 66, 3), 0, "tag taken");
        assert_eq!(h.tag_pointer(66, 3), a);
        let b = h.alloc(10, 30, 0);
        assert_eq!(b, a + 1024 + 8);
        assert_eq!(h.space().0, 123_469_792 - 1032 - 20);
        assert!(h.free(a));
        assert!(!h.free(a));
        assert_eq!(h.free_app(30), 1);
        assert_eq!(h.space(), (123_469_792, 123_469_792));
        assert_eq!(h.alloc(0, 1, 0), 0);
        assert_eq!(h.alloc(200 << 20, 1, 0), 0);
    }

    #[test]
    fn router_alloc() {
        let mut r = RangeAlloc::default();
        assert_eq!(r.largest_free(), 1023);
        assert_eq!(r.alloc(10, 30), 1);
        assert_eq!(r.alloc(5, 31), 11);
        assert_eq!(r.free(1), Some((1, 10)));
        assert_eq!(r.alloc(1024, 1), 0);
        assert_eq!(r.free_app(31), vec![(11, 5)]);
        assert_eq!(r.total_free(), 1023);
    }

    proptest! {
        #[test]
        fn store_matches_flat_model(ops in proptest::collection::vec(
            (0u32..40_000, proptest::collection::vec(any::<u8>(), 0..600), any::<bool>(), any::<u32>()), 1..40)) {
            let mut b = Budget::new(1 << 30);
            let mut s = PageStore::default();
            let mut flat = vec![0u8; 41_000];
            for (off, data, is_fill, value) in ops {
                if is_fill {
                    let off = off & !3;
                    let len = (data.len() as u32) & !3;
                    prop_assert!(s.fill(off, len, value, &mut b));
                    for i in 0..len as usize {
                        flat[off as usize + i] = value.to_le_bytes()[i % 4];
                    }
                } else {
                    prop_assert!(s.write(off, &data, &mut b));
                    flat[off as usize..off as usize + data.len()].copy_from_slice(&data);
                }
                prop_assert_eq!(b.used, s.data_pages());
            }
            let mut out = vec![0u8; flat.len()];
            s.read(0, &mut out);
            prop_assert_eq!(out, flat);
        }
    }
}
