//! EIEIO between emulated applications and the host.
//!
//! Out: a booted board with a RUNNING application core and a forward user IP tag (0–7) streams
//! KEY_32_BIT data messages through the lowest such tag, from its Ethernet IP, port 17893. With
//! the tag's STRIP flag the datagram is the bare EIEIO message; without it, the padding and an
//! SDP header (from the Ethernet chip, port 1, core 1, to port 7 / cpu 31 with the tag) come
//! first, as SC&MP sends through IP tags. Keys are `eth_p2p << 16 | running counter`. Streaming
//! stops as soon as the application stops, the tag is cleared or the board goes away.
//!
//! How fast and how much: [`crate::EieioConfig`] (`rate` datagrams per second, `keys_per_packet`
//! keys each) unless the application says otherwise. The emulated application reads its
//! settings, as a real one reads the parameters its tools wrote, from its core's user registers
//! (`vcpu_t.user1..user3` in SysRAM, which spinnman's `write_user` and a plain CMD_WRITE set): if
//! `user1` of the lowest RUNNING application core of the board's Ethernet chip holds
//! [`LIVE_MAGIC`], `user2` is the rate and `user3` the keys per datagram plus
//! [`StreamParams::TIMESTAMP`], which puts the send time (the emulator's clock in µs, low 32
//! bits) in a timestamp payload prefix (the D and T bits) so that the host can measure latency
//! (62 keys fit then). The settings are read when the stream starts.
//!
//! SC&MP forwards every streamed message: each holds the Ethernet chip's monitor for
//! [`crate::ScampTiming::service_time`] of a request without data (with the timing model on), in
//! turn with the SCP requests it serves, and leaves when that service ends — so a stream slows
//! SCP on its board and SCP delays the stream.
//!
//! In: a datagram to board-IP:P where a reverse IP tag listens on P is delivered to the tag's
//! core (counted: as EIEIO if it parses as an EIEIO message, otherwise as other traffic).

use crate::board::{BootPhase, local_index};
use crate::chip::{NUM_CORES, state};
use crate::memory::VCPU_OFFSET;
use crate::{Datagram, Emulator, Owner, Pending, SCP_PORT, ScampOp, Source, TagUse, Timer};
use spinnbed_core::proto::eieio::{DataBuilder, DataHeader, EieioMessage, EieioType};
use spinnbed_core::proto::scp::IptagFlags;
use spinnbed_core::proto::sdp::{self, Address, Flags};
use spinnbed_core::time::{Duration, Instant};
use std::net::{Ipv4Addr, SocketAddrV4};

/// `user1` of an application core that sets its own stream ("LIVE").
pub const LIVE_MAGIC: u32 = 0x4C49_5645;

/// Offset of `user0` in a `vcpu_t` (spinnman's `CPU_USER_0_START_ADDRESS`).
const USER0_OFFSET: u32 = 0x70;
/// Bytes per `vcpu_t`.
const VCPU_LEN: u32 = 128;

/// The SysRAM address of user register `register` (0–3) of virtual core `core` (spinnman's
/// `get_user_{n}_register_address_from_core`).
pub const fn user_register_address(core: u8, register: u8) -> u32 {
    0xE500_0000 + VCPU_OFFSET + VCPU_LEN * core as u32 + USER0_OFFSET + 4 * (register as u32 & 3)
}

/// How a stream runs: datagrams per second, keys per datagram, timestamped or not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamParams {
    /// Datagrams per second (0: no stream).
    pub rate: u32,
    /// Keys per datagram, 1..=63 (62 with timestamps); clamped.
    pub keys_per_packet: u8,
    /// The send time goes in a timestamp payload prefix.
    pub timestamp: bool,
}

impl StreamParams {
    /// `user3` bit: timestamp every datagram.
    pub const TIMESTAMP: u32 = 1 << 8;

    /// Most keys a 256-byte KEY_32_BIT message holds (63; 62 beside a payload prefix).
    pub fn max_keys(timestamp: bool) -> u8 {
        if timestamp { 62 } else { 63 }
    }

    /// The words an application core's `user1..user3` hold to ask for this stream.
    pub fn to_user_words(self) -> [u32; 3] {
        let flags = if self.timestamp { Self::TIMESTAMP } else { 0 };
        [LIVE_MAGIC, self.rate, u32::from(self.keys_per_packet) | flags]
    }

