//! The `sim` command line as a user meets it: exit codes, error messages that name what is
//! wrong and where, output directories that are never clobbered, and `sim emulate` stopping
//! cleanly on SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sim"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn run(cmd: &mut Command) -> (Option<i32>, String, String) {
    let Output { status, stdout, stderr } = cmd.output().expect("run sim");
    (
        status.code(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

const TINY: &str = r#"
[run]
name = "tiny"
seed = 3
horizon = "1h"

[[machine]]
name = "m"
width = 1
height = 1

[machine.ip]
base = "127.7.0.0"

[workload]
source = "synthetic"
jobs = 5

[[workload.class]]
name = "1 board"
weight = 1
kind = "board"
duration = "5m"
"#;

#[test]
fn a_missing_or_malformed_scenario_exits_2_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(sim().args(["run", "no-such.toml"]).current_dir(dir.path()));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no-such.toml"), "{err}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, TINY.replace("seed = 3", "seed = 3\nsede = 4")).unwrap();
    let (code, _, err) = run(sim().arg("check").arg(&bad));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("bad.toml") && err.contains("line 5") && err.contains("sede"),
        "{err}"
    );

    let good = dir.path().join("tiny.toml");
    std::fs::write(&good, TINY).unwrap();
    let (code, out, err) = run(sim().arg("check").arg(&good));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn an_output_directory_that_is_not_a_run_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let sc = dir.path().join("tiny.toml");
    std::fs::write(&sc, TINY).unwrap();
    let precious = dir.path().join("precious");
    std::fs::create_dir(&precious).unwrap();
    std::fs::write(precious.join("notes.txt"), "keep me").unwrap();
    let (code, _, err) = run(sim().arg("run").arg(&sc).arg("--out").arg(&precious).arg("-q"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("refusing to replace"), "{err}");
    assert_eq!(std::fs::read_to_string(precious.join("notes.txt")).unwrap(), "keep me");

    // An earlier run's directory is replaced.
    let out = dir.path().join("run");
    for _ in 0..2 {
        let (code, _, err) = run(sim()
            .arg("run")
            .arg(&sc)
            .arg("--out")
            .arg(&out)
            .args(["-q", "--no-report"]));
        assert_eq!(code, Some(0), "{err}");
    }
    assert!(out.join("summary.json").is_file());
}

#[test]
fn hardware_run_without_a_machine_exits_2_naming_the_bmp() {
    let dir = tempfile::tempdir().unwrap();
    let sc = dir.path().join("tiny.toml");
    std::fs::write(&sc, TINY.replace("127.7.0.0", "127.8.0.0")).unwrap();
    let (code, _, err) = run(sim()
        .arg("run")
        .arg("--hardware")
        .arg(&sc)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("-q"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("cannot reach the machine's BMPs") && err.contains("BMP 127.8.0.0"),
        "{err}"
    );
    assert!(
        !dir.path().join("out").exists(),
        "no output directory for a run that never started"
    );
}

#[test]
fn emulate_signals_ready_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let child = sim()
        .arg("emulate")
        .arg(repo().join("scenarios/hardware-quick.toml"))
        .arg("--ready-file")
        .arg(&ready)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !ready.exists() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ready.exists(), "no ready file");
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("13 sockets bound") && err.contains("stopped"), "{err}");
}

/// Ctrl-C during `sim run --hardware`: live jobs are destroyed, their boards powered off, and
/// the outputs written.
#[test]
fn an_interrupted_hardware_run_powers_its_boards_off_and_writes_its_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("scenarios/hardware-quick.toml")).unwrap();
    let sc = dir.path().join("hq.toml");
    std::fs::write(&sc, text.replace("127.4.0.0", "127.10.0.0")).unwrap();
    std::fs::create_dir(dir.path().join("traces")).unwrap();
    std::fs::copy(
        repo().join("scenarios/traces/hardware-quick.csv"),
        dir.path().join("traces/hardware-quick.csv"),
    )
    .unwrap();
    let ready = dir.path().join("ready");
    let emu = sim()
        .arg("emulate")
        .arg(&sc)
        .arg("--ready-file")
        .arg(&ready)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !ready.exists() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = dir.path().join("out");
    let run = sim()
        .args(["run", "--hardware", "-q"])
        .arg(&sc)
        .arg("--out")
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Job 2 (4 boards) is allocated at 6 s and runs for 0.5 s after its boot: interrupt at 7 s,
    // while it holds its boards.
    std::thread::sleep(Duration::from_millis(7000));
    assert!(
        Command::new("kill")
            .arg("-INT")
            .arg(run.id().to_string())
            .status()
            .unwrap()
            .success()
    );
    let run = run.wait_with_output().unwrap();
    let run_err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{run_err}");
    assert!(run_err.contains("interrupted: destroying"), "{run_err}");
    assert!(
        Command::new("kill")
            .arg("-TERM")
            .arg(emu.id().to_string())
            .status()
            .unwrap()
            .success()
    );
    let emu = emu.wait_with_output().unwrap();
    let emu_err = String::from_utf8_lossy(&emu.stderr);
    let on = emu_err.matches(": power on").count();
    let off = emu_err.matches(": power off").count();
    assert!(
        on > 0 && on == off,
        "every board powered on was powered off again:\n{emu_err}"
    );
    let jobs = std::fs::read_to_string(out.join("jobs.csv")).unwrap();
    let outcomes: Vec<&str> = jobs
        .lines()
        .skip(1)
        .map(|l| l.split(',').rev().nth(1).unwrap_or(""))
        .collect();
    assert!(jobs.contains("Interrupted: sim run --hardware was stopped"), "{jobs}");
    assert!(outcomes.contains(&"never_started"), "{jobs}");
    assert!(out.join("summary.json").is_file() && out.join("scp_jobs.csv").is_file());
}

