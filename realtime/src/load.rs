//! `sim load`: an SCP load generator for `sim emulate` (or real hardware).
//!
//! It sets the machine up the way a user's tools would — every BMP asked its version, every
//! board powered on through the reference's BMP sequence, one board per machine booted (the
//! boot floods every powered board whose links are not stopped), every board asked whether it
//! runs SC&MP — and then keeps many SCP requests outstanding across all the boards that
//! answered, each board's SCP client windowed by the chosen policy (spinnman: 8), for a fixed
//! time. It reports replies per second, data rate, round-trip times and any retries or
//! failures. All protocol work is the sans-IO host of `spinnbed-core`; this module only moves
//! its datagrams over one UDP socket.

use crate::hardware::preflight;
use anyhow::{Context as _, bail};
use spinnbed_core::geometry::Machine;
use spinnbed_core::host::boot::{BootConfig, BootEvent, BootOutcome, stand_in_image};
use spinnbed_core::host::{Host, HostConfig, HostEvent, Policy, ScpRequest};
use spinnbed_core::proto::scp::Request;
use spinnbed_core::proto::sdp::Address;
use spinnbed_core::service::BmpBatch;
use spinnbed_core::time::Instant;
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration as StdDuration;
use tokio::net::UdpSocket;

/// The request each board is sent over and over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadRequest {
    /// CMD_VER to the board's Ethernet chip (a 16-byte request, a ~40-byte reply).
    Version,
    /// CMD_READ of 256 bytes of the Ethernet chip's SDRAM.
    Read,
    /// CMD_WRITE of 256 bytes to the Ethernet chip's SDRAM.
    Write,
}

/// Options of a load run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// How long to keep the load up once the machine is ready.
    pub duration: StdDuration,
    /// What to send.
    pub request: LoadRequest,
    /// Requests outstanding across all boards (submitted and not yet answered).
    pub outstanding: usize,
    /// SCP policy of every board's client (`spinnman`, `rig` or `adaptive`).
    pub policy: String,
    /// Load at most this many boards (the first in board order); all if `None`.
    pub max_boards: Option<usize>,
    /// Power every board off at the end.
    pub power_off: bool,
    /// Give up on a set-up step (power on, boot, probe) after this long.
    pub setup_timeout: StdDuration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            duration: StdDuration::from_secs(10),
            request: LoadRequest::Read,
            outstanding: 256,
            policy: "spinnman".into(),
            max_boards: None,
            power_off: true,
            setup_timeout: StdDuration::from_secs(60),
        }
    }
}

/// What a load run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    /// The request sent.
    pub request: LoadRequest,
    /// The policy of the boards' clients.
    pub policy: String,
    /// Boards the machine description lists (live, with an address).
    pub boards: usize,
    /// Boards that answered as booted and were loaded.
    pub boards_loaded: usize,
    /// Requests outstanding across the boards.
    pub outstanding: usize,
    /// Wall seconds spent powering on, booting and probing.
    pub setup_s: f64,
    /// Wall seconds of load.
    pub load_s: f64,
    /// Successful replies during the load.
    pub replies: u64,
    /// Replies per second.
    pub replies_per_s: f64,
    /// SCP payload bytes moved (read or written) per second.
    pub payload_bytes_per_s: f64,
    /// Requests that failed after their retries.
    pub failures: u64,
    /// Retransmissions (all clients).
    pub retries: u64,
    /// Timeouts (all clients).
    pub timeouts: u64,
    /// Mean latency, µs: from submit to reply, waiting for a place in the board's window
    /// included.
    pub latency_mean_us: f64,
    /// Median latency, µs.
    pub latency_p50_us: f64,
    /// 99th percentile.
    pub latency_p99_us: f64,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "boards: {} loaded of {} ({} outstanding requests, {} policy, {:.1} s set-up)",
            self.boards_loaded, self.boards, self.outstanding, self.policy, self.setup_s
        )?;
        writeln!(
            f,
            "{}: {} replies in {:.2} s = {:.0} replies/s, {:.1} MB/s of SCP data",
            match self.request {
                LoadRequest::Version => "CMD_VER",
                LoadRequest::Read => "CMD_READ 256 B",
                LoadRequest::Write => "CMD_WRITE 256 B",
            },
            self.replies,
            self.load_s,
            self.replies_per_s,
            self.payload_bytes_per_s / 1e6
        )?;
        write!(
            f,
            "latency: mean {:.0} µs, p50 {:.0} µs, p99 {:.0} µs; {} retries, {} timeouts, {} failures",
            self.latency_mean_us, self.latency_p50_us, self.latency_p99_us, self.retries, self.timeouts, self.failures
        )
    }
}

