//! The REST service's routes: login, the API under `/spalloc/srv/spalloc`, the websocket proxy
//! at `/spalloc/proxy/{id}`, and memory through the job's boards.
//!
//! Handlers decide nothing about jobs: each authenticates its caller, turns the request into a
//! [`RestCall`], sends it to the server loop (which owns the service, runs it through
//! [`spinnbed_spalloc::rest::RestApi`] and answers once the journal holds what it changed) and
//! turns the [`RestReply`] into a response. What the loop cannot do without waiting — long
//! polls, SCP to the boards, the proxy — happens here, around calls into the loop.

use super::accounts::{Accounts, Identity};
use super::http::Conn;
use super::proxy_io::{self, End};
use super::sessions::{Sessions, csrf_ok};
use crate::serve::conn::ToLoop;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use spinnbed_core::sched::JobId;
use spinnbed_spalloc::rest::{Caller, MachineLookup, RestCall, RestReply, Urls};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// The CSRF header name (Spring Security's).
pub const CSRF_HEADER: &str = "X-CSRF-TOKEN";
/// How long `wait=true` holds a request (Java's `spalloc.wait`).
pub const LONG_POLL: Duration = Duration::from_secs(30);
/// Largest memory read or write through REST.
pub const MAX_MEMORY: usize = 16 << 20;
/// How long a memory read or write through REST may take.
pub const MEMORY_TIMEOUT: Duration = Duration::from_secs(30);
/// Threads that check passwords. Argon2 takes 19 MiB and tens of milliseconds a check, on
/// purpose: checks run on these few threads of their own, in turn, so that a flood of logins
/// waits in a queue (bounded by the connection limit) instead of taking a blocking thread and
/// its 19 MiB each (100 wrong passwords at once took 1.9 GiB that way).
pub const PASSWORD_CHECKERS: usize = 2;

type PasswordCheck = (Arc<Accounts>, String, String, oneshot::Sender<Option<Identity>>);

/// Checks a password on the password threads (started on first use).
async fn check_password(accounts: Arc<Accounts>, user: String, password: String) -> Option<Identity> {
    static QUEUE: std::sync::OnceLock<std::sync::mpsc::Sender<PasswordCheck>> = std::sync::OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<PasswordCheck>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..PASSWORD_CHECKERS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-check-{i}"))
                .spawn(move || {
                    loop {
                        let next = lock(&rx).recv();
                        let Ok((accounts, user, password, reply)) = next else {
                            return;
                        };
                        // (A client that gave up waiting is not worth a check.)
                        if !reply.is_closed() {
                            let _ = reply.send(accounts.check_password(&user, &password));
                        }
                    }
                });
            if let Err(e) = spawned {
                eprintln!("sim serve: REST: no password-check thread: {e}");
            }
        }
        tx
    });
    let (tx, rx) = oneshot::channel();
    queue.send((accounts, user, password, tx)).ok()?;
    rx.await.ok().flatten()
}

/// A REST call for the server loop, with where to send the answer.
#[derive(Debug)]
pub struct RestMsg {
    /// Who.
    pub caller: Caller,
    /// The URLs as this request sees them.
    pub urls: Urls,
    /// What.
    pub call: RestCall,
    /// The answer, sent once the journal holds what the call changed.
    pub reply: oneshot::Sender<RestReply>,
}

/// What every handler shares.
#[derive(Debug)]
pub struct Shared {
    /// Login sessions.
    pub sessions: Mutex<Sessions>,
    accounts: Mutex<(Arc<Accounts>, Option<SystemTime>)>,
    state_dir: PathBuf,
    to_loop: mpsc::Sender<ToLoop>,
    /// Job ids whose state changed (for long polls).
    pub changes: broadcast::Sender<u64>,
    /// Websocket proxies waiting for their job to end.
    proxies: Mutex<BTreeMap<u64, watch::Sender<Option<End>>>>,
    default_port: u16,
}

