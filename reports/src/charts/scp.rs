//! `scp.{png,svg}` (packet-level runs only): SCP goodput over time, below it the requests sent
//! per sample period, and below that the resends, timeouts and failed requests. A panel whose
//! values are all zero says so ("no user data moved"), so the chart is never an empty frame.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::data::{RunData, ScpRow};
use crate::format;
use crate::style::*;

/// Draws a panel of time series; `quiet` is written across it when every value is zero (so a
/// run with nothing to show never looks like an empty frame).
#[allow(clippy::too_many_arguments)]
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    axis: &TimeAxis,
    x_end: f64,
    lines: &[TimeSeries],
    y_desc: &str,
    bottom: bool,
    faults: &[crate::data::FaultSummary],
    quiet: &str,
) -> Result<()> {
    let y_max = lines.iter().map(TimeSeries::shown_max).fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .margin_left(10)
        .margin_right(30)
        .margin_top(6)
        .margin_bottom(if bottom { 8 } else { 0 })
        .x_label_area_size(if bottom { 64 } else { 12 })
        .y_label_area_size(96)
        .build_cartesian_2d(0.0..x_end, 0.0..y_end(y_max))
        .ok_draw()?;
    let mut mesh = chart.configure_mesh();
    mesh.bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .x_labels(10)
        .y_labels(5)
        .y_label_formatter(&|v| format::tick(*v))
        .y_desc(y_desc)
        .label_style(text(TICK_PX))
        .axis_desc_style(text(AXIS_DESC_PX));
    let label = axis.label();
    if bottom {
        mesh.x_label_formatter(&|v| format::tick(*v)).x_desc(label.as_str());
    } else {
        mesh.x_label_formatter(&|_| String::new());
    }
    mesh.draw().ok_draw()?;
    if lines.iter().all(|l| l.points.is_empty()) {
        return centre_note(&chart.plotting_area().strip_coord_spec(), "no data");
    }
    draw_faults(&mut chart, axis, x_end, y_end(y_max), faults, !bottom, false)?;
    for l in lines {
        draw_time_series(&mut chart, l, x_end)?;
    }
    if y_max <= 0.0 && !quiet.is_empty() {
        centre_note(&chart.plotting_area().strip_coord_spec(), quiet)?;
    }
    Ok(())
}

fn span(rows: &[ScpRow], run: &RunData) -> f64 {
    run.duration_s().max(rows.iter().map(|r| r.t_s).fold(0.0, f64::max))
}

pub struct Scp<'a> {
    pub run: &'a RunData,
    pub rows: &'a [ScpRow],
}

impl Chart for Scp<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let span = span(self.rows, self.run);
        let axis = TimeAxis::for_span(span);
        let x_end = axis.end(span);
        let sub = match &self.run.summary.scp {
            Some(s) => {
                let n = |v: Option<u64>, word: &str| match v {
                    Some(1) => format!("1 {word}"),
                    Some(v) => format!("{} {word}s", format::grouped(v)),
                    None => format!("– {word}s"),
                };
                format!(
                    "{} · {} · {} · {} · goodput while transferring {} Mbit/s",
                    n(s.requests, "request"),
                    n(s.retries, "retry").replace("retrys", "retries"),
                    n(s.timeouts, "timeout"),
                    n(s.failures, "failure"),
                    s.goodput_mbps.map_or("–".to_string(), format::sig3)
                )
            }
            None => String::new(),
        };
        let area = header(root, &format!("SCP traffic — {}", self.run.name()), &sub)?;
        let mut items = vec![
            (
                Key::Line(OI_BLUE),
                "user data moved (mean over each sample period)".to_string(),
            ),
            (Key::Line(OI_GREEN), "requests sent".to_string()),
            (Key::Line(OI_ORANGE), "retries (resends)".to_string()),
            (Key::Line(OI_PURPLE), "timeouts".to_string()),
            (Key::Line(OI_BLACK), "failed requests".to_string()),
        ];
        if self.rows.len() > DENSE {
            items.push((Key::Swatch(tint(GREY_TEXT, 0.25)), "min–max per time slice".to_string()));
        }
        let faults = &self.run.summary.faults;
        if !faults.is_empty() {
            items.push((
                Key::Fault,
                "fault: strikes at the dashed line, shaded while it lasts".to_string(),
            ));
        }
        let (w, _) = area.dim_in_pixel();
        let (leg, area) = area.split_vertically(legend_height(&area, &items, w));
        legend_strip(&leg, &items)?;
        let (_, h) = area.dim_in_pixel();
        let third = h.saturating_sub(58) / 3;
        let (top, rest) = area.split_vertically(third);
        let (middle, bottom) = rest.split_vertically(third);
        let end = axis.to_unit(span);
        let t = |f: fn(&ScpRow) -> f64, colour: RGBColor| TimeSeries {
            points: self.rows.iter().map(|r| (axis.to_unit(r.t_s), f(r).max(0.0))).collect(),
            end,
            style: SeriesStyle::line(colour),
        };
        panel(
            &top,
            &axis,
            x_end,
            &[t(|r| r.goodput_mbps, OI_BLUE)],
            "user data (Mbit/s)",
            false,
            faults,
            "no user data moved",
        )?;
        panel(
            &middle,
            &axis,
            x_end,
            &[t(|r| r.requests, OI_GREEN)],
            "requests / period",
            false,
            faults,
            "no requests sent",
        )?;
        let lines = [
            t(|r| r.retries, OI_ORANGE),
            t(|r| r.timeouts, OI_PURPLE),
            t(|r| r.failures, OI_BLACK),
        ];
        panel(
            &bottom,
            &axis,
            x_end,
            &lines,
            "events / period",
            true,
            faults,
            "no retries, timeouts or failed requests",
        )
    }
}

