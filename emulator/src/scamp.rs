//! SC&MP, the monitor on core 0 of every chip, and SARK on the application cores, as seen from a
//! board's Ethernet port (UDP 17893).
//!
//! A request goes through the steps SC&MP takes (protocols.md §4): a transient IP tag is taken
//! for the reply (or the request is dropped when all eight are busy), the destination chip is
//! resolved ((255, 255) = the receiving Ethernet chip) and reached over P2P, the core and port
//! are checked, then the command runs on the target chip. The reply swaps the SDP addresses,
//! clears the reply-wanted flag, carries the transient tag and comes from the chip that handled
//! it.
//!
//! Timing ([`crate::ScampTiming`]): the request takes a message buffer and (reply-wanted, tag
//! 0xFF) a transient tag when it arrives, or is dropped; it is executed at once, and its reply is
//! scheduled for when the board's server (and, for another chip, the P2P transfers) would have
//! finished it.

use crate::bmp::seq_of;
use crate::board::{BootPhase, IpTag, NUM_TAGS, POOL_FIRST, Runtime, local_index};
use crate::chip::{ChipState, NUM_CORES, RouterEntry, SvContext, physical_core, state};
use crate::config::{ScampOp, tag_lifetime};
use crate::memory::{self, Budget, ROUTER_ENTRIES};
use crate::topology::{MachineState, chip_distance};
use crate::{Datagram, Emulator, Pending, Source, TagUse, Timer};
use spinnbed_core::geometry::{Chip, Link};
use spinnbed_core::proto::scp::{
    self, AccessType, AllocOp, ChipInfo, Command, CoreLocation, IptagFlags, IptagRecord, IptagRecords, IptagRequest,
    Reply, Request, ReturnCode, RouterOp, SignalKind, TtoInfo, VersionReply,
};
use spinnbed_core::proto::sdp::{self, Address, Flags};
use spinnbed_core::time::{Duration, Instant};
use std::net::{Ipv4Addr, SocketAddrV4};

/// ID string of SC&MP.
const SCAMP_ID: &str = "SC&MP/SpiNNaker";
/// ID string of SARK on application cores.
const SARK_ID: &str = "SARK/SpiNNaker";
/// The router's P2P table: 65,536 3-bit entries, eight to a word, entry `(x << 8) | y`.
const P2P_TABLE: u32 = 0xE101_0000;
/// Its length in bytes.
const P2P_TABLE_LEN: u32 = 0x8000;
/// P2P table entry: no route (the chip does not exist).
const P2P_NONE: u32 = 6;
/// P2P table entry: this chip.
const P2P_MONITOR: u32 = 7;

/// An SCP reply body (`rc`, `seq` and what follows), encoded.
pub(crate) struct ScpReply {
    buf: [u8; scp::MAX_LEN],
    len: usize,
    rc: ReturnCode,
}

impl ScpReply {
    pub(crate) fn new(seq: u16, reply: &Reply<'_>) -> ScpReply {
        let len = reply.buffer_len();
        if len > scp::MAX_LEN {
            return ScpReply::error(seq, ReturnCode::Len);
        }
        let mut buf = [0u8; scp::MAX_LEN];
        reply.emit(seq, &mut scp::Packet::new_unchecked(&mut buf[..len]));
        ScpReply {
            buf,
            len,
            rc: reply.return_code(),
        }
    }

    pub(crate) fn error(seq: u16, rc: ReturnCode) -> ScpReply {
        ScpReply::new(seq, &Reply::Error { rc, body: &[] })
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Where a reply goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// No reply wanted.
    None,
    /// Through transient tag (index, generation), back to the requester.
    Transient(u8, u32),
    /// Through the tag the request named.
    Tag(u8),
}

/// The chip a request is for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    pub m: usize,
    pub set: u32,
    /// Board index.
    pub tb: usize,
    /// Board-local chip.
    pub local: Chip,
    /// P2P coordinates.
    pub chip: (u32, u32),
}

/// Everything about one request besides its bytes.
struct ScpCtx {
    m: usize,
    /// Receiving board.
    b: usize,
    set: u32,
    runtime_gen: u32,
    recv_eth: (u32, u32),
    req: sdp::Repr,
    seq: u16,
    now: Instant,
    route: Route,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    /// Chip answering (P2P coordinates).
    handler: (u32, u32),
    /// The answering chip when it is not the receiving Ethernet chip: (board index, local chip
    /// index), and its P2P distance from the receiving Ethernet chip.
    remote: Option<(usize, u8, u32)>,
    /// Extra delay of the reply after its service (CMD_COUNT's timer).
    extra: Duration,
    booting: bool,
}

fn p2p(c: (u32, u32)) -> u16 {
    (((c.0 & 0xFF) as u16) << 8) | (c.1 & 0xFF) as u16
}

/// Synthetic MAC for a host address in an IP tag record.
fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x00, o[0], o[1], o[2], o[3]]
}

/// Takes one of the first `pool` transient tags for a reply to `src`.
fn alloc_transient(rt: &mut Runtime, now: Instant, src: SocketAddrV4, pool: u8) -> Option<(u8, u32)> {
    let lifetime = tag_lifetime(rt.tto);
    let end = (POOL_FIRST + usize::from(pool)).min(NUM_TAGS);
    let t = (POOL_FIRST..end).find(|&t| !rt.tags[t].valid(now))?;
    let generation = rt.tags[t].generation.wrapping_add(1);
    rt.tags[t] = IpTag {
        flags: (IptagFlags::VALID | IptagFlags::TRANSIENT).bits(),
        ip: *src.ip(),
        port: src.port(),
        expires: lifetime.map(|d| now + d),
        generation,
        ..IpTag::default()
    };
    Some((t as u8, generation))
}

