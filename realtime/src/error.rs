//! [`RealtimeError`]: why a real-time command could not start or carry on.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

/// Why a real-time command failed.
#[derive(Debug, thiserror::Error)]
pub enum RealtimeError {
    /// A socket could not be bound.
    #[error("cannot bind UDP {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddrV4,
        /// Why.
        source: std::io::Error,
    },
    /// A datagram could not be sent (other than a full buffer, which UDP may drop).
    #[error("cannot send to {dst}: {source}")]
    Send {
        /// The destination.
        dst: SocketAddrV4,
        /// Why.
        source: std::io::Error,
    },
    /// A signal handler could not be installed.
    #[error("cannot watch for {signal}: {source}")]
    Signal {
        /// Which signal.
        signal: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// An address outside 127.0.0.0/8 without permission to bind it.
    #[error(
        "{0} is not a loopback address: binding the machine's real addresses needs --allow-non-loopback (or give the machine a loopback IP base such as 127.1.0.0)"
    )]
    NotLoopback(Ipv4Addr),
    /// A server address outside 127.0.0.0/8 without `--allow-non-loopback`.
    #[error(
        "--listen {0}: not a loopback address; serving other hosts needs --allow-non-loopback (the default, 127.0.0.1:22244, serves this host only)"
    )]
    ListenNotLoopback(std::net::SocketAddrV4),
    /// Some BMPs did not answer CMD_VER before the run.
    #[error(
        "cannot reach the machine's BMPs ({} of them did not answer CMD_VER); is the hardware (or `sim emulate`) running?\n  {}",
        .0.len(),
        .0.join("\n  ")
    )]
    Unreachable(Vec<String>),
    /// A set-up step (power on, boot, power off) failed on some BMPs or boards.
    #[error("{what} failed on {} BMP(s) or board(s):\n  {}", failed.len(), failed.join("\n  "))]
    Setup {
        /// The step.
        what: &'static str,
        /// `who: why`, one per failure.
        failed: Vec<String>,
    },
    /// A command-line option out of range.
    #[error("{0}")]
    Option(String),
    /// The run could not be set up.
    #[error(transparent)]
    Run(#[from] spinnbed_sim::run::RunError),
    /// The REST API's certificate could not be loaded or made.
    #[error("the REST API's TLS: {0}")]
    Tls(#[from] crate::serve::rest::tls::TlsError),
    /// The state directory holds something that cannot be used.
    #[error("{}: {why}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The TCP port could not be bound.
    #[error("cannot listen on TCP {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The scenario could not be used.
    #[error(transparent)]
    Input(#[from] spinnbed_sim::input::InputError),
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
