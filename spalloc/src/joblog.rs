//! The reference server's job log (`spalloc_jobs.log`), message by message.
//!
//! The reference writes one line per job action: `create_job(args,kwargs) from host`,
//! `power_job(N,On|Off) from host`, `destroy_job(N[,reason]) from host|internal`, one
//! `power(board, True|False) on BMP ip for job N` per board and one `link(board, link, False) on
//! BMP ip for job N` per peripheral link whenever it queues BMP work, and `completed shutdown of
//! job N [(owner-host: host)]` when a job goes. [`JobLog`] produces the same messages, in the
//! same order, from the protocol server's request lines ([`LogLine`]) and the service's events;
//! the driver adds the timestamps and writes the file. The format is described in
//! `spalloc_job_log.md` of the reference facts.

use crate::pyjson::repr;
use serde_json::Value;
use spinnbed_core::alloc::Shape;
use spinnbed_core::geometry::{Board, Link, Machine};
use spinnbed_core::reason::DestroyReason;
use spinnbed_core::sched::JobId;
use spinnbed_core::service::{Service, ServiceEvent};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;

/// A job-log message caused by a client request, written before the request is carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The message.
    pub text: String,
    /// The request destroys this job (its `destroy_job` line is already written).
    pub destroys: Option<JobId>,
}

#[derive(Debug, Clone, Default)]
struct Held {
    /// (board within its frame, the frame's BMP) per board.
    boards: Vec<(u16, Ipv4Addr)>,
    /// (board within its frame, link, the frame's BMP) per peripheral link.
    links: Vec<(u16, Link, Ipv4Addr)>,
}

/// Turns requests and service events into job-log messages.
#[derive(Debug, Default)]
pub struct JobLog {
    disable_links: bool,
    held: BTreeMap<JobId, Held>,
    client_destroys: BTreeSet<JobId>,
    out: VecDeque<String>,
}

