//! The replay CSV of `sim replay` as a workload: each row becomes one job, its times scaled by
//! `time_scale` (and its submit time, from t = 0, divided by `load_scale`), all owned by one
//! user.

use super::WorkloadJob;
use super::WorkloadReport;
use crate::input::{self, InputError, replay_csv};
use spinnbed_core::alloc::{Request, Shape};
use spinnbed_core::time::{Duration, Instant};
use std::path::PathBuf;

/// What a trace job declares as its runtime estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceEstimate {
    /// No estimate.
    None,
    /// The real runtime (a perfect estimate).
    Actual,
}

/// A trace workload.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSpec {
    /// The replay CSV (optionally gzipped).
    pub path: PathBuf,
    /// Multiplies submission times and durations.
    pub time_scale: f64,
    /// Divides submission times (from t = 0, after `time_scale`), not durations: the offered
    /// load times this (`[workload] load_scale`).
    pub load_scale: f64,
    /// Keepalive of every job.
    pub keepalive: Option<Duration>,
    /// Owner of every job.
    pub owner: String,
    /// Declared estimates.
    pub estimate: TraceEstimate,
    /// Bytes each job's user writes before running (packet level; default 0).
    pub data_in: crate::quantity::dist::Dist<crate::quantity::dist::ByteSize>,
    /// Bytes each job's user reads back afterwards (default 0).
    pub data_out: crate::quantity::dist::Dist<crate::quantity::dist::ByteSize>,
}

/// The size class of a request for reports: `"1 board"`, `"2-24 boards"`, `"25-150 boards"`,
/// `"151+ boards"`, `"rect"` or `"specific"`.
pub fn size_class(request: &Request) -> &'static str {
    match request.shape {
        Shape::AnyBoard => "1 board",
        Shape::Board { .. } => "specific",
        Shape::Triads { .. } | Shape::TriadsAt { .. } => "rect",
        Shape::Boards { n, .. } => match n {
            0..=1 => "1 board",
            2..=24 => "2-24 boards",
            25..=150 => "25-150 boards",
            _ => "151+ boards",
        },
    }
}

/// `us × scale` microseconds, rounded (exact when the scale is 1).
pub(crate) fn scaled(us: f64, scale: f64) -> Duration {
    let v = (us * scale).round();
    if v.is_nan() || v <= 0.0 {
        Duration::ZERO
    } else if v >= u64::MAX as f64 {
        Duration::MAX
    } else {
        Duration(v as u64)
    }
}

/// Reads the trace and builds its jobs (those submitted at or after `horizon` are dropped and
/// counted).
pub fn generate(spec: &TraceSpec, horizon: Duration) -> Result<(Vec<WorkloadJob>, WorkloadReport), InputError> {
    let text = input::read_text(&spec.path)?;
    let rows = replay_csv::parse(&spec.path.display().to_string(), &text)?;
    let mut report = WorkloadReport::new("trace");
    let mut late = 0;
    let mut jobs = Vec::with_capacity(rows.len());
    for row in rows {
        let submit = scaled(row.submit_ms as f64 * 1e3, spec.time_scale / spec.load_scale);
        if submit >= horizon {
            late += 1;
            continue;
        }
        let request = row.request();
        let runtime = scaled(row.duration_ms as f64 * 1e3, spec.time_scale);
        jobs.push(WorkloadJob {
            id: row.id,
            submit: Instant(submit.0),
            owner: spec.owner.clone(),
            class: size_class(&request).to_string(),
            request,
            machine: None,
            tags: None,
            runtime,
            estimate: match spec.estimate {
                TraceEstimate::None => None,
                TraceEstimate::Actual => Some(runtime),
            },
            keepalive: spec.keepalive,
            lapse_after: None,
            last_keepalive: None,
            cancel_after: None,
            data_in: 0,
            data_out: 0,
        });
    }
    report.skip("submitted after the horizon", late);
    report.jobs = jobs.len();
    Ok((jobs, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_requests() {
        let r = |shape| Request::new(shape);
        assert_eq!(size_class(&r(Shape::AnyBoard)), "1 board");
        assert_eq!(size_class(&r(Shape::Boards { n: 2, min_ratio: 0.0 })), "2-24 boards");
        assert_eq!(size_class(&r(Shape::Boards { n: 24, min_ratio: 0.0 })), "2-24 boards");
        assert_eq!(size_class(&r(Shape::Boards { n: 25, min_ratio: 0.0 })), "25-150 boards");
        assert_eq!(size_class(&r(Shape::Boards { n: 151, min_ratio: 0.0 })), "151+ boards");
        assert_eq!(size_class(&r(Shape::Triads { w: 1, h: 1 })), "rect");
        let b = spinnbed_core::geometry::Board::new(0, 0, 0);
        assert_eq!(size_class(&r(Shape::Board { board: b })), "specific");
    }

    #[test]
    fn rows_become_jobs_scaled_and_cut_at_the_horizon() {
        let dir = std::env::temp_dir().join(format!("spinnbed-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.csv");
        std::fs::write(
            &path,
            "id,submit_s,kind,a,b,c,min_ratio,max_dead_boards,duration_s\n\
             7,10,board,,,,,,60\n3,0.5,boards,30,,,0.5,0,120.25\n9,100,rect,2,1,,,,5\n4,1000,board,,,,,,1\n",
        )
        .unwrap();
        let spec = TraceSpec {
            path: path.clone(),
            time_scale: 2.0,
            load_scale: 1.0,
            keepalive: Some(Duration::from_secs(30)),
            owner: "ops".into(),
            estimate: TraceEstimate::Actual,
            data_in: crate::quantity::dist::Dist::fixed(crate::quantity::dist::ByteSize(0)),
            data_out: crate::quantity::dist::Dist::fixed(crate::quantity::dist::ByteSize(0)),
        };
        let (jobs, report) = generate(&spec, Duration::from_secs(1000)).unwrap();
        assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![3, 7, 9]);
        assert_eq!(jobs[0].submit, Instant::from_secs(1));
        assert_eq!(jobs[0].runtime, Duration::from_millis(240_500));
        assert_eq!(jobs[0].estimate, Some(jobs[0].runtime));
        assert_eq!(jobs[0].class, "25-150 boards");
        assert_eq!(jobs[0].request.max_dead_boards, Some(0));
        assert_eq!(jobs[2].class, "rect");
        assert!(
            jobs.iter()
                .all(|j| j.owner == "ops" && j.keepalive == Some(Duration::from_secs(30)))
        );
        assert_eq!(report.jobs, 3);
        assert_eq!(report.skipped, vec![("submitted after the horizon".to_string(), 1)]);
        std::fs::write(
            &path,
            "id,submit_s,kind,a,b,c,min_ratio,max_dead_boards,duration_s\n1,x,board,,,,,,1\n",
        )
        .unwrap();
        let e = generate(&spec, Duration::from_secs(1000)).unwrap_err();
        assert_eq!((e.line, e.field.as_deref()), (Some(2), Some("field submit_s")));
        assert!(e.file.ends_with("t.csv"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
