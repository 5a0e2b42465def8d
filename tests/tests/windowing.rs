//! The SCP windowing study on the shipped grid (`scenarios/scp-windowing.toml`: 11 policies,
//! 5 network conditions, read and write, 5 losses, 3 RTTs, 3 seeds, against a board whose
//! SC&MP takes 65 µs per 256-byte read and 61 µs per write):
//!
//! - the adaptive policy meets its targets in every condition: ≥ 90 % of the window-of-8 bound
//!   (headers and SC&MP's service time included) at zero loss, never below 97 % of spinnman's,
//!   spinnman-legacy's or rig's goodput in any cell, at least twice spinnman at 5 % loss;
//! - every policy reaches its own limit on a clean path and recovers from loss;
//! - per network condition and operation the study names a winner (an adaptive policy) and by
//!   how much it beats the real clients;
//! - pacing 16 channels with a token bucket avoids SC&MP's tag overflow (and more than doubles
//!   their goodput there), while pacing a window of 8 only costs throughput;
//! - the study is deterministic.

use spinnbed_sim::scenario::{self, TransferOp};
use spinnbed_sim::study::{Cell, Findings};
use std::path::Path;

fn run(sc: &scenario::Scenario, dir: &Path) -> Findings {
    spinnbed_sim::study::run_into(sc, spinnbed_sim::run::stage_outputs(dir).unwrap(), |_, _| {}).unwrap()
}

fn cell<'a>(cells: &'a [Cell], network: &str, policy: &str, op: &str, loss: f64, rtt_ms: f64) -> &'a Cell {
    cells
        .iter()
        .find(|c| c.network == network && c.policy == policy && c.op == op && c.loss == loss && c.rtt_ms == rtt_ms)
        .unwrap_or_else(|| panic!("no cell {network} {policy} {op} {loss} {rtt_ms}"))
}

