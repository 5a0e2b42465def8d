//! `sim sweep`: a parameter sweep here (worker processes) or on a Slurm cluster (a job array),
//! and `sim sweep-task`, the worker both executors run.

use crate::Failure;
use spinnbed_sweep::SweepError;
use spinnbed_sweep::local::{LocalOptions, Outcome, Progress};
use spinnbed_sweep::slurm::SlurmOptions;
use spinnbed_sweep::task::Select;
use std::path::{Path, PathBuf};

/// `sim sweep` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Sweep file (TOML; see scenarios/README.md, "Sweeps").
    sweep: PathBuf,
    /// Output directory (default: out/<sweep name>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker processes at a time for the local executor (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Run the tasks as a Slurm job array (sbatch) instead of here.
    #[arg(long)]
    slurm: bool,
    /// Slurm partition (with --slurm).
    #[arg(long, requires = "slurm")]
    partition: Option<String>,
    /// Slurm time limit per array task, Slurm's syntax (with --slurm).
    #[arg(long, requires = "slurm")]
    time: Option<String>,
    /// Most array tasks running at once (with --slurm).
    #[arg(long, requires = "slurm")]
    max_parallel: Option<usize>,
    /// Another sbatch argument, passed as given (repeatable; with --slurm).
    #[arg(long = "sbatch-arg", requires = "slurm", allow_hyphen_values = true)]
    sbatch_arg: Vec<String>,
    /// Finish a sweep in --out: skip the tasks whose results are there, run the rest.
    #[arg(long)]
    resume: bool,
    /// Extra attempts for a task whose worker died or failed.
    #[arg(long, default_value_t = 2)]
    retries: u32,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// `sim sweep-task` arguments (the worker; not for people).
#[derive(clap::Args)]
pub struct TaskArgs {
    /// The sweep directory.
    dir: PathBuf,
    /// Run this task.
    #[arg(long, conflicts_with = "array_index")]
    task: Option<usize>,
    /// Run the tasks of this job-array index (with --chunk).
    #[arg(long, requires = "chunk")]
    array_index: Option<usize>,
    /// Tasks per array index.
    #[arg(long)]
    chunk: Option<usize>,
}

fn failure(e: SweepError) -> Failure {
    if e.is_input() {
        Failure::input(e)
    } else {
        Failure::other(e)
    }
}

