//! SC&MP commands against the request bytes real rig 2.4.1 and spinnman 1!7.4.1 send
//! (protocol_captures.md), on a booted single board at 127.0.0.2.

mod common;

use common::*;
use spinnbed_core::geometry::{Board, Chip};
use spinnbed_core::proto::scp::{IptagFlags, Reply, ReplyKind, ReplyMessage, ReturnCode, read_chunks, write_chunks};
use spinnbed_core::proto::sdp::{self, Address, Flags};
use spinnbed_core::time::Duration;
use std::net::{Ipv4Addr, SocketAddrV4};

const BOARD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// The SC&MP 4.0.0 sver reply as the responder of the captures sent it (§1).
const SVER_REPLY: &str =
    "00000708ff000000000080000000000100000001ffff00f153655343264d502f5370694e4e616b657200342e302e3000";

fn booted() -> Rig {
    let mut rig = Rig::new(vec![single_board()]);
    rig.power_all(0);
    rig.boot_and_wait(BOARD);
    rig
}

fn rc_of(reply: &[u8]) -> ReturnCode {
    ReturnCode::from(u16::from_le_bytes([reply[10], reply[11]]))
}

#[test]
fn sver_rig_and_spinnman_byte_exact() {
    let mut rig = booted();
    for req in [
        "000087ff00ffffff000000000000000000000000000000000000",
        "000087ff00ffffffffff00000000000000000000000000000000",
    ] {
        let reply = rig.request_one(scp(BOARD), hex(req));
        assert_eq!(to_hex(&reply.payload), SVER_REPLY);
        let msg = parse_reply(&hex(req), &reply.payload);
        let Reply::Version(v) = msg.reply else { panic!() };
        assert_eq!(
            (v.name(), v.hardware(), v.software_version()),
            ("SC&MP", Some("SpiNNaker"), Some((4, 0, 0)))
        );
        assert_eq!((v.buffer_size, v.version, v.build_date), (256, 0xFFFF, 1_700_000_000));
        assert_eq!(v.core().chip(), Some((0, 0)));
        assert_eq!((v.core().physical_cpu, v.core().virtual_cpu), (1, 0));
    }
}

#[test]
fn rig_write_read_300_bytes_halfword() {
    let mut rig = booted();
    // Two halfword WRITEs at 0x70000002 (256 + 44 bytes), then two READs (§2).
    let w1 = [
        hex("000087ff00ff0000000003000100020000700001000001000000"),
        pattern(256, 0),
    ]
    .concat();
    let w2 = [
        hex("000087ff00ff0000000003000200020100702c00000001000000"),
        pattern(44, 256),
    ]
    .concat();
    for (w, seq) in [(w1, "0100"), (w2, "0200")] {
        let reply = rig.request_one(scp(BOARD), w);
        assert_eq!(
            to_hex(&reply.payload),
            format!("00000708ff0000000000 8000{seq}").replace(' ', "")
        );
    }
    let r1 = rig.request_one(scp(BOARD), hex("000087ff00ff0000000002000300020000700001000001000000"));
    assert_eq!(r1.payload.len(), 270, "rc + seq + 256 data bytes");
    assert_eq!(&r1.payload[14..], &pattern(256, 0)[..]);
    let r2 = rig.request_one(scp(BOARD), hex("000087ff00ff0000000002000400020100702c00000001000000"));
    assert_eq!(&r2.payload[14..], &pattern(44, 256)[..]);
    assert_eq!(
        rig.emu
            .sdram("single", Board::new(0, 0, 0), Chip::new(0, 0), 0x6000_0002, 300),
        pattern(300, 0)
    );
}