/// `compare`'s version: goodput, retries and timeouts in three panels, a line per run.
pub struct ScpCompare<'a> {
    pub runs: &'a [(String, RunData)],
}

impl Chart for ScpCompare<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        fn rows(r: &RunData) -> &[ScpRow] {
            r.scp.as_deref().unwrap_or(&[])
        }
        let span_all = self.runs.iter().map(|(_, r)| span(rows(r), r)).fold(0.0, f64::max);
        let axis = TimeAxis::for_span(span_all);
        let x_end = axis.end(span_all);
        let (bin_s, bin_name) = mean_bin(span_all);
        let bin = axis.to_unit(bin_s);
        let sub = self
            .runs
            .iter()
            .map(|(n, r)| match r.summary.scp.as_ref().and_then(|s| s.goodput_mbps) {
                Some(g) => format!("{n}: {} Mbit/s", format::sig3(g)),
                None => format!("{n}: –"),
            })
            .collect::<Vec<_>>()
            .join("  ·  ");
        let area = header(root, "SCP traffic", &format!("goodput while transferring:  {sub}"))?;
        let items: Vec<(Key, String)> = self
            .runs
            .iter()
            .enumerate()
            .map(|(i, (n, r))| {
                let rs = rows(r);
                let end = axis.to_unit(span(rs, r));
                let label = match (&r.scp, rs.first()) {
                    (None, _) => format!("{n} (no scp.csv)"),
                    (Some(_), Some(first)) if binned(rs.len(), axis.to_unit(first.t_s), end, bin) => {
                        format!("{n} ({bin_name} means)")
                    }
                    _ => n.clone(),
                };
                (Key::Line(series_colour(i)), label)
            })
            .collect();
        let (w, _) = area.dim_in_pixel();
        let (leg, area) = area.split_vertically(legend_height(&area, &items, w));
        legend_strip(&leg, &items)?;
        let (_, h) = area.dim_in_pixel();
        let (top, rest) = area.split_vertically((h - 56) / 3);
        let (middle, bottom) = rest.split_vertically((h - 56) / 3);
        let n = self.runs.len();
        let series = |f: fn(&ScpRow) -> f64| -> Vec<TimeSeries> {
            self.runs
                .iter()
                .enumerate()
                .map(|(i, (_, r))| TimeSeries {
                    points: rows(r).iter().map(|s| (axis.to_unit(s.t_s), f(s).max(0.0))).collect(),
                    end: axis.to_unit(span(rows(r), r)),
                    style: SeriesStyle {
                        stroke: run_stroke(i, n),
                        band: false,
                        mean_bin: Some(bin),
                        ..SeriesStyle::line(series_colour(i))
                    },
                })
                .collect()
        };
        panel(
            &top,
            &axis,
            x_end,
            &series(|r| r.goodput_mbps),
            "user data (Mbit/s)",
            false,
            &[],
            "no user data moved",
        )?;
        panel(
            &middle,
            &axis,
            x_end,
            &series(|r| r.retries),
            "retries / period",
            false,
            &[],
            "no retries",
        )?;
        panel(
            &bottom,
            &axis,
            x_end,
            &series(|r| r.timeouts),
            "timeouts / period",
            true,
            &[],
            "no timeouts",
        )
    }
}
