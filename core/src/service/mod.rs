//! The allocation service (the reference's `Controller`): jobs with owners and keepalives,
//! their life cycle, and the board power and link work they cause.
//!
//! A job goes queued → power → ready → destroyed. When the [`JobQueue`] allocates it, the
//! service asks for its boards to be powered on and its peripheral links disabled: one
//! [`BmpBatch`] per (cabinet, frame), since one BMP controls a frame. When every batch is
//! acknowledged the job is ready; a failed batch destroys the job with "Machine configuration
//! failed. Error: …". Destroying a job powers its boards off; the boards go back to the
//! allocator (through its delayed-free list) only once that power-off has completed.
//!
//! Unlike the reference, freeing does not depend on the job still being in the bounded list
//! of retired jobs (its §11 leak), and malformed requests are refused with an error instead of
//! leaving a job stuck in the queue.
//!
//! Sans-IO: every call takes `now`; BMP work comes out of [`Service::poll_bmp_batch`], its
//! completion goes in through [`Service::handle_bmp_batch_done`]; what happened to jobs comes out of
//! [`Service::poll_event`]; [`Service::poll_timeout`] says when to call
//! [`Service::handle_timeout`] (keepalive expiry, delayed frees).

use crate::alloc::filter::Topology;
use crate::alloc::spalloc::SpallocPacker;
use crate::alloc::{Allocator, Packer, Request, Shape};
use crate::geometry::{Board, Chip, FrameId, JobExtent, Link, Machine, Physical, WhereIs};
use crate::reason::{BmpFailure, DestroyReason, JobEnd};
use crate::sched::{Discipline, Fifo, JobId, JobQueue, JobSpec, QueueEvent};
use crate::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;

mod input;
pub use input::ServiceInput;

/// Identifies a [`BmpBatch`] (numbered from 1 in the order the service issues them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct BatchId(pub u64);

