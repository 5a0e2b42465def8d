//! SCP, the SpiNNaker Command Protocol: the commands a host sends to SCAMP, SARK and the BMP
//! inside SDP packets, and their replies (protocols.md §3).
//!
//! This is the protocol every spinnbed host-side state machine speaks (power, link control,
//! boot polling, memory access) and every emulated monitor answers, so it is written once here.
//!
//! Layers, from bytes up:
//! - [`Packet`]: a checked zero-copy view of an SCP message (4..=272 bytes): `cmd_rc` (u16 LE),
//!   `seq` (u16 LE), then, if present, `arg1..arg3` (u32 LE) and up to 256 data bytes. A reply
//!   may stop after `seq`, after any arg, or carry data straight after `seq` (READ, LINK_READ,
//!   IPTAG GET, BMP_INFO); the view allows all of these and the typed layers interpret.
//! - [`Repr`]: the generic request form (all three args present, then data), borrowing its data.
//!   A request shorter than 16 bytes is what SCAMP answers with RC_LEN:
//!   [`Packet::check_request_len`] / [`Repr::parse`] report it as [`Error::Truncated`], and
//!   [`ReturnCode::for_parse_error`] maps any parse error to the rc a monitor would send.
//! - [`Request`] / [`Reply`]: typed commands and replies, converting both ways to
//!   `(cmd, arg1, arg2, arg3, data)`.
//! - [`RequestMessage`] / [`ReplyMessage`]: a whole UDP payload (padding + SDP header + SCP).
//!
//! Helpers: [`AccessType`] selection and ≤256-byte chunking of memory transfers
//! ([`read_chunks`], [`write_chunks`]), and the spI/O FPGA registers reached through the BMP
//! ([`fpga`]).
//!
//! Nothing here allocates on the success path: parse + emit of a request into a reused buffer
//! is a handful of bounds checks and copies.

pub mod fpga;
mod reply;
mod request;

pub use reply::{
    BmpIpAddresses, BmpLocation, BmpSerial, BoardStatus, ChipInfo, CoreLocation, IpData, IptagRecord, IptagRecords,
    Reply, ReplyKind, TtoInfo, VersionReply,
};
pub use request::{
    AllocOp, BmpInfoKind, IptagConfig, IptagFlags, IptagRequest, LedAction, LedControl, Request, RouterOp, SignalKind,
};

use super::{Error, Result, sdp};
use core::fmt;

/// Shortest SCP message: `cmd_rc` + `seq` (an error reply).
pub const MIN_LEN: usize = 4;
/// Length of the full SCP header (`cmd_rc`, `seq`, `arg1..arg3`); the shortest request SCAMP
/// accepts.
pub const HEADER_LEN: usize = 16;
/// Most data bytes after the header (`SDP_BUF_SIZE`).
pub const MAX_DATA_LEN: usize = 256;
/// Longest SCP message (`16 + 256`).
pub const MAX_LEN: usize = HEADER_LEN + MAX_DATA_LEN;

/// Byte ranges of the SCP fields.
mod field {
    use core::ops::{Range, RangeFrom};
    pub const CMD_RC: Range<usize> = 0..2;
    pub const SEQ: Range<usize> = 2..4;
    pub const ARG1: usize = 4;
    pub const ARG2: usize = 8;
    pub const ARG3: usize = 12;
    pub const BODY: RangeFrom<usize> = 4..;
    pub const DATA: RangeFrom<usize> = 16..;
}

/// Reads a LE u32 at `at`, or `None` if the slice is too short.
#[inline]
pub(crate) fn get_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..)?.first_chunk::<4>().map(|c| u32::from_le_bytes(*c))
}

/// Sequential little-endian reader over a slice whose length was checked beforehand.
///
/// Reading past the end yields zeros instead of panicking; callers check lengths first.
#[derive(Debug)]
pub(crate) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    #[inline]
    pub(crate) fn new(b: &'a [u8]) -> Reader<'a> {
        Reader(b)
    }
    #[inline]
    pub(crate) fn bytes<const N: usize>(&mut self) -> [u8; N] {
        match self.0.split_first_chunk::<N>() {
            Some((head, rest)) => {
                self.0 = rest;
                *head
            }
            None => {
                self.0 = &[];
                [0; N]
            }
        }
    }
    #[inline]
    pub(crate) fn skip(&mut self, n: usize) {
        self.0 = self.0.get(n..).unwrap_or(&[]);
    }
    #[inline]
    pub(crate) fn u8(&mut self) -> u8 {
        let [b] = self.bytes::<1>();
        b
    }
    #[inline]
    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }
    #[inline]
    pub(crate) fn i16(&mut self) -> i16 {
        i16::from_le_bytes(self.bytes())
    }
    #[inline]
    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }
}

/// Sequential little-endian writer; panics if the buffer is too short (emit contract).
#[derive(Debug)]
pub(crate) struct Writer<'a>(&'a mut [u8]);

