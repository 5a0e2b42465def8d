//! Many SCP clients behind one local address.
//!
//! A host (spalloc's BMP controllers, a user's boot and data traffic) talks to many boards and
//! BMPs at once from one socket. [`HostStack`] keeps one [`ScpClient`] per remote endpoint,
//! dispatches each incoming datagram by its source address (datagrams from unknown sources are
//! counted and dropped, as a connected UDP socket would), sends fire-and-forget datagrams (boot
//! packets) and gathers every client's transmissions, events and deadlines, so a driver only
//! moves datagrams.
//!
//! Deadlines live in an index ordered by (time, address): the next one is found in O(log n) and
//! only clients whose deadline has come are woken.

use super::pacer::TokenBucket;
use super::policy::Policy;
use super::scp::{ClientEvent, ScpClient, Stats};
use super::{ScpRequest, TimerIndex};
use crate::time::Instant;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddrV4;

/// Something that happened to a request of one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackEvent {
    /// The client's remote endpoint.
    pub remote: SocketAddrV4,
    /// What happened.
    pub event: ClientEvent,
}

/// Counters of a whole stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StackStats {
    /// Every client's counters, merged.
    pub scp: Stats,
    /// Clients.
    pub clients: usize,
    /// Datagrams dropped because no client has their source address.
    pub unknown_source: u64,
    /// Fire-and-forget datagrams sent.
    pub raw_datagrams: u64,
    /// Their bytes.
    pub raw_bytes: u64,
}

/// SCP clients by remote address, plus raw datagrams. See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct HostStack {
    default_policy: Policy,
    pacing: Option<TokenBucket>,
    clients: BTreeMap<SocketAddrV4, ScpClient>,
    timers: TimerIndex<SocketAddrV4>,
    transmits: VecDeque<(SocketAddrV4, Vec<u8>)>,
    events: VecDeque<StackEvent>,
    unknown_source: u64,
    raw_datagrams: u64,
    raw_bytes: u64,
}

impl HostStack {
    /// A stack whose clients are created with `default_policy` unless added explicitly.
    pub fn new(default_policy: Policy) -> HostStack {
        HostStack {
            default_policy,
            ..HostStack::default()
        }
    }

    /// The policy of clients created on demand.
    pub fn default_policy(&self) -> &Policy {
        &self.default_policy
    }

    /// Paces every client created from now on with its own token bucket of these settings
    /// (`None`: unpaced), whatever its policy.
    pub fn set_pacing(&mut self, pacing: Option<TokenBucket>) {
        self.pacing = pacing;
    }

    /// The token bucket settings of clients created from now on.
    pub fn pacing(&self) -> Option<&TokenBucket> {
        self.pacing.as_ref()
    }

    /// Adds a client for `remote` with its own policy; returns false (and changes nothing) if
    /// there already is one.
    pub fn add_client(&mut self, remote: SocketAddrV4, policy: Policy) -> bool {
        if self.clients.contains_key(&remote) {
            return false;
        }
        self.clients
            .insert(remote, ScpClient::new(remote, policy).with_pacing(self.pacing));
        true
    }

    /// The client of `remote`, if any.
    pub fn client(&self, remote: SocketAddrV4) -> Option<&ScpClient> {
        self.clients.get(&remote)
    }

    /// Every client, by address.
    pub fn clients(&self) -> impl Iterator<Item = &ScpClient> {
        self.clients.values()
    }

    /// Queues a request to `remote` (creating its client with the default policy if needed).
    pub fn submit(&mut self, now: Instant, remote: SocketAddrV4, request: ScpRequest, token: u64) {
        let (policy, pacing) = (self.default_policy, self.pacing);
        let client = self
            .clients
            .entry(remote)
            .or_insert_with(|| ScpClient::new(remote, policy).with_pacing(pacing));
        client.submit(now, request, token);
        self.sync(remote);
    }

    /// Forgets the requests to `remote` whose token matches (see [`ScpClient::cancel`]).
    pub fn cancel(&mut self, now: Instant, remote: SocketAddrV4, matches: impl FnMut(u64) -> bool) -> usize {
        let Some(c) = self.clients.get_mut(&remote) else {
            return 0;
        };
        let n = c.cancel(now, matches);
        self.sync(remote);
        n
    }

    /// Sends a datagram that expects no answer (boot packets).
    pub fn send_datagram(&mut self, dst: SocketAddrV4, payload: Vec<u8>) {
        self.raw_datagrams += 1;
        self.raw_bytes += payload.len() as u64;
        self.transmits.push_back((dst, payload));
    }

