//! `sim gen-trace`: a seeded synthetic trace (replay CSV) for a machine description.

use crate::Failure;
use anyhow::Context as _;
use spinnbed_sim::input::{self, machine_json};
use spinnbed_sim::workload::tracegen::{self, TraceGen, TraceGenError};
use std::path::PathBuf;

/// `sim gen-trace` arguments.
#[derive(clap::Args)]
pub struct Args {
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
}

/// Generates the trace and writes it.
pub fn run(a: Args) -> Result<(), Failure> {
    let mname = a.machine.display().to_string();
    let m = machine_json::parse(&mname, &input::read_text(&a.machine)?)?;
    let live = (m.board_positions() - m.dead_boards().len()) as u32;
    let g = TraceGen {
        load: a.load,
        mean_interarrival_s: a.mean_interarrival,
        median_duration_s: a.median_duration,
        ..TraceGen::new(a.jobs, a.seed, m.width(), m.height(), live)
    };
    let jobs = g.generate().map_err(|e| {
        let flag = match &e {
            TraceGenError::Setting { what, .. } => match *what {
                "jobs" => "--jobs: ",
                "load" => "--load: ",
                "median_duration_s" => "--median-duration: ",
                _ => "--mean-interarrival: ",
            },
            TraceGenError::TooLong { .. } => "",
        };
        Failure::input(anyhow::anyhow!("{flag}{e}"))
    })?;
    let write = || -> std::io::Result<()> {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&a.out)?);
        tracegen::write_csv(&jobs, &mut w)?;
        std::io::Write::flush(&mut w)
    };
    write()
        .with_context(|| format!("cannot write {}", a.out.display()))
        .map_err(Failure::Input)?;
    Ok(())
}
