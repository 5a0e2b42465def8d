//! The journal workload: a live session recorded against the service replays through `sim run`'s
//! machinery to the same allocations at the same times; the same journal under EASY
//! backfilling is a what-if; bad journals are errors (or, for a torn tail, a note).

use super::*;
use crate::run::{RunSpec, simulate};
use crate::scenario::{self, Scenario};
use crate::world::{Outcome, RunResult};
use rand::Rng;
use spinnbed_core::alloc::{Request, Shape};
use spinnbed_core::geometry::Board;
use spinnbed_core::reason::BmpFailure;
use spinnbed_core::service::Service;
use spinnbed_spalloc::journal::{self, Entry, Header};

/// Two machines: "big" (3 x 2 triads, 18 boards) and "small" (1 x 2, 6 boards, also tagged
/// "small"), on their own addresses.
const MACHINES: &str = r#"
[[machine]]
name = "big"
width = 3
height = 2

[[machine]]
name = "small"
tags = ["default", "small"]
width = 1
height = 2
ip = { base = "10.2.0.0" }
"#;

fn scenario_text(workload: &str, policy: &str) -> String {
    format!(
        "[run]\nname = \"replay\"\nhorizon = \"6h\"\ndrain_limit = \"1d\"\n{MACHINES}\n[workload]\n{workload}\n\n[policy]\n{policy}\n"
    )
}

fn parse(dir: &Path, text: &str) -> Scenario {
    scenario::parse("replay.toml", text, dir).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// When the live session starts (a live server's clock is the Unix time).
const T0: Instant = Instant(1_700_000_000_000_000);

/// What a live client does with its job.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// Uses its boards this long once they are ready, then destroys the job.
    Complete(Duration),
    /// Gives up this long after creating the job if it is still queued (else as `Complete`).
    Withdraw(Duration, Duration),
    /// Sends its last keepalive this long after creating the job, then goes silent.
    Lapse(Duration),
}

/// One client job of the live session, and what happened to it.
#[derive(Debug, Clone, Default)]
struct LiveJob {
    sid: Option<JobId>,
    created: Option<Instant>,
    allocated: Option<Instant>,
    machine: Option<String>,
    boards: Vec<Board>,
    ready: Option<Instant>,
    end: Option<Instant>,
    reason: Option<JobEnd>,
}

#[derive(Debug, Clone, Copy)]
enum Act {
    Create(usize),
    Destroy(usize),
    Withdraw(usize),
}

/// A live server in miniature: clients create jobs at spread-out times, BMP batches complete
/// after varied delays (some fail), clients destroy their jobs after varied runtimes or while
/// queued, or go silent and their jobs time out; the service records every input.
struct Live {
    svc: Service,
    rng: rand_chacha::ChaCha8Rng,
    plans: Vec<Plan>,
    jobs: Vec<LiveJob>,
    by_sid: BTreeMap<JobId, usize>,
    acts: BTreeMap<(Instant, u64), Act>,
    bmp: BTreeMap<(Instant, u64), (BatchId, Result<(), BmpFailure>)>,
    seq: u64,
    failures: u64,
}

impl Live {
    fn below(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n
    }

    fn at(&mut self, t: Instant, act: Act) {
        self.seq += 1;
        self.acts.insert((t, self.seq), act);
    }

