//! The packing policy named `anywhere`: rectangles of triads at any free position, chosen by
//! a fragmentation-aware score, and (optionally) exactly the boards a job asks for.
//!
//! The reference ([`super::spalloc`]) only ever offers the four corners of the free leaves of
//! its guillotine tree, so a fragmented tree can refuse a rectangle the machine has room for,
//! and it always hands out whole triads (or whole rectangles of them). This policy keeps the
//! reference's *acceptance* rules and changes only *where* things go and, with
//! `exact_boards`, *how many* boards a "at least n boards" job takes.
//!
//! # Acceptance (shared with the reference)
//!
//! A candidate is a `w × h` rectangle of triads at `(x, y)` with `x + w ≤ W` and `y + h ≤ H`
//! (rectangles never wrap, as in the reference). The reference's
//! [`CandidateFilter`] judges it with the same [`FilterParams`] the reference would use:
//! `expected_boards` is `None` for `w × h` requests and `Some(n)` for "at least n boards";
//! `max_dead_boards`, `max_dead_links` and `require_torus` come from the request. The
//! boards a job gets are the filter's: the live boards reachable from `(x, y, 0)` inside the
//! rectangle. On top of that, every board the allocation would take must be free.
//!
//! # Occupancy
//!
//! A per-board bitmap (`busy`) and, per triad, the counts of busy boards and of free live
//! boards. A triad is *blocked* if it holds a busy board or has no live board, and *suspect*
//! if it has a dead board or a board with a dead link. Derived structures answer rectangle
//! questions in O(1):
//!
//! - summed-area tables (two 32-bit lanes per `u64` entry): live boards and suspect triads
//!   (rebuilt when the faults change), and free live boards (brought up to date lazily, cell
//!   by cell or from scratch, only for the scans that need it);
//! - prefix sums of blocked triads along every row and column (the contact score), updated
//!   when a triad's blocked flag flips;
//! - on machines at most 64 triads wide, one `u64` per row of triads for "unblocked and not
//!   suspect", "no busy live board" and "suspect": folding a row bitmap over `w` columns and
//!   `h` rows gives, for a whole `w × h` shape, every free position at once.
//!
//! A rectangle without suspect triads holds only live boards, all reachable, so it is
//! acceptable for whole triads exactly when none of its triads is blocked. A rectangle with
//! suspect triads is acceptable when it has no busy live board; with busy live boards, it is
//! rejected at once if all its live boards are reachable (the reachable count is computed once
//! per shape and position, and cached), and otherwise checked board by board.
//!
//! # Score (deterministic; larger is better, compared in this order)
//!
//! 1. `exact_boards` only: fewest *leftover* boards — the rectangle's free live boards minus
//!    `min(n, live boards)`, i.e. what the job leaves free there. This absorbs the remains of
//!    partly used triads before a whole free triad is broken into.
//! 2. Most *contact*: of the `2w + 2h` unit edges of the rectangle's perimeter, how many face
//!    the machine's edge or a blocked triad. Packing against walls and against existing
//!    allocations (the "contact point" rule of 2-D bin packing, a generalisation of
//!    bottom-left) keeps the free space in few large blocks rather than carving holes in its
//!    middle: a candidate with full contact fills a hole exactly.
//! 3. Most dead boards inside (only rectangles the request accepts compete): tolerant jobs
//!    are steered onto damaged areas, keeping intact ones for strict jobs (clients ask for
//!    `max_dead_boards = 0` by default).
//! 4. Tie-break: lowest `y`, then lowest `x`, then the earlier shape of the tier.
//!
//! # Shapes
//!
//! - `Triads { w, h }`: exactly that rectangle (no rotation); `require_torus` only for the
//!   whole machine, as in the reference.
//! - `Boards { n, min_ratio }`, `t = ⌈n/3⌉` triads: shapes are tried in *tiers*, the best
//!   position over all shapes of a tier wins, and a later tier is tried only if nothing in the
//!   earlier ones fits. Tier 0 is `area_to_rect(t, W, H, min_ratio)` (the reference's shape
//!   for the idle machine) and its rotation. Then come the other *minimal* shapes — `w × h`
//!   within the machine, `w·h ≥ t`, aspect ratio `min/max ≥ min_ratio` (flipped when above
//!   1), containing no smaller such shape — one tier per area, smallest area first, narrower
//!   first inside a tier. `require_torus` needs `t = W·H` (so only the whole machine), as in
//!   the reference.
//! - `AnyBoard`: a free live board of a partly used triad, the one with the fewest free
//!   boards left (then lowest `y`, `x`), so that whole triads stay free; otherwise a whole
//!   free triad with a live board, chosen by the score as a `1 × 1` rectangle. In the triad,
//!   the lowest free live `z`.
//! - `Board { board }`: that board, if it exists, lives and is free.
//!
//! # Exact boards
//!
//! With `exact_boards`, a `Boards { n }` request without `require_torus` takes exactly
//! `m = min(n, |S|)` boards, `S` being the filter's boards for the chosen rectangle (`|S| < n`
//! only when the request's dead-board allowance accepted a rectangle short of boards; the
//! reference would hand out all of `S` then). The set is grown over the free boards of `S`,
//! crossing only links that are live in both directions, from the rectangle's bottom-left free
//! board of `S` in *scan order* (rows bottom-up, each left to right, `z` ascending), always
//! adding the adjacent board that comes first in scan order, until it has `m` boards (or, if
//! that component is too small, again from the next unvisited board). It is connected, holds
//! no more dead links than `S` (which the filter already checked), and fills whole triads row
//! by row, so that what it leaves of the rectangle is — without faults — at most one partly
//! used triad and whole free ones at the end of the top row. The rectangle's other boards
//! stay free for later jobs: rectangles may then overlap partly used triads, and are
//! acceptable only if every board they take is free. `torus` is recomputed for the chosen set (the filter's rule:
//! the wrap flags of the links among its members).
//!
//! # Cost
//!
//! An attempt visits every position of every shape of a tier, with O(1) work (a few table
//! lookups) per position, or — whole rectangles on machines at most 64 triads wide — a few
//! word operations per row plus O(1) per free or suspect position. The filter is asked once
//! per shape and request limits for all positions without suspect triads (its statistics are
//! the same at all of them), and per position, through its own cache, only where a suspect
//! triad lies inside. The `packers` benchmark (`core/benches/packers.rs`) measures
//! allocations per second on a 20 × 20 machine.

use super::area::area_to_rect;
use super::filter::{CandidateFilter, FilterParams, Topology};
use super::{AllocId, Allocation, Packer, Request, Shape, rooted_rect};
use crate::geometry::{Board, Link, WrapAround};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::{Arc, Mutex};

/// Most cached clean verdicts (one per shape and request limits) before the cache is dropped.
const VERDICT_CACHE_LIMIT: usize = 4096;
/// A reachable count not computed yet.
const UNKNOWN: u32 = u32::MAX;

/// What a rectangle holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    /// Live boards not held by an allocation.
    free: u32,
    /// Live boards.
    live: u32,
    /// Triads with a dead board or a board with a dead link.
    suspect: u32,
}

/// A summed-area table over the triad grid (triad `t = x · H + y`) with two 32-bit lanes per
/// entry packed in a `u64`. Sums use wrapping arithmetic: each lane of a rectangle's sum is
/// exact as long as it is below 2³² (counts here are at most `3 · W · H`). Row 0 and column 0
/// of the table are zero.
#[derive(Debug, Clone, Default)]
struct Sat {
    stride: usize,
    v: Vec<u64>,
}

impl Sat {
    /// Builds the table from the cells in triad order.
    fn build(&mut self, w: usize, h: usize, mut cells: impl Iterator<Item = u64>) {
        let stride = h + 1;
        if self.stride != stride || self.v.len() != (w + 1) * stride {
            self.stride = stride;
            self.v.clear();
            self.v.resize((w + 1) * stride, 0);
        }
        for x in 0..w {
            let (prev, cur) = self.v.split_at_mut((x + 1) * stride);
            let prev = &prev[x * stride + 1..x * stride + stride];
            let mut column = 0u64;
            for (c, p) in cur[1..stride].iter_mut().zip(prev) {
                column = column.wrapping_add(cells.next().unwrap_or(0));
                *c = p.wrapping_add(column);
            }
        }
    }

    /// Adds `delta` (wrapping) to the cell of triad `(x, y)`: to every entry above and to the
    /// right of it.
    fn add(&mut self, x: usize, y: usize, delta: u64) {
        let s = self.stride;
        for column in self.v.chunks_exact_mut(s).skip(x + 1) {
            for e in &mut column[y + 1..] {
                *e = e.wrapping_add(delta);
            }
        }
    }

    /// The sums (both lanes) at `(x, y)` for `y = 0 ..= H − h`, for `w × h` rectangles.
    #[inline]
    fn column(&self, x: usize, w: usize, h: usize) -> impl Iterator<Item = (u32, u32)> + '_ {
        let s = self.stride;
        let n = s - h;
        let c0 = &self.v[x * s..x * s + s];
        let c1 = &self.v[(x + w) * s..(x + w) * s + s];
        c0[..n]
            .iter()
            .zip(&c0[h..])
            .zip(c1[..n].iter().zip(&c1[h..]))
            .map(|((&a, &b), (&c, &d))| {
                let v = d.wrapping_sub(b).wrapping_sub(c).wrapping_add(a);
                (v as u32, (v >> 32) as u32)
            })
    }

    /// Both lanes summed over the rectangle.
    #[inline]
    fn sum(&self, x: usize, y: usize, w: usize, h: usize) -> (u32, u32) {
        let s = self.stride;
        let (x1, y1) = (x + w, y + h);
        let v = self.v[x1 * s + y1]
            .wrapping_sub(self.v[x * s + y1])
            .wrapping_sub(self.v[x1 * s + y])
            .wrapping_add(self.v[x * s + y]);
        (v as u32, (v >> 32) as u32)
    }
}

