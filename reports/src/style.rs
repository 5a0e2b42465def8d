//! The look shared by every chart: the embedded font, the colour-blind-safe palettes
//! (Okabe–Ito for categories, viridis for magnitudes), text sizes, the time axis, legends drawn
//! in their own strip, and the `Chart` trait that renders one drawing to both PNG and SVG.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Every chart is drawn at this size, in pixels.
pub const WIDTH: u32 = 1200;
pub const HEIGHT: u32 = 800;

pub const FONT: &str = "sans-serif";
pub const TITLE_PX: f64 = 30.0;
pub const SUBTITLE_PX: f64 = 19.0;
pub const AXIS_DESC_PX: f64 = 20.0;
pub const TICK_PX: f64 = 17.0;
pub const LEGEND_PX: f64 = 18.0;
pub const NOTE_PX: f64 = 16.0;

/// Okabe–Ito colours.
pub const OI_BLACK: RGBColor = RGBColor(0, 0, 0);
pub const OI_ORANGE: RGBColor = RGBColor(0xE6, 0x9F, 0x00);
pub const OI_SKY: RGBColor = RGBColor(0x56, 0xB4, 0xE9);
pub const OI_GREEN: RGBColor = RGBColor(0x00, 0x9E, 0x73);
pub const OI_BLUE: RGBColor = RGBColor(0x00, 0x72, 0xB2);
pub const OI_VERMILLION: RGBColor = RGBColor(0xD5, 0x5E, 0x00);
pub const OI_PURPLE: RGBColor = RGBColor(0xCC, 0x79, 0xA7);
/// Okabe–Ito yellow: too pale for lines, used only for shaded spans (faults).
pub const OI_YELLOW: RGBColor = RGBColor(0xF0, 0xE4, 0x42);
/// How strongly a fault's span is shaded.
pub const FAULT_ALPHA: f64 = 0.45;

pub const GREY_TEXT: RGBColor = RGBColor(0x55, 0x55, 0x55);
pub const GRID: RGBColor = RGBColor(0xE4, 0xE4, 0xE4);
pub const IDLE_GREY: RGBColor = RGBColor(0xD4, 0xD4, 0xD4);
pub const DEAD_GREY: RGBColor = RGBColor(0x3A, 0x3A, 0x3A);

/// Series colours in order: Okabe–Ito without its yellow (#F0E442, too pale for lines on white).
pub const SERIES: [RGBColor; 7] = [OI_BLUE, OI_ORANGE, OI_GREEN, OI_VERMILLION, OI_PURPLE, OI_SKY, OI_BLACK];

/// `c` at opacity `a` over white, as an opaque colour (for legend swatches of shaded bands).
pub fn tint(c: RGBColor, a: f64) -> RGBColor {
    let m = |v: u8| (v as f64 * a + 255.0 * (1.0 - a)).round() as u8;
    RGBColor(m(c.0), m(c.1), m(c.2))
}

pub fn series_colour(i: usize) -> RGBColor {
    SERIES[i % SERIES.len()]
}

/// Viridis, sampled at nine points; `viridis(t)` interpolates linearly for `t` in 0..=1.
const VIRIDIS: [(u8, u8, u8); 9] = [
    (0x44, 0x01, 0x54),
    (0x47, 0x2c, 0x7a),
    (0x3b, 0x51, 0x8b),
    (0x2c, 0x71, 0x8e),
    (0x21, 0x90, 0x8d),
    (0x27, 0xad, 0x81),
    (0x5c, 0xc8, 0x63),
    (0xaa, 0xdc, 0x32),
    (0xfd, 0xe7, 0x25),
];

pub fn viridis(t: f64) -> RGBColor {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let pos = t * (VIRIDIS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(VIRIDIS.len() - 2);
    let f = pos - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let mix = |x: u8, y: u8| (x as f64 + (y as f64 - x as f64) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Registers the embedded DejaVu Sans as the `sans-serif` family (regular and bold) once per
/// process. Plotters is built without system-font support, so text needs this.
pub fn ensure_fonts() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| "embedded DejaVu Sans is not a valid font".to_string())?;
        plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold())
            .map_err(|_| "embedded DejaVu Sans Bold is not a valid font".to_string())?;
        Ok(())
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

pub fn text(px: f64) -> TextStyle<'static> {
    (FONT, px).into_font().color(&BLACK)
}

pub fn bold(px: f64) -> TextStyle<'static> {
    (FONT, px, FontStyle::Bold).into_font().color(&BLACK)
}

pub fn grey(px: f64) -> TextStyle<'static> {
    (FONT, px).into_font().color(&GREY_TEXT)
}

/// Turns a plotters error (whose type depends on the backend) into an `anyhow` error.
pub trait DrawOk<T> {
    fn ok_draw(self) -> Result<T>;
}

