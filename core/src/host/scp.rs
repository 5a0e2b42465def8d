//! The SCP client: one per remote endpoint, with a pluggable retry and windowing [`Policy`].
//!
//! A host talks to a board (or a BMP) on UDP 17893 with SCP requests that each expect one
//! reply carrying the same sequence number. Real clients differ in how many they keep in
//! flight and in how they notice and repair losses, which dominates how long power, boot and
//! memory traffic takes on a lossy network; this module reproduces them packet for packet and
//! adds a better one (see [`super::policy`]).
//!
//! Sans-IO: [`ScpClient::submit`] queues a request, [`ScpClient::handle_datagram`] feeds a
//! reply, [`ScpClient::handle_timeout`] lets time pass; [`ScpClient::poll_transmit`] gives the
//! datagrams to send, [`ScpClient::poll_event`] what became of requests and
//! [`ScpClient::poll_timeout`] when to call back.
//!
//! Sequence numbers are per client, +1 per new request (retransmissions reuse theirs), wrapping
//! at 65536 and skipping any number still outstanding; they are assigned when a request enters
//! the window. A reply whose sequence number is not outstanding (a late duplicate) is counted
//! and ignored.
//!
//! With a token bucket ([`ScpClient::with_pacing`], [`super::pacer`]) every transmission the
//! policy makes — first sends and resends — waits in order until the bucket has its tokens; the
//! request holds its place in the window meanwhile, its timers start when it is really sent,
//! and [`ScpClient::poll_timeout`] includes the bucket's release time. spinnman's receive
//! timeout does not run while a transmission waits (spinnman is asleep in `consume`, not
//! receiving).

use super::pacer::{Pacer, TokenBucket};
use super::policy::{AdaptivePolicy, PipelinePolicy, Policy, RttEstimator};
use super::{FailReason, Outcome, OwnedReply, ScpRequest};
use crate::proto::scp::{self as wire, ReturnCode};
use crate::proto::sdp;
use crate::time::{Duration, Instant};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddrV4;

/// What became of a submitted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A reply arrived (RC_OK, or an error reply with `deliver_errors`).
    Done {
        /// The submitter's token.
        token: u64,
        /// The reply.
        reply: OwnedReply,
    },
    /// The request failed for good.
    Failed {
        /// The submitter's token.
        token: u64,
        /// Why.
        reason: FailReason,
    },
}

impl ClientEvent {
    /// The submitter's token.
    pub fn token(&self) -> u64 {
        match self {
            ClientEvent::Done { token, .. } | ClientEvent::Failed { token, .. } => *token,
        }
    }

    /// The event as an outcome.
    pub fn into_outcome(self) -> (u64, Outcome) {
        match self {
            ClientEvent::Done { token, reply } => (token, Ok(reply)),
            ClientEvent::Failed { token, reason } => (token, Err(reason)),
        }
    }
}

/// Round-trip times of requests answered at their first transmission (Karn: retransmitted
/// requests give no sample), with a log₂ histogram (bucket i: `[2^i, 2^(i+1))` µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RttStats {
    /// Number of samples.
    pub samples: u64,
    /// Sum of the samples, µs.
    pub sum_us: u64,
    /// Smallest sample, µs (0 without samples).
    pub min_us: u64,
    /// Largest sample, µs.
    pub max_us: u64,
    /// log₂ histogram of the samples.
    pub histogram: [u64; 32],
}

impl RttStats {
    /// Adds one sample.
    pub fn record(&mut self, rtt: Duration) {
        let us = rtt.as_micros();
        self.min_us = if self.samples == 0 { us } else { self.min_us.min(us) };
        self.max_us = self.max_us.max(us);
        self.samples += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        let bucket = (u64::BITS - us.max(1).leading_zeros() - 1) as usize;
        if let Some(b) = self.histogram.get_mut(bucket.min(31)) {
            *b += 1;
        }
    }

    /// Mean sample, if any.
    pub fn mean(&self) -> Option<Duration> {
        self.sum_us.checked_div(self.samples).map(Duration)
    }

    /// Adds another set of samples.
    pub fn merge(&mut self, other: &RttStats) {
        if other.samples == 0 {
            return;
        }
        self.min_us = if self.samples == 0 {
            other.min_us
        } else {
            self.min_us.min(other.min_us)
        };
        self.max_us = self.max_us.max(other.max_us);
        self.samples += other.samples;
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        for (a, b) in self.histogram.iter_mut().zip(other.histogram.iter()) {
            *a += b;
        }
    }
}

/// Counters of one client (or, merged, of many).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Requests submitted.
    pub requests: u64,
    /// Requests answered ([`ClientEvent::Done`]).
    pub completed: u64,
    /// Requests failed ([`ClientEvent::Failed`]).
    pub failures: u64,
    /// Requests cancelled by their submitter.
    pub cancelled: u64,
    /// Datagrams sent (first transmissions and retransmissions).
    pub transmissions: u64,
    /// Retransmissions, whatever the reason.
    pub retries: u64,
    /// Timeout expiries (`spinnman`: receive timeouts of the whole pipeline; others: per
    /// request).
    pub timeouts: u64,
    /// Retransmissions caused by a retry return code.
    pub retry_code_resends: u64,
    /// Retransmissions after a later request was answered first (`adaptive`, RACK).
    pub fast_resends: u64,
    /// Retransmissions found unnecessary (the original's reply came back too early to answer
    /// the retransmission).
    pub spurious_resends: u64,
    /// Non-OK replies ignored as lost (rig's RC_SUM and RC_P2P_BUSY).
    pub rc_ignored: u64,
    /// Window reductions (`adaptive`).
    pub window_reductions: u64,
    /// Transmissions a token bucket held back.
    pub paced: u64,
    /// Their total wait, µs.
    pub pacing_wait_us: u64,
    /// UDP payload bytes sent.
    pub bytes_sent: u64,
    /// UDP payload bytes received.
    pub bytes_received: u64,
    /// Datagrams received.
    pub datagrams_received: u64,
    /// Replies whose sequence number was not outstanding (late duplicates).
    pub unexpected: u64,
    /// Datagrams that were not SDP/SCP at all.
    pub malformed: u64,
    /// Most requests ever in flight at once.
    pub max_in_flight: usize,
    /// Round-trip times.
    pub rtt: RttStats,
}

impl Stats {
    /// Adds another client's counters (`max_in_flight` takes the maximum).
    pub fn merge(&mut self, o: &Stats) {
        self.requests += o.requests;
        self.completed += o.completed;
        self.failures += o.failures;
        self.cancelled += o.cancelled;
        self.transmissions += o.transmissions;
        self.retries += o.retries;
        self.timeouts += o.timeouts;
        self.retry_code_resends += o.retry_code_resends;
        self.fast_resends += o.fast_resends;
        self.spurious_resends += o.spurious_resends;
        self.rc_ignored += o.rc_ignored;
        self.window_reductions += o.window_reductions;
        self.paced += o.paced;
        self.pacing_wait_us += o.pacing_wait_us;
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.datagrams_received += o.datagrams_received;
        self.unexpected += o.unexpected;
        self.malformed += o.malformed;
        self.max_in_flight = self.max_in_flight.max(o.max_in_flight);
        self.rtt.merge(&o.rtt);
    }
}

/// A request waiting for a window slot.
#[derive(Debug, Clone)]
struct Pending {
    token: u64,
    request: ScpRequest,
}