impl<'a> Writer<'a> {
    #[inline]
    pub(crate) fn new(b: &'a mut [u8]) -> Writer<'a> {
        Writer(b)
    }
    #[inline]
    pub(crate) fn put(&mut self, v: &[u8]) {
        let buf = core::mem::take(&mut self.0);
        let (head, rest) = buf.split_at_mut(v.len());
        head.copy_from_slice(v);
        self.0 = rest;
    }
    #[inline]
    pub(crate) fn zeros(&mut self, n: usize) {
        let buf = core::mem::take(&mut self.0);
        let (head, rest) = buf.split_at_mut(n);
        head.fill(0);
        self.0 = rest;
    }
    #[inline]
    pub(crate) fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    #[inline]
    pub(crate) fn u16(&mut self, v: u16) {
        self.put(&v.to_le_bytes());
    }
    #[inline]
    pub(crate) fn i16(&mut self, v: i16) {
        self.put(&v.to_le_bytes());
    }
    #[inline]
    pub(crate) fn u32(&mut self, v: u32) {
        self.put(&v.to_le_bytes());
    }
}

macro_rules! code_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal => $label:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A code without a name here, kept as is.
            Unknown(u16),
        }

        impl $name {
            /// The wire value.
            #[inline]
            pub const fn code(self) -> u16 {
                match self {
                    $( $name::$variant => $code, )*
                    $name::Unknown(code) => code,
                }
            }

            /// The value for a wire code (never fails: unnamed codes become `Unknown`).
            #[inline]
            pub const fn from_code(code: u16) -> $name {
                match code {
                    $( $code => $name::$variant, )*
                    other => $name::Unknown(other),
                }
            }

            /// The firmware's name for this code (`"?"` for unknown codes).
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $label, )*
                    $name::Unknown(_) => "?",
                }
            }
        }

        impl From<u16> for $name {
            fn from(code: u16) -> $name {
                $name::from_code(code)
            }
        }

        impl From<$name> for u16 {
            fn from(value: $name) -> u16 {
                value.code()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $name::Unknown(code) => write!(f, "{}({:#04x})", stringify!($name), code),
                    other => f.write_str(other.name()),
                }
            }
        }
    };
}

code_enum! {
    /// An SCP command code (protocols.md §3.2).
    ///
    /// Note that `Unknown(0)` is not `Ver`: build values with [`Command::from_code`] to get the
    /// canonical variant.
    pub enum Command {
        /// 0: version / "sver" (all kernels and the BMP).
        Ver = 0 => "CMD_VER",
        /// 1: run at PC (deprecated; BMP only).
        Run = 1 => "CMD_RUN",
        /// 2: read memory.
        Read = 2 => "CMD_READ",
        /// 3: write memory.
        Write = 3 => "CMD_WRITE",
        /// 4: run APLX (deprecated).
        Aplx = 4 => "CMD_APLX",
        /// 5: fill memory with a word.
        Fill = 5 => "CMD_FILL",
        /// 15: count cores in a state.
        Count = 15 => "CMD_COUNT",
        /// 16: mark a core as bad.
        Remap = 16 => "CMD_REMAP",
        /// 17: read over a chip link (SCAMP) or from an FPGA (BMP).
        LinkRead = 17 => "CMD_LINK_READ",
        /// 18: write over a chip link (SCAMP) or to an FPGA (BMP).
        LinkWrite = 18 => "CMD_LINK_WRITE",
        /// 19: application reset/run.
        Ar = 19 => "CMD_AR",
        /// 20: nearest-neighbour packet flood.
        Nnp = 20 => "CMD_NNP",
        /// 21: copy an application from a neighbour and run it.
        AppCopyRun = 21 => "CMD_APP_COPY_RUN",
        /// 22: send a signal to applications.
        Sig = 22 => "CMD_SIG",
        /// 23: flood-fill data.
        Ffd = 23 => "CMD_FFD",
        /// 24: application start.
        As = 24 => "CMD_AS",
        /// 25: LED control.
        Led = 25 => "CMD_LED",
        /// 26: IP tag control.
        Iptag = 26 => "CMD_IPTAG",
        /// 27: serial ROM access.
        Srom = 27 => "CMD_SROM",
        /// 28: memory / router-entry allocation.
        Alloc = 28 => "CMD_ALLOC",
        /// 29: router control.
        Rtr = 29 => "CMD_RTR",
        /// 30: reserved (spinnman: dropped-packet reinjection).
        Dpri = 30 => "CMD_DPRI",
        /// 31: chip information.
        Info = 31 => "CMD_INFO",
        /// 32: start/stop sync beacons.
        Sync = 32 => "CMD_SYNC",
        /// 48: BMP information.
        BmpInfo = 48 => "CMD_BMP_INFO",
        /// 49: BMP flash copy.
        FlashCopy = 49 => "CMD_FLASH_COPY",
        /// 50: BMP flash erase.
        FlashErase = 50 => "CMD_FLASH_ERASE",
        /// 51: BMP flash write.
        FlashWrite = 51 => "CMD_FLASH_WRITE",
        /// 53: BMP serial flash access.
        BmpSf = 53 => "CMD_BMP_SF",
        /// 54: BMP EEPROM access.
        BmpEe = 54 => "CMD_BMP_EE",
        /// 55: BMP board reset.
        Reset = 55 => "CMD_RESET",
        /// 56: BMP FPGA load/init/reset.
        Xilinx = 56 => "CMD_XILINX",
        /// 57: BMP board power.
        Power = 57 => "CMD_POWER",
        /// 61: BMP I2C access.
        BmpI2c = 61 => "CMD_BMP_I2C",
        /// 62: BMP fan PWM configuration.
        BmpPwm = 62 => "CMD_BMP_PWM",
        /// 64: tubotron text output (board → host only).
        Tube = 64 => "CMD_TUBE",
    }
}

