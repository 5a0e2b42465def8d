//! Collecting a finished sweep: the results read in plan order (whatever order the tasks ran
//! in), `sweep.csv` (a row per point and seed), `points.csv` (a row per point: mean and 95 %
//! interval across seeds), `sweep.json` (what the report needs) and `report/`.

use crate::metrics::{DEFAULT_REPORT, METRICS, Metric, value};
use crate::plan::Plan;
use crate::stats::Interval;
use crate::task::{missing, results_dir};
use crate::{SweepError, write_atomic};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What [`collect`] wrote.
#[derive(Debug, Clone)]
pub struct Collected {
    /// Rows of `sweep.csv`.
    pub rows: usize,
    /// Metrics found in the results.
    pub metrics: Vec<&'static str>,
    /// Files written.
    pub files: Vec<PathBuf>,
}

#[derive(Serialize)]
struct MetricInfo {
    name: &'static str,
    label: &'static str,
    unit: &'static str,
    better: crate::metrics::Better,
}

#[derive(Serialize)]
struct SweepJson<'a> {
    name: &'a str,
    base: &'a str,
    seeds: &'a [u64],
    axes: &'a [crate::plan::Axis],
    metrics: Vec<MetricInfo>,
    report_metrics: Vec<&'a str>,
    points: usize,
    invalid_points: usize,
}

fn num(v: f64) -> String {
    // Shortest text that reads back as the same number; stable across runs.
    let r = (v * 1e9).round() / 1e9;
    format!("{}", if r == 0.0 { 0.0 } else { r })
}

fn csv_bytes(rows: Vec<Vec<String>>, file: &Path) -> Result<Vec<u8>, SweepError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.write_record(&r).map_err(|e| SweepError::Corrupt {
            file: file.to_path_buf(),
            why: e.to_string(),
        })?;
    }
    w.into_inner().map_err(|e| SweepError::Corrupt {
        file: file.to_path_buf(),
        why: e.to_string(),
    })
}

