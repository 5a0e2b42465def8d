//! Typed SCP replies: what SCAMP and the BMP put after `rc` and `seq` (protocols.md §3.5–§3.10).
//!
//! A reply's layout depends on the request it answers, not on anything in the reply itself
//! (READ data starts right after `seq`, a TTO reply is one arg, an error is `rc` + `seq` only),
//! so parsing takes a [`ReplyKind`], which [`super::Request::reply_kind`] provides. The
//! emulated monitors build the same [`Reply`] values and emit them, so both sides share one
//! definition of every reply layout.
//!
//! Fixed-size replies are checked strictly: a body of the wrong length is an error
//! ([`Error::Truncated`] / [`Error::TooLong`]), which is how a host notices a broken responder.
//! Any non-OK return code parses as [`Reply::Error`] whatever the kind.

use super::{Packet, Reader, ReturnCode, Writer, get_u32};
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

/// Checks that a reply body is exactly `len` bytes (lengths reported for the whole SCP message).
fn exact(what: &'static str, body: &[u8], len: usize) -> Result<()> {
    let got = super::MIN_LEN + body.len();
    let need = super::MIN_LEN + len;
    if got < need {
        Err(Error::Truncated { what, need, got })
    } else if got > need {
        Err(Error::TooLong { what, max: need, got })
    } else {
        Ok(())
    }
}

/// What a successful reply carries; chosen by the request (see `Request::reply_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// Nothing after `seq` (WRITE, FILL, LED, POWER, …).
    Empty,
    /// CMD_VER: three args and the version strings.
    Version,
    /// Raw data straight after `seq` (READ, LINK_READ, BMP_INFO EEPROM / vectors).
    Data,
    /// One arg with no specific meaning here (flash commands, …).
    Arg1,
    /// IPTAG NEW / SET: arg1 = tag.
    IptagTag,
    /// IPTAG GET: 32-byte `iptag_t` records straight after `seq`.
    IptagRecords,
    /// IPTAG TTO: arg1 = sizes and previous timeout.
    IptagTto,
    /// ALLOC ops 0, 2, 3, 5, 7: arg1 = pointer, count or first entry.
    Alloc,
    /// ALLOC op 6: arg1 free bytes, arg2 largest block.
    SdramSpace,
    /// CMD_COUNT: arg1 = number of cores.
    Count,
    /// RTR fixed-route read: arg1 = register value.
    FixedRoute,
    /// CMD_INFO: three args and 26 data bytes.
    Info,
    /// BMP_INFO 0: 32 bytes of serial information.
    BmpSerial,
    /// BMP_INFO 2: 24 bytes of CAN status.
    BmpCanStatus,
    /// BMP_INFO 3: 48 bytes of board status (ADC).
    BmpBoardStatus,
    /// BMP_INFO 4: two 32-byte `ip_data_t`.
    BmpIpAddresses,
    /// Anything: the body is kept uninterpreted.
    Raw,
}

impl ReplyKind {
    /// Every kind (for exhaustive tests).
    pub const ALL: [ReplyKind; 17] = [
        ReplyKind::Empty,
        ReplyKind::Version,
        ReplyKind::Data,
        ReplyKind::Arg1,
        ReplyKind::IptagTag,
        ReplyKind::IptagRecords,
        ReplyKind::IptagTto,
        ReplyKind::Alloc,
        ReplyKind::SdramSpace,
        ReplyKind::Count,
        ReplyKind::FixedRoute,
        ReplyKind::Info,
        ReplyKind::BmpSerial,
        ReplyKind::BmpCanStatus,
        ReplyKind::BmpBoardStatus,
        ReplyKind::BmpIpAddresses,
        ReplyKind::Raw,
    ];

    /// Name used in error messages.
    const fn what(self) -> &'static str {
        match self {
            ReplyKind::Empty => "SCP reply (empty)",
            ReplyKind::Version => "CMD_VER reply",
            ReplyKind::Data => "SCP data reply",
            ReplyKind::Arg1 => "SCP arg1 reply",
            ReplyKind::IptagTag => "IPTAG NEW/SET reply",
            ReplyKind::IptagRecords => "IPTAG GET reply",
            ReplyKind::IptagTto => "IPTAG TTO reply",
            ReplyKind::Alloc => "CMD_ALLOC reply",
            ReplyKind::SdramSpace => "ALLOC SDRAM space reply",
            ReplyKind::Count => "CMD_COUNT reply",
            ReplyKind::FixedRoute => "RTR fixed-route reply",
            ReplyKind::Info => "CMD_INFO reply",
            ReplyKind::BmpSerial => "BMP_INFO serial reply",
            ReplyKind::BmpCanStatus => "BMP_INFO CAN reply",
            ReplyKind::BmpBoardStatus => "BMP_INFO board status reply",
            ReplyKind::BmpIpAddresses => "BMP_INFO IP reply",
            ReplyKind::Raw => "SCP reply",
        }
    }
}

