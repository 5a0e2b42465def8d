//! `sim check`: validates a scenario and builds its workload without running it.

use crate::Failure;
use spinnbed_sim::quantity::units::{format_bytes, format_duration};
use spinnbed_sim::scenario::StudyConfig;
use std::path::PathBuf;

/// `sim check` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Scenario file (TOML).
    scenario: PathBuf,
}

/// Loads the scenario, checks that a simulated run of it fits in memory (with its report),
/// builds its workload (or describes its study) and prints one line about it.
pub fn run(a: Args) -> Result<(), Failure> {
    let sc = spinnbed_sim::scenario::load(&a.scenario)?;
    // Checked before building the workload, which may itself be what does not fit.
    let memory = sc.memory_estimate();
    crate::memory::check(&memory)?;
    if let Some(st) = sc.study() {
        println!(
            "{}: ok: scenario {:?}, {}",
            a.scenario.display(),
            sc.run.name,
            describe_study(st)
        );
        return Ok(());
    }
    let (jobs, report) = sc.workload()?;
    crate::memory::check(&memory.with_jobs(jobs.len()))?;
    println!(
        "{}: ok: scenario {:?}, {} machine(s), {} jobs over {} ({report})",
        a.scenario.display(),
        sc.run.name,
        sc.machines.len(),
        jobs.len(),
        format_duration(sc.run.horizon)
    );
    Ok(())
}

/// What a study measures: "study scp-windowing: 3 policies x 2 ops x 5 losses x 3 rtts x 1
/// network = 90 cells, 3 seeds each, 256KiB per transfer".
fn describe_study(st: &StudyConfig) -> String {
    let n = |k: usize, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
    format!(
        "study scp-windowing: {} x {} x {} x {} x {} = {} cells, {} each, {} per transfer",
        n(st.all_policies().len(), "policy", "policies"),
        n(st.ops.len(), "op", "ops"),
        n(st.losses.len(), "loss", "losses"),
        n(st.rtts.len(), "rtt", "rtts"),
        n(st.networks.len(), "network", "networks"),
        st.cells(),
        n(st.seeds as usize, "seed", "seeds"),
        format_bytes(st.bytes)
    )
}
