//! `sim serve`: the scheduling core as a live spalloc server that the real client tools use.
//!
//! One loop owns everything that decides: the [`World`] (the [`Service`], the host side that
//! carries out its BMP work over UDP, and — with `--background` — the scenario's simulated
//! users), the protocol [`Server`], the journal and the job log. Around it, tasks only move
//! bytes: a TCP accept task, a reader and a writer per client ([`conn`]), and, unless
//! `--hardware`, the scenario's machines emulated in the same process and served on their own
//! addresses exactly as `sim emulate` does.
//!
//! Each round the loop takes whatever arrived — request lines, BMP replies, timers — and feeds
//! it to the sans-IO code at the wall-clock time (Unix microseconds). The service records
//! every input that changed it; before any reply or notification of the round leaves, those
//! inputs are written to the journal and `fdatasync`ed (group commit). A restart — after
//! SIGTERM or `kill -9` — replays the journal into a fresh service: every job, id, allocation
//! and machine change that a client was told of comes back, BMP batches that were in flight are
//! redone, and every keepalive period starts again from the restart (so a downtime times no job
//! out; clients that are gone time out one period later). Jobs of the simulated users, who
//! lived in the stopped process, are destroyed.

pub mod conn;
pub mod rest;
pub mod state;

use crate::clock::UnixClock;
use crate::driver::{bind_host_socket, local_addr, preflight};
use crate::emulate::{EmulateOptions, emulate};
use crate::error::RealtimeError;
use crate::hardware::UdpTransport;
use conn::{OUTBOX_LIMIT, Shared, ToLoop};
use spinnbed_core::datagram::Datagram;
use spinnbed_core::geometry::{Board, Link, Machine};
use spinnbed_core::reason::DestroyReason;
use spinnbed_core::service::{Service, ServiceEvent};
use spinnbed_core::time::{Duration, Instant};
use spinnbed_sim::hardware::HostHardware;
use spinnbed_sim::run::RunSpec;
use spinnbed_sim::scenario::Scenario;
use spinnbed_sim::world::{Limits, World};
use spinnbed_spalloc::joblog::JobLog;
pub use spinnbed_spalloc::server::ClientId;
use spinnbed_spalloc::server::Server;
use state::JobLogFile;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{Notify, mpsc};

/// The reference server's port.
pub const DEFAULT_PORT: u16 = 22244;

/// Clients beyond this many are turned away at once.
pub const MAX_CLIENTS: usize = 16_384;

/// The REST API's port by default (the v1 protocol's plus one).
pub const DEFAULT_REST_PORT: u16 = 22245;

/// Connections the kernel queues before `accept` (capped by `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 4096;

/// How long a stopping server waits for BMP work under way before leaving it to the next start.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Options of `sim serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The v1 protocol's address.
    pub listen: SocketAddrV4,
    /// Allow binding addresses outside 127.0.0.0/8 (TCP and the emulated machine's).
    pub allow_non_loopback: bool,
    /// Drive the scenario's addresses as real BMPs and boards instead of emulating them.
    pub hardware: bool,
    /// Also run the scenario's workload, as simulated users.
    pub background: bool,
    /// Divide the background workload's times by this.
    pub speed: f64,
    /// The state directory (journal, job log).
    pub state_dir: PathBuf,
    /// No per-job lines.
    pub quiet: bool,
    /// The scenario file, re-read on SIGHUP.
    pub scenario_path: Option<PathBuf>,
    /// Notified once the server accepts connections (for embedding).
    pub ready: Option<Arc<Notify>>,
    /// Set to the address it listens on (with port 0, the one it was given) before `ready`.
    pub bound: Option<Arc<std::sync::OnceLock<SocketAddr>>>,
    /// The REST API's address (HTTP and HTTPS on one port); `None` (the default here; `sim
    /// serve` serves it on 127.0.0.1:[`DEFAULT_REST_PORT`]): no REST API.
    pub rest_listen: Option<SocketAddrV4>,
    /// Set to the REST API's address (with port 0, the one it was given) before `ready`.
    pub rest_bound: Option<Arc<std::sync::OnceLock<SocketAddr>>>,
    /// The REST API's certificate: given files, or (`None`) self-signed in the state directory.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    /// How long a client may stall — a request line left unfinished, or replies it takes none
    /// of — before it is cut off ([`conn::LINE_DEADLINE`]).
    pub line_deadline: std::time::Duration,
    /// Receives every service event with its time (for embedding and tests).
    pub events: Option<std::sync::mpsc::Sender<(Instant, ServiceEvent)>>,
    /// Stops the server when notified (for embedding), as SIGTERM does.
    pub stop: Option<Arc<Notify>>,
    /// How long to wait for each BMP's answer before refusing to start.
    pub preflight_timeout: std::time::Duration,
}

