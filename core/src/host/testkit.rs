//! Test kit for the host side: a tiny fake network of SpiNNaker boards and BMPs that answers
//! SCP requests after a fixed delay (and can drop chosen datagrams), and a deterministic
//! virtual-time loop that moves datagrams between it and a host-side state machine.

use super::runner::Host;
use super::scp::ScpClient;
use super::stack::HostStack;
use super::{SCP_PORT, ScpRequest};
use crate::proto::boot;
use crate::proto::scp::{CoreLocation, Reply, ReplyMessage, Request, RequestMessage, ReturnCode, VersionReply};
use crate::proto::sdp;
use crate::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};

/// `ip:port`.
pub(crate) fn addr(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// The IP of test board `i`.
pub(crate) fn board_ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, i)
}

/// The IP of test BMP `i`.
pub(crate) fn bmp_ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 2, i)
}

/// The sequence number of a request datagram.
pub(crate) fn seq_of(d: &[u8]) -> u16 {
    u16::from_le_bytes([d[12], d[13]])
}

/// CMD_VER to (255, 255, 0).
pub(crate) fn sver_request() -> ScpRequest {
    ScpRequest::new(sdp::Address::ROOT_MONITOR, &Request::Version).unwrap()
}

/// A WRITE of `len` pattern bytes at `addr` on chip (0, 0).
pub(crate) fn write_request(addr: u32, len: usize) -> ScpRequest {
    let data: Vec<u8> = (0..len).map(|i| (3 + 7 * i) as u8).collect();
    ScpRequest::new(sdp::Address::scp(0, 0, 0), &Request::write(addr, &data)).unwrap()
}

/// Decodes a hex string.
pub(crate) fn hex(s: &str) -> Vec<u8> {
    crate::proto::sdp::tests::hex(s)
}

/// Anything the harness can drive.
pub(crate) trait Sut {
    fn sut_datagram(&mut self, now: Instant, from: SocketAddrV4, payload: &[u8]);
    fn sut_timeout(&mut self, now: Instant);
    fn sut_transmit(&mut self) -> Option<(SocketAddrV4, Vec<u8>)>;
    fn sut_next(&self) -> Option<Instant>;
    fn sut_idle(&self) -> bool;
}

impl Sut for ScpClient {
    fn sut_datagram(&mut self, now: Instant, _from: SocketAddrV4, payload: &[u8]) {
        self.handle_datagram(now, payload);
    }
    fn sut_timeout(&mut self, now: Instant) {
        self.handle_timeout(now);
    }
    fn sut_transmit(&mut self) -> Option<(SocketAddrV4, Vec<u8>)> {
        self.poll_transmit()
    }
    fn sut_next(&self) -> Option<Instant> {
        self.poll_timeout()
    }
    fn sut_idle(&self) -> bool {
        self.in_flight() == 0 && self.queued() == 0
    }
}

impl Sut for HostStack {
    fn sut_datagram(&mut self, now: Instant, from: SocketAddrV4, payload: &[u8]) {
        self.handle_datagram(now, from, payload);
    }
    fn sut_timeout(&mut self, now: Instant) {
        self.handle_timeout(now);
    }
    fn sut_transmit(&mut self) -> Option<(SocketAddrV4, Vec<u8>)> {
        self.poll_transmit()
    }
    fn sut_next(&self) -> Option<Instant> {
        self.poll_timeout()
    }
    fn sut_idle(&self) -> bool {
        self.is_idle()
    }
}

impl Sut for Host {
    fn sut_datagram(&mut self, now: Instant, from: SocketAddrV4, payload: &[u8]) {
        let d = crate::datagram::Datagram {
            src: from,
            dst: self.config().local,
            payload: payload.to_vec(),
        };
        self.handle_datagram(now, &d);
    }
    fn sut_timeout(&mut self, now: Instant) {
        self.handle_timeout(now);
    }
    fn sut_transmit(&mut self) -> Option<(SocketAddrV4, Vec<u8>)> {
        self.poll_transmit().map(|d| (d.dst, d.payload))
    }
    fn sut_next(&self) -> Option<Instant> {
        self.poll_timeout()
    }
    fn sut_idle(&self) -> bool {
        self.is_idle()
    }
}