impl<T, E: std::fmt::Display> DrawOk<T> for std::result::Result<T, E> {
    fn ok_draw(self) -> Result<T> {
        self.map_err(|e| anyhow!("drawing failed: {e}"))
    }
}

/// A chart that can draw itself on any plotters backend.
pub trait Chart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// Draws `chart` into `dir/stem.png` and `dir/stem.svg` (1200 × 800) and records both paths.
pub fn render(chart: &impl Chart, dir: &Path, stem: &str, files: &mut Vec<PathBuf>) -> Result<()> {
    ensure_fonts()?;
    let png = dir.join(format!("{stem}.png"));
    {
        let root = BitMapBackend::new(&png, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).ok_draw()?;
        chart
            .draw(&root)
            .with_context(|| format!("drawing {}", png.display()))?;
        root.present()
            .ok_draw()
            .with_context(|| format!("writing {}", png.display()))?;
    }
    let svg = dir.join(format!("{stem}.svg"));
    {
        let root = SVGBackend::new(&svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).ok_draw()?;
        chart
            .draw(&root)
            .with_context(|| format!("drawing {}", svg.display()))?;
        root.present()
            .ok_draw()
            .with_context(|| format!("writing {}", svg.display()))?;
    }
    files.push(png);
    files.push(svg);
    Ok(())
}

/// Draws the title (and an optional grey subtitle) across the top of `root` and returns the rest.
pub fn header<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
) -> Result<DrawingArea<DB, Shift>> {
    let h = if subtitle.is_empty() { 56 } else { 86 };
    let (top, rest) = root.split_vertically(h);
    let (w, _) = top.dim_in_pixel();
    let centre = (w / 2) as i32;
    top.draw_text(
        title,
        &bold(TITLE_PX).pos(Pos::new(HPos::Center, VPos::Top)),
        (centre, 14),
    )
    .ok_draw()?;
    if !subtitle.is_empty() {
        let sub = fit_text(&top, subtitle, SUBTITLE_PX, w.saturating_sub(40));
        top.draw_text(
            &sub,
            &grey(SUBTITLE_PX).pos(Pos::new(HPos::Center, VPos::Top)),
            (centre, 54),
        )
        .ok_draw()?;
    }
    Ok(rest)
}

/// Shortens `s` with an ellipsis until it fits in `max_px` at `px`.
pub fn fit_text<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, s: &str, px: f64, max_px: u32) -> String {
    let width = |t: &str| area.estimate_text_size(t, &text(px)).map(|(w, _)| w).unwrap_or(0);
    if width(s) <= max_px {
        return s.to_string();
    }
    let chars: Vec<char> = s.chars().collect();
    let mut n = chars.len();
    while n > 1 {
        n -= 1;
        let t: String = chars[..n].iter().collect::<String>() + "…";
        if width(&t) <= max_px {
            return t;
        }
    }
    "…".to_string()
}

/// What a legend entry shows before its label.
#[derive(Debug, Clone, Copy)]
pub enum Key {
    /// A filled square.
    Swatch(RGBColor),
    /// A solid line.
    Line(RGBColor),
    /// A dashed line.
    Dashed(RGBColor),
    /// A marker.
    Marker(Marker, RGBColor),
    /// A solid line with a marker on it (a series drawn as a line through marked points).
    LineMarker(Marker, RGBColor),
    /// Nothing (an entry that is only text, such as "… 3 more").
    Blank,
    /// A black square with a white cross (a dead board).
    DeadBoard,
    /// A viridis square in a thick black frame (a board taken out of service).
    RetiredBoard,
    /// A yellow span with a dashed black line at its start (a fault).
    Fault,
}

/// Point markers, distinguishable without colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Circle,
    Triangle,
    Square,
    Diamond,
    Cross,
}

pub const MARKERS: [Marker; 5] = [
    Marker::Circle,
    Marker::Triangle,
    Marker::Square,
    Marker::Diamond,
    Marker::Cross,
];

