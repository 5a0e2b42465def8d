//! BC&MP commands against the request bytes rig and spinnman send (protocol_captures.md §4, §7),
//! on a 2 × 2-triad machine whose 12 boards share frame 0 (BMP at 127.1.0.0).

mod common;

use common::*;
use spinnbed_core::geometry::{Board, FrameId, Link};
use spinnbed_core::proto::scp::{Reply, ReplyKind, ReturnCode};
use spinnbed_core::proto::sdp::Address;
use spinnbed_core::time::Duration;
use spinnbed_emulator::BoardState;
use std::net::Ipv4Addr;

const BMP: Ipv4Addr = Ipv4Addr::new(127, 1, 0, 0);

fn rig() -> Rig {
    Rig::new(vec![machine("m", 2, 2)])
}

fn rc_of(reply: &[u8]) -> ReturnCode {
    ReturnCode::from(u16::from_le_bytes([reply[10], reply[11]]))
}

/// Board `n` of frame 0 in the standard layout of a 2-wide machine.
fn board_no(n: u16) -> Board {
    let i = n;
    let z = (i % 3) as u8;
    let t = i / 3;
    Board::new(t % 2, t / 2, z)
}

#[test]
fn sver_reports_bc_and_mp() {
    let mut rig = rig();
    let req = hex("000087ff00ff0000000000000000000000000000000000000000");
    let reply = rig.request_one(scp(BMP), req.clone());
    let msg = parse_reply(&req, &reply.payload);
    let Reply::Version(v) = msg.reply else { panic!() };
    assert_eq!(
        (v.name(), v.hardware(), v.software_version()),
        ("BC&MP", Some("Spin5-BMP"), Some((2, 1, 2)))
    );
    assert!(v.is_bmp());
    assert_eq!(v.bmp().board, 0);
    assert_eq!((v.buffer_size, v.version), (256, 0xFFFF));
    // Only the SDP destination byte differs from the responder's reply: BC&MP answers to port 7,
    // cpu 0xE0 | board.
    let captured =
        hex("00000708ff000000000080000000000000000001ffff00f153654243264d502f5370696e352d424d5000322e312e3200");
    let mut ours = reply.payload.clone();
    assert_eq!(ours[4], 0xE0);
    ours[4] = 0xFF;
    assert_eq!(ours, captured);
    // spinnman BMPGetVersion(board 1): arg1 names board 1.
    let req = hex("000087ff01ff0000000000003412000000000000000000000000");
    let reply = rig.request_one(scp(BMP), req.clone());
    let msg = parse_reply(&req, &reply.payload);
    let Reply::Version(v) = msg.reply else { panic!() };
    assert_eq!((v.bmp().board, v.bmp().can_id, v.bmp().frame), (1, 1, 0));
    assert_eq!(msg.sdp.src, Address::new(0, 0, 0, 1));
    assert_eq!(msg.sdp.dest, Address::new(0, 0, 7, 0xE1 & 31));
}

#[test]
fn power_on_reply_waits_for_the_sequence() {
    let mut rig = rig();
    // rig set_power(True, [0, 1, 2]).
    let req = hex("000087ff00ff0000000039000100010000000700000000000000");
    assert!(rig.send(scp(BMP), req.clone()).is_empty());
    for n in 0..3 {
        assert!(rig.emu.power("m", board_no(n)));
        assert_eq!(rig.emu.board_state("m", board_no(n)), BoardState::Off, "FPGAs loading");
    }
    assert!(!rig.emu.power("m", board_no(3)));
    assert!(rig.advance(Duration::from_millis(4_999)).is_empty());
    let out = rig.advance(Duration::from_millis(1));
    assert_eq!(out.len(), 1);
    let msg = parse_reply(&req, &out[0].payload);
    assert_eq!((msg.reply, msg.seq), (Reply::Empty, 1));
    assert_eq!(to_hex(&out[0].payload[10..]), "80000100");
    for n in 0..3 {
        assert_eq!(rig.emu.board_state("m", board_no(n)), BoardState::Unbooted);
    }
    // spinnman SetPower(ON, [0,1,2]) again: the sequence restarts.
    let req = hex("000087ff00ff0000000039003412010000000700000000000000");
    assert!(rig.send(scp(BMP), req).is_empty());
    assert_eq!(rig.emu.board_state("m", board_no(0)), BoardState::Off);
    assert_eq!(rig.advance(Duration::from_secs(5)).len(), 1);
}

