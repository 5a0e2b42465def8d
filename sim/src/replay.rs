//! `sim replay`: a trace against the scheduling core alone (no hardware, no network), with
//! exactly the semantics and output of replay-parity.md, so that its decisions can be
//! compared job by job with the reference server's.
//!
//! Events are ordered by (time, priority, sequence) with END < CHECK_FREE < SUBMIT; the
//! sequence is the order events were scheduled (submissions first, in trace order). A job's
//! line is written when its outcome is final: at allocation (with its known end), at
//! cancellation, or — for jobs still queued when the events run out — at the end as
//! "never started".

use crate::input::replay_csv::{TraceJob, fmt_s};
use spinnbed_core::alloc::spalloc::SpallocPacker;
use spinnbed_core::alloc::{Allocator, Request};
use spinnbed_core::geometry::{Board, Link, Machine};
use spinnbed_core::reason::DestroyReason;
use spinnbed_core::sched::{JobId, JobQueue, JobSpec, QueueEvent};
use spinnbed_core::time::{Duration, Instant};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Write as _;

const END: u8 = 0;
const CHECK_FREE: u8 = 1;
const SUBMIT: u8 = 2;

/// The outcome of a replay (the job lines went to the writer).
#[derive(Debug, Clone)]
pub struct Replay {
    /// Jobs in the trace.
    pub jobs: usize,
    /// Jobs that started.
    pub started: usize,
    /// Jobs cancelled by the queue.
    pub cancelled: usize,
    /// Jobs still queued at the end.
    pub never_started: usize,
    /// Latest end minus earliest submission, ms.
    pub makespan_ms: u64,
    /// Σ boards × duration over started jobs, board-ms.
    pub board_ms: u64,
    /// Mean wait over started jobs, ms, rounded half up.
    pub mean_wait_ms: u64,
    /// Longest wait, ms.
    pub max_wait_ms: u64,
}

