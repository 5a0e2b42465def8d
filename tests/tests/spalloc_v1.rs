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
use spinnbed_tests::{Served, clients_python, repo_root, spalloc_client_python};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

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