/// A typed SCP reply (the body after `rc` and `seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reply<'a> {
    /// RC_OK and nothing else.
    Empty,
    /// A non-OK return code. The body is normally empty; RC_SUM (APP_COPY_RUN) and
    /// RC_P2P_NOREPLY (COUNT) carry arg1 (see [`Reply::error_arg1`]).
    Error {
        /// The return code (never [`ReturnCode::Ok`] when parsed).
        rc: ReturnCode,
        /// Whatever followed `seq`.
        body: &'a [u8],
    },
    /// CMD_VER.
    Version(VersionReply<'a>),
    /// Raw data (READ, LINK_READ, BMP EEPROM / vectors).
    Data(&'a [u8]),
    /// One arg.
    Arg1(u32),
    /// IPTAG NEW / SET: the tag (255 = none free).
    IptagTag(u8),
    /// IPTAG GET records.
    IptagRecords(IptagRecords<'a>),
    /// IPTAG TTO.
    IptagTto(TtoInfo),
    /// ALLOC: pointer / count / first entry (0 = failure for allocations).
    Alloc(u32),
    /// ALLOC SDRAM space.
    SdramSpace {
        /// arg1: free bytes in the SDRAM heap.
        free: u32,
        /// arg2: largest free block.
        largest: u32,
    },
    /// CMD_COUNT: number of cores in the state.
    Count(u32),
    /// RTR fixed-route register value.
    FixedRoute(u32),
    /// CMD_INFO.
    Info(ChipInfo),
    /// BMP_INFO serial.
    BmpSerial(BmpSerial),
    /// BMP_INFO CAN status: one byte per CAN id.
    BmpCanStatus([u8; 24]),
    /// BMP_INFO board status.
    BmpBoardStatus(BoardStatus),
    /// BMP_INFO IP settings.
    BmpIpAddresses(BmpIpAddresses),
    /// Uninterpreted body.
    Raw(&'a [u8]),
}

impl<'a> Reply<'a> {
    /// Parses a reply whose successful form is `kind` (the sequence number is `packet.seq()`).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>, kind: ReplyKind) -> Result<Reply<'a>> {
        packet.check_len()?;
        let rc = packet.return_code();
        let body = packet.body();
        if !rc.is_ok() {
            return Ok(Reply::Error { rc, body });
        }
        let what = kind.what();
        let arg1 = |body: &[u8]| -> Result<u32> {
            exact(what, body, 4)?;
            Ok(get_u32(body, 0).unwrap_or(0))
        };
        Ok(match kind {
            ReplyKind::Empty => {
                exact(what, body, 0)?;
                Reply::Empty
            }
            ReplyKind::Version => Reply::Version(VersionReply::parse_body(body)?),
            ReplyKind::Data => Reply::Data(body),
            ReplyKind::Raw => Reply::Raw(body),
            ReplyKind::Arg1 => Reply::Arg1(arg1(body)?),
            ReplyKind::IptagTag => {
                let tag = arg1(body)?;
                Reply::IptagTag(u8::try_from(tag).map_err(|_| bad(what, "arg1 (tag)", format_args!("{tag} > 255")))?)
            }
            ReplyKind::IptagRecords => Reply::IptagRecords(IptagRecords::new(body)?),
            ReplyKind::IptagTto => Reply::IptagTto(TtoInfo::from_arg1(arg1(body)?)),
            ReplyKind::Alloc => Reply::Alloc(arg1(body)?),
            ReplyKind::Count => Reply::Count(arg1(body)?),
            ReplyKind::FixedRoute => Reply::FixedRoute(arg1(body)?),
            ReplyKind::SdramSpace => {
                exact(what, body, 8)?;
                let mut r = Reader::new(body);
                Reply::SdramSpace {
                    free: r.u32(),
                    largest: r.u32(),
                }
            }
            ReplyKind::Info => {
                exact(what, body, ChipInfo::BODY_LEN)?;
                Reply::Info(ChipInfo::read(&mut Reader::new(body)))
            }
            ReplyKind::BmpSerial => {
                exact(what, body, BmpSerial::LEN)?;
                Reply::BmpSerial(BmpSerial::read(&mut Reader::new(body)))
            }
            ReplyKind::BmpCanStatus => {
                exact(what, body, 24)?;
                Reply::BmpCanStatus(Reader::new(body).bytes())
            }
            ReplyKind::BmpBoardStatus => {
                exact(what, body, BoardStatus::LEN)?;
                Reply::BmpBoardStatus(BoardStatus::read(&mut Reader::new(body)))
            }
            ReplyKind::BmpIpAddresses => {
                exact(what, body, 2 * IpData::LEN)?;
                let mut r = Reader::new(body);
                Reply::BmpIpAddresses(BmpIpAddresses {
                    bmp: IpData::read(&mut r),
                    spinnaker: IpData::read(&mut r),
                })
            }
        })
    }

    /// The return code this reply is sent with.
    pub const fn return_code(&self) -> ReturnCode {
        match self {
            Reply::Error { rc, .. } => *rc,
            _ => ReturnCode::Ok,
        }
    }

    /// The kind that parses this reply back (`None` for errors, which parse under any kind).
    pub const fn kind(&self) -> Option<ReplyKind> {
        Some(match self {
            Reply::Error { .. } => return None,
            Reply::Empty => ReplyKind::Empty,
            Reply::Version(_) => ReplyKind::Version,
            Reply::Data(_) => ReplyKind::Data,
            Reply::Arg1(_) => ReplyKind::Arg1,
            Reply::IptagTag(_) => ReplyKind::IptagTag,
            Reply::IptagRecords(_) => ReplyKind::IptagRecords,
            Reply::IptagTto(_) => ReplyKind::IptagTto,
            Reply::Alloc(_) => ReplyKind::Alloc,
            Reply::SdramSpace { .. } => ReplyKind::SdramSpace,
            Reply::Count(_) => ReplyKind::Count,
            Reply::FixedRoute(_) => ReplyKind::FixedRoute,
            Reply::Info(_) => ReplyKind::Info,
            Reply::BmpSerial(_) => ReplyKind::BmpSerial,
            Reply::BmpCanStatus(_) => ReplyKind::BmpCanStatus,
            Reply::BmpBoardStatus(_) => ReplyKind::BmpBoardStatus,
            Reply::BmpIpAddresses(_) => ReplyKind::BmpIpAddresses,
            Reply::Raw(_) => ReplyKind::Raw,
        })
    }

    /// arg1 of an error reply that carries one (RC_SUM's sum, RC_P2P_NOREPLY's partial count).
    pub fn error_arg1(&self) -> Option<u32> {
        match self {
            Reply::Error { body, .. } if body.len() == 4 => get_u32(body, 0),
            _ => None,
        }
    }

    /// Bytes after `seq`.
    pub fn body_len(&self) -> usize {
        match self {
            Reply::Empty => 0,
            Reply::Error { body, .. } | Reply::Data(body) | Reply::Raw(body) => body.len(),
            Reply::Version(v) => v.body_len(),
            Reply::IptagRecords(r) => r.as_bytes().len(),
            Reply::Arg1(_)
            | Reply::IptagTag(_)
            | Reply::IptagTto(_)
            | Reply::Alloc(_)
            | Reply::Count(_)
            | Reply::FixedRoute(_) => 4,
            Reply::SdramSpace { .. } => 8,
            Reply::Info(_) => ChipInfo::BODY_LEN,
            Reply::BmpSerial(_) => BmpSerial::LEN,
            Reply::BmpCanStatus(_) => 24,
            Reply::BmpBoardStatus(_) => BoardStatus::LEN,
            Reply::BmpIpAddresses(_) => 2 * IpData::LEN,
        }
    }

    /// Bytes of SCP this reply occupies (`rc` + `seq` + body).
    pub fn buffer_len(&self) -> usize {
        super::MIN_LEN + self.body_len()
    }

    /// Writes the reply with sequence number `seq`. Panics if the buffer is shorter than
    /// [`Reply::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, seq: u16, packet: &mut Packet<&mut T>) {
        packet.set_return_code(self.return_code());
        packet.set_seq(seq);
        let mut w = Writer::new(packet.body_mut());
        match self {
            Reply::Empty => {}
            Reply::Error { body, .. } | Reply::Data(body) | Reply::Raw(body) => w.put(body),
            Reply::Version(v) => v.write_body(&mut w),
            Reply::IptagRecords(r) => w.put(r.as_bytes()),
            Reply::Arg1(v) | Reply::Alloc(v) | Reply::Count(v) | Reply::FixedRoute(v) => w.u32(*v),
            Reply::IptagTag(tag) => w.u32(u32::from(*tag)),
            Reply::IptagTto(t) => w.u32(t.to_arg1()),
            Reply::SdramSpace { free, largest } => {
                w.u32(*free);
                w.u32(*largest);
            }
            Reply::Info(info) => info.write(&mut w),
            Reply::BmpSerial(s) => s.write(&mut w),
            Reply::BmpCanStatus(c) => w.put(c),
            Reply::BmpBoardStatus(s) => s.write(&mut w),
            Reply::BmpIpAddresses(ip) => {
                ip.bmp.write(&mut w);
                ip.spinnaker.write(&mut w);
            }
        }
    }
}

/// CMD_VER arg1 for a chip: P2P address, physical and virtual core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CoreLocation {
    /// Bits 31..16: P2P address `x << 8 | y`; 0xFFFF while SCAMP is still booting.
    pub p2p: u16,
    /// Bits 15..8: physical core.
    pub physical_cpu: u8,
    /// Bits 7..0: virtual core.
    pub virtual_cpu: u8,
}

