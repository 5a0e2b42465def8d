//! The new spalloc's websocket proxy, sans-IO: the frame codec and one session per websocket.
//!
//! spinnman's `SpallocClient` never talks to a job's boards directly: it opens one websocket
//! per job and multiplexes its SCP, boot and EIEIO datagrams over it in *channels*, each of
//! which the server backs with a UDP socket facing a board of the job (spalloc_rest.md §3).
//! This module is the part of that server that needs no sockets: [`Frame`], [`ClientFrame`]
//! and [`ServerFrame`] read and write the binary frames; [`ProxySession`] decides what a
//! frame, a datagram from a board or the end of the job does. A driver (the IO layer in
//! `realtime`) owns the websocket and the UDP sockets and moves bytes between them and the
//! session.
//!
//! # Frames
//!
//! Little-endian `u32` words, one frame per binary websocket message.
//!
//! | op | client → server | server → client |
//! |---|---|---|
//! | OPEN (0) | `0, corr, x, y, port` (20 B) | `0, corr, channel` (exactly 12 B) |
//! | CLOSE (1) | `1, corr, channel` (12 B) | `1, corr, channel-or-0` (exactly 12 B) |
//! | MSG (2) | `2, channel` + payload | `2, channel` + payload |
//! | OPEN_UNBOUND (3) | `3, corr` (8 B) | `3, corr, channel`, 4 address bytes `a.b.c.d`, `port` (exactly 20 B) |
//! | MSG_TO (4) | `4, channel, x, y, port` + payload | — |
//! | ERROR (5) | — | `5, corr` + UTF-8 text (at most [`MAX_ERROR_TEXT_LEN`] bytes) |
//!
//! A payload is one UDP datagram, at most [`MAX_PAYLOAD_LEN`] bytes, so no frame is longer
//! than [`MAX_FRAME_LEN`]: the driver should refuse longer websocket messages before
//! buffering them. [`Frame::new_checked`] checks a frame's length for its opcode and
//! direction; [`ClientFrame::parse`] and [`ServerFrame::parse`] then check the values (ports in
//! 1..=65535, UTF-8 text). Parsing never panics: every problem is a [`FrameError`], and an
//! unknown opcode is kept as [`Opcode::Unknown`].
//!
//! # The session's rules
//!
//! - **OPEN** to an `(x, y)` that is not one of the job's Ethernet chips: ERROR
//!   `"unrecognised ethernet chip"` (a channel never reaches a board of another job); a port
//!   outside 1..=65535: ERROR `"bad port number"` (the chip is checked first, as the Java
//!   server does). Otherwise a new channel and [`Output::OpenSocket`] for a socket connected
//!   to the board.
//! - **OPEN_UNBOUND**: a new channel and [`Output::OpenSocket`] for an unbound socket.
//! - **The socket handshake.** The reply to OPEN or OPEN_UNBOUND is held until the driver
//!   reports the socket with [`ProxySession::socket_opened`] (the OPEN_UNBOUND reply carries
//!   its port, after the session's `unbound_addr`) or [`ProxySession::socket_failed`] (then
//!   the reply is an ERROR). Every `OpenSocket` must get exactly one of the two: the client
//!   waits for its reply without a timeout.
//! - **Channel ids** are issued per session from 1 upwards, never 0 and never reused; at most
//!   [`ProxyLimits::max_channels`] are open (or opening) at once, beyond that OPEN and
//!   OPEN_UNBOUND get an ERROR.
//! - **CLOSE** closes the channel and echoes its id; a channel that is not open (never
//!   opened, closed already, or still waiting for its socket) is answered with 0, as the Java
//!   server does.
//! - **MSG** on a connected channel becomes [`Output::SendDatagram`] to its board.
//! - **MSG_TO** sends to `(x, y, port)` on an unbound channel. A chip outside the job, a bad
//!   port or a connected channel closes the websocket with 1007 (the Java server's answer).
//! - **A data frame that goes nowhere** — MSG or MSG_TO on a channel that is not open, MSG on
//!   an unbound channel — is refused with an ERROR frame whose correlation id is
//!   [`UNSOLICITED_CORR`]. The Java server drops these silently; issue #14 wants a refusal the
//!   client can see. spinnman's receiver hands every non-MSG frame to the call waiting on its
//!   correlation id and drops frames whose id no call waits on, so this frame wakes nothing
//!   and hangs nothing: ids count up from 0 per websocket, and `u32::MAX` is never reached
//!   (corr 0 would be the first call's id, which may still be waiting). It shows in a capture
//!   why a datagram vanished, and in [`ProxyStats::refusals`].
//! - **Datagrams from boards** go to the client as MSG on their channel: on a connected
//!   channel only from its board's address, on an unbound channel only from one of the job's
//!   board IPs; anything else is dropped and counted.
//! - **Bad frames** (truncated, over-long, a wrong length for the opcode, an unknown opcode, a
//!   server-only opcode) close the websocket with 1007 and every channel of this session; no
//!   other session is affected.
//! - **The end**: [`ProxySession::job_ended`] closes every channel and the websocket (1000,
//!   `"job ended"`); [`ProxySession::shutdown`] does the same with 1001; after
//!   [`ProxySession::websocket_closed`] only the channels are closed.
//!
//! Outputs are values, drained with [`ProxySession::poll_output`] after every input; the
//! order of `Send` outputs is the order in which frames must go to the client.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

/// Length of the header every frame starts with (opcode and one more word).
pub const HEADER_LEN: usize = 8;
/// Length of a client's OPEN.
pub const OPEN_LEN: usize = 20;
/// Length of a CLOSE, both ways.
pub const CLOSE_LEN: usize = 12;
/// Length of a client's OPEN_UNBOUND.
pub const OPEN_UNBOUND_LEN: usize = 8;
/// Length of a MSG_TO before its payload.
pub const MSG_TO_HEADER_LEN: usize = 20;
/// Length of the server's reply to OPEN (the client unpacks exactly this many bytes).
pub const OPEN_REPLY_LEN: usize = 12;
/// Length of the server's reply to OPEN_UNBOUND (the client unpacks exactly this many bytes).
pub const OPEN_UNBOUND_REPLY_LEN: usize = 20;
/// Largest payload of MSG and MSG_TO: the largest UDP payload over IPv4 (65535 − 20 − 8).
pub const MAX_PAYLOAD_LEN: usize = 65_507;
/// Longest frame either way (a MSG_TO with the largest payload).
pub const MAX_FRAME_LEN: usize = MSG_TO_HEADER_LEN + MAX_PAYLOAD_LEN;
/// Longest ERROR text in bytes (the Java server's limit); longer texts are cut on a character
/// boundary when emitted.
pub const MAX_ERROR_TEXT_LEN: usize = 1000;
/// Longest reason of a websocket close frame (125 bytes of control payload, 2 for the code).
pub const MAX_CLOSE_REASON_LEN: usize = 123;
/// The correlation id of an ERROR frame that answers no call (a refused MSG or MSG_TO).
pub const UNSOLICITED_CORR: u32 = u32::MAX;

/// Byte offsets of the fields (each a little-endian `u32` unless said otherwise).
mod field {
    /// The opcode, in every frame.
    pub const OPCODE: usize = 0;
    /// The correlation id of a call (OPEN, CLOSE, OPEN_UNBOUND), its reply, or ERROR.
    pub const CORR: usize = 4;
    /// The channel of MSG and MSG_TO.
    pub const CHANNEL: usize = 4;
    /// The channel of CLOSE (both ways) and of the OPEN and OPEN_UNBOUND replies.
    pub const CALL_CHANNEL: usize = 8;
    /// Chip x of a client's OPEN or MSG_TO.
    pub const X: usize = 8;
    /// Chip y of a client's OPEN or MSG_TO.
    pub const Y: usize = 12;
    /// UDP port of a client's OPEN or MSG_TO, or of the server's OPEN_UNBOUND reply.
    pub const PORT: usize = 16;
    /// The four address bytes (network order) of the OPEN_UNBOUND reply.
    pub const ADDRESS: core::ops::Range<usize> = 12..16;
    /// The payload of MSG, or the text of ERROR.
    pub const MSG_PAYLOAD: usize = 8;
    /// The payload of MSG_TO.
    pub const MSG_TO_PAYLOAD: usize = 20;
}

/// A frame's first word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Opcode {
    /// 0: open a channel to a board (and its reply).
    Open,
    /// 1: close a channel (and its reply).
    Close,
    /// 2: one datagram on a channel, either way.
    Msg,
    /// 3: open an unbound channel (and its reply).
    OpenUnbound,
    /// 4: one datagram to a given board on an unbound channel.
    MsgTo,
    /// 5: a call refused, with a text.
    Error,
    /// Any other value, kept.
    Unknown(u32),
}

impl From<u32> for Opcode {
    fn from(v: u32) -> Opcode {
        match v {
            0 => Opcode::Open,
            1 => Opcode::Close,
            2 => Opcode::Msg,
            3 => Opcode::OpenUnbound,
            4 => Opcode::MsgTo,
            5 => Opcode::Error,
            n => Opcode::Unknown(n),
        }
    }
}

impl From<Opcode> for u32 {
    fn from(op: Opcode) -> u32 {
        match op {
            Opcode::Open => 0,
            Opcode::Close => 1,
            Opcode::Msg => 2,
            Opcode::OpenUnbound => 3,
            Opcode::MsgTo => 4,
            Opcode::Error => 5,
            Opcode::Unknown(n) => n,
        }
    }
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Opcode::Open => f.write_str("OPEN"),
            Opcode::Close => f.write_str("CLOSE"),
            Opcode::Msg => f.write_str("MSG"),
            Opcode::OpenUnbound => f.write_str("OPEN_UNBOUND"),
            Opcode::MsgTo => f.write_str("MSG_TO"),
            Opcode::Error => f.write_str("ERROR"),
            Opcode::Unknown(n) => write!(f, "opcode {n}"),
        }
    }
}

/// Which way a frame travels: the layouts of OPEN and OPEN_UNBOUND differ, MSG_TO only goes to
/// the server and ERROR only to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Sent by the client (spinnman).
    ToServer,
    /// Sent by the server.
    ToClient,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::ToServer => "client",
            Direction::ToClient => "server",
        })
    }
}

/// What is wrong with a frame that could not be parsed or emitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than the header (8 bytes) or, for MSG_TO, than its 20-byte header.
    #[error("frame of {got} bytes: truncated, need at least {need}")]
    Truncated {
        /// Minimum length.
        need: usize,
        /// Length given.
        got: usize,
    },
    /// Longer than any frame can be ([`MAX_FRAME_LEN`]).
    #[error("frame of {got} bytes: longer than the {max}-byte limit")]
    TooLong {
        /// [`MAX_FRAME_LEN`].
        max: usize,
        /// Length given.
        got: usize,
    },
    /// A fixed-size frame of another length.
    #[error("{op} frame of {got} bytes: must be exactly {expected}")]
    BadLength {
        /// The frame's opcode.
        op: Opcode,
        /// The only length allowed.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// A payload over [`MAX_PAYLOAD_LEN`], or an ERROR text over [`MAX_ERROR_TEXT_LEN`].
    #[error("{op} frame: payload of {got} bytes, at most {max} allowed")]
    PayloadTooLong {
        /// The frame's opcode.
        op: Opcode,
        /// Largest payload allowed.
        max: usize,
        /// Payload length given.
        got: usize,
    },
    /// An opcode the protocol does not have.
    #[error("unknown opcode {0}")]
    UnknownOpcode(u32),
    /// An opcode the other side sends (MSG_TO to a client, ERROR to the server).
    #[error("{op} is never sent by the {from}")]
    WrongDirection {
        /// The opcode.
        op: Opcode,
        /// Who sent it.
        from: Direction,
    },
    /// A UDP port outside 1..=65535 (outside 0..=65535 in an OPEN_UNBOUND reply).
    #[error("{op} frame: bad port number {port}")]
    BadPort {
        /// The frame's opcode.
        op: Opcode,
        /// The port word.
        port: u32,
    },
    /// An ERROR text that is not UTF-8.
    #[error("ERROR frame: the text is not UTF-8")]
    BadText,
    /// The output buffer cannot hold the frame.
    #[error("output buffer of {got} bytes: the frame needs {need}")]
    BufferTooSmall {
        /// Length needed.
        need: usize,
        /// Length given.
        got: usize,
    },
}

/// Reads the little-endian word at `at`, or 0 if the buffer ends first.
fn get_u32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|w| <[u8; 4]>::try_from(w).ok())
        .map_or(0, u32::from_le_bytes)
}

