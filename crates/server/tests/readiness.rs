//! Readiness on a busy server, on SQLite and PostgreSQL: ready within a
//! second of start, and never a 503 while the database answers, even with
//! hundreds of task creations queued on the connection pool.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{Db, Harness};
use serde_json::json;
use std::time::{Duration, Instant};
use tasker_server::ServerConfig;

on_both_backends!(ready_fast_and_steady_under_load);

/// Concurrent task creations while probing.
const CREATIONS: usize = 600;

async fn ready_fast_and_steady_under_load(db: Db) {
    let started = Instant::now();
    // The default budget (80 ms), as `tasker serve` uses it.
    let h = Harness::with(db, common::engine_config(), ServerConfig::default()).await;
    loop {
        let r = h.get("/tasker/health/ready").await;
        if r.status == StatusCode::OK {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "not ready 1 s after start: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ready_after = started.elapsed();
    eprintln!("ready {} ms after start", ready_after.as_millis());

    // Load: every creation queues on the pool at once.
    let mut load = tokio::task::JoinSet::new();
    for i in 0..CREATIONS {
        let app = h.app.clone();
        load.spawn(async move {
            use tower::ServiceExt;
            let req = axum::http::Request::post("/tasker/tasks")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(
                    json!({"name": "checkout", "namespace": "shop", "context": {"order_id": i + 1}})
                        .to_string(),
                ))
                .unwrap();
            app.oneshot(req).await.unwrap().status()
        });
    }
    let mut probes = 0;
    let mut failures = Vec::new();
    let mut busy = 0;
    while !load.is_empty() {
        let r = h.get("/tasker/health/ready").await;
        probes += 1;
        if r.status != StatusCode::OK {
            failures.push(r.text.clone());
        } else if r.json["checks"]["database"]["message"]
            .as_str()
            .unwrap()
            .starts_with("database busy")
        {
            busy += 1;
        }
        while let Some(done) = load.try_join_next() {
            assert_eq!(done.unwrap(), StatusCode::CREATED);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("{probes} probes during the load, {busy} answered from the recent ping");
    assert!(probes >= 3, "the load ended before it could be probed");
    assert!(
        failures.is_empty(),
        "{} of {probes} probes failed: {:?}",
        failures.len(),
        failures.first()
    );
    let r = h.get("/tasker/tasks?limit=1&count=exact").await;
    assert_eq!(r.json["pagination"]["total"], CREATIONS);
}
