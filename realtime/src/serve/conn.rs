//! TCP connections of `sim serve`: one reader and one writer task per client, around buffers
//! shared with the server loop.
//!
//! The reader frames lines (a line over [`MAX_LINE`] bytes, or one left unfinished for
//! [`LINE_DEADLINE`], closes the connection) and moves complete lines into the shared inbox,
//! reading no more while the inbox holds [`INBOX_LIMIT`] bytes: a client that pipelines faster
//! than the server answers waits in its own socket buffer. The server loop takes lines from
//! the inbox, puts replies into the outbox (no more than [`OUTBOX_LIMIT`] bytes at a time) and
//! wakes the writer, which sends them. So each connection holds a bounded amount of memory
//! whatever the client does, and a client that never reads blocks only itself — until it has
//! taken nothing for the stall deadline ([`LINE_DEADLINE`] by default), when it is cut off.

use crate::serve::ClientId;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};

/// Longest request line accepted (the reference has no limit; its clients send lines of a few
/// hundred bytes).
pub const MAX_LINE: usize = 1 << 20;
/// How long a client may stall (by default): a request line left unfinished that long, or
/// replies it takes none of for that long, close its connection.
pub const LINE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);
/// Complete lines waiting for the server loop, per connection.
pub const INBOX_LIMIT: usize = 64 * 1024;
/// Replies waiting for the writer, per connection.
pub const OUTBOX_LIMIT: usize = 256 * 1024;

/// What connections tell the server loop.
#[derive(Debug)]
pub enum ToLoop {
    /// A client connected.
    Connected(ClientId, std::net::SocketAddr, Arc<Shared>),
    /// Lines arrived.
    Input(ClientId),
    /// The outbox drained below its limit.
    Writable(ClientId),
    /// The client went, or was cut off (why, for the log).
    Gone(ClientId, Option<String>),
    /// A REST call (from the HTTP layer, not a v1 connection).
    Rest(Box<crate::serve::rest::web::RestMsg>),
}

/// Buffers shared by a connection's tasks and the server loop.
#[derive(Debug, Default)]
pub struct Bufs {
    /// Complete request lines, each ending in `\n`.
    pub inbox: Vec<u8>,
    /// Bytes to send.
    pub outbox: Vec<u8>,
    /// Close once the outbox is sent.
    pub close: bool,
}

/// One connection's shared state.
#[derive(Debug, Default)]
pub struct Shared {
    /// The buffers.
    pub bufs: Mutex<Bufs>,
    /// Wakes the writer (outbox filled, or close).
    pub wake_writer: Notify,
    /// Wakes the reader (room in the inbox, or close).
    pub wake_reader: Notify,
    /// An `Input` message is on its way to the loop (so that one is enough).
    pub input_flagged: AtomicBool,
    /// The loop is waiting for the outbox to drain.
    pub want_writable: AtomicBool,
    /// The connection is over.
    pub closed: AtomicBool,
}

impl Shared {
    /// Locks the buffers (a poisoned lock only means a task panicked mid-copy: the bytes are
    /// still bytes).
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Bufs> {
        self.bufs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the connection: the writer sends what is queued, then both tasks stop.
    pub fn close(&self) {
        self.lock().close = true;
        self.closed.store(true, Ordering::SeqCst);
        self.wake_writer.notify_one();
        self.wake_reader.notify_one();
    }
}

/// Runs a connection's two tasks.
pub fn spawn(
    id: ClientId,
    stream: TcpStream,
    shared: Arc<Shared>,
    to_loop: mpsc::Sender<ToLoop>,
    line_deadline: std::time::Duration,
) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    tokio::spawn(reader(id, rd, shared.clone(), to_loop.clone(), line_deadline));
    tokio::spawn(writer(id, wr, shared, to_loop, line_deadline));
}

async fn reader(
    id: ClientId,
    mut rd: tokio::net::tcp::OwnedReadHalf,
    shared: Arc<Shared>,
    to_loop: mpsc::Sender<ToLoop>,
    line_deadline: std::time::Duration,
) {
    let mut partial: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 4096];
    let mut line_started: Option<tokio::time::Instant> = None;
    let why: Option<String> = loop {
        if shared.closed.load(Ordering::SeqCst) {
            break None;
        }
        let full = shared.lock().inbox.len() >= INBOX_LIMIT;
        if full {
            shared.wake_reader.notified().await;
            continue;
        }
        let deadline = line_started.map(|t| t + line_deadline);
        let r = tokio::select! {
            r = rd.read(&mut buf) => r,
            _ = shared.wake_reader.notified() => continue,
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => break Some(format!("a request line was left unfinished for {:?}", line_deadline)),
        };
        let n = match r {
            Ok(0) => break None,
            Ok(n) => n,
            Err(e) => break Some(format!("read error: {e}")),
        };
        let data = &buf[..n];
        match data.iter().rposition(|b| *b == b'\n') {
            Some(last) => {
                let mut lines = std::mem::take(&mut partial);
                lines.extend_from_slice(&data[..=last]);
                if let Some(long) = longest_line(&lines)
                    && long > MAX_LINE
                {
                    break Some(format!("a request line of more than {MAX_LINE} bytes"));
                }
                partial.extend_from_slice(&data[last + 1..]);
                shared.lock().inbox.extend_from_slice(&lines);
                line_started = (!partial.is_empty()).then(tokio::time::Instant::now);
                if !shared.input_flagged.swap(true, Ordering::SeqCst) && to_loop.send(ToLoop::Input(id)).await.is_err()
                {
                    break None;
                }
            }
            None => {
                if partial.is_empty() {
                    line_started = Some(tokio::time::Instant::now());
                }
                partial.extend_from_slice(data);
            }
        }
        if partial.len() > MAX_LINE {
            break Some(format!("a request line of more than {MAX_LINE} bytes"));
        }
    };
    let _ = to_loop.send(ToLoop::Gone(id, why)).await;
}

/// The length of the longest `\n`-terminated line in `data`.
fn longest_line(data: &[u8]) -> Option<usize> {
    data.split(|b| *b == b'\n').map(<[u8]>::len).max()
}

async fn writer(
    id: ClientId,
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    shared: Arc<Shared>,
    to_loop: mpsc::Sender<ToLoop>,
    stall: std::time::Duration,
) {
    loop {
        let (out, close) = {
            let mut b = shared.lock();
            (std::mem::take(&mut b.outbox), b.close)
        };
        if !out.is_empty() {
            // Each write must make progress within `stall`: a client that stops reading is cut
            // off rather than holding its buffers for ever.
            let mut sent = 0;
            let failure = loop {
                if sent == out.len() {
                    break None;
                }
                match tokio::time::timeout(stall, wr.write(&out[sent..])).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break Some("the connection broke (write failed)".to_string()),
                    Ok(Ok(n)) => sent += n,
                    Err(_) => break Some(format!("the client took none of its replies for {stall:?}")),
                }
            };
            if let Some(why) = failure {
                shared.closed.store(true, Ordering::SeqCst);
                shared.wake_reader.notify_one();
                let _ = to_loop.send(ToLoop::Gone(id, Some(why))).await;
                return;
            }
            if shared.want_writable.swap(false, Ordering::SeqCst) {
                let _ = to_loop.send(ToLoop::Writable(id)).await;
            }
            continue;
        }
        if close {
            let _ = wr.shutdown().await;
            return;
        }
        shared.wake_writer.notified().await;
    }
}
