//! The files a run writes (docs/outputs.md): `summary.json`, `jobs.csv`, `timeline.csv`,
//! `boards.csv`, and the metrics behind them. Everything here is a pure function of the run
//! result, so the same run gives byte-identical files.

use crate::hardware::ScpCounters;
use crate::world::{Outcome, RunResult};
use serde::Serialize;
use spinnbed_core::alloc::{Request, Shape};
use spinnbed_core::geometry::Link;
use spinnbed_core::time::{Duration, Instant};
use spinnbed_outputs::rows::{Bit, BoardRow, JobRow, LiveRow, ScpJobRow, ScpRow, Secs, TimelineRow, to_csv};
use std::collections::BTreeSet;

/// Run facts that are not in the result itself.
#[derive(Debug, Clone)]
pub struct RunMeta {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Packing policy name.
    pub packer: String,
    /// Queue discipline name.
    pub queue: String,
    /// Release delay.
    pub seconds_before_free: Duration,
    /// Arrival horizon.
    pub horizon: Instant,
    /// Faults that were injected.
    pub faults: Vec<crate::scenario::FaultConfig>,
}

/// One entry of `summary.json` `faults`: a fault that struck during the run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FaultSummary {
    /// When it struck.
    pub at_s: f64,
    /// When it healed (`null`: never).
    pub until_s: Option<f64>,
    /// `board_dies`, `link_fails`, `bmp_silent` or `loss_burst`.
    pub kind: String,
    /// What it struck, in words.
    pub what: String,
}

impl FaultSummary {
    fn of(f: &crate::scenario::FaultConfig) -> FaultSummary {
        FaultSummary {
            at_s: r3(f.at.as_secs_f64()),
            until_s: f.duration.map(|d| r3((f.at + d).as_secs_f64())),
            kind: f.kind.name().to_string(),
            what: f.kind.to_string(),
        }
    }
}

/// Wait statistics.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct WaitStats {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

/// Per size class.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassStats {
    /// Class label.
    pub class: String,
    /// Jobs.
    pub jobs: usize,
    /// Started.
    pub started: usize,
    /// Mean wait.
    pub mean_wait_s: f64,
    /// Median wait.
    pub p50_wait_s: f64,
    /// 95th-percentile wait.
    pub p95_wait_s: f64,
}

/// Per machine.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MachineStats {
    /// Name.
    pub name: String,
    /// Live boards.
    pub live_boards: usize,
    /// Dead boards.
    pub dead_boards: usize,
    /// Allocated board-time over live board-time over the makespan.
    pub utilisation: f64,
    /// Boards the health policy (`avoid_failing_boards`) took out of service, as `[x, y, z]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retired_boards: Vec<[u16; 3]>,
}

/// Policy names.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PolicyNames {
    /// Packer.
    pub packer: String,
    /// Queue discipline.
    pub queue: String,
    /// Release delay in seconds.
    pub seconds_before_free_s: f64,
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Policies.
    pub policy: PolicyNames,
    /// Arrival horizon.
    pub horizon_s: f64,
    /// When the run stopped.
    pub end_s: f64,
    /// Last end − first submission.
    pub makespan_s: f64,
    /// Jobs.
    pub jobs: usize,
    /// Allocated at some point.
    pub started: usize,
    /// Destroyed by their users.
    pub completed: usize,
    /// Never allocated.
    pub cancelled: usize,
    /// Keepalive lapsed.
    pub timed_out: usize,
    /// Hardware failures.
    pub failed: usize,
    /// Queued at the end.
    pub never_started: usize,
    /// Holding boards at the end.
    pub unfinished: usize,
    /// Live boards.
    pub live_boards: usize,
    /// Dead boards.
    pub dead_boards: usize,
    /// The window utilisation is measured over: from the first submission until the last job
    /// ended or the last board was released, whichever is later.
    pub utilisation_window_s: f64,
    /// Allocated board-time / (live boards × utilisation window).
    pub utilisation: f64,
    /// Powered board-time / (live boards × utilisation window).
    pub powered_utilisation: f64,
    /// Board-hours allocated.
    pub board_hours_allocated: f64,
    /// Board-hours powered.
    pub board_hours_powered: f64,
    /// Waits of started jobs.
    pub wait_s: WaitStats,
    /// Mean bounded slowdown (10 s threshold) of completed jobs.
    pub mean_bounded_slowdown: f64,
    /// Per class.
    pub classes: Vec<ClassStats>,
    /// Per machine.
    pub machines: Vec<MachineStats>,
    /// SCP statistics (packet-level runs only).
    pub scp: Option<crate::hardware::ScpSummary>,
    /// Faults injected during the run, in time order (absent when none were).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultSummary>,
    /// Live output totals (runs with `[host.live_output]` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveSummary>,
}

