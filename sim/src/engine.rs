//! The discrete-event engine: a clock, an event queue ordered by (time, sequence), and seeded
//! random streams, one per purpose.
//!
//! Time is an integer ([`Instant`], µs). Two events at the same instant run in the order they
//! were scheduled (the sequence number breaks ties), so a run is a pure function of its inputs.
//! Nothing here reads the wall clock.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use spinnbed_core::time::Instant;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

struct Entry<E> {
    at: Instant,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: reverse so the earliest (time, sequence) comes out first.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Events of type `E` ordered by (time, scheduling order).
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    next_seq: u64,
    now: Instant,
    popped: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            next_seq: 0,
            now: Instant::ZERO,
            popped: 0,
        }
    }
}

impl<E> std::fmt::Debug for EventQueue<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventQueue")
            .field("now", &self.now)
            .field("pending", &self.heap.len())
            .finish()
    }
}

impl<E> EventQueue<E> {
    /// The time of the event being handled (or the start).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Schedules `event` at `at` (never before now: earlier times are clamped to now).
    pub fn schedule(&mut self, at: Instant, event: E) {
        let at = at.max(self.now);
        self.heap.push(Entry {
            at,
            seq: self.next_seq,
            event,
        });
        self.next_seq += 1;
    }

    /// Time of the next event.
    pub fn peek_time(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.at)
    }

    /// Removes the next event and advances the clock to it.
    pub fn pop(&mut self) -> Option<(Instant, E)> {
        let e = self.heap.pop()?;
        debug_assert!(e.at >= self.now, "time went backwards");
        self.now = e.at;
        self.popped += 1;
        Some((e.at, e.event))
    }

    /// Moves the clock forward to `now` without handling anything (real-time drivers, where
    /// time passes between events). Never moves it back.
    pub fn advance_to(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// Removes the next event if it is due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, E)> {
        if self.peek_time().is_some_and(|t| t <= now) {
            self.pop()
        } else {
            None
        }
    }

    /// Events handled so far.
    pub fn handled(&self) -> u64 {
        self.popped
    }

    /// Events still scheduled.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True if nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// 64-bit FNV-1a, used to turn stream names into ChaCha stream numbers.
pub fn fnv1a64(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A random stream for one purpose: the scenario seed is the key, the purpose's name picks the
/// ChaCha stream, so adding draws to one purpose never shifts another's.
pub fn stream(seed: u64, name: &str) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(fnv1a64(name));
    rng
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn events_come_out_by_time_then_scheduling_order() {
        let mut q = EventQueue::default();
        q.schedule(Instant(5), "b");
        q.schedule(Instant(1), "a");
        q.schedule(Instant(5), "c");
        q.schedule(Instant(3), "x");
        let order: Vec<&str> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, vec!["a", "x", "b", "c"]);
        assert_eq!(q.now(), Instant(5));
        q.schedule(Instant(1), "late");
        assert_eq!(q.pop(), Some((Instant(5), "late")));
        assert_eq!(q.handled(), 5);
    }

    #[test]
    fn streams_are_independent_and_reproducible() {
        let a1: u64 = stream(7, "arrivals").next_u64();
        let a2: u64 = stream(7, "arrivals").next_u64();
        let d: u64 = stream(7, "durations").next_u64();
        let other_seed: u64 = stream(8, "arrivals").next_u64();
        assert_eq!(a1, a2);
        assert_ne!(a1, d);
        assert_ne!(a1, other_seed);
    }
}