    /// The stream `user1..user3` ask for, if `user1` is [`LIVE_MAGIC`].
    pub fn from_user_words(words: [u32; 3]) -> Option<StreamParams> {
        (words[0] == LIVE_MAGIC).then(|| StreamParams {
            rate: words[1],
            keys_per_packet: (words[2] & 0xFF) as u8,
            timestamp: words[2] & Self::TIMESTAMP != 0,
        })
    }

    /// The same settings with the keys per datagram in range.
    fn clamped(self) -> StreamParams {
        StreamParams {
            keys_per_packet: self.keys_per_packet.clamp(1, Self::max_keys(self.timestamp)),
            ..self
        }
    }

    /// Time between datagrams (at least 1 µs), or `None` for rate 0.
    fn interval(self) -> Option<Duration> {
        (self.rate > 0).then(|| Duration::from_micros((1_000_000 / u64::from(self.rate)).max(1)))
    }
}

/// What a board has streamed since it booted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveOutputStats {
    /// Datagrams sent.
    pub datagrams: u64,
    /// Events (keys) in them.
    pub events: u64,
    /// Their UDP payload bytes.
    pub bytes: u64,
}

impl Emulator {
    /// What the board at `ip` has streamed since it booted (`None` if no booted board has that
    /// address).
    pub fn live_output(&self, ip: Ipv4Addr) -> Option<LiveOutputStats> {
        let Some(Owner::Board { m, b }) = self.by_ip.get(&ip).copied() else {
            return None;
        };
        let rt = self.machines[m].slot(b)?.runtime.as_ref()?;
        Some(LiveOutputStats {
            datagrams: u64::from(rt.stream.packets),
            events: rt.stream.events,
            bytes: rt.stream.bytes,
        })
    }

