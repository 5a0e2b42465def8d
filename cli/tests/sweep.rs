//! `sim sweep`: the local executor survives a worker that kills itself, `--resume` after an
//! interrupted sweep runs only what is missing, the Slurm executor on a one-node Slurm gives
//! the same `sweep.csv`, and mistakes in a sweep file are refused before anything runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const HOOK: &str = "SPINNBED_SWEEP_TEST_CRASH";

fn sim() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sim"));
    c.env_remove(HOOK);
    c
}

fn twelve() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sweeps/twelve.toml")
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every result file, by name.
fn results(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("results"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), read(&e.path())))
        .collect();
    v.sort();
    v
}

/// A clean local run of the twelve-point sweep (the reference the others are held to).
fn clean(root: &Path) -> PathBuf {
    let out = root.join("clean");
    let o = sim()
        .args(["sweep", "--quiet", "--jobs", "2", "--out"])
        .arg(&out)
        .arg(twelve())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    out
}

#[test]
fn a_worker_that_kills_itself_is_run_again_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let reference = clean(root.path());
    let out = root.path().join("crash");
    // Point 5 (easy, spalloc, 1.5), seed 2: task 11 aborts on its first attempt.
    let o = sim()
        .env(HOOK, "5:2")
        .args(["sweep", "--jobs", "3", "--out"])
        .arg(&out)
        .arg(twelve())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("twelve: 12 points (0 invalid) × 2 seeds = 24 tasks"),
        "{}",
        text(&o)
    );
    assert!(
        stdout.contains("ran 24 of 24 tasks (25 attempts, 1 re-runs) in "),
        "{}",
        text(&o)
    );
    // The task's first attempt died (its log says so) and left only a temporary file.
    let first = read(&out.join("logs/t11.a1.log"));
    assert!(String::from_utf8_lossy(&first).contains("aborting point 5 seed 2 on purpose"));
    assert!(out.join("logs/t11.a2.log").is_file());
    let logs: Vec<String> = std::fs::read_dir(out.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".a2.log"))
        .collect();
    assert_eq!(logs, vec!["t11.a2.log".to_string()], "only that task ran twice");
    assert!(out.join("results/.p0005-s2.json.partial").is_file());
    for f in ["sweep.csv", "points.csv", "sweep.json"] {
        assert_eq!(
            read(&out.join(f)),
            read(&reference.join(f)),
            "{f} differs from a clean run's"
        );
    }
    assert_eq!(results(&out), results(&reference));
    let csv = String::from_utf8(read(&out.join("sweep.csv"))).unwrap();
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("point,seed,policy.queue,policy.packer,workload.load_scale,wait_mean_s,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 25);
    assert!(csv.contains("\n11,2,easy,anywhere,1.5,"), "{csv}");
    assert!(out.join("report/index.html").is_file());
}

#[test]
fn resume_after_an_interrupted_sweep_runs_only_what_is_missing() {
    let root = tempfile::tempdir().unwrap();
    let reference = clean(root.path());
    let out = root.path().join("interrupted");
    // One worker at a time, killed once a few results are in.
    let mut child = sim()
        .args(["sweep", "--quiet", "--jobs", "1", "--out"])
        .arg(&out)
        .arg(twelve())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while results_in(&out) < 6 {
        assert!(t0.elapsed() < Duration::from_secs(60), "no results after 60 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The worker it had started may still finish its task.
    std::thread::sleep(Duration::from_millis(500));
    let have = results_in(&out);
    assert!((6..24).contains(&have), "{have} results: interrupted too late");
    assert!(!out.join("sweep.csv").exists(), "an interrupted sweep wrote sweep.csv");
    let logs_before = attempt_logs(&out);

    // Without --resume the directory is refused.
    let o = sim()
        .args(["sweep", "--quiet", "--out"])
        .arg(&out)
        .arg(twelve())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("holds a sweep already: --resume to finish it"),
        "{}",
        text(&o)
    );
    let o = sim()
        .args(["sweep", "--resume", "--out"])
        .arg(&out)
        .arg(twelve())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let want = format!("resuming: {have} complete, {} to run", 24 - have);
    assert!(stdout.contains(&want), "want {want:?}: {}", text(&o));
    assert!(
        stdout.contains(&format!(
            "ran {} of 24 tasks ({} attempts, 0 re-runs) in ",
            24 - have,
            24 - have
        )),
        "{}",
        text(&o)
    );
    assert_eq!(attempt_logs(&out) - logs_before, 24 - have, "tasks run by --resume");
    for f in ["sweep.csv", "points.csv"] {
        assert_eq!(
            read(&out.join(f)),
            read(&reference.join(f)),
            "{f} differs from a clean run's"
        );
    }
    // A sweep file that changed since: refused.
    let changed = root.path().join("changed.toml");
    std::fs::write(
        &changed,
        std::fs::read_to_string(twelve())
            .unwrap()
            .replace("seeds = 2", "seeds = 3")
            .replace(
                "../../../scenarios/quick.toml",
                &format!("{}/../scenarios/quick.toml", env!("CARGO_MANIFEST_DIR")),
            ),
    )
    .unwrap();
    let o = sim()
        .args(["sweep", "--resume", "--quiet", "--out"])
        .arg(&out)
        .arg(&changed)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("planned from a different sweep"),
        "{}",
        text(&o)
    );
}

