//! `sim serve`: the scheduling core as a live spalloc server for the real client tools.

use crate::Failure;
use std::net::SocketAddrV4;
use std::path::PathBuf;

/// `sim serve` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Scenario file (TOML): its machines and [policy] (and, with --background, its workload).
    scenario: PathBuf,
    /// Drive the scenario's addresses as real BMPs and boards (default: emulate the machines
    /// in this process, on those addresses).
    #[arg(long)]
    hardware: bool,
    /// State directory: the journal that makes the server durable, and the job log (default:
    /// out/<scenario name>/state/).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Address of the spalloc v1 protocol (JSON lines over TCP).
    #[arg(long, default_value = "127.0.0.1:22244")]
    listen: SocketAddrV4,
    /// Allow binding addresses outside 127.0.0.0/8 (the listening address and the emulated
    /// machine's).
    #[arg(long)]
    allow_non_loopback: bool,
    /// Also run the scenario's workload, as simulated users sharing the machine with the real
    /// clients.
    #[arg(long)]
    background: bool,
    /// Divide the background workload's arrival times, runtimes and keepalives by this.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Seconds a client may stall — a request line left unfinished, or replies it takes none
    /// of — before its connection is closed.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    stall_timeout: f64,
    /// No line per job state change.
    #[arg(long, short)]
    quiet: bool,
}

/// Serves until SIGTERM or Ctrl-C; SIGHUP reloads the scenario's machines.
pub fn run(a: Args) -> Result<(), Failure> {
    if !(a.stall_timeout > 0.0 && a.stall_timeout <= 86_400.0) {
        return Err(Failure::input(anyhow::anyhow!(
            "--stall-timeout must be a number of seconds above 0 and at most 86400 (got {})",
            a.stall_timeout
        )));
    }
    let sc = spinnbed_sim::scenario::load(&a.scenario)?;
    let state = a
        .state
        .unwrap_or_else(|| crate::default_out(&sc.run.name).join("state"));
    let opts = spinnbed_realtime::serve::ServeOptions {
        listen: a.listen,
        allow_non_loopback: a.allow_non_loopback,
        hardware: a.hardware,
        background: a.background,
        speed: a.speed,
        quiet: a.quiet,
        scenario_path: Some(a.scenario.clone()),
        line_deadline: std::time::Duration::from_secs_f64(a.stall_timeout),
        ..spinnbed_realtime::serve::ServeOptions::new(state)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::other(anyhow::anyhow!("cannot start tokio: {e}")))?;
    rt.block_on(spinnbed_realtime::serve::serve(&sc, &opts))
        .map_err(Failure::input)?;
    Ok(())
}
