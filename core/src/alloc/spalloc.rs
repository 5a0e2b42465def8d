//! The reference allocator (`spalloc_server.allocator.Allocator`) as the packing policy
//! named `spalloc`.
//!
//! Rectangles of triads come from the [`PackTree`] filtered by the [`CandidateFilter`];
//! "at least n boards" requests become the rectangle `area_to_rect` picks inside each free
//! leaf; single boards come from triads set aside for single-board jobs, handed out in the
//! reference's order (first such triad in insertion order, the board CPython's `set.pop()`
//! would pick), and a triad returns to the tree once all its live boards are free again.

use super::filter::{CandidateFilter, FilterParams, Topology};
use super::packtree::PackTree;
use super::pyset::PySet;
use super::{AllocId, Allocation, Packer, Request, Shape, rooted_rect};
use crate::geometry::{Board, Link, WrapAround};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A rectangle whose bottom-left triad is the key.
    Triads,
    /// One board.
    Board,
    /// A `w × h` rectangle rooted at a board, held beside the tree (see [`Pins`]).
    Pinned(u16, u16),
}

/// Triads held by rectangles rooted at a board ([`Shape::TriadsAt`], a request the reference
/// does not have). The tree cannot always carve such a rectangle (it may straddle one of the
/// tree's cuts while every triad in it is free), so they are held beside it: the tree still
/// sees them free, and every triad or rectangle it offers that overlaps them is refused, as
/// the filter refuses one with dead boards. With nothing pinned every decision is the
/// reference's.
#[derive(Debug, Clone)]
struct Pins {
    height: u16,
    /// Pinned triads, `x * height + y`.
    cells: Vec<bool>,
    count: usize,
}

impl Pins {
    fn new(width: u16, height: u16) -> Pins {
        Pins {
            height,
            cells: vec![false; width as usize * height as usize],
            count: 0,
        }
    }

    fn overlaps(&self, x: u16, y: u16, w: u16, h: u16) -> bool {
        self.count > 0
            && (x..x + w).any(|i| {
                let col = i as usize * self.height as usize;
                self.cells[col + y as usize..col + (y + h) as usize].contains(&true)
            })
    }

    fn set(&mut self, x: u16, y: u16, w: u16, h: u16, pinned: bool) {
        for i in x..x + w {
            let col = i as usize * self.height as usize;
            for c in &mut self.cells[col + y as usize..col + (y + h) as usize] {
                debug_assert_ne!(*c, pinned);
                *c = pinned;
            }
        }
        let n = w as usize * h as usize;
        if pinned {
            self.count += n;
        } else {
            self.count -= n;
        }
    }
}

/// Triads set aside for single boards, in dict insertion order, with their free boards.
#[derive(Debug, Clone, Default)]
struct SingleBoardTriads {
    entries: Vec<Option<((u16, u16), PySet)>>,
    position: BTreeMap<(u16, u16), usize>,
    first: usize,
    live: usize,
}

impl SingleBoardTriads {
    fn is_empty(&self) -> bool {
        self.live == 0
    }
    fn get_mut(&mut self, xy: (u16, u16)) -> Option<&mut PySet> {
        let i = *self.position.get(&xy)?;
        self.entries[i].as_mut().map(|e| &mut e.1)
    }
    fn get(&self, xy: (u16, u16)) -> Option<&PySet> {
        let i = *self.position.get(&xy)?;
        self.entries[i].as_ref().map(|e| &e.1)
    }
    /// Inserts a new key at the end (the key must not be present).
    fn push(&mut self, xy: (u16, u16), set: PySet) {
        debug_assert!(!self.position.contains_key(&xy));
        self.position.insert(xy, self.entries.len());
        self.entries.push(Some((xy, set)));
        self.live += 1;
    }
    fn remove(&mut self, xy: (u16, u16)) {
        if let Some(i) = self.position.remove(&xy) {
            self.entries[i] = None;
            self.live -= 1;
            if self.live == 0 {
                self.entries.clear();
                self.first = 0;
            } else if self.entries.len() > 64 && self.live * 2 < self.entries.len() {
                self.compact();
            }
        }
    }
    fn compact(&mut self) {
        self.entries.retain(Option::is_some);
        self.first = 0;
        for (i, e) in self.entries.iter().enumerate() {
            if let Some((xy, _)) = e {
                self.position.insert(*xy, i);
            }
        }
    }
    /// The first entry in insertion order.
    fn first_key(&mut self) -> Option<(u16, u16)> {
        while self.first < self.entries.len() {
            if let Some((xy, _)) = &self.entries[self.first] {
                return Some(*xy);
            }
            self.first += 1;
        }
        None
    }
}

