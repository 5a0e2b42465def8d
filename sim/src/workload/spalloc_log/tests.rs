//! The job-log reader: the reference's example log, id inference, every message form, errors,
//! rotated files, and a log written by spinnbed's own spalloc server.

use super::*;
use crate::quantity::dist::{ByteSize, Dist};
use spinnbed_core::alloc::Shape;
use spinnbed_core::geometry::Board;

fn spec(path: &Path) -> SpallocLogSpec {
    SpallocLogSpec {
        path: path.to_path_buf(),
        time_scale: 1.0,
        load_scale: 1.0,
        limit: None,
        keepalive: None,
        estimate: TraceEstimate::None,
        data_in: Dist::fixed(ByteSize(0)),
        data_out: Dist::fixed(ByteSize(0)),
    }
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/spalloc_jobs.example.log")
}

const DAY: Duration = Duration::from_secs(86_400);
/// How long a job that never ends holds boards.
const HOLD: Duration = Duration::from_secs(2 * 86_400);

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn generate_text(text: &str) -> Result<(Vec<WorkloadJob>, WorkloadReport), InputError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spalloc_jobs.log");
    std::fs::write(&path, text).unwrap();
    generate(&spec(&path), DAY, HOLD, &["m"])
}

/// The reference's own example (facts §4): every job comes back with the life the log tells.
#[test]
fn the_reference_example_log_replays_job_by_job() {
    let (jobs, report) = generate(&spec(&example()), DAY, HOLD, &["spin20"]).unwrap();
    assert_eq!(report.jobs, 10);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(
        jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    let j = |id: u64| &jobs[id as usize - 1];
    // Job 1: any board, allocated at once, destroyed 11:21.944 later.
    assert_eq!(j(1).submit, Instant::ZERO);
    assert_eq!(j(1).request.shape, Shape::AnyBoard);
    assert_eq!(j(1).request.max_dead_boards, Some(0));
    assert_eq!(
        (j(1).owner.as_str(), j(1).keepalive),
        ("user1", Some(Duration::from_secs(60)))
    );
    assert_eq!(j(1).runtime, ms(681_944));
    assert_eq!((j(1).cancel_after, j(1).last_keepalive), (None, None));
    // Job 2: a triad, reset by its client, destroyed after 674.644 s.
    assert_eq!(j(2).submit, Instant::from_millis(37_203));
    assert_eq!(j(2).request.shape, Shape::Triads { w: 1, h: 1 });
    assert_eq!(j(2).runtime, ms(674_644));
    // Job 3: a specific board of spin20, timed out 174.508 s after creation.
    assert_eq!(
        j(3).request.shape,
        Shape::Board {
            board: Board::new(3, 2, 1)
        }
    );
    assert_eq!(j(3).machine.as_deref(), Some("spin20"));
    assert_eq!(j(3).last_keepalive, Some(Duration(ms(114_508).0 - 1)));
    assert_eq!(j(3).runtime, ms(174_508));
    // Job 4: cancelled at creation: it stays in, running for nothing.
    assert_eq!(j(4).request.shape, Shape::Triads { w: 25, h: 25 });
    assert_eq!((j(4).runtime, j(4).cancel_after), (Duration::ZERO, None));
    // Job 5: a torus, destroyed by its client while queued, 56.008 s after creation.
    assert_eq!(j(5).request.shape, Shape::Triads { w: 20, h: 20 });
    assert!(j(5).request.require_torus);
    assert_eq!((j(5).cancel_after, j(5).runtime), (Some(ms(56_008)), Duration::ZERO));
    // Job 6: no keepalive, the default tag, allocated when job 5 went.
    assert_eq!(j(6).keepalive, None);
    assert_eq!(j(6).tags, Some(vec!["default".to_string()]));
    assert_eq!(j(6).runtime, ms(403_540));
    assert_eq!(j(6).cancel_after, None);
    // Job 7: failed on its BMP 10 ms after allocation.
    assert_eq!(j(7).runtime, ms(10));
    // Job 8: two boards; job 9: 2 x 1 triads; job 10: a 120 s keepalive.
    assert_eq!(j(8).request.shape, Shape::Boards { n: 2, min_ratio: 0.333 });
    assert_eq!(j(8).runtime, ms(161_814));
    assert_eq!(j(9).request.shape, Shape::Triads { w: 2, h: 1 });
    assert_eq!(j(9).runtime, ms(105_711));
    assert_eq!(j(10).keepalive, Some(Duration::from_secs(120)));
    assert_eq!(j(10).runtime, ms(95_207));
    assert_eq!(j(10).submit, Instant::from_millis(771_357));
    assert!(jobs.windows(2).all(|w| w[0].submit <= w[1].submit));
    assert!(jobs.iter().all(|j| j.estimate.is_none() && j.lapse_after.is_none()));
    let notes = report.notes.join("\n");
    assert!(notes.contains("1 jobs were powered off by their clients"), "{notes}");
    assert!(notes.contains("1 jobs failed live (a BMP gave up)"), "{notes}");
    assert!(!notes.contains("machines the scenario does not have"), "{notes}");
    // On a scenario without spin20, job 3 is said to be unrunnable.
    let (_, report) = generate(&spec(&example()), DAY, HOLD, &["other"]).unwrap();
    assert!(
        report.notes.iter().any(|n| n.contains("\"spin20\"")),
        "{:?}",
        report.notes
    );
}

#[test]
fn keys_scale_limit_and_override() {
    let mut s = spec(&example());
    s.time_scale = 0.5;
    s.limit = Some(4);
    s.keepalive = Some(None);
    s.estimate = TraceEstimate::Actual;
    let (jobs, report) = generate(&s, DAY, HOLD, &["spin20"]).unwrap();
    assert_eq!(jobs.len(), 4);
    assert_eq!(report.skipped, vec![(OVER.to_string(), 6)]);
    assert_eq!(jobs[1].submit, Instant(18_601_500));
    assert_eq!(jobs[0].runtime, Duration(340_972_000));
    assert!(
        jobs.iter()
            .all(|j| j.keepalive.is_none() && j.estimate == Some(j.runtime))
    );
    // Timed out, but without a keepalive it cannot time out in the replay.
    assert_eq!(jobs[2].last_keepalive, None);
    // A horizon cuts the log.
    let (jobs, report) = generate(&spec(&example()), Duration::from_secs(300), DAY, &["spin20"]).unwrap();
    assert_eq!(jobs.len(), 4);
    assert_eq!(report.skipped, vec![(LATE.to_string(), 6)]);
    // Another keepalive moves the last keepalive so that the job still times out when it did.
    let mut s = spec(&example());
    s.keepalive = Some(Some(Duration::from_secs(10)));
    let (jobs, _) = generate(&s, DAY, DAY, &["spin20"]).unwrap();
    assert_eq!(jobs[2].last_keepalive, Some(Duration(ms(164_508).0 - 1)));
}

/// Ids are consecutive per create within a server run, anchored by allocations and
/// cancellations in the create's millisecond; a lower anchor than expected is a cold start.
#[test]
fn ids_are_inferred_from_anchors() {
    let ids = |n, a: &[(usize, u64)]| infer_ids(n, a);
    assert_eq!(ids(3, &[]), (vec![None; 3], BTreeSet::new()));
    // Numbered back and forth from one anchor.
    assert_eq!(
        ids(4, &[(2, 7)]),
        (vec![Some(5), Some(6), Some(7), Some(8)], BTreeSet::new())
    );
    // A cold start: the anchor at create 5 is job 2, so create 4 was job 1.
    let (v, starts) = ids(7, &[(1, 11), (5, 2)]);
    assert_eq!(
        v,
        vec![Some(10), Some(11), Some(12), Some(13), Some(1), Some(2), Some(3)]
    );
    assert_eq!(starts, BTreeSet::from([4]));
    // Creates missing from the log: those between cannot be numbered.
    let (v, starts) = ids(4, &[(0, 5), (3, 20)]);
    assert_eq!(v, vec![Some(5), None, None, Some(20)]);
    assert!(starts.is_empty());
    // Ids went back, but not to a fresh start: a restart somewhere before the anchor.
    let (v, starts) = ids(3, &[(0, 5), (2, 5)]);
    assert_eq!(v, vec![Some(5), None, Some(5)]);
    assert_eq!(starts, BTreeSet::from([2]));
    // Before the first anchor, down to a fresh start.
    let (v, starts) = ids(4, &[(3, 2)]);
    assert_eq!(v, vec![None, None, Some(1), Some(2)]);
    assert_eq!(starts, BTreeSet::from([2]));
}

const KW: &str = "{'owner': 'u', 'keepalive': 60.0, 'machine': None, 'tags': None, 'min_ratio': 0.333, \
                  'max_dead_boards': 0, 'max_dead_links': None, 'require_torus': False}";

fn create(t: &str, args: &str, host: &str) -> String {
    format!("2020-03-01 10:00:{t}: create_job({args},{KW}) from {host}\n")
}

fn alloc(t: &str, job: u64, host: &str) -> String {
    format!(
        "2020-03-01 10:00:{t}: power_job({job},On) from {host}\n\
         2020-03-01 10:00:{t}: power(0, True) on BMP 10.0.0.0 for job {job}\n\
         2020-03-01 10:00:{t}: link(0, Links.west, False) on BMP 10.0.0.0 for job {job}\n"
    )
}

fn shutdown(t: &str, job: u64, host: &str) -> String {
    format!("2020-03-01 10:00:{t}: completed shutdown of job {job} (owner-host: {host})\n")
}

/// A cold start restarts ids at 1; jobs alive then end with their server run; later runs'
/// ids are offset to stay unique. Python 3.10's `Links.west` link lines are read too.
#[test]
fn a_cold_start_restarts_ids_and_ends_the_old_runs_jobs() {
    let mut log = String::new();
    log += &create("00,000", "()", "h1");
    log += &alloc("00,000", 1, "h1");
    log += &create("01,000", "()", "h2");
    log += &alloc("01,000", 2, "h2");
    log += "2020-03-01 10:00:02,000: destroy_job(1) from h1\n";
    log += &shutdown("02,000", 1, "h1");
    // The server is killed and cold started: job 2 is never heard of again.
    log += &create("10,000", "(1, 1)", "h3");
    log += &alloc("10,000", 1, "h3");
    log += &create("11,000", "()", "h4");
    log += "2020-03-01 10:00:12,500: destroy_job(1,done) from h3\n";
    log += &shutdown("12,500", 1, "h3");
    let (jobs, report) = generate_text(&log).unwrap();
    assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![1, 2, 11, 12]);
    assert_eq!(jobs[0].runtime, Duration::from_secs(2));
    // Job 2 of the first run held its board until the last line of that run.
    assert_eq!(jobs[1].runtime, Duration::from_secs(1));
    assert_eq!(jobs[2].runtime, ms(2_500));
    // The last job never got boards and the log ends: it would hold them past the run.
    assert_eq!(jobs[3].runtime, HOLD);
    let notes = report.notes.join("\n");
    assert!(notes.contains("cold started 1 times"), "{notes}");
    assert!(notes.contains("offset by multiples of 10"), "{notes}");
    assert!(notes.contains("1 jobs still held boards"), "{notes}");
    assert!(notes.contains("1 jobs were still queued when the log ended"), "{notes}");
}