impl Emulator {
    /// A datagram for a board's SC&MP (port 17893).
    pub(crate) fn scp_datagram(&mut self, now: Instant, m: usize, b: usize, d: &Datagram) {
        let Some(slot) = self.machines[m].slot(b) else {
            return;
        };
        if slot.dead {
            self.stats.dropped_dead += 1;
            return;
        }
        if !slot.is_up() {
            self.stats.dropped_board_off += 1;
            return;
        }
        let Some(rt) = slot.runtime.as_ref() else {
            self.stats.dropped_unbooted += 1;
            return;
        };
        let Ok(packet) = sdp::parse_udp(&d.payload) else {
            self.stats.malformed += 1;
            return;
        };
        let Ok(req) = sdp::Repr::parse(&packet) else {
            self.stats.malformed += 1;
            return;
        };
        let scp_bytes = packet.data();
        let command = scp_bytes
            .get(..2)
            .map(|c| Command::from_code(u16::from_le_bytes([c[0], c[1]])));
        let booting = rt.phase == BootPhase::Booting;
        if booting && (scp_bytes.len() < scp::HEADER_LEN || command != Some(Command::Ver)) {
            self.stats.dropped_booting += 1;
            return;
        }
        let (set, recv_eth, runtime_gen) = (rt.set, rt.eth, slot.runtime_gen);
        if let Some(c) = command {
            crate::Stats::count(&mut self.stats.scamp_commands, c);
        }
        let timing = self.machines[m].scamp;
        // A message buffer (`sark_msg_get`): none free, the frame is dropped.
        if timing.enabled
            && let Some(rt) = self.machines[m].slot_mut(b).and_then(|s| s.runtime.as_mut())
            && rt.server.held_at(now) >= usize::from(timing.msg_buffers)
        {
            self.stats.dropped_buffers_full += 1;
            return;
        }
        let route = if !req.flags.reply_expected() {
            Route::None
        } else if req.tag == sdp::TAG_NONE {
            let rt = self.machines[m].slot_mut(b).and_then(|s| s.runtime.as_mut());
            match rt.and_then(|rt| alloc_transient(rt, now, d.src, timing.transient_tags)) {
                Some((t, generation)) => Route::Transient(t, generation),
                None => {
                    self.stats.dropped_tags_busy += 1;
                    return;
                }
            }
        } else {
            Route::Tag(req.tag)
        };
        let mut ctx = ScpCtx {
            m,
            b,
            set,
            runtime_gen,
            recv_eth,
            req,
            seq: seq_of(scp_bytes),
            now,
            route,
            src: d.src,
            dst: d.dst,
            handler: recv_eth,
            remote: None,
            extra: Duration::ZERO,
            booting,
        };
        let reply = self.scamp_execute(&mut ctx, scp_bytes);
        let (op, data_bytes) = classify(command, scp_bytes, &reply);
        let reply_len = match ctx.route {
            Route::None => 0,
            _ => sdp::HEADER_LEN + reply.len,
        };
        let at = self.scamp_serve(&ctx, op, data_bytes, sdp::HEADER_LEN + scp_bytes.len(), reply_len);
        // A CMD_COUNT is in progress until its answer goes out (`count_in_progress`).
        if command == Some(Command::Count)
            && reply.rc == ReturnCode::Ok
            && let Some(rt) = self.machines[m]
                .slot_mut(ctx.remote.map_or(b, |(tb, _, _)| tb))
                .and_then(|s| s.runtime.as_mut())
        {
            rt.count_busy_until = rt.count_busy_until.max(at);
        }
        self.scamp_finish(&ctx, &reply, at);
    }

    /// Runs a request through the board's server (see [`crate::ScampTiming`]): returns when its
    /// reply leaves (when its buffer is freed if it wants none) and books the time on the
    /// servers it uses.
    fn scamp_serve(
        &mut self,
        ctx: &ScpCtx,
        op: ScampOp,
        data_bytes: usize,
        req_len: usize,
        reply_len: usize,
    ) -> Instant {
        let t = self.machines[ctx.m].scamp;
        let now = ctx.now;
        if !t.enabled {
            let hops = ctx.remote.map_or(0, |(_, _, h)| h);
            let p2p = t.p2p_time(req_len, hops)
                + if reply_len > 0 {
                    t.p2p_time(reply_len, hops)
                } else {
                    Duration::ZERO
                };
            return now + p2p + ctx.extra;
        }
        let service = t.service_time(op, data_bytes);
        let ms = &mut self.machines[ctx.m];
        let Some(rt) = ms.slot_mut(ctx.b).and_then(|s| s.runtime.as_mut()) else {
            return now;
        };
        let start = now.max(rt.server.free_at);
        let mut done = start + service;
        if let Some((_, _, hops)) = ctx.remote {
            // Pushing the request over P2P holds the Ethernet chip's monitor.
            done += t.p2p_time(req_len, hops);
        }
        rt.server.free_at = done;
        self.stats.scamp_wait_us += start.saturating_duration_since(now).as_micros();
        self.stats.scamp_busy_us += done.saturating_duration_since(start).as_micros();
        let mut at = done;
        if let Some((tb, local, hops)) = ctx.remote
            && reply_len > 0
        {
            // The target chip's monitor pushes the reply back: one transmitter per chip.
            if let Some(trt) = ms.slot_mut(tb).and_then(|s| s.runtime.as_mut()) {
                let from = done.max(trt.server.chip_free_at(local));
                let sent = from + t.p2p_time(reply_len, hops);
                trt.server.set_chip_busy(local, sent, now);
                self.stats.p2p_busy_us += sent.saturating_duration_since(from).as_micros();
                at = sent;
            }
        }
        at += ctx.extra;
        if let Some(rt) = ms.slot_mut(ctx.b).and_then(|s| s.runtime.as_mut()) {
            rt.server.held.push(at);
            let held = rt.server.held_at(now) as u64;
            self.stats.scamp_held_max = self.stats.scamp_held_max.max(held);
        }
        at
    }

