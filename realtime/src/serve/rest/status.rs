//! The status pages for people (the Java service's web UI): `/spalloc/system/` (who you are,
//! the machines), `list_machines`, `machine_info/{name}` (a live map of the boards: which job
//! holds each, dead boards and links, power), `list_jobs` and `job_info/{id}`.
//!
//! Server-rendered HTML in the reports' palette, no JavaScript: each page refreshes itself
//! every [`REFRESH_SECONDS`] with a `<meta http-equiv="refresh">`. A page needs a login (the
//! session cookie, or a bearer token); without one it redirects to the login page. The data is
//! the loop's answer to a status call ([`spinnbed_spalloc::rest::status`]), which applies the
//! API's ownership rule: a user who is not an administrator sees their own jobs, and of
//! anybody else's only that its boards are in use; another user's job page is the same 404 as
//! a job that does not exist. Everything user-controlled (machine names, tags, owners,
//! reasons, hosts) is escaped.
//!
//! The board map is an inline SVG drawn as the reports' machine map is (`spinnbed-reports`'
//! `charts::machine`): a board's Ethernet chip at (12x, 12y) plus (0, 0), (8, 4) or (4, 8) for
//! z = 0, 1, 2, each board a hexagon, chip coordinates hexagonal with the y axis at 120°.

use super::accounts::Identity;
use super::http::Conn;
use super::pages::{esc, html, respond};
use super::web::{Shared, page_call};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use spinnbed_core::geometry::{Board, Link};
use spinnbed_core::sched::JobId;
use spinnbed_core::time::{Duration, Instant};
use spinnbed_spalloc::rest::status::{
    BoardPower, Holder, JobStatus, JobsStatus, MachineStatus, Status, StatusView, state_name,
};
use spinnbed_spalloc::rest::urls::encode_segment;
use spinnbed_spalloc::rest::{RestCall, RestReply, format_iso_duration, format_iso_time};
use std::fmt::Write;
use std::sync::Arc;

/// How often a page reloads itself, in seconds.
pub const REFRESH_SECONDS: u32 = 10;

const HOME: &str = "/spalloc/system/";
const MACHINES: &str = "/spalloc/system/list_machines";
const JOBS: &str = "/spalloc/system/list_jobs";

fn machine_href(name: &str) -> String {
    format!("/spalloc/system/machine_info/{}", encode_segment(name))
}

fn job_href(id: JobId) -> String {
    format!("/spalloc/system/job_info/{}", id.0)
}

/// Which page a status answer is rendered as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Home,
    Machines,
    Machine,
    Jobs,
    Job,
}

type St = State<Arc<Shared>>;
type Cx = axum::Extension<Conn>;

/// `/spalloc/system/`.
pub async fn home(State(s): St, axum::Extension(c): Cx, h: HeaderMap) -> Response {
    show(&s, &h, &c, RestCall::StatusMachines, Kind::Home).await
}

/// `/spalloc/system/list_machines`.
pub async fn list_machines(State(s): St, axum::Extension(c): Cx, h: HeaderMap) -> Response {
    show(&s, &h, &c, RestCall::StatusMachines, Kind::Machines).await
}

/// `/spalloc/system/machine_info/{name}`.
pub async fn machine_info(State(s): St, axum::Extension(c): Cx, h: HeaderMap, Path(name): Path<String>) -> Response {
    show(&s, &h, &c, RestCall::StatusMachine { name }, Kind::Machine).await
}

/// `/spalloc/system/list_jobs`.
pub async fn list_jobs(State(s): St, axum::Extension(c): Cx, h: HeaderMap) -> Response {
    show(&s, &h, &c, RestCall::StatusJobs, Kind::Jobs).await
}

/// `/spalloc/system/job_info/{id}`.
pub async fn job_info(State(s): St, axum::Extension(c): Cx, h: HeaderMap, Path(id): Path<String>) -> Response {
    // Not a number: no such job, as for any other id the caller cannot see.
    let call = match id.parse::<u64>() {
        Ok(id) => RestCall::StatusJob { id: JobId(id) },
        Err(_) => RestCall::StatusJob { id: JobId(u64::MAX) },
    };
    show(&s, &h, &c, call, Kind::Job).await
}

async fn show(s: &Shared, h: &HeaderMap, conn: &Conn, call: RestCall, kind: Kind) -> Response {
    let (who, reply) = match page_call(s, h, conn, call).await {
        Ok(r) => r,
        Err(redirect_or_error) => return redirect_or_error,
    };
    render(&who, kind, reply)
}

