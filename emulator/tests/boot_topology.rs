//! Booting: the boot ROM, SC&MP's start-up, flood fill across boards, STOP'd and failed links,
//! dead boards.

mod common;

use common::*;
use spinnbed_core::geometry::{Board, Chip, Link};
use spinnbed_core::proto::boot::{self, SystemVariables};
use spinnbed_core::proto::scp::{Reply, ReplyKind, Request, ReturnCode};
use spinnbed_core::time::Duration;
use spinnbed_emulator::{BOOT_PORT, BoardState, Config};
use std::net::{Ipv4Addr, SocketAddrV4};

const BOARD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const SVER: &str = "000087ff00ffffff000000000000000000000000000000000000";

/// The P2P address a board's CMD_VER reports, if it answers within a millisecond (SC&MP's
/// service time).
fn sver_p2p(rig: &mut Rig, ip: Ipv4Addr) -> Option<u16> {
    let mut out = rig.send(scp(ip), hex(SVER));
    out.extend(rig.advance(Duration::from_millis(1)));
    let d = out.first()?;
    let Reply::Version(v) = parse_as(&d.payload, ReplyKind::Version).reply else {
        panic!()
    };
    Some(v.core().p2p)
}

#[test]
fn full_boot_sequence_then_sver() {
    let mut rig = Rig::new(vec![single_board()]);
    assert_eq!(rig.emu.board_state("single", Board::new(0, 0, 0)), BoardState::Off);
    assert_eq!(sver_p2p(&mut rig, BOARD), None, "off: nothing answers");
    rig.power_all(0);
    assert_eq!(rig.emu.board_state("single", Board::new(0, 0, 0)), BoardState::Unbooted);
    // The boot ROM has no SCP: clients probe with sver, time out and boot.
    assert_eq!(sver_p2p(&mut rig, BOARD), None);
    assert_eq!(rig.emu.stats().dropped_unbooted, 1);
    // spinnman's image size: 30 blocks.
    let packets: Vec<Vec<u8>> = boot::boot_packets(&image(29_868), &SystemVariables::spinnman(1_700_000_000))
        .unwrap()
        .collect();
    assert_eq!(packets.len(), 32);
    assert_eq!(to_hex(&packets[0]), "00010000000100000000000000000000001d");
    for p in &packets {
        assert!(rig.send(SocketAddrV4::new(BOARD, BOOT_PORT), p.clone()).is_empty());
        rig.advance(Duration::from_millis(100));
    }
    assert_eq!(rig.emu.stats().boots, 1);
    // Booting for 3 s since CONTROL arrived (0.1 s ago): sver answers 0xFFFF.
    assert_eq!(rig.emu.board_state("single", Board::new(0, 0, 0)), BoardState::Booting);
    assert_eq!(sver_p2p(&mut rig, BOARD), Some(0xFFFF));
    let booting = rig.request_one(scp(BOARD), hex("000087ff00ffffffffff00000100000000000000000000000000"));
    assert_eq!(
        to_hex(&booting.payload),
        "00000708ff0000000000800001000001ffff0001ffff00f153655343264d502f5370694e4e616b657200342e302e3000",
        "the booting sver of the captures"
    );
    // Other commands are not answered while booting.
    assert!(
        rig.send(scp(BOARD), hex("000087ff00ff0000ffff02003412027f00f50200000001000000"))
            .is_empty()
    );
    rig.advance(Duration::from_millis(2_800));
    assert_eq!(sver_p2p(&mut rig, BOARD), Some(0xFFFF));
    rig.advance(Duration::from_millis(100));
    assert_eq!(rig.emu.board_state("single", Board::new(0, 0, 0)), BoardState::Booted);
    assert_eq!(sver_p2p(&mut rig, BOARD), Some(0x0000));
    // The booted chips carry the sv the host patched in (hw_ver 5, root chip 1, peek 200).
    let sv = rig.call(BOARD, to_chip(0, 0, 0), 9, Request::read(0xF500_7F00, 128));
    let Reply::Data(d) = parse_as(&sv.payload, ReplyKind::Data).reply else {
        panic!()
    };
    assert_eq!(d[0x0A], 5);
    assert_eq!(d[0x2A], 200);
    assert_eq!(d[0x40], 1);
    assert_eq!(&d[2..4], &[8, 8]);
    // Boot packets to a booted board are ignored.
    rig.send(SocketAddrV4::new(BOARD, BOOT_PORT), packets[0].clone());
    assert_eq!(rig.emu.stats().boot_ignored, 1);
}

