//! Typed SCP requests: what each command's `(arg1, arg2, arg3, data)` mean (protocols.md §3).
//!
//! Host-side code builds [`Request`]s instead of packing bits by hand, and an emulated monitor
//! parses them instead of unpacking bits by hand; both go through the same two functions
//! ([`Request::to_parts`] and [`Request::from_parts`]), so they cannot disagree.
//!
//! Parsing rejects exactly the arguments the firmware answers with RC_ARG (as
//! [`Error::BadField`]; see [`super::ReturnCode::for_parse_error`]). Arguments a command ignores
//! are ignored here too and emitted as zero, except where a real client is known to send
//! something else (CMD_INFO's arg1), which is kept. Commands without a typed form are kept
//! whole in [`Request::Other`].

use super::{AccessType, Command, MAX_DATA_LEN, Packet, ReplyKind, Repr, get_u32};
use crate::proto::sdp::Address;
use crate::proto::{Error, Result};
use core::net::Ipv4Addr;

/// Builds a [`Error::BadField`] (only ever called on the error path).
fn bad(what: &'static str, field: &'static str, detail: impl core::fmt::Display) -> Error {
    Error::BadField {
        what,
        field,
        detail: detail.to_string(),
    }
}

/// Checks a transfer length against the 256-byte buffer.
#[inline]
fn transfer_len(what: &'static str, len: u32) -> Result<u32> {
    if len as usize > MAX_DATA_LEN {
        Err(bad(what, "arg2 (length)", format_args!("{len} > {MAX_DATA_LEN}")))
    } else {
        Ok(len)
    }
}

/// Takes the first `len` data bytes of a write (the firmware ignores any extra bytes).
#[inline]
fn write_data<'a>(what: &'static str, len: u32, data: &'a [u8]) -> Result<&'a [u8]> {
    let len = transfer_len(what, len)?;
    data.get(..len as usize).ok_or_else(|| {
        bad(
            what,
            "arg2 (length)",
            format_args!("{len} but only {} data bytes", data.len()),
        )
    })
}

/// A value that must fit in a byte.
#[inline]
fn byte(what: &'static str, field: &'static str, value: u32) -> Result<u8> {
    u8::try_from(value).map_err(|_| bad(what, field, format_args!("{value} > 255")))
}

/// A link number (SCAMP 0..=5; the BMP's FPGA numbers 0..=2 fit too).
#[inline]
fn link_number(what: &'static str, value: u32) -> Result<u8> {
    if value > 5 {
        Err(bad(what, "arg3 (link/FPGA)", format_args!("{value} > 5")))
    } else {
        Ok(value as u8)
    }
}

/// What to do to one LED in a CMD_LED request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum LedAction {
    /// 0: leave it alone.
    Keep = 0,
    /// 1: toggle.
    Toggle = 1,
    /// 2: switch off.
    Off = 2,
    /// 3: switch on.
    On = 3,
}

/// CMD_LED arg1: two bits per LED, LED n at bits 2n+1..2n (16 LEDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LedControl(pub u32);

impl LedControl {
    /// Leaves every LED alone.
    pub const NONE: LedControl = LedControl(0);

    /// `self` with LED `led` (0..=15; others are ignored) set to `action`.
    pub const fn with(self, led: u8, action: LedAction) -> LedControl {
        if led >= 16 {
            return self;
        }
        let shift = 2 * led as u32;
        LedControl((self.0 & !(3 << shift)) | ((action as u32) << shift))
    }

    /// The action for LED `led` (0..=15; others read as [`LedAction::Keep`]).
    pub const fn get(self, led: u8) -> LedAction {
        if led >= 16 {
            return LedAction::Keep;
        }
        match (self.0 >> (2 * led as u32)) & 3 {
            0 => LedAction::Keep,
            1 => LedAction::Toggle,
            2 => LedAction::Off,
            _ => LedAction::On,
        }
    }
}

/// How CMD_SIG distributes a signal (arg1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum SignalKind {
    /// 0: multicast (only accepted at the root chip).
    Multicast = 0,
    /// 1: point-to-point region query (rejected with RC_ARG by SC&MP 4.0.0).
    PointToPoint = 1,
    /// 2: nearest-neighbour flood.
    NearestNeighbour = 2,
}

impl SignalKind {
    /// The kind for a wire value, or `None` (RC_ARG).
    pub const fn from_u32(value: u32) -> Option<SignalKind> {
        match value {
            0 => Some(SignalKind::Multicast),
            1 => Some(SignalKind::PointToPoint),
            2 => Some(SignalKind::NearestNeighbour),
            _ => None,
        }
    }
}

/// IP tag flags, in the layout of `iptag_t.flags` (a request carries bits 11..8 as the nibble
/// at arg1 bits 31..28).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct IptagFlags(pub u16);

impl IptagFlags {
    /// The tag is in use.
    pub const VALID: IptagFlags = IptagFlags(0x8000);
    /// A transient (reply) tag.
    pub const TRANSIENT: IptagFlags = IptagFlags(0x4000);
    /// Waiting for an ARP answer.
    pub const ARP: IptagFlags = IptagFlags(0x2000);
    /// Use the requester's IP and port (request arg1 bit 30).
    pub const USE_SENDER: IptagFlags = IptagFlags(0x0400);
    /// A reverse tag: UDP in, SDP out (request arg1 bit 29).
    pub const REVERSE: IptagFlags = IptagFlags(0x0200);
    /// Strip the padding and SDP header from outgoing packets (request arg1 bit 28).
    pub const STRIP: IptagFlags = IptagFlags(0x0100);

    /// The raw value.
    pub const fn bits(self) -> u16 {
        self.0
    }
    /// True if every bit of `other` is set.
    pub const fn contains(self, other: IptagFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// `self` with the bits of `other` set.
    pub const fn with(self, other: IptagFlags) -> IptagFlags {
        IptagFlags(self.0 | other.0)
    }
    /// Flags from a request's arg1 nibble (bits 31..28).
    pub const fn from_request_nibble(nibble: u8) -> IptagFlags {
        IptagFlags(((nibble & 0xF) as u16) << 8)
    }
    /// The nibble a request carries in arg1 bits 31..28 (bits 11..8 of these flags).
    pub const fn request_nibble(self) -> u8 {
        ((self.0 >> 8) & 0xF) as u8
    }
}

impl core::ops::BitOr for IptagFlags {
    type Output = IptagFlags;
    fn bitor(self, rhs: IptagFlags) -> IptagFlags {
        self.with(rhs)
    }
}

/// What an IPTAG NEW or SET request configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IptagConfig {
    /// arg3: IPv4 address; 0.0.0.0 = the requester's address.
    pub ip: Ipv4Addr,
    /// arg2 bits 15..0: host UDP port for ordinary tags, the board's receive port for reverse
    /// tags.
    pub port: u16,
    /// arg1 bits 31..28 as `iptag_t` flags (only STRIP / REVERSE / USE_SENDER and bit 11).
    pub flags: IptagFlags,
    /// arg1 bits 27..24: timeout code t (lifetime 10 ms · 2^(t−1); 0 = none), 0..=15.
    pub timeout: u8,
    /// Reverse tags: the SDP target; chip from arg2 bits 31..16, port/cpu from arg1 bits 15..8.
    pub target: Address,
}

impl IptagConfig {
    /// An ordinary tag sending to `ip:port`.
    pub const fn forward(ip: Ipv4Addr, port: u16) -> IptagConfig {
        IptagConfig {
            ip,
            port,
            flags: IptagFlags(0),
            timeout: 0,
            target: Address::new(0, 0, 0, 0),
        }
    }

    #[inline]
    fn from_args(arg1: u32, arg2: u32, arg3: u32) -> IptagConfig {
        IptagConfig {
            ip: Ipv4Addr::from(arg3.to_le_bytes()),
            port: arg2 as u16,
            flags: IptagFlags::from_request_nibble((arg1 >> 28) as u8),
            timeout: ((arg1 >> 24) & 0xF) as u8,
            target: Address::from_port_cpu((arg2 >> 24) as u8, (arg2 >> 16) as u8, (arg1 >> 8) as u8),
        }
    }

    #[inline]
    fn args(self, op: u32, tag: u8) -> (u32, u32, u32) {
        let arg1 = ((self.flags.request_nibble() as u32) << 28)
            | (((self.timeout & 0xF) as u32) << 24)
            | (op << 16)
            | ((self.target.port_cpu() as u32) << 8)
            | tag as u32;
        let arg2 = ((self.target.p2p() as u32) << 16) | self.port as u32;
        (arg1, arg2, u32::from_le_bytes(self.ip.octets()))
    }
}

