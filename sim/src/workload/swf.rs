//! The Standard Workload Format of the Parallel Workloads Archive (Feitelson, Tsafrir and
//! Krakov, JPDC 74(10), 2014), mapped onto SpiNNaker boards.
//!
//! A log is `;`-comment header lines (`; MaxProcs: 100`) and one line of 18 whitespace-separated
//! numbers per job (-1 = unknown). Each job becomes a request for
//! `ceil(processors / procs_per_board)` boards (one board: any board), submitted at its log
//! submit time minus the first kept job's, held for its run time; times are multiplied by
//! `time_scale`, and submit times (not run times) divided by `load_scale`. Jobs whose run time or processor count is unknown, or whose run time is not
//! positive, are skipped and counted in the [`WorkloadReport`].

use super::WorkloadJob;
use super::WorkloadReport;
use super::trace::{scaled, size_class};
use crate::input::{self, InputError};
use spinnbed_core::alloc::{Request, Shape};
use spinnbed_core::geometry::Machine;
use spinnbed_core::time::{Duration, Instant};
use std::path::PathBuf;

/// The 18 SWF fields, in order (names from the archive's definition).
pub const FIELDS: [&str; 18] = [
    "job number",
    "submit time",
    "wait time",
    "run time",
    "allocated processors",
    "average CPU time used",
    "used memory",
    "requested processors",
    "requested time",
    "requested memory",
    "status",
    "user ID",
    "group ID",
    "executable (application) number",
    "queue number",
    "partition number",
    "preceding job number",
    "think time from preceding job",
];

/// Fields that must be whole numbers (the others may be fractional).
const INTEGER_FIELDS: [usize; 10] = [0, 4, 7, 10, 11, 12, 13, 14, 15, 16];

/// Header labels whose values must be integers.
const NUMERIC_LABELS: [&str; 11] = [
    "MaxJobs",
    "MaxRecords",
    "UnixStartTime",
    "TimeZone",
    "MaxNodes",
    "MaxProcs",
    "MaxRuntime",
    "MaxMemory",
    "MaxQueues",
    "MaxPartitions",
    "AllowOveruse",
];

/// The header comments: `; Label: value` lines in order (a label-less `;` line continues the
/// previous value, joined with a newline).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SwfHeader {
    /// `(label, value)` in file order.
    pub entries: Vec<(String, String)>,
}

impl SwfHeader {
    /// The first value of a label.
    pub fn get(&self, label: &str) -> Option<&str> {
        self.entries.iter().find(|(l, _)| l == label).map(|(_, v)| v.as_str())
    }
    /// Every value of a label (`Note`, `Queue`, …).
    pub fn all<'a>(&'a self, label: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(l, _)| l == label)
            .map(|(_, v)| v.as_str())
    }
    fn int(&self, label: &str) -> Option<i64> {
        self.get(label)?.trim().parse().ok()
    }
    /// `MaxProcs`.
    pub fn max_procs(&self) -> Option<i64> {
        self.int("MaxProcs")
    }
    /// `MaxNodes`.
    pub fn max_nodes(&self) -> Option<i64> {
        self.int("MaxNodes")
    }
    /// `UnixStartTime`: the log's time 0 in seconds since 1970.
    pub fn unix_start_time(&self) -> Option<i64> {
        self.int("UnixStartTime")
    }
    /// `TimeZoneString` (e.g. `Europe/Stockholm`).
    pub fn time_zone(&self) -> Option<&str> {
        self.get("TimeZoneString")
    }
    /// `Computer`.
    pub fn computer(&self) -> Option<&str> {
        self.get("Computer")
    }
    /// `Installation`.
    pub fn installation(&self) -> Option<&str> {
        self.get("Installation")
    }
    /// `Acknowledge`: who donated the log.
    pub fn acknowledge(&self) -> Option<&str> {
        self.get("Acknowledge")
    }
}

