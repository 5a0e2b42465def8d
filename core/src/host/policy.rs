//! Retry and windowing policies of the SCP client: how many requests may be in flight, when a
//! request counts as lost, what is resent, and which return codes are worth another try.
//!
//! Three reproduce real clients (protocols.md §8), one is ours:
//!
//! | policy | window | loss detection | resend | retry codes |
//! |---|---|---|---|---|
//! | `spinnman` (1!7.4.1 `SCPRequestPipeLine`) | 8, blocking at 8 until ≤ 7 | no reply *at all* for 1.0 s | every outstanding request | RC_TIMEOUT, RC_P2P_TIMEOUT, RC_LEN, RC_P2P_NOREPLY, RC_P2P_BUSY: pause the pipeline 0.1 s, resend |
//! | `spinnman-legacy` (the same pipeline, 2016-06 … 2018-01) | 1 | no reply at all for 0.5 s | every outstanding request | RC_TIMEOUT, RC_P2P_TIMEOUT, RC_LEN, RC_P2P_NOREPLY: resend at once |
//! | `rig` (2.4.1 `send_scp_burst`) | 1 | 0.5 s per packet | that packet | RC_SUM, RC_P2P_BUSY ignored (resent on timeout); others fatal |
//! | `adaptive` | AIMD: 8, halved per loss episode (≥ 1), +1 per window of successes, ≤ 8 | a later-sent request answered first and one RTT + a reordering window gone by (RACK, RFC 8985); else the RFC 6298 RTO (SRTT + 4·RTTVAR, 20 ms..2 s, Karn, backoff) | that request | as spinnman, but only that request pauses, 10 ms |
//!
//! `spinnman` and `spinnman-legacy` are two presets of one parameterised family,
//! [`PipelinePolicy`]: spinnman's `SCPRequestPipeLine(n_channels, intermediate_channel_waits,
//! n_retries, packet_timeout)` with its set of retry codes and its pause before a retry-code
//! resend. Any [`Policy`] can be paced by a token bucket ([`super::pacer`]).
//!
//! Why `adaptive` wins: spinnman only notices a loss when the *whole* pipeline has been silent
//! for 1 s — a lost request keeps its channel until all 8 are stuck — and then resends all 8;
//! rig waits 0.5 s per loss with one request in flight. SCAMP answers requests in order, so
//! `adaptive` takes a reply to a later request as evidence that an earlier one was lost and
//! resends it about one RTT after it was sent; the RTO only covers tail losses. A resend
//! triggered that way halves the window only when the reply proves the loss real (it answers
//! the resend, not the original); a reply to the original (too early, or a second reply after
//! completion) marks the resend spurious, widens the reordering window and undoes the last
//! halving. Requests with a fixed timeout (BMP power-on) are left to their timer.
//!
//! spinnman's attempts per request are 1 + 10 retries, rig's 5 transmissions, adaptive's
//! 1 + 20. The window is never above 8 for `adaptive`: SCAMP holds at most 8 transient IP
//! tags and silently drops a ninth reply-expecting request. The cap is conservative: a tag is
//! held only from a request's arrival to its reply's transmission, so on a long path a window
//! above 8 whose sends are spaced by SC&MP's service time loses nothing (the SCP study's
//! 16-channel pipeline with a token bucket moves twice as much at a 10 ms RTT).

use super::MAX_WINDOW;
use crate::proto::scp::ReturnCode;
use crate::time::Duration;
use core::fmt;

/// Largest window any policy accepts (keeps sequence-number allocation trivially bounded).
const WINDOW_LIMIT: usize = 1024;

/// A set of SCP return codes (the named ones, RC_LEN … RC_PKT_TX): the codes a
/// [`PipelinePolicy`] answers with a pause and a resend.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct RetryCodes(u16);

impl RetryCodes {
    /// No code is retried: every non-OK reply fails its request.
    pub const EMPTY: RetryCodes = RetryCodes(0);

    /// spinnman 1!7.4.1's `RETRY_CODES`: RC_TIMEOUT, RC_P2P_TIMEOUT, RC_LEN, RC_P2P_NOREPLY,
    /// RC_P2P_BUSY (`spinnman/connections/scp_request_pipeline.py`).
    pub const SPINNMAN: RetryCodes = RetryCodes::of(&[
        ReturnCode::Timeout,
        ReturnCode::P2pTimeout,
        ReturnCode::Len,
        ReturnCode::P2pNoReply,
        ReturnCode::P2pBusy,
    ]);

