//! Calibration of the simulator against the real clients: the PyPI spinnman 1!7.4.1 and rig
//! 2.4.1 (from `.venv-clients`, made by `tests/clients/setup-venv.sh` on first use; the test
//! fails if it cannot be made) write and read SDRAM through `sim emulate --impair` serving
//! `tests/calibration/calibration.toml`, and `spinnbed_sim::calibrate::predict` runs the same
//! scenario — same machine, emulator settings, network and seed, same steps in the same order —
//! in simulated time. The test prints measured against predicted (transfer time, resends,
//! timeouts) for every operation and holds the agreement described in README.md
//! ("Calibration").
//!
//! The emulator runs in-process (`spinnbed_realtime::emulate::emulate`, impaired, on a tokio
//! runtime thread) with five boards powered; `tests/clients/calib_rig.py --boot` boots the
//! machine through board (0, 0, 0); then each session — one client process, one board, its own
//! network path — runs `tests/clients/calib_spinnman.py` or `calib_rig.py`, which print JSON.
//!
//! Both sides put the same network model (`spinnbed_sim::netsim`, same settings, same seed)
//! in front of the same emulator, and its loss draws follow the order in which datagrams reach
//! each path: a real client that sends what the model's policy sends, in the same order, meets
//! the same losses. So each real operation is compared with the model's run of the *same*
//! draws, not with an average (printed beside, over 20 other seeds).
//!
//! `cargo test -p spinnbed-tests --test calibration -- --nocapture` shows the table.

use spinnbed_core::geometry::Board;
use spinnbed_realtime::emulate::EmulateOptions;
use spinnbed_sim::calibrate::{OpResult, Plan, Session, SessionResult, predict};
use spinnbed_sim::scenario::ScpPolicy;
use spinnbed_tests::{EmulatorThread, clients_python, repo_root, run_with_deadline};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const SCENARIO: &str = "tests/calibration/calibration.toml";
const MACHINE: &str = "calib";
/// The board the machine is booted through (its path adds no delay and loses nothing).
const BOOT_BOARD: Board = Board { x: 0, y: 0, z: 0 };
/// Seeds the model's distribution is taken over (besides the scenario's own, which the
/// emulator uses).
const MODEL_SEEDS: u64 = 20;
/// Longest one client process may take.
const CLIENT_DEADLINE: Duration = Duration::from_secs(150);
/// The emulator stops by itself after this long even if the test is stuck.
const EMULATOR_CAP: Duration = Duration::from_secs(900);

/// What a session is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// On the boot board's path, which adds no delay: what bounds the client when the network
    /// does not (Python, the emulator, SC&MP's service time). Printed, not held.
    NoDelay,
    /// On a 10 ms path without loss.
    Lossless,
    /// On a 10 ms path with 5 % loss each way.
    Lossy,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::NoDelay => "0 %, no delay",
            Kind::Lossless => "0 %",
            Kind::Lossy => "5 %",
        }
    }
}

struct Case {
    kind: Kind,
    session: Session,
}

fn cases() -> Vec<Case> {
    let b = |x, y, z| Board { x, y, z };
    let s = |policy, board, bytes, repeats| Session {
        policy,
        board,
        bytes,
        repeats,
        probe_version: policy == ScpPolicy::Rig,
    };
    vec![
        Case {
            kind: Kind::NoDelay,
            session: s(ScpPolicy::Spinnman, BOOT_BOARD, 100 * 1024, 1),
        },
        Case {
            kind: Kind::NoDelay,
            session: s(ScpPolicy::Rig, BOOT_BOARD, 32 * 1024, 1),
        },
        Case {
            kind: Kind::Lossless,
            session: s(ScpPolicy::Spinnman, b(0, 0, 1), 100 * 1024, 1),
        },
        Case {
            kind: Kind::Lossless,
            session: s(ScpPolicy::Rig, b(1, 0, 0), 32 * 1024, 1),
        },
        Case {
            kind: Kind::Lossy,
            session: s(ScpPolicy::Spinnman, b(0, 0, 2), 100 * 1024, 2),
        },
        Case {
            kind: Kind::Lossy,
            session: s(ScpPolicy::Rig, b(1, 0, 1), 32 * 1024, 2),
        },
    ]
}

/// Runs a client script to completion (or kills it at the deadline); returns its JSON output.
fn run_client(args: &[String], dir: &Path) -> serde_json::Value {
    let mut cmd = Command::new(clients_python());
    cmd.args(args)
        .current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1");
    let (ok, out, err, took) = run_with_deadline(cmd, CLIENT_DEADLINE);
    assert!(
        ok,
        "{args:?} failed after {:.1} s\n--- stdout\n{out}\n--- stderr\n{err}",
        took.as_secs_f64()
    );
    let line = out.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{args:?}: no JSON ({e}) in\n{out}\n--- stderr\n{err}"))
}

/// One measured operation.
#[derive(Debug, Clone)]
struct Measured {
    op: String,
    seconds: f64,
    resends: u64,
    timeouts: u64,
    sends: u64,
    chunks: u64,
}