#[test]
fn incomplete_or_bad_boot_does_not_boot() {
    let mut rig = Rig::new(vec![single_board()]);
    rig.power_all(0);
    let packets: Vec<Vec<u8>> = boot::boot_packets(&image(4096), &SystemVariables::rig(1))
        .unwrap()
        .collect();
    // Block 2 lost.
    for (i, p) in packets.iter().enumerate() {
        if i != 3 {
            rig.send(SocketAddrV4::new(BOARD, BOOT_PORT), p.clone());
        }
    }
    assert_eq!(rig.emu.stats().boots_incomplete, 1);
    assert_eq!(rig.emu.board_state("single", Board::new(0, 0, 0)), BoardState::Unbooted);
    rig.send(SocketAddrV4::new(BOARD, BOOT_PORT), vec![0, 1, 2]);
    assert_eq!(rig.emu.stats().malformed, 1);
    // A retry boots.
    rig.boot_and_wait(BOARD);
    assert_eq!(rig.emu.board_state("single", Board::new(0, 0, 0)), BoardState::Booted);
}

/// Boards 0..=2 of triad (tx, ty).
fn triad(tx: u16, ty: u16) -> [Board; 3] {
    [Board::new(tx, ty, 0), Board::new(tx, ty, 1), Board::new(tx, ty, 2)]
}

/// Writes STOP for every link of `boards` leading outside `boards` (as the service does).
fn stop_periphery(rig: &mut Rig, boards: &[Board]) {
    use spinnbed_core::geometry::board_down_link;
    use spinnbed_core::proto::scp::fpga;
    let m = rig.machines[0].clone();
    let bmp = m.bmp_ip(m.location(boards[0]).unwrap().frame_id()).unwrap();
    for &b in boards {
        for link in Link::ALL {
            let (n, _) = board_down_link(b, link, m.width(), m.height());
            if boards.contains(&n) {
                continue;
            }
            let (f, addr) = fpga::stop_register(link);
            let board_no = m.location(b).unwrap().board as u8;
            let req = encode(
                to_chip(0, 0, board_no),
                1,
                Request::fpga_write(f, addr, &fpga::STOP_DISABLE),
            );
            let reply = rig.request_one(scp(bmp), req);
            assert_eq!(reply.payload[10], 0x80);
        }
    }
}