/// One datagram the host sent.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub at: Instant,
    pub dst: SocketAddrV4,
    pub bytes: Vec<u8>,
}

/// A fake board's boot state.
#[derive(Debug, Clone, Default)]
pub(crate) struct BoardState {
    /// Ignores SCP until booted.
    pub unbooted: bool,
    /// Boot CONTROL packets to ignore (a boot that "does not take").
    pub ignore_boots: usize,
    /// When netinit finishes (p2p ≠ 0xFFFF from then on).
    pub booted_at: Option<Instant>,
    /// Blocks received in the current flood fill.
    pub blocks: BTreeSet<u8>,
    pub started: bool,
}

/// The fake BMP's state.
#[derive(Debug, Clone, Default)]
pub(crate) struct BmpState {
    /// FLAG values to return, per (board, FPGA), in order; then the FPGA number.
    pub flags: BTreeMap<(u8, u8), VecDeque<u32>>,
    /// (time, on, board mask, arg1) of every power command received.
    pub power: Vec<(Instant, bool, u32, u32)>,
    /// (board, FPGA, address, value) of every register write.
    pub writes: Vec<(u8, u8, u32, u32)>,
    /// BMP software version string.
    pub version: Option<&'static str>,
}

/// A fake network of boards and BMPs.
#[derive(Debug, Clone)]
pub(crate) struct Net {
    pub clock: Instant,
    delay: Duration,
    silent: bool,
    rcs: VecDeque<ReturnCode>,
    drop_req: BTreeSet<usize>,
    drop_rep: BTreeSet<usize>,
    n_req: usize,
    n_rep: usize,
    in_flight: BTreeMap<(Instant, u64), (SocketAddrV4, Vec<u8>)>,
    next_id: u64,
    pub log: Vec<Sent>,
    pending: BTreeSet<(SocketAddrV4, u16)>,
    max_pending: usize,
    pub memory: BTreeMap<u32, u8>,
    pub boards: BTreeMap<Ipv4Addr, BoardState>,
    pub bmps: BTreeMap<Ipv4Addr, BmpState>,
    /// Power-on reply delay of the BMPs.
    pub power_delay: Duration,
    /// Time from boot CONTROL to p2p ≠ 0xFFFF.
    pub boot_time: Duration,
    /// Drop every request to these IPs.
    pub dead: BTreeSet<Ipv4Addr>,
    stalled: bool,
    /// Probability (per million) of losing each SCP request and each reply.
    loss_ppm: u32,
    rng: u64,
    /// Largest extra random delay of a reply (reorders replies).
    jitter: Duration,
    jitter_seed: u64,
    copies: BTreeMap<(SocketAddrV4, u16), u32>,
}

impl Net {
    pub(crate) fn new() -> Net {
        Net {
            clock: Instant::ZERO,
            delay: Duration::ZERO,
            silent: false,
            rcs: VecDeque::new(),
            drop_req: BTreeSet::new(),
            drop_rep: BTreeSet::new(),
            n_req: 0,
            n_rep: 0,
            in_flight: BTreeMap::new(),
            next_id: 0,
            log: Vec::new(),
            pending: BTreeSet::new(),
            max_pending: 0,
            memory: BTreeMap::new(),
            boards: BTreeMap::new(),
            bmps: BTreeMap::new(),
            power_delay: Duration::ZERO,
            boot_time: Duration::from_millis(500),
            dead: BTreeSet::new(),
            stalled: false,
            loss_ppm: 0,
            rng: 0,
            jitter: Duration::ZERO,
            jitter_seed: 0,
            copies: BTreeMap::new(),
        }
    }

    /// Loses each SCP request and each reply with probability `p` (seeded, deterministic).
    pub(crate) fn with_loss(mut self, p: f64, seed: u64) -> Net {
        self.loss_ppm = (p * 1e6) as u32;
        self.rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        self
    }

