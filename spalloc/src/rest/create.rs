//! `POST jobs`: the create-job body read and checked as the Java service does, then placed:
//! mapped to the service's [`NewJob`].
//!
//! Keys (kebab-case, `null` counts as absent): `num-boards`, `dimensions` `{width, height}`
//! (triads), `board` (`{x, y, z}` | `{cabinet, frame, board}` | `{address}`), `machine-name`,
//! `tags`, `max-dead-boards`, `keepalive-interval` (an ISO-8601 duration), `owner`, `group`,
//! `nmpi-collab`, `nmpi-job-id`. Refusals name the key and what is wrong with it; an unknown key
//! is refused by name; malformed JSON is refused with serde's line and column.

use super::{Caller, RestConfig};
use crate::describe::{board_of, physical_of, v1_original};
use serde_json::{Map, Value};
use spinnbed_core::alloc::{Request, Shape};
use spinnbed_core::geometry::{Board, Machine, Physical};
use spinnbed_core::service::{NewJob, Service};
use spinnbed_core::time::Duration;
use std::net::Ipv4Addr;

use super::text::{format_iso_duration, parse_iso_duration};

/// The keys a create-job body may have.
pub const KEYS: [&str; 11] = [
    "num-boards",
    "dimensions",
    "board",
    "machine-name",
    "tags",
    "max-dead-boards",
    "keepalive-interval",
    "owner",
    "group",
    "nmpi-collab",
    "nmpi-job-id",
];

/// What size of allocation a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// At least this many boards (1: any one board; also what no size at all means).
    Boards(u32),
    /// A rectangle of triads.
    Dimensions {
        /// Width in triads.
        width: u32,
        /// Height in triads.
        height: u32,
    },
    /// One specific board.
    Board(BoardSpec),
    /// A rectangle of triads rooted at a specific board (`board` with `dimensions`).
    RootedRectangle {
        /// The root board.
        board: BoardSpec,
        /// Width in triads.
        width: u32,
        /// Height in triads.
        height: u32,
    },
}

/// A specific board, in one of the three ways a client may name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoardSpec {
    /// Logical (triad) coordinates.
    Triad(Board),
    /// Physical position.
    Physical(Physical),
    /// Ethernet address.
    Address(Ipv4Addr),
}

/// A create-job body, read and checked (before it is placed on a machine).
#[derive(Debug, Clone, PartialEq)]
pub struct CreateJobRequest {
    /// The size asked for.
    pub size: Size,
    /// `machine-name`.
    pub machine_name: Option<String>,
    /// `tags`.
    pub tags: Option<Vec<String>>,
    /// `max-dead-boards` (default 0).
    pub max_dead_boards: u32,
    /// `keepalive-interval`.
    pub keepalive: Duration,
    /// `owner` as sent (only an administrator's is used).
    pub owner: Option<String>,
    /// `group` (kept for the record only: spinnbed has no accounting).
    pub group: Option<String>,
    /// `nmpi-collab` (likewise).
    pub nmpi_collab: Option<String>,
    /// `nmpi-job-id` (likewise).
    pub nmpi_job_id: Option<i64>,
}

