//! The websocket proxy's IO: one task per websocket drives a sans-IO
//! [`ProxySession`](spinnbed_spalloc::proxy::ProxySession), and one task per channel receives
//! the datagrams of that channel's UDP socket.
//!
//! The session decides everything (which boards a channel may reach, what is refused and how);
//! this module only moves bytes: websocket frames in, UDP sockets created, datagrams sent and
//! received, frames out. Datagrams wait for the websocket in a bounded queue: when a client
//! reads its websocket slower than its boards send, the excess is dropped (and counted), as UDP
//! would, rather than buffered without end. When the job ends, or the server stops, the session
//! closes every channel and the websocket. One exception to "the session decides": a websocket
//! frame longer than [`MAX_FRAME_LEN`](spinnbed_spalloc::proxy::MAX_FRAME_LEN) is refused by
//! the websocket layer as soon as its header arrives (nothing of it is buffered), and the
//! connection closes without a close frame (`tests/tests/rest_security.rs` checks both).

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::SinkExt;
use spinnbed_spalloc::proxy::{ChannelId, Output, ProxySession, ProxyStats};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Datagrams from boards waiting for the websocket, per websocket.
const QUEUE: usize = 1024;

/// How much the websocket reads from its connection at a time. The websocket layer zeroes
/// this much of its buffer before every read attempt, so its default (128 KiB) was the largest
/// cost of the proxy in user space (`tests/benches/proxy_load.rs`). The frames are small (SCP,
/// boot and EIEIO datagrams); a longer one still arrives whole, in more reads.
pub const READ_BUFFER: usize = 4 * 1024;

/// Why a proxy ends (from outside the session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The job was destroyed.
    JobEnded,
    /// The server is stopping.
    Shutdown,
}

/// Runs one websocket's proxy until it closes; returns its counters.
///
/// `boards`: the job's Ethernet chips (job-relative x, y) and their addresses (the client names
/// the port of each channel). `unbound_addr` is the address reported for unbound channels (one the boards can reach).
pub async fn run(
    mut ws: WebSocket,
    boards: BTreeMap<(u32, u32), Ipv4Addr>,
    unbound_addr: Ipv4Addr,
    mut end: tokio::sync::watch::Receiver<Option<End>>,
) -> ProxyStats {
    let mut session = ProxySession::new(boards, unbound_addr);
    let mut sockets: BTreeMap<ChannelId, ChannelSocket> = BTreeMap::new();
    let (tx, mut rx) = mpsc::channel::<(ChannelId, SocketAddrV4, Vec<u8>)>(QUEUE);
    let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // Already ended before the websocket opened.
    if let Some(e) = *end.borrow() {
        finish(&mut session, e);
    }
    loop {
        // Carry out what the session wants, in order; frames are queued and sent together.
        let mut queued = false;
        while let Some(out) = session.poll_output() {
            match out {
                Output::Send(frame) => {
                    queued = true;
                    if ws.feed(Message::Binary(frame.into())).await.is_err() {
                        session.websocket_closed();
                    }
                }
                Output::OpenSocket { channel, remote } => match open(remote, unbound_addr).await {
                    Ok((sock, local)) => {
                        let sock = Arc::new(sock);
                        let task = tokio::spawn(receive(channel, sock.clone(), remote, tx.clone(), dropped.clone()));
                        sockets.insert(channel, ChannelSocket { sock, remote, task });
                        session.socket_opened(channel, local);
                    }
                    Err(e) => session.socket_failed(channel, &e.to_string()),
                },
                Output::SendDatagram { channel, to, payload } => {
                    if let Some(s) = sockets.get(&channel) {
                        // UDP: a send that fails is a datagram lost. To the board a socket is
                        // connected to, without the address: the kernel then uses the route it
                        // keeps for the connection instead of looking one up for every datagram.
                        let _ = if s.remote == Some(to) {
                            s.sock.send(&payload).await
                        } else {
                            s.sock.send_to(&payload, SocketAddr::V4(to)).await
                        };
                    }
                }
                Output::CloseSocket { channel } => {
                    if let Some(s) = sockets.remove(&channel) {
                        s.task.abort();
                    }
                }
                Output::CloseWebsocket { code, reason } => {
                    queued = false;
                    let _ = ws
                        .send(Message::Close(Some(CloseFrame {
                            code: code.code(),
                            reason: reason.into(),
                        })))
                        .await;
                }
            }
        }
        if queued && ws.flush().await.is_err() {
            session.websocket_closed();
            continue;
        }
        if session.is_closed() {
            break;
        }
        tokio::select! {
            msg = ws.recv() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    // A refused or malformed frame is the session's business: it has queued the
                    // ERROR or the close.
                    let _ = session.handle_frame(&b);
                }
                Some(Ok(Message::Text(_))) => {
                    // The protocol is binary: treat text as a malformed frame.
                    let _ = session.handle_frame(&[0xff]);
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => session.websocket_closed(),
            },
            Some((channel, from, payload)) = rx.recv() => {
                session.handle_datagram(channel, from, &payload);
                // Whatever else has arrived goes out in the same flush.
                for _ in 0..64 {
                    let Ok((channel, from, payload)) = rx.try_recv() else { break };
                    session.handle_datagram(channel, from, &payload);
                }
            }
            changed = end.changed() => match changed {
                Ok(()) => {
                    if let Some(e) = *end.borrow() {
                        finish(&mut session, e);
                    }
                }
                // The server dropped the sender: it is stopping.
                Err(_) => finish(&mut session, End::Shutdown),
            },
        }
    }
    for s in sockets.into_values() {
        s.task.abort();
    }
    let mut stats = session.stats();
    stats.datagrams_dropped += dropped.load(std::sync::atomic::Ordering::Relaxed);
    stats
}

