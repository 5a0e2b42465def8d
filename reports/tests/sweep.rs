//! Sweep reports: hand-made `sweep.json` and `points.csv` → `generate_sweep`, then every file is
//! checked (PNGs decode at 1200 × 800, SVGs are whole, the HTML has the expected cells), the
//! output is byte-identical when generated twice, and bad input is an error naming the file.
//!
//! Set `SPINNBED_REPORTS_KEEP=DIR` to write the fixtures and reports under DIR instead of a
//! temporary directory, to look at them.

mod common;

use std::fs;
use std::path::Path;

use common::*;

const SWEEP_JSON: &str = r#"{
  "name": "policy-vs-load",
  "base": "scenarios/busy-week.toml",
  "seeds": [1, 2, 3, 4, 5],
  "axes": [
    {"key": "policy.packer", "values": ["spalloc", "anywhere"]},
    {"key": "policy.queue", "values": ["fifo", "easy"]},
    {"key": "workload.load_scale", "values": [0.5, 1.0, 1.5]},
    {"key": "machine.dead_boards", "values": [0]}
  ],
  "metrics": [
    {"name": "wait_mean_s", "label": "mean wait", "unit": "s", "better": "lower"},
    {"name": "utilisation", "label": "utilisation", "unit": "", "better": "higher"},
    {"name": "board_hours_allocated", "label": "board-hours allocated", "unit": "h", "better": "none"}
  ],
  "report_metrics": ["wait_mean_s", "utilisation"],
  "points": 12,
  "invalid_points": 1
}
"#;

const HEADER: &str = "point,policy.packer,policy.queue,workload.load_scale,machine.dead_boards,seeds,\
wait_mean_s_mean,wait_mean_s_ci95_lo,wait_mean_s_ci95_hi,utilisation_mean,utilisation_ci95_lo,utilisation_ci95_hi,\
board_hours_allocated_mean,board_hours_allocated_ci95_lo,board_hours_allocated_ci95_hi,error\n";

/// 2 × 2 × 3 × 1 points, 5 seeds. Mean wait: point 3 is best (100 s, [92, 108]); points 0 and 6
/// overlap it (107 ≤ 108, 104 ≤ 108), point 9 just misses (109 > 108). Utilisation: point 11 is
/// a clear winner. Point 5 is invalid; point 7 has no utilisation (NaN), point 2 no board-hours.
const POINTS_CSV: &str = "\
0,spalloc,fifo,0.5,0,5,120,107,133,0.50,0.48,0.52,40.5,39,42,
1,spalloc,fifo,1.0,0,5,300,270,330,0.70,0.68,0.72,80,78,82,
2,spalloc,fifo,1.5,0,5,900,800,1000,0.80,0.78,0.82,,,,
3,spalloc,easy,0.5,0,5,100,92,108,0.52,0.50,0.54,41,40,42,
4,spalloc,easy,1.0,0,5,240,220,260,0.75,0.73,0.77,82,80,84,
5,spalloc,easy,1.5,0,0,,,,,,,,,,\"workload.load_scale: 1.5 needs <more> boards, \"\"mind\"\"\"
6,anywhere,fifo,0.5,0,5,125,104,146,0.49,0.47,0.51,40,39,41,
7,anywhere,fifo,1.0,0,5,320,300,340,NaN,,,79,77,81,
8,anywhere,fifo,1.5,0,5,950,900,1000,0.82,0.80,0.84,118,115,121,
9,anywhere,easy,0.5,0,5,115,109,121,0.53,0.51,0.55,42,41,43,
10,anywhere,easy,1.0,0,5,260,240,280,0.78,0.76,0.80,84,82,86,
11,anywhere,easy,1.5,0,5,700,650,750,0.93,0.91,0.95,125,122,128,
";

fn write_sweep(dir: &Path, json: &str, csv: &str) {
    write(dir, "sweep.json", json);
    write(dir, "points.csv", csv);
}

fn fixture(dir: &Path) {
    write_sweep(dir, SWEEP_JSON, &format!("{HEADER}{POINTS_CSV}"));
}

const STEMS: [&str; 6] = [
    "sweep-wait_mean_s-vs-policy_packer",
    "sweep-wait_mean_s-vs-policy_queue",
    "sweep-wait_mean_s-vs-workload_load_scale",
    "sweep-utilisation-vs-policy_packer",
    "sweep-utilisation-vs-policy_queue",
    "sweep-utilisation-vs-workload_load_scale",
];