/// Draws a marker centred on a pixel position.
pub fn draw_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    m: Marker,
    (x, y): (i32, i32),
    r: i32,
    colour: RGBColor,
) -> Result<()> {
    let fill = colour.filled();
    let edge = ShapeStyle {
        color: WHITE.to_rgba(),
        filled: false,
        stroke_width: 1,
    };
    match m {
        Marker::Circle => {
            area.draw(&Circle::new((x, y), r, fill)).ok_draw()?;
            area.draw(&Circle::new((x, y), r, edge)).ok_draw()?;
        }
        Marker::Triangle => {
            let pts = vec![(x, y - r - 1), (x + r + 1, y + r), (x - r - 1, y + r)];
            area.draw(&Polygon::new(pts.clone(), fill)).ok_draw()?;
            area.draw(&PathElement::new(closed(pts), edge)).ok_draw()?;
        }
        Marker::Square => {
            area.draw(&Rectangle::new([(x - r, y - r), (x + r, y + r)], fill))
                .ok_draw()?;
            area.draw(&Rectangle::new([(x - r, y - r), (x + r, y + r)], edge))
                .ok_draw()?;
        }
        Marker::Diamond => {
            let r = r + 1;
            let pts = vec![(x, y - r), (x + r, y), (x, y + r), (x - r, y)];
            area.draw(&Polygon::new(pts.clone(), fill)).ok_draw()?;
            area.draw(&PathElement::new(closed(pts), edge)).ok_draw()?;
        }
        Marker::Cross => {
            let s = colour.stroke_width(3);
            area.draw(&PathElement::new(vec![(x - r, y - r), (x + r, y + r)], s))
                .ok_draw()?;
            area.draw(&PathElement::new(vec![(x - r, y + r), (x + r, y - r)], s))
                .ok_draw()?;
        }
    }
    Ok(())
}

pub fn closed<T: Copy>(mut pts: Vec<T>) -> Vec<T> {
    if let Some(&first) = pts.first() {
        pts.push(first);
    }
    pts
}

/// Draws a key symbol in the 28 × 20 px box whose left-centre is `(x, y)`.
pub fn draw_key<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, key: Key, (x, y): (i32, i32)) -> Result<()> {
    match key {
        Key::Swatch(c) => {
            area.draw(&Rectangle::new([(x + 2, y - 9), (x + 26, y + 9)], c.filled()))
                .ok_draw()?;
            area.draw(&Rectangle::new(
                [(x + 2, y - 9), (x + 26, y + 9)],
                RGBColor(0x88, 0x88, 0x88).stroke_width(1),
            ))
            .ok_draw()?;
        }
        Key::Line(c) => {
            area.draw(&PathElement::new(vec![(x, y), (x + 28, y)], c.stroke_width(4)))
                .ok_draw()?;
        }
        Key::Dashed(c) => {
            for k in 0..3 {
                let x0 = x + k * 11;
                area.draw(&PathElement::new(vec![(x0, y), (x0 + 6, y)], c.stroke_width(3)))
                    .ok_draw()?;
            }
        }
        Key::Marker(m, c) => draw_marker(area, m, (x + 14, y), 7, c)?,
        Key::LineMarker(m, c) => {
            area.draw(&PathElement::new(vec![(x, y), (x + 28, y)], c.stroke_width(3)))
                .ok_draw()?;
            draw_marker(area, m, (x + 14, y), 6, c)?;
        }
        Key::Blank => {}
        Key::Fault => {
            area.draw(&Rectangle::new(
                [(x + 4, y - 10), (x + 24, y + 10)],
                tint(OI_YELLOW, FAULT_ALPHA).filled(),
            ))
            .ok_draw()?;
            for k in 0..4 {
                let y0 = y - 10 + k * 6;
                area.draw(&PathElement::new(
                    vec![(x + 4, y0), (x + 4, y0 + 3)],
                    BLACK.stroke_width(2),
                ))
                .ok_draw()?;
            }
        }
        Key::RetiredBoard => {
            area.draw(&Rectangle::new(
                [(x + 4, y - 10), (x + 24, y + 10)],
                viridis(0.5).filled(),
            ))
            .ok_draw()?;
            area.draw(&Rectangle::new(
                [(x + 4, y - 10), (x + 24, y + 10)],
                BLACK.stroke_width(3),
            ))
            .ok_draw()?;
            area.draw(&Rectangle::new(
                [(x + 7, y - 7), (x + 21, y + 7)],
                WHITE.stroke_width(1),
            ))
            .ok_draw()?;
        }
        Key::DeadBoard => {
            area.draw(&Rectangle::new([(x + 4, y - 10), (x + 24, y + 10)], DEAD_GREY.filled()))
                .ok_draw()?;
            let s = WHITE.stroke_width(2);
            area.draw(&PathElement::new(vec![(x + 8, y - 6), (x + 20, y + 6)], s))
                .ok_draw()?;
            area.draw(&PathElement::new(vec![(x + 8, y + 6), (x + 20, y - 6)], s))
                .ok_draw()?;
        }
    }
    Ok(())
}

/// Height needed for a legend strip of these entries in an area `width` pixels wide.
pub fn legend_height<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, items: &[(Key, String)], width: u32) -> u32 {
    let rows = legend_rows(area, items, width);
    (rows.len() as u32).max(1) * 30 + 8
}

