//! End-to-end tests: hand-made run directories → `generate` / `compare` / `windowing_chart`,
//! then every file is checked (PNGs decode at 1200 × 800, SVGs are whole, the HTML has the
//! expected cells).
//!
//! Set `SPINNBED_REPORTS_KEEP=DIR` to write the fixtures and reports under DIR instead of a
//! temporary directory, to look at them.

mod common;

use std::fs;
use std::path::Path;

use common::*;

#[test]
fn normal_run_without_scp() {
    let s = scratch("normal");
    let run = s.root.join("run");
    normal(&run, "busy-day", false);
    let summary = spinnbed_reports::generate(&run).unwrap();
    assert_eq!(
        names(&summary.files),
        [
            "utilisation.png",
            "utilisation.svg",
            "waits.png",
            "waits.svg",
            "machine_Alpha.png",
            "machine_Alpha.svg",
            "index.html"
        ]
    );
    let report = run.join("report");
    assert!(summary.files.iter().all(|f| f.starts_with(&report) && f.is_file()));
    check_charts(&report, &["utilisation", "waits", "machine_Alpha"]);
    assert!(!report.join("scp.png").exists());

    let html = fs::read_to_string(report.join("index.html")).unwrap();
    for cell in [
        "<tr><td>scenario</td><td class=\"text\">busy-day</td></tr>",
        "<tr><td>seed</td><td class=\"text\">7</td></tr>",
        "<tr><td>policy</td><td class=\"text\">packer: spalloc, queue: fifo, seconds_before_free_s: 30.0</td></tr>",
        "<tr><td>jobs</td><td>9</td></tr>",
        "<tr><td>started</td><td>8</td></tr>",
        "<tr><td>never started</td><td>1</td></tr>",
        "<tr><td>utilisation</td><td>45.7 %</td></tr>",
        "<tr><td>wait: mean</td><td>13.5 min</td></tr>",
        "<tr><td>wait: p95</td><td>1.11 h</td></tr>",
        "<tr><td>mean bounded slowdown</td><td>3.20</td></tr>",
        "<tr><td>board-hours allocated</td><td>30.3</td></tr>",
        // Class names are escaped.
        "<tr><td>&lt;3 boards&gt;</td><td>4</td><td>3</td><td>16.7 min</td><td>10.0 min</td><td>33.3 min</td></tr>",
        "<img src=\"utilisation.png\"",
        "<a href=\"machine_Alpha.svg\">SVG</a>",
    ] {
        assert!(html.contains(cell), "missing {cell}\n{html}");
    }
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"));
    // Deterministic: a second run writes the same page.
    spinnbed_reports::generate(&run).unwrap();
    assert_eq!(html, fs::read_to_string(report.join("index.html")).unwrap());
}

#[test]
fn normal_run_with_scp() {
    let s = scratch("scp");
    let run = s.root.join("run");
    normal(&run, "packet-level", true);
    let summary = spinnbed_reports::generate(&run).unwrap();
    assert!(names(&summary.files).contains(&"scp.png".to_string()));
    check_charts(&run.join("report"), &["utilisation", "waits", "machine_Alpha", "scp"]);
    let html = fs::read_to_string(run.join("report/index.html")).unwrap();
    assert!(
        html.contains("<tr><td>SCP goodput (Mbit/s)</td><td>2.50</td></tr>"),
        "{html}"
    );
    assert!(html.contains("<img src=\"scp.png\""));
}

