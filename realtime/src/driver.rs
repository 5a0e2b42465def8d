//! The UDP host driver: the core's sans-IO [`Host`] on one UDP socket — bind, send what it
//! has, wait for datagrams or its next timer, wait for a set of operations with a deadline —
//! and the preflight every real-time command starts with (every BMP asked its version).

use crate::clock::Clock;
use crate::error::RealtimeError;
use spinnbed_core::datagram::Datagram;
use spinnbed_core::geometry::Machine;
use spinnbed_core::host::{BootEvent, BootOutcome, Host, HostConfig, HostEvent, OpId, Policy, ScpRequest};
use spinnbed_core::proto::scp::Request;
use spinnbed_core::proto::sdp::Address;
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration as StdDuration;
use tokio::net::UdpSocket;

/// Binds the host's socket for talking to `machines`: on loopback if every address is, else on
/// all interfaces; an ephemeral port.
pub async fn bind_host_socket(machines: &[Machine]) -> Result<UdpSocket, RealtimeError> {
    let all_loopback = machines
        .iter()
        .all(|m| m.bmps().all(|(_, ip)| ip.is_loopback()) && m.board_ips().all(|(_, ip)| ip.is_loopback()));
    let ip = if all_loopback {
        Ipv4Addr::LOCALHOST
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    let addr = SocketAddrV4::new(ip, 0);
    UdpSocket::bind(addr)
        .await
        .map_err(|source| RealtimeError::Bind { addr, source })
}

/// The socket's own address (the source of what the host sends).
pub fn local_addr(sock: &UdpSocket) -> SocketAddrV4 {
    match sock.local_addr() {
        Ok(SocketAddr::V4(a)) => a,
        _ => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
    }
}

/// Sends a datagram, waiting for room in the socket buffer if it is full.
pub async fn send(sock: &UdpSocket, d: &Datagram) -> Result<(), RealtimeError> {
    let err = |source| RealtimeError::Send { dst: d.dst, source };
    match sock.try_send_to(&d.payload, SocketAddr::V4(d.dst)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::WouldBlock => sock.send_to(&d.payload, d.dst).await.map(|_| ()).map_err(err),
        Err(e) => Err(err(e)),
    }
}

/// The core's [`Host`] on one UDP socket, on the wall clock.
#[derive(Debug)]
pub struct UdpHost {
    host: Host,
    sock: UdpSocket,
    clock: Clock,
    buf: Vec<u8>,
}

impl UdpHost {
    /// A host with `config` on `sock` (its source address is the socket's).
    pub fn new(sock: UdpSocket, config: HostConfig) -> UdpHost {
        let config = HostConfig {
            local: local_addr(&sock),
            ..config
        };
        UdpHost {
            host: Host::new(config),
            sock,
            clock: Clock::start(),
            buf: vec![0; 2048],
        }
    }

    /// The host.
    pub fn host_mut(&mut self) -> &mut Host {
        &mut self.host
    }

    /// The host's time now.
    pub fn now(&self) -> spinnbed_core::time::Instant {
        self.clock.now()
    }

    /// Gives the socket back.
    pub fn into_socket(self) -> UdpSocket {
        self.sock
    }

    /// Sends everything the host has to send.
    pub async fn flush(&mut self) -> Result<(), RealtimeError> {
        while let Some(d) = self.host.poll_transmit() {
            send(&self.sock, &d).await?;
        }
        Ok(())
    }

    /// Waits for datagrams (taking every one already queued) or the host's next timer, at
    /// most until `until`, and feeds what happened to the host.
    pub async fn step(&mut self, until: tokio::time::Instant) {
        let wake = self.host.poll_timeout().map_or(until, |t| self.clock.at(t).min(until));
        let local = self.host.config().local;
        tokio::select! {
            r = self.sock.recv_from(&mut self.buf) => {
                if let Ok((n, SocketAddr::V4(src))) = r {
                    let now = self.clock.now();
                    let mut d = Datagram { src, dst: local, payload: self.buf[..n].to_vec() };
                    self.host.handle_datagram(now, &d);
                    for _ in 0..512 {
                        match self.sock.try_recv_from(&mut self.buf) {
                            Ok((n, SocketAddr::V4(src))) => {
                                d.src = src;
                                d.payload.clear();
                                d.payload.extend_from_slice(&self.buf[..n]);
                                self.host.handle_datagram(now, &d);
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
        let now = self.clock.now();
        if self.host.poll_timeout().is_some_and(|t| t <= now) {
            self.host.handle_timeout(now);
        }
    }

    /// Drives the host until every operation in `pending` (key → who, for messages) has an
    /// outcome, or `timeout` passes. `outcome` reads a host event as (key, `Ok` or the reason
    /// it failed); other events are dropped. Returns `who: why` for every failure and every
    /// operation still pending at the deadline.
    pub async fn wait_for<K: Ord, E: std::fmt::Display>(
        &mut self,
        mut pending: BTreeMap<K, String>,
        timeout: StdDuration,
        mut outcome: impl FnMut(HostEvent) -> Option<(K, Result<(), E>)>,
    ) -> Result<Vec<String>, RealtimeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut failed = Vec::new();
        loop {
            self.flush().await?;
            while let Some(ev) = self.host.poll_event() {
                let Some((key, result)) = outcome(ev) else { continue };
                if let (Some(who), Err(why)) = (pending.remove(&key), result) {
                    failed.push(format!("{who}: {why}"));
                }
            }
            if pending.is_empty() {
                return Ok(failed);
            }
            if tokio::time::Instant::now() >= deadline {
                let secs = timeout.as_secs_f64();
                failed.extend(
                    pending
                        .into_values()
                        .map(|who| format!("{who}: no answer within {secs:.1} s")),
                );
                return Ok(failed);
            }
            self.step(deadline).await;
        }
    }
}

/// A boot's end, for [`UdpHost::wait_for`]: its operation and `Ok` once the board runs
/// SC&MP, or why it did not boot; `None` for every other event.
pub fn boot_done(ev: HostEvent) -> Option<(OpId, Result<(), String>)> {
    match ev {
        HostEvent::Boot {
            op,
            event: BootEvent::Done(outcome),
            ..
        } => Some((
            op,
            match outcome {
                BootOutcome::Booted { .. } => Ok(()),
                BootOutcome::Failed(why) => Err(why),
            },
        )),
        _ => None,
    }
}

/// The CMD_VER request to a BMP or a board's monitor.
pub fn version_request() -> ScpRequest {
    ScpRequest::new(Address::new(0, 0, 0, 0), &Request::Version).expect("CMD_VER carries no data")
}

/// Asks every BMP of `machines` for its version (with rig's quick retries) on `sock`; fails
/// naming the BMPs that do not answer within `timeout`. Returns the socket for the run.
pub async fn preflight(
    sock: UdpSocket,
    machines: &[Machine],
    timeout: StdDuration,
) -> Result<UdpSocket, RealtimeError> {
    let mut udp = UdpHost::new(sock, HostConfig::for_policy(Policy::rig()));
    let now = udp.now();
    let mut pending = BTreeMap::new();
    for m in machines {
        for (frame, ip) in m.bmps() {
            let token = pending.len() as u32;
            let remote = SocketAddrV4::new(ip, spinnbed_core::host::SCP_PORT);
            udp.host_mut().submit(now, remote, version_request(), token);
            let who = format!(
                "BMP {ip} (machine {}, cabinet {} frame {})",
                m.name(),
                frame.cabinet,
                frame.frame
            );
            pending.insert(token, who);
        }
    }
    let failed = udp
        .wait_for(pending, timeout, |ev| match ev {
            HostEvent::Scp { token, outcome, .. } => Some((token, outcome.map(|_| ()))),
            _ => None,
        })
        .await?;
    if !failed.is_empty() {
        return Err(RealtimeError::Unreachable(failed));
    }
    Ok(udp.into_socket())
}
