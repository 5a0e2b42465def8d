//! `sim serve`'s REST API and websocket proxy with the real, unmodified PyPI spinnman 1!7.4.1
//! `SpallocClient`, and the same jobs seen through the v1 protocol.
//!
//! The server runs in-process ([`Served::start_with_rest`]) on `tests/spalloc/rest.toml`: a
//! 2 × 2 triad machine emulated on loopback at 127.41.0.0, the REST API (plain HTTP and TLS on
//! one port, its self-signed certificate in `state/tls/cert.pem`) and the v1 protocol on free
//! ports. Two users are written to `state/users.json` before it starts: `alice` with a
//! password, `bob` with a bearer token.
//!
//! A v1 client (raw JSON lines) first creates a job for board (1, 1, 1) with `alice` as owner.
//! Then `tests/clients/spalloc_rest_client.py`, run with the python of the real-client venv
//! (`.venv-clients`), logs in both ways, lists machines, creates jobs by board count, by
//! rectangle and for a specific board, waits for them, looks up connections and chips, makes a
//! `SpallocTransceiver` through the proxy (booting three boards and reading their 144 chips),
//! moves 100 KiB REST → proxied SCP and proxied SCP → REST, receives EIEIO on an unbound
//! channel, lists jobs (the v1 job among alice's, none of bob's), and — paused on a handshake
//! while its jobs are live — lets this test run the real `spalloc-ps` (PyPI spalloc 1!7.4.1,
//! `.venv-spalloc-7.4.1`) against the v1 port and find the REST job with its owner; then it
//! destroys its jobs and sees them DESTROYED. `cargo test -p spinnbed-tests --test
//! spalloc_rest -- --nocapture` shows every step.

use spinnbed_core::service::ServiceEvent;
use spinnbed_realtime::serve::rest::accounts::Accounts;
use spinnbed_tests::{Served, clients_python, repo_root, spalloc_client_python};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The steps `spalloc_rest_client.py` must report, in order.
const STEPS: &[&str] = &[
    "ok: password login: alice logged in with a password",
    "ok: bearer-token login:",
    "ok: list machines: ['restm']: restm 2 x 2 triads, tags ['default']",
    "ok: create job by board count: job ",
    "ok: create job by rectangle: job ",
    "ok: create job for a specific board: job ",
    "ok: wait until ready: board count job ",
    "ok: connections: board count: (0, 0) 127.41.",
    "ok: where is: board count: ",
    "ok: create transceiver: SpallocTransceiver booted 3 boards in ",
    "ok: REST write, proxied SCP read: 102400 bytes",
    "ok: proxied SCP write, REST read: 102400 bytes",
    "ok: EIEIO through an unbound channel: tag 1 of chip (0, 0) set to the unbound channel",
    "ok: proxy with a bearer-token session: the bearer user's job ",
    "ok: list jobs: alice: ",
    "ok: spalloc-ps sees the REST job: ",
    "ok: destroy: job ",
    "ok: create a rectangle rooted at a board: job ",
    "ok: spinnman 1!7.4.1 SpallocClient: all steps passed",
];

/// Longest the client may take (it needs about 20 s: 5 s in `wait_until_ready`, about 9 s for
/// spinnman's probe-then-boot through the proxy).
const CLIENT_DEADLINE: Duration = Duration::from_secs(80);

const PASSWORD: &str = "alice's password";

/// One v1 request line, its reply's `return` value.
fn v1(conn: &mut BufReader<TcpStream>, request: serde_json::Value) -> serde_json::Value {
    let mut line = request.to_string();
    line.push('\n');
    conn.get_mut().write_all(line.as_bytes()).expect("send a v1 request");
    let mut reply = String::new();
    conn.read_line(&mut reply).expect("a v1 reply");
    let v: serde_json::Value = serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{e}: {reply:?}"));
    v.get("return")
        .cloned()
        .unwrap_or_else(|| panic!("{request} was refused: {reply}"))
}

