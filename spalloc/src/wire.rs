//! Request lines: `{"command": name, "args": [...], "kwargs": {...}}`, one JSON object per line.
//!
//! What the reference refuses by disconnecting (invalid JSON, a missing, non-string or unknown
//! command, `args` not a list, `kwargs` not an object) is a [`BadLine`]; everything else is a
//! [`Call`] whose keyword arguments keep the order the client sent them in (the reference's job
//! log prints them in that order).

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// One parsed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The command.
    pub command: Command,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments in the order sent (a repeated key keeps its first place and its last
    /// value, as a Python dict does); a `client` keyword is dropped, as the reference does.
    pub kwargs: Vec<(String, Value)>,
}

/// The commands of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Command {
    /// `version()`.
    Version,
    /// `create_job(*args, **kwargs)`.
    CreateJob,
    /// `job_keepalive(job_id)`.
    JobKeepalive,
    /// `get_job_state(job_id)`.
    GetJobState,
    /// `get_job_machine_info(job_id)`.
    GetJobMachineInfo,
    /// `power_on_job_boards(job_id)`.
    PowerOnJobBoards,
    /// `power_off_job_boards(job_id)`.
    PowerOffJobBoards,
    /// `destroy_job(job_id, reason=None)`.
    DestroyJob,
    /// `notify_job(job_id=None)`.
    NotifyJob,
    /// `no_notify_job(job_id=None)`.
    NoNotifyJob,
    /// `notify_machine(machine_name=None)`.
    NotifyMachine,
    /// `no_notify_machine(machine_name=None)`.
    NoNotifyMachine,
    /// `list_jobs()`.
    ListJobs,
    /// `list_machines()`.
    ListMachines,
    /// `get_board_position(machine_name, x, y, z)`.
    GetBoardPosition,
    /// `get_board_at_position(machine_name, x, y, z)` (x, y, z = cabinet, frame, board).
    GetBoardAtPosition,
    /// `where_is(**kwargs)`.
    WhereIs,
}

impl Command {
    /// Every command.
    pub const ALL: [Command; 17] = [
        Command::Version,
        Command::CreateJob,
        Command::JobKeepalive,
        Command::GetJobState,
        Command::GetJobMachineInfo,
        Command::PowerOnJobBoards,
        Command::PowerOffJobBoards,
        Command::DestroyJob,
        Command::NotifyJob,
        Command::NoNotifyJob,
        Command::NotifyMachine,
        Command::NoNotifyMachine,
        Command::ListJobs,
        Command::ListMachines,
        Command::GetBoardPosition,
        Command::GetBoardAtPosition,
        Command::WhereIs,
    ];

    /// The command's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Command::Version => "version",
            Command::CreateJob => "create_job",
            Command::JobKeepalive => "job_keepalive",
            Command::GetJobState => "get_job_state",
            Command::GetJobMachineInfo => "get_job_machine_info",
            Command::PowerOnJobBoards => "power_on_job_boards",
            Command::PowerOffJobBoards => "power_off_job_boards",
            Command::DestroyJob => "destroy_job",
            Command::NotifyJob => "notify_job",
            Command::NoNotifyJob => "no_notify_job",
            Command::NotifyMachine => "notify_machine",
            Command::NoNotifyMachine => "no_notify_machine",
            Command::ListJobs => "list_jobs",
            Command::ListMachines => "list_machines",
            Command::GetBoardPosition => "get_board_position",
            Command::GetBoardAtPosition => "get_board_at_position",
            Command::WhereIs => "where_is",
        }
    }

    /// The command called `name`.
    pub fn from_name(name: &str) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a line gets its client disconnected (as the reference does), in words for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadLine {
    /// Not JSON (or not UTF-8).
    #[error("invalid JSON: {0}")]
    Json(String),
    /// JSON, but not an object.
    #[error("the request is not a JSON object")]
    NotAnObject,
    /// No "command" key.
    #[error("no command name given")]
    NoCommand,
    /// "command" is not a string.
    #[error("the command name is not a string")]
    CommandNotString,
    /// No such command.
    #[error("unrecognised command name {0:?}")]
    UnknownCommand(String),
    /// "args" is not a list.
    #[error("bad args: must be a JSON array")]
    ArgsNotList,
    /// "kwargs" is not an object.
    #[error("bad kwargs: must be a JSON object")]
    KwargsNotObject,
}

