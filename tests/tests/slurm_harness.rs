//! The one-node Slurm of `spinnbed_tests::slurm::MiniSlurm`, which the sweep tests run job
//! arrays on, checked on its own.
//!
//! `job_arrays_run_and_a_killed_task_is_seen`: a cluster comes up; `sbatch --array=0-3 --wait`
//! runs a script whose tasks each write their result into place atomically (a temporary file,
//! then `mv`): four results. A second array in which task 2 kills itself with SIGKILL before
//! writing: exactly the other three results, a non-zero exit status from `sbatch --wait`, and
//! the jobcomp log lists task 2 as FAILED (the others COMPLETED).
//!
//! `daemons_are_stopped_when_a_test_panics`: a cluster owned by a thread that panics is torn
//! down while the thread unwinds: no daemon is left and the scratch directory is gone.
//!
//! Slurm must be installed (`.ci/run` installs Debian's `slurmctld slurmd slurm-client munge`);
//! without it the tests fail and say what is missing — they never skip.

use spinnbed_tests::slurm::{MiniSlurm, run_with_timeout};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// An array task: writes `$HARNESS_OUT/<task>.done` atomically, unless its index is the
/// script's first argument, in which case it kills itself first.
const SCRIPT: &str = r#"#!/bin/sh
set -eu
i="$SLURM_ARRAY_TASK_ID"
OUT="$HARNESS_OUT"
echo "task $i of job $SLURM_ARRAY_JOB_ID on $(hostname) in $(pwd)"
if [ "$i" = "$1" ]; then
    kill -9 $$
fi
echo "result of task $i" > "$OUT/.$i.tmp"
mv "$OUT/.$i.tmp" "$OUT/$i.done"
"#;

fn start() -> MiniSlurm {
    let t0 = Instant::now();
    let slurm = MiniSlurm::start().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("MiniSlurm up in {:?} (scratch {})", t0.elapsed(), slurm.dir().display());
    slurm
}

