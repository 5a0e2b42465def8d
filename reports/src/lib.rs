//! spinnbed-reports: charts (PNG and SVG, 1200 × 800) and a static HTML page for a run's output
//! files (`docs/outputs.md`), a side-by-side comparison of several runs, the SCP windowing
//! study chart, and the report of a parameter sweep (`generate_sweep`).
//!
//! Reads plain files only; needs no system fonts (DejaVu Sans is embedded) and no network. All
//! charts use colour-blind-safe palettes (Okabe–Ito for categories, viridis for magnitudes).
//!
//! ```no_run
//! let summary = spinnbed_reports::generate(std::path::Path::new("out/busy-week"))?;
//! for f in &summary.files {
//!     println!("{}", f.display());
//! }
//! # Ok::<(), anyhow::Error>(())
//! ```
#![forbid(unsafe_code)]

mod charts;
pub mod data;
pub mod format;
pub mod html;
pub mod stats;
mod style;
pub mod sweep;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use charts::live::Live;
use charts::machine::{BoardsCompare, MachineMap};
use charts::scp::{Scp, ScpCompare};
use charts::sweep::SweepChart;
use charts::utilisation::{Utilisation, UtilisationCompare};
use charts::waits::{Waits, WaitsCompare};
use charts::windowing::{Windowing, WindowingWinners};
pub use data::{InputError, RunData};
use html::Figure;
use style::render;
pub use sweep::Sweep;

/// What a report wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportSummary {
    /// Every file written, in a fixed order: each chart's PNG then SVG, then `index.html`.
    pub files: Vec<PathBuf>,
}

/// Writes `run_dir/report/`: `utilisation`, `waits`, one `machine_<name>` per machine, (when
/// the run has `live.csv`) `live` and (when it has `scp.csv`) `scp`, each as PNG and SVG, and
/// `index.html`.
///
/// Reads `summary.json`, `jobs.csv`, `timeline.csv` and `boards.csv` (all required) and
/// `scp.csv` and `live.csv` (optional). Malformed input is an error naming the file and line.
pub fn generate(run_dir: &Path) -> Result<ReportSummary> {
    if let Some(summary) = study_summary(run_dir) {
        return generate_study(run_dir, &summary);
    }
    let run = RunData::load(run_dir)?;
    let files = write_atomically(&run_dir.join("report"), |_| true, |out| write_run_report(&run, out))?;
    Ok(ReportSummary { files })
}

/// Writes a directory through [`spinnbed_outputs::dir`]: into a temporary directory beside `dest`,
/// swapped in whole, so that a report that fails half-way leaves the previous one (or none),
/// never a partial one. Returns the files as they are named once in place.
fn write_atomically(
    dest: &Path,
    is_earlier: impl Fn(&Path) -> bool,
    write: impl FnOnce(&Path) -> Result<Vec<PathBuf>>,
) -> Result<Vec<PathBuf>> {
    let staged = spinnbed_outputs::dir::stage(dest, is_earlier)?;
    let tmp = staged.path().to_path_buf();
    let files = write(&tmp)?;
    staged.commit()?;
    Ok(files
        .into_iter()
        .map(|f| dest.join(f.strip_prefix(&tmp).unwrap_or(&f)))
        .collect())
}

