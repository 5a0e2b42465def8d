//! Scenarios: one TOML file describes one experiment — the run, the machines, the workload, the
//! scheduling policy, the host and network, and the faults.
//!
//! [`load`] reads a file (relative paths inside it are resolved against its directory) into a
//! fully resolved [`Scenario`]: every default filled in, every value checked. Mistakes are
//! [`InputError`]s naming the file, the line and the key path (`machine[0].dead_boards[3]`).
//! [`Scenario::to_resolved_toml`] prints the resolved scenario back (it parses to an equal
//! value), and [`Scenario::jobs`] builds the workload. `scenarios/README.md` documents every
//! key.
//!
//! [`Scenario::memory_estimate`] says how much memory a simulated run needs (for callers to
//! refuse a scenario that would not fit before running it).
//!
//! Reading happens in two steps: serde structures (module `raw`) reject unknown keys and wrong types
//! (with `serde_path_to_error` giving the key path and toml's span the line), then `resolve`
//! checks ranges and references and fills in defaults, locating each key path's line in the
//! parsed document.

mod emit;
mod locate;
mod memory;
mod raw;
mod resolve;

#[cfg(test)]
mod tests;

use crate::input::InputError;
use crate::quantity::{dist, units};
use crate::workload::WorkloadJob;
use crate::workload::WorkloadReport;
use crate::workload::journal::JournalSpec;
use crate::workload::spalloc_log::SpallocLogSpec;
use crate::workload::swf::SwfSpec;
use crate::workload::synthetic::{Calendar, SyntheticSpec};
use crate::workload::trace::TraceSpec;
use dist::Dist;
pub use memory::{MemoryEstimate, MemoryTerm, approx_bytes};
use spinnbed_core::geometry::{Board, FrameId, Link, Machine, MachineSpec};
use spinnbed_core::time::Duration;
use std::fmt;
use std::path::{Path, PathBuf};

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weekday {
    /// Monday (day 0).
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday.
    Saturday,
    /// Sunday (day 6).
    Sunday,
}

impl Weekday {
    /// Monday … Sunday.
    pub const ALL: [Weekday; 7] = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];
    /// 0 for Monday … 6 for Sunday.
    pub fn index(self) -> u8 {
        self as u8
    }
    /// The lowercase name used in scenarios.
    pub fn name(self) -> &'static str {
        match self {
            Weekday::Monday => "monday",
            Weekday::Tuesday => "tuesday",
            Weekday::Wednesday => "wednesday",
            Weekday::Thursday => "thursday",
            Weekday::Friday => "friday",
            Weekday::Saturday => "saturday",
            Weekday::Sunday => "sunday",
        }
    }
}

/// `[run]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// Run name (outputs go to `out/<name>/`).
    pub name: String,
    /// Seed of every random stream.
    pub seed: u64,
    /// Jobs arrive during `[0, horizon)`; then the run drains.
    pub horizon: Duration,
    /// Period of the time-series samples.
    pub sample_period: Duration,
    /// The run stops this long after the horizon even if jobs remain.
    pub drain_limit: Duration,
    /// Weekday at t = 0.
    pub start_weekday: Weekday,
    /// Hour of the day at t = 0 (0 … 23).
    pub start_hour: u8,
}

impl RunConfig {
    /// The calendar of the workload generators.
    pub fn calendar(&self) -> Calendar {
        Calendar {
            horizon: self.horizon,
            start_weekday: self.start_weekday.index(),
            start_hour: self.start_hour,
        }
    }
}

/// The shortest `sample_period` a scenario may ask for.
pub const MIN_SAMPLE_PERIOD: Duration = Duration::from_millis(100);

/// `[machine.timing]`: how long the hardware takes (one type for the emulator, fixed-delay
/// hardware and the host's BMP retries).
pub use spinnbed_core::timing::MachineTiming;

/// `[machine.scamp]`: how long SC&MP and the BMP take per request and how much they buffer (the
/// emulator's timing model, used by packet-level runs, `sim emulate` and `sim serve`).
pub use spinnbed_emulator::ScampTiming;

/// One `[[machine]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineConfig {
    /// The validated machine: `spec` with the `random_dead` boards dead as well.
    pub machine: Machine,
    /// The description as given (layout and addressing as given, a SpiNNer CSV already
    /// expanded into an explicit layout; `dead_boards` only the listed ones).
    pub spec: MachineSpec,
    /// Hardware timings.
    pub timing: MachineTiming,
    /// SC&MP and BMP service times and buffers.
    pub scamp: ScampTiming,
    /// `random_dead_boards`: how many more boards are dead, chosen at random.
    pub random_dead_boards: u32,
    /// The boards chosen for `random_dead_boards` under the run's seed, in board order (dead
    /// in `machine`). See [`Scenario::with_seed`].
    pub random_dead: Vec<Board>,
}

