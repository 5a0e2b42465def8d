//! The spalloc v1 server as a sans-IO state machine over a [`Service`].
//!
//! A driver owns the sockets. It tells the server when a client connects
//! ([`Server::connect`]) or goes ([`Server::disconnect`]), hands it each complete request line
//! ([`Server::handle_line`]) together with the service, shows it every [`ServiceEvent`]
//! ([`Server::on_event`]) and, at the end of each round of requests, asks it to send the
//! change notifications ([`Server::notify`]). Replies and notifications collect in each
//! client's output ([`Server::take_output`]), in the order the reference would send them; the
//! lines the reference writes to its job log for requests come out of [`Server::poll_log`].
//!
//! Replies match the reference's: the same keys, values and Python `TypeError` texts, with
//! three deliberate differences, all for requests the reference mishandles: a malformed
//! `create_job` is refused with an exception naming what is wrong (the reference answers some
//! with an exception yet leaves the job queued for ever, and allocates or cancels others that
//! Python's duck typing lets through: a fractional count, a tag that is not a string),
//! `version()` is `"1.0.0"` (the reference's own `"1!7.0.0"` fails the real clients' version
//! check), and list orders the reference takes from Python sets are sorted.
//! `tests/tests/spalloc_differential.rs` holds `sim serve` to the reference, request by request.
//!
//! A client that does not read its notifications cannot make the server hold more than one
//! pending notification of each kind for it: while its output is over
//! [`Server::HELD_OUTPUT`] bytes, changed ids and names are merged into one set each and sent
//! when it catches up (clients re-poll on any notification; they never look inside).

use crate::bind::{Bound, bind};
use crate::describe::{board_of, physical_of, v1_original, xyz};
use crate::joblog::LogLine;
use crate::pyjson::{self, float_of, int_of, repr, str_of, truthy, write_line};
use crate::wire::{BadLine, Call, Command, parse_line};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use spinnbed_core::alloc::{Request, RequestError, Shape};
use spinnbed_core::geometry::{Chip, WhereIs};
use spinnbed_core::reason::{DestroyReason, JobEnd};
use spinnbed_core::sched::JobId;
use spinnbed_core::service::{NewJob, Service, ServiceError, ServiceEvent, WhereIsQuery};
use spinnbed_core::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What `version()` answers: the real clients accept a plain `X.Y.Z` in [0.4.0, 2.0.0) only.
pub const VERSION: &str = "1.0.0";

/// Identifies a connected client (the driver's numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u64);

/// What a client watches: everything, or these ids or names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Watch {
    All,
    Some(BTreeSet<String>),
}

impl Watch {
    fn matches(&self, key: &str) -> bool {
        match self {
            Watch::All => true,
            Watch::Some(s) => s.contains(key),
        }
    }
}

#[derive(Debug, Default)]
struct Client {
    /// The client's IP address (the reference's "host").
    host: String,
    jobs: Option<Watch>,
    machines: Option<Watch>,
    out: Vec<u8>,
    /// Notifications held while the output is backed up.
    held_jobs: BTreeSet<u64>,
    held_machines: BTreeSet<String>,
}

/// Why a request line disconnected its client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Disconnect(pub BadLine);

/// Counters, for the driver's status line and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Requests answered.
    pub requests: u64,
    /// Of which refused with an exception.
    pub exceptions: u64,
    /// Clients disconnected for a bad line.
    pub bad_lines: u64,
    /// Notification lines sent.
    pub notifications: u64,
}

/// The protocol server.
#[derive(Debug, Default)]
pub struct Server {
    clients: BTreeMap<ClientId, Client>,
    changed_jobs: BTreeSet<u64>,
    changed_machines: BTreeSet<String>,
    log: VecDeque<LogLine>,
    stats: ServerStats,
}

/// A job id as the reference would look it up: ints, booleans and integral floats compare
/// equal to the int; anything else matches no job.
fn job_key(v: &Value) -> Option<JobId> {
    int_of(v).and_then(|i| u64::try_from(i).ok()).map(JobId)
}

/// A watched id or name as a set key: the int for anything equal to an int, else the JSON;
/// Python's error for what it cannot put in a set (a list or a dict).
fn watch_key(v: &Value) -> Result<String, String> {
    match (v, int_of(v)) {
        (Value::Array(_) | Value::Object(_), _) => Err(format!("unhashable type: '{}'", pyjson::type_name(v))),
        (Value::String(s), _) => Ok(format!("s{s}")),
        (_, Some(i)) => Ok(format!("i{i}")),
        (v, None) => Ok(format!("j{v}")),
    }
}

/// Seconds as the reference's float.
fn secs(d: Duration) -> f64 {
    d.as_micros() as f64 / 1e6
}

#[derive(Serialize)]
struct Return<T> {
    #[serde(rename = "return")]
    value: T,
}

#[derive(Serialize)]
struct Exception<'a> {
    exception: &'a str,
}

#[derive(Serialize)]
struct JobStateReply<'a> {
    state: u8,
    power: Option<bool>,
    keepalive: Option<f64>,
    reason: Option<Value>,
    start_time: Option<f64>,
    keepalivehost: Option<&'a str>,
}

#[derive(Serialize)]
struct MachineInfoReply {
    width: Option<u32>,
    height: Option<u32>,
    connections: Option<Vec<((u32, u32), String)>>,
    machine_name: Option<String>,
    boards: Option<Vec<(u16, u16, u8)>>,
}

#[derive(Serialize)]
struct JobListEntry<'a> {
    job_id: u64,
    owner: &'a str,
    start_time: f64,
    keepalive: Option<f64>,
    state: u8,
    power: Option<bool>,
    args: &'a RawValue,
    kwargs: &'a RawValue,
    allocated_machine_name: Option<&'a str>,
    boards: Option<Vec<(u16, u16, u8)>>,
    keepalivehost: &'a str,
}

#[derive(Serialize)]
struct MachineEntry<'a> {
    name: &'a str,
    tags: &'a [String],
    width: u16,
    height: u16,
    dead_boards: Vec<(u16, u16, u8)>,
    dead_links: Vec<(u16, u16, u8, u8)>,
}