/// Replays `jobs` (sorted by submission) on `machine` with the reference policy, writing one
/// JSON line per job to `out` as outcomes become final (the summary is not written).
pub fn replay(
    machine: &Machine,
    jobs: &[TraceJob],
    seconds_before_free_ms: u64,
    out: &mut dyn std::io::Write,
) -> std::io::Result<Replay> {
    let dead_boards: Vec<Board> = machine.dead_boards().iter().copied().collect();
    let dead_links: Vec<(Board, Link)> = machine.dead_links().iter().copied().collect();
    let packer = SpallocPacker::new(machine.width(), machine.height(), &dead_boards, &dead_links);
    let allocator = Allocator::new(Box::new(packer), Duration::from_millis(seconds_before_free_ms));
    let mut queue = JobQueue::default();
    queue
        .add_machine(Instant::ZERO, machine.name(), &["default".to_string()], allocator)
        .expect("a fresh queue has no machines");

    let requests: Vec<Request> = jobs.iter().map(TraceJob::request).collect();
    let index: BTreeMap<u64, usize> = jobs.iter().enumerate().map(|(i, j)| (j.id, i)).collect();
    // Submissions are already in order: merge them with a heap of the events scheduled later.
    let mut submits = jobs
        .iter()
        .enumerate()
        .map(|(seq, j)| (j.submit_ms, SUBMIT, seq as u64, j.id))
        .peekable();
    let mut heap: BinaryHeap<Reverse<(u64, u8, u64, u64)>> = BinaryHeap::new();
    let mut seq = jobs.len() as u64;
    let mut start_ms: Vec<Option<u64>> = vec![None; jobs.len()];
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 17);
    let (mut started, mut cancelled) = (0usize, 0usize);
    let (mut board_ms, mut total_wait, mut max_wait, mut max_end) = (0u64, 0u64, 0u64, None::<u64>);

    loop {
        let take_submit = match (submits.peek(), heap.peek()) {
            (Some(s), Some(Reverse(h))) => s < h,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let (t, prio, _, id) = if take_submit {
            submits.next().expect("peeked")
        } else {
            heap.pop().expect("peeked").0
        };
        let now = Instant::from_millis(t);
        match prio {
            SUBMIT => {
                // Trace ids are unique, so the queue cannot refuse the job.
                let _ = queue.create_job(now, JobId(id), requests[index[&id]], JobSpec::default());
            }
            END => {
                let _ = queue.destroy_job(now, JobId(id), DestroyReason::Requested(None));
                queue.free(now, JobId(id));
                heap.push(Reverse((t + seconds_before_free_ms, CHECK_FREE, seq, 0)));
                seq += 1;
            }
            _ => queue.check_free(now),
        }
        while let Some(ev) = queue.poll_event() {
            match ev {
                QueueEvent::Allocated { job, allocation, .. } => {
                    let job = job.0;
                    let k = index[&job];
                    let j = &jobs[k];
                    start_ms[k] = Some(t);
                    let end = t + j.duration_ms;
                    heap.push(Reverse((end, END, seq, job)));
                    seq += 1;
                    started += 1;
                    let wait = t - j.submit_ms;
                    total_wait = total_wait.saturating_add(wait);
                    max_wait = max_wait.max(wait);
                    max_end = Some(max_end.map_or(end, |m| m.max(end)));
                    board_ms = board_ms.saturating_add((allocation.boards.len() as u64).saturating_mul(j.duration_ms));
                    buf.extend_from_slice(b"{\"id\": ");
                    push_u64(&mut buf, job);
                    buf.extend_from_slice(b", \"submit_s\": ");
                    push_s(&mut buf, j.submit_ms);
                    buf.extend_from_slice(b", \"start_s\": ");
                    push_s(&mut buf, t);
                    buf.extend_from_slice(b", \"end_s\": ");
                    push_s(&mut buf, end);
                    buf.extend_from_slice(b", \"boards\": [");
                    for (n, b) in allocation.boards.iter().enumerate() {
                        if n > 0 {
                            buf.push(b',');
                        }
                        buf.push(b'[');
                        push_u64(&mut buf, b.x as u64);
                        buf.push(b',');
                        push_u64(&mut buf, b.y as u64);
                        buf.push(b',');
                        push_u64(&mut buf, b.z as u64);
                        buf.push(b']');
                    }
                    buf.extend_from_slice(b"]}\n");
                }
                QueueEvent::Cancelled { job, reason } => {
                    cancelled += 1;
                    buf.extend_from_slice(cancel_line(job.0, &reason.to_string()).as_bytes());
                }
                QueueEvent::Freed { .. } => {}
            }
        }
        if buf.len() >= 1 << 16 {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    let mut never_started = 0;
    for (k, j) in jobs.iter().enumerate() {
        if start_ms[k].is_none() && queue.is_pending(JobId(j.id)) {
            never_started += 1;
            buf.extend_from_slice(cancel_line(j.id, "never started").as_bytes());
        }
    }
    out.write_all(&buf)?;
    let first_submit = jobs.iter().map(|j| j.submit_ms).min().unwrap_or(0);
    Ok(Replay {
        jobs: jobs.len(),
        started,
        cancelled,
        never_started,
        makespan_ms: max_end.map_or(0, |e| e - first_submit),
        board_ms,
        mean_wait_ms: if started == 0 {
            0
        } else {
            (2 * total_wait + started as u64) / (2 * started as u64)
        },
        max_wait_ms: max_wait,
    })
}

fn cancel_line(job: u64, reason: &str) -> String {
    format!("{{\"id\": {job}, \"cancelled\": {}}}\n", json_string(reason))
}

/// Appends a decimal integer.
fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    if v < 10 {
        buf.push(b'0' + v as u8);
        return;
    }
    if v < 100 {
        buf.extend_from_slice(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8]);
        return;
    }
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Appends milliseconds as seconds in the [`fmt_s`] format.
fn push_s(buf: &mut Vec<u8>, ms: u64) {
    push_u64(buf, ms / 1000);
    buf.push(b'.');
    let frac = ms % 1000;
    if frac == 0 {
        buf.push(b'0');
    } else {
        let d = [(frac / 100) as u8, (frac / 10 % 10) as u8, (frac % 10) as u8];
        let n = if d[2] != 0 {
            3
        } else if d[1] != 0 {
            2
        } else {
            1
        };
        buf.extend(d[..n].iter().map(|x| b'0' + x));
    }
}

/// A JSON string literal with non-ASCII escaped (as Python's `json.dumps`).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Replay {
    /// The summary line (replay-parity.md); `wall` is the replay's wall time, which the caller
    /// measures (this library never reads the clock).
    pub fn summary_line(&self, machine: &Machine, seconds_before_free_ms: u64, wall: std::time::Duration) -> String {
        let wall_ms = (wall.as_secs_f64() * 1000.0).round() as u64;
        format!(
            "{{\"summary\": {{\"jobs\": {}, \"started\": {}, \"cancelled\": {}, \"never_started\": {}, \"makespan_s\": {}, \"board_seconds\": {}, \"mean_wait_s\": {}, \"max_wait_s\": {}, \"seconds_before_free\": {}, \"machine\": {{\"name\": {}, \"width\": {}, \"height\": {}, \"dead_boards\": {}, \"dead_links\": {}}}, \"wall_s\": {}}}}}",
            self.jobs,
            self.started,
            self.cancelled,
            self.never_started,
            fmt_s(self.makespan_ms),
            fmt_s(self.board_ms),
            fmt_s(self.mean_wait_ms),
            fmt_s(self.max_wait_ms),
            fmt_s(seconds_before_free_ms),
            json_string(machine.name()),
            machine.width(),
            machine.height(),
            machine.dead_boards().len(),
            machine.dead_links().len(),
            fmt_s(wall_ms),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_formatted_like_the_reference() {
        for ms in [0u64, 7, 10, 100, 12_500, 30_000, 150_250, 1_234_567, 999, 1_010] {
            let mut b = Vec::new();
            push_s(&mut b, ms);
            assert_eq!(String::from_utf8(b).unwrap(), fmt_s(ms), "{ms}");
        }
        let mut b = Vec::new();
        push_u64(&mut b, 0);
        push_u64(&mut b, 18_446_744_073_709_551_615);
        assert_eq!(b, b"018446744073709551615");
        assert_eq!(json_string("a\"b\u{e9}\n"), "\"a\\\"b\\u00e9\\n\"");
    }
}
