//! `sim run --hardware`: the same service, host side and world as a simulated run, in real
//! time over real UDP.
//!
//! The world's clock is the wall clock (µs since the start); between events the driver sleeps
//! until the world's next deadline or until a datagram arrives. The hardware is the simulated
//! run's [`HostHardware`] over a [`UdpTransport`]: the host side's datagrams go out of one UDP
//! socket to the machine description's BMP and board addresses — real hardware, or
//! `sim emulate`. Before starting, every BMP is asked its version; if one does not answer, the
//! run refuses to start and says which.
//!
//! With `[host.live_output]` the host also binds a second socket for its live-output listener
//! (same address, its own port): the users' IP tags point at it, and what arrives there goes to
//! the same core listener as in a simulated run. The boards' timestamps read their own clock,
//! not the host's, so latency is not measured in real time; delivered events and the drops
//! visible as gaps in each stream's counter are.
//!
//! However the run ends, no board of its jobs is left powered if it can be helped: at the stop
//! time (horizon + drain limit) with jobs still live, on Ctrl-C or SIGTERM, every live job is
//! destroyed and the run waits (up to two minutes) for the boards to be powered off before
//! writing its outputs. A second interrupt, or boards still on after the wait, stop at once,
//! and the boards left powered are named loudly ([`RealtimeRun::left_powered`]).

use crate::clock::Clock;
use crate::driver::{bind_host_socket, local_addr, preflight};
use crate::error::RealtimeError;
use spinnbed_core::datagram::Datagram;
use spinnbed_core::geometry::{Board, Machine};
use spinnbed_core::host::SenderClock;
use spinnbed_core::time::{Duration, Instant};
use spinnbed_sim::hardware::{HostHardware, Transport};
use spinnbed_sim::netsim::NetStats;
use spinnbed_sim::run::outputs::RunMeta;
use spinnbed_sim::run::{RunSpec, build_service};
use spinnbed_sim::scenario::FaultKind;
use spinnbed_sim::world::{RunResult, World};
use std::collections::VecDeque;
use std::net::{SocketAddr, SocketAddrV4};
use tokio::net::UdpSocket;
use tokio::signal::unix::{SignalKind, signal};

/// How long a stopping run waits for the boards of its destroyed jobs to power off.
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

/// The transport of a real-time run: the host side's datagrams queue here until the driver
/// sends them from its socket, and datagrams the socket received wait here for the host.
#[derive(Debug, Default)]
pub struct UdpTransport {
    outbox: VecDeque<Datagram>,
    inbox: VecDeque<Datagram>,
}

impl UdpTransport {
    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        self.outbox.pop_front()
    }

    /// A datagram the socket received.
    pub fn push_received(&mut self, d: Datagram) {
        self.inbox.push_back(d);
    }
}

impl Transport for UdpTransport {
    fn name(&self) -> &'static str {
        "udp"
    }
    fn receive(&mut self, _now: Instant, deliver: &mut dyn FnMut(&Datagram)) -> bool {
        let mut moved = false;
        while let Some(d) = self.inbox.pop_front() {
            deliver(&d);
            moved = true;
        }
        moved
    }
    fn send(&mut self, _now: Instant, d: Datagram) {
        self.outbox.push_back(d);
    }
    fn flush(&mut self, _now: Instant) -> bool {
        false
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    /// Faults cannot be injected into real hardware: they are ignored.
    fn apply_fault(&mut self, _now: Instant, _kind: &FaultKind, _on: bool) {}
    fn net_stats(&self) -> Option<NetStats> {
        None
    }
}

/// Compresses a spec's time by `speed`: arrivals, runtimes, estimates, keepalives and lapses,
/// the delay before freed boards are reused, fault times, horizon and sampling (never below
/// 100 ms). The hardware's own times (power-on, boot) are not the spec's to change.
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
    s.sample_period = f(s.sample_period).max(Duration::from_millis(100));
    s.drain_limit = f(s.drain_limit);
    s
}

/// Binds the live-output listener's socket beside the host's at `host` (same IP, an ephemeral
/// port). Its address is what the users' IP tags point at: when the host's socket listens on
/// every interface, the IP the machines are reached from (that of a socket connected to the
/// first board) stands in for the unspecified one.
async fn bind_listener_socket(
    host: SocketAddrV4,
    machines: &[Machine],
) -> Result<(UdpSocket, SocketAddrV4), RealtimeError> {
    let addr = SocketAddrV4::new(*host.ip(), 0);
    let sock = UdpSocket::bind(addr)
        .await
        .map_err(|source| RealtimeError::Bind { addr, source })?;
    let mut bound = local_addr(&sock);
    if bound.ip().is_unspecified()
        && let Some(board) = machines.iter().find_map(|m| m.board_ips().next().map(|(_, ip)| ip))
        && let Ok(probe) = std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0))
        && probe.connect((board, 17893)).is_ok()
        && let Ok(SocketAddr::V4(seen)) = probe.local_addr()
    {
        bound = SocketAddrV4::new(*seen.ip(), bound.port());
    }
    Ok((sock, bound))
}

/// The next datagram on the listener's socket (never, without one). Receive errors (ICMP
/// reports) are skipped.
async fn recv_live(sock: Option<&(UdpSocket, SocketAddrV4)>, buf: &mut [u8]) -> Option<(usize, SocketAddrV4)> {
    let Some((sock, _)) = sock else {
        return std::future::pending().await;
    };
    match sock.recv_from(buf).await {
        Ok((n, SocketAddr::V4(src))) => Some((n, src)),
        _ => None,
    }
}

