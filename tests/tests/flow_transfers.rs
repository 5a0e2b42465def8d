//! `[host] transfers = "flow"` (approximate, opt-in) held to the exact packet-level mode.
//!
//! Each scenario runs twice, once with every transfer packet by packet and once with flow
//! transfers, and the checked metrics must agree:
//! - job start and end times: without loss every job's start, ready and end time within 1 % of
//!   its time in the system (and the same outcome); with loss, where each exact transfer draws
//!   its own losses and a flow transfer takes their expectation, the jobs' mean wait, mean time
//!   held, mean turnaround and the last end within 1 %;
//! - SCP counts (requests, resends, timeouts, payload bytes): within 1 %, or within the exact
//!   run's own sampling noise where that is wider (four standard deviations of a Poisson count:
//!   a run with 400 timeouts cannot pin them to 1 %).
//!
//! The scenarios: loss-free with spinnman's pipeline; 1 % loss with the adaptive policy; 0.5 %
//! loss with spinnman's pipeline on Gilbert–Elliott bursts and with rig; and `faults`-style
//! disturbances (a loss burst and a board dying under transfers), which send flow transfers
//! back to packets. Both modes are also byte-identical on a rerun.

use spinnbed_sim::run::{RunSpec, simulate};
use spinnbed_sim::scenario::{self, TransferModel};
use spinnbed_sim::world::{JobRecord, Outcome, RunResult};

fn scenarios() -> std::path::PathBuf {
    spinnbed_tests::repo_root().join("scenarios")
}

/// A 48-board machine, `jobs` jobs over two office hours (120 keep it busy, with a queue), users
/// moving 0.5 and 1 MiB (medians) in and out.
fn scenario(policy: &str, network: &str, extra: &str, jobs: u32) -> String {
    format!(
        r#"
[run]
name = "flow-check"
seed = 5
horizon = "2h"
sample_period = "5m"
drain_limit = "1d"
start_weekday = "tuesday"
start_hour = 9

[[machine]]
name = "lab"
width = 4
height = 4

[host]
hardware = "emulator"
scp_policy = "{policy}"
boot_users = true
boot_tries = 10

[network]
latency = "0.15ms"
{network}

{extra}

[workload]
source = "synthetic"
jobs = {jobs}
owners = 8
keepalive = "60s"
data_in = {{ dist = "lognormal", median = "512KiB", sigma = 0.8, max = "4MiB" }}
data_out = {{ dist = "lognormal", median = "1MiB", sigma = 0.8, max = "4MiB" }}

[[workload.class]]
name = "1 board"
weight = 6
kind = "board"
duration = {{ dist = "lognormal", median = "4m", sigma = 0.8, min = "30s", max = "30m" }}

[[workload.class]]
name = "2-12 boards"
weight = 3
kind = "boards"
boards = {{ dist = "uniform", min = 2, max = 12 }}
max_dead_boards = 0
duration = {{ dist = "lognormal", median = "6m", sigma = 0.8, min = "30s", max = "1h" }}
"#
    )
}

fn run(text: &str, transfers: TransferModel) -> RunResult {
    run_seeded(text, transfers, 0)
}

/// Runs the scenario with its network seeded `network_seed` apart from the run's seed (the
/// workload stays the same).
fn run_seeded(text: &str, transfers: TransferModel, network_seed: u64) -> RunResult {
    let text = match transfers {
        TransferModel::Packets => text.to_string(),
        TransferModel::Flow => text.replace("boot_users = true", "boot_users = true\ntransfers = \"flow\""),
    };
    let sc = scenario::parse("flow-check.toml", &text, &scenarios()).unwrap();
    assert_eq!(sc.host.transfers, transfers);
    let mut spec = RunSpec::from_scenario(&sc, sc.jobs().unwrap());
    spec.seed += network_seed;
    simulate(&spec, |_| {}).unwrap().0
}

fn secs(t: Option<spinnbed_core::time::Instant>) -> Option<f64> {
    t.map(|t| t.as_micros() as f64 / 1e6)
}

