//! Mean and 95 % confidence interval of the mean across seeds (Student's t).

/// Two-sided 95 % quantiles of Student's t for 1 to 30 degrees of freedom.
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
    2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/// The 97.5th percentile of Student's t with `df` degrees of freedom (interpolated in 1/df
/// between 30, 40, 60, 120 and infinity beyond the table; within 0.001 of the exact value).
pub fn t95(df: usize) -> f64 {
    if df == 0 {
        return f64::NAN;
    }
    if df <= 30 {
        return T95[df - 1];
    }
    let knots = [
        (30.0, 2.042),
        (40.0, 2.021),
        (60.0, 2.000),
        (120.0, 1.980),
        (f64::INFINITY, 1.960),
    ];
    let inv = 1.0 / df as f64;
    for w in knots.windows(2) {
        let ((d0, t0), (d1, t1)) = (w[0], w[1]);
        if (df as f64) <= d1 {
            let (i0, i1) = (1.0 / d0, 1.0 / d1);
            return t0 + (t1 - t0) * (i0 - inv) / (i0 - i1);
        }
    }
    1.960
}

/// Mean and 95 % interval of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// Sample size.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Lower end (the mean for one value).
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

impl Interval {
    /// Of the values, `None` for none.
    pub fn of(values: &[f64]) -> Option<Interval> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        if n == 1 {
            return Some(Interval {
                n,
                mean,
                lo: mean,
                hi: mean,
            });
        }
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
        let half = t95(n - 1) * (var / n as f64).sqrt();
        Some(Interval {
            n,
            mean,
            lo: mean - half,
            hi: mean + half,
        })
    }

    /// Do the two intervals overlap (the difference is within noise)?
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        let i = Interval::of(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(i.mean, 3.0);
        // s = 1.5811, se = 0.7071, t(4) = 2.776.
        assert!((i.hi - 3.0 - 2.776 * (0.5f64).sqrt()).abs() < 1e-6, "{i:?}");
        assert_eq!(Interval::of(&[2.0]).unwrap().lo, 2.0);
        assert!(Interval::of(&[]).is_none());
        assert!((t95(35) - 2.030).abs() < 0.002, "{}", t95(35));
        assert!((t95(1000) - 1.962).abs() < 0.002, "{}", t95(1000));
        let a = Interval::of(&[1.0, 2.0]).unwrap();
        let b = Interval::of(&[3.0, 4.0]).unwrap();
        assert!(a.overlaps(&b), "two seeds: t(1) is wide");
        let a = Interval::of(&[1.0, 1.1, 1.0, 1.1]).unwrap();
        let b = Interval::of(&[5.0, 5.1, 5.0, 5.1]).unwrap();
        assert!(!a.overlaps(&b));
    }
}
