//! The `sim` command line.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use spinnbed_sim::input::{self, InputError};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "sim",
    version,
    about = "spinnbed: try a SpiNNaker board-allocation service before touching the hardware"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario under the discrete-event clock and write its output directory.
    Run {
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
    },
    /// Write the charts and HTML report of a run directory, or compare several runs.
    Report {
        /// Run directories (one: its report/; several with --compare).
        runs: Vec<PathBuf>,
        /// Overlay the runs and compare their summaries side by side.
        #[arg(long)]
        compare: bool,
        /// Output directory for a comparison (default: out/compare).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Serve the scenario's machines over real UDP (one address per BMP and board).
    Emulate {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// Allow binding addresses outside 127.0.0.0/8.
        #[arg(long)]
        allow_non_loopback: bool,
        /// Apply the scenario's network model (latency, loss, …) on the emulator side, and strike
        /// its [faults] at their times (seconds after start).
        #[arg(long)]
        impair: bool,
        /// Write this file once every socket is bound.
        #[arg(long)]
        ready_file: Option<PathBuf>,
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long)]
        duration: Option<f64>,
        /// No log lines.
        #[arg(long, short)]
        quiet: bool,
        /// EIEIO datagrams per second each board running an application streams to its IP tag
        /// (0: no streaming).
        #[arg(long, default_value_t = 10)]
        eieio_rate: u32,
        /// 32-bit keys per streamed EIEIO datagram.
        #[arg(long, default_value_t = 63, value_parser = clap::value_parser!(u8).range(1..=63))]
        eieio_keys: u8,
    },
    /// Load `sim emulate` (or real hardware) with SCP requests across every board and report
    /// the reply rate: powers the boards on, boots them, then keeps requests outstanding.
    Load {
        /// Scenario file (TOML): its machine description gives the BMP and board addresses.
        scenario: PathBuf,
        /// Seconds of load once the boards are booted.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// The request sent to each board's Ethernet chip.
        #[arg(long, value_enum, default_value = "read")]
        request: spinnbed_sim::loadgen::LoadRequest,
        /// Requests outstanding across all boards.
        #[arg(long, default_value_t = 256)]
        outstanding: usize,
        /// SCP policy of each board's client: spinnman, rig or adaptive.
        #[arg(long, default_value = "spinnman")]
        policy: String,
        /// Load only the first N boards.
        #[arg(long)]
        boards: Option<usize>,
        /// Leave the boards powered on at the end.
        #[arg(long)]
        keep_powered: bool,
        /// Also write the figures as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Check a scenario (and build its workload) without running it.
    Check {
        /// Scenario file (TOML).
        scenario: PathBuf,
    },
    /// Replay an allocation trace against the scheduling core alone (replay-parity format).
    Replay {
        /// Machine description (JSON).
        #[arg(long)]
        machine: PathBuf,
        /// Trace (CSV, optionally gzip-compressed).
        #[arg(long)]
        trace: PathBuf,
        /// Seconds a freed allocation waits before its boards can be reused (≤ 3 decimals).
        #[arg(long, default_value = "30")]
        seconds_before_free: String,
        /// Output file (JSON lines); standard output if omitted.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write a seeded synthetic trace (replay CSV) for a machine description.
    GenTrace {
        /// Machine description (JSON), for the sizes.
        #[arg(long)]
        machine: PathBuf,
        /// Number of jobs.
        #[arg(long, default_value_t = 2000)]
        jobs: usize,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Offered load (requested board-time over live board-time); sets the arrival rate.
        #[arg(long, default_value_t = 0.8)]
        load: f64,
        /// Mean seconds between submissions (overrides --load).
        #[arg(long)]
        mean_interarrival: Option<f64>,
        /// Median job duration in seconds.
        #[arg(long, default_value_t = 600.0)]
        median_duration: f64,
        /// Output CSV file.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Errors the user can fix (bad input) exit with 2; others with 1.
enum Failure {
    Input(anyhow::Error),
    Other(anyhow::Error),
}

impl From<InputError> for Failure {
    fn from(e: InputError) -> Failure {
        Failure::Input(e.into())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(e)) => {
            eprintln!("sim: error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Other(e)) => {
            eprintln!("sim: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Run {
            scenario,
            seed,
            out,
            quiet,
            no_report,
            hardware,
            speed,
        } => {
            if hardware {
                cmd_run_hardware(&scenario, seed, out, quiet, no_report, speed)
            } else {
                cmd_run(&scenario, seed, out, quiet, no_report)
            }
        }
        Command::Report { runs, compare, out } => {
            if runs.is_empty() {
                return Err(Failure::Input(anyhow::anyhow!("give at least one run directory")));
            }
            if let Some(r) = runs.iter().find(|r| !r.join("summary.json").is_file()) {
                return Err(Failure::Input(anyhow::anyhow!(
                    "{}: not a run directory (no summary.json; `sim run` writes one)",
                    r.display()
                )));
            }
            if compare || runs.len() > 1 {
                let out = out.unwrap_or_else(|| PathBuf::from("out/compare"));
                spinnbed_reports::compare(&runs, &out).map_err(Failure::Input)?;
                println!("{}", out.join("index.html").display());
            } else {
                spinnbed_reports::generate(&runs[0]).map_err(Failure::Input)?;
                println!("{}", runs[0].join("report/index.html").display());
            }
            Ok(())
        }
        Command::Emulate {
            scenario,
            allow_non_loopback,
            impair,
            ready_file,
            duration,
            quiet,
            eieio_rate,
            eieio_keys,
        } => {
            let sc = spinnbed_sim::scenario::load(&scenario)?;
            let opts = spinnbed_sim::emulate::EmulateOptions {
                allow_non_loopback,
                impair,
                ready_file,
                duration: duration.map(std::time::Duration::from_secs_f64),
                quiet,
                stop: None,
                eieio_rate: Some(eieio_rate),
                eieio_keys: Some(eieio_keys),
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start tokio")
                .map_err(Failure::Other)?;
            rt.block_on(spinnbed_sim::emulate::emulate(&sc, &opts))
                .map_err(Failure::Input)?;
            Ok(())
        }
        Command::Load {
            scenario,
            seconds,
            request,
            outstanding,
            policy,
            boards,
            keep_powered,
            json,
        } => {
            let sc = spinnbed_sim::scenario::load(&scenario)?;
            if !(seconds > 0.0 && seconds.is_finite()) {
                return Err(Failure::Input(anyhow::anyhow!(
                    "--seconds must be a positive number (got {seconds})"
                )));
            }
            let opts = spinnbed_sim::loadgen::LoadOptions {
                duration: std::time::Duration::from_secs_f64(seconds),
                request,
                outstanding,
                policy,
                max_boards: boards,
                power_off: !keep_powered,
                ..Default::default()
            };
            let machines: Vec<_> = sc.machines.iter().map(|m| m.machine.clone()).collect();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start tokio")
                .map_err(Failure::Other)?;
            let report = rt
                .block_on(spinnbed_sim::loadgen::load(&machines, &opts, |l| {
                    eprintln!("sim load: {l}")
                }))
                .map_err(Failure::Input)?;
            println!("{report}");
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&report).map_err(|e| Failure::Other(e.into()))?;
                std::fs::write(&path, text + "\n")
                    .with_context(|| format!("cannot write {}", path.display()))
                    .map_err(Failure::Other)?;
            }
            Ok(())
        }
        Command::Check { scenario } => {
            let sc = spinnbed_sim::scenario::load(&scenario)?;
            let (jobs, report) = sc.workload()?;
            println!(
                "{}: ok: scenario {:?}, {} machine(s), {} jobs over {} ({report})",
                scenario.display(),
                sc.run.name,
                sc.machines.len(),
                jobs.len(),
                spinnbed_sim::scenario::units::format_duration(sc.run.horizon)
            );
            Ok(())
        }
        Command::Replay {
            machine,
            trace,
            seconds_before_free,
            out,
        } => {
            let sbf = input::replay_csv::parse_ms(seconds_before_free.trim()).ok_or_else(|| {
                Failure::Input(anyhow::anyhow!(
                    "--seconds-before-free: must be seconds from 0 to 1e9 with at most 3 decimals (got {seconds_before_free:?})"
                ))
            })?;
            let mname = machine.display().to_string();
            let m = input::machine_json::parse(&mname, &input::read_text(&machine)?)?;
            let tname = trace.display().to_string();
            let jobs = input::replay_csv::parse(&tname, &input::read_text(&trace)?)?;
            let mut sink: Box<dyn std::io::Write> = match &out {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot write {}", path.display()))
                        .map_err(Failure::Input)?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let r = spinnbed_sim::replay::replay(&m, &jobs, sbf, &mut sink)
                .context("cannot write the output")
                .map_err(Failure::Other)?;
            writeln!(sink, "{}", r.summary_line(&m, sbf))
                .and_then(|_| sink.flush())
                .context("cannot write the output")
                .map_err(Failure::Other)?;
            Ok(())
        }
        Command::GenTrace {
            machine,
            jobs,
            seed,
            load,
            mean_interarrival,
            median_duration,
            out,
        } => {
            let mname = machine.display().to_string();
            let m = input::machine_json::parse(&mname, &input::read_text(&machine)?)?;
            if !(load > 0.0 && median_duration > 0.0 && mean_interarrival.is_none_or(|m| m > 0.0)) {
                return Err(Failure::Input(anyhow::anyhow!(
                    "--load, --mean-interarrival and --median-duration must be positive"
                )));
            }
            let live = (m.board_positions() - m.dead_boards().len()) as u32;
            let g = spinnbed_sim::tracegen::TraceGen {
                load,
                mean_interarrival_s: mean_interarrival,
                median_duration_s: median_duration,
                ..spinnbed_sim::tracegen::TraceGen::new(jobs, seed, m.width(), m.height(), live)
            };
            std::fs::write(&out, spinnbed_sim::tracegen::to_csv(&g.generate()))
                .with_context(|| format!("cannot write {}", out.display()))
                .map_err(Failure::Input)?;
            Ok(())
        }
    }
}

fn cmd_run(
    path: &std::path::Path,
    seed: Option<u64>,
    out: Option<PathBuf>,
    quiet: bool,
    no_report: bool,
) -> Result<(), Failure> {
    use spinnbed_sim::run::{Perf, RunSpec, simulate, write_outputs};
    let mut sc = spinnbed_sim::scenario::load(path)?;
    if let Some(s) = seed {
        sc = sc.with_seed(s);
    }
    let dir = out.unwrap_or_else(|| PathBuf::from("out").join(&sc.run.name));
    check_writable(&dir).map_err(Failure::Input)?;
    if sc.study.is_some() {
        return cmd_study(&sc, &dir, quiet, no_report);
    }
    let (jobs, report) = sc.workload()?;
    let spec = RunSpec::from_scenario(&sc, jobs);
    let total = (sc.run.horizon.as_micros() / 1_000_000).max(1);
    let bar = if quiet || !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} simulated {msg:>9} [{wide_bar}] {percent:>3}% ({elapsed})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    };
    if !quiet {
        println!("{}: {report}", sc.run.name);
    }
    let t0 = std::time::Instant::now();
    let (result, meta) = simulate(&spec, |t| {
        let s = t.as_micros() / 1_000_000;
        bar.set_position(s.min(total));
        bar.set_message(format!("{:.1}d", s as f64 / 86400.0));
    })
    .map_err(|e| Failure::Input(anyhow::anyhow!("{}: {e}", path.display())))?;
    let wall = t0.elapsed();
    bar.finish_and_clear();
    let perf = Perf::new(&result, wall);
    let summary = write_outputs(&dir, &result, &meta, &sc.to_resolved_toml(), &perf)
        .with_context(|| format!("cannot write the output directory {}", dir.display()))
        .map_err(Failure::Input)?;
    let report = if no_report { Ok(()) } else { report_hook(&dir) };
    if !quiet {
        print_summary(&summary, &perf, &dir);
        if !no_report && report.is_ok() {
            println!("  report: {}", dir.join("report/index.html").display());
        }
    }
    report.map_err(Failure::Input)
}

/// Fails early, with one clear line, if the output directory cannot be created or written.
fn check_writable(dir: &std::path::Path) -> anyhow::Result<()> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let probe = parent.join(format!(".sim-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| format!("cannot write in {}", parent.display()))?;
    let _ = std::fs::remove_file(probe);
    spinnbed_sim::run::check_replaceable(dir)?;
    Ok(())
}

/// Writes the report of a run directory. If that fails, the run's data files are still
/// complete and no partial `report/` is left (reports are renamed into place only when whole);
/// the error says so (the command then exits 2).
fn report_hook(dir: &std::path::Path) -> anyhow::Result<()> {
    spinnbed_reports::generate(dir).map(|_| ()).map_err(|e| {
        anyhow::anyhow!(
            "the run's data files in {} are complete, but its report could not be written: {e:#}",
            dir.display()
        )
    })
}

fn print_summary(s: &spinnbed_sim::outputs::Summary, perf: &spinnbed_sim::run::Perf, dir: &std::path::Path) {
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

fn cmd_study(
    sc: &spinnbed_sim::scenario::Scenario,
    dir: &std::path::Path,
    quiet: bool,
    no_report: bool,
) -> Result<(), Failure> {
    let bar = if quiet || !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(1);
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} study cells [{wide_bar}] {pos}/{len} ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    };
    let t0 = std::time::Instant::now();
    let (cells, verdict) = spinnbed_sim::study::run_into(sc, dir, |n, total| {
        bar.set_length(total as u64);
        bar.set_position(n as u64);
    })
    .with_context(|| format!("cannot write the output directory {}", dir.display()))
    .map_err(Failure::Input)?;
    bar.finish_and_clear();
    if !no_report && let Err(e) = spinnbed_reports::generate(dir) {
        eprintln!("sim: warning: the study's report could not be written: {e:#}");
    }
    if !quiet {
        println!(
            "{:<9} {:<5} {:>6} {:>7} {:>10} {:>8} {:>8} {:>8}",
            "policy", "op", "loss", "rtt_ms", "goodput", "bound", "retries", "timeouts"
        );
        for c in &cells {
            println!(
                "{:<9} {:<5} {:>6} {:>7} {:>10.2} {:>8.2} {:>8.1} {:>8.1}{}",
                c.policy,
                c.op,
                c.loss,
                c.rtt_ms,
                c.goodput_mbps,
                c.bound_mbps,
                c.retries,
                c.timeouts,
                if c.failed > 0 {
                    format!("  ({} failed)", c.failed)
                } else {
                    String::new()
                }
            );
        }
        println!(
            "adaptive: {:.0}% of the bound at 0 loss, {:.1}x spinnman at 5% loss, worse than a reference in {} cell(s); {:.1} s  ->  {}",
            verdict.adaptive_vs_bound_at_zero_loss * 100.0,
            verdict.adaptive_vs_spinnman_at_5pct,
            verdict.cells_worse_than_a_reference.len(),
            t0.elapsed().as_secs_f64(),
            dir.display()
        );
    }
    Ok(())
}

fn cmd_run_hardware(
    path: &std::path::Path,
    seed: Option<u64>,
    out: Option<PathBuf>,
    quiet: bool,
    no_report: bool,
    speed: f64,
) -> Result<(), Failure> {
    use spinnbed_sim::run::{Perf, RunSpec, write_outputs};
    let mut sc = spinnbed_sim::scenario::load(path)?;
    if let Some(s) = seed {
        sc = sc.with_seed(s);
    }
    if sc.study.is_some() {
        return Err(Failure::Input(anyhow::anyhow!(
            "{}: a [study] runs in simulation only (drop --hardware)",
            path.display()
        )));
    }
    if !(speed > 0.0 && speed.is_finite()) {
        return Err(Failure::Input(anyhow::anyhow!(
            "--speed must be a positive number (got {speed})"
        )));
    }
    let (jobs, report) = sc.workload()?;
    let dir = out.unwrap_or_else(|| PathBuf::from("out").join(&sc.run.name));
    check_writable(&dir).map_err(Failure::Input)?;
    let mut spec = RunSpec::from_scenario(&sc, jobs);
    // Faults cannot be injected into real hardware (and so are not reported as having struck).
    spec.faults.clear();
    if !quiet {
        println!("{}: {report}; real time over UDP, speed x{speed}", sc.run.name);
        if !sc.faults.is_empty() {
            println!("  note: the scenario's [[faults]] cannot be injected into real hardware and are ignored");
        }
    }
    let opts = spinnbed_sim::realtime::RealtimeOptions {
        speed,
        ..Default::default()
    };
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start tokio")
        .map_err(Failure::Other)?;
    let t0 = std::time::Instant::now();
    let total_s = (spec.horizon.as_secs_f64() / speed).max(1.0);
    let bar = if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(total_s.ceil() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} real time {pos:>5}/{len} s of arrivals [{wide_bar}] ({elapsed})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    };
    let result = rt
        .block_on(spinnbed_sim::realtime::run(&spec, &opts, |t| {
            bar.set_position(t.as_secs_f64() as u64)
        }))
        .map_err(Failure::Input)?;
    bar.finish_and_clear();
    let mut perf = Perf::new(&result, t0.elapsed());
    perf.started_unix_s = Some(started);
    perf.speed = Some(speed);
    let summary = write_outputs(&dir, &result, &spec.meta(), &sc.to_resolved_toml(), &perf)
        .with_context(|| format!("cannot write the output directory {}", dir.display()))
        .map_err(Failure::Input)?;
    let report = if no_report { Ok(()) } else { report_hook(&dir) };
    if !quiet {
        print_summary(&summary, &perf, &dir);
    }
    report.map_err(Failure::Input)
}
