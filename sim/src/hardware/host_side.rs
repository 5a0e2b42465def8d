//! The host side of packet-level hardware: the core's `host::Host` speaking SCP and the boot
//! protocol to the machine, datagram by datagram, for the service's BMP batches and the users'
//! sessions.
//!
//! [`HostSide`] only produces and consumes datagrams; a transport carries them (the simulated
//! network and emulator in simulated runs, a UDP socket in real time). The service's BMP
//! batches go to the host's BMP controllers, which turn them into the reference's SCP sequence
//! (power, FPGA FLAG checks, STOP bits) under the scenario's retry and windowing policy;
//! users' sessions boot their job's boards (boot packets, then CMD_VER polls), write their
//! input to SDRAM and read their results back.
//!
//! Live output: a streaming user (a [`Session`] with `live`) writes its application's stream
//! settings into the user registers of core 1 of its root board's Ethernet chip (CMD_WRITE),
//! sets a user IP tag (STRIP) pointing at the host's listener (CMD_IPTAG), and starts the
//! application there (CMD_AR) — after loading its input, or before with
//! [`LiveStart::Booted`](crate::scenario::LiveStart::Booted) — and registers a
//! [`StreamMonitor`] for its board on the core's [`Listener`]. When its run is over it stops
//! the application (CMD_SIG STOP) and clears the tag before reading its results back. Datagrams
//! to the listener's address go to the listener, the rest to the SCP host.

use super::flow::{FlowOp, Flows};
use super::transport::HostEnd;
use super::{
    Completion, JobLive, JobScp, LiveSession, LiveTotals, ScpCounters, ScpSummary, Session, SessionEvent,
    SessionFailure,
};
use crate::netsim::NetStats;
use crate::scenario::LiveStart;
use spinnbed_core::datagram::Datagram;
use spinnbed_core::geometry::{Board, Machine};
use spinnbed_core::host::{
    BootConfig, BootEvent, BootOutcome, ConsumerId, Framing, Host, HostConfig, HostEvent, Listener, OpId, Outcome,
    Policy, ScpRequest, SenderClock, Source, Stats, StreamMonitor, Transfer, TransferEvent,
};
use spinnbed_core::proto::scp::{AccessType, IptagConfig, IptagFlags, IptagRequest, Request, SignalKind};
use spinnbed_core::proto::sdp::Address;
use spinnbed_core::sched::JobId;
use spinnbed_core::service::{BatchId, BmpBatch};
use spinnbed_core::time::{Duration, Instant};
use spinnbed_core::timing::MachineTiming;
use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Where the simulated host sits.
pub const HOST_ADDR: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 50_000);
/// Where the simulated host's live-output listener sits (the users' IP tags point here).
pub const LISTENER_ADDR: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 50_001);
/// The application id streaming users start their application with.
pub const LIVE_APP_ID: u8 = 30;
/// The virtual core the streaming application runs on (chip (0, 0) of the root board).
const LIVE_CORE: u8 = 1;
/// SARK's SIG_STOP.
const SIG_STOP: u32 = 2;
/// SDRAM address users write their input to and read results from.
pub const USER_SDRAM: u32 = 0x6000_0000;
/// Largest transfer a simulated user makes (bigger data volumes are capped: packet-level
/// transfers of gigabytes would dominate any run).
pub const MAX_TRANSFER: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Booting,
    /// Setting up live output (then writing, or running).
    LiveStarting,
    Writing,
    Running,
    /// Stopping live output (then reading).
    LiveStopping,
    Reading,
}

/// The SCP steps of starting and stopping a stream, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LiveStep {
    /// CMD_WRITE of the stream settings into the core's user registers.
    Params,
    /// CMD_IPTAG SET of the output tag.
    Tag,
    /// CMD_AR on the core.
    Start,
    /// CMD_SIG STOP to the application.
    Stop,
    /// CMD_IPTAG CLEAR of the output tag.
    ClearTag,
}

/// A streaming user's live output.
#[derive(Debug, Clone)]
struct LiveState {
    params: LiveSession,
    consumer: ConsumerId,
    started: Option<Instant>,
    stopped: Option<Instant>,
    /// What the board had sent when the stream stopped (filled in by the hardware).
    sent: Option<spinnbed_emulator::LiveOutputStats>,
    failed: bool,
}

