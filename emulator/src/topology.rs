//! How boards join up into booted P2P machines.
//!
//! Booting one board floods the image over every live board-to-board link whose STOP bits are
//! clear into every powered, unbooted neighbour — which is why the boards of a spalloc job come
//! up together (the service stops only the links on the job's periphery). The boards reached form
//! a [`BootedSet`]: one P2P machine whose chip (0, 0) is the boot root's Ethernet chip.
//!
//! Coordinates: a board's triad offset from the root, taken modulo the physical machine, places
//! its Ethernet chip at `board_to_chip(offset) − board_to_chip(root's z)`; the P2P dimensions are
//! those spalloc gives a job of the set's triad extent (12 chips per triad, +4 on an axis that does
//! not wrap; a set that spans every column or row of the machine wraps along that axis), or 8 × 8
//! for a single board.

use crate::board::{BoardSlot, local_index};
use spinnbed_core::geometry::{
    BOARD_ROOTS, Board, Chip, FrameId, Link, Machine, board_down_link, board_to_chip, local_chip,
};
use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;

/// A frame's BMP.
#[derive(Debug)]
pub(crate) struct Bmp {
    pub frame: FrameId,
    pub ip: Ipv4Addr,
    pub silent: bool,
    /// Board index by board number within the frame.
    pub boards: Vec<Option<usize>>,
    /// Its server: when it finishes the requests it has taken, and what they hold.
    pub server: crate::board::BmpServer,
}

/// One booted P2P machine.
#[derive(Debug)]
pub(crate) struct BootedSet {
    /// The boot root's board index.
    pub root: usize,
    pub root_board: Board,
    /// P2P dimensions in chips (width, height).
    pub dims: (u32, u32),
    /// Wraps around in (x, y).
    pub wrap: (bool, bool),
    /// True for a single-board set (8 × 8, no triad arithmetic).
    pub single: bool,
    /// sv bytes 0x00..0x80 from the boot image.
    pub patch: Box<[u8; 128]>,
    /// Member board indices.
    pub boards: Vec<usize>,
    /// When SC&MP started (end of booting), for `clock_ms`.
    pub started: spinnbed_core::time::Instant,
}

/// The emulated state of one machine.
#[derive(Debug)]
pub(crate) struct MachineState {
    pub machine: Machine,
    /// Boards by index `(x · height + y) · 3 + z` (None: no physical location).
    pub boards: Vec<Option<BoardSlot>>,
    pub bmps: Vec<Bmp>,
    pub sets: BTreeMap<u32, BootedSet>,
    /// This machine's power and boot times.
    pub timing: spinnbed_core::timing::MachineTiming,
    /// This machine's SC&MP and BMP service times and buffers.
    pub scamp: crate::config::ScampTiming,
}

impl MachineState {
    /// Index of a board position.
    pub(crate) fn index(&self, b: Board) -> Option<usize> {
        if !self.machine.contains(b) {
            return None;
        }
        Some((b.x as usize * self.machine.height() as usize + b.y as usize) * 3 + b.z as usize)
    }

    pub(crate) fn slot(&self, i: usize) -> Option<&BoardSlot> {
        self.boards.get(i).and_then(|s| s.as_ref())
    }

    pub(crate) fn slot_mut(&mut self, i: usize) -> Option<&mut BoardSlot> {
        self.boards.get_mut(i).and_then(|s| s.as_mut())
    }

    /// The neighbour of board `a` through `link` if the link carries traffic: both boards up,
    /// the link neither dead in the description nor failed, and neither FPGA stopped on it.
    pub(crate) fn link_usable(&self, a: usize, link: Link) -> Option<usize> {
        let sa = self.slot(a).filter(|s| s.is_up())?;
        let (nb, _) = board_down_link(sa.board, link, self.machine.width(), self.machine.height());
        let bi = self.index(nb)?;
        let sb = self.slot(bi).filter(|s| s.is_up())?;
        let back = link.opposite();
        let dead = self.machine.dead_links();
        if dead.contains(&(sa.board, link)) || dead.contains(&(nb, back)) {
            return None;
        }
        if sa.link_failed(link) || sb.link_failed(back) || sa.stopped(link) || sb.stopped(back) {
            return None;
        }
        Some(bi)
    }