#[test]
fn uninferable_and_refused_creates_are_skipped_and_counted() {
    let mut log = String::new();
    // Queued, never allocated, nothing in its millisecond: no anchor anywhere.
    log += &create("00,000", "()", "h1");
    log += &create("01,000", "(2, 2)", "h1");
    let (jobs, report) = generate_text(&log).unwrap();
    assert!(jobs.is_empty());
    assert_eq!(report.skipped, vec![(NO_ID.to_string(), 2)]);
    // A create the server refused still took its id.
    let mut log = String::new();
    log += "2020-03-01 10:00:00,000: create_job((),{'owner': 'u', 'machine': 'm', 'tags': {'a'}}) from h1\n";
    log += "2020-03-01 10:00:00,500: create_job(('x',),{'owner': 'u'}) from h1\n";
    log += &create("01,000", "()", "h1");
    log += &alloc("01,000", 3, "h1");
    let (jobs, report) = generate_text(&log).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].id, 3);
    assert_eq!(jobs[0].submit, Instant::from_secs(1));
    assert_eq!(report.skipped, vec![(REFUSED.to_string(), 2)]);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("line 1: Only one of machine and tags")),
        "{:?}",
        report.notes
    );
    // A spurious power_job from another host in the create's millisecond is no anchor.
    let mut log = create("00,000", "()", "h1");
    log += &alloc("00,000", 9, "h2");
    let (jobs, _) = generate_text(&log).unwrap();
    assert!(jobs.is_empty());
}