#[test]
fn report_of_a_directory_that_is_not_a_run_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(sim().arg("report").arg(dir.path()));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a run directory (no summary.json"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let (code, _, err) = run(sim()
        .args(["report", "--compare"])
        .arg(dir.path())
        .arg(dir.path().join("nope")));
    assert_eq!(code, Some(2), "{err}");
}

#[test]
fn replay_errors_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let header = "id,submit_s,kind,a,b,c,min_ratio,max_dead_boards,duration_s\n";
    // `sim replay` on a machine description and trace rows written afresh each time.
    let replay = |machine_json: &str, rows: &str| {
        let (machine, trace) = (dir.path().join("m.json"), dir.path().join("t.csv"));
        std::fs::write(&machine, machine_json).unwrap();
        std::fs::write(&trace, format!("{header}{rows}")).unwrap();
        run(sim()
            .arg("replay")
            .arg("--machine")
            .arg(&machine)
            .arg("--trace")
            .arg(&trace))
    };
    let good_machine = "{\"name\": \"m\", \"width\": 1, \"height\": 1}";
    let (code, _, err) = replay(
        "{\"name\": \"m\",\n \"width\": 2.5, \"height\": 1}",
        "1,0,board,,,,,,5\n",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("m.json: line 2: width: invalid type"), "{err}");
    let (code, _, err) = replay(good_machine, "1,0,board,,,,,,5,9\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("t.csv: line 2: expected 9 fields, got 10"), "{err}");
    // A good pair replays: one job line, then the summary.
    let (code, out, err) = replay(good_machine, "1,0,board,,,,,,5\n");
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("{\"id\": 1, \"submit_s\": 0.0, \"start_s\": 0.0, \"end_s\": 5.0"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("{\"summary\": {\"jobs\": 1, \"started\": 1"),
        "{out}"
    );
}

/// A report that cannot be written (here: a file-size limit stops its PNGs) leaves the run's
/// data complete, no half-written report/, and exit code 2 with one clear line.
#[test]
fn a_failed_report_leaves_no_partial_report_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("quick");
    let script = format!(
        "trap '' XFSZ; ulimit -f 60; exec '{}' run '{}' --out '{}' -q",
        env!("CARGO_BIN_EXE_sim"),
        repo().join("scenarios/quick.toml").display(),
        out.display()
    );
    let (code, _, err) = run(Command::new("bash").arg("-c").arg(script));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("are complete, but its report could not be written"),
        "{err}"
    );
    assert!(out.join("summary.json").is_file() && out.join("jobs.csv").is_file());
    assert!(!out.join("report").exists(), "a partial report was left behind");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "temporary files left: {leftovers:?}");
}

