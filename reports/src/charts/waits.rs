//! `waits.{png,svg}`: how long started jobs waited, per size class — one empirical CDF per class
//! on a logarithmic time axis, with each class's mean (●) and 95th percentile (▲) marked on its
//! curve. `compare` draws one small panel per class (past five, the last pools the rest as
//! "other") with a curve per run.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::data::RunData;
use crate::format;
use crate::stats::{self, ClassWaits};
use crate::style::*;

/// At most this many classes get their own curve; the rest are pooled as "other".
pub const MAX_CLASSES: usize = 8;

/// Waits below this are drawn at it (the axis is logarithmic).
const FLOOR_S: f64 = 1.0;

/// Key points of the log time axis and their labels.
const KEYS: [(f64, &str); 11] = [
    (1.0, "1 s"),
    (10.0, "10 s"),
    (60.0, "1 min"),
    (600.0, "10 min"),
    (3600.0, "1 h"),
    (21_600.0, "6 h"),
    (86_400.0, "1 d"),
    (604_800.0, "1 wk"),
    (2_592_000.0, "30 d"),
    (31_536_000.0, "1 yr"),
    (315_360_000.0, "10 yr"),
];
const SPARSE_KEYS: [f64; 7] = [1.0, 60.0, 3600.0, 86_400.0, 2_592_000.0, 31_536_000.0, 315_360_000.0];

fn key_label(v: f64) -> String {
    KEYS.iter()
        .find(|(k, _)| (k / v - 1.0).abs() < 1e-6)
        .map(|(_, l)| l.to_string())
        .unwrap_or_default()
}

/// The right end of the time axis: the first key point past the longest wait (at least 1 h).
fn x_hi(max_wait: f64) -> f64 {
    let m = (max_wait * 1.05).max(3600.0);
    KEYS.iter()
        .map(|k| k.0)
        .find(|k| *k >= m)
        .unwrap_or(if m.is_finite() { m } else { 3600.0 })
}

/// Pools classes beyond `MAX_CLASSES` into one.
fn cap_classes(mut classes: Vec<ClassWaits>) -> Vec<ClassWaits> {
    if classes.len() <= MAX_CLASSES {
        return classes;
    }
    let rest = classes.split_off(MAX_CLASSES - 1);
    let mut waits: Vec<f64> = rest.iter().flat_map(|c| c.waits.iter().copied()).collect();
    waits.sort_by(f64::total_cmp);
    classes.push(ClassWaits {
        class: format!("other ({} classes)", rest.len()),
        waits,
    });
    classes
}

fn class_order(run: &RunData) -> Vec<String> {
    run.summary
        .classes
        .iter()
        .map(|c| {
            if c.class.is_empty() {
                stats::NO_CLASS.to_string()
            } else {
                c.class.clone()
            }
        })
        .collect()
}

/// One curve of an ECDF panel.
struct Curve<'a> {
    waits: &'a [f64],
    colour: RGBColor,
    stroke: u32,
}

