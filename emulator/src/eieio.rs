//! EIEIO between emulated applications and the host.
//!
//! Out: a booted board with a RUNNING application core and a forward user IP tag (0–7) streams
//! KEY_32_BIT data messages through the lowest such tag at [`crate::EieioConfig::rate`] datagrams
//! per second, from its Ethernet IP, port 17893. With the tag's STRIP flag the datagram is the
//! bare EIEIO message; without it, the padding and an SDP header (from the Ethernet chip, port 1,
//! core 1, to port 7 / cpu 31 with the tag) come first, as SC&MP sends through IP tags. Keys are
//! `eth_p2p << 16 | running counter`. Streaming stops as soon as the application stops, the tag
//! is cleared or the board goes away.
//!
//! In: a datagram to board-IP:P where a reverse IP tag listens on P is delivered to the tag's
//! core (counted: as EIEIO if it parses as an EIEIO message, otherwise as other traffic).

use crate::board::BootPhase;
use crate::{Datagram, Emulator, SCP_PORT, Timer};
use spinnbed_core::proto::eieio::{DataBuilder, DataHeader, EieioMessage, EieioType};
use spinnbed_core::proto::scp::IptagFlags;
use spinnbed_core::proto::sdp::{self, Address, Flags};
use spinnbed_core::time::{Duration, Instant};
use std::net::SocketAddrV4;

impl Emulator {
    /// Interval between streamed datagrams.
    fn stream_interval(&self) -> Option<Duration> {
        let rate = u64::from(self.cfg.eieio.rate);
        (rate > 0).then(|| Duration::from_micros((1_000_000 / rate).max(1)))
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
        let Some(interval) = self.stream_interval() else {
            return;
        };
        if !self.should_stream(now, m, b) {
            return;
        }
        let Some(rt) = self.machines[m].slot_mut(b).and_then(|s| s.runtime.as_mut()) else {
            return;
        };
        if rt.stream.active {
            return;
        }
        rt.stream.active = true;
        rt.stream.generation = rt.stream.generation.wrapping_add(1);
        let generation = rt.stream.generation;
        self.schedule(now + interval, Timer::Eieio { m, b, generation });
    }

    /// One streaming step: send a datagram and schedule the next, or stop.
    pub(crate) fn stream_tick(&mut self, t: Instant, m: usize, b: usize, generation: u32) {
        let keep = self.should_stream(t, m, b);
        let keys = self.cfg.eieio.keys_per_packet.clamp(1, 63);
        let interval = self.stream_interval();
        let Some(s) = self.machines[m].slot_mut(b) else {
            return;
        };
        let board_ip = s.ip;
        let Some(rt) = s.runtime.as_mut() else {
            return;
        };
        if !rt.stream.active || rt.stream.generation != generation {
            return;
        }
        let (Some(interval), Some(ip), Some(tag_index), true) = (interval, board_ip, rt.output_tag(t), keep) else {
            rt.stream.active = false;
            return;
        };
        let eth_p2p = ((rt.eth.0 & 0xFF) << 8) | (rt.eth.1 & 0xFF);
        let mut message = match DataBuilder::new(DataHeader::new(EieioType::Key32)) {
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
        let tag = &mut rt.tags[tag_index];
        tag.count = tag.count.wrapping_add(1);
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
        let dst = tag.target();
        self.stats.eieio_out += 1;
        self.send(
            Datagram {
                src: SocketAddrV4::new(ip, SCP_PORT),
                dst,
                payload,
            },
            None,
        );
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