/// What a real-time run hands back.
#[derive(Debug)]
pub struct RealtimeRun {
    /// The run, as a simulated one's.
    pub result: RunResult,
    /// Its facts for the outputs (of the spec as run, i.e. time-scaled).
    pub meta: RunMeta,
    /// Boards that may still be powered when the run stopped (machine, board): on, or allocated
    /// with a power-on perhaps under way; empty unless the power-off failed or was cut short.
    pub left_powered: Vec<(String, Board)>,
}

/// Runs a spec in real time against the machines' real addresses. `progress` gets the elapsed
/// (scaled) time now and then.
pub async fn run(
    spec: &RunSpec,
    opts: &RealtimeOptions,
    mut progress: impl FnMut(Instant),
) -> Result<RealtimeRun, RealtimeError> {
    if !(opts.speed > 0.0 && opts.speed.is_finite()) {
        return Err(RealtimeError::Option(format!(
            "--speed must be a positive number (got {})",
            opts.speed
        )));
    }
    if spec.transfers == spinnbed_sim::scenario::TransferModel::Flow {
        return Err(RealtimeError::Option(
            "[host] transfers = \"flow\" approximates transfers in simulated runs; a --hardware run moves \
             every byte: set transfers = \"packets\" (or leave it out)"
                .to_string(),
        ));
    }
    let spec = scaled(spec, opts.speed);
    let machines: Vec<Machine> = spec.machines.iter().map(|(m, _)| m.clone()).collect();
    let sock = preflight(bind_host_socket(&machines).await?, &machines, opts.preflight_timeout).await?;
    let local = local_addr(&sock);
    let live_sock = match spec.live_output {
        Some(_) => Some(bind_listener_socket(local, &machines).await?),
        None => None,
    };
    let listener = live_sock.as_ref().map_or(local, |(_, a)| *a);
    let side = spec.host_side_with_listener(local, listener, SenderClock::Unknown);
    let hw = HostHardware::new(side, UdpTransport::default());
    let service = build_service(&spec)?;
    let mut world = World::new(service, hw, spec.jobs.clone(), spec.limits())
        .with_users(spec.users)
        .with_live_output(spec.live_output, spec.seed);
    let clock = Clock::start();
    let mut buf = vec![0u8; 2048];
    let mut live_buf = vec![0u8; 2048];
    let mut last_progress = Instant::ZERO;
    let watch = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| RealtimeError::Signal { signal: name, source })
    };
    let mut sigint = watch(SignalKind::interrupt(), "Ctrl-C")?;
    let mut sigterm = watch(SignalKind::terminate(), "SIGTERM")?;
    // Set once stopping: the time by which the boards must be off.
    let mut shutting_down: Option<tokio::time::Instant> = None;
    let mut recv_errors = 0u64;
    loop {
        let now = clock.now();
        world.advance(now);
        while let Some(d) = world.hardware_mut().transport_mut().poll_transmit() {
            // A full socket buffer drops the datagram, as UDP may; the policy resends.
            let _ = sock.try_send_to(&d.payload, SocketAddr::V4(d.dst));
        }
        if now >= last_progress + Duration::from_millis(200) {
            progress(now);
            last_progress = now;
        }
        if world.is_shut_down() || (world.is_done() && world.is_quiet()) {
            break;
        }
        if shutting_down.is_none() && world.is_done() {
            // The stop time passed with jobs live or boards allocated: power them off first.
            let n = world.shut_down(now);
            eprintln!("sim: the run reached its stop time: destroying {n} job(s) and powering their boards off");
            shutting_down = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
            continue;
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
            .map_or_else(|| clock.far_future(), |t| clock.at(t));
        let wake = shutting_down.map_or(wake, |d| wake.min(d));
        let interrupted = tokio::select! {
            r = sock.recv_from(&mut buf) => {
                match r {
                    Ok((n, SocketAddr::V4(src))) => {
                        let d = Datagram { src, dst: local, payload: buf[..n].to_vec() };
                        world.with_hardware(clock.now(), |hw, now| hw.handle_datagram(now, &d));
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
            r = recv_live(live_sock.as_ref(), &mut live_buf) => {
                if let Some((n, src)) = r {
                    let d = Datagram { src, dst: listener, payload: live_buf[..n].to_vec() };
                    world.with_hardware(clock.now(), |hw, now| hw.handle_datagram(now, &d));
                }
                false
            }
            _ = tokio::time::sleep_until(wake) => false,
            _ = sigint.recv() => true,
            _ = sigterm.recv() => true,
        };
        if interrupted {
            if shutting_down.is_some() {
                eprintln!("sim: interrupted again: stopping at once");
                break;
            }
            let n = world.shut_down(clock.now());
            eprintln!(
                "sim: interrupted: destroying {n} job(s) and powering their boards off (interrupt again to stop at once)"
            );
            shutting_down = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
        }
    }
    let end = clock.now();
    progress(end);
    let left_powered = world.possibly_powered_boards();
    Ok(RealtimeRun {
        result: world.into_result(end),
        meta: spec.meta(),
        left_powered,
    })
}