#[test]
fn staggered_power_off() {
    let mut rig = rig();
    rig.power_all(0);
    // spinnman SetPower(OFF, [5], delay 0.5 s): the mask does not hold the BMP's own board 0, so
    // BC&MP answers at once and board 5 switches off after 5 × 500 ms in the background.
    let req = hex("000087ff00ff00000000390034120000f4012000000000000000");
    let sent = rig.now;
    let out = rig.request_one(scp(BMP), req);
    assert_eq!(
        rig.now - sent,
        spinnbed_emulator::ScampTiming::default().bmp_service,
        "answered as soon as the BMP has served it"
    );
    assert_eq!(to_hex(&out.payload[10..]), "80003412", "RC_OK, sequence 0x1234");
    assert!(rig.emu.power("m", board_no(5)));
    assert!(rig.advance(Duration::from_millis(2_499)).is_empty());
    rig.advance(Duration::from_millis(1));
    assert!(!rig.emu.power("m", board_no(5)));
    assert!(rig.emu.power("m", board_no(4)));
    assert!(rig.advance(Duration::from_secs(5)).is_empty(), "no second reply");
}

#[test]
fn power_replies_wait_for_the_bmps_own_board() {
    let mut rig = rig();
    // spinnman SetPower(ON, [0, 1, 2], delay 0): board 0 is in the mask, so the reply comes when
    // its FPGAs are loaded (power_on, 5 s here), not before.
    let req = hex("000087ff00ff0000000039003412010000000700000000000000");
    assert!(rig.send(scp(BMP), req).is_empty());
    assert!(rig.advance(Duration::from_millis(4_999)).is_empty());
    assert_eq!(rig.advance(Duration::from_millis(1)).len(), 1);
}

#[test]
fn fpga_flag_and_stop_registers() {
    let mut rig = rig();
    // spinnman ReadFPGARegister(fpga 1, FLAG, board 2): 0 while off.
    let flag = hex("000087ff02ff0000000011003412040004000400000001000000");
    let reply = rig.request_one(scp(BMP), flag.clone());
    assert_eq!(parse_reply(&flag, &reply.payload).reply, Reply::Data(&[0, 0, 0, 0]));
    rig.power_all(0);
    let reply = rig.request_one(scp(BMP), flag.clone());
    assert_eq!(parse_reply(&flag, &reply.payload).reply, Reply::Data(&[1, 0, 0, 0]));
    // rig read_fpga_reg(0, FLAG, board=2): FPGA 0 reports 0.
    let flag0 = hex("000087ff02ff0000000011000200040004000400000000000000");
    let reply = rig.request_one(scp(BMP), flag0.clone());
    assert_eq!(parse_reply(&flag0, &reply.payload).reply, Reply::Data(&[0, 0, 0, 0]));
    // FPGA 2 of every board reports 2.
    for n in 0..12u8 {
        let req = encode(
            to_chip(0, 0, n),
            u16::from(n),
            spinnbed_core::proto::scp::Request::fpga_read(2, 0x0004_0004),
        );
        let reply = rig.request_one(scp(BMP), req.clone());
        assert_eq!(parse_reply(&req, &reply.payload).reply, Reply::Data(&[2, 0, 0, 0]));
    }
    // rig write_fpga_reg(fpga 1, 0x5C, 1, board 1) then read back (§4).
    let write = hex("000087ff01ff00000000120000005c000000040000000100000001000000");
    let reply = rig.request_one(scp(BMP), write.clone());
    assert_eq!(parse_reply(&write, &reply.payload).reply, Reply::Empty);
    let read = hex("000087ff01ff00000000110001005c0000000400000001000000");
    let reply = rig.request_one(scp(BMP), read.clone());
    assert_eq!(parse_reply(&read, &reply.payload).reply, Reply::Data(&[1, 0, 0, 0]));
    assert!(rig.emu.link_stopped("m", board_no(1), Link::SouthWest));
    // spinnman WriteFPGARegister(fpga 2, 0x1005C, 1, board 3): north-east of board 3 stopped.
    let write = hex("000087ff03ff00000000120034125c000100040000000200000001000000");
    let reply = rig.request_one(scp(BMP), write);
    assert_eq!(rc_of(&reply.payload), ReturnCode::Ok);
    assert!(rig.emu.link_stopped("m", board_no(3), Link::NorthEast));
    // Counters of a running link grow; VERS is non-zero.
    rig.advance(Duration::from_secs(1));
    let counters = encode(
        to_chip(0, 0, 4),
        9,
        spinnbed_core::proto::scp::Request::LinkRead {
            addr: 0,
            len: 16,
            link: 0,
        },
    );
    let reply = rig.request_one(scp(BMP), counters.clone());
    let Reply::Data(d) = parse_reply(&counters, &reply.payload).reply else {
        panic!()
    };
    assert!(d.iter().any(|&b| b != 0));
    // FPGA 3 does not exist; unaligned addresses are refused.
    let bad = encode(
        to_chip(0, 0, 4),
        10,
        spinnbed_core::proto::scp::Request::fpga_read(3, 0x4_0004),
    );
    assert_eq!(rc_of(&rig.request_one(scp(BMP), bad).payload), ReturnCode::Arg);
    let bad = encode(
        to_chip(0, 0, 4),
        11,
        spinnbed_core::proto::scp::Request::fpga_read(0, 0x4_0002),
    );
    assert_eq!(rc_of(&rig.request_one(scp(BMP), bad).payload), ReturnCode::Arg);
    // Power-off forgets the STOP bits.
    let off = encode(
        to_chip(0, 0, 0),
        12,
        spinnbed_core::proto::scp::Request::Power {
            on: false,
            delay_ms: 0,
            boards: 0b10,
        },
    );
    rig.send(scp(BMP), off);
    assert!(!rig.emu.link_stopped("m", board_no(1), Link::SouthWest));
}

