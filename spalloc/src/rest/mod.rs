//! The new spalloc REST API (what spinnman 7.x's `SpallocClient` speaks), sans-IO: its
//! semantics over the [`Service`], without HTTP, TLS, sockets, a clock or randomness.
//!
//! The HTTP layer authenticates the request (a [`Caller`]), routes it to a [`RestCall`],
//! builds the [`Urls`] from the host and port the request came in on, and calls
//! [`RestApi::handle`] with the time (`now`, Unix µs in the live server) and the service. The
//! [`RestReply`] says what to answer: status, content type, body and `Location`; for memory,
//! router and proxy calls it names the boards the HTTP layer then talks to itself (SCP to a
//! board's Ethernet address, the websocket proxy's UDP channels).
//!
//! Ownership: a caller who is not an administrator sees and controls only jobs whose owner is
//! their login name; for anybody else's job every call answers exactly as for a job that does
//! not exist (404, the same body). Jobs made over the v1 protocol belong to the v1 `owner`
//! they named; jobs made here belong to the login name (or, for an administrator, to the
//! `owner` the request names) and are ordinary service jobs, listed by v1 `list_jobs`.
//!
//! Everything that changes the service goes through its public mutators (creation, keepalive,
//! destruction, power), so the journal records it. Reads do not touch the job, except where
//! the Java service also counts them as the client's sign of life (`machine`, `chip`, `power`).
//!
//! - [`create`]: the create-job body, checked and placed.
//! - [`text`]: query booleans, path normalisation, ISO-8601 durations and instants.
//! - [`urls`]: the absolute references.
//! - [`status`]: what the status pages for people show (machines with every board's job and
//!   power, jobs, one job), under the same ownership rule.

pub mod create;
mod docs;
pub mod status;
pub mod text;
pub mod urls;

pub use create::{BoardSpec, CreateJobRequest, Size};
pub use text::{format_iso_duration, format_iso_time, normalise_path, parse_bool, parse_int, parse_iso_duration};
pub use urls::Urls;

use docs::{
    BriefMachine, Created, JobList, JobStateDoc, MachineDoc, Machines, Power, ServiceDescription, SubMachine, Version,
    WhereIsDoc,
};
use serde::Serialize;
use spinnbed_core::geometry::{Chip, Physical, spinn5_chips};
use spinnbed_core::reason::DestroyReason;
use spinnbed_core::sched::JobId;
use spinnbed_core::service::{JobState, JobSummary, RetiredJob, Service, WhereIsQuery};
use spinnbed_core::time::{Duration, Instant};
use std::net::Ipv4Addr;

/// The logged-in user a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Login name: the owner of the jobs they make.
    pub user: String,
    /// Sees and controls every job, and may create jobs for another owner.
    pub admin: bool,
    /// The client's address (the job's keepalive host).
    pub host: Option<String>,
}

impl Caller {
    /// An ordinary user.
    pub fn user(user: impl Into<String>, host: Option<&str>) -> Caller {
        Caller {
            user: user.into(),
            admin: false,
            host: host.map(str::to_string),
        }
    }

    /// An administrator.
    pub fn admin(user: impl Into<String>, host: Option<&str>) -> Caller {
        Caller {
            admin: true,
            ..Caller::user(user, host)
        }
    }

    /// May this caller see a job of `owner`'s?
    pub fn sees(&self, owner: &str) -> bool {
        self.admin || self.user == owner
    }
}

/// Which board of a machine a where-is look-up names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineLookup {
    /// `logical-board?x&y&z`.
    Logical {
        /// Triad x.
        x: i64,
        /// Triad y.
        y: i64,
        /// Board in the triad.
        z: i64,
    },
    /// `physical-board?cabinet&frame&board`.
    Physical {
        /// Cabinet.
        cabinet: i64,
        /// Frame.
        frame: i64,
        /// Board.
        board: i64,
    },
    /// `chip?x&y` (machine chip coordinates, wrapped around the machine).
    Chip {
        /// Chip x.
        x: i64,
        /// Chip y.
        y: i64,
    },
    /// `board-ip?address`.
    BoardIp {
        /// The board's Ethernet address, as given.
        address: String,
    },
}