/// A request in the window.
#[derive(Debug, Clone)]
struct Outstanding {
    token: u64,
    request: ScpRequest,
    /// Transmission counter value of the first transmission (orders the window).
    order: u64,
    /// Transmission counter value of the latest transmission.
    last_tx: u64,
    last_sent: Instant,
    transmissions: u32,
    /// A resend scheduled after a retry code (the request's timer is stopped meanwhile).
    resend_at: Option<Instant>,
    /// The last retry code received, if any.
    last_rc: Option<ReturnCode>,
    /// `adaptive`: a transmission presumed lost by RACK and resent, whose loss is confirmed
    /// (and the window halved) only when the reply answers the retransmission; a reply to the
    /// original means the network merely reordered.
    suspect: Option<u64>,
    /// Waiting for the token bucket since this time, under this ticket.
    paced: Option<(Instant, u64)>,
}

/// The SCP client of one remote endpoint. See the module documentation.
#[derive(Debug, Clone)]
pub struct ScpClient {
    remote: SocketAddrV4,
    policy: Policy,
    next_seq: u16,
    tx_counter: u64,
    queue: VecDeque<Pending>,
    outstanding: BTreeMap<u16, Outstanding>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<ClientEvent>,
    stats: Stats,
    // pacing
    pacing: Option<TokenBucket>,
    pacer: Option<Pacer>,
    /// Transmissions waiting for tokens, in order: (sequence number, ticket).
    pace_queue: VecDeque<(u16, u64)>,
    pace_ticket: u64,
    /// When the first of them may go.
    pace_at: Option<Instant>,
    // spinnman
    last_activity: Instant,
    paused_until: Option<Instant>,
    blocked: bool,
    // adaptive
    rtt: RttEstimator,
    cwnd: usize,
    cwnd_successes: usize,
    recovery_point: u64,
    /// Window before the last reduction, restored if that loss proves spurious.
    undo_cwnd: Option<usize>,
    /// Transmission counter at the last RTO backoff (one doubling per round of timeouts).
    backoff_point: u64,
    /// RACK (RFC 8985): the latest-sent transmission known to have been answered.
    rack: Option<Rack>,
    /// Smallest unambiguous RTT seen.
    min_rtt: Option<Duration>,
    /// Multiplier of the reordering window, doubled on each spurious retransmission.
    reo_mult: u64,
    /// Recently completed requests that had been resent on suspicion: a second reply for one
    /// of them means the resend was spurious (the analogue of TCP's DSACK).
    resent_done: VecDeque<u16>,
    /// Losses confirmed since the reordering window was last widened or narrowed.
    confirmed_losses: u32,
}

/// The latest-sent answered transmission (RACK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rack {
    tx: u64,
    rtt: Duration,
}

impl ScpClient {
    /// A client for `remote` with `policy`.
    pub fn new(remote: SocketAddrV4, policy: Policy) -> ScpClient {
        let (rtt, cwnd) = match &policy {
            Policy::Adaptive(p) => (
                RttEstimator::new(p.initial_rto, p.min_rto, p.max_rto),
                p.initial_window.clamp(Self::min_window(p), policy.max_window()),
            ),
            other => (
                RttEstimator::new(other.default_timeout(), Duration(1), Duration::MAX),
                other.max_window(),
            ),
        };
        ScpClient {
            remote,
            policy,
            next_seq: 0,
            tx_counter: 0,
            queue: VecDeque::new(),
            outstanding: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            pacing: None,
            pacer: None,
            pace_queue: VecDeque::new(),
            pace_ticket: 0,
            pace_at: None,
            last_activity: Instant::ZERO,
            paused_until: None,
            blocked: false,
            rtt,
            cwnd,
            cwnd_successes: 0,
            recovery_point: 0,
            backoff_point: 0,
            undo_cwnd: None,
            rack: None,
            min_rtt: None,
            reo_mult: 1,
            resent_done: VecDeque::new(),
            confirmed_losses: 0,
        }
    }

    /// The same client with its transmissions paced by a token bucket (`None`: unpaced). The
    /// bucket starts full at the first transmission.
    pub fn with_pacing(mut self, pacing: Option<TokenBucket>) -> ScpClient {
        self.pacing = pacing;
        self.pacer = None;
        self
    }

    /// The token bucket pacing this client, if any.
    pub fn pacing(&self) -> Option<&TokenBucket> {
        self.pacing.as_ref()
    }

    fn min_window(p: &AdaptivePolicy) -> usize {
        p.min_window.clamp(1, p.max_window.clamp(1, super::MAX_WINDOW))
    }

    /// The remote endpoint.
    pub fn remote(&self) -> SocketAddrV4 {
        self.remote
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Requests in the window (sent, not yet answered or failed).
    pub fn in_flight(&self) -> usize {
        self.outstanding.len()
    }

    /// Requests waiting for a window slot.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing is queued, in flight or waiting to be drained.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.outstanding.is_empty() && self.transmits.is_empty() && self.events.is_empty()
    }

    /// The current window: the policy's fixed one, or `adaptive`'s congestion window.
    pub fn window(&self) -> usize {
        self.cwnd
    }

    /// The current retransmission timeout of `adaptive` (its estimate for the others is unused).
    pub fn rto(&self) -> Duration {
        self.rtt.rto()
    }

    /// The RTT estimator (`adaptive`).
    pub fn rtt_estimator(&self) -> &RttEstimator {
        &self.rtt
    }

    /// Queues a request; `token` comes back in its [`ClientEvent`].
    pub fn submit(&mut self, now: Instant, request: ScpRequest, token: u64) {
        self.stats.requests += 1;
        self.queue.push_back(Pending { token, request });
        self.pump(now);
    }

    /// Forgets every queued or outstanding request whose token matches; no event is reported
    /// for them (a late reply is then ignored as unexpected). Returns how many.
    pub fn cancel(&mut self, now: Instant, mut matches: impl FnMut(u64) -> bool) -> usize {
        let before = self.queue.len() + self.outstanding.len();
        self.queue.retain(|p| !matches(p.token));
        self.outstanding.retain(|_, o| !matches(o.token));
        let n = before - self.queue.len() - self.outstanding.len();
        self.stats.cancelled += n as u64;
        if n > 0 {
            self.pump(now);
        }
        n
    }

    /// The next datagram to send to [`ScpClient::remote`].
    pub fn poll_transmit(&mut self) -> Option<(SocketAddrV4, Vec<u8>)> {
        self.transmits.pop_front().map(|d| (self.remote, d))
    }

