//! The BMP controller: executes the service's [`BmpBatch`]es on one BMP, as the reference
//! server's `AsyncBMPController` (spalloc_server.md §7) does.
//!
//! One controller per BMP (i.e. per frame); batches run one at a time in FIFO order. Each batch
//! gets up to 2 attempts, 15 s apart; an attempt is, in this fixed order:
//! 1. power on (if any boards): one CMD_POWER to board 0 with a mask of the boards,
//!    `arg1 = 1 | delay << 16`; wait the post-power-on delay (spinnman sleeps 5 s); then for each
//!    board read its BMP version (CMD_VER to that board; cached) and, if the major version is at
//!    least 2, the FLAG register (0x40004) of FPGAs 0, 1, 2 in turn, stopping at the first whose
//!    `value & 3` is not its number. The bad boards alone are powered on again, up to 3 rounds,
//!    then the attempt fails with "Could not get correct FPGA ID after 3 tries";
//! 2. every link request, in order: skipped if the board's BMP major version is below 2, else
//!    CMD_LINK_WRITE of 1 (disable) or 0 (enable) to the link's FPGA STOP register
//!    ([`fpga::stop_register`]);
//! 3. power off (if any boards): one CMD_POWER to board 0 with the mask.
//!
//! The outcome is `Ok(())` or [`BmpFailure::RequestsFailed`] ("Requests failed on BMP <ip>"). Requests go through an SCP
//! client with the scenario's policy; [`BmpConfig`] holds the per-command timeouts of the real
//! clients (a power-on reply only comes once the boards are up, so it waits long).

use super::policy::Policy;
use super::{FailReason, OpRequest, Operation, Outcome, RequestOptions, SCP_PORT, ScpRequest};
use crate::proto::scp::{Request, fpga};
use crate::proto::sdp;
use crate::reason::BmpFailure;
use crate::service::{BatchId, BmpBatch};
use crate::time::{Duration, Instant};
use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Why one attempt of a batch failed (the batch is tried again, or fails with
/// [`BmpFailure::RequestsFailed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptFailure {
    /// An SCP request failed.
    Request(FailReason),
    /// FPGA IDs stayed wrong after this many power-on rounds: "Could not get correct FPGA ID
    /// after 3 tries" (the reference's words).
    FpgaIds {
        /// Power-on rounds made.
        rounds: u32,
    },
    /// A board number that does not fit an SCP request to a BMP (0–31).
    NotAddressable {
        /// The board number within its frame.
        board: u16,
    },
    /// A board's BMP version reply could not be read.
    UnreadableVersion {
        /// The board.
        board: u8,
    },
    /// A FLAG register read came back short.
    ShortFlag {
        /// The board.
        board: u8,
    },
}

impl std::fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttemptFailure::Request(r) => r.fmt(f),
            AttemptFailure::FpgaIds { rounds } => write!(f, "Could not get correct FPGA ID after {rounds} tries"),
            AttemptFailure::NotAddressable { board } => write!(f, "board {board} is not addressable on a BMP"),
            AttemptFailure::UnreadableVersion { board } => write!(f, "unreadable BMP version of board {board}"),
            AttemptFailure::ShortFlag { board } => write!(f, "short FLAG reply from board {board}"),
        }
    }
}

/// Timeouts, retries and the shape of the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BmpConfig {
    /// UDP port of the BMP (17893).
    pub port: u16,
    /// CMD_POWER on.
    pub power_on: RequestOptions,
    /// CMD_POWER off.
    pub power_off: RequestOptions,
    /// CMD_VER to a board's BMP.
    pub version: RequestOptions,
    /// FLAG register reads.
    pub fpga_read: RequestOptions,
    /// STOP register writes.
    pub fpga_write: RequestOptions,
    /// Power-on stagger per board id in ms (`arg1 bits 31..16`; the reference sends 0).
    pub power_delay_ms: u16,
    /// Wait after each power-on reply before checking FPGAs (spinnman: 5 s).
    pub post_power_on_delay: Duration,
    /// Power-on rounds before giving up on FPGA IDs (3).
    pub fpga_rounds: u32,
    /// Attempts per batch (2).
    pub tries: u32,
    /// Wait between attempts (15 s).
    pub retry_interval: Duration,
    /// Smallest BMP major version with FPGA register support (2).
    pub min_fpga_version: u16,
    /// Read each board's BMP version once and remember it. Off by default: the reference reads
    /// it before every FPGA check, and so does [`BmpConfig::spinnman`].
    pub cache_versions: bool,
}