#[test]
fn faults_are_marked_and_tabulated() {
    let s = scratch("faults");
    let run = s.root.join("run");
    normal(&run, "packet-level", true);
    let path = run.join("summary.json");
    let text = fs::read_to_string(&path).unwrap();
    let faults = r#""faults": [
        { "at_s": 1800.0, "until_s": 2100.0, "kind": "loss_burst", "what": "the network loses 30 % of packets" },
        { "at_s": 90000.0, "until_s": null, "kind": "board_dies", "what": "board (0, 0, 0) of Alpha dies" }
      ],"#;
    let text = text.replacen("\"scp\":", &format!("{faults}\n  \"scp\":"), 1);
    assert!(text.contains("loss_burst"), "{text}");
    fs::write(&path, text).unwrap();
    spinnbed_reports::generate(&run).unwrap();
    check_charts(&run.join("report"), &["utilisation", "scp"]);
    let html = fs::read_to_string(run.join("report/index.html")).unwrap();
    assert!(html.contains("<h2>Faults</h2>"), "{html}");
    assert!(
        html.contains("<tr><td>1</td><td>0:30:00</td><td>0:35:00</td><td>the network loses 30 % of packets</td></tr>"),
        "{html}"
    );
    assert!(
        html.contains("<tr><td>2</td><td>1 d 01:00:00</td><td>the end</td><td>board (0, 0, 0) of Alpha dies</td></tr>"),
        "{html}"
    );
    for chart in ["utilisation", "scp"] {
        let svg = fs::read_to_string(run.join(format!("report/{chart}.svg"))).unwrap();
        assert!(
            svg.contains("fault: strikes at the dashed line"),
            "{chart}: no fault legend"
        );
    }
    // A run without faults has no faults table and no fault legend.
    let plain = s.root.join("plain");
    normal(&plain, "packet-level", true);
    spinnbed_reports::generate(&plain).unwrap();
    let html = fs::read_to_string(plain.join("report/index.html")).unwrap();
    assert!(!html.contains("<h2>Faults</h2>"));
    let svg = fs::read_to_string(plain.join("report/utilisation.svg")).unwrap();
    assert!(!svg.contains("fault:"));
}

#[test]
fn run_with_no_jobs() {
    let s = scratch("no-jobs");
    let run = s.root.join("run");
    no_jobs(&run);
    spinnbed_reports::generate(&run).unwrap();
    check_charts(&run.join("report"), &["utilisation", "waits", "machine_Alpha"]);
    let html = fs::read_to_string(run.join("report/index.html")).unwrap();
    assert!(html.contains("<tr><td>jobs</td><td>0</td></tr>"));
    assert!(html.contains("<tr><td>wait: mean</td><td>–</td></tr>"));
}

#[test]
fn run_with_a_single_job() {
    let s = scratch("single");
    let run = s.root.join("run");
    single_job(&run);
    spinnbed_reports::generate(&run).unwrap();
    check_charts(&run.join("report"), &["utilisation", "waits", "machine_Alpha"]);
}

#[test]
fn empty_files_still_render() {
    // Header-less empty CSVs and a bare summary: every chart says "no data" instead of failing.
    let s = scratch("empty-files");
    let run = s.root.join("run");
    write(&run, "summary.json", "{}");
    write(&run, "jobs.csv", "");
    write(&run, "timeline.csv", "");
    write(&run, "boards.csv", "");
    let summary = spinnbed_reports::generate(&run).unwrap();
    assert_eq!(
        names(&summary.files),
        [
            "utilisation.png",
            "utilisation.svg",
            "waits.png",
            "waits.svg",
            "index.html"
        ]
    );
    check_charts(&run.join("report"), &["utilisation", "waits"]);
}

#[test]
fn two_machines_get_a_map_each() {
    let s = scratch("two-machines");
    let run = s.root.join("run");
    two_machines(&run);
    let summary = spinnbed_reports::generate(&run).unwrap();
    let n = names(&summary.files);
    assert!(
        n.contains(&"machine_Alpha.png".to_string()) && n.contains(&"machine_Beta_2.svg".to_string()),
        "{n:?}"
    );
    check_charts(&run.join("report"), &["machine_Alpha", "machine_Beta_2"]);
    let html = fs::read_to_string(run.join("report/index.html")).unwrap();
    assert!(
        html.contains("<tr><td>Beta 2</td><td>11</td><td>1</td><td>50.0 %</td></tr>"),
        "{html}"
    );
}

