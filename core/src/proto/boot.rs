//! The boot protocol: how a host loads SC&MP into the boot ROM of an unbooted SpiNNaker chip.
//!
//! An unbooted board listens on UDP port [`PORT`] (54321). The host patches the first 128 bytes
//! of the system-variable block (`sv`, see [`SystemVariables`]) into image bytes 384–511, then
//! sends FLOOD_FILL_START, one FLOOD_FILL_BLOCK per 1 KiB of image and FLOOD_FILL_CONTROL(1).
//! Nothing is ever acknowledged; hosts poll CMD_VER afterwards to learn whether it worked.
//!
//! Everything on this port is **big-endian**, including the image words, which are stored
//! little-endian in the image file and so appear byte-reversed on the wire.
//!
//! This module has both sides: [`Packet`]/[`Repr`] for single datagrams, [`boot_packets`] for
//! the host's whole sequence, and [`BootReassembler`] for the boot ROM that the emulator runs.

use core::fmt;

use super::{Error, Result};

/// The UDP port the boot ROM listens on.
pub const PORT: u16 = 54321;
/// The only protocol version in use (first two bytes of every packet).
pub const PROTOCOL_VERSION: u16 = 1;
/// Length of the fixed header: version, opcode and three operands.
pub const HEADER_LEN: usize = 18;
/// Maximum number of data words in one packet.
pub const MAX_DATA_WORDS: usize = 256;
/// Length of the longest packet (a full block): 1042 bytes.
pub const MAX_PACKET_LEN: usize = HEADER_LEN + 4 * MAX_DATA_WORDS;
/// Bytes of image carried by one FLOOD_FILL_BLOCK (the last block may be shorter).
pub const BLOCK_LEN: usize = 4 * MAX_DATA_WORDS;
/// Largest bootable image: the 32 KiB of DTCM the ROM loads it into.
pub const MAX_IMAGE_LEN: usize = 32 * 1024;
/// Largest number of blocks in one boot (32).
pub const MAX_BLOCKS: usize = MAX_IMAGE_LEN / BLOCK_LEN;
/// Image offset of the system-variable patch.
pub const SV_PATCH_OFFSET: usize = 384;
/// Length of the system-variable patch (sv offsets 0x00–0x7F).
pub const SV_PATCH_LEN: usize = 128;
/// The "words − 1" value real hosts put in every FLOOD_FILL_BLOCK, even a short last one.
pub const BLOCK_WORDS_FIELD: u8 = 255;
/// FLOOD_FILL_CONTROL operand 1 meaning "go: run the image".
pub const CONTROL_GO: u32 = 1;

const WHAT: &str = "boot packet";

/// Byte offsets of the header fields.
mod field {
    /// A byte range inside the packet.
    pub type Field = core::ops::Range<usize>;
    /// u16 BE protocol version.
    pub const VERSION: Field = 0..2;
    /// u32 BE opcode.
    pub const OPCODE: Field = 2..6;
    /// u32 BE operand 1.
    pub const OPERAND1: Field = 6..10;
    /// u32 BE operand 2.
    pub const OPERAND2: Field = 10..14;
    /// u32 BE operand 3.
    pub const OPERAND3: Field = 14..18;
    /// Start of the data words.
    pub const DATA: usize = 18;
}

fn read_be_u32(buf: &[u8], at: core::ops::Range<usize>) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&buf[at]);
    u32::from_be_bytes(w)
}

/// A boot packet opcode. Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Opcode {
    /// 0x01: announces a flood fill; operand 3 = number of blocks − 1.
    FloodFillStart,
    /// 0x03: one block of the image; operand 1 = (words − 1) << 8 | block index.
    FloodFillBlock,
    /// 0x05: ends the flood fill; operand 1 = 1 runs the image.
    FloodFillControl,
    /// 0x41: defined by spinnman, never sent by hosts (presumably an unbooted board's hello).
    Hello,
    /// Any other value.
    Unknown(u32),
}

impl From<u32> for Opcode {
    fn from(v: u32) -> Self {
        match v {
            0x01 => Opcode::FloodFillStart,
            0x03 => Opcode::FloodFillBlock,
            0x05 => Opcode::FloodFillControl,
            0x41 => Opcode::Hello,
            other => Opcode::Unknown(other),
        }
    }
}

impl From<Opcode> for u32 {
    fn from(op: Opcode) -> u32 {
        match op {
            Opcode::FloodFillStart => 0x01,
            Opcode::FloodFillBlock => 0x03,
            Opcode::FloodFillControl => 0x05,
            Opcode::Hello => 0x41,
            Opcode::Unknown(v) => v,
        }
    }
}

/// A run of 32-bit words borrowed either from a packet (big-endian) or from an image
/// (little-endian), so that neither parsing nor emitting has to copy or allocate.
///
/// Two `Words` are equal when they hold the same word values, whatever their byte order.
#[derive(Clone, Copy)]
pub struct Words<'a> {
    bytes: &'a [u8],
    big_endian: bool,
}

impl<'a> Words<'a> {
    /// No words at all.
    pub const EMPTY: Words<'static> = Words {
        bytes: &[],
        big_endian: true,
    };

    fn check(bytes: &[u8]) -> Result<()> {
        if !bytes.len().is_multiple_of(4) {
            return Err(Error::BadField {
                what: WHAT,
                field: "data",
                detail: format!("{} bytes is not a whole number of 32-bit words", bytes.len()),
            });
        }
        Ok(())
    }

    /// Words as they appear on the wire (big-endian). Fails if the length is not a multiple of 4.
    pub fn from_wire(bytes: &'a [u8]) -> Result<Self> {
        Self::check(bytes)?;
        Ok(Words {
            bytes,
            big_endian: true,
        })
    }

    /// Words as they appear in an image file (little-endian). Fails if the length is not a
    /// multiple of 4.
    pub fn from_image(bytes: &'a [u8]) -> Result<Self> {
        Self::check(bytes)?;
        Ok(Words {
            bytes,
            big_endian: false,
        })
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.bytes.len() / 4
    }

    /// True if there are no words.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Number of bytes (4 × [`len`](Self::len)).
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Word `i`, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<u32> {
        let start = i.checked_mul(4)?;
        let chunk = self.bytes.get(start..start.checked_add(4)?)?;
        let mut w = [0u8; 4];
        w.copy_from_slice(chunk);
        Some(if self.big_endian {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        })
    }

    /// The word values in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = u32> + 'a {
        let big_endian = self.big_endian;
        self.bytes.chunks_exact(4).map(move |c| {
            let w = [c[0], c[1], c[2], c[3]];
            if big_endian {
                u32::from_be_bytes(w)
            } else {
                u32::from_le_bytes(w)
            }
        })
    }

    fn write(&self, out: &mut [u8], want_big_endian: bool) {
        let out = &mut out[..self.bytes.len()];
        out.copy_from_slice(self.bytes);
        if self.big_endian != want_big_endian {
            for w in out.chunks_exact_mut(4) {
                w.reverse();
            }
        }
    }

    /// Writes the words big-endian (wire order) into the first [`byte_len`](Self::byte_len)
    /// bytes of `out`.
    ///
    /// # Panics
    /// If `out` is shorter than [`byte_len`](Self::byte_len).
    pub fn write_wire(&self, out: &mut [u8]) {
        self.write(out, true);
    }

    /// Writes the words little-endian (image order) into the first
    /// [`byte_len`](Self::byte_len) bytes of `out`.
    ///
    /// # Panics
    /// If `out` is shorter than [`byte_len`](Self::byte_len).
    pub fn write_image(&self, out: &mut [u8]) {
        self.write(out, false);
    }
}