/// A channel's UDP socket and the task that receives on it.
struct ChannelSocket {
    sock: Arc<UdpSocket>,
    /// The board it is connected to (`None`: unbound).
    remote: Option<SocketAddrV4>,
    task: tokio::task::JoinHandle<()>,
}

fn finish(session: &mut ProxySession, e: End) {
    match e {
        End::JobEnded => session.job_ended(),
        End::Shutdown => session.shutdown(),
    }
}

/// A channel's socket: connected to its board, or bound on the unbound address.
async fn open(remote: Option<SocketAddrV4>, unbound_addr: Ipv4Addr) -> std::io::Result<(UdpSocket, SocketAddrV4)> {
    let sock = match remote {
        Some(r) => {
            let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).await?;
            s.connect(SocketAddr::V4(r)).await?;
            s
        }
        None => UdpSocket::bind(SocketAddrV4::new(unbound_addr, 0)).await?,
    };
    let local = match sock.local_addr()? {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => SocketAddrV4::new(unbound_addr, 0),
    };
    Ok((sock, local))
}

/// Moves a channel's datagrams to the websocket's task (dropping them when its queue is full).
/// A socket connected to `remote` receives only what that address sends (the kernel filters),
/// so it is read without asking who sent each datagram.
async fn receive(
    channel: ChannelId,
    sock: Arc<UdpSocket>,
    remote: Option<SocketAddrV4>,
    tx: mpsc::Sender<(ChannelId, SocketAddrV4, Vec<u8>)>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let received = match remote {
            Some(r) => sock.recv(&mut buf).await.map(|n| (n, SocketAddr::V4(r))),
            None => sock.recv_from(&mut buf).await,
        };
        let Ok((n, from)) = received else {
            // A connected socket reports ICMP unreachables as errors: keep listening.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let SocketAddr::V4(from) = from else { continue };
        match tx.try_send((channel, from, buf[..n].to_vec())) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

/// The address boards can send to: the local address the host would use to reach `board`.
pub fn facing(board: Ipv4Addr) -> Ipv4Addr {
    let probe = std::net::UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect(SocketAddrV4::new(board, 17893)).map(|()| s))
        .and_then(|s| s.local_addr());
    match probe {
        Ok(SocketAddr::V4(a)) if !a.ip().is_unspecified() => *a.ip(),
        _ if board.is_loopback() => Ipv4Addr::LOCALHOST,
        _ => Ipv4Addr::UNSPECIFIED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as M;

    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[tokio::test]
    async fn a_channel_reaches_its_board_and_nothing_else_and_closes_with_the_job() {
        // A "board": echoes every datagram.
        let board = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = board.local_addr().unwrap().port() as u32;
        tokio::spawn(async move {
            let mut b = [0u8; 2048];
            while let Ok((n, from)) = board.recv_from(&mut b).await {
                let _ = board.send_to(&b[..n], from).await;
            }
        });
        let (end_tx, end_rx) = tokio::sync::watch::channel(None);
        let app = axum::Router::new().route(
            "/proxy",
            axum::routing::get(move |ws: axum::extract::ws::WebSocketUpgrade| {
                let end = end_rx.clone();
                async move {
                    ws.on_upgrade(move |socket| async move {
                        let boards = BTreeMap::from([((0, 0), Ipv4Addr::LOCALHOST)]);
                        run(socket, boards, Ipv4Addr::LOCALHOST, end).await;
                    })
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/proxy"))
            .await
            .unwrap();
        // OPEN (corr 0) to the job's board (0, 0).
        ws.send(M::Binary(words(&[0, 0, 0, 0, port]).into())).await.unwrap();
        let reply = recv(&mut ws).await.unwrap();
        assert_eq!(reply.len(), 12);
        assert_eq!(&reply[..8], &words(&[0, 0])[..]);
        let channel = u32::from_le_bytes(reply[8..12].try_into().unwrap());
        assert_ne!(channel, 0);
        // MSG: to the board and back.
        let mut msg = words(&[2, channel]);
        msg.extend_from_slice(b"hello board");
        ws.send(M::Binary(msg.clone().into())).await.unwrap();
        assert_eq!(recv(&mut ws).await.unwrap(), msg);
        // OPEN (corr 1) to a chip that is not the job's: an ERROR with that corr.
        ws.send(M::Binary(words(&[0, 1, 8, 4, port]).into())).await.unwrap();
        let e = recv(&mut ws).await.unwrap();
        assert_eq!(&e[..8], &words(&[5, 1])[..]);
        assert!(String::from_utf8_lossy(&e[8..]).contains("unrecognised ethernet chip"));
        // The job ends: the websocket closes normally.
        end_tx.send(Some(End::JobEnded)).unwrap();
        assert_eq!(recv(&mut ws).await, Err(Some(1000)));
    }

    async fn recv<S>(ws: &mut S) -> Result<Vec<u8>, Option<u16>>
    where
        S: futures_util::Stream<Item = Result<M, tokio_tungstenite::tungstenite::Error>> + Unpin,
    {
        loop {
            match ws.next().await {
                Some(Ok(M::Binary(b))) => return Ok(b.to_vec()),
                Some(Ok(M::Close(c))) => return Err(c.map(|c| u16::from(c.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(None),
            }
        }
    }
}
