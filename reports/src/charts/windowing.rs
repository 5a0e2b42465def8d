//! The SCP windowing study's charts.
//!
//! `windowing.{png,svg}` (and `windowing-<condition>.{png,svg}` for each further network
//! condition): goodput against packet loss for one network condition, one panel per
//! operation, one line per (policy, round-trip time) with the analytic bound for each
//! round-trip time dashed in grey. Colour tells the policy (policies after the seventh are drawn
//! dashed in the colours again), the marker tells the round-trip time. The loss levels are
//! evenly spaced (0, 0.1 %, 1 %, 5 %, 10 % would crowd the first two together on a linear axis
//! and cannot sit on a log axis). When goodput spans more than a factor of 20 the goodput axis
//! is logarithmic.
//!
//! `windowing-winners.{png,svg}`: one panel per network condition, a pair of bars (read, write)
//! per policy: its geometric-mean goodput over the condition's loss × RTT cells as a share of
//! the best policy's, so the winner of each condition reaches 1 and the others show by how much
//! they trail.

use std::collections::BTreeMap;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::data::WindowingRow;
use crate::format;
use crate::style::*;

/// Goodput at or below this counts as this much in geometric means (failed transfers).
const FLOOR_MBPS: f64 = 1e-3;

/// Goodput against loss for one network condition.
pub struct Windowing<'a> {
    pub rows: &'a [WindowingRow],
    /// The condition drawn (`None`: rows of every condition, as for a file without conditions).
    pub network: Option<&'a str>,
}

/// The network conditions of a study's rows, in order of first appearance.
pub fn networks(rows: &[WindowingRow]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for r in rows {
        if !out.contains(&r.network.as_str()) {
            out.push(&r.network);
        }
    }
    out
}

/// The policies of a study's rows, in order of first appearance.
fn policies(rows: &[WindowingRow]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for r in rows {
        if !out.contains(&r.policy.as_str()) {
            out.push(&r.policy);
        }
    }
    out
}

/// Total order key for an `f64` that is known to be finite.
fn key(v: f64) -> i64 {
    (v * 1e6).round() as i64
}

/// One measured line: policy index, RTT marker index, points.
#[derive(Clone)]
struct PanelLine {
    policy: usize,
    marker: usize,
    pts: Vec<(f64, f64)>,
}

/// What one panel draws.
#[derive(Clone)]
struct PanelData {
    lines: Vec<PanelLine>,
    /// Each distinct bound curve once.
    bounds: Vec<Vec<(f64, f64)>>,
}

/// Policy `i`'s colour and whether its line is dashed (after the seventh policy).
fn policy_style(i: usize) -> (RGBColor, bool) {
    (series_colour(i), i >= SERIES.len())
}

