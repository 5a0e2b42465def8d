//! A simulated run: the workload's users, the allocation service and the hardware, driven by
//! the discrete-event engine.
//!
//! The world owns the clock ([`EventQueue`]). Users submit jobs, keep them alive every half
//! keepalive period (until their client dies, if it does), use their boards for the job's
//! runtime once ready and destroy the job. The service decides; the [`Hardware`] carries out
//! its BMP batches. After every event the world moves work between them until nothing is
//! left to move, then arms the service's and the hardware's timers. It records what happened to
//! every job and samples the machine for the outputs.

use crate::engine::EventQueue;
use crate::hardware::{
    Hardware, JobLive, JobScp, LiveSession, LiveTotals, ScpCounters, ScpSummary, Session, SessionEvent, SessionFailure,
};
use crate::scenario::{FaultConfig, LiveOutputConfig};
use crate::workload::WorkloadJob;
use spinnbed_core::geometry::{Board, Machine, Physical};
use spinnbed_core::reason::{DestroyReason, JobEnd};
use spinnbed_core::sched::JobId;
use spinnbed_core::service::{NewJob, Service, ServiceEvent};
use spinnbed_core::time::{Duration, Instant};
use std::collections::BTreeMap;

/// What finally happened to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Ran and was destroyed by its user.
    Completed,
    /// Never allocated: no machine could run it, or the request was refused.
    Cancelled,
    /// Its keepalive lapsed.
    TimedOut,
    /// Hardware configuration (or boot) failed.
    Failed,
    /// Still queued when the run stopped.
    NeverStarted,
    /// Still holding boards when the run stopped.
    Unfinished,
}

impl Outcome {
    /// The name used in `jobs.csv`.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Cancelled => "cancelled",
            Outcome::TimedOut => "timed_out",
            Outcome::Failed => "failed",
            Outcome::NeverStarted => "never_started",
            Outcome::Unfinished => "unfinished",
        }
    }
}

/// Everything recorded about one job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// Index in the workload.
    pub index: usize,
    /// The service's id (None if the service refused the request).
    pub service_id: Option<JobId>,
    /// Submission.
    pub submit: Instant,
    /// Allocation.
    pub start: Option<Instant>,
    /// All power/link work done.
    pub ready: Option<Instant>,
    /// Destruction.
    pub end: Option<Instant>,
    /// Boards held.
    pub boards: Vec<Board>,
    /// Machine it ran on.
    pub machine: Option<String>,
    /// Outcome.
    pub outcome: Outcome,
    /// Destruction reason, in the reference's words.
    pub reason: String,
    /// Why the world itself destroyed the job, if it did (set just before asking the service).
    ended_by: Option<UserEnd>,
}

/// One sample of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When.
    pub t: Instant,
    /// Jobs queued.
    pub queued: usize,
    /// Jobs holding boards.
    pub running: usize,
    /// Boards allocated (from allocation until released after power-off).
    pub allocated: usize,
    /// Boards powered.
    pub powered: usize,
    /// Live boards neither allocated nor powered.
    pub idle: usize,
    /// Dead boards.
    pub dead: usize,
}

/// Per-board usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BoardUse {
    /// Time allocated.
    pub allocated: Duration,
    /// Time powered.
    pub powered: Duration,
    alloc_since: Option<Instant>,
    powered_since: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    Arrival(usize),
    UserDone(JobId),
    ServiceTimer,
    HardwareTimer,
    Sample,
    /// Fault `i` strikes (true) or heals (false).
    Fault(usize, bool),
    /// The user gives up waiting for the job if it is still queued.
    Withdraw(JobId),
}

/// How a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Jobs stop arriving after this (the workload already respects it).
    pub horizon: Instant,
    /// The run stops here even if jobs remain.
    pub stop: Instant,
    /// Sampling period.
    pub sample_period: Duration,
}

struct MachineInfo {
    machine: Machine,
    live: usize,
}

