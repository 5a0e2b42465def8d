//! The SCP windowing study (`[study] kind = "scp-windowing"`): bulk read and write goodput to
//! one board for each retry/windowing policy over a grid of network condition, loss and
//! round-trip time.
//!
//! Each cell powers and boots an emulated single-board machine over a perfect network, then
//! moves `bytes` to or from its SDRAM through a fresh host with the cell's policy (and token
//! bucket, if it has one) over a network with the cell's loss (each direction), the condition's
//! jitter, reordering, duplication and burst loss, and the scenario's bandwidth (or the
//! condition's). The board's SC&MP serves one request at a time with the scenario's first
//! machine's `[machine.scamp]` service times (65 µs per 256-byte read, 61 µs per write by
//! default) and drops what finds its 8 transient tags or 32 buffers taken. The cell's one-way
//! latency makes one SCP exchange of a full 256-byte chunk take exactly the cell's round-trip
//! time on the wire (propagation plus serialisation, as a ping would measure it), to which
//! SC&MP adds its service time and the condition its jitter. Goodput is the bytes over the
//! time from the first request to the last acknowledgement; a transfer that fails counts as 0.
//! Cells are averaged over `seeds` network seeds (the same seeds for every policy).
//!
//! `bound_mbps` is the best any window of 8 could reach on that path: 256 bytes per full chunk
//! over the longest of (RTT + 2 × mean jitter + S) / 8, the service time S of one chunk, and
//! the serialisation of the request and of the reply on the board's link with their SDP, UDP,
//! IP and Ethernet framing (the network's 66 bytes per frame: UDP 8, IP 20, Ethernet 14 + FCS 4
//! + preamble 8 + gap 12; scamp_timing.md §4.1).
//!
//! The verdict ([`verdict`]) checks the adaptive policy's targets; [`winners`] says, per network
//! condition and operation, which policy wins and by how much; [`pacing_effects`] compares each
//! paced policy with the same policy unpaced.

use crate::hardware::SimulatedMachine;
use crate::hardware::bench::Bench;
use crate::hardware::host_side::{HOST_ADDR, USER_SDRAM};
use crate::quantity::dist::{Dist, Law};
use crate::scenario::{NetworkConfig, Scenario, ScpChoice, ScpPolicy, StudyConfig, StudyNetwork, TransferOp};
use spinnbed_core::geometry::Machine;
use spinnbed_core::host::{BootConfig, Host, HostConfig, Policy, Transfer};
use spinnbed_core::proto::sdp::Address;
use spinnbed_core::time::Duration;
use spinnbed_emulator::{ScampOp, ScampTiming};
use std::net::{Ipv4Addr, SocketAddrV4};

const BMP_IP: Ipv4Addr = Ipv4Addr::new(127, 2, 0, 0);
const BOARD_IP: Ipv4Addr = Ipv4Addr::new(127, 2, 0, 1);

/// Bytes of framing the simulated network adds to a UDP payload on the wire (UDP 8, IP 20,
/// Ethernet header 14, FCS 4, preamble 8, inter-frame gap 12).
const FRAMING: f64 = 66.0;
/// UDP payload of a CMD_READ request (2 padding + 8 SDP + 16 SCP).
const READ_REQUEST: f64 = 26.0;
/// UDP payload of a CMD_WRITE reply (2 + 8 + rc and seq).
const WRITE_REPLY: f64 = 14.0;
/// UDP payload of a full-chunk READ reply or WRITE request (2 + 8 + 4 or 16 + 256).
const READ_REPLY: f64 = 270.0;
const WRITE_REQUEST: f64 = 282.0;

/// A goodput below which a cell counts as this much for geometric means (a cell where every
/// transfer failed has goodput 0).
const FLOOR_MBPS: f64 = 1e-3;

/// "Never worse": a cell is worse than a reference when its mean goodput is below this share of
/// the reference's (seed noise: three seeds of 256 KiB vary by a few per cent under random
/// loss).
pub const NOISE_TOLERANCE: f64 = 0.97;

