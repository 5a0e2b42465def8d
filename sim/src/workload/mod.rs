//! Workloads: the jobs a simulated run submits.
//!
//! Every source — the synthetic generator, a replay-CSV trace, a Standard Workload Format log,
//! a spalloc server's job log or journal — produces the same thing: a list of [`WorkloadJob`]s
//! in submission order. The engine does not care where they came from.
//!
//! - [`synthetic`]: seeded jobs with daily and weekly arrival cycles, a size mix, duration
//!   distributions and user behaviour (keepalives, data volumes).
//! - [`swf`]: the Parallel Workloads Archive's Standard Workload Format, mapped to boards.
//! - [`trace`]: the replay CSV of `sim replay`.
//! - [`spalloc_log`]: the reference spalloc server's `spalloc_jobs.log` (also written by
//!   `sim serve`): what its users asked for and when, job ids inferred.
//! - [`journal`]: the journal of `sim serve`, replayed exactly: every job's life and the BMP
//!   timing the live server saw.

pub mod journal;
pub mod spalloc_log;
pub mod swf;
pub mod synthetic;
pub mod trace;
pub mod tracegen;

use spinnbed_core::alloc::Request;
use spinnbed_core::time::{Duration, Instant};
use std::fmt;

/// One job of a workload.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadJob {
    /// Id, unique within the workload (1, 2, … for generated workloads).
    pub id: u64,
    /// When the user submits it (from the start of the run).
    pub submit: Instant,
    /// The owner's name.
    pub owner: String,
    /// Size class label for reports (e.g. "1 board", "2-24 boards", "rect"); the generator's
    /// mix class name, or a class derived from the request for traces.
    pub class: String,
    /// What it asks for.
    pub request: Request,
    /// Run on this machine only.
    pub machine: Option<String>,
    /// Run only on machines with these tags.
    pub tags: Option<Vec<String>>,
    /// How long the user uses the boards once they are ready, before destroying the job.
    pub runtime: Duration,
    /// The runtime the user declares (for backfilling); `None` if unknown.
    pub estimate: Option<Duration>,
    /// Keepalive period requested (`None`: the job never times out).
    pub keepalive: Option<Duration>,
    /// If set, the user's client dies this long after the job is created and stops sending
    /// keepalives (the service should then time the job out).
    pub lapse_after: Option<Duration>,
    /// If set, the user's last keepalive goes this long after the job is created (a recorded
    /// job that timed out: it times out one keepalive period later); overrides `lapse_after`.
    pub last_keepalive: Option<Duration>,
    /// If set, the user gives up this long after submission if the job has not been allocated
    /// by then, and destroys it (a recorded job destroyed while queued).
    pub cancel_after: Option<Duration>,
    /// Bytes the user writes to the boards before running.
    pub data_in: u64,
    /// Bytes the user reads back after running.
    pub data_out: u64,
}

/// A workload source failed (the message names the file, line and field where it can).
pub type WorkloadError = crate::input::InputError;

/// What building a workload did: how many jobs, what it skipped and why.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkloadReport {
    /// `synthetic`, `trace`, `swf`, `spalloc-log` or `journal`.
    pub source: &'static str,
    /// Jobs produced.
    pub jobs: usize,
    /// `(reason, count)` of dropped records, in a fixed order, zero counts left out.
    pub skipped: Vec<(String, u64)>,
    /// Facts worth printing (e.g. the processors-per-board mapping of an SWF log).
    pub notes: Vec<String>,
    /// The offered-load factor applied (`[workload] load_scale`), when it is not 1; shown in
    /// the report's line.
    pub load_scale: Option<f64>,
    /// BMP timing recorded by a live server (journal workloads), for
    /// [`crate::run::RunSpec::recorded_bmp`].
    pub recorded_bmp: crate::hardware::fixed::RecordedBmp,
}

impl WorkloadReport {
    /// An empty report for a source.
    pub fn new(source: &'static str) -> WorkloadReport {
        WorkloadReport {
            source,
            ..WorkloadReport::default()
        }
    }
    /// Records `n` records dropped for `reason` (nothing if `n` is 0).
    pub fn skip(&mut self, reason: &str, n: u64) {
        if n > 0 {
            self.skipped.push((reason.to_string(), n));
        }
    }
    /// Records dropped in total.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.iter().map(|(_, n)| n).sum()
    }
}

impl fmt::Display for WorkloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} jobs from the {} workload", self.jobs, self.source)?;
        if let Some(scale) = self.load_scale {
            write!(f, " at {scale}x the offered load (load_scale)")?;
        }
        if !self.skipped.is_empty() {
            let parts: Vec<String> = self.skipped.iter().map(|(r, n)| format!("{n} {r}")).collect();
            write!(f, "; skipped {} jobs: {}", self.skipped_total(), parts.join(", "))?;
        }
        Ok(())
    }
}
