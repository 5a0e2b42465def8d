//! The resolved scenario as TOML: every key written, in a fixed order, in forms that read back
//! to exactly the same values.

use super::*;
use crate::quantity::dist::fmt_f64;
use crate::quantity::units::format_duration;
use crate::workload::swf::SwfEstimate;
use crate::workload::synthetic::{Arrivals, ClassShape};
use crate::workload::trace::TraceEstimate;
use spinnbed_core::geometry::{Addressing, Layout};
use std::fmt::Write;

/// A TOML basic string.
fn s(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn d(v: Duration) -> String {
    s(&format_duration(v))
}

fn opt_d(v: Option<Duration>) -> String {
    v.map_or_else(|| s("none"), d)
}

fn opt_u32(v: Option<u32>) -> String {
    v.map_or_else(|| s("none"), |n| n.to_string())
}

fn strings(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|t| s(t)).collect();
    format!("[{}]", items.join(", "))
}

fn floats(v: &[f64]) -> String {
    let items: Vec<String> = v.iter().map(|x| fmt_f64(*x)).collect();
    format!("[{}]", items.join(", "))
}

/// An array, one item per line when long.
fn array(items: Vec<String>) -> String {
    if items.len() <= 8 {
        format!("[{}]", items.join(", "))
    } else {
        let mut out = String::from("[\n");
        for i in items {
            let _ = writeln!(out, "  {i},");
        }
        out.push(']');
        out
    }
}

fn path(p: &Path) -> String {
    s(&p.display().to_string())
}