/// Runs a 4-task array with `sbatch --wait` (task `kill_task` kills itself); returns the array's
/// job id, sbatch's exit code and the indices of the results that exist.
fn run_array(slurm: &MiniSlurm, work: &Path, name: &str, kill_task: &str) -> (String, i32, Vec<u32>) {
    let out = work.join(name);
    fs::create_dir(&out).expect("create the results directory");
    let logs = work.join(format!("{name}-logs"));
    fs::create_dir(&logs).expect("create the logs directory");
    let script = work.join("task.sh");
    fs::write(&script, SCRIPT).expect("write the task script");

    let t0 = Instant::now();
    let mut sbatch = slurm.command("sbatch");
    sbatch
        .arg("--wait")
        .arg("--parsable")
        .arg("--array=0-3")
        .arg(format!("--partition={}", slurm.partition()))
        .arg(format!("--job-name=harness-{name}"))
        .arg(format!("--chdir={}", work.display()))
        .arg(format!("--output={}/%A_%a.out", logs.display()))
        // The whole environment (with HARNESS_OUT): `--export=ALL,VAR=value` would work too,
        // but makes slurmd run a login shell (`su - USER`) per task for the user's environment.
        .arg("--export=ALL")
        .env("HARNESS_OUT", &out)
        .arg(&script)
        .arg(kill_task);
    let o = run_with_timeout(&mut sbatch, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", slurm.log_tails(20)));
    let stdout = String::from_utf8_lossy(&o.stdout).trim().to_string();
    eprintln!(
        "{name}: sbatch --wait returned after {:?}: {}, stdout {stdout:?}, stderr {:?}",
        t0.elapsed(),
        o.status,
        String::from_utf8_lossy(&o.stderr).trim()
    );
    // --parsable: the job id alone (";cluster" would follow on a multi-cluster set-up).
    let job = stdout.split(';').next().unwrap_or_default().to_string();
    assert!(
        !job.is_empty() && job.bytes().all(|b| b.is_ascii_digit()),
        "sbatch --parsable printed {stdout:?}\n{}",
        slurm.log_tails(20)
    );
    let mut done: Vec<u32> = fs::read_dir(&out)
        .expect("read the results directory")
        .map(|e| e.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .inspect(|n| assert!(!n.starts_with('.'), "a temporary file was left: {n}"))
        .filter_map(|n| n.strip_suffix(".done").and_then(|i| i.parse().ok()))
        .collect();
    done.sort_unstable();
    // Every task ran (and logged) in the directory given by --chdir.
    for i in 0..4 {
        let log = fs::read_to_string(logs.join(format!("{job}_{i}.out")))
            .unwrap_or_else(|e| panic!("task {i}'s output file: {e}"));
        assert!(
            log.contains(&format!("task {i} of job {job} on ")) && log.contains(&*work.display().to_string()),
            "task {i}'s output: {log:?}"
        );
    }
    (job, o.status.code().unwrap_or(-1), done)
}

/// The jobcomp records of array `job`, by task index (waits up to 5 s for all four).
fn jobcomp(slurm: &MiniSlurm, job: &str) -> BTreeMap<u32, BTreeMap<String, String>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let tasks: BTreeMap<u32, BTreeMap<String, String>> = slurm
            .jobcomp_records()
            .into_iter()
            .filter(|r| r.get("ArrayJobId").map(String::as_str) == Some(job))
            .filter_map(|r| Some((r.get("ArrayTaskId")?.parse().ok()?, r)))
            .collect();
        if tasks.len() == 4 || Instant::now() > deadline {
            for (i, r) in &tasks {
                let get = |k: &str| r.get(k).map_or("?", String::as_str);
                eprintln!(
                    "job {job} task {i}: submitted {}, started {}, ended {}, {} {}",
                    get("SubmitTime"),
                    get("StartTime"),
                    get("EndTime"),
                    get("JobState"),
                    get("ExitCode")
                );
            }
            return tasks;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn job_arrays_run_and_a_killed_task_is_seen() {
    let slurm = start();
    let work = tempfile::tempdir().expect("a temporary directory");

    let (job, code, done) = run_array(&slurm, work.path(), "clean", "none");
    assert_eq!(code, 0, "sbatch --wait of a clean array\n{}", slurm.log_tails(20));
    assert_eq!(done, [0, 1, 2, 3]);
    let comp = jobcomp(&slurm, &job);
    assert_eq!(comp.len(), 4, "jobcomp records of {job}: {comp:?}");
    for (i, r) in &comp {
        assert_eq!(r["JobState"], "COMPLETED", "task {i}: {r:?}");
        assert_eq!(r["ExitCode"], "0:0", "task {i}: {r:?}");
    }

    let (job, code, done) = run_array(&slurm, work.path(), "killed", "2");
    assert_ne!(code, 0, "sbatch --wait of an array with a killed task");
    assert_eq!(done, [0, 1, 3], "the results of the array with task 2 killed");
    let comp = jobcomp(&slurm, &job);
    assert_eq!(comp.len(), 4, "jobcomp records of {job}: {comp:?}");
    for (i, r) in &comp {
        let (state, exit) = if *i == 2 {
            ("FAILED", "0:9")
        } else {
            ("COMPLETED", "0:0")
        };
        assert_eq!(r["JobState"], state, "task {i}: {r:?}");
        assert_eq!(r["ExitCode"], exit, "task {i} (signal 9 is 0:9): {r:?}");
        assert_eq!(r["Partition"], slurm.partition());
    }
}

#[test]
fn daemons_are_stopped_when_a_test_panics() {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let slurm = start();
        tx.send((slurm.pids(), slurm.dir().to_path_buf()))
            .expect("send the pids");
        // A panic that unwinds (dropping `slurm`) without the panic hook's message and backtrace.
        std::panic::resume_unwind(Box::new("a test failing with its MiniSlurm up"));
    });
    let (pids, dir) = rx.recv().expect("the cluster started");
    assert_eq!(pids.len(), 3, "{pids:?}");
    let t0 = Instant::now();
    assert!(thread.join().is_err(), "the thread panicked");
    eprintln!("MiniSlurm stopped in {:?}", t0.elapsed());
    for (name, pid) in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{name} (pid {pid}) is still there"
        );
    }
    assert!(!dir.exists(), "the scratch directory {} is left", dir.display());
}