impl Shared {
    /// Handlers' shared state; the users file is read from `state_dir`.
    pub fn new(state_dir: PathBuf, to_loop: mpsc::Sender<ToLoop>, default_port: u16) -> Arc<Shared> {
        Arc::new(Shared {
            sessions: Mutex::new(Sessions::default()),
            accounts: Mutex::new((Arc::new(Accounts::default()), None)),
            state_dir,
            to_loop,
            changes: broadcast::channel(1024).0,
            proxies: Mutex::new(BTreeMap::new()),
            default_port,
        })
    }

    /// A job's state changed: wake its long polls; if it ended, close its proxies.
    pub fn job_changed(&self, id: u64, ended: bool) {
        let _ = self.changes.send(id);
        if ended && let Some(w) = lock(&self.proxies).remove(&id) {
            let _ = w.send(Some(End::JobEnded));
        }
    }

    /// Forgets job `id`'s end signal if no websocket listens to it (a refused handshake).
    fn unregister_proxy(&self, id: u64) {
        let mut proxies = lock(&self.proxies);
        if proxies.get(&id).is_some_and(|w| w.receiver_count() == 0) {
            proxies.remove(&id);
        }
    }

    /// The server is stopping: every proxy closes.
    pub fn shutdown(&self) {
        for (_, w) in std::mem::take(&mut *lock(&self.proxies)) {
            let _ = w.send(Some(End::Shutdown));
        }
    }

    /// The users, re-read when the file changed.
    /// (Shared, not copied: every authenticated request asks.)
    fn accounts(&self) -> Arc<Accounts> {
        let path = self.state_dir.join(super::accounts::USERS_FILE);
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let mut a = lock(&self.accounts);
        // Re-read only when the file changed (appeared, went, or was rewritten).
        if a.1 != mtime {
            match Accounts::load(&self.state_dir) {
                Ok(acc) => *a = (Arc::new(acc), mtime),
                Err(e) => eprintln!("sim serve: REST: {e} (keeping the users read before)"),
            }
        }
        a.0.clone()
    }

    async fn call(&self, caller: Caller, urls: Urls, call: RestCall) -> Result<RestReply, Response> {
        let (tx, rx) = oneshot::channel();
        let msg = RestMsg {
            caller,
            urls,
            call,
            reply: tx,
        };
        if self.to_loop.send(ToLoop::Rest(Box::new(msg))).await.is_err() {
            return Err(text(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping"));
        }
        rx.await
            .map_err(|_| text(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping"))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// A [`RestReply`] as a response.
fn respond(r: RestReply) -> Response {
    let status = StatusCode::from_u16(r.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = Response::builder().status(status);
    if let Some(ct) = r.content_type() {
        resp = resp.header(header::CONTENT_TYPE, ct);
    }
    if let Some(loc) = r.location() {
        resp = resp.header(header::LOCATION, loc);
    }
    resp.body(axum::body::Body::from(r.body().to_vec()))
        .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "bad response"))
}

/// The `JSESSIONID` cookie of a request.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == "JSESSIONID")
        .map(|(_, v)| v.trim().to_string())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn set_cookie(id: &str, tls: bool) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "JSESSIONID={id}; Path=/spalloc; HttpOnly; SameSite=Lax{secure}"
    ))
    .expect("hex ids are valid header text")
}

/// Who is calling: a session cookie (with the CSRF header on state-changing requests) or a
/// bearer token.
struct Auth {
    identity: Identity,
    /// The session's CSRF token (none for bearer-token requests).
    csrf: Option<String>,
}

fn unauthorized() -> Response {
    let mut r = text(
        StatusCode::UNAUTHORIZED,
        "log in first (a session cookie or a bearer token)",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"SpallocService\""),
    );
    r
}

fn authenticate(shared: &Shared, method: &Method, headers: &HeaderMap) -> Result<Auth, Response> {
    if let Some(token) = bearer(headers) {
        return shared
            .accounts()
            .check_token(token)
            .map(|identity| Auth { identity, csrf: None })
            .ok_or_else(unauthorized);
    }
    let Some(id) = session_cookie(headers) else {
        return Err(unauthorized());
    };
    let mut sessions = lock(&shared.sessions);
    let Some(s) = sessions.get(std::time::Instant::now(), &id) else {
        return Err(unauthorized());
    };
    let Some(identity) = s.identity.clone() else {
        return Err(unauthorized());
    };
    let changes_state = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let given = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if changes_state && !csrf_ok(s, given) {
        return Err(text(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token (X-CSRF-TOKEN)",
        ));
    }
    Ok(Auth {
        identity,
        csrf: Some(s.csrf.clone()),
    })
}

fn caller(auth: &Auth, conn: &Conn) -> Caller {
    let host = conn.peer.ip().to_string();
    if auth.identity.admin {
        Caller::admin(&auth.identity.user, Some(&host))
    } else {
        Caller::user(&auth.identity.user, Some(&host))
    }
}

fn urls(shared: &Shared, headers: &HeaderMap) -> Result<Urls, Response> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    Urls::from_host_header(host, shared.default_port)
        .ok_or_else(|| text(StatusCode::BAD_REQUEST, format!("bad Host header {host:?}")))
}

