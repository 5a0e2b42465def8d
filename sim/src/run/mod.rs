//! `sim run`: a scenario under the discrete-event clock, and its output directory.
//!
//! [`RunSpec`] is everything a simulated run needs, already resolved (the scenario module
//! builds it from a TOML file). [`simulate`] builds the service with the chosen policies and
//! the hardware, runs the [`World`] and returns the result; [`write_outputs`] writes the files of
//! docs/outputs.md into a fresh temporary directory and renames it into place, so an output
//! directory is either complete or absent.

pub mod outputs;

use crate::hardware::host_side::{HOST_ADDR, LISTENER_ADDR};
use crate::hardware::{FixedDelays, HostSide, PacketHardware, SimulatedMachine};
use crate::scenario::{FaultConfig, NetworkConfig, ScpChoice};
use crate::workload::WorkloadJob;
use crate::world::{Limits, RunResult, World};
use outputs::RunMeta;
use spinnbed_core::alloc::Packer;
use spinnbed_core::geometry::Machine;
use spinnbed_core::sched::{Discipline, Easy, Fifo};
use spinnbed_core::service::{Service, ServiceConfig, ServiceError, spalloc_packer};
use spinnbed_core::time::{Duration, Instant};
use spinnbed_core::timing::MachineTiming;
use spinnbed_outputs::dir::{OutdirError, Staged};
use std::path::{Path, PathBuf};

/// Which packing policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackerChoice {
    /// The reference (`spalloc`).
    Spalloc,
    /// Place rectangles anywhere, fragmentation-aware (`anywhere`).
    Anywhere {
        /// Allocate exactly n boards for "at least n boards" requests.
        exact_boards: bool,
    },
}

impl PackerChoice {
    /// The policy's name.
    pub fn name(self) -> &'static str {
        match self {
            PackerChoice::Spalloc => "spalloc",
            PackerChoice::Anywhere { exact_boards: false } => "anywhere",
            PackerChoice::Anywhere { exact_boards: true } => "anywhere-exact",
        }
    }

    /// A packer of this policy for a machine.
    pub fn build(self, m: &Machine) -> Box<dyn Packer> {
        match self {
            PackerChoice::Spalloc => spalloc_packer(m),
            PackerChoice::Anywhere { exact_boards } => anywhere_packer(m, exact_boards),
        }
    }
}

fn anywhere_packer(m: &Machine, exact_boards: bool) -> Box<dyn Packer> {
    let db: Vec<_> = m.dead_boards().iter().copied().collect();
    let dl: Vec<_> = m.dead_links().iter().copied().collect();
    Box::new(spinnbed_core::alloc::anywhere::AnywherePacker::new(
        m.width(),
        m.height(),
        &db,
        &dl,
        exact_boards,
    ))
}

/// Which queue discipline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueChoice {
    /// Strict FIFO per machine (the reference).
    Fifo,
    /// EASY backfilling over the next `depth` queued jobs.
    Easy {
        /// Jobs considered behind the head.
        depth: usize,
    },
}

impl QueueChoice {
    /// The discipline's name.
    pub fn name(self) -> &'static str {
        match self {
            QueueChoice::Fifo => "fifo",
            QueueChoice::Easy { .. } => "easy",
        }
    }

    fn build(self) -> Box<dyn Discipline> {
        match self {
            QueueChoice::Fifo => Box::new(Fifo),
            QueueChoice::Easy { depth } => Box::new(Easy::new(depth)),
        }
    }
}

