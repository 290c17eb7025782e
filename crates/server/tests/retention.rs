//! Retention seen through the API, on SQLite and PostgreSQL: while the
//! pruner deletes finished tasks, reads of those tasks answer 200 or 404,
//! never 500; afterwards 404 everywhere; unfinished tasks stay.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{Db, Harness};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tasker_engine::EngineConfig;
use tasker_engine::clock::ManualClock;
use tasker_engine::retention::{PruneOptions, RetentionConfig};
use tasker_server::ServerConfig;
use uuid::Uuid;

on_both_backends!(
    a_task_pruned_mid_read_is_404_not_500,
    upkeep_warnings_show_in_the_status
);

const TASKS: usize = 20;

async fn a_task_pruned_mid_read_is_404_not_500(db: Db) {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let engine = EngineConfig {
        // Pruned by hand below, one task per batch so reads interleave.
        retention: RetentionConfig {
            enabled: false,
            batch_size: 1,
            ..RetentionConfig::default()
        },
        ..common::engine_config()
    };
    let h = Harness::with_clock(db, engine, ServerConfig::default(), Some(clock.clone())).await;
    let mut done = Vec::new();
    for _ in 0..TASKS {
        let r = h
            .post(
                "/tasker/tasks",
                json!({"name": "report", "namespace": "ops"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        done.push(
            r.json["task"]["task_id"]
                .as_str()
                .unwrap()
                .parse::<Uuid>()
                .unwrap(),
        );
    }
    let worker = h.tasker.start();
    for id in &done {
        h.tasker
            .wait_for_task(*id, Duration::from_secs(30))
            .await
            .unwrap();
    }
    worker.shutdown().await;
    let steps: Vec<Uuid> = {
        let mut v = Vec::new();
        for id in &done {
            v.push(h.step_id(*id, "only").await);
        }
        v
    };
    // Created, never run (no worker now): pending, never pruned.
    let open = h.checkout(1).await;

    clock.advance(chrono::Duration::days(31));
    let pruner = h.tasker.clone();
    let prune = tokio::spawn(async move { pruner.prune(&PruneOptions::default()).await });
    while !prune.is_finished() {
        for (task, step) in done.iter().zip(&steps) {
            for uri in [
                format!("/tasker/tasks/{task}"),
                format!("/tasker/tasks/{task}/steps"),
                format!("/tasker/tasks/{task}/steps/{step}"),
                format!("/tasker/tasks/{task}?include_dependencies=true"),
            ] {
                let r = h.get(&uri).await;
                assert!(
                    r.status == StatusCode::OK || r.status == StatusCode::NOT_FOUND,
                    "{uri} while pruning: {} {}",
                    r.status,
                    r.text
                );
            }
        }
    }
    let summary = prune.await.unwrap().unwrap();
    assert_eq!(summary.tasks, TASKS as u64);
    for (task, step) in done.iter().zip(&steps) {
        h.get(&format!("/tasker/tasks/{task}"))
            .await
            .assert_error(404, "not_found");
        h.get(&format!("/tasker/tasks/{task}/steps"))
            .await
            .assert_error(404, "not_found");
        h.get(&format!("/tasker/tasks/{task}/steps/{step}"))
            .await
            .assert_error(404, "not_found");
    }
    let r = h.get(&format!("/tasker/tasks/{open}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["task"]["status"], "pending");
    let r = h.get("/tasker/tasks?count=exact").await;
    assert_eq!(r.json["pagination"]["total"], 1, "{}", r.text);
}

/// `database.warnings` in the status names upkeep problems (autovacuum off
/// on PostgreSQL) without making the status unhealthy.
async fn upkeep_warnings_show_in_the_status(db: Db) {
    let health = db.store.storage_health().await.unwrap();
    let h = Harness::new(db).await;
    let r = h.get("/tasker/health/status").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["healthy"], true);
    let warnings = r.json["database"]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), health.warnings.len(), "{}", r.text);
    if health.autovacuum == Some(false) {
        assert!(
            warnings[0].as_str().unwrap().contains("tasker maintenance"),
            "{}",
            r.text
        );
    }
}
