//! The service's inputs as values: what [`Service::record_inputs`](super::Service::record_inputs)
//! records and [`Service::apply`](super::Service::apply) replays.

use super::{BatchId, NewJob};
use crate::geometry::MachineSpec;
use crate::reason::{BmpFailure, DestroyReason};
use crate::sched::JobId;
use crate::time::Instant;

/// One call that changed the service's state, with the time it was made.
///
/// The service is deterministic: the same inputs in the same order, into a service with the same
/// configuration and policies, give the same state. Keepalive refreshes are left out (they
/// only matter through the expiries they prevent, and those are recorded in [`Tick`]).
///
/// [`Tick`]: ServiceInput::Tick
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ServiceInput {
    /// A machine was added (at the lowest priority).
    AddMachine {
        /// When.
        now: Instant,
        /// The machine, with its layout and addresses explicit.
        machine: MachineSpec,
    },
    /// A machine was changed (faults and tags) or replaced (hardware).
    ModifyMachine {
        /// When.
        now: Instant,
        /// The new description.
        machine: MachineSpec,
    },
    /// A machine was removed.
    RemoveMachine {
        /// When.
        now: Instant,
        /// Its name.
        name: String,
    },
    /// A job was asked for (whether or not the request was accepted: a refused one still took
    /// an id).
    CreateJob {
        /// When.
        now: Instant,
        /// The client's host.
        host: Option<String>,
        /// The request.
        job: NewJob,
    },
    /// A request for a job was refused before it became one; it used up an id.
    Refused {
        /// When.
        now: Instant,
        /// The client's host.
        host: Option<String>,
    },
    /// A command for a job came from a new host (the job's "keepalive host").
    Touch {
        /// The job.
        job: JobId,
        /// The host.
        host: String,
    },
    /// A client powered a job's boards on (or reset them).
    PowerOn {
        /// When.
        now: Instant,
        /// The job.
        job: JobId,
        /// The client's host.
        host: Option<String>,
    },
    /// A client powered a job's boards off.
    PowerOff {
        /// When.
        now: Instant,
        /// The job.
        job: JobId,
        /// The client's host.
        host: Option<String>,
    },
    /// A job was destroyed by whoever owns it.
    Destroy {
        /// When.
        now: Instant,
        /// The job.
        job: JobId,
        /// Why.
        reason: DestroyReason,
    },
    /// A BMP batch completed or failed.
    BmpDone {
        /// When.
        now: Instant,
        /// The batch.
        batch: BatchId,
        /// How it went.
        result: Result<(), BmpFailure>,
    },
    /// Timers ran: these jobs' keepalives had lapsed ("Job timed out."), and delayed frees that
    /// were due went back to the allocators.
    Tick {
        /// When.
        now: Instant,
        /// Jobs timed out, in the order they were destroyed.
        expired: Vec<JobId>,
    },
    /// The service was rebuilt after a restart: keepalive periods start again.
    Restart {
        /// When.
        now: Instant,
    },
}