    /// The earlier pipeline's `retry_codes` default (2016-06-09 … 2018-02-22): RC_TIMEOUT,
    /// RC_P2P_TIMEOUT, RC_LEN, RC_P2P_NOREPLY.
    pub const SPINNMAN_LEGACY: RetryCodes = RetryCodes::of(&[
        ReturnCode::Timeout,
        ReturnCode::P2pTimeout,
        ReturnCode::Len,
        ReturnCode::P2pNoReply,
    ]);

    /// The bit of `rc`, if it is a named error code.
    const fn bit(rc: ReturnCode) -> Option<u16> {
        let code = rc.code();
        if code > 0x80 && code <= 0x8F && !matches!(rc, ReturnCode::Unknown(_)) {
            Some(1 << (code - 0x80))
        } else {
            None
        }
    }

    /// The set of `codes` (RC_OK and unnamed codes are left out: they are never retried).
    pub const fn of(codes: &[ReturnCode]) -> RetryCodes {
        let mut bits = 0u16;
        let mut i = 0;
        while i < codes.len() {
            if let Some(b) = Self::bit(codes[i]) {
                bits |= b;
            }
            i += 1;
        }
        RetryCodes(bits)
    }

    /// Whether `rc` is in the set.
    pub const fn contains(self, rc: ReturnCode) -> bool {
        match Self::bit(rc) {
            Some(b) => self.0 & b != 0,
            None => false,
        }
    }

    /// The set with `rc` added (a code that cannot be retried — RC_OK, unnamed codes — is
    /// ignored).
    pub const fn with(self, rc: ReturnCode) -> RetryCodes {
        match Self::bit(rc) {
            Some(b) => RetryCodes(self.0 | b),
            None => self,
        }
    }

    /// The codes, in code order.
    pub fn iter(self) -> impl Iterator<Item = ReturnCode> {
        (0x81u16..=0x8F)
            .map(ReturnCode::from_code)
            .filter(move |rc| self.contains(*rc))
    }

    /// Number of codes.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// True when no code is retried.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The named code written `name`: the firmware's name (`"RC_P2P_BUSY"`) or without its
    /// `RC_` prefix (`"P2P_BUSY"`), in any case. RC_OK is not a retry code.
    pub fn code_named(name: &str) -> Option<ReturnCode> {
        let upper = name.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("RC_").unwrap_or(&upper);
        (0x81u16..=0x8F)
            .map(ReturnCode::from_code)
            .find(|rc| rc.name().strip_prefix("RC_") == Some(bare))
    }
}

impl fmt::Debug for RetryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(ReturnCode::name)).finish()
    }
}

impl FromIterator<ReturnCode> for RetryCodes {
    fn from_iter<I: IntoIterator<Item = ReturnCode>>(iter: I) -> RetryCodes {
        iter.into_iter().fold(RetryCodes::EMPTY, RetryCodes::with)
    }
}

/// spinnman's `SCPRequestPipeLine` as a parameterised family (protocols.md §8.1): at most
/// `n_channels` requests in flight; once that many are, wait until at most
/// `intermediate_channel_waits` are; when no reply *at all* has come for `packet_timeout`,
/// resend everything outstanding; a reply with a code in `retry_codes` pauses the whole pipeline
/// for `retry_code_pause` and resends that request; `n_retries` retransmissions per request for
/// any reason.
///
/// Presets: [`PipelinePolicy::spinnman`] (1!7.4.1, the default) and
/// [`PipelinePolicy::spinnman_legacy`] (the pipeline before it took 8 channels and slept on
/// retry codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelinePolicy {
    /// Most requests in flight (`n_channels`, default 8).
    pub n_channels: usize,
    /// When `n_channels` are in flight, wait until at most this many are (default 7; values
    /// of `n_channels` or more act as `n_channels − 1`).
    pub intermediate_channel_waits: usize,
    /// Receive timeout: with no reply for this long, everything outstanding is resent
    /// (default 1.0 s).
    pub packet_timeout: Duration,
    /// Retransmissions per request (default 10).
    pub n_retries: u32,
    /// Pipeline pause before resending after a retry code (default 0.1 s; zero resends at
    /// once).
    pub retry_code_pause: Duration,
    /// The return codes answered by a pause and a resend (default [`RetryCodes::SPINNMAN`]);
    /// any other non-OK code fails the request.
    pub retry_codes: RetryCodes,
}

