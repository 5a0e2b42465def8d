//! The journal of `sim serve` as a workload: every job a live server ran, replayed exactly, with
//! the BMP timing the live server saw.
//!
//! The journal (`spinnbed_spalloc::journal`) holds the service's inputs in order after a
//! header naming the policies they were recorded under. Replaying them into a service with
//! those policies rebuilds every decision, so each job's life is known to the microsecond:
//! when it was created, allocated, ready and destroyed, and why. Each job becomes a
//! [`WorkloadJob`] that does what its client did: it is submitted when it was created (relative
//! to the journal's first input, times `time_scale`, divided by `load_scale`), holds its boards
//! from ready to its end, gives up while queued when its client destroyed it queued, and stops
//! sending keepalives so that it times out when it did. Every BMP batch's recorded duration and result, keyed by
//! (job id, its place among the job's batches), goes into
//! [`WorkloadReport::recorded_bmp`] for fixed-delay hardware to replay
//! ([`crate::hardware::fixed::FixedDelays::with_recorded`]).
//!
//! Under the same machines and policies a simulated run of the workload therefore allocates the
//! same boards at the same times as the live server did; under others it answers "what would
//! this policy have done with these requests".

#[cfg(test)]
mod tests;

use super::trace::{TraceEstimate, scaled, size_class};
use super::{WorkloadJob, WorkloadReport};
use crate::hardware::fixed::RecordedBmp;
use crate::input::{self, InputError};
use crate::run::ServicePolicy;
use spinnbed_core::geometry::{Machine, MachineSpec};
use spinnbed_core::reason::{DestroyReason, JobEnd};
use spinnbed_core::sched::JobId;
use spinnbed_core::service::{BatchId, NewJob, ServiceEvent, ServiceInput};
use spinnbed_core::time::{Duration, Instant};
use spinnbed_spalloc::journal::Reader;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The journal's name in a `sim serve` state directory.
pub const JOURNAL_NAME: &str = "journal";

/// A journal workload.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalSpec {
    /// The journal, or a `sim serve` state directory holding one (`journal`).
    pub path: PathBuf,
    /// Multiplies submission times and durations (not the recorded BMP timing: that is the
    /// hardware's).
    pub time_scale: f64,
    /// Divides submission times (from the journal's first input, after `time_scale`), not
    /// durations: the offered load times this (`[workload] load_scale`).
    pub load_scale: f64,
    /// At most this many jobs.
    pub limit: Option<u64>,
    /// Keepalive of every job instead of the one each asked for (`Some(None)`: none).
    pub keepalive: Option<Option<Duration>>,
    /// Declared estimates (none, or the real runtime).
    pub estimate: TraceEstimate,
    /// Include the jobs of `sim serve`'s own simulated users (created without a client host).
    pub include_simulated: bool,
    /// Bytes each job's user writes before running (packet level; default 0).
    pub data_in: crate::quantity::dist::Dist<crate::quantity::dist::ByteSize>,
    /// Bytes each job's user reads back afterwards (default 0).
    pub data_out: crate::quantity::dist::Dist<crate::quantity::dist::ByteSize>,
}

/// What the replaying run looks like, for notes on how it differs from the live server.
#[derive(Debug, Clone)]
pub struct ReplayTarget<'a> {
    /// The scenario's machines, in order.
    pub machines: Vec<&'a Machine>,
    /// The scenario's service policies.
    pub policy: ServicePolicy,
    /// Whether the run's hardware is fixed-delay (the one that replays recorded BMP timing).
    pub fixed_delay: bool,
}

const SIMULATED: &str = "of simulated users (include_simulated = false)";
const LATE: &str = "submitted after the horizon";
const OVER: &str = "beyond the limit";

/// One job's life, as the replayed service lived it.
#[derive(Debug, Clone)]
struct Life {
    id: JobId,
    created: Instant,
    /// Created by one of `sim serve`'s simulated users (no client host).
    simulated: bool,
    new: NewJob,
    allocated: Option<Instant>,
    ready: Option<Instant>,
    /// When it ended, why, and whether a `Destroy` input did it.
    end: Option<(Instant, JobEnd, bool)>,
    /// Its client powered its boards off or on again.
    repowered: bool,
}