/// One REST operation, as the HTTP layer routed it (paths under `/spalloc/srv/spalloc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestCall {
    /// `GET /`: the service description, with the session's CSRF header name and token.
    Root {
        /// Header name (`X-CSRF-TOKEN`).
        csrf_header: String,
        /// The session's token.
        csrf_token: String,
    },
    /// `GET machines`.
    ListMachines,
    /// `GET machines/{name}` (the HTTP layer long-polls `wait=true` itself).
    GetMachine {
        /// Machine name.
        name: String,
    },
    /// `GET machines/{name}/logical-board|physical-board|chip|board-ip`.
    WhereIs {
        /// Machine name.
        machine: String,
        /// Which board.
        lookup: MachineLookup,
    },
    /// `GET jobs?deleted&start&limit` (the HTTP layer long-polls `wait=true` itself).
    ListJobs {
        /// Include destroyed jobs (those the service still remembers).
        deleted: bool,
        /// First entry (default 0).
        start: Option<i64>,
        /// Page size (default [`RestConfig::default_page`], at most [`RestConfig::max_page`]).
        limit: Option<i64>,
    },
    /// `POST jobs` with its JSON body.
    CreateJob {
        /// The body, unparsed.
        body: Vec<u8>,
    },
    /// `GET jobs/{id}` (the HTTP layer long-polls `wait=true` itself).
    GetJob {
        /// Job.
        id: JobId,
    },
    /// `PUT jobs/{id}/keepalive`.
    Keepalive {
        /// Job.
        id: JobId,
    },
    /// `DELETE jobs/{id}?reason`.
    DeleteJob {
        /// Job.
        id: JobId,
        /// Why (`unspecified` if not given, as in Java).
        reason: Option<String>,
    },
    /// `GET jobs/{id}/machine`.
    JobMachine {
        /// Job.
        id: JobId,
    },
    /// `GET jobs/{id}/chip?x&y`.
    JobChip {
        /// Job.
        id: JobId,
        /// Job-relative chip x.
        x: i64,
        /// Job-relative chip y.
        y: i64,
    },
    /// `GET jobs/{id}/machine/power`.
    GetPower {
        /// Job.
        id: JobId,
    },
    /// `POST jobs/{id}/machine/power` with `{"power": "ON"|"OFF"}`.
    SetPower {
        /// Job.
        id: JobId,
        /// The body, unparsed.
        body: Vec<u8>,
    },
    /// `GET|POST jobs/{id}/memory?x&y…`: where to send the SCP for job chip (x, y).
    MemoryTarget {
        /// Job.
        id: JobId,
        /// Job-relative chip x.
        x: i64,
        /// Job-relative chip y.
        y: i64,
    },
    /// `DELETE jobs/{id}/router`: every chip of the job, for the SCP that resets its router.
    RouterTargets {
        /// Job.
        id: JobId,
    },
    /// The websocket proxy's view of a job (`/spalloc/proxy/{id}`): its boards' Ethernet chips
    /// and addresses, while it has boards (POWER or READY).
    ProxyBoards {
        /// Job.
        id: JobId,
    },
    /// The status pages' machine list (`/spalloc/system/list_machines`, and the home page).
    StatusMachines,
    /// The status page of a machine (`/spalloc/system/machine_info/{name}`): every board with
    /// its job and power.
    StatusMachine {
        /// Machine name.
        name: String,
    },
    /// The status pages' job list (`/spalloc/system/list_jobs`).
    StatusJobs,
    /// The status page of a job (`/spalloc/system/job_info/{id}`).
    StatusJob {
        /// Job.
        id: JobId,
    },
}

