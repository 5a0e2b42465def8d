//! Proxied SCP round trips per second through one websocket of `sim serve`'s proxy, against the
//! same client talking to the board directly (issue #14: "the proxy should cost under 2x"),
//! with a Rust client, so that the figure is the server's and not a Python client's.
//!
//!     cargo bench -p spinnbed-tests --bench proxy_load [-- --quick | --seconds S] [--window W]
//!         [--only FIGURE] [--scamp]
//!
//! `--scamp` keeps the emulated board's SC&MP timing model on (a real board's pace: one request
//! at a time, 38 µs per CMD_VER), so that direct and proxied are compared on the board a user
//! would have; without it the board answers at once and the figures are the server's own cost.
//!
//! `sim serve` runs in this process ([`Served::start_with_rest`]) on the 1 x 1-triad machine of
//! `scripts/bench-rest.sh` (`tests/spalloc/bench_rest.toml`) moved to 127.61.0.0; the client
//! runs on this thread alone (a current-thread runtime), so the server's CPU time (its loop,
//! its workers, the emulated machine: every other thread, named `sim-serve` for profilers, e.g.
//! `perf report --comm sim-serve`) is told apart from the client's. The
//! client adds a user, logs in (login page, form, root document, as spinnman does), creates a
//! one-board job, waits until it is ready and boots its board straight over UDP. Then, for
//! `--seconds` each (5; `--quick`: 1), after a 0.3 s warm-up, CMD_VER round trips windowed
//! exactly like `scripts/bench-rest-load.py`'s `windowed` (`--window` requests outstanding, 8;
//! each reply's sequence number checked against those outstanding; a new request for each
//! reply; after a second without a reply the window is sent again):
//!
//! - `scp_proxied_rust`: MSG frames on ONE channel (OPEN to chip (0, 0), port 17893) of one
//!   websocket over TLS (`wss://`, what spinnman uses);
//! - `scp_proxied_plain_rust`: the same over plain `ws://` (what TLS costs);
//! - `scp_direct_rust`: the same datagrams on a UDP socket straight to the board.
//!
//! One JSON line per figure, as `bench-rest-load.py` prints them (`{"figure": ..., "n": ...,
//! "seconds": ..., "rate": ...}`, with the server's and the client's CPU microseconds per round
//! trip), then `{"figure": "proxy_cost_rust", ...}`: direct / proxied.

use spinnbed_realtime::serve::rest::accounts::Accounts;
use spinnbed_tests::rest_client::{
    self, Client, Ws, boot, call, create_job, frame, job_path, login, open, wait_ready, words, ws_connect,
};
use spinnbed_tests::{Served, repo_root};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

/// The benchmarks' machine (`tests/spalloc/bench_rest.toml`, at 127.60.0.0 for
/// `scripts/bench-rest.sh`'s own server) moves to this base.
const BASE: &str = "127.61.0.0";

const MACHINE: &str = "benchrest";
const USER: (&str, &str) = ("bench", "proxy-load-bench-password");
/// The board's SCP port.
const SCP_PORT: u16 = 17893;
/// How long to wait for a reply before sending the window again.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(1);
/// Receive timeouts tolerated in one figure.
const MAX_TIMEOUTS: u32 = 5;
/// The figures, in the order they are measured.
const FIGURES: [&str; 3] = ["scp_proxied_rust", "scp_proxied_plain_rust", "scp_direct_rust"];

struct Options {
    seconds: f64,
    window: usize,
    /// Only the figure of this name (for profiling one path).
    only: Option<String>,
    /// Keep the emulated board's SC&MP timing model on (`[machine.scamp]`'s defaults: a real
    /// board's pace, 38 µs per CMD_VER) instead of the scenario's zero-time board.
    scamp: bool,
}

impl Options {
    fn wants(&self, figure: &str) -> bool {
        self.only.as_deref().is_none_or(|f| f == figure)
    }
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        seconds: 5.0,
        window: 8,
        only: None,
        scamp: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            // `cargo bench` passes --bench to a harness-less target.
            "--bench" => {}
            "--quick" => o.seconds = 1.0,
            "--scamp" => o.scamp = true,
            "--seconds" => {
                let v = value("--seconds")?;
                o.seconds = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| format!("--seconds {v:?}: expected a positive number"))?;
            }
            "--window" => {
                let v = value("--window")?;
                o.window = v
                    .parse()
                    .ok()
                    .filter(|w| (1..=1000).contains(w))
                    .ok_or_else(|| format!("--window {v:?}: expected 1 to 1000"))?;
            }
            "--only" => {
                let v = value("--only")?;
                if !FIGURES.contains(&v.as_str()) {
                    return Err(format!("--only {v:?}: expected one of {FIGURES:?}"));
                }
                o.only = Some(v);
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?} (--quick, --seconds S, --window W, --only FIGURE, --scamp)"
                ));
            }
        }
    }
    Ok(o)
}

/// CPU time (user + system) so far of this process's threads: the client's (this thread, which
/// runs the client's current-thread runtime) and the server's (every other thread: the loop,
/// the runtime's workers, the password checks).
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    server: Duration,
    client: Duration,
}