/// One job line.
#[derive(Debug, Clone, PartialEq)]
pub struct SwfJob {
    /// Field 1.
    pub job: i64,
    /// Field 2, seconds from the log's start.
    pub submit: f64,
    /// Field 3, seconds.
    pub wait: f64,
    /// Field 4, seconds.
    pub run_time: f64,
    /// Field 5.
    pub allocated_procs: i64,
    /// Field 6, seconds.
    pub average_cpu_time: f64,
    /// Field 7, KB.
    pub used_memory: f64,
    /// Field 8.
    pub requested_procs: i64,
    /// Field 9, seconds.
    pub requested_time: f64,
    /// Field 10, KB.
    pub requested_memory: f64,
    /// Field 11.
    pub status: i64,
    /// Field 12.
    pub user: i64,
    /// Field 13.
    pub group: i64,
    /// Field 14.
    pub executable: i64,
    /// Field 15.
    pub queue: i64,
    /// Field 16.
    pub partition: i64,
    /// Field 17.
    pub preceding_job: i64,
    /// Field 18, seconds.
    pub think_time: f64,
    /// 1-based line in the file.
    pub line: usize,
}

/// A parsed log.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SwfLog {
    /// Header comments.
    pub header: SwfHeader,
    /// Job lines in file order.
    pub jobs: Vec<SwfJob>,
}

fn field_name(k: usize) -> String {
    format!("{} (field {})", FIELDS[k], k + 1)
}

fn parse_header_line(
    file: &str,
    line: usize,
    body: &str,
    header: &mut SwfHeader,
    open: &mut bool,
) -> Result<(), InputError> {
    let body = body.trim();
    if body.is_empty() {
        *open = false;
        return Ok(());
    }
    let label = body
        .split_once(':')
        .map(|(l, v)| (l.trim(), v.trim()))
        .filter(|(l, _)| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_alphanumeric())
                && l.starts_with(|c: char| c.is_ascii_alphabetic())
        });
    match label {
        Some((l, v)) => {
            if NUMERIC_LABELS.contains(&l) && v.parse::<i64>().is_err() {
                return Err(InputError::at(
                    file,
                    Some(line),
                    Some(l),
                    format!("header value must be an integer (got {v:?})"),
                ));
            }
            header.entries.push((l.to_string(), v.to_string()));
            *open = true;
        }
        None if *open => {
            if let Some((_, v)) = header.entries.last_mut() {
                v.push('\n');
                v.push_str(body);
            }
        }
        None => {}
    }
    Ok(())
}

/// Reads a log; errors name the file, the line and the SWF field.
pub fn parse(file: &str, text: &str) -> Result<SwfLog, InputError> {
    let mut log = SwfLog::default();
    let mut open = false;
    let mut seen = std::collections::BTreeSet::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = raw.trim();
        if let Some(body) = t.strip_prefix(';') {
            parse_header_line(file, line, body, &mut log.header, &mut open)?;
            continue;
        }
        if t.is_empty() {
            continue;
        }
        let tokens: Vec<&str> = t.split_whitespace().collect();
        if tokens.len() != 18 {
            return Err(InputError::at(
                file,
                Some(line),
                None,
                format!("expected 18 fields, got {}", tokens.len()),
            ));
        }
        let mut v = [0f64; 18];
        for (k, tok) in tokens.iter().enumerate() {
            let x: f64 = tok.parse().ok().filter(|x: &f64| x.is_finite()).ok_or_else(|| {
                InputError::at(
                    file,
                    Some(line),
                    Some(&field_name(k)),
                    format!("not a number (got {tok:?})"),
                )
            })?;
            if INTEGER_FIELDS.contains(&k) && x.fract() != 0.0 {
                return Err(InputError::at(
                    file,
                    Some(line),
                    Some(&field_name(k)),
                    format!("not an integer (got {tok:?})"),
                ));
            }
            v[k] = x;
        }
        if v[0] < 0.0 {
            return Err(InputError::at(
                file,
                Some(line),
                Some(&field_name(0)),
                format!("must not be negative (got {})", tokens[0]),
            ));
        }
        if !seen.insert(v[0] as i64) {
            return Err(InputError::at(
                file,
                Some(line),
                Some(&field_name(0)),
                format!("duplicate job number {}", tokens[0]),
            ));
        }
        if v[1] < 0.0 {
            return Err(InputError::at(
                file,
                Some(line),
                Some(&field_name(1)),
                format!("must not be negative (got {})", tokens[1]),
            ));
        }
        log.jobs.push(SwfJob {
            job: v[0] as i64,
            submit: v[1],
            wait: v[2],
            run_time: v[3],
            allocated_procs: v[4] as i64,
            average_cpu_time: v[5],
            used_memory: v[6],
            requested_procs: v[7] as i64,
            requested_time: v[8],
            requested_memory: v[9],
            status: v[10] as i64,
            user: v[11] as i64,
            group: v[12] as i64,
            executable: v[13] as i64,
            queue: v[14] as i64,
            partition: v[15] as i64,
            preceding_job: v[16] as i64,
            think_time: v[17],
            line,
        });
    }
    Ok(log)
}

