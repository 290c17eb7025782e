//! docs/OBSERVABILITY.md documents every metric, and the Grafana dashboard
//! in `examples/grafana/` queries only metrics that exist.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use tasker_engine::metrics::ALL;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Every `tasker_…` identifier in `text`, histogram suffixes removed.
fn names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("tasker_") {
        // Only identifiers that start here (not `x_tasker_`).
        if text[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        out.insert(base.to_string());
    }
    out
}

#[test]
fn every_metric_is_documented_and_the_dashboard_uses_real_ones() {
    let all: BTreeSet<String> = ALL.iter().map(|s| s.to_string()).collect();
    let doc = read("docs/OBSERVABILITY.md");
    let documented: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|n| n.starts_with("tasker_"))
        .map(str::to_string)
        .collect();
    assert_eq!(documented, all, "the metric table of docs/OBSERVABILITY.md");
    let dashboard = read("examples/grafana/tasker-dashboard.json");
    let _: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let used = names(&dashboard);
    let unknown: Vec<_> = used.difference(&all).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries unknown metrics: {unknown:?}"
    );
    let unused: Vec<_> = all.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "metrics without a dashboard panel: {unused:?}"
    );
}
