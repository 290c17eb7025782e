//! No statement of the SQLite store has a bare bound parameter as its
//! `LIMIT` or `OFFSET` (`LIMIT ?5`): it is written `LIMIT ?5 + 0`.
//!
//! SQLite (3.45 and later, bundled here) reads a bare parameter of a
//! `LIMIT` while it plans, and marks the statement to be planned again
//! whenever that parameter is bound anew: every execution through sqlx,
//! which binds each time. For the claim on completion (an `UPDATE` whose
//! triggers are compiled with it) that was 0.8 ms of planning per chain
//! stage, against 0.07 ms to run it; the pick of every claim paid 0.06 ms.
//! An expression (`?5 + 0`) is evaluated when the statement runs, so the
//! prepared statement is kept (docs/PERFORMANCE.md, "A LIMIT that re-plans
//! the statement").

use std::path::Path;

#[test]
fn no_limit_or_offset_is_a_bare_parameter() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut bare = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            for keyword in ["LIMIT ?", "OFFSET ?"] {
                for (at, _) in line.match_indices(keyword) {
                    seen += 1;
                    let rest = &line[at + keyword.len()..];
                    let param_end = rest
                        .find(|c: char| !(c.is_ascii_digit() || "{}next".contains(c)))
                        .unwrap_or(rest.len());
                    if !rest[param_end..].starts_with(" + 0") {
                        bare.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(seen > 10, "the scan found the store's limits ({seen})");
    assert!(
        bare.is_empty(),
        "bare LIMIT/OFFSET parameters:\n{}",
        bare.join("\n")
    );
}