/// `summary.json` `live`: the streaming jobs' live output together (keys in alphabetical
/// order).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LiveSummary {
    /// UDP payload bytes the listener received from the streaming boards.
    pub bytes: u64,
    /// Datagrams it received from them.
    pub datagrams: u64,
    /// Distinct events delivered.
    pub delivered: u64,
    /// Events found missing from gaps in the streams' counters.
    pub detected: u64,
    /// Events lost (sent − delivered where the sent count is known, else detected).
    pub dropped: u64,
    /// Events received more than once.
    pub duplicates: u64,
    /// Streaming jobs whose stream could not be started or stopped.
    pub failed_jobs: usize,
    /// Jobs whose users streamed.
    pub jobs: usize,
    /// The largest latency of any event, ms (`null`: not measured).
    pub latency_max_ms: Option<f64>,
    /// The median over the jobs of each job's median latency, ms.
    pub latency_p50_ms: Option<f64>,
    /// The worst job's 99th-percentile latency, ms.
    pub latency_p99_ms: Option<f64>,
    /// Datagrams to the listener that were not EIEIO.
    pub malformed: u64,
    /// Events the boards sent (`null` where not known: real hardware).
    pub sent: Option<u64>,
    /// Datagrams to the listener that no job's consumer wanted (a stream still running after
    /// its job ended, say).
    pub unmatched: u64,
}

/// Microseconds as milliseconds with three decimals.
fn ms(us: u64) -> f64 {
    r3(us as f64 / 1000.0)
}

/// `summary.json` `live`, from the jobs' live output and the listener's counters.
fn live_summary(r: &RunResult) -> Option<LiveSummary> {
    let totals = r.live?;
    let jobs: Vec<&crate::hardware::JobLive> = r.job_live.iter().flatten().collect();
    let lat: Vec<spinnbed_core::host::LatencySummary> = jobs.iter().filter_map(|j| j.report.latency).collect();
    let mut p50: Vec<f64> = lat.iter().map(|l| l.p50_us as f64).collect();
    p50.sort_by(f64::total_cmp);
    let sent: Vec<u64> = jobs.iter().filter_map(|j| j.sent.map(|s| s.events)).collect();
    Some(LiveSummary {
        bytes: jobs.iter().map(|j| j.received.bytes).sum(),
        datagrams: jobs.iter().map(|j| j.received.datagrams).sum(),
        delivered: jobs.iter().map(|j| j.report.delivered).sum(),
        detected: jobs.iter().map(|j| j.report.dropped).sum(),
        dropped: jobs.iter().map(|j| j.dropped()).sum(),
        duplicates: jobs.iter().map(|j| j.report.duplicates).sum(),
        failed_jobs: jobs.iter().filter(|j| j.failed).count(),
        jobs: jobs.len(),
        latency_max_ms: lat.iter().map(|l| l.max_us).max().map(ms),
        latency_p50_ms: spinnbed_core::stats::percentile(&p50, 0.5).map(|v| ms(v as u64)),
        latency_p99_ms: lat.iter().map(|l| l.p99_us).max().map(ms),
        malformed: totals.listener.malformed,
        sent: (!sent.is_empty()).then(|| sent.iter().sum()),
        unmatched: totals.listener.unmatched,
    })
}

