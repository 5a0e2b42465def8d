//! `sim emulate`: the scenario's machines served over real UDP, in real time.
//!
//! Every BMP and every board listens on its own address from the scenario's IP scheme (SCP on
//! 17893, boot on 54321) and answers from the address the request was sent to. One loop owns
//! the sans-IO [`Emulator`]: it feeds it the datagrams the socket tasks receive, sends what it
//! emits, and sleeps until its next timer (power-on, boot, tag expiry, EIEIO). With `--impair`
//! the scenario's network model (latency, loss, bursts, duplication, reordering) is applied on
//! the emulator side, seeded, and the scenario's faults strike and heal at their times (counted
//! from the start of serving). Reverse IP tags that clients set get their own sockets (the
//! board's address, the tag's port) for as long as they are set.
//!
//! The emulator's timers are microsecond-precise (SC&MP answers a 256-byte read 65 µs after it
//! started serving it), while tokio's timers fire on a 1 ms wheel: a window of 8 would then
//! get 8 replies a millisecond instead of one every 65 µs, and an impaired path's 5 ms would
//! come out up to 1.4 ms late. So the loop sleeps until [`SPIN_WINDOW`] before a deadline and
//! then yields to the runtime (which polls the sockets each time) until it has passed.

use crate::clock::Clock;
use crate::error::RealtimeError;
use crate::udp::{SocketSet, check_loopback};
use spinnbed_core::datagram::Datagram;
use spinnbed_core::time::Instant;
use spinnbed_emulator::Emulator;
use spinnbed_sim::netsim::Network;
use spinnbed_sim::scenario::Scenario;
use std::path::PathBuf;

/// Options of `sim emulate`.
#[derive(Debug, Clone, Default)]
pub struct EmulateOptions {
    /// Allow binding addresses outside 127.0.0.0/8.
    pub allow_non_loopback: bool,
    /// Apply the scenario's network model on the emulator side.
    pub impair: bool,
    /// Written (atomically) once every socket is bound.
    pub ready_file: Option<PathBuf>,
    /// Stop after this long (for tests and demos); `None`: until Ctrl-C / SIGTERM.
    pub duration: Option<std::time::Duration>,
    /// No per-event log lines.
    pub quiet: bool,
    /// Stops serving when notified (for embedding: tests, other drivers).
    pub stop: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// EIEIO datagrams per second a streaming board sends (default: the emulator's 10; 0 turns
    /// streaming off).
    pub eieio_rate: Option<u32>,
    /// 32-bit keys per streamed EIEIO datagram (1–63; default 63).
    pub eieio_keys: Option<u8>,
    /// Notified once every socket is bound (for embedding).
    pub ready: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// Boards powered when serving starts, with the links whose STOP bits are set: the state
    /// real hardware would still be in when the server driving it restarts.
    pub powered: Vec<(
        String,
        spinnbed_core::geometry::Board,
        Vec<spinnbed_core::geometry::Link>,
    )>,
    /// Leave Ctrl-C and SIGTERM to the embedding program (stop through `stop` only).
    pub embedded: bool,
}

/// Deadlines nearer than this are waited for by yielding instead of sleeping (tokio's timer
/// resolution is 1 ms).
pub const SPIN_WINDOW: std::time::Duration = std::time::Duration::from_millis(2);

/// Waits until `until`: sleeps until [`SPIN_WINDOW`] before it (tokio's timer wheel wakes up
/// to about 1.4 ms late, which on a 10 ms round trip would add 2.7 ms), then yields to the
/// runtime (so socket tasks and other branches of a `select!` run) until it has passed, which
/// keeps deadlines to within a few microseconds.
pub async fn wait_until(until: tokio::time::Instant) {
    if let Some(early) = until.checked_sub(SPIN_WINDOW)
        && early > tokio::time::Instant::now()
    {
        tokio::time::sleep_until(early).await;
    }
    while tokio::time::Instant::now() < until {
        tokio::task::yield_now().await;
    }
}

