//! The sweep file and the plan made from it.
//!
//! ```toml
//! [sweep]
//! name = "policy-vs-load"        # optional; the file's stem
//! base = "../busy-week.toml"      # required; relative to this file
//! seeds = 5                       # N seeds from the base's seed on, or a list [1, 7, 9]
//! metrics = ["wait_mean_s"]       # optional: the metrics the report charts
//! conditions = ["workload.load_scale"]  # optional: the axes the report's best settings are
//!                                 # found under (default: workload, machine, network, run and
//!                                 # the users' side of host); the other axes are choices
//!
//! [axes]                          # each key a scenario key, each value a list of values
//! policy.packer = ["spalloc", "anywhere"]
//! workload.load_scale = [0.5, 1.0, 1.5]
//!
//! [[point]]                       # optional: these points instead of the cross product
//! policy.packer = "anywhere"
//! ```
//!
//! An axis key is a dotted path into the base scenario; through an array of tables
//! (`machine`) it applies to every element, or to one with an index (`machine.0.width`).
//! Everything is checked before anything runs: unknown keys and unknown top-level tables,
//! a key that is not a scenario key (the scenario parser says so for the point that uses it),
//! empty axes (an empty product), a point key that is not an axis or a value the axis does not
//! list, an axis no point uses. A point whose scenario is invalid for its values is kept in the
//! plan with its error and not run.

use crate::SweepError;
use serde::{Deserialize, Serialize};
use spinnbed_sim::input::{InputError, line_of};
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};
use toml::{Table, Value};

/// Most seeds per point, points, and tasks a sweep may have.
pub const MAX_SEEDS: usize = 10_000;
/// Most points.
pub const MAX_POINTS: usize = 100_000;
/// Most tasks (points × seeds).
pub const MAX_TASKS: usize = 1_000_000;

/// One axis: a scenario key and its values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Axis {
    /// Dotted scenario key.
    pub key: String,
    /// Its values, in the file's order.
    pub values: Vec<serde_json::Value>,
    /// What the report does with it: compares the choices under each condition.
    #[serde(default)]
    pub role: Role,
}

/// An axis's part in the report's best setting per metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A policy or setting to choose: the best is found among the choices.
    #[default]
    Choice,
    /// What the choices are compared under (the workload, machine, network): the best is found
    /// for each combination of the conditions' values.
    Condition,
}

impl Role {
    /// The role of an axis the sweep file does not place: see
    /// [`spinnbed_reports::sweep::is_condition_key`].
    pub fn of_key(key: &str) -> Role {
        if spinnbed_reports::sweep::is_condition_key(key) {
            Role::Condition
        } else {
            Role::Choice
        }
    }
}

/// One point of the sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Index in plan order (0-based).
    pub index: usize,
    /// For each axis, the index of its value here, or `None` where the point keeps the base's.
    pub values: Vec<Option<usize>>,
    /// Why its scenario is invalid (the point is not run), if it is.
    pub error: Option<String>,
}

/// The plan: what runs, in which order, and how the tasks are grouped for job arrays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Sweep name.
    pub name: String,
    /// The sweep file, as named.
    pub file: String,
    /// The base scenario file, as named relative to the sweep file's directory.
    pub base: String,
    /// The directory relative paths inside the base scenario are resolved against (absolute).
    pub base_dir: PathBuf,
    /// Seeds, each run at every valid point.
    pub seeds: Vec<u64>,
    /// Axes, in the file's order.
    pub axes: Vec<Axis>,
    /// For each axis, how the base scenario has it (text), or `None` if it leaves it unset.
    pub base_values: Vec<Option<String>>,
    /// Points, in plan order.
    pub points: Vec<Point>,
    /// The metrics the report charts (`[]`: the default ones).
    pub report_metrics: Vec<String>,
    /// Tasks: (point, seed), valid points only, point-major then seed order.
    pub tasks: Vec<(usize, u64)>,
}

impl Plan {
    /// The number of tasks per job-array index, for an array of at most `max_array` indices.
    pub fn chunk(&self, max_array: usize) -> usize {
        self.tasks.len().div_ceil(max_array.max(1)).max(1)
    }

    /// The result file of a task, relative to the sweep directory.
    pub fn result_name(&self, task: usize) -> String {
        let (p, s) = self.tasks[task];
        result_name(p, s)
    }