    /// Delays each reply by a further random 0..=`jitter` (seeded), so replies reorder.
    pub(crate) fn with_jitter(mut self, jitter: Duration, seed: u64) -> Net {
        self.jitter = jitter;
        self.jitter_seed = seed;
        self
    }

    fn random(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32
    }

    fn lose(&mut self) -> bool {
        if self.loss_ppm == 0 {
            return false;
        }
        (self.random() % 1_000_000) < u64::from(self.loss_ppm)
    }

    /// Replies arrive `d` after the request was sent.
    pub(crate) fn with_delay(mut self, d: Duration) -> Net {
        self.delay = d;
        self
    }

    /// Never answers.
    pub(crate) fn silent(mut self) -> Net {
        self.silent = true;
        self
    }

    /// The next SCP requests are answered with these return codes (then RC_OK).
    pub(crate) fn with_rcs(mut self, rcs: impl IntoIterator<Item = ReturnCode>) -> Net {
        self.rcs.extend(rcs);
        self
    }

    /// Drops the SCP requests with these indices (0 = the first received).
    pub(crate) fn drop_requests(mut self, idx: impl IntoIterator<Item = usize>) -> Net {
        self.drop_req.extend(idx);
        self
    }

    /// Drops the replies with these indices (0 = the first sent).
    pub(crate) fn drop_replies(mut self, idx: impl IntoIterator<Item = usize>) -> Net {
        self.drop_rep.extend(idx);
        self
    }

    /// Makes `ip` a BMP.
    pub(crate) fn with_bmp(mut self, ip: Ipv4Addr) -> Net {
        self.bmps.insert(ip, BmpState::default());
        self
    }

    /// Makes `ip` an unbooted board.
    pub(crate) fn with_unbooted(mut self, ip: Ipv4Addr) -> Net {
        self.boards.insert(
            ip,
            BoardState {
                unbooted: true,
                ..BoardState::default()
            },
        );
        self
    }

    /// Sets the clock (before submitting at a later time).
    pub(crate) fn run_from(&mut self, t: Instant) {
        self.clock = t;
    }

    /// (time, seq) of every SCP datagram sent by the host.
    pub(crate) fn sent_seqs(&self) -> Vec<(Instant, u16)> {
        self.sent_scp().iter().map(|s| (s.at, seq_of(&s.bytes))).collect()
    }

    /// Every SCP datagram sent by the host.
    pub(crate) fn sent_scp(&self) -> Vec<Sent> {
        self.log.iter().filter(|s| s.dst.port() == SCP_PORT).cloned().collect()
    }

    /// Every boot datagram sent by the host.
    pub(crate) fn sent_boot(&self) -> Vec<Sent> {
        self.log
            .iter()
            .filter(|s| s.dst.port() == boot::PORT)
            .cloned()
            .collect()
    }

    /// Most requests to one endpoint received and not yet answered.
    pub(crate) fn max_outstanding(&self) -> usize {
        self.max_pending
    }