impl BmpConfig {
    /// spinnman 1!7.4.1's BMP calls as the reference server makes them: power on 10 s with no
    /// retries then a 5 s sleep, power off 0.5 s with no retries, version and FPGA register
    /// access 1 s with 3 retries.
    pub fn spinnman() -> BmpConfig {
        let single = RequestOptions::fixed(Duration::from_secs(1), 3);
        BmpConfig {
            port: SCP_PORT,
            power_on: RequestOptions::fixed(Duration::from_secs(10), 0),
            power_off: RequestOptions::fixed(Duration::from_millis(500), 0),
            version: single,
            fpga_read: single,
            fpga_write: single,
            power_delay_ms: 0,
            post_power_on_delay: Duration::from_secs(5),
            fpga_rounds: 3,
            tries: 2,
            retry_interval: Duration::from_secs(15),
            min_fpga_version: 2,
            cache_versions: false,
        }
    }

    /// rig 2.4.1's `BMPController`: 0.5 s and 5 tries for everything, +5 s for power-on.
    pub fn rig() -> BmpConfig {
        let single = RequestOptions::fixed(Duration::from_millis(500), 4);
        BmpConfig {
            power_on: RequestOptions::fixed(Duration::from_millis(5_500), 4),
            power_off: single,
            version: single,
            fpga_read: single,
            fpga_write: single,
            ..BmpConfig::spinnman()
        }
    }

    /// The adaptive policy's: RTT-driven timers for quick commands, a long fixed timeout with
    /// two retries for power-on (whose reply waits for the boards).
    pub fn adaptive() -> BmpConfig {
        BmpConfig {
            power_on: RequestOptions::fixed(Duration::from_secs(10), 2),
            power_off: RequestOptions::DEFAULT,
            version: RequestOptions::DEFAULT,
            fpga_read: RequestOptions::DEFAULT,
            fpga_write: RequestOptions::DEFAULT,
            ..BmpConfig::spinnman()
        }
    }

    /// The configuration matching a client policy.
    pub fn for_policy(policy: &Policy) -> BmpConfig {
        match policy {
            Policy::Spinnman(_) => BmpConfig::spinnman(),
            Policy::Rig(_) => BmpConfig::rig(),
            Policy::Adaptive(_) => BmpConfig::adaptive(),
        }
    }
}

impl Default for BmpConfig {
    fn default() -> Self {
        BmpConfig::spinnman()
    }
}

/// What a BMP controller reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BmpEvent {
    /// A batch finished.
    BatchDone {
        /// The batch's id.
        batch_id: BatchId,
        /// How it went.
        result: Result<(), BmpFailure>,
    },
    /// An attempt of a batch failed (diagnostics; a retry or the failure follows).
    AttemptFailed {
        /// The batch's id.
        batch_id: BatchId,
        /// 1-based attempt number.
        attempt: u32,
        /// What went wrong.
        reason: AttemptFailure,
    },
}

/// Where a board's check stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// The BMP version is needed next.
    Version,
    /// FLAG of this FPGA is read next.
    Flag(u8),
}

/// The step of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Power `boards` on (round `round`).
    PowerOn { round: u32, boards: Vec<u8> },
    /// Wait after a power-on.
    Settle {
        round: u32,
        boards: Vec<u8>,
        until: Instant,
    },
    /// Check `boards[pos]`; boards found bad so far in `bad`.
    Check {
        round: u32,
        boards: Vec<u8>,
        pos: usize,
        probe: Probe,
        bad: Vec<u8>,
    },
    /// Link request `pos`.
    Link { pos: usize, probe: Probe },
    /// Power the boards off.
    PowerOff,
    /// Wait before the next attempt.
    RetryWait { until: Instant },
}

/// The batch being executed.
#[derive(Debug, Clone)]
struct Run {
    batch: BmpBatch,
    attempt: u32,
    step: Step,
}

/// Executes [`BmpBatch`]es on one BMP. See the module documentation.
#[derive(Debug, Clone)]
pub struct BmpController {
    bmp: Ipv4Addr,
    remote: SocketAddrV4,
    config: BmpConfig,
    queue: VecDeque<BmpBatch>,
    run: Option<Run>,
    versions: BTreeMap<u8, (u16, u16, u16)>,
    next_token: u32,
    awaiting: Option<u32>,
    requests: VecDeque<OpRequest>,
    events: VecDeque<BmpEvent>,
}

