//! One module per subcommand: each has its clap `Args` and a `run` that does the command.

pub mod check;
pub mod emulate;
pub mod gen_trace;
pub mod load;
pub mod replay;
pub mod report;
pub mod run;

/// A current-thread tokio runtime for the real-time commands.
pub fn runtime() -> Result<tokio::runtime::Runtime, crate::Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::Failure::other(anyhow::anyhow!("cannot start tokio: {e}")))
}
