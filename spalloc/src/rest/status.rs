//! What the status pages for people show (the Java service's web UI: `/spalloc/system/`
//! `list_machines`, `machine_info/{m}`, `list_jobs`, `job_info/{id}`), as typed data taken from
//! the live [`Service`]; the HTTP layer renders it.
//!
//! Ownership is the API's ([`Caller::sees`]): a caller who is not an administrator sees their
//! own jobs in full and, of anybody else's, only that its boards are in use — no id, no owner,
//! no page — because the API answers another user's job exactly as one that does not exist,
//! and a board map naming it would say that it does. An administrator sees every job.
//!
//! Nothing here changes the service: looking at a job is not a sign of life (unlike the API's
//! `machine`, `chip` and `power` reads).

pub use super::docs::state_name;
use super::{Caller, Found, find};
use spinnbed_core::alloc::{Request, Shape};
use spinnbed_core::geometry::{Board, Chip, Link, Machine, Physical};
use spinnbed_core::sched::JobId;
use spinnbed_core::service::{JobState, JobSummary, RetiredJob, Service};
use spinnbed_core::time::{Duration, Instant};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// How many destroyed jobs (the most recent) the job list shows.
pub const DESTROYED_SHOWN: usize = 100;

/// One status page's data, as of `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// When it was taken (service time: Unix µs in the live server).
    pub now: Instant,
    /// What.
    pub view: StatusView,
}

/// The data of each page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusView {
    /// Every machine, in priority order.
    Machines(Vec<MachineStatus>),
    /// One machine.
    Machine(Box<MachineStatus>),
    /// The caller's jobs (every job for an administrator).
    Jobs(JobsStatus),
    /// One job.
    Job(Box<JobStatus>),
}

/// A machine and every board position on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineStatus {
    /// Name.
    pub name: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Width in triads.
    pub width: u16,
    /// Height in triads.
    pub height: u16,
    /// Every board position, dead ones included, in (x, y, z) order.
    pub boards: Vec<BoardStatus>,
    /// Dead links, each from the board it leaves.
    pub dead_links: Vec<(Board, Link)>,
}

/// Board counts of a machine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BoardCounts {
    /// Board positions.
    pub total: usize,
    /// Dead boards.
    pub dead: usize,
    /// Live boards held by a job (or still being switched off after one).
    pub in_use: usize,
    /// Live boards that are switched on or being switched on or off.
    pub powered: usize,
}

impl MachineStatus {
    /// How many boards are dead, in use and powered.
    pub fn counts(&self) -> BoardCounts {
        let mut c = BoardCounts {
            total: self.boards.len(),
            ..BoardCounts::default()
        };
        for b in &self.boards {
            c.dead += usize::from(b.dead);
            c.in_use += usize::from(b.holder != Holder::Free);
            c.powered += usize::from(b.power != BoardPower::Off);
        }
        c
    }
}

/// One board position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardStatus {
    /// Logical position.
    pub board: Board,
    /// Cabinet, frame, board (if located).
    pub physical: Option<Physical>,
    /// Ethernet address (if addressed).
    pub ip: Option<Ipv4Addr>,
    /// Dead (never allocated).
    pub dead: bool,
    /// Who has it.
    pub holder: Holder,
    /// Its power.
    pub power: BoardPower,
}

/// Who has a board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Nobody.
    Free,
    /// A job the caller may see.
    Job(JobRef),
    /// A job of somebody else's (not named to this caller).
    InUse,
    /// A destroyed job's boards, being switched off before they are free again.
    Releasing,
}

/// A job as a board map names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    /// Id.
    pub id: JobId,
    /// Owner.
    pub owner: String,
    /// State.
    pub state: JobState,
}

/// A board's power, as far as the service knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoardPower {
    /// Off (or never switched on).
    Off,
    /// Being switched on and configured.
    PoweringOn,
    /// On (its job is ready).
    On,
    /// Being switched off.
    PoweringOff,
}

