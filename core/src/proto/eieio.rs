//! EIEIO: the compact multicast-event protocol between SpiNNaker applications and the host.
//!
//! Live input/output and buffered recording talk EIEIO over IP tags and reverse IP tags. There
//! are two kinds of message, told apart by the top two bits of the little-endian u16 header:
//!
//! - **data messages** ([`DataPacket`], [`DataRepr`], [`DataBuilder`]): a count, flags, optional
//!   key and payload prefixes and up to 255 keys (16 or 32 bits, with or without payloads), at
//!   most [`MAX_PACKET_LEN`] bytes;
//! - **command messages** ([`CommandPacket`], [`CommandRepr`]): bits 15..14 = `01`, a 14-bit
//!   command id and a command-specific payload (database notification, buffer requests,
//!   sequenced data, read requests and acks).
//!
//! [`EieioMessage::parse`] decides which one a datagram holds. Everything is little-endian.
//! Byte layouts follow spinnman 1!7.4.1's encoders, checked against captured vectors.

use core::fmt;
use core::ops::Deref;

use super::{Error, Result};

/// Largest EIEIO data message (spinnman's `UDP_MESSAGE_MAX_SIZE`).
pub const MAX_PACKET_LEN: usize = 256;
/// Length of the u16 header shared by data and command messages.
pub const HEADER_LEN: usize = 2;
/// Largest number of requests (or acks) in one read-data / data-read command (3-bit count).
pub const MAX_REQUESTS: usize = 7;
/// Largest command id (14 bits).
pub const MAX_COMMAND_ID: u16 = 0x3FFF;

const DATA: &str = "EIEIO data message";
const COMMAND: &str = "EIEIO command message";

/// Byte offsets shared by both kinds of message.
mod field {
    /// Data: element count (low byte of the u16 header). Command: low byte of the id.
    pub const COUNT: usize = 0;
    /// Data: flags (high byte of the header). Command: `0x40 | id >> 8`.
    pub const FLAGS: usize = 1;
    /// First byte after the header: optional prefixes (data) or the command payload.
    pub const BODY: usize = 2;
}

/// Bits of the flags byte (byte 1) of a data message.
mod flag {
    /// P: a u16 key prefix follows the header.
    pub const KEY_PREFIX: u8 = 0x80;
    /// F: the key prefix is shifted into the upper half of the key.
    pub const PREFIX_UPPER: u8 = 0x40;
    /// D: a payload prefix follows.
    pub const PAYLOAD_PREFIX: u8 = 0x20;
    /// T: payloads are timestamps.
    pub const TIMESTAMP: u8 = 0x10;
    /// Position of the 2-bit type.
    pub const TYPE_SHIFT: u32 = 2;
    /// The 2-bit tag.
    pub const TAG: u8 = 0x03;
    /// The two bits that mark a command message.
    pub const KIND_MASK: u8 = 0xC0;
    /// P = 0, F = 1: a command message.
    pub const COMMAND: u8 = 0x40;
}

/// Payload offsets of the command messages (relative to the first byte after the header).
mod cmd_field {
    /// SPINNAKER_REQUEST_BUFFERS: y, x, p << 3, pad, region, sequence, u32 space.
    pub mod request_buffers {
        pub const Y: usize = 0;
        pub const X: usize = 1;
        pub const P: usize = 2;
        pub const REGION: usize = 4;
        pub const SEQUENCE: usize = 5;
        pub const SPACE: usize = 6;
        pub const LEN: usize = 10;
    }
    /// HOST_SEND_SEQUENCED_DATA: region, sequence, data message.
    pub mod sequenced_data {
        pub const REGION: usize = 0;
        pub const SEQUENCE: usize = 1;
        pub const MESSAGE: usize = 2;
    }
    /// SPINNAKER_REQUEST_READ_DATA: x, y, p << 3 | n, sequence, requests.
    pub mod read_data {
        pub const X: usize = 0;
        pub const Y: usize = 1;
        pub const P_N: usize = 2;
        pub const SEQUENCE: usize = 3;
        pub const REQUESTS: usize = 4;
        /// First request: channel, region, u32 address, u32 length.
        pub const FIRST_LEN: usize = 10;
        /// Later requests: 2 pad bytes first.
        pub const LATER_LEN: usize = 12;
    }
    /// HOST_DATA_READ: n, sequence, acks (2 pad, channel, region, u32 space read).
    pub mod data_read {
        pub const N: usize = 0;
        pub const SEQUENCE: usize = 1;
        pub const ACKS: usize = 2;
        pub const ACK_LEN: usize = 8;
    }
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

/// True if a message whose header's high byte is `flags` is a command message.
const fn flags_mark_command(flags: u8) -> bool {
    flags & flag::KIND_MASK == flag::COMMAND
}

// ---------------------------------------------------------------------------------------------
// Data messages
// ---------------------------------------------------------------------------------------------

/// The element type of a data message (bits 3..2 of the flags byte; all four values are used).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum EieioType {
    /// 16-bit keys.
    Key16,
    /// 16-bit keys, each with a 16-bit payload.
    KeyPayload16,
    /// 32-bit keys.
    Key32,
    /// 32-bit keys, each with a 32-bit payload.
    KeyPayload32,
}

impl EieioType {
    /// All four types, by wire value.
    pub const ALL: [EieioType; 4] = [
        EieioType::Key16,
        EieioType::KeyPayload16,
        EieioType::Key32,
        EieioType::KeyPayload32,
    ];

    /// The type with wire value `bits & 3`.
    pub const fn from_bits(bits: u8) -> EieioType {
        match bits & 3 {
            0 => EieioType::Key16,
            1 => EieioType::KeyPayload16,
            2 => EieioType::Key32,
            _ => EieioType::KeyPayload32,
        }
    }

    /// The 2-bit wire value.
    pub const fn bits(self) -> u8 {
        match self {
            EieioType::Key16 => 0,
            EieioType::KeyPayload16 => 1,
            EieioType::Key32 => 2,
            EieioType::KeyPayload32 => 3,
        }
    }

    /// Bytes per key, which is also the size of each payload and of the payload prefix.
    pub const fn key_len(self) -> usize {
        match self {
            EieioType::Key16 | EieioType::KeyPayload16 => 2,
            EieioType::Key32 | EieioType::KeyPayload32 => 4,
        }
    }

    /// True if each element carries a payload.
    pub const fn has_payload(self) -> bool {
        matches!(self, EieioType::KeyPayload16 | EieioType::KeyPayload32)
    }

    /// Bytes per element (key plus payload if any).
    pub const fn element_len(self) -> usize {
        if self.has_payload() {
            2 * self.key_len()
        } else {
            self.key_len()
        }
    }

    /// Largest value a key, payload or payload prefix of this type can hold.
    pub const fn max_value(self) -> u32 {
        if self.key_len() == 2 { 0xFFFF } else { u32::MAX }
    }
}

/// How a key prefix combines with each key (the F bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum PrefixPosition {
    /// F = 0: `key |= prefix`.
    Lower,
    /// F = 1: `key |= prefix << 16`.
    Upper,
}

/// A key prefix: the u16 after the header when P is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct KeyPrefix {
    /// The prefix value.
    pub value: u16,
    /// Where it goes.
    pub position: PrefixPosition,
}

impl KeyPrefix {
    /// A prefix ORed into the low half of each key.
    pub const fn lower(value: u16) -> KeyPrefix {
        KeyPrefix {
            value,
            position: PrefixPosition::Lower,
        }
    }

    /// A prefix shifted into the upper half of each key.
    pub const fn upper(value: u16) -> KeyPrefix {
        KeyPrefix {
            value,
            position: PrefixPosition::Upper,
        }
    }

    /// The bits this prefix ORs into every key.
    pub const fn mask(self) -> u32 {
        match self.position {
            PrefixPosition::Lower => self.value as u32,
            PrefixPosition::Upper => (self.value as u32) << 16,
        }
    }
}

/// Everything in a data message except its elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DataHeader {
    /// Element type.
    pub eieio_type: EieioType,
    /// 2-bit tag (only the low 2 bits are emitted).
    pub tag: u8,
    /// Key prefix (P and F bits).
    pub key_prefix: Option<KeyPrefix>,
    /// Payload prefix (D bit): u16 on the wire for 16-bit types (only the low 16 bits are
    /// emitted), u32 for 32-bit types.
    pub payload_prefix: Option<u32>,
    /// T bit: payloads (or the payload prefix) are timestamps.
    pub payload_is_timestamp: bool,
}

