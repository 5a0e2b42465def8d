//! The v1 differential test (issue #13): one scripted request sequence, sent in lockstep to
//! the REFERENCE server (PyPI `spalloc-server` 1!7.0.0 with its BMP access replaced by an
//! in-process fake, `tests/reference/spalloc_ref_server.py`) and to `sim serve` under the
//! spalloc policies, must give the same replies (start times aside) and the same
//! notifications on every connection.
//!
//! `sim serve` runs in-process on `tests/reference/v1_differential.toml` (two machines
//! emulated on 127.23.0.0 and 127.24.0.0). The reference's configuration is written here from
//! the machines parsed out of that scenario — shapes, dead boards and links, tags, board
//! locations, BMP and board addresses — and from its `[policy]`, so the two cannot drift.
//! `tests/reference/run_differential.py` starts the reference as side A and drives both with
//! `tests/reference/v1_differential_script.json` (written by `v1_differential_script.py`, which
//! says how the script is timed so that no notification can fall into different steps on the
//! two servers); the script's `note`s say why each step is there and why the few steps compared
//! loosely are (`exception_text: false`).

use serde_json::{Value, json};
use spinnbed_sim::scenario::Scenario;
use spinnbed_tests::{Served, reference_python, repo_root};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// How often the reference checks keepalives and delayed frees (its poll timeout). Short, so
/// that its expiries and frees happen within a step's settle time as `sim serve`'s (exact)
/// ones do.
const TIMEOUT_CHECK_INTERVAL: f64 = 0.1;

/// Seconds the harness waits after each step before collecting notifications (steps that
/// start BMP work or wait for timers say more in the script).
const SETTLE: &str = "0.1";

/// The reference's configuration (`spalloc_ref_server.py`'s CONFIG.json) for the scenario's
/// machines and policy.
fn reference_config(sc: &Scenario) -> Value {
    let machines: Vec<Value> = sc
        .machines
        .iter()
        .map(|mc| {
            let m = &mc.machine;
            json!({
                "name": m.name(),
                "tags": m.tags(),
                "width": m.width(),
                "height": m.height(),
                "dead_boards": m.dead_boards().iter().map(|b| json!([b.x, b.y, b.z])).collect::<Vec<_>>(),
                "dead_links": m
                    .dead_links()
                    .iter()
                    .map(|(b, l)| json!([b.x, b.y, b.z, *l as u8]))
                    .collect::<Vec<_>>(),
                "board_locations": m
                    .locations()
                    .map(|(b, p)| json!([b.x, b.y, b.z, p.cabinet, p.frame, p.board]))
                    .collect::<Vec<_>>(),
                "bmp_ips": m
                    .bmps()
                    .map(|(f, ip)| json!([f.cabinet, f.frame, ip.to_string()]))
                    .collect::<Vec<_>>(),
                "spinnaker_ips": m
                    .board_ips()
                    .map(|(b, ip)| json!([b.x, b.y, b.z, ip.to_string()]))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "machines": machines,
        "seconds_before_free": sc.policy.seconds_before_free.as_secs_f64(),
        "timeout_check_interval": TIMEOUT_CHECK_INTERVAL,
        "max_retired_jobs": sc.policy.max_retired_jobs,
    })
}

/// The steps of a transcript that differ, with both sides' wire logs, for the failure message.
fn differing_steps(transcript: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(transcript) else {
        return format!("(no transcript at {})", transcript.display());
    };
    let Ok(doc) = serde_json::from_str::<Value>(&text) else {
        return format!("(the transcript at {} is not JSON)", transcript.display());
    };
    let mut out = String::new();
    for step in doc["steps"].as_array().into_iter().flatten() {
        let diffs = step["differences"].as_array().map_or(0, Vec::len);
        if diffs == 0 {
            continue;
        }
        out += &format!("\n=== step {}: {}\n", step["index"], step["step"]);
        for d in step["differences"].as_array().into_iter().flatten() {
            out += &format!("  {}\n", d.as_str().unwrap_or_default());
        }
        for side in ["a", "b"] {
            out += &format!(
                "  -- {} (wire):\n",
                if side == "a" {
                    "A, the reference"
                } else {
                    "B, sim serve"
                }
            );
            for w in step[side]["wire"].as_array().into_iter().flatten() {
                out += &format!(
                    "    {:>8} [{}] {} {}\n",
                    w["t"],
                    w["conn"].as_str().unwrap_or_default(),
                    w["what"].as_str().unwrap_or_default(),
                    w["line"].as_str().unwrap_or_default()
                );
            }
        }
    }
    out
}

/// Replies B (`sim serve`) gave in a transcript: each step's awaited reply and the replies
/// that came unawaited (after a write holding several requests).
fn replies_of_b(transcript: &Path) -> u64 {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(transcript).expect("the transcript"))
        .expect("the transcript is JSON");
    let steps = doc["steps"].as_array().expect("steps");
    let awaited = steps.iter().filter(|s| s["b"]["outcome"]["kind"] == "reply").count();
    let unawaited = steps
        .iter()
        .flat_map(|s| s["b"]["events"].as_object().into_iter().flat_map(|e| e.values()))
        .flat_map(|e| e["other"].as_array().into_iter().flatten())
        .filter(|o| o.as_str().is_some_and(|o| o.starts_with("unexpected reply ")))
        .count();
    (awaited + unawaited) as u64
}

#[test]
fn sim_serve_answers_the_v1_protocol_as_the_reference_server_does() {
    let started = Instant::now();
    let py = reference_python();
    let scenario = repo_root().join("tests/reference/v1_differential.toml");
    let script = repo_root().join("tests/reference/v1_differential_script.json");
    let sc = spinnbed_sim::scenario::load(&scenario).unwrap_or_else(|e| panic!("{e}"));
    let written = Command::new(&py)
        .arg(repo_root().join("tests/reference/v1_differential_script.py"))
        .output()
        .expect("run v1_differential_script.py");
    assert!(written.status.success(), "{}", String::from_utf8_lossy(&written.stderr));
    assert!(
        written.stdout == std::fs::read(&script).expect("the script"),
        "{} is not what v1_differential_script.py writes: edit the .py and run it again",
        script.display()
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("reference.json");
    // Kept after the test, for reading what both servers said.
    let transcript = Path::new(env!("CARGO_TARGET_TMPDIR")).join("spalloc_differential_transcript.json");
    std::fs::write(
        &config,
        serde_json::to_string_pretty(&reference_config(&sc)).expect("JSON"),
    )
    .expect("write the reference's config");

    let served = Served::start(&scenario, &dir.path().join("state"));
    let out = Command::new(&py)
        .arg(repo_root().join("tests/reference/run_differential.py"))
        .arg("--script")
        .arg(&script)
        .arg("--config")
        .arg(&config)
        .arg("--b-addr")
        .arg(served.addr.to_string())
        .arg("--python")
        .arg(&py)
        .arg("--settle")
        .arg(SETTLE)
        .arg("--transcript")
        .arg(&transcript)
        .output()
        .expect("run run_differential.py");
    let (report, _) = served.stop();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "{stdout}the differential took {:.1} s; transcript: {}",
        started.elapsed().as_secs_f64(),
        transcript.display()
    );
    assert!(
        out.status.code() == Some(0),
        "sim serve and the reference differ (exit {:?}):\n{stderr}\nthe differing steps:{}",
        out.status.code(),
        differing_steps(&transcript)
    );
    assert!(stdout.contains("v1_differential: equivalent"), "{stdout}");
    // B really was this server: it answered every request the harness saw answered.
    assert_eq!(report.requests, replies_of_b(&transcript), "{report:?}");
}
