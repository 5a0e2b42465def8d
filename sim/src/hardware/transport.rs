//! The host side over a transport, and the one loop that moves datagrams between them.
//!
//! A [`Transport`] carries the host's datagrams to the machine and brings the machine's back:
//! in simulated runs a [`super::SimulatedMachine`] (the simulated network and the emulated
//! machine), in real time a queue that a UDP driver empties into a socket and fills from it.
//! [`settle`] runs a host ([`HostEnd`]) and a transport at one instant until neither has
//! anything left to do; [`HostHardware`] is the [`Hardware`] of both, the [`HostSide`] over a
//! transport.

use super::host_side::HostSide;
use super::{Completion, Hardware, JobLive, JobScp, LiveTotals, ScpCounters, ScpSummary, Session, SessionEvent};
use crate::netsim::NetStats;
use crate::scenario::FaultKind;
use spinnbed_core::datagram::Datagram;
use spinnbed_core::host::Host;
use spinnbed_core::sched::JobId;
use spinnbed_core::service::BmpBatch;
use spinnbed_core::time::Instant;

/// What carries a host's datagrams to the machine and back.
pub trait Transport {
    /// A short name for summaries ("emulator", "udp").
    fn name(&self) -> &'static str;
    /// The machine's side catches up to `now` (its timers run, datagrams in flight arrive);
    /// datagrams that reached the host are handed to `deliver`. Returns whether anything
    /// happened.
    fn receive(&mut self, now: Instant, deliver: &mut dyn FnMut(&Datagram)) -> bool;
    /// The host sends a datagram.
    fn send(&mut self, now: Instant, d: Datagram);
    /// After the host has sent: the machine's side sends what it has. Returns whether anything
    /// happened.
    fn flush(&mut self, now: Instant) -> bool;
    /// When the transport next needs time to pass.
    fn poll_timeout(&self) -> Option<Instant>;
    /// A scenario fault strikes (`on`) or heals; transports that cannot inject faults (real
    /// hardware) ignore it.
    fn apply_fault(&mut self, now: Instant, kind: &FaultKind, on: bool);
    /// What the network carried and lost, for transports that count it.
    fn net_stats(&self) -> Option<NetStats> {
        None
    }
    /// The path to `board` has just carried a flow transfer (`[host] transfers = "flow"`): its
    /// thousands of datagrams did not cross the transport, which brings the path's state to
    /// where they would have left it, as far as it can (the simulated network redraws its
    /// burst state).
    fn after_flow(&mut self, _board: std::net::Ipv4Addr) {}
    /// What the board at `board` has streamed since it booted, for transports that can tell
    /// (the emulator; not real hardware).
    fn live_output(&self, _board: std::net::Ipv4Addr) -> Option<spinnbed_emulator::LiveOutputStats> {
        None
    }
}

/// The host end of a datagram exchange: the core's [`Host`] (whose events its owner reads) or
/// the [`HostSide`] of a run (which acts on its host's events itself).
pub trait HostEnd {
    /// The host's next deadline.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Time has reached the deadline.
    fn handle_timeout(&mut self, now: Instant);
    /// A datagram arrived.
    fn handle_datagram(&mut self, now: Instant, d: &Datagram);
    /// The next datagram to send.
    fn poll_transmit(&mut self) -> Option<Datagram>;
    /// Acts on what the host reported; returns whether there was anything. A bare [`Host`]
    /// leaves its events to its owner.
    fn process(&mut self, _now: Instant) -> bool {
        false
    }
}

impl HostEnd for Host {
    fn poll_timeout(&self) -> Option<Instant> {
        Host::poll_timeout(self)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Host::handle_timeout(self, now)
    }
    fn handle_datagram(&mut self, now: Instant, d: &Datagram) {
        Host::handle_datagram(self, now, d)
    }
    fn poll_transmit(&mut self) -> Option<Datagram> {
        Host::poll_transmit(self)
    }
}