#[test]
fn retired_boards_are_framed_and_listed() {
    let s = scratch("retired");
    let run = s.root.join("run");
    two_machines(&run);
    let path = run.join("summary.json");
    let text = fs::read_to_string(&path).unwrap().replacen(
        r#""name": "Alpha", "live_boards": 11, "dead_boards": 1, "utilisation": 0.5"#,
        r#""name": "Alpha", "live_boards": 11, "dead_boards": 1, "utilisation": 0.5, "retired_boards": [[0, 0, 1], [1, 0, 2]]"#,
        1,
    );
    assert!(text.contains("retired_boards"), "{text}");
    fs::write(&path, text).unwrap();
    spinnbed_reports::generate(&run).unwrap();
    check_charts(&run.join("report"), &["machine_Alpha", "machine_Beta_2"]);
    let html = fs::read_to_string(run.join("report/index.html")).unwrap();
    assert!(html.contains("<th>retired boards</th>"), "{html}");
    assert!(html.contains("<td>(0, 0, 1) (1, 0, 2)</td></tr>"), "{html}");
    assert!(html.contains("<td>none</td></tr>"), "{html}");
    let svg = fs::read_to_string(run.join("report/machine_Alpha.svg")).unwrap();
    assert!(svg.contains("2 boards retired by the health policy"), "legend missing");
    let other = fs::read_to_string(run.join("report/machine_Beta_2.svg")).unwrap();
    assert!(!other.contains("retired"), "Beta 2 retired nothing");
}

#[test]
fn compare_two_policies() {
    let s = scratch("compare");
    let a = s.root.join("fifo");
    let b = s.root.join("backfill");
    normal(&a, "busy-day", true);
    normal(&b, "busy-day", false);
    // The second run waited less and used more.
    let sb = fs::read_to_string(b.join("summary.json"))
        .unwrap()
        .replace(r#""mean": 812.4"#, r#""mean": 406.2"#)
        .replace(r#""utilisation": 0.4567"#, r#""utilisation": 0.5"#);
    write(&b, "summary.json", &sb);
    write(&b, "jobs.csv", &jobs().replace(",2000.000,", ",200.000,"));
    let out = s.root.join("cmp");
    spinnbed_reports::compare(&[a.clone(), b.clone()], &out).unwrap();
    check_charts(&out, &["utilisation", "waits", "boards", "scp"]);
    let html = fs::read_to_string(out.join("index.html")).unwrap();
    for cell in [
        "<th>busy-day (fifo)</th><th>busy-day (backfill)</th><th>Δ vs first</th><th>Δ %</th>",
        "<tr><td>wait: mean</td><td>13.5 min</td><td>6.77 min</td><td class=\"better\" title=\"better\">-6.77 min</td><td class=\"better\">-50.0 %</td></tr>",
        "<tr><td>utilisation</td><td>45.7 %</td><td>50.0 %</td><td class=\"better\" title=\"better\">+4.33 pp</td><td class=\"better\">+9.48 %</td></tr>",
        "<tr><td>jobs</td><td>9</td><td>9</td><td>0</td><td>0</td></tr>",
    ] {
        assert!(html.contains(cell), "missing {cell}\n{html}");
    }

    // A single run compares with itself fine; three runs too.
    let c = s.root.join("quiet");
    no_jobs(&c);
    let out3 = s.root.join("cmp3");
    spinnbed_reports::compare(&[a, b, c], &out3).unwrap();
    check_charts(&out3, &["utilisation", "waits", "boards", "scp"]);
    assert!(spinnbed_reports::compare(&[], &out3).is_err());
}

/// The vertices of the lines drawn in one colour in an SVG below its title and legend (`y` >
/// 130): filled polygons (how lines are drawn) and stroked polylines.
fn line_points(svg: &str, colour: &str) -> Vec<(f64, f64)> {
    let doc = roxmltree::Document::parse(svg).unwrap();
    doc.descendants()
        .filter(|n| {
            (n.tag_name().name() == "polygon" && n.attribute("fill") == Some(colour))
                || (n.tag_name().name() == "polyline" && n.attribute("stroke") == Some(colour))
        })
        .flat_map(|n| {
            n.attribute("points")
                .unwrap_or("")
                .split_whitespace()
                .filter_map(|p| {
                    let (x, y) = p.split_once(',')?;
                    Some((x.parse().ok()?, y.parse().ok()?))
                })
                .collect::<Vec<(f64, f64)>>()
        })
        .filter(|p| p.1 > 130.0)
        .collect()
}

/// All the text of an SVG, one string per `<text>` element.
fn svg_texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).unwrap();
    doc.descendants()
        .filter(|n| n.tag_name().name() == "text")
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect()
}