/// The job list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsStatus {
    /// Live jobs, in id order.
    pub live: Vec<JobStatus>,
    /// Destroyed jobs the service still remembers, newest first, at most
    /// [`DESTROYED_SHOWN`].
    pub destroyed: Vec<JobStatus>,
    /// Destroyed jobs remembered but left out.
    pub more_destroyed: usize,
}

/// One job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    /// Id.
    pub id: JobId,
    /// Owner.
    pub owner: String,
    /// State.
    pub state: JobState,
    /// Whether its boards are (being) switched on; `None` before it had boards and once
    /// destroyed.
    pub power: Option<bool>,
    /// Why it was destroyed.
    pub reason: Option<String>,
    /// What it asked for, in words: `1 board`, `3 boards`, `2 × 1 triads`, `board (1, 0, 2)`,
    /// with the machine or tags it named.
    pub request: String,
    /// Created.
    pub created: Instant,
    /// Destroyed.
    pub finished: Option<Instant>,
    /// Keepalive period.
    pub keepalive: Option<Duration>,
    /// When its keepalive runs out.
    pub keepalive_until: Option<Instant>,
    /// Who kept it alive last.
    pub keepalive_host: Option<String>,
    /// The machine its boards are (were) on.
    pub machine: Option<String>,
    /// Its boards, in order.
    pub boards: Vec<BoardAt>,
    /// Its size in chips while it has boards.
    pub chips: Option<(u32, u32)>,
    /// Each board's Ethernet chip (job coordinates) and address, while it has boards.
    pub connections: Vec<(Chip, Ipv4Addr)>,
}

/// A board of a job, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardAt {
    /// Logical position.
    pub board: Board,
    /// Cabinet, frame, board (unknown once its machine is gone).
    pub physical: Option<Physical>,
    /// Ethernet address.
    pub ip: Option<Ipv4Addr>,
}

/// The power of a live job's boards.
fn job_power(j: &JobSummary) -> BoardPower {
    match (j.state, j.power) {
        (JobState::Ready, Some(true)) => BoardPower::On,
        (JobState::Power, Some(true)) => BoardPower::PoweringOn,
        (JobState::Power, Some(false)) => BoardPower::PoweringOff,
        _ => BoardPower::Off,
    }
}

/// Every machine (in priority order), as `caller` may see it.
pub fn machines(svc: &Service, caller: &Caller) -> Vec<MachineStatus> {
    let jobs = svc.list_jobs();
    svc.machines().map(|m| machine_status(svc, m, &jobs, caller)).collect()
}

/// Machine `name`, as `caller` may see it.
pub fn machine(svc: &Service, caller: &Caller, name: &str) -> Option<MachineStatus> {
    let m = svc.machine(name)?;
    Some(machine_status(svc, m, &svc.list_jobs(), caller))
}

fn machine_status(svc: &Service, m: &Machine, jobs: &[JobSummary], caller: &Caller) -> MachineStatus {
    let mut held: BTreeMap<Board, (Holder, BoardPower)> = BTreeMap::new();
    for j in jobs
        .iter()
        .filter(|j| j.allocated_machine_name.as_deref() == Some(m.name()))
    {
        let holder = if caller.sees(&j.owner) {
            Holder::Job(JobRef {
                id: j.job_id,
                owner: j.owner.clone(),
                state: j.state,
            })
        } else {
            Holder::InUse
        };
        let power = job_power(j);
        for b in &j.boards {
            held.insert(*b, (holder.clone(), power));
        }
    }
    for (id, machine) in svc.draining_jobs() {
        if machine != m.name() {
            continue;
        }
        for b in svc.retired_job(id).map(|r| r.boards.as_slice()).unwrap_or_default() {
            held.entry(*b).or_insert((Holder::Releasing, BoardPower::PoweringOff));
        }
    }
    MachineStatus {
        name: m.name().to_string(),
        tags: m.tags().to_vec(),
        width: m.width(),
        height: m.height(),
        boards: m
            .boards()
            .map(|b| {
                let (holder, power) = held.remove(&b).unwrap_or((Holder::Free, BoardPower::Off));
                BoardStatus {
                    board: b,
                    physical: m.location(b),
                    ip: m.board_ip(b),
                    dead: !m.is_live(b),
                    holder,
                    power,
                }
            })
            .collect(),
        dead_links: m.dead_links().iter().copied().collect(),
    }
}