pub fn scenario(sc: &Scenario) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Resolved scenario (every default written out); read back, it gives the same run."
    );
    let r = &sc.run;
    let _ = writeln!(o, "\n[run]");
    let _ = writeln!(o, "name = {}", s(&r.name));
    if r.seed <= i64::MAX as u64 {
        let _ = writeln!(o, "seed = {}", r.seed);
    } else {
        let _ = writeln!(o, "seed = \"{}\"", r.seed);
    }
    let _ = writeln!(o, "horizon = {}", d(r.horizon));
    let _ = writeln!(o, "sample_period = {}", d(r.sample_period));
    let _ = writeln!(o, "drain_limit = {}", d(r.drain_limit));
    let _ = writeln!(o, "start_weekday = {}", s(r.start_weekday.name()));
    let _ = writeln!(o, "start_hour = {}", r.start_hour);

    for m in &sc.machines {
        machine(&mut o, m);
    }
    if let Experiment::Workload(w) = &sc.experiment {
        workload(&mut o, w);
    }

    let p = &sc.policy;
    let _ = writeln!(o, "\n[policy]");
    let packer = match p.packer {
        PackerKind::Spalloc => "spalloc",
        PackerKind::Anywhere => "anywhere",
    };
    let _ = writeln!(o, "packer = {}", s(packer));
    let _ = writeln!(o, "exact_boards = {}", p.exact_boards);
    let queue = match p.queue {
        QueueKind::Fifo => "fifo",
        QueueKind::Easy => "easy",
    };
    let _ = writeln!(o, "queue = {}", s(queue));
    let _ = writeln!(o, "backfill_depth = {}", p.backfill_depth);
    let est = match p.estimate {
        EstimateSource::Declared => "declared",
        EstimateSource::Actual => "actual",
    };
    let _ = writeln!(o, "estimate = {}", s(est));
    let _ = writeln!(o, "seconds_before_free = {}", d(p.seconds_before_free));
    let _ = writeln!(o, "max_retired_jobs = {}", p.max_retired_jobs);
    let _ = writeln!(o, "disable_peripheral_links = {}", p.disable_peripheral_links);
    let _ = writeln!(o, "avoid_failing_boards = {}", p.avoid_failing_boards);

    let h = &sc.host;
    let _ = writeln!(o, "\n[host]");
    let _ = writeln!(o, "hardware = {}", s(h.hardware.name()));
    let _ = writeln!(o, "post_power_on_delay = {}", d(h.post_power_on_delay));
    let scp = match h.scp_policy {
        ScpPolicy::Spinnman => "spinnman",
        ScpPolicy::Rig => "rig",
        ScpPolicy::Adaptive => "adaptive",
    };
    let _ = writeln!(o, "scp_policy = {}", s(scp));
    let _ = writeln!(o, "boot_users = {}", h.boot_users);
    let _ = writeln!(o, "boot_tries = {}", h.boot_tries);

    let n = &sc.network;
    let _ = writeln!(o, "\n[network]");
    let _ = writeln!(o, "latency = {}", n.latency.to_toml());
    let _ = writeln!(o, "loss = {}", fmt_f64(n.loss));
    if let Some(b) = &n.burst {
        let _ = writeln!(
            o,
            "burst = {{ p_enter = {}, p_leave = {}, loss = {} }}",
            fmt_f64(b.p_enter),
            fmt_f64(b.p_leave),
            fmt_f64(b.loss)
        );
    }
    let _ = writeln!(o, "duplicate = {}", fmt_f64(n.duplicate));
    let _ = writeln!(o, "reorder = {}", fmt_f64(n.reorder));
    let _ = writeln!(o, "bandwidth_mbps = {}", fmt_f64(n.bandwidth_mbps));
    for p in &n.paths {
        let _ = writeln!(o, "\n[[network.path]]");
        if let Some(m) = &p.machine {
            let _ = writeln!(o, "machine = {}", s(m));
        }
        let _ = writeln!(o, "to = {}", s(p.to.name()));
        if !p.frames.is_empty() {
            let v: Vec<String> = p
                .frames
                .iter()
                .map(|f| format!("[{}, {}]", f.cabinet, f.frame))
                .collect();
            let _ = writeln!(o, "frames = [{}]", v.join(", "));
        }
        if !p.boards.is_empty() {
            let v: Vec<String> = p
                .boards
                .iter()
                .map(|b| format!("[{}, {}, {}]", b.x, b.y, b.z))
                .collect();
            let _ = writeln!(o, "boards = [{}]", v.join(", "));
        }
        let t = &p.set;
        if let Some(l) = &t.latency {
            let _ = writeln!(o, "latency = {}", l.to_toml());
        }
        if let Some(v) = t.loss {
            let _ = writeln!(o, "loss = {}", fmt_f64(v));
        }
        if let Some(b) = &t.burst {
            let _ = writeln!(
                o,
                "burst = {{ p_enter = {}, p_leave = {}, loss = {} }}",
                fmt_f64(b.p_enter),
                fmt_f64(b.p_leave),
                fmt_f64(b.loss)
            );
        }
        if let Some(v) = t.duplicate {
            let _ = writeln!(o, "duplicate = {}", fmt_f64(v));
        }
        if let Some(v) = t.reorder {
            let _ = writeln!(o, "reorder = {}", fmt_f64(v));
        }
        if let Some(v) = t.bandwidth_mbps {
            let _ = writeln!(o, "bandwidth_mbps = {}", fmt_f64(v));
        }
    }

    if let Experiment::Study(st) = &sc.experiment {
        let _ = writeln!(o, "\n[study]");
        let _ = writeln!(o, "kind = \"scp-windowing\"");
        let list = |v: Vec<String>| v.join(", ");
        let _ = writeln!(
            o,
            "policies = [{}]",
            list(st.policies.iter().map(|p| s(p.name())).collect())
        );
        let _ = writeln!(o, "ops = [{}]", list(st.ops.iter().map(|p| s(p.name())).collect()));
        let _ = writeln!(
            o,
            "losses = [{}]",
            list(st.losses.iter().map(|l| fmt_f64(*l)).collect())
        );
        let _ = writeln!(o, "rtts = [{}]", list(st.rtts.iter().map(|r| d(*r)).collect()));
        let _ = writeln!(o, "bytes = {}", st.bytes);
        let _ = writeln!(o, "seeds = {}", st.seeds);
    }

    for f in &sc.faults {
        let _ = writeln!(o, "\n[[faults]]");
        let _ = writeln!(o, "at = {}", d(f.at));
        let _ = writeln!(o, "kind = {}", s(f.kind.name()));
        match &f.kind {
            FaultKind::BoardDies { machine, board } => {
                let _ = writeln!(o, "machine = {}", s(machine));
                let _ = writeln!(o, "board = [{}, {}, {}]", board.x, board.y, board.z);
            }
            FaultKind::LinkFails { machine, board, link } => {
                let _ = writeln!(o, "machine = {}", s(machine));
                let _ = writeln!(o, "board = [{}, {}, {}]", board.x, board.y, board.z);
                let _ = writeln!(o, "link = {}", s(link.name()));
            }
            FaultKind::BmpSilent { machine, frame } => {
                let _ = writeln!(o, "machine = {}", s(machine));
                let _ = writeln!(o, "frame = [{}, {}]", frame.cabinet, frame.frame);
            }
            FaultKind::LossBurst { loss, machine } => {
                if let Some(machine) = machine {
                    let _ = writeln!(o, "machine = {}", s(machine));
                }
                let _ = writeln!(o, "loss = {}", fmt_f64(*loss));
            }
        }
        if let Some(dur) = f.duration {
            let _ = writeln!(o, "duration = {}", d(dur));
        }
    }
    o
}