/// Writes the little-endian word at `at` (nothing if the buffer ends first; callers check).
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    if let Some(w) = b.get_mut(at..at + 4) {
        w.copy_from_slice(&v.to_le_bytes());
    }
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A checked zero-copy view of one frame, in one direction.
///
/// After [`Frame::new_checked`] the frame's length fits its opcode and direction. Accessors
/// never panic: a field the frame's layout does not have (or a buffer too short, for a view
/// made with [`Frame::new_unchecked`]) reads as 0 or as an empty payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
    dir: Direction,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T, dir: Direction) -> Frame<T> {
        Frame { buffer, dir }
    }

    /// Wraps a buffer, checking its length for its opcode and direction.
    pub fn new_checked(buffer: T, dir: Direction) -> Result<Frame<T>, FrameError> {
        let frame = Frame::new_unchecked(buffer, dir);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks the length: at least the header, at most [`MAX_FRAME_LEN`], an opcode this
    /// direction has, exactly the length of a fixed-size frame, a payload within its limit.
    pub fn check_len(&self) -> Result<(), FrameError> {
        let got = self.buffer.as_ref().len();
        if got < HEADER_LEN {
            return Err(FrameError::Truncated { need: HEADER_LEN, got });
        }
        if got > MAX_FRAME_LEN {
            return Err(FrameError::TooLong {
                max: MAX_FRAME_LEN,
                got,
            });
        }
        let op = self.opcode();
        let exactly = |expected: usize| {
            if got == expected {
                Ok(())
            } else {
                Err(FrameError::BadLength { op, expected, got })
            }
        };
        let payload = |start: usize, max: usize| {
            if got < start {
                Err(FrameError::Truncated { need: start, got })
            } else if got - start > max {
                Err(FrameError::PayloadTooLong {
                    op,
                    max,
                    got: got - start,
                })
            } else {
                Ok(())
            }
        };
        match (self.dir, op) {
            (_, Opcode::Unknown(n)) => Err(FrameError::UnknownOpcode(n)),
            (Direction::ToServer, Opcode::Error) | (Direction::ToClient, Opcode::MsgTo) => {
                Err(FrameError::WrongDirection { op, from: self.dir })
            }
            (Direction::ToServer, Opcode::Open) => exactly(OPEN_LEN),
            (Direction::ToServer, Opcode::OpenUnbound) => exactly(OPEN_UNBOUND_LEN),
            (Direction::ToClient, Opcode::Open) => exactly(OPEN_REPLY_LEN),
            (Direction::ToClient, Opcode::OpenUnbound) => exactly(OPEN_UNBOUND_REPLY_LEN),
            (_, Opcode::Close) => exactly(CLOSE_LEN),
            (_, Opcode::Msg) => payload(field::MSG_PAYLOAD, MAX_PAYLOAD_LEN),
            (Direction::ToServer, Opcode::MsgTo) => payload(field::MSG_TO_PAYLOAD, MAX_PAYLOAD_LEN),
            (Direction::ToClient, Opcode::Error) => payload(field::MSG_PAYLOAD, MAX_ERROR_TEXT_LEN),
        }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The direction the frame was read for.
    pub fn direction(&self) -> Direction {
        self.dir
    }

    /// The opcode (the first word).
    pub fn opcode(&self) -> Opcode {
        Opcode::from(get_u32(self.buffer.as_ref(), field::OPCODE))
    }

    /// The correlation id of a call, a call's reply or an ERROR; 0 for MSG and MSG_TO.
    pub fn corr(&self) -> u32 {
        match self.opcode() {
            Opcode::Open | Opcode::Close | Opcode::OpenUnbound | Opcode::Error => {
                get_u32(self.buffer.as_ref(), field::CORR)
            }
            _ => 0,
        }
    }

    /// The channel of MSG, MSG_TO, CLOSE and the OPEN and OPEN_UNBOUND replies; 0 otherwise.
    pub fn channel(&self) -> u32 {
        let b = self.buffer.as_ref();
        match (self.dir, self.opcode()) {
            (_, Opcode::Msg | Opcode::MsgTo) => get_u32(b, field::CHANNEL),
            (_, Opcode::Close) | (Direction::ToClient, Opcode::Open | Opcode::OpenUnbound) => {
                get_u32(b, field::CALL_CHANNEL)
            }
            _ => 0,
        }
    }

    /// Whether this frame has chip coordinates and a board port (a client's OPEN or MSG_TO).
    fn has_target(&self) -> bool {
        self.dir == Direction::ToServer && matches!(self.opcode(), Opcode::Open | Opcode::MsgTo)
    }

    /// Chip x of a client's OPEN or MSG_TO; 0 otherwise.
    pub fn x(&self) -> u32 {
        if self.has_target() {
            get_u32(self.buffer.as_ref(), field::X)
        } else {
            0
        }
    }

    /// Chip y of a client's OPEN or MSG_TO; 0 otherwise.
    pub fn y(&self) -> u32 {
        if self.has_target() {
            get_u32(self.buffer.as_ref(), field::Y)
        } else {
            0
        }
    }

    /// The port word of a client's OPEN or MSG_TO (the board's port) or of the OPEN_UNBOUND
    /// reply (the server's port), unchecked; 0 otherwise.
    pub fn port(&self) -> u32 {
        let unbound_reply = self.dir == Direction::ToClient && self.opcode() == Opcode::OpenUnbound;
        if self.has_target() || unbound_reply {
            get_u32(self.buffer.as_ref(), field::PORT)
        } else {
            0
        }
    }

    /// The IPv4 address of the OPEN_UNBOUND reply; `0.0.0.0` otherwise.
    pub fn address(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        match (self.dir, self.opcode(), b.get(field::ADDRESS)) {
            (Direction::ToClient, Opcode::OpenUnbound, Some(&[a, b, c, d])) => Ipv4Addr::new(a, b, c, d),
            _ => Ipv4Addr::UNSPECIFIED,
        }
    }

    /// Where the payload starts, for frames that have one.
    fn payload_start(&self) -> Option<usize> {
        match (self.dir, self.opcode()) {
            (_, Opcode::Msg) | (Direction::ToClient, Opcode::Error) => Some(field::MSG_PAYLOAD),
            (Direction::ToServer, Opcode::MsgTo) => Some(field::MSG_TO_PAYLOAD),
            _ => None,
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Frame<&'a T> {
    /// The datagram of MSG or MSG_TO, or the text bytes of ERROR; empty otherwise.
    pub fn payload(&self) -> &'a [u8] {
        let b: &'a [u8] = self.buffer.as_ref();
        self.payload_start().and_then(|at| b.get(at..)).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Frame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A port word as a UDP port in 1..=65535.
fn board_port(op: Opcode, port: u32) -> Result<u16, FrameError> {
    match u16::try_from(port) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(FrameError::BadPort { op, port }),
    }
}

/// Copies `bytes` into the front of `buf`, or says how much room it needed.
fn copy_out(bytes: &[u8], buf: &mut [u8]) -> Result<usize, FrameError> {
    let got = buf.len();
    let out = buf
        .get_mut(..bytes.len())
        .ok_or(FrameError::BufferTooSmall { need: bytes.len(), got })?;
    out.copy_from_slice(bytes);
    Ok(bytes.len())
}

/// A frame the client sends, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFrame<'a> {
    /// Open a channel to a board's port.
    Open {
        /// Correlation id.
        corr: u32,
        /// Job-relative Ethernet chip x.
        x: u32,
        /// Job-relative Ethernet chip y.
        y: u32,
        /// UDP port on the board (17893 SCP, 54321 boot); never 0.
        port: u16,
    },
    /// Close a channel.
    Close {
        /// Correlation id.
        corr: u32,
        /// The channel.
        channel: u32,
    },
    /// One datagram for a connected channel's board.
    Msg {
        /// The channel.
        channel: u32,
        /// The UDP payload.
        payload: &'a [u8],
    },
    /// Open an unbound channel.
    OpenUnbound {
        /// Correlation id.
        corr: u32,
    },
    /// One datagram to a board on an unbound channel.
    MsgTo {
        /// The channel.
        channel: u32,
        /// Job-relative Ethernet chip x.
        x: u32,
        /// Job-relative Ethernet chip y.
        y: u32,
        /// UDP port on the board; never 0.
        port: u16,
        /// The UDP payload.
        payload: &'a [u8],
    },
}

impl<'a> ClientFrame<'a> {
    /// Parses a frame the client sent (checking its length first).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &Frame<&'a T>) -> Result<ClientFrame<'a>, FrameError> {
        let frame = Frame::new_checked(frame.buffer, Direction::ToServer)?;
        Ok(match frame.opcode() {
            Opcode::Open => ClientFrame::Open {
                corr: frame.corr(),
                x: frame.x(),
                y: frame.y(),
                port: board_port(Opcode::Open, frame.port())?,
            },
            Opcode::Close => ClientFrame::Close {
                corr: frame.corr(),
                channel: frame.channel(),
            },
            Opcode::Msg => ClientFrame::Msg {
                channel: frame.channel(),
                payload: frame.payload(),
            },
            Opcode::OpenUnbound => ClientFrame::OpenUnbound { corr: frame.corr() },
            Opcode::MsgTo => ClientFrame::MsgTo {
                channel: frame.channel(),
                x: frame.x(),
                y: frame.y(),
                port: board_port(Opcode::MsgTo, frame.port())?,
                payload: frame.payload(),
            },
            // `check_len` refuses these already.
            Opcode::Error => {
                return Err(FrameError::WrongDirection {
                    op: Opcode::Error,
                    from: Direction::ToServer,
                });
            }
            Opcode::Unknown(n) => return Err(FrameError::UnknownOpcode(n)),
        })
    }

    /// Parses bytes as a frame the client sent.
    pub fn parse_bytes(bytes: &'a [u8]) -> Result<ClientFrame<'a>, FrameError> {
        ClientFrame::parse(&Frame::new_unchecked(bytes, Direction::ToServer))
    }

    /// The frame's opcode.
    pub fn opcode(&self) -> Opcode {
        match self {
            ClientFrame::Open { .. } => Opcode::Open,
            ClientFrame::Close { .. } => Opcode::Close,
            ClientFrame::Msg { .. } => Opcode::Msg,
            ClientFrame::OpenUnbound { .. } => Opcode::OpenUnbound,
            ClientFrame::MsgTo { .. } => Opcode::MsgTo,
        }
    }

    /// Bytes the frame occupies.
    pub fn buffer_len(&self) -> usize {
        match self {
            ClientFrame::Open { .. } => OPEN_LEN,
            ClientFrame::Close { .. } => CLOSE_LEN,
            ClientFrame::Msg { payload, .. } => field::MSG_PAYLOAD + payload.len(),
            ClientFrame::OpenUnbound { .. } => OPEN_UNBOUND_LEN,
            ClientFrame::MsgTo { payload, .. } => field::MSG_TO_PAYLOAD + payload.len(),
        }
    }

    /// Writes the frame into the front of `buf`; returns its length.
    ///
    /// Fails on a port of 0, a payload over [`MAX_PAYLOAD_LEN`] or a buffer too small.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, FrameError> {
        let op = self.opcode();
        match *self {
            ClientFrame::Open { port: 0, .. } | ClientFrame::MsgTo { port: 0, .. } => {
                return Err(FrameError::BadPort { op, port: 0 });
            }
            ClientFrame::Msg { payload, .. } | ClientFrame::MsgTo { payload, .. }
                if payload.len() > MAX_PAYLOAD_LEN =>
            {
                return Err(FrameError::PayloadTooLong {
                    op,
                    max: MAX_PAYLOAD_LEN,
                    got: payload.len(),
                });
            }
            _ => {}
        }
        let len = self.buffer_len();
        let got = buf.len();
        let out = buf
            .get_mut(..len)
            .ok_or(FrameError::BufferTooSmall { need: len, got })?;
        put_u32(out, field::OPCODE, op.into());
        match *self {
            ClientFrame::Open { corr, x, y, port } => {
                put_u32(out, field::CORR, corr);
                put_u32(out, field::X, x);
                put_u32(out, field::Y, y);
                put_u32(out, field::PORT, port.into());
            }
            ClientFrame::Close { corr, channel } => {
                put_u32(out, field::CORR, corr);
                put_u32(out, field::CALL_CHANNEL, channel);
            }
            ClientFrame::Msg { channel, payload } => {
                put_u32(out, field::CHANNEL, channel);
                copy_out(payload, &mut out[field::MSG_PAYLOAD..])?;
            }
            ClientFrame::OpenUnbound { corr } => put_u32(out, field::CORR, corr),
            ClientFrame::MsgTo {
                channel,
                x,
                y,
                port,
                payload,
            } => {
                put_u32(out, field::CHANNEL, channel);
                put_u32(out, field::X, x);
                put_u32(out, field::Y, y);
                put_u32(out, field::PORT, port.into());
                copy_out(payload, &mut out[field::MSG_TO_PAYLOAD..])?;
            }
        }
        Ok(len)
    }

    /// Appends the frame to `out`.
    pub fn emit_vec(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let start = out.len();
        out.resize(start + self.buffer_len(), 0);
        let result = self.emit(&mut out[start..]).map(|_| ());
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// The frame as a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(self.buffer_len());
        self.emit_vec(&mut out)?;
        Ok(out)
    }
}

/// A frame the server sends, parsed: a call's reply, a datagram from a board, or an ERROR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerFrame<'a> {
    /// OPEN's reply.
    Open {
        /// The call's correlation id.
        corr: u32,
        /// The new channel.
        channel: u32,
    },
    /// CLOSE's reply.
    Close {
        /// The call's correlation id.
        corr: u32,
        /// The channel closed, or 0 if it was not open.
        channel: u32,
    },
    /// One datagram a board sent to a channel's socket.
    Msg {
        /// The channel.
        channel: u32,
        /// The UDP payload.
        payload: &'a [u8],
    },
    /// OPEN_UNBOUND's reply.
    OpenUnbound {
        /// The call's correlation id.
        corr: u32,
        /// The new channel.
        channel: u32,
        /// The server's address that the job's boards can send to (port 0 is allowed: the
        /// client discards the address).
        addr: SocketAddrV4,
    },
    /// A call refused (or, with [`UNSOLICITED_CORR`], a data frame refused).
    Error {
        /// The call's correlation id.
        corr: u32,
        /// Why, in words; cut to [`MAX_ERROR_TEXT_LEN`] bytes when emitted.
        text: &'a str,
    },
}

