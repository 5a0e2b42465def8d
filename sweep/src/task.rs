//! The sweep directory and the worker side: `sim sweep-task DIR` runs tasks of the plan there
//! and writes each result into place atomically as its last step.

use crate::plan::{Plan, Planned, point_name, result_name};
use crate::{SweepError, write_atomic};
use std::path::{Path, PathBuf};

/// The environment variable of the test-only fault hook: `POINT:SEED` makes that task's worker
/// abort (SIGABRT) just before its result would be renamed into place, on its first attempt
/// only (`POINT:SEED:always`: on every attempt). It leaves a partial temporary file behind, as
/// a worker killed mid-write would.
pub const CRASH_HOOK: &str = "SPINNBED_SWEEP_TEST_CRASH";

/// `plan.json` in a sweep directory.
pub fn plan_file(dir: &Path) -> PathBuf {
    dir.join("plan.json")
}

/// The results directory.
pub fn results_dir(dir: &Path) -> PathBuf {
    dir.join("results")
}

/// The logs directory.
pub fn logs_dir(dir: &Path) -> PathBuf {
    dir.join("logs")
}

/// Serialises the plan (stable: the same sweep file gives the same bytes).
fn plan_bytes(plan: &Plan) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(plan).expect("plain data serialises");
    v.push(b'\n');
    v
}

/// What [`prepare`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    /// Tasks whose results are already there (only with `resume`).
    pub complete: usize,
}

/// Creates the sweep directory for a plan (it must not exist or be empty), or with `resume`
/// reopens one made for the same plan; refuses a directory holding anything else.
pub fn prepare(dir: &Path, planned: &Planned, resume: bool) -> Result<Prepared, SweepError> {
    let bytes = plan_bytes(&planned.plan);
    let plan_path = plan_file(dir);
    let refuse = |why: String| SweepError::Directory {
        dir: dir.to_path_buf(),
        why,
    };
    if plan_path.exists() {
        let old = std::fs::read(&plan_path).map_err(|e| SweepError::io(&plan_path, e))?;
        if !resume {
            return Err(refuse(
                "holds a sweep already: --resume to finish it, or choose another --out".into(),
            ));
        }
        if old != bytes {
            return Err(refuse(
                "was planned from a different sweep (the sweep file, its base scenario or the seeds changed): \
                 choose another --out"
                    .into(),
            ));
        }
        let complete = missing(dir, &planned.plan).len();
        return Ok(Prepared {
            complete: planned.plan.tasks.len() - complete,
        });
    }
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(refuse("is not empty and holds no sweep (no plan.json)".into()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(SweepError::io(dir, e)),
    }
    for sub in ["points", "results", "logs"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| SweepError::io(&d, e))?;
    }
    for (i, text) in planned.scenarios.iter().enumerate() {
        if let Some(text) = text {
            write_atomic(&dir.join("points").join(point_name(i)), text.as_bytes())?;
        }
    }
    // Last: a directory with plan.json is complete.
    write_atomic(&plan_path, &bytes)?;
    Ok(Prepared { complete: 0 })
}

/// Reads a sweep directory's plan.
pub fn read_plan(dir: &Path) -> Result<Plan, SweepError> {
    let path = plan_file(dir);
    let bytes = std::fs::read(&path).map_err(|e| SweepError::io(&path, e))?;
    let plan: Plan = serde_json::from_slice(&bytes).map_err(|e| SweepError::Corrupt {
        file: path.clone(),
        why: format!("not a sweep plan: {e}"),
    })?;
    let bad = plan
        .tasks
        .iter()
        .any(|&(p, _)| p >= plan.points.len() || plan.points[p].error.is_some())
        || plan.points.iter().any(|p| p.values.len() != plan.axes.len());
    if bad {
        return Err(SweepError::Corrupt {
            file: path,
            why: "its tasks and points do not match".into(),
        });
    }
    Ok(plan)
}

/// Is a task's result in place?
pub fn is_complete(dir: &Path, plan: &Plan, task: usize) -> bool {
    results_dir(dir).join(plan.result_name(task)).is_file()
}

/// The tasks whose results are missing, in plan order.
pub fn missing(dir: &Path, plan: &Plan) -> Vec<usize> {
    (0..plan.tasks.len()).filter(|&t| !is_complete(dir, plan, t)).collect()
}

