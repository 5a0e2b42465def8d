//! [`SimulatedMachine`]: the transport of simulated packet-level runs — the simulated network
//! in front of the emulated machine, with the scenario's faults.

use super::faults::ActiveFaults;
use super::transport::Transport;
use crate::netsim::{NetStats, Network};
use crate::scenario::{FaultKind, NetworkConfig};
use spinnbed_core::datagram::Datagram;
use spinnbed_core::geometry::Machine;
use spinnbed_core::time::Instant;
use spinnbed_emulator::Emulator;
use std::net::{Ipv4Addr, SocketAddrV4};

/// The simulated network and the emulated machine behind it; datagrams to `host`'s address (any
/// port: its SCP socket and its live-output listener) are the host's, every other one goes to
/// the machine.
pub struct SimulatedMachine {
    emu: Emulator,
    net: Network,
    faults: ActiveFaults,
    host: SocketAddrV4,
}

impl std::fmt::Debug for SimulatedMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedMachine")
            .field("net", &self.net)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl SimulatedMachine {
    /// `machines` emulated with `emulator`'s settings behind a network with `network`'s
    /// settings (seeded with `seed`), for a host at `host`.
    pub fn new(
        machines: &[Machine],
        emulator: spinnbed_emulator::Config,
        network: NetworkConfig,
        seed: u64,
        host: SocketAddrV4,
    ) -> SimulatedMachine {
        let emu = Emulator::new(machines, emulator);
        let side: Vec<Ipv4Addr> = emu.endpoints().iter().map(|a| *a.ip()).collect();
        SimulatedMachine {
            net: Network::new(network, seed, side),
            emu,
            faults: ActiveFaults::default(),
            host,
        }
    }

    /// The emulated machine (inspection, faults by hand).
    pub fn emulator_mut(&mut self) -> &mut Emulator {
        &mut self.emu
    }

    /// Puts a new network in front of the machine (datagrams in flight on the old one are
    /// lost); the machine keeps its state.
    pub fn replace_network(&mut self, network: NetworkConfig, seed: u64) {
        let side: Vec<Ipv4Addr> = self.emu.endpoints().iter().map(|a| *a.ip()).collect();
        self.net = Network::new(network, seed, side);
    }
}

