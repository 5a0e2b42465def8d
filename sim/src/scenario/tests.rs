//! Scenario tests: defaults, the resolved round trip, precise errors, determinism, the shipped
//! scenarios.

use super::*;
use crate::workload::swf::SwfEstimate;
use crate::workload::synthetic::{Arrivals, ClassShape};
use crate::workload::trace::TraceEstimate;
use spinnbed_core::alloc::Shape;
use spinnbed_core::geometry::{Addressing, IpScheme, Layout, Physical};
use spinnbed_core::time::Instant;
use std::net::Ipv4Addr;

const BASE: &str = "\
[run]
name = \"t\"
horizon = \"2h\"

[[machine]]
name = \"m\"
width = 2
height = 2
";

fn parse_ok(text: &str) -> Scenario {
    parse("s.toml", text, Path::new("/tmp")).unwrap_or_else(|e| panic!("{e}\n--- text ---\n{text}"))
}

fn parse_err(text: &str) -> InputError {
    match parse("s.toml", text, Path::new("/tmp")) {
        Ok(_) => panic!("should fail:\n{text}"),
        Err(e) => e,
    }
}

/// Parses, prints, re-parses: the scenario and the printed text are both stable.
fn round_trip(sc: &Scenario) {
    let text = sc.to_resolved_toml();
    let again = parse(&sc.file.display().to_string(), &text, Path::new("/elsewhere"))
        .unwrap_or_else(|e| panic!("resolved TOML does not parse: {e}\n{text}"));
    assert_eq!(&again, sc, "resolved TOML reads back differently:\n{text}");
    assert_eq!(again.to_resolved_toml(), text);
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("spinnbed-scenario-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_minimal_scenario_gets_every_default() {
    let sc = parse_ok(&format!("{BASE}\n[workload]\njobs = 10\n"));
    assert_eq!(sc.file, PathBuf::from("s.toml"));
    let r = &sc.run;
    assert_eq!((r.name.as_str(), r.seed), ("t", 1));
    assert_eq!(r.horizon, Duration::from_secs(7200));
    assert_eq!(r.sample_period, Duration::from_secs(300));
    assert_eq!(r.drain_limit, Duration::from_secs(30 * 86_400));
    assert_eq!((r.start_weekday, r.start_hour), (Weekday::Monday, 0));
    let m = &sc.machines[0];
    assert_eq!(m.machine.name(), "m");
    assert_eq!(m.machine.tags(), ["default".to_string()]);
    assert_eq!(m.spec.layout, Layout::Standard);
    assert_eq!(m.spec.addressing, Addressing::Scheme(IpScheme::default()));
    assert_eq!(m.timing, MachineTiming::default());
    assert_eq!(m.timing.power_on, Duration::from_secs(5));
    assert_eq!(m.timing.link_write, Duration::from_millis(10));
    let Some(WorkloadConfig::Synthetic(w)) = sc.workload_config() else {
        panic!()
    };
    assert_eq!(w.arrivals, Arrivals::Jobs(10));
    assert_eq!(w.owners, 40);
    assert_eq!(w.keepalive, Some(Duration::from_secs(60)));
    assert_eq!(w.lapse_probability, 0.01);
    assert_eq!(w.classes.len(), 5);
    assert_eq!(w.weekly, [1.0, 1.0, 1.0, 1.0, 1.0, 0.35, 0.3]);
    assert_eq!(sc.policy, PolicyConfig::default());
    assert_eq!(sc.policy.backfill_depth, 64);
    assert_eq!(sc.host, HostConfig::default());
    assert_eq!(sc.network, NetworkConfig::default());
    assert_eq!(sc.network.latency, Dist::fixed(Duration(150)));
    assert!(sc.faults.is_empty());
    round_trip(&sc);
    // No [workload] at all: a synthetic workload needs a size.
    let e = parse_err(BASE);
    assert_eq!(e.field.as_deref(), Some("workload"));
    assert!(e.message.contains("`jobs`"), "{e}");
}

const FULL: &str = r#"
[run]
name = "full-1"
seed = 18446744073709551615
horizon = "1.5d"
sample_period = 90
drain_limit = "12h"
start_weekday = "friday"
start_hour = 17

[[machine]]
name = "big"
tags = ["default", "room"]
width = 3
height = 2
dead_boards = [[0, 0, 1], [2, 1, 2]]
dead_links = [[1, 1, 0, "north"], [0, 1, 2, "south_west"]]
[machine.ip]
base = "10.0.0.0"
board_stride = "0.0.0.4"
[machine.timing]
power_on = "7.5s"
bmp_tries = 4
[machine.scamp]
service_read_256 = "0.08ms"
transient_tags = 4
p2p_per_packet = "5us"
bmp_rx_buffers = 2

[[machine]]
name = "small"
tags = ["lab"]
width = 1
height = 1
dead_boards = [[0, 0, 1], [0, 0, 2]]
layout = { boards = [[0, 0, 0, 0, 0, 3]] }
[machine.ip]
bmps = [[0, 0, "172.16.0.1"]]
boards = [[0, 0, 0, "172.16.0.2"]]

[workload]
rate_per_hour = 50
daily = [1, 1, 1, 1, 1, 1, 1, 1, 2, 3, 4, 4, 4, 4, 4, 4, 3, 2, 1, 1, 1, 1, 1, 1]
weekly = [1, 1, 1, 1, 1, 0, 0]
owners = 7
keepalive = "none"
lapse_probability = 0.5
lapse_after = { dist = "uniform", min = "1m", max = "2m" }
data_in = "64KiB"
data_out = { dist = "choice", values = ["1MiB", "1.5GiB"], weights = [3, 1] }

[[workload.class]]
name = "single"
weight = 5
duration = { dist = "lognormal", median = "10m", sigma = 1.1, min = "30s", max = "2h" }
estimate_factor = 1.5

[[workload.class]]
name = "group"
weight = 3
kind = "boards"
boards = { dist = "loguniform", min = 2, max = 9 }
min_ratio = 0.5
max_dead_boards = 1
max_dead_links = "none"
require_torus = true
duration = { dist = "exponential", mean = "20m" }
estimate = "none"
tags = ["room"]

[[workload.class]]
name = "block"
weight = 1
width = { dist = "uniform", min = 1, max = 2 }
height = 1
duration = "45m"
machine = "big"

[[workload.class]]
name = "pinned"
weight = 0.5
specific = [[0, 0, 0], [2, 1, 1]]
duration = 600

[policy]
packer = "anywhere"
exact_boards = true
queue = "easy"
backfill_depth = 8
estimate = "actual"
seconds_before_free = "0.5s"
max_retired_jobs = 10
disable_peripheral_links = false
avoid_failing_boards = 3

[host]
hardware = "emulator"
scp_policy = "adaptive"
boot_users = true
boot_tries = 5

[network]
latency = { dist = "lognormal", median = "0.2ms", sigma = 0.3, max = "5ms" }
loss = 0.001
burst = { p_enter = 0.01, p_leave = 0.3, loss = 0.5 }
duplicate = 0.0001
reorder = 0.002
bandwidth_mbps = 1000

[[faults]]
at = "3h"
kind = "board_dies"
machine = "big"
board = [1, 0, 2]

[[faults]]
at = "4h"
kind = "link_fails"
machine = "big"
board = [2, 0, 0]
link = "north_east"
duration = "30m"

[[faults]]
at = "5h"
kind = "bmp_silent"
machine = "small"
frame = [0, 0]
duration = "10m"

[[faults]]
at = "6h"
kind = "loss_burst"
loss = 0.2
duration = "1m"

[[faults]]
at = "7h"
kind = "loss_burst"
machine = "small"
loss = 0.5
"#;

#[test]
fn every_key_is_read_and_printed_back() {
    let sc = parse_ok(FULL);
    assert_eq!(sc.run.seed, u64::MAX);
    assert_eq!(sc.run.horizon, Duration::from_secs(36 * 3600));
    assert_eq!(sc.run.sample_period, Duration::from_secs(90));
    assert_eq!((sc.run.start_weekday, sc.run.start_hour), (Weekday::Friday, 17));
    let big = &sc.machines[0];
    assert_eq!(
        big.machine.board_ip(Board::new(0, 0, 2)),
        Some(Ipv4Addr::new(10, 0, 0, 9))
    );
    assert_eq!(big.timing.power_on, Duration::from_millis(7500));
    assert_eq!(big.timing.bmp_tries, 4);
    assert_eq!(
        big.scamp,
        ScampTiming {
            service_read_256: Duration::from_micros(80),
            transient_tags: 4,
            p2p_per_packet: Duration::from_micros(5),
            bmp_rx_buffers: 2,
            ..ScampTiming::default()
        }
    );
    assert_eq!(sc.machines[1].scamp, ScampTiming::default());
    // Each machine's setting reaches the emulator.
    let emu = sc.emulator_config();
    assert_eq!(emu.scamp_of("big"), big.scamp);
    assert_eq!(emu.scamp_of("small"), ScampTiming::default());
    assert!(
        big.machine
            .dead_links()
            .contains(&(Board::new(0, 1, 2), Link::SouthWest))
    );
    let small = &sc.machines[1];
    assert_eq!(
        small.machine.location(Board::new(0, 0, 0)),
        Some(Physical::new(0, 0, 3))
    );
    assert_eq!(
        small.machine.bmp_ip(FrameId { cabinet: 0, frame: 0 }),
        Some(Ipv4Addr::new(172, 16, 0, 1))
    );
    let Some(WorkloadConfig::Synthetic(w)) = sc.workload_config() else {
        panic!()
    };
    assert_eq!(w.arrivals, Arrivals::RatePerHour(50.0));
    assert_eq!(w.keepalive, None);
    assert_eq!(w.data_in, Dist::fixed(dist::ByteSize(65_536)));
    assert_eq!(w.classes[0].shape, ClassShape::Board);
    assert_eq!(w.classes[0].estimate_factor, Some(1.5));
    assert_eq!(w.classes[1].estimate_factor, None);
    assert_eq!(
        (w.classes[1].max_dead_boards, w.classes[1].max_dead_links),
        (Some(1), None)
    );
    assert!(w.classes[1].require_torus);
    assert!(matches!(w.classes[2].shape, ClassShape::Rect { .. }));
    assert_eq!(w.classes[2].machine.as_deref(), Some("big"));
    assert_eq!(
        w.classes[3].shape,
        ClassShape::Specific {
            boards: vec![Board::new(0, 0, 0), Board::new(2, 1, 1)]
        }
    );
    assert_eq!(w.classes[3].duration, Dist::fixed(Duration::from_secs(600)));
    assert_eq!(sc.policy.packer, PackerKind::Anywhere);
    assert_eq!(sc.policy.seconds_before_free, Duration::from_millis(500));
    assert_eq!(sc.host.scp_policy, ScpChoice::preset(ScpPolicy::Adaptive));
    assert_eq!(
        sc.network.burst,
        Some(BurstLoss {
            p_enter: 0.01,
            p_leave: 0.3,
            loss: 0.5
        })
    );
    assert_eq!(sc.faults.len(), 5);
    assert_eq!(
        sc.faults[1].kind,
        FaultKind::LinkFails {
            machine: "big".into(),
            board: Board::new(2, 0, 0),
            link: Link::NorthEast
        }
    );
    assert_eq!(
        sc.faults[3].kind,
        FaultKind::LossBurst {
            loss: 0.2,
            machine: None
        }
    );
    assert_eq!(
        sc.faults[4].kind,
        FaultKind::LossBurst {
            loss: 0.5,
            machine: Some("small".into())
        }
    );
    assert_eq!(sc.faults[4].duration, None);
    round_trip(&sc);
    let text = sc.to_resolved_toml();
    assert!(
        text.starts_with(
            "# Resolved scenario (every default written out); read back, it gives the same run.\n\n[run]\n"
        )
    );
    for line in [
        "seed = \"18446744073709551615\"\n",
        "horizon = \"36h\"\n",
        "sample_period = \"90s\"\n",
        "power_on = \"7.5s\"\n",
        "seconds_before_free = \"500ms\"\n",
        "duration = \"45m\"\n",
        "\n[network.latency]\ndist = \"lognormal\"\nmedian = \"0.2ms\"\nsigma = 0.3\nmax = \"5ms\"\n",
        "\n[workload.data_out]\ndist = \"choice\"\nvalues = [\"1MiB\", \"1.5GiB\"]\nweights = [3.0, 1.0]\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // Jobs: every class appears, the lapse draws and data volumes follow the spec.
    let jobs = sc.jobs().unwrap();
    assert!(jobs.len() > 150, "{}", jobs.len());
    for class in ["single", "group", "block", "pinned"] {
        assert!(jobs.iter().any(|j| j.class == class), "{class}");
    }
    for j in &jobs {
        assert_eq!(j.keepalive, None);
        assert_eq!(j.lapse_after, None);
        assert!(j.data_out == 1 << 20 || j.data_out == 3 << 29);
        match j.class.as_str() {
            "group" => {
                assert!(matches!(j.request.shape, Shape::Boards { n, .. } if (2..=9).contains(&n)));
                assert_eq!(j.tags, Some(vec!["room".to_string()]));
                assert_eq!(j.estimate, None);
            }
            "block" => assert_eq!(j.machine.as_deref(), Some("big")),
            "single" => assert_eq!(j.estimate, Some(Duration::from_secs_f64(j.runtime.as_secs_f64() * 1.5))),
            _ => {}
        }
    }
    // Nothing arrives on the weekend (weight 0): the run starts Friday 17:00.
    let weekend_start = Duration::from_secs(7 * 3600);
    assert!(jobs.iter().all(|j| j.submit.0 < weekend_start.0));
}

/// (text, a substring of the line the error must point at (None: no line), key path, message).
fn malformed_cases() -> Vec<(String, Option<&'static str>, Option<&'static str>, &'static str)> {
    let w = |extra: &str| format!("{BASE}\n[workload]\njobs = 10\n{extra}");
    let class = |body: &str| w(&format!("\n[[workload.class]]\nname = \"c\"\nweight = 1\n{body}\n"));
    let classes3 = |body: &str| {
        w(&format!(
            "\n[[workload.class]]\nname = \"a\"\nweight = 1\nduration = \"1m\"\n\
             \n[[workload.class]]\nname = \"b\"\nweight = 1\nduration = \"1m\"\n\
             \n[[workload.class]]\nname = \"c\"\nweight = 1\n{body}\n"
        ))
    };
    let fault = |body: &str| w(&format!("\n[[faults]]\n{body}\n"));
    vec![
        (
            "[run]\nname = \"t\"\nhorizn = \"1h\"\n".into(),
            Some("horizn"),
            Some("run.horizn"),
            "unknown field `horizn`",
        ),
        (
            "[run]\nname = \"t\"\n".into(),
            Some("[run]"),
            Some("run.horizon"),
            "missing field `horizon`",
        ),
        (
            "[run]\nname = \"t\"\nhorizon = \"-5m\"\n".into(),
            Some("horizon"),
            Some("run.horizon"),
            "must not be negative",
        ),
        (
            "[run]\nname = \"t\"\nhorizon = \"0s\"\n[[machine]]\nname=\"m\"\nwidth=1\nheight=1\n".into(),
            Some("horizon"),
            Some("run.horizon"),
            "longer than zero",
        ),
        (
            "[run]\nname = \"t\"\nhorizon = \"1h\"\n".into(),
            None,
            Some("machine"),
            "at least one [[machine]]",
        ),
        (
            "[run]\nname = \"a/b\"\nhorizon = \"1h\"\n[[machine]]\nname=\"m\"\nwidth=1\nheight=1\n".into(),
            Some("a/b"),
            Some("run.name"),
            "not a usable run name",
        ),
        (
            w("").replace("height = 2", "height = 2\nstart = 1"),
            Some("start = 1"),
            Some("machine[0].start"),
            "unknown field",
        ),
        (
            w("").replace("width = 2", "width = \"wide\""),
            Some("wide"),
            Some("machine[0].width"),
            "invalid type",
        ),
        (
            w("").replace("width = 2", "width = 0"),
            Some("width = 0"),
            Some("machine[0].width"),
            "from 1 to 256",
        ),
        (
            w("").replace(
                "height = 2",
                "height = 2\ndead_boards = [\n  [0, 0, 0],\n  [0, 0, 1],\n  [0, 0, 2],\n  [5, 0, 0],\n]",
            ),
            Some("[5, 0, 0]"),
            Some("machine[0].dead_boards[3]"),
            "board (5, 0, 0) is outside the 2 x 2 triad machine",
        ),
        (
            w("").replace("height = 2", "height = 2\ndead_links = [[0, 0, 0, \"up\"]]"),
            Some("\"up\""),
            Some("machine[0].dead_links[0][3]"),
            "unknown link \"up\"",
        ),
        (
            w("").replace("height = 2", "height = 2\ndead_boards = [[0, 0]]"),
            Some("dead_boards"),
            Some("machine[0].dead_boards[0]"),
            "invalid length 2",
        ),
        (
            format!(
                "{}\n[[machine]]\nname = \"m\" # again\nwidth = 1\nheight = 1\n[machine.ip]\nbase = \"10.0.0.0\"\n",
                w("")
            ),
            Some("# again"),
            Some("machine[1].name"),
            "already used by machine[0]",
        ),
        (
            format!("{}\n[[machine]] # second\nname = \"n\"\nwidth = 1\nheight = 1\n", w("")),
            Some("# second"),
            Some("machine[1]"),
            "IP address 192.168.0.0 of the BMP of cabinet 0 frame 0 is also used by machine \"m\"",
        ),
        (
            w("").replace("height = 2", "height = 2\n[machine.ip]\nbase = \"10.0.0.300\""),
            Some("10.0.0.300"),
            Some("machine[0].ip.base"),
            "invalid IPv4 address",
        ),
        (
            w("").replace(
                "height = 2",
                "height = 2\n[machine.ip]\nbase = \"10.0.0.0\"\nbmps = []\nboards = []",
            ),
            Some("base ="),
            Some("machine[0].ip.base"),
            "not both",
        ),
        (
            w("").replace("height = 2", "height = 2\n[machine.ip]\nbase = \"255.255.255.200\""),
            Some("[machine.ip]"),
            Some("machine[0].ip"),
            "overflows",
        ),
        (
            w("").replace("height = 2", "height = 2\nlayout = { boards = [[0, 0, 0, 0, 0, 0]] }"),
            Some("layout ="),
            Some("machine[0].layout"),
            "has no physical location",
        ),
        (
            w("").replace("height = 2", "height = 2\nlayout = \"folded\""),
            Some("folded"),
            Some("machine[0].layout"),
            "unknown layout \"folded\"",
        ),
        (
            w("").replace("height = 2", "height = 2\nlayout = { spinner_csv = \"nope.csv\" }"),
            Some("spinner_csv"),
            Some("machine[0].layout.spinner_csv"),
            "cannot read /tmp/nope.csv",
        ),
        (
            w("").replace("height = 2", "height = 2\n[machine.timing]\nbmp_tries = 0"),
            Some("bmp_tries"),
            Some("machine[0].timing.bmp_tries"),
            "from 1 to 1000",
        ),
        (
            w("").replace("height = 2", "height = 2\n[machine.scamp]\nservice_read_256 = \"65xs\""),
            Some("service_read_256"),
            Some("machine[0].scamp.service_read_256"),
            "expected a duration like",
        ),
        (
            w("").replace("height = 2", "height = 2\n[machine.scamp]\nservice_read = \"65us\""),
            Some("service_read ="),
            Some("machine[0].scamp.service_read"),
            "unknown field `service_read`",
        ),
        (
            w("").replace("height = 2", "height = 2\n[machine.scamp]\ntransient_tags = 9"),
            Some("transient_tags"),
            Some("machine[0].scamp.transient_tags"),
            "from 1 to 8",
        ),
        (
            w("").replace("height = 2", "height = 2\n[machine.scamp]\nenabled = \"yes\""),
            Some("enabled"),
            Some("machine[0].scamp.enabled"),
            "invalid type",
        ),
        (
            format!("{BASE}\n[workload]\nrate_per_hour = -5\n"),
            Some("rate_per_hour"),
            Some("workload.rate_per_hour"),
            "greater than zero",
        ),
        (
            format!("{BASE}\n[workload]\nrate_per_hour = 5\njobs = 3\n"),
            Some("rate_per_hour"),
            Some("workload.rate_per_hour"),
            "not both",
        ),
        (
            w("weekly = [0, 0, 0, 0, 0, 0, 0]"),
            Some("weekly"),
            Some("workload.weekly"),
            "all zero",
        ),
        (
            w("daily = [1, 2, 3]"),
            Some("daily"),
            Some("workload.daily"),
            "exactly 24 weights (got 3)",
        ),
        (
            w("weekly = [1, 1, -1, 1, 1, 1, 1]"),
            Some("weekly"),
            Some("workload.weekly[2]"),
            "non-negative",
        ),
        (
            w("keepalive = \"0s\""),
            Some("keepalive"),
            Some("workload.keepalive"),
            "longer than zero",
        ),
        (
            w("keepalive = \"soon\""),
            Some("keepalive"),
            Some("workload.keepalive"),
            "or \"none\"",
        ),
        (
            w("lapse_probability = 1.5"),
            Some("lapse_probability"),
            Some("workload.lapse_probability"),
            "probability",
        ),
        (
            w("owner = \"x\""),
            Some("owner"),
            Some("workload.owner"),
            "not used by source = \"synthetic\"",
        ),
        (
            w("source = \"csv\""),
            Some("source"),
            Some("workload.source"),
            "unknown variant `csv`",
        ),
        (
            w("daily = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]"),
            Some("daily"),
            Some("workload.daily"),
            "zero throughout the horizon",
        ),
        (
            classes3("duration = { dist = \"lognormal\", median = \"-5m\", sigma = 1 }"),
            Some("median = \"-5m\""),
            Some("workload.class[2].duration.median"),
            "must not be negative",
        ),
        (
            classes3("duration = { dist = \"uniform\",\n  min = \"2h\",\n  max = \"1h\" }"),
            Some("min = \"2h\""),
            Some("workload.class[2].duration.min"),
            "min \"2h\" is greater than max \"1h\"",
        ),
        (
            classes3("duration = { dist = \"gamma\", shape = 2 }"),
            Some("gamma"),
            Some("workload.class[2].duration"),
            "unknown key `shape`",
        ),
        (
            class("duration = { dist = \"normal\", mean = 2 }"),
            Some("normal"),
            Some("workload.class[0].duration"),
            "unknown distribution `normal`",
        ),
        (
            class("kind = \"board\""),
            Some("[[workload.class]]"),
            Some("workload.class[0].duration"),
            "missing field `duration`",
        ),
        (
            class("duration = \"1m\"\nweight = 2"),
            Some("weight = 2"),
            None,
            "duplicate key",
        ),
        (
            class("duration = \"1m\"\nkind = \"board\"\nboards = 4"),
            Some("boards = 4"),
            Some("workload.class[0].boards"),
            "not used by kind = \"board\"",
        ),
        (
            class("duration = \"1m\"\nkind = \"boards\""),
            Some("[[workload.class]]"),
            Some("workload.class[0]"),
            "needs `boards`",
        ),
        (
            class("duration = \"1m\"\nboards = 4\nwidth = 2"),
            Some("[[workload.class]]"),
            Some("workload.class[0]"),
            "cannot tell the kind",
        ),
        (
            class("duration = \"1m\"\nkind = \"hexagon\""),
            Some("hexagon"),
            Some("workload.class[0].kind"),
            "unknown variant `hexagon`",
        ),
        (
            class("duration = \"1m\"\nboards = { dist = \"uniform\", min = 9, max = 3 }"),
            Some("boards ="),
            Some("workload.class[0].boards.min"),
            "greater than max",
        ),
        (
            class("duration = \"1m\"\nspecific = [[0, 0, 0],\n [2, 0, 0]]"),
            Some("[2, 0, 0]"),
            Some("workload.class[0].specific[1]"),
            "outside every machine",
        ),
        (
            class("duration = \"1m\"\nmachine = \"other\""),
            Some("machine = \"other\""),
            Some("workload.class[0].machine"),
            "no machine named \"other\"",
        ),
        (
            class("duration = \"1m\"\ntags = [\"gpu\"]"),
            Some("tags"),
            Some("workload.class[0].tags"),
            "no machine has all the tags",
        ),
        (
            class("duration = \"1m\"\ntags = [\"default\"]\nmachine = \"m\""),
            Some("tags"),
            Some("workload.class[0].tags"),
            "not both",
        ),
        (
            class("duration = \"1m\"\nestimate_factor = -1"),
            Some("estimate_factor"),
            Some("workload.class[0].estimate_factor"),
            "greater than zero",
        ),
        (
            class("duration = \"1m\"\nweight = 0").replace("weight = 1\n", ""),
            Some("weight = 0"),
            Some("workload.class[0].weight"),
            "greater than zero",
        ),
        (
            w(
                "\n[[workload.class]]\nname = \"c\"\nweight = 1\nduration = 1\n[[workload.class]]\nname = \"c\" # dup\nweight = 1\nduration = 1\n",
            ),
            Some("# dup"),
            Some("workload.class[1].name"),
            "already used",
        ),
        (
            format!("{BASE}\n[workload]\nsource = \"trace\"\n"),
            Some("[workload]"),
            Some("workload"),
            "needs `path`",
        ),
        (
            format!("{BASE}\n[workload]\nsource = \"trace\"\npath = \"missing.csv\"\n"),
            Some("path"),
            Some("workload.path"),
            "cannot read /tmp/missing.csv",
        ),
        (
            format!("{BASE}\n[workload]\nsource = \"trace\"\njobs = 5\n"),
            Some("jobs"),
            Some("workload.jobs"),
            "not used by source = \"trace\" (only by synthetic)",
        ),
        (
            w("[policy]\npacker = \"tetris\""),
            Some("tetris"),
            Some("policy.packer"),
            "unknown variant `tetris`",
        ),
        (
            w("[policy]\nexact_boards = true"),
            Some("exact_boards"),
            Some("policy.exact_boards"),
            "anywhere",
        ),
        (
            w("[policy]\nbackfill_depth = 0"),
            Some("backfill_depth"),
            Some("policy.backfill_depth"),
            "from 1",
        ),
        (
            w("[host]\nboot_tries = 0"),
            Some("boot_tries"),
            Some("host.boot_tries"),
            "from 1",
        ),
        (
            w("[network]\nloss = 1.0"),
            Some("loss"),
            Some("network.loss"),
            "0 <= p < 1",
        ),
        (
            w("[network]\nburst = { p_enter = 2, p_leave = 0.1, loss = 1 }"),
            Some("burst"),
            Some("network.burst.p_enter"),
            "probability",
        ),
        (
            w("[network]\nbandwidth_mbps = 0"),
            Some("bandwidth_mbps"),
            Some("network.bandwidth_mbps"),
            "greater than zero",
        ),
        (
            fault("at = \"1h\"\nkind = \"board_dies\"\nmachine = \"m\"\nboard = [0, 3, 0]"),
            Some("board = [0, 3, 0]"),
            Some("faults[0].board"),
            "outside the 2 x 2 triad machine",
        ),
        (
            fault("at = \"1h\"\nkind = \"board_dies\"\nmachine = \"x\"\nboard = [0, 0, 0]"),
            Some("machine = \"x\""),
            Some("faults[0].machine"),
            "no machine named \"x\"",
        ),
        (
            fault("at = \"1h\"\nkind = \"link_fails\"\nmachine = \"m\"\nboard = [0, 0, 0]"),
            Some("[[faults]]"),
            Some("faults[0]"),
            "needs `link`",
        ),
        (
            fault("at = \"1h\"\nkind = \"link_fails\"\nmachine = \"m\"\nboard = [0, 0, 0]\nlink = \"sideways\""),
            Some("sideways"),
            Some("faults[0].link"),
            "unknown link",
        ),
        (
            fault("at = \"1h\"\nkind = \"bmp_silent\"\nmachine = \"m\"\nframe = [3, 0]"),
            Some("frame"),
            Some("faults[0].frame"),
            "no frame (cabinet 3, frame 0)",
        ),
        (
            fault("at = \"1h\"\nkind = \"loss_burst\"\nloss = 0.5\nboard = [0, 0, 0]"),
            Some("board"),
            Some("faults[0].board"),
            "not used by kind = \"loss_burst\"",
        ),
        (
            fault("at = \"1h\"\nkind = \"loss_burst\"\nloss = 0.5\nmachine = \"nope\""),
            Some("machine = \"nope\""),
            Some("faults[0].machine"),
            "no machine named \"nope\"",
        ),
        (
            fault("at = \"60d\"\nkind = \"loss_burst\"\nloss = 0.5"),
            Some("60d"),
            Some("faults[0].at"),
            "after the end of the run",
        ),
        (
            fault("at = \"1h\"\nkind = \"meteor\""),
            Some("meteor"),
            Some("faults[0].kind"),
            "unknown variant `meteor`",
        ),
        (
            fault("at = \"1h\"\nkind = \"loss_burst\"\nloss = 0.5"),
            Some("kind = \"loss_burst\""),
            Some("faults[0].kind"),
            "needs packet-level hardware",
        ),
        (
            w("[network]\n[[network.path]]\nmachine = \"m\"\n"),
            Some("[[network.path]]"),
            Some("network.path[0]"),
            "a path changes nothing",
        ),
        (
            w("[network]\n[[network.path]]\nmachine = \"n\"\nloss = 0.1\n"),
            Some("machine = \"n\""),
            Some("network.path[0].machine"),
            "no machine named \"n\"",
        ),
        (
            w("[network]\n[[network.path]]\nboards = [[0, 0, 0]]\nloss = 0.1\n"),
            Some("boards"),
            Some("network.path[0].boards"),
            "`boards` needs `machine`",
        ),
        (
            w("[network]\n[[network.path]]\nmachine = \"m\"\nboards = [[0, 0, 0],\n  [0, 5, 0]]\nloss = 0.1\n"),
            Some("[0, 5, 0]"),
            Some("network.path[0].boards[1]"),
            "outside the 2 x 2 triad machine",
        ),
        (
            w("[network]\n[[network.path]]\nmachine = \"m\"\nframes = [[0, 3]]\nloss = 0.1\n"),
            Some("frames"),
            Some("network.path[0].frames[0]"),
            "has no frame (cabinet 0, frame 3)",
        ),
        (
            w("[network]\n[[network.path]]\nmachine = \"m\"\nto = \"bmps\"\nboards = [[0, 0, 0]]\nloss = 0.1\n"),
            Some("boards"),
            Some("network.path[0].boards"),
            "cannot be used with to = \"bmps\"",
        ),
        (
            w("[network]\n[[network.path]]\nto = \"switches\"\nloss = 0.1\n"),
            Some("switches"),
            Some("network.path[0].to"),
            "unknown variant `switches`",
        ),
        (
            w("[network]\n[[network.path]]\nloss = 1.5\n"),
            Some("loss = 1.5"),
            Some("network.path[0].loss"),
            "0 <= p < 1",
        ),
        (
            w("[network]\n[[network.path]]\nlatncy = \"1ms\"\n"),
            Some("latncy"),
            Some("network.path[0].latncy"),
            "unknown field `latncy`",
        ),
        ("[run\nname = 1\n".into(), Some("[run"), None, ""),
    ]
}

/// Hostile values that were accepted (or mangled) before: overflowing quantities, tuples with
/// extra elements, sample periods the run would not honour, keys too deep for the TOML parser.
/// Each must be an error naming the line and the key.
fn hostile_cases() -> Vec<(String, Option<&'static str>, Option<&'static str>, &'static str)> {
    let w = |extra: &str| format!("{BASE}\n[workload]\njobs = 10\n{extra}");
    let machine = |extra: &str| w("").replace("height = 2", &format!("height = 2\n{extra}"));
    let class = |body: &str| {
        w(&format!(
            "\n[[workload.class]]\nname = \"c\"\nweight = 1\nduration = \"1m\"\n{body}\n"
        ))
    };
    let fault = |body: &str| {
        w(&format!(
            "[host]\nhardware = \"emulator\"\n\n[[faults]]\nat = \"1h\"\n{body}\n"
        ))
    };
    let path = |body: &str| {
        w(&format!(
            "[network]\n[[network.path]]\nmachine = \"m\"\nloss = 0.1\n{body}\n"
        ))
    };
    let run = |extra: &str| {
        format!(
            "[run]\nname = \"t\"\n{extra}\n[[machine]]\nname = \"m\"\nwidth = 1\nheight = 1\n[workload]\njobs = 1\n"
        )
    };
    let deep_key = vec!["a"; 81].join(".");
    let deep_header = vec!["b"; 90].join(".");
    vec![
        // Overflow: checked arithmetic and one cap for every way of writing a duration.
        (
            run("horizon = \"339832257969984841.181015646310w\""),
            Some("horizon"),
            Some("run.horizon"),
            "too large",
        ),
        (
            run("horizon = 20000000000000"),
            Some("horizon"),
            Some("run.horizon"),
            "too large",
        ),
        (
            run("horizon = \"1h\"\ndrain_limit = 20000000000000"),
            Some("drain_limit"),
            Some("run.drain_limit"),
            "too large",
        ),
        (
            w("data_in = \"99999999999999999999TB\""),
            Some("data_in"),
            Some("workload.data_in"),
            "too large",
        ),
        // Tuples with extra elements.
        (
            machine("dead_boards = [[1, 1, 2, 5]]"),
            Some("dead_boards"),
            Some("machine[0].dead_boards[0]"),
            "invalid length 4, expected [x, y, z] (3 elements)",
        ),
        (
            machine("dead_links = [[0, 0, 0, \"north\", \"junk\"]]"),
            Some("dead_links"),
            Some("machine[0].dead_links[0]"),
            "invalid length 5, expected [x, y, z, \"link\"] (4 elements)",
        ),
        (
            machine("layout = { boards = [[0, 0, 0, 0, 0, 0, 7]] }"),
            Some("layout"),
            Some("machine[0].layout.boards[0]"),
            "invalid length 7, expected [x, y, z, cabinet, frame, board] (6 elements)",
        ),
        (
            machine("[machine.ip]\nbmps = [[0, 0, \"172.16.0.1\", 1]]\nboards = [[0, 0, 0, \"172.16.0.2\"]]"),
            Some("bmps"),
            Some("machine[0].ip.bmps[0]"),
            "invalid length 4, expected [cabinet, frame, \"ip\"] (3 elements)",
        ),
        (
            machine("[machine.ip]\nbmps = [[0, 0, \"172.16.0.1\"]]\nboards = [[0, 0, 0, \"172.16.0.2\", \"x\"]]"),
            Some("boards = [[0, 0, 0,"),
            Some("machine[0].ip.boards[0]"),
            "invalid length 5, expected [x, y, z, \"ip\"] (4 elements)",
        ),
        (
            class("specific = [[0, 0, 0],\n  [0, 0, 0, 42]]"),
            Some("[0, 0, 0, 42]"),
            Some("workload.class[0].specific[1]"),
            "invalid length 4, expected [x, y, z] (3 elements)",
        ),
        (
            fault("kind = \"bmp_silent\"\nmachine = \"m\"\nframe = [0, 0, 9]"),
            Some("frame"),
            Some("faults[0].frame"),
            "invalid length 3, expected [cabinet, frame] (2 elements)",
        ),
        (
            fault("kind = \"board_dies\"\nmachine = \"m\"\nboard = [0, 0, 0, 0]"),
            Some("board = ["),
            Some("faults[0].board"),
            "invalid length 4, expected [x, y, z] (3 elements)",
        ),
        (
            path("frames = [[0, 0, 1]]"),
            Some("frames"),
            Some("network.path[0].frames[0]"),
            "invalid length 3, expected [cabinet, frame] (2 elements)",
        ),
        (
            path("boards = [[0, 0, 0, 0]]"),
            Some("boards"),
            Some("network.path[0].boards[0]"),
            "invalid length 4, expected [x, y, z] (3 elements)",
        ),
        (
            machine("dead_boards = [[1, 1]]"),
            Some("dead_boards"),
            Some("machine[0].dead_boards[0]"),
            "invalid length 2, expected [x, y, z] (3 elements)",
        ),
        (
            machine("dead_boards = [[1, \"a\", 1]]"),
            Some("dead_boards"),
            Some("machine[0].dead_boards[0][1]"),
            "invalid type",
        ),
        // A sample period the run would not honour.
        (
            run("horizon = \"1h\"\nsample_period = \"10ms\""),
            Some("sample_period"),
            Some("run.sample_period"),
            "must be at least 100ms (got 10ms)",
        ),
        (
            run("horizon = \"1h\"\nsample_period = 0"),
            Some("sample_period"),
            Some("run.sample_period"),
            "must be at least 100ms (got 0s)",
        ),
        // Keys too deep for the TOML parser's recursion limit.
        (
            format!("{}\n{deep_key} = 1\n", w("")),
            Some("a.a.a."),
            None,
            "nested too deeply",
        ),
        (
            format!("{}\n[{deep_header}]\nx = 1\n", w("")),
            Some("b.b.b."),
            None,
            "nested too deeply",
        ),
    ]
}

#[test]
fn hostile_values_name_file_line_and_key() {
    for (text, at, field, msg) in hostile_cases() {
        let e = parse_err(&text);
        assert_eq!(e.file, "s.toml");
        let want_line = at.map(|needle| {
            text.lines()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("needle {needle:?} not in\n{text}"))
                + 1
        });
        assert_eq!(e.line, want_line, "wrong line for {e}\n--- text ---\n{text}");
        assert_eq!(e.field.as_deref(), field, "wrong field for {e}\n--- text ---\n{text}");
        assert!(e.message.contains(msg), "message {:?} lacks {msg:?}\n{text}", e.message);
    }
}

/// Before: a tuple's extra elements were dropped silently.
#[test]
fn a_tuple_with_extra_elements_is_an_error_with_its_line() {
    let text = format!("{BASE}dead_boards = [\n  [0, 0, 0],\n  [1, 1, 2, 5],\n]\n\n[workload]\njobs = 1\n");
    let e = parse_err(&text);
    assert_eq!(
        e.to_string(),
        "s.toml: line 11: machine[0].dead_boards[1]: invalid length 4, expected [x, y, z] (3 elements)"
    );
}

/// Before: `load` read with `read_to_string`, whose error names neither line nor column.
#[test]
fn a_scenario_that_is_not_utf8_names_line_and_column() {
    let dir = temp_dir("utf8");
    let path = dir.join("bad.toml");
    std::fs::write(&path, b"[run]\nname = \"t\"\nhorizon = \"1\xffh\"\n").unwrap();
    let e = load(&path).unwrap_err();
    assert_eq!(e.line, Some(3));
    assert!(e.message.contains("bad byte 0xff at column 13"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn network_paths_select_endpoints_and_layer_in_order() {
    let text = format!(
        "{}\n[[machine]]\nname = \"far\"\nwidth = 1\nheight = 1\n[machine.ip]\nbase = \"10.2.0.0\"\n\
         \n[workload]\njobs = 1\n\
         \n[network]\nlatency = \"100us\"\nloss = 0.01\n\
         \n[[network.path]]\nmachine = \"far\"\nlatency = \"20ms\"\n\
         \n[[network.path]]\nmachine = \"far\"\nto = \"bmps\"\nloss = 0.2\n\
         \n[[network.path]]\nmachine = \"m\"\nboards = [[1, 1, 2]]\nbandwidth_mbps = 10\nburst = {{ p_enter = 0.01, p_leave = 0.5, loss = 1 }}\n\
         \n[[network.path]]\nmachine = \"m\"\nframes = [[0, 0]]\nto = \"boards\"\nduplicate = 0.05\n",
        BASE
    );
    let sc = parse_ok(&text);
    round_trip(&sc);
    let n = &sc.network;
    assert_eq!(n.paths.len(), 4);
    let (m, far) = (&sc.machines[0].machine, &sc.machines[1].machine);
    let far_bmp = far.bmps().next().unwrap().1;
    let far_board = far.board_ips().next().unwrap().1;
    // The far machine: every endpoint by path 0, its BMP also by path 1.
    assert_eq!(n.paths[0].endpoints.len(), far.bmps().count() + far.board_ips().count());
    assert_eq!(n.paths[1].endpoints.iter().copied().collect::<Vec<_>>(), vec![far_bmp]);
    let bmp = n.for_endpoint(far_bmp);
    assert_eq!(
        (bmp.latency.clone(), bmp.loss),
        (Dist::fixed(Duration::from_millis(20)), 0.2)
    );
    let board = n.for_endpoint(far_board);
    assert_eq!(
        (board.latency.clone(), board.loss),
        (Dist::fixed(Duration::from_millis(20)), 0.01)
    );
    assert!(board.paths.is_empty());
    // One board of m: bandwidth and bursts; frame (0, 0)'s boards (all of m's 12): duplication.
    let one = m.board_ip(Board::new(1, 1, 2)).unwrap();
    let c = n.for_endpoint(one);
    assert_eq!((c.bandwidth_mbps, c.duplicate), (10.0, 0.05));
    assert!(c.burst.is_some());
    assert_eq!(n.paths[3].endpoints.len(), 12);
    let other = m.board_ip(Board::new(0, 0, 0)).unwrap();
    let c = n.for_endpoint(other);
    assert_eq!((c.bandwidth_mbps, c.duplicate, c.burst.is_none()), (100.0, 0.05, true));
    // m's BMP keeps [network] exactly.
    let base = n.for_endpoint(m.bmps().next().unwrap().1);
    assert_eq!(
        base,
        NetworkConfig {
            paths: Vec::new(),
            ..n.clone()
        }
    );
}

#[test]
fn malformed_scenarios_name_file_line_and_key() {
    for (text, at, field, msg) in malformed_cases() {
        let e = parse_err(&text);
        assert_eq!(e.file, "s.toml");
        let want_line = at.map(|needle| {
            text.lines()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("needle {needle:?} not in\n{text}"))
                + 1
        });
        assert_eq!(e.line, want_line, "wrong line for {e}\n--- text ---\n{text}");
        assert_eq!(e.field.as_deref(), field, "wrong field for {e}\n--- text ---\n{text}");
        assert!(e.message.contains(msg), "message {:?} lacks {msg:?}\n{text}", e.message);
    }
}

#[test]
fn errors_display_as_file_line_key_message() {
    let text = BASE.replace("height = 2", "height = 2\ndead_boards = [[0, 0, 0],\n  [2, 0, 0]]");
    let e = parse_err(&format!("{text}\n[workload]\njobs = 1\n"));
    assert_eq!(
        e.to_string(),
        "s.toml: line 10: machine[0].dead_boards[1]: board (2, 0, 0) is outside the 2 x 2 triad machine (0 <= x < 2, 0 <= y < 2, 0 <= z <= 2)"
    );
}

#[test]
fn same_seed_same_jobs_other_seed_other_jobs() {
    let sc = parse_ok(&format!("{BASE}\n[workload]\nrate_per_hour = 100\n"));
    let a = sc.jobs().unwrap();
    assert_eq!(a, sc.jobs().unwrap());
    let b = sc.clone().with_seed(2).jobs().unwrap();
    assert_eq!(sc.clone().with_seed(2).run.seed, 2);
    assert_ne!(a, b);
    assert!(!a.is_empty() && !b.is_empty());
}

#[test]
fn streams_keep_purposes_apart() {
    let mix = |weights: [u32; 2], median: &str, data: &str| {
        parse_ok(&format!(
            "{BASE}\n[workload]\njobs = 300\ndata_in = {data}\n\
             [[workload.class]]\nname = \"one\"\nweight = {}\nduration = {{ dist = \"lognormal\", median = \"{median}\", sigma = 1 }}\n\
             [[workload.class]]\nname = \"many\"\nweight = {}\nboards = {{ dist = \"uniform\", min = 2, max = 12 }}\nduration = {{ dist = \"lognormal\", median = \"{median}\", sigma = 1 }}\n",
            weights[0], weights[1]
        ))
        .jobs()
        .unwrap()
    };
    let base = mix([1, 1], "10m", "\"1MiB\"");
    // Another class mix: same arrivals and owners.
    let other_mix = mix([1, 5], "10m", "\"1MiB\"");
    let submits = |j: &[WorkloadJob]| j.iter().map(|j| j.submit).collect::<Vec<_>>();
    let owners = |j: &[WorkloadJob]| j.iter().map(|j| j.owner.clone()).collect::<Vec<_>>();
    assert_eq!(submits(&base), submits(&other_mix));
    assert_eq!(owners(&base), owners(&other_mix));
    assert_ne!(
        base.iter().map(|j| j.class.clone()).collect::<Vec<_>>(),
        other_mix.iter().map(|j| j.class.clone()).collect::<Vec<_>>()
    );
    // Other durations: same sizes, classes and arrivals; different runtimes.
    let longer = mix([1, 1], "1h", "\"1MiB\"");
    let requests = |j: &[WorkloadJob]| j.iter().map(|j| (j.class.clone(), j.request)).collect::<Vec<_>>();
    assert_eq!(requests(&base), requests(&longer));
    assert_eq!(submits(&base), submits(&longer));
    assert_ne!(
        base.iter().map(|j| j.runtime).collect::<Vec<_>>(),
        longer.iter().map(|j| j.runtime).collect::<Vec<_>>()
    );
    // Other data volumes: nothing else moves.
    let data = mix([1, 1], "10m", "{ dist = \"uniform\", min = \"1KiB\", max = \"1GiB\" }");
    let strip = |j: &[WorkloadJob]| {
        j.iter()
            .map(|j| WorkloadJob {
                data_in: 0,
                ..j.clone()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&base), strip(&data));
}

#[test]
fn relative_paths_follow_the_scenario_file() {
    let dir = temp_dir("relative");
    std::fs::create_dir_all(dir.join("traces")).unwrap();
    std::fs::write(
        dir.join("traces/t.csv"),
        "id,submit_s,kind,a,b,c,min_ratio,max_dead_boards,duration_s\n1,0,board,,,,,,10\n2,5,boards,4,,,,,20\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("layout.csv"),
        "cabinet,frame,board,x,y\n0,0,0,0,0\n0,0,1,8,4\n0,0,2,4,8\n",
    )
    .unwrap();
    let text = "[run]\nname = \"rel\"\nhorizon = \"1h\"\n\n[[machine]]\nname = \"m\"\nwidth = 1\nheight = 1\n\
                layout = { spinner_csv = \"layout.csv\" }\n\n[workload]\nsource = \"trace\"\npath = \"traces/t.csv\"\n\
                time_scale = 2\nestimate = \"actual\"\n";
    std::fs::write(dir.join("s.toml"), text).unwrap();
    let sc = load(&dir.join("s.toml")).unwrap();
    let Some(WorkloadConfig::Trace(t)) = sc.workload_config() else {
        panic!()
    };
    assert_eq!(t.path, normalize_for_test(&dir.join("traces/t.csv")));
    assert!(t.path.is_absolute());
    assert_eq!(
        (t.owner.as_str(), t.keepalive, t.estimate),
        ("trace", None, TraceEstimate::Actual)
    );
    assert_eq!(
        sc.machines[0].machine.location(Board::new(0, 0, 1)),
        Some(Physical::new(0, 0, 1))
    );
    assert!(matches!(sc.machines[0].spec.layout, Layout::Explicit(_)));
    let (jobs, report) = sc.workload().unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[1].submit, spinnbed_core::time::Instant::from_secs(10));
    assert_eq!(jobs[1].class, "2-24 boards");
    assert_eq!(report.to_string(), "2 jobs from the trace workload");
    assert!(
        jobs.iter().all(|j| (j.data_in, j.data_out) == (0, 0)),
        "no data by default"
    );
    round_trip(&sc);
    // Trace jobs can move data too: sizes drawn per job from the "data" stream.
    std::fs::write(
        dir.join("s2.toml"),
        format!("{text}data_in = \"64KiB\"\ndata_out = {{ dist = \"uniform\", min = \"1KiB\", max = \"2KiB\" }}\n"),
    )
    .unwrap();
    let sc2 = load(&dir.join("s2.toml")).unwrap();
    round_trip(&sc2);
    let (jobs2, _) = sc2.workload().unwrap();
    assert!(
        jobs2
            .iter()
            .all(|j| j.data_in == 64 << 10 && (1024..=2048).contains(&j.data_out))
    );
    assert_eq!(
        jobs2.iter().map(|j| j.submit).collect::<Vec<_>>(),
        jobs.iter().map(|j| j.submit).collect::<Vec<_>>()
    );
    // The resolved copy works from anywhere.
    let copy = temp_dir("relative-copy").join("resolved.toml");
    std::fs::write(&copy, sc.to_resolved_toml()).unwrap();
    let again = load(&copy).unwrap();
    assert_eq!(again.jobs().unwrap(), jobs);
    assert!(
        load(&dir.join("absent.toml"))
            .unwrap_err()
            .message
            .contains("cannot read")
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(copy.parent().unwrap()).unwrap();
}

fn normalize_for_test(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[test]
fn swf_source_reads_a_small_log() {
    let dir = temp_dir("swf");
    std::fs::write(
        dir.join("log.swf"),
        "; MaxProcs: 24\n\
         1 0 0 100 12 -1 -1 12 200 -1 1 4 1 -1 0 -1 -1 -1\n\
         2 60 0 -1 12 -1 -1 12 200 -1 1 4 1 -1 0 -1 -1 -1\n\
         3 120 0 50 2 -1 -1 2 -1 -1 1 5 1 -1 0 -1 -1 -1\n",
    )
    .unwrap();
    let text = format!(
        "{BASE}\n[workload]\nsource = \"swf\"\npath = \"{}\"\nmax_dead_boards = \"none\"\nkeepalive = \"1m\"\n",
        dir.join("log.swf").display()
    );
    let sc = parse_ok(&text);
    let Some(WorkloadConfig::Swf(s)) = sc.workload_config() else {
        panic!()
    };
    assert_eq!(s.procs_per_board, None);
    assert_eq!((s.time_scale, s.skip, s.limit), (1.0, Duration::ZERO, None));
    assert_eq!(
        (s.min_ratio, s.max_dead_boards, s.estimate),
        (0.333, None, SwfEstimate::Requested)
    );
    round_trip(&sc);
    let (jobs, report) = sc.workload().unwrap();
    // 12 live boards, MaxProcs 24 → 2 procs per board: 12 procs → 6 boards, 2 procs → 1 board.
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].request.shape, Shape::Boards { n: 6, min_ratio: 0.333 });
    assert_eq!(jobs[0].request.max_dead_boards, None);
    assert_eq!(jobs[1].request.shape, Shape::AnyBoard);
    assert_eq!(jobs[1].owner, "u5");
    assert_eq!(jobs[1].keepalive, Some(Duration::from_secs(60)));
    assert_eq!(report.skipped_total(), 1);
    assert!(report.notes[0].contains("auto: MaxProcs 24 / 12 live boards"));
    let fixed = parse_ok(&format!("{text}procs_per_board = 12\nlimit = 1\nskip = 30\n"));
    let Some(WorkloadConfig::Swf(s)) = fixed.workload_config() else {
        panic!()
    };
    assert_eq!(
        (s.procs_per_board, s.limit, s.skip),
        (Some(12.0), Some(1), Duration::from_secs(30))
    );
    round_trip(&fixed);
    let e = parse_err(&format!("{text}procs_per_board = -2\n"));
    assert_eq!(e.field.as_deref(), Some("workload.procs_per_board"));
    let e = parse_err(&format!("{text}estimate = \"guess\"\n"));
    assert_eq!(e.field.as_deref(), Some("workload.estimate"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every shipped scenario loads, prints back and builds its workload.
#[test]
fn shipped_scenarios_load_and_build_their_jobs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 3, "{names:?}");
    for path in names {
        let sc = load(&path).unwrap_or_else(|e| panic!("{e}"));
        round_trip(&sc);
        if sc.study().is_some() {
            assert!(sc.workload().is_err());
            continue;
        }
        let (jobs, report) = sc.workload().unwrap_or_else(|e| panic!("{e}"));
        eprintln!("{}: {report}", path.display());
        assert!(!jobs.is_empty());
        assert!(jobs.windows(2).all(|w| w[0].submit <= w[1].submit));
        assert!(jobs.iter().all(|j| j.submit.0 < sc.run.horizon.0));
        match sc.run.name.as_str() {
            "quick" => {
                assert!((150..=300).contains(&jobs.len()), "{}", jobs.len());
                assert!(sc.machines[0].machine.board_positions() <= 12);
            }
            "busy-week" => {
                assert!(jobs.len() >= 20_000, "{}", jobs.len());
                let m = &sc.machines[0].machine;
                assert_eq!((m.name(), m.width(), m.height()), ("SpiNNaker1M", 20, 20));
                assert_eq!(m.dead_boards().len(), 6);
                assert_eq!(m.dead_links().len(), 4);
                assert_eq!(m.tags(), ["default".to_string(), "machine-room".to_string()]);
                assert_eq!(
                    m.bmp_ip(FrameId { cabinet: 0, frame: 0 }),
                    Some(Ipv4Addr::new(10, 11, 193, 0))
                );
                assert_eq!(sc.run.horizon, Duration::from_secs(7 * 86_400));
            }
            "swf-kth" => assert!(jobs.len() > 1000, "{}", jobs.len()),
            _ => {}
        }
    }
}

/// The SpiNNaker1M machine of `busy-week.toml` is the one of `machines/spinnaker1m.json`.
#[test]
fn busy_week_matches_the_machine_json() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let sc = load(&root.join("busy-week.toml")).unwrap();
    let json = std::fs::read_to_string(root.join("machines/spinnaker1m.json")).unwrap();
    let m = crate::input::machine_json::parse("spinnaker1m.json", &json).unwrap();
    assert_eq!(sc.machines[0].machine.dead_boards(), m.dead_boards());
    assert_eq!(sc.machines[0].machine.dead_links(), m.dead_links());
}

/// The complete example of `scenarios/README.md` is a valid scenario.
#[test]
fn the_readme_example_parses() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/README.md")).unwrap();
    let example = readme
        .split("## A complete example")
        .nth(1)
        .expect("the section exists");
    let toml = example
        .split("```toml\n")
        .nth(1)
        .and_then(|t| t.split("```").next())
        .expect("a toml block");
    let sc = parse_ok(toml);
    assert_eq!(sc.machines.len(), 2);
    assert_eq!(sc.faults.len(), 3);
    assert_eq!(sc.policy.queue, QueueKind::Easy);
    round_trip(&sc);
    let jobs = sc.jobs().unwrap();
    assert!(jobs.iter().any(|j| j.machine.as_deref() == Some("bench")));
}

const STUDY: &str =
    "[study]\nkind = \"scp-windowing\"\nlosses = [0, 0.05]\nrtts = [\"1ms\"]\nseeds = 2\nbytes = \"64KiB\"\n";

/// Before: a study without a [workload] was given a placeholder one-job workload (reported by
/// `sim check` and written into the resolved copy), and one with a [workload] kept both.
#[test]
fn a_study_is_an_experiment_without_a_workload() {
    let sc = parse_ok(&format!("{BASE}\n{STUDY}"));
    let Experiment::Study(st) = &sc.experiment else {
        panic!("{:?}", sc.experiment)
    };
    assert_eq!(
        (st.losses.len(), st.rtts.len(), st.seeds, st.bytes),
        (2, 1, 2, 64 << 10)
    );
    assert_eq!(sc.study(), Some(st));
    assert!(sc.workload_config().is_none());
    let text = sc.to_resolved_toml();
    assert!(!text.contains("workload"), "{text}");
    round_trip(&sc);
    // Asking a study for its jobs is a clear error, located at the [study] table.
    let e = sc.workload().unwrap_err();
    assert_eq!((e.line, e.field.as_deref()), (Some(10), Some("study")));
    assert!(e.message.contains("measures instead of running jobs"), "{e}");
    assert!(sc.jobs().is_err());
    // A workload and a study: an error naming the study.
    let both = format!("{BASE}\n[workload]\njobs = 3\n\n{STUDY}");
    let e = parse_err(&both);
    assert_eq!(e.field.as_deref(), Some("study"));
    assert_eq!(e.line, Some(13));
    assert!(e.message.contains("not both"), "{e}");
}

/// The resolved copy is serialised by `toml` (no hand-written escaping): names with quotes,
/// backslashes, control characters and non-ASCII text read back unchanged.
#[test]
fn names_with_any_characters_round_trip() {
    let text = format!(
        "{}\n[workload]\njobs = 3\n\n[[workload.class]]\nname = \"c \\\"1\\\" \\\\ \\u0001\\u007f\"\nweight = 1\nduration = \"1m\"\ntags = [\"x\\ty\"]\n",
        BASE.replace(
            "name = \"m\"",
            "name = \"m \\\"q\\\" \\\\ \\n\\r\\t\\u0000 é ☃ '''\"\ntags = [\"default\", \"x\\ty\"]"
        )
    );
    let sc = parse_ok(&text);
    assert_eq!(sc.machines[0].machine.name(), "m \"q\" \\ \n\r\t\u{0} é ☃ '''");
    round_trip(&sc);
    let again = parse_ok(&sc.to_resolved_toml());
    assert_eq!(again.machines[0].machine.name(), sc.machines[0].machine.name());
    let Some(WorkloadConfig::Synthetic(w)) = again.workload_config() else {
        panic!()
    };
    assert_eq!(w.classes[0].name, "c \"1\" \\ \u{1}\u{7f}");
}

fn run_with(run: &str, workload: &str) -> Scenario {
    parse_ok(&format!(
        "[run]\nname = \"m\"\n{run}\n\n[[machine]]\nname = \"m\"\nwidth = 2\nheight = 2\n\n[workload]\n{workload}\n"
    ))
}

/// Before: nothing estimated a run's memory, so `horizon = "100000w"` passed `check` and
/// aborted in `run`, and `jobs = 1000000000` aborted allocating arrival times.
#[test]
fn memory_estimates_name_the_key_that_needs_the_most() {
    // A sample every second for a year.
    let sc = run_with("horizon = \"52w\"\nsample_period = \"1s\"", "jobs = 200");
    let est = sc.memory_estimate().without_report();
    assert_eq!(
        (est.samples, est.samples_at_most, est.jobs),
        (31_449_602, 34_041_602, 200)
    );
    assert!(est.check(8 << 30).is_ok());
    assert_eq!(
        est.check(3_200_000_000).unwrap_err().to_string(),
        "s.toml: line 4: run.sample_period: \"1s\" over the 364d horizon is 31449602 samples, about 6.8 GB; \
         about 3.2 GB is available: use a longer sample_period or a shorter horizon (and jobs still running \
         after the horizon add samples until the 30d drain_limit: up to 34041602 in all)"
    );
    // With the report, 805 bytes a sample.
    let with_report = sc.memory_estimate();
    assert_eq!(with_report.largest().bytes, 31_449_602 * 805);
    assert!(with_report.check(8 << 30).is_err());
    // A billion jobs.
    let sc = run_with("horizon = \"1d\"", "jobs = 1000000000");
    let e = sc.memory_estimate().check(8 << 30).unwrap_err();
    assert_eq!((e.line, e.field.as_deref()), (Some(11), Some("workload.jobs")));
    assert!(
        e.message
            .starts_with("1000000000 jobs, about 1.4 TB; about 8.6 GB is available: ask for fewer jobs"),
        "{e}"
    );
    // A rate over a long horizon.
    let sc = run_with("horizon = \"10w\"", "rate_per_hour = 1e7");
    let e = sc.memory_estimate().check(8 << 30).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("workload.rate_per_hour"));
    assert!(e.message.contains("is about 16800000000 jobs, about 23.5 TB"), "{e}");
    // The longest horizon there is, as an integer: resolved at once (the profile's mean no
    // longer walks every hour), refused for its samples.
    let sc = run_with("horizon = 18000000000000", "jobs = 10");
    let est = sc.memory_estimate();
    assert_eq!(est.arrival_hours, 5_000_000_000);
    let e = est.check(1 << 40).unwrap_err();
    assert_eq!((e.line, e.field.as_deref()), (Some(3), Some("run.horizon")));
    assert!(
        e.message
            .starts_with("\"5m\" over the 5000000000h horizon is 60000000002 samples, about 48.3 TB"),
        "{e}"
    );
    // Every part: the machine's boards, the arrival table.
    let sc = run_with("horizon = \"2h\"", "jobs = 10");
    let terms = sc.memory_estimate().terms();
    let keys: Vec<_> = terms.iter().map(|t| t.key.clone().unwrap_or_default()).collect();
    assert_eq!(
        keys,
        ["", "run.horizon", "workload.jobs", "machine[0].width", "run.horizon"]
    );
    assert_eq!(terms[3].bytes, 12 * 800 + 7000);
    assert_eq!(terms[4].bytes, 2 * 8);
    assert!(sc.memory_estimate().check(17_000_000).is_ok());
    // A study: the transfer, no timeline, no jobs.
    let sc = parse_ok(&format!("{BASE}\n{STUDY}"));
    let est = sc.memory_estimate();
    assert_eq!((est.samples, est.jobs), (0, 0));
    assert_eq!(est.bytes(), 16_000_000 + 2 * (64 << 10));
    let e = est.check(1_000_000).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("study.bytes"));
    // A file-based workload is counted once read.
    assert_eq!(
        run_with("horizon = \"1h\"", "jobs = 1")
            .memory_estimate()
            .with_jobs(7)
            .jobs,
        7
    );
}