impl MachineConfig {
    /// The boards `random_dead_boards` chooses among: the live boards of `spec` (in board
    /// order) that no `[[faults]]` entry or `[[network.path]]` names, so that a fault always
    /// strikes a live board and a path's boards stay live whatever the seed.
    pub(crate) fn random_dead_candidates(&self, faults: &[FaultConfig], paths: &[PathConfig]) -> Vec<Board> {
        let name = self.spec.name.as_str();
        let given: std::collections::BTreeSet<Board> = self.spec.dead_boards.iter().copied().collect();
        let mut named = std::collections::BTreeSet::new();
        for f in faults {
            match &f.kind {
                FaultKind::BoardDies { machine, board } | FaultKind::LinkFails { machine, board, .. }
                    if machine == name =>
                {
                    named.insert(*board);
                }
                _ => {}
            }
        }
        for p in paths.iter().filter(|p| p.machine.as_deref() == Some(name)) {
            named.extend(p.boards.iter().copied());
        }
        self.machine
            .boards()
            .filter(|b| !given.contains(b) && !named.contains(b))
            .collect()
    }

    /// Chooses the `random_dead_boards` boards among `candidates` (uniformly, without
    /// replacement) from the machine's own stream, `random_dead_boards/<name>` of `seed`, and
    /// rebuilds `machine` with them dead. `candidates` must hold at least that many boards.
    fn choose_random_dead(&mut self, seed: u64, mut candidates: Vec<Board>) {
        use rand::Rng;
        let n = (self.random_dead_boards as usize).min(candidates.len());
        let mut rng = crate::engine::stream(seed, &format!("random_dead_boards/{}", self.spec.name));
        // A partial Fisher–Yates shuffle, each index drawn without bias by rejection.
        for i in 0..n {
            let range = (candidates.len() - i) as u64;
            let reject_below = (u64::MAX % range + 1) % range; // 2^64 mod range
            let v = loop {
                let v = rng.next_u64();
                if v >= reject_below {
                    break v % range;
                }
            };
            candidates.swap(i, i + v as usize);
        }
        candidates.truncate(n);
        candidates.sort_unstable();
        let mut spec = self.spec.clone();
        spec.dead_boards.extend(candidates.iter().copied());
        // More dead boards never make a valid machine invalid: every check of `Machine::new`
        // either ignores dead boards or asks something of live boards only.
        self.machine = Machine::new(spec).expect("a valid machine with more dead boards is valid");
        self.random_dead = candidates;
    }
}

/// `[workload]`.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // one per scenario: boxing would only cost readability
pub enum WorkloadConfig {
    /// Generated jobs.
    Synthetic(SyntheticSpec),
    /// A replay-CSV trace.
    Trace(TraceSpec),
    /// A Standard Workload Format log.
    Swf(SwfSpec),
    /// A spalloc server's job log (`spalloc_jobs.log`).
    SpallocLog(SpallocLogSpec),
    /// The journal of `sim serve`.
    Journal(JournalSpec),
}

impl WorkloadConfig {
    /// `load_scale`: the factor on the offered load (1: as given).
    pub fn load_scale(&self) -> f64 {
        match self {
            WorkloadConfig::Synthetic(s) => s.load_scale,
            WorkloadConfig::Trace(s) => s.load_scale,
            WorkloadConfig::Swf(s) => s.load_scale,
            WorkloadConfig::SpallocLog(s) => s.load_scale,
            WorkloadConfig::Journal(s) => s.load_scale,
        }
    }
}

/// Which packer places jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackerKind {
    /// The reference spalloc packer.
    Spalloc,
    /// The "anywhere" packer.
    Anywhere,
}

/// Queue discipline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// Strict first-come first-served (the reference).
    Fifo,
    /// EASY backfilling.
    Easy,
}

/// Which runtime the scheduler believes when backfilling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EstimateSource {
    /// The job's declared estimate.
    Declared,
    /// The job's real runtime (an oracle).
    Actual,
}

/// `[policy]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    /// Packer.
    pub packer: PackerKind,
    /// Give exactly the boards asked for (anywhere packer only).
    pub exact_boards: bool,
    /// Queue discipline.
    pub queue: QueueKind,
    /// How many queued jobs a backfilling pass looks at.
    pub backfill_depth: u32,
    /// Runtime estimates used for backfilling.
    pub estimate: EstimateSource,
    /// Delay before freed boards can be reallocated.
    pub seconds_before_free: Duration,
    /// Destroyed jobs remembered by the service.
    pub max_retired_jobs: u64,
    /// Disable the links on an allocation's periphery.
    pub disable_peripheral_links: bool,
    /// Take a board out of service after this many failures (0: never).
    pub avoid_failing_boards: u32,
}

