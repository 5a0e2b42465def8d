//! A client of `sim serve`'s REST API and websocket proxy for tests and benchmarks: HTTP over
//! hyper on plain TCP or rustls (one connection per request, as spinnman makes them), the
//! login spinnman performs (login page, form, root document), jobs, booting a job's board
//! straight over UDP, and the proxy's websocket with its binary frames.
//!
//! Every call panics with what went wrong (these are test helpers), and gives up after
//! [`CALL_TIMEOUT`].

use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use spinnbed_core::host::{BootConfig, HostConfig, Policy, stand_in_image};
use spinnbed_core::proto::scp::{AccessType, Reply, ReplyMessage, Request, RequestMessage};
use spinnbed_core::proto::sdp;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

/// How long any one request may take before the caller fails.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// A connection, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An HTTP client of one server: hyper over plain TCP or rustls, a new connection per
/// request (as spinnman makes them).
#[derive(Clone)]
pub struct Client {
    /// The server's address.
    pub addr: SocketAddr,
    tls: tokio_rustls::TlsConnector,
}

impl Client {
    /// A client of `addr` that trusts only the certificate in `cert` (PEM).
    pub fn new(addr: SocketAddr, cert: &Path) -> Client {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_file_iter(cert).expect("the server's certificate") {
            roots.add(c.expect("a certificate")).expect("a usable certificate");
        }
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Client {
            addr,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }
    }

    /// A new connection, TLS (checking the certificate against 127.0.0.1) or plain; without
    /// Nagle's delay, as spinnman's websocket-client sets it.
    pub async fn connect(&self, tls: bool) -> Box<dyn Io> {
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        tcp.set_nodelay(true).expect("TCP_NODELAY");
        if !tls {
            return Box::new(tcp);
        }
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("a server name");
        Box::new(self.tls.connect(name, tcp).await.expect("a TLS handshake"))
    }

    /// Sends `call` on a new connection; panics after [`CALL_TIMEOUT`].
    pub async fn send(&self, call: Call) -> Resp {
        tokio::time::timeout(CALL_TIMEOUT, self.send_now(call))
            .await
            .expect("an answer in time")
    }

    /// Sends `call` on a new connection.
    pub async fn send_now(&self, call: Call) -> Resp {
        let io = self.connect(call.tls).await;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .expect("an HTTP connection");
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(call.method)
            .uri(&call.path)
            .header("Host", self.addr.to_string());
        for (k, v) in &call.headers {
            req = req.header(*k, v);
        }
        let req = req
            .body(http_body_util::Full::new(hyper::body::Bytes::from(call.body)))
            .expect("a request");
        let resp = sender.send_request(req).await.expect("a response");
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("the body").to_bytes().to_vec();
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let cookie = parts
            .headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("JSESSIONID="))
            .map(|v| v.split(';').next().unwrap_or("").to_string());
        Resp {
            status: parts.status.as_u16(),
            content_type: header("content-type"),
            cookie,
            body,
        }
    }
}

/// One request, built with [`call`] or [`get`] and the methods below.
pub struct Call {
    /// The method.
    pub method: &'static str,
    /// The path (and query).
    pub path: String,
    /// Headers beside `Host`.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Whether it goes over TLS.
    pub tls: bool,
}

/// A request without headers or body, over plain HTTP.
pub fn call(method: &'static str, path: impl Into<String>) -> Call {
    Call {
        method,
        path: path.into(),
        headers: Vec::new(),
        body: Vec::new(),
        tls: false,
    }
}

/// A GET.
pub fn get(path: impl Into<String>) -> Call {
    call("GET", path)
}

impl Call {
    /// With a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Call {
        self.headers.push((name, value.into()));
        self
    }

    /// With a body of this type.
    pub fn body(self, content_type: &str, body: impl Into<Vec<u8>>) -> Call {
        let mut c = self.header("Content-Type", content_type);
        c.body = body.into();
        c
    }

    /// With the session cookie `id`.
    pub fn cookie(self, id: &str) -> Call {
        self.header("Cookie", format!("JSESSIONID={id}"))
    }

    /// With a CSRF token.
    pub fn csrf(self, token: &str) -> Call {
        self.header("X-CSRF-TOKEN", token)
    }

    /// With a bearer token.
    pub fn bearer(self, token: &str) -> Call {
        self.header("Authorization", format!("Bearer {token}"))
    }

    /// With the session's cookie and, if given, a CSRF token.
    pub fn by(self, s: &Session, csrf: Option<&str>) -> Call {
        let c = self.cookie(&s.cookie);
        match csrf {
            Some(t) => c.csrf(t),
            None => c,
        }
    }

    /// With the session's cookie and its own CSRF token.
    pub fn as_(self, s: &Session) -> Call {
        self.by(s, Some(&s.csrf))
    }

    /// Over TLS.
    pub fn tls(mut self) -> Call {
        self.tls = true;
        self
    }
}