impl<'a> ServerFrame<'a> {
    /// Parses a frame the server sent (checking its length first).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &Frame<&'a T>) -> Result<ServerFrame<'a>, FrameError> {
        let frame = Frame::new_checked(frame.buffer, Direction::ToClient)?;
        Ok(match frame.opcode() {
            Opcode::Open => ServerFrame::Open {
                corr: frame.corr(),
                channel: frame.channel(),
            },
            Opcode::Close => ServerFrame::Close {
                corr: frame.corr(),
                channel: frame.channel(),
            },
            Opcode::Msg => ServerFrame::Msg {
                channel: frame.channel(),
                payload: frame.payload(),
            },
            Opcode::OpenUnbound => {
                let port = u16::try_from(frame.port()).map_err(|_| FrameError::BadPort {
                    op: Opcode::OpenUnbound,
                    port: frame.port(),
                })?;
                ServerFrame::OpenUnbound {
                    corr: frame.corr(),
                    channel: frame.channel(),
                    addr: SocketAddrV4::new(frame.address(), port),
                }
            }
            Opcode::Error => ServerFrame::Error {
                corr: frame.corr(),
                text: core::str::from_utf8(frame.payload()).map_err(|_| FrameError::BadText)?,
            },
            Opcode::MsgTo => {
                return Err(FrameError::WrongDirection {
                    op: Opcode::MsgTo,
                    from: Direction::ToClient,
                });
            }
            Opcode::Unknown(n) => return Err(FrameError::UnknownOpcode(n)),
        })
    }

    /// Parses bytes as a frame the server sent.
    pub fn parse_bytes(bytes: &'a [u8]) -> Result<ServerFrame<'a>, FrameError> {
        ServerFrame::parse(&Frame::new_unchecked(bytes, Direction::ToClient))
    }

    /// The frame's opcode.
    pub fn opcode(&self) -> Opcode {
        match self {
            ServerFrame::Open { .. } => Opcode::Open,
            ServerFrame::Close { .. } => Opcode::Close,
            ServerFrame::Msg { .. } => Opcode::Msg,
            ServerFrame::OpenUnbound { .. } => Opcode::OpenUnbound,
            ServerFrame::Error { .. } => Opcode::Error,
        }
    }

    /// Bytes the frame occupies (an ERROR text counted as cut to [`MAX_ERROR_TEXT_LEN`]).
    pub fn buffer_len(&self) -> usize {
        match self {
            ServerFrame::Open { .. } => OPEN_REPLY_LEN,
            ServerFrame::Close { .. } => CLOSE_LEN,
            ServerFrame::Msg { payload, .. } => field::MSG_PAYLOAD + payload.len(),
            ServerFrame::OpenUnbound { .. } => OPEN_UNBOUND_REPLY_LEN,
            ServerFrame::Error { text, .. } => field::MSG_PAYLOAD + truncate_str(text, MAX_ERROR_TEXT_LEN).len(),
        }
    }

    /// Writes the frame into the front of `buf`; returns its length.
    ///
    /// An ERROR text over [`MAX_ERROR_TEXT_LEN`] bytes is cut on a character boundary. Fails
    /// on a payload over [`MAX_PAYLOAD_LEN`] or a buffer too small.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, FrameError> {
        let op = self.opcode();
        if let ServerFrame::Msg { payload, .. } = self
            && payload.len() > MAX_PAYLOAD_LEN
        {
            return Err(FrameError::PayloadTooLong {
                op,
                max: MAX_PAYLOAD_LEN,
                got: payload.len(),
            });
        }
        let len = self.buffer_len();
        let got = buf.len();
        let out = buf
            .get_mut(..len)
            .ok_or(FrameError::BufferTooSmall { need: len, got })?;
        put_u32(out, field::OPCODE, op.into());
        match *self {
            ServerFrame::Open { corr, channel } | ServerFrame::Close { corr, channel } => {
                put_u32(out, field::CORR, corr);
                put_u32(out, field::CALL_CHANNEL, channel);
            }
            ServerFrame::Msg { channel, payload } => {
                put_u32(out, field::CHANNEL, channel);
                copy_out(payload, &mut out[field::MSG_PAYLOAD..])?;
            }
            ServerFrame::OpenUnbound { corr, channel, addr } => {
                put_u32(out, field::CORR, corr);
                put_u32(out, field::CALL_CHANNEL, channel);
                out[field::ADDRESS].copy_from_slice(&addr.ip().octets());
                put_u32(out, field::PORT, addr.port().into());
            }
            ServerFrame::Error { corr, text } => {
                put_u32(out, field::CORR, corr);
                copy_out(
                    truncate_str(text, MAX_ERROR_TEXT_LEN).as_bytes(),
                    &mut out[field::MSG_PAYLOAD..],
                )?;
            }
        }
        Ok(len)
    }

    /// Appends the frame to `out`.
    pub fn emit_vec(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let start = out.len();
        out.resize(start + self.buffer_len(), 0);
        let result = self.emit(&mut out[start..]).map(|_| ());
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// The frame as a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(self.buffer_len());
        self.emit_vec(&mut out)?;
        Ok(out)
    }
}

// ------------------------------------------------------------------------------------------
// The session.

/// A channel of one session (never 0 when the session issued it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelId(pub u32);

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A websocket close status the session asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CloseCode {
    /// 1000: the job ended.
    Normal,
    /// 1001: the server is going away.
    GoingAway,
    /// 1007: the client sent bad data (Spring's `BAD_DATA`, what the Java server sends).
    BadData,
}

impl CloseCode {
    /// The status code on the wire.
    pub const fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::GoingAway => 1001,
            CloseCode::BadData => 1007,
        }
    }
}

/// What the session wants done, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this binary frame to the client.
    Send(Vec<u8>),
    /// Create the UDP socket of a new channel: connected to `remote` (OPEN), or, with `None`,
    /// bound to the session's `unbound_addr` on an ephemeral port (OPEN_UNBOUND). Then call
    /// [`ProxySession::socket_opened`] or [`ProxySession::socket_failed`]: the client waits for
    /// the reply those produce.
    OpenSocket {
        /// The channel.
        channel: ChannelId,
        /// The board the socket talks to, or `None` for an unbound socket.
        remote: Option<SocketAddrV4>,
    },
    /// Send one datagram on a channel's socket (to its board, or for MSG_TO to `to`).
    SendDatagram {
        /// The channel.
        channel: ChannelId,
        /// Where to: always one of the job's boards.
        to: SocketAddrV4,
        /// The UDP payload.
        payload: Vec<u8>,
    },
    /// Close a channel's socket (a no-op for a channel without one).
    CloseSocket {
        /// The channel.
        channel: ChannelId,
    },
    /// Close the websocket; the session takes no more input. Always the last output.
    CloseWebsocket {
        /// The status.
        code: CloseCode,
        /// Why, at most [`MAX_CLOSE_REASON_LEN`] bytes.
        reason: String,
    },
}

/// Why a frame closed the websocket, or why it was not handled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The frame is malformed (1007).
    #[error("bad frame: {0}")]
    BadFrame(#[from] FrameError),
    /// MSG_TO to a chip that is not one of the job's Ethernet chips (1007).
    #[error("MSG_TO to ({x}, {y}): not an ethernet chip of this job")]
    NotAJobBoard {
        /// Chip x.
        x: u32,
        /// Chip y.
        y: u32,
    },
    /// MSG_TO on a connected channel (1007).
    #[error("MSG_TO on channel {0}, which is connected")]
    ChannelConnected(ChannelId),
    /// The session is closed; the input was ignored.
    #[error("the proxy session is closed")]
    Closed,
}

/// What became of a datagram from a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Sent to the client as MSG.
    Forwarded,
    /// Dropped: the channel is not open.
    UnknownChannel,
    /// Dropped: not from the channel's board, or (unbound channel) not from a board of the job.
    WrongSource,
    /// Dropped: longer than [`MAX_PAYLOAD_LEN`].
    TooLong,
    /// Dropped: the session is closed.
    Closed,
}

/// Limits of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyLimits {
    /// Channels open or opening at once; OPEN and OPEN_UNBOUND beyond it get an ERROR.
    pub max_channels: usize,
}

impl Default for ProxyLimits {
    fn default() -> ProxyLimits {
        ProxyLimits { max_channels: 1024 }
    }
}

/// Counters of one session (add them up with `+=` for a server's totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Websocket frames handled.
    pub frames_in: u64,
    /// Websocket frames sent.
    pub frames_out: u64,
    /// Datagrams sent to boards (MSG, MSG_TO).
    pub datagrams_to_boards: u64,
    /// Their payload bytes.
    pub bytes_to_boards: u64,
    /// Datagrams from boards forwarded to the client.
    pub datagrams_from_boards: u64,
    /// Their payload bytes.
    pub bytes_from_boards: u64,
    /// Datagrams from boards dropped (see [`Delivery`]).
    pub datagrams_dropped: u64,
    /// ERROR frames sent (refused calls and data frames).
    pub refusals: u64,
    /// Websockets closed for bad data (0 or 1 per session).
    pub violations: u64,
    /// Channels opened (socket reported).
    pub channels_opened: u64,
    /// Channels closed (by CLOSE, a failed socket or the end of the session).
    pub channels_closed: u64,
}

impl core::ops::AddAssign for ProxyStats {
    fn add_assign(&mut self, o: ProxyStats) {
        self.frames_in += o.frames_in;
        self.frames_out += o.frames_out;
        self.datagrams_to_boards += o.datagrams_to_boards;
        self.bytes_to_boards += o.bytes_to_boards;
        self.datagrams_from_boards += o.datagrams_from_boards;
        self.bytes_from_boards += o.bytes_from_boards;
        self.datagrams_dropped += o.datagrams_dropped;
        self.refusals += o.refusals;
        self.violations += o.violations;
        self.channels_opened += o.channels_opened;
        self.channels_closed += o.channels_closed;
    }
}

/// One channel's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Channel {
    /// The board of a connected channel; `None` for an unbound one.
    remote: Option<SocketAddrV4>,
    /// While waiting for the driver's socket: the correlation id of the call to answer.
    opening: Option<u32>,
}

/// The proxy of one websocket: the job's boards, its channels, the outputs waiting.
#[derive(Debug, Clone)]
pub struct ProxySession {
    boards: BTreeMap<(u32, u32), Ipv4Addr>,
    board_ips: BTreeSet<Ipv4Addr>,
    unbound_addr: Ipv4Addr,
    limits: ProxyLimits,
    channels: BTreeMap<ChannelId, Channel>,
    /// The next channel id to issue; `None` once every id has been used.
    next_channel: Option<u32>,
    out: VecDeque<Output>,
    closed: bool,
    stats: ProxyStats,
}

impl ProxySession {
    /// A session for a job whose Ethernet chips (job-relative `(x, y)`) have these IPs;
    /// unbound channels are reported at `unbound_addr` (the server's board-facing address).
    pub fn new(boards: BTreeMap<(u32, u32), Ipv4Addr>, unbound_addr: Ipv4Addr) -> ProxySession {
        ProxySession::with_limits(boards, unbound_addr, ProxyLimits::default())
    }

    /// [`ProxySession::new`] with other limits.
    pub fn with_limits(
        boards: BTreeMap<(u32, u32), Ipv4Addr>,
        unbound_addr: Ipv4Addr,
        limits: ProxyLimits,
    ) -> ProxySession {
        let board_ips = boards.values().copied().collect();
        ProxySession {
            boards,
            board_ips,
            unbound_addr,
            limits,
            channels: BTreeMap::new(),
            next_channel: Some(1),
            out: VecDeque::new(),
            closed: false,
            stats: ProxyStats::default(),
        }
    }

    /// The next output, if any; drain after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The counters.
    pub fn stats(&self) -> ProxyStats {
        self.stats
    }

