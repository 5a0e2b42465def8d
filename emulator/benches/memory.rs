//! Memory of an emulated SpiNNaker1M (20 × 20 triads, 1,200 boards) inside a simulation, as a
//! counting global allocator measures it (live heap bytes), at each stage of a machine's day:
//! idle, every board powered, booted, and 4 KiB written to every board's Ethernet chip. Also
//! prints the emulator's own estimate (`Emulator::memory_estimate`) beside each figure.
//!
//! `cargo bench -p spinnbed-emulator --bench memory`

#[path = "../tests/common/mod.rs"]
#[allow(dead_code)]
mod common;

use common::*;
use spinnbed_core::geometry::Board;
use spinnbed_core::proto::scp::Request;
use spinnbed_core::time::Duration;
use spinnbed_emulator::{Config, Emulator};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn kib(bytes: isize) -> f64 {
    bytes as f64 / 1024.0
}

fn main() {
    let m = machine("SpiNNaker1M", 20, 20);
    println!(
        "{:<44} {:>12} {:>14}",
        "SpiNNaker1M (1,200 boards)", "measured KiB", "estimate KiB"
    );
    let before = LIVE.load(Ordering::Relaxed);
    let emu = Emulator::new(std::slice::from_ref(&m), Config::default());
    let idle = LIVE.load(Ordering::Relaxed) - before + core::mem::size_of::<Emulator>() as isize;
    println!(
        "{:<44} {:>12.0} {:>14.0}",
        "idle",
        kib(idle),
        kib(emu.memory_estimate() as isize)
    );
    drop(emu);

    let base = LIVE.load(Ordering::Relaxed);
    let mut rig = Rig::new(vec![m]);
    let stage = |name: &str, rig: &Rig| {
        let live = LIVE.load(Ordering::Relaxed) - base;
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
