//! SDP, the SpiNNaker Datagram Protocol: the 8-byte header every SCP command and reply travels
//! in, and the 2 padding bytes that frame it inside a UDP payload.
//!
//! Everything a host says to a SpiNNaker board or a BMP on UDP port 17893 is an SDP packet
//! (protocols.md §1–§2), so this module sits under [`super::scp`]: it only knows where a packet
//! comes from and goes to, never what it means.
//!
//! Layout (SDP offsets; add 2 for UDP payload offsets):
//!
//! | off | field | encoding |
//! |---|---|---|
//! | 0 | flags | [`Flags`]: 0x80 reply expected, 0x40 SUM, 0x20 NR, low bits conventionally 0b111 |
//! | 1 | tag | IP tag; host requests use [`TAG_NONE`] (0xFF) |
//! | 2 | dest port/cpu | `(port & 7) << 5 \| (cpu & 31)` |
//! | 3 | src port/cpu | same packing; the host sends 0xFF |
//! | 4, 5 | dest y, dest x | **y before x** (LE u16 `x << 8 \| y`) |
//! | 6, 7 | src y, src x | same |
//! | 8.. | data | at most [`MAX_DATA_LEN`] (272) bytes |
//!
//! Types: [`Packet`] is the checked zero-copy view of an SDP packet, [`Repr`] the parsed header,
//! [`UdpFrame`] the view of a whole UDP payload (padding + packet).

use super::{Error, Result};

/// Length of the SDP header.
pub const HEADER_LEN: usize = 8;
/// Most data bytes an SDP packet may carry (16 SCP header bytes + 256 data bytes).
pub const MAX_DATA_LEN: usize = 272;
/// Longest SDP packet SCAMP accepts (`8 + 16 + 256`); anything longer is dropped.
pub const MAX_LEN: usize = HEADER_LEN + MAX_DATA_LEN;
/// Number of padding bytes in front of an SDP packet in a UDP payload.
pub const PADDING_LEN: usize = 2;
/// Longest UDP payload carrying SDP.
pub const MAX_UDP_PAYLOAD_LEN: usize = PADDING_LEN + MAX_LEN;

/// Tag value meaning "no tag": SCAMP allocates a transient tag for the reply.
pub const TAG_NONE: u8 = 0xFF;
/// SDP port of the monitor's SCP handler (SCAMP / SARK / BMP).
pub const PORT_SCP: u8 = 0;
/// SDP port meaning "Ethernet / the host".
pub const PORT_ETH: u8 = 7;
/// CPU number used with [`PORT_ETH`] by the host (`0xFF` = port 7, cpu 31).
pub const CPU_ETH: u8 = 31;
/// Chip coordinate meaning "the Ethernet chip this packet arrived on" (dest (255, 255)).
pub const CHIP_ROOT: u8 = 255;

/// Byte offsets of the SDP header fields.
mod field {
    pub const FLAGS: usize = 0;
    pub const TAG: usize = 1;
    pub const DEST_PORT_CPU: usize = 2;
    pub const SRC_PORT_CPU: usize = 3;
    pub const DEST_Y: usize = 4;
    pub const DEST_X: usize = 5;
    pub const SRC_Y: usize = 6;
    pub const SRC_X: usize = 7;
    pub const DATA: core::ops::RangeFrom<usize> = 8..;
}

/// The SDP flags byte.
///
/// Any value is kept as is: spinnman only accepts 0x07, 0x27, 0x87 and 0xA7, SCAMP only looks at
/// [`Flags::REPLY_EXPECTED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Flags(u8);

impl Flags {
    /// Bit 7: the sender wants a reply.
    pub const REPLY_EXPECTED: Flags = Flags(0x80);
    /// Bit 6: the packet carries a checksum (ignored by SCAMP 4).
    pub const SUM: Flags = Flags(0x40);
    /// Bit 5: do not route over P2P.
    pub const NR: Flags = Flags(0x20);
    /// The low bits every client sets (0b111).
    pub const CONVENTIONAL: Flags = Flags(0x07);
    /// What hosts send with requests that want a reply (0x87).
    pub const REQUEST: Flags = Flags(0x87);
    /// What hosts send with requests that want no reply, and what replies carry (0x07).
    pub const NO_REPLY: Flags = Flags(0x07);