/// Series colours of the first two runs (Okabe–Ito blue and orange).
const RUN_1: &str = "#0072B2";
const RUN_2: &str = "#E69F00";

/// A run a quarter as long as `normal` (1.5 h of its 6 h), ending at `end_s` = 5400.
fn short_run(dir: &Path) {
    normal(dir, "short", true);
    let summary = fs::read_to_string(dir.join("summary.json"))
        .unwrap()
        .replace(r#""end_s": 21600.0"#, r#""end_s": 5400.0"#)
        .replace(r#""makespan_s": 20000.0"#, r#""makespan_s": 5000.0"#);
    write(dir, "summary.json", &summary);
    write(dir, "timeline.csv", &timeline(10));
    write(dir, "scp.csv", &scp(10));
}

/// A shorter run's lines stop where it ends, a quarter of the way along the longer run's axis,
/// instead of running on at zero to the longer run's end.
#[test]
fn compare_draws_each_run_to_its_own_end() {
    let s = scratch("compare-short");
    let long = s.root.join("long");
    let short = s.root.join("short");
    normal(&long, "long", true);
    short_run(&short);
    let out = s.root.join("cmp");
    spinnbed_reports::compare(&[long, short], &out).unwrap();
    check_charts(&out, &["utilisation", "waits", "boards", "scp"]);
    for chart in ["utilisation", "scp"] {
        let svg = fs::read_to_string(out.join(format!("{chart}.svg"))).unwrap();
        let xs = |fill| -> (f64, f64) {
            let pts = line_points(&svg, fill);
            assert!(!pts.is_empty(), "{chart}: no lines in {fill}");
            pts.iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)))
        };
        // The long run spans the whole axis: 0 to 6 h.
        let (left, right) = xs(RUN_1);
        let (start, end) = xs(RUN_2);
        let quarter = left + (right - left) / 4.0;
        assert!(
            (start - left).abs() <= 2.0,
            "{chart}: short run starts at {start}, axis at {left}"
        );
        assert!(
            (end - quarter).abs() <= 3.0,
            "{chart}: short run ends at x = {end}, not at its end (x = {quarter}); axis {left}..{right}"
        );
    }
}

/// With more classes than panels, the last panel pools the rest and names them: no class is
/// left out.
#[test]
fn compare_shows_every_class() {
    let s = scratch("compare-classes");
    let classes = ["1 board", "<3 boards>", "quad", "rack", "hall", "torus", "whole"];
    let mut jobs = String::from(JOBS_HEADER);
    for (i, class) in classes.iter().enumerate() {
        for k in 0..3 {
            let submit = (100 * i + 10 * k) as f64;
            let wait = 10.0 * (i + 1) as f64 * (k + 1) as f64;
            let start = submit + wait;
            jobs += &format!(
                "{i}{k},alice,{class},board,Alpha,{submit:.3},{start:.3},{:.3},{:.3},{wait:.3},1,1,completed,\n",
                start + 5.0,
                start + 600.0
            );
        }
    }
    let a = s.root.join("a");
    let b = s.root.join("b");
    normal(&a, "a", false);
    normal(&b, "b", false);
    write(&a, "jobs.csv", &jobs);
    write(&b, "jobs.csv", &jobs.replace(",alice,", ",bob,"));
    let out = s.root.join("cmp");
    spinnbed_reports::compare(&[a, b], &out).unwrap();
    check_charts(&out, &["waits"]);
    let texts = svg_texts(&fs::read_to_string(out.join("waits.svg")).unwrap());
    for class in classes {
        assert!(
            texts.iter().any(|t| t == class || t.contains(&format!(" {class}"))),
            "class {class} missing from {texts:?}"
        );
    }
    assert!(texts.iter().any(|t| t == "other (3 classes)"), "{texts:?}");
    assert!(texts.iter().any(|t| t == "other: hall · torus · whole"), "{texts:?}");
}

