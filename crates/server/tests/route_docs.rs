//! The route table in the crate documentation (`src/lib.rs`, "Routes") lists
//! exactly the routes the server registers: a route added without its line,
//! or a line left after its route went, fails here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

/// (method, path) pairs of the doc table: rows `//! | GET, PATCH | `/a`, `/b` | what |`.
fn documented() -> BTreeSet<(String, String)> {
    let src = include_str!("../src/lib.rs");
    let section = src
        .split("//! ## Routes (all under `/tasker`)")
        .nth(1)
        .expect("a Routes section in src/lib.rs");
    let mut out = BTreeSet::new();
    for line in section.lines().skip(1).take_while(|l| l.starts_with("//!")) {
        let cells: Vec<&str> = line
            .trim_start_matches("//!")
            .split('|')
            .map(str::trim)
            .collect();
        // ["", method(s), path(s), what, ""]
        if cells.len() < 4 || cells[1] == "method" || cells[1].starts_with("---") {
            continue;
        }
        for method in cells[1].split(',').map(str::trim) {
            for path in cells[2].split(',').map(|p| p.trim().trim_matches('`')) {
                out.insert((method.to_string(), format!("/tasker{path}")));
            }
        }
    }
    out
}

#[test]
fn doc_route_table_matches_the_router() {
    let registered: BTreeSet<(String, String)> = tasker_server::route_table()
        .into_iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let documented = documented();
    let missing: Vec<_> = registered.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&registered).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "src/lib.rs route table: undocumented routes {missing:?}; documented but not registered {stale:?}"
    );
}
