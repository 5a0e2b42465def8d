//! The simulator end to end: determinism of every output file, snapshots of the run summaries
//! of the shipped scenarios, and the policy scenarios sharing busy-week's workload.

use spinnbed_sim::run::{Perf, RunSpec, simulate, stage_outputs, write_outputs};
use spinnbed_sim::scenario;
use std::path::{Path, PathBuf};

fn scenario_path(name: &str) -> PathBuf {
    spinnbed_tests::repo_root()
        .join("scenarios")
        .join(format!("{name}.toml"))
}

/// Runs a shipped scenario into `dir` exactly as `sim run` does (report included).
fn run_into(name: &str, dir: &Path) -> spinnbed_sim::run::outputs::Summary {
    run_text_into(&std::fs::read_to_string(scenario_path(name)).unwrap(), dir)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// FNV-1a 64 of a file's bytes, as a short digest for snapshots.
fn digest(bytes: &[u8]) -> String {
    format!(
        "{:016x}",
        spinnbed_sim::engine::fnv1a64(&String::from_utf8_lossy(bytes))
    )
}

fn assert_identical_runs(name: &str) {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    run_into(name, &a.path().join("run"));
    run_into(name, &b.path().join("run"));
    let fa = files(&a.path().join("run"));
    let fb = files(&b.path().join("run"));
    let rel = |base: &Path, v: &[PathBuf]| {
        v.iter()
            .map(|p| p.strip_prefix(base).unwrap().to_path_buf())
            .collect::<Vec<_>>()
    };
    assert_eq!(rel(&a.path().join("run"), &fa), rel(&b.path().join("run"), &fb));
    let mut compared = 0;
    for (x, y) in fa.iter().zip(&fb) {
        if x.file_name().unwrap() == "perf.json" {
            continue;
        }
        assert_eq!(
            std::fs::read(x).unwrap(),
            std::fs::read(y).unwrap(),
            "{} differs between runs",
            x.display()
        );
        compared += 1;
    }
    // summary, jobs, timeline, boards, scenario + the report's charts and page.
    assert!(compared >= 10, "only {compared} files compared");
}

#[test]
fn same_scenario_and_seed_give_byte_identical_outputs() {
    assert_identical_runs("quick");
}

#[test]
fn packet_level_runs_are_deterministic_too() {
    assert_identical_runs("packet-quick");
}

#[test]
fn a_different_seed_changes_the_run() {
    let sc = scenario::load(&scenario_path("quick")).unwrap();
    let j1 = sc.jobs().unwrap();
    let j2 = sc.clone().with_seed(2).jobs().unwrap();
    assert_ne!(j1, j2);
}

#[test]
fn policy_scenarios_share_busy_weeks_workload() {
    let base = scenario::load(&scenario_path("busy-week")).unwrap();
    let jobs = base.jobs().unwrap();
    assert!(jobs.len() >= 20_000);
    for name in ["backfill", "packers", "busy-week-packet"] {
        let sc = scenario::load(&scenario_path(name)).unwrap();
        assert_eq!(
            sc.experiment, base.experiment,
            "{name}: workload section differs from busy-week"
        );
        assert_eq!(sc.machines, base.machines, "{name}: machines differ from busy-week");
        assert_eq!(sc.run.seed, base.run.seed);
        assert!(
            sc.policy != base.policy || sc.host != base.host,
            "{name}: same policy and host as busy-week"
        );
        assert_eq!(sc.jobs().unwrap(), jobs);
    }
}

#[test]
fn summaries_of_the_shipped_scenarios() {
    for name in ["quick", "packet-quick", "busy-week", "backfill", "packers"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join(name);
        let summary = run_into(name, &out);
        let jobs_csv = std::fs::read(out.join("jobs.csv")).unwrap();
        let lines = jobs_csv.iter().filter(|b| **b == b'\n').count();
        let snapshot = serde_json::json!({
            "summary": summary,
            "jobs_csv": { "rows": lines - 1, "fnv1a64": digest(&jobs_csv) },
        });
        insta::with_settings!({ snapshot_suffix => name }, {
            insta::assert_json_snapshot!("summary", snapshot);
        });
    }
}

/// The report of `quick.toml`: its HTML summary tables (overall, per size class, per machine)
/// as `index.html` shows them, and every chart the page links to exists.
#[test]
fn quick_report_summary_tables() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("quick");
    run_into("quick", &out);
    let html = std::fs::read_to_string(out.join("report/index.html")).unwrap();
    let start = html.find("<h2>Summary</h2>").expect("summary heading");
    let end = html.find("<h2>Charts</h2>").expect("charts heading");
    let tables = &html[start..end];
    assert!(tables.contains("<table class=\"summary\">"), "{tables}");
    insta::assert_snapshot!("quick_report_summary_tables", tables);
    for src in html.split("src=\"").skip(1) {
        let file = &src[..src.find('"').unwrap()];
        assert!(
            out.join("report").join(file).is_file(),
            "index.html shows {file}, which is missing"
        );
    }
}

