//! spinnbed-core: the sans-IO heart of spinnbed.
//!
//! Nothing in this crate touches a socket, a clock or a global random number generator.
//! Time comes in as an argument ([`time::Instant`]); work goes out as values (datagrams to
//! send, timers to set, job events). The same code is driven by the discrete-event simulator
//! and by the real-time tokio drivers in `spinnbed-realtime`.
//!
//! Modules:
//! - [`time`]: integer instants and durations (microseconds).
//! - [`datagram`]: the UDP datagram every sans-IO part exchanges.
//! - [`geometry`]: SpiNNaker board/triad/chip coordinates, links, physical locations, IPs.
//! - [`proto`]: wire codecs (UDP framing, SDP, SCP, boot, EIEIO): zero-copy views and owned
//!   representations with `parse`/`emit`.

#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod alloc;
pub mod datagram;
pub mod geometry;
pub mod host;
pub mod proto;
pub mod reason;
pub mod sched;
pub mod service;
pub mod stats;
pub mod time;
pub mod timing;
