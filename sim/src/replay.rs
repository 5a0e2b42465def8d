//! `sim replay`: a trace against the scheduling core alone (no hardware, no network), with
//! exactly the semantics and output of replay-parity.md, so that its decisions can be
//! compared job by job with the reference server's.
//!
//! Events are ordered by (time, priority, sequence) with END < CHECK_FREE < SUBMIT; the
//! sequence is the order events were scheduled (submissions first, in trace order). A job's
//! line is written when its outcome is final: at allocation (with its known end), at
//! cancellation, or — for jobs still queued when the events run out — at the end as
//! "never started".
//!
//! The event loop runs on a thread of its own and hands filled blocks of lines to the calling
//! thread, which writes them in order while the loop goes on: the output is the same bytes as
//! a single thread would write.

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
use std::sync::mpsc;

const END: u8 = 0;
const CHECK_FREE: u8 = 1;
const SUBMIT: u8 = 2;

/// Size of one block of output lines handed to the writing thread.
const BLOCK: usize = 1 << 18;
/// Filled blocks waiting to be written, at most.
const BLOCKS_IN_FLIGHT: usize = 8;

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
    std::thread::scope(|s| {
        let (full_tx, full_rx) = mpsc::sync_channel::<(Vec<u8>, usize)>(BLOCKS_IN_FLIGHT);
        let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
        let replayer = s.spawn(move || {
            let mut lines = Lines::new(full_tx, empty_rx);
            let r = run(machine, jobs, seconds_before_free_ms, &mut lines);
            r.and_then(|r| lines.flush().then_some(r))
        });
        let mut written = Ok(());
        while let Ok((block, len)) = full_rx.recv() {
            if let Err(e) = out.write_all(&block[..len]) {
                written = Err(e);
                break;
            }
            // The replay may have finished and stopped taking blocks back.
            let _ = empty_tx.send(block);
        }
        // On a write error this stops the replay at its next block.
        drop(full_rx);
        let r = replayer.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        written?;
        Ok(r.expect("the replay hands every block over while they are written"))
    })
}

