//! [`Host`]: a [`HostStack`] with the operations running on it, behind one sans-IO interface.
//!
//! A driver (the discrete-event simulator or a real-time loop) gives the host datagrams and
//! time and takes datagrams, events and the next deadline; it never sees SCP. Operations are
//! started on the host — [`Host::submit_bmp_batch`] (one [`BmpController`] per BMP, FIFO),
//! [`Host::start_boot`], [`Host::start_transfer`], or a bare request with [`Host::submit`] —
//! and their outcomes come out of [`Host::poll_event`] as [`HostEvent`]s.
//!
//! Requests of operations travel through the stack's clients with tokens that name the
//! operation (upper 32 bits) and the operation's own token (lower 32 bits); outcomes are routed
//! back by them. When a boot or a transfer ends, whatever it still has queued or in flight is
//! cancelled.

use super::bmp::{AttemptFailure, BmpConfig, BmpController, BmpEvent};
use super::boot::{BootConfig, BootEvent, BootSequencer};
use super::pacer::TokenBucket;
use super::policy::Policy;
use super::stack::{HostStack, StackStats};
use super::transfer::{Transfer, TransferEvent};
use super::{Operation, Outcome, SCP_PORT, ScpRequest, TimerIndex};
use crate::datagram::Datagram;
use crate::proto;
use crate::reason::BmpFailure;
use crate::service::{BatchId, BmpBatch};
use crate::time::Instant;
use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Identifies an operation running on a [`Host`] (0 is never used).
pub type OpId = u32;

/// The operation id of bare requests submitted with [`Host::submit`].
const USER_OP: OpId = 0;

/// Settings of a [`Host`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostConfig {
    /// Policy of every client (boards and BMPs).
    pub policy: Policy,
    /// How BMP batches are executed.
    pub bmp: BmpConfig,
    /// SCP port of boards and BMPs (17893).
    pub scp_port: u16,
    /// The host's own address: the source of the datagrams it sends (`0.0.0.0:0` when the
    /// driver's socket decides).
    pub local: SocketAddrV4,
    /// A token bucket pacing each client's transmissions, whatever the policy (`None`:
    /// unpaced; see [`super::pacer`]).
    pub pacing: Option<TokenBucket>,
}

impl HostConfig {
    /// `policy` for every client, with the BMP timings that go with it.
    pub fn for_policy(policy: Policy) -> HostConfig {
        HostConfig {
            policy,
            bmp: BmpConfig::for_policy(&policy),
            scp_port: SCP_PORT,
            local: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
            pacing: None,
        }
    }

    /// The default configuration of the policy called `name`.
    pub fn for_policy_name(name: &str) -> Option<HostConfig> {
        Policy::from_name(name).map(HostConfig::for_policy)
    }
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig::for_policy(Policy::spinnman())
    }
}

/// Something that happened on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEvent {
    /// A BMP batch finished (feed to `Service::handle_bmp_batch_done`).
    BatchDone {
        /// The batch.
        batch_id: BatchId,
        /// Its BMP.
        bmp: Ipv4Addr,
        /// How it went.
        result: Result<(), BmpFailure>,
    },
    /// An attempt of a BMP batch failed (diagnostics).
    BmpAttemptFailed {
        /// The batch.
        batch_id: BatchId,
        /// Its BMP.
        bmp: Ipv4Addr,
        /// 1-based attempt.
        attempt: u32,
        /// What went wrong.
        reason: AttemptFailure,
    },
    /// News of a boot.
    Boot {
        /// The operation.
        op: OpId,
        /// The board.
        ip: Ipv4Addr,
        /// What happened.
        event: BootEvent,
    },
    /// A transfer ended.
    Transfer {
        /// The operation.
        op: OpId,
        /// What happened.
        event: TransferEvent,
    },
    /// The outcome of a bare request.
    Scp {
        /// Its endpoint.
        remote: SocketAddrV4,
        /// The submitter's token.
        token: u32,
        /// What became of it.
        outcome: Outcome,
    },
}

/// Why an operation could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The boot image is not bootable.
    #[error("bad boot image: {0}")]
    BootImage(#[from] proto::Error),
}

/// A running operation.
#[derive(Debug, Clone)]
enum Op {
    Bmp(Box<BmpController>),
    Boot(Box<BootSequencer>),
    Transfer(Box<Transfer>),
}

impl Op {
    fn as_op(&mut self) -> &mut dyn Operation {
        match self {
            Op::Bmp(o) => o.as_mut(),
            Op::Boot(o) => o.as_mut(),
            Op::Transfer(o) => o.as_mut(),
        }
    }

