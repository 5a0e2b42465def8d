//! Scenario faults on an emulated machine and the simulated network in front of it, shared by
//! packet-level runs and `sim emulate --impair`.

use crate::netsim::Network;
use crate::scenario::FaultKind;
use spinnbed_emulator::Emulator;
use std::collections::BTreeMap;

/// Strikes (`on`) or heals a scenario fault on an emulated machine and the network in front of
/// it (loss bursts need the network; without one they are ignored). Shared by the simulated
/// run and `sim emulate --impair`.
pub fn apply_fault(emu: &mut Emulator, net: Option<&mut Network>, kind: &FaultKind, on: bool) {
    match kind {
        FaultKind::BoardDies { machine, board } => emu.set_board_dead(machine, *board, on),
        FaultKind::LinkFails { machine, board, link } => emu.set_link_failed(machine, *board, *link, on),
        FaultKind::BmpSilent { machine, frame } => emu.set_bmp_silent(machine, *frame, on),
        FaultKind::LossBurst { loss, machine } => {
            let Some(net) = net else { return };
            let scope = machine.as_deref().map(|m| emu.machine_addresses(m));
            if on {
                net.start_loss_burst(*loss, scope);
            } else {
                net.end_loss_burst(*loss, scope);
            }
        }
    }
}

/// Faults under way, counted per target, so that overlapping faults on the same board, link or
/// BMP (or one healing at the instant another strikes) leave it faulty until the last heals.
#[derive(Debug, Default)]
pub struct ActiveFaults {
    counts: BTreeMap<String, u32>,
}

impl ActiveFaults {
    /// Strikes (`on`) or heals one fault; the emulator changes only when a target's first
    /// fault strikes or its last heals. Loss bursts combine in the network itself.
    pub fn apply(&mut self, emu: &mut Emulator, net: Option<&mut Network>, kind: &FaultKind, on: bool) {
        let key = match kind {
            FaultKind::BoardDies { machine, board } => format!("board {machine} {board}"),
            FaultKind::LinkFails { machine, board, link } => format!("link {machine} {board} {}", link.name()),
            FaultKind::BmpSilent { machine, frame } => format!("bmp {machine} {} {}", frame.cabinet, frame.frame),
            FaultKind::LossBurst { .. } => return apply_fault(emu, net, kind, on),
        };
        let c = self.counts.entry(key).or_insert(0);
        let was = *c > 0;
        *c = if on { *c + 1 } else { c.saturating_sub(1) };
        if was != (*c > 0) {
            apply_fault(emu, net, kind, on);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spinnbed_core::datagram::Datagram;
    use spinnbed_core::geometry::{FrameId, Machine, MachineSpec};
    use spinnbed_core::proto::scp::{Request, RequestMessage};
    use spinnbed_core::proto::sdp;
    use spinnbed_core::time::Instant;
    use std::net::SocketAddrV4;

    /// Overlapping silent-BMP faults: the BMP answers again only when the last one heals.
    #[test]
    fn overlapping_faults_heal_with_the_last_one() {
        let m = Machine::new(MachineSpec::new("m", 1, 1)).unwrap();
        let frame = FrameId { cabinet: 0, frame: 0 };
        let bmp = SocketAddrV4::new(m.bmp_ip(frame).unwrap(), 17893);
        // Answers at once (no SC&MP/BMP service times): only silence is under test.
        let config = spinnbed_emulator::Config {
            scamp: spinnbed_emulator::ScampTiming::ideal(),
            ..spinnbed_emulator::Config::default()
        };
        let mut emu = Emulator::new(std::slice::from_ref(&m), config);
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
