//! Live output (`[host.live_output]`): simulated users stream EIEIO from their applications to
//! the host's listener through IP tags, over the same board links as their SCP loading.
//! `scenarios/live-output.toml` (trimmed) delivers events for every streaming job, loses some
//! under loss and counts them consistently, and gives byte-identical files twice; without loss
//! every event arrives. Over real UDP (`sim run --hardware` against `sim emulate` on loopback)
//! the same listener receives the streams.

use spinnbed_outputs::rows::{JobRow, LiveRow, Row};
use spinnbed_realtime::emulate::EmulateOptions;
use spinnbed_realtime::hardware::{RealtimeOptions, run};
use spinnbed_sim::run::{Perf, RunSpec, simulate, stage_outputs, write_outputs};
use spinnbed_sim::scenario;
use spinnbed_sim::world::Outcome;
use std::path::Path;

fn scenarios() -> std::path::PathBuf {
    spinnbed_tests::repo_root().join("scenarios")
}

/// `scenarios/live-output.toml` with fewer, shorter jobs over a shorter horizon (the streams
/// run mostly while their jobs load), the loss burst moved into it, and the given `[network]
/// loss` (faults dropped if `loss` is zero).
fn trimmed(loss: &str) -> String {
    let text = std::fs::read_to_string(scenarios().join("live-output.toml")).unwrap();
    let mut t = text
        .replace("jobs = 30", "jobs = 12")
        .replace("horizon = \"10m\"", "horizon = \"3m\"")
        .replace("min = \"20s\", max = \"60s\"", "min = \"1s\", max = \"3s\"")
        .replace("min = \"30s\", max = \"90s\"", "min = \"1s\", max = \"3s\"")
        .replace("at = \"4m\"", "at = \"1m\"")
        .replace("loss = 0.005", &format!("loss = {loss}"));
    if loss == "0" {
        let faults = t.find("[[faults]]").unwrap();
        let workload = t.find("[workload]").unwrap();
        t.replace_range(faults..workload, "");
    }
    assert_ne!(t, text);
    t
}

/// Runs scenario text into `dir` as `sim run` does (report included).
fn run_text_into(text: &str, dir: &Path) {
    let sc = scenario::parse("live.toml", text, &scenarios()).unwrap();
    let spec = RunSpec::from_scenario(&sc, sc.jobs().unwrap());
    let (result, meta) = simulate(&spec, |_| {}).unwrap();
    let perf = Perf::new(&result, std::time::Duration::from_secs(1));
    let staged = stage_outputs(dir).unwrap();
    write_outputs(staged, &result, &meta, &sc.to_resolved_toml(), &perf).unwrap();
    spinnbed_reports::generate(dir).unwrap();
}

fn live_rows(dir: &Path) -> Vec<LiveRow> {
    let mut r = csv::Reader::from_path(dir.join("live.csv")).unwrap();
    assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>(), LiveRow::COLUMNS);
    r.deserialize().collect::<Result<_, _>>().unwrap()
}