    /// The boards a boot started on `root` reaches: root first, then breadth first over usable
    /// links into up, unbooted boards.
    pub(crate) fn flood(&self, root: usize) -> Vec<usize> {
        let mut seen = vec![false; self.boards.len()];
        let mut order = Vec::new();
        let mut queue = VecDeque::new();
        if let Some(s) = seen.get_mut(root) {
            *s = true;
            queue.push_back(root);
        }
        while let Some(a) = queue.pop_front() {
            order.push(a);
            for link in Link::ALL {
                if let Some(b) = self.link_usable(a, link)
                    && !seen[b]
                    && self.slot(b).is_some_and(|s| s.runtime.is_none())
                {
                    seen[b] = true;
                    queue.push_back(b);
                }
            }
        }
        order
    }

    /// Triad offset of `b` from the root, modulo the machine.
    fn offset(&self, root: Board, b: Board) -> (u32, u32) {
        let w = u32::from(self.machine.width());
        let h = u32::from(self.machine.height());
        (
            (u32::from(b.x) + w - u32::from(root.x) % w) % w,
            (u32::from(b.y) + h - u32::from(root.y) % h) % h,
        )
    }

    /// Dimensions and wrap-around of a set of boards booted from `root`.
    pub(crate) fn set_shape(&self, root: Board, boards: &[Board]) -> ((u32, u32), (bool, bool)) {
        if boards.len() <= 1 {
            return ((8, 8), (false, false));
        }
        let w = u32::from(self.machine.width());
        let h = u32::from(self.machine.height());
        let mut cols = vec![false; w as usize];
        let mut rows = vec![false; h as usize];
        let (mut max_x, mut max_y) = (0, 0);
        for b in boards {
            let (dx, dy) = self.offset(root, *b);
            cols[dx as usize] = true;
            rows[dy as usize] = true;
            max_x = max_x.max(dx);
            max_y = max_y.max(dy);
        }
        let wrap_x = cols.iter().all(|&c| c);
        let wrap_y = rows.iter().all(|&r| r);
        let width = if wrap_x { w * 12 } else { (max_x + 1) * 12 + 4 };
        let height = if wrap_y { h * 12 } else { (max_y + 1) * 12 + 4 };
        ((width, height), (wrap_x, wrap_y))
    }

    /// P2P coordinates of board `b`'s Ethernet chip in a set booted from `root`.
    pub(crate) fn eth_chip(&self, root: Board, b: Board, dims: (u32, u32), single: bool) -> (u32, u32) {
        if single {
            return (0, 0);
        }
        let (dx, dy) = self.offset(root, b);
        let c = board_to_chip(Board::new(dx as u16, dy as u16, b.z));
        let (ox, oy) = BOARD_ROOTS[root.z.min(2) as usize];
        let x = (i64::from(c.x) - i64::from(ox)).rem_euclid(i64::from(dims.0.max(1)));
        let y = (i64::from(c.y) - i64::from(oy)).rem_euclid(i64::from(dims.1.max(1)));
        (x as u32, y as u32)
    }