/// Serves the scenario's machines until stopped.
pub async fn emulate(sc: &Scenario, opts: &EmulateOptions) -> Result<spinnbed_emulator::Stats, RealtimeError> {
    let machines: Vec<_> = sc.machines.iter().map(|m| m.machine.clone()).collect();
    let mut config = sc.emulator_config();
    if let Some(rate) = opts.eieio_rate {
        config.eieio.rate = rate;
    }
    if let Some(keys) = opts.eieio_keys {
        config.eieio.keys_per_packet = keys.clamp(1, 63);
    }
    let mut emu = Emulator::new(&machines, config);
    for (machine, board, stopped) in &opts.powered {
        emu.restore_power(Instant::ZERO, machine, *board, true, stopped);
    }
    let endpoints = emu.endpoints();
    check_loopback(&endpoints, opts.allow_non_loopback)?;
    let (mut socks, mut rx) = SocketSet::bind(&endpoints).await?;
    let machine_ips: Vec<_> = endpoints.iter().map(|a| *a.ip()).collect();
    let mut net = opts
        .impair
        .then(|| Network::new(sc.network.clone(), sc.run.seed, machine_ips));
    if let Some(path) = &opts.ready_file {
        let tmp = path.with_extension("tmp");
        let file_error = |path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| RealtimeError::File { path, source }
        };
        std::fs::write(&tmp, format!("{} sockets\n", socks.len())).map_err(file_error(&tmp))?;
        std::fs::rename(&tmp, path).map_err(file_error(path))?;
    }
    if let Some(ready) = &opts.ready {
        ready.notify_one();
    }
    if !opts.quiet {
        eprintln!(
            "sim emulate: {} machine(s), {} sockets bound{}",
            machines.len(),
            socks.len(),
            if opts.embedded { "" } else { "; Ctrl-C stops" }
        );
    }
    let clock = Clock::start();
    let start = tokio::time::Instant::now();
    let stop_at = opts.duration.and_then(|d| start.checked_add(d));
    let (mut sigterm, mut sigint) = if opts.embedded {
        (SignalStream(None), SignalStream(None))
    } else {
        (
            signal_stream(tokio::signal::unix::SignalKind::terminate()),
            signal_stream(tokio::signal::unix::SignalKind::interrupt()),
        )
    };
    let mut log = EventLog;
    let stop = opts.stop.clone().unwrap_or_default();
    // With --impair, the scenario's faults strike and heal on the emulator's clock: (time, index
    // in the scenario, strike?) in time order.
    let mut faults: std::collections::VecDeque<(Instant, usize, bool)> = if opts.impair {
        let mut v = Vec::new();
        for (i, f) in sc.faults.iter().enumerate() {
            v.push((Instant::ZERO + f.at, i, true));
            if let Some(d) = f.duration {
                v.push((Instant::ZERO + f.at + d, i, false));
            }
        }
        // At the same instant, heals before strikes (as the simulated run schedules them).
        v.sort_by_key(|&(t, i, on)| (t, on, i));
        v.into()
    } else {
        Default::default()
    };
    // Reverse IP tags open sockets on their boards' addresses while they are set.
    let mut served: std::collections::BTreeSet<std::net::SocketAddrV4> = endpoints.iter().copied().collect();
    let mut refused = std::collections::BTreeSet::new();
    let mut active = spinnbed_sim::hardware::faults::ActiveFaults::default();
    let mut tags_epoch = emu.tags_epoch();
    let mut tags_checked = start;
    loop {
        let now = clock.now();
        while let Some(&(at, i, on)) = faults.front()
            && at <= now
        {
            faults.pop_front();
            let f = &sc.faults[i];
            active.apply(&mut emu, net.as_mut(), &f.kind, on);
            if !opts.quiet {
                let what = &f.kind;
                eprintln!("sim emulate: fault {}: {what}", if on { "strikes" } else { "heals" });
            }
        }
        // Everything the emulator (and the impaired network) has to say goes out now, until
        // neither has anything left (a request the network delivers may be answered at once).
        loop {
            let mut moved = false;
            // Open and close reverse-tag sockets when the tags changed, before the CMD_IPTAG
            // reply goes out, so that a client's next datagram finds the socket bound (and every
            // second, for tags that time out).
            let tick = tags_checked.elapsed() >= std::time::Duration::from_secs(1);
            if emu.tags_epoch() != tags_epoch || tick {
                tags_epoch = emu.tags_epoch();
                tags_checked = tokio::time::Instant::now();
                let sets = (&mut served, &mut refused);
                sync_reverse_tags(&emu, now, &endpoints, &mut socks, sets, tick, opts.quiet).await;
            }
            while let Some(d) = emu.poll_transmit() {
                moved = true;
                match net.as_mut() {
                    Some(n) => n.send(now, d),
                    None => {
                        socks.try_send(d.src, d.dst, &d.payload);
                    }
                }
            }
            if let Some(n) = net.as_mut() {
                while let Some(d) = n.poll_deliver(now) {
                    moved = true;
                    if served.contains(&d.dst) {
                        emu.handle_datagram(now, d);
                    } else {
                        socks.try_send(d.src, d.dst, &d.payload);
                    }
                }
            }
            if !moved {
                break;
            }
        }
        log.report(&mut emu, opts.quiet);
        let wake = [
            emu.poll_timeout(),
            net.as_ref().and_then(|n| n.poll_timeout()),
            faults.front().map(|f| f.0),
        ]
        .into_iter()
        .flatten()
        .min();
        let sleep_until = wake.map(|t| clock.at(t)).unwrap_or_else(|| clock.far_future());
        let sleep_until = stop_at.map_or(sleep_until, |s| sleep_until.min(s));
        let sleep_until = if served.len() > endpoints.len() {
            sleep_until.min(tags_checked + std::time::Duration::from_secs(1))
        } else {
            sleep_until
        };
        tokio::select! {
            r = rx.recv() => {
                let Some(r) = r else { break };
                let mut batch = vec![r];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                    if batch.len() >= 1024 { break; }
                }
                let now = clock.now();
                for r in batch {
                    let d = Datagram { src: r.peer, dst: r.local, payload: r.payload };
                    match net.as_mut() {
                        Some(n) => n.send(now, d),
                        None => emu.handle_datagram(now, d),
                    }
                }
            }
            _ = wait_until(sleep_until) => {
                emu.handle_timeout(clock.now());
                if stop_at.is_some_and(|s| tokio::time::Instant::now() >= s) { break; }
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = stop.notified() => break,
        }
    }
    let stats = emu.stats();
    if !opts.quiet {
        eprintln!("sim emulate: stopped: {stats}");
    }
    Ok(stats)
}