code_enum! {
    /// An SCP return code (protocols.md §3.3).
    pub enum ReturnCode {
        /// 0x80: success.
        Ok = 0x80 => "RC_OK",
        /// 0x81: bad packet length (also: request shorter than 24 SDP bytes).
        Len = 0x81 => "RC_LEN",
        /// 0x82: bad checksum.
        Sum = 0x82 => "RC_SUM",
        /// 0x83: bad or unknown command.
        Cmd = 0x83 => "RC_CMD",
        /// 0x84: invalid argument.
        Arg = 0x84 => "RC_ARG",
        /// 0x85: bad SDP port.
        Port = 0x85 => "RC_PORT",
        /// 0x86: timeout (monitor ↔ core, or link peek/poke).
        Timeout = 0x86 => "RC_TIMEOUT",
        /// 0x87: no P2P route.
        Route = 0x87 => "RC_ROUTE",
        /// 0x88: bad core number.
        Cpu = 0x88 => "RC_CPU",
        /// 0x89: core is dead.
        Dead = 0x89 => "RC_DEAD",
        /// 0x8A: no free shared-memory buffers.
        Buf = 0x8A => "RC_BUF",
        /// 0x8B: no reply to P2P open.
        P2pNoReply = 0x8B => "RC_P2P_NOREPLY",
        /// 0x8C: P2P open rejected.
        P2pReject = 0x8C => "RC_P2P_REJECT",
        /// 0x8D: destination busy.
        P2pBusy = 0x8D => "RC_P2P_BUSY",
        /// 0x8E: Ethernet chip ↔ destination timeout.
        P2pTimeout = 0x8E => "RC_P2P_TIMEOUT",
        /// 0x8F: packet transmission failed.
        PktTx = 0x8F => "RC_PKT_TX",
    }
}

impl ReturnCode {
    /// True for [`ReturnCode::Ok`].
    pub const fn is_ok(self) -> bool {
        matches!(self, ReturnCode::Ok)
    }

    /// True for the codes spinnman answers by waiting 0.1 s and resending (§8.1).
    pub const fn is_retried_by_spinnman(self) -> bool {
        matches!(
            self,
            ReturnCode::Timeout
                | ReturnCode::P2pTimeout
                | ReturnCode::Len
                | ReturnCode::P2pNoReply
                | ReturnCode::P2pBusy
        )
    }

    /// True for the codes rig treats as a lost packet (resent after its timeout, §8.2).
    pub const fn is_lost_for_rig(self) -> bool {
        matches!(self, ReturnCode::Sum | ReturnCode::P2pBusy)
    }

    /// The return code a monitor answers a request with when parsing it failed:
    /// length problems give RC_LEN, bad arguments RC_ARG.
    pub const fn for_parse_error(error: &Error) -> ReturnCode {
        match error {
            Error::Truncated { .. } | Error::TooLong { .. } => ReturnCode::Len,
            Error::BadField { .. } => ReturnCode::Arg,
        }
    }
}