    /// A point's values as `key = value` text, axis by axis (the base's value where it keeps
    /// it).
    pub fn describe(&self, point: usize) -> String {
        let p = &self.points[point];
        self.axes
            .iter()
            .enumerate()
            .map(|(a, axis)| format!("{} = {}", axis.key, self.value_text(p, a)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The value of axis `a` at point `p`, as text (strings unquoted).
    pub fn value_text(&self, p: &Point, a: usize) -> String {
        match p.values[a] {
            Some(v) => value_text(&self.axes[a].values[v]),
            None => self.base_values[a].clone().unwrap_or_else(|| "(default)".into()),
        }
    }
}

/// The result file name of (point, seed).
pub fn result_name(point: usize, seed: u64) -> String {
    format!("p{point:04}-s{seed}.json")
}

/// A point's scenario file name.
pub fn point_name(point: usize) -> String {
    format!("p{point:04}.toml")
}

/// A value as a cell: strings without quotes, numbers and booleans as JSON writes them, lists
/// and tables as JSON.
pub fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A planned sweep: the plan and each valid point's scenario text.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The plan.
    pub plan: Plan,
    /// For each point, its scenario (TOML text), `None` for invalid points.
    pub scenarios: Vec<Option<String>>,
}

/// Reads a sweep file and plans it.
pub fn load(path: &Path) -> Result<Planned, SweepError> {
    let file = path.display().to_string();
    let text = spinnbed_sim::input::read_text(path)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sweep".into());
    plan(&file, &text, &dir, &stem)
}

/// The sweep file's text with spans, for error lines.
struct Doc<'a> {
    file: &'a str,
    text: &'a str,
    root: toml::Spanned<DeTable<'a>>,
}

impl<'a> Doc<'a> {
    fn err(&self, offset: Option<usize>, key: &str, msg: impl Into<String>) -> InputError {
        InputError::at(
            self.file,
            offset.map(|o| line_of(self.text, o)),
            (!key.is_empty()).then_some(key),
            msg,
        )
    }
}

/// The axes' keys, for messages: `policy.queue, workload.load_scale`.
fn axis_keys(axes: &[Axis]) -> String {
    axes.iter().map(|a| a.key.as_str()).collect::<Vec<_>>().join(", ")
}

/// A flattened table leaf: dotted path, value, its key's offset.
type Leaf<'a> = (String, &'a toml::Spanned<DeValue<'a>>, usize);

/// Flattens nested tables into dotted paths (a key that itself holds a dot counts as a path).
fn flatten<'a>(prefix: &str, t: &'a DeTable<'a>, out: &mut Vec<Leaf<'a>>) {
    for (k, v) in t.iter() {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        match v.get_ref() {
            DeValue::Table(sub) => flatten(&path, sub, out),
            _ => out.push((path, v, k.span().start)),
        }
    }
}

/// A TOML value (with spans) as JSON; `None` for a date-time (no scenario key takes one).
fn to_json(v: &DeValue<'_>) -> Option<serde_json::Value> {
    Some(match v {
        DeValue::String(s) => serde_json::Value::String(s.to_string()),
        DeValue::Integer(i) => {
            let n: i64 = i.to_string().replace('_', "").parse().ok().or_else(|| {
                let s = i.to_string().replace('_', "");
                let (radix, digits) = match s.get(..2) {
                    Some("0x") => (16, &s[2..]),
                    Some("0o") => (8, &s[2..]),
                    Some("0b") => (2, &s[2..]),
                    _ => return None,
                };
                i64::from_str_radix(digits, radix).ok()
            })?;
            serde_json::Value::from(n)
        }
        DeValue::Float(f) => {
            let x: f64 = f.to_string().replace('_', "").parse().ok()?;
            serde_json::Number::from_f64(x).map(serde_json::Value::Number)?
        }
        DeValue::Boolean(b) => serde_json::Value::Bool(*b),
        DeValue::Array(a) => serde_json::Value::Array(a.iter().map(|x| to_json(x.get_ref())).collect::<Option<_>>()?),
        DeValue::Table(t) => serde_json::Value::Object(
            t.iter()
                .map(|(k, x)| Some((k.get_ref().to_string(), to_json(x.get_ref())?)))
                .collect::<Option<_>>()?,
        ),
        DeValue::Datetime(_) => return None,
    })
}

/// JSON back to TOML (for writing a point's scenario).
fn to_toml(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(to_toml).collect()),
        serde_json::Value::Object(o) => Value::Table(o.iter().map(|(k, x)| (k.clone(), to_toml(x))).collect()),
        serde_json::Value::Null => Value::String(String::new()),
    }
}