/// The host on one UDP socket.
struct Driver {
    host: Host,
    sock: UdpSocket,
    start: tokio::time::Instant,
    buf: Vec<u8>,
}

impl Driver {
    fn now(&self) -> Instant {
        Instant(self.start.elapsed().as_micros() as u64)
    }

    /// Sends everything the host has to send.
    async fn flush(&mut self) -> anyhow::Result<()> {
        while let Some((dst, p)) = self.host.poll_transmit() {
            match self.sock.try_send_to(&p, SocketAddr::V4(dst)) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.sock
                        .send_to(&p, dst)
                        .await
                        .with_context(|| format!("cannot send to {dst}"))?;
                }
                Err(e) => return Err(e).with_context(|| format!("cannot send to {dst}")),
            }
        }
        Ok(())
    }

    /// Waits for datagrams (taking every one already queued) or the host's next timer, at most
    /// until `until`, and feeds what happened to the host.
    async fn step(&mut self, until: tokio::time::Instant) {
        let wake = self
            .host
            .poll_timeout()
            .map(|t| self.start + StdDuration::from_micros(t.0));
        let wake = wake.map_or(until, |w| w.min(until));
        tokio::select! {
            r = self.sock.recv_from(&mut self.buf) => {
                if let Ok((n, SocketAddr::V4(from))) = r {
                    let now = self.now();
                    self.host.handle_datagram(now, from, &self.buf[..n]);
                    for _ in 0..512 {
                        match self.sock.try_recv_from(&mut self.buf) {
                            Ok((n, SocketAddr::V4(from))) => self.host.handle_datagram(now, from, &self.buf[..n]),
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
        let now = self.now();
        self.host.handle_timeout(now);
    }
}

/// The boards to load: every live, addressed board, by machine.
fn targets(machines: &[Machine], max: Option<usize>) -> Vec<(usize, Ipv4Addr)> {
    let mut out: Vec<(usize, Ipv4Addr)> = machines
        .iter()
        .enumerate()
        .flat_map(|(m, mm)| {
            mm.board_ips()
                .filter(|(b, _)| mm.is_live(*b))
                .map(move |(_, ip)| (m, ip))
        })
        .collect();
    if let Some(n) = max {
        out.truncate(n);
    }
    out
}

/// One BMP batch per frame powering on (or off) every listed board of the frame.
fn power_batches(machines: &[Machine], on: bool, boards: &[(usize, Ipv4Addr)]) -> Vec<BmpBatch> {
    let wanted: std::collections::BTreeSet<Ipv4Addr> = boards.iter().map(|(_, ip)| *ip).collect();
    let mut batches = Vec::new();
    for m in machines {
        let mut per_frame: BTreeMap<_, Vec<u16>> = BTreeMap::new();
        for (b, p) in m.locations() {
            if m.board_ip(b).is_some_and(|ip| wanted.contains(&ip)) {
                per_frame.entry(p.frame_id()).or_default().push(p.board);
            }
        }
        for (frame, mut nums) in per_frame {
            let Some(bmp) = m.bmp_ip(frame) else { continue };
            nums.sort_unstable();
            batches.push(BmpBatch {
                id: batches.len() as u64,
                job: 0,
                machine: m.name().to_string(),
                frame,
                bmp,
                power_on: if on { nums.clone() } else { Vec::new() },
                power_off: if on { Vec::new() } else { nums },
                links: Vec::new(),
            });
        }
    }
    batches
}

/// Runs BMP batches to completion; fails naming the BMPs whose batch failed.
async fn run_batches(d: &mut Driver, batches: Vec<BmpBatch>, timeout: StdDuration, what: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut waiting: BTreeMap<u64, Ipv4Addr> = batches.iter().map(|b| (b.id, b.bmp)).collect();
    let now = d.now();
    for b in batches {
        d.host.submit_bmp_batch(now, b);
    }
    let mut failed = Vec::new();
    while !waiting.is_empty() {
        d.flush().await?;
        while let Some(ev) = d.host.poll_event() {
            if let HostEvent::BatchDone { batch_id, bmp, result } = ev {
                waiting.remove(&batch_id);
                if let Err(e) = result {
                    failed.push(format!("BMP {bmp}: {e}"));
                }
            }
        }
        if waiting.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            failed.extend(
                waiting
                    .values()
                    .map(|ip| format!("BMP {ip}: no result within {:.0} s", timeout.as_secs_f64())),
            );
            break;
        }
        d.step(deadline).await;
    }
    if !failed.is_empty() {
        bail!("{what} failed on {} BMP(s):\n  {}", failed.len(), failed.join("\n  "));
    }
    Ok(())
}

/// Boots one board per machine (the first of `boards` on it) and waits until it runs SC&MP.
async fn boot_roots(
    d: &mut Driver,
    boards: &[(usize, Ipv4Addr)],
    policy: &Policy,
    timeout: StdDuration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut roots: BTreeMap<usize, Ipv4Addr> = BTreeMap::new();
    for &(m, ip) in boards {
        roots.entry(m).or_insert(ip);
    }
    let mut waiting = BTreeMap::new();
    for ip in roots.values() {
        let cfg = BootConfig::for_policy(policy, stand_in_image(27 * 1024));
        let op = d.host.start_boot(d.now(), *ip, cfg).context("cannot boot")?;
        waiting.insert(op, *ip);
    }
    let mut failed = Vec::new();
    while !waiting.is_empty() {
        d.flush().await?;
        while let Some(ev) = d.host.poll_event() {
            if let HostEvent::Boot {
                op,
                ip,
                event: BootEvent::Done(outcome),
            } = ev
            {
                waiting.remove(&op);
                if let BootOutcome::Failed(why) = outcome {
                    failed.push(format!("board {ip}: {why}"));
                }
            }
        }
        if waiting.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            failed.extend(
                waiting
                    .values()
                    .map(|ip| format!("board {ip}: not booted within {:.0} s", timeout.as_secs_f64())),
            );
            break;
        }
        d.step(deadline).await;
    }
    if !failed.is_empty() {
        bail!("boot failed:\n  {}", failed.join("\n  "));
    }
    Ok(())
}

/// Tokens of the probe requests (the load's own tokens are ring slots, far below).
const PROBE_TOKENS: u32 = 1 << 31;

/// Asks every board for its version; returns those that run SC&MP (P2P address known).
async fn probe(d: &mut Driver, boards: &[(usize, Ipv4Addr)], timeout: StdDuration) -> anyhow::Result<Vec<Ipv4Addr>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let port = d.host.config().scp_port;
    let now = d.now();
    for (i, &(_, ip)) in boards.iter().enumerate() {
        let req = ScpRequest::new(Address::new(0, 0, 0, 0), &Request::Version).context("cannot build CMD_VER")?;
        d.host
            .submit(now, SocketAddrV4::new(ip, port), req, PROBE_TOKENS + i as u32);
    }
    let mut pending = boards.len();
    let mut ready = vec![false; boards.len()];
    while pending > 0 && tokio::time::Instant::now() < deadline {
        d.flush().await?;
        while let Some(ev) = d.host.poll_event() {
            if let HostEvent::Scp { token, outcome, .. } = ev
                && let Some(i) = token.checked_sub(PROBE_TOKENS)
            {
                pending -= 1;
                if let Ok(reply) = outcome
                    && reply.version().is_some_and(|v| v.core().p2p != 0xFFFF)
                {
                    ready[i as usize] = true;
                }
            }
        }
        if pending > 0 {
            d.step(deadline).await;
        }
    }
    Ok(boards
        .iter()
        .zip(ready)
        .filter(|(_, r)| *r)
        .map(|((_, ip), _)| *ip)
        .collect())
}

/// The request sent to every board.
fn load_request(kind: LoadRequest, data: &[u8]) -> anyhow::Result<ScpRequest> {
    let dest = Address::new(0, 0, 0, 0);
    let r = match kind {
        LoadRequest::Version => ScpRequest::new(dest, &Request::Version),
        LoadRequest::Read => ScpRequest::new(dest, &Request::read(0x6000_0000, 256)),
        LoadRequest::Write => ScpRequest::new(dest, &Request::write(0x6000_0000, data)),
    };
    r.context("cannot build the load request")
}

/// Sets the machine up and loads it. `log` gets a line per phase.
pub async fn load(machines: &[Machine], opts: &LoadOptions, mut log: impl FnMut(&str)) -> anyhow::Result<LoadReport> {
    if opts.outstanding == 0 {
        bail!("--outstanding must be at least 1");
    }
    let policy = Policy::from_name(&opts.policy)
        .with_context(|| format!("unknown SCP policy {:?} (spinnman, rig or adaptive)", opts.policy))?;
    let all_loopback = machines
        .iter()
        .all(|m| m.bmps().all(|(_, ip)| ip.is_loopback()) && m.board_ips().all(|(_, ip)| ip.is_loopback()));
    let local = if all_loopback {
        Ipv4Addr::LOCALHOST
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    let sock = UdpSocket::bind(SocketAddrV4::new(local, 0))
        .await
        .with_context(|| format!("cannot bind a UDP socket on {local}"))?;
    preflight(machines, &sock, StdDuration::from_secs(3)).await?;
    let setup = std::time::Instant::now();
    let boards = targets(machines, opts.max_boards);
    if boards.is_empty() {
        bail!("the machine description has no live board with an address");
    }
    let mut d = Driver {
        host: Host::new(HostConfig::for_policy(policy)),
        sock,
        start: tokio::time::Instant::now(),
        buf: vec![0; 2048],
    };
    log(&format!(
        "powering on {} boards through {} BMP(s)",
        boards.len(),
        machines.iter().map(|m| m.bmps().count()).sum::<usize>()
    ));
    run_batches(
        &mut d,
        power_batches(machines, true, &boards),
        opts.setup_timeout,
        "power on",
    )
    .await?;
    log("booting");
    boot_roots(&mut d, &boards, &policy, opts.setup_timeout).await?;
    let ready = probe(&mut d, &boards, opts.setup_timeout).await?;
    if ready.is_empty() {
        bail!("no board answered as booted after the boot");
    }
    log(&format!(
        "{} of {} boards run SC&MP; loading for {:.0} s",
        ready.len(),
        boards.len(),
        opts.duration.as_secs_f64()
    ));
    let setup_s = setup.elapsed().as_secs_f64();

    let data: Vec<u8> = (0..256u32).map(|i| (i * 7 + 3) as u8).collect();
    let request = load_request(opts.request, &data)?;
    let payload = if opts.request == LoadRequest::Version { 0 } else { 256 };
    let port = d.host.config().scp_port;
    let before = d.host.stats().scp;
    let mut in_flight = 0usize;
    let mut next_board = 0usize;
    let mut replies = 0u64;
    let mut failures = 0u64;
    let mut latencies: Vec<u32> = Vec::with_capacity(1 << 20);
    // Submit times by token (token = slot in a ring wide enough for `outstanding`).
    let ring = opts.outstanding.next_power_of_two() * 2;
    let mut sent_at = vec![Instant::ZERO; ring];
    let mut free_slots: Vec<u32> = (0..ring as u32).rev().collect();
    let t0 = tokio::time::Instant::now();
    let t1 = t0 + opts.duration;
    // Counters as they stood when the timed window closed.
    let mut at_t1 = None;
    loop {
        let now = d.now();
        let loading = tokio::time::Instant::now() < t1;
        while loading && in_flight < opts.outstanding {
            let Some(slot) = free_slots.pop() else { break };
            let ip = ready[next_board % ready.len()];
            next_board += 1;
            sent_at[slot as usize] = now;
            d.host.submit(now, SocketAddrV4::new(ip, port), request.clone(), slot);
            in_flight += 1;
        }
        d.flush().await?;
        if !loading && in_flight == 0 {
            break;
        }
        if tokio::time::Instant::now() > t1 + StdDuration::from_secs(15) {
            break;
        }
        d.step(t1.max(tokio::time::Instant::now() + StdDuration::from_millis(50)))
            .await;
        let now = d.now();
        let counting = tokio::time::Instant::now() <= t1;
        if !counting && at_t1.is_none() {
            at_t1 = Some(d.host.stats().scp);
        }
        while let Some(ev) = d.host.poll_event() {
            if let HostEvent::Scp { token, outcome, .. } = ev
                && (token as usize) < ring
            {
                in_flight -= 1;
                free_slots.push(token);
                if !counting {
                    continue;
                }
                match outcome {
                    Ok(_) => {
                        replies += 1;
                        latencies.push(
                            now.saturating_duration_since(sent_at[token as usize])
                                .as_micros()
                                .min(u64::from(u32::MAX)) as u32,
                        );
                    }
                    Err(_) => failures += 1,
                }
            }
        }
    }
    let load_s = opts.duration.as_secs_f64();
    let after = at_t1.unwrap_or_else(|| d.host.stats().scp);
    if opts.power_off {
        log("powering off");
        run_batches(
            &mut d,
            power_batches(machines, false, &boards),
            opts.setup_timeout,
            "power off",
        )
        .await?;
    }
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        f64::from(latencies[((latencies.len() - 1) as f64 * p).round() as usize])
    };
    Ok(LoadReport {
        request: opts.request,
        policy: opts.policy.clone(),
        boards: boards.len(),
        boards_loaded: ready.len(),
        outstanding: opts.outstanding,
        setup_s,
        load_s,
        replies,
        replies_per_s: replies as f64 / load_s,
        payload_bytes_per_s: (replies * payload) as f64 / load_s,
        failures,
        retries: after.retries - before.retries,
        timeouts: after.timeouts - before.timeouts,
        latency_mean_us: if latencies.is_empty() {
            0.0
        } else {
            latencies.iter().map(|&l| f64::from(l)).sum::<f64>() / latencies.len() as f64
        },
        latency_p50_us: pct(0.5),
        latency_p99_us: pct(0.99),
    })
}
