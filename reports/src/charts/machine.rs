//! `machine_<name>.{png,svg}`: a map of one machine, every board a hexagon coloured by the share
//! of the utilisation window (first submission to last release) it spent allocated, dead boards black with a cross, dead links as vermillion bars on
//! the board's edge in the link's direction.
//!
//! Layout follows the reference (`spalloc_server` coordinates): a board's Ethernet chip is at
//! (12x, 12y) plus (0,0), (8,4) or (4,8) for z = 0, 1, 2, so within a triad board 1 sits right of
//! and half a hexagon above board 0 and board 2 directly above it; each row of triads is drawn
//! shifted left by half a triad. Chip coordinates are hexagonal, drawn with the y axis at 120°.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::data::{Board, Link, RunData};
use crate::format;
use crate::style::*;

const SQRT3_2: f64 = 0.866_025_403_784_438_6;

/// Chip (hexagonal) coordinates to drawing coordinates.
fn screen(cx: f64, cy: f64) -> (f64, f64) {
    (cx - 0.5 * cy, SQRT3_2 * cy)
}

/// The corner chips of a board relative to its Ethernet chip, anticlockwise from the bottom-left:
/// the edge from corner i to i+1 faces south, east, north-east, north, west, south-west.
const CORNERS: [(f64, f64); 6] = [(0.0, 0.0), (4.0, 0.0), (7.0, 3.0), (7.0, 7.0), (4.0, 7.0), (0.0, 3.0)];
const CENTRE: (f64, f64) = (11.0 / 3.0, 10.0 / 3.0);
/// Outward scale of the corner hexagon: 1.14 would tile the plane; less leaves a white gap.
const SCALE: f64 = 1.08;

fn edge_of(link: Link) -> usize {
    match link {
        Link::South => 0,
        Link::East => 1,
        Link::NorthEast => 2,
        Link::North => 3,
        Link::West => 4,
        Link::SouthWest => 5,
    }
}

fn ethernet_chip(b: &Board) -> (f64, f64) {
    let (ox, oy) = match b.z {
        0 => (0.0, 0.0),
        1 => (8.0, 4.0),
        _ => (4.0, 8.0),
    };
    (12.0 * b.x as f64 + ox, 12.0 * b.y as f64 + oy)
}

/// The hexagon of a board in drawing coordinates.
pub fn hexagon(b: &Board, scale: f64) -> [(f64, f64); 6] {
    let (ex, ey) = ethernet_chip(b);
    CORNERS.map(|(cx, cy)| {
        let px = CENTRE.0 + scale * (cx - CENTRE.0);
        let py = CENTRE.1 + scale * (cy - CENTRE.1);
        screen(ex + px, ey + py)
    })
}

fn board_centre(b: &Board) -> (f64, f64) {
    let (ex, ey) = ethernet_chip(b);
    screen(ex + CENTRE.0, ey + CENTRE.1)
}

/// Turns a machine name into a file-name-safe stem.
pub fn file_stem(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("machine_{}", if s.is_empty() { "unnamed".to_string() } else { s })
}

pub struct MachineMap<'a> {
    pub run: &'a RunData,
    pub machine: &'a str,
}

