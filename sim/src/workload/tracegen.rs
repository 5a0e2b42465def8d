//! Seeded synthetic allocation traces in the replay CSV format (for parity tests and
//! benchmarks): a SpiNNaker-like mix of single boards, board counts with the client's default
//! `min_ratio` 0.333 and `max_dead_boards` 0, rectangles of triads and a few specific boards,
//! with Poisson arrivals and heavy-tailed durations.

use crate::input::replay_csv::{Kind, MAX_MS, TraceJob, fmt_s};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Most jobs a trace may have (each costs about 90 bytes while it is generated).
pub const MAX_JOBS: usize = 10_000_000;

/// Why a trace cannot be generated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TraceGenError {
    /// A setting out of range.
    #[error("{what} must be {range} (got {got})")]
    Setting {
        /// Which (`jobs`, `load`, `mean_interarrival_s`, `median_duration_s`).
        what: &'static str,
        /// The allowed range.
        range: &'static str,
        /// The value given.
        got: String,
    },
    /// The arrivals would run past the longest time a trace can hold.
    #[error(
        "the arrivals would span more than the 1e9 s a trace may hold (job {job} would arrive after {at_s:.3e} s): raise the load or lower the mean inter-arrival time or the number of jobs"
    )]
    TooLong {
        /// The first job past the limit.
        job: u64,
        /// When it would arrive.
        at_s: f64,
    },
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct TraceGen {
    /// Number of jobs.
    pub jobs: usize,
    /// Seed.
    pub seed: u64,
    /// Machine width in triads (sizes are drawn to fit it, with a few that do not).
    pub width: u16,
    /// Machine height in triads.
    pub height: u16,
    /// Live boards of the machine (for the offered load).
    pub live_boards: u32,
    /// Offered load: requested board-seconds per second over live boards (0.8 = 80 %).
    pub load: f64,
    /// Mean seconds between submissions; overrides `load` when set.
    pub mean_interarrival_s: Option<f64>,
    /// Median job duration in seconds.
    pub median_duration_s: f64,
}

impl TraceGen {
    /// Defaults for a machine: offered load 0.8, median duration 10 minutes.
    pub fn new(jobs: usize, seed: u64, width: u16, height: u16, live_boards: u32) -> TraceGen {
        TraceGen {
            jobs,
            seed,
            width,
            height,
            live_boards,
            load: 0.8,
            mean_interarrival_s: None,
            median_duration_s: 600.0,
        }
    }

