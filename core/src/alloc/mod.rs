//! Allocation: which boards a job gets.
//!
//! - [`area`]: request sizes to rectangles (`area_to_rect`).
//! - [`packtree`]: the reference guillotine packer over triads.
//! - [`filter`]: the machine's board graph and the candidate filter (dead boards and links,
//!   reachability, periphery, torus).
//! - [`pyset`]: an exact CPython set model, for the reference's single-board choices.
//! - [`spalloc`]: the reference allocator (policy `spalloc`), decision-for-decision.
//!
//! A packing policy is a [`Packer`]; the [`Allocator`] wraps one with the delayed-free list
//! (`seconds_before_free`, FIFO release, checked at the start of every allocation) that every
//! policy shares.

pub mod anywhere;
pub mod area;
pub mod filter;
pub mod packtree;
pub mod pyset;
pub mod spalloc;

use crate::geometry::{Board, Link, WrapAround};
use crate::time::{Duration, Instant};
use std::collections::VecDeque;

/// Identifies one allocation within one allocator (ids start at 1; failures consume none).
pub type AllocId = u64;

/// What shape of allocation a job asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Shape {
    /// Any one board.
    AnyBoard,
    /// That specific board.
    Board {
        /// The board.
        board: Board,
    },
    /// At least `n` boards (n ≥ 2; the reference treats 1 as [`Shape::AnyBoard`]) in a
    /// rectangle of triads at least as square as `min_ratio`.
    Boards {
        /// Minimum boards.
        n: u32,
        /// Minimum aspect ratio (h/w of the landscape rectangle).
        min_ratio: f64,
    },
    /// A `w × h` rectangle of triads.
    Triads {
        /// Width in triads.
        w: u32,
        /// Height in triads.
        h: u32,
    },
    /// A `w × h` rectangle of triads whose bottom-left triad is `root`'s (the REST API's
    /// `board` with `dimensions`; the reference's v1 protocol has no such form). It does not
    /// wrap around: it must fit between the root and the machine's far edges.
    TriadsAt {
        /// A board of the bottom-left triad (its `z` is not used).
        root: Board,
        /// Width in triads.
        w: u32,
        /// Height in triads.
        h: u32,
    },
}

/// The rectangle `(x, y, w, h)` of a [`Shape::TriadsAt`] request on a `mw × mh` machine, or
/// `None` if it is empty, does not fit between its root and the machine's far edges, or
/// cannot meet `require_torus` (only a whole machine wraps around).
pub fn rooted_rect(root: Board, w: u32, h: u32, mw: u16, mh: u16, require_torus: bool) -> Option<(u16, u16, u16, u16)> {
    let (x, y) = (root.x as u32, root.y as u32);
    let fits = w > 0 && h > 0 && x + w <= mw as u32 && y + h <= mh as u32 && root.z < 3;
    if !fits || (require_torus && (w != mw as u32 || h != mh as u32)) {
        return None;
    }
    Some((root.x, root.y, w as u16, h as u16))
}

/// A complete allocation request.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Request {
    /// The shape.
    pub shape: Shape,
    /// Most dead or unreachable boards tolerated (ignored for single boards).
    pub max_dead_boards: Option<u32>,
    /// Most dead links tolerated inside the allocation (ignored for single boards).
    pub max_dead_links: Option<u32>,
    /// Require wrap-around links (only for whole-machine requests).
    pub require_torus: bool,
}

/// Why a request is malformed (the reference would raise or, worse, leave the job stuck).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// More than three positional arguments.
    #[error("expected at most 3 positional arguments (x, y, z), got {0}")]
    TooManyArgs(usize),
    /// `min_ratio` negative or not a number.
    #[error("min_ratio must be a non-negative number, got {0}")]
    BadRatio(f64),
    /// Torus requested for a single board.
    #[error("require_torus must be False when allocating boards")]
    TorusBoard,
}

