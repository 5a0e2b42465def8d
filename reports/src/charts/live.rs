//! `live.{png,svg}` (runs with live output only): one column per streaming job, in `jobs.csv`
//! order. Top: the events the host's listener received from its board; middle: the events lost
//! (on their own scale, so that a small loss still shows); bottom: latency from the board
//! sending to the listener receiving, median (●) and 99th percentile (▲) with a whisker up to
//! the maximum (on a log scale when it spans more than a factor of 30). Where latency was not
//! measured (real hardware: the boards' clocks are not the host's) the panel says so.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::data::{LiveRow, RunData};
use crate::format;
use crate::style::*;

pub struct Live<'a> {
    pub run: &'a RunData,
    pub rows: &'a [LiveRow],
}

/// The x-axis label of column `i`: the job's id when there are few enough columns to read them.
fn job_label(rows: &[LiveRow], v: f64) -> String {
    let i = v.floor();
    if i < 0.0 || (v - i - 0.5).abs() > 0.01 {
        return String::new();
    }
    rows.get(i as usize).map_or(String::new(), |r| r.id.to_string())
}

/// A count for an axis: `12 M`, `340 k`, `12`.
fn count_tick(v: f64) -> String {
    if v >= 1e6 {
        format!("{} M", format::tick(v / 1e6))
    } else if v >= 1e3 {
        format!("{} k", format::tick(v / 1e3))
    } else {
        format::tick(v)
    }
}

/// One column per job of `values` in `colour`, on its own scale; `quiet` is written across the
/// panel when every value is zero.
fn bar_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    values: &[f64],
    colour: RGBColor,
    y_desc: &str,
    quiet: &str,
) -> Result<()> {
    let n = values.len().max(1) as f64;
    let y_max = values.iter().copied().fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .margin_left(10)
        .margin_right(30)
        .margin_top(6)
        .x_label_area_size(12)
        .y_label_area_size(110)
        .build_cartesian_2d(0.0..n, 0.0..y_end(y_max))
        .ok_draw()?;
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(4)
        .y_label_formatter(&|v| count_tick(*v))
        .y_desc(y_desc)
        .label_style(text(TICK_PX))
        .axis_desc_style(text(AXIS_DESC_PX))
        .draw()
        .ok_draw()?;
    chart
        .draw_series(
            values
                .iter()
                .enumerate()
                .map(|(i, v)| Rectangle::new([(i as f64 + 0.15, 0.0), (i as f64 + 0.85, *v)], colour.filled())),
        )
        .ok_draw()?;
    if y_max <= 0.0 {
        centre_note(&chart.plotting_area().strip_coord_spec(), quiet)?;
    }
    Ok(())
}