#[derive(Debug, Clone)]
struct UserSession {
    /// The job's machine.
    machine: String,
    root: SocketAddrV4,
    /// The board at `root`.
    root_board: Board,
    /// The user boots its boards (and so moves data); otherwise it only holds them.
    boots: bool,
    phase: Phase,
    data_in: u64,
    data_out: u64,
    /// The root board's client counters when the session started.
    mark: Stats,
    live: Option<LiveState>,
}

/// The host side of a run (see the module documentation).
pub struct HostSide {
    host: Host,
    policy: Policy,
    machines: BTreeMap<String, Machine>,
    /// Batches submitted and not yet done, by id (issued in order, so a BMP's earliest one is
    /// the one it is working on).
    batches: BTreeMap<BatchId, BmpBatch>,
    done: VecDeque<Completion>,
    sessions: BTreeMap<JobId, UserSession>,
    ops: BTreeMap<OpId, JobId>,
    session_events: VecDeque<(JobId, SessionEvent)>,
    image: Vec<u8>,
    user_bytes: u64,
    /// Time spent in user transfers, µs (for the run's goodput).
    transfer_us: u64,
    /// Each job's SCP traffic.
    job_scp: BTreeMap<JobId, JobScp>,
    /// Each BMP client's counters when its last batch finished. A BMP runs one batch at a time,
    /// so what its counters grew by since then is the finished batch's traffic.
    bmp_marks: BTreeMap<Ipv4Addr, Stats>,
    /// The live-output listener (runs with live output only).
    listener: Option<Listener<StreamMonitor>>,
    /// Whose clock the streams' timestamps read.
    listener_clock: SenderClock,
    /// Bare live-output requests in flight: token → (job, step).
    live_requests: BTreeMap<u32, (JobId, LiveStep)>,
    next_token: u32,
    /// Each streaming job's live output, once its stream has ended (or its session closed).
    job_live: BTreeMap<JobId, JobLive>,
    /// Streams that just stopped, whose sent counts the transport should fill in: (job, board).
    stopped_streams: VecDeque<(JobId, Ipv4Addr)>,
    /// Flow-level transfers (`[host] transfers = "flow"`; `None`: every transfer packet by
    /// packet).
    flows: Option<Box<Flows>>,
    /// Packet-level transfers that finish a flow transfer cut short by a fault: op → (bytes
    /// the flow had moved, when the flow started).
    resumed: BTreeMap<OpId, (u64, Instant)>,
    /// Boards whose paths just carried a flow transfer, for the transport to bring up to
    /// date ([`super::transport::Transport::after_flow`]).
    flowed: VecDeque<Ipv4Addr>,
}

impl std::fmt::Debug for HostSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSide")
            .field("sessions", &self.sessions.len())
            .field("batches", &self.batches.len())
            .finish()
    }
}

impl HostSide {
    /// A host side at `local` for `machines` (each with its timing: a batch is tried
    /// `bmp_tries` times, `bmp_retry_delay` apart) with the SCP `policy`, waiting
    /// `post_power_on_delay` after each power-on before checking FPGAs.
    pub fn new(
        local: SocketAddrV4,
        machines: &[(Machine, MachineTiming)],
        policy: Policy,
        post_power_on_delay: Duration,
    ) -> HostSide {
        let mut config = HostConfig::for_policy(policy);
        config.bmp.post_power_on_delay = post_power_on_delay;
        config.local = local;
        let mut host = Host::new(config);
        for (m, t) in machines {
            let mut bmp = config.bmp;
            bmp.tries = t.bmp_tries.max(1);
            bmp.retry_interval = t.bmp_retry_delay;
            for (_, ip) in m.bmps() {
                host.set_bmp_config(ip, bmp);
            }
        }
        HostSide {
            policy: config.policy,
            host,
            machines: machines
                .iter()
                .map(|(m, _)| (m.name().to_string(), m.clone()))
                .collect(),
            batches: BTreeMap::new(),
            done: VecDeque::new(),
            sessions: BTreeMap::new(),
            ops: BTreeMap::new(),
            session_events: VecDeque::new(),
            image: spinnbed_core::host::boot::stand_in_image(27 * 1024),
            user_bytes: 0,
            transfer_us: 0,
            job_scp: BTreeMap::new(),
            bmp_marks: BTreeMap::new(),
            listener: None,
            listener_clock: SenderClock::Shared,
            live_requests: BTreeMap::new(),
            next_token: 0,
            job_live: BTreeMap::new(),
            stopped_streams: VecDeque::new(),
            flows: None,
            resumed: BTreeMap::new(),
            flowed: VecDeque::new(),
        }
    }