/// A fully resolved simulated run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Scenario name.
    pub name: String,
    /// Seed (for the record; the workload is already generated from it).
    pub seed: u64,
    /// Jobs arrive until here.
    pub horizon: Duration,
    /// Timeline sampling period.
    pub sample_period: Duration,
    /// The run stops this long after the horizon even if jobs remain.
    pub drain_limit: Duration,
    /// Machines in priority order, with their hardware timing.
    pub machines: Vec<(Machine, MachineTiming)>,
    /// Service settings.
    pub service: ServiceConfig,
    /// Packing policy.
    pub packer: PackerChoice,
    /// Queue discipline.
    pub queue: QueueChoice,
    /// The jobs, in submission order.
    pub jobs: Vec<WorkloadJob>,
    /// What carries out the hardware work.
    pub hardware: HardwareChoice,
    /// What users do with their boards.
    pub users: crate::world::UserBehaviour,
    /// Scheduled faults.
    pub faults: Vec<FaultConfig>,
    /// The host's SCP retry and windowing policy at packet level.
    pub scp_policy: ScpChoice,
    /// Host wait after powering boards on, at packet level.
    pub post_power_on_delay: Duration,
    /// BMP timing recorded by a live server, replayed by fixed-delay hardware (from a journal
    /// workload; empty otherwise).
    pub recorded_bmp: crate::hardware::fixed::RecordedBmp,
    /// Live output (`[host.live_output]`; packet level only).
    pub live_output: Option<crate::scenario::LiveOutputConfig>,
    /// How users' bulk transfers are simulated (`[host] transfers`; packet level only).
    pub transfers: crate::scenario::TransferModel,
}

/// The hardware of a simulated run.
#[derive(Debug, Clone)]
pub enum HardwareChoice {
    /// Fixed BMP timings ([`FixedDelays`]).
    FixedDelay,
    /// Packet level ([`crate::hardware::PacketHardware`]).
    Emulator {
        /// Emulated machine settings.
        emulator: Box<spinnbed_emulator::Config>,
        /// The simulated network.
        network: NetworkConfig,
    },
}

impl RunSpec {
    /// The run a scenario describes, with its jobs (from [`crate::scenario::Scenario::workload`]).
    pub fn from_scenario(sc: &crate::scenario::Scenario, mut jobs: Vec<WorkloadJob>) -> RunSpec {
        use crate::scenario::EstimateSource;
        if sc.policy.estimate == EstimateSource::Actual {
            for j in &mut jobs {
                j.estimate = Some(j.runtime);
            }
        }
        let policy = ServicePolicy::of_scenario(sc);
        RunSpec {
            name: sc.run.name.clone(),
            seed: sc.run.seed,
            horizon: sc.run.horizon,
            sample_period: sc.run.sample_period,
            drain_limit: sc.run.drain_limit,
            machines: sc.machines.iter().map(|m| (m.machine.clone(), m.timing)).collect(),
            service: policy.config(),
            packer: policy.packer,
            queue: policy.queue,
            jobs,
            hardware: match sc.host.hardware {
                crate::scenario::HardwareModel::FixedDelay => HardwareChoice::FixedDelay,
                crate::scenario::HardwareModel::Emulator => HardwareChoice::Emulator {
                    emulator: Box::new(sc.emulator_config()),
                    network: sc.network.clone(),
                },
            },
            users: crate::world::UserBehaviour {
                boot: sc.host.boot_users,
                boot_tries: sc.host.boot_tries,
                avoid_after: (sc.policy.avoid_failing_boards > 0).then_some(sc.policy.avoid_failing_boards),
            },
            faults: sc.faults.clone(),
            scp_policy: sc.host.scp_policy.clone(),
            post_power_on_delay: sc.host.post_power_on_delay,
            recorded_bmp: Default::default(),
            live_output: sc.host.live_output,
            transfers: sc.host.transfers,
        }
    }
}

/// Why a run could not be set up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    /// The service refused a machine (e.g. two machines share an address).
    #[error("machine {machine}: {error}")]
    Machine {
        /// The machine's name.
        machine: String,
        /// Why.
        error: ServiceError,
    },
}