/// Moves datagrams, timeouts and events between `host` and `transport` at `now` until neither
/// has anything left to do. The order within a round is fixed (host timers; the transport's
/// arrivals; the host's datagrams out; the machine's datagrams out; the host's events), so a
/// simulated run is a pure function of its inputs.
pub fn settle(host: &mut impl HostEnd, transport: &mut impl Transport, now: Instant) {
    loop {
        let mut moved = false;
        if host.poll_timeout().is_some_and(|t| t <= now) {
            host.handle_timeout(now);
            moved = true;
        }
        moved |= transport.receive(now, &mut |d| host.handle_datagram(now, d));
        while let Some(d) = host.poll_transmit() {
            transport.send(now, d);
            moved = true;
        }
        moved |= transport.flush(now);
        moved |= host.process(now);
        if !moved {
            break;
        }
    }
}

/// The [`HostSide`] over a [`Transport`], as [`Hardware`]: every call acts on the host side,
/// then [`settle`]s.
#[derive(Debug)]
pub struct HostHardware<T> {
    side: HostSide,
    transport: T,
}

impl<T: Transport> HostHardware<T> {
    /// The host side over `transport`.
    pub fn new(side: HostSide, transport: T) -> HostHardware<T> {
        HostHardware { side, transport }
    }

    /// The transport (real-time drivers take the host's datagrams out of it).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// The host side.
    pub fn side(&self) -> &HostSide {
        &self.side
    }

    /// The host side, to change (a server reloading its machines).
    pub fn side_mut(&mut self) -> &mut HostSide {
        &mut self.side
    }

    /// A datagram for the host arrived from outside the transport (a real-time driver's
    /// socket).
    pub fn handle_datagram(&mut self, now: Instant, d: &Datagram) {
        self.side.handle_datagram(now, d);
        self.settle(now);
    }

    fn settle(&mut self, now: Instant) {
        settle(&mut self.side, &mut self.transport, now);
        self.collect_sent();
        while let Some(board) = self.side.poll_flowed() {
            self.transport.after_flow(board);
        }
    }

    /// Reads what the boards of streams that just stopped sent.
    fn collect_sent(&mut self) {
        while let Some((job, board)) = self.side.poll_stopped_stream() {
            let sent = self.transport.live_output(board);
            self.side.set_live_sent(job, sent);
        }
    }
}

impl<T: Transport> Hardware for HostHardware<T> {
    fn name(&self) -> &'static str {
        self.transport.name()
    }

    fn submit(&mut self, now: Instant, batch: BmpBatch) {
        self.side.submit(now, batch);
        self.settle(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [self.side.poll_timeout(), self.transport.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.settle(now);
    }

    fn poll_done(&mut self) -> Option<Completion> {
        self.side.poll_done()
    }

    fn start_session(&mut self, now: Instant, session: Session) {
        self.side.start_session(now, session);
        self.settle(now);
    }

    fn finish_session(&mut self, now: Instant, job: JobId) {
        self.side.finish_session(now, job);
        self.settle(now);
    }

    fn end_session(&mut self, job: JobId) {
        self.side.end_session(job);
        self.collect_sent();
    }

    fn poll_session(&mut self) -> Option<(JobId, SessionEvent)> {
        self.side.poll_session()
    }

    fn scp_summary(&self) -> Option<ScpSummary> {
        Some(self.side.summary(self.transport.net_stats()))
    }

    fn counters(&self) -> Option<ScpCounters> {
        Some(self.side.counters())
    }

    fn job_scp(&self, job: JobId) -> Option<JobScp> {
        Some(self.side.job_scp(job))
    }

    fn apply_fault(&mut self, now: Instant, kind: &FaultKind, on: bool) {
        self.transport.apply_fault(now, kind, on);
        if self.side.on_fault(now, kind, on) {
            // Flow transfers the fault cut short carry on packet by packet from now.
            self.settle(now);
        }
    }

    fn job_live(&self, job: JobId) -> Option<JobLive> {
        let mut j = self.side.job_live(job)?;
        if j.sent.is_none()
            && let Some(board) = self.side.streaming_board(job)
        {
            // Still streaming when the run stopped: what the board has sent so far.
            j.sent = self.transport.live_output(board);
        }
        Some(j)
    }

    fn live_totals(&self) -> Option<LiveTotals> {
        self.side.live_totals()
    }
}