/// Reasons are free text: " from ", ")" and line breaks inside them do not confuse the reader.
#[test]
fn destroy_reasons_hold_anything() {
    let mut log = String::new();
    log += &create("00,000", "()", "h1");
    log += &alloc("00,000", 1, "h1");
    log += &create("01,000", "(3,)", "h2");
    log += "2020-03-01 10:00:02,000: destroy_job(2,gone (from me) from h1) from\nanother line)) from h2\n";
    log += &shutdown("02,000", 2, "h2");
    log += "2020-03-01 10:00:03,000: destroy_job(1,Job timed out.) from h1\n";
    log += "2020-03-01 10:00:03,000: power(0, False) on BMP 10.0.0.0 for job 1\n";
    log += &shutdown("03,000", 1, "h1");
    let (jobs, _) = generate_text(&log).unwrap();
    // Job 2 was destroyed by its client while queued.
    assert_eq!(jobs[1].cancel_after, Some(Duration::from_secs(1)));
    // "Job timed out." from a client is just a reason: no timeout.
    assert_eq!(jobs[0].last_keepalive, None);
    assert_eq!(jobs[0].runtime, Duration::from_secs(3));
    assert_eq!(jobs[1].request.shape, Shape::Boards { n: 3, min_ratio: 0.333 });
}