impl Cpu {
    fn now() -> Cpu {
        // Clock ticks are 100 a second (USER_HZ) on every Linux this runs on; the figures are
        // averages per round trip over seconds, so ticks suffice.
        const TICK: Duration = Duration::from_millis(10);
        let mut cpu = Cpu::default();
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return cpu;
        };
        let me = std::process::id().to_string();
        for t in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
                continue;
            };
            // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
            let used = TICK * (ticks(14) + ticks(15));
            if t.file_name().to_str() == Some(me.as_str()) {
                cpu.client += used;
            } else {
                cpu.server += used;
            }
        }
        cpu
    }
}

/// One way of making a CMD_VER round trip.
trait Link {
    async fn send(&mut self, datagram: &[u8]);
    /// The next datagram, or `None` after [`RECEIVE_TIMEOUT`].
    async fn receive(&mut self) -> Option<Vec<u8>>;
}

/// A channel of the proxy's websocket.
struct Proxied {
    ws: Ws,
    channel: u32,
}

impl Link for Proxied {
    async fn send(&mut self, datagram: &[u8]) {
        let mut f = words(&[2, self.channel]);
        f.extend_from_slice(datagram);
        rest_client::send(&mut self.ws, f).await;
    }

    async fn receive(&mut self) -> Option<Vec<u8>> {
        let f = tokio::time::timeout(RECEIVE_TIMEOUT, frame(&mut self.ws)).await.ok()?;
        assert_eq!(
            (f.len() >= 8, rest_client::word(&f, 0), rest_client::word(&f, 1)),
            (true, 2, self.channel),
            "not a MSG on the channel: {f:?}"
        );
        Some(f[8..].to_vec())
    }
}

/// A UDP socket connected to the board.
struct Direct {
    sock: tokio::net::UdpSocket,
    buf: Vec<u8>,
}

impl Link for Direct {
    async fn send(&mut self, datagram: &[u8]) {
        self.sock.send(datagram).await.expect("send a datagram");
    }

    async fn receive(&mut self) -> Option<Vec<u8>> {
        let n = tokio::time::timeout(RECEIVE_TIMEOUT, self.sock.recv(&mut self.buf))
            .await
            .ok()?
            .expect("receive a datagram");
        Some(self.buf[..n].to_vec())
    }
}

/// The bytes spinnman's GetVersion sends to chip (0, 0): 2 pad bytes, the SDP header (flags
/// 0x87, tag 0xFF, port 0 cpu 0, from port 7 cpu 31, y, x, from y, x), the SCP header
/// (CMD_VER = 0, `seq`) and three zero arguments.
fn ver_request(seq: u16) -> Vec<u8> {
    let mut d = vec![0, 0, 0x87, 0xFF, 0, 0xFF, 0, 0, 0, 0];
    d.extend_from_slice(&0u16.to_le_bytes());
    d.extend_from_slice(&seq.to_le_bytes());
    d.extend_from_slice(&[0; 12]);
    d
}

/// A figure: round trips, seconds, receive timeouts.
struct Measured {
    n: u64,
    seconds: f64,
    timeouts: u32,
}

/// CMD_VER round trips on `link` for `seconds`, `window` outstanding (bench-rest-load.py's
/// `windowed`).
async fn windowed(link: &mut impl Link, seconds: f64, window: usize) -> Measured {
    let mut outstanding = BTreeSet::new();
    let mut seq = 0u16;
    let mut done = 0u64;
    let mut timeouts = 0u32;
    async fn send_one(link: &mut impl Link, seq: &mut u16, outstanding: &mut BTreeSet<u16>) {
        *seq = seq.wrapping_add(1);
        outstanding.insert(*seq);
        link.send(&ver_request(*seq)).await;
    }
    for _ in 0..window {
        send_one(link, &mut seq, &mut outstanding).await;
    }
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(seconds);
    loop {
        let Some(reply) = link.receive().await else {
            timeouts += 1;
            assert!(timeouts <= MAX_TIMEOUTS, "{timeouts} receive timeouts");
            outstanding.clear();
            for _ in 0..window {
                send_one(link, &mut seq, &mut outstanding).await;
            }
            continue;
        };
        assert!(reply.len() >= 14, "a short reply: {reply:?}");
        let rc = u16::from_le_bytes([reply[10], reply[11]]);
        let rseq = u16::from_le_bytes([reply[12], reply[13]]);
        assert_eq!(rc, 0x80, "CMD_VER answered with rc {rc:#x}");
        if !outstanding.remove(&rseq) {
            continue; // a late reply to a request given up on
        }
        done += 1;
        let now = Instant::now();
        if now < end {
            send_one(link, &mut seq, &mut outstanding).await;
        } else if outstanding.is_empty() {
            return Measured {
                n: done,
                seconds: (now - t0).as_secs_f64(),
                timeouts,
            };
        } else {
            assert!(
                now < end + Duration::from_secs(5),
                "{} replies missing at the end",
                outstanding.len()
            );
        }
    }
}

