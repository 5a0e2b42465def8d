//! The host side of the SpiNNaker protocols, sans-IO: what spalloc, rig and spinnman do on the
//! host to talk to boards and BMPs, written as state machines that take datagrams and time in
//! and give datagrams, timers and events out.
//!
//! Layers, from the wire up:
//! - [`ScpClient`] ([`scp`]): one per remote endpoint (a board's or a BMP's IP, UDP 17893).
//!   Queues typed SCP requests ([`ScpRequest`]), assigns sequence numbers, keeps as many in
//!   flight as its [`Policy`] allows, retransmits, matches replies by sequence number and reports
//!   [`ClientEvent::Done`] / [`ClientEvent::Failed`]. Per-client [`Stats`].
//! - [`Policy`] ([`policy`]): the retry and windowing rules. spinnman's pipeline family
//!   ([`PipelinePolicy`]; presets `spinnman`, 1!7.4.1's `SCPRequestPipeLine`: window 8, resend
//!   *everything* after 1 s without any reply, and `spinnman-legacy`, the earlier stop-and-wait
//!   pipeline), `rig` (2.4.1's stop-and-wait `send_scp_burst`) and `adaptive` (RACK loss
//!   detection backed by RFC 6298 timers, selective resend, an AIMD window capped at SCAMP's 8
//!   transient tags).
//! - [`TokenBucket`] ([`pacer`]): spinnman's token bucket as a pacer of any client's
//!   transmissions.
//! - [`HostStack`] ([`stack`]): many clients behind one local address, dispatching incoming
//!   datagrams by source address, plus fire-and-forget datagrams (boot packets).
//! - Operations on top of the clients, each a sans-IO state machine that emits SCP requests
//!   ([`OpRequest`]) and consumes their outcomes: [`BmpController`] ([`bmp`], the reference
//!   server's `AsyncBMPController` executing the service's [`crate::service::BmpBatch`]es),
//!   [`BootSequencer`] ([`boot`]) and [`Transfer`] ([`transfer`]).
//! - [`Host`] ([`runner`]): a [`HostStack`] plus running operations, so that a driver only
//!   moves datagrams and timeouts: `handle_datagram`, `handle_timeout`, `poll_transmit`,
//!   `poll_event`, `poll_timeout`.
//! - [`Listener`] ([`listener`]): live output, spinnman's `ConnectionListener` without the
//!   thread: EIEIO datagrams that applications stream through IP tags, parsed and handed to
//!   registered [`Consumer`]s (e.g. a [`StreamMonitor`] counting delivered and dropped events and
//!   latency).
//!
//! Nothing here reads a clock or touches a socket: every mutator takes `now`, and the same
//! code runs under the discrete-event simulator and a real-time driver.

pub mod bmp;
pub mod boot;
pub mod listener;
pub mod pacer;
pub mod policy;
pub mod runner;
pub mod scp;
pub mod stack;
pub mod transfer;

#[cfg(test)]
pub(crate) mod testkit;

pub use bmp::{AttemptFailure, BmpConfig, BmpController, BmpEvent};
pub use boot::{BootConfig, BootEvent, BootOutcome, BootSequencer, stand_in_image};
pub use listener::{
    BoxedConsumer, Consumer, ConsumerId, ConsumerStats, Delivery, Framing, LatencySummary, Listener, ListenerStats,
    SenderClock, Source, StreamMonitor, StreamReport,
};
pub use pacer::{Charge, Pacer, TokenBucket};
pub use policy::{AdaptivePolicy, PipelinePolicy, Policy, RetryCodes, RigPolicy, RttEstimator, SpinnmanPolicy};
pub use runner::{Host, HostConfig, HostError, HostEvent, OpId};
pub use scp::{ClientEvent, RttStats, ScpClient, Stats};
pub use stack::{HostStack, StackEvent, StackStats};
pub use transfer::{Transfer, TransferEvent, TransferReport};

use crate::proto::scp::{self as wire, Command, Reply, ReplyKind, Request, RequestMessage, ReturnCode, VersionReply};
use crate::proto::{self, sdp};
use crate::time::{Duration, Instant};
use core::fmt;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddrV4;

/// UDP port of SCAMP and of the BMP firmware.
pub const SCP_PORT: u16 = 17893;
/// UDP port of the boot ROM.
pub const BOOT_PORT: u16 = proto::boot::PORT;
/// Most reply-expecting requests a monitor can hold: SCAMP's pool of 8 transient IP tags
/// (protocols.md §4.2); a ninth outstanding request would be dropped silently.
pub const MAX_WINDOW: usize = 8;

/// UDP offset of the SCP sequence number in a request datagram (2 padding + 8 SDP + 2 cmd).
const SEQ_OFFSET: usize = sdp::PADDING_LEN + sdp::HEADER_LEN + 2;

