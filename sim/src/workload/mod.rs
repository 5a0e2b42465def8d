//! Workloads: the jobs a simulated run submits.
//!
//! Every source — the synthetic generator, a replay-CSV trace, a Standard Workload Format log —
//! produces the same thing: a list of [`WorkloadJob`]s in submission order. The engine does not
//! care where they came from.
//!
//! - [`synthetic`]: seeded jobs with daily and weekly arrival cycles, a size mix, duration
//!   distributions and user behaviour (keepalives, data volumes).
//! - [`swf`]: the Parallel Workloads Archive's Standard Workload Format, mapped to boards.
//! - [`trace`]: the replay CSV of `sim replay`.

pub mod swf;
pub mod synthetic;
pub mod trace;

use spinnbed_core::alloc::Request;
use spinnbed_core::time::{Duration, Instant};

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
    /// Bytes the user writes to the boards before running.
    pub data_in: u64,
    /// Bytes the user reads back after running.
    pub data_out: u64,
}

/// A workload source failed (the message names the file, line and field where it can).
pub type WorkloadError = crate::input::InputError;