/// Runs a spec to completion; `progress` gets the simulated time now and then.
pub fn simulate(spec: &RunSpec, progress: impl FnMut(Instant)) -> Result<(RunResult, RunMeta), RunError> {
    let service = build_service(spec)?;
    let limits = spec.limits();
    let result = match &spec.hardware {
        HardwareChoice::FixedDelay => {
            let hw = FixedDelays::new(spec.machines.iter().map(|(m, t)| (m.name().to_string(), *t)))
                .with_recorded(spec.recorded_bmp.clone());
            run_world(spec, service, hw, limits, progress)
        }
        HardwareChoice::Emulator { emulator, network } => {
            let machines: Vec<Machine> = spec.machines.iter().map(|(m, _)| m.clone()).collect();
            let machine = SimulatedMachine::new(&machines, (**emulator).clone(), network.clone(), spec.seed, HOST_ADDR);
            let mut side =
                spec.host_side_with_listener(HOST_ADDR, LISTENER_ADDR, spinnbed_core::host::SenderClock::Shared);
            if spec.transfers == crate::scenario::TransferModel::Flow {
                side = side.with_flow(crate::hardware::flow::Calibrator::new(
                    (**emulator).clone(),
                    network.clone(),
                    spec.scp_policy.clone(),
                    spec.seed,
                ));
            }
            let hw: PacketHardware = crate::hardware::HostHardware::new(side, machine);
            run_world(spec, service, hw, limits, progress)
        }
    };
    let meta = spec.meta();
    Ok((result, meta))
}

impl RunSpec {
    /// The host side of a packet-level run of this spec, at `local`.
    pub fn host_side(&self, local: std::net::SocketAddrV4) -> HostSide {
        HostSide::new(local, &self.machines, self.scp_policy.policy, self.post_power_on_delay)
            .with_pacing(self.scp_policy.pacing)
    }

    /// The host side of a packet-level run of this spec at `local`, with its live-output
    /// listener at `listener` if the spec has live output (`clock`: whether the streams'
    /// timestamps read the host's clock).
    pub fn host_side_with_listener(
        &self,
        local: std::net::SocketAddrV4,
        listener: std::net::SocketAddrV4,
        clock: spinnbed_core::host::SenderClock,
    ) -> HostSide {
        let side = self.host_side(local);
        if self.live_output.is_some() {
            side.with_listener(listener, clock)
        } else {
            side
        }
    }
}

/// The service of a run: its machines with the spec's policies.
pub fn build_service(spec: &RunSpec) -> Result<Service, RunError> {
    let mut service = spec.policy().empty_service();
    for (m, _) in &spec.machines {
        service
            .add_machine(Instant::ZERO, m.clone())
            .map_err(|error| RunError::Machine {
                machine: m.name().to_string(),
                error,
            })?;
    }
    Ok(service)
}

/// The service's policies: what a journal records so that it replays under the same ones.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServicePolicy {
    /// Packing policy.
    pub packer: PackerChoice,
    /// Queue discipline.
    pub queue: QueueChoice,
    /// Delay before freed boards are reused, in µs.
    pub seconds_before_free_us: u64,
    /// Destroyed jobs remembered.
    pub max_retired_jobs: usize,
    /// Peripheral links disabled at power-on.
    pub disable_peripheral_links: bool,
}

impl ServicePolicy {
    /// The policies of a scenario's runs (its `[policy]`).
    pub fn of_scenario(sc: &crate::scenario::Scenario) -> ServicePolicy {
        use crate::scenario::{PackerKind, QueueKind};
        let p = &sc.policy;
        ServicePolicy {
            packer: match p.packer {
                PackerKind::Spalloc => PackerChoice::Spalloc,
                PackerKind::Anywhere => PackerChoice::Anywhere {
                    exact_boards: p.exact_boards,
                },
            },
            queue: match p.queue {
                QueueKind::Fifo => QueueChoice::Fifo,
                QueueKind::Easy => QueueChoice::Easy {
                    depth: p.backfill_depth as usize,
                },
            },
            seconds_before_free_us: p.seconds_before_free.as_micros(),
            max_retired_jobs: usize::try_from(p.max_retired_jobs).unwrap_or(usize::MAX),
            disable_peripheral_links: p.disable_peripheral_links,
        }
    }

