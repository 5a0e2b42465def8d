//! The resolved scenario as TOML: the resolved [`Scenario`] converted back to the structures
//! the file is read with (module `raw`), every key filled in, and serialised by `toml`. Keys
//! come in a fixed order (the structures' field order; toml writes a table's values before its
//! sub-tables), and every value is in a form that reads back to exactly the same value.
//!
//! Two keys are written only when they are not their defaults, so that the resolved copies of
//! scenarios without them are byte for byte what they were before the keys existed:
//! `[workload] load_scale` (1) and `[[machine]] random_dead_boards` (0). The latter is kept as
//! a count (read back under the same seed it chooses the same boards, and `--seed` chooses
//! again), with a comment above it naming the boards this seed chose.

use super::raw::*;
use super::*;
use crate::quantity::dist::{ByteSize, NoneOr, Q};
use crate::workload::swf::SwfEstimate;
use crate::workload::synthetic::{Arrivals, ClassShape, JobClass};
use crate::workload::trace::TraceEstimate;
use spinnbed_core::geometry::{Addressing, Layout};

/// The first line of every resolved scenario.
const HEADER: &str = "# Resolved scenario (every default written out); read back, it gives the same run.";

pub fn scenario(sc: &Scenario) -> String {
    // Every value is a string, a bool, a finite number, an array or a table with string keys
    // (the seed above i64::MAX is written as a string), so serialisation cannot fail.
    let body = toml::to_string(&to_raw(sc)).expect("a resolved scenario serialises");
    format!("{HEADER}\n\n{}", random_dead_comments(sc, body))
}

/// Above each `random_dead_boards = N`, a comment naming the boards the seed chose (the key
/// stays: read back under the same seed, it chooses them again).
fn random_dead_comments(sc: &Scenario, body: String) -> String {
    let mut notes: Vec<(usize, String)> = Vec::new();
    let loc = super::locate::Locator::new(&body);
    for (i, m) in sc.machines.iter().enumerate() {
        let key = format!("machine[{i}].random_dead_boards");
        if m.random_dead_boards == 0 || !loc.has(&key) {
            continue;
        }
        let Some(line) = loc.line(&key) else {
            continue;
        };
        let boards: Vec<String> = m
            .random_dead
            .iter()
            .map(|b| format!("[{}, {}, {}]", b.x, b.y, b.z))
            .collect();
        notes.push((
            line,
            format!(
                "# random_dead_boards under seed {}: [{}]\n",
                sc.run.seed,
                boards.join(", ")
            ),
        ));
    }
    if notes.is_empty() {
        return body;
    }
    let mut out = String::with_capacity(body.len() + notes.iter().map(|(_, n)| n.len()).sum::<usize>());
    for (k, l) in body.split_inclusive('\n').enumerate() {
        if let Some((_, note)) = notes.iter().find(|(line, _)| *line == k + 1) {
            out.push_str(note);
        }
        out.push_str(l);
    }
    out
}

fn q(d: Duration) -> Q<Duration> {
    Q(d)
}

fn int<T: TryInto<i64>>(v: T) -> i64 {
    // Every integer of a resolved scenario was read from a TOML integer (an i64).
    v.try_into().unwrap_or(i64::MAX)
}

fn board(b: Board) -> Tuple<(i64, i64, i64)> {
    Tuple((int(b.x), int(b.y), int(b.z)))
}

fn frame(f: FrameId) -> Tuple<(i64, i64)> {
    Tuple((int(f.cabinet), int(f.frame)))
}

fn preset(p: ScpPolicy) -> RawScp {
    match p {
        ScpPolicy::Spinnman => RawScp::Spinnman,
        ScpPolicy::SpinnmanLegacy => RawScp::SpinnmanLegacy,
        ScpPolicy::Rig => RawScp::Rig,
        ScpPolicy::Adaptive => RawScp::Adaptive,
    }
}

