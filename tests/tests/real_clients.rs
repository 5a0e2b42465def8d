//! Real-client tests: the PyPI `spinnman` 1!7.4.1 and `rig` 2.4.1 (installed into a git-ignored
//! `.venv-clients` by `tests/clients/setup-venv.sh`) each drive `sim emulate`'s machine over
//! real UDP on loopback.
//!
//! The emulator runs in-process (`spinnbed_realtime::emulate::emulate` on a tokio runtime thread)
//! serving `tests/clients/spinnman.toml` (127.3.0.0) or `tests/clients/rig.toml` (127.11.0.0),
//! so the two tests can run at the same time. `tests/clients/spinnman_client.py` reads the BMP's
//! version, powers a board on through the BMP, boots it with spinnman's own boot (its bundled
//! SC&MP 4.0.0 image) and version check, moves 100 KiB through SDRAM and back, and power-cycles
//! the board, checking it goes silent when off and comes back unbooted.
//! `tests/clients/rig_client.py` does the same with rig's stop-and-wait SCP, rig's own boot and
//! image, and rig's `get_system_info` (system variables, P2P table, every chip's info). Every
//! step prints an "ok: …" line with its wall time (`cargo test -p spinnbed-tests --test
//! real_clients -- --nocapture` shows them).

use spinnbed_core::geometry::Board;
use spinnbed_realtime::emulate::{EmulateOptions, emulate};
use spinnbed_tests::{clients_python, repo_root};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The steps `spinnman_client.py` must report, in order.
const SPINNMAN_STEPS: &[&str] = &[
    "ok: BMP version: BC&MP 2.",
    "ok: board starts powered off:",
    "ok: BMPOKResponse workaround:",
    "ok: power on through the BMP:",
    "ok: board unbooted after power-on:",
    "ok: boot and SC&MP version: spinnman booted it with its bundled image: SC&MP 4.0.0",
    "ok: machine details: ",
    "ok: SDRAM write and read back: 102400 random bytes",
    "ok: power off through the BMP:",
    "ok: board silent when off:",
    "ok: power on again through the BMP:",
    "ok: board unbooted after power cycle:",
    "ok: spinnman 1!7.4.1: all steps passed",
];

/// The steps `rig_client.py` must report, in order.
const RIG_STEPS: &[&str] = &[
    "ok: BMP version: BC&MP/",
    "ok: board starts powered off:",
    "ok: power on through the BMP: CMD_POWER on board 0 via BMP; FPGA FLAG ids [0, 1, 2]",
    "ok: board unbooted after power-on:",
    "ok: boot and SC&MP version: rig booted it with its bundled image: SC&MP/SpiNNaker",
    "ok: system info: 48 chips, 864 cores, Ethernet 127.11.0.1 at (0, 0)",
    "ok: SDRAM write and read back: 102400 random bytes",
    "ok: power off through the BMP:",
    "ok: board silent when off:",
    "ok: power on again through the BMP:",
    "ok: board unbooted after power cycle:",
    "ok: rig 2.4.1: all steps passed",
];

/// Longest the client may take (it needs about 15 s: spinnman probes for 4 s before booting,
/// sends its 30 boot blocks 0.1 s apart and then sleeps 2 s).
const CLIENT_DEADLINE: Duration = Duration::from_secs(90);
/// The emulator stops by itself after this long even if the test is stuck.
const EMULATOR_CAP: Duration = Duration::from_secs(300);