    /// The board (index) and board-local chip at P2P coordinates (x, y) of set `id`, if that
    /// chip belongs to a board of the set.
    pub(crate) fn locate(&self, id: u32, x: u32, y: u32) -> Option<(usize, Chip)> {
        let set = self.sets.get(&id)?;
        let (w, h) = set.dims;
        if x >= w || y >= h {
            return None;
        }
        let in_set = |bi: usize| {
            self.slot(bi)
                .and_then(|s| s.runtime.as_ref())
                .is_some_and(|r| r.set == id)
        };
        if set.single {
            local_index(x, y)?;
            return in_set(set.root).then_some((set.root, Chip::new(x, y)));
        }
        let (ox, oy) = BOARD_ROOTS[set.root_board.z.min(2) as usize];
        let mut ax = i64::from(x) + i64::from(ox);
        let mut ay = i64::from(y) + i64::from(oy);
        if set.wrap.0 {
            ax = ax.rem_euclid(i64::from(w));
        }
        if set.wrap.1 {
            ay = ay.rem_euclid(i64::from(h));
        }
        let local = local_chip(ax as u32, ay as u32);
        let mut ex = ax - i64::from(local.x);
        let mut ey = ay - i64::from(local.y);
        if set.wrap.0 {
            ex = ex.rem_euclid(i64::from(w));
        }
        if set.wrap.1 {
            ey = ey.rem_euclid(i64::from(h));
        }
        if ex < 0 || ey < 0 {
            return None;
        }
        let z = match (ex % 12, ey % 12) {
            (0, 0) => 0,
            (8, 4) => 1,
            (4, 8) => 2,
            _ => return None,
        };
        let mw = i64::from(self.machine.width());
        let mh = i64::from(self.machine.height());
        let bx = (i64::from(set.root_board.x) + ex / 12).rem_euclid(mw);
        let by = (i64::from(set.root_board.y) + ey / 12).rem_euclid(mh);
        let bi = self.index(Board::new(bx as u16, by as u16, z))?;
        in_set(bi).then_some((bi, local))
    }

    /// Board hops from board `from` to every board of its set over usable links (u16::MAX:
    /// unreachable), indexed like `boards`.
    pub(crate) fn hops_from(&self, from: usize) -> Vec<u16> {
        let mut hops = vec![u16::MAX; self.boards.len()];
        let Some(set) = self.slot(from).and_then(|s| s.runtime.as_ref()).map(|r| r.set) else {
            return hops;
        };
        let mut queue = VecDeque::new();
        hops[from] = 0;
        queue.push_back(from);
        while let Some(a) = queue.pop_front() {
            for link in Link::ALL {
                if let Some(b) = self.link_usable(a, link)
                    && hops[b] == u16::MAX
                    && self
                        .slot(b)
                        .and_then(|s| s.runtime.as_ref())
                        .is_some_and(|r| r.set == set)
                {
                    hops[b] = hops[a].saturating_add(1);
                    queue.push_back(b);
                }
            }
        }
        hops
    }

    /// True if a chip link from a chip of board `a` to a chip of board `b` carries traffic
    /// (same board, or some usable board link joins them).
    pub(crate) fn boards_joined(&self, a: usize, b: usize) -> bool {
        a == b || Link::ALL.iter().any(|&l| self.link_usable(a, l) == Some(b))
    }
}

/// P2P hop distance between two chips of a set (hexagonal, wrapping where the set wraps).
pub(crate) fn chip_distance(a: (u32, u32), b: (u32, u32), dims: (u32, u32), wrap: (bool, bool)) -> u32 {
    let delta = |p: u32, q: u32, n: u32, wraps: bool| -> Vec<i64> {
        let d = i64::from(q) - i64::from(p);
        if wraps && n > 0 {
            vec![d, d - i64::from(n), d + i64::from(n)]
        } else {
            vec![d]
        }
    };
    let mut best = u64::MAX;
    for dx in delta(a.0, b.0, dims.0, wrap.0) {
        for dy in delta(a.1, b.1, dims.1, wrap.1) {
            let d = if (dx >= 0) == (dy >= 0) {
                dx.unsigned_abs().max(dy.unsigned_abs())
            } else {
                dx.unsigned_abs() + dy.unsigned_abs()
            };
            best = best.min(d);
        }
    }
    best.min(u64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(chip_distance((0, 0), (3, 3), (16, 16), (false, false)), 3);
        assert_eq!(chip_distance((0, 0), (3, 0), (16, 16), (false, false)), 3);
        assert_eq!(chip_distance((3, 0), (0, 2), (16, 16), (false, false)), 5);
        assert_eq!(chip_distance((0, 0), (23, 0), (24, 24), (true, true)), 1);
    }
}