impl Default for PolicyConfig {
    fn default() -> PolicyConfig {
        PolicyConfig {
            packer: PackerKind::Spalloc,
            exact_boards: false,
            queue: QueueKind::Fifo,
            backfill_depth: 64,
            estimate: EstimateSource::Declared,
            seconds_before_free: Duration::from_secs(30),
            max_retired_jobs: 1200,
            disable_peripheral_links: true,
            avoid_failing_boards: 0,
        }
    }
}

/// A preset SCP retry and window policy, by its name in scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScpPolicy {
    /// As SpiNNMan 1!7.4.1 does.
    Spinnman,
    /// As SpiNNMan's earlier pipeline did (one request at a time, 0.5 s, 3 retries).
    SpinnmanLegacy,
    /// As Rig does.
    Rig,
    /// Adapting to the observed loss.
    Adaptive,
}

/// A named SCP policy of a scenario (`[host] scp_policy`, an entry of `[study] policies` or a
/// point of `[study.pipeline_grid]`): a preset, or spinnman's pipeline with other parameters,
/// optionally paced by a token bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScpChoice {
    /// Its name in outputs (a preset's own name unless the scenario names it).
    pub name: String,
    /// The host-side policy.
    pub policy: spinnbed_core::host::Policy,
    /// The token bucket pacing every client's transmissions, if any.
    pub pacing: Option<spinnbed_core::host::TokenBucket>,
}

impl ScpChoice {
    /// A preset, unpaced, under its own name.
    pub fn preset(p: ScpPolicy) -> ScpChoice {
        ScpChoice {
            name: p.name().to_string(),
            policy: p.policy(),
            pacing: None,
        }
    }

    /// The preset this is, if it is one exactly (same policy, unpaced, under the preset's name):
    /// the real clients the study compares against.
    pub fn as_preset(&self) -> Option<ScpPolicy> {
        ScpPolicy::ALL
            .into_iter()
            .find(|p| p.name() == self.name && p.policy() == self.policy && self.pacing.is_none())
    }
}

impl From<ScpPolicy> for ScpChoice {
    fn from(p: ScpPolicy) -> ScpChoice {
        ScpChoice::preset(p)
    }
}

/// What carries out the service's hardware work in a simulated run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HardwareModel {
    /// BMP work takes the machines' fixed timings; boards are usable when ready.
    FixedDelay,
    /// Packet level: SCP over the simulated network to the emulated machine.
    Emulator,
}

impl HardwareModel {
    /// The name in scenarios.
    pub fn name(self) -> &'static str {
        match self {
            HardwareModel::FixedDelay => "fixed-delay",
            HardwareModel::Emulator => "emulator",
        }
    }
}

impl ScpPolicy {
    /// Every preset, in the order scenarios list them.
    pub const ALL: [ScpPolicy; 4] = [
        ScpPolicy::Spinnman,
        ScpPolicy::SpinnmanLegacy,
        ScpPolicy::Rig,
        ScpPolicy::Adaptive,
    ];

    /// The name in scenarios (and of the host-side policy).
    pub fn name(self) -> &'static str {
        match self {
            ScpPolicy::Spinnman => "spinnman",
            ScpPolicy::SpinnmanLegacy => "spinnman-legacy",
            ScpPolicy::Rig => "rig",
            ScpPolicy::Adaptive => "adaptive",
        }
    }

    /// The host-side policy with its default settings.
    pub fn policy(self) -> spinnbed_core::host::Policy {
        use spinnbed_core::host::Policy;
        match self {
            ScpPolicy::Spinnman => Policy::spinnman(),
            ScpPolicy::SpinnmanLegacy => Policy::spinnman_legacy(),
            ScpPolicy::Rig => Policy::rig(),
            ScpPolicy::Adaptive => Policy::adaptive(),
        }
    }
}

/// A bulk transfer direction of the windowing study.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferOp {
    /// Host reads from SDRAM.
    Read,
    /// Host writes to SDRAM.
    Write,
}

impl TransferOp {
    /// The name in scenarios and in `scp.csv`.
    pub fn name(self) -> &'static str {
        match self {
            TransferOp::Read => "read",
            TransferOp::Write => "write",
        }
    }
}

/// `[study.pipeline_grid]`: points of spinnman's pipeline family, the cross product of the
/// lists (a list not written keeps the `from` preset's value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineGrid {
    /// The preset every point starts from (`spinnman` or `spinnman-legacy`).
    pub from: ScpPolicy,
    /// `n_channels` values.
    pub n_channels: Option<Vec<usize>>,
    /// `intermediate_channel_waits` values (not written: `n_channels − 1` at each point).
    pub intermediate_channel_waits: Option<Vec<usize>>,
    /// `n_retries` values.
    pub n_retries: Option<Vec<u32>>,
    /// `packet_timeout` values.
    pub packet_timeout: Option<Vec<Duration>>,
    /// `retry_pause` values.
    pub retry_pause: Option<Vec<Duration>>,
    /// Token buckets (`None`: unpaced) each point is run with.
    pub pacing: Option<Vec<Option<spinnbed_core::host::TokenBucket>>>,
}

