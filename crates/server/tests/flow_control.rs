//! Schedules, namespace / template pauses and restart from a step over REST,
//! on SQLite and PostgreSQL (docs/FLOW_CONTROL.md). Every response is checked
//! against the OpenAPI document by the harness.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{Db, Harness};
use serde_json::json;
use std::time::Duration;
use tasker_core::TaskState;
use uuid::Uuid;

on_both_backends!(
    schedules_over_rest,
    namespace_pause_over_rest,
    restart_over_rest
);

async fn schedules_over_rest(db: Db) {
    let h = Harness::new(db).await;
    let body = json!({"schedule": {
        "name": "nightly", "namespace": "shop", "template": "checkout",
        "cron": "0 2 * * *", "timezone": "Europe/Paris", "catch_up": "all",
        "context": {"order_id": 7}
    }});
    let r = h.post("/tasker/schedules", body.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["schedule"]["name"], "nightly");
    assert_eq!(r.json["schedule"]["source"], "api");
    assert_eq!(
        r.json["schedule"]["next_fire_times"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    h.post("/tasker/schedules", body)
        .await
        .assert_error(409, "conflict");
    let bad = h
        .post(
            "/tasker/schedules",
            json!({"name": "x", "template": "checkout", "namespace": "shop", "cron": "99 * * * *", "context": {"order_id": 1}}),
        )
        .await;
    bad.assert_error(400, "invalid_field");
    assert_eq!(bad.field(), "cron", "{}", bad.text);
    let bad = h
        .post(
            "/tasker/schedules",
            json!({"name": "x", "template": "checkout", "namespace": "shop", "every_seconds": 60, "timezone": "Nowhere/Else"}),
        )
        .await;
    assert_eq!(bad.field(), "timezone", "{}", bad.text);
    h.post(
        "/tasker/schedules",
        json!({"name": "x", "template": "checkout", "namespace": "shop", "every_seconds": 60}),
    )
    .await
    .assert_error(422, "context_schema_violation");

    let r = h.get("/tasker/schedules").await;
    assert_eq!(
        r.json["schedules"].as_array().unwrap().len(),
        1,
        "{}",
        r.text
    );
    let r = h.post("/tasker/schedules/nightly/pause", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.json["schedule"]["paused_at"].is_string());
    assert!(
        r.json["schedule"]["next_fire_times"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    h.post("/tasker/schedules/nightly/pause", json!({}))
        .await
        .assert_error(409, "conflict");
    let r = h.post("/tasker/schedules/nightly/trigger", json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["task"]["initiator"], "schedule:nightly");
    assert_eq!(r.json["task"]["context"], json!({"order_id": 7}));
    let r = h.post("/tasker/schedules/nightly/resume", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    h.get("/tasker/schedules/nope")
        .await
        .assert_error(404, "not_found");
    let r = h.delete("/tasker/schedules/nightly").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    h.get("/tasker/schedules/nightly")
        .await
        .assert_error(404, "not_found");
}

async fn namespace_pause_over_rest(db: Db) {
    let h = Harness::new(db).await;
    let own = h.checkout(1).await;
    h.post(&format!("/tasker/tasks/{own}/pause"), json!({}))
        .await;
    let r = h
        .post(
            "/tasker/flow/pauses",
            json!({"namespace": "shop", "reason": "PSP outage"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["pause"]["scope"], "namespace");
    h.post("/tasker/flow/pauses", json!({"namespace": "shop"}))
        .await
        .assert_error(409, "conflict");
    h.post("/tasker/flow/pauses", json!({"namespace": "no spaces"}))
        .await
        .assert_error(400, "invalid_field");
    let held = h.checkout(2).await;
    let other = h
        .post(
            "/tasker/tasks",
            json!({"name": "report", "namespace": "ops"}),
        )
        .await;
    let other: Uuid = other.json["task"]["task_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // Reads say what holds each task and step.
    let r = h.get(&format!("/tasker/tasks/{held}")).await;
    assert_eq!(r.json["task"]["pause"]["scope"], "namespace", "{}", r.text);
    assert_eq!(r.json["task"]["pause"]["reason"], "PSP outage");
    assert_eq!(r.json["task"]["steps"][0]["paused"], true);
    assert_eq!(r.json["task"]["steps"][0]["pause"]["scope"], "namespace");
    let r = h.get(&format!("/tasker/tasks/{own}/steps")).await;
    assert_eq!(r.json["steps"][0]["pause"]["scope"], "task", "{}", r.text);
    let step = h.step_id(held, "validate").await;
    let r = h.get(&format!("/tasker/tasks/{held}/steps/{step}")).await;
    assert_eq!(r.json["step"]["pause"]["namespace"], "shop", "{}", r.text);
    let r = h.get("/tasker/tasks").await;
    let list = r.json["tasks"].as_array().unwrap();
    let of = |id: Uuid| list.iter().find(|t| t["task_id"] == json!(id)).unwrap();
    assert_eq!(of(held)["pause"]["scope"], "namespace");
    assert_eq!(of(own)["pause"]["scope"], "task");
    assert!(of(other)["pause"].is_null());
    let r = h.get("/tasker/flow/pauses").await;
    assert_eq!(r.json["pauses"].as_array().unwrap().len(), 1);

    // The other namespace runs; the paused one waits; resuming the
    // namespace does not resume the task paused by itself.
    let worker = h.tasker.start();
    let done = h
        .tasker
        .wait_for_task(other, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(done.status, TaskState::Complete);
    let r = h.delete("/tasker/flow/pauses/shop").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let done = h
        .tasker
        .wait_for_task(held, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(done.status, TaskState::Complete);
    let r = h.get(&format!("/tasker/tasks/{own}")).await;
    assert_eq!(r.json["task"]["status"], "pending", "{}", r.text);
    assert_eq!(r.json["task"]["pause"]["scope"], "task");
    worker.shutdown().await;
    h.delete("/tasker/flow/pauses/shop")
        .await
        .assert_error(409, "conflict");
    h.delete("/tasker/flow/pauses/shop/checkout")
        .await
        .assert_error(409, "conflict");
}

async fn restart_over_rest(db: Db) {
    let h = Harness::new(db).await;
    let failed = h.failed_task().await;
    let url = format!("/tasker/tasks/{failed}/restart");
    let r = h.post(&url, json!({"step": "nope"})).await;
    r.assert_error(400, "invalid_field");
    assert_eq!(r.field(), "step", "{}", r.text);
    h.post(&url, json!({"reason": "no step"}))
        .await
        .assert_error(400, "invalid_body");
    h.post(
        &format!("/tasker/tasks/{}/restart", Uuid::now_v7()),
        json!({"step": "ok"}),
    )
    .await
    .assert_error(404, "not_found");
    let r = h
        .post(
            &url,
            json!({"restart": {"step": "ok", "reason": "fixed the config"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["task"]["status"], "pending");
    let running = h.checkout(3).await;
    h.post(
        &format!("/tasker/tasks/{running}/restart"),
        json!({"step": "validate"}),
    )
    .await
    .assert_error(409, "invalid_transition");
    let tr = h.get(&format!("/tasker/tasks/{failed}/transitions")).await;
    let text = tr.text.clone();
    assert!(
        text.contains("\"action\":\"restart\"") && text.contains("fixed the config"),
        "{text}"
    );
}
