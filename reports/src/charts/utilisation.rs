//! `utilisation.{png,svg}`: what every board was doing over time, as a stacked area, with the
//! queue length below on the same time axis. `compare` overlays runs as lines instead.
//!
//! The stack: `timeline.csv` gives allocated boards, powered boards and idle boards, where idle
//! means "live, neither allocated nor powered". So live − idle boards are allocated *or* powered,
//! and the powered-but-not-allocated band is live − idle − allocated (allocated boards may be
//! unpowered while they power up or down, so powered − allocated would undercount it). The four
//! bands allocated + powered-not-allocated + idle + dead add up to every board position.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::data::{RunData, TimelineRow};
use crate::format;
use crate::style::*;

/// The four stacked bands at one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bands {
    pub t_s: f64,
    pub allocated: f64,
    pub powered_only: f64,
    pub idle: f64,
    pub dead: f64,
}

/// Splits each timeline row into bands that add up to `total` board positions.
pub fn bands(rows: &[TimelineRow], total: f64) -> Vec<Bands> {
    rows.iter()
        .map(|r| {
            let dead = r.dead_boards.clamp(0.0, total);
            let live = total - dead;
            let allocated = r.allocated_boards.clamp(0.0, live);
            let idle = r.idle_boards.clamp(0.0, live - allocated);
            let powered_only = live - allocated - idle;
            Bands {
                t_s: r.t_s,
                allocated,
                powered_only,
                idle,
                dead,
            }
        })
        .collect()
}

/// Board positions the stack should add up to: the run's boards, or (with neither `boards.csv`
/// rows nor summary counts) the most any timeline row accounts for.
pub fn total_boards(run: &RunData) -> f64 {
    let t = run.total_boards();
    if t > 0.0 {
        return t;
    }
    run.timeline
        .iter()
        .map(|r| {
            r.allocated_boards.max(0.0)
                + r.idle_boards.max(0.0)
                + r.dead_boards.max(0.0)
                + (r.powered_boards - r.allocated_boards).max(0.0)
        })
        .fold(0.0, f64::max)
}

fn span(run: &RunData) -> f64 {
    run.duration_s()
        .max(run.timeline.iter().map(|r| r.t_s).fold(0.0, f64::max))
}

pub struct Utilisation<'a> {
    pub run: &'a RunData,
}

