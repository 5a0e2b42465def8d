//! [`FixedDelays`]: the simplest hardware. Each BMP works through its batches one at a time,
//! in order, and a batch takes the machine's configured power-on, link-write and power-off
//! times; user sessions take no time.

use super::{Completion, Hardware, Session, SessionEvent};
use crate::scenario::FaultKind;
use spinnbed_core::geometry::FrameId;
use spinnbed_core::reason::BmpFailure;
use spinnbed_core::sched::JobId;
use spinnbed_core::service::BmpBatch;
use spinnbed_core::time::{Duration, Instant};
use spinnbed_core::timing::MachineTiming;
use std::collections::{BTreeMap, VecDeque};

/// BMP timing recorded by a live server (from its journal): for the `n`th batch (counting from
/// 0) of the job the workload calls `id`, how long it took from being issued to completing,
/// and how it ended.
pub type RecordedBmp = BTreeMap<(u64, u32), (Duration, Result<(), BmpFailure>)>;

#[derive(Debug, Default)]
struct Bmp {
    queue: VecDeque<BmpBatch>,
    busy: Option<(Instant, BmpBatch)>,
    /// Silent-BMP faults under way (overlapping faults heal when the last one does).
    silent: u32,
}

/// How long one attempt at a silent BMP takes to time out: the reference's power-on timeout.
const SILENT_ATTEMPT: Duration = Duration::from_secs(10);

/// How long the reference takes to give up on a silent BMP: `bmp_tries` attempts that time
/// out, `bmp_retry_delay` apart (35 s with the defaults: two tries, 15 s apart).
fn silent_bmp_failure(t: &MachineTiming) -> Duration {
    let tries = u64::from(t.bmp_tries.max(1));
    SILENT_ATTEMPT.saturating_mul(tries) + t.bmp_retry_delay.saturating_mul(tries - 1)
}

/// Hardware whose BMPs take fixed times (per machine) and never fail; user sessions take no
/// time (boards are usable as soon as they are ready).
#[derive(Debug, Default)]
pub struct FixedDelays {
    timing: BTreeMap<String, MachineTiming>,
    bmps: BTreeMap<(String, FrameId), Bmp>,
    done: VecDeque<Completion>,
    sessions: VecDeque<(JobId, SessionEvent)>,
    /// Recorded timing, if replaying a live run.
    recorded: RecordedBmp,
    /// Service job id → (workload id, batches issued so far), for jobs with recorded timing.
    replayed: BTreeMap<JobId, (u64, u32)>,
    /// Batches completing at recorded times: (time, sequence) → batch and result.
    timed: BTreeMap<(Instant, u64), Completion>,
    seq: u64,
}

impl FixedDelays {
    /// Hardware with the given timing per machine name (unknown machines use the default).
    pub fn new(timing: impl IntoIterator<Item = (String, MachineTiming)>) -> FixedDelays {
        FixedDelays {
            timing: timing.into_iter().collect(),
            ..FixedDelays::default()
        }
    }

    /// Replays recorded BMP timing: a batch the recording knows (by its job's workload id and
    /// its place among that job's batches) completes as long after it was issued, and as well
    /// or badly, as it did live; any other batch takes the fixed times.
    pub fn with_recorded(mut self, recorded: RecordedBmp) -> FixedDelays {
        self.recorded = recorded;
        self
    }

    fn timing(&self, machine: &str) -> MachineTiming {
        self.timing.get(machine).copied().unwrap_or_default()
    }

    fn duration(&self, b: &BmpBatch) -> Duration {
        let t = self.timing(&b.machine);
        let mut d = Duration::ZERO;
        if !b.power_on.is_empty() {
            d = d + t.power_on;
        }
        d = d + t.link_write.saturating_mul(b.links.len() as u64);
        if !b.power_off.is_empty() {
            d = d + t.power_off;
        }
        d
    }

    fn start_next(&mut self, key: &(String, FrameId), now: Instant) {
        let Some(bmp) = self.bmps.get(key) else { return };
        if bmp.busy.is_some() {
            return;
        }
        let Some(next) = bmp.queue.front() else { return };
        let at = now
            + if bmp.silent > 0 {
                silent_bmp_failure(&self.timing(&next.machine))
            } else {
                self.duration(next)
            };
        let bmp = self.bmps.get_mut(key).expect("present");
        let b = bmp.queue.pop_front().expect("present");
        bmp.busy = Some((at, b));
    }
}

