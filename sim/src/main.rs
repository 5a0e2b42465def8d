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
        Command::Replay {
            machine,
            trace,
            seconds_before_free,
            out,
        } => {
            let sbf = input::replay_csv::parse_ms(seconds_before_free.trim()).ok_or_else(|| {
                Failure::Input(anyhow::anyhow!(
                    "--seconds-before-free: must be non-negative seconds with at most 3 decimals (got {seconds_before_free:?})"
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