impl BmpController {
    /// A controller for the BMP at `bmp`.
    pub fn new(bmp: Ipv4Addr, config: BmpConfig) -> BmpController {
        BmpController {
            bmp,
            remote: SocketAddrV4::new(bmp, config.port),
            config,
            queue: VecDeque::new(),
            run: None,
            versions: BTreeMap::new(),
            next_token: 0,
            awaiting: None,
            requests: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The BMP's address.
    pub fn bmp(&self) -> Ipv4Addr {
        self.bmp
    }

    /// The SCP endpoint requests go to.
    pub fn remote(&self) -> SocketAddrV4 {
        self.remote
    }

    /// Queues a batch (FIFO); it starts at once if the controller is idle.
    pub fn submit(&mut self, now: Instant, batch: BmpBatch) {
        self.queue.push_back(batch);
        if self.run.is_none() {
            self.next_batch(now);
        }
    }

    /// The next batch outcome or diagnostic.
    pub fn poll_event(&mut self) -> Option<BmpEvent> {
        self.events.pop_front()
    }

    /// True when no batch is running or queued.
    pub fn is_idle(&self) -> bool {
        self.run.is_none() && self.queue.is_empty()
    }

    /// Batches waiting behind the running one.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The BMP versions learnt so far, by board.
    pub fn versions(&self) -> &BTreeMap<u8, (u16, u16, u16)> {
        &self.versions
    }

    fn next_batch(&mut self, now: Instant) {
        let Some(batch) = self.queue.pop_front() else { return };
        self.run = Some(Run {
            step: Step::PowerOff,
            batch,
            attempt: 0,
        });
        self.start_attempt(now);
    }

    fn start_attempt(&mut self, now: Instant) {
        let Some(run) = self.run.as_mut() else { return };
        run.attempt += 1;
        self.awaiting = None;
        let boards = match boards_u8(&run.batch.power_on) {
            Ok(b) => b,
            Err(e) => return self.attempt_failed(now, e),
        };
        run.step = if !boards.is_empty() {
            Step::PowerOn { round: 0, boards }
        } else {
            Step::Link {
                pos: 0,
                probe: Probe::Version,
            }
        };
        self.advance(now);
    }

    fn send(&mut self, board: u8, request: &Request<'_>, options: RequestOptions) {
        let Ok(request) = ScpRequest::new(sdp::Address::scp(0, 0, board), request) else {
            return;
        };
        self.next_token = self.next_token.wrapping_add(1);
        self.awaiting = Some(self.next_token);
        self.requests.push_back(OpRequest {
            remote: self.remote,
            request: request.with_options(options),
            token: self.next_token,
        });
    }

    /// Performs steps until one waits for a reply or a timer, or the batch ends.
    fn advance(&mut self, now: Instant) {
        for _ in 0..10_000 {
            if self.awaiting.is_some() {
                return;
            }
            let Some(run) = self.run.as_mut() else { return };
            let min_major = self.config.min_fpga_version;
            match &mut run.step {
                Step::PowerOn { boards, .. } => {
                    let mask = mask_of(boards);
                    let on = Request::Power {
                        on: true,
                        delay_ms: self.config.power_delay_ms,
                        boards: mask,
                    };
                    self.send(0, &on, self.config.power_on);
                    return;
                }
                Step::Settle { until, round, boards } => {
                    if now < *until {
                        return;
                    }
                    run.step = Step::Check {
                        round: *round,
                        boards: core::mem::take(boards),
                        pos: 0,
                        probe: Probe::Version,
                        bad: Vec::new(),
                    };
                }
                Step::Check {
                    round,
                    boards,
                    pos,
                    probe,
                    bad,
                } => {
                    let Some(&board) = boards.get(*pos) else {
                        if bad.is_empty() {
                            run.step = Step::Link {
                                pos: 0,
                                probe: Probe::Version,
                            };
                        } else if *round + 1 < self.config.fpga_rounds {
                            run.step = Step::PowerOn {
                                round: *round + 1,
                                boards: core::mem::take(bad),
                            };
                        } else {
                            let reason = AttemptFailure::FpgaIds {
                                rounds: self.config.fpga_rounds,
                            };
                            return self.attempt_failed(now, reason);
                        }
                        continue;
                    };
                    match *probe {
                        Probe::Version => match known(self.config.cache_versions, &self.versions, board) {
                            Some((major, ..)) if major < min_major => {
                                *pos += 1;
                            }
                            Some(_) => *probe = Probe::Flag(0),
                            None => {
                                self.send(board, &Request::Version, self.config.version);
                                return;
                            }
                        },
                        Probe::Flag(f) if f >= fpga::NUM_FPGAS => {
                            *pos += 1;
                            *probe = Probe::Version;
                        }
                        Probe::Flag(f) => {
                            self.send(
                                board,
                                &Request::fpga_read(f, fpga::FLAG_REGISTER),
                                self.config.fpga_read,
                            );
                            return;
                        }
                    }
                }
                Step::Link { pos, probe } => {
                    let Some(&(board, link, enable)) = run.batch.links.get(*pos) else {
                        if run.batch.power_off.is_empty() {
                            return self.batch_done(now, Ok(()));
                        }
                        run.step = Step::PowerOff;
                        continue;
                    };
                    let Ok(board) = u8::try_from(board).map_err(|_| ()).and_then(check_board) else {
                        return self.attempt_failed(now, AttemptFailure::NotAddressable { board });
                    };
                    match *probe {
                        Probe::Version => match known(self.config.cache_versions, &self.versions, board) {
                            Some((major, ..)) if major < min_major => *pos += 1,
                            Some(_) => *probe = Probe::Flag(0),
                            None => {
                                self.send(board, &Request::Version, self.config.version);
                                return;
                            }
                        },
                        Probe::Flag(_) => {
                            let (f, addr) = fpga::stop_register(link);
                            let value = if enable {
                                &fpga::STOP_ENABLE
                            } else {
                                &fpga::STOP_DISABLE
                            };
                            self.send(board, &Request::fpga_write(f, addr, value), self.config.fpga_write);
                            return;
                        }
                    }
                }
                Step::PowerOff => {
                    let boards = match boards_u8(&run.batch.power_off) {
                        Ok(b) => b,
                        Err(e) => return self.attempt_failed(now, e),
                    };
                    let off = Request::Power {
                        on: false,
                        delay_ms: 0,
                        boards: mask_of(&boards),
                    };
                    self.send(0, &off, self.config.power_off);
                    return;
                }
                Step::RetryWait { until } => {
                    if now < *until {
                        return;
                    }
                    return self.start_attempt(now);
                }
            }
        }
    }

    fn attempt_failed(&mut self, now: Instant, reason: AttemptFailure) {
        self.awaiting = None;
        let Some(run) = self.run.as_mut() else { return };
        self.events.push_back(BmpEvent::AttemptFailed {
            batch_id: run.batch.id,
            attempt: run.attempt,
            reason,
        });
        if run.attempt < self.config.tries {
            run.step = Step::RetryWait {
                until: now + self.config.retry_interval,
            };
            self.advance(now);
        } else {
            let result = Err(BmpFailure::RequestsFailed { bmp: self.bmp });
            self.batch_done(now, result);
        }
    }

    fn batch_done(&mut self, now: Instant, result: Result<(), BmpFailure>) {
        self.awaiting = None;
        if let Some(run) = self.run.take() {
            self.events.push_back(BmpEvent::BatchDone {
                batch_id: run.batch.id,
                result,
            });
        }
        self.next_batch(now);
    }

    /// The reply to the awaited request arrived.
    fn on_reply(&mut self, now: Instant, reply: super::OwnedReply) {
        let post_delay = self.config.post_power_on_delay;
        let min_major = self.config.min_fpga_version;
        let Some(run) = self.run.as_mut() else { return };
        match &mut run.step {
            Step::PowerOn { round, boards } => {
                run.step = Step::Settle {
                    round: *round,
                    boards: core::mem::take(boards),
                    until: now + post_delay,
                };
            }
            Step::Check {
                boards,
                pos,
                probe,
                bad,
                ..
            } => {
                let Some(&board) = boards.get(*pos) else { return };
                match *probe {
                    Probe::Version => {
                        let Some(v) = reply.version().and_then(|v| v.software_version()) else {
                            return self.attempt_failed(now, AttemptFailure::UnreadableVersion { board });
                        };
                        self.versions.insert(board, v);
                        if v.0 < min_major {
                            *pos += 1;
                        } else {
                            *probe = Probe::Flag(0);
                        }
                    }
                    Probe::Flag(f) => {
                        let Some(value) = reply.arg1() else {
                            return self.attempt_failed(now, AttemptFailure::ShortFlag { board });
                        };
                        if fpga::fpga_id(value) == f {
                            *probe = Probe::Flag(f + 1);
                        } else {
                            bad.push(board);
                            *pos += 1;
                            *probe = Probe::Version;
                        }
                    }
                }
            }
            Step::Link { pos, probe } => match *probe {
                Probe::Version => {
                    let board = run
                        .batch
                        .links
                        .get(*pos)
                        .and_then(|(b, ..)| u8::try_from(*b).ok())
                        .unwrap_or(0);
                    let Some(v) = reply.version().and_then(|v| v.software_version()) else {
                        return self.attempt_failed(now, AttemptFailure::UnreadableVersion { board });
                    };
                    self.versions.insert(board, v);
                    if v.0 < min_major {
                        *pos += 1;
                    } else {
                        *probe = Probe::Flag(0);
                    }
                }
                Probe::Flag(_) => {
                    *pos += 1;
                    *probe = Probe::Version;
                }
            },
            Step::PowerOff => return self.batch_done(now, Ok(())),
            Step::Settle { .. } | Step::RetryWait { .. } => {}
        }
        self.advance(now);
    }
}

impl Operation for BmpController {
    fn poll_request(&mut self) -> Option<OpRequest> {
        self.requests.pop_front()
    }

    fn handle_outcome(&mut self, now: Instant, token: u32, outcome: Outcome) {
        if self.awaiting != Some(token) {
            return;
        }
        self.awaiting = None;
        match outcome {
            Ok(reply) => self.on_reply(now, reply),
            Err(reason) => self.attempt_failed(now, AttemptFailure::Request(reason)),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self.run.as_ref().map(|r| &r.step) {
            Some(Step::Settle { until, .. }) | Some(Step::RetryWait { until }) if self.awaiting.is_none() => {
                Some(*until)
            }
            _ => None,
        }
    }
}

/// A board's BMP version, if known and caching is on.
fn known(cache: bool, versions: &BTreeMap<u8, (u16, u16, u16)>, board: u8) -> Option<(u16, u16, u16)> {
    if cache { versions.get(&board).copied() } else { None }
}

/// Board numbers must fit the SDP cpu field (0..=31).
fn check_board(board: u8) -> Result<u8, ()> {
    if board < 32 { Ok(board) } else { Err(()) }
}

fn boards_u8(boards: &[u16]) -> Result<Vec<u8>, AttemptFailure> {
    boards
        .iter()
        .map(|&b| {
            u8::try_from(b)
                .map_err(|_| ())
                .and_then(check_board)
                .map_err(|_| AttemptFailure::NotAddressable { board: b })
        })
        .collect()
}

fn mask_of(boards: &[u8]) -> u32 {
    boards
        .iter()
        .fold(0u32, |m, &b| m | 1u32.checked_shl(u32::from(b)).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{FrameId, Link};
    use crate::host::runner::{Host, HostConfig, HostEvent};
    use crate::host::testkit::{Net, bmp_ip, hex, run_until_idle};

    fn batch(id: u64, on: &[u16], off: &[u16], links: &[(u16, Link, bool)]) -> BmpBatch {
        BmpBatch {
            id: BatchId(id),
            job: crate::sched::JobId(1),
            machine: "m".into(),
            frame: FrameId { cabinet: 0, frame: 0 },
            bmp: bmp_ip(0),
            power_on: on.to_vec(),
            power_off: off.to_vec(),
            links: links.to_vec(),
        }
    }

    fn host(policy: Policy) -> Host {
        Host::new(HostConfig::for_policy(policy))
    }

    fn done(h: &mut Host) -> Vec<(u64, Result<(), String>)> {
        std::iter::from_fn(|| h.poll_event())
            .filter_map(|e| match e {
                HostEvent::BatchDone { batch_id, result, .. } => Some((batch_id.0, result.map_err(|e| e.to_string()))),
                _ => None,
            })
            .collect()
    }

    /// The datagram with its sequence number zeroed.
    fn unseq(d: &[u8]) -> String {
        let mut d = d.to_vec();
        d[12] = 0;
        d[13] = 0;
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn capture(h: &str) -> String {
        unseq(&hex(h))
    }

    #[test]
    fn reference_byte_sequence() {
        // Power on boards 0,1,2; disable SW of board 1 and enable north-east of board 2;
        // power off boards 3, 4 — compared with protocol_captures.md §4 / §7.
        let mut h = host(Policy::spinnman());
        let mut net = Net::new().with_bmp(bmp_ip(0));
        let b = batch(
            7,
            &[0, 1, 2],
            &[3, 4],
            &[(1, Link::SouthWest, false), (3, Link::NorthEast, false)],
        );
        h.submit_bmp_batch(Instant::ZERO, b);
        let end = run_until_idle(&mut h, &mut net, Instant::from_secs(100));
        assert_eq!(done(&mut h), vec![(7, Ok(()))]);
        let sent: Vec<String> = net.sent_scp().iter().map(|s| unseq(&s.bytes)).collect();
        let mut expect = vec![
            // spinnman SetPower(ON, boards [0,1,2]).
            capture("000087ff00ff0000000039003412010000000700000000000000"),
        ];
        for board in 0..3u8 {
            // BMPGetVersion(board) then ReadFPGARegister(fpga, 0x40004, board) for 0, 1, 2.
            expect.push(capture(&format!(
                "000087ff{board:02x}ff0000000000003412000000000000000000000000"
            )));
            for f in 0..3u8 {
                expect.push(capture(&format!(
                    "000087ff{board:02x}ff00000000110034120400040004000000{f:02x}000000"
                )));
            }
        }
        // Board 1's version again (the reference reads it before every FPGA access), then rig
        // write_fpga_reg(fpga=1, 0x5C, 1, board=1) — the link-disable capture.
        expect.push(capture("000087ff01ff0000000000003412000000000000000000000000"));
        expect.push(capture("000087ff01ff00000000120000005c000000040000000100000001000000"));
        // Board 3's version, then spinnman WriteFPGARegister(fpga 2, 0x1005C, 1, board 3).
        expect.push(capture("000087ff03ff0000000000003412000000000000000000000000"));
        expect.push(capture("000087ff03ff00000000120034125c000100040000000200000001000000"));
        // spinnman SetPower OFF boards [3,4].
        expect.push(capture("000087ff00ff0000000039000100000000001800000000000000"));
        assert_eq!(sent, expect);
        // Sequence numbers 0, 1, 2, …
        let seqs: Vec<u16> = net.sent_seqs().iter().map(|(_, s)| *s).collect();
        assert_eq!(seqs, (0..seqs.len() as u16).collect::<Vec<_>>());
        // The 5 s post-power-on sleep.
        assert_eq!(net.sent_seqs()[1].0, Instant::from_secs(5));
        assert_eq!(end, Instant::from_secs(5));
        let writes = &net.bmps[&bmp_ip(0)].writes;
        assert_eq!(writes, &vec![(1, 1, 0x5C, 1), (3, 2, 0x1005C, 1)]);
    }

    #[test]
    fn bad_flag_repowers_only_bad_boards() {
        let mut h = host(Policy::spinnman());
        let mut net = Net::new().with_bmp(bmp_ip(0));
        // Board 1's FPGA 1 reports ID 0 once.
        net.bmps.get_mut(&bmp_ip(0)).unwrap().flags.insert((1, 1), [0].into());
        h.submit_bmp_batch(Instant::ZERO, batch(1, &[0, 1, 2], &[], &[(2, Link::East, true)]));
        run_until_idle(&mut h, &mut net, Instant::from_secs(100));
        assert_eq!(done(&mut h), vec![(1, Ok(()))]);
        let bmp = &net.bmps[&bmp_ip(0)];
        let masks: Vec<u32> = bmp.power.iter().map(|p| p.2).collect();
        assert_eq!(masks, vec![0b111, 0b010]);
        assert_eq!(
            bmp.power[1].0,
            Instant::from_secs(5),
            "re-powered after the first check"
        );
        // Enable = write 0 to east's STOP (FPGA 0, 0x5C) of board 2.
        assert_eq!(bmp.writes, vec![(2, 0, 0x5C, 0)]);
        // As the reference, a VER before every board's FPGA check and link write (no cache): three
        // in round 1, one for board 1's second check, one for board 2's STOP write.
        let vers = net.sent_scp().iter().filter(|s| s.bytes[10] == 0).count();
        assert_eq!(vers, 5);
        // Short-circuit: board 1's FPGA 2 was not read in round 1 (FPGA 1 was already bad).
        let flag_reads_board1 = net
            .sent_scp()
            .iter()
            .filter(|s| s.bytes[10] == 0x11 && s.bytes[4] == 1)
            .count();
        assert_eq!(flag_reads_board1, 2 + 3);
    }

    #[test]
    fn fpga_failure_after_three_rounds_and_two_tries_15s_apart() {
        let mut h = host(Policy::spinnman());
        let mut net = Net::new().with_bmp(bmp_ip(0));
        net.bmps
            .get_mut(&bmp_ip(0))
            .unwrap()
            .flags
            .insert((0, 2), [3; 10].into());
        h.submit_bmp_batch(Instant::ZERO, batch(3, &[0], &[], &[]));
        run_until_idle(&mut h, &mut net, Instant::from_secs(1000));
        let events: Vec<HostEvent> = std::iter::from_fn(|| h.poll_event()).collect();
        let reasons: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                HostEvent::BmpAttemptFailed { reason, .. } => Some(reason.to_string()),
                _ => None,
            })
            .collect();
        let fpga = "Could not get correct FPGA ID after 3 tries";
        assert_eq!(reasons, vec![fpga, fpga]);
        assert!(events.contains(&HostEvent::BatchDone {
            batch_id: BatchId(3),
            bmp: bmp_ip(0),
            result: Err(BmpFailure::RequestsFailed { bmp: bmp_ip(0) }),
        }));
        let times: Vec<Instant> = net.bmps[&bmp_ip(0)].power.iter().map(|p| p.0).collect();
        // Rounds every 5 s (power, sleep, check), then 15 s before the second attempt.
        assert_eq!(
            times,
            [0, 5, 10, 30, 35, 40].map(Instant::from_secs).to_vec(),
            "attempt 2 starts 15 s after attempt 1 failed at 15 s"
        );
    }

    #[test]
    fn silent_bmp_fails_after_two_tries() {
        let mut h = host(Policy::spinnman());
        let mut net = Net::new().with_bmp(bmp_ip(0)).silent();
        h.submit_bmp_batch(Instant::ZERO, batch(4, &[0, 1], &[], &[]));
        h.submit_bmp_batch(Instant::ZERO, batch(5, &[], &[0, 1], &[]));
        run_until_idle(&mut h, &mut net, Instant::from_secs(1000));
        let d = done(&mut h);
        let err = Err("Requests failed on BMP 127.0.2.0".to_string());
        assert_eq!(d, vec![(4, err.clone()), (5, err)]);
        let times: Vec<u64> = net.sent_seqs().iter().map(|(t, _)| t.as_millis()).collect();
        // Power on: one 10 s attempt, 15 s pause, one more; then the FIFO's next batch: power
        // off with 0.5 s and no retries, twice.
        assert_eq!(times, vec![0, 25_000, 35_000, 50_500]);
    }

    #[test]
    fn old_bmp_skips_fpga_work() {
        let mut h = host(Policy::rig());
        let mut net = Net::new().with_bmp(bmp_ip(0));
        net.bmps.get_mut(&bmp_ip(0)).unwrap().version = Some("1.3.0");
        h.submit_bmp_batch(Instant::ZERO, batch(9, &[4], &[], &[(4, Link::West, false)]));
        run_until_idle(&mut h, &mut net, Instant::from_secs(100));
        assert_eq!(done(&mut h), vec![(9, Ok(()))]);
        let cmds: Vec<u8> = net.sent_scp().iter().map(|s| s.bytes[10]).collect();
        assert_eq!(
            cmds,
            vec![57, 0, 0],
            "power, version (FLAG check), version (link write); no FLAG read, no STOP write"
        );
        assert_eq!(net.bmps[&bmp_ip(0)].power[0].2, 1 << 4);
    }

    #[test]
    fn lossy_bmp_recovers_with_each_policy() {
        for policy in [Policy::spinnman(), Policy::rig(), Policy::adaptive()] {
            let mut h = host(policy);
            let mut net = Net::new()
                .with_bmp(bmp_ip(0))
                .with_delay(Duration::from_millis(1))
                .drop_requests([1, 4])
                .drop_replies([2]);
            net.power_delay = Duration::from_millis(300);
            h.submit_bmp_batch(Instant::ZERO, batch(1, &[0, 1], &[], &[(0, Link::North, false)]));
            run_until_idle(&mut h, &mut net, Instant::from_secs(100));
            // (The power-on, request and reply 0, is not dropped: spinnman gives it no retry.)
            assert_eq!(done(&mut h), vec![(1, Ok(()))], "{}", policy.name());
        }
    }
}