    /// Simulates the users' bulk transfers at flow level where `calibrator`'s models hold
    /// ([`super::flow`]; approximate).
    pub fn with_flow(mut self, calibrator: super::flow::Calibrator) -> HostSide {
        self.flows = Some(Box::new(Flows::new(calibrator)));
        self
    }

    /// The flow transfers, if the run has them.
    pub fn flows(&self) -> Option<&Flows> {
        self.flows.as_deref()
    }

    /// The next board whose path just carried a flow transfer.
    pub fn poll_flowed(&mut self) -> Option<Ipv4Addr> {
        self.flowed.pop_front()
    }

    /// A fault strikes or heals: flow transfers it disturbs carry on packet by packet.
    pub fn on_fault(&mut self, now: Instant, kind: &crate::scenario::FaultKind, on: bool) -> bool {
        let Some(flows) = self.flows.as_mut() else { return false };
        let jobs = flows.on_fault(kind, on);
        let any = !jobs.is_empty();
        for job in jobs {
            let Some((x, done)) = self.flows.as_mut().and_then(|f| f.interrupt(now, job)) else {
                continue;
            };
            self.start_packets(now, job, x.op, x.root, x.offset + done, x.offset + x.bytes, x.started);
        }
        any
    }

    /// Moves bytes `from..to` of `job`'s transfer packet by packet (the part of a flow transfer
    /// a fault cut short, `started` when the flow started).
    #[allow(clippy::too_many_arguments)]
    fn start_packets(
        &mut self,
        now: Instant,
        job: JobId,
        op: FlowOp,
        root: SocketAddrV4,
        from: u64,
        to: u64,
        started: Instant,
    ) {
        let len = to.saturating_sub(from) as usize;
        let addr = USER_SDRAM.wrapping_add(from as u32);
        let t = match op {
            FlowOp::Write => {
                let all = pattern(job, to as usize);
                Transfer::write(now, root, Address::ROOT_MONITOR, addr, all[from as usize..].to_vec())
            }
            FlowOp::Read => Transfer::read(now, root, Address::ROOT_MONITOR, addr, len),
        };
        let op_id = self.host.start_transfer(t);
        self.ops.insert(op_id, job);
        self.resumed.insert(op_id, (from, started));
    }

    /// Starts `job`'s transfer of `bytes`: as a flow where the model holds, otherwise packet
    /// by packet.
    fn start_transfer(&mut self, now: Instant, job: JobId, op: FlowOp, bytes: u64) {
        let Some(s) = self.sessions.get(&job) else { return };
        let (root, board) = (s.root, s.root_board);
        let streaming = s
            .live
            .as_ref()
            .is_some_and(|l| l.started.is_some() && l.stopped.is_none());
        if let Some(flows) = self.flows.as_mut() {
            if !streaming && flows.start(now, job, op, &s.machine, board, root, bytes) {
                return;
            }
            flows.packet_transfers += 1;
        }
        let t = match op {
            FlowOp::Write => Transfer::write(
                now,
                root,
                Address::ROOT_MONITOR,
                USER_SDRAM,
                pattern(job, bytes as usize),
            ),
            FlowOp::Read => Transfer::read(now, root, Address::ROOT_MONITOR, USER_SDRAM, bytes as usize),
        };
        let op_id = self.host.start_transfer(t);
        self.ops.insert(op_id, job);
    }

