//! The simulated network between the host and the machine, seeded.
//!
//! A *path* joins the host to one machine-side endpoint (a board's or a BMP's address); its
//! settings are `[network]` with the `[[network.path]]` entries that cover the endpoint applied
//! on top. Every datagram gets a one-way latency drawn from its path's distribution, is lost with
//! the path's independent loss probability or by the path's Gilbert–Elliott burst state (one per
//! direction), may be duplicated, may be reordered (held back by an extra delay), and is
//! serialised on the endpoint's Ethernet link at the path's bandwidth. Scheduled loss bursts raise
//! the loss of every path, or of the paths to one machine, for a while; bursts that overlap
//! combine (each loses its fraction independently).
//!
//! Every path has its own random stream per purpose ("latency", "loss", "duplicate", "reorder",
//! each keyed by the endpoint's address), so traffic on one path, or a change to one effect,
//! never shifts the draws of another.

use crate::engine::stream;
use crate::scenario::{BurstLoss, NetworkConfig};
use rand_chacha::ChaCha8Rng;
use spinnbed_core::time::{Duration, Instant};
use std::collections::{BTreeMap, BinaryHeap};
use std::net::Ipv4Addr;

use spinnbed_core::datagram::Datagram;

/// Counters of what the network did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct NetStats {
    /// Datagrams handed to the network.
    pub sent: u64,
    /// Datagrams delivered (duplicates included).
    pub delivered: u64,
    /// Dropped by independent or burst loss.
    pub lost: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Held back to arrive out of order.
    pub reordered: u64,
    /// Payload bytes delivered.
    pub bytes: u64,
}

struct InFlight {
    at: Instant,
    seq: u64,
    d: Datagram,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// A scheduled loss burst: extra loss on every path (`scope` `None`) or on the paths to the
/// given machine-side addresses (sorted).
#[derive(Debug, Clone, PartialEq)]
struct LossBurst {
    loss: f64,
    scope: Option<Vec<Ipv4Addr>>,
}

impl LossBurst {
    fn new(loss: f64, scope: Option<Vec<Ipv4Addr>>) -> LossBurst {
        LossBurst {
            loss: loss.clamp(0.0, 1.0),
            scope: scope.map(|mut ips| {
                ips.sort();
                ips
            }),
        }
    }

