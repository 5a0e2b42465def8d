//! The emulator never panics: random bytes to every endpoint, and random sequences of valid
//! requests (BMP, boot, SC&MP) at random times.

mod common;

use common::*;
use proptest::prelude::*;
use spinnbed_core::datagram::Datagram;
use spinnbed_core::geometry::Board;
use spinnbed_core::proto::boot::{self, SystemVariables};
use spinnbed_core::proto::scp::{
    AllocOp, BmpInfoKind, IptagConfig, IptagFlags, IptagRequest, LedControl, Request, RouterOp, SignalKind,
};
use spinnbed_core::proto::sdp::{self, Address, Flags};
use spinnbed_core::time::{Duration, Instant};
use spinnbed_emulator::{Config, Emulator};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::OnceLock;

/// A 1 × 1 triad machine with every board powered and booted (built once, cloned per case by
/// replaying the same set-up).
fn booted_triad() -> Rig {
    let config = Config {
        eieio: spinnbed_emulator::EieioConfig {
            rate: 1000,
            keys_per_packet: 63,
        },
        ..Config::default()
    };
    let mut rig = Rig::with_config(vec![machine("m", 1, 1)], config);
    rig.power_all(0);
    let ip = rig.board_ip(0, Board::new(0, 0, 0));
    rig.boot_and_wait(ip);
    rig
}

fn endpoints() -> &'static [SocketAddrV4] {
    static EPS: OnceLock<Vec<SocketAddrV4>> = OnceLock::new();
    EPS.get_or_init(|| {
        let rig = Rig::new(vec![machine("m", 1, 1)]);
        let mut v = rig.emu.endpoints();
        v.push(SocketAddrV4::new(Ipv4Addr::new(127, 1, 0, 1), 12345));
        v
    })
}

fn drive(emu: &mut Emulator, now: Instant) {
    while let Some(t) = emu.poll_timeout() {
        if t > now {
            break;
        }
        emu.handle_timeout(t);
    }
    while emu.poll_transmit().is_some() {}
}

proptest! {
    #[test]
    fn random_bytes_never_panic(datagrams in proptest::collection::vec(
        (0usize..16, proptest::collection::vec(any::<u8>(), 0..1100), 0u64..2_000_000), 1..60)) {
        let mut rig = booted_triad();
        let eps = endpoints();
        let mut now = rig.now;
        for (ep, payload, dt) in datagrams {
            now += Duration::from_micros(dt);
            let dst = eps[ep % eps.len()];
            rig.emu.handle_datagram(now, Datagram { src: HOST, dst, payload });
            drive(&mut rig.emu, now);
        }
        let s = rig.emu.stats();
        prop_assert!(s.datagrams_out <= s.datagrams_in + s.eieio_out + 1000);
    }

    #[test]
    fn mutated_valid_requests_never_panic(reqs in proptest::collection::vec((request(), any::<u8>(), 0usize..26, any::<u8>()), 1..40)) {
        let mut rig = booted_triad();
        let eps = endpoints();
        for (i, ((ep, header, req), seq, at, byte)) in reqs.iter().enumerate() {
            let mut bytes = encode(*header, *seq as u16, req.as_request());
            // Sometimes corrupt one byte of the header or args.
            if i % 3 == 0 && *at < bytes.len() {
                bytes[*at] = *byte;
            }
            let dst = eps[ep % eps.len()];
            rig.now += Duration::from_micros(u64::from(*byte) * 997);
            rig.emu.handle_datagram(rig.now, Datagram { src: HOST, dst, payload: bytes });
            drive(&mut rig.emu, rig.now);
        }
    }

    #[test]
    fn random_valid_sequences_never_panic(steps in proptest::collection::vec(step(), 1..80)) {
        let mut rig = Rig::new(vec![machine("m", 1, 1)]);
        let eps = endpoints();
        let boot_pkts: Vec<Vec<u8>> = boot::boot_packets(&image(2048), &SystemVariables::rig(5)).unwrap().collect();
        for s in steps {
            match s {
                Step::Req(ep, header, req) => {
                    let bytes = encode(header, 1, req.as_request());
                    let dst = eps[ep % eps.len()];
                    rig.emu.handle_datagram(rig.now, Datagram { src: HOST, dst, payload: bytes });
                }
                Step::Boot(board) => {
                    let ip = Ipv4Addr::new(127, 1, 0, 1 + 8 * (board % 3));
                    for p in &boot_pkts {
                        rig.emu.handle_datagram(rig.now, Datagram { src: HOST, dst: SocketAddrV4::new(ip, 54321), payload: p.clone() });
                    }
                }
                Step::Wait(us) => rig.now += Duration::from_micros(us),
                Step::Fault(board, what) => {
                    let b = Board::new(0, 0, board % 3);
                    match what % 4 {
                        0 => rig.emu.set_board_dead("m", b, what & 4 != 0),
                        1 => rig.emu.set_link_failed("m", b, spinnbed_core::geometry::Link::ALL[usize::from(what) % 6], what & 8 != 0),
                        2 => rig.emu.set_bmp_silent("m", spinnbed_core::geometry::FrameId { cabinet: 0, frame: 0 }, what & 4 != 0),
                        _ => {}
                    }
                }
            }
            drive(&mut rig.emu, rig.now);
        }
        let _ = rig.emu.memory_estimate();
    }
}

