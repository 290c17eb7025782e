//! External-worker routes and correlation ids, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Db, Harness};
use serde_json::{Value, json};
use tasker_core::template::parse_template;

on_both_backends!(
    workers_claim_heartbeat_complete_fail,
    workers_errors,
    correlation_ids
);

const EXT: &str = "name: ext\nnamespace: w\nversion: 1.0.0\nstep_templates:\n  - name: remote\n    handler: { kind: external, config: { op: double } }\n    default_retry_limit: 2\n  - name: after\n    depends_on_step: remote\n    handler: { kind: noop }\n";

async fn harness(db: Db) -> Harness {
    let h = Harness::new(db).await;
    h.tasker
        .register_templates(vec![parse_template("<ext>", EXT, None).unwrap()], false)
        .unwrap();
    h
}

async fn create(h: &Harness, n: i64) -> String {
    let r = h
        .post(
            "/tasker/tasks",
            json!({"name": "ext", "namespace": "w", "context": {"n": n}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json["task"]["task_id"].as_str().unwrap().to_string()
}

fn claim_body(wait: f64) -> Value {
    json!({"worker_id": "py-1", "handler_kinds": ["external"], "max_steps": 10, "lease_seconds": 30, "wait_seconds": wait})
}

/// A sample's value in Prometheus text (0 when absent).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).map(str::trim))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn workers_claim_heartbeat_complete_fail(db: Db) {
    let h = harness(db).await;
    let metrics_before = h.get("/tasker/metrics").await.text;
    let t1 = create(&h, 21).await;
    let t2 = create(&h, 5).await;
    let r = h.post("/tasker/workers/claim", claim_body(0.0)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let steps = r.json["steps"].as_array().unwrap().clone();
    assert_eq!(steps.len(), 2);
    let s1 = steps
        .iter()
        .find(|s| s["task_id"] == t1.as_str())
        .unwrap()
        .clone();
    assert_eq!(s1["step_name"], "remote");
    assert_eq!(s1["handler_kind"], "external");
    assert_eq!(s1["handler_config"], json!({"op": "double"}));
    assert_eq!(s1["context"], json!({"n": 21}));
    assert_eq!(s1["attempt"], 1);
    // The task's trace context: its id is the trace id.
    assert_eq!(
        s1["traceparent"],
        tasker_engine::telemetry::traceparent_of_task(t1.parse().unwrap())
    );
    assert!(
        s1["traceparent"]
            .as_str()
            .unwrap()
            .starts_with(&format!("00-{}-", t1.replace('-', "")))
    );
    assert!(
        s1["idempotency_key"]
            .as_str()
            .unwrap()
            .starts_with("tasker:")
    );
    // Nothing else to claim.
    let r = h.post("/tasker/workers/claim", claim_body(0.0)).await;
    assert_eq!(r.json["steps"], json!([]));

    let id1 = s1["step_id"].as_str().unwrap();
    let tok1 = s1["lease_token"].as_str().unwrap();
    let r = h
        .post(
            &format!("/tasker/steps/{id1}/heartbeat"),
            json!({"lease_token": tok1, "lease_seconds": 60}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.json["lease_expires_at"].is_string());
    let r = h
        .post(
            &format!("/tasker/steps/{id1}/complete"),
            json!({"lease_token": tok1, "results": {"value": 42}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["status"], "accepted");
    // A second result for the same lease is refused.
    h.post(
        &format!("/tasker/steps/{id1}/complete"),
        json!({"lease_token": tok1}),
    )
    .await
    .assert_error(409, "lease_lost");
    let r = h.get(&format!("/tasker/tasks/{t1}/steps/{id1}")).await;
    assert_eq!(r.json["step"]["results"], json!({"value": 42}));
    assert_eq!(r.json["step"]["status"], "complete");

    // Fail permanently: the task errors once nothing else can run.
    let s2 = steps.iter().find(|s| s["task_id"] == t2.as_str()).unwrap();
    let (id2, tok2) = (
        s2["step_id"].as_str().unwrap(),
        s2["lease_token"].as_str().unwrap(),
    );
    let r = h
        .post(&format!("/tasker/steps/{id2}/fail"), json!({"lease_token": tok2, "message": "bad input", "retryable": false, "code": "E_INPUT"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = h.get(&format!("/tasker/tasks/{t2}/steps/{id2}")).await;
    assert_eq!(r.json["step"]["status"], "error");
    assert_eq!(r.json["step"]["last_error"]["code"], "E_INPUT");
    assert_eq!(r.json["step"]["last_error"]["message"], "bad input");

    // Workers' attempts are counted like in-process ones (other tests of
    // this binary may add to the same series: at least ours).
    let metrics = h.get("/tasker/metrics").await.text;
    for status in ["complete", "error"] {
        let series =
            format!(r#"tasker_steps_finished_total{{handler_kind="external",status="{status}"}}"#);
        assert!(
            sample(&metrics, &series) - sample(&metrics_before, &series) >= 1.0,
            "{series}: {metrics}"
        );
    }
}

async fn workers_errors(db: Db) {
    let h = harness(db).await;
    let r = h
        .post(
            "/tasker/workers/claim",
            json!({"worker_id": "w", "handler_kinds": []}),
        )
        .await;
    r.assert_error(400, "invalid_field");
    assert_eq!(r.field(), "handler_kinds");
    let r = h
        .post(
            "/tasker/workers/claim",
            json!({"worker_id": "w", "handler_kinds": ["x"], "wait_seconds": 99}),
        )
        .await;
    r.assert_error(400, "invalid_field");
    assert_eq!(r.field(), "wait_seconds");
    let r = h
        .post(
            "/tasker/workers/claim",
            json!({"worker_id": "w", "handler_kinds": ["x"], "max_steps": 0}),
        )
        .await;
    assert_eq!(r.field(), "max_steps");
    h.post("/tasker/workers/claim", json!({"worker": "w"}))
        .await
        .assert_error(400, "invalid_body");
    let missing = uuid::Uuid::now_v7();
    let token = uuid::Uuid::new_v4();
    h.post(
        &format!("/tasker/steps/{missing}/complete"),
        json!({"lease_token": token}),
    )
    .await
    .assert_error(404, "not_found");
    h.post(
        "/tasker/steps/nope/heartbeat",
        json!({"lease_token": token}),
    )
    .await
    .assert_error(400, "invalid_parameter");
    // A wrong token on a real, running step.
    create(&h, 1).await;
    let r = h.post("/tasker/workers/claim", claim_body(0.0)).await;
    let id = r.json["steps"][0]["step_id"].as_str().unwrap().to_string();
    h.post(
        &format!("/tasker/steps/{id}/heartbeat"),
        json!({"lease_token": token}),
    )
    .await
    .assert_error(409, "lease_lost");
    let r = h
        .post(
            &format!("/tasker/steps/{id}/fail"),
            json!({"lease_token": token, "message": " "}),
        )
        .await;
    r.assert_error(400, "invalid_field");
    assert_eq!(r.field(), "message");
}

async fn correlation_ids(db: Db) {
    let h = harness(db).await;
    // From the header into the task and back.
    let req = Request::post("/tasker/tasks")
        .header("content-type", "application/json")
        .header("x-correlation-id", "order-42.retry:1")
        .body(Body::from(
            json!({"name": "ext", "namespace": "w"}).to_string(),
        ))
        .unwrap();
    let r = h.request(req).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["task"]["correlation_id"], "order-42.retry:1");
    assert_eq!(r.headers["x-correlation-id"], "order-42.retry:1");
    // X-Request-ID is accepted too; the claimed step carries it to the worker.
    let req = Request::post("/tasker/tasks")
        .header("content-type", "application/json")
        .header("x-request-id", "req-7")
        .body(Body::from(
            json!({"name": "ext", "namespace": "w"}).to_string(),
        ))
        .unwrap();
    let r = h.request(req).await;
    assert_eq!(r.json["task"]["correlation_id"], "req-7");
    let r = h.post("/tasker/workers/claim", claim_body(0.0)).await;
    let mut ids: Vec<&str> = r.json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["correlation_id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["order-42.retry:1", "req-7"]);
    // Generated when absent, and echoed on every response.
    let r = h.get("/tasker/health/live").await;
    assert!(r.headers.contains_key("x-correlation-id"));
    // Malformed header: 400 naming it (health probes ignore it instead).
    let req = Request::get("/tasker/tasks")
        .header("x-correlation-id", "has spaces")
        .body(Body::empty())
        .unwrap();
    let r = h.request(req).await;
    r.assert_error(400, "invalid_header");
    assert_eq!(r.field(), "X-Correlation-ID");
}