/// Prefix sums of blocked triads along every row and every column, for the contact score,
/// over the grid padded with a border of blocked cells (the machine's edge counts as
/// contact): padded cell `(x + 1, y + 1)` is triad `(x, y)`.
#[derive(Debug, Clone, Default)]
struct Strips {
    w: usize,
    h: usize,
    /// Entry `x · (H + 2) + y`: blocked padded cells `(x', y)` with `x' < x`.
    rows: Vec<u32>,
    /// Entry `x · (H + 3) + y`: blocked padded cells `(x, y')` with `y' < y`.
    cols: Vec<u32>,
}

impl Strips {
    /// Builds the sums from the per-triad blocked flags (index `x · H + y`).
    fn build(&mut self, w: usize, h: usize, blocked: &[bool]) {
        let (pw, ph) = (w + 2, h + 2);
        self.w = w;
        self.h = h;
        self.rows.clear();
        self.rows.resize((pw + 1) * ph, 0);
        self.cols.clear();
        self.cols.resize(pw * (ph + 1), 0);
        let cell = |x: usize, y: usize| -> u32 {
            if x == 0 || y == 0 || x == pw - 1 || y == ph - 1 {
                1
            } else {
                blocked[(x - 1) * h + y - 1] as u32
            }
        };
        for x in 0..pw {
            for y in 0..ph {
                let b = cell(x, y);
                self.rows[(x + 1) * ph + y] = self.rows[x * ph + y] + b;
                self.cols[x * (ph + 1) + y + 1] = self.cols[x * (ph + 1) + y] + b;
            }
        }
    }

    /// Triad `(x, y)` became blocked (`true`) or unblocked.
    fn flip(&mut self, x: usize, y: usize, blocked: bool) {
        let (pw, ph) = (self.w + 2, self.h + 2);
        let (px, py) = (x + 1, y + 1);
        let update = |e: &mut u32| {
            if blocked {
                *e += 1;
            } else {
                *e -= 1;
            }
        };
        for xx in px + 1..=pw {
            update(&mut self.rows[xx * ph + py]);
        }
        for e in &mut self.cols[px * (ph + 1) + py + 1..(px + 1) * (ph + 1)] {
            update(e);
        }
    }

    /// Of the `2w + 2h` unit edges of the rectangle's perimeter, those facing the machine's
    /// edge or a blocked triad.
    #[inline]
    fn contact(&self, x: usize, y: usize, w: usize, h: usize) -> u32 {
        let ph = self.h + 2;
        // Padded coordinates: the rectangle spans x + 1 ..= x + w, y + 1 ..= y + h.
        let row = |py: usize| self.rows[(x + w + 1) * ph + py] - self.rows[(x + 1) * ph + py];
        let col = |px: usize| self.cols[px * (ph + 1) + y + h + 1] - self.cols[px * (ph + 1) + y + 1];
        row(y) + row(y + h + 1) + col(x) + col(x + w + 1)
    }
}

/// How a rectangle's boards are handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Every live reachable board of the rectangle (the reference).
    Whole,
    /// Exactly `min(n, reachable)` connected free boards.
    Exact(u32),
}

/// A candidate's score; the largest wins (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    leftover: Reverse<u32>,
    contact: u32,
    dead: u32,
    y: Reverse<u16>,
    x: Reverse<u16>,
    shape: Reverse<u16>,
}

#[derive(Debug, Clone, Copy)]
struct Cand {
    key: Key,
    x: u16,
    y: u16,
    w: u16,
    h: u16,
    /// Must be checked board by board: exact boards, or busy live boards inside and not all
    /// live boards reachable.
    check: bool,
}

/// Reusable buffers (a copy of the packer starts with empty ones).
#[derive(Debug, Default)]
struct Scratch {
    cands: Vec<Cand>,
    mark: Vec<u8>,
    queue: Vec<u32>,
    heap: BinaryHeap<Reverse<(ScanKey, u32)>>,
    bfs: Bfs,
    rows: Vec<u64>,
    rows2: Vec<u64>,
}

impl Clone for Scratch {
    fn clone(&self) -> Scratch {
        Scratch::default()
    }
}

/// A board's place in scan order: `(y, x, z)`.
type ScanKey = (u16, u16, u8);

/// What depends only on the faults and is filled in as needed; copies of the packer share it
/// (a fault change gives the packer a new one), so a copy is cheap.
#[derive(Debug, Default)]
struct Shared {
    /// The filter's verdict, per shape and limits, on positions without suspect triads (the
    /// filter's statistics are the same at every such position of a shape).
    clean: BTreeMap<(u16, u16, FilterParams), bool>,
    /// Live boards reachable from each position's `(x, y, 0)`, per shape ([`UNKNOWN`] until
    /// needed).
    reach: BTreeMap<(u16, u16), Vec<u32>>,
}

/// The shapes to try, tier by tier.
type Tiers = Vec<Vec<(u16, u16)>>;

/// Buffers of [`reach_count`].
#[derive(Debug, Clone, Default)]
struct Bfs {
    stamp: Vec<u32>,
    current: u32,
    queue: Vec<u32>,
}

/// The number of live boards reachable from `(x, y, 0)` inside the rectangle: the size of the
/// filter's board set, found by the same search (breadth-first over live boards, leaving a
/// board only through links not dead on its side, staying inside the rectangle).
fn reach_count(topo: &Topology, bfs: &mut Bfs, (x, y, w, h): (u16, u16, u16, u16)) -> u32 {
    if bfs.stamp.len() != topo.len() {
        bfs.stamp = vec![0; topo.len()];
        bfs.current = 0;
    }
    bfs.current = bfs.current.wrapping_add(1);
    if bfs.current == 0 {
        bfs.stamp.fill(0);
        bfs.current = 1;
    }
    let cur = bfs.current;
    let (x1, y1) = (x as u32 + w as u32, y as u32 + h as u32);
    bfs.queue.clear();
    bfs.queue.push(topo.index(Board::new(x, y, 0)));
    let mut count = 0;
    let mut head = 0;
    while head < bfs.queue.len() {
        let i = bfs.queue[head];
        head += 1;
        if topo.is_dead_index(i) || bfs.stamp[i as usize] == cur {
            continue;
        }
        bfs.stamp[i as usize] = cur;
        count += 1;
        for l in Link::ALL {
            if topo.link_dead(i, l) {
                continue;
            }
            let (j, _) = topo.neighbour(i, l);
            let b = topo.board(j);
            let inside = b.x >= x && (b.x as u32) < x1 && b.y >= y && (b.y as u32) < y1;
            if inside && bfs.stamp[j as usize] != cur {
                bfs.queue.push(j);
            }
        }
    }
    count
}

const MEMBER: u8 = 1;
const SEEN: u8 = 2;
const CHOSEN: u8 = 3;

/// The `anywhere` packing policy.
#[derive(Debug, Clone)]
pub struct AnywherePacker {
    filter: CandidateFilter,
    exact_boards: bool,
    width: u16,
    height: u16,
    /// Per board: held by a live allocation.
    busy: Vec<bool>,
    /// Per triad: boards held (dead or alive).
    triad_busy: Vec<u8>,
    /// Per triad: live boards not held.
    triad_free: Vec<u8>,
    /// Per triad: live boards.
    triad_live: Vec<u8>,
    /// Per triad: a dead board, or a board with a dead link.
    triad_suspect: Vec<bool>,
    /// Some triad is suspect.
    any_suspect: bool,
    /// Lanes: live boards, suspect triads (rebuilt when the faults change).
    static_sat: Sat,
    /// Lane 0: free live boards (brought up to date lazily, for exact boards).
    free_sat: Sat,
    /// Blocked triads along rows and columns.
    strips: Strips,
    /// Per triad: blocked (holding a busy board, or without a live board).
    blocked: Vec<bool>,
    /// Triads not blocked and not suspect.
    ok: Bits,
    /// Triads without a busy live board.
    nobusy: Bits,
    /// Suspect triads.
    suspect: Bits,
    /// Whole rectangles are found from the bitmaps (machines at most 64 triads wide; tests
    /// may turn it off to compare with the table scan).
    use_bitmaps: bool,
    /// Triads changed since `free_sat` was last brought up to date (each once).
    pending: Vec<u32>,
    /// Per triad: in `pending`.
    pending_mark: Vec<bool>,
    /// Per triad: the free count `free_sat` holds.
    seen_free: Vec<u8>,
    /// `free_sat` must be rebuilt from scratch.
    rebuild: bool,
    /// Clean verdicts and reachable counts.
    shared: Arc<Mutex<Shared>>,
    /// Board indices of every live allocation (shared, so that a copy of the packer — EASY
    /// plans on many — does not copy them).
    allocations: BTreeMap<AllocId, Arc<[u32]>>,
    next_id: AllocId,
    generation: u64,
    allocated_boards: usize,
    scratch: Scratch,
}

