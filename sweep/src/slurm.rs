//! The Slurm executor: one job array (`sbatch --array --wait`) per round, an index per task,
//! or per chunk of tasks when there are more than `max_array`; after each round the results
//! that are missing are found and only the array indices holding them are submitted again, up
//! to `retries` more rounds. A task's exit status is not trusted (`sbatch --wait` reports only
//! the highest, and tasks cancelled while pending leave no trace): the results are.
//!
//! The batch script (`slurm/sweep.sbatch`) runs `sim sweep-task DIR --array-index
//! $SLURM_ARRAY_TASK_ID --chunk C`; `sim` and the sweep directory must be on a file system the
//! compute nodes share.

use crate::local::{Failed, Outcome, Progress};
use crate::plan::Plan;
use crate::task::{logs_dir, missing};
use crate::{SweepError, tail, write_atomic};
use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Slurm executor settings.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// The `sim` executable the tasks run (absolute; on a shared file system).
    pub exe: PathBuf,
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time` (a task's time limit, Slurm's syntax).
    pub time: Option<String>,
    /// Most array tasks running at once (`--array=...%K`).
    pub max_parallel: Option<usize>,
    /// More `sbatch` arguments, passed as given.
    pub sbatch_args: Vec<String>,
    /// Extra rounds for tasks whose results are missing.
    pub retries: u32,
    /// Most indices in one array (larger sweeps are chunked); Slurm's default MaxArraySize is
    /// 1001.
    pub max_array: usize,
    /// The `sbatch` command (default `sbatch` on the PATH).
    pub sbatch: PathBuf,
}

impl SlurmOptions {
    /// Defaults for an executable.
    pub fn new(exe: PathBuf) -> SlurmOptions {
        SlurmOptions {
            exe,
            partition: None,
            time: None,
            max_parallel: None,
            sbatch_args: Vec::new(),
            retries: 2,
            max_array: 1000,
            sbatch: PathBuf::from("sbatch"),
        }
    }
}

/// Quotes a word for `sh`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `0-3,5,7-8` for sorted indices.
pub fn array_spec(indices: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let mut end = start;
        while i + 1 < indices.len() && indices[i + 1] == end + 1 {
            i += 1;
            end = indices[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

/// The batch script.
fn script(dir: &Path, plan: &Plan, opts: &SlurmOptions, chunk: usize) -> String {
    let d = dir.display().to_string();
    let job_name: String = format!("sweep-{}", plan.name)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "#!/bin/sh\n\
         # spinnbed sweep '{name}': {tasks} tasks, {chunk} per array index. Written by `sim sweep --slurm`.\n\
         #SBATCH --job-name={job_name}\n\
         #SBATCH --output={logs}/slurm-%A_%a.out\n\
         #SBATCH --ntasks=1\n\
         #SBATCH --cpus-per-task=1\n\
         exec {exe} sweep-task {dir} --array-index \"$SLURM_ARRAY_TASK_ID\" --chunk {chunk}\n",
        name = plan.name,
        tasks = plan.tasks.len(),
        logs = logs_dir(dir).display(),
        exe = quote(&opts.exe.display().to_string()),
        dir = quote(&d),
    )
}

/// Runs every missing task of the sweep in `dir` (an absolute path) as Slurm job arrays.
pub fn run(
    dir: &Path,
    plan: &Plan,
    opts: &SlurmOptions,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Outcome, SweepError> {
    // A missing sbatch is said plainly, before anything is written.
    match Command::new(&opts.sbatch)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SweepError::Slurm(format!(
                "{} not found on the PATH: install Slurm's client commands, or run the sweep here without --slurm",
                opts.sbatch.display()
            )));
        }
        Err(e) => return Err(SweepError::Slurm(format!("cannot run {}: {e}", opts.sbatch.display()))),
    }
    let chunk = plan.chunk(opts.max_array);
    let slurm_dir = dir.join("slurm");
    std::fs::create_dir_all(&slurm_dir).map_err(|e| SweepError::io(&slurm_dir, e))?;
    let script_path = slurm_dir.join("sweep.sbatch");
    write_atomic(&script_path, script(dir, plan, opts, chunk).as_bytes())?;

    let first_missing = missing(dir, plan);
    let mut outcome = Outcome {
        missing: first_missing.len(),
        ..Outcome::default()
    };
    let total = first_missing.len();
    let mut progress = Progress {
        total,
        left: total,
        ..Progress::default()
    };
    on_progress(&progress);
    let t0 = Instant::now();
    let mut last_job: Option<String> = None;
    let mut attempts_of: Vec<u32> = vec![0; plan.tasks.len()];
    for round in 0..=opts.retries {
        let left = missing(dir, plan);
        if left.is_empty() {
            break;
        }
        let indices: BTreeSet<usize> = left.iter().map(|t| t / chunk).collect();
        let indices: Vec<usize> = indices.into_iter().collect();
        for &t in &left {
            attempts_of[t] += 1;
        }
        let mut spec = array_spec(&indices);
        if let Some(k) = opts.max_parallel {
            spec.push_str(&format!("%{}", k.max(1)));
        }
        let mut cmd = Command::new(&opts.sbatch);
        cmd.arg("--parsable").arg("--wait").arg(format!("--array={spec}"));
        if let Some(p) = &opts.partition {
            cmd.arg(format!("--partition={p}"));
        }
        if let Some(t) = &opts.time {
            cmd.arg(format!("--time={t}"));
        }
        cmd.args(&opts.sbatch_args).arg(&script_path);
        cmd.current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| SweepError::Slurm(format!("cannot run sbatch: {e}")))?;
        outcome.attempts += indices.len();
        if round > 0 {
            outcome.reruns += indices.len();
        }
        // Follow the results while the array runs.
        let status = loop {
            if let Some(s) = child
                .try_wait()
                .map_err(|e| SweepError::Slurm(format!("waiting for sbatch: {e}")))?
            {
                break s;
            }
            std::thread::sleep(Duration::from_millis(250));
            let now_missing = missing(dir, plan).len();
            let done = total - now_missing.min(total);
            if done != progress.done {
                progress.done = done;
                progress.left = now_missing;
                let elapsed = t0.elapsed();
                progress.eta = (done > 0).then(|| elapsed / done as u32 * now_missing as u32);
                on_progress(&progress);
            }
        };
        let mut out = String::new();
        let mut err = String::new();
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        // --parsable prints "JOBID" or "JOBID;CLUSTER" once the array is submitted.
        let job = out
            .lines()
            .next()
            .and_then(|l| l.split(';').next())
            .map(str::trim)
            .filter(|j| !j.is_empty() && j.chars().all(|c| c.is_ascii_digit()));
        let Some(job) = job else {
            return Err(SweepError::Slurm(format!(
                "sbatch did not submit the job array ({status}): {}",
                err.trim().lines().last().unwrap_or("no message")
            )));
        };
        last_job = Some(job.to_string());
        let now_missing = missing(dir, plan);
        progress.done = total - now_missing.len().min(total);
        progress.left = now_missing.len();
        on_progress(&progress);
    }
    let left = missing(dir, plan);
    for t in left {
        let log = match &last_job {
            Some(job) => logs_dir(dir).join(format!("slurm-{job}_{}.out", t / chunk)),
            None => logs_dir(dir).to_path_buf(),
        };
        outcome.failed.push(Failed {
            task: t,
            attempts: attempts_of[t],
            tail: tail(&log, 10),
            log,
        });
    }
    progress.failed = outcome.failed.len();
    progress.left = 0;
    on_progress(&progress);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_specs_compress_runs() {
        assert_eq!(array_spec(&[0, 1, 2, 3, 5, 7, 8]), "0-3,5,7-8");
        assert_eq!(array_spec(&[4]), "4");
        assert_eq!(array_spec(&[]), "");
        assert_eq!(quote("a'b c"), r"'a'\''b c'");
    }
}
