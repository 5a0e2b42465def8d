//! The hardware seam: the service asks for BMP work ([`BmpBatch`]es) and users start sessions
//! on their boards; a [`Hardware`] carries them out and reports completions. The world only
//! ever talks to this trait.
//!
//! Implementations:
//! - [`FixedDelays`] ([`fixed`]): each BMP works through its batches in order, each taking the
//!   machine's [`MachineTiming`](spinnbed_core::timing::MachineTiming); sessions take no time.
//! - [`HostHardware`] ([`transport`]): the [`HostSide`] ([`host_side`]) — the core's host
//!   speaking SCP and the boot protocol — over a [`Transport`]. In simulated runs the transport
//!   is a [`SimulatedMachine`] ([`machine`]: the simulated network and the emulated machine,
//!   with the scenario's faults from [`faults`]); `spinnbed-realtime` plugs in a UDP socket.
//!   [`transport::settle`] is the one loop that moves datagrams between a host and a
//!   transport until both are quiet.

pub mod bench;
pub mod faults;
pub mod fixed;
pub mod flow;
pub mod host_side;
pub mod machine;
pub mod transport;

pub use fixed::FixedDelays;
pub use host_side::HostSide;
pub use machine::SimulatedMachine;
pub use transport::{HostEnd, HostHardware, Transport};

use crate::netsim::NetStats;
use crate::scenario::FaultKind;
use spinnbed_core::geometry::Board;
use spinnbed_core::reason::BmpFailure;
use spinnbed_core::sched::JobId;
use spinnbed_core::service::BmpBatch;
use spinnbed_core::time::Instant;

/// Packet-level hardware of simulated runs: the host side over the simulated network to the
/// emulated machine.
pub type PacketHardware = HostHardware<SimulatedMachine>;

/// A completed batch and how it went.
pub type Completion = (BmpBatch, Result<(), BmpFailure>);

/// SCP counters of packet-level hardware, for `summary.json` and `scp.csv`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScpCounters {
    /// Requests submitted.
    pub requests: u64,
    /// Resends (timeouts and retry codes).
    pub retries: u64,
    /// Receive timeouts.
    pub timeouts: u64,
    /// Requests that failed after all retries.
    pub failures: u64,
    /// Payload bytes the users moved (input written plus results read).
    pub bytes: u64,
}

/// `summary.json` `scp`: a packet-level run's SCP traffic (keys in alphabetical order).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct ScpSummary {
    /// Payload bytes the users moved (input written plus results read).
    pub bytes: u64,
    /// Datagrams the simulated network carried (simulated runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datagrams: Option<u64>,
    /// Requests that failed after all retries.
    pub failures: u64,
    /// The users' transfer goodput, Mbit/s (3 decimals).
    pub goodput_mbps: f64,
    /// Datagrams the simulated network lost (simulated runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    /// Requests submitted.
    pub requests: u64,
    /// Resends.
    pub retries: u64,
    /// Receive timeouts.
    pub timeouts: u64,
    /// Flow-level transfers (`[host] transfers = "flow"` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfers: Option<FlowSummary>,
}

/// `summary.json` `scp.transfers` of a flow run: how its users' transfers were simulated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FlowSummary {
    /// Calibrations made (distinct path, SC&MP settings and direction).
    pub calibrations: u64,
    /// Transfers done as flows.
    pub flow: u64,
    /// Transfers (or the rest of a flow a fault cut short) moved packet by packet.
    pub packets: u64,
}

/// One job's SCP traffic in a packet-level run: its BMP batches (power on, FPGA checks, link
/// STOP bits, power off) and its user's session (boot probes and polls, data transfers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct JobScp {
    /// SCP requests.
    pub requests: u64,
    /// Resends.
    pub retries: u64,
    /// Timeouts.
    pub timeouts: u64,
    /// Requests that failed after all retries.
    pub failures: u64,
    /// SCP bytes on the wire (UDP payloads sent and received).
    pub bytes: u64,
    /// User data moved (input written plus results read).
    pub data_bytes: u64,
    /// Time spent in those transfers, µs.
    pub transfer_us: u64,
}

impl JobScp {
    /// Adds what a client's counters grew by between `before` and `after`.
    pub fn add_delta(&mut self, before: &spinnbed_core::host::Stats, after: &spinnbed_core::host::Stats) {
        self.requests += after.requests.saturating_sub(before.requests);
        self.retries += after.retries.saturating_sub(before.retries);
        self.timeouts += after.timeouts.saturating_sub(before.timeouts);
        self.failures += after.failures.saturating_sub(before.failures);
        self.bytes +=
            (after.bytes_sent + after.bytes_received).saturating_sub(before.bytes_sent + before.bytes_received);
    }

    /// Goodput of the user's transfers in Mbit/s (0 without transfers).
    pub fn goodput_mbps(&self) -> f64 {
        if self.transfer_us == 0 {
            0.0
        } else {
            self.data_bytes as f64 * 8.0 / self.transfer_us as f64
        }
    }
}

/// What a job's user does with its boards once the service says they are ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The service's job id.
    pub job: JobId,
    /// Machine name.
    pub machine: String,
    /// The job's boards (sorted).
    pub boards: Vec<Board>,
    /// Boot the boards before use.
    pub boot: bool,
    /// How many times to try booting before giving up.
    pub boot_tries: u32,
    /// Bytes to write before running.
    pub data_in: u64,
    /// Bytes to read back after running.
    pub data_out: u64,
    /// The user's application streams live output to the host.
    pub live: Option<LiveSession>,
}