impl Chart for MachineMap<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let run = self.run;
        let duration = run.utilisation_window_s();
        let boards: Vec<&Board> = run.boards.iter().filter(|b| b.machine == self.machine).collect();
        let busy = |b: &Board| (b.allocated_s / duration).clamp(0.0, 1.0);
        let live: Vec<&&Board> = boards.iter().filter(|b| !b.dead).collect();
        let dead = boards.len() - live.len();
        let links: usize = boards.iter().map(|b| b.dead_links.len()).sum();
        let w = boards.iter().map(|b| b.x + 1).max().unwrap_or(0);
        let h = boards.iter().map(|b| b.y + 1).max().unwrap_or(0);
        let retired: Vec<[u32; 3]> = run
            .summary
            .machines
            .iter()
            .find(|m| m.name == self.machine)
            .map(|m| m.retired_boards.clone())
            .unwrap_or_default();
        let is_retired = |b: &Board| retired.contains(&[b.x, b.y, b.z]);
        let mut sub = vec![
            format!("{w} × {h} triads"),
            format!("{} boards, {dead} dead", boards.len()),
            format!("{links} dead link{}", if links == 1 { "" } else { "s" }),
        ];

        if !live.is_empty() {
            let mean = live.iter().map(|b| busy(b)).sum::<f64>() / live.len() as f64;
            let max = live.iter().map(|b| busy(b)).fold(0.0, f64::max);
            sub.push(format!(
                "boards allocated {} of the time on average, busiest {}",
                format::pct(mean),
                format::pct(max)
            ));
        }
        let area = header(
            root,
            &format!("Machine {} — how busy each board was", self.machine),
            &sub.join("  ·  "),
        )?;
        let mut items = vec![
            (Key::DeadBoard, "dead board".to_string()),
            (
                Key::Line(OI_VERMILLION),
                "dead link (on the side it leaves from)".to_string(),
            ),
        ];
        if !retired.is_empty() {
            let n = retired.len();
            let label = format!(
                "{n} board{} retired by the health policy",
                if n == 1 { "" } else { "s" }
            );
            items.push((Key::RetiredBoard, label));
        }
        let (_, ah) = area.dim_in_pixel();
        let (area, leg) = area.split_vertically(ah - 44);
        legend_strip(&leg, &items)?;
        let (aw, _) = area.dim_in_pixel();
        let (map, bar) = area.split_horizontally(aw - 170);
        colour_bar(
            &bar,
            &format!(
                "time allocated (% of {} from first submission)",
                format::duration(duration)
            ),
        )?;
        if boards.is_empty() {
            return centre_note(&map, "no boards in boards.csv");
        }

        // Fit the drawing with equal scales on both axes, leaving room for the triad labels.
        let hexes: Vec<[(f64, f64); 6]> = boards.iter().map(|b| hexagon(b, SCALE)).collect();
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for p in hexes.iter().flatten() {
            x0 = x0.min(p.0);
            x1 = x1.max(p.0);
            y0 = y0.min(p.1);
            y1 = y1.max(p.1);
        }
        let (mw, mh) = map.dim_in_pixel();
        let (pad_l, pad_r, pad_t, pad_b) = (70.0, 20.0, 16.0, 56.0);
        let sx = (mw as f64 - pad_l - pad_r) / (x1 - x0).max(1.0);
        let sy = (mh as f64 - pad_t - pad_b) / (y1 - y0).max(1.0);
        let s = sx.min(sy).max(1e-6);
        let cx = (x0 + x1) / 2.0 + (pad_r - pad_l) / 2.0 / s;
        let cy = (y0 + y1) / 2.0 + (pad_t - pad_b) / 2.0 / s;
        let half_w = mw as f64 / 2.0 / s;
        let half_h = mh as f64 / 2.0 / s;
        let mut chart = ChartBuilder::on(&map)
            .build_cartesian_2d((cx - half_w)..(cx + half_w), (cy - half_h)..(cy + half_h))
            .ok_draw()?;

        let cross = WHITE.stroke_width(((s * 0.5).round() as u32).clamp(2, 5));
        for (b, hex) in boards.iter().zip(&hexes) {
            if b.dead {
                chart
                    .draw_series([Polygon::new(hex.to_vec(), DEAD_GREY.filled())])
                    .ok_draw()?;
                let (c0, c1) = board_centre(b);
                let r = 1.7;
                chart
                    .draw_series([
                        PathElement::new(vec![(c0 - r, c1 - r), (c0 + r, c1 + r)], cross),
                        PathElement::new(vec![(c0 - r, c1 + r), (c0 + r, c1 - r)], cross),
                    ])
                    .ok_draw()?;
            } else {
                chart
                    .draw_series([Polygon::new(hex.to_vec(), viridis(busy(b)).filled())])
                    .ok_draw()?;
            }
        }
        // Retired boards: a thick black frame with a white inner line, over their colour.
        let frame_px = ((s * 0.4).round() as u32).clamp(3, 6);
        for b in boards.iter().filter(|b| !b.dead && is_retired(b)) {
            let mut outer = hexagon(b, SCALE * 0.97).to_vec();
            outer.push(outer[0]);
            let mut inner = hexagon(b, SCALE * 0.85).to_vec();
            inner.push(inner[0]);
            chart
                .draw_series([PathElement::new(outer, BLACK.stroke_width(frame_px))])
                .ok_draw()?;
            chart
                .draw_series([PathElement::new(inner, WHITE.stroke_width(2))])
                .ok_draw()?;
        }
        // Dead links after every board so that no neighbour paints over them.
        let link_px = ((s * 0.5).round() as u32).clamp(4, 7);
        for b in &boards {
            if b.dead_links.is_empty() {
                continue;
            }
            let hex = hexagon(b, SCALE * 0.97);
            for l in &b.dead_links {
                let e = edge_of(*l);
                let (p, q) = (hex[e], hex[(e + 1) % 6]);
                let a = (p.0 + 0.05 * (q.0 - p.0), p.1 + 0.05 * (q.1 - p.1));
                let z = (p.0 + 0.95 * (q.0 - p.0), p.1 + 0.95 * (q.1 - p.1));
                // A white halo keeps the bar visible on every viridis colour.
                chart
                    .draw_series([PathElement::new(vec![a, z], WHITE.stroke_width(link_px + 2))])
                    .ok_draw()?;
                chart
                    .draw_series([PathElement::new(vec![a, z], OI_VERMILLION.stroke_width(link_px))])
                    .ok_draw()?;
                // On small hexagons (big machines) a dot at the edge's middle keeps it findable.
                if s < 16.0 {
                    let mid = ((p.0 + q.0) / 2.0, (p.1 + q.1) / 2.0);
                    let r = link_px as i32 + 1;
                    chart.draw_series([Circle::new(mid, r + 1, WHITE.filled())]).ok_draw()?;
                    chart
                        .draw_series([Circle::new(mid, r, OI_VERMILLION.filled())])
                        .ok_draw()?;
                }
            }
        }

        // Triad coordinates: x under the bottom row, y left of each row.
        let triad_px = 12.0 * s;
        let step = (1..).find(|k| triad_px * *k as f64 >= 28.0).unwrap_or(1);
        let label = text(TICK_PX).pos(Pos::new(HPos::Center, VPos::Top));
        for x in (0..w).step_by(step) {
            let (lx, _) = screen(12.0 * x as f64 + 6.0, 0.0);
            chart
                .draw_series([Text::new(x.to_string(), (lx, y0 - 0.4), label.clone())])
                .ok_draw()?;
        }
        // A row's left edge is at x = LEFT − 6y chips (rows shift left by half a triad).
        const LEFT: f64 = -1.8;
        let label = text(TICK_PX).pos(Pos::new(HPos::Right, VPos::Center));
        let row_label = |y: u32| (LEFT - 6.0 * y as f64 - 8.0 / s, SQRT3_2 * (12.0 * y as f64 + 6.0));
        for y in (0..h).step_by(step) {
            chart
                .draw_series([Text::new(y.to_string(), row_label(y), label.clone())])
                .ok_draw()?;
        }
        let (tx, ty) = row_label(h.saturating_sub(1));
        chart
            .draw_series([Text::new(
                "triad y",
                (tx, ty + 16.0 / s),
                grey(NOTE_PX).pos(Pos::new(HPos::Right, VPos::Bottom)),
            )])
            .ok_draw()?;
        let (x_left, _) = screen(0.0, 0.0);
        let (x_right, _) = screen(12.0 * w as f64, 0.0);
        chart
            .draw_series([Text::new(
                "triad x",
                ((x_left + x_right) / 2.0, y0 - 0.4 - 26.0 / s),
                grey(NOTE_PX).pos(Pos::new(HPos::Center, VPos::Top)),
            )])
            .ok_draw()?;
        Ok(())
    }
}