/// A packet-level run that moved no user data and had no retries or timeouts still shows its
/// requests, and says what it had none of.
#[test]
fn quiet_scp_chart_is_not_blank() {
    let s = scratch("scp-quiet");
    let run = s.root.join("run");
    normal(&run, "packet-quiet", true);
    let mut scp = String::from(SCP_HEADER);
    for k in 0..37 {
        scp += &format!("{},{},0,0,0,0,0.0\n", 600 * k, 500 + 37 * (k % 5));
    }
    write(&run, "scp.csv", &scp);
    spinnbed_reports::generate(&run).unwrap();
    check_charts(&run.join("report"), &["scp"]);
    let svg = fs::read_to_string(run.join("report/scp.svg")).unwrap();
    let texts = svg_texts(&svg);
    for note in [
        "no user data moved",
        "no retries, timeouts or failed requests",
        "requests sent",
    ] {
        assert!(texts.iter().any(|t| t == note), "missing {note:?} in {texts:?}");
    }
    // The requests line (Okabe–Ito green) is drawn and rises well above the bottom of its panel.
    let ys: Vec<f64> = line_points(&svg, "#009E73").iter().map(|p| p.1).collect();
    assert!(!ys.is_empty(), "no requests line");
    let (lo, hi) = ys
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), y| (lo.min(*y), hi.max(*y)));
    assert!(hi - lo > 20.0, "requests line is flat: {lo}..{hi}");

    // A busy run has no such notes.
    let busy = s.root.join("busy");
    normal(&busy, "packet-level", true);
    spinnbed_reports::generate(&busy).unwrap();
    let texts = svg_texts(&fs::read_to_string(busy.join("report/scp.svg")).unwrap());
    assert!(!texts.iter().any(|t| t.starts_with("no ")), "{texts:?}");
}

#[test]
fn compare_without_scp_writes_no_scp_chart() {
    let s = scratch("compare-no-scp");
    let a = s.root.join("a");
    let b = s.root.join("b");
    normal(&a, "a", false);
    single_job(&b);
    let out = s.root.join("cmp");
    spinnbed_reports::compare(&[a, b], &out).unwrap();
    check_charts(&out, &["utilisation", "waits", "boards"]);
    assert!(!out.join("scp.png").exists());
}

#[test]
fn windowing_study() {
    let s = scratch("windowing");
    let csv = s.root.join("scp_windowing.csv");
    write(&s.root, "scp_windowing.csv", WINDOWING);
    let out = s.root.join("charts");
    spinnbed_reports::windowing_chart(&csv, &out).unwrap();
    check_charts(&out, &["windowing", "windowing-winners"]);
    // A file from before network conditions has one chart per op and no per-condition charts.
    assert!(
        !fs::read_dir(&out)
            .unwrap()
            .any(|e| { e.unwrap().file_name().to_string_lossy().starts_with("windowing-1") })
    );
    // Two operations → two panels; an empty study still renders.
    let two_ops = WINDOWING.to_string()
        + &WINDOWING
            .lines()
            .skip(1)
            .map(|l| l.replace(",read,", ",write,") + "\n")
            .collect::<String>();
    write(&s.root, "two_ops.csv", &two_ops);
    spinnbed_reports::windowing_chart(&s.root.join("two_ops.csv"), &s.root.join("two_ops")).unwrap();
    check_charts(&s.root.join("two_ops"), &["windowing"]);
    write(
        &s.root,
        "empty.csv",
        "policy,op,loss,rtt_ms,goodput_mbps,bound_mbps,retries,timeouts\n",
    );
    spinnbed_reports::windowing_chart(&s.root.join("empty.csv"), &s.root.join("empty")).unwrap();
    check_charts(&s.root.join("empty"), &["windowing", "windowing-winners"]);
    // Network conditions: a chart per condition (odd names made safe), the winners' chart
    // naming each condition's winner.
    let conditions = WINDOWING_HEADER.to_string()
        + &WINDOWING
            .lines()
            .skip(1)
            .flat_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                ["clean", "long tail/2"].map(|n| {
                    format!(
                        "{n},{},{},{},{},{},0.1,{},{},{},0,0,0\n",
                        f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]
                    )
                })
            })
            .collect::<String>();
    write(&s.root, "conditions.csv", &conditions);
    spinnbed_reports::windowing_chart(&s.root.join("conditions.csv"), &s.root.join("conditions")).unwrap();
    check_charts(
        &s.root.join("conditions"),
        &["windowing", "windowing-1-long_tail_2", "windowing-winners"],
    );
    let texts = svg_texts(&fs::read_to_string(s.root.join("conditions/windowing-winners.svg")).unwrap());
    assert!(texts.iter().any(|t| t == "network: long tail/2"), "{texts:?}");
    assert!(texts.iter().any(|t| t == "read: window-8"), "{texts:?}");
    let texts = svg_texts(&fs::read_to_string(s.root.join("conditions/windowing-1-long_tail_2.svg")).unwrap());
    assert!(texts.iter().any(|t| t.contains("\"long tail/2\"")), "{texts:?}");
}