/// A simulated run in progress.
pub struct World<H: Hardware> {
    q: EventQueue<Ev>,
    service: Service,
    hw: H,
    jobs: Vec<WorkloadJob>,
    records: Vec<JobRecord>,
    by_sid: BTreeMap<JobId, usize>,
    machines: Vec<MachineInfo>,
    /// Machine name → index in `machines`.
    machine_names: BTreeMap<String, usize>,
    /// Per machine, dense by board index.
    boards: Vec<Vec<BoardUse>>,
    samples: Vec<Sample>,
    limits: Limits,
    user: UserBehaviour,
    faults: Vec<FaultConfig>,
    scp_samples: Vec<Option<ScpCounters>>,
    failures: BTreeMap<(usize, Board), u32>,
    retired_boards: Vec<(String, Board)>,
    /// When a board last stopped being allocated or powered (or the end, if still so then).
    last_use: Instant,
    service_timer: Option<Instant>,
    hw_timer: Option<Instant>,
    arrived: usize,
    open: usize,
    allocated: usize,
    powered: usize,
    running: usize,
    /// Shutting down: no more arrivals, every job destroyed (real-time runs on Ctrl-C).
    closing: bool,
    /// A copy of every service event, for a driver that also serves other clients.
    tap: Option<std::collections::VecDeque<(Instant, ServiceEvent)>>,
    /// Live output: how users stream, and whether each workload job's user does.
    live: Option<(LiveOutputConfig, Vec<bool>)>,
}

impl<H: Hardware> std::fmt::Debug for World<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("now", &self.q.now())
            .field("jobs", &self.jobs.len())
            .finish_non_exhaustive()
    }
}

/// What a finished run hands to the outputs.
#[derive(Debug)]
pub struct RunResult {
    /// The workload.
    pub jobs: Vec<WorkloadJob>,
    /// What happened to each job (same order).
    pub records: Vec<JobRecord>,
    /// Samples.
    pub samples: Vec<Sample>,
    /// Per-board usage: per machine, dense by [`Machine::board_index`].
    pub boards: Vec<Vec<BoardUse>>,
    /// The machines.
    pub machines: Vec<Machine>,
    /// When the run stopped.
    pub end: Instant,
    /// Events handled.
    pub events: u64,
    /// SCP statistics of packet-level hardware.
    pub scp: Option<ScpSummary>,
    /// SCP counters at each sample (packet-level hardware).
    pub scp_samples: Vec<Option<ScpCounters>>,
    /// Each record's SCP traffic (packet-level hardware; `None` for jobs the service refused).
    pub job_scp: Vec<Option<JobScp>>,
    /// Each record's live output (`None` for jobs whose users did not stream).
    pub job_live: Vec<Option<JobLive>>,
    /// The live-output listener's counters (runs with live output only).
    pub live: Option<LiveTotals>,
    /// Boards the health policy took out of service.
    pub retired_boards: Vec<(String, Board)>,
    /// When a board last stopped being allocated or powered: the last release or power-off, or
    /// the end of the run if boards were still held or powered then (`Instant::ZERO` if nothing
    /// was ever allocated or powered).
    pub last_use: Instant,
}

impl<H: Hardware> World<H> {
    /// A world whose service already has its machines.
    pub fn new(service: Service, hw: H, jobs: Vec<WorkloadJob>, limits: Limits) -> World<H> {
        let machines: Vec<MachineInfo> = service
            .machines()
            .map(|m| MachineInfo {
                live: m.board_positions() - m.dead_boards().len(),
                machine: m.clone(),
            })
            .collect();
        let boards = machines
            .iter()
            .map(|m| vec![BoardUse::default(); m.machine.board_positions()])
            .collect();
        let mut q = EventQueue::default();
        for (i, j) in jobs.iter().enumerate() {
            q.schedule(j.submit, Ev::Arrival(i));
        }
        q.schedule(Instant::ZERO, Ev::Sample);
        let records = jobs
            .iter()
            .enumerate()
            .map(|(i, j)| JobRecord {
                index: i,
                service_id: None,
                submit: j.submit,
                start: None,
                ready: None,
                end: None,
                boards: Vec::new(),
                machine: None,
                outcome: Outcome::NeverStarted,
                reason: String::new(),
                ended_by: None,
            })
            .collect();
        World {
            q,
            service,
            hw,
            jobs,
            records,
            by_sid: BTreeMap::new(),
            machine_names: machines
                .iter()
                .enumerate()
                .map(|(i, m)| (m.machine.name().to_string(), i))
                .collect(),
            machines,
            boards,
            samples: Vec::new(),
            limits,
            user: UserBehaviour::default(),
            faults: Vec::new(),
            scp_samples: Vec::new(),
            failures: BTreeMap::new(),
            retired_boards: Vec::new(),
            last_use: Instant::ZERO,
            service_timer: None,
            hw_timer: None,
            arrived: 0,
            open: 0,
            allocated: 0,
            powered: 0,
            running: 0,
            closing: false,
            tap: None,
            live: None,
        }
    }