/// Writes a run's charts and `index.html` into `out`; returns the files written.
fn write_run_report(run: &RunData, out: &Path) -> Result<Vec<std::path::PathBuf>> {
    let out = out.to_path_buf();
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut files = Vec::new();
    let mut figs = Vec::new();

    render(&Utilisation { run }, &out, "utilisation", &mut files)?;
    figs.push(Figure {
        stem: "utilisation".into(),
        alt: "Stacked area chart of allocated, powered, idle and dead boards over time, with the queue length below"
            .into(),
        caption: "Boards allocated, powered but not allocated, idle and dead over time; queued jobs below.".into(),
    });
    render(&Waits { run }, &out, "waits", &mut files)?;
    figs.push(Figure {
        stem: "waits".into(),
        alt: "Cumulative distribution of wait times per size class".into(),
        caption: "Share of started jobs that waited at most t, per size class (mean ●, 95th percentile ▲).".into(),
    });
    let mut stems: Vec<String> = Vec::new();
    for name in run.machine_names() {
        let mut stem = charts::machine::file_stem(&name);
        if stems.contains(&stem) {
            stem = format!("{stem}_{}", stems.len() + 1);
        }
        render(&MachineMap { run, machine: &name }, &out, &stem, &mut files)?;
        figs.push(Figure {
            stem: stem.clone(),
            alt: format!("Map of machine {name}: boards coloured by how long they were allocated"),
            caption: format!(
                "Machine {name}: share of the time (first submission to last release) each board was allocated; dead boards black with a cross, dead links vermillion, boards retired by the health policy framed in black."
            ),
        });
        stems.push(stem);
    }
    if let Some(rows) = &run.live {
        render(&Live { run, rows }, &out, "live", &mut files)?;
        figs.push(Figure {
            stem: "live".into(),
            alt: "Per streaming job: events delivered and dropped, and latency percentiles".into(),
            caption: "Live output per streaming job: events delivered and dropped (top); latency from the board sending to the host receiving, median and 99th percentile with the maximum as a whisker (bottom).".into(),
        });
    }
    if let Some(rows) = &run.scp {
        render(&Scp { run, rows }, &out, "scp", &mut files)?;
        figs.push(Figure {
            stem: "scp".into(),
            alt: "SCP goodput, requests, retries and timeouts over time".into(),
            caption: "SCP goodput per sample period; requests sent, then retries, timeouts and failed requests below."
                .into(),
        });
    }
    let index = out.join("index.html");
    fs::write(&index, html::run_index(run, &figs)).with_context(|| format!("writing {}", index.display()))?;
    files.push(index);
    Ok(files)
}