/// Authenticates and makes one call into the loop.
async fn api(
    shared: &Shared,
    method: &Method,
    headers: &HeaderMap,
    conn: &Conn,
    call: impl FnOnce(&Auth) -> Result<RestCall, Response>,
) -> Result<RestReply, Response> {
    let auth = authenticate(shared, method, headers)?;
    let urls = urls(shared, headers)?;
    let call = call(&auth)?;
    shared.call(caller(&auth, conn), urls, call).await
}

/// For the status pages ([`super::status`]): who is logged in (session cookie or bearer token)
/// and the loop's answer to `call`; without a login, a redirect to the login page.
pub(super) async fn page_call(
    shared: &Shared,
    headers: &HeaderMap,
    conn: &Conn,
    call: RestCall,
) -> Result<(Identity, RestReply), Response> {
    let Ok(auth) = authenticate(shared, &Method::GET, headers) else {
        return Err(Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, "/spalloc/system/login.html")
            .body(axum::body::Body::empty())
            .expect("a plain redirect"));
    };
    let r = shared.call(caller(&auth, conn), urls(shared, headers)?, call).await?;
    Ok((auth.identity, r))
}

type Q = Query<HashMap<String, String>>;

fn int(q: &HashMap<String, String>, name: &str) -> Result<i64, Response> {
    let raw = q
        .get(name)
        .ok_or_else(|| text(StatusCode::BAD_REQUEST, format!("missing query parameter {name}")))?;
    spinnbed_spalloc::rest::text::parse_int(name, raw).map_err(respond)
}

fn opt_int(q: &HashMap<String, String>, name: &str) -> Result<Option<i64>, Response> {
    q.get(name)
        .map(|raw| spinnbed_spalloc::rest::text::parse_int(name, raw).map_err(respond))
        .transpose()
}

fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, Response> {
    match q.get(name) {
        None => Ok(false),
        Some(v) => spinnbed_spalloc::rest::text::parse_bool(v)
            .ok_or_else(|| text(StatusCode::BAD_REQUEST, format!("{name}={v:?} is not true or false"))),
    }
}

fn job_id(raw: &str) -> Result<JobId, Response> {
    raw.parse::<u64>()
        .map(JobId)
        .map_err(|_| text(StatusCode::NOT_FOUND, spinnbed_spalloc::rest::NO_SUCH_JOB))
}

fn done(r: Result<RestReply, Response>) -> Response {
    r.map_or_else(|e| e, respond)
}

