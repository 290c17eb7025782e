//! Reading executed plans (`EXPLAIN (ANALYZE, BUFFERS)` text) in the
//! tests that prove a claim's cost does not grow with work it cannot take.

/// The claim's candidate scan (the `pre` CTE of an executed plan: its
/// nodes, numbers removed), the rows the scan of `steps_ready_idx`
/// returned, and the buffers it touched.
pub fn candidate_scan(plan: &str) -> (Vec<String>, u64, u64) {
    let pre: Vec<&str> = plan
        .lines()
        .skip_while(|l| l.trim() != "CTE pre")
        .take_while(|l| l.trim() == "CTE pre" || !l.starts_with("  CTE "))
        .collect();
    assert!(!pre.is_empty(), "no candidate scan:\n{plan}");
    let nodes = pre
        .iter()
        .filter(|l| l.trim_start().starts_with("->"))
        .map(|l| l.split(" (actual").next().unwrap_or(l).trim().to_string())
        .collect();
    let number = |line: &str, key: &str| -> u64 {
        line.split(key)
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {line}"))
    };
    let i = pre
        .iter()
        .position(|l| l.contains("steps_ready_idx"))
        .unwrap_or_else(|| panic!("no ready index scan:\n{plan}"));
    let rows = number(pre[i], "actual rows=");
    let buffers = pre[i..]
        .iter()
        .find(|l| l.contains("Buffers: shared hit="))
        .map_or(0, |l| number(l, "shared hit="));
    (nodes, rows, buffers)
}

/// Every scan of `table` in an executed plan returned at most `n` rows.
pub fn scans_at_most(plan: &str, table: &str, n: u64) {
    let on = format!(" on {table} ");
    for line in plan
        .lines()
        .filter(|l| l.contains(&on) && l.contains("actual rows="))
    {
        let rows: u64 = line
            .split("actual rows=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        assert!(rows <= n, "{line}\n{plan}");
    }
}
