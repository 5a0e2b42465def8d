//! SC&MP's and the BMP's timing model ([`ScampTiming`]) in virtual time: windowed transfers take
//! the time the model's parameters say, transient tags and message buffers bound what a board
//! takes in, P2P forwarding costs what `p2p_time` says and overlaps across chips, the BMP is a
//! serial server with four receive buffers and eight tags, machines have their own settings,
//! and `enabled = false` is the zero-time emulator.

mod common;

use common::*;
use spinnbed_core::datagram::Datagram;
use spinnbed_core::geometry::{Board, Chip};
use spinnbed_core::proto::scp::{ReplyKind, Request};
use spinnbed_core::proto::sdp;
use spinnbed_core::time::{Duration, Instant};
use spinnbed_emulator::{Config, ScampOp, ScampTiming};
use std::collections::VecDeque;
use std::net::Ipv4Addr;

const BMP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const BOARD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const SDRAM: u32 = 0x6100_0000;
const MIB: usize = 1 << 20;

fn booted(config: Config) -> Rig {
    let mut rig = Rig::with_config(vec![single_board()], config);
    rig.power_all(0);
    rig.boot_and_wait(BOARD);
    rig
}

/// A host `latency` away (each way) moving `data` to (write) or `len` bytes from (read) chip
/// (0, 0)'s SDRAM in 256-byte chunks with `window` requests in flight; the network is a fixed
/// delay, so every datagram arrives exactly `latency` after it was sent. Returns the time from
/// the first request to the last reply, and the data read.
struct Client<'a> {
    rig: &'a mut Rig,
    latency: Duration,
    to_board: VecDeque<(Instant, Datagram)>,
    to_host: VecDeque<(Instant, Datagram)>,
}

enum Op<'d> {
    Read(usize),
    Write(&'d [u8]),
}

impl Client<'_> {
    fn request(&self, seq: u16, op: &Op<'_>, chunk: usize) -> Vec<u8> {
        let addr = SDRAM + (chunk * 256) as u32;
        let req = match op {
            Op::Read(len) => Request::read(addr, (len - chunk * 256).min(256) as u32),
            Op::Write(data) => Request::write(addr, &data[chunk * 256..((chunk + 1) * 256).min(data.len())]),
        };
        encode(to_chip(0, 0, 0), seq, req)
    }

    fn transfer(&mut self, op: Op<'_>, window: usize) -> (Duration, Vec<u8>) {
        let bytes = match op {
            Op::Read(len) => len,
            Op::Write(d) => d.len(),
        };
        let chunks = bytes.div_ceil(256);
        let start = self.rig.now;
        let mut sent = 0;
        let mut done = 0;
        let mut data = vec![0u8; if matches!(op, Op::Read(_)) { bytes } else { 0 }];
        let mut by_seq = std::collections::BTreeMap::new();
        while sent < window.min(chunks) {
            by_seq.insert(sent as u16, sent);
            let d = self.datagram(self.request(sent as u16, &op, sent));
            self.to_board.push_back((start + self.latency, d));
            sent += 1;
        }
        while done < chunks {
            let next = [
                self.to_board.front().map(|x| x.0),
                self.to_host.front().map(|x| x.0),
                self.rig.emu.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min()
            .expect("something is under way");
            self.rig.now = self.rig.now.max(next);
            let now = self.rig.now;
            self.rig.emu.handle_timeout(now);
            while self.to_board.front().is_some_and(|x| x.0 <= now) {
                let (_, d) = self.to_board.pop_front().unwrap();
                self.rig.emu.handle_datagram(now, d);
            }
            for d in self.rig.drain() {
                self.to_host.push_back((now + self.latency, d));
            }
            while self.to_host.front().is_some_and(|x| x.0 <= now) {
                let (_, d) = self.to_host.pop_front().unwrap();
                let kind = if matches!(op, Op::Read(_)) {
                    ReplyKind::Data
                } else {
                    ReplyKind::Empty
                };
                let msg = parse_as(&d.payload, kind);
                let chunk = by_seq.remove(&msg.seq).expect("a reply to a request in flight");
                if let spinnbed_core::proto::scp::Reply::Data(bytes) = msg.reply {
                    data[chunk * 256..chunk * 256 + bytes.len()].copy_from_slice(bytes);
                }
                done += 1;
                if sent < chunks {
                    by_seq.insert(sent as u16, sent);
                    let d = self.datagram(self.request(sent as u16, &op, sent));
                    self.to_board.push_back((now + self.latency, d));
                    sent += 1;
                }
            }
        }
        (self.rig.now - start, data)
    }

    fn datagram(&self, payload: Vec<u8>) -> Datagram {
        Datagram {
            src: HOST,
            dst: scp(BOARD),
            payload,
        }
    }
}

