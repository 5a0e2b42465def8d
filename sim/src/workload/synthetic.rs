//! Seeded synthetic workloads: arrivals that follow a daily and weekly cycle, a mix of job
//! classes (sizes and durations), owners with a Zipf-like skew, keepalives and data volumes.
//!
//! Every purpose draws from its own random stream (`arrivals`, `classes`, `sizes`,
//! `durations`, `owners`, `keepalive`, `data`), so changing the class mix leaves the arrival
//! times alone and changing durations leaves the sizes alone.

use super::WorkloadJob;
use crate::quantity::dist::{ByteSize, Dist, unit};
use spinnbed_core::alloc::{Request, Shape};
use spinnbed_core::geometry::Board;
use spinnbed_core::time::{Duration, Instant};

/// One hour in microseconds.
const HOUR_US: u64 = 3_600_000_000;

/// The default daily curve (hour 0 … 23): low at night, rising from 07:00, peaking 10:00–17:00.
pub const DEFAULT_DAILY: [f64; 24] = [
    0.15, 0.1, 0.08, 0.08, 0.08, 0.1, 0.2, 0.4, 0.7, 0.9, 1.0, 1.0, 0.85, 0.95, 1.0, 1.0, 0.95, 0.85, 0.6, 0.45, 0.35,
    0.3, 0.25, 0.2,
];

/// The default weekly curve (Monday … Sunday).
pub const DEFAULT_WEEKLY: [f64; 7] = [1.0, 1.0, 1.0, 1.0, 1.0, 0.35, 0.3];

/// How many jobs arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrivals {
    /// Exactly this many, spread over the horizon following the profile.
    Jobs(u64),
    /// A Poisson process with this mean rate per hour (over a week), modulated by the profile.
    RatePerHour(f64),
}

/// What a class of jobs asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum ClassShape {
    /// Any one board.
    Board,
    /// At least `boards` boards (a draw of 1 asks for any one board).
    Boards {
        /// Board count.
        boards: Dist<f64>,
        /// Minimum aspect ratio.
        min_ratio: f64,
    },
    /// A `width` × `height` rectangle of triads.
    Rect {
        /// Width in triads.
        width: Dist<f64>,
        /// Height in triads.
        height: Dist<f64>,
    },
    /// One of these boards, chosen uniformly per job.
    Specific {
        /// The candidates.
        boards: Vec<Board>,
    },
}

impl ClassShape {
    /// The `kind` name in scenarios.
    pub fn kind(&self) -> &'static str {
        match self {
            ClassShape::Board => "board",
            ClassShape::Boards { .. } => "boards",
            ClassShape::Rect { .. } => "rect",
            ClassShape::Specific { .. } => "specific",
        }
    }
}

/// One class of the job mix.
#[derive(Debug, Clone, PartialEq)]
pub struct JobClass {
    /// Name (the jobs' size-class label).
    pub name: String,
    /// Relative weight (> 0).
    pub weight: f64,
    /// What its jobs ask for.
    pub shape: ClassShape,
    /// Dead boards tolerated (boards and rect only).
    pub max_dead_boards: Option<u32>,
    /// Dead links tolerated (boards and rect only).
    pub max_dead_links: Option<u32>,
    /// Require wrap-around (boards and rect only).
    pub require_torus: bool,
    /// How long a job holds its boards once ready.
    pub duration: Dist<Duration>,
    /// Declared estimate = runtime × factor; `None`: no estimate.
    pub estimate_factor: Option<f64>,
    /// Only this machine.
    pub machine: Option<String>,
    /// Only machines with these tags.
    pub tags: Option<Vec<String>>,
}

impl JobClass {
    fn new(name: &str, weight: f64, shape: ClassShape, duration: Dist<Duration>) -> JobClass {
        JobClass {
            name: name.into(),
            weight,
            shape,
            max_dead_boards: None,
            max_dead_links: None,
            require_torus: false,
            duration,
            estimate_factor: Some(1.0),
            machine: None,
            tags: None,
        }
    }
}

