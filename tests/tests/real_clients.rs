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
use spinnbed_realtime::emulate::EmulateOptions;
use spinnbed_tests::{EmulatorThread, clients_python, repo_root, run_with_deadline};
use std::process::Command;
use std::time::Duration;

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
    let emu = EmulatorThread::start(
        &scenario,
        EmulateOptions {
            ready_file: Some(dir.path().join("ready")),
            duration: Some(EMULATOR_CAP),
            quiet: false,
            ..EmulateOptions::default()
        },
    );

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
