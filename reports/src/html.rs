//! `index.html` for one run and for a comparison: a static page that opens from disk with no
//! network (inline CSS, no scripts, no external fonts), with the summary tables and the charts.
//!
//! The output is deterministic — no timestamps, no absolute paths, fixed number formatting — so
//! it can be snapshot-tested.

use std::fmt::Write as _;

use crate::data::{RunData, Summary};
use crate::format::{self, html_escape as esc};
use crate::stats;

/// A value in a summary table.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Int(u64),
    /// A fraction, shown as a percentage.
    Frac(f64),
    /// Seconds, shown in a human unit.
    Dur(f64),
    Num(f64),
    Missing,
}

/// Which way a metric should move for a run to be "better".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
    Neither,
}

impl Value {
    fn show(&self) -> String {
        match self {
            Value::Text(s) => s.clone(),
            Value::Int(n) => format::int(*n),
            Value::Frac(f) => format::pct(*f),
            Value::Dur(s) => format::duration(*s),
            Value::Num(x) => format::sig3(*x),
            Value::Missing => "–".to_string(),
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Value::Int(n) => Some(*n as f64),
            Value::Frac(x) | Value::Dur(x) | Value::Num(x) => Some(*x),
            _ => None,
        }
    }
}

fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
    v.map_or(Value::Missing, f)
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}: {}", json_text(v)))
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::Null => "–".to_string(),
        other => other.to_string(),
    }
}

/// The rows of the summary table: label, value, which way is better.
pub fn summary_rows(s: &Summary) -> Vec<(&'static str, Value, Better)> {
    use Better::*;
    let w = s.wait_s.clone().unwrap_or_default();
    let mut rows = vec![
        ("scenario", opt(s.scenario.clone(), Value::Text), Neither),
        ("seed", opt(s.seed.as_ref(), |v| Value::Text(json_text(v))), Neither),
        ("policy", opt(s.policy.as_ref(), |v| Value::Text(json_text(v))), Neither),
        ("jobs", opt(s.jobs, Value::Int), Neither),
        ("started", opt(s.started, Value::Int), Higher),
        ("completed", opt(s.completed, Value::Int), Higher),
        ("cancelled", opt(s.cancelled, Value::Int), Lower),
        ("timed out", opt(s.timed_out, Value::Int), Lower),
        ("failed", opt(s.failed, Value::Int), Lower),
        ("never started", opt(s.never_started, Value::Int), Lower),
        ("live boards", opt(s.live_boards, Value::Int), Neither),
        ("dead boards", opt(s.dead_boards, Value::Int), Neither),
        ("utilisation", opt(s.utilisation, Value::Frac), Higher),
        ("powered utilisation", opt(s.powered_utilisation, Value::Frac), Neither),
        ("wait: mean", opt(w.mean, Value::Dur), Lower),
        ("wait: p50", opt(w.p50, Value::Dur), Lower),
        ("wait: p95", opt(w.p95, Value::Dur), Lower),
        ("wait: p99", opt(w.p99, Value::Dur), Lower),
        ("wait: max", opt(w.max, Value::Dur), Lower),
        ("mean bounded slowdown", opt(s.mean_bounded_slowdown, Value::Num), Lower),
        (
            "board-hours allocated",
            opt(s.board_hours_allocated, Value::Num),
            Neither,
        ),
        ("board-hours powered", opt(s.board_hours_powered, Value::Num), Neither),
        ("makespan", opt(s.makespan_s, Value::Dur), Neither),
        ("run end", opt(s.end_s, Value::Dur), Neither),
    ];
    if let Some(scp) = &s.scp {
        rows.extend([
            ("SCP requests", opt(scp.requests, Value::Int), Neither),
            ("SCP retries", opt(scp.retries, Value::Int), Lower),
            ("SCP timeouts", opt(scp.timeouts, Value::Int), Lower),
            ("SCP failures", opt(scp.failures, Value::Int), Lower),
            ("SCP bytes", opt(scp.bytes, Value::Int), Neither),
            ("SCP goodput (Mbit/s)", opt(scp.goodput_mbps, Value::Num), Higher),
        ]);
    }
    if let Some(live) = &s.live {
        rows.extend([
            ("live output: streaming jobs", opt(live.jobs, Value::Int), Neither),
            ("live output: events sent", opt(live.sent, Value::Int), Neither),
            ("live output: events delivered", opt(live.delivered, Value::Int), Higher),
            ("live output: events dropped", opt(live.dropped, Value::Int), Lower),
            (
                "live output: median latency (ms)",
                opt(live.latency_p50_ms, Value::Num),
                Lower,
            ),
            (
                "live output: worst p99 latency (ms)",
                opt(live.latency_p99_ms, Value::Num),
                Lower,
            ),
        ]);
    }
    rows
}

