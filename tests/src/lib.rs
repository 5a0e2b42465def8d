//! Shared helpers for spinnbed's integration and snapshot tests (the tests live in `tests/tests/`).
//!
//! The reference server (PyPI `spalloc-server`) is installed into a git-ignored venv at
//! `.venv-ref` by `tests/reference/setup-venv.sh` the first time a test needs it.
#![forbid(unsafe_code)]

pub mod rest_client;
pub mod slurm;

use spinnbed_core::service::ServiceEvent;
use spinnbed_core::time::Instant;
use spinnbed_realtime::serve::{ServeOptions, ServeReport, serve};
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

/// Runs a venv set-up script (`bash SCRIPT ARGS`) and returns the python path it prints last.
/// Panics with the script's output if it fails.
pub fn venv_python(script: &str, args: &[&str]) -> PathBuf {
    let out = Command::new("bash")
        .arg(repo_root().join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.lines().last().expect("the script prints the python path").trim())
}

/// The Python interpreter of the reference venv (`.venv-ref`, PyPI `spalloc-server`), created
/// on first use (once per test binary: tests run on parallel threads).
pub fn reference_python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| venv_python("tests/reference/setup-venv.sh", &[]))
        .clone()
}

/// The Python interpreter of the real-client venv (`.venv-clients`: PyPI spinnman and rig),
/// created on first use.
pub fn clients_python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| venv_python("tests/clients/setup-venv.sh", &[]))
        .clone()
}

