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

use crate::driver::{UdpHost, bind_host_socket, boot_done, preflight, version_request};
use crate::error::RealtimeError;
use spinnbed_core::geometry::Machine;
use spinnbed_core::host::boot::{BootConfig, stand_in_image};
use spinnbed_core::host::{HostConfig, HostEvent, ScpRequest};
use spinnbed_core::proto::scp::Request;
use spinnbed_core::proto::sdp::Address;
use spinnbed_core::sched::JobId;
use spinnbed_core::service::{BatchId, BmpBatch};
use spinnbed_core::time::Instant;
use spinnbed_sim::scenario::ScpPolicy;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration as StdDuration;

/// Most requests `--outstanding` may keep in flight and queued (each costs a ring slot and a
/// queued request).
pub const MAX_OUTSTANDING: usize = 1 << 20;

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
    /// SCP policy of every board's client.
    pub policy: ScpPolicy,
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
            policy: ScpPolicy::Spinnman,
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
    #[serde(serialize_with = "policy_name")]
    pub policy: ScpPolicy,
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
            self.boards_loaded,
            self.boards,
            self.outstanding,
            self.policy.name(),
            self.setup_s
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

fn policy_name<S: serde::Serializer>(p: &ScpPolicy, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.name())
}

/// Round-trip times in µs, counted in buckets exact to the microsecond below 1,024 µs and
/// within 0.2 % above, so that a load of any length keeps a fixed, small histogram.
#[derive(Debug, Clone)]
struct Latencies {
    counts: Vec<u64>,
    n: u64,
    sum: f64,
}

impl Latencies {
    const EXACT: u64 = 1024;
    const SUB: u64 = 512;

    fn new() -> Latencies {
        Latencies {
            counts: Vec::new(),
            n: 0,
            sum: 0.0,
        }
    }

    fn bucket(us: u64) -> usize {
        if us < Self::EXACT {
            return us as usize;
        }
        let shift = u64::from(63 - us.leading_zeros()) - 9;
        (Self::EXACT + (shift - 1) * Self::SUB + ((us >> shift) - Self::SUB)) as usize
    }

    fn low(bucket: usize) -> u64 {
        let b = bucket as u64;
        if b < Self::EXACT {
            return b;
        }
        let shift = (b - Self::EXACT) / Self::SUB + 1;
        (Self::SUB + (b - Self::EXACT) % Self::SUB) << shift
    }

    fn add(&mut self, us: u64) {
        let b = Self::bucket(us);
        if self.counts.len() <= b {
            self.counts.resize(b + 1, 0);
        }
        self.counts[b] += 1;
        self.n += 1;
        self.sum += us as f64;
    }

    fn mean(&self) -> f64 {
        if self.n == 0 { 0.0 } else { self.sum / self.n as f64 }
    }

    /// The nearest-rank percentile (`p` in 0..=1), as every other spinnbed percentile.
    fn percentile(&self, p: f64) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let rank = spinnbed_core::stats::nearest_rank(self.n as usize, p) as u64;
        let mut seen = 0;
        for (b, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::low(b) as f64;
            }
        }
        0.0
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
                id: BatchId(batches.len() as u64),
                job: JobId(0),
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
async fn run_batches(
    d: &mut UdpHost,
    batches: Vec<BmpBatch>,
    timeout: StdDuration,
    what: &'static str,
) -> Result<(), RealtimeError> {
    let pending: BTreeMap<BatchId, String> = batches.iter().map(|b| (b.id, format!("BMP {}", b.bmp))).collect();
    let now = d.now();
    for b in batches {
        d.host_mut().submit_bmp_batch(now, b);
    }
    let failed = d
        .wait_for(pending, timeout, |ev| match ev {
            HostEvent::BatchDone { batch_id, result, .. } => Some((batch_id, result)),
            _ => None,
        })
        .await?;
    if !failed.is_empty() {
        return Err(RealtimeError::Setup { what, failed });
    }
    Ok(())
}

/// Boots one board per machine (the first of `boards` on it) and waits until it runs SC&MP.
async fn boot_roots(
    d: &mut UdpHost,
    boards: &[(usize, Ipv4Addr)],
    policy: ScpPolicy,
    timeout: StdDuration,
) -> Result<(), RealtimeError> {
    let mut roots: BTreeMap<usize, Ipv4Addr> = BTreeMap::new();
    for &(m, ip) in boards {
        roots.entry(m).or_insert(ip);
    }
    let mut pending = BTreeMap::new();
    let mut failed = Vec::new();
    for ip in roots.values() {
        let cfg = BootConfig::for_policy(&policy.policy(), stand_in_image(27 * 1024));
        let now = d.now();
        match d.host_mut().start_boot(now, *ip, cfg) {
            Ok(op) => {
                pending.insert(op, format!("board {ip}"));
            }
            Err(e) => failed.push(format!("board {ip}: {e}")),
        }
    }
    failed.extend(d.wait_for(pending, timeout, boot_done).await?);
    if !failed.is_empty() {
        return Err(RealtimeError::Setup { what: "boot", failed });
    }
    Ok(())
}

/// Tokens of the probe requests (the load's own tokens are ring slots, far below).
const PROBE_TOKENS: u32 = 1 << 31;

