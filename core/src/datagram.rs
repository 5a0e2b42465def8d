//! [`Datagram`]: one UDP datagram between two endpoints, the unit everything sans-IO exchanges.
//!
//! The host side (`host::Host`) emits and takes them, the emulated machine (`spinnbed-emulator`)
//! answers them, the simulated network (`spinnbed-sim`) delays, loses and reorders them, and a
//! real-time driver moves them over sockets.

use std::net::SocketAddrV4;

/// A UDP datagram: who sent it, to whom, and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Sender.
    pub src: SocketAddrV4,
    /// Receiver.
    pub dst: SocketAddrV4,
    /// UDP payload.
    pub payload: Vec<u8>,
}