#[test]
fn a_jobs_boards_boot_together_and_stop_bits_confine_the_flood() {
    let mut rig = Rig::new(vec![machine("m", 2, 2)]);
    rig.power_all(0);
    let job = triad(1, 1);
    stop_periphery(&mut rig, &job);
    let root_ip = rig.board_ip(0, job[0]);
    rig.boot_and_wait(root_ip);
    for b in rig.machines[0].boards().collect::<Vec<_>>() {
        let want = if job.contains(&b) {
            BoardState::Booted
        } else {
            BoardState::Unbooted
        };
        assert_eq!(rig.emu.board_state("m", b), want, "{b}");
    }
    // One triad without wrap-around: 16 × 16 chips; boards at (0,0), (8,4), (4,8).
    assert_eq!(rig.emu.booted_dimensions("m", job[0]), Some((16, 16)));
    let chips: Vec<_> = job.iter().map(|&b| rig.emu.board_chip("m", b).unwrap()).collect();
    assert_eq!(chips, [Chip::new(0, 0), Chip::new(8, 4), Chip::new(4, 8)]);
    for (b, c) in job.iter().zip(&chips) {
        let ip = rig.board_ip(0, *b);
        assert_eq!(sver_p2p(&mut rig, ip), Some(((c.x as u16) << 8) | c.y as u16));
    }
    // sv p2p_dims through the root.
    let dims = rig.request_one(
        scp(root_ip),
        hex("000087ff00ff0000000002000e00027f00f50200000001000000"),
    );
    assert_eq!(to_hex(&dims.payload[14..]), "1010");
    // Every chip of the three boards answers through the root (P2P), chips outside do not.
    rig.send(scp(root_ip), encode(to_chip(11, 11, 0), 5, Request::Version));
    let out = rig.advance(Duration::from_millis(1));
    let Reply::Version(v) = parse_as(&out[0].payload, ReplyKind::Version).reply else {
        panic!()
    };
    assert_eq!(v.core().chip(), Some((11, 11)));
    let r = rig.call(root_ip, to_chip(15, 0, 0), 6, Request::Version);
    assert_eq!(ReturnCode::from(u16::from(r.payload[10])), ReturnCode::Route);
    // The other boards can still boot on their own, one by one.
    let other = Board::new(0, 0, 0);
    let other_ip = rig.board_ip(0, other);
    stop_periphery(&mut rig, &[other]);
    rig.boot_and_wait(other_ip);
    assert_eq!(rig.emu.board_state("m", other), BoardState::Booted);
    assert_eq!(rig.emu.booted_dimensions("m", other), Some((8, 8)));
    assert_eq!(rig.emu.board_state("m", Board::new(0, 0, 1)), BoardState::Unbooted);
}

#[test]
fn without_stops_the_whole_machine_boots_as_a_torus() {
    let mut rig = Rig::new(vec![machine("m", 2, 2)]);
    rig.power_all(0);
    let root_ip = rig.board_ip(0, Board::new(0, 0, 0));
    rig.boot_and_wait(root_ip);
    for b in rig.machines[0].boards().collect::<Vec<_>>() {
        assert_eq!(rig.emu.board_state("m", b), BoardState::Booted, "{b}");
    }
    assert_eq!(rig.emu.booted_dimensions("m", Board::new(1, 1, 2)), Some((24, 24)));
    assert_eq!(rig.emu.board_chip("m", Board::new(1, 1, 2)), Some(Chip::new(16, 20)));
    // Requests through a non-root board's Ethernet reach any chip; (255,255) is that board.
    let ip = rig.board_ip(0, Board::new(1, 0, 1));
    assert_eq!(sver_p2p(&mut rig, ip), Some((20 << 8) | 4));
    rig.send(scp(ip), encode(to_chip(2, 3, 0), 1, Request::Version));
    let out = rig.advance(Duration::from_millis(1));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].src, scp(ip));
    // spinnman reads ip_addr of each Ethernet chip's sv.
    rig.send(
        scp(root_ip),
        encode(to_chip(20, 4, 0), 2, Request::read(0xF500_7FF0, 4)),
    );
    let out = rig.advance(Duration::from_millis(1));
    let Reply::Data(d) = parse_as(&out[0].payload, ReplyKind::Data).reply else {
        panic!()
    };
    assert_eq!(Ipv4Addr::new(d[0], d[1], d[2], d[3]), ip);
}