/// One cell of the grid.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Cell {
    /// Network condition.
    pub network: String,
    /// Policy.
    pub policy: String,
    /// `read` or `write`.
    pub op: String,
    /// Loss probability.
    pub loss: f64,
    /// Round-trip time in ms.
    pub rtt_ms: f64,
    /// Mean goodput over the seeds.
    pub goodput_mbps: f64,
    /// Sample standard deviation of the seeds' goodputs (0 with one seed).
    pub goodput_sd_mbps: f64,
    /// The best a window of 8 could do on this path.
    pub bound_mbps: f64,
    /// Mean resends per transfer.
    pub retries: f64,
    /// Mean receive timeouts per transfer.
    pub timeouts: f64,
    /// Mean requests SC&MP dropped per transfer (all transient tags or message buffers taken).
    pub scamp_drops: f64,
    /// Mean time transmissions waited for a token bucket per transfer, ms.
    pub paced_ms: f64,
    /// Transfers that failed.
    pub failed: u32,
}

/// What one transfer did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Run {
    goodput_mbps: f64,
    retries: u64,
    timeouts: u64,
    drops: u64,
    paced_us: u64,
    failed: bool,
}

impl Run {
    fn failed() -> Run {
        Run {
            failed: true,
            ..Run::default()
        }
    }
}

/// Requests SC&MP dropped so far.
fn scamp_drops(b: &mut Bench<SimulatedMachine>) -> u64 {
    let s = b.machine.emulator_mut().stats();
    s.dropped_tags_busy + s.dropped_buffers_full
}

fn perfect_network() -> NetworkConfig {
    NetworkConfig {
        latency: Dist::fixed(Duration::from_micros(10)),
        ..NetworkConfig::default()
    }
}

/// `d` moved later by `by` (laws that keep their shape under a shift: fixed, uniform, choice;
/// the scenario refuses the others).
fn shifted(d: &Dist<Duration>, by: Duration) -> Dist<Duration> {
    let law = match &d.law {
        Law::Fixed(v) => Law::Fixed(*v + by),
        Law::Choice { values, weights } => Law::Choice {
            values: values.iter().map(|v| *v + by).collect(),
            weights: weights.clone(),
        },
        other => other.clone(),
    };
    Dist {
        law,
        min: d.min.map(|v| v + by),
        max: d.max.map(|v| v + by),
    }
}

/// The mean of a jitter distribution, µs (fixed, uniform, choice; clamps applied to the values).
fn mean_us(d: &Dist<Duration>) -> f64 {
    let clamp = |v: f64| {
        let v = d.min.map_or(v, |m| v.max(m.as_micros() as f64));
        d.max.map_or(v, |m| v.min(m.as_micros() as f64))
    };
    match &d.law {
        Law::Fixed(v) => clamp(v.as_micros() as f64),
        Law::Uniform => {
            let lo = d.min.map_or(0.0, |v| v.as_micros() as f64);
            let hi = d.max.map_or(lo, |v| v.as_micros() as f64);
            (lo + hi) / 2.0
        }
        Law::Choice { values, weights } => {
            let total: f64 = weights.iter().sum();
            if total <= 0.0 {
                return 0.0;
            }
            values
                .iter()
                .zip(weights)
                .map(|(v, w)| clamp(v.as_micros() as f64) * w)
                .sum::<f64>()
                / total
        }
        _ => 0.0,
    }
}

/// The network of a cell: the condition with the cell's latency, loss and bandwidth.
fn cell_network(net: &StudyNetwork, loss: f64, rtt: Duration, bandwidth: f64) -> NetworkConfig {
    // The cell's RTT is what one SCP exchange of a full chunk measures on an idle path:
    // propagation both ways plus the serialisation of the request and the reply (296 bytes of
    // UDP payload together, plus 66 bytes of framing each) on the board's link.
    let wire_us = if bandwidth > 0.0 {
        (WRITE_REQUEST + WRITE_REPLY + 2.0 * FRAMING) * 8.0 / bandwidth
    } else {
        0.0
    };
    let one_way = Duration(((rtt.as_micros() as f64 - wire_us) / 2.0).max(0.0).round() as u64);
    NetworkConfig {
        latency: match &net.jitter {
            Some(j) => shifted(j, one_way),
            None => Dist::fixed(one_way),
        },
        loss,
        burst: net.burst.clone(),
        duplicate: net.duplicate,
        reorder: net.reorder,
        bandwidth_mbps: bandwidth,
        ..NetworkConfig::default()
    }
}