fn results_in(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("results"))
        .map(|r| {
            r.filter_map(Result::ok)
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0)
}

fn attempt_logs(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("logs"))
        .map(|r| {
            r.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .count()
        })
        .unwrap_or(0)
}

/// A sweep file beside a copy of the quick scenario.
fn sweep_file(root: &Path, body: &str) -> PathBuf {
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/quick.toml"),
        root.join("quick.toml"),
    )
    .unwrap();
    let p = root.join("bad.toml");
    std::fs::write(&p, format!("[sweep]\nbase = \"quick.toml\"\n{body}")).unwrap();
    p
}

#[test]
fn mistakes_in_a_sweep_file_are_refused_before_anything_runs() {
    let root = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[axes]\npolicy.queu = [\"fifo\"]\n",
            "bad.toml: line 4: axes.policy.queu: not a scenario key",
        ),
        (
            "[axes]\npolicy.queue = []\n",
            "bad.toml: line 4: axes.policy.queue: has no values",
        ),
        (
            "seeds = 0\n[axes]\npolicy.queue = [\"fifo\"]\n",
            "bad.toml: line 3: sweep.seeds: must be 1 to",
        ),
        (
            "[axes]\npolicy.queue = [\"fifo\", \"easy\"]\nhost.scp_policy = [\"rig\"]\n[[point]]\npolicy.queue = \"easy\"\n",
            "bad.toml: line 5: axes.host.scp_policy: no point uses this axis",
        ),
    ];
    for (body, want) in cases {
        let file = sweep_file(root.path(), body);
        let out = root.path().join("out");
        let o = sim().args(["sweep", "--out"]).arg(&out).arg(&file).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{body}: {}", text(&o));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains(want), "{body}: want {want:?}: {}", text(&o));
        assert!(!out.exists(), "{body}: the output directory was made");
    }
    // A point whose scenario is invalid is named with its values and error, and not run.
    let file = sweep_file(
        root.path(),
        "[axes]\nrun.horizon = [\"1h\", \"-1h\"]\npolicy.queue = [\"fifo\"]\n",
    );
    let out = root.path().join("invalid");
    let o = sim().args(["sweep", "--out"]).arg(&out).arg(&file).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("sim: point 1 (run.horizon = -1h, policy.queue = fifo) is not run: run.horizon:"),
        "{}",
        text(&o)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("2 points (1 invalid) × 1 seeds = 1 tasks"));
    let points = String::from_utf8(read(&out.join("points.csv"))).unwrap();
    let last = points.lines().last().unwrap();
    assert!(
        last.starts_with("1,-1h,fifo,0,") && last.contains("run.horizon"),
        "{points}"
    );
    assert_eq!(
        String::from_utf8(read(&out.join("sweep.csv"))).unwrap().lines().count(),
        2
    );
}