fn machine(o: &mut String, m: &MachineConfig) {
    let sp = &m.spec;
    let _ = writeln!(o, "\n[[machine]]");
    let _ = writeln!(o, "name = {}", s(&sp.name));
    let _ = writeln!(o, "tags = {}", strings(&sp.tags));
    let _ = writeln!(o, "width = {}", sp.width);
    let _ = writeln!(o, "height = {}", sp.height);
    let dead: Vec<String> = sp
        .dead_boards
        .iter()
        .map(|b| format!("[{}, {}, {}]", b.x, b.y, b.z))
        .collect();
    let _ = writeln!(o, "dead_boards = {}", array(dead));
    let links: Vec<String> = sp
        .dead_links
        .iter()
        .map(|(b, l)| format!("[{}, {}, {}, {}]", b.x, b.y, b.z, s(l.name())))
        .collect();
    let _ = writeln!(o, "dead_links = {}", array(links));
    match &sp.layout {
        Layout::Standard => {
            let _ = writeln!(o, "layout = \"standard\"");
        }
        Layout::Explicit(list) => {
            let items = list
                .iter()
                .map(|(b, p)| format!("[{}, {}, {}, {}, {}, {}]", b.x, b.y, b.z, p.cabinet, p.frame, p.board))
                .collect();
            let _ = writeln!(o, "\n[machine.layout]");
            let _ = writeln!(o, "boards = {}", array(items));
        }
    }
    let _ = writeln!(o, "\n[machine.ip]");
    match &sp.addressing {
        Addressing::Scheme(ip) => {
            let _ = writeln!(o, "base = {}", s(&ip.base.to_string()));
            let _ = writeln!(o, "cabinet_stride = {}", s(&ip.cabinet_stride.to_string()));
            let _ = writeln!(o, "frame_stride = {}", s(&ip.frame_stride.to_string()));
            let _ = writeln!(o, "board_stride = {}", s(&ip.board_stride.to_string()));
            let _ = writeln!(o, "bmp_offset = {}", s(&ip.bmp_offset.to_string()));
            let _ = writeln!(o, "spinnaker_offset = {}", s(&ip.spinnaker_offset.to_string()));
        }
        Addressing::Explicit { bmps, boards } => {
            let b: Vec<String> = bmps
                .iter()
                .map(|(f, ip)| format!("[{}, {}, {}]", f.cabinet, f.frame, s(&ip.to_string())))
                .collect();
            let _ = writeln!(o, "bmps = {}", array(b));
            let b: Vec<String> = boards
                .iter()
                .map(|(b, ip)| format!("[{}, {}, {}, {}]", b.x, b.y, b.z, s(&ip.to_string())))
                .collect();
            let _ = writeln!(o, "boards = {}", array(b));
        }
    }
    let t = &m.timing;
    let _ = writeln!(o, "\n[machine.timing]");
    let _ = writeln!(o, "power_on = {}", d(t.power_on));
    let _ = writeln!(o, "power_off = {}", d(t.power_off));
    let _ = writeln!(o, "link_write = {}", d(t.link_write));
    let _ = writeln!(o, "boot = {}", d(t.boot));
    let _ = writeln!(o, "bmp_retry_delay = {}", d(t.bmp_retry_delay));
    let _ = writeln!(o, "bmp_tries = {}", t.bmp_tries);
}