/// The best any window of 8 could reach (Mbit/s) for `op` on a path of round-trip time `rtt`
/// (plus twice `jitter_us`, the mean one-way jitter) and link rate `bandwidth` to a board whose
/// SC&MP takes `scamp`'s service times. See the module documentation.
pub fn bound_mbps(op: TransferOp, rtt: Duration, jitter_us: f64, bandwidth: f64, scamp: &ScampTiming) -> f64 {
    let (scamp_op, request, reply) = match op {
        TransferOp::Read => (ScampOp::Read, READ_REQUEST, READ_REPLY),
        TransferOp::Write => (ScampOp::Write, WRITE_REQUEST, WRITE_REPLY),
    };
    let service = scamp.service_time(scamp_op, 256).as_micros() as f64;
    let wire = |len: f64| {
        if bandwidth > 0.0 {
            (len + FRAMING) * 8.0 / bandwidth
        } else {
            0.0
        }
    };
    let exchange = rtt.as_micros() as f64 + 2.0 * jitter_us + service;
    let per_chunk_us = (exchange / 8.0).max(service).max(wire(request)).max(wire(reply));
    if per_chunk_us <= 0.0 {
        return bandwidth;
    }
    256.0 * 8.0 / per_chunk_us
}

/// Measures one transfer.
#[allow(clippy::too_many_arguments)]
fn measure(
    policy: &ScpChoice,
    op: TransferOp,
    loss: f64,
    rtt: Duration,
    bytes: u64,
    seed: u64,
    net: &StudyNetwork,
    bandwidth: f64,
    scamp: ScampTiming,
) -> Run {
    let board = Machine::single_board("study", BMP_IP, BOARD_IP).expect("a valid single board");
    let emulator = spinnbed_emulator::Config {
        scamp,
        ..spinnbed_emulator::Config::default()
    };
    let machine = SimulatedMachine::new(
        std::slice::from_ref(&board),
        emulator,
        perfect_network(),
        seed,
        HOST_ADDR,
    );
    let mut b = Bench::new(
        Host::new(HostConfig {
            local: HOST_ADDR,
            ..HostConfig::for_policy(Policy::adaptive())
        }),
        machine,
    );
    // Power on and boot over a perfect network.
    let image = spinnbed_core::host::boot::stand_in_image(8 * 1024);
    if !b.power_on("study", BMP_IP, vec![0]) || !b.boot(BOARD_IP, BootConfig::adaptive(image)) {
        return Run::failed();
    }
    // The measurement: a fresh host with the cell's policy and pacing over the cell's network.
    b.machine.replace_network(
        cell_network(net, loss, rtt, bandwidth),
        seed.wrapping_mul(0x9E37_79B9).wrapping_add(1),
    );
    let drops_before = scamp_drops(&mut b);
    b.host = Host::new(HostConfig {
        local: HOST_ADDR,
        pacing: policy.pacing,
        ..HostConfig::for_policy(policy.policy)
    });
    let remote = SocketAddrV4::new(BOARD_IP, spinnbed_emulator::SCP_PORT);
    let t = match op {
        TransferOp::Write => {
            let data: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
            Transfer::write(b.now, remote, Address::ROOT_MONITOR, USER_SDRAM, data)
        }
        TransferOp::Read => Transfer::read(b.now, remote, Address::ROOT_MONITOR, USER_SDRAM, bytes as usize),
    };
    let result = b.transfer(t);
    let s = b.host.stats().scp;
    let mut run = Run {
        retries: s.retries,
        timeouts: s.timeouts,
        drops: scamp_drops(&mut b) - drops_before,
        paced_us: s.pacing_wait_us,
        ..Run::default()
    };
    match result {
        Some(Ok(report)) => {
            let secs = report.duration().as_secs_f64().max(1e-9);
            run.goodput_mbps = report.bytes as f64 * 8.0 / secs / 1e6;
        }
        _ => run.failed = true,
    }
    run
}

/// The SC&MP timing of the study's board: the scenario's first machine's `[machine.scamp]`.
pub fn scamp_of(sc: &Scenario) -> ScampTiming {
    sc.machines.first().map(|m| m.scamp).unwrap_or_default()
}

