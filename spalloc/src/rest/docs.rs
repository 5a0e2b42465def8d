//! The JSON documents of the REST API, in the Java service's shapes: kebab-case keys, keys
//! whose value is unknown left out, absolute references.

use super::text::{format_iso_duration, format_iso_time};
use super::urls::Urls;
use crate::describe::{java_direction, xyz};
use serde::Serialize;
use spinnbed_core::alloc::Shape;
use spinnbed_core::geometry::{Board, Link, Machine, WhereIs, board_down_link};
use spinnbed_core::sched::JobId;
use spinnbed_core::service::{JobMachineInfo, JobState, JobSummary, RetiredJob};
use spinnbed_core::time::{Duration, Instant};
use std::collections::BTreeSet;

/// The Java name of a job state.
pub fn state_name(s: JobState) -> &'static str {
    match s {
        JobState::Unknown => "UNKNOWN",
        JobState::Queued => "QUEUED",
        JobState::Power => "POWER",
        JobState::Ready => "READY",
        JobState::Destroyed => "DESTROYED",
    }
}

/// `version` of the root document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Version {
    pub major_version: u32,
    pub minor_version: u32,
    pub revision: u32,
}

/// `GET srv/spalloc/`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ServiceDescription {
    pub version: Version,
    pub jobs_ref: String,
    pub machines_ref: String,
    pub csrf_header: String,
    pub csrf_token: String,
}

/// One end of a board: its logical and physical coordinates and address, as known.
#[derive(Debug, Serialize)]
pub struct BoardCoords {
    pub x: u16,
    pub y: u16,
    pub z: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cabinet: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub board: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

impl BoardCoords {
    fn of(m: &Machine, b: Board) -> BoardCoords {
        let p = m.location(b);
        BoardCoords {
            x: b.x,
            y: b.y,
            z: b.z,
            cabinet: p.map(|p| p.cabinet),
            frame: p.map(|p| p.frame),
            board: p.map(|p| p.board),
            address: m.board_ip(b).map(|ip| ip.to_string()),
        }
    }
}

/// One end of a dead link.
#[derive(Debug, Serialize)]
pub struct LinkEnd {
    pub board: BoardCoords,
    pub direction: &'static str,
}

/// A machine's dead boards.
pub fn dead_boards(m: &Machine) -> Vec<BoardCoords> {
    m.dead_boards().iter().map(|b| BoardCoords::of(m, *b)).collect()
}

/// A machine's dead links, each once as the pair of its ends (the board and the direction
/// the link leaves it in, then the neighbour and the opposite direction), in board order.
pub fn dead_links(m: &Machine) -> Vec<[LinkEnd; 2]> {
    let mut seen: BTreeSet<((Board, Link), (Board, Link))> = BTreeSet::new();
    let mut out = Vec::new();
    for &(b, l) in m.dead_links() {
        let (n, _) = board_down_link(b, l, m.width(), m.height());
        let (a, z) = ((b, l), (n, l.opposite()));
        if !seen.insert((a.min(z), a.max(z))) {
            continue;
        }
        out.push([
            LinkEnd {
                board: BoardCoords::of(m, b),
                direction: java_direction(l),
            },
            LinkEnd {
                board: BoardCoords::of(m, n),
                direction: java_direction(l.opposite()),
            },
        ]);
    }
    out
}

/// One machine of `GET machines`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct BriefMachine {
    pub name: String,
    pub tags: Vec<String>,
    pub uri: String,
    pub width: u16,
    pub height: u16,
    pub dead_boards: Vec<BoardCoords>,
    pub dead_links: Vec<[LinkEnd; 2]>,
}

impl BriefMachine {
    /// A machine as the machine list shows it.
    pub fn of(m: &Machine, urls: &Urls) -> BriefMachine {
        BriefMachine {
            name: m.name().to_string(),
            tags: m.tags().to_vec(),
            uri: urls.machine(m.name()),
            width: m.width(),
            height: m.height(),
            dead_boards: dead_boards(m),
            dead_links: dead_links(m),
        }
    }
}

/// `GET machines`.
#[derive(Debug, Serialize)]
pub struct Machines {
    pub machines: Vec<BriefMachine>,
}