/// A preset under its own name and unpaced as its name; anything else as a table with every
/// pipeline parameter written.
fn scp(c: &ScpChoice) -> RawScpChoice {
    if let Some(p) = c.as_preset() {
        return RawScpChoice::Named(preset(p));
    }
    let same_as = ScpPolicy::ALL.into_iter().find(|p| p.policy() == c.policy);
    let pipeline = match (same_as, c.policy) {
        (None, spinnbed_core::host::Policy::Spinnman(p)) => Some(RawPipeline {
            from: None,
            n_channels: Some(int(p.n_channels)),
            intermediate_channel_waits: Some(int(p.intermediate_channel_waits)),
            n_retries: Some(int(p.n_retries)),
            packet_timeout: Some(q(p.packet_timeout)),
            retry_pause: Some(q(p.retry_code_pause)),
            retry_codes: Some(p.retry_codes.iter().map(|rc| rc.name().to_string()).collect()),
        }),
        _ => None,
    };
    RawScpChoice::Spec(RawScpSpec {
        name: Some(c.name.clone()),
        policy: if pipeline.is_some() { None } else { same_as.map(preset) },
        pipeline,
        pacing: c.pacing.as_ref().map(pacing),
    })
}

fn pacing(b: &spinnbed_core::host::TokenBucket) -> RawPacing {
    RawPacing {
        tokens: int(b.tokens),
        fill_rate: int(b.fill_rate),
        per_packet: Some(match b.charge {
            spinnbed_core::host::Charge::Flat(n) => RawCharge::Flat(i64::from(n)),
            spinnbed_core::host::Charge::Bytes => RawCharge::Bytes,
        }),
    }
}

fn pipeline_grid(g: &PipelineGrid) -> RawPipelineGrid {
    RawPipelineGrid {
        from: Some(preset(g.from)),
        n_channels: g.n_channels.as_ref().map(|v| v.iter().map(|c| int(*c)).collect()),
        intermediate_channel_waits: g
            .intermediate_channel_waits
            .as_ref()
            .map(|v| v.iter().map(|c| int(*c)).collect()),
        n_retries: g.n_retries.as_ref().map(|v| v.iter().map(|c| int(*c)).collect()),
        packet_timeout: g.packet_timeout.as_ref().map(|v| v.iter().map(|t| q(*t)).collect()),
        retry_pause: g.retry_pause.as_ref().map(|v| v.iter().map(|t| q(*t)).collect()),
        pacing: g.pacing.as_ref().map(|v| {
            v.iter()
                .map(|p| match p {
                    Some(b) => RawPacingChoice::Bucket(pacing(b)),
                    None => RawPacingChoice::None,
                })
                .collect()
        }),
    }
}

fn study_network(n: &StudyNetwork) -> RawStudyNetwork {
    RawStudyNetwork {
        name: n.name.clone(),
        jitter: n.jitter.clone(),
        reorder: Some(n.reorder),
        duplicate: Some(n.duplicate),
        burst: n.burst.as_ref().map(burst),
        bandwidth_mbps: n.bandwidth_mbps,
    }
}

fn to_raw(sc: &Scenario) -> RawScenario {
    let (workload, study) = match &sc.experiment {
        Experiment::Workload(w) => (Some(workload(w)), None),
        Experiment::Study(st) => (None, Some(study(st))),
    };
    RawScenario {
        run: run(&sc.run),
        machine: sc.machines.iter().map(machine).collect(),
        workload,
        study,
        policy: Some(policy(&sc.policy)),
        host: Some(host(&sc.host)),
        network: Some(network(&sc.network)),
        faults: sc.faults.iter().map(fault).collect(),
    }
}