/// The routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/spalloc/system/login.html", get(login_page))
        .route("/spalloc/system/perform_login", post(perform_login))
        .route("/spalloc/system/perform_logout", post(perform_logout))
        .route("/spalloc/system", get(super::status::home))
        .route("/spalloc/system/list_machines", get(super::status::list_machines))
        .route("/spalloc/system/machine_info/{name}", get(super::status::machine_info))
        .route("/spalloc/system/list_jobs", get(super::status::list_jobs))
        .route("/spalloc/system/job_info/{id}", get(super::status::job_info))
        .route("/spalloc/srv/spalloc", get(root))
        .route("/spalloc/srv/spalloc/machines", get(machines))
        .route("/spalloc/srv/spalloc/machines/{name}", get(machine))
        .route("/spalloc/srv/spalloc/machines/{name}/{lookup}", get(machine_where_is))
        .route("/spalloc/srv/spalloc/jobs", get(list_jobs).post(create_job))
        .route("/spalloc/srv/spalloc/jobs/{id}", get(get_job).delete(delete_job))
        .route("/spalloc/srv/spalloc/jobs/{id}/keepalive", put(keepalive))
        .route("/spalloc/srv/spalloc/jobs/{id}/machine", get(job_machine))
        .route(
            "/spalloc/srv/spalloc/jobs/{id}/machine/power",
            get(get_power).post(set_power),
        )
        .route("/spalloc/srv/spalloc/jobs/{id}/chip", get(job_chip))
        .route(
            "/spalloc/srv/spalloc/jobs/{id}/memory",
            get(read_memory).post(write_memory),
        )
        .route("/spalloc/srv/spalloc/jobs/{id}/router", delete(reset_router))
        .route("/spalloc/proxy/{id}", get(proxy))
        .fallback(|| async { text(StatusCode::NOT_FOUND, "no such page") })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_MEMORY))
        .with_state(shared)
}

/// The login page: an anonymous session and a form with its CSRF token; or, with a bearer
/// token, a logged-in session at once.
async fn login_page(
    State(s): State<Arc<Shared>>,
    axum::Extension(conn): axum::Extension<Conn>,
    headers: HeaderMap,
) -> Response {
    let now = std::time::Instant::now();
    if let Some(token) = bearer(&headers) {
        let Some(identity) = s.accounts().check_token(token) else {
            return unauthorized();
        };
        let (id, _) = lock(&s.sessions).login(now, session_cookie(&headers).as_deref(), identity.clone());
        let mut r = super::pages::page(
            "Logged in",
            &format!(
                "<p>Logged in as {} with a bearer token.</p>",
                super::pages::esc(&identity.user)
            ),
        );
        r.headers_mut().insert(header::SET_COOKIE, set_cookie(&id, conn.tls));
        return r;
    }
    let (id, csrf) = lock(&s.sessions).open(now);
    let mut r = super::pages::login_form(&csrf, None);
    r.headers_mut().insert(header::SET_COOKIE, set_cookie(&id, conn.tls));
    r
}

#[derive(serde::Deserialize)]
struct LoginForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

fn login_refused(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({"message": message}).to_string(),
    )
        .into_response()
}

async fn perform_login(
    State(s): State<Arc<Shared>>,
    axum::Extension(conn): axum::Extension<Conn>,
    headers: HeaderMap,
    form: Result<axum::Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(axum::Form(form)) = form else {
        return login_refused("the login form was malformed");
    };
    let now = std::time::Instant::now();
    let old = session_cookie(&headers);
    // The form must come from the login page this browser fetched (its session's token).
    let token_ok = old
        .as_deref()
        .and_then(|id| {
            lock(&s.sessions)
                .get(now, id)
                .map(|sess| csrf_ok(sess, Some(&form.csrf)))
        })
        .unwrap_or(false);
    if !token_ok {
        return login_refused("missing or wrong CSRF token: fetch the login page first");
    }
    let accounts = s.accounts();
    let (user, password) = (form.username.clone(), form.password.clone());
    // Argon2 is slow on purpose: not on the runtime's threads, and a few at a time.
    let Some(identity) = check_password(accounts, user, password).await else {
        return login_refused("bad username or password");
    };
    let (id, _) = lock(&s.sessions).login(now, old.as_deref(), identity);
    let mut r = Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, "/spalloc/system/")
        .body(axum::body::Body::empty())
        .expect("a plain redirect");
    r.headers_mut().insert(header::SET_COOKIE, set_cookie(&id, conn.tls));
    r
}