/// Plans, runs and collects a sweep.
pub fn run(a: Args) -> Result<(), Failure> {
    let t_plan = std::time::Instant::now();
    let planned = spinnbed_sweep::plan::load(&a.sweep).map_err(failure)?;
    let plan = &planned.plan;
    let out = a.out.clone().unwrap_or_else(|| crate::default_out(&plan.name));
    let dir = std::path::absolute(&out).map_err(|e| Failure::input(anyhow::anyhow!("{}: {e}", out.display())))?;
    let invalid: Vec<_> = plan.points.iter().filter(|p| p.error.is_some()).collect();
    for p in &invalid {
        eprintln!(
            "sim: point {} ({}) is not run: {}",
            p.index,
            plan.describe(p.index),
            p.error.as_deref().unwrap_or("")
        );
    }
    if plan.tasks.is_empty() {
        return Err(Failure::input(anyhow::anyhow!(
            "{}: no point has a valid scenario: nothing to run",
            a.sweep.display()
        )));
    }
    let prepared = spinnbed_sweep::task::prepare(&dir, &planned, a.resume).map_err(failure)?;
    let exe =
        std::env::current_exe().map_err(|e| Failure::other(anyhow::anyhow!("cannot find the sim executable: {e}")))?;
    if !a.quiet {
        println!(
            "{}: {} points ({} invalid) × {} seeds = {} tasks{}",
            plan.name,
            plan.points.len(),
            invalid.len(),
            plan.seeds.len(),
            plan.tasks.len(),
            if prepared.complete > 0 {
                format!(
                    "; resuming: {} complete, {} to run",
                    prepared.complete,
                    plan.tasks.len() - prepared.complete
                )
            } else {
                String::new()
            }
        );
    }
    let planned_in = t_plan.elapsed();
    let t_run = std::time::Instant::now();
    let bar = crate::progress::bar(
        a.quiet,
        (plan.tasks.len() - prepared.complete) as u64,
        "{spinner} {msg} [{wide_bar}] ({elapsed})",
    );
    let mut show = |p: &Progress| {
        bar.set_position(p.done as u64);
        let eta = p.eta.map(|d| format!(", about {} left", human(d))).unwrap_or_default();
        bar.set_message(format!(
            "{} done, {} running, {} failed, {} left{eta}",
            p.done, p.running, p.failed, p.left
        ));
    };
    let outcome: Outcome = if a.slurm {
        let mut o = SlurmOptions::new(exe);
        o.partition = a.partition.clone();
        o.time = a.time.clone();
        o.max_parallel = a.max_parallel;
        o.sbatch_args = a.sbatch_arg.clone();
        o.retries = a.retries;
        spinnbed_sweep::slurm::run(&dir, plan, &o, &mut show).map_err(failure)?
    } else {
        let jobs = match a.jobs {
            Some(0) => return Err(Failure::input(anyhow::anyhow!("--jobs must be at least 1"))),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let o = LocalOptions {
            exe,
            jobs,
            retries: a.retries,
        };
        spinnbed_sweep::local::run(&dir, plan, &o, &mut show).map_err(failure)?
    };
    bar.finish_and_clear();
    let ran_in = t_run.elapsed();
    if !a.quiet || !outcome.failed.is_empty() {
        println!(
            "ran {} of {} tasks ({} attempts, {} re-runs) in {:.2} s (planned in {:.2} s)",
            outcome.missing,
            plan.tasks.len(),
            outcome.attempts,
            outcome.reruns,
            ran_in.as_secs_f64(),
            planned_in.as_secs_f64()
        );
    }
    let t_collect = std::time::Instant::now();
    if !outcome.failed.is_empty() {
        for f in &outcome.failed {
            let (p, s) = plan.tasks[f.task];
            eprintln!(
                "sim: task {} (point {p}: {}; seed {s}) failed {} time(s); {}:",
                f.task,
                plan.describe(p),
                f.attempts,
                f.log.display()
            );
            for l in &f.tail {
                eprintln!("    {l}");
            }
        }
        return Err(Failure::other(anyhow::anyhow!(
            "{} of {} tasks failed every attempt; the others' results are in {}: fix the cause and run again with --resume",
            outcome.failed.len(),
            plan.tasks.len(),
            dir.join("results").display()
        )));
    }
    let collected = spinnbed_sweep::collect::collect(&dir, plan).map_err(failure)?;
    if !a.quiet {
        println!(
            "{} rows, {} metrics, collected with the report in {:.2} s: {}",
            collected.rows,
            collected.metrics.len(),
            t_collect.elapsed().as_secs_f64(),
            dir.join("sweep.csv").display()
        );
    }
    println!("{}", dir.join("report").join("index.html").display());
    Ok(())
}

/// A duration in words (`2m 05s`).
fn human(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

/// The worker: runs its tasks whose results are missing.
pub fn task(a: TaskArgs) -> Result<(), Failure> {
    let select = match (a.task, a.array_index, a.chunk) {
        (Some(t), None, _) => Select::Task(t),
        (None, Some(index), Some(chunk)) if chunk > 0 => Select::ArrayIndex { index, chunk },
        _ => {
            return Err(Failure::input(anyhow::anyhow!(
                "give --task T, or --array-index K with --chunk C (C ≥ 1)"
            )));
        }
    };
    let dir: &Path = &a.dir;
    let worked = spinnbed_sweep::task::work(dir, select).map_err(failure)?;
    eprintln!("sweep-task: ran {}, skipped {} complete", worked.ran, worked.skipped);
    Ok(())
}