fn client(rig: &mut Rig, latency: Duration) -> Client<'_> {
    Client {
        rig,
        latency,
        to_board: VecDeque::new(),
        to_host: VecDeque::new(),
    }
}

/// What the model says a transfer of `chunks` 256-byte requests takes, `window` in flight, each
/// served in `service` by one server, `latency` each way: the server is the limit when a window
/// covers a round trip (`window · S ≥ 2L + S`): the first request arrives after L, the server
/// works without a break, the last reply takes L back; else every window waits a full round trip.
fn model_time(chunks: u64, window: u64, service: Duration, latency: Duration) -> f64 {
    let (s, l) = (service.as_micros() as f64, latency.as_micros() as f64);
    let round_trip = 2.0 * l + s;
    if window as f64 * s >= round_trip {
        chunks as f64 * s + 2.0 * l
    } else {
        chunks.div_ceil(window) as f64 * round_trip
    }
}

fn within(measured: Duration, expected_us: f64, tolerance: f64) {
    let m = measured.as_micros() as f64;
    assert!(
        (m - expected_us).abs() <= tolerance * expected_us,
        "took {m} µs, the model says {expected_us} µs"
    );
}

#[test]
fn a_windowed_mib_takes_the_time_the_model_says() {
    let timing = ScampTiming::default();
    let mut rig = booted(Config::default());
    let data: Vec<u8> = (0..MIB).map(|i| (i * 7 + i / 251) as u8).collect();
    let latency = Duration::from_micros(60);
    // Window 8: the server is the limit; 256 B / 61 µs and 256 B / 65 µs are rig-scp's 32.1
    // and 29.8 Mibit/s.
    let (took, _) = client(&mut rig, latency).transfer(Op::Write(&data), 8);
    let write_256 = timing.service_time(ScampOp::Write, 256);
    within(took, model_time(4096, 8, write_256, latency), 0.05);
    let mibit = MIB as f64 * 8.0 / (1 << 20) as f64 / (took.as_micros() as f64 / 1e6);
    assert!((mibit - 32.1).abs() < 0.05 * 32.1, "write {mibit} Mibit/s");
    let (took, back) = client(&mut rig, latency).transfer(Op::Read(MIB), 8);
    assert!(back == data, "the data read back is the data written");
    let read_256 = timing.service_time(ScampOp::Read, 256);
    within(took, model_time(4096, 8, read_256, latency), 0.05);
    let mibit = MIB as f64 * 8.0 / (1 << 20) as f64 / (took.as_micros() as f64 / 1e6);
    assert!((mibit - 29.8).abs() < 0.05 * 29.8, "read {mibit} Mibit/s");
    // Window 1: one round trip (and one service) per chunk.
    let (took, _) = client(&mut rig, latency).transfer(Op::Read(64 * 1024), 1);
    within(took, model_time(256, 1, read_256, latency), 0.05);
    // Window 2 at this latency is still round-trip bound (2 × 65 < 120 + 65).
    let (took, _) = client(&mut rig, latency).transfer(Op::Read(64 * 1024), 2);
    within(took, model_time(256, 2, read_256, latency), 0.05);
    let s = rig.emu.stats();
    assert_eq!(s.dropped(), 0, "{s}");
    assert!(s.scamp_busy_us > 0 && s.scamp_wait_us > 0, "{s}");
    assert!(s.to_string().contains("SC&MP servers: busy"), "{s}");
}

