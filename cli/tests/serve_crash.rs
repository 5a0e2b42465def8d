//! `sim serve` killed with SIGKILL at random moments of a busy client session, and restarted
//! each time on the same state directory: nothing a client was told is lost.
//!
//! Four client threads (raw JSON lines, each its own connection) create jobs of every shape,
//! send keepalives, read states and allocations, power boards off and on, and destroy jobs,
//! while the test kills the `sim` process 22 times at seeded random moments and restarts it.
//! Every reply a client received is a promise; the checks, continuously and after each
//! restart:
//! - every job whose creation was acknowledged and whose destruction was not even asked for
//!   is still alive (queued, powering or ready), with its keepalive;
//! - a job's boards never change once a client has seen them, across restarts;
//! - no board is held by two live jobs (every job's boards from `list_jobs`);
//! - job ids are never handed out twice;
//! - after each restart, a client's next call succeeds.
//!
//! At the end the server is stopped with SIGTERM and started once more for a final check (the
//! BMP work cut off by the kills was redone: no job is left powering), and its journal reads to
//! the end with no damage (each restart cut off a record a kill tore before appending).

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Kills (with restarts) in the session.
const KILLS: usize = 22;

/// A small seeded generator (SplitMix64): the kill moments and the clients' choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A free loopback port (bound and released: the server binds it with SO_REUSEADDR).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `sim serve` process.
struct Server {
    child: Child,
    addr: SocketAddr,
    state: PathBuf,
    log: PathBuf,
    starts: u32,
}

impl Server {
    fn start(addr: SocketAddr, state: &Path, log: &Path) -> Server {
        let mut s = Server {
            child: spawn(addr, state, log),
            addr,
            state: state.to_path_buf(),
            log: log.to_path_buf(),
            starts: 1,
        };
        s.wait_up();
        s
    }

    /// Waits until the server accepts connections (panics with its log if it does not).
    fn wait_up(&mut self) {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sim serve exited ({status}):\n{}", self.log_text());
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("sim serve did not come up in 30 s:\n{}", self.log_text());
    }

    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn restart(&mut self) -> Duration {
        let t0 = Instant::now();
        self.child = spawn(self.addr, &self.state, &self.log);
        self.starts += 1;
        self.wait_up();
        t0.elapsed()
    }

    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(ok.success());
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "SIGTERM: {status}\n{}", self.log_text());
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "no clean stop after SIGTERM:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed test leaves no server behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(addr: SocketAddr, state: &Path, log: &Path) -> Child {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_sim"))
        .arg("serve")
        .arg(repo_root().join("tests/spalloc/crash.toml"))
        .arg("--state")
        .arg(state)
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--quiet")
        .args(["--rest-listen", "off"])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("run sim serve")
}

/// A JSON-line connection.
struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        Ok(Conn {
            w: s.try_clone()?,
            r: BufReader::new(s),
        })
    }

    /// One call: `Ok(Ok(return))`, `Ok(Err(exception))`, or `Err` if the connection broke.
    fn call(&mut self, command: &str, args: Value, kwargs: Value) -> std::io::Result<Result<Value, String>> {
        let line = json!({"command": command, "args": args, "kwargs": kwargs}).to_string() + "\n";
        self.w.write_all(line.as_bytes())?;
        loop {
            let mut buf = String::new();
            if self.r.read_line(&mut buf)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let v: Value = serde_json::from_str(&buf).map_err(|e| std::io::Error::other(format!("{e}: {buf}")))?;
            if let Some(r) = v.get("return") {
                return Ok(Ok(r.clone()));
            }
            if let Some(e) = v.get("exception") {
                return Ok(Err(e.as_str().unwrap_or_default().to_string()));
            }
            // A notification.
        }
    }
}

