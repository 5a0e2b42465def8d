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
    /// Address of the REST API and its websocket proxy (HTTP and HTTPS on one port), or `off`.
    #[arg(long, default_value = "127.0.0.1:22245", value_name = "ADDR:PORT|off")]
    rest_listen: String,
    /// The REST API's TLS certificate chain (PEM); default: a self-signed one kept in the
    /// state directory (`tls/cert.pem`).
    #[arg(long, requires = "tls_key", value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// Add a REST user (or change their password) in the state directory's users file, with
    /// the password read from the first line of standard input, and exit.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["add_token", "remove_user"])]
    add_user: Option<String>,
    /// With --add-user or --add-token: the user is an administrator (sees every job).
    #[arg(long)]
    admin: bool,
    /// Make a new bearer token for a REST user (creating a token-only user if needed), print
    /// it, and exit. Only its hash is kept.
    #[arg(long, value_name = "NAME", conflicts_with = "remove_user")]
    add_token: Option<String>,
    /// Remove a REST user and exit.
    #[arg(long, value_name = "NAME")]
    remove_user: Option<String>,
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
        .clone()
        .unwrap_or_else(|| crate::default_out(&sc.run.name).join("state"));
    if a.add_user.is_some() || a.add_token.is_some() || a.remove_user.is_some() {
        return accounts(&a, &state);
    }
    let rest_listen = match a.rest_listen.as_str() {
        "off" | "none" => None,
        s => Some(s.parse::<SocketAddrV4>().map_err(|_| {
            Failure::input(anyhow::anyhow!(
                "--rest-listen {s:?}: expected an IPv4 ADDR:PORT (e.g. 127.0.0.1:22245) or off"
            ))
        })?),
    };
    let opts = spinnbed_realtime::serve::ServeOptions {
        listen: a.listen,
        allow_non_loopback: a.allow_non_loopback,
        hardware: a.hardware,
        background: a.background,
        speed: a.speed,
        quiet: a.quiet,
        scenario_path: Some(a.scenario.clone()),
        line_deadline: std::time::Duration::from_secs_f64(a.stall_timeout),
        rest_listen,
        tls_files: a.tls_cert.clone().zip(a.tls_key.clone()),
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

/// `--add-user`, `--add-token`, `--remove-user`: the users file, then exit.
fn accounts(a: &Args, state: &std::path::Path) -> Result<(), Failure> {
    use spinnbed_realtime::serve::rest::accounts::Accounts;
    let fail = |e: spinnbed_realtime::serve::rest::accounts::AccountsError| Failure::input(anyhow::anyhow!("{e}"));
    let mut users = Accounts::load(state).map_err(fail)?;
    if let Some(name) = &a.add_user {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| Failure::input(anyhow::anyhow!("cannot read the password from standard input: {e}")))?;
        let password = line.trim_end_matches(['\n', '\r']);
        users.set_user(name, password, a.admin).map_err(fail)?;
        users.save(state).map_err(fail)?;
        println!(
            "user {name}{} saved in {}",
            if a.admin { " (admin)" } else { "" },
            state
                .join(spinnbed_realtime::serve::rest::accounts::USERS_FILE)
                .display()
        );
    } else if let Some(name) = &a.add_token {
        let token = users.add_token(name, a.admin).map_err(fail)?;
        users.save(state).map_err(fail)?;
        println!("{token}");
    } else if let Some(name) = &a.remove_user {
        users.remove_user(name).map_err(fail)?;
        users.save(state).map_err(fail)?;
        println!("user {name} removed");
    }
    Ok(())
}