/// Runs scenario text (relative paths against `scenarios/`) into `dir` as `sim run` does.
fn run_text_into(text: &str, dir: &Path) -> spinnbed_sim::run::outputs::Summary {
    let root = spinnbed_tests::repo_root().join("scenarios");
    let sc = scenario::parse("test.toml", text, &root).unwrap();
    let spec = RunSpec::from_scenario(&sc, sc.jobs().unwrap());
    let (result, meta) = simulate(&spec, |_| {}).unwrap();
    let perf = Perf::new(&result, std::time::Duration::from_secs(1));
    let staged = stage_outputs(dir).unwrap();
    let summary = write_outputs(staged, &result, &meta, &sc.to_resolved_toml(), &perf).unwrap();
    spinnbed_reports::generate(dir).unwrap();
    summary
}

/// `scp_jobs.csv` of the run in `out` adds up to its `summary.json` totals; returns the number
/// of requests.
fn assert_scp_jobs_add_up(out: &Path) -> u64 {
    use spinnbed_outputs::rows::{JobRow, Row, ScpJobRow};
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let scp = &summary["scp"];
    let mut r = csv::Reader::from_path(out.join("scp_jobs.csv")).unwrap();
    assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>(), ScpJobRow::COLUMNS);
    let rows: Vec<ScpJobRow> = r.deserialize().collect::<Result<_, _>>().unwrap();
    let jobs: Vec<JobRow> = csv::Reader::from_path(out.join("jobs.csv"))
        .unwrap()
        .deserialize()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), jobs.len(), "one row per job");
    let sum = |f: fn(&ScpJobRow) -> u64| rows.iter().map(f).sum::<u64>();
    let total = |k: &str| scp[k].as_u64().unwrap();
    assert_eq!(sum(|r| r.requests), total("requests"), "requests");
    assert_eq!(sum(|r| r.retries), total("retries"), "retries");
    assert_eq!(sum(|r| r.timeouts), total("timeouts"), "timeouts");
    assert_eq!(sum(|r| r.failures), total("failures"), "failures");
    assert_eq!(sum(|r| r.data_bytes), total("bytes"), "user data bytes");
    // A job that moved data has a goodput consistent with its bytes and transfer time.
    if let Some(r) = rows.iter().find(|r| r.data_bytes > 0) {
        let expect = r.data_bytes as f64 * 8.0 / r.transfer_s.as_f64() / 1e6;
        assert!((r.goodput_mbps - expect).abs() < 0.01 * expect + 0.01, "{r:?}");
        assert!(scp["goodput_mbps"].as_f64().unwrap() > 0.0, "{scp}");
    }
    total("requests")
}

/// Packet level: every SCP request, resend, timeout, failure and byte of user data is
/// attributed to exactly one job (`scp_jobs.csv` adds up to `summary.json`'s totals).
#[test]
fn per_job_scp_statistics_add_up_to_the_run_totals() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("packet-quick");
    run_into("packet-quick", &out);
    assert!(assert_scp_jobs_add_up(&out) > 10_000);
}