/// What the clients were told.
#[derive(Debug, Default)]
struct Promises {
    /// Jobs whose creation was acknowledged, with their keepalive.
    created: BTreeMap<u64, Option<f64>>,
    /// Jobs a client asked to destroy (acknowledged or not: the reply may have been lost).
    destroying: BTreeSet<u64>,
    /// Boards a client saw for a job.
    boards: BTreeMap<u64, Value>,
    /// Calls answered.
    answered: u64,
    /// Calls cut off by a kill.
    cut: u64,
    /// Violations found by the clients.
    violations: Vec<String>,
}

/// The live state codes (queued, power, ready) and destroyed.
const LIVE: [i64; 3] = [1, 2, 3];
const DESTROYED: i64 = 4;
const UNKNOWN: i64 = 0;

fn client(addr: SocketAddr, seed: u64, promises: Arc<Mutex<Promises>>, stop: Arc<AtomicBool>, ops: Arc<AtomicU64>) {
    let mut rng = Rng(seed);
    let mut conn: Option<Conn> = None;
    // Our own jobs, alive as far as we know.
    let mut mine: Vec<u64> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        // Busy, but slow enough for jobs to get their boards before their clients give up.
        std::thread::sleep(Duration::from_millis(3));
        let c = match &mut conn {
            Some(c) => c,
            None => match Conn::open(addr) {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let pick =
            |rng: &mut Rng, mine: &[u64]| (!mine.is_empty()).then(|| mine[rng.below(mine.len() as u64) as usize]);
        let roll = rng.below(100);
        let (what, job, result) = if roll < 25 || mine.len() < 2 {
            let args = match rng.below(20) {
                0..=9 => json!([]),
                10..=13 => json!([1 + rng.below(3)]),
                14..=16 => json!([1, 1]),
                17..=18 => {
                    // A specific board, not the dead (2, 1, 1).
                    let b = [rng.below(3), rng.below(2), rng.below(3)];
                    json!(if b == [2, 1, 1] { [0, 0, 0] } else { b })
                }
                _ => json!([2, 1]),
            };
            let keepalive = if rng.below(2) == 0 { Value::Null } else { json!(30.0) };
            let r = c.call("create_job", args, json!({"owner": "crash", "keepalive": keepalive}));
            ("create", None, r.map(|r| r.map(|v| (v, keepalive.as_f64()))))
        } else if roll < 33 {
            let j = pick(&mut rng, &mine).unwrap();
            promises.lock().unwrap().destroying.insert(j);
            mine.retain(|x| *x != j);
            let r = c.call("destroy_job", json!([j, "done"]), json!({}));
            ("destroy", Some(j), r.map(|r| r.map(|v| (v, None))))
        } else if roll < 65 {
            let j = pick(&mut rng, &mine).unwrap();
            let r = c.call("get_job_machine_info", json!([j]), json!({}));
            ("machine info", Some(j), r.map(|r| r.map(|v| (v, None))))
        } else if roll < 85 {
            let j = pick(&mut rng, &mine).unwrap();
            let r = c.call("get_job_state", json!([j]), json!({}));
            ("state", Some(j), r.map(|r| r.map(|v| (v, None))))
        } else if roll < 95 {
            let j = pick(&mut rng, &mine).unwrap();
            let r = c.call("job_keepalive", json!([j]), json!({}));
            ("keepalive", Some(j), r.map(|r| r.map(|v| (v, None))))
        } else {
            let j = pick(&mut rng, &mine).unwrap();
            let cmd = if rng.below(2) == 0 {
                "power_off_job_boards"
            } else {
                "power_on_job_boards"
            };
            let r = c.call(cmd, json!([j]), json!({}));
            ("power", Some(j), r.map(|r| r.map(|v| (v, None))))
        };
        let mut guard = promises.lock().unwrap();
        let p = &mut *guard;
        match result {
            Err(_) => {
                // Killed mid-call: what it did is unknown, and that is allowed.
                p.cut += 1;
                conn = None;
                continue;
            }
            Ok(Err(e)) => p.violations.push(format!("{what} {job:?} refused: {e}")),
            Ok(Ok((v, keepalive))) => {
                p.answered += 1;
                ops.fetch_add(1, Ordering::Relaxed);
                match what {
                    "create" => {
                        let id = v.as_u64().expect("a job id");
                        if p.created.insert(id, keepalive).is_some() {
                            p.violations.push(format!("job id {id} handed out twice"));
                        }
                        mine.push(id);
                    }
                    "machine info" => {
                        let j = job.unwrap();
                        let boards = &v["boards"];
                        if !boards.is_null() {
                            match p.boards.get(&j) {
                                Some(seen) if seen != boards => p
                                    .violations
                                    .push(format!("job {j}'s boards changed from {seen} to {boards}")),
                                Some(_) => {}
                                None => {
                                    p.boards.insert(j, boards.clone());
                                }
                            }
                        }
                    }
                    "state" => {
                        let j = job.unwrap();
                        let state = v["state"].as_i64().unwrap_or(-1);
                        if !LIVE.contains(&state) {
                            p.violations.push(format!("live job {j} reads {v}"));
                        }
                        if v["keepalive"].as_f64() != p.created[&j] {
                            p.violations.push(format!(
                                "job {j}'s keepalive {} is not {:?}",
                                v["keepalive"], p.created[&j]
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
        // Keep the session busy but bounded: at most 5 jobs of our own.
        if mine.len() > 5 {
            let j = mine.remove(0);
            p.destroying.insert(j);
            drop(guard);
            if let Some(c) = &mut conn
                && c.call("destroy_job", json!([j]), json!({"reason": "enough"})).is_err()
            {
                conn = None;
            }
        }
    }
}

/// The whole server's view, checked against the promises: every promised job alive with the
/// boards its client saw, no board held twice.
fn audit(addr: SocketAddr, promises: &Promises, when: &str) -> usize {
    let mut c = Conn::open(addr).unwrap_or_else(|e| panic!("{when}: connect: {e}"));
    let jobs = c
        .call("list_jobs", json!([]), json!({}))
        .unwrap_or_else(|e| panic!("{when}: list_jobs: {e}"))
        .unwrap_or_else(|e| panic!("{when}: list_jobs refused: {e}"));
    let jobs = jobs.as_array().expect("a list");
    let mut held: BTreeMap<String, u64> = BTreeMap::new();
    for j in jobs {
        let id = j["job_id"].as_u64().unwrap();
        if let Some(boards) = j["boards"].as_array() {
            let machine = j["allocated_machine_name"].as_str().unwrap_or_default();
            for b in boards {
                if let Some(other) = held.insert(format!("{machine} {b}"), id) {
                    panic!("{when}: board {b} of {machine} held by jobs {other} and {id}");
                }
            }
        }
    }
    let listed: BTreeMap<u64, &Value> = jobs.iter().map(|j| (j["job_id"].as_u64().unwrap(), j)).collect();
    for (id, keepalive) in &promises.created {
        if promises.destroying.contains(id) {
            continue;
        }
        let Some(j) = listed.get(id) else {
            let state = c.call("get_job_state", json!([id]), json!({})).ok();
            panic!("{when}: acknowledged job {id} is not listed (its state: {state:?})");
        };
        assert_eq!(j["keepalive"].as_f64(), *keepalive, "{when}: job {id}: {j}");
        if let Some(seen) = promises.boards.get(id) {
            assert_eq!(&j["boards"], seen, "{when}: job {id}'s boards");
        }
        let state = c.call("get_job_state", json!([id]), json!({})).unwrap().unwrap();
        assert!(
            LIVE.contains(&state["state"].as_i64().unwrap()),
            "{when}: job {id}: {state}"
        );
    }
    // Jobs destroyed on request read destroyed, or unknown once more than max_retired_jobs
    // (1,200) were destroyed after them, or alive if the request was cut off by a kill.
    for id in &promises.destroying {
        let state = c.call("get_job_state", json!([id]), json!({})).unwrap().unwrap();
        let s = state["state"].as_i64().unwrap();
        assert!(
            s == DESTROYED || s == UNKNOWN || LIVE.contains(&s),
            "{when}: job {id}: {state}"
        );
    }
    jobs.len()
}

#[test]
fn sim_serve_survives_kill_9_at_random_moments_of_a_busy_session() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let log = dir.path().join("serve.log");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut server = Server::start(addr, &state, &log);
    let promises = Arc::new(Mutex::new(Promises::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (p, s, o) = (promises.clone(), stop.clone(), ops.clone());
            std::thread::spawn(move || client(addr, 1000 + i, p, s, o))
        })
        .collect();
    let mut rng = Rng(2026);
    let mut restarts = Vec::new();
    for k in 0..KILLS {
        // A random moment: after 50 to 700 ms of the session, once some calls went through.
        let before = ops.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50 + rng.below(650)));
        let t0 = Instant::now();
        while ops.load(Ordering::SeqCst) < before + 5 {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the clients made no progress:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        server.kill9();
        restarts.push(server.restart());
        // A client's next call succeeds.
        let mut c = Conn::open(addr).expect("connect after a restart");
        let v = c
            .call("version", json!([]), json!({}))
            .expect("version after a restart");
        assert!(v.is_ok(), "kill {k}: {v:?}");
        let p = promises.lock().unwrap();
        assert!(
            p.violations.is_empty(),
            "kill {k}: {:#?}\n{}",
            p.violations,
            server.log_text()
        );
        audit(addr, &p, &format!("after kill {k}"));
    }
    // Let the session run on until it has been busy enough to mean something (on a loaded
    // machine the kills' half-second gaps may not be): at most a minute more.
    let t0 = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let p = promises.lock().unwrap();
        let busy = p.answered > 300 && p.created.len() > 50 && p.boards.len() >= 10;
        if (busy && t0.elapsed() >= Duration::from_millis(500)) || t0.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let p = promises.lock().unwrap();
    assert!(p.violations.is_empty(), "{:#?}", p.violations);
    let live = audit(addr, &p, "at the end");
    server.terminate();
    server.restart();
    assert_eq!(audit(addr, &p, "after SIGTERM and a restart"), live);
    // BMP work cut off by the kills was redone: once it settles, no job is still powering.
    std::thread::sleep(Duration::from_secs(1));
    let mut c = Conn::open(addr).unwrap();
    let jobs = c.call("list_jobs", json!([]), json!({})).unwrap().unwrap();
    for j in jobs.as_array().unwrap() {
        assert_ne!(j["state"].as_i64(), Some(2), "still powering: {j}");
    }
    server.terminate();
    // The session was busy and the kills cut calls off.
    assert!(p.answered > 300, "{} calls answered", p.answered);
    assert!(p.created.len() > 50, "{} jobs created", p.created.len());
    assert!(p.boards.len() >= 10, "{} allocations seen", p.boards.len());
    assert!(p.cut >= 5, "only {} calls were cut off by the kills", p.cut);
    assert_eq!(server.starts as usize, KILLS + 2);
    // The journal reads to its end with no damage: each restart cut off the record a kill
    // tore before appending, and the last stop was clean.
    let bytes = std::fs::read(state.join("journal")).unwrap();
    let mut reader = spinnbed_spalloc::journal::Reader::new(&bytes).unwrap();
    let mut restarts_journalled = 0;
    for input in reader.by_ref() {
        let input = input.unwrap_or_else(|e| panic!("the journal: {e}"));
        if matches!(input, spinnbed_core::service::ServiceInput::Restart { .. }) {
            restarts_journalled += 1;
        }
    }
    assert!(reader.torn_tail().is_none());
    // Every start on an existing journal.
    assert_eq!(restarts_journalled, KILLS + 1);
    let slowest = restarts.iter().max().unwrap();
    eprintln!(
        "{KILLS} kills: {} calls answered, {} cut off, {} jobs, {} allocations seen; restarts took at most {slowest:?}",
        p.answered,
        p.cut,
        p.created.len(),
        p.boards.len()
    );
}