/// Plans sweep text `file` (relative paths against `dir`; `stem` names it by default).
pub fn plan(file: &str, text: &str, dir: &Path, stem: &str) -> Result<Planned, SweepError> {
    let root = DeTable::parse(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        InputError::at(file, line, None, format!("not valid TOML: {}", e.message()))
    })?;
    let doc = Doc { file, text, root };
    let top = doc.root.get_ref();
    for (k, _) in top.iter() {
        if !["sweep", "axes", "point"].contains(&k.get_ref().as_ref()) {
            return Err(doc
                .err(
                    Some(k.span().start),
                    k.get_ref(),
                    "unknown table (a sweep file has [sweep], [axes] and [[point]])",
                )
                .into());
        }
    }

    // [sweep]
    let Some((sweep_key, sweep)) = top.get_key_value("sweep") else {
        return Err(doc.err(None, "sweep", "the [sweep] table is required").into());
    };
    let DeValue::Table(sweep) = sweep.get_ref() else {
        return Err(doc.err(Some(sweep_key.span().start), "sweep", "must be a table").into());
    };
    let mut name = stem.to_string();
    let mut base: Option<(String, usize)> = None;
    let mut seeds_spec: Option<(&toml::Spanned<DeValue>, usize)> = None;
    let mut report_metrics = Vec::new();
    let mut conditions: Option<(Vec<String>, usize)> = None;
    for (k, v) in sweep.iter() {
        let key = format!("sweep.{}", k.get_ref());
        let at = Some(k.span().start);
        match (k.get_ref().as_ref(), v.get_ref()) {
            ("name", DeValue::String(s)) => {
                let ok = !s.is_empty()
                    && s.len() <= 100
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    && !s.starts_with('.');
                if !ok {
                    return Err(doc
                        .err(
                            at,
                            &key,
                            format!("{s:?}: use 1 to 100 letters, digits, '-', '_' or '.', not first"),
                        )
                        .into());
                }
                name = s.to_string();
            }
            ("base", DeValue::String(s)) if !s.trim().is_empty() => base = Some((s.to_string(), k.span().start)),
            ("seeds", _) => seeds_spec = Some((v, k.span().start)),
            ("metrics", DeValue::Array(a)) => {
                for m in a.iter() {
                    let DeValue::String(s) = m.get_ref() else {
                        return Err(doc.err(at, &key, "must be a list of metric names").into());
                    };
                    if crate::metrics::find(s).is_none() {
                        return Err(doc
                            .err(
                                at,
                                &key,
                                format!(
                                    "unknown metric {s:?} (known: {})",
                                    crate::metrics::METRICS
                                        .iter()
                                        .map(|m| m.name)
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            )
                            .into());
                    }
                    if !report_metrics.iter().any(|x| x == s.as_ref()) {
                        report_metrics.push(s.to_string());
                    }
                }
            }
            ("conditions", DeValue::Array(a)) => {
                let mut keys: Vec<String> = Vec::new();
                for x in a.iter() {
                    let DeValue::String(s) = x.get_ref() else {
                        return Err(doc.err(at, &key, "must be a list of axis keys").into());
                    };
                    if keys.iter().any(|k| k == s.as_ref()) {
                        return Err(doc.err(at, &key, format!("{s:?} is listed twice")).into());
                    }
                    keys.push(s.to_string());
                }
                conditions = Some((keys, k.span().start));
            }
            ("name" | "base" | "metrics" | "conditions", _) => {
                let want = match k.get_ref().as_ref() {
                    "metrics" => "a list of metric names",
                    "conditions" => "a list of axis keys",
                    "base" => "a non-empty path (string)",
                    _ => "a string",
                };
                return Err(doc.err(at, &key, format!("must be {want}")).into());
            }
            (other, _) => {
                return Err(doc
                    .err(
                        at,
                        &key,
                        format!("unknown key {other:?} (known: name, base, seeds, metrics, conditions)"),
                    )
                    .into());
            }
        }
    }
    let Some((base_name, base_at)) = base else {
        return Err(doc
            .err(
                Some(sweep_key.span().start),
                "sweep.base",
                "is required: the scenario the axes override",
            )
            .into());
    };

    // The base scenario.
    let base_path = dir.join(&base_name);
    let base_file = base_path.display().to_string();
    let base_text =
        spinnbed_sim::input::read_text(&base_path).map_err(|e| doc.err(Some(base_at), "sweep.base", e.to_string()))?;
    let base_dir = std::path::absolute(match base_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    })
    .map_err(|e| doc.err(Some(base_at), "sweep.base", format!("{}: {e}", base_path.display())))?;
    let base_sc = spinnbed_sim::scenario::parse(&base_file, &base_text, &base_dir)?;
    if base_sc.study().is_some() {
        return Err(doc
            .err(
                Some(base_at),
                "sweep.base",
                format!("{base_file} is a study ([study]); sweep a workload scenario"),
            )
            .into());
    }
    let base_table: Table = base_text
        .parse()
        .map_err(|e: toml::de::Error| InputError::at(&base_file, None, None, format!("not valid TOML: {e}")))?;

    // Seeds.
    let seeds: Vec<u64> = match seeds_spec {
        None => vec![base_sc.run.seed],
        Some((v, at)) => match v.get_ref() {
            DeValue::Integer(_) => {
                let n = to_json(v.get_ref()).and_then(|j| j.as_u64()).unwrap_or(0) as usize;
                if n == 0 || n > MAX_SEEDS {
                    return Err(doc
                        .err(
                            Some(at),
                            "sweep.seeds",
                            format!("must be 1 to {MAX_SEEDS} (or a list of seeds)"),
                        )
                        .into());
                }
                (0..n as u64).map(|i| base_sc.run.seed.wrapping_add(i)).collect()
            }
            DeValue::Array(a) => {
                let mut out: Vec<u64> = Vec::new();
                for x in a.iter() {
                    let Some(s) = to_json(x.get_ref()).and_then(|j| j.as_u64()) else {
                        return Err(doc.err(Some(at), "sweep.seeds", "seeds must be integers ≥ 0").into());
                    };
                    if out.contains(&s) {
                        return Err(doc
                            .err(Some(at), "sweep.seeds", format!("seed {s} is listed twice"))
                            .into());
                    }
                    out.push(s);
                }
                if out.is_empty() || out.len() > MAX_SEEDS {
                    return Err(doc
                        .err(Some(at), "sweep.seeds", format!("must list 1 to {MAX_SEEDS} seeds"))
                        .into());
                }
                out
            }
            _ => {
                return Err(doc
                    .err(
                        Some(at),
                        "sweep.seeds",
                        "must be a count (integer ≥ 1) or a list of seeds",
                    )
                    .into());
            }
        },
    };

    // [axes]
    let mut axes: Vec<Axis> = Vec::new();
    let mut axis_at: Vec<usize> = Vec::new();
    if let Some((k, v)) = top.get_key_value("axes") {
        let DeValue::Table(t) = v.get_ref() else {
            return Err(doc.err(Some(k.span().start), "axes", "must be a table").into());
        };
        let mut leaves = Vec::new();
        flatten("", t, &mut leaves);
        // In the file's order (the parsed table is sorted by key).
        leaves.sort_by_key(|l| l.2);
        for (path, v, at) in leaves {
            let key = format!("axes.{path}");
            check_key(&doc, &path, at, &key)?;
            let DeValue::Array(a) = v.get_ref() else {
                return Err(doc
                    .err(
                        Some(at),
                        &key,
                        "an axis is a list of values (for one value, write [value])",
                    )
                    .into());
            };
            let Some(serde_json::Value::Array(values)) = to_json(v.get_ref()) else {
                return Err(doc
                    .err(Some(at), &key, "values must be strings, numbers, booleans or lists")
                    .into());
            };
            if a.is_empty() {
                return Err(doc
                    .err(Some(at), &key, "has no values: the sweep would have no points")
                    .into());
            }
            for (i, x) in values.iter().enumerate() {
                if values[..i].contains(x) {
                    return Err(doc.err(Some(at), &key, format!("value {x} is listed twice")).into());
                }
            }
            if axes.iter().any(|ax| ax.key == path) {
                return Err(doc.err(Some(at), &key, "is given twice").into());
            }
            let role = Role::of_key(&path);
            axes.push(Axis {
                key: path,
                values,
                role,
            });
            axis_at.push(at);
        }
    }

    // [[point]]
    let mut points: Vec<Vec<Option<usize>>> = Vec::new();
    if let Some((k, v)) = top.get_key_value("point") {
        let DeValue::Array(list) = v.get_ref() else {
            return Err(doc
                .err(Some(k.span().start), "point", "must be an array of tables ([[point]])")
                .into());
        };
        let declared = !axes.is_empty();
        let mut raw: Vec<Vec<(String, serde_json::Value, usize)>> = Vec::new();
        for (i, p) in list.iter().enumerate() {
            let DeValue::Table(t) = p.get_ref() else {
                return Err(doc
                    .err(Some(p.span().start), &format!("point[{i}]"), "must be a table")
                    .into());
            };
            let mut leaves = Vec::new();
            flatten("", t, &mut leaves);
            leaves.sort_by_key(|l| l.2);
            let mut entries = Vec::new();
            for (path, v, at) in leaves {
                let key = format!("point[{i}].{path}");
                check_key(&doc, &path, at, &key)?;
                let Some(value) = to_json(v.get_ref()) else {
                    return Err(doc
                        .err(Some(at), &key, "values must be strings, numbers, booleans or lists")
                        .into());
                };
                if declared {
                    let Some(axis) = axes.iter().find(|a| a.key == path) else {
                        return Err(doc
                            .err(
                                Some(at),
                                &key,
                                format!("{path} is not an axis (axes: {})", axis_keys(&axes)),
                            )
                            .into());
                    };
                    if !axis.values.contains(&value) {
                        return Err(doc
                            .err(
                                Some(at),
                                &key,
                                format!(
                                    "{} is not one of the axis's values [{}]",
                                    value,
                                    axis.values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
                                ),
                            )
                            .into());
                    }
                } else if let Some(a) = axes.iter_mut().find(|a| a.key == path) {
                    if !a.values.contains(&value) {
                        a.values.push(value.clone());
                    }
                } else {
                    axes.push(Axis {
                        key: path.clone(),
                        values: vec![value.clone()],
                        role: Role::of_key(&path),
                    });
                    axis_at.push(at);
                }
                entries.push((path, value, at));
            }
            if entries.is_empty() {
                return Err(doc
                    .err(Some(p.span().start), &format!("point[{i}]"), "sets no axis")
                    .into());
            }
            raw.push(entries);
        }
        if list.is_empty() {
            return Err(doc.err(Some(k.span().start), "point", "lists no points").into());
        }
        for (a, axis) in axes.iter().enumerate() {
            if !raw.iter().flatten().any(|(k, _, _)| *k == axis.key) {
                return Err(doc
                    .err(
                        Some(axis_at[a]),
                        &format!("axes.{}", axis.key),
                        "no point uses this axis (each [[point]] sets the axes it changes)",
                    )
                    .into());
            }
        }
        for entries in raw {
            let mut values = vec![None; axes.len()];
            for (path, value, _) in entries {
                let a = axes.iter().position(|x| x.key == path).unwrap_or(0);
                values[a] = axes[a].values.iter().position(|x| *x == value);
            }
            if points.contains(&values) {
                return Err(doc
                    .err(Some(k.span().start), "point", "the same point is listed twice")
                    .into());
            }
            points.push(values);
        }
    } else {
        if axes.is_empty() {
            return Err(doc
                .err(None, "axes", "a sweep needs axes ([axes]) or points ([[point]])")
                .into());
        }
        let total = axes.iter().try_fold(1usize, |n, a| n.checked_mul(a.values.len()));
        if total.is_none_or(|n| n > MAX_POINTS) {
            return Err(doc
                .err(
                    None,
                    "axes",
                    format!("the cross product has more than {MAX_POINTS} points"),
                )
                .into());
        }
        // Odometer order: the first axis changes slowest.
        let mut idx = vec![0usize; axes.len()];
        'odometer: loop {
            points.push(idx.iter().map(|&i| Some(i)).collect());
            let mut a = axes.len();
            loop {
                if a == 0 {
                    break 'odometer;
                }
                a -= 1;
                idx[a] += 1;
                if idx[a] < axes[a].values.len() {
                    continue 'odometer;
                }
                idx[a] = 0;
            }
        }
    }
    if points.len() > MAX_POINTS {
        return Err(doc.err(None, "point", format!("more than {MAX_POINTS} points")).into());
    }
    // `[sweep] conditions` places every axis: those it lists are conditions, the rest choices.
    if let Some((keys, at)) = conditions {
        for k in &keys {
            if !axes.iter().any(|a| a.key == *k) {
                return Err(doc
                    .err(
                        Some(at),
                        "sweep.conditions",
                        format!("{k:?} is not an axis (axes: {})", axis_keys(&axes)),
                    )
                    .into());
            }
        }
        for a in &mut axes {
            a.role = if keys.contains(&a.key) {
                Role::Condition
            } else {
                Role::Choice
            };
        }
    }
    if points.len().saturating_mul(seeds.len()) > MAX_TASKS {
        return Err(doc
            .err(
                None,
                "sweep.seeds",
                format!("points × seeds is more than {MAX_TASKS} tasks"),
            )
            .into());
    }

    let base_values: Vec<Option<String>> = axes.iter().map(|a| lookup(&base_table, &a.key)).collect();

    // Each point's scenario.
    let mut planned_points = Vec::with_capacity(points.len());
    let mut scenarios = Vec::with_capacity(points.len());
    for (i, values) in points.iter().enumerate() {
        let mut table = base_table.clone();
        let mut error = None;
        for (a, v) in values.iter().enumerate() {
            let Some(v) = v else { continue };
            if let Err(why) = apply(&mut table, &axes[a].key, &to_toml(&axes[a].values[*v])) {
                return Err(doc.err(Some(axis_at[a]), &format!("axes.{}", axes[a].key), why).into());
            }
        }
        let text = toml::to_string(&table).map_err(|e| {
            doc.err(
                None,
                "axes",
                format!("point {i}: the overridden scenario cannot be written: {e}"),
            )
        })?;
        match spinnbed_sim::scenario::parse(&base_file, &text, &base_dir) {
            Ok(sc) if sc.study().is_some() => error = Some("the point's scenario is a study".to_string()),
            Ok(_) => {}
            Err(e) => {
                // A key the scenario language does not have is the sweep's error, not the point's.
                if let Some(field) = &e.field {
                    let bare = strip_indices(field);
                    if e.message.starts_with("unknown field")
                        && let Some(a) = axes.iter().position(|a| strip_indices(&a.key) == bare)
                    {
                        return Err(doc
                            .err(
                                Some(axis_at[a]),
                                &format!("axes.{}", axes[a].key),
                                format!("not a scenario key: {}", e.message),
                            )
                            .into());
                    }
                }
                error = Some(match &e.field {
                    Some(f) => format!("{f}: {}", e.message),
                    None => e.message.clone(),
                });
            }
        }
        scenarios.push(error.is_none().then_some(text));
        planned_points.push(Point {
            index: i,
            values: values.clone(),
            error,
        });
    }
    let tasks: Vec<(usize, u64)> = planned_points
        .iter()
        .filter(|p| p.error.is_none())
        .flat_map(|p| seeds.iter().map(move |&s| (p.index, s)))
        .collect();
    Ok(Planned {
        plan: Plan {
            name,
            file: file.to_string(),
            base: base_name,
            base_dir,
            seeds,
            axes,
            base_values,
            points: planned_points,
            report_metrics,
            tasks,
        },
        scenarios,
    })
}

