//! Hand-made run directories for the tests: small files written exactly as `docs/outputs.md`
//! describes them; and the checks every test makes of what a report wrote (a scratch directory,
//! PNGs that decode, SVGs that parse).
#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

pub const JOBS_HEADER: &str =
    "id,owner,class,request,machine,submit_s,start_s,ready_s,end_s,wait_s,boards,triads,outcome,reason\n";
pub const TIMELINE_HEADER: &str = "t_s,queued,running,allocated_boards,powered_boards,idle_boards,dead_boards\n";
pub const BOARDS_HEADER: &str = "machine,x,y,z,cabinet,frame,board,dead,allocated_s,powered_s,dead_links\n";
pub const SCP_HEADER: &str = "t_s,requests,retries,timeouts,failures,bytes,goodput_mbps\n";

pub fn write(dir: &Path, name: &str, content: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), content).unwrap();
}

pub fn summary(scenario: &str, jobs: u64, started: u64, machines: &[(&str, u64, u64)], scp: bool) -> String {
    let machines = machines
        .iter()
        .map(|(n, live, dead)| {
            format!(r#"{{ "name": "{n}", "live_boards": {live}, "dead_boards": {dead}, "utilisation": 0.5 }}"#)
        })
        .collect::<Vec<_>>()
        .join(", ");
    let scp = if scp {
        r#"{ "requests": 1200, "retries": 30, "timeouts": 4, "failures": 1, "bytes": 307200, "goodput_mbps": 2.5 }"#
    } else {
        "null"
    };
    format!(
        r#"{{
  "scenario": "{scenario}",
  "seed": 7,
  "policy": {{ "packer": "spalloc", "queue": "fifo", "seconds_before_free_s": 30.0 }},
  "horizon_s": 21600.0,
  "end_s": 21600.0,
  "makespan_s": 20000.0,
  "jobs": {jobs},
  "started": {started},
  "completed": {started},
  "cancelled": 0,
  "timed_out": 0,
  "failed": 0,
  "never_started": {ns},
  "live_boards": 11,
  "dead_boards": 1,
  "utilisation": 0.4567,
  "powered_utilisation": 0.5,
  "board_hours_allocated": 30.25,
  "board_hours_powered": 33.0,
  "wait_s": {{ "mean": 812.4, "p50": 12.0, "p95": 4000.0, "p99": 9000.0, "max": 20000.0 }},
  "mean_bounded_slowdown": 3.2,
  "classes": [
    {{ "class": "1 board", "jobs": 5, "started": 5, "mean_wait_s": 100.0, "p50_wait_s": 5.0, "p95_wait_s": 300.0 }},
    {{ "class": "<3 boards>", "jobs": 4, "started": 3, "mean_wait_s": 1000.0, "p50_wait_s": 600.0, "p95_wait_s": 2000.0 }}
  ],
  "machines": [{machines}],
  "scp": {scp}
}}
"#,
        ns = jobs - started
    )
}

/// A 2 × 2-triad machine (12 boards), board (1,0,2) dead, dead links on (0,0,0) north and
/// (1,1,1) east; `busy` scales how long boards were allocated.
pub fn boards(machine: &str, busy: f64) -> String {
    let mut s = String::new();
    let mut i = 0;
    for y in 0..2 {
        for x in 0..2 {
            for z in 0..3 {
                let dead = (x, y, z) == (1, 0, 2);
                let links = match (x, y, z) {
                    (0, 0, 0) => "north",
                    (1, 1, 1) => "east;south_west",
                    _ => "",
                };
                let alloc = if dead {
                    0.0
                } else {
                    (busy * 21600.0 * (i as f64 / 11.0)).min(21600.0)
                };
                let _ = writeln!(
                    s,
                    "{machine},{x},{y},{z},0,0,{i},{},{alloc:.3},{:.3},{links}",
                    u8::from(dead),
                    alloc * 1.1
                );
                i += 1;
            }
        }
    }
    s
}

pub fn timeline(n: usize) -> String {
    let mut s = String::from(TIMELINE_HEADER);
    for k in 0..n {
        let t = 600.0 * k as f64;
        let alloc = ((k * 7) % 12).min(11);
        let powered = (alloc + 1).min(11);
        let idle = 11 - powered;
        let queued = (k * 3) % 5;
        let _ = writeln!(s, "{t:.3},{queued},{},{alloc},{powered},{idle},1", alloc / 2);
    }
    s
}

pub fn jobs() -> String {
    let mut s = String::from(JOBS_HEADER);
    let rows = [
        ("1 board", 0.0, Some(0.0)),
        ("1 board", 10.0, Some(4.5)),
        ("1 board", 20.0, Some(120.0)),
        ("1 board", 30.0, Some(300.0)),
        ("1 board", 40.0, Some(2.0)),
        ("<3 boards>", 50.0, Some(600.0)),
        ("<3 boards>", 60.0, Some(2000.0)),
        ("<3 boards>", 70.0, Some(400.0)),
        ("<3 boards>", 80.0, None),
    ];
    for (i, (class, submit, wait)) in rows.iter().enumerate() {
        match wait {
            Some(w) => {
                let start = submit + w;
                let _ = writeln!(
                    s,
                    "{i},alice,{class},board,Alpha,{submit:.3},{start:.3},{:.3},{:.3},{w:.3},1,1,completed,\"destroyed, by user\"",
                    start + 5.0,
                    start + 3600.0
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "{i},bob,{class},\"boards(3,0.333)\",,{submit:.3},,,,,0,0,never_started,"
                );
            }
        }
    }
    s
}