/// Where to send SCP for one chip of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BoardTarget {
    /// The Ethernet address of the board holding the chip.
    pub ip: Ipv4Addr,
    /// The chip's x in the SCP header: job-relative, as the client booted the job's boards.
    pub chip_x: u32,
    /// The chip's y in the SCP header.
    pub chip_y: u32,
}

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestReply {
    /// 200, `application/json`.
    Json(String),
    /// 201, `application/json`, with a `Location` header.
    Created {
        /// Absolute URL of the new resource.
        location: String,
        /// The document.
        body: String,
    },
    /// 202, no body.
    Accepted,
    /// 204, no body.
    NoContent,
    /// 200, `text/plain` (keepalive's `ok`).
    Text(String),
    /// 400, `text/plain`: what is wrong with the request.
    BadRequest(String),
    /// 404, `text/plain`.
    NotFound(String),
    /// 503, `text/plain`: the job is not in a state where this is possible.
    Unavailable(String),
    /// For [`RestCall::MemoryTarget`]: the HTTP layer does the SCP and answers itself.
    Target(BoardTarget),
    /// For [`RestCall::RouterTargets`]: every chip of the job.
    Targets(Vec<BoardTarget>),
    /// For [`RestCall::ProxyBoards`]: job-relative (x, y) of each board's Ethernet chip and its
    /// address, in chip order.
    Connections(Vec<(Chip, Ipv4Addr)>),
    /// For the status calls: the page's data (the HTTP layer renders it).
    Status(Box<status::Status>),
}

impl RestReply {
    /// The HTTP status (200 for the answers the HTTP layer completes itself).
    pub fn status(&self) -> u16 {
        match self {
            RestReply::Json(_) | RestReply::Text(_) => 200,
            RestReply::Created { .. } => 201,
            RestReply::Accepted => 202,
            RestReply::NoContent => 204,
            RestReply::BadRequest(_) => 400,
            RestReply::NotFound(_) => 404,
            RestReply::Unavailable(_) => 503,
            RestReply::Target(_) | RestReply::Targets(_) | RestReply::Connections(_) | RestReply::Status(_) => 200,
        }
    }

    /// The `Content-Type` of the body, if there is one.
    pub fn content_type(&self) -> Option<&'static str> {
        match self {
            RestReply::Json(_) | RestReply::Created { .. } => Some("application/json"),
            RestReply::Text(_) | RestReply::BadRequest(_) | RestReply::NotFound(_) | RestReply::Unavailable(_) => {
                Some("text/plain; charset=utf-8")
            }
            _ => None,
        }
    }

    /// The body (empty for none).
    pub fn body(&self) -> &[u8] {
        match self {
            RestReply::Json(s)
            | RestReply::Created { body: s, .. }
            | RestReply::Text(s)
            | RestReply::BadRequest(s)
            | RestReply::NotFound(s)
            | RestReply::Unavailable(s) => s.as_bytes(),
            _ => &[],
        }
    }

    /// The `Location` header, if any.
    pub fn location(&self) -> Option<&str> {
        match self {
            RestReply::Created { location, .. } => Some(location),
            _ => None,
        }
    }

    fn json(v: &impl Serialize) -> RestReply {
        // The documents are plain structs of strings and numbers: serialising cannot fail.
        RestReply::Json(serde_json::to_string(v).unwrap_or_default())
    }

    fn no_such_job() -> RestReply {
        RestReply::NotFound(NO_SUCH_JOB.into())
    }
}

/// The body of every 404 for a job, whether it never existed, is forgotten or is somebody
/// else's.
pub const NO_SUCH_JOB: &str = "no such job";
/// The body of a 404 for a machine.
pub const NO_SUCH_MACHINE: &str = "no such machine";
/// The body of a 404 for a where-is look-up that found no board.
pub const NO_SUCH_BOARD: &str = "failed to locate board";
/// Why the proxy refuses a job without boards.
pub const NO_PROXY: &str = "job not in state where proxying permitted";

/// Settings (Java's defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestConfig {
    /// Shortest keepalive interval a job may ask for (30 s).
    pub keepalive_min: Duration,
    /// Longest (300 s).
    pub keepalive_max: Duration,
    /// Jobs per page by default (100).
    pub default_page: u32,
    /// Most jobs per page (200).
    pub max_page: u32,
    /// The allocator's `min_ratio` for `num-boards` of two or more (0.333, the v1 client's
    /// default: a rectangle of triads at least that square).
    pub min_ratio: f64,
}

