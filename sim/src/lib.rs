//! spinnbed-sim: the drivers around the sans-IO core and the `sim` command line.
//!
//! - [`input`]: reading machine descriptions, traces and scenarios with precise errors.
//! - [`replay`]: `sim replay`, a trace against the scheduling core alone.
#![forbid(unsafe_code)]

pub mod input;
pub mod replay;
pub mod tracegen;
