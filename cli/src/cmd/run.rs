//! `sim run`: a scenario under the discrete-event clock (or a `[study]`), or in real time
//! against hardware with `--hardware`; then its output directory and report.

use crate::Failure;
use anyhow::Context as _;
use spinnbed_sim::run::{Perf, RunSpec, simulate, stage_outputs, write_outputs};
use spinnbed_sim::scenario::Scenario;
use std::path::{Path, PathBuf};

/// `sim run` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Scenario file (TOML).
    scenario: PathBuf,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Output directory (default: out/<scenario name>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress bar and no summary table.
    #[arg(long, short)]
    quiet: bool,
    /// Do not write the charts and HTML report.
    #[arg(long)]
    no_report: bool,
    /// Run in real time over real UDP against the machine description's BMP and board
    /// addresses (real hardware or `sim emulate`).
    #[arg(long)]
    hardware: bool,
    /// With --hardware: divide arrival gaps and runtimes by this (demos).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
}

/// Runs the scenario (simulated, study or `--hardware`) and writes its outputs.
pub fn run(a: Args) -> Result<(), Failure> {
    let mut sc = spinnbed_sim::scenario::load(&a.scenario)?;
    if let Some(s) = a.seed {
        sc = sc.with_seed(s);
    }
    if a.hardware {
        return hardware(&a, sc);
    }
    let dir = a.out.clone().unwrap_or_else(|| crate::default_out(&sc.run.name));
    // Refused before anything is built or written if it would not fit in memory.
    let mut memory = sc.memory_estimate();
    if a.no_report {
        memory = memory.without_report();
    }
    crate::memory::check(&memory)?;
    if sc.study().is_some() {
        return study(&a, &sc, &dir);
    }
    let staged = stage_outputs(&dir).map_err(Failure::input)?;
    let (jobs, report) = sc.workload()?;
    crate::memory::check(&memory.with_jobs(jobs.len()))?;
    let mut spec = RunSpec::from_scenario(&sc, jobs);
    // A journal's BMP timing, for fixed-delay hardware to replay.
    spec.recorded_bmp = report.recorded_bmp.clone();
    let total = (sc.run.horizon.as_micros() / 1_000_000).max(1);
    let bar = crate::progress::bar(
        a.quiet,
        total,
        "{spinner} simulated {msg:>9} [{wide_bar}] {percent:>3}% ({elapsed})",
    );
    if !a.quiet {
        println!("{}: {report}", sc.run.name);
    }
    let t0 = std::time::Instant::now();
    let (result, meta) = simulate(&spec, |t| {
        let s = t.as_micros() / 1_000_000;
        bar.set_position(s.min(total));
        bar.set_message(format!("{:.1}d", s as f64 / 86400.0));
    })
    .map_err(|e| Failure::Input(anyhow::anyhow!("{}: {e}", a.scenario.display())))?;
    let wall = t0.elapsed();
    bar.finish_and_clear();
    let perf = Perf::new(&result, wall);
    let summary = write_outputs(staged, &result, &meta, &sc.to_resolved_toml(), &perf)
        .with_context(|| format!("cannot write the output directory {}", dir.display()))
        .map_err(Failure::Input)?;
    let report = if a.no_report { Ok(()) } else { report_hook(&dir) };
    if !a.quiet {
        print_summary(&summary, &perf, &dir);
        if !a.no_report && report.is_ok() {
            println!("  report: {}", dir.join("report/index.html").display());
        }
    }
    report.map_err(Failure::Input)
}

/// Writes the report of a run directory. If that fails, the run's data files are still
/// complete and no partial `report/` is left (reports are renamed into place only when whole);
/// the error says so (the command then exits 2).
fn report_hook(dir: &Path) -> anyhow::Result<()> {
    spinnbed_reports::generate(dir).map(|_| ()).map_err(|e| {
        anyhow::anyhow!(
            "the run's data files in {} are complete, but its report could not be written: {e:#}",
            dir.display()
        )
    })
}

