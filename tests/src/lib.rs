//! Shared helpers for spinnbed's integration and snapshot tests (the tests live in `tests/tests/`).
//!
//! The reference server (PyPI `spalloc-server`) is installed into a git-ignored venv at
//! `.venv-ref` by `tests/reference/setup-venv.sh` the first time a test needs it.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The Python interpreter of the reference venv, creating the venv on first use. Panics with
/// the script's output if it cannot be set up (the differential tests need it).
pub fn reference_python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let script = repo_root().join("tests/reference/setup-venv.sh");
        let out = Command::new("bash").arg(&script).output().expect("run setup-venv.sh");
        assert!(
            out.status.success(),
            "setting up the reference venv failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("setup-venv.sh prints the python path")
                .trim(),
        )
    })
    .clone()
}

/// Runs the reference replay driver and returns its output.
pub fn reference_replay(machine: &Path, trace: &Path, seconds_before_free: &str) -> String {
    let py = reference_python();
    let driver = repo_root().join("tests/reference/replay_ref.py");
    let out = Command::new(py)
        .arg(driver)
        .arg("--machine")
        .arg(machine)
        .arg("--trace")
        .arg(trace)
        .arg("--seconds-before-free")
        .arg(seconds_before_free)
        .output()
        .expect("run replay_ref.py");
    assert!(
        out.status.success(),
        "replay_ref.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs `sim emulate` for `sc` (in process, on a 2-thread tokio runtime, with `opts` and a
/// ready file) while `client` runs; returns what the client returned and the emulator's
/// statistics once it stopped. Each test serves its own loopback base (127.N.0.0), so tests
/// run side by side.
pub fn with_emulator<F, Fut, R>(
    sc: spinnbed_sim::scenario::Scenario,
    opts: spinnbed_realtime::emulate::EmulateOptions,
    client: F,
) -> (R, spinnbed_emulator::Stats)
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: std::future::Future<Output = R>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ready = dir.path().join("ready");
    rt.block_on(async {
        let stop = std::sync::Arc::new(tokio::sync::Notify::new());
        let opts = spinnbed_realtime::emulate::EmulateOptions {
            ready_file: Some(ready.clone()),
            duration: Some(std::time::Duration::from_secs(120)),
            stop: Some(stop.clone()),
            ..opts
        };
        let server = tokio::spawn(async move { spinnbed_realtime::emulate::emulate(&sc, &opts).await });
        for _ in 0..200 {
            if ready.exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert!(ready.exists(), "sim emulate did not bind its sockets");
        let r = client(ready.clone()).await;
        stop.notify_one();
        let stats = server.await.expect("the emulator task").expect("sim emulate");
        (r, stats)
    })
}