/// `live.csv`: each streaming job's live output (rows in `jobs.csv` order, streaming jobs only).
pub fn live_csv(r: &RunResult) -> Result<Vec<u8>, csv::Error> {
    to_csv(r.records.iter().zip(&r.job_live).filter_map(|(x, jl)| {
        let jl = jl.as_ref()?;
        let lat = jl.report.latency;
        Some(LiveRow {
            id: r.jobs[x.index].id,
            machine: x.machine.clone().unwrap_or_default(),
            x: jl.board.x,
            y: jl.board.y,
            z: jl.board.z,
            started_s: jl.started.map(at),
            stopped_s: jl.stopped.map(at),
            sent: jl.sent.map(|s| s.events),
            delivered: jl.report.delivered,
            dropped: jl.dropped(),
            detected: jl.report.dropped,
            duplicates: jl.report.duplicates,
            datagrams: jl.received.datagrams,
            bytes: jl.received.bytes,
            latency_p50_ms: lat.map(|l| ms(l.p50_us)),
            latency_p99_ms: lat.map(|l| ms(l.p99_us)),
            latency_max_ms: lat.map(|l| ms(l.max_us)),
            failed: Bit(jl.failed),
        })
    }))
}

/// Rounds to 3 decimals (stable JSON numbers).
fn r3(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

fn secs(t: Instant) -> f64 {
    t.as_micros() as f64 / 1e6
}

/// Nearest-rank percentile of sorted values (`p` in percent; 0 if there are none).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    spinnbed_core::stats::percentile(sorted, p / 100.0).unwrap_or(0.0)
}

fn wait_stats(mut w: Vec<f64>) -> WaitStats {
    w.sort_by(f64::total_cmp);
    let mean = if w.is_empty() {
        0.0
    } else {
        w.iter().sum::<f64>() / w.len() as f64
    };
    WaitStats {
        mean: r3(mean),
        p50: r3(percentile(&w, 50.0)),
        p95: r3(percentile(&w, 95.0)),
        p99: r3(percentile(&w, 99.0)),
        max: r3(w.last().copied().unwrap_or(0.0)),
    }
}