    /// How this policy differs from `other`, field by field ("queue fifo, not easy (depth
    /// 64)"), in a fixed order; empty if they are the same.
    pub fn differences(&self, other: &ServicePolicy) -> Vec<String> {
        let queue = |q: QueueChoice| match q {
            QueueChoice::Fifo => "fifo".to_string(),
            QueueChoice::Easy { depth } => format!("easy (depth {depth})"),
        };
        let mut out = Vec::new();
        if self.packer != other.packer {
            out.push(format!("packer {}, not {}", self.packer.name(), other.packer.name()));
        }
        if self.queue != other.queue {
            out.push(format!("queue {}, not {}", queue(self.queue), queue(other.queue)));
        }
        if self.seconds_before_free_us != other.seconds_before_free_us {
            out.push(format!(
                "seconds_before_free {}, not {}",
                crate::quantity::units::format_duration(Duration(self.seconds_before_free_us)),
                crate::quantity::units::format_duration(Duration(other.seconds_before_free_us))
            ));
        }
        if self.max_retired_jobs != other.max_retired_jobs {
            out.push(format!(
                "max_retired_jobs {}, not {}",
                self.max_retired_jobs, other.max_retired_jobs
            ));
        }
        if self.disable_peripheral_links != other.disable_peripheral_links {
            out.push(format!(
                "disable_peripheral_links {}, not {}",
                self.disable_peripheral_links, other.disable_peripheral_links
            ));
        }
        out
    }

    /// The service settings.
    pub fn config(&self) -> ServiceConfig {
        ServiceConfig {
            seconds_before_free: Duration(self.seconds_before_free_us),
            max_retired_jobs: self.max_retired_jobs,
            disable_peripheral_links: self.disable_peripheral_links,
        }
    }

    /// A service with these policies and no machines.
    pub fn empty_service(&self) -> Service {
        let packer = self.packer;
        Service::with_policies(
            self.config(),
            Box::new(move |m: &Machine| packer.build(m)),
            self.queue.build(),
        )
    }

    /// As text (JSON), for a journal's header.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("plain data serialises")
    }

    /// Reads [`ServicePolicy::to_text`] back.
    pub fn from_text(text: &str) -> Result<ServicePolicy, String> {
        serde_json::from_str(text).map_err(|e| format!("unreadable service policy {text:?}: {e}"))
    }
}

impl RunSpec {
    /// The service's policies.
    pub fn policy(&self) -> ServicePolicy {
        ServicePolicy {
            packer: self.packer,
            queue: self.queue,
            seconds_before_free_us: self.service.seconds_before_free.as_micros(),
            max_retired_jobs: self.service.max_retired_jobs,
            disable_peripheral_links: self.service.disable_peripheral_links,
        }
    }

    /// When jobs stop arriving, when the run stops, how often it samples.
    pub fn limits(&self) -> Limits {
        Limits {
            horizon: Instant::ZERO + self.horizon,
            stop: Instant::ZERO + self.horizon + self.drain_limit,
            sample_period: self.sample_period,
        }
    }

    /// The facts of the run the outputs need.
    pub fn meta(&self) -> RunMeta {
        RunMeta {
            scenario: self.name.clone(),
            seed: self.seed,
            packer: self.packer.name().to_string(),
            queue: self.queue.name().to_string(),
            seconds_before_free: self.service.seconds_before_free,
            horizon: Instant::ZERO + self.horizon,
            faults: self.faults.clone(),
        }
    }
}

fn run_world<H: crate::hardware::Hardware>(
    spec: &RunSpec,
    service: Service,
    hw: H,
    limits: Limits,
    progress: impl FnMut(Instant),
) -> RunResult {
    World::new(service, hw, spec.jobs.clone(), limits)
        .with_users(spec.users)
        .with_live_output(spec.live_output, spec.seed)
        .with_faults(spec.faults.clone())
        .run(progress)
}