/// `GET machines/{name}` (Java's `MachineResponse`: its lists are `down-boards` and
/// `down-links`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct MachineDoc {
    pub name: String,
    pub tags: Vec<String>,
    pub width: u16,
    pub height: u16,
    pub down_boards: Vec<BoardCoords>,
    pub down_links: Vec<[LinkEnd; 2]>,
    pub lookup_by_physical_board: String,
    pub lookup_by_logical_board: String,
    pub lookup_by_chip: String,
    pub lookup_by_address: String,
}

impl MachineDoc {
    /// One machine with its look-up references.
    pub fn of(m: &Machine, urls: &Urls) -> MachineDoc {
        let base = urls.machine(m.name());
        MachineDoc {
            name: m.name().to_string(),
            tags: m.tags().to_vec(),
            width: m.width(),
            height: m.height(),
            down_boards: dead_boards(m),
            down_links: dead_links(m),
            lookup_by_physical_board: format!("{base}/physical-board"),
            lookup_by_logical_board: format!("{base}/logical-board"),
            lookup_by_chip: format!("{base}/chip"),
            lookup_by_address: format!("{base}/board-ip"),
        }
    }
}

/// `{width, height}` of a request.
#[derive(Debug, Serialize)]
pub struct Dimensions {
    pub width: u32,
    pub height: u32,
}

/// `{x, y, z}` of a request.
#[derive(Debug, Serialize)]
pub struct TriadBoard {
    pub x: u16,
    pub y: u16,
    pub z: u8,
}

/// `original-request`: the job's request as a create-job body would ask for it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct OriginalRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_boards: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<Dimensions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub board: Option<TriadBoard>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_dead_boards: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalive_interval: Option<String>,
}

impl OriginalRequest {
    fn of(
        shape: Shape,
        max_dead_boards: Option<u32>,
        machine: Option<&str>,
        tags: Option<&[String]>,
        keepalive: Option<Duration>,
    ) -> OriginalRequest {
        let (num_boards, dimensions, board) = match shape {
            Shape::AnyBoard => (Some(1), None, None),
            Shape::Boards { n, .. } => (Some(n), None, None),
            Shape::Triads { w, h } => (None, Some(Dimensions { width: w, height: h }), None),
            Shape::TriadsAt { root, w, h } => (
                None,
                Some(Dimensions { width: w, height: h }),
                Some(TriadBoard {
                    x: root.x,
                    y: root.y,
                    z: root.z,
                }),
            ),
            Shape::Board { board } => (
                None,
                None,
                Some(TriadBoard {
                    x: board.x,
                    y: board.y,
                    z: board.z,
                }),
            ),
        };
        OriginalRequest {
            num_boards,
            dimensions,
            board,
            machine_name: machine.map(str::to_string),
            tags: tags.map(<[String]>::to_vec),
            max_dead_boards,
            keepalive_interval: keepalive.map(format_iso_duration),
        }
    }
}

/// `GET jobs/{id}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct JobStateDoc {
    pub state: &'static str,
    pub owner: String,
    pub start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalive_host: Option<String>,
    pub keepalive_ref: String,
    pub machine_ref: String,
    pub chip_ref: String,
    pub power_ref: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_ref: Option<String>,
    pub original_request: OriginalRequest,
}

impl JobStateDoc {
    /// A live job. `keep-alive-time` is when it was last kept alive (its deadline less its
    /// keepalive period); `proxy-ref` only while it has boards (POWER or READY).
    pub fn live(j: &JobSummary, urls: &Urls) -> JobStateDoc {
        let id = j.job_id;
        let last_keepalive = match (j.keepalive_until, j.keepalive) {
            (Some(u), Some(k)) if u < Instant::MAX => Some(Instant(u.as_micros().saturating_sub(k.as_micros()))),
            _ => None,
        };
        JobStateDoc {
            state: state_name(j.state),
            owner: j.owner.clone(),
            start_time: format_iso_time(j.start_time),
            finish_time: None,
            reason: None,
            keep_alive_time: last_keepalive.map(format_iso_time),
            keepalive_host: j.keepalive_host.clone(),
            keepalive_ref: urls.keepalive(id),
            machine_ref: urls.job_machine(id),
            chip_ref: urls.chip(id),
            power_ref: urls.power(id),
            proxy_ref: matches!(j.state, JobState::Power | JobState::Ready).then(|| urls.proxy(id)),
            original_request: OriginalRequest::of(
                j.request.shape,
                j.request.max_dead_boards,
                j.machine.as_deref(),
                j.tags.as_deref(),
                j.keepalive,
            ),
        }
    }