/// Warms `link` up, measures it and prints its JSON line; returns the rate.
async fn figure(name: &str, link: &mut impl Link, o: &Options) -> f64 {
    windowed(link, 0.3, o.window).await;
    let before = Cpu::now();
    let m = windowed(link, o.seconds, o.window).await;
    let after = Cpu::now();
    let per = |d: Duration| (d.as_secs_f64() * 1e6 / m.n.max(1) as f64 * 100.0).round() / 100.0;
    let rate = m.n as f64 / m.seconds;
    println!(
        "{}",
        serde_json::json!({
            "figure": name,
            "n": m.n,
            "seconds": (m.seconds * 1000.0).round() / 1000.0,
            "rate": rate,
            "timeouts": m.timeouts,
            "window": o.window,
            "server_cpu_us_per_rt": per(after.server.saturating_sub(before.server)),
            "client_cpu_us_per_rt": per(after.client.saturating_sub(before.client)),
        })
    );
    rate
}

async fn keepalive(c: &Client, s: &rest_client::Session, id: u64) {
    let r = c
        .send(
            call("PUT", format!("{}/keepalive", job_path(id)))
                .as_(s)
                .body("text/plain", "alive"),
        )
        .await;
    assert_eq!(r.status, 200, "keepalive: {r:?}");
}

async fn proxied(c: &Client, s: &rest_client::Session, id: u64, tls: bool) -> Proxied {
    let mut ws = ws_connect(c, id, Some(&s.cookie), Some(&s.csrf), tls)
        .await
        .unwrap_or_else(|(status, body)| panic!("proxy refused: {status} {}", String::from_utf8_lossy(&body)));
    let channel = open(&mut ws, 0, 0, 0).await;
    Proxied { ws, channel }
}

async fn direct(ip: Ipv4Addr) -> Direct {
    let sock = tokio::net::UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("a UDP socket");
    sock.connect(SocketAddrV4::new(ip, SCP_PORT))
        .await
        .expect("connect to the board");
    Direct {
        sock,
        buf: vec![0; 65536],
    }
}

fn main() {
    let o = options().unwrap_or_else(|e| {
        eprintln!("proxy_load: {e}");
        std::process::exit(2);
    });
    let dir = tempfile::tempdir().expect("a temporary directory");
    let text = std::fs::read_to_string(repo_root().join("tests/spalloc/bench_rest.toml")).expect("the scenario");
    assert!(text.contains("base = \"127.60.0.0\""), "the scenario's base moved");
    let scenario = dir.path().join("bench_rest.toml");
    let mut text = text.replace("127.60.0.0", BASE);
    if o.scamp {
        let off = "[machine.scamp]\nenabled = false\n";
        assert!(text.contains(off), "the scenario no longer turns the SC&MP model off");
        text = text.replace(off, "");
    }
    std::fs::write(&scenario, text).expect("write the scenario");
    let state = dir.path().join("state");
    let mut accounts = Accounts::default();
    accounts.set_user(USER.0, USER.1, false).expect("a user");
    accounts.save(&state).expect("users.json");
    let served = Served::start_with_rest(&scenario, &state);
    let addr = served.rest.expect("the REST API's address");
    let c = Client::new(addr, &state.join("tls/cert.pem"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let s = login(&c, USER).await;
        let t = Instant::now();
        let id = create_job(&c, &s, MACHINE).await;
        let ip = wait_ready(&c, &s, id).await;
        let ready = t.elapsed();
        let t = Instant::now();
        boot(ip).await;
        println!(
            "{}",
            serde_json::json!({
                "figure": "setup_rust", "job": id, "board": ip.to_string(),
                "ready_s": (ready.as_secs_f64() * 100.0).round() / 100.0,
                "boot_s": (t.elapsed().as_secs_f64() * 100.0).round() / 100.0,
            })
        );

        let mut rates = Vec::new();
        for name in FIGURES.into_iter().filter(|f| o.wants(f)) {
            keepalive(&c, &s, id).await;
            let rate = if name == "scp_direct_rust" {
                figure(name, &mut direct(ip).await, &o).await
            } else {
                let tls = name == "scp_proxied_rust";
                figure(name, &mut proxied(&c, &s, id, tls).await, &o).await
            };
            rates.push((name, rate));
        }
        let rate = |name: &str| rates.iter().find(|(n, _)| *n == name).map(|(_, r)| *r);
        if let (Some(proxied), Some(direct)) = (rate(FIGURES[0]), rate(FIGURES[2])) {
            println!(
                "{}",
                serde_json::json!({
                    "figure": "proxy_cost_rust",
                    "direct_over_proxied": (direct / proxied * 100.0).round() / 100.0,
                    "goal": 2.0,
                })
            );
        }

        let r = c
            .send(call("DELETE", format!("{}?reason=bench+done", job_path(id))).as_(&s))
            .await;
        assert_eq!(r.status, 204, "destroy: {r:?}");
    });
    let _ = served.stop();
}
