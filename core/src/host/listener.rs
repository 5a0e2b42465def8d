//! The live-output listener, sans-IO: EIEIO datagrams that applications stream to the host
//! through IP tags, parsed and handed to registered consumers.
//!
//! spinnman's `ConnectionListener` reads messages from one connection and calls every callback
//! registered on it. [`Listener`] does the same job without a thread or a socket: a driver gives
//! it each datagram that arrived on the listening address with its arrival time
//! ([`Listener::handle_datagram`]); the listener parses it as EIEIO (bare, as a STRIP tag sends
//! it, or behind the padding and SDP header of a tag without STRIP: [`Framing`]) and hands the
//! message to every consumer whose [`Source`] matches the sender, in registration order.
//! Consumers are anything implementing [`Consumer`] — a boxed closure, or a [`StreamMonitor`]
//! that counts events, detects drops and measures latency. Nothing is ever dropped silently:
//! datagrams that are not EIEIO ([`ListenerStats::malformed`]) or that no consumer wants
//! ([`ListenerStats::unmatched`]) are counted, and every consumer has its own
//! [`ConsumerStats`].
//!
//! The same listener runs in the discrete-event simulation (datagrams from the simulated
//! network) and in real time (datagrams from a UDP socket bound to [`Listener::local`]).

use crate::datagram::Datagram;
use crate::proto::eieio::EieioMessage;
use crate::proto::{self, sdp};
use crate::time::Instant;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Identifies a consumer registered on a [`Listener`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConsumerId(pub u32);

/// Which datagrams a consumer wants, by sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Every datagram (a `ConnectionListener` callback).
    Any,
    /// Datagrams from one address, any port (a board's Ethernet: SC&MP sends IP-tag traffic
    /// from port 17893).
    Ip(Ipv4Addr),
    /// Datagrams from one address and port.
    Endpoint(SocketAddrV4),
}

impl Source {
    /// True if a datagram from `from` is for this source.
    pub fn matches(&self, from: SocketAddrV4) -> bool {
        match self {
            Source::Any => true,
            Source::Ip(ip) => from.ip() == ip,
            Source::Endpoint(a) => *a == from,
        }
    }
}

/// How EIEIO messages arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// The bare message (the IP tag has the STRIP flag, as live output is normally set up).
    #[default]
    Stripped,
    /// Behind the 2 bytes of padding and the 8-byte SDP header (a tag without STRIP).
    Sdp,
}

/// Something that takes the messages of a [`Listener`].
pub trait Consumer {
    /// A message from `from` arrived at `now`.
    fn on_message(&mut self, now: Instant, from: SocketAddrV4, message: &EieioMessage<'_>);
}

/// A boxed callback as a consumer (spinnman's `add_callback`): `Listener<BoxedConsumer>` takes
/// any mix of closures.
pub type BoxedConsumer = Box<dyn FnMut(Instant, SocketAddrV4, &EieioMessage<'_>)>;

impl<F: FnMut(Instant, SocketAddrV4, &EieioMessage<'_>)> Consumer for F {
    fn on_message(&mut self, now: Instant, from: SocketAddrV4, message: &EieioMessage<'_>) {
        self(now, from, message)
    }
}

/// What one consumer was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Datagrams handed to it.
    pub datagrams: u64,
    /// Their UDP payload bytes.
    pub bytes: u64,
    /// Data messages among them.
    pub data_messages: u64,
    /// Command messages among them.
    pub command_messages: u64,
    /// Events (keys) in the data messages.
    pub events: u64,
    /// When the first one arrived.
    pub first: Option<Instant>,
    /// When the last one arrived.
    pub last: Option<Instant>,
}

/// What the listener received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerStats {
    /// Datagrams given to it.
    pub datagrams: u64,
    /// Their UDP payload bytes.
    pub bytes: u64,
    /// Datagrams that are not an EIEIO message (or not SDP-framed, with [`Framing::Sdp`]).
    pub malformed: u64,
    /// Well-formed datagrams that no consumer wanted.
    pub unmatched: u64,
    /// Datagrams handed to at least one consumer.
    pub delivered: u64,
}

