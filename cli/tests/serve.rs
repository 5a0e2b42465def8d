//! `sim serve` as a process: its options, hostile clients, SIGHUP.
//!
//! Each test serves its own machines on its own loopback base (127.26.0.0 and up; the crash
//! test uses 127.25.0.0), so the tests of this file run side by side.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sim"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scenario with `machines` (name, base, dead boards as TOML), short power timings.
fn scenario(dir: &Path, machines: &[(&str, &str, &str)]) -> PathBuf {
    let mut text = String::from("[run]\nname = \"serve-test\"\nhorizon = \"1h\"\n\n");
    for (name, base, dead) in machines {
        text += &format!(
            "[[machine]]\nname = \"{name}\"\nwidth = 1\nheight = 1\ndead_boards = [{dead}]\n\n\
             [machine.ip]\nbase = \"{base}\"\n\n\
             [machine.timing]\npower_on = \"50ms\"\npower_off = \"20ms\"\nboot = \"50ms\"\n\n"
        );
    }
    text += "[policy]\nseconds_before_free = \"100ms\"\n\n[host]\npost_power_on_delay = \"20ms\"\n\n\
             [workload]\nsource = \"synthetic\"\njobs = 1\n";
    let path = dir.join("serve.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `sim serve`, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    fn start(scenario: &Path, dir: &Path, extra: &[&str]) -> Server {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = dir.join("serve.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = sim()
            .arg("serve")
            .arg(scenario)
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--listen")
            .arg(addr.to_string())
            .args(["--rest-listen", "off"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut s = Server { child, addr, log };
        let t0 = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("sim serve exited ({status}):\n{}", s.log_text());
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "{}", s.log_text());
            std::thread::sleep(Duration::from_millis(10));
        }
        s
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// The process's resident memory (KiB).
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    fn stop(mut self) -> String {
        self.signal("-TERM");
        let t0 = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(t0.elapsed() < Duration::from_secs(20), "{}", self.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
        self.log_text()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JSON-line client.
struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Client {
    fn open(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        }
    }

    fn call(&mut self, command: &str, args: Value, kwargs: Value) -> Value {
        let line = json!({"command": command, "args": args, "kwargs": kwargs}).to_string() + "\n";
        self.w.write_all(line.as_bytes()).unwrap();
        loop {
            let mut buf = String::new();
            assert!(
                self.r.read_line(&mut buf).unwrap() > 0,
                "the server closed the connection"
            );
            let v: Value = serde_json::from_str(&buf).unwrap();
            if v.get("return").is_some() || v.get("exception").is_some() {
                return v;
            }
        }
    }

    /// Whether the server closes the connection within `within` (reading and dropping
    /// whatever it sends first).
    fn closed_within(&mut self, within: Duration) -> bool {
        let t0 = Instant::now();
        self.r
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 65536];
        while t0.elapsed() < within {
            match self.r.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

#[test]
fn bad_options_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario(dir.path(), &[("m", "127.26.0.0", "")]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["--listen", "10.1.2.3:22244"],
            "--listen 10.1.2.3:22244: not a loopback address",
        ),
        (&["--stall-timeout", "0"], "--stall-timeout must be"),
        (&["--speed=-1"], "--speed must be a positive number"),
        (&["--listen", "localhost"], "invalid value 'localhost' for '--listen"),
    ];
    for (args, want) in cases {
        let out = sim()
            .arg("serve")
            .arg(&sc)
            .arg("--state")
            .arg(dir.path().join("state"))
            .args(*args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // A malformed scenario names its line and key.
    std::fs::write(dir.path().join("bad.toml"), "[run]\nname = 3\n").unwrap();
    let out = sim().arg("serve").arg(dir.path().join("bad.toml")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.toml") && err.contains("line 2"), "{err}");
}

/// Malformed requests, oversized lines, a slow-loris, a client that never reads its replies
/// and notifications, and a thousand idle connections: each is cut off or left alone as it
/// deserves, memory stays bounded, and a well-behaved client is answered throughout.
#[test]
fn hostile_clients_hurt_only_themselves() {
    let _ = rlimit::increase_nofile_limit(8192);
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario(dir.path(), &[("m", "127.26.0.0", "")]);
    let server = Server::start(&sc, dir.path(), &["--stall-timeout", "2"]);
    let mut good = Client::open(server.addr);
    assert!(good.call("version", json!([]), json!({}))["return"].is_string());
    let rss0 = server.rss_kib();

    // What the reference disconnects for: invalid JSON, an unknown command, args not a list.
    for bad in [
        "{not json}\n",
        "{\"command\": \"no_such_command\", \"args\": [], \"kwargs\": {}}\n",
        "{\"command\": \"list_jobs\", \"args\": {}, \"kwargs\": {}}\n",
        "[1, 2, 3]\n",
        "\u{7f}\u{1}\u{2}\n",
    ] {
        let mut c = Client::open(server.addr);
        c.w.write_all(bad.as_bytes()).unwrap();
        assert!(
            c.closed_within(Duration::from_secs(5)),
            "not disconnected after {bad:?}"
        );
    }
    // A line over 1 MiB.
    let mut big = Client::open(server.addr);
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..18 {
        if big.w.write_all(&chunk).is_err() {
            break;
        }
    }
    assert!(
        big.closed_within(Duration::from_secs(5)),
        "a 1.1 MiB line was not cut off"
    );
    // A slow-loris: half a request, then nothing.
    let mut loris = Client::open(server.addr);
    loris.w.write_all(b"{\"command\": \"vers").unwrap();
    // A thousand idle connections.
    let idle: Vec<TcpStream> = (0..1000).map(|_| TcpStream::connect(server.addr).unwrap()).collect();
    // A client that asks for every notification and floods requests, and reads nothing.
    let deaf = TcpStream::connect(server.addr).unwrap();
    let mut deaf_w = deaf.try_clone().unwrap();
    let flood = std::thread::spawn(move || {
        let _ = deaf_w.write_all(b"{\"command\": \"notify_job\", \"args\": [], \"kwargs\": {}}\n");
        let _ = deaf_w.write_all(b"{\"command\": \"notify_machine\", \"args\": [], \"kwargs\": {}}\n");
        let line = b"{\"command\": \"list_machines\", \"args\": [], \"kwargs\": {}}\n";
        let mut sent = 0u64;
        // Until the server stops reading (the write blocks) and finally cuts the client off.
        while deaf_w.write_all(line).is_ok() {
            sent += 1;
        }
        sent
    });
    // The good client keeps working while all that goes on: jobs made and destroyed (each a
    // notification the deaf client does not read).
    let t0 = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut peak = rss0;
    let mut made = 0;
    while t0.elapsed() < Duration::from_secs(4) {
        let t = Instant::now();
        let id = good.call("create_job", json!([]), json!({"owner": "good", "keepalive": null}))["return"].clone();
        assert!(id.is_u64(), "{id}");
        let r = good.call("destroy_job", json!([id, "done"]), json!({}));
        assert!(r.get("exception").is_none(), "{r}");
        slowest = slowest.max(t.elapsed());
        made += 1;
        if made % 50 == 0 {
            peak = peak.max(server.rss_kib());
        }
    }
    assert!(made > 100, "only {made} create/destroy pairs in 4 s");
    assert!(slowest < Duration::from_secs(1), "a good call took {slowest:?}");
    // The slow-loris and the deaf client were cut off after their 2 s of stalling.
    assert!(
        loris.closed_within(Duration::from_secs(3)),
        "the slow-loris was not cut off"
    );
    let sent = flood.join().unwrap();
    assert!(sent > 1000, "{sent}");
    drop(deaf);
    // The idle connections are still served.
    let mut one = Client {
        w: idle[500].try_clone().unwrap(),
        r: BufReader::new(idle[500].try_clone().unwrap()),
    };
    one.r.get_ref().set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(one.call("version", json!([]), json!({}))["return"].is_string());
    peak = peak.max(server.rss_kib());
    drop(idle);
    let grew = peak.saturating_sub(rss0);
    eprintln!("rss {rss0} KiB before, peak {peak} KiB (+{grew} KiB) with 1,000 idle connections and a deaf client");
    assert!(grew < 64 * 1024, "memory grew by {grew} KiB");
    let log = server.stop();
    for why in [
        "sent a bad request",
        "a request line of more than 1048576 bytes",
        "a request line was left unfinished",
        "took none of its replies",
    ] {
        assert!(log.contains(why), "no log line with {why:?}:\n{log}");
    }
}

/// SIGHUP re-reads the scenario: a machine added, one changed, one removed (its job destroyed
/// with the reference's reason), and the change survives a restart.
#[test]
fn sighup_reloads_the_machines() {
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario(dir.path(), &[("a", "127.27.0.0", ""), ("b", "127.28.0.0", "")]);
    let server = Server::start(&sc, dir.path(), &[]);
    let mut c = Client::open(server.addr);
    let job = c.call(
        "create_job",
        json!([]),
        json!({"owner": "o", "machine": "b", "keepalive": null}),
    )["return"]
        .as_u64()
        .unwrap();
    let t0 = Instant::now();
    while c.call("get_job_state", json!([job]), json!({}))["return"]["state"] != 3 {
        assert!(t0.elapsed() < Duration::from_secs(10), "{}", server.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    scenario(dir.path(), &[("a", "127.27.0.0", "[0, 0, 1]"), ("c", "127.29.0.0", "")]);
    server.signal("-HUP");
    let names = |c: &mut Client| -> Vec<(String, Value)> {
        c.call("list_machines", json!([]), json!({}))["return"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["name"].as_str().unwrap().to_string(), m["dead_boards"].clone()))
            .collect()
    };
    let want = vec![("a".to_string(), json!([[0, 0, 1]])), ("c".to_string(), json!([]))];
    let t0 = Instant::now();
    while names(&mut c) != want {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{:?}\n{}",
            names(&mut c),
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let state = c.call("get_job_state", json!([job]), json!({}))["return"].clone();
    assert_eq!(
        (state["state"].clone(), state["reason"].clone()),
        (json!(4), json!("Machine removed."))
    );
    drop(c);
    server.stop();
    let server = Server::start(&sc, dir.path(), &[]);
    let mut c = Client::open(server.addr);
    assert_eq!(names(&mut c), want);
    let state = c.call("get_job_state", json!([job]), json!({}))["return"].clone();
    assert_eq!(state["reason"], json!("Machine removed."));
    server.stop();
}

/// `--hardware`: no emulator in the process; the scenario's addresses are the machine (here a
/// separate `sim emulate`). Refused, naming the silent BMP, when nothing answers; with the
/// machine up, a job's boards are powered through its BMP over UDP.
#[test]
fn hardware_mode_drives_the_scenarios_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario(dir.path(), &[("hw", "127.32.0.0", "")]);
    // Nothing at 127.32.0.0 yet.
    let out = sim()
        .arg("serve")
        .arg(&sc)
        .arg("--hardware")
        .arg("--state")
        .arg(dir.path().join("state0"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("127.32.0.0") && err.contains("did not answer"), "{err}");
    // The machine, in another process.
    let ready = dir.path().join("ready");
    let mut emulator = sim()
        .arg("emulate")
        .arg(&sc)
        .arg("--ready-file")
        .arg(&ready)
        .arg("--duration")
        .arg("120")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !ready.exists() {
        assert!(t0.elapsed() < Duration::from_secs(30), "sim emulate did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let server = Server::start(&sc, dir.path(), &["--hardware"]);
    let mut c = Client::open(server.addr);
    let job = c.call("create_job", json!([]), json!({"owner": "o", "keepalive": null}))["return"]
        .as_u64()
        .unwrap();
    let t0 = Instant::now();
    while c.call("get_job_state", json!([job]), json!({}))["return"]["state"] != 3 {
        assert!(t0.elapsed() < Duration::from_secs(20), "{}", server.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    c.call("destroy_job", json!([job]), json!({}));
    let log = server.stop();
    assert!(log.contains("on real hardware"), "{log}");
    // A clean stop, so that its printed lines are flushed.
    Command::new("kill")
        .args(["-TERM", &emulator.id().to_string()])
        .status()
        .unwrap();
    let _ = emulator.wait();
    let mut emulated = String::new();
    emulator.stderr.take().unwrap().read_to_string(&mut emulated).unwrap();
    // The emulator saw the BMP power the job's board on, then off.
    assert!(emulated.contains("power on"), "{emulated}");
    assert!(emulated.contains("power off"), "{emulated}");
}
