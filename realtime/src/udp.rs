//! Real UDP sockets for the real-time drivers: one socket per (address, port), each with a
//! receive task feeding one channel, so a single loop can own the sans-IO state machine and
//! answer from exactly the address a request was sent to (real clients use connected sockets
//! and ignore replies from anywhere else).

use crate::error::RealtimeError;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// A datagram received on one of the set's sockets.
#[derive(Debug)]
pub struct Received {
    /// The local (address, port) it arrived on.
    pub local: SocketAddrV4,
    /// Who sent it.
    pub peer: SocketAddrV4,
    /// UDP payload.
    pub payload: Vec<u8>,
}

/// Sockets bound to many local addresses.
#[derive(Debug)]
pub struct SocketSet {
    sockets: BTreeMap<SocketAddrV4, Arc<UdpSocket>>,
    tasks: BTreeMap<SocketAddrV4, tokio::task::JoinHandle<()>>,
    tx: mpsc::Sender<Received>,
}

/// Raises the open-file limit so that thousands of sockets can be bound (a SpiNNaker1M
/// emulation binds about 2,450). Best effort.
pub fn raise_fd_limit(want: u64) {
    if let Ok((soft, hard)) = rlimit::Resource::NOFILE.get()
        && soft < want
    {
        let _ = rlimit::Resource::NOFILE.set(want.min(hard).max(soft), hard);
    }
}

/// Refuses addresses outside 127.0.0.0/8 unless allowed.
pub fn check_loopback(addrs: &[SocketAddrV4], allow_non_loopback: bool) -> Result<(), RealtimeError> {
    if allow_non_loopback {
        return Ok(());
    }
    match addrs.iter().find(|a| !a.ip().is_loopback()) {
        Some(a) => Err(RealtimeError::NotLoopback(*a.ip())),
        None => Ok(()),
    }
}

impl SocketSet {
    /// Binds every address; received datagrams go to the returned channel.
    pub async fn bind(addrs: &[SocketAddrV4]) -> Result<(SocketSet, mpsc::Receiver<Received>), RealtimeError> {
        raise_fd_limit(addrs.len() as u64 + 256);
        let (tx, rx) = mpsc::channel(65_536);
        let mut set = SocketSet {
            sockets: BTreeMap::new(),
            tasks: BTreeMap::new(),
            tx,
        };
        for a in addrs {
            set.add(*a).await?;
        }
        Ok((set, rx))
    }

    /// Binds one more address (idempotent).
    pub async fn add(&mut self, a: SocketAddrV4) -> Result<(), RealtimeError> {
        if self.sockets.contains_key(&a) {
            return Ok(());
        }
        let s = UdpSocket::bind(a)
            .await
            .map_err(|source| RealtimeError::Bind { addr: a, source })?;
        let s = Arc::new(s);
        let rx_sock = s.clone();
        let tx = self.tx.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                match rx_sock.recv_from(&mut buf).await {
                    Ok((n, std::net::SocketAddr::V4(peer))) => {
                        let r = Received {
                            local: a,
                            peer,
                            payload: buf[..n].to_vec(),
                        };
                        if tx.send(r).await.is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    // ICMP errors (e.g. port unreachable from a closed client) are not fatal.
                    Err(_) => tokio::task::yield_now().await,
                }
            }
        });
        self.sockets.insert(a, s);
        self.tasks.insert(a, task);
        Ok(())
    }

    /// Closes one address's socket (no-op if it is not bound).
    pub fn remove(&mut self, a: SocketAddrV4) {
        if let Some(t) = self.tasks.remove(&a) {
            t.abort();
        }
        self.sockets.remove(&a);
    }

    /// The bound addresses, sorted.
    pub fn addresses(&self) -> impl Iterator<Item = SocketAddrV4> + '_ {
        self.sockets.keys().copied()
    }

    /// Sends from a bound local address.
    pub async fn send(&self, from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) -> bool {
        match self.sockets.get(&from) {
            Some(s) => s.send_to(payload, to).await.is_ok(),
            None => false,
        }
    }

    /// Sends without waiting (drops the datagram if the socket buffer is full, as UDP may).
    pub fn try_send(&self, from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) -> bool {
        match self.sockets.get(&from) {
            Some(s) => s.try_send_to(payload, std::net::SocketAddr::V4(to)).is_ok(),
            None => false,
        }
    }

    /// Number of bound sockets.
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// True if nothing is bound.
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }
}

impl Drop for SocketSet {
    fn drop(&mut self) {
        for t in self.tasks.values() {
            t.abort();
        }
    }
}

/// Loopback address helper for tests: 127.0.0.1 with an ephemeral port.
pub fn any_loopback() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)
}
