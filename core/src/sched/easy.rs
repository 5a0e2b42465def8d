//! EASY backfilling: later jobs may start early if they do not delay the queue head.
//!
//! When the head of a machine's queue cannot start, EASY reserves it the earliest start the
//! plan allows: on a copy of the allocator, the running jobs are freed at their expected ends
//! (start + the runtime estimate the user declared) and, after `seconds_before_free`, the head
//! is tried again — the first time it fits is its *shadow time*. A later job (among the next
//! `depth` in the queue) may then start now if it fits now and, on a copy where it holds its
//! boards and is freed at its own expected end, the head still fits at the shadow time. So a
//! backfilled job either finishes before the shadow time or uses boards the head will not
//! need — exactly the EASY guarantee, but with real placement (fragmentation, dead boards)
//! instead of board counts.
//!
//! Jobs without estimates are never backfilled, and if a running job has no estimate or the
//! head never fits in the plan, nothing is backfilled (the head's start cannot be protected).
//! Each evaluation is remembered per machine: nothing is re-planned until the allocator
//! changes or new jobs join the queue.

use super::{BlockedMachine, Discipline, JobId};
use crate::alloc::Allocator;
use crate::time::{Duration, Instant};
use std::collections::BTreeMap;

/// The EASY backfilling discipline.
#[derive(Debug, Clone)]
pub struct Easy {
    depth: usize,
    /// Per machine: the allocator version and queue head of the last evaluation that found
    /// nothing, the head's shadow time then, and how many queued jobs were examined.
    seen: BTreeMap<String, Seen>,
}