fn workload(o: &mut String, w: &WorkloadConfig) {
    let _ = writeln!(o, "\n[workload]");
    match w {
        WorkloadConfig::Synthetic(sp) => {
            let _ = writeln!(o, "source = \"synthetic\"");
            match sp.arrivals {
                Arrivals::Jobs(n) => {
                    let _ = writeln!(o, "jobs = {n}");
                }
                Arrivals::RatePerHour(r) => {
                    let _ = writeln!(o, "rate_per_hour = {}", fmt_f64(r));
                }
            }
            let _ = writeln!(o, "daily = {}", floats(&sp.daily));
            let _ = writeln!(o, "weekly = {}", floats(&sp.weekly));
            let _ = writeln!(o, "owners = {}", sp.owners);
            let _ = writeln!(o, "keepalive = {}", opt_d(sp.keepalive));
            let _ = writeln!(o, "lapse_probability = {}", fmt_f64(sp.lapse_probability));
            let _ = writeln!(o, "lapse_after = {}", sp.lapse_after.to_toml());
            let _ = writeln!(o, "data_in = {}", sp.data_in.to_toml());
            let _ = writeln!(o, "data_out = {}", sp.data_out.to_toml());
            for c in &sp.classes {
                let _ = writeln!(o, "\n[[workload.class]]");
                let _ = writeln!(o, "name = {}", s(&c.name));
                let _ = writeln!(o, "weight = {}", fmt_f64(c.weight));
                let _ = writeln!(o, "kind = {}", s(c.shape.kind()));
                let limits = match &c.shape {
                    ClassShape::Board => false,
                    ClassShape::Boards { boards, min_ratio } => {
                        let _ = writeln!(o, "boards = {}", boards.to_toml());
                        let _ = writeln!(o, "min_ratio = {}", fmt_f64(*min_ratio));
                        true
                    }
                    ClassShape::Rect { width, height } => {
                        let _ = writeln!(o, "width = {}", width.to_toml());
                        let _ = writeln!(o, "height = {}", height.to_toml());
                        true
                    }
                    ClassShape::Specific { boards } => {
                        let items = boards.iter().map(|b| format!("[{}, {}, {}]", b.x, b.y, b.z)).collect();
                        let _ = writeln!(o, "specific = {}", array(items));
                        false
                    }
                };
                if limits {
                    let _ = writeln!(o, "max_dead_boards = {}", opt_u32(c.max_dead_boards));
                    let _ = writeln!(o, "max_dead_links = {}", opt_u32(c.max_dead_links));
                    let _ = writeln!(o, "require_torus = {}", c.require_torus);
                }
                let _ = writeln!(o, "duration = {}", c.duration.to_toml());
                match c.estimate_factor {
                    Some(f) => {
                        let _ = writeln!(o, "estimate_factor = {}", fmt_f64(f));
                    }
                    None => {
                        let _ = writeln!(o, "estimate = \"none\"");
                    }
                }
                if let Some(m) = &c.machine {
                    let _ = writeln!(o, "machine = {}", s(m));
                }
                if let Some(t) = &c.tags {
                    let _ = writeln!(o, "tags = {}", strings(t));
                }
            }
        }
        WorkloadConfig::Trace(t) => {
            let _ = writeln!(o, "source = \"trace\"");
            let _ = writeln!(o, "path = {}", path(&t.path));
            let _ = writeln!(o, "time_scale = {}", fmt_f64(t.time_scale));
            let _ = writeln!(o, "keepalive = {}", opt_d(t.keepalive));
            let _ = writeln!(o, "owner = {}", s(&t.owner));
            let est = match t.estimate {
                TraceEstimate::None => "none",
                TraceEstimate::Actual => "actual",
            };
            let _ = writeln!(o, "estimate = {}", s(est));
            let _ = writeln!(o, "data_in = {}", t.data_in.to_toml());
            let _ = writeln!(o, "data_out = {}", t.data_out.to_toml());
        }
        WorkloadConfig::Swf(w) => {
            let _ = writeln!(o, "source = \"swf\"");
            let _ = writeln!(o, "path = {}", path(&w.path));
            match w.procs_per_board {
                Some(p) => {
                    let _ = writeln!(o, "procs_per_board = {}", fmt_f64(p));
                }
                None => {
                    let _ = writeln!(o, "procs_per_board = \"auto\"");
                }
            }
            let _ = writeln!(o, "time_scale = {}", fmt_f64(w.time_scale));
            let _ = writeln!(o, "skip = {}", d(w.skip));
            if let Some(l) = w.limit {
                let _ = writeln!(o, "limit = {l}");
            }
            let _ = writeln!(o, "min_ratio = {}", fmt_f64(w.min_ratio));
            let _ = writeln!(o, "max_dead_boards = {}", opt_u32(w.max_dead_boards));
            let est = match w.estimate {
                SwfEstimate::Requested => "requested",
                SwfEstimate::Actual => "actual",
                SwfEstimate::None => "none",
            };
            let _ = writeln!(o, "estimate = {}", s(est));
            let _ = writeln!(o, "keepalive = {}", opt_d(w.keepalive));
            let _ = writeln!(o, "data_in = {}", w.data_in.to_toml());
            let _ = writeln!(o, "data_out = {}", w.data_out.to_toml());
        }
    }
}