/// A checked zero-copy view of an SCP message (the data of an SDP packet to port 0).
///
/// [`Packet::new_checked`] accepts 4..=272 bytes: replies may be as short as `rc` + `seq`.
/// `cmd_rc` and `seq` are then always readable; the args are `Option`s because a reply may stop
/// early. Accessors on a packet made with [`Packet::new_unchecked`] panic on a buffer shorter
/// than [`MIN_LEN`]; setters panic if the buffer is too short for the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer, checking that it is `MIN_LEN..=MAX_LEN` bytes long.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer is `MIN_LEN..=MAX_LEN` bytes long.
    pub fn check_len(&self) -> Result<()> {
        let got = self.buffer.as_ref().len();
        if got < MIN_LEN {
            Err(Error::Truncated {
                what: "SCP message",
                need: MIN_LEN,
                got,
            })
        } else if got > MAX_LEN {
            Err(Error::TooLong {
                what: "SCP message",
                max: MAX_LEN,
                got,
            })
        } else {
            Ok(())
        }
    }

    /// Checks that the message is long enough to be a request (all three args present).
    ///
    /// SCAMP, SARK and the BMP answer shorter requests with RC_LEN; the error returned here is
    /// [`Error::Truncated`] with `what = "SCP request"`, which
    /// [`ReturnCode::for_parse_error`] maps to [`ReturnCode::Len`].
    pub fn check_request_len(&self) -> Result<()> {
        let got = self.buffer.as_ref().len();
        if got < HEADER_LEN {
            Err(Error::Truncated {
                what: "SCP request",
                need: HEADER_LEN,
                got,
            })
        } else {
            Ok(())
        }
    }

    /// True if the message is too short to be a request (SCAMP would answer RC_LEN).
    pub fn is_short_request(&self) -> bool {
        self.buffer.as_ref().len() < HEADER_LEN
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Length of the whole SCP message.
    pub fn packet_len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    /// The raw command (request) or return code (reply).
    pub fn cmd_rc(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::CMD_RC];
        u16::from_le_bytes([b[0], b[1]])
    }

    /// `cmd_rc` read as a command.
    pub fn command(&self) -> Command {
        Command::from_code(self.cmd_rc())
    }

    /// `cmd_rc` read as a return code.
    pub fn return_code(&self) -> ReturnCode {
        ReturnCode::from_code(self.cmd_rc())
    }

    /// The sequence number.
    pub fn seq(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::SEQ];
        u16::from_le_bytes([b[0], b[1]])
    }

    /// `arg1`, if the message is long enough to hold it.
    pub fn arg1(&self) -> Option<u32> {
        get_u32(self.buffer.as_ref(), field::ARG1)
    }

    /// `arg2`, if the message is long enough to hold it.
    pub fn arg2(&self) -> Option<u32> {
        get_u32(self.buffer.as_ref(), field::ARG2)
    }

    /// `arg3`, if the message is long enough to hold it.
    pub fn arg3(&self) -> Option<u32> {
        get_u32(self.buffer.as_ref(), field::ARG3)
    }

    /// Number of bytes after `seq`.
    pub fn body_len(&self) -> usize {
        self.buffer.as_ref().len().saturating_sub(MIN_LEN)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Everything after `seq`: args and data, or raw reply data.
    pub fn body(&self) -> &'a [u8] {
        self.buffer.as_ref().get(field::BODY).unwrap_or(&[])
    }

    /// The data after `arg3` (empty if the message is shorter than the full header).
    pub fn data(&self) -> &'a [u8] {
        self.buffer.as_ref().get(field::DATA).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets `cmd_rc`.
    pub fn set_cmd_rc(&mut self, value: u16) {
        self.buffer.as_mut()[field::CMD_RC].copy_from_slice(&value.to_le_bytes());
    }

    /// Sets `cmd_rc` to a command.
    pub fn set_command(&mut self, command: Command) {
        self.set_cmd_rc(command.code());
    }

    /// Sets `cmd_rc` to a return code.
    pub fn set_return_code(&mut self, rc: ReturnCode) {
        self.set_cmd_rc(rc.code());
    }

    /// Sets `seq`.
    pub fn set_seq(&mut self, value: u16) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&value.to_le_bytes());
    }

    /// Sets `arg1`.
    pub fn set_arg1(&mut self, value: u32) {
        self.buffer.as_mut()[field::ARG1..field::ARG1 + 4].copy_from_slice(&value.to_le_bytes());
    }

    /// Sets `arg2`.
    pub fn set_arg2(&mut self, value: u32) {
        self.buffer.as_mut()[field::ARG2..field::ARG2 + 4].copy_from_slice(&value.to_le_bytes());
    }

    /// Sets `arg3`.
    pub fn set_arg3(&mut self, value: u32) {
        self.buffer.as_mut()[field::ARG3..field::ARG3 + 4].copy_from_slice(&value.to_le_bytes());
    }

    /// Everything after `seq`, mutably.
    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::BODY]
    }

    /// The data after `arg3`, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A generic SCP message in request form: code, sequence number, the three args, data.