#[derive(Serialize)]
struct WhereIsReply {
    machine: String,
    logical: (u16, u16, u8),
    physical: (u16, u16, u16),
    chip: (u32, u32),
    board_chip: (u32, u32),
    job_id: Option<u64>,
    job_chip: Option<(u32, u32)>,
}

impl From<WhereIs> for WhereIsReply {
    fn from(w: WhereIs) -> WhereIsReply {
        WhereIsReply {
            machine: w.machine,
            logical: (w.logical.x, w.logical.y, w.logical.z),
            physical: (w.physical.cabinet, w.physical.frame, w.physical.board),
            chip: (w.chip.x, w.chip.y),
            board_chip: (w.board_chip.x, w.board_chip.y),
            job_id: w.job_id,
            job_chip: w.job_chip.map(|c| (c.x, c.y)),
        }
    }
}

/// Splits the stored `[args, kwargs]` JSON into its two parts without parsing the values.
fn split_original(text: &str) -> Option<(Box<RawValue>, Box<RawValue>)> {
    let (a, k): (Box<RawValue>, Box<RawValue>) = serde_json::from_str(text).ok()?;
    Some((a, k))
}

impl Server {
    /// Output beyond which a client's notifications are held and merged.
    pub const HELD_OUTPUT: usize = 256 * 1024;

    /// A server with no clients.
    pub fn new() -> Server {
        Server::default()
    }

    /// A client connected from `host` (its IP address).
    pub fn connect(&mut self, id: ClientId, host: impl Into<String>) {
        self.clients.insert(
            id,
            Client {
                host: host.into(),
                ..Client::default()
            },
        );
    }

    /// A client went away (its watches go with it).
    pub fn disconnect(&mut self, id: ClientId) {
        self.clients.remove(&id);
    }

    /// Connected clients.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Counters.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// Bytes waiting to be sent to a client.
    pub fn output_len(&self, id: ClientId) -> usize {
        self.clients.get(&id).map_or(0, |c| c.out.len())
    }

    /// Takes what is waiting to be sent to a client, and lets notifications held for it
    /// follow.
    pub fn take_output(&mut self, id: ClientId) -> Vec<u8> {
        let Some(c) = self.clients.get_mut(&id) else {
            return Vec::new();
        };
        let mut out = std::mem::take(&mut c.out);
        if !c.held_jobs.is_empty() {
            let ids: Vec<u64> = std::mem::take(&mut c.held_jobs).into_iter().collect();
            write_line(&mut out, &serde_json::json!({ "jobs_changed": ids }));
            self.stats.notifications += 1;
        }
        if !c.held_machines.is_empty() {
            let names: Vec<String> = std::mem::take(&mut c.held_machines).into_iter().collect();
            write_line(&mut out, &serde_json::json!({ "machines_changed": names }));
            self.stats.notifications += 1;
        }
        out
    }

    /// The next job-log message caused by a request (without its timestamp).
    pub fn poll_log(&mut self) -> Option<LogLine> {
        self.log.pop_front()
    }

    /// Notes what an event changed, for the next [`Server::notify`].
    pub fn on_event(&mut self, ev: &ServiceEvent) {
        match ev {
            ServiceEvent::Created { job } | ServiceEvent::Powering { job, .. } | ServiceEvent::Ready { job } => {
                self.changed_jobs.insert(job.0);
            }
            ServiceEvent::Allocated { job, machine, .. } => {
                self.changed_jobs.insert(job.0);
                self.changed_machines.insert(machine.clone());
            }
            ServiceEvent::Destroyed { job, machine, .. } => {
                self.changed_jobs.insert(job.0);
                if let Some(m) = machine {
                    self.changed_machines.insert(m.clone());
                }
            }
            ServiceEvent::MachineChanged { machine } => {
                self.changed_machines.insert(machine.clone());
            }
            ServiceEvent::BoardsReleased { .. } => {}
        }
    }

    /// Sends `jobs_changed` and `machines_changed` to the clients watching what changed since
    /// the last call.
    pub fn notify(&mut self) {
        let jobs = std::mem::take(&mut self.changed_jobs);
        let machines = std::mem::take(&mut self.changed_machines);
        if jobs.is_empty() && machines.is_empty() {
            return;
        }
        let job_keys: Vec<(u64, String)> = jobs.iter().map(|j| (*j, format!("i{j}"))).collect();
        for c in self.clients.values_mut() {
            if let Some(w) = &c.jobs {
                let ids: Vec<u64> = job_keys.iter().filter(|(_, k)| w.matches(k)).map(|(j, _)| *j).collect();
                if !ids.is_empty() {
                    if c.out.len() > Server::HELD_OUTPUT {
                        c.held_jobs.extend(ids);
                    } else {
                        write_line(&mut c.out, &serde_json::json!({ "jobs_changed": ids }));
                        self.stats.notifications += 1;
                    }
                }
            }
            if let Some(w) = &c.machines {
                let names: Vec<&String> = machines.iter().filter(|m| w.matches(&format!("s{m}"))).collect();
                if !names.is_empty() {
                    if c.out.len() > Server::HELD_OUTPUT {
                        c.held_machines.extend(names.into_iter().cloned());
                    } else {
                        write_line(&mut c.out, &serde_json::json!({ "machines_changed": names }));
                        self.stats.notifications += 1;
                    }
                }
            }
        }
    }

    /// Handles one request line (without its newline; empty lines are skipped) from a
    /// connected client: the reply goes to its output. An error means the reference would
    /// disconnect the client: the driver closes the connection (and calls
    /// [`Server::disconnect`]). As in the reference, only an empty line is skipped: a line of
    /// spaces, or a lone `\r`, is not JSON and disconnects.
    pub fn handle_line(
        &mut self,
        now: Instant,
        id: ClientId,
        line: &[u8],
        svc: &mut Service,
    ) -> Result<(), Disconnect> {
        if line.is_empty() {
            return Ok(());
        }
        let call = match parse_line(line) {
            Ok(c) => c,
            Err(e) => {
                self.stats.bad_lines += 1;
                return Err(Disconnect(e));
            }
        };
        let Some(host) = self.clients.get(&id).map(|c| c.host.clone()) else {
            return Ok(());
        };
        let mut out = std::mem::take(&mut self.clients.get_mut(&id).expect("present").out);
        let result = self.dispatch(now, id, &host, call, svc, &mut out);
        self.stats.requests += 1;
        if let Err(e) = &result {
            self.stats.exceptions += 1;
            write_line(&mut out, &Exception { exception: e });
        }
        if let Some(c) = self.clients.get_mut(&id) {
            c.out = out;
        }
        Ok(())
    }

