//! From the raw file to a resolved [`Scenario`]: ranges, cross-references, defaults.
//!
//! Every error names the key path; its line comes from the parsed document ([`Locator`]).

use super::locate::Locator;
use super::raw::*;
use super::*;
use crate::input::line_of;
use crate::quantity::dist::{Dist, NoneOr, Quantity};
use crate::workload::swf::SwfEstimate;
use crate::workload::synthetic::{Arrivals, ClassShape, JobClass, Profile, default_classes};
use crate::workload::trace::TraceEstimate;
use spinnbed_core::geometry::{Addressing, IpScheme, Layout, MachineError, Physical, board_locations_from_spinner_csv};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Component;

type R<T> = Result<T, InputError>;

/// Reads and resolves scenario text.
pub fn parse(file: &str, text: &str, base_dir: &Path) -> R<Scenario> {
    let de = toml::Deserializer::parse(text).map_err(|e| toml_error(file, text, None, &e))?;
    let raw: RawScenario = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        toml_error(file, text, Some(path), e.inner())
    })?;
    let base = normalize(&std::path::absolute(base_dir).unwrap_or_else(|_| base_dir.to_path_buf()));
    let ctx = Ctx {
        file,
        loc: Locator::new(text),
        base,
    };
    ctx.scenario(raw)
}

/// A toml/serde error as an [`InputError`]: the line from toml's span (or the key path), the
/// path from `serde_path_to_error` (plus the missing key for "missing field" errors).
fn toml_error(file: &str, text: &str, path: Option<String>, e: &toml::de::Error) -> InputError {
    let msg = e.message().trim().to_string();
    let mut field = path.filter(|p| p != "." && !p.is_empty());
    if let Some(missing) = msg.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
        field = Some(match field {
            Some(p) => format!("{p}.{missing}"),
            None => missing.to_string(),
        });
    }
    let line = match e.span() {
        Some(span) => Some(line_of(text, span.start)),
        None => {
            // TOML gives up on very deep dotted keys without a place: find it.
            if let Some((line, parts)) = super::locate::deep_key(text) {
                return InputError::at(
                    file,
                    Some(line),
                    None,
                    format!(
                        "a dotted key or table header of {parts} parts is nested too deeply (at most {}; no scenario key has more than 4)",
                        super::locate::MAX_KEY_PARTS
                    ),
                );
            }
            field.as_deref().and_then(|f| Locator::new(text).line(f))
        }
    };
    InputError {
        file: file.to_string(),
        line,
        field,
        message: msg,
    }
}

/// Removes `.` and resolves `..` lexically.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

struct Ctx<'a> {
    file: &'a str,
    loc: Locator<'a>,
    base: PathBuf,
}

const LINKS: &str = "east, north_east, north, west, south_west or south";