    /// Takes the service's batches and events after an input.
    fn drain(&mut self, now: Instant) {
        while let Some(b) = self.svc.poll_bmp_batch() {
            // 50 ms to 8 s, to the microsecond; about one batch in sixteen fails.
            let delay = Duration(50_000 + self.below(8_000_000));
            let result = if self.below(16) == 0 {
                self.failures += 1;
                Err(BmpFailure::RequestsFailed { bmp: b.bmp })
            } else {
                Ok(())
            };
            self.seq += 1;
            self.bmp.insert((now + delay, self.seq), (b.id, result));
        }
        while let Some(ev) = self.svc.poll_event() {
            let Some(&i) = ev.job().and_then(|j| self.by_sid.get(&j)) else {
                continue;
            };
            match ev {
                ServiceEvent::Allocated { machine, boards, .. } => {
                    let j = &mut self.jobs[i];
                    j.allocated = Some(now);
                    j.machine = Some(machine);
                    j.boards = boards;
                }
                ServiceEvent::Ready { .. } if self.jobs[i].ready.is_none() => {
                    self.jobs[i].ready = Some(now);
                    match self.plans[i] {
                        Plan::Complete(run) | Plan::Withdraw(_, run) => self.at(now + run, Act::Destroy(i)),
                        Plan::Lapse(_) => {}
                    }
                }
                ServiceEvent::Destroyed { reason, .. } => {
                    self.jobs[i].end = Some(now);
                    self.jobs[i].reason = Some(reason);
                }
                _ => {}
            }
        }
    }

    fn act(&mut self, now: Instant, act: Act) {
        match act {
            Act::Create(i) => self.create(now, i),
            Act::Destroy(i) | Act::Withdraw(i) => {
                let j = &self.jobs[i];
                let queued = j.allocated.is_none();
                if let (Some(sid), None) = (j.sid, j.end)
                    && (matches!(act, Act::Destroy(_)) || queued)
                {
                    let why = if queued { "tired of waiting" } else { "done" };
                    self.svc.destroy_job(now, sid, DestroyReason::requested(why)).unwrap();
                }
            }
        }
    }

    fn create(&mut self, now: Instant, i: usize) {
        // Some requests are refused before they are jobs (they still use up an id).
        if i % 17 == 3 {
            self.svc.refuse_job(now, Some("10.0.0.9"));
            return;
        }
        let shape = match self.below(12) {
            0..=3 => Shape::AnyBoard,
            4..=5 => Shape::Boards {
                n: 2 + self.below(8) as u32,
                min_ratio: 0.333,
            },
            6..=8 => Shape::Triads {
                w: 1 + self.below(3) as u32,
                h: 1 + self.below(2) as u32,
            },
            9 => Shape::Board {
                board: Board::new(self.below(3) as u16, self.below(2) as u16, self.below(3) as u8),
            },
            10 => Shape::Triads { w: 3, h: 2 },
            _ => Shape::Triads { w: 5, h: 5 },
        };
        let mut request = Request::new(shape);
        if i % 19 == 5 {
            // Refused for its contents by the service itself.
            request.shape = Shape::Boards { n: 2, min_ratio: -1.0 };
        }
        let machine = matches!(shape, Shape::Board { .. }).then(|| "big".to_string());
        let tags = (machine.is_none() && self.below(8) == 0).then(|| vec!["small".to_string()]);
        let plan = self.plans[i];
        let keepalive = match plan {
            Plan::Lapse(_) => Some(Duration::from_secs(60)),
            _ if self.below(3) == 0 => None,
            _ => Some(Duration::from_secs(30 + self.below(60))),
        };
        let new = NewJob {
            owner: format!("user{}", i % 5),
            keepalive,
            machine,
            tags,
            request,
            estimate: None,
            original: None,
        };
        // Every fifth job is one of the server's own simulated users (no client host).
        let host = (!i.is_multiple_of(5)).then(|| format!("192.0.2.{}", i % 7));
        let Ok(sid) = self.svc.create_job(now, host.as_deref(), new) else {
            return;
        };
        self.jobs[i].sid = Some(sid);
        self.jobs[i].created = Some(now);
        self.by_sid.insert(sid, i);
        // A job no machine could ever hold is destroyed as it is made: its keepalive is moot.
        let lease = match plan {
            Plan::Lapse(last) => now + last,
            // Keepalives keep coming (they are not journalled, only the expiries they prevent).
            _ => Instant::MAX,
        };
        if self.svc.job(sid).is_some() {
            self.svc.job_keepalive_lease(sid, lease).unwrap();
        }
        if let Plan::Withdraw(after, _) = plan {
            self.at(now + after, Act::Withdraw(i));
        }
    }