/// CMD_IPTAG sub-commands (protocols.md §3.6). Tags must be below 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IptagRequest {
    /// 0: allocate a tag and configure it; reply arg1 = the tag (or 255).
    New(IptagConfig),
    /// 1: configure tag `tag`; reply arg1 = the tag.
    Set {
        /// Tag number 0..=15.
        tag: u8,
        /// Configuration.
        config: IptagConfig,
    },
    /// 2: read `count` consecutive `iptag_t` records from `tag` (count ≤ 8).
    Get {
        /// First tag 0..=15.
        tag: u8,
        /// Number of records (×32 bytes ≤ 256).
        count: u32,
    },
    /// 3: clear tag `tag`.
    Clear {
        /// Tag number 0..=15.
        tag: u8,
    },
    /// 4: set the transient-tag timeout code (applied if < 16); reply has the previous one.
    Tto {
        /// New timeout code; 16 or more only queries (spinnman sends 0xFF).
        timeout: u32,
    },
}

impl IptagRequest {
    const WHAT: &'static str = "CMD_IPTAG";

    #[inline]
    fn from_args(arg1: u32, arg2: u32, arg3: u32) -> Result<IptagRequest> {
        let tag = (arg1 & 0xFF) as u8;
        if tag >= 16 {
            return Err(bad(Self::WHAT, "arg1 bits 7..0 (tag)", format_args!("{tag} >= 16")));
        }
        Ok(match (arg1 >> 16) & 0xFF {
            0 => IptagRequest::New(IptagConfig::from_args(arg1, arg2, arg3)),
            1 => IptagRequest::Set {
                tag,
                config: IptagConfig::from_args(arg1, arg2, arg3),
            },
            2 => {
                if arg2 > 8 {
                    return Err(bad(
                        Self::WHAT,
                        "arg2 (count)",
                        format_args!("{arg2} records > 256 bytes"),
                    ));
                }
                IptagRequest::Get { tag, count: arg2 }
            }
            3 => IptagRequest::Clear { tag },
            4 => IptagRequest::Tto { timeout: arg2 },
            op => {
                return Err(bad(
                    Self::WHAT,
                    "arg1 bits 23..16 (sub-command)",
                    format_args!("{op} > 4"),
                ));
            }
        })
    }

    #[inline]
    fn args(self) -> (u32, u32, u32) {
        match self {
            IptagRequest::New(config) => config.args(0, 0),
            IptagRequest::Set { tag, config } => config.args(1, tag),
            IptagRequest::Get { tag, count } => ((2 << 16) | tag as u32, count, 0),
            IptagRequest::Clear { tag } => ((3 << 16) | tag as u32, 0, 0),
            IptagRequest::Tto { timeout } => (4 << 16, timeout, 0),
        }
    }
}

/// CMD_ALLOC operations (arg1 bits 7..0; protocols.md §3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AllocOp {
    /// 0: allocate `size` bytes of SDRAM with heap tag `tag` (0 = none); reply arg1 = pointer.
    AllocSdram {
        /// Bytes.
        size: u32,
        /// Heap tag.
        tag: u32,
    },
    /// 1: free the SDRAM block at `ptr`.
    FreeSdram {
        /// Block address.
        ptr: u32,
    },
    /// 2: free all SDRAM of the app id; reply arg1 = blocks freed.
    FreeSdramByApp,
    /// 3: allocate `count` router entries; reply arg1 = first entry (0 = failure).
    AllocRouter {
        /// Number of entries.
        count: u32,
    },
    /// 4: free the router entry block at `entry`.
    FreeRouter {
        /// First entry.
        entry: u32,
        /// Non-zero: clear the entries too.
        clear: u32,
    },
    /// 5: free all router entries of the app id; reply arg1 = count.
    FreeRouterByApp {
        /// Non-zero: clear the entries too.
        clear: u32,
    },
    /// 6: report SDRAM space; reply arg1 free bytes, arg2 largest block.
    SdramSpace,
    /// 7: pointer of the block with heap tag `tag` of the app id; reply arg1 = pointer.
    HeapTagPointer {
        /// Heap tag (SCAMP uses the low 8 bits).
        tag: u32,
    },
}

impl AllocOp {
    #[inline]
    fn from_args(op: u32, arg2: u32, arg3: u32) -> Result<AllocOp> {
        Ok(match op {
            0 => AllocOp::AllocSdram { size: arg2, tag: arg3 },
            1 => AllocOp::FreeSdram { ptr: arg2 },
            2 => AllocOp::FreeSdramByApp,
            3 => AllocOp::AllocRouter { count: arg2 },
            4 => AllocOp::FreeRouter {
                entry: arg2,
                clear: arg3,
            },
            5 => AllocOp::FreeRouterByApp { clear: arg2 },
            6 => AllocOp::SdramSpace,
            7 => AllocOp::HeapTagPointer { tag: arg2 },
            op => {
                return Err(bad("CMD_ALLOC", "arg1 bits 7..0 (op)", format_args!("{op} > 7")));
            }
        })
    }

    /// (op, arg2, arg3).
    #[inline]
    fn args(self) -> (u32, u32, u32) {
        match self {
            AllocOp::AllocSdram { size, tag } => (0, size, tag),
            AllocOp::FreeSdram { ptr } => (1, ptr, 0),
            AllocOp::FreeSdramByApp => (2, 0, 0),
            AllocOp::AllocRouter { count } => (3, count, 0),
            AllocOp::FreeRouter { entry, clear } => (4, entry, clear),
            AllocOp::FreeRouterByApp { clear } => (5, clear, 0),
            AllocOp::SdramSpace => (6, 0, 0),
            AllocOp::HeapTagPointer { tag } => (7, tag, 0),
        }
    }

    /// What the reply to this operation carries.
    pub const fn reply_kind(&self) -> ReplyKind {
        match self {
            AllocOp::FreeSdram { .. } | AllocOp::FreeRouter { .. } => ReplyKind::Empty,
            AllocOp::SdramSpace => ReplyKind::SdramSpace,
            _ => ReplyKind::Alloc,
        }
    }
}

/// CMD_RTR operations (arg1 bits 7..0; protocols.md §3.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouterOp {
    /// 0: (re)initialise the multicast table.
    Init,
    /// 1: clear `count` entries from `start`.
    Clear {
        /// First entry (arg2).
        start: u32,
        /// Entries (arg1 bits 31..16).
        count: u16,
    },
    /// 2: load `count` 16-byte entries from memory at `addr` into the table at entry `base`.
    Load {
        /// Address of the entry records (arg2).
        addr: u32,
        /// Entries (arg1 bits 31..16).
        count: u16,
        /// First table entry (arg3).
        base: u32,
    },
    /// 3: fixed-route register. SCAMP reads it (reply arg1) if bit 31 of `value` is set and
    /// writes `value` to it otherwise.
    FixedRoute {
        /// arg2.
        value: u32,
    },
}

impl RouterOp {
    /// Bit 31 of arg2 in a fixed-route request: read instead of write.
    pub const FIXED_ROUTE_READ: u32 = 0x8000_0000;

    /// The fixed-route read request (arg2 = 0x80000000).
    pub const fn fixed_route_read() -> RouterOp {
        RouterOp::FixedRoute {
            value: Self::FIXED_ROUTE_READ,
        }
    }

    /// True for a fixed-route request that reads the register.
    pub const fn is_fixed_route_read(&self) -> bool {
        match *self {
            RouterOp::FixedRoute { value } => value & Self::FIXED_ROUTE_READ != 0,
            _ => false,
        }
    }
}

/// CMD_BMP_INFO arg1: which block of information the BMP returns (protocols.md §3.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum BmpInfoKind {
    /// 0: hardware version, serial number, addresses (32 bytes).
    Serial,
    /// 1: EEPROM data block (256 bytes).
    Eeprom,
    /// 2: CAN status, one byte per CAN id (24 bytes).
    CanStatus,
    /// 3: board status / ADC (48 bytes).
    BoardStatus,
    /// 4: BMP and SpiNNaker IP settings (64 bytes).
    IpAddresses,
    /// 5: uninitialised vectors (32 bytes).
    UninitVectors,
    /// Anything else (the BMP answers RC_ARG).
    Other(u32),
}

impl BmpInfoKind {
    /// The kind for a wire value (unknown values are kept).
    pub const fn from_u32(value: u32) -> BmpInfoKind {
        match value {
            0 => BmpInfoKind::Serial,
            1 => BmpInfoKind::Eeprom,
            2 => BmpInfoKind::CanStatus,
            3 => BmpInfoKind::BoardStatus,
            4 => BmpInfoKind::IpAddresses,
            5 => BmpInfoKind::UninitVectors,
            other => BmpInfoKind::Other(other),
        }
    }

    /// The wire value.
    pub const fn to_u32(self) -> u32 {
        match self {
            BmpInfoKind::Serial => 0,
            BmpInfoKind::Eeprom => 1,
            BmpInfoKind::CanStatus => 2,
            BmpInfoKind::BoardStatus => 3,
            BmpInfoKind::IpAddresses => 4,
            BmpInfoKind::UninitVectors => 5,
            BmpInfoKind::Other(v) => v,
        }
    }
}