impl PipelineGrid {
    /// The points, in order (the last list varies fastest), each named after the values of the
    /// lists written: `pipe c16 w15 t0.2s paced`. Points whose waits are not below their
    /// channels (other than 1 channel, 0 waits) are left out.
    pub fn points(&self) -> Vec<ScpChoice> {
        use spinnbed_core::host::Policy;
        let base = match self.from.policy() {
            Policy::Spinnman(p) => p,
            _ => spinnbed_core::host::PipelinePolicy::spinnman(),
        };
        let one = |v: &Option<Vec<usize>>, d: usize| v.clone().unwrap_or_else(|| vec![d]);
        let channels = one(&self.n_channels, base.n_channels);
        let waits: Vec<Option<usize>> = match &self.intermediate_channel_waits {
            Some(v) => v.iter().copied().map(Some).collect(),
            None if self.n_channels.is_some() => vec![None],
            None => vec![Some(base.intermediate_channel_waits)],
        };
        let retries = self.n_retries.clone().unwrap_or_else(|| vec![base.n_retries]);
        let timeouts = self.packet_timeout.clone().unwrap_or_else(|| vec![base.packet_timeout]);
        let pauses = self.retry_pause.clone().unwrap_or_else(|| vec![base.retry_code_pause]);
        let pacings = self.pacing.clone().unwrap_or_else(|| vec![None]);
        let buckets = pacings.iter().filter(|p| p.is_some()).count();
        let mut out = Vec::new();
        for &c in &channels {
            for &w in &waits {
                let w = w.unwrap_or(c.saturating_sub(1));
                if w >= c && !(c <= 1 && w == 0) {
                    continue;
                }
                for &r in &retries {
                    for &t in &timeouts {
                        for &pause in &pauses {
                            let mut k = 0;
                            for pacing in &pacings {
                                let mut name = String::from("pipe");
                                if self.n_channels.is_some() {
                                    name.push_str(&format!(" c{c}"));
                                }
                                if self.intermediate_channel_waits.is_some() || self.n_channels.is_some() {
                                    name.push_str(&format!(" w{w}"));
                                }
                                if self.n_retries.is_some() {
                                    name.push_str(&format!(" r{r}"));
                                }
                                if self.packet_timeout.is_some() {
                                    name.push_str(&format!(" t{}", units::format_duration(t)));
                                }
                                if self.retry_pause.is_some() {
                                    name.push_str(&format!(" p{}", units::format_duration(pause)));
                                }
                                if pacing.is_some() {
                                    k += 1;
                                    name.push_str(" paced");
                                    if buckets > 1 {
                                        name.push_str(&k.to_string());
                                    }
                                }
                                if name == "pipe" {
                                    name = format!("pipe {}", self.from.name());
                                }
                                out.push(ScpChoice {
                                    name,
                                    policy: Policy::Spinnman(spinnbed_core::host::PipelinePolicy {
                                        n_channels: c,
                                        intermediate_channel_waits: w,
                                        n_retries: r,
                                        packet_timeout: t,
                                        retry_code_pause: pause,
                                        ..base
                                    }),
                                    pacing: *pacing,
                                });
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// One network condition of the study (`[[study.network]]`): what the path does besides the
/// cell's round-trip time, loss and the scenario's bandwidth.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyNetwork {
    /// Its name in outputs.
    pub name: String,
    /// Extra one-way delay per datagram, drawn independently (so datagrams may overtake each
    /// other), on top of the cell's half round trip; `None`: none.
    pub jitter: Option<Dist<Duration>>,
    /// Reordering probability (a datagram held back by one more one-way delay).
    pub reorder: f64,
    /// Duplication probability.
    pub duplicate: f64,
    /// Gilbert–Elliott burst loss on top of the cell's independent loss.
    pub burst: Option<BurstLoss>,
    /// The board link's bandwidth, in place of `[network] bandwidth_mbps`.
    pub bandwidth_mbps: Option<f64>,
}

impl StudyNetwork {
    /// The network of a study without `[[study.network]]`: nothing but the cells' RTT and loss.
    pub fn clean() -> StudyNetwork {
        StudyNetwork {
            name: "clean".into(),
            jitter: None,
            reorder: 0.0,
            duplicate: 0.0,
            burst: None,
            bandwidth_mbps: None,
        }
    }
}

/// `[study]`: instead of a workload, a measurement grid.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyConfig {
    /// SCP policies compared (the grid's points come after them, see
    /// [`StudyConfig::all_policies`]).
    pub policies: Vec<ScpChoice>,
    /// `[study.pipeline_grid]`, if any.
    pub pipeline_grid: Option<PipelineGrid>,
    /// Network conditions, each cell run under each (default: one, `clean`).
    pub networks: Vec<StudyNetwork>,
    /// Transfer directions.
    pub ops: Vec<TransferOp>,
    /// Packet loss probabilities (each direction).
    pub losses: Vec<f64>,
    /// Round-trip times (the network's one-way latency is half).
    pub rtts: Vec<Duration>,
    /// Bytes moved per cell.
    pub bytes: u64,
    /// Repetitions per cell (different network seeds), averaged.
    pub seeds: u32,
}

impl StudyConfig {
    /// The policies measured: `policies`, then the pipeline grid's points.
    pub fn all_policies(&self) -> Vec<ScpChoice> {
        let mut all = self.policies.clone();
        if let Some(g) = &self.pipeline_grid {
            all.extend(g.points());
        }
        all
    }

    /// Cells of the study (policies × ops × losses × RTTs × network conditions).
    pub fn cells(&self) -> usize {
        self.all_policies().len() * self.ops.len() * self.losses.len() * self.rtts.len() * self.networks.len()
    }
}

/// `[host]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HostConfig {
    /// What carries out hardware work.
    pub hardware: HardwareModel,
    /// How long the host waits after a BMP powers boards on before checking their FPGAs
    /// (spinnman sleeps 5 s).
    pub post_power_on_delay: Duration,
    /// SCP policy.
    pub scp_policy: ScpChoice,
    /// Simulated users boot their boards and move their data.
    pub boot_users: bool,
    /// Boot attempts before giving up.
    pub boot_tries: u32,
    /// `[host.live_output]`: users whose applications stream EIEIO to the host (`None`: none
    /// do).
    pub live_output: Option<LiveOutputConfig>,
    /// How the users' bulk data transfers are simulated.
    pub transfers: TransferModel,
}

/// How a packet-level run simulates the users' bulk SDRAM transfers (`[host] transfers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransferModel {
    /// Exact: every SCP request and reply of every transfer goes through the simulated network
    /// and the emulated board.
    #[default]
    Packets,
    /// Approximate (opt-in): a transfer on a path in its steady state takes the time and SCP
    /// counts of a model fitted, at the run's start, to exact packet-level transfers of the
    /// same policy over the same path and SC&MP settings
    /// ([`crate::hardware::flow`]); under a fault, or beside a live stream, it falls back to
    /// packets.
    Flow,
}

impl TransferModel {
    /// The name in scenarios.
    pub fn name(self) -> &'static str {
        match self {
            TransferModel::Packets => "packets",
            TransferModel::Flow => "flow",
        }
    }
}

impl Default for HostConfig {
    fn default() -> HostConfig {
        HostConfig {
            hardware: HardwareModel::FixedDelay,
            post_power_on_delay: Duration::from_secs(5),
            scp_policy: ScpChoice::preset(ScpPolicy::Spinnman),
            boot_users: false,
            boot_tries: 3,
            live_output: None,
            transfers: TransferModel::Packets,
        }
    }
}

/// When a streaming user starts its application (and so its live output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveStart {
    /// Once its input is loaded, when the job's runtime starts (the usual order).
    Running,
    /// As soon as its boards have booted, before loading its input: the stream then shares the
    /// board's Ethernet link (and SC&MP) with the job's own SCP loading.
    Booted,
}

impl LiveStart {
    /// The name in scenarios.
    pub fn name(self) -> &'static str {
        match self {
            LiveStart::Running => "running",
            LiveStart::Booted => "booted",
        }
    }
}

/// `[host.live_output]`: live output (spinnman's live event connections) in packet-level runs.
/// A share of the jobs' users set an IP tag on their root board pointing at the host's
/// listener, start their application with its stream settings in its core's user registers,
/// and the emulated application streams timestamped EIEIO events through the tag until the
/// user stops it (before reading its results back).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveOutputConfig {
    /// Share of the jobs whose users stream, 0..=1 (default 1), drawn per job from the run's
    /// `live_output` stream.
    pub fraction: f64,
    /// Datagrams per second per streaming job (default 1000).
    pub rate: u32,
    /// Events (32-bit keys) per datagram, 1..=62 (default 62: a full 256-byte message beside its
    /// timestamp).
    pub keys_per_packet: u8,
    /// When the stream starts (default [`LiveStart::Running`]).
    pub start: LiveStart,
    /// The IP tag used, 0..=7 (default 1).
    pub tag: u8,
}