#[test]
fn bmp_info_adc_and_friends() {
    let mut rig = rig();
    rig.power_all(0);
    // rig read_adc(board=2): exactly 48 bytes.
    let adc = hex("000087ff02ff0000000030000100030000000000000000000000");
    let reply = rig.request_one(scp(BMP), adc.clone());
    assert_eq!(reply.payload.len(), 14 + 48);
    let Reply::BmpBoardStatus(s) = parse_reply(&adc, &reply.payload).reply else {
        panic!()
    };
    for (v, want) in [
        (s.voltage_1_2a(), 1.2),
        (s.voltage_1_2b(), 1.2),
        (s.voltage_1_2c(), 1.2),
        (s.voltage_1_8(), 1.8),
        (s.voltage_3_3(), 3.3),
        (s.voltage_supply(), 12.0),
    ] {
        assert!((v - want).abs() < 0.01, "{v} vs {want}");
    }
    assert!((30.0..40.0).contains(&s.temp_top()));
    assert!((30.0..40.0).contains(&s.temp_bottom()));
    assert_eq!(s.temp_external(0), None);
    assert_eq!(s.fan_speed(0), None);
    assert_eq!((s.warning, s.shutdown), (0, 0));
    use spinnbed_core::proto::scp::{BmpInfoKind, Request};
    for (kind, rk) in [
        (BmpInfoKind::Serial, ReplyKind::BmpSerial),
        (BmpInfoKind::CanStatus, ReplyKind::BmpCanStatus),
        (BmpInfoKind::IpAddresses, ReplyKind::BmpIpAddresses),
        (BmpInfoKind::Eeprom, ReplyKind::Data),
        (BmpInfoKind::UninitVectors, ReplyKind::Data),
    ] {
        let req = encode(to_chip(0, 0, 2), 3, Request::BmpInfo(kind));
        let reply = rig.request_one(scp(BMP), req);
        let msg = parse_as(&reply.payload, rk);
        match msg.reply {
            Reply::BmpCanStatus(c) => assert_eq!(&c[..13], &[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]),
            Reply::BmpIpAddresses(ip) => {
                assert_eq!(ip.bmp.ip, BMP);
                assert_eq!(ip.spinnaker.ip, Ipv4Addr::new(127, 1, 0, 17));
                assert_eq!(ip.spinnaker.udp_port, 17893);
            }
            Reply::BmpSerial(_) | Reply::Data(_) => {}
            other => panic!("{other:?}"),
        }
    }
    let req = encode(to_chip(0, 0, 2), 4, Request::BmpInfo(BmpInfoKind::Other(9)));
    assert_eq!(rc_of(&rig.request_one(scp(BMP), req).payload), ReturnCode::Arg);
}