/// Everything the replay learnt.
#[derive(Debug, Default)]
struct Replay {
    lives: BTreeMap<JobId, Life>,
    recorded: RecordedBmp,
    first: Option<Instant>,
    last: Instant,
    /// Machines as first added, in order.
    machines: Vec<MachineSpec>,
    machine_changes: u64,
    restarts: u64,
    refused: u64,
    first_refusal: Option<String>,
}

/// The journal file of `path` (the file, or `journal` in a state directory).
pub fn journal_file(path: &Path) -> Result<PathBuf, InputError> {
    let name = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| InputError::at(&name, None, None, format!("cannot read: {e}")))?;
    if !meta.is_dir() {
        return Ok(path.to_path_buf());
    }
    let file = path.join(JOURNAL_NAME);
    if file.is_file() {
        Ok(file)
    } else {
        Err(InputError::at(
            &name,
            None,
            None,
            format!("no {JOURNAL_NAME} in this directory (is it a `sim serve` state directory?)"),
        ))
    }
}

/// Reads and replays the journal.
fn replay(file: &Path, report: &mut WorkloadReport) -> Result<(Replay, ServicePolicy), InputError> {
    let name = file.display().to_string();
    let data = input::read_bytes(file, input::MAX_INPUT_BYTES)?;
    let error = |e: spinnbed_spalloc::journal::JournalError| InputError::at(&name, None, None, e.to_string());
    let mut reader = Reader::new(&data).map_err(error)?;
    let policy = ServicePolicy::from_text(&reader.header().policy)
        .map_err(|e| InputError::at(&name, None, Some("header"), format!("the journal's header: {e}")))?;
    let mut service = policy.empty_service();
    let mut r = Replay::default();
    // Batches issued and not yet done: (job, its place among the job's batches, issued at).
    let mut issued: BTreeMap<BatchId, (JobId, u32, Instant)> = BTreeMap::new();
    let mut per_job: BTreeMap<JobId, u32> = BTreeMap::new();
    for input in reader.by_ref() {
        let input = input.map_err(error)?;
        let now = input.time().unwrap_or(r.last);
        r.first.get_or_insert(now);
        r.last = r.last.max(now);
        let mut creating = None;
        let mut destroying = None;
        match &input {
            ServiceInput::CreateJob { host, job, .. } => creating = Some((host.is_none(), job.clone())),
            ServiceInput::Destroy { job, .. } => destroying = Some(*job),
            ServiceInput::PowerOn { job, .. } | ServiceInput::PowerOff { job, .. } => {
                if let Some(l) = r.lives.get_mut(job)
                    && l.allocated.is_some()
                {
                    l.repowered = true;
                }
            }
            ServiceInput::AddMachine { machine, .. } => {
                if !r.machines.iter().any(|m| m.name == machine.name) {
                    r.machines.push(machine.clone());
                }
            }
            ServiceInput::ModifyMachine { .. } | ServiceInput::RemoveMachine { .. } => r.machine_changes += 1,
            ServiceInput::Restart { .. } => r.restarts += 1,
            ServiceInput::Refused { .. } => r.refused += 1,
            ServiceInput::BmpDone { batch, result, .. } => {
                if let Some((job, n, at)) = issued.remove(batch) {
                    r.recorded
                        .insert((job.0, n), (now.saturating_duration_since(at), result.clone()));
                }
            }
            ServiceInput::Touch { .. } | ServiceInput::Tick { .. } => {}
        }
        // An input that fails now failed when it was recorded too.
        let result = service.apply(&input);
        if let (Some(_), Err(e)) = (&creating, &result) {
            r.refused += 1;
            r.first_refusal.get_or_insert_with(|| e.to_string());
        }
        while let Some(b) = service.poll_bmp_batch() {
            let n = per_job.entry(b.job).or_insert(0);
            issued.insert(b.id, (b.job, *n, now));
            *n += 1;
        }
        while let Some(ev) = service.poll_event() {
            match ev {
                ServiceEvent::Created { job } => {
                    if let Some((simulated, new)) = creating.take() {
                        r.lives.insert(
                            job,
                            Life {
                                id: job,
                                created: now,
                                simulated,
                                new,
                                allocated: None,
                                ready: None,
                                end: None,
                                repowered: false,
                            },
                        );
                    }
                }
                ServiceEvent::Allocated { job, .. } => {
                    if let Some(l) = r.lives.get_mut(&job) {
                        l.allocated.get_or_insert(now);
                    }
                }
                ServiceEvent::Ready { job } => {
                    if let Some(l) = r.lives.get_mut(&job) {
                        l.ready.get_or_insert(now);
                    }
                }
                ServiceEvent::Destroyed { job, reason, .. } => {
                    if let Some(l) = r.lives.get_mut(&job) {
                        l.end.get_or_insert((now, reason, destroying == Some(job)));
                    }
                }
                ServiceEvent::Powering { .. }
                | ServiceEvent::BoardsReleased { .. }
                | ServiceEvent::MachineChanged { .. } => {}
            }
        }
    }
    if let Some(t) = reader.torn_tail() {
        report.notes.push(format!(
            "the journal ends in a torn record ({} bytes from byte {}, a write cut short and never acknowledged): dropped",
            t.bytes, t.offset
        ));
    }
    Ok((r, policy))
}

