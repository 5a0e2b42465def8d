//! How much memory a scenario's run needs, estimated before running it, so that a scenario that
//! would exhaust memory is refused with a message instead of aborting the process part-way.
//!
//! The costs per item were measured on simulated runs (peak resident memory against the number
//! of samples, jobs and boards): about 215 bytes per timeline sample (and 590 more when the
//! report is written, whose charts hold every sample), 1.4 KB per job, 0.8 KB per board
//! position and 7 KB per machine, 8 bytes per hour of horizon for the arrival table of a
//! synthetic `jobs` workload, and 16 MB for the simulator itself. The budget is the caller's
//! (the command line reads the machine's available memory): this module reads nothing.

use super::{Experiment, Scenario, WorkloadConfig};
use crate::input::InputError;
use crate::quantity::units::{format_bytes, format_duration};
use crate::workload::synthetic::{Arrivals, Profile};
use spinnbed_core::time::Duration;

/// The simulator itself.
pub const BASE_BYTES: u64 = 16_000_000;
/// One timeline sample.
pub const SAMPLE_BYTES: u64 = 215;
/// One timeline sample more when the report is written.
pub const SAMPLE_REPORT_BYTES: u64 = 590;
/// One job.
pub const JOB_BYTES: u64 = 1_400;
/// One board position of a machine.
pub const BOARD_POSITION_BYTES: u64 = 800;
/// One machine.
pub const MACHINE_BYTES: u64 = 7_000;
/// One hour of the horizon in the arrival table of a synthetic `jobs` workload.
pub const ARRIVAL_HOUR_BYTES: u64 = 8;

const HOUR_US: u64 = 3_600_000_000;

/// Where a scenario's jobs come from, as far as counting them goes.
#[derive(Debug, Clone, PartialEq)]
enum JobsFrom {
    /// A study: no jobs.
    Nothing,
    /// `jobs = n`.
    Count,
    /// `rate_per_hour = r` (the count is the expected one).
    Rate(f64),
    /// A trace, an SWF log, a job log or a journal: known once read
    /// ([`MemoryEstimate::with_jobs`]).
    File(&'static str),
}

/// What a scenario's run needs: the counts of what costs memory.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryEstimate {
    file: String,
    /// The key to blame for the samples: `run.sample_period`, or `run.horizon` when the
    /// period is the default.
    samples_key: &'static str,
    /// The scenario's text, to find the line of the key a message names (only then: finding a
    /// line is a walk of the text, too slow to do for every machine of a large scenario).
    source: std::sync::Arc<str>,
    horizon: Duration,
    sample_period: Duration,
    drain_limit: Duration,
    /// Timeline samples of a run that ends at the horizon (horizon / sample_period + 2).
    pub samples: u64,
    /// Timeline samples of a run whose jobs last until the drain limit.
    pub samples_at_most: u64,
    /// Whether the report is written (the default for `sim run`).
    pub report: bool,
    /// Jobs (0 for a workload read from a file until [`MemoryEstimate::with_jobs`]).
    pub jobs: u64,
    jobs_from: JobsFrom,
    /// `(width, height, board positions)` of each machine.
    pub machines: Vec<(u16, u16, u64)>,
    /// Hours in the arrival table of a synthetic `jobs` workload.
    pub arrival_hours: u64,
    /// Bytes one study transfer holds (on the host and in the emulated board).
    pub study_bytes: u64,
}

/// One part of an estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryTerm {
    /// The scenario key that sets it (`None`: the simulator itself).
    pub key: Option<String>,
    /// That key's line in the scenario file (found for [`MemoryEstimate::largest`] only).
    pub line: Option<usize>,
    /// Bytes.
    pub bytes: u64,
    /// What it is: `"1s" over the 364d horizon is 31449602 samples`.
    pub what: String,
    /// What to change to need less.
    pub advice: String,
}

/// A byte count for people: `6.8 GB`, `17 MB`.
pub fn approx_bytes(b: u64) -> String {
    let v = b as f64;
    if v >= 1e12 {
        format!("{:.1} TB", v / 1e12)
    } else if v >= 1e9 {
        format!("{:.1} GB", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.0} MB", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0} KB", v / 1e3)
    } else {
        format!("{b} B")
    }
}