    /// True once the session has closed (it takes no more input).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Channels open or waiting for their socket.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Handles one binary frame from the client.
    ///
    /// `Err` means the frame closed the websocket (the outputs end with
    /// [`Output::CloseWebsocket`]) or the session was already closed
    /// ([`ProxyError::Closed`], nothing done). Refused calls are `Ok`: their ERROR is an output.
    pub fn handle_frame(&mut self, bytes: &[u8]) -> Result<(), ProxyError> {
        if self.closed {
            return Err(ProxyError::Closed);
        }
        self.stats.frames_in += 1;
        let frame = match ClientFrame::parse_bytes(bytes) {
            Ok(frame) => frame,
            Err(FrameError::BadPort { op: Opcode::Open, .. }) => {
                // A refusal, not a violation; the Java server checks the chip first.
                let view = Frame::new_unchecked(bytes, Direction::ToServer);
                let text = if self.boards.contains_key(&(view.x(), view.y())) {
                    "bad port number"
                } else {
                    "unrecognised ethernet chip"
                };
                self.refuse(view.corr(), text);
                return Ok(());
            }
            Err(FrameError::BadPort { op: Opcode::MsgTo, .. }) => {
                let view = Frame::new_unchecked(bytes, Direction::ToServer);
                if !self.boards.contains_key(&(view.x(), view.y())) {
                    return self.violation(ProxyError::NotAJobBoard {
                        x: view.x(),
                        y: view.y(),
                    });
                }
                return self.violation(ProxyError::BadFrame(FrameError::BadPort {
                    op: Opcode::MsgTo,
                    port: view.port(),
                }));
            }
            Err(e) => return self.violation(ProxyError::BadFrame(e)),
        };
        match frame {
            ClientFrame::Open { corr, x, y, port } => match self.boards.get(&(x, y)) {
                Some(&ip) => self.open_channel(corr, Some(SocketAddrV4::new(ip, port))),
                None => self.refuse(corr, "unrecognised ethernet chip"),
            },
            ClientFrame::OpenUnbound { corr } => self.open_channel(corr, None),
            ClientFrame::Close { corr, channel } => {
                let id = ChannelId(channel);
                let closed = match self.channels.get(&id) {
                    Some(ch) if ch.opening.is_none() => {
                        self.close_channel(id);
                        channel
                    }
                    _ => 0,
                };
                self.send(ServerFrame::Close { corr, channel: closed });
            }
            ClientFrame::Msg { channel, payload } => {
                let id = ChannelId(channel);
                match self.channels.get(&id) {
                    Some(Channel {
                        remote: Some(to),
                        opening: None,
                    }) => {
                        let to = *to;
                        self.send_datagram(id, to, payload);
                    }
                    Some(Channel {
                        remote: None,
                        opening: None,
                    }) => self.refuse(
                        UNSOLICITED_CORR,
                        &format!("MSG on channel {id}, which is unbound: use MSG_TO"),
                    ),
                    _ => self.refuse(UNSOLICITED_CORR, &format!("MSG on channel {id}, which is not open")),
                }
            }
            ClientFrame::MsgTo {
                channel,
                x,
                y,
                port,
                payload,
            } => {
                // The Java server's order: the chip, the port (parsed), then the channel.
                let Some(&ip) = self.boards.get(&(x, y)) else {
                    return self.violation(ProxyError::NotAJobBoard { x, y });
                };
                let id = ChannelId(channel);
                match self.channels.get(&id) {
                    Some(Channel {
                        remote: None,
                        opening: None,
                    }) => self.send_datagram(id, SocketAddrV4::new(ip, port), payload),
                    Some(Channel {
                        remote: Some(_),
                        opening: None,
                    }) => return self.violation(ProxyError::ChannelConnected(id)),
                    _ => self.refuse(UNSOLICITED_CORR, &format!("MSG_TO on channel {id}, which is not open")),
                }
            }
        }
        Ok(())
    }

    /// The driver created the socket of `channel` (after [`Output::OpenSocket`]); `local` is
    /// its address (for an unbound channel, its port goes into the reply after the session's
    /// `unbound_addr`). A socket the session no longer wants is sent back as
    /// [`Output::CloseSocket`].
    pub fn socket_opened(&mut self, channel: ChannelId, local: SocketAddrV4) {
        let Some(ch) = self.channels.get_mut(&channel).filter(|_| !self.closed) else {
            self.out.push_back(Output::CloseSocket { channel });
            return;
        };
        let Some(corr) = ch.opening.take() else {
            return; // reported twice: the first report stands
        };
        self.stats.channels_opened += 1;
        match ch.remote {
            Some(_) => self.send(ServerFrame::Open {
                corr,
                channel: channel.0,
            }),
            None => {
                let addr = SocketAddrV4::new(self.unbound_addr, local.port());
                self.send(ServerFrame::OpenUnbound {
                    corr,
                    channel: channel.0,
                    addr,
                });
            }
        }
    }

    /// The driver could not create the socket of `channel`, or the socket failed for good.
    /// A channel still opening is refused with an ERROR to its call; an open channel is
    /// closed ([`Output::CloseSocket`]); later MSGs on it are refused.
    pub fn socket_failed(&mut self, channel: ChannelId, why: &str) {
        let Some(ch) = self.channels.get(&channel).copied().filter(|_| !self.closed) else {
            return;
        };
        match ch.opening {
            Some(corr) => {
                self.channels.remove(&channel);
                self.refuse(corr, &format!("cannot open a socket: {why}"));
            }
            None => self.close_channel(channel),
        }
    }

    /// A datagram arrived on `channel`'s socket from `from`.
    pub fn handle_datagram(&mut self, channel: ChannelId, from: SocketAddrV4, payload: &[u8]) -> Delivery {
        let delivery = self.delivery(channel, from, payload);
        if delivery == Delivery::Forwarded {
            self.stats.datagrams_from_boards += 1;
            self.stats.bytes_from_boards += payload.len() as u64;
            self.send(ServerFrame::Msg {
                channel: channel.0,
                payload,
            });
        } else {
            self.stats.datagrams_dropped += 1;
        }
        delivery
    }

    fn delivery(&self, channel: ChannelId, from: SocketAddrV4, payload: &[u8]) -> Delivery {
        if self.closed {
            return Delivery::Closed;
        }
        if payload.len() > MAX_PAYLOAD_LEN {
            return Delivery::TooLong;
        }
        match self.channels.get(&channel) {
            Some(Channel {
                remote: Some(remote),
                opening: None,
            }) if *remote == from => Delivery::Forwarded,
            Some(Channel {
                remote: None,
                opening: None,
            }) if self.board_ips.contains(from.ip()) => Delivery::Forwarded,
            Some(Channel { opening: None, .. }) => Delivery::WrongSource,
            _ => Delivery::UnknownChannel,
        }
    }

    /// The job ended (destroyed, or its boards taken away): every channel and the websocket
    /// close (1000, `"job ended"`).
    pub fn job_ended(&mut self) {
        self.finish(Some((CloseCode::Normal, "job ended".to_owned())));
    }

    /// The server is stopping: every channel and the websocket close (1001).
    pub fn shutdown(&mut self) {
        self.finish(Some((CloseCode::GoingAway, "server shutting down".to_owned())));
    }

    /// The websocket closed (the client went, or it failed): every channel closes.
    pub fn websocket_closed(&mut self) {
        self.finish(None);
    }

    fn finish(&mut self, close: Option<(CloseCode, String)>) {
        if self.closed {
            return;
        }
        let ids: Vec<ChannelId> = self.channels.keys().copied().collect();
        for id in ids {
            self.close_channel(id);
        }
        if let Some((code, reason)) = close {
            let reason = truncate_str(&reason, MAX_CLOSE_REASON_LEN).to_owned();
            self.out.push_back(Output::CloseWebsocket { code, reason });
        }
        self.closed = true;
    }

    fn violation(&mut self, e: ProxyError) -> Result<(), ProxyError> {
        self.stats.violations += 1;
        self.finish(Some((CloseCode::BadData, format!("bad data: {e}"))));
        Err(e)
    }

    fn open_channel(&mut self, corr: u32, remote: Option<SocketAddrV4>) {
        if self.channels.len() >= self.limits.max_channels {
            let text = format!(
                "too many channels: at most {} on one websocket",
                self.limits.max_channels
            );
            return self.refuse(corr, &text);
        }
        let Some(n) = self.next_channel else {
            return self.refuse(corr, "no channel ids left on this websocket");
        };
        self.next_channel = n.checked_add(1);
        let channel = ChannelId(n);
        self.channels.insert(
            channel,
            Channel {
                remote,
                opening: Some(corr),
            },
        );
        self.out.push_back(Output::OpenSocket { channel, remote });
    }

    fn close_channel(&mut self, channel: ChannelId) {
        if let Some(ch) = self.channels.remove(&channel) {
            if ch.opening.is_none() {
                self.stats.channels_closed += 1;
            }
            self.out.push_back(Output::CloseSocket { channel });
        }
    }

    fn send_datagram(&mut self, channel: ChannelId, to: SocketAddrV4, payload: &[u8]) {
        debug_assert!(
            self.board_ips.contains(to.ip()),
            "a datagram to a board outside the job"
        );
        self.stats.datagrams_to_boards += 1;
        self.stats.bytes_to_boards += payload.len() as u64;
        self.out.push_back(Output::SendDatagram {
            channel,
            to,
            payload: payload.to_vec(),
        });
    }

    fn refuse(&mut self, corr: u32, text: &str) {
        self.stats.refusals += 1;
        self.send(ServerFrame::Error { corr, text });
    }

    fn send(&mut self, frame: ServerFrame<'_>) {
        // Every frame the session builds is valid: payloads are checked on the way in.
        let bytes = frame.to_vec();
        debug_assert!(bytes.is_ok(), "{frame:?}");
        if let Ok(bytes) = bytes {
            self.stats.frames_out += 1;
            self.out.push_back(Output::Send(bytes));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes a hex string (test fixtures only).
    fn hex(s: &str) -> Vec<u8> {
        assert!(s.len().is_multiple_of(2), "odd hex length");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
            .collect()
    }

    const BOARD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 73);
    const LOCAL: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
    const SCP: u16 = 17893;
    const BOOT: u16 = 54321;

    fn client(bytes: &[u8]) -> ClientFrame<'_> {
        ClientFrame::parse_bytes(bytes).unwrap()
    }