/// The default mix, a SpiNNaker-like one: mostly single boards and small groups, a few large
/// jobs; log-normal durations of minutes for small jobs and hours for large ones.
pub fn default_classes() -> Vec<JobClass> {
    let secs = Duration::from_secs;
    let mins = |n: u64| Duration::from_secs(60 * n);
    let lognormal = |median: Duration, sigma: f64, lo: Duration, hi: Duration| {
        Dist::log_normal(median, sigma).clamped(Some(lo), Some(hi))
    };
    let boards = |lo: f64, hi: f64| ClassShape::Boards {
        boards: Dist::log_uniform(lo, hi),
        min_ratio: 0.333,
    };
    let dead = |mut c: JobClass, n: u32| {
        c.max_dead_boards = Some(n);
        c
    };
    let rect = ClassShape::Rect {
        width: Dist::uniform(1.0, 3.0),
        height: Dist::uniform(1.0, 3.0),
    };
    vec![
        JobClass::new(
            "1 board",
            55.0,
            ClassShape::Board,
            lognormal(mins(5), 1.3, secs(10), mins(24 * 60)),
        ),
        dead(
            JobClass::new(
                "2-24 boards",
                30.0,
                boards(2.0, 24.0),
                lognormal(mins(10), 1.3, secs(10), mins(48 * 60)),
            ),
            0,
        ),
        dead(
            JobClass::new(
                "25-150 boards",
                10.0,
                boards(25.0, 150.0),
                lognormal(mins(30), 1.2, secs(30), mins(48 * 60)),
            ),
            0,
        ),
        JobClass::new("rect", 4.0, rect, lognormal(mins(20), 1.2, secs(30), mins(48 * 60))),
        dead(
            JobClass::new(
                "large",
                1.0,
                boards(300.0, 900.0),
                lognormal(mins(120), 1.0, mins(5), mins(72 * 60)),
            ),
            3,
        ),
    ]
}

/// A synthetic workload.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSpec {
    /// How many jobs arrive.
    pub arrivals: Arrivals,
    /// Relative arrival weight of each hour of the day (0 … 23).
    pub daily: [f64; 24],
    /// Relative arrival weight of each day (Monday … Sunday).
    pub weekly: [f64; 7],
    /// Number of owners (`user01` …).
    pub owners: u32,
    /// Keepalive period of every job (`None`: jobs never time out).
    pub keepalive: Option<Duration>,
    /// Chance that a job's client dies and stops sending keepalives.
    pub lapse_probability: f64,
    /// When, after creating the job, a dying client dies.
    pub lapse_after: Dist<Duration>,
    /// Bytes written before running.
    pub data_in: Dist<ByteSize>,
    /// Bytes read back after running.
    pub data_out: Dist<ByteSize>,
    /// The job mix.
    pub classes: Vec<JobClass>,
    /// Scales the offered load (`[workload] load_scale`): the arrivals are
    /// [`SyntheticSpec::scaled_arrivals`]; job sizes and durations are left alone.
    pub load_scale: f64,
}

impl SyntheticSpec {
    /// Every default, with the given arrivals.
    pub fn new(arrivals: Arrivals) -> SyntheticSpec {
        SyntheticSpec {
            arrivals,
            daily: DEFAULT_DAILY,
            weekly: DEFAULT_WEEKLY,
            owners: 40,
            keepalive: Some(Duration::from_secs(60)),
            lapse_probability: 0.01,
            lapse_after: Dist::exponential(Duration::from_secs(30 * 60)),
            data_in: Dist::fixed(ByteSize(1 << 20)),
            data_out: Dist::fixed(ByteSize(4 << 20)),
            classes: default_classes(),
            load_scale: 1.0,
        }
    }

    /// The arrivals after `load_scale`: a rate times the scale, or `round(jobs × scale)` jobs
    /// (at least 1) over the same horizon. With a scale of 1, exactly `arrivals`.
    pub fn scaled_arrivals(&self) -> Arrivals {
        if self.load_scale == 1.0 {
            return self.arrivals;
        }
        match self.arrivals {
            // `as` saturates (a count too large to hold is refused by the memory check).
            Arrivals::Jobs(n) => Arrivals::Jobs(((n as f64 * self.load_scale).round() as u64).max(1)),
            Arrivals::RatePerHour(r) => Arrivals::RatePerHour(r * self.load_scale),
        }
    }
}

