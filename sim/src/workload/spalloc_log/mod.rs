//! The reference spalloc server's job log (`spalloc_jobs.log`) as a workload: replay what a live
//! server's users asked for, under any policy.
//!
//! The format (one `YYYY-MM-DD HH:MM:SS,mmm: message` line per job action, in local time) is
//! that of spalloc-server 1!7.0.0's `controller.py`, which `sim serve` also writes
//! (`spinnbed_spalloc::joblog`); `spalloc_job_log.md` of the reference facts describes every
//! message. Logs from before 2017-11, whose lines carry no timestamp, are refused.
//!
//! `create_job` lines carry no job id: ids are inferred as the reference assigns them, one per
//! logged create, consecutive within a server run ([`infer_ids`]). A create followed in the
//! same millisecond by its own allocation (`power_job(N,On)` from the same host, then
//! `power(…, True) … for job N`) or cancellation (`completed shutdown of job N` with the same
//! owner-host) anchors the numbering; a later anchor whose id is lower than the count implies
//! marks a cold start, after which ids start again from 1. Creates whose id cannot be
//! inferred are skipped and counted.
//!
//! Each job becomes a [`WorkloadJob`]: submitted at its `create_job` time (relative to the
//! first, times `time_scale`, divided by `load_scale`), asking for what it asked for, holding
//! its boards from its first `power(…, True)` (its allocation) until its `completed shutdown`.
//! A job its client destroyed while queued gives up at the same point after submission; a job
//! that timed out sends its last keepalive so that it times out when it did.

mod pyrepr;
#[cfg(test)]
mod tests;

use super::trace::{TraceEstimate, scaled, size_class};
use super::{WorkloadJob, WorkloadReport};
use crate::input::{self, InputError};
use pyrepr::Py;
use spinnbed_core::alloc::Request;
use spinnbed_core::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The live log's name; rotated ones add `.YYYY-MM-DD`.
pub const LOG_NAME: &str = "spalloc_jobs.log";

/// A job-log workload.
#[derive(Debug, Clone, PartialEq)]
pub struct SpallocLogSpec {
    /// One log file, or a directory holding `spalloc_jobs.log` and its rotated
    /// `spalloc_jobs.log.YYYY-MM-DD` files (read in date order, the live file last).
    pub path: PathBuf,
    /// Multiplies submission times and durations.
    pub time_scale: f64,
    /// Divides submission times (from the first create's, after `time_scale`), not durations:
    /// the offered load times this (`[workload] load_scale`).
    pub load_scale: f64,
    /// At most this many jobs.
    pub limit: Option<u64>,
    /// Keepalive of every job instead of the one each asked for (`Some(None)`: none).
    pub keepalive: Option<Option<Duration>>,
    /// Declared estimates (none, or the real runtime).
    pub estimate: TraceEstimate,
    /// Bytes each job's user writes before running (packet level; default 0).
    pub data_in: crate::quantity::dist::Dist<crate::quantity::dist::ByteSize>,
    /// Bytes each job's user reads back afterwards (default 0).
    pub data_out: crate::quantity::dist::Dist<crate::quantity::dist::ByteSize>,
}

/// Skip reasons, in the order the report lists them.
const NO_ID: &str = "whose job id cannot be inferred";
const REFUSED: &str = "refused at creation (arguments the server rejects)";
const LATE: &str = "submitted after the horizon";
const OVER: &str = "beyond the limit";

/// What a job asked for, from its `create_job` line.
#[derive(Debug, Clone, PartialEq)]
struct Asked {
    owner: String,
    keepalive: Option<Duration>,
    machine: Option<String>,
    tags: Option<Vec<String>>,
    request: Request,
}

/// One `create_job` line.
#[derive(Debug, Clone)]
struct Create {
    /// Where it is (file index, line).
    file: usize,
    line: usize,
    /// Its time (µs, local time read as if UTC).
    t: i64,
    /// The time of the record before it (the last sign of life of a server that then cold
    /// started), or its own.
    before: i64,
    asked: Result<Asked, String>,
    /// The id an allocation or cancellation in the same millisecond gives it.
    anchor: Option<u64>,
}

/// How a destroy line says a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// By its client (or by one of `sim serve`'s simulated users, "from internal").
    Requested,
    /// `Job timed out.` from internal.
    TimedOut,
    /// `Machine configuration failed. …` from internal.
    BmpFailed,
}