/// The name spinnbed used before the pipeline became a family.
pub type SpinnmanPolicy = PipelinePolicy;

impl PipelinePolicy {
    /// spinnman 1!7.4.1: 8 channels, wait for 7, 10 retries, 1 s, the five codes of
    /// [`RetryCodes::SPINNMAN`] with a 0.1 s sleep (`AbstractMultiConnectionProcess` defaults,
    /// `spinnman/constants.py` `SCP_TIMEOUT` and `N_RETRIES`, `scp_request_pipeline.py`).
    pub const fn spinnman() -> PipelinePolicy {
        PipelinePolicy {
            n_channels: 8,
            intermediate_channel_waits: 7,
            packet_timeout: Duration::from_secs(1),
            n_retries: 10,
            retry_code_pause: Duration::from_millis(100),
            retry_codes: RetryCodes::SPINNMAN,
        }
    }

    /// The earlier spinnman pipeline: 1 channel, 0 waits, 3 retries, 0.5 s, codes RC_TIMEOUT,
    /// RC_P2P_TIMEOUT, RC_LEN, RC_P2P_NOREPLY, resent at once.
    ///
    /// From SpiNNMan's history (`spinnman/connections/scp_request_pipeline.py`): these are the
    /// constructor defaults from commit 3daf1a49 (2016-06-09, which added RC_P2P_NOREPLY to
    /// `retry_codes`) until cf38dd02 (2018-02-10) raised `packet_timeout` to 1.0 s; 37e94afe
    /// (2016-09-19) moved the processes' own defaults to 8 channels and 7 waits, but the
    /// pipeline class kept 1 and 0. That pipeline treated a timeout as 1!7.4.1 does:
    /// `_do_retrieve` blocks in `receive_scp_response(packet_timeout)`, and when no reply at all
    /// comes `_handle_receive_timeout` resends *every* outstanding request (each resend
    /// spending one of its `n_retries`; a request out of retries fails, with a timeout error if
    /// every retry was for a timeout). A retry code was resent at once inside
    /// `_single_retrieve` — the 0.1 s `time.sleep` came with 816f1b80 (2018-02-22) — so the
    /// pause here is zero.
    pub const fn spinnman_legacy() -> PipelinePolicy {
        PipelinePolicy {
            n_channels: 1,
            intermediate_channel_waits: 0,
            packet_timeout: Duration::from_millis(500),
            n_retries: 3,
            retry_code_pause: Duration::ZERO,
            retry_codes: RetryCodes::SPINNMAN_LEGACY,
        }
    }
}

impl Default for PipelinePolicy {
    fn default() -> Self {
        PipelinePolicy::spinnman()
    }
}

/// rig 2.4.1's `SCPConnection.send_scp_burst` (protocols.md §8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RigPolicy {
    /// Requests in flight (`scp_window_size`, hard-wired to 1 in rig).
    pub window: usize,
    /// Per-packet timeout (default 0.5 s).
    pub timeout: Duration,
    /// Transmissions per request before giving up (default 5).
    pub n_tries: u32,
}

impl Default for RigPolicy {
    fn default() -> Self {
        RigPolicy {
            window: 1,
            timeout: Duration::from_millis(500),
            n_tries: 5,
        }
    }
}

/// Our policy: RACK-style loss detection with an RFC 6298 retransmission timer as the backstop,
/// selective resend and an AIMD window capped at SCAMP's 8 transient tags (see the module
/// documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptivePolicy {
    /// Window at start (default 8).
    pub initial_window: usize,
    /// Largest window (default and maximum 8).
    pub max_window: usize,
    /// Smallest window (default 1).
    pub min_window: usize,
    /// RTO before the first RTT sample (default 0.5 s).
    pub initial_rto: Duration,
    /// Lower clamp of the RTO (default 20 ms).
    pub min_rto: Duration,
    /// Upper clamp of the RTO, also of its exponential backoff (default 2 s).
    pub max_rto: Duration,
    /// Retransmissions per request (default 20).
    pub n_retries: u32,
    /// Pause before resending one request after a retry code (default 10 ms).
    pub retry_code_pause: Duration,
}

