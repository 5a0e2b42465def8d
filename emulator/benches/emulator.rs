//! Requests per second the emulator handles on a booted board: sver, 256-byte READ and
//! 256-byte WRITE, each a full `handle_datagram` + `handle_timeout` + `poll_transmit` round trip
//! (parse, tag, route, execute, encode the reply, schedule it for the end of SC&MP's service
//! and send it then).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spinnbed_core::datagram::Datagram;
use spinnbed_core::geometry::Machine;
use spinnbed_core::proto::boot::{self, SystemVariables};
use spinnbed_core::proto::scp::{Request, RequestMessage};
use spinnbed_core::proto::sdp;
use spinnbed_core::time::{Duration, Instant};
use spinnbed_emulator::{BOOT_PORT, Config, Emulator, SCP_PORT};
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};

const BMP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const BOARD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const HOST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40000);

fn encode(request: Request<'_>, seq: u16) -> Vec<u8> {
    let msg = RequestMessage {
        sdp: sdp::Repr::request(sdp::Address::ROOT_MONITOR),
        seq,
        request,
    };
    let mut buf = vec![0u8; sdp::MAX_UDP_PAYLOAD_LEN];
    let n = msg.emit_udp(&mut buf).expect("emit");
    buf.truncate(n);
    buf
}

/// Runs timers up to `until`.
fn settle(emu: &mut Emulator, until: Instant) {
    while let Some(t) = emu.poll_timeout() {
        if t > until {
            break;
        }
        emu.handle_timeout(t);
    }
    while emu.poll_transmit().is_some() {}
}

/// A single board, powered and booted, at `now`.
fn booted() -> (Emulator, Instant) {
    let m = Machine::single_board("bench", BMP, BOARD).expect("machine");
    let mut emu = Emulator::new(&[m], Config::default());
    let mut now = Instant::ZERO;
    let dgram = |dst, payload| Datagram {
        src: HOST,
        dst,
        payload,
    };
    let power = encode(
        Request::Power {
            on: true,
            delay_ms: 0,
            boards: 1,
        },
        0,
    );
    emu.handle_datagram(now, dgram(SocketAddrV4::new(BMP, SCP_PORT), power));
    now += Duration::from_secs(6);
    settle(&mut emu, now);
    let image: Vec<u8> = (0..29_868usize).map(|i| i as u8).collect();
    for p in boot::boot_packets(&image, &SystemVariables::spinnman(0)).expect("image") {
        emu.handle_datagram(now, dgram(SocketAddrV4::new(BOARD, BOOT_PORT), p));
    }
    now += Duration::from_secs(4);
    settle(&mut emu, now);
    (emu, now)
}

fn requests(c: &mut Criterion) {
    let data: Vec<u8> = (0..256u32).map(|i| (3 + 7 * i) as u8).collect();
    let cases = [
        ("sver", encode(Request::Version, 1)),
        ("read256", encode(Request::read(0x6000_0000, 256), 2)),
        ("write256", encode(Request::write(0x6000_0000, &data), 3)),
    ];
    let mut group = c.benchmark_group("emulator_requests");
    group.throughput(Throughput::Elements(1));
    for (name, payload) in cases {
        let (mut emu, mut now) = booted();
        let dst = SocketAddrV4::new(BOARD, SCP_PORT);
        group.bench_function(name, |b| {
            b.iter(|| {
                // One request at a time: each finds SC&MP idle.
                now += Duration::from_millis(1);
                emu.handle_datagram(
                    now,
                    Datagram {
                        src: HOST,
                        dst,
                        payload: payload.clone(),
                    },
                );
                let due = emu.poll_timeout().expect("the reply's time");
                emu.handle_timeout(due);
                black_box(emu.poll_transmit().expect("a reply"));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, requests);
criterion_main!(benches);
