//! Parameter sweeps (`sim sweep`): reading a sweep's `sweep.json` and `points.csv`, what its
//! report shows (the lines of each chart, the best setting per metric and which other settings
//! are within noise of it) and its `index.html`.
//!
//! `sweep.json` describes the sweep: its name, base scenario and seeds, the axes with their values
//! (JSON strings, numbers or booleans), the metrics with a label, a unit and which way is better,
//! and the metrics to chart (`report_metrics`). `points.csv` has one row per point, in plan order:
//! `point`, the value of every axis (as text), `seeds` (how many seeds' results went into the row),
//! per metric `<m>_mean,<m>_ci95_lo,<m>_ci95_hi` (the mean over the seeds and the 95 % confidence
//! interval of that mean, Student t), and `error`. A point whose scenario was invalid has no seeds,
//! empty metric cells and its error message.
//!
//! Every problem with the input is an error naming the file (and for `points.csv` the line and
//! column); nothing here panics on odd input, and empty or non-finite metric cells are just
//! missing values.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Result, anyhow};
use serde::Deserialize;

use crate::data::{InputError, csv_error};
use crate::format::{self, html_escape as esc};
use crate::html::{self, Better, Figure};

/// A sweep's description and its points.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub name: String,
    /// The base scenario, as `sweep.json` names it.
    pub base: String,
    pub seeds: Vec<u64>,
    pub axes: Vec<Axis>,
    pub metrics: Vec<Metric>,
    /// The metrics to chart: indices into `metrics`, in `report_metrics` order, each once.
    pub report_metrics: Vec<usize>,
    /// The points, in the order of `points.csv` (plan order).
    pub points: Vec<Point>,
}

/// One axis: a scenario key and the values it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub key: String,
    /// The values as text: strings raw, numbers as JSON prints them, `true`/`false`.
    pub values: Vec<String>,
    /// The values as numbers, when every value is a JSON number (the axis is then drawn to
    /// scale; otherwise its values are evenly spaced categories).
    pub numbers: Option<Vec<f64>>,
    /// A condition (the workload, machine or network the settings are compared under) rather
    /// than a choice (a policy): the best setting is found for each combination of the
    /// conditions' values, among the choices.
    pub condition: bool,
}

/// Whether a scenario key is, unless a sweep says otherwise, a condition rather than a choice:
/// a key of `[workload]`, `[machine]`, `[network]` or `[run]`, or of the users' side of
/// `[host]` (`boot_users`, `boot_tries`, `live_output`). Every other key (`[policy]`,
/// `host.scp_policy`, …) is a choice.
pub fn is_condition_key(key: &str) -> bool {
    let first = key.split('.').next().unwrap_or("");
    let host_users = ["host.boot_users", "host.boot_tries", "host.live_output"]
        .iter()
        .any(|k| key == *k || key.strip_prefix(k).is_some_and(|rest| rest.starts_with('.')));
    matches!(first, "workload" | "machine" | "network" | "run") || host_users
}

impl Axis {
    /// Where value `i` sits on a chart's x axis: the number itself on a numeric axis, else `i`.
    pub fn position(&self, i: usize) -> f64 {
        match &self.numbers {
            Some(n) => n.get(i).copied().unwrap_or(i as f64),
            None => i as f64,
        }
    }

    /// The index of the value a `points.csv` cell names: the same text, or on a numeric axis the
    /// same number (so that `1` matches `1.0`).
    fn index_of(&self, cell: &str) -> Option<usize> {
        if let Some(i) = self.values.iter().position(|v| v == cell) {
            return Some(i);
        }
        let t = cell.trim();
        if let Some(i) = self.values.iter().position(|v| v == t) {
            return Some(i);
        }
        let x: f64 = t.parse().ok()?;
        self.numbers.as_ref()?.iter().position(|n| *n == x)
    }
}

/// One metric of a point's runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The name in `points.csv` column names (`<name>_mean`, …).
    pub name: String,
    /// What the report calls it ("mean wait").
    pub label: String,
    /// Its unit ("s"), or empty.
    pub unit: String,
    pub better: Better,
}

impl Metric {
    /// The label with the unit: "mean wait (s)", or the label alone when there is no unit.
    pub fn label_with_unit(&self) -> String {
        if self.unit.is_empty() {
            self.label.clone()
        } else {
            format!("{} ({})", self.label, self.unit)
        }
    }
}

/// A metric's mean over a point's seeds and the 95 % confidence interval of that mean; each
/// `None` when its cell is empty or not a finite number.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Estimate {
    pub mean: Option<f64>,
    pub lo: Option<f64>,
    pub hi: Option<f64>,
}

impl Estimate {
    /// The interval, widened to contain the mean; a missing bound is the mean. `None` without a
    /// mean.
    pub fn interval(&self) -> Option<(f64, f64)> {
        let m = self.mean?;
        Some((self.lo.unwrap_or(m).min(m), self.hi.unwrap_or(m).max(m)))
    }

    /// Half the interval's width (0 when it has none).
    pub fn half_width(&self) -> Option<f64> {
        self.interval().map(|(lo, hi)| (hi - lo) / 2.0)
    }
}