impl Default for AdaptivePolicy {
    fn default() -> Self {
        AdaptivePolicy {
            initial_window: MAX_WINDOW,
            max_window: MAX_WINDOW,
            min_window: 1,
            initial_rto: Duration::from_millis(500),
            min_rto: Duration::from_millis(20),
            max_rto: Duration::from_secs(2),
            n_retries: 20,
            retry_code_pause: Duration::from_millis(10),
        }
    }
}

/// A retry and windowing policy for [`super::ScpClient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// spinnman's pipeline family (by default 1!7.4.1).
    Spinnman(PipelinePolicy),
    /// rig 2.4.1.
    Rig(RigPolicy),
    /// RTT-driven, selective, windowed.
    Adaptive(AdaptivePolicy),
}

impl Default for Policy {
    fn default() -> Self {
        Policy::spinnman()
    }
}

impl Policy {
    /// The policy names [`Policy::from_name`] accepts.
    pub const NAMES: [&'static str; 4] = ["spinnman", "spinnman-legacy", "rig", "adaptive"];

    /// spinnman's defaults.
    pub fn spinnman() -> Policy {
        Policy::Spinnman(PipelinePolicy::spinnman())
    }

    /// The earlier spinnman pipeline ([`PipelinePolicy::spinnman_legacy`]).
    pub fn spinnman_legacy() -> Policy {
        Policy::Spinnman(PipelinePolicy::spinnman_legacy())
    }

    /// rig's defaults.
    pub fn rig() -> Policy {
        Policy::Rig(RigPolicy::default())
    }

    /// The adaptive policy's defaults.
    pub fn adaptive() -> Policy {
        Policy::Adaptive(AdaptivePolicy::default())
    }

    /// The default policy called `name` (one of [`Policy::NAMES`]).
    pub fn from_name(name: &str) -> Option<Policy> {
        match name {
            "spinnman" => Some(Policy::spinnman()),
            "spinnman-legacy" => Some(Policy::spinnman_legacy()),
            "rig" => Some(Policy::rig()),
            "adaptive" => Some(Policy::adaptive()),
            _ => None,
        }
    }

    /// The policy's name: a preset's (`spinnman`, `spinnman-legacy`), `pipeline` for other
    /// settings of spinnman's pipeline, `rig` or `adaptive`.
    pub fn name(&self) -> &'static str {
        match self {
            Policy::Spinnman(p) if *p == PipelinePolicy::spinnman() => "spinnman",
            Policy::Spinnman(p) if *p == PipelinePolicy::spinnman_legacy() => "spinnman-legacy",
            Policy::Spinnman(_) => "pipeline",
            Policy::Rig(_) => "rig",
            Policy::Adaptive(_) => "adaptive",
        }
    }

    /// Most requests this policy ever has in flight.
    pub fn max_window(&self) -> usize {
        match self {
            Policy::Spinnman(p) => p.n_channels,
            Policy::Rig(p) => p.window,
            Policy::Adaptive(p) => p.max_window.min(MAX_WINDOW),
        }
        .clamp(1, WINDOW_LIMIT)
    }

    /// Retransmissions per request unless a request says otherwise.
    pub fn default_retries(&self) -> u32 {
        match self {
            Policy::Spinnman(p) => p.n_retries,
            Policy::Rig(p) => p.n_tries.saturating_sub(1),
            Policy::Adaptive(p) => p.n_retries,
        }
    }

    /// Whether a reply with `rc` (not RC_OK) is answered by a pause and a resend: the
    /// pipeline's `retry_codes`; for `adaptive` spinnman's five; never for `rig` (which treats
    /// RC_SUM and RC_P2P_BUSY as lost packets instead).
    pub fn retries_on(&self, rc: ReturnCode) -> bool {
        match self {
            Policy::Spinnman(p) => p.retry_codes.contains(rc),
            Policy::Adaptive(_) => RetryCodes::SPINNMAN.contains(rc),
            Policy::Rig(_) => false,
        }
    }

