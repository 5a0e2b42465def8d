//! The reference server's candidate filter: which rectangles of triads are acceptable.
//!
//! A candidate `(x, y, w, h)` is judged by the live boards reachable from its bottom-left
//! board `(x, y, 0)` without leaving the rectangle or crossing a dead link (directional), then
//! by the dead-board and dead-link limits and the torus requirement. The verdict depends only
//! on the rectangle, the request's limits and the machine's dead boards and links — never on
//! what else is allocated — so verdicts are cached per shape and position; the cache is
//! dropped whenever the machine's faults change.

use crate::geometry::{Board, Link, WrapAround, board_down_link};
use std::collections::BTreeMap;
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
        t
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

/// Per shape (w, h): the stats of every position, index `x · height + y`.
type StatsCache = BTreeMap<(u16, u16), Vec<Stats>>;

/// Member boards of searched rectangles, by (x, y, w, h).
type MembersCache = BTreeMap<(u16, u16, u16, u16), Arc<Vec<Board>>>;

/// Evaluates candidates against a machine's [`Topology`], caching what each rectangle holds.
///
/// Clones share the (immutable) topology and the cache — a clone is cheap, which what-if
/// planning (backfilling) relies on; the cache stays valid for all of them because it depends
/// only on the topology.
#[derive(Debug, Clone)]
pub struct CandidateFilter {
    topo: Arc<Topology>,
    cache: Arc<Mutex<StatsCache>>,
    /// Member boards of rectangles that are not entirely live (found by search), by
    /// (x, y, w, h).
    members_cache: Arc<Mutex<MembersCache>>,
    stamp: Vec<u32>,
    current: u32,
    queue: Vec<u32>,
    members: Vec<u32>,
}

impl CandidateFilter {
    /// A filter for a machine.
    pub fn new(topo: Topology) -> CandidateFilter {
        CandidateFilter {
            topo: Arc::new(topo),
            cache: Arc::new(Mutex::new(BTreeMap::new())),
            members_cache: Arc::new(Mutex::new(BTreeMap::new())),
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
        self.topo = Arc::new(topo);
        self.cache = Arc::new(Mutex::new(BTreeMap::new()));
        self.members_cache = Arc::new(Mutex::new(BTreeMap::new()));
    }

    fn stats(&mut self, x: u16, y: u16, w: u16, h: u16) -> Stats {
        let topo = &self.topo;
        let slot = x as usize * topo.height as usize + y as usize;
        let n = topo.width as usize * topo.height as usize;
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(v) = cache.get(&(w, h))
                && v[slot].known
            {
                return v[slot];
            }
        }
        let st = self.compute(x, y, w, h);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let v = cache.entry((w, h)).or_insert_with(|| vec![Stats::default(); n]);
        v[slot] = st;
        st
    }

    /// Enumerates the rectangle and classifies its members' links.
    fn compute(&mut self, x: u16, y: u16, w: u16, h: u16) -> Stats {
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
        if let Some(m) = self
            .members_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(x, y, w, h))
        {
            return Some(Accepted {
                boards: m.as_ref().clone(),
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
        self.members_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((x, y, w, h), Arc::new(boards.clone()));
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
