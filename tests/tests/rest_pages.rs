//! The status pages for people, opened in a real browser: Debian's headless Chromium.
//!
//! `sim serve` runs in-process with its REST API (`Served::start_with_rest`) on a 2 × 1 triad
//! machine emulated at 127.45.0.0 (one dead board, one dead link). Two users are written into
//! the state directory's `users.json` before it starts. Over plain HTTP on the REST port the
//! test logs both in through the login form (cookie and CSRF token, as spinnman does), checks
//! that a page without a login redirects to the login form, and creates a job for each through
//! the REST API: alice's holds a whole triad, bob's one board; it waits until both are READY.
//!
//! Then Chromium: first `chromium --headless --dump-dom` of a status page with a fresh profile,
//! which must land on the login form. Chromium has no flag to set a cookie or a header, so the
//! logged-in part drives one headless Chromium over its DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: JSON messages ending in NUL on file descriptors 3 and 4, wired
//! to two FIFOs by `bash`): the browser opens the login page, a person's name and password go
//! into the form and its button is clicked, and from then on the browser's own session cookie
//! carries every page — nothing is injected. Each page's DOM is read back as the browser built
//! it, and the machine and job pages are screenshotted (`Page.captureScreenshot`), decoded and
//! checked to show the job's colour; the PNGs are kept in `CARGO_TARGET_TMPDIR/rest_pages/`
//! for a person to look at.
//!
//! Chromium must be installed (`.ci/run` installs Debian's `chromium` package); without it the
//! test fails and says how to install it — it never skips.

use serde_json::{Value, json};
use spinnbed_realtime::serve::rest::accounts::Accounts;
use spinnbed_tests::Served;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCENARIO: &str = r#"# The machine of tests/tests/rest_pages.rs: 2 x 1 triads (6 boards, (1, 0, 2) dead, the
# north link of (1, 0, 0) dead), emulated at 127.45.0.0, with short power timings.
[run]
name = "rest-pages"
horizon = "10m"

[[machine]]
name = "spin6"
width = 2
height = 1
dead_boards = [[1, 0, 2]]
dead_links = [[1, 0, 0, "north"]]

[machine.ip]
base = "127.45.0.0"

[machine.timing]
power_on = "0.2s"
power_off = "20ms"
boot = "0.2s"

[policy]
seconds_before_free = "1s"

[host]
post_power_on_delay = "0.2s"

[workload]
source = "synthetic"
jobs = 1
"#;

const ALICE_PASSWORD: &str = "alice-pages-secret";
const BOB_PASSWORD: &str = "bob-pages-secret";
/// Job colours of the map, as `realtime::serve::rest::status` picks them (id mod 6).
const JOB_COLOURS: [[u8; 3]; 6] = [
    [0x00, 0x72, 0xB2],
    [0xE6, 0x9F, 0x00],
    [0x00, 0x9E, 0x73],
    [0xCC, 0x79, 0xA7],
    [0x56, 0xB4, 0xE9],
    [0xF0, 0xE4, 0x42],
];

