//! Readers for a run's output files (`docs/outputs.md`).
//!
//! CSV files are read into the row types the simulator writes them from
//! (`spinnbed_outputs::rows`), then turned into what the charts draw. Every reader names the
//! file — and for CSV the line and column — of anything it cannot use, and none of them panics
//! on odd input: unknown columns are ignored, empty optional fields are `None`, numbers must be
//! finite.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use spinnbed_outputs::rows;

/// Malformed or unreadable input, naming the file (and for CSV files the line).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but its content is not what `docs/outputs.md` describes.
    #[error("{path}: line {line}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong, naming the column where known.
        message: String,
    },
}

impl InputError {
    pub(crate) fn malformed(path: &Path, line: u64, message: impl Into<String>) -> Self {
        InputError::Malformed {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

/// `summary.json`. Every field is optional so that older or partial summaries still render
/// (a missing value shows as "–").
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Summary {
    pub scenario: Option<String>,
    pub seed: Option<serde_json::Value>,
    pub policy: Option<serde_json::Value>,
    pub horizon_s: Option<f64>,
    pub end_s: Option<f64>,
    pub makespan_s: Option<f64>,
    pub jobs: Option<u64>,
    pub started: Option<u64>,
    pub completed: Option<u64>,
    pub cancelled: Option<u64>,
    pub timed_out: Option<u64>,
    pub failed: Option<u64>,
    pub never_started: Option<u64>,
    pub live_boards: Option<u64>,
    pub dead_boards: Option<u64>,
    pub utilisation_window_s: Option<f64>,
    pub utilisation: Option<f64>,
    pub powered_utilisation: Option<f64>,
    pub board_hours_allocated: Option<f64>,
    pub board_hours_powered: Option<f64>,
    pub wait_s: Option<WaitSummary>,
    pub mean_bounded_slowdown: Option<f64>,
    pub classes: Vec<ClassSummary>,
    pub machines: Vec<MachineSummary>,
    pub scp: Option<ScpSummary>,
    pub faults: Vec<FaultSummary>,
    pub live: Option<LiveSummary>,
}

/// `summary.json` `live` (runs with live output only).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LiveSummary {
    pub jobs: Option<u64>,
    pub sent: Option<u64>,
    pub delivered: Option<u64>,
    pub dropped: Option<u64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
}

/// One entry of `summary.json` `faults`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FaultSummary {
    pub at_s: f64,
    pub until_s: Option<f64>,
    pub kind: String,
    pub what: String,
}

/// `summary.json` `wait_s`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WaitSummary {
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// One entry of `summary.json` `classes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ClassSummary {
    pub class: String,
    pub jobs: Option<u64>,
    pub started: Option<u64>,
    pub mean_wait_s: Option<f64>,
    pub p50_wait_s: Option<f64>,
    pub p95_wait_s: Option<f64>,
}

/// One entry of `summary.json` `machines`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MachineSummary {
    pub name: String,
    pub live_boards: Option<u64>,
    pub dead_boards: Option<u64>,
    pub utilisation: Option<f64>,
    /// Boards the health policy took out of service, `[x, y, z]`.
    pub retired_boards: Vec<[u32; 3]>,
}

/// `summary.json` `scp` (packet-level runs only).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ScpSummary {
    pub requests: Option<u64>,
    pub retries: Option<u64>,
    pub timeouts: Option<u64>,
    pub failures: Option<u64>,
    pub bytes: Option<u64>,
    pub goodput_mbps: Option<f64>,
}

/// The columns of `jobs.csv` the report uses.
#[derive(Debug, Clone)]
pub struct Job {
    pub class: String,
    pub wait_s: Option<f64>,
    pub outcome: String,
}

/// One row of `timeline.csv`, as the charts draw it.
#[derive(Debug, Clone, Copy)]
pub struct TimelineRow {
    pub t_s: f64,
    pub queued: f64,
    pub running: f64,
    pub allocated_boards: f64,
    pub powered_boards: f64,
    pub idle_boards: f64,
    pub dead_boards: f64,
}