    /// Runs a call; `Ok` replies have been written to `out`, `Err` is the exception text.
    fn dispatch(
        &mut self,
        now: Instant,
        id: ClientId,
        host: &str,
        call: Call,
        svc: &mut Service,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let command = call.command;
        let b = bind(command, call.args, call.kwargs)?;
        let ret = |out: &mut Vec<u8>, v: &dyn erased::Ser| {
            v.write_return(out);
        };
        match command {
            Command::Version => ret(out, &VERSION),
            Command::CreateJob => {
                let job = self.create_job(now, host, b, svc)?;
                ret(out, &job.0);
            }
            Command::JobKeepalive => {
                if let Some(j) = job_key(b.get(0)) {
                    let _ = svc.job_keepalive(now, j, Some(host));
                }
                ret(out, &());
            }
            Command::GetJobState => {
                let info = match job_key(b.get(0)) {
                    Some(j) => svc.get_job_state(now, j, Some(host)),
                    None => svc.get_job_state(now, JobId(u64::MAX), None),
                };
                let reason = info.reason.as_ref().and_then(reason_value);
                ret(
                    out,
                    &JobStateReply {
                        state: info.state as u8,
                        power: info.power,
                        keepalive: info.keepalive.map(secs),
                        reason,
                        start_time: info.start_time.map(|t| t.as_secs_f64()),
                        keepalivehost: info.keepalive_host.as_deref(),
                    },
                );
            }
            Command::GetJobMachineInfo => {
                let info = job_key(b.get(0)).and_then(|j| svc.get_job_machine_info(now, j, Some(host)));
                let reply = match info {
                    Some(i) => MachineInfoReply {
                        width: Some(i.width),
                        height: Some(i.height),
                        connections: Some(
                            i.connections
                                .iter()
                                .map(|(c, ip): &(Chip, _)| ((c.x, c.y), ip.to_string()))
                                .collect(),
                        ),
                        machine_name: Some(i.machine_name),
                        boards: Some(i.boards.iter().map(xyz).collect()),
                    },
                    None => MachineInfoReply {
                        width: None,
                        height: None,
                        connections: None,
                        machine_name: None,
                        boards: None,
                    },
                };
                ret(out, &reply);
            }
            Command::PowerOnJobBoards | Command::PowerOffJobBoards => {
                let on = command == Command::PowerOnJobBoards;
                self.log.push_back(LogLine {
                    text: format!(
                        "power_job({},{}) from {host}",
                        str_of(b.get(0)),
                        if on { "On" } else { "Off" }
                    ),
                    destroys: None,
                });
                if let Some(j) = job_key(b.get(0)) {
                    let _ = if on {
                        svc.power_on_job_boards(now, j, Some(host))
                    } else {
                        svc.power_off_job_boards(now, j, Some(host))
                    };
                }
                ret(out, &());
            }
            Command::DestroyJob => {
                // The reference keeps any JSON value as the reason (and gives it back as it
                // came); its job log and "Cancelled: …" put it into words with `str()`.
                let reason = match b.get(1) {
                    Value::Null => DestroyReason::Requested(None),
                    Value::String(s) => DestroyReason::requested(s.clone()),
                    v => DestroyReason::RequestedValue {
                        json: v.to_string(),
                        text: str_of(v),
                    },
                };
                self.log.push_back(LogLine {
                    text: match &reason {
                        DestroyReason::Requested(None) => format!("destroy_job({}) from {host}", str_of(b.get(0))),
                        r => format!("destroy_job({},{r}) from {host}", str_of(b.get(0))),
                    },
                    destroys: job_key(b.get(0)),
                });
                if let Some(j) = job_key(b.get(0)) {
                    let _ = svc.destroy_job(now, j, reason);
                }
                ret(out, &());
            }
            Command::NotifyJob | Command::NotifyMachine => {
                let c = self.clients.get_mut(&id).expect("present");
                let w = if command == Command::NotifyJob {
                    &mut c.jobs
                } else {
                    &mut c.machines
                };
                match (b.get(0), w.as_mut()) {
                    (Value::Null, _) => *w = Some(Watch::All),
                    // Python puts the id in a set: a list or dict is refused, unless the client
                    // already watches everything (then the id is not looked at).
                    (_, Some(Watch::All)) => {}
                    (v, None) => *w = Some(Watch::Some(BTreeSet::from([watch_key(v)?]))),
                    (v, Some(Watch::Some(s))) => {
                        s.insert(watch_key(v)?);
                    }
                }
                ret(out, &());
            }
            Command::NoNotifyJob | Command::NoNotifyMachine => {
                let c = self.clients.get_mut(&id).expect("present");
                let w = if command == Command::NoNotifyJob {
                    &mut c.jobs
                } else {
                    &mut c.machines
                };
                match (b.get(0), w.as_mut()) {
                    (Value::Null, _) => *w = None,
                    (v, Some(Watch::Some(s))) => {
                        s.remove(&watch_key(v)?);
                        if s.is_empty() {
                            *w = None;
                        }
                    }
                    (_, _) => {}
                }
                ret(out, &());
            }
            Command::ListJobs => self.list_jobs(svc, out),
            Command::ListMachines => {
                let machines = svc.list_machines();
                let entries: Vec<MachineEntry> = machines
                    .iter()
                    .map(|m| MachineEntry {
                        name: &m.name,
                        tags: &m.tags,
                        width: m.width,
                        height: m.height,
                        dead_boards: m.dead_boards.iter().map(xyz).collect(),
                        dead_links: m.dead_links.iter().map(|(b, l)| (b.x, b.y, b.z, *l as u8)).collect(),
                    })
                    .collect();
                ret(out, &entries);
            }
            Command::GetBoardPosition | Command::GetBoardAtPosition => {
                let machine = match b.get(0) {
                    Value::String(s) => Some(s.as_str()),
                    _ => None,
                };
                let [x, y, z] = [b.get(1), b.get(2), b.get(3)].map(int_of);
                let r = match (machine, x, y, z) {
                    (Some(m), Some(x), Some(y), Some(z)) if command == Command::GetBoardPosition => board_of(x, y, z)
                        .and_then(|bd| svc.get_board_position(m, bd))
                        .map(|p| vec![p.cabinet as i64, p.frame as i64, p.board as i64]),
                    (Some(m), Some(c), Some(f), Some(bn)) => physical_of(c, f, bn)
                        .and_then(|p| svc.get_board_at_position(m, p))
                        .map(|bd| vec![bd.x as i64, bd.y as i64, bd.z as i64]),
                    _ => None,
                };
                ret(out, &r);
            }
            Command::WhereIs => {
                let r = where_is(svc, &b.var_kwargs)?;
                ret(out, &r.map(WhereIsReply::from));
            }
        }
        Ok(())
    }