///
/// This is the common ground of every typed [`Request`] (see [`Request::from_repr`] and
/// [`Request::to_repr`]), and also describes a reply that carries all three args.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr<'a> {
    /// Command (request) or return code (reply).
    pub cmd_rc: u16,
    /// Sequence number.
    pub seq: u16,
    /// First argument.
    pub arg1: u32,
    /// Second argument.
    pub arg2: u32,
    /// Third argument.
    pub arg3: u32,
    /// Data after the args (at most [`MAX_DATA_LEN`] bytes).
    pub data: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Parses a message holding all three args. Messages shorter than [`HEADER_LEN`] fail with
    /// [`Error::Truncated`] (`what = "SCP request"`): SCAMP's RC_LEN case.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        packet.check_request_len()?;
        let b = packet.buffer.as_ref();
        let mut r = Reader::new(b);
        let cmd_rc = r.u16();
        let seq = r.u16();
        let arg1 = r.u32();
        let arg2 = r.u32();
        let arg3 = r.u32();
        Ok(Repr {
            cmd_rc,
            seq,
            arg1,
            arg2,
            arg3,
            data: packet.data(),
        })
    }

    /// `cmd_rc` as a command.
    pub const fn command(&self) -> Command {
        Command::from_code(self.cmd_rc)
    }

    /// Bytes this message occupies.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.data.len()
    }

    /// Writes the message. Panics if the buffer is shorter than [`Repr::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        let mut w = Writer::new(packet.buffer.as_mut());
        w.u16(self.cmd_rc);
        w.u16(self.seq);
        w.u32(self.arg1);
        w.u32(self.arg2);
        w.u32(self.arg3);
        w.put(self.data);
    }
}

/// How SARK moves data for a READ or WRITE: byte, halfword or word at a time (arg3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AccessType {
    /// 0: byte accesses.
    Byte = 0,
    /// 1: halfword accesses.
    Halfword = 1,
    /// 2: word accesses.
    Word = 2,
}

impl AccessType {
    /// The access type both clients choose for a transfer: word only if the address and the
    /// length are multiples of 4, halfword if both are even, otherwise byte.
    #[inline]
    pub const fn for_transfer(addr: u32, len: usize) -> AccessType {
        if addr.is_multiple_of(4) && len.is_multiple_of(4) {
            AccessType::Word
        } else if addr.is_multiple_of(2) && len.is_multiple_of(2) {
            AccessType::Halfword
        } else {
            AccessType::Byte
        }
    }

    /// The access type for a wire value (0, 1, 2), or `None` (SCAMP answers RC_ARG).
    #[inline]
    pub const fn from_u32(value: u32) -> Option<AccessType> {
        match value {
            0 => Some(AccessType::Byte),
            1 => Some(AccessType::Halfword),
            2 => Some(AccessType::Word),
            _ => None,
        }
    }

    /// The wire value.
    #[inline]
    pub const fn to_u32(self) -> u32 {
        self as u32
    }

    /// Bytes per access.
    pub const fn size(self) -> usize {
        match self {
            AccessType::Byte => 1,
            AccessType::Halfword => 2,
            AccessType::Word => 4,
        }
    }
}

/// One READ of a chunked transfer (see [`read_chunks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReadChunk {
    /// First address.
    pub addr: u32,
    /// Byte count (1..=chunk size).
    pub len: u32,
    /// Access type chosen for this chunk.
    pub access: AccessType,
}

impl ReadChunk {
    /// The READ request for this chunk.
    pub const fn request(&self) -> Request<'static> {
        Request::Read {
            addr: self.addr,
            len: self.len,
            access: self.access,
        }
    }
}

/// Iterator splitting a read of `len` bytes at `addr` into chunks (see [`read_chunks`]).
#[derive(Debug, Clone)]
pub struct ReadChunks {
    addr: u32,
    remaining: usize,
    chunk: usize,
}

impl ReadChunks {
    /// Chunks of at most `chunk_size` bytes (clamped to 1..=256; rig uses the buffer size that
    /// CMD_VER reports, spinnman always 256).
    #[inline]
    pub fn new(addr: u32, len: usize, chunk_size: usize) -> ReadChunks {
        ReadChunks {
            addr,
            remaining: len,
            chunk: chunk_size.clamp(1, MAX_DATA_LEN),
        }
    }
}

impl Iterator for ReadChunks {
    type Item = ReadChunk;

    fn next(&mut self) -> Option<ReadChunk> {
        if self.remaining == 0 {
            return None;
        }
        let n = self.remaining.min(self.chunk);
        let chunk = ReadChunk {
            addr: self.addr,
            len: n as u32,
            access: AccessType::for_transfer(self.addr, n),
        };
        self.remaining -= n;
        self.addr = self.addr.wrapping_add(n as u32);
        Some(chunk)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining.div_ceil(self.chunk);
        (n, Some(n))
    }
}

impl ExactSizeIterator for ReadChunks {}

/// Splits a read of `len` bytes at `addr` into ≤256-byte READs, each with its own access type
/// (addresses wrap at 2³²).
pub fn read_chunks(addr: u32, len: usize) -> ReadChunks {
    ReadChunks::new(addr, len, MAX_DATA_LEN)
}

/// One WRITE of a chunked transfer (see [`write_chunks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriteChunk<'a> {
    /// First address.
    pub addr: u32,
    /// The bytes of this chunk.
    pub data: &'a [u8],
    /// Access type chosen for this chunk.
    pub access: AccessType,
}