#[test]
fn failed_links_confine_the_flood_and_cut_routes() {
    let mut rig = Rig::new(vec![machine("m", 1, 1)]);
    rig.power_all(0);
    // Isolate board (0,0,2) by failing every one of its links.
    for link in Link::ALL {
        rig.emu.set_link_failed("m", Board::new(0, 0, 2), link, true);
    }
    let root_ip = rig.board_ip(0, Board::new(0, 0, 0));
    rig.boot_and_wait(root_ip);
    assert_eq!(rig.emu.board_state("m", Board::new(0, 0, 1)), BoardState::Booted);
    assert_eq!(rig.emu.board_state("m", Board::new(0, 0, 2)), BoardState::Unbooted);
    // Now cut board 1 off after boot: its chips are unreachable from the root.
    let c1 = rig.emu.board_chip("m", Board::new(0, 0, 1)).unwrap();
    for link in Link::ALL {
        rig.emu.set_link_failed("m", Board::new(0, 0, 1), link, true);
    }
    let r = rig.call(root_ip, to_chip(c1.x as u8, c1.y as u8, 0), 1, Request::Version);
    assert_eq!(r.payload[10], 0x87, "RC_ROUTE");
    // …but its own Ethernet still answers.
    let ip1 = rig.board_ip(0, Board::new(0, 0, 1));
    assert_eq!(sver_p2p(&mut rig, ip1), Some(((c1.x as u16) << 8) | c1.y as u16));
}

#[test]
fn a_dead_board_never_answers() {
    let mut rig = Rig::new(vec![machine("m", 1, 1)]);
    let dead = Board::new(0, 0, 1);
    rig.emu.set_board_dead("m", dead, true);
    rig.power_all(0);
    let ip = rig.board_ip(0, dead);
    assert!(rig.emu.power("m", dead), "its BMP still switches it");
    assert_eq!(sver_p2p(&mut rig, ip), None);
    rig.boot(ip, 2048);
    rig.advance(Duration::from_secs(5));
    assert_eq!(sver_p2p(&mut rig, ip), None);
    assert_eq!(rig.emu.stats().boots, 0);
    // Booting a neighbour does not reach it.
    let root_ip = rig.board_ip(0, Board::new(0, 0, 0));
    rig.boot_and_wait(root_ip);
    assert_eq!(rig.emu.board_state("m", Board::new(0, 0, 2)), BoardState::Booted);
    assert_eq!(sver_p2p(&mut rig, ip), None);
    assert!(rig.emu.stats().dropped_dead >= 3);
    // Death of a booted board loses its state; revival leaves it unbooted.
    rig.emu.set_board_dead("m", Board::new(0, 0, 2), true);
    rig.emu.set_board_dead("m", Board::new(0, 0, 2), false);
    assert_eq!(rig.emu.board_state("m", Board::new(0, 0, 2)), BoardState::Unbooted);
}

#[test]
fn dead_in_the_description_has_no_endpoints() {
    let rig = Rig::new(vec![single_board()]);
    let eps = rig.emu.endpoints();
    assert_eq!(
        eps,
        vec![
            SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 17893),
            SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 54321),
            SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 3), 17893),
        ]
    );
    let mut rig = rig;
    rig.send(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 17893), vec![0; 26]);
    rig.send(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 3), 54321), vec![0; 26]);
    assert_eq!(rig.emu.stats().dropped_unknown_dst, 2);
}

#[test]
fn power_off_drops_runtime_state() {
    let mut rig = Rig::new(vec![single_board()]);
    rig.power_all(0);
    rig.boot_and_wait(BOARD);
    rig.call(BOARD, to_chip(0, 0, 0), 1, Request::write(0x6000_0000, &[1, 2, 3, 4]));
    assert_eq!(
        rig.emu
            .sdram("single", Board::new(0, 0, 0), Chip::new(0, 0), 0x6000_0000, 4),
        [1, 2, 3, 4]
    );
    // A delayed reply in flight is dropped when the board goes.
    rig.send(scp(BOARD), encode(to_chip(7, 7, 0), 2, Request::Version));
    let off = encode(
        to_chip(0, 0, 0),
        3,
        Request::Power {
            on: false,
            delay_ms: 0,
            boards: 1,
        },
    );
    rig.send(scp(Ipv4Addr::new(127, 0, 0, 3)), off);
    let out = rig.advance(Duration::from_secs(2));
    assert_eq!(out.len(), 1, "only the BMP's reply");
    assert_eq!(rig.emu.stats().dropped_stale, 1);
    assert_eq!(rig.emu.board_state("single", Board::new(0, 0, 0)), BoardState::Off);
    rig.power_all(0);
    rig.boot_and_wait(BOARD);
    assert_eq!(
        rig.emu
            .sdram("single", Board::new(0, 0, 0), Chip::new(0, 0), 0x6000_0000, 4),
        [0; 4]
    );
}

