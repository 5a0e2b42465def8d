//! `sim load`: an SCP load generator against `sim emulate` or hardware.

use crate::Failure;
use anyhow::Context as _;
use spinnbed_realtime::load::LoadRequest;
use spinnbed_sim::scenario::ScpPolicy;
use std::path::PathBuf;

/// The request each board is sent.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RequestArg {
    /// CMD_VER to the board's Ethernet chip.
    Version,
    /// CMD_READ of 256 bytes.
    Read,
    /// CMD_WRITE of 256 bytes.
    Write,
}

/// An SCP retry and windowing policy.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum PolicyArg {
    /// spinnman's pipeline: window 8, resend everything after 1 s.
    Spinnman,
    /// rig's stop-and-wait.
    Rig,
    /// spinnbed's adaptive policy.
    Adaptive,
}

/// `sim load` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Scenario file (TOML): its machine description gives the BMP and board addresses.
    scenario: PathBuf,
    /// Seconds of load once the boards are booted.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// The request sent to each board's Ethernet chip.
    #[arg(long, value_enum, default_value = "read")]
    request: RequestArg,
    /// Requests outstanding across all boards.
    #[arg(long, default_value_t = 256)]
    outstanding: usize,
    /// SCP policy of each board's client.
    #[arg(long, value_enum, default_value = "spinnman")]
    policy: PolicyArg,
    /// Load only the first N boards.
    #[arg(long)]
    boards: Option<usize>,
    /// Leave the boards powered on at the end.
    #[arg(long)]
    keep_powered: bool,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Sets the machine up, loads it and prints the figures.
pub fn run(a: Args) -> Result<(), Failure> {
    let sc = spinnbed_sim::scenario::load(&a.scenario)?;
    let duration = super::seconds_option("--seconds", a.seconds)?;
    let opts = spinnbed_realtime::load::LoadOptions {
        duration,
        request: match a.request {
            RequestArg::Version => LoadRequest::Version,
            RequestArg::Read => LoadRequest::Read,
            RequestArg::Write => LoadRequest::Write,
        },
        outstanding: a.outstanding,
        policy: match a.policy {
            PolicyArg::Spinnman => ScpPolicy::Spinnman,
            PolicyArg::Rig => ScpPolicy::Rig,
            PolicyArg::Adaptive => ScpPolicy::Adaptive,
        },
        max_boards: a.boards,
        power_off: !a.keep_powered,
        ..Default::default()
    };
    let machines: Vec<_> = sc.machines.iter().map(|m| m.machine.clone()).collect();
    let report = super::runtime()?
        .block_on(spinnbed_realtime::load::load(&machines, &opts, |l| {
            eprintln!("sim load: {l}")
        }))
        .map_err(Failure::input)?;
    println!("{report}");
    if let Some(path) = a.json {
        let text = serde_json::to_string_pretty(&report).map_err(Failure::other)?;
        std::fs::write(&path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(Failure::Other)?;
    }
    Ok(())
}
