//! BC&MP, the Board Management Processor firmware: one per frame, addressed at the frame's BMP
//! IP, relaying to the other boards of its frame over CAN (the SDP destination cpu field is the
//! board number).
//!
//! It switches boards on and off (CMD_POWER, with the per-board stagger), exposes each board's
//! three spI/O FPGAs through CMD_LINK_READ / CMD_LINK_WRITE (FLAG, STOP, counters, …), reports
//! board information (CMD_BMP_INFO: serial, CAN status, voltages and temperatures, IP settings),
//! resets chips (CMD_RESET) and drives LEDs (CMD_LED). Anything else is RC_CMD.
//!
//! Timing ([`crate::ScampTiming`]): one serial server per BMP. A datagram needs a receive
//! buffer while the BMP is busy (else it is lost), a reply-wanted request with tag 0xFF one of
//! the BMP's transient tags until its reply; the request is executed when it arrives and
//! answered when its service completes (a power command no earlier than its own board's power
//! sequence).

use crate::{Datagram, Emulator, Pending, Source, Timer};
use spinnbed_core::proto::scp::{
    self, BmpInfoKind, BmpIpAddresses, BmpLocation, BmpSerial, BoardStatus, Command, IpData, Reply, ReturnCode,
    VersionReply, fpga,
};
use spinnbed_core::proto::sdp::{self, Address, Flags};
use spinnbed_core::time::Instant;
use std::net::{Ipv4Addr, SocketAddrV4};

/// The ID string of the BMP firmware.
const BMP_ID: &str = "BC&MP/Spin5-BMP";
/// Tag BC&MP replies carry.
const BMP_REPLY_TAG: u8 = 8;

/// Encodes a reply into a UDP payload (padding, SDP header, SCP).
pub(crate) fn encode(header: &sdp::Repr, seq: u16, reply: &Reply<'_>) -> Vec<u8> {
    let msg = scp::ReplyMessage {
        sdp: *header,
        seq,
        reply: *reply,
    };
    let mut buf = [0u8; sdp::MAX_UDP_PAYLOAD_LEN];
    match msg.emit_udp(&mut buf) {
        Ok(n) => buf[..n].to_vec(),
        // Only a reply over 256 data bytes can fail; answer RC_LEN instead.
        Err(_) => {
            let err = scp::ReplyMessage {
                sdp: *header,
                seq,
                reply: Reply::Error {
                    rc: ReturnCode::Len,
                    body: &[],
                },
            };
            let n = err.emit_udp(&mut buf).unwrap_or(0);
            buf[..n].to_vec()
        }
    }
}

/// The sequence number of an SCP message that may be too short to hold one (0 then).
pub(crate) fn seq_of(scp: &[u8]) -> u16 {
    match scp.get(2..4) {
        Some(&[a, b]) => u16::from_le_bytes([a, b]),
        _ => 0,
    }
}

/// Synthetic MAC address for an IP.
fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x00, o[0], o[1], o[2], o[3]]
}

impl Emulator {
    /// A datagram for a BMP (port 17893).
    pub(crate) fn bmp_datagram(&mut self, now: Instant, m: usize, f: usize, d: &Datagram) {
        let timing = self.machines[m].scamp;
        let bmp = &mut self.machines[m].bmps[f];
        if bmp.silent {
            self.stats.dropped_bmp_silent += 1;
            return;
        }
        // While busy, the BMP holds only as many frames as it has receive buffers.
        if timing.enabled
            && bmp.server.free_at > now
            && bmp.server.waiting_at(now) >= usize::from(timing.bmp_rx_buffers)
        {
            self.stats.dropped_bmp_busy += 1;
            return;
        }
        let bmp = &self.machines[m].bmps[f];
        let Ok(packet) = sdp::parse_udp(&d.payload) else {
            self.stats.malformed += 1;
            return;
        };
        let Ok(req) = sdp::Repr::parse(&packet) else {
            self.stats.malformed += 1;
            return;
        };
        let board_no = req.dest.cpu;
        let Some(b) = bmp.boards.get(usize::from(board_no)).copied().flatten() else {
            self.stats.dropped_no_board += 1;
            return;
        };
        let frame = bmp.frame.frame;
        let header = sdp::Repr {
            flags: req.flags.without(Flags::REPLY_EXPECTED),
            tag: BMP_REPLY_TAG,
            dest: Address::new((frame >> 8) as u8, frame as u8, sdp::PORT_ETH, board_no),
            src: req.dest,
        };
        let want = req.flags.reply_expected();
        let ctx = BmpCtx {
            m,
            f,
            b,
            board_no,
            want,
            tagged: want && req.tag == sdp::TAG_NONE,
            header,
            d_src: d.src,
            d_dst: d.dst,
            now,
            request_len: packet.data().len() + sdp::HEADER_LEN,
        };
        let scp_bytes = packet.data();
        let seq = seq_of(scp_bytes);
        let parsed = if scp_bytes.len() < scp::HEADER_LEN {
            if scp_bytes.len() >= 2 {
                let cmd = Command::from_code(u16::from_le_bytes([scp_bytes[0], scp_bytes[1]]));
                crate::Stats::count(&mut self.stats.bmp_commands, cmd);
            }
            Err(ReturnCode::Len)
        } else {
            let Ok(scp_packet) = scp::Packet::new_checked(scp_bytes) else {
                self.stats.malformed += 1;
                return;
            };
            crate::Stats::count(&mut self.stats.bmp_commands, scp_packet.command());
            if req.dest.port != sdp::PORT_SCP {
                Err(ReturnCode::Port)
            } else {
                scp::Request::parse(&scp_packet).map_err(|e| ReturnCode::for_parse_error(&e))
            }
        };
        // A transient tag for the reply, taken when the request arrives.
        if timing.enabled
            && ctx.tagged
            && self.machines[m].bmps[f].server.tags_at(now) >= usize::from(timing.bmp_transient_tags)
        {
            self.stats.dropped_bmp_tags_busy += 1;
            return;
        }
        match parsed {
            Ok(request) => self.bmp_request(now, &ctx, seq, &request),
            Err(rc) => self.bmp_error(&ctx, seq, rc),
        }
    }

