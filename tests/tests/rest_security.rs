//! Each security refusal of issue #14 ("Bad input and security"), against `sim serve`'s REST
//! API and websocket proxy, in process ([`Served::start_with_rest`]) on
//! `tests/spalloc/rest_security.toml`: one triad emulated on loopback, users `alice` and `bob`
//! (passwords) and a bearer token of alice's, written to the state directory's `users.json`
//! before the server starts.
//!
//! - Logins and sessions: a wrong password, an unknown user or a form without its CSRF token
//!   makes no session (401, a JSON `message`, no `JSESSIONID`); a wrong bearer token neither;
//!   the API without a session is 401; the login page's anonymous session is not a login; a
//!   login replaces the session id (the old cookie is worthless).
//! - CSRF: create job, keepalive, delete, memory write, power and router reset without the
//!   session's token, or with a wrong one (another session's, the login page's), are refused
//!   (403) and change nothing.
//! - Another user's job (live or destroyed) answers every job call, and the proxy handshake,
//!   exactly as a job that does not exist does.
//! - The websocket proxy: garbage, truncated, oversized and text frames close that websocket
//!   (1007) or its connection and nothing else: a second websocket of the same job keeps
//!   reading board memory through proxied SCP; OPEN to a chip outside the job and MSG on a
//!   closed channel are ERROR frames, not disconnects.
//! - Connections: abandoned TLS handshakes and silent connections are closed after the
//!   handshake timeout and do not hold up a good client; connections that finish the handshake
//!   and then send no (or half a) request head, or go quiet after a request, are closed after
//!   the header timeout; connections beyond the limit are closed at once, and a good client is
//!   served again once they go.
//! - A flood of wrong passwords is checked a few at a time (argon2 takes 19 MiB a check): the
//!   server's memory stays bounded and a good login still gets through.
//!
//! Most checks use plain HTTP (the server answers both on one port); the bearer-token checks,
//! one user's whole session and the websocket that must keep working use TLS, trusting the
//! server's self-signed certificate. Each test has a server (and a machine base) of its own, so
//! they run side by side.
#![forbid(unsafe_code)]

use futures_util::SinkExt;
use spinnbed_realtime::serve::rest::accounts::Accounts;
use spinnbed_realtime::serve::rest::http::{HANDSHAKE_TIMEOUT, HEADER_TIMEOUT, MAX_CONNECTIONS};
use spinnbed_tests::rest_client::{
    CALL_TIMEOUT, Client, Got, Io, LOGIN_PAGE, ROOT, Session, Ws, boot, call, create_job, error_of, frame, get,
    job_doc, job_path, login, login_page, open, perform_login, recv, scp_read, send, wait_ready, words, ws_connect,
};
use spinnbed_tests::{Served, repo_root};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const ALICE: (&str, &str) = ("alice", "alice-password-1");
const BOB: (&str, &str) = ("bob", "bob-password-22");
/// No job has this id.
const NO_JOB: u64 = 999_999;
/// SDRAM of the job's board that the tests write and read.
const SDRAM: u32 = 0x6000_1000;
/// The test scenario's machine.
const MACHINE: &str = "triad";

// ---------------------------------------------------------------------------------------------
// A server per test.

struct Server {
    served: Served,
    client: Client,
    /// Alice's bearer token.
    token: String,
    _dir: tempfile::TempDir,
}

/// `sim serve` with the REST API on the test scenario, its machine moved to `base`.
fn start(base: &str) -> Server {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let text = std::fs::read_to_string(repo_root().join("tests/spalloc/rest_security.toml")).expect("the scenario");
    assert!(text.contains("base = \"127.50.0.0\""));
    let scenario = dir.path().join("rest_security.toml");
    std::fs::write(&scenario, text.replace("127.50.0.0", base)).expect("write the scenario");
    let state = dir.path().join("state");
    let mut accounts = Accounts::default();
    accounts.set_user(ALICE.0, ALICE.1, false).expect("alice");
    accounts.set_user(BOB.0, BOB.1, false).expect("bob");
    let token = accounts.add_token(ALICE.0, false).expect("a token");
    accounts.save(&state).expect("users.json");
    let served = Served::start_with_rest(&scenario, &state);
    let addr = served.rest.expect("the REST API's address");
    let client = Client::new(addr, &state.join("tls/cert.pem"));
    Server {
        served,
        client,
        token,
        _dir: dir,
    }
}