/// The reference packing policy.
#[derive(Debug, Clone)]
pub struct SpallocPacker {
    filter: CandidateFilter,
    tree: PackTree,
    allocations: BTreeMap<AllocId, (Kind, Board, u32)>,
    single: SingleBoardTriads,
    full_single: BTreeSet<(u16, u16)>,
    pins: Pins,
    next_id: AllocId,
    generation: u64,
    allocated_boards: usize,
}

impl SpallocPacker {
    /// A packer for an idle `width × height` triad machine with the given faults.
    pub fn new(width: u16, height: u16, dead_boards: &[Board], dead_links: &[(Board, Link)]) -> SpallocPacker {
        SpallocPacker {
            filter: CandidateFilter::new(Topology::new(
                width,
                height,
                dead_boards.iter().copied(),
                dead_links.iter().copied(),
            )),
            tree: PackTree::new(0, 0, width, height),
            allocations: BTreeMap::new(),
            single: SingleBoardTriads::default(),
            full_single: BTreeSet::new(),
            pins: Pins::new(width, height),
            next_id: 1,
            generation: 0,
            allocated_boards: 0,
        }
    }

    /// The machine's board graph.
    pub fn topology(&self) -> &Topology {
        self.filter.topology()
    }

    /// The pack tree (for inspection).
    pub fn tree(&self) -> &PackTree {
        &self.tree
    }

    fn params(req: &Request, expected: Option<u32>) -> FilterParams {
        FilterParams {
            expected_boards: expected,
            max_dead_boards: req.max_dead_boards,
            max_dead_links: req.max_dead_links,
            require_torus: req.require_torus,
        }
    }

    fn machine_area(&self) -> u32 {
        self.filter.topology().width() as u32 * self.filter.topology().height() as u32
    }

    /// Some machine corner accepted for a `w × h` rectangle?
    fn corners_accept(&mut self, w: u16, h: u16, params: &FilterParams) -> bool {
        let (mw, mh) = (self.filter.topology().width(), self.filter.topology().height());
        let corners = [(0, 0), (mw - w, 0), (0, mh - h), (mw - w, mh - h)];
        let filter = &mut self.filter;
        corners
            .iter()
            .enumerate()
            .any(|(i, &(x, y))| !corners[..i].contains(&(x, y)) && filter.accepts(x, y, w, h, params))
    }

    fn record(&mut self, kind: Kind, origin: Board, boards: Vec<Board>, torus: WrapAround) -> Allocation {
        let id = self.next_id;
        self.next_id += 1;
        self.allocations.insert(id, (kind, origin, boards.len() as u32));
        self.allocated_boards += boards.len();
        Allocation {
            id,
            boards,
            torus,
            single_board: kind == Kind::Board,
        }
    }

    fn alloc_rect(&mut self, w: u16, h: u16, params: FilterParams) -> Option<Allocation> {
        let (filter, pins) = (&mut self.filter, &self.pins);
        let (x, y) = self.tree.alloc(w, h, &mut |x, y, w, h| {
            !pins.overlaps(x, y, w, h) && filter.accepts(x, y, w, h, &params)
        })?;
        let acc = self
            .filter
            .evaluate(x, y, w, h, &params)
            .expect("cached verdict must hold");
        Some(self.record(Kind::Triads, Board::new(x, y, 0), acc.boards, acc.torus))
    }

    /// The rectangle of a rooted request, if it fits the machine (it does not wrap around).
    fn rooted(&self, root: Board, w: u32, h: u32, require_torus: bool) -> Option<(u16, u16, u16, u16)> {
        let topo = self.filter.topology();
        rooted_rect(root, w, h, topo.width(), topo.height(), require_torus)
    }

    /// Takes a rooted rectangle if every triad in it is free (in the tree and not pinned) and
    /// the filter accepts it; it is pinned, not carved (see [`Pins`]).
    fn alloc_rect_at(&mut self, x: u16, y: u16, w: u16, h: u16, params: FilterParams) -> Option<Allocation> {
        let free = !self.pins.overlaps(x, y, w, h) && (x..x + w).all(|i| (y..y + h).all(|j| self.tree.is_free(i, j)));
        if !free || !self.filter.accepts(x, y, w, h, &params) {
            return None;
        }
        let acc = self
            .filter
            .evaluate(x, y, w, h, &params)
            .expect("cached verdict must hold");
        self.pins.set(x, y, w, h, true);
        Some(self.record(Kind::Pinned(w, h), Board::new(x, y, 0), acc.boards, acc.torus))
    }