fn print_summary(s: &spinnbed_sim::run::outputs::Summary, perf: &Perf, dir: &Path) {
    println!(
        "scenario {}  seed {}  packer {}  queue {}",
        s.scenario, s.seed, s.policy.packer, s.policy.queue
    );
    println!(
        "  jobs {:>7}  started {:>7}  completed {:>7}  cancelled {:>5}  timed out {:>5}  failed {:>5}  never started {:>5}",
        s.jobs, s.started, s.completed, s.cancelled, s.timed_out, s.failed, s.never_started
    );
    println!(
        "  utilisation {:>5.1}%  powered {:>5.1}%  board-hours {:.0}",
        s.utilisation * 100.0,
        s.powered_utilisation * 100.0,
        s.board_hours_allocated
    );
    println!(
        "  wait  mean {}  p50 {}  p95 {}  p99 {}  max {}   bounded slowdown {:.2}",
        human(s.wait_s.mean),
        human(s.wait_s.p50),
        human(s.wait_s.p95),
        human(s.wait_s.p99),
        human(s.wait_s.max),
        s.mean_bounded_slowdown
    );
    if let Some(speed) = perf.speed {
        println!(
            "  ran {:.1} s of real time over UDP (speed x{speed}, {} events)  ->  {}",
            perf.wall_s,
            perf.events,
            dir.display()
        );
        return;
    }
    let packets = perf
        .datagrams_per_s
        .map(|d| format!(", {d:.0} datagrams/s"))
        .unwrap_or_default();
    println!(
        "  simulated {:.2} days in {:.2} s ({:.0} events/s{packets}, {:.1} days/s)  ->  {}",
        perf.simulated_s / 86400.0,
        perf.wall_s,
        perf.events_per_s,
        perf.sim_days_per_wall_s,
        dir.display()
    );
}

fn human(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.0}s")
    } else if s < 7200.0 {
        format!("{:.1}m", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.1}h", s / 3600.0)
    } else {
        format!("{:.1}d", s / 86400.0)
    }
}

fn study(a: &Args, sc: &Scenario, dir: &Path) -> Result<(), Failure> {
    let staged = stage_outputs(dir).map_err(Failure::input)?;
    let bar = crate::progress::bar(a.quiet, 1, "{spinner} study cells [{wide_bar}] {pos}/{len} ({elapsed})");
    let t0 = std::time::Instant::now();
    let found = spinnbed_sim::study::run_into(sc, staged, |n, total| {
        bar.set_length(total as u64);
        bar.set_position(n as u64);
    })
    .with_context(|| format!("cannot write the output directory {}", dir.display()))
    .map_err(Failure::Input)?;
    bar.finish_and_clear();
    if !a.no_report
        && let Err(e) = spinnbed_reports::generate(dir)
    {
        eprintln!("sim: warning: the study's report could not be written: {e:#}");
    }
    if !a.quiet {
        let width = found.cells.iter().map(|c| c.policy.len()).max().unwrap_or(6).max(6);
        let net_width = found.cells.iter().map(|c| c.network.len()).max().unwrap_or(7).max(7);
        println!(
            "{:<net_width$} {:<width$} {:<5} {:>6} {:>7} {:>10} {:>8} {:>8} {:>8} {:>7}",
            "network", "policy", "op", "loss", "rtt_ms", "goodput", "bound", "retries", "timeouts", "drops"
        );
        for c in &found.cells {
            println!(
                "{:<net_width$} {:<width$} {:<5} {:>6} {:>7} {:>10.2} {:>8.2} {:>8.1} {:>8.1} {:>7.1}{}",
                c.network,
                c.policy,
                c.op,
                c.loss,
                c.rtt_ms,
                c.goodput_mbps,
                c.bound_mbps,
                c.retries,
                c.timeouts,
                c.scamp_drops,
                if c.failed > 0 {
                    format!("  ({} failed)", c.failed)
                } else {
                    String::new()
                }
            );
        }
        for w in &found.winners {
            println!(
                "{} {}: {} wins, {:.2}x {} and {:.2}x {} (geometric mean over loss x RTT); worst cell {} at {:.2}x the best other",
                w.network,
                w.op,
                w.winner,
                w.by,
                w.runner_up,
                w.vs_best_reference,
                w.best_reference,
                w.worst_cell,
                w.worst_cell_ratio
            );
        }
        let v = &found.verdict;
        println!(
            "adaptive: {:.0}% of the bound at 0 loss, {:.1}x spinnman at 5% loss, worse than a reference in {} cell(s); {:.1} s  ->  {}",
            v.adaptive_vs_bound_at_zero_loss * 100.0,
            v.adaptive_vs_spinnman_at_5pct,
            v.cells_worse_than_a_reference.len(),
            t0.elapsed().as_secs_f64(),
            dir.display()
        );
    }
    Ok(())
}