/// `spalloc-ps`'s rows, whitespace squashed.
fn spalloc_ps(exe: &Path, v1: SocketAddr) -> Vec<String> {
    let out = Command::new(exe)
        .args(["-H", "127.0.0.1", "-P", &v1.port().to_string()])
        .output()
        .expect("run spalloc-ps");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "spalloc-ps failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// The row of job `id`.
fn row(rows: &[String], id: u64) -> String {
    let mine: Vec<&String> = rows.iter().filter(|r| r.starts_with(&format!("{id} "))).collect();
    assert_eq!(mine.len(), 1, "job {id} in spalloc-ps:\n{}", rows.join("\n"));
    mine[0].clone()
}

#[test]
fn spinnmans_spalloc_client_drives_sim_serves_rest_api_and_proxy() {
    let started = Instant::now();
    let py = clients_python();
    let ps = spalloc_client_python("7.4.1")
        .parent()
        .expect("the venv's bin")
        .join("spalloc-ps");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut accounts = Accounts::load(&state).unwrap();
    accounts.set_user("alice", PASSWORD, false).unwrap();
    let token = accounts.add_token("bob", false).unwrap();
    accounts.save(&state).unwrap();

    let served = Served::start_with_rest(&repo_root().join("tests/spalloc/rest.toml"), &state);
    let rest = served.rest.expect("the REST API's address");
    let cert = state.join("tls/cert.pem");
    assert!(cert.exists(), "no certificate at {}", cert.display());

    // A job made over v1, for alice: REST must list it among hers.
    let mut conn = BufReader::new(TcpStream::connect(served.addr).expect("connect to v1"));
    let v1_job = v1(
        &mut conn,
        serde_json::json!({"command": "create_job", "args": [1, 1, 1],
                           "kwargs": {"owner": "alice", "keepalive": null}}),
    )
    .as_u64()
    .expect("a job id");

    let mut child = Command::new(&py)
        .arg(repo_root().join("tests/clients/spalloc_rest_client.py"))
        .args(["--url", &format!("http://{rest}/spalloc/")])
        .arg("--cert")
        .arg(&cert)
        .args(["--user", "alice", "--password", PASSWORD, "--token", &token])
        .args(["--v1-job", &v1_job.to_string(), "--handshake"])
        .env("REQUESTS_CA_BUNDLE", &cert)
        .env("WEBSOCKET_CLIENT_CA_BUNDLE", &cert)
        .env("NO_PROXY", "*")
        .env_remove("CURL_CA_BUNDLE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start spalloc_rest_client.py");
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let mut stdin = child.stdin.take().unwrap();

    let deadline = Instant::now() + CLIENT_DEADLINE;
    let mut out = Vec::new();
    let mut ps_rows = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match lines.recv_timeout(left) {
            Ok(l) => l,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!(
                    "spalloc_rest_client.py took over {CLIENT_DEADLINE:?}; so far:\n{}",
                    out.join("\n")
                );
            }
        };
        println!("{line}");
        if let Some(rest) = line.strip_prefix("wait: spalloc-ps ") {
            // The client's jobs are live: the v1 tools see the REST job, with its owner.
            let mut w = rest.split_whitespace();
            let (job, owner) = (w.next().unwrap().parse::<u64>().unwrap(), w.next().unwrap());
            let rows = spalloc_ps(&ps, served.addr);
            let r = row(&rows, job);
            let v = row(&rows, v1_job);
            let ok = r.contains(" ready on 3 restm ")
                && r.ends_with(&format!(" 120.0 {owner} (127.0.0.1)"))
                && v.contains(" ready on 1 restm ")
                && v.ends_with(" None alice (127.0.0.1)");
            let answer = if ok {
                format!("ok spalloc-ps on the v1 port: REST job \"{r}\"; v1 job \"{v}\"\n")
            } else {
                format!("fail spalloc-ps rows: {r:?}, {v:?}\n")
            };
            stdin.write_all(answer.as_bytes()).unwrap();
            stdin.flush().unwrap();
            ps_rows = Some((r, v));
        }
        out.push(line);
    }
    let status = child.wait().expect("the client's exit");
    let stderr = errors.join().unwrap();
    let all = out.join("\n");
    assert!(
        status.success(),
        "spalloc_rest_client.py failed ({status}):\n{all}\n{stderr}"
    );
    let mut at = 0;
    for step in STEPS {
        match out[at..].iter().position(|l| l.starts_with(step)) {
            Some(i) => at += i + 1,
            None => panic!("step {step:?} missing or out of order in:\n{all}\n{stderr}"),
        }
    }
    assert!(!all.contains("FAIL"), "{all}");
    // Nothing went wrong behind the client's back either (its websocket and keepalive threads
    // log what they catch).
    assert!(
        !stderr.contains("Traceback") && !stderr.contains("ERROR"),
        "the client logged errors:\n{stderr}"
    );
    let (r, v) = ps_rows.expect("the client asked for the v1 check");
    println!("spalloc-ps: {r}\nspalloc-ps: {v}");

    // The v1 job is still there, untouched by REST; then it goes as v1 jobs go.
    let s = v1(
        &mut conn,
        serde_json::json!({"command": "get_job_state", "args": [v1_job], "kwargs": {}}),
    );
    assert_eq!(s["state"], serde_json::json!(3), "v1 job {v1_job}: {s}");
    v1(
        &mut conn,
        serde_json::json!({"command": "destroy_job", "args": [v1_job], "kwargs": {"reason": "done"}}),
    );
    drop(conn);
    let (report, events) = served.stop();
    assert_eq!(report.live_jobs, 0, "{report:?}");
    // Five jobs, the v1 one and the client's four, each destroyed on request.
    let destroyed = events
        .iter()
        .filter(|(_, e)| matches!(e, ServiceEvent::Destroyed { .. }))
        .count();
    assert_eq!(destroyed, 5, "{events:?}");
    println!("spalloc_rest: {:.1} s", started.elapsed().as_secs_f64());
}
