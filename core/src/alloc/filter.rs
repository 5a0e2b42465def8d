//! The reference server's candidate filter: which rectangles of triads are acceptable.
//!
//! A candidate `(x, y, w, h)` is judged by the live boards reachable from its bottom-left
//! board `(x, y, 0)` without leaving the rectangle or crossing a dead link (directional), then
//! by the dead-board and dead-link limits and the torus requirement. The verdict depends only
//! on the rectangle, the request's limits and the machine's dead boards and links — never on
//! what else is allocated — so verdicts are cached per shape and position; the cache is
//! dropped whenever the machine's faults change.

use crate::geometry::{Board, Link, WrapAround, board_down_link};
use std::sync::{Arc, Mutex};

/// One step across a link.
#[derive(Debug, Clone, Copy, Default)]
struct Step {
    index: u32,
    x: u16,
    y: u16,
    wrap: WrapAround,
}

/// A machine's board graph in flat arrays: board index `i = (x · height + y) · 3 + z`.
#[derive(Debug, Clone)]
pub struct Topology {
    width: u16,
    height: u16,
    /// Neighbour through each link: index, triad x and y, and the wrap flags of the step.
    neighbours: Vec<[Step; 6]>,
    dead: Vec<bool>,
    /// Bit `l` set: leaving this board through link `l` is impossible.
    dead_links: Vec<u8>,
    live_count: usize,
    /// Triads with a dead board or a board with a dead link, summed over `[0, x) × [0, y)` at
    /// `x · (height + 1) + y`.
    faulty: Vec<u32>,
}

impl Topology {
    /// Builds the graph of a `width × height` triad torus with the given faults.
    pub fn new(
        width: u16,
        height: u16,
        dead_boards: impl IntoIterator<Item = Board>,
        dead_links: impl IntoIterator<Item = (Board, Link)>,
    ) -> Topology {
        let n = width as usize * height as usize * 3;
        let mut t = Topology {
            width,
            height,
            neighbours: Vec::with_capacity(n),
            dead: vec![false; n],
            dead_links: vec![0; n],
            live_count: 0,
            faulty: Vec::new(),
        };
        for i in 0..n {
            let b = t.board(i as u32);
            let mut nb = [Step::default(); 6];
            for l in Link::ALL {
                let (nbd, wrap) = board_down_link(b, l, width, height);
                nb[l as usize] = Step {
                    index: t.index(nbd),
                    x: nbd.x,
                    y: nbd.y,
                    wrap,
                };
            }
            t.neighbours.push(nb);
        }
        for b in dead_boards {
            if t.contains(b) {
                let i = t.index(b) as usize;
                t.dead[i] = true;
            }
        }
        for (b, l) in dead_links {
            if t.contains(b) {
                let i = t.index(b) as usize;
                t.dead_links[i] |= 1 << l as u8;
            }
        }
        t.live_count = t.dead.iter().filter(|d| !**d).count();
        let (w, h) = (width as usize, height as usize);
        t.faulty = vec![0; (w + 1) * (h + 1)];
        for x in 0..w {
            for y in 0..h {
                let b = (x * h + y) * 3;
                let bad = (b..b + 3).any(|i| t.dead[i] || t.dead_links[i] != 0);
                t.faulty[(x + 1) * (h + 1) + y + 1] =
                    u32::from(bad) + t.faulty[x * (h + 1) + y + 1] + t.faulty[(x + 1) * (h + 1) + y]
                        - t.faulty[x * (h + 1) + y];
            }
        }
        t
    }

    /// True if the rectangle lies on the machine (without wrapping around) and none of its
    /// triads holds a dead board or a board with a dead link.
    fn fault_free(&self, x: u16, y: u16, w: u16, h: u16) -> bool {
        let (x0, y0, x1, y1) = (x as usize, y as usize, x as usize + w as usize, y as usize + h as usize);
        let stride = self.height as usize + 1;
        let on = w > 0 && h > 0 && x1 <= self.width as usize && y1 <= self.height as usize;
        on && self.faulty[x1 * stride + y1] + self.faulty[x0 * stride + y0]
            == self.faulty[x0 * stride + y1] + self.faulty[x1 * stride + y0]
    }