/// One row of the per-class table.
#[derive(Debug, Clone)]
pub struct ClassRow {
    pub class: String,
    pub jobs: Value,
    pub started: Value,
    pub mean_wait: Value,
    pub p50_wait: Value,
    pub p95_wait: Value,
}

/// Per size class: jobs, started, mean, p50 and p95 wait. From the summary, or computed from
/// `jobs.csv` when the summary has no class list.
pub fn class_rows(run: &RunData) -> Vec<ClassRow> {
    if !run.summary.classes.is_empty() {
        return run
            .summary
            .classes
            .iter()
            .map(|c| ClassRow {
                class: c.class.clone(),
                jobs: opt(c.jobs, Value::Int),
                started: opt(c.started, Value::Int),
                mean_wait: opt(c.mean_wait_s, Value::Dur),
                p50_wait: opt(c.p50_wait_s, Value::Dur),
                p95_wait: opt(c.p95_wait_s, Value::Dur),
            })
            .collect();
    }
    let classes = stats::waits_by_class(&run.jobs, &[]);
    classes
        .iter()
        .map(|c| {
            let jobs = run
                .jobs
                .iter()
                .filter(|j| j.class == c.class || (j.class.is_empty() && c.class == stats::NO_CLASS))
                .count();
            ClassRow {
                class: c.class.clone(),
                jobs: Value::Int(jobs as u64),
                started: Value::Int(c.waits.len() as u64),
                mean_wait: opt(c.mean(), Value::Dur),
                p50_wait: opt(c.percentile(0.5), Value::Dur),
                p95_wait: opt(c.percentile(0.95), Value::Dur),
            }
        })
        .collect()
}

const CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:0 auto;\
max-width:1240px;padding:24px;color:#1a1a1a;background:#fff;line-height:1.45}
h1{font-size:1.8em;margin:0 0 .2em}h2{font-size:1.3em;margin:1.8em 0 .6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
p.sub{color:#555;margin:0 0 1em}
table{border-collapse:collapse;margin:.4em 0 1em;font-variant-numeric:tabular-nums}
th,td{padding:.3em .8em;border-bottom:1px solid #e4e4e4;text-align:right;vertical-align:top;white-space:nowrap}
th{background:#f3f3f3;font-weight:600}
th:first-child,td:first-child{text-align:left}
td.text{text-align:left;white-space:normal;min-width:8em;max-width:280px}
.cols{display:flex;flex-wrap:wrap;gap:0 56px;align-items:flex-start}
.scroll{overflow-x:auto}
tr:nth-child(even) td{background:#fafafa}
td.better{color:#0072B2;font-weight:600}td.worse{color:#D55E00;font-weight:600}
figure{margin:1.2em 0 2em}figure img{max-width:100%;height:auto;border:1px solid #e4e4e4}
figcaption{color:#555;margin-top:.3em}
a{color:#0072B2}
.note{color:#555;font-size:.92em}
";

pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>\n{CSS}</style>\n\
</head>\n<body>\n{body}</body>\n</html>\n",
        esc(title)
    )
}

/// A chart with its PNG, a link to its SVG and a caption.
pub struct Figure {
    pub stem: String,
    pub alt: String,
    pub caption: String,
}

/// The paragraph linking to each figure of a page (`Charts: a · b · …`).
pub(crate) fn chart_links(out: &mut String, figs: &[Figure]) {
    out.push_str("<p class=\"note\">Charts: ");
    out.push_str(
        &figs
            .iter()
            .map(|f| format!("<a href=\"#{0}\">{0}</a>", esc(&f.stem)))
            .collect::<Vec<_>>()
            .join(" · "),
    );
    out.push_str("</p>");
}

pub(crate) fn figures(out: &mut String, figs: &[Figure]) {
    for f in figs {
        let stem = esc(&f.stem);
        let _ = writeln!(
            out,
            "<figure id=\"{stem}\">\n<a href=\"{stem}.svg\"><img src=\"{stem}.png\" width=\"1200\" height=\"800\" alt=\"{}\"></a>\n\
<figcaption>{} <a href=\"{stem}.svg\">SVG</a></figcaption>\n</figure>",
            esc(&f.alt),
            esc(&f.caption)
        );
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Text(s) => format!("<td class=\"text\">{}</td>", esc(s)),
        v => format!("<td>{}</td>", esc(&v.show())),
    }
}

/// The summary table of one run.
pub fn summary_table(s: &Summary) -> String {
    let mut out = String::from("<table class=\"summary\">\n<tr><th>metric</th><th>value</th></tr>\n");
    for (label, value, _) in summary_rows(s) {
        let _ = writeln!(out, "<tr><td>{}</td>{}</tr>", esc(label), cell(&value));
    }
    out.push_str("</table>\n");
    out
}

fn class_table(run: &RunData) -> String {
    let rows = class_rows(run);
    if rows.is_empty() {
        return "<p class=\"note\">No jobs.</p>\n".to_string();
    }
    let mut out = String::from(
        "<table class=\"classes\">\n<tr><th>class</th><th>jobs</th><th>started</th><th>mean wait</th>\
<th>p50 wait</th><th>p95 wait</th></tr>\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "<tr><td>{}</td>{}{}{}{}{}</tr>",
            esc(&r.class),
            cell(&r.jobs),
            cell(&r.started),
            cell(&r.mean_wait),
            cell(&r.p50_wait),
            cell(&r.p95_wait)
        );
    }
    out.push_str("</table>\n");
    out
}

fn machine_table(run: &RunData) -> String {
    if run.summary.machines.is_empty() {
        return String::new();
    }
    // The health policy's column only when it retired something.
    let retired = run.summary.machines.iter().any(|m| !m.retired_boards.is_empty());
    let mut out = String::from(
        "<table class=\"machines\">\n<tr><th>machine</th><th>live boards</th><th>dead boards</th><th>utilisation</th>",
    );
    out.push_str(if retired {
        "<th>retired boards</th></tr>\n"
    } else {
        "</tr>\n"
    });
    for m in &run.summary.machines {
        let extra = if retired {
            let list: Vec<String> = m
                .retired_boards
                .iter()
                .map(|[x, y, z]| format!("({x}, {y}, {z})"))
                .collect();
            format!(
                "<td>{}</td>",
                if list.is_empty() {
                    "none".to_string()
                } else {
                    list.join(" ")
                }
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td>{}{}{}{extra}</tr>",
            esc(&m.name),
            cell(&opt(m.live_boards, Value::Int)),
            cell(&opt(m.dead_boards, Value::Int)),
            cell(&opt(m.utilisation, Value::Frac))
        );
    }
    out.push_str("</table>\n");
    out
}

/// The faults injected during the run, numbered as on the time charts.
fn fault_table(run: &RunData) -> String {
    let mut out =
        String::from("<table class=\"faults\">\n<tr><th>#</th><th>at</th><th>until</th><th>fault</th></tr>\n");
    for (i, f) in run.summary.faults.iter().enumerate() {
        let until = f.until_s.map_or("the end".to_string(), format::clock);
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            format::clock(f.at_s),
            until,
            esc(&f.what)
        );
    }
    out.push_str("</table>\n");
    out
}

/// `index.html` of one run.
pub fn run_index(run: &RunData, figs: &[Figure]) -> String {
    let name = run.name();
    let mut body = format!("<h1>spinnbed run: {}</h1>\n", esc(&name));
    let mut sub = Vec::new();
    if let Some(seed) = &run.summary.seed {
        sub.push(format!("seed {}", json_text(seed)));
    }
    if let Some(p) = &run.summary.policy {
        sub.push(format!("policy {}", json_text(p)));
    }
    if !sub.is_empty() {
        let _ = writeln!(body, "<p class=\"sub\">{}</p>", esc(&sub.join(" · ")));
    }
    chart_links(&mut body, figs);
    body.push_str("\n<div class=\"cols\">\n<section>\n<h2>Summary</h2>\n");
    body.push_str(&summary_table(&run.summary));
    body.push_str("</section>\n<section>\n<h2>Per size class</h2>\n");
    body.push_str(&class_table(run));
    let machines = machine_table(run);
    if !machines.is_empty() {
        body.push_str("<h2>Machines</h2>\n");
        body.push_str(&machines);
    }
    if !run.summary.faults.is_empty() {
        body.push_str("<h2>Faults</h2>\n");
        body.push_str(&fault_table(run));
    }
    body.push_str("</section>\n</div>\n<h2>Charts</h2>\n");
    figures(&mut body, figs);
    page(&format!("spinnbed run: {name}"), &body)
}

fn signed(x: f64, f: impl Fn(f64) -> String) -> String {
    if x == 0.0 || !x.is_finite() {
        return "0".to_string();
    }
    let s = f(x.abs());
    if s == "0" || s.starts_with("0 ") {
        return "0".to_string();
    }
    format!("{}{s}", if x > 0.0 { "+" } else { "-" })
}

/// Difference of `b` from `a`: (absolute, percent, goodness class).
fn diff(a: &Value, b: &Value, better: Better) -> Option<(String, String, &'static str)> {
    let (x, y) = (a.number()?, b.number()?);
    let d = y - x;
    let abs = match a {
        Value::Int(_) => signed(d, |v| format!("{v:.0}")),
        Value::Frac(_) => signed(d * 100.0, |v| format!("{} pp", format::sig3(v))),
        Value::Dur(_) => signed(d, format::duration),
        _ => signed(d, format::sig3),
    };
    let pct = if x != 0.0 {
        signed(100.0 * d / x.abs(), |v| format!("{} %", format::sig3(v)))
    } else if d == 0.0 {
        "0".to_string()
    } else {
        "–".to_string()
    };
    let class = match (better, d.partial_cmp(&0.0)) {
        (Better::Lower, Some(std::cmp::Ordering::Less)) | (Better::Higher, Some(std::cmp::Ordering::Greater)) => {
            "better"
        }
        (Better::Lower, Some(std::cmp::Ordering::Greater)) | (Better::Higher, Some(std::cmp::Ordering::Less)) => {
            "worse"
        }
        _ => "",
    };
    Some((abs, pct, class))
}

fn diff_cells(a: &Value, b: &Value, better: Better) -> String {
    match diff(a, b, better) {
        Some((abs, pct, class)) if !class.is_empty() => {
            format!(
                "<td class=\"{class}\" title=\"{class}\">{}</td><td class=\"{class}\">{}</td>",
                esc(&abs),
                esc(&pct)
            )
        }
        Some((abs, pct, _)) => format!("<td>{}</td><td>{}</td>", esc(&abs), esc(&pct)),
        None => "<td></td><td></td>".to_string(),
    }
}

/// The side-by-side summary table of a comparison: each run's value, and for every run after
/// the first its difference from the first (absolute and %).
pub fn compare_table(runs: &[(String, RunData)]) -> String {
    let mut out = String::from("<table class=\"compare\">\n<tr><th>metric</th>");
    for (i, (name, _)) in runs.iter().enumerate() {
        let _ = write!(out, "<th>{}</th>", esc(name));
        if i > 0 {
            out.push_str("<th>Δ vs first</th><th>Δ %</th>");
        }
    }
    out.push_str("</tr>\n");
    let rows: Vec<Vec<(&str, Value, Better)>> = runs.iter().map(|(_, r)| summary_rows(&r.summary)).collect();
    // Every run has the same rows except the SCP block; use the longest list as the row set.
    let longest = rows.iter().max_by_key(|r| r.len()).cloned().unwrap_or_default();
    for (label, _, better) in &longest {
        let _ = write!(out, "<tr><td>{}</td>", esc(label));
        let value = |k: usize| {
            rows[k]
                .iter()
                .find(|r| r.0 == *label)
                .map_or(Value::Missing, |r| r.1.clone())
        };
        let first = value(0);
        for k in 0..runs.len() {
            let v = value(k);
            out.push_str(&cell(&v));
            if k > 0 {
                out.push_str(&diff_cells(&first, &v, *better));
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

fn compare_class_table(runs: &[(String, RunData)]) -> String {
    let per_run: Vec<Vec<ClassRow>> = runs.iter().map(|(_, r)| class_rows(r)).collect();
    let mut classes: Vec<String> = Vec::new();
    for rows in &per_run {
        for r in rows {
            if !classes.contains(&r.class) {
                classes.push(r.class.clone());
            }
        }
    }
    if classes.is_empty() {
        return "<p class=\"note\">No jobs.</p>\n".to_string();
    }
    let mut out = String::from("<table class=\"compare-classes\">\n<tr><th>class</th><th>metric</th>");
    for (i, (name, _)) in runs.iter().enumerate() {
        let _ = write!(out, "<th>{}</th>", esc(name));
        if i > 0 {
            out.push_str("<th>Δ vs first</th><th>Δ %</th>");
        }
    }
    out.push_str("</tr>\n");
    for class in &classes {
        type Get = fn(&ClassRow) -> Value;
        let metrics: [(&str, Better, Get); 4] = [
            ("started", Better::Neither, |r| r.started.clone()),
            ("mean wait", Better::Lower, |r| r.mean_wait.clone()),
            ("p50 wait", Better::Lower, |r| r.p50_wait.clone()),
            ("p95 wait", Better::Lower, |r| r.p95_wait.clone()),
        ];
        for (m, better, get) in metrics {
            let _ = write!(out, "<tr><td>{}</td><td class=\"text\">{m}</td>", esc(class));
            let value = |k: usize| {
                per_run[k]
                    .iter()
                    .find(|r| &r.class == class)
                    .map_or(Value::Missing, get)
            };
            let first = value(0);
            for k in 0..runs.len() {
                let v = value(k);
                out.push_str(&cell(&v));
                if k > 0 {
                    out.push_str(&diff_cells(&first, &v, better));
                }
            }
            out.push_str("</tr>\n");
        }
    }
    out.push_str("</table>\n");
    out
}

/// `index.html` of a comparison.
pub fn compare_index(runs: &[(String, RunData)], figs: &[Figure]) -> String {
    let names: Vec<&str> = runs.iter().map(|(n, _)| n.as_str()).collect();
    let title = format!("spinnbed comparison: {}", names.join(" vs "));
    let mut body = format!("<h1>{}</h1>\n", esc(&title));
    body.push_str(
        "<p class=\"sub\">Differences are against the first run; <span style=\"color:#0072B2;font-weight:600\">blue</span> \
is better, <span style=\"color:#D55E00;font-weight:600\">orange</span> is worse (for metrics with a better direction).</p>\n",
    );
    body.push_str("<h2>Summary</h2>\n<div class=\"scroll\">\n");
    body.push_str(&compare_table(runs));
    body.push_str("</div>\n<h2>Per size class</h2>\n<div class=\"scroll\">\n");
    body.push_str(&compare_class_table(runs));
    body.push_str("</div>\n<h2>Charts</h2>\n");
    figures(&mut body, figs);
    page(&title, &body)
}

/// A number of a study's summary as shown: rounded to 3 decimals.
fn study_number(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Bool(true) => "yes".to_string(),
        serde_json::Value::Bool(false) => "NO".to_string(),
        serde_json::Value::Number(n) => n
            .as_f64()
            .map_or_else(|| n.to_string(), |x| format!("{}", (x * 1000.0).round() / 1000.0)),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) if a.iter().all(|x| x.is_string()) => {
            if a.is_empty() {
                "none".to_string()
            } else {
                a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join("; ")
            }
        }
        other => json_text(other),
    }
}

/// `index.html` of the SCP windowing study: its verdict (if the study wrote one), the winner of
/// each network condition and operation, what pacing did, the charts and every cell as a table,
/// goodput as a share of the bound.
pub fn windowing_index(
    name: &str,
    summary: &serde_json::Value,
    rows: &[crate::data::WindowingRow],
    figs: &[Figure],
) -> String {
    let mut body = format!("<h1>spinnbed SCP windowing study: {}</h1>\n", esc(name));
    if let Some(v) = summary.get("verdict").and_then(|v| v.as_object()) {
        body.push_str("<h2>Verdict</h2>\n<table class=\"summary\">\n<tr><th>check</th><th>result</th></tr>\n");
        for (k, v) in v {
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(&k.replace('_', " ")),
                esc(&study_number(v))
            );
        }
        body.push_str("</table>\n");
        if let Some(t) = summary.get("noise_tolerance").and_then(|t| t.as_f64()) {
            let _ = writeln!(
                body,
                "<p class=\"note\">A cell counts as worse than a reference when adaptive's mean goodput is below {} % of \
                 the reference's (seed noise).</p>",
                (t * 100.0).round()
            );
        }
    }
    if let Some(ws) = summary.get("winners").and_then(|w| w.as_array()) {
        body.push_str(
            "<h2>Winners</h2>\n<p class=\"note\">Per network condition and operation, the policy with the highest \
geometric-mean goodput over the loss × RTT cells; “by” is its geometric mean over the runner-up's, then over the best \
of the real clients' presets; the worst cell is where it does worst against the best other policy there.</p>\n<table class=\"classes\">\n<tr><th>network</th>\
<th>op</th><th>winner</th><th>by</th><th>runner-up</th><th>vs the best real client</th><th>worst cell</th><th>there</th><th>standings (share of the \
winner)</th></tr>\n",
        );
        for w in ws {
            let f = |k: &str| w.get(k).map(study_number).unwrap_or_default();
            let standings = w
                .get("standings")
                .and_then(|s| s.as_array())
                .map(|a| {
                    a.iter()
                        .map(|s| {
                            format!(
                                "{} {}",
                                s.get("policy").and_then(|p| p.as_str()).unwrap_or(""),
                                s.get("vs_winner").map(study_number).unwrap_or_default()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let _ = writeln!(
                body,
                "<tr><td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td><td>{}×</td>\
<td class=\"text\">{}</td><td>{}</td><td class=\"text\">{}</td><td>{}×</td><td class=\"text\">{}</td></tr>",
                esc(&f("network")),
                esc(&f("op")),
                esc(&f("winner")),
                esc(&f("by")),
                esc(&f("runner_up")),
                esc(&match (f("best_reference").as_str(), f("vs_best_reference")) {
                    ("", _) => String::new(),
                    (r, x) => format!("{x}× {r}"),
                }),
                esc(&f("worst_cell")),
                esc(&f("worst_cell_ratio")),
                esc(&standings)
            );
        }
        body.push_str("</table>\n");
    }
    if let Some(ps) = summary.get("pacing").and_then(|p| p.as_array())
        && !ps.is_empty()
    {
        body.push_str(
            "<h2>Pacing</h2>\n<p class=\"note\">Each paced policy against the same policy unpaced: the cells where the \
unpaced one lost requests in SC&amp;MP (all transient tags or buffers taken), the drops per transfer summed over them, \
and the paced / unpaced goodput (geometric mean) there and in the other cells.</p>\n<table class=\"classes\">\n\
<tr><th>paced</th><th>unpaced</th><th>network</th><th>op</th><th>overflow cells</th><th>drops unpaced</th>\
<th>drops paced</th><th>goodput there</th><th>goodput elsewhere</th></tr>\n",
        );
        for p in ps {
            let f = |k: &str| p.get(k).map(study_number).unwrap_or_default();
            let _ = writeln!(
                body,
                "<tr><td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td>\
<td class=\"text\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}×</td><td>{}×</td></tr>",
                esc(&f("policy")),
                esc(&f("unpaced")),
                esc(&f("network")),
                esc(&f("op")),
                esc(&f("overflow_cells")),
                esc(&f("drops_unpaced")),
                esc(&f("drops_paced")),
                esc(&f("goodput_ratio_with_overflow")),
                esc(&f("goodput_ratio_without_overflow"))
            );
        }
        body.push_str("</table>\n");
    }
    body.push_str("<h2>Charts</h2>\n");
    if figs.len() > 1 {
        chart_links(&mut body, figs);
    }
    figures(&mut body, figs);
    body.push_str(
        "<h2>Cells</h2>\n<table class=\"classes\">\n<tr><th>network</th><th>policy</th><th>op</th><th>loss</th>\
<th>RTT</th><th>goodput</th><th>± sd</th><th>bound</th><th>of bound</th><th>retries</th><th>timeouts</th>\
<th>SC&amp;MP drops</th><th>paced</th><th>failed</th></tr>\n",
    );
    for r in rows {
        let share = Some(r.bound_mbps)
            .filter(|b| *b > 0.0)
            .map_or_else(String::new, |b| format!("{:.1} %", 100.0 * r.goodput_mbps / b));
        let _ = writeln!(
            body,
            "<tr><td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td><td>{} %</td>\
<td>{} ms</td><td>{:.2} Mbit/s</td><td>{:.2}</td><td>{:.2} Mbit/s</td><td>{}</td><td>{:.1}</td><td>{:.1}</td>\
<td>{:.1}</td><td>{:.1} ms</td><td>{}</td></tr>",
            esc(&r.network),
            esc(&r.policy),
            esc(&r.op),
            crate::format::tick(100.0 * r.loss),
            crate::format::tick(r.rtt_ms),
            r.goodput_mbps,
            r.goodput_sd_mbps,
            r.bound_mbps,
            share,
            r.retries,
            r.timeouts,
            r.scamp_drops,
            r.paced_ms,
            r.failed
        );
    }
    body.push_str("</table>\n");
    page(&format!("spinnbed SCP windowing study: {name}"), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs() {
        let (a, p, c) = diff(&Value::Dur(100.0), &Value::Dur(50.0), Better::Lower).unwrap();
        assert_eq!((a.as_str(), p.as_str(), c), ("-50.0 s", "-50.0 %", "better"));
        let (a, p, c) = diff(&Value::Frac(0.5), &Value::Frac(0.6), Better::Higher).unwrap();
        assert_eq!((a.as_str(), p.as_str(), c), ("+10.0 pp", "+20.0 %", "better"));
        let (a, p, c) = diff(&Value::Int(0), &Value::Int(3), Better::Lower).unwrap();
        assert_eq!((a.as_str(), p.as_str(), c), ("+3", "–", "worse"));
        let (a, p, c) = diff(&Value::Int(7), &Value::Int(7), Better::Lower).unwrap();
        assert_eq!((a.as_str(), p.as_str(), c), ("0", "0", ""));
        assert!(diff(&Value::Missing, &Value::Int(1), Better::Lower).is_none());
    }
}