impl Default for RestConfig {
    fn default() -> RestConfig {
        RestConfig {
            keepalive_min: Duration::from_secs(30),
            keepalive_max: Duration::from_secs(300),
            default_page: 100,
            max_page: 200,
            min_ratio: 0.333,
        }
    }
}

/// A job the caller may see: live, or destroyed and still remembered.
enum Found {
    Live(Box<JobSummary>),
    Retired(Box<RetiredJob>),
}

/// The REST API's semantics (stateless: all state is the service's).
#[derive(Debug, Clone, Default)]
pub struct RestApi {
    config: RestConfig,
}

impl RestApi {
    /// The API with these settings.
    pub fn new(config: RestConfig) -> RestApi {
        RestApi { config }
    }

    /// The settings.
    pub fn config(&self) -> &RestConfig {
        &self.config
    }

    /// Answers one call.
    pub fn handle(&self, now: Instant, caller: &Caller, urls: &Urls, call: RestCall, svc: &mut Service) -> RestReply {
        match call {
            RestCall::Root {
                csrf_header,
                csrf_token,
            } => RestReply::json(&ServiceDescription {
                version: version(),
                jobs_ref: urls.jobs(),
                machines_ref: urls.machines(),
                csrf_header,
                csrf_token,
            }),
            RestCall::ListMachines => RestReply::json(&Machines {
                machines: svc.machines().map(|m| BriefMachine::of(m, urls)).collect(),
            }),
            RestCall::GetMachine { name } => match svc.machine(&name) {
                Some(m) => RestReply::json(&MachineDoc::of(m, urls)),
                None => RestReply::NotFound(NO_SUCH_MACHINE.into()),
            },
            RestCall::WhereIs { machine, lookup } => self.where_is(caller, urls, &machine, lookup, svc),
            RestCall::ListJobs { deleted, start, limit } => self.list_jobs(caller, urls, deleted, start, limit, svc),
            RestCall::CreateJob { body } => self.create_job(now, caller, urls, &body, svc),
            RestCall::GetJob { id } => match find(svc, caller, id) {
                Some(Found::Live(j)) => RestReply::json(&JobStateDoc::live(&j, urls)),
                Some(Found::Retired(j)) => RestReply::json(&JobStateDoc::retired(&j, urls)),
                None => RestReply::no_such_job(),
            },
            RestCall::Keepalive { id } => match find(svc, caller, id) {
                Some(Found::Live(_)) => {
                    let _ = svc.job_keepalive(now, id, caller.host.as_deref());
                    RestReply::Text("ok".into())
                }
                // spinnman keeps alive every job it lists, destroyed ones too.
                Some(Found::Retired(_)) => RestReply::Text("ok".into()),
                None => RestReply::no_such_job(),
            },
            RestCall::DeleteJob { id, reason } => match find(svc, caller, id) {
                Some(Found::Live(_)) => {
                    let reason = reason.unwrap_or_else(|| "unspecified".into());
                    let _ = svc.destroy_job(now, id, DestroyReason::requested(reason));
                    RestReply::NoContent
                }
                // spinnman 7.4.1 deletes twice when `destroy()` is called twice.
                Some(Found::Retired(_)) => RestReply::NoContent,
                None => RestReply::no_such_job(),
            },
            RestCall::JobMachine { id } => match find(svc, caller, id) {
                Some(Found::Live(_)) => match svc.get_job_machine_info(now, id, caller.host.as_deref()) {
                    Some(info) => RestReply::json(&SubMachine::of(id, &info, urls)),
                    None => RestReply::NoContent,
                },
                Some(Found::Retired(_)) => RestReply::NoContent,
                None => RestReply::no_such_job(),
            },
            RestCall::JobChip { id, x, y } => match find(svc, caller, id) {
                Some(Found::Live(_)) => {
                    let _ = svc.job_keepalive(now, id, caller.host.as_deref());
                    match svc.where_is(&WhereIsQuery::JobChip { job: id, x, y }) {
                        Some(w) => RestReply::json(&WhereIsDoc::of(&w, true, urls)),
                        None => RestReply::NoContent,
                    }
                }
                Some(Found::Retired(_)) => RestReply::NoContent,
                None => RestReply::no_such_job(),
            },
            RestCall::GetPower { id } => match find(svc, caller, id) {
                Some(Found::Live(j)) => {
                    let _ = svc.job_keepalive(now, id, caller.host.as_deref());
                    match (j.allocated_machine_name.is_some(), j.power) {
                        (true, Some(on)) => RestReply::json(&Power {
                            power: if on { "ON" } else { "OFF" },
                        }),
                        _ => RestReply::NoContent,
                    }
                }
                Some(Found::Retired(_)) => RestReply::NoContent,
                None => RestReply::no_such_job(),
            },
            RestCall::SetPower { id, body } => match find(svc, caller, id) {
                Some(Found::Live(j)) => {
                    let on = match parse_power(&body) {
                        Ok(on) => on,
                        Err(e) => return RestReply::BadRequest(e),
                    };
                    if j.allocated_machine_name.is_none() {
                        return RestReply::NoContent;
                    }
                    let host = caller.host.as_deref();
                    let _ = if on {
                        svc.power_on_job_boards(now, id, host)
                    } else {
                        svc.power_off_job_boards(now, id, host)
                    };
                    RestReply::Accepted
                }
                Some(Found::Retired(_)) => RestReply::NoContent,
                None => RestReply::no_such_job(),
            },
            RestCall::MemoryTarget { id, x, y } => match find(svc, caller, id) {
                Some(Found::Live(j)) if has_boards(&j) => match memory_target(svc, id, x, y) {
                    Some(t) => RestReply::Target(t),
                    None => RestReply::BadRequest(format!("chip ({x}, {y}) is not in job {}", id.0)),
                },
                Some(Found::Live(j)) => RestReply::Unavailable(format!(
                    "job {} has no boards to reach (it is {})",
                    id.0,
                    state_word(j.state)
                )),
                Some(Found::Retired(_)) => {
                    RestReply::Unavailable(format!("job {} has no boards to reach (it is destroyed)", id.0))
                }
                None => RestReply::no_such_job(),
            },
            RestCall::RouterTargets { id } => match find(svc, caller, id) {
                Some(Found::Live(j)) if has_boards(&j) => RestReply::Targets(router_targets(svc, id)),
                Some(Found::Live(j)) => RestReply::Unavailable(format!(
                    "job {} has no boards to reach (it is {})",
                    id.0,
                    state_word(j.state)
                )),
                Some(Found::Retired(_)) => {
                    RestReply::Unavailable(format!("job {} has no boards to reach (it is destroyed)", id.0))
                }
                None => RestReply::no_such_job(),
            },
            RestCall::ProxyBoards { id } => match find(svc, caller, id) {
                Some(Found::Live(j)) if has_boards(&j) => match svc.job_machine_info(id) {
                    Some(info) => RestReply::Connections(info.connections),
                    None => RestReply::Unavailable(NO_PROXY.into()),
                },
                Some(_) => RestReply::Unavailable(NO_PROXY.into()),
                None => RestReply::no_such_job(),
            },
            RestCall::StatusMachines => status_reply(now, status::StatusView::Machines(status::machines(svc, caller))),
            RestCall::StatusMachine { name } => match status::machine(svc, caller, &name) {
                Some(m) => status_reply(now, status::StatusView::Machine(Box::new(m))),
                None => RestReply::NotFound(NO_SUCH_MACHINE.into()),
            },
            RestCall::StatusJobs => status_reply(now, status::StatusView::Jobs(status::jobs(svc, caller))),
            RestCall::StatusJob { id } => match status::job(svc, caller, id) {
                Some(j) => status_reply(now, status::StatusView::Job(Box::new(j))),
                None => RestReply::no_such_job(),
            },
        }
    }