impl AnywherePacker {
    /// A packer for an idle `width × height` triad machine with the given faults; with
    /// `exact_boards`, "at least n boards" requests get exactly n boards (see the module
    /// documentation).
    pub fn new(
        width: u16,
        height: u16,
        dead_boards: &[Board],
        dead_links: &[(Board, Link)],
        exact_boards: bool,
    ) -> AnywherePacker {
        let topo = Topology::new(width, height, dead_boards.iter().copied(), dead_links.iter().copied());
        let triads = width as usize * height as usize;
        let mut p = AnywherePacker {
            filter: CandidateFilter::new(topo),
            exact_boards,
            width,
            height,
            busy: vec![false; triads * 3],
            triad_busy: vec![0; triads],
            triad_free: vec![0; triads],
            triad_live: vec![0; triads],
            triad_suspect: vec![false; triads],
            any_suspect: false,
            static_sat: Sat::default(),
            free_sat: Sat::default(),
            strips: Strips::default(),
            blocked: vec![false; triads],
            ok: Bits::default(),
            nobusy: Bits::default(),
            suspect: Bits::default(),
            use_bitmaps: width <= 64,
            pending: Vec::new(),
            pending_mark: vec![false; triads],
            seen_free: vec![0; triads],
            rebuild: true,
            shared: Arc::default(),
            allocations: BTreeMap::new(),
            next_id: 1,
            generation: 0,
            allocated_boards: 0,
            scratch: Scratch::default(),
        };
        p.faults_changed();
        p
    }

    /// The machine's board graph.
    pub fn topology(&self) -> &Topology {
        self.filter.topology()
    }

    /// Whether "at least n boards" requests get exactly n boards.
    pub fn exact_boards(&self) -> bool {
        self.exact_boards
    }

    /// True if the board exists and is held by a live allocation.
    pub fn is_busy(&self, b: Board) -> bool {
        self.topology().contains(b) && self.busy[self.topology().index(b) as usize]
    }

    /// Recomputes everything that depends on the faults (allocations are kept).
    fn faults_changed(&mut self) {
        let topo = self.filter.topology();
        let (w, h) = (self.width as usize, self.height as usize);
        for t in 0..w * h {
            let mut suspect = false;
            let mut live = 0;
            let mut free = 0;
            for z in 0..3 {
                let i = (t * 3 + z) as u32;
                if !topo.is_dead_index(i) {
                    live += 1;
                    if !self.busy[i as usize] {
                        free += 1;
                    }
                }
                if topo.is_dead_index(i) || Link::ALL.iter().any(|&l| topo.link_dead(i, l)) {
                    suspect = true;
                }
            }
            self.triad_live[t] = live;
            self.triad_free[t] = free;
            self.triad_suspect[t] = suspect;
        }
        self.any_suspect = self.triad_suspect.contains(&true);
        let cells = self.triad_live.iter().zip(&self.triad_suspect);
        self.static_sat.build(
            w,
            h,
            cells.map(|(&live, &suspect)| live as u64 | (suspect as u64) << 32),
        );
        self.suspect.reset(w, h);
        self.ok.reset(w, h);
        self.nobusy.reset(w, h);
        for x in 0..w {
            for y in 0..h {
                let t = x * h + y;
                let blocked = self.triad_busy[t] > 0 || self.triad_live[t] == 0;
                self.blocked[t] = blocked;
                self.suspect.set(x, y, self.triad_suspect[t]);
                self.ok.set(x, y, !blocked && !self.triad_suspect[t]);
                self.nobusy.set(x, y, self.triad_free[t] == self.triad_live[t]);
            }
        }
        self.strips.build(w, h, &self.blocked);
        self.shared = Arc::default();
        self.rebuild = true;
    }

    /// [`Self::changed`] for the triads of these boards (sorted: a triad's boards are
    /// consecutive).
    fn changed_boards(&mut self, boards: &[u32]) {
        let mut last = None;
        for &i in boards {
            let t = i as usize / 3;
            if last != Some(t) {
                self.changed(t);
                last = Some(t);
            }
        }
    }

    /// Brings the occupancy structures up to date after triad `t` changed: the bitmaps and
    /// the contact sums at once, the free-board table later ([`Self::refresh_free`]).
    fn changed(&mut self, t: usize) {
        let h = self.height as usize;
        let (x, y) = (t / h, t % h);
        let blocked = self.triad_busy[t] > 0 || self.triad_live[t] == 0;
        if blocked != self.blocked[t] {
            self.strips.flip(x, y, blocked);
            self.blocked[t] = blocked;
        }
        self.ok.set(x, y, !blocked && !self.triad_suspect[t]);
        self.nobusy.set(x, y, self.triad_free[t] == self.triad_live[t]);
        if !self.pending_mark[t] {
            self.pending_mark[t] = true;
            self.pending.push(t as u32);
        }
    }

    /// Brings the free-board table up to date: cell by cell when that touches fewer entries
    /// than a rebuild from scratch (which costs a few times more per entry).
    fn refresh_free(&mut self) {
        let (w, h) = (self.width as usize, self.height as usize);
        // A cell update touches the entries above and to the right of the cell.
        let cost: usize = self
            .pending
            .iter()
            .map(|&t| (w - t as usize / h) * (h - t as usize % h))
            .sum();
        if self.rebuild || cost > 4 * w * h {
            self.seen_free.copy_from_slice(&self.triad_free);
            self.free_sat.build(w, h, self.triad_free.iter().map(|&f| f as u64));
            self.rebuild = false;
        } else {
            for &t in &self.pending {
                let t = t as usize;
                let (free, seen) = (self.triad_free[t], self.seen_free[t]);
                if free != seen {
                    self.free_sat.add(t / h, t % h, (free as u64).wrapping_sub(seen as u64));
                    self.seen_free[t] = free;
                }
            }
        }
        for &t in &self.pending {
            self.pending_mark[t as usize] = false;
        }
        self.pending.clear();
    }

    fn params(req: &Request, expected: Option<u32>) -> FilterParams {
        FilterParams {
            expected_boards: expected,
            max_dead_boards: req.max_dead_boards,
            max_dead_links: req.max_dead_links,
            require_torus: req.require_torus,
        }
    }

    /// The shape tiers for a request, or `None` if it can never fit this machine.
    fn tiers(&self, req: &Request) -> Option<(Tiers, FilterParams, Mode)> {
        let (mw, mh) = (self.width as u32, self.height as u32);
        match req.shape {
            Shape::Triads { w, h } => {
                if w == 0 || h == 0 || w > mw || h > mh || (req.require_torus && (w != mw || h != mh)) {
                    return None;
                }
                Some((vec![vec![(w as u16, h as u16)]], Self::params(req, None), Mode::Whole))
            }
            Shape::Boards { n, min_ratio } => {
                let t = n.div_ceil(3);
                if t == 0 || mw == 0 || mh == 0 || (req.require_torus && t as u64 != mw as u64 * mh as u64) {
                    return None;
                }
                let tiers = board_tiers(t, mw, mh, min_ratio)?;
                let mode = if self.exact_boards && !req.require_torus {
                    Mode::Exact(n)
                } else {
                    Mode::Whole
                };
                Some((tiers, Self::params(req, Some(n)), mode))
            }
            Shape::AnyBoard | Shape::Board { .. } | Shape::TriadsAt { .. } => None,
        }
    }