/// Where in the week a run starts and how long jobs keep arriving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    /// Arrivals happen in `[0, horizon)`.
    pub horizon: Duration,
    /// Day of the week at t = 0 (0 = Monday).
    pub start_weekday: u8,
    /// Hour of the day at t = 0 (0 … 23).
    pub start_hour: u8,
}

/// The arrival-rate multiplier of every hour of the week, normalised to a mean of 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    factors: [f64; 168],
    max: f64,
}

impl Profile {
    /// `daily[h] · weekly[d]` normalised; `None` if every weight is zero.
    pub fn new(daily: &[f64; 24], weekly: &[f64; 7]) -> Option<Profile> {
        let mut factors = [0.0; 168];
        for (i, f) in factors.iter_mut().enumerate() {
            *f = daily[i % 24] * weekly[i / 24];
        }
        let mean = factors.iter().sum::<f64>() / 168.0;
        if mean.is_nan() || mean <= 0.0 {
            return None;
        }
        for f in &mut factors {
            *f /= mean;
        }
        let max = factors.iter().copied().fold(0.0, f64::max);
        Some(Profile { factors, max })
    }

    /// The multiplier during hour `index` of the run (0 = the run's first hour).
    pub fn factor_of_hour(&self, cal: &Calendar, index: u64) -> f64 {
        let start = cal.start_weekday as u64 * 24 + cal.start_hour as u64;
        self.factors[((start + index) % 168) as usize]
    }

    /// The multiplier at time `t` of the run.
    pub fn factor_at(&self, cal: &Calendar, t: Instant) -> f64 {
        self.factor_of_hour(cal, t.0 / HOUR_US)
    }

    /// The mean multiplier over `[0, horizon)` (0 if the profile is zero there throughout).
    /// Whole weeks contribute the week's sum each (any 168 consecutive hours are one week of
    /// the profile), so the work is at most a week of hours however long the horizon.
    pub fn mean_over(&self, cal: &Calendar) -> f64 {
        let h = cal.horizon.0;
        if h == 0 {
            return 0.0;
        }
        let hours = h / HOUR_US;
        let weeks = hours / 168;
        let week: f64 = self.factors.iter().sum();
        let mut total = weeks as f64 * week * HOUR_US as f64;
        for k in weeks * 168..hours {
            total += self.factor_of_hour(cal, k) * HOUR_US as f64;
        }
        let rest = h % HOUR_US;
        if rest > 0 {
            total += self.factor_of_hour(cal, hours) * rest as f64;
        }
        total / h as f64
    }
}

/// The arrival times, sorted (they use the `arrivals` stream only).
pub fn arrival_times(spec: &SyntheticSpec, cal: &Calendar, seed: u64) -> Vec<Instant> {
    let mut rng = crate::engine::stream(seed, "arrivals");
    let Some(profile) = Profile::new(&spec.daily, &spec.weekly) else {
        return Vec::new();
    };
    let horizon = cal.horizon.0;
    match spec.scaled_arrivals() {
        Arrivals::Jobs(n) => {
            // Inverse transform over the piecewise-constant density of the hours.
            let segments = horizon.div_ceil(HOUR_US);
            let mut cum = Vec::with_capacity(segments as usize);
            let mut total = 0.0;
            for k in 0..segments {
                let len = (horizon - k * HOUR_US).min(HOUR_US);
                total += profile.factor_of_hour(cal, k) * len as f64;
                cum.push(total);
            }
            if total.is_nan() || total <= 0.0 {
                return Vec::new();
            }
            let mut times: Vec<Instant> = (0..n)
                .map(|_| {
                    let u = unit(&mut rng) * total;
                    let k = cum.partition_point(|c| *c <= u).min(cum.len() - 1);
                    let before = if k == 0 { 0.0 } else { cum[k - 1] };
                    let len = (horizon - k as u64 * HOUR_US).min(HOUR_US);
                    let within = ((u - before) / (cum[k] - before)).clamp(0.0, 1.0);
                    let t = k as u64 * HOUR_US + (within * len as f64) as u64;
                    Instant(t.min(horizon.saturating_sub(1)))
                })
                .collect();
            times.sort_unstable();
            times
        }
        Arrivals::RatePerHour(rate) => {
            // Thinning: candidates at the peak rate, each kept with probability factor / peak.
            let peak_per_us = rate * profile.max / HOUR_US as f64;
            let mut times = Vec::new();
            if peak_per_us.is_nan() || peak_per_us <= 0.0 {
                return times;
            }
            let mut t = 0.0f64;
            loop {
                t += -(1.0 - unit(&mut rng)).ln() / peak_per_us;
                if t >= horizon as f64 {
                    break;
                }
                let at = Instant(t as u64);
                if unit(&mut rng) * profile.max < profile.factor_at(cal, at) {
                    times.push(at);
                }
            }
            times
        }
    }
}

