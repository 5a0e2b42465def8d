//! The job queue across machines (the reference's `JobQueue`).
//!
//! Jobs select machines by name or by tags (default tag `"default"`); a new job is appended
//! to the queue of every candidate machine on which it could ever run, or cancelled with
//! "No suitable machines available." if there is none. Queues are processed in passes: in
//! each pass every machine, in priority order, skips stale heads (jobs started elsewhere or
//! cancelled) and tries to start its head — at most one start per machine per pass — until a
//! pass starts nothing. A head that cannot start blocks its machine (strict FIFO) unless the
//! queue [`Discipline`] backfills.
//!
//! Sans-IO: every call takes `now`; what happened comes out as [`QueueEvent`]s drained with
//! [`JobQueue::poll_event`].

pub mod easy;

pub use easy::Easy;

use crate::alloc::{AllocId, Allocation, Allocator, Request};
use crate::reason::DestroyReason;
use crate::time::Instant;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A job's identifier (chosen by the caller: the service numbers its jobs 1, 2, …; a replay
/// uses the trace's ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct JobId(pub u64);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The tag jobs without tags or machine select.
pub const DEFAULT_TAG: &str = "default";

/// Something the queue did, for its owner to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueEvent {
    /// The job started on a machine with this allocation (`on_allocate`).
    Allocated {
        /// The job.
        job: JobId,
        /// Machine name.
        machine: String,
        /// Boards, periphery and wrap-around.
        allocation: Allocation,
    },
    /// An allocated job was destroyed; its boards are released when [`JobQueue::free`] is
    /// called (`on_free`).
    Freed {
        /// The job.
        job: JobId,
        /// Why.
        reason: DestroyReason,
    },
    /// A queued job was removed without starting (`on_cancel`).
    Cancelled {
        /// The job.
        job: JobId,
        /// Why.
        reason: DestroyReason,
    },
}

/// A call the queue refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The job id is taken.
    #[error("job id {0} is not unique")]
    DuplicateJob(JobId),
    /// No such job (never created, or already gone).
    #[error("no job with id {0}")]
    UnknownJob(JobId),
    /// Both a machine and tags were given.
    #[error("only one of machine and tags may be specified for a job")]
    MachineAndTags,
    /// The machine name is taken.
    #[error("machine name {0} already in use")]
    DuplicateMachine(String),
    /// No such machine.
    #[error("no machine named {0}")]
    UnknownMachine(String),
}

/// How queued jobs are ordered and started beyond the head of each machine's queue.
pub trait Discipline: std::fmt::Debug + Send {
    /// Policy name (`fifo`, …).
    fn name(&self) -> &'static str;
    /// Called when the head of a machine's queue cannot start; may name later jobs of that
    /// queue to try now, in order (the first that starts counts as this pass's start).
    fn backfill(&mut self, view: &BlockedMachine<'_>) -> Vec<JobId>;
    /// Whether the discipline ever starts a job other than a machine's queue head (when not,
    /// the queue never asks it to [`Discipline::backfill`]).
    fn backfills(&self) -> bool {
        true
    }
    /// How many pending jobs of the queue (head included) [`Discipline::backfill`] looks at;
    /// `None`: all of them. The view's queue is cut to this length.
    fn lookahead(&self) -> Option<usize> {
        None
    }
}

/// What a [`Discipline`] sees of a machine whose queue head is blocked.
#[derive(Debug)]
pub struct BlockedMachine<'a> {
    /// The current time.
    pub now: Instant,
    /// Machine name.
    pub machine: &'a str,
    /// The machine's allocator (clone it to plan).
    pub allocator: &'a Allocator,
    /// Pending jobs in queue order, head first: (id, request, runtime estimate in µs); at most
    /// [`Discipline::lookahead`] of them.
    pub queue: Vec<(JobId, &'a Request, Option<u64>)>,
    /// Jobs running on this machine: (allocation id, boards, expected end; `None` if the job
    /// gave no estimate).
    pub running: Vec<(AllocId, usize, Option<Instant>)>,
}

/// The reference discipline: strict FIFO per machine, no backfilling.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fifo;

impl Discipline for Fifo {
    fn name(&self) -> &'static str {
        "fifo"
    }
    fn backfills(&self) -> bool {
        false
    }
    fn backfill(&mut self, _: &BlockedMachine<'_>) -> Vec<JobId> {
        Vec::new()
    }
}

