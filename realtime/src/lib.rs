//! spinnbed-realtime: the real-time half of spinnbed, on tokio and real UDP sockets.
//!
//! The scheduling core, the emulator and the simulation's world and host side are the same
//! sans-IO code as in simulated runs (`spinnbed-sim`); what lives here only moves their
//! datagrams over sockets and their time along the wall clock.
//!
//! - [`udp`]: one socket per (address, port) with receive tasks feeding one channel.
//! - [`hardware`]: `sim run --hardware`, a simulated-run world in real time against real BMPs
//!   and boards (or `sim emulate`).
//! - [`emulate`]: `sim emulate`, the emulated machine served over UDP.
//! - [`load`]: `sim load`, an SCP load generator.
#![forbid(unsafe_code)]

pub mod emulate;
pub mod hardware;
pub mod load;
pub mod udp;