/// Reads a create-job body, or says what is wrong with it.
pub fn parse(body: &[u8], cfg: &RestConfig) -> Result<CreateJobRequest, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("malformed JSON in the job request: {e}"))?;
    let Value::Object(obj) = v else {
        return Err(format!("the job request must be a JSON object, got {}", json_type(&v)));
    };
    if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(format!(
            "unknown key '{k}' in the job request (known: {})",
            KEYS.join(", ")
        ));
    }
    let get = |k: &str| obj.get(k).filter(|v| !v.is_null());

    let keepalive = match get("keepalive-interval") {
        None => return Err("keepalive-interval is required (an ISO-8601 duration such as PT120S)".into()),
        Some(Value::String(s)) => parse_iso_duration(s).map_err(|e| format!("keepalive-interval {e}"))?,
        // Java's Duration also reads a number of seconds.
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f >= 0.0 && f.is_finite() => Duration::from_secs_f64(f),
            _ => return Err(format!("keepalive-interval must be a duration, got {n}")),
        },
        Some(v) => {
            return Err(format!(
                "keepalive-interval must be an ISO-8601 duration such as PT120S, got {}",
                json_type(v)
            ));
        }
    };
    let text = format_iso_duration(keepalive);
    if keepalive < cfg.keepalive_min {
        return Err(format!(
            "keepalive-interval {text} is below the minimum of {} s",
            cfg.keepalive_min.as_micros() / 1_000_000
        ));
    }
    if keepalive > cfg.keepalive_max {
        return Err(format!(
            "keepalive-interval {text} is above the maximum of {} s",
            cfg.keepalive_max.as_micros() / 1_000_000
        ));
    }

    let num_boards = get("num-boards").map(|v| count("num-boards", v, 1)).transpose()?;
    let dimensions = get("dimensions").map(dimensions).transpose()?;
    let board = get("board").map(board_spec).transpose()?;
    let size = match (num_boards, dimensions, board) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err("num-boards cannot be given with dimensions or board".into());
        }
        (Some(n), None, None) => Size::Boards(n),
        (None, Some((width, height)), None) => Size::Dimensions { width, height },
        (None, None, Some(b)) => Size::Board(b),
        (None, Some((width, height)), Some(board)) => Size::RootedRectangle { board, width, height },
        (None, None, None) => Size::Boards(1),
    };

    let machine_name = match get("machine-name") {
        None => None,
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err("machine-name, if given, must not be blank".into());
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => return Err(format!("machine-name must be a string, got {}", json_type(v))),
    };
    let tags = match get("tags") {
        None => None,
        Some(Value::Array(a)) => {
            let mut tags: Vec<String> = Vec::with_capacity(a.len());
            for t in a {
                match t {
                    Value::String(s) if s.trim().is_empty() => return Err("tags must not be blank".into()),
                    Value::String(s) => {
                        if !tags.contains(s) {
                            tags.push(s.clone());
                        }
                    }
                    v => return Err(format!("tags must be strings, got {}", json_type(v))),
                }
            }
            Some(tags)
        }
        Some(v) => return Err(format!("tags must be a list of strings, got {}", json_type(v))),
    };
    match (&machine_name, &tags) {
        (Some(_), Some(_)) => return Err("machine-name and tags cannot both be given".into()),
        (None, None) => return Err("either machine-name or tags must be given".into()),
        _ => {}
    }
    let max_dead_boards = get("max-dead-boards")
        .map(|v| count("max-dead-boards", v, 0))
        .transpose()?
        .unwrap_or(0);

    let string = |k: &str| -> Result<Option<String>, String> {
        match get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(format!("{k} must be a string, got {}", json_type(v))),
        }
    };
    let owner = string("owner")?;
    let group = string("group")?;
    let nmpi_collab = string("nmpi-collab")?;
    let nmpi_job_id = match get("nmpi-job-id") {
        None => None,
        Some(v) => Some(
            v.as_i64()
                .ok_or_else(|| format!("nmpi-job-id must be an integer, got {}", show(v)))?,
        ),
    };
    if [group.is_some(), nmpi_collab.is_some(), nmpi_job_id.is_some()]
        .iter()
        .filter(|b| **b)
        .count()
        > 1
    {
        return Err("only one of group, nmpi-collab and nmpi-job-id may be given".into());
    }
    Ok(CreateJobRequest {
        size,
        machine_name,
        tags,
        max_dead_boards,
        keepalive,
        owner,
        group,
        nmpi_collab,
        nmpi_job_id,
    })
}