    fn alloc_area(&mut self, triads: u32, min_ratio: f64, params: FilterParams) -> Option<Allocation> {
        let (filter, pins) = (&mut self.filter, &self.pins);
        let (x, y, w, h) = self.tree.alloc_area(triads, min_ratio, &mut |x, y, w, h| {
            !pins.overlaps(x, y, w, h) && filter.accepts(x, y, w, h, &params)
        })?;
        let acc = self
            .filter
            .evaluate(x, y, w, h, &params)
            .expect("cached verdict must hold");
        Some(self.record(Kind::Triads, Board::new(x, y, 0), acc.boards, acc.torus))
    }

    fn alloc_board(&mut self, specific: Option<Board>) -> Option<Allocation> {
        if let Some(b) = specific
            && (!self.filter.topology().contains(b) || self.filter.topology().is_dead(b))
        {
            return None;
        }
        loop {
            let from_set = match specific {
                None => !self.single.is_empty(),
                Some(b) => !self.single.is_empty() && self.single.get((b.x, b.y)).is_some_and(|s| s.contains(b.z)),
            };
            if from_set {
                let (xy, z) = match specific {
                    None => {
                        let xy = self.single.first_key()?;
                        let z = self.single.get_mut(xy)?.pop()?;
                        (xy, z)
                    }
                    Some(b) => {
                        self.single.get_mut((b.x, b.y))?.remove(b.z);
                        ((b.x, b.y), b.z)
                    }
                };
                if self.single.get(xy).is_some_and(PySet::is_empty) {
                    self.single.remove(xy);
                    self.full_single.insert(xy);
                }
                let board = Board::new(xy.0, xy.1, z);
                return Some(self.record(Kind::Board, board, vec![board], WrapAround::NONE));
            }
            let xy = match specific {
                Some(b) if self.pins.overlaps(b.x, b.y, 1, 1) => return None,
                Some(b) => self.tree.request(b.x, b.y)?,
                None => {
                    let (topo, pins) = (self.filter.topology(), &self.pins);
                    self.tree.alloc(1, 1, &mut |x, y, _, _| {
                        !pins.overlaps(x, y, 1, 1) && topo.live_in_triad(x, y).next().is_some()
                    })?
                }
            };
            let set = PySet::from_keys(self.filter.topology().live_in_triad(xy.0, xy.1));
            self.single.push(xy, set);
        }
    }

    fn release_board(&mut self, b: Board) {
        let xy = (b.x, b.y);
        if self.full_single.remove(&xy) {
            self.single.push(xy, PySet::new());
        }
        let dead = self.filter.topology().is_dead(b);
        let Some(set) = self.single.get_mut(xy) else {
            // A board that died while allocated: its triad went back to the tree when its last
            // live board was freed, and a dead board is never handed out again.
            debug_assert!(dead, "board {b} freed from a triad not set aside for single boards");
            return;
        };
        if !dead {
            set.add(b.z);
        }
        let live = self.filter.topology().live_in_triad(xy.0, xy.1).count();
        let all_free = set.len() == live
            && self
                .filter
                .topology()
                .live_in_triad(xy.0, xy.1)
                .all(|z| set.contains(z));
        if all_free {
            self.single.remove(xy);
            let freed = self.tree.free(xy.0, xy.1);
            debug_assert!(freed.is_ok(), "{freed:?}");
        }
    }
}