impl PartialEq for Words<'_> {
    fn eq(&self, other: &Self) -> bool {
        if self.big_endian == other.big_endian {
            self.bytes == other.bytes
        } else {
            self.len() == other.len() && self.iter().eq(other.iter())
        }
    }
}

impl Eq for Words<'_> {}

impl fmt::Debug for Words<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 4;
        write!(f, "Words({} words", self.len())?;
        for w in self.iter().take(SHOWN) {
            write!(f, " {w:08x}")?;
        }
        if self.len() > SHOWN {
            f.write_str(" …")?;
        }
        f.write_str(")")
    }
}

/// A read/write view of a boot packet (smoltcp style).
///
/// The data words run from byte 18 to the end of the buffer, so the buffer should be exactly
/// the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors panic if it is shorter than the header.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the header is present, the packet is at most [`MAX_PACKET_LEN`] bytes and the
    /// data is a whole number of words. After this every accessor is infallible.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated {
                what: WHAT,
                need: HEADER_LEN,
                got: len,
            });
        }
        if len > MAX_PACKET_LEN {
            return Err(Error::TooLong {
                what: WHAT,
                max: MAX_PACKET_LEN,
                got: len,
            });
        }
        if !(len - HEADER_LEN).is_multiple_of(4) {
            return Err(Error::BadField {
                what: WHAT,
                field: "data",
                detail: format!("{} data bytes is not a whole number of 32-bit words", len - HEADER_LEN),
            });
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Protocol version (should be [`PROTOCOL_VERSION`]).
    pub fn version(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::VERSION];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The opcode.
    pub fn opcode(&self) -> Opcode {
        Opcode::from(read_be_u32(self.buffer.as_ref(), field::OPCODE))
    }

    /// Operand 1.
    pub fn operand1(&self) -> u32 {
        read_be_u32(self.buffer.as_ref(), field::OPERAND1)
    }

    /// Operand 2.
    pub fn operand2(&self) -> u32 {
        read_be_u32(self.buffer.as_ref(), field::OPERAND2)
    }

    /// Operand 3.
    pub fn operand3(&self) -> u32 {
        read_be_u32(self.buffer.as_ref(), field::OPERAND3)
    }

    /// Number of data words after the header.
    pub fn data_words(&self) -> usize {
        self.buffer.as_ref().len().saturating_sub(HEADER_LEN) / 4
    }

    /// Data word `i` (decoded from big-endian), or `None` past the end.
    pub fn data_word(&self, i: usize) -> Option<u32> {
        let data = self.buffer.as_ref().get(field::DATA..)?;
        Words {
            bytes: data,
            big_endian: true,
        }
        .get(i)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The data bytes, in wire (big-endian) order, borrowed for the buffer's lifetime.
    pub fn data(&self) -> &'a [u8] {
        self.buffer.as_ref().get(field::DATA..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the protocol version.
    pub fn set_version(&mut self, v: u16) {
        self.buffer.as_mut()[field::VERSION].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the opcode.
    pub fn set_opcode(&mut self, op: Opcode) {
        self.buffer.as_mut()[field::OPCODE].copy_from_slice(&u32::from(op).to_be_bytes());
    }

    /// Sets operand 1.
    pub fn set_operand1(&mut self, v: u32) {
        self.buffer.as_mut()[field::OPERAND1].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets operand 2.
    pub fn set_operand2(&mut self, v: u32) {
        self.buffer.as_mut()[field::OPERAND2].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets operand 3.
    pub fn set_operand3(&mut self, v: u32) {
        self.buffer.as_mut()[field::OPERAND3].copy_from_slice(&v.to_be_bytes());
    }

    /// The data bytes (wire order), mutable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }
}

/// A parsed boot packet.
///
/// Parsing is strict about the operands each opcode defines (unused operands must be zero, the
/// block operand must fit in 16 bits), so `parse` followed by `emit` reproduces the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// FLOOD_FILL_START: `last_block` = number of blocks − 1 (operand 3).
    FloodFillStart {
        /// Index of the last block, i.e. number of blocks − 1.
        last_block: u8,
    },
    /// FLOOD_FILL_BLOCK.
    FloodFillBlock {
        /// Block index (bits 7..0 of operand 1).
        index: u8,
        /// Declared "words − 1" (bits 15..8 of operand 1), kept as sent. Real hosts always send
        /// [`BLOCK_WORDS_FIELD`] (255), even for a shorter last block.
        words_field: u8,
        /// The block's words (1..=256).
        data: Words<'a>,
    },
    /// FLOOD_FILL_CONTROL: `command` is operand 1 ([`CONTROL_GO`] = run the image).
    FloodFillControl {
        /// Operand 1.
        command: u32,
    },
    /// HELLO or an unknown opcode, kept whole. Parsing never produces the three opcodes above
    /// here; emitting such a value writes it as given.
    Other {
        /// The opcode.
        opcode: Opcode,
        /// Operands 1..3.
        operands: [u32; 3],
        /// Data words.
        data: Words<'a>,
    },
}

impl<'a> Repr<'a> {
    /// FLOOD_FILL_START for `n_blocks` blocks (1..=256).
    pub fn start(n_blocks: usize) -> Result<Repr<'static>> {
        match n_blocks.checked_sub(1).map(u8::try_from) {
            Some(Ok(last_block)) => Ok(Repr::FloodFillStart { last_block }),
            _ => Err(Error::BadField {
                what: WHAT,
                field: "n_blocks",
                detail: format!("{n_blocks} blocks is outside 1..=256"),
            }),
        }
    }

    /// FLOOD_FILL_BLOCK `index` carrying `image_block` (little-endian image bytes, 4..=1024 bytes,
    /// a multiple of 4), with the words field set to 255 as real hosts do.
    pub fn block(index: u8, image_block: &'a [u8]) -> Result<Repr<'a>> {
        let data = Words::from_image(image_block)?;
        if data.is_empty() || data.len() > MAX_DATA_WORDS {
            return Err(Error::BadField {
                what: WHAT,
                field: "data",
                detail: format!("block of {} words is outside 1..=256", data.len()),
            });
        }
        Ok(Repr::FloodFillBlock {
            index,
            words_field: BLOCK_WORDS_FIELD,
            data,
        })
    }

    /// FLOOD_FILL_CONTROL(1): run the image.
    pub const fn control_go() -> Repr<'static> {
        Repr::FloodFillControl { command: CONTROL_GO }
    }

    /// Parses a packet, checking its length first.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        let version = packet.version();
        if version != PROTOCOL_VERSION {
            return Err(bad("version", format!("{version} (expected {PROTOCOL_VERSION})")));
        }
        let (op1, op2, op3) = (packet.operand1(), packet.operand2(), packet.operand3());
        let data = Words {
            bytes: packet.data(),
            big_endian: true,
        };
        let no_data = |name: &str| -> Result<()> {
            if data.is_empty() {
                Ok(())
            } else {
                Err(bad(
                    "data",
                    format!("{name} carries {} data words, expected none", data.len()),
                ))
            }
        };
        let zero = |field: &'static str, v: u32, name: &str| -> Result<()> {
            if v == 0 {
                Ok(())
            } else {
                Err(bad(field, format!("{name} operand is {v:#x}, expected 0")))
            }
        };
        match packet.opcode() {
            Opcode::FloodFillStart => {
                zero("operand1", op1, "FLOOD_FILL_START")?;
                zero("operand2", op2, "FLOOD_FILL_START")?;
                no_data("FLOOD_FILL_START")?;
                let last_block = u8::try_from(op3)
                    .map_err(|_| bad("operand3", format!("last block index {op3} does not fit in 8 bits")))?;
                Ok(Repr::FloodFillStart { last_block })
            }
            Opcode::FloodFillBlock => {
                if op1 > 0xFFFF {
                    return Err(bad("operand1", format!("{op1:#x} has bits above 15 set")));
                }
                zero("operand2", op2, "FLOOD_FILL_BLOCK")?;
                zero("operand3", op3, "FLOOD_FILL_BLOCK")?;
                if data.is_empty() {
                    return Err(bad("data", "FLOOD_FILL_BLOCK carries no data".to_string()));
                }
                let [_, _, words_field, index] = op1.to_be_bytes();
                Ok(Repr::FloodFillBlock {
                    index,
                    words_field,
                    data,
                })
            }
            Opcode::FloodFillControl => {
                zero("operand2", op2, "FLOOD_FILL_CONTROL")?;
                zero("operand3", op3, "FLOOD_FILL_CONTROL")?;
                no_data("FLOOD_FILL_CONTROL")?;
                Ok(Repr::FloodFillControl { command: op1 })
            }
            opcode @ (Opcode::Hello | Opcode::Unknown(_)) => Ok(Repr::Other {
                opcode,
                operands: [op1, op2, op3],
                data,
            }),
        }
    }

    /// The packet's opcode.
    pub fn opcode(&self) -> Opcode {
        match self {
            Repr::FloodFillStart { .. } => Opcode::FloodFillStart,
            Repr::FloodFillBlock { .. } => Opcode::FloodFillBlock,
            Repr::FloodFillControl { .. } => Opcode::FloodFillControl,
            Repr::Other { opcode, .. } => *opcode,
        }
    }

    fn data(&self) -> Words<'a> {
        match self {
            Repr::FloodFillBlock { data, .. } | Repr::Other { data, .. } => *data,
            _ => Words::EMPTY,
        }
    }

    /// Length of the emitted packet.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.data().byte_len()
    }

    /// Writes the packet into `packet`, whose buffer should be exactly
    /// [`buffer_len`](Self::buffer_len) bytes (extra bytes would read back as data).
    ///
    /// # Panics
    /// If the buffer is shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        let (op1, op2, op3) = match *self {
            Repr::FloodFillStart { last_block } => (0, 0, u32::from(last_block)),
            Repr::FloodFillBlock { index, words_field, .. } => ((u32::from(words_field) << 8) | u32::from(index), 0, 0),
            Repr::FloodFillControl { command } => (command, 0, 0),
            Repr::Other { operands, .. } => (operands[0], operands[1], operands[2]),
        };
        packet.set_version(PROTOCOL_VERSION);
        packet.set_opcode(self.opcode());
        packet.set_operand1(op1);
        packet.set_operand2(op2);
        packet.set_operand3(op3);
        self.data().write_wire(packet.data_mut());
    }

    /// Emits into a new vector of exactly [`buffer_len`](Self::buffer_len) bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut buf = vec![0u8; self.buffer_len()];
        self.emit(&mut Packet::new_unchecked(&mut buf[..]));
        buf
    }
}