/// The Python interpreter of the venv of the PyPI `spalloc` client 1!`version` (`7.4.1` or
/// `7.3.0`; `.venv-spalloc-VERSION`), created on first use.
pub fn spalloc_client_python(version: &str) -> PathBuf {
    static PY: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut known = PY.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = known.iter().find(|(v, _)| v == version) {
        return p.clone();
    }
    let p = venv_python("tests/spalloc/setup-venv.sh", &[version]);
    known.push((version.to_string(), p.clone()));
    p
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

/// `sim emulate` in-process on its own thread and current-thread tokio runtime, for tests whose
/// clients are other processes; stopped (its future dropped, its sockets closed) by
/// [`EmulatorThread::stop`] or when dropped.
pub struct EmulatorThread {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl EmulatorThread {
    /// Starts serving `scenario` with `opts`, whose `ready_file` must be set, and waits (up to
    /// 20 s) until every socket is bound.
    pub fn start(scenario: &Path, opts: spinnbed_realtime::emulate::EmulateOptions) -> EmulatorThread {
        let sc = spinnbed_sim::scenario::load(scenario).expect("load the scenario");
        let ready_file = opts.ready_file.clone().expect("EmulatorThread needs a ready file");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || -> Result<(), String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start tokio: {e}"))?;
            rt.block_on(async {
                tokio::select! {
                    r = spinnbed_realtime::emulate::emulate(&sc, &opts) =>
                        r.map(|_| ()).map_err(|e| format!("sim emulate: {e:#}")),
                    _ = stopped => Ok(()),
                }
            })
        });
        let mut emu = EmulatorThread {
            stop: Some(stop),
            thread: Some(thread),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !ready_file.exists() {
            if emu.thread.as_ref().is_some_and(|t| t.is_finished()) {
                let r = emu.thread.take().unwrap().join().expect("emulator thread panicked");
                panic!("the emulator stopped before it was ready: {r:?}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the emulator was not ready within 20 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        emu
    }

    /// Stops the emulator and reports whether it had failed.
    pub fn stop(mut self) -> Result<(), String> {
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

impl Drop for EmulatorThread {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Runs a command with a deadline (killed when it passes); returns (success, stdout, stderr,
/// wall time).
pub fn run_with_deadline(
    mut cmd: Command,
    deadline: std::time::Duration,
) -> (bool, String, String, std::time::Duration) {
    use std::io::Read;
    let start = std::time::Instant::now();
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
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
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    let err = match status {
        None => format!("{err}\n(killed: no result within {deadline:?})"),
        Some(_) => err,
    };
    (status.is_some_and(|s| s.success()), out, err, start.elapsed())
}

/// The name of the threads of a [`Served`] server (its loop and its runtime's workers), so that
/// a profile of a test or benchmark tells them from the client's (`perf report --comm sim-serve`).
pub const SERVE_THREAD: &str = "sim-serve";

/// A `sim serve` running in-process on its own thread and tokio runtime, on `127.0.0.1:0`,
/// quiet, with its state in a given directory.
pub struct Served {
    /// The address it listens on.
    pub addr: std::net::SocketAddr,
    /// The REST API's address ([`Served::start_with_rest`] only).
    pub rest: Option<std::net::SocketAddr>,
    stop: std::sync::Arc<tokio::sync::Notify>,
    events: std::sync::mpsc::Receiver<(Instant, ServiceEvent)>,
    thread: std::thread::JoinHandle<Result<ServeReport, String>>,
}

impl Served {
    /// Loads `scenario` and serves it (its machines emulated on their addresses) until
    /// [`Served::stop`]. Panics if the server does not start within a minute.
    pub fn start(scenario: &Path, state: &Path) -> Served {
        Served::start_inner(scenario, state, false)
    }

    /// As [`Served::start`], with the REST API and its proxy on 127.0.0.1 (a free port; its
    /// self-signed certificate in `state/tls/cert.pem`).
    pub fn start_with_rest(scenario: &Path, state: &Path) -> Served {
        Served::start_inner(scenario, state, true)
    }

    fn start_inner(scenario: &Path, state: &Path, rest: bool) -> Served {
        use std::sync::{Arc, mpsc};
        let sc = spinnbed_sim::scenario::load(scenario).unwrap_or_else(|e| panic!("{e}"));
        let ready = Arc::new(tokio::sync::Notify::new());
        let stop = Arc::new(tokio::sync::Notify::new());
        let bound = Arc::new(OnceLock::new());
        let (tx, events) = mpsc::channel();
        let mut opts = ServeOptions::new(state.to_path_buf());
        opts.listen = "127.0.0.1:0".parse().expect("an address");
        opts.quiet = true;
        opts.ready = Some(ready.clone());
        opts.stop = Some(stop.clone());
        opts.bound = Some(bound.clone());
        opts.events = Some(tx);
        let rest_bound = Arc::new(OnceLock::new());
        if rest {
            opts.rest_listen = Some("127.0.0.1:0".parse().expect("an address"));
            opts.rest_bound = Some(rest_bound.clone());
        }
        let (up_tx, up_rx) = mpsc::channel();
        let thread = std::thread::Builder::new().name(SERVE_THREAD.into());
        let thread = thread.spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name(SERVE_THREAD)
                .enable_all()
                .build()
                .expect("a tokio runtime");
            rt.block_on(async move {
                // (The server's future holds the service, which is not `Send`: it runs here.)
                let up = tokio::spawn(async move {
                    ready.notified().await;
                    let _ = up_tx.send(());
                });
                let r = serve(&sc, &opts).await;
                up.abort();
                r.map_err(|e| e.to_string())
            })
        });
        let thread = thread.expect("a thread for sim serve");
        if up_rx.recv_timeout(std::time::Duration::from_secs(60)).is_err() {
            let r = thread.join();
            panic!("sim serve did not start: {r:?}");
        }
        let addr = *bound.get().expect("the address is set before ready");
        Served {
            addr,
            rest: rest_bound.get().copied(),
            stop,
            events,
            thread,
        }
    }

    /// Stops the server (as SIGTERM does) and returns its report and every service event.
    pub fn stop(self) -> (ServeReport, Vec<(Instant, ServiceEvent)>) {
        self.stop.notify_one();
        let report = self
            .thread
            .join()
            .expect("the server thread")
            .unwrap_or_else(|e| panic!("sim serve failed: {e}"));
        (report, self.events.try_iter().collect())
    }
}