/// The header of `scp.csv` since the study has network conditions.
const WINDOWING_HEADER: &str = "network,policy,op,loss,rtt_ms,goodput_mbps,goodput_sd_mbps,bound_mbps,retries,\
timeouts,scamp_drops,paced_ms,failed\n";

/// A study directory (summary.json with "study", scp.csv): `generate` writes the chart and an
/// index with the verdict and every cell.
#[test]
fn study_directory_gets_chart_and_index() {
    let s = scratch("study");
    let dir = s.root.join("scp-windowing");
    write(&dir, "scp.csv", WINDOWING);
    write(
        &dir,
        "summary.json",
        r#"{"scenario": "scp-windowing", "study": "scp-windowing", "verdict": {"adaptive_vs_bound_at_zero_loss": 0.995}}"#,
    );
    let report = spinnbed_reports::generate(&dir).unwrap();
    assert_eq!(
        names(&report.files),
        [
            "windowing.png",
            "windowing.svg",
            "windowing-winners.png",
            "windowing-winners.svg",
            "index.html"
        ]
    );
    check_charts(&dir.join("report"), &["windowing", "windowing-winners"]);
    let html = fs::read_to_string(dir.join("report/index.html")).unwrap();
    assert!(
        html.contains("adaptive vs bound at zero loss") && html.contains("0.995"),
        "{html}"
    );
    let cells = WINDOWING.lines().count() - 1;
    assert!(html.matches("Mbit/s</td>").count() >= cells, "{html}");
    assert!(html.contains("<img src=\"windowing.png\""), "{html}");
}

#[test]
fn malformed_input_names_file_and_line() {
    let s = scratch("malformed");
    let run = s.root.join("run");
    normal(&run, "bad", false);
    write(
        &run,
        "timeline.csv",
        &format!("{TIMELINE_HEADER}0,0,0,0,0,11,1\n600,x,0,0,0,11,1\n"),
    );
    let err = spinnbed_reports::generate(&run).unwrap_err().to_string();
    assert!(
        err.contains("timeline.csv") && err.contains("line 3") && err.contains("queued"),
        "{err}"
    );

    normal(&run, "bad", false);
    write(&run, "boards.csv", &format!("{BOARDS_HEADER}m,0,0,3,0,0,0,0,1,1,\n"));
    let err = spinnbed_reports::generate(&run).unwrap_err().to_string();
    assert!(
        err.contains("boards.csv") && err.contains("line 2") && err.contains("`z`"),
        "{err}"
    );

    normal(&run, "bad", false);
    write(&run, "boards.csv", &format!("{BOARDS_HEADER}m,0,0,0,0,0,0,0,1,1,up\n"));
    let err = spinnbed_reports::generate(&run).unwrap_err().to_string();
    assert!(err.contains("boards.csv") && err.contains("dead_links"), "{err}");

    normal(&run, "bad", false);
    write(&run, "jobs.csv", &format!("{JOBS_HEADER}0,a,c,board,m,0,1,1,2,1,1\n"));
    let err = spinnbed_reports::generate(&run).unwrap_err().to_string();
    assert!(err.contains("jobs.csv") && err.contains("line 2"), "{err}");

    normal(&run, "bad", false);
    write(
        &run,
        "jobs.csv",
        &format!("{JOBS_HEADER}0,a,c,board,m,0,1,1,2,NaN,1,1,completed,\n"),
    );
    let err = spinnbed_reports::generate(&run).unwrap_err().to_string();
    assert!(err.contains("jobs.csv") && err.contains("wait_s"), "{err}");

    normal(&run, "bad", false);
    write(&run, "summary.json", "{\n  \"jobs\": \"many\"\n}");
    let err = spinnbed_reports::generate(&run).unwrap_err().to_string();
    assert!(err.contains("summary.json") && err.contains("line 2"), "{err}");

    normal(&run, "bad", false);
    fs::remove_file(run.join("boards.csv")).unwrap();
    let err = spinnbed_reports::generate(&run).unwrap_err().to_string();
    assert!(err.contains("boards.csv"), "{err}");

    normal(&run, "bad", true);
    write(&run, "scp.csv", "t_s,requests\n0,1\n");
    let err = spinnbed_reports::generate(&run).unwrap_err().to_string();
    assert!(err.contains("scp.csv") && err.contains("line 2"), "{err}");
}