fn legend_rows<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    items: &[(Key, String)],
    width: u32,
) -> Vec<Vec<usize>> {
    let mut rows: Vec<Vec<usize>> = vec![Vec::new()];
    let mut used = 0u32;
    let max = width.saturating_sub(40).max(100);
    for (i, (_, label)) in items.iter().enumerate() {
        let w = item_width(area, label);
        if used > 0 && used + w > max {
            rows.push(Vec::new());
            used = 0;
        }
        used += w;
        rows.last_mut().expect("rows is never empty").push(i);
    }
    rows
}

fn item_width<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, label: &str) -> u32 {
    let tw = area
        .estimate_text_size(label, &text(LEGEND_PX))
        .map(|(w, _)| w)
        .unwrap_or(8 * label.len() as u32);
    34 + tw + 30
}

/// Draws legend entries centred in rows across `area`.
pub fn legend_strip<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, items: &[(Key, String)]) -> Result<()> {
    let (w, _) = area.dim_in_pixel();
    for (r, row) in legend_rows(area, items, w).iter().enumerate() {
        let total: u32 = row
            .iter()
            .map(|&i| item_width(area, &items[i].1))
            .sum::<u32>()
            .saturating_sub(30);
        let mut x = (w.saturating_sub(total) / 2) as i32;
        let y = 18 + 30 * r as i32;
        for &i in row {
            let (key, label) = &items[i];
            draw_key(area, *key, (x, y))?;
            area.draw_text(
                label,
                &text(LEGEND_PX).pos(Pos::new(HPos::Left, VPos::Center)),
                (x + 34, y),
            )
            .ok_draw()?;
            x += item_width(area, label) as i32;
        }
    }
    Ok(())
}

/// Writes a message in the middle of a chart's plotting area ("no data").
pub fn centre_note<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, msg: &str) -> Result<()> {
    let (w, h) = area.dim_in_pixel();
    area.draw_text(
        msg,
        &grey(26.0).pos(Pos::new(HPos::Center, VPos::Center)),
        ((w / 2) as i32, (h / 2) as i32),
    )
    .ok_draw()
}

/// How a time axis is labelled: days for runs longer than two days, hours down to two hours,
/// then minutes, and seconds for runs of two minutes or less (real-time demos).
#[derive(Debug, Clone, Copy)]
pub struct TimeAxis {
    pub seconds_per_unit: f64,
    pub unit: &'static str,
}

impl TimeAxis {
    pub fn for_span(span_s: f64) -> TimeAxis {
        let (seconds_per_unit, unit) = if span_s > 2.0 * 86_400.0 {
            (86_400.0, "days")
        } else if span_s > 2.0 * 3600.0 {
            (3600.0, "h")
        } else if span_s > 120.0 {
            (60.0, "min")
        } else {
            (1.0, "s")
        };
        TimeAxis { seconds_per_unit, unit }
    }
    pub fn to_unit(self, s: f64) -> f64 {
        s / self.seconds_per_unit
    }
    pub fn label(&self) -> String {
        format!("time since start of run ({})", self.unit)
    }
    /// Upper end of the axis, in axis units, for a span in seconds: at least 0.05 units (3 min),
    /// so that three-decimal tick labels stay distinct.
    pub fn end(&self, span_s: f64) -> f64 {
        let e = self.to_unit(span_s);
        if e.is_finite() { e.max(0.05) } else { 1.0 }
    }
}

/// Upper end for a count or rate axis: a little headroom above `max`, never an empty range.
pub fn y_end(max: f64) -> f64 {
    if !max.is_finite() || max <= 0.0 {
        return 1.0;
    }
    let m = max * 1.08;
    let p = 10f64.powf(m.log10().floor());
    for step in [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if step * p >= m {
            return step * p;
        }
    }
    10.0 * p
}

/// The sample series `(t, v)` drawn as steps: each value holds until the next sample, the last
/// one until `t_end`.
pub fn steps(points: &[(f64, f64)], t_end: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len() * 2 + 1);
    for (i, &(t, v)) in points.iter().enumerate() {
        if i > 0 {
            out.push((t, points[i - 1].1));
        }
        out.push((t, v));
    }
    if let Some(&(t, v)) = points.last()
        && t < t_end
    {
        out.push((t_end, v));
    }
    out
}