/// Places a checked request: the owner (the caller, or for an administrator the `owner` it
/// names), the machine (a board named by physical position or address is looked up on the
/// named machine or the machines with the tags, in priority order, and the job is pinned to
/// the machine that has it), the request for the allocator.
pub fn place(req: &CreateJobRequest, caller: &Caller, svc: &Service, cfg: &RestConfig) -> Result<NewJob, String> {
    let owner = match &req.owner {
        Some(o) if caller.admin && !o.trim().is_empty() => o.trim().to_string(),
        _ => caller.user.clone(),
    };
    if owner.is_empty() {
        return Err("the job request must be connected to an identified owner".into());
    }
    // The machines the request may run on, in priority order.
    let candidates: Vec<&Machine> = match (&req.machine_name, &req.tags) {
        (Some(name), _) => {
            let m = svc.machine(name).ok_or_else(|| format!("no machine named '{name}'"))?;
            vec![m]
        }
        (None, Some(tags)) => {
            let ms: Vec<&Machine> = svc
                .machines()
                .filter(|m| tags.iter().all(|t| m.tags().contains(t)))
                .collect();
            if ms.is_empty() {
                return Err(format!("no machine has all the tags {}", show_list(tags)));
            }
            ms
        }
        (None, None) => return Err("either machine-name or tags must be given".into()),
    };
    let (machine, tags) = (req.machine_name.clone(), req.tags.clone());
    let (shape, machine, tags) = match req.size {
        Size::Boards(1) => (Shape::AnyBoard, machine, tags),
        Size::Boards(n) => (
            Shape::Boards {
                n,
                min_ratio: cfg.min_ratio,
            },
            machine,
            tags,
        ),
        Size::Dimensions { width, height } => (Shape::Triads { w: width, h: height }, machine, tags),
        // Logical coordinates mean the same on every machine: the job queues as a v1 job for
        // that board would.
        Size::Board(BoardSpec::Triad(board)) => (Shape::Board { board }, machine, tags),
        Size::Board(spec) => {
            let (m, board) = find_board(&candidates, spec, req)?;
            (Shape::Board { board }, Some(m), None)
        }
        Size::RootedRectangle {
            board: BoardSpec::Triad(root),
            width,
            height,
        } => (
            Shape::TriadsAt {
                root,
                w: width,
                h: height,
            },
            machine,
            tags,
        ),
        Size::RootedRectangle { board, width, height } => {
            let (m, root) = find_board(&candidates, board, req)?;
            (
                Shape::TriadsAt {
                    root,
                    w: width,
                    h: height,
                },
                Some(m),
                None,
            )
        }
    };
    let request = Request {
        shape,
        max_dead_boards: Some(req.max_dead_boards),
        max_dead_links: None,
        require_torus: false,
    };
    Ok(NewJob {
        owner,
        keepalive: Some(req.keepalive),
        original: Some(v1_original(&request, machine.as_deref(), tags.as_deref())),
        machine,
        tags,
        request,
        estimate: None,
    })
}

/// The first candidate machine with the board a physical position or address names, and
/// that board.
fn find_board(candidates: &[&Machine], spec: BoardSpec, req: &CreateJobRequest) -> Result<(String, Board), String> {
    candidates
        .iter()
        .find_map(|m| locate(m, spec).map(|b| (m.name().to_string(), b)))
        .ok_or_else(|| match spec {
            BoardSpec::Physical(p) => format!(
                "board: no board at cabinet {}, frame {}, board {} on {}",
                p.cabinet,
                p.frame,
                p.board,
                where_(req)
            ),
            BoardSpec::Address(ip) => format!("board: no board with address {ip} on {}", where_(req)),
            BoardSpec::Triad(b) => format!("board: no board {b} on {}", where_(req)),
        })
}

/// The board a physical position or address names on a machine.
fn locate(m: &Machine, spec: BoardSpec) -> Option<Board> {
    match spec {
        BoardSpec::Triad(b) => m.contains(b).then_some(b),
        BoardSpec::Physical(p) => m.board_at(p),
        BoardSpec::Address(ip) => m.board_ips().find(|(_, a)| *a == ip).map(|(b, _)| b),
    }
}

/// Where a request looked, in words.
fn where_(req: &CreateJobRequest) -> String {
    match (&req.machine_name, &req.tags) {
        (Some(m), _) => format!("machine '{m}'"),
        (None, Some(t)) => format!("any machine with the tags {}", show_list(t)),
        (None, None) => "any machine".into(),
    }
}

fn show_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}

