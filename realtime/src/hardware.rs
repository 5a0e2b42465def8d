//! `sim run --hardware`: the same service, the same host-side protocols and the same world as a
//! simulated run, in real time over real UDP.
//!
//! The world's clock is the wall clock (µs since the start); between events the driver sleeps
//! until the world's next deadline or until a datagram arrives. The hardware is the
//! [`HostSide`] of packet-level runs wired to one UDP socket: BMP batches and users' sessions
//! become SCP and boot datagrams to the machine description's BMP and board addresses — real
//! hardware, or `sim emulate`. Before starting, every BMP is asked its version; if one does not
//! answer, the run refuses to start and says which. Ctrl-C (or SIGTERM) stops new arrivals,
//! destroys every live job and waits for its boards to be powered off before writing the
//! outputs; a second interrupt stops at once.

use spinnbed_sim::hardware::{Completion, Hardware, HostSide, JobScp, ScpCounters, Session, SessionEvent};

use anyhow::{Context as _, bail};
use spinnbed_core::geometry::Machine;
use spinnbed_core::host::{Host, HostConfig, HostEvent, ScpRequest};
use spinnbed_core::proto::scp::Request;
use spinnbed_core::proto::sdp::Address;
use spinnbed_core::sched::JobId;
use spinnbed_core::service::BmpBatch;
use spinnbed_core::time::{Duration, Instant};
use spinnbed_sim::run::{RunSpec, build_service};
use spinnbed_sim::scenario::FaultKind;
use spinnbed_sim::world::{INTERRUPTED, RunResult, World};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use tokio::net::UdpSocket;
use tokio::signal::unix::{SignalKind, signal};

/// How long an interrupted run waits for the boards of its destroyed jobs to power off.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(120);

/// Options of a real-time run.
#[derive(Debug, Clone)]
pub struct RealtimeOptions {
    /// Divide inter-arrival times and runtimes by this (1 = real time).
    pub speed: f64,
    /// How long to wait for each BMP's answer before refusing to start.
    pub preflight_timeout: std::time::Duration,
}

impl Default for RealtimeOptions {
    fn default() -> Self {
        RealtimeOptions {
            speed: 1.0,
            preflight_timeout: std::time::Duration::from_secs(3),
        }
    }
}

/// The host side on a real socket.
#[derive(Debug)]
pub struct UdpHardware {
    side: HostSide,
}

impl UdpHardware {
    fn deliver(&mut self, now: Instant, from: SocketAddrV4, payload: &[u8]) {
        self.side.handle_datagram(now, from, payload);
        self.side.process(now);
    }
}

impl Hardware for UdpHardware {
    fn name(&self) -> &'static str {
        "udp"
    }
    fn submit(&mut self, now: Instant, batch: BmpBatch) {
        self.side.submit(now, batch);
        self.side.process(now);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.side.poll_timeout()
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.side.handle_timeout(now);
        self.side.process(now);
    }
    fn poll_done(&mut self) -> Option<Completion> {
        self.side.poll_done()
    }
    fn start_session(&mut self, now: Instant, session: Session) {
        self.side.start_session(now, session);
        self.side.process(now);
    }
    fn finish_session(&mut self, now: Instant, job: JobId) {
        self.side.finish_session(now, job);
        self.side.process(now);
    }
    fn end_session(&mut self, job: JobId) {
        self.side.end_session(job);
    }
    fn poll_session(&mut self) -> Option<(JobId, SessionEvent)> {
        self.side.poll_session()
    }
    fn counters(&self) -> Option<ScpCounters> {
        Some(self.side.counters())
    }
    /// Faults cannot be injected into real hardware: they are ignored.
    fn apply_fault(&mut self, _now: Instant, _kind: &FaultKind, _on: bool) {}
    fn scp_stats(&self) -> Option<serde_json::Value> {
        Some(self.side.summary())
    }
    fn job_scp(&self, job: JobId) -> Option<JobScp> {
        Some(self.side.job_scp(job).unwrap_or_default())
    }
}

fn micros_since(start: tokio::time::Instant) -> Instant {
    Instant(start.elapsed().as_micros() as u64)
}

