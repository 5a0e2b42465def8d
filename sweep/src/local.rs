//! The local executor: up to N worker processes (`sim sweep-task DIR --task T`) at a time, each
//! attempt's output in `logs/tTASK.aATTEMPT.log` (`tTASK.aATTEMPT.K.log` if a run before a
//! `--resume` left that name: no log is overwritten); a task whose worker ended without its result
//! in place is run again, up to `retries` more times.

use crate::plan::Plan;
use crate::task::{is_complete, logs_dir, missing};
use crate::{SweepError, tail};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Local executor settings.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// The `sim` executable the workers run.
    pub exe: PathBuf,
    /// Workers at a time (≥ 1).
    pub jobs: usize,
    /// Extra attempts for a task whose worker fails.
    pub retries: u32,
}

/// Where a sweep stands, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Tasks of this run.
    pub total: usize,
    /// Finished with a result.
    pub done: usize,
    /// Running now.
    pub running: usize,
    /// Given up on (failed every attempt).
    pub failed: usize,
    /// Not started yet (including re-runs waiting).
    pub left: usize,
    /// Estimated time left, once a task has finished.
    pub eta: Option<Duration>,
}

/// A task that failed every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// Task index.
    pub task: usize,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's log.
    pub log: PathBuf,
    /// Its last lines.
    pub tail: Vec<String>,
}

/// What an executor did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Tasks that were missing when it started.
    pub missing: usize,
    /// Worker attempts started (tasks, array indices).
    pub attempts: usize,
    /// Attempts that were re-runs of a failed one.
    pub reruns: usize,
    /// Tasks that failed every attempt.
    pub failed: Vec<Failed>,
}

struct Running {
    task: usize,
    attempt: u32,
    child: Child,
    log: PathBuf,
    started: Instant,
}

/// Runs every missing task of the sweep in `dir`.
pub fn run(
    dir: &Path,
    plan: &Plan,
    opts: &LocalOptions,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Outcome, SweepError> {
    let jobs = opts.jobs.max(1);
    let mut pending: VecDeque<(usize, u32)> = missing(dir, plan).into_iter().map(|t| (t, 1)).collect();
    let mut outcome = Outcome {
        missing: pending.len(),
        ..Outcome::default()
    };
    let mut progress = Progress {
        total: pending.len(),
        left: pending.len(),
        ..Progress::default()
    };
    let mut running: Vec<Running> = Vec::new();
    let mut finished_time = Duration::ZERO;
    on_progress(&progress);
    let result = (|| -> Result<(), SweepError> {
        while !pending.is_empty() || !running.is_empty() {
            while running.len() < jobs {
                let Some((task, attempt)) = pending.pop_front() else {
                    break;
                };
                let (log, out) = new_log(&logs_dir(dir), task, attempt)?;
                let err = out.try_clone().map_err(|e| SweepError::io(&log, e))?;
                let child = Command::new(&opts.exe)
                    .arg("sweep-task")
                    .arg(dir)
                    .arg("--task")
                    .arg(task.to_string())
                    .stdin(Stdio::null())
                    .stdout(out)
                    .stderr(err)
                    .spawn()
                    .map_err(|source| SweepError::Spawn {
                        exe: opts.exe.clone(),
                        source,
                    })?;
                outcome.attempts += 1;
                if attempt > 1 {
                    outcome.reruns += 1;
                }
                running.push(Running {
                    task,
                    attempt,
                    child,
                    log,
                    started: Instant::now(),
                });
            }
            progress.running = running.len();
            progress.left = pending.len();
            let mut changed = false;
            let mut i = 0;
            while i < running.len() {
                let status = running[i]
                    .child
                    .try_wait()
                    .map_err(|e| SweepError::io(&running[i].log, e))?;
                let Some(_status) = status else {
                    i += 1;
                    continue;
                };
                let r = running.swap_remove(i);
                changed = true;
                if is_complete(dir, plan, r.task) {
                    progress.done += 1;
                    finished_time += r.started.elapsed();
                } else if r.attempt <= opts.retries {
                    pending.push_back((r.task, r.attempt + 1));
                } else {
                    progress.failed += 1;
                    outcome.failed.push(Failed {
                        task: r.task,
                        attempts: r.attempt,
                        tail: tail(&r.log, 10),
                        log: r.log,
                    });
                }
            }
            if changed {
                progress.running = running.len();
                progress.left = pending.len();
                progress.eta = (progress.done > 0).then(|| {
                    let per_task = finished_time / progress.done as u32;
                    let rest = (progress.left + progress.running) as u32;
                    // Running tasks are half done on average.
                    per_task * rest / jobs as u32
                });
                on_progress(&progress);
            } else {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        Ok(())
    })();
    if result.is_err() {
        for mut r in running {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
    result?;
    outcome.failed.sort_by_key(|f| f.task);
    Ok(outcome)
}

/// Creates the log of `task`'s `attempt` in `logs`: `tTASK.aATTEMPT.log`, or if an earlier run of
/// the sweep (resumed since) left that file, `tTASK.aATTEMPT.K.log` with the first free K — a
/// worker orphaned by a killed sweep may still be writing the earlier one.
fn new_log(
    logs: &std::path::Path,
    task: usize,
    attempt: u32,
) -> Result<(std::path::PathBuf, std::fs::File), SweepError> {
    for k in 1..=u32::MAX {
        let name = if k == 1 {
            format!("t{task}.a{attempt}.log")
        } else {
            format!("t{task}.a{attempt}.{k}.log")
        };
        let path = logs.join(name);
        match std::fs::File::create_new(&path) {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(SweepError::io(&path, e)),
        }
    }
    let path = logs.join(format!("t{task}.a{attempt}.log"));
    Err(SweepError::io(&path, std::io::ErrorKind::AlreadyExists.into()))
}