impl<'a> WriteChunk<'a> {
    /// The WRITE request for this chunk.
    pub const fn request(&self) -> Request<'a> {
        Request::Write {
            addr: self.addr,
            access: self.access,
            data: self.data,
        }
    }
}

/// Iterator splitting a write of `data` at `addr` into chunks (see [`write_chunks`]).
#[derive(Debug, Clone)]
pub struct WriteChunks<'a> {
    addr: u32,
    data: &'a [u8],
    chunk: usize,
}

impl<'a> WriteChunks<'a> {
    /// Chunks of at most `chunk_size` bytes (clamped to 1..=256).
    #[inline]
    pub fn new(addr: u32, data: &'a [u8], chunk_size: usize) -> WriteChunks<'a> {
        WriteChunks {
            addr,
            data,
            chunk: chunk_size.clamp(1, MAX_DATA_LEN),
        }
    }
}

impl<'a> Iterator for WriteChunks<'a> {
    type Item = WriteChunk<'a>;

    fn next(&mut self) -> Option<WriteChunk<'a>> {
        if self.data.is_empty() {
            return None;
        }
        let (head, rest) = self.data.split_at(self.data.len().min(self.chunk));
        let chunk = WriteChunk {
            addr: self.addr,
            data: head,
            access: AccessType::for_transfer(self.addr, head.len()),
        };
        self.data = rest;
        self.addr = self.addr.wrapping_add(head.len() as u32);
        Some(chunk)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.data.len().div_ceil(self.chunk);
        (n, Some(n))
    }
}

impl ExactSizeIterator for WriteChunks<'_> {}

/// Splits a write of `data` at `addr` into ≤256-byte WRITEs, each with its own access type.
pub fn write_chunks(addr: u32, data: &[u8]) -> WriteChunks<'_> {
    WriteChunks::new(addr, data, MAX_DATA_LEN)
}

/// A whole request datagram: the SDP header, the SCP sequence number and the typed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestMessage<'a> {
    /// SDP header.
    pub sdp: sdp::Repr,
    /// SCP sequence number.
    pub seq: u16,
    /// The command.
    pub request: Request<'a>,
}

impl<'a> RequestMessage<'a> {
    /// Parses a UDP payload (2 padding bytes, SDP header, SCP request).
    #[inline]
    pub fn parse_udp(payload: &'a [u8]) -> Result<RequestMessage<'a>> {
        let sdp_packet = sdp::parse_udp(payload)?;
        let sdp = sdp::Repr::parse(&sdp_packet)?;
        let scp = Packet::new_checked(sdp_packet.data())?;
        let request = Request::parse(&scp)?;
        Ok(RequestMessage {
            sdp,
            seq: scp.seq(),
            request,
        })
    }

    /// Length of the UDP payload this message needs.
    #[inline]
    pub fn udp_len(&self) -> usize {
        sdp::udp_payload_len(sdp::HEADER_LEN + self.request.buffer_len())
    }

    /// Writes the UDP payload into `buf`; returns its length.
    ///
    /// Fails with [`Error::TooLong`] if the request's data exceeds 256 bytes and with
    /// [`Error::Truncated`] if `buf` is too small.
    #[inline]
    pub fn emit_udp(&self, buf: &mut [u8]) -> Result<usize> {
        let scp_len = self.request.buffer_len();
        emit_frame(&self.sdp, scp_len, buf, |scp| self.request.emit(self.seq, scp))
    }
}

/// A whole reply datagram: the SDP header, the SCP sequence number and the typed reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyMessage<'a> {
    /// SDP header.
    pub sdp: sdp::Repr,
    /// SCP sequence number (echoed from the request).
    pub seq: u16,
    /// The reply.
    pub reply: Reply<'a>,
}

