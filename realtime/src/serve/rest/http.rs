//! The REST service's connections: plain HTTP and HTTPS on one port, with bounded handshakes.
//!
//! spinnman's client may be given an `http://` service URL, but it rewrites every URL after the
//! root document to `https://` on the same host and port, so both must be answered there. Each
//! accepted connection's first byte decides: `0x16` (a TLS ClientHello) is wrapped in TLS,
//! anything else is served as plain HTTP/1.1. Abuse is bounded: at most [`MAX_CONNECTIONS`]
//! connections at once (more are closed as they arrive), [`HANDSHAKE_TIMEOUT`] to send the
//! first byte and finish a TLS handshake, and hyper's header timeout for each request's head.
//! Every request carries the peer address and whether it came over TLS ([`Conn`]) as an
//! extension, for keepalive hosts and for the `ws://`/`wss://` choice of proxy URLs.

use axum::Router;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connections served at once (a new one beyond this is closed at once).
pub const MAX_CONNECTIONS: usize = 1024;
/// Time to send the first byte and, for TLS, to finish the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to send a request's head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(20);

/// What a handler knows about its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn {
    /// The client.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// Counters of the accept loop.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Connections closed at once because [`MAX_CONNECTIONS`] were open.
    pub refused: std::sync::atomic::AtomicU64,
    /// Connections that sent nothing, or did not finish a TLS handshake, in time.
    pub timed_out: std::sync::atomic::AtomicU64,
    /// TLS handshakes that failed.
    pub tls_failed: std::sync::atomic::AtomicU64,
}

/// Serves `app` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, app: Router, stats: Arc<HttpStats>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            stats.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let (acceptor, app, stats) = (acceptor.clone(), app.clone(), stats.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let mut first = [0u8; 1];
            let peeked = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await;
            let is_tls = match peeked {
                Ok(Ok(1)) => first[0] == 0x16,
                Ok(_) => return,
                Err(_) => {
                    stats.timed_out.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
            };
            if is_tls {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => serve_one(TokioIo::new(s), app, Conn { peer, tls: true }).await,
                    Ok(Err(_)) => {
                        stats.tls_failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(_) => {
                        stats.timed_out.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            } else {
                serve_one(TokioIo::new(stream), app, Conn { peer, tls: false }).await;
            }
        });
    }
}

async fn serve_one<I>(io: TokioIo<I>, app: Router, conn: Conn)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tower::ServiceExt;
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(conn);
        normalise(&mut req);
        app.clone().oneshot(req.map(axum::body::Body::new))
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(io, service)
        .with_upgrades()
        .await;
}

/// Routes see a normalised path: spinnman asks for `.../jobs//7/` (a doubled slash) and for
/// collections with a trailing slash.
fn normalise<B>(req: &mut hyper::Request<B>) {
    let uri = req.uri();
    let path = uri.path();
    let clean = spinnbed_spalloc::rest::text::normalise_path(path);
    if clean == path {
        return;
    }
    let rebuilt = match uri.query() {
        Some(q) => format!("{clean}?{q}"),
        None => clean.into_owned(),
    };
    if let Ok(u) = rebuilt.parse() {
        *req.uri_mut() = u;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut s: S) -> String {
        s.write_all(b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn one_port_answers_plain_http_and_tls_and_tells_handlers_which() {
        let dir = tempfile::tempdir().unwrap();
        let tls = super::super::tls::setup(
            dir.path(),
            &super::super::tls::CertSource::SelfSigned(vec!["127.0.0.1".into()]),
        )
        .unwrap();
        let app = Router::new().route(
            "/who",
            axum::routing::get(|axum::Extension(c): axum::Extension<Conn>| async move { format!("tls={}", c.tls) }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(HttpStats::default());
        let server = tokio::spawn(serve(listener, tls.config.clone(), app, stats.clone()));
        let plain = get(tokio::net::TcpStream::connect(addr).await.unwrap()).await;
        assert!(
            plain.starts_with("HTTP/1.1 200") && plain.ends_with("tls=false"),
            "{plain}"
        );
        // A client that trusts the generated certificate.
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_file_iter(&tls.cert_path).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let s = connector
            .connect(name, tokio::net::TcpStream::connect(addr).await.unwrap())
            .await
            .unwrap();
        let secure = get(s).await;
        assert!(
            secure.starts_with("HTTP/1.1 200") && secure.ends_with("tls=true"),
            "{secure}"
        );
        // A TLS hello that goes nowhere fails that connection only.
        let mut junk = tokio::net::TcpStream::connect(addr).await.unwrap();
        junk.write_all(&[0x16, 3, 1, 0, 1, 0]).await.unwrap();
        drop(junk);
        let again = get(tokio::net::TcpStream::connect(addr).await.unwrap()).await;
        assert!(again.ends_with("tls=false"), "{again}");
        server.abort();
    }
}
