//! End-to-end tests: hand-made run directories → `generate` / `compare` / `windowing_chart`,
//! then every file is checked (PNGs decode at 1200 × 800, SVGs are whole, the HTML has the
//! expected cells).
//!
//! Set `SPINNBED_REPORTS_KEEP=DIR` to write the fixtures and reports under DIR instead of a
//! temporary directory, to look at them.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

struct Scratch {
    _tmp: Option<tempfile::TempDir>,
    root: PathBuf,
}

fn scratch(name: &str) -> Scratch {
    match std::env::var_os("SPINNBED_REPORTS_KEEP") {
        Some(dir) => {
            let root = PathBuf::from(dir).join(name);
            let _ = fs::remove_dir_all(&root);
            fs::create_dir_all(&root).unwrap();
            Scratch { _tmp: None, root }
        }
        None => {
            let tmp = tempfile::tempdir().unwrap();
            let root = tmp.path().to_path_buf();
            Scratch { _tmp: Some(tmp), root }
        }
    }
}

fn check_png(path: &Path) {
    let file = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let decoder = png::Decoder::new(std::io::BufReader::new(file));
    let mut reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buf)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!((info.width, info.height), (1200, 800), "{}", path.display());
    // Not blank: some pixels are dark (text, lines).
    let dark = buf
        .chunks(info.line_size / info.width as usize)
        .filter(|px| px.iter().take(3).all(|c| *c < 80))
        .count();
    assert!(dark > 500, "{}: only {dark} dark pixels", path.display());
}

fn check_svg(path: &Path) {
    let s = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // A well-formed XML document whose root is a 1200 × 800 SVG with text and shapes in it.
    let doc = roxmltree::Document::parse(&s).unwrap_or_else(|e| panic!("{}: not well-formed XML: {e}", path.display()));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg", "{}", path.display());
    assert_eq!(root.attribute("width"), Some("1200"), "{}", path.display());
    assert_eq!(root.attribute("height"), Some("800"), "{}", path.display());
    let count = |tag: &str| doc.descendants().filter(|n| n.tag_name().name() == tag).count();
    assert!(count("text") > 3, "{}: no text", path.display());
    assert!(
        count("rect") + count("polyline") + count("path") + count("line") + count("circle") > 10,
        "{}: no shapes",
        path.display()
    );
}

fn check_charts(dir: &Path, stems: &[&str]) {
    for stem in stems {
        check_png(&dir.join(format!("{stem}.png")));
        check_svg(&dir.join(format!("{stem}.svg")));
    }
}

fn names(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

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
    check_charts(&out, &["windowing"]);
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
    check_charts(&s.root.join("empty"), &["windowing"]);
}

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
    assert_eq!(names(&report.files), ["windowing.png", "windowing.svg", "index.html"]);
    check_charts(&dir.join("report"), &["windowing"]);
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
