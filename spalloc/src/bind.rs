//! Binding a call's arguments to a command's parameters as Python does, with Python 3.11's
//! `TypeError` messages (the reference calls `SpallocServer.<command>(self, client, *args,
//! **kwargs)`, and clients read the message back as the exception).

use crate::wire::Command;
use serde_json::Value;

/// A command's Python signature after `self` and the client socket.
struct Signature {
    /// The name of its client parameter (`client` or `_client`).
    client: &'static str,
    /// Named parameters in order.
    params: &'static [&'static str],
    /// How many of them have no default.
    required: usize,
    /// `*args`.
    var_args: bool,
    /// `**kwargs`.
    var_kwargs: bool,
}

fn signature(c: Command) -> Signature {
    let sig = |client, params, required, var_args, var_kwargs| Signature {
        client,
        params,
        required,
        var_args,
        var_kwargs,
    };
    match c {
        Command::Version => sig("_client", &[], 0, false, false),
        Command::CreateJob => sig("client", &[], 0, true, true),
        Command::JobKeepalive
        | Command::GetJobState
        | Command::GetJobMachineInfo
        | Command::PowerOnJobBoards
        | Command::PowerOffJobBoards => sig("client", &["job_id"], 1, false, false),
        Command::DestroyJob => sig("client", &["job_id", "reason"], 1, false, false),
        Command::NotifyJob | Command::NoNotifyJob => sig("client", &["job_id"], 0, false, false),
        Command::NotifyMachine | Command::NoNotifyMachine => sig("client", &["machine_name"], 0, false, false),
        Command::ListJobs | Command::ListMachines => sig("_client", &[], 0, false, false),
        Command::GetBoardPosition | Command::GetBoardAtPosition => {
            sig("_client", &["machine_name", "x", "y", "z"], 4, false, false)
        }
        Command::WhereIs => sig("_client", &[], 0, false, true),
    }
}

/// Arguments bound to a command's named parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    /// One slot per named parameter (`None`: not given, i.e. its default).
    pub params: Vec<Option<Value>>,
    /// `*args` (create_job).
    pub var_args: Vec<Value>,
    /// `**kwargs` (create_job, where_is), in order.
    pub var_kwargs: Vec<(String, Value)>,
}

impl Bound {
    /// Parameter `i`, or `None` (Python's default for every optional parameter here) if not
    /// given.
    pub fn get(&self, i: usize) -> &Value {
        const NULL: Value = Value::Null;
        self.params.get(i).and_then(Option::as_ref).unwrap_or(&NULL)
    }
}