    fn bmp_error(&mut self, ctx: &BmpCtx, seq: u16, rc: ReturnCode) {
        self.bmp_reply(ctx, seq, &Reply::Error { rc, body: &[] });
    }

    /// Answers a BMP request when its service completes (if it wanted a reply).
    fn bmp_reply(&mut self, ctx: &BmpCtx, seq: u16, reply: &Reply<'_>) {
        self.bmp_reply_at(ctx, seq, reply, ctx.now);
    }

    /// Answers a BMP request when its service completes, but not before `not_before`.
    fn bmp_reply_at(&mut self, ctx: &BmpCtx, seq: u16, reply: &Reply<'_>, not_before: Instant) {
        let payload = ctx.want.then(|| encode(&ctx.header, seq, reply));
        let reply_len = payload.as_ref().map_or(0, |p| p.len().saturating_sub(sdp::PADDING_LEN));
        let at = self.bmp_serve(ctx, reply_len).max(not_before);
        let Some(payload) = payload else {
            return;
        };
        if ctx.tagged && self.machines[ctx.m].scamp.enabled {
            self.machines[ctx.m].bmps[ctx.f].server.tags.push(at);
        }
        let datagram = Datagram {
            src: ctx.d_dst,
            dst: ctx.d_src,
            payload,
        };
        if at <= ctx.now {
            self.send(datagram, Some(reply.return_code()));
        } else {
            let pending = Pending {
                datagram,
                from: Source::Bmp { m: ctx.m, f: ctx.f },
                rc: Some(reply.return_code()),
            };
            self.schedule(at, Timer::Send(Box::new(pending)));
        }
    }

    /// Runs a request through its BMP's server: returns when its service completes.
    fn bmp_serve(&mut self, ctx: &BmpCtx, reply_len: usize) -> Instant {
        let t = self.machines[ctx.m].scamp;
        if !t.enabled {
            return ctx.now;
        }
        let service = t.bmp_service_time(ctx.board_no, ctx.request_len, reply_len);
        let server = &mut self.machines[ctx.m].bmps[ctx.f].server;
        let start = ctx.now.max(server.free_at);
        let done = start + service;
        server.free_at = done;
        if start > ctx.now {
            server.starts.push_back(start);
        }
        let waiting = server.waiting_at(ctx.now) as u64;
        self.stats.bmp_waiting_max = self.stats.bmp_waiting_max.max(waiting);
        self.stats.bmp_wait_us += start.saturating_duration_since(ctx.now).as_micros();
        self.stats.bmp_busy_us += service.as_micros();
        done
    }

