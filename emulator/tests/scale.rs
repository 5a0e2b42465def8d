//! SpiNNaker1M (20 × 20 triads, 1,200 boards): the emulator must stay small.
//!
//! A counting global allocator measures the real heap the emulator holds, and the test checks
//! [`Emulator::memory_estimate`] against it.

mod common;
#[path = "common/counting.rs"]
mod counting;

use common::*;
use counting::live;
use spinnbed_core::geometry::Board;
use spinnbed_core::proto::scp::Request;
use spinnbed_core::time::Duration;
use spinnbed_emulator::{BoardState, Config, Emulator};
use std::sync::Mutex;

const MIB: usize = 1 << 20;

/// Serialises the tests of this file so the counter measures one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn spinnaker1m_idle_fits_easily() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let m = machine("SpiNNaker1M", 20, 20);
    let before = live();
    let emu = Emulator::new(std::slice::from_ref(&m), Config::default());
    let measured = (live() - before).max(0) as usize + core::mem::size_of::<Emulator>();
    let estimate = emu.memory_estimate();
    eprintln!(
        "SpiNNaker1M idle: measured {} KiB, estimated {} KiB",
        measured / 1024,
        estimate / 1024
    );
    assert_eq!(emu.endpoints().len(), 1200 * 2 + 50);
    // Measured 261 KiB (`cargo bench -p spinnbed-emulator --bench memory`).
    assert!(measured < MIB, "{measured} bytes");
    assert!(
        estimate >= measured / 2 && estimate <= measured * 2,
        "estimate {estimate} vs measured {measured}"
    );
}

#[test]
fn spinnaker1m_powered_and_booted_stays_small() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let base = live();
    let mut rig = Rig::new(vec![machine("SpiNNaker1M", 20, 20)]);
    rig.power_all(0);
    let root = rig.board_ip(0, Board::new(0, 0, 0));
    rig.boot_and_wait(root);
    assert_eq!(
        rig.emu.board_state("SpiNNaker1M", Board::new(19, 19, 2)),
        BoardState::Booted
    );
    assert_eq!(
        rig.emu.booted_dimensions("SpiNNaker1M", Board::new(7, 3, 1)),
        Some((240, 240))
    );
    // Write 4 KiB to the Ethernet chip of every board, each through its own Ethernet.
    let data = vec![0xA5u8; 256];
    let boards: Vec<Board> = rig.machines[0].boards().collect();
    for (i, b) in boards.iter().enumerate() {
        let ip = rig.board_ip(0, *b);
        for k in 0..16u32 {
            let r = rig.call(
                ip,
                to_chip(255, 255, 0),
                i as u16,
                Request::write(0x6000_0000 + 256 * k, &data),
            );
            assert_eq!(r.payload[10], 0x80);
        }
    }
    rig.advance(Duration::from_secs(1));
    let measured = (live() - base).max(0) as usize;
    let estimate = rig.emu.memory_estimate();
    eprintln!(
        "SpiNNaker1M booted, 4 KiB written per board: measured {} KiB (incl. harness), estimated {} KiB",
        measured / 1024,
        estimate / 1024
    );
    // Measured 6.4 MiB (`cargo bench -p spinnbed-emulator --bench memory`).
    assert!(measured < 16 * MIB, "{measured} bytes");
    assert!(estimate >= 1200 * 4096, "pages counted");
}