/// Asks every board for its version; returns those that run SC&MP (P2P address known).
async fn probe(
    d: &mut UdpHost,
    boards: &[(usize, Ipv4Addr)],
    timeout: StdDuration,
) -> Result<Vec<Ipv4Addr>, RealtimeError> {
    let port = spinnbed_core::host::SCP_PORT;
    let now = d.now();
    let mut pending = BTreeMap::new();
    for (i, &(_, ip)) in boards.iter().enumerate() {
        let token = PROBE_TOKENS + i as u32;
        d.host_mut()
            .submit(now, SocketAddrV4::new(ip, port), version_request(), token);
        pending.insert(token, format!("board {ip}"));
    }
    let mut ready = vec![false; boards.len()];
    d.wait_for(pending, timeout, |ev| match ev {
        HostEvent::Scp { token, outcome, .. } if token >= PROBE_TOKENS => {
            let booted = outcome
                .as_ref()
                .is_ok_and(|reply| reply.version().is_some_and(|v| v.core().p2p != 0xFFFF));
            if let Some(r) = ready.get_mut((token - PROBE_TOKENS) as usize) {
                *r = booted;
            }
            Some((token, Ok::<(), String>(())))
        }
        _ => None,
    })
    .await?;
    Ok(boards
        .iter()
        .zip(ready)
        .filter(|(_, r)| *r)
        .map(|((_, ip), _)| *ip)
        .collect())
}

/// The request sent to every board.
fn load_request(kind: LoadRequest, data: &[u8]) -> ScpRequest {
    let dest = Address::new(0, 0, 0, 0);
    let r = match kind {
        LoadRequest::Version => ScpRequest::new(dest, &Request::Version),
        LoadRequest::Read => ScpRequest::new(dest, &Request::read(0x6000_0000, 256)),
        LoadRequest::Write => ScpRequest::new(dest, &Request::write(0x6000_0000, data)),
    };
    r.expect("a request of at most 256 bytes")
}

/// Sets the machine up and loads it. `log` gets a line per phase.
pub async fn load(
    machines: &[Machine],
    opts: &LoadOptions,
    mut log: impl FnMut(&str),
) -> Result<LoadReport, RealtimeError> {
    if !(1..=MAX_OUTSTANDING).contains(&opts.outstanding) {
        return Err(RealtimeError::Option(format!(
            "--outstanding must be from 1 to {MAX_OUTSTANDING} (got {})",
            opts.outstanding
        )));
    }
    let sock = preflight(bind_host_socket(machines).await?, machines, StdDuration::from_secs(3)).await?;
    let setup = std::time::Instant::now();
    let boards = targets(machines, opts.max_boards);
    if boards.is_empty() {
        return Err(RealtimeError::Option(
            "the machine description has no live board with an address".into(),
        ));
    }
    let mut d = UdpHost::new(sock, HostConfig::for_policy(opts.policy.policy()));
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
    boot_roots(&mut d, &boards, opts.policy, opts.setup_timeout).await?;
    let ready = probe(&mut d, &boards, opts.setup_timeout).await?;
    if ready.is_empty() {
        return Err(RealtimeError::Setup {
            what: "boot",
            failed: vec!["no board answered as booted after the boot".into()],
        });
    }
    log(&format!(
        "{} of {} boards run SC&MP; loading for {:.0} s",
        ready.len(),
        boards.len(),
        opts.duration.as_secs_f64()
    ));
    let setup_s = setup.elapsed().as_secs_f64();

    let data: Vec<u8> = (0..256u32).map(|i| (i * 7 + 3) as u8).collect();
    let request = load_request(opts.request, &data);
    let payload = if opts.request == LoadRequest::Version { 0 } else { 256 };
    let port = spinnbed_core::host::SCP_PORT;
    let before = d.host_mut().stats().scp;
    let mut in_flight = 0usize;
    let mut next_board = 0usize;
    let mut replies = 0u64;
    let mut failures = 0u64;
    let mut latencies = Latencies::new();
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
            d.host_mut()
                .submit(now, SocketAddrV4::new(ip, port), request.clone(), slot);
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
            at_t1 = Some(d.host_mut().stats().scp);
        }
        while let Some(ev) = d.host_mut().poll_event() {
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
                        latencies.add(now.saturating_duration_since(sent_at[token as usize]).as_micros());
                    }
                    Err(_) => failures += 1,
                }
            }
        }
    }
    let load_s = opts.duration.as_secs_f64();
    let after = at_t1.unwrap_or_else(|| d.host_mut().stats().scp);
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
    Ok(LoadReport {
        request: opts.request,
        policy: opts.policy,
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
        latency_mean_us: latencies.mean(),
        latency_p50_us: latencies.percentile(0.5),
        latency_p99_us: latencies.percentile(0.99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_exact_below_a_millisecond_and_close_above() {
        for us in [
            0u64,
            1,
            1023,
            1024,
            1500,
            99_999,
            4_000_000,
            u64::from(u32::MAX),
            1 << 40,
        ] {
            let b = Latencies::bucket(us);
            let low = Latencies::low(b);
            assert!(low <= us, "{us}: {low}");
            assert!(us - low <= us / 500, "{us}: {low}");
            assert_eq!(Latencies::bucket(low), b, "{us}");
        }
        let mut l = Latencies::new();
        for us in 1..=100 {
            l.add(us);
        }
        assert_eq!((l.percentile(0.5), l.percentile(0.99), l.mean()), (50.0, 99.0, 50.5));
    }
}