/// Mean of `f` over the jobs that have it.
fn mean(records: &[JobRecord], f: impl Fn(&JobRecord) -> Option<f64>) -> f64 {
    let v: Vec<f64> = records.iter().filter_map(f).collect();
    assert!(!v.is_empty());
    v.iter().sum::<f64>() / v.len() as f64
}

/// Scalar metrics of a run: (name, value).
fn metrics(r: &RunResult) -> Vec<(&'static str, f64)> {
    let wait = |r: &JobRecord| Some(secs(r.start)? - secs(Some(r.submit))?);
    let held = |r: &JobRecord| Some(secs(r.end)? - secs(r.start)?);
    let turnaround = |r: &JobRecord| Some(secs(r.end)? - secs(Some(r.submit))?);
    let j = &r.records;
    let scp = r.scp.unwrap();
    vec![
        ("mean wait s", mean(j, wait)),
        ("mean held s", mean(j, held)),
        ("mean turnaround s", mean(j, turnaround)),
        ("last end s", j.iter().filter_map(|j| secs(j.end)).fold(0.0, f64::max)),
        ("requests", scp.requests as f64),
        ("resends", scp.retries as f64),
        ("timeouts", scp.timeouts as f64),
        ("payload bytes", scp.bytes as f64),
    ]
}

/// Mean and sample standard deviation of the `i`th metric over runs.
fn mean_sd(m: &[Vec<(&str, f64)>], i: usize) -> (f64, f64) {
    let k = m.len() as f64;
    let avg = m.iter().map(|v| v[i].1).sum::<f64>() / k;
    let sd = if m.len() > 1 {
        (m.iter().map(|v| (v[i].1 - avg).powi(2)).sum::<f64>() / (k - 1.0)).sqrt()
    } else {
        0.0
    };
    (avg, sd)
}

/// Compares flow runs with exact runs of the same jobs, over the same network seeds: each
/// metric's mean within 1 %, or within three standard errors of the difference of the two
/// means (from the wider of the two spreads) where that is wider. Lossy runs are samples, and
/// their timeouts mostly come from boots, which are packet level in both modes: a failed boot
/// attempt costs some twenty timeouts, and a run has a handful. The means of wait and time held are measured
/// against the mean turnaround (a mean wait of seconds on a quiet machine cannot be held to
/// 1 % of itself). With `per_job` (one run each), also every job's start, ready and end time
/// within 1 % of its time in the system, and its outcome.
fn compare(name: &str, exact: &[RunResult], flow: &[RunResult], per_job: bool) {
    println!("{name}:");
    let me: Vec<Vec<(&str, f64)>> = exact.iter().map(metrics).collect();
    let mf: Vec<Vec<(&str, f64)>> = flow.iter().map(metrics).collect();
    let turnaround = mean_sd(&me, 2).0;
    let mut bad = Vec::new();
    for (i, (what, _)) in me[0].iter().enumerate() {
        let ((e, sde), (f, sdf)) = (mean_sd(&me, i), mean_sd(&mf, i));
        let k = me.len() as f64;
        let scale = if what.starts_with("mean wait") || what.starts_with("mean held") {
            turnaround
        } else {
            e.abs().max(1e-9)
        };
        let rel = (f - e) / scale;
        let allowed = (3.0 * (2.0 / k).sqrt() * sde.max(sdf) / scale).max(0.01);
        println!(
            "  {what}: exact {e:.3} (sd {sde:.3}), flow {f:.3} (sd {sdf:.3}) over {k} network seeds: {:+.3} % of {scale:.1} (allowed {:.2} %)",
            100.0 * rel,
            100.0 * allowed
        );
        if rel.abs() > allowed {
            bad.push(format!("{what}: flow {f} against exact {e}"));
        }
    }
    let (flow, exact) = (&flow[0], &exact[0]);
    let (e, f) = (&exact.records, &flow.records);
    assert_eq!(e.len(), f.len());
    let completed = |r: &[JobRecord]| r.iter().filter(|j| j.outcome == Outcome::Completed).count();
    println!("  completed: exact {}, flow {}", completed(e), completed(f));
    if per_job {
        for (a, b) in e.iter().zip(f) {
            assert_eq!(a.outcome, b.outcome, "job {}", a.index);
            let span = (secs(a.end).unwrap_or(0.0) - secs(Some(a.submit)).unwrap()).max(1.0);
            for (x, y) in [(a.start, b.start), (a.ready, b.ready), (a.end, b.end)] {
                let (x, y) = (secs(x), secs(y));
                assert_eq!(x.is_some(), y.is_some(), "job {}", a.index);
                if let (Some(x), Some(y)) = (x, y) {
                    assert!((x - y).abs() <= 0.01 * span, "job {}: {x} against {y}", a.index);
                }
            }
        }
    }
    assert!(bad.is_empty(), "{name}: {bad:#?}");
    let t = flow
        .scp
        .unwrap()
        .transfers
        .expect("a flow run says how its transfers went");
    assert!(t.flow > 0);
    assert!(exact.scp.unwrap().transfers.is_none());
}