impl Default for LiveOutputConfig {
    fn default() -> LiveOutputConfig {
        LiveOutputConfig {
            fraction: 1.0,
            rate: 1000,
            keys_per_packet: 62,
            start: LiveStart::Running,
            tag: 1,
        }
    }
}

/// Gilbert–Elliott burst loss: a good and a bad state.
#[derive(Debug, Clone, PartialEq)]
pub struct BurstLoss {
    /// Per-packet probability of entering the bad state.
    pub p_enter: f64,
    /// Per-packet probability of leaving it.
    pub p_leave: f64,
    /// Loss probability in the bad state.
    pub loss: f64,
}

/// `[network]`.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    /// One-way delay.
    pub latency: Dist<Duration>,
    /// Independent loss probability.
    pub loss: f64,
    /// Burst loss on top.
    pub burst: Option<BurstLoss>,
    /// Duplication probability.
    pub duplicate: f64,
    /// Reordering probability.
    pub reorder: f64,
    /// Link bandwidth.
    pub bandwidth_mbps: f64,
    /// `[[network.path]]`: per-path settings, applied in file order over the ones above.
    pub paths: Vec<PathConfig>,
}

impl Default for NetworkConfig {
    fn default() -> NetworkConfig {
        NetworkConfig {
            latency: Dist::fixed(Duration(150)),
            loss: 0.0,
            burst: None,
            duplicate: 0.0,
            reorder: 0.0,
            bandwidth_mbps: 100.0,
            paths: Vec::new(),
        }
    }
}