type AddrSet = std::collections::BTreeSet<std::net::SocketAddrV4>;

/// Binds a socket for every reverse IP tag that is set and closes those of tags that are gone.
/// A reverse tag whose port cannot be bound (taken by another program, or not yet released by
/// a socket just closed) is reported once and tried again every second (`retry`) while it
/// stays set.
async fn sync_reverse_tags(
    emu: &Emulator,
    now: Instant,
    endpoints: &[std::net::SocketAddrV4],
    socks: &mut SocketSet,
    (served, refused): (&mut AddrSet, &mut AddrSet),
    retry: bool,
    quiet: bool,
) {
    let want: AddrSet = emu.reverse_tag_endpoints(now).into_iter().collect();
    refused.retain(|a| want.contains(a));
    let fixed = |a: &std::net::SocketAddrV4| endpoints.binary_search(a).is_ok();
    let gone: Vec<_> = served
        .iter()
        .copied()
        .filter(|a| !fixed(a) && !want.contains(a))
        .collect();
    for a in gone {
        socks.remove(a);
        served.remove(&a);
        if !quiet {
            eprintln!("sim emulate: reverse IP tag on {a} closed");
        }
    }
    for a in want {
        if served.contains(&a) || (refused.contains(&a) && !retry) {
            continue;
        }
        match socks.add(a).await {
            Ok(()) => {
                refused.remove(&a);
                served.insert(a);
                if !quiet {
                    eprintln!("sim emulate: reverse IP tag listening on {a}");
                }
            }
            Err(e) => {
                if refused.insert(a) && !quiet {
                    eprintln!("sim emulate: reverse IP tag on {a}: {e:#}");
                }
            }
        }
    }
}

/// A signal as a stream, registered once so that none is lost between polls (a receiver that
/// never fires where the signal cannot be watched).
fn signal_stream(kind: tokio::signal::unix::SignalKind) -> SignalStream {
    SignalStream(tokio::signal::unix::signal(kind).ok())
}

struct SignalStream(Option<tokio::signal::unix::Signal>);

impl SignalStream {
    async fn recv(&mut self) {
        match &mut self.0 {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
}

/// Turns the emulator's power and boot changes into log lines.
#[derive(Debug, Default)]
pub struct EventLog;

impl EventLog {
    /// Prints (to stderr) one line per power or boot change since the last call.
    pub fn report(&mut self, emu: &mut Emulator, quiet: bool) {
        use spinnbed_emulator::Event;
        while let Some(ev) = emu.poll_event() {
            if quiet {
                continue;
            }
            let line = match ev {
                Event::PoweredOn { machine, board } => format!("{machine} board {board}: power on"),
                Event::PoweredOff { machine, board } => format!("{machine} board {board}: power off"),
                Event::BootStarted { machine, root, boards } => {
                    format!("{machine} board {root}: boot image received, booting {boards} board(s)")
                }
                Event::Booted {
                    machine,
                    root,
                    width,
                    height,
                } => {
                    format!("{machine} board {root}: SC&MP running ({width} x {height} chips)")
                }
            };
            eprintln!("sim emulate: {line}");
        }
    }
}