impl ServeOptions {
    /// Options serving on the reference's port, state in `state_dir`.
    pub fn new(state_dir: PathBuf) -> ServeOptions {
        ServeOptions {
            listen: SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, DEFAULT_PORT),
            allow_non_loopback: false,
            hardware: false,
            background: false,
            speed: 1.0,
            state_dir,
            quiet: false,
            scenario_path: None,
            ready: None,
            bound: None,
            rest_listen: None,
            rest_bound: None,
            tls_files: None,
            line_deadline: conn::LINE_DEADLINE,
            events: None,
            stop: None,
            preflight_timeout: std::time::Duration::from_secs(3),
        }
    }
}

/// What a server did, when it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeReport {
    /// Where it listened.
    pub listen: SocketAddr,
    /// Requests answered.
    pub requests: u64,
    /// Jobs still live at the stop (they carry on at the next start).
    pub live_jobs: usize,
    /// Journal records (header included).
    pub journal_records: u64,
}

/// Boards to restore in the emulated machine: those of live jobs whose boards are on.
fn powered_boards(svc: &Service) -> Vec<(String, Board, Vec<Link>)> {
    let mut out = Vec::new();
    let disable = svc.config().disable_peripheral_links;
    for j in svc.list_jobs() {
        if j.power != Some(true) {
            continue;
        }
        let Some(a) = svc.job_allocation(j.job_id) else {
            continue;
        };
        for b in a.boards {
            let stopped: Vec<Link> = if disable {
                a.periphery.iter().filter(|(pb, _)| pb == b).map(|(_, l)| *l).collect()
            } else {
                Vec::new()
            };
            out.push((a.machine.name().to_string(), *b, stopped));
        }
    }
    out
}

/// Brings the service's machines in line with the scenario's: adds, changes (faults, tags,
/// or hardware: replaced) and removes, as the reference's configuration reload does.
fn reconcile(svc: &mut Service, now: Instant, machines: &[Machine]) -> Vec<String> {
    let mut notes = Vec::new();
    let want: BTreeSet<&str> = machines.iter().map(Machine::name).collect();
    let gone: Vec<String> = svc
        .machines()
        .map(|m| m.name().to_string())
        .filter(|n| !want.contains(n.as_str()))
        .collect();
    for name in gone {
        match svc.remove_machine(now, &name) {
            Ok(()) => notes.push(format!("machine {name} removed")),
            Err(e) => notes.push(format!("machine {name} not removed: {e}")),
        }
    }
    for m in machines {
        match svc.machine(m.name()) {
            Some(old) if old.spec() == m.spec() => {}
            Some(_) => match svc.modify_machine(now, m.clone()) {
                Ok(()) => notes.push(format!("machine {} changed", m.name())),
                Err(e) => notes.push(format!("machine {} not changed: {e}", m.name())),
            },
            None => match svc.add_machine(now, m.clone()) {
                Ok(()) => notes.push(format!("machine {} added", m.name())),
                Err(e) => notes.push(format!("machine {} not added: {e}", m.name())),
            },
        }
    }
    notes
}

