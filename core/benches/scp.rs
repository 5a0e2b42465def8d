//! SCP codec throughput: parse a request datagram from bytes, then emit it into a reused buffer.
//!
//! Target: at least 10 million READ-request round trips per second on one core (the host and
//! emulator sides of a simulated run both go through this path for every SCP packet).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spinnbed_core::proto::scp::{self, Packet, ReplyKind, ReplyMessage, Request, RequestMessage};
use spinnbed_core::proto::sdp;
use std::hint::black_box;

/// spinnman `ReadMemory((1,2,3), 0x70000000, 256)` (protocol_captures.md §7).
const READ: [u8; 26] = [
    0x00, 0x00, 0x87, 0xff, 0x03, 0xff, 0x02, 0x01, 0xff, 0xff, 0x02, 0x00, 0x34, 0x12, 0x00, 0x00, 0x00, 0x70, 0x00,
    0x01, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
];

/// A full 256-byte WRITE datagram (282 bytes) with rig's test pattern.
fn write_256() -> Vec<u8> {
    let data: Vec<u8> = (0..256u32).map(|i| (3 + 7 * i) as u8).collect();
    let msg = RequestMessage {
        sdp: sdp::Repr::request(sdp::Address::scp(0, 0, 0)),
        seq: 1,
        request: Request::Write {
            addr: 0x7000_0000,
            access: scp::AccessType::Word,
            data: &data,
        },
    };
    let mut buf = vec![0u8; sdp::MAX_UDP_PAYLOAD_LEN];
    let n = msg.emit_udp(&mut buf).expect("emit");
    buf.truncate(n);
    buf
}

/// The SC&MP 4.0.0 sver reply (48 bytes).
const SVER_REPLY: [u8; 48] = [
    0x00, 0x00, 0x07, 0x08, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x01, 0xff, 0xff, 0x00, 0xf1, 0x53, 0x65, b'S', b'C', b'&', b'M', b'P', b'/', b'S', b'p', b'i', b'N', b'N', b'a',
    b'k', b'e', b'r', 0, b'4', b'.', b'0', b'.', b'0', 0,
];

fn request_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("scp_request_round_trip");
    group.throughput(Throughput::Elements(1));

    let mut out = [0u8; sdp::MAX_UDP_PAYLOAD_LEN];
    group.bench_function("read_udp", |b| {
        b.iter(|| {
            let msg = RequestMessage::parse_udp(black_box(&READ)).expect("parse");
            let n = msg.emit_udp(&mut out).expect("emit");
            black_box(&out[..n]);
        })
    });

    let write = write_256();
    group.bench_function("write256_udp", |b| {
        b.iter(|| {
            let msg = RequestMessage::parse_udp(black_box(&write)).expect("parse");
            let n = msg.emit_udp(&mut out).expect("emit");
            black_box(&out[..n]);
        })
    });

    // The SCP layer alone (no UDP padding / SDP header).
    let scp_bytes = &READ[10..];
    let mut scp_out = [0u8; scp::MAX_LEN];
    group.bench_function("read_scp_only", |b| {
        b.iter(|| {
            let packet = Packet::new_checked(black_box(scp_bytes)).expect("check");
            let request = Request::parse(&packet).expect("parse");
            let len = request.buffer_len();
            request.emit(packet.seq(), &mut Packet::new_unchecked(&mut scp_out[..len]));
            black_box(&scp_out[..len]);
        })
    });
    group.finish();
}

fn reply_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("scp_reply_round_trip");
    group.throughput(Throughput::Elements(1));
    let mut out = [0u8; sdp::MAX_UDP_PAYLOAD_LEN];
    group.bench_function("sver_reply_udp", |b| {
        b.iter(|| {
            let msg = ReplyMessage::parse_udp(black_box(&SVER_REPLY), ReplyKind::Version).expect("parse");
            let n = msg.emit_udp(&mut out).expect("emit");
            black_box(&out[..n]);
        })
    });
    group.finish();
}

criterion_group!(benches, request_round_trip, reply_round_trip);
criterion_main!(benches);
