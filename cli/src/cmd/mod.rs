//! One module per subcommand: each has its clap `Args` and a `run` that does the command.

pub mod check;
pub mod emulate;
pub mod gen_trace;
pub mod load;
pub mod replay;
pub mod report;
pub mod run;
pub mod serve;
pub mod sweep;

/// A current-thread tokio runtime for the real-time commands.
pub fn runtime() -> Result<tokio::runtime::Runtime, crate::Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::Failure::other(anyhow::anyhow!("cannot start tokio: {e}")))
}

/// Most seconds a duration option (`--duration`, `--seconds`) may give.
const MAX_SECONDS: f64 = 1e9;

/// A duration option in seconds: finite, above zero and at most 1e9 s.
pub fn seconds_option(flag: &str, secs: f64) -> Result<std::time::Duration, crate::Failure> {
    if secs > 0.0
        && secs <= MAX_SECONDS
        && let Ok(d) = std::time::Duration::try_from_secs_f64(secs)
    {
        return Ok(d);
    }
    Err(crate::Failure::input(anyhow::anyhow!(
        "{flag} must be a number of seconds above 0 and at most 1e9 (got {secs})"
    )))
}
