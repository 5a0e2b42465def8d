//! Small statistics helpers: nearest-rank percentiles, means, per-class wait samples and
//! empirical CDFs thinned to a drawable number of points.

use crate::data::Job;

/// Wait times of the started jobs of one size class, sorted ascending.
#[derive(Debug, Clone)]
pub struct ClassWaits {
    pub class: String,
    pub waits: Vec<f64>,
}

impl ClassWaits {
    pub fn mean(&self) -> Option<f64> {
        mean(&self.waits)
    }
    pub fn percentile(&self, p: f64) -> Option<f64> {
        percentile_sorted(&self.waits, p)
    }
}

/// Label used for jobs whose class column is empty.
pub const NO_CLASS: &str = "(no class)";

/// Groups the waits of started jobs (non-empty `wait_s`) by class. Classes come in the order
/// `preferred` lists them (the summary's order), then in order of first appearance in `jobs`.
/// Classes with no started job are kept (with no waits) so that they still get a legend entry.
pub fn waits_by_class(jobs: &[Job], preferred: &[String]) -> Vec<ClassWaits> {
    let mut out: Vec<ClassWaits> = preferred
        .iter()
        .map(|c| ClassWaits {
            class: c.clone(),
            waits: Vec::new(),
        })
        .collect();
    let mut last: Option<usize> = None;
    for job in jobs {
        let class = if job.class.is_empty() {
            NO_CLASS
        } else {
            job.class.as_str()
        };
        let idx = match last {
            Some(i) if out[i].class == class => i,
            _ => match out.iter().position(|c| c.class == class) {
                Some(i) => i,
                None => {
                    out.push(ClassWaits {
                        class: class.to_string(),
                        waits: Vec::new(),
                    });
                    out.len() - 1
                }
            },
        };
        last = Some(idx);
        if let Some(w) = job.wait_s.filter(|w| w.is_finite()) {
            out[idx].waits.push(w.max(0.0));
        }
    }
    for c in &mut out {
        c.waits.sort_by(f64::total_cmp);
    }
    out
}

/// All started jobs' waits, sorted.
pub fn all_waits(jobs: &[Job]) -> Vec<f64> {
    let mut w: Vec<f64> = jobs
        .iter()
        .filter_map(|j| j.wait_s)
        .filter(|w| w.is_finite())
        .map(|w| w.max(0.0))
        .collect();
    w.sort_by(f64::total_cmp);
    w
}

pub fn mean(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        None
    } else {
        Some(v.iter().sum::<f64>() / v.len() as f64)
    }
}

/// Nearest-rank percentile of sorted data (`p` in 0..=1), as in `docs/outputs.md` (the one
/// definition, `spinnbed_core::stats`).
pub use spinnbed_core::stats::percentile as percentile_sorted;

/// Fraction of sorted data that is ≤ `x`.
pub fn ecdf_at(sorted: &[f64], x: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted.partition_point(|v| *v <= x) as f64 / sorted.len() as f64
}

/// The step points of the empirical CDF of `sorted` (fractions 0..=1), with every value below
/// `floor` moved to `floor` (for a log axis) and the curve carried on flat to `x_end`. At most
/// about `max_steps` steps are kept (evenly spaced in rank), which is invisible at 1200 px.
pub fn ecdf_steps(sorted: &[f64], floor: f64, x_end: f64, max_steps: usize) -> Vec<(f64, f64)> {
    let n = sorted.len();
    if n == 0 {
        return Vec::new();
    }
    let nf = n as f64;
    // Distinct values (after flooring) with the count of data ≤ each.
    let mut groups: Vec<(f64, usize)> = Vec::new();
    for (i, v) in sorted.iter().enumerate() {
        let v = v.max(floor);
        match groups.last_mut() {
            Some(g) if g.0 == v => g.1 = i + 1,
            _ => groups.push((v, i + 1)),
        }
    }
    let stride = groups.len().div_ceil(max_steps.max(1)).max(1);
    let mut pts = Vec::with_capacity(2 * groups.len() / stride + 4);
    let mut prev = 0.0;
    for (k, (v, count)) in groups.iter().enumerate() {
        if k % stride != 0 && k + 1 != groups.len() {
            continue;
        }
        let f = *count as f64 / nf;
        pts.push((*v, prev));
        pts.push((*v, f));
        prev = f;
    }
    if let Some(&(x, y)) = pts.last()
        && x < x_end
    {
        pts.push((x_end, y));
    }
    pts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile_sorted(&v, 0.5), Some(5.0));
        assert_eq!(percentile_sorted(&v, 0.95), Some(10.0));
        assert_eq!(percentile_sorted(&v, 0.0), Some(1.0));
        assert_eq!(percentile_sorted(&[], 0.5), None);
        assert_eq!(percentile_sorted(&[7.0], 0.99), Some(7.0));
    }

    #[test]
    fn ecdf() {
        let v = [0.0, 0.0, 5.0, 100.0];
        assert_eq!(ecdf_at(&v, 0.0), 0.5);
        assert_eq!(ecdf_at(&v, 99.0), 0.75);
        let s = ecdf_steps(&v, 1.0, 1000.0, 100);
        assert_eq!(s.first(), Some(&(1.0, 0.0)));
        assert_eq!(s[1], (1.0, 0.5));
        assert_eq!(s.last(), Some(&(1000.0, 1.0)));
        let big: Vec<f64> = (0..20_000).map(f64::from).collect();
        let s = ecdf_steps(&big, 1.0, 1e5, 500);
        assert!(s.len() < 1100, "{}", s.len());
        assert_eq!(s[s.len() - 2].1, 1.0);
    }

    #[test]
    fn classes_in_order() {
        let job = |c: &str, w: Option<f64>| Job {
            class: c.into(),
            wait_s: w,
            outcome: String::new(),
        };
        let jobs = vec![
            job("b", Some(3.0)),
            job("a", Some(1.0)),
            job("b", None),
            job("", Some(2.0)),
            job("b", Some(1.0)),
        ];
        let cw = waits_by_class(&jobs, &["a".to_string(), "z".to_string()]);
        let names: Vec<&str> = cw.iter().map(|c| c.class.as_str()).collect();
        assert_eq!(names, ["a", "z", "b", NO_CLASS]);
        assert_eq!(cw[2].waits, [1.0, 3.0]);
        assert!(cw[1].waits.is_empty());
    }
}