#[test]
fn configurable_timings() {
    let config = Config {
        timing: spinnbed_core::timing::MachineTiming {
            power_on: Duration::from_millis(100),
            boot: Duration::from_millis(50),
            ..Default::default()
        },
        ..Config::default()
    };
    let mut rig = Rig::with_config(vec![single_board()], config);
    let on = encode(
        to_chip(0, 0, 0),
        1,
        Request::Power {
            on: true,
            delay_ms: 0,
            boards: 1,
        },
    );
    rig.send(scp(Ipv4Addr::new(127, 0, 0, 3)), on);
    assert_eq!(rig.advance(Duration::from_millis(100)).len(), 1);
    rig.boot(BOARD, 1024);
    rig.advance(Duration::from_millis(50));
    assert_eq!(rig.emu.board_state("single", Board::new(0, 0, 0)), BoardState::Booted);
}

/// The router P2P table entries of chip (x, y), columns `0..w` × rows `0..h`, read as spinnman
/// does (one read per column at 0xE101_0000 + 128 · column).
fn p2p_table(rig: &mut Rig, ip: Ipv4Addr, chip: (u8, u8), w: u32, h: u32) -> Vec<Vec<u32>> {
    (0..w)
        .map(|x| {
            let bytes = h.div_ceil(8) * 4;
            let mut out = rig.send(
                scp(ip),
                encode(
                    to_chip(chip.0, chip.1, 0),
                    1,
                    Request::read(0xE101_0000 + 128 * x, bytes),
                ),
            );
            out.extend(rig.advance(Duration::from_millis(5)));
            assert_eq!(out.len(), 1, "one reply from {chip:?}");
            let r = &out[0];
            let Reply::Data(d) = parse_as(&r.payload, ReplyKind::Data).reply else {
                panic!("reading column {x} of {chip:?}: {}", to_hex(&r.payload))
            };
            (0..h)
                .map(|y| {
                    let word = u32::from_le_bytes(d[(y / 8 * 4) as usize..][..4].try_into().unwrap());
                    (word >> (3 * (y % 8))) & 7
                })
                .collect()
        })
        .collect()
}