/// The same when the run stops with jobs still holding boards (their sessions and BMP batches
/// under way are theirs too): before, their traffic since the last finished step was lost.
#[test]
fn per_job_scp_statistics_add_up_when_the_run_stops_with_jobs_live() {
    let text = std::fs::read_to_string(scenario_path("packet-quick")).unwrap();
    let text = text.replace("drain_limit = \"1d\"", "drain_limit = \"1s\"");
    assert!(
        text.contains("drain_limit = \"1s\""),
        "packet-quick sets drain_limit = \"1d\""
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stopped");
    let summary = run_text_into(&text, &out);
    assert!(
        summary.unfinished > 0,
        "jobs still live at the stop: {}",
        summary.unfinished
    );
    assert_scp_jobs_add_up(&out);
}

/// A machine whose name holds a comma and quotes: `boards.csv` is written and read back whole
/// (it used to be written by hand, unquoted, and the report could not read it).
#[test]
fn machine_names_with_commas_and_quotes_survive_the_outputs() {
    let text = std::fs::read_to_string(scenario_path("quick")).unwrap();
    let name = "lab, \\\"west\\\" wing";
    let text = text.replace("name = \"lab\"", &format!("name = \"{name}\""));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("commas");
    run_text_into(&text, &out);
    let boards: Vec<spinnbed_outputs::rows::BoardRow> = csv::Reader::from_path(out.join("boards.csv"))
        .unwrap()
        .deserialize()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(boards.len(), 12);
    assert!(
        boards.iter().all(|b| b.machine == "lab, \"west\" wing"),
        "{:?}",
        boards[0].machine
    );
    let jobs: Vec<spinnbed_outputs::rows::JobRow> = csv::Reader::from_path(out.join("jobs.csv"))
        .unwrap()
        .deserialize()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(jobs.iter().any(|j| j.machine == "lab, \"west\" wing"));
    assert!(out.join("report/index.html").is_file());
}

/// `faults.toml`: a board dies for good, a BMP goes silent for ten minutes, the network has a
/// loss burst, and the annex sits behind a slow path. The health policy retires the dead board
/// after its second failure and no job gets it afterwards; jobs powered while the BMP is silent
/// fail as the reference's would; the annex's transfers are slower than the lab's.
#[test]
fn faults_strike_and_the_health_policy_retires_the_dead_board() {
    let sc = scenario::load(&scenario_path("faults")).unwrap();
    let spec = RunSpec::from_scenario(&sc, sc.jobs().unwrap());
    let (r, _) = simulate(&spec, |_| {}).unwrap();
    let s = |t: f64| spinnbed_core::time::Instant((t * 1e6) as u64);
    let dead = spinnbed_core::geometry::Board::new(0, 0, 0);
    let on_dead = |x: &&spinnbed_sim::world::JobRecord| {
        x.machine.as_deref() == Some("lab") && x.boards.iter().min() == Some(&dead)
    };
    // Before the board dies at 1 h, jobs rooted on it complete; after, each one fails to boot.
    let rooted: Vec<_> = r.records.iter().filter(on_dead).collect();
    assert!(
        rooted
            .iter()
            .any(|x| x.end.unwrap() < s(3600.0) && x.reason == "Job finished by its user."),
        "{rooted:#?}"
    );
    let failed: Vec<_> = rooted
        .iter()
        .filter(|x| x.ready.is_some_and(|t| t >= s(3590.0)))
        .collect();
    assert_eq!(failed.len(), 2, "{failed:#?}");
    assert!(failed.iter().all(|x| x.reason.contains("did not boot")), "{failed:#?}");
    // Retired after the second failure: no job is allocated it afterwards.
    assert_eq!(r.retired_boards, vec![("lab".to_string(), dead)]);
    let retired_at = failed.iter().map(|x| x.end.unwrap()).max().unwrap();
    let later: Vec<_> = r
        .records
        .iter()
        .filter(|x| x.machine.as_deref() == Some("lab") && x.start.is_some_and(|t| t > retired_at))
        .collect();
    assert!(later.len() > 50, "{}", later.len());
    assert!(later.iter().all(|x| !x.boards.contains(&dead)));
    // The silent BMP (4 h to 4 h 10 m): the jobs it should have powered fail as the reference's.
    let silent: Vec<_> = r
        .records
        .iter()
        .filter(|x| x.reason.starts_with("Machine configuration failed"))
        .collect();
    assert!(!silent.is_empty());
    assert!(
        silent.iter().all(|x| x.machine.as_deref() == Some("lab")
            && x.start.unwrap() >= s(14_400.0)
            && x.start.unwrap() < s(15_000.0)),
        "{silent:#?}"
    );
    // The loss burst (30 m to 35 m) shows as resends in that window.
    let retries = |from: f64, to: f64| {
        let c = |t: f64| {
            r.samples
                .iter()
                .zip(&r.scp_samples)
                .rfind(|(x, _)| x.t <= s(t))
                .and_then(|(_, c)| c.as_ref().map(|c| c.retries))
                .unwrap_or(0)
        };
        c(to) - c(from)
    };
    assert!(
        retries(1800.0, 2160.0) > 4 * retries(1440.0, 1800.0).max(1),
        "{} vs {}",
        retries(1800.0, 2160.0),
        retries(1440.0, 1800.0)
    );
    // The annex's path (8–12 ms each way, 50 Mbit/s) makes its transfers slower than the lab's.
    let per_byte = |machine: &str| {
        let (mut us, mut bytes) = (0u64, 0u64);
        for (x, j) in r.records.iter().zip(&r.job_scp) {
            if let (Some(m), Some(j)) = (&x.machine, j)
                && m == machine
            {
                us += j.transfer_us;
                bytes += j.data_bytes;
            }
        }
        assert!(bytes > 0, "{machine} moved no data");
        us as f64 / bytes as f64
    };
    assert!(
        per_byte("annex") > 5.0 * per_byte("lab"),
        "{} vs {}",
        per_byte("annex"),
        per_byte("lab")
    );
}

/// Utilisation is measured from the first submission to the last release, so a lone job (whose
/// boards stay allocated while they power off after it ends) cannot push it past 100 %; the
/// machine map's per-board shares use the same window, so their mean is the summary's figure.
#[test]
fn utilisation_of_a_lone_job_stays_within_the_window() {
    let sc = scenario::load(&scenario_path("quick")).unwrap();
    let mut jobs = sc.jobs().unwrap();
    jobs.truncate(1);
    let spec = RunSpec::from_scenario(&sc, jobs);
    let (result, meta) = simulate(&spec, |_| {}).unwrap();
    let s = spinnbed_sim::run::outputs::summary(&result, &meta);
    assert_eq!(s.started, 1);
    assert!(s.utilisation > 0.0 && s.utilisation <= 1.0, "{}", s.utilisation);
    assert!(s.powered_utilisation <= 1.0, "{}", s.powered_utilisation);
    assert!(
        s.utilisation_window_s > s.makespan_s,
        "{} vs {}",
        s.utilisation_window_s,
        s.makespan_s
    );
    let allocated_s: f64 = result.boards.iter().flatten().map(|u| u.allocated.as_secs_f64()).sum();
    let expect = allocated_s / (s.live_boards as f64 * s.utilisation_window_s);
    assert!((s.utilisation - expect).abs() < 1e-3, "{} vs {expect}", s.utilisation);
    // A BMP that falls silent while the job runs: its power-off fails, the boards are released
    // but stay powered until the run stops; powered time still fits the window.
    let mut sc = sc;
    let job = &spec.jobs[0];
    let m = sc.machines[0].machine.clone();
    let at = spinnbed_core::time::Duration(job.submit.0 + job.runtime.0 / 2);
    sc.faults = m
        .bmps()
        .map(|(frame, _)| spinnbed_sim::scenario::FaultConfig {
            at,
            kind: spinnbed_sim::scenario::FaultKind::BmpSilent {
                machine: m.name().to_string(),
                frame,
            },
            duration: None,
        })
        .collect();
    let mut jobs = sc.jobs().unwrap();
    jobs.truncate(1);
    let spec = RunSpec::from_scenario(&sc, jobs);
    let (result, meta) = simulate(&spec, |_| {}).unwrap();
    let s = spinnbed_sim::run::outputs::summary(&result, &meta);
    assert!(
        s.utilisation <= 1.0 && s.powered_utilisation <= 1.0,
        "{} {}",
        s.utilisation,
        s.powered_utilisation
    );
    assert!(s.powered_utilisation > 0.0);
}

/// A loss burst scoped to one machine strikes only the paths to that machine: in `faults.toml`
/// the annex's path is lossier than the lab's (2 % against 0.5 %), so its jobs resend more per
/// request; a 6 % burst on the lab's paths alone, for the whole run, turns that around while the
/// annex's rate stays where it was.
#[test]
fn a_loss_burst_on_one_machine_spares_the_others() {
    use spinnbed_sim::scenario::{FaultConfig, FaultKind};
    let base = scenario::load(&scenario_path("faults")).unwrap();
    let resend_rates = |sc: &scenario::Scenario| {
        let spec = RunSpec::from_scenario(sc, sc.jobs().unwrap());
        let (r, _) = simulate(&spec, |_| {}).unwrap();
        let rate = |machine: &str| {
            let (mut retries, mut requests) = (0u64, 0u64);
            for (x, j) in r.records.iter().zip(&r.job_scp) {
                if let (Some(m), Some(j)) = (&x.machine, j)
                    && m == machine
                {
                    retries += j.retries;
                    requests += j.requests;
                }
            }
            assert!(requests > 1000, "{machine}: {requests} requests");
            retries as f64 / requests as f64
        };
        (rate("lab"), rate("annex"))
    };
    let mut calm = base.clone();
    calm.faults.clear();
    calm.policy.avoid_failing_boards = 0;
    let mut stormy = calm.clone();
    stormy.faults.push(FaultConfig {
        at: spinnbed_core::time::Duration::from_secs(1),
        kind: FaultKind::LossBurst {
            loss: 0.06,
            machine: Some("lab".into()),
        },
        duration: None,
    });
    let (lab_calm, annex_calm) = resend_rates(&calm);
    let (lab_stormy, annex_stormy) = resend_rates(&stormy);
    assert!(lab_calm < annex_calm, "calm: lab {lab_calm} vs annex {annex_calm}");
    assert!(
        lab_stormy > annex_stormy,
        "burst on lab: lab {lab_stormy} vs annex {annex_stormy}"
    );
    assert!(lab_stormy > 3.0 * lab_calm, "lab {lab_stormy} vs {lab_calm}");
    assert!(
        annex_stormy < 1.5 * annex_calm && annex_stormy > annex_calm / 1.5,
        "annex {annex_stormy} vs {annex_calm}: the lab's burst reached it"
    );
}

/// `summary.json` lists the faults that struck, in time order, and the report tabulates them.
#[test]
fn faults_are_listed_in_the_summary_and_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("faults");
    run_into("faults", &out);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let kinds: Vec<(&str, f64, Option<f64>)> = summary["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap(),
                f["at_s"].as_f64().unwrap(),
                f["until_s"].as_f64(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("loss_burst", 1800.0, Some(2100.0)),
            ("board_dies", 3600.0, None),
            ("link_fails", 7200.0, Some(10_800.0)),
            ("bmp_silent", 14_400.0, Some(15_000.0))
        ]
    );
    assert_eq!(summary["machines"][0]["retired_boards"], serde_json::json!([[0, 0, 0]]));
    let html = std::fs::read_to_string(out.join("report/index.html")).unwrap();
    assert!(html.contains("board (0, 0, 0) of lab dies"), "{html}");
}
