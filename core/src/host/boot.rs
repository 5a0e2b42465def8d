//! The boot sequencer: loads SC&MP into a board as rig and spinnman do (protocols.md §5).
//!
//! 1. Optionally probe first: CMD_VER to (255, 255, 0) (spinnman: 4 tries 1 s apart; rig: one
//!    try of 0.5 s). A board that answers as booted SC&MP needs no boot.
//! 2. Send the boot packets to UDP 54321 ([`boot_packets`]: START, one BLOCK per KiB of the
//!    patched image, CONTROL), fire-and-forget, one every `packet_gap` (rig 50 ms, spinnman
//!    100 ms).
//! 3. Wait `packet_gap` + `post_boot_delay` (2.0 s), then poll CMD_VER to (255, 255, 0) every
//!    `poll_interval` (0.1 s) until arg1's P2P address is not 0xFFFF and the ID says SC&MP.
//! 4. Optionally read `sv->p2p_dims` (2 bytes at 0xF5007F02, as rig's `read_struct_field`).
//!
//! A boot whose polls go unanswered (or that stays in netinit past `max_poll_time`) is retried
//! from step 2, up to `attempts` times (3). The outcome is [`BootOutcome::Booted`] or
//! [`BootOutcome::Failed`].
//!
//! [`stand_in_image`] makes a deterministic stand-in for the SC&MP image.

use super::{BOOT_PORT, OpRequest, Operation, Outcome, RequestOptions, SCP_PORT, ScpRequest};
use crate::proto::boot::{self, SystemVariables, boot_packets};
use crate::proto::scp::Request;
use crate::proto::{self, sdp};
use crate::time::{Duration, Instant};
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};

/// Length of rig 2.4.1's bundled SC&MP image (27 blocks, the last one 544 bytes).
pub const STAND_IN_IMAGE_LEN: usize = 27_168;

/// Address of `sv->p2p_dims` (byte 2 = height, byte 3 = width).
pub const SV_P2P_DIMS: u32 = 0xF500_7F02;

/// Unix time written into the stand-in system variables (no clock in core).
pub const DEFAULT_UNIX_TIME: u32 = 1_700_000_000;

/// A deterministic stand-in for an SC&MP image: `len` bytes (rounded down to a multiple of 4,
/// clamped to 512..=32 KiB) of fixed pseudo-random words (xorshift32 from a fixed seed), little
/// endian. [`boot_packets`] patches the system variables into bytes 384–511.
pub fn stand_in_image(len: usize) -> Vec<u8> {
    let len = (len / 4 * 4).clamp(boot::SV_PATCH_OFFSET + boot::SV_PATCH_LEN, boot::MAX_IMAGE_LEN);
    let mut x: u32 = 0xE3A0_D841; // rig's first image word, as a seed
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        out.extend_from_slice(&x.to_le_bytes());
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
    }
    out
}

/// How to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootConfig {
    /// The (unpatched) image.
    pub image: Vec<u8>,
    /// The system variables patched into it.
    pub sv: SystemVariables,
    /// Probe with CMD_VER before booting.
    pub probe: bool,
    /// Timeout and retries of the probe (spinnman: 1 s × 4; rig: 0.5 s × 1).
    pub probe_options: RequestOptions,
    /// Gap after each boot packet (rig 50 ms, spinnman 100 ms).
    pub packet_gap: Duration,
    /// Wait after the last packet's gap before polling (2.0 s).
    pub post_boot_delay: Duration,
    /// Interval between CMD_VER polls while the board reports P2P 0xFFFF (0.1 s).
    pub poll_interval: Duration,
    /// Timeout and retries of each poll (policy defaults unless set).
    pub poll_options: RequestOptions,
    /// Longest time one attempt keeps polling a board that answers "booting".
    pub max_poll_time: Duration,
    /// Boot attempts (3).
    pub attempts: u32,
    /// Read `sv->p2p_dims` once booted.
    pub read_dims: bool,
    /// SCP port (17893).
    pub scp_port: u16,
    /// Boot port (54321).
    pub boot_port: u16,
}