/// Runs the whole grid: for each network condition, policy, op, RTT and loss, `seeds`
/// transfers.
pub fn run(
    study: &StudyConfig,
    network: &NetworkConfig,
    scamp: ScampTiming,
    seed: u64,
    mut progress: impl FnMut(usize, usize),
) -> Vec<Cell> {
    let policies = study.all_policies();
    let mut cells = Vec::new();
    let total = study.cells();
    let mut n = 0;
    for net in &study.networks {
        let bandwidth = net.bandwidth_mbps.unwrap_or(network.bandwidth_mbps);
        let jitter_us = net.jitter.as_ref().map_or(0.0, mean_us);
        for policy in &policies {
            for &op in &study.ops {
                for &rtt in &study.rtts {
                    for &loss in &study.losses {
                        let runs: Vec<Run> = (0..study.seeds)
                            .map(|k| {
                                measure(
                                    policy,
                                    op,
                                    loss,
                                    rtt,
                                    study.bytes,
                                    seed.wrapping_add(k as u64),
                                    net,
                                    bandwidth,
                                    scamp,
                                )
                            })
                            .collect();
                        let k = runs.len().max(1) as f64;
                        let mean = |f: fn(&Run) -> f64| runs.iter().map(f).sum::<f64>() / k;
                        let goodput = mean(|r| r.goodput_mbps);
                        let sd = if runs.len() > 1 {
                            (runs.iter().map(|r| (r.goodput_mbps - goodput).powi(2)).sum::<f64>() / (k - 1.0)).sqrt()
                        } else {
                            0.0
                        };
                        cells.push(Cell {
                            network: net.name.clone(),
                            policy: policy.name.clone(),
                            op: op.name().into(),
                            loss,
                            rtt_ms: rtt.as_secs_f64() * 1e3,
                            goodput_mbps: goodput,
                            goodput_sd_mbps: sd,
                            bound_mbps: bound_mbps(op, rtt, jitter_us, bandwidth, &scamp),
                            retries: mean(|r| r.retries as f64),
                            timeouts: mean(|r| r.timeouts as f64),
                            scamp_drops: mean(|r| r.drops as f64),
                            paced_ms: mean(|r| r.paced_us as f64 / 1e3),
                            failed: runs.iter().filter(|r| r.failed).count() as u32,
                        });
                        n += 1;
                        progress(n, total);
                    }
                }
            }
        }
    }
    cells
}

fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `scp.csv` of the study.
pub fn csv(cells: &[Cell]) -> Result<Vec<u8>, ::csv::Error> {
    spinnbed_outputs::rows::to_csv(cells.iter().map(|c| spinnbed_outputs::rows::WindowingRow {
        network: c.network.clone(),
        policy: c.policy.clone(),
        op: c.op.clone(),
        loss: r3(c.loss),
        rtt_ms: r3(c.rtt_ms),
        goodput_mbps: r3(c.goodput_mbps),
        goodput_sd_mbps: r3(c.goodput_sd_mbps),
        bound_mbps: r3(c.bound_mbps),
        retries: r3(c.retries),
        timeouts: r3(c.timeouts),
        scamp_drops: r3(c.scamp_drops),
        paced_ms: r3(c.paced_ms),
        failed: c.failed,
    }))
}

/// The same (network, op, loss, RTT) cell of another policy.
fn twin<'a>(cells: &'a [Cell], policy: &str, c: &Cell) -> Option<&'a Cell> {
    cells.iter().find(|x| {
        x.policy == policy && x.network == c.network && x.op == c.op && x.loss == c.loss && x.rtt_ms == c.rtt_ms
    })
}

fn cell_name(c: &Cell) -> String {
    format!("{} {} loss {} rtt {} ms", c.network, c.op, c.loss, r3(c.rtt_ms))
}

/// The study's verdict on the adaptive policy's targets.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    /// Lowest adaptive goodput / bound at zero loss, over the conditions without burst loss.
    pub adaptive_vs_bound_at_zero_loss: f64,
    /// The cell of that lowest share.
    pub adaptive_vs_bound_worst_cell: String,
    /// The references compared with: the real clients' presets in the study (unpaced, under
    /// their own names).
    pub references: Vec<String>,
    /// Cells where adaptive's goodput is below [`NOISE_TOLERANCE`] × a reference's.
    pub cells_worse_than_a_reference: Vec<String>,
    /// Lowest adaptive / reference goodput ratio over every cell.
    pub adaptive_vs_references_worst: f64,
    /// Lowest adaptive / spinnman goodput ratio at 5 % loss (every condition).
    pub adaptive_vs_spinnman_at_5pct: f64,
}