    /// Makes a share (`live.fraction`) of the users stream live output while their jobs run:
    /// which ones is drawn once per workload job, in workload order, from the `live_output`
    /// stream of `seed` (so it depends on nothing that happens during the run).
    pub fn with_live_output(mut self, live: Option<LiveOutputConfig>, seed: u64) -> World<H> {
        self.live = live.map(|cfg| {
            let mut rng = crate::engine::stream(seed, "live_output");
            let streams = (0..self.jobs.len())
                .map(|_| crate::quantity::dist::unit(&mut rng) < cfg.fraction)
                .collect();
            (cfg, streams)
        });
        self
    }

    /// Starts the clock at `start` instead of zero (a live server's clock is the Unix time):
    /// the workload's submission times count from there. Call before anything happens.
    pub fn starting_at(mut self, start: Instant) -> World<H> {
        let mut q = EventQueue::default();
        q.advance_to(start);
        for (i, j) in self.jobs.iter_mut().enumerate() {
            j.submit = start + Duration(j.submit.as_micros());
            self.records[i].submit = j.submit;
            q.schedule(j.submit, Ev::Arrival(i));
        }
        q.schedule(start, Ev::Sample);
        self.q = q;
        self.limits.horizon = start.saturating_add(Duration(self.limits.horizon.as_micros()));
        self.limits.stop = start.saturating_add(Duration(self.limits.stop.as_micros()));
        self
    }

    /// Keeps a copy of every service event for [`World::poll_tap`] (a driver that also serves
    /// clients of its own needs to see what happens to their jobs).
    pub fn with_tap(mut self) -> World<H> {
        self.tap = Some(std::collections::VecDeque::new());
        self
    }

    /// The next tapped service event, with the time the service made it.
    pub fn poll_tap(&mut self) -> Option<(Instant, ServiceEvent)> {
        self.tap.as_mut()?.pop_front()
    }

    /// The service.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Lets a driver call the service at `now` (another client's request), then moves the
    /// resulting work along.
    pub fn with_service<R>(&mut self, now: Instant, f: impl FnOnce(&mut Service, Instant) -> R) -> R {
        self.advance(now);
        let r = f(&mut self.service, now);
        self.pump(now);
        r
    }

    /// Hands batches the service issued before this world existed (work a restarted server
    /// must redo) to the hardware.
    pub fn resubmit(&mut self, now: Instant, batches: Vec<spinnbed_core::service::BmpBatch>) {
        self.advance(now);
        for b in batches {
            self.hw.submit(now, b);
        }
        self.pump(now);
    }

    /// Stops the world's own users (a server stopping): no more arrivals, and their live jobs
    /// are destroyed; other clients' jobs are left alone. Returns how many were destroyed.
    pub fn stop_users(&mut self, now: Instant) -> usize {
        self.closing = true;
        let live: Vec<JobId> = self
            .by_sid
            .iter()
            .filter(|(_, i)| self.records[**i].end.is_none())
            .map(|(sid, _)| *sid)
            .collect();
        for &job in &live {
            self.destroy(now, job, UserEnd::Interrupted);
        }
        self.pump(now);
        live.len()
    }

    /// Sets what simulated users do with their boards.
    pub fn with_users(mut self, user: UserBehaviour) -> World<H> {
        self.user = user;
        self
    }