/// Every shipped scenario fits comfortably in a gigabyte.
#[test]
fn shipped_scenarios_need_little_memory() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            let sc = load(&path).unwrap_or_else(|e| panic!("{e}"));
            let mut est = sc.memory_estimate();
            if sc.study().is_none() {
                est = est.with_jobs(sc.jobs().unwrap().len());
            }
            est.check(1 << 30).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// `load_scale` and `random_dead_boards` out of range: (text, a substring of the line the error
/// must point at, key path, message).
fn load_scale_and_random_dead_cases() -> Vec<(String, Option<&'static str>, Option<&'static str>, &'static str)> {
    let w = |workload: &str| format!("{BASE}\n[workload]\n{workload}\n");
    let machine = |extra: &str| w("jobs = 10").replace("height = 2", &format!("height = 2\n{extra}"));
    let scale = |v: &str| w(&format!("jobs = 10\nload_scale = {v}"));
    vec![
        (
            scale("0"),
            Some("load_scale"),
            Some("workload.load_scale"),
            "must be a number greater than zero (got 0)",
        ),
        (
            scale("-0.5"),
            Some("load_scale"),
            Some("workload.load_scale"),
            "greater than zero (got -0.5)",
        ),
        (
            scale("nan"),
            Some("load_scale"),
            Some("workload.load_scale"),
            "greater than zero",
        ),
        (
            scale("inf"),
            Some("load_scale"),
            Some("workload.load_scale"),
            "greater than zero",
        ),
        (
            scale("\"double\""),
            Some("load_scale"),
            Some("workload.load_scale"),
            "invalid type",
        ),
        (
            w("rate_per_hour = 1e300\nload_scale = 1e10"),
            Some("load_scale"),
            Some("workload.load_scale"),
            "rate_per_hour 1e300 x load_scale 10000000000.0 is too large",
        ),
        // A key of every source: a trace is told about the scale, not that the key is not its.
        (
            w("source = \"trace\"\npath = \"t.csv\"\nload_scale = 0"),
            Some("load_scale"),
            Some("workload.load_scale"),
            "greater than zero",
        ),
        (
            machine("random_dead_boards = -1"),
            Some("random_dead_boards"),
            Some("machine[0].random_dead_boards"),
            "must be an integer from 0 to 4294967295 (got -1)",
        ),
        (
            machine("random_dead_boards = 1.5"),
            Some("random_dead_boards"),
            Some("machine[0].random_dead_boards"),
            "invalid type",
        ),
        (
            machine("random_dead_boards = 13"),
            Some("random_dead_boards"),
            Some("machine[0].random_dead_boards"),
            "asks for 13 random dead boards, but machine \"m\" has only 12 live boards",
        ),
        (
            machine("dead_boards = [[0, 0, 0]]\nrandom_dead_boards = 12"),
            Some("random_dead_boards"),
            Some("machine[0].random_dead_boards"),
            "asks for 12 random dead boards, but machine \"m\" has only 11 live boards",
        ),
        (
            format!(
                "{}[network]\n[[network.path]]\nmachine = \"m\"\nboards = [[0, 0, 0], [1, 1, 2]]\nloss = 0.1\n",
                machine("random_dead_boards = 11")
            ),
            Some("random_dead_boards"),
            Some("machine[0].random_dead_boards"),
            "only 12 live boards, 2 of them named by [[faults]] or [[network.path]]",
        ),
        (
            format!(
                "{}\n[[machine]]\nname = \"n\"\nwidth = 1\nheight = 1\nrandom_dead_boards = 4\n[machine.ip]\nbase = \"10.0.0.0\"\n",
                machine("random_dead_boards = 12")
            ),
            Some("random_dead_boards = 4"),
            Some("machine[1].random_dead_boards"),
            "asks for 4 random dead boards, but machine \"n\" has only 3 live boards",
        ),
    ]
}