/// Rejects key paths no scenario key could match (empty parts, indices first).
fn check_key(doc: &Doc<'_>, path: &str, at: usize, key: &str) -> Result<(), SweepError> {
    let parts: Vec<&str> = path.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) || parts[0].parse::<usize>().is_ok() {
        return Err(doc
            .err(Some(at), key, format!("{path:?} is not a scenario key path"))
            .into());
    }
    Ok(())
}

/// `machine[0].x` and `machine.0.x` → `machine.x`.
fn strip_indices(path: &str) -> String {
    let mut out = String::new();
    for part in path.split('.') {
        let name = part.split('[').next().unwrap_or("");
        if name.is_empty() || name.parse::<usize>().is_ok() {
            continue;
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(name);
    }
    out
}

/// The base's value at a dotted path, as text (the first element's through arrays).
fn lookup(t: &Table, path: &str) -> Option<String> {
    let mut cur = Value::Table(t.clone());
    for part in path.split('.') {
        cur = match cur {
            Value::Table(mut t) => t.remove(part)?,
            Value::Array(mut a) => match part.parse::<usize>() {
                Ok(i) if i < a.len() => a.swap_remove(i),
                Ok(_) => return None,
                Err(_) => match a.first()? {
                    Value::Table(t) => t.get(part)?.clone(),
                    _ => return None,
                },
            },
            _ => return None,
        };
    }
    Some(match cur {
        Value::String(s) => s,
        other => serde_json::to_value(&other).map(|j| j.to_string()).unwrap_or_default(),
    })
}

/// Sets the value at a dotted path, creating tables on the way; through an array of tables it
/// applies to every element (or to the one a numeric part names).
fn apply(t: &mut Table, path: &str, v: &Value) -> Result<(), String> {
    let parts: Vec<&str> = path.split('.').collect();
    apply_parts(t, &parts, v, path)
}

fn apply_parts(t: &mut Table, parts: &[&str], v: &Value, path: &str) -> Result<(), String> {
    let Some((first, rest)) = parts.split_first() else {
        return Ok(());
    };
    if rest.is_empty() {
        t.insert(first.to_string(), v.clone());
        return Ok(());
    }
    let entry = t.entry(first.to_string()).or_insert_with(|| Value::Table(Table::new()));
    match entry {
        Value::Table(sub) => apply_parts(sub, rest, v, path),
        Value::Array(items) => {
            let tables = |items: &mut Vec<Value>| -> Result<(), String> {
                if items.is_empty() {
                    return Err(format!("{first} is an empty list in the base scenario: nothing to set"));
                }
                Ok(())
            };
            tables(items)?;
            if let Ok(i) = rest[0].parse::<usize>() {
                let n = items.len();
                let Some(item) = items.get_mut(i) else {
                    return Err(format!("{first} has {n} elements in the base scenario, not {}", i + 1));
                };
                return match (item, rest.len()) {
                    (item, 1) => {
                        *item = v.clone();
                        Ok(())
                    }
                    (Value::Table(sub), _) => apply_parts(sub, &rest[1..], v, path),
                    _ => Err(format!("{first}.{i} is not a table in the base scenario")),
                };
            }
            for item in items.iter_mut() {
                let Value::Table(sub) = item else {
                    return Err(format!(
                        "{first} is a list of values, not of tables, in the base scenario"
                    ));
                };
                apply_parts(sub, rest, v, path)?;
            }
            Ok(())
        }
        _ => Err(format!(
            "{first} is a value in the base scenario, not a table: {path} cannot be set"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let quick = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/quick.toml")).unwrap();
        std::fs::write(d.path().join("base.toml"), quick).unwrap();
        d
    }

    fn plan_text(d: &tempfile::TempDir, text: &str) -> Result<Planned, SweepError> {
        plan("s.toml", text, d.path(), "s")
    }

    fn err(d: &tempfile::TempDir, text: &str) -> String {
        plan_text(d, text).unwrap_err().to_string()
    }

    #[test]
    fn cross_product_in_odometer_order_with_seeds_from_the_base() {
        let d = base_dir();
        let p = plan_text(
            &d,
            "[sweep]\nbase = \"base.toml\"\nseeds = 2\n[axes]\npolicy.queue = [\"fifo\", \"easy\"]\npolicy.packer = [\"spalloc\", \"anywhere\", \"spalloc\"]\n",
        );
        assert!(p.unwrap_err().to_string().contains("listed twice"));
        let p = plan_text(
            &d,
            "[sweep]\nbase = \"base.toml\"\nseeds = 2\n[axes]\npolicy.queue = [\"fifo\", \"easy\"]\npolicy.packer = [\"spalloc\", \"anywhere\"]\n",
        )
        .unwrap();
        let plan = &p.plan;
        assert_eq!(plan.name, "s");
        assert_eq!(plan.seeds, vec![1, 2]);
        assert_eq!(plan.points.len(), 4);
        assert_eq!(plan.describe(1), "policy.queue = fifo, policy.packer = anywhere");
        assert_eq!(plan.describe(2), "policy.queue = easy, policy.packer = spalloc");
        assert_eq!(plan.tasks.len(), 8);
        assert_eq!(plan.tasks[3], (1, 2));
        assert!(p.scenarios[3].as_deref().unwrap().contains("easy"));
        assert_eq!(plan.chunk(3), 3);
        assert_eq!(plan.chunk(1000), 1);
    }

    #[test]
    fn explicit_points_and_invalid_ones() {
        let d = base_dir();
        let p = plan_text(
            &d,
            "[sweep]\nbase = \"base.toml\"\nseeds = [7, 3]\n[[point]]\npolicy.queue = \"easy\"\n[[point]]\npolicy.queue = \"fifo\"\nrun.horizon = \"-1h\"\n",
        )
        .unwrap();
        let plan = &p.plan;
        assert_eq!(plan.axes.len(), 2);
        assert_eq!(plan.points[0].values, vec![Some(0), None]);
        assert!(plan.points[0].error.is_none());
        let e = plan.points[1].error.as_deref().unwrap();
        assert!(e.contains("run.horizon"), "{e}");
        assert_eq!(plan.tasks, vec![(0, 7), (0, 3)]);
        assert!(p.scenarios[1].is_none());
        assert!(plan.describe(0).ends_with("run.horizon = 4h"), "{}", plan.describe(0));
    }

    #[test]
    fn mistakes_are_named_before_anything_runs() {
        let d = base_dir();
        let b = "[sweep]\nbase = \"base.toml\"\n";
        let e = err(&d, &format!("{b}[axes]\npolicy.queu = [\"fifo\"]\n"));
        assert!(
            e.contains("s.toml: line 4: axes.policy.queu: not a scenario key"),
            "{e}"
        );
        let e = err(&d, &format!("{b}[axes]\npolicy.queue = []\n"));
        assert!(e.contains("line 4: axes.policy.queue: has no values"), "{e}");
        let e = err(&d, &format!("{b}[axes]\npolicy.queue = \"fifo\"\n"));
        assert!(e.contains("an axis is a list"), "{e}");
        let e = err(&d, &format!("{b}seed = 3\n[axes]\npolicy.queue = [\"fifo\"]\n"));
        assert!(e.contains("line 3: sweep.seed: unknown key"), "{e}");
        let e = err(&d, &format!("{b}[axis]\n"));
        assert!(e.contains("line 3: axis: unknown table"), "{e}");
        let e = err(&d, b);
        assert!(e.contains("needs axes"), "{e}");
        let e = err(
            &d,
            &format!(
                "{b}[axes]\npolicy.queue = [\"fifo\", \"easy\"]\nhost.scp_policy = [\"rig\"]\n[[point]]\npolicy.queue = \"easy\"\n"
            ),
        );
        assert!(
            e.contains("line 5: axes.host.scp_policy: no point uses this axis"),
            "{e}"
        );
        let e = err(
            &d,
            &format!("{b}[axes]\npolicy.queue = [\"fifo\"]\n[[point]]\npolicy.queue = \"easy\"\n"),
        );
        assert!(
            e.contains("line 6: point[0].policy.queue: \"easy\" is not one of the axis's values"),
            "{e}"
        );
        let e = err(
            &d,
            "[sweep]\nbase = \"missing.toml\"\n[axes]\npolicy.queue = [\"fifo\"]\n",
        );
        assert!(e.contains("line 2: sweep.base:") && e.contains("missing.toml"), "{e}");
        let e = err(
            &d,
            &format!("{b}metrics = [\"speed\"]\n[axes]\npolicy.queue = [\"fifo\"]\n"),
        );
        assert!(e.contains("unknown metric \"speed\""), "{e}");
        let e = err(&d, &format!("{b}[axes]\nmachine.width.x = [1]\n"));
        assert!(e.contains("machine.width.x"), "{e}");
        let e = err(&d, "[sweep\n");
        assert!(e.contains("line 1") && e.contains("not valid TOML"), "{e}");
    }

    #[test]
    fn axes_are_conditions_or_choices() {
        let d = base_dir();
        let axes = "[axes]\npolicy.queue = [\"fifo\", \"easy\"]\nworkload.load_scale = [0.5, 1]\nhost.scp_policy = [\"rig\"]\nhost.boot_users = [false]\n";
        let roles =
            |text: &str| -> Vec<Role> { plan_text(&d, text).unwrap().plan.axes.iter().map(|a| a.role).collect() };
        let b = "[sweep]\nbase = \"base.toml\"\n";
        use Role::{Choice, Condition};
        assert_eq!(roles(&format!("{b}{axes}")), [Choice, Condition, Choice, Condition]);
        assert_eq!(
            roles(&format!("{b}conditions = [\"host.scp_policy\"]\n{axes}")),
            [Choice, Choice, Condition, Choice]
        );
        assert_eq!(roles(&format!("{b}conditions = []\n{axes}")), [Choice; 4]);
        // Written into sweep.json for the report.
        let p = plan_text(&d, &format!("{b}{axes}")).unwrap();
        let json = serde_json::to_string(&p.plan.axes[1]).unwrap();
        assert!(json.contains("\"role\":\"condition\""), "{json}");
        let e = err(&d, &format!("{b}conditions = [\"workload.load\"]\n{axes}"));
        assert!(
            e.contains("line 3: sweep.conditions: \"workload.load\" is not an axis (axes: policy.queue,"),
            "{e}"
        );
        let e = err(&d, &format!("{b}conditions = \"workload.load_scale\"\n{axes}"));
        assert!(
            e.contains("line 3: sweep.conditions: must be a list of axis keys"),
            "{e}"
        );
        let e = err(&d, &format!("{b}conditions = [\"a\", \"a\"]\n{axes}"));
        assert!(e.contains("\"a\" is listed twice"), "{e}");
    }

    #[test]
    fn keys_through_arrays_of_tables_apply_to_each_or_one() {
        let d = base_dir();
        let p = plan_text(&d, "[sweep]\nbase = \"base.toml\"\n[axes]\nmachine.width = [3]\n").unwrap();
        assert!(p.plan.points[0].error.is_none(), "{:?}", p.plan.points[0].error);
        assert!(p.scenarios[0].as_deref().unwrap().contains("width = 3"));
        let p = plan_text(
            &d,
            "[sweep]\nbase = \"base.toml\"\n[axes]\n\"machine.0.height\" = [4]\n",
        )
        .unwrap();
        assert!(p.scenarios[0].as_deref().unwrap().contains("height = 4"));
        assert_eq!(p.plan.base_values, vec![Some("2".to_string())]);
        let e = err(&d, "[sweep]\nbase = \"base.toml\"\n[axes]\nmachine.3.height = [4]\n");
        assert!(e.contains("machine has 1 elements"), "{e}");
    }
}