/// Reads every task's result and writes the sweep's outputs into `dir`. Every task must have
/// its result (see [`missing`]).
pub fn collect(dir: &Path, plan: &Plan) -> Result<Collected, SweepError> {
    let left = missing(dir, plan);
    if let Some(&t) = left.first() {
        return Err(SweepError::Corrupt {
            file: results_dir(dir).join(plan.result_name(t)),
            why: format!(
                "missing ({} results missing): run the sweep again with --resume",
                left.len()
            ),
        });
    }
    // Every result, in plan order.
    let mut summaries: Vec<serde_json::Value> = Vec::with_capacity(plan.tasks.len());
    for t in 0..plan.tasks.len() {
        let path = results_dir(dir).join(plan.result_name(t));
        let bytes = std::fs::read(&path).map_err(|e| SweepError::io(&path, e))?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| SweepError::Corrupt {
            file: path.clone(),
            why: format!("not a run summary: {e}"),
        })?;
        if v.get("seed").and_then(|s| s.as_u64()) != Some(plan.tasks[t].1) {
            return Err(SweepError::Corrupt {
                file: path,
                why: "not this task's result (its seed differs)".into(),
            });
        }
        summaries.push(v);
    }
    let metrics: Vec<&'static Metric> = METRICS
        .iter()
        .filter(|m| summaries.iter().any(|s| value(s, m).is_some()))
        .collect();

    // sweep.csv
    let mut header: Vec<String> = vec!["point".into(), "seed".into()];
    header.extend(plan.axes.iter().map(|a| a.key.clone()));
    header.extend(metrics.iter().map(|m| m.name.to_string()));
    let mut rows = vec![header];
    for (t, s) in summaries.iter().enumerate() {
        let (p, seed) = plan.tasks[t];
        let mut row = vec![p.to_string(), seed.to_string()];
        row.extend((0..plan.axes.len()).map(|a| plan.value_text(&plan.points[p], a)));
        row.extend(metrics.iter().map(|m| value(s, m).map(num).unwrap_or_default()));
        rows.push(row);
    }
    let sweep_csv = csv_bytes(rows, &dir.join("sweep.csv"))?;

    // points.csv
    let mut header: Vec<String> = vec!["point".into()];
    header.extend(plan.axes.iter().map(|a| a.key.clone()));
    header.push("seeds".into());
    for m in &metrics {
        for suffix in ["mean", "ci95_lo", "ci95_hi"] {
            header.push(format!("{}_{suffix}", m.name));
        }
    }
    header.push("error".into());
    let mut rows = vec![header];
    for p in &plan.points {
        let mut row = vec![p.index.to_string()];
        row.extend((0..plan.axes.len()).map(|a| plan.value_text(p, a)));
        let mine: Vec<&serde_json::Value> = plan
            .tasks
            .iter()
            .zip(&summaries)
            .filter(|((point, _), _)| *point == p.index)
            .map(|(_, s)| s)
            .collect();
        row.push(mine.len().to_string());
        for m in &metrics {
            let values: Vec<f64> = mine.iter().filter_map(|s| value(s, m)).collect();
            match Interval::of(&values) {
                Some(i) => row.extend([num(i.mean), num(i.lo), num(i.hi)]),
                None => row.extend([String::new(), String::new(), String::new()]),
            }
        }
        row.push(p.error.clone().unwrap_or_default());
        rows.push(row);
    }
    let points_csv = csv_bytes(rows, &dir.join("points.csv"))?;

    // sweep.json
    let present: Vec<&str> = metrics.iter().map(|m| m.name).collect();
    let report_metrics: Vec<&str> = if plan.report_metrics.is_empty() {
        DEFAULT_REPORT.iter().copied().filter(|m| present.contains(m)).collect()
    } else {
        plan.report_metrics
            .iter()
            .map(String::as_str)
            .filter(|m| present.contains(m))
            .collect()
    };
    let info = SweepJson {
        name: &plan.name,
        base: &plan.base,
        seeds: &plan.seeds,
        axes: &plan.axes,
        metrics: metrics
            .iter()
            .map(|m| MetricInfo {
                name: m.name,
                label: m.label,
                unit: m.unit,
                better: m.better,
            })
            .collect(),
        report_metrics,
        points: plan.points.len(),
        invalid_points: plan.points.iter().filter(|p| p.error.is_some()).count(),
    };
    let mut sweep_json = serde_json::to_vec_pretty(&info).expect("plain data serialises");
    sweep_json.push(b'\n');

    // The report, staged beside its final place and renamed over it.
    let staging = dir.join(format!(".report.{}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| SweepError::io(&staging, e))?;
    let staged = (|| -> Result<(), SweepError> {
        for (name, bytes) in [("sweep.json", &sweep_json), ("points.csv", &points_csv)] {
            let p = staging.join(name);
            std::fs::write(&p, bytes).map_err(|e| SweepError::io(&p, e))?;
        }
        spinnbed_reports::generate_sweep(&staging).map_err(|e| SweepError::Report(format!("{e:#}")))?;
        Ok(())
    })();
    if let Err(e) = staged {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    let report = dir.join("report");
    let old = dir.join(format!(".report.{}.old", std::process::id()));
    if report.exists() {
        std::fs::rename(&report, &old).map_err(|e| SweepError::io(&report, e))?;
    }
    std::fs::rename(&staging, &report).map_err(|e| SweepError::io(&report, e))?;
    let _ = std::fs::remove_dir_all(&old);

    let mut files = Vec::new();
    for (name, bytes) in [
        ("sweep.json", &sweep_json),
        ("points.csv", &points_csv),
        ("sweep.csv", &sweep_csv),
    ] {
        let p = dir.join(name);
        write_atomic(&p, bytes)?;
        files.push(p);
    }
    files.push(report.join("index.html"));
    Ok(Collected {
        rows: summaries.len(),
        metrics: present,
        files,
    })
}