#[derive(Debug)]
struct QMachine {
    name: String,
    tags: BTreeSet<String>,
    allocator: Allocator,
    queue: VecDeque<JobId>,
    /// The head that last failed and the packer generation then.
    blocked: Option<(JobId, u64)>,
}

#[derive(Debug, Clone)]
struct QJob {
    seq: u64,
    pending: bool,
    machine_name: Option<String>,
    /// Tags a machine must have; `None` for the default `{"default"}` (kept without a set of
    /// its own, as almost every job has it).
    tags: Option<BTreeSet<String>>,
    request: Request,
    /// Runtime estimate in µs (for backfilling disciplines).
    estimate: Option<u64>,
    machine: Option<usize>,
    allocation: Option<(AllocId, usize)>,
    started: Option<Instant>,
}

/// Jobs and machines with their queues.
#[derive(Debug)]
pub struct JobQueue {
    machines: Vec<QMachine>,
    /// Machine name → index in `machines`.
    names: BTreeMap<String, usize>,
    /// Boxed: the map moves its entries about as jobs come and go, and a job is large.
    jobs: BTreeMap<JobId, Box<QJob>>,
    /// Job creation order (sequence → id), for queue regeneration.
    order: BTreeMap<u64, JobId>,
    next_seq: u64,
    pending_count: usize,
    postpone: u32,
    discipline: Box<dyn Discipline>,
    events: VecDeque<QueueEvent>,
}

impl Default for JobQueue {
    fn default() -> JobQueue {
        JobQueue::new(Box::new(Fifo))
    }
}

/// A machine's dead boards and dead links.
pub type Faults<'a> = (
    &'a [crate::geometry::Board],
    &'a [(crate::geometry::Board, crate::geometry::Link)],
);

/// Options of a new job beyond its request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobSpec {
    /// Run only on this machine (no tag filtering).
    pub machine: Option<String>,
    /// Run only on machines with all these tags (default `{"default"}`).
    pub tags: Option<Vec<String>>,
    /// Expected runtime in µs, for backfilling.
    pub estimate: Option<u64>,
}

