//! The SCP windowing study (`[study] kind = "scp-windowing"`): bulk read and write goodput to
//! one board for each retry/windowing policy over a grid of loss and round-trip time.
//!
//! Each cell powers and boots an emulated single-board machine over a perfect network, then
//! moves `bytes` to or from its SDRAM through a fresh host with the cell's policy over a network
//! with the cell's loss (each direction) and the scenario's bandwidth, whose one-way latency
//! makes one SCP exchange of a full 256-byte chunk take exactly the cell's round-trip time
//! (propagation plus serialisation, as a ping would measure it). Goodput is the bytes over the time from the first request to the last
//! acknowledgement; a transfer that fails counts as 0. `bound_mbps` is the best any window of 8
//! could reach on that path: min(link rate, 8 × 256 bytes / RTT). Cells are averaged over
//! `seeds` network seeds.

use crate::hardware::SimulatedMachine;
use crate::hardware::host_side::{HOST_ADDR, USER_SDRAM};
use crate::hardware::transport::{Transport, settle};
use crate::scenario::{NetworkConfig, Scenario, ScpPolicy, StudyConfig, TransferOp};
use spinnbed_core::geometry::{FrameId, Machine};
use spinnbed_core::host::{BootConfig, BootEvent, BootOutcome, Host, HostConfig, HostEvent, Transfer, TransferEvent};
use spinnbed_core::proto::sdp::Address;
use spinnbed_core::sched::JobId;
use spinnbed_core::service::{BatchId, BmpBatch};
use spinnbed_core::time::{Duration, Instant};
use std::net::{Ipv4Addr, SocketAddrV4};

const BMP_IP: Ipv4Addr = Ipv4Addr::new(127, 2, 0, 0);
const BOARD_IP: Ipv4Addr = Ipv4Addr::new(127, 2, 0, 1);

/// One cell of the grid.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Cell {
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
    /// The best a window of 8 could do on this path.
    pub bound_mbps: f64,
    /// Mean resends per transfer.
    pub retries: f64,
    /// Mean receive timeouts per transfer.
    pub timeouts: f64,
    /// Transfers that failed.
    pub failed: u32,
}

/// The host and the simulated machine of one cell, in virtual time.
struct Bench {
    host: Host,
    machine: SimulatedMachine,
    now: Instant,
}

impl Bench {
    /// Runs until `f` says an event finishes the step (true), or nothing is left to do
    /// (false).
    fn run_until(&mut self, mut f: impl FnMut(&HostEvent) -> bool) -> bool {
        loop {
            settle(&mut self.host, &mut self.machine, self.now);
            while let Some(ev) = self.host.poll_event() {
                if f(&ev) {
                    return true;
                }
            }
            let next = [self.host.poll_timeout(), self.machine.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) => self.now = self.now.max(t),
                None => return false,
            }
        }
    }
}

fn perfect_network() -> NetworkConfig {
    NetworkConfig {
        latency: crate::quantity::dist::Dist::fixed(Duration::from_micros(10)),
        ..NetworkConfig::default()
    }
}

