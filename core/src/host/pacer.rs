//! Token-bucket pacing of an SCP client's transmissions: spinnman's `TokenBucket(tokens,
//! fill_rate)`, sans-IO.
//!
//! spinnman (`spinnman/connections/token_bucket.py`) keeps a bucket of `tokens` tokens that
//! fills at `fill_rate` tokens a second and starts full; `consume(n)` sleeps until `n` tokens
//! are there and takes them. Its `SCPRequestPipeLine` charges a flat 284 tokens per request,
//! whatever its size (`self._token_bucket.consume(284)` before each first send, with
//! `TokenBucket(43750, 4375000)` — 15,405 packets a second, 64.9 µs apart, about SC&MP's
//! service time — or `TokenBucket(3408, 700000)`); both lines are commented out in 1!7.4.1 and
//! have been since the pipeline was written (SpiNNMan 8d778dc0, 2015-05-18).
//!
//! Here the bucket does not sleep: [`Pacer::try_consume`] takes the tokens if they are there,
//! and [`Pacer::ready_at`] says when they will be. [`super::ScpClient`] holds every transmission
//! (first sends and resends alike, in the order the policy made them) until the bucket allows
//! it, so pacing composes with any [`super::Policy`].
//!
//! Two details follow spinnman exactly. The level is brought up to date only while the bucket is
//! below capacity (its `tokens` property updates `_timestamp` only then), so after a spell of
//! being full the first refill counts from the last update before it: the bucket can give a
//! burst of up to twice its capacity after an idle spell. And asking for more than the capacity
//! never succeeds in spinnman (it sleeps forever); here the request is cut to the capacity.
//! Tokens are kept in millionths, so the arithmetic is exact in integer microseconds.

use crate::time::{Duration, Instant};

/// How many tokens one transmission costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// The same for every datagram (spinnman: 284, [`TokenBucket::SPINNMAN_CHARGE`]).
    Flat(u32),
    /// The datagram's UDP payload bytes.
    Bytes,
}

/// A token bucket's settings: spinnman's `TokenBucket(tokens, fill_rate)` and what a packet
/// costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Capacity, and the level at start (tokens; bytes when [`Charge::Bytes`]).
    pub tokens: u64,
    /// Tokens added per second (at least 1).
    pub fill_rate: u64,
    /// Cost of one transmission.
    pub charge: Charge,
}

impl TokenBucket {
    /// spinnman's flat charge per request.
    pub const SPINNMAN_CHARGE: u32 = 284;

    /// The faster of spinnman's two commented-out buckets: `TokenBucket(43750, 4375000)` at 284
    /// tokens a request, one request per 64.9 µs after a burst of 154.
    pub const fn spinnman() -> TokenBucket {
        TokenBucket {
            tokens: 43_750,
            fill_rate: 4_375_000,
            charge: Charge::Flat(Self::SPINNMAN_CHARGE),
        }
    }

    /// The tokens a datagram of `udp_len` payload bytes costs, at most the capacity.
    pub fn cost(&self, udp_len: usize) -> u64 {
        let c = match self.charge {
            Charge::Flat(n) => u64::from(n),
            Charge::Bytes => udp_len as u64,
        };
        c.min(self.tokens)
    }

    /// The steady interval between transmissions of `udp_len` bytes once the burst is spent.
    pub fn interval(&self, udp_len: usize) -> Duration {
        let fill = u128::from(self.fill_rate.max(1));
        let us = (u128::from(self.cost(udp_len)) * 1_000_000).div_ceil(fill);
        Duration(u64::try_from(us).unwrap_or(u64::MAX))
    }
}

const MICRO: u128 = 1_000_000;

/// A token bucket in use (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pacer {
    bucket: TokenBucket,
    /// Millionths of a token.
    level: u128,
    /// When `level` was last brought up to date (spinnman's `_timestamp`).
    stamp: Instant,
}

impl Pacer {
    /// A full bucket at `now`.
    pub fn new(bucket: TokenBucket, now: Instant) -> Pacer {
        Pacer {
            bucket,
            level: u128::from(bucket.tokens) * MICRO,
            stamp: now,
        }
    }

    /// The settings.
    pub fn bucket(&self) -> &TokenBucket {
        &self.bucket
    }

    fn capacity(&self) -> u128 {
        u128::from(self.bucket.tokens) * MICRO
    }

    fn fill(&self) -> u128 {
        u128::from(self.bucket.fill_rate.max(1))
    }

    /// spinnman's `tokens` property: refill since the last update, only if not full.
    fn refresh(&mut self, now: Instant) {
        if self.level < self.capacity() {
            let dt = u128::from(now.saturating_duration_since(self.stamp).as_micros());
            self.level = (self.level + self.fill() * dt).min(self.capacity());
            self.stamp = self.stamp.max(now);
        }
    }