impl CoreLocation {
    /// The P2P address SCAMP reports until its network and Ethernet initialisation are done.
    pub const BOOTING: u16 = 0xFFFF;

    /// Splits arg1.
    pub const fn from_arg1(arg1: u32) -> CoreLocation {
        CoreLocation {
            p2p: (arg1 >> 16) as u16,
            physical_cpu: (arg1 >> 8) as u8,
            virtual_cpu: arg1 as u8,
        }
    }
    /// Packs arg1.
    pub const fn to_arg1(self) -> u32 {
        ((self.p2p as u32) << 16) | ((self.physical_cpu as u32) << 8) | self.virtual_cpu as u32
    }
    /// True while SCAMP is still booting (p2p = 0xFFFF).
    pub const fn is_booting(self) -> bool {
        self.p2p == Self::BOOTING
    }
    /// The chip (x, y), or `None` while booting.
    pub const fn chip(self) -> Option<(u8, u8)> {
        if self.is_booting() {
            None
        } else {
            Some(((self.p2p >> 8) as u8, self.p2p as u8))
        }
    }
}

/// CMD_VER arg1 for a BMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BmpLocation {
    /// Bits 31..24: flash code block (Cortex vector address / 64 KiB).
    pub flash_block: u8,
    /// Bits 23..16: frame id.
    pub frame: u8,
    /// Bits 15..8: CAN id.
    pub can_id: u8,
    /// Bits 7..0: board id.
    pub board: u8,
}

impl BmpLocation {
    /// Splits arg1.
    pub const fn from_arg1(arg1: u32) -> BmpLocation {
        BmpLocation {
            flash_block: (arg1 >> 24) as u8,
            frame: (arg1 >> 16) as u8,
            can_id: (arg1 >> 8) as u8,
            board: arg1 as u8,
        }
    }
    /// Packs arg1.
    pub const fn to_arg1(self) -> u32 {
        ((self.flash_block as u32) << 24)
            | ((self.frame as u32) << 16)
            | ((self.can_id as u32) << 8)
            | self.board as u32
    }
}

/// The CMD_VER ("sver") reply (protocols.md §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VersionReply<'a> {
    /// arg1: a [`CoreLocation`] (boards) or a [`BmpLocation`] (BMPs); the request is the same,
    /// so the reply does not say which. See [`VersionReply::core`] / [`VersionReply::bmp`].
    pub arg1: u32,
    /// arg2 bits 31..16: 0xFFFF ("see the string") since tools 2.0; older: major·100 + minor.
    pub version: u16,
    /// arg2 bits 15..0: SCP data buffer size (256).
    pub buffer_size: u16,
    /// arg3: build date, Unix seconds (0 if unset).
    pub build_date: u32,
    /// ID string `"<kernel>/<hardware>"` (NUL-terminated on the wire; must not contain NUL).
    pub id: &'a str,
    /// Version string `"major.minor.patch"` (NUL-terminated on the wire; absent in old kernels).
    pub version_string: Option<&'a str>,
}

impl<'a> VersionReply<'a> {
    /// `version` value meaning "the version is in the string".
    pub const VERSION_IN_STRING: u16 = 0xFFFF;

    /// arg1 read as a chip location.
    pub const fn core(&self) -> CoreLocation {
        CoreLocation::from_arg1(self.arg1)
    }

    /// arg1 read as a BMP location.
    pub const fn bmp(&self) -> BmpLocation {
        BmpLocation::from_arg1(self.arg1)
    }

    /// The kernel name (ID before '/'), e.g. `"SC&MP"` or `"BC&MP"`.
    pub fn name(&self) -> &'a str {
        self.id.split_once('/').map_or(self.id, |(name, _)| name)
    }

    /// The hardware name (ID after '/'), e.g. `"SpiNNaker"` or `"Spin5-BMP"`.
    pub fn hardware(&self) -> Option<&'a str> {
        self.id.split_once('/').map(|(_, hw)| hw)
    }

    /// True if the ID names the BMP firmware ("BC&MP").
    pub fn is_bmp(&self) -> bool {
        self.name() == "BC&MP"
    }

    /// (major, minor, patch) from the version string, or from `version` for old kernels.
    pub fn software_version(&self) -> Option<(u16, u16, u16)> {
        if let Some(s) = self.version_string {
            let mut parts = s.split('.').map(|p| p.parse::<u16>().ok());
            let v = (parts.next()??, parts.next()??, parts.next()??);
            return if parts.next().is_none() { Some(v) } else { None };
        }
        if self.version == Self::VERSION_IN_STRING {
            None
        } else {
            Some((self.version / 100, self.version % 100, 0))
        }
    }

    fn parse_body(body: &'a [u8]) -> Result<VersionReply<'a>> {
        const WHAT: &str = "CMD_VER reply";
        let Some((args, data)) = body.split_first_chunk::<12>() else {
            return Err(Error::Truncated {
                what: WHAT,
                need: 16,
                got: 4 + body.len(),
            });
        };
        let mut r = Reader::new(args);
        let arg1 = r.u32();
        let arg2 = r.u32();
        let build_date = r.u32();
        let text = |b: &'a [u8], field: &'static str| {
            core::str::from_utf8(b).map_err(|e| bad(WHAT, field, format_args!("not UTF-8: {e}")))
        };
        let Some(nul) = data.iter().position(|&b| b == 0) else {
            return Err(bad(WHAT, "data (ID string)", "not NUL-terminated"));
        };
        let id = text(&data[..nul], "data (ID string)")?;
        let rest = &data[nul + 1..];
        let version_string = if rest.is_empty() {
            None
        } else {
            let Some(nul) = rest.iter().position(|&b| b == 0) else {
                return Err(bad(WHAT, "data (version string)", "not NUL-terminated"));
            };
            if nul + 1 != rest.len() {
                return Err(bad(
                    WHAT,
                    "data",
                    format_args!("{} bytes after the version string", rest.len() - nul - 1),
                ));
            }
            Some(text(&rest[..nul], "data (version string)")?)
        };
        Ok(VersionReply {
            arg1,
            version: (arg2 >> 16) as u16,
            buffer_size: arg2 as u16,
            build_date,
            id,
            version_string,
        })
    }

    fn body_len(&self) -> usize {
        12 + self.id.len() + 1 + self.version_string.map_or(0, |s| s.len() + 1)
    }

    fn write_body(&self, w: &mut Writer<'_>) {
        w.u32(self.arg1);
        w.u32((u32::from(self.version) << 16) | u32::from(self.buffer_size));
        w.u32(self.build_date);
        w.put(self.id.as_bytes());
        w.u8(0);
        if let Some(s) = self.version_string {
            w.put(s.as_bytes());
            w.u8(0);
        }
    }
}