#[test]
fn load_scale_and_random_dead_boards_errors_name_line_and_key() {
    for (text, at, field, msg) in load_scale_and_random_dead_cases() {
        let e = parse_err(&text);
        assert_eq!(e.file, "s.toml");
        let want_line = at.map(|needle| {
            text.lines()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("needle {needle:?} not in\n{text}"))
                + 1
        });
        assert_eq!(e.line, want_line, "wrong line for {e}\n--- text ---\n{text}");
        assert_eq!(e.field.as_deref(), field, "wrong field for {e}\n--- text ---\n{text}");
        assert!(e.message.contains(msg), "message {:?} lacks {msg:?}\n{text}", e.message);
    }
}

/// Two 10 × 10 machines, each with 20 random dead boards, seed 5.
const RANDOM_DEAD: &str = "\
[run]
name = \"t\"
horizon = \"2h\"
seed = 5

[[machine]]
name = \"big\"
width = 10
height = 10
dead_boards = [[0, 0, 0]]
random_dead_boards = 20

[[machine]]
name = \"twin\"
width = 10
height = 10
random_dead_boards = 20
[machine.ip]
base = \"10.0.0.0\"

[workload]
jobs = 50
";

#[test]
fn random_dead_boards_are_seeded_per_machine_and_read_back() {
    let sc = parse_ok(RANDOM_DEAD);
    let big = &sc.machines[0];
    assert_eq!(big.random_dead_boards, 20);
    assert_eq!(big.spec.dead_boards, vec![Board::new(0, 0, 0)]);
    assert_eq!(big.random_dead.len(), 20);
    assert!(big.random_dead.windows(2).all(|p| p[0] < p[1]), "sorted and distinct");
    assert!(
        !big.random_dead.contains(&Board::new(0, 0, 0)),
        "chosen among live boards"
    );
    let mut all: Vec<Board> = big.random_dead.clone();
    all.push(Board::new(0, 0, 0));
    all.sort();
    assert_eq!(big.machine.dead_boards().iter().copied().collect::<Vec<_>>(), all);
    // Each machine has its own stream: same size and seed, other boards.
    let twin = &sc.machines[1];
    assert_eq!(twin.machine.dead_boards().len(), 20);
    assert_ne!(twin.random_dead, big.random_dead);

    // Same text and seed: same boards. Another seed: other boards, as many.
    assert_eq!(parse_ok(RANDOM_DEAD), sc);
    let other = sc.clone().with_seed(6);
    for (a, b) in sc.machines.iter().zip(&other.machines) {
        assert_eq!(b.random_dead.len(), 20);
        assert_ne!(a.random_dead, b.random_dead, "{}", a.spec.name);
    }
    assert_eq!(other, parse_ok(&RANDOM_DEAD.replace("seed = 5", "seed = 6")));
    assert_eq!(other.with_seed(5), sc);

    // The resolved copy keeps the key and names the boards; read back, it chooses them again.
    round_trip(&sc);
    let text = sc.to_resolved_toml();
    let listed: Vec<String> = big
        .random_dead
        .iter()
        .map(|b| format!("[{}, {}, {}]", b.x, b.y, b.z))
        .collect();
    let comment = format!(
        "# random_dead_boards under seed 5: [{}]\nrandom_dead_boards = 20\n",
        listed.join(", ")
    );
    assert!(text.contains(&comment), "missing {comment:?} in\n{text}");
    assert!(text.contains("dead_boards = [[0, 0, 0]]\n"), "{text}");
    // Without the key, nothing is written and nothing else moves: the jobs are the same.
    let plain = parse_ok(&RANDOM_DEAD.replace("random_dead_boards = 20\n", ""));
    assert!(!plain.to_resolved_toml().contains("random_dead_boards"));
    assert_eq!(plain.machines[1].machine.dead_boards().len(), 0);
    assert_eq!(plain.jobs().unwrap(), sc.jobs().unwrap());
    let zero = parse_ok(&RANDOM_DEAD.replace("random_dead_boards = 20", "random_dead_boards = 0"));
    assert_eq!(zero, plain);
}

