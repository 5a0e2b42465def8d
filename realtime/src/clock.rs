//! [`Clock`]: the wall clock as the sans-IO code's time — microseconds since a start.

use spinnbed_core::time::Instant;

/// Microseconds since the clock started, as an [`Instant`], and back.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: tokio::time::Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn start() -> Clock {
        Clock {
            start: tokio::time::Instant::now(),
        }
    }

    /// Now.
    pub fn now(&self) -> Instant {
        Instant(self.start.elapsed().as_micros() as u64)
    }

    /// The wall-clock moment of `t` (saturating far in the future).
    pub fn at(&self, t: Instant) -> tokio::time::Instant {
        self.start
            .checked_add(std::time::Duration::from_micros(t.0))
            .unwrap_or_else(|| self.far_future())
    }

    /// A moment far enough ahead to mean "no deadline".
    pub fn far_future(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + std::time::Duration::from_secs(86_400 * 365)
    }
}
