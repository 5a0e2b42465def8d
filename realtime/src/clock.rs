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

/// The wall clock as Unix time: microseconds since 1970, as an [`Instant`] (a live server's
/// times are real dates: clients read them back as Unix timestamps, and they must go on
/// increasing across restarts).
#[derive(Debug, Clone, Copy)]
pub struct UnixClock {
    base_unix: Instant,
    base: tokio::time::Instant,
}

impl UnixClock {
    /// A clock reading the system's Unix time now, but never earlier than `floor` (the last
    /// time a previous run recorded: a clock set back must not make time run backwards).
    pub fn start(floor: Instant) -> UnixClock {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        UnixClock {
            base_unix: Instant(unix).max(floor.saturating_add(spinnbed_core::time::Duration(1))),
            base: tokio::time::Instant::now(),
        }
    }

    /// Now.
    pub fn now(&self) -> Instant {
        self.base_unix
            .saturating_add(spinnbed_core::time::Duration(self.base.elapsed().as_micros() as u64))
    }

    /// The wall-clock moment of `t` (now if `t` is past; saturating far in the future).
    pub fn at(&self, t: Instant) -> tokio::time::Instant {
        let after = t.saturating_duration_since(self.base_unix).as_micros();
        self.base
            .checked_add(std::time::Duration::from_micros(after))
            .unwrap_or_else(|| tokio::time::Instant::now() + std::time::Duration::from_secs(86_400 * 365))
    }
}