#[test]
fn random_dead_boards_leave_boards_named_by_faults_and_paths_alone() {
    // 300 positions, 1 listed dead, 2 named: every other board dies, whatever the seed.
    let text = format!(
        "{}\n[host]\nhardware = \"emulator\"\n\n[network]\n[[network.path]]\nmachine = \"big\"\nboards = [[5, 5, 1]]\nloss = 0.01\n\n\
         [[faults]]\nat = \"1h\"\nkind = \"board_dies\"\nmachine = \"big\"\nboard = [3, 3, 2]\n",
        RANDOM_DEAD.replace(
            "random_dead_boards = 20\n\n[[machine]]",
            "random_dead_boards = 297\n\n[[machine]]"
        )
    );
    for seed in [1, 2, 3] {
        let sc = parse_ok(&text).with_seed(seed);
        let big = &sc.machines[0].machine;
        assert_eq!(big.dead_boards().len(), 298);
        assert!(big.is_live(Board::new(5, 5, 1)) && big.is_live(Board::new(3, 3, 2)));
        round_trip(&sc);
    }
    let e = parse_err(&text.replace("random_dead_boards = 297", "random_dead_boards = 298"));
    assert_eq!(e.field.as_deref(), Some("machine[0].random_dead_boards"));
    assert!(e.message.contains("299 live boards, 2 of them named"), "{e}");
}