/// Measures one transfer; returns (goodput Mbit/s, retries, timeouts, failed).
fn measure(
    policy: ScpPolicy,
    op: TransferOp,
    loss: f64,
    rtt: Duration,
    bytes: u64,
    seed: u64,
    bandwidth: f64,
) -> (f64, u64, u64, bool) {
    let board = Machine::single_board("study", BMP_IP, BOARD_IP).expect("a valid single board");
    let host_config = |policy: spinnbed_core::host::Policy| HostConfig {
        local: HOST_ADDR,
        ..HostConfig::for_policy(policy)
    };
    let machine = SimulatedMachine::new(
        std::slice::from_ref(&board),
        spinnbed_emulator::Config::default(),
        perfect_network(),
        seed,
        HOST_ADDR,
    );
    let mut b = Bench {
        host: Host::new(host_config(spinnbed_core::host::Policy::adaptive())),
        machine,
        now: Instant::ZERO,
    };
    // Power on and boot over a perfect network.
    let batch = BmpBatch {
        id: BatchId(1),
        job: JobId(1),
        machine: "study".into(),
        frame: FrameId { cabinet: 0, frame: 0 },
        bmp: BMP_IP,
        power_on: vec![0],
        power_off: Vec::new(),
        links: Vec::new(),
    };
    b.host.submit_bmp_batch(b.now, batch);
    if !b.run_until(|e| matches!(e, HostEvent::BatchDone { .. })) {
        return (0.0, 0, 0, true);
    }
    let image = spinnbed_core::host::boot::stand_in_image(8 * 1024);
    if b.host.start_boot(b.now, BOARD_IP, BootConfig::adaptive(image)).is_err() {
        return (0.0, 0, 0, true);
    }
    let mut booted = false;
    b.run_until(|e| {
        if let HostEvent::Boot {
            event: BootEvent::Done(o),
            ..
        } = e
        {
            booted = matches!(o, BootOutcome::Booted { .. });
            return true;
        }
        false
    });
    if !booted {
        return (0.0, 0, 0, true);
    }
    // The measurement: a fresh host with the cell's policy over the cell's network. The cell's
    // RTT is what one SCP exchange of a full chunk measures on an idle path: propagation both
    // ways plus the serialisation of the request and the reply (296 bytes of UDP payload
    // together, plus 66 bytes of headers each) on the board's link.
    let wire_us = if bandwidth > 0.0 {
        (296.0 + 2.0 * 66.0) * 8.0 / bandwidth
    } else {
        0.0
    };
    let one_way = ((rtt.as_micros() as f64 - wire_us) / 2.0).max(0.0).round() as u64;
    let cfg = NetworkConfig {
        latency: crate::quantity::dist::Dist::fixed(Duration(one_way)),
        loss,
        bandwidth_mbps: bandwidth,
        ..NetworkConfig::default()
    };
    b.machine
        .replace_network(cfg, seed.wrapping_mul(0x9E37_79B9).wrapping_add(1));
    b.host = Host::new(host_config(policy.policy()));
    let remote = SocketAddrV4::new(BOARD_IP, spinnbed_emulator::SCP_PORT);
    let t = match op {
        TransferOp::Write => {
            let data: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
            Transfer::write(b.now, remote, Address::ROOT_MONITOR, USER_SDRAM, data)
        }
        TransferOp::Read => Transfer::read(b.now, remote, Address::ROOT_MONITOR, USER_SDRAM, bytes as usize),
    };
    b.host.start_transfer(t);
    let mut result = None;
    b.run_until(|e| {
        if let HostEvent::Transfer {
            event: TransferEvent::Done(r),
            ..
        } = e
        {
            result = Some(r.clone());
            return true;
        }
        false
    });
    let s = b.host.stats().scp;
    match result {
        Some(Ok(report)) => {
            let secs = report.duration().as_secs_f64().max(1e-9);
            (report.bytes as f64 * 8.0 / secs / 1e6, s.retries, s.timeouts, false)
        }
        _ => (0.0, s.retries, s.timeouts, true),
    }
}

