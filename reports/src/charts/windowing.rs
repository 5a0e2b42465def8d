//! `windowing.{png,svg}`: the SCP windowing study — goodput against packet loss, one line per
//! (policy, round-trip time), with the analytic bound for each round-trip time dashed in the same
//! colour. Colour tells the round-trip time, the marker tells the policy; one panel per operation.
//! The loss levels are evenly spaced (0, 0.1 %, 1 %, 5 %, 10 % would crowd the first two
//! together on a linear axis and cannot sit on a log axis). When goodput spans more than a
//! factor of 20 the goodput axis is logarithmic.

use std::collections::BTreeMap;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::data::WindowingRow;
use crate::format;
use crate::style::*;

pub struct Windowing<'a> {
    pub rows: &'a [WindowingRow],
}

/// Total order key for an `f64` that is known to be finite.
fn key(v: f64) -> i64 {
    (v * 1e6).round() as i64
}

/// One measured line: RTT colour index, policy marker index, points.
#[derive(Clone)]
struct PanelLine {
    colour: usize,
    marker: usize,
    pts: Vec<(f64, f64)>,
}

/// What one panel draws.
#[derive(Clone)]
struct PanelData {
    lines: Vec<PanelLine>,
    /// (RTT colour index, bound curve), each distinct curve once.
    bounds: Vec<(usize, Vec<(f64, f64)>)>,
}

impl Chart for Windowing<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let rows = self.rows;
        // Orders of first appearance for ops and policies, numeric order for RTTs.
        let mut ops: Vec<&str> = Vec::new();
        let mut policies: Vec<&str> = Vec::new();
        for r in rows {
            if !ops.contains(&r.op.as_str()) {
                ops.push(&r.op);
            }
            if !policies.contains(&r.policy.as_str()) {
                policies.push(&r.policy);
            }
        }
        let rtts: BTreeMap<i64, f64> = rows.iter().map(|r| (key(r.rtt_ms), r.rtt_ms)).collect();
        let rtt_index = |v: f64| rtts.keys().position(|k| *k == key(v)).unwrap_or(0);
        // Loss given as a probability (all ≤ 1) is shown in percent.
        let as_pct = rows.iter().all(|r| r.loss <= 1.0);
        let shown = |r: &WindowingRow| if as_pct { 100.0 * r.loss } else { r.loss };
        let levels: BTreeMap<i64, f64> = rows.iter().map(|r| (key(shown(r)), shown(r))).collect();
        let level_values: Vec<f64> = levels.values().copied().collect();
        // A row's position on the x axis: the index of its loss level.
        let loss = |r: &WindowingRow| levels.keys().position(|k| *k == key(shown(r))).unwrap_or(0) as f64;
        let x_end = (levels.len().max(1) - 1) as f64 + 0.35;
        let values = || rows.iter().flat_map(|r| [r.goodput_mbps, r.bound_mbps]);
        let y_max = values().fold(0.0, f64::max);
        // Failed transfers (goodput 0) are drawn on the floor of a log axis.
        let y_min = values().filter(|v| *v > 0.0).fold(f64::MAX, f64::min);
        let log = y_min < f64::MAX && y_max / y_min >= 20.0;

        let area = header(
            root,
            "SCP windowing: goodput against packet loss",
            &format!(
                "{} policies · {} round-trip times · {} measurements",
                policies.len(),
                rtts.len(),
                rows.len()
            ),
        )?;
        let mut items: Vec<(Key, String)> = rtts
            .values()
            .enumerate()
            .map(|(i, v)| (Key::Line(series_colour(i)), format!("RTT {} ms", format::tick(*v))))
            .collect();
        items.extend(
            policies
                .iter()
                .enumerate()
                .map(|(i, p)| (Key::Marker(MARKERS[i % MARKERS.len()], GREY_TEXT), p.to_string())),
        );
        items.push((Key::Dashed(GREY_TEXT), "bound".to_string()));
        let (w, _) = area.dim_in_pixel();
        let (leg, area) = area.split_vertically(legend_height(&area, &items, w));
        legend_strip(&leg, &items)?;

        if ops.is_empty() {
            ops.push("");
        }
        let panels = area.split_evenly((1, ops.len()));
        for (panel, op) in panels.iter().zip(&ops) {
            let here: Vec<&WindowingRow> = rows.iter().filter(|r| r.op == *op).collect();
            let mut lines: BTreeMap<(usize, i64), Vec<(f64, f64)>> = BTreeMap::new();
            for r in &here {
                let p = policies.iter().position(|p| *p == r.policy).unwrap_or(0);
                lines
                    .entry((p, key(r.rtt_ms)))
                    .or_default()
                    .push((loss(r), r.goodput_mbps));
            }
            let mut data = PanelData {
                lines: Vec::new(),
                bounds: Vec::new(),
            };
            for ((p, rtt), mut pts) in lines {
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                let colour = rtt_index(rtts[&rtt]);
                let mut bound: Vec<(f64, f64)> = here
                    .iter()
                    .filter(|r| r.policy == policies[p] && key(r.rtt_ms) == rtt)
                    .map(|r| (loss(r), r.bound_mbps))
                    .collect();
                bound.sort_by(|a, b| a.0.total_cmp(&b.0));
                // Identical bounds of several policies are drawn once.
                if !bound.is_empty() && !data.bounds.iter().any(|(c, b)| *c == colour && *b == bound) {
                    data.bounds.push((colour, bound));
                }
                data.lines.push(PanelLine {
                    colour,
                    marker: p % MARKERS.len(),
                    pts,
                });
            }

            let mut b = ChartBuilder::on(panel);
            b.margin_left(10)
                .margin_right(30)
                .margin_bottom(8)
                .x_label_area_size(64)
                .y_label_area_size(96);
            if ops.len() > 1 || !op.is_empty() {
                b.caption(format!("op: {op}"), bold(LEGEND_PX));
            }
            let x_range = -0.35..x_end;
            if log {
                let lo = 10f64.powf((y_min * 0.8).log10().floor());
                let hi = y_max * 1.3;
                let mut keys = Vec::new();
                let mut decade = lo;
                while decade <= hi {
                    keys.extend(
                        [1.0, 2.0, 5.0]
                            .map(|m| m * decade)
                            .into_iter()
                            .filter(|v| *v >= lo && *v <= hi),
                    );
                    decade *= 10.0;
                }
                let mut chart = b
                    .build_cartesian_2d(x_range, (lo..hi).log_scale().with_key_points(keys))
                    .ok_draw()?;
                let mut floored = data.clone();
                for line in &mut floored.lines {
                    for p in &mut line.pts {
                        p.1 = p.1.max(lo);
                    }
                }
                fill_panel(
                    &mut chart,
                    &floored,
                    (as_pct, &level_values),
                    "goodput (Mbit/s, log scale)",
                    here.is_empty(),
                )?;
            } else {
                let mut chart = b.build_cartesian_2d(x_range, 0.0..y_end(y_max)).ok_draw()?;
                fill_panel(
                    &mut chart,
                    &data,
                    (as_pct, &level_values),
                    "goodput (Mbit/s)",
                    here.is_empty(),
                )?;
            }
        }
        Ok(())
    }
}