    /// True while datagrams are on their way.
    pub(crate) fn busy(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Feeds a CMD_VER reply with `seq` straight to a client.
    pub(crate) fn reply_now(&mut self, c: &mut ScpClient, now: Instant, seq: u16) -> bool {
        let reply = Reply::Version(scamp_version(0));
        let d = emit_reply(sdp::Repr::request(sdp::Address::ROOT_MONITOR).reply(), seq, &reply);
        c.handle_datagram(now, &d)
    }

    fn schedule(&mut self, at: Instant, from: SocketAddrV4, bytes: Vec<u8>) {
        self.next_id += 1;
        self.in_flight.insert((at, self.next_id), (from, bytes));
    }

    /// A datagram from the host.
    pub(crate) fn accept(&mut self, now: Instant, dst: SocketAddrV4, bytes: Vec<u8>) {
        self.log.push(Sent {
            at: now,
            dst,
            bytes: bytes.clone(),
        });
        if dst.port() == boot::PORT {
            self.boot_packet(now, *dst.ip(), &bytes);
            return;
        }
        if dst.port() != SCP_PORT {
            return;
        }
        let index = self.n_req;
        self.n_req += 1;
        if self.silent || self.drop_req.contains(&index) || self.dead.contains(dst.ip()) || self.lose() {
            return;
        }
        let Ok(msg) = RequestMessage::parse_udp(&bytes) else {
            return;
        };
        let ip = *dst.ip();
        if self
            .boards
            .get(&ip)
            .is_some_and(|b| b.unbooted && b.booted_at.is_none())
        {
            return;
        }
        let mut extra = Duration::ZERO;
        let rc = self.rcs.pop_front().unwrap_or(ReturnCode::Ok);
        let data_buf: Vec<u8>;
        let reply = if !rc.is_ok() {
            Reply::Error { rc, body: &[] }
        } else if let Some(bmp) = self.bmps.get_mut(&ip) {
            let board = msg.sdp.dest.cpu;
            match msg.request {
                Request::Version => Reply::Version(VersionReply {
                    arg1: u32::from(board),
                    version: 0xFFFF,
                    buffer_size: 256,
                    build_date: 1_700_000_000,
                    id: "BC&MP/Spin5-BMP",
                    version_string: Some(bmp.version.unwrap_or("2.1.2")),
                }),
                Request::Power { on, boards, .. } => {
                    let (_, a1, ..) = msg.request.to_parts();
                    bmp.power.push((now, on, boards, a1));
                    if on {
                        extra = self.power_delay;
                    }
                    Reply::Empty
                }
                Request::LinkRead { addr, link, .. } => {
                    let v = if addr == crate::proto::scp::fpga::FLAG_REGISTER {
                        bmp.flags
                            .get_mut(&(board, link))
                            .and_then(|q| q.pop_front())
                            .unwrap_or(u32::from(link))
                    } else {
                        0
                    };
                    data_buf = v.to_le_bytes().to_vec();
                    Reply::Data(&data_buf)
                }
                Request::LinkWrite { addr, link, data } => {
                    let v = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                    bmp.writes.push((board, link, addr, v));
                    Reply::Empty
                }
                _ => Reply::Empty,
            }
        } else {
            let booting = self.boards.get(&ip).and_then(|b| b.booted_at).is_some_and(|t| now < t);
            match msg.request {
                Request::Version => Reply::Version(scamp_version(if booting { 0xFFFF } else { 0 })),
                Request::Read { addr, len, .. } => {
                    if addr == 0xF500_7F02 && len == 2 {
                        data_buf = vec![8, 8];
                    } else {
                        data_buf = (0..len)
                            .map(|i| self.memory.get(&addr.wrapping_add(i)).copied().unwrap_or(0))
                            .collect();
                    }
                    Reply::Data(&data_buf)
                }
                Request::Write { addr, data, .. } => {
                    for (i, b) in data.iter().enumerate() {
                        self.memory.insert(addr.wrapping_add(i as u32), *b);
                    }
                    Reply::Empty
                }
                _ => Reply::Empty,
            }
        };
        let out = emit_reply(msg.sdp.reply(), msg.seq, &reply);
        let rindex = self.n_rep;
        self.n_rep += 1;
        if self.drop_rep.contains(&rindex) || self.lose() {
            return;
        }
        if self.pending.insert((dst, msg.seq)) {
            let n = self.pending.iter().filter(|(a, _)| *a == dst).count();
            self.max_pending = self.max_pending.max(n);
        }
        if self.jitter > Duration::ZERO {
            // A function of (endpoint, seq, copy number), so that policies sending the same
            // requests see the same delays (paired comparisons).
            let copy = self.copies.entry((dst, msg.seq)).or_insert(0);
            *copy += 1;
            let mut h = (u64::from(u32::from(*dst.ip())) << 20) ^ (u64::from(msg.seq) << 4) ^ u64::from(*copy);
            h ^= self.jitter_seed;
            h = h.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            h ^= h >> 29;
            h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            h ^= h >> 32;
            extra = extra + Duration(h % (self.jitter.as_micros() + 1));
        }
        self.schedule(now + self.delay + extra, dst, out);
    }

    fn boot_packet(&mut self, now: Instant, ip: Ipv4Addr, bytes: &[u8]) {
        if self.silent {
            return;
        }
        let Ok(p) = boot::Packet::new_checked(bytes) else {
            return;
        };
        let Ok(repr) = boot::Repr::parse(&p) else { return };
        let boot_time = self.boot_time;
        let b = self.boards.entry(ip).or_default();
        match repr {
            boot::Repr::FloodFillStart { .. } => {
                b.started = true;
                b.blocks.clear();
            }
            boot::Repr::FloodFillBlock { index, .. } => {
                b.blocks.insert(index);
            }
            boot::Repr::FloodFillControl { .. } if b.started => {
                b.started = false;
                if b.ignore_boots > 0 {
                    b.ignore_boots -= 1;
                } else {
                    b.booted_at = Some(now + boot_time);
                }
            }
            _ => {}
        }
    }

    /// One step of the virtual-time loop: send what the host has, move time to the next event,
    /// deliver due datagrams, fire the host's timeout. Returns the new time.
    pub(crate) fn step<S: Sut>(&mut self, sut: &mut S, now: Instant, limit: Instant) -> Instant {
        while let Some((dst, bytes)) = sut.sut_transmit() {
            self.accept(now, dst, bytes);
        }
        let next_net = self.in_flight.keys().next().map(|(t, _)| *t);
        let next = match (sut.sut_next(), next_net) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(next) = next.filter(|t| *t <= limit) else {
            self.stalled = true;
            return now;
        };
        let now = now.max(next);
        while let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (from, bytes) = entry.remove();
            if bytes.len() >= 14 {
                self.pending.remove(&(from, seq_of_reply(&bytes)));
            }
            sut.sut_datagram(now, from, &bytes);
            while let Some((dst, bytes)) = sut.sut_transmit() {
                self.accept(now, dst, bytes);
            }
        }
        if sut.sut_next().is_some_and(|t| t <= now) {
            sut.sut_timeout(now);
            // Liveness: a deadline that does not move would make a driver spin.
            let next = sut.sut_next();
            assert!(
                next.is_none_or(|t| t > now),
                "deadline {next:?} not after {now} after handle_timeout"
            );
        }
        while let Some((dst, bytes)) = sut.sut_transmit() {
            self.accept(now, dst, bytes);
        }
        self.clock = now;
        now
    }
}