/// A vertical viridis colour bar from 0 to 100 %.
fn colour_bar<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, desc: &str) -> Result<()> {
    let (_, h) = area.dim_in_pixel();
    let margin = (h / 8).max(20);
    let mut chart = ChartBuilder::on(area)
        .margin_top(margin)
        .margin_bottom(margin)
        .margin_right(96)
        .y_label_area_size(58)
        .build_cartesian_2d(0.0..1.0, 0.0..100.0)
        .ok_draw()?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .disable_y_mesh()
        .y_labels(6)
        .y_label_formatter(&|v| format!("{} %", format::tick(*v)))
        .set_tick_mark_size(LabelAreaPosition::Left, 8)
        .label_style(text(TICK_PX))
        .draw()
        .ok_draw()?;
    chart
        .draw_series((0..100).map(|i| {
            let v = i as f64;
            Rectangle::new([(0.0, v), (1.0, v + 1.0)], viridis((v + 0.5) / 100.0).filled())
        }))
        .ok_draw()?;
    let (w, _) = area.dim_in_pixel();
    area.draw_text(
        desc,
        &text(AXIS_DESC_PX)
            .transform(FontTransform::Rotate90)
            .pos(Pos::new(HPos::Center, VPos::Center)),
        (w as i32 - 60, (h / 2) as i32),
    )
    .ok_draw()?;
    Ok(())
}

/// `compare`'s version: every live board's busy share, sorted, one curve per run — flat means
/// evenly spread work, steep means a few boards did most of it.
pub struct BoardsCompare<'a> {
    pub runs: &'a [(String, RunData)],
}