    /// Gives the host a live-output listener at `local` (the address users' IP tags point at;
    /// with an unspecified IP the boards use the address their IP tag request came from).
    /// `clock` says whether the streams' timestamps read the host's clock (simulation) or
    /// another one (real time).
    pub fn with_listener(mut self, local: SocketAddrV4, clock: SenderClock) -> HostSide {
        self.listener = Some(Listener::new(local, Framing::Stripped));
        self.listener_clock = clock;
        self
    }

    /// Paces the host's SCP clients with a token bucket each (`None`: unpaced), whatever the
    /// policy (`[host] scp_policy` with `pacing`).
    pub fn with_pacing(mut self, pacing: Option<spinnbed_core::host::TokenBucket>) -> HostSide {
        self.host.set_pacing(pacing);
        self
    }

    /// Changes the machines (a server reloading its configuration): their BMPs get their own
    /// retry settings; batches and sessions under way carry on.
    pub fn set_machines(&mut self, machines: &[(Machine, MachineTiming)]) {
        for (m, t) in machines {
            let mut bmp = self.host.config().bmp;
            bmp.tries = t.bmp_tries.max(1);
            bmp.retry_interval = t.bmp_retry_delay;
            for (_, ip) in m.bmps() {
                self.host.set_bmp_config(ip, bmp);
            }
        }
        self.machines = machines
            .iter()
            .map(|(m, _)| (m.name().to_string(), m.clone()))
            .collect();
    }

    /// One job's SCP traffic so far, including its session and the batch its BMP is working
    /// on, if they are still under way (so that the jobs' shares add up to the run's totals
    /// whenever the run stops).
    pub fn job_scp(&self, job: JobId) -> JobScp {
        let mut j = self.job_scp.get(&job).copied().unwrap_or_default();
        if let Some(s) = self.sessions.get(&job) {
            j.add_delta(&s.mark, &self.client_stats(s.root));
        }
        let mut working = std::collections::BTreeSet::new();
        for b in self.batches.values() {
            // The earliest outstanding batch of each BMP is the one it is working on.
            if working.insert(b.bmp) && b.job == job {
                let mark = self.bmp_marks.get(&b.bmp).copied().unwrap_or_default();
                j.add_delta(&mark, &self.client_stats(self.bmp_addr(b.bmp)));
            }
        }
        j
    }

    fn bmp_addr(&self, bmp: Ipv4Addr) -> SocketAddrV4 {
        SocketAddrV4::new(bmp, self.host.config().scp_port)
    }

    /// Counters of the client for `remote` (zero if it never had one).
    fn client_stats(&self, remote: SocketAddrV4) -> Stats {
        let mut s = self.host.stack().client(remote).map(|c| *c.stats()).unwrap_or_default();
        if let Some(o) = self.flows.as_ref().and_then(|f| f.overlay(remote)) {
            s.merge(o);
        }
        s
    }

    /// Run-level SCP statistics for `summary.json`, with the network's counters if there is a
    /// simulated network.
    pub fn summary(&self, net: Option<NetStats>) -> ScpSummary {
        let mut s = ScpSummary::new(self.counters(), self.transfer_us, net);
        s.transfers = self.flows.as_ref().map(|f| super::FlowSummary {
            calibrations: f.calibrator().models().count() as u64,
            flow: f.flow_transfers,
            packets: f.packet_transfers,
        });
        s
    }

    /// Ends a job's session: its board traffic since the start is the job's; its live output
    /// (if it streamed) is recorded and its consumer unregistered.
    fn close_session(&mut self, job: JobId) {
        if let Some(mut s) = self.sessions.remove(&job) {
            let now = self.client_stats(s.root);
            self.job_scp.entry(job).or_default().add_delta(&s.mark, &now);
            if let Some(live) = s.live.take() {
                if live.started.is_some() && live.stopped.is_none() {
                    // Still streaming (the job was destroyed under its user): what the board has
                    // sent so far is all that counts.
                    self.stopped_streams.push_back((job, *s.root.ip()));
                }
                let (report, received) = self
                    .listener
                    .as_mut()
                    .and_then(|l| l.unregister(live.consumer))
                    .map(|(m, stats)| (m.report(), stats))
                    .unwrap_or_default();
                let entry = self.job_live.entry(job).or_insert(JobLive {
                    board: s.root_board,
                    started: None,
                    stopped: None,
                    sent: None,
                    received,
                    report,
                    failed: false,
                });
                entry.started = live.started;
                entry.stopped = live.stopped;
                entry.sent = entry.sent.or(live.sent);
                entry.received = received;
                entry.report = report;
                entry.failed = live.failed;
            }
        }
    }