#[test]
fn the_shipped_study_meets_its_targets_under_every_network_condition() {
    let path = spinnbed_tests::repo_root().join("scenarios/scp-windowing.toml");
    let sc = scenario::load(&path).unwrap();
    let study = sc.study().cloned().expect("scp-windowing.toml has a [study]");
    assert_eq!(study.losses, vec![0.0, 0.001, 0.01, 0.05, 0.1]);
    assert_eq!(study.rtts.len(), 3);
    let networks: Vec<&str> = study.networks.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(networks, ["clean", "jitter", "reorder", "bursty", "duplicate"]);
    let policies: Vec<String> = study.all_policies().into_iter().map(|p| p.name).collect();
    assert_eq!(
        policies,
        [
            "spinnman",
            "spinnman-legacy",
            "rig",
            "adaptive",
            "spinnman paced",
            "adaptive paced",
            "spinnman 0.1s",
            "pipe c4 w3",
            "pipe c4 w3 paced",
            "pipe c16 w15",
            "pipe c16 w15 paced"
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    let found = run(&sc, &dir.path().join("w"));
    let cells = &found.cells;
    assert_eq!(cells.len(), 11 * 2 * 5 * 3 * 5);

    // The targets.
    let v = &found.verdict;
    assert_eq!(v.references, ["spinnman", "spinnman-legacy", "rig"]);
    assert!(v.adaptive_vs_bound_at_zero_loss >= 0.9, "{v:?}");
    assert!(v.cells_worse_than_a_reference.is_empty(), "{v:?}");
    assert!(
        v.adaptive_vs_references_worst >= spinnbed_sim::study::NOISE_TOLERANCE,
        "{v:?}"
    );
    assert!(v.adaptive_vs_spinnman_at_5pct >= 2.0, "{v:?}");

    // Every reference reaches its own limit on a clean path: spinnman the window of 8 (the
    // bound), the stop-and-wait clients one chunk per round trip plus SC&MP's service time.
    let scamp = spinnbed_sim::scenario::ScampTiming::default();
    for c in cells.iter().filter(|c| c.network == "clean" && c.loss == 0.0) {
        let op = if c.op == "read" {
            TransferOp::Read
        } else {
            TransferOp::Write
        };
        let service = scamp
            .service_time(
                match op {
                    TransferOp::Read => spinnbed_emulator::ScampOp::Read,
                    TransferOp::Write => spinnbed_emulator::ScampOp::Write,
                },
                256,
            )
            .as_micros() as f64;
        let want = match c.policy.as_str() {
            "rig" | "spinnman-legacy" => 2048.0 / (c.rtt_ms * 1000.0 + service),
            "spinnman" | "adaptive" => c.bound_mbps,
            _ => continue,
        };
        assert!(c.goodput_mbps >= 0.9 * want, "{c:?} below {want}");
        assert!(c.goodput_mbps <= 1.01 * c.bound_mbps, "{c:?} above the bound");
        assert_eq!(c.failed, 0, "{c:?}");
    }

    // Every policy recovers from loss: it sees the loss (resends) and still moves data; spinnman's
    // pipelines and the adaptive policies complete every transfer, the stop-and-wait clients every
    // one up to 1 % loss on an otherwise clean path.
    for c in cells.iter().filter(|c| c.loss > 0.0) {
        assert!(c.retries > 0.0, "loss but no resends: {c:?}");
        let stop_and_wait = c.policy == "rig" || c.policy == "spinnman-legacy";
        if !stop_and_wait {
            assert!(c.goodput_mbps > 0.0, "no data moved: {c:?}");
            assert_eq!(c.failed, 0, "a transfer failed: {c:?}");
        } else if c.network == "clean" && c.loss <= 0.01 {
            assert_eq!(c.failed, 0, "a transfer failed: {c:?}");
        }
    }

    // Per network condition and op the winner is one of the adaptive policies, at least twice
    // as good as the best real client (geometric mean over loss × RTT).
    assert_eq!(found.winners.len(), 5 * 2);
    for w in &found.winners {
        assert!(w.winner.starts_with("adaptive"), "{w:?}");
        assert!(w.vs_best_reference >= 2.0, "{w:?}");
        assert_eq!(w.best_reference, "spinnman", "{w:?}");
        assert_eq!(w.standings.len(), 11);
    }

    // Pacing: 16 channels overflow SC&MP's 8 transient tags on a clean path (hundreds of drops,
    // each a 1 s timeout); a bucket of 4 packets at 64.9 µs a packet avoids every drop and more
    // than doubles their goodput there. A window of 8 never overflows, and pacing it only costs
    // (writes: SC&MP serves a write in 61 µs, faster than the bucket's 64.9).
    let effect = |policy: &str, network: &str, op: &str| {
        found
            .pacing
            .iter()
            .find(|p| p.policy == policy && p.network == network && p.op == op)
            .unwrap_or_else(|| panic!("no pacing effect for {policy} {network} {op}"))
            .clone()
    };
    for op in ["read", "write"] {
        let c16 = effect("pipe c16 w15 paced", "clean", op);
        assert_eq!(c16.unpaced, "pipe c16 w15");
        assert_eq!(c16.overflow_cells, 15, "{c16:?}");
        assert!(c16.drops_unpaced >= 100.0 && c16.drops_paced == 0.0, "{c16:?}");
        assert!(c16.goodput_ratio_with_overflow >= 1.5, "{c16:?}");
    }
    let a = effect("adaptive paced", "clean", "write");
    assert_eq!((a.unpaced.as_str(), a.overflow_cells), ("adaptive", 0));
    assert!(a.goodput_ratio_without_overflow < 1.0, "{a:?}");
    let clean = cell(cells, "clean", "adaptive paced", "write", 0.0, 0.3);
    assert!(clean.paced_ms > 0.0, "{clean:?}");
    assert!(clean.goodput_mbps < cell(cells, "clean", "adaptive", "write", 0.0, 0.3).goodput_mbps);
    assert_eq!(
        cell(cells, "clean", "pipe c16 w15 paced", "read", 0.0, 1.0).scamp_drops,
        0.0
    );
    assert!(cell(cells, "clean", "pipe c16 w15", "read", 0.0, 1.0).scamp_drops > 0.0);

    let csv = std::fs::read_to_string(dir.path().join("w/scp.csv")).unwrap();
    assert!(csv.starts_with(
        "network,policy,op,loss,rtt_ms,goodput_mbps,goodput_sd_mbps,bound_mbps,retries,timeouts,scamp_drops,paced_ms,failed\n"
    ));
    assert_eq!(csv.lines().count(), 1 + cells.len());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("w/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["winners"].as_array().unwrap().len(), 10);
    assert_eq!(summary["scamp_service_us"]["read_256"], 65);
}

/// A trimmed study (three policies, one cell each under two conditions) gives byte-identical
/// files twice, and its report has a chart per condition and the winners' chart.
#[test]
fn a_study_is_deterministic_and_reported_per_condition() {
    let text = r#"
[run]
name = "small"
seed = 7
horizon = "1h"

[[machine]]
name = "study"
width = 1
height = 1

[study]
kind = "scp-windowing"
policies = ["spinnman", "adaptive", { policy = "adaptive", pacing = { tokens = 1136, fill_rate = 4375000 } }]
ops = ["read"]
losses = [0.01]
rtts = ["1ms"]
bytes = "32KiB"
seeds = 2

[[study.network]]
name = "clean"

[[study.network]]
name = "long tail"
jitter = { dist = "choice", values = ["0ms", "2ms"], weights = [9, 1] }
duplicate = 0.01
"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("small.toml");
    std::fs::write(&file, text).unwrap();
    let sc = scenario::load(&file).unwrap();
    let a = run(&sc, &dir.path().join("a"));
    let b = run(&sc, &dir.path().join("b"));
    assert_eq!(a, b);
    assert_eq!(a.cells.len(), 3 * 2);
    assert_eq!(a.pacing.len(), 2, "adaptive paced against adaptive, per condition");
    for f in ["scp.csv", "summary.json", "scenario.toml"] {
        assert_eq!(
            std::fs::read(dir.path().join("a").join(f)).unwrap(),
            std::fs::read(dir.path().join("b").join(f)).unwrap(),
            "{f}"
        );
    }
    // The long tail's mean jitter (0.2 ms each way) lowers the bound.
    let bound = |n: &str| a.cells.iter().find(|c| c.network == n).unwrap().bound_mbps;
    assert!(bound("long tail") < bound("clean"));
    let report = spinnbed_reports::generate(&dir.path().join("a")).unwrap();
    let names: Vec<String> = report
        .files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "windowing.png",
        "windowing-1-long_tail.svg",
        "windowing-winners.png",
        "index.html",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    let html = std::fs::read_to_string(dir.path().join("a/report/index.html")).unwrap();
    assert!(
        html.contains("<h2>Winners</h2>") && html.contains("<h2>Pacing</h2>"),
        "{html}"
    );
}

/// `[host] scp_policy` takes the study's forms at packet level: a token bucket of one packet per
/// millisecond (284 tokens a packet at 284,000 a second) holds the users' transfers to at most
/// 256 bytes a millisecond, about 2 Mbit/s, where the same policy unpaced moves far more.
#[test]
fn a_paced_host_policy_paces_a_packet_level_run() {
    let base = std::fs::read_to_string(spinnbed_tests::repo_root().join("scenarios/packet-quick.toml"))
        .unwrap()
        .replace("jobs = 200", "jobs = 6");
    let goodput = |policy: &str| {
        let text = base.replace("scp_policy = \"adaptive\"", &format!("scp_policy = {policy}"));
        let sc = scenario::parse("paced.toml", &text, &spinnbed_tests::repo_root().join("scenarios")).unwrap();
        let spec = spinnbed_sim::run::RunSpec::from_scenario(&sc, sc.jobs().unwrap());
        let (result, _) = spinnbed_sim::run::simulate(&spec, |_| {}).unwrap();
        let scp = result.scp.expect("a packet-level run has SCP figures");
        assert!(scp.bytes > 0, "{policy}: {scp:?}");
        scp.goodput_mbps
    };
    let unpaced = goodput("\"adaptive\"");
    let paced = goodput("{ policy = \"adaptive\", pacing = { tokens = 284, fill_rate = 284000 } }");
    assert!(paced <= 2.1, "paced: {paced} Mbit/s");
    assert!(unpaced > 3.0 * paced, "unpaced {unpaced} against paced {paced} Mbit/s");
}