/// What became of one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Handed to this many consumers (at least one).
    Consumers(usize),
    /// Not an EIEIO message: why.
    Malformed(proto::Error),
    /// Well formed, but no consumer's source matches the sender.
    Unmatched,
}

#[derive(Debug, Clone)]
struct Entry<C> {
    source: Source,
    consumer: C,
    stats: ConsumerStats,
}

/// The live-output listener (see the module documentation).
#[derive(Debug, Clone)]
pub struct Listener<C> {
    local: SocketAddrV4,
    framing: Framing,
    entries: BTreeMap<ConsumerId, Entry<C>>,
    next: u32,
    stats: ListenerStats,
}

impl<C: Consumer> Listener<C> {
    /// A listener at `local` (the address IP tags send to) for messages framed as `framing`.
    pub fn new(local: SocketAddrV4, framing: Framing) -> Listener<C> {
        Listener {
            local,
            framing,
            entries: BTreeMap::new(),
            next: 0,
            stats: ListenerStats::default(),
        }
    }

    /// The address it listens on.
    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }

    /// Moves it to another address (a real-time driver learns its socket's port after
    /// binding).
    pub fn set_local(&mut self, local: SocketAddrV4) {
        self.local = local;
    }

    /// How messages are framed.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Registers `consumer` for the datagrams from `source`.
    pub fn register(&mut self, source: Source, consumer: C) -> ConsumerId {
        loop {
            let id = ConsumerId(self.next);
            self.next = self.next.wrapping_add(1);
            if let std::collections::btree_map::Entry::Vacant(slot) = self.entries.entry(id) {
                slot.insert(Entry {
                    source,
                    consumer,
                    stats: ConsumerStats::default(),
                });
                return id;
            }
        }
    }

    /// Removes a consumer; gives it back with what it was given.
    pub fn unregister(&mut self, id: ConsumerId) -> Option<(C, ConsumerStats)> {
        self.entries.remove(&id).map(|e| (e.consumer, e.stats))
    }

    /// A registered consumer.
    pub fn consumer(&self, id: ConsumerId) -> Option<&C> {
        self.entries.get(&id).map(|e| &e.consumer)
    }

    /// A registered consumer, to change.
    pub fn consumer_mut(&mut self, id: ConsumerId) -> Option<&mut C> {
        self.entries.get_mut(&id).map(|e| &mut e.consumer)
    }

    /// What a registered consumer was given.
    pub fn consumer_stats(&self, id: ConsumerId) -> Option<ConsumerStats> {
        self.entries.get(&id).map(|e| e.stats)
    }

    /// Consumers registered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no consumer is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What the listener received.
    pub fn stats(&self) -> ListenerStats {
        self.stats
    }

    /// A datagram arrived at `now` (its destination is not checked: the driver routes to the
    /// listener what arrived at [`Listener::local`]).
    pub fn handle_datagram(&mut self, now: Instant, d: &Datagram) -> Delivery {
        self.stats.datagrams += 1;
        self.stats.bytes += d.payload.len() as u64;
        let body = match self.framing {
            Framing::Stripped => Ok(&d.payload[..]),
            Framing::Sdp => sdp::parse_udp(&d.payload).map(|p| p.data()),
        };
        let message = match body.and_then(EieioMessage::parse) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                return Delivery::Malformed(e);
            }
        };
        let (data, command, events) = match &message {
            EieioMessage::Data(m) => (1, 0, m.count() as u64),
            EieioMessage::Command(_) => (0, 1, 0),
        };
        let mut n = 0;
        for e in self.entries.values_mut().filter(|e| e.source.matches(d.src)) {
            let s = &mut e.stats;
            s.datagrams += 1;
            s.bytes += d.payload.len() as u64;
            s.data_messages += data;
            s.command_messages += command;
            s.events += events;
            s.first.get_or_insert(now);
            s.last = Some(now);
            e.consumer.on_message(now, d.src, &message);
            n += 1;
        }
        if n == 0 {
            self.stats.unmatched += 1;
            Delivery::Unmatched
        } else {
            self.stats.delivered += 1;
            Delivery::Consumers(n)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A consumer that watches one sequenced stream
// ---------------------------------------------------------------------------------------------

/// Whose clock the timestamps in a stream's messages read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderClock {
    /// The host's own clock (the simulation, where the emulated machine and the host share
    /// one): latency is arrival time minus the timestamp.
    Shared,
    /// Another clock (a real board's, or `sim emulate`'s own): timestamps only help to tell
    /// long gaps apart; latency is not measured.
    Unknown,
}