    /// Schedules the scenario's faults (each strikes at its time and heals after its
    /// duration, if it has one).
    pub fn with_faults(mut self, faults: Vec<FaultConfig>) -> World<H> {
        // Heals are scheduled first so that, at the same instant, a fault heals before another
        // strikes (events at one time run in scheduling order).
        for (i, f) in faults.iter().enumerate() {
            if let Some(d) = f.duration {
                self.q.schedule(Instant::ZERO + f.at + d, Ev::Fault(i, false));
            }
        }
        for (i, f) in faults.iter().enumerate() {
            self.q.schedule(Instant::ZERO + f.at, Ev::Fault(i, true));
        }
        self.faults = faults;
        self
    }

    /// The current simulated time.
    pub fn now(&self) -> Instant {
        self.q.now()
    }

    /// True when every job has arrived and finished, and all boards are back.
    fn finished(&self) -> bool {
        self.arrived == self.jobs.len() && self.is_quiet()
    }

    /// Runs until everything is done or the stop time; `progress` is called now and then with
    /// the simulated time.
    pub fn run(mut self, mut progress: impl FnMut(Instant)) -> RunResult {
        let mut last_report = Instant::ZERO;
        while let Some(t) = self.next_deadline() {
            if t > self.limits.stop {
                break;
            }
            self.advance(t);
            if t >= last_report + Duration::from_secs(3600) {
                progress(t);
                last_report = t;
            }
            if self.is_done() {
                break;
            }
        }
        let end = self.q.now().min(self.limits.stop);
        progress(end);
        self.into_result(end)
    }

    /// The hardware (for drivers that move its datagrams).
    pub fn hardware_mut(&mut self) -> &mut H {
        &mut self.hw
    }