fn run(r: &RunConfig) -> RawRun {
    RawRun {
        name: r.name.clone(),
        seed: Some(Seed(r.seed)),
        horizon: q(r.horizon),
        sample_period: Some(q(r.sample_period)),
        drain_limit: Some(q(r.drain_limit)),
        start_weekday: Some(match r.start_weekday {
            Weekday::Monday => RawWeekday::Monday,
            Weekday::Tuesday => RawWeekday::Tuesday,
            Weekday::Wednesday => RawWeekday::Wednesday,
            Weekday::Thursday => RawWeekday::Thursday,
            Weekday::Friday => RawWeekday::Friday,
            Weekday::Saturday => RawWeekday::Saturday,
            Weekday::Sunday => RawWeekday::Sunday,
        }),
        start_hour: Some(int(r.start_hour)),
    }
}

fn machine(m: &MachineConfig) -> RawMachine {
    let sp = &m.spec;
    let layout = match &sp.layout {
        Layout::Standard => RawLayout::Standard,
        Layout::Explicit(list) => RawLayout::Table(RawLayoutTable {
            spinner_csv: None,
            boards: Some(
                list.iter()
                    .map(|(b, p)| Tuple((int(b.x), int(b.y), int(b.z), int(p.cabinet), int(p.frame), int(p.board))))
                    .collect(),
            ),
        }),
    };
    let ip = match &sp.addressing {
        Addressing::Scheme(ip) => RawIp {
            base: Some(ip.base),
            cabinet_stride: Some(ip.cabinet_stride),
            frame_stride: Some(ip.frame_stride),
            board_stride: Some(ip.board_stride),
            bmp_offset: Some(ip.bmp_offset),
            spinnaker_offset: Some(ip.spinnaker_offset),
            bmps: None,
            boards: None,
        },
        Addressing::Explicit { bmps, boards } => RawIp {
            base: None,
            cabinet_stride: None,
            frame_stride: None,
            board_stride: None,
            bmp_offset: None,
            spinnaker_offset: None,
            bmps: Some(
                bmps.iter()
                    .map(|(f, ip)| Tuple((int(f.cabinet), int(f.frame), *ip)))
                    .collect(),
            ),
            boards: Some(
                boards
                    .iter()
                    .map(|(b, ip)| Tuple((int(b.x), int(b.y), int(b.z), *ip)))
                    .collect(),
            ),
        },
    };
    let t = &m.timing;
    RawMachine {
        name: sp.name.clone(),
        tags: Some(sp.tags.clone()),
        width: int(sp.width),
        height: int(sp.height),
        dead_boards: sp.dead_boards.iter().map(|b| board(*b)).collect(),
        random_dead_boards: (m.random_dead_boards > 0).then(|| int(m.random_dead_boards)),
        dead_links: sp
            .dead_links
            .iter()
            .map(|(b, l)| Tuple((int(b.x), int(b.y), int(b.z), l.name().to_string())))
            .collect(),
        layout: Some(layout),
        ip: Some(ip),
        timing: Some(RawTiming {
            power_on: Some(q(t.power_on)),
            power_off: Some(q(t.power_off)),
            link_write: Some(q(t.link_write)),
            boot: Some(q(t.boot)),
            bmp_retry_delay: Some(q(t.bmp_retry_delay)),
            bmp_tries: Some(int(t.bmp_tries)),
        }),
        scamp: Some(RawScamp {
            enabled: Some(m.scamp.enabled),
            service_base: Some(q(m.scamp.service_base)),
            service_read_256: Some(q(m.scamp.service_read_256)),
            service_write_256: Some(q(m.scamp.service_write_256)),
            service_fill_per_kib: Some(q(m.scamp.service_fill_per_kib)),
            transient_tags: Some(int(m.scamp.transient_tags)),
            msg_buffers: Some(int(m.scamp.msg_buffers)),
            p2p_per_packet: Some(q(m.scamp.p2p_per_packet)),
            p2p_hop: Some(q(m.scamp.p2p_hop)),
            bmp_service: Some(q(m.scamp.bmp_service)),
            bmp_can_frame: Some(q(m.scamp.bmp_can_frame)),
            bmp_transient_tags: Some(int(m.scamp.bmp_transient_tags)),
            bmp_rx_buffers: Some(int(m.scamp.bmp_rx_buffers)),
        }),
    }
}