/// An owned request (proptest needs `'static` values).
#[derive(Debug, Clone)]
enum Req {
    Plain(Request<'static>),
    Write(u32, Vec<u8>),
    LinkWrite(u32, u8, Vec<u8>),
}

impl Req {
    fn as_request(&self) -> Request<'_> {
        match self {
            Req::Plain(r) => *r,
            Req::Write(addr, data) => Request::write(*addr, data),
            Req::LinkWrite(addr, link, data) => Request::LinkWrite {
                addr: *addr,
                link: *link,
                data,
            },
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    Req(usize, sdp::Repr, Req),
    Boot(u8),
    Wait(u64),
    Fault(u8, u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => request().prop_map(|(ep, h, r)| Step::Req(ep, h, r)),
        1 => any::<u8>().prop_map(Step::Boot),
        2 => (0u64..8_000_000).prop_map(Step::Wait),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(b, w)| Step::Fault(b, w)),
    ]
}

fn address() -> impl Strategy<Value = u32> {
    prop_oneof![
        0x6000_0000u32..0x6000_4000,
        0x7000_0000u32..0x7000_4000,
        0xF500_7E00u32..0xF500_8000,
        0xE500_0000u32..0xE500_8000,
        0x6780_0000u32..0x6780_0100,
        Just(0x0004_0004u32),
        Just(0x0001_005Cu32),
        any::<u32>(),
    ]
}

fn header() -> impl Strategy<Value = sdp::Repr> {
    (
        prop_oneof![Just(0x87u8), Just(0x07u8), any::<u8>()],
        prop_oneof![Just(0xFFu8), 0u8..16],
        prop_oneof![Just(255u8), 0u8..16],
        prop_oneof![Just(255u8), 0u8..16],
        prop_oneof![3 => Just(0u8), 1 => 0u8..8],
        prop_oneof![3 => Just(0u8), 1 => 0u8..20],
    )
        .prop_map(|(flags, tag, x, y, port, cpu)| {
            let y = if x == 255 { 255 } else { y };
            sdp::Repr {
                flags: Flags::from_bits(flags),
                tag,
                dest: Address::new(x, y, port, cpu),
                src: Address::HOST,
            }
        })
}

fn plain() -> impl Strategy<Value = Request<'static>> {
    prop_oneof![
        Just(Request::Version),
        (address(), 0u32..=256).prop_map(|(a, l)| Request::read(a, l)),
        (address(), any::<u32>(), 0u32..70_000).prop_map(|(addr, value, len)| Request::Fill { addr, value, len }),
        (any::<u8>(), any::<u8>()).prop_map(|(app_id, state)| Request::Count { app_id, state }),
        (address(), 0u32..=256, 0u8..6).prop_map(|(addr, len, link)| Request::LinkRead { addr, len, link }),
        (any::<u8>(), 0u8..2, any::<u32>()).prop_map(|(app_id, flags, c)| Request::ApplicationRun {
            app_id,
            flags,
            cores: c & 0x3_FFFE
        }),
        (0u8..3, any::<u32>()).prop_map(|(k, data)| Request::Signal {
            kind: SignalKind::from_u32(u32::from(k)).unwrap(),
            data,
            cores: 0xFFFF
        }),
        any::<u32>().prop_map(|l| Request::Led {
            leds: LedControl(l),
            boards: l
        }),
        (0u8..16, any::<u16>(), any::<u8>(), any::<u8>()).prop_map(|(tag, port, f, t)| Request::Iptag(
            IptagRequest::Set {
                tag,
                config: IptagConfig {
                    flags: IptagFlags(u16::from(f & 0x7) << 8),
                    timeout: t & 0xF,
                    ..IptagConfig::forward(Ipv4Addr::LOCALHOST, port)
                },
            }
        )),
        (0u8..16, 0u32..9).prop_map(|(tag, count)| Request::Iptag(IptagRequest::Get { tag, count })),
        (0u8..16).prop_map(|tag| Request::Iptag(IptagRequest::Clear { tag })),
        any::<u32>().prop_map(|timeout| Request::Iptag(IptagRequest::Tto { timeout })),
        (any::<u8>(), 0u32..8, any::<u32>(), any::<u32>()).prop_map(|(app_id, op, a2, a3)| {
            let op = match op {
                0 => AllocOp::AllocSdram {
                    size: a2 % (200 << 20),
                    tag: a3 % 256,
                },
                1 => AllocOp::FreeSdram { ptr: a2 },
                2 => AllocOp::FreeSdramByApp,
                3 => AllocOp::AllocRouter { count: a2 % 2000 },
                4 => AllocOp::FreeRouter {
                    entry: a2 % 1100,
                    clear: a3 & 1,
                },
                5 => AllocOp::FreeRouterByApp { clear: a3 & 1 },
                6 => AllocOp::SdramSpace,
                _ => AllocOp::HeapTagPointer { tag: a3 },
            };
            Request::Alloc { app_id, flags: 0, op }
        }),
        (any::<u8>(), 0u32..4, address(), any::<u16>(), 0u32..1100).prop_map(|(app_id, op, addr, count, base)| {
            let op = match op {
                0 => RouterOp::Init,
                1 => RouterOp::Clear { start: base, count },
                2 => RouterOp::Load {
                    addr,
                    count: count % 1100,
                    base,
                },
                _ => RouterOp::FixedRoute { value: addr },
            };
            Request::Router { app_id, op }
        }),
        any::<u32>().prop_map(|arg1| Request::Info { arg1 }),
        (0u32..7).prop_map(|k| Request::BmpInfo(BmpInfoKind::from_u32(k))),
        (any::<u16>(), 0u8..3, any::<u32>()).prop_map(|(delay_ms, code, boards)| Request::Reset {
            delay_ms: delay_ms % 100,
            code,
            boards
        }),
        (any::<bool>(), 0u16..300, any::<u32>()).prop_map(|(on, delay_ms, boards)| Request::Power {
            on,
            delay_ms,
            boards: boards & 7
        }),
        (0u16..70, any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(c, arg1, arg2, arg3)| Request::Other {
            command: spinnbed_core::proto::scp::Command::from_code(c),
            arg1,
            arg2,
            arg3,
            data: &[]
        }),
    ]
}

fn request() -> impl Strategy<Value = (usize, sdp::Repr, Req)> {
    (
        0usize..16,
        header(),
        prop_oneof![
            6 => plain().prop_map(Req::Plain),
            1 => (address(), proptest::collection::vec(any::<u8>(), 0..=256)).prop_map(|(a, d)| Req::Write(a, d)),
            1 => (address(), 0u8..6, proptest::collection::vec(any::<u8>(), 0..=64)).prop_map(|(a, l, d)| Req::LinkWrite(a, l, d)),
        ],
    )
}
