//! Writes a synthetic "busy week" run directory (20,000+ jobs, a 7-day timeline sampled every
//! 5 minutes, a 1,200-board machine with dead boards and links, SCP traffic) and times
//! `generate` on it — the performance check of the reports crate.
//!
//! `cargo run --release -p spinnbed-reports --example busy_week -- [DIR] [JOBS]`
//! (DIR defaults to a temporary directory; the report is left in DIR/report when DIR is given).

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::time::Instant;

/// A small deterministic generator (SplitMix64), so the example needs no RNG crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

fn write_fixture(dir: &PathBuf, n_jobs: usize) -> anyhow::Result<()> {
    fs::create_dir_all(dir)?;
    let mut rng = Rng(42);
    let week = 7.0 * 86_400.0;
    let (w, h) = (20u32, 20u32);
    let dead: Vec<(u32, u32, u32)> = vec![(3, 4, 1), (10, 2, 0), (15, 15, 2), (7, 18, 1), (0, 9, 0), (19, 0, 2)];
    let live = 1200 - dead.len();

    // Jobs.
    let classes = [
        ("1 board", 0.55, 1u32, 1.0f64),
        ("small (2-24 boards)", 0.30, 12, 60.0),
        ("medium (25-120 boards)", 0.12, 60, 600.0),
        ("large (>120 boards)", 0.03, 240, 3600.0),
    ];
    let mut jobs = String::from(
        "id,owner,class,request,machine,submit_s,start_s,ready_s,end_s,wait_s,boards,triads,outcome,reason\n",
    );
    let mut class_stats: Vec<Vec<f64>> = vec![Vec::new(); classes.len()];
    let mut all = Vec::new();
    let mut started = 0;
    for i in 0..n_jobs {
        let submit = week * i as f64 / n_jobs as f64;
        let r = rng.unit();
        let mut acc = 0.0;
        let mut c = 0;
        for (k, cl) in classes.iter().enumerate() {
            acc += cl.1;
            if r < acc {
                c = k;
                break;
            }
        }
        let (name, _, boards, scale) = classes[c];
        let run = (rng.normal() * 1.2 + 7.5).exp().min(86_400.0);
        if rng.unit() < 0.004 {
            let _ = writeln!(
                jobs,
                "{i},user{},{name},\"boards({boards},0.333)\",,{submit:.3},,,,,,,never_started,",
                i % 37
            );
            continue;
        }
        let wait = if rng.unit() < 0.35 {
            0.0
        } else {
            (rng.normal() * 1.5 + scale.ln() + 1.0).exp().min(5.0 * 86_400.0)
        };
        let start = submit + wait;
        started += 1;
        class_stats[c].push(wait);
        all.push(wait);
        let _ = writeln!(
            jobs,
            "{i},user{},{name},\"boards({boards},0.333)\",SpiNNaker1M,{submit:.3},{start:.3},{:.3},{:.3},{wait:.3},{boards},{},completed,\"destroyed by user\"",
            i % 37,
            start + 20.0,
            start + 20.0 + run,
            boards.div_ceil(3)
        );
    }
    fs::write(dir.join("jobs.csv"), jobs)?;

    // Timeline every 5 minutes.
    let mut tl = String::from("t_s,queued,running,allocated_boards,powered_boards,idle_boards,dead_boards\n");
    let mut t = 0.0;
    while t <= week {
        let day = (2.0 * std::f64::consts::PI * t / 86_400.0).sin();
        let alloc = ((live as f64) * (0.62 + 0.25 * day + 0.05 * rng.normal()))
            .clamp(0.0, live as f64)
            .round();
        let extra = (30.0 + 20.0 * rng.unit()).round().min(live as f64 - alloc);
        let powered = (alloc - 8.0).max(0.0) + extra;
        let idle = live as f64 - alloc - extra;
        let queued = (40.0 * (1.0 + day) + 10.0 * rng.normal()).max(0.0).round();
        let _ = writeln!(
            tl,
            "{t:.3},{queued},{},{alloc},{powered},{idle},{}",
            (alloc / 20.0).round(),
            dead.len()
        );
        t += 300.0;
    }
    fs::write(dir.join("timeline.csv"), tl)?;

    // Boards: busier towards the centre of the machine.
    let mut boards = String::from("machine,x,y,z,cabinet,frame,board,dead,allocated_s,powered_s,dead_links\n");
    let links = ["east", "north_east", "north", "west", "south_west", "south"];
    let mut alloc_total = 0.0;
    for y in 0..h {
        for x in 0..w {
            for z in 0..3 {
                let is_dead = dead.contains(&(x, y, z));
                let dx = (x as f64 - 9.5) / 10.0;
                let dy = (y as f64 - 9.5) / 10.0;
                let busy = (0.85 - 0.45 * (dx * dx + dy * dy) + 0.08 * rng.normal()).clamp(0.0, 1.0);
                let a = if is_dead { 0.0 } else { busy * week };
                alloc_total += a;
                let dl = if !is_dead && rng.unit() < 0.01 {
                    links[(rng.next() % 6) as usize]
                } else {
                    ""
                };
                let idx = (y * w + x) * 3 + z;
                let _ = writeln!(
                    boards,
                    "SpiNNaker1M,{x},{y},{z},{},{},{},{},{a:.3},{:.3},{dl}",
                    idx / 120,
                    idx / 24 % 5,
                    idx % 24,
                    u8::from(is_dead),
                    (a * 1.05).min(week)
                );
            }
        }
    }
    fs::write(dir.join("boards.csv"), boards)?;

    // SCP traffic every 5 minutes.
    let mut scp = String::from("t_s,requests,retries,timeouts,failures,bytes,goodput_mbps\n");
    let mut t = 0.0;
    while t <= week {
        let req = 2000.0 + 500.0 * rng.normal().abs();
        let retries = (req * 0.01 * (1.0 + rng.unit())).round();
        let timeouts = (retries * 0.2 * rng.unit()).round();
        let failures = if rng.unit() < 0.02 { 1 } else { 0 };
        let bytes = req * 256.0;
        let _ = writeln!(
            scp,
            "{t:.3},{req:.0},{retries},{timeouts},{failures},{bytes:.0},{:.3}",
            bytes * 8.0 / 300.0 / 1e6
        );
        t += 300.0;
    }
    fs::write(dir.join("scp.csv"), scp)?;

    // Summary.
    let stats = |v: &mut Vec<f64>| -> (f64, f64, f64, f64, f64) {
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return (0.0, 0.0, 0.0, 0.0, 0.0);
        }
        let p = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        (
            v.iter().sum::<f64>() / v.len() as f64,
            p(0.5),
            p(0.95),
            p(0.99),
            v[v.len() - 1],
        )
    };
    let classes_json: Vec<String> = classes
        .iter()
        .zip(class_stats.iter_mut())
        .map(|(c, v)| {
            let (m, p50, p95, _, _) = stats(v);
            format!(r#"{{ "class": "{}", "jobs": {}, "started": {}, "mean_wait_s": {m:.3}, "p50_wait_s": {p50:.3}, "p95_wait_s": {p95:.3} }}"#, c.0, v.len(), v.len())
        })
        .collect();
    let (m, p50, p95, p99, max) = stats(&mut all);
    let util = alloc_total / (live as f64 * week);
    let summary = format!(
        r#"{{
  "scenario": "busy-week", "seed": 1,
  "policy": {{ "packer": "spalloc", "queue": "fifo", "seconds_before_free_s": 30.0 }},
  "horizon_s": {week}, "end_s": {week}, "makespan_s": {week},
  "jobs": {n_jobs}, "started": {started}, "completed": {started}, "cancelled": 0, "timed_out": 0, "failed": 0,
  "never_started": {ns}, "live_boards": {live}, "dead_boards": {dead},
  "utilisation": {util:.4}, "powered_utilisation": {pu:.4},
  "board_hours_allocated": {bh:.1}, "board_hours_powered": {bhp:.1},
  "wait_s": {{ "mean": {m:.3}, "p50": {p50:.3}, "p95": {p95:.3}, "p99": {p99:.3}, "max": {max:.3} }},
  "mean_bounded_slowdown": 3.2,
  "classes": [{classes}],
  "machines": [{{ "name": "SpiNNaker1M", "live_boards": {live}, "dead_boards": {dead}, "utilisation": {util:.4} }}],
  "scp": {{ "requests": 4000000, "retries": 60000, "timeouts": 6000, "failures": 40, "bytes": 1024000000, "goodput_mbps": 1.45 }}
}}
"#,
        ns = n_jobs - started,
        dead = dead.len(),
        pu = (util * 1.05).min(1.0),
        bh = alloc_total / 3600.0,
        bhp = alloc_total * 1.05 / 3600.0,
        classes = classes_json.join(", ")
    );
    fs::write(dir.join("summary.json"), summary)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n_jobs: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(20_000);
    let tmp = tempfile::tempdir()?;
    let dir = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("busy-week"));
    write_fixture(&dir, n_jobs)?;
    let t0 = Instant::now();
    let summary = spinnbed_reports::generate(&dir)?;
    let elapsed = t0.elapsed();
    println!(
        "generate: {} files in {:.3} s ({} jobs)",
        summary.files.len(),
        elapsed.as_secs_f64(),
        n_jobs
    );
    for f in &summary.files {
        println!("  {} ({} bytes)", f.display(), fs::metadata(f)?.len());
    }
    Ok(())
}