/// Wall-clock figures of a run (`perf.json`; not deterministic).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Perf {
    /// Wall time of the simulation loop.
    pub wall_s: f64,
    /// Events handled.
    pub events: u64,
    /// Events per wall second.
    pub events_per_s: f64,
    /// Simulated seconds.
    pub simulated_s: f64,
    /// Simulated days per wall second.
    pub sim_days_per_wall_s: f64,
    /// Packet-level runs: datagrams the network carried (host and machine, both ways).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datagrams: Option<u64>,
    /// Packet-level runs: datagrams carried per wall second (network, emulator and host side
    /// together).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datagrams_per_s: Option<f64>,
    /// Real-time runs: when the run started (Unix seconds, wall clock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_unix_s: Option<f64>,
    /// Real-time runs: the time compression (`--speed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
}

impl Perf {
    /// From a run and its wall time.
    pub fn new(r: &RunResult, wall: std::time::Duration) -> Perf {
        let w = wall.as_secs_f64().max(1e-9);
        let sim = r.end.as_micros() as f64 / 1e6;
        let datagrams = r.scp.and_then(|s| s.datagrams);
        Perf {
            datagrams,
            datagrams_per_s: datagrams.map(|d| (d as f64 / w).round()),
            wall_s: (w * 1000.0).round() / 1000.0,
            events: r.events,
            events_per_s: (r.events as f64 / w).round(),
            simulated_s: sim,
            sim_days_per_wall_s: ((sim / 86400.0 / w) * 1000.0).round() / 1000.0,
            started_unix_s: None,
            speed: None,
        }
    }
}

/// Whether `dir` holds an earlier run's output (its `summary.json` and `scenario.toml`), which a
/// new run may replace.
pub fn is_run_dir(dir: &Path) -> bool {
    dir.join("summary.json").is_file() && dir.join("scenario.toml").is_file()
}

/// Prepares a run's output directory before the run (so that an unwritable or foreign
/// `--out` fails at once): see [`spinnbed_outputs::dir::stage`]; an earlier run there may be
/// replaced, anything else is refused.
pub fn stage_outputs(dir: &Path) -> Result<Staged, OutdirError> {
    spinnbed_outputs::dir::stage(dir, is_run_dir)
}