impl ServiceInput {
    /// When the call was made (`None` for [`ServiceInput::Touch`], which carries no time).
    pub fn time(&self) -> Option<Instant> {
        match self {
            ServiceInput::AddMachine { now, .. }
            | ServiceInput::ModifyMachine { now, .. }
            | ServiceInput::RemoveMachine { now, .. }
            | ServiceInput::CreateJob { now, .. }
            | ServiceInput::Refused { now, .. }
            | ServiceInput::PowerOn { now, .. }
            | ServiceInput::PowerOff { now, .. }
            | ServiceInput::Destroy { now, .. }
            | ServiceInput::BmpDone { now, .. }
            | ServiceInput::Tick { now, .. }
            | ServiceInput::Restart { now } => Some(*now),
            ServiceInput::Touch { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{JobState, Service, ServiceConfig, ServiceEvent};
    use super::*;
    use crate::alloc::{Request, Shape};
    use crate::geometry::{Board, Machine};
    use crate::time::Duration;
    use proptest::prelude::*;

    /// One thing a live server might do.
    #[derive(Debug, Clone)]
    enum Op {
        Create {
            shape: u8,
            n: u8,
            keepalive: Option<u8>,
            host: u8,
        },
        Destroy(u8),
        PowerOn(u8, u8),
        PowerOff(u8),
        Poll(u8, u8),
        /// Complete the oldest outstanding batch (failing it if true).
        Complete(bool),
        Advance(u16),
        Faults(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..6, 0u8..8, proptest::option::of(1u8..30), 0u8..3).prop_map(|(shape, n, keepalive, host)| {
                Op::Create {
                    shape,
                    n,
                    keepalive,
                    host,
                }
            }),
            any::<u8>().prop_map(Op::Destroy),
            (any::<u8>(), 0u8..3).prop_map(|(j, h)| Op::PowerOn(j, h)),
            any::<u8>().prop_map(Op::PowerOff),
            (any::<u8>(), 0u8..3).prop_map(|(j, h)| Op::Poll(j, h)),
            any::<bool>().prop_map(Op::Complete),
            (0u16..40_000).prop_map(Op::Advance),
            (0u8..4).prop_map(Op::Faults),
        ]
    }

    fn machine(faults: u8) -> Machine {
        let mut spec = MachineSpec::new("m", 3, 2);
        spec.dead_boards = (0..faults).map(|i| Board::new(i as u16 % 3, 1, i % 3)).collect();
        Machine::new(spec).unwrap()
    }

    fn request(shape: u8, n: u8) -> Request {
        Request::new(match shape {
            0 => Shape::AnyBoard,
            1 => Shape::Boards {
                n: n as u32 + 2,
                min_ratio: 0.0,
            },
            2 => Shape::Triads {
                w: n as u32 % 3 + 1,
                h: n as u32 % 2 + 1,
            },
            3 => Shape::Board {
                board: Board::new(n as u16 % 4, n as u16 % 3, n % 3),
            },
            4 => Shape::TriadsAt {
                root: Board::new(n as u16 % 3, n as u16 % 2, 0),
                w: n as u32 % 2 + 1,
                h: 1,
            },
            // Refused (negative ratio): still takes an id.
            _ => Shape::Boards { n: 2, min_ratio: -1.0 },
        })
    }

    /// Everything observable about a service, for comparing two of them.
    fn observe(s: &mut Service, now: Instant, ids: u64) -> String {
        // Keepalive refreshes are not journalled (only the expiries they fail to prevent), so
        // when each keepalive runs out is not part of what a replay rebuilds.
        let jobs: Vec<_> = s
            .list_jobs()
            .into_iter()
            .map(|mut j| {
                j.keepalive_until = None;
                j
            })
            .collect();
        let mut out = format!("{jobs:?}\n");
        for id in 1..=ids {
            out += &format!("{:?}\n", s.get_job_state(now, JobId(id), None));
        }
        out += &format!("{:?} {:?}", s.poll_timeout(), s.list_machines());
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Replaying the recorded inputs of any session into a fresh service rebuilds the same
        /// state and makes the same decisions (events and BMP batches).
        #[test]
        fn replaying_recorded_inputs_rebuilds_the_same_service(ops in proptest::collection::vec(op(), 1..120)) {
            let config = ServiceConfig { seconds_before_free: Duration::from_secs(3), ..ServiceConfig::default() };
            let mut live = Service::new(config);
            live.record_inputs(true);
            let mut now = Instant::from_secs(1_700_000_000);
            live.add_machine(now, machine(0)).unwrap();
            let mut outstanding = std::collections::VecDeque::new();
            let mut live_events = Vec::new();
            let mut live_batches = Vec::new();
            let hosts = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];
            for op in ops {
                let job = |j: u8| JobId(j as u64 % 12 + 1);
                match op {
                    Op::Create { shape, n, keepalive, host } => {
                        let new = NewJob {
                            owner: "o".into(),
                            keepalive: keepalive.map(|k| Duration::from_secs(k as u64)),
                            machine: None,
                            tags: None,
                            request: request(shape, n),
                            estimate: None,
                            original: Some(format!("[[{n}], {{}}]")),
                        };
                        let _ = live.create_job(now, Some(hosts[host as usize]), new);
                    }
                    Op::Destroy(j) => { let _ = live.destroy_job(now, job(j), DestroyReason::requested("done")); }
                    Op::PowerOn(j, h) => { let _ = live.power_on_job_boards(now, job(j), Some(hosts[h as usize])); }
                    Op::PowerOff(j) => { let _ = live.power_off_job_boards(now, job(j), None); }
                    Op::Poll(j, h) => { let _ = live.get_job_state(now, job(j), Some(hosts[h as usize])); }
                    Op::Complete(fail) => {
                        if let Some(b) = outstanding.pop_front() {
                            let b: super::super::BmpBatch = b;
                            let r = if fail { Err(BmpFailure::RequestsFailed { bmp: b.bmp }) } else { Ok(()) };
                            live.handle_bmp_batch_done(now, b.id, r).unwrap();
                        }
                    }
                    Op::Advance(ms) => {
                        now += Duration::from_millis(ms as u64 * 2);
                        if live.poll_timeout().is_some_and(|t| t <= now) {
                            live.handle_timeout(now);
                        }
                    }
                    Op::Faults(k) => { live.modify_machine(now, machine(k)).unwrap(); }
                }
                while let Some(b) = live.poll_bmp_batch() {
                    live_batches.push(b.clone());
                    outstanding.push_back(b);
                }
                live_events.extend(std::iter::from_fn(|| live.poll_event()));
            }
            let journal = live.take_recorded();
            let mut replay = Service::new(config);
            let mut replay_events = Vec::new();
            let mut replay_batches = Vec::new();
            for input in &journal {
                let _ = replay.apply(input);
                replay_batches.extend(std::iter::from_fn(|| replay.poll_bmp_batch()));
                replay_events.extend(std::iter::from_fn(|| replay.poll_event()));
            }
            prop_assert!(replay.take_recorded().is_empty());
            prop_assert_eq!(&replay_events, &live_events);
            prop_assert_eq!(&replay_batches, &live_batches);
            prop_assert_eq!(observe(&mut replay, now, 13), observe(&mut live, now, 13));
        }
    }

    #[test]
    fn a_restart_gives_every_live_job_a_whole_keepalive_period_again() {
        let t0 = Instant::from_secs(1_000);
        let mut s = Service::new(ServiceConfig::default());
        s.add_machine(t0, machine(0)).unwrap();
        let new = NewJob {
            owner: "o".into(),
            keepalive: Some(Duration::from_secs(60)),
            machine: None,
            tags: None,
            request: Request::new(Shape::AnyBoard),
            estimate: None,
            original: None,
        };
        let id = s.create_job(t0, None, new).unwrap();
        // Down for ten minutes: the job would be long dead without the restart.
        let back = t0 + Duration::from_secs(600);
        s.restart(back);
        assert_eq!(s.poll_timeout(), Some(back + Duration::from_secs(60) + Duration(1)));
        s.handle_timeout(back + Duration::from_secs(59));
        assert_ne!(s.get_job_state(back, id, None).state, JobState::Destroyed);
        s.handle_timeout(back + Duration::from_secs(61));
        assert_eq!(s.get_job_state(back, id, None).state, JobState::Destroyed);
        assert!(std::iter::from_fn(|| s.poll_event()).any(|e| matches!(e, ServiceEvent::Destroyed { .. })));
    }
}