    /// Flags from the raw byte.
    pub const fn from_bits(bits: u8) -> Flags {
        Flags(bits)
    }
    /// The raw byte.
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// True if every bit of `other` is set in `self`.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    /// True if the sender wants a reply (bit 7).
    pub const fn reply_expected(self) -> bool {
        self.contains(Flags::REPLY_EXPECTED)
    }
    /// `self` with the bits of `other` set.
    pub const fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
    /// `self` with the bits of `other` cleared.
    pub const fn without(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        self.with(rhs)
    }
}

/// One end of an SDP conversation: a chip, an SDP port on it and a core.
///
/// For a BMP the `cpu` field is the board number within the frame. `port` must be at most 7 and
/// `cpu` at most 31; [`Address::port_cpu`] masks them into one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Address {
    /// Chip x coordinate (255 with y 255 = "this Ethernet chip / root").
    pub x: u8,
    /// Chip y coordinate.
    pub y: u8,
    /// SDP port, 0..=7 (0 = SCP to the monitor, 7 = Ethernet/host).
    pub port: u8,
    /// Virtual core 0..=17 (0 = monitor), or the board number for a BMP; at most 31.
    pub cpu: u8,
}

impl Address {
    /// The host as rig addresses itself: port 7, cpu 31, chip (0, 0).
    pub const HOST: Address = Address::new(0, 0, PORT_ETH, CPU_ETH);
    /// The root chip's monitor: chip (255, 255), port 0, cpu 0.
    pub const ROOT_MONITOR: Address = Address::new(CHIP_ROOT, CHIP_ROOT, PORT_SCP, 0);

    /// An address from its four parts.
    pub const fn new(x: u8, y: u8, port: u8, cpu: u8) -> Address {
        Address { x, y, port, cpu }
    }
    /// The SCP handler (port 0) of core `cpu` on chip (x, y); for a BMP, `cpu` is the board.
    pub const fn scp(x: u8, y: u8, cpu: u8) -> Address {
        Address::new(x, y, PORT_SCP, cpu)
    }
    /// An address from chip coordinates and a packed port/cpu byte.
    #[inline]
    pub const fn from_port_cpu(x: u8, y: u8, port_cpu: u8) -> Address {
        Address::new(x, y, port_cpu >> 5, port_cpu & 31)
    }
    /// The packed port/cpu byte `(port & 7) << 5 | (cpu & 31)`.
    #[inline]
    pub const fn port_cpu(&self) -> u8 {
        ((self.port & 7) << 5) | (self.cpu & 31)
    }
    /// The chip as a P2P address `x << 8 | y` (how it appears as a LE u16 on the wire).
    pub const fn p2p(&self) -> u16 {
        ((self.x as u16) << 8) | self.y as u16
    }
}