/// A non-negative integer of at least `min`, named `key` in the error.
fn count(key: &str, v: &Value, min: u32) -> Result<u32, String> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n >= min)
        .ok_or_else(|| format!("{key} must be an integer of at least {min}, got {}", show(v)))
}

fn dimensions(v: &Value) -> Result<(u32, u32), String> {
    let Value::Object(o) = v else {
        return Err(format!(
            "dimensions must be an object {{\"width\", \"height\"}}, got {}",
            json_type(v)
        ));
    };
    only_keys("dimensions", o, &["width", "height"])?;
    let field = |k: &str| -> Result<u32, String> {
        match o.get(k).filter(|v| !v.is_null()) {
            None => Err(format!("dimensions.{k} is required")),
            Some(v) => count(&format!("dimensions.{k}"), v, 1),
        }
    };
    Ok((field("width")?, field("height")?))
}

fn board_spec(v: &Value) -> Result<BoardSpec, String> {
    let Value::Object(o) = v else {
        return Err(format!(
            "board must be an object {{\"x\", \"y\", \"z\"}}, {{\"cabinet\", \"frame\", \"board\"}} or {{\"address\"}}, got {}",
            json_type(v)
        ));
    };
    only_keys("board", o, &["x", "y", "z", "cabinet", "frame", "board", "address"])?;
    let present = |ks: &[&str]| ks.iter().filter(|k| o.get(**k).is_some_and(|v| !v.is_null())).count();
    let forms = [
        present(&["x", "y", "z"]),
        present(&["cabinet", "frame", "board"]),
        present(&["address"]),
    ];
    if forms.iter().filter(|n| **n > 0).count() > 1 {
        return Err("board must be given one way only: {x, y, z}, {cabinet, frame, board} or {address}".into());
    }
    let int = |k: &str| -> Result<i64, String> {
        let v = &o[k];
        v.as_i64()
            .filter(|i| *i >= 0)
            .ok_or_else(|| format!("board.{k} must be a non-negative integer, got {}", show(v)))
    };
    match forms {
        [3, 0, 0] => {
            let (x, y, z) = (int("x")?, int("y")?, int("z")?);
            if z > 2 {
                return Err(format!("board.z must be 0, 1 or 2, got {z}"));
            }
            board_of(x, y, z)
                .map(BoardSpec::Triad)
                .ok_or_else(|| format!("board ({x}, {y}, {z}) is outside every machine"))
        }
        [0, 3, 0] => {
            let (c, f, b) = (int("cabinet")?, int("frame")?, int("board")?);
            physical_of(c, f, b)
                .map(BoardSpec::Physical)
                .ok_or_else(|| format!("board (cabinet {c}, frame {f}, board {b}) is outside every machine"))
        }
        [0, 0, 1] => match &o["address"] {
            Value::String(s) => s
                .trim()
                .parse::<Ipv4Addr>()
                .map(BoardSpec::Address)
                .map_err(|_| format!("board.address must be an IPv4 address, got {}", show(&o["address"]))),
            v => Err(format!("board.address must be an IPv4 address, got {}", show(v))),
        },
        _ => Err("board needs all of x, y and z, or all of cabinet, frame and board, or an address".into()),
    }
}

/// Refuses keys of a nested object other than `known`, naming the first as `outer.key`.
fn only_keys(outer: &str, o: &Map<String, Value>, known: &[&str]) -> Result<(), String> {
    match o.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!("unknown key '{outer}.{k}' (known: {})", known.join(", "))),
        None => Ok(()),
    }
}