    /// The stream board `b` runs: the settings in the user registers of the lowest running
    /// application core of its Ethernet chip, else the configured ones.
    fn stream_params(&self, m: usize, b: usize) -> StreamParams {
        let configured = StreamParams {
            rate: self.cfg.eieio.rate,
            keys_per_packet: self.cfg.eieio.keys_per_packet,
            timestamp: false,
        };
        let rt = self.machines[m].slot(b).and_then(|s| s.runtime.as_ref());
        let chip = rt.and_then(|rt| rt.chip(local_index(0, 0)?));
        let asked = chip.and_then(|c| {
            let v = (1..NUM_CORES).find(|&v| c.cores[v].state == state::RUNNING && c.cores[v].app_id != 0)?;
            let mut bytes = [0u8; 12];
            c.sysram
                .read(VCPU_OFFSET + VCPU_LEN * v as u32 + USER0_OFFSET + 4, &mut bytes);
            let word =
                |i: usize| u32::from_le_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]]);
            StreamParams::from_user_words([word(0), word(1), word(2)])
        });
        asked.unwrap_or(configured).clamped()
    }

    /// True if board `b` should be streaming now.
    fn should_stream(&self, now: Instant, m: usize, b: usize) -> bool {
        let Some(s) = self.machines[m].slot(b).filter(|s| s.is_up()) else {
            return false;
        };
        let Some(rt) = s.runtime.as_ref().filter(|r| r.phase == BootPhase::Booted) else {
            return false;
        };
        rt.output_tag(now).is_some() && rt.has_running_app()
    }

    /// Starts streaming on board `b` if it should and is not already.
    pub(crate) fn maybe_stream(&mut self, now: Instant, m: usize, b: usize) {
        if !self.should_stream(now, m, b) {
            return;
        }
        let params = self.stream_params(m, b);
        let Some(interval) = params.interval() else {
            return;
        };
        let Some(rt) = self.machines[m].slot_mut(b).and_then(|s| s.runtime.as_mut()) else {
            return;
        };
        if rt.stream.active {
            return;
        }
        rt.stream.active = true;
        rt.stream.params = params;
        rt.stream.generation = rt.stream.generation.wrapping_add(1);
        let generation = rt.stream.generation;
        self.schedule(now + interval, Timer::Eieio { m, b, generation });
    }

    /// One streaming step: send a datagram and schedule the next, or stop.
    pub(crate) fn stream_tick(&mut self, t: Instant, m: usize, b: usize, generation: u32) {
        let keep = self.should_stream(t, m, b);
        let scamp = self.machines[m].scamp;
        let Some(s) = self.machines[m].slot_mut(b) else {
            return;
        };
        let board_ip = s.ip;
        let runtime_gen = s.runtime_gen;
        let Some(rt) = s.runtime.as_mut() else {
            return;
        };
        if !rt.stream.active || rt.stream.generation != generation {
            return;
        }
        let params = rt.stream.params;
        let keys = params.keys_per_packet;
        let (Some(interval), Some(ip), Some(tag_index), true) = (params.interval(), board_ip, rt.output_tag(t), keep)
        else {
            rt.stream.active = false;
            return;
        };
        let eth_p2p = ((rt.eth.0 & 0xFF) << 8) | (rt.eth.1 & 0xFF);
        let mut header = DataHeader::new(EieioType::Key32);
        if params.timestamp {
            header.payload_prefix = Some(t.as_micros() as u32);
            header.payload_is_timestamp = true;
        }
        let mut message = match DataBuilder::new(header) {
            Ok(m) => m,
            Err(_) => return,
        };
        let first = rt.stream.packets.wrapping_mul(u32::from(keys));
        for i in 0..u32::from(keys) {
            if message
                .push_key((eth_p2p << 16) | (first.wrapping_add(i) & 0xFFFF))
                .is_err()
            {
                break;
            }
        }
        rt.stream.packets = rt.stream.packets.wrapping_add(1);
        rt.stream.events += message.count() as u64;
        // SC&MP forwards the application's SDP message through the tag: that holds the Ethernet
        // chip's monitor for a request's fixed cost, in turn with the SCP requests it serves.
        // It needs one of SC&MP's message buffers meanwhile: with none free it is dropped (the
        // application sent it; the host never sees it).
        let service = scamp.service_time(ScampOp::Other, 0);
        let start = t.max(rt.server.free_at);
        let sent_at = start + service;
        if service > Duration::ZERO {
            if rt.server.held_at(t) >= usize::from(scamp.msg_buffers) {
                self.stats.dropped_buffers_full += 1;
                self.schedule(t + interval, Timer::Eieio { m, b, generation });
                return;
            }
            rt.server.held.push(sent_at);
            rt.server.free_at = sent_at;
            self.stats.scamp_wait_us += start.saturating_duration_since(t).as_micros();
            self.stats.scamp_busy_us += service.as_micros();
        }
        let tag = &mut rt.tags[tag_index];
        let payload = if tag.has(IptagFlags::STRIP) {
            message.as_bytes().to_vec()
        } else {
            let header = sdp::Repr {
                flags: Flags::NO_REPLY,
                tag: tag_index as u8,
                dest: Address::new(0, 0, sdp::PORT_ETH, sdp::CPU_ETH),
                src: Address::new((rt.eth.0 & 0xFF) as u8, (rt.eth.1 & 0xFF) as u8, 1, 1),
            };
            let mut buf = [0u8; sdp::MAX_UDP_PAYLOAD_LEN];
            match header.emit_udp(message.as_bytes(), &mut buf) {
                Ok(n) => buf[..n].to_vec(),
                Err(_) => return,
            }
        };
        rt.stream.bytes += payload.len() as u64;
        let datagram = Datagram {
            src: SocketAddrV4::new(ip, SCP_PORT),
            dst: tag.target(),
            payload,
        };
        self.stats.eieio_out += 1;
        if sent_at > t {
            let from = Source::Board {
                m,
                b,
                runtime_gen,
                tag: TagUse::Count(tag_index as u8),
            };
            let pending = Pending {
                datagram,
                from,
                rc: None,
            };
            self.schedule(sent_at, Timer::Send(Box::new(pending)));
        } else {
            tag.count = tag.count.wrapping_add(1);
            self.send(datagram, None);
        }
        self.schedule(t + interval, Timer::Eieio { m, b, generation });
    }

    /// A datagram to a board port other than 17893 and 54321: a reverse IP tag's, if one is set.
    pub(crate) fn reverse_tag_datagram(&mut self, now: Instant, m: usize, b: usize, port: u16, d: &Datagram) {
        let Some(s) = self.machines[m].slot_mut(b) else {
            return;
        };
        if s.dead {
            self.stats.dropped_dead += 1;
            return;
        }
        let up = s.is_up();
        let tag = s
            .runtime
            .as_mut()
            .filter(|r| up && r.phase == BootPhase::Booted)
            .and_then(|r| {
                r.tags
                    .iter_mut()
                    .find(|t| t.valid(now) && t.has(IptagFlags::REVERSE) && t.rx_port == port)
            });
        let Some(tag) = tag else {
            self.stats.dropped_unknown_dst += 1;
            return;
        };
        tag.count = tag.count.wrapping_add(1);
        if EieioMessage::parse(&d.payload).is_ok() {
            self.stats.eieio_in += 1;
        } else {
            self.stats.reverse_tag_other += 1;
        }
    }
}