const LIVE_HEADER: &str = "id,machine,x,y,z,started_s,stopped_s,sent,delivered,dropped,detected,duplicates,datagrams,bytes,latency_p50_ms,latency_p99_ms,latency_max_ms,failed\n";

/// A run with `live.csv` gets the live-output chart (linked from the page, its summary rows in
/// the table); a job whose stream never started and one without latency (real hardware) are
/// drawn as such; a malformed `live.csv` is named with its line.
#[test]
fn live_output_chart() {
    let s = scratch("live");
    let run = s.root.join("run");
    normal(&run, "live", true);
    let summary = fs::read_to_string(run.join("summary.json")).unwrap();
    let summary = summary.trim_end().trim_end_matches('}').to_string()
        + ",\n  \"live\": { \"jobs\": 3, \"sent\": 1000, \"delivered\": 990, \"dropped\": 10, \"latency_p50_ms\": 0.214, \"latency_p99_ms\": 0.48 }\n}\n";
    write(&run, "summary.json", &summary);
    write(
        &run,
        "live.csv",
        &format!(
            "{LIVE_HEADER}1,Alpha,0,0,0,1.5,30,620,610,10,10,0,10,2540,0.214,0.395,0.481,0\n\
             2,Alpha,0,1,0,,,,0,0,0,0,0,0,,,,0\n\
             4,Alpha,1,0,0,2,40,380,380,0,0,0,7,1778,0.2,90.5,120,0\n"
        ),
    );
    let files = spinnbed_reports::generate(&run).unwrap();
    assert!(names(&files.files).contains(&"live.png".to_string()));
    check_charts(
        &run.join("report"),
        &["utilisation", "waits", "machine_Alpha", "live", "scp"],
    );
    let html = fs::read_to_string(run.join("report/index.html")).unwrap();
    assert!(html.contains("<img src=\"live.png\""), "{html}");
    assert!(
        html.contains("<tr><td>live output: events dropped</td><td>10</td></tr>"),
        "{html}"
    );
    let svg = fs::read_to_string(run.join("report/live.svg")).unwrap();
    assert!(svg.contains("streaming job (workload id)"));

    // Latency not measured (a --hardware run): the panel says so.
    write(
        &run,
        "live.csv",
        &format!("{LIVE_HEADER}1,Alpha,0,0,0,1.5,30,,610,3,3,0,10,2540,,,,0\n"),
    );
    spinnbed_reports::generate(&run).unwrap();
    let svg = fs::read_to_string(run.join("report/live.svg")).unwrap();
    assert!(svg.contains("latency not measured"), "{svg}");

    write(
        &run,
        "live.csv",
        &format!("{LIVE_HEADER}1,Alpha,0,0,0,1.5,30,620,many,10,10,0,10,2540,,,,0\n"),
    );
    let err = spinnbed_reports::generate(&run).unwrap_err().to_string();
    assert!(err.contains("live.csv") && err.contains("line 2"), "{err}");
}
