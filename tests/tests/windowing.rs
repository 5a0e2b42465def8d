//! The SCP windowing study: every policy recovers from loss (it resends, and every transfer
//! completes up to 5 % loss; at 10 % rig's five stop-and-wait tries give up on some
//! transfers, spinnman's and the adaptive policy's never), and spinnbed's adaptive policy meets
//! its targets on the shipped grid (≥ 90 % of the window-of-8 bound at zero loss, never worse
//! than spinnman or rig, at least twice spinnman at 5 % loss).

use spinnbed_sim::scenario;

#[test]
fn the_adaptive_policy_meets_its_targets_on_the_shipped_grid() {
    let path = spinnbed_tests::repo_root().join("scenarios/scp-windowing.toml");
    let sc = scenario::load(&path).unwrap();
    let study = sc.study().cloned().expect("scp-windowing.toml has a [study]");
    assert_eq!(study.losses, vec![0.0, 0.001, 0.01, 0.05, 0.1]);
    assert_eq!(study.rtts.len(), 3);
    let dir = tempfile::tempdir().unwrap();
    let (cells, verdict) = spinnbed_sim::study::run_into(
        &sc,
        spinnbed_sim::run::stage_outputs(&dir.path().join("w")).unwrap(),
        |_, _| {},
    )
    .unwrap();
    assert_eq!(cells.len(), 3 * 2 * 5 * 3);
    assert!(verdict.adaptive_vs_bound_at_zero_loss >= 0.9, "{verdict:?}");
    assert!(verdict.cells_worse_than_a_reference.is_empty(), "{verdict:?}");
    assert!(verdict.adaptive_vs_spinnman_at_5pct >= 2.0, "{verdict:?}");
    // Every policy reaches its own limit on a clean path: spinnman the window of 8, rig one
    // request per round trip.
    for c in cells.iter().filter(|c| c.loss == 0.0) {
        let want = if c.policy == "rig" {
            c.bound_mbps / 8.0
        } else {
            c.bound_mbps
        };
        assert!(c.goodput_mbps >= 0.9 * want, "{c:?}");
        assert_eq!(c.failed, 0);
    }
    // Every policy recovers from loss: it sees the loss (resends), still moves data, and
    // completes every transfer up to 5 % loss (and spinnman and adaptive at 10 % too).
    for c in cells.iter().filter(|c| c.loss > 0.0) {
        assert!(c.retries > 0.0, "loss but no resends: {c:?}");
        assert!(c.goodput_mbps > 0.0, "no data moved: {c:?}");
        if c.loss <= 0.05 || c.policy != "rig" {
            assert_eq!(c.failed, 0, "a transfer failed: {c:?}");
        }
        assert!(c.failed < study.seeds, "every transfer failed: {c:?}");
    }
    let csv = std::fs::read_to_string(dir.path().join("w/scp.csv")).unwrap();
    assert!(csv.starts_with("policy,op,loss,rtt_ms,goodput_mbps,bound_mbps,retries,timeouts\n"));
    assert_eq!(csv.lines().count(), 1 + cells.len());
}