/// A typed SCP request.
///
/// Board and BMP forms share variants: the target core or board is in the SDP header, and for
/// the BMP the LINK_READ/LINK_WRITE `link` is an FPGA number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Request<'a> {
    /// CMD_VER (0): version query; args are ignored and sent as zero.
    Version,
    /// CMD_READ (2): read `len` (≤ 256) bytes at `addr`.
    Read {
        /// arg1: first address.
        addr: u32,
        /// arg2: byte count, 0..=256.
        len: u32,
        /// arg3: access type.
        access: AccessType,
    },
    /// CMD_WRITE (3): write `data` (≤ 256 bytes, arg2 = its length) at `addr`.
    Write {
        /// arg1: first address.
        addr: u32,
        /// arg3: access type.
        access: AccessType,
        /// The bytes to write.
        data: &'a [u8],
    },
    /// CMD_FILL (5): fill `len` bytes at word-aligned `addr` with the word `value`.
    Fill {
        /// arg1: first address.
        addr: u32,
        /// arg2: the word.
        value: u32,
        /// arg3: byte count (a multiple of 4).
        len: u32,
    },
    /// CMD_COUNT (15): count the board's cores of `app_id` in `state`; reply arg1 = count.
    Count {
        /// arg1: application id.
        app_id: u8,
        /// arg2: `cpu_state` value.
        state: u8,
    },
    /// CMD_LINK_READ (17): read `len` bytes at `addr` over a link (SCAMP) / from an FPGA (BMP).
    LinkRead {
        /// arg1: first address (word aligned).
        addr: u32,
        /// arg2: byte count, 0..=256 (words are moved).
        len: u32,
        /// arg3: link 0..=5 (SCAMP) or FPGA 0..=2 (BMP).
        link: u8,
    },
    /// CMD_LINK_WRITE (18): write `data` at `addr` over a link / to an FPGA.
    LinkWrite {
        /// arg1: first address (word aligned).
        addr: u32,
        /// arg3: link 0..=5 (SCAMP) or FPGA 0..=2 (BMP).
        link: u8,
        /// The bytes to write (arg2 = length).
        data: &'a [u8],
    },
    /// CMD_AR (19): start the APLX at `sv->sdram_sys` on `cores` with `app_id`.
    ApplicationRun {
        /// arg1 bits 31..24.
        app_id: u8,
        /// arg1 bits 23..18 ([`Request::AR_WAIT`] = bit 18).
        flags: u8,
        /// arg1 bits 17..0: virtual cores; bit 0 (the monitor) is refused.
        cores: u32,
    },
    /// CMD_SIG (22): send a signal.
    Signal {
        /// arg1: distribution.
        kind: SignalKind,
        /// arg2: signal data.
        data: u32,
        /// arg3: core / region mask.
        cores: u32,
    },
    /// CMD_LED (25): LED control; BMPs also take a board mask (SCAMP: `boards` = 0).
    Led {
        /// arg1.
        leds: LedControl,
        /// arg2: board mask (BMP only).
        boards: u32,
    },
    /// CMD_IPTAG (26).
    Iptag(IptagRequest),
    /// CMD_ALLOC (28): arg1 = flags << 16 | app_id << 8 | op.
    Alloc {
        /// arg1 bits 15..8.
        app_id: u8,
        /// arg1 bits 23..16 ("extra flags"; 4 = retry tag).
        flags: u8,
        /// Operation and its args.
        op: AllocOp,
    },
    /// CMD_RTR (29): arg1 = count << 16 | app_id << 8 | op.
    Router {
        /// arg1 bits 15..8.
        app_id: u8,
        /// Operation and its args.
        op: RouterOp,
    },
    /// CMD_INFO (31): no args are used, but spinnman sends arg1 = 0x5F or 0x7F (kept).
    Info {
        /// arg1 as sent.
        arg1: u32,
    },
    /// CMD_BMP_INFO (48).
    BmpInfo(BmpInfoKind),
    /// CMD_RESET (55): reset boards.
    Reset {
        /// arg1 bits 31..16: delay in ms, multiplied by each board's id.
        delay_ms: u16,
        /// arg1 bits 7..0: reset code (`code & 0xFB` ≤ 2).
        code: u8,
        /// arg2: board mask.
        boards: u32,
    },
    /// CMD_POWER (57): switch boards on or off.
    Power {
        /// arg1 bits 7..0: 1 on, 0 off.
        on: bool,
        /// arg1 bits 31..16: delay in ms, multiplied by each board's id.
        delay_ms: u16,
        /// arg2: board mask.
        boards: u32,
    },
    /// Any command without a typed form, kept whole.
    Other {
        /// The command (never one that has a typed variant, when parsed).
        command: Command,
        /// arg1.
        arg1: u32,
        /// arg2.
        arg2: u32,
        /// arg3.
        arg3: u32,
        /// data.
        data: &'a [u8],
    },
}

impl<'a> Request<'a> {
    /// CMD_AR flag: wait for a signal before running (arg1 bit 18).
    pub const AR_WAIT: u8 = 0x01;
    /// CMD_AR core-mask bits (arg1 bits 17..0).
    pub const AR_CORE_MASK: u32 = 0x0003_FFFF;

