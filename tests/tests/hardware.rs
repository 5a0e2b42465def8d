//! `sim run --hardware` against `sim emulate`, both over real UDP on loopback: every job of
//! `scenarios/hardware-quick.toml` completes, with the same allocations as the same scenario
//! simulated with the emulator — one core, two drivers.

use spinnbed_realtime::emulate::EmulateOptions;
use spinnbed_realtime::hardware::{RealtimeOptions, run};
use spinnbed_realtime::load::{LoadOptions, LoadRequest, load};
use spinnbed_sim::run::{RunSpec, simulate};
use spinnbed_sim::scenario;
use spinnbed_sim::world::Outcome;

#[test]
fn hardware_run_over_udp_matches_the_simulation() {
    let path = spinnbed_tests::repo_root().join("scenarios/hardware-quick.toml");
    let sc = scenario::load(&path).unwrap();
    let spec = RunSpec::from_scenario(&sc, sc.jobs().unwrap());
    let (simulated, _) = simulate(&spec, |_| {}).unwrap();

    let (real, _) = run_against_emulator(&sc, &spec, &RealtimeOptions::default());
    assert!(real.left_powered.is_empty(), "{:?}", real.left_powered);
    let real = real.result;
    assert_eq!(real.records.len(), simulated.records.len());
    for (r, s) in real.records.iter().zip(&simulated.records) {
        assert_eq!(
            r.outcome,
            Outcome::Completed,
            "job {} over UDP: {} ({})",
            r.index,
            r.outcome.name(),
            r.reason
        );
        assert_eq!(s.outcome, Outcome::Completed, "job {} simulated", s.index);
        assert_eq!(r.boards, s.boards, "job {}: allocations differ", r.index);
        assert_eq!(r.machine, s.machine);
    }
    // The BMPs and boards really were driven: SCP requests went out and were answered. Each
    // job's session first probes its (cold) board, which does not answer until booted: that
    // probe, and perhaps a poll during the boot, are the only requests allowed to fail.
    let scp = real.scp.expect("SCP counters of the UDP hardware");
    let jobs = real.records.len() as u64;
    assert!(scp.requests > 20, "{scp:?}");
    assert!((jobs..=2 * jobs).contains(&scp.failures), "{scp:?}");
    assert_eq!((scp.datagrams, scp.lost), (None, None), "no simulated network over UDP");
    // Every user wrote its input to SDRAM and read its results back over UDP, as in simulation.
    for (r, j) in real.records.iter().zip(&real.job_scp) {
        let j = j
            .as_ref()
            .unwrap_or_else(|| panic!("job {} has no SCP record", r.index));
        assert_eq!(j.data_bytes, (256 + 64) << 10, "job {}: {j:?}", r.index);
    }
    for (s, j) in simulated.records.iter().zip(&simulated.job_scp) {
        assert_eq!(
            j.as_ref().map(|j| j.data_bytes),
            Some((256 + 64) << 10),
            "job {} simulated",
            s.index
        );
    }
}