    /// One job's live output (`None` if its user did not stream): as recorded when its session
    /// closed, or so far.
    pub fn job_live(&self, job: JobId) -> Option<JobLive> {
        if let Some(j) = self.job_live.get(&job) {
            return Some(*j);
        }
        let s = self.sessions.get(&job)?;
        let live = s.live.as_ref()?;
        let listener = self.listener.as_ref()?;
        Some(JobLive {
            board: s.root_board,
            started: live.started,
            stopped: live.stopped,
            sent: live.sent,
            received: listener.consumer_stats(live.consumer).unwrap_or_default(),
            report: listener.consumer(live.consumer).map(|m| m.report()).unwrap_or_default(),
            failed: live.failed,
        })
    }

    /// The root board of a job whose stream is live (started, not yet stopped).
    pub fn streaming_board(&self, job: JobId) -> Option<Ipv4Addr> {
        let s = self.sessions.get(&job)?;
        let live = s.live.as_ref()?;
        (live.started.is_some() && live.stopped.is_none()).then(|| *s.root.ip())
    }

    /// The next stream that stopped (or whose session closed while streaming): the hardware
    /// reads what the board sent and hands it to [`HostSide::set_live_sent`].
    pub fn poll_stopped_stream(&mut self) -> Option<(JobId, Ipv4Addr)> {
        self.stopped_streams.pop_front()
    }

    /// What a job's board sent, read when its stream stopped.
    pub fn set_live_sent(&mut self, job: JobId, sent: Option<spinnbed_emulator::LiveOutputStats>) {
        if let Some(live) = self.sessions.get_mut(&job).and_then(|s| s.live.as_mut()) {
            live.sent = sent;
        } else if let Some(j) = self.job_live.get_mut(&job) {
            j.sent = sent;
        }
    }

    /// The listener's counters, if the host has one.
    pub fn live_totals(&self) -> Option<LiveTotals> {
        self.listener.as_ref().map(|l| LiveTotals { listener: l.stats() })
    }

    /// The listener's address, if the host has one.
    pub fn listener_addr(&self) -> Option<SocketAddrV4> {
        self.listener.as_ref().map(|l| l.local())
    }

    /// Sends one live-output request for `job`'s root board.
    fn live_request(&mut self, now: Instant, job: JobId, step: LiveStep) {
        let Some(s) = self.sessions.get(&job) else { return };
        let Some(live) = s.live.as_ref() else { return };
        let root = s.root;
        let tag = live.params.tag;
        let words: Vec<u8> = spinnbed_emulator::StreamParams {
            rate: live.params.rate,
            keys_per_packet: live.params.keys_per_packet,
            timestamp: true,
        }
        .to_user_words()
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
        let target = self
            .listener_addr()
            .unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        let request = match step {
            LiveStep::Params => Request::Write {
                addr: spinnbed_emulator::user_register_address(LIVE_CORE, 1),
                access: AccessType::Word,
                data: &words,
            },
            LiveStep::Tag => Request::Iptag(IptagRequest::Set {
                tag,
                config: IptagConfig {
                    flags: IptagFlags::STRIP,
                    ..IptagConfig::forward(*target.ip(), target.port())
                },
            }),
            LiveStep::Start => Request::ApplicationRun {
                app_id: LIVE_APP_ID,
                flags: 0,
                cores: 1 << LIVE_CORE,
            },
            LiveStep::Stop => Request::Signal {
                kind: SignalKind::Multicast,
                data: (SIG_STOP << 16) | (0xFF << 8) | u32::from(LIVE_APP_ID),
                cores: 0xFFFF,
            },
            LiveStep::ClearTag => Request::Iptag(IptagRequest::Clear { tag }),
        };
        let Ok(request) = ScpRequest::new(Address::ROOT_MONITOR, &request) else {
            return;
        };
        let token = self.next_token;
        self.next_token = self.next_token.wrapping_add(1);
        self.live_requests.insert(token, (job, step));
        self.host.submit(now, root, request, token);
    }

