//! The spI/O FPGA registers a BMP reaches with CMD_LINK_READ / CMD_LINK_WRITE (protocols.md
//! §3.11).
//!
//! Each SpiNN-5 board has three FPGAs carrying its board-to-board links. The allocation service
//! disables the links on an allocation's periphery by writing 1 to the STOP register of the
//! link's bank, and after power-on checks that every FPGA reports its own number in the FLAG
//! register. This module names those addresses and maps a board [`Link`] to its (FPGA, STOP
//! register), so that the host side and the emulated BMP agree on them.
//!
//! Requests are built with [`super::Request::fpga_read`] and [`super::Request::fpga_write`]
//! (arg1 = address, arg2 = 4, arg3 = FPGA number, data = the LE word).

use crate::geometry::Link;

/// Number of FPGAs on a SpiNN-5 board.
pub const NUM_FPGAS: u8 = 3;

/// Base of the top-level register bank.
pub const TOP_BANK: u32 = 0x0004_0000;
/// Top-level register: design version (offset).
pub const VERS: u32 = 0x00;
/// Top-level register: flags; bits 1..0 = this FPGA's number (offset).
pub const FLAG: u32 = 0x04;
/// Top-level register: 2-of-7 link enables (offset).
pub const SLEN: u32 = 0x14;
/// Top-level register: LED override (offset).
pub const LEDO: u32 = 0x18;
/// Absolute address of the VERS register.
pub const VERS_REGISTER: u32 = TOP_BANK + VERS;
/// Absolute address of the FLAG register (0x00040004).
pub const FLAG_REGISTER: u32 = TOP_BANK + FLAG;
/// Absolute address of the SLEN register.
pub const SLEN_REGISTER: u32 = TOP_BANK + SLEN;
/// Absolute address of the LEDO register.
pub const LEDO_REGISTER: u32 = TOP_BANK + LEDO;

/// Per-link register bank of link A (the FPGA's first board link).
pub const BANK_A: u32 = 0x0_0000;
/// Per-link register bank of link B (the FPGA's second board link).
pub const BANK_B: u32 = 0x1_0000;
/// Per-link register bank of the peripheral link.
pub const BANK_PERIPHERAL: u32 = 0x2_0000;
/// The three per-link banks, in order.
pub const LINK_BANKS: [u32; 3] = [BANK_A, BANK_B, BANK_PERIPHERAL];

/// Offset of the first counter register in a link bank.
pub const COUNTER_FIRST: u32 = 0x00;
/// Offset of the last counter register in a link bank.
pub const COUNTER_LAST: u32 = 0x58;
/// Number of counter registers in a link bank (0x00..=0x58, one word each).
pub const NUM_COUNTERS: u8 = 23;
/// Offset of the STOP register in a link bank: 1 = stop sending data frames (still receive).
pub const STOP: u32 = 0x5C;

/// STOP value that disables a link, as the LE word a LINK_WRITE carries.
pub const STOP_DISABLE: [u8; 4] = 1u32.to_le_bytes();
/// STOP value that enables a link.
pub const STOP_ENABLE: [u8; 4] = 0u32.to_le_bytes();

/// The FPGA number a FLAG register value reports (bits 1..0).
pub const fn fpga_id(flag: u32) -> u8 {
    (flag & 3) as u8
}

/// Address of counter `index` (0..23) in the link bank at `bank`, or `None` past the last one.
pub const fn counter_register(bank: u32, index: u8) -> Option<u32> {
    if index < NUM_COUNTERS {
        Some(bank + COUNTER_FIRST + 4 * index as u32)
    } else {
        None
    }
}

/// The (FPGA number, STOP register address) controlling a board link.
///
/// | link | FPGA | STOP |
/// |---|---|---|
/// | east | 0 | 0x0000005C |
/// | south | 0 | 0x0001005C |
/// | south-west | 1 | 0x0000005C |
/// | west | 1 | 0x0001005C |
/// | north | 2 | 0x0000005C |
/// | north-east | 2 | 0x0001005C |
pub const fn stop_register(link: Link) -> (u8, u32) {
    match link {
        Link::East => (0, BANK_A + STOP),
        Link::South => (0, BANK_B + STOP),
        Link::SouthWest => (1, BANK_A + STOP),
        Link::West => (1, BANK_B + STOP),
        Link::North => (2, BANK_A + STOP),
        Link::NorthEast => (2, BANK_B + STOP),
    }
}

/// The board link whose STOP register is `addr` on FPGA `fpga`, if any.
pub const fn link_for_stop_register(fpga: u8, addr: u32) -> Option<Link> {
    match (fpga, addr) {
        (0, 0x5C) => Some(Link::East),
        (0, 0x1005C) => Some(Link::South),
        (1, 0x5C) => Some(Link::SouthWest),
        (1, 0x1005C) => Some(Link::West),
        (2, 0x5C) => Some(Link::North),
        (2, 0x1005C) => Some(Link::NorthEast),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::scp::{Request, RequestMessage};

    #[test]
    fn table_of_protocols_md() {
        assert_eq!(stop_register(Link::East), (0, 0x0000_005C));
        assert_eq!(stop_register(Link::South), (0, 0x0001_005C));
        assert_eq!(stop_register(Link::SouthWest), (1, 0x0000_005C));
        assert_eq!(stop_register(Link::West), (1, 0x0001_005C));
        assert_eq!(stop_register(Link::North), (2, 0x0000_005C));
        assert_eq!(stop_register(Link::NorthEast), (2, 0x0001_005C));
        for link in Link::ALL {
            let (fpga, addr) = stop_register(link);
            assert!(fpga < NUM_FPGAS);
            assert_eq!(link_for_stop_register(fpga, addr), Some(link));
        }
        assert_eq!(link_for_stop_register(3, 0x5C), None);
        assert_eq!(link_for_stop_register(0, 0x2005C), None);
        assert_eq!(link_for_stop_register(0, 0x58), None);
    }

    #[test]
    fn registers() {
        assert_eq!(FLAG_REGISTER, 0x0004_0004);
        assert_eq!(
            (VERS_REGISTER, SLEN_REGISTER, LEDO_REGISTER),
            (0x40000, 0x40014, 0x40018)
        );
        assert_eq!(fpga_id(0xFFFF_FFF6), 2);
        assert_eq!(counter_register(BANK_B, 0), Some(0x1_0000));
        assert_eq!(counter_register(BANK_A, NUM_COUNTERS - 1), Some(COUNTER_LAST));
        assert_eq!(counter_register(BANK_A, NUM_COUNTERS), None);
        assert_eq!(COUNTER_LAST + 4, STOP);
    }

    #[test]
    fn spalloc_link_disable_capture() {
        // rig write_fpga_reg(fpga=1, 0x5C, 1, board=1): link 4 (south-west).
        let (fpga, addr) = stop_register(Link::SouthWest);
        let bytes = crate::proto::sdp::tests::hex("000087ff01ff00000000120000005c000000040000000100000001000000");
        let msg = RequestMessage::parse_udp(&bytes).unwrap();
        assert_eq!(msg.request, Request::fpga_write(fpga, addr, &STOP_DISABLE));
        let Request::LinkWrite { link, addr, .. } = msg.request else {
            unreachable!()
        };
        assert_eq!(link_for_stop_register(link, addr), Some(Link::SouthWest));
    }
}