#[test]
fn led_reset_errors_and_silence() {
    let mut rig = rig();
    // rig set_led(7, True, board=[0,1]).
    let led = rig.request_one(scp(BMP), hex("000087ff00ff000000001900000000c000000300000000000000"));
    assert_eq!(to_hex(&led.payload[10..]), "80000000");
    // Unknown command: RC_CMD; short: RC_LEN; bad power state: RC_ARG; port 1: RC_PORT.
    let mut raw = hex("000087ff00ff0000000000000000000000000000000000000000");
    raw[10] = 0x3D; // CMD_BMP_I2C
    assert_eq!(rc_of(&rig.request_one(scp(BMP), raw).payload), ReturnCode::Cmd);
    let short = rig.request_one(scp(BMP), hex("000087ff00ff00000000390007000100"));
    assert_eq!(to_hex(&short.payload[10..]), "81000700");
    let bad = rig.request_one(scp(BMP), hex("000087ff00ff0000000039000800020000000700000000000000"));
    assert_eq!(rc_of(&bad.payload), ReturnCode::Arg);
    let port = rig.request_one(scp(BMP), hex("000087ff20ff0000000000000900000000000000000000000000"));
    assert_eq!(rc_of(&port.payload), ReturnCode::Port);
    // Board 20 is not in this frame: no answer.
    assert!(
        rig.send(scp(BMP), hex("000087ff14ff0000000000000a00000000000000000000000000"))
            .is_empty()
    );
    assert_eq!(rig.emu.stats().dropped_no_board, 1);
    // A silent BMP answers nothing, not even later.
    rig.emu.set_bmp_silent("m", FrameId { cabinet: 0, frame: 0 }, true);
    assert!(
        rig.send(scp(BMP), hex("000087ff00ff0000000000000b00000000000000000000000000"))
            .is_empty()
    );
    assert!(
        rig.send(scp(BMP), hex("000087ff00ff0000000039000c00010000000100000000000000"))
            .is_empty()
    );
    assert!(rig.advance(Duration::from_secs(10)).is_empty());
    assert_eq!(
        rig.emu.board_state("m", board_no(0)),
        BoardState::Off,
        "silent: nothing received"
    );
    rig.emu.set_bmp_silent("m", FrameId { cabinet: 0, frame: 0 }, false);
    rig.request_one(scp(BMP), hex("000087ff00ff0000000000000d00000000000000000000000000"));
    // Reset puts a booted board back to its boot ROM.
    rig.power_all(0);
    let ip = rig.board_ip(0, board_no(0));
    rig.boot_and_wait(ip);
    assert_eq!(rig.emu.board_state("m", board_no(0)), BoardState::Booted);
    let reset = encode(
        to_chip(0, 0, 0),
        14,
        spinnbed_core::proto::scp::Request::Reset {
            delay_ms: 0,
            code: 2,
            boards: 1,
        },
    );
    assert_eq!(rc_of(&rig.request_one(scp(BMP), reset).payload), ReturnCode::Ok);
    assert_eq!(rig.emu.board_state("m", board_no(0)), BoardState::Unbooted);
}

#[test]
fn machines_keep_their_own_power_times() {
    // Machine "slow" (BMP 127.2.0.0) takes 9 s to power on; "m" keeps the default 5 s.
    use spinnbed_core::geometry::{Addressing, IpScheme, MachineSpec};
    let mut slow = MachineSpec::new("slow", 1, 1);
    slow.addressing = Addressing::Scheme(IpScheme::standard(Ipv4Addr::new(127, 2, 0, 0)));
    let mut config = spinnbed_emulator::Config::default();
    let t = spinnbed_core::timing::MachineTiming {
        power_on: Duration::from_secs(9),
        ..config.timing_of("slow")
    };
    config.machine_timing.insert("slow".into(), t);
    let mut rig = Rig::with_config(
        vec![machine("m", 2, 2), spinnbed_core::geometry::Machine::new(slow).unwrap()],
        config,
    );
    let req = hex("000087ff00ff0000000039000100010000000700000000000000");
    let slow_bmp = std::net::SocketAddrV4::new(Ipv4Addr::new(127, 2, 0, 0), 17893);
    assert!(rig.send(scp(BMP), req.clone()).is_empty());
    assert!(rig.send(slow_bmp, req.clone()).is_empty());
    let out = rig.advance(Duration::from_secs(5));
    assert_eq!(out.iter().map(|d| *d.src.ip()).collect::<Vec<_>>(), vec![BMP]);
    assert!(rig.advance(Duration::from_millis(3_999)).is_empty());
    let out = rig.advance(Duration::from_millis(1));
    assert_eq!(
        out.iter().map(|d| *d.src.ip()).collect::<Vec<_>>(),
        vec![Ipv4Addr::new(127, 2, 0, 0)]
    );
}
