//! What the simulator predicts for the real clients' bulk transfers, for calibration against
//! them (`tests/tests/calibration.rs`).
//!
//! The calibration serves a scenario's machine with `sim emulate --impair` and lets the real
//! PyPI spinnman and rig write and read SDRAM through it; [`predict`] runs the *same* scenario
//! in simulated time: the same machines, the same emulator settings
//! ([`Scenario::emulator_config`]), the same `[network]` (with its `[[network.path]]` entries)
//! seeded with the same seed, and the same steps in the same order — boards powered as
//! `sim emulate` was told to power them, the machine booted through one board, then, one
//! [`Session`] after another, a fresh host with the client's policy moving the same bytes to
//! the same chip through the same board's address.
//!
//! `sim emulate --impair` and [`SimulatedMachine`] put the same [`crate::netsim::Network`] in
//! front of the emulator: built from the same settings, seed and machine-side addresses, it
//! draws each datagram's loss from the stream of the path the datagram travels (the board's
//! address), in the order datagrams reach the network, requests and replies alike. So when
//! the real client and the model put the same datagrams on a path in the same order, they
//! meet the same losses; a session's path carries nothing but that session's traffic (the boot
//! goes through another board). Where the order differs (a real client slow enough that its
//! requests interleave differently with the replies), the two see different draws of the same
//! loss process.
//!
//! Each operation is measured as the study measures a transfer (from the first request to the
//! last acknowledgement), with the host's own counters: retransmissions (`retries`) and
//! timeouts (spinnman: receive timeouts of the whole pipeline; rig: per-request timeouts).

use crate::hardware::SimulatedMachine;
use crate::hardware::host_side::{HOST_ADDR, USER_SDRAM};
use crate::scenario::{Scenario, ScpPolicy, TransferOp};
use spinnbed_core::geometry::Board;
use spinnbed_core::host::{BootConfig, Host, HostConfig, HostEvent, Transfer};
use spinnbed_core::proto::scp::Request;
use spinnbed_core::proto::sdp::Address;
use spinnbed_core::time::Instant;
use std::net::{Ipv4Addr, SocketAddrV4};

/// One real client's turn: a fresh client on one board's address, moving `bytes` to and from
/// SDRAM of that board's Ethernet chip, `repeats` times (write, then read back).
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The client's retry and window policy.
    pub policy: ScpPolicy,
    /// The board whose address (and Ethernet chip) the client talks to.
    pub board: Board,
    /// Bytes per operation.
    pub bytes: usize,
    /// Write-then-read rounds.
    pub repeats: u32,
    /// First ask SC&MP for its version (CMD_VER to chip (255, 255)), as rig does to learn the
    /// buffer size before its first write; not part of any operation's figures.
    pub probe_version: bool,
}

/// What to predict: one machine of the scenario, the boards `sim emulate` powers at start, the
/// board the machine is booted through, and the sessions, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The machine's name.
    pub machine: String,
    /// Boards powered on (FPGAs loaded, unbooted, no link stopped) from the start.
    pub powered: Vec<Board>,
    /// The board the machine is booted through (every powered board reachable from it boots).
    pub boot_board: Board,
    /// The sessions, one after another.
    pub sessions: Vec<Session>,
}

/// One operation of a session, as the model saw it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OpResult {
    /// `write` or `read`.
    pub op: &'static str,
    /// Round (0-based).
    pub repeat: u32,
    /// From the first request to the last acknowledgement, seconds.
    pub seconds: f64,
    /// Retransmissions.
    pub retries: u64,
    /// Timeout expiries.
    pub timeouts: u64,
    /// Whether the transfer completed (a failed one still reports its time and counters).
    pub ok: bool,
}

/// One session's predictions.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionResult {
    /// The policy's name.
    pub policy: &'static str,
    /// The board's address.
    pub ip: Ipv4Addr,
    /// The P2P coordinates of the board's Ethernet chip once booted (what the client
    /// addresses).
    pub chip: (u32, u32),
    /// Its operations, in order.
    pub ops: Vec<OpResult>,
}

/// Why a prediction could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalibrateError {
    /// The plan names a machine the scenario does not have.
    #[error("the scenario has no machine {0:?}")]
    UnknownMachine(String),
    /// The plan names a board the machine does not have (or that has no address).
    #[error("machine {machine:?} has no live board {board} with an address")]
    UnknownBoard {
        /// The machine.
        machine: String,
        /// The board.
        board: Board,
    },
    /// The machine did not boot.
    #[error("the machine did not boot through board {0}")]
    BootFailed(Board),
    /// A session's board was not booted with the rest (not powered, or cut off).
    #[error("board {0} is not booted")]
    NotBooted(Board),
    /// The version probe of a session failed.
    #[error("CMD_VER to board {board} failed: {why}")]
    Probe {
        /// The board.
        board: Board,
        /// What went wrong.
        why: String,
    },
}