    /// When the world next has something to do (real-time drivers sleep until then).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.q.peek_time()
    }

    /// Handles every event due at or before `now`, in order, each at its own time, then
    /// moves the clock to `now`.
    pub fn advance(&mut self, now: Instant) {
        while let Some((t, ev)) = self.q.pop_due(now) {
            self.handle(t, ev);
            self.pump(t);
        }
        self.q.advance_to(now);
    }

    /// Lets a driver act on the hardware at `now` (e.g. hand it a datagram that arrived), then
    /// moves the resulting work along.
    pub fn with_hardware<R>(&mut self, now: Instant, f: impl FnOnce(&mut H, Instant) -> R) -> R {
        // Whatever fell due while the driver waited happens first, at its own time.
        self.advance(now);
        let r = f(&mut self.hw, now);
        self.pump(now);
        r
    }

    /// Stops the run early (a real-time run interrupted, or at its stop time): jobs yet to
    /// arrive never will, and every live job is destroyed, so the service powers its boards
    /// off. Drive the world on until [`World::is_shut_down`].
    pub fn shut_down(&mut self, now: Instant) -> usize {
        self.closing = true;
        let live: Vec<JobId> = self.service.list_jobs().iter().map(|j| j.job_id).collect();
        for &job in &live {
            self.destroy(now, job, UserEnd::Interrupted);
        }
        self.pump(now);
        live.len()
    }

    /// The boards that may still be powered, by machine name: those known to be on, and those
    /// still allocated (a power-on may be under way): what a run that stops now may leave on.
    pub fn possibly_powered_boards(&self) -> Vec<(String, Board)> {
        let mut out = Vec::new();
        for (mi, m) in self.machines.iter().enumerate() {
            for b in m.machine.boards() {
                let u = &self.boards[mi][m.machine.board_index(b)];
                if u.powered_since.is_some() || u.alloc_since.is_some() {
                    out.push((m.machine.name().to_string(), b));
                }
            }
        }
        out
    }

    /// No job is live and no board is allocated or powered.
    pub fn is_quiet(&self) -> bool {
        self.open == 0 && self.allocated == 0 && self.powered == 0
    }

    /// Destroys a job for one of the world's own reasons, remembering which.
    fn destroy(&mut self, now: Instant, job: JobId, why: UserEnd) {
        let Some(&i) = self.by_sid.get(&job) else { return };
        let reason = DestroyReason::requested(why.to_string());
        self.records[i].ended_by = Some(why);
        let _ = self.service.destroy_job(now, job, reason);
    }

    /// After [`World::shut_down`]: every job is over and every board off and released.
    pub fn is_shut_down(&self) -> bool {
        self.closing && self.is_quiet()
    }

    /// True when every job has arrived and finished and every board is back, or the stop time
    /// has passed.
    pub fn is_done(&self) -> bool {
        (self.finished() && self.q.now() >= self.limits.horizon) || self.q.now() > self.limits.stop
    }

    /// Ends the run at `end`: closes open intervals, marks unfinished jobs, and hands over what
    /// was recorded.
    pub fn into_result(mut self, end: Instant) -> RunResult {
        self.close(end);
        let scp = self.hw.scp_summary();
        let job_scp = self
            .records
            .iter()
            .map(|r| r.service_id.and_then(|id| self.hw.job_scp(id)))
            .collect();
        let job_live = self
            .records
            .iter()
            .map(|r| r.service_id.and_then(|id| self.hw.job_live(id)))
            .collect();
        let live = self.live.as_ref().and_then(|_| self.hw.live_totals());
        RunResult {
            jobs: self.jobs,
            records: self.records,
            samples: self.samples,
            boards: self.boards,
            machines: self.machines.into_iter().map(|m| m.machine).collect(),
            end,
            events: self.q.handled(),
            scp,
            scp_samples: self.scp_samples,
            job_scp,
            job_live,
            live,
            retired_boards: self.retired_boards,
            last_use: self.last_use,
        }
    }

    fn handle(&mut self, now: Instant, ev: Ev) {
        match ev {
            Ev::Arrival(i) => self.arrive(now, i),
            Ev::UserDone(sid) => {
                let live = self.by_sid.get(&sid).is_some_and(|&i| self.records[i].end.is_none());
                if live {
                    self.hw.finish_session(now, sid);
                }
            }
            Ev::ServiceTimer => {
                self.service_timer = None;
                self.service.handle_timeout(now);
            }
            Ev::HardwareTimer => {
                self.hw_timer = None;
                self.hw.handle_timeout(now);
            }
            Ev::Fault(i, on) => {
                if let Some(f) = self.faults.get(i).cloned() {
                    self.hw.apply_fault(now, &f.kind, on);
                }
            }
            Ev::Withdraw(sid) => {
                let queued = self
                    .by_sid
                    .get(&sid)
                    .is_some_and(|&i| self.records[i].start.is_none() && self.records[i].end.is_none());
                if queued {
                    self.destroy(now, sid, UserEnd::Withdrew);
                }
            }
            Ev::Sample => {
                self.sample(now);
                let next = now + self.limits.sample_period;
                if !(self.finished() && now >= self.limits.horizon) && next <= self.limits.stop {
                    self.q.schedule(next, Ev::Sample);
                }
            }
        }
    }

    fn arrive(&mut self, now: Instant, i: usize) {
        self.arrived += 1;
        if self.closing {
            return;
        }
        let j = &self.jobs[i];
        let new = NewJob {
            owner: j.owner.clone(),
            keepalive: j.keepalive,
            machine: j.machine.clone(),
            tags: j.tags.clone(),
            request: j.request,
            estimate: j.estimate,
            original: None,
        };
        let lease = keepalive_lease(j);
        match self.service.create_job(now, None, new) {
            Ok(sid) => {
                self.records[i].service_id = Some(sid);
                self.by_sid.insert(sid, i);
                self.open += 1;
                self.hw.job_created(sid, self.jobs[i].id);
                if let Some(after) = self.jobs[i].cancel_after {
                    self.q.schedule(now + after, Ev::Withdraw(sid));
                }
                if let Some(last) = lease {
                    let _ = self.service.job_keepalive_lease(sid, last);
                }
            }
            Err(e) => {
                let r = &mut self.records[i];
                r.outcome = Outcome::Cancelled;
                r.reason = e.to_string();
                r.end = Some(now);
            }
        }
    }

    /// Moves work between the service and the hardware until neither has anything new.
    fn pump(&mut self, now: Instant) {
        loop {
            let mut moved = false;
            while let Some(b) = self.service.poll_bmp_batch() {
                self.hw.submit(now, b);
                moved = true;
            }
            while let Some((batch, result)) = self.hw.poll_done() {
                if result.is_ok() {
                    self.account_power(now, &batch.machine, batch.frame, &batch.power_on, true);
                    self.account_power(now, &batch.machine, batch.frame, &batch.power_off, false);
                }
                let _ = self.service.handle_bmp_batch_done(now, batch.id, result);
                moved = true;
            }
            while let Some(ev) = self.service.poll_event() {
                if let Some(tap) = &mut self.tap {
                    tap.push_back((now, ev.clone()));
                }
                self.on_service_event(now, ev);
                moved = true;
            }
            while let Some((job, ev)) = self.hw.poll_session() {
                self.on_session_event(now, job, ev);
                moved = true;
            }
            if !moved {
                break;
            }
        }
        if let Some(t) = self.service.poll_timeout()
            && self.service_timer.is_none_or(|s| t < s)
        {
            // A deadline already past (real time moves on between events) is due now.
            let t = t.max(self.q.now());
            self.service_timer = Some(t);
            self.q.schedule(t, Ev::ServiceTimer);
        }
        if let Some(t) = self.hw.poll_timeout()
            && self.hw_timer.is_none_or(|s| t < s)
        {
            let t = t.max(self.q.now());
            self.hw_timer = Some(t);
            self.q.schedule(t, Ev::HardwareTimer);
        }
    }

    fn machine_index(&self, name: &str) -> Option<usize> {
        // A scan is quickest for the usual handful of machines; the index keeps thousands cheap.
        if self.machines.len() <= 8 {
            return self.machines.iter().position(|m| m.machine.name() == name);
        }
        self.machine_names.get(name).copied()
    }

    fn account_power(
        &mut self,
        now: Instant,
        machine: &str,
        frame: spinnbed_core::geometry::FrameId,
        boards: &[u16],
        on: bool,
    ) {
        let Some(mi) = self.machine_index(machine) else { return };
        for &b in boards {
            let m = &self.machines[mi].machine;
            let Some(board) = m.board_at(Physical::new(frame.cabinet, frame.frame, b)) else {
                continue;
            };
            let u = &mut self.boards[mi][m.board_index(board)];
            match (on, u.powered_since) {
                (true, None) => {
                    u.powered_since = Some(now);
                    self.powered += 1;
                }
                (false, Some(since)) => {
                    u.powered = u.powered + (now - since);
                    u.powered_since = None;
                    self.powered -= 1;
                    self.last_use = self.last_use.max(now);
                }
                _ => {}
            }
        }
    }

    fn on_service_event(&mut self, now: Instant, ev: ServiceEvent) {
        match ev {
            ServiceEvent::Created { .. } | ServiceEvent::Powering { .. } | ServiceEvent::MachineChanged { .. } => {}
            ServiceEvent::Allocated {
                job, machine, boards, ..
            } => {
                let Some(&i) = self.by_sid.get(&job) else { return };
                let mi = self.machine_index(&machine);
                if let Some(mi) = mi {
                    for b in &boards {
                        let k = self.machines[mi].machine.board_index(*b);
                        self.boards[mi][k].alloc_since = Some(now);
                    }
                }
                self.allocated += boards.len();
                self.running += 1;
                let r = &mut self.records[i];
                r.start = Some(now);
                r.machine = Some(machine);
                r.boards = boards;
            }
            ServiceEvent::Ready { job } => {
                let Some(&i) = self.by_sid.get(&job) else { return };
                if self.records[i].ready.is_none() {
                    self.records[i].ready = Some(now);
                    let j = &self.jobs[i];
                    let session = Session {
                        job,
                        machine: self.records[i].machine.clone().unwrap_or_default(),
                        boards: self.records[i].boards.clone(),
                        boot: self.user.boot,
                        boot_tries: self.user.boot_tries,
                        data_in: j.data_in,
                        data_out: j.data_out,
                        live: self
                            .live
                            .as_ref()
                            .filter(|(_, streams)| streams.get(i).copied().unwrap_or(false))
                            .map(|(cfg, _)| LiveSession {
                                rate: cfg.rate,
                                keys_per_packet: cfg.keys_per_packet,
                                start: cfg.start,
                                tag: cfg.tag,
                            }),
                    };
                    self.hw.start_session(now, session);
                }
            }
            ServiceEvent::Destroyed { job, reason, .. } => {
                let Some(&i) = self.by_sid.get(&job) else { return };
                self.open -= 1;
                self.hw.end_session(job);
                let r = &mut self.records[i];
                r.end = Some(now);
                r.outcome = match classify(&reason, r.ended_by.as_ref()) {
                    Outcome::Unfinished if r.start.is_none() => Outcome::NeverStarted,
                    o => o,
                };
                r.reason = reason.to_string();
            }
            ServiceEvent::BoardsReleased { job, machine, .. } => {
                let Some(&i) = self.by_sid.get(&job) else { return };
                let mi = self.machine_index(&machine);
                let n = self.records[i].boards.len();
                if let Some(mi) = mi {
                    for b in &self.records[i].boards {
                        let u = &mut self.boards[mi][self.machines[mi].machine.board_index(*b)];
                        if let Some(since) = u.alloc_since.take() {
                            u.allocated = u.allocated + (now - since);
                            self.last_use = self.last_use.max(now);
                        }
                    }
                }
                self.allocated -= n;
                self.running -= 1;
            }
        }
    }

    fn on_session_event(&mut self, now: Instant, job: JobId, ev: SessionEvent) {
        let Some(&i) = self.by_sid.get(&job) else { return };
        if self.records[i].end.is_some() {
            return;
        }
        match ev {
            SessionEvent::Running => {
                let runtime = self.jobs[i].runtime;
                self.q.schedule(now + runtime, Ev::UserDone(job));
            }
            SessionEvent::Finished => self.destroy(now, job, UserEnd::Done),
            SessionEvent::Failed { why, board } => {
                self.note_failure(now, i, board);
                self.destroy(now, job, UserEnd::GaveUp(why));
            }
        }
    }

    /// Counts a user failure against the board that failed (the one the user talked to), or
    /// against every board of the job when that is not known; with a health policy, boards that
    /// keep failing are taken out of service (marked dead for new allocations).
    fn note_failure(&mut self, now: Instant, i: usize, board: Option<Board>) {
        let Some(limit) = self.user.avoid_after.filter(|l| *l > 0) else {
            return;
        };
        let Some(machine) = self.records[i].machine.clone() else {
            return;
        };
        let Some(mi) = self.machine_index(&machine) else { return };
        let mut retire = Vec::new();
        let suspects = match board {
            Some(b) if self.records[i].boards.contains(&b) => vec![b],
            _ => self.records[i].boards.clone(),
        };
        for b in &suspects {
            let n = self.failures.entry((mi, *b)).or_insert(0);
            *n += 1;
            if *n == limit {
                retire.push(*b);
            }
        }
        if retire.is_empty() {
            return;
        }
        let m = &self.machines[mi].machine;
        let mut spec = m.spec();
        // The scenario's dead boards, the ones retired before, and these.
        let before = self
            .retired_boards
            .iter()
            .filter(|(n, _)| *n == machine)
            .map(|(_, b)| *b);
        spec.dead_boards = m
            .dead_boards()
            .iter()
            .copied()
            .chain(before)
            .chain(retire.iter().copied())
            .collect();
        if let Ok(new) = Machine::new(spec) {
            self.retired_boards.extend(retire.iter().map(|b| (machine.clone(), *b)));
            let _ = self.service.modify_machine(now, new);
        }
    }

    /// Boards the health policy took out of service, by machine name.
    pub fn retired_boards(&self) -> &[(String, Board)] {
        &self.retired_boards
    }

    fn sample(&mut self, now: Instant) {
        let live: usize = self.machines.iter().map(|m| m.live).sum();
        let dead: usize = self.machines.iter().map(|m| m.machine.dead_boards().len()).sum();
        // Boards allocated or powered (or both) are busy; the rest of the live boards are idle.
        let busy = self
            .boards
            .iter()
            .flatten()
            .filter(|u| u.alloc_since.is_some() || u.powered_since.is_some())
            .count();
        self.scp_samples.push(self.hw.counters());
        self.samples.push(Sample {
            t: now,
            queued: self.service.queue().pending_jobs(),
            running: self.running,
            allocated: self.allocated,
            powered: self.powered,
            idle: live.saturating_sub(busy),
            dead,
        });
    }

    /// Closes open intervals at the end of the run and marks unfinished jobs.
    fn close(&mut self, end: Instant) {
        for u in self.boards.iter_mut().flatten() {
            if let Some(s) = u.alloc_since.take() {
                u.allocated = u.allocated + (end - s);
                self.last_use = self.last_use.max(end);
            }
            if let Some(s) = u.powered_since.take() {
                u.powered = u.powered + (end - s);
                self.last_use = self.last_use.max(end);
            }
        }
        for r in &mut self.records {
            if r.end.is_none() {
                r.outcome = if r.start.is_some() {
                    Outcome::Unfinished
                } else {
                    Outcome::NeverStarted
                };
            }
        }
        if self.samples.last().is_none_or(|s| s.t < end) {
            self.sample(end);
        }
    }
}