    /// A datagram arrived from `from`. Returns true if it answered an outstanding request.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddrV4, payload: &[u8]) -> bool {
        let Some(c) = self.clients.get_mut(&from) else {
            self.unknown_source += 1;
            return false;
        };
        let matched = c.handle_datagram(now, payload);
        self.sync(from);
        matched
    }

    /// Wakes every client whose deadline has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        for remote in self.timers.due(now) {
            if let Some(c) = self.clients.get_mut(&remote) {
                c.handle_timeout(now);
            }
            self.sync(remote);
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddrV4, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// The next request outcome.
    pub fn poll_event(&mut self) -> Option<StackEvent> {
        self.events.pop_front()
    }

    /// The earliest deadline of any client.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first()
    }

    /// True when no client has work and nothing waits to be drained.
    pub fn is_idle(&self) -> bool {
        self.transmits.is_empty() && self.events.is_empty() && self.clients.values().all(|c| c.is_idle())
    }

    /// Counters of all clients together.
    pub fn stats(&self) -> StackStats {
        let mut scp = Stats::default();
        for c in self.clients.values() {
            scp.merge(c.stats());
        }
        StackStats {
            scp,
            clients: self.clients.len(),
            unknown_source: self.unknown_source,
            raw_datagrams: self.raw_datagrams,
            raw_bytes: self.raw_bytes,
        }
    }

    /// Moves a client's output into the stack's queues and re-indexes its deadline.
    fn sync(&mut self, remote: SocketAddrV4) {
        let Some(c) = self.clients.get_mut(&remote) else {
            self.timers.set(remote, None);
            return;
        };
        while let Some(t) = c.poll_transmit() {
            self.transmits.push_back(t);
        }
        while let Some(event) = c.poll_event() {
            self.events.push_back(StackEvent { remote, event });
        }
        self.timers.set(remote, c.poll_timeout());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::testkit::{Net, addr, board_ip, run_until_idle, sver_request, write_request};
    use crate::time::Duration;
    use proptest::prelude::*;

    #[test]
    fn dispatches_by_source_and_drops_unknown() {
        let mut s = HostStack::new(Policy::adaptive());
        assert!(s.add_client(addr(board_ip(9), 17893), Policy::rig()));
        assert!(!s.add_client(addr(board_ip(9), 17893), Policy::spinnman()));
        let mut net = Net::new().with_delay(Duration::from_millis(2));
        for b in 0..10u8 {
            for t in 0..20u64 {
                let r = write_request(0x7000_0000 + 256 * t as u32, 256);
                s.submit(Instant::ZERO, addr(board_ip(b), 17893), r, u64::from(b) * 100 + t);
            }
        }
        s.submit(Instant::ZERO, addr(board_ip(9), 17893), sver_request(), 999);
        run_until_idle(&mut s, &mut net, Instant::from_secs(60));
        let events: Vec<StackEvent> = std::iter::from_fn(|| s.poll_event()).collect();
        assert_eq!(events.len(), 201);
        for e in &events {
            let b = (e.event.token() / 100).min(9) as u8;
            assert_eq!(e.remote, addr(board_ip(b), 17893));
            assert!(matches!(e.event, ClientEvent::Done { .. }));
        }
        assert_eq!(s.client(addr(board_ip(9), 17893)).unwrap().policy().name(), "rig");
        assert_eq!(s.client(addr(board_ip(9), 17893)).unwrap().stats().max_in_flight, 1);
        assert!(!s.handle_datagram(Instant::ZERO, addr(board_ip(200), 17893), &[0; 14]));
        let st = s.stats();
        assert_eq!((st.clients, st.unknown_source, st.scp.completed), (10, 1, 201));
        assert_eq!(st.scp.max_in_flight, 8);
    }

    proptest! {
        #[test]
        fn random_datagrams_never_panic(
            seeds in proptest::collection::vec((0u8..4, proptest::collection::vec(any::<u8>(), 0..300)), 0..40),
            policy in 0usize..3,
        ) {
            let policy = Policy::from_name(Policy::NAMES[policy]).unwrap();
            let mut s = HostStack::new(policy);
            for b in 0..3u8 {
                for t in 0..10 {
                    s.submit(Instant::ZERO, addr(board_ip(b), 17893), sver_request(), t);
                }
            }
            let mut now = Instant::ZERO;
            for (i, (b, mut bytes)) in seeds.into_iter().enumerate() {
                now += Duration::from_millis(37);
                // Make some of them look like replies to outstanding sequence numbers.
                if i % 2 == 0 && bytes.len() >= 14 {
                    bytes[0] = 0;
                    bytes[1] = 0;
                    bytes[12] = (i % 10) as u8;
                    bytes[13] = 0;
                }
                s.handle_datagram(now, addr(board_ip(b), 17893), &bytes);
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    s.handle_timeout(now);
                }
                while s.poll_transmit().is_some() {}
                while s.poll_event().is_some() {}
            }
        }
    }
}
