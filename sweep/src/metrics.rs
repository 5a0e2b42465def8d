//! The metrics a sweep collects from each run's `summary.json`.

/// Which way a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Smaller is better.
    Lower,
    /// Larger is better.
    Higher,
    /// Neither (a quantity, not a goal).
    None,
}

/// One metric: its column name, words, unit, direction and where `summary.json` has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// Column name (`<name>_mean` … in `points.csv`).
    pub name: &'static str,
    /// Words for the report.
    pub label: &'static str,
    /// Unit (`""` for none).
    pub unit: &'static str,
    /// Which way is better.
    pub better: Better,
    /// JSON pointer into `summary.json`.
    pub pointer: &'static str,
}

const fn m(
    name: &'static str,
    label: &'static str,
    unit: &'static str,
    better: Better,
    pointer: &'static str,
) -> Metric {
    Metric {
        name,
        label,
        unit,
        better,
        pointer,
    }
}

/// Every metric, in column order. The SCP ones exist only for packet-level runs; a metric no
/// run of a sweep has is left out of its outputs.
pub const METRICS: &[Metric] = &[
    m("wait_mean_s", "mean wait", "s", Better::Lower, "/wait_s/mean"),
    m("wait_p50_s", "median wait", "s", Better::Lower, "/wait_s/p50"),
    m("wait_p95_s", "95th percentile wait", "s", Better::Lower, "/wait_s/p95"),
    m("wait_p99_s", "99th percentile wait", "s", Better::Lower, "/wait_s/p99"),
    m("wait_max_s", "longest wait", "s", Better::Lower, "/wait_s/max"),
    m(
        "mean_bounded_slowdown",
        "mean bounded slowdown",
        "",
        Better::Lower,
        "/mean_bounded_slowdown",
    ),
    m("utilisation", "utilisation", "", Better::Higher, "/utilisation"),
    m(
        "powered_utilisation",
        "powered utilisation",
        "",
        Better::Higher,
        "/powered_utilisation",
    ),
    m("makespan_s", "makespan", "s", Better::Lower, "/makespan_s"),
    m("jobs", "jobs", "", Better::None, "/jobs"),
    m("started", "jobs started", "", Better::Higher, "/started"),
    m("completed", "jobs completed", "", Better::Higher, "/completed"),
    m("cancelled", "jobs cancelled", "", Better::Lower, "/cancelled"),
    m("timed_out", "jobs timed out", "", Better::Lower, "/timed_out"),
    m("failed", "jobs failed", "", Better::Lower, "/failed"),
    m(
        "never_started",
        "jobs never started",
        "",
        Better::Lower,
        "/never_started",
    ),
    m("unfinished", "jobs unfinished", "", Better::Lower, "/unfinished"),
    m("live_boards", "live boards", "", Better::None, "/live_boards"),
    m(
        "board_hours_allocated",
        "board-hours allocated",
        "h",
        Better::None,
        "/board_hours_allocated",
    ),
    m(
        "board_hours_powered",
        "board-hours powered",
        "h",
        Better::None,
        "/board_hours_powered",
    ),
    m(
        "scp_goodput_mbps",
        "SCP goodput",
        "Mbit/s",
        Better::Higher,
        "/scp/goodput_mbps",
    ),
    m("scp_requests", "SCP requests", "", Better::None, "/scp/requests"),
    m("scp_retries", "SCP resends", "", Better::Lower, "/scp/retries"),
    m("scp_timeouts", "SCP timeouts", "", Better::Lower, "/scp/timeouts"),
    m("scp_failures", "SCP failures", "", Better::Lower, "/scp/failures"),
];

/// The metrics the report charts when the sweep file does not say.
pub const DEFAULT_REPORT: &[&str] = &[
    "wait_mean_s",
    "wait_p95_s",
    "mean_bounded_slowdown",
    "utilisation",
    "scp_goodput_mbps",
];

/// The metric of that name.
pub fn find(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

/// A metric's value in a run's summary (`None` where the run has none).
pub fn value(summary: &serde_json::Value, m: &Metric) -> Option<f64> {
    summary.pointer(m.pointer)?.as_f64().filter(|v| v.is_finite())
}