/// A host with `policy` at the simulated host's address.
fn host_for(policy: spinnbed_core::host::Policy) -> Host {
    Host::new(HostConfig {
        local: HOST_ADDR,
        ..HostConfig::for_policy(policy)
    })
}

type Bench = crate::hardware::bench::Bench<SimulatedMachine>;

/// Runs `plan` on `sc`'s machine in simulated time, the network seeded with `seed` (`sim
/// emulate` seeds it with `[run] seed`), and returns each session's operations.
pub fn predict(sc: &Scenario, plan: &Plan, seed: u64) -> Result<Vec<SessionResult>, CalibrateError> {
    let entry = sc
        .machines
        .iter()
        .find(|m| m.machine.name() == plan.machine)
        .ok_or_else(|| CalibrateError::UnknownMachine(plan.machine.clone()))?;
    let m = &entry.machine;
    let ip_of = |board: Board| {
        m.board_ip(board)
            .filter(|_| m.is_live(board))
            .ok_or_else(|| CalibrateError::UnknownBoard {
                machine: plan.machine.clone(),
                board,
            })
    };
    let machines: Vec<_> = sc.machines.iter().map(|m| m.machine.clone()).collect();
    let mut machine = SimulatedMachine::new(&machines, sc.emulator_config(), sc.network.clone(), seed, HOST_ADDR);
    for &b in &plan.powered {
        ip_of(b)?;
        machine
            .emulator_mut()
            .restore_power(Instant::ZERO, &plan.machine, b, true, &[]);
    }
    let mut bench = Bench::new(host_for(spinnbed_core::host::Policy::rig()), machine);
    // Boot through the boot board (any boot does: the sessions' paths see none of it).
    let boot_ip = ip_of(plan.boot_board)?;
    let image = spinnbed_core::host::boot::stand_in_image(8 * 1024);
    if !bench.boot(boot_ip, BootConfig::rig(image)) {
        return Err(CalibrateError::BootFailed(plan.boot_board));
    }
    let mut out = Vec::new();
    for s in &plan.sessions {
        let ip = ip_of(s.board)?;
        let chip = bench
            .machine
            .emulator_mut()
            .board_chip(&plan.machine, s.board)
            .ok_or(CalibrateError::NotBooted(s.board))?;
        let (cx, cy) = match (u8::try_from(chip.x), u8::try_from(chip.y)) {
            (Ok(x), Ok(y)) => (x, y),
            _ => return Err(CalibrateError::NotBooted(s.board)),
        };
        let remote = SocketAddrV4::new(ip, spinnbed_emulator::SCP_PORT);
        bench.host = host_for(s.policy.policy());
        if s.probe_version {
            probe(&mut bench, remote).map_err(|why| CalibrateError::Probe { board: s.board, why })?;
        }
        let dest = Address::scp(cx, cy, 0);
        let mut ops = Vec::new();
        for repeat in 0..s.repeats {
            for op in [TransferOp::Write, TransferOp::Read] {
                ops.push(transfer(&mut bench, remote, dest, op, s.bytes, repeat));
            }
        }
        out.push(SessionResult {
            policy: s.policy.name(),
            ip,
            chip: (chip.x, chip.y),
            ops,
        });
    }
    Ok(out)
}

/// One CMD_VER to the root chip through `remote`.
fn probe(b: &mut Bench, remote: SocketAddrV4) -> Result<(), String> {
    let req =
        spinnbed_core::host::ScpRequest::new(Address::ROOT_MONITOR, &Request::Version).map_err(|e| e.to_string())?;
    b.host.submit(b.now, remote, req, 1);
    let mut outcome = None;
    b.run_until(|e| match e {
        HostEvent::Scp { outcome: o, .. } => {
            outcome = Some(o.clone());
            true
        }
        _ => false,
    });
    match outcome {
        Some(Ok(_)) => Ok(()),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("no outcome".into()),
    }
}