fn svg_texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).unwrap();
    doc.descendants()
        .filter(|n| n.tag_name().name() == "text")
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect()
}

#[test]
fn full_sweep_report() {
    let s = scratch("sweep-full");
    let dir = s.root.join("sweep");
    fixture(&dir);
    let summary = spinnbed_reports::generate_sweep(&dir).unwrap();
    let mut want: Vec<String> = STEMS
        .iter()
        .flat_map(|s| [format!("{s}.png"), format!("{s}.svg")])
        .collect();
    want.push("index.html".into());
    assert_eq!(names(&summary.files), want);
    assert!(summary.files.iter().all(|f| f.starts_with(&dir) && f.is_file()));
    check_charts(&dir, &STEMS);
    // The single-value axis gets no chart, nor does the metric that is not charted.
    assert!(!dir.join("sweep-wait_mean_s-vs-machine_dead_boards.png").exists());
    assert!(!dir.join("sweep-board_hours_allocated-vs-policy_packer.png").exists());

    // The load chart: titled, a line per (packer, queue) in the legend, the band explained, the
    // values as ticks, the invalid point counted.
    let svg = fs::read_to_string(dir.join("sweep-wait_mean_s-vs-workload_load_scale.svg")).unwrap();
    let texts = svg_texts(&svg);
    for t in [
        "mean wait against workload.load_scale",
        "policy.packer = spalloc, policy.queue = fifo",
        "policy.packer = anywhere, policy.queue = easy",
        "95 % confidence interval of the mean (Student t)",
        "mean wait (s)",
        "workload.load_scale",
        "0.5",
        "1.0",
        "1.5",
    ] {
        assert!(texts.iter().any(|x| x == t), "{t:?} not in {texts:?}");
    }
    assert!(
        texts
            .iter()
            .any(|x| x.contains("mean over 5 seeds per point") && x.contains("1 point without a result left out")),
        "{texts:?}"
    );
    // Categories on the packer chart, and the single-value axis is not in the legend.
    let svg = fs::read_to_string(dir.join("sweep-utilisation-vs-policy_packer.svg")).unwrap();
    let texts = svg_texts(&svg);
    assert!(texts.iter().any(|x| x == "spalloc") && texts.iter().any(|x| x == "anywhere"));
    assert!(texts.iter().any(|x| x == "policy.packer (values evenly spaced)"));
    assert!(
        texts
            .iter()
            .any(|x| x == "policy.queue = easy, workload.load_scale = 1.5")
    );
    assert!(!texts.iter().any(|x| x.contains("machine.dead_boards")));

    let html = fs::read_to_string(dir.join("index.html")).unwrap();
    for cell in [
        "<h1>spinnbed sweep: policy-vs-load</h1>",
        "<p class=\"sub\">base scenarios/busy-week.toml · 5 seeds (1, 2, 3, 4, 5) · 12 points · 1 without results</p>",
        "<tr><td>workload.load_scale</td><td class=\"text\">0.5, 1.0, 1.5</td></tr>",
        "<tr><td>machine.dead_boards</td><td class=\"text\">0</td></tr>",
        // The load is a condition: the best packer and queue under each load. Within noise at
        // 0.5: points 0 and 6 overlap the best, point 9 does not.
        "<th>metric</th><th>better</th><th>under</th><th>best setting</th>",
        "<tr><td>mean wait</td><td class=\"text\">lower</td><td class=\"text\">workload.load_scale = 0.5</td>\
<td class=\"text\">policy.packer = spalloc, policy.queue = easy (point 3)</td><td>100 s</td><td>[92.0, 108] s</td>\
<td class=\"text\">2 others within noise: policy.packer = spalloc, policy.queue = fifo (point 0); \
policy.packer = anywhere, policy.queue = fifo (point 6)</td></tr>",
        "<tr><td>mean wait</td><td class=\"text\">lower</td><td class=\"text\">workload.load_scale = 1.0</td>\
<td class=\"text\">policy.packer = spalloc, policy.queue = easy (point 4)</td><td>240 s</td><td>[220, 260] s</td>\
<td class=\"text\">1 other within noise: policy.packer = anywhere, policy.queue = easy (point 10)</td></tr>",
        // A clear winner; the invalid point 5 is not counted.
        "<tr><td>utilisation</td><td class=\"text\">higher</td><td class=\"text\">workload.load_scale = 1.5</td>\
<td class=\"text\">policy.packer = anywhere, policy.queue = easy (point 11)</td><td>0.930</td><td>[0.910, 0.950]</td>\
<td class=\"text better\">clear winner</td></tr>",
        "The point with the lowest or highest mean under each combination of the conditions&#39; values \
(workload.load_scale)",
        // The points table: mean ± half-width; missing values as dashes.
        "<tr><td>3</td><td class=\"text\">spalloc</td><td class=\"text\">easy</td><td class=\"text\">0.5</td>\
<td class=\"text\">0</td><td>5</td><td>100 ± 8.00</td><td>0.520 ± 0.0200</td><td>41.0 ± 1.00</td></tr>",
        "<tr><td>7</td><td class=\"text\">anywhere</td><td class=\"text\">fifo</td><td class=\"text\">1.0</td>\
<td class=\"text\">0</td><td>5</td><td>320 ± 20.0</td><td>–</td><td>79.0 ± 2.00</td></tr>",
        "<tr><td>5</td><td class=\"text\">spalloc</td><td class=\"text\">easy</td><td class=\"text\">1.5</td>\
<td class=\"text\">0</td><td>0</td><td>–</td><td>–</td><td>–</td></tr>",
        "<th>mean wait (s)</th><th>utilisation</th><th>board-hours allocated (h)</th>",
        // The invalid point with its (escaped) error.
        "<tr><td>5</td><td class=\"text\">policy.packer = spalloc, policy.queue = easy, workload.load_scale = 1.5</td>\
<td>0</td><td class=\"text\">workload.load_scale: 1.5 needs &lt;more&gt; boards, &quot;mind&quot;</td></tr>",
        "Shaded: 95 % confidence interval of the mean over 5 seeds (Student t).",
        "<img src=\"sweep-wait_mean_s-vs-workload_load_scale.png\"",
        "<a href=\"sweep-utilisation-vs-policy_queue.svg\">SVG</a>",
    ] {
        assert!(html.contains(cell), "missing {cell:?} in\n{html}");
    }
    // A metric without a better direction has no best setting; each other metric has a row per load.
    assert!(!html.contains("<tr><td>board-hours allocated</td>"));
    assert_eq!(html.matches("<tr><td>mean wait</td>").count(), 3);
    assert_eq!(html.matches("<tr><td>utilisation</td>").count(), 3);
    assert!(!html.contains("<more>"));
    // Order: charts, then best settings, then points, then invalid points.
    let at = |s: &str| html.find(s).unwrap_or_else(|| panic!("{s}"));
    assert!(at("<h2>Charts</h2>") < at("<h2>Best setting per metric</h2>"));
    assert!(at("<h2>Best setting per metric</h2>") < at("<h2>Points</h2>"));
    assert!(at("<h2>Points</h2>") < at("<h2>Invalid points and errors</h2>"));
}