impl Chart for Live<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let rows = self.rows;
        let delivered: u64 = rows.iter().map(|r| r.delivered).sum();
        let dropped: u64 = rows.iter().map(|r| r.dropped).sum();
        let share = if delivered + dropped > 0 {
            format!(
                " ({} %)",
                format::sig3(dropped as f64 * 100.0 / (delivered + dropped) as f64)
            )
        } else {
            String::new()
        };
        let sub = format!(
            "{} streaming job{} · {} events delivered · {} dropped{share}",
            format::grouped(rows.len() as u64),
            if rows.len() == 1 { "" } else { "s" },
            format::grouped(delivered),
            format::grouped(dropped),
        );
        let area = header(root, &format!("Live output — {}", self.run.name()), &sub)?;
        let items = vec![
            (Key::Swatch(OI_BLUE), "events delivered".to_string()),
            (Key::Swatch(OI_VERMILLION), "events dropped".to_string()),
            (Key::Marker(Marker::Circle, OI_BLACK), "median latency".to_string()),
            (
                Key::Marker(Marker::Triangle, OI_ORANGE),
                "99th-percentile latency (whisker: maximum)".to_string(),
            ),
        ];
        let (w, _) = area.dim_in_pixel();
        let (leg, area) = area.split_vertically(legend_height(&area, &items, w));
        legend_strip(&leg, &items)?;
        let (_, h) = area.dim_in_pixel();
        let third = h.saturating_sub(64) / 3;
        let (top, rest) = area.split_vertically(third);
        let (middle, bottom) = rest.split_vertically(third);
        let quiet = if rows.is_empty() { "no job streamed" } else { "none" };
        let values = |f: fn(&LiveRow) -> u64| rows.iter().map(|r| f(r) as f64).collect::<Vec<_>>();
        bar_panel(&top, &values(|r| r.delivered), OI_BLUE, "delivered", quiet)?;
        let quiet = if rows.is_empty() {
            "no job streamed"
        } else {
            "no event dropped"
        };
        bar_panel(&middle, &values(|r| r.dropped), OI_VERMILLION, "dropped", quiet)?;
        // Bottom: latency, on a log scale when it spans more than a factor of 30.
        let lat: Vec<(usize, f64, f64, f64)> = rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i, r.latency_p50_ms?, r.latency_p99_ms?, r.latency_max_ms?)))
            .filter(|(_, a, b, c)| *a > 0.0 && *b > 0.0 && *c > 0.0)
            .collect();
        let lo = lat.iter().map(|l| l.1).fold(f64::INFINITY, f64::min);
        let hi = lat.iter().map(|l| l.3).fold(0.0, f64::max);
        if !lat.is_empty() && hi > 30.0 * lo {
            let mut chart = latency_axes(&bottom, rows, (lo / 2.0..hi * 2.0).log_scale())?;
            draw_latency(&mut chart, &lat)
        } else {
            let mut chart = latency_axes(&bottom, rows, 0.0..y_end(hi))?;
            if lat.is_empty() {
                let msg = if rows.is_empty() {
                    "no job streamed"
                } else {
                    "latency not measured (the boards' clocks are not the host's)"
                };
                return centre_note(&chart.plotting_area().strip_coord_spec(), msg);
            }
            draw_latency(&mut chart, &lat)
        }
    }
}

/// The latency panel's axes: jobs across (labelled with their ids where they fit), `y` up.
fn latency_axes<'a, DB: DrawingBackend, Y: Ranged<ValueType = f64> + ValueFormatter<f64>>(
    area: &'a DrawingArea<DB, Shift>,
    rows: &[LiveRow],
    y: impl AsRangedCoord<CoordDescType = Y, Value = f64>,
) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>> {
    let n = rows.len().max(1) as f64;
    let label_every = (rows.len() / 24).max(1);
    let mut chart = ChartBuilder::on(area)
        .margin_left(10)
        .margin_right(30)
        .margin_top(6)
        .margin_bottom(8)
        .x_label_area_size(64)
        .y_label_area_size(110)
        .build_cartesian_2d(0.0..n, y)
        .ok_draw()?;
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .disable_x_mesh()
        .x_labels(rows.len().min(400) * 2 + 1)
        .x_label_formatter(&|v| {
            if (v.floor() as usize).is_multiple_of(label_every) {
                job_label(rows, *v)
            } else {
                String::new()
            }
        })
        .x_desc("streaming job (workload id)")
        .y_labels(5)
        .y_label_formatter(&|v| format::tick_sig(*v))
        .y_desc("latency (ms)")
        .label_style(text(TICK_PX))
        .axis_desc_style(text(AXIS_DESC_PX))
        .draw()
        .ok_draw()?;
    Ok(chart)
}

/// Median, 99th percentile and a whisker to the maximum, per job.
fn draw_latency<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, Y>>,
    lat: &[(usize, f64, f64, f64)],
) -> Result<()> {
    let area = chart.plotting_area().strip_coord_spec();
    let (ax, ay) = area.get_base_pixel();
    for &(i, p50, p99, max) in lat {
        let x = i as f64 + 0.5;
        chart
            .draw_series([
                PathElement::new(vec![(x, p99), (x, max)], OI_ORANGE.stroke_width(2)),
                PathElement::new(vec![(x - 0.2, max), (x + 0.2, max)], OI_ORANGE.stroke_width(2)),
            ])
            .ok_draw()?;
        let (px, py) = chart.backend_coord(&(x, p99));
        draw_marker(&area, Marker::Triangle, (px - ax, py - ay), 6, OI_ORANGE)?;
        let (px, py) = chart.backend_coord(&(x, p50));
        draw_marker(&area, Marker::Circle, (px - ax, py - ay), 6, OI_BLACK)?;
    }
    Ok(())
}
