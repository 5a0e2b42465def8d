//! The `sim` command line: argument parsing and one module per subcommand ([`cmd`]); the work
//! itself lives in the libraries (`spinnbed-sim` for everything deterministic,
//! `spinnbed-realtime` for UDP and the wall clock, `spinnbed-reports` for charts).

mod cmd;
mod memory;
mod progress;

use clap::{Parser, Subcommand};
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
    Run(cmd::run::Args),
    /// Write the charts and HTML report of a run directory, or compare several runs.
    Report(cmd::report::Args),
    /// Serve the scenario's machines over real UDP (one address per BMP and board).
    Emulate(cmd::emulate::Args),
    /// Serve the scheduling core as a live spalloc server (the v1 JSON-line protocol) that the
    /// real client tools use, on the scenario's machines — emulated here, or real with
    /// --hardware — with a durable journal.
    Serve(cmd::serve::Args),
    /// Load `sim emulate` (or real hardware) with SCP requests across every board and report
    /// the reply rate: powers the boards on, boots them, then keeps requests outstanding.
    Load(cmd::load::Args),
    /// Check a scenario (and build its workload) without running it.
    Check(cmd::check::Args),
    /// Replay an allocation trace against the scheduling core alone (replay-parity format).
    Replay(cmd::replay::Args),
    /// Write a seeded synthetic trace (replay CSV) for a machine description.
    GenTrace(cmd::gen_trace::Args),
    /// Run a parameter sweep (a sweep file's points × seeds) here or as a Slurm job array, and
    /// collect sweep.csv, points.csv and a report.
    Sweep(cmd::sweep::Args),
    /// A sweep's worker: runs tasks of a sweep directory (what `sim sweep` starts).
    #[command(hide = true)]
    SweepTask(cmd::sweep::TaskArgs),
}

/// How a command failed: errors the user can fix (bad input, a refused output directory) exit
/// with 2, others with 1.
pub enum Failure {
    /// Bad input or a refused request.
    Input(anyhow::Error),
    /// Anything else.
    Other(anyhow::Error),
}

impl Failure {
    /// A bad-input failure from anything printable.
    pub fn input(e: impl Into<anyhow::Error>) -> Failure {
        Failure::Input(e.into())
    }
    /// Another failure.
    pub fn other(e: impl Into<anyhow::Error>) -> Failure {
        Failure::Other(e.into())
    }
}

impl From<spinnbed_sim::input::InputError> for Failure {
    fn from(e: spinnbed_sim::input::InputError) -> Failure {
        Failure::Input(e.into())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => cmd::run::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Emulate(a) => cmd::emulate::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Load(a) => cmd::load::run(a),
        Command::Check(a) => cmd::check::run(a),
        Command::Replay(a) => cmd::replay::run(a),
        Command::GenTrace(a) => cmd::gen_trace::run(a),
        Command::Sweep(a) => cmd::sweep::run(a),
        Command::SweepTask(a) => cmd::sweep::task(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(e)) => {
            eprintln!("sim: error: {}", message(&e));
            ExitCode::from(2)
        }
        Err(Failure::Other(e)) => {
            eprintln!("sim: error: {}", message(&e));
            ExitCode::from(1)
        }
    }
}

/// An error and its causes, each cause added unless the message already says it.
fn message(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

/// The default output directory of a run or comparison.
fn default_out(name: &str) -> PathBuf {
    PathBuf::from("out").join(name)
}