/// The event loop; `None` if the writing side stopped taking lines.
fn run(machine: &Machine, jobs: &[TraceJob], seconds_before_free_ms: u64, lines: &mut Lines) -> Option<Replay> {
    let dead_boards: Vec<Board> = machine.dead_boards().iter().copied().collect();
    let dead_links: Vec<(Board, Link)> = machine.dead_links().iter().copied().collect();
    let packer = SpallocPacker::new(machine.width(), machine.height(), &dead_boards, &dead_links);
    let allocator = Allocator::new(Box::new(packer), Duration::from_millis(seconds_before_free_ms));
    let mut queue = JobQueue::default();
    queue
        .add_machine(Instant::ZERO, machine.name(), &["default".to_string()], allocator)
        .expect("a fresh queue has no machines");

    let index = JobIndex::new(jobs);
    let boards_text = BoardText::new(machine);
    // Submissions are already in order: merge them with a heap of the events scheduled later.
    let mut submits = jobs
        .iter()
        .enumerate()
        .map(|(seq, j)| (j.submit_ms, SUBMIT, seq as u64, j.id))
        .peekable();
    let mut heap: BinaryHeap<Reverse<(u64, u8, u64, u64)>> = BinaryHeap::new();
    let mut seq = jobs.len() as u64;
    let mut started_job = vec![false; jobs.len()];
    let (mut started, mut cancelled) = (0usize, 0usize);
    let (mut board_ms, mut total_wait, mut max_wait, mut max_end) = (0u64, 0u64, 0u64, None::<u64>);

    loop {
        let take_submit = match (submits.peek(), heap.peek()) {
            (Some(s), Some(Reverse(h))) => s < h,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let (t, prio, sq, id) = if take_submit {
            submits.next().expect("peeked")
        } else {
            heap.pop().expect("peeked").0
        };
        let now = Instant::from_millis(t);
        match prio {
            SUBMIT => {
                // The sequence of a submission is its job's index; trace ids are unique, so the
                // queue cannot refuse the job.
                let request: Request = jobs[sq as usize].request();
                let _ = queue.create_job(now, JobId(id), request, JobSpec::default());
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
                    let k = index.get(job);
                    let j = &jobs[k];
                    started_job[k] = true;
                    let end = t + j.duration_ms;
                    heap.push(Reverse((end, END, seq, job)));
                    seq += 1;
                    started += 1;
                    let wait = t - j.submit_ms;
                    total_wait = total_wait.saturating_add(wait);
                    max_wait = max_wait.max(wait);
                    max_end = Some(max_end.map_or(end, |m| m.max(end)));
                    let boards = &allocation.boards;
                    board_ms = board_ms.saturating_add((boards.len() as u64).saturating_mul(j.duration_ms));
                    lines.room(Lines::JOB_LINE + boards.len() * BoardText::WIDTH)?;
                    lines.put(b"{\"id\": ");
                    lines.put_u64(job);
                    lines.put(b", \"submit_s\": ");
                    lines.put_s(j.submit_ms);
                    lines.put(b", \"start_s\": ");
                    lines.put_s(t);
                    lines.put(b", \"end_s\": ");
                    lines.put_s(end);
                    lines.put(b", \"boards\": ");
                    if boards.is_empty() {
                        lines.put(b"[");
                    } else {
                        // Each board comes as ",[x,y,z]": the first comma opens the list.
                        let open = lines.pos;
                        boards_text.put_all(lines, boards);
                        lines.buf[open] = b'[';
                    }
                    lines.put(b"]}\n");
                }
                QueueEvent::Cancelled { job, reason } => {
                    cancelled += 1;
                    lines.put_line(&cancel_line(job.0, &reason.to_string()))?;
                }
                QueueEvent::Freed { .. } => {}
            }
        }
    }
    let mut never_started = 0;
    for (k, j) in jobs.iter().enumerate() {
        if !started_job[k] && queue.is_pending(JobId(j.id)) {
            never_started += 1;
            lines.put_line(&cancel_line(j.id, "never started"))?;
        }
    }
    let first_submit = jobs.iter().map(|j| j.submit_ms).min().unwrap_or(0);
    Some(Replay {
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

/// Trace id → index in the trace: a table for ids up to a few times the number of jobs (as
/// every generated and most real traces have), a map for the others.
struct JobIndex {
    dense: Vec<u32>,
    sparse: BTreeMap<u64, usize>,
}

impl JobIndex {
    const NONE: u32 = u32::MAX;

    fn new(jobs: &[TraceJob]) -> JobIndex {
        let limit = if jobs.len() < Self::NONE as usize / 8 {
            jobs.len() as u64 * 4 + 64
        } else {
            0
        };
        let top = jobs.iter().map(|j| j.id).filter(|id| *id < limit).max();
        let mut dense = vec![Self::NONE; top.map_or(0, |t| t as usize + 1)];
        let mut sparse = BTreeMap::new();
        for (k, j) in jobs.iter().enumerate() {
            match dense.get_mut(j.id as usize) {
                Some(slot) if j.id < limit => *slot = k as u32,
                _ => {
                    sparse.insert(j.id, k);
                }
            }
        }
        JobIndex { dense, sparse }
    }

    /// The index of a job of the trace.
    fn get(&self, id: u64) -> usize {
        match self.dense.get(id as usize) {
            Some(&k) if k != Self::NONE => k as usize,
            _ => self.sparse[&id],
        }
    }
}

/// The output lines being written: a block filled through a cursor with fixed-size copies
/// (what lies past the cursor is scratch), handed to the writing thread when the next line
/// might not fit.
struct Lines {
    buf: Vec<u8>,
    pos: usize,
    full: mpsc::SyncSender<(Vec<u8>, usize)>,
    empty: mpsc::Receiver<Vec<u8>>,
}

impl Lines {
    /// Room a job line needs besides its boards: its fixed text, an id and three times.
    const JOB_LINE: usize = 256;

    fn new(full: mpsc::SyncSender<(Vec<u8>, usize)>, empty: mpsc::Receiver<Vec<u8>>) -> Lines {
        Lines {
            buf: vec![0; BLOCK],
            pos: 0,
            full,
            empty,
        }
    }

    /// Hands the filled part over; false if the writing side has gone.
    fn flush(&mut self) -> bool {
        if self.pos == 0 {
            return true;
        }
        let next = self.empty.try_recv().unwrap_or_else(|_| vec![0; BLOCK]);
        let block = std::mem::replace(&mut self.buf, next);
        let len = std::mem::take(&mut self.pos);
        self.full.send((block, len)).is_ok()
    }

    /// Makes sure `n` more bytes fit; `None` if the writing side has gone.
    fn room(&mut self, n: usize) -> Option<()> {
        if self.pos + n > self.buf.len() {
            if !self.flush() {
                return None;
            }
            if n > self.buf.len() {
                self.buf.resize(n, 0);
            }
        }
        Some(())
    }

    fn put<const N: usize>(&mut self, bytes: &[u8; N]) {
        self.buf[self.pos..self.pos + N].copy_from_slice(bytes);
        self.pos += N;
    }

    fn put_slice(&mut self, bytes: &[u8]) {
        self.buf[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }

    /// A whole line of any length.
    fn put_line(&mut self, line: &str) -> Option<()> {
        self.room(line.len())?;
        self.put_slice(line.as_bytes());
        Some(())
    }

    /// A decimal integer.
    fn put_u64(&mut self, v: u64) {
        self.put_slice(itoa::Buffer::new().format(v).as_bytes());
    }

    /// Milliseconds as seconds in the [`fmt_s`] format.
    fn put_s(&mut self, ms: u64) {
        self.put_u64(ms / 1000);
        let (text, len) = FRACTIONS[(ms % 1000) as usize];
        self.buf[self.pos..self.pos + 4].copy_from_slice(&text);
        self.pos += len as usize;
    }
}

/// The fractional part of [`fmt_s`] for each millisecond count: ".0", ".5", ".25", ".007" —
/// padded to four bytes, with its length.
const FRACTIONS: [([u8; 4], u8); 1000] = {
    let mut t = [([0u8; 4], 0u8); 1000];
    let mut ms = 0;
    while ms < 1000 {
        let d = [
            b'.',
            b'0' + (ms / 100) as u8,
            b'0' + (ms / 10 % 10) as u8,
            b'0' + (ms % 10) as u8,
        ];
        let len = if ms % 10 != 0 {
            4
        } else if ms % 100 != 0 {
            3
        } else {
            2
        };
        t[ms] = (d, len);
        ms += 1;
    }
    t
};

/// Each board's text in a job line, `,[x,y,z]`, looked up rather than formatted — a whole
/// triad's three boards at once where they come together (as in every rectangle) — for
/// machines of up to [`BoardText::TABLE`] boards; larger ones are formatted.
struct BoardText {
    width: u16,
    height: u16,
    /// By board index `(x · height + y) · 3 + z`.
    boards: Vec<([u8; 16], u8)>,
    /// By triad index `x · height + y`.
    triads: Vec<([u8; 48], u8)>,
}

impl BoardText {
    /// Room one board may take: `,[65535,65535,255]`, padded.
    const WIDTH: usize = 24;
    /// Largest machine (in boards) whose boards' texts are tabulated.
    const TABLE: usize = 1 << 16;

    fn new(machine: &Machine) -> BoardText {
        let (width, height) = (machine.width(), machine.height());
        let triads = width as usize * height as usize;
        let mut text = BoardText {
            width,
            height,
            boards: Vec::new(),
            triads: Vec::new(),
        };
        if triads * 3 <= Self::TABLE {
            for t in 0..triads {
                let (x, y) = ((t / height as usize) as u16, (t % height as usize) as u16);
                let mut triad = ([0u8; 48], 0u8);
                for z in 0..3 {
                    let mut one = [0u8; Self::WIDTH];
                    let len = Self::format(Board::new(x, y, z), &mut one);
                    let (bytes, n) = (&one[..16], triad.1 as usize);
                    text.boards.push((bytes.try_into().expect("16 bytes"), len as u8));
                    triad.0[n..n + len].copy_from_slice(&one[..len]);
                    triad.1 += len as u8;
                }
                text.triads.push(triad);
            }
        }
        text
    }

    fn format(b: Board, text: &mut [u8; Self::WIDTH]) -> usize {
        let mut n = 0;
        let mut push = |bytes: &[u8]| {
            text[n..n + bytes.len()].copy_from_slice(bytes);
            n += bytes.len();
        };
        push(b",[");
        push(itoa::Buffer::new().format(b.x).as_bytes());
        push(b",");
        push(itoa::Buffer::new().format(b.y).as_bytes());
        push(b",");
        push(itoa::Buffer::new().format(b.z).as_bytes());
        push(b"]");
        n
    }

    /// Appends an allocation's boards (room was made: [`BoardText::WIDTH`] each).
    fn put_all(&self, lines: &mut Lines, boards: &[Board]) {
        let mut i = 0;
        while i < boards.len() {
            let b = boards[i];
            let triad = b.x as usize * self.height as usize + b.y as usize;
            let tabulated = b.x < self.width && b.y < self.height && !self.triads.is_empty();
            if tabulated
                && b.z == 0
                && boards.get(i + 1) == Some(&Board::new(b.x, b.y, 1))
                && boards.get(i + 2) == Some(&Board::new(b.x, b.y, 2))
            {
                let (text, len) = &self.triads[triad];
                lines.put(text);
                lines.pos -= text.len() - *len as usize;
                i += 3;
                continue;
            }
            if tabulated && b.z < 3 {
                let (text, len) = &self.boards[triad * 3 + b.z as usize];
                lines.put(text);
                lines.pos -= text.len() - *len as usize;
            } else {
                let mut text = [0u8; Self::WIDTH];
                let len = Self::format(b, &mut text);
                lines.put(&text);
                lines.pos -= Self::WIDTH - len;
            }
            i += 1;
        }
    }
}

fn cancel_line(job: u64, reason: &str) -> String {
    format!("{{\"id\": {job}, \"cancelled\": {}}}\n", json_string(reason))
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

    /// A block of lines written to, and what was written.
    fn written(f: impl FnOnce(&mut Lines)) -> String {
        let (full, blocks) = mpsc::sync_channel(1);
        let (_empty, recycled) = mpsc::channel();
        let mut lines = Lines::new(full, recycled);
        f(&mut lines);
        assert!(lines.flush());
        // With nothing written, no block was handed over.
        drop(lines);
        let (block, len) = blocks.recv().unwrap_or_default();
        String::from_utf8(block[..len].to_vec()).unwrap()
    }

    #[test]
    fn seconds_are_formatted_like_the_reference() {
        let samples = (0..2000).chain([12_500, 30_000, 150_250, 1_234_567, 999_999_999_999, u64::MAX]);
        for ms in samples {
            assert_eq!(written(|l| l.put_s(ms)), fmt_s(ms), "{ms}");
        }
        let both = written(|l| {
            l.put_u64(0);
            l.put_u64(18_446_744_073_709_551_615);
        });
        assert_eq!(both, "018446744073709551615");
        assert_eq!(json_string("a\"b\u{e9}\n"), "\"a\\\"b\\u00e9\\n\"");
    }

    #[test]
    fn boards_are_written_as_formatted_whether_looked_up_or_not() {
        let m =
            crate::input::machine_json::parse("m.json", "{\"name\": \"m\", \"width\": 12, \"height\": 11}").unwrap();
        let table = BoardText::new(&m);
        assert_eq!((table.boards.len(), table.triads.len()), (12 * 11 * 3, 12 * 11));
        let formatted = BoardText {
            boards: Vec::new(),
            triads: Vec::new(),
            ..BoardText::new(&m)
        };
        let all: Vec<Board> = (0..12)
            .flat_map(|x| (0..11).flat_map(move |y| (0..3).map(move |z| Board::new(x, y, z))))
            .collect();
        let lists = [
            all.clone(),
            all.iter()
                .copied()
                .filter(|b| !(b.x + b.y + b.z as u16).is_multiple_of(4))
                .collect(),
            vec![
                Board::new(65535, 65535, 255),
                Board::new(3, 12, 0),
                Board::new(12, 3, 0),
            ],
            vec![Board::new(11, 10, 0), Board::new(11, 10, 1)],
            vec![Board::new(11, 10, 1), Board::new(11, 10, 2), Board::new(12, 10, 0)],
            Vec::new(),
        ];
        for boards in lists {
            let want: String = boards.iter().map(|b| format!(",[{},{},{}]", b.x, b.y, b.z)).collect();
            for text in [&table, &formatted] {
                let got = written(|l| {
                    l.room(boards.len() * BoardText::WIDTH).unwrap();
                    text.put_all(l, &boards);
                });
                assert_eq!(got, want);
            }
        }
    }
}