    /// A destroyed job: its reason (as given, without the v1 "Cancelled: " of a job that was
    /// still queued; left out if none was given) and finish time, no keepalive or proxy.
    pub fn retired(j: &RetiredJob, urls: &Urls) -> JobStateDoc {
        let id = j.job_id;
        let reason = j.end.reason.to_string();
        JobStateDoc {
            state: state_name(JobState::Destroyed),
            owner: j.owner.clone(),
            start_time: format_iso_time(j.start_time),
            finish_time: Some(format_iso_time(j.finish_time)),
            reason: (!reason.is_empty()).then_some(reason),
            keep_alive_time: None,
            keepalive_host: None,
            keepalive_ref: urls.keepalive(id),
            machine_ref: urls.job_machine(id),
            chip_ref: urls.chip(id),
            power_ref: urls.power(id),
            proxy_ref: None,
            original_request: OriginalRequest::of(
                j.request.shape,
                j.request.max_dead_boards,
                j.machine.as_deref(),
                j.tags.as_deref(),
                j.keepalive,
            ),
        }
    }
}

/// `POST jobs` → 201.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Created {
    pub job_id: u64,
    pub job_ref: String,
}

/// `GET jobs`.
#[derive(Debug, Serialize)]
pub struct JobList {
    pub jobs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `GET jobs/{id}/machine`: the allocation, with width and height in triads (the boards'
/// bounding box) and depth 1 for a single board, else 3.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SubMachine {
    pub width: u32,
    pub height: u32,
    pub depth: u32,
    pub machine_name: String,
    pub connections: Vec<((u32, u32), String)>,
    pub boards: Vec<(u16, u16, u8)>,
    pub power: String,
    pub machine_ref: String,
}

impl SubMachine {
    /// A job's allocation as the service describes it.
    pub fn of(id: JobId, info: &JobMachineInfo, urls: &Urls) -> SubMachine {
        let span = |f: fn(&Board) -> u16| {
            let lo = info.boards.iter().map(f).min().unwrap_or(0);
            let hi = info.boards.iter().map(f).max().unwrap_or(0);
            u32::from(hi - lo) + 1
        };
        SubMachine {
            width: span(|b| b.x),
            height: span(|b| b.y),
            depth: if info.boards.len() == 1 { 1 } else { 3 },
            machine_name: info.machine_name.clone(),
            connections: info
                .connections
                .iter()
                .map(|(c, ip)| ((c.x, c.y), ip.to_string()))
                .collect(),
            boards: info.boards.iter().map(xyz).collect(),
            power: urls.power(id),
            machine_ref: urls.machine(&info.machine_name),
        }
    }
}

/// `{"power": "ON"|"OFF"}`.
#[derive(Debug, Serialize)]
pub struct Power {
    pub power: &'static str,
}

/// The answer to a where-is look-up. The job's keys are left out when no job holds the board
/// or the caller may not see the job that does.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct WhereIsDoc {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_chip: Option<(u32, u32)>,
    pub chip: (u32, u32),
    pub logical_board_coordinates: (u16, u16, u8),
    pub machine: String,
    pub machine_ref: String,
    pub board_chip: (u32, u32),
    pub physical_board_coordinates: (u16, u16, u16),
}

impl WhereIsDoc {
    /// `w` with its job shown only if `show_job`.
    pub fn of(w: &WhereIs, show_job: bool, urls: &Urls) -> WhereIsDoc {
        let job = w.job_id.filter(|_| show_job);
        WhereIsDoc {
            job_id: job,
            job_ref: job.map(|j| urls.job(JobId(j))),
            job_chip: job.and(w.job_chip).map(|c| (c.x, c.y)),
            chip: (w.chip.x, w.chip.y),
            logical_board_coordinates: xyz(&w.logical),
            machine: w.machine.clone(),
            machine_ref: urls.machine(&w.machine),
            board_chip: (w.board_chip.x, w.board_chip.y),
            physical_board_coordinates: (w.physical.cabinet, w.physical.frame, w.physical.board),
        }
    }
}
