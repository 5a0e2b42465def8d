//! `sweep-<metric>-vs-<axis>.{png,svg}`: one metric of a parameter sweep against one axis — the
//! mean over the seeds at each of the axis's values, one line per combination of the other axes'
//! values (colour and marker), each with its 95 % confidence band shaded in the line's colour.
//! An axis whose values are all numbers is drawn to scale, any other as evenly spaced categories.
//! Points without a result (an invalid scenario, an empty cell) are left out, leaving a gap; a
//! result between two gaps shows its interval as an error bar.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::style::*;
use crate::sweep::{Line, Sweep};

/// At most this many lines are named in the legend; the rest are counted.
const MAX_LEGEND: usize = 16;

/// Width of the y label area, and the chart's side margins, in pixels.
const Y_LABELS_PX: u32 = 96;
const MARGINS_PX: u32 = 40;

pub struct SweepChart<'a> {
    pub sweep: &'a Sweep,
    pub metric: usize,
    pub axis: usize,
}

/// A linear `f64` axis with ticks exactly at given positions (labelled by the chart's formatter).
#[derive(Clone)]
struct Ticked {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ticked {
    fn new(range: std::ops::Range<f64>, ticks: Vec<f64>) -> Ticked {
        Ticked {
            inner: range.into(),
            ticks,
        }
    }
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(v, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

/// One drawn result: x, mean, interval.
#[derive(Debug, Clone, Copy)]
struct Dot {
    x: f64,
    mean: f64,
    lo: f64,
    hi: f64,
}

/// A line's results, split where a point has none.
fn segments(sweep: &Sweep, metric: usize, axis: usize, line: &Line) -> Vec<Vec<Dot>> {
    let ax = &sweep.axes[axis];
    let mut out: Vec<Vec<Dot>> = vec![Vec::new()];
    for &i in &line.points {
        let p = &sweep.points[i];
        let x = ax.position(p.values.get(axis).copied().unwrap_or(0));
        match p.estimate(metric).and_then(|e| Some((e.mean?, e.interval()?))) {
            Some((mean, (lo, hi))) => out.last_mut().expect("never empty").push(Dot { x, mean, lo, hi }),
            None => out.push(Vec::new()),
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// Round tick positions across `lo..=hi`, at most about `max` of them, and their step.
fn nice_ticks(lo: f64, hi: f64, max: usize) -> (Vec<f64>, f64) {
    let span = hi - lo;
    if !span.is_finite() || span <= 0.0 {
        return (vec![lo], 1.0);
    }
    let raw = span / max.max(1) as f64;
    let p = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * p);
    let (first, last) = ((lo / step).ceil() as i64, (hi / step).floor() as i64);
    ((first..=last).map(|k| k as f64 * step).collect(), step)
}

/// A tick label with as many decimals as the step needs: `0.25` with step 0.05 → `0.25`.
fn tick_label(v: f64, step: f64) -> String {
    let d = (0..=12)
        .find(|d| {
            let s = step * 10f64.powi(*d);
            (s - s.round()).abs() < 1e-6 * s.max(1.0)
        })
        .unwrap_or(12) as usize;
    let s = format!("{v:.d$}");
    if s.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') {
        "0".to_string()
    } else {
        s
    }
}

/// The label at key point `v`: the one whose key is (within rounding) `v`.
fn label_at(keys: &[f64], labels: &[String], v: f64) -> String {
    let scale = keys.iter().fold(1e-12f64, |m, k| m.max(k.abs()));
    keys.iter()
        .position(|k| (k - v).abs() <= 1e-9 * scale)
        .and_then(|i| labels.get(i).cloned())
        .unwrap_or_default()
}

impl Chart for SweepChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let s = self.sweep;
        let metric = &s.metrics[self.metric];
        let ax = &s.axes[self.axis];
        let lines = s.lines(self.axis);
        let segs: Vec<Vec<Vec<Dot>>> = lines.iter().map(|l| segments(s, self.metric, self.axis, l)).collect();
        let dots = || segs.iter().flatten().flatten();
        let banded = dots().any(|d| d.hi > d.lo);
        let missing = s.points.iter().filter(|p| p.estimate(self.metric).is_none()).count();

        let (w, _) = root.dim_in_pixel();
        let title = fit_text(
            root,
            &format!("{} against {}", metric.label, ax.key),
            TITLE_PX * 1.1,
            w.saturating_sub(60),
        );
        let mut sub = vec![s.name.clone()];
        match s.seed_range() {
            Some((1, 1)) => sub.push("one seed per point".into()),
            Some((a, b)) if a == b => sub.push(format!("mean over {b} seeds per point")),
            Some((a, b)) => sub.push(format!("mean over {a}–{b} seeds per point")),
            None => {}
        }
        sub.push(format!(
            "{} line{}",
            lines.len(),
            if lines.len() == 1 { "" } else { "s" }
        ));
        if missing > 0 {
            sub.push(format!(
                "{missing} point{} without a result left out",
                if missing == 1 { "" } else { "s" }
            ));
        }
        let area = header(root, &title, &sub.join("  ·  "))?;

        let (w, _) = area.dim_in_pixel();
        let max_label = w.saturating_sub(140);
        let mut items: Vec<(Key, String)> = Vec::new();
        let named = if lines.len() > MAX_LEGEND {
            MAX_LEGEND - 1
        } else {
            lines.len()
        };
        for (i, line) in lines.iter().enumerate().take(named) {
            let label = s.line_label(self.axis, line);
            let label = if label.is_empty() {
                "mean over the seeds".to_string()
            } else {
                label
            };
            items.push((
                Key::LineMarker(MARKERS[i % MARKERS.len()], series_colour(i)),
                fit_text(&area, &label, LEGEND_PX, max_label),
            ));
        }
        if lines.len() > named {
            items.push((Key::Blank, format!("… and {} more lines", lines.len() - named)));
        }
        if banded {
            items.push((
                Key::Swatch(tint(GREY_TEXT, 0.25)),
                "95 % confidence interval of the mean (Student t)".to_string(),
            ));
        }
        let (leg, area) = area.split_vertically(legend_height(&area, &items, w));
        legend_strip(&leg, &items)?;

        // The x axis: to scale with a tick at every value when they are far enough apart (else
        // round ticks), or evenly spaced categories labelled by value.
        let plot_w = w.saturating_sub(Y_LABELS_PX + MARGINS_PX).max(100) as f64;
        let n = ax.values.len();
        let (x_range, x_keys, x_labels) = match &ax.numbers {
            Some(xs) => {
                let (min, max) = xs
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(*x), b.max(*x)));
                let span = max - min;
                let pad = if span > 0.0 {
                    span * 0.06
                } else {
                    (min.abs() * 0.1).max(0.5)
                };
                let range = (min - pad)..(max + pad);
                let mut sorted = xs.clone();
                sorted.sort_by(f64::total_cmp);
                let gap = sorted.windows(2).map(|p| p[1] - p[0]).fold(f64::INFINITY, f64::min);
                let gap_px = gap / (range.end - range.start) * plot_w;
                if n <= 15 && gap_px >= 56.0 {
                    let labels: Vec<String> = ax
                        .values
                        .iter()
                        .map(|v| fit_text(&area, v, TICK_PX, gap_px as u32 - 8))
                        .collect();
                    (range, xs.clone(), labels)
                } else {
                    let (keys, step) = nice_ticks(range.start, range.end, 10);
                    let labels: Vec<String> = keys.iter().map(|k| tick_label(*k, step)).collect();
                    (range, keys, labels)
                }
            }
            None => {
                let slot = (plot_w / n.max(1) as f64) as u32;
                let labels: Vec<String> = ax
                    .values
                    .iter()
                    .map(|v| fit_text(&area, v, TICK_PX, slot.saturating_sub(12).max(20)))
                    .collect();
                (-0.5..n as f64 - 0.5, (0..n).map(|i| i as f64).collect(), labels)
            }
        };