#[test]
fn a_ninth_request_while_eight_tags_are_held_is_dropped_and_counted() {
    let timing = ScampTiming::default();
    let mut rig = booted(Config::default());
    let start = rig.now;
    for seq in 0..9u16 {
        let out = rig.send(scp(BOARD), encode(to_chip(0, 0, 0), seq, Request::read(SDRAM, 256)));
        assert!(out.is_empty(), "served later");
    }
    assert_eq!(rig.emu.stats().dropped_tags_busy, 1);
    // One server: the k-th reply leaves k service times after they arrived.
    let s = timing.service_time(ScampOp::Read, 256);
    let mut seqs = Vec::new();
    for k in 1..=8u64 {
        let out = rig.advance(start + Duration(k * s.as_micros()) - rig.now);
        assert_eq!(out.len(), 1, "reply {k} at {k} × {s:?}");
        seqs.push(parse_as(&out[0].payload, ReplyKind::Data).seq);
    }
    assert_eq!(
        seqs,
        (0..8).collect::<Vec<_>>(),
        "in order; the ninth was dropped unexecuted"
    );
    // The tags were freed when the replies left: eight more get through.
    for seq in 10..18u16 {
        rig.send(scp(BOARD), encode(to_chip(0, 0, 0), seq, Request::read(SDRAM, 256)));
    }
    assert_eq!(rig.advance(Duration::from_millis(1)).len(), 8);
    assert_eq!(rig.emu.stats().dropped_tags_busy, 1);
}

#[test]
fn message_buffers_bound_the_requests_that_take_no_tag() {
    let timing = ScampTiming::default();
    let mut rig = booted(Config::default());
    // 40 writes without the reply flag, each to its own word: they need no tag, only a buffer.
    for i in 0..40u32 {
        let mut h = to_chip(0, 0, 0);
        h.flags = sdp::Flags::NO_REPLY;
        let word = (i + 1).to_le_bytes();
        rig.send(scp(BOARD), encode(h, i as u16, Request::write(SDRAM + 4 * i, &word)));
    }
    assert_eq!(rig.emu.stats().dropped_buffers_full, 8);
    assert!(rig.emu.stats().scamp_held_max >= u64::from(timing.msg_buffers));
    rig.advance(Duration::from_millis(5));
    let words = rig
        .emu
        .sdram("single", Board::new(0, 0, 0), Chip::new(0, 0), SDRAM, 160);
    for i in 0..40usize {
        let v = u32::from_le_bytes(words[4 * i..4 * i + 4].try_into().unwrap());
        let want = if i < 32 { i as u32 + 1 } else { 0 };
        assert_eq!(
            v, want,
            "write {i}: the first 32 were taken, the rest dropped unexecuted"
        );
    }
    // Their buffers are free again once served.
    let r = rig.call(BOARD, to_chip(0, 0, 0), 99, Request::Version);
    assert_eq!(parse_as(&r.payload, ReplyKind::Version).seq, 99);
}

#[test]
fn forwarded_requests_pay_for_p2p_and_overlap_across_chips() {
    let t = ScampTiming::default();
    let mut rig = booted(Config::default());
    let read = |x: u8, y: u8, seq: u16| encode(to_chip(x, y, 0), seq, Request::read(SDRAM, 256));
    let (req_len, reply_len) = (sdp::HEADER_LEN + 16, sdp::HEADER_LEN + 4 + 256);
    // One read from chip (1, 1), one hop away: the Ethernet chip serves it and pushes the
    // request; chip (1, 1) pushes the 256-byte reply back.
    let start = rig.now;
    rig.send(scp(BOARD), read(1, 1, 1));
    let eth = t.service_time(ScampOp::Read, 256) + t.p2p_time(req_len, 1);
    let one = eth + t.p2p_time(reply_len, 1);
    assert!(rig.advance(Duration(one.0 - 1)).is_empty());
    assert_eq!(rig.advance(Duration(1)).len(), 1, "answered after {one:?}");
    assert_eq!(rig.now - start, one);
    // Two reads from one chip queue on that chip's transmitter; reads from two chips overlap.
    let start = rig.now;
    rig.send(scp(BOARD), read(1, 1, 2));
    rig.send(scp(BOARD), read(1, 1, 3));
    let same_chip = eth + t.p2p_time(reply_len, 1) + t.p2p_time(reply_len, 1);
    assert_eq!(rig.advance(Duration(same_chip.0 - 1)).len(), 1);
    assert_eq!(rig.advance(Duration(1)).len(), 1);
    assert_eq!(rig.now - start, same_chip);
    rig.send(scp(BOARD), read(1, 1, 4));
    rig.send(scp(BOARD), read(1, 0, 5));
    let two_chips = eth + eth + t.p2p_time(reply_len, 1);
    assert_eq!(rig.advance(Duration(two_chips.0 - 1)).len(), 1);
    assert_eq!(rig.advance(Duration(1)).len(), 1);
    assert!(two_chips < same_chip, "overlapping across chips is faster");
    assert!(rig.emu.stats().p2p_busy_us > 0);
}