/// A checked zero-copy view of an SDP packet (no UDP padding).
///
/// After [`Packet::new_checked`] the header accessors cannot fail. Accessors on a packet made
/// with [`Packet::new_unchecked`] panic if the buffer is shorter than [`HEADER_LEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer, checking that it holds a header and is at most [`MAX_LEN`] bytes.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer is `HEADER_LEN..=MAX_LEN` bytes long.
    pub fn check_len(&self) -> Result<()> {
        let got = self.buffer.as_ref().len();
        if got < HEADER_LEN {
            Err(Error::Truncated {
                what: "SDP packet",
                need: HEADER_LEN,
                got,
            })
        } else if got > MAX_LEN {
            Err(Error::TooLong {
                what: "SDP packet",
                max: MAX_LEN,
                got,
            })
        } else {
            Ok(())
        }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Length of the whole packet (header + data).
    pub fn packet_len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    /// The flags byte.
    pub fn flags(&self) -> Flags {
        Flags(self.buffer.as_ref()[field::FLAGS])
    }

    /// The IP tag byte.
    pub fn tag(&self) -> u8 {
        self.buffer.as_ref()[field::TAG]
    }

    /// The destination (chip, port, cpu).
    pub fn dest(&self) -> Address {
        let b = self.buffer.as_ref();
        Address::from_port_cpu(b[field::DEST_X], b[field::DEST_Y], b[field::DEST_PORT_CPU])
    }

    /// The source (chip, port, cpu).
    pub fn src(&self) -> Address {
        let b = self.buffer.as_ref();
        Address::from_port_cpu(b[field::SRC_X], b[field::SRC_Y], b[field::SRC_PORT_CPU])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The bytes after the header (the SCP message, for port 0).
    pub fn data(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::DATA]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the flags byte.
    pub fn set_flags(&mut self, flags: Flags) {
        self.buffer.as_mut()[field::FLAGS] = flags.0;
    }

    /// Sets the IP tag byte.
    pub fn set_tag(&mut self, tag: u8) {
        self.buffer.as_mut()[field::TAG] = tag;
    }

    /// Sets the destination.
    pub fn set_dest(&mut self, dest: Address) {
        let b = self.buffer.as_mut();
        b[field::DEST_PORT_CPU] = dest.port_cpu();
        b[field::DEST_Y] = dest.y;
        b[field::DEST_X] = dest.x;
    }

    /// Sets the source.
    pub fn set_src(&mut self, src: Address) {
        let b = self.buffer.as_mut();
        b[field::SRC_PORT_CPU] = src.port_cpu();
        b[field::SRC_Y] = src.y;
        b[field::SRC_X] = src.x;
    }

    /// The bytes after the header, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A parsed SDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Repr {
    /// Flags byte.
    pub flags: Flags,
    /// IP tag.
    pub tag: u8,
    /// Destination.
    pub dest: Address,
    /// Source.
    pub src: Address,
}

impl Repr {
    /// The header a host puts on a request that wants a reply: flags 0x87, tag 0xFF, source
    /// = [`Address::HOST`] (port 7, cpu 31, chip (0, 0), as rig sends it).
    pub const fn request(dest: Address) -> Repr {
        Repr {
            flags: Flags::REQUEST,
            tag: TAG_NONE,
            dest,
            src: Address::HOST,
        }
    }

    /// The header of the reply to this request, as SCAMP builds it: flags with 0x80 cleared,
    /// source and destination swapped, tag kept (a responder then writes the transient tag it
    /// used, see protocols.md §4).
    pub const fn reply(&self) -> Repr {
        Repr {
            flags: self.flags.without(Flags::REPLY_EXPECTED),
            tag: self.tag,
            dest: self.src,
            src: self.dest,
        }
    }

    /// Parses the header of a packet (checking its length first).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            flags: packet.flags(),
            tag: packet.tag(),
            dest: packet.dest(),
            src: packet.src(),
        })
    }

    /// Bytes this header occupies ([`HEADER_LEN`]).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into a packet. Panics if the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        packet.set_flags(self.flags);
        packet.set_tag(self.tag);
        packet.set_dest(self.dest);
        packet.set_src(self.src);
    }

    /// Writes padding, this header and `data` into `buf` as a UDP payload; returns its length.
    ///
    /// Fails with [`Error::TooLong`] if `data` exceeds [`MAX_DATA_LEN`] and with
    /// [`Error::Truncated`] if `buf` is too small.
    #[inline]
    pub fn emit_udp(&self, data: &[u8], buf: &mut [u8]) -> Result<usize> {
        if data.len() > MAX_DATA_LEN {
            return Err(Error::TooLong {
                what: "SDP data",
                max: MAX_DATA_LEN,
                got: data.len(),
            });
        }
        let len = udp_payload_len(HEADER_LEN + data.len());
        let got = buf.len();
        let out = buf.get_mut(..len).ok_or(Error::Truncated {
            what: "UDP output buffer",
            need: len,
            got,
        })?;
        let mut frame = UdpFrame::new_unchecked(out);
        frame.clear_padding();
        let mut packet = frame.sdp_mut();
        self.emit(&mut packet);
        packet.data_mut().copy_from_slice(data);
        Ok(len)
    }
}

/// Length of the UDP payload carrying an SDP packet of `sdp_len` bytes.
#[inline]
pub const fn udp_payload_len(sdp_len: usize) -> usize {
    PADDING_LEN + sdp_len
}