/// The spec a server runs: the scenario's machines and policies, and its workload only with
/// `--background` (times divided by `speed`).
fn serve_spec(sc: &Scenario, background: bool, speed: f64) -> Result<RunSpec, RealtimeError> {
    let jobs = if background { sc.workload()?.0 } else { Vec::new() };
    let mut spec = RunSpec::from_scenario(sc, jobs);
    if speed != 1.0 {
        let f = |d: Duration| Duration((d.as_micros() as f64 / speed).round() as u64);
        for j in &mut spec.jobs {
            j.submit = Instant((j.submit.as_micros() as f64 / speed).round() as u64);
            j.runtime = f(j.runtime);
            j.estimate = j.estimate.map(f);
            j.keepalive = j.keepalive.map(f);
            j.lapse_after = j.lapse_after.map(f);
            j.last_keepalive = j.last_keepalive.map(f);
            j.cancel_after = j.cancel_after.map(f);
        }
        spec.horizon = f(spec.horizon);
    }
    Ok(spec)
}

struct Emulated {
    task: tokio::task::JoinHandle<Result<spinnbed_emulator::Stats, RealtimeError>>,
    stop: Arc<Notify>,
}

/// Starts the scenario's machines, emulated, with the boards the service believes powered on.
async fn start_emulator(
    sc: &Scenario,
    svc: &Service,
    allow_non_loopback: bool,
    quiet: bool,
) -> Result<Emulated, RealtimeError> {
    let ready = Arc::new(Notify::new());
    let stop = Arc::new(Notify::new());
    let opts = EmulateOptions {
        allow_non_loopback,
        quiet,
        ready: Some(ready.clone()),
        stop: Some(stop.clone()),
        powered: powered_boards(svc),
        embedded: true,
        ..EmulateOptions::default()
    };
    let sc = sc.clone();
    let mut task = tokio::spawn(async move { emulate(&sc, &opts).await });
    tokio::select! {
        _ = ready.notified() => Ok(Emulated { task, stop }),
        r = &mut task => match r {
            Ok(Ok(_)) => Err(RealtimeError::Option("the emulated machine stopped at once".into())),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(RealtimeError::Option(format!("the emulated machine failed: {e}"))),
        },
    }
}

impl Emulated {
    async fn stop(self) {
        self.stop.notify_one();
        let _ = self.task.await;
    }
}

/// One connected client.
struct Conn {
    shared: Arc<Shared>,
    peer: SocketAddr,
    /// Input left in its inbox because its output was backed up.
    stalled: bool,
}