    /// Runs `n` jobs to the end (or to `stop`), returning the journal's inputs.
    fn run(policy: &ServicePolicy, machines: &[&Machine], n: usize, stop: Instant) -> (Live, Vec<ServiceInput>) {
        let mut svc = policy.empty_service();
        svc.record_inputs(true);
        for m in machines {
            svc.add_machine(T0, (*m).clone()).unwrap();
        }
        let mut live = Live {
            svc,
            rng: crate::engine::stream(42, "live session"),
            plans: Vec::new(),
            jobs: vec![LiveJob::default(); n],
            by_sid: BTreeMap::new(),
            acts: BTreeMap::new(),
            bmp: BTreeMap::new(),
            seq: 0,
            failures: 0,
        };
        let mut t = T0;
        for i in 0..n {
            t += Duration(1 + live.below(45_000_000));
            let runtime = Duration(1_000_000 + live.below(900_000_000));
            let plan = match live.below(10) {
                0..=5 => Plan::Complete(runtime),
                6..=7 => Plan::Withdraw(Duration(live.below(300_000_000)), runtime),
                _ => Plan::Lapse(Duration(live.below(600_000_000))),
            };
            live.plans.push(plan);
            live.at(t, Act::Create(i));
        }
        loop {
            let next = [
                live.acts.keys().next().map(|(t, _)| *t),
                live.bmp.keys().next().map(|(t, _)| *t),
                live.svc.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(now) = next.filter(|t| *t <= stop) else { break };
            while let Some(e) = live.bmp.first_entry()
                && e.key().0 <= now
            {
                let (batch, result) = e.remove();
                live.svc.handle_bmp_batch_done(now, batch, result).unwrap();
                live.drain(now);
            }
            if live.svc.poll_timeout().is_some_and(|t| t <= now) {
                live.svc.handle_timeout(now);
                live.drain(now);
            }
            while let Some(e) = live.acts.first_entry()
                && e.key().0 <= now
            {
                let act = e.remove();
                live.act(now, act);
                live.drain(now);
            }
        }
        let inputs = live.svc.take_recorded();
        (live, inputs)
    }
}

fn journal_bytes(policy: &ServicePolicy, inputs: &[ServiceInput]) -> Vec<u8> {
    let mut out = journal::start(&Header {
        format: journal::FORMAT,
        created: T0,
        policy: policy.to_text(),
    });
    for i in inputs {
        journal::encode(&Entry::Input(i.clone()), &mut out);
    }
    out
}

/// A run of a scenario as `sim run` does it (recorded BMP timing included).
fn run(sc: &Scenario) -> (RunResult, WorkloadReport) {
    let (jobs, report) = sc.workload().unwrap_or_else(|e| panic!("{e}"));
    let mut spec = RunSpec::from_scenario(sc, jobs);
    spec.recorded_bmp = report.recorded_bmp.clone();
    let (result, _) = simulate(&spec, |_| {}).unwrap();
    (result, report)
}

/// The live session, recorded, in a `sim serve`-like state directory.
fn recorded_session(n: usize, stop: Instant) -> (tempfile::TempDir, Live, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let base = parse(dir.path(), &scenario_text("jobs = 1", ""));
    let policy = ServicePolicy::of_scenario(&base);
    let machines: Vec<&Machine> = base.machines.iter().map(|m| &m.machine).collect();
    let (live, inputs) = Live::run(&policy, &machines, n, stop);
    let bytes = journal_bytes(&policy, &inputs);
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("state").join(JOURNAL_NAME), &bytes).unwrap();
    (dir, live, bytes)
}

fn rel(t: Instant) -> Instant {
    Instant(t.as_micros() - T0.as_micros())
}