#[test]
fn hardware_run_refuses_to_start_when_the_bmps_do_not_answer() {
    // The same scenario moved to addresses nothing serves (the other test, running in
    // parallel, serves 127.4.0.0).
    let root = spinnbed_tests::repo_root().join("scenarios");
    let text = std::fs::read_to_string(root.join("hardware-quick.toml")).unwrap();
    assert!(text.contains("base = \"127.4.0.0\""));
    let text = text.replace("base = \"127.4.0.0\"", "base = \"127.9.0.0\"");
    let sc = scenario::parse("moved.toml", &text, &root).unwrap();
    let spec = RunSpec::from_scenario(&sc, sc.jobs().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let opts = RealtimeOptions {
        preflight_timeout: std::time::Duration::from_millis(600),
        ..RealtimeOptions::default()
    };
    let err = rt.block_on(run(&spec, &opts, |_| {})).unwrap_err().to_string();
    assert!(err.contains("cannot reach the machine's BMPs"), "{err}");
    assert!(err.contains("BMP 127.9.0.0 (machine lab, cabinet 0 frame 0)"), "{err}");
}

/// `sim load` against `sim emulate`: every board of a small machine is powered, booted and
/// loaded, and every request is answered.
#[test]
fn load_generator_boots_and_loads_every_board() {
    let root = spinnbed_tests::repo_root().join("scenarios");
    let text = std::fs::read_to_string(root.join("hardware-quick.toml")).unwrap();
    let text = text.replace("base = \"127.4.0.0\"", "base = \"127.5.0.0\"");
    let sc = scenario::parse("load.toml", &text, &root).unwrap();
    let machines: Vec<_> = sc.machines.iter().map(|m| m.machine.clone()).collect();
    let opts = LoadOptions {
        duration: std::time::Duration::from_millis(500),
        request: LoadRequest::Write,
        outstanding: 32,
        policy: spinnbed_sim::scenario::ScpPolicy::Adaptive,
        ..LoadOptions::default()
    };
    let quiet = EmulateOptions {
        quiet: true,
        ..EmulateOptions::default()
    };
    let (report, stats) = spinnbed_tests::with_emulator(sc, quiet, |_| load(&machines, &opts, |_| {}));
    let report = report.unwrap();
    assert_eq!(report.boards, 6);
    assert_eq!(report.boards_loaded, 6, "{report}");
    assert!(report.replies > 100, "{report}");
    assert_eq!(report.failures, 0, "{report}");
    // The emulator saw the same traffic: one boot, and at least as many writes as replies.
    assert_eq!(stats.boots, 1, "{stats:?}");
    let writes = stats
        .scamp_commands
        .get(&spinnbed_core::proto::scp::Command::Write)
        .copied()
        .unwrap_or(0);
    assert!(writes >= report.replies, "{writes} writes for {report}");
}

/// Runs `spec` in real time against an in-process `sim emulate` of `sc`; returns the run and
/// the emulator's counters when it stopped.
fn run_against_emulator(
    sc: &scenario::Scenario,
    spec: &RunSpec,
    opts: &RealtimeOptions,
) -> (spinnbed_realtime::hardware::RealtimeRun, spinnbed_emulator::Stats) {
    let eopts = EmulateOptions {
        quiet: true,
        ..EmulateOptions::default()
    };
    let (run, stats) = spinnbed_tests::with_emulator(sc.clone(), eopts, |_| run(spec, opts, |_| {}));
    (run.unwrap(), stats)
}

/// A `--hardware` run that reaches its stop time (horizon + drain limit) with jobs still live
/// destroys them and powers their boards off before it ends — before, it stopped at once and
/// left boards powered. `--speed 1e300` (every time collapses to zero) is the extreme case.
#[test]
fn a_hardware_run_that_stops_at_its_drain_limit_leaves_no_board_powered() {
    let root = spinnbed_tests::repo_root().join("scenarios");
    let text = std::fs::read_to_string(root.join("hardware-quick.toml")).unwrap();
    for (base, drain, speed) in [("127.17.0.0", "1s", 5.0), ("127.18.0.0", "2m", 1e300)] {
        let text = text
            .replace("base = \"127.4.0.0\"", &format!("base = \"{base}\""))
            .replace("drain_limit = \"2m\"", &format!("drain_limit = \"{drain}\""));
        let sc = scenario::parse("stop.toml", &text, &root).unwrap();
        let spec = RunSpec::from_scenario(&sc, sc.jobs().unwrap());
        let opts = RealtimeOptions {
            speed,
            ..RealtimeOptions::default()
        };
        let (real, stats) = run_against_emulator(&sc, &spec, &opts);
        assert!(real.left_powered.is_empty(), "{speed}: {:?}", real.left_powered);
        assert_eq!(
            stats.boards_powered, 0,
            "{speed}: the emulator still has boards on: {stats}"
        );
        let records = &real.result.records;
        assert!(
            records.iter().any(|r| r.outcome == Outcome::Unfinished),
            "{speed}: some job should still have been live at the stop"
        );
        assert!(
            records.iter().all(|r| matches!(
                r.outcome,
                Outcome::Completed | Outcome::Unfinished | Outcome::NeverStarted
            )),
            "{speed}: {records:?}"
        );
        // The outputs describe the run as it ran: with --speed, its times are the scaled ones.
        assert_eq!(
            real.meta.horizon,
            spinnbed_core::time::Instant::ZERO + spinnbed_realtime::hardware::scaled(&spec, speed).horizon,
            "{speed}"
        );
    }
}