#[test]
fn python_literals_in_create_lines() {
    let log = "2020-03-01 10:00:00,000: create_job((1, 2),{'owner': \"o'brien\", 'keepalive': nan, \
               'tags': set(), 'min_ratio': inf, 'max_dead_links': 3, 'require_torus': 1}) from None\n\
               2020-03-01 10:00:00,000: power_job(1,On) from None\n\
               2020-03-01 10:00:00,000: power(0, True) on BMP 10.0.0.0 for job 1\n";
    let (jobs, _) = generate_text(log).unwrap();
    let j = &jobs[0];
    assert_eq!(j.owner, "o'brien");
    assert_eq!(j.keepalive, None);
    assert_eq!(j.tags, Some(vec![]));
    assert_eq!(j.request.shape, Shape::Triads { w: 1, h: 2 });
    assert_eq!((j.request.max_dead_links, j.request.require_torus), (Some(3), true));
    // The job never ended: it holds its board until the end of the log.
    assert_eq!(j.runtime, Duration::ZERO);
}

#[test]
fn errors_name_the_file_line_and_problem() {
    let err = |text: &str| generate_text(text).unwrap_err();
    // A log from before 2017-11: no timestamps.
    let e = err("create_job((),{'owner': 'u'}) from h\n");
    assert_eq!(e.line, Some(1));
    assert!(e.file.ends_with("spalloc_jobs.log"), "{e}");
    assert!(e.message.contains("before spalloc-server added them"), "{e}");
    // A line without a timestamp in the middle (not inside a destroy reason).
    let e = err(&format!("{}power_job(1,On) from h\n", create("00,000", "()", "h")));
    assert_eq!(e.line, Some(2));
    assert!(e.message.contains("no timestamp"), "{e}");
    // Unknown messages.
    let e = err(&format!(
        "{}2020-03-01 10:00:00,000: reticulate(splines)\n",
        create("00,000", "()", "h")
    ));
    assert_eq!(e.line, Some(2));
    assert!(e.message.contains("not a job-log message"), "{e}");
    // A create that cannot be read says where.
    let e = err("2020-03-01 10:00:00,000: create_job((1, 2 3),{'owner': 'u'}) from h\n");
    assert_eq!(e.line, Some(1));
    assert!(
        e.message
            .contains("create_job: cannot read its arguments: expected ',' or ')' (at character 18 of the message)"),
        "{e}"
    );
    let e = err("2020-03-01 10:00:00,000: create_job((1, 2,{'owner': 'u'}) from h\n");
    assert!(e.message.contains("expected ',' between the arguments"), "{e}");
    let e = err("2020-03-01 10:00:00,000: create_job((),{'owner': 'u'} from h\n");
    assert!(e.message.contains("expected `) from host`"), "{e}");
    let e = err("2020-03-01 10:00:00,000: create_job([],{'owner': 'u'}) from h\n");
    assert!(e.message.contains("should be a tuple"), "{e}");
    // Malformed per-board lines.
    let e = err("2020-03-01 10:00:00,000: power(0, Maybe) on BMP 10.0.0.0 for job 1\n");
    assert!(e.message.contains("a power line should be"), "{e}");
    let e = err("2020-03-01 10:00:00,000: link(0, Links.up, False) on BMP 10.0.0.0 for job 1\n");
    assert!(e.message.contains("a link line should be"), "{e}");
    let e = err("2020-03-01 10:00:00,000: completed shutdown of job x\n");
    assert!(e.message.contains("a shutdown line should be"), "{e}");
    let e = err("2020-03-01 10:00:00,000: power_job(1,Sideways) from h\n");
    assert!(e.message.contains("a power_job line should be"), "{e}");
    // A directory without logs; a path that does not exist.
    let dir = tempfile::tempdir().unwrap();
    let e = generate(&spec(dir.path()), DAY, DAY, &[]).unwrap_err();
    assert!(e.message.contains("no spalloc_jobs.log"), "{e}");
    let e = generate(&spec(&dir.path().join("nope")), DAY, DAY, &[]).unwrap_err();
    assert!(e.message.contains("cannot read"), "{e}");
}