/// The six board links, in hardware order (east = 0 … south = 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Link {
    East,
    NorthEast,
    North,
    West,
    SouthWest,
    South,
}

impl Link {
    fn parse(s: &str) -> Option<Link> {
        let s = s.trim().to_ascii_lowercase().replace('-', "_");
        Some(match s.as_str() {
            "east" | "e" | "0" => Link::East,
            "north_east" | "northeast" | "ne" | "1" => Link::NorthEast,
            "north" | "n" | "2" => Link::North,
            "west" | "w" | "3" => Link::West,
            "south_west" | "southwest" | "sw" | "4" => Link::SouthWest,
            "south" | "s" | "5" => Link::South,
            _ => return None,
        })
    }
}

/// One row of `boards.csv`.
#[derive(Debug, Clone)]
pub struct Board {
    pub machine: String,
    pub x: u32,
    pub y: u32,
    pub z: u32,
    pub dead: bool,
    pub allocated_s: f64,
    pub powered_s: f64,
    pub dead_links: Vec<Link>,
}

/// One row of `scp.csv`, as the charts draw it.
#[derive(Debug, Clone, Copy)]
pub struct ScpRow {
    pub t_s: f64,
    pub requests: f64,
    pub retries: f64,
    pub timeouts: f64,
    pub failures: f64,
    pub bytes: f64,
    pub goodput_mbps: f64,
}

/// One row of the SCP windowing study file.
pub use spinnbed_outputs::rows::WindowingRow;

/// One row of `live.csv`.
pub use spinnbed_outputs::rows::LiveRow;

/// Everything the report needs from one run directory.
#[derive(Debug, Clone)]
pub struct RunData {
    pub dir: PathBuf,
    pub summary: Summary,
    pub jobs: Vec<Job>,
    pub timeline: Vec<TimelineRow>,
    pub boards: Vec<Board>,
    /// `None` when the run has no `scp.csv`.
    pub scp: Option<Vec<ScpRow>>,
    /// `None` when the run has no `live.csv` (no live output).
    pub live: Option<Vec<LiveRow>>,
}

impl RunData {
    /// Reads `summary.json`, `jobs.csv`, `timeline.csv`, `boards.csv` and, if present, `scp.csv`
    /// and `live.csv`.
    pub fn load(dir: &Path) -> Result<RunData, InputError> {
        let summary = read_summary(&dir.join("summary.json"))?;
        let jobs: Vec<Job> = read_csv_with(&dir.join("jobs.csv"), |record, headers| {
            let j: rows::JobRow<&str> = record.deserialize(Some(headers))?;
            Ok(Job {
                class: j.class.to_string(),
                wait_s: j.wait_s.map(rows::Secs::as_f64),
                outcome: j.outcome.to_string(),
            })
        })?;
        let timeline: Vec<TimelineRow> = read_csv(&dir.join("timeline.csv"), |_: &rows::TimelineRow| Ok(()))?
            .into_iter()
            .map(|r| TimelineRow {
                t_s: r.t_s.as_f64(),
                queued: r.queued as f64,
                running: r.running as f64,
                allocated_boards: r.allocated_boards as f64,
                powered_boards: r.powered_boards as f64,
                idle_boards: r.idle_boards as f64,
                dead_boards: r.dead_boards as f64,
            })
            .collect();
        let boards = read_boards(&dir.join("boards.csv"))?;
        let scp_path = dir.join("scp.csv");
        let scp = if scp_path.is_file() {
            let rows = read_csv(&scp_path, |r: &rows::ScpRow| {
                finite(&[("goodput_mbps", r.goodput_mbps)])
            })?;
            Some(
                rows.into_iter()
                    .map(|r| ScpRow {
                        t_s: r.t_s.as_f64(),
                        requests: r.requests as f64,
                        retries: r.retries as f64,
                        timeouts: r.timeouts as f64,
                        failures: r.failures as f64,
                        bytes: r.bytes as f64,
                        goodput_mbps: r.goodput_mbps,
                    })
                    .collect(),
            )
        } else {
            None
        };
        let live_path = dir.join("live.csv");
        let live = if live_path.is_file() {
            Some(read_csv(&live_path, |r: &LiveRow| {
                finite(&[
                    ("latency_p50_ms", r.latency_p50_ms.unwrap_or(0.0)),
                    ("latency_p99_ms", r.latency_p99_ms.unwrap_or(0.0)),
                    ("latency_max_ms", r.latency_max_ms.unwrap_or(0.0)),
                ])
            })?)
        } else {
            None
        };
        Ok(RunData {
            dir: dir.to_path_buf(),
            summary,
            jobs,
            timeline,
            boards,
            scp,
            live,
        })
    }