    fn create_job(&self, now: Instant, caller: &Caller, urls: &Urls, body: &[u8], svc: &mut Service) -> RestReply {
        let new = match create::parse(body, &self.config).and_then(|r| create::place(&r, caller, svc, &self.config)) {
            Ok(n) => n,
            Err(e) => return RestReply::BadRequest(e),
        };
        match svc.create_job(now, caller.host.as_deref(), new) {
            Ok(id) => {
                let location = urls.job(id);
                let body = serde_json::to_string(&Created {
                    job_id: id.0,
                    job_ref: location.clone(),
                })
                .unwrap_or_default();
                RestReply::Created { location, body }
            }
            Err(e) => RestReply::BadRequest(e.to_string()),
        }
    }

    fn list_jobs(
        &self,
        caller: &Caller,
        urls: &Urls,
        deleted: bool,
        start: Option<i64>,
        limit: Option<i64>,
        svc: &Service,
    ) -> RestReply {
        let max = self.config.max_page;
        let limit = match limit {
            None => self.config.default_page as usize,
            Some(l) if (1..=i64::from(max)).contains(&l) => l as usize,
            Some(l) => return RestReply::BadRequest(format!("limit must be between 1 and {max}, got {l}")),
        };
        let start = match start {
            None => 0,
            Some(s) if s >= 0 => usize::try_from(s).unwrap_or(usize::MAX),
            Some(s) => return RestReply::BadRequest(format!("start must not be negative, got {s}")),
        };
        let mut ids: Vec<u64> = svc
            .job_owners()
            .filter(|(_, owner)| caller.sees(owner))
            .map(|(id, _)| id.0)
            .collect();
        if deleted {
            ids.extend(svc.retired_jobs().filter(|r| caller.sees(&r.owner)).map(|r| r.job_id.0));
            ids.sort_unstable();
        }
        let total = ids.len();
        let page = ids.iter().skip(start).take(limit);
        let link = |s: usize| format!("{}?wait=false&deleted={deleted}&limit={limit}&start={s}", urls.jobs());
        RestReply::json(&JobList {
            jobs: page.map(|id| urls.job(JobId(*id))).collect(),
            prev: (start > 0).then(|| link(start.saturating_sub(limit))),
            next: (start.saturating_add(limit) < total).then(|| link(start + limit)),
        })
    }

