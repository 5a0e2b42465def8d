//! One booted chip as SC&MP sees it: 18 cores with their `cpu_state` and app id, sparse memory
//! (SDRAM, SysRAM and the other mapped areas), the SDRAM heap, the multicast router and its
//! entry allocator.
//!
//! Chip state exists only for chips the host has touched: a booted board starts with none and
//! creates a [`ChipState`] on the first request that changes something. Reading memory of an
//! untouched chip sees a fresh chip.
//!
//! The system variables (`sv`, SysRAM 0x7F00) and the virtual-core table (`vcpu_t`, SysRAM
//! 0x7000) are synthesised from the chip's state: fields SC&MP keeps up to date (P2P address and
//! dimensions, clock, core states…) always read as the current value, the rest reads as written
//! by the host or, until written, as SC&MP would have set it at boot.

use crate::memory::{Area, Budget, Heap, PAGE, PageStore, RangeAlloc, SV_OFFSET, VCPU_OFFSET};
use std::collections::BTreeMap;

/// Cores per chip (core 0 runs SC&MP).
pub(crate) const NUM_CORES: usize = 18;

/// `cpu_state` values (spinnman `CPUState`).
pub(crate) mod state {
    pub const DEAD: u8 = 0;
    pub const READY: u8 = 5;
    pub const RUNNING: u8 = 7;
    pub const SYNC0: u8 = 8;
    pub const SYNC1: u8 = 9;
    pub const PAUSED: u8 = 10;
    pub const FINISHED: u8 = 11;
    pub const IDLE: u8 = 15;
}

/// Signal numbers (sark.h `SIG_*`).
pub(crate) mod signal {
    pub const STOP: u8 = 2;
    pub const START: u8 = 3;
    pub const SYNC0: u8 = 4;
    pub const SYNC1: u8 = 5;
    pub const PAUSE: u8 = 6;
    pub const CONT: u8 = 7;
    pub const EXIT: u8 = 8;
}

/// The physical core running virtual core `v` (SC&MP runs on physical core 1).
pub(crate) const fn physical_core(v: usize) -> u8 {
    match v {
        0 => 1,
        1 => 0,
        v => v as u8,
    }
}

/// One core's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Core {
    pub state: u8,
    pub app_id: u8,
}

/// One multicast routing entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RouterEntry {
    pub route: u32,
    pub key: u32,
    pub mask: u32,
    pub app_id: u8,
}

/// Everything the system variables of a chip depend on besides the chip itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SvContext<'a> {
    /// This chip's P2P coordinates.
    pub chip: (u32, u32),
    /// P2P dimensions of the booted machine.
    pub dims: (u32, u32),
    /// The nearest Ethernet chip (this board's).
    pub eth: (u32, u32),
    /// The board's IP if this is its Ethernet chip.
    pub ip: Option<[u8; 4]>,
    /// Chips in the booted machine.
    pub chips_active: u32,
    /// Milliseconds since SC&MP started.
    pub since_boot_ms: u64,
    /// The first 128 bytes of sv as the host patched them into the boot image.
    pub patch: &'a [u8; 128],
    /// SDRAM heap base and end (`sdram_base`, `sdram_sys`).
    pub heap: (u32, u32),
}

/// A chip's state.
#[derive(Debug, Clone)]
pub(crate) struct ChipState {
    pub cores: [Core; NUM_CORES],
    pub sdram: PageStore,
    pub sysram: PageStore,
    pub other: PageStore,
    pub heap: Option<Box<Heap>>,
    pub rtr_alloc: Option<Box<RangeAlloc>>,
    pub router: BTreeMap<u16, RouterEntry>,
    pub fixed_route: u32,
    pub leds: u32,
}

impl Default for ChipState {
    fn default() -> ChipState {
        let mut cores = [Core {
            state: state::IDLE,
            app_id: 0,
        }; NUM_CORES];
        cores[0].state = state::RUNNING;
        ChipState {
            cores,
            sdram: PageStore::default(),
            sysram: PageStore::default(),
            other: PageStore::default(),
            heap: None,
            rtr_alloc: None,
            router: BTreeMap::new(),
            fixed_route: 0,
            leds: 0,
        }
    }
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    if let Some(dst) = b.get_mut(at..at + v.len()) {
        dst.copy_from_slice(v);
    }
}

