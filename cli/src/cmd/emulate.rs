//! `sim emulate`: the scenario's machines served over real UDP until stopped.

use crate::Failure;
use std::path::PathBuf;

/// `sim emulate` arguments.
#[derive(clap::Args)]
pub struct Args {
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
}

/// Serves until Ctrl-C, SIGTERM or `--duration`.
pub fn run(a: Args) -> Result<(), Failure> {
    let sc = spinnbed_sim::scenario::load(&a.scenario)?;
    let opts = spinnbed_realtime::emulate::EmulateOptions {
        allow_non_loopback: a.allow_non_loopback,
        impair: a.impair,
        ready_file: a.ready_file,
        duration: a.duration.map(|d| super::seconds_option("--duration", d)).transpose()?,
        quiet: a.quiet,
        stop: None,
        eieio_rate: Some(a.eieio_rate),
        eieio_keys: Some(a.eieio_keys),
        ..Default::default()
    };
    super::runtime()?
        .block_on(spinnbed_realtime::emulate::emulate(&sc, &opts))
        .map_err(Failure::input)?;
    Ok(())
}