/// Parses one line (without its newline).
pub fn parse_line(line: &[u8]) -> Result<Call, BadLine> {
    let raw: RawRequest = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) if e.is_data() => return Err(BadLine::NotAnObject),
        Err(e) => return Err(BadLine::Json(e.to_string())),
    };
    let name = match raw.command {
        None => return Err(BadLine::NoCommand),
        Some(Value::String(s)) => s,
        Some(_) => return Err(BadLine::CommandNotString),
    };
    let command = Command::from_name(&name).ok_or(BadLine::UnknownCommand(name))?;
    let args = match raw.args {
        None => Vec::new(),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(BadLine::ArgsNotList),
    };
    let mut kwargs = match raw.kwargs {
        None => Vec::new(),
        Some(Kwargs::Map(m)) => m,
        Some(Kwargs::Other) => return Err(BadLine::KwargsNotObject),
    };
    kwargs.retain(|(k, _)| k != "client");
    Ok(Call { command, args, kwargs })
}

struct RawRequest {
    command: Option<Value>,
    args: Option<Value>,
    kwargs: Option<Kwargs>,
}

impl<'de> Deserialize<'de> for RawRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawRequest;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRequest, A::Error> {
                let mut r = RawRequest {
                    command: None,
                    args: None,
                    kwargs: None,
                };
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "command" => r.command = Some(map.next_value()?),
                        "args" => r.args = Some(map.next_value()?),
                        "kwargs" => r.kwargs = Some(map.next_value()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(r)
            }
        }
        d.deserialize_map(V)
    }
}

/// A `kwargs` value: an object (keys in order) or anything else.
enum Kwargs {
    Map(Vec<(String, Value)>),
    Other,
}

impl<'de> Deserialize<'de> for Kwargs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Kwargs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kwargs, A::Error> {
                let mut out: Vec<(String, Value)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    match out.iter_mut().find(|(key, _)| *key == k) {
                        Some(slot) => slot.1 = v,
                        None => out.push((k, v)),
                    }
                }
                Ok(Kwargs::Map(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kwargs, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Kwargs::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Kwargs, E> {
                Ok(Kwargs::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Kwargs, E> {
                Ok(Kwargs::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Kwargs, E> {
                Ok(Kwargs::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Kwargs, E> {
                Ok(Kwargs::Other)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Kwargs, E> {
                Ok(Kwargs::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Kwargs, E> {
                Ok(Kwargs::Other)
            }
            fn visit_none<E: de::Error>(self) -> Result<Kwargs, E> {
                Ok(Kwargs::Other)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_parse_with_their_keyword_order() {
        let c = parse_line(br#"{"command": "create_job", "args": [2, 1], "kwargs": {"owner": "me", "keepalive": 5, "client": 9, "owner": "you"}}"#)
            .unwrap();
        assert_eq!(c.command, Command::CreateJob);
        assert_eq!(c.args, vec![json!(2), json!(1)]);
        assert_eq!(
            c.kwargs,
            vec![("owner".to_string(), json!("you")), ("keepalive".to_string(), json!(5))]
        );
        let c = parse_line(br#"{"command": "list_jobs"}"#).unwrap();
        assert!(c.args.is_empty() && c.kwargs.is_empty());
    }

    #[test]
    fn what_the_reference_disconnects_for_is_a_bad_line() {
        for (line, want) in [
            (&b"{not json"[..], "invalid JSON"),
            (b"[1, 2]", "not a JSON object"),
            (b"\"command\"", "not a JSON object"),
            (b"{}", "no command name given"),
            (b"{\"command\": 5}", "not a string"),
            (b"{\"command\": \"rm -rf\"}", "unrecognised command name \"rm -rf\""),
            (b"{\"command\": \"version\", \"args\": {}}", "bad args"),
            (b"{\"command\": \"version\", \"kwargs\": []}", "bad kwargs"),
            (b"{\"command\": \"version\", \"kwargs\": null}", "bad kwargs"),
            (b"{\"command\": \"version\"} trailing", "invalid JSON"),
            (b"\xff\xfe", "invalid JSON"),
        ] {
            let e = parse_line(line).unwrap_err().to_string();
            assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(line));
        }
    }
}