impl Easy {
    /// Considers at most `depth` queued jobs behind the head.
    pub fn new(depth: usize) -> Easy {
        Easy {
            depth,
            seen: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    version: u64,
    head: JobId,
    shadow: Option<Instant>,
    examined: usize,
    /// The plan assumed every running job ends at or after this; once time passes it, jobs
    /// overrunning their estimates move the shadow time and the plan is redone.
    valid_until: Instant,
}

/// Returns the first instant at or after `now` when `head` fits on `plan`, if any: tried now,
/// then at every moment boards come back — each free already queued in the allocator when it
/// falls due, and each running job of `releases` (allocation, boards, expected end)
/// `seconds_before_free` after its end. `plan` is left with the head allocated.
fn shadow_time(
    plan: &mut Allocator,
    now: Instant,
    head: &crate::alloc::Request,
    releases: &mut [(u64, usize, Instant)],
) -> Option<Instant> {
    let delay: Duration = plan.seconds_before_free();
    if plan.alloc(now, head).is_some() {
        return Some(now);
    }
    releases.sort_by_key(|&(id, _, end)| (end, id));
    let mut tries: Vec<Instant> = plan.pending_releases().filter(|t| *t > now).collect();
    tries.extend(releases.iter().map(|r| r.2.max(now) + delay));
    tries.sort_unstable();
    tries.dedup();
    let mut freed = 0;
    for t in tries {
        // Queue the frees of the running jobs whose boards are back by `t`, in end order
        // (after every free already queued: the allocator releases strictly in order).
        while let Some(&(id, boards, end)) = releases.get(freed) {
            let end = end.max(now);
            if end + delay > t {
                break;
            }
            plan.free(end, id, boards);
            freed += 1;
        }
        if plan.alloc(t, head).is_some() {
            return Some(t);
        }
    }
    None
}

impl Discipline for Easy {
    fn name(&self) -> &'static str {
        "easy"
    }

    fn lookahead(&self) -> Option<usize> {
        Some(self.depth.saturating_add(1))
    }

    fn backfill(&mut self, view: &BlockedMachine<'_>) -> Vec<JobId> {
        let Some(&(head_id, head, _)) = view.queue.first() else {
            return Vec::new();
        };
        let version = view.allocator.version();
        // Nothing changed since the last fruitless evaluation: only newly queued jobs need a
        // look, against the same shadow time.
        let previous = self
            .seen
            .get(view.machine)
            .copied()
            .filter(|s| s.version == version && s.head == head_id && view.now <= s.valid_until);
        let mut releases = Vec::with_capacity(view.running.len());
        for &(id, boards, end) in &view.running {
            match end {
                Some(end) => releases.push((id, boards, end)),
                None => {
                    let never = Seen {
                        version,
                        head: head_id,
                        shadow: None,
                        examined: usize::MAX,
                        valid_until: Instant::MAX,
                    };
                    self.seen.insert(view.machine.to_string(), never);
                    return Vec::new();
                }
            }
        }
        let (shadow, skip) = match previous {
            Some(p) => (p.shadow, p.examined),
            None => {
                let mut plan = view.allocator.clone();
                (shadow_time(&mut plan, view.now, head, &mut releases.clone()), 0)
            }
        };
        let candidates = view.queue.len().saturating_sub(1).min(self.depth);
        let valid_until = releases.iter().map(|r| r.2).min().unwrap_or(Instant::MAX);
        let valid_until = previous.map_or(valid_until, |p| p.valid_until);
        let record = |seen: &mut BTreeMap<String, Seen>| {
            seen.insert(
                view.machine.to_string(),
                Seen {
                    version,
                    head: head_id,
                    shadow,
                    examined: candidates,
                    valid_until,
                },
            );
        };
        let Some(shadow) = shadow else {
            record(&mut self.seen);
            return Vec::new();
        };
        // Requests found not to fit now, and (request, estimate) pairs that fit now but would
        // delay the head: every trial starts from the same allocator, and placement depends on
        // nothing else, so a later job asking the same fares the same (most queued jobs share a
        // few shapes) and needs no copy of the allocator.
        let mut no_room: Vec<&crate::alloc::Request> = Vec::new();
        let mut delays_head: Vec<(&crate::alloc::Request, u64)> = Vec::new();
        for &(id, req, estimate) in view.queue.iter().skip(1 + skip).take(candidates.saturating_sub(skip)) {
            let Some(estimate) = estimate else { continue };
            if no_room.contains(&req) || delays_head.contains(&(req, estimate)) {
                continue;
            }
            let mut trial = view.allocator.clone();
            let Some(a) = trial.alloc(view.now, req) else {
                no_room.push(req);
                continue;
            };
            let mut rel = releases.clone();
            rel.push((a.id, a.boards.len(), view.now + Duration(estimate)));
            rel.sort_by_key(|&(id, _, end)| (end, id));
            let delay = trial.seconds_before_free();
            for &(rid, boards, end) in &rel {
                let end = end.max(view.now);
                if end + delay > shadow {
                    break;
                }
                trial.free(end, rid, boards);
            }
            if trial.alloc(shadow, head).is_some() {
                return vec![id];
            }
            delays_head.push((req, estimate));
        }
        record(&mut self.seen);
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use crate::alloc::spalloc::SpallocPacker;
    use crate::alloc::{Allocator, Request, Shape};
    use crate::sched::{JobId, JobQueue, JobSpec, QueueEvent};
    use crate::time::{Duration, Instant};

    fn queue(easy: bool) -> JobQueue {
        let d: Box<dyn super::Discipline> = if easy {
            Box::new(super::Easy::new(16))
        } else {
            Box::new(super::super::Fifo)
        };
        let mut q = JobQueue::new(d);
        let p = SpallocPacker::new(2, 1, &[], &[]);
        q.add_machine(
            Instant::ZERO,
            "m",
            &["default".into()],
            Allocator::new(Box::new(p), Duration::ZERO),
        )
        .unwrap();
        q
    }

    fn submit(q: &mut JobQueue, t: u64, id: u64, shape: Shape, est_s: u64) {
        let spec = JobSpec {
            estimate: Some(Duration::from_secs(est_s).as_micros()),
            ..JobSpec::default()
        };
        q.create_job(Instant::from_secs(t), JobId(id), Request::new(shape), spec)
            .unwrap();
    }

    fn started(q: &mut JobQueue) -> Vec<u64> {
        std::iter::from_fn(|| q.poll_event())
            .filter_map(|e| {
                if let QueueEvent::Allocated { job, .. } = e {
                    Some(job.0)
                } else {
                    None
                }
            })
            .collect()
    }

    #[test]
    fn a_short_job_backfills_without_delaying_the_head() {
        for easy in [false, true] {
            let mut q = queue(easy);
            // Job 1 holds one triad for 100 s; job 2 wants the whole machine (head, blocked);
            // job 3 wants one triad for 50 s (ends before job 1 does); job 4 one triad for 500 s.
            submit(&mut q, 0, 1, Shape::Triads { w: 1, h: 1 }, 100);
            submit(&mut q, 0, 2, Shape::Triads { w: 2, h: 1 }, 100);
            submit(&mut q, 0, 3, Shape::Triads { w: 1, h: 1 }, 50);
            submit(&mut q, 0, 4, Shape::Triads { w: 1, h: 1 }, 500);
            let s = started(&mut q);
            if easy {
                assert_eq!(
                    s,
                    vec![1, 3],
                    "job 3 fits in the shadow of job 1; job 4 would delay job 2"
                );
            } else {
                assert_eq!(s, vec![1]);
            }
        }
    }

    #[test]
    fn a_job_asking_what_an_earlier_one_asked_is_still_judged_by_its_own_estimate() {
        let mut q = queue(true);
        submit(&mut q, 0, 1, Shape::Triads { w: 1, h: 1 }, 100);
        submit(&mut q, 0, 2, Shape::Triads { w: 2, h: 1 }, 100);
        // Jobs 3 and 4 cannot start now (no room); jobs 5 and 6 would delay the head; job 7
        // asks what they ask but ends before job 1 does, so it backfills.
        submit(&mut q, 0, 3, Shape::Triads { w: 2, h: 1 }, 10);
        submit(&mut q, 0, 4, Shape::Triads { w: 2, h: 1 }, 10);
        submit(&mut q, 0, 5, Shape::Triads { w: 1, h: 1 }, 500);
        submit(&mut q, 0, 6, Shape::Triads { w: 1, h: 1 }, 500);
        submit(&mut q, 0, 7, Shape::Triads { w: 1, h: 1 }, 50);
        assert_eq!(started(&mut q), vec![1, 7]);
    }

    #[test]
    fn jobs_without_estimates_are_not_backfilled() {
        let mut q = queue(true);
        submit(&mut q, 0, 1, Shape::Triads { w: 1, h: 1 }, 100);
        submit(&mut q, 0, 2, Shape::Triads { w: 2, h: 1 }, 100);
        q.create_job(
            Instant::ZERO,
            JobId(3),
            Request::new(Shape::AnyBoard),
            JobSpec::default(),
        )
        .unwrap();
        assert_eq!(started(&mut q), vec![1]);
    }
}