fn p2p(c: (u32, u32)) -> u16 {
    (((c.0 & 0xFF) as u16) << 8) | (c.1 & 0xFF) as u16
}

impl ChipState {
    /// Data pages this chip holds (for the budget).
    pub(crate) fn data_pages(&self) -> usize {
        self.sdram.data_pages() + self.sysram.data_pages() + self.other.data_pages()
    }

    /// Rough heap bytes this chip uses (for memory estimates).
    pub(crate) fn heap_bytes(&self) -> usize {
        let pages = self.sdram.page_entries() + self.sysram.page_entries() + self.other.page_entries();
        core::mem::size_of::<ChipState>()
            + self.data_pages() * PAGE
            + pages * 48
            + self.router.len() * 48
            + self.heap.as_ref().map_or(0, |h| 64 + h.blocks() * 48)
            + self.rtr_alloc.as_ref().map_or(0, |_| 128)
    }

    /// The SDRAM heap (created on first use).
    pub(crate) fn heap_mut(&mut self, base: u32, end: u32) -> &mut Heap {
        self.heap.get_or_insert_with(|| Box::new(Heap::new(base, end)))
    }

    /// The router-entry allocator (created on first use).
    pub(crate) fn rtr_alloc_mut(&mut self) -> &mut RangeAlloc {
        self.rtr_alloc.get_or_insert_with(Default::default)
    }

    /// (free SDRAM bytes, largest free SDRAM block).
    pub(crate) fn sdram_space(&self, base: u32, end: u32) -> (u32, u32) {
        match &self.heap {
            Some(h) => h.space(),
            None => Heap::new(base, end).space(),
        }
    }

    /// Largest free run of router entries.
    pub(crate) fn router_largest_free(&self) -> u16 {
        self.rtr_alloc.as_ref().map_or(1023, |r| r.largest_free())
    }

    /// Working cores (not dead), the monitor included.
    pub(crate) fn working_cores(&self) -> u8 {
        self.cores.iter().filter(|c| c.state != state::DEAD).count() as u8
    }

    /// Reads memory; `out.len()` bytes at the area offset.
    pub(crate) fn read(&self, area: Area, out: &mut [u8], sv: &SvContext<'_>) {
        match area {
            Area::Sdram(off) => self.sdram.read(off, out),
            Area::Other(addr) => self.other.read(addr, out),
            Area::Sysram(off) => self.read_sysram(off, out, sv),
        }
    }

    /// Writes memory; false if the budget is exhausted. The ROM ignores writes.
    pub(crate) fn write(&mut self, area: Area, data: &[u8], sv: &SvContext<'_>, budget: &mut Budget) -> bool {
        match area {
            Area::Sdram(off) => self.sdram.write(off, data, budget),
            Area::Other(addr) if addr >= 0xF600_0000 => true,
            Area::Other(addr) => self.other.write(addr, data, budget),
            Area::Sysram(off) => {
                self.prepare_sysram_write(off, data.len() as u32, sv, budget) && self.sysram.write(off, data, budget)
            }
        }
    }

    /// Fills memory with a word; false if the budget is exhausted.
    pub(crate) fn fill(&mut self, area: Area, len: u32, value: u32, sv: &SvContext<'_>, budget: &mut Budget) -> bool {
        match area {
            Area::Sdram(off) => self.sdram.fill(off, len, value, budget),
            Area::Other(addr) if addr >= 0xF600_0000 => true,
            Area::Other(addr) => self.other.fill(addr, len, value, budget),
            Area::Sysram(off) => {
                self.prepare_sysram_write(off, len, sv, budget) && self.sysram.fill(off, len, value, budget)
            }
        }
    }

    /// Before the first write to the synthesised page (vcpu table and sv), stores what SC&MP
    /// had put there, so that the host's write lands on top of it.
    fn prepare_sysram_write(&mut self, off: u32, len: u32, sv: &SvContext<'_>, budget: &mut Budget) -> bool {
        let page_start = VCPU_OFFSET;
        let touches = off as u64 + len as u64 > page_start as u64;
        if !touches || len == 0 {
            return true;
        }
        if self.sysram.has_page(page_start) {
            return true;
        }
        let mut page = [0u8; PAGE];
        self.synth_page(&mut page, sv, true);
        self.sysram.write(page_start, &page, budget)
    }