/// What a job declares as its runtime estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwfEstimate {
    /// The log's requested time (field 9) when positive, else none.
    Requested,
    /// The real run time.
    Actual,
    /// No estimate.
    None,
}

/// An SWF workload.
#[derive(Debug, Clone, PartialEq)]
pub struct SwfSpec {
    /// The log (`.swf` or `.swf.gz`).
    pub path: PathBuf,
    /// Processors per board; `None`: `ceil(MaxProcs / live boards of the first machine)`, at
    /// least 1.
    pub procs_per_board: Option<f64>,
    /// Multiplies submission times and run times.
    pub time_scale: f64,
    /// Divides submission times (from the first kept job's, after `time_scale`), not run or
    /// requested times: the offered load times this (`[workload] load_scale`).
    pub load_scale: f64,
    /// Jobs submitted before this offset into the log are dropped.
    pub skip: Duration,
    /// At most this many jobs.
    pub limit: Option<u64>,
    /// `min_ratio` of multi-board requests.
    pub min_ratio: f64,
    /// `max_dead_boards` of multi-board requests.
    pub max_dead_boards: Option<u32>,
    /// Declared estimates.
    pub estimate: SwfEstimate,
    /// Keepalive of every job.
    pub keepalive: Option<Duration>,
    /// Bytes each job's user writes before running (packet level; default 0).
    pub data_in: crate::quantity::dist::Dist<crate::quantity::dist::ByteSize>,
    /// Bytes each job's user reads back afterwards (default 0).
    pub data_out: crate::quantity::dist::Dist<crate::quantity::dist::ByteSize>,
}

/// The processors-per-board mapping used for a log on a machine: the spec's, or the automatic
/// `ceil(MaxProcs / live boards)` (at least 1; the largest processor count in the log stands in
/// for a missing `MaxProcs`). Returns the value and a note explaining it.
pub fn procs_per_board(spec: &SwfSpec, log: &SwfLog, machine: &Machine) -> (f64, String) {
    if let Some(p) = spec.procs_per_board {
        return (p, format!("procs_per_board = {p}"));
    }
    let live = machine.boards().filter(|b| machine.is_live(*b)).count().max(1);
    let (max_procs, from) = match log.header.max_procs().filter(|p| *p > 0) {
        Some(p) => (p, "MaxProcs"),
        None => (
            log.jobs
                .iter()
                .map(|j| j.allocated_procs.max(j.requested_procs))
                .max()
                .unwrap_or(1)
                .max(1),
            "largest job",
        ),
    };
    let p = (max_procs as f64 / live as f64).ceil().max(1.0);
    (
        p,
        format!(
            "procs_per_board = {p} (auto: {from} {max_procs} / {live} live boards of machine {})",
            machine.name()
        ),
    )
}