/// The jobs `caller` may see: live ones, and the most recent destroyed ones.
pub fn jobs(svc: &Service, caller: &Caller) -> JobsStatus {
    let live = svc
        .list_jobs()
        .into_iter()
        .filter(|j| caller.sees(&j.owner))
        .map(|j| live_job(svc, &j))
        .collect();
    let mut retired: Vec<&RetiredJob> = svc.retired_jobs().filter(|r| caller.sees(&r.owner)).collect();
    retired.reverse();
    let more_destroyed = retired.len().saturating_sub(DESTROYED_SHOWN);
    JobsStatus {
        live,
        destroyed: retired
            .into_iter()
            .take(DESTROYED_SHOWN)
            .map(|r| retired_job(svc, r))
            .collect(),
        more_destroyed,
    }
}

/// Job `id`, if `caller` may see it (`None` also for another user's job).
pub fn job(svc: &Service, caller: &Caller, id: JobId) -> Option<JobStatus> {
    Some(match find(svc, caller, id)? {
        Found::Live(j) => live_job(svc, &j),
        Found::Retired(r) => retired_job(svc, &r),
    })
}

fn located(svc: &Service, machine: Option<&str>, boards: &[Board]) -> Vec<BoardAt> {
    let m = machine.and_then(|n| svc.machine(n));
    boards
        .iter()
        .map(|b| BoardAt {
            board: *b,
            physical: m.and_then(|m| m.location(*b)),
            ip: m.and_then(|m| m.board_ip(*b)),
        })
        .collect()
}

fn live_job(svc: &Service, j: &JobSummary) -> JobStatus {
    let info = svc.job_machine_info(j.job_id);
    JobStatus {
        id: j.job_id,
        owner: j.owner.clone(),
        state: j.state,
        power: j.power,
        reason: None,
        request: describe_request(&j.request, j.machine.as_deref(), j.tags.as_deref()),
        created: j.start_time,
        finished: None,
        keepalive: j.keepalive,
        keepalive_until: j.keepalive_until.filter(|u| *u < Instant::MAX),
        keepalive_host: j.keepalive_host.clone(),
        machine: j.allocated_machine_name.clone(),
        boards: located(svc, j.allocated_machine_name.as_deref(), &j.boards),
        chips: info.as_ref().map(|i| (i.width, i.height)),
        connections: info.map(|i| i.connections).unwrap_or_default(),
    }
}

fn retired_job(svc: &Service, r: &RetiredJob) -> JobStatus {
    let reason = r.end.to_string();
    JobStatus {
        id: r.job_id,
        owner: r.owner.clone(),
        state: JobState::Destroyed,
        power: None,
        reason: (!reason.is_empty()).then_some(reason),
        request: describe_request(&r.request, r.machine.as_deref(), r.tags.as_deref()),
        created: r.start_time,
        finished: Some(r.finish_time),
        keepalive: r.keepalive,
        keepalive_until: None,
        keepalive_host: None,
        machine: r.allocated_machine_name.clone(),
        boards: located(svc, r.allocated_machine_name.as_deref(), &r.boards),
        chips: None,
        connections: Vec::new(),
    }
}

/// A request in words.
pub fn describe_request(r: &Request, machine: Option<&str>, tags: Option<&[String]>) -> String {
    let mut s = match r.shape {
        Shape::AnyBoard => "1 board".to_string(),
        Shape::Board { board } => format!("board {board}"),
        Shape::Boards { n, .. } => format!("{n} boards"),
        Shape::Triads { w, h } => format!("{w} × {h} triad{}", if w * h == 1 { "" } else { "s" }),
        Shape::TriadsAt { root, w, h } => {
            format!("{w} × {h} triad{} from board {root}", if w * h == 1 { "" } else { "s" })
        }
    };
    if let Some(m) = machine {
        s.push_str(&format!(" on {m}"));
    } else if let Some(t) = tags.filter(|t| !t.is_empty()) {
        s.push_str(&format!(" tagged {}", t.join(", ")));
    }
    s
}
