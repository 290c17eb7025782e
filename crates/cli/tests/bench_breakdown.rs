//! `tasker bench --metrics` splits a chain stage into the outcome write
//! (`tasker_outcome_write_seconds`: the store's call, round trip and commit
//! included) and the engine's own hand-offs (docs/PERFORMANCE.md, "A chain
//! stage, engine and database").

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

/// The numbers of the breakdown line: (mean stage, mean write, writes).
fn breakdown(stdout: &str) -> Option<(f64, f64, f64)> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("chain: stages after a chain's first"))?;
    let nums: Vec<f64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|w| w.parse().ok())
        .collect();
    // "mean S ms; outcome writes, mean W ms over N writes; … about R ms"
    Some((nums[0], nums[1], nums[2]))
}

#[test]
fn bench_with_metrics_splits_a_chain_stage() {
    let dir = tempfile::tempdir().unwrap();
    let run = |metrics: bool| {
        let mut args = vec!["bench", "--scenario", "chain", "--chains", "3"];
        if metrics {
            args.push("--metrics");
        }
        let out = common::bin(dir.path()).args(&args).output().unwrap();
        let (stdout, stderr) = common::text(&out);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        stdout
    };
    let stdout = run(true);
    let (stage, write, writes) =
        breakdown(&stdout).unwrap_or_else(|| panic!("no breakdown line:\n{stdout}"));
    // Three chains of ten steps, run one at a time: one write per step.
    assert_eq!(writes, 30.0, "{stdout}");
    assert!(write > 0.0 && stage > 0.0, "{stdout}");
    // Without metrics nothing is timed, and no such line is printed.
    let plain = run(false);
    assert!(breakdown(&plain).is_none(), "{plain}");
}