fn measured_ops(v: &serde_json::Value) -> Vec<Measured> {
    let ops = v["ops"].as_array().expect("ops");
    ops.iter()
        .map(|o| Measured {
            op: o["op"].as_str().expect("op").to_string(),
            seconds: o["seconds"].as_f64().expect("seconds"),
            resends: o["resends"].as_u64().expect("resends"),
            timeouts: o["timeouts"].as_u64().expect("timeouts"),
            sends: o["sends"].as_u64().expect("sends"),
            chunks: o["chunks"].as_u64().expect("chunks"),
        })
        .collect()
}

/// The model's mean over seeds of one operation.
#[derive(Debug, Clone, Copy, Default)]
struct Mean {
    seconds: f64,
    retries: f64,
    timeouts: f64,
}

fn model_means(runs: &[Vec<SessionResult>], session: usize, op: usize) -> Mean {
    let n = runs.len() as f64;
    let mut m = Mean::default();
    for r in runs {
        let o: &OpResult = &r[session].ops[op];
        m.seconds += o.seconds / n;
        m.retries += o.retries as f64 / n;
        m.timeouts += o.timeouts as f64 / n;
    }
    m
}

/// How far a measured figure may be from the model's: at most `below` (relative) under it and
/// `above` (relative) over it, or `abs` either way, whichever allows more.
#[derive(Debug, Clone, Copy)]
struct Tolerance {
    below: f64,
    above: f64,
    abs: f64,
}

impl Tolerance {
    const EXACT: Tolerance = Tolerance::within(0.0, 0.0);

    const fn within(rel: f64, abs: f64) -> Tolerance {
        Tolerance {
            below: rel,
            above: rel,
            abs,
        }
    }

    fn holds(self, real: f64, model: f64) -> bool {
        let low = (model - self.below * model.abs()).min(model - self.abs);
        let high = (model + self.above * model.abs()).max(model + self.abs);
        (low..=high).contains(&real)
    }
}

/// Transfer time where timeouts dominate (5 % loss): within 10 % of the model (measured:
/// 0.6–1 % over it).
const LOSSY_TIME: Tolerance = Tolerance::within(0.10, 0.0);
/// Transfer time without loss, where the round trips set it: at most 5 % under the model (the
/// real path cannot be faster than the modelled one) and at most 50 % over it (measured: 3–8 %
/// over it). Every round trip waits for the emulator's and the client's threads to be
/// scheduled, so a busy host stretches this time (see README.md, "Calibration").
const LOSSLESS_TIME: Tolerance = Tolerance {
    below: 0.05,
    above: 0.5,
    abs: 0.0,
};
/// Resends and timeouts of rig: exactly the model's. With one request in flight the order of
/// datagrams on the path is fixed by the protocol, so the real client meets the model's losses
/// one for one.
const RIG_COUNTS: Tolerance = Tolerance::EXACT;
/// Resends and timeouts of spinnman: within 25 % of the model's, or one pipeline timeout (and
/// the 8 resends it makes). With 8 requests in flight, the order of requests and replies on
/// the path holds as long as the host's delays stay well below the 5 ms one-way latency; a
/// stall of that size changes which datagrams later draws fall on.
const SPINNMAN_RESENDS: Tolerance = Tolerance::within(0.25, 8.0);
const SPINNMAN_TIMEOUTS: Tolerance = Tolerance::within(0.25, 1.0);