    /// `create_job`: the server's normalisation (tags, owner, keepalive), then the request.
    fn create_job(&mut self, now: Instant, host: &str, b: Bound, svc: &mut Service) -> Result<JobId, String> {
        let mut kwargs = b.var_kwargs;
        let get = |kw: &[(String, Value)], k: &str| kw.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        // tags → set(tags) (kept in order, duplicates dropped).
        if let Some(t) = get(&kwargs, "tags")
            && !t.is_null()
        {
            let set = tag_set(&t)?;
            if let Some(slot) = kwargs.iter_mut().find(|(n, _)| n == "tags") {
                slot.1 = Value::Array(set.into_iter().map(Value::String).collect());
            }
        }
        let owner = match get(&kwargs, "owner") {
            None | Some(Value::Null) => return Err(ServiceError::NoOwner.to_string()),
            Some(o) => str_of(&o),
        };
        if let Some(slot) = kwargs.iter_mut().find(|(n, _)| n == "owner") {
            slot.1 = Value::String(owner.clone());
        }
        let keepalive = match get(&kwargs, "keepalive") {
            None => Some(60.0),
            Some(Value::Null) => None,
            Some(v) => Some(float_of(&v)?),
        };
        match kwargs.iter_mut().find(|(n, _)| n == "keepalive") {
            Some(slot) => slot.1 = keepalive.map_or(Value::Null, |k| serde_json::json!(k)),
            None => kwargs.push(("keepalive".into(), serde_json::json!(60.0))),
        }
        self.log.push_back(LogLine {
            text: format!(
                "create_job({},{}) from {host}",
                args_repr(&b.var_args),
                kwargs_repr(&kwargs)
            ),
            destroys: None,
        });
        let listed: Vec<(String, Value)> = kwargs
            .iter()
            .filter(|(k, _)| k != "owner" && k != "keepalive" && k != "job_id")
            .cloned()
            .collect();
        let original = pyjson::to_string(&(&b.var_args, OrderedMap(&listed)));
        let new = request_of(&owner, keepalive, &b.var_args, &listed, original);
        match new {
            Ok(new) => svc.create_job(now, Some(host), new).map_err(|e| e.to_string()),
            Err(e) => {
                // Refused for its contents: the id is used up all the same (the reference
                // numbers jobs by counting creations).
                svc.refuse_job(now, Some(host));
                Err(e)
            }
        }
    }

    fn list_jobs(&mut self, svc: &Service, out: &mut Vec<u8>) {
        let jobs = svc.list_jobs();
        let originals: Vec<String> = jobs
            .iter()
            .map(|j| {
                j.original
                    .clone()
                    .unwrap_or_else(|| v1_original(&j.request, j.machine.as_deref(), j.tags.as_deref()))
            })
            .collect();
        let empty = || RawValue::from_string("[]".into()).expect("valid JSON");
        let parts: Vec<(Box<RawValue>, Box<RawValue>)> = originals
            .iter()
            .map(|o| split_original(o).unwrap_or_else(|| (empty(), RawValue::from_string("{}".into()).expect("valid"))))
            .collect();
        let entries: Vec<JobListEntry> = jobs
            .iter()
            .zip(&parts)
            .map(|(j, (a, k))| JobListEntry {
                job_id: j.job_id.0,
                owner: &j.owner,
                start_time: j.start_time.as_secs_f64(),
                keepalive: j.keepalive.map(secs),
                state: j.state as u8,
                power: j.power,
                args: a,
                kwargs: k,
                allocated_machine_name: j.allocated_machine_name.as_deref(),
                boards: j
                    .allocated_machine_name
                    .as_ref()
                    .map(|_| j.boards.iter().map(xyz).collect()),
                keepalivehost: j.keepalive_host.as_deref().unwrap_or(""),
            })
            .collect();
        write_line(out, &Return { value: entries });
    }
}

/// Writes `{"return": value}` lines for any serialisable value behind one trait object.
mod erased {
    use super::Return;
    use crate::pyjson::write_line;
    use serde::Serialize;

    pub trait Ser {
        fn write_return(&self, out: &mut Vec<u8>);
    }
    impl<T: Serialize> Ser for T {
        fn write_return(&self, out: &mut Vec<u8>) {
            write_line(out, &Return { value: self });
        }
    }
}

/// Keyword arguments in their order, serialised as a JSON object.
struct OrderedMap<'a>(&'a [(String, Value)]);

impl Serialize for OrderedMap<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// The reason `get_job_state` gives for how a job ended: `None` for a job destroyed after
/// allocation with no reason (the reference keeps Python's `None`), a client's reason that is
/// not text as it came, else the words.
fn reason_value(end: &JobEnd) -> Option<Value> {
    match (&end.reason, end.queued) {
        (DestroyReason::Requested(None), false) => None,
        (DestroyReason::RequestedValue { json, .. }, false) => {
            Some(serde_json::from_str(json).unwrap_or_else(|_| Value::String(end.to_string())))
        }
        _ => Some(Value::String(end.to_string())),
    }
}