impl DataHeader {
    /// A header of type `eieio_type` with tag 0 and no prefixes.
    pub const fn new(eieio_type: EieioType) -> DataHeader {
        DataHeader {
            eieio_type,
            tag: 0,
            key_prefix: None,
            payload_prefix: None,
            payload_is_timestamp: false,
        }
    }

    /// Decodes the flags byte and the prefixes that follow the header in `buf` (a message
    /// already checked to be long enough).
    fn decode(buf: &[u8]) -> DataHeader {
        let flags = buf[field::FLAGS];
        let eieio_type = EieioType::from_bits(flags >> flag::TYPE_SHIFT);
        let mut at = field::BODY;
        let key_prefix = if flags & flag::KEY_PREFIX != 0 {
            let value = le_u16(buf, at);
            at += 2;
            let position = if flags & flag::PREFIX_UPPER != 0 {
                PrefixPosition::Upper
            } else {
                PrefixPosition::Lower
            };
            Some(KeyPrefix { value, position })
        } else {
            None
        };
        let payload_prefix = if flags & flag::PAYLOAD_PREFIX == 0 {
            None
        } else if eieio_type.key_len() == 2 {
            Some(u32::from(le_u16(buf, at)))
        } else {
            Some(le_u32(buf, at))
        };
        DataHeader {
            eieio_type,
            tag: flags & flag::TAG,
            key_prefix,
            payload_prefix,
            payload_is_timestamp: flags & flag::TIMESTAMP != 0,
        }
    }

    /// The flags byte (byte 1 of the message).
    pub fn flags(&self) -> u8 {
        let mut f = (self.eieio_type.bits() << flag::TYPE_SHIFT) | (self.tag & flag::TAG);
        if let Some(prefix) = self.key_prefix {
            f |= flag::KEY_PREFIX;
            if prefix.position == PrefixPosition::Upper {
                f |= flag::PREFIX_UPPER;
            }
        }
        if self.payload_prefix.is_some() {
            f |= flag::PAYLOAD_PREFIX;
        }
        if self.payload_is_timestamp {
            f |= flag::TIMESTAMP;
        }
        f
    }

    /// Length of the header including the prefixes.
    pub fn header_len(&self) -> usize {
        header_len_for_flags(self.flags())
    }

    /// Most elements that fit in a [`MAX_PACKET_LEN`]-byte message with this header (127 16-bit
    /// keys, 63 32-bit keys, 63 16-bit key/payloads, 31 32-bit key/payloads without prefixes).
    pub fn max_count(&self) -> usize {
        ((MAX_PACKET_LEN - self.header_len()) / self.eieio_type.element_len()).min(255)
    }

    /// Checks that the tag fits in 2 bits and the payload prefix in the type's width.
    pub fn check(&self) -> Result<()> {
        if self.tag > flag::TAG {
            return Err(Error::BadField {
                what: DATA,
                field: "tag",
                detail: format!("{} does not fit in 2 bits", self.tag),
            });
        }
        if let Some(p) = self.payload_prefix
            && p > self.eieio_type.max_value()
        {
            return Err(Error::BadField {
                what: DATA,
                field: "payload_prefix",
                detail: format!("{p:#x} does not fit a {:?} payload prefix", self.eieio_type),
            });
        }
        Ok(())
    }

    fn write(&self, buf: &mut [u8], count: u8) {
        buf[field::COUNT] = count;
        buf[field::FLAGS] = self.flags();
        let mut at = field::BODY;
        if let Some(prefix) = self.key_prefix {
            put(buf, at, &prefix.value.to_le_bytes());
            at += 2;
        }
        if let Some(p) = self.payload_prefix {
            if self.eieio_type.key_len() == 2 {
                put(buf, at, &(p as u16).to_le_bytes());
            } else {
                put(buf, at, &p.to_le_bytes());
            }
        }
    }
}

/// Header length (with prefixes) implied by a data message's flags byte.
fn header_len_for_flags(flags: u8) -> usize {
    let ty = EieioType::from_bits(flags >> flag::TYPE_SHIFT);
    let mut len = HEADER_LEN;
    if flags & flag::KEY_PREFIX != 0 {
        len += 2;
    }
    if flags & flag::PAYLOAD_PREFIX != 0 {
        len += ty.key_len();
    }
    len
}

/// One decoded event: the key with the key prefix applied and the payload (the element's
/// payload ORed with the payload prefix, or the payload prefix alone for key-only types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Event {
    /// The key.
    pub key: u32,
    /// The payload or timestamp, if the message has payloads or a payload prefix.
    pub payload: Option<u32>,
}

/// Iterator over the decoded [`Event`]s of a data message.
#[derive(Debug, Clone)]
pub struct Events<'a> {
    chunks: core::slice::ChunksExact<'a, u8>,
    eieio_type: EieioType,
    key_mask: u32,
    payload_prefix: Option<u32>,
}

impl<'a> Events<'a> {
    fn new(header: &DataHeader, elements: &'a [u8], count: usize) -> Events<'a> {
        let len = count
            .saturating_mul(header.eieio_type.element_len())
            .min(elements.len());
        let elements = elements.get(..len).unwrap_or(&[]);
        Events {
            chunks: elements.chunks_exact(header.eieio_type.element_len()),
            eieio_type: header.eieio_type,
            key_mask: header.key_prefix.map_or(0, KeyPrefix::mask),
            payload_prefix: header.payload_prefix,
        }
    }
}

impl Iterator for Events<'_> {
    type Item = Event;