    /// The fixed timeout of `spinnman` and `rig`; for `adaptive` the initial RTO.
    pub fn default_timeout(&self) -> Duration {
        match self {
            Policy::Spinnman(p) => p.packet_timeout,
            Policy::Rig(p) => p.timeout,
            Policy::Adaptive(p) => p.initial_rto,
        }
    }
}

/// RFC 6298 retransmission-timeout estimator in integer microseconds.
///
/// `SRTT ← 7/8·SRTT + 1/8·R`, `RTTVAR ← 3/4·RTTVAR + 1/4·|SRTT − R|` (first sample: SRTT = R,
/// RTTVAR = R/2), `RTO = SRTT + max(1 µs, 4·RTTVAR)` clamped to `[min, max]`; each timeout
/// doubles the RTO up to `max` until the next sample. Callers follow Karn's algorithm: no
/// samples from retransmitted requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttEstimator {
    srtt: Option<u64>,
    rttvar: u64,
    rto: u64,
    min: u64,
    max: u64,
}

impl RttEstimator {
    /// An estimator with no samples yet.
    pub fn new(initial: Duration, min: Duration, max: Duration) -> RttEstimator {
        let min = min.as_micros().max(1);
        let max = max.as_micros().max(min);
        RttEstimator {
            srtt: None,
            rttvar: 0,
            rto: initial.as_micros().clamp(min, max),
            min,
            max,
        }
    }

    /// Feeds one round-trip time.
    pub fn sample(&mut self, rtt: Duration) {
        let r = rtt.as_micros();
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(s) => {
                self.rttvar = (3 * self.rttvar + s.abs_diff(r)) / 4;
                self.srtt = Some((7 * s + r) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        self.rto = srtt.saturating_add((4 * self.rttvar).max(1)).clamp(self.min, self.max);
    }

    /// A retransmission timer expired: double the RTO (at most `max`).
    pub fn backoff(&mut self) {
        self.rto = self.rto.saturating_mul(2).min(self.max);
    }

    /// The current retransmission timeout.
    pub fn rto(&self) -> Duration {
        Duration(self.rto)
    }

    /// The smoothed RTT, once there is a sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt.map(Duration)
    }

    /// The RTT variation.
    pub fn rttvar(&self) -> Duration {
        Duration(self.rttvar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in Policy::NAMES {
            assert_eq!(Policy::from_name(name).unwrap().name(), name);
        }
        assert_eq!(Policy::from_name("tcp"), None);
        assert_eq!(Policy::spinnman().max_window(), 8);
        assert_eq!(Policy::rig().max_window(), 1);
        assert_eq!(Policy::adaptive().max_window(), 8);
        assert_eq!(Policy::spinnman().default_retries(), 10);
        assert_eq!(Policy::rig().default_retries(), 4);
        assert_eq!(Policy::adaptive().default_retries(), 20);
        let big = Policy::Adaptive(AdaptivePolicy {
            max_window: 64,
            ..AdaptivePolicy::default()
        });
        assert_eq!(big.max_window(), MAX_WINDOW);
    }

    #[test]
    fn rfc6298_estimator() {
        let mut e = RttEstimator::new(
            Duration::from_millis(500),
            Duration::from_millis(20),
            Duration::from_secs(2),
        );
        assert_eq!(e.rto(), Duration::from_millis(500));
        e.sample(Duration::from_millis(100));
        // SRTT 100, RTTVAR 50, RTO 300 ms.
        assert_eq!(e.srtt(), Some(Duration::from_millis(100)));
        assert_eq!(e.rto(), Duration::from_millis(300));
        for _ in 0..200 {
            e.sample(Duration::from_millis(1));
        }
        // Converges to the minimum clamp.
        assert_eq!(e.rto(), Duration::from_millis(20));
        assert!(e.srtt().unwrap() <= Duration::from_micros(1_100));
        e.backoff();
        assert_eq!(e.rto(), Duration::from_millis(40));
        for _ in 0..10 {
            e.backoff();
        }
        assert_eq!(e.rto(), Duration::from_secs(2));
        e.sample(Duration::from_millis(1));
        assert_eq!(e.rto(), Duration::from_millis(20));
    }
}