impl Chart for BoardsCompare<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let curves: Vec<Vec<f64>> = self
            .runs
            .iter()
            .map(|(_, r)| {
                let d = r.utilisation_window_s();
                let mut v: Vec<f64> = r
                    .boards
                    .iter()
                    .filter(|b| !b.dead)
                    .map(|b| 100.0 * (b.allocated_s / d).clamp(0.0, 1.0))
                    .collect();
                v.sort_by(|a, b| b.total_cmp(a));
                v
            })
            .collect();
        let sub = self
            .runs
            .iter()
            .zip(&curves)
            .map(|((n, _), c)| match crate::stats::mean(c) {
                Some(m) => format!("{n}: mean {} %", format::sig3(m)),
                None => format!("{n}: no boards"),
            })
            .collect::<Vec<_>>()
            .join("  ·  ");
        let area = header(root, "How evenly were the boards used?", &sub)?;
        let items: Vec<(Key, String)> = self
            .runs
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (Key::Line(series_colour(i)), n.clone()))
            .collect();
        let (w, _) = area.dim_in_pixel();
        let (leg, area) = area.split_vertically(legend_height(&area, &items, w));
        legend_strip(&leg, &items)?;
        let mut chart = ChartBuilder::on(&area)
            .margin_left(10)
            .margin_right(40)
            .margin_bottom(8)
            .x_label_area_size(64)
            .y_label_area_size(96)
            .build_cartesian_2d(0.0..100.0, 0.0..103.0)
            .ok_draw()?;
        chart
            .configure_mesh()
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .x_labels(11)
            .y_labels(11)
            .x_label_formatter(&|v| format!("{} %", format::tick(*v)))
            .y_label_formatter(&|v| {
                if *v <= 100.0 {
                    format!("{} %", format::tick(*v))
                } else {
                    String::new()
                }
            })
            .x_desc("live boards, busiest first (share of the machine's boards)")
            .y_desc("time allocated (% of first submission to last release)")
            .label_style(text(TICK_PX))
            .axis_desc_style(text(AXIS_DESC_PX))
            .draw()
            .ok_draw()?;
        if curves.iter().all(|c| c.is_empty()) {
            return centre_note(&chart.plotting_area().strip_coord_spec(), "no data");
        }
        for (i, c) in curves.iter().enumerate() {
            let n = c.len() as f64;
            let mut pts = Vec::with_capacity(2 * c.len());
            for (k, v) in c.iter().enumerate() {
                pts.push((100.0 * k as f64 / n, *v));
                pts.push((100.0 * (k + 1) as f64 / n, *v));
            }
            let stroke = run_stroke(i, curves.len()) + 1.0;
            crate::style::draw_line(chart.plotting_area(), &pts, series_colour(i), stroke)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(x: u32, y: u32, z: u32) -> Board {
        Board {
            machine: "m".into(),
            x,
            y,
            z,
            dead: false,
            allocated_s: 0.0,
            powered_s: 0.0,
            dead_links: vec![],
        }
    }

    fn dist(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
        (b.0 - a.0, b.1 - a.1)
    }

    #[test]
    fn triad_layout_matches_the_reference() {
        let b0 = board_centre(&board(0, 0, 0));
        let b1 = board_centre(&board(0, 0, 1));
        let b2 = board_centre(&board(0, 0, 2));
        // Board 1 right of board 0 and a little up; board 2 directly above.
        let d1 = dist(b0, b1);
        assert!(d1.0 > 5.0 && d1.1 > 2.0 && d1.1 < d1.0, "{d1:?}");
        let d2 = dist(b0, b2);
        assert!(d2.0.abs() < 1e-9 && d2.1 > 5.0, "{d2:?}");
        // Higher rows of triads shift left.
        let up = board_centre(&board(0, 1, 0));
        assert!(up.0 < b0.0);
    }

    #[test]
    fn link_edges_face_the_neighbour() {
        // (z, link) → (dx, dy, dz) from the reference's table, for z = 0.
        let cases = [
            (Link::East, (0, -1, 2)),
            (Link::NorthEast, (0, 0, 1)),
            (Link::North, (0, 0, 2)),
            (Link::West, (-1, 0, 1)),
            (Link::SouthWest, (-1, -1, 2)),
            (Link::South, (-1, -1, 1)),
        ];
        let b = board(5, 5, 0);
        let c = board_centre(&b);
        let hex = hexagon(&b, 1.0);
        for (link, (dx, dy, dz)) in cases {
            let n = board_centre(&board((5 + dx) as u32, (5 + dy) as u32, dz));
            let e = edge_of(link);
            let mid = (
                (hex[e].0 + hex[(e + 1) % 6].0) / 2.0,
                (hex[e].1 + hex[(e + 1) % 6].1) / 2.0,
            );
            let to_n = dist(c, n);
            let to_edge = dist(c, mid);
            let cos =
                (to_n.0 * to_edge.0 + to_n.1 * to_edge.1) / ((to_n.0.hypot(to_n.1)) * (to_edge.0.hypot(to_edge.1)));
            assert!(cos > 0.95, "{link:?}: cos {cos}");
        }
    }

    #[test]
    fn stems_are_file_safe() {
        assert_eq!(file_stem("SpiNNaker1M"), "machine_SpiNNaker1M");
        assert_eq!(file_stem("a b/c"), "machine_a_b_c");
        assert_eq!(file_stem(""), "machine_unnamed");
    }
}