/// A response.
#[derive(Clone, PartialEq, Eq)]
pub struct Resp {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: Option<String>,
    /// The `JSESSIONID` this response sets, if any.
    pub cookie: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut body = self.text();
        if body.len() > 300 {
            body = format!(
                "{}... ({} bytes)",
                &body[..body.floor_char_boundary(300)],
                self.body.len()
            );
        }
        f.debug_struct("Resp")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("cookie", &self.cookie)
            .field("body", &body)
            .finish()
    }
}

impl Resp {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// What a caller can tell apart: status, content type and body.
    pub fn seen(&self) -> (u16, Option<String>, String) {
        (self.status, self.content_type.clone(), self.text())
    }
}

/// URL-encoded form fields.
pub fn form(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The login form's CSRF token.
pub fn form_token(page: &str) -> String {
    let start = page.find("name=\"_csrf\" value=\"").expect("a CSRF field") + "name=\"_csrf\" value=\"".len();
    page[start..].split('"').next().expect("a token").to_string()
}

/// The service root document.
pub const ROOT: &str = "/spalloc/srv/spalloc/";
/// The login page (the form and an anonymous session).
pub const LOGIN_PAGE: &str = "/spalloc/system/login.html";
/// Where the login form posts.
pub const LOGIN: &str = "/spalloc/system/perform_login";

/// A job's URL path.
pub fn job_path(id: u64) -> String {
    format!("/spalloc/srv/spalloc/jobs/{id}")
}

/// A logged-in session: its cookie and CSRF token.
#[derive(Debug, Clone)]
pub struct Session {
    /// The `JSESSIONID`.
    pub cookie: String,
    /// The session's CSRF token.
    pub csrf: String,
}

/// The login page: its anonymous session and the form's token.
pub async fn login_page(c: &Client) -> (String, String) {
    let page = c.send(get(LOGIN_PAGE)).await;
    assert_eq!(page.status, 200, "{page:?}");
    (
        page.cookie.clone().expect("an anonymous session"),
        form_token(&page.text()),
    )
}

/// Posts the login form with `fields` (and the login page's session `cookie`, if given).
pub async fn perform_login(c: &Client, cookie: Option<&str>, fields: &[(&str, &str)]) -> Resp {
    let mut req = call("POST", LOGIN).body("application/x-www-form-urlencoded", form(fields));
    if let Some(id) = cookie {
        req = req.cookie(id);
    }
    c.send(req).await
}

/// Logs in as spinnman does: the login page, the form, the root document.
pub async fn login(c: &Client, (user, password): (&str, &str)) -> Session {
    let (anon, token) = login_page(c).await;
    let r = perform_login(
        c,
        Some(&anon),
        &[
            ("_csrf", &token),
            ("username", user),
            ("password", password),
            ("submit", "submit"),
        ],
    )
    .await;
    assert!(r.status < 400, "{r:?}");
    let cookie = r.cookie.expect("a session");
    assert_ne!(cookie, anon, "a login makes a new session id");
    let root = c.send(get(ROOT).cookie(&cookie)).await;
    assert_eq!(root.status, 200, "{root:?}");
    let doc = root.json();
    assert_eq!(doc["csrf-header"], "X-CSRF-TOKEN");
    Session {
        cookie,
        csrf: doc["csrf-token"].as_str().expect("a token").to_string(),
    }
}

/// Creates a one-board job on `machine`; returns its id.
pub async fn create_job(c: &Client, s: &Session, machine: &str) -> u64 {
    let body = format!(r#"{{"num-boards": 1, "machine-name": "{machine}", "keepalive-interval": "PT60S"}}"#);
    let r = c
        .send(
            call("POST", "/spalloc/srv/spalloc/jobs/")
                .as_(s)
                .body("application/json", body),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    r.json()["job-id"].as_u64().expect("a job id")
}

/// The job's state document.
pub async fn job_doc(c: &Client, s: &Session, id: u64) -> serde_json::Value {
    let r = c.send(get(job_path(id)).cookie(&s.cookie)).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.json()
}

/// Waits until the job is READY; returns its board's address.
pub async fn wait_ready(c: &Client, s: &Session, id: u64) -> Ipv4Addr {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let doc = job_doc(c, s, id).await;
        if doc["state"] == "READY" {
            break;
        }
        assert!(Instant::now() < deadline, "job {id} is not ready: {doc}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = c.send(get(format!("{}/machine", job_path(id))).cookie(&s.cookie)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let doc = r.json();
    doc["connections"][0][1]
        .as_str()
        .and_then(|ip| ip.parse().ok())
        .unwrap_or_else(|| panic!("no board address in {doc}"))
}

/// Boots a board of the emulated machine (directly over UDP), quickly.
pub async fn boot(ip: Ipv4Addr) {
    use spinnbed_core::time::Duration as CoreDuration;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("a UDP socket");
    let mut udp = spinnbed_realtime::driver::UdpHost::new(sock, HostConfig::for_policy(Policy::rig()));
    let config = BootConfig {
        probe: false,
        packet_gap: CoreDuration::from_millis(2),
        post_boot_delay: CoreDuration::from_millis(300),
        read_dims: false,
        ..BootConfig::rig(stand_in_image(4096))
    };
    let now = udp.now();
    let op = udp.host_mut().start_boot(now, ip, config).expect("a boot");
    let pending = BTreeMap::from([(op, format!("board {ip}"))]);
    let failed = udp
        .wait_for(pending, Duration::from_secs(20), spinnbed_realtime::driver::boot_done)
        .await
        .expect("the boot's socket");
    assert!(failed.is_empty(), "{failed:?}");
}

/// The proxy handshake: the websocket, or the refusal's status and body.
pub async fn ws_connect(
    c: &Client,
    id: u64,
    cookie: Option<&str>,
    csrf: Option<&str>,
    tls: bool,
) -> Result<Ws, (u16, Vec<u8>)> {
    let scheme = if tls { "wss" } else { "ws" };
    let mut req = format!("{scheme}://{}/spalloc/proxy/{id}", c.addr)
        .into_client_request()
        .expect("a websocket request");
    let h = req.headers_mut();
    if let Some(cookie) = cookie {
        h.insert("Cookie", format!("JSESSIONID={cookie}").parse().expect("a header"));
    }
    if let Some(t) = csrf {
        h.insert("X-CSRF-TOKEN", t.parse().expect("a header"));
    }
    h.insert("Origin", "127.0.0.1".parse().expect("a header"));
    let io = c.connect(tls).await;
    let handshake = tokio_tungstenite::client_async(req, io);
    match tokio::time::timeout(CALL_TIMEOUT, handshake)
        .await
        .expect("a handshake in time")
    {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(r)) => Err((r.status().as_u16(), r.body().clone().unwrap_or_default())),
        Err(e) => panic!("websocket handshake: {e}"),
    }
}

/// A proxy websocket.
pub type Ws = tokio_tungstenite::WebSocketStream<Box<dyn Io>>;

/// Little-endian words.
pub fn words(w: &[u32]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The `i`th little-endian word of `b`.
pub fn word(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().expect("four bytes"))
}

/// How a websocket read ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    /// A binary frame.
    Frame(Vec<u8>),
    /// A close frame, with its code.
    Close(Option<u16>),
    /// The connection ended without a close frame.
    Dropped(String),
}

/// The next binary frame, close or end of the websocket.
pub async fn recv(ws: &mut Ws) -> Got {
    let next = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => return Got::Frame(b.to_vec()),
                Some(Ok(Message::Close(c))) => return Got::Close(c.map(|c| u16::from(c.code))),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Got::Dropped(e.to_string()),
                None => return Got::Dropped("end of stream".into()),
            }
        }
    };
    tokio::time::timeout(CALL_TIMEOUT, next).await.expect("a frame in time")
}