impl Server {
    fn stop(self) {
        let _ = self.served.stop();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// `s` with its last character changed (a token that is almost right).
fn altered(s: &str) -> String {
    let last = if s.ends_with('0') { '1' } else { '0' };
    format!("{}{last}", &s[..s.len() - 1])
}

fn memory_path(id: u64, size: Option<usize>) -> String {
    let mut p = format!("{}/memory?x=0&y=0&address={SDRAM}", job_path(id));
    if let Some(n) = size {
        p += &format!("&size={n}");
    }
    p
}

async fn read_memory(c: &Client, s: &Session, id: u64, size: usize) -> Vec<u8> {
    let r = c.send(get(memory_path(id, Some(size))).cookie(&s.cookie)).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}

// ---------------------------------------------------------------------------------------------
// Logins, sessions and CSRF.

#[test]
fn logins_sessions_and_csrf_tokens_are_checked() {
    let server = start("127.50.0.0");
    let c = server.client.clone();
    let token = server.token.clone();
    runtime().block_on(async move {
        // The API without a session: 401, and no session made.
        for req in [
            get(ROOT),
            get("/spalloc/srv/spalloc/machines/"),
            get("/spalloc/srv/spalloc/jobs/"),
            get(job_path(1)),
            call("POST", "/spalloc/srv/spalloc/jobs/").body("application/json", r#"{"num-boards": 1}"#),
            call("PUT", format!("{}/keepalive", job_path(1))).body("text/plain", "alive"),
            call("DELETE", job_path(1)),
            get(ROOT).cookie("0123456789abcdef"),
            get(ROOT).cookie(""),
            get(ROOT).cookie("0123456789abcdef").csrf("0123456789abcdef"),
        ] {
            let what = format!("{} {} {:?}", req.method, req.path, req.headers);
            let r = c.send(req).await;
            assert_eq!((r.status, &r.cookie), (401, &None), "{what}: {r:?}");
        }

        // A wrong password, an unknown user, an empty password: 401, a JSON message, no
        // session; the login page's session stays anonymous.
        let (anon, form_csrf) = login_page(&c).await;
        let mut refusals = Vec::new();
        for (user, password) in [
            (ALICE.0, "alice-password-2"),
            (ALICE.0, BOB.1),
            ("nobody", ALICE.1),
            (ALICE.0, ""),
            ("", ""),
        ] {
            let r = perform_login(
                &c,
                Some(&anon),
                &[
                    ("_csrf", &form_csrf),
                    ("username", user),
                    ("password", password),
                    ("submit", "submit"),
                ],
            )
            .await;
            assert_eq!((r.status, &r.cookie), (401, &None), "{user}/{password}: {r:?}");
            assert_eq!(r.content_type.as_deref(), Some("application/json"), "{r:?}");
            assert!(r.json()["message"].is_string(), "{r:?}");
            refusals.push(r.body);
        }
        assert!(
            refusals.windows(2).all(|w| w[0] == w[1]),
            "a wrong password and an unknown user look the same"
        );
        // The login page's session is not a login.
        for req in [get(ROOT), get("/spalloc/srv/spalloc/jobs/")] {
            let r = c.send(req.cookie(&anon)).await;
            assert_eq!((r.status, &r.cookie), (401, &None), "{r:?}");
        }
        // The right password without the form's token (or with another), or without the
        // login page's session: no session.
        let (other_anon, other_token) = login_page(&c).await;
        for (cookie, csrf) in [
            (Some(anon.as_str()), None),
            (Some(anon.as_str()), Some("")),
            (Some(anon.as_str()), Some("0000")),
            (Some(anon.as_str()), Some(other_token.as_str())),
            (Some(other_anon.as_str()), Some(form_csrf.as_str())),
            (None, Some(form_csrf.as_str())),
        ] {
            let mut fields = vec![("username", ALICE.0), ("password", ALICE.1), ("submit", "submit")];
            if let Some(t) = csrf {
                fields.insert(0, ("_csrf", t));
            }
            let r = perform_login(&c, cookie, &fields).await;
            assert_eq!((r.status, &r.cookie), (401, &None), "{cookie:?} {csrf:?}: {r:?}");
            assert!(r.json()["message"].is_string(), "{r:?}");
        }

        // Bearer tokens (over TLS): a wrong or unknown one makes no session and reaches no API.
        let wrong = altered(&token);
        for bad in [
            wrong.as_str(),
            "x",
            &"0".repeat(64),
            &token.to_uppercase(),
            &format!("{token} {token}"),
        ] {
            let r = c.send(get(LOGIN_PAGE).bearer(bad).tls()).await;
            assert_eq!((r.status, &r.cookie), (401, &None), "{bad:?}: {r:?}");
            for req in [get(ROOT), get("/spalloc/srv/spalloc/jobs/")] {
                let r = c.send(req.bearer(bad).tls()).await;
                assert_eq!((r.status, &r.cookie), (401, &None), "{bad:?}: {r:?}");
            }
            let r = c
                .send(
                    call("POST", "/spalloc/srv/spalloc/jobs/")
                        .bearer(bad)
                        .body("application/json", r#"{"num-boards": 1}"#)
                        .tls(),
                )
                .await;
            assert_eq!(r.status, 401, "{r:?}");
        }
        // "Bearer" and no token is no token: the login page's anonymous session, not a login.
        let r = c.send(get(LOGIN_PAGE).bearer("").tls()).await;
        if let Some(anon) = &r.cookie {
            assert_eq!(c.send(get(ROOT).cookie(anon)).await.status, 401, "{r:?}");
        }
        // A wrong token does not fall back to a session cookie sent with it.
        let alice = login(&c, ALICE).await;
        let r = c.send(get(ROOT).cookie(&alice.cookie).bearer(&wrong).tls()).await;
        assert_eq!(r.status, 401, "{r:?}");
        // The right token does make a session (so the refusals above were for the token).
        let r = c.send(get(LOGIN_PAGE).bearer(&token).tls()).await;
        assert_eq!(r.status, 200, "{r:?}");
        let by_token = r.cookie.clone().expect("a session for the token");
        assert_eq!(c.send(get(ROOT).cookie(&by_token).tls()).await.status, 200);

        // A login replaces the session id: the login page's id is worthless afterwards.
        let (before, form_csrf) = login_page(&c).await;
        let r = perform_login(
            &c,
            Some(&before),
            &[
                ("_csrf", &form_csrf),
                ("username", ALICE.0),
                ("password", ALICE.1),
                ("submit", "submit"),
            ],
        )
        .await;
        let after = r.cookie.clone().expect("a new session");
        assert_ne!(after, before);
        assert_eq!(c.send(get(ROOT).cookie(&after)).await.status, 200);
        assert_eq!(c.send(get(ROOT).cookie(&before)).await.status, 401);
        // ... and cannot log in again (an attacker who planted it learns nothing).
        let r = perform_login(
            &c,
            Some(&before),
            &[
                ("_csrf", &form_csrf),
                ("username", ALICE.0),
                ("password", ALICE.1),
                ("submit", "submit"),
            ],
        )
        .await;
        assert_eq!((r.status, &r.cookie), (401, &None), "{r:?}");

        // CSRF: every state-changing request without the session's token is refused (403) and
        // changes nothing.
        let bob = login(&c, BOB).await;
        let id = create_job(&c, &alice, MACHINE).await;
        let ip = wait_ready(&c, &alice, id).await;
        boot(ip).await;
        let pattern: Vec<u8> = (0..64u8).collect();
        let r = c
            .send(
                call("POST", memory_path(id, None))
                    .as_(&alice)
                    .body("application/octet-stream", pattern.clone()),
            )
            .await;
        assert_eq!(r.status, 202, "{r:?}");
        let jobs_before = c.send(get("/spalloc/srv/spalloc/jobs/").cookie(&alice.cookie)).await;
        let doc_before = job_doc(&c, &alice, id).await;
        assert!(doc_before["keep-alive-time"].is_string(), "{doc_before}");
        // A refused keepalive would move keep-alive-time (milliseconds).
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (_, anon_token) = login_page(&c).await;
        let wrong_tokens = [
            None,
            Some(String::new()),
            Some("wrong".to_string()),
            Some(altered(&alice.csrf)),
            Some(anon_token),
            Some(bob.csrf.clone()),
        ];
        let power = format!("{}/machine/power", job_path(id));
        for csrf in &wrong_tokens {
            let csrf = csrf.as_deref();
            for req in [
                call("POST", "/spalloc/srv/spalloc/jobs/").body(
                    "application/json",
                    r#"{"num-boards": 1, "machine-name": "triad", "keepalive-interval": "PT60S"}"#,
                ),
                call("PUT", format!("{}/keepalive", job_path(id))).body("text/plain; charset=UTF-8", "alive"),
                call("DELETE", format!("{}?reason=csrf", job_path(id))),
                call("POST", memory_path(id, None)).body("application/octet-stream", vec![0xEE; 64]),
                call("POST", &power).body("application/json", r#"{"power": "OFF"}"#),
                call("DELETE", format!("{}/router", job_path(id))),
            ] {
                let what = format!("{} {} with CSRF {csrf:?}", req.method, req.path);
                let r = c.send(req.by(&alice, csrf)).await;
                assert_eq!(r.status, 403, "{what}: {r:?}");
            }
        }
        let jobs_after = c.send(get("/spalloc/srv/spalloc/jobs/").cookie(&alice.cookie)).await;
        assert_eq!(jobs_after, jobs_before, "no job was made");
        assert_eq!(job_doc(&c, &alice, id).await, doc_before, "the job is untouched");
        assert_eq!(
            read_memory(&c, &alice, id, 64).await,
            pattern,
            "the memory is untouched"
        );
        let r = c.send(get(&power).cookie(&alice.cookie)).await;
        assert_eq!(r.json()["power"], "ON", "{r:?}");
        // The same requests with the token do act (so the refusals were for the token).
        let r = c
            .send(
                call("PUT", format!("{}/keepalive", job_path(id)))
                    .as_(&alice)
                    .body("text/plain", "alive"),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_ne!(
            job_doc(&c, &alice, id).await["keep-alive-time"],
            doc_before["keep-alive-time"]
        );
        // A bearer token needs no CSRF token (it is not sent by browsers on their own).
        let r = c
            .send(
                call("PUT", format!("{}/keepalive", job_path(id)))
                    .bearer(&token)
                    .body("text/plain", "alive")
                    .tls(),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        let r = c
            .send(call("DELETE", format!("{}?reason=done", job_path(id))).as_(&alice))
            .await;
        assert_eq!(r.status, 204, "{r:?}");
        assert_eq!(job_doc(&c, &alice, id).await["state"], "DESTROYED");
        // Logging out is a POST (a link or an image elsewhere cannot do it): a GET leaves the
        // session alone.
        let r = c
            .send(get("/spalloc/system/perform_logout").cookie(&alice.cookie))
            .await;
        assert!(r.status >= 400, "{r:?}");
        assert_eq!(c.send(get(ROOT).cookie(&alice.cookie)).await.status, 200);
        let r = c
            .send(call("POST", "/spalloc/system/perform_logout").cookie(&alice.cookie))
            .await;
        assert_eq!(r.status, 302, "{r:?}");
        assert_eq!(c.send(get(ROOT).cookie(&alice.cookie)).await.status, 401);
    });
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// Another user's job.

#[test]
fn another_users_job_answers_as_a_job_that_does_not_exist() {
    let server = start("127.51.0.0");
    let c = server.client.clone();
    runtime().block_on(async move {
        let alice = login(&c, ALICE).await;
        let bob = login(&c, BOB).await;
        let live = create_job(&c, &alice, MACHINE).await;
        wait_ready(&c, &alice, live).await;
        let gone = create_job(&c, &alice, MACHINE).await;
        let r = c.send(call("DELETE", job_path(gone)).as_(&alice)).await;
        assert_eq!(r.status, 204, "{r:?}");
        let alice_before = job_doc(&c, &alice, live).await;

        let calls: Vec<(&'static str, &str, &str)> = vec![
            ("GET", "", ""),
            ("GET", "?wait=true", ""),
            ("GET", "/", ""),
            ("GET", "/machine", ""),
            ("GET", "/chip?x=0&y=0", ""),
            ("GET", "/machine/power", ""),
            ("POST", "/machine/power", r#"{"power": "OFF"}"#),
            ("PUT", "/keepalive", "alive"),
            ("DELETE", "?reason=mine+now", ""),
            ("GET", "/memory?x=0&y=0&address=1610616832&size=16", ""),
            ("POST", "/memory?x=0&y=0&address=1610616832", "0123456789abcdef"),
            ("DELETE", "/router", ""),
        ];
        for (method, suffix, body) in &calls {
            let req = |id: u64, tls: bool| {
                let mut r = call(method, format!("{}{suffix}", job_path(id))).as_(&bob);
                if !body.is_empty() {
                    r = r.body("application/octet-stream", body.as_bytes());
                }
                if tls { r.tls() } else { r }
            };
            let none = c.send(req(NO_JOB, false)).await;
            assert_eq!(none.status, 404, "{method} {suffix}: {none:?}");
            for (whose, id) in [("alice's live job", live), ("alice's destroyed job", gone)] {
                for tls in [false, true] {
                    let r = c.send(req(id, tls)).await;
                    assert_eq!(r.seen(), none.seen(), "{method} {suffix} on {whose}");
                }
            }
        }
        // Alice's own calls do reach her jobs (so the 404s above are for bob).
        assert_eq!(c.send(get(job_path(gone)).cookie(&alice.cookie)).await.status, 200);
        let after = job_doc(&c, &alice, live).await;
        assert_eq!(after, alice_before, "bob changed nothing");
        assert_eq!(after["state"], "READY");

        // The proxy handshake, likewise.
        let none = ws_connect(&c, NO_JOB, Some(&bob.cookie), Some(&bob.csrf), false)
            .await
            .err()
            .expect("no proxy for a missing job");
        assert_eq!(none.0, 404, "{:?}", String::from_utf8_lossy(&none.1));
        for id in [live, gone] {
            for tls in [false, true] {
                let r = ws_connect(&c, id, Some(&bob.cookie), Some(&bob.csrf), tls)
                    .await
                    .err()
                    .expect("no proxy for another user's job");
                assert_eq!(r, none, "proxy of job {id}");
            }
        }
        let mut ws = ws_connect(&c, live, Some(&alice.cookie), Some(&alice.csrf), false)
            .await
            .expect("alice's proxy");
        ws.close(None).await.expect("close");

        // Bob's listings do not name alice's jobs; a machine look-up of her board does not
        // say whose job holds it.
        let r = c
            .send(get("/spalloc/srv/spalloc/jobs/?deleted=true").cookie(&bob.cookie))
            .await;
        assert_eq!(r.json()["jobs"], serde_json::json!([]), "{r:?}");
        let r = c
            .send(get(format!("{}/chip?x=0&y=0", job_path(live))).cookie(&alice.cookie))
            .await;
        let chip = r.json()["chip"].clone();
        let lookup = format!(
            "/spalloc/srv/spalloc/machines/triad/chip?x={}&y={}",
            chip[0].as_u64().expect("chip x"),
            chip[1].as_u64().expect("chip y")
        );
        let as_alice = c.send(get(&lookup).cookie(&alice.cookie)).await.json();
        assert_eq!(as_alice["job-id"], live, "{as_alice}");
        let as_bob = c.send(get(&lookup).cookie(&bob.cookie)).await.json();
        assert!(
            as_bob.get("job-id").is_none() && as_bob.get("job-ref").is_none() && as_bob.get("job-chip").is_none(),
            "{as_bob}"
        );
    });
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// The websocket proxy.

#[test]
fn bad_websocket_frames_end_only_their_own_websocket() {
    let server = start("127.52.0.0");
    let c = server.client.clone();
    runtime().block_on(async move {
        let alice = login(&c, ALICE).await;
        let bob = login(&c, BOB).await;
        let id = create_job(&c, &alice, MACHINE).await;
        let ip = wait_ready(&c, &alice, id).await;
        boot(ip).await;
        let pattern: Vec<u8> = (0..32u8).map(|b| b.wrapping_mul(7)).collect();
        let r = c
            .send(
                call("POST", memory_path(id, None))
                    .as_(&alice)
                    .body("application/octet-stream", pattern.clone()),
            )
            .await;
        assert_eq!(r.status, 202, "{r:?}");

        // The handshake needs the session and its CSRF token.
        for (cookie, csrf, status) in [
            (None, Some(alice.csrf.as_str()), 401),
            (Some("0123"), Some(alice.csrf.as_str()), 401),
            (Some(alice.cookie.as_str()), None, 403),
            (Some(alice.cookie.as_str()), Some("wrong"), 403),
            (Some(alice.cookie.as_str()), Some(bob.csrf.as_str()), 403),
        ] {
            let r = ws_connect(&c, id, cookie, csrf, false).await.err().expect("refused");
            assert_eq!(r.0, status, "{cookie:?} {csrf:?}: {:?}", String::from_utf8_lossy(&r.1));
        }

        // The websocket that must keep working (over TLS).
        let mut good = ws_connect(&c, id, Some(&alice.cookie), Some(&alice.csrf), true)
            .await
            .expect("a proxy");
        let mut seq = 0u16;
        let mut corr = 0u32;
        let mut works = async |ws: &mut Ws, channel: u32, why: &str| {
            seq += 1;
            let got = scp_read(ws, channel, seq, SDRAM, pattern.len() as u32).await;
            assert_eq!(got, pattern, "proxied SCP {why}");
        };
        let c1 = open(&mut good, corr, 0, 0).await;
        works(&mut good, c1, "at first").await;

        // OPEN to a chip outside the job: an ERROR with that call's corr; nothing else ends.
        for (x, y, port) in [
            (8, 4, 17893),
            (4, 8, 17893),
            (1, 0, 17893),
            (12, 0, 54321),
            (0, 0, 0),
            (0, 0, 70000),
        ] {
            corr += 1;
            send(&mut good, words(&[0, corr, x, y, port])).await;
            let (e_corr, text) = error_of(&frame(&mut good).await);
            assert_eq!(e_corr, corr, "{text}");
            let want = if (x, y) == (0, 0) {
                "bad port number"
            } else {
                "unrecognised ethernet chip"
            };
            assert!(text.contains(want), "OPEN ({x}, {y}) port {port}: {text}");
        }
        works(&mut good, c1, "after refused OPENs").await;

        // MSG on a closed channel (and on one never opened): an ERROR with corr u32::MAX, not
        // a disconnect.
        corr += 1;
        send(&mut good, words(&[1, corr, c1])).await;
        assert_eq!(frame(&mut good).await, words(&[1, corr, c1]));
        for channel in [c1, 12345] {
            let mut f = words(&[2, channel]);
            f.extend_from_slice(b"to nowhere");
            send(&mut good, f).await;
            let (e_corr, text) = error_of(&frame(&mut good).await);
            assert_eq!(e_corr, u32::MAX, "{text}");
            assert!(text.contains("not open"), "{text}");
        }
        corr += 1;
        let c2 = open(&mut good, corr, 0, 0).await;
        assert_ne!(c2, c1);
        works(&mut good, c2, "after MSG on a closed channel").await;

        // Bad frames: each closes its own websocket (1007, or the connection for a frame too
        // long to read) and nothing else.
        let mut oversized = words(&[2, 1]);
        oversized.resize(spinnbed_spalloc::proxy::MAX_FRAME_LEN + 1, 0xAB);
        let mut huge_msg_to = words(&[4, 1, 0, 0, 17893]);
        huge_msg_to.resize(200_000, 0);
        let bad: Vec<(&str, Message)> = vec![
            (
                "garbage",
                Message::Binary(words(&[0xDEAD_BEEF, 7, 7, 7, 7, 7, 7]).into()),
            ),
            (
                "random bytes",
                Message::Binary(b"\x7f\x00\x01GET / HTTP/1.1\r\n".to_vec().into()),
            ),
            ("an ERROR from the client", Message::Binary(words(&[5, 0]).into())),
            ("truncated header", Message::Binary(vec![0, 0, 0].into())),
            ("empty", Message::Binary(Vec::new().into())),
            ("truncated OPEN", Message::Binary(words(&[0, 9, 0, 0]).into())),
            ("over-long CLOSE", Message::Binary(words(&[1, 9, 1, 0]).into())),
            ("truncated MSG_TO", Message::Binary(words(&[4, 1, 0, 0]).into())),
            ("oversized MSG", Message::Binary(oversized.into())),
            ("oversized MSG_TO", Message::Binary(huge_msg_to.into())),
            ("text", Message::Text("OPEN 0 0 17893".into())),
        ];
        let mut endings = Vec::new();
        for (what, msg) in bad {
            let mut ws = ws_connect(&c, id, Some(&alice.cookie), Some(&alice.csrf), false)
                .await
                .expect("a proxy");
            let own = open(&mut ws, 0, 0, 0).await;
            let _ = ws.send(msg).await;
            let got = recv(&mut ws).await;
            match &got {
                Got::Close(Some(1007)) => {}
                Got::Close(Some(1009)) | Got::Dropped(_) if what.starts_with("oversized") => {}
                other => panic!("{what}: expected a close (1007), got {other:?}"),
            }
            endings.push(format!("{what} (after OPEN gave channel {own}): {got:?}"));
            works(&mut good, c2, what).await;
        }

        // Frames cut short at the websocket layer, or announcing more than any frame may be:
        // that connection ends; the good websocket does not notice.
        for (what, raw) in [
            // A masked binary frame announcing 256 bytes, 10 sent, then the end.
            ("a websocket frame cut short", {
                let mut f = vec![0x82, 0x80 | 126, 0x01, 0x00, 1, 2, 3, 4];
                f.extend_from_slice(&[0u8; 10]);
                f
            }),
            // A frame announcing 2^40 bytes.
            ("a websocket frame of 2^40 bytes", {
                let mut f = vec![0x82, 0x80 | 127];
                f.extend_from_slice(&(1u64 << 40).to_be_bytes());
                f.extend_from_slice(&[1, 2, 3, 4]);
                f
            }),
        ] {
            let mut ws = ws_connect(&c, id, Some(&alice.cookie), Some(&alice.csrf), false)
                .await
                .expect("a proxy");
            let _ = open(&mut ws, 0, 0, 0).await;
            let io = ws.get_mut();
            io.write_all(&raw).await.expect("write");
            io.flush().await.expect("flush");
            if what.contains("cut short") {
                io.shutdown().await.expect("shutdown");
            }
            let mut rest = Vec::new();
            let read = tokio::time::timeout(CALL_TIMEOUT, io.read_to_end(&mut rest))
                .await
                .unwrap_or_else(|_| panic!("{what}: the server kept the connection"));
            endings.push(format!("{what}: {read:?} after {} bytes", rest.len()));
            works(&mut good, c2, what).await;
        }
        eprintln!("bad frames ended thus:\n  {}", endings.join("\n  "));

        // The good websocket ends normally when the job does.
        let r = c.send(call("DELETE", job_path(id)).as_(&alice)).await;
        assert_eq!(r.status, 204, "{r:?}");
        assert_eq!(recv(&mut good).await, Got::Close(Some(1000)));
    });
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// Connections: abandoned handshakes and the connection limit.

/// Whether the server answers a login page over `tls` within `limit`.
async fn answers(c: &Client, tls: bool, limit: Duration) -> Result<Duration, String> {
    let t = Instant::now();
    let attempt = async {
        let io = c.connect(tls).await;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = hyper::Request::get(LOGIN_PAGE)
            .header("Host", c.addr.to_string())
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let r = sender.send_request(req).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(r.status().as_u16())
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(Ok(200)) => Ok(t.elapsed()),
        Ok(Ok(s)) => Err(format!("status {s}")),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// Waits until every stream is closed by the server (EOF or reset), at most until `deadline`;
/// returns when each was (after `since`; `None`: still open) and the bytes it received.
async fn closed_by_server<S>(streams: Vec<S>, since: Instant, deadline: Instant) -> Vec<(Option<Duration>, Vec<u8>)>
where
    S: AsyncRead + Unpin + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut s) in streams.into_iter().enumerate() {
        tasks.spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            let until = tokio::time::Instant::from_std(deadline);
            loop {
                match tokio::time::timeout_at(until, s.read(&mut buf)).await {
                    Ok(Ok(0) | Err(_)) => return (i, (Some(since.elapsed()), got)),
                    Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                    Err(_) => return (i, (None, got)),
                }
            }
        });
    }
    let mut out = BTreeMap::new();
    while let Some(r) = tasks.join_next().await {
        let (i, t) = r.expect("a reader");
        out.insert(i, t);
    }
    out.into_values().collect()
}

/// Raises the open-file limit for the tests that open a thousand connections (both ends are
/// in this process).
fn enough_files() {
    let need = 4096;
    let got = rlimit::increase_nofile_limit(8192).unwrap_or(0);
    assert!(
        got >= need,
        "the open-file limit is {got}: these tests need {need} (ulimit -n)"
    );
}

#[test]
fn abandoned_handshakes_are_closed_and_hold_up_nobody() {
    enough_files();
    let server = start("127.53.0.0");
    let c = server.client.clone();
    runtime().block_on(async move {
        // 200 connections that start a TLS handshake (one byte, 0x16) and stop, 100 that send
        // nothing at all.
        let t0 = Instant::now();
        let mut idle = Vec::new();
        for i in 0..300 {
            let mut s = TcpStream::connect(c.addr).await.expect("connect");
            if i < 200 {
                s.write_all(&[0x16]).await.expect("one byte");
            }
            idle.push(s);
        }
        // A good client, over TLS and plain HTTP, is answered at once all the same.
        for tls in [true, false] {
            let took = answers(&c, tls, Duration::from_secs(3))
                .await
                .expect("a good client is served");
            eprintln!("during the flood: a good client (tls {tls}) answered in {took:?}");
        }
        // Every abandoned connection is closed once the handshake time is up.
        let limit = HANDSHAKE_TIMEOUT + Duration::from_secs(2);
        let closed = closed_by_server(idle, t0, t0 + limit).await;
        let open: Vec<usize> = (0..closed.len()).filter(|i| closed[*i].0.is_none()).collect();
        assert!(open.is_empty(), "still open after {limit:?}: {open:?}");
        let times: Vec<Duration> = closed.into_iter().filter_map(|(t, _)| t).collect();
        let (first, last) = (times.iter().min().unwrap(), times.iter().max().unwrap());
        eprintln!("abandoned connections closed between {first:?} and {last:?}");
        assert!(
            *first >= HANDSHAKE_TIMEOUT - Duration::from_secs(1),
            "closed before its time: {first:?}"
        );
        answers(&c, true, Duration::from_secs(3))
            .await
            .expect("served afterwards");
    });
    server.stop();
}

#[test]
fn connections_beyond_the_limit_are_closed_at_once() {
    enough_files();
    let server = start("127.54.0.0");
    let c = server.client.clone();
    runtime().block_on(async move {
        let excess = 100;
        let t0 = Instant::now();
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS + excess {
            idle.push(TcpStream::connect(c.addr).await.expect("connect"));
        }
        eprintln!("{} connections opened in {:?}", idle.len(), t0.elapsed());
        // While they are open, a new client is closed without an answer.
        let refused = answers(&c, false, Duration::from_secs(3)).await;
        assert!(refused.is_err(), "served beyond the limit: {refused:?}");
        // The excess is closed at once; the rest wait for their handshake.
        let closed = closed_by_server(idle, t0, t0 + Duration::from_secs(3)).await;
        assert!(t0.elapsed() < HANDSHAKE_TIMEOUT, "too slow to tell: {:?}", t0.elapsed());
        let n_closed = closed.iter().filter(|(t, _)| t.is_some()).count();
        assert_eq!(n_closed, excess, "closed at once, of {}", closed.len());
        // (closed_by_server dropped them all: the server sees them go.)
        // A good client is served again once they have gone.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match answers(&c, false, Duration::from_secs(2)).await {
                Ok(took) => {
                    eprintln!("after the flood: answered in {took:?}");
                    break;
                }
                Err(e) => assert!(Instant::now() < deadline, "not served again: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    server.stop();
}

#[test]
fn connections_idle_after_the_handshake_are_closed() {
    let server = start("127.55.0.0");
    let c = server.client.clone();
    runtime().block_on(async move {
        let t0 = Instant::now();
        let mut idle: Vec<Box<dyn Io>> = Vec::new();
        // TLS handshakes completed, then nothing.
        for _ in 0..20 {
            idle.push(c.connect(true).await);
        }
        // Half a request head, over TLS and plain.
        for i in 0..20 {
            let mut s = c.connect(i % 2 == 0).await;
            s.write_all(format!("GET {LOGIN_PAGE} HTTP/1.1\r\nHost: {}\r\n", c.addr).as_bytes())
                .await
                .expect("half a head");
            s.flush().await.expect("flush");
            idle.push(s);
        }
        // One whole request on a kept-alive connection, then nothing.
        for i in 0..20 {
            let mut s = c.connect(i % 2 == 0).await;
            s.write_all(format!("GET {LOGIN_PAGE} HTTP/1.1\r\nHost: {}\r\n\r\n", c.addr).as_bytes())
                .await
                .expect("a request");
            s.flush().await.expect("flush");
            idle.push(s);
        }
        let limit = HEADER_TIMEOUT + Duration::from_secs(2);
        let closed = closed_by_server(idle, t0, t0 + limit).await;
        let open: Vec<usize> = (0..closed.len()).filter(|i| closed[*i].0.is_none()).collect();
        assert!(open.is_empty(), "still open after {limit:?}: {open:?}");
        for (i, (_, got)) in closed.iter().enumerate().skip(40) {
            let text = String::from_utf8_lossy(got);
            assert!(text.starts_with("HTTP/1.1 200"), "kept-alive connection {i}: {text:?}");
        }
        let times: Vec<Duration> = closed.iter().filter_map(|(t, _)| *t).collect();
        eprintln!(
            "idle connections closed between {:?} and {:?}",
            times.iter().min().unwrap(),
            times.iter().max().unwrap()
        );
        answers(&c, true, Duration::from_secs(3))
            .await
            .expect("served afterwards");
    });
    server.stop();
}

/// The process's peak resident memory (MiB).
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        / 1024
}

#[test]
fn a_flood_of_wrong_passwords_is_checked_a_few_at_a_time() {
    let server = start("127.56.0.0");
    let c = server.client.clone();
    runtime().block_on(async move {
        // Each password check takes argon2's 19 MiB: 100 at once took 1.9 GiB before the checks
        // were queued for a few threads of their own.
        let attempts = 100;
        let before = peak_rss_mib();
        let t0 = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..attempts {
            let c = c.clone();
            tasks.spawn(async move {
                let (anon, token) = login_page(&c).await;
                let fields = [
                    ("_csrf", token.as_str()),
                    ("username", ALICE.0),
                    ("password", "wrong-password"),
                    ("submit", "submit"),
                ];
                perform_login(&c, Some(&anon), &fields).await
            });
        }
        // A good login in the middle of it is refused nothing.
        let alice = login(&c, ALICE).await;
        while let Some(r) = tasks.join_next().await {
            let r = r.expect("a login");
            assert_eq!((r.status, &r.cookie), (401, &None), "{r:?}");
        }
        let peak = peak_rss_mib();
        eprintln!(
            "{attempts} wrong passwords at once: {:?}, peak RSS {before} -> {peak} MiB",
            t0.elapsed()
        );
        assert!(peak < before + 600, "peak RSS {before} -> {peak} MiB");
        assert_eq!(c.send(get(ROOT).cookie(&alice.cookie)).await.status, 200);
    });
    server.stop();
}