#[test]
fn the_p2p_table_lists_exactly_the_booted_chips_and_routes_reach_them() {
    // One board: 48 chips of the 8 × 8 grid.
    let mut rig = Rig::new(vec![single_board()]);
    rig.power_all(0);
    rig.boot_and_wait(BOARD);
    let t = p2p_table(&mut rig, BOARD, (255, 255), 8, 16);
    let present: Vec<(u32, u32)> = (0..8)
        .flat_map(|x| (0..16).map(move |y| (x, y)))
        .filter(|&(x, y)| t[x as usize][y as usize] != 6)
        .collect();
    assert_eq!(present.len(), 48, "{present:?}");
    assert_eq!(t[0][0], 7, "the chip itself");
    // SpiNN-5's hexagon: row y holds x from max(0, y − 3) to min(7, y + 4).
    let hexagon: Vec<(u32, u32)> = (0..8u32)
        .flat_map(|x| (0..8u32).map(move |y| (x, y)))
        .filter(|&(x, y)| x + 3 >= y && x <= y + 4)
        .collect();
    assert_eq!(present, hexagon);

    // A whole 1 × 1-triad machine booted together (a 12 × 12 torus, 144 chips): following the
    // tables hop by hop from the root reaches every chip.
    let mut rig = Rig::new(vec![machine("m", 1, 1)]);
    rig.power_all(0);
    let root = rig.board_ip(0, Board::new(0, 0, 0));
    rig.boot_and_wait(root);
    let (w, h) = rig.emu.booted_dimensions("m", Board::new(0, 0, 0)).unwrap();
    assert_eq!((w, h), (12, 12));
    let t = p2p_table(&mut rig, root, (0, 0), 16, 16);
    let present: Vec<(u32, u32)> = (0..16)
        .flat_map(|x| (0..16).map(move |y| (x, y)))
        .filter(|&(x, y)| t[x as usize][y as usize] != 6)
        .collect();
    assert_eq!(present.len(), 144);
    for &target in present.iter().step_by(7) {
        let mut at = (0u32, 0u32);
        for _ in 0..32 {
            let e = p2p_table(&mut rig, root, (at.0 as u8, at.1 as u8), 16, 16)[target.0 as usize][target.1 as usize];
            if e == 7 {
                break;
            }
            let (dx, dy) = Link::from_u8(e as u8).unwrap().chip_vector();
            at = (
                (at.0 as i32 + dx).rem_euclid(w as i32) as u32,
                (at.1 as i32 + dy).rem_euclid(h as i32) as u32,
            );
        }
        assert_eq!(at, target, "following the P2P tables towards {target:?}");
    }
}

#[test]
fn every_chips_parent_link_leads_to_a_chip_nearer_the_root() {
    // A job's triad inside a bigger machine: 16 × 16 chips without wrap-around, where the chip
    // south-west of a board's corner (e.g. (3, 7) from (4, 8)) does not exist. spinn_machine
    // refuses a machine whose signal-tree parent of some chip is missing.
    let mut rig = Rig::new(vec![machine("m", 2, 2)]);
    rig.power_all(0);
    let job = triad(1, 0);
    stop_periphery(&mut rig, &job);
    let root_ip = rig.board_ip(0, job[0]);
    rig.boot_and_wait(root_ip);
    let (w, h) = rig.emu.booted_dimensions("m", job[0]).unwrap();
    assert_eq!((w, h), (16, 16));
    let t = p2p_table(&mut rig, root_ip, (0, 0), w, h);
    let present: Vec<(u32, u32)> = (0..w)
        .flat_map(|x| (0..h).map(move |y| (x, y)))
        .filter(|&(x, y)| t[x as usize][y as usize] != 6)
        .collect();
    assert_eq!(present.len(), 144);
    let distance = |(x, y): (u32, u32)| {
        let (x, y) = (x as i64, y as i64);
        x.max(y) // both non-negative: the hexagonal distance from (0, 0)
    };
    for (i, &(x, y)) in present.iter().enumerate() {
        let mut out = rig.send(
            scp(root_ip),
            encode(to_chip(x as u8, y as u8, 0), i as u16, Request::Info { arg1: 0x5F }),
        );
        out.extend(rig.advance(Duration::from_millis(5)));
        assert_eq!(out.len(), 1, "one reply from ({x}, {y})");
        let r = &out[0];
        let Reply::Info(info) = parse_as(&r.payload, ReplyKind::Info).reply else {
            panic!("CMD_INFO of ({x}, {y}): {}", to_hex(&r.payload))
        };
        if (x, y) == (0, 0) {
            continue;
        }
        let (dx, dy) = Link::from_u8(info.root_link as u8).unwrap().chip_vector();
        let parent = ((x as i32 + dx) as u32, (y as i32 + dy) as u32);
        assert!(
            present.contains(&parent),
            "({x}, {y})'s parent {parent:?} is not a chip"
        );
        assert!(
            distance(parent) < distance((x, y)),
            "({x}, {y})'s parent {parent:?} is no nearer the root"
        );
    }
}