/// With every axis placed as a choice, the best setting is chosen among all points, as by a
/// sweep file with `conditions = []`.
#[test]
fn every_axis_a_choice() {
    let s = scratch("sweep-choices");
    let dir = s.root.join("sweep");
    let json = SWEEP_JSON.replace(r#""values""#, r#""role": "choice", "values""#);
    write_sweep(&dir, &json, &format!("{HEADER}{POINTS_CSV}"));
    spinnbed_reports::generate_sweep(&dir).unwrap();
    let html = fs::read_to_string(dir.join("index.html")).unwrap();
    for cell in [
        // Within noise: points 0 and 6 overlap the best, point 9 does not.
        "<tr><td>mean wait</td><td class=\"text\">lower</td><td class=\"text\">policy.packer = spalloc, \
policy.queue = easy, workload.load_scale = 0.5 (point 3)</td><td>100 s</td><td>[92.0, 108] s</td>\
<td class=\"text\">2 others within noise: policy.packer = spalloc, policy.queue = fifo, workload.load_scale = 0.5 \
(point 0); policy.packer = anywhere, policy.queue = fifo, workload.load_scale = 0.5 (point 6)</td></tr>",
        "<tr><td>utilisation</td><td class=\"text\">higher</td><td class=\"text\">policy.packer = anywhere, \
policy.queue = easy, workload.load_scale = 1.5 (point 11)</td><td>0.930</td><td>[0.910, 0.950]</td>\
<td class=\"text better\">clear winner</td></tr>",
        "<p class=\"note\">The point with the lowest or highest mean. Other settings",
    ] {
        assert!(html.contains(cell), "missing {cell:?} in\n{html}");
    }
    assert!(!html.contains("<th>under</th>"));
    assert_eq!(html.matches("<tr><td>mean wait</td>").count(), 1);
}

#[test]
fn output_is_deterministic() {
    let s = scratch("sweep-determinism");
    let (a, b) = (s.root.join("a"), s.root.join("b"));
    fixture(&a);
    fixture(&b);
    let fa = spinnbed_reports::generate_sweep(&a).unwrap();
    let fb = spinnbed_reports::generate_sweep(&b).unwrap();
    assert_eq!(names(&fa.files), names(&fb.files));
    for (x, y) in fa.files.iter().zip(&fb.files) {
        assert!(fs::read(x).unwrap() == fs::read(y).unwrap(), "{} differs", x.display());
    }
    // And again into the same directory.
    let html = fs::read(a.join("index.html")).unwrap();
    spinnbed_reports::generate_sweep(&a).unwrap();
    assert_eq!(fs::read(a.join("index.html")).unwrap(), html);
}

#[test]
fn one_axis_one_seed() {
    let s = scratch("sweep-one-seed");
    let dir = s.root.join("sweep");
    let json = r#"{"name": "load", "base": "quick.toml", "seeds": [7],
        "axes": [{"key": "workload.load_scale", "values": [0.5, 1, 2]}],
        "metrics": [{"name": "wait_mean_s", "label": "mean wait", "unit": "s", "better": "lower"}],
        "report_metrics": ["wait_mean_s"], "points": 3, "invalid_points": 0}"#;
    let csv = "point,workload.load_scale,seeds,wait_mean_s_mean,wait_mean_s_ci95_lo,wait_mean_s_ci95_hi,error\n\
0,0.5,1,10,10,10,\n1,1,1,20,20,20,\n2,2,1,80,80,80,\n";
    write_sweep(&dir, json, csv);
    let summary = spinnbed_reports::generate_sweep(&dir).unwrap();
    assert_eq!(
        names(&summary.files),
        [
            "sweep-wait_mean_s-vs-workload_load_scale.png",
            "sweep-wait_mean_s-vs-workload_load_scale.svg",
            "index.html"
        ]
    );
    check_charts(&dir, &["sweep-wait_mean_s-vs-workload_load_scale"]);
    let svg = fs::read_to_string(dir.join("sweep-wait_mean_s-vs-workload_load_scale.svg")).unwrap();
    let texts = svg_texts(&svg);
    assert!(texts.iter().any(|x| x == "mean over the seeds"), "{texts:?}");
    assert!(!texts.iter().any(|x| x.contains("confidence")), "{texts:?}");
    assert!(texts.iter().any(|x| x.contains("one seed per point")), "{texts:?}");
    // No shaded band: nothing is drawn translucent.
    assert!(!svg.contains("opacity=\"0.18"), "a band was drawn");
    let html = fs::read_to_string(dir.join("index.html")).unwrap();
    for cell in [
        "One seed per point, so no confidence bands: lines only.",
        "<p class=\"sub\">base quick.toml · 1 seed (7) · 3 points</p>",
        "Every axis that varies is a condition (workload.load_scale): there is no setting to choose between.",
        "<tr><td>2</td><td class=\"text\">2</td><td>1</td><td>80.0</td></tr>",
    ] {
        assert!(html.contains(cell), "missing {cell:?} in\n{html}");
    }
    assert!(!html.contains("<table class=\"best\">"));
    assert!(!html.contains("Invalid points"));
    // Placed as a choice (as `[sweep] conditions = []` writes it), the load is chosen among.
    write_sweep(
        &dir,
        &json.replace(
            r#""key": "workload.load_scale","#,
            r#""key": "workload.load_scale", "role": "choice","#,
        ),
        csv,
    );
    spinnbed_reports::generate_sweep(&dir).unwrap();
    let html = fs::read_to_string(dir.join("index.html")).unwrap();
    let cell = "<td class=\"text\">workload.load_scale = 0.5 (point 0)</td><td>10.0 s</td><td>–</td>\
<td class=\"text\">not assessed: one seed, so no interval</td></tr>";
    assert!(html.contains(cell), "missing {cell:?} in\n{html}");
}