/// Draws an ECDF panel of `curves` with mean and p95 markers; returns nothing to say if empty.
fn ecdf_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    curves: &[Curve<'_>],
    x_hi: f64,
    dense: bool,
    caption: Option<&str>,
    x_desc: &str,
    y_desc: &str,
) -> Result<()> {
    let keys: Vec<f64> = if dense {
        KEYS.iter().map(|k| k.0).filter(|k| *k <= x_hi).collect()
    } else {
        SPARSE_KEYS.iter().copied().filter(|k| *k <= x_hi).collect()
    };
    let mut builder = ChartBuilder::on(area);
    builder
        .margin_left(8)
        .margin_right(22)
        .margin_top(8)
        .x_label_area_size(if x_desc.is_empty() { 34 } else { 66 });
    builder.y_label_area_size(if y_desc.is_empty() { 62 } else { 92 });
    if let Some(c) = caption {
        builder.caption(c, bold(LEGEND_PX));
    }
    // A little headroom so that curves reaching 100 % stay visible above the frame.
    let mut chart = builder
        .build_cartesian_2d((FLOOR_S..x_hi).log_scale().with_key_points(keys), 0.0..103.0)
        .ok_draw()?;
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&|v| key_label(*v))
        .y_labels(6)
        .y_label_formatter(&|v| {
            if *v <= 100.0 {
                format!("{} %", format::tick(*v))
            } else {
                String::new()
            }
        })
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(text(TICK_PX))
        .axis_desc_style(text(AXIS_DESC_PX))
        .draw()
        .ok_draw()?;
    if curves.iter().all(|c| c.waits.is_empty()) {
        return centre_note(&chart.plotting_area().strip_coord_spec(), "no started jobs");
    }
    for c in curves {
        let pts: Vec<(f64, f64)> = stats::ecdf_steps(c.waits, FLOOR_S, x_hi, 1500)
            .into_iter()
            .map(|(x, y)| (x, 100.0 * y))
            .collect();
        chart
            .draw_series(LineSeries::new(pts, c.colour.stroke_width(c.stroke)))
            .ok_draw()?;
    }
    for c in curves {
        let (Some(mean), Some(p95)) = (stats::mean(c.waits), stats::percentile_sorted(c.waits, 0.95)) else {
            continue;
        };
        let at = |x: f64| (x.clamp(FLOOR_S, x_hi), 100.0 * stats::ecdf_at(c.waits, x));
        let fill = c.colour.filled();
        let edge = ShapeStyle {
            color: BLACK.to_rgba(),
            filled: false,
            stroke_width: 1,
        };
        chart
            .draw_series([EmptyElement::at(at(mean)) + Circle::new((0, 0), 8, fill) + Circle::new((0, 0), 8, edge)])
            .ok_draw()?;
        chart
            .draw_series([EmptyElement::at(at(p95))
                + Polygon::new(vec![(0, -10), (9, 6), (-9, 6)], fill)
                + PathElement::new(vec![(0, -10), (9, 6), (-9, 6), (0, -10)], edge)])
            .ok_draw()?;
    }
    Ok(())
}

const X_DESC: &str = "wait from submission to start (log scale; waits under 1 s drawn at 1 s)";
const Y_DESC: &str = "started jobs that waited ≤ t";

pub struct Waits<'a> {
    pub run: &'a RunData,
}

impl Chart for Waits<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let run = self.run;
        let classes = cap_classes(stats::waits_by_class(&run.jobs, &class_order(run)));
        let all = stats::all_waits(&run.jobs);
        let mut sub = vec![format!(
            "{} started job{}",
            format::grouped(all.len() as u64),
            if all.len() == 1 { "" } else { "s" }
        )];
        if let Some(m) = stats::mean(&all) {
            sub.push(format!("mean wait {}", format::duration(m)));
        }
        if let Some(p) = stats::percentile_sorted(&all, 0.95) {
            sub.push(format!("95th percentile {}", format::duration(p)));
        }
        let area = header(
            root,
            &format!("Wait times by size class — {}", run.name()),
            &sub.join("  ·  "),
        )?;
        let (w, _) = area.dim_in_pixel();
        let (plot, side) = area.split_horizontally(w - 350);
        let hi = x_hi(all.last().copied().unwrap_or(0.0));
        let curves: Vec<Curve<'_>> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| Curve {
                waits: &c.waits,
                colour: series_colour(i),
                stroke: 3,
            })
            .collect();
        ecdf_panel(&plot, &curves, hi, true, None, X_DESC, Y_DESC)?;
        class_legend(&side, &classes)
    }
}