    fn bmp_request(&mut self, now: Instant, ctx: &BmpCtx, seq: u16, request: &scp::Request<'_>) {
        use scp::Request as R;
        match *request {
            R::Version => {
                let frame = self.machines[ctx.m].bmps[ctx.f].frame.frame;
                let version = self.cfg.bmp_version.clone();
                let reply = Reply::Version(VersionReply {
                    arg1: BmpLocation {
                        flash_block: 0,
                        frame: frame as u8,
                        can_id: ctx.board_no,
                        board: ctx.board_no,
                    }
                    .to_arg1(),
                    version: VersionReply::VERSION_IN_STRING,
                    buffer_size: scp::MAX_DATA_LEN as u16,
                    build_date: self.cfg.build_date,
                    id: BMP_ID,
                    version_string: Some(&version),
                });
                self.bmp_reply(ctx, seq, &reply);
            }
            R::Power { on, delay_ms, boards } => {
                let done = self.start_power(now, ctx.m, ctx.f, on, delay_ms, boards);
                self.bmp_reply_at(ctx, seq, &Reply::Empty, done);
            }
            R::LinkRead { addr, len, link } => {
                if link >= fpga::NUM_FPGAS || addr % 4 != 0 || len % 4 != 0 {
                    return self.bmp_error(ctx, seq, ReturnCode::Arg);
                }
                let mut data = [0u8; scp::MAX_DATA_LEN];
                if let Some(s) = self.machines[ctx.m].slot(ctx.b) {
                    for (i, w) in data[..len as usize].chunks_exact_mut(4).enumerate() {
                        let a = addr.wrapping_add(4 * i as u32);
                        w.copy_from_slice(&s.fpga_read(link, a, now).to_le_bytes());
                    }
                }
                self.bmp_reply(ctx, seq, &Reply::Data(&data[..len as usize]));
            }
            R::LinkWrite { addr, link, data } => {
                if link >= fpga::NUM_FPGAS || addr % 4 != 0 || data.len() % 4 != 0 {
                    return self.bmp_error(ctx, seq, ReturnCode::Arg);
                }
                let mut changed = false;
                if let Some(s) = self.machines[ctx.m].slot_mut(ctx.b) {
                    for (i, w) in data.chunks_exact(4).enumerate() {
                        let v = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                        changed |= s.fpga_write(link, addr.wrapping_add(4 * i as u32), v);
                    }
                }
                if changed {
                    self.topology_changed();
                }
                self.bmp_reply(ctx, seq, &Reply::Empty);
            }
            R::BmpInfo(kind) => self.bmp_info(ctx, seq, kind),
            R::Reset { code, boards, .. } => {
                if code & 3 != 0 {
                    for n in 0..32usize {
                        if boards & (1 << n) == 0 {
                            continue;
                        }
                        let Some(b) = self.machines[ctx.m].bmps[ctx.f].boards.get(n).copied().flatten() else {
                            continue;
                        };
                        self.drop_runtime(ctx.m, b);
                    }
                }
                self.bmp_reply(ctx, seq, &Reply::Empty);
            }
            R::Led { leds, boards } => {
                for n in 0..32usize {
                    if boards & (1 << n) == 0 {
                        continue;
                    }
                    if let Some(b) = self.machines[ctx.m].bmps[ctx.f].boards.get(n).copied().flatten()
                        && let Some(s) = self.machines[ctx.m].slot_mut(b)
                    {
                        s.bmp_leds = apply_leds(s.bmp_leds, leds.0);
                    }
                }
                self.bmp_reply(ctx, seq, &Reply::Empty);
            }
            R::Read { len, .. } => {
                let zeros = [0u8; scp::MAX_DATA_LEN];
                self.bmp_reply(ctx, seq, &Reply::Data(&zeros[..len as usize]));
            }
            R::Write { .. } | R::Fill { .. } => self.bmp_reply(ctx, seq, &Reply::Empty),
            _ => self.bmp_error(ctx, seq, ReturnCode::Cmd),
        }
    }