/// A directory: the rotated files in date order, then the live one; other files left out.
#[test]
fn a_directory_of_rotated_logs_reads_like_one_log() {
    let text = std::fs::read_to_string(example()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let dir = tempfile::tempdir().unwrap();
    let part = |r: std::ops::Range<usize>| lines[r].iter().map(|l| format!("{l}\n")).collect::<String>();
    std::fs::write(dir.path().join("spalloc_jobs.log.2019-01-13"), part(0..50)).unwrap();
    // Gzipped rotated files are read too.
    {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(part(50..100).as_bytes()).unwrap();
        std::fs::write(dir.path().join("spalloc_jobs.log.2019-01-14.gz"), gz.finish().unwrap()).unwrap();
    }
    std::fs::write(dir.path().join("spalloc_jobs.log"), part(100..lines.len())).unwrap();
    std::fs::write(dir.path().join("spalloc_jobs.log.unknown"), "junk\n").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "junk\n").unwrap();
    let (files, ignored) = log_files(dir.path()).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "spalloc_jobs.log.2019-01-13",
            "spalloc_jobs.log.2019-01-14.gz",
            "spalloc_jobs.log"
        ]
    );
    assert_eq!(ignored, ["spalloc_jobs.log.unknown"]);
    let (whole, _) = generate(&spec(&example()), DAY, DAY, &["spin20"]).unwrap();
    let (split, report) = generate(&spec(dir.path()), DAY, DAY, &["spin20"]).unwrap();
    assert_eq!(split, whole);
    assert!(report.notes[0].starts_with("read 3 log files"), "{:?}", report.notes);
    // Errors name the file they are in.
    std::fs::write(
        dir.path().join("spalloc_jobs.log"),
        "2019-01-14 10:00:00,000: nonsense\n",
    )
    .unwrap();
    let e = generate(&spec(dir.path()), DAY, DAY, &[]).unwrap_err();
    assert!(e.file.ends_with("/spalloc_jobs.log") && e.line == Some(1), "{e}");
}

#[test]
fn local_times_that_go_back_are_held() {
    let mut log = String::new();
    log += "2020-10-25 01:59:59,000: create_job((),{'owner': 'u'}) from h\n";
    log += "2020-10-25 01:59:59,000: power_job(1,On) from h\n";
    log += "2020-10-25 01:59:59,000: power(0, True) on BMP 10.0.0.0 for job 1\n";
    // Clocks go back an hour.
    log += "2020-10-25 01:00:30,000: destroy_job(1) from h\n";
    log += "2020-10-25 01:00:30,000: completed shutdown of job 1 (owner-host: h)\n";
    let (jobs, report) = generate_text(&log).unwrap();
    assert_eq!(jobs[0].runtime, Duration::ZERO);
    assert!(
        report.notes.iter().any(|n| n.contains("2 timestamps went back")),
        "{:?}",
        report.notes
    );
    assert_eq!(
        split_stamp("2019-01-14 09:02:11,417: x"),
        Some((1_547_456_531_417_000, "x"))
    );
    assert_eq!(split_stamp("2019-13-14 09:02:11,417: x"), None);
    assert_eq!(split_stamp("2019-01-14 09:02:11.417: x"), None);
    assert_eq!(split_stamp("2019-01-14 09:02"), None);
}