/// Which tasks a worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// One task.
    Task(usize),
    /// Job-array index `index` of an array of `chunk` tasks per index.
    ArrayIndex {
        /// The array index.
        index: usize,
        /// Tasks per index.
        chunk: usize,
    },
}

impl Select {
    /// The task indices selected.
    pub fn tasks(self, n: usize) -> std::ops::Range<usize> {
        match self {
            Select::Task(t) => t.min(n)..(t + 1).min(n),
            Select::ArrayIndex { index, chunk } => {
                let start = index.saturating_mul(chunk).min(n);
                start..start.saturating_add(chunk).min(n)
            }
        }
    }
}

/// What a worker did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Worked {
    /// Tasks run.
    pub ran: usize,
    /// Tasks skipped, their results already in place.
    pub skipped: usize,
}

/// Runs the selected tasks of the sweep in `dir` whose results are missing, one after another.
pub fn work(dir: &Path, select: Select) -> Result<Worked, SweepError> {
    let plan = read_plan(dir)?;
    let range = select.tasks(plan.tasks.len());
    if range.is_empty() {
        return Err(SweepError::Corrupt {
            file: plan_file(dir),
            why: format!("no task {select:?}: the plan has {} tasks", plan.tasks.len()),
        });
    }
    let mut worked = Worked::default();
    for task in range {
        if is_complete(dir, &plan, task) {
            worked.skipped += 1;
            continue;
        }
        run_task(dir, &plan, task)?;
        worked.ran += 1;
    }
    Ok(worked)
}

/// Runs one task and writes its result.
pub fn run_task(dir: &Path, plan: &Plan, task: usize) -> Result<(), SweepError> {
    let (point, seed) = plan.tasks[task];
    let fail = |why: String| SweepError::Task { task, point, seed, why };
    let file = dir.join("points").join(point_name(point));
    let text = std::fs::read_to_string(&file).map_err(|e| SweepError::io(&file, e))?;
    let label = file.display().to_string();
    let sc = spinnbed_sim::scenario::parse(&label, &text, &plan.base_dir)
        .map_err(|e| fail(e.to_string()))?
        .with_seed(seed);
    eprintln!("task {task}: point {point} ({}), seed {seed}", plan.describe(point));
    let t0 = std::time::Instant::now();
    let (jobs, report) = sc.workload().map_err(|e| fail(e.to_string()))?;
    let mut spec = spinnbed_sim::run::RunSpec::from_scenario(&sc, jobs);
    spec.recorded_bmp = report.recorded_bmp.clone();
    let (result, meta) = spinnbed_sim::run::simulate(&spec, |_| {}).map_err(|e| fail(e.to_string()))?;
    let summary = spinnbed_sim::run::outputs::summary(&result, &meta);
    let bytes = spinnbed_sim::run::outputs::json(&summary);
    let path = results_dir(dir).join(result_name(point, seed));
    crash_hook(dir, point, seed, &path, &bytes);
    write_atomic(&path, &bytes)?;
    eprintln!(
        "task {task}: done in {:.3} s: {}",
        t0.elapsed().as_secs_f64(),
        path.display()
    );
    Ok(())
}

/// The test-only fault hook (see [`CRASH_HOOK`]).
fn crash_hook(dir: &Path, point: usize, seed: u64, path: &Path, bytes: &[u8]) {
    let Ok(spec) = std::env::var(CRASH_HOOK) else {
        return;
    };
    let mut parts = spec.split(':');
    let (p, s, mode) = (parts.next(), parts.next(), parts.next());
    if p.and_then(|p| p.parse::<usize>().ok()) != Some(point) || s.and_then(|s| s.parse::<u64>().ok()) != Some(seed) {
        return;
    }
    let marker = logs_dir(dir).join(format!(".crashed-p{point}-s{seed}"));
    if mode != Some("always") && marker.exists() {
        return;
    }
    let _ = std::fs::write(&marker, b"");
    // What a worker killed while writing leaves: a partial temporary file, never the result.
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let _ = std::fs::write(
        path.with_file_name(format!(".{name}.partial")),
        &bytes[..bytes.len() / 2],
    );
    eprintln!("task: {CRASH_HOOK}: aborting point {point} seed {seed} on purpose");
    std::process::abort();
}
