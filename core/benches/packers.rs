//! Packing policies on a 20 × 20-triad machine (1 200 boards, three dead): one iteration runs
//! a fixed pseudo-random request/release sequence until 50 000 allocations have succeeded.
//! Throughput is in allocations (criterion's "elem/s"), so the figures read as successful
//! allocations per second on one core, the releases and failed attempts of the sequence
//! included.
//!
//! - `cold`: a fresh packer per iteration, so the per-shape caches (the filter's verdicts,
//!   reachable counts) are filled during the run;
//! - `warm`: a copy of a packer that already ran another sequence and released everything,
//!   as in a long simulation.
//!
//! Set `PACKERS_STATS=all` (or a policy's name) to run the warm sequence once per policy and
//! print its successes and failed attempts (under `valgrind --tool=callgrind
//! --toggle-collect=packers::measured` this counts the instructions of the measured run).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use spinnbed_core::alloc::anywhere::AnywherePacker;
use spinnbed_core::alloc::spalloc::SpallocPacker;
use spinnbed_core::alloc::{AllocId, Packer, Request, Shape};
use spinnbed_core::geometry::Board;

const ALLOCATIONS: u64 = 50_000;

/// xorshift64*: a fixed stream, so every packer sees the same decisions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// 40 % single boards, 40 % "at least n boards" (n from 2 to 400, mostly small), 15 %
/// `w × h` triads up to 4 × 4; half of them with `max_dead_boards = 0`.
fn request(rng: &mut Rng) -> Request {
    let shape = match rng.below(100) {
        0..40 => Shape::AnyBoard,
        40..65 => Shape::Boards {
            n: 2 + rng.below(11) as u32,
            min_ratio: 0.333,
        },
        65..80 => Shape::Boards {
            n: 13 + rng.below(108) as u32,
            min_ratio: 0.333,
        },
        80..95 => Shape::Triads {
            w: 1 + rng.below(4) as u32,
            h: 1 + rng.below(4) as u32,
        },
        _ => Shape::Boards {
            n: 121 + rng.below(280) as u32,
            min_ratio: 0.333,
        },
    };
    Request {
        max_dead_boards: if rng.below(2) == 0 { Some(0) } else { None },
        ..Request::new(shape)
    }
}

/// Runs the workload: releases a random live allocation when more than 1 000 boards are
/// held, with probability 0.45, or after a failed attempt; otherwise requests. Returns the
/// packer, successes and failures.
fn workload(mut p: Box<dyn Packer>, seed: u64) -> (Box<dyn Packer>, u64, u64) {
    let mut rng = Rng(seed);
    let mut live: Vec<AllocId> = Vec::new();
    let (mut done, mut failed) = (0, 0);
    while done < ALLOCATIONS {
        let release = !live.is_empty() && (p.allocated_boards() > 1_000 || rng.below(100) < 45);
        if release {
            let i = rng.below(live.len() as u64) as usize;
            p.release(live.swap_remove(i));
            continue;
        }
        match p.alloc(&request(&mut rng)) {
            Some(a) => {
                live.push(a.id);
                done += 1;
            }
            None => {
                failed += 1;
                if !live.is_empty() {
                    let i = rng.below(live.len() as u64) as usize;
                    p.release(live.swap_remove(i));
                }
            }
        }
    }
    for id in live {
        p.release(id);
    }
    (p, done, failed)
}

/// The measured sequence (a separate function, for profilers).
#[inline(never)]
fn measured(p: Box<dyn Packer>) -> (u64, u64) {
    let (_, done, failed) = workload(p, SEED);
    (done, failed)
}

const SEED: u64 = 0x9E37_79B9_7F4A_7C15;
const WARM_UP_SEED: u64 = 0x0123_4567_89AB_CDEF;

/// A named way to build a packer.
type PackerMaker = (&'static str, Box<dyn Fn() -> Box<dyn Packer>>);

fn policies() -> Vec<PackerMaker> {
    let dead = || [Board::new(3, 7, 1), Board::new(12, 0, 0), Board::new(17, 15, 2)];
    vec![
        (
            "spalloc",
            Box::new(move || Box::new(SpallocPacker::new(20, 20, &dead(), &[]))),
        ),
        (
            "anywhere",
            Box::new(move || Box::new(AnywherePacker::new(20, 20, &dead(), &[], false))),
        ),
        (
            "anywhere_exact",
            Box::new(move || Box::new(AnywherePacker::new(20, 20, &dead(), &[], true))),
        ),
    ]
}

fn packers(c: &mut Criterion) {
    if let Ok(which) = std::env::var("PACKERS_STATS") {
        for (name, make) in policies() {
            if which == "all" || which == name {
                let (warm, _, _) = workload(make(), WARM_UP_SEED);
                let (done, failed) = measured(warm);
                eprintln!("{name}: {done} allocations, {failed} failed attempts");
            }
        }
    }
    let mut g = c.benchmark_group("packers_20x20");
    g.sample_size(10);
    g.throughput(Throughput::Elements(ALLOCATIONS));
    for (name, make) in policies() {
        g.bench_function(format!("{name}/cold"), |b| {
            b.iter(|| black_box(workload(make(), SEED).1))
        });
        g.bench_function(format!("{name}/warm"), |b| {
            let (warm, _, _) = workload(make(), WARM_UP_SEED);
            b.iter_batched(|| warm.clone_box(), |p| black_box(measured(p)), BatchSize::LargeInput)
        });
    }
    g.finish();
}

criterion_group!(benches, packers);
criterion_main!(benches);