    /// A streaming user starts its live output: registers its consumer and sends the first
    /// request.
    fn start_live(&mut self, now: Instant, job: JobId) {
        let clock = self.listener_clock;
        let Some(s) = self.sessions.get_mut(&job) else { return };
        s.phase = Phase::LiveStarting;
        let board = *s.root.ip();
        if let (Some(live), Some(listener)) = (s.live.as_mut(), self.listener.as_mut()) {
            live.consumer = listener.register(Source::Ip(board), StreamMonitor::new(clock));
        }
        self.live_request(now, job, LiveStep::Params);
    }

    /// The outcome of a live-output request.
    fn on_live_outcome(&mut self, now: Instant, job: JobId, step: LiveStep, outcome: Outcome) {
        let Some(s) = self.sessions.get_mut(&job) else { return };
        let board = *s.root.ip();
        let Some(live) = s.live.as_mut() else { return };
        let start = live.params.start;
        if let Err(why) = &outcome {
            live.failed = true;
            if matches!(step, LiveStep::Params | LiveStep::Tag | LiveStep::Start) {
                let why = why.to_string();
                self.fail(job, SessionFailure::LiveOutputFailed(why));
                return;
            }
        }
        match step {
            LiveStep::Params => self.live_request(now, job, LiveStep::Tag),
            LiveStep::Tag => self.live_request(now, job, LiveStep::Start),
            LiveStep::Start => {
                live.started = Some(now);
                match start {
                    LiveStart::Booted => self.write_input(now, job),
                    LiveStart::Running => self.run(job),
                }
            }
            LiveStep::Stop => self.live_request(now, job, LiveStep::ClearTag),
            LiveStep::ClearTag => {
                live.stopped = Some(now);
                self.stopped_streams.push_back((job, board));
                self.read_output(now, job);
            }
        }
    }

    /// The user's application runs from now.
    fn run(&mut self, job: JobId) {
        if let Some(s) = self.sessions.get_mut(&job) {
            s.phase = Phase::Running;
            self.session_events.push_back((job, SessionEvent::Running));
        }
    }

    /// SCP counters so far.
    pub fn counters(&self) -> ScpCounters {
        let mut s = self.host.stats().scp;
        if let Some(f) = &self.flows {
            s.merge(f.total());
        }
        ScpCounters {
            requests: s.requests,
            retries: s.retries,
            timeouts: s.timeouts,
            failures: s.failures,
            bytes: self.user_bytes,
        }
    }

    /// Queues a BMP batch on its BMP's controller.
    pub fn submit(&mut self, now: Instant, batch: BmpBatch) {
        self.batches.insert(batch.id, batch.clone());
        self.host.submit_bmp_batch(now, batch);
    }

    /// The next finished batch.
    pub fn poll_done(&mut self) -> Option<Completion> {
        self.done.pop_front()
    }

    /// The next session progress report.
    pub fn poll_session(&mut self) -> Option<(JobId, SessionEvent)> {
        self.session_events.pop_front()
    }

    fn board_addr(&self, machine: &str, board: Board) -> Option<SocketAddrV4> {
        let m = self.machines.get(machine)?;
        Some(SocketAddrV4::new(m.board_ip(board)?, spinnbed_emulator::SCP_PORT))
    }