fn bad(field: &'static str, detail: String) -> Error {
    Error::BadField {
        what: WHAT,
        field,
        detail,
    }
}

/// Byte offsets inside the first 128 bytes of `sv` (all little-endian).
mod sv_field {
    pub const HW_VER: usize = 0x0A;
    pub const ETH_UP: usize = 0x0B;
    pub const P2PB_REPEATS: usize = 0x0C;
    pub const P2P_SQL: usize = 0x0D;
    pub const CLK_DIV: usize = 0x0E;
    pub const TP_SCALE: usize = 0x0F;
    pub const UNIX_TIME: usize = 0x1C;
    pub const CPU_CLK: usize = 0x24;
    pub const MEM_CLK: usize = 0x26;
    pub const FORWARD: usize = 0x28;
    pub const RETRY: usize = 0x29;
    pub const PEEK_TIME: usize = 0x2A;
    pub const LED_PERIOD: usize = 0x2B;
    pub const NETINIT_BC_WAIT: usize = 0x2C;
    pub const LED0: usize = 0x30;
    pub const LED1: usize = 0x34;
    pub const ROOT_CHIP: usize = 0x40;
    pub const NUM_BUF: usize = 0x41;
    pub const BOOT_DELAY: usize = 0x42;
    pub const SOFT_WDOG: usize = 0x43;
    pub const SYSRAM_HEAP: usize = 0x48;
    pub const SDRAM_HEAP: usize = 0x4C;
    pub const IOBUF_SIZE: usize = 0x50;
    pub const SYS_BUFS: usize = 0x54;
    pub const SYSBUF_SIZE: usize = 0x58;
    pub const BOOT_SIG: usize = 0x5C;
    pub const LINK_EN: usize = 0x65;
}