/// Ends the session. POST only: with the `SameSite=Lax` session cookie another site cannot
/// make a browser send it (a GET could be a link or an image).
async fn perform_logout(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(id) = session_cookie(&headers) {
        lock(&s.sessions).logout(&id);
    }
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, "/spalloc/system/login.html")
        .body(axum::body::Body::empty())
        .expect("a plain redirect")
}

async fn root(
    State(s): State<Arc<Shared>>,
    axum::Extension(conn): axum::Extension<Conn>,
    m: Method,
    h: HeaderMap,
) -> Response {
    done(
        api(&s, &m, &h, &conn, |auth| {
            Ok(RestCall::Root {
                csrf_header: CSRF_HEADER.into(),
                csrf_token: auth.csrf.clone().unwrap_or_default(),
            })
        })
        .await,
    )
}

async fn machines(
    State(s): State<Arc<Shared>>,
    axum::Extension(conn): axum::Extension<Conn>,
    m: Method,
    h: HeaderMap,
) -> Response {
    done(api(&s, &m, &h, &conn, |_| Ok(RestCall::ListMachines)).await)
}

async fn machine(
    State(s): State<Arc<Shared>>,
    axum::Extension(conn): axum::Extension<Conn>,
    m: Method,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    done(api(&s, &m, &h, &conn, |_| Ok(RestCall::GetMachine { name })).await)
}

async fn machine_where_is(
    State(s): State<Arc<Shared>>,
    axum::Extension(conn): axum::Extension<Conn>,
    m: Method,
    h: HeaderMap,
    Path((name, lookup)): Path<(String, String)>,
    Query(q): Q,
) -> Response {
    done(
        api(&s, &m, &h, &conn, |_| {
            let lookup = match lookup.as_str() {
                "logical-board" => MachineLookup::Logical {
                    x: int(&q, "x")?,
                    y: int(&q, "y")?,
                    z: int(&q, "z")?,
                },
                "physical-board" => MachineLookup::Physical {
                    cabinet: int(&q, "cabinet")?,
                    frame: int(&q, "frame")?,
                    board: int(&q, "board")?,
                },
                "chip" => MachineLookup::Chip {
                    x: int(&q, "x")?,
                    y: int(&q, "y")?,
                },
                "board-ip" => MachineLookup::BoardIp {
                    address: q.get("address").cloned().unwrap_or_default(),
                },
                _ => return Err(text(StatusCode::NOT_FOUND, "no such page")),
            };
            Ok(RestCall::WhereIs { machine: name, lookup })
        })
        .await,
    )
}