/// Serves until SIGTERM, Ctrl-C or `opts.stop`.
pub async fn serve(sc: &Scenario, opts: &ServeOptions) -> Result<ServeReport, RealtimeError> {
    if !(opts.speed > 0.0 && opts.speed.is_finite()) {
        return Err(RealtimeError::Option(format!(
            "--speed must be a positive number (got {})",
            opts.speed
        )));
    }
    if !opts.listen.ip().is_loopback() && !opts.allow_non_loopback {
        return Err(RealtimeError::ListenNotLoopback(opts.listen));
    }
    if let Some(r) = opts.rest_listen
        && !r.ip().is_loopback()
        && !opts.allow_non_loopback
    {
        return Err(RealtimeError::ListenNotLoopback(r));
    }
    if sc.host.transfers == spinnbed_sim::scenario::TransferModel::Flow {
        return Err(RealtimeError::Option(
            "[host] transfers = \"flow\" approximates transfers in simulated runs; a live server's users \
             move every byte: set transfers = \"packets\" (or leave it out)"
                .to_string(),
        ));
    }
    let spec = serve_spec(sc, opts.background, opts.speed)?;
    let policy = spec.policy();
    let machines: Vec<Machine> = spec.machines.iter().map(|(m, _)| m.clone()).collect();

    // The state: replay the journal, or start one.
    let wall = UnixClock::start(Instant::ZERO).now();
    let (mut journal, recovered) = state::Journal::open(&opts.state_dir, &policy, wall)?;
    let floor = recovered.as_ref().map_or(Instant::ZERO, |r| r.last);
    let clock = UnixClock::start(floor);
    let now = clock.now();
    let say = |line: String| {
        if !opts.quiet {
            println!("sim serve: {line}");
        }
    };
    let (mut service, outstanding) = match recovered {
        Some(r) => {
            say(format!(
                "recovered {} journal record(s) from {} in {:.3} s: {} live job(s), {} BMP batch(es) to redo{}",
                r.inputs,
                journal.path().display(),
                r.elapsed.as_secs_f64(),
                r.service.live_jobs(),
                r.outstanding.len(),
                r.torn
                    .map(|t| format!(", a torn last record ({} bytes at {}) dropped", t.bytes, t.offset))
                    .unwrap_or_default()
            ));
            (r.service, r.outstanding)
        }
        None => (policy.empty_service(), Vec::new()),
    };
    let restarted = journal.records > 1 || !outstanding.is_empty() || service.live_jobs() > 0;
    service.record_inputs(true);
    for note in reconcile(&mut service, now, &machines) {
        say(note);
    }
    if restarted {
        service.restart(now);
        // The simulated users lived in the process that stopped: their jobs go.
        let orphans: Vec<_> = service
            .list_jobs()
            .into_iter()
            .filter(|j| j.original.is_none())
            .map(|j| j.job_id)
            .collect();
        for id in orphans {
            let _ = service.destroy_job(
                now,
                id,
                DestroyReason::requested("Interrupted: its simulated user was lost when sim serve restarted"),
            );
        }
    }
    journal.append(service.take_recorded());
    journal.commit()?;
    while service.poll_event().is_some() {}

    // The machine: emulated here, or real.
    let mut emulated = if opts.hardware {
        None
    } else {
        Some(start_emulator(sc, &service, opts.allow_non_loopback, opts.quiet).await?)
    };
    let sock = match preflight(bind_host_socket(&machines).await?, &machines, opts.preflight_timeout).await {
        Ok(s) => s,
        Err(e) => {
            if let Some(em) = emulated.take() {
                em.stop().await;
            }
            return Err(e);
        }
    };
    let local = local_addr(&sock);
    let hw = HostHardware::new(spec.host_side(local), UdpTransport::default());
    let limits = Limits {
        horizon: Instant::ZERO + spec.horizon,
        stop: Instant::MAX,
        sample_period: Duration::MAX,
    };
    let mut world = World::new(service, hw, spec.jobs.clone(), limits)
        .with_users(spec.users)
        .starting_at(now)
        .with_tap();
    world.resubmit(now, outstanding);

    // The protocol.
    let listener = listen_on(opts.listen).map_err(|source| RealtimeError::Listen {
        addr: SocketAddr::V4(opts.listen),
        source,
    })?;
    let listen = listener.local_addr().unwrap_or(SocketAddr::V4(opts.listen));
    let (tx, mut rx) = mpsc::channel::<ToLoop>(4096);
    let accept = tokio::spawn(accept_loop(listener, tx.clone(), opts.line_deadline));
    let rest = match opts.rest_listen {
        Some(addr) => Some(start_rest(addr, opts, tx.clone(), &say).await?),
        None => None,
    };
    let rest_api = spinnbed_spalloc::rest::RestApi::new(spinnbed_spalloc::rest::RestConfig::default());
    let mut rest_calls: Vec<rest::web::RestMsg> = Vec::new();
    say(format!(
        "listening on {listen} (spalloc v1 protocol): {} machine(s) {}, policy {} / {}, state in {}{}",
        machines.len(),
        if opts.hardware {
            "on real hardware"
        } else {
            "emulated here"
        },
        spec.packer.name(),
        spec.queue.name(),
        opts.state_dir.display(),
        if opts.background {
            format!(", {} background job(s)", spec.jobs.len())
        } else {
            String::new()
        }
    ));
    if let Some(b) = &opts.bound {
        let _ = b.set(listen);
    }
    if let Some(r) = &opts.ready {
        r.notify_one();
    }

    let mut server = Server::new();
    let mut joblog = JobLog::new(spec.service.disable_peripheral_links);
    let mut logfile = JobLogFile::open(&opts.state_dir, now)?;
    let mut conns: BTreeMap<ClientId, Conn> = BTreeMap::new();
    let mut ready: BTreeSet<ClientId> = BTreeSet::new();
    let mut closing: BTreeSet<ClientId> = BTreeSet::new();
    let mut buf = vec![0u8; 2048];
    let mut sighup = signal(tokio::signal::unix::SignalKind::hangup());
    let mut sigterm = signal(tokio::signal::unix::SignalKind::terminate());
    let mut sigint = signal(tokio::signal::unix::SignalKind::interrupt());
    let stop_notify = opts.stop.clone().unwrap_or_default();
    let mut stopping: Option<tokio::time::Instant> = None;
    let mut scenario = sc.clone();
    let printer = JobPrinter {
        quiet: opts.quiet,
        events: opts.events.clone(),
        rest: rest.as_ref().map(|r| r.shared.clone()),
    };

    loop {
        let now = clock.now();
        world.advance(now);
        // Requests, a round: each ready client's lines in turn.
        for id in std::mem::take(&mut ready) {
            let Some(c) = conns.get_mut(&id) else { continue };
            c.shared.input_flagged.store(false, Ordering::SeqCst);
            let lines = std::mem::take(&mut c.shared.lock().inbox);
            let mut pos = 0;
            c.stalled = false;
            while pos < lines.len() {
                if server.output_len(id) >= OUTBOX_LIMIT {
                    c.stalled = true;
                    break;
                }
                let end = lines[pos..]
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(lines.len(), |e| pos + e);
                let line = &lines[pos..end];
                pos = end + 1;
                let now = clock.now();
                let r = world.with_service(now, |svc, now| server.handle_line(now, id, line, svc));
                drain(&mut world, &mut server, &mut joblog, &mut logfile, now, &printer)?;
                if let Err(e) = r {
                    if !opts.quiet {
                        eprintln!(
                            "sim serve: client {} sent a bad request ({e}): disconnecting, as the reference does",
                            c.peer
                        );
                    }
                    closing.insert(id);
                    pos = lines.len();
                    break;
                }
            }
            let mut b = c.shared.lock();
            if pos < lines.len() {
                let mut rest = lines[pos..].to_vec();
                rest.extend_from_slice(&b.inbox);
                b.inbox = rest;
            }
            drop(b);
            c.shared.wake_reader.notify_one();
        }
        // REST calls of the round (their answers wait for the commit below).
        let mut rest_answers = Vec::with_capacity(rest_calls.len());
        for m in std::mem::take(&mut rest_calls) {
            let now = clock.now();
            let rest::web::RestMsg {
                caller,
                urls,
                call,
                reply,
            } = m;
            let r = world.with_service(now, |svc, now| rest_api.handle(now, &caller, &urls, call, svc));
            drain(&mut world, &mut server, &mut joblog, &mut logfile, now, &printer)?;
            rest_answers.push((reply, r));
        }
        drain(&mut world, &mut server, &mut joblog, &mut logfile, now, &printer)?;
        server.notify();
        // Group commit: nothing leaves before the inputs behind it are on disk.
        let recorded = world.with_service(clock.now(), |svc, _| svc.take_recorded());
        drain(&mut world, &mut server, &mut joblog, &mut logfile, now, &printer)?;
        server.notify();
        journal.append(recorded);
        if journal.pending() {
            tokio::task::block_in_place(|| journal.commit())?;
        }
        logfile.flush()?;
        for (reply, r) in rest_answers {
            // A caller that gave up is no loss.
            let _ = reply.send(r);
        }
        for (id, c) in &mut conns {
            if server.output_len(*id) == 0 && !closing.contains(id) {
                continue;
            }
            let mut b = c.shared.lock();
            if b.outbox.len() < OUTBOX_LIMIT {
                b.outbox.extend_from_slice(&server.take_output(*id));
                drop(b);
                c.shared.wake_writer.notify_one();
            } else {
                c.shared.want_writable.store(true, Ordering::SeqCst);
            }
        }
        for id in std::mem::take(&mut closing) {
            if let Some(c) = conns.remove(&id) {
                c.shared.close();
            }
            server.disconnect(id);
        }
        while let Some(d) = world.hardware_mut().transport_mut().poll_transmit() {
            let _ = sock.try_send_to(&d.payload, SocketAddr::V4(d.dst));
        }
        if let Some(deadline) = stopping {
            let outstanding = world.service().outstanding_batches();
            if outstanding == 0 || tokio::time::Instant::now() >= deadline {
                if outstanding > 0 {
                    eprintln!(
                        "sim serve: {outstanding} BMP batch(es) still under way: they will be redone at the next start"
                    );
                }
                break;
            }
        }

        // Wait for something to happen.
        let wake = world.next_deadline().map_or_else(far_future, |t| clock.at(t));
        let wake = stopping.map_or(wake, |d| wake.min(d));
        let emu_done = async {
            match emulated.as_mut() {
                Some(e) => (&mut e.task).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            m = rx.recv() => {
                let mut msgs = vec![m];
                while let Ok(more) = rx.try_recv() {
                    msgs.push(Some(more));
                    if msgs.len() >= 4096 { break; }
                }
                for m in msgs.into_iter().flatten() {
                    match m {
                        ToLoop::Connected(id, peer, shared) => {
                            if conns.len() >= MAX_CLIENTS || stopping.is_some() {
                                shared.close();
                                continue;
                            }
                            server.connect(id, peer.ip().to_string());
                            conns.insert(id, Conn { shared, peer, stalled: false });
                        }
                        ToLoop::Input(id) => { ready.insert(id); }
                        ToLoop::Writable(id) => {
                            if let Some(c) = conns.get(&id) {
                                // Room again: the loop moves the rest, and a stalled client's
                                // lines are handled.
                                if c.stalled || server.output_len(id) > 0 {
                                    ready.insert(id);
                                }
                            }
                        }
                        ToLoop::Rest(m) => {
                            if stopping.is_some() {
                                // Dropped: the caller answers 503.
                                continue;
                            }
                            rest_calls.push(*m);
                        }
                        ToLoop::Gone(id, why) => {
                            if let Some(c) = conns.remove(&id) {
                                if let Some(why) = why && !opts.quiet {
                                    eprintln!("sim serve: client {} disconnected: {why}", c.peer);
                                }
                                c.shared.close();
                            }
                            server.disconnect(id);
                            ready.remove(&id);
                        }
                    }
                }
            }
            r = sock.recv_from(&mut buf) => {
                if let Ok((n, SocketAddr::V4(src))) = r {
                    let mut d = Datagram { src, dst: local, payload: buf[..n].to_vec() };
                    world.with_hardware(clock.now(), |hw, now| hw.handle_datagram(now, &d));
                    for _ in 0..256 {
                        match sock.try_recv_from(&mut buf) {
                            Ok((n, SocketAddr::V4(src))) => {
                                d.src = src;
                                d.payload.clear();
                                d.payload.extend_from_slice(&buf[..n]);
                                world.with_hardware(clock.now(), |hw, now| hw.handle_datagram(now, &d));
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
            _ = sighup.recv() => {
                reload(&mut scenario, opts, &mut world, &clock, &mut emulated).await;
            }
            _ = sigterm.recv() => start_stop(&mut stopping, &mut world, &clock, &accept, "SIGTERM", opts.quiet),
            _ = sigint.recv() => start_stop(&mut stopping, &mut world, &clock, &accept, "Ctrl-C", opts.quiet),
            _ = stop_notify.notified() => start_stop(&mut stopping, &mut world, &clock, &accept, "a stop request", opts.quiet),
            r = emu_done => {
                emulated = None;
                let why = match r {
                    Ok(Ok(_)) => "it stopped".to_string(),
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                };
                eprintln!("sim serve: the emulated machine failed ({why}): stopping");
                start_stop(&mut stopping, &mut world, &clock, &accept, "the emulator's failure", opts.quiet);
            }
        }
    }

    // Stop: the journal is complete; clients are told nothing more.
    accept.abort();
    if let Some(r) = &rest {
        r.shared.shutdown();
        r.task.abort();
    }
    let recorded = world.with_service(clock.now(), |svc, _| svc.take_recorded());
    journal.append(recorded);
    journal.commit()?;
    while let Some(m) = joblog.poll() {
        logfile.write(clock.now(), &m)?;
    }
    logfile.flush()?;
    for c in conns.values() {
        c.shared.close();
    }
    if let Some(em) = emulated.take() {
        em.stop().await;
    }
    let report = ServeReport {
        listen,
        requests: server.stats().requests,
        live_jobs: world.service().live_jobs(),
        journal_records: journal.records,
    };
    say(format!(
        "stopped: {} request(s) answered, {} live job(s) kept for the next start, journal {} record(s)",
        report.requests, report.live_jobs, report.journal_records
    ));
    Ok(report)
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(86_400 * 365)
}

/// Begins stopping: no new clients, the simulated users' jobs destroyed, then the loop waits
/// (briefly) for BMP work under way.
fn start_stop<H: spinnbed_sim::hardware::Hardware>(
    stopping: &mut Option<tokio::time::Instant>,
    world: &mut World<H>,
    clock: &UnixClock,
    accept: &tokio::task::JoinHandle<()>,
    what: &str,
    quiet: bool,
) {
    if stopping.is_some() {
        return;
    }
    accept.abort();
    let n = world.stop_users(clock.now());
    if !quiet {
        println!(
            "sim serve: {what}: stopping{}",
            if n > 0 {
                format!(" ({n} simulated user job(s) destroyed)")
            } else {
                String::new()
            }
        );
    }
    *stopping = Some(tokio::time::Instant::now() + STOP_GRACE);
}

/// Re-reads the scenario's machines (SIGHUP) and applies the changes.
async fn reload(
    scenario: &mut Scenario,
    opts: &ServeOptions,
    world: &mut World<HostHardware<UdpTransport>>,
    clock: &UnixClock,
    emulated: &mut Option<Emulated>,
) {
    let Some(path) = &opts.scenario_path else { return };
    let sc = match spinnbed_sim::scenario::load(path) {
        Ok(sc) => sc,
        Err(e) => {
            eprintln!("sim serve: SIGHUP: the scenario cannot be read, keeping the machines as they are: {e}");
            return;
        }
    };
    let machines: Vec<(Machine, spinnbed_core::timing::MachineTiming)> =
        sc.machines.iter().map(|m| (m.machine.clone(), m.timing)).collect();
    let plain: Vec<Machine> = machines.iter().map(|(m, _)| m.clone()).collect();
    let notes = world.with_service(clock.now(), |svc, now| reconcile(svc, now, &plain));
    world.hardware_mut().side_mut().set_machines(&machines);
    if !opts.quiet {
        println!(
            "sim serve: SIGHUP: machines reloaded from {}{}",
            path.display(),
            if notes.is_empty() {
                ": no change".to_string()
            } else {
                format!(": {}", notes.join("; "))
            }
        );
    }
    if let Some(em) = emulated.take() {
        // The emulated machine follows, keeping what is powered.
        em.stop().await;
        match start_emulator(&sc, world.service(), opts.allow_non_loopback, opts.quiet).await {
            Ok(e) => *emulated = Some(e),
            Err(e) => eprintln!("sim serve: SIGHUP: the emulated machine could not restart: {e}"),
        }
    }
    *scenario = sc;
}

/// Moves request log lines and service events to the protocol server, the job log and the
/// console.
fn drain<H: spinnbed_sim::hardware::Hardware>(
    world: &mut World<H>,
    server: &mut Server,
    joblog: &mut JobLog,
    logfile: &mut JobLogFile,
    now: Instant,
    printer: &JobPrinter,
) -> Result<(), RealtimeError> {
    while let Some(l) = server.poll_log() {
        joblog.request(l);
    }
    while let Some((at, ev)) = world.poll_tap() {
        server.on_event(&ev);
        joblog.on_event(&ev, world.service());
        printer.print(at, &ev, world.service());
    }
    while let Some(m) = joblog.poll() {
        logfile.write(now, &m)?;
    }
    Ok(())
}

/// The running REST service.
struct Rest {
    shared: Arc<rest::web::Shared>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts the REST API (HTTP and HTTPS on `addr`).
async fn start_rest(
    addr: SocketAddrV4,
    opts: &ServeOptions,
    tx: mpsc::Sender<ToLoop>,
    say: &impl Fn(String),
) -> Result<Rest, RealtimeError> {
    let source = match &opts.tls_files {
        Some((cert, key)) => rest::tls::CertSource::Given {
            cert: cert.clone(),
            key: key.clone(),
        },
        None => {
            let mut names = vec![addr.ip().to_string()];
            for n in ["127.0.0.1", "localhost"] {
                if !names.iter().any(|x| x == n) {
                    names.push(n.to_string());
                }
            }
            rest::tls::CertSource::SelfSigned(names)
        }
    };
    let tls = rest::tls::setup(&opts.state_dir, &source)?;
    let listener = listen_on(addr).map_err(|source| RealtimeError::Listen {
        addr: SocketAddr::V4(addr),
        source,
    })?;
    let port = listener.local_addr().map_or(addr.port(), |a| a.port());
    if let Some(b) = &opts.rest_bound {
        let _ = b.set(SocketAddr::V4(SocketAddrV4::new(*addr.ip(), port)));
    }
    let shared = rest::web::Shared::new(opts.state_dir.clone(), tx, port);
    let app = rest::web::router(shared.clone());
    let task = tokio::spawn(rest::http::serve(
        listener,
        tls.config.clone(),
        app,
        Arc::new(rest::http::HttpStats::default()),
    ));
    say(format!(
        "REST API on http(s)://{}:{port}/spalloc/ (certificate {}{})",
        addr.ip(),
        tls.cert_path.display(),
        if tls.generated { ", made just now" } else { "" }
    ));
    Ok(Rest { shared, task })
}

/// The protocol's listening socket, with a backlog deep enough for a thousand clients
/// connecting at once (the default 128 overflows, and the kernel makes the rest retry after
/// a second or more).
fn listen_on(addr: std::net::SocketAddrV4) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::V4(addr))?;
    socket.listen(LISTEN_BACKLOG)
}

/// One console line per job state change (and every event to the embedder's channel).
struct JobPrinter {
    quiet: bool,
    events: Option<std::sync::mpsc::Sender<(Instant, ServiceEvent)>>,
    rest: Option<Arc<rest::web::Shared>>,
}

impl JobPrinter {
    fn print(&self, now: Instant, ev: &ServiceEvent, svc: &Service) {
        if let Some(tx) = &self.events {
            // A receiver that went away only stops listening.
            let _ = tx.send((now, ev.clone()));
        }
        if let (Some(r), Some(job)) = (&self.rest, ev.job()) {
            r.job_changed(job.0, matches!(ev, ServiceEvent::Destroyed { .. }));
        }
        if self.quiet {
            return;
        }
        let line = match ev {
            ServiceEvent::Created { job } => {
                let Some(j) = svc.job(*job) else { return };
                format!(
                    "job {job} queued: {} for {} from {}",
                    spinnbed_sim::run::outputs::request_label(&j.request),
                    j.owner,
                    j.keepalive_host.as_deref().unwrap_or("a simulated user")
                )
            }
            ServiceEvent::Allocated {
                job, machine, boards, ..
            } => format!(
                "job {job} allocated {} board(s) on {machine} from {}",
                boards.len(),
                boards.first().map(|b| b.to_string()).unwrap_or_default()
            ),
            ServiceEvent::Powering { job, on } => format!("job {job} powering {}", if *on { "on" } else { "off" }),
            ServiceEvent::Ready { job } => format!("job {job} ready"),
            ServiceEvent::Destroyed { job, reason, .. } => match reason.to_string() {
                r if r.is_empty() => format!("job {job} destroyed (no reason given)"),
                r => format!("job {job} destroyed: {r}"),
            },
            ServiceEvent::BoardsReleased { .. } | ServiceEvent::MachineChanged { .. } => return,
        };
        println!("sim serve: {line}");
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, tx: mpsc::Sender<ToLoop>, line_deadline: std::time::Duration) {
    let mut next = 1u64;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let id = ClientId(next);
                next += 1;
                let shared = Arc::new(Shared::default());
                if tx.send(ToLoop::Connected(id, peer, shared.clone())).await.is_err() {
                    return;
                }
                conn::spawn(id, stream, shared, tx.clone(), line_deadline);
            }
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                eprintln!("sim serve: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// A signal as a stream that never fires where it cannot be watched.
fn signal(kind: tokio::signal::unix::SignalKind) -> Signal {
    Signal(tokio::signal::unix::signal(kind).ok())
}

struct Signal(Option<tokio::signal::unix::Signal>);

impl Signal {
    async fn recv(&mut self) {
        match &mut self.0 {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
}