    fn read_sysram(&self, off: u32, out: &mut [u8], sv: &SvContext<'_>) {
        self.sysram.read(off, out);
        let end = off as u64 + out.len() as u64;
        if end <= VCPU_OFFSET as u64 {
            return;
        }
        // Overlay the synthesised page: everything if it was never written, else only the fields
        // SC&MP keeps current.
        let mut page = [0u8; PAGE];
        self.sysram.read(VCPU_OFFSET, &mut page);
        self.synth_page(&mut page, sv, !self.sysram.has_page(VCPU_OFFSET));
        for (i, b) in out.iter_mut().enumerate() {
            let a = off as usize + i;
            if a >= VCPU_OFFSET as usize {
                *b = page[a - VCPU_OFFSET as usize];
            }
        }
    }

    /// Writes the vcpu table and sv into `page` (SysRAM 0x7000..0x8000): the live fields always,
    /// the boot-time fields too if `all`.
    fn synth_page(&self, page: &mut [u8; PAGE], sv: &SvContext<'_>, all: bool) {
        for (v, core) in self.cores.iter().enumerate() {
            let base = v * 128;
            if all {
                let name: &[u8] = if v == 0 { b"scamp-3" } else { b"" };
                put(page, base + 0x48, name);
            }
            page[base + 0x2D] = physical_core(v);
            page[base + 0x2E] = core.state;
            page[base + 0x2F] = core.app_id;
        }
        let s = (SV_OFFSET - VCPU_OFFSET) as usize;
        if all {
            put(page, s, sv.patch);
            page[s + 0x06] = 1; // p2p_up
            put(page, s + 0x2E, &0u16.to_le_bytes()); // p2p_root
            page[s + 0x40] = u8::from(sv.chip == (0, 0)); // root_chip
            page[s + 0x65] = 0x3F; // link_en
            for p in 0..20usize {
                page[s + 0x94 + p] = 0xFF;
                page[s + 0xA8 + p] = 0xFF;
            }
            for v in 0..NUM_CORES {
                let p = physical_core(v) as usize;
                page[s + 0x94 + p] = v as u8; // p2v_map
                page[s + 0xA8 + v] = p as u8; // v2p_map
            }
            page[s + 0xBC] = NUM_CORES as u8; // num_cpus
            page[s + 0xBD] = NUM_CORES as u8; // rom_cpus
            put(page, s + 0xC0, &sv.heap.0.to_le_bytes()); // sdram_base
            put(page, s + 0xC4, &0xE500_2000u32.to_le_bytes()); // sysram_base
            put(page, s + 0xC8, &sv.heap.1.to_le_bytes()); // sdram_sys
            put(page, s + 0xCC, &0xE500_7000u32.to_le_bytes()); // vcpu_base
            put(page, s + 0xD0, &sv.heap.1.to_le_bytes()); // sys_heap
            put(page, s + 0xF0, &sv.ip.unwrap_or([0; 4])); // ip_addr
        }
        put(page, s, &p2p(sv.chip).to_le_bytes()); // p2p_addr
        page[s + 0x02] = (sv.dims.1 & 0xFF) as u8; // p2p_dims: height
        page[s + 0x03] = (sv.dims.0 & 0xFF) as u8; // width
        put(page, s + 0x08, &p2p(sv.eth).to_le_bytes()); // eth_addr
        page[s + 0x0B] = u8::from(sv.ip.is_some()); // eth_up
        put(page, s + 0x10, &sv.since_boot_ms.to_le_bytes()); // clock_ms
        put(page, s + 0x18, &((sv.since_boot_ms % 1000) as u16).to_le_bytes()); // time_ms
        let unix = u32::from_le_bytes([sv.patch[0x1C], sv.patch[0x1D], sv.patch[0x1E], sv.patch[0x1F]]);
        let unix = unix.wrapping_add((sv.since_boot_ms / 1000) as u32);
        put(page, s + 0x1C, &unix.to_le_bytes()); // unix_time
        let rtr_free = self.rtr_alloc.as_ref().map_or(1023, |r| r.total_free());
        put(page, s + 0xE0, &rtr_free.to_le_bytes()); // rtr_free
        put(page, s + 0xE2, &(sv.chips_active.min(0xFFFF) as u16).to_le_bytes()); // p2p_active
    }