/// The last keepalive a job's client sends. Clients send one every half keepalive period from
/// submission (as the spalloc client does) until their job ends or the client dies; the stream
/// is handed to the service as one lease instead of one event per keepalive. `None`: no
/// keepalive at all (or none before the client died).
fn keepalive_lease(j: &WorkloadJob) -> Option<Instant> {
    let k = j.keepalive?;
    if let Some(last) = j.last_keepalive {
        return Some(j.submit + last);
    }
    let Some(lapse) = j.lapse_after else {
        return Some(Instant::MAX);
    };
    let half = (k.as_micros() / 2).max(1);
    let ticks = lapse.as_micros() / half;
    (ticks > 0).then(|| j.submit + Duration(ticks * half))
}

/// What simulated users do with their boards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserBehaviour {
    /// Boot the boards before using them.
    pub boot: bool,
    /// Boot attempts before giving up.
    pub boot_tries: u32,
    /// Health policy: take a board out of service after this many user failures on it.
    pub avoid_after: Option<u32>,
}

/// Why the world itself destroys a job; `Display` gives the reason it passes to the service
/// (and `jobs.csv` shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserEnd {
    /// The user read its results back: "Job finished by its user."
    Done,
    /// The user gave up on its boards: "User gave up: …".
    GaveUp(SessionFailure),
    /// The run was stopped with the job live (a real-time run interrupted, or stopping at its
    /// drain limit): "Interrupted: sim run --hardware was stopped".
    Interrupted,
    /// The user stopped waiting for a job still queued: "Withdrawn by its user while queued."
    Withdrew,
}

