//! The hardware seam of a simulated run.
//!
//! The service asks for BMP work ([`BmpBatch`]es); a [`Hardware`] carries it out and reports
//! completions. The engine only ever talks to this trait, so the packet-level emulator (SCP over
//! a simulated network) and the real-UDP driver plug in without touching it.
//!
//! [`FixedDelays`] is the simplest hardware: each BMP works through its batches one at a time,
//! in order, and a batch takes the configured power-on, link-write and power-off times.

use spinnbed_core::geometry::FrameId;
use spinnbed_core::service::BmpBatch;
use spinnbed_core::time::{Duration, Instant};
use std::collections::{BTreeMap, VecDeque};

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

#[derive(Debug, Default)]
struct Bmp {
    queue: VecDeque<BmpBatch>,
    busy: Option<(Instant, BmpBatch)>,
    /// Silent-BMP faults under way (overlapping faults heal when the last one does).
    silent: u32,
}

/// How long the reference takes to give up on a silent BMP: two tries of a power-on that
/// times out (10 s each), 15 s apart.
const SILENT_BMP_FAILURE: Duration = Duration::from_secs(35);

/// Hardware whose BMPs take fixed times (per machine) and never fail; user sessions take no
/// time (boards are usable as soon as they are ready).
#[derive(Debug, Default)]
pub struct FixedDelays {
    timing: BTreeMap<String, BmpTiming>,
    bmps: BTreeMap<(String, FrameId), Bmp>,
    done: VecDeque<Completion>,
    sessions: VecDeque<(spinnbed_core::sched::JobId, SessionEvent)>,
}

impl FixedDelays {
    /// Hardware with the given timing per machine name (unknown machines use the default).
    pub fn new(timing: impl IntoIterator<Item = (String, BmpTiming)>) -> FixedDelays {
        FixedDelays {
            timing: timing.into_iter().collect(),
            bmps: BTreeMap::new(),
            done: VecDeque::new(),
            sessions: VecDeque::new(),
        }
    }

    fn duration(&self, b: &BmpBatch) -> Duration {
        let t = self.timing.get(&b.machine).copied().unwrap_or_default();
        let mut d = Duration::ZERO;
        if !b.power_on.is_empty() {
            d = d + t.power_on;
        }
        d = d + t.link_write.saturating_mul(b.links.len() as u64);
        if !b.power_off.is_empty() {
            d = d + t.power_off;
        }
        d
    }

    fn start_next(&mut self, key: &(String, FrameId), now: Instant) {
        let Some(bmp) = self.bmps.get(key) else { return };
        if bmp.busy.is_some() {
            return;
        }
        let Some(next) = bmp.queue.front() else { return };
        let at = now
            + if bmp.silent > 0 {
                SILENT_BMP_FAILURE
            } else {
                self.duration(next)
            };
        let bmp = self.bmps.get_mut(key).expect("present");
        let b = bmp.queue.pop_front().expect("present");
        bmp.busy = Some((at, b));
    }
}

impl Hardware for FixedDelays {
    fn name(&self) -> &'static str {
        "fixed-delay"
    }

    fn submit(&mut self, now: Instant, batch: BmpBatch) {
        let key = (batch.machine.clone(), batch.frame);
        self.bmps.entry(key.clone()).or_default().queue.push_back(batch);
        self.start_next(&key, now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.bmps
            .values()
            .filter_map(|b| b.busy.as_ref().map(|(t, _)| *t))
            .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<(String, FrameId)> = self
            .bmps
            .iter()
            .filter(|(_, b)| b.busy.as_ref().is_some_and(|(t, _)| *t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let bmp = self.bmps.get_mut(&key).expect("due");
            let silent = bmp.silent > 0;
            let (_, batch) = bmp.busy.take().expect("due");
            let result = if silent {
                Err(format!("Requests failed on BMP {}", batch.bmp))
            } else {
                Ok(())
            };
            self.done.push_back((batch, result));
            self.start_next(&key, now);
        }
    }

    fn poll_done(&mut self) -> Option<Completion> {
        self.done.pop_front()
    }

    fn start_session(&mut self, _now: Instant, session: Session) {
        self.sessions.push_back((session.job, SessionEvent::Running));
    }

    fn finish_session(&mut self, _now: Instant, job: spinnbed_core::sched::JobId) {
        self.sessions.push_back((job, SessionEvent::Finished));
    }

    fn end_session(&mut self, job: spinnbed_core::sched::JobId) {
        self.sessions.retain(|(j, _)| *j != job);
    }

    /// Only a silent BMP affects fixed-delay hardware (its batches fail as the reference's
    /// would); the other faults need packet-level hardware.
    fn apply_fault(&mut self, _now: Instant, kind: &crate::scenario::FaultKind, on: bool) {
        if let crate::scenario::FaultKind::BmpSilent { machine, frame } = kind {
            let bmp = self.bmps.entry((machine.clone(), *frame)).or_default();
            bmp.silent = if on {
                bmp.silent + 1
            } else {
                bmp.silent.saturating_sub(1)
            };
        }
    }

    fn poll_session(&mut self) -> Option<(spinnbed_core::sched::JobId, SessionEvent)> {
        self.sessions.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spinnbed_core::geometry::Link;

    fn batch(id: u64, on: Vec<u16>, links: usize, off: Vec<u16>) -> BmpBatch {
        BmpBatch {
            id,
            job: 1,
            machine: "m".into(),
            frame: FrameId { cabinet: 0, frame: 0 },
            bmp: std::net::Ipv4Addr::new(10, 0, 0, 0),
            power_on: on,
            power_off: off,
            links: (0..links).map(|i| (i as u16, Link::East, false)).collect(),
        }
    }

    #[test]
    fn a_bmp_works_through_its_batches_in_order() {
        let mut h = FixedDelays::new([("m".to_string(), BmpTiming::default())]);
        h.submit(Instant::ZERO, batch(1, vec![0, 1], 12, vec![]));
        h.submit(Instant::ZERO, batch(2, vec![], 0, vec![0, 1]));
        assert_eq!(h.poll_timeout(), Some(Instant::from_millis(5_120)));
        h.handle_timeout(Instant::from_millis(5_119));
        assert!(h.poll_done().is_none());
        h.handle_timeout(Instant::from_millis(5_120));
        assert_eq!(h.poll_done().map(|(b, r)| (b.id, r)), Some((1, Ok(()))));
        assert_eq!(h.poll_timeout(), Some(Instant::from_millis(6_120)));
        h.handle_timeout(Instant::from_secs(7));
        assert_eq!(h.poll_done().map(|(b, _)| b.id), Some(2));
        assert_eq!(h.poll_timeout(), None);
    }
}