    /// A READ choosing the access type as the clients do.
    pub const fn read(addr: u32, len: u32) -> Request<'static> {
        Request::Read {
            addr,
            len,
            access: AccessType::for_transfer(addr, len as usize),
        }
    }

    /// A WRITE choosing the access type as the clients do.
    pub const fn write(addr: u32, data: &'a [u8]) -> Request<'a> {
        Request::Write {
            addr,
            access: AccessType::for_transfer(addr, data.len()),
            data,
        }
    }

    /// Reads one 32-bit FPGA register through the BMP (CMD_LINK_READ, arg2 = 4, arg3 = FPGA).
    pub const fn fpga_read(fpga: u8, addr: u32) -> Request<'static> {
        Request::LinkRead {
            addr,
            len: 4,
            link: fpga,
        }
    }

    /// Writes one 32-bit FPGA register (`value` in LE byte order, e.g. `v.to_le_bytes()`).
    pub const fn fpga_write(fpga: u8, addr: u32, value: &'a [u8; 4]) -> Request<'a> {
        Request::LinkWrite {
            addr,
            link: fpga,
            data: value,
        }
    }

    /// The command code.
    #[inline]
    pub const fn command(&self) -> Command {
        match self {
            Request::Version => Command::Ver,
            Request::Read { .. } => Command::Read,
            Request::Write { .. } => Command::Write,
            Request::Fill { .. } => Command::Fill,
            Request::Count { .. } => Command::Count,
            Request::LinkRead { .. } => Command::LinkRead,
            Request::LinkWrite { .. } => Command::LinkWrite,
            Request::ApplicationRun { .. } => Command::Ar,
            Request::Signal { .. } => Command::Sig,
            Request::Led { .. } => Command::Led,
            Request::Iptag(_) => Command::Iptag,
            Request::Alloc { .. } => Command::Alloc,
            Request::Router { .. } => Command::Rtr,
            Request::Info { .. } => Command::Info,
            Request::BmpInfo(_) => Command::BmpInfo,
            Request::Reset { .. } => Command::Reset,
            Request::Power { .. } => Command::Power,
            Request::Other { command, .. } => *command,
        }
    }

    /// Interprets `(cmd, arg1, arg2, arg3, data)`, rejecting what the firmware answers with
    /// RC_ARG as [`Error::BadField`].
    #[inline]
    pub fn from_parts(command: Command, arg1: u32, arg2: u32, arg3: u32, data: &'a [u8]) -> Result<Request<'a>> {
        let command = Command::from_code(command.code());
        let what = command.name();
        Ok(match command {
            Command::Ver => Request::Version,
            Command::Read => Request::Read {
                addr: arg1,
                len: transfer_len(what, arg2)?,
                access: access_type(what, arg3)?,
            },
            Command::Write => Request::Write {
                addr: arg1,
                access: access_type(what, arg3)?,
                data: write_data(what, arg2, data)?,
            },
            Command::Fill => Request::Fill {
                addr: arg1,
                value: arg2,
                len: arg3,
            },
            Command::Count => Request::Count {
                app_id: byte(what, "arg1 (app_id)", arg1)?,
                state: byte(what, "arg2 (state)", arg2)?,
            },
            Command::LinkRead => Request::LinkRead {
                addr: arg1,
                len: transfer_len(what, arg2)?,
                link: link_number(what, arg3)?,
            },
            Command::LinkWrite => Request::LinkWrite {
                addr: arg1,
                link: link_number(what, arg3)?,
                data: write_data(what, arg2, data)?,
            },
            Command::Ar => {
                if arg1 & 1 != 0 {
                    return Err(bad(what, "arg1 bit 0 (core mask)", "the monitor core cannot be run"));
                }
                Request::ApplicationRun {
                    app_id: (arg1 >> 24) as u8,
                    flags: ((arg1 >> 18) & 0x3F) as u8,
                    cores: arg1 & Self::AR_CORE_MASK,
                }
            }
            Command::Sig => Request::Signal {
                kind: SignalKind::from_u32(arg1).ok_or_else(|| bad(what, "arg1 (type)", format_args!("{arg1} > 2")))?,
                data: arg2,
                cores: arg3,
            },
            Command::Led => Request::Led {
                leds: LedControl(arg1),
                boards: arg2,
            },
            Command::Iptag => Request::Iptag(IptagRequest::from_args(arg1, arg2, arg3)?),
            Command::Alloc => Request::Alloc {
                app_id: (arg1 >> 8) as u8,
                flags: (arg1 >> 16) as u8,
                op: AllocOp::from_args(arg1 & 0xFF, arg2, arg3)?,
            },
            Command::Rtr => {
                let count = (arg1 >> 16) as u16;
                let op = match arg1 & 0xFF {
                    0 => RouterOp::Init,
                    1 => RouterOp::Clear { start: arg2, count },
                    2 => RouterOp::Load {
                        addr: arg2,
                        count,
                        base: arg3,
                    },
                    3 => RouterOp::FixedRoute { value: arg2 },
                    op => return Err(bad(what, "arg1 bits 7..0 (op)", format_args!("{op} > 3"))),
                };
                Request::Router {
                    app_id: (arg1 >> 8) as u8,
                    op,
                }
            }
            Command::Info => Request::Info { arg1 },
            Command::BmpInfo => Request::BmpInfo(BmpInfoKind::from_u32(arg1)),
            Command::Reset => {
                let code = arg1 & 0xFF;
                if code & 0xFB > 2 {
                    return Err(bad(what, "arg1 bits 7..0 (code)", format_args!("{code:#x} & 0xfb > 2")));
                }
                Request::Reset {
                    delay_ms: (arg1 >> 16) as u16,
                    code: code as u8,
                    boards: arg2,
                }
            }
            Command::Power => {
                let state = arg1 & 0xFF;
                if state > 1 {
                    return Err(bad(what, "arg1 bits 7..0 (state)", format_args!("{state} > 1")));
                }
                Request::Power {
                    on: state == 1,
                    delay_ms: (arg1 >> 16) as u16,
                    boards: arg2,
                }
            }
            command => Request::Other {
                command,
                arg1,
                arg2,
                arg3,
                data,
            },
        })
    }

    /// `(cmd, arg1, arg2, arg3, data)` of this request.
    #[inline]
    pub fn to_parts(&self) -> (Command, u32, u32, u32, &'a [u8]) {
        let none: &'a [u8] = &[];
        let cmd = self.command();
        match *self {
            Request::Version => (cmd, 0, 0, 0, none),
            Request::Read { addr, len, access } => (cmd, addr, len, access.to_u32(), none),
            Request::Write { addr, access, data } => (cmd, addr, data.len() as u32, access.to_u32(), data),
            Request::Fill { addr, value, len } => (cmd, addr, value, len, none),
            Request::Count { app_id, state } => (cmd, app_id as u32, state as u32, 0, none),
            Request::LinkRead { addr, len, link } => (cmd, addr, len, link as u32, none),
            Request::LinkWrite { addr, link, data } => (cmd, addr, data.len() as u32, link as u32, data),
            Request::ApplicationRun { app_id, flags, cores } => {
                let arg1 = ((app_id as u32) << 24) | (((flags & 0x3F) as u32) << 18) | (cores & Self::AR_CORE_MASK);
                (cmd, arg1, 0, 0, none)
            }
            Request::Signal { kind, data, cores } => (cmd, kind as u32, data, cores, none),
            Request::Led { leds, boards } => (cmd, leds.0, boards, 0, none),
            Request::Iptag(req) => {
                let (a1, a2, a3) = req.args();
                (cmd, a1, a2, a3, none)
            }
            Request::Alloc { app_id, flags, op } => {
                let (code, a2, a3) = op.args();
                (
                    cmd,
                    ((flags as u32) << 16) | ((app_id as u32) << 8) | code,
                    a2,
                    a3,
                    none,
                )
            }
            Request::Router { app_id, op } => {
                let (code, count, a2, a3) = match op {
                    RouterOp::Init => (0, 0, 0, 0),
                    RouterOp::Clear { start, count } => (1, count, start, 0),
                    RouterOp::Load { addr, count, base } => (2, count, addr, base),
                    RouterOp::FixedRoute { value } => (3, 0, value, 0),
                };
                (
                    cmd,
                    ((count as u32) << 16) | ((app_id as u32) << 8) | code,
                    a2,
                    a3,
                    none,
                )
            }
            Request::Info { arg1 } => (cmd, arg1, 0, 0, none),
            Request::BmpInfo(kind) => (cmd, kind.to_u32(), 0, 0, none),
            Request::Reset { delay_ms, code, boards } => {
                (cmd, ((delay_ms as u32) << 16) | code as u32, boards, 0, none)
            }
            Request::Power { on, delay_ms, boards } => (cmd, ((delay_ms as u32) << 16) | on as u32, boards, 0, none),
            Request::Other {
                arg1, arg2, arg3, data, ..
            } => (cmd, arg1, arg2, arg3, data),
        }
    }

    /// Interprets a generic message (see [`Request::from_parts`]).
    #[inline]
    pub fn from_repr(repr: &Repr<'a>) -> Result<Request<'a>> {
        Request::from_parts(repr.command(), repr.arg1, repr.arg2, repr.arg3, repr.data)
    }

    /// This request as a generic message with sequence number `seq`.
    #[inline]
    pub fn to_repr(&self, seq: u16) -> Repr<'a> {
        let (cmd, arg1, arg2, arg3, data) = self.to_parts();
        Repr {
            cmd_rc: cmd.code(),
            seq,
            arg1,
            arg2,
            arg3,
            data,
        }
    }

    /// Parses a request (the sequence number is `packet.seq()`).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Request<'a>> {
        packet.check_len()?;
        packet.check_request_len()?;
        // Read the args straight from the buffer (cheaper than building a `Repr` first).
        let b = packet.as_ref();
        let arg = |at| get_u32(b, at).unwrap_or(0);
        Request::from_parts(packet.command(), arg(4), arg(8), arg(12), packet.data())
    }

    /// Bytes of SCP this request occupies (16 + data).
    #[inline]
    pub fn buffer_len(&self) -> usize {
        super::HEADER_LEN + self.data().len()
    }

    /// The data bytes this request carries (WRITE, LINK_WRITE, other commands).
    #[inline]
    pub const fn data(&self) -> &'a [u8] {
        match *self {
            Request::Write { data, .. } | Request::LinkWrite { data, .. } | Request::Other { data, .. } => data,
            _ => &[],
        }
    }

    /// Writes the request with sequence number `seq`. Panics if the buffer is shorter than
    /// [`Request::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, seq: u16, packet: &mut Packet<&mut T>) {
        self.to_repr(seq).emit(packet);
    }

    /// What a successful reply to this request carries.
    pub const fn reply_kind(&self) -> ReplyKind {
        match self {
            Request::Version => ReplyKind::Version,
            Request::Read { .. } | Request::LinkRead { .. } => ReplyKind::Data,
            Request::Count { .. } => ReplyKind::Count,
            Request::Iptag(IptagRequest::New(_) | IptagRequest::Set { .. }) => ReplyKind::IptagTag,
            Request::Iptag(IptagRequest::Get { .. }) => ReplyKind::IptagRecords,
            Request::Iptag(IptagRequest::Tto { .. }) => ReplyKind::IptagTto,
            Request::Alloc { op, .. } => op.reply_kind(),
            Request::Router { op, .. } if op.is_fixed_route_read() => ReplyKind::FixedRoute,
            Request::Info { .. } => ReplyKind::Info,
            Request::BmpInfo(kind) => match kind {
                BmpInfoKind::Serial => ReplyKind::BmpSerial,
                BmpInfoKind::CanStatus => ReplyKind::BmpCanStatus,
                BmpInfoKind::BoardStatus => ReplyKind::BmpBoardStatus,
                BmpInfoKind::IpAddresses => ReplyKind::BmpIpAddresses,
                BmpInfoKind::Eeprom | BmpInfoKind::UninitVectors => ReplyKind::Data,
                BmpInfoKind::Other(_) => ReplyKind::Raw,
            },
            Request::Other { .. }
            | Request::Signal {
                kind: SignalKind::PointToPoint,
                ..
            } => ReplyKind::Raw,
            Request::Write { .. }
            | Request::Fill { .. }
            | Request::LinkWrite { .. }
            | Request::ApplicationRun { .. }
            | Request::Signal { .. }
            | Request::Led { .. }
            | Request::Iptag(IptagRequest::Clear { .. })
            | Request::Router { .. }
            | Request::Reset { .. }
            | Request::Power { .. } => ReplyKind::Empty,
        }
    }
}

