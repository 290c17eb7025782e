//! `POST /tasker/tasks/{id}/pause` and `/resume` through the whole app, on
//! SQLite and PostgreSQL (docs/FLOW_CONTROL.md).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{Db, Harness};
use serde_json::json;
use std::time::Duration;
use tasker_core::TaskState;
use uuid::Uuid;

on_both_backends!(pause_and_resume_over_rest);

async fn pause_and_resume_over_rest(db: Db) {
    let h = Harness::new(db).await;
    let paused = h.checkout(1).await;
    let url = format!("/tasker/tasks/{paused}");

    let r = h.post(&format!("{url}/pause"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["task"]["status"], "pending");
    assert!(r.json["task"]["paused_at"].is_string(), "{}", r.text);
    let r = h.get(&url).await;
    assert!(r.json["task"]["paused_at"].is_string(), "show: {}", r.text);
    let r = h.get("/tasker/tasks").await;
    assert!(
        r.json["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["task_id"] == json!(paused) && t["paused_at"].is_string()),
        "list: {}",
        r.text
    );
    h.post(&format!("{url}/pause"), json!({}))
        .await
        .assert_error(409, "conflict");
    h.post(
        &format!("/tasker/tasks/{}/pause", Uuid::now_v7()),
        json!({}),
    )
    .await
    .assert_error(404, "not_found");
    h.post("/tasker/tasks/123/resume", json!({}))
        .await
        .assert_error(400, "invalid_parameter");

    // A task created later runs to the end while the paused one, whose
    // first step was ready earlier (the claim takes the oldest first),
    // does not start.
    let other = h.checkout(2).await;
    let worker = h.tasker.start();
    let done = h
        .tasker
        .wait_for_task(other, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(done.status, TaskState::Complete);
    let r = h.get(&url).await;
    assert_eq!(r.json["task"]["status"], "pending", "{}", r.text);
    assert!(
        r.json["task"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["attempts"] == 0),
        "{}",
        r.text
    );

    let r = h.post(&format!("{url}/resume"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.json["task"]["paused_at"].is_null());
    let done = h
        .tasker
        .wait_for_task(paused, Duration::from_secs(30))
        .await
        .unwrap();
    worker.shutdown().await;
    assert_eq!(done.status, TaskState::Complete);
    h.post(&format!("{url}/resume"), json!({}))
        .await
        .assert_error(409, "conflict");
    h.post(&format!("{url}/pause"), json!({}))
        .await
        .assert_error(409, "invalid_transition");
}