    #[inline]
    fn next(&mut self) -> Option<Event> {
        let c = self.chunks.next()?;
        let (key, payload) = match self.eieio_type {
            EieioType::Key16 => (u32::from(le_u16(c, 0)), None),
            EieioType::KeyPayload16 => (u32::from(le_u16(c, 0)), Some(u32::from(le_u16(c, 2)))),
            EieioType::Key32 => (le_u32(c, 0), None),
            EieioType::KeyPayload32 => (le_u32(c, 0), Some(le_u32(c, 4))),
        };
        let payload = match (payload, self.payload_prefix) {
            (Some(p), Some(prefix)) => Some(p | prefix),
            (Some(p), None) => Some(p),
            (None, prefix) => prefix,
        };
        Some(Event {
            key: key | self.key_mask,
            payload,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl ExactSizeIterator for Events<'_> {}

/// A read/write view of an EIEIO data message (smoltcp style).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> DataPacket<T> {
    /// Wraps a buffer without checking it; accessors panic if it is too short.
    pub const fn new_unchecked(buffer: T) -> DataPacket<T> {
        DataPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<DataPacket<T>> {
        let packet = DataPacket::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer is a data message (not a command), holds the prefixes its flags
    /// announce and exactly `count` elements, and is at most [`MAX_PACKET_LEN`] bytes. After
    /// this every accessor is infallible.
    pub fn check_len(&self) -> Result<()> {
        let buf = self.buffer.as_ref();
        let len = buf.len();
        let (Some(&count), Some(&flags)) = (buf.get(field::COUNT), buf.get(field::FLAGS)) else {
            return Err(Error::Truncated {
                what: DATA,
                need: HEADER_LEN,
                got: len,
            });
        };
        if flags_mark_command(flags) {
            return Err(Error::BadField {
                what: DATA,
                field: "flags",
                detail: format!("{flags:#04x}: P=0, F=1 marks a command message"),
            });
        }
        let element_len = EieioType::from_bits(flags >> flag::TYPE_SHIFT).element_len();
        let need = header_len_for_flags(flags) + usize::from(count) * element_len;
        if len < need {
            return Err(Error::Truncated {
                what: DATA,
                need,
                got: len,
            });
        }
        if len > need {
            return Err(Error::TooLong {
                what: DATA,
                max: need,
                got: len,
            });
        }
        if len > MAX_PACKET_LEN {
            return Err(Error::TooLong {
                what: DATA,
                max: MAX_PACKET_LEN,
                got: len,
            });
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Number of elements (byte 0).
    pub fn count(&self) -> u8 {
        self.buffer.as_ref()[field::COUNT]
    }

    /// The flags byte (byte 1).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Element type.
    pub fn eieio_type(&self) -> EieioType {
        EieioType::from_bits(self.flags() >> flag::TYPE_SHIFT)
    }

    /// The 2-bit tag.
    pub fn tag(&self) -> u8 {
        self.flags() & flag::TAG
    }

    /// True if the T bit is set.
    pub fn payload_is_timestamp(&self) -> bool {
        self.flags() & flag::TIMESTAMP != 0
    }

    /// Header length including the prefixes.
    pub fn header_len(&self) -> usize {
        header_len_for_flags(self.flags())
    }

    /// The decoded header (type, tag, prefixes, timestamp flag).
    pub fn header(&self) -> DataHeader {
        DataHeader::decode(self.buffer.as_ref())
    }

    /// The key prefix, if P is set.
    pub fn key_prefix(&self) -> Option<KeyPrefix> {
        self.header().key_prefix
    }

    /// The payload prefix, if D is set.
    pub fn payload_prefix(&self) -> Option<u32> {
        self.header().payload_prefix
    }

    /// The decoded events.
    pub fn events(&self) -> Events<'_> {
        let buf = self.buffer.as_ref();
        let elements = buf.get(self.header_len()..).unwrap_or(&[]);
        Events::new(&self.header(), elements, usize::from(self.count()))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> DataPacket<&'a T> {
    /// The raw element bytes (after the prefixes), borrowed for the buffer's lifetime.
    pub fn elements(&self) -> &'a [u8] {
        let buf: &'a [u8] = self.buffer.as_ref();
        let flags = buf.get(field::FLAGS).copied().unwrap_or(0);
        buf.get(header_len_for_flags(flags)..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> DataPacket<T> {
    /// Sets the element count.
    pub fn set_count(&mut self, count: u8) {
        self.buffer.as_mut()[field::COUNT] = count;
    }

    /// Sets the flags byte.
    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[field::FLAGS] = flags;
    }

    /// The element bytes (after the prefixes the flags announce), mutable.
    pub fn elements_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        &mut self.buffer.as_mut()[at..]
    }
}

/// A parsed data message: the header plus the raw (little-endian) element bytes, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRepr<'a> {
    /// Type, tag, prefixes and timestamp flag.
    pub header: DataHeader,
    /// The elements as on the wire: `count × element_len` bytes. Emitting writes
    /// [`count`](Self::count) whole elements.
    pub elements: &'a [u8],
}

impl<'a> DataRepr<'a> {
    /// Parses a data message, checking its length first.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &DataPacket<&'a T>) -> Result<DataRepr<'a>> {
        packet.check_len()?;
        Ok(DataRepr {
            header: packet.header(),
            elements: packet.elements(),
        })
    }

    /// Number of elements emitted: whole elements in `elements`, at most 255.
    pub fn count(&self) -> usize {
        (self.elements.len() / self.header.eieio_type.element_len()).min(255)
    }

    /// Length of the emitted message.
    pub fn buffer_len(&self) -> usize {
        self.header.header_len() + self.count() * self.header.eieio_type.element_len()
    }

    /// The decoded events.
    pub fn events(&self) -> Events<'a> {
        Events::new(&self.header, self.elements, self.count())
    }

    /// Writes the message into `packet`. Values wider than their wire field (tag, 16-bit
    /// payload prefix) are truncated; [`DataHeader::check`] reports them.
    ///
    /// # Panics
    /// If the buffer is shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut DataPacket<&mut T>) {
        let count = self.count();
        let buf = packet.buffer.as_mut();
        self.header.write(buf, count as u8);
        let at = self.header.header_len();
        let n = count * self.header.eieio_type.element_len();
        buf[at..at + n].copy_from_slice(&self.elements[..n]);
    }

    /// Emits into a new vector of exactly [`buffer_len`](Self::buffer_len) bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut buf = vec![0u8; self.buffer_len()];
        self.emit(&mut DataPacket::new_unchecked(&mut buf[..]));
        buf
    }
}

/// Builds a data message key by key in a fixed [`MAX_PACKET_LEN`]-byte buffer (no
/// allocation), refusing anything that would not fit or would not survive the wire.
///
/// Keys and payloads are pushed as they go on the wire; receivers apply the prefixes.
#[derive(Debug, Clone)]
pub struct DataBuilder {
    header: DataHeader,
    buf: [u8; MAX_PACKET_LEN],
    len: usize,
    count: usize,
}

impl DataBuilder {
    /// An empty message with `header` (rejected if [`DataHeader::check`] fails).
    pub fn new(header: DataHeader) -> Result<DataBuilder> {
        header.check()?;
        let mut buf = [0u8; MAX_PACKET_LEN];
        header.write(&mut buf, 0);
        Ok(DataBuilder {
            header,
            buf,
            len: header.header_len(),
            count: 0,
        })
    }

    /// The header.
    pub fn header(&self) -> &DataHeader {
        &self.header
    }

    /// Elements pushed so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Elements this message can hold ([`DataHeader::max_count`]).
    pub fn capacity(&self) -> usize {
        self.header.max_count()
    }

    /// True when no more elements fit.
    pub fn is_full(&self) -> bool {
        self.count >= self.capacity()
    }

    fn push(&mut self, key: u32, payload: Option<u32>) -> Result<()> {
        let ty = self.header.eieio_type;
        if ty.has_payload() != payload.is_some() {
            let detail = if ty.has_payload() {
                format!("{ty:?} elements need a payload")
            } else {
                format!("{ty:?} elements carry no payload")
            };
            return Err(Error::BadField {
                what: DATA,
                field: "payload",
                detail,
            });
        }
        for (name, v) in [("key", Some(key)), ("payload", payload)] {
            if let Some(v) = v
                && v > ty.max_value()
            {
                return Err(Error::BadField {
                    what: DATA,
                    field: name,
                    detail: format!("{v:#x} does not fit a {ty:?} element"),
                });
            }
        }
        if self.is_full() {
            return Err(Error::TooLong {
                what: DATA,
                max: MAX_PACKET_LEN,
                got: self.len + ty.element_len(),
            });
        }
        let k = ty.key_len();
        if k == 2 {
            put(&mut self.buf, self.len, &(key as u16).to_le_bytes());
        } else {
            put(&mut self.buf, self.len, &key.to_le_bytes());
        }
        if let Some(p) = payload {
            if k == 2 {
                put(&mut self.buf, self.len + 2, &(p as u16).to_le_bytes());
            } else {
                put(&mut self.buf, self.len + 4, &p.to_le_bytes());
            }
        }
        self.len += ty.element_len();
        self.count += 1;
        self.buf[field::COUNT] = self.count as u8;
        Ok(())
    }

    /// Appends a key (key-only types).
    pub fn push_key(&mut self, key: u32) -> Result<()> {
        self.push(key, None)
    }

    /// Appends a key and its payload (key/payload types).
    pub fn push_key_payload(&mut self, key: u32, payload: u32) -> Result<()> {
        self.push(key, Some(payload))
    }

    /// Removes all elements, keeping the header.
    pub fn clear(&mut self) {
        self.len = self.header.header_len();
        self.count = 0;
        self.buf[field::COUNT] = 0;
    }

    /// The message bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The message as a repr borrowing this builder.
    pub fn repr(&self) -> DataRepr<'_> {
        DataRepr {
            header: self.header,
            elements: &self.buf[self.header.header_len()..self.len],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Command messages
// ---------------------------------------------------------------------------------------------

/// A command id (bits 13..0 of the header). Unknown ids are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum CommandId {
    /// 1: database location (or its acknowledgement).
    Database,
    /// 2: padding.
    EventPadding,
    /// 3: end of events.
    EventStop,
    /// 4: stop sending buffer requests.
    StopSendingRequests,
    /// 5: start sending buffer requests.
    StartSendingRequests,
    /// 6: SpiNNaker asks for more buffered input.
    SpinnakerRequestBuffers,
    /// 7: host sends buffered input with a sequence number.
    HostSendSequencedData,
    /// 8: SpiNNaker says recorded data is ready to read.
    SpinnakerRequestReadData,
    /// 9: host says it has read data.
    HostDataRead,
    /// 10: pause/stop notification.
    StopPauseNotification,
    /// 11: start/resume notification.
    StartResumeNotification,
    /// 12: acknowledgement of a data read.
    HostDataReadAck,
    /// Any other 14-bit id.
    Unknown(u16),
}

impl From<u16> for CommandId {
    /// Decodes the low 14 bits.
    fn from(v: u16) -> Self {
        match v & MAX_COMMAND_ID {
            1 => CommandId::Database,
            2 => CommandId::EventPadding,
            3 => CommandId::EventStop,
            4 => CommandId::StopSendingRequests,
            5 => CommandId::StartSendingRequests,
            6 => CommandId::SpinnakerRequestBuffers,
            7 => CommandId::HostSendSequencedData,
            8 => CommandId::SpinnakerRequestReadData,
            9 => CommandId::HostDataRead,
            10 => CommandId::StopPauseNotification,
            11 => CommandId::StartResumeNotification,
            12 => CommandId::HostDataReadAck,
            other => CommandId::Unknown(other),
        }
    }
}

impl From<CommandId> for u16 {
    fn from(id: CommandId) -> u16 {
        match id {
            CommandId::Database => 1,
            CommandId::EventPadding => 2,
            CommandId::EventStop => 3,
            CommandId::StopSendingRequests => 4,
            CommandId::StartSendingRequests => 5,
            CommandId::SpinnakerRequestBuffers => 6,
            CommandId::HostSendSequencedData => 7,
            CommandId::SpinnakerRequestReadData => 8,
            CommandId::HostDataRead => 9,
            CommandId::StopPauseNotification => 10,
            CommandId::StartResumeNotification => 11,
            CommandId::HostDataReadAck => 12,
            CommandId::Unknown(v) => v & MAX_COMMAND_ID,
        }
    }
}

/// A read/write view of an EIEIO command message (smoltcp style).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> CommandPacket<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than the header.
    pub const fn new_unchecked(buffer: T) -> CommandPacket<T> {
        CommandPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<CommandPacket<T>> {
        let packet = CommandPacket::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the header is present and marks a command (bits 15..14 = `01`).
    pub fn check_len(&self) -> Result<()> {
        let buf = self.buffer.as_ref();
        let Some(&hi) = buf.get(field::FLAGS) else {
            return Err(Error::Truncated {
                what: COMMAND,
                need: HEADER_LEN,
                got: buf.len(),
            });
        };
        if !flags_mark_command(hi) {
            return Err(Error::BadField {
                what: COMMAND,
                field: "header",
                detail: format!("high byte {hi:#04x} does not have bits 7..6 = 01"),
            });
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The raw 14-bit command id.
    pub fn raw_id(&self) -> u16 {
        le_u16(self.buffer.as_ref(), 0) & MAX_COMMAND_ID
    }

    /// The command id.
    pub fn command_id(&self) -> CommandId {
        CommandId::from(self.raw_id())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> CommandPacket<&'a T> {
    /// The bytes after the header, borrowed for the buffer's lifetime.
    pub fn payload(&self) -> &'a [u8] {
        self.buffer.as_ref().get(field::BODY..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> CommandPacket<T> {
    /// Writes the header for command id `id` (low 14 bits).
    pub fn set_command_id(&mut self, id: u16) {
        let v = 0x4000 | (id & MAX_COMMAND_ID);
        put(self.buffer.as_mut(), 0, &v.to_le_bytes());
    }

    /// The bytes after the header, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::BODY..]
    }
}

/// One request of SPINNAKER_REQUEST_READ_DATA: a recording channel has data to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ReadRequest {
    /// Channel.
    pub channel: u8,
    /// Recording region.
    pub region: u8,
    /// SDRAM address to read from.
    pub start_address: u32,
    /// Bytes to read.
    pub length: u32,
}

/// One acknowledgement of HOST_DATA_READ: how much of a channel the host has read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ReadAck {
    /// Channel.
    pub channel: u8,
    /// Recording region.
    pub region: u8,
    /// Bytes read.
    pub space_read: u32,
}

/// Up to [`MAX_REQUESTS`] (7) items stored inline, so command reprs never allocate.
/// Dereferences to a slice.
#[derive(Clone, Copy)]
pub struct RequestList<T> {
    items: [T; MAX_REQUESTS],
    len: u8,
}

impl<T: Copy + Default> RequestList<T> {
    /// An empty list.
    pub fn new() -> Self {
        RequestList {
            items: [T::default(); MAX_REQUESTS],
            len: 0,
        }
    }

    /// A list holding `items` (at most 7).
    pub fn from_slice(items: &[T]) -> Result<Self> {
        let mut list = Self::new();
        for &item in items {
            list.push(item)?;
        }
        Ok(list)
    }

    /// Appends an item; fails when the list already holds 7.
    pub fn push(&mut self, item: T) -> Result<()> {
        let slot = self.items.get_mut(usize::from(self.len)).ok_or(Error::TooLong {
            what: COMMAND,
            max: MAX_REQUESTS,
            got: MAX_REQUESTS + 1,
        })?;
        *slot = item;
        self.len += 1;
        Ok(())
    }
}

impl<T: Copy + Default> Default for RequestList<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Deref for RequestList<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.items.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

impl<T: PartialEq> PartialEq for RequestList<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Eq> Eq for RequestList<T> {}

impl<T: fmt::Debug> fmt::Debug for RequestList<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A parsed command message.
///
/// Reserved bits are not kept: pad bytes read as anything and emit as zero, `p` keeps the 5 bits
/// above the low 3, the SPINNAKER_REQUEST_BUFFERS region keeps its low 4 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandRepr<'a> {
    /// 1: the database path the host should read; empty = acknowledgement.
    Database {
        /// UTF-8 path without terminator ("" for the acknowledgement).
        path: &'a str,
    },
    /// 2: padding.
    EventPadding,
    /// 3: end of events.
    EventStop,
    /// 4: stop sending buffer requests.
    StopSendingRequests,
    /// 5: start sending buffer requests.
    StartSendingRequests,
    /// 6: a core asks for more input (12 bytes: y, x, p << 3, pad, region, sequence, space).
    SpinnakerRequestBuffers {
        /// Chip x.
        x: u8,
        /// Chip y.
        y: u8,
        /// Core (5 bits).
        p: u8,
        /// Region (4 bits).
        region: u8,
        /// Sequence number.
        sequence: u8,
        /// Bytes of buffer space available.
        space_available: u32,
    },
    /// 7: buffered input for a region, wrapping a complete data message.
    HostSendSequencedData {
        /// Region.
        region: u8,
        /// Sequence number.
        sequence: u8,
        /// The data message.
        message: DataRepr<'a>,
    },
    /// 8: recorded data is ready. Byte order **x then y**, as in the captured spinnman encoder
    /// output and JavaSpiNNaker both ways; spinnman's decoder reads y then x (a known
    /// inconsistency). The first request follows directly, later ones after 2 pad bytes.
    /// With no requests the message is 6 bytes (spinnman's encoder would write only 4).
    SpinnakerRequestReadData {
        /// Chip x.
        x: u8,
        /// Chip y.
        y: u8,
        /// Core (5 bits).
        p: u8,
        /// Sequence number.
        sequence: u8,
        /// The requests (0..=7).
        requests: RequestList<ReadRequest>,
    },
    /// 9: the host has read data (n, sequence, then per ack: 2 pad, channel, region, u32).
    HostDataRead {
        /// Sequence number.
        sequence: u8,
        /// The acknowledgements (0..=7).
        acks: RequestList<ReadAck>,
    },
    /// 10: pause/stop notification.
    StopPauseNotification,
    /// 11: start/resume notification.
    StartResumeNotification,
    /// 12: acknowledges a data read.
    HostDataReadAck {
        /// Sequence number.
        sequence: u8,
    },
    /// Any other id, with its payload kept raw.
    Unknown {
        /// The 14-bit id.
        id: u16,
        /// The bytes after the header.
        payload: &'a [u8],
    },
}

fn exact_len(payload: &[u8], want: usize) -> Result<()> {
    let (need, got) = (HEADER_LEN + want, HEADER_LEN + payload.len());
    match payload.len().cmp(&want) {
        core::cmp::Ordering::Less => Err(Error::Truncated {
            what: COMMAND,
            need,
            got,
        }),
        core::cmp::Ordering::Greater => Err(Error::TooLong {
            what: COMMAND,
            max: need,
            got,
        }),
        core::cmp::Ordering::Equal => Ok(()),
    }
}

fn read_data_len(n: usize) -> usize {
    use cmd_field::read_data::*;
    match n {
        0 => REQUESTS,
        n => REQUESTS + FIRST_LEN + (n - 1) * LATER_LEN,
    }
}

impl<'a> CommandRepr<'a> {
    /// Parses a command message, checking its header first.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &CommandPacket<&'a T>) -> Result<CommandRepr<'a>> {
        packet.check_len()?;
        let b = packet.payload();
        let id = packet.command_id();
        let empty = |repr: CommandRepr<'a>| exact_len(b, 0).map(|()| repr);
        match id {
            CommandId::Database => {
                let path = core::str::from_utf8(b).map_err(|e| Error::BadField {
                    what: COMMAND,
                    field: "database path",
                    detail: format!("not UTF-8: {e}"),
                })?;
                Ok(CommandRepr::Database { path })
            }
            CommandId::EventPadding => empty(CommandRepr::EventPadding),
            CommandId::EventStop => empty(CommandRepr::EventStop),
            CommandId::StopSendingRequests => empty(CommandRepr::StopSendingRequests),
            CommandId::StartSendingRequests => empty(CommandRepr::StartSendingRequests),
            CommandId::StopPauseNotification => empty(CommandRepr::StopPauseNotification),
            CommandId::StartResumeNotification => empty(CommandRepr::StartResumeNotification),
            CommandId::SpinnakerRequestBuffers => {
                use cmd_field::request_buffers::*;
                exact_len(b, LEN)?;
                Ok(CommandRepr::SpinnakerRequestBuffers {
                    x: b[X],
                    y: b[Y],
                    p: b[P] >> 3,
                    region: b[REGION] & 0x0F,
                    sequence: b[SEQUENCE],
                    space_available: le_u32(b, SPACE),
                })
            }
            CommandId::HostSendSequencedData => {
                use cmd_field::sequenced_data::*;
                let inner = b.get(MESSAGE..).ok_or(Error::Truncated {
                    what: COMMAND,
                    need: HEADER_LEN + MESSAGE + HEADER_LEN,
                    got: HEADER_LEN + b.len(),
                })?;
                let message = DataRepr::parse(&DataPacket::new_checked(inner)?)?;
                Ok(CommandRepr::HostSendSequencedData {
                    region: b[REGION],
                    sequence: b[SEQUENCE],
                    message,
                })
            }
            CommandId::SpinnakerRequestReadData => {
                use cmd_field::read_data::*;
                if b.len() < REQUESTS {
                    exact_len(b, REQUESTS)?;
                }
                let n = usize::from(b[P_N] & 0x07);
                exact_len(b, read_data_len(n))?;
                let mut requests = RequestList::new();
                let mut at = REQUESTS;
                for i in 0..n {
                    if i > 0 {
                        at += 2;
                    }
                    requests.push(ReadRequest {
                        channel: b[at],
                        region: b[at + 1],
                        start_address: le_u32(b, at + 2),
                        length: le_u32(b, at + 6),
                    })?;
                    at += FIRST_LEN;
                }
                Ok(CommandRepr::SpinnakerRequestReadData {
                    x: b[X],
                    y: b[Y],
                    p: b[P_N] >> 3,
                    sequence: b[SEQUENCE],
                    requests,
                })
            }
            CommandId::HostDataRead => {
                use cmd_field::data_read::*;
                if b.len() < ACKS {
                    exact_len(b, ACKS)?;
                }
                let n = usize::from(b[N] & 0x07);
                exact_len(b, ACKS + n * ACK_LEN)?;
                let mut acks = RequestList::new();
                for i in 0..n {
                    let at = ACKS + i * ACK_LEN;
                    acks.push(ReadAck {
                        channel: b[at + 2],
                        region: b[at + 3],
                        space_read: le_u32(b, at + 4),
                    })?;
                }
                Ok(CommandRepr::HostDataRead {
                    sequence: b[SEQUENCE],
                    acks,
                })
            }
            CommandId::HostDataReadAck => {
                exact_len(b, 1)?;
                Ok(CommandRepr::HostDataReadAck { sequence: b[0] })
            }
            CommandId::Unknown(id) => Ok(CommandRepr::Unknown { id, payload: b }),
        }
    }

    /// The command id.
    pub fn command_id(&self) -> CommandId {
        match self {
            CommandRepr::Database { .. } => CommandId::Database,
            CommandRepr::EventPadding => CommandId::EventPadding,
            CommandRepr::EventStop => CommandId::EventStop,
            CommandRepr::StopSendingRequests => CommandId::StopSendingRequests,
            CommandRepr::StartSendingRequests => CommandId::StartSendingRequests,
            CommandRepr::SpinnakerRequestBuffers { .. } => CommandId::SpinnakerRequestBuffers,
            CommandRepr::HostSendSequencedData { .. } => CommandId::HostSendSequencedData,
            CommandRepr::SpinnakerRequestReadData { .. } => CommandId::SpinnakerRequestReadData,
            CommandRepr::HostDataRead { .. } => CommandId::HostDataRead,
            CommandRepr::StopPauseNotification => CommandId::StopPauseNotification,
            CommandRepr::StartResumeNotification => CommandId::StartResumeNotification,
            CommandRepr::HostDataReadAck { .. } => CommandId::HostDataReadAck,
            CommandRepr::Unknown { id, .. } => CommandId::Unknown(*id),
        }
    }

    /// Length of the emitted message.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                CommandRepr::Database { path } => path.len(),
                CommandRepr::SpinnakerRequestBuffers { .. } => cmd_field::request_buffers::LEN,
                CommandRepr::HostSendSequencedData { message, .. } => {
                    cmd_field::sequenced_data::MESSAGE + message.buffer_len()
                }
                CommandRepr::SpinnakerRequestReadData { requests, .. } => read_data_len(requests.len()),
                CommandRepr::HostDataRead { acks, .. } => {
                    cmd_field::data_read::ACKS + acks.len() * cmd_field::data_read::ACK_LEN
                }
                CommandRepr::HostDataReadAck { .. } => 1,
                CommandRepr::Unknown { payload, .. } => payload.len(),
                _ => 0,
            }
    }

    /// Writes the message into `packet`. Pad bytes are written as zero; values wider than
    /// their field (p, region of SPINNAKER_REQUEST_BUFFERS, id) are masked.
    ///
    /// # Panics
    /// If the buffer is shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut CommandPacket<&mut T>) {
        packet.set_command_id(u16::from(self.command_id()));
        let len = self.buffer_len() - HEADER_LEN;
        let b = &mut packet.payload_mut()[..len];
        b.fill(0);
        match *self {
            CommandRepr::Database { path } => b.copy_from_slice(path.as_bytes()),
            CommandRepr::SpinnakerRequestBuffers {
                x,
                y,
                p,
                region,
                sequence,
                space_available,
            } => {
                use cmd_field::request_buffers::*;
                b[X] = x;
                b[Y] = y;
                b[P] = (p & 0x1F) << 3;
                b[REGION] = region & 0x0F;
                b[SEQUENCE] = sequence;
                put(b, SPACE, &space_available.to_le_bytes());
            }
            CommandRepr::HostSendSequencedData {
                region,
                sequence,
                message,
            } => {
                use cmd_field::sequenced_data::*;
                b[REGION] = region;
                b[SEQUENCE] = sequence;
                message.emit(&mut DataPacket::new_unchecked(&mut b[MESSAGE..]));
            }
            CommandRepr::SpinnakerRequestReadData {
                x,
                y,
                p,
                sequence,
                requests,
            } => {
                use cmd_field::read_data::*;
                b[X] = x;
                b[Y] = y;
                b[P_N] = ((p & 0x1F) << 3) | requests.len() as u8;
                b[SEQUENCE] = sequence;
                let mut at = REQUESTS;
                for (i, r) in requests.iter().enumerate() {
                    if i > 0 {
                        at += 2;
                    }
                    b[at] = r.channel;
                    b[at + 1] = r.region;
                    put(b, at + 2, &r.start_address.to_le_bytes());
                    put(b, at + 6, &r.length.to_le_bytes());
                    at += FIRST_LEN;
                }
            }
            CommandRepr::HostDataRead { sequence, acks } => {
                use cmd_field::data_read::*;
                b[N] = acks.len() as u8;
                b[SEQUENCE] = sequence;
                for (i, a) in acks.iter().enumerate() {
                    let at = ACKS + i * ACK_LEN;
                    b[at + 2] = a.channel;
                    b[at + 3] = a.region;
                    put(b, at + 4, &a.space_read.to_le_bytes());
                }
            }
            CommandRepr::HostDataReadAck { sequence } => b[0] = sequence,
            CommandRepr::Unknown { payload, .. } => b.copy_from_slice(payload),
            CommandRepr::EventPadding
            | CommandRepr::EventStop
            | CommandRepr::StopSendingRequests
            | CommandRepr::StartSendingRequests
            | CommandRepr::StopPauseNotification
            | CommandRepr::StartResumeNotification => {}
        }
    }

    /// Emits into a new vector of exactly [`buffer_len`](Self::buffer_len) bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut buf = vec![0u8; self.buffer_len()];
        self.emit(&mut CommandPacket::new_unchecked(&mut buf[..]));
        buf
    }
}