    /// The tokens in the bucket at `now`.
    pub fn tokens(&mut self, now: Instant) -> f64 {
        self.refresh(now);
        self.level as f64 / MICRO as f64
    }

    /// Takes `n` tokens (at most the capacity) if they are there at `now`.
    pub fn try_consume(&mut self, now: Instant, n: u64) -> bool {
        self.refresh(now);
        let want = u128::from(n.min(self.bucket.tokens)) * MICRO;
        if want <= self.level {
            self.level -= want;
            true
        } else {
            false
        }
    }

    /// When `n` tokens (at most the capacity) will be in the bucket: `now` if they are, else
    /// `now` plus the deficit over the fill rate, rounded up to the microsecond (spinnman's
    /// `sleep(deficit / fill_rate)`).
    pub fn ready_at(&mut self, now: Instant, n: u64) -> Instant {
        self.refresh(now);
        let want = u128::from(n.min(self.bucket.tokens)) * MICRO;
        if want <= self.level {
            return now;
        }
        let us = (want - self.level).div_ceil(self.fill());
        now + Duration(u64::try_from(us).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spinnman_bucket_bursts_then_paces() {
        let b = TokenBucket::spinnman();
        assert_eq!(b.cost(26), 284);
        assert_eq!(b.interval(26), Duration::from_micros(65));
        let mut p = Pacer::new(b, Instant::ZERO);
        // 43,750 / 284 = 154 requests at once.
        let mut n = 0;
        while p.try_consume(Instant::ZERO, 284) {
            n += 1;
        }
        assert_eq!(n, 154);
        // 43,750 − 154·284 = 14 tokens left: 270 more take 270 / 4.375 µs = 61.7 → 62 µs.
        let t = p.ready_at(Instant::ZERO, 284);
        assert_eq!(t, Instant(62));
        assert!(!p.try_consume(Instant(61), 284));
        assert!(p.try_consume(t, 284));
        // From then on one request per 284 / 4.375 = 64.9 µs.
        let mut now = t;
        let mut gaps = Vec::new();
        for _ in 0..100 {
            let next = p.ready_at(now, 284);
            assert!(p.try_consume(next, 284));
            gaps.push((next - now).as_micros());
            now = next;
        }
        assert!(gaps.iter().all(|g| (64..=65).contains(g)), "{gaps:?}");
        // 1.25 tokens were left at t: the 100th is due at the first whole µs T with
        // 1.25 + 4.375·T ≥ 100·284, T = 6492.
        let total: u64 = gaps.iter().sum();
        assert_eq!(total, 6492);
    }

    #[test]
    fn a_full_bucket_keeps_its_stamp_as_spinnman_does() {
        let b = TokenBucket {
            tokens: 1000,
            fill_rate: 1000,
            charge: Charge::Flat(500),
        };
        let mut p = Pacer::new(b, Instant::ZERO);
        // Idle and full for 10 s: the stamp stays at 0.
        assert!(p.try_consume(Instant::from_secs(10), 500));
        // The next look refills from t = 0, not from t = 10 s: full again at once.
        assert_eq!(p.tokens(Instant::from_secs(10)), 1000.0);
        assert!(p.try_consume(Instant::from_secs(10), 500));
        assert!(p.try_consume(Instant::from_secs(10), 500));
        // Now below capacity with a fresh stamp: 500 tokens take 0.5 s.
        assert!(!p.try_consume(Instant::from_secs(10), 500));
        assert_eq!(p.ready_at(Instant::from_secs(10), 500), Instant::from_millis(10_500));
    }

    #[test]
    fn charges_and_limits() {
        let bytes = TokenBucket {
            tokens: 300,
            fill_rate: 1_000_000,
            charge: Charge::Bytes,
        };
        assert_eq!(bytes.cost(282), 282);
        assert_eq!(bytes.cost(4000), 300, "cut to the capacity");
        assert_eq!(bytes.interval(282), Duration::from_micros(282));
        let mut p = Pacer::new(bytes, Instant::ZERO);
        // More than the capacity: it waits for a full bucket instead of forever.
        assert!(p.try_consume(Instant::ZERO, 100));
        assert_eq!(p.ready_at(Instant::ZERO, 10_000), Instant(100));
        assert!(p.try_consume(Instant(100), 10_000));
        // A zero fill rate counts as 1 token a second.
        let slow = TokenBucket {
            tokens: 1,
            fill_rate: 0,
            charge: Charge::Flat(1),
        };
        let mut p = Pacer::new(slow, Instant::ZERO);
        assert!(p.try_consume(Instant::ZERO, 1));
        assert_eq!(p.ready_at(Instant::ZERO, 1), Instant::from_secs(1));
    }
}