/// The page for a status answer.
fn render(who: &Identity, kind: Kind, reply: RestReply) -> Response {
    match reply {
        RestReply::Status(st) => {
            let (title, body) = page_body(who, kind, &st);
            respond(StatusCode::OK, frame(who, &title, Some(st.now), &body))
        }
        RestReply::NotFound(what) => {
            let title = match kind {
                Kind::Job => "No such job",
                Kind::Machine => "No such machine",
                _ => "Not found",
            };
            let body = format!(
                "<p class=\"err\">{}</p>\n<p><a href=\"{JOBS}\">Your jobs</a> · <a href=\"{MACHINES}\">Machines</a></p>",
                esc(&what)
            );
            respond(StatusCode::NOT_FOUND, frame(who, title, None, &body))
        }
        other => {
            let status = StatusCode::from_u16(other.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = format!("<p class=\"err\">{}</p>", esc(&String::from_utf8_lossy(other.body())));
            respond(status, frame(who, "Something went wrong", None, &body))
        }
    }
}

/// The frame of every status page: refresh, navigation, who is logged in, title, time.
fn frame(who: &Identity, title: &str, now: Option<Instant>, body: &str) -> String {
    let role = if who.admin { " (administrator)" } else { "" };
    let nav = format!(
        "<nav><a href=\"{HOME}\"><b>spalloc</b></a><a href=\"{MACHINES}\">Machines</a><a href=\"{JOBS}\">Jobs</a>\
         <span class=\"who\">Logged in as <b>{}</b>{role}</span>\
         <form method=\"post\" action=\"/spalloc/system/perform_logout\"><button type=\"submit\">Log out</button></form></nav>",
        esc(&who.user)
    );
    let sub = now.map_or(String::new(), |t| {
        format!(
            "<p class=\"sub\">As of {} (UTC) · this page reloads itself every {REFRESH_SECONDS} s</p>\n",
            format_iso_time(t)
        )
    });
    let head = format!("<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\" />\n");
    html(title, &head, &format!("{nav}\n<h1>{}</h1>\n{sub}{body}", esc(title)))
}

/// Title and body of a page.
fn page_body(who: &Identity, kind: Kind, st: &Status) -> (String, String) {
    match (&st.view, kind) {
        (StatusView::Machines(ms), Kind::Home) => ("spalloc".into(), home_body(who, ms)),
        (StatusView::Machines(ms), _) => ("Machines".into(), machines_table(ms)),
        (StatusView::Machine(m), _) => (format!("Machine {}", m.name), machine_body(who, m)),
        (StatusView::Jobs(j), _) => (
            if who.admin { "Jobs".into() } else { "Your jobs".into() },
            jobs_body(who, st.now, j),
        ),
        (StatusView::Job(j), _) => (format!("Job {}", j.id.0), job_body(who, st.now, j)),
    }
}

fn home_body(who: &Identity, ms: &[MachineStatus]) -> String {
    let scope = if who.admin {
        "As an administrator you see every job and who owns it."
    } else {
        "You see your own jobs; boards held by other users' jobs show as in use."
    };
    format!(
        "<p>You are logged in as <b>{}</b>. {scope}</p>\n\
         <ul>\n<li><a href=\"{MACHINES}\">Machines</a>: each with a live map of its boards</li>\n\
         <li><a href=\"{JOBS}\">{}</a></li>\n</ul>\n<h2>Machines</h2>\n{}",
        esc(&who.user),
        if who.admin { "Jobs" } else { "Your jobs" },
        machines_table(ms)
    )
}

fn machines_table(ms: &[MachineStatus]) -> String {
    if ms.is_empty() {
        return "<p class=\"note\">The service has no machines.</p>\n".into();
    }
    let mut t = String::from(
        "<table class=\"machines\">\n<tr><th>Machine</th><th>Tags</th><th>Size</th><th>Boards</th>\
         <th>In use</th><th>Free</th><th>Powered</th><th>Dead boards</th><th>Dead links</th></tr>\n",
    );
    for m in ms {
        let c = m.counts();
        let _ = writeln!(
            t,
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td>{} × {} triads</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td></tr>",
            esc(&machine_href(&m.name)),
            esc(&m.name),
            esc(&m.tags.join(", ")),
            m.width,
            m.height,
            c.total,
            c.in_use,
            c.total.saturating_sub(c.dead + c.in_use),
            c.powered,
            c.dead,
            m.dead_links.len()
        );
    }
    t.push_str("</table>\n");
    t
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn machine_body(who: &Identity, m: &MachineStatus) -> String {
    let c = m.counts();
    let mut out = format!(
        "<p class=\"sub\">{} × {} triads · {}: {} in use, {} free, {} dead · {} · {} switched on{}</p>\n",
        m.width,
        m.height,
        plural(c.total, "board", "boards"),
        c.in_use,
        c.total.saturating_sub(c.dead + c.in_use),
        c.dead,
        plural(m.dead_links.len(), "dead link", "dead links"),
        c.powered,
        if m.tags.is_empty() {
            String::new()
        } else {
            format!(" · tags {}", esc(&m.tags.join(", ")))
        }
    );
    out.push_str(&board_map(m));
    out.push_str(&LEGEND);

    // The jobs on it that this user may see.
    let mut jobs: Vec<(JobId, &str, &str, usize, BoardPower)> = Vec::new();
    let mut others = 0;
    for b in &m.boards {
        match &b.holder {
            Holder::Job(j) => match jobs.iter_mut().find(|r| r.0 == j.id) {
                Some(r) => r.3 += 1,
                None => jobs.push((j.id, &j.owner, state_name(j.state), 1, b.power)),
            },
            Holder::InUse => others += 1,
            Holder::Free | Holder::Releasing => {}
        }
    }
    out.push_str("<h2>Jobs on this machine</h2>\n");
    if jobs.is_empty() {
        out.push_str(if who.admin {
            "<p class=\"note\">No job has boards here.</p>\n"
        } else {
            "<p class=\"note\">None of your jobs has boards here.</p>\n"
        });
    } else {
        out.push_str(
            "<table class=\"jobs\">\n<tr><th>Job</th><th>Owner</th><th>State</th><th>Boards</th><th>Power</th></tr>\n",
        );
        for (id, owner, state, n, power) in &jobs {
            let _ = writeln!(
                out,
                "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td class=\"num\">{n}</td><td>{}</td></tr>",
                job_href(*id),
                id.0,
                esc(owner),
                badge(state),
                power_word(*power)
            );
        }
        out.push_str("</table>\n");
    }
    if others > 0 {
        let _ = writeln!(
            out,
            "<p class=\"note\">Other users' jobs hold {} here.</p>",
            plural(others, "board", "boards")
        );
    }

    out.push_str("<h2>Dead boards and links</h2>\n");
    let dead: Vec<String> = m
        .boards
        .iter()
        .filter(|b| b.dead)
        .map(|b| {
            let at = b.physical.map_or(String::new(), |p| format!(" {p}"));
            format!("<li class=\"dead-board\">board {}{at}</li>", b.board)
        })
        .collect();
    let links: Vec<String> = m
        .dead_links
        .iter()
        .map(|(b, l)| format!("<li class=\"dead-link\">link {l} of board {b}</li>"))
        .collect();
    if dead.is_empty() && links.is_empty() {
        out.push_str("<p class=\"note\">Every board and link works.</p>\n");
    } else {
        let _ = writeln!(out, "<ul>\n{}\n</ul>", [dead, links].concat().join("\n"));
    }

    out.push_str(
        "<details>\n<summary>Every board</summary>\n<table class=\"boards\">\n\
                  <tr><th>Board</th><th>Position</th><th>Address</th><th>Held by</th><th>Power</th></tr>\n",
    );
    for b in &m.boards {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            b.board,
            b.physical.map_or("—".into(), |p| p.to_string()),
            b.ip.map_or("—".into(), |ip| ip.to_string()),
            if b.dead {
                "dead".to_string()
            } else {
                holder_html(&b.holder)
            },
            power_word(b.power)
        );
    }
    out.push_str("</table>\n</details>\n");
    out
}

fn holder_html(h: &Holder) -> String {
    match h {
        Holder::Free => "free".into(),
        Holder::Job(j) => format!("<a href=\"{}\">job {}</a> ({})", job_href(j.id), j.id.0, esc(&j.owner)),
        Holder::InUse => "in use (another user's job)".into(),
        Holder::Releasing => "being released".into(),
    }
}

fn power_word(p: BoardPower) -> &'static str {
    match p {
        BoardPower::Off => "off",
        BoardPower::PoweringOn => "switching on",
        BoardPower::On => "on",
        BoardPower::PoweringOff => "switching off",
    }
}