// ---------------------------------------------------------------------------------------------
// Either kind
// ---------------------------------------------------------------------------------------------

/// Any EIEIO message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EieioMessage<'a> {
    /// A data message.
    Data(DataRepr<'a>),
    /// A command message.
    Command(CommandRepr<'a>),
}

impl<'a> EieioMessage<'a> {
    /// True if `bytes` starts with a command header (P = 0, F = 1); `None` if shorter than the
    /// header.
    pub fn is_command(bytes: &[u8]) -> Option<bool> {
        bytes.get(field::FLAGS).map(|&f| flags_mark_command(f))
    }

    /// Parses a datagram as a data or command message.
    pub fn parse(bytes: &'a [u8]) -> Result<EieioMessage<'a>> {
        match Self::is_command(bytes) {
            None => Err(Error::Truncated {
                what: "EIEIO message",
                need: HEADER_LEN,
                got: bytes.len(),
            }),
            Some(true) => CommandRepr::parse(&CommandPacket::new_unchecked(bytes)).map(EieioMessage::Command),
            Some(false) => DataRepr::parse(&DataPacket::new_unchecked(bytes)).map(EieioMessage::Data),
        }
    }

    /// Length of the emitted message.
    pub fn buffer_len(&self) -> usize {
        match self {
            EieioMessage::Data(d) => d.buffer_len(),
            EieioMessage::Command(c) => c.buffer_len(),
        }
    }

    /// Writes the message at the start of `buf`, returning its length; fails if `buf` is too
    /// short.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        let got = buf.len();
        let out = buf.get_mut(..len).ok_or(Error::Truncated {
            what: "EIEIO output buffer",
            need: len,
            got,
        })?;
        match self {
            EieioMessage::Data(d) => d.emit(&mut DataPacket::new_unchecked(out)),
            EieioMessage::Command(c) => c.emit(&mut CommandPacket::new_unchecked(out)),
        }
        Ok(len)
    }

    /// Emits into a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        match self {
            EieioMessage::Data(d) => d.to_vec(),
            EieioMessage::Command(c) => c.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn data(header: DataHeader, elements: &[(u32, Option<u32>)]) -> Vec<u8> {
        let mut b = DataBuilder::new(header).unwrap();
        for &(k, p) in elements {
            match p {
                Some(p) => b.push_key_payload(k, p).unwrap(),
                None => b.push_key(k).unwrap(),
            }
        }
        b.as_bytes().to_vec()
    }

    /// Raw elements as pushed: key and optional payload.
    type Elements = Vec<(u32, Option<u32>)>;

    /// (hex, header, raw elements, decoded events) for every data vector in the captures.
    fn data_vectors() -> Vec<(&'static str, DataHeader, Elements, Vec<Event>)> {
        use EieioType::*;
        let ev = |key, payload| Event { key, payload };
        vec![
            // protocol_captures.md §6 (spinnman send_eieio_message and rig raw socket).
            (
                "0308010000000200000003000000",
                DataHeader::new(Key32),
                vec![(1, None), (2, None), (3, None)],
                vec![ev(1, None), ev(2, None), ev(3, None)],
            ),
            // §7.
            (
                "020001000200",
                DataHeader::new(Key16),
                vec![(1, None), (2, None)],
                vec![ev(1, None), ev(2, None)],
            ),
            (
                "02040100100002002000",
                DataHeader::new(KeyPayload16),
                vec![(1, Some(0x10)), (2, Some(0x20))],
                vec![ev(1, Some(0x10)), ev(2, Some(0x20))],
            ),
            (
                "010878563412",
                DataHeader::new(Key32),
                vec![(0x1234_5678, None)],
                vec![ev(0x1234_5678, None)],
            ),
            (
                "010c78563412bebafeca",
                DataHeader::new(KeyPayload32),
                vec![(0x1234_5678, Some(0xcafe_babe))],
                vec![ev(0x1234_5678, Some(0xcafe_babe))],
            ),
            (
                "01c0cdab0500",
                DataHeader {
                    key_prefix: Some(KeyPrefix::upper(0xABCD)),
                    ..DataHeader::new(Key16)
                },
                vec![(5, None)],
                vec![ev(0xABCD_0005, None)],
            ),
            (
                "01280010000005000000",
                DataHeader {
                    payload_prefix: Some(0x1000),
                    ..DataHeader::new(Key32)
                },
                vec![(5, None)],
                vec![ev(5, Some(0x1000))],
            ),
            (
                "0138e803000005000000",
                DataHeader {
                    payload_prefix: Some(1000),
                    payload_is_timestamp: true,
                    ..DataHeader::new(Key32)
                },
                vec![(5, None)],
                vec![ev(5, Some(1000))],
            ),
            (
                "01a0010022000500",
                DataHeader {
                    key_prefix: Some(KeyPrefix::lower(1)),
                    payload_prefix: Some(0x22),
                    ..DataHeader::new(Key16)
                },
                vec![(5, None)],
                vec![ev(5, Some(0x22))],
            ),
        ]
    }

    #[test]
    fn data_vectors_both_directions() {
        for (h, header, elements, events) in data_vectors() {
            let bytes = hex(h);
            assert_eq!(data(header, &elements), bytes, "emit {h}");
            let EieioMessage::Data(repr) = EieioMessage::parse(&bytes).unwrap() else {
                panic!("{h}: not data")
            };
            assert_eq!(repr.header, header, "{h}");
            assert_eq!(repr.events().collect::<Vec<_>>(), events, "{h}");
            assert_eq!(repr.to_vec(), bytes, "{h}");
            let packet = DataPacket::new_checked(&bytes[..]).unwrap();
            assert_eq!(packet.events().collect::<Vec<_>>(), events, "{h}");
            assert_eq!(usize::from(packet.count()), elements.len());
        }
    }

    #[test]
    fn command_vectors_both_directions() {
        let seq_data = hex("010807000000");
        let nested = DataRepr::parse(&DataPacket::new_checked(&seq_data[..]).unwrap()).unwrap();
        let vectors: Vec<(&str, CommandRepr<'_>)> = vec![
            ("01402f746d702f6462", CommandRepr::Database { path: "/tmp/db" }),
            ("0140", CommandRepr::Database { path: "" }),
            ("0240", CommandRepr::EventPadding),
            ("0340", CommandRepr::EventStop),
            ("0440", CommandRepr::StopSendingRequests),
            ("0540", CommandRepr::StartSendingRequests),
            (
                "0640020118000405e8030000",
                CommandRepr::SpinnakerRequestBuffers {
                    x: 1,
                    y: 2,
                    p: 3,
                    region: 4,
                    sequence: 5,
                    space_available: 1000,
                },
            ),
            (
                "07400406010807000000",
                CommandRepr::HostSendSequencedData {
                    region: 4,
                    sequence: 6,
                    message: nested,
                },
            ),
            (
                "08400102190500040000006040000000",
                CommandRepr::SpinnakerRequestReadData {
                    x: 1,
                    y: 2,
                    p: 3,
                    sequence: 5,
                    requests: RequestList::from_slice(&[ReadRequest {
                        channel: 0,
                        region: 4,
                        start_address: 0x6000_0000,
                        length: 64,
                    }])
                    .unwrap(),
                },
            ),
            (
                "094001050000000440000000",
                CommandRepr::HostDataRead {
                    sequence: 5,
                    acks: RequestList::from_slice(&[ReadAck {
                        channel: 0,
                        region: 4,
                        space_read: 64,
                    }])
                    .unwrap(),
                },
            ),
            ("0c4005", CommandRepr::HostDataReadAck { sequence: 5 }),
            ("0a40", CommandRepr::StopPauseNotification),
            ("0b40", CommandRepr::StartResumeNotification),
        ];
        for (h, want) in vectors {
            let bytes = hex(h);
            assert_eq!(
                EieioMessage::parse(&bytes).unwrap(),
                EieioMessage::Command(want),
                "parse {h}"
            );
            assert_eq!(want.to_vec(), bytes, "emit {h}");
            assert_eq!(EieioMessage::Command(want).to_vec(), bytes, "emit {h}");
        }
        let seq = hex("07400406010807000000");
        let CommandRepr::HostSendSequencedData { message, .. } =
            CommandRepr::parse(&CommandPacket::new_checked(&seq[..]).unwrap()).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(
            message.events().collect::<Vec<_>>(),
            vec![Event { key: 7, payload: None }]
        );
    }

    #[test]
    fn limits_and_errors() {
        for (ty, max) in [
            (EieioType::Key16, 127),
            (EieioType::Key32, 63),
            (EieioType::KeyPayload16, 63),
            (EieioType::KeyPayload32, 31),
        ] {
            assert_eq!(DataHeader::new(ty).max_count(), max);
            let mut b = DataBuilder::new(DataHeader::new(ty)).unwrap();
            for k in 0..max as u32 {
                if ty.has_payload() {
                    b.push_key_payload(k, k).unwrap()
                } else {
                    b.push_key(k).unwrap()
                }
            }
            assert!(b.is_full());
            let err = if ty.has_payload() {
                b.push_key_payload(0, 0)
            } else {
                b.push_key(0)
            };
            assert!(matches!(err, Err(Error::TooLong { max: 256, .. })));
            assert!(b.as_bytes().len() <= MAX_PACKET_LEN);
            assert!(EieioMessage::parse(b.as_bytes()).is_ok());
        }
        let both = DataHeader {
            key_prefix: Some(KeyPrefix::lower(1)),
            payload_prefix: Some(2),
            ..DataHeader::new(EieioType::KeyPayload32)
        };
        assert_eq!(both.header_len(), 8);
        assert_eq!(both.max_count(), 31);
        assert_eq!(
            DataHeader {
                key_prefix: Some(KeyPrefix::lower(1)),
                ..DataHeader::new(EieioType::Key16)
            }
            .max_count(),
            126
        );

        let mut b = DataBuilder::new(DataHeader::new(EieioType::Key16)).unwrap();
        assert!(matches!(
            b.push_key(0x1_0000),
            Err(Error::BadField { field: "key", .. })
        ));
        assert!(matches!(
            b.push_key_payload(1, 1),
            Err(Error::BadField { field: "payload", .. })
        ));
        assert!(
            DataBuilder::new(DataHeader {
                tag: 4,
                ..DataHeader::new(EieioType::Key16)
            })
            .is_err()
        );
        assert!(
            DataBuilder::new(DataHeader {
                payload_prefix: Some(0x1_0000),
                ..DataHeader::new(EieioType::Key16)
            })
            .is_err()
        );

        fn parse(b: &[u8]) -> Result<()> {
            EieioMessage::parse(b).map(|_| ())
        }
        assert!(matches!(parse(&[]), Err(Error::Truncated { need: 2, .. })));
        assert!(matches!(
            parse(&hex("0308010000000200000003")),
            Err(Error::Truncated { need: 14, got: 11, .. })
        ));
        assert!(matches!(
            parse(&hex("010878563412ff")),
            Err(Error::TooLong { max: 6, got: 7, .. })
        ));
        assert!(matches!(parse(&hex("80")), Err(Error::Truncated { .. })));
        let mut big = vec![0x80u8, 0x0c];
        big.resize(2 + 128 * 8, 0);
        assert!(matches!(parse(&big), Err(Error::TooLong { max: 256, .. })));
        assert!(matches!(parse(&hex("0240ff")), Err(Error::TooLong { .. })));
        assert!(matches!(
            parse(&hex("064002011800")),
            Err(Error::Truncated { need: 12, got: 6, .. })
        ));
        assert!(matches!(
            parse(&hex("0140ff")),
            Err(Error::BadField {
                field: "database path",
                ..
            })
        ));
        assert!(matches!(parse(&hex("084001")), Err(Error::Truncated { need: 6, .. })));
        assert!(matches!(
            parse(&hex("0940020500000004400000")),
            Err(Error::Truncated { need: 20, .. })
        ));
        assert!(matches!(parse(&hex("0740")), Err(Error::Truncated { .. })));
        assert!(matches!(
            parse(&hex("07400102")),
            Err(Error::Truncated { what: DATA, .. })
        ));
        assert!(matches!(
            parse(&hex("074001020140")),
            Err(Error::BadField {
                what: DATA,
                field: "flags",
                ..
            })
        ));
        assert!(DataPacket::new_checked(&hex("0140")[..]).is_err());
        assert!(CommandPacket::new_checked(&hex("0100")[..]).is_err());
        let unknown = hex("0d40abcd");
        assert_eq!(
            EieioMessage::parse(&unknown).unwrap(),
            EieioMessage::Command(CommandRepr::Unknown {
                id: 13,
                payload: &[0xab, 0xcd]
            })
        );
        let unknown = hex("ff7f");
        assert_eq!(
            EieioMessage::parse(&unknown).unwrap(),
            EieioMessage::Command(CommandRepr::Unknown {
                id: 0x3fff,
                payload: &[]
            })
        );
        assert_eq!(CommandId::from(0x4001), CommandId::Database);
        assert!(RequestList::from_slice(&[ReadAck::default(); 8]).is_err());
        let mut small = [0u8; 3];
        assert!(EieioMessage::parse(&hex("0c4005")).unwrap().emit(&mut small).is_ok());
        assert!(EieioMessage::parse(&hex("0940")).is_err());
        assert!(
            EieioMessage::parse(&hex("0b40"))
                .unwrap()
                .emit(&mut small[..1])
                .is_err()
        );
    }

    #[test]
    fn read_data_with_several_requests() {
        let requests: Vec<ReadRequest> = (0..7u8)
            .map(|i| ReadRequest {
                channel: i,
                region: i + 1,
                start_address: 0x6000_0000 + u32::from(i),
                length: 100 * u32::from(i),
            })
            .collect();
        let repr = CommandRepr::SpinnakerRequestReadData {
            x: 9,
            y: 8,
            p: 17,
            sequence: 200,
            requests: RequestList::from_slice(&requests).unwrap(),
        };
        let bytes = repr.to_vec();
        assert_eq!(bytes.len(), 2 + 4 + 10 + 6 * 12);
        assert_eq!(&bytes[..6], &[0x08, 0x40, 9, 8, (17 << 3) | 7, 200]);
        assert_eq!(&bytes[16..18], &[0, 0]);
        assert_eq!(EieioMessage::parse(&bytes).unwrap(), EieioMessage::Command(repr));
    }

    #[derive(Debug, Clone)]
    struct DataCase {
        header: DataHeader,
        elements: Vec<(u32, Option<u32>)>,
    }

    fn arb_data_case() -> impl Strategy<Value = DataCase> {
        (
            0u8..4,
            0u8..4,
            proptest::option::of((any::<u16>(), any::<bool>())),
            proptest::option::of(any::<u32>()),
            any::<bool>(),
        )
            .prop_flat_map(|(ty, tag, kp, pp, ts)| {
                let ty = EieioType::from_bits(ty);
                let header = DataHeader {
                    eieio_type: ty,
                    tag,
                    key_prefix: kp.map(|(v, upper)| {
                        if upper {
                            KeyPrefix::upper(v)
                        } else {
                            KeyPrefix::lower(v)
                        }
                    }),
                    payload_prefix: pp.map(|p| p & ty.max_value()),
                    payload_is_timestamp: ts,
                };
                let max = ty.max_value();
                let element = (0..=max, 0..=max).prop_map(move |(k, p)| (k, ty.has_payload().then_some(p)));
                proptest::collection::vec(element, 0..=header.max_count())
                    .prop_map(move |elements| DataCase { header, elements })
            })
    }

    #[derive(Debug, Clone)]
    enum CmdCase {
        Database(String),
        Empty(u8),
        Buffers(u8, u8, u8, u8, u8, u32),
        Sequenced(u8, u8, DataCase),
        ReadData(u8, u8, u8, u8, Vec<ReadRequest>),
        DataRead(u8, Vec<ReadAck>),
        Ack(u8),
        Unknown(u16, Vec<u8>),
    }

    fn arb_cmd_case() -> impl Strategy<Value = CmdCase> {
        let req = (any::<u8>(), any::<u8>(), any::<u32>(), any::<u32>()).prop_map(
            |(channel, region, start_address, length)| ReadRequest {
                channel,
                region,
                start_address,
                length,
            },
        );
        let ack = (any::<u8>(), any::<u8>(), any::<u32>()).prop_map(|(channel, region, space_read)| ReadAck {
            channel,
            region,
            space_read,
        });
        prop_oneof![
            ".{0,60}".prop_map(CmdCase::Database),
            prop_oneof![Just(2u8), Just(3), Just(4), Just(5), Just(10), Just(11)].prop_map(CmdCase::Empty),
            (any::<u8>(), any::<u8>(), 0u8..32, 0u8..16, any::<u8>(), any::<u32>())
                .prop_map(|(x, y, p, r, s, sp)| CmdCase::Buffers(x, y, p, r, s, sp)),
            (any::<u8>(), any::<u8>(), arb_data_case()).prop_map(|(r, s, d)| CmdCase::Sequenced(r, s, d)),
            (
                any::<u8>(),
                any::<u8>(),
                0u8..32,
                any::<u8>(),
                proptest::collection::vec(req, 0..=7)
            )
                .prop_map(|(x, y, p, s, r)| CmdCase::ReadData(x, y, p, s, r)),
            (any::<u8>(), proptest::collection::vec(ack, 0..=7)).prop_map(|(s, a)| CmdCase::DataRead(s, a)),
            any::<u8>().prop_map(CmdCase::Ack),
            (13u16..=MAX_COMMAND_ID, proptest::collection::vec(any::<u8>(), 0..100))
                .prop_map(|(id, p)| CmdCase::Unknown(id, p)),
        ]
    }

    fn expected_events(case: &DataCase) -> Vec<Event> {
        let h = case.header;
        case.elements
            .iter()
            .map(|&(k, p)| {
                let key = match h.key_prefix {
                    Some(KeyPrefix {
                        value,
                        position: PrefixPosition::Lower,
                    }) => k | u32::from(value),
                    Some(KeyPrefix {
                        value,
                        position: PrefixPosition::Upper,
                    }) => k | (u32::from(value) << 16),
                    None => k,
                };
                let payload = match (p, h.payload_prefix) {
                    (Some(p), Some(pp)) => Some(p | pp),
                    (Some(p), None) => Some(p),
                    (None, pp) => pp,
                };
                Event { key, payload }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn data_round_trip(case in arb_data_case()) {
            let bytes = data(case.header, &case.elements);
            prop_assert!(bytes.len() <= MAX_PACKET_LEN);
            let msg = EieioMessage::parse(&bytes).unwrap();
            let EieioMessage::Data(repr) = msg else { panic!("not data") };
            prop_assert_eq!(repr.header, case.header);
            prop_assert_eq!(repr.count(), case.elements.len());
            prop_assert_eq!(repr.events().collect::<Vec<_>>(), expected_events(&case));
            prop_assert_eq!(repr.to_vec(), bytes.clone());
            prop_assert_eq!(repr.buffer_len(), bytes.len());
            let packet = DataPacket::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(packet.header(), case.header);
            prop_assert_eq!(packet.events().len(), case.elements.len());
        }

        #[test]
        fn command_round_trip(case in arb_cmd_case()) {
            let inner = match &case {
                CmdCase::Sequenced(_, _, d) => data(d.header, &d.elements),
                _ => Vec::new(),
            };
            let repr = cmd_repr(&case, &inner);
            let bytes = repr.to_vec();
            prop_assert_eq!(bytes.len(), repr.buffer_len());
            prop_assert_eq!(EieioMessage::parse(&bytes).unwrap(), EieioMessage::Command(repr));
            let mut buf = [0u8; 512];
            let n = EieioMessage::Command(repr).emit(&mut buf).unwrap();
            prop_assert_eq!(&buf[..n], &bytes[..]);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            check_no_panic(&bytes);
        }

        #[test]
        fn parse_never_panics_on_commands(
            id in 0u8..16,
            rest in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut bytes = vec![id, 0x40];
            bytes.extend_from_slice(&rest);
            check_no_panic(&bytes);
            // And a sequenced-data command wrapping random bytes with a plausible data header.
            let mut seq = vec![7, 0x40, 1, 2];
            seq.extend_from_slice(&rest);
            check_no_panic(&seq);
        }

        #[test]
        fn parse_never_panics_on_plausible_data(
            count in any::<u8>(),
            flags in any::<u8>(),
            n in 0usize..300,
        ) {
            let flags = if flags & 0xC0 == 0x40 { flags & !0x40 } else { flags };
            let mut bytes = vec![count, flags];
            bytes.resize(2 + n, 0xA5);
            check_no_panic(&bytes);
        }
    }

    /// The command a [`CmdCase`] describes; `inner` holds the nested data message bytes.
    fn cmd_repr<'a>(case: &'a CmdCase, inner: &'a [u8]) -> CommandRepr<'a> {
        match case {
            CmdCase::Database(path) => CommandRepr::Database { path },
            CmdCase::Empty(id) => match id {
                2 => CommandRepr::EventPadding,
                3 => CommandRepr::EventStop,
                4 => CommandRepr::StopSendingRequests,
                5 => CommandRepr::StartSendingRequests,
                10 => CommandRepr::StopPauseNotification,
                _ => CommandRepr::StartResumeNotification,
            },
            &CmdCase::Buffers(x, y, p, region, sequence, space_available) => CommandRepr::SpinnakerRequestBuffers {
                x,
                y,
                p,
                region,
                sequence,
                space_available,
            },
            &CmdCase::Sequenced(region, sequence, _) => {
                let message = DataRepr::parse(&DataPacket::new_checked(inner).unwrap()).unwrap();
                CommandRepr::HostSendSequencedData {
                    region,
                    sequence,
                    message,
                }
            }
            &CmdCase::ReadData(x, y, p, sequence, ref r) => CommandRepr::SpinnakerRequestReadData {
                x,
                y,
                p,
                sequence,
                requests: RequestList::from_slice(r).unwrap(),
            },
            &CmdCase::DataRead(sequence, ref a) => CommandRepr::HostDataRead {
                sequence,
                acks: RequestList::from_slice(a).unwrap(),
            },
            &CmdCase::Ack(sequence) => CommandRepr::HostDataReadAck { sequence },
            &CmdCase::Unknown(id, ref payload) => CommandRepr::Unknown { id, payload },
        }
    }

    fn check_no_panic(bytes: &[u8]) {
        if let Ok(m) = EieioMessage::parse(bytes) {
            if let EieioMessage::Data(d) = m {
                let _ = d.events().count();
            }
            // Whatever parses must emit back to a message that parses the same.
            let again = m.to_vec();
            assert_eq!(EieioMessage::parse(&again).unwrap(), m);
        }
        if let Ok(p) = DataPacket::new_checked(bytes) {
            let _ = p.events().fold(0u32, |acc, e| acc ^ e.key ^ e.payload.unwrap_or(0));
            let _ = DataRepr::parse(&p).unwrap();
        }
        let _ = DataRepr::parse(&DataPacket::new_unchecked(bytes));
        if let Ok(p) = CommandPacket::new_checked(bytes) {
            let _ = (p.command_id(), p.payload());
            let _ = CommandRepr::parse(&p);
        }
        let _ = CommandRepr::parse(&CommandPacket::new_unchecked(bytes));
    }
}