/// A run with random dead boards is the run with those boards listed in `dead_boards`: the same
/// jobs, boards, timeline and summary (`dead_boards` included).
#[test]
fn random_dead_boards_behave_like_listed_dead_boards() {
    use crate::run::{RunSpec, outputs, simulate};
    let text = format!(
        "{BASE}dead_boards = [[1, 1, 2]]\nrandom_dead_boards = 3\n\n[workload]\njobs = 60\nkeepalive = \"none\"\n\
         [[workload.class]]\nname = \"small\"\nweight = 1\nboards = {{ dist = \"uniform\", min = 1, max = 4 }}\nduration = \"10m\"\n"
    );
    let random = parse_ok(&text);
    let chosen = random.machines[0].random_dead.clone();
    assert_eq!(chosen.len(), 3);
    let mut listed: Vec<String> = vec!["[1, 1, 2]".into()];
    listed.extend(chosen.iter().map(|b| format!("[{}, {}, {}]", b.x, b.y, b.z)));
    let explicit = parse_ok(&text.replace(
        "dead_boards = [[1, 1, 2]]\nrandom_dead_boards = 3",
        &format!("dead_boards = [{}]", listed.join(", ")),
    ));
    assert_eq!(random.machines[0].machine, explicit.machines[0].machine);
    let run = |sc: &Scenario| {
        let spec = RunSpec::from_scenario(sc, sc.jobs().unwrap());
        let (result, meta) = simulate(&spec, |_| {}).unwrap();
        let summary = outputs::summary(&result, &meta);
        let files = [
            outputs::jobs_csv(&result).unwrap(),
            outputs::boards_csv(&result).unwrap(),
            outputs::timeline_csv(&result).unwrap(),
        ];
        (result, summary, files)
    };
    let (result, summary, files) = run(&random);
    let (_, explicit_summary, explicit_files) = run(&explicit);
    assert_eq!(summary, explicit_summary);
    assert_eq!(files, explicit_files);
    assert_eq!((summary.dead_boards, summary.live_boards), (4, 8));
    assert!(summary.started > 0);
    let m = &result.machines[0];
    for b in &chosen {
        let used = &result.boards[0][m.board_index(*b)];
        assert_eq!((used.allocated, used.powered), (Duration::ZERO, Duration::ZERO), "{b}");
    }
}