/// Runs of a lossy scenario over four network seeds.
fn runs(text: &str, transfers: TransferModel) -> Vec<RunResult> {
    (0..4).map(|k| run_seeded(text, transfers, k)).collect()
}

#[test]
fn without_loss_every_job_keeps_its_times() {
    let text = scenario("spinnman", "loss = 0", "", 120);
    let exact = run(&text, TransferModel::Packets);
    let flow = run(&text, TransferModel::Flow);
    compare(
        "loss-free, spinnman",
        std::slice::from_ref(&exact),
        std::slice::from_ref(&flow),
        true,
    );
    let t = flow.scp.unwrap().transfers.unwrap();
    assert_eq!(t.packets, 0, "nothing disturbed a transfer");
    assert_eq!(t.calibrations, 2, "one path, two directions");
}

#[test]
fn with_loss_the_means_and_counts_hold() {
    for (name, policy, network) in [
        ("0.5 % loss, adaptive", "adaptive", "loss = 0.005"),
        ("0.3 % loss, rig", "rig", "loss = 0.003"),
        (
            "0.1 % loss and Gilbert-Elliott bursts, spinnman",
            "spinnman",
            "loss = 0.001\nburst = { p_enter = 0.0005, p_leave = 0.3, loss = 0.5 }",
        ),
    ] {
        let text = scenario(policy, network, "", 60);
        compare(
            name,
            &runs(&text, TransferModel::Packets),
            &runs(&text, TransferModel::Flow),
            false,
        );
    }
}

/// A half-hour loss burst over every path and a board dying: transfers during the burst, or
/// under way when a fault strikes, go packet by packet (the fault decides what happens to
/// them, as in an exact run), and the run still matches.
#[test]
fn faults_send_transfers_back_to_packets() {
    let faults = r#"
[[faults]]
at = "20m"
kind = "loss_burst"
loss = 0.02
duration = "30m"

[[faults]]
at = "50m"
kind = "board_dies"
machine = "lab"
board = [0, 0, 0]
"#;
    let text = scenario("adaptive", "loss = 0.001", faults, 60);
    let flow = runs(&text, TransferModel::Flow);
    compare("faults, adaptive", &runs(&text, TransferModel::Packets), &flow, false);
    let t = flow[0].scp.unwrap().transfers.unwrap();
    assert!(t.packets > 0, "the burst sent transfers back to packets: {t:?}");
}

#[test]
fn flow_runs_are_reproducible() {
    let text = scenario("spinnman", "loss = 0.005", "", 40);
    let a = run(&text, TransferModel::Flow);
    let b = run(&text, TransferModel::Flow);
    assert_eq!(format!("{:?}", a.records), format!("{:?}", b.records));
    assert_eq!(a.scp, b.scp);
}