#[test]
fn spinnman_write_read_600_bytes_byte_access() {
    let mut rig = booted();
    let writes = [
        ("000087ff00ff0000ffff03000000010000700001000000000000", 256),
        ("000087ff00ff0000ffff03000100010100700001000000000000", 256),
        ("000087ff00ff0000ffff03000200010200705800000000000000", 88),
    ];
    for (i, (head, n)) in writes.iter().enumerate() {
        let reply = rig.request_one(scp(BOARD), [hex(head), pattern(*n, 0)].concat());
        assert_eq!(to_hex(&reply.payload), format!("00000708ff000000000080000{i}00"));
    }
    let reads = [
        "000087ff00ff0000ffff02000300010000700001000000000000",
        "000087ff00ff0000ffff02000400010100700001000000000000",
        "000087ff00ff0000ffff02000500010200705800000000000000",
    ];
    let mut got = Vec::new();
    for r in reads {
        let reply = rig.request_one(scp(BOARD), hex(r));
        let msg = parse_reply(&hex(r), &reply.payload);
        let Reply::Data(d) = msg.reply else { panic!() };
        got.extend_from_slice(d);
    }
    let expected = [pattern(256, 0), pattern(256, 0), pattern(88, 0)].concat();
    assert_eq!(got, expected);
}