/// Reads the journal and builds the jobs. Jobs submitted at or after `horizon` are dropped
/// and counted; a job that never got its boards ready before the journal ended holds them for
/// `hold` if it gets them (longer than the run).
pub fn generate(
    spec: &JournalSpec,
    horizon: Duration,
    hold: Duration,
    target: &ReplayTarget,
) -> Result<(Vec<WorkloadJob>, WorkloadReport), InputError> {
    let file = journal_file(&spec.path)?;
    let mut report = WorkloadReport::new("journal");
    let (mut r, recorded_policy) = replay(&file, &mut report)?;
    compare_machines(&r, target, &mut report);
    let differences = target.policy.differences(&recorded_policy);
    if !differences.is_empty() {
        report.notes.push(format!(
            "the journal was recorded under other service policies; this replay is a what-if with {}",
            differences.join(", ")
        ));
    }
    if !target.fixed_delay && !r.recorded.is_empty() {
        report.notes.push(
            "the recorded BMP timing is replayed by fixed-delay hardware only: this scenario's packet-level hardware takes its own time"
                .into(),
        );
    }
    if r.restarts > 0 {
        report.notes.push(format!(
            "the server restarted {} times; the replay runs straight through (batches redone after a restart keep the time they took in all)",
            r.restarts
        ));
    }
    if r.refused > 0 {
        let mut note = format!("{} requests were refused before they became jobs", r.refused);
        if let Some(why) = &r.first_refusal {
            note.push_str(&format!(" (the first: {why})"));
        }
        report.notes.push(note);
    }
    let first = r.first.unwrap_or(Instant::ZERO);
    let us = |d: Duration| scaled(d.0 as f64, spec.time_scale);
    let (mut simulated, mut late, mut over) = (0u64, 0u64, 0u64);
    let (mut running_at_end, mut never_ready, mut repowered, mut destroyed_powering) = (0, 0, 0, 0);
    let mut jobs: Vec<WorkloadJob> = Vec::new();
    for l in r.lives.values() {
        if l.simulated && !spec.include_simulated {
            simulated += 1;
            continue;
        }
        let submit = scaled(
            l.created.saturating_duration_since(first).0 as f64,
            spec.time_scale / spec.load_scale,
        );
        if submit >= horizon {
            late += 1;
            continue;
        }
        if spec.limit.is_some_and(|n| jobs.len() as u64 >= n) {
            over += 1;
            continue;
        }
        let keepalive = spec.keepalive.unwrap_or(l.new.keepalive);
        let timed_out = matches!(
            l.end,
            Some((
                _,
                JobEnd {
                    reason: DestroyReason::TimedOut,
                    ..
                },
                _
            ))
        );
        let runtime = match (l.ready, &l.end) {
            // A job that timed out uses its boards a microsecond longer, so that the timeout,
            // not its user, ends it.
            (Some(ready), Some((end, _, _))) => {
                us(end.saturating_duration_since(ready)) + Duration(u64::from(timed_out))
            }
            (Some(ready), None) => {
                running_at_end += 1;
                us(r.last.saturating_duration_since(ready))
            }
            (None, Some(_)) => Duration::ZERO,
            (None, None) => {
                never_ready += 1;
                hold
            }
        };
        let mut job = WorkloadJob {
            id: l.id.0,
            submit: Instant(submit.0),
            owner: l.new.owner.clone(),
            class: size_class(&l.new.request).to_string(),
            request: l.new.request,
            machine: l.new.machine.clone(),
            tags: l.new.tags.clone(),
            runtime,
            estimate: match spec.estimate {
                TraceEstimate::None => None,
                TraceEstimate::Actual => Some(runtime),
            },
            keepalive,
            lapse_after: None,
            last_keepalive: None,
            cancel_after: None,
            data_in: 0,
            data_out: 0,
        };
        if let Some((end, why, by_destroy)) = &l.end {
            let after = us(end.saturating_duration_since(l.created));
            if *by_destroy && why.queued {
                job.cancel_after = Some(after);
            }
            if *by_destroy && l.allocated.is_some() && l.ready.is_none() {
                destroyed_powering += 1;
            }
            if timed_out && let Some(k) = keepalive {
                // It times out one keepalive period and a microsecond after its last
                // keepalive: when it did.
                job.last_keepalive = Some(Duration(after.0.saturating_sub(k.0.saturating_add(1))));
            }
        }
        if l.repowered {
            repowered += 1;
            // The replay skips the client's own power commands: the job's batches there are its
            // first power-on and the power-off that ends it, which takes the timing of the
            // live job's last batch.
            let last = r
                .recorded
                .range((l.id.0, 0)..=(l.id.0, u32::MAX))
                .next_back()
                .map(|(k, v)| (*k, v.clone()));
            if let Some(((_, n), timing)) = last
                && n >= 2
            {
                r.recorded.insert((l.id.0, 1), timing);
            }
        }
        jobs.push(job);
    }
    // Creation order is submission order, unless the journal's clock went back.
    jobs.sort_by_key(|j| j.submit);
    report.skip(SIMULATED, simulated);
    report.skip(LATE, late);
    report.skip(OVER, over);
    if running_at_end > 0 {
        report.notes.push(format!(
            "{running_at_end} jobs still held ready boards when the journal ended: they hold them as long in the replay"
        ));
    }
    if never_ready > 0 {
        report.notes.push(format!(
            "{never_ready} jobs were still waiting for their boards when the journal ended: if they get them they keep them until the run stops"
        ));
    }
    if destroyed_powering > 0 {
        report.notes.push(format!(
            "{destroyed_powering} jobs were destroyed by their clients before their boards were ready: the replay destroys them once ready"
        ));
    }
    if repowered > 0 {
        report.notes.push(format!(
            "{repowered} jobs were powered off or on again by their clients: the replay does not repeat that (their power-off at the end keeps its recorded timing)"
        ));
    }
    report.recorded_bmp = r.recorded;
    report.jobs = jobs.len();
    Ok((jobs, report))
}