    fn bmp_info(&mut self, ctx: &BmpCtx, seq: u16, kind: BmpInfoKind) {
        let ms = &self.machines[ctx.m];
        let bmp = &ms.bmps[ctx.f];
        let Some(slot) = ms.slot(ctx.b) else {
            return;
        };
        let p = slot.physical;
        let zeros = [0u8; 256];
        let reply = match kind {
            BmpInfoKind::Serial => {
                let id = (u32::from(p.cabinet) << 16) | (u32::from(p.frame) << 8) | u32::from(p.board);
                Reply::BmpSerial(BmpSerial {
                    hardware_version: 5,
                    serial: [0x5350_0000 | id, 0x1234_5678, 0x9ABC_DEF0 ^ id, 0x0F1E_2D3C],
                    flash_buffer: 0x1000_0000,
                    board_status: 0x1000_7F00 + 0x30 * u32::from(p.board),
                    cortex_boot: 0x0001_0000,
                })
            }
            BmpInfoKind::Eeprom => Reply::Data(&zeros[..256]),
            BmpInfoKind::UninitVectors => Reply::Data(&zeros[..32]),
            BmpInfoKind::CanStatus => {
                let mut can = [0u8; 24];
                for (n, c) in can.iter_mut().enumerate() {
                    *c = u8::from(bmp.boards.get(n).copied().flatten().is_some());
                }
                Reply::BmpCanStatus(can)
            }
            BmpInfoKind::BoardStatus => Reply::BmpBoardStatus(board_status(slot.switched_on, p.board)),
            BmpInfoKind::IpAddresses => {
                let ip_data = |ip: Ipv4Addr| IpData {
                    flags: 0,
                    mac: mac_for(ip),
                    ip,
                    gateway: Ipv4Addr::from((u32::from(ip) & 0xFFFF_0000) | 1),
                    netmask: Ipv4Addr::new(255, 255, 0, 0),
                    udp_port: crate::SCP_PORT,
                };
                Reply::BmpIpAddresses(BmpIpAddresses {
                    bmp: ip_data(bmp.ip),
                    spinnaker: ip_data(slot.ip.unwrap_or(Ipv4Addr::UNSPECIFIED)),
                })
            }
            BmpInfoKind::Other(_) => Reply::Error {
                rc: ReturnCode::Arg,
                body: &[],
            },
        };
        self.bmp_reply(ctx, seq, &reply);
    }
}

/// What a BMP request needs to answer.
struct BmpCtx {
    m: usize,
    f: usize,
    /// Board index.
    b: usize,
    /// Board number in the frame.
    board_no: u8,
    want: bool,
    /// Wants a reply through a transient tag (tag 0xFF).
    tagged: bool,
    header: sdp::Repr,
    d_src: SocketAddrV4,
    d_dst: SocketAddrV4,
    /// When the request arrived.
    now: Instant,
    /// Its SDP length (header and SCP bytes).
    request_len: usize,
}

/// Applies CMD_LED's two bits per LED (1 toggle, 2 off, 3 on) to a bit-per-LED state.
pub(crate) fn apply_leds(state: u32, control: u32) -> u32 {
    let mut s = state;
    for led in 0..16 {
        match (control >> (2 * led)) & 3 {
            1 => s ^= 1 << led,
            2 => s &= !(1 << led),
            3 => s |= 1 << led,
            _ => {}
        }
    }
    s
}

/// Plausible board status: rails at 1.2, 1.8 and 3.3 V when powered (0 V when off), the 12 V
/// supply always, chip temperatures around 35 °C, no external probes or fans, no alarms.
fn board_status(powered: bool, board: u16) -> BoardStatus {
    let counts = |v: f64, scale: f64| (v / scale).round() as u16;
    let on = |v: f64, scale: f64| if powered { counts(v, scale) } else { 0 };
    let jitter = i16::try_from(board % 7).unwrap_or(0) * 16;
    BoardStatus {
        adc: [
            0,
            on(1.2, BoardStatus::V_SCALE_2_5),
            on(1.2, BoardStatus::V_SCALE_2_5),
            on(1.2, BoardStatus::V_SCALE_2_5),
            on(1.8, BoardStatus::V_SCALE_2_5),
            0,
            on(3.3, BoardStatus::V_SCALE_3_3),
            counts(12.0, BoardStatus::V_SCALE_12),
        ],
        t_int: [
            if powered { 35 * 256 + jitter } else { 24 * 256 },
            if powered { 33 * 256 + 128 + jitter } else { 24 * 256 },
            BoardStatus::MISSING_TEMP,
            BoardStatus::MISSING_TEMP,
        ],
        t_ext: [BoardStatus::MISSING_TEMP; 4],
        fan: [BoardStatus::MISSING_FAN; 4],
        warning: 0,
        shutdown: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leds() {
        assert_eq!(apply_leds(0, 0xC0), 0b1000);
        assert_eq!(apply_leds(0b1000, 0x80), 0);
        assert_eq!(apply_leds(0b1, 0x1), 0);
    }

    #[test]
    fn status_is_plausible() {
        let s = board_status(true, 3);
        assert!((s.voltage_1_2a() - 1.2).abs() < 0.01);
        assert!((s.voltage_1_8() - 1.8).abs() < 0.01);
        assert!((s.voltage_3_3() - 3.3).abs() < 0.01);
        assert!((s.voltage_supply() - 12.0).abs() < 0.01);
        assert!((30.0..40.0).contains(&s.temp_top()));
        let off = board_status(false, 3);
        assert_eq!(off.voltage_1_2a(), 0.0);
    }
}