fn workload(w: &WorkloadConfig) -> RawWorkload {
    match w {
        WorkloadConfig::Synthetic(sp) => {
            let (jobs, rate_per_hour) = match sp.arrivals {
                Arrivals::Jobs(n) => (Some(int(n)), None),
                Arrivals::RatePerHour(r) => (None, Some(r)),
            };
            RawWorkload {
                source: Some(RawSource::Synthetic),
                load_scale: load_scale(sp.load_scale),
                jobs,
                rate_per_hour,
                daily: Some(sp.daily.to_vec()),
                weekly: Some(sp.weekly.to_vec()),
                owners: Some(int(sp.owners)),
                keepalive: Some(NoneOr(sp.keepalive)),
                lapse_probability: Some(sp.lapse_probability),
                lapse_after: Some(sp.lapse_after.clone()),
                data_in: Some(sp.data_in.clone()),
                data_out: Some(sp.data_out.clone()),
                class: Some(sp.classes.iter().map(class).collect()),
                ..RawWorkload::default()
            }
        }
        WorkloadConfig::Trace(t) => RawWorkload {
            source: Some(RawSource::Trace),
            load_scale: load_scale(t.load_scale),
            path: Some(t.path.display().to_string()),
            time_scale: Some(t.time_scale),
            keepalive: Some(NoneOr(t.keepalive)),
            owner: Some(t.owner.clone()),
            estimate: Some(
                match t.estimate {
                    TraceEstimate::None => "none",
                    TraceEstimate::Actual => "actual",
                }
                .to_string(),
            ),
            data_in: Some(t.data_in.clone()),
            data_out: Some(t.data_out.clone()),
            ..RawWorkload::default()
        },
        WorkloadConfig::Swf(w) => RawWorkload {
            source: Some(RawSource::Swf),
            load_scale: load_scale(w.load_scale),
            path: Some(w.path.display().to_string()),
            procs_per_board: Some(AutoOr(w.procs_per_board)),
            time_scale: Some(w.time_scale),
            skip: Some(q(w.skip)),
            limit: w.limit.map(int),
            min_ratio: Some(w.min_ratio),
            max_dead_boards: Some(NoneOr(w.max_dead_boards)),
            estimate: Some(
                match w.estimate {
                    SwfEstimate::Requested => "requested",
                    SwfEstimate::Actual => "actual",
                    SwfEstimate::None => "none",
                }
                .to_string(),
            ),
            keepalive: Some(NoneOr(w.keepalive)),
            data_in: Some(w.data_in.clone()),
            data_out: Some(w.data_out.clone()),
            ..RawWorkload::default()
        },
        WorkloadConfig::SpallocLog(l) => RawWorkload {
            source: Some(RawSource::SpallocLog),
            load_scale: load_scale(l.load_scale),
            path: Some(l.path.display().to_string()),
            time_scale: Some(l.time_scale),
            limit: l.limit.map(int),
            estimate: Some(recorded_estimate(l.estimate)),
            // Absent: each job keeps the keepalive it asked for.
            keepalive: l.keepalive.map(NoneOr),
            data_in: Some(l.data_in.clone()),
            data_out: Some(l.data_out.clone()),
            ..RawWorkload::default()
        },
        WorkloadConfig::Journal(j) => RawWorkload {
            source: Some(RawSource::Journal),
            load_scale: load_scale(j.load_scale),
            path: Some(j.path.display().to_string()),
            time_scale: Some(j.time_scale),
            limit: j.limit.map(int),
            estimate: Some(recorded_estimate(j.estimate)),
            keepalive: j.keepalive.map(NoneOr),
            include_simulated: Some(j.include_simulated),
            data_in: Some(j.data_in.clone()),
            data_out: Some(j.data_out.clone()),
            ..RawWorkload::default()
        },
    }
}