#[test]
fn real_clients_agree_with_the_model() {
    let root = repo_root();
    let scenario = root.join(SCENARIO);
    let sc = spinnbed_sim::scenario::load(&scenario).expect("load the calibration scenario");
    let cases = cases();
    let mut powered: Vec<Board> = cases.iter().map(|c| c.session.board).collect();
    powered.push(BOOT_BOARD);
    powered.sort_by_key(|b| (b.x, b.y, b.z));
    powered.dedup();
    let plan = Plan {
        machine: MACHINE.into(),
        powered: powered.clone(),
        boot_board: BOOT_BOARD,
        sessions: cases.iter().map(|c| c.session.clone()).collect(),
    };

    // The model: the emulator's own seed (the same loss draws, path by path), and the
    // distribution over other seeds.
    let t = Instant::now();
    let paired = predict(&sc, &plan, sc.run.seed).expect("the model runs");
    let others: Vec<Vec<SessionResult>> = (1..=MODEL_SEEDS)
        .map(|k| predict(&sc, &plan, sc.run.seed.wrapping_add(k)).expect("the model runs"))
        .collect();
    println!(
        "the model: {} runs of the plan in {:.1} s",
        MODEL_SEEDS + 1,
        t.elapsed().as_secs_f64()
    );

    // The real clients.
    let m = &sc.machines[0].machine;
    let ip = |b: Board| m.board_ip(b).expect("the board has an address").to_string();
    let dir = tempfile::tempdir().unwrap();
    let emu = EmulatorThread::start(
        &scenario,
        EmulateOptions {
            impair: true,
            ready_file: Some(dir.path().join("ready")),
            duration: Some(EMULATOR_CAP),
            quiet: true,
            embedded: true,
            powered: powered.iter().map(|&b| (MACHINE.to_string(), b, Vec::new())).collect(),
            ..EmulateOptions::default()
        },
    );
    let rig = root.join("tests/clients/calib_rig.py").display().to_string();
    let spinnman = root.join("tests/clients/calib_spinnman.py").display().to_string();
    let booted = run_client(&[rig.clone(), "--boot".into(), ip(BOOT_BOARD)], dir.path());
    println!("booted through {}: {booted}", ip(BOOT_BOARD));
    let mut measured = Vec::new();
    for (c, p) in cases.iter().zip(&paired) {
        let script = match c.session.policy {
            ScpPolicy::Spinnman => &spinnman,
            ScpPolicy::Rig => &rig,
            other => panic!("no real-client script for the {} policy", other.name()),
        };
        let v = run_client(
            &[
                script.clone(),
                "--board-ip".into(),
                ip(c.session.board),
                "--chip".into(),
                format!("{},{}", p.chip.0, p.chip.1),
                "--bytes".into(),
                c.session.bytes.to_string(),
                "--repeats".into(),
                c.session.repeats.to_string(),
            ],
            dir.path(),
        );
        measured.push(measured_ops(&v));
    }
    let emu_result = emu.stop();
    assert!(emu_result.is_ok(), "the emulator failed: {emu_result:?}");

    // The table, then the checks (all of them, so that one failure shows the others).
    println!(
        "\n{:<9} {:<13} {:<5} {:>3} {:>7} {:>9} | {:>8} {:>8} {:>6} | {:>6} {:>6} | {:>7} {:>7} | {MODEL_SEEDS} other seeds, model mean: {:>6} {:>6} {:>7}",
        "client",
        "loss",
        "op",
        "rep",
        "bytes",
        "chip",
        "real s",
        "model s",
        "ratio",
        "resend",
        "model",
        "timeout",
        "model",
        "s",
        "resend",
        "timeout"
    );
    let mut failures = Vec::new();
    for (si, (c, (p, real))) in cases.iter().zip(paired.iter().zip(&measured)).enumerate() {
        assert_eq!(real.len(), p.ops.len(), "one measured operation per predicted one");
        for (oi, (r, o)) in real.iter().zip(&p.ops).enumerate() {
            let mean = model_means(&others, si, oi);
            println!(
                "{:<9} {:<13} {:<5} {:>3} {:>7} {:>9} | {:>8.3} {:>8.3} {:>6.3} | {:>6} {:>6} | {:>7} {:>7} | {:>38.3} {:>6.2} {:>7.2}",
                p.policy,
                c.kind.label(),
                r.op,
                o.repeat,
                c.session.bytes,
                format!("({}, {})", p.chip.0, p.chip.1),
                r.seconds,
                o.seconds,
                r.seconds / o.seconds,
                r.resends,
                o.retries,
                r.timeouts,
                o.timeouts,
                mean.seconds,
                mean.retries,
                mean.timeouts
            );
            let what = format!("{} {} {} round {}", p.policy, c.kind.label(), r.op, o.repeat);
            let mut check = |ok: bool, msg: String| {
                if !ok {
                    failures.push(format!("{what}: {msg}"));
                }
            };
            check(r.op == o.op, format!("measured {} where the model did {}", r.op, o.op));
            check(o.ok, "the model's transfer failed".into());
            check(
                r.sends == r.chunks + r.resends,
                format!(
                    "{} datagrams sent for {} chunks and {} resends",
                    r.sends, r.chunks, r.resends
                ),
            );
            let (resends, timeouts) = match (c.kind, c.session.policy) {
                (Kind::NoDelay | Kind::Lossless, _) => (Tolerance::EXACT, Tolerance::EXACT),
                (Kind::Lossy, ScpPolicy::Rig) => (RIG_COUNTS, RIG_COUNTS),
                (Kind::Lossy, _) => (SPINNMAN_RESENDS, SPINNMAN_TIMEOUTS),
            };
            check(
                resends.holds(r.resends as f64, o.retries as f64),
                format!("{} resends, the model {} ({resends:?})", r.resends, o.retries),
            );
            check(
                timeouts.holds(r.timeouts as f64, o.timeouts as f64),
                format!("{} timeouts, the model {} ({timeouts:?})", r.timeouts, o.timeouts),
            );
            let time = match c.kind {
                // What bounds the client here is its own speed (and the emulator's): shown in
                // the table, not held.
                Kind::NoDelay => continue,
                Kind::Lossless => LOSSLESS_TIME,
                Kind::Lossy => LOSSY_TIME,
            };
            check(
                time.holds(r.seconds, o.seconds),
                format!("{:.3} s, the model {:.3} s ({time:?})", r.seconds, o.seconds),
            );
        }
    }
    assert!(
        failures.is_empty(),
        "the real clients disagree with the model:\n{}",
        failures.join("\n")
    );
}