    /// The next thing that happened to a request.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`ScpClient::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let policy = match &self.policy {
            Policy::Spinnman(_) => match self.paused_until {
                Some(p) => Some(p),
                None if self.outstanding.is_empty() || !self.pace_queue.is_empty() => None,
                None => Some(self.last_activity + self.spinnman_timeout()),
            },
            Policy::Rig(_) | Policy::Adaptive(_) => self
                .outstanding
                .values()
                .filter(|o| o.paced.is_none())
                .map(|o| o.resend_at.unwrap_or_else(|| self.deadline_of(o)))
                .min(),
        };
        match (policy, self.pace_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Processes a datagram from the remote endpoint. Returns true if it answered an
    /// outstanding request.
    pub fn handle_datagram(&mut self, now: Instant, payload: &[u8]) -> bool {
        self.stats.datagrams_received += 1;
        self.stats.bytes_received += payload.len() as u64;
        let Ok(sdp_packet) = sdp::parse_udp(payload) else {
            self.stats.malformed += 1;
            return false;
        };
        let Ok(header) = sdp::Repr::parse(&sdp_packet) else {
            self.stats.malformed += 1;
            return false;
        };
        let scp_bytes = sdp_packet.data();
        let Ok(scp) = wire::Packet::new_checked(scp_bytes) else {
            self.stats.malformed += 1;
            return false;
        };
        if matches!(self.policy, Policy::Spinnman(_)) {
            // Any reply ends spinnman's blocking receive and restarts its wait.
            self.last_activity = self.last_activity.max(now);
        }
        let seq = scp.seq();
        let Some(o) = self.outstanding.get(&seq) else {
            self.stats.unexpected += 1;
            if let Some(i) = self.resent_done.iter().position(|s| *s == seq) {
                self.resent_done.remove(i);
                self.spurious();
            }
            return false;
        };
        let rc = scp.return_code();
        let (kind, resend_pending) = (o.request.reply_kind(), o.resend_at.is_some());
        let sent = (o.last_tx, o.last_sent, o.transmissions);
        let suspect = o.suspect;
        if !self.rack_update(now, sent)
            && let Some(tx) = suspect
        {
            // The reply answers the retransmission: the loss was real.
            self.congestion(tx);
            self.confirmed_losses += 1;
            if self.confirmed_losses >= 16 {
                // Like RFC 8985's reo_wnd_persist: after 16 real losses, narrow the window again.
                self.confirmed_losses = 0;
                self.reo_mult = (self.reo_mult / 2).max(1);
            }
        }
        if rc.is_ok() {
            match OwnedReply::parse(header, scp_bytes, kind) {
                Ok(reply) => self.complete(now, seq, Ok(reply)),
                Err(e) => self.complete(now, seq, Err(FailReason::BadReply(e.to_string()))),
            }
            self.pump(now);
            return true;
        }
        if resend_pending {
            // A second answer to a transmission whose retry is already scheduled.
            return true;
        }
        let retried = match &self.policy {
            Policy::Spinnman(_) | Policy::Adaptive(_) => self.policy.retries_on(rc),
            Policy::Rig(_) => {
                if rc.is_lost_for_rig() {
                    self.stats.rc_ignored += 1;
                    return true;
                }
                false
            }
        };
        if retried {
            self.retry_code(now, seq, rc, header, scp_bytes);
        } else {
            self.fail_with_rc(now, seq, rc, header, scp_bytes);
        }
        self.pump(now);
        true
    }

    /// Lets time pass: sends what the token bucket now allows, resends, gives up, and refills
    /// the window.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.pacing.is_some() {
            self.release_paced(now);
        }
        match self.policy {
            Policy::Spinnman(p) => self.spinnman_timeout_at(now, &p),
            Policy::Rig(_) | Policy::Adaptive(_) => self.per_request_timeouts(now),
        }
        self.pump(now);
    }

    // ---- internals ------------------------------------------------------------------------

    fn retries_of(&self, request: &ScpRequest) -> u32 {
        request
            .options()
            .retries
            .unwrap_or_else(|| self.policy.default_retries())
    }

    /// spinnman's receive timeout: the longest timeout any outstanding request asks for.
    fn spinnman_timeout(&self) -> Duration {
        let default = self.policy.default_timeout();
        self.outstanding
            .values()
            .map(|o| o.request.options().timeout.unwrap_or(default))
            .max()
            .unwrap_or(default)
            .max(Duration(1))
    }

    /// Timeout of the next transmission of `request` (`rig`, `adaptive`).
    fn timeout_of(&self, request: &ScpRequest) -> Duration {
        match request.options().timeout {
            Some(t) => t,
            None => match self.policy {
                Policy::Adaptive(_) => self.rtt.rto(),
                other => other.default_timeout(),
            },
        }
        .max(Duration(1))
    }

    /// When the latest transmission of `o` times out (`rig`, `adaptive`). Computed from the
    /// current RTO, so that a better estimate (or a backoff) moves every running timer, as
    /// RFC 6298 restarts its timer on each acknowledgement.
    fn deadline_of(&self, o: &Outstanding) -> Instant {
        let rto = o.last_sent + self.timeout_of(&o.request);
        self.rack_deadline(o).map_or(rto, |t| t.min(rto))
    }

    /// `adaptive`: when `o` counts as lost because a request sent after it was answered
    /// (RACK, RFC 8985): its send time + the latest RTT + a reordering window (a quarter of the
    /// minimum RTT, doubled after each spurious retransmission, halved after 16 real losses, at
    /// most the RTO). SCAMP answers in order, so this repairs a loss in about one RTT instead
    /// of one RTO. Requests with a fixed timeout (power-on) are left to their timer.
    fn rack_deadline(&self, o: &Outstanding) -> Option<Instant> {
        let Policy::Adaptive(_) = self.policy else { return None };
        let rack = self.rack?;
        if rack.tx <= o.last_tx || o.request.options().timeout.is_some() {
            return None;
        }
        let min_rtt = self.min_rtt.unwrap_or(rack.rtt);
        let reo = Duration(min_rtt.as_micros() / 4)
            .saturating_mul(self.reo_mult)
            .min(self.rtt.rto())
            .max(Duration(1));
        Some(o.last_sent + rack.rtt + reo)
    }

    /// `adaptive`: a retransmission proved unnecessary. Be more patient with reordering, and
    /// undo the window reduction it caused.
    fn spurious(&mut self) {
        self.stats.spurious_resends += 1;
        self.reo_mult = (self.reo_mult * 2).min(1024);
        self.confirmed_losses = 0;
        if let Some(w) = self.undo_cwnd.take() {
            self.cwnd = self.cwnd.max(w);
        }
    }

    /// `adaptive`: a reply arrived at `now` for a request whose latest transmission is
    /// `(tx counter, time, transmissions so far)`. Returns true if it shows that the latest
    /// retransmission was spurious.
    fn rack_update(&mut self, now: Instant, (last_tx, last_sent, transmissions): (u64, Instant, u32)) -> bool {
        let Policy::Adaptive(_) = self.policy else { return false };
        let rtt = now.saturating_duration_since(last_sent);
        if transmissions > 1 && self.min_rtt.is_some_and(|m| rtt < m) {
            // Too quick to answer the latest transmission: the original's reply, so the
            // retransmission was spurious.
            self.spurious();
            return true;
        }
        if transmissions == 1 {
            self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        }
        if self.rack.is_none_or(|r| last_tx > r.tx) {
            self.rack = Some(Rack { tx: last_tx, rtt });
        }
        false
    }

    fn may_send(&mut self) -> bool {
        let n = self.outstanding.len();
        match self.policy {
            Policy::Spinnman(PipelinePolicy {
                intermediate_channel_waits,
                ..
            }) => {
                let channels = self.policy.max_window();
                let waits = intermediate_channel_waits.min(channels - 1);
                if n >= channels {
                    self.blocked = true;
                }
                if self.blocked {
                    if n <= waits {
                        self.blocked = false;
                    } else {
                        return false;
                    }
                }
                true
            }
            Policy::Rig(_) => n < self.policy.max_window(),
            Policy::Adaptive(_) => n < self.cwnd,
        }
    }

    fn alloc_seq(&mut self) -> u16 {
        let mut seq = self.next_seq;
        for _ in 0..=u16::MAX {
            seq = self.next_seq;
            self.next_seq = seq.wrapping_add(1);
            if !self.outstanding.contains_key(&seq) {
                break;
            }
        }
        seq
    }

    /// Moves queued requests into the window while the policy allows.
    fn pump(&mut self, now: Instant) {
        if self.paused_until.is_some_and(|p| p > now) {
            return;
        }
        while !self.queue.is_empty() && self.may_send() {
            let Some(p) = self.queue.pop_front() else { break };
            let seq = self.alloc_seq();
            let o = Outstanding {
                token: p.token,
                request: p.request,
                order: self.tx_counter + 1,
                last_tx: 0,
                last_sent: now,
                transmissions: 0,
                resend_at: None,
                last_rc: None,
                suspect: None,
                paced: None,
            };
            self.outstanding.insert(seq, o);
            self.transmit(now, seq);
            self.stats.max_in_flight = self.stats.max_in_flight.max(self.outstanding.len());
        }
    }

    /// Sends (or resends) the outstanding request `seq`, or, with a token bucket, queues the
    /// transmission until the bucket allows it.
    fn transmit(&mut self, now: Instant, seq: u16) {
        if self.pacing.is_some() {
            let ticket = self.pace_ticket;
            let Some(o) = self.outstanding.get_mut(&seq) else {
                return;
            };
            if o.paced.is_some() {
                // Already waiting for tokens: that transmission is this one.
                return;
            }
            o.paced = Some((now, ticket));
            o.resend_at = None;
            self.pace_ticket += 1;
            self.pace_queue.push_back((seq, ticket));
            self.release_paced(now);
            return;
        }
        self.send_now(now, seq);
    }

    /// Sends the waiting transmissions the token bucket allows at `now`, in order, and notes when
    /// the next may go.
    fn release_paced(&mut self, now: Instant) {
        let Some(bucket) = self.pacing else { return };
        while let Some(&(seq, ticket)) = self.pace_queue.front() {
            let waiting = self.outstanding.get(&seq).and_then(|o| {
                o.paced
                    .filter(|(_, t)| *t == ticket)
                    .map(|(since, _)| (since, o.request.udp_len()))
            });
            let Some((since, len)) = waiting else {
                // Answered, failed or cancelled meanwhile.
                self.pace_queue.pop_front();
                continue;
            };
            let cost = bucket.cost(len);
            let pacer = self.pacer.get_or_insert_with(|| Pacer::new(bucket, now));
            if !pacer.try_consume(now, cost) {
                self.pace_at = Some(pacer.ready_at(now, cost));
                return;
            }
            self.pace_queue.pop_front();
            if let Some(o) = self.outstanding.get_mut(&seq) {
                o.paced = None;
            }
            if now > since {
                self.stats.paced += 1;
                self.stats.pacing_wait_us += (now - since).as_micros();
            }
            self.send_now(now, seq);
        }
        self.pace_at = None;
    }

    /// Puts the datagram of `seq` on the wire now.
    fn send_now(&mut self, now: Instant, seq: u16) {
        let spinnman = matches!(self.policy, Policy::Spinnman(_));
        self.tx_counter += 1;
        let Some(o) = self.outstanding.get_mut(&seq) else {
            return;
        };
        if o.transmissions > 0 {
            self.stats.retries += 1;
        }
        o.transmissions += 1;
        o.last_sent = now;
        o.last_tx = self.tx_counter;
        o.resend_at = None;
        let datagram = o.request.datagram(seq);
        self.stats.transmissions += 1;
        self.stats.bytes_sent += datagram.len() as u64;
        self.transmits.push_back(datagram);
        if spinnman {
            self.last_activity = self.last_activity.max(now);
        }
    }

    /// Removes `seq` from the window and reports its outcome.
    fn complete(&mut self, now: Instant, seq: u16, outcome: Outcome) {
        let Some(o) = self.outstanding.remove(&seq) else { return };
        if o.suspect.is_some() {
            if self.resent_done.len() >= 64 {
                self.resent_done.pop_front();
            }
            self.resent_done.push_back(seq);
        }
        match outcome {
            Ok(reply) => {
                self.stats.completed += 1;
                if o.transmissions == 1 {
                    let rtt = now.saturating_duration_since(o.last_sent);
                    self.stats.rtt.record(rtt);
                    if let Policy::Adaptive(_) = self.policy
                        && o.request.options().timeout.is_none()
                    {
                        self.rtt.sample(rtt);
                    }
                }
                if let Policy::Adaptive(p) = self.policy
                    && reply.rc.is_ok()
                {
                    self.cwnd_successes += 1;
                    if self.cwnd_successes >= self.cwnd {
                        self.cwnd_successes = 0;
                        self.cwnd = (self.cwnd + 1).min(p.max_window.clamp(1, super::MAX_WINDOW));
                    }
                }
                self.events.push_back(ClientEvent::Done { token: o.token, reply });
            }
            Err(reason) => {
                self.stats.failures += 1;
                self.events.push_back(ClientEvent::Failed { token: o.token, reason });
            }
        }
    }

    /// A non-OK reply that is not retried: fail, or deliver it with `deliver_errors`.
    fn fail_with_rc(&mut self, now: Instant, seq: u16, rc: ReturnCode, header: sdp::Repr, scp: &[u8]) {
        let Some(o) = self.outstanding.get(&seq) else { return };
        let attempts = o.transmissions;
        let kind = o.request.reply_kind();
        if o.request.options().deliver_errors
            && let Ok(reply) = OwnedReply::parse(header, scp, kind)
        {
            self.complete(now, seq, Ok(reply));
            return;
        }
        self.complete(now, seq, Err(FailReason::ReturnCode { rc, attempts }));
    }

    /// A retry code: resend after a pause, unless the retries are used up.
    fn retry_code(&mut self, now: Instant, seq: u16, rc: ReturnCode, header: sdp::Repr, scp: &[u8]) {
        let Some(o) = self.outstanding.get(&seq) else { return };
        let retries = self.retries_of(&o.request);
        if o.transmissions > retries {
            self.fail_with_rc(now, seq, rc, header, scp);
            return;
        }
        let last_tx = o.last_tx;
        self.stats.retry_code_resends += 1;
        let at = match self.policy {
            Policy::Spinnman(p) if p.retry_code_pause == Duration::ZERO => {
                // The earlier pipeline resent at once, without sleeping.
                if let Some(o) = self.outstanding.get_mut(&seq) {
                    o.last_rc = Some(rc);
                }
                self.transmit(now, seq);
                return;
            }
            Policy::Spinnman(p) => {
                // The whole pipeline sleeps (one sleep after another if several arrive).
                let start = self.paused_until.map_or(now, |t| t.max(now));
                let at = start + p.retry_code_pause;
                self.paused_until = Some(at);
                at
            }
            Policy::Adaptive(p) => {
                self.congestion(last_tx);
                now + p.retry_code_pause
            }
            Policy::Rig(_) => now,
        };
        if let Some(o) = self.outstanding.get_mut(&seq) {
            o.last_rc = Some(rc);
            o.resend_at = Some(at);
        }
    }

    /// `adaptive`: a loss signal for the transmission numbered `tx`. Halves the window once per
    /// episode (losses of requests sent before the last reduction do not count again).
    fn congestion(&mut self, tx: u64) {
        let Policy::Adaptive(p) = self.policy else { return };
        if tx > self.recovery_point {
            self.undo_cwnd = Some(self.cwnd);
            self.cwnd = (self.cwnd / 2).max(Self::min_window(&p));
            self.cwnd_successes = 0;
            self.recovery_point = self.tx_counter;
            self.stats.window_reductions += 1;
        }
    }

    fn give_up(&mut self, now: Instant, seq: u16) {
        let Some(o) = self.outstanding.get(&seq) else { return };
        let attempts = o.transmissions;
        let reason = match o.last_rc {
            Some(rc) => FailReason::ReturnCode { rc, attempts },
            None => FailReason::TimedOut { attempts },
        };
        self.complete(now, seq, Err(reason));
    }

    fn spinnman_timeout_at(&mut self, now: Instant, _p: &PipelinePolicy) {
        if let Some(p) = self.paused_until {
            if p > now {
                return;
            }
            // The pause is over: resend what the retry codes asked for, then wait again.
            self.paused_until = None;
            let mut due: Vec<(u64, u16)> = self
                .outstanding
                .iter()
                .filter(|(_, o)| o.resend_at.is_some_and(|t| t <= now))
                .map(|(s, o)| (o.order, *s))
                .collect();
            due.sort_unstable();
            for (_, seq) in due {
                self.transmit(now, seq);
            }
            self.last_activity = self.last_activity.max(now);
            return;
        }
        if self.outstanding.is_empty()
            || !self.pace_queue.is_empty()
            || now < self.last_activity + self.spinnman_timeout()
        {
            return;
        }
        // No reply for a whole receive timeout: resend everything outstanding, in the order it
        // was first sent; requests out of retries fail.
        self.stats.timeouts += 1;
        let mut all: Vec<(u64, u16)> = self.outstanding.iter().map(|(s, o)| (o.order, *s)).collect();
        all.sort_unstable();
        for (_, seq) in all {
            let Some(o) = self.outstanding.get(&seq) else { continue };
            if o.transmissions > self.retries_of(&o.request) {
                self.give_up(now, seq);
            } else {
                self.transmit(now, seq);
            }
        }
        self.last_activity = now;
    }

    fn per_request_timeouts(&mut self, now: Instant) {
        let mut due: Vec<(u64, u16, bool)> = self
            .outstanding
            .iter()
            .filter(|(_, o)| o.paced.is_none())
            .filter_map(|(s, o)| match o.resend_at {
                Some(t) if t <= now => Some((o.order, *s, true)),
                None if self.deadline_of(o) <= now => Some((o.order, *s, false)),
                _ => None,
            })
            .collect();
        due.sort_unstable();
        for (_, seq, scheduled) in due {
            let Some(o) = self.outstanding.get(&seq) else { continue };
            if scheduled {
                self.transmit(now, seq);
                continue;
            }
            let rto_expired = o.last_sent + self.timeout_of(&o.request) <= now;
            let (last_tx, fixed, exhausted) = (
                o.last_tx,
                o.request.options().timeout.is_some(),
                o.transmissions > self.retries_of(&o.request),
            );
            if rto_expired {
                self.stats.timeouts += 1;
            } else {
                self.stats.fast_resends += 1;
            }
            if let Policy::Adaptive(_) = self.policy {
                if !rto_expired {
                    if let Some(o) = self.outstanding.get_mut(&seq) {
                        o.suspect = o.suspect.or(Some(last_tx));
                    }
                } else {
                    self.congestion(last_tx);
                }
                if rto_expired && !fixed && last_tx > self.backoff_point {
                    // One doubling per round: the window's requests expiring together are one
                    // loss of the timer, not eight.
                    self.rtt.backoff();
                    self.backoff_point = self.tx_counter;
                }
            }
            if exhausted {
                self.give_up(now, seq);
            } else {
                self.transmit(now, seq);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::RequestOptions;
    use crate::host::testkit::{Net, addr, board_ip, run_until_idle, seq_of, sver_request, write_request};
    use crate::proto::scp::Command;

    fn client(policy: Policy) -> ScpClient {
        ScpClient::new(addr(board_ip(0), 17893), policy)
    }

    fn drain(c: &mut ScpClient) -> Vec<ClientEvent> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    #[test]
    fn sequence_numbers_increment_and_wrap_skipping_outstanding() {
        let mut c = client(Policy::spinnman());
        c.next_seq = 65534;
        let now = Instant::ZERO;
        for t in 0..4 {
            c.submit(now, sver_request(), t);
        }
        let seqs: Vec<u16> = std::iter::from_fn(|| c.poll_transmit())
            .map(|(_, d)| seq_of(&d))
            .collect();
        assert_eq!(seqs, vec![65534, 65535, 0, 1]);
        // Answer 65535 and 0; wrap the counter onto the still-outstanding 65534 and 1.
        let mut net = Net::new();
        net.reply_now(&mut c, now, 65535);
        net.reply_now(&mut c, now, 0);
        c.next_seq = 65534;
        c.submit(now, sver_request(), 10);
        c.submit(now, sver_request(), 11);
        let seqs: Vec<u16> = std::iter::from_fn(|| c.poll_transmit())
            .map(|(_, d)| seq_of(&d))
            .collect();
        assert_eq!(seqs, vec![65535, 0], "outstanding 65534 and 1 are skipped");
    }

    #[test]
    fn late_duplicates_are_ignored() {
        let mut c = client(Policy::rig());
        let mut net = Net::new();
        c.submit(Instant::ZERO, sver_request(), 7);
        let (_, d) = c.poll_transmit().unwrap();
        assert!(net.reply_now(&mut c, Instant::ZERO, seq_of(&d)));
        assert!(!net.reply_now(&mut c, Instant::ZERO, seq_of(&d)));
        let ev = drain(&mut c);
        assert_eq!(ev.len(), 1);
        assert!(matches!(&ev[0], ClientEvent::Done { token: 7, reply } if reply.version().is_some()));
        assert_eq!(c.stats().unexpected, 1);
        assert!(!c.handle_datagram(Instant::ZERO, &[1, 2, 3]));
        assert_eq!(c.stats().malformed, 1);
    }

    #[test]
    fn windows_are_respected() {
        for (policy, window) in [(Policy::spinnman(), 8), (Policy::rig(), 1), (Policy::adaptive(), 8)] {
            let mut c = client(policy);
            let mut net = Net::new().with_delay(Duration::from_millis(1));
            for t in 0..50 {
                c.submit(Instant::ZERO, write_request(0x7000_0000 + 256 * t as u32, 256), t);
            }
            run_until_idle(&mut c, &mut net, Instant::from_secs(100));
            assert_eq!(c.stats().completed, 50, "{}", policy.name());
            assert_eq!(c.stats().max_in_flight, window, "{}", policy.name());
            assert_eq!(net.max_outstanding(), window, "{}", policy.name());
            assert_eq!(c.stats().retries, 0);
            assert_eq!(c.stats().rtt.samples, 50);
            assert_eq!(c.stats().rtt.mean(), Some(Duration::from_millis(1)));
        }
    }

    #[test]
    fn spinnman_sm_rw_noreply_capture_shape() {
        // protocol_captures.md §2 `sm_rw_noreply`: 10 writes, no reply at all.
        let mut c = client(Policy::spinnman());
        let mut net = Net::new().silent();
        for t in 0..10 {
            c.submit(Instant::ZERO, write_request(0x7000_0000 + 256 * t as u32, 256), t);
        }
        let end = run_until_idle(&mut c, &mut net, Instant::from_secs(100));
        let sent = net.sent_seqs();
        assert_eq!(sent.len(), 8 * 11 + 2 * 11);
        // Seq 0..7 at t = 0, 1, …, 10 s, all 8 together.
        for k in 0..11u64 {
            let batch: Vec<(Instant, u16)> = sent[8 * k as usize..8 * (k as usize + 1)].to_vec();
            assert!(
                batch.iter().all(|(t, _)| *t == Instant::from_secs(k)),
                "round {k}: {batch:?}"
            );
            let seqs: Vec<u16> = batch.iter().map(|(_, s)| *s).collect();
            assert_eq!(seqs, (0..8).collect::<Vec<u16>>());
        }
        // Given up at t = 11 s; only then seq 8 and 9, the same way until t = 21 s.
        for k in 0..11u64 {
            let i = 88 + 2 * k as usize;
            assert_eq!(sent[i], (Instant::from_secs(11 + k), 8));
            assert_eq!(sent[i + 1], (Instant::from_secs(11 + k), 9));
        }
        assert_eq!(end, Instant::from_secs(22));
        let ev = drain(&mut c);
        assert_eq!(ev.len(), 10);
        for e in &ev {
            match e {
                ClientEvent::Failed { reason, .. } => assert_eq!(reason.to_string(), "timed out after 11 attempts"),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(c.stats().timeouts, 22);
        assert_eq!(c.stats().retries, 100);
        assert_eq!(c.stats().failures, 10);
    }

    #[test]
    fn rig_resends_every_half_second_five_times() {
        // protocol_captures.md §2: rig, responder answering only sver.
        let mut c = client(Policy::rig());
        let mut net = Net::new().silent();
        c.submit(Instant::ZERO, write_request(0x7000_0000, 256), 1);
        let end = run_until_idle(&mut c, &mut net, Instant::from_secs(100));
        let times: Vec<u64> = net.sent_seqs().iter().map(|(t, _)| t.as_millis()).collect();
        assert_eq!(times, vec![0, 500, 1000, 1500, 2000]);
        assert_eq!(end, Instant::from_millis(2500));
        let ev = drain(&mut c);
        assert!(matches!(
            &ev[..],
            [ClientEvent::Failed {
                reason: FailReason::TimedOut { attempts: 5 },
                ..
            }]
        ));
        assert_eq!(
            ev[0].clone().into_outcome().1.unwrap_err().to_string(),
            "timed out after 5 attempts"
        );
    }

    #[test]
    fn per_request_overrides() {
        // spinnman power-on: 10 s, no retries.
        let mut c = client(Policy::spinnman());
        let mut net = Net::new().silent();
        let req = sver_request().with_options(RequestOptions::fixed(Duration::from_secs(10), 0));
        c.submit(Instant::ZERO, req, 1);
        let end = run_until_idle(&mut c, &mut net, Instant::from_secs(100));
        assert_eq!(net.sent_seqs().len(), 1);
        assert_eq!(end, Instant::from_secs(10));
        assert!(matches!(
            drain(&mut c)[..],
            [ClientEvent::Failed {
                reason: FailReason::TimedOut { attempts: 1 },
                ..
            }]
        ));
    }

    #[test]
    fn retry_codes() {
        // spinnman: RC_P2P_BUSY → 0.1 s pause and resend (counts as a retry); RC_ROUTE fails.
        let mut c = client(Policy::spinnman());
        let mut net = Net::new().with_delay(Duration::from_millis(1)).with_rcs([
            ReturnCode::P2pBusy,
            ReturnCode::Ok,
            ReturnCode::Route,
        ]);
        c.submit(Instant::ZERO, sver_request(), 1);
        c.submit(Instant::ZERO, sver_request(), 2);
        run_until_idle(&mut c, &mut net, Instant::from_secs(100));
        let ev = drain(&mut c);
        assert!(matches!(&ev[0], ClientEvent::Done { token: 2, .. }));
        match &ev[1] {
            ClientEvent::Failed { token: 1, reason } => {
                assert_eq!(reason.to_string(), "return code RC_ROUTE after 2 attempts")
            }
            other => panic!("{other:?}"),
        }
        let sent = net.sent_seqs();
        assert_eq!(
            sent[2],
            (Instant::from_millis(101), 0),
            "resent 0.1 s after the busy reply"
        );
        assert_eq!(c.stats().retry_code_resends, 1);
        assert_eq!(c.stats().retries, 1);

        // A non-retried code fails at once with its name.
        let mut c = client(Policy::spinnman());
        let mut net = Net::new().with_rcs([ReturnCode::Route]);
        c.submit(Instant::ZERO, sver_request(), 1);
        run_until_idle(&mut c, &mut net, Instant::from_secs(10));
        match &drain(&mut c)[..] {
            [ClientEvent::Failed { reason, .. }] => assert_eq!(reason.to_string(), "return code RC_ROUTE"),
            other => panic!("{other:?}"),
        }

        // spinnman exhausting retries on a retry code.
        let mut c = client(Policy::spinnman());
        let mut net = Net::new().with_rcs([ReturnCode::Timeout; 20]);
        c.submit(
            Instant::ZERO,
            sver_request().with_options(RequestOptions::retries(2)),
            1,
        );
        run_until_idle(&mut c, &mut net, Instant::from_secs(10));
        match &drain(&mut c)[..] {
            [ClientEvent::Failed { reason, .. }] => {
                assert_eq!(reason.to_string(), "return code RC_TIMEOUT after 3 attempts")
            }
            other => panic!("{other:?}"),
        }

        // rig: RC_P2P_BUSY is a lost packet (resent after 0.5 s); RC_LEN is fatal.
        let mut c = client(Policy::rig());
        let mut net = Net::new().with_rcs([ReturnCode::P2pBusy, ReturnCode::Ok, ReturnCode::Len]);
        c.submit(Instant::ZERO, sver_request(), 1);
        c.submit(Instant::ZERO, sver_request(), 2);
        run_until_idle(&mut c, &mut net, Instant::from_secs(10));
        let ev = drain(&mut c);
        assert!(matches!(&ev[0], ClientEvent::Done { token: 1, .. }));
        assert!(matches!(
            &ev[1],
            ClientEvent::Failed {
                token: 2,
                reason: FailReason::ReturnCode {
                    rc: ReturnCode::Len,
                    attempts: 1
                }
            }
        ));
        assert_eq!(net.sent_seqs()[1], (Instant::from_millis(500), 0));
        assert_eq!(c.stats().rc_ignored, 1);

        // deliver_errors hands the error reply back.
        let mut c = client(Policy::adaptive());
        let mut net = Net::new().with_rcs([ReturnCode::P2pNoReply; 30]);
        let opts = RequestOptions {
            retries: Some(1),
            deliver_errors: true,
            ..RequestOptions::DEFAULT
        };
        c.submit(Instant::ZERO, sver_request().with_options(opts), 1);
        run_until_idle(&mut c, &mut net, Instant::from_secs(10));
        match &drain(&mut c)[..] {
            [ClientEvent::Done { reply, .. }] => assert_eq!(reply.rc, ReturnCode::P2pNoReply),
            other => panic!("{other:?}"),
        }
        assert_eq!(net.sent_seqs()[1].0, Instant::from_millis(10), "adaptive pauses 10 ms");
    }

    #[test]
    fn one_dropped_request_is_recovered_by_each_policy() {
        for policy in [Policy::spinnman(), Policy::rig(), Policy::adaptive()] {
            let mut c = client(policy);
            let mut net = Net::new().with_delay(Duration::from_millis(1)).drop_requests([3]);
            for t in 0..20 {
                c.submit(Instant::ZERO, write_request(0x7000_0000 + 256 * t as u32, 256), t);
            }
            let end = run_until_idle(&mut c, &mut net, Instant::from_secs(100));
            let ev = drain(&mut c);
            assert_eq!(ev.len(), 20, "{}", policy.name());
            assert!(
                ev.iter().all(|e| matches!(e, ClientEvent::Done { .. })),
                "{}",
                policy.name()
            );
            assert_eq!(c.stats().retries, 1, "{}: only the lost one is resent", policy.name());
            match policy {
                // The lost request holds a channel; the other 7 keep flowing, then the pipeline
                // runs dry and waits its 1 s receive timeout.
                Policy::Spinnman(_) => assert!(end >= Instant::from_secs(1), "{end}"),
                Policy::Rig(_) => assert!(end >= Instant::from_millis(500), "{end}"),
                // The initial RTO (0.5 s) shrinks after the first sample: the loss costs ~20 ms.
                Policy::Adaptive(_) => assert!(end < Instant::from_millis(100), "{end}"),
            }
        }
        // A dropped reply is recovered the same way.
        for policy in [Policy::spinnman(), Policy::rig(), Policy::adaptive()] {
            let mut c = client(policy);
            let mut net = Net::new().with_delay(Duration::from_millis(1)).drop_replies([0]);
            c.submit(Instant::ZERO, sver_request(), 1);
            run_until_idle(&mut c, &mut net, Instant::from_secs(100));
            assert!(
                matches!(drain(&mut c)[..], [ClientEvent::Done { token: 1, .. }]),
                "{}",
                policy.name()
            );
        }
    }

    #[test]
    fn adaptive_rto_converges_and_resends_selectively() {
        let mut c = client(Policy::adaptive());
        let mut net = Net::new().with_delay(Duration::from_millis(4));
        for t in 0..200 {
            c.submit(Instant::ZERO, write_request(0x7000_0000 + 256 * t as u32, 256), t);
        }
        run_until_idle(&mut c, &mut net, Instant::from_secs(100));
        assert_eq!(c.rtt_estimator().srtt(), Some(Duration::from_millis(4)));
        assert_eq!(c.rto(), Duration::from_millis(20), "clamped at the minimum");
        // Now drop request #2 of the next batch: only it is resent, as soon as a later request's
        // reply shows it lost (RACK: its send time + the 4 ms RTT + a quarter of the minimum RTT).
        let start = Instant::from_secs(200);
        let mut net = Net::new().with_delay(Duration::from_millis(4)).drop_requests([2]);
        for t in 0..8 {
            c.submit(start, write_request(0x7100_0000 + 256 * t as u32, 256), 1000 + t);
        }
        net.run_from(start);
        run_until_idle(&mut c, &mut net, Instant::from_secs(300));
        let sent = net.sent_seqs();
        assert_eq!(sent.len(), 9, "8 first sends and the lost one once more");
        assert_eq!(sent[8], (start + Duration::from_millis(5), sent[2].1));
        assert_eq!((c.stats().fast_resends, c.stats().timeouts), (1, 0));
        assert_eq!(c.stats().window_reductions, 1);
        assert_eq!(c.stats().completed, 208);
        assert_eq!(c.rto(), Duration::from_millis(20), "no backoff for a fast resend");

        // A tail loss (nothing sent later to reveal it) waits for the converged RTO: 20 ms.
        let start = Instant::from_secs(400);
        let mut net = Net::new().with_delay(Duration::from_millis(4)).drop_requests([0]);
        c.submit(start, write_request(0x7200_0000, 256), 2000);
        net.run_from(start);
        run_until_idle(&mut c, &mut net, Instant::from_secs(500));
        let sent = net.sent_seqs();
        assert_eq!(
            sent.iter().map(|(t, _)| *t - start).collect::<Vec<_>>(),
            vec![Duration::ZERO, Duration::from_millis(20)]
        );
        assert_eq!(c.stats().timeouts, 1);
        // Karn: the retransmitted request gives no sample, so the backoff stays until a fresh one.
        assert_eq!(c.rto(), Duration::from_millis(40));
        c.submit(net.clock, write_request(0x7200_0000, 256), 2001);
        run_until_idle(&mut c, &mut net, Instant::from_secs(500));
        assert_eq!(c.rto(), Duration::from_millis(20));
    }

    #[test]
    fn adaptive_window_halves_and_grows_back() {
        let mut c = client(Policy::adaptive());
        let mut net = Net::new().with_delay(Duration::from_millis(1)).drop_requests([0]);
        for t in 0..1000 {
            c.submit(Instant::ZERO, write_request(0x7000_0000 + 256 * t as u32, 256), t);
        }
        let mut min_window = usize::MAX;
        let mut now = Instant::ZERO;
        while !c.is_idle() || net.busy() {
            now = net.step(&mut c, now, Instant::from_secs(100));
            while c.poll_event().is_some() {}
            min_window = min_window.min(c.window());
        }
        assert_eq!(min_window, 4);
        assert_eq!(c.window(), 8);
        assert_eq!(c.stats().window_reductions, 1);
    }

    #[test]
    fn the_legacy_pipeline_is_stop_and_wait_and_resends_retry_codes_at_once() {
        // spinnman-legacy: 1 channel, 0.5 s receive timeout, 3 retries, no sleep on a retry
        // code, RC_P2P_BUSY not among its codes.
        let legacy = Policy::spinnman_legacy();
        assert_eq!(legacy.name(), "spinnman-legacy");
        assert_eq!((legacy.max_window(), legacy.default_retries()), (1, 3));
        let mut c = client(legacy);
        let mut net = Net::new().with_delay(Duration::from_millis(1)).with_rcs([
            ReturnCode::P2pNoReply,
            ReturnCode::Ok,
            ReturnCode::P2pBusy,
        ]);
        c.submit(Instant::ZERO, sver_request(), 1);
        c.submit(Instant::ZERO, sver_request(), 2);
        run_until_idle(&mut c, &mut net, Instant::from_secs(10));
        let sent = net.sent_seqs();
        // Seq 0 at t = 0, its RC_P2P_NOREPLY at 1 ms resent at once, the OK at 2 ms, then seq 1.
        assert_eq!(
            sent,
            vec![
                (Instant::ZERO, 0),
                (Instant::from_millis(1), 0),
                (Instant::from_millis(2), 1)
            ]
        );
        let ev = drain(&mut c);
        assert!(matches!(&ev[0], ClientEvent::Done { token: 1, .. }));
        match &ev[1] {
            ClientEvent::Failed { token: 2, reason } => assert_eq!(reason.to_string(), "return code RC_P2P_BUSY"),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.stats().retry_code_resends, 1);

        // Silence: 4 attempts 0.5 s apart, then the next request.
        let mut c = client(legacy);
        let mut net = Net::new().silent();
        c.submit(Instant::ZERO, write_request(0x7000_0000, 256), 1);
        c.submit(Instant::ZERO, write_request(0x7000_0100, 256), 2);
        let end = run_until_idle(&mut c, &mut net, Instant::from_secs(100));
        let times: Vec<(u64, u16)> = net.sent_seqs().iter().map(|(t, s)| (t.as_millis(), *s)).collect();
        assert_eq!(
            times,
            vec![
                (0, 0),
                (500, 0),
                (1000, 0),
                (1500, 0),
                (2000, 1),
                (2500, 1),
                (3000, 1),
                (3500, 1)
            ]
        );
        assert_eq!(end, Instant::from_secs(4));
        assert_eq!(c.stats().timeouts, 8);
    }

    #[test]
    fn the_pipeline_retries_the_codes_it_is_given() {
        use crate::host::{PipelinePolicy, RetryCodes};
        let codes: RetryCodes = [ReturnCode::Route].into_iter().collect();
        assert_eq!(format!("{codes:?}"), "{\"RC_ROUTE\"}");
        assert_eq!(RetryCodes::SPINNMAN.len(), 5);
        assert_eq!(
            RetryCodes::SPINNMAN_LEGACY
                .iter()
                .map(ReturnCode::name)
                .collect::<Vec<_>>(),
            ["RC_LEN", "RC_TIMEOUT", "RC_P2P_NOREPLY", "RC_P2P_TIMEOUT"]
        );
        assert_eq!(RetryCodes::code_named("p2p_busy"), Some(ReturnCode::P2pBusy));
        assert_eq!(RetryCodes::code_named("RC_LEN"), Some(ReturnCode::Len));
        assert_eq!(RetryCodes::code_named("OK"), None);
        assert_eq!(RetryCodes::code_named("RC_NOPE"), None);
        assert!(!RetryCodes::EMPTY.with(ReturnCode::Ok).contains(ReturnCode::Ok));
        for rc in (0x81..=0x8F).map(ReturnCode::from_code) {
            assert_eq!(RetryCodes::SPINNMAN.contains(rc), rc.is_retried_by_spinnman(), "{rc}");
        }
        let p = Policy::Spinnman(PipelinePolicy {
            retry_codes: codes,
            ..PipelinePolicy::spinnman()
        });
        assert_eq!(p.name(), "pipeline");
        // RC_ROUTE is now retried after the pause; RC_P2P_BUSY fails at once.
        let mut c = client(p);
        let mut net = Net::new().with_delay(Duration::from_millis(1)).with_rcs([
            ReturnCode::Route,
            ReturnCode::P2pBusy,
            ReturnCode::Ok,
        ]);
        c.submit(Instant::ZERO, sver_request(), 1);
        c.submit(Instant::ZERO, sver_request(), 2);
        run_until_idle(&mut c, &mut net, Instant::from_secs(10));
        let ev = drain(&mut c);
        assert!(
            matches!(
                &ev[0],
                ClientEvent::Failed {
                    token: 2,
                    reason: FailReason::ReturnCode {
                        rc: ReturnCode::P2pBusy,
                        attempts: 1
                    }
                }
            ),
            "{ev:?}"
        );
        assert!(matches!(&ev[1], ClientEvent::Done { token: 1, .. }), "{ev:?}");
        assert_eq!(net.sent_seqs()[2], (Instant::from_millis(101), 0));
    }

    #[test]
    fn pacing_spaces_every_policys_transmissions() {
        use crate::host::{Charge, TokenBucket};
        // 3 packets of burst, then one per 100 µs.
        let bucket = TokenBucket {
            tokens: 300,
            fill_rate: 1_000_000,
            charge: Charge::Flat(100),
        };
        for policy in [
            Policy::spinnman(),
            Policy::spinnman_legacy(),
            Policy::rig(),
            Policy::adaptive(),
        ] {
            let mut c = client(policy).with_pacing(Some(bucket));
            assert_eq!(c.pacing(), Some(&bucket));
            let mut net = Net::new().with_delay(Duration::from_micros(10));
            for t in 0..20 {
                c.submit(Instant::ZERO, write_request(0x7000_0000 + 256 * t as u32, 256), t);
            }
            run_until_idle(&mut c, &mut net, Instant::from_secs(100));
            assert_eq!(c.stats().completed, 20, "{}", policy.name());
            let times: Vec<u64> = net.sent_seqs().iter().map(|(t, _)| t.as_micros()).collect();
            assert_eq!(times.len(), 20, "{}", policy.name());
            // Never more than the burst plus what the fill allows: by time t, 3 + t/100 µs.
            for (i, t) in times.iter().enumerate() {
                assert!(
                    i as u64 <= 2 + t / 100,
                    "{}: send {i} at {t} µs: {times:?}",
                    policy.name()
                );
            }
            if policy.max_window() > 1 {
                // A window of 8 is held back by the bucket: the 20 go out in 1.7 ms, not at once.
                assert_eq!(times[..3], [0, 0, 0], "{}", policy.name());
                assert_eq!(times[3], 100, "{}", policy.name());
                assert!(c.stats().paced >= 10, "{}: {:?}", policy.name(), c.stats());
            }
            assert_eq!(c.stats().retries, 0, "{}: pacing is no loss", policy.name());
            // RTTs are measured from the real send, not from when the policy chose to send.
            assert_eq!(c.stats().rtt.max_us, 10, "{}", policy.name());
        }
    }

    #[test]
    fn paced_resends_wait_for_tokens_and_timers_start_at_the_send() {
        use crate::host::{Charge, TokenBucket};
        // One token per 50 ms: spinnman's resend-everything after a silent second goes out
        // 50 ms apart, and its receive timeout starts after the last of them.
        let bucket = TokenBucket {
            tokens: 1,
            fill_rate: 20,
            charge: Charge::Flat(1),
        };
        let mut c = client(Policy::spinnman()).with_pacing(Some(bucket));
        for t in 0..3 {
            c.submit(Instant::ZERO, write_request(0x7000_0000 + 256 * t as u32, 256), t);
        }
        assert_eq!(
            c.poll_timeout(),
            Some(Instant::from_millis(50)),
            "the bucket's release time"
        );
        let mut times = Vec::new();
        while c.poll_transmit().is_some() {
            times.push(Instant::ZERO);
        }
        for _ in 0..5 {
            let t = c.poll_timeout().unwrap();
            c.handle_timeout(t);
            while c.poll_transmit().is_some() {
                times.push(t);
            }
        }
        // Sends at 0, 50, 100 ms; silence for 1 s after the last; resends at 1.1, 1.15, 1.2 s.
        assert_eq!(
            times.iter().map(|t| t.as_millis()).collect::<Vec<_>>(),
            [0, 50, 100, 1100, 1150, 1200]
        );
        assert_eq!(c.stats().transmissions, 6);
        assert_eq!(c.stats().timeouts, 1);
        assert_eq!(c.poll_timeout(), Some(Instant::from_millis(2200)));
        assert_eq!(c.stats().paced, 4);
        assert_eq!(c.stats().pacing_wait_us, 50_000 + 100_000 + 50_000 + 100_000);
    }

    #[test]
    fn cancel_forgets_requests() {
        let mut c = client(Policy::rig());
        for t in 0..3 {
            c.submit(Instant::ZERO, sver_request(), t);
        }
        assert_eq!((c.in_flight(), c.queued()), (1, 2));
        assert_eq!(c.cancel(Instant::ZERO, |t| t < 2), 2);
        assert_eq!((c.in_flight(), c.queued()), (1, 0));
        let mut net = Net::new();
        run_until_idle(&mut c, &mut net, Instant::from_secs(10));
        assert!(matches!(drain(&mut c)[..], [ClientEvent::Done { token: 2, .. }]));
        assert_eq!(c.stats().cancelled, 2);
    }

    #[test]
    fn bad_reply_body_fails_the_request() {
        let mut c = client(Policy::rig());
        c.submit(Instant::ZERO, sver_request(), 1);
        let (_, d) = c.poll_transmit().unwrap();
        // An OK reply to CMD_VER with no body.
        let mut reply = vec![0, 0, 0x07, 0xff, 0xff, 0, 0, 0, 0, 0, 0x80, 0];
        reply.extend_from_slice(&seq_of(&d).to_le_bytes());
        assert!(c.handle_datagram(Instant::ZERO, &reply));
        match &drain(&mut c)[..] {
            [
                ClientEvent::Failed {
                    reason: FailReason::BadReply(e),
                    ..
                },
            ] => assert!(e.contains("CMD_VER"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(sver_request().command(), Command::Ver);
    }
}