/// Access type from arg3.
#[inline]
fn access_type(what: &'static str, arg3: u32) -> Result<AccessType> {
    AccessType::from_u32(arg3).ok_or_else(|| bad(what, "arg3 (access type)", format_args!("{arg3} > 2")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::scp::{HEADER_LEN, RequestMessage};
    use crate::proto::sdp::tests::hex;
    use crate::proto::sdp::{self, Address, Flags};
    use proptest::prelude::*;

    /// Parses a capture, checks the typed request, re-emits it and compares the bytes.
    fn check(capture: &str, header: sdp::Repr, seq: u16, expected: Request<'_>) {
        let bytes = hex(capture);
        let msg = RequestMessage::parse_udp(&bytes).unwrap_or_else(|e| panic!("{capture}: {e}"));
        assert_eq!(msg.sdp, header, "{capture}");
        assert_eq!(msg.seq, seq, "{capture}");
        assert_eq!(msg.request, expected, "{capture}");
        let mut out = [0u8; sdp::MAX_UDP_PAYLOAD_LEN];
        let n = RequestMessage {
            sdp: header,
            seq,
            request: expected,
        }
        .emit_udp(&mut out)
        .unwrap();
        assert_eq!(hex_of(&out[..n]), capture);
        assert_eq!(n, msg.udp_len());
    }

    fn hex_of(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// rig's header: dest (x, y, cpu), source chip (0, 0).
    fn rig(x: u8, y: u8, cpu: u8) -> sdp::Repr {
        sdp::Repr::request(Address::scp(x, y, cpu))
    }

    /// spinnman's header: dest (x, y, cpu), source chip (255, 255).
    fn sm(x: u8, y: u8, cpu: u8) -> sdp::Repr {
        sdp::Repr {
            src: Address::new(255, 255, 7, 31),
            ..rig(x, y, cpu)
        }
    }

    /// rig's SDRAM test pattern: byte i of the transfer is 3 + 7i (mod 256).
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (3 + 7 * i) as u8).collect()
    }

    // ---- §1 sver ----

    #[test]
    fn capture_rig_sver() {
        check(
            "000087ff00ffffff000000000000000000000000000000000000",
            rig(255, 255, 0),
            0,
            Request::Version,
        );
        // Boot polling (§3), seq 4.
        check(
            "000087ff00ffffff000000000400000000000000000000000000",
            rig(255, 255, 0),
            4,
            Request::Version,
        );
    }

    #[test]
    fn capture_spinnman_sver() {
        check(
            "000087ff00ffffffffff00000000000000000000000000000000",
            sm(255, 255, 0),
            0,
            Request::Version,
        );
        check(
            "000087ff00ffffffffff00003412000000000000000000000000",
            sm(255, 255, 0),
            0x1234,
            Request::Version,
        );
    }

    #[test]
    fn capture_bmp_sver() {
        // rig / spinnman to a BMP: dest (0,0) board 0, source chip (0,0).
        check(
            "000087ff00ff0000000000000000000000000000000000000000",
            rig(0, 0, 0),
            0,
            Request::Version,
        );
        check(
            "000087ff01ff0000000000003412000000000000000000000000",
            rig(0, 0, 1),
            0x1234,
            Request::Version,
        );
    }

    // ---- §2 SDRAM write + read ----

    #[test]
    fn capture_rig_write_word_full() {
        // 282-byte write reconstructed from the visible prefix and rig's pattern.
        let data = pattern(256);
        let prefix = "000087ff00ff0000000003000100000000700001000002000000030a11181f262d343b424950575e656c737a81888f969da4abb2b9c0c7ced5dce3eaf1f8ff060d141b222930373e454c535a61686f767d848b9299a0a7aeb5bcc3cad1d8dfe6edf4fb02";
        let full = format!("{}{}", &prefix[..52], hex_of(&data));
        assert!(full.starts_with(prefix));
        assert_eq!(full.len(), 2 * 282);
        let req = Request::Write {
            addr: 0x7000_0000,
            access: AccessType::Word,
            data: &data,
        };
        check(&full, rig(0, 0, 0), 1, req);
        assert_eq!(Request::write(0x7000_0000, &data), req);
    }

    #[test]
    fn capture_rig_write_halfword() {
        let data = pattern(300);
        let prefix = "000087ff00ff0000000003000100020000700001000001000000030a11181f262d343b424950575e656c737a81888f969da4abb2b9c0c7ced5dce3eaf1f8ff060d141b222930";
        let full = format!("{}{}", &prefix[..52], hex_of(&data[..256]));
        assert!(full.starts_with(prefix));
        check(
            &full,
            rig(0, 0, 0),
            1,
            Request::Write {
                addr: 0x7000_0002,
                access: AccessType::Halfword,
                data: &data[..256],
            },
        );
        // The second chunk is shown complete.
        check(
            "000087ff00ff0000000003000200020100702c00000001000000030a11181f262d343b424950575e656c737a81888f969da4abb2b9c0c7ced5dce3eaf1f8ff060d141b222930",
            rig(0, 0, 0),
            2,
            Request::Write {
                addr: 0x7000_0102,
                access: AccessType::Halfword,
                data: &data[256..],
            },
        );
        // Chunking produces exactly these two requests.
        let chunks: Vec<_> = crate::proto::scp::write_chunks(0x7000_0002, &data)
            .map(|c| c.request())
            .collect();
        assert_eq!(
            chunks,
            [
                Request::Write {
                    addr: 0x7000_0002,
                    access: AccessType::Halfword,
                    data: &data[..256]
                },
                Request::Write {
                    addr: 0x7000_0102,
                    access: AccessType::Halfword,
                    data: &data[256..]
                },
            ]
        );
    }

    #[test]
    fn capture_rig_reads() {
        check(
            "000087ff00ff0000000002000300020000700001000001000000",
            rig(0, 0, 0),
            3,
            Request::Read {
                addr: 0x7000_0002,
                len: 256,
                access: AccessType::Halfword,
            },
        );
        check(
            "000087ff00ff0000000002000400020100702c00000001000000",
            rig(0, 0, 0),
            4,
            Request::Read {
                addr: 0x7000_0102,
                len: 44,
                access: AccessType::Halfword,
            },
        );
    }

    #[test]
    fn capture_spinnman_write_bytes() {
        let data = pattern(600);
        let c1 = format!(
            "000087ff00ff0000ffff03000000010000700001000000000000{}",
            hex_of(&data[..256])
        );
        assert!(c1.starts_with("000087ff00ff0000ffff03000000010000700001000000000000030a11181f262d343b424950575e656c737a81888f969da4abb2b9c0c7ced5dce3eaf1f8ff060d141b222930"));
        check(
            &c1,
            sm(0, 0, 0),
            0,
            Request::Write {
                addr: 0x7000_0001,
                access: AccessType::Byte,
                data: &data[..256],
            },
        );
        let c3 = format!(
            "000087ff00ff0000ffff03000200010200705800000000000000{}",
            hex_of(&data[512..])
        );
        assert_eq!(c3.len(), 2 * 114);
        check(
            &c3,
            sm(0, 0, 0),
            2,
            Request::Write {
                addr: 0x7000_0201,
                access: AccessType::Byte,
                data: &data[512..],
            },
        );
    }

    #[test]
    fn capture_spinnman_reads() {
        for (cap, seq, addr, len) in [
            (
                "000087ff00ff0000ffff02000300010000700001000000000000",
                3,
                0x7000_0001,
                256,
            ),
            (
                "000087ff00ff0000ffff02000400010100700001000000000000",
                4,
                0x7000_0101,
                256,
            ),
            (
                "000087ff00ff0000ffff02000500010200705800000000000000",
                5,
                0x7000_0201,
                88,
            ),
        ] {
            check(
                cap,
                sm(0, 0, 0),
                seq,
                Request::Read {
                    addr,
                    len,
                    access: AccessType::Byte,
                },
            );
            assert_eq!(
                Request::read(addr, len),
                Request::Read {
                    addr,
                    len,
                    access: AccessType::Byte
                }
            );
        }
    }

    // ---- §3 boot follow-up (spinnman) ----

    #[test]
    fn capture_spinnman_tto_and_info() {
        check(
            "000087ff00ffffffffff1a000400000004000900000000000000",
            sm(255, 255, 0),
            4,
            Request::Iptag(IptagRequest::Tto { timeout: 9 }),
        );
        check(
            "000087ff00ffffffffff1f0005005f0000000000000000000000",
            sm(255, 255, 0),
            5,
            Request::Info { arg1: 0x5F },
        );
    }

    // ---- §4 BMP ----

    #[test]
    fn capture_bmp_power() {
        check(
            "000087ff00ff0000000039000100010000000700000000000000",
            rig(0, 0, 0),
            1,
            Request::Power {
                on: true,
                delay_ms: 0,
                boards: 0b111,
            },
        );
        check(
            "000087ff00ff00000000390001000000c8002000000000000000",
            rig(0, 0, 0),
            1,
            Request::Power {
                on: false,
                delay_ms: 200,
                boards: 1 << 5,
            },
        );
        check(
            "000087ff00ff0000000039000100000000001800000000000000",
            rig(0, 0, 0),
            1,
            Request::Power {
                on: false,
                delay_ms: 0,
                boards: 0b11000,
            },
        );
    }

    #[test]
    fn capture_bmp_link_stop_write_and_read() {
        let one = 1u32.to_le_bytes();
        check(
            "000087ff01ff00000000120000005c000000040000000100000001000000",
            rig(0, 0, 1),
            0,
            Request::fpga_write(1, 0x5C, &one),
        );
        check(
            "000087ff01ff00000000110001005c0000000400000001000000",
            rig(0, 0, 1),
            1,
            Request::fpga_read(1, 0x5C),
        );
    }

    #[test]
    fn capture_bmp_led_adc_flag() {
        check(
            "000087ff00ff000000001900000000c000000300000000000000",
            rig(0, 0, 0),
            0,
            Request::Led {
                leds: LedControl::NONE.with(7, LedAction::On),
                boards: 0b11,
            },
        );
        check(
            "000087ff02ff0000000030000100030000000000000000000000",
            rig(0, 0, 2),
            1,
            Request::BmpInfo(BmpInfoKind::BoardStatus),
        );
        check(
            "000087ff02ff0000000011000200040004000400000000000000",
            rig(0, 0, 2),
            2,
            Request::fpga_read(0, crate::proto::scp::fpga::FLAG_REGISTER),
        );
    }

    // ---- §5 other rig SCAMP commands ----

    #[test]
    fn capture_rig_info_iptag() {
        check(
            "000087ff00ff000000001f000000000000000000000000000000",
            rig(0, 0, 0),
            0,
            Request::Info { arg1: 0 },
        );
        check(
            "000087ff00ff000000001a0001000100010050c300007f000001",
            rig(0, 0, 0),
            1,
            Request::Iptag(IptagRequest::Set {
                tag: 1,
                config: IptagConfig::forward(Ipv4Addr::new(127, 0, 0, 1), 50000),
            }),
        );
        check(
            "000087ff00ff000000001a000200010002000100000000000000",
            rig(0, 0, 0),
            2,
            Request::Iptag(IptagRequest::Get { tag: 1, count: 1 }),
        );
        check(
            "000087ff00ff000000001a000300010003000000000000000000",
            rig(0, 0, 0),
            3,
            Request::Iptag(IptagRequest::Clear { tag: 1 }),
        );
    }

    #[test]
    fn capture_rig_alloc_fill_led() {
        check(
            "000087ff00ff000000001c000400004200000004000003000000",
            rig(0, 0, 0),
            4,
            Request::Alloc {
                app_id: 66,
                flags: 0,
                op: AllocOp::AllocSdram { size: 1024, tag: 3 },
            },
        );
        check(
            "000087ff00ff000000000500050000000070efbeadde40000000",
            rig(0, 0, 0),
            5,
            Request::Fill {
                addr: 0x7000_0000,
                value: 0xDEAD_BEEF,
                len: 64,
            },
        );
        check(
            "000087ff00ff00000000190006000c0000000000000000000000",
            rig(0, 0, 0),
            6,
            Request::Led {
                leds: LedControl::NONE.with(1, LedAction::On),
                boards: 0,
            },
        );
        check(
            "000087ff00ff000000001c000700034200000100000000000000",
            rig(0, 0, 0),
            7,
            Request::Alloc {
                app_id: 66,
                flags: 0,
                op: AllocOp::AllocRouter { count: 1 },
            },
        );
    }

    #[test]
    fn capture_rig_routing_table_load() {
        check(
            "000087ff00ff0000000002000900c87f00f50400000002000000",
            rig(0, 0, 0),
            9,
            Request::Read {
                addr: 0xF500_7FC8,
                len: 4,
                access: AccessType::Word,
            },
        );
        // The 16-byte router entry record written to sdram_sys (0 here: the responder read 0).
        let entry = hex("0000000081000000000001000000ffff");
        check(
            "000087ff00ff0000000003000a000000000010000000020000000000000081000000000001000000ffff",
            rig(0, 0, 0),
            10,
            Request::Write {
                addr: 0,
                access: AccessType::Word,
                data: &entry,
            },
        );
        check(
            "000087ff00ff000000001d000b00024201000000000000001060",
            rig(0, 0, 0),
            11,
            Request::Router {
                app_id: 66,
                op: RouterOp::Load {
                    addr: 0,
                    count: 1,
                    base: 0x6010_0000,
                },
            },
        );
    }

    #[test]
    fn capture_rig_signals_and_dims() {
        check(
            "000087ff00ffffff000016000c000200000042ff0300ffff0000",
            rig(255, 255, 0),
            12,
            Request::Signal {
                kind: SignalKind::NearestNeighbour,
                data: 0x0003_FF42,
                cores: 0xFFFF,
            },
        );
        check(
            "000087ff00ffffff000016000d000100000042ff6700ffff0000",
            rig(255, 255, 0),
            13,
            Request::Signal {
                kind: SignalKind::PointToPoint,
                data: 0x0067_FF42,
                cores: 0xFFFF,
            },
        );
        check(
            "000087ff00ff0000000002000e00027f00f50200000001000000",
            rig(0, 0, 0),
            14,
            Request::Read {
                addr: 0xF500_7F02,
                len: 2,
                access: AccessType::Halfword,
            },
        );
    }

    // ---- §7 spinnman offline vectors (seq 0x1234) ----

    #[test]
    fn capture_offline_spinnman_scamp() {
        let s = 0x1234;
        let root = sm(255, 255, 0);
        let c00 = sm(0, 0, 0);
        let cases: Vec<(&str, sdp::Repr, Request<'static>)> = vec![
            (
                "000087ff00ff0000ffff1f0034125f0000000000000000000000",
                c00,
                Request::Info { arg1: 0x5F },
            ),
            (
                "000087ff03ff0201ffff02003412000000700001000002000000",
                sm(1, 2, 3),
                Request::Read {
                    addr: 0x7000_0000,
                    len: 256,
                    access: AccessType::Word,
                },
            ),
            (
                "000087ff00ff0000ffff02003412027f00f50200000001000000",
                c00,
                Request::Read {
                    addr: 0xF500_7F02,
                    len: 2,
                    access: AccessType::Halfword,
                },
            ),
            (
                "000087ff00ff0000ffff0300341200000060040000000200000001020304",
                c00,
                Request::Write {
                    addr: 0x6000_0000,
                    access: AccessType::Word,
                    data: &[1, 2, 3, 4],
                },
            ),
            (
                "000087ff00ff0000ffff0500341200000060efbeadde00040000",
                c00,
                Request::Fill {
                    addr: 0x6000_0000,
                    value: 0xDEAD_BEEF,
                    len: 1024,
                },
            ),
            (
                "000087ff00ff0000ffff1a0034120200011050c300007f000001",
                c00,
                Request::Iptag(IptagRequest::Set {
                    tag: 2,
                    config: IptagConfig {
                        flags: IptagFlags::STRIP,
                        ..IptagConfig::forward(Ipv4Addr::LOCALHOST, 50000)
                    },
                }),
            ),
            (
                "000087ff00ff0000ffff1a003412030001400000000000000000",
                c00,
                Request::Iptag(IptagRequest::Set {
                    tag: 3,
                    config: IptagConfig {
                        flags: IptagFlags::USE_SENDER,
                        ..IptagConfig::forward(Ipv4Addr::UNSPECIFIED, 0)
                    },
                }),
            ),
            (
                "000087ff00ff0000ffff1a003412042301303930020100000000",
                c00,
                Request::Iptag(IptagRequest::Set {
                    tag: 4,
                    config: IptagConfig {
                        ip: Ipv4Addr::UNSPECIFIED,
                        port: 12345,
                        flags: IptagFlags::STRIP | IptagFlags::REVERSE,
                        timeout: 0,
                        target: Address::new(1, 2, 1, 3),
                    },
                }),
            ),
            (
                "000087ff00ff0000ffff1a003412020002000100000000000000",
                c00,
                Request::Iptag(IptagRequest::Get { tag: 2, count: 1 }),
            ),
            (
                "000087ff00ff0000ffff1a00341200000400ff00000000000000",
                c00,
                Request::Iptag(IptagRequest::Tto { timeout: 0xFF }),
            ),
            (
                "000087ff00ff0000ffff1a003412020003000000000000000000",
                c00,
                Request::Iptag(IptagRequest::Clear { tag: 2 }),
            ),
            (
                "000087ff00ff0000ffff1a003412000004000900000000000000",
                c00,
                Request::Iptag(IptagRequest::Tto { timeout: 9 }),
            ),
            (
                "000087ff00ff0000ffff1c003412001e04000010000005000000",
                c00,
                Request::Alloc {
                    app_id: 30,
                    flags: 4,
                    op: AllocOp::AllocSdram { size: 4096, tag: 5 },
                },
            ),
            (
                "000087ff00ff0000ffff1c003412021e00000000000000000000",
                c00,
                Request::Alloc {
                    app_id: 30,
                    flags: 0,
                    op: AllocOp::FreeSdramByApp,
                },
            ),
            (
                "000087ff00ff0000ffff1c003412010000000000106000000000",
                c00,
                Request::Alloc {
                    app_id: 0,
                    flags: 0,
                    op: AllocOp::FreeSdram { ptr: 0x6010_0000 },
                },
            ),
            (
                "000087ff00ff0000ffff1c003412031e00000a00000000000000",
                c00,
                Request::Alloc {
                    app_id: 30,
                    flags: 0,
                    op: AllocOp::AllocRouter { count: 10 },
                },
            ),
            (
                "000087ff00ff0000ffff1d003412021e0a000000806705000000",
                c00,
                Request::Router {
                    app_id: 30,
                    op: RouterOp::Load {
                        addr: 0x6780_0000,
                        count: 10,
                        base: 5,
                    },
                },
            ),
            (
                "000087ff00ff0000ffff1d003412000000000000000000000000",
                c00,
                Request::Router {
                    app_id: 0,
                    op: RouterOp::Init,
                },
            ),
            (
                // spinnman's FixedRouteInit with route 0x80000001: bit 31 set, so SCAMP reads.
                "000087ff00ff0000ffff1d003412031e00000100008000000000",
                c00,
                Request::Router {
                    app_id: 30,
                    op: RouterOp::FixedRoute { value: 0x8000_0001 },
                },
            ),
            (
                "000087ff00ff0000ffff1d003412031e00000000008000000000",
                c00,
                Request::Router {
                    app_id: 30,
                    op: RouterOp::fixed_route_read(),
                },
            ),
            (
                "000087ff00ffffffffff16003412000000001eff0300ffff0000",
                root,
                Request::Signal {
                    kind: SignalKind::Multicast,
                    data: 0x0003_FF1E,
                    cores: 0xFFFF,
                },
            ),
            (
                "000087ff00ffffffffff16003412000000001eff0400ffff0000",
                root,
                Request::Signal {
                    kind: SignalKind::Multicast,
                    data: 0x0004_FF1E,
                    cores: 0xFFFF,
                },
            ),
            (
                "000087ff00ff0000ffff0f0034121e0000000700000000000000",
                c00,
                Request::Count { app_id: 30, state: 7 },
            ),
            (
                "000087ff00ff0000ffff130034120600041e0000000000000000",
                c00,
                Request::ApplicationRun {
                    app_id: 30,
                    flags: Request::AR_WAIT,
                    cores: 0b110,
                },
            ),
            (
                "000087ff00ff0000ffff11003412007f00f51000000002000000",
                c00,
                Request::LinkRead {
                    addr: 0xF500_7F00,
                    len: 16,
                    link: 2,
                },
            ),
            (
                "000087ff00ff0000ffff12003412000000600400000002000000aabbccdd",
                c00,
                Request::LinkWrite {
                    addr: 0x6000_0000,
                    link: 2,
                    data: &[0xAA, 0xBB, 0xCC, 0xDD],
                },
            ),
            (
                // AppStop (CMD_NNP) has no typed form: kept whole.
                "000087ff00ffffffffff1400341200003f001eff0250003f0080",
                root,
                Request::Other {
                    command: Command::Nnp,
                    arg1: 0x003F_0000,
                    arg2: 0x5002_FF1E,
                    arg3: 0x8000_3F00,
                    data: &[],
                },
            ),
            (
                "000087ff00ff0101ffff15003412a3910000000400000600001e",
                sm(1, 1, 0),
                Request::Other {
                    command: Command::AppCopyRun,
                    arg1: 0x91A3,
                    arg2: 1024,
                    arg3: 0x1E00_0006,
                    data: &[],
                },
            ),
            (
                "000087ff00ffffffffff1700341202001e3f00010100000080670001020304050607",
                root,
                Request::Other {
                    command: Command::Ffd,
                    arg1: 0x3F1E_0002,
                    arg2: 0x0001_0100,
                    arg3: 0x6780_0000,
                    data: &[0, 1, 2, 3, 4, 5, 6, 7],
                },
            ),
            (
                "000087ff00ffffffffff20003412010000000000000000000000",
                root,
                Request::Other {
                    command: Command::Sync,
                    arg1: 1,
                    arg2: 0,
                    arg3: 0,
                    data: &[],
                },
            ),
        ];
        assert!(cases.len() >= 25);
        for (cap, header, req) in cases {
            check(cap, header, s, req);
        }
    }

    #[test]
    fn capture_offline_spinnman_bmp() {
        let s = 0x1234;
        check(
            "000087ff00ff0000000039003412010000000700000000000000",
            rig(0, 0, 0),
            s,
            Request::Power {
                on: true,
                delay_ms: 0,
                boards: 0b111,
            },
        );
        check(
            "000087ff00ff00000000390034120000f4012000000000000000",
            rig(0, 0, 0),
            s,
            Request::Power {
                on: false,
                delay_ms: 500,
                boards: 1 << 5,
            },
        );
        check(
            "000087ff02ff0000000011003412040004000400000001000000",
            rig(0, 0, 2),
            s,
            Request::fpga_read(1, 0x0004_0004),
        );
        check(
            "000087ff03ff00000000120034125c000100040000000200000001000000",
            rig(0, 0, 3),
            s,
            Request::fpga_write(2, 0x0001_005C, &[1, 0, 0, 0]),
        );
    }

    #[test]
    fn bad_arguments_are_bad_fields() {
        let cases = [
            (Command::Read, 0, 257, 0, "arg2 (length)"),
            (Command::Read, 0, 4, 3, "arg3 (access type)"),
            (Command::Write, 0, 8, 2, "arg2 (length)"), // only 4 data bytes below
            (Command::LinkRead, 0, 4, 6, "arg3 (link/FPGA)"),
            (Command::Ar, 1, 0, 0, "arg1 bit 0 (core mask)"),
            (Command::Sig, 3, 0, 0, "arg1 (type)"),
            (Command::Iptag, 16, 0, 0, "arg1 bits 7..0 (tag)"),
            (Command::Iptag, 5 << 16, 0, 0, "arg1 bits 23..16 (sub-command)"),
            (Command::Iptag, 2 << 16, 9, 0, "arg2 (count)"),
            (Command::Alloc, 8, 0, 0, "arg1 bits 7..0 (op)"),
            (Command::Rtr, 4, 0, 0, "arg1 bits 7..0 (op)"),
            (Command::Power, 2, 0, 0, "arg1 bits 7..0 (state)"),
            (Command::Reset, 3, 0, 0, "arg1 bits 7..0 (code)"),
            (Command::Count, 256, 0, 0, "arg1 (app_id)"),
        ];
        for (cmd, a1, a2, a3, field) in cases {
            match Request::from_parts(cmd, a1, a2, a3, &[1, 2, 3, 4]) {
                Err(Error::BadField { field: f, .. }) => assert_eq!(f, field, "{cmd}"),
                other => panic!("{cmd}: {other:?}"),
            }
        }
        // Reset code 4..6 (bit 2 set) is allowed, as is a write shorter than the data.
        assert!(Request::from_parts(Command::Reset, 6, 0, 0, &[]).is_ok());
        assert_eq!(
            Request::from_parts(Command::Write, 0x10, 2, 0, &[9, 8, 7]).unwrap(),
            Request::Write {
                addr: 0x10,
                access: AccessType::Byte,
                data: &[9, 8]
            }
        );
        // Unknown commands are kept, never rejected; a non-canonical Unknown is normalised.
        assert_eq!(
            Request::from_parts(Command::Unknown(2), 0, 4, 0, &[]).unwrap(),
            Request::Read {
                addr: 0,
                len: 4,
                access: AccessType::Byte
            }
        );
        assert!(matches!(
            Request::from_parts(Command::Unknown(0x1234), 1, 2, 3, &[]),
            Ok(Request::Other {
                command: Command::Unknown(0x1234),
                ..
            })
        ));
    }

    #[test]
    fn reply_kinds() {
        assert_eq!(Request::Version.reply_kind(), ReplyKind::Version);
        assert_eq!(Request::read(0, 4).reply_kind(), ReplyKind::Data);
        assert_eq!(
            Request::Iptag(IptagRequest::Tto { timeout: 9 }).reply_kind(),
            ReplyKind::IptagTto
        );
        assert_eq!(
            Request::Router {
                app_id: 0,
                op: RouterOp::fixed_route_read()
            }
            .reply_kind(),
            ReplyKind::FixedRoute
        );
        assert_eq!(
            Request::Router {
                app_id: 0,
                op: RouterOp::Init
            }
            .reply_kind(),
            ReplyKind::Empty
        );
        assert_eq!(
            Request::BmpInfo(BmpInfoKind::BoardStatus).reply_kind(),
            ReplyKind::BmpBoardStatus
        );
        assert_eq!(
            Request::Alloc {
                app_id: 0,
                flags: 0,
                op: AllocOp::SdramSpace
            }
            .reply_kind(),
            ReplyKind::SdramSpace
        );
        assert_eq!(Request::Version.buffer_len(), HEADER_LEN);
        let _ = Flags::REQUEST;
    }

    #[test]
    fn led_control() {
        let c = LedControl::NONE
            .with(0, LedAction::Toggle)
            .with(3, LedAction::Off)
            .with(15, LedAction::On);
        assert_eq!(c.get(0), LedAction::Toggle);
        assert_eq!(c.get(3), LedAction::Off);
        assert_eq!(c.get(15), LedAction::On);
        assert_eq!(c.get(16), LedAction::Keep);
        assert_eq!(c.with(16, LedAction::On), c);
        assert_eq!(c.with(3, LedAction::Keep).get(3), LedAction::Keep);
    }

    // ---- property tests ----

    fn data() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..=MAX_DATA_LEN)
    }

    fn access() -> impl Strategy<Value = AccessType> {
        prop_oneof![
            Just(AccessType::Byte),
            Just(AccessType::Halfword),
            Just(AccessType::Word)
        ]
    }

    fn iptag_config() -> impl Strategy<Value = IptagConfig> {
        (
            any::<[u8; 4]>(),
            any::<u16>(),
            0u8..16,
            0u8..16,
            any::<u8>(),
            any::<u8>(),
            0u8..8,
            0u8..32,
        )
            .prop_map(|(ip, port, flags, timeout, x, y, p, c)| IptagConfig {
                ip: Ipv4Addr::from(ip),
                port,
                flags: IptagFlags::from_request_nibble(flags),
                timeout,
                target: Address::new(x, y, p, c),
            })
    }

    fn iptag() -> impl Strategy<Value = IptagRequest> {
        prop_oneof![
            iptag_config().prop_map(IptagRequest::New),
            (0u8..16, iptag_config()).prop_map(|(tag, config)| IptagRequest::Set { tag, config }),
            (0u8..16, 0u32..=8).prop_map(|(tag, count)| IptagRequest::Get { tag, count }),
            (0u8..16).prop_map(|tag| IptagRequest::Clear { tag }),
            any::<u32>().prop_map(|timeout| IptagRequest::Tto { timeout }),
        ]
    }

    fn alloc_op() -> impl Strategy<Value = AllocOp> {
        let u = any::<u32>;
        prop_oneof![
            (u(), u()).prop_map(|(size, tag)| AllocOp::AllocSdram { size, tag }),
            u().prop_map(|ptr| AllocOp::FreeSdram { ptr }),
            Just(AllocOp::FreeSdramByApp),
            u().prop_map(|count| AllocOp::AllocRouter { count }),
            (u(), u()).prop_map(|(entry, clear)| AllocOp::FreeRouter { entry, clear }),
            u().prop_map(|clear| AllocOp::FreeRouterByApp { clear }),
            Just(AllocOp::SdramSpace),
            u().prop_map(|tag| AllocOp::HeapTagPointer { tag }),
        ]
    }

    fn router_op() -> impl Strategy<Value = RouterOp> {
        prop_oneof![
            Just(RouterOp::Init),
            (any::<u32>(), any::<u16>()).prop_map(|(start, count)| RouterOp::Clear { start, count }),
            (any::<u32>(), any::<u16>(), any::<u32>()).prop_map(|(addr, count, base)| RouterOp::Load {
                addr,
                count,
                base
            }),
            any::<u32>().prop_map(|value| RouterOp::FixedRoute { value }),
        ]
    }

    /// Commands that have no typed variant.
    fn untyped_command() -> impl Strategy<Value = Command> {
        any::<u16>().prop_map(Command::from_code).prop_filter("typed", |c| {
            !matches!(
                c,
                Command::Ver
                    | Command::Read
                    | Command::Write
                    | Command::Fill
                    | Command::Count
                    | Command::LinkRead
                    | Command::LinkWrite
                    | Command::Ar
                    | Command::Sig
                    | Command::Led
                    | Command::Iptag
                    | Command::Alloc
                    | Command::Rtr
                    | Command::Info
                    | Command::BmpInfo
                    | Command::Reset
                    | Command::Power
            )
        })
    }

    /// Every typed request, with its data owned by the generated vector.
    fn request(
        d: &[u8],
        pick: u8,
        a: u32,
        b: u32,
        c: u32,
        acc: AccessType,
        misc: (IptagRequest, AllocOp, RouterOp, Command),
    ) -> Request<'_> {
        let (ip, al, rt, cmd) = misc;
        match pick % 18 {
            0 => Request::Version,
            1 => Request::Read {
                addr: a,
                len: b % 257,
                access: acc,
            },
            2 => Request::Write {
                addr: a,
                access: acc,
                data: d,
            },
            3 => Request::Fill {
                addr: a,
                value: b,
                len: c,
            },
            4 => Request::Count {
                app_id: a as u8,
                state: b as u8,
            },
            5 => Request::LinkRead {
                addr: a,
                len: b % 257,
                link: (c % 6) as u8,
            },
            6 => Request::LinkWrite {
                addr: a,
                link: (c % 6) as u8,
                data: d,
            },
            7 => Request::ApplicationRun {
                app_id: a as u8,
                flags: (b & 0x3F) as u8,
                cores: c & 0x3FFFE,
            },
            8 => Request::Signal {
                kind: SignalKind::from_u32(a % 3).unwrap_or(SignalKind::Multicast),
                data: b,
                cores: c,
            },
            9 => Request::Led {
                leds: LedControl(a),
                boards: b,
            },
            10 => Request::Iptag(ip),
            11 => Request::Alloc {
                app_id: a as u8,
                flags: b as u8,
                op: al,
            },
            12 => Request::Router {
                app_id: a as u8,
                op: rt,
            },
            13 => Request::Info { arg1: a },
            14 => Request::BmpInfo(BmpInfoKind::from_u32(a % 8)),
            15 => Request::Reset {
                delay_ms: a as u16,
                code: [0u8, 1, 2, 4, 5, 6][(b % 6) as usize],
                boards: c,
            },
            16 => Request::Power {
                on: a % 2 == 1,
                delay_ms: b as u16,
                boards: c,
            },
            _ => Request::Other {
                command: cmd,
                arg1: a,
                arg2: b,
                arg3: c,
                data: d,
            },
        }
    }

    proptest! {
        #[test]
        fn typed_round_trip(d in data(), pick in any::<u8>(), a in any::<u32>(), b in any::<u32>(), c in any::<u32>(),
                            acc in access(), ip in iptag(), al in alloc_op(), rt in router_op(),
                            cmd in untyped_command(), seq in any::<u16>(), dest_cpu in 0u8..18) {
            let req = request(&d, pick, a, b, c, acc, (ip, al, rt, cmd));
            // Through the generic form.
            let parts = req.to_parts();
            prop_assert_eq!(Request::from_parts(parts.0, parts.1, parts.2, parts.3, parts.4).unwrap(), req);
            // Through bytes.
            let mut buf = vec![0u8; req.buffer_len()];
            req.emit(seq, &mut Packet::new_unchecked(&mut buf[..]));
            let packet = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(packet.seq(), seq);
            prop_assert_eq!(Request::parse(&packet).unwrap(), req);
            // Through a whole datagram.
            let msg = RequestMessage { sdp: sdp::Repr::request(Address::scp(1, 2, dest_cpu)), seq, request: req };
            let mut out = [0u8; sdp::MAX_UDP_PAYLOAD_LEN];
            let n = msg.emit_udp(&mut out).unwrap();
            prop_assert_eq!(RequestMessage::parse_udp(&out[..n]).unwrap(), msg);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Request::parse(&Packet::new_unchecked(&bytes[..]));
            let _ = RequestMessage::parse_udp(&bytes);
            let w = |i: usize| crate::proto::scp::get_u32(&bytes, i).unwrap_or(0);
            let cmd = Command::from_code(bytes.first_chunk::<2>().map_or(0, |c| u16::from_le_bytes(*c)));
            let _ = Request::from_parts(cmd, w(2), w(6), w(10), bytes.get(14..).unwrap_or(&[]));
        }
    }
}