    /// Sends the reply of a request at `at` (now or later).
    fn scamp_finish(&mut self, ctx: &ScpCtx, reply: &ScpReply, at: Instant) {
        let (tag, dst, strip, release) = match ctx.route {
            Route::None => return,
            Route::Transient(t, generation) => (t, ctx.src, false, TagUse::Release(t, generation)),
            Route::Tag(t) => {
                let tag = self.machines[ctx.m]
                    .slot(ctx.b)
                    .and_then(|s| s.runtime.as_ref())
                    .and_then(|rt| rt.tags.get(usize::from(t)))
                    .filter(|tag| tag.valid(ctx.now) && !tag.has(IptagFlags::REVERSE))
                    .copied();
                let Some(tag) = tag else {
                    self.stats.dropped_no_tag += 1;
                    return;
                };
                (t, tag.target(), tag.has(IptagFlags::STRIP), TagUse::Count(t))
            }
        };
        // While booting SC&MP's own address is still 0: both ends read (0, 0).
        let (dest_chip, src_chip) = if ctx.booting {
            ((0, 0), (0, 0))
        } else {
            (
                ((ctx.recv_eth.0 & 0xFF) as u8, (ctx.recv_eth.1 & 0xFF) as u8),
                ((ctx.handler.0 & 0xFF) as u8, (ctx.handler.1 & 0xFF) as u8),
            )
        };
        let header = sdp::Repr {
            flags: ctx.req.flags.without(Flags::REPLY_EXPECTED),
            tag,
            dest: Address::from_port_cpu(dest_chip.0, dest_chip.1, ctx.req.src.port_cpu()),
            src: Address::new(src_chip.0, src_chip.1, ctx.req.dest.port, ctx.req.dest.cpu),
        };
        let mut buf = [0u8; sdp::MAX_UDP_PAYLOAD_LEN];
        let Ok(n) = header.emit_udp(reply.bytes(), &mut buf) else {
            return;
        };
        let payload = if strip {
            buf[sdp::PADDING_LEN + sdp::HEADER_LEN..n].to_vec()
        } else {
            buf[..n].to_vec()
        };
        let datagram = Datagram {
            src: ctx.dst,
            dst,
            payload,
        };
        let pending = Pending {
            datagram,
            from: Source::Board {
                m: ctx.m,
                b: ctx.b,
                runtime_gen: ctx.runtime_gen,
                tag: release,
            },
            rc: Some(reply.rc),
        };
        if at <= ctx.now {
            self.send_pending(pending);
        } else {
            self.schedule(at, Timer::Send(Box::new(pending)));
        }
    }

    /// Board hops from the receiving board to `to`, if reachable.
    fn hops(&mut self, m: usize, from: usize, to: usize) -> Option<u16> {
        if from == to {
            return Some(0);
        }
        if !self.routes.contains_key(&(m, from)) {
            let h = self.machines[m].hops_from(from);
            self.routes.insert((m, from), h);
        }
        let h = *self.routes.get(&(m, from))?.get(to)?;
        (h != u16::MAX).then_some(h)
    }

    fn scamp_execute(&mut self, ctx: &mut ScpCtx, scp_bytes: &[u8]) -> ScpReply {
        let seq = ctx.seq;
        if scp_bytes.len() < scp::HEADER_LEN {
            return ScpReply::error(seq, ReturnCode::Len);
        }
        let Ok(packet) = scp::Packet::new_checked(scp_bytes) else {
            return ScpReply::error(seq, ReturnCode::Len);
        };
        let dest = ctx.req.dest;
        if ctx.booting {
            let cpu = dest.cpu.min(NUM_CORES as u8 - 1);
            return self.version(seq, CoreLocation::BOOTING, cpu);
        }
        // Route to the destination chip.
        let chip = if dest.x == sdp::CHIP_ROOT && dest.y == sdp::CHIP_ROOT {
            ctx.recv_eth
        } else {
            (u32::from(dest.x), u32::from(dest.y))
        };
        let Some((tb, local)) = self.machines[ctx.m].locate(ctx.set, chip.0, chip.1) else {
            return ScpReply::error(seq, ReturnCode::Route);
        };
        if self.hops(ctx.m, ctx.b, tb).is_none() {
            return ScpReply::error(seq, ReturnCode::Route);
        }
        let Some(set) = self.machines[ctx.m].sets.get(&ctx.set) else {
            return ScpReply::error(seq, ReturnCode::Route);
        };
        let hops = chip_distance(ctx.recv_eth, chip, set.dims, set.wrap);
        ctx.handler = chip;
        if hops > 0
            && let Some(i) = local_index(local.x, local.y)
        {
            ctx.remote = Some((tb, i as u8, hops));
        }
        let target = Target {
            m: ctx.m,
            set: ctx.set,
            tb,
            local,
            chip,
        };
        if usize::from(dest.cpu) >= NUM_CORES {
            return ScpReply::error(seq, ReturnCode::Cpu);
        }
        if dest.port != sdp::PORT_SCP {
            return ScpReply::error(seq, ReturnCode::Port);
        }
        let request = match Request::parse(&packet) {
            Ok(r) => r,
            Err(e) => return ScpReply::error(seq, ReturnCode::for_parse_error(&e)),
        };
        if dest.cpu != 0 {
            return self.sark(ctx, &target, dest.cpu, &request);
        }
        self.monitor(ctx, &target, &request)
    }

    fn version(&self, seq: u16, p2p_addr: u16, cpu: u8) -> ScpReply {
        let id = if cpu == 0 { SCAMP_ID } else { SARK_ID };
        ScpReply::new(
            seq,
            &Reply::Version(VersionReply {
                arg1: CoreLocation {
                    p2p: p2p_addr,
                    physical_cpu: physical_core(usize::from(cpu)),
                    virtual_cpu: cpu,
                }
                .to_arg1(),
                version: VersionReply::VERSION_IN_STRING,
                buffer_size: scp::MAX_DATA_LEN as u16,
                build_date: self.cfg.build_date,
                id,
                version_string: Some(&self.cfg.scamp_version),
            }),
        )
    }