/// The latencies a [`StreamMonitor`] measured, in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySummary {
    /// Messages measured.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Maximum.
    pub max_us: u64,
}

/// What a [`StreamMonitor`] made of its stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamReport {
    /// Data messages received (duplicates included).
    pub messages: u64,
    /// Distinct events received (duplicates not counted again).
    pub delivered: u64,
    /// Events of messages received twice or more.
    pub duplicates: u64,
    /// Events the gaps in the counter show to be missing (a loss at the very end of the stream
    /// leaves no gap: compare with what the sender sent, where that is known).
    pub dropped: u64,
    /// Messages that arrived after a later one.
    pub reordered: u64,
    /// Messages that do not follow the stream's layout (no events, or keys that do not count
    /// up), ignored.
    pub irregular: u64,
    /// Payload bytes of the data messages received.
    pub bytes: u64,
    /// Latency, if measured (timestamped messages and [`SenderClock::Shared`]).
    pub latency: Option<LatencySummary>,
}

/// Span of the 16-bit key counter: gaps are resolved modulo this.
const COUNTER_SPAN: u64 = 1 << 16;
/// Messages remembered to recognise duplicates and late arrivals: anything further back than
/// half the counter's span is ambiguous anyway.
const REMEMBER: u64 = COUNTER_SPAN / 2;
/// Largest latency recorded (longer ones are recorded as this): an hour.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A [`Consumer`] for one application's live-output stream in the layout the emulated
/// application sends (and a test application on real hardware can): each data message carries
/// consecutive keys whose low 16 bits count events (`key = id << 16 | counter`), optionally
/// with the send time as a timestamp payload prefix (the T and D bits: the low 32 bits of the
/// sender's clock in µs).
///
/// From the counter it tells delivered events from dropped ones (gaps), duplicates and late
/// arrivals; the counter wraps every 65,536 events, so a gap is resolved to the wrap that
/// agrees best with the timestamps (the stream's event rate so far times the time between the
/// messages) or, without timestamps, to the nearest one. With [`SenderClock::Shared`] it also
/// measures latency (arrival − timestamp) into a histogram of 2 significant digits
/// (`hdrhistogram`; percentiles are nearest-rank within that precision).
#[derive(Debug, Clone)]
pub struct StreamMonitor {
    clock: SenderClock,
    /// Where the counter stood at the first message (unwrapped; events before it are not this
    /// stream's business).
    origin: Option<u64>,
    /// One past the highest event seen (unwrapped).
    end: u64,
    /// Starts (unwrapped) of the messages seen within [`REMEMBER`] events of `end`.
    seen: BTreeSet<u64>,
    /// The first and the latest message's (start, timestamp), for the event rate.
    first_stamp: Option<(u64, u32)>,
    last_stamp: Option<(u64, u32)>,
    latency: Option<hdrhistogram::Histogram<u64>>,
    report: StreamReport,
}