/// Out-of-range numbers on the command line are refused with exit 2 and the flag's name; none
/// panics (exit 101), aborts or writes a trace that `sim replay` would reject.
#[test]
fn out_of_range_options_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("tiny.toml");
    std::fs::write(&scenario, TINY).unwrap();
    let machine = repo().join("scenarios/machines/spinnaker1m.json");
    let trace = dir.path().join("t.csv");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["emulate".into(), "--duration=-1".into()], "--duration"),
        (vec!["emulate".into(), "--duration=nan".into()], "--duration"),
        (vec!["emulate".into(), "--duration=inf".into()], "--duration"),
        (vec!["emulate".into(), "--duration=1e30".into()], "--duration"),
        (vec!["load".into(), "--seconds=1e30".into()], "--seconds"),
        (vec!["load".into(), "--outstanding=100000000".into()], "--outstanding"),
    ];
    for (args, flag) in cases {
        let (code, _, err) = run(sim()
            .arg(&args[0])
            .arg(&scenario)
            .args(&args[1..])
            .args(["--quiet"].iter().filter(|_| args[0] == "emulate")));
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
    }
    let gen_cases: [(&[&str], &str); 4] = [
        (&["--jobs", "18446744073709551615"], "--jobs"),
        (&["--mean-interarrival", "inf"], "--mean-interarrival"),
        (&["--load", "nan"], "--load"),
        (&["--load", "1e-300"], "1e9 s"),
    ];
    for (args, want) in gen_cases {
        let jobs: &[&str] = if args.contains(&"--jobs") {
            &[]
        } else {
            &["--jobs", "50"]
        };
        let (code, _, err) = run(sim()
            .args(["gen-trace", "--machine"])
            .arg(&machine)
            .arg("--out")
            .arg(&trace)
            .args(jobs)
            .args(args));
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!trace.exists(), "{args:?} wrote a trace");
    }
    // A huge mean inter-arrival time that still fits is written and replays.
    let (code, _, err) = run(sim()
        .args(["gen-trace", "--jobs", "5", "--mean-interarrival", "1000", "--machine"])
        .arg(&machine)
        .arg("--out")
        .arg(&trace));
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = run(sim()
        .args(["replay", "--machine"])
        .arg(&machine)
        .arg("--trace")
        .arg(&trace));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 6, "{out}");
}

/// Before: `sim check` of a study reported the placeholder workload it was given ("1 jobs").
#[test]
fn check_of_a_study_says_what_it_measures() {
    let (code, out, err) = run(sim().arg("check").arg(repo().join("scenarios/scp-windowing.toml")));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(
            "study scp-windowing: 11 policies x 2 ops x 5 losses x 3 rtts x 5 networks = 1650 cells, 3 seeds each, 256KiB per transfer"
        ),
        "{out}"
    );
    assert!(!out.contains("jobs"), "{out}");
}

/// Before: `horizon = "100000w"` passed `check` and aborted `run` out of memory (a sample
/// every 5 minutes, 2e9 of them), and `jobs = 1000000000` aborted allocating arrival times.
/// Now both are refused up front, exit 2, naming the line and the key.
#[test]
fn a_scenario_that_cannot_fit_in_memory_is_refused_before_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let long = dir.path().join("long.toml");
    std::fs::write(&long, TINY.replace("horizon = \"1h\"", "horizon = \"100000w\"")).unwrap();
    let out = dir.path().join("out");
    let attempts = [
        run(sim().arg("check").arg(&long)),
        run(sim()
            .arg("run")
            .arg(&long)
            .arg("--out")
            .arg(&out)
            .args(["-q", "--no-report"])),
    ];
    for (code, _, err) in attempts {
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains("long.toml: line 5: run.horizon: \"5m\" over the 700000d horizon is 201600002 samples, about")
                && err.contains("is available: use a longer sample_period or a shorter horizon"),
            "{err}"
        );
    }
    assert!(!out.exists(), "a refused run left {}", out.display());
    let many = dir.path().join("many.toml");
    std::fs::write(&many, TINY.replace("jobs = 5", "jobs = 1000000000")).unwrap();
    let (code, _, err) = run(sim()
        .arg("run")
        .arg(&many)
        .arg("--out")
        .arg(dir.path().join("m"))
        .arg("-q"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("many.toml: line 17: workload.jobs: 1000000000 jobs, about 1.4 TB"),
        "{err}"
    );
}

/// The budget is 80 % of the address-space limit when one is set (and of the available memory).
#[test]
fn the_memory_budget_follows_the_address_space_limit() {
    let dir = tempfile::tempdir().unwrap();
    let year = dir.path().join("year.toml");
    std::fs::write(
        &year,
        TINY.replace("horizon = \"1h\"", "horizon = \"52w\"\nsample_period = \"1s\""),
    )
    .unwrap();
    let limited = |scenario: &Path| {
        run(Command::new("sh")
            .arg("-c")
            .arg("ulimit -v 2097152 && exec \"$0\" check \"$1\"")
            .arg(env!("CARGO_BIN_EXE_sim"))
            .arg(scenario))
    };
    let (code, _, err) = limited(&year);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("year.toml: line 6: run.sample_period: \"1s\" over the 364d horizon is 31449602 samples, about 25.3 GB; about 1.7 GB is available"),
        "{err}"
    );
    let (code, out, err) = limited(&repo().join("scenarios/quick.toml"));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("ok"), "{out}");
}