impl Scenario {
    /// What a simulated run of this scenario needs in memory, with the report written (see
    /// [`MemoryEstimate::without_report`]); for a workload read from a file the jobs are
    /// counted once read ([`MemoryEstimate::with_jobs`]).
    pub fn memory_estimate(&self) -> MemoryEstimate {
        let r = &self.run;
        let per = r.sample_period.0.max(1);
        let samples = (r.horizon.0 / per).saturating_add(2);
        let samples_at_most = ((r.horizon + r.drain_limit).0 / per).saturating_add(2);
        let loc = super::locate::Locator::new(&self.source.0);
        // The samples are the sample period's doing if it is written, else the horizon's.
        let samples_key = if loc.has("run.sample_period") {
            "run.sample_period"
        } else {
            "run.horizon"
        };
        let study = matches!(self.experiment, Experiment::Study(_));
        let (jobs, jobs_from, arrival_hours, study_bytes, machines) = match &self.experiment {
            Experiment::Study(st) => (0, JobsFrom::Nothing, 0, st.bytes, Vec::new()),
            Experiment::Workload(w) => {
                let machines = self
                    .machines
                    .iter()
                    .map(|m| {
                        let (w, h) = (m.machine.width(), m.machine.height());
                        (w, h, w as u64 * h as u64 * 3)
                    })
                    .collect();
                let (jobs, from, hours) = match w {
                    WorkloadConfig::Synthetic(spec) => match spec.scaled_arrivals() {
                        Arrivals::Jobs(n) => (n, JobsFrom::Count, r.horizon.0.div_ceil(HOUR_US)),
                        Arrivals::RatePerHour(rate) => {
                            let mean =
                                Profile::new(&spec.daily, &spec.weekly).map_or(0.0, |p| p.mean_over(&r.calendar()));
                            // `as` saturates (and maps NaN to 0).
                            let n = (rate * r.horizon.as_secs_f64() / 3600.0 * mean).ceil() as u64;
                            (n, JobsFrom::Rate(rate), 0)
                        }
                    },
                    WorkloadConfig::Trace(_) => (0, JobsFrom::File("trace"), 0),
                    WorkloadConfig::Swf(_) => (0, JobsFrom::File("SWF log"), 0),
                    WorkloadConfig::SpallocLog(_) => (0, JobsFrom::File("job log"), 0),
                    WorkloadConfig::Journal(_) => (0, JobsFrom::File("journal"), 0),
                };
                (jobs, from, hours, 0, machines)
            }
        };
        MemoryEstimate {
            samples_key,
            file: self.file.display().to_string(),
            source: self.source.0.clone(),
            horizon: r.horizon,
            sample_period: r.sample_period,
            drain_limit: r.drain_limit,
            // A study measures transfers: no timeline.
            samples: if study { 0 } else { samples },
            samples_at_most: if study { 0 } else { samples_at_most },
            report: true,
            jobs,
            jobs_from,
            machines,
            arrival_hours,
            study_bytes,
        }
    }
}

impl MemoryEstimate {
    /// The same run without the report (`sim run --no-report`).
    pub fn without_report(mut self) -> MemoryEstimate {
        self.report = false;
        self
    }

    /// With the workload's actual number of jobs (once built: the jobs read from a file, or
    /// the jobs a rate produced).
    pub fn with_jobs(mut self, jobs: usize) -> MemoryEstimate {
        self.jobs = jobs as u64;
        self
    }

    fn line(&self, key: &str) -> Option<usize> {
        super::locate::Locator::new(&self.source).line(key)
    }

    fn term(&self, key: &str, bytes: u64, what: String, advice: &str) -> MemoryTerm {
        MemoryTerm {
            key: Some(key.to_string()),
            line: None,
            bytes,
            what,
            advice: advice.to_string(),
        }
    }