impl StreamMonitor {
    /// A monitor of a stream whose timestamps read `clock`.
    pub fn new(clock: SenderClock) -> StreamMonitor {
        StreamMonitor {
            clock,
            origin: None,
            end: 0,
            seen: BTreeSet::new(),
            first_stamp: None,
            last_stamp: None,
            latency: None,
            report: StreamReport::default(),
        }
    }

    /// What it has seen so far.
    pub fn report(&self) -> StreamReport {
        let mut r = self.report;
        if let Some(origin) = self.origin {
            let span = self.end - origin;
            r.dropped = span.saturating_sub(r.delivered);
        }
        r.latency = self.latency.as_ref().filter(|h| !h.is_empty()).map(|h| LatencySummary {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        });
        r
    }

    /// The unwrapped counter value whose low 16 bits are `low`, nearest to `predicted`.
    fn unwrap(low: u64, predicted: u64) -> u64 {
        let base = predicted - predicted % COUNTER_SPAN + low;
        // Candidates one span either side; the nearest wins (ties go to the later one).
        [
            base.checked_sub(COUNTER_SPAN),
            Some(base),
            base.checked_add(COUNTER_SPAN),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|c| (c.abs_diff(predicted), u64::MAX - c))
        .unwrap_or(base)
    }

    /// Where the next message should start, from the timestamps if the stream has them.
    fn predict(&self, stamp: Option<u32>) -> u64 {
        let (Some(stamp), Some((s0, t0)), Some((s1, t1))) = (stamp, self.first_stamp, self.last_stamp) else {
            return self.end;
        };
        let elapsed = t1.wrapping_sub(t0);
        if elapsed == 0 || s1 <= s0 {
            return self.end;
        }
        let rate = (s1 - s0) as f64 / f64::from(elapsed);
        let ahead = f64::from(stamp.wrapping_sub(t1) as i32) * rate;
        let p = s1 as f64 + ahead;
        if p.is_finite() && p >= 0.0 { p as u64 } else { self.end }
    }

    fn record(&mut self, now: Instant, message: &crate::proto::eieio::DataRepr<'_>) {
        let mut events = message.events();
        let count = events.len() as u64;
        let Some(first) = events.next() else {
            self.report.irregular += 1;
            return;
        };
        // Keys count up by one within a message (the 16-bit counter may wrap inside it) and
        // share their upper half.
        let regular = std::iter::once(first)
            .chain(events)
            .zip(0u32..)
            .all(|(e, i)| e.key >> 16 == first.key >> 16 && e.key & 0xFFFF == (first.key.wrapping_add(i)) & 0xFFFF);
        if !regular {
            self.report.irregular += 1;
            return;
        }
        let header = message.header;
        let stamp = header
            .payload_prefix
            .filter(|_| header.payload_is_timestamp && header.eieio_type.key_len() == 4);
        let low = u64::from(first.key & 0xFFFF);
        let start = match self.origin {
            None => {
                // The first message: the stream starts here (counting from a high base so that
                // a late message from before it cannot go below zero).
                let start = COUNTER_SPAN * 1024 + low;
                self.origin = Some(start);
                self.end = start;
                start
            }
            Some(_) => Self::unwrap(low, self.predict(stamp)),
        };
        self.report.messages += 1;
        self.report.bytes += message.buffer_len() as u64;
        if self.seen.contains(&start) {
            self.report.duplicates += count;
        } else if start < self.origin.unwrap_or(0) {
            // From before the first message we saw: not counted either way.
            self.report.reordered += 1;
        } else {
            self.seen.insert(start);
            self.report.delivered += count;
            if start + count <= self.end {
                self.report.reordered += 1;
            }
            self.end = self.end.max(start + count);
            let keep_from = self.end.saturating_sub(REMEMBER);
            while self.seen.first().is_some_and(|s| *s < keep_from) {
                self.seen.pop_first();
            }
        }
        if let Some(stamp) = stamp {
            if self.first_stamp.is_none() {
                self.first_stamp = Some((start, stamp));
            }
            if self.last_stamp.is_none_or(|(s, _)| start > s) {
                self.last_stamp = Some((start, stamp));
            }
            if self.clock == SenderClock::Shared {
                let latency = (now.as_micros() as u32).wrapping_sub(stamp);
                let h = self.latency.get_or_insert_with(|| {
                    hdrhistogram::Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("constant bounds are valid")
                });
                h.saturating_record(u64::from(latency).clamp(1, MAX_LATENCY_US));
            }
        }
    }
}

