//! `sim serve` with the real PyPI `spalloc` clients, and its journal replayed in simulation.
//!
//! The server runs in-process (`spinnbed_realtime::serve::serve` on its own thread and tokio
//! runtime) on `tests/spalloc/v1.toml`: two machines emulated on loopback (127.21.0.0 and
//! 127.22.0.0), the spalloc policies, state in a temporary directory. The client session is
//! `tests/spalloc/v1_clients.py`, run with the python of a venv holding the real `spalloc`
//! 1!7.4.1 (`tests/spalloc/setup-venv.sh`): every command-line tool and the `Job` API, their
//! printed output and exit codes (the error paths too), `spalloc-where-is` of 1!7.3.0 for the
//! forms 1!7.4.x breaks, and rig (from the real-client venv) booting a board the server handed
//! out and reading its 48 chips over SCP.
//!
//! Then the journal the live server wrote is replayed as a `sim run` workload under the same
//! machines and policies: every job must get the same boards on the same machine at the same
//! microsecond as it did live, and become ready and end when it did.

use spinnbed_core::service::ServiceEvent;
use spinnbed_core::time::Instant;
use spinnbed_realtime::serve::{ServeOptions, ServeReport, serve};
use spinnbed_tests::{clients_python, repo_root, spalloc_client_python};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, OnceLock, mpsc};

/// A `sim serve` running in-process on its own thread.
struct Served {
    addr: SocketAddr,
    stop: Arc<tokio::sync::Notify>,
    events: mpsc::Receiver<(Instant, ServiceEvent)>,
    thread: std::thread::JoinHandle<Result<ServeReport, String>>,
}