// ---- Plain HTTP on the REST port ---------------------------------------------------------

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `JSESSIONID` the reply sets.
    fn session_cookie(&self) -> Option<String> {
        let v = self.header("set-cookie")?;
        let first = v.split(';').next()?.trim();
        first.strip_prefix("JSESSIONID=").map(str::to_string)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// One HTTP/1.0 request (the server closes the connection after the reply).
fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: Option<(&str, &[u8])>) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some((ct, b)) = body {
        req.push_str(&format!("Content-Type: {ct}\r\nContent-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    if let Some((_, b)) = body {
        bytes.extend_from_slice(b);
    }
    s.write_all(&bytes).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no reply head: {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A logged-in session: its cookie and CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

impl Session {
    fn cookie_header(&self) -> String {
        format!("JSESSIONID={}", self.cookie)
    }

    fn get(&self, addr: SocketAddr, path: &str) -> Reply {
        http(addr, "GET", path, &[("Cookie", &self.cookie_header())], None)
    }
}

/// Logs in through the form, as spinnman does: the login page's cookie and CSRF token, then
/// the form; then the root document's CSRF token for API calls.
fn login(addr: SocketAddr, user: &str, password: &str) -> Session {
    let page = http(addr, "GET", "/spalloc/system/login.html", &[], None);
    assert_eq!(page.status, 200, "{page:?}");
    let anon = page.session_cookie().expect("the login page sets a cookie");
    let marker = "name=\"_csrf\" value=\"";
    let at = page.body.find(marker).expect("the login form's CSRF field") + marker.len();
    let token = &page.body[at..at + page.body[at..].find('"').unwrap()];
    let form = format!("_csrf={token}&username={user}&password={password}&submit=submit");
    let done = http(
        addr,
        "POST",
        "/spalloc/system/perform_login",
        &[("Cookie", &format!("JSESSIONID={anon}"))],
        Some(("application/x-www-form-urlencoded", form.as_bytes())),
    );
    assert_eq!(done.status, 302, "{done:?}");
    let cookie = done.session_cookie().expect("a logged-in session");
    let root = http(
        addr,
        "GET",
        "/spalloc/srv/spalloc/",
        &[("Cookie", &format!("JSESSIONID={cookie}"))],
        None,
    );
    assert_eq!(root.status, 200, "{root:?}");
    let csrf = root.json()["csrf-token"].as_str().unwrap().to_string();
    Session { cookie, csrf }
}

/// Creates a job through the REST API; returns its id.
fn create_job(addr: SocketAddr, s: &Session, body: Value) -> u64 {
    let body = body.to_string();
    let r = http(
        addr,
        "POST",
        "/spalloc/srv/spalloc/jobs",
        &[("Cookie", &s.cookie_header()), ("X-CSRF-TOKEN", &s.csrf)],
        Some(("application/json", body.as_bytes())),
    );
    assert_eq!(r.status, 201, "{r:?}");
    r.json()["job-id"].as_u64().unwrap()
}

/// Waits (long polls) until the job is READY.
fn wait_ready(addr: SocketAddr, s: &Session, id: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = s.get(addr, &format!("/spalloc/srv/spalloc/jobs/{id}?wait=false"));
        assert_eq!(r.status, 200, "{r:?}");
        match r.json()["state"].as_str() {
            Some("READY") => return,
            Some("QUEUED" | "POWER") if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => panic!("job {id} is {other:?}, not READY: {r:?}"),
        }
    }
}

/// The job's boards, from the REST API.
fn job_boards(addr: SocketAddr, s: &Session, id: u64) -> Vec<(u64, u64, u64)> {
    let r = s.get(addr, &format!("/spalloc/srv/spalloc/jobs/{id}/machine"));
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["boards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let c = |i: usize| b[i].as_u64().unwrap();
            (c(0), c(1), c(2))
        })
        .collect()
}

// ---- Chromium ----------------------------------------------------------------------------

/// Chromium on the PATH, or a failure saying how to install it.
fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "chromium is not installed, and this test opens the status pages in it: \
                 install Debian's package with `apt-get install -y chromium` (.ci/run does)"
            )
        })
}