    /// The filter's verdict on the positions of `w × h` without suspect triads (`false` if
    /// there is none). Such a rectangle holds only live boards, all reachable, and no dead
    /// link, and wraps around exactly in the dimensions it spans, so the filter's statistics
    /// — hence its verdict — are the same at all of them: one call answers for every one.
    fn clean_verdict(&mut self, w: u16, h: u16, params: &FilterParams) -> bool {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&v) = shared.clean.get(&(w, h, *params)) {
            return v;
        }
        if shared.clean.len() >= VERDICT_CACHE_LIMIT {
            shared.clean.clear();
        }
        let (mw, mh) = (self.width as usize, self.height as usize);
        let (wu, hu) = (w as usize, h as usize);
        let mut v = false;
        'find: for x in 0..=mw - wu {
            for y in 0..=mh - hu {
                if self.static_sat.sum(x, y, wu, hu).1 == 0 {
                    v = self.filter.accepts(x as u16, y as u16, w, h, params);
                    break 'find;
                }
            }
        }
        shared.clean.insert((w, h, *params), v);
        v
    }

    /// Visits every acceptable position of `w × h`: keeps the best in `best` or, with
    /// `collect`, adds them all to the candidate list.
    #[allow(clippy::too_many_arguments)]
    fn scan(
        &mut self,
        w: u16,
        h: u16,
        shape: u16,
        params: &FilterParams,
        mode: Mode,
        best: &mut Option<Cand>,
        collect: bool,
    ) {
        let clean = self.clean_verdict(w, h, params);
        let (mw, mh) = (self.width as usize, self.height as usize);
        let (wu, hu) = (w as usize, h as usize);
        let table = matches!(mode, Mode::Exact(_)) || !self.use_bitmaps;
        if table {
            self.refresh_free();
        }
        let Scratch {
            cands,
            bfs,
            rows,
            rows2,
            ..
        } = &mut self.scratch;
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let reach = if self.any_suspect {
            Some(shared.reach.entry((w, h)).or_insert_with(|| vec![UNKNOWN; mw * mh]))
        } else {
            None
        };
        let mut v = Visit {
            filter: &mut self.filter,
            reach,
            strips: &self.strips,
            bfs,
            cands,
            w,
            h,
            shape,
            params,
            mode,
            clean,
            collect,
            best,
        };
        if table {
            for x in 0..=mw - wu {
                let sums = self.static_sat.column(x, wu, hu).zip(self.free_sat.column(x, wu, hu));
                for (y, ((live, suspect), (free, _))) in sums.enumerate() {
                    v.visit(x, y, Counts { free, live, suspect });
                }
            }
            return;
        }
        // Whole rectangles on machines at most 64 triads wide, from the row bitmaps: the
        // positions whose triads are all unblocked and not suspect are free; those with a
        // suspect triad get the full treatment (with "no busy live board" from the bitmaps);
        // every other position holds a busy board that would be taken.
        let valid = if mw - wu + 1 == 64 {
            u64::MAX
        } else {
            (1u64 << (mw - wu + 1)) - 1
        };
        let bitmap = |bits: &Bits, out: &mut Vec<u64>, and: bool| {
            out.clear();
            out.extend((0..mh).map(|y| bits.row(y)[0]));
            fold(out, wu, hu, and);
        };
        if clean {
            bitmap(&self.ok, rows, true);
            for (y, &row) in rows[..=mh - hu].iter().enumerate() {
                let mut bits = row & valid;
                while bits != 0 {
                    let x = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    v.offer(x, y, 0, false, (wu * hu * 3) as u32);
                }
            }
        }
        if v.reach.is_some() {
            bitmap(&self.suspect, rows, false);
            bitmap(&self.nobusy, rows2, true);
            for (y, (&row, &nobusy)) in rows[..=mh - hu].iter().zip(rows2.iter()).enumerate() {
                let mut bits = row & valid;
                while bits != 0 {
                    let x = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    let (live, suspect) = self.static_sat.sum(x, y, wu, hu);
                    v.visit_whole(x, y, live, suspect, nobusy >> x & 1 == 1);
                }
            }
        }
    }

    /// The boards (indices, sorted) and wrap-around a candidate would get, if it is usable.
    fn take(&mut self, c: &Cand, params: &FilterParams, mode: Mode) -> Option<(Vec<u32>, WrapAround)> {
        match mode {
            Mode::Whole => {
                let acc = self.filter.evaluate(c.x, c.y, c.w, c.h, params)?;
                let topo = self.filter.topology();
                let idx: Vec<u32> = acc.boards.iter().map(|&b| topo.index(b)).collect();
                if c.check && idx.iter().any(|&i| self.busy[i as usize]) {
                    return None;
                }
                Some((idx, acc.torus))
            }
            Mode::Exact(n) => {
                let clean = self
                    .static_sat
                    .sum(c.x as usize, c.y as usize, c.w as usize, c.h as usize)
                    .1
                    == 0;
                exact_pick(
                    &mut self.filter,
                    Some(self.busy.as_slice()),
                    &mut self.scratch,
                    (c.x, c.y, c.w, c.h),
                    params,
                    n,
                    clean,
                )
            }
        }
    }

    /// Places a rectangle request: the best usable candidate of the first tier that has one.
    fn alloc_rect(&mut self, tiers: &[Vec<(u16, u16)>], params: &FilterParams, mode: Mode) -> Option<Allocation> {
        for tier in tiers {
            let mut best = None;
            for (i, &(w, h)) in tier.iter().enumerate() {
                self.scan(w, h, i as u16, params, mode, &mut best, false);
            }
            let Some(best) = best else { continue };
            let mut found = self.take(&best, params, mode);
            if found.is_none() {
                // The best was unusable (in exact mode its free boards may not be connected):
                // try the others, best first.
                self.scratch.cands.clear();
                for (i, &(w, h)) in tier.iter().enumerate() {
                    self.scan(w, h, i as u16, params, mode, &mut None, true);
                }
                let mut cands = std::mem::take(&mut self.scratch.cands);
                cands.retain(|c| c.key != best.key);
                // Usually one of the next few works: pick them one by one, then sort the rest.
                for _ in 0..8 {
                    let Some((i, _)) = cands.iter().enumerate().max_by_key(|(_, c)| c.key) else {
                        break;
                    };
                    let c = cands.swap_remove(i);
                    found = self.take(&c, params, mode);
                    if found.is_some() {
                        break;
                    }
                }
                if found.is_none() {
                    cands.sort_unstable_by_key(|c| Reverse(c.key));
                    for c in &cands {
                        found = self.take(c, params, mode);
                        if found.is_some() {
                            break;
                        }
                    }
                }
                self.scratch.cands = cands;
            }
            if let Some((boards, torus)) = found {
                return Some(self.record(boards, torus, false));
            }
        }
        None
    }

    fn alloc_any_board(&mut self) -> Option<Allocation> {
        let (mw, mh) = (self.width as usize, self.height as usize);
        // A partly used triad with the fewest free boards left.
        let mut best: Option<(u8, usize, usize)> = None;
        for x in 0..mw {
            for y in 0..mh {
                let t = x * mh + y;
                let free = self.triad_free[t];
                if self.triad_busy[t] > 0 && free > 0 && best.is_none_or(|b| (free, y, x) < b) {
                    best = Some((free, y, x));
                }
            }
        }
        let t = match best {
            Some((_, y, x)) => x * mh + y,
            None => {
                // A whole free triad, by the score.
                let mut best: Option<(Key, usize)> = None;
                for x in 0..mw {
                    for y in 0..mh {
                        let t = x * mh + y;
                        if self.triad_busy[t] > 0 || self.triad_free[t] == 0 {
                            continue;
                        }
                        let key = Key {
                            leftover: Reverse(0),
                            contact: self.strips.contact(x, y, 1, 1),
                            dead: 3 - self.triad_live[t] as u32,
                            y: Reverse(y as u16),
                            x: Reverse(x as u16),
                            shape: Reverse(0),
                        };
                        if best.is_none_or(|(k, _)| key > k) {
                            best = Some((key, t));
                        }
                    }
                }
                best?.1
            }
        };
        let topo = self.filter.topology();
        let i = (0..3)
            .map(|z| (t * 3 + z) as u32)
            .find(|&i| !topo.is_dead_index(i) && !self.busy[i as usize])?;
        Some(self.record(vec![i], WrapAround::NONE, true))
    }

    fn alloc_board(&mut self, b: Board) -> Option<Allocation> {
        let topo = self.filter.topology();
        if !topo.contains(b) || topo.is_dead(b) {
            return None;
        }
        let i = topo.index(b);
        if self.busy[i as usize] {
            return None;
        }
        Some(self.record(vec![i], WrapAround::NONE, true))
    }

    fn record(&mut self, boards: Vec<u32>, torus: WrapAround, single_board: bool) -> Allocation {
        let topo = self.filter.topology();
        for &i in &boards {
            let t = i as usize / 3;
            self.busy[i as usize] = true;
            self.triad_busy[t] += 1;
            if !topo.is_dead_index(i) {
                self.triad_free[t] -= 1;
            }
        }
        self.changed_boards(&boards);
        let id = self.next_id;
        self.next_id += 1;
        self.allocated_boards += boards.len();
        let topo = self.filter.topology();
        let out = boards.iter().map(|&i| topo.board(i)).collect();
        self.allocations.insert(id, boards.into());
        Allocation {
            id,
            boards: out,
            torus,
            single_board,
        }
    }
}

/// One scan of one shape: what a position needs to become a candidate.
struct Visit<'a> {
    filter: &'a mut CandidateFilter,
    /// The shape's reachable counts (`None` on a machine without suspect triads).
    reach: Option<&'a mut Vec<u32>>,
    strips: &'a Strips,
    bfs: &'a mut Bfs,
    cands: &'a mut Vec<Cand>,
    w: u16,
    h: u16,
    shape: u16,
    params: &'a FilterParams,
    mode: Mode,
    clean: bool,
    collect: bool,
    best: &'a mut Option<Cand>,
}

impl Visit<'_> {
    /// Judges the position from what its rectangle holds.
    #[inline(always)]
    fn visit(&mut self, x: usize, y: usize, Counts { free, live, suspect }: Counts) {
        if free == 0 {
            return;
        }
        match self.mode {
            Mode::Whole => self.visit_whole(x, y, live, suspect, free == live),
            Mode::Exact(n) => {
                if suspect == 0 && !self.clean {
                    return;
                }
                let upper = n.min(live);
                if free < upper {
                    // Enough only if the job would get fewer boards (unreachable ones).
                    if suspect == 0 {
                        return;
                    }
                    let Some(m) = self.reach(x, y).map(|r| n.min(r)) else {
                        return;
                    };
                    if m == 0 || free < m {
                        return;
                    }
                }
                let leftover = free.saturating_sub(upper);
                if !self.collect && self.best.is_some_and(|b| b.key.leftover > Reverse(leftover)) {
                    return;
                }
                if suspect > 0 && !self.filter.accepts(x as u16, y as u16, self.w, self.h, self.params) {
                    return;
                }
                self.offer(x, y, leftover, true, live);
            }
        }
    }

    /// Judges a position for a whole rectangle; `all_free`: no live board inside is busy.
    #[inline]
    fn visit_whole(&mut self, x: usize, y: usize, live: u32, suspect: u32, all_free: bool) {
        if live == 0 || (suspect == 0 && !self.clean) {
            return;
        }
        let check = if all_free {
            false
        } else if suspect > 0 && self.reach(x, y) != Some(live) {
            // Some live boards are out of reach: the busy ones may be among them.
            true
        } else {
            // Every live board is reachable, so a busy one would be taken.
            return;
        };
        if suspect > 0 && !self.filter.accepts(x as u16, y as u16, self.w, self.h, self.params) {
            return;
        }
        self.offer(x, y, 0, check, live);
    }

    /// The live boards reachable from the bottom-left board of a rectangle with suspect
    /// triads, counted once per shape and position.
    fn reach(&mut self, x: usize, y: usize) -> Option<u32> {
        let slot = self.reach.as_deref_mut()?;
        let r = &mut slot[x * self.strips.h + y];
        if *r == UNKNOWN {
            *r = reach_count(self.filter.topology(), self.bfs, (x as u16, y as u16, self.w, self.h));
        }
        Some(*r)
    }

    /// Scores an acceptable position.
    #[inline]
    fn offer(&mut self, x: usize, y: usize, leftover: u32, check: bool, live: u32) {
        let (w, h) = (self.w as usize, self.h as usize);
        let key = Key {
            leftover: Reverse(leftover),
            contact: self.strips.contact(x, y, w, h),
            dead: (w * h * 3) as u32 - live,
            y: Reverse(y as u16),
            x: Reverse(x as u16),
            shape: Reverse(self.shape),
        };
        let cand = Cand {
            key,
            x: x as u16,
            y: y as u16,
            w: self.w,
            h: self.h,
            check,
        };
        if self.collect {
            self.cands.push(cand);
        } else if self.best.is_none_or(|b| key > b.key) {
            *self.best = Some(cand);
        }
    }
}