impl NetworkConfig {
    /// The settings of the path between the host and the machine-side address `ip`: `[network]`
    /// with every `[[network.path]]` that covers `ip` applied in order (the result has no paths).
    pub fn for_endpoint(&self, ip: std::net::Ipv4Addr) -> NetworkConfig {
        let mut c = NetworkConfig {
            paths: Vec::new(),
            ..self.clone()
        };
        for p in self.paths.iter().filter(|p| p.endpoints.contains(&ip)) {
            p.set.apply(&mut c);
        }
        c
    }
}

/// Which machine-side endpoints a `[[network.path]]` covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathTo {
    /// BMPs and boards.
    All,
    /// BMPs only.
    Bmps,
    /// Boards only.
    Boards,
}

impl PathTo {
    /// The name in scenarios.
    pub fn name(self) -> &'static str {
        match self {
            PathTo::All => "all",
            PathTo::Bmps => "bmps",
            PathTo::Boards => "boards",
        }
    }
}

/// The settings a `[[network.path]]` changes (`None`: left as they were).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PathSettings {
    /// One-way delay.
    pub latency: Option<Dist<Duration>>,
    /// Independent loss probability.
    pub loss: Option<f64>,
    /// Burst loss.
    pub burst: Option<BurstLoss>,
    /// Duplication probability.
    pub duplicate: Option<f64>,
    /// Reordering probability.
    pub reorder: Option<f64>,
    /// Link bandwidth.
    pub bandwidth_mbps: Option<f64>,
}

impl PathSettings {
    fn apply(&self, c: &mut NetworkConfig) {
        if let Some(l) = &self.latency {
            c.latency = l.clone();
        }
        if let Some(v) = self.loss {
            c.loss = v;
        }
        if let Some(b) = &self.burst {
            c.burst = Some(b.clone());
        }
        if let Some(v) = self.duplicate {
            c.duplicate = v;
        }
        if let Some(v) = self.reorder {
            c.reorder = v;
        }
        if let Some(v) = self.bandwidth_mbps {
            c.bandwidth_mbps = v;
        }
    }
}

/// One `[[network.path]]`: the paths from the host to a set of BMPs and boards, and how they
/// differ from `[network]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PathConfig {
    /// Only this machine's endpoints (`None`: every machine's).
    pub machine: Option<String>,
    /// BMPs, boards or both.
    pub to: PathTo,
    /// Only these frames (their BMP and boards); empty: every frame.
    pub frames: Vec<FrameId>,
    /// Only these boards; empty: every board.
    pub boards: Vec<Board>,
    /// What changes.
    pub set: PathSettings,
    /// The machine-side addresses covered (derived from the selectors above).
    pub endpoints: std::collections::BTreeSet<std::net::Ipv4Addr>,
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// A board dies.
    BoardDies {
        /// Machine name.
        machine: String,
        /// The board.
        board: Board,
    },
    /// A link stops working (leaving `board` through `link`).
    LinkFails {
        /// Machine name.
        machine: String,
        /// The board.
        board: Board,
        /// The link.
        link: Link,
    },
    /// A frame's BMP stops answering.
    BmpSilent {
        /// Machine name.
        machine: String,
        /// The frame.
        frame: FrameId,
    },
    /// The network loses this fraction of packets: on every path, or only on the paths to one
    /// machine's BMPs and boards.
    LossBurst {
        /// Loss probability.
        loss: f64,
        /// Only the paths to this machine (all paths if `None`).
        machine: Option<String>,
    },
}

impl FaultKind {
    /// The `kind` name in scenarios.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::BoardDies { .. } => "board_dies",
            FaultKind::LinkFails { .. } => "link_fails",
            FaultKind::BmpSilent { .. } => "bmp_silent",
            FaultKind::LossBurst { .. } => "loss_burst",
        }
    }
}