/// The jobs' arrival times, and the rest of every job (which `load_scale` leaves alone).
fn split_jobs(jobs: &[WorkloadJob]) -> (Vec<Instant>, Vec<WorkloadJob>) {
    let submits = jobs.iter().map(|j| j.submit).collect();
    let rest = jobs
        .iter()
        .map(|j| WorkloadJob {
            submit: Instant::ZERO,
            ..j.clone()
        })
        .collect();
    (submits, rest)
}

#[test]
fn load_scale_multiplies_synthetic_arrivals_only() {
    // A rate: about scale times the jobs; each job asks for and does what it did (the other
    // streams draw per job, not per time).
    let rate = |scale: &str| {
        let text =
            format!("{BASE}\n[workload]\nrate_per_hour = 20\nload_scale = {scale}\n").replace("\"2h\"", "\"1w\"");
        parse_ok(&text)
    };
    let base = rate("1.0");
    let (base_jobs, report) = base.workload().unwrap();
    assert_eq!(report.load_scale, None);
    assert_eq!(
        report.to_string(),
        format!("{} jobs from the synthetic workload", base_jobs.len())
    );
    assert_eq!(
        base,
        parse_ok(&format!("{BASE}\n[workload]\nrate_per_hour = 20\n").replace("\"2h\"", "\"1w\""))
    );
    assert!(!base.to_resolved_toml().contains("load_scale"));
    for (scale, text) in [(2.0, "2"), (0.5, "0.5")] {
        let sc = rate(text);
        round_trip(&sc);
        assert!(sc.to_resolved_toml().contains(&format!("load_scale = {scale:?}\n")));
        let (jobs, report) = sc.workload().unwrap();
        assert_eq!(report.load_scale, Some(scale));
        assert!(
            report
                .to_string()
                .ends_with(&format!("at {scale}x the offered load (load_scale)")),
            "{report}"
        );
        let ratio = jobs.len() as f64 / base_jobs.len() as f64;
        assert!(
            (ratio / scale - 1.0).abs() < 0.1,
            "{} vs {}",
            jobs.len(),
            base_jobs.len()
        );
        let n = jobs.len().min(base_jobs.len());
        assert_eq!(split_jobs(&jobs[..n]).1, split_jobs(&base_jobs[..n]).1);
        assert_ne!(split_jobs(&jobs[..n]).0, split_jobs(&base_jobs[..n]).0);
        // Still within the horizon, ids 1, 2, …
        assert!(jobs.iter().all(|j| j.submit < Instant(sc.run.horizon.0)));
        assert!(jobs.iter().enumerate().all(|(i, j)| j.id == i as u64 + 1));
    }
    // A count: round(n × scale) jobs (at least one) over the same horizon; the smaller
    // workload's arrival times are among the larger's.
    let count = |scale: &str| parse_ok(&format!("{BASE}\n[workload]\njobs = 200\nload_scale = {scale}\n"));
    let two_hundred = count("1").jobs().unwrap();
    assert_eq!(
        two_hundred,
        parse_ok(&format!("{BASE}\n[workload]\njobs = 200\n")).jobs().unwrap()
    );
    for (scale, want) in [("1.5", 300), ("0.5", 100), ("0.2525", 51), ("0.0001", 1)] {
        let sc = count(scale);
        let jobs = sc.jobs().unwrap();
        assert_eq!(jobs.len(), want, "load_scale {scale}");
        assert_eq!(sc.memory_estimate().jobs, want as u64);
        let (small, large) = if want < 200 {
            (&jobs, &two_hundred)
        } else {
            (&two_hundred, &jobs)
        };
        let mut pool: Vec<Instant> = large.iter().map(|j| j.submit).collect();
        for j in small.iter() {
            let k = pool
                .iter()
                .position(|t| *t == j.submit)
                .expect("an arrival of the larger workload");
            pool.remove(k);
        }
        let n = want.min(200);
        assert_eq!(split_jobs(&jobs[..n]).1, split_jobs(&two_hundred[..n]).1);
    }
}