fn fill_panel<DB: DrawingBackend, Y: Ranged<ValueType = f64> + ValueFormatter<f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, Y>>,
    data: &PanelData,
    (as_pct, levels): (bool, &[f64]),
    y_desc: &str,
    empty: bool,
) -> Result<()> {
    // Ticks at the loss levels only, labelled with their values.
    let level_label = |v: &f64| {
        let i = v.round();
        if (v - i).abs() > 1e-6 || i < 0.0 {
            return String::new();
        }
        levels.get(i as usize).map(|l| format::tick(*l)).unwrap_or_default()
    };
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .x_labels(levels.len().max(2))
        .y_labels(10)
        .x_label_formatter(&level_label)
        .y_label_formatter(&|v| format::tick_sig(*v))
        .x_desc(if as_pct {
            "packet loss (%, levels evenly spaced)"
        } else {
            "packet loss (levels evenly spaced)"
        })
        .y_desc(y_desc)
        .label_style(text(TICK_PX))
        .axis_desc_style(text(AXIS_DESC_PX))
        .draw()
        .ok_draw()?;
    if empty {
        return centre_note(&chart.plotting_area().strip_coord_spec(), "no data");
    }
    for (colour, bound) in &data.bounds {
        chart
            .draw_series(DashedLineSeries::new(
                bound.clone(),
                12,
                7,
                series_colour(*colour).stroke_width(2),
            ))
            .ok_draw()?;
    }
    let area = chart.plotting_area().strip_coord_spec();
    let (ax, ay) = area.get_base_pixel();
    for line in &data.lines {
        let colour = series_colour(line.colour);
        chart
            .draw_series(LineSeries::new(line.pts.clone(), colour.stroke_width(3)))
            .ok_draw()?;
        for pt in &line.pts {
            let (px, py) = chart.backend_coord(pt);
            draw_marker(&area, MARKERS[line.marker], (px - ax, py - ay), 6, colour)?;
        }
    }
    Ok(())
}
