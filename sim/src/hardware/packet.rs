//! Packet-level hardware for simulated runs: the [`HostSide`] connected to the simulated
//! [`Network`] and the [`Emulator`].

use super::faults::ActiveFaults;
use super::host_side::{HOST_ADDR, HostSide};
use super::{Completion, Hardware, JobScp, ScpCounters, Session, SessionEvent};
use crate::netsim::{Datagram, Network};
use crate::scenario::{FaultKind, NetworkConfig};
use spinnbed_core::geometry::Machine;
use spinnbed_core::sched::JobId;
use spinnbed_core::service::BmpBatch;
use spinnbed_core::time::Instant;
use spinnbed_emulator::Emulator;
use std::net::Ipv4Addr;

/// The host side, the simulated network and the emulated machine, as [`Hardware`].
pub struct PacketHardware {
    side: HostSide,
    emu: Emulator,
    net: Network,
    faults: ActiveFaults,
}

impl std::fmt::Debug for PacketHardware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketHardware")
            .field("side", &self.side)
            .field("net", &self.net)
            .finish()
    }
}

impl PacketHardware {
    /// Hardware for `machines` with the given emulator settings, network and SCP policy.
    pub fn new(
        machines: &[Machine],
        emulator: spinnbed_emulator::Config,
        network: NetworkConfig,
        seed: u64,
        policy_name: &str,
        post_power_on_delay: spinnbed_core::time::Duration,
    ) -> PacketHardware {
        let emu = Emulator::new(machines, emulator);
        let side: Vec<Ipv4Addr> = emu.endpoints().iter().map(|a| *a.ip()).collect();
        let side_ = HostSide::new(machines, policy_name, post_power_on_delay);
        PacketHardware {
            side: side_,
            net: Network::new(network, seed, side),
            emu,
            faults: ActiveFaults::default(),
        }
    }

    /// The emulated machine (faults, inspection).
    pub fn emulator_mut(&mut self) -> &mut Emulator {
        &mut self.emu
    }

    /// The simulated network.
    pub fn network_mut(&mut self) -> &mut Network {
        &mut self.net
    }

    /// Moves datagrams and events between host, network and emulator until all is quiet at `now`.
    fn settle(&mut self, now: Instant) {
        loop {
            let mut moved = false;
            if self.side.poll_timeout().is_some_and(|t| t <= now) {
                self.side.handle_timeout(now);
                moved = true;
            }
            if self.emu.poll_timeout().is_some_and(|t| t <= now) {
                self.emu.handle_timeout(now);
                moved = true;
            }
            while let Some(d) = self.net.poll_deliver(now) {
                if d.dst == HOST_ADDR {
                    self.side.handle_datagram(now, d.src, &d.payload);
                } else {
                    self.emu.handle_datagram(now, d);
                }
                moved = true;
            }
            while let Some((dst, payload)) = self.side.poll_transmit() {
                self.net.send(
                    now,
                    Datagram {
                        src: HOST_ADDR,
                        dst,
                        payload,
                    },
                );
                moved = true;
            }
            while let Some(d) = self.emu.poll_transmit() {
                self.net.send(now, d);
                moved = true;
            }
            while self.emu.poll_event().is_some() {}
            moved |= self.side.process(now);
            if !moved {
                break;
            }
        }
    }
}

impl Hardware for PacketHardware {
    fn name(&self) -> &'static str {
        "emulator"
    }

    fn submit(&mut self, now: Instant, batch: BmpBatch) {
        self.side.submit(now, batch);
        self.settle(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [
            self.side.poll_timeout(),
            self.emu.poll_timeout(),
            self.net.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.settle(now);
    }

    fn poll_done(&mut self) -> Option<Completion> {
        self.side.poll_done()
    }

    fn start_session(&mut self, now: Instant, session: Session) {
        self.side.start_session(now, session);
        self.settle(now);
    }

    fn finish_session(&mut self, now: Instant, job: JobId) {
        self.side.finish_session(now, job);
        self.settle(now);
    }

    fn end_session(&mut self, job: JobId) {
        self.side.end_session(job);
    }

    fn poll_session(&mut self) -> Option<(JobId, SessionEvent)> {
        self.side.poll_session()
    }

    fn counters(&self) -> Option<ScpCounters> {
        Some(self.side.counters())
    }

    fn apply_fault(&mut self, _now: Instant, kind: &FaultKind, on: bool) {
        self.faults.apply(&mut self.emu, Some(&mut self.net), kind, on);
    }

    fn scp_stats(&self) -> Option<serde_json::Value> {
        let net = self.net.stats();
        let mut v = self.side.summary();
        v["datagrams"] = net.sent.into();
        v["lost"] = net.lost.into();
        Some(v)
    }

    fn job_scp(&self, job: JobId) -> Option<JobScp> {
        Some(self.side.job_scp(job).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spinnbed_core::geometry::{FrameId, MachineSpec};
    use spinnbed_core::proto::scp::{Request, RequestMessage};
    use spinnbed_core::proto::sdp;
    use std::net::SocketAddrV4;

    /// Overlapping silent-BMP faults: the BMP answers again only when the last one heals.
    #[test]
    fn overlapping_faults_heal_with_the_last_one() {
        let m = Machine::new(MachineSpec::new("m", 1, 1)).unwrap();
        let frame = FrameId { cabinet: 0, frame: 0 };
        let bmp = SocketAddrV4::new(m.bmp_ip(frame).unwrap(), 17893);
        let mut emu = Emulator::new(std::slice::from_ref(&m), spinnbed_emulator::Config::default());
        let mut faults = ActiveFaults::default();
        let silent = FaultKind::BmpSilent {
            machine: "m".into(),
            frame,
        };
        let ask = |emu: &mut Emulator, seq: u16| -> bool {
            let msg = RequestMessage {
                sdp: sdp::Repr::request(sdp::Address::scp(0, 0, 0)),
                seq,
                request: Request::Version,
            };
            let mut buf = vec![0u8; 64];
            let n = msg.emit_udp(&mut buf).unwrap();
            buf.truncate(n);
            let host = SocketAddrV4::new(std::net::Ipv4Addr::new(10, 9, 9, 9), 5000);
            emu.handle_datagram(
                Instant::ZERO,
                Datagram {
                    src: host,
                    dst: bmp,
                    payload: buf,
                },
            );
            let answered = emu.poll_transmit().is_some();
            while emu.poll_transmit().is_some() {}
            answered
        };
        assert!(ask(&mut emu, 1));
        faults.apply(&mut emu, None, &silent, true);
        faults.apply(&mut emu, None, &silent, true);
        assert!(!ask(&mut emu, 2));
        faults.apply(&mut emu, None, &silent, false);
        assert!(!ask(&mut emu, 3), "one of two faults healed: still silent");
        faults.apply(&mut emu, None, &silent, false);
        assert!(ask(&mut emu, 4));
    }
}