impl Transport for SimulatedMachine {
    fn name(&self) -> &'static str {
        "emulator"
    }

    fn receive(&mut self, now: Instant, deliver: &mut dyn FnMut(&Datagram)) -> bool {
        let mut moved = false;
        if self.emu.poll_timeout().is_some_and(|t| t <= now) {
            self.emu.handle_timeout(now);
            moved = true;
        }
        while let Some(d) = self.net.poll_deliver(now) {
            if d.dst.ip() == self.host.ip() {
                deliver(&d);
            } else {
                self.emu.handle_datagram(now, d);
            }
            moved = true;
        }
        moved
    }

    fn send(&mut self, now: Instant, d: Datagram) {
        self.net.send(now, d);
    }

    fn flush(&mut self, now: Instant) -> bool {
        let mut moved = false;
        while let Some(d) = self.emu.poll_transmit() {
            self.net.send(now, d);
            moved = true;
        }
        // Power and boot news is for `sim emulate`'s log; nobody reads it here.
        while self.emu.poll_event().is_some() {}
        moved
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [self.emu.poll_timeout(), self.net.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    fn apply_fault(&mut self, _now: Instant, kind: &FaultKind, on: bool) {
        self.faults.apply(&mut self.emu, Some(&mut self.net), kind, on);
    }

    fn net_stats(&self) -> Option<NetStats> {
        Some(self.net.stats())
    }

    fn after_flow(&mut self, board: Ipv4Addr) {
        self.net.redraw_burst_state(board);
    }

    fn live_output(&self, board: Ipv4Addr) -> Option<spinnbed_emulator::LiveOutputStats> {
        self.emu.live_output(board)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::host_side::HOST_ADDR;
    use crate::hardware::{Hardware, HostHardware, HostSide};
    use spinnbed_core::geometry::{FrameId, MachineSpec};
    use spinnbed_core::host::Policy;
    use spinnbed_core::sched::JobId;
    use spinnbed_core::service::{BatchId, BmpBatch};
    use spinnbed_core::time::Duration;
    use spinnbed_core::timing::MachineTiming;

    /// Packet level: a silent BMP fails a batch after the machine's own `bmp_tries` attempts,
    /// `bmp_retry_delay` apart (spinnman's power-on attempt times out after 10 s) — the timing
    /// settings used to be read and ignored.
    #[test]
    fn a_silent_bmp_fails_after_the_machines_tries_and_retry_delay() {
        for (tries, delay_s, fails_at_s) in [(2, 15, 35), (3, 5, 40)] {
            let m = Machine::new(MachineSpec::new("m", 1, 1)).unwrap();
            let timing = MachineTiming {
                bmp_tries: tries,
                bmp_retry_delay: Duration::from_secs(delay_s),
                ..MachineTiming::default()
            };
            let frame = FrameId { cabinet: 0, frame: 0 };
            let side = HostSide::new(HOST_ADDR, &[(m.clone(), timing)], Policy::spinnman(), Duration::ZERO);
            let net = NetworkConfig::default();
            let machine = SimulatedMachine::new(
                std::slice::from_ref(&m),
                spinnbed_emulator::Config::default(),
                net,
                1,
                HOST_ADDR,
            );
            let mut hw = HostHardware::new(side, machine);
            let silent = FaultKind::BmpSilent {
                machine: "m".into(),
                frame,
            };
            hw.apply_fault(Instant::ZERO, &silent, true);
            hw.submit(
                Instant::ZERO,
                BmpBatch {
                    id: BatchId(1),
                    job: JobId(1),
                    machine: "m".into(),
                    frame,
                    bmp: m.bmp_ip(frame).unwrap(),
                    power_on: vec![0],
                    power_off: Vec::new(),
                    links: Vec::new(),
                },
            );
            let mut now = Instant::ZERO;
            let done = loop {
                if let Some(d) = hw.poll_done() {
                    break d;
                }
                now = hw.poll_timeout().expect("the batch is still under way");
                hw.handle_timeout(now);
            };
            assert_eq!(
                done.1.unwrap_err().to_string(),
                format!("Requests failed on BMP {}", done.0.bmp)
            );
            let s = now.as_micros() as f64 / 1e6;
            assert!((s - fails_at_s as f64).abs() < 0.01, "{tries} tries: failed at {s} s");
        }
    }

    /// A loss burst that strikes while a flow transfer is under way sends the rest of it
    /// packet by packet: the user's whole input still arrives, the transfer counts once as a
    /// flow and once as packets, and its SCP requests cover every packet.
    #[test]
    fn a_fault_under_a_flow_transfer_sends_the_rest_packet_by_packet() {
        use crate::hardware::flow::{Calibrator, packets};
        use crate::hardware::{Session, SessionEvent};
        use spinnbed_core::geometry::Board;
        let m = Machine::new(MachineSpec::new("m", 1, 1)).unwrap();
        let board = Board::new(0, 0, 0);
        let net = NetworkConfig::default();
        let emu = spinnbed_emulator::Config::default();
        let policy = crate::scenario::ScpPolicy::Adaptive;
        let side = HostSide::new(
            HOST_ADDR,
            &[(m.clone(), MachineTiming::default())],
            Policy::adaptive(),
            Duration::ZERO,
        )
        .with_flow(Calibrator::new(emu.clone(), net.clone(), policy.into(), 1));
        let mut machine = SimulatedMachine::new(std::slice::from_ref(&m), emu, net, 1, HOST_ADDR);
        machine
            .emulator_mut()
            .restore_power(Instant::ZERO, "m", board, true, &[]);
        let mut hw = HostHardware::new(side, machine);
        let bytes = 4 * 1024 * 1024;
        hw.start_session(
            Instant::ZERO,
            Session {
                job: JobId(1),
                machine: "m".into(),
                boards: vec![board],
                boot: true,
                boot_tries: 3,
                data_in: bytes,
                data_out: 0,
                live: None,
            },
        );
        // Until the flow transfer starts (the boot is packet level).
        let mut now = Instant::ZERO;
        while hw.side().flows().unwrap().flow_transfers == 0 {
            now = hw.poll_timeout().expect("booting");
            hw.handle_timeout(now);
        }
        let burst = FaultKind::LossBurst {
            loss: 0.01,
            machine: None,
        };
        let mid = now + Duration::from_millis(500);
        hw.apply_fault(mid, &burst, true);
        let event = loop {
            if let Some((_, e)) = hw.poll_session() {
                break e;
            }
            now = hw.poll_timeout().expect("loading");
            hw.handle_timeout(now);
        };
        assert_eq!(event, SessionEvent::Running);
        let flows = hw.side().flows().unwrap();
        assert_eq!((flows.flow_transfers, flows.packet_transfers), (1, 1));
        let scp = hw.job_scp(JobId(1)).unwrap();
        assert_eq!(scp.data_bytes, bytes);
        assert!(scp.requests >= packets(bytes), "{scp:?}");
        // The flow part took 500 ms of the transfer; the rest at SC&MP's pace plus the burst's
        // resends: about 1.1 s for 4 MiB in all.
        let took = scp.transfer_us as f64 / 1e6;
        assert!((1.0..1.5).contains(&took), "{took} s");
    }
}