fn badge(state: &str) -> String {
    format!("<span class=\"state st-{state}\">{state}</span>")
}

/// A duration in words: `45 s`, `2 min 5 s`, `3 h 20 min`.
fn words(d: Duration) -> String {
    let s = d.as_micros() / 1_000_000;
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s / 60 % 60),
    }
}

fn keepalive_html(now: Instant, j: &JobStatus) -> String {
    let Some(k) = j.keepalive else {
        return "none".into();
    };
    let mut s = words(k);
    if let Some(u) = j.keepalive_until {
        if u > now {
            let _ = write!(s, ", runs out in {}", words(Duration(u.0 - now.0)));
        } else {
            s.push_str(", ran out");
        }
    }
    if let Some(h) = &j.keepalive_host {
        let _ = write!(s, ", last from {}", esc(h));
    }
    s
}

fn boards_summary(j: &JobStatus) -> String {
    match j.boards.as_slice() {
        [] => "—".into(),
        [b] => b.board.to_string(),
        bs => format!("{} boards", bs.len()),
    }
}

fn machine_link(name: Option<&str>) -> String {
    name.map_or("—".into(), |n| {
        format!("<a href=\"{}\">{}</a>", esc(&machine_href(n)), esc(n))
    })
}

fn jobs_body(who: &Identity, now: Instant, j: &JobsStatus) -> String {
    let mut out = String::new();
    if !who.admin {
        out.push_str("<p class=\"note\">Your jobs only; an administrator sees everyone's.</p>\n");
    }
    out.push_str("<h2>Live</h2>\n");
    if j.live.is_empty() {
        out.push_str("<p class=\"note\">No live jobs.</p>\n");
    } else {
        out.push_str(
            "<table class=\"jobs live\">\n<tr><th>Job</th><th>State</th><th>Owner</th><th>Request</th><th>Boards</th>\
             <th>Machine</th><th>Created</th><th>Keepalive</th></tr>\n",
        );
        for job in &j.live {
            let _ = writeln!(
                out,
                "<tr data-job=\"{id}\"><td><a href=\"{}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td></tr>",
                job_href(job.id),
                badge(state_name(job.state)),
                esc(&job.owner),
                esc(&job.request),
                boards_summary(job),
                machine_link(job.machine.as_deref()),
                format_iso_time(job.created),
                keepalive_html(now, job),
                id = job.id.0,
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("<h2>Destroyed</h2>\n");
    if j.destroyed.is_empty() {
        out.push_str("<p class=\"note\">None remembered.</p>\n");
    } else {
        out.push_str(
            "<table class=\"jobs destroyed\">\n<tr><th>Job</th><th>Owner</th><th>Request</th><th>Boards</th>\
             <th>Machine</th><th>Created</th><th>Destroyed</th><th>Reason</th></tr>\n",
        );
        for job in &j.destroyed {
            let _ = writeln!(
                out,
                "<tr data-job=\"{id}\"><td><a href=\"{}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td></tr>",
                job_href(job.id),
                esc(&job.owner),
                esc(&job.request),
                boards_summary(job),
                machine_link(job.machine.as_deref()),
                format_iso_time(job.created),
                job.finished.map_or("—".into(), format_iso_time),
                esc(job.reason.as_deref().unwrap_or("")),
                id = job.id.0,
            );
        }
        out.push_str("</table>\n");
        if j.more_destroyed > 0 {
            let _ = writeln!(
                out,
                "<p class=\"note\">and {} more, not shown.</p>",
                plural(j.more_destroyed, "older destroyed job", "older destroyed jobs")
            );
        }
    }
    out
}

fn job_body(_who: &Identity, now: Instant, j: &JobStatus) -> String {
    let mut rows: Vec<(&str, String)> = vec![("State", badge(state_name(j.state))), ("Owner", esc(&j.owner))];
    if let Some(r) = &j.reason {
        rows.push(("Reason", format!("<span class=\"reason\">{}</span>", esc(r))));
    }
    rows.push(("Request", esc(&j.request)));
    rows.push(("Machine", machine_link(j.machine.as_deref())));
    if let Some((w, h)) = j.chips {
        rows.push(("Size", format!("{w} × {h} chips")));
    }
    let power = match (j.state, j.power) {
        (spinnbed_core::service::JobState::Power, Some(true)) => "switching on",
        (spinnbed_core::service::JobState::Power, Some(false)) => "switching off",
        (_, Some(true)) => "on",
        (_, Some(false)) => "off",
        (_, None) => "—",
    };
    rows.push(("Power", power.into()));
    rows.push(("Created", format_iso_time(j.created)));
    if let Some(f) = j.finished {
        rows.push(("Destroyed", format_iso_time(f)));
    }
    rows.push((
        "Keepalive",
        match (j.finished, j.keepalive) {
            (Some(_), Some(k)) => format!("{} ({})", words(k), format_iso_duration(k)),
            _ => keepalive_html(now, j),
        },
    ));
    rows.push((
        "REST",
        format!(
            "<a href=\"/spalloc/srv/spalloc/jobs/{0}\">/spalloc/srv/spalloc/jobs/{0}</a>",
            j.id.0
        ),
    ));
    let mut out = String::from("<table class=\"job\">\n");
    for (k, v) in rows {
        let _ = writeln!(out, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    out.push_str("</table>\n<h2>Boards</h2>\n");
    if j.boards.is_empty() {
        out.push_str(if j.finished.is_some() {
            "<p class=\"note\">It never had boards.</p>\n"
        } else {
            "<p class=\"note\">None yet: the job is waiting for boards.</p>\n"
        });
    } else {
        out.push_str("<table class=\"boards\">\n<tr><th>Board</th><th>Position</th><th>Address</th></tr>\n");
        for b in &j.boards {
            let _ = writeln!(
                out,
                "<tr data-board=\"{},{},{}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
                b.board.x,
                b.board.y,
                b.board.z,
                b.board,
                b.physical.map_or("—".into(), |p| p.to_string()),
                b.ip.map_or("—".into(), |ip| ip.to_string())
            );
        }
        out.push_str("</table>\n");
    }
    if !j.connections.is_empty() {
        out.push_str(
            "<h2>Connections</h2>\n<table class=\"connections\">\n<tr><th>Ethernet chip (job x, y)</th><th>Address</th></tr>\n",
        );
        for (c, ip) in &j.connections {
            let _ = writeln!(out, "<tr><td>({}, {})</td><td>{ip}</td></tr>", c.x, c.y);
        }
        out.push_str("</table>\n");
    }
    out
}

// ---- The board map ------------------------------------------------------------------------

const SQRT3_2: f64 = 0.866_025_403_784_438_6;
/// The corner chips of a board relative to its Ethernet chip, anticlockwise from the
/// bottom-left: the edge from corner i to i + 1 faces south, east, north-east, north, west,
/// south-west (as in the reports' map).
const CORNERS: [(f64, f64); 6] = [(0.0, 0.0), (4.0, 0.0), (7.0, 3.0), (7.0, 7.0), (4.0, 7.0), (0.0, 3.0)];
const CENTRE: (f64, f64) = (11.0 / 3.0, 10.0 / 3.0);
/// 1.14 would tile the plane; less leaves a white gap between boards.
const SCALE: f64 = 1.08;
/// Job colours: Okabe–Ito without black (too close to a dead board) and vermillion (dead
/// links), each with the text colour that reads on it.
const JOB_COLOURS: [(&str, &str); 6] = [
    ("#0072B2", "#fff"),
    ("#E69F00", "#1a1a1a"),
    ("#009E73", "#fff"),
    ("#CC79A7", "#1a1a1a"),
    ("#56B4E9", "#1a1a1a"),
    ("#F0E442", "#1a1a1a"),
];
const FREE: &str = "#EEEEEE";
const IN_USE: &str = "#9A9A9A";
const RELEASING: &str = "#D4D4D4";
const DEAD: &str = "#3A3A3A";
const DEAD_LINK: &str = "#D55E00";
const POWER_ON: &str = "#F0E442";

fn edge_of(link: Link) -> usize {
    match link {
        Link::South => 0,
        Link::East => 1,
        Link::NorthEast => 2,
        Link::North => 3,
        Link::West => 4,
        Link::SouthWest => 5,
    }
}

fn ethernet_chip(b: Board) -> (f64, f64) {
    let (ox, oy) = match b.z {
        0 => (0.0, 0.0),
        1 => (8.0, 4.0),
        _ => (4.0, 8.0),
    };
    (12.0 * f64::from(b.x) + ox, 12.0 * f64::from(b.y) + oy)
}

/// Chip coordinates to drawing coordinates (y down, as SVG has it).
fn screen(cx: f64, cy: f64) -> (f64, f64) {
    (cx - 0.5 * cy, -SQRT3_2 * cy)
}

fn hexagon(b: Board, scale: f64) -> [(f64, f64); 6] {
    let (ex, ey) = ethernet_chip(b);
    CORNERS.map(|(cx, cy)| {
        screen(
            ex + CENTRE.0 + scale * (cx - CENTRE.0),
            ey + CENTRE.1 + scale * (cy - CENTRE.1),
        )
    })
}

fn centre(b: Board) -> (f64, f64) {
    let (ex, ey) = ethernet_chip(b);
    screen(ex + CENTRE.0, ey + CENTRE.1)
}

fn points(p: &[(f64, f64)]) -> String {
    p.iter()
        .map(|(x, y)| format!("{x:.2},{y:.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The machine's boards as an inline SVG: each a hexagon coloured by its job (labelled with
/// the job's id, a link to its page), grey and hatched if another user's job has it, dark
/// with a white cross if dead; a yellow dot (upper right) when it is switched on (a ring while switching);
/// dead links as vermillion bars on the edge they leave from. Every board is a `<g>` with
/// `data-board="x,y,z"`, and `data-job` when the job is named, and a tooltip.
fn board_map(m: &MachineStatus) -> String {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for b in &m.boards {
        for (x, y) in hexagon(b.board, SCALE) {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if m.boards.is_empty() {
        return "<p class=\"note\">No boards.</p>\n".into();
    }
    // Room for the triad labels: left of the rows and under the bottom row.
    let (left, right, top, bottom) = (x0 - 16.0, x1 + 2.0, y0 - 2.0, y1 + 8.5);
    let (vw, vh) = (right - left, bottom - top);
    let px = (1150.0 / vw).min(14.0);
    let mut svg = format!(
        "<svg class=\"map\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" viewBox=\"{left:.2} {top:.2} {vw:.2} {vh:.2}\" \
         width=\"{:.0}\" height=\"{:.0}\" font-family=\"system-ui,'DejaVu Sans',sans-serif\">\n\
         <title>Boards of machine {}</title>\n\
         <defs><pattern id=\"hatch\" width=\"1.6\" height=\"1.6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">\
         <rect width=\"1.6\" height=\"1.6\" fill=\"{IN_USE}\"/><rect width=\"0.7\" height=\"1.6\" fill=\"#BDBDBD\"/></pattern></defs>\n",
        vw * px,
        vh * px,
        esc(&m.name)
    );
    for b in &m.boards {
        let (x, y, z) = (b.board.x, b.board.y, b.board.z);
        let hex = points(&hexagon(b.board, SCALE));
        let (cx, cy) = centre(b.board);
        let mut tip = format!("board {}", b.board);
        if let Some(p) = b.physical {
            let _ = write!(tip, " {p}");
        }
        if let Some(ip) = b.ip {
            let _ = write!(tip, " {ip}");
        }
        let (class, fill, label, link, job) = if b.dead {
            tip.push_str(": dead");
            ("dead", DEAD.to_string(), None, None, None)
        } else {
            match &b.holder {
                Holder::Free => {
                    tip.push_str(": free");
                    ("free", FREE.to_string(), None, None, None)
                }
                Holder::Job(j) => {
                    let (fill, ink) = JOB_COLOURS[(j.id.0 % JOB_COLOURS.len() as u64) as usize];
                    let _ = write!(tip, ": job {} of {} ({})", j.id.0, j.owner, state_name(j.state));
                    let label = format!(
                        "<text x=\"{cx:.2}\" y=\"{:.2}\" text-anchor=\"middle\" font-size=\"3.2\" font-weight=\"600\" fill=\"{ink}\">{}</text>",
                        cy + 1.6,
                        j.id.0
                    );
                    ("job", fill.to_string(), Some(label), Some(job_href(j.id)), Some(j.id))
                }
                Holder::InUse => {
                    tip.push_str(": in use");
                    let label = format!(
                        "<text x=\"{cx:.2}\" y=\"{:.2}\" text-anchor=\"middle\" font-size=\"1.9\" fill=\"#1a1a1a\">in use</text>",
                        cy + 1.3
                    );
                    ("in-use", "url(#hatch)".to_string(), Some(label), None, None)
                }
                Holder::Releasing => {
                    tip.push_str(": being released");
                    ("releasing", RELEASING.to_string(), None, None, None)
                }
            }
        };
        let power = match b.power {
            BoardPower::Off => "off",
            BoardPower::PoweringOn => "switching-on",
            BoardPower::On => "on",
            BoardPower::PoweringOff => "switching-off",
        };
        if b.power != BoardPower::Off {
            let _ = write!(tip, ", power {}", power_word(b.power));
        }
        let data_job = job.map_or(String::new(), |j| format!(" data-job=\"{}\"", j.0));
        let _ = write!(
            svg,
            "<g class=\"board {class}\" data-board=\"{x},{y},{z}\"{data_job} data-power=\"{power}\"><title>{}</title>",
            esc(&tip)
        );
        if let Some(href) = &link {
            let _ = write!(svg, "<a href=\"{}\">", esc(href));
        }
        let _ = write!(
            svg,
            "<polygon points=\"{hex}\" fill=\"{fill}\" stroke=\"{}\" stroke-width=\"0.25\"/>",
            if b.dead { DEAD } else { "#8a8a8a" }
        );
        if b.dead {
            let r = 1.7;
            let _ = write!(
                svg,
                "<path d=\"M{:.2},{:.2}L{:.2},{:.2}M{:.2},{:.2}L{:.2},{:.2}\" stroke=\"#fff\" stroke-width=\"0.6\"/>",
                cx - r,
                cy - r,
                cx + r,
                cy + r,
                cx - r,
                cy + r,
                cx + r,
                cy - r
            );
        }
        if let Some(l) = label {
            svg.push_str(&l);
        }
        if let Some(d) = match b.power {
            BoardPower::Off => None,
            BoardPower::On => Some(format!("fill=\"{POWER_ON}\"")),
            BoardPower::PoweringOn | BoardPower::PoweringOff => {
                Some("fill=\"#fff\" stroke-dasharray=\"0.5 0.35\"".to_string())
            }
        } {
            let _ = write!(
                svg,
                "<circle cx=\"{:.2}\" cy=\"{:.2}\" r=\"0.8\" {d} stroke=\"#1a1a1a\" stroke-width=\"0.3\"/>",
                cx + 2.1,
                cy - 1.5
            );
        }
        if link.is_some() {
            svg.push_str("</a>");
        }
        svg.push_str("</g>\n");
    }
    // Dead links after every board, so that no neighbour paints over them.
    for (b, l) in &m.dead_links {
        let hex = hexagon(*b, SCALE * 0.97);
        let e = edge_of(*l);
        let (p, q) = (hex[e], hex[(e + 1) % 6]);
        let a = (p.0 + 0.05 * (q.0 - p.0), p.1 + 0.05 * (q.1 - p.1));
        let z = (p.0 + 0.95 * (q.0 - p.0), p.1 + 0.95 * (q.1 - p.1));
        let d = format!("M{:.2},{:.2}L{:.2},{:.2}", a.0, a.1, z.0, z.1);
        let _ = writeln!(
            svg,
            "<g class=\"dead-link\" data-link=\"{},{},{},{l}\"><title>dead link: {l} of board {b}</title>\
             <path d=\"{d}\" stroke=\"#fff\" stroke-width=\"1.5\" stroke-linecap=\"round\"/>\
             <path d=\"{d}\" stroke=\"{DEAD_LINK}\" stroke-width=\"1\" stroke-linecap=\"round\"/></g>",
            b.x, b.y, b.z
        );
    }
    // Triad coordinates: x under the bottom row, y left of each row (rows shift left by half
    // a triad).
    let label_y = y1 + 3.5;
    for x in 0..m.width {
        let (lx, _) = screen(12.0 * f64::from(x) + 6.0, 0.0);
        let _ = writeln!(
            svg,
            "<text x=\"{lx:.2}\" y=\"{label_y:.2}\" text-anchor=\"middle\" font-size=\"2\" fill=\"#1a1a1a\">{x}</text>"
        );
    }
    for y in 0..m.height {
        let y = f64::from(y);
        let _ = writeln!(
            svg,
            "<text x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"end\" font-size=\"2\" fill=\"#1a1a1a\">{y}</text>",
            -1.8 - 6.0 * y - 1.5,
            -SQRT3_2 * (12.0 * y + 6.0) + 0.9
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"middle\" font-size=\"1.7\" fill=\"#555\">triad x</text>",
        (x0 + x1) / 2.0,
        label_y + 3.2
    );
    let top_row = f64::from(m.height.saturating_sub(1));
    let _ = writeln!(
        svg,
        "<text x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"end\" font-size=\"1.7\" fill=\"#555\">triad y</text>",
        -1.8 - 6.0 * top_row - 1.5,
        -SQRT3_2 * (12.0 * top_row + 6.0) - 4.0
    );
    svg.push_str("</svg>\n");
    svg
}

/// A swatch for the legend.
fn swatch(fill: &str, extra: &str) -> String {
    format!(
        "<svg width=\"16\" height=\"16\" viewBox=\"0 0 16 16\"><rect x=\"1\" y=\"1\" width=\"14\" height=\"14\" fill=\"{fill}\" stroke=\"#8a8a8a\"/>{extra}</svg>"
    )
}

static LEGEND: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "<div class=\"legend\">\
         <span>{} a job (its id; one colour per job)</span>\
         <span>{} another user's job</span>\
         <span>{} free</span>\
         <span>{} being released</span>\
         <span>{} dead board</span>\
         <span><svg width=\"16\" height=\"16\"><path d=\"M1,8L15,8\" stroke=\"{DEAD_LINK}\" stroke-width=\"4\"/></svg>dead link (on the side it leaves)</span>\
         <span><svg width=\"16\" height=\"16\"><circle cx=\"8\" cy=\"8\" r=\"5\" fill=\"{POWER_ON}\" stroke=\"#1a1a1a\"/></svg>switched on</span>\
         <span><svg width=\"16\" height=\"16\"><circle cx=\"8\" cy=\"8\" r=\"5\" fill=\"#fff\" stroke=\"#1a1a1a\" stroke-dasharray=\"2 1.5\"/></svg>switching on or off</span>\
         </div>\n",
        swatch(JOB_COLOURS[0].0, ""),
        swatch(
            "#BDBDBD",
            &format!("<path d=\"M1,9L9,1M5,15L15,5\" stroke=\"{IN_USE}\" stroke-width=\"3\"/>")
        ),
        swatch(FREE, ""),
        swatch(RELEASING, ""),
        swatch(
            DEAD,
            "<path d=\"M4,4L12,12M4,12L12,4\" stroke=\"#fff\" stroke-width=\"2\"/>"
        ),
    )
});

#[cfg(test)]
mod tests {
    use super::*;
    use spinnbed_core::geometry::Physical;
    use spinnbed_core::service::JobState;
    use spinnbed_spalloc::rest::status::{BoardAt, BoardStatus, JobRef};

    const EVIL: &str = "<script>alert('x')</script>&\"";

    fn evil_machine() -> MachineStatus {
        let boards = (0..3u8)
            .map(|z| BoardStatus {
                board: Board::new(0, 0, z),
                physical: Some(Physical::new(0, 0, u16::from(z))),
                ip: None,
                dead: z == 2,
                holder: match z {
                    0 => Holder::Job(JobRef {
                        id: JobId(7),
                        owner: EVIL.into(),
                        state: JobState::Ready,
                    }),
                    1 => Holder::InUse,
                    _ => Holder::Free,
                },
                power: if z == 0 { BoardPower::On } else { BoardPower::Off },
            })
            .collect();
        MachineStatus {
            name: EVIL.into(),
            tags: vec![EVIL.into()],
            width: 1,
            height: 1,
            boards,
            dead_links: vec![(Board::new(0, 0, 0), Link::North)],
        }
    }

    fn evil_job() -> JobStatus {
        JobStatus {
            id: JobId(7),
            owner: EVIL.into(),
            state: JobState::Destroyed,
            power: None,
            reason: Some(EVIL.into()),
            request: format!("1 board on {EVIL}"),
            created: Instant(1_795_313_151_871_000),
            finished: Some(Instant(1_795_313_161_871_000)),
            keepalive: Some(Duration::from_secs(60)),
            keepalive_until: None,
            keepalive_host: Some(EVIL.into()),
            machine: Some(EVIL.into()),
            boards: vec![BoardAt {
                board: Board::new(0, 0, 0),
                physical: None,
                ip: None,
            }],
            chips: None,
            connections: Vec::new(),
        }
    }

    fn clean(page: &str) {
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("alert('x')"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"),
            "{page}"
        );
    }

    #[test]
    fn every_page_escapes_what_users_and_machines_name() {
        let who = Identity {
            user: "root".into(),
            admin: true,
        };
        let now = Instant(1_795_313_171_871_000);
        let m = evil_machine();
        for (kind, view) in [
            (Kind::Home, StatusView::Machines(vec![m.clone()])),
            (Kind::Machines, StatusView::Machines(vec![m.clone()])),
            (Kind::Machine, StatusView::Machine(Box::new(m.clone()))),
            (
                Kind::Jobs,
                StatusView::Jobs(JobsStatus {
                    live: Vec::new(),
                    destroyed: vec![evil_job()],
                    more_destroyed: 0,
                }),
            ),
            (Kind::Job, StatusView::Job(Box::new(evil_job()))),
        ] {
            let (title, body) = page_body(&who, kind, &Status { now, view });
            let page = frame(&who, &title, Some(now), &body);
            clean(&page);
            assert!(
                page.contains("<meta http-equiv=\"refresh\" content=\"10\" />"),
                "{page}"
            );
            // Machine names in links are percent-encoded.
            if matches!(kind, Kind::Home | Kind::Machines | Kind::Jobs | Kind::Job) {
                assert!(
                    page.contains("/spalloc/system/machine_info/%3Cscript%3Ealert%28%27x%27%29%3C%2Fscript%3E%26%22"),
                    "{page}"
                );
            }
        }
    }

    #[test]
    fn the_map_names_the_job_on_its_board_and_marks_dead_boards_links_and_power() {
        let svg = board_map(&evil_machine());
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
        assert!(
            svg.contains("<g class=\"board job\" data-board=\"0,0,0\" data-job=\"7\" data-power=\"on\">"),
            "{svg}"
        );
        assert!(svg.contains(">7</text>"), "{svg}");
        assert!(svg.contains("<a href=\"/spalloc/system/job_info/7\">"), "{svg}");
        assert!(
            svg.contains("<g class=\"board in-use\" data-board=\"0,0,1\" data-power=\"off\">"),
            "{svg}"
        );
        assert!(
            svg.contains("<g class=\"board dead\" data-board=\"0,0,2\" data-power=\"off\">"),
            "{svg}"
        );
        assert!(svg.contains("data-link=\"0,0,0,north\""), "{svg}");
        assert!(svg.contains(&format!("fill=\"{POWER_ON}\"")), "{svg}");
        assert!(!svg.contains("<script"), "{svg}");
    }

    #[test]
    fn durations_read_in_words() {
        assert_eq!(words(Duration::from_secs(45)), "45 s");
        assert_eq!(words(Duration::from_secs(125)), "2 min 5 s");
        assert_eq!(words(Duration::from_secs(3 * 3600 + 20 * 60)), "3 h 20 min");
    }
}