impl JobQueue {
    /// An empty queue with the given discipline.
    pub fn new(discipline: Box<dyn Discipline>) -> JobQueue {
        JobQueue {
            machines: Vec::new(),
            names: BTreeMap::new(),
            jobs: BTreeMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            pending_count: 0,
            postpone: 0,
            discipline,
            events: VecDeque::new(),
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<QueueEvent> {
        self.events.pop_front()
    }

    /// The discipline's name.
    pub fn discipline(&self) -> &str {
        self.discipline.name()
    }

    /// Machine names in priority order.
    pub fn machine_names(&self) -> impl Iterator<Item = &str> {
        self.machines.iter().map(|m| m.name.as_str())
    }

    fn machine_index(&self, name: &str) -> Option<usize> {
        self.names.get(name).copied()
    }

    /// Rebuilds the name index after machines moved.
    fn reindex(&mut self) {
        self.names = self
            .machines
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), i))
            .collect();
    }

    /// A machine's allocator.
    pub fn allocator(&self, name: &str) -> Option<&Allocator> {
        self.machine_index(name).map(|i| &self.machines[i].allocator)
    }

    /// Number of pending (queued) jobs.
    pub fn pending_jobs(&self) -> usize {
        self.pending_count
    }

    /// Jobs allocated on machine `i`, in creation order.
    fn jobs_on(&self, i: usize) -> Vec<JobId> {
        self.order
            .values()
            .copied()
            .filter(|id| self.jobs.get(id).is_some_and(|j| j.machine == Some(i)))
            .collect()
    }

    /// Pending job ids in creation order.
    pub fn pending(&self) -> impl Iterator<Item = JobId> + '_ {
        self.order
            .values()
            .copied()
            .filter(|id| self.jobs.get(id).is_some_and(|j| j.pending))
    }

    /// True if the job exists and is queued.
    pub fn is_pending(&self, id: JobId) -> bool {
        self.jobs.get(&id).is_some_and(|j| j.pending)
    }

    /// Earliest time a delayed free becomes due on any machine.
    pub fn next_release(&self) -> Option<Instant> {
        self.machines.iter().filter_map(|m| m.allocator.next_release()).min()
    }

    /// Adds a machine at the lowest priority and regenerates the queues.
    pub fn add_machine(
        &mut self,
        now: Instant,
        name: &str,
        tags: &[String],
        allocator: Allocator,
    ) -> Result<(), QueueError> {
        if self.machine_index(name).is_some() {
            return Err(QueueError::DuplicateMachine(name.to_string()));
        }
        self.names.insert(name.to_string(), self.machines.len());
        self.machines.push(QMachine {
            name: name.to_string(),
            tags: tags.iter().cloned().collect(),
            allocator,
            queue: VecDeque::new(),
            blocked: None,
        });
        self.regenerate_queues(now);
        Ok(())
    }

    /// Changes a machine's tags and/or faults, then regenerates the queues.
    pub fn modify_machine(
        &mut self,
        now: Instant,
        name: &str,
        tags: Option<&[String]>,
        faults: Option<Faults<'_>>,
    ) -> Result<(), QueueError> {
        let i = self
            .machine_index(name)
            .ok_or_else(|| QueueError::UnknownMachine(name.to_string()))?;
        let m = &mut self.machines[i];
        if let Some(t) = tags {
            m.tags = t.iter().cloned().collect();
        }
        if let Some((db, dl)) = faults {
            m.allocator.packer_mut().set_faults(db, dl);
        }
        m.blocked = None;
        self.regenerate_queues(now);
        Ok(())
    }

    /// Removes a machine: its jobs are destroyed ("Machine removed.") and freed, then the
    /// queues are regenerated (jobs only it could run are cancelled).
    pub fn remove_machine(&mut self, now: Instant, name: &str) -> Result<(), QueueError> {
        let i = self
            .machine_index(name)
            .ok_or_else(|| QueueError::UnknownMachine(name.to_string()))?;
        self.postpone += 1;
        let on_it = self.jobs_on(i);
        for id in on_it {
            let _ = self.destroy_job(now, id, DestroyReason::MachineRemoved);
            self.free(now, id);
        }
        self.machines.remove(i);
        self.reindex();
        for j in self.jobs.values_mut() {
            if let Some(m) = j.machine
                && m > i
            {
                j.machine = Some(m - 1);
            }
        }
        self.postpone -= 1;
        self.regenerate_queues(now);
        Ok(())
    }

    /// Replaces a machine by one of new hardware, keeping its name and priority: the old
    /// machine's allocated jobs (already destroyed by the caller) are freed from its allocator,
    /// which is dropped with it; then the queues are regenerated once, so no queued job is
    /// cancelled or started elsewhere while the machine is briefly missing.
    pub fn replace_machine(
        &mut self,
        now: Instant,
        name: &str,
        tags: &[String],
        allocator: Allocator,
    ) -> Result<(), QueueError> {
        let i = self
            .machine_index(name)
            .ok_or_else(|| QueueError::UnknownMachine(name.to_string()))?;
        self.postpone += 1;
        let on_it = self.jobs_on(i);
        for id in on_it {
            self.free(now, id);
        }
        self.machines[i] = QMachine {
            name: name.to_string(),
            tags: tags.iter().cloned().collect(),
            allocator,
            queue: VecDeque::new(),
            blocked: None,
        };
        self.postpone -= 1;
        self.regenerate_queues(now);
        Ok(())
    }

    /// Moves a machine to the lowest priority (no regeneration).
    pub fn move_machine_to_end(&mut self, name: &str) -> Result<(), QueueError> {
        let i = self
            .machine_index(name)
            .ok_or_else(|| QueueError::UnknownMachine(name.to_string()))?;
        let m = self.machines.remove(i);
        self.machines.push(m);
        self.reindex();
        for j in self.jobs.values_mut() {
            if let Some(k) = j.machine {
                j.machine = Some(if k == i {
                    self.machines.len() - 1
                } else if k > i {
                    k - 1
                } else {
                    k
                });
            }
        }
        Ok(())
    }

    /// Creates a job; it may start or be cancelled before this returns (see the events).
    pub fn create_job(&mut self, now: Instant, id: JobId, request: Request, spec: JobSpec) -> Result<(), QueueError> {
        if self.jobs.contains_key(&id) {
            return Err(QueueError::DuplicateJob(id));
        }
        if spec.machine.is_some() && spec.tags.is_some() {
            return Err(QueueError::MachineAndTags);
        }
        let tags: Option<BTreeSet<String>> = match (&spec.machine, spec.tags) {
            (Some(_), _) => Some(BTreeSet::new()),
            (None, Some(t)) => Some(t.into_iter().collect()),
            (None, None) => None,
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.jobs.insert(
            id,
            Box::new(QJob {
                seq,
                pending: true,
                machine_name: spec.machine,
                tags,
                request,
                estimate: spec.estimate,
                machine: None,
                allocation: None,
                started: None,
            }),
        );
        self.order.insert(seq, id);
        self.pending_count += 1;
        self.enqueue(now, id);
        Ok(())
    }

    fn enqueue(&mut self, now: Instant, id: JobId) {
        if self.postpone > 0 {
            return;
        }
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let request = job.request;
        let named = job.machine_name.as_deref().map(|name| self.machine_index(name));
        let mut found = false;
        for (i, m) in self.machines.iter_mut().enumerate() {
            let candidate = match (named, &job.tags) {
                (Some(named), _) => named == Some(i),
                (None, None) => m.tags.contains(DEFAULT_TAG),
                (None, Some(tags)) => tags.is_subset(&m.tags),
            };
            if candidate && m.allocator.alloc_possible(&request) {
                m.queue.push_back(id);
                found = true;
            }
        }
        if !found {
            let _ = self.destroy_job(now, id, DestroyReason::NoSuitableMachine);
        }
        self.process_queue(now);
    }

    /// Destroys a job: a queued one is cancelled (`Cancelled`), an allocated one reported
    /// `Freed` (its boards are released by [`JobQueue::free`]).
    pub fn destroy_job(&mut self, now: Instant, id: JobId, reason: DestroyReason) -> Result<(), QueueError> {
        let job = self.jobs.get_mut(&id).ok_or(QueueError::UnknownJob(id))?;
        if job.pending {
            job.pending = false;
            self.pending_count -= 1;
            let seq = job.seq;
            self.jobs.remove(&id);
            self.order.remove(&seq);
            self.events.push_back(QueueEvent::Cancelled { job: id, reason });
        } else {
            self.events.push_back(QueueEvent::Freed { job: id, reason });
        }
        self.process_queue(now);
        Ok(())
    }

    /// Releases an allocated job's boards into its machine's delayed-free list and forgets
    /// the job. Unknown ids are ignored (as the reference does).
    pub fn free(&mut self, now: Instant, id: JobId) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        if job.pending {
            return;
        }
        let job = self.jobs.remove(&id).expect("present");
        self.order.remove(&job.seq);
        if let (Some(m), Some((alloc, boards))) = (job.machine, job.allocation) {
            self.machines[m].allocator.free(now, alloc, boards);
        }
        self.process_queue(now);
    }

    /// Releases due delayed frees on every machine; processes the queues if anything came
    /// back.
    pub fn check_free(&mut self, now: Instant) {
        if self.postpone > 0 {
            return;
        }
        let mut changed = false;
        for m in &mut self.machines {
            changed |= m.allocator.check_free(now);
        }
        if changed {
            self.process_queue(now);
        }
    }

    fn regenerate_queues(&mut self, now: Instant) {
        // With no job pending there is nothing to queue: entries left in the queues are stale
        // (skipped when they reach the head), so the queues need no rebuilding either. (This
        // keeps adding many machines linear.)
        if self.postpone > 0 || self.pending_count == 0 {
            return;
        }
        for m in &mut self.machines {
            m.queue.clear();
            m.blocked = None;
        }
        let pending: Vec<JobId> = self.pending().collect();
        for id in pending {
            // A job may have started or been cancelled by an earlier re-enqueue's processing.
            if self.is_pending(id) {
                self.enqueue(now, id);
            }
        }
    }

    fn try_start(&mut self, now: Instant, m: usize, id: JobId) -> bool {
        let Some(job) = self.jobs.get(&id) else {
            return false;
        };
        let request = job.request;
        let machine = &mut self.machines[m];
        let known = machine.blocked.and_then(|(j, g)| (j == id).then_some(g));
        match machine.allocator.alloc_unless_unchanged(now, &request, known) {
            Some(allocation) => {
                machine.blocked = None;
                let job = self.jobs.get_mut(&id).expect("present");
                job.pending = false;
                self.pending_count -= 1;
                job.machine = Some(m);
                job.allocation = Some((allocation.id, allocation.boards.len()));
                job.started = Some(now);
                self.events.push_back(QueueEvent::Allocated {
                    job: id,
                    machine: machine.name.clone(),
                    allocation,
                });
                true
            }
            None => {
                if machine.queue.front() == Some(&id) {
                    machine.blocked = Some((id, machine.allocator.packer().generation()));
                }
                false
            }
        }
    }

    fn process_queue(&mut self, now: Instant) {
        if self.postpone > 0 {
            return;
        }
        loop {
            let mut changed = false;
            for m in 0..self.machines.len() {
                while let Some(&head) = self.machines[m].queue.front() {
                    if !self.is_pending(head) {
                        self.machines[m].queue.pop_front();
                        continue;
                    }
                    if self.try_start(now, m, head) {
                        self.machines[m].queue.pop_front();
                        changed = true;
                    } else if self.try_backfill(now, m) {
                        changed = true;
                    }
                    break;
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// Lets the discipline start a later job on machine `m` whose head is blocked.
    fn try_backfill(&mut self, now: Instant, m: usize) -> bool {
        if !self.discipline.backfills() {
            return false;
        }
        let machine = &self.machines[m];
        let queue: Vec<(JobId, &Request, Option<u64>)> = machine
            .queue
            .iter()
            .filter_map(|id| {
                self.jobs
                    .get(id)
                    .filter(|j| j.pending)
                    .map(|j| (*id, &j.request, j.estimate))
            })
            .take(self.discipline.lookahead().unwrap_or(usize::MAX))
            .collect();
        let running: Vec<(AllocId, usize, Option<Instant>)> = self
            .jobs
            .values()
            .filter(|j| j.machine == Some(m))
            .filter_map(|j| {
                let (a, boards) = j.allocation?;
                let end = j.estimate.and_then(|e| Some(j.started? + crate::time::Duration(e)));
                Some((a, boards, end))
            })
            .collect();
        let view = BlockedMachine {
            now,
            machine: &machine.name,
            allocator: &machine.allocator,
            queue,
            running,
        };
        let picks = self.discipline.backfill(&view);
        for id in picks {
            if self.is_pending(id) && self.machines[m].queue.contains(&id) && self.try_start(now, m, id) {
                if let Some(p) = self.machines[m].queue.iter().position(|j| *j == id) {
                    self.machines[m].queue.remove(p);
                }
                return true;
            }
        }
        false
    }
}