/// The key property: replayed under the same machines and policies, with the recorded BMP
/// timing, every job gets exactly the same boards on the same machine at the same time as in
/// the live session, and becomes ready and ends when it did.
#[test]
fn a_journal_replays_to_the_live_sessions_allocations() {
    let n = 120;
    let (dir, live, _) = recorded_session(n, Instant::MAX);
    let sc = parse(dir.path(), &scenario_text("source = \"journal\"\npath = \"state\"", ""));
    let (result, report) = run(&sc);
    // The only note: the requests refused before they were jobs (every 17th and 19th).
    let refused = (0..n).filter(|i| i % 17 == 3 || i % 19 == 5).count();
    assert_eq!(report.notes.len(), 1, "{:?}", report.notes);
    assert!(
        report.notes[0].starts_with(&format!(
            "{refused} requests were refused before they became jobs (the first: "
        )),
        "{:?}",
        report.notes
    );
    assert!(report.skipped.is_empty(), "{report}");
    let created: Vec<&LiveJob> = live.jobs.iter().filter(|j| j.sid.is_some()).collect();
    assert_eq!(result.jobs.len(), created.len());
    assert!(created.len() > 100, "{}", created.len());
    let mut compared = 0;
    for r in &result.records {
        let wid = JobId(result.jobs[r.index].id);
        let l = &live.jobs[live.by_sid[&wid]];
        let what = format!("job {wid:?}: live {l:?}\nreplayed {r:?}");
        assert_eq!(Some(r.submit), l.created.map(rel), "{what}");
        assert_eq!(r.start, l.allocated.map(rel), "{what}");
        assert_eq!(r.machine, l.machine, "{what}");
        assert_eq!(r.boards, l.boards, "{what}");
        assert_eq!(r.ready, l.ready.map(rel), "{what}");
        assert_eq!(r.end, l.end.map(rel), "{what}");
        compared += 1;
    }
    assert_eq!(compared, created.len());
    // The session had every kind of life in it.
    let count = |o: Outcome| result.records.iter().filter(|r| r.outcome == o).count();
    let ended = |f: fn(&JobEnd) -> bool| created.iter().filter(|j| j.reason.as_ref().is_some_and(f)).count();
    assert!(count(Outcome::Completed) > 30, "{}", count(Outcome::Completed));
    assert!(count(Outcome::TimedOut) > 5, "{}", count(Outcome::TimedOut));
    assert!(count(Outcome::Failed) > 3, "{}", count(Outcome::Failed));
    assert!(ended(|e| e.queued && matches!(e.reason, DestroyReason::Requested(_))) > 3);
    assert!(ended(|e| e.reason == DestroyReason::NoSuitableMachine) > 2);
    assert!(created.iter().any(|j| j.machine.as_deref() == Some("small")));
    assert!(created.iter().filter(|j| j.allocated.is_some()).count() > 50);
    let waited = created.iter().filter(|j| j.allocated > j.created).count();
    assert!(
        waited > 10,
        "only {waited} jobs queued: not enough contention to test anything"
    );
    assert!(live.failures > 5);
    // The run is deterministic.
    let (again, _) = run(&sc);
    assert_eq!(again.records, result.records);
}