/// Checks the targets: ≥ 90 % of the bound at zero loss; never worse than spinnman,
/// spinnman-legacy or rig (below [`NOISE_TOLERANCE`] of theirs) in any cell of any condition;
/// ≥ 2× spinnman at 5 % loss.
pub fn verdict(cells: &[Cell], study: &StudyConfig) -> Verdict {
    let references = references(study);
    let bursty: Vec<&str> = study
        .networks
        .iter()
        .filter(|n| n.burst.is_some())
        .map(|n| n.name.as_str())
        .collect();
    let mut zero = (f64::INFINITY, String::new());
    let mut worse = Vec::new();
    let mut worst = f64::INFINITY;
    let mut five = f64::INFINITY;
    for c in cells.iter().filter(|c| c.policy == "adaptive") {
        if c.loss == 0.0 && c.bound_mbps > 0.0 && !bursty.contains(&c.network.as_str()) {
            let share = c.goodput_mbps / c.bound_mbps;
            if share < zero.0 {
                zero = (share, cell_name(c));
            }
        }
        for r in &references {
            if let Some(x) = twin(cells, r, c) {
                if x.goodput_mbps > 0.0 {
                    worst = worst.min(c.goodput_mbps / x.goodput_mbps);
                }
                if c.goodput_mbps < x.goodput_mbps * NOISE_TOLERANCE {
                    worse.push(format!(
                        "{}: {:.3} Mbit/s, {r} {:.3} ({:.0} %)",
                        cell_name(c),
                        c.goodput_mbps,
                        x.goodput_mbps,
                        100.0 * c.goodput_mbps / x.goodput_mbps
                    ));
                }
            }
        }
        if (c.loss - 0.05).abs() < 1e-12
            && let Some(x) = twin(cells, "spinnman", c)
            && x.goodput_mbps > 0.0
        {
            five = five.min(c.goodput_mbps / x.goodput_mbps);
        }
    }
    let finite = |v: f64| if v.is_finite() { r3(v) } else { 0.0 };
    Verdict {
        adaptive_vs_bound_at_zero_loss: finite(zero.0),
        adaptive_vs_bound_worst_cell: zero.1,
        references,
        cells_worse_than_a_reference: worse,
        adaptive_vs_references_worst: finite(worst),
        adaptive_vs_spinnman_at_5pct: finite(five),
    }
}

/// One policy's standing in a (network condition, op).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Standing {
    /// Policy.
    pub policy: String,
    /// Geometric mean of its goodput over the loss × RTT cells (failed cells count as 0.001).
    pub geomean_mbps: f64,
    /// Its geometric mean over the winner's.
    pub vs_winner: f64,
}

/// Which policy wins a (network condition, op) and by how much.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Winner {
    /// Network condition.
    pub network: String,
    /// `read` or `write`.
    pub op: String,
    /// The policy with the highest geometric-mean goodput over the loss × RTT cells.
    pub winner: String,
    /// The next best.
    pub runner_up: String,
    /// Winner's geometric mean over the runner-up's.
    pub by: f64,
    /// The best of the real clients' presets (spinnman, spinnman-legacy, rig) in the study, if
    /// any.
    pub best_reference: String,
    /// Winner's geometric mean over the best reference's.
    pub vs_best_reference: f64,
    /// The cell where the winner does worst against the best other policy there, and that
    /// ratio (below 1: the winner loses that cell).
    pub worst_cell: String,
    /// Its ratio.
    pub worst_cell_ratio: f64,
    /// Every policy, best first.
    pub standings: Vec<Standing>,
}

fn geomean(v: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for x in v {
        sum += x.max(FLOOR_MBPS).ln();
        n += 1;
    }
    if n == 0 { 0.0 } else { (sum / n as f64).exp() }
}

/// The real clients' presets among the study's policies (unpaced, under their own names): what
/// "never worse" and "wins by" are measured against.
pub fn references(study: &StudyConfig) -> Vec<String> {
    study
        .policies
        .iter()
        .filter(|p| {
            matches!(
                p.as_preset(),
                Some(ScpPolicy::Spinnman | ScpPolicy::SpinnmanLegacy | ScpPolicy::Rig)
            )
        })
        .map(|p| p.name.clone())
        .collect()
}

