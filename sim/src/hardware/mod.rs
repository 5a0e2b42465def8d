//! The hardware seam of a simulated run.
//!
//! The service asks for BMP work ([`BmpBatch`]es); a [`Hardware`] carries it out and reports
//! completions. The engine only ever talks to this trait, so the packet-level emulator (SCP over
//! a simulated network) and the real-UDP driver plug in without touching it.
//!
//! Implementations: [`FixedDelays`] ([`fixed`]): BMP batches take fixed times; [`PacketHardware`]
//! ([`packet`]): the [`HostSide`] ([`host_side`]) speaking SCP and the boot protocol over the
//! simulated network to the emulated machine. [`faults`] strikes and heals scenario faults on
//! an emulated machine.

pub mod faults;
pub mod fixed;
pub mod host_side;
pub mod packet;

pub use fixed::FixedDelays;
pub use host_side::HostSide;
pub use packet::PacketHardware;

use spinnbed_core::service::BmpBatch;
use spinnbed_core::time::{Duration, Instant};

/// How long BMP operations take on one machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BmpTiming {
    /// Powering boards on and loading their FPGAs.
    pub power_on: Duration,
    /// Powering boards off.
    pub power_off: Duration,
    /// One FPGA register write (a link STOP bit).
    pub link_write: Duration,
}

impl Default for BmpTiming {
    fn default() -> BmpTiming {
        BmpTiming {
            power_on: Duration::from_secs(5),
            power_off: Duration::from_secs(1),
            link_write: Duration::from_millis(10),
        }
    }
}

/// A completed batch and its outcome (`Err` carries the failure text).
pub type Completion = (BmpBatch, Result<(), String>);

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
    pub job: spinnbed_core::sched::JobId,
    /// Machine name.
    pub machine: String,
    /// The job's boards (sorted).
    pub boards: Vec<spinnbed_core::geometry::Board>,
    /// Boot the boards before use.
    pub boot: bool,
    /// How many times to try booting before giving up.
    pub boot_tries: u32,
    /// Bytes to write before running.
    pub data_in: u64,
    /// Bytes to read back after running.
    pub data_out: u64,
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
        why: String,
        /// The board that did not answer (the one the user booted and talked to), if known.
        board: Option<spinnbed_core::geometry::Board>,
    },
}

/// Carries out BMP batches in simulated time.
pub trait Hardware {
    /// A short name for summaries ("fixed-delay", "emulator").
    fn name(&self) -> &'static str;
    /// The service asked for `batch` at `now`.
    fn submit(&mut self, now: Instant, batch: BmpBatch);
    /// When the hardware next needs [`Hardware::handle_timeout`].
    fn poll_timeout(&self) -> Option<Instant>;
    /// Time has reached `now`.
    fn handle_timeout(&mut self, now: Instant);
    /// The next completed batch.
    fn poll_done(&mut self) -> Option<Completion>;
    /// A job is ready: its user boots its boards and writes its input.
    fn start_session(&mut self, now: Instant, session: Session);
    /// The job's run is over: its user reads the results back.
    fn finish_session(&mut self, now: Instant, job: spinnbed_core::sched::JobId);
    /// Forget a session (the job was destroyed under the user).
    fn end_session(&mut self, job: spinnbed_core::sched::JobId);
    /// The next session progress report.
    fn poll_session(&mut self) -> Option<(spinnbed_core::sched::JobId, SessionEvent)>;
    /// SCP statistics, if this hardware speaks SCP (packet-level runs).
    fn scp_stats(&self) -> Option<serde_json::Value> {
        None
    }
    /// Running SCP counters, if this hardware speaks SCP.
    fn counters(&self) -> Option<ScpCounters> {
        None
    }
    /// One job's SCP traffic so far, if this hardware speaks SCP.
    fn job_scp(&self, _job: spinnbed_core::sched::JobId) -> Option<JobScp> {
        None
    }
    /// A scheduled fault strikes (`on`) or heals.
    fn apply_fault(&mut self, now: Instant, kind: &crate::scenario::FaultKind, on: bool);
}