/// Jobs still live when the journal ends hold their ready boards until its end; those still
/// waiting never end.
#[test]
fn jobs_live_at_the_journals_end() {
    let stop = T0 + Duration::from_secs(20 * 60);
    let (dir, live, _) = recorded_session(60, stop);
    let sc = parse(
        dir.path(),
        &scenario_text("source = \"journal\"\npath = \"state/journal\"", ""),
    );
    let (jobs, report) = sc.workload().unwrap();
    let notes = report.notes.join("\n");
    assert!(
        notes.contains("still held ready boards when the journal ended"),
        "{notes}"
    );
    let (result, _) = run(&sc);
    for r in &result.records {
        let wid = JobId(result.jobs[r.index].id);
        let l = &live.jobs[live.by_sid[&wid]];
        if l.allocated.is_some() {
            assert_eq!((r.start, &r.boards), (l.allocated.map(rel), &l.boards), "{wid:?}");
        } else {
            // Still queued when the journal ended: the replay may allocate it, but only later.
            assert!(r.start.is_none_or(|s| s >= rel(stop)), "{wid:?}: {r:?}");
        }
    }
    let waiting: Vec<&WorkloadJob> = jobs
        .iter()
        .filter(|j| j.runtime == sc.run.horizon + sc.run.drain_limit)
        .collect();
    if !waiting.is_empty() {
        assert!(notes.contains("still waiting for their boards"), "{notes}");
    }
}

/// The same journal under EASY backfilling (with the real runtimes as estimates): a what-if
/// that says so, keeps every job, and lets some jobs start earlier than they did live.
#[test]
fn a_journal_under_easy_backfilling_is_a_what_if() {
    let (dir, _, _) = recorded_session(120, Instant::MAX);
    let fifo = parse(dir.path(), &scenario_text("source = \"journal\"\npath = \"state\"", ""));
    let easy = parse(
        dir.path(),
        &scenario_text(
            "source = \"journal\"\npath = \"state\"\nestimate = \"actual\"",
            "queue = \"easy\"",
        ),
    );
    let (a, _) = run(&fifo);
    let (b, report) = run(&easy);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("what-if") && n.contains("queue easy (depth 64), not fifo")),
        "{:?}",
        report.notes
    );
    assert_eq!(a.jobs.len(), b.jobs.len());
    let wait = |r: &RunResult| -> u64 {
        r.records
            .iter()
            .filter_map(|x| x.start.map(|s| (s - x.submit).as_micros()))
            .sum()
    };
    let earlier = a
        .records
        .iter()
        .zip(&b.records)
        .filter(|(x, y)| matches!((x.start, y.start), (Some(s), Some(t)) if t < s))
        .count();
    assert!(earlier > 0, "no job started earlier under EASY");
    assert!(
        wait(&b) < wait(&a),
        "EASY waited {} us in all, FIFO {}",
        wait(&b),
        wait(&a)
    );
    // Jobs that could never run are cancelled under either policy; none is left queued.
    assert!(b.records.iter().all(|r| r.outcome != Outcome::NeverStarted));
}

#[test]
fn keys_filter_and_scale_the_jobs() {
    let (dir, live, _) = recorded_session(40, Instant::MAX);
    let all = parse(dir.path(), &scenario_text("source = \"journal\"\npath = \"state\"", ""));
    let (jobs, _) = all.workload().unwrap();
    let own = parse(
        dir.path(),
        &scenario_text(
            "source = \"journal\"\npath = \"state\"\ninclude_simulated = false\nlimit = 5\nkeepalive = \"none\"",
            "",
        ),
    );
    let (few, report) = own.workload().unwrap();
    assert_eq!(few.len(), 5);
    assert!(few.iter().all(|j| j.keepalive.is_none() && j.last_keepalive.is_none()));
    let simulated = report
        .skipped
        .iter()
        .find(|(r, _)| r == SIMULATED)
        .map(|(_, n)| *n)
        .unwrap();
    assert!(simulated > 0);
    let clients: Vec<u64> = jobs
        .iter()
        .filter(|j| live.by_sid[&JobId(j.id)] % 5 != 0)
        .map(|j| j.id)
        .take(5)
        .collect();
    assert_eq!(few.iter().map(|j| j.id).collect::<Vec<_>>(), clients);
    let half = parse(
        dir.path(),
        &scenario_text(
            "source = \"journal\"\npath = \"state\"\ntime_scale = 0.5\nestimate = \"actual\"",
            "",
        ),
    );
    let (halved, _) = half.workload().unwrap();
    for (x, y) in jobs.iter().zip(&halved) {
        assert_eq!(y.submit.as_micros(), (x.submit.as_micros() as f64 * 0.5).round() as u64);
        assert_eq!(y.estimate, Some(y.runtime));
    }
}

