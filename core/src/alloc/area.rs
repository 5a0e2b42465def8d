//! Choosing a rectangle of triads for "at least n boards" requests.
//!
//! These are the reference server's `area_to_rect`, `squarest_rectangle` and
//! `rectangle_with_aspect_ratio`, with the same IEEE-754 double arithmetic so that every
//! shape decision matches bit for bit.

/// The squarest `(w, h)` with `w · h == area` and `w ≥ h`; `(0, 0)` for area 0.
pub fn squarest_rectangle(area: u32) -> (u32, u32) {
    if area == 0 {
        return (0, 0);
    }
    let mut h = (area as f64).sqrt() as u32;
    while h > 1 && !area.is_multiple_of(h) {
        h -= 1;
    }
    let h = h.max(1);
    (area / h, h)
}

/// A landscape `(w, h)` (w ≥ h) with at least `area` cells and aspect ratio h/w of roughly
/// at least `ratio` (0 < ratio ≤ 1): the reference's over-allocating fallback for areas whose
/// squarest rectangle is too thin.
pub fn rectangle_with_aspect_ratio(area: u32, ratio: f64) -> (u32, u32) {
    if area == 0 {
        return (0, 0);
    }
    let w = (area as f64 / ratio).sqrt();
    let h = (area as f64 / w).ceil() as u32;
    let w = (area as f64 / h as f64).ceil() as u32;
    (w.max(h), h)
}

/// Why `area_to_rect` refused its arguments outright (the reference raises `ValueError`).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum AreaError {
    /// Area or bounds are zero.
    #[error("cannot get negative- or zero-sized allocations")]
    Empty,
    /// The aspect ratio is negative or not a number.
    #[error("aspect ratio must be a non-negative number (got {0})")]
    BadRatio(f64),
}

/// Picks a `(w, h)` rectangle of at least `area` cells inside `bound_w × bound_h` whose aspect
/// ratio (min/max side) is at least `min_ratio`, oriented against the bounds; `Ok(None)` if
/// impossible.
pub fn area_to_rect(area: u32, bound_w: u32, bound_h: u32, min_ratio: f64) -> Result<Option<(u32, u32)>, AreaError> {
    if area == 0 || bound_w == 0 || bound_h == 0 {
        return Err(AreaError::Empty);
    }
    AreaShape::new(area, min_ratio)?.within(bound_w, bound_h)
}

/// [`area_to_rect`] for one area and ratio within many bounds: the unbounded rectangle (the
/// costly part) is found once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AreaShape {
    area: u32,
    /// The ratio as `area_to_rect` uses it (at most 1).
    min_ratio: f64,
    /// The rectangle before the bounds are applied.
    w: u32,
    h: u32,
}

impl AreaShape {
    /// The shape for `area` cells at `min_ratio`.
    pub fn new(area: u32, min_ratio: f64) -> Result<AreaShape, AreaError> {
        if area == 0 {
            return Err(AreaError::Empty);
        }
        if min_ratio.is_nan() || min_ratio < 0.0 {
            return Err(AreaError::BadRatio(min_ratio));
        }
        let min_ratio = if min_ratio > 1.0 { 1.0 / min_ratio } else { min_ratio };
        let (mut w, mut h) = squarest_rectangle(area);
        if (h as f64) / (w as f64) < min_ratio {
            (w, h) = rectangle_with_aspect_ratio(area, min_ratio);
        }
        Ok(AreaShape { area, min_ratio, w, h })
    }

    /// Exactly `area_to_rect(area, bound_w, bound_h, min_ratio)`.
    pub fn within(&self, bound_w: u32, bound_h: u32) -> Result<Option<(u32, u32)>, AreaError> {
        if bound_w == 0 || bound_h == 0 {
            return Err(AreaError::Empty);
        }
        let AreaShape {
            area,
            min_ratio,
            mut w,
            mut h,
        } = *self;
        if area as u64 > bound_w as u64 * bound_h as u64 {
            return Ok(None);
        }
        if bound_w > bound_h && w > h {
            (w, h) = (h, w);
        }
        if w <= bound_w && h <= bound_h {
            return Ok(Some((w, h)));
        }
        if w > bound_w {
            w = bound_w;
            h = (area as f64 / w as f64).ceil() as u32;
        } else if h > bound_h {
            h = bound_h;
            w = (area as f64 / h as f64).ceil() as u32;
        }
        if (w.min(h) as f64) / (w.max(h) as f64) >= min_ratio {
            Ok(Some((w, h)))
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squarest_rectangle_examples() {
        let cases = [
            (0, (0, 0)),
            (1, (1, 1)),
            (2, (2, 1)),
            (6, (3, 2)),
            (8, (4, 2)),
            (12, (4, 3)),
            (16, (4, 4)),
            (7, (7, 1)),
            (13, (13, 1)),
        ];
        for (area, want) in cases {
            assert_eq!(squarest_rectangle(area), want, "{area}");
        }
    }

    #[test]
    fn rectangle_with_aspect_ratio_examples() {
        assert_eq!(rectangle_with_aspect_ratio(3, 0.5), (2, 2));
        assert_eq!(rectangle_with_aspect_ratio(5, 0.75), (3, 2));
        assert_eq!(rectangle_with_aspect_ratio(5, 1.0), (3, 3));
        assert_eq!(rectangle_with_aspect_ratio(6, 0.75), (3, 3));
        assert_eq!(rectangle_with_aspect_ratio(2, 1.0), (2, 2));
    }

    #[test]
    fn area_to_rect_examples() {
        let r = |a, w, h, m| area_to_rect(a, w, h, m).unwrap();
        assert_eq!(r(2, 3, 3, 0.0), Some((2, 1)));
        assert_eq!(r(2, 3, 4, 0.0), Some((2, 1)));
        assert_eq!(r(2, 4, 3, 0.0), Some((1, 2)));
        assert_eq!(r(2, 2, 2, 0.6), Some((2, 2)));
        assert_eq!(r(2, 1, 2, 1.0), None);
        assert_eq!(r(5, 3, 3, 0.0), Some((3, 2)));
        assert_eq!(r(5, 4, 3, 0.0), Some((2, 3)));
        assert_eq!(r(5, 2, 3, 1.0), None);
        // On 20 x 20 with 0.333.
        for (a, want) in [
            (1, (1, 1)),
            (2, (2, 1)),
            (3, (3, 1)),
            (5, (3, 2)),
            (7, (4, 2)),
            (11, (6, 2)),
            (13, (5, 3)),
            (16, (4, 4)),
            (34, (9, 4)),
            (160, (16, 10)),
        ] {
            assert_eq!(r(a, 20, 20, 0.333), Some(want), "{a}");
        }
        // On 4 x 2 with 0.333.
        assert_eq!(r(2, 4, 2, 0.333), Some((1, 2)));
        assert_eq!(r(3, 4, 2, 0.333), Some((2, 2)));
        assert_eq!(r(5, 4, 2, 0.333), Some((3, 2)));
        // Ratios above 1 are flipped; too big is None; bad inputs are errors.
        assert_eq!(r(2, 2, 2, 1.0 / 0.6), Some((2, 2)));
        assert_eq!(r(10, 3, 3, 0.0), None);
        assert_eq!(area_to_rect(0, 3, 3, 0.0), Err(AreaError::Empty));
        assert!(matches!(area_to_rect(2, 3, 3, -0.5), Err(AreaError::BadRatio(_))));
        assert!(matches!(area_to_rect(2, 3, 3, f64::NAN), Err(AreaError::BadRatio(_))));
    }
}