impl std::fmt::Display for UserEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserEnd::Done => f.write_str("Job finished by its user."),
            UserEnd::GaveUp(why) => write!(f, "User gave up: {why}"),
            UserEnd::Interrupted => f.write_str("Interrupted: sim run --hardware was stopped"),
            UserEnd::Withdrew => f.write_str("Withdrawn by its user while queued."),
        }
    }
}

/// A job's outcome from how it ended (and, if the world destroyed it itself, why).
pub fn classify(end: &JobEnd, ended_by: Option<&UserEnd>) -> Outcome {
    match (&end.reason, ended_by) {
        (DestroyReason::Requested(_), Some(UserEnd::Done)) => Outcome::Completed,
        (DestroyReason::Requested(_), Some(UserEnd::GaveUp(_))) => Outcome::Failed,
        (DestroyReason::Requested(_), Some(UserEnd::Interrupted)) => Outcome::Unfinished,
        (DestroyReason::Requested(_), Some(UserEnd::Withdrew)) => Outcome::Cancelled,
        (DestroyReason::TimedOut, _) => Outcome::TimedOut,
        (DestroyReason::NoSuitableMachine, _) => Outcome::Cancelled,
        (_, _) if end.queued => Outcome::Cancelled,
        // Configuration failures, removed machines, and anyone else's destruction.
        (_, _) => Outcome::Failed,
    }
}
