//! `sim check`: validates a scenario and builds its workload without running it.

use crate::Failure;
use std::path::PathBuf;

/// `sim check` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Scenario file (TOML).
    scenario: PathBuf,
}

/// Loads the scenario, builds its workload and prints one line about it.
pub fn run(a: Args) -> Result<(), Failure> {
    let sc = spinnbed_sim::scenario::load(&a.scenario)?;
    let (jobs, report) = sc.workload()?;
    println!(
        "{}: ok: scenario {:?}, {} machine(s), {} jobs over {} ({report})",
        a.scenario.display(),
        sc.run.name,
        sc.machines.len(),
        jobs.len(),
        spinnbed_sim::quantity::units::format_duration(sc.run.horizon)
    );
    Ok(())
}