/// One bit per triad, a row of `u64` words per `y` (bit `x`).
#[derive(Debug, Clone, Default)]
struct Bits {
    words: usize,
    v: Vec<u64>,
}

impl Bits {
    fn reset(&mut self, w: usize, h: usize) {
        self.words = w.div_ceil(64).max(1);
        self.v.clear();
        self.v.resize(self.words * h, 0);
    }
    fn set(&mut self, x: usize, y: usize, on: bool) {
        let word = &mut self.v[y * self.words + x / 64];
        if on {
            *word |= 1 << (x % 64);
        } else {
            *word &= !(1 << (x % 64));
        }
    }
    fn row(&self, y: usize) -> &[u64] {
        &self.v[y * self.words..(y + 1) * self.words]
    }
}

/// Folds one-word row bitmaps so that bit `x` of row `y` becomes the AND (`and`) or OR of
/// the bits of the `w × h` rectangle at `(x, y)` (bits past the machine count as 0; rows
/// `y > H − h` are meaningless afterwards).
fn fold(rows: &mut [u64], w: usize, h: usize, and: bool) {
    let op = |a: u64, b: u64| if and { a & b } else { a | b };
    let mut span = 1;
    while span < w {
        let s = span.min(w - span);
        for r in rows.iter_mut() {
            *r = op(*r, *r >> s);
        }
        span += s;
    }
    let mut span = 1;
    while span < h {
        let s = span.min(h - span);
        for y in 0..rows.len() - s {
            rows[y] = op(rows[y], rows[y + s]);
        }
        span += s;
    }
}

/// Exactly `min(n, |S|)` connected free boards of the filter's set `S` for the rectangle
/// (see the module documentation), sorted, with their wrap-around; `busy: None` treats every
/// board as free (the idle machine).
///
/// `clean`: the caller knows the rectangle has no suspect triad and is accepted, so `S` is
/// all its boards (no need to ask the filter for them).
#[allow(clippy::too_many_arguments)]
fn exact_pick(
    filter: &mut CandidateFilter,
    busy: Option<&[bool]>,
    sc: &mut Scratch,
    (x, y, w, h): (u16, u16, u16, u16),
    params: &FilterParams,
    n: u32,
    clean: bool,
) -> Option<(Vec<u32>, WrapAround)> {
    let members: Vec<u32> = if clean {
        let topo = filter.topology();
        let mut v = Vec::with_capacity(w as usize * h as usize * 3);
        for xx in x..x + w {
            for yy in y..y + h {
                v.extend((0..3).map(|z| topo.index(Board::new(xx, yy, z))));
            }
        }
        v
    } else {
        let acc = filter.evaluate(x, y, w, h, params)?;
        let topo = filter.topology();
        acc.boards.iter().map(|&b| topo.index(b)).collect()
    };
    let topo = filter.topology();
    let m = (n as usize).min(members.len());
    if m == 0 {
        return None;
    }
    if sc.mark.len() != topo.len() {
        sc.mark = vec![0; topo.len()];
    }
    for &i in &members {
        if busy.is_none_or(|busy| !busy[i as usize]) {
            sc.mark[i as usize] = MEMBER;
        }
    }
    // Grow from the first free member in scan order, always adding the adjacent free member
    // that comes first in scan order (rows bottom-up, left to right, z ascending).
    let scan_key = |i: u32| {
        let b = topo.board(i);
        (b.y, b.x, b.z)
    };
    let mut found = false;
    'scan: for yy in y..y + h {
        for xx in x..x + w {
            for z in 0..3 {
                let start = topo.index(Board::new(xx, yy, z));
                if sc.mark[start as usize] != MEMBER {
                    continue;
                }
                sc.queue.clear();
                sc.heap.clear();
                sc.mark[start as usize] = SEEN;
                sc.heap.push(Reverse((scan_key(start), start)));
                while let Some(Reverse((_, i))) = sc.heap.pop() {
                    sc.queue.push(i);
                    if sc.queue.len() == m {
                        found = true;
                        break 'scan;
                    }
                    for l in Link::ALL {
                        let (j, _) = topo.neighbour(i, l);
                        if sc.mark[j as usize] == MEMBER && !topo.link_dead(i, l) && !topo.link_dead(j, l.opposite()) {
                            sc.mark[j as usize] = SEEN;
                            sc.heap.push(Reverse((scan_key(j), j)));
                        }
                    }
                }
            }
        }
    }
    let result = if found {
        let mut chosen = std::mem::take(&mut sc.queue);
        for &i in &chosen {
            sc.mark[i as usize] = CHOSEN;
        }
        let mut torus = WrapAround::NONE;
        for &i in &chosen {
            for l in Link::ALL {
                let (j, wrap) = topo.neighbour(i, l);
                if sc.mark[j as usize] == CHOSEN {
                    torus = torus.union(wrap);
                }
            }
        }
        chosen.sort_unstable();
        Some((chosen, torus))
    } else {
        None
    };
    for &i in &members {
        sc.mark[i as usize] = 0;
    }
    result
}

/// The shape tiers of a `t`-triad request (see the module documentation); `None` for a bad
/// ratio or when no shape fits.
fn board_tiers(t: u32, mw: u32, mh: u32, min_ratio: f64) -> Option<Tiers> {
    let first = area_to_rect(t, mw, mh, min_ratio).ok()?;
    let r = if min_ratio > 1.0 { 1.0 / min_ratio } else { min_ratio };
    let ratio_ok = |w: u32, h: u32| (w.min(h) as f64) / (w.max(h) as f64) >= r;
    let mut tier0: Vec<(u16, u16)> = Vec::new();
    if let Some((w, h)) = first {
        tier0.push((w as u16, h as u16));
        if w != h && h <= mw && w <= mh {
            tier0.push((h as u16, w as u16));
        }
    }
    // The staircase of minimal shapes: for each width the least valid height, kept when no
    // narrower width has a valid height at most as large.
    let mut minimal: Vec<(u32, u32)> = Vec::new();
    let mut lowest = u32::MAX;
    for w in 1..=mw {
        let mut h = t.div_ceil(w).max(1);
        while h <= mh && !ratio_ok(w, h) {
            if h >= w {
                // Taller only gets thinner.
                h = u32::MAX;
                break;
            }
            h += 1;
        }
        if h <= mh && h < lowest {
            lowest = h;
            minimal.push((w, h));
        }
    }
    minimal.retain(|&(w, h)| !tier0.contains(&(w as u16, h as u16)));
    minimal.sort_by_key(|&(w, h)| (w as u64 * h as u64, w));
    let mut tiers = Vec::new();
    if !tier0.is_empty() {
        tiers.push(tier0);
    }
    let mut last_area = None;
    for (w, h) in minimal {
        let area = w as u64 * h as u64;
        if last_area != Some(area) {
            tiers.push(Vec::new());
            last_area = Some(area);
        }
        if let Some(tier) = tiers.last_mut() {
            tier.push((w as u16, h as u16));
        }
    }
    if tiers.is_empty() { None } else { Some(tiers) }
}