    /// Checks the settings: a number of jobs from 1 to [`MAX_JOBS`], finite positive load,
    /// mean inter-arrival time and median duration.
    pub fn validate(&self) -> Result<(), TraceGenError> {
        let positive = |what, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(TraceGenError::Setting {
                    what,
                    range: "a finite number above zero",
                    got: v.to_string(),
                })
            }
        };
        if !(1..=MAX_JOBS).contains(&self.jobs) {
            return Err(TraceGenError::Setting {
                what: "jobs",
                range: "from 1 to 10000000",
                got: self.jobs.to_string(),
            });
        }
        positive("load", self.load)?;
        positive("median_duration_s", self.median_duration_s)?;
        if let Some(m) = self.mean_interarrival_s {
            positive("mean_interarrival_s", m)?;
        }
        Ok(())
    }

    /// Generates the jobs in submission order (ids 1..=n); fails if the settings are out of
    /// range or the arrivals would run past the 1e9 s a trace can hold.
    pub fn generate(&self) -> Result<Vec<TraceJob>, TraceGenError> {
        self.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let unit = |rng: &mut ChaCha8Rng| -> f64 { (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 };
        let boards_total = self.width as i64 * self.height as i64 * 3;
        let mut out = Vec::with_capacity(self.jobs);
        let mut demand = 0.0f64;
        for id in 1..=self.jobs as u64 {
            // Log-normal duration, sigma 1.2, clamped to [1 s, 7 days].
            let z = {
                let (u1, u2) = (unit(&mut rng).max(1e-12), unit(&mut rng));
                (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
            };
            let dur = (self.median_duration_s * (1.2 * z).exp()).clamp(1.0, 7.0 * 86400.0);
            let duration_ms = (dur * 1000.0).round() as u64;
            let r = unit(&mut rng);
            let (kind, args, min_ratio, max_dead_boards, boards) = if r < 0.45 {
                (Kind::Board, [0, 0, 0], None, None, 1)
            } else if r < 0.80 {
                // At least n boards: mostly small, sometimes large.
                let cap = boards_total.max(2);
                let n = if unit(&mut rng) < 0.85 {
                    2 + (unit(&mut rng) * 22.0) as i64
                } else {
                    2 + (unit(&mut rng).powi(3) * cap as f64) as i64
                };
                let ratio = if unit(&mut rng) < 0.85 { Some(0.333) } else { None };
                let mdb = if unit(&mut rng) < 0.7 {
                    Some(0)
                } else if unit(&mut rng) < 0.5 {
                    Some(2)
                } else {
                    None
                };
                (Kind::Boards, [n, 0, 0], ratio, mdb, 3 * ((n + 2) / 3))
            } else if r < 0.97 {
                let w = 1 + (unit(&mut rng).powi(4) * self.width as f64) as i64;
                let h = 1 + (unit(&mut rng).powi(4) * self.height as f64) as i64;
                let mdb = if unit(&mut rng) < 0.5 { Some(0) } else { None };
                (Kind::Rect, [w, h, 0], None, mdb, 3 * w * h)
            } else {
                let x = (unit(&mut rng) * self.width as f64) as i64;
                let y = (unit(&mut rng) * self.height as f64) as i64;
                let z = (unit(&mut rng) * 3.0) as i64;
                (Kind::Specific, [x, y, z], None, None, 1)
            };
            if boards <= boards_total {
                demand += boards as f64 * dur;
            }
            out.push(TraceJob {
                id,
                submit_ms: 0,
                kind,
                args,
                min_ratio,
                max_dead_boards,
                duration_ms,
                line: id as usize + 1,
            });
        }
        let mean_gap = self.mean_interarrival_s.unwrap_or_else(|| {
            let n = self.jobs.max(1) as f64;
            demand / n / (self.load * self.live_boards.max(1) as f64)
        });
        let mut t_ms: u64 = 0;
        for j in &mut out {
            let gap = -mean_gap * (1.0 - unit(&mut rng)).ln();
            let at = t_ms as f64 + (gap * 1000.0).round();
            if at.is_nan() || at > MAX_MS as f64 {
                return Err(TraceGenError::TooLong {
                    job: j.id,
                    at_s: at / 1000.0,
                });
            }
            t_ms = at as u64;
            j.submit_ms = t_ms;
        }
        Ok(out)
    }
}

/// Writes jobs as replay CSV.
pub fn to_csv(jobs: &[TraceJob]) -> String {
    let mut out = Vec::new();
    write_csv(jobs, &mut out).expect("writing to memory");
    String::from_utf8(out).expect("the CSV is ASCII")
}

/// Writes jobs as replay CSV to `out`.
pub fn write_csv(jobs: &[TraceJob], out: &mut dyn std::io::Write) -> std::io::Result<()> {
    writeln!(out, "id,submit_s,kind,a,b,c,min_ratio,max_dead_boards,duration_s")?;
    for j in jobs {
        let opt = |v: Option<String>| v.unwrap_or_default();
        let (kind, a, b, c) = match j.kind {
            Kind::Board => ("board", String::new(), String::new(), String::new()),
            Kind::Boards => ("boards", j.args[0].to_string(), String::new(), String::new()),
            Kind::Rect => ("rect", j.args[0].to_string(), j.args[1].to_string(), String::new()),
            Kind::Specific => (
                "specific",
                j.args[0].to_string(),
                j.args[1].to_string(),
                j.args[2].to_string(),
            ),
        };
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{}",
            j.id,
            fmt_s(j.submit_ms),
            kind,
            a,
            b,
            c,
            opt(j.min_ratio.map(|r| r.to_string())),
            opt(j.max_dead_boards.map(|d| d.to_string())),
            fmt_s(j.duration_ms)
        )?;
    }
    Ok(())
}