    /// Width in triads.
    pub fn width(&self) -> u16 {
        self.width
    }
    /// Height in triads.
    pub fn height(&self) -> u16 {
        self.height
    }
    /// Number of board positions.
    pub fn len(&self) -> usize {
        self.dead.len()
    }
    /// True for a machine with no board positions (never: width and height are ≥ 1).
    pub fn is_empty(&self) -> bool {
        self.dead.is_empty()
    }
    /// Number of live boards.
    pub fn live_count(&self) -> usize {
        self.live_count
    }
    /// True if the board position exists.
    pub fn contains(&self, b: Board) -> bool {
        b.x < self.width && b.y < self.height && b.z < 3
    }
    /// The flat index of a board (which must exist).
    pub fn index(&self, b: Board) -> u32 {
        (b.x as u32 * self.height as u32 + b.y as u32) * 3 + b.z as u32
    }
    /// The board at a flat index.
    pub fn board(&self, i: u32) -> Board {
        let z = (i % 3) as u8;
        let xy = i / 3;
        Board::new((xy / self.height as u32) as u16, (xy % self.height as u32) as u16, z)
    }
    /// True if the board exists and is dead.
    pub fn is_dead(&self, b: Board) -> bool {
        self.contains(b) && self.dead[self.index(b) as usize]
    }
    /// True if the board at index `i` is dead.
    pub fn is_dead_index(&self, i: u32) -> bool {
        self.dead[i as usize]
    }
    /// True if leaving board `i` through `l` is impossible.
    pub fn link_dead(&self, i: u32, l: Link) -> bool {
        self.dead_links[i as usize] & (1 << l as u8) != 0
    }
    /// Neighbour of board `i` through `l`, with wrap flags.
    pub fn neighbour(&self, i: u32, l: Link) -> (u32, WrapAround) {
        let s = self.neighbours[i as usize][l as usize];
        (s.index, s.wrap)
    }

    /// The links leaving a set of boards (sorted, as allocations list them), in (board, link)
    /// order: the links to disable at the FPGAs. A single-board allocation reports all six of
    /// its links, whatever its neighbours, as the reference does.
    pub fn periphery(&self, boards: &[Board], single_board: bool) -> Vec<(Board, Link)> {
        if single_board {
            return boards
                .iter()
                .flat_map(|&b| Link::ALL.iter().map(move |&l| (b, l)))
                .collect();
        }
        let indices: Vec<u32> = boards.iter().map(|&b| self.index(b)).collect();
        debug_assert!(
            indices.windows(2).all(|w| w[0] < w[1]),
            "boards must be sorted and distinct"
        );
        let mut out = Vec::new();
        for (&b, &i) in boards.iter().zip(&indices) {
            for l in Link::ALL {
                let n = self.neighbours[i as usize][l as usize].index;
                if indices.binary_search(&n).is_err() {
                    out.push((b, l));
                }
            }
        }
        out
    }
    /// Live boards of triad (x, y) in ascending z.
    pub fn live_in_triad(&self, x: u16, y: u16) -> impl Iterator<Item = u8> + '_ {
        (0..3u8).filter(move |&z| !self.is_dead(Board::new(x, y, z)))
    }
}

/// The limits a candidate must meet (the reference `_CandidateFilter` arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FilterParams {
    /// Boards expected in a candidate (`None`: 3·w·h), offsetting over-allocation.
    pub expected_boards: Option<u32>,
    /// Most dead or unreachable boards allowed (`None`: any, but at least one live).
    pub max_dead_boards: Option<u32>,
    /// Most dead links allowed between the candidate's boards (`None`: any).
    pub max_dead_links: Option<u32>,
    /// Whether wrap-around links are required.
    pub require_torus: bool,
}

/// An accepted candidate: its live reachable boards and wrap-around (the periphery follows
/// from the boards: [`Topology::periphery`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Boards in (x, y, z) order.
    pub boards: Vec<Board>,
    /// Wrap-around among the set's own links.
    pub torus: WrapAround,
}

/// What a candidate rectangle holds, independent of any request's limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Stats {
    known: bool,
    torus: WrapAround,
    alive: u32,
    dead_links: u32,
    dead_wrap_links: u32,
}