/// One 32-byte `iptag_t` record of an IPTAG GET reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IptagRecord {
    /// Target IP.
    pub ip: Ipv4Addr,
    /// Target MAC.
    pub mac: [u8; 6],
    /// UDP port packets are sent to.
    pub tx_port: u16,
    /// Lifetime in 10 ms ticks.
    pub timeout: u16,
    /// Flags ([`super::IptagFlags`] constants; low bits may hold the timeout).
    pub flags: super::IptagFlags,
    /// Packets sent through the tag.
    pub count: u32,
    /// Reverse tags: the board's receive port.
    pub rx_port: u16,
    /// Reverse tags: SDP target chip `x << 8 | y`.
    pub dest_addr: u16,
    /// Reverse tags: SDP target port/cpu byte.
    pub dest_port: u8,
}

impl IptagRecord {
    /// Size of an `iptag_t`.
    pub const LEN: usize = 32;

    /// Decodes one record.
    pub fn from_bytes(b: &[u8; 32]) -> IptagRecord {
        let mut r = Reader::new(b);
        IptagRecord {
            ip: Ipv4Addr::from(r.bytes::<4>()),
            mac: r.bytes(),
            tx_port: r.u16(),
            timeout: r.u16(),
            flags: super::IptagFlags(r.u16()),
            count: r.u32(),
            rx_port: r.u16(),
            dest_addr: r.u16(),
            dest_port: r.u8(),
        }
    }

    /// Encodes one record (padding zeroed).
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        let mut w = Writer::new(&mut out);
        w.put(&self.ip.octets());
        w.put(&self.mac);
        w.u16(self.tx_port);
        w.u16(self.timeout);
        w.u16(self.flags.0);
        w.u32(self.count);
        w.u16(self.rx_port);
        w.u16(self.dest_addr);
        w.u8(self.dest_port);
        w.zeros(7);
        out
    }
}

/// The records of an IPTAG GET reply: a byte slice whose length is a multiple of 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IptagRecords<'a> {
    bytes: &'a [u8],
}

impl<'a> IptagRecords<'a> {
    /// Wraps record bytes (e.g. built with [`IptagRecord::to_bytes`]); their length must be a
    /// multiple of 32.
    pub fn new(bytes: &'a [u8]) -> Result<IptagRecords<'a>> {
        if !bytes.len().is_multiple_of(IptagRecord::LEN) {
            return Err(bad(
                "IPTAG GET reply",
                "data",
                format_args!("{} bytes is not a whole number of 32-byte records", bytes.len()),
            ));
        }
        Ok(IptagRecords { bytes })
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Number of records.
    pub const fn len(&self) -> usize {
        self.bytes.len() / IptagRecord::LEN
    }

    /// True if there are no records.
    pub const fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Record `i`.
    pub fn get(&self, i: usize) -> Option<IptagRecord> {
        let start = i.checked_mul(IptagRecord::LEN)?;
        self.bytes
            .get(start..)?
            .first_chunk::<32>()
            .map(IptagRecord::from_bytes)
    }

    /// All records.
    pub fn iter(&self) -> impl Iterator<Item = IptagRecord> + 'a {
        self.bytes
            .chunks_exact(IptagRecord::LEN)
            .filter_map(|c| c.first_chunk::<32>().map(IptagRecord::from_bytes))
    }
}

/// The IPTAG TTO reply's arg1: `fixed << 24 | pool << 16 | record size << 8 | previous tto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TtoInfo {
    /// Number of fixed (user) tags (8).
    pub fixed: u8,
    /// Number of transient tags (8).
    pub pool: u8,
    /// `sizeof(iptag_t)` (32; the BMP sends 0).
    pub record_size: u8,
    /// The transient timeout code before this request.
    pub previous: u8,
}

impl TtoInfo {
    /// Splits arg1.
    pub const fn from_arg1(arg1: u32) -> TtoInfo {
        TtoInfo {
            fixed: (arg1 >> 24) as u8,
            pool: (arg1 >> 16) as u8,
            record_size: (arg1 >> 8) as u8,
            previous: arg1 as u8,
        }
    }
    /// Packs arg1.
    pub const fn to_arg1(self) -> u32 {
        ((self.fixed as u32) << 24)
            | ((self.pool as u32) << 16)
            | ((self.record_size as u32) << 8)
            | self.previous as u32
    }
}

/// The CMD_INFO reply (protocols.md §3.9, SCAMP 4.0.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChipInfo {
    /// arg1 bits 4..0: working cores including the monitor.
    pub working_cores: u8,
    /// arg1 bits 13..8: working-link bitmap.
    pub working_links: u8,
    /// arg1 bits 24..14: size of the largest free multicast-router block.
    pub largest_router_block: u16,
    /// arg1 bit 25: Ethernet is up.
    pub ethernet_up: bool,
    /// arg2: largest free SDRAM block, bytes.
    pub largest_sdram_block: u32,
    /// arg3: largest free SysRAM block, bytes.
    pub largest_sysram_block: u32,
    /// `cpu_state` of each virtual core.
    pub core_states: [u8; 18],
    /// P2P address `x << 8 | y` of the nearest Ethernet chip.
    pub nearest_ethernet: u16,
    /// This chip's Ethernet IP (0.0.0.0 without Ethernet).
    pub ip: Ipv4Addr,
    /// Link towards the root chip.
    pub root_link: u16,
}

impl ChipInfo {
    /// Bytes after `seq`: 12 (args) + 26 (data).
    pub const BODY_LEN: usize = 12 + 26;

    /// Packs arg1 (bits 7..5 and 31..26 are zero).
    pub const fn arg1(&self) -> u32 {
        (self.working_cores as u32 & 0x1F)
            | ((self.working_links as u32 & 0x3F) << 8)
            | ((self.largest_router_block as u32 & 0x7FF) << 14)
            | ((self.ethernet_up as u32) << 25)
    }

    fn read(r: &mut Reader<'_>) -> ChipInfo {
        let arg1 = r.u32();
        ChipInfo {
            working_cores: (arg1 & 0x1F) as u8,
            working_links: ((arg1 >> 8) & 0x3F) as u8,
            largest_router_block: ((arg1 >> 14) & 0x7FF) as u16,
            ethernet_up: arg1 & (1 << 25) != 0,
            largest_sdram_block: r.u32(),
            largest_sysram_block: r.u32(),
            core_states: r.bytes(),
            nearest_ethernet: r.u16(),
            ip: Ipv4Addr::from(r.bytes::<4>()),
            root_link: r.u16(),
        }
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.u32(self.arg1());
        w.u32(self.largest_sdram_block);
        w.u32(self.largest_sysram_block);
        w.put(&self.core_states);
        w.u16(self.nearest_ethernet);
        w.put(&self.ip.octets());
        w.u16(self.root_link);
    }
}