/// Per network condition and op, the policies ranked by geometric-mean goodput over the loss ×
/// RTT cells, the winner compared with the runner-up and with the best of `references`.
pub fn winners(cells: &[Cell], references: &[String]) -> Vec<Winner> {
    let mut groups: Vec<(&str, &str)> = Vec::new();
    for c in cells {
        if !groups.contains(&(c.network.as_str(), c.op.as_str())) {
            groups.push((&c.network, &c.op));
        }
    }
    let mut out = Vec::new();
    for (network, op) in groups {
        let here: Vec<&Cell> = cells.iter().filter(|c| c.network == network && c.op == op).collect();
        let mut policies: Vec<&str> = Vec::new();
        for c in &here {
            if !policies.contains(&c.policy.as_str()) {
                policies.push(&c.policy);
            }
        }
        let mut standings: Vec<Standing> = policies
            .iter()
            .map(|p| Standing {
                policy: p.to_string(),
                geomean_mbps: geomean(here.iter().filter(|c| c.policy == *p).map(|c| c.goodput_mbps)),
                vs_winner: 0.0,
            })
            .collect();
        // Best first; ties keep the study's order.
        standings.sort_by(|a, b| b.geomean_mbps.total_cmp(&a.geomean_mbps));
        let best = standings.first().map_or(0.0, |s| s.geomean_mbps);
        for s in &mut standings {
            s.vs_winner = if best > 0.0 { r3(s.geomean_mbps / best) } else { 0.0 };
            s.geomean_mbps = r3(s.geomean_mbps);
        }
        let winner = standings.first().map(|s| s.policy.clone()).unwrap_or_default();
        let runner_up = standings.get(1).map(|s| s.policy.clone()).unwrap_or_default();
        let by = match (standings.first(), standings.get(1)) {
            (Some(a), Some(b)) if b.geomean_mbps > 0.0 => a.geomean_mbps / b.geomean_mbps,
            _ => 1.0,
        };
        let best_ref = standings.iter().find(|s| references.contains(&s.policy));
        let (best_reference, vs_best_reference) = match (standings.first(), best_ref) {
            (Some(a), Some(r)) if r.geomean_mbps > 0.0 => (r.policy.clone(), r3(a.geomean_mbps / r.geomean_mbps)),
            _ => (String::new(), 0.0),
        };
        let mut worst = (f64::INFINITY, String::new());
        for c in here.iter().filter(|c| c.policy == winner) {
            let best_other = here
                .iter()
                .filter(|x| x.policy != winner && x.loss == c.loss && x.rtt_ms == c.rtt_ms)
                .map(|x| x.goodput_mbps)
                .fold(0.0, f64::max);
            if best_other > 0.0 {
                let ratio = c.goodput_mbps.max(FLOOR_MBPS) / best_other;
                if ratio < worst.0 {
                    worst = (ratio, cell_name(c));
                }
            }
        }
        out.push(Winner {
            network: network.to_string(),
            op: op.to_string(),
            winner,
            runner_up,
            by: r3(by),
            best_reference,
            vs_best_reference,
            worst_cell: worst.1,
            worst_cell_ratio: if worst.0.is_finite() { r3(worst.0) } else { 1.0 },
            standings,
        });
    }
    out
}

/// What a token bucket did to one policy under one network condition and op, against the same
/// policy unpaced.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PacingEffect {
    /// The paced policy.
    pub policy: String,
    /// The same policy unpaced.
    pub unpaced: String,
    /// Network condition.
    pub network: String,
    /// `read` or `write`.
    pub op: String,
    /// Cells where the unpaced policy lost requests in SC&MP (transient tags or buffers full).
    pub overflow_cells: usize,
    /// SC&MP drops per transfer, summed over those cells: unpaced, then paced.
    pub drops_unpaced: f64,
    /// The paced policy's.
    pub drops_paced: f64,
    /// Geometric mean of paced / unpaced goodput over those cells (1 when there are none).
    pub goodput_ratio_with_overflow: f64,
    /// The same over the cells without overflow: what pacing costs (or gains) elsewhere.
    pub goodput_ratio_without_overflow: f64,
}