/// Marks faults on a time chart (x in `axis` units, y from 0 to `y_top`): a dashed line where
/// each strikes, its number (1, 2, … as in the report's faults table) at the top, and a yellow
/// shade while it lasts if it heals (a fault that never heals has only its line). With `strip`
/// the shade is a band along the top (for charts whose areas fill the whole panel).
pub fn draw_faults<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    axis: &TimeAxis,
    x_end: f64,
    y_top: f64,
    faults: &[crate::data::FaultSummary],
    numbers: bool,
    strip: bool,
) -> Result<()> {
    for (i, f) in faults.iter().enumerate() {
        let a = axis.to_unit(f.at_s).clamp(0.0, x_end);
        if let Some(u) = f.until_s {
            let b = axis.to_unit(u).clamp(a, x_end);
            let shade = if strip {
                Rectangle::new([(a, y_top * 0.955), (b, y_top)], tint(OI_YELLOW, 0.9).filled())
            } else {
                Rectangle::new([(a, 0.0), (b, y_top)], OI_YELLOW.mix(FAULT_ALPHA).filled())
            };
            chart.draw_series([shade]).ok_draw()?;
        }
        // Dashes of 2 % of the height, as plotters has no dashed stroke in both backends.
        let n = 25;
        let dashes = (0..n).map(|k| {
            let y0 = y_top * k as f64 / n as f64;
            PathElement::new(vec![(a, y0), (a, y0 + y_top * 0.5 / n as f64)], BLACK.stroke_width(2))
        });
        chart.draw_series(dashes).ok_draw()?;
        if numbers {
            let label = format!("{}", i + 1);
            let style = text(TICK_PX).pos(Pos::new(HPos::Left, VPos::Top));
            chart
                .draw_series([Text::new(label, (a + x_end * 0.004, y_top * 0.985), style)])
                .ok_draw()?;
        }
    }
    Ok(())
}

/// Above this many samples a time series is drawn as a per-bucket envelope instead of steps.
pub const DENSE: usize = 500;

/// Buckets a dense series into `n` equal time slices of `0..x_end`: (centre, min, mean, max)
/// per non-empty slice.
pub fn envelope(points: &[(f64, f64)], x_end: f64, n: usize) -> Vec<(f64, f64, f64, f64)> {
    let n = n.max(1);
    let mut acc: Vec<(f64, f64, f64, usize)> = vec![(f64::MAX, 0.0, f64::MIN, 0); n];
    for &(x, y) in points {
        let i = ((x / x_end * n as f64).floor().max(0.0) as usize).min(n - 1);
        let a = &mut acc[i];
        a.0 = a.0.min(y);
        a.1 += y;
        a.2 = a.2.max(y);
        a.3 += 1;
    }
    acc.iter()
        .enumerate()
        .filter(|(_, a)| a.3 > 0)
        .map(|(i, a)| (x_end * (i as f64 + 0.5) / n as f64, a.0, a.1 / a.3 as f64, a.2))
        .collect()
}

/// Line width, in pixels, of run `i` of `n` overlaid runs: from 3.5 px for the first down to
/// 2 px for the last. Earlier runs are a little wider, so that an identical curve of a later run
/// shows on top without hiding them, and no line is so wide that it buries the others.
pub fn run_stroke(i: usize, n: usize) -> f64 {
    if n <= 1 {
        2.5
    } else {
        3.5 - 1.5 * i.min(n - 1) as f64 / (n - 1) as f64
    }
}

/// The rectangle `0..=w × 0..=h` (pixels) that `draw_line` clips to.
#[derive(Debug, Clone, Copy)]
struct ClipRect {
    w: f64,
    h: f64,
}