/// The first 128 bytes of SC&MP's system-variable block (`sv` offsets 0x00–0x7F) as a host
/// patches them into the boot image (image bytes 384–511).
///
/// Only the fields a host or the struct defaults set are represented; every other byte of the
/// block is zero, as in both rig's and spinnman's patches. [`Default`] gives the struct
/// defaults with the host-set fields (`hw_ver`, `unix_time`, `root_chip`, `boot_sig`) zero;
/// [`SystemVariables::rig`] and [`SystemVariables::spinnman`] reproduce those clients'
/// blocks byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SystemVariables {
    /// 0x0A: board hardware version (5 = SpiNN-5, 3 = SpiNN-3).
    pub hw_ver: u8,
    /// 0x0B: Ethernet up.
    pub eth_up: u8,
    /// 0x0C: P2P broadcast repeats.
    pub p2pb_repeats: u8,
    /// 0x0D: P2P sequence length.
    pub p2p_sql: u8,
    /// 0x0E: clock divider.
    pub clk_div: u8,
    /// 0x0F: time-phase scale.
    pub tp_scale: u8,
    /// 0x1C: Unix time (seconds) when booted.
    pub unix_time: u32,
    /// 0x24: CPU clock in MHz.
    pub cpu_clk: u16,
    /// 0x26: memory clock in MHz.
    pub mem_clk: u16,
    /// 0x28: nearest-neighbour forward mask.
    pub forward: u8,
    /// 0x29: nearest-neighbour retry.
    pub retry: u8,
    /// 0x2A: peek/poke time-out in µs.
    pub peek_time: u8,
    /// 0x2B: LED period.
    pub led_period: u8,
    /// 0x2C: netinit broadcast wait (× 10 ms).
    pub netinit_bc_wait: u8,
    /// 0x30: LED 0 configuration (depends on the board: see [`led0_for_hw_ver`]).
    pub led0: u32,
    /// 0x34: LED 1 configuration.
    pub led1: u32,
    /// 0x40: set on the root chip.
    pub root_chip: u8,
    /// 0x41: number of shared-memory buffers.
    pub num_buf: u8,
    /// 0x42: delay between boot nearest-neighbour packets in µs.
    pub boot_delay: u8,
    /// 0x43: number of watchdog failures allowed.
    pub soft_wdog: u8,
    /// 0x48: SysRAM heap size in words.
    pub sysram_heap: u32,
    /// 0x4C: SDRAM heap size in words.
    pub sdram_heap: u32,
    /// 0x50: IOBUF size in bytes.
    pub iobuf_size: u32,
    /// 0x54: system SDRAM in bytes.
    pub sys_bufs: u32,
    /// 0x58: system buffer size in words.
    pub sysbuf_size: u32,
    /// 0x5C: boot signature (hosts put the boot time here too).
    pub boot_sig: u32,
    /// 0x65: bit map of enabled links.
    pub link_en: u8,
}

impl Default for SystemVariables {
    fn default() -> Self {
        SystemVariables {
            hw_ver: 0,
            eth_up: 0,
            p2pb_repeats: 4,
            p2p_sql: 4,
            clk_div: 0x33,
            tp_scale: 0,
            unix_time: 0,
            cpu_clk: 200,
            mem_clk: 130,
            forward: 0x3F,
            retry: 0,
            peek_time: 100,
            led_period: 1,
            netinit_bc_wait: 50,
            led0: 1,
            led1: 0,
            root_chip: 0,
            num_buf: 7,
            boot_delay: 10,
            soft_wdog: 3,
            sysram_heap: 1024,
            sdram_heap: 1_048_576,
            iobuf_size: 16_384,
            sys_bufs: 8 * 1024 * 1024,
            sysbuf_size: 32_768,
            boot_sig: 0,
            link_en: 0x3F,
        }
    }
}

/// The `led0` value hosts use for a board hardware version (`None` for unknown versions).
pub const fn led0_for_hw_ver(hw_ver: u8) -> Option<u32> {
    match hw_ver {
        4 | 5 => Some(0x0000_0001),
        3 => Some(0x0000_0502),
        2 => Some(0x0000_6103),
        1 => Some(0x0007_6104),
        _ => None,
    }
}

impl SystemVariables {
    /// rig 2.4.1's block for a SpiNN-5 board booted at `unix_time`.
    pub fn rig(unix_time: u32) -> Self {
        SystemVariables {
            root_chip: 1,
            ..Self::default()
        }
        .with_hardware_version(5)
        .with_time(unix_time)
    }

    /// spinnman 1!7.4.1's block for a SpiNN-5 board booted at `unix_time` (differs from rig in
    /// peek_time, boot_delay, soft_wdog and sdram_heap).
    pub fn spinnman(unix_time: u32) -> Self {
        SystemVariables {
            peek_time: 200,
            boot_delay: 20,
            soft_wdog: 0,
            sdram_heap: 0,
            ..Self::rig(0)
        }
        .with_time(unix_time)
    }

    /// Sets `unix_time` and `boot_sig` (hosts put the same value in both).
    pub fn with_time(self, unix_time: u32) -> Self {
        SystemVariables {
            unix_time,
            boot_sig: unix_time,
            ..self
        }
    }

    /// Sets `hw_ver`, and `led0` to the value hosts use for that version (unchanged if unknown).
    pub fn with_hardware_version(self, hw_ver: u8) -> Self {
        SystemVariables {
            hw_ver,
            led0: led0_for_hw_ver(hw_ver).unwrap_or(self.led0),
            ..self
        }
    }

    /// The 128 bytes to patch into the image.
    pub fn to_bytes(&self) -> [u8; SV_PATCH_LEN] {
        use sv_field::*;
        let mut b = [0u8; SV_PATCH_LEN];
        let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
        put(HW_VER, &[self.hw_ver, self.eth_up, self.p2pb_repeats, self.p2p_sql]);
        put(CLK_DIV, &[self.clk_div, self.tp_scale]);
        put(UNIX_TIME, &self.unix_time.to_le_bytes());
        put(CPU_CLK, &self.cpu_clk.to_le_bytes());
        put(MEM_CLK, &self.mem_clk.to_le_bytes());
        put(FORWARD, &[self.forward, self.retry, self.peek_time, self.led_period]);
        put(NETINIT_BC_WAIT, &[self.netinit_bc_wait]);
        put(LED0, &self.led0.to_le_bytes());
        put(LED1, &self.led1.to_le_bytes());
        put(
            ROOT_CHIP,
            &[self.root_chip, self.num_buf, self.boot_delay, self.soft_wdog],
        );
        put(SYSRAM_HEAP, &self.sysram_heap.to_le_bytes());
        put(SDRAM_HEAP, &self.sdram_heap.to_le_bytes());
        put(IOBUF_SIZE, &self.iobuf_size.to_le_bytes());
        put(SYS_BUFS, &self.sys_bufs.to_le_bytes());
        put(SYSBUF_SIZE, &self.sysbuf_size.to_le_bytes());
        put(BOOT_SIG, &self.boot_sig.to_le_bytes());
        put(LINK_EN, &[self.link_en]);
        b
    }

    /// Reads the represented fields back from a 128-byte block (other bytes are ignored).
    pub fn from_bytes(block: &[u8]) -> Result<Self> {
        use sv_field::*;
        let b: &[u8; SV_PATCH_LEN] =
            block
                .get(..SV_PATCH_LEN)
                .and_then(|s| s.try_into().ok())
                .ok_or(Error::Truncated {
                    what: "sv block",
                    need: SV_PATCH_LEN,
                    got: block.len(),
                })?;
        let u16_at = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        Ok(SystemVariables {
            hw_ver: b[HW_VER],
            eth_up: b[ETH_UP],
            p2pb_repeats: b[P2PB_REPEATS],
            p2p_sql: b[P2P_SQL],
            clk_div: b[CLK_DIV],
            tp_scale: b[TP_SCALE],
            unix_time: u32_at(UNIX_TIME),
            cpu_clk: u16_at(CPU_CLK),
            mem_clk: u16_at(MEM_CLK),
            forward: b[FORWARD],
            retry: b[RETRY],
            peek_time: b[PEEK_TIME],
            led_period: b[LED_PERIOD],
            netinit_bc_wait: b[NETINIT_BC_WAIT],
            led0: u32_at(LED0),
            led1: u32_at(LED1),
            root_chip: b[ROOT_CHIP],
            num_buf: b[NUM_BUF],
            boot_delay: b[BOOT_DELAY],
            soft_wdog: b[SOFT_WDOG],
            sysram_heap: u32_at(SYSRAM_HEAP),
            sdram_heap: u32_at(SDRAM_HEAP),
            iobuf_size: u32_at(IOBUF_SIZE),
            sys_bufs: u32_at(SYS_BUFS),
            sysbuf_size: u32_at(SYSBUF_SIZE),
            boot_sig: u32_at(BOOT_SIG),
            link_en: b[LINK_EN],
        })
    }