/// Compresses a spec's time by `speed`: arrivals, runtimes, estimates, keepalives and lapses,
/// the delay before freed boards are reused, fault times, horizon and sampling. The hardware's
/// own times (power-on, boot) are not the spec's to change.
pub fn scaled(spec: &RunSpec, speed: f64) -> RunSpec {
    let mut s = spec.clone();
    if speed == 1.0 {
        return s;
    }
    let f = |d: Duration| Duration((d.as_micros() as f64 / speed).round() as u64);
    for j in &mut s.jobs {
        j.submit = Instant((j.submit.as_micros() as f64 / speed).round() as u64);
        j.runtime = f(j.runtime);
        j.estimate = j.estimate.map(f);
        j.keepalive = j.keepalive.map(f);
        j.lapse_after = j.lapse_after.map(f);
    }
    s.service.seconds_before_free = f(s.service.seconds_before_free);
    for fault in &mut s.faults {
        fault.at = f(fault.at);
        fault.duration = fault.duration.map(f);
    }
    s.horizon = f(s.horizon);
    s.sample_period = f(s.sample_period);
    s.drain_limit = f(s.drain_limit);
    s
}

/// A socket for talking to the machine: on loopback if every address is, else on all
/// interfaces.
async fn bind_for(machines: &[Machine]) -> anyhow::Result<UdpSocket> {
    let all_loopback = machines
        .iter()
        .all(|m| m.bmps().all(|(_, ip)| ip.is_loopback()) && m.board_ips().all(|(_, ip)| ip.is_loopback()));
    let local = if all_loopback {
        Ipv4Addr::LOCALHOST
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    UdpSocket::bind(SocketAddrV4::new(local, 0))
        .await
        .with_context(|| format!("cannot bind a UDP socket on {local}"))
}

/// Asks every BMP for its version; fails naming the ones that do not answer.
pub async fn preflight(machines: &[Machine], sock: &UdpSocket, timeout: std::time::Duration) -> anyhow::Result<()> {
    let mut host = Host::new(HostConfig::for_policy_name("rig").unwrap_or_default());
    let start = tokio::time::Instant::now();
    let mut waiting = std::collections::BTreeMap::new();
    for m in machines {
        for (frame, ip) in m.bmps() {
            let remote = SocketAddrV4::new(ip, spinnbed_emulator::SCP_PORT);
            let req = ScpRequest::new(Address::new(0, 0, 0, 0), &Request::Version).context("cannot build CMD_VER")?;
            let token = waiting.len() as u32;
            host.submit(Instant::ZERO, remote, req, token);
            waiting.insert(
                token,
                format!(
                    "BMP {ip} (machine {}, cabinet {} frame {})",
                    m.name(),
                    frame.cabinet,
                    frame.frame
                ),
            );
        }
    }
    let mut failed = Vec::new();
    let mut buf = [0u8; 1024];
    while !waiting.is_empty() {
        while let Some((dst, p)) = host.poll_transmit() {
            sock.send_to(&p, dst)
                .await
                .with_context(|| format!("cannot send to {dst}"))?;
        }
        while let Some(ev) = host.poll_event() {
            if let HostEvent::Scp { token, outcome, .. } = ev {
                let Some(who) = waiting.remove(&token) else { continue };
                if let Err(reason) = outcome {
                    failed.push(format!("{who}: {reason}"));
                }
            }
        }
        if waiting.is_empty() {
            break;
        }
        if start.elapsed() > timeout {
            failed.extend(
                waiting
                    .values()
                    .map(|w| format!("{w}: no answer within {:.1} s", timeout.as_secs_f64())),
            );
            break;
        }
        let wake = host
            .poll_timeout()
            .map(|t| start + std::time::Duration::from_micros(t.0))
            .unwrap_or(start + timeout);
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                if let Ok((n, SocketAddr::V4(from))) = r {
                    host.handle_datagram(micros_since(start), from, &buf[..n]);
                }
            }
            _ = tokio::time::sleep_until(wake.min(start + timeout)) => host.handle_timeout(micros_since(start)),
        }
    }
    if !failed.is_empty() {
        bail!(
            "cannot reach the machine's BMPs ({} of them did not answer CMD_VER); is the hardware (or `sim emulate`) running?\n  {}",
            failed.len(),
            failed.join("\n  ")
        );
    }
    Ok(())
}