/// What a fault strikes, in words ("board (0, 0, 0) of lab dies").
impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Percent with at most three decimals ("5 %", "12.5 %").
        let pct = |loss: f64| (loss * 100.0 * 1000.0).round() / 1000.0;
        match self {
            FaultKind::BoardDies { machine, board } => write!(f, "board {board} of {machine} dies"),
            FaultKind::LinkFails { machine, board, link } => {
                write!(f, "link {} of board {board} of {machine} fails", link.name())
            }
            FaultKind::BmpSilent { machine, frame } => write!(
                f,
                "BMP of cabinet {}, frame {} of {machine} stops answering",
                frame.cabinet, frame.frame
            ),
            FaultKind::LossBurst { loss, machine: None } => write!(f, "the network loses {} % of packets", pct(*loss)),
            FaultKind::LossBurst {
                loss,
                machine: Some(machine),
            } => write!(f, "the network to {machine} loses {} % of packets", pct(*loss)),
        }
    }
}

/// One `[[faults]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// When it happens.
    pub at: Duration,
    /// What happens.
    pub kind: FaultKind,
    /// It heals after this long (`None`: never).
    pub duration: Option<Duration>,
}

/// Draws each file-based job's data sizes, in job order, from the scenario's "data" stream.
fn fill_data(jobs: &mut [WorkloadJob], data_in: &Dist<dist::ByteSize>, data_out: &Dist<dist::ByteSize>, seed: u64) {
    let mut rng = crate::engine::stream(seed, "data");
    for j in jobs {
        j.data_in = data_in.sample(&mut rng).0;
        j.data_out = data_out.sample(&mut rng).0;
    }
}

/// What a scenario does: submit jobs to the service, or measure.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // one per scenario: boxing would only cost readability
pub enum Experiment {
    /// `[workload]`: jobs submitted to the service (the default, with a synthetic workload).
    Workload(WorkloadConfig),
    /// `[study]`: a measurement grid instead of jobs.
    Study(StudyConfig),
}

/// The text a scenario was read from, kept to name the line of a key in messages about the
/// resolved scenario (memory estimates, a study asked for jobs). Not part of the scenario's
/// value: texts that resolve alike are equal.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceText(std::sync::Arc<str>);

impl PartialEq for SourceText {
    fn eq(&self, _: &SourceText) -> bool {
        true
    }
}

/// A fully resolved scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// `[run]`.
    pub run: RunConfig,
    /// `[[machine]]`, in file order (at least one).
    pub machines: Vec<MachineConfig>,
    /// `[workload]` or `[study]`.
    pub experiment: Experiment,
    /// `[policy]`.
    pub policy: PolicyConfig,
    /// `[host]`.
    pub host: HostConfig,
    /// `[network]`.
    pub network: NetworkConfig,
    /// `[[faults]]`, in file order.
    pub faults: Vec<FaultConfig>,
    /// The file it came from (as named).
    pub file: PathBuf,
    /// Its text.
    pub(crate) source: SourceText,
}

/// Reads and resolves a scenario file; relative paths inside it are resolved against the
/// file's directory.
pub fn load(path: &Path) -> Result<Scenario, InputError> {
    let file = path.display().to_string();
    let bytes = crate::input::read_bytes(path, crate::input::MAX_INPUT_BYTES)?;
    let text = crate::input::decode_utf8(&file, bytes)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    parse(&file, &text, dir)
}

/// Parses and resolves scenario text named `file`; relative paths are resolved against
/// `base_dir` (made absolute, so the resolved scenario does not depend on the working
/// directory).
pub fn parse(file: &str, text: &str, base_dir: &Path) -> Result<Scenario, InputError> {
    resolve::parse(file, text, base_dir)
}

impl Scenario {
    /// The same scenario with another seed (every machine's `random_dead_boards` chosen again
    /// under it).
    pub fn with_seed(mut self, seed: u64) -> Scenario {
        self.run.seed = seed;
        self.choose_random_dead_boards();
        self
    }

    /// Chooses every machine's `random_dead_boards` under the run's seed (resolution has
    /// checked that each machine has enough candidates).
    pub(crate) fn choose_random_dead_boards(&mut self) {
        let seed = self.run.seed;
        for m in &mut self.machines {
            if m.random_dead_boards > 0 {
                let candidates = m.random_dead_candidates(&self.faults, &self.network.paths);
                m.choose_random_dead(seed, candidates);
            }
        }
    }

    /// The fully resolved scenario as TOML (every default written out, but `load_scale` and
    /// `random_dead_boards` only when they are not 1 and 0); [`parse`] reads it back to an
    /// equal scenario.
    pub fn to_resolved_toml(&self) -> String {
        emit::scenario(self)
    }