/// Owner names `user01` … with probabilities ∝ 1 / rank (Zipf, exponent 1).
struct Owners {
    names: Vec<String>,
    cum: Vec<f64>,
}

impl Owners {
    fn new(n: u32) -> Owners {
        let n = n.max(1);
        let width = n.to_string().len().max(2);
        let names = (1..=n).map(|k| format!("user{k:0width$}")).collect();
        let mut total = 0.0;
        let cum = (1..=n)
            .map(|k| {
                total += 1.0 / k as f64;
                total
            })
            .collect();
        Owners { names, cum }
    }

    fn pick(&self, u: f64) -> &str {
        let x = u * self.cum.last().copied().unwrap_or(1.0);
        let i = self.cum.partition_point(|c| *c <= x).min(self.names.len() - 1);
        &self.names[i]
    }
}

fn pick_class(classes: &[JobClass], u: f64) -> usize {
    let total: f64 = classes.iter().map(|c| c.weight).sum();
    let mut x = u * total;
    for (i, c) in classes.iter().enumerate() {
        if x < c.weight {
            return i;
        }
        x -= c.weight;
    }
    classes.len() - 1
}

/// Builds the workload: jobs with ids 1, 2, … in submission order.
pub fn generate(spec: &SyntheticSpec, cal: &Calendar, seed: u64) -> Vec<WorkloadJob> {
    let times = arrival_times(spec, cal, seed);
    let mut classes_rng = crate::engine::stream(seed, "classes");
    let mut sizes = crate::engine::stream(seed, "sizes");
    let mut durations = crate::engine::stream(seed, "durations");
    let mut owners_rng = crate::engine::stream(seed, "owners");
    let mut keepalive_rng = crate::engine::stream(seed, "keepalive");
    let mut data = crate::engine::stream(seed, "data");
    let owners = Owners::new(spec.owners);
    let mut jobs = Vec::with_capacity(times.len());
    if spec.classes.is_empty() {
        return jobs;
    }
    for (i, submit) in times.into_iter().enumerate() {
        let class = &spec.classes[pick_class(&spec.classes, unit(&mut classes_rng))];
        let limits = |shape: Shape| Request {
            shape,
            max_dead_boards: class.max_dead_boards,
            max_dead_links: class.max_dead_links,
            require_torus: class.require_torus,
        };
        let request = match &class.shape {
            ClassShape::Board => Request::new(Shape::AnyBoard),
            ClassShape::Boards { boards, min_ratio } => {
                let n = boards.sample(&mut sizes) as u32;
                if n <= 1 {
                    Request::new(Shape::AnyBoard)
                } else {
                    limits(Shape::Boards {
                        n,
                        min_ratio: *min_ratio,
                    })
                }
            }
            ClassShape::Rect { width, height } => {
                let w = width.sample(&mut sizes) as u32;
                let h = height.sample(&mut sizes) as u32;
                limits(Shape::Triads { w, h })
            }
            ClassShape::Specific { boards } => {
                let k = ((unit(&mut sizes) * boards.len() as f64) as usize).min(boards.len() - 1);
                Request::new(Shape::Board { board: boards[k] })
            }
        };
        let runtime = class.duration.sample(&mut durations);
        let estimate = class
            .estimate_factor
            .map(|f| Duration::from_secs_f64(runtime.as_secs_f64() * f));
        let owner = owners.pick(unit(&mut owners_rng)).to_string();
        let lapses = unit(&mut keepalive_rng) < spec.lapse_probability;
        let lapse_after = if lapses && spec.keepalive.is_some() {
            Some(spec.lapse_after.sample(&mut keepalive_rng))
        } else {
            None
        };
        let data_in = spec.data_in.sample(&mut data).0;
        let data_out = spec.data_out.sample(&mut data).0;
        jobs.push(WorkloadJob {
            id: i as u64 + 1,
            submit,
            owner,
            class: class.name.clone(),
            request,
            machine: class.machine.clone(),
            tags: class.tags.clone(),
            runtime,
            estimate,
            keepalive: spec.keepalive,
            lapse_after,
            last_keepalive: None,
            cancel_after: None,
            data_in,
            data_out,
        });
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn week() -> Calendar {
        Calendar {
            horizon: Duration::from_secs(7 * 86_400),
            start_weekday: 0,
            start_hour: 0,
        }
    }

    #[test]
    fn exact_job_count_follows_the_daily_cycle() {
        let spec = SyntheticSpec::new(Arrivals::Jobs(5000));
        let jobs = generate(&spec, &week(), 1);
        assert_eq!(jobs.len(), 5000);
        assert!(jobs.windows(2).all(|w| w[0].submit <= w[1].submit));
        assert!(jobs.iter().all(|j| j.submit.0 < week().horizon.0));
        assert_eq!(
            jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
            (1..=5000).collect::<Vec<_>>()
        );
        let hour = |j: &WorkloadJob| (j.submit.0 / HOUR_US) % 24;
        let day = |j: &WorkloadJob| j.submit.0 / HOUR_US / 24;
        let office = jobs.iter().filter(|j| (10..17).contains(&hour(j))).count();
        let night = jobs.iter().filter(|j| (0..7).contains(&hour(j))).count();
        assert!(office > 5 * night, "office {office}, night {night}");
        let weekend = jobs.iter().filter(|j| day(j) >= 5).count();
        assert!(weekend < 5000 / 7, "weekend {weekend}");
    }

    #[test]
    fn rate_is_the_weekly_mean() {
        let spec = SyntheticSpec::new(Arrivals::RatePerHour(50.0));
        let cal = Calendar {
            horizon: Duration::from_secs(4 * 7 * 86_400),
            ..week()
        };
        let n = arrival_times(&spec, &cal, 9).len() as f64;
        let expected = 50.0 * 24.0 * 28.0;
        assert!((n - expected).abs() < 0.03 * expected, "{n} vs {expected}");
        let p = Profile::new(&DEFAULT_DAILY, &DEFAULT_WEEKLY).unwrap();
        assert!((p.mean_over(&cal) - 1.0).abs() < 1e-9);
    }

    /// The mean over whole weeks plus a remainder equals the hour-by-hour mean, and a horizon
    /// of 1.8e13 s (5e9 hours) takes a week of hours, not 5e9 (before: seconds of looping).
    #[test]
    fn the_profile_mean_does_not_walk_every_hour() {
        let p = Profile::new(&DEFAULT_DAILY, &DEFAULT_WEEKLY).unwrap();
        let hour_by_hour = |cal: &Calendar| {
            let h = cal.horizon.0;
            let mut total = 0.0;
            for k in 0..h.div_ceil(HOUR_US) {
                let len = (h - k * HOUR_US).min(HOUR_US);
                total += p.factor_of_hour(cal, k) * len as f64;
            }
            total / h as f64
        };
        for (secs, day, hour) in [
            (1, 0, 0),
            (5400, 3, 7),
            (86_400 * 10 + 1234, 6, 23),
            (3 * 7 * 86_400, 2, 5),
        ] {
            let cal = Calendar {
                horizon: Duration::from_secs(secs),
                start_weekday: day,
                start_hour: hour,
            };
            let (a, b) = (p.mean_over(&cal), hour_by_hour(&cal));
            assert!(
                (a - b).abs() < 1e-12 * b.max(1.0),
                "{secs} s from day {day} hour {hour}: {a} vs {b}"
            );
        }
        let huge = Calendar {
            horizon: Duration::from_secs(18_000_000_000_000),
            ..week()
        };
        assert!((p.mean_over(&huge) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn the_start_of_the_week_shifts_the_cycle() {
        let spec = SyntheticSpec::new(Arrivals::Jobs(2000));
        let cal = Calendar {
            horizon: Duration::from_secs(2 * 86_400),
            start_weekday: 5,
            start_hour: 0,
        };
        let weekend = generate(&spec, &cal, 4);
        let cal2 = Calendar {
            start_weekday: 0,
            ..cal
        };
        let weekdays = generate(&spec, &cal2, 4);
        // Same count (exact), but the weekend run has a flatter day: compare night shares.
        assert_eq!(weekend.len(), weekdays.len());
        let p = Profile::new(&spec.daily, &spec.weekly).unwrap();
        assert!(p.factor_at(&cal, Instant(11 * HOUR_US)) < p.factor_at(&cal2, Instant(11 * HOUR_US)));
    }

    #[test]
    fn owners_are_skewed() {
        let o = Owners::new(40);
        assert_eq!(o.names[0], "user01");
        assert_eq!(o.names[39], "user40");
        let mut rng = crate::engine::stream(5, "owners");
        let top = (0..4000).filter(|_| o.pick(unit(&mut rng)) == "user01").count();
        assert!((800..1100).contains(&top), "{top}");
        assert_eq!(Owners::new(150).names[0], "user001");
    }

    #[test]
    fn default_mix_has_the_advertised_shares() {
        let spec = SyntheticSpec::new(Arrivals::Jobs(20_000));
        let jobs = generate(&spec, &week(), 2);
        let share = |name: &str| jobs.iter().filter(|j| j.class == name).count() as f64 / jobs.len() as f64;
        assert!((share("1 board") - 0.55).abs() < 0.02);
        assert!((share("2-24 boards") - 0.30).abs() < 0.02);
        assert!((share("25-150 boards") - 0.10).abs() < 0.01);
        assert!((share("rect") - 0.04).abs() < 0.01);
        assert!((share("large") - 0.01).abs() < 0.005);
        for j in &jobs {
            match (j.class.as_str(), j.request.shape) {
                ("1 board", Shape::AnyBoard) => {}
                ("2-24 boards", Shape::Boards { n, min_ratio }) => {
                    assert!((2..=24).contains(&n) && min_ratio == 0.333 && j.request.max_dead_boards == Some(0))
                }
                ("25-150 boards", Shape::Boards { n, .. }) => assert!((25..=150).contains(&n)),
                ("large", Shape::Boards { n, .. }) => assert!(n >= 300),
                ("rect", Shape::Triads { w, h }) => assert!((1..=3).contains(&w) && (1..=3).contains(&h)),
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(j.estimate, Some(j.runtime));
            assert_eq!(j.keepalive, Some(Duration::from_secs(60)));
            assert_eq!((j.data_in, j.data_out), (1 << 20, 4 << 20));
        }
        let lapsed = jobs.iter().filter(|j| j.lapse_after.is_some()).count();
        assert!((100..300).contains(&lapsed), "{lapsed}");
        let median = |name: &str| {
            let mut d: Vec<u64> = jobs.iter().filter(|j| j.class == name).map(|j| j.runtime.0).collect();
            d.sort_unstable();
            d[d.len() / 2] as f64 / 60e6
        };
        assert!((4.0..6.5).contains(&median("1 board")), "{}", median("1 board"));
        assert!(median("large") > 60.0);
    }
}