#[test]
fn the_bmp_serves_one_request_at_a_time_with_four_receive_buffers() {
    let t = ScampTiming::default();
    let mut rig = Rig::new(vec![single_board()]);
    let ver = |seq: u16| encode(to_chip(0, 0, 0), seq, Request::Version);
    let start = rig.now;
    for seq in 0..6u16 {
        assert!(rig.send(scp(BMP), ver(seq)).is_empty());
    }
    // One in service, four waiting, the sixth lost.
    assert_eq!(rig.emu.stats().dropped_bmp_busy, 1);
    assert_eq!(rig.emu.stats().bmp_waiting_max, 4);
    let mut seqs = Vec::new();
    for k in 1..=5u64 {
        let out = rig.advance(start + Duration(k * t.bmp_service.as_micros()) - rig.now);
        assert_eq!(out.len(), 1, "reply {k}");
        seqs.push(parse_as(&out[0].payload, ReplyKind::Version).seq);
    }
    assert_eq!(seqs, vec![0, 1, 2, 3, 4]);
    // A request for another board of the frame pays for CAN both ways.
    let mut rig = Rig::new(vec![machine("m", 1, 1)]);
    let bmp = rig.machines[0].bmps().next().unwrap().1;
    for board in [0u8, 2] {
        let start = rig.now;
        let req = encode(to_chip(0, 0, board), 7, Request::Version);
        let r = rig.request_one(scp(bmp), req.clone());
        let lens = (req.len() - sdp::PADDING_LEN, r.payload.len() - sdp::PADDING_LEN);
        assert_eq!(rig.now - start, t.bmp_service_time(board, lens.0, lens.1));
    }
    assert!(t.bmp_service_time(2, 24, 60) > t.bmp_service_time(0, 24, 60) + Duration::from_millis(1));
}

#[test]
fn bmp_power_replies_keep_their_contract_and_hold_a_tag() {
    let mut rig = Rig::new(vec![single_board()]);
    let power = |seq: u16| {
        encode(
            to_chip(0, 0, 0),
            seq,
            Request::Power {
                on: true,
                delay_ms: 0,
                boards: 1,
            },
        )
    };
    // Board 0's power-on is answered after its power-on time (5 s), as before.
    let start = rig.now;
    assert!(rig.send(scp(BMP), power(1)).is_empty());
    assert!(rig.advance(Duration::from_millis(4_999)).is_empty());
    assert_eq!(rig.advance(Duration::from_millis(1)).len(), 1);
    assert_eq!(rig.now - start, Duration::from_secs(5));
    // Eight pending power-on replies hold the BMP's eight transient tags: a ninth request is
    // dropped; once they are answered, tags are free again.
    for seq in 0..8u16 {
        assert!(rig.send(scp(BMP), power(seq)).is_empty());
        rig.advance(Duration::from_millis(1));
    }
    assert!(
        rig.send(scp(BMP), encode(to_chip(0, 0, 0), 9, Request::Version))
            .is_empty()
    );
    rig.advance(Duration::from_millis(1));
    assert_eq!(rig.emu.stats().dropped_bmp_tags_busy, 1);
    assert_eq!(rig.advance(Duration::from_secs(6)).len(), 8);
    rig.request_one(scp(BMP), encode(to_chip(0, 0, 0), 10, Request::Version));
}

