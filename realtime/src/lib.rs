//! spinnbed-realtime: the real-time half of spinnbed, on tokio and real UDP sockets.
//!
//! The scheduling core, the emulator and the simulation's world and host side are the same
//! sans-IO code as in simulated runs (`spinnbed-sim`); what lives here only moves their
//! datagrams over sockets and their time along the wall clock.
//!
//! - [`clock`]: the wall clock as the sans-IO code's time (µs since a start).
//! - [`udp`]: one socket per (address, port) with receive tasks feeding one channel.
//! - [`driver`]: the UDP host driver (the core's host on one socket: bind, send, wait for a
//!   set of operations with a deadline) and the preflight every command starts with.
//! - [`error`]: [`RealtimeError`], the typed errors of every command.
//! - [`hardware`]: `sim run --hardware`, a simulated-run world in real time against real BMPs
//!   and boards (or `sim emulate`).
//! - [`emulate`]: `sim emulate`, the emulated machine served over UDP.
//! - [`load`]: `sim load`, an SCP load generator.
//! - [`serve`]: `sim serve`, the core as a live spalloc server (v1 protocol) with a journal.
#![forbid(unsafe_code)]

pub mod clock;
pub mod driver;
pub mod emulate;
pub mod error;
pub mod hardware;
pub mod load;
pub mod serve;
pub mod udp;

pub use error::RealtimeError;