/// Flags for every headless run: a throwaway profile, nothing in the background. CI runs as
/// root, where Chromium refuses its sandbox.
fn headless_flags(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1280,1000",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// `chromium --headless --dump-dom URL` with a fresh profile.
fn dump_dom(chromium: &Path, dir: &Path, url: &str) -> String {
    let profile = tempfile::tempdir_in(dir).unwrap();
    let out = Command::new(chromium)
        .args(headless_flags(profile.path()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run chromium --dump-dom");
    assert!(
        out.status.success(),
        "chromium --dump-dom {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One headless Chromium driven over the DevTools protocol on a pipe.
struct Browser {
    child: Child,
    to: std::fs::File,
    from: BufReader<std::fs::File>,
    next: u64,
    session: String,
    log: PathBuf,
    watchdog: Option<std::sync::mpsc::Sender<()>>,
}

impl Browser {
    /// Starts Chromium with `--remote-debugging-pipe` and opens a page. `bash` wires the
    /// browser's descriptors 3 (commands in) and 4 (replies out) to two FIFOs; opening them
    /// here pairs with bash's opening them there. A watchdog kills the browser (by its pid) if
    /// the test hangs, so that a stuck read ends.
    fn launch(chromium: &Path, dir: &Path) -> Browser {
        let profile = dir.join("profile");
        let (fifo_in, fifo_out, log) = (dir.join("cdp-in"), dir.join("cdp-out"), dir.join("chromium.log"));
        for f in [&fifo_in, &fifo_out] {
            let ok = Command::new("mkfifo").arg(f).status().expect("mkfifo").success();
            assert!(ok, "mkfifo {}", f.display());
        }
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg("exec \"$0\" \"$@\" --remote-debugging-pipe about:blank 3<\"$CDP_IN\" 4>\"$CDP_OUT\"")
            .arg(chromium)
            .args(headless_flags(&profile))
            .env("CDP_IN", &fifo_in)
            .env("CDP_OUT", &fifo_out)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.join("chromium.err")).unwrap());
        let child = cmd.spawn().expect("start chromium");
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let to = std::fs::OpenOptions::new().write(true).open(&fifo_in);
            let from = std::fs::File::open(&fifo_out);
            let _ = tx.send((to, from));
        });
        let (to, from) = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok((Ok(to), Ok(from))) => (to, from),
            other => {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
                panic!(
                    "chromium did not open its DevTools pipe: {other:?}\n{}",
                    std::fs::read_to_string(dir.join("chromium.err")).unwrap_or_default()
                );
            }
        };
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(Duration::from_secs(300)) {
                eprintln!("chromium (pid {pid}) still running after 300 s: killing it");
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            }
        });
        let mut b = Browser {
            child,
            to,
            from: BufReader::new(from),
            next: 0,
            session: String::new(),
            log: dir.join("chromium.err"),
            watchdog: Some(stop),
        };
        let target = b.send("Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"].as_str().expect("a target id").to_string();
        let attached = b.send("Target.attachToTarget", json!({"targetId": target, "flatten": true}));
        b.session = attached["sessionId"].as_str().expect("a session id").to_string();
        b.send(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 1000, "deviceScaleFactor": 1, "mobile": false}),
        );
        b
    }

    /// Sends a command (to the page once attached) and returns its result.
    fn send(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to chromium");
        loop {
            let mut buf = Vec::new();
            let n = self.from.read_until(0, &mut buf).expect("read from chromium");
            assert!(
                n > 0,
                "chromium closed its DevTools pipe during {method}:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            buf.pop();
            let v: Value = serde_json::from_slice(&buf).expect("DevTools JSON");
            if v["id"] == json!(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method} failed: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    /// A JavaScript expression's value in the page (the test's script, not the page's: the
    /// pages have none).
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.send(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// Waits until the page at `url` has loaded.
    fn wait_for(&mut self, url: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let want = format!("complete {url}");
        loop {
            let at = self.eval("document.readyState + ' ' + location.href");
            if at.as_str() == Some(&want) {
                return;
            }
            assert!(Instant::now() < deadline, "waiting for {want}, at {at}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Opens `url` and returns the DOM the browser built.
    fn open(&mut self, url: &str) -> String {
        let r = self.send("Page.navigate", json!({"url": url}));
        assert!(r.get("errorText").is_none(), "{url}: {r}");
        self.wait_for(url);
        self.dom()
    }

    fn dom(&mut self) -> String {
        self.eval("document.documentElement.outerHTML")
            .as_str()
            .expect("the DOM as text")
            .to_string()
    }

    /// The page as a person sees it (the 1280 × 1000 viewport), as PNG.
    fn screenshot(&mut self) -> Vec<u8> {
        let r = self.send("Page.captureScreenshot", json!({"format": "png"}));
        base64_decode(r["data"].as_str().expect("screenshot data"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.watchdog.take().map(|w| w.send(()));
        self.session.clear();
        let mut bytes = json!({"id": 0, "method": "Browser.close"}).to_string().into_bytes();
        bytes.push(0);
        let _ = self.to.write_all(&bytes);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let digits: Vec<u32> = chunk.iter().filter(|c| **c != b'=').map(|c| val(*c)).collect();
        let n = digits.iter().fold(0u32, |a, d| a << 6 | d) << (6 * (4 - digits.len()));
        out.extend_from_slice(&n.to_be_bytes()[1..digits.len()]);
    }
    out
}

/// A PNG's size and how many of its pixels have each colour (RGB).
fn png_colours(png_bytes: &[u8]) -> (u32, u32, std::collections::BTreeMap<[u8; 3], usize>) {
    let mut decoder = png::Decoder::new(png_bytes);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().expect("a valid PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    let mut counts = std::collections::BTreeMap::new();
    for px in buf[..info.buffer_size()].chunks(channels) {
        *counts.entry([px[0], px[1], px[2]]).or_insert(0) += 1;
    }
    (info.width, info.height, counts)
}

/// How many pixels are within 3 of `rgb` in every channel.
fn pixels_near(counts: &std::collections::BTreeMap<[u8; 3], usize>, rgb: [u8; 3]) -> usize {
    counts
        .iter()
        .filter(|(c, _)| c.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 3))
        .map(|(_, n)| n)
        .sum()
}

fn keep(name: &str, png: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rest_pages");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, png).unwrap();
    path
}

// ---- The test ----------------------------------------------------------------------------

#[test]
fn a_person_sees_the_live_machine_and_their_job_in_headless_chromium() {
    let t0 = Instant::now();
    let chromium = chromium();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("pages.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let state = dir.path().join("state");
    let mut accounts = Accounts::default();
    accounts.set_user("alice", ALICE_PASSWORD, false).unwrap();
    accounts.set_user("bob", BOB_PASSWORD, false).unwrap();
    accounts.save(&state).unwrap();
    let served = Served::start_with_rest(&scenario, &state);
    let addr = served.rest.expect("the REST API's address");
    let base = format!("http://{addr}");

    // Without a login every status page sends the browser to the login page.
    for page in [
        "/spalloc/system/",
        "/spalloc/system/list_machines",
        "/spalloc/system/machine_info/spin6",
        "/spalloc/system/list_jobs",
        "/spalloc/system/job_info/1",
    ] {
        let r = http(addr, "GET", page, &[], None);
        assert_eq!(r.status, 302, "{page}: {r:?}");
        assert_eq!(r.header("location"), Some("/spalloc/system/login.html"), "{page}");
    }

    // Two users, a job each, both READY.
    let alice = login(addr, "alice", ALICE_PASSWORD);
    let bob = login(addr, "bob", BOB_PASSWORD);
    let mine = create_job(
        addr,
        &alice,
        json!({"num-boards": 3, "machine-name": "spin6", "keepalive-interval": "PT300S"}),
    );
    let theirs = create_job(
        addr,
        &bob,
        json!({"num-boards": 1, "machine-name": "spin6", "keepalive-interval": "PT300S"}),
    );
    wait_ready(addr, &alice, mine);
    wait_ready(addr, &bob, theirs);
    let my_boards = job_boards(addr, &alice, mine);
    let their_boards = job_boards(addr, &bob, theirs);
    assert_eq!(my_boards.len(), 3, "{my_boards:?}");
    assert_eq!(their_boards.len(), 1, "{their_boards:?}");
    let ready = t0.elapsed();

    // Another user's job page is the same 404 as a job that does not exist.
    let other = alice.get(addr, &format!("/spalloc/system/job_info/{theirs}"));
    let none = alice.get(addr, "/spalloc/system/job_info/999");
    assert_eq!((other.status, none.status), (404, 404));
    assert_eq!(other.body, none.body);
    assert!(other.body.contains("No such job"), "{}", other.body);

    // A browser without a session lands on the login form.
    let dom = dump_dom(
        &chromium,
        dir.path(),
        &format!("{base}/spalloc/system/machine_info/spin6"),
    );
    assert!(dom.contains("name=\"_csrf\""), "{dom}");
    assert!(dom.contains("name=\"password\""), "{dom}");
    let dumped = t0.elapsed();

    // alice logs in with the form, in the browser.
    let mut browser = Browser::launch(&chromium, dir.path());
    let form = browser.open(&format!("{base}/spalloc/system/login.html"));
    assert!(form.contains("perform_login"), "{form}");
    let submitted = browser.eval(&format!(
        "(() => {{ const f = document.forms[0]; f.username.value = 'alice'; \
         f.password.value = '{ALICE_PASSWORD}'; f.querySelector('button[type=submit]').click(); return true; }})()"
    ));
    assert_eq!(submitted, json!(true));
    browser.wait_for(&format!("{base}/spalloc/system/"));
    let home = browser.dom();
    assert!(home.contains("Logged in as <b>alice</b>"), "{home}");
    assert!(home.contains("href=\"/spalloc/system/machine_info/spin6\""), "{home}");

    // The machine: alice's job on each of its boards, bob's board in use without its id or
    // owner, the dead board and link marked, powered boards marked.
    let machine = browser.open(&format!("{base}/spalloc/system/machine_info/spin6"));
    assert!(machine.contains("<svg"), "{machine}");
    for (x, y, z) in &my_boards {
        let g = format!("<g class=\"board job\" data-board=\"{x},{y},{z}\" data-job=\"{mine}\" data-power=\"on\">");
        assert!(machine.contains(&g), "{g} missing:\n{machine}");
    }
    assert_eq!(
        machine.matches("font-weight=\"600\" fill=\"").count(),
        3,
        "one id label per board of the job:\n{machine}"
    );
    let (x, y, z) = their_boards[0];
    let g = format!("<g class=\"board in-use\" data-board=\"{x},{y},{z}\" data-power=\"on\">");
    assert!(machine.contains(&g), "{g} missing:\n{machine}");
    assert!(!machine.contains(&format!("data-job=\"{theirs}\"")), "{machine}");
    assert!(!machine.contains("bob"), "bob's name is not alice's to see:\n{machine}");
    assert!(
        machine.contains("<g class=\"board dead\" data-board=\"1,0,2\" data-power=\"off\">"),
        "{machine}"
    );
    assert!(machine.contains("data-link=\"1,0,0,north\""), "{machine}");
    assert!(
        machine.contains("<meta http-equiv=\"refresh\" content=\"10\">"),
        "{machine}"
    );
    assert!(!machine.contains("<script"), "{machine}");
    let shot = browser.screenshot();
    let machine_png = keep("machine_info.png", &shot);
    let (w, h, colours) = png_colours(&shot);
    assert_eq!((w, h), (1280, 1000), "{}", machine_png.display());
    assert!(
        colours.len() > 20,
        "{} colours: {}",
        colours.len(),
        machine_png.display()
    );
    let job_colour = JOB_COLOURS[(mine % 6) as usize];
    let painted = pixels_near(&colours, job_colour);
    assert!(
        painted > 3 * 500,
        "the job's three hexagons in {job_colour:02x?}: only {painted} pixels in {}",
        machine_png.display()
    );
    let dead = pixels_near(&colours, [0x3A, 0x3A, 0x3A]);
    assert!(dead > 300, "the dead board: {dead} pixels in {}", machine_png.display());

    // alice's job: READY, its boards and connections.
    let job = browser.open(&format!("{base}/spalloc/system/job_info/{mine}"));
    assert!(job.contains(&format!("<h1>Job {mine}</h1>")), "{job}");
    assert!(job.contains("<span class=\"state st-READY\">READY</span>"), "{job}");
    for (x, y, z) in &my_boards {
        assert!(job.contains(&format!("<tr data-board=\"{x},{y},{z}\">")), "{job}");
    }
    assert!(job.contains("<h2>Connections</h2>"), "{job}");
    assert!(job.contains("127.45."), "{job}");
    let job_png = keep("job_info.png", &browser.screenshot());
    let (_, _, colours) = png_colours(&std::fs::read(&job_png).unwrap());
    assert!(colours.len() > 20, "{}", job_png.display());
    assert!(
        pixels_near(&colours, [0x00, 0x9E, 0x73]) > 100,
        "the green READY badge in {}",
        job_png.display()
    );

    // Her job list has her job and not bob's; bob's page is a 404 in her browser too.
    let jobs = browser.open(&format!("{base}/spalloc/system/list_jobs"));
    assert!(jobs.contains(&format!("<tr data-job=\"{mine}\">")), "{jobs}");
    assert!(!jobs.contains(&format!("data-job=\"{theirs}\"")), "{jobs}");
    let list = browser.open(&format!("{base}/spalloc/system/list_machines"));
    assert!(list.contains(">spin6</a>"), "{list}");
    let not_hers = browser.open(&format!("{base}/spalloc/system/job_info/{theirs}"));
    assert!(not_hers.contains("No such job"), "{not_hers}");
    assert!(!not_hers.contains("bob"), "{not_hers}");

    // Logging out ends the session: the next page is the login form.
    let out = browser.eval("document.querySelector('nav form button').click(), true");
    assert_eq!(out, json!(true));
    browser.wait_for(&format!("{base}/spalloc/system/login.html"));
    let r = browser.send(
        "Page.navigate",
        json!({"url": format!("{base}/spalloc/system/list_jobs")}),
    );
    assert!(r.get("errorText").is_none(), "{r}");
    browser.wait_for(&format!("{base}/spalloc/system/login.html"));
    let after = browser.dom();
    assert!(after.contains("name=\"_csrf\""), "{after}");
    drop(browser);
    let browsed = t0.elapsed();

    served.stop();
    eprintln!(
        "rest_pages: jobs READY after {:.1} s, --dump-dom done at {:.1} s, browser done at {:.1} s, \
         total {:.1} s; screenshots {} and {}",
        ready.as_secs_f64(),
        dumped.as_secs_f64(),
        browsed.as_secs_f64(),
        t0.elapsed().as_secs_f64(),
        machine_png.display(),
        job_png.display()
    );
}