impl BootConfig {
    /// rig 2.4.1's `MachineController.boot` with its SpiNN-5 options.
    pub fn rig(image: Vec<u8>) -> BootConfig {
        BootConfig {
            image,
            sv: SystemVariables::rig(DEFAULT_UNIX_TIME),
            probe: true,
            probe_options: RequestOptions::fixed(Duration::from_millis(500), 0),
            packet_gap: Duration::from_millis(50),
            post_boot_delay: Duration::from_secs(2),
            poll_interval: Duration::from_millis(100),
            poll_options: RequestOptions::DEFAULT,
            max_poll_time: Duration::from_secs(30),
            attempts: 3,
            read_dims: true,
            scp_port: SCP_PORT,
            boot_port: BOOT_PORT,
        }
    }

    /// spinnman 1!7.4.1's boot (4 probes 1 s apart, 100 ms gap).
    pub fn spinnman(image: Vec<u8>) -> BootConfig {
        BootConfig {
            sv: SystemVariables::spinnman(DEFAULT_UNIX_TIME),
            probe_options: RequestOptions::fixed(Duration::from_secs(1), 3),
            packet_gap: Duration::from_millis(100),
            ..BootConfig::rig(image)
        }
    }

    /// The configuration used with the adaptive policy: rig's boot timing, a short probe.
    pub fn adaptive(image: Vec<u8>) -> BootConfig {
        BootConfig {
            probe_options: RequestOptions::fixed(Duration::from_millis(250), 1),
            ..BootConfig::rig(image)
        }
    }

    /// The configuration matching a client policy.
    pub fn for_policy(policy: &super::Policy, image: Vec<u8>) -> BootConfig {
        match policy {
            super::Policy::Spinnman(_) => BootConfig::spinnman(image),
            super::Policy::Rig(_) => BootConfig::rig(image),
            super::Policy::Adaptive(_) => BootConfig::adaptive(image),
        }
    }
}

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootOutcome {
    /// The board runs SC&MP.
    Booted {
        /// `sv->p2p_dims` as (width, height), if read.
        p2p_dims: Option<(u8, u8)>,
        /// Boot packet sequences sent (0 if the probe found it booted).
        attempts: u32,
        /// When it was found booted.
        at: Instant,
    },
    /// It did not boot.
    Failed(String),
}

/// What a boot sequencer reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootEvent {
    /// The boot ended.
    Done(BootOutcome),
    /// An attempt failed and the boot packets will be sent again.
    Retrying {
        /// The attempt that failed (1-based).
        attempt: u32,
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Probing,
    Sending {
        next: usize,
        at: Instant,
    },
    Settling {
        until: Instant,
    },
    Polling {
        next_poll: Option<Instant>,
        give_up: Instant,
    },
    ReadingDims,
    Done,
}

/// Boots one board. See the module documentation.
#[derive(Debug, Clone)]
pub struct BootSequencer {
    ip: Ipv4Addr,
    scp: SocketAddrV4,
    boot: SocketAddrV4,
    config: BootConfig,
    packets: Vec<Vec<u8>>,
    state: State,
    attempt: u32,
    next_token: u32,
    awaiting: Option<u32>,
    requests: VecDeque<OpRequest>,
    datagrams: VecDeque<(SocketAddrV4, Vec<u8>)>,
    events: VecDeque<BootEvent>,
}

impl BootSequencer {
    /// Starts booting the board at `ip`. Fails if the image is not bootable (see
    /// [`boot::check_image`]).
    pub fn new(now: Instant, ip: Ipv4Addr, config: BootConfig) -> Result<BootSequencer, proto::Error> {
        let packets: Vec<Vec<u8>> = boot_packets(&config.image, &config.sv)?.collect();
        let mut s = BootSequencer {
            ip,
            scp: SocketAddrV4::new(ip, config.scp_port),
            boot: SocketAddrV4::new(ip, config.boot_port),
            config,
            packets,
            state: State::Done,
            attempt: 0,
            next_token: 0,
            awaiting: None,
            requests: VecDeque::new(),
            datagrams: VecDeque::new(),
            events: VecDeque::new(),
        };
        if s.config.probe {
            s.state = State::Probing;
            s.sver(s.config.probe_options);
        } else {
            s.start_attempt(now);
        }
        Ok(s)
    }

    /// The board.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The SCP endpoint polled.
    pub fn remote(&self) -> SocketAddrV4 {
        self.scp
    }

    /// Boot packets per attempt (START, blocks, CONTROL).
    pub fn packets_per_attempt(&self) -> usize {
        self.packets.len()
    }