/// Reads the log and maps its jobs (ids are the log's job numbers; owners `u<user ID>`).
pub fn generate(
    spec: &SwfSpec,
    horizon: Duration,
    machine: &Machine,
) -> Result<(Vec<WorkloadJob>, WorkloadReport), InputError> {
    let file = spec.path.display().to_string();
    let text = input::read_text(&spec.path)?;
    let log = parse(&file, &text)?;
    let (ppb, note) = procs_per_board(spec, &log, machine);
    let mut report = WorkloadReport::new("swf");
    report.notes.push(note);
    if let Some(c) = log.header.computer() {
        let mut s = format!("log of the {c}");
        if let Some(i) = log.header.installation() {
            s.push_str(&format!(", {i}"));
        }
        if let Some(a) = log.header.acknowledge() {
            s.push_str(&format!(" (provided by {a})"));
        }
        report.notes.push(s);
    }
    let skip_s = spec.skip.as_secs_f64();
    let (mut before, mut no_runtime, mut no_procs, mut non_positive, mut over, mut late) = (0, 0, 0, 0, 0, 0);
    let mut kept: Vec<(&SwfJob, i64)> = Vec::new();
    for j in &log.jobs {
        if j.submit < skip_s {
            before += 1;
            continue;
        }
        let procs = if j.allocated_procs > 0 {
            j.allocated_procs
        } else if j.requested_procs > 0 {
            j.requested_procs
        } else {
            -1
        };
        if j.run_time < 0.0 {
            no_runtime += 1;
            continue;
        }
        if procs < 0 {
            no_procs += 1;
            continue;
        }
        if j.run_time == 0.0 {
            non_positive += 1;
            continue;
        }
        if spec.limit.is_some_and(|l| kept.len() as u64 >= l) {
            over += 1;
            continue;
        }
        kept.push((j, procs));
    }
    let first = kept.iter().map(|(j, _)| j.submit).fold(f64::INFINITY, f64::min);
    let mut jobs = Vec::with_capacity(kept.len());
    for (j, procs) in kept {
        let submit = scaled((j.submit - first) * 1e6, spec.time_scale / spec.load_scale);
        if submit >= horizon {
            late += 1;
            continue;
        }
        let n = (procs as f64 / ppb).ceil().clamp(1.0, u32::MAX as f64) as u32;
        let request = if n == 1 {
            Request::new(Shape::AnyBoard)
        } else {
            Request {
                shape: Shape::Boards {
                    n,
                    min_ratio: spec.min_ratio,
                },
                max_dead_boards: spec.max_dead_boards,
                max_dead_links: None,
                require_torus: false,
            }
        };
        let runtime = scaled(j.run_time * 1e6, spec.time_scale);
        let estimate = match spec.estimate {
            SwfEstimate::Requested if j.requested_time > 0.0 => Some(scaled(j.requested_time * 1e6, spec.time_scale)),
            SwfEstimate::Requested | SwfEstimate::None => None,
            SwfEstimate::Actual => Some(runtime),
        };
        jobs.push(WorkloadJob {
            id: j.job as u64,
            submit: Instant(submit.0),
            owner: if j.user >= 0 {
                format!("u{}", j.user)
            } else {
                "unknown".into()
            },
            class: size_class(&request).to_string(),
            request,
            machine: None,
            tags: None,
            runtime,
            estimate,
            keepalive: spec.keepalive,
            lapse_after: None,
            last_keepalive: None,
            cancel_after: None,
            data_in: 0,
            data_out: 0,
        });
    }
    jobs.sort_by_key(|j| j.submit);
    report.skip("with unknown run time", no_runtime);
    report.skip("with unknown processors", no_procs);
    report.skip("with run time <= 0", non_positive);
    report.skip("submitted before `skip`", before);
    report.skip("beyond `limit`", over);
    report.skip("submitted after the horizon", late);
    report.jobs = jobs.len();
    Ok((jobs, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use spinnbed_core::geometry::MachineSpec;

    const SMALL: &str = "\
; Version: 2.2
; Computer: Test SP2
; Installation: Nowhere
; Acknowledge: A. Donor
; MaxProcs: 64
; UnixStartTime: 1000
; TimeZoneString: Europe/London
; Note: first line
;       second line
;
; Note: another note
    1   100  5   60    1  -1 -1    1   120  -1 1  3 1 -1 0 -1 -1 -1
    2   160  0   30   16  -1 -1   16    -1  -1 1  4 1 -1 0 -1 -1 -1
    3   200  0   -1    4  -1 -1    4   100  -1 0  3 1 -1 0 -1 -1 -1
    4   210  0   10   -1  -1 -1   -1   100  -1 0  3 1 -1 0 -1 -1 -1
    5   220  0   10   -1  -1 -1    8   100  -1 1  3 1 -1 0 -1 -1 -1
    6   230  0    0    2  -1 -1    2   100  -1 1 -1 1 -1 0 -1 -1 -1
    7   3700 0   15   64  -1 -1   64   100  -1 1  7 1 -1 0 -1 -1 -1
";

    fn machine(w: u16, h: u16) -> Machine {
        Machine::new(MachineSpec::new("m", w, h)).unwrap()
    }

    fn spec(path: PathBuf) -> SwfSpec {
        SwfSpec {
            path,
            procs_per_board: None,
            time_scale: 1.0,
            load_scale: 1.0,
            skip: Duration::ZERO,
            limit: None,
            min_ratio: 0.333,
            max_dead_boards: Some(0),
            estimate: SwfEstimate::Requested,
            keepalive: None,
            data_in: crate::quantity::dist::Dist::fixed(crate::quantity::dist::ByteSize(0)),
            data_out: crate::quantity::dist::Dist::fixed(crate::quantity::dist::ByteSize(0)),
        }
    }

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("spinnbed-swf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_header_and_jobs() {
        let log = parse("s.swf", SMALL).unwrap();
        assert_eq!(log.jobs.len(), 7);
        assert_eq!(log.header.max_procs(), Some(64));
        assert_eq!(log.header.unix_start_time(), Some(1000));
        assert_eq!(log.header.time_zone(), Some("Europe/London"));
        assert_eq!(log.header.acknowledge(), Some("A. Donor"));
        let notes: Vec<&str> = log.header.all("Note").collect();
        assert_eq!(notes, vec!["first line\nsecond line", "another note"]);
        assert_eq!(log.jobs[1].allocated_procs, 16);
        assert_eq!(log.jobs[1].requested_time, -1.0);
        assert_eq!(log.jobs[0].line, 12);
    }

    #[test]
    fn maps_jobs_to_boards_and_counts_what_it_skips() {
        let path = write("small.swf", SMALL);
        // 2 x 2 triads = 12 live boards; MaxProcs 64 → ceil(64 / 12) = 6 procs per board.
        let (jobs, report) = generate(&spec(path.clone()), Duration::from_secs(86_400), &machine(2, 2)).unwrap();
        assert_eq!(
            report.notes[0],
            "procs_per_board = 6 (auto: MaxProcs 64 / 12 live boards of machine m)"
        );
        assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![1, 2, 5, 7]);
        assert_eq!(jobs[0].submit, Instant::ZERO);
        assert_eq!(jobs[0].request.shape, Shape::AnyBoard);
        assert_eq!(jobs[0].class, "1 board");
        assert_eq!(jobs[0].estimate, Some(Duration::from_secs(120)));
        assert_eq!(jobs[0].owner, "u3");
        assert_eq!(jobs[1].submit, Instant::from_secs(60));
        assert_eq!(jobs[1].request.shape, Shape::Boards { n: 3, min_ratio: 0.333 });
        assert_eq!(jobs[1].request.max_dead_boards, Some(0));
        assert_eq!(jobs[1].estimate, None);
        // Job 5: allocated unknown, requested 8 → 2 boards.
        assert_eq!(jobs[2].request.shape, Shape::Boards { n: 2, min_ratio: 0.333 });
        assert_eq!(
            jobs[3].request.shape,
            Shape::Boards {
                n: 11,
                min_ratio: 0.333
            }
        );
        assert_eq!(jobs[3].runtime, Duration::from_secs(15));
        assert_eq!(report.jobs, 4);
        assert_eq!(
            report.skipped,
            vec![
                ("with unknown run time".to_string(), 1),
                ("with unknown processors".to_string(), 1),
                ("with run time <= 0".to_string(), 1)
            ]
        );
        assert_eq!(
            report.to_string(),
            "4 jobs from the swf workload; skipped 3 jobs: 1 with unknown run time, 1 with unknown processors, 1 with run time <= 0"
        );
        // Options: fixed mapping, time scale, skip, limit, horizon, estimates.
        let s = SwfSpec {
            procs_per_board: Some(16.0),
            time_scale: 0.5,
            skip: Duration::from_secs(150),
            limit: Some(2),
            estimate: SwfEstimate::Actual,
            keepalive: Some(Duration::from_secs(60)),
            ..spec(path.clone())
        };
        let (jobs, report) = generate(&s, Duration::from_secs(86_400), &machine(2, 2)).unwrap();
        assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![2, 5]);
        assert_eq!(jobs[0].request.shape, Shape::AnyBoard);
        assert_eq!(jobs[1].submit, Instant::from_secs(30));
        assert_eq!(jobs[1].runtime, Duration::from_secs(5));
        assert_eq!(jobs[1].estimate, Some(Duration::from_secs(5)));
        assert_eq!(jobs[1].keepalive, Some(Duration::from_secs(60)));
        assert!(report.skipped.contains(&("submitted before `skip`".to_string(), 1)));
        assert!(report.skipped.contains(&("beyond `limit`".to_string(), 1)));
        let (jobs, report) = generate(&spec(path), Duration::from_secs(3600), &machine(2, 2)).unwrap();
        assert_eq!(jobs.len(), 3);
        assert!(report.skipped.contains(&("submitted after the horizon".to_string(), 1)));
    }

    #[test]
    fn malformed_lines_name_the_line_and_field() {
        let ok = "1 0 0 10 1 -1 -1 1 10 -1 1 1 1 -1 0 -1 -1 -1";
        let cases = [
            (
                format!("; MaxProcs: many\n{ok}\n"),
                1,
                Some("MaxProcs"),
                "must be an integer",
            ),
            (format!("{ok}\n1 0 0 10\n"), 2, None, "expected 18 fields, got 4"),
            (
                format!("{ok}\n2 0 0 ten 1 -1 -1 1 10 -1 1 1 1 -1 0 -1 -1 -1\n"),
                2,
                Some("run time (field 4)"),
                "not a number",
            ),
            (
                format!("{ok}\n2 0 0 10 1.5 -1 -1 1 10 -1 1 1 1 -1 0 -1 -1 -1\n"),
                2,
                Some("allocated processors (field 5)"),
                "not an integer",
            ),
            (
                format!(";\n\n{ok}\n{ok}\n"),
                4,
                Some("job number (field 1)"),
                "duplicate job number",
            ),
            (
                "3 -5 0 10 1 -1 -1 1 10 -1 1 1 1 -1 0 -1 -1 -1\n".to_string(),
                1,
                Some("submit time (field 2)"),
                "must not be negative",
            ),
            (
                "3 0 0 10 1 -1 -1 1 10 -1 1 x 1 -1 0 -1 -1 -1\n".to_string(),
                1,
                Some("user ID (field 12)"),
                "not a number",
            ),
        ];
        for (text, line, field, msg) in cases {
            let e = parse("bad.swf", &text).unwrap_err();
            assert_eq!(e.file, "bad.swf");
            assert_eq!(e.line, Some(line), "{e}");
            assert_eq!(e.field.as_deref(), field, "{e}");
            assert!(e.message.contains(msg), "{e}");
        }
        // Fractional times are fine.
        let log = parse("f.swf", "1 0.5 0 10.25 1 -1 -1 1 10 -1 1 1 1 -1 0 -1 -1 -1\n").unwrap();
        assert_eq!(log.jobs[0].run_time, 10.25);
        // Through generate, the error names the file.
        let path = write("bad.swf", "1 0 0 10\n");
        let e = generate(&spec(path.clone()), Duration::MAX, &machine(1, 1)).unwrap_err();
        assert_eq!(e.file, path.display().to_string());
    }

    /// The real logs: KTH (vendored in `data/swf`, always checked) and the other two from
    /// `shared/data/swf` beside the repository (not in it; skipped if absent).
    #[test]
    fn the_archive_logs_load() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let shared = root.join("../shared/data/swf");
        let logs = [
            (root.join("data/swf"), "KTH-SP2-1996-2.1-cln.swf.gz", 28_476, 100),
            (shared.clone(), "LANL-CM5-1994-4.1-cln.swf.gz", 122_060, 1024),
            (shared, "NASA-iPSC-1993-3.1-cln.swf.gz", 18_239, 128),
        ];
        for (dir, name, lines, max_procs) in logs {
            let path = dir.join(name);
            if !path.exists() && !name.starts_with("KTH") {
                eprintln!("skipping {name}: not found at {}", path.display());
                continue;
            }
            let text = input::read_text(&path).unwrap();
            let log = parse(name, &text).unwrap();
            assert_eq!(log.jobs.len(), lines, "{name}");
            assert_eq!(log.header.max_procs(), Some(max_procs));
            // SpiNNaker1M-sized: 20 x 20 triads.
            let m = machine(20, 20);
            let (jobs, report) = generate(&spec(path), Duration::MAX, &m).unwrap();
            eprintln!("{name}: {report}");
            assert_eq!(jobs.len() as u64 + report.skipped_total(), lines as u64);
            assert!(jobs.windows(2).all(|w| w[0].submit <= w[1].submit));
            assert!(jobs.len() > lines * 9 / 10, "{name}: {report}");
        }
    }
}
