//! `sim report`: a run's charts and HTML page, or a comparison of several runs.

use crate::Failure;
use std::path::PathBuf;

/// `sim report` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Run directories (one: its report/; several with --compare).
    runs: Vec<PathBuf>,
    /// Overlay the runs and compare their summaries side by side.
    #[arg(long)]
    compare: bool,
    /// Output directory for a comparison (default: out/compare).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Writes the report (or the comparison) and prints where.
pub fn run(a: Args) -> Result<(), Failure> {
    if a.runs.is_empty() {
        return Err(Failure::input(anyhow::anyhow!("give at least one run directory")));
    }
    if let Some(r) = a.runs.iter().find(|r| !r.join("summary.json").is_file()) {
        return Err(Failure::input(anyhow::anyhow!(
            "{}: not a run directory (no summary.json; `sim run` writes one)",
            r.display()
        )));
    }
    if a.compare || a.runs.len() > 1 {
        let out = a.out.unwrap_or_else(|| crate::default_out("compare"));
        spinnbed_reports::compare(&a.runs, &out).map_err(Failure::Input)?;
        println!("{}", out.join("index.html").display());
    } else {
        spinnbed_reports::generate(&a.runs[0]).map_err(Failure::Input)?;
        println!("{}", a.runs[0].join("report/index.html").display());
    }
    Ok(())
}