/// Clips a convex polygon to `r` (Sutherland–Hodgman, one edge of the rectangle at a time).
fn clip_polygon(poly: &[(f64, f64)], r: ClipRect) -> Vec<(f64, f64)> {
    // Each edge: the coordinate it bounds (0 = x, 1 = y), where, and whether inside is above it.
    let edges = [(0, 0.0, true), (0, r.w, false), (1, 0.0, true), (1, r.h, false)];
    let coord = |p: (f64, f64), axis: usize| if axis == 0 { p.0 } else { p.1 };
    let mut out = poly.to_vec();
    for (axis, bound, above) in edges {
        let input = std::mem::take(&mut out);
        let Some(&last) = input.last() else {
            break;
        };
        let inside = |p: (f64, f64)| {
            if above {
                coord(p, axis) >= bound
            } else {
                coord(p, axis) <= bound
            }
        };
        let cross = |a: (f64, f64), b: (f64, f64)| {
            let t = (bound - coord(a, axis)) / (coord(b, axis) - coord(a, axis));
            (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
        };
        let mut prev = last;
        for &p in &input {
            match (inside(p), inside(prev)) {
                (true, true) => out.push(p),
                (true, false) => {
                    out.push(cross(prev, p));
                    out.push(p);
                }
                (false, true) => out.push(cross(prev, p)),
                (false, false) => {}
            }
            prev = p;
        }
    }
    out
}

/// The quadrilaterals, in pixels, that make up the polyline `px` drawn `width` wide: one per
/// straight stretch, extended by half the width past every interior vertex (square ends cover
/// a round join, so corners stay solid) but not past the polyline's two ends.
fn line_quads(px: &[(f64, f64)], width: f64) -> Vec<[(f64, f64); 4]> {
    let h = width / 2.0;
    let mut out = Vec::with_capacity(px.len().saturating_sub(1));
    for k in 0..px.len().saturating_sub(1) {
        let (p, q) = (px[k], px[k + 1]);
        let len = (q.0 - p.0).hypot(q.1 - p.1);
        if len <= 0.0 || !len.is_finite() {
            continue;
        }
        let d = ((q.0 - p.0) / len, (q.1 - p.1) / len);
        let n = (-d.1 * h, d.0 * h);
        let ep = if k > 0 { h } else { 0.0 };
        let eq = if k + 2 < px.len() { h } else { 0.0 };
        let a = (p.0 - d.0 * ep, p.1 - d.1 * ep);
        let b = (q.0 + d.0 * eq, q.1 + d.1 * eq);
        out.push([
            (a.0 + n.0, a.1 + n.1),
            (b.0 + n.0, b.1 + n.1),
            (b.0 - n.0, b.1 - n.1),
            (a.0 - n.0, a.1 - n.1),
        ]);
    }
    out
}

/// Drops repeated points and the middle of three points on one straight stretch.
fn simplify(px: impl IntoIterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for q in px {
        if out.last() == Some(&q) {
            continue;
        }
        if let [.., a, b] = out[..] {
            let (u, v) = ((b.0 - a.0, b.1 - a.1), (q.0 - b.0, q.1 - b.1));
            if u.0 * v.1 - u.1 * v.0 == 0.0 && u.0 * v.0 + u.1 * v.1 > 0.0 {
                out.pop();
            }
        }
        out.push(q);
    }
    out
}

/// Draws the polyline `pts` (in `area`'s coordinates) `width` pixels wide, clipped to `area`.
///
/// Each straight stretch is its own small filled polygon, clipped to the plotting area. (Plotters
/// turns a wide path into one polygon, which on long jagged series leaves stray slivers across
/// the PNG, and it clips nothing, so wide lines spilled over the axes and into other panels.)
pub fn draw_line<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    pts: &[CT::From],
    colour: RGBColor,
    width: f64,
) -> Result<()> {
    let (xr, yr) = area.get_pixel_range();
    let (bx, by) = area.get_base_pixel();
    let clip = ClipRect {
        w: (xr.end - xr.start - 1).max(0) as f64,
        h: (yr.end - yr.start - 1).max(0) as f64,
    };
    let px = simplify(pts.iter().map(|p| {
        let (x, y) = area.map_coordinate(p);
        ((x - bx) as f64, (y - by) as f64)
    }));
    let plain = area.strip_coord_spec();
    let fill = colour.filled();
    for quad in line_quads(&px, width) {
        let poly = clip_polygon(&quad, clip);
        if poly.len() >= 3 {
            let poly: Vec<(i32, i32)> = poly.iter().map(|p| (p.0.round() as i32, p.1.round() as i32)).collect();
            plain.draw(&Polygon::new(poly, fill)).ok_draw()?;
        }
    }
    Ok(())
}

/// Widths of the time bins that overlaid runs are averaged over, with their names.
const MEAN_BINS: [(f64, &str); 12] = [
    (60.0, "1-min"),
    (120.0, "2-min"),
    (300.0, "5-min"),
    (600.0, "10-min"),
    (900.0, "15-min"),
    (1800.0, "30-min"),
    (3600.0, "hourly"),
    (7200.0, "2-hour"),
    (10_800.0, "3-hour"),
    (21_600.0, "6-hour"),
    (43_200.0, "12-hour"),
    (86_400.0, "daily"),
];

/// The bin, in seconds, that `compare` averages dense series over on an axis `span_s` long: the
/// first round duration that cuts the axis into at most 200 bins (an hour for a week), and its
/// name ("hourly").
pub fn mean_bin(span_s: f64) -> (f64, &'static str) {
    let want = span_s / 200.0;
    MEAN_BINS
        .iter()
        .copied()
        .find(|b| b.0 >= want)
        .unwrap_or((86_400.0 * (want / 86_400.0).ceil().max(1.0), "multi-day"))
}

/// Whether a series of `n` samples from `t0` to `t_end` is averaged over bins of `bin` (all in
/// the same unit): when it has clearly more than one sample per bin, that is more than one every
/// few pixels (a week of 5-minute samples, or a short run on a long run's axis).
pub fn binned(n: usize, t0: f64, t_end: f64, bin: f64) -> bool {
    bin > 0.0 && n >= 20 && n as f64 > 1.5 * ((t_end - t0) / bin).max(1.0)
}