/// Per-request overrides of the policy's timeout and retry budget.
///
/// spinnman uses these for BMP work (power-on: 10 s and no retries; power-off: 0.5 s and no
/// retries); rig adds 5 s to the power-on timeout. A fixed `timeout` also keeps the request
/// out of the adaptive policy's RTT estimate (a power-on reply comes when the boards are up,
/// which says nothing about the network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestOptions {
    /// Time to wait for a reply before resending (spinnman: the pipeline's receive timeout).
    pub timeout: Option<Duration>,
    /// Retransmissions allowed (attempts = 1 + retries).
    pub retries: Option<u32>,
    /// Deliver a non-OK reply that would fail the request as [`ClientEvent::Done`] instead
    /// (spinnman's `non_fail_retry_codes`, e.g. CMD_COUNT's RC_P2P_NOREPLY).
    pub deliver_errors: bool,
}

impl RequestOptions {
    /// Policy defaults.
    pub const DEFAULT: RequestOptions = RequestOptions {
        timeout: None,
        retries: None,
        deliver_errors: false,
    };

    /// A fixed timeout and retry count.
    pub const fn fixed(timeout: Duration, retries: u32) -> RequestOptions {
        RequestOptions {
            timeout: Some(timeout),
            retries: Some(retries),
            deliver_errors: false,
        }
    }

    /// Only the retry count overridden.
    pub const fn retries(retries: u32) -> RequestOptions {
        RequestOptions {
            timeout: None,
            retries: Some(retries),
            deliver_errors: false,
        }
    }
}

/// An SCP request owned by the host: its SDP header, the encoded datagram (sequence number
/// patched in at each transmission), the reply layout to expect and per-request options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScpRequest {
    header: sdp::Repr,
    command: Command,
    reply_kind: ReplyKind,
    options: RequestOptions,
    datagram: Vec<u8>,
}

impl ScpRequest {
    /// A request to `dest` (chip, port 0, core — or board for a BMP) with the header rig sends
    /// (flags 0x87, tag 0xFF, source port 7 / cpu 31 at chip (0, 0)).
    ///
    /// Fails if the request's data is longer than 256 bytes.
    pub fn new(dest: sdp::Address, request: &Request<'_>) -> Result<ScpRequest, proto::Error> {
        ScpRequest::with_header(sdp::Repr::request(dest), request)
    }

    /// A request with an explicit SDP header (e.g. spinnman's source chip (255, 255)).
    pub fn with_header(header: sdp::Repr, request: &Request<'_>) -> Result<ScpRequest, proto::Error> {
        let msg = RequestMessage {
            sdp: header,
            seq: 0,
            request: *request,
        };
        let mut datagram = vec![0u8; msg.udp_len()];
        let n = msg.emit_udp(&mut datagram)?;
        datagram.truncate(n);
        Ok(ScpRequest {
            header,
            command: request.command(),
            reply_kind: request.reply_kind(),
            options: RequestOptions::DEFAULT,
            datagram,
        })
    }

    /// The same request with other options.
    pub fn with_options(mut self, options: RequestOptions) -> ScpRequest {
        self.options = options;
        self
    }

    /// The SDP header.
    pub fn header(&self) -> sdp::Repr {
        self.header
    }

    /// The SDP destination.
    pub fn dest(&self) -> sdp::Address {
        self.header.dest
    }

    /// The command.
    pub fn command(&self) -> Command {
        self.command
    }

    /// The layout a successful reply has.
    pub fn reply_kind(&self) -> ReplyKind {
        self.reply_kind
    }

    /// Per-request options.
    pub fn options(&self) -> RequestOptions {
        self.options
    }

    /// Length of the datagram on the wire.
    pub fn udp_len(&self) -> usize {
        self.datagram.len()
    }

    /// The typed request, parsed back from the encoded datagram.
    pub fn request(&self) -> Option<Request<'_>> {
        RequestMessage::parse_udp(&self.datagram).ok().map(|m| m.request)
    }

    /// The datagram with sequence number `seq`.
    pub fn datagram(&self, seq: u16) -> Vec<u8> {
        let mut d = self.datagram.clone();
        if let Some(b) = d.get_mut(SEQ_OFFSET..SEQ_OFFSET + 2) {
            b.copy_from_slice(&seq.to_le_bytes());
        }
        d
    }
}

/// A reply as the host keeps it: the SDP header, the return code and the whole SCP message,
/// already checked against the layout its request expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedReply {
    /// The reply's SDP header (spinnman reads CMD_INFO's chip from its source).
    pub sdp: sdp::Repr,
    /// The return code.
    pub rc: ReturnCode,
    /// The layout this reply was parsed with.
    pub kind: ReplyKind,
    scp: Vec<u8>,
}