/// BMP_INFO 0: serial and address information (eight words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BmpSerial {
    /// Hardware version.
    pub hardware_version: u32,
    /// LPC1768 serial number.
    pub serial: [u32; 4],
    /// Flash buffer address.
    pub flash_buffer: u32,
    /// Address of this board's `board_stat`.
    pub board_status: u32,
    /// Cortex boot vector address.
    pub cortex_boot: u32,
}

impl BmpSerial {
    /// Size on the wire.
    pub const LEN: usize = 32;

    fn read(r: &mut Reader<'_>) -> BmpSerial {
        BmpSerial {
            hardware_version: r.u32(),
            serial: [r.u32(), r.u32(), r.u32(), r.u32()],
            flash_buffer: r.u32(),
            board_status: r.u32(),
            cortex_boot: r.u32(),
        }
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.u32(self.hardware_version);
        self.serial.iter().for_each(|&s| w.u32(s));
        w.u32(self.flash_buffer);
        w.u32(self.board_status);
        w.u32(self.cortex_boot);
    }
}

/// BMP_INFO 3: the BMP's `board_stat_t` (ADC readings, temperatures, fans, alarms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BoardStatus {
    /// Raw ADC channels.
    pub adc: [u16; 8],
    /// Internal temperature sensors (1/256 °C).
    pub t_int: [i16; 4],
    /// External temperature probes (1/256 °C; [`BoardStatus::MISSING_TEMP`] = none).
    pub t_ext: [i16; 4],
    /// Fan speeds ([`BoardStatus::MISSING_FAN`] = none).
    pub fan: [u16; 4],
    /// Warning flags.
    pub warning: u32,
    /// Shutdown flags.
    pub shutdown: u32,
}

impl BoardStatus {
    /// Size on the wire.
    pub const LEN: usize = 48;
    /// Volts per ADC count on the 1.2 V and 1.8 V rails.
    pub const V_SCALE_2_5: f64 = 2.5 / 4096.0;
    /// Volts per ADC count on the 3.3 V rail.
    pub const V_SCALE_3_3: f64 = 3.75 / 4096.0;
    /// Volts per ADC count on the 12 V supply.
    pub const V_SCALE_12: f64 = 15.0 / 4096.0;
    /// °C per temperature count.
    pub const TEMP_SCALE: f64 = 1.0 / 256.0;
    /// External temperature value meaning "no probe".
    pub const MISSING_TEMP: i16 = i16::MIN;
    /// Fan value meaning "no fan" (−1 as a signed value).
    pub const MISSING_FAN: u16 = 0xFFFF;

    /// 1.2 V rail C (`adc[1]`), volts.
    pub fn voltage_1_2c(&self) -> f64 {
        f64::from(self.adc[1]) * Self::V_SCALE_2_5
    }
    /// 1.2 V rail B (`adc[2]`), volts.
    pub fn voltage_1_2b(&self) -> f64 {
        f64::from(self.adc[2]) * Self::V_SCALE_2_5
    }
    /// 1.2 V rail A (`adc[3]`), volts.
    pub fn voltage_1_2a(&self) -> f64 {
        f64::from(self.adc[3]) * Self::V_SCALE_2_5
    }
    /// 1.8 V rail (`adc[4]`), volts.
    pub fn voltage_1_8(&self) -> f64 {
        f64::from(self.adc[4]) * Self::V_SCALE_2_5
    }
    /// 3.3 V rail (`adc[6]`), volts.
    pub fn voltage_3_3(&self) -> f64 {
        f64::from(self.adc[6]) * Self::V_SCALE_3_3
    }
    /// 12 V supply (`adc[7]`), volts.
    pub fn voltage_supply(&self) -> f64 {
        f64::from(self.adc[7]) * Self::V_SCALE_12
    }
    /// Top internal sensor (`t_int[0]`), °C.
    pub fn temp_top(&self) -> f64 {
        f64::from(self.t_int[0]) * Self::TEMP_SCALE
    }
    /// Bottom internal sensor (`t_int[1]`), °C.
    pub fn temp_bottom(&self) -> f64 {
        f64::from(self.t_int[1]) * Self::TEMP_SCALE
    }
    /// External probe `i` (0..4), °C, or `None` if absent.
    pub fn temp_external(&self, i: usize) -> Option<f64> {
        let t = *self.t_ext.get(i)?;
        (t != Self::MISSING_TEMP).then(|| f64::from(t) * Self::TEMP_SCALE)
    }
    /// Fan `i` (0..4) speed, or `None` if absent.
    pub fn fan_speed(&self, i: usize) -> Option<u16> {
        let f = *self.fan.get(i)?;
        (f != Self::MISSING_FAN).then_some(f)
    }

    fn read(r: &mut Reader<'_>) -> BoardStatus {
        let mut s = BoardStatus {
            adc: [0; 8],
            t_int: [0; 4],
            t_ext: [0; 4],
            fan: [0; 4],
            warning: 0,
            shutdown: 0,
        };
        s.adc.iter_mut().for_each(|v| *v = r.u16());
        s.t_int.iter_mut().for_each(|v| *v = r.i16());
        s.t_ext.iter_mut().for_each(|v| *v = r.i16());
        s.fan.iter_mut().for_each(|v| *v = r.u16());
        s.warning = r.u32();
        s.shutdown = r.u32();
        s
    }

    fn write(&self, w: &mut Writer<'_>) {
        self.adc.iter().for_each(|&v| w.u16(v));
        self.t_int.iter().for_each(|&v| w.i16(v));
        self.t_ext.iter().for_each(|&v| w.i16(v));
        self.fan.iter().for_each(|&v| w.u16(v));
        w.u32(self.warning);
        w.u32(self.shutdown);
    }
}

/// One `ip_data_t` (32 bytes: flags, MAC, IP, gateway, netmask, UDP port, 10 bytes padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpData {
    /// Flags.
    pub flags: u16,
    /// MAC address.
    pub mac: [u8; 6],
    /// IP address.
    pub ip: Ipv4Addr,
    /// Gateway.
    pub gateway: Ipv4Addr,
    /// Netmask.
    pub netmask: Ipv4Addr,
    /// UDP port.
    pub udp_port: u16,
}

impl IpData {
    /// Size on the wire.
    pub const LEN: usize = 32;

    fn read(r: &mut Reader<'_>) -> IpData {
        let d = IpData {
            flags: r.u16(),
            mac: r.bytes(),
            ip: Ipv4Addr::from(r.bytes::<4>()),
            gateway: Ipv4Addr::from(r.bytes::<4>()),
            netmask: Ipv4Addr::from(r.bytes::<4>()),
            udp_port: r.u16(),
        };
        r.skip(10);
        d
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.u16(self.flags);
        w.put(&self.mac);
        w.put(&self.ip.octets());
        w.put(&self.gateway.octets());
        w.put(&self.netmask.octets());
        w.u16(self.udp_port);
        w.zeros(10);
    }
}