/// `load_scale`, written only when it is not 1 (so resolved copies without it stay as they
/// were).
fn load_scale(v: f64) -> Option<f64> {
    (v != 1.0).then_some(v)
}

fn recorded_estimate(e: TraceEstimate) -> String {
    match e {
        TraceEstimate::None => "none",
        TraceEstimate::Actual => "actual",
    }
    .to_string()
}

fn class(c: &JobClass) -> RawClass {
    let mut raw = RawClass {
        name: c.name.clone(),
        weight: c.weight,
        kind: Some(match c.shape {
            ClassShape::Board => RawKind::Board,
            ClassShape::Boards { .. } => RawKind::Boards,
            ClassShape::Rect { .. } => RawKind::Rect,
            ClassShape::Specific { .. } => RawKind::Specific,
        }),
        boards: None,
        min_ratio: None,
        max_dead_boards: None,
        max_dead_links: None,
        require_torus: None,
        width: None,
        height: None,
        specific: None,
        duration: c.duration.clone(),
        estimate_factor: c.estimate_factor,
        estimate: c.estimate_factor.is_none().then(|| "none".to_string()),
        machine: c.machine.clone(),
        tags: c.tags.clone(),
    };
    // The request limits apply to boards and rect classes only.
    let limits = match &c.shape {
        ClassShape::Board => false,
        ClassShape::Boards { boards, min_ratio } => {
            raw.boards = Some(boards.clone());
            raw.min_ratio = Some(*min_ratio);
            true
        }
        ClassShape::Rect { width, height } => {
            raw.width = Some(width.clone());
            raw.height = Some(height.clone());
            true
        }
        ClassShape::Specific { boards } => {
            raw.specific = Some(boards.iter().map(|b| board(*b)).collect());
            false
        }
    };
    if limits {
        raw.max_dead_boards = Some(NoneOr(c.max_dead_boards));
        raw.max_dead_links = Some(NoneOr(c.max_dead_links));
        raw.require_torus = Some(c.require_torus);
    }
    raw
}

fn study(st: &StudyConfig) -> RawStudy {
    RawStudy {
        kind: RawStudyKind::ScpWindowing,
        policies: Some(st.policies.iter().map(scp).collect()),
        ops: Some(
            st.ops
                .iter()
                .map(|o| match o {
                    TransferOp::Read => RawOp::Read,
                    TransferOp::Write => RawOp::Write,
                })
                .collect(),
        ),
        losses: Some(st.losses.clone()),
        rtts: Some(st.rtts.iter().map(|r| q(*r)).collect()),
        bytes: Some(Q(ByteSize(st.bytes))),
        seeds: Some(int(st.seeds)),
        pipeline_grid: st.pipeline_grid.as_ref().map(pipeline_grid),
        network: st.networks.iter().map(study_network).collect(),
    }
}

fn policy(p: &PolicyConfig) -> RawPolicy {
    RawPolicy {
        packer: Some(match p.packer {
            PackerKind::Spalloc => RawPacker::Spalloc,
            PackerKind::Anywhere => RawPacker::Anywhere,
        }),
        exact_boards: Some(p.exact_boards),
        queue: Some(match p.queue {
            QueueKind::Fifo => RawQueue::Fifo,
            QueueKind::Easy => RawQueue::Easy,
        }),
        backfill_depth: Some(int(p.backfill_depth)),
        estimate: Some(match p.estimate {
            EstimateSource::Declared => RawPolicyEstimate::Declared,
            EstimateSource::Actual => RawPolicyEstimate::Actual,
        }),
        seconds_before_free: Some(q(p.seconds_before_free)),
        max_retired_jobs: Some(int(p.max_retired_jobs)),
        disable_peripheral_links: Some(p.disable_peripheral_links),
        avoid_failing_boards: Some(int(p.avoid_failing_boards)),
    }
}