impl<'a> ReplyMessage<'a> {
    /// Parses a UDP payload as the reply to a request whose replies look like `kind`
    /// (see [`Request::reply_kind`]).
    #[inline]
    pub fn parse_udp(payload: &'a [u8], kind: ReplyKind) -> Result<ReplyMessage<'a>> {
        let sdp_packet = sdp::parse_udp(payload)?;
        let sdp = sdp::Repr::parse(&sdp_packet)?;
        let scp = Packet::new_checked(sdp_packet.data())?;
        let reply = Reply::parse(&scp, kind)?;
        Ok(ReplyMessage {
            sdp,
            seq: scp.seq(),
            reply,
        })
    }

    /// Length of the UDP payload this message needs.
    #[inline]
    pub fn udp_len(&self) -> usize {
        sdp::udp_payload_len(sdp::HEADER_LEN + self.reply.buffer_len())
    }

    /// Writes the UDP payload into `buf`; returns its length.
    #[inline]
    pub fn emit_udp(&self, buf: &mut [u8]) -> Result<usize> {
        let scp_len = self.reply.buffer_len();
        emit_frame(&self.sdp, scp_len, buf, |scp| self.reply.emit(self.seq, scp))
    }
}

/// Writes padding and SDP header, then lets `emit` fill the `scp_len` SCP bytes.
#[inline]
fn emit_frame(
    header: &sdp::Repr,
    scp_len: usize,
    buf: &mut [u8],
    emit: impl FnOnce(&mut Packet<&mut [u8]>),
) -> Result<usize> {
    if scp_len > MAX_LEN {
        return Err(Error::TooLong {
            what: "SCP message",
            max: MAX_LEN,
            got: scp_len,
        });
    }
    let len = sdp::udp_payload_len(sdp::HEADER_LEN + scp_len);
    let got = buf.len();
    let out = buf.get_mut(..len).ok_or(Error::Truncated {
        what: "UDP output buffer",
        need: len,
        got,
    })?;
    let mut frame = sdp::UdpFrame::new_unchecked(out);
    frame.clear_padding();
    let mut sdp_packet = frame.sdp_mut();
    header.emit(&mut sdp_packet);
    let mut scp = Packet::new_unchecked(sdp_packet.data_mut());
    emit(&mut scp);
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::sdp::tests::hex;
    use proptest::prelude::*;

    #[test]
    fn command_codes() {
        let all = [
            (0, Command::Ver),
            (1, Command::Run),
            (2, Command::Read),
            (3, Command::Write),
            (4, Command::Aplx),
            (5, Command::Fill),
            (15, Command::Count),
            (16, Command::Remap),
            (17, Command::LinkRead),
            (18, Command::LinkWrite),
            (19, Command::Ar),
            (20, Command::Nnp),
            (21, Command::AppCopyRun),
            (22, Command::Sig),
            (23, Command::Ffd),
            (24, Command::As),
            (25, Command::Led),
            (26, Command::Iptag),
            (27, Command::Srom),
            (28, Command::Alloc),
            (29, Command::Rtr),
            (30, Command::Dpri),
            (31, Command::Info),
            (32, Command::Sync),
            (48, Command::BmpInfo),
            (49, Command::FlashCopy),
            (50, Command::FlashErase),
            (51, Command::FlashWrite),
            (53, Command::BmpSf),
            (54, Command::BmpEe),
            (55, Command::Reset),
            (56, Command::Xilinx),
            (57, Command::Power),
            (61, Command::BmpI2c),
            (62, Command::BmpPwm),
            (64, Command::Tube),
        ];
        for (code, cmd) in all {
            assert_eq!(Command::from(code), cmd);
            assert_eq!(u16::from(cmd), code);
        }
        assert_eq!(Command::from(52), Command::Unknown(52));
        assert_eq!(Command::from(0xFFFF).code(), 0xFFFF);
        assert_eq!(Command::Iptag.to_string(), "CMD_IPTAG");
        assert_eq!(Command::Unknown(7).to_string(), "Command(0x07)");
    }

    #[test]
    fn return_codes() {
        for code in 0x80..=0x8Fu16 {
            let rc = ReturnCode::from(code);
            assert!(!matches!(rc, ReturnCode::Unknown(_)), "{code:#x}");
            assert_eq!(u16::from(rc), code);
        }
        assert_eq!(ReturnCode::from(0x81), ReturnCode::Len);
        assert_eq!(ReturnCode::from(0x8B), ReturnCode::P2pNoReply);
        assert_eq!(ReturnCode::from(0x90), ReturnCode::Unknown(0x90));
        assert_eq!(ReturnCode::from(0), ReturnCode::Unknown(0));
        assert!(ReturnCode::Ok.is_ok());
        assert!(ReturnCode::Len.is_retried_by_spinnman());
        assert!(!ReturnCode::Arg.is_retried_by_spinnman());
        assert!(ReturnCode::Sum.is_lost_for_rig());
        assert_eq!(ReturnCode::P2pBusy.name(), "RC_P2P_BUSY");
    }

    #[test]
    fn short_request_is_rc_len() {
        // A VER request with the args left out (12 SCP bytes): SCAMP answers RC_LEN.
        let b = hex("000000000000000000000000");
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.is_short_request());
        let err = Repr::parse(&p).unwrap_err();
        assert_eq!(
            err,
            Error::Truncated {
                what: "SCP request",
                need: 16,
                got: 12
            }
        );
        assert_eq!(ReturnCode::for_parse_error(&err), ReturnCode::Len);
        assert_eq!(p.arg1(), Some(0));
        assert_eq!(p.arg3(), None);
        // Below rc+seq even the view refuses.
        assert!(matches!(
            Packet::new_checked(&b[..3]),
            Err(Error::Truncated { need: 4, .. })
        ));
        assert!(matches!(
            Packet::new_checked(&[0u8; 273][..]),
            Err(Error::TooLong { max: 272, .. })
        ));
    }