/// Why a run's outputs could not be written. Nothing half-written is left behind.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Staging or swapping the directory failed.
    #[error(transparent)]
    Outdir(#[from] OutdirError),
    /// A CSV file could not be encoded.
    #[error("cannot write a CSV file: {0}")]
    Csv(#[from] csv::Error),
    /// One file could not be written.
    #[error("cannot write {}: {source}", file.display())]
    Write {
        /// The file.
        file: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Writes a run's output files into the staged directory and swaps it into place.
pub fn write_outputs(
    staged: Staged,
    result: &RunResult,
    meta: &RunMeta,
    resolved_scenario: &str,
    perf: &Perf,
) -> Result<outputs::Summary, OutputError> {
    let tmp = staged.path().to_path_buf();
    let write = |name: &str, bytes: &[u8]| {
        let file = tmp.join(name);
        std::fs::write(&file, bytes).map_err(|source| OutputError::Write { file, source })
    };
    let summary = outputs::summary(result, meta);
    write("summary.json", &outputs::json(&summary))?;
    write("jobs.csv", &outputs::jobs_csv(result)?)?;
    write("timeline.csv", &outputs::timeline_csv(result)?)?;
    write("boards.csv", &outputs::boards_csv(result)?)?;
    if result.scp_samples.iter().any(Option::is_some) {
        write("scp.csv", &outputs::scp_csv(result)?)?;
        write("scp_jobs.csv", &outputs::scp_jobs_csv(result)?)?;
    }
    if result.live.is_some() {
        write("live.csv", &outputs::live_csv(result)?)?;
    }
    write("scenario.toml", resolved_scenario.as_bytes())?;
    write("perf.json", &outputs::json(perf))?;
    staged.commit()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spinnbed_core::alloc::{Request, Shape};
    use spinnbed_core::geometry::MachineSpec;

    fn job(id: u64, t: u64, shape: Shape, run_s: u64, keepalive: Option<u64>, lapse: Option<u64>) -> WorkloadJob {
        WorkloadJob {
            id,
            submit: Instant::from_secs(t),
            owner: "u".into(),
            class: "c".into(),
            request: Request::new(shape),
            machine: None,
            tags: None,
            runtime: Duration::from_secs(run_s),
            estimate: Some(Duration::from_secs(run_s)),
            keepalive: keepalive.map(Duration::from_secs),
            lapse_after: lapse.map(Duration::from_secs),
            last_keepalive: None,
            cancel_after: None,
            data_in: 0,
            data_out: 0,
        }
    }

    pub(crate) fn spec(jobs: Vec<WorkloadJob>) -> RunSpec {
        RunSpec {
            name: "t".into(),
            seed: 1,
            horizon: Duration::from_secs(3600),
            sample_period: Duration::from_secs(60),
            drain_limit: Duration::from_secs(86400),
            machines: vec![(
                Machine::new(MachineSpec::new("m", 2, 2)).unwrap(),
                MachineTiming {
                    power_off: Duration::from_secs(1),
                    ..MachineTiming::default()
                },
            )],
            service: ServiceConfig::default(),
            packer: PackerChoice::Spalloc,
            queue: QueueChoice::Fifo,
            jobs,
            hardware: HardwareChoice::FixedDelay,
            users: Default::default(),
            faults: Vec::new(),
            scp_policy: crate::scenario::ScpPolicy::Spinnman.into(),
            post_power_on_delay: Duration::from_secs(5),
            recorded_bmp: Default::default(),
            live_output: None,
            transfers: Default::default(),
        }
    }

    #[test]
    fn jobs_run_complete_time_out_and_are_cancelled() {
        let jobs = vec![
            job(1, 0, Shape::Triads { w: 2, h: 2 }, 100, Some(60), None),
            job(2, 10, Shape::AnyBoard, 50, Some(60), None),
            job(3, 20, Shape::Triads { w: 3, h: 1 }, 50, None, None),
            job(4, 30, Shape::AnyBoard, 1000, Some(60), Some(200)),
        ];
        let (r, meta) = simulate(&spec(jobs), |_| {}).unwrap();
        let rec = |i: usize| &r.records[i];
        // Job 1 takes the whole machine: ready after the 5 s power-on and link writes.
        assert_eq!(rec(0).start, Some(Instant::ZERO));
        assert_eq!(rec(0).outcome, crate::world::Outcome::Completed);
        let ready = rec(0).ready.unwrap();
        assert!(ready >= Instant::from_secs(5), "{ready:?}");
        assert_eq!(rec(0).end, Some(ready + Duration::from_secs(100)));
        // Job 2 waits for job 1's boards: destroy, 1 s power-off, 30 s before free.
        assert_eq!(rec(1).start, Some(rec(0).end.unwrap() + Duration::from_secs(31)));
        assert_eq!(rec(2).outcome, crate::world::Outcome::Cancelled);
        assert_eq!(rec(2).reason, "Cancelled: No suitable machines available.");
        // Job 4's client dies 200 s after submission (t = 230): its last keepalive went out at
        // t = 210 (every 30 s), so the job times out just after 210 + 60 s.
        assert_eq!(rec(3).outcome, crate::world::Outcome::TimedOut);
        assert_eq!(rec(3).end, Some(Instant::from_secs(270) + Duration(1)));
        let s = outputs::summary(&r, &meta);
        assert_eq!((s.completed, s.cancelled, s.timed_out), (2, 1, 1));
        assert!(s.utilisation > 0.0 && s.utilisation <= 1.0);
        let tl = String::from_utf8(outputs::timeline_csv(&r).unwrap()).unwrap();
        assert!(tl.lines().count() > 3);
        let jobs = String::from_utf8(outputs::jobs_csv(&r).unwrap()).unwrap();
        assert!(jobs.contains("timed_out"));
    }
}