fn hardware(a: &Args, sc: Scenario) -> Result<(), Failure> {
    if sc.study().is_some() {
        return Err(Failure::input(anyhow::anyhow!(
            "{}: a [study] runs in simulation only (drop --hardware)",
            a.scenario.display()
        )));
    }
    if !(a.speed > 0.0 && a.speed.is_finite()) {
        return Err(Failure::input(anyhow::anyhow!(
            "--speed must be a positive number (got {})",
            a.speed
        )));
    }
    let (jobs, report) = sc.workload()?;
    let dir = a.out.clone().unwrap_or_else(|| crate::default_out(&sc.run.name));
    let staged = stage_outputs(&dir).map_err(Failure::input)?;
    let mut spec = RunSpec::from_scenario(&sc, jobs);
    // Faults cannot be injected into real hardware (and so are not reported as having struck).
    spec.faults.clear();
    if !a.quiet {
        println!("{}: {report}; real time over UDP, speed x{}", sc.run.name, a.speed);
        if !sc.faults.is_empty() {
            println!("  note: the scenario's [[faults]] cannot be injected into real hardware and are ignored");
        }
        let scaled = sc.run.sample_period.as_secs_f64() / a.speed;
        if scaled < 0.1 {
            println!(
                "  note: sample_period {} / speed {} is {:.3} s, below 100ms: sampling every 100ms",
                spinnbed_sim::quantity::units::format_duration(sc.run.sample_period),
                a.speed,
                scaled
            );
        }
    }
    let opts = spinnbed_realtime::hardware::RealtimeOptions {
        speed: a.speed,
        ..Default::default()
    };
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let rt = super::runtime()?;
    let t0 = std::time::Instant::now();
    let total_s = (spec.horizon.as_secs_f64() / a.speed).max(1.0);
    let bar = crate::progress::bar(
        a.quiet,
        total_s.ceil() as u64,
        "{spinner} real time {pos:>5}/{len} s of arrivals [{wide_bar}] ({elapsed})",
    );
    let run = rt
        .block_on(spinnbed_realtime::hardware::run(&spec, &opts, |t| {
            bar.set_position(t.as_secs_f64() as u64)
        }))
        .map_err(Failure::input)?;
    bar.finish_and_clear();
    let mut perf = Perf::new(&run.result, t0.elapsed());
    perf.started_unix_s = Some(started);
    perf.speed = Some(a.speed);
    let summary = write_outputs(staged, &run.result, &run.meta, &sc.to_resolved_toml(), &perf)
        .with_context(|| format!("cannot write the output directory {}", dir.display()))
        .map_err(Failure::Input)?;
    let report = if a.no_report { Ok(()) } else { report_hook(&dir) };
    if !a.quiet {
        print_summary(&summary, &perf, &dir);
    }
    if !run.left_powered.is_empty() {
        let boards: Vec<String> = run
            .left_powered
            .iter()
            .map(|(m, b)| match sc.machine(m).and_then(|mc| mc.machine.location(*b)) {
                Some(p) => format!(
                    "{m} board {b} (cabinet {}, frame {}, board {})",
                    p.cabinet, p.frame, p.board
                ),
                None => format!("{m} board {b}"),
            })
            .collect();
        return Err(Failure::other(anyhow::anyhow!(
            "{} board(s) may still be powered on (their power-off did not complete); power them off by hand:\n  {}",
            boards.len(),
            boards.join("\n  ")
        )));
    }
    report.map_err(Failure::Input)
}