impl std::fmt::Display for BatchId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A job's state, numbered as the reference's `JobState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum JobState {
    /// Not known (never existed, or forgotten).
    Unknown = 0,
    /// Waiting for boards.
    Queued = 1,
    /// Boards allocated; power or link commands in progress.
    Power = 2,
    /// Boards powered and configured.
    Ready = 3,
    /// Destroyed (see the reason).
    Destroyed = 4,
}

/// Service settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Delay before freed boards can be reused (reference default 30 s).
    pub seconds_before_free: Duration,
    /// How many destroyed jobs' reasons are remembered (reference default 1200).
    pub max_retired_jobs: usize,
    /// Disable the links leaving an allocation when it is powered on (the reference does).
    pub disable_peripheral_links: bool,
}

impl Default for ServiceConfig {
    fn default() -> ServiceConfig {
        ServiceConfig {
            seconds_before_free: Duration::from_secs(30),
            max_retired_jobs: 1200,
            disable_peripheral_links: true,
        }
    }
}

/// A request to create a job.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NewJob {
    /// Who owns it (required).
    pub owner: String,
    /// Keepalive period (`None`: never times out; reference default 60 s).
    pub keepalive: Option<Duration>,
    /// Run only on this machine.
    pub machine: Option<String>,
    /// Run only on machines with all these tags.
    pub tags: Option<Vec<String>>,
    /// What to allocate.
    pub request: Request,
    /// Expected runtime (for backfilling disciplines).
    pub estimate: Option<Duration>,
    /// The request as its client sent it, kept verbatim and opaque to the service (a spalloc
    /// server keeps the JSON of the arguments here to list them back).
    pub original: Option<String>,
}

/// One atomic batch of work for one BMP (a frame): power boards on or off and set link
/// enables, in that order (power on, links, power off), as the reference's `AtomicRequests`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BmpBatch {
    /// Batch id (for [`Service::handle_bmp_batch_done`]).
    pub id: BatchId,
    /// The job it is for.
    pub job: JobId,
    /// Machine name.
    pub machine: String,
    /// The frame.
    pub frame: FrameId,
    /// The frame's BMP address.
    pub bmp: Ipv4Addr,
    /// Boards (numbers within the frame) to power on.
    pub power_on: Vec<u16>,
    /// Boards to power off.
    pub power_off: Vec<u16>,
    /// (board, link, enable) link settings.
    pub links: Vec<(u16, Link, bool)>,
}

/// Something that happened to a job or a machine: the service's one notification channel (a
/// spalloc server's `jobs_changed` and `machines_changed` notifications are the jobs and
/// machines these events name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceEvent {
    /// Created and queued (or about to be allocated).
    Created {
        /// The job.
        job: JobId,
    },
    /// Boards allocated; power-on started.
    Allocated {
        /// The job.
        job: JobId,
        /// Machine name.
        machine: String,
        /// Its boards, sorted.
        boards: Vec<Board>,
        /// The links leaving its boards (disabled at power-on if the service does that).
        periphery: Vec<(Board, Link)>,
        /// The host that last sent a command for the job (its creator's, at first).
        host: Option<String>,
    },
    /// Its owner asked for its boards to be powered on or off again (state → power).
    Powering {
        /// The job.
        job: JobId,
        /// On or off.
        on: bool,
    },
    /// All power and link work done: the job can use its boards.
    Ready {
        /// The job.
        job: JobId,
    },
    /// Destroyed (before or after allocation).
    Destroyed {
        /// The job.
        job: JobId,
        /// Why (and whether it was still queued).
        reason: JobEnd,
        /// The machine whose boards it held (`None` if it had none).
        machine: Option<String>,
        /// Its boards, sorted (empty if it had none); they are being powered off.
        boards: Vec<Board>,
        /// The host that last sent a command for the job.
        host: Option<String>,
    },
    /// A destroyed job's boards have been powered off and handed back to the allocator.
    BoardsReleased {
        /// The job.
        job: JobId,
        /// Machine name.
        machine: String,
        /// How many boards.
        boards: usize,
    },
    /// A machine was added, changed or removed.
    MachineChanged {
        /// Its name.
        machine: String,
    },
}

impl ServiceEvent {
    /// The job the event is about, if any.
    pub fn job(&self) -> Option<JobId> {
        match self {
            ServiceEvent::Created { job }
            | ServiceEvent::Allocated { job, .. }
            | ServiceEvent::Powering { job, .. }
            | ServiceEvent::Ready { job }
            | ServiceEvent::Destroyed { job, .. }
            | ServiceEvent::BoardsReleased { job, .. } => Some(*job),
            ServiceEvent::MachineChanged { .. } => None,
        }
    }

    /// The machine whose allocations or description the event changed, if any.
    pub fn machine(&self) -> Option<&str> {
        match self {
            ServiceEvent::Allocated { machine, .. }
            | ServiceEvent::BoardsReleased { machine, .. }
            | ServiceEvent::MachineChanged { machine } => Some(machine),
            ServiceEvent::Destroyed { machine, .. } => machine.as_deref(),
            _ => None,
        }
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ServiceError {
    /// No owner given.
    #[error("owner must be specified for all jobs")]
    NoOwner,
    /// The request itself is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No live job with that id.
    #[error("no live job with id {0}")]
    UnknownJob(JobId),
    /// No such machine.
    #[error("no machine named {0}")]
    UnknownMachine(String),
    /// The reference's words for a job that names both a machine and tags.
    #[error("Only one of machine and tags may be specified for a job.")]
    MachineAndTags,
    /// Machine names must be unique.
    #[error("machine name {0} already in use")]
    DuplicateMachine(String),
    /// Two machines share an address.
    #[error("IP address {ip} is used by machines {a} and {b}")]
    DuplicateIp {
        /// The address.
        ip: Ipv4Addr,
        /// First machine.
        a: String,
        /// Second machine.
        b: String,
    },
    /// No such BMP batch outstanding.
    #[error("no outstanding BMP batch {0}")]
    UnknownBatch(BatchId),
}

/// What `get_job_state` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct JobStateInfo {
    /// State.
    pub state: JobState,
    /// Whether the boards are (being) powered on; `None` once destroyed.
    pub power: Option<bool>,
    /// Keepalive period; `None` if none or destroyed.
    pub keepalive: Option<Duration>,
    /// Why it was destroyed (destroyed jobs only).
    pub reason: Option<JobEnd>,
    /// Creation time; `None` once destroyed.
    pub start_time: Option<Instant>,
    /// Host that last kept the job alive; `None` once destroyed.
    pub keepalive_host: Option<String>,
}

/// What `get_job_machine_info` reports for an allocated job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobMachineInfo {
    /// Chip width of the job's machine.
    pub width: u32,
    /// Chip height.
    pub height: u32,
    /// Ethernet chips (job coordinates) and their addresses, in chip order.
    pub connections: Vec<(Chip, Ipv4Addr)>,
    /// Machine name.
    pub machine_name: String,
    /// Boards, sorted.
    pub boards: Vec<Board>,
}

/// One row of `list_jobs`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSummary {
    /// Job id.
    pub job_id: JobId,
    /// Owner.
    pub owner: String,
    /// Creation time.
    pub start_time: Instant,
    /// Keepalive period.
    pub keepalive: Option<Duration>,
    /// State.
    pub state: JobState,
    /// Whether its boards are (being) powered on; `None` until it was first allocated.
    pub power: Option<bool>,
    /// The request.
    pub request: Request,
    /// Machine it was allocated on.
    pub allocated_machine_name: Option<String>,
    /// The machine it asked for.
    pub machine: Option<String>,
    /// The tags it asked for.
    pub tags: Option<Vec<String>>,
    /// The request as its client sent it ([`NewJob::original`]).
    pub original: Option<String>,
    /// Boards, if allocated.
    pub boards: Vec<Board>,
    /// Host that last kept it alive.
    pub keepalive_host: Option<String>,
    /// When its keepalive runs out (`None`: it has none): the last keepalive plus the
    /// keepalive period.
    pub keepalive_until: Option<Instant>,
}

/// A destroyed job, as the service remembers it (the last
/// [`ServiceConfig::max_retired_jobs`] of them; see [`Service::retired_job`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RetiredJob {
    /// Job id.
    pub job_id: JobId,
    /// Owner.
    pub owner: String,
    /// Creation time.
    pub start_time: Instant,
    /// When it was destroyed.
    pub finish_time: Instant,
    /// Why, and whether it was still queued.
    pub end: JobEnd,
    /// Its keepalive period.
    pub keepalive: Option<Duration>,
    /// The request.
    pub request: Request,
    /// The machine it asked for.
    pub machine: Option<String>,
    /// The tags it asked for.
    pub tags: Option<Vec<String>>,
    /// The request as its client sent it ([`NewJob::original`]).
    pub original: Option<String>,
    /// The machine it had boards on, if it was allocated.
    pub allocated_machine_name: Option<String>,
    /// The boards it held, sorted (empty if none).
    pub boards: Vec<Board>,
}

/// Where a live job runs.
#[derive(Debug, Clone, Copy)]
pub struct JobAllocation<'a> {
    /// Its machine.
    pub machine: &'a Machine,
    /// Its boards, sorted.
    pub boards: &'a [Board],
    /// The links leaving its boards.
    pub periphery: &'a [(Board, Link)],
}

/// One row of `list_machines`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineSummary {
    /// Name.
    pub name: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Width in triads.
    pub width: u16,
    /// Height in triads.
    pub height: u16,
    /// Dead boards.
    pub dead_boards: Vec<Board>,
    /// Dead links.
    pub dead_links: Vec<(Board, Link)>,
}

/// A `where_is` query in one of its four forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhereIsQuery {
    /// By logical board.
    Board {
        /// Machine.
        machine: String,
        /// Board.
        board: Board,
    },
    /// By physical board.
    Physical {
        /// Machine.
        machine: String,
        /// Position.
        position: Physical,
    },
    /// By machine chip.
    Chip {
        /// Machine.
        machine: String,
        /// x.
        x: i64,
        /// y.
        y: i64,
    },
    /// By chip within a job.
    JobChip {
        /// Job.
        job: JobId,
        /// x.
        x: i64,
        /// y.
        y: i64,
    },
}

#[derive(Debug, Clone)]
struct Allocated {
    machine: usize,
    boards: Vec<Board>,
    periphery: Vec<(Board, Link)>,
    width: u32,
    height: u32,
}

#[derive(Debug, Clone)]
struct Job {
    owner: String,
    keepalive: Option<Duration>,
    keepalive_until: Option<Instant>,
    host: Option<String>,
    start_time: Instant,
    state: JobState,
    power: Option<bool>,
    request: Request,
    machine: Option<String>,
    tags: Option<Vec<String>>,
    original: Option<String>,
    alloc: Option<Allocated>,
    outstanding: usize,
}

/// A job destroyed while BMP work for it is still outstanding: its boards return to the
/// allocator when the last batch completes.
#[derive(Debug, Clone)]
struct Draining {
    machine: String,
    boards: usize,
    outstanding: usize,
}

#[derive(Debug, Clone)]
struct ServiceMachine {
    machine: Machine,
    topo: Topology,
}

/// Boards and link settings for one frame.
type FrameWork = (Vec<u16>, Vec<(u16, Link, bool)>);

/// Builds a packing policy for a machine.
pub type PackerFactory = Box<dyn Fn(&Machine) -> Box<dyn Packer> + Send>;

/// The allocation service.
pub struct Service {
    config: ServiceConfig,
    queue: JobQueue,
    machines: Vec<ServiceMachine>,
    /// Machine name → index in `machines`.
    names: BTreeMap<String, usize>,
    /// Every BMP and board address → the index of the machine it belongs to.
    ips: BTreeMap<Ipv4Addr, usize>,
    packer_factory: PackerFactory,
    jobs: BTreeMap<JobId, Job>,
    retired: VecDeque<JobId>,
    retired_jobs: BTreeMap<JobId, RetiredJob>,
    /// Keepalive deadlines of live jobs, earliest first.
    deadlines: BTreeSet<(Instant, JobId)>,
    draining: BTreeMap<JobId, Draining>,
    next_id: JobId,
    next_batch: u64,
    batches: BTreeMap<BatchId, JobId>,
    out_batches: VecDeque<BmpBatch>,
    events: VecDeque<ServiceEvent>,
    /// Inputs recorded for a journal (see [`Service::record_inputs`]), oldest first.
    recorded: Option<Vec<ServiceInput>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("machines", &self.machines.len())
            .field("jobs", &self.jobs.len())
            .field("discipline", &self.queue.discipline())
            .finish_non_exhaustive()
    }
}

/// A machine's BMP and board addresses.
fn addresses(m: &Machine) -> impl Iterator<Item = Ipv4Addr> + '_ {
    m.bmps().map(|(_, ip)| ip).chain(m.board_ips().map(|(_, ip)| ip))
}

/// The reference packing policy for a machine.
pub fn spalloc_packer(m: &Machine) -> Box<dyn Packer> {
    let db: Vec<Board> = m.dead_boards().iter().copied().collect();
    let dl: Vec<(Board, Link)> = m.dead_links().iter().copied().collect();
    Box::new(SpallocPacker::new(m.width(), m.height(), &db, &dl))
}

impl Service {
    /// A service with the reference policies (`spalloc` packer, FIFO queue).
    pub fn new(config: ServiceConfig) -> Service {
        Service::with_policies(config, Box::new(spalloc_packer), Box::new(Fifo))
    }

    /// A service with the given packing policy and queue discipline.
    pub fn with_policies(
        config: ServiceConfig,
        packer_factory: PackerFactory,
        discipline: Box<dyn Discipline>,
    ) -> Service {
        Service {
            config,
            queue: JobQueue::new(discipline),
            machines: Vec::new(),
            names: BTreeMap::new(),
            ips: BTreeMap::new(),
            packer_factory,
            jobs: BTreeMap::new(),
            retired: VecDeque::new(),
            retired_jobs: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            draining: BTreeMap::new(),
            next_id: JobId(1),
            next_batch: 1,
            batches: BTreeMap::new(),
            out_batches: VecDeque::new(),
            events: VecDeque::new(),
            recorded: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Starts (or stops) recording every call that changes the service's state as a
    /// [`ServiceInput`]: a journal of these, replayed in order by [`Service::apply`] into a
    /// service built with the same configuration and policies, rebuilds the same state —
    /// jobs, ids, allocations, queues, machines — decision for decision. Calls that change
    /// nothing (a state poll, a command for an unknown job) are not recorded, nor are
    /// keepalive refreshes: keepalive expiries are recorded as the destructions they cause,
    /// and [`Service::restart`] restarts every keepalive period after a replay.
    pub fn record_inputs(&mut self, on: bool) {
        self.recorded = on.then(Vec::new);
    }

    /// The inputs recorded since the last call, oldest first.
    pub fn take_recorded(&mut self) -> Vec<ServiceInput> {
        match &mut self.recorded {
            Some(v) => std::mem::take(v),
            None => Vec::new(),
        }
    }

    fn record(&mut self, input: impl FnOnce() -> ServiceInput) {
        if let Some(v) = &mut self.recorded {
            v.push(input());
        }
    }

    /// Replays one recorded input (nothing is recorded meanwhile). An input that fails now
    /// failed when it was recorded too (a refused job still takes its id), so the error is
    /// only informative.
    pub fn apply(&mut self, input: &ServiceInput) -> Result<(), ServiceError> {
        let recorded = self.recorded.take();
        let r = self.apply_inner(input);
        self.recorded = recorded;
        r
    }

    fn apply_inner(&mut self, input: &ServiceInput) -> Result<(), ServiceError> {
        match input {
            ServiceInput::AddMachine { now, machine } => {
                let m = Machine::new(machine.clone()).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
                self.add_machine(*now, m)
            }
            ServiceInput::ModifyMachine { now, machine } => {
                let m = Machine::new(machine.clone()).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
                self.modify_machine(*now, m)
            }
            ServiceInput::RemoveMachine { now, name } => self.remove_machine(*now, name),
            ServiceInput::CreateJob { now, host, job } => {
                self.create_job(*now, host.as_deref(), job.clone()).map(|_| ())
            }
            ServiceInput::Refused { now, host } => {
                self.refuse_job(*now, host.as_deref());
                Ok(())
            }
            ServiceInput::Touch { job, host } => {
                let j = self.jobs.get_mut(job).ok_or(ServiceError::UnknownJob(*job))?;
                j.host = Some(host.clone());
                Ok(())
            }
            ServiceInput::PowerOn { now, job, host } => self.power_on_job_boards(*now, *job, host.as_deref()),
            ServiceInput::PowerOff { now, job, host } => self.power_off_job_boards(*now, *job, host.as_deref()),
            ServiceInput::Destroy { now, job, reason } => self.destroy_job(*now, *job, reason.clone()),
            ServiceInput::BmpDone { now, batch, result } => self.handle_bmp_batch_done(*now, *batch, result.clone()),
            ServiceInput::Tick { now, expired } => {
                for id in expired {
                    let _ = self.destroy_inner(*now, *id, DestroyReason::TimedOut);
                }
                self.check_free(*now);
                Ok(())
            }
            ServiceInput::Restart { now } => {
                self.restart(*now);
                Ok(())
            }
        }
    }

    /// The service has been rebuilt after a restart (from a journal): every live job's
    /// keepalive period starts again now, as the reference's unpickling does, so that the
    /// downtime itself times no job out; clients that are gone time out one period later.
    pub fn restart(&mut self, now: Instant) {
        self.record(|| ServiceInput::Restart { now });
        self.deadlines.clear();
        for (id, j) in &mut self.jobs {
            j.keepalive_until = j.keepalive.map(|k| now.saturating_add(k));
            if let Some(u) = j.keepalive_until {
                self.deadlines.insert((u, *id));
            }
        }
    }

    /// One live job, as `list_jobs` shows it.
    pub fn job(&self, id: JobId) -> Option<JobSummary> {
        self.jobs.get(&id).map(|j| self.summary(id, j))
    }

    /// A live job's allocation, if it has one.
    pub fn job_allocation(&self, id: JobId) -> Option<JobAllocation<'_>> {
        let a = self.jobs.get(&id)?.alloc.as_ref()?;
        Some(JobAllocation {
            machine: &self.machines[a.machine].machine,
            boards: &a.boards,
            periphery: &a.periphery,
        })
    }

    /// The machine called `name`.
    pub fn machine(&self, name: &str) -> Option<&Machine> {
        self.names.get(name).map(|&i| &self.machines[i].machine)
    }

    /// The job queue (for inspection).
    pub fn queue(&self) -> &JobQueue {
        &self.queue
    }

    /// Adds a machine at the lowest priority.
    pub fn add_machine(&mut self, now: Instant, machine: Machine) -> Result<(), ServiceError> {
        if self.names.contains_key(machine.name()) {
            return Err(ServiceError::DuplicateMachine(machine.name().to_string()));
        }
        self.check_addresses(&machine, None)?;
        self.record(|| ServiceInput::AddMachine {
            now,
            machine: machine.spec(),
        });
        let allocator = Allocator::new((self.packer_factory)(&machine), self.config.seconds_before_free);
        let topo = topology_of(&machine);
        let name = machine.name().to_string();
        let tags = machine.tags().to_vec();
        let i = self.machines.len();
        self.names.insert(name.clone(), i);
        self.ips.extend(addresses(&machine).map(|ip| (ip, i)));
        self.machines.push(ServiceMachine { machine, topo });
        self.queue
            .add_machine(now, &name, &tags, allocator)
            .map_err(|_| ServiceError::DuplicateMachine(name.clone()))?;
        self.events.push_back(ServiceEvent::MachineChanged { machine: name });
        self.drain_queue(now);
        Ok(())
    }

    /// Changes a machine. If only its tags and faults changed, jobs keep their boards and
    /// queued jobs are re-examined. If its hardware changed (size, layout or addresses), it is
    /// replaced, as the reference does: removed (its jobs destroyed "Machine removed.") and added
    /// again, keeping its place in the priority order.
    pub fn modify_machine(&mut self, now: Instant, machine: Machine) -> Result<(), ServiceError> {
        let i = self.machine_index(machine.name())?;
        if !self.machines[i].machine.same_hardware(&machine) {
            self.check_addresses(&machine, Some(i))?;
            self.record(|| ServiceInput::ModifyMachine {
                now,
                machine: machine.spec(),
            });
            return self.replace_machine(now, i, machine);
        }
        self.record(|| ServiceInput::ModifyMachine {
            now,
            machine: machine.spec(),
        });
        let db: Vec<Board> = machine.dead_boards().iter().copied().collect();
        let dl: Vec<(Board, Link)> = machine.dead_links().iter().copied().collect();
        let name = machine.name().to_string();
        let tags = machine.tags().to_vec();
        self.machines[i] = ServiceMachine {
            topo: topology_of(&machine),
            machine,
        };
        self.queue
            .modify_machine(now, &name, Some(&tags), Some((&db, &dl)))
            .map_err(|_| ServiceError::UnknownMachine(name.clone()))?;
        self.events.push_back(ServiceEvent::MachineChanged { machine: name });
        self.drain_queue(now);
        Ok(())
    }

    /// Removes a machine: its jobs are destroyed ("Machine removed."), and queued jobs only
    /// it could run are cancelled.
    pub fn remove_machine(&mut self, now: Instant, name: &str) -> Result<(), ServiceError> {
        let i = self.machine_index(name)?;
        self.record(|| ServiceInput::RemoveMachine {
            now,
            name: name.to_string(),
        });
        let on_it = self.jobs_on(i);
        for id in on_it {
            self.destroy_inner(now, id, DestroyReason::MachineRemoved)?;
        }
        self.queue
            .remove_machine(now, name)
            .map_err(|_| ServiceError::UnknownMachine(name.to_string()))?;
        self.machines.remove(i);
        self.reindex();
        for j in self.jobs.values_mut() {
            if let Some(a) = &mut j.alloc
                && a.machine > i
            {
                a.machine -= 1;
            }
        }
        // Boards still draining on the removed machine will never come back to an allocator:
        // they are released now.
        self.release_machine_boards(name);
        self.events.push_back(ServiceEvent::MachineChanged {
            machine: name.to_string(),
        });
        self.drain_queue(now);
        Ok(())
    }

    /// Replaces machine `i` by `machine` (same name, new hardware) as the reference's machines
    /// setter does, in one step: its jobs are destroyed ("Machine removed.") and their boards
    /// released, the new machine takes its place and priority, and only then are the queues
    /// regenerated. Nothing changes if the new machine's addresses clash with another's.
    fn replace_machine(&mut self, now: Instant, i: usize, machine: Machine) -> Result<(), ServiceError> {
        let name = machine.name().to_string();
        self.check_addresses(&machine, Some(i))?;
        // Destroy the old machine's jobs (power-off goes to the old BMPs); the queue keeps
        // every other job where it is meanwhile.
        let on_it = self.jobs_on(i);
        for id in &on_it {
            let _ = self.queue.destroy_job(now, *id, DestroyReason::MachineRemoved);
        }
        self.drain_queue(now);
        self.release_machine_boards(&name);
        let allocator = Allocator::new((self.packer_factory)(&machine), self.config.seconds_before_free);
        let tags = machine.tags().to_vec();
        self.queue
            .replace_machine(now, &name, &tags, allocator)
            .map_err(|_| ServiceError::UnknownMachine(name.clone()))?;
        for ip in addresses(&self.machines[i].machine) {
            self.ips.remove(&ip);
        }
        self.ips.extend(addresses(&machine).map(|ip| (ip, i)));
        self.machines[i] = ServiceMachine {
            topo: topology_of(&machine),
            machine,
        };
        self.events.push_back(ServiceEvent::MachineChanged { machine: name });
        self.drain_queue(now);
        Ok(())
    }

    /// Rebuilds the name and address indexes after machines moved.
    fn reindex(&mut self) {
        self.names = self
            .machines
            .iter()
            .enumerate()
            .map(|(i, m)| (m.machine.name().to_string(), i))
            .collect();
        self.ips = self
            .machines
            .iter()
            .enumerate()
            .flat_map(|(i, m)| addresses(&m.machine).map(move |ip| (ip, i)))
            .collect();
    }

    /// Jobs holding boards of machine `i`.
    fn jobs_on(&self, i: usize) -> Vec<JobId> {
        self.jobs
            .iter()
            .filter(|(_, j)| j.alloc.as_ref().is_some_and(|a| a.machine == i))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Refuses `machine` if one of its BMP or board addresses belongs to another machine
    /// (`except`: the index of the machine it replaces, whose addresses do not count).
    fn check_addresses(&self, machine: &Machine, except: Option<usize>) -> Result<(), ServiceError> {
        for ip in addresses(machine) {
            if let Some(&k) = self.ips.get(&ip)
                && Some(k) != except
            {
                return Err(ServiceError::DuplicateIp {
                    ip,
                    a: self.machines[k].machine.name().to_string(),
                    b: machine.name().to_string(),
                });
            }
        }
        Ok(())
    }

    /// The boards of jobs still powering off on a machine that is going away are released
    /// now (the machine's allocator goes with it).
    fn release_machine_boards(&mut self, name: &str) {
        let gone: Vec<JobId> = self
            .draining
            .iter()
            .filter(|(_, d)| d.machine == name)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            if let Some(d) = self.draining.remove(&id) {
                self.events.push_back(ServiceEvent::BoardsReleased {
                    job: id,
                    machine: d.machine,
                    boards: d.boards,
                });
            }
        }
    }

    fn machine_index(&self, name: &str) -> Result<usize, ServiceError> {
        self.names
            .get(name)
            .copied()
            .ok_or_else(|| ServiceError::UnknownMachine(name.to_string()))
    }

    /// The machines, in priority order.
    pub fn machines(&self) -> impl Iterator<Item = &Machine> {
        self.machines.iter().map(|m| &m.machine)
    }

    /// Creates a job; returns its id. It may be allocated or cancelled at once.
    ///
    /// A request refused for its contents still uses up an id, as in the reference (whose job
    /// log numbers jobs by counting creations); only a missing owner does not.
    pub fn create_job(&mut self, now: Instant, host: Option<&str>, new: NewJob) -> Result<JobId, ServiceError> {
        if new.owner.is_empty() {
            return Err(ServiceError::NoOwner);
        }
        self.record(|| ServiceInput::CreateJob {
            now,
            host: host.map(str::to_string),
            job: new.clone(),
        });
        let id = self.next_id;
        self.next_id = JobId(id.0 + 1);
        validate(&new.request)?;
        if new.machine.is_some() && new.tags.is_some() {
            return Err(ServiceError::MachineAndTags);
        }
        self.jobs.insert(
            id,
            Job {
                owner: new.owner,
                keepalive: new.keepalive,
                keepalive_until: new.keepalive.map(|k| now + k),
                host: host.map(str::to_string),
                start_time: now,
                state: JobState::Queued,
                power: None,
                request: new.request,
                machine: new.machine.clone(),
                tags: new.tags.clone(),
                original: new.original,
                alloc: None,
                outstanding: 0,
            },
        );
        if let Some(k) = new.keepalive {
            self.deadlines.insert((now + k, id));
        }
        self.events.push_back(ServiceEvent::Created { job: id });
        let spec = JobSpec {
            machine: new.machine,
            tags: new.tags,
            estimate: new.estimate.map(|d| d.as_micros()),
        };
        // The id is fresh and machine/tags were checked, so the queue accepts the job.
        let _ = self.queue.create_job(now, id, new.request, spec);
        self.drain_queue(now);
        Ok(id)
    }

    /// A request for a job was refused before it could be made into one (its arguments made
    /// no sense): it uses up an id all the same, as in the reference. Returns that id.
    pub fn refuse_job(&mut self, now: Instant, host: Option<&str>) -> JobId {
        self.record(|| ServiceInput::Refused {
            now,
            host: host.map(str::to_string),
        });
        let id = self.next_id;
        self.next_id = JobId(id.0 + 1);
        id
    }

    /// Refreshes a job's keepalive (and remembers `host` as the last to send a command for
    /// it).
    pub fn job_keepalive(&mut self, now: Instant, id: JobId, host: Option<&str>) -> Result<(), ServiceError> {
        let j = self.jobs.get_mut(&id).ok_or(ServiceError::UnknownJob(id))?;
        refresh(&mut self.deadlines, id, j, now);
        if let Some(h) = host
            && j.host.as_deref() != Some(h)
        {
            j.host = Some(h.to_string());
            self.record(|| ServiceInput::Touch {
                job: id,
                host: h.to_string(),
            });
        }
        Ok(())
    }

    /// Records a client's keepalive stream as a lease: the client has sent, or will send,
    /// keepalives up to and including `last_sent`, so the job's deadline becomes
    /// `last_sent + keepalive` (never earlier than it already is). `Instant::MAX` means the
    /// client keeps the job alive for as long as it exists.
    ///
    /// A simulator uses this to stand for a periodic stream of [`Service::job_keepalive`] calls
    /// whose timing it already knows: the job times out at exactly the same instant as with
    /// the individual calls, without one event per keepalive.
    pub fn job_keepalive_lease(&mut self, id: JobId, last_sent: Instant) -> Result<(), ServiceError> {
        let j = self.jobs.get_mut(&id).ok_or(ServiceError::UnknownJob(id))?;
        let Some(k) = j.keepalive else { return Ok(()) };
        let until = last_sent.saturating_add(k);
        if j.keepalive_until.is_some_and(|u| u >= until) {
            return Ok(());
        }
        if let Some(u) = j.keepalive_until {
            self.deadlines.remove(&(u, id));
        }
        j.keepalive_until = Some(until);
        self.deadlines.insert((until, id));
        Ok(())
    }

    /// Destroys a job (queued or allocated). Unknown or already destroyed ids are an error.
    pub fn destroy_job(&mut self, now: Instant, id: JobId, reason: DestroyReason) -> Result<(), ServiceError> {
        if !self.jobs.contains_key(&id) {
            return Err(ServiceError::UnknownJob(id));
        }
        self.record(|| ServiceInput::Destroy {
            now,
            job: id,
            reason: reason.clone(),
        });
        self.destroy_inner(now, id, reason)
    }

    fn destroy_inner(&mut self, now: Instant, id: JobId, reason: DestroyReason) -> Result<(), ServiceError> {
        if !self.jobs.contains_key(&id) {
            return Err(ServiceError::UnknownJob(id));
        }
        let _ = self.queue.destroy_job(now, id, reason);
        self.drain_queue(now);
        Ok(())
    }

    /// Powers an allocated job's boards on again (and disables its peripheral links).
    pub fn power_on_job_boards(&mut self, now: Instant, id: JobId, host: Option<&str>) -> Result<(), ServiceError> {
        if !self.jobs.contains_key(&id) {
            return Err(ServiceError::UnknownJob(id));
        }
        self.record(|| ServiceInput::PowerOn {
            now,
            job: id,
            host: host.map(str::to_string),
        });
        self.touch(now, id, host)?;
        if self.jobs[&id].alloc.is_some() {
            self.events.push_back(ServiceEvent::Powering { job: id, on: true });
            let links = self.config.disable_peripheral_links.then_some(false);
            self.set_power(id, true, links);
        }
        Ok(())
    }

    /// Powers an allocated job's boards off (links untouched).
    pub fn power_off_job_boards(&mut self, now: Instant, id: JobId, host: Option<&str>) -> Result<(), ServiceError> {
        if !self.jobs.contains_key(&id) {
            return Err(ServiceError::UnknownJob(id));
        }
        self.record(|| ServiceInput::PowerOff {
            now,
            job: id,
            host: host.map(str::to_string),
        });
        self.touch(now, id, host)?;
        if self.jobs[&id].alloc.is_some() {
            self.events.push_back(ServiceEvent::Powering { job: id, on: false });
            self.set_power(id, false, None);
        }
        Ok(())
    }

    /// Refreshes a job's keepalive and last host (inside an already recorded command).
    fn touch(&mut self, now: Instant, id: JobId, host: Option<&str>) -> Result<(), ServiceError> {
        let j = self.jobs.get_mut(&id).ok_or(ServiceError::UnknownJob(id))?;
        refresh(&mut self.deadlines, id, j, now);
        if let Some(h) = host
            && j.host.as_deref() != Some(h)
        {
            j.host = Some(h.to_string());
        }
        Ok(())
    }

    /// A job's state (refreshes its keepalive and last host, as the reference does).
    pub fn get_job_state(&mut self, now: Instant, id: JobId, host: Option<&str>) -> JobStateInfo {
        if self.jobs.contains_key(&id) {
            let _ = self.job_keepalive(now, id, host);
            let j = &self.jobs[&id];
            return JobStateInfo {
                state: j.state,
                power: j.power,
                keepalive: j.keepalive,
                reason: None,
                start_time: Some(j.start_time),
                keepalive_host: j.host.clone(),
            };
        }
        let reason = self.retired_jobs.get(&id).map(|r| r.end.clone());
        JobStateInfo {
            state: if reason.is_some() {
                JobState::Destroyed
            } else {
                JobState::Unknown
            },
            power: None,
            keepalive: None,
            reason,
            start_time: None,
            keepalive_host: None,
        }
    }

    /// Where an allocated job runs (refreshes its keepalive and last host); `None` if not
    /// allocated.
    pub fn get_job_machine_info(&mut self, now: Instant, id: JobId, host: Option<&str>) -> Option<JobMachineInfo> {
        self.job_keepalive(now, id, host).ok()?;
        self.job_machine_info(id)
    }

    /// Where an allocated live job runs, without touching the job (its keepalive and last
    /// host stay as they are); `None` if it is unknown or not allocated.
    pub fn job_machine_info(&self, id: JobId) -> Option<JobMachineInfo> {
        let j = self.jobs.get(&id)?;
        let a = j.alloc.as_ref()?;
        let m = &self.machines[a.machine].machine;
        let origin = *a.boards.iter().min()?;
        let mut connections: Vec<(Chip, Ipv4Addr)> = a
            .boards
            .iter()
            .filter_map(|b| {
                let (cx, cy) = crate::geometry::board_offset_to_chip(
                    b.x as i64 - origin.x as i64,
                    b.y as i64 - origin.y as i64,
                    b.z as i64 - origin.z as i64,
                );
                Some((Chip::new(cx.max(0) as u32, cy.max(0) as u32), m.board_ip(*b)?))
            })
            .collect();
        connections.sort();
        Some(JobMachineInfo {
            width: a.width,
            height: a.height,
            connections,
            machine_name: m.name().to_string(),
            boards: a.boards.clone(),
        })
    }

    /// All live jobs in id (creation) order.
    pub fn list_jobs(&self) -> Vec<JobSummary> {
        self.jobs.iter().map(|(id, j)| self.summary(*id, j)).collect()
    }

    fn summary(&self, id: JobId, j: &Job) -> JobSummary {
        JobSummary {
            job_id: id,
            owner: j.owner.clone(),
            start_time: j.start_time,
            keepalive: j.keepalive,
            state: j.state,
            power: j.power,
            request: j.request,
            allocated_machine_name: j
                .alloc
                .as_ref()
                .map(|a| self.machines[a.machine].machine.name().to_string()),
            machine: j.machine.clone(),
            tags: j.tags.clone(),
            original: j.original.clone(),
            boards: j.alloc.as_ref().map(|a| a.boards.clone()).unwrap_or_default(),
            keepalive_host: j.host.clone(),
            keepalive_until: j.keepalive_until,
        }
    }

    /// Every live job's id and owner, in id order (what a listing filtered by owner needs,
    /// without copying every job as [`Service::list_jobs`] does).
    pub fn job_owners(&self) -> impl Iterator<Item = (JobId, &str)> {
        self.jobs.iter().map(|(id, j)| (*id, j.owner.as_str()))
    }

    /// A destroyed job the service still remembers (the last
    /// [`ServiceConfig::max_retired_jobs`] destroyed).
    pub fn retired_job(&self, id: JobId) -> Option<&RetiredJob> {
        self.retired_jobs.get(&id)
    }

    /// The destroyed jobs the service still remembers, in id order.
    pub fn retired_jobs(&self) -> impl Iterator<Item = &RetiredJob> {
        self.retired_jobs.values()
    }

    /// All machines in priority order.
    pub fn list_machines(&self) -> Vec<MachineSummary> {
        self.machines
            .iter()
            .map(|m| MachineSummary {
                name: m.machine.name().to_string(),
                tags: m.machine.tags().to_vec(),
                width: m.machine.width(),
                height: m.machine.height(),
                dead_boards: m.machine.dead_boards().iter().copied().collect(),
                dead_links: m.machine.dead_links().iter().copied().collect(),
            })
            .collect()
    }

    /// The physical position of a board.
    pub fn get_board_position(&self, machine: &str, board: Board) -> Option<Physical> {
        self.machines[*self.names.get(machine)?].machine.location(board)
    }

    /// The board at a physical position.
    pub fn get_board_at_position(&self, machine: &str, position: Physical) -> Option<Board> {
        self.machines[*self.names.get(machine)?].machine.board_at(position)
    }

    /// Locates a board or chip in every coordinate form.
    pub fn where_is(&self, query: &WhereIsQuery) -> Option<WhereIs> {
        fn extent(id: JobId, j: &Job) -> Option<(usize, JobExtent<'_>)> {
            let a = j.alloc.as_ref()?;
            Some((
                a.machine,
                JobExtent {
                    id: id.0,
                    boards: &a.boards,
                    width: a.width,
                    height: a.height,
                },
            ))
        }
        let job_on = |mi: usize| {
            move |b: Board| {
                self.jobs
                    .iter()
                    .filter_map(|(id, j)| extent(*id, j))
                    .find(|(m, e)| *m == mi && e.boards.binary_search(&b).is_ok())
                    .map(|(_, e)| e)
            }
        };
        let machine = |name: &str| self.names.get(name).copied();
        match query {
            WhereIsQuery::Board { machine: name, board } => {
                let i = machine(name)?;
                self.machines[i].machine.where_is_board(*board, job_on(i))
            }
            WhereIsQuery::Physical {
                machine: name,
                position,
            } => {
                let i = machine(name)?;
                self.machines[i].machine.where_is_physical(*position, job_on(i))
            }
            WhereIsQuery::Chip { machine: name, x, y } => {
                let i = machine(name)?;
                self.machines[i].machine.where_is_chip(*x, *y, job_on(i))
            }
            WhereIsQuery::JobChip { job, x, y } => {
                let (i, e) = extent(*job, self.jobs.get(job)?)?;
                self.machines[i].machine.where_is_job_chip(&e, *x, *y, job_on(i))
            }
        }
    }

    /// The next BMP batch to carry out.
    pub fn poll_bmp_batch(&mut self) -> Option<BmpBatch> {
        self.out_batches.pop_front()
    }

    /// The next job event.
    pub fn poll_event(&mut self) -> Option<ServiceEvent> {
        self.events.pop_front()
    }

    /// When [`Service::handle_timeout`] should next run: the earliest keepalive expiry or
    /// delayed free.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // A keepalive times out once strictly past its deadline; a lease to the end of time
        // never does.
        let keep = self
            .deadlines
            .first()
            .map(|(t, _)| *t)
            .filter(|t| *t < Instant::MAX)
            .map(|k| k + Duration(1));
        [keep, self.queue.next_release()].into_iter().flatten().min()
    }

    /// Time has reached [`Service::poll_timeout`]: destroys timed-out jobs and releases due
    /// delayed frees.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<JobId> = self
            .deadlines
            .iter()
            .take_while(|(u, _)| *u < now)
            .map(|(_, id)| *id)
            .collect();
        if expired.is_empty() && self.queue.next_release().is_none_or(|t| t > now) {
            return;
        }
        self.record(|| ServiceInput::Tick {
            now,
            expired: expired.clone(),
        });
        // Jobs whose keepalive deadline has passed are destroyed ("Job timed out.").
        for id in expired {
            let _ = self.destroy_inner(now, id, DestroyReason::TimedOut);
        }
        self.check_free(now);
    }

    /// Releases due delayed frees and starts what can start.
    fn check_free(&mut self, now: Instant) {
        self.queue.check_free(now);
        self.drain_queue(now);
    }

    /// A BMP batch has been carried out, or failed.
    pub fn handle_bmp_batch_done(
        &mut self,
        now: Instant,
        batch: BatchId,
        result: Result<(), BmpFailure>,
    ) -> Result<(), ServiceError> {
        let id = self.batches.remove(&batch).ok_or(ServiceError::UnknownBatch(batch))?;
        self.record(|| ServiceInput::BmpDone {
            now,
            batch,
            result: result.clone(),
        });
        if let Some(d) = self.draining.get_mut(&id) {
            d.outstanding -= 1;
            if d.outstanding == 0 {
                let d = self.draining.remove(&id).expect("present");
                self.release(now, id, d);
            }
            return Ok(());
        }
        let Some(j) = self.jobs.get_mut(&id) else { return Ok(()) };
        j.outstanding -= 1;
        match result {
            Err(e) => {
                let _ = self.queue.destroy_job(now, id, DestroyReason::ConfigurationFailed(e));
                self.drain_queue(now);
            }
            Ok(()) if j.outstanding == 0 => {
                j.state = JobState::Ready;
                self.events.push_back(ServiceEvent::Ready { job: id });
            }
            Ok(()) => {}
        }
        Ok(())
    }

    /// Acts on everything the queue did.
    fn drain_queue(&mut self, now: Instant) {
        while let Some(ev) = self.queue.poll_event() {
            match ev {
                QueueEvent::Allocated {
                    job,
                    machine,
                    allocation,
                } => self.on_allocate(job, &machine, allocation),
                QueueEvent::Cancelled { job, reason } => self.teardown(now, job, JobEnd { reason, queued: true }),
                QueueEvent::Freed { job, reason } => self.teardown(now, job, JobEnd { reason, queued: false }),
            }
        }
    }

    fn on_allocate(&mut self, id: JobId, machine: &str, allocation: crate::alloc::Allocation) {
        let Some(&mi) = self.names.get(machine) else {
            return;
        };
        let periphery = allocation.periphery(&self.machines[mi].topo);
        let (width, height) = crate::geometry::job_dimensions(&allocation.boards, allocation.torus).unwrap_or((8, 8));
        let boards = allocation.boards.clone();
        let mut host = None;
        if let Some(j) = self.jobs.get_mut(&id) {
            host = j.host.clone();
            j.alloc = Some(Allocated {
                machine: mi,
                boards: allocation.boards,
                periphery: periphery.clone(),
                width,
                height,
            });
        }
        self.events.push_back(ServiceEvent::Allocated {
            job: id,
            machine: machine.to_string(),
            boards,
            periphery,
            host,
        });
        let links = self.config.disable_peripheral_links.then_some(false);
        self.set_power(id, true, links);
    }

    /// Powers a live job's boards on or off, setting its peripheral links if asked.
    fn set_power(&mut self, id: JobId, power: bool, link_enable: Option<bool>) {
        let Some(a) = self.jobs.get(&id).and_then(|j| j.alloc.as_ref()) else {
            return;
        };
        let plan = self.plan_batches(id, a, power, link_enable);
        let n = self.issue(plan);
        let j = self.jobs.get_mut(&id).expect("present");
        j.outstanding += n;
        j.state = JobState::Power;
        j.power = Some(power);
        if j.outstanding == 0 {
            // No BMP work at all (no located boards): ready at once.
            j.state = JobState::Ready;
            self.events.push_back(ServiceEvent::Ready { job: id });
        }
    }

    /// Groups power and link commands per frame: one batch per BMP (ids assigned by
    /// [`Service::issue`]).
    fn plan_batches(&self, id: JobId, a: &Allocated, power: bool, link_enable: Option<bool>) -> Vec<BmpBatch> {
        let m = &self.machines[a.machine].machine;
        let mut frames: BTreeMap<FrameId, FrameWork> = BTreeMap::new();
        for b in &a.boards {
            if let Some(p) = m.location(*b) {
                frames.entry(p.frame_id()).or_default().0.push(p.board);
            }
        }
        if let Some(enable) = link_enable {
            for (b, l) in &a.periphery {
                if let Some(p) = m.location(*b) {
                    frames.entry(p.frame_id()).or_default().1.push((p.board, *l, enable));
                }
            }
        }
        let mut out = Vec::with_capacity(frames.len());
        for (frame, (boards, links)) in frames {
            let Some(bmp) = m.bmp_ip(frame) else { continue };
            let (power_on, power_off) = if power {
                (boards, Vec::new())
            } else {
                (Vec::new(), boards)
            };
            out.push(BmpBatch {
                id: BatchId(0),
                job: id,
                machine: m.name().to_string(),
                frame,
                bmp,
                power_on,
                power_off,
                links,
            });
        }
        out
    }

    /// Numbers planned batches and queues them for the BMPs; returns how many.
    fn issue(&mut self, plan: Vec<BmpBatch>) -> usize {
        let n = plan.len();
        for mut b in plan {
            b.id = BatchId(self.next_batch);
            self.next_batch += 1;
            self.batches.insert(b.id, b.job);
            self.out_batches.push_back(b);
        }
        n
    }

    /// Removes a job from the live set, remembers its reason and powers its boards off; the
    /// boards go back to the allocator once all BMP work for the job has completed.
    fn teardown(&mut self, now: Instant, id: JobId, reason: JobEnd) {
        let Some(j) = self.jobs.remove(&id) else { return };
        if let Some(u) = j.keepalive_until {
            self.deadlines.remove(&(u, id));
        }
        let machine = j
            .alloc
            .as_ref()
            .map(|a| self.machines[a.machine].machine.name().to_string());
        self.retired.push_back(id);
        self.retired_jobs.insert(
            id,
            RetiredJob {
                job_id: id,
                owner: j.owner.clone(),
                start_time: j.start_time,
                finish_time: now,
                end: reason.clone(),
                keepalive: j.keepalive,
                request: j.request,
                machine: j.machine.clone(),
                tags: j.tags.clone(),
                original: j.original.clone(),
                allocated_machine_name: machine.clone(),
                boards: j.alloc.as_ref().map(|a| a.boards.clone()).unwrap_or_default(),
            },
        );
        while self.retired.len() > self.config.max_retired_jobs {
            if let Some(old) = self.retired.pop_front() {
                self.retired_jobs.remove(&old);
            }
        }
        self.events.push_back(ServiceEvent::Destroyed {
            job: id,
            reason,
            machine: machine.clone(),
            boards: j.alloc.as_ref().map(|a| a.boards.clone()).unwrap_or_default(),
            host: j.host.clone(),
        });
        let (Some(a), Some(machine)) = (j.alloc, machine) else {
            return;
        };
        let plan = self.plan_batches(id, &a, false, None);
        let outstanding = j.outstanding + self.issue(plan);
        let d = Draining {
            machine,
            boards: a.boards.len(),
            outstanding,
        };
        if outstanding == 0 {
            self.release(now, id, d);
        } else {
            self.draining.insert(id, d);
        }
    }

    /// Hands a destroyed job's boards back to the allocator (its delayed-free list).
    fn release(&mut self, now: Instant, id: JobId, d: Draining) {
        self.queue.free(now, id);
        self.events.push_back(ServiceEvent::BoardsReleased {
            job: id,
            machine: d.machine.clone(),
            boards: d.boards,
        });
        self.drain_queue(now);
    }

    /// Number of live (not destroyed) jobs.
    pub fn live_jobs(&self) -> usize {
        self.jobs.len()
    }

    /// Destroyed jobs whose boards are still being switched off (they go back to the allocator
    /// when that is done), in id order, with the machine they are on. Their boards are the
    /// [`RetiredJob::boards`] of [`Service::retired_job`], while the service remembers it.
    pub fn draining_jobs(&self) -> impl Iterator<Item = (JobId, &str)> {
        self.draining.iter().map(|(id, d)| (*id, d.machine.as_str()))
    }

    /// BMP batches issued and not yet done.
    pub fn outstanding_batches(&self) -> usize {
        self.batches.len()
    }
}

/// Restarts a job's keepalive period from `now`, keeping the deadline index in step.
fn refresh(deadlines: &mut BTreeSet<(Instant, JobId)>, id: JobId, j: &mut Job, now: Instant) {
    let Some(k) = j.keepalive else { return };
    let until = now + k;
    if let Some(u) = j.keepalive_until {
        if u >= until {
            // A lease already runs longer (see `job_keepalive_lease`).
            return;
        }
        deadlines.remove(&(u, id));
    }
    j.keepalive_until = Some(until);
    deadlines.insert((until, id));
}

fn topology_of(m: &Machine) -> Topology {
    Topology::new(
        m.width(),
        m.height(),
        m.dead_boards().iter().copied(),
        m.dead_links().iter().copied(),
    )
}

/// Refuses requests the reference would mishandle.
fn validate(req: &Request) -> Result<(), ServiceError> {
    match req.shape {
        Shape::Boards { min_ratio, .. } if min_ratio.is_nan() || min_ratio < 0.0 => Err(ServiceError::BadRequest(
            format!("min_ratio must be a non-negative number, got {min_ratio}"),
        )),
        Shape::AnyBoard | Shape::Board { .. } if req.require_torus => Err(ServiceError::BadRequest(
            "require_torus must be False when allocating boards".into(),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::MachineSpec;

    fn machine(name: &str, w: u16, h: u16) -> Machine {
        Machine::new(MachineSpec::new(name, w, h)).unwrap()
    }

    fn job(req: Request) -> NewJob {
        NewJob {
            owner: "alice".into(),
            keepalive: Some(Duration::from_secs(60)),
            machine: None,
            tags: None,
            request: req,
            estimate: None,
            original: None,
        }
    }

    fn ack_all(s: &mut Service, now: Instant) -> Vec<BmpBatch> {
        let mut done = Vec::new();
        while let Some(b) = s.poll_bmp_batch() {
            s.handle_bmp_batch_done(now, b.id, Ok(())).unwrap();
            done.push(b);
        }
        done
    }

    fn events(s: &mut Service) -> Vec<ServiceEvent> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    #[test]
    fn a_job_is_powered_configured_then_ready_and_its_boards_come_back_after_power_off() {
        let t0 = Instant::ZERO;
        let mut s = Service::new(ServiceConfig::default());
        s.add_machine(t0, machine("m", 4, 2)).unwrap();
        let id = s
            .create_job(t0, Some("10.0.0.9"), job(Request::new(Shape::Triads { w: 1, h: 1 })))
            .unwrap();
        assert_eq!(id, JobId(1));
        assert_eq!(s.get_job_state(t0, id, None).state, JobState::Power);
        // A 1 x 1 triad at (0, 0): boards 0, 1, 2 of frame (0, 0) under the standard layout.
        let batches: Vec<BmpBatch> = std::iter::from_fn(|| s.poll_bmp_batch()).collect();
        assert_eq!(batches.len(), 1);
        let b = &batches[0];
        assert_eq!(b.power_on, vec![0, 1, 2]);
        assert_eq!(b.links.len(), 12);
        assert!(b.links.iter().all(|(_, _, enable)| !enable));
        assert_eq!(b.bmp, Ipv4Addr::new(192, 168, 0, 0));
        s.handle_bmp_batch_done(t0, b.id, Ok(())).unwrap();
        assert_eq!(s.get_job_state(t0, id, None).state, JobState::Ready);
        let info = s.get_job_machine_info(t0, id, None).unwrap();
        assert_eq!((info.width, info.height), (16, 16));
        assert_eq!(info.connections[0], (Chip::new(0, 0), Ipv4Addr::new(192, 168, 0, 1)));
        assert_eq!(info.connections.len(), 3);

        // Destroy: power off; the boards return only after the power-off and the delay.
        let t1 = Instant::from_secs(100);
        s.destroy_job(t1, id, DestroyReason::requested("done")).unwrap();
        assert_eq!(s.get_job_state(t1, id, None).state, JobState::Destroyed);
        assert_eq!(
            s.get_job_state(t1, id, None).reason.map(|r| r.to_string()).as_deref(),
            Some("done")
        );
        let off: Vec<BmpBatch> = std::iter::from_fn(|| s.poll_bmp_batch()).collect();
        assert_eq!(off.len(), 1);
        assert_eq!(off[0].power_off, vec![0, 1, 2]);
        assert!(off[0].links.is_empty());
        // The whole machine is wanted next: it must wait for the power-off + 30 s.
        let big = s
            .create_job(t1, None, job(Request::new(Shape::Triads { w: 4, h: 2 })))
            .unwrap();
        assert_eq!(s.get_job_state(t1, big, None).state, JobState::Queued);
        let t2 = Instant::from_secs(110);
        s.handle_bmp_batch_done(t2, off[0].id, Ok(())).unwrap();
        assert_eq!(s.poll_timeout(), Some(Instant::from_secs(140)));
        s.handle_timeout(Instant::from_secs(139));
        assert_eq!(
            s.get_job_state(Instant::from_secs(139), big, None).state,
            JobState::Queued
        );
        s.handle_timeout(Instant::from_secs(140));
        assert_eq!(
            s.get_job_state(Instant::from_secs(140), big, None).state,
            JobState::Power
        );
        let ev = events(&mut s);
        assert!(ev.contains(&ServiceEvent::BoardsReleased {
            job: id,
            machine: "m".into(),
            boards: 3
        }));
        assert!(
            ev.iter()
                .any(|e| matches!(e, ServiceEvent::Allocated { job, boards, .. } if *job == big && boards.len() == 24))
        );
    }

    #[test]
    fn peripheral_links_are_left_alone_when_the_policy_says_so() {
        let t0 = Instant::ZERO;
        let mut s = Service::new(ServiceConfig {
            disable_peripheral_links: false,
            ..ServiceConfig::default()
        });
        s.add_machine(t0, machine("m", 4, 2)).unwrap();
        let id = s
            .create_job(t0, None, job(Request::new(Shape::Triads { w: 1, h: 1 })))
            .unwrap();
        let on = ack_all(&mut s, t0);
        assert_eq!(on.len(), 1);
        assert_eq!(on[0].power_on, vec![0, 1, 2]);
        assert!(on[0].links.is_empty(), "{:?}", on[0].links);
        s.power_on_job_boards(t0, id, None).unwrap();
        let again = ack_all(&mut s, t0);
        assert!(again.iter().all(|b| b.links.is_empty()));
    }

    /// A machine at `base` (its own addresses), `w` x `h` triads, with `tags`.
    fn machine_at(name: &str, w: u16, h: u16, base: [u8; 4], tags: &[&str]) -> Machine {
        let mut spec = MachineSpec::new(name, w, h);
        spec.tags = tags.iter().map(|t| t.to_string()).collect();
        spec.addressing =
            crate::geometry::Addressing::Scheme(crate::geometry::IpScheme::standard(Ipv4Addr::from(base)));
        Machine::new(spec).unwrap()
    }

    fn reason(s: &mut Service, now: Instant, id: JobId) -> Option<String> {
        s.get_job_state(now, id, None).reason.map(|r| r.to_string())
    }

    #[test]
    fn queues_regenerate_when_machines_come_go_and_change() {
        let t0 = Instant::ZERO;
        let one_triad = || job(Request::new(Shape::Triads { w: 1, h: 1 }));
        let mut s = Service::new(ServiceConfig::default());
        s.add_machine(t0, machine_at("a", 1, 1, [10, 1, 0, 0], &["default"]))
            .unwrap();
        let holder = s.create_job(t0, None, one_triad()).unwrap();
        let waiting = s.create_job(t0, None, one_triad()).unwrap();
        ack_all(&mut s, t0);
        assert_eq!(s.get_job_state(t0, waiting, None).state, JobState::Queued);
        // Adding a machine that can run the queued job starts it there.
        s.add_machine(t0, machine_at("b", 1, 1, [10, 2, 0, 0], &["default"]))
            .unwrap();
        assert_eq!(s.get_job_state(t0, waiting, None).state, JobState::Power);
        assert_eq!(s.get_job_machine_info(t0, waiting, None).unwrap().machine_name, "b");
        ack_all(&mut s, t0);

        // A job only "a" could run (its tag), queued behind the holder; removing "a" destroys
        // the holder and cancels the queued job.
        s.modify_machine(t0, machine_at("a", 1, 1, [10, 1, 0, 0], &["default", "a"]))
            .unwrap();
        let only_a = s
            .create_job(
                t0,
                None,
                NewJob {
                    tags: Some(vec!["a".into()]),
                    ..one_triad()
                },
            )
            .unwrap();
        assert_eq!(s.get_job_state(t0, only_a, None).state, JobState::Queued);
        // Changing "a"'s tags so that it no longer carries "a" makes the job impossible.
        s.modify_machine(t0, machine_at("a", 1, 1, [10, 1, 0, 0], &["default"]))
            .unwrap();
        assert_eq!(s.get_job_state(t0, only_a, None).state, JobState::Destroyed);
        assert_eq!(
            reason(&mut s, t0, only_a).as_deref(),
            Some("Cancelled: No suitable machines available.")
        );
        assert_eq!(
            s.get_job_state(t0, holder, None).state,
            JobState::Ready,
            "tags only: jobs keep boards"
        );

        // A hardware change whose addresses clash with "b" is refused and changes nothing.
        assert!(matches!(
            s.modify_machine(t0, machine_at("a", 2, 1, [10, 2, 0, 0], &["default"])),
            Err(ServiceError::DuplicateIp { .. })
        ));
        assert_eq!(s.get_job_state(t0, holder, None).state, JobState::Ready);
        // A job only "a" can run, queued behind the holder, survives the replacement below.
        let named = s
            .create_job(
                t0,
                None,
                NewJob {
                    machine: Some("a".into()),
                    ..one_triad()
                },
            )
            .unwrap();
        assert_eq!(s.get_job_state(t0, named, None).state, JobState::Queued);
        events(&mut s);
        // A hardware change (2 x 1 triads instead of 1 x 1) replaces the machine: its job is
        // destroyed and its boards released, "a" keeps its place before "b", and the job queued
        // for "a" starts on the new "a" instead of being cancelled.
        s.modify_machine(t0, machine_at("a", 2, 1, [10, 1, 0, 0], &["default"]))
            .unwrap();
        assert_eq!(reason(&mut s, t0, holder).as_deref(), Some("Machine removed."));
        let ev = events(&mut s);
        assert!(
            ev.iter()
                .any(|e| matches!(e, ServiceEvent::BoardsReleased { job, .. } if *job == holder)),
            "{ev:?}"
        );
        assert_eq!(s.get_job_state(t0, named, None).state, JobState::Power);
        assert_eq!(s.get_job_machine_info(t0, named, None).unwrap().machine_name, "a");
        ack_all(&mut s, t0);
        assert_eq!(
            s.list_machines().iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        assert_eq!(s.list_machines()[0].width, 2);
        // The job on "b" is untouched and still knows its machine.
        assert_eq!(s.get_job_state(t0, waiting, None).state, JobState::Ready);
        assert_eq!(s.get_job_machine_info(t0, waiting, None).unwrap().machine_name, "b");
        // Removing "b" destroys its job; a job only "b" could run is cancelled.
        s.remove_machine(t0, "b").unwrap();
        assert_eq!(reason(&mut s, t0, waiting).as_deref(), Some("Machine removed."));
        let big = s
            .create_job(t0, None, job(Request::new(Shape::Triads { w: 3, h: 1 })))
            .unwrap();
        assert_eq!(
            reason(&mut s, t0, big).as_deref(),
            Some("Cancelled: No suitable machines available.")
        );
    }

    #[test]
    fn bmp_failure_destroys_the_job_with_the_reference_reason() {
        let t0 = Instant::ZERO;
        let mut s = Service::new(ServiceConfig::default());
        s.add_machine(t0, machine("m", 2, 2)).unwrap();
        let id = s.create_job(t0, None, job(Request::new(Shape::AnyBoard))).unwrap();
        let b = s.poll_bmp_batch().unwrap();
        s.handle_bmp_batch_done(
            t0,
            b.id,
            Err(BmpFailure::RequestsFailed {
                bmp: Ipv4Addr::new(192, 168, 0, 0),
            }),
        )
        .unwrap();
        let st = s.get_job_state(t0, id, None);
        assert_eq!(st.state, JobState::Destroyed);
        assert_eq!(
            st.reason.map(|r| r.to_string()).as_deref(),
            Some("Machine configuration failed. Error: Requests failed on BMP 192.168.0.0")
        );
        // The power-off still goes out, and the board comes back after it.
        let off = s.poll_bmp_batch().unwrap();
        assert_eq!(off.power_off, vec![0]);
        s.handle_bmp_batch_done(t0, off.id, Ok(())).unwrap();
        assert!(
            events(&mut s)
                .iter()
                .any(|e| matches!(e, ServiceEvent::BoardsReleased { .. }))
        );
    }

    #[test]
    fn keepalive_lapse_times_the_job_out() {
        let mut s = Service::new(ServiceConfig::default());
        s.add_machine(Instant::ZERO, machine("m", 1, 1)).unwrap();
        let id = s
            .create_job(Instant::ZERO, None, job(Request::new(Shape::AnyBoard)))
            .unwrap();
        ack_all(&mut s, Instant::ZERO);
        s.job_keepalive(Instant::from_secs(50), id, Some("h")).unwrap();
        assert_eq!(s.poll_timeout(), Some(Instant::from_secs(110) + Duration(1)));
        s.handle_timeout(Instant::from_secs(110));
        assert_eq!(s.list_jobs()[0].state, JobState::Ready);
        s.handle_timeout(Instant::from_secs(111));
        assert!(s.list_jobs().is_empty());
        assert_eq!(
            s.get_job_state(Instant::from_secs(111), id, None)
                .reason
                .map(|r| r.to_string())
                .as_deref(),
            Some("Job timed out.")
        );
    }

    #[test]
    fn impossible_and_malformed_requests() {
        let mut s = Service::new(ServiceConfig::default());
        s.add_machine(Instant::ZERO, machine("m", 1, 1)).unwrap();
        let id = s
            .create_job(Instant::ZERO, None, job(Request::new(Shape::Triads { w: 2, h: 1 })))
            .unwrap();
        assert_eq!(
            s.get_job_state(Instant::ZERO, id, None)
                .reason
                .map(|r| r.to_string())
                .as_deref(),
            Some("Cancelled: No suitable machines available.")
        );
        let bad = job(Request::new(Shape::Boards { n: 4, min_ratio: -1.0 }));
        assert!(matches!(
            s.create_job(Instant::ZERO, None, bad),
            Err(ServiceError::BadRequest(_))
        ));
        let no_owner = NewJob {
            owner: String::new(),
            ..job(Request::new(Shape::AnyBoard))
        };
        assert_eq!(s.create_job(Instant::ZERO, None, no_owner), Err(ServiceError::NoOwner));
        assert_eq!(s.live_jobs(), 0);
        assert!(
            s.destroy_job(Instant::ZERO, JobId(99), DestroyReason::Requested(None))
                .is_err()
        );
    }

    #[test]
    fn boards_come_back_even_when_no_retired_job_is_remembered() {
        // The reference leaks the boards in this configuration (max_retired_jobs = 0).
        let cfg = ServiceConfig {
            seconds_before_free: Duration::ZERO,
            max_retired_jobs: 0,
            ..ServiceConfig::default()
        };
        let mut s = Service::new(cfg);
        s.add_machine(Instant::ZERO, machine("m", 1, 1)).unwrap();
        let a = s
            .create_job(Instant::ZERO, None, job(Request::new(Shape::Triads { w: 1, h: 1 })))
            .unwrap();
        ack_all(&mut s, Instant::ZERO);
        s.destroy_job(Instant::ZERO, a, DestroyReason::Requested(None)).unwrap();
        assert_eq!(s.get_job_state(Instant::ZERO, a, None).state, JobState::Unknown);
        let b = s
            .create_job(Instant::ZERO, None, job(Request::new(Shape::Triads { w: 1, h: 1 })))
            .unwrap();
        assert_eq!(s.get_job_state(Instant::ZERO, b, None).state, JobState::Queued);
        // Acknowledging the power-off releases the triad, which b gets at once.
        ack_all(&mut s, Instant::ZERO);
        assert_eq!(s.get_job_state(Instant::ZERO, b, None).state, JobState::Ready);
    }

    #[test]
    fn destroyed_jobs_are_remembered_with_owner_times_and_boards_up_to_the_limit() {
        let cfg = ServiceConfig {
            max_retired_jobs: 2,
            ..ServiceConfig::default()
        };
        let mut s = Service::new(cfg);
        s.add_machine(Instant::ZERO, machine("m", 1, 1)).unwrap();
        let t = Instant::from_secs(5);
        let a = s.create_job(t, Some("h"), job(Request::new(Shape::AnyBoard))).unwrap();
        ack_all(&mut s, t);
        assert_eq!(s.job(a).unwrap().keepalive_until, Some(t + Duration::from_secs(60)));
        assert_eq!(s.job_owners().collect::<Vec<_>>(), vec![(a, "alice")]);
        // The read-only machine info leaves the keepalive alone.
        let info = s.job_machine_info(a).unwrap();
        assert_eq!(s.job(a).unwrap().keepalive_until, Some(t + Duration::from_secs(60)));
        assert_eq!(
            s.get_job_machine_info(Instant::from_secs(9), a, None),
            Some(info.clone())
        );
        assert_eq!(s.job(a).unwrap().keepalive_until, Some(Instant::from_secs(69)));
        let boards = info.boards;
        let end = Instant::from_secs(10);
        s.destroy_job(end, a, DestroyReason::requested("done")).unwrap();
        assert!(s.job_machine_info(a).is_none());
        assert_eq!(s.job_owners().count(), 0);
        let r = s.retired_job(a).unwrap();
        assert_eq!(
            (r.owner.as_str(), r.start_time, r.finish_time, &r.boards),
            ("alice", t, end, &boards)
        );
        assert_eq!(r.end.to_string(), "done");
        assert_eq!(r.allocated_machine_name.as_deref(), Some("m"));
        // Only the last two are kept.
        for _ in 0..2 {
            let b = s.create_job(end, None, job(Request::new(Shape::AnyBoard))).unwrap();
            s.destroy_job(end, b, DestroyReason::Requested(None)).unwrap();
        }
        assert!(s.retired_job(a).is_none());
        assert_eq!(
            s.retired_jobs().map(|r| r.job_id).collect::<Vec<_>>(),
            vec![JobId(a.0 + 1), JobId(a.0 + 2)]
        );
        assert_eq!(s.get_job_state(end, a, None).state, JobState::Unknown);
    }

    #[test]
    fn tags_machines_and_listing() {
        let t0 = Instant::ZERO;
        let mut s = Service::new(ServiceConfig::default());
        let mut spec = MachineSpec::new("big", 2, 2);
        spec.tags = vec!["default".into(), "big".into()];
        spec.addressing =
            crate::geometry::Addressing::Scheme(crate::geometry::IpScheme::standard(Ipv4Addr::new(10, 0, 0, 0)));
        s.add_machine(t0, Machine::new(spec).unwrap()).unwrap();
        assert!(matches!(
            s.add_machine(t0, machine("big", 1, 1)),
            Err(ServiceError::DuplicateMachine(_))
        ));
        s.add_machine(t0, machine("small", 1, 1)).unwrap();
        let mut spec = MachineSpec::new("clash", 1, 1);
        spec.addressing =
            crate::geometry::Addressing::Scheme(crate::geometry::IpScheme::standard(Ipv4Addr::new(10, 0, 0, 0)));
        assert!(matches!(
            s.add_machine(t0, Machine::new(spec).unwrap()),
            Err(ServiceError::DuplicateIp { .. })
        ));
        let j = s
            .create_job(
                t0,
                None,
                NewJob {
                    tags: Some(vec!["big".into()]),
                    ..job(Request::new(Shape::AnyBoard))
                },
            )
            .unwrap();
        assert_eq!(s.get_job_machine_info(t0, j, None).unwrap().machine_name, "big");
        let k = s
            .create_job(
                t0,
                None,
                NewJob {
                    machine: Some("small".into()),
                    ..job(Request::new(Shape::AnyBoard))
                },
            )
            .unwrap();
        assert_eq!(s.get_job_machine_info(t0, k, None).unwrap().machine_name, "small");
        assert_eq!(s.list_jobs().len(), 2);
        assert_eq!(
            s.list_machines().iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            vec!["big", "small"]
        );
        let w = s.where_is(&WhereIsQuery::JobChip { job: k, x: 0, y: 0 }).unwrap();
        assert_eq!((w.machine.as_str(), w.job_id), ("small", Some(k.0)));
        assert!(events(&mut s).iter().any(|e| e.job() == Some(j)));
        assert!(events(&mut s).is_empty());
        // Removing a machine destroys its jobs.
        s.remove_machine(t0, "small").unwrap();
        assert_eq!(
            s.get_job_state(t0, k, None).reason.map(|r| r.to_string()).as_deref(),
            Some("Machine removed.")
        );
        assert_eq!(
            s.get_board_position("big", Board::new(1, 1, 2)),
            Some(Physical::new(0, 0, 11))
        );
        assert_eq!(
            s.get_board_at_position("big", Physical::new(0, 0, 11)),
            Some(Board::new(1, 1, 2))
        );
    }
}
