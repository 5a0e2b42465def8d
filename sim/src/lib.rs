//! spinnbed-sim: the deterministic half of spinnbed. Nothing here reads the wall clock, opens
//! a socket or waits (`clippy.toml` bans them; tokio is not a dependency): time is simulated,
//! randomness comes from seeded streams, and the same inputs give byte-identical outputs.
//!
//! Modules, leaves first (dependencies only point up this list):
//! - [`quantity`]: durations, byte sizes and distributions as scenarios write them.
//! - [`input`]: machine JSON and replay CSV readers with precise errors.
//! - [`engine`]: the event queue and the seeded random streams.
//! - [`workload`]: the jobs of a run (synthetic, SWF, trace) and synthetic traces.
//! - [`scenario`]: the TOML scenario language, resolved and validated.
//! - [`netsim`]: the simulated network.
//! - [`hardware`]: the seam between the service and the machine, and its implementations
//!   (fixed delays; the host side over a transport, e.g. the simulated network and emulator).
//! - [`world`]: users, service and hardware under the event queue.
//! - [`run`]: a resolved run, `simulate`, and its output files.
//! - [`study`]: the SCP windowing study; [`replay`]: `sim replay`.
//! - [`calibrate`]: what the simulator predicts for the real clients' transfers against
//!   `sim emulate --impair` (the calibration test).
#![forbid(unsafe_code)]

pub mod calibrate;
pub mod engine;
pub mod hardware;
pub mod input;
pub mod netsim;
pub mod quantity;
pub mod replay;
pub mod run;
pub mod scenario;
pub mod study;
pub mod workload;
pub mod world;