impl Stats {
    fn accepts(&self, w: u16, h: u16, params: &FilterParams) -> bool {
        let alive = self.alive as i64;
        match params.max_dead_boards {
            Some(max) => {
                let expected = params.expected_boards.map(i64::from).unwrap_or(w as i64 * h as i64 * 3);
                if alive == 0 || expected - alive > max as i64 {
                    return false;
                }
            }
            None if alive == 0 => return false,
            None => {}
        }
        if params.require_torus && !self.torus.any() {
            return false;
        }
        if let Some(max) = params.max_dead_links {
            let count = self.dead_links + if params.require_torus { self.dead_wrap_links } else { 0 };
            if count > max {
                return false;
            }
        }
        true
    }
}

/// The member boards of a rectangle that is not entirely live, once searched.
type Members = Option<Box<[Board]>>;

/// What is known of the rectangles of one shape, by position `x · height + y` (filled in as
/// positions are asked about).
#[derive(Debug, Clone)]
struct ShapeCache {
    stats: Box<[Stats]>,
    /// Member boards of rectangles that are not entirely live (found by search).
    members: Option<Box<[Members]>>,
}

/// Per shape `(w, h)` that fits the machine, at index `(w - 1) · height + h - 1`.
type Cache = Vec<Option<ShapeCache>>;

/// Evaluates candidates against a machine's [`Topology`], caching what each rectangle holds.
///
/// Clones share the (immutable) topology and the cache — a clone is cheap, which what-if
/// planning (backfilling) relies on; the cache stays valid for all of them because it depends
/// only on the topology.
#[derive(Debug, Clone)]
pub struct CandidateFilter {
    topo: Arc<Topology>,
    cache: Arc<Mutex<Cache>>,
    stamp: Vec<u32>,
    current: u32,
    queue: Vec<u32>,
    members: Vec<u32>,
}

impl CandidateFilter {
    /// A filter for a machine.
    pub fn new(topo: Topology) -> CandidateFilter {
        CandidateFilter {
            cache: Arc::new(Mutex::new(Self::empty_cache(&topo))),
            topo: Arc::new(topo),
            stamp: Vec::new(),
            current: 0,
            queue: Vec::new(),
            members: Vec::new(),
        }
    }

    /// The machine's board graph.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// Replaces the machine's graph (new faults) and forgets every cached result.
    pub fn set_topology(&mut self, topo: Topology) {
        self.cache = Arc::new(Mutex::new(Self::empty_cache(&topo)));
        self.topo = Arc::new(topo);
    }

    /// A cache with room for every shape that fits the machine.
    fn empty_cache(topo: &Topology) -> Cache {
        vec![None; topo.width as usize * topo.height as usize]
    }

