//! Long-poll claims over a real socket: a worker that disconnects while its
//! claim waits must not leave the steps that then become ready leased to
//! nobody, and a claim whose answer cannot be handed over releases its leases.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Db, Harness};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tasker_core::template::parse_template;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

on_both_backends!(
    a_dropped_long_poll_strands_nothing,
    an_undelivered_claim_is_released
);

const EXT: &str = "name: ext\nnamespace: w\nversion: 1.0.0\nstep_templates:\n  - name: remote\n    handler: { kind: external }\n";

/// A claim request as raw HTTP/1.1.
fn claim_request(wait: f64) -> String {
    let body = json!({"worker_id": "gone", "handler_kinds": ["external"], "wait_seconds": wait})
        .to_string();
    format!(
        "POST /tasker/workers/claim HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

async fn a_dropped_long_poll_strands_nothing(db: Db) {
    let h = Harness::new(db).await;
    h.tasker
        .register_templates(vec![parse_template("<ext>", EXT, None).unwrap()], false)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = h.app.clone();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // A worker starts a long poll and goes away while it waits.
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(claim_request(10.0).as_bytes())
        .await
        .unwrap();
    client.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(client);

    // Then work arrives: it must be claimable by the next worker at once.
    let r = h
        .post("/tasker/tasks", json!({"name": "ext", "namespace": "w"}))
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    let t = Instant::now();
    let r = h
        .post(
            "/tasker/workers/claim",
            json!({"worker_id": "alive", "handler_kinds": ["external"], "wait_seconds": 3}),
        )
        .await;
    let steps: &Vec<Value> = r.json["steps"].as_array().unwrap();
    assert_eq!(
        steps.len(),
        1,
        "the step went to the worker that disconnected ({} ms): {}",
        t.elapsed().as_millis(),
        r.text
    );
    assert_eq!(steps[0]["attempt"], 1, "{}", r.text);
    server.abort();
}

/// The claim committed, but its answer is dropped before the connection took
/// it (what happens when the worker is gone by the time it is written): the
/// steps go back to pending at once, for the next worker.
async fn an_undelivered_claim_is_released(db: Db) {
    use tower::ServiceExt;
    let h = Harness::new(db).await;
    h.tasker
        .register_templates(vec![parse_template("<ext>", EXT, None).unwrap()], false)
        .unwrap();
    let r = h
        .post("/tasker/tasks", json!({"name": "ext", "namespace": "w"}))
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    let req = axum::http::Request::post("/tasker/workers/claim")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            json!({"worker_id": "gone", "handler_kinds": ["external"], "wait_seconds": 0, "lease_seconds": 3600}).to_string(),
        ))
        .unwrap();
    let res = h.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    drop(res); // never sent
    // Released at once, not after the hour-long lease.
    let r = h
        .post(
            "/tasker/workers/claim",
            json!({"worker_id": "alive", "handler_kinds": ["external"], "wait_seconds": 5}),
        )
        .await;
    let steps = r.json["steps"].as_array().unwrap();
    assert_eq!(
        steps.len(),
        1,
        "the undelivered claim kept its lease: {}",
        r.text
    );
    let task = steps[0]["task_id"].as_str().unwrap();
    let step = steps[0]["step_id"].as_str().unwrap();
    let r = h.get(&format!("/tasker/tasks/{task}/steps/{step}")).await;
    assert_eq!(r.json["step"]["lease_owner"], "alive");
    assert_eq!(
        r.json["step"]["last_error"]["code"], "CLAIM_UNDELIVERED",
        "{}",
        r.text
    );
    // A delivered claim is not released: the body, once read, keeps its lease.
    let r = h
        .post("/tasker/tasks", json!({"name": "ext", "namespace": "w"}))
        .await;
    assert_eq!(r.status.as_u16(), 201);
    let r = h
        .post(
            "/tasker/workers/claim",
            json!({"worker_id": "reader", "handler_kinds": ["external"], "wait_seconds": 0}),
        )
        .await;
    assert_eq!(r.json["steps"].as_array().unwrap().len(), 1, "{}", r.text);
    let r = h
        .post(
            "/tasker/workers/claim",
            json!({"worker_id": "other", "handler_kinds": ["external"], "wait_seconds": 1}),
        )
        .await;
    assert_eq!(
        r.json["steps"],
        json!([]),
        "a delivered claim was released: {}",
        r.text
    );
}