impl OwnedReply {
    /// Parses a reply datagram's SCP part as `kind`.
    pub(crate) fn parse(sdp: sdp::Repr, scp: &[u8], kind: ReplyKind) -> Result<OwnedReply, proto::Error> {
        let packet = wire::Packet::new_checked(scp)?;
        let reply = Reply::parse(&packet, kind)?;
        Ok(OwnedReply {
            sdp,
            rc: reply.return_code(),
            kind,
            scp: scp.to_vec(),
        })
    }

    /// The typed reply (borrowing this value).
    pub fn reply(&self) -> Reply<'_> {
        let packet = wire::Packet::new_unchecked(&self.scp[..]);
        Reply::parse(&packet, self.kind).unwrap_or(Reply::Raw(self.body()))
    }

    /// Everything after `rc` and `seq`.
    pub fn body(&self) -> &[u8] {
        self.scp.get(wire::MIN_LEN..).unwrap_or(&[])
    }

    /// The whole SCP message (rc, seq, body).
    pub fn scp_bytes(&self) -> &[u8] {
        &self.scp
    }

    /// The CMD_VER reply, if this is one.
    pub fn version(&self) -> Option<VersionReply<'_>> {
        match self.reply() {
            Reply::Version(v) => Some(v),
            _ => None,
        }
    }

    /// The first argument (or the first data word) of the body, if present.
    pub fn arg1(&self) -> Option<u32> {
        wire::get_u32(self.body(), 0)
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailReason {
    /// No reply to any of `attempts` transmissions.
    TimedOut {
        /// Transmissions made.
        attempts: u32,
    },
    /// A non-OK return code that is not retried, or still returned when the retries ran out.
    ReturnCode {
        /// The last return code.
        rc: ReturnCode,
        /// Transmissions made.
        attempts: u32,
    },
    /// A reply with the right sequence number whose body does not fit the request.
    BadReply(String),
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::TimedOut { attempts } => write!(f, "timed out after {attempts} attempts"),
            FailReason::ReturnCode { rc, attempts } if *attempts <= 1 => write!(f, "return code {rc}"),
            FailReason::ReturnCode { rc, attempts } => write!(f, "return code {rc} after {attempts} attempts"),
            FailReason::BadReply(e) => write!(f, "malformed reply: {e}"),
        }
    }
}

/// What became of one request.
pub type Outcome = Result<OwnedReply, FailReason>;

/// An SCP request an operation wants sent, with the operation's own token for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRequest {
    /// The endpoint (board or BMP IP, port 17893).
    pub remote: SocketAddrV4,
    /// The request.
    pub request: ScpRequest,
    /// The operation's token (comes back with the outcome).
    pub token: u32,
}

/// The shape every operation ([`BmpController`], [`BootSequencer`], [`Transfer`]) shares: SCP
/// requests and raw datagrams out, request outcomes and timeouts in.
///
/// An operation can be driven by a [`Host`] (which routes outcomes back by token) or by hand
/// with an [`ScpClient`].
pub trait Operation {
    /// The next SCP request to submit.
    fn poll_request(&mut self) -> Option<OpRequest>;
    /// The next fire-and-forget datagram to send (boot packets).
    fn poll_datagram(&mut self) -> Option<(SocketAddrV4, Vec<u8>)> {
        None
    }
    /// The outcome of a request this operation submitted.
    fn handle_outcome(&mut self, now: Instant, token: u32, outcome: Outcome);
    /// Time has reached [`Operation::poll_timeout`].
    fn handle_timeout(&mut self, now: Instant);
    /// When [`Operation::handle_timeout`] should next be called.
    fn poll_timeout(&self) -> Option<Instant>;
}

/// Deadlines of many keyed state machines, ordered by (time, key): the earliest is found in
/// O(log n) and a machine's deadline is replaced in O(log n).
#[derive(Debug, Clone)]
pub(crate) struct TimerIndex<K: Ord + Copy> {
    by_time: BTreeSet<(Instant, K)>,
    by_key: BTreeMap<K, Instant>,
}

impl<K: Ord + Copy> Default for TimerIndex<K> {
    fn default() -> Self {
        TimerIndex {
            by_time: BTreeSet::new(),
            by_key: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Copy> TimerIndex<K> {
    /// Sets (or clears) `key`'s deadline.
    pub(crate) fn set(&mut self, key: K, at: Option<Instant>) {
        if let Some(old) = self.by_key.remove(&key) {
            self.by_time.remove(&(old, key));
        }
        if let Some(at) = at {
            self.by_key.insert(key, at);
            self.by_time.insert((at, key));
        }
    }

    /// The earliest deadline.
    pub(crate) fn first(&self) -> Option<Instant> {
        self.by_time.first().map(|(t, _)| *t)
    }

    /// Keys whose deadline is at or before `now`, in (time, key) order.
    pub(crate) fn due(&self, now: Instant) -> Vec<K> {
        self.by_time
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, k)| *k)
            .collect()
    }
}