    fn timeout(&self) -> Option<Instant> {
        match self {
            Op::Bmp(o) => o.poll_timeout(),
            Op::Boot(o) => o.poll_timeout(),
            Op::Transfer(o) => o.poll_timeout(),
        }
    }
}

/// The host side of a simulated or real deployment. See the module documentation.
#[derive(Debug, Clone)]
pub struct Host {
    config: HostConfig,
    stack: HostStack,
    ops: BTreeMap<OpId, Op>,
    bmps: BTreeMap<Ipv4Addr, OpId>,
    /// BMPs whose batches run with their own settings instead of `config.bmp`.
    bmp_configs: BTreeMap<Ipv4Addr, BmpConfig>,
    timers: TimerIndex<OpId>,
    next_op: OpId,
    events: VecDeque<HostEvent>,
}

impl Host {
    /// An idle host.
    pub fn new(config: HostConfig) -> Host {
        let mut stack = HostStack::new(config.policy);
        stack.set_pacing(config.pacing);
        Host {
            config,
            stack,
            ops: BTreeMap::new(),
            bmps: BTreeMap::new(),
            bmp_configs: BTreeMap::new(),
            timers: TimerIndex::default(),
            next_op: USER_OP,
            events: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// The SCP clients.
    pub fn stack(&self) -> &HostStack {
        &self.stack
    }

    /// Paces the clients created from now on (`None`: unpaced); clients that already exist
    /// keep theirs.
    pub fn set_pacing(&mut self, pacing: Option<TokenBucket>) {
        self.config.pacing = pacing;
        self.stack.set_pacing(pacing);
    }

    /// Counters of every client.
    pub fn stats(&self) -> StackStats {
        self.stack.stats()
    }

    /// True when no operation is running and no request is pending.
    pub fn is_idle(&self) -> bool {
        self.events.is_empty()
            && self.stack.is_idle()
            && self.ops.values().all(|o| match o {
                Op::Bmp(b) => b.is_idle(),
                _ => false,
            })
    }

    fn alloc_op(&mut self) -> OpId {
        loop {
            self.next_op = self.next_op.wrapping_add(1);
            if self.next_op != USER_OP && !self.ops.contains_key(&self.next_op) {
                return self.next_op;
            }
        }
    }

    /// Runs the batches of the BMP at `bmp` with `config` instead of [`HostConfig::bmp`] (e.g.
    /// a machine's own number of tries and retry interval). Takes effect for a BMP whose
    /// controller has not been created yet, i.e. before its first batch.
    pub fn set_bmp_config(&mut self, bmp: Ipv4Addr, config: BmpConfig) {
        self.bmp_configs.insert(bmp, config);
    }

    /// Queues a BMP batch on its BMP's controller (created on first use).
    pub fn submit_bmp_batch(&mut self, now: Instant, batch: BmpBatch) {
        let ip = batch.bmp;
        let id = match self.bmps.get(&ip) {
            Some(id) => *id,
            None => {
                let id = self.alloc_op();
                let mut config = self.bmp_configs.get(&ip).copied().unwrap_or(self.config.bmp);
                config.port = self.config.scp_port;
                self.ops.insert(id, Op::Bmp(Box::new(BmpController::new(ip, config))));
                self.bmps.insert(ip, id);
                id
            }
        };
        if let Some(Op::Bmp(c)) = self.ops.get_mut(&id) {
            c.submit(now, batch);
        }
        self.pump(now, id);
    }

    /// Starts booting the board at `ip`.
    pub fn start_boot(&mut self, now: Instant, ip: Ipv4Addr, config: BootConfig) -> Result<OpId, HostError> {
        let boot = BootSequencer::new(now, ip, config)?;
        let id = self.alloc_op();
        self.ops.insert(id, Op::Boot(Box::new(boot)));
        self.pump(now, id);
        Ok(id)
    }

    /// Starts a memory transfer (its start time is the one it was made with).
    pub fn start_transfer(&mut self, transfer: Transfer) -> OpId {
        let id = self.alloc_op();
        let now = transfer.started();
        self.ops.insert(id, Op::Transfer(Box::new(transfer)));
        self.pump(now, id);
        id
    }

    /// Sends a bare request; its outcome comes back as [`HostEvent::Scp`] with `token`.
    pub fn submit(&mut self, now: Instant, remote: SocketAddrV4, request: ScpRequest, token: u32) {
        self.stack.submit(now, remote, request, tag(USER_OP, token));
    }

    /// A datagram arrived (from `d.src`; its destination is not checked).
    pub fn handle_datagram(&mut self, now: Instant, d: &Datagram) {
        self.stack.handle_datagram(now, d.src, &d.payload);
        self.route(now);
    }

    /// Time has reached [`Host::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.stack.handle_timeout(now);
        self.route(now);
        for id in self.timers.due(now) {
            if let Some(op) = self.ops.get_mut(&id) {
                op.as_op().handle_timeout(now);
            }
            self.pump(now, id);
        }
        self.route(now);
    }

    /// The next datagram to send (its source is [`HostConfig::local`]).
    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        let (dst, payload) = self.stack.poll_transmit()?;
        Some(Datagram {
            src: self.config.local,
            dst,
            payload,
        })
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<HostEvent> {
        self.events.pop_front()
    }

    /// When [`Host::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.stack.poll_timeout(), self.timers.first()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Routes request outcomes from the stack to their operations.
    fn route(&mut self, now: Instant) {
        while let Some(ev) = self.stack.poll_event() {
            let (token, outcome) = ev.event.into_outcome();
            let (op, local) = untag(token);
            if op == USER_OP {
                self.events.push_back(HostEvent::Scp {
                    remote: ev.remote,
                    token: local,
                    outcome,
                });
                continue;
            }
            if let Some(o) = self.ops.get_mut(&op) {
                o.as_op().handle_outcome(now, local, outcome);
                self.pump(now, op);
            }
        }
    }

    /// Moves an operation's requests, datagrams and events out, re-indexes its timer and
    /// retires it if it has finished.
    fn pump(&mut self, now: Instant, id: OpId) {
        let Some(op) = self.ops.get_mut(&id) else {
            self.timers.set(id, None);
            return;
        };
        {
            let o = op.as_op();
            while let Some(r) = o.poll_request() {
                self.stack.submit(now, r.remote, r.request, tag(id, r.token));
            }
            while let Some((dst, d)) = o.poll_datagram() {
                self.stack.send_datagram(dst, d);
            }
        }
        let finished = match op {
            Op::Bmp(c) => {
                while let Some(e) = c.poll_event() {
                    let bmp = c.bmp();
                    self.events.push_back(match e {
                        BmpEvent::BatchDone { batch_id, result } => HostEvent::BatchDone { batch_id, bmp, result },
                        BmpEvent::AttemptFailed {
                            batch_id,
                            attempt,
                            reason,
                        } => HostEvent::BmpAttemptFailed {
                            batch_id,
                            bmp,
                            attempt,
                            reason,
                        },
                    });
                }
                None
            }
            Op::Boot(b) => {
                let ip = b.ip();
                while let Some(event) = b.poll_event() {
                    self.events.push_back(HostEvent::Boot { op: id, ip, event });
                }
                b.is_done().then(|| b.remote())
            }
            Op::Transfer(t) => {
                while let Some(event) = t.poll_event() {
                    self.events.push_back(HostEvent::Transfer { op: id, event });
                }
                t.is_done().then(|| t.remote())
            }
        };
        if let Some(remote) = finished {
            self.ops.remove(&id);
            self.timers.set(id, None);
            self.stack.cancel(now, remote, |t| untag(t).0 == id);
            return;
        }
        let t = self.ops.get(&id).and_then(Op::timeout);
        self.timers.set(id, t);
    }
}

fn tag(op: OpId, token: u32) -> u64 {
    (u64::from(op) << 32) | u64::from(token)
}

fn untag(token: u64) -> (OpId, u32) {
    ((token >> 32) as OpId, token as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{FrameId, Link};
    use crate::host::BootConfig;
    use crate::host::boot::stand_in_image;
    use crate::host::testkit::{Net, addr, bmp_ip, board_ip, emit_reply, run_until_idle, scamp_version, sver_request};
    use crate::host::transfer::Transfer;
    use crate::proto::scp::{Reply, ReturnCode};
    use crate::proto::sdp;
    use crate::time::Duration;
    use proptest::prelude::*;

    #[test]
    fn bare_requests_come_back_with_their_tokens() {
        let mut h = Host::new(HostConfig::for_policy_name("adaptive").unwrap());
        let mut net = Net::new();
        for t in 0..5 {
            h.submit(Instant::ZERO, addr(board_ip(t as u8), 17893), sver_request(), t);
        }
        run_until_idle(&mut h, &mut net, Instant::from_secs(10));
        let tokens: Vec<u32> = std::iter::from_fn(|| h.poll_event())
            .map(|e| match e {
                HostEvent::Scp { token, outcome, remote } => {
                    assert!(outcome.is_ok());
                    assert_eq!(remote, addr(board_ip(token as u8), 17893));
                    token
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(tokens, vec![0, 1, 2, 3, 4]);
        assert_eq!(h.stats().clients, 5);
        assert!(h.is_idle());
        assert_eq!(untag(tag(7, 9)), (7, 9));
        assert_eq!(HostConfig::for_policy_name("nope"), None);
    }

    fn busy_host(policy: Policy) -> Host {
        let mut h = Host::new(HostConfig::for_policy(policy));
        let batch = BmpBatch {
            id: crate::service::BatchId(1),
            job: crate::sched::JobId(1),
            machine: "m".into(),
            frame: FrameId { cabinet: 0, frame: 0 },
            bmp: bmp_ip(0),
            power_on: vec![0, 1],
            power_off: vec![2],
            links: vec![(1, Link::North, false)],
        };
        h.submit_bmp_batch(Instant::ZERO, batch);
        h.start_boot(Instant::ZERO, board_ip(1), BootConfig::rig(stand_in_image(2048)))
            .unwrap();
        h.start_transfer(Transfer::read(
            Instant::ZERO,
            addr(board_ip(0), 17893),
            sdp::Address::scp(0, 0, 0),
            0x6000_0000,
            4096,
        ));
        h.submit(Instant::ZERO, addr(board_ip(2), 17893), sver_request(), 5);
        h
    }

    #[test]
    fn everything_at_once_over_a_lossy_network() {
        for policy in [Policy::spinnman(), Policy::rig(), Policy::adaptive()] {
            let mut h = busy_host(policy);
            let mut net = Net::new()
                .with_bmp(bmp_ip(0))
                .with_delay(Duration::from_millis(2))
                .with_loss(0.05, 7);
            run_until_idle(&mut h, &mut net, Instant::from_secs(10_000));
            let events: Vec<HostEvent> = std::iter::from_fn(|| h.poll_event()).collect();
            let batch = events
                .iter()
                .any(|e| matches!(e, HostEvent::BatchDone { result: Ok(()), .. }));
            let boot = events.iter().any(|e| {
                matches!(
                    e,
                    HostEvent::Boot {
                        event: crate::host::BootEvent::Done(_),
                        ..
                    }
                )
            });
            let transfer = events.iter().any(|e| matches!(e, HostEvent::Transfer { .. }));
            let scp = events.iter().any(|e| matches!(e, HostEvent::Scp { token: 5, .. }));
            assert!(batch && boot && transfer && scp, "{}: {events:?}", policy.name());
            assert!(h.is_idle());
        }
    }

    proptest! {
        #[test]
        fn random_datagrams_to_a_busy_host_never_panic(
            inputs in proptest::collection::vec(
                (0u8..4, 0u16..40, 0x80u16..0x90, proptest::collection::vec(any::<u8>(), 0..64), any::<bool>(), 0u64..3_000),
                0..60,
            ),
            policy in 0usize..3,
        ) {
            let mut h = busy_host(Policy::from_name(Policy::NAMES[policy]).unwrap());
            let sources = [addr(bmp_ip(0), 17893), addr(board_ip(0), 17893), addr(board_ip(1), 17893), addr(board_ip(2), 17893)];
            let mut now = Instant::ZERO;
            for (src, seq, rc, junk, well_formed, dt) in inputs {
                now += Duration::from_millis(dt);
                let from = sources[src as usize];
                let bytes = if well_formed {
                    let reply = if rc == 0x80 {
                        Reply::Version(scamp_version(seq))
                    } else {
                        Reply::Error { rc: ReturnCode::from_code(rc), body: &junk[..junk.len().min(8)] }
                    };
                    emit_reply(sdp::Repr::request(sdp::Address::ROOT_MONITOR).reply(), seq, &reply)
                } else {
                    junk
                };
                h.handle_datagram(now, &Datagram { src: from, dst: addr(board_ip(0), 50_000), payload: bytes });
                while h.poll_transmit().is_some() {}
                if h.poll_timeout().is_some_and(|t| t <= now) {
                    h.handle_timeout(now);
                    prop_assert!(h.poll_timeout().is_none_or(|t| t > now));
                }
                while h.poll_event().is_some() {}
            }
        }
    }
}