    /// Builds the workload: jobs in submission order, deterministic given the seed.
    pub fn jobs(&self) -> Result<Vec<WorkloadJob>, InputError> {
        self.workload().map(|(jobs, _)| jobs)
    }

    /// The `[study]`, if the scenario is one.
    pub fn study(&self) -> Option<&StudyConfig> {
        match &self.experiment {
            Experiment::Study(st) => Some(st),
            Experiment::Workload(_) => None,
        }
    }

    /// The `[workload]`, unless the scenario is a study.
    pub fn workload_config(&self) -> Option<&WorkloadConfig> {
        match &self.experiment {
            Experiment::Workload(w) => Some(w),
            Experiment::Study(_) => None,
        }
    }

    /// The 1-based line of a key path (`run.sample_period`) in the text the scenario was read
    /// from: the key's line, or that of the deepest table of it that is written.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        locate::Locator::new(&self.source.0).line(key)
    }

    /// An error about `key` of this scenario, with its file and line.
    pub(crate) fn error_at(&self, key: &str, message: impl Into<String>) -> InputError {
        InputError::at(&self.file.display().to_string(), self.line_of(key), Some(key), message)
    }

    /// Builds the workload and reports what it skipped (file sources), what is worth knowing
    /// about it, and (journals) the recorded BMP timing. A study has no workload: asking for
    /// one is an error.
    pub fn workload(&self) -> Result<(Vec<WorkloadJob>, WorkloadReport), InputError> {
        let workload = match &self.experiment {
            Experiment::Workload(w) => w,
            Experiment::Study(_) => {
                return Err(self.error_at(
                    "study",
                    "this scenario is a [study]: it measures instead of running jobs, so it has no workload",
                ));
            }
        };
        let (jobs, mut report) = self.build_workload(workload)?;
        if workload.load_scale() != 1.0 {
            report.load_scale = Some(workload.load_scale());
        }
        Ok((jobs, report))
    }

    fn build_workload(&self, workload: &WorkloadConfig) -> Result<(Vec<WorkloadJob>, WorkloadReport), InputError> {
        match workload {
            WorkloadConfig::Synthetic(spec) => {
                let jobs = crate::workload::synthetic::generate(spec, &self.run.calendar(), self.run.seed);
                let mut report = WorkloadReport::new("synthetic");
                report.jobs = jobs.len();
                Ok((jobs, report))
            }
            WorkloadConfig::Trace(spec) => {
                let (mut jobs, report) = crate::workload::trace::generate(spec, self.run.horizon)?;
                fill_data(&mut jobs, &spec.data_in, &spec.data_out, self.run.seed);
                Ok((jobs, report))
            }
            WorkloadConfig::Swf(spec) => {
                let machine = &self.machines.first().expect("a scenario has a machine").machine;
                let (mut jobs, report) = crate::workload::swf::generate(spec, self.run.horizon, machine)?;
                fill_data(&mut jobs, &spec.data_in, &spec.data_out, self.run.seed);
                Ok((jobs, report))
            }
            WorkloadConfig::SpallocLog(spec) => {
                let names: Vec<&str> = self.machines.iter().map(|m| m.machine.name()).collect();
                let (mut jobs, report) =
                    crate::workload::spalloc_log::generate(spec, self.run.horizon, self.hold(), &names)?;
                fill_data(&mut jobs, &spec.data_in, &spec.data_out, self.run.seed);
                Ok((jobs, report))
            }
            WorkloadConfig::Journal(spec) => {
                let target = crate::workload::journal::ReplayTarget {
                    machines: self.machines.iter().map(|m| &m.machine).collect(),
                    policy: crate::run::ServicePolicy::of_scenario(self),
                    fixed_delay: self.host.hardware == HardwareModel::FixedDelay,
                };
                let (mut jobs, report) =
                    crate::workload::journal::generate(spec, self.run.horizon, self.hold(), &target)?;
                fill_data(&mut jobs, &spec.data_in, &spec.data_out, self.run.seed);
                Ok((jobs, report))
            }
        }
    }

    /// How long a recorded job that never ended holds its boards if it gets them: past the
    /// end of the run.
    fn hold(&self) -> Duration {
        self.run.horizon + self.run.drain_limit
    }

    /// The emulator settings the scenario implies: each machine's power and boot times and its
    /// SC&MP and BMP timing.
    pub fn emulator_config(&self) -> spinnbed_emulator::Config {
        let mut c = spinnbed_emulator::Config::default();
        for m in &self.machines {
            c.machine_timing.insert(m.machine.name().to_string(), m.timing);
            c.machine_scamp.insert(m.machine.name().to_string(), m.scamp);
        }
        c
    }

    /// The machine named `name`.
    pub fn machine(&self, name: &str) -> Option<&MachineConfig> {
        self.machines.iter().find(|m| m.machine.name() == name)
    }
}