    fn on_host_event(&mut self, now: Instant, ev: HostEvent) {
        match ev {
            HostEvent::BatchDone { batch_id, bmp, result } => {
                let now_stats = self.client_stats(self.bmp_addr(bmp));
                let before = self.bmp_marks.insert(bmp, now_stats).unwrap_or_default();
                if let Some(b) = self.batches.remove(&batch_id) {
                    self.job_scp.entry(b.job).or_default().add_delta(&before, &now_stats);
                    self.done.push_back((b, result));
                }
            }
            HostEvent::Boot {
                op,
                event: BootEvent::Done(outcome),
                ..
            } => {
                let Some(job) = self.ops.remove(&op) else { return };
                match outcome {
                    BootOutcome::Booted { .. } => self.after_boot(now, job),
                    BootOutcome::Failed(why) => self.fail(job, SessionFailure::BootFailed(why)),
                }
            }
            HostEvent::Transfer {
                op,
                event: TransferEvent::Done(result),
            } => {
                let Some(job) = self.ops.remove(&op) else { return };
                let resumed = self.resumed.remove(&op);
                match result {
                    Ok(report) => {
                        let (moved_before, started) = resumed.unwrap_or((0, report.started));
                        let took = report.finished.saturating_duration_since(started).as_micros();
                        self.transfer_done(now, job, report.bytes as u64 + moved_before, took);
                    }
                    Err(e) => self.fail(job, SessionFailure::TransferFailed(e)),
                }
            }
            HostEvent::Scp { token, outcome, .. } => {
                if let Some((job, step)) = self.live_requests.remove(&token) {
                    self.on_live_outcome(now, job, step, outcome);
                }
            }
            _ => {}
        }
    }

    /// `job`'s transfer has moved `bytes` in `took` µs: the user goes on.
    fn transfer_done(&mut self, now: Instant, job: JobId, bytes: u64, took: u64) {
        self.user_bytes += bytes;
        self.transfer_us += took;
        let js = self.job_scp.entry(job).or_default();
        js.data_bytes += bytes;
        js.transfer_us += took;
        let Some(s) = self.sessions.get_mut(&job) else { return };
        match s.phase {
            Phase::Writing => {
                let live_now = s.live.as_ref().is_some_and(|l| l.params.start == LiveStart::Running);
                if live_now {
                    self.start_live(now, job);
                } else {
                    self.run(job);
                }
            }
            Phase::Reading => {
                self.close_session(job);
                self.session_events.push_back((job, SessionEvent::Finished));
            }
            _ => {}
        }
    }

    fn fail(&mut self, job: JobId, why: SessionFailure) {
        let board = self.sessions.get(&job).map(|s| s.root_board);
        self.close_session(job);
        self.forget_ops(job);
        self.live_requests.retain(|_, (j, _)| *j != job);
        self.session_events
            .push_back((job, SessionEvent::Failed { why, board }));
    }

    fn after_boot(&mut self, now: Instant, job: JobId) {
        let Some(s) = self.sessions.get(&job) else { return };
        if s.live.as_ref().is_some_and(|l| l.params.start == LiveStart::Booted) {
            self.start_live(now, job);
            return;
        }
        self.write_input(now, job);
    }

    /// Writes the user's input (then runs, or starts live output first).
    fn write_input(&mut self, now: Instant, job: JobId) {
        let Some(s) = self.sessions.get_mut(&job) else { return };
        if s.data_in == 0 {
            let live_now = s.live.as_ref().is_some_and(|l| l.started.is_none());
            if live_now {
                self.start_live(now, job);
            } else {
                self.run(job);
            }
            return;
        }
        s.phase = Phase::Writing;
        let bytes = s.data_in.min(MAX_TRANSFER);
        self.start_transfer(now, job, FlowOp::Write, bytes);
    }