    fn where_is(&self, caller: &Caller, urls: &Urls, machine: &str, lookup: MachineLookup, svc: &Service) -> RestReply {
        let Some(m) = svc.machine(machine) else {
            return RestReply::NotFound(NO_SUCH_MACHINE.into());
        };
        let name = machine.to_string();
        let query = match lookup {
            MachineLookup::Logical { x, y, z } => {
                crate::describe::board_of(x, y, z).map(|board| WhereIsQuery::Board { machine: name, board })
            }
            MachineLookup::Physical { cabinet, frame, board } => crate::describe::physical_of(cabinet, frame, board)
                .map(|position: Physical| WhereIsQuery::Physical {
                    machine: name,
                    position,
                }),
            MachineLookup::Chip { x, y } => Some(WhereIsQuery::Chip { machine: name, x, y }),
            MachineLookup::BoardIp { address } => address
                .trim()
                .parse::<Ipv4Addr>()
                .ok()
                .and_then(|ip| m.board_ips().find(|(_, a)| *a == ip))
                .map(|(board, _)| WhereIsQuery::Board { machine: name, board }),
        };
        match query.and_then(|q| svc.where_is(&q)) {
            Some(w) => {
                let visible = w
                    .job_id
                    .and_then(|j| svc.job(JobId(j)))
                    .is_some_and(|j| caller.sees(&j.owner));
                RestReply::json(&WhereIsDoc::of(&w, visible, urls))
            }
            None => RestReply::NotFound(NO_SUCH_BOARD.into()),
        }
    }
}

/// The root document's version: this crate's.
fn version() -> Version {
    let part = |s: &str| s.parse().unwrap_or(0);
    Version {
        major_version: part(env!("CARGO_PKG_VERSION_MAJOR")),
        minor_version: part(env!("CARGO_PKG_VERSION_MINOR")),
        revision: part(env!("CARGO_PKG_VERSION_PATCH")),
    }
}