/// One row of `points.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The `point` column (0-based, plan order).
    pub id: u64,
    /// Per axis, the index of this point's value in `Axis::values`.
    pub values: Vec<usize>,
    /// How many seeds' results went into the row; 0 for a point that did not run.
    pub seeds: u64,
    /// Per metric, in `Sweep::metrics` order.
    pub metrics: Vec<Estimate>,
    /// Why the point did not run (empty when it did).
    pub error: String,
}

impl Point {
    /// Whether the point has results (at least one seed).
    pub fn valid(&self) -> bool {
        self.seeds > 0
    }

    /// Its estimate of metric `m` if the point has results and a mean for it.
    pub fn estimate(&self, m: usize) -> Option<Estimate> {
        self.metrics
            .get(m)
            .copied()
            .filter(|e| self.valid() && e.mean.is_some())
    }
}

/// The best point of one metric, and the others whose intervals overlap its interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Best {
    /// Index into `Sweep::points`.
    pub point: usize,
    /// How many other points have a result for the metric.
    pub others: usize,
    /// Those of them whose 95 % intervals overlap the best one's, in point order.
    pub within_noise: Vec<usize>,
}

/// One line of a chart: the points sharing the values of every other axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Per other axis (in axis order, the charted axis left out), the index of the value.
    pub key: Vec<usize>,
    /// Indices into `Sweep::points`, ordered along the charted axis (then by point order).
    pub points: Vec<usize>,
}

/// A chart of the report: a metric against an axis, and the file stem it is written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartSpec {
    pub stem: String,
    pub metric: usize,
    pub axis: usize,
}

#[derive(Deserialize)]
struct RawSweep {
    name: String,
    #[serde(default)]
    base: String,
    #[serde(default)]
    seeds: Vec<u64>,
    axes: Vec<RawAxis>,
    metrics: Vec<RawMetric>,
    #[serde(default)]
    report_metrics: Option<Vec<String>>,
    #[serde(default)]
    points: Option<u64>,
}

#[derive(Deserialize)]
struct RawAxis {
    key: String,
    values: Vec<serde_json::Value>,
    /// `"condition"` or `"choice"`; by [`is_condition_key`] when absent.
    #[serde(default)]
    role: Option<String>,
}

#[derive(Deserialize)]
struct RawMetric {
    name: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    better: Option<String>,
}

impl Sweep {
    /// Reads `dir/sweep.json` and `dir/points.csv`.
    pub fn load(dir: &Path) -> Result<Sweep> {
        let path = dir.join("sweep.json");
        let text = fs::read_to_string(&path).map_err(|source| InputError::Io {
            path: path.clone(),
            source,
        })?;
        let raw: RawSweep = serde_json::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let planned = raw.points;
        let mut sweep = Sweep::from_raw(raw).map_err(|m| anyhow!("{}: {m}", path.display()))?;
        let csv = dir.join("points.csv");
        sweep.points = read_points(&csv, &sweep)?;
        if let Some(n) = planned
            && n != sweep.points.len() as u64
        {
            return Err(anyhow!(
                "{}: {} point{} where {} says \"points\": {n}",
                csv.display(),
                sweep.points.len(),
                if sweep.points.len() == 1 { "" } else { "s" },
                path.display()
            ));
        }
        Ok(sweep)
    }