/// A view of a UDP payload carrying SDP: 2 padding bytes, then the SDP packet.
///
/// SCAMP ignores the padding bytes' values; hosts send zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpFrame<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> UdpFrame<T> {
        UdpFrame { buffer }
    }

    /// Wraps a buffer, checking it holds padding plus a valid-length SDP packet.
    pub fn new_checked(buffer: T) -> Result<UdpFrame<T>> {
        let frame = UdpFrame::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks that the buffer is `PADDING_LEN + HEADER_LEN ..= MAX_UDP_PAYLOAD_LEN` bytes long.
    pub fn check_len(&self) -> Result<()> {
        let got = self.buffer.as_ref().len();
        let need = PADDING_LEN + HEADER_LEN;
        if got < need {
            Err(Error::Truncated {
                what: "SDP UDP payload",
                need,
                got,
            })
        } else if got > MAX_UDP_PAYLOAD_LEN {
            Err(Error::TooLong {
                what: "SDP UDP payload",
                max: MAX_UDP_PAYLOAD_LEN,
                got,
            })
        } else {
            Ok(())
        }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The two padding bytes.
    pub fn padding(&self) -> [u8; 2] {
        let b = self.buffer.as_ref();
        [b[0], b[1]]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> UdpFrame<&'a T> {
    /// The SDP packet after the padding.
    pub fn sdp(&self) -> Packet<&'a [u8]> {
        Packet::new_unchecked(&self.buffer.as_ref()[PADDING_LEN..])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpFrame<T> {
    /// Sets both padding bytes to zero.
    pub fn clear_padding(&mut self) {
        self.buffer.as_mut()[..PADDING_LEN].fill(0);
    }

    /// The SDP packet after the padding, mutably.
    pub fn sdp_mut(&mut self) -> Packet<&mut [u8]> {
        Packet::new_unchecked(&mut self.buffer.as_mut()[PADDING_LEN..])
    }
}

/// Views a UDP payload as an SDP packet (checking lengths, ignoring the padding values).
#[inline]
pub fn parse_udp(payload: &[u8]) -> Result<Packet<&[u8]>> {
    Ok(UdpFrame::new_checked(payload)?.sdp())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes a hex string (test fixtures only).
    pub(crate) fn hex(s: &str) -> Vec<u8> {
        assert!(s.len().is_multiple_of(2), "odd hex length");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
            .collect()
    }

    #[test]
    fn rig_sver_header() {
        // protocol_captures.md §1, rig.
        let udp = hex("000087ff00ffffff000000000000000000000000000000000000");
        let p = parse_udp(&udp).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.flags, Flags::REQUEST);
        assert!(r.flags.reply_expected());
        assert_eq!(r.tag, TAG_NONE);
        assert_eq!(r.dest, Address::new(255, 255, 0, 0));
        assert_eq!(r.src, Address::new(0, 0, 7, 31));
        assert_eq!(r, Repr::request(Address::ROOT_MONITOR));
        assert_eq!(p.data().len(), 16);

        let mut out = [0u8; MAX_UDP_PAYLOAD_LEN];
        let n = r.emit_udp(p.data(), &mut out).unwrap();
        assert_eq!(&out[..n], &udp[..]);
    }

    #[test]
    fn spinnman_sver_header_src_chip() {
        // spinnman sends source chip (255, 255).
        let udp = hex("000087ff00ffffffffff00000000000000000000000000000000");
        let r = Repr::parse(&parse_udp(&udp).unwrap()).unwrap();
        assert_eq!(r.src, Address::new(255, 255, 7, 31));
        assert_eq!(r.dest, Address::ROOT_MONITOR);
    }

    #[test]
    fn y_before_x_and_port_cpu_packing() {
        // §7: ReadMemory((1,2,3), ...): dest x=1, y=2, cpu 3 -> bytes `03 ff 02 01`.
        let udp = hex("000087ff03ff0201ffff02003412000000700001000002000000");
        let r = Repr::parse(&parse_udp(&udp).unwrap()).unwrap();
        assert_eq!(r.dest, Address::new(1, 2, 0, 3));
        assert_eq!(r.dest.p2p(), 0x0102);
        // Reverse IP tag target byte 0x23 = port 1, cpu 3.
        assert_eq!(Address::from_port_cpu(0, 0, 0x23), Address::new(0, 0, 1, 3));
        assert_eq!(Address::new(0, 0, 1, 3).port_cpu(), 0x23);
    }

    #[test]
    fn reply_header_from_request() {
        // The responder's reply to a BMP request to board 1 (§4): `07 08 ff 01 00 00 00 00`.
        let req = Repr::request(Address::scp(0, 0, 1));
        let mut reply = req.reply();
        assert_eq!(reply.flags, Flags::NO_REPLY);
        assert_eq!(reply.dest, Address::HOST);
        assert_eq!(reply.src, Address::scp(0, 0, 1));
        reply.tag = 8;
        let mut out = [0u8; 16];
        let n = reply.emit_udp(&[0x80, 0, 0, 0], &mut out).unwrap();
        assert_eq!(&out[..n], &hex("00000708ff010000000080000000")[..]);
    }

    #[test]
    fn lengths() {
        assert_eq!(
            Packet::new_checked(&[0u8; 7][..]),
            Err(Error::Truncated {
                what: "SDP packet",
                need: 8,
                got: 7
            })
        );
        assert!(Packet::new_checked(&[0u8; 280][..]).is_ok());
        assert_eq!(
            Packet::new_checked(&[0u8; 281][..]),
            Err(Error::TooLong {
                what: "SDP packet",
                max: 280,
                got: 281
            })
        );
        assert!(parse_udp(&[0u8; 282]).is_ok());
        assert!(matches!(parse_udp(&[0u8; 283]), Err(Error::TooLong { .. })));
        assert!(matches!(parse_udp(&[0u8; 9]), Err(Error::Truncated { .. })));
        let mut small = [0u8; 12];
        assert!(matches!(
            Repr::request(Address::ROOT_MONITOR).emit_udp(&[1, 2, 3], &mut small),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(
            Repr::request(Address::ROOT_MONITOR).emit_udp(&[0; 273], &mut [0u8; 400]),
            Err(Error::TooLong { .. })
        ));
    }

    #[test]
    fn flags_ops() {
        let f = Flags::NO_REPLY | Flags::REPLY_EXPECTED;
        assert_eq!(f, Flags::REQUEST);
        assert_eq!(f.without(Flags::REPLY_EXPECTED).bits(), 0x07);
        assert!(Flags::from_bits(0xA7).contains(Flags::NR));
        assert!(!Flags::from_bits(0x27).reply_expected());
    }

    fn address() -> impl Strategy<Value = Address> {
        (any::<u8>(), any::<u8>(), 0u8..8, 0u8..32).prop_map(|(x, y, p, c)| Address::new(x, y, p, c))
    }

    proptest! {
        #[test]
        fn header_round_trip(flags in any::<u8>(), tag in any::<u8>(), dest in address(), src in address(),
                             data in proptest::collection::vec(any::<u8>(), 0..=MAX_DATA_LEN)) {
            let repr = Repr { flags: Flags::from_bits(flags), tag, dest, src };
            let mut buf = [0u8; MAX_UDP_PAYLOAD_LEN];
            let n = repr.emit_udp(&data, &mut buf).unwrap();
            prop_assert_eq!(n, 2 + 8 + data.len());
            let packet = parse_udp(&buf[..n]).unwrap();
            prop_assert_eq!(Repr::parse(&packet).unwrap(), repr);
            prop_assert_eq!(packet.data(), &data[..]);
            // The reply of the reply is the request with the reply bit cleared.
            prop_assert_eq!(repr.reply().reply().dest, repr.dest);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_udp(&bytes).map(|p| Repr::parse(&p));
            let _ = Repr::parse(&Packet::new_unchecked(&bytes[..]));
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.flags(), p.tag(), p.dest(), p.src(), p.data());
            }
            if let Ok(f) = UdpFrame::new_checked(&bytes[..]) {
                let _ = (f.padding(), f.sdp().data());
            }
        }
    }
}