impl Consumer for StreamMonitor {
    fn on_message(&mut self, now: Instant, _from: SocketAddrV4, message: &EieioMessage<'_>) {
        match message {
            EieioMessage::Data(m) => self.record(now, m),
            EieioMessage::Command(_) => self.report.irregular += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::eieio::{DataBuilder, DataHeader, EieioType};

    fn board(n: u8) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, n), 17893)
    }

    const HOST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 50_001);

    /// A message of `n` keys from counter `first` (`id << 16 | counter`), stamped with `stamp`.
    fn message(id: u32, first: u32, n: u32, stamp: Option<u32>) -> Vec<u8> {
        let mut h = DataHeader::new(EieioType::Key32);
        if let Some(s) = stamp {
            h.payload_prefix = Some(s);
            h.payload_is_timestamp = true;
        }
        let mut b = DataBuilder::new(h).unwrap();
        for i in 0..n {
            b.push_key((id << 16) | ((first + i) & 0xFFFF)).unwrap();
        }
        b.as_bytes().to_vec()
    }

    fn dgram(from: SocketAddrV4, payload: Vec<u8>) -> Datagram {
        Datagram {
            src: from,
            dst: HOST,
            payload,
        }
    }

    type Log = std::rc::Rc<std::cell::RefCell<Vec<(u8, u32)>>>;

    /// A boxed-closure consumer that logs (consumer number, first key).
    fn logger(log: &Log, n: u8) -> BoxedConsumer {
        let log = log.clone();
        Box::new(move |_, _, m: &EieioMessage<'_>| {
            if let EieioMessage::Data(d) = m {
                log.borrow_mut().push((n, d.events().next().map_or(0, |e| e.key)));
            }
        })
    }

    #[test]
    fn consumers_get_exactly_their_messages() {
        let log = Log::default();
        let mut l: Listener<BoxedConsumer> = Listener::new(HOST, Framing::Stripped);
        let a = l.register(Source::Ip(*board(1).ip()), logger(&log, 1));
        let b = l.register(Source::Endpoint(board(2)), logger(&log, 2));
        let t = Instant::from_millis(1);
        assert_eq!(
            l.handle_datagram(t, &dgram(board(1), message(1, 0, 3, None))),
            Delivery::Consumers(1)
        );
        assert_eq!(
            l.handle_datagram(t, &dgram(board(2), message(2, 5, 2, None))),
            Delivery::Consumers(1)
        );
        // Another port of board 2 is not board 2's endpoint; board 3 has no consumer.
        let other_port = SocketAddrV4::new(*board(2).ip(), 9);
        assert_eq!(
            l.handle_datagram(t, &dgram(other_port, message(2, 7, 1, None))),
            Delivery::Unmatched
        );
        assert_eq!(
            l.handle_datagram(t, &dgram(board(3), message(3, 0, 1, None))),
            Delivery::Unmatched
        );
        assert_eq!(*log.borrow(), vec![(1, 1 << 16), (2, (2 << 16) | 5)]);
        let sa = l.consumer_stats(a).unwrap();
        assert_eq!(
            (sa.datagrams, sa.data_messages, sa.events, sa.first, sa.last),
            (1, 1, 3, Some(t), Some(t))
        );
        assert_eq!(l.consumer_stats(b).unwrap().events, 2);
        // A catch-all consumer sees everything, after the others (registration order).
        let c = l.register(Source::Any, logger(&log, 3));
        assert_eq!(
            l.handle_datagram(t, &dgram(board(1), message(1, 3, 1, None))),
            Delivery::Consumers(2)
        );
        assert_eq!(log.borrow()[2..], [(1, (1 << 16) | 3), (3, (1 << 16) | 3)]);
        // Unregistered consumers get nothing more.
        let (_, stats) = l.unregister(a).unwrap();
        assert_eq!(stats.datagrams, 2);
        assert!(l.unregister(a).is_none());
        assert_eq!(
            l.handle_datagram(t, &dgram(board(1), message(1, 4, 1, None))),
            Delivery::Consumers(1)
        );
        assert_eq!(l.consumer_stats(c).unwrap().datagrams, 2);
        let s = l.stats();
        assert_eq!((s.datagrams, s.delivered, s.unmatched, s.malformed), (6, 4, 2, 0));
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn malformed_datagrams_are_counted_and_never_reach_a_consumer() {
        let mut l: Listener<StreamMonitor> = Listener::new(HOST, Framing::Stripped);
        let id = l.register(Source::Any, StreamMonitor::new(SenderClock::Shared));
        let mut truncated = message(1, 0, 4, None);
        truncated.truncate(9);
        for bad in [Vec::new(), vec![0x01], truncated, vec![0x05, 0x08, 1, 2]] {
            assert!(matches!(
                l.handle_datagram(Instant::ZERO, &dgram(board(1), bad)),
                Delivery::Malformed(_)
            ));
        }
        assert_eq!(l.stats().malformed, 4);
        assert_eq!(l.consumer_stats(id).unwrap().datagrams, 0);
        assert_eq!(l.consumer(id).unwrap().report().messages, 0);
        // A command message is delivered but is not part of the stream.
        let cmd = crate::proto::eieio::CommandRepr::StopSendingRequests.to_vec();
        assert_eq!(
            l.handle_datagram(Instant::ZERO, &dgram(board(1), cmd)),
            Delivery::Consumers(1)
        );
        let r = l.consumer(id).unwrap().report();
        assert_eq!((r.messages, r.irregular), (0, 1));
        assert_eq!(l.consumer_stats(id).unwrap().command_messages, 1);
    }

    #[test]
    fn sdp_framed_messages_are_unwrapped() {
        let mut l: Listener<StreamMonitor> = Listener::new(HOST, Framing::Sdp);
        let id = l.register(Source::Any, StreamMonitor::new(SenderClock::Unknown));
        let eieio = message(1, 0, 10, None);
        let header = sdp::Repr {
            flags: sdp::Flags::NO_REPLY,
            tag: 1,
            dest: sdp::Address::HOST,
            src: sdp::Address::new(0, 0, 1, 1),
        };
        let mut buf = [0u8; sdp::MAX_UDP_PAYLOAD_LEN];
        let n = header.emit_udp(&eieio, &mut buf).unwrap();
        assert_eq!(
            l.handle_datagram(Instant::ZERO, &dgram(board(1), buf[..n].to_vec())),
            Delivery::Consumers(1)
        );
        assert_eq!(l.consumer(id).unwrap().report().delivered, 10);
        // A bare message is too short to be SDP-framed, or is garbage once unwrapped.
        assert!(matches!(
            l.handle_datagram(Instant::ZERO, &dgram(board(1), vec![1, 8])),
            Delivery::Malformed(_)
        ));
    }

    /// Feeds packets `0..n` of `keys` keys each (sent every `interval` µs, arriving `delay` µs
    /// later), leaving out those `lost` says, to a monitor.
    fn run_stream(n: u32, keys: u32, interval: u64, delay: u64, lost: impl Fn(u32) -> bool) -> StreamReport {
        let mut m = StreamMonitor::new(SenderClock::Shared);
        for p in (0..n).filter(|p| !lost(*p)) {
            let sent = u64::from(p) * interval;
            let bytes = message(7, p.wrapping_mul(keys), keys, Some(sent as u32));
            let repr = EieioMessage::parse(&bytes).unwrap();
            m.on_message(Instant(sent + delay), board(1), &repr);
        }
        m.report()
    }

    #[test]
    fn drops_are_the_gaps_in_the_counter() {
        let r = run_stream(1000, 62, 1000, 250, |p| p % 10 == 3);
        assert_eq!(r.messages, 900);
        assert_eq!(r.delivered, 900 * 62);
        assert_eq!(r.dropped, 100 * 62);
        assert_eq!((r.duplicates, r.reordered, r.irregular), (0, 0, 0));
        let lat = r.latency.unwrap();
        assert_eq!(lat.count, 900);
        assert_eq!((lat.p50_us, lat.p99_us, lat.max_us), (250, 250, 250));
        // A loss at the very end leaves no gap.
        let tail = run_stream(100, 62, 1000, 250, |p| p >= 90);
        assert_eq!((tail.delivered, tail.dropped), (90 * 62, 0));
    }

    /// A gap longer than the counter's span (65,536 events: 1,058 packets of 62) is told from a
    /// short one by the timestamps.
    #[test]
    fn gaps_longer_than_the_counter_are_resolved_by_the_timestamps() {
        for gap in [10u32, 600, 1057, 1058, 1059, 3000, 5000] {
            let r = run_stream(200 + gap + 200, 62, 1000, 100, |p| (200..200 + gap).contains(&p));
            assert_eq!(r.dropped, u64::from(gap) * 62, "gap of {gap} packets");
            assert_eq!(r.delivered, 400 * 62);
        }
    }

    #[test]
    fn duplicates_and_late_arrivals_are_not_counted_twice() {
        let mut m = StreamMonitor::new(SenderClock::Shared);
        let order = [0u32, 1, 3, 2, 2, 4, 4, 6, 5];
        for (i, p) in order.iter().enumerate() {
            let bytes = message(1, p * 10, 10, Some(p * 1000));
            let repr = EieioMessage::parse(&bytes).unwrap();
            m.on_message(Instant(u64::from(p * 1000) + 100 + i as u64), board(1), &repr);
        }
        let r = m.report();
        assert_eq!((r.messages, r.delivered, r.duplicates, r.dropped), (9, 70, 20, 0));
        assert_eq!(r.reordered, 2);
        let lat = r.latency.unwrap();
        assert_eq!(lat.count, 9);
        assert!(lat.max_us >= lat.p99_us && lat.p99_us >= lat.p50_us && lat.p50_us >= 100);
    }

    #[test]
    fn without_a_shared_clock_latency_is_not_measured() {
        let mut m = StreamMonitor::new(SenderClock::Unknown);
        let bytes = message(1, 0, 5, Some(123));
        m.on_message(Instant(99_999), board(1), &EieioMessage::parse(&bytes).unwrap());
        assert_eq!(m.report().latency, None);
        assert_eq!(m.report().delivered, 5);
    }

    #[test]
    fn irregular_messages_are_ignored() {
        let mut m = StreamMonitor::new(SenderClock::Unknown);
        let mut b = DataBuilder::new(DataHeader::new(EieioType::Key32)).unwrap();
        for k in [5, 9, 2] {
            b.push_key(k).unwrap();
        }
        m.on_message(Instant::ZERO, board(1), &EieioMessage::parse(b.as_bytes()).unwrap());
        let empty = DataBuilder::new(DataHeader::new(EieioType::Key32)).unwrap();
        m.on_message(Instant::ZERO, board(1), &EieioMessage::parse(empty.as_bytes()).unwrap());
        let r = m.report();
        assert_eq!((r.irregular, r.messages, r.delivered), (2, 0, 0));
    }

    #[test]
    fn the_counter_may_wrap_inside_a_message() {
        let r = run_stream(2200, 62, 1000, 10, |_| false);
        assert_eq!((r.delivered, r.dropped, r.irregular), (2200 * 62, 0, 0));
    }
}
