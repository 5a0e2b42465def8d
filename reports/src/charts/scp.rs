//! `scp.{png,svg}` (packet-level runs only): SCP goodput over time, and below it the resends,
//! timeouts and failed requests per sample period.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::data::{RunData, ScpRow};
use crate::format;
use crate::style::*;

/// One line of a panel: points and style.
type Line = (Vec<(f64, f64)>, SeriesStyle);

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    axis: &TimeAxis,
    x_end: f64,
    lines: &[Line],
    y_desc: &str,
    bottom: bool,
    faults: &[crate::data::FaultSummary],
) -> Result<()> {
    let y_max = lines.iter().flat_map(|l| l.0.iter().map(|p| p.1)).fold(0.0, f64::max);
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
    if lines.iter().all(|l| l.0.is_empty()) {
        return centre_note(&chart.plotting_area().strip_coord_spec(), "no data");
    }
    draw_faults(&mut chart, axis, x_end, y_end(y_max), faults, !bottom, false)?;
    for (pts, style) in lines {
        draw_time_series(&mut chart, pts, x_end, *style)?;
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
            (Key::Line(OI_ORANGE), "retries (resends)".to_string()),
            (Key::Line(OI_PURPLE), "timeouts".to_string()),
            (Key::Line(OI_BLACK), "failed requests".to_string()),
        ];
        if self.rows.len() > DENSE {
            items.push((Key::Swatch(tint(OI_BLUE, 0.25)), "min–max per time slice".to_string()));
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
        let (top, bottom) = area.split_vertically(h / 2 - 20);
        let t = |f: fn(&ScpRow) -> f64| -> Vec<(f64, f64)> {
            self.rows.iter().map(|r| (axis.to_unit(r.t_s), f(r).max(0.0))).collect()
        };
        panel(
            &top,
            &axis,
            x_end,
            &[(t(|r| r.goodput_mbps), SeriesStyle::line(OI_BLUE))],
            "user data (Mbit/s)",
            false,
            faults,
        )?;
        let lines = [
            (t(|r| r.retries), SeriesStyle::line(OI_ORANGE)),
            (t(|r| r.timeouts), SeriesStyle::line(OI_PURPLE)),
            (t(|r| r.failures), SeriesStyle::line(OI_BLACK)),
        ];
        panel(&bottom, &axis, x_end, &lines, "events per sample period", true, faults)
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
        let span = self.runs.iter().map(|(_, r)| span(rows(r), r)).fold(0.0, f64::max);
        let axis = TimeAxis::for_span(span);
        let x_end = axis.end(span);
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
                let label = if r.scp.is_some() {
                    n.clone()
                } else {
                    format!("{n} (no scp.csv)")
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
        let series = |f: fn(&ScpRow) -> f64| -> Vec<Line> {
            self.runs
                .iter()
                .enumerate()
                .map(|(i, (_, r))| {
                    let style = SeriesStyle {
                        stroke: run_stroke(i, n),
                        band: false,
                        ..SeriesStyle::line(series_colour(i))
                    };
                    (
                        rows(r).iter().map(|s| (axis.to_unit(s.t_s), f(s).max(0.0))).collect(),
                        style,
                    )
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
        )?;
        panel(
            &middle,
            &axis,
            x_end,
            &series(|r| r.retries),
            "retries / period",
            false,
            &[],
        )?;
        panel(
            &bottom,
            &axis,
            x_end,
            &series(|r| r.timeouts),
            "timeouts / period",
            true,
            &[],
        )
    }
}