/// The records a replay needs (per-board `power`/`link` lines collapse into one
/// [`Event::Powered`] per burst; the rest are dropped once read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// The `n`th create.
    Create(usize),
    /// A burst of `power(…, True) … for job N` lines: the first is the allocation.
    Powered(u64),
    /// `power_job(N,Off)`: the client powers its boards off (a reset, if they go on again).
    PowerOff(u64),
    /// `destroy_job(N…)`.
    Destroy(u64, Ending),
    /// `completed shutdown of job N`.
    Shutdown(u64),
}

/// A message read from one record.
#[derive(Debug, Clone, PartialEq)]
enum Message {
    Create(Box<(String, Result<Asked, String>)>),
    PowerJob {
        job: Option<u64>,
        on: bool,
        host: String,
    },
    Destroy {
        job: Option<u64>,
        ending: Ending,
    },
    Power {
        job: u64,
        on: bool,
    },
    Link,
    Shutdown {
        job: u64,
        host: Option<String>,
    },
    /// Older forms (`set_power`, `set_link_enable`) that carry nothing a replay needs.
    Ignored,
}

/// The anchor being checked while reading: a create, then its allocation's `power_job` line.
#[derive(Debug, Clone)]
enum Pending {
    AfterCreate { index: usize, t: i64, host: String },
    AfterPowerJob { index: usize, t: i64, job: u64 },
}

/// Everything read from the log files.
#[derive(Debug, Default)]
struct Log {
    files: Vec<String>,
    creates: Vec<Create>,
    events: Vec<(i64, Event)>,
    /// Time of the last record.
    last: Option<i64>,
    /// Records whose time went back and was held at the one before.
    backwards: u64,
    pending: Option<Pending>,
    /// The job of the last `Powered` event (to collapse bursts).
    burst: Option<(i64, u64)>,
}