fn seq_of_reply(d: &[u8]) -> u16 {
    u16::from_le_bytes([d[12], d[13]])
}

/// SC&MP 4.0.0's sver with P2P address `p2p`.
pub(crate) fn scamp_version(p2p: u16) -> VersionReply<'static> {
    VersionReply {
        arg1: CoreLocation {
            p2p,
            physical_cpu: 1,
            virtual_cpu: 0,
        }
        .to_arg1(),
        version: 0xFFFF,
        buffer_size: 256,
        build_date: 1_700_000_000,
        id: "SC&MP/SpiNNaker",
        version_string: Some("4.0.0"),
    }
}

/// A reply datagram.
pub(crate) fn emit_reply(mut header: sdp::Repr, seq: u16, reply: &Reply<'_>) -> Vec<u8> {
    header.tag = 8;
    let msg = ReplyMessage {
        sdp: header,
        seq,
        reply: *reply,
    };
    let mut buf = vec![0u8; msg.udp_len()];
    let n = msg.emit_udp(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// Runs until the host is idle and nothing is in flight (or `limit`); returns the time of the
/// last step.
pub(crate) fn run_until_idle<S: Sut>(sut: &mut S, net: &mut Net, limit: Instant) -> Instant {
    net.stalled = false;
    let mut now = net.clock;
    loop {
        while let Some((dst, bytes)) = sut.sut_transmit() {
            net.accept(now, dst, bytes);
        }
        if sut.sut_idle() && !net.busy() {
            return now;
        }
        now = net.step(sut, now, limit);
        if net.stalled {
            return now;
        }
    }
}