/// Computes `summary.json`.
pub fn summary(r: &RunResult, meta: &RunMeta) -> Summary {
    let count = |o: Outcome| r.records.iter().filter(|x| x.outcome == o).count();
    let first_submit = r.records.iter().map(|x| x.submit).min().unwrap_or(Instant::ZERO);
    let last_end = r
        .records
        .iter()
        .filter_map(|x| x.end.or(x.start.map(|_| r.end)))
        .max()
        .unwrap_or(first_submit);
    let makespan = secs(last_end) - secs(first_submit);
    // Utilisation counts board-time from the first submission until the last board is released
    // or powered off (boards stay allocated while they power off after their job ends), so
    // neither figure can exceed 1.
    let window = secs(last_end.max(r.last_use)) - secs(first_submit);
    let live: usize = r
        .machines
        .iter()
        .map(|m| m.board_positions() - m.dead_boards().len())
        .sum();
    let dead: usize = r.machines.iter().map(|m| m.dead_boards().len()).sum();
    let alloc_s: f64 = r
        .boards
        .iter()
        .flatten()
        .map(|u| u.allocated.as_micros() as f64 / 1e6)
        .sum();
    let power_s: f64 = r
        .boards
        .iter()
        .flatten()
        .map(|u| u.powered.as_micros() as f64 / 1e6)
        .sum();
    let util = |x: f64, live: usize| {
        if live == 0 || window <= 0.0 {
            0.0
        } else {
            x / (live as f64 * window)
        }
    };
    let waits: Vec<f64> = r
        .records
        .iter()
        .filter_map(|x| Some(secs(x.start?) - secs(x.submit)))
        .collect();
    let slowdowns: Vec<f64> = r
        .records
        .iter()
        .filter(|x| x.outcome == Outcome::Completed)
        .filter_map(|x| {
            let wait = secs(x.start?) - secs(x.submit);
            let run = secs(x.end?) - secs(x.start?);
            Some(((wait + run) / run.max(10.0)).max(1.0))
        })
        .collect();
    let mut class_order: Vec<String> = Vec::new();
    for j in &r.jobs {
        if !class_order.contains(&j.class) {
            class_order.push(j.class.clone());
        }
    }
    let classes = class_order
        .into_iter()
        .map(|c| {
            let recs: Vec<_> = r.records.iter().filter(|x| r.jobs[x.index].class == c).collect();
            let w = wait_stats(
                recs.iter()
                    .filter_map(|x| Some(secs(x.start?) - secs(x.submit)))
                    .collect(),
            );
            ClassStats {
                jobs: recs.len(),
                started: recs.iter().filter(|x| x.start.is_some()).count(),
                mean_wait_s: w.mean,
                p50_wait_s: w.p50,
                p95_wait_s: w.p95,
                class: c,
            }
        })
        .collect();
    let machines = r
        .machines
        .iter()
        .enumerate()
        .map(|(mi, m)| {
            let live = m.board_positions() - m.dead_boards().len();
            let a: f64 = r.boards[mi].iter().map(|u| u.allocated.as_micros() as f64 / 1e6).sum();
            MachineStats {
                name: m.name().to_string(),
                live_boards: live,
                dead_boards: m.dead_boards().len(),
                utilisation: r3(util(a, live)),
                retired_boards: r
                    .retired_boards
                    .iter()
                    .filter(|(name, _)| name == m.name())
                    .map(|(_, b)| [b.x, b.y, b.z as u16])
                    .collect(),
            }
        })
        .collect();
    Summary {
        scenario: meta.scenario.clone(),
        seed: meta.seed,
        policy: PolicyNames {
            packer: meta.packer.clone(),
            queue: meta.queue.clone(),
            seconds_before_free_s: r3(meta.seconds_before_free.as_secs_f64()),
        },
        horizon_s: r3(secs(meta.horizon)),
        end_s: r3(secs(r.end)),
        makespan_s: r3(makespan),
        jobs: r.records.len(),
        started: r.records.iter().filter(|x| x.start.is_some()).count(),
        completed: count(Outcome::Completed),
        cancelled: count(Outcome::Cancelled),
        timed_out: count(Outcome::TimedOut),
        failed: count(Outcome::Failed),
        never_started: count(Outcome::NeverStarted),
        unfinished: count(Outcome::Unfinished),
        live_boards: live,
        dead_boards: dead,
        utilisation_window_s: r3(window),
        utilisation: r3(util(alloc_s, live)),
        powered_utilisation: r3(util(power_s, live)),
        board_hours_allocated: r3(alloc_s / 3600.0),
        board_hours_powered: r3(power_s / 3600.0),
        wait_s: wait_stats(waits),
        mean_bounded_slowdown: r3(if slowdowns.is_empty() {
            0.0
        } else {
            slowdowns.iter().sum::<f64>() / slowdowns.len() as f64
        }),
        classes,
        machines,
        scp: r.scp,
        faults: {
            let mut f: Vec<&crate::scenario::FaultConfig> =
                meta.faults.iter().filter(|f| Instant::ZERO + f.at <= r.end).collect();
            f.sort_by_key(|f| f.at);
            f.into_iter().map(FaultSummary::of).collect()
        },
        live: live_summary(r),
    }
}

/// Pretty JSON with a final newline (`summary.json`, `perf.json`).
pub fn json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(value).expect("plain data serialises");
    v.push(b'\n');
    v
}

/// A time as output files write it.
fn at(t: Instant) -> Secs {
    Secs(t.as_micros())
}

/// A request as written in `jobs.csv`.
pub fn request_label(r: &Request) -> String {
    match r.shape {
        Shape::AnyBoard => "board".to_string(),
        Shape::Board { board } => format!("board({},{},{})", board.x, board.y, board.z),
        Shape::Boards { n, min_ratio } => format!("boards({n},{min_ratio})"),
        Shape::Triads { w, h } => format!("rect({w}x{h})"),
        Shape::TriadsAt { root, w, h } => format!("rect({w}x{h}@{},{})", root.x, root.y),
    }
}