/// A JSON value shown in an error, cut short if long.
fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_v(v: Value) -> Result<CreateJobRequest, String> {
        parse(v.to_string().as_bytes(), &RestConfig::default())
    }

    fn err(v: Value) -> String {
        parse_v(v).unwrap_err()
    }

    const KA: &str = "PT120S";

    #[test]
    fn every_body_the_client_sends_reads() {
        let r = parse_v(json!({"num-boards": 3, "tags": ["default"], "keepalive-interval": KA})).unwrap();
        assert_eq!(r.size, Size::Boards(3));
        assert_eq!(r.tags, Some(vec!["default".to_string()]));
        assert_eq!(r.keepalive, Duration::from_secs(120));
        assert_eq!(r.max_dead_boards, 0);
        let r =
            parse_v(json!({"num-boards": 1, "machine-name": "emu", "max-dead-boards": 1, "keepalive-interval": KA}))
                .unwrap();
        assert_eq!(
            (r.size, r.machine_name.as_deref(), r.max_dead_boards),
            (Size::Boards(1), Some("emu"), 1)
        );
        let r =
            parse_v(json!({"board": {"x": 0, "y": 0, "z": 1}, "tags": ["default"], "keepalive-interval": KA})).unwrap();
        assert_eq!(r.size, Size::Board(BoardSpec::Triad(Board::new(0, 0, 1))));
        let r = parse_v(json!({"board": {"cabinet": 1, "frame": 2, "board": 3}, "dimensions": {"width": 2, "height": 2}, "tags": ["default"], "keepalive-interval": KA})).unwrap();
        assert_eq!(
            r.size,
            Size::RootedRectangle {
                board: BoardSpec::Physical(Physical::new(1, 2, 3)),
                width: 2,
                height: 2
            }
        );
        let r = parse_v(json!({"board": {"address": "10.11.12.13"}, "tags": ["default"], "keepalive-interval": KA}))
            .unwrap();
        assert_eq!(r.size, Size::Board(BoardSpec::Address(Ipv4Addr::new(10, 11, 12, 13))));
        let r =
            parse_v(json!({"dimensions": {"width": 2, "height": 1}, "tags": ["default"], "keepalive-interval": KA}))
                .unwrap();
        assert_eq!(r.size, Size::Dimensions { width: 2, height: 1 });
        let r =
            parse_v(json!({"num-boards": 2, "tags": ["default"], "group": "grp", "keepalive-interval": KA})).unwrap();
        assert_eq!(r.group.as_deref(), Some("grp"));
        let r = parse_v(json!({"num-boards": 2, "tags": ["default"], "nmpi-collab": "col1", "keepalive-interval": KA}))
            .unwrap();
        assert_eq!(r.nmpi_collab.as_deref(), Some("col1"));
        let r = parse_v(json!({"num-boards": 2, "tags": ["default"], "nmpi-job-id": 42, "owner": "nmpiuser", "keepalive-interval": KA})).unwrap();
        assert_eq!((r.nmpi_job_id, r.owner.as_deref()), (Some(42), Some("nmpiuser")));
        // No size at all: one board. Nulls count as absent.
        let r = parse_v(json!({"tags": ["default"], "keepalive-interval": "PT1M", "num-boards": null})).unwrap();
        assert_eq!(r.size, Size::Boards(1));
        // Java's Duration also reads seconds.
        assert_eq!(
            parse_v(json!({"tags": [], "keepalive-interval": 45}))
                .unwrap()
                .keepalive,
            Duration::from_secs(45)
        );
    }

    #[test]
    fn refusals_name_the_key_and_the_trouble() {
        let cases = [
            (json!({"tags": ["default"]}), "keepalive-interval is required"),
            (
                json!({"tags": ["default"], "keepalive-interval": "PT10S"}),
                "keepalive-interval PT10S is below the minimum of 30 s",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": "PT10M"}),
                "keepalive-interval PT10M is above the maximum of 300 s",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": "soon"}),
                "keepalive-interval 'soon' is not an ISO-8601 duration",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": true}),
                "keepalive-interval must be an ISO-8601 duration",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": -5}),
                "keepalive-interval must be a duration",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": KA, "colour": "red"}),
                "unknown key 'colour'",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": KA, "num-boards": 0}),
                "num-boards must be an integer of at least 1, got 0",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": KA, "num-boards": "3"}),
                "num-boards must be an integer of at least 1, got \"3\"",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": KA, "num-boards": 2.5}),
                "num-boards must be an integer",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": KA, "num-boards": 2, "dimensions": {"width": 1, "height": 1}}),
                "num-boards cannot be given with dimensions or board",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": KA, "num-boards": 2, "board": {"x": 0, "y": 0, "z": 0}}),
                "num-boards cannot be given with dimensions or board",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": KA, "dimensions": {"width": 0, "height": 1}}),
                "dimensions.width must be an integer of at least 1",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": KA, "dimensions": {"width": 1}}),
                "dimensions.height is required",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": KA, "dimensions": {"width": 1, "height": 1, "depth": 3}}),
                "unknown key 'dimensions.depth'",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": KA, "dimensions": [1, 1]}),
                "dimensions must be an object",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": KA, "board": {"x": 0, "y": 0}}),
                "board needs all of x, y and z",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": KA, "board": {}}),
                "board needs all of x, y and z",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": KA, "board": {"x": 0, "y": 0, "z": 0, "address": "1.2.3.4"}}),
                "board must be given one way only",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": KA, "board": {"x": 0, "y": 0, "z": 3}}),
                "board.z must be 0, 1 or 2, got 3",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": KA, "board": {"x": -1, "y": 0, "z": 0}}),
                "board.x must be a non-negative integer, got -1",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": KA, "board": {"x": 70000, "y": 0, "z": 0}}),
                "outside every machine",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": KA, "board": {"address": "10.0.0"}}),
                "board.address must be an IPv4 address, got \"10.0.0\"",
            ),
            (
                json!({"tags": ["default"], "keepalive-interval": KA, "board": {"ip": "10.0.0.1"}}),
                "unknown key 'board.ip'",
            ),
            (
                json!({"keepalive-interval": KA}),
                "either machine-name or tags must be given",
            ),
            (
                json!({"machine-name": "m", "tags": ["a"], "keepalive-interval": KA}),
                "machine-name and tags cannot both be given",
            ),
            (
                json!({"machine-name": " ", "keepalive-interval": KA}),
                "machine-name, if given, must not be blank",
            ),
            (
                json!({"machine-name": 3, "keepalive-interval": KA}),
                "machine-name must be a string, got a number",
            ),
            (
                json!({"tags": "default", "keepalive-interval": KA}),
                "tags must be a list of strings, got a string",
            ),
            (
                json!({"tags": [""], "keepalive-interval": KA}),
                "tags must not be blank",
            ),
            (
                json!({"tags": [1], "keepalive-interval": KA}),
                "tags must be strings, got a number",
            ),
            (
                json!({"tags": ["a"], "keepalive-interval": KA, "max-dead-boards": -1}),
                "max-dead-boards must be an integer of at least 0, got -1",
            ),
            (
                json!({"tags": ["a"], "keepalive-interval": KA, "group": "g", "nmpi-collab": "c"}),
                "only one of group, nmpi-collab and nmpi-job-id",
            ),
            (
                json!({"tags": ["a"], "keepalive-interval": KA, "nmpi-job-id": "42"}),
                "nmpi-job-id must be an integer",
            ),
            (
                json!({"tags": ["a"], "keepalive-interval": KA, "owner": 7}),
                "owner must be a string",
            ),
            (json!([1, 2]), "the job request must be a JSON object, got a list"),
        ];
        for (body, want) in cases {
            let e = err(body.clone());
            assert!(e.contains(want), "{body}: got {e:?}, wanted {want:?}");
        }
    }

    #[test]
    fn malformed_json_is_refused_with_line_and_column() {
        let e = parse(b"{\"num-boards\": 1,\n \"tags\": [\"default\"", &RestConfig::default()).unwrap_err();
        assert!(e.starts_with("malformed JSON in the job request: "), "{e}");
        assert!(e.contains("line 2 column"), "{e}");
        let e = parse(b"", &RestConfig::default()).unwrap_err();
        assert!(e.contains("line 1 column 0"), "{e}");
    }

    #[test]
    fn tags_are_deduplicated_in_order() {
        let r = parse_v(json!({"tags": ["b", "a", "b"], "keepalive-interval": KA})).unwrap();
        assert_eq!(r.tags, Some(vec!["b".to_string(), "a".to_string()]));
    }
}
