//! `/tasker/metrics` and `/tasker/analytics/*` over a real engine run, on
//! both stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{Db, Harness};
use serde_json::json;
use std::time::Duration;
use tasker_server::{ServerConfig, TelemetrySettings};
use tokio::sync::Mutex;

on_both_backends!(
    metrics_count_what_the_engine_and_the_api_did,
    analytics_report_rates_durations_and_retries,
);

/// The recorder is process-wide: the cases of this file take turns, so the
/// deltas one reads are its own (and no other scrape sets the gauges).
static SCRAPES: Mutex<()> = Mutex::const_new(());

/// The value of the sample `line_prefix` (a metric with its labels) in a
/// Prometheus text answer.
fn value(text: &str, line_prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_prefix) && l[line_prefix.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics_count_what_the_engine_and_the_api_did(db: Db) {
    let _turn = SCRAPES.lock().await;
    let h = Harness::new(db).await;
    let before = h.get("/tasker/metrics").await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.text);
    let created = |t: &str| {
        value(
            t,
            r#"tasker_tasks_created_total{namespace="shop",name="checkout"}"#,
        )
        .unwrap_or(0.0)
    };
    let finished = |t: &str| {
        value(
            t,
            r#"tasker_tasks_finished_total{namespace="shop",name="checkout",status="complete"}"#,
        )
        .unwrap_or(0.0)
    };
    let steps = |t: &str| {
        value(
            t,
            r#"tasker_steps_finished_total{handler_kind="noop",status="complete"}"#,
        )
        .unwrap_or(0.0)
    };

    // Two tasks waiting: their roots make the ready queue.
    let first = h.checkout(1).await;
    let second = h.checkout(2).await;
    let r = h.get("/tasker/metrics").await;
    assert_eq!(
        r.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(
        value(&r.text, "tasker_queue_ready_steps"),
        Some(2.0),
        "{}",
        r.text
    );
    assert!(value(&r.text, "tasker_queue_oldest_ready_age_seconds").unwrap() >= 0.0);
    assert_eq!(created(&r.text) - created(&before.text), 2.0, "{}", r.text);
    // Requests are counted by route template, never by raw path.
    assert!(
        value(
            &r.text,
            r#"tasker_http_requests_total{method="POST",route="/tasker/tasks",status="201"}"#
        )
        .unwrap()
            >= 2.0,
        "{}",
        r.text
    );
    assert!(r.text.contains(r#"tasker_http_request_duration_seconds_bucket{method="POST",route="/tasker/tasks",le="0.005"}"#), "{}", r.text);

    let worker = h.tasker.start();
    for id in [first, second] {
        h.tasker
            .wait_for_task(id, Duration::from_secs(30))
            .await
            .unwrap();
    }
    worker.shutdown().await;
    h.get(&format!("/tasker/tasks/{first}")).await;
    let after = h.get("/tasker/metrics").await;
    let t = &after.text;
    assert_eq!(finished(t) - finished(&r.text), 2.0, "{t}");
    assert_eq!(steps(t) - steps(&r.text), 8.0, "{t}");
    assert_eq!(value(t, "tasker_queue_ready_steps"), Some(0.0));
    assert!(
        value(t, r#"tasker_claims_total{source="poll"}"#).unwrap() >= 1.0,
        "{t}"
    );
    assert!(
        t.contains("# TYPE tasker_step_duration_seconds histogram"),
        "{t}"
    );
    // Every outcome the engine wrote is in exactly one timed write.
    let outcomes = |t: &str| value(t, "tasker_outcome_batch_size_sum").unwrap_or(0.0);
    let writes = |t: &str| value(t, "tasker_outcome_write_seconds_count").unwrap_or(0.0);
    assert_eq!(outcomes(t) - outcomes(&r.text), 8.0, "{t}");
    let new_writes = writes(t) - writes(&r.text);
    assert!((1.0..=8.0).contains(&new_writes), "{t}");
    assert!(
        t.contains("tasker_outcome_write_seconds_bucket{le=\"0.0005\"}"),
        "{t}"
    );
    assert!(t.contains(r#"tasker_http_requests_total{method="GET",route="/tasker/tasks/{task_id}",status="200"}"#), "{t}");
    // Cardinality: no id ever appears in a label.
    for id in [first, second] {
        assert!(!t.contains(&id.to_string()), "{t}");
    }
    // An operator's cancel finishes a task too, and is counted as such.
    let cancelled = |t: &str| {
        value(
            t,
            r#"tasker_tasks_finished_total{namespace="shop",name="checkout",status="cancelled"}"#,
        )
        .unwrap_or(0.0)
    };
    let third = h.checkout(3).await;
    let r = h.delete(&format!("/tasker/tasks/{third}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let after_cancel = h.get("/tasker/metrics").await;
    assert_eq!(
        cancelled(&after_cancel.text) - cancelled(t),
        1.0,
        "{}",
        after_cancel.text
    );
    if let Some(pool) = h.state.tasker().store().pool_stats() {
        assert_eq!(
            value(t, r#"tasker_db_pool_connections{state="max"}"#),
            Some(f64::from(pool.max))
        );
    }

    // Switched off: 503 in the error shape.
    let off = ServerConfig {
        telemetry: TelemetrySettings {
            metrics_enabled: false,
            ..TelemetrySettings::default()
        },
        ..ServerConfig::default()
    };
    let state = tasker_server::AppState::new(h.tasker.clone(), off);
    let h = h.with_state(state);
    h.get("/tasker/metrics")
        .await
        .assert_error(503, "metrics_disabled");
}

async fn analytics_report_rates_durations_and_retries(db: Db) {
    let _turn = SCRAPES.lock().await;
    let h = Harness::new(db).await;
    let ok = h.checkout(1).await;
    h.failed_task().await;
    let worker = h.tasker.start();
    h.tasker
        .wait_for_task(ok, Duration::from_secs(30))
        .await
        .unwrap();
    worker.shutdown().await;

    let r = h.get("/tasker/analytics/performance").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let p = &r.json;
    assert_eq!(p["period_hours"], 1.0);
    assert_eq!(
        p["sample"],
        json!({"tasks": 2, "steps": 6, "truncated": false, "max_tasks": 10000})
    );
    assert_eq!(p["tasks"]["created"], 2);
    assert_eq!(p["tasks"]["finished"], 2);
    assert_eq!(p["tasks"]["completion_rate"], 0.5);
    assert_eq!(p["tasks"]["error_rate"], 0.5);
    assert_eq!(p["tasks"]["throughput_per_hour"], 2.0);
    assert_eq!(p["tasks"]["duration"]["count"], 2);
    // Five noop steps ran (four of checkout, `ok` of failing), one `fail`.
    assert_eq!(p["steps"]["steps"], 6);
    assert_eq!(p["steps"]["completed"], 5);
    assert_eq!(p["steps"]["errored"], 1);
    assert_eq!(p["steps"]["duration"]["count"], 5);
    assert!(p["steps"]["duration"]["p99_ms"].as_f64().unwrap() >= 0.0);
    let kinds: Vec<&str> = p["by_handler"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["handler_kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["noop", "fail"]);
    assert_eq!(p["cache_info"]["cached"], false);
    // Reused within the cache's lifetime.
    let again = h.get("/tasker/analytics/performance").await;
    assert_eq!(again.json["cache_info"]["cached"], true);
    assert_eq!(again.json["generated_at"], p["generated_at"]);

    let r = h
        .get("/tasker/analytics/bottlenecks?namespace=ops&name=failing&period_hours=2")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let b = &r.json;
    assert_eq!(
        b["scope"],
        json!({"namespace": "ops", "name": "failing", "version": null})
    );
    assert_eq!(b["period_hours"], 2.0);
    assert_eq!(b["tasks"]["created"], 1);
    assert_eq!(b["tasks"]["errored"], 1);
    let names: Vec<&str> = b["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ok", "boom"], "{}", r.text);
    assert_eq!(b["most_failing_steps"][0]["step_name"], "boom");
    assert_eq!(b["most_failing_steps"][0]["error_rate"], 1.0);
    // `boom` has one attempt (retry limit 1): nothing was retried.
    assert_eq!(b["most_retried_steps"], json!([]));
    assert_eq!(b["steps"][1]["retries"], 0);
    assert_eq!(b["slowest_steps"][0]["step_name"], "ok");

    // Bad input names its parameter.
    let bad = h.get("/tasker/analytics/bottlenecks?period_hours=0").await;
    bad.assert_error(400, "invalid_field");
    assert_eq!(bad.field(), "period_hours");
    let bad = h
        .get("/tasker/analytics/performance?period_hours=abc")
        .await;
    bad.assert_error(400, "invalid_parameter");
    assert_eq!(bad.field(), "period_hours");
    let bad = h.get("/tasker/analytics/performance?namespace=ops").await;
    bad.assert_error(400, "invalid_parameter");
    assert_eq!(bad.field(), "namespace");
}