#[test]
fn bands_are_shaded_with_several_seeds() {
    let s = scratch("sweep-bands");
    let dir = s.root.join("sweep");
    fixture(&dir);
    spinnbed_reports::generate_sweep(&dir).unwrap();
    let svg = fs::read_to_string(dir.join("sweep-wait_mean_s-vs-workload_load_scale.svg")).unwrap();
    assert!(svg.contains("opacity=\"0.18"), "no band drawn");
}

#[test]
fn long_values_odd_axes_and_explicit_points() {
    let s = scratch("sweep-odd");
    let dir = s.root.join("sweep");
    let long = "a-very-long-scp-policy-name-that-goes-on-and-on-and-on-and-does-not-fit-under-its-tick-at-all";
    let json = format!(
        r#"{{"name": "odd <sweep>", "base": "b.toml", "seeds": [1, 2],
        "axes": [{{"key": "host.scp_policy", "values": ["{long}", "<rig>", "adaptive"]}},
                 {{"key": "network.enabled", "values": [true, false]}}],
        "metrics": [{{"name": "goodput", "label": "goodput", "unit": "Mbit/s", "better": "higher"}},
                    {{"name": "empty", "label": "never measured", "unit": "", "better": "lower"}}],
        "report_metrics": ["goodput", "empty"], "points": 4}}"#
    );
    // An explicit list of points, not the whole product; one metric never has a value.
    let csv = format!(
        "point,host.scp_policy,network.enabled,seeds,goodput_mean,goodput_ci95_lo,goodput_ci95_hi,\
empty_mean,empty_ci95_lo,empty_ci95_hi,error\n\
0,{long},true,2,3.5,3.0,4.0,,,,\n1,<rig>,true,2,2.5,2.0,3.0,,,,\n2,adaptive,false,2,3.6,3.3,3.9,NaN,NaN,NaN,\n\
3,adaptive,true,2,4.1,3.2,5.0,,,,\n"
    );
    write_sweep(&dir, &json, &csv);
    let summary = spinnbed_reports::generate_sweep(&dir).unwrap();
    let stems = [
        "sweep-goodput-vs-host_scp_policy",
        "sweep-goodput-vs-network_enabled",
        "sweep-empty-vs-host_scp_policy",
        "sweep-empty-vs-network_enabled",
    ];
    assert_eq!(summary.files.len(), 2 * stems.len() + 1);
    check_charts(&dir, &stems);
    let svg = fs::read_to_string(dir.join("sweep-goodput-vs-host_scp_policy.svg")).unwrap();
    let texts = svg_texts(&svg);
    // The long value is shortened under its tick; the others are whole.
    assert!(
        texts.iter().any(|x| x.starts_with("a-very-long") && x.ends_with('…')),
        "{texts:?}"
    );
    assert!(!texts.iter().any(|x| x == long));
    assert!(texts.iter().any(|x| x == "<rig>"));
    assert!(texts.iter().any(|x| x == "network.enabled = true"));
    let svg = fs::read_to_string(dir.join("sweep-empty-vs-host_scp_policy.svg")).unwrap();
    assert!(svg_texts(&svg).iter().any(|x| x == "no results"));
    let html = fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(html.contains("<h1>spinnbed sweep: odd &lt;sweep&gt;</h1>"));
    assert!(html.contains("<td class=\"text\">&lt;rig&gt;</td>"));
    assert!(!html.contains("<rig>"));
    // network.enabled is a condition: the policies are compared with the network on, and off.
    assert!(html.contains(
        "<tr><td>never measured</td><td class=\"text\">lower</td><td class=\"text\">network.enabled = true</td>\
<td class=\"text\">no point has a result</td>"
    ));
    // 4.1 [3.2, 5.0] overlaps 3.5 [3.0, 4.0] but not 2.5 [2.0, 3.0]; 3.6 is under the other
    // condition, where it is the only setting.
    assert!(
        html.contains("<td class=\"text\">1 other within noise: host.scp_policy = a-very-long"),
        "{html}"
    );
    assert!(html.contains(
        "<td class=\"text\">network.enabled = false</td><td class=\"text\">host.scp_policy = adaptive (point 2)</td>\
<td>3.60 Mbit/s</td><td>[3.30, 3.90] Mbit/s</td><td class=\"text\">the only setting with a result</td>"
    ));
}