/// The side panel: per class its colour, name, count, mean and p95.
fn class_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, classes: &[ClassWaits]) -> Result<()> {
    let (w, _) = area.dim_in_pixel();
    let left = Pos::new(HPos::Left, VPos::Center);
    let mut y = 24;
    area.draw_text("size class", &bold(LEGEND_PX).pos(left), (8, y))
        .ok_draw()?;
    y += 34;
    if classes.is_empty() {
        area.draw_text("no jobs", &grey(NOTE_PX).pos(left), (8, y)).ok_draw()?;
        y += 34;
    }
    for (i, c) in classes.iter().enumerate() {
        draw_key(area, Key::Line(series_colour(i)), (8, y))?;
        let name = fit_text(area, &c.class, LEGEND_PX, w - 60);
        area.draw_text(&name, &text(LEGEND_PX).pos(left), (44, y)).ok_draw()?;
        y += 23;
        let (started, stats) = match (c.mean(), c.percentile(0.95)) {
            (Some(m), Some(p)) => (
                format!("{} started", format::grouped(c.waits.len() as u64)),
                format!("mean {} · p95 {}", format::duration(m), format::duration(p)),
            ),
            _ => ("no started jobs".to_string(), String::new()),
        };
        area.draw_text(
            &fit_text(area, &started, NOTE_PX, w - 60),
            &grey(NOTE_PX).pos(left),
            (44, y),
        )
        .ok_draw()?;
        if !stats.is_empty() {
            y += 21;
            area.draw_text(
                &fit_text(area, &stats, NOTE_PX, w - 60),
                &grey(NOTE_PX).pos(left),
                (44, y),
            )
            .ok_draw()?;
        }
        y += 36;
    }
    y += 8;
    draw_key(area, Key::Marker(Marker::Circle, GREY_TEXT), (8, y))?;
    area.draw_text("mean", &text(LEGEND_PX).pos(left), (44, y)).ok_draw()?;
    y += 30;
    draw_key(area, Key::Marker(Marker::Triangle, GREY_TEXT), (8, y))?;
    area.draw_text("95th percentile", &text(LEGEND_PX).pos(left), (44, y))
        .ok_draw()?;
    Ok(())
}

/// At most this many class panels in `compare`'s chart (besides "all jobs"); with more classes
/// the last panel pools the rest as "other".
pub const COMPARE_CLASS_PANELS: usize = 5;

/// Splits classes into those `compare` gives a panel of their own and those it pools as
/// "other": all of them fit when there are at most `COMPARE_CLASS_PANELS`, else the first
/// `COMPARE_CLASS_PANELS - 1` get panels and the rest share the last.
fn compare_panels(order: &[String]) -> (&[String], &[String]) {
    if order.len() <= COMPARE_CLASS_PANELS {
        (order, &[])
    } else {
        order.split_at(COMPARE_CLASS_PANELS - 1)
    }
}

/// `compare`'s version: one panel for all jobs and one per class (up to five; beyond that the
/// fifth pools the rest as "other", named above the panels), a curve per run.
pub struct WaitsCompare<'a> {
    pub runs: &'a [(String, RunData)],
}