fn job_rows(dir: &Path) -> Vec<JobRow> {
    csv::Reader::from_path(dir.join("jobs.csv"))
        .unwrap()
        .deserialize()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// Checks what every run with live output must show; returns the rows.
fn check_consistent(dir: &Path) -> Vec<LiveRow> {
    let rows = live_rows(dir);
    let jobs = job_rows(dir);
    assert!(!rows.is_empty(), "some users stream");
    assert!(rows.len() < jobs.len(), "half of the users stream, not all");
    for r in &rows {
        let job = jobs
            .iter()
            .find(|j| j.id == r.id)
            .expect("a streaming job is in jobs.csv");
        if r.started_s.is_none() {
            // Its user gave up before streaming (a boot lost in the loss burst).
            assert_eq!(job.outcome, "failed", "job {}: {}", r.id, job.reason);
            assert!(!job.reason.contains("live output"), "{}", job.reason);
            assert_eq!((r.sent, r.delivered, r.datagrams), (None, 0, 0), "{r:?}");
            continue;
        }
        assert_eq!(job.outcome, "completed", "job {}: {}", r.id, job.reason);
        assert!(r.stopped_s.is_some(), "{r:?}");
        assert!(r.delivered > 0, "job {} delivered nothing: {r:?}", r.id);
        let sent = r.sent.expect("the emulator's count");
        assert_eq!(r.delivered + r.dropped, sent, "{r:?}");
        assert!(r.detected <= r.dropped, "{r:?}");
        assert_eq!(r.duplicates, 0, "the network duplicates nothing: {r:?}");
        assert_eq!(sent % 62, 0, "whole datagrams of 62 events: {r:?}");
        // 62 events per datagram, 254 bytes each (2-byte header, 4-byte timestamp, 62 keys).
        assert_eq!(r.delivered, r.datagrams * 62, "{r:?}");
        assert_eq!(r.bytes, r.datagrams * 254, "{r:?}");
        // At least SC&MP's 38 µs, a 254-byte datagram's 26 µs on the 100 Mbit/s link and the
        // network's 0.15 ms.
        let (p50, p99, max) = (
            r.latency_p50_ms.unwrap(),
            r.latency_p99_ms.unwrap(),
            r.latency_max_ms.unwrap(),
        );
        assert!(0.213 <= p50 && p50 <= p99 && p99 <= max, "{r:?}");
        assert!(!r.failed.0, "{r:?}");
    }
    // summary.json `live` adds up.
    let s = &summary(dir)["live"];
    let sum = |f: fn(&LiveRow) -> u64| rows.iter().map(f).sum::<u64>();
    assert_eq!(s["jobs"].as_u64(), Some(rows.len() as u64));
    assert_eq!(s["delivered"].as_u64(), Some(sum(|r| r.delivered)));
    assert_eq!(s["dropped"].as_u64(), Some(sum(|r| r.dropped)));
    assert_eq!(s["detected"].as_u64(), Some(sum(|r| r.detected)));
    assert_eq!(s["sent"].as_u64(), Some(sum(|r| r.sent.unwrap())));
    assert_eq!(s["datagrams"].as_u64(), Some(sum(|r| r.datagrams)));
    assert_eq!(s["malformed"].as_u64(), Some(0));
    assert!(dir.join("report/live.png").is_file() && dir.join("report/live.svg").is_file());
    let html = std::fs::read_to_string(dir.join("report/index.html")).unwrap();
    assert!(html.contains("live.png"), "the report links the live-output chart");
    rows
}

#[test]
fn the_live_output_scenario_streams_loses_and_counts_consistently_and_deterministically() {
    let text = trimmed("0.005");
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    run_text_into(&text, &a.path().join("run"));
    run_text_into(&text, &b.path().join("run"));
    let rows = check_consistent(&a.path().join("run"));
    // Under loss, events are lost, and most losses show as gaps in the streams' counters.
    let dropped: u64 = rows.iter().map(|r| r.dropped).sum();
    let detected: u64 = rows.iter().map(|r| r.detected).sum();
    let sent: u64 = rows.iter().map(|r| r.sent.unwrap()).sum();
    assert!(dropped > 0, "{rows:?}");
    assert!(detected * 10 >= dropped * 9, "detected {detected} of {dropped}");
    // The loss burst (20 % for 30 s) and 0.5 % elsewhere: well under a tenth of all events.
    assert!(dropped * 10 < sent, "{dropped} of {sent}");
    // The streams share their boards' Ethernet and SC&MP with their own jobs' loading: the
    // streaming jobs move their data more slowly than the others, and their streams queue behind
    // the loading (a worst latency well above the median).
    let out = a.path().join("run");
    let scp: Vec<spinnbed_outputs::rows::ScpJobRow> = csv::Reader::from_path(out.join("scp_jobs.csv"))
        .unwrap()
        .deserialize()
        .collect::<Result<_, _>>()
        .unwrap();
    let completed: Vec<u64> = job_rows(&out)
        .iter()
        .filter(|j| j.outcome == "completed")
        .map(|j| j.id)
        .collect();
    let mean = |streaming: bool| {
        let g: Vec<f64> = scp
            .iter()
            .filter(|j| completed.contains(&j.id) && rows.iter().any(|r| r.id == j.id) == streaming)
            .map(|j| j.goodput_mbps)
            .collect();
        assert!(!g.is_empty());
        g.iter().sum::<f64>() / g.len() as f64
    };
    let (with, without) = (mean(true), mean(false));
    assert!(
        with < 0.9 * without,
        "SCP goodput {with} Mbit/s streaming, {without} not"
    );
    for r in rows.iter().filter(|r| r.started_s.is_some()) {
        assert!(r.latency_max_ms.unwrap() > 1.5 * r.latency_p50_ms.unwrap(), "{r:?}");
    }
    for f in ["live.csv", "summary.json", "jobs.csv", "scp_jobs.csv", "scenario.toml"] {
        assert_eq!(
            std::fs::read(a.path().join("run").join(f)).unwrap(),
            std::fs::read(b.path().join("run").join(f)).unwrap(),
            "{f} differs between two runs of the same scenario and seed"
        );
    }
}

#[test]
fn without_loss_every_event_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    run_text_into(&trimmed("0"), &out);
    for r in check_consistent(&out) {
        assert_eq!((r.dropped, r.detected), (0, 0), "{r:?}");
        assert_eq!(Some(r.delivered), r.sent);
    }
}