/// How a streaming user's application streams (from `[host.live_output]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveSession {
    /// Datagrams per second.
    pub rate: u32,
    /// Events per datagram.
    pub keys_per_packet: u8,
    /// When the stream starts.
    pub start: crate::scenario::LiveStart,
    /// The IP tag it goes through.
    pub tag: u8,
}

/// One job's live output: what its board sent (simulation only) and what the host's listener
/// made of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLive {
    /// The board that streamed (the job's root board).
    pub board: Board,
    /// When the application was started (its start acknowledged).
    pub started: Option<Instant>,
    /// When it was stopped (the stop acknowledged).
    pub stopped: Option<Instant>,
    /// What the board sent, where the transport can tell (the emulator in simulated runs).
    pub sent: Option<spinnbed_emulator::LiveOutputStats>,
    /// What the listener received from the board.
    pub received: spinnbed_core::host::ConsumerStats,
    /// Delivered, duplicated and dropped events, latency.
    pub report: spinnbed_core::host::StreamReport,
    /// Setting the stream up or stopping it failed.
    pub failed: bool,
}

impl JobLive {
    /// Events lost: what the board sent and the listener never got where the sent count is
    /// known, else the gaps the listener saw.
    pub fn dropped(&self) -> u64 {
        match self.sent {
            Some(s) => s.events.saturating_sub(self.report.delivered),
            None => self.report.dropped,
        }
    }
}

/// The listener's own counters in a packet-level run with live output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveTotals {
    /// What the listener received.
    pub listener: spinnbed_core::host::ListenerStats,
}

/// Why a user gave up on its boards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionFailure {
    /// The job's boards have no address to talk to.
    NoAddress,
    /// The boot could not even start (a bad image).
    CannotBoot(String),
    /// The boards did not boot.
    BootFailed(String),
    /// Writing the input or reading the results failed.
    TransferFailed(String),
    /// Setting up live output (user registers, IP tag, application start) failed.
    LiveOutputFailed(String),
}

impl std::fmt::Display for SessionFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionFailure::NoAddress => f.write_str("no address for the job's boards"),
            SessionFailure::CannotBoot(e) => write!(f, "cannot boot: {e}"),
            SessionFailure::BootFailed(why) => write!(f, "boot failed: {why}"),
            SessionFailure::TransferFailed(e) => write!(f, "data transfer failed: {e}"),
            SessionFailure::LiveOutputFailed(e) => write!(f, "live output setup failed: {e}"),
        }
    }
}

/// Progress of a user session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Booted and loaded: the application runs from now.
    Running,
    /// Results read back: the user destroys the job.
    Finished,
    /// The user gives up (boot or transfer failure, after retries).
    Failed {
        /// What went wrong.
        why: SessionFailure,
        /// The board that did not answer (the one the user booted and talked to), if known.
        board: Option<Board>,
    },
}

/// Carries out BMP batches and users' sessions.
pub trait Hardware {
    /// A short name for summaries ("fixed-delay", "emulator", "udp").
    fn name(&self) -> &'static str;
    /// The service asked for `batch` at `now`.
    fn submit(&mut self, now: Instant, batch: BmpBatch);
    /// The service made a workload job (`workload_id` is [`crate::workload::WorkloadJob::id`]):
    /// hardware replaying recorded timing needs to know which job is which.
    fn job_created(&mut self, _job: JobId, _workload_id: u64) {}
    /// When the hardware next needs [`Hardware::handle_timeout`].
    fn poll_timeout(&self) -> Option<Instant>;
    /// Time has reached `now`.
    fn handle_timeout(&mut self, now: Instant);
    /// The next completed batch.
    fn poll_done(&mut self) -> Option<Completion>;
    /// A job is ready: its user boots its boards and writes its input.
    fn start_session(&mut self, now: Instant, session: Session);
    /// The job's run is over: its user reads the results back.
    fn finish_session(&mut self, now: Instant, job: JobId);
    /// Forget a session (the job was destroyed under the user).
    fn end_session(&mut self, job: JobId);
    /// The next session progress report.
    fn poll_session(&mut self) -> Option<(JobId, SessionEvent)>;
    /// The run's SCP traffic, if this hardware speaks SCP.
    fn scp_summary(&self) -> Option<ScpSummary> {
        None
    }
    /// Running SCP counters, if this hardware speaks SCP.
    fn counters(&self) -> Option<ScpCounters> {
        None
    }
    /// One job's SCP traffic so far (including batches and sessions still under way), if this
    /// hardware speaks SCP.
    fn job_scp(&self, _job: JobId) -> Option<JobScp> {
        None
    }
    /// A scheduled fault strikes (`on`) or heals.
    fn apply_fault(&mut self, now: Instant, kind: &FaultKind, on: bool);
    /// One job's live output, if its user streamed.
    fn job_live(&self, _job: JobId) -> Option<JobLive> {
        None
    }
    /// The live-output listener's counters, if this hardware has one.
    fn live_totals(&self) -> Option<LiveTotals> {
        None
    }
}

/// Rounds to 3 decimals.
fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl ScpSummary {
    /// From the host side's counters and, in simulated runs, the network's.
    pub fn new(c: ScpCounters, transfer_us: u64, net: Option<NetStats>) -> ScpSummary {
        let goodput = if transfer_us == 0 {
            0.0
        } else {
            c.bytes as f64 * 8.0 / transfer_us as f64
        };
        ScpSummary {
            bytes: c.bytes,
            datagrams: net.map(|n| n.sent),
            failures: c.failures,
            goodput_mbps: r3(goodput),
            lost: net.map(|n| n.lost),
            requests: c.requests,
            retries: c.retries,
            transfers: None,
            timeouts: c.timeouts,
        }
    }
}