impl Chart for WaitsCompare<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        // Classes in order of first appearance over all runs.
        let mut order: Vec<String> = Vec::new();
        let per_run: Vec<Vec<ClassWaits>> = self
            .runs
            .iter()
            .map(|(_, r)| {
                let cw = stats::waits_by_class(&r.jobs, &class_order(r));
                for c in &cw {
                    if !order.contains(&c.class) {
                        order.push(c.class.clone());
                    }
                }
                cw
            })
            .collect();
        let alls: Vec<Vec<f64>> = self.runs.iter().map(|(_, r)| stats::all_waits(&r.jobs)).collect();
        let hi = x_hi(alls.iter().filter_map(|a| a.last().copied()).fold(0.0, f64::max));
        let mut panels: Vec<(String, Vec<Vec<f64>>)> = vec![("all jobs".to_string(), alls.clone())];
        let (shown, pooled) = compare_panels(&order);
        if order.len() > 1 {
            let waits_of = |cw: &[ClassWaits], classes: &[String]| -> Vec<f64> {
                let mut w: Vec<f64> = cw
                    .iter()
                    .filter(|c| classes.contains(&c.class))
                    .flat_map(|c| c.waits.iter().copied())
                    .collect();
                w.sort_by(f64::total_cmp);
                w
            };
            for class in shown {
                let w = per_run
                    .iter()
                    .map(|cw| waits_of(cw, std::slice::from_ref(class)))
                    .collect();
                panels.push((class.clone(), w));
            }
            if !pooled.is_empty() {
                let w = per_run.iter().map(|cw| waits_of(cw, pooled)).collect();
                panels.push((format!("other ({} classes)", pooled.len()), w));
            }
        }
        let sub = self
            .runs
            .iter()
            .zip(&alls)
            .map(
                |((n, _), a)| match (stats::mean(a), stats::percentile_sorted(a, 0.95)) {
                    (Some(m), Some(p)) => format!("{n}: mean {}, p95 {}", format::duration(m), format::duration(p)),
                    _ => format!("{n}: no started jobs"),
                },
            )
            .collect::<Vec<_>>()
            .join("  ·  ");
        let area = header(root, "Wait times", &sub)?;
        let mut items: Vec<(Key, String)> = self
            .runs
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (Key::Line(series_colour(i)), n.clone()))
            .collect();
        items.push((Key::Marker(Marker::Circle, GREY_TEXT), "mean".to_string()));
        items.push((Key::Marker(Marker::Triangle, GREY_TEXT), "95th percentile".to_string()));
        let (w, _) = area.dim_in_pixel();
        let (leg, area) = area.split_vertically(legend_height(&area, &items, w));
        legend_strip(&leg, &items)?;
        // Name the classes pooled as "other" on a line of their own, so none is left unsaid.
        let area = if pooled.is_empty() {
            area
        } else {
            let (note, rest) = area.split_vertically(28);
            let msg = format!("other: {}", pooled.join(" · "));
            let msg = fit_text(&note, &msg, NOTE_PX + 1.0, w.saturating_sub(40));
            note.draw_text(
                &msg,
                &grey(NOTE_PX + 1.0).pos(Pos::new(HPos::Center, VPos::Center)),
                ((w / 2) as i32, 12),
            )
            .ok_draw()?;
            rest
        };
        let (rows, cols) = match panels.len() {
            1 => (1, 1),
            2 => (1, 2),
            3 | 4 => (2, 2),
            _ => (2, 3),
        };
        // Leave room for the shared axis descriptions.
        let (area, x_desc_area) = area.split_vertically(area.dim_in_pixel().1 - 34);
        let (y_desc_area, area) = area.split_horizontally(34);
        let cells = area.split_evenly((rows, cols));
        for (cell, (title, waits)) in cells.iter().zip(&panels) {
            let n = waits.len();
            let curves: Vec<Curve<'_>> = waits
                .iter()
                .enumerate()
                .map(|(i, w)| Curve {
                    waits: w,
                    colour: series_colour(i),
                    stroke: run_stroke(i, n).round() as u32,
                })
                .collect();
            let title = fit_text(cell, title, LEGEND_PX, cell.dim_in_pixel().0 - 40);
            ecdf_panel(cell, &curves, hi, cols <= 2, Some(&title), "", "")?;
        }
        let (xw, _) = x_desc_area.dim_in_pixel();
        x_desc_area
            .draw_text(
                X_DESC,
                &text(AXIS_DESC_PX).pos(Pos::new(HPos::Center, VPos::Center)),
                ((xw / 2) as i32, 14),
            )
            .ok_draw()?;
        let (_, yh) = y_desc_area.dim_in_pixel();
        y_desc_area
            .draw_text(
                Y_DESC,
                &text(AXIS_DESC_PX)
                    .transform(FontTransform::Rotate270)
                    .pos(Pos::new(HPos::Center, VPos::Center)),
                (16, (yh / 2) as i32),
            )
            .ok_draw()?;
        Ok(())
    }
}