fn host_text(h: Option<&str>) -> &str {
    h.unwrap_or("None")
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

impl JobLog {
    /// A log for a service that does (`true`) or does not disable peripheral links at
    /// power-on.
    pub fn new(disable_links: bool) -> JobLog {
        JobLog {
            disable_links,
            ..JobLog::default()
        }
    }

    /// The next message, oldest first.
    pub fn poll(&mut self) -> Option<String> {
        self.out.pop_front()
    }

    /// A request's message (from [`crate::Server::poll_log`]), in request order.
    pub fn request(&mut self, line: LogLine) {
        if let Some(j) = line.destroys {
            self.client_destroys.insert(j);
        }
        self.out.push_back(line.text);
    }

    fn power_lines(&mut self, job: JobId, on: bool, links: bool) {
        let Some(h) = self.held.get(&job) else { return };
        for (b, bmp) in &h.boards {
            self.out
                .push_back(format!("power({b}, {}) on BMP {bmp} for job {job}", py_bool(on)));
        }
        if links && self.disable_links {
            for (b, l, bmp) in &h.links {
                self.out
                    .push_back(format!("link({b}, {}, False) on BMP {bmp} for job {job}", *l as u8));
            }
        }
    }

    /// An event of `svc` (which the driver has just taken from it).
    pub fn on_event(&mut self, ev: &ServiceEvent, svc: &Service) {
        match ev {
            ServiceEvent::Created { job } => {
                // Jobs of clients were logged when requested; the simulated users' are logged
                // here, as the request they stand for.
                if let Some(j) = svc.job(*job)
                    && j.original.is_none()
                {
                    let (args, kwargs) = simulated_request(&j);
                    self.out.push_back(format!(
                        "create_job({args},{kwargs}) from {}",
                        host_text(j.keepalive_host.as_deref())
                    ));
                }
            }
            ServiceEvent::Allocated {
                job,
                machine,
                boards,
                periphery,
                host,
            } => {
                if let Some(m) = svc.machine(machine) {
                    self.held.insert(*job, held(m, boards, periphery));
                }
                self.out
                    .push_back(format!("power_job({job},On) from {}", host_text(host.as_deref())));
                self.power_lines(*job, true, true);
            }
            ServiceEvent::Powering { job, on } => self.power_lines(*job, *on, *on),
            ServiceEvent::Ready { .. } | ServiceEvent::MachineChanged { .. } | ServiceEvent::BoardsReleased { .. } => {}
            ServiceEvent::Destroyed { job, reason, host, .. } => {
                let by_client = self.client_destroys.remove(job);
                match &reason.reason {
                    DestroyReason::TimedOut | DestroyReason::ConfigurationFailed(_) => self
                        .out
                        .push_back(format!("destroy_job({job},{}) from internal", reason.reason)),
                    DestroyReason::Requested(r) if !by_client => self.out.push_back(match r {
                        Some(r) => format!("destroy_job({job},{r}) from internal"),
                        None => format!("destroy_job({job}) from internal"),
                    }),
                    _ => {}
                }
                self.power_lines(*job, false, false);
                self.held.remove(job);
                self.out.push_back(match host {
                    Some(h) => format!("completed shutdown of job {job} (owner-host: {h})"),
                    None => format!("completed shutdown of job {job}"),
                });
            }
        }
    }
}

fn held(m: &Machine, boards: &[Board], periphery: &[(Board, Link)]) -> Held {
    let at = |b: &Board| {
        let p = m.location(*b)?;
        Some((p.board, m.bmp_ip(p.frame_id())?))
    };
    Held {
        boards: boards.iter().filter_map(at).collect(),
        links: periphery
            .iter()
            .filter_map(|(b, l)| at(b).map(|(n, ip)| (n, *l, ip)))
            .collect(),
    }
}

/// The `create_job` arguments a simulated user's job stands for, as the log prints them.
fn simulated_request(j: &spinnbed_core::service::JobSummary) -> (String, String) {
    let r = &j.request;
    let args = match r.shape {
        Shape::AnyBoard => "()".to_string(),
        Shape::Boards { n, .. } => format!("({n},)"),
        Shape::Triads { w, h } | Shape::TriadsAt { w, h, .. } => format!("({w}, {h})"),
        Shape::Board { board } => format!("({}, {}, {})", board.x, board.y, board.z),
    };
    let mut kw: Vec<(String, Value)> = vec![
        ("owner".into(), Value::String(j.owner.clone())),
        (
            "keepalive".into(),
            j.keepalive
                .map_or(Value::Null, |k| serde_json::json!(k.as_micros() as f64 / 1e6)),
        ),
    ];
    if let Some(m) = &j.machine {
        kw.push(("machine".into(), Value::String(m.clone())));
    }
    if let Shape::Boards { min_ratio, .. } = r.shape {
        kw.push(("min_ratio".into(), serde_json::json!(min_ratio)));
    }
    if let Shape::TriadsAt { root, .. } = r.shape {
        kw.push(("board".into(), serde_json::json!([root.x, root.y, root.z])));
    }
    if let Some(d) = r.max_dead_boards {
        kw.push(("max_dead_boards".into(), serde_json::json!(d)));
    }
    if let Some(d) = r.max_dead_links {
        kw.push(("max_dead_links".into(), serde_json::json!(d)));
    }
    if r.require_torus {
        kw.push(("require_torus".into(), Value::Bool(true)));
    }
    let mut items: Vec<String> = kw
        .iter()
        .map(|(k, v)| format!("{}: {}", crate::pyjson::str_repr(k), repr(v)))
        .collect();
    if let Some(tags) = &j.tags {
        let set = if tags.is_empty() {
            "set()".to_string()
        } else {
            format!(
                "{{{}}}",
                tags.iter()
                    .map(|t| crate::pyjson::str_repr(t))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        items.insert(2, format!("'tags': {set}"));
    }
    (args, format!("{{{}}}", items.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{ClientId, Server};
    use spinnbed_core::alloc::Request;
    use spinnbed_core::geometry::MachineSpec;
    use spinnbed_core::reason::BmpFailure;
    use spinnbed_core::service::{NewJob, ServiceConfig};
    use spinnbed_core::time::{Duration, Instant};

    const T0: Instant = Instant(1_000_000);

    /// Runs requests through a server and a service and collects the job log.
    struct Rig {
        server: Server,
        svc: Service,
        log: JobLog,
    }

    impl Rig {
        fn new() -> Rig {
            let mut svc = Service::new(ServiceConfig::default());
            svc.add_machine(T0, Machine::new(MachineSpec::new("m", 2, 2)).unwrap())
                .unwrap();
            let mut server = Server::new();
            server.connect(ClientId(1), "192.0.2.10");
            let mut r = Rig {
                server,
                svc,
                log: JobLog::new(true),
            };
            r.pump();
            r.log.out.clear();
            r
        }
        fn send(&mut self, line: &str) {
            self.server
                .handle_line(T0, ClientId(1), line.as_bytes(), &mut self.svc)
                .unwrap();
            self.pump();
        }
        fn pump(&mut self) {
            while let Some(l) = self.server.poll_log() {
                self.log.request(l);
            }
            while let Some(ev) = self.svc.poll_event() {
                self.log.on_event(&ev, &self.svc);
            }
        }
        fn ack(&mut self, fail: bool) {
            while let Some(b) = self.svc.poll_bmp_batch() {
                let r = if fail {
                    Err(BmpFailure::RequestsFailed { bmp: b.bmp })
                } else {
                    Ok(())
                };
                self.svc.handle_bmp_batch_done(T0, b.id, r).unwrap();
            }
            self.pump();
        }
        fn lines(&mut self) -> Vec<String> {
            std::iter::from_fn(|| self.log.poll()).collect()
        }
    }

    #[test]
    fn a_single_board_job_logs_as_the_reference_does() {
        let mut r = Rig::new();
        r.send(r#"{"command": "create_job", "args": [], "kwargs": {"owner": "user1"}}"#);
        r.ack(false);
        r.send(r#"{"command": "destroy_job", "args": [1]}"#);
        r.ack(false);
        let lines = r.lines();
        let mut want = vec![
            "create_job((),{'owner': 'user1', 'keepalive': 60.0}) from 192.0.2.10".to_string(),
            "power_job(1,On) from 192.0.2.10".to_string(),
            "power(0, True) on BMP 192.168.0.0 for job 1".to_string(),
        ];
        for l in 0..6 {
            want.push(format!("link(0, {l}, False) on BMP 192.168.0.0 for job 1"));
        }
        want.push("destroy_job(1) from 192.0.2.10".into());
        want.push("power(0, False) on BMP 192.168.0.0 for job 1".into());
        want.push("completed shutdown of job 1 (owner-host: 192.0.2.10)".into());
        assert_eq!(lines, want);
    }

    #[test]
    fn internal_destroys_and_cancellations_log_as_the_reference_does() {
        let mut r = Rig::new();
        // Too big for the machine: cancelled at once, no destroy line.
        r.send(r#"{"command": "create_job", "args": [5, 5], "kwargs": {"owner": "u", "keepalive": null}}"#);
        // A BMP failure: destroyed from internal.
        r.send(r#"{"command": "create_job", "args": [], "kwargs": {"owner": "u", "keepalive": 1.5}}"#);
        r.ack(true);
        let lines = r.lines();
        assert_eq!(
            lines[0],
            "create_job((5, 5),{'owner': 'u', 'keepalive': None}) from 192.0.2.10"
        );
        assert_eq!(lines[1], "completed shutdown of job 1 (owner-host: 192.0.2.10)");
        assert!(
            lines.contains(
                &"destroy_job(2,Machine configuration failed. Error: Requests failed on BMP 192.168.0.0) from internal"
                    .to_string()
            )
        );
        // Timed out.
        r.send(r#"{"command": "create_job", "args": [], "kwargs": {"owner": "u", "keepalive": 1.0}}"#);
        r.lines();
        r.svc.handle_timeout(T0 + Duration::from_secs(2));
        r.pump();
        let lines = r.lines();
        assert_eq!(lines[0], "destroy_job(3,Job timed out.) from internal");
        assert!(lines.last().unwrap().starts_with("completed shutdown of job 3"));
    }

    #[test]
    fn simulated_users_jobs_are_logged_as_the_requests_they_stand_for() {
        let mut r = Rig::new();
        let new = NewJob {
            owner: "sim".into(),
            keepalive: None,
            machine: None,
            tags: Some(vec!["default".into()]),
            request: Request::new(Shape::Triads { w: 1, h: 1 }),
            estimate: None,
            original: None,
        };
        let id = r.svc.create_job(T0, None, new).unwrap();
        r.pump();
        r.svc
            .destroy_job(T0, id, DestroyReason::requested("Job finished by its user."))
            .unwrap();
        r.pump();
        let lines = r.lines();
        assert_eq!(
            lines[0],
            "create_job((1, 1),{'owner': 'sim', 'keepalive': None, 'tags': {'default'}}) from None"
        );
        assert_eq!(lines[1], "power_job(1,On) from None");
        assert_eq!(lines.iter().filter(|l| l.starts_with("power(")).count(), 6);
        assert_eq!(lines.iter().filter(|l| l.starts_with("link(")).count(), 12);
        assert!(lines.contains(&"destroy_job(1,Job finished by its user.) from internal".to_string()));
        assert_eq!(lines.last().unwrap(), "completed shutdown of job 1");
    }
}