/// Runs without `[host.live_output]` write no `live.csv` and no `live` summary.
#[test]
fn without_live_output_there_is_no_live_file() {
    let text = trimmed("0");
    let start = text.find("[host.live_output]").unwrap();
    let end = text.find("[network]").unwrap();
    let mut plain = text.clone();
    plain.replace_range(start..end, "");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    run_text_into(&plain, &out);
    assert!(!out.join("live.csv").exists());
    assert!(summary(&out).get("live").is_none());
    assert!(!out.join("report/live.png").exists());
}

/// `sim run --hardware` against `sim emulate` over loopback UDP (127.63.0.0): the users' IP tags
/// point at the run's listener socket and every streaming job's events arrive there. Latency
/// and sent counts are not known in real time (the emulator's clock is not the host's).
#[test]
fn over_udp_the_same_listener_receives_the_streams() {
    let text = std::fs::read_to_string(scenarios().join("hardware-quick.toml")).unwrap();
    assert!(text.contains("base = \"127.4.0.0\"") && text.contains("boot_tries = 3\n"));
    let text = text.replace("base = \"127.4.0.0\"", "base = \"127.63.0.0\"").replace(
        "boot_tries = 3\n",
        "boot_tries = 3\n\n[host.live_output]\nrate = 200\nkeys_per_packet = 20\n",
    );
    let sc = scenario::parse("live-udp.toml", &text, &scenarios()).unwrap();
    let spec = RunSpec::from_scenario(&sc, sc.jobs().unwrap());
    let eopts = EmulateOptions {
        quiet: true,
        ..EmulateOptions::default()
    };
    let opts = RealtimeOptions::default();
    let (real, stats) = spinnbed_tests::with_emulator(sc.clone(), eopts, |_| run(&spec, &opts, |_| {}));
    let real = real.unwrap();
    assert!(real.left_powered.is_empty(), "{:?}", real.left_powered);
    let r = real.result;
    let mut datagrams = 0;
    for (rec, live) in r.records.iter().zip(&r.job_live) {
        assert_eq!(rec.outcome, Outcome::Completed, "job {}: {}", rec.index, rec.reason);
        let live = live.as_ref().unwrap_or_else(|| panic!("job {} streamed", rec.index));
        assert!(live.started.is_some() && live.stopped.is_some(), "{live:?}");
        assert!(!live.failed);
        assert_eq!(live.sent, None, "not known over UDP");
        assert_eq!(live.report.latency, None, "not measured over UDP");
        // Runtimes of a few seconds at 200 datagrams/s.
        assert!(live.report.delivered >= 100 * 20, "job {}: {live:?}", rec.index);
        assert_eq!(live.report.delivered, live.received.datagrams * 20, "{live:?}");
        assert_eq!(live.report.duplicates, 0);
        // Loopback loses nothing, short of a full socket buffer.
        assert!(live.report.dropped * 100 <= live.report.delivered, "{live:?}");
        datagrams += live.received.datagrams;
    }
    let totals = r.live.expect("the listener's counters");
    assert_eq!(totals.listener.malformed, 0);
    assert!(totals.listener.delivered >= datagrams, "{totals:?}");
    // What the emulator streamed is what the listener got, give or take datagrams in flight when
    // a session ended.
    assert!(stats.eieio_out >= datagrams, "{} < {datagrams}", stats.eieio_out);
}