#[test]
fn machines_have_their_own_timing() {
    let slow = ScampTiming {
        service_base: Duration::from_micros(100),
        service_read_256: Duration::from_micros(500),
        ..ScampTiming::default()
    };
    let mut config = Config::default();
    config.machine_scamp.insert("single".into(), slow);
    let mut rig = booted(config);
    let start = rig.now;
    rig.call(BOARD, to_chip(0, 0, 0), 1, Request::read(SDRAM, 256));
    assert_eq!(rig.now - start, Duration::from_micros(500));
    let start = rig.now;
    rig.call(BOARD, to_chip(0, 0, 0), 2, Request::Version);
    assert_eq!(rig.now - start, Duration::from_micros(100));
    // Another machine keeps the default.
    let mut rig = booted(Config {
        machine_scamp: [("other".to_string(), slow)].into(),
        ..Config::default()
    });
    let start = rig.now;
    rig.call(BOARD, to_chip(0, 0, 0), 1, Request::read(SDRAM, 256));
    assert_eq!(rig.now - start, Duration::from_micros(65));
}

#[test]
fn disabled_timing_is_the_zero_time_emulator() {
    let config = Config {
        scamp: ScampTiming::ideal(),
        ..Config::default()
    };
    let mut rig = booted(config);
    // Replies at once, from SC&MP and from the BMP.
    let out = rig.send(scp(BOARD), encode(to_chip(0, 0, 0), 1, Request::read(SDRAM, 256)));
    assert_eq!(out.len(), 1);
    let out = rig.send(scp(BMP), encode(to_chip(0, 0, 0), 2, Request::Version));
    assert_eq!(out.len(), 1);
    for seq in 0..6u16 {
        assert_eq!(
            rig.send(scp(BMP), encode(to_chip(0, 0, 0), seq, Request::Version))
                .len(),
            1
        );
    }
    // A forwarded request: 2 × hops × p2p_hop.
    rig.send(scp(BOARD), encode(to_chip(2, 2, 0), 3, Request::Version));
    let hop = ScampTiming::ideal().p2p_hop;
    assert!(rig.advance(Duration(4 * hop.as_micros() - 1)).is_empty());
    assert_eq!(rig.advance(Duration(1)).len(), 1);
    // No buffer limit: 40 writes without the reply flag all land.
    for i in 0..40u32 {
        let mut h = to_chip(0, 0, 0);
        h.flags = sdp::Flags::NO_REPLY;
        rig.send(
            scp(BOARD),
            encode(h, i as u16, Request::write(SDRAM + 4 * i, &[1, 0, 0, 0])),
        );
    }
    let words = rig
        .emu
        .sdram("single", Board::new(0, 0, 0), Chip::new(0, 0), SDRAM, 160);
    assert!(words.chunks(4).all(|w| w == [1, 0, 0, 0]));
    let s = rig.emu.stats();
    assert_eq!(s.dropped(), 0, "{s}");
    assert_eq!((s.scamp_busy_us, s.bmp_busy_us), (0, 0));
}

#[test]
fn switching_a_board_off_drops_its_queued_replies() {
    let mut rig = booted(Config::default());
    for seq in 0..8u16 {
        rig.send(scp(BOARD), encode(to_chip(0, 0, 0), seq, Request::read(SDRAM, 256)));
    }
    // Power off through the BMP (board 0 in the mask): the board goes off at once.
    let off = encode(
        to_chip(0, 0, 0),
        20,
        Request::Power {
            on: false,
            delay_ms: 0,
            boards: 1,
        },
    );
    rig.send(scp(BMP), off);
    let out = rig.advance(Duration::from_secs(1));
    assert_eq!(out.len(), 1, "only the BMP's reply: {out:?}");
    assert_eq!(out[0].src, scp(BMP));
    assert_eq!(rig.emu.stats().dropped_stale, 8);
}