impl Hardware for FixedDelays {
    fn name(&self) -> &'static str {
        "fixed-delay"
    }

    fn job_created(&mut self, job: JobId, workload_id: u64) {
        if !self.recorded.is_empty() {
            self.replayed.insert(job, (workload_id, 0));
        }
    }

    fn submit(&mut self, now: Instant, batch: BmpBatch) {
        if let Some((id, n)) = self.replayed.get_mut(&batch.job) {
            let key = (*id, *n);
            *n += 1;
            if let Some((d, result)) = self.recorded.get(&key) {
                self.seq += 1;
                self.timed.insert((now + *d, self.seq), (batch, result.clone()));
                return;
            }
        }
        let key = (batch.machine.clone(), batch.frame);
        self.bmps.entry(key.clone()).or_default().queue.push_back(batch);
        self.start_next(&key, now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let timed = self.timed.keys().next().map(|(t, _)| *t);
        self.bmps
            .values()
            .filter_map(|b| b.busy.as_ref().map(|(t, _)| *t))
            .chain(timed)
            .min()
    }

    fn handle_timeout(&mut self, now: Instant) {
        while let Some(entry) = self.timed.first_entry()
            && entry.key().0 <= now
        {
            self.done.push_back(entry.remove());
        }
        let due: Vec<(String, FrameId)> = self
            .bmps
            .iter()
            .filter(|(_, b)| b.busy.as_ref().is_some_and(|(t, _)| *t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let bmp = self.bmps.get_mut(&key).expect("due");
            let silent = bmp.silent > 0;
            let (_, batch) = bmp.busy.take().expect("due");
            let result = if silent {
                Err(BmpFailure::RequestsFailed { bmp: batch.bmp })
            } else {
                Ok(())
            };
            self.done.push_back((batch, result));
            self.start_next(&key, now);
        }
    }

    fn poll_done(&mut self) -> Option<Completion> {
        self.done.pop_front()
    }

    fn start_session(&mut self, _now: Instant, session: Session) {
        self.sessions.push_back((session.job, SessionEvent::Running));
    }

    fn finish_session(&mut self, _now: Instant, job: JobId) {
        self.sessions.push_back((job, SessionEvent::Finished));
    }

    fn end_session(&mut self, job: JobId) {
        self.sessions.retain(|(j, _)| *j != job);
    }

    /// Only a silent BMP affects fixed-delay hardware (its batches fail as the reference's
    /// would); the other faults need packet-level hardware.
    fn apply_fault(&mut self, _now: Instant, kind: &FaultKind, on: bool) {
        if let FaultKind::BmpSilent { machine, frame } = kind {
            let bmp = self.bmps.entry((machine.clone(), *frame)).or_default();
            bmp.silent = if on {
                bmp.silent + 1
            } else {
                bmp.silent.saturating_sub(1)
            };
        }
    }

    fn poll_session(&mut self) -> Option<(JobId, SessionEvent)> {
        self.sessions.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spinnbed_core::geometry::Link;
    use spinnbed_core::service::BatchId;

    fn batch(id: u64, on: Vec<u16>, links: usize, off: Vec<u16>) -> BmpBatch {
        BmpBatch {
            id: BatchId(id),
            job: JobId(1),
            machine: "m".into(),
            frame: FrameId { cabinet: 0, frame: 0 },
            bmp: std::net::Ipv4Addr::new(10, 0, 0, 0),
            power_on: on,
            power_off: off,
            links: (0..links).map(|i| (i as u16, Link::East, false)).collect(),
        }
    }

    #[test]
    fn a_bmp_works_through_its_batches_in_order() {
        let mut h = FixedDelays::new([("m".to_string(), MachineTiming::default())]);
        h.submit(Instant::ZERO, batch(1, vec![0, 1], 12, vec![]));
        h.submit(Instant::ZERO, batch(2, vec![], 0, vec![0, 1]));
        assert_eq!(h.poll_timeout(), Some(Instant::from_millis(5_120)));
        h.handle_timeout(Instant::from_millis(5_119));
        assert!(h.poll_done().is_none());
        h.handle_timeout(Instant::from_millis(5_120));
        assert_eq!(h.poll_done().map(|(b, r)| (b.id, r)), Some((BatchId(1), Ok(()))));
        assert_eq!(h.poll_timeout(), Some(Instant::from_millis(5_170)));
        h.handle_timeout(Instant::from_secs(7));
        assert_eq!(h.poll_done().map(|(b, _)| b.id), Some(BatchId(2)));
        assert_eq!(h.poll_timeout(), None);
    }

    /// A silent BMP fails a batch after the machine's own number of tries, its own retry delay
    /// apart (each try timing out after the reference's 10 s).
    #[test]
    fn a_silent_bmp_gives_up_after_the_machines_tries_and_retry_delay() {
        for (tries, delay_s, fails_after_s) in [(2, 15, 35), (3, 5, 40), (1, 15, 10)] {
            let timing = MachineTiming {
                bmp_tries: tries,
                bmp_retry_delay: Duration::from_secs(delay_s),
                ..MachineTiming::default()
            };
            let mut h = FixedDelays::new([("m".to_string(), timing)]);
            let kind = FaultKind::BmpSilent {
                machine: "m".into(),
                frame: FrameId { cabinet: 0, frame: 0 },
            };
            h.apply_fault(Instant::ZERO, &kind, true);
            h.submit(Instant::ZERO, batch(1, vec![0], 0, vec![]));
            assert_eq!(
                h.poll_timeout(),
                Some(Instant::from_secs(fails_after_s)),
                "{tries} tries"
            );
            h.handle_timeout(Instant::from_secs(fails_after_s));
            let (_, result) = h.poll_done().unwrap();
            assert_eq!(result.unwrap_err().to_string(), "Requests failed on BMP 10.0.0.0");
        }
    }
}