/// Names for the runs of a comparison: the scenario, with the directory name added where two
/// runs share a scenario name (and a number if that is still ambiguous).
fn run_names(runs: &[RunData]) -> Vec<String> {
    let base: Vec<String> = runs.iter().map(RunData::name).collect();
    let mut names: Vec<String> = base
        .iter()
        .zip(runs)
        .map(|(b, r)| {
            if base.iter().filter(|x| *x == b).count() > 1 {
                let dir = r
                    .dir
                    .file_name()
                    .map(|d| d.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if dir.is_empty() || dir == *b {
                    b.clone()
                } else {
                    format!("{b} ({dir})")
                }
            } else {
                b.clone()
            }
        })
        .collect();
    let first = names.clone();
    for (i, name) in names.iter_mut().enumerate() {
        if first.iter().filter(|n| *n == name).count() > 1 {
            *name = format!("{name} #{}", i + 1);
        }
    }
    names
}

/// Writes `out_dir/` with the charts of several runs overlaid (one colour per run: allocated
/// boards and queue over time, waits per class, how evenly boards were used, and SCP traffic if
/// any run has it) and `index.html` with the summary metrics side by side and the differences
/// from the first run.
pub fn compare(run_dirs: &[PathBuf], out_dir: &Path) -> Result<()> {
    if run_dirs.is_empty() {
        bail!("compare needs at least one run directory");
    }
    let loaded: Vec<RunData> = run_dirs.iter().map(|d| RunData::load(d)).collect::<Result<_, _>>()?;
    let runs: Vec<(String, RunData)> = run_names(&loaded).into_iter().zip(loaded).collect();
    let is_earlier = |d: &Path| d.join("index.html").is_file();
    write_atomically(out_dir, is_earlier, |out_dir| compare_into(&runs, out_dir))?;
    Ok(())
}

/// Writes a comparison's charts and `index.html` into `out_dir`; returns the files written.
fn compare_into(runs: &[(String, RunData)], out_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut figs = Vec::new();
    render(&UtilisationCompare { runs }, out_dir, "utilisation", &mut files)?;
    figs.push(Figure {
        stem: "utilisation".into(),
        alt: "Allocated share of live boards and queue length over time, one line per run".into(),
        caption: "Allocated boards as a share of live boards, and queued jobs, per run.".into(),
    });
    render(&WaitsCompare { runs }, out_dir, "waits", &mut files)?;
    figs.push(Figure {
        stem: "waits".into(),
        alt: "Cumulative distributions of wait times, per class, one line per run".into(),
        caption: "Share of started jobs that waited at most t: all jobs, then per size class.".into(),
    });
    render(&BoardsCompare { runs }, out_dir, "boards", &mut files)?;
    figs.push(Figure {
        stem: "boards".into(),
        alt: "Per-board allocated time, sorted, one line per run".into(),
        caption: "Every live board's allocated share of the time (first submission to last release), busiest first."
            .into(),
    });
    if runs.iter().any(|(_, r)| r.scp.is_some()) {
        render(&ScpCompare { runs }, out_dir, "scp", &mut files)?;
        figs.push(Figure {
            stem: "scp".into(),
            alt: "SCP goodput, retries and timeouts over time, per run".into(),
            caption: "SCP goodput per run; retries (solid) and timeouts (dashed) below.".into(),
        });
    }
    let index = out_dir.join("index.html");
    fs::write(&index, html::compare_index(runs, &figs)).with_context(|| format!("writing {}", index.display()))?;
    files.push(index);
    Ok(files)
}

/// The summary of a study directory (`summary.json` with a `"study"` key), if `dir` is one.
fn study_summary(dir: &Path) -> Option<serde_json::Value> {
    let text = fs::read_to_string(dir.join("summary.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("study").is_some().then_some(v)
}

/// Writes a study directory's `report/`: the windowing charts (PNG, SVG) and `index.html` with
/// the verdict, the winner of each network condition, what pacing did and every cell.
pub fn generate_study(dir: &Path, summary: &serde_json::Value) -> Result<ReportSummary> {
    let csv = dir.join("scp.csv");
    let rows = data::read_windowing(&csv)?;
    let files = write_atomically(&dir.join("report"), |_| true, |out| study_report(summary, &rows, out))?;
    Ok(ReportSummary { files })
}

/// A network condition's name as part of a file name: ASCII letters, digits, `-` and `_` kept,
/// anything else `_`.
fn file_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Draws a study's charts into `out`: `windowing` (the first network condition),
/// `windowing-<i>-<condition>` for each further one, and `windowing-winners`; returns their
/// figures.
fn study_charts(rows: &[data::WindowingRow], out: &Path, files: &mut Vec<PathBuf>) -> Result<Vec<Figure>> {
    let nets = charts::windowing::networks(rows);
    let mut figs = Vec::new();
    let first = nets.first().copied();
    render(
        &Windowing {
            rows,
            network: if nets.len() > 1 { first } else { None },
        },
        out,
        "windowing",
        files,
    )?;
    let about = |net: Option<&str>| match net {
        Some(n) if nets.len() > 1 => format!(" (network condition \"{n}\")"),
        _ => String::new(),
    };
    figs.push(Figure {
        stem: "windowing".into(),
        alt: format!(
            "Goodput against packet loss for each SCP policy and round-trip time{}, with the bound of a window of 8",
            about(first)
        ),
        caption: format!(
            "Goodput of bulk reads and writes against packet loss{}: colour is the policy, the marker the round-trip \
             time; dashed grey: the best any window of 8 could reach (SC&MP's service time and the frames' headers \
             included).",
            about(first)
        ),
    });
    for (i, net) in nets.iter().enumerate().skip(1) {
        let stem = format!("windowing-{i}-{}", file_part(net));
        render(
            &Windowing {
                rows,
                network: Some(net),
            },
            out,
            &stem,
            files,
        )?;
        figs.push(Figure {
            stem,
            alt: format!("Goodput against packet loss{}", about(Some(net))),
            caption: format!("As above, for the network condition \"{net}\"."),
        });
    }
    render(&WindowingWinners { rows }, out, "windowing-winners", files)?;
    figs.push(Figure {
        stem: "windowing-winners".into(),
        alt:
            "Each policy's geometric-mean goodput as a share of the best policy's, per network condition and operation"
                .into(),
        caption: "Which policy wins each network condition: geometric-mean goodput over the loss × RTT cells as a \
share of the best policy's (1 = the winner)."
            .into(),
    });
    Ok(figs)
}

/// Writes a study's charts and `index.html` into `out`; returns the files written.
fn study_report(summary: &serde_json::Value, rows: &[data::WindowingRow], out: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let figs = study_charts(rows, out, &mut files)?;
    let name = summary.get("scenario").and_then(|v| v.as_str()).unwrap_or("study");
    let index = out.join("index.html");
    fs::write(&index, html::windowing_index(name, summary, rows, &figs))
        .with_context(|| format!("writing {}", index.display()))?;
    files.push(index);
    Ok(files)
}

/// Draws the SCP windowing study (`scp.csv`: `network,policy,op,loss,rtt_ms,goodput_mbps,…`)
/// into `out_dir`: `windowing.{png,svg}` (goodput against loss, a line per (policy, RTT),
/// bounds dashed) for the first network condition, `windowing-<i>-<condition>` for the others
/// and `windowing-winners` (each policy's standing per condition).
pub fn windowing_chart(scp_study_csv: &Path, out_dir: &Path) -> Result<()> {
    let rows = data::read_windowing(scp_study_csv)?;
    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut files = Vec::new();
    study_charts(&rows, out_dir, &mut files)?;
    Ok(())
}

/// Writes a parameter sweep's report into `dir`, beside the `sweep.json` and `points.csv` it is
/// made from ([`sweep`] describes both): for each metric of `report_metrics` and each axis with two
/// or more values the chart `sweep-<metric>-vs-<axis>` (PNG and SVG; dots and other characters
/// unsafe in a file name become `_`), then `index.html` with the axes, the charts, the best
/// setting per metric (and which others are within noise of it) and every point.
///
/// Writes straight into `dir` (the caller stages it). Missing or malformed input, or a
/// `points.csv` that does not match `sweep.json`, is an error naming the file (and for the CSV
/// the line and column).
pub fn generate_sweep(dir: &Path) -> Result<ReportSummary> {
    let sweep = Sweep::load(dir)?;
    let mut files = Vec::new();
    let mut figs = Vec::new();
    for c in sweep.charts() {
        let chart = SweepChart {
            sweep: &sweep,
            metric: c.metric,
            axis: c.axis,
        };
        render(&chart, dir, &c.stem, &mut files)?;
        figs.push(sweep.figure(&c));
    }
    let index = dir.join("index.html");
    fs::write(&index, sweep::index(&sweep, &figs)).with_context(|| format!("writing {}", index.display()))?;
    files.push(index);
    Ok(ReportSummary { files })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dir: &str, scenario: &str) -> RunData {
        RunData {
            dir: PathBuf::from(dir),
            summary: data::Summary {
                scenario: Some(scenario.into()),
                ..Default::default()
            },
            jobs: vec![],
            timeline: vec![],
            boards: vec![],
            scp: None,
            live: None,
        }
    }

    #[test]
    fn names_are_disambiguated() {
        let names = run_names(&[run("out/a", "busy"), run("out/b", "busy"), run("out/c", "quiet")]);
        assert_eq!(names, ["busy (a)", "busy (b)", "quiet"]);
        let names = run_names(&[run("x/a", "busy"), run("y/a", "busy")]);
        assert_eq!(names, ["busy (a) #1", "busy (a) #2"]);
    }
}