    /// The scenario name (or "run" when the summary has none).
    pub fn name(&self) -> String {
        match &self.summary.scenario {
            Some(s) if !s.trim().is_empty() => s.clone(),
            _ => "run".to_string(),
        }
    }

    /// Length of the run in seconds: `end_s` if given, else the latest time seen in the data;
    /// never zero.
    pub fn duration_s(&self) -> f64 {
        if let Some(e) = self.summary.end_s.filter(|e| e.is_finite() && *e > 0.0) {
            return e;
        }
        let mut d = 0.0f64;
        d = d.max(self.summary.makespan_s.unwrap_or(0.0));
        d = d.max(self.timeline.iter().map(|r| r.t_s).fold(0.0, f64::max));
        if let Some(scp) = &self.scp {
            d = d.max(scp.iter().map(|r| r.t_s).fold(0.0, f64::max));
        }
        d = d.max(
            self.boards
                .iter()
                .map(|b| b.allocated_s.max(b.powered_s))
                .fold(0.0, f64::max),
        );
        if d.is_finite() && d > 0.0 { d } else { 1.0 }
    }

    /// The window board use is measured over (`utilisation_window_s` of `summary.json`: first
    /// submission to last release); the run's length for summaries that lack it. Never zero.
    pub fn utilisation_window_s(&self) -> f64 {
        match self.summary.utilisation_window_s {
            Some(w) if w.is_finite() && w > 0.0 => w,
            _ => self.duration_s(),
        }
    }

    /// Total board positions (live + dead) over all machines.
    pub fn total_boards(&self) -> f64 {
        if !self.boards.is_empty() {
            return self.boards.len() as f64;
        }
        match (self.summary.live_boards, self.summary.dead_boards) {
            (Some(l), d) => (l + d.unwrap_or(0)) as f64,
            _ => 0.0,
        }
    }

    /// Machine names: those of `boards.csv` in order of first appearance, then any only named in
    /// the summary.
    pub fn machine_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for b in &self.boards {
            if names.last() != Some(&b.machine) && !names.contains(&b.machine) {
                names.push(b.machine.clone());
            }
        }
        for m in &self.summary.machines {
            if !names.contains(&m.name) {
                names.push(m.name.clone());
            }
        }
        names
    }
}

fn finite(fields: &[(&str, f64)]) -> Result<(), String> {
    for (name, v) in fields {
        if !v.is_finite() {
            return Err(format!("column `{name}`: {v} is not a finite number"));
        }
    }
    Ok(())
}

/// Reads `summary.json`.
pub fn read_summary(path: &Path) -> Result<Summary, InputError> {
    let text = fs::read_to_string(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| InputError::malformed(path, e.line() as u64, e.to_string()))
}

/// Reads a headed CSV file into rows of `T`, checking each row with `check`.
pub fn read_csv<T: DeserializeOwned>(
    path: &Path,
    check: impl Fn(&T) -> Result<(), String>,
) -> Result<Vec<T>, InputError> {
    read_csv_with(path, |record, headers| {
        let row: T = record.deserialize(Some(headers))?;
        check(&row).map_err(RowError::Check)?;
        Ok(row)
    })
}

