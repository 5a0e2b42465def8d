//! The simulated network between the host and the machine, seeded.
//!
//! Every datagram gets a one-way latency drawn from the scenario's distribution, is lost with the
//! independent loss probability or by the path's Gilbert–Elliott burst state, may be duplicated,
//! may be reordered (held back by an extra delay), and is serialised on the Ethernet link of the
//! machine-side endpoint (board or BMP) at the configured bandwidth. Scheduled loss bursts raise
//! the loss of every path for a while. One random stream per purpose ("latency", "loss",
//! "duplicate", "reorder") keeps the draws of one effect from shifting another's.

use crate::engine::stream;
use crate::scenario::{BurstLoss, NetworkConfig};
use rand_chacha::ChaCha8Rng;
use spinnbed_core::time::{Duration, Instant};
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{Ipv4Addr, SocketAddrV4};

pub use spinnbed_emulator::Datagram;

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

/// The network: datagrams in, datagrams out later (or never).
pub struct Network {
    cfg: NetworkConfig,
    latency: ChaCha8Rng,
    loss: ChaCha8Rng,
    duplicate: ChaCha8Rng,
    reorder: ChaCha8Rng,
    /// Gilbert–Elliott state per directed path: true = bad.
    burst_state: BTreeMap<(SocketAddrV4, SocketAddrV4), bool>,
    /// When each machine-side link is next free, per direction (true = towards the machine).
    link_free: BTreeMap<(Ipv4Addr, bool), Instant>,
    /// Extra loss until a time (scheduled loss bursts).
    extra_loss: Option<(Instant, f64)>,
    machine_side: std::collections::BTreeSet<Ipv4Addr>,
    in_flight: BinaryHeap<InFlight>,
    seq: u64,
    stats: NetStats,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("in_flight", &self.in_flight.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Network {
    /// A network with the scenario's settings; `machine_side` are the board and BMP addresses
    /// (their links are the bandwidth-limited ones).
    pub fn new(cfg: NetworkConfig, seed: u64, machine_side: impl IntoIterator<Item = Ipv4Addr>) -> Network {
        Network {
            cfg,
            latency: stream(seed, "latency"),
            loss: stream(seed, "loss"),
            duplicate: stream(seed, "duplicate"),
            reorder: stream(seed, "reorder"),
            burst_state: BTreeMap::new(),
            link_free: BTreeMap::new(),
            extra_loss: None,
            machine_side: machine_side.into_iter().collect(),
            in_flight: BinaryHeap::new(),
            seq: 0,
            stats: NetStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Loses an extra fraction `loss` of every datagram until `until` (a loss-burst fault).
    pub fn loss_burst(&mut self, until: Instant, loss: f64) {
        self.extra_loss = Some((until, loss.clamp(0.0, 1.0)));
    }

    fn unit(rng: &mut ChaCha8Rng) -> f64 {
        crate::scenario::dist::unit(rng)
    }

    fn lost(&mut self, now: Instant, src: SocketAddrV4, dst: SocketAddrV4) -> bool {
        let mut p = self.cfg.loss;
        if let Some((until, extra)) = self.extra_loss {
            if now < until {
                p = 1.0 - (1.0 - p) * (1.0 - extra);
            } else {
                self.extra_loss = None;
            }
        }
        if let Some(BurstLoss { p_enter, p_leave, loss }) = self.cfg.burst {
            let bad = self.burst_state.entry((src, dst)).or_insert(false);
            let u = Self::unit(&mut self.loss);
            *bad = if *bad { u >= p_leave } else { u < p_enter };
            if *bad {
                p = 1.0 - (1.0 - p) * (1.0 - loss);
            }
        }
        p > 0.0 && Self::unit(&mut self.loss) < p
    }

    /// Serialisation delay of `bytes` on a machine-side link.
    fn wire_time(&self, bytes: usize) -> Duration {
        if self.cfg.bandwidth_mbps <= 0.0 {
            return Duration::ZERO;
        }
        // UDP/IP/Ethernet overhead: 8 + 20 + 38 bytes per frame.
        let bits = (bytes + 66) as f64 * 8.0;
        Duration::from_secs_f64(bits / (self.cfg.bandwidth_mbps * 1e6))
    }

    /// Hands a datagram to the network at `now`.
    pub fn send(&mut self, now: Instant, d: Datagram) {
        self.stats.sent += 1;
        if self.lost(now, d.src, d.dst) {
            self.stats.lost += 1;
            return;
        }
        let copies = if self.cfg.duplicate > 0.0 && Self::unit(&mut self.duplicate) < self.cfg.duplicate {
            2
        } else {
            1
        };
        self.stats.duplicated += copies - 1;
        // The machine-side endpoint's link serialises the datagram.
        let (link, towards_machine) = if self.machine_side.contains(d.dst.ip()) {
            (Some(*d.dst.ip()), true)
        } else if self.machine_side.contains(d.src.ip()) {
            (Some(*d.src.ip()), false)
        } else {
            (None, false)
        };
        let wire = self.wire_time(d.payload.len());
        for c in 0..copies {
            let mut start = now;
            if let Some(ip) = link {
                let free = self.link_free.entry((ip, towards_machine)).or_insert(Instant::ZERO);
                start = start.max(*free) + wire;
                *free = start;
            }
            let mut at = start + self.cfg.latency.sample(&mut self.latency);
            if self.cfg.reorder > 0.0 && Self::unit(&mut self.reorder) < self.cfg.reorder {
                // Held back by up to one more latency draw: later datagrams may overtake it.
                self.stats.reordered += 1;
                at += self.cfg.latency.sample(&mut self.reorder);
            }
            let _ = c;
            self.in_flight.push(InFlight {
                at,
                seq: self.seq,
                d: d.clone(),
            });
            self.seq += 1;
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
    use crate::scenario::dist::Dist;

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
        net.loss_burst(Instant(100), 1.0);
        net.send(Instant(50), dg(1));
        net.send(Instant(150), dg(2));
        assert_eq!(net.stats().lost, 1);
        assert_eq!(net.poll_deliver(Instant::MAX).unwrap().payload[0], 2);
    }
}