/// What spinnbed's own spalloc server logs (`sim serve`, with the reference's timestamps) reads
/// back: the jobs its clients and simulated users created, with their lives.
#[test]
fn a_log_written_by_spinnbeds_spalloc_server_reads_back() {
    use spinnbed_core::geometry::{Machine, MachineSpec};
    use spinnbed_core::reason::DestroyReason;
    use spinnbed_core::service::{NewJob, Service, ServiceConfig};
    use spinnbed_spalloc::joblog::JobLog;
    use spinnbed_spalloc::server::{ClientId, Server};
    // 2020-03-01 10:00:00 as if UTC, in µs.
    let t0 = Instant(1_583_056_800_000_000);
    let mut svc = Service::new(ServiceConfig::default());
    svc.add_machine(t0, Machine::new(MachineSpec::new("m", 2, 2)).unwrap())
        .unwrap();
    let mut server = Server::new();
    server.connect(ClientId(1), "192.0.2.1");
    let mut log = JobLog::new(true);
    let mut text = String::new();
    let stamp = |t: Instant| {
        let ms = t.as_micros() / 1000 - 1_583_056_800_000;
        format!(
            "2020-03-01 10:{:02}:{:02},{:03}: ",
            ms / 60_000,
            ms / 1000 % 60,
            ms % 1000
        )
    };
    let mut pump = |now: Instant, svc: &mut Service, server: &mut Server, log: &mut JobLog, done: bool| {
        while let Some(l) = server.poll_log() {
            log.request(l);
        }
        loop {
            while let Some(ev) = svc.poll_event() {
                log.on_event(&ev, svc);
            }
            let batches: Vec<_> = std::iter::from_fn(|| svc.poll_bmp_batch()).collect();
            if batches.is_empty() || !done {
                break;
            }
            for b in batches {
                svc.handle_bmp_batch_done(now, b.id, Ok(())).unwrap();
            }
        }
        while let Some(m) = log.poll() {
            text += &stamp(now);
            text += &m;
            text.push('\n');
        }
    };
    let send = |now: Instant, line: &str, svc: &mut Service, server: &mut Server| {
        server.handle_line(now, ClientId(1), line.as_bytes(), svc).unwrap();
    };
    let at = |s: u64| t0 + Duration::from_secs(s);
    send(
        at(1),
        r#"{"command": "create_job", "args": [1, 1], "kwargs": {"owner": "alice", "keepalive": 30.5, "tags": ["default"]}}"#,
        &mut svc,
        &mut server,
    );
    pump(at(1), &mut svc, &mut server, &mut log, true);
    // A simulated user's job (no host), queued behind alice's triad on this 4-triad machine.
    let new = NewJob {
        owner: "sim".into(),
        keepalive: None,
        machine: None,
        tags: None,
        request: Request::new(Shape::Triads { w: 2, h: 2 }),
        estimate: None,
        original: None,
    };
    let sim = svc.create_job(at(2), None, new).unwrap();
    pump(at(2), &mut svc, &mut server, &mut log, true);
    send(
        at(3),
        r#"{"command": "create_job", "args": [9, 9], "kwargs": {"owner": "bob"}}"#,
        &mut svc,
        &mut server,
    );
    pump(at(3), &mut svc, &mut server, &mut log, true);
    send(
        at(40),
        r#"{"command": "destroy_job", "args": [1], "kwargs": {"reason": "done ) from x"}}"#,
        &mut svc,
        &mut server,
    );
    pump(at(40), &mut svc, &mut server, &mut log, true);
    // Boards come back 30 s after power-off; the simulated user's job then runs 5 s.
    svc.handle_timeout(at(71));
    pump(at(71), &mut svc, &mut server, &mut log, true);
    svc.destroy_job(at(76), sim, DestroyReason::requested("Job finished by its user."))
        .unwrap();
    pump(at(76), &mut svc, &mut server, &mut log, true);
    let (jobs, report) = generate_text(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(report.skipped.is_empty(), "{report}\n{text}");
    assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![1, 2, 3], "{text}");
    assert_eq!(jobs[0].owner, "alice");
    assert_eq!(jobs[0].keepalive, Some(ms(30_500)));
    assert_eq!(jobs[0].tags, Some(vec!["default".to_string()]));
    assert_eq!(jobs[0].runtime, Duration::from_secs(39));
    assert_eq!((jobs[1].owner.as_str(), jobs[1].keepalive), ("sim", None));
    assert_eq!(jobs[1].request.shape, Shape::Triads { w: 2, h: 2 });
    assert_eq!(jobs[1].submit, Instant::from_secs(1));
    assert_eq!(jobs[1].runtime, Duration::from_secs(5));
    assert_eq!(jobs[1].cancel_after, None);
    assert_eq!(jobs[2].request.shape, Shape::Triads { w: 9, h: 9 });
    assert_eq!(jobs[2].runtime, Duration::ZERO);
}