#[test]
fn nothing_to_chart() {
    let s = scratch("sweep-flat");
    let dir = s.root.join("sweep");
    let json = r#"{"name": "flat", "base": "b.toml", "seeds": [1, 2, 3],
        "axes": [{"key": "policy.queue", "values": ["easy"]}],
        "metrics": [{"name": "u", "label": "utilisation", "unit": "", "better": "higher"}],
        "report_metrics": ["u"], "points": 1}"#;
    let csv = "point,policy.queue,seeds,u_mean,u_ci95_lo,u_ci95_hi,error\n0,easy,3,0.5,0.4,0.6,\n";
    write_sweep(&dir, json, csv);
    let summary = spinnbed_reports::generate_sweep(&dir).unwrap();
    assert_eq!(names(&summary.files), ["index.html"]);
    let html = fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(html.contains("Nothing to chart"));
    assert!(html.contains(
        "<td class=\"text\">policy.queue = easy (point 0)</td><td>0.500</td><td>[0.400, 0.600]</td>\
<td class=\"text\">the only setting with a result</td>"
    ));
}

/// The error `generate_sweep` gives for these files (no `points.csv` when `csv` is `None`).
fn error_of(name: &str, json: &str, csv: Option<&str>) -> String {
    let s = scratch(name);
    let dir = s.root.join("sweep");
    write(&dir, "sweep.json", json);
    if let Some(csv) = csv {
        write(&dir, "points.csv", csv);
    }
    match spinnbed_reports::generate_sweep(&dir) {
        Ok(_) => panic!("{name}: no error"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn bad_input_names_the_file() {
    let full = format!("{HEADER}{POINTS_CSV}");
    let cases: Vec<(&str, String, Option<String>, &[&str])> = vec![
        ("missing-csv", SWEEP_JSON.into(), None, &["points.csv"]),
        (
            "bad-json",
            "{\"name\": \"x\", \"axes\": [".into(),
            Some(full.clone()),
            &["sweep.json", "line 1"],
        ),
        (
            "json-shape",
            r#"{"name": "x", "axes": {}, "metrics": []}"#.into(),
            Some(full.clone()),
            &["sweep.json", "invalid type"],
        ),
        (
            "report-metric",
            SWEEP_JSON.replace(r#"["wait_mean_s", "utilisation"]"#, r#"["wait_mean_s", "slowdown"]"#),
            Some(full.clone()),
            &["sweep.json", "report metric `slowdown`"],
        ),
        (
            "better",
            SWEEP_JSON.replace(r#""better": "higher""#, r#""better": "more""#),
            Some(full.clone()),
            &["sweep.json", "\"more\""],
        ),
        (
            "role",
            SWEEP_JSON.replace(
                r#"{"key": "policy.queue","#,
                r#"{"key": "policy.queue", "role": "setting","#,
            ),
            Some(full.clone()),
            &[
                "sweep.json",
                "axis `policy.queue`",
                "\"setting\"",
                "\"condition\" or \"choice\"",
            ],
        ),
        (
            "header",
            SWEEP_JSON.into(),
            Some(full.replacen(
                "policy.queue,workload.load_scale",
                "workload.load_scale,policy.queue",
                1,
            )),
            &[
                "points.csv",
                "line 1",
                "header does not match sweep.json",
                "column 3 is `workload.load_scale` where `policy.queue` was expected",
            ],
        ),
        (
            "header-short",
            SWEEP_JSON.into(),
            Some(full.replacen(",error\n", "\n", 1)),
            &["points.csv", "line 1", "15 columns where sweep.json gives 16"],
        ),
        (
            "empty-csv",
            SWEEP_JSON.into(),
            Some(String::new()),
            &["points.csv", "header"],
        ),
        (
            "axis-value",
            SWEEP_JSON.into(),
            Some(full.replacen("1,spalloc,fifo,1.0", "1,spalloc,sjf,1.0", 1)),
            &["points.csv", "line 3", "column `policy.queue`", "\"sjf\"", "fifo, easy"],
        ),
        (
            "number",
            SWEEP_JSON.into(),
            Some(full.replacen(",300,270,", ",slow,270,", 1)),
            &[
                "points.csv",
                "line 3",
                "column `wait_mean_s_mean`",
                "\"slow\" is not a number",
            ],
        ),
        (
            "seeds",
            SWEEP_JSON.into(),
            Some(full.replacen("2,spalloc,fifo,1.5,0,5,", "2,spalloc,fifo,1.5,0,-1,", 1)),
            &["points.csv", "line 4", "column `seeds`"],
        ),
        (
            "fields",
            SWEEP_JSON.into(),
            Some(full.replacen("0.80,0.78,0.82,,,,\n", "0.80,0.78,0.82,,,\n", 1)),
            &["points.csv", "line 4", "15 fields where the header has 16"],
        ),
        (
            "duplicate",
            SWEEP_JSON.into(),
            Some(full.replacen("\n4,spalloc", "\n3,spalloc", 1)),
            &["points.csv", "line 6", "point 3 is given twice (also on line 5)"],
        ),
        (
            "count",
            SWEEP_JSON.into(),
            Some(full.replacen(
                "11,anywhere,easy,1.5,0,5,700,650,750,0.93,0.91,0.95,125,122,128,\n",
                "",
                1,
            )),
            &["points.csv", "11 points", "sweep.json", "\"points\": 12"],
        ),
    ];
    for (name, json, csv, wants) in cases {
        let e = error_of(name, &json, csv.as_deref());
        for w in wants {
            assert!(e.contains(w), "{name}: {w:?} not in {e:?}");
        }
    }
    // A directory with nothing in it names sweep.json.
    let s = scratch("sweep-missing");
    let e = format!(
        "{:#}",
        spinnbed_reports::generate_sweep(&s.root.join("nowhere")).unwrap_err()
    );
    assert!(e.contains("sweep.json"), "{e}");
}

#[test]
fn many_lines_and_crowded_values() {
    let s = scratch("sweep-many");
    let dir = s.root.join("sweep");
    // 20 lines on the chart against `x`, whose values are too close together for a tick each.
    let ys: Vec<String> = (0..20).map(|i| format!("\"cluster-{i:02}\"")).collect();
    let json = format!(
        r#"{{"name": "many", "base": "b.toml", "seeds": [1, 2, 3],
        "axes": [{{"key": "x", "values": [1, 2, 1000]}}, {{"key": "y", "values": [{}]}}],
        "metrics": [{{"name": "m", "label": "metric", "unit": "", "better": "lower"}}],
        "report_metrics": ["m"], "points": 60}}"#,
        ys.join(", ")
    );
    let mut csv = String::from("point,x,y,seeds,m_mean,m_ci95_lo,m_ci95_hi,error\n");
    for (i, (x, y)) in [1, 2, 1000]
        .iter()
        .flat_map(|x| (0..20).map(move |y| (*x, y)))
        .enumerate()
    {
        let m = -5.0 + y as f64 + (x as f64).ln();
        csv.push_str(&format!("{i},{x},cluster-{y:02},3,{m},{},{},\n", m - 0.5, m + 0.5));
    }
    write_sweep(&dir, &json, &csv);
    let summary = spinnbed_reports::generate_sweep(&dir).unwrap();
    assert_eq!(summary.files.len(), 5);
    check_charts(&dir, &["sweep-m-vs-x", "sweep-m-vs-y"]);
    let texts = svg_texts(&fs::read_to_string(dir.join("sweep-m-vs-x.svg")).unwrap());
    assert!(texts.iter().any(|t| t == "… and 5 more lines"), "{texts:?}");
    assert!(texts.iter().any(|t| t == "y = cluster-14"));
    assert!(!texts.iter().any(|t| t == "y = cluster-15"));
    // Round ticks instead of the crowded values; negative means are drawn.
    assert!(texts.iter().any(|t| t == "200"), "{texts:?}");
    assert!(texts.iter().any(|t| t.starts_with('-')), "{texts:?}");
}