/// Notes where the scenario's machines differ from those the journal's server had.
fn compare_machines(r: &Replay, target: &ReplayTarget, report: &mut WorkloadReport) {
    let describe = |name: &str, w: u16, h: u16| format!("{name:?} ({w} x {h})");
    let journal: Vec<String> = r
        .machines
        .iter()
        .map(|m| describe(&m.name, m.width, m.height))
        .collect();
    let scenario: Vec<String> = target
        .machines
        .iter()
        .map(|m| describe(m.name(), m.width(), m.height()))
        .collect();
    if journal != scenario {
        report.notes.push(format!(
            "the scenario's machines differ from the journal's: the journal has {}, the scenario {}",
            list(&journal),
            list(&scenario)
        ));
    } else {
        let differ: Vec<String> = r
            .machines
            .iter()
            .zip(&target.machines)
            .filter(|(j, s)| **j != s.spec())
            .map(|(j, _)| format!("{:?}", j.name))
            .collect();
        if !differ.is_empty() {
            report.notes.push(format!(
                "machines {} differ from the journal's in their tags, dead boards or links, layout or addresses",
                differ.join(", ")
            ));
        }
    }
    if r.machine_changes > 0 {
        report.notes.push(format!(
            "the live server changed or removed machines {} times; the replay keeps the scenario's machines throughout",
            r.machine_changes
        ));
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() { "none".into() } else { v.join(", ") }
}