    fn from_raw(raw: RawSweep) -> Result<Sweep, String> {
        let mut axes: Vec<Axis> = Vec::new();
        for a in raw.axes {
            if a.key.trim().is_empty() {
                return Err("an axis has an empty key".into());
            }
            if axes.iter().any(|b| b.key == a.key) {
                return Err(format!("axis `{}` is given twice", a.key));
            }
            if a.values.is_empty() {
                return Err(format!("axis `{}` has no values", a.key));
            }
            let mut values = Vec::new();
            let mut numbers = Some(Vec::new());
            for (i, v) in a.values.iter().enumerate() {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    serde_json::Value::Number(n) => n.to_string(),
                    other => {
                        return Err(format!(
                            "axis `{}`: value {} is {other}, not a string, number or boolean",
                            a.key,
                            i + 1
                        ));
                    }
                };
                match (v.as_f64().filter(|x| x.is_finite() && v.is_number()), &mut numbers) {
                    (Some(x), Some(n)) => n.push(x),
                    _ => numbers = None,
                }
                if values.contains(&text) {
                    return Err(format!("axis `{}` lists the value `{text}` twice", a.key));
                }
                values.push(text);
            }
            let condition = match a.role.as_deref() {
                None => is_condition_key(&a.key),
                Some("condition") => true,
                Some("choice") => false,
                Some(other) => {
                    return Err(format!(
                        "axis `{}`: \"role\" is {other:?}, not \"condition\" or \"choice\"",
                        a.key
                    ));
                }
            };
            axes.push(Axis {
                key: a.key,
                values,
                numbers,
                condition,
            });
        }
        let mut metrics: Vec<Metric> = Vec::new();
        for m in raw.metrics {
            if m.name.trim().is_empty() {
                return Err("a metric has an empty name".into());
            }
            if metrics.iter().any(|n| n.name == m.name) {
                return Err(format!("metric `{}` is given twice", m.name));
            }
            let better = match m.better.as_deref().unwrap_or("none") {
                "lower" => Better::Lower,
                "higher" => Better::Higher,
                "none" => Better::Neither,
                other => {
                    return Err(format!(
                        "metric `{}`: \"better\" is {other:?}, not \"lower\", \"higher\" or \"none\"",
                        m.name
                    ));
                }
            };
            metrics.push(Metric {
                label: if m.label.trim().is_empty() {
                    m.name.clone()
                } else {
                    m.label
                },
                name: m.name,
                unit: m.unit,
                better,
            });
        }
        let report_metrics = match raw.report_metrics {
            None => (0..metrics.len()).collect(),
            Some(names) => {
                let mut out: Vec<usize> = Vec::new();
                for name in names {
                    let i = metrics
                        .iter()
                        .position(|m| m.name == name)
                        .ok_or_else(|| format!("report metric `{name}` is not one of the metrics"))?;
                    if !out.contains(&i) {
                        out.push(i);
                    }
                }
                out
            }
        };
        Ok(Sweep {
            name: raw.name,
            base: raw.base,
            seeds: raw.seeds,
            axes,
            metrics,
            report_metrics,
            points: Vec::new(),
        })
    }

    /// The header `points.csv` must have.
    pub fn header(&self) -> Vec<String> {
        let mut h = vec!["point".to_string()];
        h.extend(self.axes.iter().map(|a| a.key.clone()));
        h.push("seeds".into());
        for m in &self.metrics {
            for suffix in ["mean", "ci95_lo", "ci95_hi"] {
                h.push(format!("{}_{suffix}", m.name));
            }
        }
        h.push("error".into());
        h
    }

    /// The axes with two or more values (those the points differ in).
    fn varied(&self) -> impl Iterator<Item = (usize, &Axis)> {
        self.axes.iter().enumerate().filter(|(_, a)| a.values.len() >= 2)
    }

    /// A point's setting, `key = value` joined by ", ", over the axes the points differ in (all
    /// axes when there are none such).
    pub fn setting(&self, p: &Point) -> String {
        let shown: Vec<usize> = if self.varied().next().is_some() {
            self.varied().map(|(i, _)| i).collect()
        } else {
            (0..self.axes.len()).collect()
        };
        if shown.is_empty() {
            return "(no axes)".to_string();
        }
        self.describe(p, &shown)
    }

    /// `key = value` over some axes, joined by ", ".
    fn describe(&self, p: &Point, axes: &[usize]) -> String {
        axes.iter()
            .map(|&i| format!("{} = {}", self.axes[i].key, self.value(p, i)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Some axes' keys, joined by ", ".
    fn keys(&self, axes: &[usize]) -> String {
        axes.iter()
            .map(|&a| self.axes[a].key.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The axes the points differ in that are conditions.
    pub fn varied_conditions(&self) -> Vec<usize> {
        self.varied().filter(|(_, a)| a.condition).map(|(i, _)| i).collect()
    }

    /// The axes the points differ in that are choices.
    pub fn varied_choices(&self) -> Vec<usize> {
        self.varied().filter(|(_, a)| !a.condition).map(|(i, _)| i).collect()
    }

    /// The points grouped by their values of the conditions the points differ in: one group
    /// per combination that some point has, in the order of those values (axis by axis), each
    /// group's points in point order. One group of every point when no condition varies.
    pub fn condition_groups(&self) -> Vec<Vec<usize>> {
        let conditions = self.varied_conditions();
        let mut groups: BTreeMap<Vec<usize>, Vec<usize>> = BTreeMap::new();
        for (i, p) in self.points.iter().enumerate() {
            let key = conditions
                .iter()
                .map(|&a| p.values.get(a).copied().unwrap_or(0))
                .collect();
            groups.entry(key).or_default().push(i);
        }
        groups.into_values().collect()
    }

    /// The text of a point's value on axis `a`.
    pub fn value(&self, p: &Point, a: usize) -> &str {
        p.values
            .get(a)
            .and_then(|&v| self.axes.get(a)?.values.get(v))
            .map_or("", String::as_str)
    }

    /// The fewest and most seeds of the points with results.
    pub fn seed_range(&self) -> Option<(u64, u64)> {
        let seeds = self.points.iter().filter(|p| p.valid()).map(|p| p.seeds);
        Some((seeds.clone().min()?, seeds.max()?))
    }

    /// The best point of metric `m` by mean (lowest or highest as the metric says; the first in
    /// point order on a tie), and the others whose intervals overlap its interval. `None` for a
    /// metric with no better direction or no point with a result.
    pub fn best(&self, m: usize) -> Option<Best> {
        self.best_among(m, &(0..self.points.len()).collect::<Vec<_>>())
    }

    /// [`Sweep::best`] among some of the points (indices into `points`, in point order).
    pub fn best_among(&self, m: usize, among: &[usize]) -> Option<Best> {
        let better = self.metrics.get(m)?.better;
        if better == Better::Neither {
            return None;
        }
        let with: Vec<(usize, f64, (f64, f64))> = among
            .iter()
            .filter_map(|&i| {
                let e = self.points.get(i)?.estimate(m)?;
                Some((i, e.mean?, e.interval()?))
            })
            .collect();
        let mut best = *with.first()?;
        for c in &with[1..] {
            let wins = match better {
                Better::Lower => c.1 < best.1,
                Better::Higher => c.1 > best.1,
                Better::Neither => false,
            };
            if wins {
                best = *c;
            }
        }
        let (lo, hi) = best.2;
        let within_noise = with
            .iter()
            .filter(|c| c.0 != best.0 && c.2.0 <= hi && c.2.1 >= lo)
            .map(|c| c.0)
            .collect();
        Some(Best {
            point: best.0,
            others: with.len() - 1,
            within_noise,
        })
    }

    /// The lines of a chart against axis `axis`: one per combination of the other axes' values
    /// that some point has, in the order of those values (axis by axis).
    pub fn lines(&self, axis: usize) -> Vec<Line> {
        let mut groups: BTreeMap<Vec<usize>, Vec<usize>> = BTreeMap::new();
        for (i, p) in self.points.iter().enumerate() {
            let key: Vec<usize> = p
                .values
                .iter()
                .enumerate()
                .filter(|(a, _)| *a != axis)
                .map(|(_, v)| *v)
                .collect();
            groups.entry(key).or_default().push(i);
        }
        let Some(ax) = self.axes.get(axis) else {
            return Vec::new();
        };
        groups
            .into_iter()
            .map(|(key, mut points)| {
                // A stable sort: points at one position stay in point order.
                points.sort_by(|a, b| {
                    let x = |i: usize| ax.position(self.points[i].values.get(axis).copied().unwrap_or(0));
                    x(*a).total_cmp(&x(*b))
                });
                Line { key, points }
            })
            .collect()
    }

    /// A line's legend label: `key = value` for every other axis with two or more values (empty
    /// when there is none).
    pub fn line_label(&self, axis: usize, line: &Line) -> String {
        let others = (0..self.axes.len()).filter(|a| *a != axis);
        others
            .zip(&line.key)
            .filter(|(a, _)| self.axes[*a].values.len() >= 2)
            .map(|(a, v)| format!("{} = {}", self.axes[a].key, self.axes[a].values[*v]))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The charts: every metric of `report_metrics` against every axis with two or more values,
    /// metric by metric, each with a distinct file stem `sweep-<metric>-vs-<axis>` (dots and
    /// anything else but letters, digits, `-` and `_` turned into `_`).
    pub fn charts(&self) -> Vec<ChartSpec> {
        let mut out: Vec<ChartSpec> = Vec::new();
        for &metric in &self.report_metrics {
            for (axis, a) in self.varied() {
                let base = format!(
                    "sweep-{}-vs-{}",
                    stem_part(&self.metrics[metric].name),
                    stem_part(&a.key)
                );
                let mut stem = base.clone();
                let mut n = 2;
                while out.iter().any(|c| c.stem == stem) {
                    stem = format!("{base}-{n}");
                    n += 1;
                }
                out.push(ChartSpec { stem, metric, axis });
            }
        }
        out
    }

    /// What the shaded bands of the charts are, as a sentence for captions.
    pub fn band_note(&self) -> String {
        match self.seed_range() {
            Some((_, max)) if max >= 2 => {
                let (min, _) = self.seed_range().unwrap_or((max, max));
                let over = if min == max {
                    format!("{max} seeds")
                } else {
                    format!("{min}–{max} seeds (as many as finished for the point)")
                };
                format!("Shaded: 95 % confidence interval of the mean over {over} (Student t).")
            }
            Some(_) => "One seed per point, so no confidence bands: lines only.".to_string(),
            None => "No point has results.".to_string(),
        }
    }

    /// The figure of a chart for `index.html`.
    pub fn figure(&self, c: &ChartSpec) -> Figure {
        let m = &self.metrics[c.metric];
        let a = &self.axes[c.axis];
        let others: Vec<&str> = self
            .varied()
            .filter(|(i, _)| *i != c.axis)
            .map(|(_, o)| o.key.as_str())
            .collect();
        let per = match others.as_slice() {
            [] => String::new(),
            [one] => format!("; one line per value of {one}"),
            [first @ .., last] => format!("; one line per combination of {} and {last}", first.join(", ")),
        };
        let scale = if a.numbers.is_some() {
            "to scale"
        } else {
            "evenly spaced"
        };
        let missing = self.points.iter().filter(|p| p.estimate(c.metric).is_none()).count();
        let gaps = match missing {
            0 => String::new(),
            1 => " The point without a result is left out (a gap).".to_string(),
            n => format!(" The {n} points without a result are left out (gaps)."),
        };
        let mut label = m.label_with_unit();
        if let Some(first) = label.chars().next() {
            label = first.to_uppercase().chain(label.chars().skip(1)).collect();
        }
        Figure {
            stem: c.stem.clone(),
            alt: format!("Line chart of {} against {}{per}", m.label, a.key),
            caption: format!(
                "{label}, the mean over the seeds, against {} (values {scale}){per}. {}{gaps}",
                a.key,
                self.band_note()
            ),
        }
    }
}

/// A name made safe for a file name: letters, digits, `-` and `_` kept, anything else `_`.
fn stem_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A metric cell: empty, `NaN` or infinite is no value; anything else must be a number.
fn metric_cell(s: &str) -> Result<Option<f64>, String> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let x: f64 = t.parse().map_err(|_| format!("{t:?} is not a number"))?;
    Ok(Some(x).filter(|x| x.is_finite()))
}

/// Reads `points.csv`, checking its header against the sweep's axes and metrics.
fn read_points(path: &Path, sweep: &Sweep) -> Result<Vec<Point>> {
    let bytes = fs::read(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(&bytes[..]);
    let headers = rdr.headers().map_err(|e| csv_error(path, &e, None))?.clone();
    let expected = sweep.header();
    let found: Vec<&str> = headers.iter().map(str::trim).collect();
    for (i, (f, e)) in found.iter().zip(&expected).enumerate() {
        if f != e {
            return Err(InputError::malformed(
                path,
                1,
                format!(
                    "the header does not match sweep.json: column {} is `{f}` where `{e}` was expected",
                    i + 1
                ),
            )
            .into());
        }
    }
    if found.len() != expected.len() {
        return Err(InputError::malformed(
            path,
            1,
            format!(
                "the header does not match sweep.json: {} columns where sweep.json gives {} (point, {} axes, seeds, 3 per metric for {} metrics, error)",
                found.len(),
                expected.len(),
                sweep.axes.len(),
                sweep.metrics.len()
            ),
        )
        .into());
    }
    let k = sweep.axes.len();
    let mut points = Vec::new();
    let mut lines: BTreeMap<u64, u64> = BTreeMap::new();
    let mut record = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(path, &e, None).into()),
        }
        let line = record.position().map_or(0, |p| p.line());
        let bad =
            |col: usize, msg: String| InputError::malformed(path, line, format!("column `{}`: {msg}", expected[col]));
        let cell = |i: usize| record.get(i).unwrap_or("");
        let id: u64 = cell(0)
            .trim()
            .parse()
            .map_err(|_| bad(0, format!("{:?} is not a point number", cell(0))))?;
        if let Some(first) = lines.insert(id, line) {
            return Err(
                InputError::malformed(path, line, format!("point {id} is given twice (also on line {first})")).into(),
            );
        }
        let mut values = Vec::with_capacity(k);
        for (a, axis) in sweep.axes.iter().enumerate() {
            let v = axis.index_of(cell(1 + a)).ok_or_else(|| {
                bad(
                    1 + a,
                    format!(
                        "{:?} is not one of the axis's values in sweep.json ({})",
                        cell(1 + a),
                        axis.values.join(", ")
                    ),
                )
            })?;
            values.push(v);
        }
        let seeds: u64 = cell(1 + k)
            .trim()
            .parse()
            .map_err(|_| bad(1 + k, format!("{:?} is not a number of seeds", cell(1 + k))))?;
        let mut metrics = Vec::with_capacity(sweep.metrics.len());
        for m in 0..sweep.metrics.len() {
            let col = 2 + k + 3 * m;
            let get = |c: usize| metric_cell(cell(c)).map_err(|e| bad(c, e));
            metrics.push(Estimate {
                mean: get(col)?,
                lo: get(col + 1)?,
                hi: get(col + 2)?,
            });
        }
        points.push(Point {
            id,
            values,
            seeds,
            metrics,
            error: cell(expected.len() - 1).trim().to_string(),
        });
    }
    Ok(points)
}

/// A number with the metric's unit: `812 s`, `0.712`.
fn with_unit(x: f64, unit: &str) -> String {
    if unit.is_empty() {
        format::sig3(x)
    } else {
        format!("{} {unit}", format::sig3(x))
    }
}

/// The "against the rest" cell of the best-setting table.
fn verdict(sweep: &Sweep, b: &Best, shown: &dyn Fn(&Point) -> String) -> (String, &'static str) {
    let best = &sweep.points[b.point];
    if b.others == 0 {
        return ("the only setting with a result".into(), "");
    }
    if best.seeds < 2 {
        return ("not assessed: one seed, so no interval".into(), "");
    }
    if b.within_noise.is_empty() {
        return ("clear winner".into(), "better");
    }
    let n = b.within_noise.len();
    let list: Vec<String> = b
        .within_noise
        .iter()
        .map(|&i| {
            let p = &sweep.points[i];
            format!("{} (point {})", shown(p), p.id)
        })
        .collect();
    (
        format!(
            "{n} other{} within noise: {}",
            if n == 1 { "" } else { "s" },
            list.join("; ")
        ),
        "",
    )
}

/// The table of the best setting per metric (metrics with a better direction): with conditions
/// that vary, one row per metric and combination of their values, the best among the choices
/// under it.
fn best_table(sweep: &Sweep) -> String {
    let ranked: Vec<usize> = (0..sweep.metrics.len())
        .filter(|&m| sweep.metrics[m].better != Better::Neither)
        .collect();
    if ranked.is_empty() {
        return "<p class=\"note\">No metric has a better direction.</p>\n".to_string();
    }
    let conditions = sweep.varied_conditions();
    let choices = sweep.varied_choices();
    if !conditions.is_empty() && choices.is_empty() {
        return format!(
            "<p class=\"note\">Every axis that varies is a condition ({}): there is no setting to choose \
between. The points table has every value.</p>\n",
            esc(&sweep.keys(&conditions))
        );
    }
    let groups = sweep.condition_groups();
    let grouped = !conditions.is_empty();
    let shown = |p: &Point| {
        if grouped {
            sweep.describe(p, &choices)
        } else {
            sweep.setting(p)
        }
    };
    let mut out = String::from("<table class=\"best\">\n<tr><th>metric</th><th>better</th>");
    if grouped {
        out.push_str("<th>under</th>");
    }
    out.push_str("<th>best setting</th><th>mean</th><th>95 % interval</th><th>against the rest</th></tr>\n");
    for m in ranked {
        let metric = &sweep.metrics[m];
        let dir = if metric.better == Better::Lower {
            "lower"
        } else {
            "higher"
        };
        for group in &groups {
            let _ = write!(out, "<tr><td>{}</td><td class=\"text\">{dir}</td>", esc(&metric.label));
            if grouped {
                let first = &sweep.points[group[0]];
                let _ = write!(
                    out,
                    "<td class=\"text\">{}</td>",
                    esc(&sweep.describe(first, &conditions))
                );
            }
            let Some(b) = sweep.best_among(m, group) else {
                out.push_str("<td class=\"text\">no point has a result</td><td>–</td><td>–</td><td></td></tr>\n");
                continue;
            };
            let p = &sweep.points[b.point];
            let e = p.metrics[m];
            let (lo, hi) = e.interval().unwrap_or((f64::NAN, f64::NAN));
            let mean = e.mean.map_or("–".to_string(), |x| with_unit(x, &metric.unit));
            let interval = if p.seeds >= 2 {
                let u = if metric.unit.is_empty() {
                    String::new()
                } else {
                    format!(" {}", metric.unit)
                };
                format!("[{}, {}]{u}", format::sig3(lo), format::sig3(hi))
            } else {
                "–".to_string()
            };
            let (v, class) = verdict(sweep, &b, &shown);
            let class = if class.is_empty() {
                "text".to_string()
            } else {
                format!("text {class}")
            };
            let _ = writeln!(
                out,
                "<td class=\"text\">{} (point {})</td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td></tr>",
                esc(&shown(p)),
                p.id,
                esc(&mean),
                esc(&interval),
                esc(&v)
            );
        }
    }
    out.push_str("</table>\n");
    out
}

/// The table of every point: its values, seeds and every metric as mean ± half-width.
fn points_table(sweep: &Sweep) -> String {
    let mut out = String::from("<table class=\"points\">\n<tr><th>point</th>");
    for a in &sweep.axes {
        let _ = write!(out, "<th>{}</th>", esc(&a.key));
    }
    out.push_str("<th>seeds</th>");
    for m in &sweep.metrics {
        let _ = write!(out, "<th>{}</th>", esc(&m.label_with_unit()));
    }
    out.push_str("</tr>\n");
    for p in &sweep.points {
        let _ = write!(out, "<tr><td>{}</td>", p.id);
        for a in 0..sweep.axes.len() {
            let _ = write!(out, "<td class=\"text\">{}</td>", esc(sweep.value(p, a)));
        }
        let _ = write!(out, "<td>{}</td>", p.seeds);
        for m in 0..sweep.metrics.len() {
            let shown = match p.estimate(m) {
                Some(e) => {
                    let mean = format::sig3(e.mean.unwrap_or(f64::NAN));
                    match e.half_width() {
                        Some(h) if p.seeds >= 2 => format!("{mean} ± {}", format::sig3(h)),
                        _ => mean,
                    }
                }
                None => "–".to_string(),
            };
            let _ = write!(out, "<td>{}</td>", esc(&shown));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

/// `index.html` of a sweep: what was swept, the charts, the best setting per metric, every point
/// and the points that did not run.
pub fn index(sweep: &Sweep, figs: &[Figure]) -> String {
    let title = format!("spinnbed sweep: {}", sweep.name);
    let mut body = format!("<h1>{}</h1>\n", esc(&title));
    let seeds = match sweep.seeds.len() {
        0 => "no seeds listed".to_string(),
        n => {
            let list: Vec<String> = sweep.seeds.iter().map(u64::to_string).collect();
            let shown = if n <= 10 {
                list.join(", ")
            } else {
                format!("{}, {}, {}, …, {}", list[0], list[1], list[2], list[n - 1])
            };
            format!("{n} seed{} ({shown})", if n == 1 { "" } else { "s" })
        }
    };
    let invalid = sweep.points.iter().filter(|p| !p.valid()).count();
    let n = sweep.points.len();
    let mut sub = vec![
        format!("base {}", sweep.base),
        seeds,
        format!("{n} point{}", if n == 1 { "" } else { "s" }),
    ];
    if invalid > 0 {
        sub.push(format!("{invalid} without results"));
    }
    let _ = writeln!(body, "<p class=\"sub\">{}</p>", esc(&sub.join(" · ")));
    body.push_str("<h2>Axes</h2>\n<table class=\"axes\">\n<tr><th>axis</th><th>values</th></tr>\n");
    for a in &sweep.axes {
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td class=\"text\">{}</td></tr>",
            esc(&a.key),
            esc(&a.values.join(", "))
        );
    }
    body.push_str("</table>\n<h2>Charts</h2>\n");
    if figs.is_empty() {
        body.push_str(
            "<p class=\"note\">Nothing to chart: no charted metric, or no axis with two or more values.</p>\n",
        );
    } else {
        html::chart_links(&mut body, figs);
        body.push('\n');
        html::figures(&mut body, figs);
    }
    body.push_str("<h2>Best setting per metric</h2>\n");
    let conditions = sweep.varied_conditions();
    let under = if conditions.is_empty() {
        String::new()
    } else {
        format!(
            " under each combination of the conditions' values ({}): conditions are what the settings are \
compared under, not settings to choose",
            sweep.keys(&conditions)
        )
    };
    let _ = writeln!(
        body,
        "<p class=\"note\">The point with the lowest or highest mean{}. Other settings whose 95 % intervals overlap \
the best one's are within noise: these seeds cannot tell them apart.</p>",
        esc(&under)
    );
    body.push_str("<div class=\"scroll\">\n");
    body.push_str(&best_table(sweep));
    body.push_str("</div>\n<h2>Points</h2>\n");
    body.push_str("<p class=\"note\">Each metric's mean over the seeds ± half the 95 % confidence interval.</p>\n");
    body.push_str("<div class=\"scroll\">\n");
    body.push_str(&points_table(sweep));
    body.push_str("</div>\n");
    let errors: Vec<&Point> = sweep
        .points
        .iter()
        .filter(|p| !p.valid() || !p.error.is_empty())
        .collect();
    if !errors.is_empty() {
        body.push_str(
            "<h2>Invalid points and errors</h2>\n<table class=\"invalid\">\n<tr><th>point</th><th>setting</th>\
<th>seeds</th><th>error</th></tr>\n",
        );
        for p in errors {
            let error = if p.error.is_empty() {
                "no seed finished"
            } else {
                p.error.as_str()
            };
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td class=\"text\">{}</td><td>{}</td><td class=\"text\">{}</td></tr>",
                p.id,
                esc(&sweep.setting(p)),
                p.seeds,
                esc(error)
            );
        }
        body.push_str("</table>\n");
    }
    html::page(&title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep() -> Sweep {
        let raw: RawSweep = serde_json::from_str(
            r#"{"name": "t", "axes": [{"key": "q", "values": ["fifo", "easy"]}, {"key": "load", "values": [0.5, 1, 1.5]},
                {"key": "one", "values": [true]}],
                "metrics": [{"name": "w", "unit": "s", "better": "lower"}, {"name": "u", "better": "higher"},
                {"name": "h", "better": "none"}], "report_metrics": ["w", "u", "w"]}"#,
        )
        .unwrap();
        Sweep::from_raw(raw).unwrap()
    }

    fn point(id: u64, values: [usize; 3], seeds: u64, w: (f64, f64, f64)) -> Point {
        Point {
            id,
            values: values.to_vec(),
            seeds,
            metrics: vec![
                Estimate {
                    mean: Some(w.0),
                    lo: Some(w.1),
                    hi: Some(w.2),
                },
                Estimate::default(),
                Estimate::default(),
            ],
            error: String::new(),
        }
    }

    #[test]
    fn axes_and_metrics_are_read() {
        let s = sweep();
        assert_eq!(s.axes[1].values, ["0.5", "1", "1.5"]);
        assert_eq!(s.axes[1].numbers, Some(vec![0.5, 1.0, 1.5]));
        assert_eq!(s.axes[0].numbers, None);
        assert_eq!(s.axes[2].values, ["true"]);
        assert_eq!(s.axes[2].numbers, None);
        assert_eq!(s.axes[1].index_of("1.0"), Some(1));
        assert_eq!(s.axes[1].index_of("1.5"), Some(2));
        assert_eq!(s.axes[1].index_of("2"), None);
        assert_eq!(s.metrics[0].label, "w");
        assert_eq!(s.report_metrics, [0, 1]);
        assert_eq!(
            s.header().join(","),
            "point,q,load,one,seeds,w_mean,w_ci95_lo,w_ci95_hi,u_mean,u_ci95_lo,u_ci95_hi,h_mean,h_ci95_lo,h_ci95_hi,error"
        );
        let stems: Vec<String> = s.charts().into_iter().map(|c| c.stem).collect();
        assert_eq!(
            stems,
            ["sweep-w-vs-q", "sweep-w-vs-load", "sweep-u-vs-q", "sweep-u-vs-load"]
        );
    }

    #[test]
    fn bad_descriptions_are_refused() {
        let parse = |s: &str| Sweep::from_raw(serde_json::from_str(s).unwrap()).unwrap_err();
        let m = r#""metrics": [{"name": "w"}]"#;
        assert!(
            parse(&format!(
                r#"{{"name": "t", "axes": [{{"key": "a", "values": [[1]]}}], {m}}}"#
            ))
            .contains("axis `a`")
        );
        assert!(
            parse(&format!(
                r#"{{"name": "t", "axes": [{{"key": "a", "values": []}}], {m}}}"#
            ))
            .contains("no values")
        );
        assert!(
            parse(&format!(
                r#"{{"name": "t", "axes": [{{"key": "a", "values": [1, 1]}}], {m}}}"#
            ))
            .contains("twice")
        );
        assert!(parse(r#"{"name": "t", "axes": [], "metrics": [{"name": "w", "better": "up"}]}"#).contains("\"up\""));
        assert!(
            parse(r#"{"name": "t", "axes": [], "metrics": [{"name": "w"}], "report_metrics": ["x"]}"#)
                .contains("report metric `x`")
        );
    }

    #[test]
    fn conditions_group_the_points() {
        for (key, condition) in [
            ("workload.load_scale", true),
            ("machine.0.random_dead_boards", true),
            ("network.loss", true),
            ("run.horizon", true),
            ("host.boot_users", true),
            ("host.live_output.fraction", true),
            ("policy.packer", false),
            ("host.scp_policy", false),
            ("host.boot_users_x", false),
            ("workloads", false),
        ] {
            assert_eq!(is_condition_key(key), condition, "{key}");
        }
        let mut s = sweep();
        s.axes[1].condition = true;
        // `one` is a condition too, but has one value: it splits nothing.
        s.axes[2].condition = true;
        s.points = (0..6)
            .map(|i| point(i as u64, [i % 2, [2, 0, 1][i / 2], 0], 5, (1.0, 1.0, 1.0)))
            .collect();
        assert_eq!((s.varied_conditions(), s.varied_choices()), (vec![1], vec![0]));
        assert_eq!(s.condition_groups(), [vec![2, 3], vec![4, 5], vec![0, 1]]);
        s.points[3].metrics[0].mean = Some(0.5);
        let b = s.best_among(0, &[2, 3]).unwrap();
        assert_eq!((b.point, b.others), (3, 1));
        s.axes[1].condition = false;
        assert_eq!(s.condition_groups(), [(0..6).collect::<Vec<_>>()]);
    }

    #[test]
    fn best_and_noise() {
        let mut s = sweep();
        s.points = vec![
            point(0, [0, 0, 0], 5, (100.0, 90.0, 110.0)),
            point(1, [1, 0, 0], 5, (105.0, 95.0, 115.0)),
            point(2, [0, 1, 0], 5, (200.0, 180.0, 220.0)),
            point(3, [1, 1, 0], 0, (1.0, 1.0, 1.0)),
            point(4, [0, 2, 0], 5, (111.0, 110.0, 112.0)),
        ];
        let b = s.best(0).unwrap();
        assert_eq!((b.point, b.others, b.within_noise.clone()), (0, 3, vec![1, 4]));
        assert_eq!(
            verdict(&s, &b, &|p| s.setting(p)).0,
            "2 others within noise: q = easy, load = 0.5 (point 1); q = fifo, load = 1.5 (point 4)"
        );
        s.points[4].metrics[0] = Estimate {
            mean: Some(111.0),
            lo: Some(110.5),
            hi: Some(112.0),
        };
        s.points.remove(1);
        let b = s.best(0).unwrap();
        assert_eq!(
            verdict(&s, &b, &|p| s.setting(p)),
            ("clear winner".to_string(), "better")
        );
        // No result, no direction.
        assert_eq!(s.best(1), None);
        assert_eq!(s.best(2), None);
    }

    #[test]
    fn lines_group_by_the_other_axes() {
        let mut s = sweep();
        s.points = vec![
            point(0, [0, 2, 0], 5, (1.0, 1.0, 1.0)),
            point(1, [1, 0, 0], 5, (1.0, 1.0, 1.0)),
            point(2, [0, 0, 0], 5, (1.0, 1.0, 1.0)),
            point(3, [1, 1, 0], 5, (1.0, 1.0, 1.0)),
        ];
        let lines = s.lines(1);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].points, [2, 0]);
        assert_eq!(lines[1].points, [1, 3]);
        assert_eq!(s.line_label(1, &lines[1]), "q = easy");
        let lines = s.lines(0);
        assert_eq!(
            lines.iter().map(|l| l.points.clone()).collect::<Vec<_>>(),
            [vec![2, 1], vec![3], vec![0]]
        );
        assert_eq!(s.line_label(0, &lines[2]), "load = 1.5");
    }

    #[test]
    fn metric_cells() {
        assert_eq!(metric_cell(""), Ok(None));
        assert_eq!(metric_cell(" NaN "), Ok(None));
        assert_eq!(metric_cell("inf"), Ok(None));
        assert_eq!(metric_cell("2.5"), Ok(Some(2.5)));
        assert!(metric_cell("fast").unwrap_err().contains("\"fast\""));
        assert_eq!(stem_part("workload.load scale/x"), "workload_load_scale_x");
    }
}