    /// A job's user starts: boot its boards, then write its input.
    pub fn start_session(&mut self, now: Instant, session: Session) {
        let root = session
            .boards
            .iter()
            .min()
            .and_then(|b| Some((*b, self.board_addr(&session.machine, *b)?)));
        let Some((root_board, root)) = root else {
            let why = SessionEvent::Failed {
                why: SessionFailure::NoAddress,
                board: None,
            };
            self.session_events.push_back((session.job, why));
            return;
        };
        let phase = if session.boot { Phase::Booting } else { Phase::Running };
        let s = UserSession {
            machine: session.machine.clone(),
            root,
            root_board,
            boots: session.boot,
            phase,
            data_in: session.data_in,
            data_out: session.data_out,
            mark: self.client_stats(root),
            live: session
                .live
                .filter(|_| session.boot && self.listener.is_some())
                .map(|params| LiveState {
                    params,
                    consumer: ConsumerId(u32::MAX),
                    started: None,
                    stopped: None,
                    sent: None,
                    failed: false,
                }),
        };
        if !session.boot {
            self.sessions.insert(session.job, s);
            self.session_events.push_back((session.job, SessionEvent::Running));
            return;
        }
        let mut cfg = BootConfig::for_policy(&self.policy, self.image.clone());
        cfg.attempts = session.boot_tries.max(1);
        match self.host.start_boot(now, *root.ip(), cfg) {
            Ok(op) => {
                self.ops.insert(op, session.job);
                self.sessions.insert(session.job, s);
            }
            Err(e) => {
                let failed = SessionEvent::Failed {
                    why: SessionFailure::CannotBoot(e.to_string()),
                    board: Some(root_board),
                };
                self.session_events.push_back((session.job, failed));
            }
        }
    }

    /// A job's run is over: stop its live output, if any, then read its results back.
    pub fn finish_session(&mut self, now: Instant, job: JobId) {
        let Some(s) = self.sessions.get_mut(&job) else {
            self.session_events.push_back((job, SessionEvent::Finished));
            return;
        };
        if s.live
            .as_ref()
            .is_some_and(|l| l.started.is_some() && l.stopped.is_none())
        {
            s.phase = Phase::LiveStopping;
            self.live_request(now, job, LiveStep::Stop);
            return;
        }
        self.read_output(now, job);
    }

    /// Reads the user's results back (then the session is over).
    fn read_output(&mut self, now: Instant, job: JobId) {
        let Some(s) = self.sessions.get_mut(&job) else { return };
        if s.data_out == 0 || !s.boots {
            self.close_session(job);
            self.session_events.push_back((job, SessionEvent::Finished));
            return;
        }
        s.phase = Phase::Reading;
        let bytes = s.data_out.min(MAX_TRANSFER);
        self.start_transfer(now, job, FlowOp::Read, bytes);
    }

    /// Forgets `job`'s operations and flow transfer.
    fn forget_ops(&mut self, job: JobId) {
        let ops = &mut self.ops;
        self.resumed.retain(|op, _| ops.get(op) != Some(&job));
        ops.retain(|_, j| *j != job);
        if let Some(f) = self.flows.as_mut() {
            f.cancel(job);
        }
    }

    /// Forgets a job's session (the job was destroyed).
    pub fn end_session(&mut self, job: JobId) {
        self.close_session(job);
        self.forget_ops(job);
        self.live_requests.retain(|_, (j, _)| *j != job);
        self.session_events.retain(|(j, _)| *j != job);
    }
}

/// Deterministic user data.
fn pattern(job: JobId, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(31).wrapping_add(job.0) as u8)
        .collect()
}

impl HostEnd for HostSide {
    fn poll_timeout(&self) -> Option<Instant> {
        let host = self.host.poll_timeout();
        match self.flows.as_ref().and_then(|f| f.next_due()) {
            Some(f) => Some(host.map_or(f, |h| h.min(f))),
            None => host,
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.flows.is_none() || self.host.poll_timeout().is_some_and(|t| t <= now) {
            self.host.handle_timeout(now);
        }
        while let Some((job, x)) = self.flows.as_mut().and_then(|f| f.pop_due(now)) {
            self.flowed.push_back(*x.root.ip());
            let took = x.ends.saturating_duration_since(x.started).as_micros();
            self.transfer_done(now, job, x.offset + x.bytes, took);
        }
    }

    fn handle_datagram(&mut self, now: Instant, d: &Datagram) {
        match self.listener.as_mut() {
            Some(l) if d.dst == l.local() => {
                l.handle_datagram(now, d);
            }
            _ => self.host.handle_datagram(now, d),
        }
    }

    fn poll_transmit(&mut self) -> Option<Datagram> {
        self.host.poll_transmit()
    }

    /// Acts on everything the host reported; returns whether there was anything.
    fn process(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Some(ev) = self.host.poll_event() {
            self.on_host_event(now, ev);
            any = true;
        }
        any
    }
}