pub fn scp(n: usize) -> String {
    let mut s = String::from(SCP_HEADER);
    for k in 0..n {
        let _ = writeln!(
            s,
            "{:.3},{},{},{},{},{},{:.3}",
            600.0 * k as f64,
            100 + k,
            k % 4,
            k % 2,
            k % 7 / 6,
            25600,
            2.0 + (k % 5) as f64 * 0.3
        );
    }
    s
}

/// A normal run: jobs in two classes, one machine, optional `scp.csv`.
pub fn normal(dir: &Path, scenario: &str, with_scp: bool) {
    write(
        dir,
        "summary.json",
        &summary(scenario, 9, 8, &[("Alpha", 11, 1)], with_scp),
    );
    write(dir, "jobs.csv", &jobs());
    write(dir, "timeline.csv", &timeline(37));
    write(dir, "boards.csv", &(BOARDS_HEADER.to_string() + &boards("Alpha", 1.0)));
    if with_scp {
        write(dir, "scp.csv", &scp(37));
    }
}

/// A run with no jobs at all (header-only jobs.csv, idle timeline).
pub fn no_jobs(dir: &Path) {
    let s = summary("empty", 0, 0, &[("Alpha", 11, 1)], false).replace(
        r#""wait_s": { "mean": 812.4, "p50": 12.0, "p95": 4000.0, "p99": 9000.0, "max": 20000.0 }"#,
        r#""wait_s": null"#,
    );
    write(dir, "summary.json", &s);
    write(dir, "jobs.csv", JOBS_HEADER);
    write(dir, "timeline.csv", &format!("{TIMELINE_HEADER}0,0,0,0,0,11,1\n"));
    write(dir, "boards.csv", &(BOARDS_HEADER.to_string() + &boards("Alpha", 0.0)));
}

/// A run with exactly one job.
pub fn single_job(dir: &Path) {
    write(
        dir,
        "summary.json",
        &summary("single", 1, 1, &[("Alpha", 11, 1)], false),
    );
    write(
        dir,
        "jobs.csv",
        &format!("{JOBS_HEADER}0,alice,1 board,board,Alpha,0.000,30.000,35.000,3630.000,30.000,1,1,completed,\n"),
    );
    write(
        dir,
        "timeline.csv",
        &format!("{TIMELINE_HEADER}0,1,0,0,0,11,1\n600,0,1,1,1,10,1\n"),
    );
    write(dir, "boards.csv", &(BOARDS_HEADER.to_string() + &boards("Alpha", 0.1)));
}

/// Two machines of 12 boards each.
pub fn two_machines(dir: &Path) {
    let s = summary("two-machines", 9, 8, &[("Alpha", 11, 1), ("Beta 2", 11, 1)], false)
        .replacen(r#""live_boards": 11,"#, r#""live_boards": 22,"#, 1)
        .replacen(r#""dead_boards": 1,"#, r#""dead_boards": 2,"#, 1);
    write(dir, "summary.json", &s);
    write(dir, "jobs.csv", &jobs());
    let tl = timeline(37).replace(",1\n", ",2\n");
    write(dir, "timeline.csv", &tl);
    write(
        dir,
        "boards.csv",
        &(BOARDS_HEADER.to_string() + &boards("Alpha", 1.0) + &boards("Beta 2", 0.3)),
    );
}

pub const WINDOWING: &str = "policy,op,loss,rtt_ms,goodput_mbps,bound_mbps,retries,timeouts
stop-and-wait,read,0,1,8.0,30.0,0,0
stop-and-wait,read,0.01,1,7.5,29.0,3,1
stop-and-wait,read,0.05,1,6.0,26.0,15,5
stop-and-wait,read,0.1,1,4.5,22.0,31,9
stop-and-wait,read,0,10,0.9,3.2,0,0
stop-and-wait,read,0.01,10,0.85,3.1,3,1
stop-and-wait,read,0.05,10,0.7,2.8,14,6
stop-and-wait,read,0.1,10,0.5,2.4,30,11
window-8,read,0,1,24.0,30.0,0,0
window-8,read,0.01,1,21.0,29.0,5,1
window-8,read,0.05,1,15.0,26.0,22,6
window-8,read,0.1,1,10.0,22.0,40,12
window-8,read,0,10,3.0,3.2,0,0
window-8,read,0.01,10,2.7,3.1,5,2
window-8,read,0.05,10,2.0,2.8,25,7
window-8,read,0.1,10,1.4,2.4,41,13
";

pub struct Scratch {
    _tmp: Option<tempfile::TempDir>,
    pub root: PathBuf,
}

pub fn scratch(name: &str) -> Scratch {
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

pub fn check_png(path: &Path) {
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

pub fn check_svg(path: &Path) {
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

pub fn check_charts(dir: &Path, stems: &[&str]) {
    for stem in stems {
        check_png(&dir.join(format!("{stem}.png")));
        check_svg(&dir.join(format!("{stem}.svg")));
    }
}

pub fn names(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}