/// One transfer of `bytes` at [`USER_SDRAM`] of `dest`, with the host's counters over it.
fn transfer(b: &mut Bench, remote: SocketAddrV4, dest: Address, op: TransferOp, bytes: usize, repeat: u32) -> OpResult {
    let before = b.host.stats().scp;
    let start = b.now;
    let t = match op {
        TransferOp::Write => {
            let data: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
            Transfer::write(start, remote, dest, USER_SDRAM, data)
        }
        TransferOp::Read => Transfer::read(start, remote, dest, USER_SDRAM, bytes),
    };
    let result = b.transfer(t);
    let after = b.host.stats().scp;
    let (seconds, ok) = match result {
        Some(Ok(report)) => (report.duration().as_secs_f64(), true),
        _ => (b.now.saturating_duration_since(start).as_secs_f64(), false),
    };
    OpResult {
        op: op.name(),
        repeat,
        seconds,
        retries: after.retries - before.retries,
        timeouts: after.timeouts - before.timeouts,
        ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One triad at 127.201.0.0: board 0 boots, board 1 is a clean 1 ms path, board 2 loses a
    /// fifth of the datagrams each way.
    const SCENARIO: &str = r#"
[run]
name = "calibrate-unit"
seed = 5
horizon = "1h"

[[machine]]
name = "m"
width = 1
height = 1

[machine.ip]
base = "127.201.0.0"

[network]
latency = "1ms"

[[network.path]]
machine = "m"
boards = [[0, 0, 2]]
loss = 0.2

[workload]
source = "synthetic"
jobs = 1

[[workload.class]]
name = "b"
weight = 1
kind = "board"
duration = "1m"
"#;

    fn scenario() -> Scenario {
        crate::scenario::parse("calibrate-unit.toml", SCENARIO, std::path::Path::new(".")).expect("a valid scenario")
    }

    fn board(z: u8) -> Board {
        Board { x: 0, y: 0, z }
    }

    fn plan(sessions: Vec<Session>) -> Plan {
        Plan {
            machine: "m".into(),
            powered: vec![board(0), board(1), board(2)],
            boot_board: board(0),
            sessions,
        }
    }

    fn session(policy: ScpPolicy, z: u8, bytes: usize) -> Session {
        Session {
            policy,
            board: board(z),
            bytes,
            repeats: 1,
            probe_version: policy == ScpPolicy::Rig,
        }
    }

    #[test]
    fn without_loss_a_transfer_takes_its_round_trips_and_resends_nothing() {
        let sc = scenario();
        let p = plan(vec![
            session(ScpPolicy::Spinnman, 1, 8192),
            session(ScpPolicy::Rig, 1, 8192),
        ]);
        let r = predict(&sc, &p, 1).unwrap();
        assert_eq!(r[0].ip, Ipv4Addr::new(127, 201, 0, 9));
        assert_eq!(r[0].chip, (8, 4), "board 1's Ethernet chip in a booted triad");
        // 32 chunks of 256 bytes: spinnman's window of 8 needs 4 round trips of at least 2 ms,
        // rig's window of 1 needs 32; on top, at most 0.2 ms per chunk (serialisation and
        // SC&MP's service).
        for (s, trips) in [(&r[0], 4.0), (&r[1], 32.0)] {
            assert_eq!(s.ops.len(), 2);
            for o in &s.ops {
                assert!(o.ok && o.retries == 0 && o.timeouts == 0, "{s:?}");
                let floor = trips * 2e-3;
                assert!(
                    o.seconds >= floor && o.seconds < floor + 32.0 * 2e-4,
                    "{} {o:?}",
                    s.policy
                );
            }
        }
    }

    #[test]
    fn losses_cost_resends_and_timeouts_and_the_same_seed_gives_the_same_prediction() {
        let sc = scenario();
        let p = plan(vec![
            session(ScpPolicy::Rig, 2, 16384),
            session(ScpPolicy::Spinnman, 2, 16384),
        ]);
        let a = predict(&sc, &p, 3).unwrap();
        assert_eq!(a, predict(&sc, &p, 3).unwrap());
        assert_ne!(a, predict(&sc, &p, 4).unwrap(), "another seed, other losses");
        let rig = &a[0].ops;
        // 64 exchanges losing a fifth each way: rig loses many, and waits 0.5 s for each.
        let timeouts: u64 = rig.iter().map(|o| o.timeouts).sum();
        assert!(timeouts >= 5, "{rig:?}");
        for o in rig {
            assert!(o.ok, "{o:?}");
            assert_eq!(o.retries, o.timeouts, "rig resends only on a timeout");
            assert!(o.seconds >= o.timeouts as f64 * 0.5, "{o:?}");
        }
        // spinnman resends everything outstanding at each of its 1 s receive timeouts.
        for o in &a[1].ops {
            assert!(o.ok && o.timeouts >= 1 && o.retries >= o.timeouts, "{o:?}");
            assert!(o.seconds >= o.timeouts as f64, "{o:?}");
        }
    }

    #[test]
    fn a_plan_naming_what_is_not_there_is_an_error() {
        let sc = scenario();
        let mut p = plan(vec![session(ScpPolicy::Rig, 1, 256)]);
        p.machine = "nope".into();
        assert_eq!(predict(&sc, &p, 1), Err(CalibrateError::UnknownMachine("nope".into())));
        let mut p = plan(vec![session(ScpPolicy::Rig, 1, 256)]);
        p.sessions[0].board = Board { x: 3, y: 0, z: 0 };
        assert!(matches!(predict(&sc, &p, 1), Err(CalibrateError::UnknownBoard { .. })));
        // Board 2 left unpowered is not booted with the others.
        let mut p = plan(vec![session(ScpPolicy::Rig, 2, 256)]);
        p.powered.pop();
        assert_eq!(predict(&sc, &p, 1), Err(CalibrateError::NotBooted(board(2))));
    }
}