impl Request {
    /// A request of the given shape with no limits.
    pub fn new(shape: Shape) -> Request {
        Request {
            shape,
            max_dead_boards: None,
            max_dead_links: None,
            require_torus: false,
        }
    }

    /// Builds a request from the reference's positional arguments: `()` or `(1)` any board,
    /// `(n)` at least n boards, `(w, h)` triads, `(x, y, z)` a specific board. Counts and
    /// sizes of zero or less and coordinates outside every machine stay representable (they
    /// are never possible, so such jobs are cancelled as the reference does); a negative or
    /// NaN `min_ratio` and a torus for a single board are errors.
    pub fn from_args(
        args: &[i64],
        min_ratio: f64,
        max_dead_boards: Option<u32>,
        max_dead_links: Option<u32>,
        require_torus: bool,
    ) -> Result<Request, RequestError> {
        let clamp = |v: i64| -> u32 { v.clamp(0, u32::MAX as i64) as u32 };
        let shape = match *args {
            [] | [1] => Shape::AnyBoard,
            [n] => {
                if min_ratio.is_nan() || min_ratio < 0.0 {
                    return Err(RequestError::BadRatio(min_ratio));
                }
                Shape::Boards { n: clamp(n), min_ratio }
            }
            [w, h] => Shape::Triads {
                w: clamp(w),
                h: clamp(h),
            },
            [x, y, z] => {
                // Coordinates no machine has (negative, too large) become positions outside
                // every machine, so the job is cancelled as the reference does.
                let coord = |v: i64| u16::try_from(v).unwrap_or(u16::MAX);
                let z = u8::try_from(z).unwrap_or(u8::MAX);
                Shape::Board {
                    board: Board::new(coord(x), coord(y), z),
                }
            }
            _ => return Err(RequestError::TooManyArgs(args.len())),
        };
        if require_torus && matches!(shape, Shape::AnyBoard | Shape::Board { .. }) {
            return Err(RequestError::TorusBoard);
        }
        Ok(Request {
            shape,
            max_dead_boards,
            max_dead_links,
            require_torus,
        })
    }

    /// True for single-board requests.
    pub fn is_single_board(&self) -> bool {
        matches!(self.shape, Shape::AnyBoard | Shape::Board { .. })
    }
}

/// A successful allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// Allocation id (for freeing).
    pub id: AllocId,
    /// Boards, in (x, y, z) order.
    pub boards: Vec<Board>,
    /// Wrap-around links present.
    pub torus: WrapAround,
    /// A single-board allocation (its periphery is all six links, whatever the neighbours).
    pub single_board: bool,
}

impl Allocation {
    /// The links leaving the allocation, in (board, link) order: these are disabled at the
    /// FPGAs when the job is powered on.
    pub fn periphery(&self, topo: &filter::Topology) -> Vec<(Board, Link)> {
        topo.periphery(&self.boards, self.single_board)
    }
}

/// A packing policy: places requests on one machine. Freeing is immediate here; the
/// [`Allocator`] adds the delayed-free list in front.
pub trait Packer: std::fmt::Debug + Send {
    /// Policy name as used in scenarios (`spalloc`, …).
    fn name(&self) -> &'static str;
    /// Could the request ever succeed on the idle machine? (May be conservative.)
    fn alloc_possible(&mut self, req: &Request) -> bool;
    /// Tries to place the request now.
    fn alloc(&mut self, req: &Request) -> Option<Allocation>;
    /// Returns an allocation's boards at once.
    fn release(&mut self, id: AllocId);
    /// Replaces the machine's dead boards and links (live allocations are kept).
    fn set_faults(&mut self, dead_boards: &[Board], dead_links: &[(Board, Link)]);
    /// A counter that changes whenever an allocation could newly succeed (after a release or
    /// a fault change): equal values mean an identical failed request would fail again.
    fn generation(&self) -> u64;
    /// Boards held by allocations not yet released (including those on the delayed-free list
    /// of the [`Allocator`], which releases them later).
    fn allocated_boards(&self) -> usize;
    /// A boxed copy, for what-if planning (backfilling).
    fn clone_box(&self) -> Box<dyn Packer>;
}