/// Why a CSV record could not be used.
#[derive(Debug)]
pub enum RowError {
    /// It does not fit the row type.
    Csv(csv::Error),
    /// It fits, but a value is out of range (the message names the column).
    Check(String),
}

impl From<csv::Error> for RowError {
    fn from(e: csv::Error) -> RowError {
        RowError::Csv(e)
    }
}

/// Reads a headed CSV file, turning each record into a `T` with `decode` (given the record and
/// the header); the first error is named by file, line and column.
pub fn read_csv_with<T>(
    path: &Path,
    mut decode: impl FnMut(&csv::StringRecord, &csv::StringRecord) -> Result<T, RowError>,
) -> Result<Vec<T>, InputError> {
    let bytes = fs::read(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(&bytes[..]);
    let headers = rdr.headers().map_err(|e| csv_error(path, &e, None))?.clone();
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(path, &e, None)),
        }
        let row = decode(&record, &headers).map_err(|e| match e {
            RowError::Csv(e) => csv_error(path, &e, Some((&headers, &record))),
            RowError::Check(m) => InputError::malformed(path, record.position().map_or(0, |p| p.line()), m),
        })?;
        out.push(row);
    }
    Ok(out)
}

/// A CSV error naming the column where it can: the deserializer's field, or else (for the row
/// types' own checks, whose messages quote the value, e.g. `"NaN" is not a time in seconds`)
/// the column holding the quoted value.
pub(crate) fn csv_error(
    path: &Path,
    e: &csv::Error,
    row: Option<(&csv::StringRecord, &csv::StringRecord)>,
) -> InputError {
    let line = e.position().map_or(1, |p| p.line());
    let message = match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => {
            let quoted = |v: &str| err.kind().to_string().contains(&format!("{v:?}"));
            let column = row.and_then(|(headers, record)| match err.field() {
                Some(i) => headers.get(i as usize),
                None => record
                    .iter()
                    .position(|v| !v.is_empty() && quoted(v))
                    .and_then(|i| headers.get(i)),
            });
            match column {
                Some(c) => format!("column `{c}`: {}", err.kind()),
                None => err.kind().to_string(),
            }
        }
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("{len} fields where the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "invalid UTF-8".to_string(),
        _ => e.to_string(),
    };
    InputError::malformed(path, line, message)
}

fn read_boards(path: &Path) -> Result<Vec<Board>, InputError> {
    let raw: Vec<rows::BoardRow> = read_csv(path, |r: &rows::BoardRow| {
        if r.z > 2 {
            return Err(format!("column `z`: {} is not 0, 1 or 2", r.z));
        }
        for l in r.dead_links.split(';').filter(|l| !l.trim().is_empty()) {
            if Link::parse(l).is_none() {
                return Err(format!("column `dead_links`: unknown link {l:?}"));
            }
        }
        Ok(())
    })?;
    Ok(raw
        .into_iter()
        .map(|r| {
            let mut dead_links: Vec<Link> = r.dead_links.split(';').filter_map(Link::parse).collect();
            dead_links.sort();
            dead_links.dedup();
            Board {
                machine: r.machine,
                x: r.x.into(),
                y: r.y.into(),
                z: r.z.into(),
                dead: r.dead.0,
                allocated_s: r.allocated_s.as_f64(),
                powered_s: r.powered_s.as_f64(),
                dead_links,
            }
        })
        .collect())
}

/// Reads the SCP windowing study file.
pub fn read_windowing(path: &Path) -> Result<Vec<WindowingRow>, InputError> {
    read_csv(path, |r: &WindowingRow| {
        finite(&[
            ("loss", r.loss),
            ("rtt_ms", r.rtt_ms),
            ("goodput_mbps", r.goodput_mbps),
            ("bound_mbps", r.bound_mbps),
        ])
    })
}