    /// True once the outcome has been reported.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The next report.
    pub fn poll_event(&mut self) -> Option<BootEvent> {
        self.events.pop_front()
    }

    fn submit(&mut self, request: &Request<'_>, options: RequestOptions) {
        let Ok(r) = ScpRequest::new(sdp::Address::ROOT_MONITOR, request) else {
            return;
        };
        self.next_token = self.next_token.wrapping_add(1);
        self.awaiting = Some(self.next_token);
        self.requests.push_back(OpRequest {
            remote: self.scp,
            request: r.with_options(options),
            token: self.next_token,
        });
    }

    fn sver(&mut self, options: RequestOptions) {
        self.submit(&Request::Version, options);
    }

    fn start_attempt(&mut self, now: Instant) {
        self.attempt += 1;
        self.awaiting = None;
        self.state = State::Sending { next: 0, at: now };
        self.advance(now);
    }

    fn finish(&mut self, outcome: BootOutcome) {
        self.state = State::Done;
        self.awaiting = None;
        self.events.push_back(BootEvent::Done(outcome));
    }

    fn attempt_failed(&mut self, now: Instant, reason: String) {
        if self.attempt < self.config.attempts {
            self.events.push_back(BootEvent::Retrying {
                attempt: self.attempt,
                reason,
            });
            self.start_attempt(now);
        } else {
            let msg = format!(
                "board {} did not boot after {} attempts: {reason}",
                self.ip, self.attempt
            );
            self.finish(BootOutcome::Failed(msg));
        }
    }

    fn booted(&mut self, now: Instant) {
        if self.config.read_dims {
            self.state = State::ReadingDims;
            self.submit(&Request::read(SV_P2P_DIMS, 2), RequestOptions::DEFAULT);
        } else {
            self.finish(BootOutcome::Booted {
                p2p_dims: None,
                attempts: self.attempt,
                at: now,
            });
        }
    }

    fn start_polling(&mut self, now: Instant) {
        self.state = State::Polling {
            next_poll: None,
            give_up: now + self.config.max_poll_time,
        };
        self.sver(self.config.poll_options);
    }

    fn advance(&mut self, now: Instant) {
        match self.state {
            State::Sending { mut next, mut at } => {
                while at <= now {
                    let Some(p) = self.packets.get(next) else { break };
                    self.datagrams.push_back((self.boot, p.clone()));
                    next += 1;
                    if next >= self.packets.len() {
                        self.state = State::Settling {
                            until: at + self.config.packet_gap + self.config.post_boot_delay,
                        };
                        return self.advance(now);
                    }
                    at += self.config.packet_gap;
                }
                self.state = State::Sending { next, at };
            }
            State::Settling { until } if until <= now => self.start_polling(now),
            State::Polling {
                next_poll: Some(t),
                give_up,
            } if t <= now && self.awaiting.is_none() => {
                self.state = State::Polling {
                    next_poll: None,
                    give_up,
                };
                self.sver(self.config.poll_options);
            }
            _ => {}
        }
    }

    /// A CMD_VER answer while probing or polling: `Some(true)` booted, `Some(false)` still in
    /// netinit, `None` not SC&MP.
    fn booted_state(reply: &super::OwnedReply) -> Result<bool, String> {
        let Some(v) = reply.version() else {
            return Err("no version in the CMD_VER reply".into());
        };
        if v.name() != "SC&MP" {
            return Err(format!("the board runs {:?}, not SC&MP", v.id));
        }
        Ok(!v.core().is_booting())
    }
}

impl Operation for BootSequencer {
    fn poll_request(&mut self) -> Option<OpRequest> {
        self.requests.pop_front()
    }

    fn poll_datagram(&mut self) -> Option<(SocketAddrV4, Vec<u8>)> {
        self.datagrams.pop_front()
    }