/// `jobs.csv`.
pub fn jobs_csv(r: &RunResult) -> Result<Vec<u8>, csv::Error> {
    to_csv(r.records.iter().map(|x| {
        let j = &r.jobs[x.index];
        let triads: BTreeSet<(u16, u16)> = x.boards.iter().map(|b| (b.x, b.y)).collect();
        JobRow {
            id: j.id,
            owner: j.owner.clone(),
            class: j.class.clone(),
            request: request_label(&j.request),
            machine: x.machine.clone().unwrap_or_default(),
            submit_s: at(x.submit),
            start_s: x.start.map(at),
            ready_s: x.ready.map(at),
            end_s: x.end.map(at),
            wait_s: x
                .start
                .map(|s| Secs(s.as_micros().saturating_sub(x.submit.as_micros()))),
            boards: x.boards.len() as u64,
            triads: triads.len() as u64,
            outcome: x.outcome.name().to_string(),
            reason: x.reason.clone(),
        }
    }))
}

/// `timeline.csv`.
pub fn timeline_csv(r: &RunResult) -> Result<Vec<u8>, csv::Error> {
    to_csv(r.samples.iter().map(|x| TimelineRow {
        t_s: at(x.t),
        queued: x.queued as u64,
        running: x.running as u64,
        allocated_boards: x.allocated as u64,
        powered_boards: x.powered as u64,
        idle_boards: x.idle as u64,
        dead_boards: x.dead as u64,
    }))
}

/// `boards.csv`.
pub fn boards_csv(r: &RunResult) -> Result<Vec<u8>, csv::Error> {
    let rows = r.machines.iter().enumerate().flat_map(|(mi, m)| {
        m.boards().map(move |b| {
            let u = r.boards[mi][m.board_index(b)];
            let p = m.location(b);
            let links: Vec<&str> = Link::ALL
                .iter()
                .filter(|l| m.dead_links().contains(&(b, **l)))
                .map(|l| l.name())
                .collect();
            BoardRow {
                machine: m.name().to_string(),
                x: b.x,
                y: b.y,
                z: b.z,
                cabinet: p.map(|p| p.cabinet),
                frame: p.map(|p| p.frame),
                board: p.map(|p| p.board),
                dead: Bit(m.dead_boards().contains(&b)),
                allocated_s: Secs(u.allocated.as_micros()),
                powered_s: Secs(u.powered.as_micros()),
                dead_links: links.join(";"),
            }
        })
    });
    to_csv(rows)
}

/// `scp_jobs.csv`: each job's SCP traffic in a packet-level run (rows in `jobs.csv` order).
pub fn scp_jobs_csv(r: &RunResult) -> Result<Vec<u8>, csv::Error> {
    to_csv(r.records.iter().zip(&r.job_scp).map(|(x, js)| {
        let js = js.unwrap_or_default();
        ScpJobRow {
            id: r.jobs[x.index].id,
            requests: js.requests,
            retries: js.retries,
            timeouts: js.timeouts,
            failures: js.failures,
            bytes: js.bytes,
            data_bytes: js.data_bytes,
            transfer_s: Secs(js.transfer_us),
            goodput_mbps: r3(js.goodput_mbps()),
        }
    }))
}

/// `scp.csv`: per sample period, the SCP traffic of packet-level runs.
pub fn scp_csv(r: &RunResult) -> Result<Vec<u8>, csv::Error> {
    let mut rows = Vec::new();
    let mut prev: Option<(Instant, ScpCounters)> = None;
    for (x, c) in r.samples.iter().zip(&r.scp_samples) {
        let Some(c) = c else { continue };
        let (dt, d) = match prev {
            Some((t0, p)) => (
                (x.t - t0).as_micros() as f64 / 1e6,
                ScpCounters {
                    requests: c.requests - p.requests,
                    retries: c.retries - p.retries,
                    timeouts: c.timeouts - p.timeouts,
                    failures: c.failures - p.failures,
                    bytes: c.bytes - p.bytes,
                },
            ),
            None => (0.0, *c),
        };
        let goodput = if dt > 0.0 { d.bytes as f64 * 8.0 / dt / 1e6 } else { 0.0 };
        rows.push(ScpRow {
            t_s: at(x.t),
            requests: d.requests,
            retries: d.retries,
            timeouts: d.timeouts,
            failures: d.failures,
            bytes: d.bytes,
            goodput_mbps: r3(goodput),
        });
        prev = Some((x.t, *c));
    }
    to_csv(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 95.0), 95.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(wait_stats(vec![3.0, 1.0, 2.0]).mean, 2.0);
    }
}
