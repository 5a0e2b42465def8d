//! Parameter sweeps (`sim sweep`): a sweep file names a base scenario, axes that override its
//! keys, points (the axes' cross product or an explicit list) and seeds. Every (point, seed) is
//! a task; a task is one simulation run by a worker process (`sim sweep-task`), here
//! ([`local`]) or as a Slurm job array ([`slurm`]), that writes its result — the run's
//! `summary.json` — into place atomically as its last step, so a result is complete or absent.
//! The executors wait for everything that can finish, find what is missing and re-run only
//! that; [`collect`] then reads the results in plan order (never in completion order) and
//! writes `sweep.csv`, `points.csv`, `sweep.json` and the report.
//!
//! A sweep directory:
//! - `plan.json` — the plan ([`plan::Plan`]): axes, points, seeds, tasks, chunking;
//! - `points/pNNNN.toml` — each valid point's scenario (the base with its overrides), frozen
//!   when the sweep was planned;
//! - `results/pNNNN-sSEED.json` — one per finished task (temporary files start with `.`);
//! - `logs/` — each attempt's output (local: `tTASK.aATTEMPT.log`, never overwritten; Slurm: `slurm-JOB_INDEX.out`);
//! - `slurm/sweep.sbatch` — the batch script (Slurm executor);
//! - `sweep.csv`, `points.csv`, `sweep.json`, `report/` — the collected outputs, written once
//!   every task has its result.

pub mod collect;
pub mod local;
pub mod metrics;
pub mod plan;
pub mod slurm;
pub mod stats;
pub mod task;

use std::path::PathBuf;

/// Why a sweep could not be planned, run or collected.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The sweep file, its base scenario or an axis is wrong (nothing has run).
    #[error("{0}")]
    Input(#[from] spinnbed_sim::input::InputError),
    /// The output directory holds something else, or another sweep.
    #[error("{dir}: {why}")]
    Directory {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A file of the sweep directory could not be read or written.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file of the sweep directory is malformed (written by something else, or damaged).
    #[error("{file}: {why}")]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A task could not run its simulation.
    #[error("task {task} (point {point}, seed {seed}): {why}")]
    Task {
        /// Task index.
        task: usize,
        /// Point index.
        point: usize,
        /// Seed.
        seed: u64,
        /// What went wrong.
        why: String,
    },
    /// The Slurm executor could not submit or follow its job array.
    #[error("slurm: {0}")]
    Slurm(String),
    /// A worker process could not be started.
    #[error("cannot start a worker ({exe}): {source}")]
    Spawn {
        /// The executable.
        exe: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The report could not be written.
    #[error("report: {0}")]
    Report(String),
}

impl SweepError {
    /// An I/O error on a file.
    pub fn io(file: impl Into<PathBuf>, source: std::io::Error) -> SweepError {
        SweepError::Io {
            file: file.into(),
            source,
        }
    }

    /// True for errors in what the user gave (exit status 2 on the command line).
    pub fn is_input(&self) -> bool {
        matches!(self, SweepError::Input(_) | SweepError::Directory { .. })
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it (its name starts with `.`),
/// flushed to disk, then renamed into place.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<(), SweepError> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        SweepError::io(path, e)
    })
}

/// The last `n` lines of a log file (none if it cannot be read).
pub fn tail(path: &std::path::Path, n: usize) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}
