//! `/tasker/health/status` judges recent history only: failures older than
//! `health.status_window_seconds` age out (engine clock injected).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{Db, Harness};
use std::sync::Arc;
use std::time::Duration;
use tasker_engine::clock::ManualClock;
use tasker_server::ServerConfig;

on_both_backends!(old_failures_age_out_of_the_status);

async fn old_failures_age_out_of_the_status(db: Db) {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let server = ServerConfig {
        status_window: Duration::from_secs(3600),
        ..ServerConfig::default()
    };
    let h = Harness::with_clock(db, common::engine_config(), server, Some(clock.clone())).await;
    h.failed_task().await;
    let r = h.get("/tasker/health/status").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.json["metrics"]["task_error_rate"], 100.0);
    assert_eq!(r.json["metrics"]["window_seconds"], 3600.0);
    assert!(
        r.json["reasons"][0]
            .as_str()
            .unwrap()
            .contains("last 3600 s"),
        "{}",
        r.text
    );

    // Within the cache's two seconds, the same counts.
    h.checkout(1).await;
    let r = h.get("/tasker/health/status").await;
    assert_eq!(r.json["metrics"]["tasks"]["total"], 1, "{}", r.text);

    // Half an hour on: both tasks count (one in error of two is not > 50 %).
    clock.advance(chrono::Duration::minutes(30));
    let r = h.get("/tasker/health/status").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["metrics"]["tasks"]["total"], 2);
    assert_eq!(r.json["metrics"]["task_error_rate"], 50.0);

    // Two hours on, a new task: the old failure is out of the window.
    clock.advance(chrono::Duration::minutes(90));
    h.checkout(2).await;
    let r = h.get("/tasker/health/status").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["healthy"], true);
    assert_eq!(r.json["metrics"]["tasks"]["total"], 1, "{}", r.text);
    assert_eq!(r.json["metrics"]["tasks"]["by_state"]["error"], 0);
    assert_eq!(r.json["metrics"]["steps"]["total"], 4);
}
