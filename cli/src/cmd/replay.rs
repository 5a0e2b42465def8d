//! `sim replay`: a trace against the scheduling core alone, in the reference replay's format.

use crate::Failure;
use anyhow::Context as _;
use spinnbed_sim::input::{self, machine_json, replay_csv};
use std::io::Write as _;
use std::path::PathBuf;

/// `sim replay` arguments.
#[derive(clap::Args)]
pub struct Args {
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
}

/// Replays the trace, writing one line per job and the summary line.
pub fn run(a: Args) -> Result<(), Failure> {
    let sbf = replay_csv::parse_ms(a.seconds_before_free.trim()).ok_or_else(|| {
        Failure::input(anyhow::anyhow!(
            "--seconds-before-free: must be seconds from 0 to 1e9 with at most 3 decimals (got {:?})",
            a.seconds_before_free
        ))
    })?;
    let mname = a.machine.display().to_string();
    let m = machine_json::parse(&mname, &input::read_text(&a.machine)?)?;
    let tname = a.trace.display().to_string();
    let jobs = replay_csv::parse(&tname, &input::read_text(&a.trace)?)?;
    let mut sink: Box<dyn std::io::Write> = match &a.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))
                .map_err(Failure::Input)?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let t0 = std::time::Instant::now();
    let r = spinnbed_sim::replay::replay(&m, &jobs, sbf, &mut sink)
        .context("cannot write the output")
        .map_err(Failure::Other)?;
    let wall = t0.elapsed();
    writeln!(sink, "{}", r.summary_line(&m, sbf, wall))
        .and_then(|_| sink.flush())
        .context("cannot write the output")
        .map_err(Failure::Other)?;
    Ok(())
}
