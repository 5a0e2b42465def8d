//! A small harness around the emulator for the integration tests: virtual time, a host
//! address, hex fixtures, and shortcuts for powering and booting boards.
#![allow(dead_code)]

use spinnbed_core::datagram::Datagram;
use spinnbed_core::geometry::{Addressing, Board, IpScheme, Machine, MachineSpec};
use spinnbed_core::proto::boot::{self, SystemVariables};
use spinnbed_core::proto::scp::{ReplyKind, ReplyMessage, Request, RequestMessage};
use spinnbed_core::proto::sdp;
use spinnbed_core::time::{Duration, Instant};
use spinnbed_emulator::{BOOT_PORT, Config, Emulator, SCP_PORT};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Where the test host sends from.
pub const HOST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40000);

/// Decodes a hex fixture.
pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Encodes bytes as hex.
pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// rig's and spinnman's test data pattern (period 256).
pub fn pattern(len: usize, start: usize) -> Vec<u8> {
    (start..start + len).map(|i| (3 + 7 * i) as u8).collect()
}

/// The single-board machine of the captures: BMP 127.0.0.3, board 127.0.0.2.
pub fn single_board() -> Machine {
    Machine::single_board("single", Ipv4Addr::new(127, 0, 0, 3), Ipv4Addr::new(127, 0, 0, 2)).unwrap()
}

/// A `w` × `h` triad machine on 127.1.0.0 (BMP (c, f) at 127.1.(5c+f).0, boards at .8b+1).
pub fn machine(name: &str, w: u16, h: u16) -> Machine {
    let spec = MachineSpec {
        addressing: Addressing::Scheme(IpScheme::standard(Ipv4Addr::new(127, 1, 0, 0))),
        ..MachineSpec::new(name, w, h)
    };
    Machine::new(spec).unwrap()
}

/// A synthetic boot image of `len` bytes.
pub fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// The emulator plus virtual time.
pub struct Rig {
    pub emu: Emulator,
    pub machines: Vec<Machine>,
    pub now: Instant,
}

impl Rig {
    pub fn new(machines: Vec<Machine>) -> Rig {
        Rig::with_config(machines, Config::default())
    }

    pub fn with_config(machines: Vec<Machine>, config: Config) -> Rig {
        let emu = Emulator::new(&machines, config);
        Rig {
            emu,
            machines,
            now: Instant::ZERO,
        }
    }

    /// Everything waiting to be sent.
    pub fn drain(&mut self) -> Vec<Datagram> {
        std::iter::from_fn(|| self.emu.poll_transmit()).collect()
    }

    /// Sends one datagram from [`HOST`] now and returns what came out at once.
    pub fn send(&mut self, dst: SocketAddrV4, payload: Vec<u8>) -> Vec<Datagram> {
        self.send_from(HOST, dst, payload)
    }

    pub fn send_from(&mut self, src: SocketAddrV4, dst: SocketAddrV4, payload: Vec<u8>) -> Vec<Datagram> {
        self.emu.handle_datagram(self.now, Datagram { src, dst, payload });
        self.drain()
    }