    #[test]
    fn reply_views() {
        // Write reply: rc + seq only (§2 rig write, seq 1).
        let w = hex("80000100");
        let p = Packet::new_checked(&w[..]).unwrap();
        assert_eq!(p.return_code(), ReturnCode::Ok);
        assert_eq!(p.seq(), 1);
        assert_eq!((p.arg1(), p.body(), p.data()), (None, &[][..], &[][..]));
        // TTO reply: rc + seq + arg1.
        let t = hex("8000040009200808");
        let p = Packet::new_checked(&t[..]).unwrap();
        assert_eq!(p.arg1(), Some(0x0808_2009));
        assert_eq!(p.arg2(), None);
        assert_eq!(p.body_len(), 4);
    }

    #[test]
    fn access_type_selection() {
        assert_eq!(AccessType::for_transfer(0x7000_0000, 256), AccessType::Word);
        assert_eq!(AccessType::for_transfer(0x7000_0002, 256), AccessType::Halfword);
        assert_eq!(AccessType::for_transfer(0x7000_0000, 2), AccessType::Halfword);
        assert_eq!(AccessType::for_transfer(0x7000_0001, 256), AccessType::Byte);
        assert_eq!(AccessType::for_transfer(0x7000_0000, 3), AccessType::Byte);
        assert_eq!(AccessType::from_u32(3), None);
        assert_eq!(AccessType::Word.size(), 4);
    }

    #[test]
    fn chunking_matches_clients() {
        // rig: 300 bytes at 0x70000002 -> (…02, 256, half), (…0102, 44, half) (§2).
        let c: Vec<_> = read_chunks(0x7000_0002, 300).collect();
        assert_eq!(
            c,
            [
                ReadChunk {
                    addr: 0x7000_0002,
                    len: 256,
                    access: AccessType::Halfword
                },
                ReadChunk {
                    addr: 0x7000_0102,
                    len: 44,
                    access: AccessType::Halfword
                },
            ]
        );
        // spinnman: 600 bytes at 0x70000001 -> 256, 256, 88 bytes, all byte access.
        let data: Vec<u8> = (0..600u32).map(|i| (3 + 7 * i) as u8).collect();
        let w: Vec<_> = write_chunks(0x7000_0001, &data).collect();
        assert_eq!(w.len(), 3);
        assert_eq!(write_chunks(0x7000_0001, &data).len(), 3);
        assert_eq!(
            (w[0].addr, w[0].data.len(), w[0].access),
            (0x7000_0001, 256, AccessType::Byte)
        );
        assert_eq!((w[1].addr, w[1].data.len()), (0x7000_0101, 256));
        assert_eq!((w[2].addr, w[2].data.len()), (0x7000_0201, 88));
        assert_eq!(w[2].data[0], 3);
        // Aligned remainder gets its own (word) type even after an odd start... and wrap-around.
        let c: Vec<_> = ReadChunks::new(0xFFFF_FFFE, 6, 2).collect();
        assert_eq!(c.iter().map(|c| c.addr).collect::<Vec<_>>(), [0xFFFF_FFFE, 0, 2]);
        assert_eq!(read_chunks(0, 0).count(), 0);
        assert_eq!(ReadChunks::new(0, 10, 0).count(), 10);
    }

    proptest! {
        #[test]
        fn generic_round_trip(cmd_rc in any::<u16>(), seq in any::<u16>(), a1 in any::<u32>(),
                              a2 in any::<u32>(), a3 in any::<u32>(),
                              data in proptest::collection::vec(any::<u8>(), 0..=MAX_DATA_LEN)) {
            let repr = Repr { cmd_rc, seq, arg1: a1, arg2: a2, arg3: a3, data: &data };
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
            let packet = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&packet).unwrap(), repr);
            prop_assert_eq!((packet.arg1(), packet.arg2(), packet.arg3()), (Some(a1), Some(a2), Some(a3)));
        }

        #[test]
        fn chunks_cover_exactly(addr in any::<u32>(), len in 0usize..2000) {
            let mut next = addr;
            let mut total = 0usize;
            for c in read_chunks(addr, len) {
                prop_assert_eq!(c.addr, next);
                prop_assert!(c.len >= 1 && c.len <= 256);
                prop_assert_eq!(c.access, AccessType::for_transfer(c.addr, c.len as usize));
                next = next.wrapping_add(c.len);
                total += c.len as usize;
            }
            prop_assert_eq!(total, len);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.cmd_rc(), p.seq(), p.arg1(), p.arg2(), p.arg3(), p.body(), p.data());
                let _ = (p.command(), p.return_code(), p.is_short_request());
            }
            let _ = Repr::parse(&Packet::new_unchecked(&bytes[..]));
            let _ = RequestMessage::parse_udp(&bytes);
            for kind in ReplyKind::ALL {
                let _ = ReplyMessage::parse_udp(&bytes, kind);
            }
        }
    }
}