/// Python's `set(tags)` for the JSON values a client can send: a list (or a string, whose
/// characters Python would take) of strings.
fn tag_set(v: &Value) -> Result<Vec<String>, String> {
    let items: Vec<String> = match v {
        Value::Array(a) => a
            .iter()
            .map(|t| match t {
                Value::String(s) => Ok(s.clone()),
                Value::Array(_) | Value::Object(_) => Err(format!("unhashable type: '{}'", pyjson::type_name(t))),
                other => Err(format!("tags must be strings, got {}", repr(other))),
            })
            .collect::<Result<_, _>>()?,
        Value::String(s) => s.chars().map(String::from).collect(),
        Value::Object(m) => m.keys().cloned().collect(),
        other => return Err(format!("'{}' object is not iterable", pyjson::type_name(other))),
    };
    let mut seen = BTreeSet::new();
    Ok(items.into_iter().filter(|t| seen.insert(t.clone())).collect())
}

/// The reference's job log shows `args` as a Python tuple.
fn args_repr(args: &[Value]) -> String {
    match args {
        [] => "()".into(),
        [a] => format!("({},)", repr(a)),
        _ => format!("({})", args.iter().map(repr).collect::<Vec<_>>().join(", ")),
    }
}

/// The reference's job log shows `kwargs` as a Python dict whose `tags` is a set.
fn kwargs_repr(kwargs: &[(String, Value)]) -> String {
    let items: Vec<String> = kwargs
        .iter()
        .map(|(k, v)| {
            let v = match (k.as_str(), v) {
                ("tags", Value::Array(a)) if a.is_empty() => "set()".to_string(),
                ("tags", Value::Array(a)) => format!("{{{}}}", a.iter().map(repr).collect::<Vec<_>>().join(", ")),
                _ => repr(v),
            };
            format!("{}: {v}", pyjson::str_repr(k))
        })
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// The keyword arguments `create_job` passes on to the allocator.
const JOB_KWARGS: [&str; 7] = [
    "machine",
    "tags",
    "min_ratio",
    "max_dead_boards",
    "max_dead_links",
    "require_torus",
    "job_id",
];

/// Builds the service's request from `create_job`'s arguments, or says what is wrong.
fn request_of(
    owner: &str,
    keepalive: Option<f64>,
    args: &[Value],
    kwargs: &[(String, Value)],
    original: String,
) -> Result<NewJob, String> {
    if let Some((k, _)) = kwargs.iter().find(|(k, _)| !JOB_KWARGS.contains(&k.as_str())) {
        return Err(format!("create_job() got an unexpected keyword argument '{k}'"));
    }
    let get = |k: &str| kwargs.iter().find(|(n, _)| n == k).map_or(&Value::Null, |(_, v)| v);
    // The allocator reads its positional arguments up to the first None.
    let mut ints = Vec::new();
    for a in args.iter().take_while(|a| !a.is_null()) {
        match int_of(a) {
            Some(i) => ints.push(i),
            None => {
                return Err(format!(
                    "create_job() arguments must be integers (a number of boards, a width and height in triads, or a board's x, y and z), got {}",
                    repr(a)
                ));
            }
        }
    }
    // Python compares these limits with counts: a negative one can never be met (the
    // reference's allocator finds no machine for the job and cancels it at once), except by a
    // single board, whose allocation does not look at them.
    let mut negative_limit = false;
    let mut count = |k: &str| -> Result<Option<u32>, String> {
        match get(k) {
            Value::Null => Ok(None),
            v => match int_of(v) {
                Some(i) if i < 0 => {
                    negative_limit = true;
                    Ok(None)
                }
                Some(i) => Ok(Some(u32::try_from(i).unwrap_or(u32::MAX))),
                None => Err(format!("{k} must be an integer or None, got {}", repr(v))),
            },
        }
    };
    let (max_dead_boards, max_dead_links) = (count("max_dead_boards")?, count("max_dead_links")?);
    let min_ratio = match get("min_ratio") {
        Value::Null => 0.0,
        v => float_of(v).map_err(|e| format!("min_ratio: {e}"))?,
    };
    let mut request = Request::from_args(
        &ints,
        min_ratio,
        max_dead_boards,
        max_dead_links,
        truthy(get("require_torus")),
    )
    .map_err(|e| match e {
        RequestError::TorusBoard => "require_torus must be False when allocating boards.".to_string(),
        // The reference's `area_to_rect` words it so.
        RequestError::BadRatio(r) if r < 0.0 => "Aspect ratio cannot be negative.".to_string(),
        e => e.to_string(),
    })?;
    let mut no_machine = false;
    let machine = match get("machine") {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        // A number or a boolean names no machine: the reference looks it up, finds none and
        // cancels the job. (Still a machine, for the check against tags.)
        v @ (Value::Number(_) | Value::Bool(_)) => {
            no_machine = true;
            Some(repr(v))
        }
        v => return Err(format!("unhashable type: '{}'", pyjson::type_name(v))),
    };
    if no_machine || negative_limit && !request.is_single_board() {
        // A request no machine can ever take: the job is cancelled as the reference's is.
        request.shape = Shape::Triads { w: 0, h: 0 };
    }
    let tags = match get("tags") {
        Value::Null => None,
        Value::Array(a) => Some(a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect()),
        _ => None,
    };
    let keepalive = keepalive.and_then(|k| {
        if k.is_nan() || k.is_infinite() && k > 0.0 {
            None
        } else {
            Some(Duration::from_secs_f64(k))
        }
    });
    Ok(NewJob {
        owner: owner.to_string(),
        keepalive,
        machine,
        tags,
        request,
        estimate: None,
        original: Some(original),
    })
}

/// `where_is` in its four forms (exactly one keyword set, as the reference requires).
fn where_is(svc: &Service, kwargs: &[(String, Value)]) -> Result<Option<WhereIs>, String> {
    let keys: BTreeSet<&str> = kwargs.iter().map(|(k, _)| k.as_str()).collect();
    let get = |k: &str| kwargs.iter().find(|(n, _)| n == k).map_or(&Value::Null, |(_, v)| v);
    let set = |names: &[&str]| keys == names.iter().copied().collect::<BTreeSet<_>>();
    let machine = || match get("machine") {
        Value::String(s) => Some(s.clone()),
        _ => None,
    };
    let coord = |k: &str| -> Result<i64, String> {
        let v = get(k);
        int_of(v).ok_or_else(|| format!("{k} must be an integer, got {}", repr(v)))
    };
    let query = if set(&["machine", "x", "y", "z"]) {
        let (x, y, z) = (coord("x")?, coord("y")?, coord("z")?);
        // The reference goes through chip coordinates, so boards outside the machine wrap, and
        // a z other than 1 or 2 counts as 0. (Wrapped first, so that no coordinate overflows.)
        machine().and_then(|machine| {
            let m = svc.machine(&machine)?;
            let (x, y) = (x.rem_euclid(m.width().into()), y.rem_euclid(m.height().into()));
            let (cx, cy) = spinnbed_core::geometry::board_offset_to_chip(x, y, z);
            Some(WhereIsQuery::Chip { machine, x: cx, y: cy })
        })
    } else if set(&["machine", "cabinet", "frame", "board"]) {
        let p = physical_of(coord("cabinet")?, coord("frame")?, coord("board")?);
        machine()
            .zip(p)
            .map(|(machine, position)| WhereIsQuery::Physical { machine, position })
    } else if set(&["machine", "chip_x", "chip_y"]) {
        let (x, y) = (coord("chip_x")?, coord("chip_y")?);
        machine().map(|machine| WhereIsQuery::Chip { machine, x, y })
    } else if set(&["job_id", "chip_x", "chip_y"]) {
        let (x, y) = (coord("chip_x")?, coord("chip_y")?);
        job_key(get("job_id")).map(|job| WhereIsQuery::JobChip { job, x, y })
    } else {
        let names: Vec<&str> = kwargs.iter().map(|(k, _)| k.as_str()).collect();
        return Err(format!("Invalid arguments: {}", names.join(", ")));
    };
    Ok(query.and_then(|q| svc.where_is(&q)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use spinnbed_core::geometry::{Machine, MachineSpec};
    use spinnbed_core::service::ServiceConfig;

    const T0: Instant = Instant(1_700_000_000_000_000);
    const A: ClientId = ClientId(1);
    const B: ClientId = ClientId(2);

    fn setup() -> (Server, Service) {
        let mut svc = Service::new(ServiceConfig::default());
        svc.add_machine(T0, Machine::new(MachineSpec::new("m", 2, 2)).unwrap())
            .unwrap();
        let mut s = Server::new();
        s.connect(A, "10.0.0.1");
        s.connect(B, "10.0.0.2");
        while svc.poll_event().is_some() {}
        (s, svc)
    }

    /// Sends one request and returns what the client got back (reply and notifications).
    fn call(s: &mut Server, svc: &mut Service, c: ClientId, req: Value) -> Vec<Value> {
        s.handle_line(T0, c, req.to_string().as_bytes(), svc).unwrap();
        pump(s, svc);
        lines(s, c)
    }

    fn pump(s: &mut Server, svc: &mut Service) {
        while let Some(ev) = svc.poll_event() {
            s.on_event(&ev);
        }
        s.notify();
    }

    fn lines(s: &mut Server, c: ClientId) -> Vec<Value> {
        String::from_utf8(s.take_output(c))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn ack(svc: &mut Service) {
        while let Some(b) = svc.poll_bmp_batch() {
            svc.handle_bmp_batch_done(T0, b.id, Ok(())).unwrap();
        }
    }

    fn create(kwargs: Value, args: Value) -> Value {
        json!({"command": "create_job", "args": args, "kwargs": kwargs})
    }

    #[test]
    fn replies_are_byte_for_byte_the_references_layout() {
        let (mut s, mut svc) = setup();
        s.handle_line(T0, A, br#"{"command": "version", "args": [], "kwargs": {}}"#, &mut svc)
            .unwrap();
        assert_eq!(s.take_output(A), b"{\"return\": \"1.0.0\"}\n");
        s.handle_line(
            T0,
            A,
            br#"{"command": "get_job_state", "args": [42], "kwargs": {}}"#,
            &mut svc,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(s.take_output(A)).unwrap(),
            "{\"return\": {\"state\": 0, \"power\": null, \"keepalive\": null, \"reason\": null, \"start_time\": null, \"keepalivehost\": null}}\n"
        );
    }

    #[test]
    fn a_job_goes_through_its_life_as_a_client_sees_it() {
        let (mut s, mut svc) = setup();
        assert_eq!(
            call(
                &mut s,
                &mut svc,
                B,
                json!({"command": "notify_job", "args": [], "kwargs": {}})
            ),
            vec![json!({"return": null})]
        );
        // Sent as the client writes it: the keywords in the client's order.
        s.handle_line(T0, A, br#"{"command": "create_job", "args": [1, 1], "kwargs": {"owner": "alice", "keepalive": 60.0, "machine": null, "tags": null, "min_ratio": 0.333, "max_dead_boards": 0, "max_dead_links": null, "require_torus": false}}"#, &mut svc).unwrap();
        pump(&mut s, &mut svc);
        assert_eq!(lines(&mut s, A), vec![json!({"return": 1})]);
        // B watches every job: it hears of the creation and allocation.
        assert_eq!(lines(&mut s, B), vec![json!({"jobs_changed": [1]})]);
        let st = call(
            &mut s,
            &mut svc,
            A,
            json!({"command": "get_job_state", "args": [1], "kwargs": {}}),
        );
        assert_eq!(
            st,
            vec![
                json!({"return": {"state": 2, "power": true, "keepalive": 60.0, "reason": null,
                                   "start_time": 1_700_000_000.0, "keepalivehost": "10.0.0.1"}})
            ]
        );
        ack(&mut svc);
        pump(&mut s, &mut svc);
        assert_eq!(lines(&mut s, B), vec![json!({"jobs_changed": [1]})]);
        let info = call(
            &mut s,
            &mut svc,
            A,
            json!({"command": "get_job_machine_info", "args": [1], "kwargs": {}}),
        );
        assert_eq!(
            info,
            vec![json!({"return": {"width": 16, "height": 16,
                "connections": [[[0, 0], "192.168.0.1"], [[4, 8], "192.168.0.17"], [[8, 4], "192.168.0.9"]],
                "machine_name": "m", "boards": [[0, 0, 0], [0, 0, 1], [0, 0, 2]]}})]
        );
        let jobs = call(&mut s, &mut svc, B, json!({"command": "list_jobs"}));
        let j = &jobs[0]["return"][0];
        assert_eq!(j["args"], json!([1, 1]));
        assert_eq!(
            j["kwargs"],
            json!({"machine": null, "tags": null, "min_ratio": 0.333, "max_dead_boards": 0, "max_dead_links": null, "require_torus": false})
        );
        assert_eq!(j["state"], json!(3));
        assert_eq!(j["keepalivehost"], json!("10.0.0.1"));
        // B polls it: B becomes the keepalive host.
        call(&mut s, &mut svc, B, json!({"command": "job_keepalive", "args": [1]}));
        let r = call(
            &mut s,
            &mut svc,
            A,
            json!({"command": "destroy_job", "args": [1], "kwargs": {"reason": "done"}}),
        );
        assert_eq!(r, vec![json!({"return": null})]);
        let st = call(&mut s, &mut svc, A, json!({"command": "get_job_state", "args": [1]}));
        assert_eq!(
            st,
            vec![
                json!({"return": {"state": 4, "power": null, "keepalive": null, "reason": "done",
                                   "start_time": null, "keepalivehost": null}})
            ]
        );
        let log: Vec<String> = std::iter::from_fn(|| s.poll_log()).map(|l| l.text).collect();
        assert_eq!(
            log,
            vec![
                "create_job((1, 1),{'owner': 'alice', 'keepalive': 60.0, 'machine': None, 'tags': None, 'min_ratio': 0.333, 'max_dead_boards': 0, 'max_dead_links': None, 'require_torus': False}) from 10.0.0.1",
                "destroy_job(1,done) from 10.0.0.1",
            ]
        );
    }

    #[test]
    fn refusals_name_what_is_wrong_and_a_refused_request_uses_up_an_id() {
        let (mut s, mut svc) = setup();
        let exc = |v: &[Value]| v[0]["exception"].as_str().unwrap().to_string();
        let r = call(&mut s, &mut svc, A, create(json!({}), json!([])));
        assert_eq!(exc(&r), "owner must be specified for all jobs");
        let r = call(
            &mut s,
            &mut svc,
            A,
            create(json!({"owner": "o", "keepalive": "soon"}), json!([])),
        );
        assert_eq!(exc(&r), "could not convert string to float: 'soon'");
        let r = call(
            &mut s,
            &mut svc,
            A,
            create(json!({"owner": "o", "machine": "m", "tags": ["a"]}), json!([])),
        );
        assert_eq!(exc(&r), "Only one of machine and tags may be specified for a job.");
        let r = call(
            &mut s,
            &mut svc,
            A,
            create(json!({"owner": "o", "colour": "red"}), json!([])),
        );
        assert_eq!(exc(&r), "create_job() got an unexpected keyword argument 'colour'");
        let r = call(&mut s, &mut svc, A, create(json!({"owner": "o"}), json!([1, 2, 3, 4])));
        assert!(exc(&r).contains("at most 3 positional arguments"), "{r:?}");
        let r = call(
            &mut s,
            &mut svc,
            A,
            create(json!({"owner": "o", "require_torus": true}), json!([])),
        );
        assert_eq!(exc(&r), "require_torus must be False when allocating boards.");
        // Four refusals for their contents took ids 1 to 4 (the missing owner and the bad
        // keepalive never reached the controller in the reference either).
        let r = call(&mut s, &mut svc, A, create(json!({"owner": "o"}), json!([])));
        assert_eq!(r, vec![json!({"return": 5})]);
        let r = call(
            &mut s,
            &mut svc,
            A,
            json!({"command": "job_keepalive", "args": [], "kwargs": {}}),
        );
        assert_eq!(
            exc(&r),
            "SpallocServer.job_keepalive() missing 1 required positional argument: 'job_id'"
        );
        let r = call(
            &mut s,
            &mut svc,
            A,
            json!({"command": "where_is", "kwargs": {"machine": "m", "x": 0}}),
        );
        assert_eq!(exc(&r), "Invalid arguments: machine, x");
        assert!(s.handle_line(T0, A, b"{\"command\": \"explode\"}", &mut svc).is_err());
    }

    #[test]
    fn where_is_answers_in_every_form() {
        let (mut s, mut svc) = setup();
        call(&mut s, &mut svc, A, create(json!({"owner": "o"}), json!([1, 1])));
        let q = |kw: Value| json!({"command": "where_is", "args": [], "kwargs": kw});
        let by_job = call(&mut s, &mut svc, A, q(json!({"job_id": 1, "chip_x": 8, "chip_y": 4})));
        assert_eq!(
            by_job,
            vec![
                json!({"return": {"machine": "m", "logical": [0, 0, 1], "physical": [0, 0, 1], "chip": [8, 4],
                                   "board_chip": [0, 0], "job_id": 1, "job_chip": [8, 4]}})
            ]
        );
        let by_board = call(&mut s, &mut svc, A, q(json!({"machine": "m", "x": 0, "y": 0, "z": 1})));
        assert_eq!(by_board, by_job);
        let by_phys = call(
            &mut s,
            &mut svc,
            A,
            q(json!({"machine": "m", "cabinet": 0, "frame": 0, "board": 1})),
        );
        assert_eq!(by_phys, by_job);
        let by_chip = call(
            &mut s,
            &mut svc,
            A,
            q(json!({"machine": "m", "chip_x": 8, "chip_y": 4})),
        );
        assert_eq!(by_chip, by_job);
        let none = call(
            &mut s,
            &mut svc,
            A,
            q(json!({"machine": "nope", "chip_x": 0, "chip_y": 0})),
        );
        assert_eq!(none, vec![json!({"return": null})]);
        let pos = call(
            &mut s,
            &mut svc,
            A,
            json!({"command": "get_board_position", "args": ["m", 1, 1, 2]}),
        );
        let at = call(
            &mut s,
            &mut svc,
            A,
            json!({"command": "get_board_at_position", "args": ["m"], "kwargs": {"x": pos[0]["return"][0], "y": pos[0]["return"][1], "z": pos[0]["return"][2]}}),
        );
        assert_eq!(at, vec![json!({"return": [1, 1, 2]})]);
    }

    #[test]
    fn a_client_that_does_not_read_gets_its_notifications_merged() {
        let (mut s, mut svc) = setup();
        call(&mut s, &mut svc, B, json!({"command": "notify_job", "args": [null]}));
        // B pipelines requests without reading until its output is backed up.
        while s.output_len(B) <= Server::HELD_OUTPUT {
            s.handle_line(T0, B, br#"{"command": "list_machines"}"#, &mut svc)
                .unwrap();
        }
        let before = s.output_len(B);
        for _ in 0..50 {
            call_no_read(&mut s, &mut svc, A, create(json!({"owner": "o"}), json!([])));
        }
        assert_eq!(s.output_len(B), before, "nothing more is queued for B");
        let tail: Vec<Value> = lines(&mut s, B)
            .into_iter()
            .filter(|l| l.get("jobs_changed").is_some())
            .collect();
        assert_eq!(tail.len(), 1);
        assert_eq!(tail[0]["jobs_changed"].as_array().unwrap().len(), 50);
    }

    #[test]
    fn only_an_empty_line_is_skipped() {
        let (mut s, mut svc) = setup();
        assert!(s.handle_line(T0, A, b"", &mut svc).is_ok());
        assert!(s.take_output(A).is_empty());
        // The reference parses anything else as JSON, and a line of spaces or a lone CR is not.
        for line in [&b"   "[..], b"\r", b"\t"] {
            assert!(s.handle_line(T0, A, line, &mut svc).is_err(), "{line:?}");
        }
        assert!(
            s.handle_line(T0, A, b" {\"command\": \"list_jobs\"}\r", &mut svc)
                .is_ok()
        );
        assert_eq!(lines(&mut s, A), vec![json!({"return": []})]);
    }

    #[test]
    fn watching_refuses_ids_python_cannot_hash() {
        let (mut s, mut svc) = setup();
        let watch = |s: &mut Server, svc: &mut Service, c, cmd: &str, arg: Value| {
            call(s, svc, c, json!({"command": cmd, "args": [arg]}))
        };
        // Nothing watched yet: unwatching looks at nothing.
        assert_eq!(
            watch(&mut s, &mut svc, A, "no_notify_job", json!([1])),
            vec![json!({"return": null})]
        );
        let unhashable = |t: &str| vec![json!({"exception": format!("unhashable type: '{t}'")})];
        assert_eq!(watch(&mut s, &mut svc, A, "notify_job", json!([1])), unhashable("list"));
        assert_eq!(
            watch(&mut s, &mut svc, A, "notify_machine", json!({"a": 1})),
            unhashable("dict")
        );
        assert_eq!(
            watch(&mut s, &mut svc, A, "notify_job", json!(3)),
            vec![json!({"return": null})]
        );
        assert_eq!(watch(&mut s, &mut svc, A, "notify_job", json!([1])), unhashable("list"));
        assert_eq!(
            watch(&mut s, &mut svc, A, "no_notify_job", json!([1])),
            unhashable("list")
        );
        // Watching everything, a specific id is not looked at.
        call(&mut s, &mut svc, B, json!({"command": "notify_job"}));
        assert_eq!(
            watch(&mut s, &mut svc, B, "notify_job", json!([1])),
            vec![json!({"return": null})]
        );
        assert_eq!(
            watch(&mut s, &mut svc, B, "no_notify_job", json!([1])),
            vec![json!({"return": null})]
        );
    }

    #[test]
    fn where_is_by_board_wraps_every_coordinate_as_the_reference_does() {
        let (mut s, mut svc) = setup();
        let q = |kw: Value| json!({"command": "where_is", "args": [], "kwargs": kw});
        let at = |s: &mut Server, svc: &mut Service, kw: Value| call(s, svc, A, q(kw))[0]["return"]["logical"].clone();
        // z other than 1 or 2 counts as 0; x and y wrap around the machine.
        assert_eq!(
            at(&mut s, &mut svc, json!({"machine": "m", "x": 1, "y": 0, "z": 3})),
            json!([1, 0, 0])
        );
        assert_eq!(
            at(&mut s, &mut svc, json!({"machine": "m", "x": -1, "y": 3, "z": 2})),
            json!([1, 1, 2])
        );
        assert_eq!(
            at(
                &mut s,
                &mut svc,
                json!({"machine": "m", "x": i64::MAX, "y": i64::MIN, "z": 1})
            ),
            json!([1, 0, 1])
        );
        call(&mut s, &mut svc, A, create(json!({"owner": "o"}), json!([2, 2])));
        let r = call(
            &mut s,
            &mut svc,
            A,
            q(json!({"job_id": 1, "chip_x": i64::MAX, "chip_y": i64::MIN})),
        );
        assert_eq!(r[0]["return"]["job_id"], json!(1), "{r:?}");
    }

    #[test]
    fn a_reason_that_is_not_text_comes_back_as_it_was_given() {
        let (mut s, mut svc) = setup();
        call(&mut s, &mut svc, A, create(json!({"owner": "o"}), json!([2, 2])));
        call(&mut s, &mut svc, A, create(json!({"owner": "o"}), json!([2, 2])));
        let destroy = |id, reason: Value| json!({"command": "destroy_job", "args": [id, reason]});
        let reason = |s: &mut Server, svc: &mut Service, id| {
            call(s, svc, A, json!({"command": "get_job_state", "args": [id]}))[0]["return"]["reason"].clone()
        };
        // Allocated: the value itself; queued: in words, as Python's `str()` writes it.
        call(&mut s, &mut svc, A, destroy(1, json!(42)));
        assert_eq!(reason(&mut s, &mut svc, 1), json!(42));
        call(&mut s, &mut svc, A, destroy(2, json!([1, "a", null])));
        assert_eq!(reason(&mut s, &mut svc, 2), json!("Cancelled: [1, 'a', None]"));
        let log: Vec<String> = std::iter::from_fn(|| s.poll_log()).map(|l| l.text).collect();
        assert!(log.contains(&"destroy_job(1,42) from 10.0.0.1".to_string()), "{log:?}");
    }

    fn call_no_read(s: &mut Server, svc: &mut Service, c: ClientId, req: Value) {
        s.handle_line(T0, c, req.to_string().as_bytes(), svc).unwrap();
        pump(s, svc);
        s.take_output(c);
    }
}