/// `sim emulate` in-process on its own thread; stopped (its future dropped, its sockets closed)
/// when this is dropped.
struct Emulator {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Emulator {
    /// Starts serving `scenario` and waits until every socket is bound.
    fn start(scenario: &Path, ready_file: &Path) -> Emulator {
        let sc = spinnbed_sim::scenario::load(scenario).expect("load the scenario");
        let opts = EmulateOptions {
            ready_file: Some(ready_file.to_path_buf()),
            duration: Some(EMULATOR_CAP),
            quiet: false,
            ..EmulateOptions::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || -> Result<(), String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start tokio: {e}"))?;
            rt.block_on(async {
                tokio::select! {
                    r = emulate(&sc, &opts) => r.map(|_| ()).map_err(|e| format!("sim emulate: {e:#}")),
                    _ = stopped => Ok(()),
                }
            })
        });
        let mut emu = Emulator {
            stop: Some(stop),
            thread: Some(thread),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready_file.exists() {
            if emu.thread.as_ref().is_some_and(|t| t.is_finished()) {
                let r = emu.thread.take().unwrap().join().expect("emulator thread panicked");
                panic!("the emulator stopped before it was ready: {r:?}");
            }
            assert!(Instant::now() < deadline, "the emulator was not ready within 20 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        emu
    }

    /// Stops the emulator and reports whether it had failed.
    fn stop(mut self) -> Result<(), String> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), String> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| "emulator thread panicked".to_string())?,
            None => Ok(()),
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Runs a command with a deadline; returns (success, stdout, stderr, wall time).
fn run_with_deadline(mut cmd: Command, deadline: Duration) -> (bool, String, String, Duration) {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the client");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for the client") {
            break Some(s);
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    let err = match status {
        None => format!("{err}\n(killed: no result within {deadline:?})"),
        Some(_) => err,
    };
    (status.is_some_and(|s| s.success()), out, err, start.elapsed())
}

/// Serves `scenario` with the emulator, runs `script` against board (0, 0, 0) of its first
/// machine and checks that the client reports `steps`, in order, within a minute.
fn drive_board_0(scenario: &str, script: &str, extra: &[&str], steps: &[&str]) {
    let py = clients_python();
    let root = repo_root();
    let scenario = root.join(scenario);

    // The addresses come from the scenario's IP scheme (e.g. base 127.3.0.0: BMP 127.3.0.0,
    // board (0, 0, 0) at 127.3.0.1, board number 0 of frame (0, 0)).
    let sc = spinnbed_sim::scenario::load(&scenario).expect("load the scenario");
    let m = &sc.machines[0].machine;
    let board = Board::new(0, 0, 0);
    let place = m.location(board).expect("board (0, 0, 0) has a location");
    let board_ip = m.board_ip(board).expect("board (0, 0, 0) has an address");
    let bmp_ip = m.bmp_ip(place.frame_id()).expect("frame (0, 0) has a BMP");
    assert!(board_ip.is_loopback() && bmp_ip.is_loopback());
    assert_ne!(board_ip.to_string(), "127.0.0.1", "spinnman special-cases 127.0.0.1");

    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(&scenario, &dir.path().join("ready"));

    let mut cmd = Command::new(&py);
    cmd.arg(root.join(script))
        .args(["--bmp", &bmp_ip.to_string()])
        .args(["--board-ip", &board_ip.to_string()])
        .args(["--board", &place.board.to_string()])
        .args(extra)
        .current_dir(dir.path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1");
    let (ok, out, err, took) = run_with_deadline(cmd, CLIENT_DEADLINE);
    let emu_result = emu.stop();

    println!("{script} ({:.1} s):\n{out}", took.as_secs_f64());
    assert!(
        ok,
        "{script} failed after {:.1} s\n--- stdout\n{out}\n--- stderr\n{err}",
        took.as_secs_f64()
    );
    assert!(emu_result.is_ok(), "the emulator failed: {emu_result:?}");
    // Every step reported, in order.
    let oks: Vec<&str> = out.lines().filter(|l| l.starts_with("ok: ")).collect();
    assert_eq!(oks.len(), steps.len(), "expected {} ok lines, got:\n{out}", steps.len());
    for (line, want) in oks.iter().zip(steps) {
        assert!(
            line.starts_with(want),
            "step line {line:?} should start with {want:?}\n{out}"
        );
    }
    assert!(
        took < Duration::from_secs(60),
        "the client took {:.1} s",
        took.as_secs_f64()
    );
}

#[test]
fn spinnman_drives_the_emulated_machine() {
    drive_board_0(
        "tests/clients/spinnman.toml",
        "tests/clients/spinnman_client.py",
        &["--machine-details"],
        SPINNMAN_STEPS,
    );
}

#[test]
fn rig_drives_the_emulated_machine() {
    drive_board_0("tests/clients/rig.toml", "tests/clients/rig_client.py", &[], RIG_STEPS);
}