    /// Reads the block out of a patched image (bytes 384–511).
    pub fn from_image(image: &[u8]) -> Result<Self> {
        let end = SV_PATCH_OFFSET + SV_PATCH_LEN;
        let block = image.get(SV_PATCH_OFFSET..end).ok_or(Error::Truncated {
            what: "boot image",
            need: end,
            got: image.len(),
        })?;
        Self::from_bytes(block)
    }
}

/// Checks that `image` can be booted: 512..=32768 bytes (it must hold the sv patch), a
/// multiple of 4.
pub fn check_image(image: &[u8]) -> Result<()> {
    const WHAT: &str = "boot image";
    let len = image.len();
    let min = SV_PATCH_OFFSET + SV_PATCH_LEN;
    if len < min {
        return Err(Error::Truncated {
            what: WHAT,
            need: min,
            got: len,
        });
    }
    if len > MAX_IMAGE_LEN {
        return Err(Error::TooLong {
            what: WHAT,
            max: MAX_IMAGE_LEN,
            got: len,
        });
    }
    if !len.is_multiple_of(4) {
        return Err(Error::BadField {
            what: WHAT,
            field: "length",
            detail: format!("{len} bytes is not a multiple of 4"),
        });
    }
    Ok(())
}

/// Returns a copy of `image` with bytes 384–511 replaced by `sv` (after [`check_image`]).
pub fn patch_image(image: &[u8], sv: &SystemVariables) -> Result<Vec<u8>> {
    check_image(image)?;
    let mut patched = image.to_vec();
    patched[SV_PATCH_OFFSET..SV_PATCH_OFFSET + SV_PATCH_LEN].copy_from_slice(&sv.to_bytes());
    Ok(patched)
}

/// The host's whole boot sequence for one image: START, BLOCK 0..n−1, CONTROL(1), each an
/// owned datagram for UDP port [`PORT`]. Made by [`boot_packets`].
#[derive(Debug, Clone)]
pub struct BootPackets {
    image: Vec<u8>,
    n_blocks: usize,
    next: usize,
}

/// Patches `sv` into `image` and returns the datagrams that boot it.
pub fn boot_packets(image: &[u8], sv: &SystemVariables) -> Result<BootPackets> {
    BootPackets::from_patched(patch_image(image, sv)?)
}

impl BootPackets {
    /// The datagrams for an image that is already patched (or deliberately not).
    pub fn from_patched(image: Vec<u8>) -> Result<BootPackets> {
        check_image(&image)?;
        let n_blocks = image.len().div_ceil(BLOCK_LEN);
        Ok(BootPackets {
            image,
            n_blocks,
            next: 0,
        })
    }

    /// The image being sent (patched).
    pub fn image(&self) -> &[u8] {
        &self.image
    }

    /// Number of FLOOD_FILL_BLOCK packets (1..=32).
    pub fn n_blocks(&self) -> usize {
        self.n_blocks
    }

    /// Packet `i` of the sequence (0 = START, 1..=n = blocks, n+1 = CONTROL) as a repr
    /// borrowing the image.
    pub fn repr(&self, i: usize) -> Option<Repr<'_>> {
        if i == 0 {
            return Repr::start(self.n_blocks).ok();
        }
        if i == self.n_blocks + 1 {
            return Some(Repr::control_go());
        }
        let block = i - 1;
        let start = block.checked_mul(BLOCK_LEN)?;
        let chunk = self.image.get(start..)?;
        let chunk = chunk.get(..BLOCK_LEN).unwrap_or(chunk);
        Repr::block(u8::try_from(block).ok()?, chunk).ok()
    }
}

impl Iterator for BootPackets {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        let repr = self.repr(self.next)?;
        let bytes = repr.to_vec();
        self.next += 1;
        Some(bytes)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.n_blocks + 2).saturating_sub(self.next);
        (n, Some(n))
    }
}

impl ExactSizeIterator for BootPackets {}

/// Why the boot ROM ignored a well-formed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// A BLOCK or CONTROL arrived with no flood fill in progress.
    NotStarted,
    /// START announced more blocks than fit in DTCM.
    TooManyBlocks {
        /// Blocks announced.
        n_blocks: usize,
    },
    /// A BLOCK index at or past the announced number of blocks.
    BlockOutOfRange {
        /// The block index.
        index: u8,
        /// Blocks announced.
        n_blocks: usize,
    },
    /// A block of the wrong size: empty, over 256 words, or (for any block but the last) not
    /// exactly 256 words.
    BadBlockLength {
        /// The block index.
        index: u8,
        /// Words carried.
        words: usize,
    },
    /// CONTROL with an operand other than [`CONTROL_GO`].
    NotGo {
        /// Operand 1.
        command: u32,
    },
    /// HELLO or an unknown opcode.
    Unhandled(Opcode),
}

/// What the boot ROM did with one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootOutcome {
    /// A flood fill started (any earlier one was abandoned).
    Started {
        /// Blocks announced.
        n_blocks: usize,
    },
    /// A block was stored.
    Block {
        /// The block index.
        index: u8,
        /// True if this block had already arrived (it was overwritten).
        duplicate: bool,
    },
    /// CONTROL(1) with every block present: the complete image (little-endian, as in the file).
    Complete(Vec<u8>),
    /// CONTROL(1) before every block arrived; the flood fill is abandoned.
    Incomplete {
        /// Blocks still missing.
        missing: usize,
    },
    /// A well-formed packet the ROM does not act on.
    Ignored(IgnoreReason),
    /// A datagram that is not a valid boot packet.
    Malformed(Error),
}

/// Counters kept by [`BootReassembler`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ReassemblerStats {
    /// Packets handled (including malformed ones).
    pub packets: u64,
    /// Datagrams that failed to parse.
    pub malformed: u64,
    /// Well-formed packets ignored.
    pub ignored: u64,
    /// Blocks received more than once.
    pub duplicates: u64,
    /// STARTs that abandoned an unfinished flood fill.
    pub restarts: u64,
    /// Images completed.
    pub completed: u64,
    /// CONTROLs that arrived with blocks missing.
    pub incomplete: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FillState {
    Idle,
    Receiving {
        n_blocks: usize,
        /// Bit `i` set when block `i` has arrived (at most 32 blocks).
        received: u32,
        /// Length in bytes of the last block, once it has arrived.
        last_len: usize,
    },
}