        // The y axis: every mean and interval, with a little room; from 0 when all are positive
        // and the room would cross 0.
        let (lo, hi) = dots().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), d| {
            (a.min(d.lo).min(d.mean), b.max(d.hi).max(d.mean))
        });
        let (y0, y1) = if lo.is_finite() && hi.is_finite() {
            let span = hi - lo;
            let pad = if span > 0.0 {
                span * 0.08
            } else if lo != 0.0 {
                lo.abs() * 0.1
            } else {
                1.0
            };
            let y0 = if lo >= 0.0 && lo - pad < 0.0 { 0.0 } else { lo - pad };
            (y0, hi + pad)
        } else {
            (0.0, 1.0)
        };
        let (y_keys, y_step) = nice_ticks(y0, y1, 8);
        let y_labels: Vec<String> = y_keys.iter().map(|k| tick_label(*k, y_step)).collect();

        let mut chart = ChartBuilder::on(&area)
            .margin_left(10)
            .margin_right(30)
            .margin_bottom(8)
            .x_label_area_size(64)
            .y_label_area_size(Y_LABELS_PX)
            .build_cartesian_2d(
                Ticked::new(x_range, x_keys.clone()),
                Ticked::new(y0..y1, y_keys.clone()),
            )
            .ok_draw()?;
        let x_desc = if ax.numbers.is_some() {
            ax.key.clone()
        } else {
            format!("{} (values evenly spaced)", ax.key)
        };
        chart
            .configure_mesh()
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .x_label_formatter(&|v| label_at(&x_keys, &x_labels, *v))
            .y_label_formatter(&|v| label_at(&y_keys, &y_labels, *v))
            .x_desc(fit_text(&area, &x_desc, AXIS_DESC_PX, plot_w as u32))
            .y_desc(metric.label_with_unit())
            .label_style(text(TICK_PX))
            .axis_desc_style(text(AXIS_DESC_PX))
            .draw()
            .ok_draw()?;
        if dots().next().is_none() {
            return centre_note(&chart.plotting_area().strip_coord_spec(), "no results");
        }
        draw_lines(&mut chart, &segs)
    }
}