impl Packer for SpallocPacker {
    fn name(&self) -> &'static str {
        "spalloc"
    }

    fn alloc_possible(&mut self, req: &Request) -> bool {
        let (mw, mh) = (
            self.filter.topology().width() as u32,
            self.filter.topology().height() as u32,
        );
        match req.shape {
            Shape::AnyBoard => self.filter.topology().live_count() > 0 && !req.require_torus,
            Shape::Board { board } => {
                !req.require_torus && self.filter.topology().contains(board) && !self.filter.topology().is_dead(board)
            }
            Shape::Triads { w, h } => {
                if w == 0 || h == 0 || w > mw || h > mh || (req.require_torus && (w != mw || h != mh)) {
                    return false;
                }
                let params = Self::params(req, None);
                self.corners_accept(w as u16, h as u16, &params)
            }
            Shape::TriadsAt { root, w, h } => {
                let Some((x, y, w, h)) = self.rooted(root, w, h, req.require_torus) else {
                    return false;
                };
                self.filter.accepts(x, y, w, h, &Self::params(req, None))
            }
            Shape::Boards { n, min_ratio } => {
                let triads = n.div_ceil(3);
                if triads == 0 || (req.require_torus && triads != self.machine_area()) {
                    return false;
                }
                let Ok(Some((w, h))) = super::area::area_to_rect(triads, mw, mh, min_ratio) else {
                    return false;
                };
                let params = Self::params(req, Some(n));
                self.corners_accept(w as u16, h as u16, &params)
            }
        }
    }

    fn alloc(&mut self, req: &Request) -> Option<Allocation> {
        let (mw, mh) = (
            self.filter.topology().width() as u32,
            self.filter.topology().height() as u32,
        );
        match req.shape {
            Shape::AnyBoard => self.alloc_board(None),
            Shape::Board { board } => self.alloc_board(Some(board)),
            Shape::Triads { w, h } => {
                if (req.require_torus && (w != mw || h != mh)) || w == 0 || h == 0 || w > mw || h > mh {
                    return None;
                }
                self.alloc_rect(w as u16, h as u16, Self::params(req, None))
            }
            Shape::TriadsAt { root, w, h } => {
                let (x, y, w, h) = self.rooted(root, w, h, req.require_torus)?;
                self.alloc_rect_at(x, y, w, h, Self::params(req, None))
            }
            Shape::Boards { n, min_ratio } => {
                let triads = n.div_ceil(3);
                if triads == 0 || (req.require_torus && triads != self.machine_area()) {
                    return None;
                }
                self.alloc_area(triads, min_ratio, Self::params(req, Some(n)))
            }
        }
    }

    fn release(&mut self, id: AllocId) {
        let Some((kind, origin, boards)) = self.allocations.remove(&id) else {
            debug_assert!(false, "release of unknown allocation {id}");
            return;
        };
        self.allocated_boards -= boards as usize;
        match kind {
            Kind::Triads => {
                let freed = self.tree.free(origin.x, origin.y);
                debug_assert!(freed.is_ok(), "{freed:?}");
            }
            Kind::Board => self.release_board(origin),
            Kind::Pinned(w, h) => self.pins.set(origin.x, origin.y, w, h, false),
        }
        self.generation += 1;
    }

    fn set_faults(&mut self, dead_boards: &[Board], dead_links: &[(Board, Link)]) {
        let (w, h) = (self.filter.topology().width(), self.filter.topology().height());
        self.filter.set_topology(Topology::new(
            w,
            h,
            dead_boards.iter().copied(),
            dead_links.iter().copied(),
        ));
        // Boards that died while their triad was set aside for single boards leave its free set
        // (a departure from the reference, which kept handing them out); the ones allocated now
        // are not taken back when freed (see `release_board`).
        let keys: Vec<(u16, u16)> = self.single.position.keys().copied().collect();
        for xy in keys {
            let topo = self.filter.topology();
            let dead: Vec<u8> = self
                .single
                .get(xy)
                .map(|set| {
                    set.iter()
                        .filter(|z| topo.is_dead(Board::new(xy.0, xy.1, *z)))
                        .collect()
                })
                .unwrap_or_default();
            if dead.is_empty() {
                continue;
            }
            if let Some(set) = self.single.get_mut(xy) {
                for z in dead {
                    set.remove(z);
                }
                if set.is_empty() {
                    self.single.remove(xy);
                    self.full_single.insert(xy);
                }
            }
        }
        self.generation += 1;
    }

    fn generation(&self) -> u64 {
        self.generation
    }

    fn allocated_boards(&self) -> usize {
        self.allocated_boards
    }

    fn clone_box(&self) -> Box<dyn Packer> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(shape: Shape) -> Request {
        Request::new(shape)
    }

    #[test]
    fn alloc_possible_reference_examples() {
        let mut p = SpallocPacker::new(9, 10, &[Board::new(3, 2, 1)], &[]);
        assert!(p.alloc_possible(&req(Shape::Boards { n: 270, min_ratio: 0.0 })));
        assert!(!p.alloc_possible(&req(Shape::Boards { n: 270, min_ratio: 1.0 })));
        assert!(!p.alloc_possible(&req(Shape::Boards { n: 271, min_ratio: 0.0 })));
        let torus = |w, h| Request {
            require_torus: true,
            ..req(Shape::Triads { w, h })
        };
        assert!(!p.alloc_possible(&torus(1, 1)));
        assert!(p.alloc_possible(&torus(9, 10)));
        assert!(!p.alloc_possible(&req(Shape::Board {
            board: Board::new(3, 2, 1)
        })));
        assert!(!p.alloc_possible(&req(Shape::Board {
            board: Board::new(9, 0, 0)
        })));
        assert!(!p.alloc_possible(&req(Shape::Boards { n: 0, min_ratio: 0.0 })));
        assert!(!p.alloc_possible(&req(Shape::Triads { w: 0, h: 1 })));
    }

    #[test]
    fn single_boards_share_triads_in_reference_order() {
        let mut p = SpallocPacker::new(2, 1, &[Board::new(0, 0, 1)], &[]);
        let a = p.alloc(&req(Shape::AnyBoard)).unwrap();
        let b = p.alloc(&req(Shape::AnyBoard)).unwrap();
        // A fresh triad hands out its live boards in ascending z.
        assert_eq!((a.boards[0], b.boards[0]), (Board::new(0, 0, 0), Board::new(0, 0, 2)));
        assert!(a.single_board && a.torus == WrapAround::NONE);
        let c = p.alloc(&req(Shape::AnyBoard)).unwrap();
        assert_eq!(c.boards[0], Board::new(1, 0, 0));
        // Specific board in a partly used triad.
        let d = p
            .alloc(&req(Shape::Board {
                board: Board::new(1, 0, 2),
            }))
            .unwrap();
        assert_eq!(d.boards[0], Board::new(1, 0, 2));
        assert!(
            p.alloc(&req(Shape::Board {
                board: Board::new(1, 0, 2)
            }))
            .is_none()
        );
        // The full triad gets a board back: it is appended as a new set.
        p.release(a.id);
        let e = p.alloc(&req(Shape::AnyBoard)).unwrap();
        assert_eq!(e.boards[0], Board::new(1, 0, 1));
        let f = p.alloc(&req(Shape::AnyBoard)).unwrap();
        assert_eq!(f.boards[0], Board::new(0, 0, 0));
        assert_eq!(p.allocated_boards(), 5);
        for id in [b.id, c.id, d.id, e.id, f.id] {
            p.release(id);
        }
        assert!(p.tree().is_empty());
        assert_eq!(p.allocated_boards(), 0);
    }

    #[test]
    fn boards_that_die_in_set_aside_triads_are_not_handed_out() {
        let mut p = SpallocPacker::new(1, 1, &[], &[]);
        let a = p.alloc(&req(Shape::AnyBoard)).unwrap();
        assert_eq!(a.boards[0], Board::new(0, 0, 0));
        // Board 1 (free, set aside) and board 0 (allocated) die.
        p.set_faults(&[Board::new(0, 0, 1), Board::new(0, 0, 0)], &[]);
        let b = p.alloc(&req(Shape::AnyBoard)).unwrap();
        assert_eq!(b.boards[0], Board::new(0, 0, 2));
        assert!(p.alloc(&req(Shape::AnyBoard)).is_none());
        // Freeing the dead board does not bring it back; freeing the last live one frees the
        // triad, and a fresh one only holds live boards.
        p.release(a.id);
        assert!(p.alloc(&req(Shape::AnyBoard)).is_none());
        p.release(b.id);
        assert!(p.tree().is_empty());
        let c = p.alloc(&req(Shape::AnyBoard)).unwrap();
        assert_eq!(c.boards[0], Board::new(0, 0, 2));
        assert!(p.alloc(&req(Shape::AnyBoard)).is_none());
        // The last free board dying moves its triad to the full ones; freeing brings it back.
        let mut p = SpallocPacker::new(1, 1, &[], &[]);
        let ids: Vec<_> = (0..2).map(|_| p.alloc(&req(Shape::AnyBoard)).unwrap()).collect();
        p.set_faults(&[Board::new(0, 0, 2)], &[]);
        assert!(p.alloc(&req(Shape::AnyBoard)).is_none());
        p.release(ids[1].id);
        assert_eq!(p.alloc(&req(Shape::AnyBoard)).unwrap().boards, ids[1].boards);
    }

    #[test]
    fn boards_requests_over_allocate_whole_triads() {
        let mut p = SpallocPacker::new(20, 20, &[], &[]);
        let a = p.alloc(&req(Shape::Boards { n: 4, min_ratio: 0.333 })).unwrap();
        assert_eq!(a.boards.len(), 6);
        let b = p
            .alloc(&Request {
                max_dead_boards: Some(0),
                ..req(Shape::Boards {
                    n: 100,
                    min_ratio: 0.333,
                })
            })
            .unwrap();
        assert_eq!(b.boards.len(), 108);
        let mut p = SpallocPacker::new(20, 20, &[], &[]);
        let t = p.alloc(&req(Shape::Triads { w: 20, h: 1 })).unwrap();
        assert_eq!(t.torus, WrapAround::X);
        assert_eq!(t.periphery(p.topology()).len(), 160);
        p.set_faults(&[Board::new(0, 19, 0)], &[]);
        assert!(p.alloc(&req(Shape::Triads { w: 1, h: 1 })).is_some());
    }

    #[test]
    fn rectangles_rooted_at_a_board() {
        let at = |x, y, w, h| {
            req(Shape::TriadsAt {
                root: Board::new(x, y, 1),
                w,
                h,
            })
        };
        let mut p = SpallocPacker::new(4, 3, &[Board::new(2, 1, 0)], &[]);
        assert!(p.alloc_possible(&at(1, 1, 3, 2)));
        assert!(!p.alloc_possible(&at(2, 1, 3, 1)), "past the far edge");
        assert!(!p.alloc_possible(&at(0, 0, 0, 1)));
        let a = p.alloc(&at(1, 1, 2, 2)).unwrap();
        // Its live boards, the dead one left out.
        assert_eq!(a.boards.len(), 11);
        assert!(a.boards.iter().all(|b| (1..3).contains(&b.x) && (1..3).contains(&b.y)));
        assert!(!a.boards.contains(&Board::new(2, 1, 0)));
        assert!(!a.single_board);
        // Overlapping it, or a board inside it: not now.
        assert!(p.alloc(&at(2, 2, 1, 1)).is_none());
        assert!(
            p.alloc(&req(Shape::Board {
                board: Board::new(1, 2, 2)
            }))
            .is_none()
        );
        assert!(p.alloc_possible(&at(2, 2, 1, 1)), "possible once freed");
        // Beside it: yes.
        let b = p.alloc(&at(3, 0, 1, 3)).unwrap();
        assert_eq!(b.boards.len(), 9);
        // With no dead boards tolerated, the rectangle holding the dead board never fits.
        let strict = Request {
            max_dead_boards: Some(0),
            ..at(2, 0, 1, 2)
        };
        assert!(!p.alloc_possible(&strict));
        p.release(a.id);
        p.release(b.id);
        assert_eq!(p.allocated_boards(), 0);
        assert_eq!(p.alloc(&at(0, 0, 4, 3)).unwrap().boards.len(), 35);
    }

    #[test]
    fn a_rooted_rectangle_across_the_trees_cuts_is_taken_and_kept_clear() {
        let at = |x, y, w, h| {
            req(Shape::TriadsAt {
                root: Board::new(x, y, 0),
                w,
                h,
            })
        };
        let mut p = SpallocPacker::new(2, 2, &[], &[]);
        // A single board in triad (1, 1) cuts the tree at x = 1: the free bottom row straddles it.
        let one = p
            .alloc(&req(Shape::Board {
                board: Board::new(1, 1, 1),
            }))
            .unwrap();
        let row = p.alloc(&at(0, 0, 2, 1)).unwrap();
        assert_eq!(row.boards.len(), 6);
        // What the tree still thinks free there is refused to everything else.
        assert!(
            p.alloc(&req(Shape::Board {
                board: Board::new(1, 0, 2)
            }))
            .is_none()
        );
        assert!(p.alloc(&req(Shape::Triads { w: 1, h: 2 })).is_none());
        let any: Vec<Board> = (0..5)
            .map(|_| p.alloc(&req(Shape::AnyBoard)).unwrap().boards[0])
            .collect();
        assert!(any.iter().all(|b| b.y == 1), "{any:?}");
        assert!(p.alloc(&req(Shape::AnyBoard)).is_none());
        p.release(row.id);
        assert!(
            p.alloc(&req(Shape::Board {
                board: Board::new(1, 0, 2)
            }))
            .is_some()
        );
        p.release(one.id);
    }
}