fn host(h: &HostConfig) -> RawHost {
    RawHost {
        hardware: Some(match h.hardware {
            HardwareModel::FixedDelay => RawHardware::FixedDelay,
            HardwareModel::Emulator => RawHardware::Emulator,
        }),
        post_power_on_delay: Some(q(h.post_power_on_delay)),
        scp_policy: Some(scp(&h.scp_policy)),
        boot_users: Some(h.boot_users),
        boot_tries: Some(int(h.boot_tries)),
        // Written only when flow, so resolved copies of exact runs stay as they were.
        transfers: (h.transfers == TransferModel::Flow).then_some(RawTransfers::Flow),
        // Written only when set, so resolved copies without it stay as they were.
        live_output: h.live_output.map(|l| RawLiveOutput {
            fraction: Some(l.fraction),
            rate: Some(i64::from(l.rate)),
            keys_per_packet: Some(i64::from(l.keys_per_packet)),
            start: Some(match l.start {
                LiveStart::Running => RawLiveStart::Running,
                LiveStart::Booted => RawLiveStart::Booted,
            }),
            tag: Some(i64::from(l.tag)),
        }),
    }
}

fn burst(b: &BurstLoss) -> RawBurst {
    RawBurst {
        p_enter: b.p_enter,
        p_leave: b.p_leave,
        loss: b.loss,
    }
}

fn network(n: &NetworkConfig) -> RawNetwork {
    RawNetwork {
        latency: Some(n.latency.clone()),
        loss: Some(n.loss),
        burst: n.burst.as_ref().map(burst),
        duplicate: Some(n.duplicate),
        reorder: Some(n.reorder),
        bandwidth_mbps: Some(n.bandwidth_mbps),
        path: n
            .paths
            .iter()
            .map(|p| RawPath {
                machine: p.machine.clone(),
                to: Some(match p.to {
                    PathTo::All => RawPathTo::All,
                    PathTo::Bmps => RawPathTo::Bmps,
                    PathTo::Boards => RawPathTo::Boards,
                }),
                frames: p.frames.iter().map(|f| frame(*f)).collect(),
                boards: p.boards.iter().map(|b| board(*b)).collect(),
                latency: p.set.latency.clone(),
                loss: p.set.loss,
                burst: p.set.burst.as_ref().map(burst),
                duplicate: p.set.duplicate,
                reorder: p.set.reorder,
                bandwidth_mbps: p.set.bandwidth_mbps,
            })
            .collect(),
    }
}

fn fault(f: &FaultConfig) -> RawFault {
    let mut raw = RawFault {
        at: q(f.at),
        kind: match f.kind {
            FaultKind::BoardDies { .. } => RawFaultKind::BoardDies,
            FaultKind::LinkFails { .. } => RawFaultKind::LinkFails,
            FaultKind::BmpSilent { .. } => RawFaultKind::BmpSilent,
            FaultKind::LossBurst { .. } => RawFaultKind::LossBurst,
        },
        machine: None,
        board: None,
        link: None,
        frame: None,
        duration: f.duration.map(q),
        loss: None,
    };
    match &f.kind {
        FaultKind::BoardDies { machine, board: b } => {
            raw.machine = Some(machine.clone());
            raw.board = Some(board(*b));
        }
        FaultKind::LinkFails {
            machine,
            board: b,
            link,
        } => {
            raw.machine = Some(machine.clone());
            raw.board = Some(board(*b));
            raw.link = Some(link.name().to_string());
        }
        FaultKind::BmpSilent { machine, frame: fr } => {
            raw.machine = Some(machine.clone());
            raw.frame = Some(frame(*fr));
        }
        FaultKind::LossBurst { loss, machine } => {
            raw.machine = machine.clone();
            raw.loss = Some(*loss);
        }
    }
    raw
}