type SweepCoord = Cartesian2d<Ticked, Ticked>;

/// Draws every line's bands, then the lines, then their markers (and error bars for results
/// standing alone), so that no band hides a line.
fn draw_lines<DB: DrawingBackend>(chart: &mut ChartContext<'_, DB, SweepCoord>, segs: &[Vec<Vec<Dot>>]) -> Result<()> {
    for (i, line) in segs.iter().enumerate() {
        let colour = series_colour(i);
        for seg in line.iter().filter(|s| s.len() >= 2 && s.iter().any(|d| d.hi > d.lo)) {
            let mut band: Vec<(f64, f64)> = seg.iter().map(|d| (d.x, d.hi)).collect();
            band.extend(seg.iter().rev().map(|d| (d.x, d.lo)));
            chart
                .draw_series([Polygon::new(band, colour.mix(0.18).filled())])
                .ok_draw()?;
        }
    }
    for (i, line) in segs.iter().enumerate() {
        for seg in line.iter().filter(|s| s.len() >= 2) {
            let pts: Vec<(f64, f64)> = seg.iter().map(|d| (d.x, d.mean)).collect();
            draw_line(chart.plotting_area(), &pts, series_colour(i), 2.5)?;
        }
    }
    let area = chart.plotting_area().strip_coord_spec();
    let (ax, ay) = area.get_base_pixel();
    for (i, line) in segs.iter().enumerate() {
        let colour = series_colour(i);
        for seg in line {
            for d in seg {
                let (px, py) = chart.backend_coord(&(d.x, d.mean));
                let (px, py) = (px - ax, py - ay);
                if seg.len() == 1 && d.hi > d.lo {
                    let (_, top) = chart.backend_coord(&(d.x, d.hi));
                    let (_, bottom) = chart.backend_coord(&(d.x, d.lo));
                    let (top, bottom) = (top - ay, bottom - ay);
                    let style = colour.stroke_width(2);
                    area.draw(&PathElement::new(vec![(px, top), (px, bottom)], style))
                        .ok_draw()?;
                    for y in [top, bottom] {
                        area.draw(&PathElement::new(vec![(px - 7, y), (px + 7, y)], style))
                            .ok_draw()?;
                    }
                }
                draw_marker(&area, MARKERS[i % MARKERS.len()], (px, py), 6, colour)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks() {
        let (k, step) = nice_ticks(0.44, 1.56, 10);
        assert_eq!(step, 0.2);
        assert_eq!(
            k.iter().map(|v| tick_label(*v, step)).collect::<Vec<_>>(),
            ["0.6", "0.8", "1.0", "1.2", "1.4"]
        );
        let (k, step) = nice_ticks(0.0, 1000.0, 8);
        assert_eq!(step, 200.0);
        assert_eq!(k.len(), 6);
        assert_eq!(tick_label(250.0, 250.0), "250");
        assert_eq!(tick_label(0.75, 0.25), "0.75");
        assert_eq!(tick_label(-0.0, 0.5), "0");
        assert_eq!(nice_ticks(3.0, 3.0, 8).0, [3.0]);
        assert_eq!(label_at(&[0.0, 1.0], &["a".into(), "b".into()], 1.0), "b");
        assert_eq!(label_at(&[0.0, 1.0], &["a".into(), "b".into()], 0.5), "");
    }
}