    fn covers(&self, endpoint: Option<Ipv4Addr>) -> bool {
        match (&self.scope, endpoint) {
            (None, _) => true,
            (Some(ips), Some(ip)) => ips.binary_search(&ip).is_ok(),
            (Some(_), None) => false,
        }
    }
}

/// The state of one path: its settings, its random streams, and per direction (index 1: towards
/// the machine) the burst state and when the endpoint's link is next free.
struct Path {
    cfg: usize,
    latency: ChaCha8Rng,
    loss: ChaCha8Rng,
    duplicate: ChaCha8Rng,
    reorder: ChaCha8Rng,
    bad: [bool; 2],
    free: [Instant; 2],
}

impl Path {
    fn new(seed: u64, cfg: usize, key: &str) -> Path {
        let s = |purpose: &str| {
            if key.is_empty() {
                stream(seed, purpose)
            } else {
                stream(seed, &format!("{purpose}/{key}"))
            }
        };
        Path {
            cfg,
            latency: s("latency"),
            loss: s("loss"),
            duplicate: s("duplicate"),
            reorder: s("reorder"),
            bad: [false; 2],
            free: [Instant::ZERO; 2],
        }
    }
}

/// The network: datagrams in, datagrams out later (or never).
pub struct Network {
    seed: u64,
    /// Distinct path settings; 0 is `[network]` itself.
    cfgs: Vec<NetworkConfig>,
    /// Machine-side endpoints and the settings of their paths.
    endpoints: BTreeMap<Ipv4Addr, usize>,
    /// Path state, made on a path's first datagram.
    paths: BTreeMap<Ipv4Addr, Path>,
    /// Traffic between two addresses neither of which is on the machine side.
    other: Path,
    /// Scheduled loss bursts under way, in the order they started.
    bursts: Vec<LossBurst>,
    in_flight: BinaryHeap<InFlight>,
    seq: u64,
    stats: NetStats,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("paths", &self.cfgs.len())
            .field("in_flight", &self.in_flight.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Network {
    /// A network with the scenario's settings; `machine_side` are the board and BMP addresses
    /// (one path each; their links are the bandwidth-limited ones).
    pub fn new(cfg: NetworkConfig, seed: u64, machine_side: impl IntoIterator<Item = Ipv4Addr>) -> Network {
        let base = NetworkConfig {
            paths: Vec::new(),
            ..cfg.clone()
        };
        let mut cfgs = vec![base];
        let mut endpoints = BTreeMap::new();
        for ip in machine_side {
            let mut i = 0;
            if cfg.paths.iter().any(|p| p.endpoints.contains(&ip)) {
                let c = cfg.for_endpoint(ip);
                i = match cfgs.iter().position(|x| *x == c) {
                    Some(i) => i,
                    None => {
                        cfgs.push(c);
                        cfgs.len() - 1
                    }
                };
            }
            endpoints.insert(ip, i);
        }
        Network {
            seed,
            cfgs,
            endpoints,
            paths: BTreeMap::new(),
            other: Path::new(seed, 0, ""),
            bursts: Vec::new(),
            in_flight: BinaryHeap::new(),
            seq: 0,
            stats: NetStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// From now on, loses an extra fraction `loss` of the datagrams on every path (`scope`
    /// `None`) or on the paths to the given machine-side addresses (a loss-burst fault).
    pub fn start_loss_burst(&mut self, loss: f64, scope: Option<Vec<Ipv4Addr>>) {
        self.bursts.push(LossBurst::new(loss, scope));
    }

    /// Ends one loss burst started with the same `loss` and `scope` (the earliest such); others
    /// under way, even identical ones, carry on.
    pub fn end_loss_burst(&mut self, loss: f64, scope: Option<Vec<Ipv4Addr>>) {
        let want = LossBurst::new(loss, scope);
        if let Some(i) = self.bursts.iter().position(|b| *b == want) {
            self.bursts.remove(i);
        }
    }

    fn unit(rng: &mut ChaCha8Rng) -> f64 {
        crate::quantity::dist::unit(rng)
    }

    /// Serialisation delay of `bytes` at `bandwidth_mbps`.
    fn wire_time(bandwidth_mbps: f64, bytes: usize) -> Duration {
        if bandwidth_mbps <= 0.0 {
            return Duration::ZERO;
        }
        // UDP/IP/Ethernet overhead: 8 + 20 + 38 bytes per frame.
        let bits = (bytes + 66) as f64 * 8.0;
        Duration::from_secs_f64(bits / (bandwidth_mbps * 1e6))
    }

    /// Hands a datagram to the network at `now`.
    pub fn send(&mut self, now: Instant, d: Datagram) {
        self.stats.sent += 1;
        // The path: the machine-side endpoint, whose link serialises the datagram.
        let (endpoint, towards, cfg) = if let Some(&c) = self.endpoints.get(d.dst.ip()) {
            (Some(*d.dst.ip()), 1, c)
        } else if let Some(&c) = self.endpoints.get(d.src.ip()) {
            (Some(*d.src.ip()), 0, c)
        } else {
            (None, 0, 0)
        };
        // Scheduled bursts covering this path, combined.
        let pass = self
            .bursts
            .iter()
            .filter(|b| b.covers(endpoint))
            .fold(1.0, |pass, b| pass * (1.0 - b.loss));
        let extra = 1.0 - pass;
        let seed = self.seed;
        let path = match endpoint {
            Some(ip) => self
                .paths
                .entry(ip)
                .or_insert_with(|| Path::new(seed, cfg, &ip.to_string())),
            None => &mut self.other,
        };
        let cfg = &self.cfgs[path.cfg];
        // Loss: independent, the path's burst state, and any scheduled burst.
        let mut p = 1.0 - (1.0 - cfg.loss) * (1.0 - extra);
        if let Some(BurstLoss { p_enter, p_leave, loss }) = cfg.burst {
            let u = Self::unit(&mut path.loss);
            let bad = &mut path.bad[towards];
            *bad = if *bad { u >= p_leave } else { u < p_enter };
            if *bad {
                p = 1.0 - (1.0 - p) * (1.0 - loss);
            }
        }
        if p > 0.0 && Self::unit(&mut path.loss) < p {
            self.stats.lost += 1;
            return;
        }
        let copies = if cfg.duplicate > 0.0 && Self::unit(&mut path.duplicate) < cfg.duplicate {
            2
        } else {
            1
        };
        self.stats.duplicated += copies - 1;
        let wire = Self::wire_time(cfg.bandwidth_mbps, d.payload.len());
        let mut d = Some(d);
        for copy in 0..copies {
            // The last copy takes the datagram itself.
            let d = if copy + 1 == copies { d.take() } else { d.clone() }.expect("one datagram per copy");
            let mut start = now;
            if endpoint.is_some() {
                let free = &mut path.free[towards];
                start = start.max(*free) + wire;
                *free = start;
            }
            let mut at = start + cfg.latency.sample(&mut path.latency);
            if cfg.reorder > 0.0 && Self::unit(&mut path.reorder) < cfg.reorder {
                // Held back by up to one more latency draw: later datagrams may overtake it.
                self.stats.reordered += 1;
                at += cfg.latency.sample(&mut path.reorder);
            }
            self.in_flight.push(InFlight { at, seq: self.seq, d });
            self.seq += 1;
        }
    }

    /// Draws the burst state of the path to `ip` (each direction) from its stationary
    /// distribution: where the many datagrams of a flow-level transfer, which never crossed
    /// the network, would have left its Gilbert–Elliott chain. Paths without burst loss are
    /// left alone (no draw).
    pub fn redraw_burst_state(&mut self, ip: Ipv4Addr) {
        let Some(&cfg) = self.endpoints.get(&ip) else { return };
        let Some(BurstLoss { p_enter, p_leave, .. }) = self.cfgs[cfg].burst else {
            return;
        };
        let total = p_enter + p_leave;
        let bad = if total > 0.0 { p_enter / total } else { 0.0 };
        let seed = self.seed;
        let path = self
            .paths
            .entry(ip)
            .or_insert_with(|| Path::new(seed, cfg, &ip.to_string()));
        for dir in 0..2 {
            path.bad[dir] = Self::unit(&mut path.loss) < bad;
        }
    }

    /// When the next datagram arrives.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.in_flight.peek().map(|f| f.at)
    }

    /// The next datagram that has arrived by `now`.
    pub fn poll_deliver(&mut self, now: Instant) -> Option<Datagram> {
        if self.in_flight.peek().is_some_and(|f| f.at <= now) {
            let f = self.in_flight.pop()?;
            self.stats.delivered += 1;
            self.stats.bytes += f.d.payload.len() as u64;
            Some(f.d)
        } else {
            None
        }
    }

    /// Datagrams still in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantity::dist::Dist;
    use crate::scenario::{PathConfig, PathSettings, PathTo};
    use std::net::SocketAddrV4;

    fn addr(a: u8, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, a), port)
    }

    fn cfg(loss: f64) -> NetworkConfig {
        NetworkConfig {
            loss,
            latency: Dist::fixed(Duration::from_micros(150)),
            ..NetworkConfig::default()
        }
    }

    fn dg(n: u8) -> Datagram {
        Datagram {
            src: addr(1, 5000),
            dst: addr(2, 17893),
            payload: vec![n; 26],
        }
    }

    #[test]
    fn delivers_after_latency_and_wire_time_in_order() {
        let mut net = Network::new(cfg(0.0), 1, [Ipv4Addr::new(127, 0, 0, 2)]);
        net.send(Instant::ZERO, dg(1));
        net.send(Instant::ZERO, dg(2));
        let first = net.poll_timeout().unwrap();
        // (26 + 66) bytes at 100 Mbit/s = 7.36 µs, then 150 µs.
        assert_eq!(first, Instant(7 + 150));
        assert!(net.poll_deliver(Instant(first.0 - 1)).is_none());
        assert_eq!(net.poll_deliver(first).unwrap().payload[0], 1);
        assert_eq!(net.poll_deliver(Instant(1000)).unwrap().payload[0], 2);
        assert_eq!(net.stats().delivered, 2);
    }

    #[test]
    fn loss_is_seeded_and_close_to_its_rate() {
        let run = |seed| {
            let mut net = Network::new(cfg(0.1), seed, []);
            for i in 0..10_000u32 {
                net.send(Instant(i as u64), dg(0));
            }
            net.stats().lost
        };
        assert_eq!(run(3), run(3));
        let lost = run(3);
        assert!((800..1200).contains(&lost), "{lost}");
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn bursts_cluster_losses() {
        let c = NetworkConfig {
            burst: Some(BurstLoss {
                p_enter: 0.01,
                p_leave: 0.2,
                loss: 0.9,
            }),
            ..cfg(0.0)
        };
        let mut net = Network::new(c, 9, []);
        let mut pattern = Vec::new();
        for i in 0..20_000u64 {
            let before = net.stats().lost;
            net.send(Instant(i), dg(0));
            pattern.push(net.stats().lost > before);
        }
        let losses = pattern.iter().filter(|l| **l).count();
        let runs = pattern.windows(2).filter(|w| w[0] && w[1]).count();
        assert!(losses > 200, "{losses}");
        // Consecutive losses are far more frequent than independence would give.
        assert!(runs as f64 > losses as f64 * 0.5, "{runs} of {losses}");
    }

    #[test]
    fn duplication_and_reordering() {
        let c = NetworkConfig {
            duplicate: 0.5,
            reorder: 0.5,
            latency: Dist::uniform(Duration(100), Duration(200)),
            ..cfg(0.0)
        };
        let mut net = Network::new(c, 2, []);
        for i in 0..100u8 {
            net.send(Instant(i as u64 * 10), dg(i));
        }
        let mut got = Vec::new();
        while let Some(d) = net.poll_deliver(Instant::MAX) {
            got.push(d.payload[0]);
        }
        assert!(got.len() > 120);
        assert!(got.windows(2).any(|w| w[1] < w[0]), "nothing was reordered");
        assert!(net.stats().duplicated > 20 && net.stats().reordered > 20);
    }

    #[test]
    fn loss_bursts_end() {
        let mut net = Network::new(cfg(0.0), 1, []);
        net.start_loss_burst(1.0, None);
        net.send(Instant(50), dg(1));
        net.end_loss_burst(1.0, None);
        net.send(Instant(150), dg(2));
        assert_eq!(net.stats().lost, 1);
        assert_eq!(net.poll_deliver(Instant::MAX).unwrap().payload[0], 2);
    }

    #[test]
    fn loss_bursts_overlap_and_can_strike_one_machine() {
        let ip = |a: u8| Ipv4Addr::new(127, 0, 0, a);
        let mut net = Network::new(cfg(0.0), 1, [ip(2), ip(3)]);
        // A burst on the paths to 127.0.0.3 only: 127.0.0.2 is untouched.
        net.start_loss_burst(1.0, Some(vec![ip(3)]));
        net.send(Instant(10), to(2, 1));
        net.send(Instant(10), to(3, 2));
        assert_eq!(net.stats().lost, 1);
        // Two identical network-wide bursts overlap: ending one leaves the other.
        net.start_loss_burst(1.0, None);
        net.start_loss_burst(1.0, None);
        net.end_loss_burst(1.0, None);
        net.send(Instant(50), to(2, 3));
        assert_eq!(net.stats().lost, 2);
        net.end_loss_burst(1.0, None);
        net.send(Instant(70), to(2, 4));
        net.send(Instant(70), to(3, 5));
        assert_eq!(net.stats().lost, 3, "the scoped burst still holds 127.0.0.3");
        net.end_loss_burst(1.0, Some(vec![ip(3)]));
        net.send(Instant(90), to(3, 6));
        assert_eq!(net.stats().lost, 3);
        let got: Vec<u8> = std::iter::from_fn(|| net.poll_deliver(Instant::MAX).map(|d| d.payload[0])).collect();
        assert_eq!(got, vec![1, 4, 6]);
    }

    fn to(a: u8, n: u8) -> Datagram {
        Datagram {
            src: addr(1, 5000),
            dst: addr(a, 17893),
            payload: vec![n; 26],
        }
    }

    /// Arrival delays of `n` datagrams sent to 127.0.0.`a`, one every millisecond, with traffic
    /// to 127.0.0.3 interleaved when `busy`.
    fn delays(net: &mut Network, a: u8, n: u64, busy: bool) -> Vec<u64> {
        let mut out = Vec::new();
        for i in 0..n {
            let t = Instant(i * 1000);
            net.send(t, to(a, 1));
            if busy {
                net.send(t, to(3, 2));
            }
            while let Some(at) = net.poll_timeout() {
                let d = net.poll_deliver(at).unwrap();
                if d.dst.ip() == &Ipv4Addr::new(127, 0, 0, a) {
                    out.push(at.0 - t.0);
                }
            }
        }
        out
    }

    #[test]
    fn paths_have_their_own_settings_and_random_streams() {
        let ips = [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)];
        let mut c = NetworkConfig {
            latency: Dist::uniform(Duration(100), Duration(200)),
            bandwidth_mbps: 1000.0,
            ..NetworkConfig::default()
        };
        let quiet = Network::new(c.clone(), 5, ips);
        // Path .3 is slow and lossy.
        c.paths.push(PathConfig {
            machine: None,
            to: PathTo::All,
            frames: Vec::new(),
            boards: Vec::new(),
            set: PathSettings {
                latency: Some(Dist::fixed(Duration::from_millis(30))),
                loss: Some(0.5),
                ..PathSettings::default()
            },
            endpoints: [ips[1]].into_iter().collect(),
        });
        let mut net = Network::new(c, 5, ips);
        let slow = delays(&mut net, 3, 400, false);
        assert!((120..280).contains(&slow.len()), "{}", slow.len());
        assert!(slow.iter().all(|d| (30_000..=30_001).contains(d)), "{slow:?}");
        let fast = delays(&mut net, 2, 200, false);
        assert_eq!(fast.len(), 200);
        assert!(fast.iter().all(|d| (100..=201).contains(d)), "{fast:?}");
        // Traffic on path .3 does not shift path .2's draws, and neither do .3's settings.
        let mut a = Network::new(NetworkConfig { ..net.cfgs[0].clone() }, 5, ips);
        let alone = delays(&mut a, 2, 200, false);
        let mut b = Network::new(NetworkConfig { ..net.cfgs[0].clone() }, 5, ips);
        let shared = delays(&mut b, 2, 200, true);
        assert_eq!(alone, shared);
        let mut q = quiet;
        assert_eq!(delays(&mut q, 2, 200, true), alone);
    }
}