    fn server(bytes: &[u8]) -> ServerFrame<'_> {
        ServerFrame::parse_bytes(bytes).unwrap()
    }

    fn round_trips_client(bytes: &[u8]) {
        assert_eq!(client(bytes).to_vec().unwrap(), bytes);
    }

    fn round_trips_server(bytes: &[u8]) {
        assert_eq!(server(bytes).to_vec().unwrap(), bytes);
    }

    // ---- codec: fixtures from spalloc_rest_captures.md A.3 and B.3 ----

    #[test]
    fn capture_open_and_reply() {
        let open = hex("00000000000000000000000000000000e5450000");
        assert_eq!(
            client(&open),
            ClientFrame::Open {
                corr: 0,
                x: 0,
                y: 0,
                port: SCP
            }
        );
        round_trips_client(&open);
        let boot = hex("0000000003000000000000000000000031d40000");
        assert_eq!(
            client(&boot),
            ClientFrame::Open {
                corr: 3,
                x: 0,
                y: 0,
                port: BOOT
            }
        );
        round_trips_client(&boot);

        let reply = hex("000000000000000001000000");
        assert_eq!(server(&reply), ServerFrame::Open { corr: 0, channel: 1 });
        round_trips_server(&reply);
        assert_eq!(
            ServerFrame::Open { corr: 3, channel: 3 }.to_vec().unwrap(),
            hex("000000000300000003000000")
        );
    }

    #[test]
    fn capture_close_both_ways() {
        let close = hex("010000000500000004000000");
        assert_eq!(client(&close), ClientFrame::Close { corr: 5, channel: 4 });
        round_trips_client(&close);
        assert_eq!(server(&close), ServerFrame::Close { corr: 5, channel: 4 });
        round_trips_server(&close);
        // Not open: the channel word is 0.
        assert_eq!(
            ServerFrame::Close { corr: 9, channel: 0 }.to_vec().unwrap(),
            hex("010000000900000000000000")
        );
    }

    #[test]
    fn capture_msg_both_ways() {
        let sver = hex("0200000001000000000087ff00ff0000000000000000000000000000000000000000");
        let ClientFrame::Msg { channel, payload } = client(&sver) else {
            panic!("not a MSG")
        };
        assert_eq!(channel, 1);
        assert_eq!(
            payload,
            &hex("000087ff00ff0000000000000000000000000000000000000000")[..]
        );
        assert_eq!(payload.len(), 26);
        round_trips_client(&sver);

        // S→C: `02000000` + channel + the board's payload.
        let reply_payload = hex("000007ffff000000000080000000000100000001ffff00f153655343264d502f");
        let frame = ServerFrame::Msg {
            channel: 1,
            payload: &reply_payload,
        }
        .to_vec()
        .unwrap();
        assert_eq!(&frame[..8], &hex("0200000001000000")[..]);
        assert_eq!(&frame[8..], &reply_payload[..]);
        round_trips_server(&frame);
        // The same bytes read as a client's MSG.
        assert_eq!(
            client(&frame),
            ClientFrame::Msg {
                channel: 1,
                payload: &reply_payload
            }
        );
    }

    #[test]
    fn capture_open_unbound_and_reply() {
        let open = hex("0300000006000000");
        assert_eq!(client(&open), ClientFrame::OpenUnbound { corr: 6 });
        round_trips_client(&open);

        let reply = hex("0300000006000000050000007f00000136920000");
        assert_eq!(
            server(&reply),
            ServerFrame::OpenUnbound {
                corr: 6,
                channel: 5,
                addr: SocketAddrV4::new(LOCAL, 0x9236)
            }
        );
        round_trips_server(&reply);
        let view = Frame::new_checked(&reply[..], Direction::ToClient).unwrap();
        assert_eq!(view.address(), LOCAL);
        assert_eq!(view.port(), 0x9236);
        assert_eq!(view.channel(), 5);
        assert_eq!(view.corr(), 6);
    }

    #[test]
    fn capture_msg_to() {
        let bytes = hex("04000000050000000000000000000000e54500000000a7ff00ff000000001a000000020001500000000000000000");
        let ClientFrame::MsgTo {
            channel,
            x,
            y,
            port,
            payload,
        } = client(&bytes)
        else {
            panic!("not a MSG_TO")
        };
        assert_eq!((channel, x, y, port), (5, 0, 0, SCP));
        assert_eq!(
            payload,
            &hex("0000a7ff00ff000000001a000000020001500000000000000000")[..]
        );
        round_trips_client(&bytes);
        let view = Frame::new_checked(&bytes[..], Direction::ToServer).unwrap();
        assert_eq!((view.channel(), view.x(), view.y(), view.port()), (5, 0, 0, 17893));
        assert_eq!(view.corr(), 0);
    }

    #[test]
    fn capture_create_transceiver_frames() {
        // B.3: sver to (255, 255), IPTAG timeout and CMD_INFO on channel 2.
        for (c2s, board) in [
            (
                "0200000002000000000087ff00ffffff000000000100000000000000000000000000",
                "000007ffff000000000080000100000100000001ffff00f153655343264d502f",
            ),
            (
                "0200000002000000000087ff00ff000000001a000200000004000900000000000000",
                "000007ffff00000000008000020009200808",
            ),
            (
                "0200000002000000000087ff00ff000000001f0003005f0000000000000000000000",
                "000007ffff000000000080000300123ffa0200004006204e0000000000000000",
            ),
        ] {
            let bytes = hex(c2s);
            assert!(matches!(client(&bytes), ClientFrame::Msg { channel: 2, .. }));
            round_trips_client(&bytes);
            let payload = hex(board);
            let out = ServerFrame::Msg {
                channel: 2,
                payload: &payload,
            }
            .to_vec()
            .unwrap();
            assert_eq!(out.len(), 8 + payload.len());
        }
    }

    #[test]
    fn error_frames() {
        let frame = ServerFrame::Error {
            corr: 7,
            text: "unrecognised ethernet chip",
        }
        .to_vec()
        .unwrap();
        assert_eq!(&frame[..8], &hex("0500000007000000")[..]);
        assert_eq!(&frame[8..], b"unrecognised ethernet chip");
        assert_eq!(
            server(&frame),
            ServerFrame::Error {
                corr: 7,
                text: "unrecognised ethernet chip"
            }
        );
        // An empty text is allowed (the client then invents its own message).
        assert_eq!(
            server(&hex("0500000001000000")),
            ServerFrame::Error { corr: 1, text: "" }
        );
    }

    #[test]
    fn error_text_cut_on_a_char_boundary() {
        // 999 ASCII bytes, then a 2-byte 'é': the 'é' would end at byte 1001, so it goes.
        let text = format!("{}é and more", "a".repeat(999));
        let f = ServerFrame::Error { corr: 1, text: &text };
        assert_eq!(f.buffer_len(), 8 + 999);
        let bytes = f.to_vec().unwrap();
        assert_eq!(bytes.len(), 8 + 999);
        let ServerFrame::Error { text: cut, .. } = server(&bytes) else {
            panic!("not an ERROR")
        };
        assert_eq!(cut, "a".repeat(999));
        // Exactly 1000 bytes stays whole.
        let text = "é".repeat(500);
        assert_eq!(
            ServerFrame::Error { corr: 1, text: &text }.to_vec().unwrap().len(),
            1008
        );
        // A received text over 1000 bytes is refused.
        let mut long = hex("0500000001000000");
        long.extend(std::iter::repeat_n(b'x', 1001));
        assert_eq!(
            ServerFrame::parse_bytes(&long),
            Err(FrameError::PayloadTooLong {
                op: Opcode::Error,
                max: 1000,
                got: 1001
            })
        );
    }

    #[test]
    fn truncated_frames() {
        for len in 0..HEADER_LEN {
            let bytes = vec![0u8; len];
            let want = Some(FrameError::Truncated { need: 8, got: len });
            assert_eq!(ClientFrame::parse_bytes(&bytes).err(), want);
            assert_eq!(ServerFrame::parse_bytes(&bytes).err(), want);
        }
        // A MSG_TO without its whole header.
        let short = hex("04000000050000000000000000000000e545");
        assert_eq!(
            ClientFrame::parse_bytes(&short),
            Err(FrameError::Truncated { need: 20, got: 18 })
        );
    }

    #[test]
    fn wrong_lengths_for_the_opcode() {
        let cases: [(&str, Opcode, usize); 6] = [
            ("00000000000000000000000000000000e545000000", Opcode::Open, 20),
            ("00000000000000000000000000000000", Opcode::Open, 20),
            ("01000000010000000100000000", Opcode::Close, 12),
            ("0100000001000000", Opcode::Close, 12),
            ("030000000600000000000000", Opcode::OpenUnbound, 8),
            ("0300000006000000ff", Opcode::OpenUnbound, 8),
        ];
        for (h, op, expected) in cases {
            let bytes = hex(h);
            assert_eq!(
                ClientFrame::parse_bytes(&bytes),
                Err(FrameError::BadLength {
                    op,
                    expected,
                    got: bytes.len()
                }),
                "{h}"
            );
        }
        // The replies: OPEN 12, CLOSE 12, OPEN_UNBOUND 20, exactly.
        for (h, op, expected) in [
            ("00000000000000000100000000", Opcode::Open, 12),
            ("0000000000000000", Opcode::Open, 12),
            ("0100000001000000", Opcode::Close, 12),
            ("0300000006000000050000007f000001369200", Opcode::OpenUnbound, 20),
        ] {
            let bytes = hex(h);
            assert_eq!(
                ServerFrame::parse_bytes(&bytes),
                Err(FrameError::BadLength {
                    op,
                    expected,
                    got: bytes.len()
                }),
                "{h}"
            );
        }
    }

    #[test]
    fn unknown_opcodes_are_kept() {
        for (h, n) in [("0600000000000000", 6), ("ffffffff00000000", u32::MAX)] {
            let bytes = hex(h);
            assert_eq!(ClientFrame::parse_bytes(&bytes), Err(FrameError::UnknownOpcode(n)));
            assert_eq!(ServerFrame::parse_bytes(&bytes), Err(FrameError::UnknownOpcode(n)));
            let view = Frame::new_unchecked(&bytes[..], Direction::ToServer);
            assert_eq!(view.opcode(), Opcode::Unknown(n));
            assert_eq!(u32::from(view.opcode()), n);
        }
        assert_eq!(Opcode::Unknown(9).to_string(), "opcode 9");
        assert_eq!(Opcode::from(4), Opcode::MsgTo);
    }

    #[test]
    fn opcodes_of_the_other_direction() {
        assert_eq!(
            ClientFrame::parse_bytes(&hex("0500000000000000")),
            Err(FrameError::WrongDirection {
                op: Opcode::Error,
                from: Direction::ToServer
            })
        );
        assert_eq!(
            ServerFrame::parse_bytes(&hex("04000000050000000000000000000000e5450000")),
            Err(FrameError::WrongDirection {
                op: Opcode::MsgTo,
                from: Direction::ToClient
            })
        );
        assert_eq!(
            FrameError::WrongDirection {
                op: Opcode::Error,
                from: Direction::ToServer
            }
            .to_string(),
            "ERROR is never sent by the client"
        );
    }

    #[test]
    fn bad_ports() {
        for (h, op, port) in [
            ("00000000000000000000000000000000" /* port */, Opcode::Open, 0u32),
            ("00000000000000000000000000000000", Opcode::Open, 65536),
            ("04000000050000000000000000000000", Opcode::MsgTo, 0),
            ("04000000050000000000000000000000", Opcode::MsgTo, u32::MAX),
        ] {
            let mut bytes = hex(h);
            bytes.extend(port.to_le_bytes());
            assert_eq!(
                ClientFrame::parse_bytes(&bytes),
                Err(FrameError::BadPort { op, port }),
                "{op} {port}"
            );
        }
        // 1 and 65535 are fine.
        for port in [1u32, 65535] {
            let mut bytes = hex("00000000000000000000000000000000");
            bytes.extend(port.to_le_bytes());
            assert!(ClientFrame::parse_bytes(&bytes).is_ok());
        }
        // The OPEN_UNBOUND reply's port must fit 16 bits.
        let mut reply = hex("0300000006000000050000007f000001");
        reply.extend(65536u32.to_le_bytes());
        assert_eq!(
            ServerFrame::parse_bytes(&reply),
            Err(FrameError::BadPort {
                op: Opcode::OpenUnbound,
                port: 65536
            })
        );
        // Emitting port 0 is refused.
        assert_eq!(
            ClientFrame::Open {
                corr: 0,
                x: 0,
                y: 0,
                port: 0
            }
            .to_vec(),
            Err(FrameError::BadPort {
                op: Opcode::Open,
                port: 0
            })
        );
    }

    #[test]
    fn payload_limits() {
        let mut msg = hex("0200000001000000");
        msg.resize(8 + MAX_PAYLOAD_LEN, 0xaa);
        assert!(ClientFrame::parse_bytes(&msg).is_ok());
        assert!(ServerFrame::parse_bytes(&msg).is_ok());
        msg.push(0);
        let want = Some(FrameError::PayloadTooLong {
            op: Opcode::Msg,
            max: MAX_PAYLOAD_LEN,
            got: MAX_PAYLOAD_LEN + 1,
        });
        assert_eq!(ClientFrame::parse_bytes(&msg).err(), want);
        assert_eq!(ServerFrame::parse_bytes(&msg).err(), want);

        let mut msg_to = hex("04000000050000000000000000000000e5450000");
        msg_to.resize(MAX_FRAME_LEN, 0);
        assert!(ClientFrame::parse_bytes(&msg_to).is_ok());
        msg_to.push(0);
        assert_eq!(
            ClientFrame::parse_bytes(&msg_to),
            Err(FrameError::TooLong {
                max: MAX_FRAME_LEN,
                got: MAX_FRAME_LEN + 1
            })
        );
        // A 1 MiB frame is refused before its opcode is looked at.
        let huge = vec![0xffu8; 1 << 20];
        assert!(matches!(
            ClientFrame::parse_bytes(&huge),
            Err(FrameError::TooLong { .. })
        ));

        let big = vec![0u8; MAX_PAYLOAD_LEN + 1];
        assert!(matches!(
            ClientFrame::Msg {
                channel: 1,
                payload: &big
            }
            .to_vec(),
            Err(FrameError::PayloadTooLong { .. })
        ));
        assert!(matches!(
            ServerFrame::Msg {
                channel: 1,
                payload: &big
            }
            .to_vec(),
            Err(FrameError::PayloadTooLong { .. })
        ));
    }

    #[test]
    fn error_text_must_be_utf8() {
        assert_eq!(
            ServerFrame::parse_bytes(&hex("0500000001000000c328")),
            Err(FrameError::BadText)
        );
    }

    #[test]
    fn emit_into_buffers() {
        let f = ClientFrame::Open {
            corr: 2,
            x: 0,
            y: 0,
            port: SCP,
        };
        let mut small = [0u8; 19];
        assert_eq!(
            f.emit(&mut small),
            Err(FrameError::BufferTooSmall { need: 20, got: 19 })
        );
        let mut buf = [0xeeu8; 32];
        assert_eq!(f.emit(&mut buf), Ok(20));
        assert_eq!(&buf[..20], &hex("00000000020000000000000000000000e5450000")[..]);
        assert_eq!(buf[20], 0xee);

        // emit_vec appends, and leaves the vector as it was on failure.
        let mut out = vec![1, 2, 3];
        ServerFrame::Close { corr: 1, channel: 1 }.emit_vec(&mut out).unwrap();
        assert_eq!(out, [&[1, 2, 3][..], &hex("010000000100000001000000")].concat());
        let big = vec![0u8; MAX_PAYLOAD_LEN + 1];
        assert!(
            ServerFrame::Msg {
                channel: 1,
                payload: &big
            }
            .emit_vec(&mut out)
            .is_err()
        );
        assert_eq!(out.len(), 15);

        let reply = ServerFrame::OpenUnbound {
            corr: 6,
            channel: 5,
            addr: SocketAddrV4::new(LOCAL, 0x9236),
        };
        let mut buf = [0u8; 20];
        assert_eq!(reply.emit(&mut buf), Ok(20));
        assert_eq!(&buf[..], &hex("0300000006000000050000007f00000136920000")[..]);
    }

    #[test]
    fn view_accessors_never_panic_on_fields_a_frame_lacks() {
        let unbound = hex("0300000006000000");
        let v = Frame::new_checked(&unbound[..], Direction::ToServer).unwrap();
        assert_eq!((v.x(), v.y(), v.port(), v.channel()), (0, 0, 0, 0));
        assert_eq!(v.address(), Ipv4Addr::UNSPECIFIED);
        assert!(v.payload().is_empty());
        // Unchecked, too short for anything.
        let v = Frame::new_unchecked(&[0u8, 0][..], Direction::ToServer);
        assert_eq!((v.opcode(), v.corr(), v.x(), v.port()), (Opcode::Open, 0, 0, 0));
        let v = Frame::new_unchecked(&[3u8, 0, 0, 0][..], Direction::ToClient);
        assert_eq!(v.address(), Ipv4Addr::UNSPECIFIED);
        assert!(v.payload().is_empty());
    }

    // ---- codec properties ----

    /// Frames near the protocol: a real opcode (or a near miss) and a length near the real ones.
    fn framish() -> impl Strategy<Value = Vec<u8>> {
        (0u32..8, proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(op, rest)| {
            let mut b = op.to_le_bytes().to_vec();
            b.extend(rest);
            b
        })
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in prop_oneof![proptest::collection::vec(any::<u8>(), 0..64), framish()]) {
            for dir in [Direction::ToServer, Direction::ToClient] {
                let v = Frame::new_unchecked(&bytes[..], dir);
                let _ = (v.opcode(), v.corr(), v.channel(), v.x(), v.y(), v.port(), v.address(), v.payload());
                let _ = v.check_len();
            }
            if let Ok(f) = ClientFrame::parse_bytes(&bytes) {
                // What parses emits back to the same bytes.
                prop_assert_eq!(f.to_vec().unwrap(), bytes.clone());
            }
            if let Ok(f) = ServerFrame::parse_bytes(&bytes) {
                prop_assert_eq!(f.to_vec().unwrap(), bytes.clone());
            }
        }

    }

    proptest! {
        #[test]
        fn client_frames_round_trip_all_kinds(
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            kind in 0u8..5, corr in any::<u32>(), a in any::<u32>(), b in any::<u32>(), port in 1u16..,
        ) {
            let frame = match kind {
                0 => ClientFrame::Open { corr, x: a, y: b, port },
                1 => ClientFrame::Close { corr, channel: a },
                2 => ClientFrame::Msg { channel: a, payload: &payload },
                3 => ClientFrame::OpenUnbound { corr },
                _ => ClientFrame::MsgTo { channel: corr, x: a, y: b, port, payload: &payload },
            };
            let bytes = frame.to_vec().unwrap();
            prop_assert_eq!(bytes.len(), frame.buffer_len());
            let mut buf = vec![0u8; bytes.len()];
            prop_assert_eq!(frame.emit(&mut buf), Ok(bytes.len()));
            prop_assert_eq!(&buf, &bytes);
            prop_assert_eq!(ClientFrame::parse_bytes(&bytes).unwrap(), frame);
        }

        #[test]
        fn server_frames_round_trip_all_kinds(
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            text in "\\PC{0,400}",
            kind in 0u8..5, corr in any::<u32>(), channel in any::<u32>(), ip in any::<[u8; 4]>(), port in any::<u16>(),
        ) {
            let text = truncate_str(&text, MAX_ERROR_TEXT_LEN);
            let frame = match kind {
                0 => ServerFrame::Open { corr, channel },
                1 => ServerFrame::Close { corr, channel },
                2 => ServerFrame::Msg { channel, payload: &payload },
                3 => ServerFrame::OpenUnbound { corr, channel, addr: SocketAddrV4::new(Ipv4Addr::from(ip), port) },
                _ => ServerFrame::Error { corr, text },
            };
            let bytes = frame.to_vec().unwrap();
            prop_assert_eq!(bytes.len(), frame.buffer_len());
            prop_assert_eq!(ServerFrame::parse_bytes(&bytes).unwrap(), frame);
        }

        #[test]
        fn long_error_texts_are_cut_to_a_prefix(text in "\\PC{300,700}") {
            let bytes = ServerFrame::Error { corr: 1, text: &text }.to_vec().unwrap();
            prop_assert!(bytes.len() <= 8 + MAX_ERROR_TEXT_LEN);
            let ServerFrame::Error { text: cut, .. } = ServerFrame::parse_bytes(&bytes).unwrap() else {
                panic!("not an ERROR")
            };
            prop_assert!(text.starts_with(cut));
            prop_assert!(text.len() <= MAX_ERROR_TEXT_LEN || cut.len() > MAX_ERROR_TEXT_LEN - 4);
        }

    }

    // ---- the session ----

    fn job() -> BTreeMap<(u32, u32), Ipv4Addr> {
        BTreeMap::from([((0, 0), BOARD)])
    }

    fn three_boards() -> BTreeMap<(u32, u32), Ipv4Addr> {
        BTreeMap::from([
            ((0, 0), Ipv4Addr::new(10, 0, 0, 1)),
            ((8, 4), Ipv4Addr::new(10, 0, 0, 9)),
            ((4, 8), Ipv4Addr::new(10, 0, 0, 17)),
        ])
    }

    fn drain(s: &mut ProxySession) -> Vec<Output> {
        std::iter::from_fn(|| s.poll_output()).collect()
    }

    fn send(h: &str) -> Output {
        Output::Send(hex(h))
    }

    fn error_frame(corr: u32, text: &str) -> Output {
        Output::Send(ServerFrame::Error { corr, text }.to_vec().unwrap())
    }

    /// Feeds a frame (hex) and returns the outputs.
    fn frame(s: &mut ProxySession, h: &str) -> Vec<Output> {
        s.handle_frame(&hex(h)).unwrap();
        drain(s)
    }

    /// Opens a connected channel to (x, y, port) with `corr`, the driver answering at once.
    fn open(s: &mut ProxySession, corr: u32, x: u32, y: u32, port: u16) -> ChannelId {
        let bytes = ClientFrame::Open { corr, x, y, port }.to_vec().unwrap();
        s.handle_frame(&bytes).unwrap();
        let Some(Output::OpenSocket {
            channel,
            remote: Some(_),
        }) = s.poll_output()
        else {
            panic!("no OpenSocket")
        };
        s.socket_opened(channel, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 40000));
        assert_eq!(
            drain(s),
            [Output::Send(
                ServerFrame::Open {
                    corr,
                    channel: channel.0
                }
                .to_vec()
                .unwrap()
            )]
        );
        channel
    }

    fn open_unbound(s: &mut ProxySession, corr: u32) -> ChannelId {
        s.handle_frame(&ClientFrame::OpenUnbound { corr }.to_vec().unwrap())
            .unwrap();
        let Some(Output::OpenSocket { channel, remote: None }) = s.poll_output() else {
            panic!("no OpenSocket")
        };
        s.socket_opened(channel, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 40001));
        assert_eq!(drain(s).len(), 1);
        channel
    }

    fn assert_closed_with(outputs: &[Output], code: CloseCode) {
        match outputs.last() {
            Some(Output::CloseWebsocket { code: c, reason }) => {
                assert_eq!(*c, code, "{reason}");
                assert!(reason.len() <= MAX_CLOSE_REASON_LEN);
            }
            other => panic!("expected CloseWebsocket, got {other:?}"),
        }
    }

    /// Scenario A of spalloc_rest_captures.md (A.3), frame for frame: the check's sver on
    /// channel 1, `create_transceiver` (SCAMP channel 2, boot channel 3), SCP writes and reads,
    /// the connected EIEIO channel 4, the EIEIO listener (OPEN_UNBOUND, channel 5, MSG_TO and
    /// the board's reply), then every CLOSE.
    #[test]
    fn scenario_a_spinnman_session() {
        let mut s = ProxySession::new(job(), LOCAL);
        let board_scp = SocketAddrV4::new(BOARD, SCP);
        let board_boot = SocketAddrV4::new(BOARD, BOOT);
        let local = |port| SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);

        // OPEN (0, 0, 17893) corr 0 -> channel 1.
        assert_eq!(
            frame(&mut s, "00000000000000000000000000000000e5450000"),
            [Output::OpenSocket {
                channel: ChannelId(1),
                remote: Some(board_scp)
            }]
        );
        s.socket_opened(ChannelId(1), local(50001));
        assert_eq!(drain(&mut s), [send("000000000000000001000000")]);

        // sver on channel 1, and the board's reply.
        assert_eq!(
            frame(
                &mut s,
                "0200000001000000000087ff00ff0000000000000000000000000000000000000000"
            ),
            [Output::SendDatagram {
                channel: ChannelId(1),
                to: board_scp,
                payload: hex("000087ff00ff0000000000000000000000000000000000000000")
            }]
        );
        let reply = hex("000007ffff000000000080000000000100000001ffff00f153655343264d502f");
        assert_eq!(s.handle_datagram(ChannelId(1), board_scp, &reply), Delivery::Forwarded);
        assert_eq!(drain(&mut s), [Output::Send([hex("0200000001000000"), reply].concat())]);

        // CLOSE corr 1 channel 1.
        assert_eq!(
            frame(&mut s, "010000000100000001000000"),
            [
                Output::CloseSocket { channel: ChannelId(1) },
                send("010000000100000001000000")
            ]
        );

        // create_transceiver: OPEN corr 2 -> channel 2 (SCAMP), OPEN corr 3 -> channel 3 (boot).
        assert_eq!(
            frame(&mut s, "00000000020000000000000000000000e5450000"),
            [Output::OpenSocket {
                channel: ChannelId(2),
                remote: Some(board_scp)
            }]
        );
        s.socket_opened(ChannelId(2), local(50002));
        assert_eq!(drain(&mut s), [send("000000000200000002000000")]);
        assert_eq!(
            frame(&mut s, "0000000003000000000000000000000031d40000"),
            [Output::OpenSocket {
                channel: ChannelId(3),
                remote: Some(board_boot)
            }]
        );
        s.socket_opened(ChannelId(3), local(50003));
        assert_eq!(drain(&mut s), [send("000000000300000003000000")]);

        // A write chunk (CMD_WRITE, seq 1, 256 bytes) and its reply; a read request.
        let mut write =
            hex("0200000002000000000087ff00ff000000000300010000001060000100000200000005121f2c394653606d7a8794a1ae");
        write.resize(8 + 282, 0x5a);
        let out = {
            s.handle_frame(&write).unwrap();
            drain(&mut s)
        };
        assert_eq!(
            out,
            [Output::SendDatagram {
                channel: ChannelId(2),
                to: board_scp,
                payload: write[8..].to_vec()
            }]
        );
        let ack = hex("000007ffff000000000080000100");
        s.handle_datagram(ChannelId(2), board_scp, &ack);
        assert_eq!(drain(&mut s), [Output::Send([hex("0200000002000000"), ack].concat())]);
        assert_eq!(
            frame(
                &mut s,
                "0200000002000000000087ff00ff0000000002001100000010600001000002000000"
            ),
            [Output::SendDatagram {
                channel: ChannelId(2),
                to: board_scp,
                payload: hex("000087ff00ff0000000002001100000010600001000002000000")
            }]
        );

        // The connected EIEIO channel: OPEN corr 4 -> channel 4, IPTAG SET, reply, CLOSE corr 5.
        assert_eq!(
            frame(&mut s, "00000000040000000000000000000000e5450000"),
            [Output::OpenSocket {
                channel: ChannelId(4),
                remote: Some(board_scp)
            }]
        );
        s.socket_opened(ChannelId(4), local(50004));
        assert_eq!(drain(&mut s), [send("000000000400000004000000")]);
        assert_eq!(
            frame(
                &mut s,
                "02000000040000000000a7ff00ff000000001a000000010001500000000000000000"
            ),
            [Output::SendDatagram {
                channel: ChannelId(4),
                to: board_scp,
                payload: hex("0000a7ff00ff000000001a000000010001500000000000000000")
            }]
        );
        let tag_reply = hex("000027ffff00000000008000000001000000");
        s.handle_datagram(ChannelId(4), board_scp, &tag_reply);
        assert_eq!(
            drain(&mut s),
            [Output::Send([hex("0200000004000000"), tag_reply].concat())]
        );
        assert_eq!(
            frame(&mut s, "010000000500000004000000"),
            [
                Output::CloseSocket { channel: ChannelId(4) },
                send("010000000500000004000000")
            ]
        );

        // The EIEIO listener: OPEN_UNBOUND corr 6 -> channel 5 at 127.0.0.1:0x9236.
        assert_eq!(
            frame(&mut s, "0300000006000000"),
            [Output::OpenSocket {
                channel: ChannelId(5),
                remote: None
            }]
        );
        s.socket_opened(ChannelId(5), local(0x9236));
        assert_eq!(drain(&mut s), [send("0300000006000000050000007f00000136920000")]);
        assert_eq!(
            frame(
                &mut s,
                "04000000050000000000000000000000e54500000000a7ff00ff000000001a000000020001500000000000000000"
            ),
            [Output::SendDatagram {
                channel: ChannelId(5),
                to: board_scp,
                payload: hex("0000a7ff00ff000000001a000000020001500000000000000000")
            }]
        );
        let tag2_reply = hex("000027ffff00000000008000000002000000");
        assert_eq!(
            s.handle_datagram(ChannelId(5), board_scp, &tag2_reply),
            Delivery::Forwarded
        );
        assert_eq!(
            drain(&mut s),
            [Output::Send([hex("0200000005000000"), tag2_reply].concat())]
        );

        // The CLOSEs: channel 5 (corr 7), 3 (corr 8), 2 (corr 9).
        for (h, ch) in [
            ("010000000700000005000000", 5),
            ("010000000800000003000000", 3),
            ("010000000900000002000000", 2),
        ] {
            assert_eq!(
                frame(&mut s, h),
                [Output::CloseSocket { channel: ChannelId(ch) }, send(h)]
            );
        }
        assert_eq!(s.channel_count(), 0);

        // `job.destroy()` closes the websocket (status 1000).
        s.websocket_closed();
        assert_eq!(drain(&mut s), []);
        assert!(s.is_closed());

        let st = s.stats();
        assert_eq!(st.frames_in, 15);
        assert_eq!(st.frames_out, 14);
        assert_eq!(st.datagrams_to_boards, 5);
        assert_eq!(st.datagrams_from_boards, 4);
        assert_eq!(st.channels_opened, 5);
        assert_eq!(st.channels_closed, 5);
        assert_eq!((st.refusals, st.violations, st.datagrams_dropped), (0, 0, 0));
    }

    /// Scenario B's `create_transceiver(ensure_board_is_ready=True)` (B.3): two OPENs, then
    /// sver, IPTAG timeout and CMD_INFO on the SCAMP channel.
    #[test]
    fn scenario_b_create_transceiver() {
        let mut s = ProxySession::new(job(), LOCAL);
        let board_scp = SocketAddrV4::new(BOARD, SCP);
        let scamp = open(&mut s, 2, 0, 0, SCP);
        let boot = open(&mut s, 3, 0, 0, BOOT);
        assert_eq!((scamp, boot), (ChannelId(1), ChannelId(2)));
        for (c2s, board) in [
            (
                "000087ff00ffffff000000000100000000000000000000000000",
                "000007ffff000000000080000100000100000001ffff00f153655343264d502f",
            ),
            (
                "000087ff00ff000000001a000200000004000900000000000000",
                "000007ffff00000000008000020009200808",
            ),
            (
                "000087ff00ff000000001f0003005f0000000000000000000000",
                "000007ffff000000000080000300123ffa0200004006204e0000000000000000",
            ),
        ] {
            let payload = hex(c2s);
            let msg = ClientFrame::Msg {
                channel: scamp.0,
                payload: &payload,
            }
            .to_vec()
            .unwrap();
            s.handle_frame(&msg).unwrap();
            assert_eq!(
                drain(&mut s),
                [Output::SendDatagram {
                    channel: scamp,
                    to: board_scp,
                    payload
                }]
            );
            let reply = hex(board);
            s.handle_datagram(scamp, board_scp, &reply);
            assert_eq!(drain(&mut s), [Output::Send([hex("0200000001000000"), reply].concat())]);
        }
    }

    #[test]
    fn open_outside_the_job_is_refused() {
        let mut s = ProxySession::new(three_boards(), LOCAL);
        // (1, 0) is a chip of no board; (12, 12) is another job's board.
        assert_eq!(
            frame(&mut s, "00000000070000000100000000000000e5450000"),
            [error_frame(7, "unrecognised ethernet chip")]
        );
        let other = ClientFrame::Open {
            corr: 8,
            x: 12,
            y: 12,
            port: SCP,
        };
        s.handle_frame(&other.to_vec().unwrap()).unwrap();
        assert_eq!(drain(&mut s), [error_frame(8, "unrecognised ethernet chip")]);
        // The job's boards are reachable.
        let ch = open(&mut s, 9, 8, 4, SCP);
        s.handle_frame(
            &ClientFrame::Msg {
                channel: ch.0,
                payload: b"x",
            }
            .to_vec()
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            drain(&mut s),
            [Output::SendDatagram {
                channel: ch,
                to: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), SCP),
                payload: b"x".to_vec()
            }]
        );
        assert_eq!(s.stats().refusals, 2);
        assert!(!s.is_closed());
    }

    #[test]
    fn open_with_a_bad_port_is_refused() {
        let mut s = ProxySession::new(job(), LOCAL);
        // Port 0 and 65536 on a job board: "bad port number".
        assert_eq!(
            frame(&mut s, "0000000000000000000000000000000000000000"),
            [error_frame(0, "bad port number")]
        );
        assert_eq!(
            frame(&mut s, "0000000001000000000000000000000000000100"),
            [error_frame(1, "bad port number")]
        );
        // A bad port on a chip outside the job: the chip is named first.
        assert_eq!(
            frame(&mut s, "0000000002000000050000000000000000000000"),
            [error_frame(2, "unrecognised ethernet chip")]
        );
        assert_eq!(s.channel_count(), 0);
        assert!(!s.is_closed());
    }

    #[test]
    fn channel_ids_count_from_one_and_are_never_reused() {
        let mut s = ProxySession::new(job(), LOCAL);
        let a = open(&mut s, 0, 0, 0, SCP);
        let b = open_unbound(&mut s, 1);
        assert_eq!((a, b), (ChannelId(1), ChannelId(2)));
        frame(&mut s, "010000000200000001000000");
        let c = open(&mut s, 3, 0, 0, SCP);
        assert_eq!(c, ChannelId(3));
        // A refused OPEN uses no id.
        frame(&mut s, "00000000040000000900000000000000e5450000");
        assert_eq!(open(&mut s, 5, 0, 0, BOOT), ChannelId(4));
    }

    #[test]
    fn channel_ids_run_out_without_wrapping_to_zero() {
        let mut s = ProxySession::new(job(), LOCAL);
        s.next_channel = Some(u32::MAX);
        assert_eq!(open(&mut s, 0, 0, 0, SCP), ChannelId(u32::MAX));
        assert_eq!(
            frame(&mut s, "0300000001000000"),
            [error_frame(1, "no channel ids left on this websocket")]
        );
    }

    #[test]
    fn close_answers_zero_for_a_channel_that_is_not_open() {
        let mut s = ProxySession::new(job(), LOCAL);
        // Never opened; channel 0.
        assert_eq!(
            frame(&mut s, "010000000000000007000000"),
            [send("010000000000000000000000")]
        );
        assert_eq!(
            frame(&mut s, "010000000100000000000000"),
            [send("010000000100000000000000")]
        );
        // Closed twice: the id, then 0.
        let ch = open(&mut s, 2, 0, 0, SCP);
        assert_eq!(ch, ChannelId(1));
        assert_eq!(
            frame(&mut s, "010000000300000001000000"),
            [Output::CloseSocket { channel: ch }, send("010000000300000001000000")]
        );
        assert_eq!(
            frame(&mut s, "010000000400000001000000"),
            [send("010000000400000000000000")]
        );
        assert!(!s.is_closed());
    }

    #[test]
    fn close_of_a_channel_still_opening_leaves_its_call_to_finish() {
        let mut s = ProxySession::new(job(), LOCAL);
        assert!(matches!(
            frame(&mut s, "00000000000000000000000000000000e5450000")[..],
            [Output::OpenSocket { .. }]
        ));
        // A client guessing the id before the reply gets 0 ...
        assert_eq!(
            frame(&mut s, "010000000100000001000000"),
            [send("010000000100000000000000")]
        );
        // ... and the OPEN is still answered.
        s.socket_opened(ChannelId(1), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 1));
        assert_eq!(drain(&mut s), [send("000000000000000001000000")]);
    }

    #[test]
    fn msg_that_goes_nowhere_is_refused_with_an_unsolicited_error() {
        let mut s = ProxySession::new(job(), LOCAL);
        // Unknown channel, channel 0.
        assert_eq!(
            frame(&mut s, "0200000009000000aabb"),
            [error_frame(UNSOLICITED_CORR, "MSG on channel 9, which is not open")]
        );
        assert_eq!(
            frame(&mut s, "0200000000000000"),
            [error_frame(UNSOLICITED_CORR, "MSG on channel 0, which is not open")]
        );
        // A closed channel.
        let ch = open(&mut s, 0, 0, 0, SCP);
        frame(&mut s, "010000000100000001000000");
        let msg = ClientFrame::Msg {
            channel: ch.0,
            payload: b"late",
        }
        .to_vec()
        .unwrap();
        s.handle_frame(&msg).unwrap();
        assert_eq!(
            drain(&mut s),
            [error_frame(UNSOLICITED_CORR, "MSG on channel 1, which is not open")]
        );
        // A channel still waiting for its socket.
        frame(&mut s, "0300000002000000");
        assert_eq!(
            frame(&mut s, "0200000002000000ff"),
            [error_frame(UNSOLICITED_CORR, "MSG on channel 2, which is not open")]
        );
        s.socket_opened(ChannelId(2), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7));
        drain(&mut s);
        // An unbound channel: MSG has nowhere to go.
        assert_eq!(
            frame(&mut s, "0200000002000000ff"),
            [error_frame(
                UNSOLICITED_CORR,
                "MSG on channel 2, which is unbound: use MSG_TO"
            )]
        );
        // The frame is a valid ERROR, 0xffffffff as its correlation id.
        let Output::Send(bytes) = error_frame(UNSOLICITED_CORR, "x") else {
            unreachable!()
        };
        assert_eq!(&bytes[..8], &hex("05000000ffffffff")[..]);
        assert!(!s.is_closed());
        assert_eq!(s.stats().datagrams_to_boards, 0);
        assert_eq!(s.stats().refusals, 5);
    }

    #[test]
    fn msg_to_outside_the_job_closes_the_websocket() {
        let mut s = ProxySession::new(three_boards(), LOCAL);
        let connected = open(&mut s, 0, 0, 0, SCP);
        let unbound = open_unbound(&mut s, 1);
        let bytes = ClientFrame::MsgTo {
            channel: unbound.0,
            x: 12,
            y: 12,
            port: SCP,
            payload: b"tag",
        }
        .to_vec()
        .unwrap();
        assert_eq!(s.handle_frame(&bytes), Err(ProxyError::NotAJobBoard { x: 12, y: 12 }));
        let out = drain(&mut s);
        assert_eq!(
            out[..2],
            [
                Output::CloseSocket { channel: connected },
                Output::CloseSocket { channel: unbound }
            ]
        );
        assert_closed_with(&out, CloseCode::BadData);
        assert!(out.iter().all(|o| !matches!(o, Output::SendDatagram { .. })));
        assert_eq!(s.handle_frame(&hex("0300000002000000")), Err(ProxyError::Closed));
        assert_eq!(drain(&mut s), []);
        assert_eq!(s.stats().violations, 1);
    }

    #[test]
    fn msg_to_on_a_connected_channel_or_with_a_bad_port_closes_the_websocket() {
        let mut s = ProxySession::new(job(), LOCAL);
        let ch = open(&mut s, 0, 0, 0, SCP);
        let bytes = ClientFrame::MsgTo {
            channel: ch.0,
            x: 0,
            y: 0,
            port: SCP,
            payload: b"",
        }
        .to_vec()
        .unwrap();
        assert_eq!(s.handle_frame(&bytes), Err(ProxyError::ChannelConnected(ch)));
        let out = drain(&mut s);
        assert_eq!(out[0], Output::CloseSocket { channel: ch });
        assert_closed_with(&out, CloseCode::BadData);

        let mut s = ProxySession::new(job(), LOCAL);
        let ub = open_unbound(&mut s, 0);
        let mut bytes = hex("04000000");
        bytes.extend(ub.0.to_le_bytes());
        bytes.extend(hex("000000000000000000000000")); // x 0, y 0, port 0
        assert_eq!(
            s.handle_frame(&bytes),
            Err(ProxyError::BadFrame(FrameError::BadPort {
                op: Opcode::MsgTo,
                port: 0
            }))
        );
        assert_closed_with(&drain(&mut s), CloseCode::BadData);

        // A bad port to a chip outside the job names the chip, as the Java server checks it first.
        let mut s = ProxySession::new(job(), LOCAL);
        assert_eq!(
            s.handle_frame(&hex("0400000001000000030000000000000000000000")),
            Err(ProxyError::NotAJobBoard { x: 3, y: 0 })
        );
    }

    #[test]
    fn msg_to_on_a_channel_that_is_not_open_is_refused_without_closing() {
        let mut s = ProxySession::new(job(), LOCAL);
        assert_eq!(
            frame(&mut s, "04000000090000000000000000000000e5450000ff"),
            [error_frame(UNSOLICITED_CORR, "MSG_TO on channel 9, which is not open")]
        );
        assert!(!s.is_closed());
    }

    #[test]
    fn bad_frames_close_the_websocket_for_this_client_only() {
        let cases: [&[u8]; 7] = [
            &[],                                          // empty
            &hex("020000"),                               // truncated header
            &hex("0600000000000000"),                     // unknown opcode
            &hex("0500000000000000"),                     // ERROR from a client
            &hex("010000000100000001000000ff"),           // CLOSE of 13 bytes
            &hex("00000000000000000000000000000000e545"), // OPEN of 18 bytes
            &vec![2u8; MAX_FRAME_LEN + 1],                // oversized
        ];
        for bytes in cases {
            let mut bad = ProxySession::new(job(), LOCAL);
            let mut good = ProxySession::new(job(), LOCAL);
            let ch_bad = open(&mut bad, 0, 0, 0, SCP);
            let ch_good = open(&mut good, 0, 0, 0, SCP);
            assert!(
                matches!(bad.handle_frame(bytes), Err(ProxyError::BadFrame(_))),
                "{bytes:?}"
            );
            let out = drain(&mut bad);
            assert_eq!(out[0], Output::CloseSocket { channel: ch_bad });
            assert_closed_with(&out, CloseCode::BadData);
            if let Some(Output::CloseWebsocket { reason, .. }) = out.last() {
                assert!(reason.starts_with("bad data: "), "{reason}");
            }
            // The other session carries on.
            good.handle_frame(
                &ClientFrame::Msg {
                    channel: ch_good.0,
                    payload: b"ok",
                }
                .to_vec()
                .unwrap(),
            )
            .unwrap();
            assert!(matches!(drain(&mut good)[..], [Output::SendDatagram { .. }]));
        }
    }

    #[test]
    fn a_msg_payload_over_the_udp_limit_closes_the_websocket() {
        let mut s = ProxySession::new(job(), LOCAL);
        let ch = open(&mut s, 0, 0, 0, SCP);
        let mut bytes = ClientFrame::Msg {
            channel: ch.0,
            payload: &[],
        }
        .to_vec()
        .unwrap();
        bytes.resize(8 + MAX_PAYLOAD_LEN + 1, 0);
        assert!(matches!(
            s.handle_frame(&bytes),
            Err(ProxyError::BadFrame(FrameError::PayloadTooLong { .. }))
        ));
        assert_closed_with(&drain(&mut s), CloseCode::BadData);
    }

    #[test]
    fn datagrams_on_unbound_channels_only_from_the_jobs_boards() {
        let mut s = ProxySession::new(three_boards(), LOCAL);
        let ch = open_unbound(&mut s, 0);
        let other_job = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 25), SCP);
        let stranger = SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 1), 5000);
        let ours = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 17), 12345);
        assert_eq!(s.handle_datagram(ch, other_job, b"eieio"), Delivery::WrongSource);
        assert_eq!(s.handle_datagram(ch, stranger, b"eieio"), Delivery::WrongSource);
        assert_eq!(drain(&mut s), []);
        // Any port of a job board.
        assert_eq!(s.handle_datagram(ch, ours, b"eieio"), Delivery::Forwarded);
        assert_eq!(
            drain(&mut s),
            [Output::Send([hex("0200000001000000"), b"eieio".to_vec()].concat())]
        );
        assert_eq!(s.stats().datagrams_dropped, 2);
        assert_eq!(s.stats().datagrams_from_boards, 1);
    }

    #[test]
    fn datagrams_on_connected_channels_only_from_their_board() {
        let mut s = ProxySession::new(three_boards(), LOCAL);
        let ch = open(&mut s, 0, 0, 0, SCP);
        let board = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), SCP);
        // Another board of the same job, or the right board on another port.
        assert_eq!(
            s.handle_datagram(ch, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), SCP), b"x"),
            Delivery::WrongSource
        );
        assert_eq!(
            s.handle_datagram(ch, SocketAddrV4::new(*board.ip(), 9), b"x"),
            Delivery::WrongSource
        );
        assert_eq!(s.handle_datagram(ch, board, b"x"), Delivery::Forwarded);
        // Unknown, closed and still-opening channels drop.
        assert_eq!(s.handle_datagram(ChannelId(77), board, b"x"), Delivery::UnknownChannel);
        frame(&mut s, "0300000001000000");
        assert_eq!(s.handle_datagram(ChannelId(2), board, b"x"), Delivery::UnknownChannel);
        // Over the UDP limit (a driver bug): dropped.
        assert_eq!(
            s.handle_datagram(ch, board, &vec![0; MAX_PAYLOAD_LEN + 1]),
            Delivery::TooLong
        );
        // An empty datagram is a datagram.
        assert_eq!(s.handle_datagram(ch, board, b""), Delivery::Forwarded);
        assert_eq!(drain(&mut s), [send("0200000001000000")]);
    }

    #[test]
    fn the_channel_limit_refuses_with_an_error() {
        let mut s = ProxySession::with_limits(job(), LOCAL, ProxyLimits { max_channels: 2 });
        open(&mut s, 0, 0, 0, SCP);
        // An opening channel counts too.
        frame(&mut s, "0300000001000000");
        assert_eq!(
            frame(&mut s, "00000000020000000000000000000000e5450000"),
            [error_frame(2, "too many channels: at most 2 on one websocket")]
        );
        assert_eq!(
            frame(&mut s, "0300000003000000"),
            [error_frame(3, "too many channels: at most 2 on one websocket")]
        );
        // Closing one makes room.
        frame(&mut s, "010000000400000001000000");
        assert_eq!(open(&mut s, 5, 0, 0, SCP), ChannelId(3));
        assert_eq!(s.channel_count(), 2);
        assert_eq!(ProxyLimits::default().max_channels, 1024);
    }

    #[test]
    fn the_unbound_reply_waits_for_the_socket_and_names_the_unbound_address() {
        let mut s = ProxySession::new(job(), Ipv4Addr::new(10, 11, 12, 13));
        assert_eq!(
            frame(&mut s, "0300000006000000"),
            [Output::OpenSocket {
                channel: ChannelId(1),
                remote: None
            }]
        );
        // Nothing until the socket is there.
        assert_eq!(drain(&mut s), []);
        // The driver bound 0.0.0.0:37430; the reply names the board-facing address.
        s.socket_opened(ChannelId(1), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0x9236));
        assert_eq!(drain(&mut s), [send("0300000006000000010000000a0b0c0d36920000")]);
        // A second report changes nothing.
        s.socket_opened(ChannelId(1), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 1));
        assert_eq!(drain(&mut s), []);
    }

    #[test]
    fn replies_follow_socket_reports_not_requests() {
        let mut s = ProxySession::new(job(), LOCAL);
        frame(&mut s, "00000000000000000000000000000000e5450000");
        frame(&mut s, "0300000001000000");
        // The second socket is ready first: its reply goes first (the client matches by corr).
        s.socket_opened(ChannelId(2), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0x9236));
        s.socket_opened(ChannelId(1), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5));
        assert_eq!(
            drain(&mut s),
            [
                send("0300000001000000020000007f00000136920000"),
                send("000000000000000001000000")
            ]
        );
    }

    #[test]
    fn a_socket_that_cannot_be_opened_is_an_error_reply() {
        let mut s = ProxySession::new(job(), LOCAL);
        frame(&mut s, "00000000040000000000000000000000e5450000");
        s.socket_failed(ChannelId(1), "Too many open files (os error 24)");
        assert_eq!(
            drain(&mut s),
            [error_frame(
                4,
                "cannot open a socket: Too many open files (os error 24)"
            )]
        );
        assert_eq!(s.channel_count(), 0);
        // A report for the channel after that: the driver's socket is closed again.
        s.socket_opened(ChannelId(1), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5));
        assert_eq!(drain(&mut s), [Output::CloseSocket { channel: ChannelId(1) }]);
        // Ids are not reused.
        assert_eq!(open(&mut s, 5, 0, 0, SCP), ChannelId(2));
    }

    #[test]
    fn a_socket_that_fails_later_closes_its_channel_only() {
        let mut s = ProxySession::new(job(), LOCAL);
        let a = open(&mut s, 0, 0, 0, SCP);
        let b = open(&mut s, 1, 0, 0, BOOT);
        s.socket_failed(a, "network unreachable");
        assert_eq!(drain(&mut s), [Output::CloseSocket { channel: a }]);
        assert_eq!(
            frame(&mut s, "0200000001000000ff"),
            [error_frame(UNSOLICITED_CORR, "MSG on channel 1, which is not open")]
        );
        assert!(matches!(
            frame(&mut s, "0200000002000000ff")[..],
            [Output::SendDatagram { channel, .. }] if channel == b
        ));
        // Unknown channels are ignored.
        s.socket_failed(ChannelId(99), "?");
        assert_eq!(drain(&mut s), []);
    }

    #[test]
    fn job_ended_closes_every_channel_and_the_websocket() {
        let mut s = ProxySession::new(three_boards(), LOCAL);
        let a = open(&mut s, 0, 0, 0, SCP);
        let b = open_unbound(&mut s, 1);
        frame(&mut s, "00000000020000000800000004000000e5450000"); // channel 3, still opening
        s.job_ended();
        assert_eq!(
            drain(&mut s),
            [
                Output::CloseSocket { channel: a },
                Output::CloseSocket { channel: b },
                Output::CloseSocket { channel: ChannelId(3) },
                Output::CloseWebsocket {
                    code: CloseCode::Normal,
                    reason: "job ended".into()
                },
            ]
        );
        assert_eq!(CloseCode::Normal.code(), 1000);
        assert!(s.is_closed());
        // Everything after is ignored; a late socket goes back.
        assert_eq!(s.handle_frame(&hex("0300000003000000")), Err(ProxyError::Closed));
        assert_eq!(
            s.handle_datagram(a, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), SCP), b"x"),
            Delivery::Closed
        );
        s.socket_opened(ChannelId(3), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5));
        assert_eq!(drain(&mut s), [Output::CloseSocket { channel: ChannelId(3) }]);
        s.job_ended();
        s.shutdown();
        s.websocket_closed();
        assert_eq!(drain(&mut s), []);
        assert_eq!(s.stats().channels_closed, 2);
    }

    #[test]
    fn shutdown_and_websocket_closed() {
        let mut s = ProxySession::new(job(), LOCAL);
        let a = open(&mut s, 0, 0, 0, SCP);
        s.shutdown();
        assert_eq!(
            drain(&mut s),
            [
                Output::CloseSocket { channel: a },
                Output::CloseWebsocket {
                    code: CloseCode::GoingAway,
                    reason: "server shutting down".into()
                }
            ]
        );
        assert_eq!(CloseCode::GoingAway.code(), 1001);
        assert_eq!(CloseCode::BadData.code(), 1007);

        let mut s = ProxySession::new(job(), LOCAL);
        let a = open(&mut s, 0, 0, 0, SCP);
        s.websocket_closed();
        assert_eq!(drain(&mut s), [Output::CloseSocket { channel: a }]);
    }

    #[test]
    fn close_reasons_fit_a_control_frame() {
        let mut s = ProxySession::new(job(), LOCAL);
        let _ = s.handle_frame(&hex("04000000ffffffffffffffffffffffff0100000000"));
        let out = drain(&mut s);
        assert_closed_with(&out, CloseCode::BadData);
        let long = "é".repeat(100);
        assert!(truncate_str(&long, MAX_CLOSE_REASON_LEN).len() <= MAX_CLOSE_REASON_LEN);
        assert!(truncate_str(&long, MAX_CLOSE_REASON_LEN).is_char_boundary(0));
    }

    #[test]
    fn stats_add_up() {
        let mut total = ProxyStats::default();
        let one = ProxyStats {
            frames_in: 1,
            frames_out: 2,
            datagrams_to_boards: 3,
            bytes_to_boards: 4,
            datagrams_from_boards: 5,
            bytes_from_boards: 6,
            datagrams_dropped: 7,
            refusals: 8,
            violations: 9,
            channels_opened: 10,
            channels_closed: 11,
        };
        total += one;
        total += one;
        assert_eq!(total.frames_in, 2);
        assert_eq!(total.channels_closed, 22);
        assert_eq!(total.bytes_from_boards, 12);
    }

    // ---- session properties ----

    #[derive(Debug, Clone)]
    enum Input {
        Frame(Vec<u8>),
        Opened(u32, u16),
        Failed(u32),
        Datagram(u32, [u8; 4], u16, Vec<u8>),
        JobEnded,
    }

    fn input() -> impl Strategy<Value = Input> {
        let port = prop_oneof![Just(SCP as u32), Just(0u32), Just(65536u32), any::<u32>()];
        let chip = prop_oneof![Just(0u32), Just(4), Just(8), any::<u32>()];
        let channel = prop_oneof![0u32..6, any::<u32>()];
        let payload = proptest::collection::vec(any::<u8>(), 0..24);
        let open = (any::<u32>(), chip.clone(), chip.clone(), port.clone())
            .prop_map(|(c, x, y, p)| [0u32, c, x, y, p].iter().flat_map(|w| w.to_le_bytes()).collect());
        let msg_to = (channel.clone(), chip.clone(), chip, port, payload.clone()).prop_map(|(ch, x, y, p, pl)| {
            let mut b: Vec<u8> = [4u32, ch, x, y, p].iter().flat_map(|w| w.to_le_bytes()).collect();
            b.extend(pl);
            b
        });
        let msg = (channel.clone(), payload.clone()).prop_map(|(ch, pl)| {
            let mut b: Vec<u8> = [2u32, ch].iter().flat_map(|w| w.to_le_bytes()).collect();
            b.extend(pl);
            b
        });
        let close = (any::<u32>(), channel.clone())
            .prop_map(|(c, ch)| [1u32, c, ch].iter().flat_map(|w| w.to_le_bytes()).collect());
        let unbound = any::<u32>().prop_map(|c| [3u32, c].iter().flat_map(|w| w.to_le_bytes()).collect());
        let ip = prop_oneof![
            Just([10, 0, 0, 1]),
            Just([10, 0, 0, 9]),
            Just([10, 0, 0, 25]),
            any::<[u8; 4]>()
        ];
        prop_oneof![
            8 => prop_oneof![open, unbound, close, msg, msg_to, framish()].prop_map(Input::Frame),
            4 => (channel.clone(), any::<u16>()).prop_map(|(ch, p)| Input::Opened(ch, p)),
            1 => channel.clone().prop_map(Input::Failed),
            4 => (channel, ip, prop_oneof![Just(SCP), any::<u16>()], payload)
                .prop_map(|(ch, ip, p, pl)| Input::Datagram(ch, ip, p, pl)),
            1 => Just(Input::JobEnded),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Whatever the client and the driver do: no panic, no channel 0, no datagram to a
        /// board outside the job, every frame out parses, at most `max_channels` channels, and
        /// nothing after the websocket closed.
        #[test]
        fn session_invariants(inputs in proptest::collection::vec(input(), 0..60)) {
            let boards = three_boards();
            let job_ips: BTreeSet<Ipv4Addr> = boards.values().copied().collect();
            let mut s = ProxySession::with_limits(boards, LOCAL, ProxyLimits { max_channels: 3 });
            let mut issued = BTreeSet::new();
            let mut ws_closed = false;
            for input in inputs {
                match input {
                    Input::Frame(b) => { let _ = s.handle_frame(&b); }
                    Input::Opened(ch, p) => s.socket_opened(ChannelId(ch), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, p)),
                    Input::Failed(ch) => s.socket_failed(ChannelId(ch), "no"),
                    Input::Datagram(ch, ip, p, pl) => {
                        let _ = s.handle_datagram(ChannelId(ch), SocketAddrV4::new(Ipv4Addr::from(ip), p), &pl);
                    }
                    Input::JobEnded => s.job_ended(),
                }
                prop_assert!(s.channel_count() <= 3);
                while let Some(o) = s.poll_output() {
                    match o {
                        Output::Send(bytes) => {
                            prop_assert!(!ws_closed);
                            prop_assert!(ServerFrame::parse_bytes(&bytes).is_ok(), "{:?}", bytes);
                        }
                        Output::OpenSocket { channel, remote } => {
                            prop_assert!(!ws_closed);
                            prop_assert_ne!(channel.0, 0);
                            prop_assert!(issued.insert(channel), "channel {} issued twice", channel);
                            if let Some(r) = remote { prop_assert!(job_ips.contains(r.ip())); }
                        }
                        Output::SendDatagram { to, channel, .. } => {
                            prop_assert!(!ws_closed);
                            prop_assert!(job_ips.contains(to.ip()));
                            prop_assert!(issued.contains(&channel));
                        }
                        Output::CloseSocket { .. } => {}
                        Output::CloseWebsocket { reason, .. } => {
                            prop_assert!(!ws_closed);
                            prop_assert!(reason.len() <= MAX_CLOSE_REASON_LEN);
                            ws_closed = true;
                        }
                    }
                }
            }
        }
    }
}