#[test]
fn write_100_kib_then_read_back_across_chunks() {
    let mut rig = booted();
    let data: Vec<u8> = (0..100 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let base = 0x6010_0001; // unaligned: byte access throughout
    for (seq, chunk) in write_chunks(base, &data).enumerate() {
        let reply = rig.call(BOARD, to_chip(0, 0, 0), seq as u16, chunk.request());
        assert_eq!(rc_of(&reply.payload), ReturnCode::Ok);
    }
    let mut back = Vec::new();
    for (seq, chunk) in read_chunks(base, data.len()).enumerate() {
        let reply = rig.call(BOARD, to_chip(0, 0, 0), seq as u16, chunk.request());
        let msg = parse_as(&reply.payload, ReplyKind::Data);
        let Reply::Data(d) = msg.reply else { panic!() };
        back.extend_from_slice(d);
    }
    assert_eq!(back.len(), data.len());
    assert!(back == data, "byte-exact");
    // Aligned word transfers see the same bytes.
    let reply = rig.call(
        BOARD,
        to_chip(0, 0, 0),
        1,
        spinnbed_core::proto::scp::Request::read(0x6010_0100, 256),
    );
    let Reply::Data(d) = parse_as(&reply.payload, ReplyKind::Data).reply else {
        panic!()
    };
    assert_eq!(d, &data[0xFF..0xFF + 256]);
    assert_eq!(
        rig.emu
            .sdram("single", Board::new(0, 0, 0), Chip::new(0, 0), base, data.len()),
        data
    );
}

#[test]
fn spinnman_boot_follow_up_tto_and_info() {
    let mut rig = booted();
    // §3: after boot spinnman sends IPTAG TTO 9, then CMD_INFO (arg1 0x5F).
    let tto = rig.request_one(scp(BOARD), hex("000087ff00ffffffffff1a000400000004000900000000000000"));
    assert_eq!(to_hex(&tto.payload), "00000708ff00000000008000040009200808");
    let req = hex("000087ff00ffffffffff1f0005005f0000000000000000000000");
    let info = rig.request_one(scp(BOARD), req.clone());
    assert_eq!(info.payload.len() - 10, 42, "42-byte SCP reply");
    let msg = parse_reply(&req, &info.payload);
    let Reply::Info(i) = msg.reply else { panic!() };
    assert_eq!((msg.sdp.src.x, msg.sdp.src.y), (0, 0));
    assert_eq!(i.working_cores, 18);
    assert!(i.ethernet_up);
    assert_eq!(i.ip, BOARD);
    assert_eq!(i.nearest_ethernet, 0);
    assert_eq!(i.core_states[0], 7, "monitor RUNNING");
    assert_eq!(i.core_states[1], 15, "application cores IDLE");
    assert_eq!(i.largest_sdram_block, 123_469_792);
    assert_eq!(i.largest_router_block, 1023);
    // (0,0) of a lone board has links north, north-east and east.
    assert_eq!(i.working_links, 0b000111);
}

#[test]
fn chip_info_reply_source_is_the_real_chip() {
    let mut rig = booted();
    let req = encode(
        to_chip(3, 5, 0),
        7,
        spinnbed_core::proto::scp::Request::Info { arg1: 0x7F },
    );
    let out = rig.send(scp(BOARD), req.clone());
    assert!(out.is_empty(), "forwarded over P2P: answered after the hop delay");
    let out = rig.advance(Duration::from_millis(1));
    assert_eq!(out.len(), 1);
    let msg = parse_reply(&req, &out[0].payload);
    assert_eq!((msg.sdp.src.x, msg.sdp.src.y), (3, 5));
    assert_eq!(
        (msg.sdp.dest.x, msg.sdp.dest.y),
        (0, 0),
        "back through the Ethernet chip"
    );
    let Reply::Info(i) = msg.reply else { panic!() };
    assert!(!i.ethernet_up);
    assert_eq!(i.ip, Ipv4Addr::UNSPECIFIED);
    assert_eq!(i.working_links, 0b111111, "an inner chip has all six links");
    assert_eq!(i.root_link, 4);
}

#[test]
fn rig_scamp_command_sequence() {
    let mut rig = booted();
    let host_ip = Ipv4Addr::LOCALHOST;
    // §5, in order.
    let info = rig.request_one(scp(BOARD), hex("000087ff00ff000000001f000000000000000000000000000000"));
    assert!(matches!(parse_as(&info.payload, ReplyKind::Info).reply, Reply::Info(_)));

    let set = rig.request_one(scp(BOARD), hex("000087ff00ff000000001a0001000100010050c300007f000001"));
    assert_eq!(to_hex(&set.payload), "00000708ff00000000008000010001000000");

    let get = rig.request_one(scp(BOARD), hex("000087ff00ff000000001a000200010002000100000000000000"));
    let Reply::IptagRecords(r) = parse_as(&get.payload, ReplyKind::IptagRecords).reply else {
        panic!()
    };
    let rec = r.get(0).unwrap();
    assert_eq!((rec.ip, rec.tx_port), (host_ip, 50000));
    assert!(rec.flags.contains(IptagFlags::VALID));
    assert!(!rec.flags.contains(IptagFlags::TRANSIENT));

    let clr = rig.request_one(scp(BOARD), hex("000087ff00ff000000001a000300010003000000000000000000"));
    assert_eq!(to_hex(&clr.payload), "00000708ff000000000080000300");

    let alloc = rig.request_one(scp(BOARD), hex("000087ff00ff000000001c000400004200000004000003000000"));
    let Reply::Alloc(ptr) = parse_as(&alloc.payload, ReplyKind::Alloc).reply else {
        panic!()
    };
    assert!((0x6024_0000..0x6780_0000).contains(&ptr), "{ptr:#x}");

    let fill = rig.request_one(scp(BOARD), hex("000087ff00ff000000000500050000000070efbeadde40000000"));
    assert_eq!(rc_of(&fill.payload), ReturnCode::Ok);
    assert_eq!(
        rig.emu
            .sdram("single", Board::new(0, 0, 0), Chip::new(0, 0), 0x7000_0000, 8),
        hex("efbeaddeefbeadde")
    );

    let led = rig.request_one(scp(BOARD), hex("000087ff00ff00000000190006000c0000000000000000000000"));
    assert_eq!(rc_of(&led.payload), ReturnCode::Ok);

    let rtr = rig.request_one(scp(BOARD), hex("000087ff00ff000000001c000700034200000100000000000000"));
    assert_eq!(parse_as(&rtr.payload, ReplyKind::Alloc).reply, Reply::Alloc(1));

    let sver = rig.request_one(scp(BOARD), hex("000087ff00ffffff000000000800000000000000000000000000"));
    assert_eq!(rc_of(&sver.payload), ReturnCode::Ok);

    let sys = rig.request_one(scp(BOARD), hex("000087ff00ff0000000002000900c87f00f50400000002000000"));
    assert_eq!(
        to_hex(&sys.payload),
        "00000708ff0000000000800009000000 8067".replace(' ', "")
    );

    // rig wrote the entry where sdram_sys pointed (the responder said 0: ITCM here), then loaded
    // it at the base the responder's ALLOC gave (0x60100000): out of the table, RC_ARG.
    let write = rig.request_one(
        scp(BOARD),
        hex("000087ff00ff0000000003000a000000000010000000020000000000000081000000000001000000ffff"),
    );
    assert_eq!(rc_of(&write.payload), ReturnCode::Ok);
    let load = rig.request_one(scp(BOARD), hex("000087ff00ff000000001d000b00024201000000000000001060"));
    assert_eq!(rc_of(&load.payload), ReturnCode::Arg);
    // With the real answers: the entry at 0x67800000, base 1.
    let entry = hex("0000000081000000000001000000ffff");
    let w = rig.call(
        BOARD,
        to_chip(0, 0, 0),
        20,
        spinnbed_core::proto::scp::Request::write(0x6780_0000, &entry),
    );
    assert_eq!(rc_of(&w.payload), ReturnCode::Ok);
    let load = rig.call(
        BOARD,
        to_chip(0, 0, 0),
        21,
        spinnbed_core::proto::scp::Request::Router {
            app_id: 66,
            op: spinnbed_core::proto::scp::RouterOp::Load {
                addr: 0x6780_0000,
                count: 1,
                base: 1,
            },
        },
    );
    assert_eq!(rc_of(&load.payload), ReturnCode::Ok);

    let start = rig.request_one(scp(BOARD), hex("000087ff00ffffff000016000c000200000042ff0300ffff0000"));
    assert_eq!(to_hex(&start.payload), "00000708ff000000000080000c00");

    // rig's count_cores_in_state uses a P2P signal: SC&MP 4.0.0 refuses it.
    let count = rig.request_one(scp(BOARD), hex("000087ff00ffffff000016000d000100000042ff6700ffff0000"));
    assert_eq!(to_hex(&count.payload), "00000708ff000000000084000d00");

    let dims = rig.request_one(scp(BOARD), hex("000087ff00ff0000000002000e00027f00f50200000001000000"));
    assert_eq!(to_hex(&dims.payload), "00000708ff000000000080000e000808");
}

#[test]
fn spinnman_offline_vectors() {
    let mut rig = booted();
    // (request, expected rc, reply kind) — §7, seq 0x1234; replies checked to parse.
    let cases: &[(&str, ReturnCode)] = &[
        ("000087ff00ffffffffff00003412000000000000000000000000", ReturnCode::Ok),
        ("000087ff00ff0000ffff1f0034125f0000000000000000000000", ReturnCode::Ok),
        ("000087ff00ff0000ffff02003412027f00f50200000001000000", ReturnCode::Ok),
        (
            "000087ff00ff0000ffff0300341200000060040000000200000001020304",
            ReturnCode::Ok,
        ),
        ("000087ff00ff0000ffff0500341200000060efbeadde00040000", ReturnCode::Ok),
        ("000087ff00ff0000ffff1a0034120200011050c300007f000001", ReturnCode::Ok),
        ("000087ff00ff0000ffff1a003412030001400000000000000000", ReturnCode::Ok),
        ("000087ff00ff0000ffff1a003412042301303930020100000000", ReturnCode::Ok),
        ("000087ff00ff0000ffff1a003412020002000100000000000000", ReturnCode::Ok),
        ("000087ff00ff0000ffff1a00341200000400ff00000000000000", ReturnCode::Ok),
        ("000087ff00ff0000ffff1a003412020003000000000000000000", ReturnCode::Ok),
        ("000087ff00ff0000ffff1a003412000004000900000000000000", ReturnCode::Ok),
        ("000087ff00ff0000ffff1c003412001e04000010000005000000", ReturnCode::Ok),
        ("000087ff00ff0000ffff1c003412021e00000000000000000000", ReturnCode::Ok),
        ("000087ff00ff0000ffff1c003412010000000000106000000000", ReturnCode::Ok),
        ("000087ff00ff0000ffff1c003412031e00000a00000000000000", ReturnCode::Ok),
        ("000087ff00ff0000ffff1d003412021e0a000000806705000000", ReturnCode::Ok),
        ("000087ff00ff0000ffff1d003412000000000000000000000000", ReturnCode::Ok),
        ("000087ff00ff0000ffff1d003412031e00000100008000000000", ReturnCode::Ok),
        ("000087ff00ff0000ffff1d003412031e00000000008000000000", ReturnCode::Ok),
        ("000087ff00ffffffffff16003412000000001eff0300ffff0000", ReturnCode::Ok),
        ("000087ff00ffffffffff16003412000000001eff0400ffff0000", ReturnCode::Ok),
        ("000087ff00ffffffffff1400341200003f001eff0250003f0080", ReturnCode::Ok),
        ("000087ff00ff0000ffff130034120600041e0000000000000000", ReturnCode::Ok),
        ("000087ff00ffffffffff1400341200040206ffff00001a3f0080", ReturnCode::Ok),
        (
            "000087ff00ffffffffff1700341202001e3f00010100000080670001020304050607",
            ReturnCode::Ok,
        ),
        ("000087ff00ffffffffff140034120200000f0600041e1a3f0000", ReturnCode::Ok),
        ("000087ff00ff0000ffff11003412007f00f51000000002000000", ReturnCode::Ok),
        (
            "000087ff00ff0000ffff12003412000000600400000002000000aabbccdd",
            ReturnCode::Ok,
        ),
        ("000087ff00ffffffffff20003412010000000000000000000000", ReturnCode::Ok),
    ];
    for (req, rc) in cases {
        let bytes = hex(req);
        let reply = rig.request_one(scp(BOARD), bytes.clone());
        let msg = parse_reply(&bytes, &reply.payload);
        assert_eq!(msg.reply.return_code(), *rc, "{req}");
        assert_eq!(msg.seq, 0x1234);
        assert_eq!(msg.sdp.flags, Flags::NO_REPLY);
        assert!((8..16).contains(&msg.sdp.tag), "transient tag");
    }
    // The reverse tag (tag 4, rx port 12345) and the use-sender tag (3) are in place.
    let get = rig.call(
        BOARD,
        to_chip(0, 0, 0),
        1,
        spinnbed_core::proto::scp::Request::Iptag(spinnbed_core::proto::scp::IptagRequest::Get { tag: 0, count: 8 }),
    );
    let Reply::IptagRecords(r) = parse_as(&get.payload, ReplyKind::IptagRecords).reply else {
        panic!()
    };
    let t3 = r.get(3).unwrap();
    assert_eq!((t3.ip, t3.tx_port), (*HOST.ip(), HOST.port()), "use-sender");
    let t4 = r.get(4).unwrap();
    assert!(t4.flags.contains(IptagFlags::REVERSE));
    assert_eq!((t4.rx_port, t4.dest_addr, t4.dest_port), (12345, 0x0102, 0x23));
    assert!(r.get(2).unwrap().flags.0 == 0, "tag 2 was cleared");
    assert_eq!(
        rig.emu.reverse_tag_endpoints(rig.now),
        vec![SocketAddrV4::new(BOARD, 12345)]
    );
}

#[test]
fn spinnman_read_from_core_3_of_chip_1_2() {
    let mut rig = booted();
    let req = hex("000087ff03ff0201ffff02003412000000700001000002000000");
    assert!(rig.send(scp(BOARD), req.clone()).is_empty());
    let out = rig.advance(Duration::from_millis(1));
    let msg = parse_reply(&req, &out[0].payload);
    assert_eq!(msg.sdp.src, Address::new(1, 2, 0, 3));
    assert_eq!(msg.sdp.dest, Address::new(0, 0, 7, 31));
    assert_eq!(msg.reply, Reply::Data(&[0; 256]));
    // SARK answers sver as itself.
    let sver = encode(to_chip(1, 2, 3), 2, spinnbed_core::proto::scp::Request::Version);
    rig.send(scp(BOARD), sver.clone());
    let out = rig.advance(Duration::from_millis(1));
    let Reply::Version(v) = parse_reply(&sver, &out[0].payload).reply else {
        panic!()
    };
    assert_eq!(v.id, "SARK/SpiNNaker");
    assert_eq!(v.core().chip(), Some((1, 2)));
    assert_eq!((v.core().physical_cpu, v.core().virtual_cpu), (3, 3));
    // SARK does not know CMD_INFO.
    let info = encode(
        to_chip(1, 2, 3),
        3,
        spinnbed_core::proto::scp::Request::Info { arg1: 0 },
    );
    rig.send(scp(BOARD), info);
    let out = rig.advance(Duration::from_millis(1));
    assert_eq!(rc_of(&out[0].payload), ReturnCode::Cmd);
}

#[test]
fn read_link_reads_the_neighbour() {
    let mut rig = booted();
    // spinnman ReadLink((0,0,0), link 2 (north), sv, 16): the neighbour (0,1)'s sv.
    let req = hex("000087ff00ff0000ffff11003412007f00f51000000002000000");
    let reply = rig.request_one(scp(BOARD), req.clone());
    let Reply::Data(d) = parse_reply(&req, &reply.payload).reply else {
        panic!()
    };
    assert_eq!(&d[..4], &[1, 0, 8, 8], "p2p_addr (0,1), dims 8x8");
    // West of (0,0) is nothing on a lone board.
    let west = encode(
        to_chip(0, 0, 0),
        5,
        spinnbed_core::proto::scp::Request::LinkRead {
            addr: 0xF500_7F00,
            len: 4,
            link: 3,
        },
    );
    let reply = rig.request_one(scp(BOARD), west);
    assert_eq!(rc_of(&reply.payload), ReturnCode::Timeout);
}

#[test]
fn alloc_and_router_round_trips() {
    use spinnbed_core::proto::scp::{AllocOp, Request};
    let mut rig = booted();
    let call = |rig: &mut Rig, seq: u16, op: AllocOp| {
        let reply = rig.call(
            BOARD,
            to_chip(0, 0, 0),
            seq,
            Request::Alloc {
                app_id: 30,
                flags: 0,
                op,
            },
        );
        let kind = op.reply_kind();
        parse_as(&reply.payload, kind).reply.to_owned_alloc()
    };
    let a = call(&mut rig, 1, AllocOp::AllocSdram { size: 4096, tag: 5 });
    let b = call(&mut rig, 2, AllocOp::AllocSdram { size: 100, tag: 6 });
    assert!(a != 0 && b == a + 4096 + 8, "{a:#x} {b:#x}");
    assert_eq!(
        call(&mut rig, 3, AllocOp::AllocSdram { size: 8, tag: 5 }),
        0,
        "tag in use"
    );
    assert_eq!(call(&mut rig, 4, AllocOp::HeapTagPointer { tag: 6 }), b);
    assert_eq!(call(&mut rig, 5, AllocOp::FreeSdram { ptr: a }), 0);
    assert_eq!(call(&mut rig, 6, AllocOp::FreeSdramByApp), 1);
    assert_eq!(call(&mut rig, 7, AllocOp::AllocRouter { count: 10 }), 1);
    assert_eq!(call(&mut rig, 8, AllocOp::AllocRouter { count: 10 }), 11);
    assert_eq!(call(&mut rig, 9, AllocOp::FreeRouterByApp { clear: 1 }), 20);
    let space = rig.call(
        BOARD,
        to_chip(0, 0, 0),
        10,
        Request::Alloc {
            app_id: 30,
            flags: 0,
            op: AllocOp::SdramSpace,
        },
    );
    assert_eq!(
        parse_as(&space.payload, ReplyKind::SdramSpace).reply,
        Reply::SdramSpace {
            free: 123_469_792,
            largest: 123_469_792
        }
    );
    // Fixed route: write then read.
    use spinnbed_core::proto::scp::RouterOp;
    let w = rig.call(
        BOARD,
        to_chip(0, 0, 0),
        11,
        Request::Router {
            app_id: 30,
            op: RouterOp::FixedRoute { value: 0x41 },
        },
    );
    assert_eq!(rc_of(&w.payload), ReturnCode::Ok);
    let r = rig.call(
        BOARD,
        to_chip(0, 0, 0),
        12,
        Request::Router {
            app_id: 30,
            op: RouterOp::fixed_route_read(),
        },
    );
    assert_eq!(
        parse_as(&r.payload, ReplyKind::FixedRoute).reply,
        Reply::FixedRoute(0x41)
    );
}

/// Shortcut: the u32 an ALLOC-kind reply carries (0 for empty replies).
trait AllocValue {
    fn to_owned_alloc(&self) -> u32;
}
impl AllocValue for Reply<'_> {
    fn to_owned_alloc(&self) -> u32 {
        match *self {
            Reply::Alloc(v) => v,
            Reply::Empty => 0,
            ref other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn count_reply_is_delayed_and_busy_meanwhile() {
    let mut rig = booted();
    // spinnman ApplicationRun(app 30, (0,0), [1,2], wait) then START, then CountState RUNNING.
    rig.request_one(scp(BOARD), hex("000087ff00ff0000ffff130034120600041e0000000000000000"));
    let count = hex("000087ff00ff0000ffff0f0034121e0000000700000000000000");
    assert!(rig.send(scp(BOARD), count.clone()).is_empty(), "not before 10 ms");
    let busy = rig.request_one(scp(BOARD), count.clone());
    assert_eq!(rc_of(&busy.payload), ReturnCode::P2pBusy);
    assert!(rig.advance(Duration::from_millis(9)).is_empty());
    let out = rig.advance(Duration::from_millis(1));
    assert_eq!(out.len(), 1);
    assert_eq!(
        parse_reply(&count, &out[0].payload).reply,
        Reply::Count(0),
        "READY, not RUNNING yet"
    );
    rig.request_one(scp(BOARD), hex("000087ff00ffffffffff16003412000000001eff0300ffff0000"));
    rig.send(scp(BOARD), count.clone());
    // 10 ms after SC&MP has served it.
    let out = rig.advance(Duration::from_millis(11));
    assert_eq!(parse_reply(&count, &out[0].payload).reply, Reply::Count(2));
    // AppStop (CMD_NNP SIG0 STOP) puts them back to IDLE.
    rig.request_one(scp(BOARD), hex("000087ff00ffffffffff1400341200003f001eff0250003f0080"));
    rig.send(scp(BOARD), count.clone());
    let out = rig.advance(Duration::from_millis(11));
    assert_eq!(parse_reply(&count, &out[0].payload).reply, Reply::Count(0));
}

#[test]
fn errors_len_cpu_port_route_cmd_arg() {
    use spinnbed_core::proto::scp::Request;
    let mut rig = booted();
    // Short request (args left out): RC_LEN, seq echoed.
    let short = rig.request_one(scp(BOARD), hex("000087ff00ffffff00000000cdab"));
    assert_eq!(to_hex(&short.payload), "00000708ff00000000008100cdab");
    // cpu 18: RC_CPU.
    let r = rig.call(BOARD, to_chip(0, 0, 18), 1, Request::Version);
    assert_eq!(rc_of(&r.payload), ReturnCode::Cpu);
    // Port 1 to the monitor: RC_PORT.
    let mut h = to_chip(0, 0, 0);
    h.dest.port = 1;
    let r = rig.call(BOARD, h, 2, Request::Version);
    assert_eq!(rc_of(&r.payload), ReturnCode::Port);
    // A chip that does not exist on the board: RC_ROUTE.
    let r = rig.call(BOARD, to_chip(0, 7, 0), 3, Request::Version);
    assert_eq!(rc_of(&r.payload), ReturnCode::Route);
    // Unknown command and a deprecated one: RC_CMD.
    let mut raw = encode(to_chip(0, 0, 0), 4, Request::Version);
    raw[10] = 52;
    assert_eq!(
        rc_of(&rig.request_one(scp(BOARD), raw.clone()).payload),
        ReturnCode::Cmd
    );
    raw[10] = 4;
    assert_eq!(rc_of(&rig.request_one(scp(BOARD), raw).payload), ReturnCode::Cmd);
    // READ over 256 bytes, bad access type, unmapped address, unaligned FILL: RC_ARG.
    let mut raw = encode(to_chip(0, 0, 0), 5, Request::read(0x6000_0000, 4));
    raw[18] = 0x01;
    raw[19] = 0x01; // length 257
    assert_eq!(rc_of(&rig.request_one(scp(BOARD), raw).payload), ReturnCode::Arg);
    let mut raw = encode(to_chip(0, 0, 0), 6, Request::read(0x6000_0000, 4));
    raw[22] = 3;
    assert_eq!(rc_of(&rig.request_one(scp(BOARD), raw).payload), ReturnCode::Arg);
    let r = rig.call(BOARD, to_chip(0, 0, 0), 7, Request::read(0x1234_5678, 4));
    assert_eq!(rc_of(&r.payload), ReturnCode::Arg);
    let r = rig.call(
        BOARD,
        to_chip(0, 0, 0),
        8,
        Request::Fill {
            addr: 0x6000_0002,
            value: 1,
            len: 8,
        },
    );
    assert_eq!(rc_of(&r.payload), ReturnCode::Arg);
    // No reply wanted: nothing comes back, but the write happens.
    let mut h = to_chip(0, 0, 0);
    h.flags = Flags::NO_REPLY;
    let req = encode(h, 9, Request::write(0x6000_0000, &[9, 9, 9, 9]));
    assert!(rig.send(scp(BOARD), req).is_empty());
    assert_eq!(
        rig.emu
            .sdram("single", Board::new(0, 0, 0), Chip::new(0, 0), 0x6000_0000, 4),
        [9; 4]
    );
    // Datagrams that are not SDP at all are counted and dropped.
    assert!(rig.send(scp(BOARD), vec![1, 2, 3]).is_empty());
    assert!(rig.send(scp(BOARD), vec![0; 400]).is_empty());
    assert_eq!(rig.emu.stats().malformed, 2);
}

#[test]
fn transient_tag_exhaustion_drops_the_ninth_request() {
    use spinnbed_core::proto::scp::Request;
    let mut rig = booted();
    // Reads of a far chip wait for the P2P round trip, holding their transient tags.
    for seq in 0..9u16 {
        let out = rig.send(
            scp(BOARD),
            encode(to_chip(7, 7, 0), seq, Request::read(0x6000_0000, 16)),
        );
        assert!(out.is_empty());
    }
    assert_eq!(rig.emu.stats().dropped_tags_busy, 1);
    // SC&MP serves them one after the other, each pushing its request 7 hops over P2P.
    let out = rig.advance(Duration::from_millis(5));
    let mut seqs: Vec<u16> = out.iter().map(|d| parse_as(&d.payload, ReplyKind::Data).seq).collect();
    seqs.sort();
    assert_eq!(seqs, (0..8).collect::<Vec<_>>(), "the ninth was dropped unexecuted");
    let mut tags: Vec<u8> = out.iter().map(|d| d.payload[3]).collect();
    tags.sort();
    assert_eq!(tags, (8..16).collect::<Vec<_>>(), "all eight pool tags were used");
    // Freed when sent: the next request gets through.
    rig.send(scp(BOARD), encode(to_chip(7, 7, 0), 99, Request::read(0x6000_0000, 16)));
    assert_eq!(rig.advance(Duration::from_millis(1)).len(), 1);
}

#[test]
fn replies_through_a_named_tag_and_strip() {
    use spinnbed_core::proto::scp::{IptagConfig, IptagRequest, Request};
    let mut rig = booted();
    let listener = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 9), 5555);
    let config = IptagConfig {
        flags: IptagFlags::STRIP,
        ..IptagConfig::forward(*listener.ip(), listener.port())
    };
    rig.call(
        BOARD,
        to_chip(0, 0, 0),
        1,
        Request::Iptag(IptagRequest::Set { tag: 1, config }),
    );
    let mut h = to_chip(0, 0, 0);
    h.tag = 1;
    rig.send(scp(BOARD), encode(h, 2, Request::Version));
    let out = rig.advance(Duration::from_millis(1));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].dst, listener);
    assert_eq!(&out[0].payload[..4], &[0x80, 0, 2, 0], "stripped: the SCP reply alone");
    h.tag = 5;
    assert!(rig.send(scp(BOARD), encode(h, 3, Request::Version)).is_empty());
    assert_eq!(rig.emu.stats().dropped_no_tag, 1);
}

#[test]
fn reply_header_is_swapped_per_section_4() {
    let mut rig = booted();
    let req = hex("000087ff00ffffffffff00000000000000000000000000000000");
    let reply = rig.request_one(scp(BOARD), req);
    let msg = ReplyMessage::parse_udp(&reply.payload, ReplyKind::Version).unwrap();
    assert_eq!(msg.sdp.flags.bits(), 0x07);
    assert_eq!(msg.sdp.dest, Address::new(0, 0, 7, 31));
    assert_eq!(msg.sdp.src, Address::new(0, 0, 0, 0));
    assert_eq!(msg.sdp.tag, 8);
    let _ = sdp::TAG_NONE;
}