/// The log files at `path`: the file itself, or a directory's `spalloc_jobs.log.YYYY-MM-DD`
/// files in date order and then its `spalloc_jobs.log`. Also returns other files named like
/// logs that were left out.
pub fn log_files(path: &Path) -> Result<(Vec<PathBuf>, Vec<String>), InputError> {
    let name = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| InputError::at(&name, None, None, format!("cannot read: {e}")))?;
    if !meta.is_dir() {
        return Ok((vec![path.to_path_buf()], Vec::new()));
    }
    let entries =
        std::fs::read_dir(path).map_err(|e| InputError::at(&name, None, None, format!("cannot list: {e}")))?;
    let mut rotated: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut live = None;
    let mut ignored = Vec::new();
    for e in entries {
        let e = e.map_err(|e| InputError::at(&name, None, None, format!("cannot list: {e}")))?;
        let file = e.file_name().to_string_lossy().into_owned();
        if file == LOG_NAME {
            live = Some(e.path());
        } else if let Some(rest) = file.strip_prefix(LOG_NAME).and_then(|r| r.strip_prefix('.')) {
            let date = rest.strip_suffix(".gz").unwrap_or(rest);
            if is_date(date) {
                rotated.insert(file.clone(), e.path());
            } else {
                ignored.push(file);
            }
        }
    }
    ignored.sort();
    // Names differ only after the date (".gz"), so name order is date order.
    let mut files: Vec<PathBuf> = rotated.into_values().collect();
    files.extend(live);
    if files.is_empty() {
        return Err(InputError::at(
            &name,
            None,
            None,
            format!("no {LOG_NAME} or {LOG_NAME}.YYYY-MM-DD in this directory"),
        ));
    }
    Ok((files, ignored))
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD HH:MM:SS,mmm: message`: the time in µs (the local time read as if it were UTC)
/// and the message; `None` if the line does not start with a timestamp.
fn split_stamp(line: &str) -> Option<(i64, &str)> {
    let b = line.as_bytes();
    if b.len() < 24 {
        return None;
    }
    let shape = b"dddd-dd-dd dd:dd:dd,ddd:";
    for (c, s) in b.iter().zip(shape) {
        let ok = if *s == b'd' { c.is_ascii_digit() } else { c == s };
        if !ok {
            return None;
        }
    }
    let n = |r: std::ops::Range<usize>| line[r].parse::<i64>().ok();
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, s, ms) = (n(11..13)?, n(14..16)?, n(17..19)?, n(20..23)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s;
    let msg = line.get(24..).map_or("", |m| m.strip_prefix(' ').unwrap_or(m));
    Some(((secs * 1000 + ms) * 1000, msg))
}

/// Reads the log files into creates and events (with anchors found).
fn read(paths: &[PathBuf]) -> Result<Log, InputError> {
    let mut log = Log::default();
    for (fi, path) in paths.iter().enumerate() {
        let file = path.display().to_string();
        let text = input::read_text(path)?;
        log.files.push(file.clone());
        // The record being gathered: its first line, time and message (a destroy reason may
        // run over several lines).
        let mut cur: Option<(usize, i64, String)> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            match split_stamp(raw) {
                Some((t, msg)) => {
                    if let Some((l, t0, m)) = cur.take() {
                        log.record(fi, &file, l, t0, &m)?;
                    }
                    cur = Some((line, t, msg.to_string()));
                }
                None => match &mut cur {
                    // Only a destroy reason (free client text) can hold a line break.
                    Some((_, _, m)) if m.starts_with("destroy_job(") => {
                        m.push('\n');
                        m.push_str(raw);
                    }
                    _ if raw.trim().is_empty() => {}
                    None if log.creates.is_empty() && log.events.is_empty() => {
                        return Err(InputError::at(
                            &file,
                            Some(line),
                            None,
                            "the line has no timestamp: job logs written before spalloc-server added them \
                             (2017-11) cannot be replayed (expected `YYYY-MM-DD HH:MM:SS,mmm: message`)",
                        ));
                    }
                    _ => {
                        return Err(InputError::at(
                            &file,
                            Some(line),
                            None,
                            "the line has no timestamp (expected `YYYY-MM-DD HH:MM:SS,mmm: message`)",
                        ));
                    }
                },
            }
        }
        if let Some((l, t0, m)) = cur.take() {
            log.record(fi, &file, l, t0, &m)?;
        }
    }
    Ok(log)
}

impl Log {
    /// One whole record.
    fn record(&mut self, fi: usize, file: &str, line: usize, t: i64, msg: &str) -> Result<(), InputError> {
        let message = parse_message(msg).map_err(|why| InputError::at(file, Some(line), None, why))?;
        // Local time can go back (a DST change): hold it.
        let t = match self.last {
            Some(last) if t < last => {
                self.backwards += 1;
                last
            }
            _ => t,
        };
        let before = self.last.unwrap_or(t);
        self.last = Some(t);
        // Does this record complete an anchor?
        match self.pending.take() {
            Some(Pending::AfterCreate { index, t: tc, host }) if tc == t => match &message {
                Message::PowerJob {
                    job: Some(job),
                    on: true,
                    host: h,
                } if *h == host => {
                    self.pending = Some(Pending::AfterPowerJob { index, t, job: *job });
                }
                Message::Shutdown { job, host: h } if h.as_deref().unwrap_or("None") == host => {
                    self.creates[index].anchor = Some(*job);
                }
                _ => {}
            },
            Some(Pending::AfterPowerJob { index, t: tp, job })
                if tp == t && message == (Message::Power { job, on: true }) =>
            {
                self.creates[index].anchor = Some(job);
            }
            _ => {}
        }
        if !matches!(message, Message::Power { on: true, .. }) {
            self.burst = None;
        }
        match message {
            Message::Create(c) => {
                let (host, asked) = *c;
                let index = self.creates.len();
                self.pending = Some(Pending::AfterCreate { index, t, host });
                self.creates.push(Create {
                    file: fi,
                    line,
                    t,
                    before,
                    asked,
                    anchor: None,
                });
                self.events.push((t, Event::Create(index)));
            }
            Message::Power { job, on: true } => {
                if self.burst != Some((t, job)) {
                    self.events.push((t, Event::Powered(job)));
                    self.burst = Some((t, job));
                }
            }
            Message::PowerJob {
                job: Some(job),
                on: false,
                ..
            } => self.events.push((t, Event::PowerOff(job))),
            Message::Destroy { job: Some(job), ending } => self.events.push((t, Event::Destroy(job, ending))),
            Message::Shutdown { job, .. } => self.events.push((t, Event::Shutdown(job))),
            Message::PowerJob { .. }
            | Message::Destroy { .. }
            | Message::Power { .. }
            | Message::Link
            | Message::Ignored => {}
        }
        Ok(())
    }
}

/// A job id as the server wrote it (`%s` of what the client sent): an integer, else `None`.
fn job_id(s: &str) -> Option<u64> {
    s.trim().parse().ok()
}

/// Reads one message; the error says what is wrong with it.
fn parse_message(msg: &str) -> Result<Message, String> {
    if let Some(rest) = msg.strip_prefix("create_job(") {
        return parse_create(rest).map(|c| Message::Create(Box::new(c)));
    }
    if let Some(rest) = msg.strip_prefix("power_job(") {
        let bad = || format!("a power_job line should be `power_job(N,On|Off) from host` (got {msg:?})");
        let (body, host) = rest.rsplit_once(" from ").ok_or_else(bad)?;
        let (job, on) = if let Some(j) = body.strip_suffix(",On)") {
            (j, true)
        } else if let Some(j) = body.strip_suffix(",Off)") {
            (j, false)
        } else {
            return Err(bad());
        };
        return Ok(Message::PowerJob {
            job: job_id(job),
            on,
            host: host.to_string(),
        });
    }
    if let Some(rest) = msg.strip_prefix("destroy_job(") {
        let bad = || format!("a destroy_job line should be `destroy_job(N[,reason]) from host` (got {msg:?})");
        // The reason is free text: split from the right.
        let (body, host) = rest.rsplit_once(" from ").ok_or_else(bad)?;
        let inner = body.strip_suffix(')').ok_or_else(bad)?;
        let (job, reason) = match inner.split_once(',') {
            Some((j, r)) => (j, Some(r)),
            None => (inner, None),
        };
        let internal = host == "internal";
        let ending = match reason {
            Some("Job timed out.") if internal => Ending::TimedOut,
            Some(r) if internal && r.starts_with("Machine configuration failed.") => Ending::BmpFailed,
            _ => Ending::Requested,
        };
        return Ok(Message::Destroy {
            job: job_id(job),
            ending,
        });
    }
    if let Some(rest) = msg.strip_prefix("power(") {
        let bad = || format!("a power line should be `power(board, True|False) on BMP host for job N` (got {msg:?})");
        let (args, tail) = rest.split_once(") on BMP ").ok_or_else(bad)?;
        let (_, job) = tail.rsplit_once(" for job ").ok_or_else(bad)?;
        let on = match args.rsplit_once(", ").map(|(_, b)| b) {
            Some("True") => true,
            Some("False") => false,
            _ => return Err(bad()),
        };
        let job = job_id(job).ok_or_else(bad)?;
        return Ok(Message::Power { job, on });
    }
    if let Some(rest) = msg.strip_prefix("link(") {
        let bad =
            || format!("a link line should be `link(board, direction, False) on BMP host for job N` (got {msg:?})");
        let (args, tail) = rest.split_once(") on BMP ").ok_or_else(bad)?;
        tail.rsplit_once(" for job ")
            .and_then(|(_, j)| job_id(j))
            .ok_or_else(bad)?;
        // The direction is an integer (Python 3.11 and later) or `Links.name` (up to 3.10).
        let parts: Vec<&str> = args.split(", ").collect();
        let direction_ok = parts.len() == 3
            && (parts[1].parse::<u8>().is_ok_and(|d| d < 6)
                || parts[1]
                    .strip_prefix("Links.")
                    .is_some_and(|n| ["east", "north_east", "north", "west", "south_west", "south"].contains(&n)));
        if !direction_ok {
            return Err(bad());
        }
        return Ok(Message::Link);
    }
    if let Some(rest) = msg.strip_prefix("completed shutdown of job ") {
        let bad =
            || format!("a shutdown line should be `completed shutdown of job N [(owner-host: host)]` (got {msg:?})");
        let (job, host) = match rest.split_once(" (owner-host: ") {
            Some((j, h)) => (j, Some(h.strip_suffix(')').ok_or_else(bad)?.to_string())),
            None => (rest, None),
        };
        return Ok(Message::Shutdown {
            job: job_id(job).ok_or_else(bad)?,
            host,
        });
    }
    if msg.starts_with("set_power(") || msg.starts_with("set_link_enable(") {
        return Ok(Message::Ignored);
    }
    let shown: String = msg.chars().take(60).collect();
    Err(format!(
        "not a job-log message (expected create_job, power_job, destroy_job, power, link or completed shutdown; got {shown:?})"
    ))
}

/// `create_job(ARGS,KWARGS) from HOST` after `create_job(`: the host and what was asked (or
/// why the server refused it). A line that cannot be read is an error.
fn parse_create(rest: &str) -> Result<(String, Result<Asked, String>), String> {
    const PREFIX: usize = "create_job(".len();
    let at = |offset: usize, e: pyrepr::PyError| {
        format!(
            "create_job: cannot read its arguments: {} (at character {} of the message)",
            e.message,
            PREFIX + offset + e.offset + 1
        )
    };
    let (args, n1) = pyrepr::parse_prefix(rest).map_err(|e| at(0, e))?;
    let after = &rest[n1..];
    let Some(after) = after.strip_prefix(',') else {
        return Err(format!(
            "create_job: expected ',' between the arguments and the keyword arguments (at character {})",
            PREFIX + n1 + 1
        ));
    };
    let (kwargs, n2) = pyrepr::parse_prefix(after).map_err(|e| at(n1 + 1, e))?;
    let tail = &after[n2..];
    let host = tail
        .strip_prefix(") from ")
        .ok_or_else(|| {
            format!(
                "create_job: expected `) from host` after the keyword arguments (at character {})",
                PREFIX + n1 + 1 + n2 + 1
            )
        })?
        .to_string();
    let Py::Tuple(args) = args else {
        return Err(format!(
            "create_job: the arguments should be a tuple (got {})",
            args.repr()
        ));
    };
    let Py::Dict(kwargs) = kwargs else {
        return Err(format!(
            "create_job: the keyword arguments should be a dict (got {})",
            kwargs.repr()
        ));
    };
    Ok((host, asked(&args, &kwargs)))
}

/// The keyword arguments the reference's job queue takes (beyond `owner` and `keepalive`).
const JOB_KWARGS: [&str; 7] = [
    "machine",
    "tags",
    "min_ratio",
    "max_dead_boards",
    "max_dead_links",
    "require_torus",
    "job_id",
];

/// What a create asked for, or why the server refused it (as the server's `create_job` and
/// `spinnbed_spalloc`'s request building decide).
fn asked(args: &[Py], kwargs: &[(Py, Py)]) -> Result<Asked, String> {
    let mut kw: Vec<(&str, &Py)> = Vec::new();
    for (k, v) in kwargs {
        match k {
            Py::Str(k) => kw.push((k, v)),
            other => return Err(format!("a keyword that is not a string: {}", other.repr())),
        }
    }
    let get = |k: &str| kw.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    let owner = match get("owner") {
        None | Some(Py::None) => return Err("no owner".into()),
        Some(Py::Str(s)) => s.clone(),
        Some(other) => other.repr(),
    };
    if let Some((k, _)) = kw
        .iter()
        .find(|(k, _)| *k != "owner" && *k != "keepalive" && !JOB_KWARGS.contains(k))
    {
        return Err(format!("create_job() got an unexpected keyword argument '{k}'"));
    }
    let keepalive = match get("keepalive") {
        None => Some(Duration::from_secs(60)),
        Some(Py::None) => None,
        Some(v) => match number(v) {
            Some(k) if k.is_nan() || k == f64::INFINITY => None,
            Some(k) => Some(Duration::from_secs_f64(k)),
            None => return Err(format!("keepalive must be a number or None, got {}", v.repr())),
        },
    };
    // The allocator reads its positional arguments up to the first None.
    let mut ints = Vec::new();
    for a in args.iter().take_while(|a| **a != Py::None) {
        match a {
            Py::Int(i) => ints.push(i64::try_from(*i).unwrap_or(if *i < 0 { i64::MIN } else { i64::MAX })),
            Py::Bool(b) => ints.push(i64::from(*b)),
            other => return Err(format!("create_job() arguments must be integers, got {}", other.repr())),
        }
    }
    let count = |k: &str| -> Result<Option<u32>, String> {
        match get(k) {
            None | Some(Py::None) => Ok(None),
            Some(Py::Int(i)) if (0..=u32::MAX as i128).contains(i) => Ok(Some(*i as u32)),
            Some(v) => Err(format!("{k} must be a non-negative integer or None, got {}", v.repr())),
        }
    };
    let min_ratio = match get("min_ratio") {
        None | Some(Py::None) => 0.0,
        Some(v) => number(v).ok_or_else(|| format!("min_ratio must be a number, got {}", v.repr()))?,
    };
    let request = Request::from_args(
        &ints,
        min_ratio,
        count("max_dead_boards")?,
        count("max_dead_links")?,
        get("require_torus").is_some_and(Py::truthy),
    )
    .map_err(|e| e.to_string())?;
    let machine = match get("machine") {
        None | Some(Py::None) => None,
        Some(Py::Str(s)) => Some(s.clone()),
        Some(v) => return Err(format!("machine must be a machine's name or None, got {}", v.repr())),
    };
    let tags = match get("tags") {
        None | Some(Py::None) => None,
        Some(Py::Set(v) | Py::List(v) | Py::Tuple(v)) => {
            let mut tags: Vec<String> = Vec::new();
            for t in v {
                match t {
                    Py::Str(s) if !tags.contains(s) => tags.push(s.clone()),
                    Py::Str(_) => {}
                    other => return Err(format!("tags must be strings, got {}", other.repr())),
                }
            }
            Some(tags)
        }
        Some(v) => return Err(format!("tags must be a set of strings or None, got {}", v.repr())),
    };
    if machine.is_some() && tags.is_some() {
        return Err("Only one of machine and tags may be specified for a job.".into());
    }
    Ok(Asked {
        owner,
        keepalive,
        machine,
        tags,
        request,
    })
}

fn number(v: &Py) -> Option<f64> {
    match v {
        Py::Int(i) => Some(*i as f64),
        Py::Float(f) => Some(*f),
        Py::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// The job ids of the creates, inferred from the anchors (`(create index, id)`, in order):
/// consecutive within a server run. Returns each create's id (`None`: cannot be inferred) and
/// the creates at which a new server run (a cold start) begins.
fn infer_ids(n: usize, anchors: &[(usize, u64)]) -> (Vec<Option<u64>>, BTreeSet<usize>) {
    let mut ids = vec![None; n];
    let mut starts = BTreeSet::new();
    let Some(&(k0, n0)) = anchors.first() else {
        return (ids, starts);
    };
    // Before the first anchor: numbered back from it, down to 1 (a cold start before that).
    for (k, id) in ids.iter_mut().enumerate().take(k0 + 1) {
        let back = (k0 - k) as u64;
        if n0 > back {
            *id = Some(n0 - back);
        }
    }
    if n0 <= k0 as u64 {
        starts.insert(k0 + 1 - n0 as usize);
    }
    for w in anchors.windows(2) {
        let ((k1, n1), (k2, n2)) = (w[0], w[1]);
        let gap = (k2 - k1) as u64;
        if n2 == n1 + gap {
            for (k, id) in ids.iter_mut().enumerate().take(k2 + 1).skip(k1 + 1) {
                *id = Some(n1 + (k - k1) as u64);
            }
        } else if n2 >= 1 && n2 <= gap {
            // A cold start: ids began again from 1 at create `s`.
            let s = k2 + 1 - n2 as usize;
            for (k, id) in ids.iter_mut().enumerate().take(k2 + 1).skip(k1 + 1) {
                *id = Some(if k < s {
                    n1 + (k - k1) as u64
                } else {
                    (k - s) as u64 + 1
                });
            }
            starts.insert(s);
        } else {
            // Ids skipped (creates missing from the log) or went back to no fresh start: the
            // creates between cannot be numbered.
            ids[k2] = Some(n2);
            if n2 < n1 + gap {
                starts.insert(k2);
            }
        }
    }
    let &(kl, nl) = anchors.last().expect("not empty");
    for (k, id) in ids.iter_mut().enumerate().skip(kl + 1) {
        *id = Some(nl + (k - kl) as u64);
    }
    (ids, starts)
}

/// One job's life as the log tells it (times in µs of local time).
#[derive(Debug, Clone, Default)]
struct Life {
    create: usize,
    id: u64,
    run: usize,
    allocated: Option<i64>,
    destroyed: Option<(i64, Ending, bool)>,
    shutdown: Option<i64>,
    /// The server run ended (a cold start) with the job alive, at this time.
    cut: Option<i64>,
    reset: bool,
}

/// Reads the log(s) and builds the jobs. Jobs submitted at or after `horizon` are dropped and
/// counted; a job still queued when the log ends holds its boards for `hold` if it gets them
/// (longer than the run); `machines` are the scenario's machine names, for a note about jobs
/// that ask for others.
pub fn generate(
    spec: &SpallocLogSpec,
    horizon: Duration,
    hold: Duration,
    machines: &[&str],
) -> Result<(Vec<WorkloadJob>, WorkloadReport), InputError> {
    let (paths, ignored) = log_files(&spec.path)?;
    let log = read(&paths)?;
    let mut report = WorkloadReport::new("spalloc-log");
    if paths.len() > 1 {
        report.notes.push(format!(
            "read {} log files in date order, {} last",
            paths.len(),
            paths.last().expect("not empty").display()
        ));
    }
    if !ignored.is_empty() {
        report.notes.push(format!(
            "left out files that are not dated logs: {}",
            ignored.join(", ")
        ));
    }
    let anchors: Vec<(usize, u64)> = log
        .creates
        .iter()
        .enumerate()
        .filter_map(|(k, c)| c.anchor.map(|id| (k, id)))
        .collect();
    let (ids, starts) = infer_ids(log.creates.len(), &anchors);
    // Walk the events: each line about job N is about the latest create numbered N in the
    // current server run.
    let mut lives: Vec<Life> = Vec::new();
    let mut live_ids: BTreeMap<u64, usize> = BTreeMap::new();
    let mut run = 0;
    let mut refused = 0u64;
    let mut first_refusal = None;
    let mut no_id = 0u64;
    for &(t, ev) in &log.events {
        match ev {
            Event::Create(k) => {
                let c = &log.creates[k];
                if starts.contains(&k) && k > 0 {
                    for (_, j) in std::mem::take(&mut live_ids) {
                        lives[j].cut = Some(c.before);
                    }
                    run += 1;
                }
                let Some(id) = ids[k] else {
                    no_id += 1;
                    continue;
                };
                live_ids.remove(&id);
                match &c.asked {
                    Ok(_) => {
                        live_ids.insert(id, lives.len());
                        lives.push(Life {
                            create: k,
                            id,
                            run,
                            ..Life::default()
                        });
                    }
                    Err(why) => {
                        refused += 1;
                        first_refusal.get_or_insert_with(|| format!("{}: line {}: {why}", log.files[c.file], c.line));
                    }
                }
            }
            Event::Powered(id) => {
                if let Some(&j) = live_ids.get(&id) {
                    lives[j].allocated.get_or_insert(t);
                }
            }
            Event::PowerOff(id) => {
                if let Some(&j) = live_ids.get(&id)
                    && lives[j].allocated.is_some()
                {
                    lives[j].reset = true;
                }
            }
            Event::Destroy(id, ending) => {
                if let Some(&j) = live_ids.get(&id) {
                    let queued = lives[j].allocated.is_none();
                    lives[j].destroyed.get_or_insert((t, ending, queued));
                }
            }
            Event::Shutdown(id) => {
                if let Some(j) = live_ids.remove(&id) {
                    lives[j].shutdown = Some(t);
                }
            }
        }
    }
    let Some(first) = log.creates.first().map(|c| c.t) else {
        report.notes.push("the log holds no create_job line".into());
        return Ok((Vec::new(), report));
    };
    let end = log.last.unwrap_or(first);
    // Ids of later server runs are offset by a power of ten above every id, to stay unique.
    let runs: Vec<usize> = lives
        .iter()
        .map(|l| l.run)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let max_id = lives.iter().map(|l| l.id).max().unwrap_or(0);
    let step = 10u64.saturating_pow(max_id.checked_ilog10().map_or(1, |d| d + 1));
    if run > 0 {
        let mut note = format!("the server cold started {run} times (job ids start again at 1 after each)");
        if runs.len() > 1 {
            note.push_str(&format!(
                "; the ids of the jobs of later runs are offset by multiples of {step} to stay unique"
            ));
        }
        report.notes.push(note);
    }
    if log.backwards > 0 {
        report.notes.push(format!(
            "{} timestamps went back in time (a daylight-saving change? the log's local times carry no zone) and were held at the time before them",
            log.backwards
        ));
    }
    if let Some(r) = first_refusal {
        report.notes.push(format!("first create the server refused: {r}"));
    }
    let us = |d: i64| scaled(d.max(0) as f64, spec.time_scale);
    let (mut late, mut over) = (0u64, 0u64);
    let (mut never_end, mut running_at_end, mut resets, mut bmp_failed) = (0, 0, 0, 0);
    let mut unknown_machines: BTreeSet<String> = BTreeSet::new();
    let mut jobs = Vec::new();
    for l in &lives {
        let c = &log.creates[l.create];
        let asked = c.asked.as_ref().expect("refused creates have no life");
        let submit = scaled((c.t - first).max(0) as f64, spec.time_scale / spec.load_scale);
        if submit >= horizon {
            late += 1;
            continue;
        }
        if spec.limit.is_some_and(|n| jobs.len() as u64 >= n) {
            over += 1;
            continue;
        }
        let keepalive = spec.keepalive.unwrap_or(asked.keepalive);
        // When the job stopped holding its boards: its shutdown, else its destroy line, else
        // the end of its server run or of the log.
        let gone = l.shutdown.or(l.destroyed.map(|(t, _, _)| t));
        let runtime = match (l.allocated, gone) {
            (Some(a), Some(g)) => us(g - a),
            (Some(a), None) => {
                running_at_end += 1;
                us(l.cut.unwrap_or(end) - a)
            }
            (None, Some(_)) => Duration::ZERO,
            (None, None) => {
                never_end += 1;
                hold
            }
        };
        let mut job = WorkloadJob {
            id: l.id + step.saturating_mul(runs.partition_point(|r| *r < l.run) as u64),
            submit: Instant(submit.0),
            owner: asked.owner.clone(),
            class: size_class(&asked.request).to_string(),
            request: asked.request,
            machine: asked.machine.clone(),
            tags: asked.tags.clone(),
            runtime,
            estimate: match spec.estimate {
                TraceEstimate::None => None,
                TraceEstimate::Actual => Some(runtime),
            },
            keepalive,
            lapse_after: None,
            last_keepalive: None,
            cancel_after: None,
            data_in: 0,
            data_out: 0,
        };
        match l.destroyed {
            Some((t, Ending::Requested, true)) => job.cancel_after = Some(us(t - c.t)),
            Some((t, Ending::TimedOut, _)) => {
                if let Some(k) = keepalive {
                    // It times out one keepalive period (and a microsecond) after its last
                    // keepalive, which is when it did.
                    job.last_keepalive = Some(Duration(us(t - c.t).0.saturating_sub(k.0 + 1)));
                }
            }
            Some((_, Ending::BmpFailed, _)) => bmp_failed += 1,
            _ => {}
        }
        if l.reset {
            resets += 1;
        }
        if let Some(m) = &job.machine
            && !machines.contains(&m.as_str())
        {
            unknown_machines.insert(m.clone());
        }
        jobs.push(job);
    }
    report.skip(NO_ID, no_id);
    report.skip(REFUSED, refused);
    report.skip(LATE, late);
    report.skip(OVER, over);
    if running_at_end > 0 {
        report.notes.push(format!(
            "{running_at_end} jobs still held boards when the log (or their server run) ended: they hold them as long in the replay"
        ));
    }
    if never_end > 0 {
        report.notes.push(format!(
            "{never_end} jobs were still queued when the log ended: if they get boards they keep them until the run stops"
        ));
    }
    if resets > 0 {
        report.notes.push(format!(
            "{resets} jobs were powered off by their clients (resets): the replay does not repeat that"
        ));
    }
    if bmp_failed > 0 {
        report.notes.push(format!(
            "{bmp_failed} jobs failed live (a BMP gave up): the replay's hardware decides afresh, and they end when they did"
        ));
    }
    if !unknown_machines.is_empty() {
        let names: Vec<String> = unknown_machines.iter().map(|m| format!("{m:?}")).collect();
        report.notes.push(format!(
            "jobs ask for machines the scenario does not have: {} (they will be cancelled)",
            names.join(", ")
        ));
    }
    report.jobs = jobs.len();
    Ok((jobs, report))
}