impl Packer for AnywherePacker {
    fn name(&self) -> &'static str {
        "anywhere"
    }

    fn alloc_possible(&mut self, req: &Request) -> bool {
        match req.shape {
            Shape::AnyBoard => !req.require_torus && self.topology().live_count() > 0,
            Shape::Board { board } => {
                !req.require_torus && self.topology().contains(board) && !self.topology().is_dead(board)
            }
            Shape::TriadsAt { root, w, h } => {
                let Some((x, y, w, h)) = rooted_rect(root, w, h, self.width, self.height, req.require_torus) else {
                    return false;
                };
                self.filter.accepts(x, y, w, h, &Self::params(req, None))
            }
            Shape::Triads { .. } | Shape::Boards { .. } => {
                let Some((tiers, params, mode)) = self.tiers(req) else {
                    return false;
                };
                let (mw, mh) = (self.width, self.height);
                for &(w, h) in tiers.iter().flatten() {
                    let clean = self.clean_verdict(w, h, &params);
                    let (wu, hu) = (w as usize, h as usize);
                    for x in 0..=mw - w {
                        for y in 0..=mh - h {
                            let suspect = self.static_sat.sum(x as usize, y as usize, wu, hu).1;
                            let ok = if suspect == 0 {
                                clean
                            } else {
                                self.filter.accepts(x, y, w, h, &params)
                            };
                            if !ok {
                                continue;
                            }
                            match mode {
                                Mode::Whole => return true,
                                Mode::Exact(n) => {
                                    let clean = suspect == 0;
                                    let picked = exact_pick(
                                        &mut self.filter,
                                        None,
                                        &mut self.scratch,
                                        (x, y, w, h),
                                        &params,
                                        n,
                                        clean,
                                    );
                                    if picked.is_some() {
                                        return true;
                                    }
                                }
                            }
                        }
                    }
                }
                false
            }
        }
    }

    fn alloc(&mut self, req: &Request) -> Option<Allocation> {
        match req.shape {
            Shape::AnyBoard if !req.require_torus => self.alloc_any_board(),
            Shape::Board { board } if !req.require_torus => self.alloc_board(board),
            Shape::AnyBoard | Shape::Board { .. } => None,
            Shape::TriadsAt { root, w, h } => {
                let (x, y, w, h) = rooted_rect(root, w, h, self.width, self.height, req.require_torus)?;
                let params = Self::params(req, None);
                // Every live board inside must be free (checked board by board).
                let cand = Cand {
                    key: Key {
                        leftover: Reverse(0),
                        contact: 0,
                        dead: 0,
                        y: Reverse(y),
                        x: Reverse(x),
                        shape: Reverse(0),
                    },
                    x,
                    y,
                    w,
                    h,
                    check: true,
                };
                let (boards, torus) = self.take(&cand, &params, Mode::Whole)?;
                Some(self.record(boards, torus, false))
            }
            Shape::Triads { .. } | Shape::Boards { .. } => {
                let (tiers, params, mode) = self.tiers(req)?;
                self.alloc_rect(&tiers, &params, mode)
            }
        }
    }

    fn release(&mut self, id: AllocId) {
        let Some(boards) = self.allocations.remove(&id) else {
            return;
        };
        let topo = self.filter.topology();
        for &i in boards.iter() {
            let t = i as usize / 3;
            self.busy[i as usize] = false;
            self.triad_busy[t] -= 1;
            if !topo.is_dead_index(i) {
                self.triad_free[t] += 1;
            }
        }
        self.allocated_boards -= boards.len();
        self.changed_boards(&boards);
        self.generation += 1;
    }

    fn set_faults(&mut self, dead_boards: &[Board], dead_links: &[(Board, Link)]) {
        self.filter.set_topology(Topology::new(
            self.width,
            self.height,
            dead_boards.iter().copied(),
            dead_links.iter().copied(),
        ));
        self.faults_changed();
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
    use crate::alloc::spalloc::SpallocPacker;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn req(shape: Shape) -> Request {
        Request::new(shape)
    }

    fn triads(w: u32, h: u32) -> Request {
        req(Shape::Triads { w, h })
    }

    fn boards(n: u32, min_ratio: f64) -> Request {
        req(Shape::Boards { n, min_ratio })
    }

    fn origin(a: &Allocation) -> (u16, u16) {
        (a.boards[0].x, a.boards[0].y)
    }

    /// Connected over links live in both directions (the rule of `exact_pick`).
    fn connected(topo: &Topology, boards: &[Board]) -> bool {
        let set: BTreeSet<u32> = boards.iter().map(|&b| topo.index(b)).collect();
        let Some(&start) = set.iter().next() else {
            return false;
        };
        let mut seen = BTreeSet::from([start]);
        let mut queue = vec![start];
        while let Some(i) = queue.pop() {
            for l in Link::ALL {
                let (j, _) = topo.neighbour(i, l);
                if set.contains(&j) && !topo.link_dead(i, l) && !topo.link_dead(j, l.opposite()) && seen.insert(j) {
                    queue.push(j);
                }
            }
        }
        seen.len() == set.len()
    }

    #[test]
    fn triads_go_where_they_touch_most() {
        let mut p = AnywherePacker::new(4, 4, &[], &[], false);
        assert_eq!(p.name(), "anywhere");
        // All four corners touch two walls: the tie-break takes the lowest y, then x.
        let a = p.alloc(&triads(1, 1)).unwrap();
        assert_eq!((origin(&a), a.boards.len(), a.single_board), ((0, 0), 3, false));
        // Along the bottom wall next to `a` (contact 2) beats nothing better: lowest y first.
        let b = p.alloc(&triads(1, 1)).unwrap();
        assert_eq!(origin(&b), (1, 0));
        // A 2 x 1 fits best against the right wall and b: (2, 0) touches bottom, right, b.
        let c = p.alloc(&triads(2, 1)).unwrap();
        assert_eq!((origin(&c), c.boards.len()), ((2, 0), 6));
        // A 4 x 3 fills the rest exactly.
        let d = p.alloc(&triads(4, 3)).unwrap();
        assert_eq!((origin(&d), d.boards.len(), d.torus), ((0, 1), 36, WrapAround::X));
        assert!(p.alloc(&triads(1, 1)).is_none());
        assert_eq!(p.allocated_boards(), 48);
        // A hole is filled where it is, whatever its position.
        let g = p.generation();
        p.release(b.id);
        assert_eq!(p.generation(), g + 1);
        assert!(p.alloc(&triads(2, 1)).is_none());
        assert_eq!(origin(&p.alloc(&triads(1, 1)).unwrap()), (1, 0));
        // Whole machine with a torus only when asked for exactly.
        let mut p = AnywherePacker::new(4, 4, &[], &[], false);
        let torus = |w, h| Request {
            require_torus: true,
            ..triads(w, h)
        };
        assert!(!p.alloc_possible(&torus(3, 4)) && p.alloc(&torus(3, 4)).is_none());
        let t = p.alloc(&torus(4, 4)).unwrap();
        assert_eq!((t.boards.len(), t.torus), (48, WrapAround::BOTH));
        assert!(p.alloc(&triads(0, 1)).is_none() && p.alloc(&triads(5, 1)).is_none());
    }

    #[test]
    fn wide_machines_scan_the_tables() {
        // More than 64 triads wide: no row bitmaps, the same rules.
        let mut p = AnywherePacker::new(70, 2, &[Board::new(69, 1, 2)], &[], false);
        assert!(!p.use_bitmaps);
        let strict = |w, h| Request {
            max_dead_boards: Some(0),
            ..triads(w, h)
        };
        // A tolerant job prefers the damaged corner triad to the intact ones.
        let t = p.alloc(&triads(1, 1)).unwrap();
        assert_eq!((origin(&t), t.boards.len()), ((69, 1), 2));
        p.release(t.id);
        let a = p.alloc(&strict(1, 1)).unwrap();
        let b = p.alloc(&strict(1, 2)).unwrap();
        let c = p.alloc(&strict(67, 2)).unwrap();
        assert_eq!((origin(&a), origin(&b), origin(&c)), ((0, 0), (1, 0), (2, 0)));
        assert_eq!(origin(&p.alloc(&strict(1, 1)).unwrap()), (0, 1));
        assert_eq!(origin(&p.alloc(&strict(1, 1)).unwrap()), (69, 0));
        assert!(p.alloc(&strict(1, 1)).is_none());
        assert_eq!(p.alloc(&triads(1, 1)).unwrap().boards.len(), 2);
        assert_eq!(p.allocated_boards(), 70 * 2 * 3 - 1);
    }

    #[test]
    fn places_a_rectangle_where_spalloc_cannot() {
        let mut s = SpallocPacker::new(4, 1, &[], &[]);
        let mut a = AnywherePacker::new(4, 1, &[], &[], false);
        let sid: Vec<AllocId> = (0..4).map(|_| s.alloc(&triads(1, 1)).unwrap().id).collect();
        let aid: Vec<AllocId> = (0..4).map(|_| a.alloc(&triads(1, 1)).unwrap().id).collect();
        // Free the middle two: the tree keeps (1, 0) and (2, 0) in different leaves.
        for i in [1, 2] {
            s.release(sid[i]);
            a.release(aid[i]);
        }
        assert!(s.alloc(&triads(2, 1)).is_none());
        let got = a.alloc(&triads(2, 1)).unwrap();
        assert_eq!(origin(&got), (1, 0));
        assert_eq!(got.boards.len(), 6);
        // Likewise for an "at least n boards" request.
        a.release(got.id);
        assert!(s.alloc(&boards(6, 0.0)).is_none());
        assert_eq!(a.alloc(&boards(6, 0.0)).unwrap().boards.len(), 6);
    }

    #[test]
    fn alloc_possible_checks_every_position() {
        // A dead board in every corner triad: the reference's corner test says no.
        let dead = [
            Board::new(0, 0, 1),
            Board::new(2, 0, 1),
            Board::new(0, 2, 1),
            Board::new(2, 2, 1),
        ];
        let strict = Request {
            max_dead_boards: Some(0),
            ..triads(1, 1)
        };
        let mut s = SpallocPacker::new(3, 3, &dead, &[]);
        let mut a = AnywherePacker::new(3, 3, &dead, &[], false);
        assert!(!s.alloc_possible(&strict));
        assert!(a.alloc_possible(&strict));
        let got = a.alloc(&strict).unwrap();
        assert_eq!(got.boards.len(), 3);
        assert!(got.boards.iter().all(|b| !dead.contains(b)));
        // Impossible requests.
        assert!(!a.alloc_possible(&triads(4, 1)));
        assert!(!a.alloc_possible(&boards(0, 0.0)));
        assert!(!a.alloc_possible(&boards(28, 0.0)));
        assert!(!a.alloc_possible(&boards(4, f64::NAN)));
        assert!(!a.alloc_possible(&req(Shape::Board {
            board: Board::new(0, 0, 1)
        })));
        assert!(!a.alloc_possible(&req(Shape::Board {
            board: Board::new(3, 0, 0)
        })));
        assert!(a.alloc_possible(&req(Shape::AnyBoard)));
        let torus_board = Request {
            require_torus: true,
            ..req(Shape::AnyBoard)
        };
        assert!(!a.alloc_possible(&torus_board) && a.alloc(&torus_board).is_none());
    }

    #[test]
    fn board_shapes_come_in_tiers() {
        assert_eq!(board_tiers(5, 20, 20, 0.333), Some(vec![vec![(3, 2), (2, 3)]]));
        assert_eq!(
            board_tiers(7, 20, 20, 0.0),
            Some(vec![vec![(7, 1), (1, 7)], vec![(2, 4), (4, 2)], vec![(3, 3)]])
        );
        // Squares only: no larger square behind the first.
        assert_eq!(board_tiers(1, 4, 4, 1.0), Some(vec![vec![(1, 1)]]));
        assert_eq!(board_tiers(34, 20, 20, 0.333), {
            let t = board_tiers(34, 20, 20, 0.333).unwrap();
            assert_eq!(t[0], vec![(9, 4), (4, 9)]);
            Some(t)
        });
        assert_eq!(board_tiers(10, 3, 3, 0.0), None);
        assert_eq!(board_tiers(2, 3, 3, -1.0), None);
    }

    #[test]
    fn boards_requests_whole_and_exact() {
        // Whole triads, as the reference hands them out.
        let mut p = AnywherePacker::new(20, 20, &[], &[], false);
        let a = p.alloc(&boards(4, 0.333)).unwrap();
        assert_eq!(a.boards.len(), 6);
        let b = p.alloc(&boards(100, 0.333)).unwrap();
        assert_eq!(b.boards.len(), 108);
        // Exact: 100 boards, connected; the rest of the rectangle stays free.
        let mut p = AnywherePacker::new(20, 20, &[], &[], true);
        assert!(p.exact_boards());
        let b = p.alloc(&boards(100, 0.333)).unwrap();
        assert_eq!(b.boards.len(), 100);
        assert!(b.boards.windows(2).all(|w| w[0] < w[1]));
        assert!(connected(p.topology(), &b.boards));
        assert_eq!(p.allocated_boards(), 100);
        // The 8 leftover boards are taken first by a job they fit exactly.
        let c = p.alloc(&boards(8, 0.333)).unwrap();
        assert_eq!(c.boards.len(), 8);
        assert!(connected(p.topology(), &c.boards));
        let held: BTreeSet<Board> = b.boards.iter().chain(&c.boards).copied().collect();
        assert_eq!(held.len(), 108);
        let xs: BTreeSet<(u16, u16)> = held.iter().map(|b| (b.x, b.y)).collect();
        assert_eq!(xs.len(), 36, "both jobs share the 36 triads of one 9 x 4 rectangle");
    }

    #[test]
    fn exact_boards_leave_the_rest_allocatable() {
        let mut p = AnywherePacker::new(2, 2, &[], &[], true);
        let a = p.alloc(&boards(4, 0.333)).unwrap();
        assert_eq!(a.boards.len(), 4);
        assert!(connected(p.topology(), &a.boards));
        assert!(!a.single_board);
        // Two boards of the 2 x 1 rectangle are left, in one partly used triad: single boards
        // go there first.
        let partly: Vec<(u16, u16)> = (0..2u16)
            .flat_map(|x| (0..2u16).map(move |y| (x, y)))
            .filter(|&(x, y)| {
                (0..3).any(|z| p.is_busy(Board::new(x, y, z))) && !(0..3).all(|z| p.is_busy(Board::new(x, y, z)))
            })
            .collect();
        assert_eq!(partly.len(), 1);
        let s = p.alloc(&req(Shape::AnyBoard)).unwrap();
        assert!(s.single_board && s.torus == WrapAround::NONE);
        assert_eq!((s.boards[0].x, s.boards[0].y), partly[0]);
        let s2 = p.alloc(&req(Shape::AnyBoard)).unwrap();
        assert_eq!((s2.boards[0].x, s2.boards[0].y), partly[0]);
        // 6 boards are left: two whole triads.
        let c = p.alloc(&triads(1, 2)).or_else(|| p.alloc(&triads(2, 1))).unwrap();
        assert_eq!(c.boards.len(), 6);
        assert!(p.alloc(&req(Shape::AnyBoard)).is_none());
        assert_eq!(p.allocated_boards(), 12);
        for id in [a.id, s.id, s2.id, c.id] {
            p.release(id);
        }
        assert_eq!(p.allocated_boards(), 0);
        assert_eq!(p.alloc(&triads(2, 2)).unwrap().boards.len(), 12);
    }

    #[test]
    fn rectangles_over_partly_used_triads_need_every_taken_board_free() {
        // An exact job leaves a partly used triad; a whole-triad request must not use it.
        let mut p = AnywherePacker::new(2, 1, &[], &[], true);
        let a = p.alloc(&boards(2, 0.0)).unwrap();
        assert_eq!(a.boards.len(), 2);
        assert!(p.alloc(&triads(2, 1)).is_none());
        let b = p.alloc(&triads(1, 1)).unwrap();
        assert_ne!(origin(&b), origin(&a));
        // The last free board only serves a job that asks for one.
        assert!(p.alloc(&boards(2, 0.0)).is_none());
        assert_eq!(p.alloc(&boards(1, 0.0)).unwrap().boards.len(), 1);
    }

    #[test]
    fn single_boards_prefer_the_fullest_partly_used_triad() {
        let mut p = AnywherePacker::new(3, 1, &[Board::new(2, 0, 0)], &[], false);
        // A whole free triad by the score: the most dead boards win among equal contact.
        let a = p.alloc(&req(Shape::AnyBoard)).unwrap();
        assert_eq!(a.boards[0], Board::new(2, 0, 1));
        let b = p
            .alloc(&req(Shape::Board {
                board: Board::new(0, 0, 2),
            }))
            .unwrap();
        assert_eq!(b.boards, vec![Board::new(0, 0, 2)]);
        // Triad (2, 0) has one free board left, (0, 0) two: (2, 0) first.
        assert_eq!(p.alloc(&req(Shape::AnyBoard)).unwrap().boards[0], Board::new(2, 0, 2));
        assert_eq!(p.alloc(&req(Shape::AnyBoard)).unwrap().boards[0], Board::new(0, 0, 0));
        assert_eq!(p.alloc(&req(Shape::AnyBoard)).unwrap().boards[0], Board::new(0, 0, 1));
        assert_eq!(p.alloc(&req(Shape::AnyBoard)).unwrap().boards[0], Board::new(1, 0, 0));
        // Specific boards: busy, dead and outside the machine fail.
        for b in [
            Board::new(0, 0, 2),
            Board::new(2, 0, 0),
            Board::new(3, 0, 0),
            Board::new(0, 0, 3),
        ] {
            assert!(p.alloc(&req(Shape::Board { board: b })).is_none(), "{b}");
        }
    }

    #[test]
    fn dead_boards_and_links_are_respected() {
        let dead = [Board::new(0, 0, 1)];
        // (1, 0, 0) cannot go north: a dead link between two boards of triad (1, 0).
        let links = [(Board::new(1, 0, 0), Link::North)];
        let mut p = AnywherePacker::new(3, 1, &dead, &links, false);
        let strict = Request {
            max_dead_boards: Some(0),
            max_dead_links: Some(0),
            ..triads(1, 1)
        };
        let a = p.alloc(&strict).unwrap();
        assert_eq!(origin(&a), (2, 0));
        assert!(p.alloc(&strict).is_none());
        // Tolerant requests take the damaged triads, never the dead board.
        let any = p.alloc(&triads(1, 1)).unwrap();
        let any2 = p.alloc(&triads(1, 1)).unwrap();
        let all: Vec<Board> = any.boards.iter().chain(&any2.boards).copied().collect();
        assert_eq!(all.len(), 5);
        assert!(!all.contains(&Board::new(0, 0, 1)));
        // Faults change under live allocations: those are kept, new ones avoid the new fault.
        let mut p = AnywherePacker::new(2, 1, &[], &[], false);
        let a = p.alloc(&triads(1, 1)).unwrap();
        let g = p.generation();
        p.set_faults(&[Board::new(1, 0, 0)], &[]);
        assert_eq!(p.generation(), g + 1);
        assert_eq!(p.allocated_boards(), 3);
        let strict = Request {
            max_dead_boards: Some(0),
            ..triads(1, 1)
        };
        assert!(p.alloc(&strict).is_none());
        assert!(p.alloc(&triads(1, 1)).is_none(), "(1, 0, 0) is dead: nothing reachable");
        let b = p.alloc(&req(Shape::AnyBoard)).unwrap();
        assert_eq!(b.boards[0], Board::new(1, 0, 1));
        p.release(a.id);
        p.release(b.id);
        assert_eq!(p.allocated_boards(), 0);
        // Exact boards with a dead board short of n, tolerated by max_dead_boards: all of S.
        let mut p = AnywherePacker::new(1, 1, &[Board::new(0, 0, 2)], &[], true);
        let r = Request {
            max_dead_boards: Some(1),
            ..boards(3, 0.0)
        };
        assert_eq!(p.alloc(&r).unwrap().boards.len(), 2);
    }

    #[test]
    fn degenerate_machines_never_panic() {
        for (w, h) in [(0, 0), (0, 3), (3, 0)] {
            let mut p = AnywherePacker::new(w, h, &[], &[], true);
            for r in [
                req(Shape::AnyBoard),
                triads(1, 1),
                boards(2, 0.0),
                req(Shape::Board {
                    board: Board::new(0, 0, 0),
                }),
            ] {
                assert!(!p.alloc_possible(&r));
                assert!(p.alloc(&r).is_none());
            }
            p.release(7);
            p.set_faults(&[], &[]);
        }
        let mut p = AnywherePacker::new(2, 2, &[], &[], true);
        assert!(p.alloc(&boards(u32::MAX, 0.0)).is_none());
        assert!(p.alloc(&boards(4, f64::INFINITY)).is_some());
        assert!(p.alloc(&triads(u32::MAX, u32::MAX)).is_none());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Alloc(Shape, Option<u32>, Option<u32>, bool),
        Release(usize),
        Faults(Vec<Board>, Vec<(Board, Link)>),
    }

    fn shape(w: u16, h: u16) -> impl Strategy<Value = Shape> {
        prop_oneof![
            3 => Just(Shape::AnyBoard),
            1 => (0..w + 1, 0..h, 0u8..3).prop_map(|(x, y, z)| Shape::Board { board: Board::new(x, y, z) }),
            3 => (1u32..(w as u32 * h as u32 * 3 + 4), prop_oneof![Just(0.0), Just(0.333), Just(1.0)])
                .prop_map(|(n, min_ratio)| Shape::Boards { n, min_ratio }),
            2 => (0u32..=w as u32 + 1, 1u32..=h as u32).prop_map(|(w, h)| Shape::Triads { w, h }),
            1 => (0..w + 1, 0..h, 0u32..=w as u32, 1u32..=h as u32)
                .prop_map(|(x, y, w, h)| Shape::TriadsAt { root: Board::new(x, y, 0), w, h }),
        ]
    }

    type Case = (u16, u16, bool, Vec<Board>, Vec<(Board, Link)>, Vec<Op>);

    fn case() -> impl Strategy<Value = Case> {
        (1u16..6, 1u16..5, any::<bool>()).prop_flat_map(|(w, h, exact)| {
            let board = (0..w, 0..h, 0u8..3).prop_map(|(x, y, z)| Board::new(x, y, z));
            let link = (board.clone(), 0u8..6).prop_map(|(b, l)| (b, Link::from_u8(l).unwrap()));
            let faults = (
                prop::collection::vec(board.clone(), 0..4),
                prop::collection::vec(link.clone(), 0..6),
            );
            let op = prop_oneof![
                6 => (shape(w, h), prop::option::of(0u32..3), prop::option::of(0u32..3), prop::bool::weighted(0.1))
                    .prop_map(|(s, d, l, t)| Op::Alloc(s, d, l, t)),
                3 => any::<prop::sample::Index>().prop_map(|i| Op::Release(i.index(1 << 16))),
                1 => faults.clone().prop_map(|(b, l)| Op::Faults(b, l)),
            ];
            (
                Just(w),
                Just(h),
                Just(exact),
                prop::collection::vec(board, 0..4),
                prop::collection::vec(link, 0..6),
                prop::collection::vec(op, 1..80),
            )
        })
    }

    fn request(op: &Op) -> Option<Request> {
        match *op {
            Op::Alloc(shape, max_dead_boards, max_dead_links, require_torus) => Some(Request {
                shape,
                max_dead_boards,
                max_dead_links,
                require_torus,
            }),
            _ => None,
        }
    }

    /// Runs a case, checking the invariants; returns every allocation made.
    fn run(case: &Case, use_bitmaps: bool) -> Result<Vec<Allocation>, TestCaseError> {
        let (w, h, exact, dead, links, ops) = case;
        let mut p = AnywherePacker::new(*w, *h, dead, links, *exact);
        p.use_bitmaps = use_bitmaps;
        let mut dead: BTreeSet<Board> = dead.iter().copied().collect();
        let mut links_now: Vec<(Board, Link)> = links.clone();
        let mut live: BTreeMap<AllocId, Vec<Board>> = BTreeMap::new();
        let mut held: BTreeSet<Board> = BTreeSet::new();
        let mut out = Vec::new();
        for op in ops {
            match op {
                Op::Alloc(..) => {
                    let r = request(op).unwrap_or(Request::new(Shape::AnyBoard));
                    let possible = p.alloc_possible(&r);
                    let Some(a) = p.alloc(&r) else { continue };
                    prop_assert!(possible, "{r:?} succeeded but was deemed impossible");
                    prop_assert!(!a.boards.is_empty());
                    prop_assert!(a.boards.windows(2).all(|w| w[0] < w[1]), "unsorted {:?}", a.boards);
                    prop_assert_eq!(a.single_board, r.is_single_board());
                    for b in &a.boards {
                        prop_assert!(!dead.contains(b), "dead board {} handed out", b);
                        prop_assert!(held.insert(*b), "board {} in two live allocations", b);
                    }
                    match r.shape {
                        Shape::Board { board } => prop_assert_eq!(&a.boards, &vec![board]),
                        Shape::AnyBoard => prop_assert_eq!(a.boards.len(), 1),
                        Shape::Boards { n, .. } if *exact && !r.require_torus => {
                            prop_assert!(a.boards.len() <= n as usize);
                            if r.max_dead_boards == Some(0) {
                                prop_assert_eq!(a.boards.len(), n as usize);
                            }
                            prop_assert!(connected(p.topology(), &a.boards), "{:?} not connected", a.boards);
                        }
                        Shape::Triads { w: tw, h: th } => prop_assert!(a.boards.len() <= 3 * (tw * th) as usize),
                        Shape::TriadsAt { root, w: tw, h: th } => {
                            for b in &a.boards {
                                prop_assert!(
                                    b.x >= root.x
                                        && b.x < root.x + tw as u16
                                        && b.y >= root.y
                                        && b.y < root.y + th as u16,
                                    "{} outside the rectangle {:?} of {:?}",
                                    b,
                                    (tw, th),
                                    root
                                );
                            }
                        }
                        Shape::Boards { .. } => {}
                    }
                    live.insert(a.id, a.boards.clone());
                    out.push(a);
                }
                Op::Release(i) => {
                    if live.is_empty() {
                        continue;
                    }
                    let id = *live.keys().nth(i % live.len()).unwrap_or(&0);
                    let g = p.generation();
                    p.release(id);
                    prop_assert!(p.generation() > g);
                    for b in live.remove(&id).unwrap_or_default() {
                        held.remove(&b);
                    }
                }
                Op::Faults(b, l) => {
                    let g = p.generation();
                    p.set_faults(b, l);
                    prop_assert!(p.generation() > g);
                    dead = b.iter().copied().collect();
                    links_now = l.clone();
                }
            }
            prop_assert_eq!(p.allocated_boards(), held.len());
        }
        // Copies continue identically.
        let (mut c1, mut c2) = (p.clone_box(), p.clone_box());
        for op in ops.iter().take(10) {
            if let Some(r) = request(op) {
                prop_assert_eq!(c1.alloc(&r), c2.alloc(&r));
            }
        }
        // Release everything.
        for (id, _) in std::mem::take(&mut live) {
            p.release(id);
        }
        // Everything came back: allocated_boards is zero and the whole machine is whole.
        prop_assert_eq!(p.allocated_boards(), 0);
        let whole = triads(*w as u32, *h as u32);
        let corner_live = !dead.contains(&Board::new(0, 0, 0));
        let got = p.alloc(&whole);
        prop_assert_eq!(got.is_some(), corner_live);
        prop_assert_eq!(p.alloc_possible(&whole), corner_live);
        // The same boards as the reference hands out on the idle machine.
        let dead_now: Vec<Board> = dead.iter().copied().collect();
        let reference = SpallocPacker::new(*w, *h, &dead_now, &links_now).alloc(&whole);
        prop_assert_eq!(
            got.as_ref().map(|a| (&a.boards, a.torus)),
            reference.as_ref().map(|a| (&a.boards, a.torus))
        );
        if let Some(g) = got {
            p.release(g.id);
        }
        // On the idle machine, every possible request succeeds.
        for op in ops {
            if let Some(r) = request(op) {
                let possible = p.alloc_possible(&r);
                let got = p.alloc(&r);
                prop_assert_eq!(possible, got.is_some(), "{:?}", r);
                if let Some(a) = got {
                    p.release(a.id);
                }
            }
        }
        Ok(out)
    }

    /// Limits under which the filter accepts anything with a live bottom-left board.
    const ANY: FilterParams = FilterParams {
        expected_boards: None,
        max_dead_boards: None,
        max_dead_links: None,
        require_torus: false,
    };

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// The shortcuts agree with the filter: the reachable count is the size of its board
        /// set, and at positions without suspect triads its verdict is the shape's.
        #[test]
        fn shortcuts_agree_with_the_filter(
            (w, h, dead, links) in (1u16..6, 1u16..5).prop_flat_map(|(w, h)| {
                let board = (0..w, 0..h, 0u8..3).prop_map(|(x, y, z)| Board::new(x, y, z));
                let link = (board.clone(), 0u8..6).prop_map(|(b, l)| (b, Link::from_u8(l).unwrap()));
                (Just(w), Just(h), prop::collection::vec(board, 0..4), prop::collection::vec(link, 0..4))
            }),
            limits in prop::collection::vec(
                (prop::option::of(0u32..40), prop::option::of(0u32..3), prop::option::of(0u32..2), any::<bool>()),
                1..4,
            ),
        ) {
            let mut p = AnywherePacker::new(w, h, &dead, &links, false);
            let mut bfs = Bfs::default();
            for rw in 1..=w {
                for rh in 1..=h {
                    for x in 0..=w - rw {
                        for y in 0..=h - rh {
                            let want = p.filter.evaluate(x, y, rw, rh, &ANY).map_or(0, |a| a.boards.len() as u32);
                            prop_assert_eq!(reach_count(p.topology(), &mut bfs, (x, y, rw, rh)), want);
                            let clean = p.static_sat.sum(x as usize, y as usize, rw as usize, rh as usize).1 == 0;
                            for &(expected_boards, max_dead_boards, max_dead_links, require_torus) in &limits {
                                let params = FilterParams { expected_boards, max_dead_boards, max_dead_links, require_torus };
                                if clean {
                                    let v = p.filter.accepts(x, y, rw, rh, &params);
                                    prop_assert_eq!(p.clean_verdict(rw, rh, &params), v);
                                }
                            }
                        }
                    }
                }
            }
        }


        #[test]
        fn invariants_hold_and_runs_are_deterministic(c in case()) {
            let first = run(&c, true)?;
            let second = run(&c, true)?;
            prop_assert_eq!(&first, &second);
            // The bitmaps find exactly what the table scan finds.
            let table = run(&c, false)?;
            prop_assert_eq!(first, table);
        }
    }
}
