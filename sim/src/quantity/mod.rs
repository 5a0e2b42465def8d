//! Quantities as scenarios write them: durations and byte sizes with units ([`units`]), and
//! random distributions of durations, byte sizes and counts ([`dist`]).
//!
//! A leaf module: workloads and scenarios both build on it.

pub mod dist;
pub mod units;

pub use dist::{ByteSize, Dist, Quantity};
