//! One timestamp format in every response: RFC 3339, UTC, six fractional
//! digits, whether the time came from the database (`created_at`) or from
//! the clock (`generated_at`, health `timestamp`).
#![allow(clippy::unwrap_used)]

mod common;

use common::Harness;
use serde_json::Value;

/// Every string under a key ending in `_at` or named `timestamp`.
fn times(v: &Value, key: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                times(child, k, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|c| times(c, key, out)),
        Value::String(s) if key.ends_with("_at") || key.ends_with("timestamp") => {
            out.push((key.to_string(), s.clone()));
        }
        _ => {}
    }
}

fn is_micros(s: &str) -> bool {
    // 2026-01-02T03:04:05.123456Z
    s.len() == 27
        && s.ends_with('Z')
        && s.as_bytes()[19] == b'.'
        && s[20..26].bytes().all(|b| b.is_ascii_digit())
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

#[tokio::test]
async fn every_timestamp_has_microseconds() {
    let h = Harness::new(common::sqlite().await).await;
    let task = h.checkout(7).await;
    let mut found = Vec::new();
    for uri in [
        format!("/tasker/tasks/{task}"),
        "/tasker/tasks".to_string(),
        "/tasker/handlers".to_string(),
        "/tasker/health/live".to_string(),
        "/tasker/health/ready".to_string(),
        "/tasker/health/status".to_string(),
    ] {
        let r = h.get(&uri).await;
        let mut here = Vec::new();
        times(&r.json, "", &mut here);
        assert!(!here.is_empty(), "{uri}: no timestamps in {}", r.text);
        found.extend(here.into_iter().map(|(k, v)| (format!("{uri} {k}"), v)));
    }
    let bad: Vec<_> = found.iter().filter(|(_, v)| !is_micros(v)).collect();
    assert!(bad.is_empty(), "not RFC 3339 with microseconds: {bad:?}");
    assert!(found.iter().any(|(k, _)| k.ends_with("generated_at")));
    assert!(found.iter().any(|(k, _)| k.ends_with(" timestamp")));
}
