//! spinnbed-sim: the drivers around the sans-IO core and the `sim` command line.
//!
//! - [`input`]: reading machine descriptions, traces and scenarios with precise errors.
//! - [`replay`]: `sim replay`, a trace against the scheduling core alone.
#![forbid(unsafe_code)]

pub mod emulate;
pub mod engine;
pub mod hardware;
pub mod input;
pub mod loadgen;
pub mod netsim;
pub mod outputs;
pub mod packet;
pub mod realtime;
pub mod replay;
pub mod run;
pub mod scenario;
pub mod study;
pub mod tracegen;
pub mod udp;
pub mod workload;
pub mod world;