/// For every paced policy whose unpaced twin (the same host-side policy without a bucket) is in
/// the study: where pacing avoids SC&MP overflow and what it costs where there is none.
pub fn pacing_effects(cells: &[Cell], study: &StudyConfig) -> Vec<PacingEffect> {
    let policies = study.all_policies();
    let mut out = Vec::new();
    for paced in policies.iter().filter(|p| p.pacing.is_some()) {
        let Some(unpaced) = policies.iter().find(|p| p.pacing.is_none() && p.policy == paced.policy) else {
            continue;
        };
        for net in &study.networks {
            for op in &study.ops {
                let mut over = (0usize, 0.0, 0.0, Vec::new());
                let mut rest = Vec::new();
                for c in cells
                    .iter()
                    .filter(|c| c.policy == paced.name && c.network == net.name && c.op == op.name())
                {
                    let Some(u) = twin(cells, &unpaced.name, c) else {
                        continue;
                    };
                    let ratio = c.goodput_mbps.max(FLOOR_MBPS) / u.goodput_mbps.max(FLOOR_MBPS);
                    if u.scamp_drops > 0.0 {
                        over.0 += 1;
                        over.1 += u.scamp_drops;
                        over.2 += c.scamp_drops;
                        over.3.push(ratio);
                    } else {
                        rest.push(ratio);
                    }
                }
                let g = |v: &[f64]| {
                    if v.is_empty() {
                        1.0
                    } else {
                        r3((v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp())
                    }
                };
                out.push(PacingEffect {
                    policy: paced.name.clone(),
                    unpaced: unpaced.name.clone(),
                    network: net.name.clone(),
                    op: op.name().into(),
                    overflow_cells: over.0,
                    drops_unpaced: r3(over.1),
                    drops_paced: r3(over.2),
                    goodput_ratio_with_overflow: g(&over.3),
                    goodput_ratio_without_overflow: g(&rest),
                });
            }
        }
    }
    out
}

/// Why a study could not run or be written.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    /// The scenario has no `[study]`.
    #[error("the scenario has no [study]")]
    NoStudy,
    /// Its outputs could not be written.
    #[error(transparent)]
    Output(#[from] crate::run::OutputError),
}

/// What a study found.
#[derive(Debug, Clone, PartialEq)]
pub struct Findings {
    /// Every cell.
    pub cells: Vec<Cell>,
    /// The adaptive policy's targets.
    pub verdict: Verdict,
    /// Per network condition and op, the winner.
    pub winners: Vec<Winner>,
    /// What pacing did.
    pub pacing: Vec<PacingEffect>,
}

/// Runs a scenario's study and writes `scp.csv`, `summary.json` and `scenario.toml` into the
/// staged output directory ([`crate::run::stage_outputs`]), which is then swapped into place.
pub fn run_into(
    sc: &Scenario,
    staged: spinnbed_outputs::dir::Staged,
    progress: impl FnMut(usize, usize),
) -> Result<Findings, StudyError> {
    let study = sc.study().ok_or(StudyError::NoStudy)?;
    let scamp = scamp_of(sc);
    let cells = run(study, &sc.network, scamp, sc.run.seed, progress);
    let v = verdict(&cells, study);
    let w = winners(&cells, &references(study));
    let p = pacing_effects(&cells, study);
    let summary = serde_json::json!({
        "scenario": sc.run.name,
        "seed": sc.run.seed,
        "study": "scp-windowing",
        "bytes_per_transfer": study.bytes,
        "seeds_per_cell": study.seeds,
        "scamp_service_us": {
            "read_256": scamp.service_time(ScampOp::Read, 256).as_micros(),
            "write_256": scamp.service_time(ScampOp::Write, 256).as_micros(),
        },
        "noise_tolerance": NOISE_TOLERANCE,
        "verdict": v,
        "winners": w,
        "pacing": p,
        "cells": cells,
    });
    let tmp = staged.path().to_path_buf();
    let write = |name: &str, bytes: &[u8]| {
        let file = tmp.join(name);
        std::fs::write(&file, bytes).map_err(|source| crate::run::OutputError::Write { file, source })
    };
    write("scp.csv", &csv(&cells).map_err(crate::run::OutputError::from)?)?;
    write("summary.json", &crate::run::outputs::json(&summary))?;
    write("scenario.toml", sc.to_resolved_toml().as_bytes())?;
    staged.commit().map_err(crate::run::OutputError::from)?;
    Ok(Findings {
        cells,
        verdict: v,
        winners: w,
        pacing: p,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_counts_framing_and_service_time() {
        let scamp = ScampTiming::default();
        // Low RTT: SC&MP's 65 µs per read is the limit, 31.5 Mbit/s; writes 61 µs, 33.6.
        let read = bound_mbps(TransferOp::Read, Duration::from_micros(300), 0.0, 100.0, &scamp);
        assert!((read - 2048.0 / 65.0).abs() < 1e-9, "{read}");
        let write = bound_mbps(TransferOp::Write, Duration::from_micros(300), 0.0, 100.0, &scamp);
        assert!((write - 2048.0 / 61.0).abs() < 1e-9, "{write}");
        // 10 ms: the window, 8 chunks per (RTT + S).
        let far = bound_mbps(TransferOp::Read, Duration::from_millis(10), 0.0, 100.0, &scamp);
        assert!((far - 8.0 * 2048.0 / 10_065.0).abs() < 1e-9, "{far}");
        // Jitter lengthens the round trip by twice its mean.
        let jit = bound_mbps(TransferOp::Read, Duration::from_millis(10), 500.0, 100.0, &scamp);
        assert!((jit - 8.0 * 2048.0 / 11_065.0).abs() < 1e-9, "{jit}");
        // Without service times, a slow link: the write request's 282 + 66 bytes at 10 Mbit/s.
        let ideal = ScampTiming::ideal();
        let slow = bound_mbps(TransferOp::Write, Duration::from_micros(100), 0.0, 10.0, &ideal);
        assert!((slow - 2048.0 / 278.4).abs() < 1e-9, "{slow}");
        // The read reply: 270 + 66 bytes.
        let slow = bound_mbps(TransferOp::Read, Duration::from_micros(100), 0.0, 10.0, &ideal);
        assert!((slow - 2048.0 / 268.8).abs() < 1e-9, "{slow}");
    }

    #[test]
    fn jitter_shifts_keep_their_law() {
        let u = Dist::uniform(Duration(0), Duration(1000));
        let s = shifted(&u, Duration(150));
        assert_eq!((s.min, s.max), (Some(Duration(150)), Some(Duration(1150))));
        assert_eq!(mean_us(&u), 500.0);
        let c = Dist {
            law: Law::Choice {
                values: vec![Duration(0), Duration(2000)],
                weights: vec![3.0, 1.0],
            },
            min: None,
            max: None,
        };
        assert_eq!(mean_us(&c), 500.0);
        assert_eq!(
            shifted(&c, Duration(10)).law,
            Law::Choice {
                values: vec![Duration(10), Duration(2010)],
                weights: vec![3.0, 1.0]
            }
        );
        assert_eq!(
            shifted(&Dist::fixed(Duration(5)), Duration(5)),
            Dist::fixed(Duration(10))
        );
    }

    fn cell(network: &str, policy: &str, loss: f64, rtt_ms: f64, goodput: f64, drops: f64) -> Cell {
        Cell {
            network: network.into(),
            policy: policy.into(),
            op: "read".into(),
            loss,
            rtt_ms,
            goodput_mbps: goodput,
            goodput_sd_mbps: 0.0,
            bound_mbps: 10.0,
            retries: 0.0,
            timeouts: 0.0,
            scamp_drops: drops,
            paced_ms: 0.0,
            failed: 0,
        }
    }

    #[test]
    fn winners_rank_by_geometric_mean_and_name_the_worst_cell() {
        let cells = vec![
            cell("clean", "a", 0.0, 1.0, 8.0, 0.0),
            cell("clean", "a", 0.1, 1.0, 2.0, 0.0),
            cell("clean", "b", 0.0, 1.0, 9.0, 0.0),
            cell("clean", "b", 0.1, 1.0, 0.5, 0.0),
            cell("wan", "a", 0.0, 1.0, 1.0, 0.0),
            cell("wan", "b", 0.0, 1.0, 4.0, 0.0),
        ];
        let w = winners(&cells, &["b".to_string()]);
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].best_reference.as_str(), w[0].vs_best_reference), ("b", w[0].by));
        assert_eq!((w[1].best_reference.as_str(), w[1].vs_best_reference), ("b", 1.0));
        // a: √(8·2) = 4; b: √(9·0.5) = 2.12.
        assert_eq!((w[0].winner.as_str(), w[0].runner_up.as_str()), ("a", "b"));
        assert_eq!(w[0].by, r3(4.0 / 4.5f64.sqrt()));
        assert_eq!(w[0].worst_cell, "clean read loss 0 rtt 1 ms");
        assert_eq!(w[0].worst_cell_ratio, r3(8.0 / 9.0));
        assert_eq!(w[0].standings[1].vs_winner, r3(4.5f64.sqrt() / 4.0));
        assert_eq!((w[1].winner.as_str(), w[1].by), ("b", 4.0));
    }
}