impl Served {
    fn start(scenario: &Path, state: &Path) -> Served {
        let sc = spinnbed_sim::scenario::load(scenario).unwrap_or_else(|e| panic!("{e}"));
        let ready = Arc::new(tokio::sync::Notify::new());
        let stop = Arc::new(tokio::sync::Notify::new());
        let bound = Arc::new(OnceLock::new());
        let (tx, events) = mpsc::channel();
        let mut opts = ServeOptions::new(state.to_path_buf());
        opts.listen = "127.0.0.1:0".parse().unwrap();
        opts.quiet = true;
        opts.ready = Some(ready.clone());
        opts.stop = Some(stop.clone());
        opts.bound = Some(bound.clone());
        opts.events = Some(tx);
        let (up_tx, up_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
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
        if up_rx.recv_timeout(std::time::Duration::from_secs(60)).is_err() {
            let r = thread.join();
            panic!("sim serve did not start: {r:?}");
        }
        let addr = *bound.get().expect("the address is set before ready");
        Served {
            addr,
            stop,
            events,
            thread,
        }
    }

    /// Stops the server (as SIGTERM does) and returns its report and every service event.
    fn stop(self) -> (ServeReport, Vec<(Instant, ServiceEvent)>) {
        self.stop.notify_one();
        let report = self
            .thread
            .join()
            .expect("the server thread")
            .unwrap_or_else(|e| panic!("sim serve failed: {e}"));
        (report, self.events.try_iter().collect())
    }
}

/// The steps `v1_clients.py` must report, in order.
const STEPS: &[&str] = &[
    "version",
    "spalloc-machine",
    "spalloc-machine unknown machine",
    "spalloc-ps idle",
    "spalloc allocates and keeps a job",
    "spalloc-ps",
    "spalloc-job",
    "spalloc-job power",
    "spalloc-where-is",
    "spalloc-where-is (1!7.3.0)",
    "spalloc-job --destroy",
    "spalloc impossible request",
    "error paths",
    "Job API",
    "keepalive expiry",
    "watching",
];

#[test]
fn the_real_spalloc_clients_use_sim_serve_and_its_journal_replays_exactly() {
    let py = spalloc_client_python("7.4.1");
    let py73 = spalloc_client_python("7.3.0");
    let rig = clients_python();
    let scenario = repo_root().join("tests/spalloc/v1.toml");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let served = Served::start(&scenario, &state);
    let out = Command::new(&py)
        .arg(repo_root().join("tests/spalloc/v1_clients.py"))
        .arg("--port")
        .arg(served.addr.port().to_string())
        .arg("--bin73")
        .arg(py73.parent().expect("the venv's bin"))
        .arg("--rig-python")
        .arg(&rig)
        .output()
        .expect("run v1_clients.py");
    let (report, events) = served.stop();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(out.status.success(), "the client session failed:\n{stdout}\n{stderr}");
    let mut lines = stdout.lines().filter(|l| l.starts_with("ok: "));
    for step in STEPS {
        let want = format!("ok: {step}: ");
        assert!(
            lines.any(|l| l.starts_with(&want)),
            "step {step:?} missing or out of order:\n{stdout}"
        );
    }
    assert!(stdout.contains("ok: spalloc 1!7.4.1: all steps passed"), "{stdout}");
    assert!(report.requests > 50, "{report:?}");

    // The job log, in the reference's format.
    let log = std::fs::read_to_string(state.join("spalloc_jobs.log")).unwrap();
    assert!(log.contains(": create_job((2, 1),{"), "{log}");
    assert!(log.contains("'owner': 'alice'"), "{log}");
    assert!(
        log.contains("destroy_job(") && log.contains(",all done) from 127.0.0.1"),
        "{log}"
    );
    assert!(log.contains("Job timed out."), "{log}");

    replay_matches_live(&scenario, &state, &events);
}

/// What the live server did with a job: when it was allocated, where, when it was ready and
/// when it ended.
#[derive(Debug, Default, PartialEq)]
struct Life {
    allocated: Option<Instant>,
    machine: Option<String>,
    boards: Vec<spinnbed_core::geometry::Board>,
    ready: Option<Instant>,
    end: Option<Instant>,
}

/// Replays the state directory's journal under the scenario's machines and policies and checks
/// each job's life against the live events.
fn replay_matches_live(scenario: &Path, state: &Path, events: &[(Instant, ServiceEvent)]) {
    // The journal's first input is the replay's time zero.
    let bytes = std::fs::read(state.join("journal")).unwrap();
    let mut reader = spinnbed_spalloc::journal::Reader::new(&bytes).unwrap();
    let first = reader
        .by_ref()
        .find_map(|i| i.unwrap().time())
        .expect("the journal has inputs");
    assert!(reader.torn_tail().is_none());
    let rel = |t: Instant| Instant(t.as_micros() - first.as_micros());
    let mut live: BTreeMap<u64, Life> = BTreeMap::new();
    for (t, ev) in events {
        let Some(job) = ev.job() else { continue };
        let l = live.entry(job.0).or_default();
        match ev {
            ServiceEvent::Allocated { machine, boards, .. } => {
                l.allocated.get_or_insert(rel(*t));
                l.machine = Some(machine.clone());
                l.boards = boards.clone();
            }
            ServiceEvent::Ready { .. } => {
                l.ready.get_or_insert(rel(*t));
            }
            ServiceEvent::Destroyed { .. } => l.end = Some(rel(*t)),
            _ => {}
        }
    }
    assert!(live.values().filter(|l| l.allocated.is_some()).count() >= 6, "{live:?}");

    // The scenario with its workload replaced by the journal.
    let text = std::fs::read_to_string(scenario).unwrap();
    let head = text.split("\n[workload]").next().unwrap();
    let replay_text = format!(
        "{head}\n[workload]\nsource = \"journal\"\npath = {:?}\n",
        state.display().to_string()
    );
    let sc = spinnbed_sim::scenario::parse("replay.toml", &replay_text, &repo_root())
        .unwrap_or_else(|e| panic!("{e}\n{replay_text}"));
    let (jobs, wreport) = sc.workload().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("replay: {wreport}");
    let mut spec = spinnbed_sim::run::RunSpec::from_scenario(&sc, jobs);
    spec.recorded_bmp = wreport.recorded_bmp.clone();
    let (result, _) = spinnbed_sim::run::simulate(&spec, |_| {}).unwrap();
    let mut replayed: BTreeMap<u64, Life> = BTreeMap::new();
    for r in &result.records {
        replayed.insert(
            result.jobs[r.index].id,
            Life {
                allocated: r.start,
                machine: r.machine.clone(),
                boards: r.boards.clone(),
                ready: r.ready,
                end: r.end,
            },
        );
    }
    assert_eq!(
        live.keys().collect::<Vec<_>>(),
        replayed.keys().collect::<Vec<_>>(),
        "the same jobs"
    );
    for (id, l) in &live {
        let r = &replayed[id];
        assert_eq!(
            (&l.allocated, &l.machine, &l.boards),
            (&r.allocated, &r.machine, &r.boards),
            "job {id}: live {l:?}, replayed {r:?}"
        );
        assert_eq!(l.ready, r.ready, "job {id}: live {l:?}, replayed {r:?}");
        // A job still live when the server stopped holds its boards past the replay's horizon.
        if l.end.is_some() {
            assert_eq!(l.end, r.end, "job {id}: live {l:?}, replayed {r:?}");
        }
    }
}