#[test]
fn load_scale_compresses_trace_and_swf_submissions_not_durations() {
    let dir = temp_dir("load-scale");
    std::fs::write(
        dir.join("t.csv"),
        "id,submit_s,kind,a,b,c,min_ratio,max_dead_boards,duration_s\n\
         1,0,board,,,,,,60\n2,10,boards,4,,,,,120\n3,100,board,,,,,,5\n4,10000,board,,,,,,30\n",
    )
    .unwrap();
    // Horizon 2h = 7200 s: job 4 (10000 s) arrives in time only when the load is doubled.
    let trace = |extra: &str| {
        parse_ok(&format!(
            "{BASE}\n[workload]\nsource = \"trace\"\npath = \"{}\"\n{extra}\n",
            dir.join("t.csv").display()
        ))
    };
    let secs = |jobs: &[WorkloadJob]| {
        jobs.iter()
            .map(|j| (j.id, j.submit.0 as f64 / 1e6, j.runtime.as_secs_f64()))
            .collect::<Vec<_>>()
    };
    let (plain, report) = trace("").workload().unwrap();
    assert_eq!(secs(&plain), vec![(1, 0.0, 60.0), (2, 10.0, 120.0), (3, 100.0, 5.0)]);
    assert_eq!(report.skipped, vec![("submitted after the horizon".to_string(), 1)]);
    assert_eq!(trace("load_scale = 1").workload().unwrap().0, plain);
    let doubled = trace("load_scale = 2");
    round_trip(&doubled);
    let (jobs, report) = doubled.workload().unwrap();
    assert_eq!(
        secs(&jobs),
        vec![(1, 0.0, 60.0), (2, 5.0, 120.0), (3, 50.0, 5.0), (4, 5000.0, 30.0)]
    );
    assert_eq!(
        report.to_string(),
        "4 jobs from the trace workload at 2x the offered load (load_scale)"
    );
    // With time_scale: submit × time_scale / load_scale, runtime × time_scale.
    let both = trace("time_scale = 2\nload_scale = 4").jobs().unwrap();
    assert_eq!(
        secs(&both),
        vec![(1, 0.0, 120.0), (2, 5.0, 240.0), (3, 50.0, 10.0), (4, 5000.0, 60.0)]
    );
    // A quarter of the load: later arrivals fall past the horizon (100 s × 4 stays within it).
    let (quarter, report) = trace("load_scale = 0.25").workload().unwrap();
    assert_eq!(secs(&quarter), vec![(1, 0.0, 60.0), (2, 40.0, 120.0), (3, 400.0, 5.0)]);
    assert_eq!(report.skipped_total(), 1);

    // SWF: from the first kept job's submission, as time_scale.
    std::fs::write(
        dir.join("log.swf"),
        "; MaxProcs: 12\n\
         1 100 0 100 1 -1 -1 1 200 -1 1 4 1 -1 0 -1 -1 -1\n\
         2 160 0 50 1 -1 -1 1 200 -1 1 4 1 -1 0 -1 -1 -1\n\
         3 400 0 30 1 -1 -1 1 -1 -1 1 5 1 -1 0 -1 -1 -1\n",
    )
    .unwrap();
    let swf = |extra: &str| {
        parse_ok(&format!(
            "{BASE}\n[workload]\nsource = \"swf\"\npath = \"{}\"\n{extra}\n",
            dir.join("log.swf").display()
        ))
    };
    assert_eq!(
        secs(&swf("").jobs().unwrap()),
        vec![(1, 0.0, 100.0), (2, 60.0, 50.0), (3, 300.0, 30.0)]
    );
    let sc = swf("load_scale = 3");
    round_trip(&sc);
    let jobs = sc.jobs().unwrap();
    assert_eq!(secs(&jobs), vec![(1, 0.0, 100.0), (2, 20.0, 50.0), (3, 100.0, 30.0)]);
    assert_eq!(
        jobs[0].estimate,
        Some(Duration::from_secs(200)),
        "requested times are not scaled"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn load_scale_compresses_a_job_log_from_its_first_create() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let text = std::fs::read_to_string(dir.join("spalloc-log.toml")).unwrap();
    let plain = parse("spalloc-log.toml", &text, &dir).unwrap();
    let doubled = parse(
        "spalloc-log.toml",
        &text.replace("source = \"spalloc-log\"", "source = \"spalloc-log\"\nload_scale = 2"),
        &dir,
    )
    .unwrap();
    round_trip(&doubled);
    let (a, _) = plain.workload().unwrap();
    let (b, report) = doubled.workload().unwrap();
    assert_eq!(report.load_scale, Some(2.0));
    assert_eq!(a.len(), b.len());
    assert!(a.iter().any(|j| j.submit.0 > 0));
    for (a, b) in a.iter().zip(&b) {
        // Submitted at half the time since the first create; everything else as recorded.
        assert!(
            b.submit.0.abs_diff(a.submit.0 / 2) <= 1,
            "{} vs {}",
            a.submit.0,
            b.submit.0
        );
        assert_eq!(
            WorkloadJob {
                submit: Instant::ZERO,
                ..a.clone()
            },
            WorkloadJob {
                submit: Instant::ZERO,
                ..b.clone()
            }
        );
    }
}

/// `[host.live_output]`: defaults, the resolved round trip, and mistakes named by key and line.
#[test]
fn live_output_keys() {
    let host = "[host]\nhardware = \"emulator\"\nboot_users = true\n";
    let sc = parse_ok(&format!(
        "{BASE}\n{host}\n[host.live_output]\n\n[workload]\njobs = 10\n"
    ));
    assert_eq!(sc.host.live_output, Some(LiveOutputConfig::default()));
    round_trip(&sc);
    let sc = parse_ok(&format!(
        "{BASE}\n{host}\n[host.live_output]\nfraction = 0.25\nrate = 50\nkeys_per_packet = 8\nstart = \"booted\"\ntag = 3\n\n[workload]\njobs = 10\n"
    ));
    let l = sc.host.live_output.unwrap();
    assert_eq!(
        (l.fraction, l.rate, l.keys_per_packet, l.start, l.tag),
        (0.25, 50, 8, LiveStart::Booted, 3)
    );
    round_trip(&sc);
    // Without it, the resolved copy does not mention it (older outputs stay byte-identical).
    let plain = parse_ok(&format!("{BASE}\n{host}\n[workload]\njobs = 10\n"));
    assert!(!plain.to_resolved_toml().contains("live_output"));
    for (extra, line, key, msg) in [
        ("rate = 0", "rate", "host.live_output.rate", "1"),
        (
            "keys_per_packet = 63",
            "keys_per_packet",
            "host.live_output.keys_per_packet",
            "62",
        ),
        ("tag = 8", "tag", "host.live_output.tag", "7"),
        ("fraction = 1.5", "fraction", "host.live_output.fraction", "probability"),
    ] {
        let text = format!("{BASE}\n{host}\n[host.live_output]\n{extra}\n\n[workload]\njobs = 10\n");
        let e = parse_err(&text);
        assert_eq!(e.field.as_deref(), Some(key), "{e}");
        assert_eq!(
            e.line,
            text.lines().position(|l| l.starts_with(line)).map(|i| i + 1),
            "{e}"
        );
        assert!(e.to_string().contains(msg), "{e}");
    }
    let e = parse_err(&format!(
        "{BASE}\n[host.live_output]\nrate = 10\n\n[workload]\njobs = 10\n"
    ));
    assert_eq!(e.field.as_deref(), Some("host.live_output"));
    assert!(e.to_string().contains("hardware = \"emulator\""), "{e}");
    let e = parse_err(&format!(
        "{BASE}\n[host]\nhardware = \"emulator\"\n\n[host.live_output]\n\n[workload]\njobs = 10\n"
    ));
    assert!(e.to_string().contains("boot_users = true"), "{e}");
    let e = parse_err(&format!(
        "{BASE}\n{host}\n[host.live_output]\nspeed = 3\n\n[workload]\njobs = 10\n"
    ));
    assert!(e.to_string().contains("speed"), "{e}");
}

/// `[study] policies`: presets by name, tables with a preset or spinnman's pipeline and a token
/// bucket; `[study.pipeline_grid]` crossed and named after its values; `[[study.network]]`
/// conditions; all read back from the resolved copy. `[host] scp_policy` takes the same forms.
#[test]
fn study_policies_grids_and_network_conditions() {
    use spinnbed_core::host::{Charge, PipelinePolicy, Policy, RetryCodes, TokenBucket};
    use spinnbed_core::proto::scp::ReturnCode;
    let text = format!(
        "{BASE}
[study]
kind = \"scp-windowing\"
policies = [
  \"spinnman-legacy\",
  {{ policy = \"adaptive\", pacing = {{ tokens = 1136, fill_rate = 4375000 }} }},
  {{ name = \"fast\", pipeline = {{ from = \"spinnman-legacy\", n_channels = 4, packet_timeout = \"0.1s\", retry_codes = [\"p2p_busy\", \"RC_TIMEOUT\"] }} }},
]
seeds = 1

[study.pipeline_grid]
n_channels = [1, 16]
packet_timeout = [\"0.2s\", \"1s\"]
pacing = [\"none\", {{ tokens = 600, fill_rate = 1000000, per_packet = \"bytes\" }}]

[[study.network]]
name = \"lan\"
jitter = {{ dist = \"uniform\", min = \"0ms\", max = \"0.2ms\" }}
reorder = 0.01

[[study.network]]
name = \"wan\"
burst = {{ p_enter = 0.01, p_leave = 0.5, loss = 0.3 }}
duplicate = 0.001
bandwidth_mbps = 10

[host]
scp_policy = {{ name = \"paced rig\", policy = \"rig\", pacing = {{ tokens = 284, fill_rate = 28400 }} }}
"
    );
    let sc = parse_ok(&text);
    round_trip(&sc);
    let st = sc.study().unwrap();
    assert_eq!(st.policies[0], ScpChoice::preset(ScpPolicy::SpinnmanLegacy));
    assert_eq!(st.policies[1].name, "adaptive paced");
    assert_eq!(st.policies[1].policy, Policy::adaptive());
    assert_eq!(
        st.policies[1].pacing,
        Some(TokenBucket {
            tokens: 1136,
            fill_rate: 4_375_000,
            charge: Charge::Flat(284)
        })
    );
    assert_eq!(
        st.policies[2].policy,
        Policy::Spinnman(PipelinePolicy {
            n_channels: 4,
            intermediate_channel_waits: 3,
            packet_timeout: Duration::from_millis(100),
            retry_codes: [ReturnCode::P2pBusy, ReturnCode::Timeout]
                .into_iter()
                .collect::<RetryCodes>(),
            ..PipelinePolicy::spinnman_legacy()
        })
    );
    let all = st.all_policies();
    let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "spinnman-legacy",
            "adaptive paced",
            "fast",
            "pipe c1 w0 t200ms",
            "pipe c1 w0 t200ms paced",
            "pipe c1 w0 t1s",
            "pipe c1 w0 t1s paced",
            "pipe c16 w15 t200ms",
            "pipe c16 w15 t200ms paced",
            "pipe c16 w15 t1s",
            "pipe c16 w15 t1s paced",
        ]
    );
    assert_eq!(all[4].pacing.unwrap().charge, Charge::Bytes);
    assert_eq!(st.networks.len(), 2);
    assert_eq!(st.networks[1].bandwidth_mbps, Some(10.0));
    assert_eq!(st.cells(), 11 * 2 * 5 * 3 * 2);
    assert_eq!(sc.host.scp_policy.name, "paced rig");
    assert_eq!(sc.host.scp_policy.policy, Policy::rig());
    assert!(sc.host.scp_policy.pacing.is_some());
    // Without [[study.network]]: one clean condition; a preset under its own name is a preset.
    let sc = parse_ok(&format!("{BASE}\n{STUDY}"));
    assert_eq!(sc.study().unwrap().networks, vec![StudyNetwork::clean()]);
    assert!(sc.study().unwrap().policies.iter().all(|p| p.as_preset().is_some()));
    round_trip(&sc);
}

/// Mistakes in the study's policies and conditions name their line and key.
#[test]
fn study_policy_mistakes_name_line_and_key() {
    let study = |body: &str| format!("{BASE}\n[study]\nkind = \"scp-windowing\"\n{body}\n");
    let cases: Vec<(String, &str, &str, &str)> = vec![
        (
            study("policies = [\"spinnman\", \"tcp\"]"),
            "policies",
            "study.policies[1]",
            "unknown variant `tcp`",
        ),
        (
            study("policies = [{ name = \"x\" }]"),
            "policies",
            "study.policies[0]",
            "give `policy`",
        ),
        (
            study("policies = [{ policy = \"rig\", pipeline = { n_channels = 2 } }]"),
            "policies",
            "study.policies[0].pipeline",
            "not both",
        ),
        (
            study("policies = [{ pipeline = { n_channels = 4, intermediate_channel_waits = 4 } }]"),
            "policies",
            "study.policies[0].pipeline.intermediate_channel_waits",
            "from 0 to n_channels − 1 = 3",
        ),
        (
            study("policies = [{ pipeline = { retry_codes = [\"RC_TIMEOUT\", \"RC_NOPE\"] } }]"),
            "policies",
            "study.policies[0].pipeline.retry_codes[1]",
            "unknown return code \"RC_NOPE\"",
        ),
        (
            study("policies = [{ pipeline = { from = \"rig\" } }]"),
            "policies",
            "study.policies[0].pipeline.from",
            "a pipeline starts from",
        ),
        (
            study("policies = [{ policy = \"rig\", pacing = { tokens = 100, fill_rate = 1000 } }]"),
            "policies",
            "study.policies[0].pacing.tokens",
            "at least 284 tokens",
        ),
        (
            study(
                "policies = [{ policy = \"rig\", pacing = { tokens = 1000, fill_rate = 1000, per_packet = \"some\" } }]",
            ),
            "policies",
            "study.policies[0].pacing.per_packet",
            "or \"bytes\"",
        ),
        (
            study("policies = [\"rig\", { policy = \"rig\" }]"),
            "policies",
            "study.policies[1]",
            "two policies are called \"rig\"",
        ),
        (
            study("policies = [\"rig\"]\n[study.pipeline_grid]\nn_channels = []"),
            "n_channels",
            "study.pipeline_grid.n_channels",
            "at least one value",
        ),
        (
            study("policies = [\"rig\"]\n[study.pipeline_grid]\nn_channels = [2]\nintermediate_channel_waits = [5]"),
            "intermediate_channel_waits",
            "study.pipeline_grid.intermediate_channel_waits",
            "no point of the grid",
        ),
        (
            study("[[study.network]]\nname = \"a\"\njitter = { dist = \"exponential\", mean = \"1ms\" }"),
            "jitter",
            "study.network[0].jitter",
            "fixed, uniform and choice",
        ),
        (
            study("[[study.network]]\nname = \"a\"\n[[study.network]]\nname = \"a\""),
            "name = \"a\"",
            "study.network[1].name",
            "two network conditions",
        ),
        (
            study("[[study.network]]\nname = \"a\"\nreorder = 1.5"),
            "reorder",
            "study.network[0].reorder",
            "probability",
        ),
        (
            format!("{BASE}\n[host]\nscp_policy = {{ pipeline = {{ n_channels = 0 }} }}\n\n{STUDY}"),
            "scp_policy",
            "host.scp_policy.pipeline.n_channels",
            "from 1 to 1024",
        ),
    ];
    for (text, needle, field, msg) in cases {
        let e = parse_err(&text);
        let lines: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains(needle))
            .map(|(i, _)| i + 1)
            .collect();
        assert!(
            e.line.is_some_and(|l| lines.contains(&l)),
            "{e}: line not one of {lines:?}\n{text}"
        );
        assert_eq!(e.field.as_deref(), Some(field), "{e}\n{text}");
        assert!(e.message.contains(msg), "{e}: lacks {msg:?}\n{text}");
    }
}

/// `[host] transfers`: packets by default (and then absent from the resolved copy), `flow`
/// kept through the round trip, and refused where it cannot apply, naming the key and line.
#[test]
fn transfers_key() {
    let host = "[host]\nhardware = \"emulator\"\nboot_users = true\n";
    let plain = parse_ok(&format!("{BASE}\n{host}\n[workload]\njobs = 10\n"));
    assert_eq!(plain.host.transfers, TransferModel::Packets);
    assert!(!plain.to_resolved_toml().contains("transfers"));
    let sc = parse_ok(&format!(
        "{BASE}\n{host}transfers = \"flow\"\n\n[workload]\njobs = 10\n"
    ));
    assert_eq!(sc.host.transfers, TransferModel::Flow);
    assert!(sc.to_resolved_toml().contains("transfers = \"flow\""));
    round_trip(&sc);
    for (host, msg) in [
        ("[host]\ntransfers = \"flow\"\n", "hardware = \"emulator\""),
        (
            "[host]\nhardware = \"emulator\"\ntransfers = \"flow\"\n",
            "boot_users = true",
        ),
        (
            "[host]\nhardware = \"emulator\"\nboot_users = true\ntransfers = \"fluid\"\n",
            "fluid",
        ),
    ] {
        let text = format!("{BASE}\n{host}\n[workload]\njobs = 10\n");
        let e = parse_err(&text);
        assert!(e.to_string().contains(msg), "{e}");
        assert_eq!(
            e.line,
            text.lines().position(|l| l.starts_with("transfers")).map(|i| i + 1),
            "{e}"
        );
    }
}