/// Runs the whole grid.
pub fn run(
    study: &StudyConfig,
    network: &NetworkConfig,
    seed: u64,
    mut progress: impl FnMut(usize, usize),
) -> Vec<Cell> {
    let mut cells = Vec::new();
    let total = study.policies.len() * study.ops.len() * study.losses.len() * study.rtts.len();
    let mut n = 0;
    for &policy in &study.policies {
        for &op in &study.ops {
            for &rtt in &study.rtts {
                for &loss in &study.losses {
                    let (mut g, mut r, mut t, mut f) = (0.0, 0u64, 0u64, 0u32);
                    for k in 0..study.seeds {
                        let (gi, ri, ti, fi) = measure(
                            policy,
                            op,
                            loss,
                            rtt,
                            study.bytes,
                            seed.wrapping_add(k as u64),
                            network.bandwidth_mbps,
                        );
                        g += gi;
                        r += ri;
                        t += ti;
                        f += u32::from(fi);
                    }
                    let k = study.seeds as f64;
                    let rtt_s = rtt.as_secs_f64();
                    let window_bound = 8.0 * 256.0 * 8.0 / rtt_s / 1e6;
                    cells.push(Cell {
                        policy: policy.name().into(),
                        op: op.name().into(),
                        loss,
                        rtt_ms: rtt_s * 1e3,
                        goodput_mbps: g / k,
                        bound_mbps: window_bound.min(network.bandwidth_mbps),
                        retries: r as f64 / k,
                        timeouts: t as f64 / k,
                        failed: f,
                    });
                    n += 1;
                    progress(n, total);
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
        policy: c.policy.clone(),
        op: c.op.clone(),
        loss: r3(c.loss),
        rtt_ms: r3(c.rtt_ms),
        goodput_mbps: r3(c.goodput_mbps),
        bound_mbps: r3(c.bound_mbps),
        retries: r3(c.retries),
        timeouts: r3(c.timeouts),
    }))
}

/// The study's verdict on the adaptive policy's targets.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    /// Lowest adaptive goodput / bound at zero loss.
    pub adaptive_vs_bound_at_zero_loss: f64,
    /// Cells where adaptive is below spinnman or rig (policy, op, loss, rtt).
    pub cells_worse_than_a_reference: Vec<String>,
    /// Lowest adaptive / spinnman goodput ratio at 5 % loss.
    pub adaptive_vs_spinnman_at_5pct: f64,
}

/// Checks the targets: ≥ 90 % of the bound at zero loss; never worse than spinnman or rig;
/// ≥ 2× spinnman at 5 % loss.
pub fn verdict(cells: &[Cell]) -> Verdict {
    let find = |p: &str, c: &Cell| {
        cells
            .iter()
            .find(|x| x.policy == p && x.op == c.op && x.loss == c.loss && x.rtt_ms == c.rtt_ms)
    };
    let mut zero = f64::INFINITY;
    let mut worse = Vec::new();
    let mut five = f64::INFINITY;
    for c in cells.iter().filter(|c| c.policy == "adaptive") {
        if c.loss == 0.0 && c.bound_mbps > 0.0 {
            zero = zero.min(c.goodput_mbps / c.bound_mbps);
        }
        for r in ["spinnman", "rig"] {
            if let Some(x) = find(r, c)
                && c.goodput_mbps < x.goodput_mbps * 0.999
            {
                worse.push(format!(
                    "{} {} loss {} rtt {} ms below {r}",
                    c.policy, c.op, c.loss, c.rtt_ms
                ));
            }
        }
        if (c.loss - 0.05).abs() < 1e-12
            && let Some(x) = find("spinnman", c)
            && x.goodput_mbps > 0.0
        {
            five = five.min(c.goodput_mbps / x.goodput_mbps);
        }
    }
    Verdict {
        adaptive_vs_bound_at_zero_loss: if zero.is_finite() {
            (zero * 1000.0).round() / 1000.0
        } else {
            0.0
        },
        cells_worse_than_a_reference: worse,
        adaptive_vs_spinnman_at_5pct: if five.is_finite() {
            (five * 1000.0).round() / 1000.0
        } else {
            0.0
        },
    }
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

/// Runs a scenario's study and writes `scp.csv`, `summary.json` and `scenario.toml` into the
/// staged output directory ([`crate::run::stage_outputs`]), which is then swapped into place.
pub fn run_into(
    sc: &Scenario,
    staged: spinnbed_outputs::dir::Staged,
    progress: impl FnMut(usize, usize),
) -> Result<(Vec<Cell>, Verdict), StudyError> {
    let study = sc.study().ok_or(StudyError::NoStudy)?;
    let cells = run(study, &sc.network, sc.run.seed, progress);
    let v = verdict(&cells);
    let summary = serde_json::json!({
        "scenario": sc.run.name,
        "seed": sc.run.seed,
        "study": "scp-windowing",
        "bytes_per_transfer": study.bytes,
        "seeds_per_cell": study.seeds,
        "verdict": v,
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
    Ok((cells, v))
}