#[test]
fn damaged_journals_are_errors_and_a_torn_tail_is_dropped() {
    let (dir, _, bytes) = recorded_session(30, Instant::MAX);
    let path = dir.path().join("j");
    let sc_text = scenario_text("source = \"journal\"\npath = \"j\"", "");
    let (whole, _) = parse(dir.path(), &scenario_text("source = \"journal\"\npath = \"state\"", ""))
        .workload()
        .unwrap();
    // Not a journal.
    std::fs::write(&path, "create_job((),{}) from h\n").unwrap();
    let e = parse(dir.path(), &sc_text).workload().unwrap_err();
    assert!(e.file.ends_with("/j"), "{e}");
    assert!(e.message.contains("not a spinnbed journal"), "{e}");
    // A torn last record: dropped, and said so.
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let (jobs, report) = parse(dir.path(), &sc_text).workload().unwrap();
    assert!(
        report.notes.iter().any(|n| n.contains("torn record")),
        "{:?}",
        report.notes
    );
    assert_eq!(jobs.len(), whole.len());
    // A damaged record with good ones after it: corruption, at its byte offset.
    let mut bad = bytes.clone();
    let header_len = {
        let r = Reader::new(&bytes).unwrap();
        r.good_len() as usize
    };
    bad[header_len + 12] ^= 0x5a;
    std::fs::write(&path, &bad).unwrap();
    let e = parse(dir.path(), &sc_text).workload().unwrap_err();
    assert!(
        e.message.contains(&format!("at byte {header_len}")) && e.message.contains("corrupt"),
        "{e}"
    );
    // A header whose policies this spinnbed cannot read.
    let mut odd = journal::start(&Header {
        format: journal::FORMAT,
        created: T0,
        policy: "packer=mystery".into(),
    });
    odd.extend_from_slice(&bytes[header_len..]);
    std::fs::write(&path, &odd).unwrap();
    let e = parse(dir.path(), &sc_text).workload().unwrap_err();
    assert_eq!(e.field.as_deref(), Some("header"), "{e}");
    // A directory without a journal.
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let e = parse(dir.path(), &sc_text).workload().unwrap_err();
    assert!(e.message.contains("no journal in this directory"), "{e}");
}

/// Replaying on other machines, or under other policies, says so.
#[test]
fn differences_from_the_live_server_are_noted() {
    let (dir, _, _) = recorded_session(20, Instant::MAX);
    let other = "[run]\nname = \"x\"\nhorizon = \"6h\"\n\n[[machine]]\nname = \"big\"\nwidth = 4\nheight = 2\n\n\
         [workload]\nsource = \"journal\"\npath = \"state\"\n\n[policy]\nseconds_before_free = \"10s\"\n\n\
         [host]\nhardware = \"emulator\"\n"
        .to_string();
    let (_, report) = parse(dir.path(), &other).workload().unwrap();
    let notes = report.notes.join("\n");
    assert!(
        notes.contains("the journal has \"big\" (3 x 2), \"small\" (1 x 2), the scenario \"big\" (4 x 2)"),
        "{notes}"
    );
    assert!(notes.contains("seconds_before_free 10s, not 30s"), "{notes}");
    assert!(notes.contains("fixed-delay hardware only"), "{notes}");
    // Same names and sizes, other dead boards.
    let dead = scenario_text("source = \"journal\"\npath = \"state\"", "").replace(
        "width = 3\nheight = 2\n",
        "width = 3\nheight = 2\ndead_boards = [[0, 0, 1]]\n",
    );
    let (_, report) = parse(dir.path(), &dead).workload().unwrap();
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("machines \"big\" differ from the journal's")),
        "{:?}",
        report.notes
    );
}