impl Ctx<'_> {
    fn err(&self, path: &str, msg: impl Into<String>) -> InputError {
        InputError::at(self.file, self.loc.line(path), Some(path), msg)
    }

    fn path(&self, p: &str) -> PathBuf {
        normalize(&self.base.join(p))
    }

    fn positive(&self, path: &str, v: f64) -> R<f64> {
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            Err(self.err(path, format!("must be a number greater than zero (got {v})")))
        }
    }

    fn non_negative(&self, path: &str, v: f64) -> R<f64> {
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(self.err(path, format!("must be a non-negative number (got {v})")))
        }
    }

    /// A probability in [0, 1] (or [0, 1) when `below_one`).
    fn prob(&self, path: &str, v: f64, below_one: bool) -> R<f64> {
        let ok = v.is_finite() && v >= 0.0 && if below_one { v < 1.0 } else { v <= 1.0 };
        if ok {
            Ok(v)
        } else if below_one {
            Err(self.err(path, format!("must be a probability with 0 <= p < 1 (got {v})")))
        } else {
            Err(self.err(path, format!("must be a probability with 0 <= p <= 1 (got {v})")))
        }
    }

    fn int<T: TryFrom<i64>>(&self, path: &str, v: i64, lo: i64, hi: i64) -> R<T> {
        if v < lo || v > hi {
            return Err(self.err(path, format!("must be an integer from {lo} to {hi} (got {v})")));
        }
        T::try_from(v).map_err(|_| self.err(path, format!("must be an integer from {lo} to {hi} (got {v})")))
    }

    fn nonzero(&self, path: &str, d: Duration) -> R<Duration> {
        if d.0 == 0 {
            Err(self.err(path, "must be longer than zero"))
        } else {
            Ok(d)
        }
    }

    fn dist<T: Quantity>(&self, path: &str, d: Dist<T>) -> R<Dist<T>> {
        d.validate().map_err(|e| {
            let p = if e.key.is_empty() {
                path.to_string()
            } else {
                format!("{path}.{}", e.key)
            };
            self.err(&p, e.problem.to_string())
        })?;
        Ok(d)
    }

    fn board(&self, path: &str, (x, y, z): (i64, i64, i64), width: u16, height: u16) -> R<Board> {
        if x < 0 || y < 0 || z < 0 || x >= width as i64 || y >= height as i64 || z > 2 {
            return Err(self.err(
                path,
                format!(
                    "board ({x}, {y}, {z}) is outside the {width} x {height} triad machine (0 <= x < {width}, 0 <= y < {height}, 0 <= z <= 2)"
                ),
            ));
        }
        Ok(Board::new(x as u16, y as u16, z as u8))
    }

    fn link(&self, path: &str, name: &str) -> R<Link> {
        Link::parse(name).ok_or_else(|| self.err(path, format!("unknown link {name:?} (expected {LINKS})")))
    }

    fn existing_file(&self, path: &str, p: &str) -> R<PathBuf> {
        let full = self.path(p);
        match std::fs::metadata(&full) {
            Ok(m) if m.is_file() => Ok(full),
            Ok(_) => Err(self.err(path, format!("{} is not a file", full.display()))),
            Err(e) => Err(self.err(path, format!("cannot read {}: {e}", full.display()))),
        }
    }

    fn scenario(&self, raw: RawScenario) -> R<Scenario> {
        let run = self.run(raw.run)?;
        if raw.machine.is_empty() {
            return Err(InputError::at(
                self.file,
                None,
                Some("machine"),
                "at least one [[machine]] is required",
            ));
        }
        let mut machines = Vec::new();
        for (i, m) in raw.machine.into_iter().enumerate() {
            machines.push(self.machine(i, m)?);
        }
        self.machines_together(&machines)?;
        // A study measures instead of running jobs: it has no workload.
        let experiment = match (raw.workload, raw.study) {
            (Some(_), Some(_)) => {
                return Err(self.err(
                    "study",
                    "a scenario runs either a [workload] or a [study], not both: remove one of them",
                ));
            }
            (None, Some(st)) => Experiment::Study(self.study(st)?),
            (w, None) => Experiment::Workload(self.workload(w.unwrap_or_default(), &run, &machines)?),
        };
        let policy = self.policy(raw.policy)?;
        let host = self.host(raw.host)?;
        let network = self.network(raw.network, &machines)?;
        let mut faults = Vec::new();
        for (i, f) in raw.faults.into_iter().enumerate() {
            let fault = self.fault(i, f, &run, &machines)?;
            // Fixed-delay hardware has BMPs (which can go silent) but no boards, links or
            // network to break.
            if host.hardware == HardwareModel::FixedDelay && !matches!(fault.kind, FaultKind::BmpSilent { .. }) {
                return Err(self.err(
                    &format!("faults[{i}].kind"),
                    format!(
                        "kind = \"{}\" needs packet-level hardware: set [host] hardware = \"emulator\" \
                         (fixed-delay hardware only models BMPs, so only \"bmp_silent\" applies)",
                        fault.kind.name()
                    ),
                ));
            }
            faults.push(fault);
        }
        for (i, m) in machines.iter().enumerate() {
            let want = m.random_dead_boards as usize;
            if want == 0 {
                continue;
            }
            let candidates = m.random_dead_candidates(&faults, &network.paths).len();
            if want > candidates {
                let live = m.machine.boards().filter(|b| m.machine.is_live(*b)).count();
                let mut msg = format!(
                    "asks for {want} random dead boards, but machine {:?} has only {live} live boards",
                    m.spec.name
                );
                if candidates < live {
                    msg.push_str(&format!(
                        ", {} of them named by [[faults]] or [[network.path]] (which random dead boards leave alone)",
                        live - candidates
                    ));
                }
                return Err(self.err(&format!("machine[{i}].random_dead_boards"), msg));
            }
        }
        let mut scenario = Scenario {
            run,
            machines,
            experiment,
            policy,
            host,
            network,
            faults,
            file: PathBuf::from(self.file),
            source: SourceText(self.loc.text().into()),
        };
        scenario.choose_random_dead_boards();
        Ok(scenario)
    }

    fn run(&self, r: RawRun) -> R<RunConfig> {
        let name_ok = !r.name.is_empty()
            && !r.name.starts_with('.')
            && r.name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !name_ok {
            return Err(self.err(
                "run.name",
                format!(
                    "{:?} is not a usable run name (letters, digits, '.', '_' and '-', not starting with '.'; it names the output directory)",
                    r.name
                ),
            ));
        }
        let weekday = match r.start_weekday.unwrap_or(RawWeekday::Monday) {
            RawWeekday::Monday => Weekday::Monday,
            RawWeekday::Tuesday => Weekday::Tuesday,
            RawWeekday::Wednesday => Weekday::Wednesday,
            RawWeekday::Thursday => Weekday::Thursday,
            RawWeekday::Friday => Weekday::Friday,
            RawWeekday::Saturday => Weekday::Saturday,
            RawWeekday::Sunday => Weekday::Sunday,
        };
        Ok(RunConfig {
            name: r.name,
            seed: r.seed.map_or(1, |s| s.0),
            horizon: self.nonzero("run.horizon", r.horizon.0)?,
            sample_period: self.sample_period(r.sample_period.map_or(Duration::from_secs(300), |d| d.0))?,
            drain_limit: r.drain_limit.map_or(Duration::from_secs(30 * 86_400), |d| d.0),
            start_weekday: weekday,
            start_hour: self.int("run.start_hour", r.start_hour.unwrap_or(0), 0, 23)?,
        })
    }

    /// At least [`MIN_SAMPLE_PERIOD`]: the resolved scenario must state the period the run
    /// uses, so a shorter one is refused rather than raised behind the user's back.
    fn sample_period(&self, d: Duration) -> R<Duration> {
        if d < MIN_SAMPLE_PERIOD {
            return Err(self.err(
                "run.sample_period",
                format!(
                    "must be at least {} (got {})",
                    units::format_duration(MIN_SAMPLE_PERIOD),
                    units::format_duration(d)
                ),
            ));
        }
        Ok(d)
    }

    fn machine(&self, i: usize, m: RawMachine) -> R<MachineConfig> {
        let p = format!("machine[{i}]");
        if m.name.is_empty() {
            return Err(self.err(&format!("{p}.name"), "must not be empty"));
        }
        let max = crate::input::machine_json::MAX_TRIADS as i64;
        let width: u16 = self.int(&format!("{p}.width"), m.width, 1, max)?;
        let height: u16 = self.int(&format!("{p}.height"), m.height, 1, max)?;
        let tags = m.tags.unwrap_or_else(|| vec!["default".to_string()]);
        for (k, t) in tags.iter().enumerate() {
            if t.is_empty() {
                return Err(self.err(&format!("{p}.tags[{k}]"), "a tag must not be empty"));
            }
        }
        let mut dead_boards = Vec::new();
        for (k, b) in m.dead_boards.iter().enumerate() {
            dead_boards.push(self.board(&format!("{p}.dead_boards[{k}]"), b.0, width, height)?);
        }
        let mut dead_links = Vec::new();
        for (k, Tuple((x, y, z, name))) in m.dead_links.iter().enumerate() {
            let b = self.board(&format!("{p}.dead_links[{k}]"), (*x, *y, *z), width, height)?;
            dead_links.push((b, self.link(&format!("{p}.dead_links[{k}][3]"), name)?));
        }
        let layout = match m.layout {
            None | Some(RawLayout::Standard) => Layout::Standard,
            Some(RawLayout::Table(t)) => self.layout(&format!("{p}.layout"), t, width, height)?,
        };
        let addressing = match m.ip {
            None => Addressing::default(),
            Some(ip) => self.addressing(&format!("{p}.ip"), ip, width, height)?,
        };
        let timing = self.timing(&format!("{p}.timing"), m.timing)?;
        let scamp = self.scamp(&format!("{p}.scamp"), m.scamp)?;
        let random_dead_boards = match m.random_dead_boards {
            Some(n) => self.int(&format!("{p}.random_dead_boards"), n, 0, u32::MAX as i64)?,
            None => 0,
        };
        let spec = MachineSpec {
            name: m.name,
            tags,
            width,
            height,
            dead_boards,
            dead_links,
            layout,
            addressing,
        };
        let machine = Machine::new(spec.clone()).map_err(|e| {
            let key = match &e {
                MachineError::Empty { .. } => "width",
                MachineError::Outside { what, .. } => match *what {
                    "addressed" => "ip.boards",
                    "dead" => "dead_boards",
                    "dead-link" => "dead_links",
                    _ => "layout",
                },
                MachineError::DuplicateLocation { .. } => "layout",
                MachineError::Missing { what, .. } if what.contains("IP") => "ip",
                MachineError::Missing { .. } => "layout",
                MachineError::MissingBmp { .. } | MachineError::DuplicateIp { .. } | MachineError::Ip { .. } => "ip",
            };
            let key = format!("{p}.{key}");
            // Point at the key if it is written, else at the machine.
            let path = if self.loc.line(&key) == self.loc.line(&p) {
                p.clone()
            } else {
                key
            };
            self.err(&path, e.to_string())
        })?;
        // The random dead boards are chosen once the whole scenario is read (`scenario`): they
        // leave alone the boards that faults and network paths name.
        Ok(MachineConfig {
            machine,
            spec,
            timing,
            scamp,
            random_dead_boards,
            random_dead: Vec::new(),
        })
    }

    fn layout(&self, p: &str, t: RawLayoutTable, width: u16, height: u16) -> R<Layout> {
        match (t.spinner_csv, t.boards) {
            (Some(_), Some(_)) => Err(self.err(p, "give either spinner_csv or boards, not both")),
            (None, None) => Err(self.err(
                p,
                "a layout table needs spinner_csv = \"path\" or boards = [[x, y, z, cabinet, frame, board], ...]",
            )),
            (Some(csv), None) => {
                let key = format!("{p}.spinner_csv");
                let path = self.existing_file(&key, &csv)?;
                let text = crate::input::read_text(&path).map_err(|e| self.err(&key, e.to_string()))?;
                let (_, _, list) = board_locations_from_spinner_csv(&text)
                    .map_err(|e| self.err(&key, format!("{}: {e}", path.display())))?;
                Ok(Layout::Explicit(list))
            }
            (None, Some(boards)) => {
                let mut list = Vec::new();
                for (k, &Tuple((x, y, z, c, f, b))) in boards.iter().enumerate() {
                    let path = format!("{p}.boards[{k}]");
                    let board = self.board(&path, (x, y, z), width, height)?;
                    let range = |v: i64| (0..=u16::MAX as i64).contains(&v);
                    if !(range(c) && range(f) && range(b)) {
                        return Err(self.err(
                            &path,
                            format!("cabinet, frame and board must be integers from 0 to 65535 (got {c}, {f}, {b})"),
                        ));
                    }
                    list.push((board, Physical::new(c as u16, f as u16, b as u16)));
                }
                Ok(Layout::Explicit(list))
            }
        }
    }

    fn addressing(&self, p: &str, ip: RawIp, width: u16, height: u16) -> R<Addressing> {
        let scheme_keys = [
            ("base", ip.base),
            ("cabinet_stride", ip.cabinet_stride),
            ("frame_stride", ip.frame_stride),
            ("board_stride", ip.board_stride),
            ("bmp_offset", ip.bmp_offset),
            ("spinnaker_offset", ip.spinnaker_offset),
        ];
        let explicit = ip.bmps.is_some() || ip.boards.is_some();
        if explicit {
            if let Some((k, _)) = scheme_keys.iter().find(|(_, v)| v.is_some()) {
                return Err(self.err(
                    &format!("{p}.{k}"),
                    "give either an address scheme (base, strides, offsets) or explicit bmps and boards, not both",
                ));
            }
            let (Some(bmps), Some(boards)) = (ip.bmps, ip.boards) else {
                return Err(self.err(p, "explicit addressing needs both bmps and boards"));
            };
            let mut out_bmps = Vec::new();
            for (k, &Tuple((c, f, addr))) in bmps.iter().enumerate() {
                let path = format!("{p}.bmps[{k}]");
                let range = |v: i64| (0..=u16::MAX as i64).contains(&v);
                if !(range(c) && range(f)) {
                    return Err(self.err(
                        &path,
                        format!("cabinet and frame must be integers from 0 to 65535 (got {c}, {f})"),
                    ));
                }
                out_bmps.push((
                    FrameId {
                        cabinet: c as u16,
                        frame: f as u16,
                    },
                    addr,
                ));
            }
            let mut out_boards = Vec::new();
            for (k, &Tuple((x, y, z, addr))) in boards.iter().enumerate() {
                let b = self.board(&format!("{p}.boards[{k}]"), (x, y, z), width, height)?;
                out_boards.push((b, addr));
            }
            return Ok(Addressing::Explicit {
                bmps: out_bmps,
                boards: out_boards,
            });
        }
        let d = IpScheme::default();
        Ok(Addressing::Scheme(IpScheme {
            base: ip.base.unwrap_or(d.base),
            cabinet_stride: ip.cabinet_stride.unwrap_or(d.cabinet_stride),
            frame_stride: ip.frame_stride.unwrap_or(d.frame_stride),
            board_stride: ip.board_stride.unwrap_or(d.board_stride),
            bmp_offset: ip.bmp_offset.unwrap_or(d.bmp_offset),
            spinnaker_offset: ip.spinnaker_offset.unwrap_or(d.spinnaker_offset),
        }))
    }

    fn timing(&self, p: &str, t: Option<RawTiming>) -> R<MachineTiming> {
        let d = MachineTiming::default();
        let Some(t) = t else { return Ok(d) };
        Ok(MachineTiming {
            power_on: t.power_on.map_or(d.power_on, |v| v.0),
            power_off: t.power_off.map_or(d.power_off, |v| v.0),
            link_write: t.link_write.map_or(d.link_write, |v| v.0),
            boot: t.boot.map_or(d.boot, |v| v.0),
            bmp_retry_delay: t.bmp_retry_delay.map_or(d.bmp_retry_delay, |v| v.0),
            bmp_tries: match t.bmp_tries {
                Some(v) => self.int(&format!("{p}.bmp_tries"), v, 1, 1000)?,
                None => d.bmp_tries,
            },
        })
    }

    fn scamp(&self, p: &str, t: Option<RawScamp>) -> R<ScampTiming> {
        let d = ScampTiming::default();
        let Some(t) = t else { return Ok(d) };
        let dur = |v: Option<crate::quantity::dist::Q<Duration>>, d: Duration| v.map_or(d, |v| v.0);
        Ok(ScampTiming {
            enabled: t.enabled.unwrap_or(d.enabled),
            service_base: dur(t.service_base, d.service_base),
            service_read_256: dur(t.service_read_256, d.service_read_256),
            service_write_256: dur(t.service_write_256, d.service_write_256),
            service_fill_per_kib: dur(t.service_fill_per_kib, d.service_fill_per_kib),
            transient_tags: match t.transient_tags {
                Some(v) => self.int(&format!("{p}.transient_tags"), v, 1, 8)?,
                None => d.transient_tags,
            },
            msg_buffers: match t.msg_buffers {
                Some(v) => self.int(&format!("{p}.msg_buffers"), v, 1, 65_535)?,
                None => d.msg_buffers,
            },
            p2p_per_packet: dur(t.p2p_per_packet, d.p2p_per_packet),
            p2p_hop: dur(t.p2p_hop, d.p2p_hop),
            bmp_service: dur(t.bmp_service, d.bmp_service),
            bmp_can_frame: dur(t.bmp_can_frame, d.bmp_can_frame),
            bmp_transient_tags: match t.bmp_transient_tags {
                Some(v) => self.int(&format!("{p}.bmp_transient_tags"), v, 1, 255)?,
                None => d.bmp_transient_tags,
            },
            bmp_rx_buffers: match t.bmp_rx_buffers {
                Some(v) => self.int(&format!("{p}.bmp_rx_buffers"), v, 1, 65_535)?,
                None => d.bmp_rx_buffers,
            },
        })
    }

    /// Names unique; no IP address shared between machines.
    fn machines_together(&self, machines: &[MachineConfig]) -> R<()> {
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        let mut ips: BTreeMap<Ipv4Addr, (usize, String)> = BTreeMap::new();
        for (j, m) in machines.iter().enumerate() {
            if let Some(i) = names.insert(m.machine.name(), j) {
                return Err(self.err(
                    &format!("machine[{j}].name"),
                    format!("machine name {:?} is already used by machine[{i}]", m.machine.name()),
                ));
            }
            let mut mine: Vec<(Ipv4Addr, String)> = m
                .machine
                .bmps()
                .map(|(f, ip)| (ip, format!("the BMP of cabinet {} frame {}", f.cabinet, f.frame)))
                .collect();
            mine.extend(m.machine.board_ips().map(|(b, ip)| (ip, format!("board {b}"))));
            for (ip, who) in &mine {
                if let Some((i, other)) = ips.get(ip) {
                    let key = format!("machine[{j}].ip");
                    let path = if self.loc.line(&key) == self.loc.line(&format!("machine[{j}]")) {
                        format!("machine[{j}]")
                    } else {
                        key
                    };
                    return Err(self.err(
                        &path,
                        format!(
                            "IP address {ip} of {who} is also used by machine {:?} ({other}); give each machine its own [machine.ip] base",
                            machines[*i].machine.name()
                        ),
                    ));
                }
            }
            for (ip, who) in mine {
                ips.insert(ip, (j, who));
            }
        }
        Ok(())
    }

    fn workload(&self, w: RawWorkload, run: &RunConfig, machines: &[MachineConfig]) -> R<WorkloadConfig> {
        let source = w.source.unwrap_or(RawSource::Synthetic);
        for (key, who) in w.present_keys() {
            if !who.contains(&source) {
                let users: Vec<&str> = who.iter().map(|s| s.name()).collect();
                let users = match users.split_last() {
                    Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
                    _ => users.join(""),
                };
                return Err(self.err(
                    &format!("workload.{key}"),
                    format!(
                        "`{key}` is not used by source = \"{}\" (only by {users})",
                        source.name()
                    ),
                ));
            }
        }
        let default_tagged = machines.iter().any(|m| m.machine.tags().iter().any(|t| t == "default"));
        // Recorded jobs (job logs, journals) carry their own machine or tags.
        let untagged_jobs = match source {
            RawSource::Synthetic => w.class.is_none(),
            RawSource::Trace | RawSource::Swf => true,
            RawSource::SpallocLog | RawSource::Journal => false,
        };
        if untagged_jobs && !default_tagged {
            return Err(self.err(
                "workload",
                "the jobs of this workload ask for a machine tagged \"default\", and no machine has that tag",
            ));
        }
        let load_scale = self.positive("workload.load_scale", w.load_scale.unwrap_or(1.0))?;
        match source {
            RawSource::Synthetic => self
                .synthetic(w, load_scale, run, machines)
                .map(WorkloadConfig::Synthetic),
            RawSource::Trace => {
                let path = self.required_path(&w)?;
                let estimate = match w.estimate.as_deref() {
                    None | Some("none") => TraceEstimate::None,
                    Some("actual") => TraceEstimate::Actual,
                    Some(other) => {
                        return Err(self.err(
                            "workload.estimate",
                            format!("unknown estimate {other:?} for a trace (expected \"none\" or \"actual\")"),
                        ));
                    }
                };
                let owner = w.owner.unwrap_or_else(|| "trace".into());
                if owner.is_empty() {
                    return Err(self.err("workload.owner", "must not be empty"));
                }
                Ok(WorkloadConfig::Trace(TraceSpec {
                    path,
                    time_scale: self.positive("workload.time_scale", w.time_scale.unwrap_or(1.0))?,
                    load_scale,
                    keepalive: self.keepalive(w.keepalive, None)?,
                    owner,
                    estimate,
                    data_in: self.data_dist("workload.data_in", w.data_in.clone())?,
                    data_out: self.data_dist("workload.data_out", w.data_out.clone())?,
                }))
            }
            RawSource::Swf => {
                let path = self.required_path(&w)?;
                let estimate = match w.estimate.as_deref() {
                    None | Some("requested") => SwfEstimate::Requested,
                    Some("actual") => SwfEstimate::Actual,
                    Some("none") => SwfEstimate::None,
                    Some(other) => {
                        return Err(self.err(
                            "workload.estimate",
                            format!("unknown estimate {other:?} for an SWF log (expected \"requested\", \"actual\" or \"none\")"),
                        ));
                    }
                };
                let procs_per_board = match w.procs_per_board {
                    None | Some(AutoOr(None)) => None,
                    Some(AutoOr(Some(v))) => Some(self.positive("workload.procs_per_board", v)?),
                };
                let limit = self.limit(w.limit)?;
                Ok(WorkloadConfig::Swf(SwfSpec {
                    path,
                    procs_per_board,
                    time_scale: self.positive("workload.time_scale", w.time_scale.unwrap_or(1.0))?,
                    load_scale,
                    skip: w.skip.map_or(Duration::ZERO, |d| d.0),
                    limit,
                    min_ratio: self.non_negative("workload.min_ratio", w.min_ratio.unwrap_or(0.333))?,
                    max_dead_boards: w.max_dead_boards.map_or(Some(0), |v| v.0),
                    estimate,
                    keepalive: self.keepalive(w.keepalive, None)?,
                    data_in: self.data_dist("workload.data_in", w.data_in.clone())?,
                    data_out: self.data_dist("workload.data_out", w.data_out.clone())?,
                }))
            }
            RawSource::SpallocLog => Ok(WorkloadConfig::SpallocLog(SpallocLogSpec {
                path: self.required_file_or_dir(&w)?,
                time_scale: self.positive("workload.time_scale", w.time_scale.unwrap_or(1.0))?,
                load_scale,
                limit: self.limit(w.limit)?,
                keepalive: self.keepalive_override(w.keepalive)?,
                estimate: self.recorded_estimate(w.estimate.as_deref(), "a job log")?,
                data_in: self.data_dist("workload.data_in", w.data_in.clone())?,
                data_out: self.data_dist("workload.data_out", w.data_out.clone())?,
            })),
            RawSource::Journal => Ok(WorkloadConfig::Journal(JournalSpec {
                path: self.required_file_or_dir(&w)?,
                time_scale: self.positive("workload.time_scale", w.time_scale.unwrap_or(1.0))?,
                load_scale,
                limit: self.limit(w.limit)?,
                keepalive: self.keepalive_override(w.keepalive)?,
                estimate: self.recorded_estimate(w.estimate.as_deref(), "a journal")?,
                include_simulated: w.include_simulated.unwrap_or(true),
                data_in: self.data_dist("workload.data_in", w.data_in.clone())?,
                data_out: self.data_dist("workload.data_out", w.data_out.clone())?,
            })),
        }
    }

    fn limit(&self, v: Option<i64>) -> R<Option<u64>> {
        v.map(|v| self.int("workload.limit", v, 1, i64::MAX)).transpose()
    }

    /// `estimate` of a recorded workload: `"none"` (the default) or `"actual"`.
    fn recorded_estimate(&self, e: Option<&str>, what: &str) -> R<TraceEstimate> {
        match e {
            None | Some("none") => Ok(TraceEstimate::None),
            Some("actual") => Ok(TraceEstimate::Actual),
            Some(other) => Err(self.err(
                "workload.estimate",
                format!("unknown estimate {other:?} for {what} (expected \"none\" or \"actual\")"),
            )),
        }
    }

    /// A keepalive that replaces the recorded ones: absent keeps each job's own.
    fn keepalive_override(&self, k: Option<NoneOr<Duration>>) -> R<Option<Option<Duration>>> {
        k.map(|k| self.keepalive(Some(k), None)).transpose()
    }

    /// `path` of a source that reads a file or a directory of them.
    fn required_file_or_dir(&self, w: &RawWorkload) -> R<PathBuf> {
        let Some(p) = &w.path else {
            return Err(self.err(
                "workload",
                "this source needs `path` (a file, or a directory holding it)",
            ));
        };
        let full = self.path(p);
        match std::fs::metadata(&full) {
            Ok(_) => Ok(full),
            Err(e) => Err(self.err("workload.path", format!("cannot read {}: {e}", full.display()))),
        }
    }

    /// A file-based workload's data size distribution (none: 0 bytes).
    fn data_dist(
        &self,
        key: &str,
        d: Option<Dist<dist::ByteSize>>,
    ) -> R<crate::quantity::dist::Dist<crate::quantity::dist::ByteSize>> {
        match d {
            None => Ok(crate::quantity::dist::Dist::fixed(crate::quantity::dist::ByteSize(0))),
            Some(d) => self.dist(key, d),
        }
    }

    fn required_path(&self, w: &RawWorkload) -> R<PathBuf> {
        match &w.path {
            None => Err(self.err("workload", "this source needs `path` (the workload file)")),
            Some(p) => self.existing_file("workload.path", p),
        }
    }

    fn keepalive(&self, k: Option<NoneOr<Duration>>, default: Option<Duration>) -> R<Option<Duration>> {
        match k {
            None => Ok(default),
            Some(NoneOr(None)) => Ok(None),
            Some(NoneOr(Some(d))) => self.nonzero("workload.keepalive", d).map(Some).map_err(|e| InputError {
                message: "must be longer than zero (or \"none\" for no keepalive)".into(),
                ..e
            }),
        }
    }

    fn weights<const N: usize>(&self, path: &str, v: Option<Vec<f64>>, default: [f64; N]) -> R<[f64; N]> {
        let Some(v) = v else { return Ok(default) };
        let arr: [f64; N] = v
            .clone()
            .try_into()
            .map_err(|_| self.err(path, format!("needs exactly {N} weights (got {})", v.len())))?;
        for (i, w) in arr.iter().enumerate() {
            if !w.is_finite() || *w < 0.0 {
                return Err(self.err(
                    &format!("{path}[{i}]"),
                    format!("weights must be non-negative numbers (got {w})"),
                ));
            }
        }
        if arr.iter().all(|w| *w == 0.0) {
            return Err(self.err(path, "weights are all zero"));
        }
        Ok(arr)
    }

    fn synthetic(
        &self,
        w: RawWorkload,
        load_scale: f64,
        run: &RunConfig,
        machines: &[MachineConfig],
    ) -> R<SyntheticSpec> {
        let arrivals = match (w.jobs, w.rate_per_hour) {
            (Some(_), Some(_)) => {
                return Err(self.err(
                    "workload.rate_per_hour",
                    "give either `jobs` or `rate_per_hour`, not both",
                ));
            }
            (None, None) => {
                return Err(self.err(
                    "workload",
                    "a synthetic workload needs `jobs` (how many) or `rate_per_hour` (mean arrival rate)",
                ));
            }
            (Some(n), None) => Arrivals::Jobs(self.int("workload.jobs", n, 1, i64::MAX)?),
            (None, Some(r)) => Arrivals::RatePerHour(self.positive("workload.rate_per_hour", r)?),
        };
        let mut spec = SyntheticSpec::new(arrivals);
        spec.load_scale = load_scale;
        if let Arrivals::RatePerHour(r) = spec.arrivals
            && !(r * spec.load_scale).is_finite()
        {
            return Err(self.err(
                "workload.load_scale",
                format!(
                    "rate_per_hour {r:?} x load_scale {:?} is too large to be a rate",
                    spec.load_scale
                ),
            ));
        }
        spec.daily = self.weights("workload.daily", w.daily, spec.daily)?;
        spec.weekly = self.weights("workload.weekly", w.weekly, spec.weekly)?;
        if let Some(n) = w.owners {
            spec.owners = self.int("workload.owners", n, 1, 1_000_000)?;
        }
        spec.keepalive = self.keepalive(w.keepalive, spec.keepalive)?;
        if let Some(p) = w.lapse_probability {
            spec.lapse_probability = self.prob("workload.lapse_probability", p, false)?;
        }
        if let Some(d) = w.lapse_after {
            spec.lapse_after = self.dist("workload.lapse_after", d)?;
        }
        if let Some(d) = w.data_in {
            spec.data_in = self.dist("workload.data_in", d)?;
        }
        if let Some(d) = w.data_out {
            spec.data_out = self.dist("workload.data_out", d)?;
        }
        spec.classes = match w.class {
            None => default_classes(),
            Some(list) if list.is_empty() => {
                return Err(self.err("workload.class", "at least one [[workload.class]] is required"));
            }
            Some(list) => {
                let mut out: Vec<JobClass> = Vec::new();
                for (k, c) in list.into_iter().enumerate() {
                    let class = self.class(k, c, machines)?;
                    if let Some(i) = out.iter().position(|o| o.name == class.name) {
                        return Err(self.err(
                            &format!("workload.class[{k}].name"),
                            format!("class name {:?} is already used by workload.class[{i}]", class.name),
                        ));
                    }
                    out.push(class);
                }
                out
            }
        };
        if matches!(spec.arrivals, Arrivals::Jobs(_)) {
            let profile = Profile::new(&spec.daily, &spec.weekly).expect("weights checked");
            let mean = profile.mean_over(&run.calendar());
            if mean.is_nan() || mean <= 0.0 {
                return Err(self.err(
                    "workload.daily",
                    "the arrival profile (daily x weekly weights) is zero throughout the horizon, so no job can arrive",
                ));
            }
        }
        Ok(spec)
    }

    fn class(&self, k: usize, c: RawClass, machines: &[MachineConfig]) -> R<JobClass> {
        let p = format!("workload.class[{k}]");
        let key = |name: &str| format!("{p}.{name}");
        if c.name.is_empty() {
            return Err(self.err(&key("name"), "must not be empty"));
        }
        let weight = self.positive(&key("weight"), c.weight)?;
        // Which machines could run it.
        let eligible: Vec<&Machine> = match (&c.machine, &c.tags) {
            (Some(_), Some(_)) => {
                return Err(self.err(&key("tags"), "give either `machine` or `tags`, not both"));
            }
            (Some(name), None) => match machines.iter().find(|m| m.machine.name() == name) {
                Some(m) => vec![&m.machine],
                None => {
                    let names: Vec<&str> = machines.iter().map(|m| m.machine.name()).collect();
                    return Err(self.err(
                        &key("machine"),
                        format!("no machine named {name:?} (machines: {})", names.join(", ")),
                    ));
                }
            },
            (None, tags) => {
                let want: Vec<String> = tags.clone().unwrap_or_else(|| vec!["default".into()]);
                let found: Vec<&Machine> = machines
                    .iter()
                    .map(|m| &m.machine)
                    .filter(|m| want.iter().all(|t| m.tags().contains(t)))
                    .collect();
                if found.is_empty() {
                    let what = if tags.is_some() { key("tags") } else { key("name") };
                    return Err(self.err(
                        &what,
                        format!("no machine has all the tags {want:?}, so these jobs could never run"),
                    ));
                }
                found
            }
        };
        if let Some(t) = &c.tags
            && t.is_empty()
        {
            return Err(self.err(&key("tags"), "must list at least one tag"));
        }
        // The kind, given or inferred from the keys present.
        let groups = [
            (RawKind::Boards, c.boards.is_some()),
            (RawKind::Rect, c.width.is_some() || c.height.is_some()),
            (RawKind::Specific, c.specific.is_some()),
        ];
        let kind = match c.kind {
            Some(kind) => kind,
            None => {
                let present: Vec<RawKind> = groups.iter().filter(|(_, p)| *p).map(|(k, _)| *k).collect();
                match present.as_slice() {
                    [] => RawKind::Board,
                    [one] => *one,
                    _ => {
                        return Err(self.err(
                            &p,
                            "cannot tell the kind from the keys: add kind = \"boards\", \"rect\" or \"specific\"",
                        ));
                    }
                }
            }
        };
        let kind_name = match kind {
            RawKind::Board => "board",
            RawKind::Boards => "boards",
            RawKind::Rect => "rect",
            RawKind::Specific => "specific",
        };
        let present = [
            ("boards", c.boards.is_some(), &[RawKind::Boards][..]),
            ("min_ratio", c.min_ratio.is_some(), &[RawKind::Boards][..]),
            ("width", c.width.is_some(), &[RawKind::Rect][..]),
            ("height", c.height.is_some(), &[RawKind::Rect][..]),
            ("specific", c.specific.is_some(), &[RawKind::Specific][..]),
            (
                "max_dead_boards",
                c.max_dead_boards.is_some(),
                &[RawKind::Boards, RawKind::Rect][..],
            ),
            (
                "max_dead_links",
                c.max_dead_links.is_some(),
                &[RawKind::Boards, RawKind::Rect][..],
            ),
            (
                "require_torus",
                c.require_torus.is_some(),
                &[RawKind::Boards, RawKind::Rect][..],
            ),
        ];
        for (name, is, kinds) in present {
            if is && !kinds.contains(&kind) {
                return Err(self.err(&key(name), format!("`{name}` is not used by kind = \"{kind_name}\"")));
            }
        }
        let shape = match kind {
            RawKind::Board => ClassShape::Board,
            RawKind::Boards => ClassShape::Boards {
                boards: self.dist(
                    &key("boards"),
                    c.boards
                        .ok_or_else(|| self.err(&p, "kind = \"boards\" needs `boards` (a board count distribution)"))?,
                )?,
                min_ratio: self.non_negative(&key("min_ratio"), c.min_ratio.unwrap_or(0.333))?,
            },
            RawKind::Rect => ClassShape::Rect {
                width: self.dist(
                    &key("width"),
                    c.width
                        .ok_or_else(|| self.err(&p, "kind = \"rect\" needs `width` (in triads)"))?,
                )?,
                height: self.dist(
                    &key("height"),
                    c.height
                        .ok_or_else(|| self.err(&p, "kind = \"rect\" needs `height` (in triads)"))?,
                )?,
            },
            RawKind::Specific => {
                let list = c
                    .specific
                    .ok_or_else(|| self.err(&p, "kind = \"specific\" needs `specific` = [[x, y, z], ...]"))?;
                if list.is_empty() {
                    return Err(self.err(&key("specific"), "must list at least one board"));
                }
                let mut boards = Vec::new();
                for (j, &Tuple((x, y, z))) in list.iter().enumerate() {
                    let path = format!("{p}.specific[{j}]");
                    let inside = eligible.iter().any(|m| {
                        x >= 0 && y >= 0 && (0..3).contains(&z) && x < m.width() as i64 && y < m.height() as i64
                    });
                    if !inside {
                        return Err(self.err(
                            &path,
                            format!("board ({x}, {y}, {z}) is outside every machine these jobs may run on"),
                        ));
                    }
                    boards.push(Board::new(x as u16, y as u16, z as u8));
                }
                ClassShape::Specific { boards }
            }
        };
        let estimate_factor = match (c.estimate_factor, c.estimate.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(self.err(
                    &key("estimate"),
                    "give either `estimate_factor` or `estimate = \"none\"`, not both",
                ));
            }
            (Some(f), None) => Some(self.positive(&key("estimate_factor"), f)?),
            (None, Some("none")) => None,
            (None, Some(other)) => {
                return Err(self.err(
                    &key("estimate"),
                    format!("unknown estimate {other:?} (only \"none\"; use estimate_factor for declared estimates)"),
                ));
            }
            (None, None) => Some(1.0),
        };
        Ok(JobClass {
            name: c.name,
            weight,
            shape,
            max_dead_boards: c.max_dead_boards.and_then(|v| v.0),
            max_dead_links: c.max_dead_links.and_then(|v| v.0),
            require_torus: c.require_torus.unwrap_or(false),
            duration: self.dist(&key("duration"), c.duration)?,
            estimate_factor,
            machine: c.machine,
            tags: c.tags,
        })
    }

    fn policy(&self, p: Option<RawPolicy>) -> R<PolicyConfig> {
        let d = PolicyConfig::default();
        let Some(p) = p else { return Ok(d) };
        let packer = match p.packer {
            None | Some(RawPacker::Spalloc) => PackerKind::Spalloc,
            Some(RawPacker::Anywhere) => PackerKind::Anywhere,
        };
        let exact_boards = p.exact_boards.unwrap_or(false);
        if exact_boards && packer != PackerKind::Anywhere {
            return Err(self.err("policy.exact_boards", "exact_boards needs packer = \"anywhere\""));
        }
        Ok(PolicyConfig {
            packer,
            exact_boards,
            queue: match p.queue {
                None | Some(RawQueue::Fifo) => QueueKind::Fifo,
                Some(RawQueue::Easy) => QueueKind::Easy,
            },
            backfill_depth: match p.backfill_depth {
                Some(v) => self.int("policy.backfill_depth", v, 1, u32::MAX as i64)?,
                None => d.backfill_depth,
            },
            estimate: match p.estimate {
                None | Some(RawPolicyEstimate::Declared) => EstimateSource::Declared,
                Some(RawPolicyEstimate::Actual) => EstimateSource::Actual,
            },
            seconds_before_free: p.seconds_before_free.map_or(d.seconds_before_free, |v| v.0),
            max_retired_jobs: match p.max_retired_jobs {
                Some(v) => self.int("policy.max_retired_jobs", v, 0, i64::MAX)?,
                None => d.max_retired_jobs,
            },
            disable_peripheral_links: p.disable_peripheral_links.unwrap_or(d.disable_peripheral_links),
            avoid_failing_boards: match p.avoid_failing_boards {
                Some(v) => self.int("policy.avoid_failing_boards", v, 0, u32::MAX as i64)?,
                None => d.avoid_failing_boards,
            },
        })
    }

    /// A preset's name in scenarios.
    fn preset(p: RawScp) -> ScpPolicy {
        match p {
            RawScp::Spinnman => ScpPolicy::Spinnman,
            RawScp::SpinnmanLegacy => ScpPolicy::SpinnmanLegacy,
            RawScp::Rig => ScpPolicy::Rig,
            RawScp::Adaptive => ScpPolicy::Adaptive,
        }
    }

    /// The pipeline preset a `from` key names (spinnman or spinnman-legacy).
    fn pipeline_from(&self, path: &str, from: Option<RawScp>) -> R<(ScpPolicy, spinnbed_core::host::PipelinePolicy)> {
        use spinnbed_core::host::Policy;
        let preset = from.map_or(ScpPolicy::Spinnman, Self::preset);
        match preset.policy() {
            Policy::Spinnman(p) => Ok((preset, p)),
            _ => Err(self.err(
                path,
                format!(
                    "a pipeline starts from \"spinnman\" or \"spinnman-legacy\" (got \"{}\")",
                    preset.name()
                ),
            )),
        }
    }

    /// `n_channels` and `intermediate_channel_waits` of a pipeline (waits must be below the
    /// channels, except 0 waits with 1 channel).
    fn channels(&self, path: &str, channels: i64) -> R<usize> {
        self.int(path, channels, 1, 1024)
    }

    fn waits(&self, path: &str, waits: i64, channels: usize) -> R<usize> {
        let hi = channels.saturating_sub(1) as i64;
        if waits < 0 || waits > hi {
            return Err(self.err(
                path,
                format!("must be an integer from 0 to n_channels − 1 = {hi} (got {waits})"),
            ));
        }
        Ok(waits as usize)
    }

    fn pipeline(&self, path: &str, p: RawPipeline) -> R<spinnbed_core::host::PipelinePolicy> {
        use spinnbed_core::host::RetryCodes;
        let key = |k: &str| format!("{path}.{k}");
        let (_, mut out) = self.pipeline_from(&key("from"), p.from)?;
        if let Some(c) = p.n_channels {
            out.n_channels = self.channels(&key("n_channels"), c)?;
            out.intermediate_channel_waits = out.n_channels - 1;
        }
        if let Some(w) = p.intermediate_channel_waits {
            out.intermediate_channel_waits = self.waits(&key("intermediate_channel_waits"), w, out.n_channels)?;
        } else if out.intermediate_channel_waits >= out.n_channels {
            out.intermediate_channel_waits = out.n_channels - 1;
        }
        if let Some(r) = p.n_retries {
            out.n_retries = self.int(&key("n_retries"), r, 0, 1000)?;
        }
        if let Some(t) = p.packet_timeout {
            out.packet_timeout = self.nonzero(&key("packet_timeout"), t.0)?;
        }
        if let Some(t) = p.retry_pause {
            out.retry_code_pause = t.0;
        }
        if let Some(codes) = p.retry_codes {
            let mut set = RetryCodes::EMPTY;
            for (i, name) in codes.iter().enumerate() {
                let rc = RetryCodes::code_named(name).ok_or_else(|| {
                    let known: Vec<&str> = (0x81..=0x8F)
                        .map(|c| spinnbed_core::proto::scp::ReturnCode::from_code(c).name())
                        .collect();
                    self.err(
                        &format!("{path}.retry_codes[{i}]"),
                        format!(
                            "unknown return code {name:?}: give one of {} (the RC_ may be left out)",
                            known.join(", ")
                        ),
                    )
                })?;
                set = set.with(rc);
            }
            out.retry_codes = set;
        }
        Ok(out)
    }

    fn pacing(&self, path: &str, p: RawPacing) -> R<spinnbed_core::host::TokenBucket> {
        use spinnbed_core::host::{Charge, TokenBucket};
        let key = |k: &str| format!("{path}.{k}");
        let tokens: u64 = self.int(&key("tokens"), p.tokens, 1, 1 << 40)?;
        let fill_rate: u64 = self.int(&key("fill_rate"), p.fill_rate, 1, 1 << 40)?;
        let charge = match p.per_packet {
            None => Charge::Flat(TokenBucket::SPINNMAN_CHARGE),
            Some(RawCharge::Flat(n)) => Charge::Flat(self.int(&key("per_packet"), n, 1, u32::MAX as i64)?),
            Some(RawCharge::Bytes) => Charge::Bytes,
        };
        // spinnman: "It is an error to consume more tokens than the bucket capacity."
        let most = match charge {
            Charge::Flat(n) => u64::from(n),
            Charge::Bytes => {
                (spinnbed_core::proto::sdp::PADDING_LEN
                    + spinnbed_core::proto::sdp::HEADER_LEN
                    + spinnbed_core::proto::scp::MAX_LEN) as u64
            }
        };
        if most > tokens {
            return Err(self.err(
                &key("tokens"),
                format!("the bucket must hold a whole packet: at least {most} tokens (got {tokens})"),
            ));
        }
        Ok(TokenBucket {
            tokens,
            fill_rate,
            charge,
        })
    }

    /// A policy: a preset's name or `{ name, policy | pipeline, pacing }`.
    fn scp_choice(&self, path: &str, c: RawScpChoice) -> R<ScpChoice> {
        use spinnbed_core::host::Policy;
        let spec = match c {
            RawScpChoice::Named(p) => return Ok(ScpChoice::preset(Self::preset(p))),
            RawScpChoice::Spec(spec) => spec,
        };
        let (policy, default_name) = match (spec.policy, spec.pipeline) {
            (Some(p), None) => (Self::preset(p).policy(), Self::preset(p).name().to_string()),
            (None, Some(pl)) => (
                Policy::Spinnman(self.pipeline(&format!("{path}.pipeline"), pl)?),
                "pipeline".to_string(),
            ),
            (Some(_), Some(_)) => {
                return Err(self.err(
                    &format!("{path}.pipeline"),
                    "give `policy` (a preset) or `pipeline` (spinnman's pipeline with its parameters), not both",
                ));
            }
            (None, None) => {
                return Err(self.err(
                    path,
                    "give `policy` (a preset: \"spinnman\", \"spinnman-legacy\", \"rig\", \"adaptive\") or \
                     `pipeline` (spinnman's pipeline with its parameters)",
                ));
            }
        };
        let pacing = match spec.pacing {
            Some(p) => Some(self.pacing(&format!("{path}.pacing"), p)?),
            None => None,
        };
        let name = match spec.name {
            Some(n) if n.trim().is_empty() || n.contains(['\n', '\r']) => {
                return Err(self.err(&format!("{path}.name"), "a policy's name must be one non-empty line"));
            }
            Some(n) => n,
            None if pacing.is_some() => format!("{default_name} paced"),
            None => default_name,
        };
        Ok(ScpChoice { name, policy, pacing })
    }

    fn pipeline_grid(&self, g: RawPipelineGrid) -> R<PipelineGrid> {
        let at = "study.pipeline_grid";
        let key = |k: &str| format!("{at}.{k}");
        let (from, _) = self.pipeline_from(&key("from"), g.from)?;
        let list = |k: &str, n: usize| -> R<()> {
            if n == 0 {
                Err(self.err(&key(k), "give at least one value (or leave the key out)"))
            } else {
                Ok(())
            }
        };
        let mut grid = PipelineGrid {
            from,
            n_channels: None,
            intermediate_channel_waits: None,
            n_retries: None,
            packet_timeout: None,
            retry_pause: None,
            pacing: None,
        };
        if let Some(v) = g.n_channels {
            list("n_channels", v.len())?;
            let mut out = Vec::new();
            for (i, c) in v.into_iter().enumerate() {
                out.push(self.channels(&format!("{at}.n_channels[{i}]"), c)?);
            }
            grid.n_channels = Some(out);
        }
        if let Some(v) = g.intermediate_channel_waits {
            list("intermediate_channel_waits", v.len())?;
            let mut out = Vec::new();
            for (i, w) in v.into_iter().enumerate() {
                out.push(self.int(&format!("{at}.intermediate_channel_waits[{i}]"), w, 0, 1023)?);
            }
            grid.intermediate_channel_waits = Some(out);
        }
        if let Some(v) = g.n_retries {
            list("n_retries", v.len())?;
            let mut out = Vec::new();
            for (i, r) in v.into_iter().enumerate() {
                out.push(self.int(&format!("{at}.n_retries[{i}]"), r, 0, 1000)?);
            }
            grid.n_retries = Some(out);
        }
        if let Some(v) = g.packet_timeout {
            list("packet_timeout", v.len())?;
            let mut out = Vec::new();
            for (i, t) in v.into_iter().enumerate() {
                out.push(self.nonzero(&format!("{at}.packet_timeout[{i}]"), t.0)?);
            }
            grid.packet_timeout = Some(out);
        }
        if let Some(v) = g.retry_pause {
            list("retry_pause", v.len())?;
            grid.retry_pause = Some(v.into_iter().map(|q| q.0).collect());
        }
        if let Some(v) = g.pacing {
            list("pacing", v.len())?;
            let mut out = Vec::new();
            for (i, p) in v.into_iter().enumerate() {
                out.push(match p {
                    RawPacingChoice::None => None,
                    RawPacingChoice::Bucket(b) => Some(self.pacing(&format!("{at}.pacing[{i}]"), b)?),
                });
            }
            grid.pacing = Some(out);
        }
        if grid.points().is_empty() {
            return Err(self.err(
                &key("intermediate_channel_waits"),
                "no point of the grid has fewer intermediate_channel_waits than n_channels",
            ));
        }
        Ok(grid)
    }

    fn study_network(&self, i: usize, n: RawStudyNetwork) -> R<StudyNetwork> {
        use crate::quantity::dist::Law;
        let at = format!("study.network[{i}]");
        let key = |k: &str| format!("{at}.{k}");
        if n.name.trim().is_empty() || n.name.contains(['\n', '\r']) {
            return Err(self.err(&key("name"), "a network condition's name must be one non-empty line"));
        }
        let jitter = match n.jitter {
            None => None,
            Some(d) => {
                let d = self.dist(&key("jitter"), d)?;
                if !matches!(d.law, Law::Fixed(_) | Law::Uniform | Law::Choice { .. }) {
                    return Err(self.err(
                        &key("jitter"),
                        format!(
                            "the jitter is added to each cell's one-way delay, which keeps its law only for fixed, uniform and choice (got {}); approximate a long tail with a choice",
                            d.name()
                        ),
                    ));
                }
                Some(d)
            }
        };
        Ok(StudyNetwork {
            name: n.name,
            jitter,
            reorder: self.prob(&key("reorder"), n.reorder.unwrap_or(0.0), true)?,
            duplicate: self.prob(&key("duplicate"), n.duplicate.unwrap_or(0.0), true)?,
            burst: match n.burst {
                Some(b) => Some(self.burst(&key("burst"), b)?),
                None => None,
            },
            bandwidth_mbps: match n.bandwidth_mbps {
                Some(v) => Some(self.positive(&key("bandwidth_mbps"), v)?),
                None => None,
            },
        })
    }

    fn study(&self, st: RawStudy) -> R<StudyConfig> {
        let RawStudyKind::ScpWindowing = st.kind;
        let policies: Vec<ScpChoice> = match st.policies {
            Some(v) => {
                let mut out = Vec::new();
                for (i, c) in v.into_iter().enumerate() {
                    out.push(self.scp_choice(&format!("study.policies[{i}]"), c)?);
                }
                out
            }
            None => [ScpPolicy::Spinnman, ScpPolicy::Rig, ScpPolicy::Adaptive]
                .into_iter()
                .map(ScpChoice::preset)
                .collect(),
        };
        let pipeline_grid = match st.pipeline_grid {
            Some(g) => Some(self.pipeline_grid(g)?),
            None => None,
        };
        if policies.is_empty() && pipeline_grid.is_none() {
            return Err(self.err("study.policies", "give at least one policy"));
        }
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let grid_points = pipeline_grid.as_ref().map(PipelineGrid::points).unwrap_or_default();
        let named = policies
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), format!("study.policies[{i}]")))
            .chain(
                grid_points
                    .iter()
                    .map(|p| (p.name.clone(), "study.pipeline_grid".to_string())),
            );
        for (name, at) in named {
            if let Some(first) = seen.get(&name) {
                return Err(self.err(
                    &at,
                    format!("two policies are called {name:?} (the other is {first}): give one a `name`"),
                ));
            }
            seen.insert(name, at);
        }
        let mut networks = Vec::new();
        for (i, n) in st.network.into_iter().enumerate() {
            let n = self.study_network(i, n)?;
            if networks.iter().any(|m: &StudyNetwork| m.name == n.name) {
                return Err(self.err(
                    &format!("study.network[{i}].name"),
                    format!("two network conditions are called {:?}", n.name),
                ));
            }
            networks.push(n);
        }
        if networks.is_empty() {
            networks.push(StudyNetwork::clean());
        }
        let ops: Vec<TransferOp> = match st.ops {
            Some(v) => v
                .into_iter()
                .map(|o| {
                    if o == RawOp::Read {
                        TransferOp::Read
                    } else {
                        TransferOp::Write
                    }
                })
                .collect(),
            None => vec![TransferOp::Read, TransferOp::Write],
        };
        if ops.is_empty() {
            return Err(self.err("study.ops", "give at least one of \"read\", \"write\""));
        }
        let losses = st.losses.unwrap_or_else(|| vec![0.0, 0.001, 0.01, 0.05, 0.1]);
        if losses.is_empty() {
            return Err(self.err("study.losses", "give at least one loss probability"));
        }
        for (i, l) in losses.iter().enumerate() {
            self.prob(&format!("study.losses[{i}]"), *l, true)?;
        }
        let rtts: Vec<Duration> = match st.rtts {
            Some(v) => v.into_iter().map(|q| q.0).collect(),
            None => vec![
                Duration::from_micros(300),
                Duration::from_millis(1),
                Duration::from_millis(10),
            ],
        };
        if rtts.is_empty() {
            return Err(self.err("study.rtts", "give at least one round-trip time"));
        }
        for (i, r) in rtts.iter().enumerate() {
            if *r == Duration::ZERO {
                return Err(self.err(&format!("study.rtts[{i}]"), "a round-trip time must be positive"));
            }
        }
        let bytes = st.bytes.map(|b| b.0.0).unwrap_or(256 * 1024);
        if bytes == 0 || bytes > 64 * 1024 * 1024 {
            return Err(self.err("study.bytes", format!("must be from 1 byte to 64MiB (got {bytes})")));
        }
        let seeds = match st.seeds {
            Some(v) => self.int("study.seeds", v, 1, 100)?,
            None => 3,
        };
        Ok(StudyConfig {
            policies,
            pipeline_grid,
            networks,
            ops,
            losses,
            rtts,
            bytes,
            seeds,
        })
    }

    fn host(&self, h: Option<RawHost>) -> R<HostConfig> {
        let d = HostConfig::default();
        let Some(h) = h else { return Ok(d) };
        Ok(HostConfig {
            hardware: match h.hardware {
                None | Some(RawHardware::FixedDelay) => HardwareModel::FixedDelay,
                Some(RawHardware::Emulator) => HardwareModel::Emulator,
            },
            post_power_on_delay: h.post_power_on_delay.map_or(d.post_power_on_delay, |q| q.0),
            scp_policy: match h.scp_policy {
                None => d.scp_policy.clone(),
                Some(c) => self.scp_choice("host.scp_policy", c)?,
            },
            boot_users: h.boot_users.unwrap_or(d.boot_users),
            boot_tries: match h.boot_tries {
                Some(v) => self.int("host.boot_tries", v, 1, 1000)?,
                None => d.boot_tries,
            },
            live_output: match h.live_output {
                Some(l) => Some(self.live_output(l, h.hardware, h.boot_users)?),
                None => None,
            },
            transfers: match h.transfers {
                None | Some(RawTransfers::Packets) => TransferModel::Packets,
                Some(RawTransfers::Flow) => {
                    if !matches!(h.hardware, Some(RawHardware::Emulator)) {
                        return Err(self.err(
                            "host.transfers",
                            "transfers = \"flow\" approximates packet-level transfers: set [host] \
                             hardware = \"emulator\"",
                        ));
                    }
                    if h.boot_users != Some(true) {
                        return Err(self.err(
                            "host.transfers",
                            "transfers = \"flow\" changes how users move their data, and these users move \
                             none: set [host] boot_users = true",
                        ));
                    }
                    TransferModel::Flow
                }
            },
        })
    }

    /// `[host.live_output]`: needs packet-level hardware and users that boot their boards.
    fn live_output(
        &self,
        l: RawLiveOutput,
        hardware: Option<RawHardware>,
        boot_users: Option<bool>,
    ) -> R<LiveOutputConfig> {
        let d = LiveOutputConfig::default();
        if !matches!(hardware, Some(RawHardware::Emulator)) {
            return Err(self.err(
                "host.live_output",
                "live output needs packet-level hardware: set [host] hardware = \"emulator\"",
            ));
        }
        if boot_users != Some(true) {
            return Err(self.err(
                "host.live_output",
                "live output needs users that boot their boards: set [host] boot_users = true",
            ));
        }
        Ok(LiveOutputConfig {
            fraction: match l.fraction {
                Some(f) => self.prob("host.live_output.fraction", f, false)?,
                None => d.fraction,
            },
            rate: match l.rate {
                Some(v) => self.int("host.live_output.rate", v, 1, 100_000)?,
                None => d.rate,
            },
            keys_per_packet: match l.keys_per_packet {
                Some(v) => self.int("host.live_output.keys_per_packet", v, 1, 62)?,
                None => d.keys_per_packet,
            },
            start: match l.start {
                None | Some(RawLiveStart::Running) => LiveStart::Running,
                Some(RawLiveStart::Booted) => LiveStart::Booted,
            },
            tag: match l.tag {
                Some(v) => self.int("host.live_output.tag", v, 0, 7)?,
                None => d.tag,
            },
        })
    }

    fn burst(&self, path: &str, b: RawBurst) -> R<BurstLoss> {
        Ok(BurstLoss {
            p_enter: self.prob(&format!("{path}.p_enter"), b.p_enter, false)?,
            p_leave: self.prob(&format!("{path}.p_leave"), b.p_leave, false)?,
            loss: self.prob(&format!("{path}.loss"), b.loss, false)?,
        })
    }

    fn network(&self, n: Option<RawNetwork>, machines: &[MachineConfig]) -> R<NetworkConfig> {
        let d = NetworkConfig::default();
        let Some(n) = n else { return Ok(d) };
        let burst = match n.burst {
            None => None,
            Some(b) => Some(self.burst("network.burst", b)?),
        };
        let mut paths = Vec::new();
        for (i, p) in n.path.into_iter().enumerate() {
            paths.push(self.network_path(i, p, machines)?);
        }
        Ok(NetworkConfig {
            latency: match n.latency {
                Some(l) => self.dist("network.latency", l)?,
                None => d.latency,
            },
            loss: self.prob("network.loss", n.loss.unwrap_or(d.loss), true)?,
            burst,
            duplicate: self.prob("network.duplicate", n.duplicate.unwrap_or(d.duplicate), true)?,
            reorder: self.prob("network.reorder", n.reorder.unwrap_or(d.reorder), true)?,
            bandwidth_mbps: self.positive("network.bandwidth_mbps", n.bandwidth_mbps.unwrap_or(d.bandwidth_mbps))?,
            paths,
        })
    }

    fn network_path(&self, i: usize, p: RawPath, machines: &[MachineConfig]) -> R<PathConfig> {
        let at = format!("network.path[{i}]");
        let key = |name: &str| format!("{at}.{name}");
        let to = match p.to {
            None | Some(RawPathTo::All) => PathTo::All,
            Some(RawPathTo::Bmps) => PathTo::Bmps,
            Some(RawPathTo::Boards) => PathTo::Boards,
        };
        let set = PathSettings {
            latency: match p.latency {
                Some(l) => Some(self.dist(&key("latency"), l)?),
                None => None,
            },
            loss: match p.loss {
                Some(v) => Some(self.prob(&key("loss"), v, true)?),
                None => None,
            },
            burst: match p.burst {
                Some(b) => Some(self.burst(&key("burst"), b)?),
                None => None,
            },
            duplicate: match p.duplicate {
                Some(v) => Some(self.prob(&key("duplicate"), v, true)?),
                None => None,
            },
            reorder: match p.reorder {
                Some(v) => Some(self.prob(&key("reorder"), v, true)?),
                None => None,
            },
            bandwidth_mbps: match p.bandwidth_mbps {
                Some(v) => Some(self.positive(&key("bandwidth_mbps"), v)?),
                None => None,
            },
        };
        if set == PathSettings::default() {
            return Err(self.err(
                &at,
                "a path changes nothing: give at least one of latency, loss, burst, duplicate, reorder, bandwidth_mbps",
            ));
        }
        let selected: Vec<&Machine> = match &p.machine {
            Some(name) => vec![
                machines
                    .iter()
                    .map(|m| &m.machine)
                    .find(|m| m.name() == name)
                    .ok_or_else(|| self.err(&key("machine"), format!("no machine named {name:?}")))?,
            ],
            None => machines.iter().map(|m| &m.machine).collect(),
        };
        if p.machine.is_none() {
            for (what, given) in [("frames", !p.frames.is_empty()), ("boards", !p.boards.is_empty())] {
                if given {
                    return Err(self.err(&key(what), format!("`{what}` needs `machine`: which machine's {what}?")));
                }
            }
        }
        if to == PathTo::Bmps && !p.boards.is_empty() {
            return Err(self.err(&key("boards"), "`boards` cannot be used with to = \"bmps\""));
        }
        let mut frames = Vec::new();
        for (j, &Tuple((c, f))) in p.frames.iter().enumerate() {
            let m = selected[0];
            let frame = u16::try_from(c)
                .ok()
                .zip(u16::try_from(f).ok())
                .map(|(cabinet, frame)| FrameId { cabinet, frame })
                .filter(|fid| m.bmp_ip(*fid).is_some())
                .ok_or_else(|| {
                    self.err(
                        &format!("{at}.frames[{j}]"),
                        format!("machine {:?} has no frame (cabinet {c}, frame {f})", m.name()),
                    )
                })?;
            frames.push(frame);
        }
        let mut boards = Vec::new();
        for (j, &Tuple(b)) in p.boards.iter().enumerate() {
            let m = selected[0];
            let path = format!("{at}.boards[{j}]");
            let board = self.board(&path, b, m.width(), m.height())?;
            if m.board_ip(board).is_none() {
                return Err(self.err(
                    &path,
                    format!("board {board} of machine {:?} is dead or has no address", m.name()),
                ));
            }
            boards.push(board);
        }
        let mut endpoints = std::collections::BTreeSet::new();
        for m in &selected {
            let in_frames = |f: FrameId| frames.is_empty() || frames.contains(&f);
            if to != PathTo::Boards && boards.is_empty() {
                endpoints.extend(m.bmps().filter(|(f, _)| in_frames(*f)).map(|(_, ip)| ip));
            }
            if to != PathTo::Bmps {
                endpoints.extend(
                    m.board_ips()
                        .filter(|(b, _)| boards.is_empty() || boards.contains(b))
                        .filter(|(b, _)| frames.is_empty() || m.location(*b).is_some_and(|l| in_frames(l.frame_id())))
                        .map(|(_, ip)| ip),
                );
            }
        }
        if endpoints.is_empty() {
            return Err(self.err(&at, "the path covers no BMP or board"));
        }
        Ok(PathConfig {
            machine: p.machine,
            to,
            frames,
            boards,
            set,
            endpoints,
        })
    }

    fn fault(&self, i: usize, f: RawFault, run: &RunConfig, machines: &[MachineConfig]) -> R<FaultConfig> {
        let p = format!("faults[{i}]");
        let key = |name: &str| format!("{p}.{name}");
        let end = run.horizon + run.drain_limit;
        if f.at.0 > end {
            return Err(self.err(
                &key("at"),
                format!(
                    "the fault happens after the end of the run (horizon {} + drain_limit {})",
                    units::format_duration(run.horizon),
                    units::format_duration(run.drain_limit)
                ),
            ));
        }
        let kind_name = match f.kind {
            RawFaultKind::BoardDies => "board_dies",
            RawFaultKind::LinkFails => "link_fails",
            RawFaultKind::BmpSilent => "bmp_silent",
            RawFaultKind::LossBurst => "loss_burst",
        };
        use RawFaultKind::*;
        if f.kind == LossBurst
            && let Some(name) = &f.machine
            && !machines.iter().any(|m| m.machine.name() == name)
        {
            return Err(self.err(&key("machine"), format!("no machine named {name:?}")));
        }
        let uses = [
            (
                "machine",
                f.machine.is_some() || f.kind == LossBurst,
                &[BoardDies, LinkFails, BmpSilent, LossBurst][..],
            ),
            ("board", f.board.is_some(), &[BoardDies, LinkFails][..]),
            ("link", f.link.is_some(), &[LinkFails][..]),
            ("frame", f.frame.is_some(), &[BmpSilent][..]),
            ("loss", f.loss.is_some(), &[LossBurst][..]),
        ];
        for (name, present, kinds) in uses {
            if kinds.contains(&f.kind) && !present {
                return Err(self.err(&p, format!("kind = \"{kind_name}\" needs `{name}`")));
            }
            if present && !kinds.contains(&f.kind) {
                return Err(self.err(&key(name), format!("`{name}` is not used by kind = \"{kind_name}\"")));
            }
        }
        let machine = |name: &str| -> R<&Machine> {
            machines
                .iter()
                .map(|m| &m.machine)
                .find(|m| m.name() == name)
                .ok_or_else(|| self.err(&key("machine"), format!("no machine named {name:?}")))
        };
        let kind = match f.kind {
            BoardDies | LinkFails => {
                let name = f.machine.expect("checked");
                let m = machine(&name)?;
                let board = self.board(&key("board"), f.board.expect("checked").0, m.width(), m.height())?;
                if m.dead_boards().contains(&board) {
                    return Err(self.err(
                        &key("board"),
                        format!("board {board} of machine {name:?} is already dead"),
                    ));
                }
                if f.kind == BoardDies {
                    FaultKind::BoardDies { machine: name, board }
                } else {
                    let link = self.link(&key("link"), f.link.as_deref().expect("checked"))?;
                    FaultKind::LinkFails {
                        machine: name,
                        board,
                        link,
                    }
                }
            }
            BmpSilent => {
                let name = f.machine.expect("checked");
                let m = machine(&name)?;
                let (c, fr) = f.frame.expect("checked").0;
                let frame = u16::try_from(c)
                    .ok()
                    .zip(u16::try_from(fr).ok())
                    .map(|(cabinet, frame)| FrameId { cabinet, frame })
                    .filter(|fid| m.bmp_ip(*fid).is_some())
                    .ok_or_else(|| {
                        self.err(
                            &key("frame"),
                            format!("machine {name:?} has no frame (cabinet {c}, frame {fr})"),
                        )
                    })?;
                FaultKind::BmpSilent { machine: name, frame }
            }
            LossBurst => FaultKind::LossBurst {
                loss: self.prob(&key("loss"), f.loss.expect("checked"), false)?,
                machine: f.machine,
            },
        };
        let duration = match f.duration {
            None => None,
            Some(d) => Some(self.nonzero(&key("duration"), d.0)?),
        };
        Ok(FaultConfig {
            at: f.at.0,
            kind,
            duration,
        })
    }
}