impl Clone for Box<dyn Packer> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// One entry of the delayed-free list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingFree {
    at: Instant,
    id: AllocId,
    boards: u32,
}

/// A packer plus the delayed-free list: freed allocations return to the packer only once
/// `seconds_before_free` has passed, strictly in the order they were freed, and the list is
/// checked at the start of every allocation.
#[derive(Debug, Clone)]
pub struct Allocator {
    packer: Box<dyn Packer>,
    to_free: VecDeque<PendingFree>,
    delay: Duration,
    pending_boards: usize,
    version: u64,
}

impl Allocator {
    /// Wraps a packer with the given release delay.
    pub fn new(packer: Box<dyn Packer>, seconds_before_free: Duration) -> Allocator {
        Allocator {
            packer,
            to_free: VecDeque::new(),
            delay: seconds_before_free,
            pending_boards: 0,
            version: 0,
        }
    }

    /// The packing policy.
    pub fn packer(&self) -> &dyn Packer {
        self.packer.as_ref()
    }

    /// Mutable access to the packing policy.
    pub fn packer_mut(&mut self) -> &mut dyn Packer {
        self.version += 1;
        self.packer.as_mut()
    }

    /// A counter that changes whenever anything is allocated, freed or released.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The release delay.
    pub fn seconds_before_free(&self) -> Duration {
        self.delay
    }

    /// See [`Packer::alloc_possible`].
    pub fn alloc_possible(&mut self, req: &Request) -> bool {
        self.packer.alloc_possible(req)
    }

    /// Releases what is due, then tries to place the request.
    pub fn alloc(&mut self, now: Instant, req: &Request) -> Option<Allocation> {
        self.check_free(now);
        let a = self.packer.alloc(req);
        self.version += u64::from(a.is_some());
        a
    }

    /// Like [`Allocator::alloc`], but skips the attempt when the packer's generation still
    /// equals `known_failure` (the same request failed then, and nothing was released since).
    pub fn alloc_unless_unchanged(
        &mut self,
        now: Instant,
        req: &Request,
        known_failure: Option<u64>,
    ) -> Option<Allocation> {
        self.check_free(now);
        if known_failure == Some(self.packer.generation()) {
            return None;
        }
        let a = self.packer.alloc(req);
        self.version += u64::from(a.is_some());
        a
    }

    /// Queues an allocation for release (`boards` is its size, for accounting).
    pub fn free(&mut self, now: Instant, id: AllocId, boards: usize) {
        self.to_free.push_back(PendingFree {
            at: now,
            id,
            boards: boards as u32,
        });
        self.pending_boards += boards;
    }

    /// Releases, oldest first, every queued free at least `seconds_before_free` old; stops at
    /// the first younger one. Returns whether anything was released.
    pub fn check_free(&mut self, now: Instant) -> bool {
        let mut changed = false;
        while let Some(p) = self.to_free.front() {
            if now.saturating_duration_since(p.at) < self.delay {
                break;
            }
            let p = *p;
            self.to_free.pop_front();
            self.pending_boards -= p.boards as usize;
            self.packer.release(p.id);
            self.version += 1;
            changed = true;
        }
        changed
    }

    /// When the oldest queued free becomes due, if any.
    pub fn next_release(&self) -> Option<Instant> {
        self.to_free.front().map(|p| p.at + self.delay)
    }

    /// When each queued free becomes due, oldest first.
    pub fn pending_releases(&self) -> impl Iterator<Item = Instant> + '_ {
        self.to_free.iter().map(|p| p.at + self.delay)
    }

    /// Boards in allocations that are freed but not yet released.
    pub fn pending_boards(&self) -> usize {
        self.pending_boards
    }

    /// Boards held by live allocations plus those awaiting release.
    pub fn busy_boards(&self) -> usize {
        self.packer.allocated_boards()
    }
}