    /// Lets `d` pass, running timers on the way; returns what came out.
    pub fn advance(&mut self, d: Duration) -> Vec<Datagram> {
        let end = self.now + d;
        let mut out = Vec::new();
        while let Some(t) = self.emu.poll_timeout() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.emu.handle_timeout(t);
            out.extend(self.drain());
        }
        self.now = end;
        out
    }

    /// Sends a request and expects exactly one reply, as soon as the emulator sends it (when
    /// SC&MP's or the BMP's service of it completes; the clock moves to then).
    pub fn request_one(&mut self, dst: SocketAddrV4, payload: Vec<u8>) -> Datagram {
        let mut out = self.send(dst, payload.clone());
        let give_up = self.now + Duration::from_secs(1);
        while out.is_empty() {
            match self.emu.poll_timeout() {
                Some(t) if t <= give_up => {
                    self.now = self.now.max(t);
                    self.emu.handle_timeout(t);
                    out.extend(self.drain());
                }
                _ => break,
            }
        }
        assert_eq!(out.len(), 1, "one reply to {} (got {out:?})", to_hex(&payload));
        let d = out.into_iter().next().unwrap();
        assert_eq!(d.src, dst, "reply from where the request went");
        assert_eq!(d.dst, HOST, "reply to the requester");
        d
    }

    /// Sends a typed request to `dst` (SCP port) with `header` and returns its one reply.
    pub fn call(&mut self, ip: Ipv4Addr, header: sdp::Repr, seq: u16, request: Request<'_>) -> Datagram {
        let bytes = encode(header, seq, request);
        self.request_one(SocketAddrV4::new(ip, SCP_PORT), bytes)
    }

    /// Powers on every board of every frame of machine `m` (through each BMP, board 0's mask)
    /// and waits until they are up.
    pub fn power_all(&mut self, m: usize) {
        let bmps: Vec<_> = self.machines[m].bmps().collect();
        for (_, ip) in bmps {
            let req = encode(
                sdp::Repr::request(sdp::Address::scp(0, 0, 0)),
                1,
                Request::Power {
                    on: true,
                    delay_ms: 0,
                    boards: 0x00FF_FFFF,
                },
            );
            assert!(
                self.send(SocketAddrV4::new(ip, SCP_PORT), req).is_empty(),
                "power reply is delayed"
            );
        }
        let replies = self.advance(Duration::from_secs(6));
        assert!(!replies.is_empty());
    }

    /// Sends the whole boot sequence for a `len`-byte image to a board IP.
    pub fn boot(&mut self, ip: Ipv4Addr, len: usize) {
        let packets = boot::boot_packets(&image(len), &SystemVariables::spinnman(1_700_000_000)).unwrap();
        for p in packets {
            assert!(
                self.send(SocketAddrV4::new(ip, BOOT_PORT), p).is_empty(),
                "boot packets are never answered"
            );
            self.advance(Duration::from_millis(10));
        }
    }

    /// Boots a board and waits for SC&MP.
    pub fn boot_and_wait(&mut self, ip: Ipv4Addr) {
        self.boot(ip, 29_868);
        self.advance(Duration::from_secs(4));
    }

    pub fn board_ip(&self, m: usize, b: Board) -> Ipv4Addr {
        self.machines[m].board_ip(b).unwrap()
    }
}

/// Encodes a request datagram.
pub fn encode(header: sdp::Repr, seq: u16, request: Request<'_>) -> Vec<u8> {
    let msg = RequestMessage {
        sdp: header,
        seq,
        request,
    };
    let mut buf = vec![0u8; sdp::MAX_UDP_PAYLOAD_LEN];
    let n = msg.emit_udp(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// Parses a reply as the reply to `request_bytes`.
pub fn parse_reply<'a>(request_bytes: &[u8], reply: &'a [u8]) -> ReplyMessage<'a> {
    let req = RequestMessage::parse_udp(request_bytes).expect("request parses");
    ReplyMessage::parse_udp(reply, req.request.reply_kind())
        .unwrap_or_else(|e| panic!("reply {} does not parse: {e}", to_hex(reply)))
}

/// Parses a reply under `kind`.
pub fn parse_as(reply: &[u8], kind: ReplyKind) -> ReplyMessage<'_> {
    ReplyMessage::parse_udp(reply, kind).unwrap_or_else(|e| panic!("reply {} does not parse: {e}", to_hex(reply)))
}

/// A request header to chip (x, y), core `cpu`, as rig sends it.
pub fn to_chip(x: u8, y: u8, cpu: u8) -> sdp::Repr {
    sdp::Repr::request(sdp::Address::scp(x, y, cpu))
}

pub fn scp(ip: Ipv4Addr) -> SocketAddrV4 {
    SocketAddrV4::new(ip, SCP_PORT)
}