    /// SARK on an application core: VER, READ, WRITE and FILL.
    fn sark(&mut self, ctx: &ScpCtx, t: &Target, cpu: u8, request: &Request<'_>) -> ScpReply {
        let seq = ctx.seq;
        let dead = self
            .with_chip(t, ctx.now, |c, _| c.cores[usize::from(cpu)].state == state::DEAD)
            .unwrap_or(false);
        if dead {
            return ScpReply::error(seq, ReturnCode::Dead);
        }
        match request {
            Request::Version => self.version(seq, p2p(t.chip), cpu),
            Request::Read { .. } | Request::Write { .. } | Request::Fill { .. } => self.memory(ctx, t, request),
            _ => ScpReply::error(seq, ReturnCode::Cmd),
        }
    }

    /// The chip's state for reading (a fresh chip if untouched).
    pub(crate) fn with_chip<R>(
        &self,
        t: &Target,
        now: Instant,
        f: impl FnOnce(&ChipState, &SvContext<'_>) -> R,
    ) -> Option<R> {
        let heap = (self.cfg.sdram_heap_base, self.cfg.sdram_heap_end);
        let ms = &self.machines[t.m];
        let set = ms.sets.get(&t.set)?;
        let slot = ms.slot(t.tb)?;
        let ip = (t.local == Chip::new(0, 0))
            .then(|| slot.ip.map(|i| i.octets()))
            .flatten();
        let rt = slot.runtime.as_ref()?;
        let sv = SvContext {
            chip: t.chip,
            dims: set.dims,
            eth: rt.eth,
            ip,
            chips_active: (set.boards.len() * 48) as u32,
            since_boot_ms: now.saturating_duration_since(set.started).as_millis(),
            patch: &set.patch,
            heap,
        };
        let idx = local_index(t.local.x, t.local.y)?;
        let fresh;
        let chip = match rt.chip(idx) {
            Some(c) => c,
            None => {
                fresh = ChipState::default();
                &fresh
            }
        };
        Some(f(chip, &sv))
    }

    /// The chip's state for changing (created if untouched).
    pub(crate) fn with_chip_mut<R>(
        &mut self,
        t: &Target,
        now: Instant,
        f: impl FnOnce(&mut ChipState, &SvContext<'_>, &mut Budget) -> R,
    ) -> Option<R> {
        let heap = (self.cfg.sdram_heap_base, self.cfg.sdram_heap_end);
        let budget = &mut self.budget;
        let MachineState { boards, sets, .. } = &mut self.machines[t.m];
        let set = sets.get(&t.set)?;
        let slot = boards.get_mut(t.tb)?.as_mut()?;
        let ip = (t.local == Chip::new(0, 0))
            .then(|| slot.ip.map(|i| i.octets()))
            .flatten();
        let rt = slot.runtime.as_mut()?;
        let sv = SvContext {
            chip: t.chip,
            dims: set.dims,
            eth: rt.eth,
            ip,
            chips_active: (set.boards.len() * 48) as u32,
            since_boot_ms: now.saturating_duration_since(set.started).as_millis(),
            patch: &set.patch,
            heap,
        };
        let idx = local_index(t.local.x, t.local.y)?;
        Some(f(rt.chip_mut(idx), &sv, budget))
    }

    /// READ, WRITE and FILL on the target chip.
    fn memory(&mut self, ctx: &ScpCtx, t: &Target, request: &Request<'_>) -> ScpReply {
        let seq = ctx.seq;
        match *request {
            Request::Read { addr, len, access } => {
                let Some(area) = memory::area(addr, len) else {
                    return ScpReply::error(seq, ReturnCode::Arg);
                };
                let moved = moved_len(len as usize, access);
                let mut data = [0u8; scp::MAX_DATA_LEN];
                self.with_chip(t, ctx.now, |c, sv| {
                    c.read(area, &mut data[..moved], sv);
                    if let memory::Area::Other(a) = area {
                        self.overlay_p2p_table(t, c, a, &mut data[..moved]);
                    }
                });
                ScpReply::new(seq, &Reply::Data(&data[..len as usize]))
            }
            Request::Write { addr, access, data } => {
                let Some(area) = memory::area(addr, data.len() as u32) else {
                    return ScpReply::error(seq, ReturnCode::Arg);
                };
                let moved = moved_len(data.len(), access);
                let ok = self
                    .with_chip_mut(t, ctx.now, |c, sv, budget| c.write(area, &data[..moved], sv, budget))
                    .unwrap_or(true);
                self.memory_result(seq, ok)
            }
            Request::Fill { addr, value, len } => {
                if addr % 4 != 0 || len % 4 != 0 {
                    return ScpReply::error(seq, ReturnCode::Arg);
                }
                if len == 0 {
                    return ScpReply::new(seq, &Reply::Empty);
                }
                let Some(area) = memory::area(addr, len) else {
                    return ScpReply::error(seq, ReturnCode::Arg);
                };
                let ok = self
                    .with_chip_mut(t, ctx.now, |c, sv, budget| c.fill(area, len, value, sv, budget))
                    .unwrap_or(true);
                self.memory_result(seq, ok)
            }
            _ => ScpReply::error(seq, ReturnCode::Cmd),
        }
    }

    /// Fills the bytes of `out` (read at canonical address `addr`) that fall in the router's P2P
    /// table, where the host has not written, with the table SC&MP builds at boot: every entry
    /// 6 (no route) except this chip (7) and the chips of the booted machine, which get the
    /// link of a shortest route towards them. Clients read it to learn which chips exist.
    fn overlay_p2p_table(&self, t: &Target, chip: &ChipState, addr: u32, out: &mut [u8]) {
        let end = u64::from(addr) + out.len() as u64;
        if end <= u64::from(P2P_TABLE) || addr >= P2P_TABLE + P2P_TABLE_LEN {
            return;
        }
        let mut word_cache: Option<(u32, [u8; 4])> = None;
        for (i, b) in out.iter_mut().enumerate() {
            let a = addr + i as u32;
            if !(P2P_TABLE..P2P_TABLE + P2P_TABLE_LEN).contains(&a) || chip.other.has_page(a) {
                continue;
            }
            let w = (a - P2P_TABLE) / 4;
            let bytes = match word_cache {
                Some((cw, bytes)) if cw == w => bytes,
                _ => {
                    let mut word = 0u32;
                    for k in 0..8 {
                        let entry = w * 8 + k;
                        word |= self.p2p_entry(t, entry >> 8, entry & 0xFF) << (3 * k);
                    }
                    let bytes = word.to_le_bytes();
                    word_cache = Some((w, bytes));
                    bytes
                }
            };
            *b = bytes[(a % 4) as usize];
        }
    }

    /// One P2P table entry of chip `t`: the route to chip (x, y).
    fn p2p_entry(&self, t: &Target, x: u32, y: u32) -> u32 {
        if (x, y) == t.chip {
            return P2P_MONITOR;
        }
        let ms = &self.machines[t.m];
        let Some(set) = ms.sets.get(&t.set) else {
            return P2P_NONE;
        };
        if ms.locate(t.set, x, y).is_none() {
            return P2P_NONE;
        }
        let here = chip_distance(t.chip, (x, y), set.dims, set.wrap);
        let mut fallback = None;
        for link in Link::ALL {
            let Some(n) = self.neighbour(t, link) else { continue };
            if chip_distance(n.chip, (x, y), set.dims, set.wrap) < here {
                return link as u32;
            }
            fallback.get_or_insert(link as u32);
        }
        fallback.unwrap_or(P2P_NONE)
    }

    /// The chip's parent link in the signal tree (CMD_INFO): towards the root (0, 0), through a
    /// link to a chip that exists and is nearer the root. South-west, west, then south first
    /// (on one board that is always such a link); on a job's boards without wrap-around (16 × 16
    /// chips for a triad) the nearest way may be another, since the chip to the south-west of a
    /// board's edge need not exist. The root's is 0.
    fn root_link(&self, t: &Target) -> u16 {
        if t.chip == (0, 0) {
            return 0;
        }
        let Some(set) = self.machines[t.m].sets.get(&t.set) else {
            return Link::South as u16;
        };
        let here = chip_distance(t.chip, (0, 0), set.dims, set.wrap);
        let mut fallback = None;
        for link in [
            Link::SouthWest,
            Link::West,
            Link::South,
            Link::East,
            Link::NorthEast,
            Link::North,
        ] {
            let Some(n) = self.neighbour(t, link) else { continue };
            if chip_distance(n.chip, (0, 0), set.dims, set.wrap) < here {
                return link as u16;
            }
            fallback.get_or_insert(link as u16);
        }
        fallback.unwrap_or(Link::South as u16)
    }

    fn memory_result(&mut self, seq: u16, ok: bool) -> ScpReply {
        if ok {
            ScpReply::new(seq, &Reply::Empty)
        } else {
            self.stats.memory_refused += 1;
            ScpReply::error(seq, ReturnCode::Buf)
        }
    }

    /// The neighbour of a chip through a chip link, if the link carries traffic.
    fn neighbour(&self, t: &Target, link: Link) -> Option<Target> {
        let ms = &self.machines[t.m];
        let set = ms.sets.get(&t.set)?;
        let (dx, dy) = link.chip_vector();
        let step = |v: u32, d: i32, n: u32, wraps: bool| -> Option<u32> {
            let r = i64::from(v) + i64::from(d);
            if wraps {
                Some(r.rem_euclid(i64::from(n.max(1))) as u32)
            } else {
                u32::try_from(r).ok().filter(|&r| r < n)
            }
        };
        let x = step(t.chip.0, dx, set.dims.0, set.wrap.0)?;
        let y = step(t.chip.1, dy, set.dims.1, set.wrap.1)?;
        let (nb, local) = ms.locate(t.set, x, y)?;
        ms.boards_joined(t.tb, nb).then_some(Target {
            tb: nb,
            local,
            chip: (x, y),
            ..*t
        })
    }

    /// SC&MP's commands.
    fn monitor(&mut self, ctx: &mut ScpCtx, t: &Target, request: &Request<'_>) -> ScpReply {
        let seq = ctx.seq;
        let now = ctx.now;
        match *request {
            Request::Version => self.version(seq, p2p(t.chip), 0),
            Request::Read { .. } | Request::Write { .. } | Request::Fill { .. } => self.memory(ctx, t, request),
            Request::Count { app_id, state } => {
                let delay = self.cfg.count_delay;
                let ms = &mut self.machines[t.m];
                let Some(rt) = ms.slot_mut(t.tb).and_then(|s| s.runtime.as_mut()) else {
                    return ScpReply::error(seq, ReturnCode::Route);
                };
                if rt.count_busy_until > now {
                    return ScpReply::error(seq, ReturnCode::P2pBusy);
                }
                rt.count_busy_until = now + delay;
                let fresh = ChipState::default();
                let count: u32 = (0..48)
                    .map(|i| {
                        rt.chip(i)
                            .unwrap_or(&fresh)
                            .cores
                            .iter()
                            .skip(1)
                            .filter(|c| c.app_id == app_id && c.state == state)
                            .count() as u32
                    })
                    .sum();
                ctx.extra = Duration(ctx.extra.0.saturating_add(delay.0));
                ScpReply::new(seq, &Reply::Count(count))
            }
            Request::LinkRead { addr, len, link } => {
                if addr % 4 != 0 || len % 4 != 0 {
                    return ScpReply::error(seq, ReturnCode::Arg);
                }
                let Some(n) = Link::from_u8(link).and_then(|l| self.neighbour(t, l)) else {
                    return ScpReply::error(seq, ReturnCode::Timeout);
                };
                self.memory(
                    ctx,
                    &n,
                    &Request::Read {
                        addr,
                        len,
                        access: AccessType::Word,
                    },
                )
            }
            Request::LinkWrite { addr, link, data } => {
                if addr % 4 != 0 || data.len() % 4 != 0 {
                    return ScpReply::error(seq, ReturnCode::Arg);
                }
                let Some(n) = Link::from_u8(link).and_then(|l| self.neighbour(t, l)) else {
                    return ScpReply::error(seq, ReturnCode::Timeout);
                };
                self.memory(
                    ctx,
                    &n,
                    &Request::Write {
                        addr,
                        access: AccessType::Word,
                        data,
                    },
                )
            }
            Request::ApplicationRun { app_id, flags, cores } => {
                self.with_chip_mut(t, now, |c, _, _| c.run(app_id, cores, flags & Request::AR_WAIT != 0));
                self.maybe_stream(now, t.m, t.tb);
                ScpReply::new(seq, &Reply::Empty)
            }
            Request::Signal { kind, data, .. } => match kind {
                SignalKind::PointToPoint => ScpReply::error(seq, ReturnCode::Arg),
                SignalKind::Multicast if t.chip != (0, 0) => ScpReply::error(seq, ReturnCode::Arg),
                _ => {
                    self.signal_set(now, t.m, t.set, data);
                    ScpReply::new(seq, &Reply::Empty)
                }
            },
            Request::Led { leds, .. } => {
                self.with_chip_mut(t, now, |c, _, _| c.leds = crate::bmp::apply_leds(c.leds, leds.0));
                ScpReply::new(seq, &Reply::Empty)
            }
            Request::Iptag(r) => {
                self.tags_epoch += 1;
                self.iptag(ctx, t, r)
            }
            Request::Alloc { app_id, op, .. } => self.alloc(ctx, t, app_id, op),
            Request::Router { app_id, op } => self.router(ctx, t, app_id, op),
            Request::Info { .. } => self.info(ctx, t),
            Request::Other {
                command,
                arg1,
                arg2,
                arg3,
                ..
            } => match command {
                Command::Nnp => {
                    match (arg1 >> 24) & 0xF {
                        0 => self.signal_set(now, t.m, t.set, arg2),
                        15 => self.run_set(now, t.m, t.set, arg2),
                        _ => {}
                    }
                    ScpReply::new(seq, &Reply::Empty)
                }
                Command::AppCopyRun | Command::As => {
                    let spec = if command == Command::As { arg2 } else { arg3 };
                    let (app, flags, mask) = ar_fields(spec);
                    self.with_chip_mut(t, now, |c, _, _| c.run(app, mask, flags & Request::AR_WAIT != 0));
                    self.maybe_stream(now, t.m, t.tb);
                    ScpReply::new(seq, &Reply::Empty)
                }
                Command::Ffd | Command::Sync => ScpReply::new(seq, &Reply::Empty),
                Command::Remap => {
                    let core = if arg2 & 1 != 0 {
                        (0..NUM_CORES).find(|&v| u32::from(physical_core(v)) == arg1)
                    } else {
                        usize::try_from(arg1).ok()
                    };
                    match core {
                        Some(v) if (1..NUM_CORES).contains(&v) => {
                            self.with_chip_mut(t, now, |c, _, _| c.cores[v].state = state::DEAD);
                            ScpReply::new(seq, &Reply::Empty)
                        }
                        _ => ScpReply::error(seq, ReturnCode::Arg),
                    }
                }
                _ => ScpReply::error(seq, ReturnCode::Cmd),
            },
            _ => ScpReply::error(seq, ReturnCode::Cmd),
        }
    }

    /// Applies a signal word (`signal << 16 | mask << 8 | app`) to every chip of a booted set.
    fn signal_set(&mut self, now: Instant, m: usize, set: u32, data: u32) {
        let sig = ((data >> 16) & 0xF) as u8;
        let mask = (data >> 8) as u8;
        let app = data as u8;
        let members = self.machines[m]
            .sets
            .get(&set)
            .map(|s| s.boards.clone())
            .unwrap_or_default();
        for &b in &members {
            if let Some(rt) = self.machines[m].slot_mut(b).and_then(|s| s.runtime.as_mut()) {
                for chip in rt.chips.iter_mut().flatten() {
                    chip.signal(sig, app, mask);
                }
            }
        }
        for b in members {
            self.maybe_stream(now, m, b);
        }
    }

    /// Starts an application (CMD_AR layout) on every chip of a booted set (flood-fill end).
    fn run_set(&mut self, now: Instant, m: usize, set: u32, spec: u32) {
        let (app, flags, mask) = ar_fields(spec);
        let members = self.machines[m]
            .sets
            .get(&set)
            .map(|s| s.boards.clone())
            .unwrap_or_default();
        for &b in &members {
            if let Some(rt) = self.machines[m].slot_mut(b).and_then(|s| s.runtime.as_mut()) {
                for i in 0..48 {
                    rt.chip_mut(i).run(app, mask, flags & Request::AR_WAIT != 0);
                }
            }
        }
        for b in members {
            self.maybe_stream(now, m, b);
        }
    }

    fn iptag(&mut self, ctx: &ScpCtx, t: &Target, r: IptagRequest) -> ScpReply {
        let seq = ctx.seq;
        let now = ctx.now;
        let requester = ctx.src;
        let Some(rt) = self.machines[t.m].slot_mut(t.tb).and_then(|s| s.runtime.as_mut()) else {
            return ScpReply::error(seq, ReturnCode::Route);
        };
        let configure = |tag: &mut IpTag, cfg: &scp::IptagConfig| -> bool {
            let reverse = cfg.flags.contains(IptagFlags::REVERSE);
            if reverse && matches!(cfg.port, 0 | crate::SCP_PORT | crate::BOOT_PORT) {
                return false;
            }
            let (ip, port) = if cfg.flags.contains(IptagFlags::USE_SENDER) {
                (*requester.ip(), requester.port())
            } else if cfg.ip.is_unspecified() {
                (*requester.ip(), cfg.port)
            } else {
                (cfg.ip, cfg.port)
            };
            let flags = IptagFlags::VALID.bits()
                | (cfg.flags.bits() & (IptagFlags::STRIP | IptagFlags::REVERSE | IptagFlags::USE_SENDER).bits());
            *tag = IpTag {
                flags,
                ip,
                port: if reverse { 0 } else { port },
                rx_port: if reverse { cfg.port } else { 0 },
                dest_addr: if reverse { cfg.target.p2p() } else { 0 },
                dest_port: if reverse { cfg.target.port_cpu() } else { 0 },
                expires: tag_lifetime(cfg.timeout).map(|d| now + d),
                count: 0,
                generation: tag.generation.wrapping_add(1),
            };
            true
        };
        let reply = match r {
            IptagRequest::New(cfg) => match (POOL_FIRST..NUM_TAGS).find(|&i| !rt.tags[i].valid(now)) {
                Some(i) => {
                    if !configure(&mut rt.tags[i], &cfg) {
                        return ScpReply::error(seq, ReturnCode::Arg);
                    }
                    ScpReply::new(seq, &Reply::IptagTag(i as u8))
                }
                None => ScpReply::new(seq, &Reply::IptagTag(255)),
            },
            IptagRequest::Set { tag, config } => {
                if !configure(&mut rt.tags[usize::from(tag)], &config) {
                    return ScpReply::error(seq, ReturnCode::Arg);
                }
                ScpReply::new(seq, &Reply::IptagTag(tag))
            }
            IptagRequest::Get { tag, count } => {
                let first = usize::from(tag);
                let n = count as usize;
                if first + n > NUM_TAGS {
                    return ScpReply::error(seq, ReturnCode::Arg);
                }
                let mut bytes = [0u8; 8 * IptagRecord::LEN];
                for (i, tag) in rt.tags[first..first + n].iter().enumerate() {
                    let valid = tag.valid(now);
                    let remaining = tag.expires.map_or(0, |e| {
                        (e.saturating_duration_since(now).as_millis() / 10).min(0xFFFF) as u16
                    });
                    let record = if valid {
                        IptagRecord {
                            ip: tag.ip,
                            mac: mac_for(tag.ip),
                            tx_port: tag.port,
                            timeout: remaining,
                            flags: IptagFlags(tag.flags),
                            count: tag.count,
                            rx_port: tag.rx_port,
                            dest_addr: tag.dest_addr,
                            dest_port: tag.dest_port,
                        }
                    } else {
                        IptagRecord::from_bytes(&[0; 32])
                    };
                    bytes[i * 32..(i + 1) * 32].copy_from_slice(&record.to_bytes());
                }
                match IptagRecords::new(&bytes[..n * 32]) {
                    Ok(records) => ScpReply::new(seq, &Reply::IptagRecords(records)),
                    Err(_) => ScpReply::error(seq, ReturnCode::Arg),
                }
            }
            IptagRequest::Clear { tag } => {
                rt.tags[usize::from(tag)].clear();
                ScpReply::new(seq, &Reply::Empty)
            }
            IptagRequest::Tto { timeout } => {
                let previous = rt.tto;
                if timeout < 16 {
                    rt.tto = timeout as u8;
                }
                ScpReply::new(
                    seq,
                    &Reply::IptagTto(TtoInfo {
                        fixed: POOL_FIRST as u8,
                        pool: (NUM_TAGS - POOL_FIRST) as u8,
                        record_size: IptagRecord::LEN as u8,
                        previous,
                    }),
                )
            }
        };
        self.maybe_stream(now, t.m, t.tb);
        reply
    }

    fn alloc(&mut self, ctx: &ScpCtx, t: &Target, app_id: u8, op: AllocOp) -> ScpReply {
        let seq = ctx.seq;
        let now = ctx.now;
        let (base, end) = (self.cfg.sdram_heap_base, self.cfg.sdram_heap_end);
        let reply = match op {
            AllocOp::AllocSdram { size, tag } => {
                let p = self.with_chip_mut(t, now, |c, _, _| c.heap_mut(base, end).alloc(size, app_id, tag as u8));
                Reply::Alloc(p.unwrap_or(0))
            }
            AllocOp::FreeSdram { ptr } => {
                self.with_chip_mut(t, now, |c, _, _| c.heap_mut(base, end).free(ptr));
                Reply::Empty
            }
            AllocOp::FreeSdramByApp => {
                let n = self.with_chip_mut(t, now, |c, _, _| c.heap_mut(base, end).free_app(app_id));
                Reply::Alloc(n.unwrap_or(0))
            }
            AllocOp::AllocRouter { count } => {
                let e = self.with_chip_mut(t, now, |c, _, _| c.rtr_alloc_mut().alloc(count, app_id));
                Reply::Alloc(e.unwrap_or(0))
            }
            AllocOp::FreeRouter { entry, clear } => {
                self.with_chip_mut(t, now, |c, _, _| {
                    if let Some((start, n)) = c.rtr_alloc_mut().free(entry)
                        && clear != 0
                    {
                        clear_entries(c, start, n);
                    }
                });
                Reply::Empty
            }
            AllocOp::FreeRouterByApp { clear } => {
                let n = self.with_chip_mut(t, now, |c, _, _| {
                    let blocks = c.rtr_alloc_mut().free_app(app_id);
                    if clear != 0 {
                        for &(s, n) in &blocks {
                            clear_entries(c, s, n);
                        }
                    }
                    blocks.iter().map(|&(_, n)| u32::from(n)).sum::<u32>()
                });
                Reply::Alloc(n.unwrap_or(0))
            }
            AllocOp::SdramSpace => {
                let (free, largest) = self
                    .with_chip(t, now, |c, _| c.sdram_space(base, end))
                    .unwrap_or((0, 0));
                Reply::SdramSpace { free, largest }
            }
            AllocOp::HeapTagPointer { tag } => {
                let p = self.with_chip(t, now, |c, _| {
                    c.heap.as_ref().map_or(0, |h| h.tag_pointer(app_id, tag as u8))
                });
                Reply::Alloc(p.unwrap_or(0))
            }
        };
        ScpReply::new(seq, &reply)
    }

    fn router(&mut self, ctx: &ScpCtx, t: &Target, app_id: u8, op: RouterOp) -> ScpReply {
        let seq = ctx.seq;
        let now = ctx.now;
        let fits = |start: u32, count: u32| u64::from(start) + u64::from(count) <= u64::from(ROUTER_ENTRIES);
        match op {
            RouterOp::Init => {
                self.with_chip_mut(t, now, |c, _, _| c.router.clear());
                ScpReply::new(seq, &Reply::Empty)
            }
            RouterOp::Clear { start, count } => {
                if !fits(start, u32::from(count)) {
                    return ScpReply::error(seq, ReturnCode::Arg);
                }
                self.with_chip_mut(t, now, |c, _, _| clear_entries(c, start as u16, count));
                ScpReply::new(seq, &Reply::Empty)
            }
            RouterOp::Load { addr, count, base } => {
                let len = u32::from(count) * 16;
                if !fits(base, u32::from(count)) {
                    return ScpReply::error(seq, ReturnCode::Arg);
                }
                if count == 0 {
                    return ScpReply::new(seq, &Reply::Empty);
                }
                let Some(area) = memory::area(addr, len) else {
                    return ScpReply::error(seq, ReturnCode::Arg);
                };
                self.with_chip_mut(t, now, |c, sv, _| {
                    let mut table = vec![0u8; len as usize];
                    c.read(area, &mut table, sv);
                    for (i, e) in table.chunks_exact(16).enumerate() {
                        let word = |at: usize| u32::from_le_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]]);
                        c.router.insert(
                            (base as usize + i) as u16,
                            RouterEntry {
                                route: word(4),
                                key: word(8),
                                mask: word(12),
                                app_id,
                            },
                        );
                    }
                });
                ScpReply::new(seq, &Reply::Empty)
            }
            RouterOp::FixedRoute { value } => {
                if op.is_fixed_route_read() {
                    let v = self.with_chip(t, now, |c, _| c.fixed_route).unwrap_or(0);
                    ScpReply::new(seq, &Reply::FixedRoute(v))
                } else {
                    self.with_chip_mut(t, now, |c, _, _| c.fixed_route = value);
                    ScpReply::new(seq, &Reply::Empty)
                }
            }
        }
    }

    fn info(&mut self, ctx: &ScpCtx, t: &Target) -> ScpReply {
        let seq = ctx.seq;
        let mut links = 0u8;
        for l in Link::ALL {
            if self.neighbour(t, l).is_some() {
                links |= 1 << l as u8;
            }
        }
        let root_link = self.root_link(t);
        let (base, end) = (self.cfg.sdram_heap_base, self.cfg.sdram_heap_end);
        let info = self.with_chip(t, ctx.now, |c, sv| {
            let sysram_heap = u32::from_le_bytes([sv.patch[0x48], sv.patch[0x49], sv.patch[0x4A], sv.patch[0x4B]]);
            let mut core_states = [0u8; NUM_CORES];
            for (s, core) in core_states.iter_mut().zip(&c.cores) {
                *s = core.state;
            }
            ChipInfo {
                working_cores: c.working_cores(),
                working_links: links,
                largest_router_block: c.router_largest_free(),
                ethernet_up: sv.ip.is_some(),
                largest_sdram_block: c.sdram_space(base, end).1,
                largest_sysram_block: sysram_heap.saturating_mul(4).saturating_sub(8),
                core_states,
                nearest_ethernet: p2p(sv.eth),
                ip: Ipv4Addr::from(sv.ip.unwrap_or([0; 4])),
                root_link,
            }
        });
        match info {
            Some(i) => ScpReply::new(seq, &Reply::Info(i)),
            None => ScpReply::error(seq, ReturnCode::Route),
        }
    }
}