    fn handle_outcome(&mut self, now: Instant, token: u32, outcome: Outcome) {
        if self.awaiting != Some(token) {
            return;
        }
        self.awaiting = None;
        match (self.state, outcome) {
            (State::Probing, Ok(reply)) => match Self::booted_state(&reply) {
                Ok(true) => self.booted(now),
                Ok(false) => self.start_polling(now),
                Err(e) => self.finish(BootOutcome::Failed(e)),
            },
            (State::Probing, Err(_)) => self.start_attempt(now),
            (State::Polling { give_up, .. }, Ok(reply)) => match Self::booted_state(&reply) {
                Ok(true) => self.booted(now),
                Ok(false) if now >= give_up => {
                    let reason = format!("still booting after {}", self.config.max_poll_time);
                    self.attempt_failed(now, reason)
                }
                Ok(false) => {
                    self.state = State::Polling {
                        next_poll: Some(now + self.config.poll_interval),
                        give_up,
                    }
                }
                Err(e) => self.finish(BootOutcome::Failed(e)),
            },
            (State::Polling { .. }, Err(reason)) => self.attempt_failed(now, format!("CMD_VER {reason}")),
            (State::ReadingDims, outcome) => {
                let dims = outcome.ok().and_then(|r| match r.body() {
                    [h, w] => Some((*w, *h)),
                    _ => None,
                });
                self.finish(BootOutcome::Booted {
                    p2p_dims: dims,
                    attempts: self.attempt,
                    at: now,
                });
            }
            _ => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Sending { at, .. } => Some(at),
            State::Settling { until } => Some(until),
            State::Polling { next_poll, .. } if self.awaiting.is_none() => next_poll,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::policy::Policy;
    use crate::host::runner::{Host, HostConfig, HostEvent};
    use crate::host::testkit::{Net, board_ip, run_until_idle};
    use crate::proto::boot::{Opcode, Packet, Repr};

    fn boot_events(h: &mut Host) -> Vec<BootEvent> {
        std::iter::from_fn(|| h.poll_event())
            .filter_map(|e| match e {
                HostEvent::Boot { event, .. } => Some(event),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn stand_in_image_is_fixed() {
        let a = stand_in_image(STAND_IN_IMAGE_LEN);
        assert_eq!(a.len(), 27_168);
        assert_eq!(a, stand_in_image(STAND_IN_IMAGE_LEN));
        assert_eq!(&a[..4], &[0x41, 0xD8, 0xA0, 0xE3]);
        let packets: Vec<Vec<u8>> = boot_packets(&a, &SystemVariables::rig(DEFAULT_UNIX_TIME))
            .unwrap()
            .collect();
        assert_eq!(packets.len(), 29);
        assert_eq!(
            packets[0],
            crate::host::testkit::hex("00010000000100000000000000000000001a")
        );
        assert_eq!(packets[27].len(), 562);
        assert_eq!(stand_in_image(1).len(), 512);
        assert_eq!(stand_in_image(1 << 20).len(), 32 * 1024);
    }

    #[test]
    fn boots_an_unbooted_board_like_rig() {
        let mut h = Host::new(HostConfig::for_policy(Policy::rig()));
        let mut net = Net::new()
            .with_unbooted(board_ip(0))
            .with_delay(Duration::from_millis(1));
        net.boot_time = Duration::from_millis(250);
        let op = h
            .start_boot(
                Instant::ZERO,
                board_ip(0),
                BootConfig::rig(stand_in_image(STAND_IN_IMAGE_LEN)),
            )
            .unwrap();
        run_until_idle(&mut h, &mut net, Instant::from_secs(100));
        let ev = boot_events(&mut h);
        let [BootEvent::Done(BootOutcome::Booted { p2p_dims, attempts, at })] = &ev[..] else {
            panic!("{ev:?}");
        };
        assert_eq!((*p2p_dims, *attempts), (Some((8, 8)), 1));
        let _ = op;
        // The probe (one 0.5 s try), then START / 27 BLOCKs / CONTROL 50 ms apart from 0.5 s.
        let boot = net.sent_boot();
        assert_eq!(boot.len(), 29);
        for (i, s) in boot.iter().enumerate() {
            assert_eq!(s.at, Instant::from_millis(500 + 50 * i as u64));
            let p = Packet::new_checked(&s.bytes[..]).unwrap();
            let op = Repr::parse(&p).unwrap().opcode();
            let expect = match i {
                0 => Opcode::FloodFillStart,
                28 => Opcode::FloodFillControl,
                _ => Opcode::FloodFillBlock,
            };
            assert_eq!(op, expect);
        }
        // CONTROL at 1.9 s; polls from 1.9 + 0.05 + 2.0 = 3.95 s every 0.1 s (+1 ms RTT) until
        // the board is up at 1.9 + 0.25 s; then the p2p_dims read.
        let scp = net.sent_scp();
        let times: Vec<u64> = scp.iter().map(|s| s.at.as_millis()).collect();
        assert_eq!(times, vec![0, 3950, 3951]);
        assert_eq!(scp[2].bytes[10], 2, "CMD_READ of sv->p2p_dims");
        assert_eq!(*at, Instant::from_millis(3952));
    }

    #[test]
    fn polls_until_booted_and_retries_on_silence() {
        let mut h = Host::new(HostConfig::for_policy(Policy::spinnman()));
        let mut net = Net::new().with_unbooted(board_ip(1));
        net.boot_time = Duration::from_millis(4_310);
        net.boards.get_mut(&board_ip(1)).unwrap().ignore_boots = 1;
        let mut config = BootConfig::spinnman(stand_in_image(4096));
        config.read_dims = false;
        h.start_boot(Instant::ZERO, board_ip(1), config).unwrap();
        run_until_idle(&mut h, &mut net, Instant::from_secs(200));
        let ev = boot_events(&mut h);
        assert!(matches!(&ev[0], BootEvent::Retrying { attempt: 1, reason } if reason.contains("timed out after 11")));
        assert!(matches!(
            &ev[1],
            BootEvent::Done(BootOutcome::Booted {
                attempts: 2,
                p2p_dims: None,
                ..
            })
        ));
        // Probe: 4 transmissions of one sver 1 s apart (seq 0), then 6 boot packets 100 ms apart.
        let scp = net.sent_seqs();
        assert_eq!(&scp[..4], &[0, 1, 2, 3].map(|s| (Instant::from_secs(s), 0)));
        let boot = net.sent_boot();
        assert_eq!(boot.len(), 12);
        assert_eq!(boot[0].at, Instant::from_secs(4));
        assert_eq!(boot[5].at, Instant::from_millis(4_500));
        // Attempt 1's polls from 4.5 + 0.1 + 2.0 s: one sver, unanswered 11 times (1 s apart).
        assert_eq!(scp[4], (Instant::from_millis(6_600), 1));
        assert_eq!(scp[14], (Instant::from_millis(16_600), 1));
        // Attempt 2 at 17.6 s, CONTROL at 18.1 s; polls every 0.1 s from 18.1 + 0.1 + 2.0 s,
        // answered "booting" until the board is up at 18.1 + 4.31 s.
        assert_eq!(boot[6].at, Instant::from_millis(17_600));
        let polls: Vec<(u64, u16)> = scp[15..].iter().map(|(t, s)| (t.as_millis(), *s)).collect();
        let expect: Vec<(u64, u16)> = (0..24).map(|k| (20_200 + 100 * k, 2 + k as u16)).collect();
        assert_eq!(polls, expect);
    }

    #[test]
    fn already_booted_board_is_not_booted_again() {
        let mut h = Host::new(HostConfig::for_policy(Policy::adaptive()));
        let mut net = Net::new();
        h.start_boot(Instant::ZERO, board_ip(2), BootConfig::adaptive(stand_in_image(2048)))
            .unwrap();
        run_until_idle(&mut h, &mut net, Instant::from_secs(10));
        let ev = boot_events(&mut h);
        assert!(matches!(
            &ev[..],
            [BootEvent::Done(BootOutcome::Booted {
                attempts: 0,
                p2p_dims: Some((8, 8)),
                ..
            })]
        ));
        assert!(net.sent_boot().is_empty());
    }

    #[test]
    fn dead_board_fails_after_all_attempts() {
        let mut h = Host::new(HostConfig::for_policy(Policy::rig()));
        let mut net = Net::new().silent();
        let mut config = BootConfig::rig(stand_in_image(2048));
        config.attempts = 2;
        h.start_boot(Instant::ZERO, board_ip(3), config).unwrap();
        run_until_idle(&mut h, &mut net, Instant::from_secs(100));
        let ev = boot_events(&mut h);
        match &ev[..] {
            [BootEvent::Retrying { .. }, BootEvent::Done(BootOutcome::Failed(msg))] => {
                assert_eq!(
                    msg,
                    "board 127.0.1.3 did not boot after 2 attempts: CMD_VER timed out after 5 attempts"
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(net.sent_boot().len(), 2 * 4);
        assert!(h.is_idle());
        assert!(
            h.start_boot(Instant::ZERO, board_ip(3), BootConfig::rig(vec![0; 10]))
                .is_err()
        );
    }
}