/// Time-weighted means of the step series `points` (each value holds until the next sample, the
/// last until `t_end`) over bins `k·bin .. (k+1)·bin`, each placed at the middle of the part of
/// its bin the series covers; the first mean is repeated at the series' start and the last at
/// `t_end`, so the line spans exactly the series.
pub fn bin_means(points: &[(f64, f64)], t_end: f64, bin: f64) -> Vec<(f64, f64)> {
    let Some(&(t0, _)) = points.first() else {
        return Vec::new();
    };
    let t_end = t_end.max(points.last().map_or(t0, |p| p.0));
    if bin <= 0.0 || t_end <= t0 {
        return points.to_vec();
    }
    let first = (t0 / bin).floor();
    let n = (((t_end - first * bin) / bin).ceil() as usize).max(1);
    // Per bin: covered time, integral of the value, covered start and end.
    let mut acc = vec![(0.0f64, 0.0f64, f64::INFINITY, f64::NEG_INFINITY); n];
    for (i, &(t, v)) in points.iter().enumerate() {
        let until = points.get(i + 1).map_or(t_end, |p| p.0).min(t_end);
        let mut a = t;
        while a < until {
            let mut k = (((a / bin).floor() - first).max(0.0) as usize).min(n - 1);
            let mut b = until.min((first + k as f64 + 1.0) * bin);
            if b <= a && k + 1 < n {
                // `a` sits on a bin boundary that rounding put in the bin before.
                k += 1;
                b = until.min((first + k as f64 + 1.0) * bin);
            }
            if b <= a {
                b = until;
            }
            let e = &mut acc[k];
            e.0 += b - a;
            e.1 += v * (b - a);
            e.2 = e.2.min(a);
            e.3 = e.3.max(b);
            a = b;
        }
    }
    let mut out: Vec<(f64, f64)> = acc
        .iter()
        .filter(|e| e.0 > 0.0)
        .map(|e| ((e.2 + e.3) / 2.0, e.1 / e.0))
        .collect();
    if let (Some(&(_, f)), Some(&(_, l))) = (out.first(), out.last()) {
        out.insert(0, (t0, f));
        out.push((t_end, l));
    }
    out
}

/// How `draw_time_series` draws one series.
#[derive(Debug, Clone, Copy)]
pub struct SeriesStyle {
    pub colour: RGBColor,
    /// Line width in pixels.
    pub stroke: f64,
    /// A light fill down to zero (sparse series only).
    pub fill: bool,
    /// The min–max band of each slice (dense series only).
    pub band: bool,
    /// Average over bins this wide (axis units) when `binned` says so, and draw the means as a
    /// line; `None` draws dense series as slices of the whole axis.
    pub mean_bin: Option<f64>,
}

impl SeriesStyle {
    pub fn line(colour: RGBColor) -> SeriesStyle {
        SeriesStyle {
            colour,
            stroke: 2.0,
            fill: false,
            band: true,
            mean_bin: None,
        }
    }
}

/// One series of a time chart: samples `(t, v)` in axis units, where the series ends (its run's
/// end; the last value holds until then) and how to draw it.
#[derive(Debug, Clone)]
pub struct TimeSeries {
    pub points: Vec<(f64, f64)>,
    pub end: f64,
    pub style: SeriesStyle,
}

impl TimeSeries {
    /// Where the series ends: its run's end, or its last sample if that is later.
    fn last_t(&self) -> f64 {
        self.end.max(self.points.last().map_or(0.0, |p| p.0))
    }

    /// The bin means `draw_time_series` draws instead of the samples, if it does.
    fn means(&self) -> Option<Vec<(f64, f64)>> {
        let bin = self.style.mean_bin?;
        let &(t0, _) = self.points.first()?;
        let end = self.last_t();
        binned(self.points.len(), t0, end, bin).then(|| bin_means(&self.points, end, bin))
    }

    /// The highest value the chart shows: of the bin means where those are drawn, else of the
    /// samples (0 for none). For sizing the value axis to what is drawn.
    pub fn shown_max(&self) -> f64 {
        let max = |pts: &[(f64, f64)]| pts.iter().map(|p| p.1).fold(0.0, f64::max);
        match self.means() {
            Some(m) => max(&m),
            None => max(&self.points),
        }
    }
}