impl Chart for Windowing<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let all = self.rows;
        let rows: Vec<&WindowingRow> = all
            .iter()
            .filter(|r| self.network.is_none_or(|n| r.network == n))
            .collect();
        // Orders of first appearance for ops and policies (over the whole study, so that a
        // policy keeps its colour in every condition's chart), numeric order for RTTs.
        let mut ops: Vec<&str> = Vec::new();
        for r in &rows {
            if !ops.contains(&r.op.as_str()) {
                ops.push(&r.op);
            }
        }
        let policies = policies(all);
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

        let title = match self.network {
            Some(n) if networks(all).len() > 1 => format!("SCP windowing, network \"{n}\": goodput against loss"),
            _ => "SCP windowing: goodput against packet loss".to_string(),
        };
        let here_policies = rows.iter().fold(Vec::<&str>::new(), |mut v, r| {
            if !v.contains(&r.policy.as_str()) {
                v.push(&r.policy);
            }
            v
        });
        let area = header(
            root,
            &title,
            &format!(
                "{} policies · {} round-trip times · {} cells",
                here_policies.len(),
                rtts.len(),
                rows.len()
            ),
        )?;
        let mut items: Vec<(Key, String)> = here_policies
            .iter()
            .map(|p| {
                let i = policies.iter().position(|q| q == p).unwrap_or(0);
                let (c, dashed) = policy_style(i);
                (if dashed { Key::Dashed(c) } else { Key::Line(c) }, p.to_string())
            })
            .collect();
        items.extend(rtts.values().enumerate().map(|(i, v)| {
            (
                Key::Marker(MARKERS[i % MARKERS.len()], GREY_TEXT),
                format!("RTT {} ms", format::tick(*v)),
            )
        }));
        items.push((Key::Dashed(GREY_TEXT), "bound (window of 8)".to_string()));
        let (w, _) = area.dim_in_pixel();
        let (leg, area) = area.split_vertically(legend_height(&area, &items, w));
        legend_strip(&leg, &items)?;

        if ops.is_empty() {
            ops.push("");
        }
        let panels = area.split_evenly((1, ops.len()));
        for (panel, op) in panels.iter().zip(&ops) {
            let here: Vec<&WindowingRow> = rows.iter().copied().filter(|r| r.op == *op).collect();
            let mut lines: BTreeMap<(usize, i64), Vec<(f64, f64)>> = BTreeMap::new();
            let mut bound_lines: BTreeMap<i64, Vec<(f64, f64)>> = BTreeMap::new();
            for r in &here {
                let p = policies.iter().position(|p| *p == r.policy).unwrap_or(0);
                lines
                    .entry((p, key(r.rtt_ms)))
                    .or_default()
                    .push((loss(r), r.goodput_mbps));
                let b = bound_lines.entry(key(r.rtt_ms)).or_default();
                if !b.iter().any(|(x, _)| *x == loss(r)) {
                    b.push((loss(r), r.bound_mbps));
                }
            }
            let mut data = PanelData {
                lines: Vec::new(),
                bounds: Vec::new(),
            };
            for (_, mut b) in bound_lines {
                b.sort_by(|a, b| a.0.total_cmp(&b.0));
                if !data.bounds.contains(&b) {
                    data.bounds.push(b);
                }
            }
            for ((p, rtt), mut pts) in lines {
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                data.lines.push(PanelLine {
                    policy: p,
                    marker: rtt_index(rtts[&rtt]) % MARKERS.len(),
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
    for bound in &data.bounds {
        chart
            .draw_series(DashedLineSeries::new(bound.clone(), 12, 7, GREY_TEXT.stroke_width(2)))
            .ok_draw()?;
    }
    let area = chart.plotting_area().strip_coord_spec();
    let (ax, ay) = area.get_base_pixel();
    for line in &data.lines {
        let (colour, dashed) = policy_style(line.policy);
        if dashed {
            chart
                .draw_series(DashedLineSeries::new(line.pts.clone(), 10, 6, colour.stroke_width(3)))
                .ok_draw()?;
        } else {
            chart
                .draw_series(LineSeries::new(line.pts.clone(), colour.stroke_width(3)))
                .ok_draw()?;
        }
        for pt in &line.pts {
            let (px, py) = chart.backend_coord(pt);
            draw_marker(&area, MARKERS[line.marker], (px - ax, py - ay), 6, colour)?;
        }
    }
    Ok(())
}

/// Each policy's geometric-mean goodput per (network, op), as a share of the best.
pub struct WindowingWinners<'a> {
    pub rows: &'a [WindowingRow],
}

/// A policy's sum of log goodputs and how many cells it has.
type LogSum = (String, f64, usize);

/// Per (network, op): each policy's geometric-mean goodput over the loss × RTT cells divided by
/// the best policy's (failed cells count as 0.001 Mbit/s).
pub fn standings(rows: &[WindowingRow]) -> BTreeMap<(String, String), Vec<(String, f64)>> {
    let mut sums: BTreeMap<(String, String), Vec<LogSum>> = BTreeMap::new();
    for r in rows {
        let v = sums.entry((r.network.clone(), r.op.clone())).or_default();
        let ln = r.goodput_mbps.max(FLOOR_MBPS).ln();
        match v.iter_mut().find(|(p, _, _)| *p == r.policy) {
            Some(e) => {
                e.1 += ln;
                e.2 += 1;
            }
            None => v.push((r.policy.clone(), ln, 1)),
        }
    }
    sums.into_iter()
        .map(|(k, v)| {
            let means: Vec<(String, f64)> = v.into_iter().map(|(p, s, n)| (p, (s / n as f64).exp())).collect();
            let best = means.iter().map(|(_, m)| *m).fold(0.0, f64::max);
            (
                k,
                means
                    .into_iter()
                    .map(|(p, m)| (p, if best > 0.0 { m / best } else { 0.0 }))
                    .collect(),
            )
        })
        .collect()
}

impl Chart for WindowingWinners<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let rows = self.rows;
        let mut nets = networks(rows);
        let empty = nets.is_empty();
        if empty {
            // One empty panel, axes and all, saying so.
            nets.push("");
        }
        let policies = policies(rows);
        let mut ops: Vec<&str> = Vec::new();
        for r in rows {
            if !ops.contains(&r.op.as_str()) {
                ops.push(&r.op);
            }
        }
        let table = standings(rows);
        let area = header(
            root,
            "SCP windowing: which policy wins each network condition",
            "geometric-mean goodput over the loss × RTT cells, as a share of the condition's best policy",
        )?;
        let items: Vec<(Key, String)> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| (Key::Swatch(series_colour(i)), op.to_string()))
            .collect();
        let (w, _) = area.dim_in_pixel();
        let (leg, area) = area.split_vertically(legend_height(&area, &items, w));
        legend_strip(&leg, &items)?;
        let cols = nets.len().min(3);
        let rows_n = nets.len().div_ceil(cols);
        let panels = area.split_evenly((rows_n, cols));
        let n_pol = policies.len().max(1);
        for (panel, net) in panels.iter().zip(&nets) {
            let mut b = ChartBuilder::on(panel);
            b.margin_left(6)
                .margin_right(16)
                .margin_top(4)
                .margin_bottom(4)
                .x_label_area_size(36)
                .y_label_area_size(150)
                .caption(
                    if net.is_empty() && !empty {
                        "network: (unnamed)".to_string()
                    } else if empty {
                        "no network condition".to_string()
                    } else {
                        format!("network: {net}")
                    },
                    bold(LEGEND_PX),
                );
            let mut chart = b.build_cartesian_2d(0.0..1.05, 0.0..n_pol as f64).ok_draw()?;
            let label = |v: &f64| {
                // Policy names at the middle of their band, first policy at the top.
                let i = v.floor();
                if (v - i - 0.5).abs() > 1e-6 || i < 0.0 || i as usize >= n_pol {
                    return String::new();
                }
                let Some(name) = policies.get(n_pol - 1 - i as usize) else {
                    return String::new();
                };
                let mut s: String = name.chars().take(18).collect();
                if name.chars().count() > 18 {
                    s.push('…');
                }
                s
            };
            chart
                .configure_mesh()
                .bold_line_style(GRID)
                .light_line_style(TRANSPARENT)
                .disable_y_mesh()
                .x_labels(6)
                .y_labels(n_pol * 2 + 1)
                .y_label_formatter(&label)
                .x_label_formatter(&|v| format::tick_sig(*v))
                .label_style(text(TICK_PX - 3.0))
                .draw()
                .ok_draw()?;
            if empty {
                centre_note(&chart.plotting_area().strip_coord_spec(), "no data")?;
                continue;
            }
            let band = 0.8 / ops.len().max(1) as f64;
            for (oi, op) in ops.iter().enumerate() {
                let Some(st) = table.get(&(net.to_string(), op.to_string())) else {
                    continue;
                };
                for (p, share) in st {
                    let Some(pi) = policies.iter().position(|q| q == p) else {
                        continue;
                    };
                    let y0 = (n_pol - 1 - pi) as f64 + 0.1 + band * oi as f64;
                    chart
                        .draw_series(std::iter::once(Rectangle::new(
                            [(0.0, y0), (share.clamp(0.0, 1.0), y0 + band * 0.9)],
                            series_colour(oi).filled(),
                        )))
                        .ok_draw()?;
                }
            }
            // The winner of each op, named in the corner.
            let winners: Vec<String> = ops
                .iter()
                .filter_map(|op| {
                    let st = table.get(&(net.to_string(), op.to_string()))?;
                    let best = st.iter().find(|(_, s)| *s >= 1.0 - 1e-12)?;
                    Some(format!("{op}: {}", best.0))
                })
                .collect();
            let plot = chart.plotting_area().strip_coord_spec();
            let (pw, ph) = plot.dim_in_pixel();
            for (k, line) in winners.iter().enumerate() {
                let t = fit_text(&plot, line, NOTE_PX, pw.saturating_sub(10));
                plot.draw_text(
                    &t,
                    &grey(NOTE_PX).pos(Pos::new(HPos::Right, VPos::Bottom)),
                    (pw as i32 - 4, ph as i32 - 4 - 18 * (winners.len() - 1 - k) as i32),
                )
                .ok_draw()?;
            }
        }
        Ok(())
    }
}