/// BMP_INFO 4: the BMP's own and the SpiNNaker board's IP settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BmpIpAddresses {
    /// The BMP's interface.
    pub bmp: IpData,
    /// The board's (SpiNNaker Ethernet chip's) interface.
    pub spinnaker: IpData,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::scp::{Command, IptagFlags, ReplyMessage, Request};
    use crate::proto::sdp::tests::hex;
    use crate::proto::sdp::{self, Address, Flags};
    use proptest::prelude::*;

    fn hex_of(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The responder's reply header (§8): flags 0x07, tag 8, to the host, from board/core `src`.
    fn responder(src: u8) -> sdp::Repr {
        sdp::Repr {
            flags: Flags::NO_REPLY,
            tag: 8,
            dest: Address::new(0, 0, 7, 31),
            src: Address::scp(0, 0, src),
        }
    }

    /// Parses a reply capture under `kind`, checks it, re-emits it and compares the bytes.
    fn check(capture: &str, kind: ReplyKind, src: u8, seq: u16, expected: Reply<'_>) {
        let bytes = hex(capture);
        let msg = ReplyMessage::parse_udp(&bytes, kind).unwrap_or_else(|e| panic!("{capture}: {e}"));
        assert_eq!(msg.sdp, responder(src), "{capture}");
        assert_eq!(msg.seq, seq, "{capture}");
        assert_eq!(msg.reply, expected, "{capture}");
        let mut out = [0u8; sdp::MAX_UDP_PAYLOAD_LEN];
        let n = ReplyMessage {
            sdp: responder(src),
            seq,
            reply: expected,
        }
        .emit_udp(&mut out)
        .unwrap();
        assert_eq!(hex_of(&out[..n]), capture);
    }

    const SCAMP_VER: &str =
        "00000708ff000000000080000000000100000001ffff00f153655343264d502f5370694e4e616b657200342e302e3000";

    fn scamp_ver(p2p: u16) -> VersionReply<'static> {
        VersionReply {
            arg1: CoreLocation {
                p2p,
                physical_cpu: 1,
                virtual_cpu: 0,
            }
            .to_arg1(),
            version: 0xFFFF,
            buffer_size: 256,
            build_date: 1_700_000_000,
            id: "SC&MP/SpiNNaker",
            version_string: Some("4.0.0"),
        }
    }

    #[test]
    fn capture_sver_reply() {
        check(SCAMP_VER, ReplyKind::Version, 0, 0, Reply::Version(scamp_ver(0)));
        let bytes = hex(SCAMP_VER);
        let Reply::Version(v) = ReplyMessage::parse_udp(&bytes, ReplyKind::Version).unwrap().reply else {
            unreachable!()
        };
        // rig: CoreInfo(position=(0,0), physical_cpu=1, virt_cpu=0, (4,0,0), 256, 1700000000, …).
        assert_eq!(v.core().chip(), Some((0, 0)));
        assert_eq!(v.core().physical_cpu, 1);
        assert_eq!(v.software_version(), Some((4, 0, 0)));
        assert_eq!((v.name(), v.hardware()), ("SC&MP", Some("SpiNNaker")));
        assert!(!v.is_bmp());
        assert_eq!(hex(SCAMP_VER).len(), 48);
    }

    #[test]
    fn capture_sver_reply_booting() {
        // §3: p2p 0xFFFF while booting, seq 1.
        let cap = "00000708ff0000000000800001000001ffff0001ffff00f153655343264d502f5370694e4e616b657200342e302e3000";
        check(cap, ReplyKind::Version, 0, 1, Reply::Version(scamp_ver(0xFFFF)));
        assert!(scamp_ver(0xFFFF).core().is_booting());
        assert_eq!(scamp_ver(0xFFFF).core().chip(), None);
    }

    #[test]
    fn capture_bmp_sver_reply() {
        let cap = "00000708ff000000000080000000000000000001ffff00f153654243264d502f5370696e352d424d5000322e312e3200";
        let v = VersionReply {
            arg1: BmpLocation {
                flash_block: 0,
                frame: 0,
                can_id: 0,
                board: 0,
            }
            .to_arg1(),
            version: 0xFFFF,
            buffer_size: 256,
            build_date: 1_700_000_000,
            id: "BC&MP/Spin5-BMP",
            version_string: Some("2.1.2"),
        };
        check(cap, ReplyKind::Version, 0, 0, Reply::Version(v));
        assert!(v.is_bmp());
        assert_eq!(v.software_version(), Some((2, 1, 2)));
        assert_eq!(v.bmp().board, 0);
    }

    #[test]
    fn capture_write_and_error_shape_replies() {
        // WRITE / FILL / LED / POWER replies: rc + seq only.
        check("00000708ff000000000080000100", ReplyKind::Empty, 0, 1, Reply::Empty);
        check("00000708ff000000000080000a00", ReplyKind::Empty, 0, 10, Reply::Empty);
        check("00000708ff010000000080000000", ReplyKind::Empty, 1, 0, Reply::Empty);
        // The ADC request answered with no data: rig needs exactly 48 bytes, so do we.
        let adc = hex("00000708ff020000000080000100");
        assert_eq!(
            ReplyMessage::parse_udp(&adc, ReplyKind::BmpBoardStatus),
            Err(Error::Truncated {
                what: "BMP_INFO board status reply",
                need: 52,
                got: 4
            })
        );
        // An error reply parses under any kind.
        let mut err = adc.clone();
        err[10] = 0x84;
        for kind in ReplyKind::ALL {
            let msg = ReplyMessage::parse_udp(&err, kind).unwrap();
            assert_eq!(
                msg.reply,
                Reply::Error {
                    rc: ReturnCode::Arg,
                    body: &[]
                }
            );
            assert_eq!(msg.reply.error_arg1(), None);
        }
    }

    #[test]
    fn capture_read_replies() {
        // rig READ of 4 bytes at sv.sdram_sys (§5) and of 2 bytes (p2p_dims); LINK_READ (§4).
        check(
            "00000708ff00000000008000090000000000",
            ReplyKind::Data,
            0,
            9,
            Reply::Data(&[0; 4]),
        );
        check(
            "00000708ff000000000080000e000000",
            ReplyKind::Data,
            0,
            14,
            Reply::Data(&[0; 2]),
        );
        check(
            "00000708ff01000000008000010000000000",
            ReplyKind::Data,
            1,
            1,
            Reply::Data(&[0; 4]),
        );
        check(
            "00000708ff02000000008000020000000000",
            ReplyKind::Data,
            2,
            2,
            Reply::Data(&[0; 4]),
        );
        // rig's 44-byte read, shown complete: data straight after seq.
        let cap = format!("00000708ff00000000008000040000{}", "00".repeat(43));
        check(&cap, ReplyKind::Data, 0, 4, Reply::Data(&[0; 44]));
        let c = "00000708ff0000000000800004000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
        assert_eq!(cap, c);
        // The 256-byte read reply (270 bytes).
        let zeros = [0u8; 256];
        check(
            &format!("00000708ff0000000000800003{}", "00".repeat(257)),
            ReplyKind::Data,
            0,
            3,
            Reply::Data(&zeros),
        );
    }

    #[test]
    fn capture_info_reply() {
        let cap =
            "00000708ff000000000080000000123ffa0200004006204e000000000000000000000000000000000000000000007f0000020000";
        let info = ChipInfo {
            working_cores: 18,
            working_links: 0x3F,
            largest_router_block: 1000,
            ethernet_up: true,
            largest_sdram_block: 104_857_600,
            largest_sysram_block: 20_000,
            core_states: [0; 18],
            nearest_ethernet: 0,
            ip: Ipv4Addr::new(127, 0, 0, 2),
            root_link: 0,
        };
        check(cap, ReplyKind::Info, 0, 0, Reply::Info(info));
        // The same reply to spinnman (seq 5, §3).
        let cap5 =
            "00000708ff000000000080000500123ffa0200004006204e000000000000000000000000000000000000000000007f0000020000";
        check(cap5, ReplyKind::Info, 0, 5, Reply::Info(info));
        assert_eq!(Request::Info { arg1: 0x5F }.reply_kind(), ReplyKind::Info);
    }

    #[test]
    fn capture_iptag_replies() {
        // TTO: fixed 8, pool 8, record 32, previous 9.
        check(
            "00000708ff00000000008000040009200808",
            ReplyKind::IptagTto,
            0,
            4,
            Reply::IptagTto(TtoInfo {
                fixed: 8,
                pool: 8,
                record_size: 32,
                previous: 9,
            }),
        );
        // SET: arg1 = tag 1.
        check(
            "00000708ff00000000008000010001000000",
            ReplyKind::IptagTag,
            0,
            1,
            Reply::IptagTag(1),
        );
        // GET of one tag: one all-zero 32-byte record straight after seq.
        let cap = "00000708ff0000000000800002000000000000000000000000000000000000000000000000000000000000000000";
        let zeros = [0u8; 32];
        let records = IptagRecords::new(&zeros).unwrap();
        check(cap, ReplyKind::IptagRecords, 0, 2, Reply::IptagRecords(records));
        assert_eq!(records.len(), 1);
        assert_eq!(records.get(0).map(|r| r.flags), Some(IptagFlags(0)));
        assert_eq!(records.get(1), None);
        // CLR: rc + seq.
        check("00000708ff000000000080000300", ReplyKind::Empty, 0, 3, Reply::Empty);
    }

    #[test]
    fn capture_alloc_replies() {
        // SDRAM alloc (seq 4) and router alloc (seq 7), both arg1 = 0x60100000.
        check(
            "00000708ff00000000008000040000001060",
            ReplyKind::Alloc,
            0,
            4,
            Reply::Alloc(0x6010_0000),
        );
        check(
            "00000708ff00000000008000070000001060",
            ReplyKind::Alloc,
            0,
            7,
            Reply::Alloc(0x6010_0000),
        );
    }

    #[test]
    fn iptag_record_layout() {
        let rec = IptagRecord {
            ip: Ipv4Addr::new(192, 168, 1, 2),
            mac: [1, 2, 3, 4, 5, 6],
            tx_port: 0x1234,
            timeout: 256,
            flags: IptagFlags::VALID | IptagFlags::STRIP,
            count: 0xAABB_CCDD,
            rx_port: 17894,
            dest_addr: 0x0102,
            dest_port: 0x23,
        };
        let b = rec.to_bytes();
        assert_eq!(&b[..4], &[192, 168, 1, 2]);
        assert_eq!(&b[10..12], &[0x34, 0x12]);
        assert_eq!(&b[14..16], &[0x00, 0x81]);
        assert_eq!(&b[16..20], &[0xDD, 0xCC, 0xBB, 0xAA]);
        assert_eq!(b[24], 0x23);
        assert_eq!(&b[25..], &[0; 7]);
        assert_eq!(IptagRecord::from_bytes(&b), rec);
        assert!(IptagRecords::new(&b[..31]).is_err());
    }

    #[test]
    fn board_status_scales() {
        let s = BoardStatus {
            adc: [0, 2048, 2048, 2048, 3000, 0, 3604, 3277],
            t_int: [0x2000, 0x1A80, 0, 0],
            t_ext: [
                BoardStatus::MISSING_TEMP,
                0x1000,
                BoardStatus::MISSING_TEMP,
                BoardStatus::MISSING_TEMP,
            ],
            fan: [BoardStatus::MISSING_FAN, 1200, 0xFFFF, 0xFFFF],
            warning: 1,
            shutdown: 0,
        };
        assert!((s.voltage_1_2c() - 1.25).abs() < 1e-9);
        assert!((s.voltage_3_3() - 3604.0 * 3.75 / 4096.0).abs() < 1e-9);
        assert!((s.voltage_supply() - 12.0).abs() < 0.01);
        assert_eq!(s.temp_top(), 32.0);
        assert_eq!(s.temp_bottom(), 26.5);
        assert_eq!(s.temp_external(0), None);
        assert_eq!(s.temp_external(1), Some(16.0));
        assert_eq!(s.temp_external(9), None);
        assert_eq!(
            (s.fan_speed(0), s.fan_speed(1), s.fan_speed(7)),
            (None, Some(1200), None)
        );
        let reply = Reply::BmpBoardStatus(s);
        let mut buf = [0u8; 52];
        reply.emit(3, &mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[4..8], &[0, 0, 0, 8]);
        assert_eq!(
            Reply::parse(&Packet::new_checked(&buf[..]).unwrap(), ReplyKind::BmpBoardStatus).unwrap(),
            reply
        );
    }

    #[test]
    fn version_strings() {
        let mk = |data: &[u8]| {
            let mut b = vec![0x80, 0, 0, 0];
            b.extend_from_slice(&[0; 12]);
            b.extend_from_slice(data);
            b
        };
        fn parse(b: &[u8]) -> Result<Reply<'_>> {
            Reply::parse(&Packet::new_checked(b).unwrap(), ReplyKind::Version)
        }
        // Old kernels: one string, version in arg2.
        let old = mk(b"SC&MP/SpiNNaker\0");
        let Ok(Reply::Version(v)) = parse(&old) else { panic!() };
        assert_eq!(v.version_string, None);
        assert!(parse(&mk(b"SC&MP/SpiNNaker")).is_err());
        assert!(parse(&mk(b"SC&MP\x004.0.0")).is_err());
        assert!(parse(&mk(b"SC&MP\x004.0.0\0x")).is_err());
        assert!(parse(&mk(b"\xff\0")).is_err());
        assert!(matches!(
            parse(&[0x80, 0, 0, 0, 1]),
            Err(Error::Truncated { need: 16, got: 5, .. })
        ));
        let v = VersionReply {
            version: 311,
            version_string: None,
            ..scamp_ver(0)
        };
        assert_eq!(v.software_version(), Some((3, 11, 0)));
        let v = VersionReply {
            version_string: Some("4.x.0"),
            ..scamp_ver(0)
        };
        assert_eq!(v.software_version(), None);
    }

    #[test]
    fn strict_lengths() {
        fn p(b: &[u8], k: ReplyKind) -> Result<Reply<'_>> {
            Reply::parse(&Packet::new_checked(b).unwrap(), k)
        }
        assert!(matches!(
            p(&[0x80, 0, 0, 0, 1], ReplyKind::Empty),
            Err(Error::TooLong { .. })
        ));
        assert!(matches!(
            p(&[0x80, 0, 0, 0, 1, 2, 3], ReplyKind::Count),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(
            p(&[0x80, 0, 0, 0, 0, 1, 0, 0], ReplyKind::IptagTag),
            Err(Error::BadField { .. })
        ));
        assert_eq!(
            p(&[0x8B, 0, 1, 0, 5, 0, 0, 0], ReplyKind::Count).unwrap().error_arg1(),
            Some(5),
        );
        assert_eq!(Command::Ver.code(), 0);
    }

    // ---- property tests ----

    fn ip() -> impl Strategy<Value = Ipv4Addr> {
        any::<[u8; 4]>().prop_map(Ipv4Addr::from)
    }

    fn ip_data() -> impl Strategy<Value = IpData> {
        (any::<u16>(), any::<[u8; 6]>(), ip(), ip(), ip(), any::<u16>()).prop_map(
            |(flags, mac, ip, gateway, netmask, udp_port)| IpData {
                flags,
                mac,
                ip,
                gateway,
                netmask,
                udp_port,
            },
        )
    }

    fn chip_info() -> impl Strategy<Value = ChipInfo> {
        (
            (0u8..32, 0u8..64, 0u16..2048, any::<bool>(), any::<u32>(), any::<u32>()),
            (any::<[u8; 18]>(), any::<u16>(), ip(), any::<u16>()),
        )
            .prop_map(|((c, l, r, e, s, y), (states, eth, ip, root))| ChipInfo {
                working_cores: c,
                working_links: l,
                largest_router_block: r,
                ethernet_up: e,
                largest_sdram_block: s,
                largest_sysram_block: y,
                core_states: states,
                nearest_ethernet: eth,
                ip,
                root_link: root,
            })
    }

    fn board_status() -> impl Strategy<Value = BoardStatus> {
        (
            any::<[u16; 8]>(),
            any::<[i16; 4]>(),
            any::<[i16; 4]>(),
            any::<[u16; 4]>(),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(|(adc, t_int, t_ext, fan, warning, shutdown)| BoardStatus {
                adc,
                t_int,
                t_ext,
                fan,
                warning,
                shutdown,
            })
    }

    /// A reply built from generated parts; strings/bytes borrow from the arguments.
    #[allow(clippy::too_many_arguments)]
    fn reply<'a>(
        pick: u8,
        bytes: &'a [u8],
        records: &'a [u8],
        id: &'a str,
        ver: &'a str,
        w: [u32; 8],
        info: ChipInfo,
        status: BoardStatus,
        ips: (IpData, IpData),
    ) -> Reply<'a> {
        match pick % 18 {
            0 => Reply::Empty,
            1 => Reply::Error {
                rc: ReturnCode::from_code(0x81 + (w[0] % 0x7F) as u16),
                body: &bytes[..bytes.len().min(8)],
            },
            2 => Reply::Version(VersionReply {
                arg1: w[0],
                version: w[1] as u16,
                buffer_size: w[2] as u16,
                build_date: w[3],
                id,
                version_string: w[4].is_multiple_of(2).then_some(ver),
            }),
            3 => Reply::Data(bytes),
            4 => Reply::Arg1(w[0]),
            5 => Reply::IptagTag(w[0] as u8),
            6 => Reply::IptagRecords(IptagRecords::new(records).unwrap()),
            7 => Reply::IptagTto(TtoInfo::from_arg1(w[0])),
            8 => Reply::Alloc(w[0]),
            9 => Reply::SdramSpace {
                free: w[0],
                largest: w[1],
            },
            10 => Reply::Count(w[0]),
            11 => Reply::FixedRoute(w[0]),
            12 => Reply::Info(info),
            13 => Reply::BmpSerial(BmpSerial {
                hardware_version: w[0],
                serial: [w[1], w[2], w[3], w[4]],
                flash_buffer: w[5],
                board_status: w[6],
                cortex_boot: w[7],
            }),
            14 => {
                let mut can = [0u8; 24];
                can.iter_mut().zip(bytes).for_each(|(c, b)| *c = *b);
                Reply::BmpCanStatus(can)
            }
            15 => Reply::BmpBoardStatus(status),
            16 => Reply::BmpIpAddresses(BmpIpAddresses {
                bmp: ips.0,
                spinnaker: ips.1,
            }),
            _ => Reply::Raw(bytes),
        }
    }

    proptest! {
        #[test]
        fn reply_round_trip(pick in any::<u8>(), bytes in proptest::collection::vec(any::<u8>(), 0..=256),
                            n_records in 0usize..=8, id in "[ -~]{0,40}", ver in "[0-9.]{0,12}",
                            w in any::<[u32; 8]>(), info in chip_info(), status in board_status(),
                            ips in (ip_data(), ip_data()), seq in any::<u16>()) {
            let records: Vec<u8> = (0..n_records * 32).map(|i| bytes.get(i % bytes.len().max(1)).copied().unwrap_or(0)).collect();
            // Records keep only their defined bytes: normalise through to_bytes.
            let records: Vec<u8> = records.chunks_exact(32)
                .flat_map(|c| IptagRecord::from_bytes(c.try_into().unwrap()).to_bytes()).collect();
            let r = reply(pick, &bytes, &records, &id, &ver, w, info, status, ips);
            let kind = r.kind().unwrap_or(ReplyKind::Raw);
            let mut buf = vec![0u8; r.buffer_len()];
            r.emit(seq, &mut Packet::new_unchecked(&mut buf[..]));
            let packet = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(packet.seq(), seq);
            prop_assert_eq!(Reply::parse(&packet, kind).unwrap(), r);
            let msg = ReplyMessage { sdp: responder(3), seq, reply: r };
            let mut out = [0u8; sdp::MAX_UDP_PAYLOAD_LEN];
            let n = msg.emit_udp(&mut out).unwrap();
            prop_assert_eq!(ReplyMessage::parse_udp(&out[..n], kind).unwrap(), msg);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            for kind in ReplyKind::ALL {
                if let Ok(Reply::IptagRecords(r)) = Reply::parse(&Packet::new_unchecked(&bytes[..]), kind) {
                    let _ = r.iter().count();
                    let _ = r.get(usize::MAX);
                }
                let _ = ReplyMessage::parse_udp(&bytes, kind);
            }
            if let Some(b) = bytes.first_chunk::<32>() {
                let _ = IptagRecord::from_bytes(b);
            }
            let _ = IptagRecords::new(&bytes).map(|r| r.iter().count());
        }
    }
}