/// Draws a time series on a plain `f64 × f64` chart, ending at the series' own `end`: as steps
/// when there are few samples; past `DENSE` samples as the mean per slice of the time axis (400
/// slices, up to `x_end`) with the slice's min–max range shaded; or, with `mean_bin` set and
/// when `binned` says so, as the time-weighted mean over each bin. Lines are clipped to the plot.
pub fn draw_time_series<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    series: &TimeSeries,
    x_end: f64,
) -> Result<()> {
    let (points, style) = (&series.points[..], series.style);
    if let Some(means) = series.means() {
        return draw_line(chart.plotting_area(), &means, style.colour, style.stroke);
    }
    if points.len() > DENSE {
        let env = envelope(points, x_end, 400);
        if style.band {
            let mut band: Vec<(f64, f64)> = env.iter().map(|e| (e.0, e.3)).collect();
            band.extend(env.iter().rev().map(|e| (e.0, e.1)));
            chart
                .draw_series([Polygon::new(band, style.colour.mix(0.25).filled())])
                .ok_draw()?;
        }
        let mean: Vec<(f64, f64)> = env.iter().map(|e| (e.0, e.2)).collect();
        return draw_line(chart.plotting_area(), &mean, style.colour, style.stroke);
    }
    let pts = steps(points, series.last_t());
    if style.fill {
        chart
            .draw_series(AreaSeries::new(pts.clone(), 0.0, style.colour.mix(0.18).filled()))
            .ok_draw()?;
    }
    draw_line(chart.plotting_area(), &pts, style.colour, style.stroke)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_strokes_are_moderate() {
        assert_eq!(run_stroke(0, 1), 2.5);
        assert_eq!([0, 1, 2].map(|i| run_stroke(i, 3)), [3.5, 2.75, 2.0]);
        assert!((0..7).all(|i| (2.0..=3.5).contains(&run_stroke(i, 7))));
    }

    #[test]
    fn clipping_keeps_polygons_inside() {
        let r = ClipRect { w: 100.0, h: 50.0 };
        // A 4 px line along the bottom edge keeps only its upper half.
        let quad = line_quads(&[(10.0, 50.0), (90.0, 50.0)], 4.0)[0];
        let poly = clip_polygon(&quad, r);
        assert!(
            poly.iter()
                .all(|p| (0.0..=100.0).contains(&p.0) && (0.0..=50.0).contains(&p.1))
        );
        let ys: Vec<f64> = poly.iter().map(|p| p.1).collect();
        assert_eq!(ys.iter().copied().fold(f64::MAX, f64::min), 48.0);
        assert_eq!(ys.iter().copied().fold(f64::MIN, f64::max), 50.0);
        // A segment entirely outside disappears.
        let quad = line_quads(&[(10.0, 80.0), (90.0, 90.0)], 4.0)[0];
        assert!(clip_polygon(&quad, r).is_empty());
    }

    #[test]
    fn quads_join_interior_vertices_only() {
        // A step: the ends are flush, the corner is covered by both stretches.
        let q = line_quads(&[(0.0, 0.0), (10.0, 0.0), (10.0, 10.0)], 2.0);
        assert_eq!(q.len(), 2);
        assert_eq!(q[0], [(0.0, 1.0), (11.0, 1.0), (11.0, -1.0), (0.0, -1.0)]);
        assert_eq!(q[1], [(9.0, -1.0), (9.0, 10.0), (11.0, 10.0), (11.0, -1.0)]);
    }

    #[test]
    fn simplify_merges_straight_stretches() {
        let s = simplify([(0.0, 0.0), (1.0, 0.0), (1.0, 0.0), (2.0, 0.0), (2.0, 5.0), (2.0, 1.0)]);
        assert_eq!(s, [(0.0, 0.0), (2.0, 0.0), (2.0, 5.0), (2.0, 1.0)]);
    }

    #[test]
    fn bins() {
        assert_eq!(mean_bin(7.0 * 86_400.0), (3600.0, "hourly"));
        assert_eq!(mean_bin(5.0 * 3600.0), (120.0, "2-min"));
        assert!(binned(2000, 0.0, 168.0, 1.0));
        // A 4.7 h run sampled every minute: binned on a week's axis (hourly bins), not with
        // bins as short as its samples.
        assert!(binned(287, 0.0, 4.7, 1.0));
        assert!(!binned(287, 0.0, 4.7 * 60.0, 1.0));
        assert!(!binned(400, 0.0, 400.0, 1.0));
        assert!(!binned(10, 0.0, 1.0, 1.0));
    }

    #[test]
    fn bin_means_are_time_weighted_and_span_the_series() {
        // 0 for 0.5, 2 for 0.5 → bin 0 mean 1; bin 1 holds 4 until 1.5 → mean 4 over 0.5.
        let m = bin_means(&[(0.0, 0.0), (0.5, 2.0), (1.0, 4.0)], 1.5, 1.0);
        assert_eq!(m, [(0.0, 1.0), (0.5, 1.0), (1.25, 4.0), (1.5, 4.0)]);
        // The series ends at its own end, not at a later axis end.
        let pts: Vec<(f64, f64)> = (0..100).map(|k| (k as f64 * 0.1, 1.0)).collect();
        let m = bin_means(&pts, 10.0, 1.0);
        assert_eq!(m.first(), Some(&(0.0, 1.0)));
        assert_eq!(m.last(), Some(&(10.0, 1.0)));
        assert!(m.iter().all(|p| (p.1 - 1.0).abs() < 1e-9));
        assert_eq!(m.len(), 12);
    }
}