/// Binds `args` and `kwargs` to `command`'s parameters, or gives Python's `TypeError` text.
pub fn bind(command: Command, args: Vec<Value>, kwargs: Vec<(String, Value)>) -> Result<Bound, String> {
    let sig = signature(command);
    let name = format!("SpallocServer.{}()", command.name());
    // Positional parameters: self, the client, then the named ones.
    let all: Vec<&str> = ["self", sig.client]
        .into_iter()
        .chain(sig.params.iter().copied())
        .collect();
    let given = 2 + args.len();
    let mut filled = vec![false; all.len()];
    for f in filled.iter_mut().take(given.min(all.len())) {
        *f = true;
    }
    let mut params: Vec<Option<Value>> = vec![None; sig.params.len()];
    let mut var_args = Vec::new();
    for (i, a) in args.into_iter().enumerate() {
        if i < params.len() {
            params[i] = Some(a);
        } else {
            var_args.push(a);
        }
    }
    // Keywords first (CPython reports them before counting positional arguments).
    let mut var_kwargs = Vec::new();
    for (k, v) in kwargs {
        match all.iter().position(|p| *p == k) {
            Some(i) if filled[i] => return Err(format!("{name} got multiple values for argument '{k}'")),
            Some(i) => {
                filled[i] = true;
                params[i - 2] = Some(v);
            }
            None if sig.var_kwargs => var_kwargs.push((k, v)),
            None => return Err(format!("{name} got an unexpected keyword argument '{k}'")),
        }
    }
    if given > all.len() && !sig.var_args {
        let most = all.len();
        let least = 2 + sig.required;
        return Err(if least == most {
            format!("{name} takes {most} positional arguments but {given} were given")
        } else {
            format!("{name} takes from {least} to {most} positional arguments but {given} were given")
        });
    }
    let missing: Vec<String> = (0..sig.required)
        .filter(|&i| !filled[i + 2])
        .map(|i| format!("'{}'", sig.params[i]))
        .collect();
    if !missing.is_empty() {
        let n = missing.len();
        let list = match n {
            1 => missing[0].clone(),
            2 => format!("{} and {}", missing[0], missing[1]),
            _ => format!("{}, and {}", missing[..n - 1].join(", "), missing[n - 1]),
        };
        let s = if n == 1 { "" } else { "s" };
        return Err(format!("{name} missing {n} required positional argument{s}: {list}"));
    }
    Ok(Bound {
        params,
        var_args,
        var_kwargs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kw(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    /// The messages were taken from CPython 3.11 calling the reference's methods.
    #[test]
    fn binding_errors_read_as_cpython_3_11_writes_them() {
        type Case = (Command, Vec<Value>, Vec<(String, Value)>, &'static str);
        let cases: Vec<Case> = vec![
            (
                Command::JobKeepalive,
                vec![],
                kw(&[]),
                "SpallocServer.job_keepalive() missing 1 required positional argument: 'job_id'",
            ),
            (
                Command::JobKeepalive,
                vec![json!(1), json!(2)],
                kw(&[]),
                "SpallocServer.job_keepalive() takes 3 positional arguments but 4 were given",
            ),
            (
                Command::JobKeepalive,
                vec![],
                kw(&[("job_id", json!(1)), ("foo", json!(2))]),
                "SpallocServer.job_keepalive() got an unexpected keyword argument 'foo'",
            ),
            (
                Command::JobKeepalive,
                vec![json!(1)],
                kw(&[("job_id", json!(2))]),
                "SpallocServer.job_keepalive() got multiple values for argument 'job_id'",
            ),
            (
                Command::JobKeepalive,
                vec![json!(1), json!(2)],
                kw(&[("job_id", json!(3))]),
                "SpallocServer.job_keepalive() got multiple values for argument 'job_id'",
            ),
            (
                Command::DestroyJob,
                vec![json!(1), json!(2), json!(3)],
                kw(&[]),
                "SpallocServer.destroy_job() takes from 3 to 4 positional arguments but 5 were given",
            ),
            (
                Command::DestroyJob,
                vec![],
                kw(&[("reason", json!(1))]),
                "SpallocServer.destroy_job() missing 1 required positional argument: 'job_id'",
            ),
            (
                Command::WhereIs,
                vec![json!(1)],
                kw(&[]),
                "SpallocServer.where_is() takes 2 positional arguments but 3 were given",
            ),
            (
                Command::Version,
                vec![],
                kw(&[("a", json!(1))]),
                "SpallocServer.version() got an unexpected keyword argument 'a'",
            ),
            (
                Command::GetBoardPosition,
                vec![json!("m")],
                kw(&[]),
                "SpallocServer.get_board_position() missing 3 required positional arguments: 'x', 'y', and 'z'",
            ),
            (
                Command::GetBoardPosition,
                vec![],
                kw(&[("x", json!(1))]),
                "SpallocServer.get_board_position() missing 3 required positional arguments: 'machine_name', 'y', and 'z'",
            ),
            (
                Command::GetBoardPosition,
                vec![json!("m")],
                kw(&[("z", json!(1))]),
                "SpallocServer.get_board_position() missing 2 required positional arguments: 'x' and 'y'",
            ),
            (
                Command::GetBoardPosition,
                vec![json!("m"), json!(1), json!(2), json!(3), json!(4)],
                kw(&[("x", json!(1))]),
                "SpallocServer.get_board_position() got multiple values for argument 'x'",
            ),
            (
                Command::ListJobs,
                vec![],
                kw(&[("self", json!(1))]),
                "SpallocServer.list_jobs() got multiple values for argument 'self'",
            ),
            (
                Command::ListJobs,
                vec![],
                kw(&[("_client", json!(1))]),
                "SpallocServer.list_jobs() got multiple values for argument '_client'",
            ),
        ];
        for (c, args, kwargs, want) in cases {
            assert_eq!(bind(c, args, kwargs).unwrap_err(), want);
        }
    }

    #[test]
    fn arguments_bind_by_position_and_keyword() {
        let b = bind(Command::DestroyJob, vec![json!(3)], kw(&[("reason", json!("done"))])).unwrap();
        assert_eq!((b.get(0), b.get(1)), (&json!(3), &json!("done")));
        let b = bind(Command::NotifyJob, vec![], kw(&[])).unwrap();
        assert_eq!(b.get(0), &Value::Null);
        let b = bind(
            Command::CreateJob,
            vec![json!(1), json!(2)],
            kw(&[("owner", json!("x"))]),
        )
        .unwrap();
        assert_eq!(b.var_args.len(), 2);
        assert_eq!(b.var_kwargs.len(), 1);
        let b = bind(
            Command::WhereIs,
            vec![],
            kw(&[("job_id", json!(1)), ("chip_x", json!(0))]),
        )
        .unwrap();
        assert_eq!(b.var_kwargs.len(), 2);
    }
}