fn status_reply(now: Instant, view: status::StatusView) -> RestReply {
    RestReply::Status(Box::new(status::Status { now, view }))
}

/// A job the caller may see, or `None` (also for another user's job).
fn find(svc: &Service, caller: &Caller, id: JobId) -> Option<Found> {
    if let Some(j) = svc.job(id) {
        return caller.sees(&j.owner).then(|| Found::Live(Box::new(j)));
    }
    let r = svc.retired_job(id)?;
    caller.sees(&r.owner).then(|| Found::Retired(Box::new(r.clone())))
}

fn has_boards(j: &JobSummary) -> bool {
    matches!(j.state, JobState::Power | JobState::Ready) && j.allocated_machine_name.is_some()
}

fn state_word(s: JobState) -> &'static str {
    match s {
        JobState::Unknown => "unknown",
        JobState::Queued => "queued",
        JobState::Power => "powering",
        JobState::Ready => "ready",
        JobState::Destroyed => "destroyed",
    }
}

/// `{"power": "ON"|"OFF"}`.
fn parse_power(body: &[u8]) -> Result<bool, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("bad power description: malformed JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or("bad power description: expected {\"power\": \"ON\"} or {\"power\": \"OFF\"}")?;
    if let Some(k) = obj.keys().find(|k| *k != "power") {
        return Err(format!("bad power description: unknown key '{k}'"));
    }
    match obj.get("power").and_then(|p| p.as_str()) {
        Some(p) if p.eq_ignore_ascii_case("on") => Ok(true),
        Some(p) if p.eq_ignore_ascii_case("off") => Ok(false),
        _ => Err("bad power description: power must be \"ON\" or \"OFF\"".into()),
    }
}

/// SCP's default destination chip, (255, 255): the chip a request reaches first, i.e. the
/// Ethernet chip of the board the datagram is sent to.
pub const DEFAULT_DEST_CHIP: i64 = 255;

/// The board holding job chip (x, y) and the chip's job coordinates.
fn memory_target(svc: &Service, id: JobId, x: i64, y: i64) -> Option<BoardTarget> {
    // spinnman's transceiver reads the system variables at (255, 255) (the machine's size, in
    // `get_machine_details`), through REST in a `SpallocTransceiver`. A direct transceiver sends
    // that on its first connection, the job's root board (job chip (0, 0)): the same here, with
    // the destination kept as the client gave it (not wrapped onto some chip of the job).
    if (x, y) == (DEFAULT_DEST_CHIP, DEFAULT_DEST_CHIP) {
        let info = svc.job_machine_info(id)?;
        let (_, ip) = info.connections.iter().find(|(c, _)| *c == Chip::new(0, 0))?;
        return Some(BoardTarget {
            ip: *ip,
            chip_x: DEFAULT_DEST_CHIP as u32,
            chip_y: DEFAULT_DEST_CHIP as u32,
        });
    }
    let w = svc.where_is(&WhereIsQuery::JobChip { job: id, x, y })?;
    let chip = w.job_chip?;
    let ip = svc.job_allocation(id)?.machine.board_ip(w.logical)?;
    Some(BoardTarget {
        ip,
        chip_x: chip.x,
        chip_y: chip.y,
    })
}

/// Every chip of an allocated job, through its own board's Ethernet address, in chip order.
fn router_targets(svc: &Service, id: JobId) -> Vec<BoardTarget> {
    let Some(info) = svc.job_machine_info(id) else {
        return Vec::new();
    };
    let (w, h) = (info.width.max(1), info.height.max(1));
    let mut out: Vec<BoardTarget> = info
        .connections
        .iter()
        .flat_map(|(eth, ip)| {
            spinn5_chips().map(move |c| BoardTarget {
                ip: *ip,
                chip_x: (eth.x + c.x) % w,
                chip_y: (eth.y + c.y) % h,
            })
        })
        .collect();
    out.sort_by_key(|t| (t.chip_x, t.chip_y, t.ip));
    out.dedup_by_key(|t| (t.chip_x, t.chip_y));
    out
}

#[cfg(test)]
mod tests;