/// The boot ROM's side of the protocol as a sans-IO state machine: feed it datagrams (or parsed
/// packets) and it says what happened, returning the image once CONTROL(1) arrives after all
/// blocks.
///
/// Blocks may arrive in any order and may repeat. Every block but the last must be a full
/// 256 words; the image length is `(n − 1) × 1024 +` the last block's length. The words field
/// of each block is ignored (hosts always send 255). After `Complete` or `Incomplete` the
/// machine is idle again and waits for a new START.
#[derive(Debug, Clone)]
pub struct BootReassembler {
    state: FillState,
    buffer: Vec<u8>,
    stats: ReassemblerStats,
}

impl Default for BootReassembler {
    fn default() -> Self {
        Self::new()
    }
}

impl BootReassembler {
    /// An idle reassembler.
    pub fn new() -> Self {
        BootReassembler {
            state: FillState::Idle,
            buffer: Vec::new(),
            stats: ReassemblerStats::default(),
        }
    }

    /// Parses and handles one datagram; parse failures are counted and reported as
    /// [`BootOutcome::Malformed`].
    pub fn handle_datagram(&mut self, bytes: &[u8]) -> BootOutcome {
        match Packet::new_checked(bytes).and_then(|p| Repr::parse(&p)) {
            Ok(repr) => self.handle(&repr),
            Err(e) => {
                self.stats.packets += 1;
                self.stats.malformed += 1;
                BootOutcome::Malformed(e)
            }
        }
    }

    /// Handles one parsed packet.
    pub fn handle(&mut self, repr: &Repr<'_>) -> BootOutcome {
        self.stats.packets += 1;
        let outcome = self.step(repr);
        match &outcome {
            BootOutcome::Ignored(_) => self.stats.ignored += 1,
            BootOutcome::Block { duplicate: true, .. } => self.stats.duplicates += 1,
            BootOutcome::Complete(_) => self.stats.completed += 1,
            BootOutcome::Incomplete { .. } => self.stats.incomplete += 1,
            _ => {}
        }
        outcome
    }

    fn step(&mut self, repr: &Repr<'_>) -> BootOutcome {
        match *repr {
            Repr::FloodFillStart { last_block } => {
                let n_blocks = usize::from(last_block) + 1;
                if n_blocks > MAX_BLOCKS {
                    return BootOutcome::Ignored(IgnoreReason::TooManyBlocks { n_blocks });
                }
                if matches!(self.state, FillState::Receiving { .. }) {
                    self.stats.restarts += 1;
                }
                self.buffer.clear();
                self.buffer.resize(n_blocks * BLOCK_LEN, 0);
                self.state = FillState::Receiving {
                    n_blocks,
                    received: 0,
                    last_len: 0,
                };
                BootOutcome::Started { n_blocks }
            }
            Repr::FloodFillBlock { index, data, .. } => {
                let FillState::Receiving {
                    n_blocks,
                    received,
                    last_len,
                } = &mut self.state
                else {
                    return BootOutcome::Ignored(IgnoreReason::NotStarted);
                };
                let i = usize::from(index);
                if i >= *n_blocks {
                    return BootOutcome::Ignored(IgnoreReason::BlockOutOfRange {
                        index,
                        n_blocks: *n_blocks,
                    });
                }
                let is_last = i + 1 == *n_blocks;
                if data.is_empty() || data.len() > MAX_DATA_WORDS || (!is_last && data.len() != MAX_DATA_WORDS) {
                    return BootOutcome::Ignored(IgnoreReason::BadBlockLength {
                        index,
                        words: data.len(),
                    });
                }
                let start = i * BLOCK_LEN;
                data.write_image(&mut self.buffer[start..start + BLOCK_LEN]);
                if is_last {
                    *last_len = data.byte_len();
                }
                let bit = 1u32 << i;
                let duplicate = *received & bit != 0;
                *received |= bit;
                BootOutcome::Block { index, duplicate }
            }
            Repr::FloodFillControl { command } => {
                let FillState::Receiving {
                    n_blocks,
                    received,
                    last_len,
                } = self.state
                else {
                    return BootOutcome::Ignored(IgnoreReason::NotStarted);
                };
                if command != CONTROL_GO {
                    return BootOutcome::Ignored(IgnoreReason::NotGo { command });
                }
                self.state = FillState::Idle;
                let present = received.count_ones() as usize;
                if present < n_blocks {
                    return BootOutcome::Incomplete {
                        missing: n_blocks - present,
                    };
                }
                let len = (n_blocks - 1) * BLOCK_LEN + last_len;
                let mut image = core::mem::take(&mut self.buffer);
                image.truncate(len);
                BootOutcome::Complete(image)
            }
            Repr::Other { opcode, .. } => BootOutcome::Ignored(IgnoreReason::Unhandled(opcode)),
        }
    }

    /// True while a flood fill is in progress.
    pub fn is_receiving(&self) -> bool {
        matches!(self.state, FillState::Receiving { .. })
    }