/// The next binary frame (panics on anything else).
pub async fn frame(ws: &mut Ws) -> Vec<u8> {
    match recv(ws).await {
        Got::Frame(f) => f,
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// Sends one binary frame.
pub async fn send(ws: &mut Ws, bytes: Vec<u8>) {
    ws.send(Message::Binary(bytes.into())).await.expect("send a frame");
}

/// OPEN to job chip (x, y), port 17893; the channel.
pub async fn open(ws: &mut Ws, corr: u32, x: u32, y: u32) -> u32 {
    send(ws, words(&[0, corr, x, y, 17893])).await;
    let f = frame(ws).await;
    assert_eq!((f.len(), word(&f, 0), word(&f, 1)), (12, 0, corr), "{f:?}");
    word(&f, 2)
}

/// Reads `len` bytes at `addr` of the board's memory through proxied SCP on `channel`.
pub async fn scp_read(ws: &mut Ws, channel: u32, seq: u16, addr: u32, len: u32) -> Vec<u8> {
    let request = Request::Read {
        addr,
        len,
        access: AccessType::Byte,
    };
    let msg = RequestMessage {
        sdp: sdp::Repr::request(sdp::Address::scp(0, 0, 0)),
        seq,
        request,
    };
    let mut datagram = vec![0u8; msg.udp_len()];
    let n = msg.emit_udp(&mut datagram).expect("an SCP request");
    datagram.truncate(n);
    let mut f = words(&[2, channel]);
    f.extend_from_slice(&datagram);
    send(ws, f).await;
    loop {
        let f = frame(ws).await;
        assert_eq!((word(&f, 0), word(&f, 1)), (2, channel), "{f:?}");
        let reply = ReplyMessage::parse_udp(&f[8..], request.reply_kind()).expect("an SCP reply");
        if reply.seq != seq {
            continue; // a retry's late answer
        }
        match reply.reply {
            Reply::Data(d) => return d.to_vec(),
            other => panic!("SCP read: {other:?}"),
        }
    }
}

/// The ERROR frame's correlation id and text.
pub fn error_of(f: &[u8]) -> (u32, String) {
    assert_eq!(word(f, 0), 5, "not an ERROR frame: {f:?}");
    (word(f, 1), String::from_utf8_lossy(&f[8..]).into_owned())
}