impl Chart for Utilisation<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let run = self.run;
        let span = span(run);
        let axis = TimeAxis::for_span(span);
        let x_end = axis.end(span);
        let total = total_boards(run);
        let s = &run.summary;
        let mut sub = Vec::new();
        if total > 0.0 {
            sub.push(format!("{} board positions", format::grouped(total.round() as u64)));
        }
        if let Some(d) = s.dead_boards {
            sub.push(format!("{d} dead"));
        }
        if let Some(u) = s.utilisation {
            sub.push(format!("utilisation {}", format::pct(u)));
        }
        if let Some(u) = s.powered_utilisation {
            sub.push(format!("powered {}", format::pct(u)));
        }
        let area = header(
            root,
            &format!("Board use over time — {}", run.name()),
            &sub.join("  ·  "),
        )?;
        let items = vec![
            (Key::Swatch(OI_BLUE), "allocated".to_string()),
            (Key::Swatch(OI_ORANGE), "powered, not allocated".to_string()),
            (Key::Swatch(IDLE_GREY), "idle (live, off)".to_string()),
            (Key::Swatch(DEAD_GREY), "dead".to_string()),
        ];
        let mut items = items;
        if !s.faults.is_empty() {
            items.push((
                Key::Fault,
                "fault: strikes at the dashed line, marked while it lasts".to_string(),
            ));
        }
        if run.timeline.len() > DENSE {
            items.push((
                Key::Swatch(tint(OI_VERMILLION, 0.25)),
                "queue: min–max per time slice".to_string(),
            ));
        }
        let (w, _) = area.dim_in_pixel();
        let (leg, area) = area.split_vertically(legend_height(&area, &items, w));
        legend_strip(&leg, &items)?;
        let (_, h) = area.dim_in_pixel();
        let (top, bottom) = area.split_vertically(h * 60 / 100);

        // Top panel: the stacked bands.
        let y_max = if total > 0.0 { total } else { 1.0 };
        let mut chart = ChartBuilder::on(&top)
            .margin_left(10)
            .margin_right(10)
            .margin_top(6)
            .x_label_area_size(12)
            .y_label_area_size(96)
            .right_y_label_area_size(96)
            .build_cartesian_2d(0.0..x_end, 0.0..y_max)
            .ok_draw()?
            .set_secondary_coord(0.0..x_end, 0.0..100.0);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .x_label_formatter(&|_| String::new())
            .y_labels(6)
            .y_label_formatter(&|v| format::tick(*v))
            .y_desc("boards")
            .label_style(text(TICK_PX))
            .axis_desc_style(text(AXIS_DESC_PX))
            .draw()
            .ok_draw()?;
        chart
            .configure_secondary_axes()
            .y_labels(6)
            .y_label_formatter(&|v| format!("{} %", format::tick(*v)))
            .y_desc("share of all boards")
            .label_style(text(TICK_PX))
            .axis_desc_style(text(AXIS_DESC_PX))
            .draw()
            .ok_draw()?;
        let b = bands(&run.timeline, total);
        if b.is_empty() || total <= 0.0 {
            centre_note(&chart.plotting_area().strip_coord_spec(), "no data")?;
        } else {
            type Height = fn(&Bands) -> f64;
            let stack: [(Height, RGBColor); 4] = [
                (|b| b.allocated + b.powered_only + b.idle + b.dead, DEAD_GREY),
                (|b| b.allocated + b.powered_only + b.idle, IDLE_GREY),
                (|b| b.allocated + b.powered_only, OI_ORANGE),
                (|b| b.allocated, OI_BLUE),
            ];
            for (f, colour) in stack {
                let pts: Vec<(f64, f64)> = b.iter().map(|r| (axis.to_unit(r.t_s), f(r))).collect();
                chart
                    .draw_series(AreaSeries::new(steps(&pts, x_end), 0.0, colour.filled()))
                    .ok_draw()?;
            }
        }
        draw_faults(&mut chart, &axis, x_end, y_max, &s.faults, true, true)?;

        // Bottom panel: the queue.
        let q = TimeSeries {
            points: run
                .timeline
                .iter()
                .map(|r| (axis.to_unit(r.t_s), r.queued.max(0.0)))
                .collect(),
            end: axis.to_unit(span),
            style: SeriesStyle {
                fill: true,
                ..SeriesStyle::line(OI_VERMILLION)
            },
        };
        queue_panel(&bottom, &axis, x_end, &[q], "queued jobs")
    }
}

/// A queue-length panel: one line per series, each ending where its run ends.
pub fn queue_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    axis: &TimeAxis,
    x_end: f64,
    series: &[TimeSeries],
    y_desc: &str,
) -> Result<()> {
    let q_max = series.iter().map(TimeSeries::shown_max).fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .margin_left(10)
        .margin_right(10 + 96)
        .margin_bottom(8)
        .x_label_area_size(64)
        .y_label_area_size(96)
        .build_cartesian_2d(0.0..x_end, 0.0..y_end(q_max))
        .ok_draw()?;
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .x_labels(10)
        .y_labels(4)
        .x_label_formatter(&|v| format::tick(*v))
        .y_label_formatter(&|v| format::tick(*v))
        .x_desc(axis.label())
        .y_desc(y_desc)
        .label_style(text(TICK_PX))
        .axis_desc_style(text(AXIS_DESC_PX))
        .draw()
        .ok_draw()?;
    if series.iter().all(|s| s.points.is_empty()) {
        return centre_note(&chart.plotting_area().strip_coord_spec(), "no data");
    }
    for s in series {
        draw_time_series(&mut chart, s, x_end)?;
    }
    Ok(())
}

/// `compare`'s version: allocated boards as a share of live boards, one line per run, and the
/// queues below.
pub struct UtilisationCompare<'a> {
    pub runs: &'a [(String, RunData)],
}