/// The kind of a request and the SCP data bytes it moves, for its service time: a read's reply
/// data, a write's request data, a fill's length (when it was carried out).
fn classify(command: Option<Command>, scp_bytes: &[u8], reply: &ScpReply) -> (ScampOp, usize) {
    let arg = |i: usize| {
        scp_bytes
            .get(4 + 4 * i..8 + 4 * i)
            .map_or(0, |w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as usize)
    };
    match command {
        Some(Command::Ver) => (ScampOp::Ver, 0),
        Some(Command::Read | Command::LinkRead) => (ScampOp::Read, reply.len.saturating_sub(scp::MIN_LEN)),
        Some(Command::Write | Command::LinkWrite) => (ScampOp::Write, scp_bytes.len().saturating_sub(scp::HEADER_LEN)),
        Some(Command::Fill) if reply.rc == ReturnCode::Ok => (ScampOp::Fill, arg(2)),
        Some(Command::Fill) => (ScampOp::Fill, 0),
        Some(Command::Iptag) => (ScampOp::Iptag, 0),
        _ => (ScampOp::Other, 0),
    }
}

/// Bytes a READ/WRITE of `len` bytes actually moves with `access` (SARK loops `len / size`).
fn moved_len(len: usize, access: AccessType) -> usize {
    len / access.size() * access.size()
}

/// Splits a CMD_AR-style word: (app id, flags, core mask).
fn ar_fields(spec: u32) -> (u8, u8, u32) {
    (
        (spec >> 24) as u8,
        ((spec >> 18) & 0x3F) as u8,
        spec & Request::AR_CORE_MASK,
    )
}

fn clear_entries(c: &mut ChipState, start: u16, n: u16) {
    for e in start..start.saturating_add(n) {
        c.router.remove(&e);
    }
}