    /// `(blocks received, blocks announced)` while a flood fill is in progress.
    pub fn progress(&self) -> Option<(usize, usize)> {
        match self.state {
            FillState::Idle => None,
            FillState::Receiving { n_blocks, received, .. } => Some((received.count_ones() as usize, n_blocks)),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> &ReassemblerStats {
        &self.stats
    }

    /// Abandons any flood fill in progress (counters are kept).
    pub fn reset(&mut self) {
        self.state = FillState::Idle;
        self.buffer.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        assert!(s.len().is_multiple_of(2), "odd hex length");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const RIG_TIME: u32 = 0x6b02_44a3;
    const SPINNMAN_TIME: u32 = 0x6b02_44f0;

    const RIG_SV: &str = "00000000000000000000050004043300000000000000000000000000a344026b00000000c80082003f006401320000000100000000000000000000000000000001070a03000000000004000000001000004000000000800000800000a344026b00000000003f0000000000000000000000000000000000000000000000000000";
    const SPINNMAN_SV: &str = "00000000000000000000050004043300000000000000000000000000f044026b00000000c80082003f00c801320000000100000000000000000000000000000001071400000000000004000000000000004000000000800000800000f044026b00000000003f0000000000000000000000000000000000000000000000000000";

    /// A synthetic image of `len` bytes whose words at the start of block 0, block 1 and the
    /// last block are those seen in the captures (given big-endian there).
    fn synthetic_image(len: usize, last_block_start: &str) -> Vec<u8> {
        let mut image: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8).collect();
        let put_be_words = |image: &mut Vec<u8>, at: usize, be: &str| {
            for (k, w) in hex(be).chunks_exact(4).enumerate() {
                if let Some(dst) = image.get_mut(at + 4 * k..at + 4 * k + 4) {
                    dst.copy_from_slice(&[w[3], w[2], w[1], w[0]]);
                }
            }
        };
        put_be_words(&mut image, 0, "e3a0d841e28f0004e8900033fa0000030040808000000000e321f0");
        put_be_words(
            &mut image,
            1024,
            "2803d0042804d00bbdf2d0113a101912c1e1cae1c1e1cae1d8f93b",
        );
        let last = (len - 1) / 1024 * 1024;
        put_be_words(&mut image, last, last_block_start);
        image
    }

    /// Captured packet prefixes are cut mid-word: keep the 18-byte header and whole words.
    fn whole_words(s: &str) -> &str {
        &s[..36 + (s.len() - 36) / 8 * 8]
    }

    #[test]
    fn first_image_word_is_byte_swapped_on_the_wire() {
        let mut image = vec![0u8; 1024];
        image[..4].copy_from_slice(&[0x41, 0xd8, 0xa0, 0xe3]);
        let repr = Repr::block(0, &image).unwrap();
        let bytes = repr.to_vec();
        assert_eq!(bytes.len(), 1042);
        assert_eq!(&bytes[18..22], &hex("e3a0d841")[..]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.data_word(0), Some(0xE3A0_D841));
    }

    #[test]
    fn control_and_start_headers_byte_exact() {
        assert_eq!(Repr::control_go().to_vec(), hex("000100000005000000010000000000000000"));
        assert_eq!(
            Repr::start(27).unwrap().to_vec(),
            hex("00010000000100000000000000000000001a")
        );
        assert_eq!(
            Repr::start(30).unwrap().to_vec(),
            hex("00010000000100000000000000000000001d")
        );
        for (s, want) in [
            (
                "000100000005000000010000000000000000",
                Repr::FloodFillControl { command: 1 },
            ),
            (
                "00010000000100000000000000000000001a",
                Repr::FloodFillStart { last_block: 26 },
            ),
            (
                "00010000000100000000000000000000001d",
                Repr::FloodFillStart { last_block: 29 },
            ),
        ] {
            let b = hex(s);
            assert_eq!(Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap(), want);
        }
    }

    #[test]
    fn sv_presets_byte_exact() {
        assert_eq!(SystemVariables::rig(RIG_TIME).to_bytes().to_vec(), hex(RIG_SV));
        assert_eq!(
            SystemVariables::spinnman(SPINNMAN_TIME).to_bytes().to_vec(),
            hex(SPINNMAN_SV)
        );
        // The times really are the ones in the captured blocks.
        let rig = hex(RIG_SV);
        assert_eq!(u32::from_le_bytes(rig[0x1c..0x20].try_into().unwrap()), RIG_TIME);
        assert_eq!(u32::from_le_bytes(rig[0x5c..0x60].try_into().unwrap()), RIG_TIME);
        assert_eq!(
            SystemVariables::from_bytes(&rig).unwrap(),
            SystemVariables::rig(RIG_TIME)
        );
        let sp = hex(SPINNMAN_SV);
        assert_eq!(
            SystemVariables::from_bytes(&sp).unwrap(),
            SystemVariables::spinnman(SPINNMAN_TIME)
        );
        let sv = SystemVariables::rig(RIG_TIME);
        assert_eq!((sv.hw_ver, sv.root_chip, sv.led0, sv.peek_time), (5, 1, 1, 100));
        assert_eq!(SystemVariables::default().with_hardware_version(3).led0, 0x502);
    }

    /// Checks a client's whole sequence against its capture.
    fn check_client_sequence(
        len: usize,
        sv: SystemVariables,
        sv_hex: &str,
        start: &str,
        last_header_and_data: &str,
        last_total: usize,
    ) {
        let last_data = &last_header_and_data[36..];
        let image = synthetic_image(len, &last_data[..last_data.len() / 8 * 8]);
        let packets: Vec<Vec<u8>> = boot_packets(&image, &sv).unwrap().collect();
        let n_blocks = len.div_ceil(1024);
        assert_eq!(packets.len(), n_blocks + 2);
        assert_eq!(packets[0], hex(start));
        let b0 = "0001000000030000ff000000000000000000e3a0d841e28f0004e8900033fa0000030040808000000000e321f0";
        let b1 = "0001000000030000ff0100000000000000002803d0042804d00bbdf2d0113a101912c1e1cae1c1e1cae1d8f93b";
        for (i, want) in [(1, b0), (2, b1)] {
            let want = whole_words(want);
            assert_eq!(packets[i].len(), 1042);
            assert_eq!(&packets[i][..want.len() / 2], &hex(want)[..], "block {}", i - 1);
        }
        // Every block header: words field 255, index in byte 9.
        for (i, p) in packets[1..=n_blocks].iter().enumerate() {
            let mut header = hex("0001000000030000ff000000000000000000");
            header[9] = i as u8;
            assert_eq!(&p[..18], &header[..]);
        }
        let last = &packets[n_blocks];
        assert_eq!(last.len(), last_total);
        let want = whole_words(last_header_and_data);
        assert_eq!(&last[..want.len() / 2], &hex(want)[..]);
        assert_eq!(packets[n_blocks + 1], hex("000100000005000000010000000000000000"));
        // The sv patch at UDP offset 402 of block 0, converted back to little-endian.
        let mut patch = packets[1][402..530].to_vec();
        patch.chunks_exact_mut(4).for_each(|w| w.reverse());
        assert_eq!(patch, hex(sv_hex));
    }

    #[test]
    fn rig_sequence_matches_capture() {
        check_client_sequence(
            27_168,
            SystemVariables::rig(RIG_TIME),
            RIG_SV,
            "00010000000100000000000000000000001a",
            "0001000000030000ff1a00000000000000003e6e77dbaed16a4ad9d65adc40df0b6637d83bf0",
            562,
        );
    }

    #[test]
    fn spinnman_sequence_matches_capture() {
        check_client_sequence(
            29_868,
            SystemVariables::spinnman(SPINNMAN_TIME),
            SPINNMAN_SV,
            "00010000000100000000000000000000001d",
            "0001000000030000ff1d00000000000000000000000000000000000000000000000000000000",
            190,
        );
    }

    #[test]
    fn round_trip_through_reassembler() {
        for len in [512, 1024, 1028, 27_168, 29_868, 32_768] {
            let image = synthetic_image(len, "01020304");
            let sv = SystemVariables::spinnman(SPINNMAN_TIME);
            let packets: Vec<Vec<u8>> = boot_packets(&image, &sv).unwrap().collect();
            let mut rom = BootReassembler::new();
            let mut outcome = None;
            for p in &packets {
                outcome = Some(rom.handle_datagram(p));
            }
            let want = patch_image(&image, &sv).unwrap();
            assert_eq!(outcome, Some(BootOutcome::Complete(want.clone())), "len {len}");
            assert_eq!(SystemVariables::from_image(&want).unwrap(), sv);
            assert_eq!(rom.stats().completed, 1);
            assert_eq!(rom.stats().malformed, 0);
        }
    }

    #[test]
    fn reassembler_any_order_duplicates_and_failures() {
        let image = synthetic_image(3 * 1024 + 8, "01020304");
        let packets: Vec<Vec<u8>> = boot_packets(&image, &SystemVariables::rig(1)).unwrap().collect();
        let mut rom = BootReassembler::new();
        assert_eq!(
            rom.handle_datagram(&packets[2]),
            BootOutcome::Ignored(IgnoreReason::NotStarted)
        );
        assert_eq!(rom.handle_datagram(&packets[0]), BootOutcome::Started { n_blocks: 4 });
        for i in [4, 2, 3, 2] {
            assert!(matches!(rom.handle_datagram(&packets[i]), BootOutcome::Block { .. }));
        }
        assert_eq!(rom.progress(), Some((3, 4)));
        assert_eq!(rom.stats().duplicates, 1);
        assert_eq!(rom.handle_datagram(&packets[5]), BootOutcome::Incomplete { missing: 1 });
        assert!(!rom.is_receiving());
        // Try again in reverse order, with garbage and a restart in the middle.
        rom.handle_datagram(&packets[0]);
        assert_eq!(
            rom.handle_datagram(&[0, 1, 2]),
            BootOutcome::Malformed(Error::Truncated {
                what: WHAT,
                need: 18,
                got: 3
            })
        );
        rom.handle_datagram(&packets[3]);
        rom.handle_datagram(&packets[0]);
        assert_eq!(rom.stats().restarts, 1);
        for i in (1..=4).rev() {
            rom.handle_datagram(&packets[i]);
        }
        let not_go = Repr::FloodFillControl { command: 0 }.to_vec();
        assert_eq!(
            rom.handle_datagram(&not_go),
            BootOutcome::Ignored(IgnoreReason::NotGo { command: 0 })
        );
        let BootOutcome::Complete(got) = rom.handle_datagram(&packets[5]) else {
            panic!("not complete")
        };
        assert_eq!(got, patch_image(&image, &SystemVariables::rig(1)).unwrap());
        assert_eq!(rom.stats().malformed, 1);
        // Out-of-range and short blocks are ignored.
        rom.handle(&Repr::start(2).unwrap());
        let short = Repr::block(0, &image[..8]).unwrap();
        assert_eq!(
            rom.handle(&short),
            BootOutcome::Ignored(IgnoreReason::BadBlockLength { index: 0, words: 2 })
        );
        let huge = Words::from_image(&image[..2048]).unwrap();
        let huge = Repr::FloodFillBlock {
            index: 1,
            words_field: 255,
            data: huge,
        };
        assert_eq!(
            rom.handle(&huge),
            BootOutcome::Ignored(IgnoreReason::BadBlockLength { index: 1, words: 512 })
        );
        let far = Repr::block(2, &image[..8]).unwrap();
        assert_eq!(
            rom.handle(&far),
            BootOutcome::Ignored(IgnoreReason::BlockOutOfRange { index: 2, n_blocks: 2 })
        );
        assert_eq!(
            rom.handle(&Repr::start(33).unwrap()),
            BootOutcome::Ignored(IgnoreReason::TooManyBlocks { n_blocks: 33 })
        );
    }

    #[test]
    fn bad_images_and_packets_are_errors() {
        assert!(matches!(check_image(&[0; 511]), Err(Error::Truncated { .. })));
        assert!(matches!(check_image(&[0; 32_772]), Err(Error::TooLong { .. })));
        assert!(matches!(
            check_image(&[0; 514]),
            Err(Error::BadField { field: "length", .. })
        ));
        assert!(check_image(&[0; 32_768]).is_ok());
        fn parse(b: &[u8]) -> Result<Repr<'_>> {
            Packet::new_checked(b).and_then(|p| Repr::parse(&p))
        }
        assert!(matches!(parse(&[0; 17]), Err(Error::Truncated { .. })));
        assert!(matches!(parse(&[0; 1046]), Err(Error::TooLong { .. })));
        assert!(matches!(parse(&[0; 20]), Err(Error::BadField { field: "data", .. })));
        assert!(matches!(parse(&[0; 18]), Err(Error::BadField { field: "version", .. })));
        let mut start = hex("00010000000100000000000000000000001a");
        start[17] = 0;
        start[16] = 1; // 0x100 blocks - 1 does not fit 8 bits
        assert!(matches!(parse(&start), Err(Error::BadField { field: "operand3", .. })));
        let hello = hex("000100000041000000010000000200000003aabbccdd");
        assert_eq!(
            parse(&hello).unwrap(),
            Repr::Other {
                opcode: Opcode::Hello,
                operands: [1, 2, 3],
                data: Words::from_wire(&hex("aabbccdd")).unwrap()
            }
        );
        assert_eq!(Opcode::from(0x99), Opcode::Unknown(0x99));
        assert_eq!(u32::from(Opcode::Unknown(0x99)), 0x99);
    }

    fn arb_repr() -> impl Strategy<Value = (u8, Vec<u8>, u32, [u32; 3], u8)> {
        (
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 1..=256usize).prop_map(|v| {
                let n = v.len() * 4;
                v.into_iter().cycle().take(n).collect::<Vec<u8>>()
            }),
            any::<u32>(),
            any::<[u32; 3]>(),
            0u8..4,
        )
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Packet::new_checked(&bytes[..]).and_then(|p| Repr::parse(&p));
            let _ = Repr::parse(&Packet::new_unchecked(&bytes[..]));
            let _ = SystemVariables::from_bytes(&bytes);
            let _ = SystemVariables::from_image(&bytes);
            let _ = BootReassembler::new().handle_datagram(&bytes);
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.version(), p.opcode(), p.operand1(), p.operand2(), p.operand3());
                let _ = p.data_word(0);
            }
        }

        #[test]
        fn parse_never_panics_with_valid_header(
            op in prop_oneof![Just(1u32), Just(3), Just(5), Just(0x41), any::<u32>()],
            rest in proptest::collection::vec(any::<u8>(), 12..400),
        ) {
            let mut bytes = vec![0, 1];
            bytes.extend_from_slice(&op.to_be_bytes());
            bytes.extend_from_slice(&rest);
            let mut rom = BootReassembler::new();
            rom.handle(&Repr::start(32).unwrap());
            let _ = rom.handle_datagram(&bytes);
        }

        #[test]
        fn repr_round_trip((index, data, command, operands, kind) in arb_repr()) {
            let words = Words::from_image(&data).unwrap();
            let repr = match kind {
                0 => Repr::FloodFillStart { last_block: index },
                1 => Repr::FloodFillBlock { index, words_field: command as u8, data: words },
                2 => Repr::FloodFillControl { command },
                _ => {
                    let opcode = Opcode::from(operands[0] | 0x100);
                    Repr::Other { opcode, operands, data: words }
                }
            };
            let bytes = repr.to_vec();
            prop_assert_eq!(bytes.len(), repr.buffer_len());
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            let parsed = Repr::parse(&packet).unwrap();
            prop_assert_eq!(parsed, repr);
            prop_assert_eq!(parsed.to_vec(), bytes);
        }
    }
}