impl Chart for UtilisationCompare<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let longest = self.runs.iter().map(|(_, r)| span(r)).fold(0.0, f64::max);
        let axis = TimeAxis::for_span(longest);
        let x_end = axis.end(longest);
        let (bin_s, bin_name) = mean_bin(longest);
        let bin = axis.to_unit(bin_s);
        let n = self.runs.len();
        // Per run: allocated share of live boards and queue, each ending at the run's own end.
        let series: Vec<(TimeSeries, TimeSeries)> = self
            .runs
            .iter()
            .enumerate()
            .map(|(i, (_, run))| {
                let style = SeriesStyle {
                    stroke: run_stroke(i, n),
                    band: false,
                    mean_bin: Some(bin),
                    ..SeriesStyle::line(series_colour(i))
                };
                let end = axis.to_unit(span(run));
                let total = total_boards(run);
                let share = bands(&run.timeline, total)
                    .iter()
                    .filter_map(|b| {
                        let live = b.allocated + b.powered_only + b.idle;
                        (live > 0.0).then(|| (axis.to_unit(b.t_s), 100.0 * b.allocated / live))
                    })
                    .collect();
                let queue = run
                    .timeline
                    .iter()
                    .map(|t| (axis.to_unit(t.t_s), t.queued.max(0.0)))
                    .collect();
                (
                    TimeSeries {
                        points: share,
                        end,
                        style,
                    },
                    TimeSeries {
                        points: queue,
                        end,
                        style,
                    },
                )
            })
            .collect();
        let sub = self
            .runs
            .iter()
            .map(|(n, r)| match r.summary.utilisation {
                Some(u) => format!("{n}: utilisation {}", format::pct(u)),
                None => n.clone(),
            })
            .collect::<Vec<_>>()
            .join("  ·  ");
        let area = header(root, "Allocated boards over time", &sub)?;
        let items: Vec<(Key, String)> = self
            .runs
            .iter()
            .zip(&series)
            .enumerate()
            .map(|(i, ((n, _), (_, q)))| {
                let label = match q.points.first() {
                    Some(&(t0, _)) if binned(q.points.len(), t0, q.end, bin) => format!("{n} ({bin_name} means)"),
                    _ => n.clone(),
                };
                (Key::Line(series_colour(i)), label)
            })
            .collect();
        let (w, _) = area.dim_in_pixel();
        let (leg, area) = area.split_vertically(legend_height(&area, &items, w));
        legend_strip(&leg, &items)?;
        let (_, h) = area.dim_in_pixel();
        let (top, bottom) = area.split_vertically(h * 60 / 100);
        let mut chart = ChartBuilder::on(&top)
            .margin_left(10)
            .margin_top(6)
            .x_label_area_size(12)
            .y_label_area_size(96)
            .margin_right(10 + 96)
            .build_cartesian_2d(0.0..x_end, 0.0..100.0)
            .ok_draw()?;
        chart
            .configure_mesh()
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .x_label_formatter(&|_| String::new())
            .y_labels(6)
            .y_label_formatter(&|v| format!("{} %", format::tick(*v)))
            .y_desc("allocated / live boards")
            .label_style(text(TICK_PX))
            .axis_desc_style(text(AXIS_DESC_PX))
            .draw()
            .ok_draw()?;
        if series.iter().all(|(s, _)| s.points.is_empty()) {
            centre_note(&chart.plotting_area().strip_coord_spec(), "no data")?;
        }
        for (s, _) in &series {
            draw_time_series(&mut chart, s, x_end)?;
        }
        let queues: Vec<TimeSeries> = series.into_iter().map(|(_, q)| q).collect();
        queue_panel(&bottom, &axis, x_end, &queues, "queued jobs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(alloc: f64, powered: f64, idle: f64, dead: f64) -> TimelineRow {
        TimelineRow {
            t_s: 0.0,
            queued: 0.0,
            running: 0.0,
            allocated_boards: alloc,
            powered_boards: powered,
            idle_boards: idle,
            dead_boards: dead,
        }
    }

    #[test]
    fn bands_add_up_to_every_board() {
        // 12 positions, 2 dead: 4 allocated (3 of them powered), 2 more powered, 4 idle.
        let b = bands(&[row(4.0, 5.0, 4.0, 2.0)], 12.0)[0];
        assert_eq!((b.allocated, b.powered_only, b.idle, b.dead), (4.0, 2.0, 4.0, 2.0));
        // Inconsistent input is clamped, never negative, and still adds up.
        let b = bands(&[row(20.0, 0.0, 5.0, 1.0)], 12.0)[0];
        assert_eq!((b.allocated, b.powered_only, b.idle, b.dead), (11.0, 0.0, 0.0, 1.0));
    }
}
