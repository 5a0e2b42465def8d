//! Memory and routers of a job's boards for the REST API: SCP from the server to the board,
//! with the core's host side (`Transfer`, windowed and retried as spinnman does) on a UDP
//! socket of its own per request.
//!
//! The same board memory the client reaches through the proxy: a write here is read back
//! through proxied SCP, and the other way round.

use crate::driver::UdpHost;
use spinnbed_core::host::{HostConfig, HostEvent, Policy, SCP_PORT, ScpRequest, Transfer, TransferEvent};
use spinnbed_core::proto::scp::{AccessType, Request, RouterOp};
use spinnbed_core::proto::sdp::Address;
use spinnbed_spalloc::rest::BoardTarget;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

/// Base of a chip's router registers.
const ROUTER_BASE: u32 = 0xe100_0000;
/// The diagnostic filter registers (16 words).
const DIAGNOSTIC_FILTERS: u32 = ROUTER_BASE + 0x200;
/// The diagnostic counters (16 words).
const DIAGNOSTIC_COUNTERS: u32 = ROUTER_BASE + 0x300;
/// Multicast table entries a router has.
const ROUTER_ENTRIES: u16 = 1024;

async fn host() -> Result<UdpHost, String> {
    let sock = tokio::net::UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
        .await
        .map_err(|e| format!("no UDP socket: {e}"))?;
    Ok(UdpHost::new(sock, HostConfig::for_policy(Policy::spinnman())))
}

fn remote(t: &BoardTarget) -> SocketAddrV4 {
    SocketAddrV4::new(t.ip, SCP_PORT)
}

fn chip(t: &BoardTarget) -> Result<Address, String> {
    match (u8::try_from(t.chip_x), u8::try_from(t.chip_y)) {
        (Ok(x), Ok(y)) => Ok(Address::scp(x, y, 0)),
        _ => Err(format!(
            "chip ({}, {}) is beyond SCP's 8-bit coordinates",
            t.chip_x, t.chip_y
        )),
    }
}

/// Runs one transfer to its end.
async fn transfer(mut udp: UdpHost, t: Transfer, timeout: Duration) -> Result<Vec<u8>, String> {
    let op = udp.host_mut().start_transfer(t);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        udp.flush().await.map_err(|e| e.to_string())?;
        while let Some(ev) = udp.host_mut().poll_event() {
            if let HostEvent::Transfer {
                op: o,
                event: TransferEvent::Done(r),
            } = ev
                && o == op
            {
                return r.map(|report| report.data);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("no answer within {} s", timeout.as_secs()));
        }
        udp.step(deadline).await;
    }
}

/// Reads `size` bytes at `address` of the target chip.
pub async fn read(t: BoardTarget, address: u32, size: usize, timeout: Duration) -> Result<Vec<u8>, String> {
    let udp = host().await?;
    let now = udp.now();
    transfer(udp, Transfer::read(now, remote(&t), chip(&t)?, address, size), timeout).await
}

/// Writes `data` at `address` of the target chip.
pub async fn write(t: BoardTarget, address: u32, data: Vec<u8>, timeout: Duration) -> Result<(), String> {
    let udp = host().await?;
    let now = udp.now();
    transfer(udp, Transfer::write(now, remote(&t), chip(&t)?, address, data), timeout)
        .await
        .map(|_| ())
}

/// Resets the routers of every target chip: the multicast table cleared, the diagnostic
/// counters zeroed and the given diagnostic filters (index, word) installed.
pub async fn reset_routers(targets: &[BoardTarget], filters: &[(u32, u32)], timeout: Duration) -> Result<(), String> {
    let mut udp = host().await?;
    let now = udp.now();
    let mut pending = BTreeMap::new();
    let mut token = 0u32;
    let mut submit = |udp: &mut UdpHost, t: &BoardTarget, req: ScpRequest, what: String| {
        udp.host_mut().submit(now, remote(t), req, token);
        pending.insert(token, what);
        token += 1;
    };
    for t in targets {
        let dest = chip(t)?;
        let clear = Request::Router {
            app_id: 0,
            op: RouterOp::Clear {
                start: 0,
                count: ROUTER_ENTRIES,
            },
        };
        let req = ScpRequest::new(dest, &clear).map_err(|e| e.to_string())?;
        submit(
            &mut udp,
            t,
            req,
            format!("chip ({}, {}) router clear", t.chip_x, t.chip_y),
        );
        let zeros = [0u8; 64];
        let req = ScpRequest::new(
            dest,
            &Request::Write {
                addr: DIAGNOSTIC_COUNTERS,
                access: AccessType::Word,
                data: &zeros,
            },
        )
        .map_err(|e| e.to_string())?;
        submit(&mut udp, t, req, format!("chip ({}, {}) counters", t.chip_x, t.chip_y));
        for (index, word) in filters {
            let bytes = word.to_le_bytes();
            let req = ScpRequest::new(
                dest,
                &Request::Write {
                    addr: DIAGNOSTIC_FILTERS + 4 * index,
                    access: AccessType::Word,
                    data: &bytes,
                },
            )
            .map_err(|e| e.to_string())?;
            submit(
                &mut udp,
                t,
                req,
                format!("chip ({}, {}) filter {index}", t.chip_x, t.chip_y),
            );
        }
    }
    let failed = udp
        .wait_for(pending, timeout, |ev| match ev {
            HostEvent::Scp { token, outcome, .. } => Some((token, outcome.map(|_| ()))),
            _ => None,
        })
        .await
        .map_err(|e| e.to_string())?;
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}