    /// Applies a signal to the application cores matching `app_id` under `mask`.
    pub(crate) fn signal(&mut self, sig: u8, app_id: u8, mask: u8) {
        for core in self.cores.iter_mut().skip(1) {
            if core.state == state::DEAD || core.state == state::IDLE || core.app_id & mask != app_id & mask {
                continue;
            }
            let next = match (sig, core.state) {
                (signal::STOP, _) => {
                    core.app_id = 0;
                    state::IDLE
                }
                (signal::START, state::READY) => state::RUNNING,
                (signal::SYNC0, state::SYNC0) => state::RUNNING,
                (signal::SYNC1, state::SYNC1) => state::RUNNING,
                (signal::PAUSE, state::RUNNING) => state::PAUSED,
                (signal::CONT, state::PAUSED) => state::RUNNING,
                (signal::EXIT, _) => state::FINISHED,
                (_, s) => s,
            };
            core.state = next;
        }
    }

    /// Starts `app_id` on the cores of `mask` (bit n = virtual core n; bit 0 is ignored):
    /// READY if `wait`, else RUNNING. Dead cores stay dead.
    pub(crate) fn run(&mut self, app_id: u8, mask: u32, wait: bool) {
        for (v, core) in self.cores.iter_mut().enumerate().skip(1) {
            if mask & (1 << v) != 0 && core.state != state::DEAD {
                core.app_id = app_id;
                core.state = if wait { state::READY } else { state::RUNNING };
            }
        }
    }

    /// True if an application core is running.
    pub(crate) fn has_running_app(&self) -> bool {
        self.cores
            .iter()
            .skip(1)
            .any(|c| c.state == state::RUNNING && c.app_id != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(patch: &[u8; 128]) -> SvContext<'_> {
        SvContext {
            chip: (1, 2),
            dims: (16, 12),
            eth: (0, 0),
            ip: None,
            chips_active: 144,
            since_boot_ms: 2500,
            patch,
            heap: (0x6024_0000, 0x6780_0000),
        }
    }

    #[test]
    fn sv_synthesised_and_overwritable() {
        let patch = [0u8; 128];
        let sv = ctx(&patch);
        let mut chip = ChipState::default();
        let mut out = [0u8; 4];
        chip.read(Area::Sysram(SV_OFFSET), &mut out, &sv);
        assert_eq!(out, [2, 1, 12, 16], "p2p_addr (1,2), dims height 12 width 16");
        chip.read(Area::Sysram(SV_OFFSET + 0xC8), &mut out, &sv);
        assert_eq!(u32::from_le_bytes(out), 0x6780_0000);
        // A user write to vcpu user0 of core 3 sticks; live fields stay live.
        let mut b = Budget::new(1 << 20);
        let user0 = VCPU_OFFSET + 3 * 128 + 0x70;
        assert!(chip.write(Area::Sysram(user0), &[9, 8, 7, 6], &sv, &mut b));
        chip.run(30, 1 << 3, false);
        let mut rec = [0u8; 128];
        chip.read(Area::Sysram(VCPU_OFFSET + 3 * 128), &mut rec, &sv);
        assert_eq!(&rec[0x70..0x74], &[9, 8, 7, 6]);
        assert_eq!((rec[0x2D], rec[0x2E], rec[0x2F]), (3, state::RUNNING, 30));
        chip.read(Area::Sysram(SV_OFFSET + 0xC8), &mut out, &sv);
        assert_eq!(
            u32::from_le_bytes(out),
            0x6780_0000,
            "boot-time fields kept on first write"
        );
        chip.read(Area::Sysram(SV_OFFSET), &mut out, &sv);
        assert_eq!(out, [2, 1, 12, 16]);
    }

    #[test]
    fn signals() {
        let mut chip = ChipState::default();
        chip.run(30, 0b110, true);
        assert_eq!(chip.cores[1].state, state::READY);
        assert!(!chip.has_running_app());
        chip.signal(signal::START, 30, 0xFF);
        assert!(chip.has_running_app());
        chip.signal(signal::PAUSE, 31, 0xFF);
        assert_eq!(chip.cores[2].state, state::RUNNING);
        chip.signal(signal::STOP, 30, 0xFF);
        assert_eq!(
            chip.cores[2],
            Core {
                state: state::IDLE,
                app_id: 0
            }
        );
        assert_eq!(chip.cores[0].state, state::RUNNING);
    }
}
