//! Memory of an emulated SpiNNaker1M (20 × 20 triads, 1,200 boards) inside a simulation, as a
//! counting global allocator measures it (live heap bytes), at each stage of a machine's day:
//! idle, every board powered, booted, and 4 KiB written to every board's Ethernet chip. Also
//! prints the emulator's own estimate (`Emulator::memory_estimate`) beside each figure.
//!
//! `cargo bench -p spinnbed-emulator --bench memory`

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use spinnbed_core::geometry::Board;
use spinnbed_core::proto::scp::Request;
use spinnbed_core::time::Duration;
use spinnbed_emulator::{Config, Emulator};

#[path = "../tests/common/counting.rs"]
mod counting;

use counting::live;

fn kib(bytes: isize) -> f64 {
    bytes as f64 / 1024.0
}

fn main() {
    let m = machine("SpiNNaker1M", 20, 20);
    println!(
        "{:<44} {:>12} {:>14}",
        "SpiNNaker1M (1,200 boards)", "measured KiB", "estimate KiB"
    );
    let before = live();
    let emu = Emulator::new(std::slice::from_ref(&m), Config::default());
    let idle = live() - before + core::mem::size_of::<Emulator>() as isize;
    println!(
        "{:<44} {:>12.0} {:>14.0}",
        "idle",
        kib(idle),
        kib(emu.memory_estimate() as isize)
    );
    drop(emu);

    let base = live();
    let mut rig = Rig::new(vec![m]);
    let stage = |name: &str, rig: &Rig| {
        let live = live() - base;
        println!(
            "{name:<44} {:>12.0} {:>14.0}",
            kib(live),
            kib(rig.emu.memory_estimate() as isize)
        );
    };
    stage("idle, in the test rig", &rig);
    rig.power_all(0);
    stage("every board powered", &rig);
    let root = rig.board_ip(0, Board::new(0, 0, 0));
    rig.boot_and_wait(root);
    stage("booted (one boot floods all 1,200)", &rig);
    let data = vec![0xA5u8; 256];
    let boards: Vec<Board> = rig.machines[0].boards().collect();
    for (i, b) in boards.iter().enumerate() {
        let ip = rig.board_ip(0, *b);
        for k in 0..16u32 {
            rig.call(
                ip,
                to_chip(255, 255, 0),
                i as u16,
                Request::write(0x6000_0000 + 256 * k, &data),
            );
        }
    }
    rig.advance(Duration::from_secs(1));
    stage("booted, 4 KiB written per board", &rig);
}