#[test]
fn the_slurm_executor_gives_the_same_sweep_with_a_task_killed() {
    use spinnbed_tests::slurm::{MiniSlurm, run_with_timeout};
    let root = tempfile::tempdir().unwrap();
    // No sbatch on the PATH: said plainly, nothing run.
    let o = sim()
        .env("PATH", "/nonexistent")
        .args(["sweep", "--slurm", "--quiet", "--out"])
        .arg(root.path().join("nosbatch"))
        .arg(twelve())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("sbatch not found on the PATH"),
        "{}",
        text(&o)
    );

    let reference = clean(root.path());
    let slurm = MiniSlurm::start().unwrap_or_else(|e| panic!("a one-node Slurm (see .ci/run): {e}"));
    let out = root.path().join("slurm");
    let mut cmd = sim();
    cmd.envs(slurm.env())
        .env(HOOK, "5:2")
        .args(["sweep", "--slurm", "--partition", slurm.partition(), "--out"])
        .arg(&out)
        .arg(twelve());
    let o =
        run_with_timeout(&mut cmd, Duration::from_secs(300)).unwrap_or_else(|e| panic!("{e}\n{}", slurm.log_tails(20)));
    assert!(o.status.success(), "{}\n{}", text(&o), slurm.log_tails(20));
    // 24 array indices, then one more for the task that killed itself.
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("ran 24 of 24 tasks (25 attempts, 1 re-runs) in "),
        "{}",
        text(&o)
    );
    let script = std::fs::read_to_string(out.join("slurm/sweep.sbatch")).unwrap();
    assert!(
        script.contains("sweep-task") && script.contains("--chunk 1"),
        "{script}"
    );
    for f in ["sweep.csv", "points.csv", "sweep.json"] {
        assert_eq!(
            read(&out.join(f)),
            read(&reference.join(f)),
            "{f} differs from the local run's"
        );
    }
    assert_eq!(results(&out), results(&reference), "per-task results differ");
    // The task that died is in Slurm's record as failed.
    let failed: Vec<_> = slurm
        .jobcomp_records()
        .into_iter()
        .filter(|r| r.get("JobState").map(String::as_str) != Some("COMPLETED"))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");

    // A controller that does not answer: a clear error.
    let conf = std::fs::read_to_string(slurm.conf_path()).unwrap();
    let dead = root.path().join("dead.conf");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf: String = conf
        .lines()
        .map(|l| {
            if l.starts_with("SlurmctldPort=") {
                format!("SlurmctldPort={port}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&dead, conf + "\nMessageTimeout=2\n").unwrap();
    let mut cmd = sim();
    cmd.env("SLURM_CONF", &dead)
        .args(["sweep", "--slurm", "--quiet", "--retries", "0", "--out"])
        .arg(root.path().join("unreachable"))
        .arg(twelve());
    let o = run_with_timeout(&mut cmd, Duration::from_secs(240)).unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("sbatch did not submit the job array"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_task_that_fails_every_time_is_listed_with_its_log_and_resume_finishes_the_sweep() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("failing");
    let o = sim()
        .env(HOOK, "2:1:always")
        .args(["sweep", "--quiet", "--retries", "1", "--out"])
        .arg(&out)
        .arg(twelve())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("sim: task 4 (point 2: policy.queue = fifo, policy.packer = spalloc, workload.load_scale = 1.5; seed 1) failed 2 time(s);"),
        "{}",
        text(&o)
    );
    assert!(
        stderr.contains("    task: SPINNBED_SWEEP_TEST_CRASH: aborting point 2 seed 1 on purpose"),
        "{}",
        text(&o)
    );
    assert!(stderr.contains("1 of 24 tasks failed every attempt"), "{}", text(&o));
    assert!(
        !out.join("sweep.csv").exists(),
        "a sweep with a failed task wrote sweep.csv"
    );
    assert_eq!(results_in(&out), 23);
    // Fixed (the hook gone), --resume runs just that task.
    let o = sim()
        .args(["sweep", "--resume", "--out"])
        .arg(&out)
        .arg(twelve())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("ran 1 of 24 tasks (1 attempts, 0 re-runs)"),
        "{}",
        text(&o)
    );
    assert!(out.join("sweep.csv").is_file());
}