    /// Where the cache keeps `(x, y, w, h)`: its shape's index and its position's; `None` for
    /// a rectangle that does not fit the machine.
    fn cache_key(&self, x: u16, y: u16, w: u16, h: u16) -> Option<(usize, usize)> {
        let (width, height) = (self.topo.width, self.topo.height);
        let fits = w > 0 && h > 0 && w <= width && h <= height && x < width && y < height;
        let height = height as usize;
        fits.then(|| {
            (
                (w as usize - 1) * height + h as usize - 1,
                x as usize * height + y as usize,
            )
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stats(&mut self, x: u16, y: u16, w: u16, h: u16) -> Stats {
        let Some((shape, slot)) = self.cache_key(x, y, w, h) else {
            return self.compute(x, y, w, h);
        };
        if let Some(c) = &self.lock()[shape]
            && c.stats[slot].known
        {
            return c.stats[slot];
        }
        let st = self.compute(x, y, w, h);
        let positions = self.topo.width as usize * self.topo.height as usize;
        let mut cache = self.lock();
        let c = cache[shape].get_or_insert_with(|| ShapeCache {
            stats: vec![Stats::default(); positions].into_boxed_slice(),
            members: None,
        });
        c.stats[slot] = st;
        st
    }

    /// Enumerates the rectangle and classifies its members' links.
    fn compute(&mut self, x: u16, y: u16, w: u16, h: u16) -> Stats {
        if self.topo.fault_free(x, y, w, h) {
            return self.compute_fault_free(x, y, w, h);
        }
        self.search(x, y, w, h)
    }

    /// [`CandidateFilter::compute`] of a rectangle with neither dead boards nor dead links:
    /// such a rectangle is connected, so the search would reach all its boards, and no link
    /// between them is dead. It wraps where a wrap-around link joins two of its boards; only a
    /// board on its border can have a link that wraps around (the link leaves the machine's
    /// edge, which the rectangle does not cross), so only those are looked at.
    fn compute_fault_free(&self, x: u16, y: u16, w: u16, h: u16) -> Stats {
        let topo = &self.topo;
        let inside = |s: &Step| s.x >= x && s.x - x < w && s.y >= y && s.y - y < h;
        let mut torus = WrapAround::NONE;
        let mut border = |xx: u16, yy: u16| {
            let base = (xx as usize * topo.height as usize + yy as usize) * 3;
            for steps in &topo.neighbours[base..base + 3] {
                for s in steps {
                    if s.wrap.any() && inside(s) {
                        torus = torus.union(s.wrap);
                    }
                }
            }
        };
        for xx in x..x + w {
            border(xx, y);
            if h > 1 {
                border(xx, y + h - 1);
            }
        }
        for yy in y + 1..(y + h).saturating_sub(1) {
            border(x, yy);
            if w > 1 {
                border(x + w - 1, yy);
            }
        }
        Stats {
            known: true,
            torus,
            alive: (3 * w as usize * h as usize) as u32,
            dead_links: 0,
            dead_wrap_links: 0,
        }
    }

    /// [`CandidateFilter::compute`] by search.
    fn search(&mut self, x: u16, y: u16, w: u16, h: u16) -> Stats {
        self.enumerate(x, y, w, h);
        let topo = &self.topo;
        let mut st = Stats {
            known: true,
            alive: self.members.len() as u32,
            ..Stats::default()
        };
        for &i in &self.members {
            let dead_links = topo.dead_links[i as usize];
            for (l, step) in topo.neighbours[i as usize].iter().enumerate() {
                if self.stamp[step.index as usize] == self.current {
                    st.torus = st.torus.union(step.wrap);
                    if dead_links & (1 << l) != 0 {
                        if step.wrap.any() {
                            st.dead_wrap_links += 1;
                        } else {
                            st.dead_links += 1;
                        }
                    }
                }
            }
        }
        st
    }

    /// True if `(x, y, w, h)` meets `params` on `topo`.
    pub fn accepts(&mut self, x: u16, y: u16, w: u16, h: u16, params: &FilterParams) -> bool {
        self.stats(x, y, w, h).accepts(w, h, params)
    }

    /// Full evaluation; `Some` with the accepted candidate's boards, periphery and torus.
    pub fn evaluate(&mut self, x: u16, y: u16, w: u16, h: u16, params: &FilterParams) -> Option<Accepted> {
        let st = self.stats(x, y, w, h);
        if !st.accepts(w, h, params) {
            return None;
        }
        let torus = st.torus;
        let full = st.alive as usize == w as usize * h as usize * 3;
        if full {
            // Every board of the rectangle is live and reachable: no search needed.
            let mut boards = Vec::with_capacity(st.alive as usize);
            for xx in x..x + w {
                for yy in y..y + h {
                    boards.extend((0..3).map(|z| Board::new(xx, yy, z)));
                }
            }
            return Some(Accepted { boards, torus });
        }
        let key = self.cache_key(x, y, w, h);
        if let Some((shape, slot)) = key
            && let Some(c) = &self.lock()[shape]
            && let Some(m) = c.members.as_ref().and_then(|m| m[slot].as_ref())
        {
            return Some(Accepted {
                boards: m.to_vec(),
                torus,
            });
        }
        self.enumerate(x, y, w, h);
        let topo = &self.topo;
        // Scanning the rectangle in (x, y, z) order yields the members already sorted.
        let mut boards = Vec::with_capacity(self.members.len());
        let hh = topo.height as u32;
        for xx in x as u32..x as u32 + w as u32 {
            for yy in y as u32..y as u32 + h as u32 {
                let base = (xx * hh + yy) * 3;
                for (z, &stamp) in self.stamp[base as usize..base as usize + 3].iter().enumerate() {
                    if stamp == self.current {
                        boards.push(Board::new(xx as u16, yy as u16, z as u8));
                    }
                }
            }
        }
        if let Some((shape, slot)) = key {
            let positions = self.topo.width as usize * self.topo.height as usize;
            let mut cache = self.lock();
            if let Some(c) = &mut cache[shape] {
                let members = c
                    .members
                    .get_or_insert_with(|| vec![None; positions].into_boxed_slice());
                members[slot] = Some(boards.as_slice().into());
            }
        }
        Some(Accepted { boards, torus })
    }

    /// Breadth-first search from `(x, y, 0)` over live boards inside the rectangle, across
    /// live links; leaves the member indices in `self.members`, marked with `self.current`.
    fn enumerate(&mut self, x: u16, y: u16, w: u16, h: u16) {
        let topo = &self.topo;
        if self.stamp.len() != topo.len() {
            self.stamp = vec![0; topo.len()];
            self.current = 0;
        }
        self.current = self.current.wrapping_add(1);
        if self.current == 0 {
            self.stamp.fill(0);
            self.current = 1;
        }
        self.members.clear();
        self.queue.clear();
        let (x0, y0) = (x, y);
        let (x1, y1) = (x as u32 + w as u32, y as u32 + h as u32);
        let start = topo.index(Board::new(x, y, 0));
        self.queue.push(start);
        let mut head = 0;
        while head < self.queue.len() {
            let i = self.queue[head];
            head += 1;
            if topo.dead[i as usize] || self.stamp[i as usize] == self.current {
                continue;
            }
            self.stamp[i as usize] = self.current;
            self.members.push(i);
            let dead_links = topo.dead_links[i as usize];
            for (l, step) in topo.neighbours[i as usize].iter().enumerate() {
                if dead_links & (1 << l) != 0 {
                    continue;
                }
                if step.x >= x0
                    && (step.x as u32) < x1
                    && step.y >= y0
                    && (step.y as u32) < y1
                    && self.stamp[step.index as usize] != self.current
                {
                    self.queue.push(step.index);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t_periphery(f: &CandidateFilter, a: &Accepted) -> usize {
        f.topology().periphery(&a.boards, false).len()
    }

    fn any() -> FilterParams {
        FilterParams {
            expected_boards: None,
            max_dead_boards: None,
            max_dead_links: None,
            require_torus: false,
        }
    }

    #[test]
    fn reference_periphery_examples() {
        let mut f = CandidateFilter::new(Topology::new(20, 20, [], []));
        let a = f.evaluate(5, 5, 1, 1, &any()).unwrap();
        assert_eq!(
            (a.boards.len(), t_periphery(&f, &a), a.torus),
            (3, 12, WrapAround::NONE)
        );
        let a = f.evaluate(5, 5, 2, 2, &any()).unwrap();
        assert_eq!((a.boards.len(), t_periphery(&f, &a)), (12, 28));
        let a = f.evaluate(0, 3, 20, 1, &any()).unwrap();
        assert_eq!((t_periphery(&f, &a), a.torus), (160, WrapAround::X));
        let a = f.evaluate(0, 0, 20, 20, &any()).unwrap();
        assert_eq!(
            (a.boards.len(), t_periphery(&f, &a), a.torus),
            (1200, 0, WrapAround::BOTH)
        );
        // A 1 x 1 triad of a 1-wide machine wraps in x.
        let mut f = CandidateFilter::new(Topology::new(1, 4, [], []));
        assert_eq!(f.evaluate(0, 1, 1, 1, &any()).unwrap().torus, WrapAround::X);
        // A whole 1 x 1 machine.
        let mut f = CandidateFilter::new(Topology::new(1, 1, [], []));
        let a = f.evaluate(0, 0, 1, 1, &any()).unwrap();
        assert_eq!((t_periphery(&f, &a), a.torus), (0, WrapAround::BOTH));
        // Machine.single_board: one live board.
        let mut f = CandidateFilter::new(Topology::new(1, 1, [Board::new(0, 0, 1), Board::new(0, 0, 2)], []));
        let a = f.evaluate(0, 0, 1, 1, &any()).unwrap();
        assert_eq!((a.boards.len(), t_periphery(&f, &a), a.torus), (1, 6, WrapAround::NONE));
    }

    /// The shortcut for rectangles without faults gives what the search gives, for every
    /// rectangle of machines of several shapes, with and without faults.
    #[test]
    fn fault_free_rectangles_are_judged_as_by_search() {
        let spinnaker1m_dead = [(3, 4, 1), (10, 10, 0), (19, 0, 2), (0, 19, 0), (7, 7, 2), (15, 3, 1)];
        let spinnaker1m_links = [
            (5, 5, 0, Link::North),
            (5, 6, 2, Link::South),
            (12, 1, 1, Link::East),
            (13, 1, 0, Link::West),
        ];
        let machines = [
            Topology::new(1, 1, [], []),
            Topology::new(1, 4, [], []),
            Topology::new(3, 1, [], []),
            Topology::new(2, 2, [], []),
            Topology::new(5, 3, [Board::new(2, 1, 1)], [(Board::new(0, 0, 0), Link::East)]),
            Topology::new(8, 8, [], []),
            Topology::new(
                20,
                20,
                spinnaker1m_dead.map(|(x, y, z)| Board::new(x, y, z)),
                spinnaker1m_links.map(|(x, y, z, l)| (Board::new(x, y, z), l)),
            ),
        ];
        for t in machines {
            let (mw, mh) = (t.width(), t.height());
            let mut f = CandidateFilter::new(t);
            let mut shortcuts = 0;
            for w in 1..=mw {
                for h in 1..=mh {
                    for x in 0..=mw - w {
                        for y in 0..=mh - h {
                            let searched = f.search(x, y, w, h);
                            let computed = f.compute(x, y, w, h);
                            assert_eq!(computed, searched, "{mw}x{mh}: ({x}, {y}, {w}, {h})");
                            if f.topo.fault_free(x, y, w, h) {
                                shortcuts += 1;
                            }
                        }
                    }
                }
            }
            assert!(shortcuts > 0, "{mw}x{mh}");
        }
    }

    #[test]
    fn dead_boards_and_links_limit_candidates() {
        let dead = [Board::new(1, 1, 0), Board::new(2, 2, 1)];
        let t = Topology::new(
            4,
            4,
            dead,
            [
                (Board::new(0, 0, 0), Link::North),
                (Board::new(3, 3, 0), Link::North),
                (Board::new(3, 3, 0), Link::NorthEast),
            ],
        );
        let mut f = CandidateFilter::new(t);
        // Bottom-left board dead: nothing reachable.
        assert!(f.evaluate(1, 1, 1, 1, &any()).is_none());
        let strict = FilterParams {
            max_dead_boards: Some(0),
            ..any()
        };
        assert!(f.evaluate(2, 2, 1, 1, &strict).is_none());
        let one = FilterParams {
            max_dead_boards: Some(1),
            ..any()
        };
        assert_eq!(f.evaluate(2, 2, 1, 1, &one).unwrap().boards.len(), 2);
        // Expected boards offset over-allocation: 2 expected, 2 alive.
        let exp = FilterParams {
            expected_boards: Some(2),
            max_dead_boards: Some(0),
            ..any()
        };
        assert!(f.evaluate(2, 2, 1, 1, &exp).is_some());
        // (3,3,0) cannot leave north or north-east: inside its own triad it reaches nothing.
        let a = f.evaluate(3, 3, 1, 1, &any()).unwrap();
        assert_eq!(a.boards, vec![Board::new(3, 3, 0)]);
        assert_eq!(t_periphery(&f, &a), 6);
        // (0,0,0) cannot go north but reaches (0,0,2) round about through (0,0,1); the dead
        // link then joins two members and counts against max_dead_links.
        let a = f.evaluate(0, 0, 1, 1, &any()).unwrap();
        assert_eq!(a.boards.len(), 3);
        let nolinks = FilterParams {
            max_dead_links: Some(0),
            ..any()
        };
        assert!(f.evaluate(0, 0, 1, 1, &nolinks).is_none());
        let onelink = FilterParams {
            max_dead_links: Some(1),
            ..any()
        };
        assert!(f.accepts(0, 0, 1, 1, &onelink));
        assert!(f.accepts(0, 0, 1, 1, &onelink));
        assert!(!f.accepts(0, 0, 1, 1, &nolinks));
        // Torus only for whole-dimension candidates.
        let torus = FilterParams {
            require_torus: true,
            ..any()
        };
        assert!(f.evaluate(0, 0, 2, 2, &torus).is_none());
        assert!(f.evaluate(0, 0, 4, 4, &torus).is_some());
    }
}