/// Waits (at most [`LONG_POLL`]) for a change of job `id` (any job with `None`).
async fn wait_for_change(rx: &mut broadcast::Receiver<u64>, id: Option<u64>) {
    let wait = async {
        loop {
            match rx.recv().await {
                Ok(j) if id.is_none_or(|id| id == j) => return,
                Ok(_) => continue,
                // Missed some: one of them may have been ours.
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    };
    let _ = tokio::time::timeout(LONG_POLL, wait).await;
}

async fn list_jobs(
    State(s): State<Arc<Shared>>,
    axum::Extension(conn): axum::Extension<Conn>,
    m: Method,
    h: HeaderMap,
    Query(q): Q,
) -> Response {
    let mut rx = s.changes.subscribe();
    let call = || -> Result<RestCall, Response> {
        Ok(RestCall::ListJobs {
            deleted: flag(&q, "deleted")?,
            start: opt_int(&q, "start")?,
            limit: opt_int(&q, "limit")?,
        })
    };
    let wait = match flag(&q, "wait") {
        Ok(w) => w,
        Err(e) => return e,
    };
    if wait {
        wait_for_change(&mut rx, None).await;
    }
    done(api(&s, &m, &h, &conn, |_| call()).await)
}

async fn create_job(
    State(s): State<Arc<Shared>>,
    axum::Extension(conn): axum::Extension<Conn>,
    m: Method,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    done(api(&s, &m, &h, &conn, |_| Ok(RestCall::CreateJob { body: body.to_vec() })).await)
}

async fn get_job(
    State(s): State<Arc<Shared>>,
    axum::Extension(conn): axum::Extension<Conn>,
    m: Method,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Q,
) -> Response {
    let id = match job_id(&id) {
        Ok(id) => id,
        Err(e) => return e,
    };
    let wait = match flag(&q, "wait") {
        Ok(w) => w,
        Err(e) => return e,
    };
    let mut rx = s.changes.subscribe();
    let first = api(&s, &m, &h, &conn, |_| Ok(RestCall::GetJob { id })).await;
    if !wait || !matches!(first, Ok(RestReply::Json(_))) {
        return done(first);
    }
    // Hold the request until the job changes (or the long poll's time is up).
    let before = first.ok();
    wait_for_change(&mut rx, Some(id.0)).await;
    let now = api(&s, &m, &h, &conn, |_| Ok(RestCall::GetJob { id })).await;
    match (before, now) {
        (_, Ok(r)) => respond(r),
        (Some(b), Err(_)) => respond(b),
        (None, Err(e)) => e,
    }
}

async fn delete_job(
    State(s): State<Arc<Shared>>,
    axum::Extension(conn): axum::Extension<Conn>,
    m: Method,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Q,
) -> Response {
    done(
        api(&s, &m, &h, &conn, |_| {
            Ok(RestCall::DeleteJob {
                id: job_id(&id)?,
                reason: q.get("reason").cloned(),
            })
        })
        .await,
    )
}

macro_rules! job_call {
    ($name:ident, $variant:ident) => {
        async fn $name(
            State(s): State<Arc<Shared>>,
            axum::Extension(conn): axum::Extension<Conn>,
            m: Method,
            h: HeaderMap,
            Path(id): Path<String>,
        ) -> Response {
            done(api(&s, &m, &h, &conn, |_| Ok(RestCall::$variant { id: job_id(&id)? })).await)
        }
    };
}

job_call!(keepalive, Keepalive);
job_call!(job_machine, JobMachine);
job_call!(get_power, GetPower);

async fn set_power(
    State(s): State<Arc<Shared>>,
    axum::Extension(conn): axum::Extension<Conn>,
    m: Method,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    done(
        api(&s, &m, &h, &conn, |_| {
            Ok(RestCall::SetPower {
                id: job_id(&id)?,
                body: body.to_vec(),
            })
        })
        .await,
    )
}

async fn job_chip(
    State(s): State<Arc<Shared>>,
    axum::Extension(conn): axum::Extension<Conn>,
    m: Method,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Q,
) -> Response {
    done(
        api(&s, &m, &h, &conn, |_| {
            Ok(RestCall::JobChip {
                id: job_id(&id)?,
                x: int(&q, "x")?,
                y: int(&q, "y")?,
            })
        })
        .await,
    )
}

/// The board and chip a memory request goes to.
async fn memory_target(
    s: &Shared,
    m: &Method,
    h: &HeaderMap,
    conn: &Conn,
    id: &str,
    q: &HashMap<String, String>,
) -> Result<(spinnbed_spalloc::rest::BoardTarget, u32), Response> {
    let address = int(q, "address")?;
    let address = u32::try_from(address).map_err(|_| {
        text(
            StatusCode::BAD_REQUEST,
            format!("address {address} is not a 32-bit address"),
        )
    })?;
    let r = api(s, m, h, conn, |_| {
        Ok(RestCall::MemoryTarget {
            id: job_id(id)?,
            x: int(q, "x")?,
            y: int(q, "y")?,
        })
    })
    .await?;
    match r {
        RestReply::Target(t) => Ok((t, address)),
        other => Err(respond(other)),
    }
}

async fn read_memory(
    State(s): State<Arc<Shared>>,
    axum::Extension(conn): axum::Extension<Conn>,
    m: Method,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Q,
) -> Response {
    let (target, address) = match memory_target(&s, &m, &h, &conn, &id, &q).await {
        Ok(t) => t,
        Err(e) => return e,
    };
    let size = match int(&q, "size") {
        Ok(n) if (0..=MAX_MEMORY as i64).contains(&n) => n as usize,
        Ok(n) => return text(StatusCode::BAD_REQUEST, format!("size {n} is not 0 to {MAX_MEMORY}")),
        Err(e) => return e,
    };
    match super::memory::read(target, address, size, MEMORY_TIMEOUT).await {
        Ok(data) => ([(header::CONTENT_TYPE, "application/octet-stream")], data).into_response(),
        Err(e) => text(StatusCode::BAD_GATEWAY, format!("reading the board failed: {e}")),
    }
}

async fn write_memory(
    State(s): State<Arc<Shared>>,
    axum::Extension(conn): axum::Extension<Conn>,
    m: Method,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> Response {
    let (target, address) = match memory_target(&s, &m, &h, &conn, &id, &q).await {
        Ok(t) => t,
        Err(e) => return e,
    };
    match super::memory::write(target, address, body.to_vec(), MEMORY_TIMEOUT).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(e) => text(StatusCode::BAD_GATEWAY, format!("writing the board failed: {e}")),
    }
}

async fn reset_router(
    State(s): State<Arc<Shared>>,
    axum::Extension(conn): axum::Extension<Conn>,
    m: Method,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Q,
) -> Response {
    let mut filters = Vec::new();
    for (k, v) in &q {
        let (Ok(index), Ok(word)) = (k.parse::<u32>(), v.parse::<u32>()) else {
            return text(
                StatusCode::BAD_REQUEST,
                format!("router filter {k}={v}: expected INDEX=WORD (decimal)"),
            );
        };
        if index >= 16 {
            return text(
                StatusCode::BAD_REQUEST,
                format!("router filter index {index} is not 0 to 15"),
            );
        }
        filters.push((index, word));
    }
    filters.sort();
    let r = api(&s, &m, &h, &conn, |_| Ok(RestCall::RouterTargets { id: job_id(&id)? })).await;
    let targets = match r {
        Ok(RestReply::Targets(t)) => t,
        Ok(other) => return respond(other),
        Err(e) => return e,
    };
    match super::memory::reset_routers(&targets, &filters, MEMORY_TIMEOUT).await {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(e) => text(StatusCode::BAD_GATEWAY, format!("resetting the routers failed: {e}")),
    }
}

async fn proxy(
    State(s): State<Arc<Shared>>,
    axum::Extension(conn): axum::Extension<Conn>,
    m: Method,
    h: HeaderMap,
    Path(id): Path<String>,
    ws: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    let id = match job_id(&id) {
        Ok(id) => id,
        Err(e) => return e,
    };
    // Registered before the job is looked up, so that its end cannot slip between the two;
    // every websocket of a job listens to the same end.
    let end_rx = lock(&s.proxies)
        .entry(id.0)
        .or_insert_with(|| watch::channel(None).0)
        .subscribe();
    // The handshake is a GET, but opening a proxy acts on the job: it needs the CSRF token
    // like any state-changing request (spinnman sends it).
    let _ = m;
    let r = api(&s, &Method::POST, &h, &conn, |_| Ok(RestCall::ProxyBoards { id })).await;
    let boards = match r {
        Ok(RestReply::Connections(c)) => c,
        refused => {
            // Nobody may keep an entry for a job they cannot proxy (or for any id at all,
            // without a login): the map holds only jobs some websocket listens to.
            drop(end_rx);
            s.unregister_proxy(id.0);
            return done(refused);
        }
    };
    let boards: BTreeMap<(u32, u32), std::net::Ipv4Addr> = boards.into_iter().map(|(c, ip)| ((c.x, c.y), ip)).collect();
    let unbound = boards
        .values()
        .next()
        .map_or(std::net::Ipv4Addr::LOCALHOST, |ip| proxy_io::facing(*ip));
    ws.max_message_size(spinnbed_spalloc::proxy::MAX_FRAME_LEN)
        .max_frame_size(spinnbed_spalloc::proxy::MAX_FRAME_LEN)
        .read_buffer_size(proxy_io::READ_BUFFER)
        .on_upgrade(move |socket| async move {
            proxy_io::run(socket, boards, unbound, end_rx).await;
        })
}