/// Runs a spec in real time against the machines' real addresses. `progress` gets the elapsed
/// (scaled) time now and then.
pub async fn run(
    spec: &RunSpec,
    opts: &RealtimeOptions,
    mut progress: impl FnMut(Instant),
) -> anyhow::Result<RunResult> {
    if !(opts.speed > 0.0 && opts.speed.is_finite()) {
        bail!("--speed must be a positive number (got {})", opts.speed);
    }
    let spec = scaled(spec, opts.speed);
    let machines: Vec<Machine> = spec.machines.iter().map(|(m, _)| m.clone()).collect();
    let sock = bind_for(&machines).await?;
    preflight(&machines, &sock, opts.preflight_timeout).await?;
    let hw = UdpHardware {
        side: HostSide::new(&machines, &spec.scp_policy, spec.post_power_on_delay),
    };
    let service = build_service(&spec).map_err(anyhow::Error::msg)?;
    let mut world = World::new(service, hw, spec.jobs.clone(), spec.limits()).with_users(spec.users);
    let start = tokio::time::Instant::now();
    let mut buf = vec![0u8; 2048];
    let mut last_progress = Instant::ZERO;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot watch for Ctrl-C")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
    // Set once interrupted: the time by which the boards must be off.
    let mut shutting_down: Option<tokio::time::Instant> = None;
    let mut recv_errors = 0u64;
    loop {
        let now = micros_since(start);
        world.advance(now);
        while let Some((dst, p)) = world.hardware_mut().side_mut().poll_transmit() {
            // A full socket buffer drops the datagram, as UDP may; the policy resends.
            let _ = sock.try_send_to(&p, SocketAddr::V4(dst));
        }
        if now >= last_progress + Duration::from_millis(200) {
            progress(now);
            last_progress = now;
        }
        if world.is_done() || world.is_shut_down() {
            break;
        }
        if shutting_down.is_some_and(|d| tokio::time::Instant::now() >= d) {
            eprintln!(
                "sim: boards still powered after {} s; stopping anyway",
                SHUTDOWN_GRACE.as_secs()
            );
            break;
        }
        let wake = world
            .next_deadline()
            .map(|t| start + std::time::Duration::from_micros(t.0));
        let wake = wake.unwrap_or(start + std::time::Duration::from_secs(3600));
        let wake = shutting_down.map_or(wake, |d| wake.min(d));
        let interrupted = tokio::select! {
            r = sock.recv_from(&mut buf) => {
                match r {
                    Ok((n, SocketAddr::V4(from))) => {
                        let payload = buf[..n].to_vec();
                        world.with_hardware(micros_since(start), |hw, now| hw.deliver(now, from, &payload));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        // E.g. ICMP errors reported on the socket: the policy's timeouts deal
                        // with the lost request; do not spin on a persistent error.
                        recv_errors += 1;
                        if recv_errors == 1 {
                            eprintln!("sim: receive error on the host socket (continuing): {e}");
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                }
                false
            }
            _ = tokio::time::sleep_until(wake) => false,
            _ = sigint.recv() => true,
            _ = sigterm.recv() => true,
        };
        if interrupted {
            if shutting_down.is_some() {
                eprintln!("sim: interrupted again: stopping at once (boards may stay powered)");
                break;
            }
            let n = world.shut_down(micros_since(start), INTERRUPTED);
            eprintln!(
                "sim: interrupted: destroying {n} job(s) and powering their boards off (interrupt again to stop at once)"
            );
            shutting_down = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
        }
    }
    let end = micros_since(start);
    progress(end);
    Ok(world.into_result(end))
}

impl UdpHardware {
    /// The host side.
    pub fn side_mut(&mut self) -> &mut HostSide {
        &mut self.side
    }
}