    /// Every part of the estimate, the simulator itself first.
    pub fn terms(&self) -> Vec<MemoryTerm> {
        let mut out = vec![MemoryTerm {
            key: None,
            line: None,
            bytes: BASE_BYTES,
            what: "the simulator itself".into(),
            advice: "there is too little memory to run anything".into(),
        }];
        let horizon = format_duration(self.horizon);
        if self.samples > 0 {
            let each = SAMPLE_BYTES + if self.report { SAMPLE_REPORT_BYTES } else { 0 };
            out.push(self.term(
                self.samples_key,
                self.samples.saturating_mul(each),
                format!(
                    "\"{}\" over the {horizon} horizon is {} samples",
                    format_duration(self.sample_period),
                    self.samples
                ),
                "use a longer sample_period or a shorter horizon",
            ));
        }
        let jobs = self.jobs.saturating_mul(JOB_BYTES);
        match &self.jobs_from {
            JobsFrom::Nothing => {}
            JobsFrom::Count => out.push(self.term(
                "workload.jobs",
                jobs,
                format!("{} jobs", self.jobs),
                "ask for fewer jobs",
            )),
            JobsFrom::Rate(rate) => out.push(self.term(
                "workload.rate_per_hour",
                jobs,
                format!(
                    "{rate} jobs an hour over the {horizon} horizon is about {} jobs",
                    self.jobs
                ),
                "use a lower rate_per_hour or a shorter horizon",
            )),
            JobsFrom::File(kind) => out.push(self.term(
                "workload.path",
                jobs,
                format!("the {kind} gives {} jobs", self.jobs),
                "use a shorter horizon or a smaller file",
            )),
        }
        for (i, (w, h, positions)) in self.machines.iter().enumerate() {
            out.push(
                self.term(
                    &format!("machine[{i}].width"),
                    positions
                        .saturating_mul(BOARD_POSITION_BYTES)
                        .saturating_add(MACHINE_BYTES),
                    format!("a {w} x {h} machine is {positions} board positions"),
                    "use a smaller machine",
                ),
            );
        }
        if self.arrival_hours > 0 {
            out.push(self.term(
                "run.horizon",
                self.arrival_hours.saturating_mul(ARRIVAL_HOUR_BYTES),
                format!(
                    "the {horizon} horizon is {} hours of arrival profile",
                    self.arrival_hours
                ),
                "use a shorter horizon",
            ));
        }
        if self.study_bytes > 0 {
            out.push(self.term(
                "study.bytes",
                self.study_bytes.saturating_mul(2),
                format!(
                    "a transfer of {} is held by the host and the emulated board",
                    format_bytes(self.study_bytes)
                ),
                "move fewer bytes",
            ));
        }
        out
    }

    /// Bytes in all.
    pub fn bytes(&self) -> u64 {
        self.terms().iter().fold(0u64, |a, t| a.saturating_add(t.bytes))
    }

    /// The largest part a scenario key sets (the first of equals), else the simulator itself.
    pub fn largest(&self) -> MemoryTerm {
        let terms = self.terms();
        let keyed = terms
            .iter()
            .filter(|t| t.key.is_some())
            .fold(None::<&MemoryTerm>, |best, t| match best {
                Some(b) if b.bytes >= t.bytes => Some(b),
                _ => Some(t),
            });
        let mut t = keyed.unwrap_or(&terms[0]).clone();
        t.line = t.key.as_deref().and_then(|k| self.line(k));
        t
    }

    /// `Ok` if the run fits in `budget_bytes`; otherwise an error naming the file, the line and
    /// the key of the largest part, how much is needed and available, and what to change.
    pub fn check(&self, budget_bytes: u64) -> Result<(), InputError> {
        let total = self.bytes();
        if total <= budget_bytes {
            return Ok(());
        }
        let t = self.largest();
        let mut msg = format!("{}, about {}", t.what, approx_bytes(t.bytes));
        if total - t.bytes > t.bytes / 10 {
            msg.push_str(&format!(" (about {} in all)", approx_bytes(total)));
        }
        msg.push_str(&format!(
            "; about {} is available: {}",
            approx_bytes(budget_bytes),
            t.advice
        ));
        if t.key.as_deref() == Some(self.samples_key)
            && t.what.ends_with(" samples")
            && self.samples_at_most > self.samples
        {
            msg.push_str(&format!(
                " (and jobs still running after the horizon add samples until the {} drain_limit: up to {} in all)",
                format_duration(self.drain_limit),
                self.samples_at_most
            ));
        }
        Err(InputError::at(&self.file, t.line, t.key.as_deref(), msg))
    }
}
