//! Lifecycle events over the API (issue 12, docs/EVENTS.md), on both
//! stores: the feed (cursor, filters, long polling, bad parameters), the
//! SSE stream resuming with `Last-Event-ID`, a task's events and its
//! transition history, custom events from external workers, masking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::Request;
use common::{Db, Harness};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tasker_core::template::parse_template;
use tower::ServiceExt;
use uuid::Uuid;

on_both_backends!(
    the_feed_pages_filters_and_refuses_bad_parameters,
    a_long_poll_wakes_on_the_next_event,
    the_stream_resumes_after_last_event_id,
    task_events_and_the_transition_history,
    external_workers_emit_custom_events_and_results_are_masked,
);

const EXT: &str = "name: ext\nnamespace: w\nversion: 1.0.0\nstep_templates:\n  - name: remote\n    handler: { kind: external }\n";

fn types(events: &Value) -> Vec<String> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

/// Runs the engine until `task` is final.
async fn run(h: &Harness, task: Uuid) {
    let worker = h.tasker.start();
    h.tasker
        .wait_for_task(task, Duration::from_secs(30))
        .await
        .unwrap();
    worker.shutdown().await;
}

async fn the_feed_pages_filters_and_refuses_bad_parameters(db: Db) {
    let h = Harness::new(db).await;
    let task = h.checkout(1).await;
    run(&h, task).await;
    let other = h.checkout(2).await;

    let r = h.get("/tasker/events?limit=1000").await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    let all = r.json["events"].as_array().unwrap().clone();
    // checkout: created, started, 4 × (step started, step completed), completed; then the second's created.
    assert_eq!(all.len(), 12, "{:?}", types(&r.json["events"]));
    let ids: Vec<i64> = all.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(r.json["next_after"], json!(ids[11]));
    assert_eq!(all[0]["type"], "task.created");
    assert_eq!(all[0]["namespace"], "shop");
    assert_eq!(all[0]["task_id"], json!(task));
    assert_eq!(all[10]["type"], "task.completed");
    assert_eq!(all[11]["task_id"], json!(other));
    let completed: Vec<&Value> = all
        .iter()
        .filter(|e| e["type"] == "step.completed")
        .collect();
    assert_eq!(completed.len(), 4);
    assert!(completed[0]["payload"]["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(completed[0]["step_id"].is_string());

    // Paging with the cursor.
    let r = h
        .get(&format!("/tasker/events?after={}&limit=2", ids[3]))
        .await;
    let page: Vec<i64> = r.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(page, ids[4..6].to_vec());
    assert_eq!(r.json["next_after"], json!(ids[5]));
    let r = h.get(&format!("/tasker/events?after={}", ids[11])).await;
    assert_eq!(r.json["events"], json!([]));
    assert_eq!(r.json["next_after"], json!(ids[11]));

    // Filters.
    let r = h.get("/tasker/events?type=task.*").await;
    assert_eq!(
        types(&r.json["events"]),
        [
            "task.created",
            "task.started",
            "task.completed",
            "task.created"
        ]
    );
    let r = h
        .get(&format!(
            "/tasker/events?type=task.created,step.started&task_id={task}"
        ))
        .await;
    let t = types(&r.json["events"]);
    assert_eq!(t.len(), 5, "{t:?}");
    let r = h.get("/tasker/events?namespace=ops").await;
    assert_eq!(r.json["events"], json!([]));

    // Bad parameters name their field.
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("after=-1", "after"),
        ("after=x", "after"),
        ("type=task.", "type"),
        ("type=a%20b", "type"),
        ("wait_seconds=21", "wait_seconds"),
        ("task_id=nope", "task_id"),
        ("colour=red", "colour"),
    ] {
        let r = h.get(&format!("/tasker/events?{q}")).await;
        r.assert_error(400, "invalid_parameter");
        assert_eq!(r.field(), field, "{q}: {}", r.text);
    }
}

async fn a_long_poll_wakes_on_the_next_event(db: Db) {
    let h = Harness::new(db).await;
    h.checkout(1).await;
    let last = h.get("/tasker/events").await.json["next_after"]
        .as_i64()
        .unwrap();
    let app = h.app.clone();
    let started = Instant::now();
    let poll = tokio::spawn(async move {
        let req = Request::get(format!("/tasker/events?after={last}&wait_seconds=15"))
            .body(Body::empty())
            .unwrap();
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice::<Value>(&bytes).unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let task = h.checkout(2).await;
    let json = poll.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken by the commit, not the timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(types(&json["events"]), ["task.created"]);
    assert_eq!(json["events"][0]["task_id"], json!(task));

    // Nothing comes: the poll ends empty after its wait.
    let t = Instant::now();
    let r = h
        .get(&format!(
            "/tasker/events?after={}&wait_seconds=0.5",
            json["next_after"]
        ))
        .await;
    assert_eq!(r.json["events"], json!([]));
    assert!(t.elapsed() >= Duration::from_millis(450));
}

/// The stream's messages: (id, event, data).
fn sse_messages(text: &str) -> Vec<(i64, String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut id = None;
            let mut event = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = serde_json::from_str(v.trim()).ok();
                }
            }
            Some((id?, event?, data?))
        })
        .collect()
}

async fn the_stream_resumes_after_last_event_id(db: Db) {
    let h = Harness::new(db).await;
    let task = h.checkout(1).await;
    run(&h, task).await;
    let all = h.get("/tasker/events").await.json["events"].clone();
    let ids: Vec<i64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();

    let req = Request::get("/tasker/events/stream?limit=3")
        .header("last-event-id", ids[4].to_string())
        .body(Body::empty())
        .unwrap();
    let r = h.request(req).await;
    assert_eq!(r.status.as_u16(), 200);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let got = sse_messages(&r.text);
    assert_eq!(
        got.iter().map(|m| m.0).collect::<Vec<_>>(),
        ids[5..8].to_vec(),
        "{}",
        r.text
    );
    for (i, (id, event, data)) in got.iter().enumerate() {
        assert_eq!(data["id"], json!(id));
        assert_eq!(data["type"], json!(event));
        assert_eq!(data, &all[5 + i]);
    }

    // `after` and a type filter; `Last-Event-ID` wins over `after`.
    let req = Request::get("/tasker/events/stream?after=0&type=task.*&limit=2")
        .header("last-event-id", ids[0].to_string())
        .body(Body::empty())
        .unwrap();
    let got = sse_messages(&h.request(req).await.text);
    assert_eq!(
        got.iter().map(|m| m.1.as_str()).collect::<Vec<_>>(),
        ["task.started", "task.completed"]
    );
    // A bad Last-Event-ID is a 400 naming it.
    let req = Request::get("/tasker/events/stream")
        .header("last-event-id", "yesterday")
        .body(Body::empty())
        .unwrap();
    let r = h.request(req).await;
    r.assert_error(400, "invalid_parameter");
    assert_eq!(r.field(), "Last-Event-ID");
}

async fn task_events_and_the_transition_history(db: Db) {
    let h = Harness::new(db).await;
    let failed = h.failed_task().await;
    let r = h.get(&format!("/tasker/tasks/{failed}/events")).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    let t = types(&r.json["events"]);
    assert_eq!(t.first().unwrap(), "task.created");
    assert_eq!(t.last().unwrap(), "task.failed");
    let boom = r.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "step.failed")
        .unwrap();
    assert_eq!(boom["payload"]["step_name"], "boom");
    assert_eq!(boom["payload"]["error"]["code"], "BOOM");
    assert_eq!(boom["payload"]["error"]["kind"], "permanent");
    assert_eq!(boom["payload"]["will_retry"], false);
    let r = h
        .get(&format!("/tasker/tasks/{failed}/events?type=step.failed"))
        .await;
    assert_eq!(types(&r.json["events"]), ["step.failed"]);

    // Retry the task as an operator: the history shows it.
    let r = h
        .post(&format!("/tasker/tasks/{failed}/retry"), json!({}))
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    let r = h.get(&format!("/tasker/tasks/{failed}/transitions")).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    let tr = r.json["transitions"].as_array().unwrap();
    let task_rows: Vec<(&Value, &Value)> = tr
        .iter()
        .filter(|t| t["step_id"].is_null())
        .map(|t| (&t["from_state"], &t["to_state"]))
        .collect();
    assert_eq!(
        task_rows,
        [
            (&Value::Null, &json!("pending")),
            (&json!("pending"), &json!("in_progress")),
            (&json!("in_progress"), &json!("error")),
            (&json!("error"), &json!("pending")),
        ]
    );
    let boom_rows: Vec<&Value> = tr.iter().filter(|t| t["step_name"] == "boom").collect();
    // A step's history starts with its first change.
    assert_eq!(boom_rows.first().unwrap()["from_state"], "pending");
    assert!(
        boom_rows
            .iter()
            .any(|t| t["to_state"] == "error" && t["metadata"]["error"]["code"] == "BOOM"),
        "{boom_rows:?}"
    );
    let times: Vec<&str> = tr
        .iter()
        .map(|t| t["created_at"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    let r = h
        .get(&format!("/tasker/tasks/{failed}/events?type=task.*"))
        .await;
    assert_eq!(
        types(&r.json["events"]).last().unwrap(),
        "task.retry_requested"
    );

    // Unknown tasks and bad ids.
    let nobody = Uuid::now_v7();
    h.get(&format!("/tasker/tasks/{nobody}/events"))
        .await
        .assert_error(404, "not_found");
    h.get(&format!("/tasker/tasks/{nobody}/transitions"))
        .await
        .assert_error(404, "not_found");
    h.get("/tasker/tasks/nope/transitions")
        .await
        .assert_error(400, "invalid_parameter");
}

async fn external_workers_emit_custom_events_and_results_are_masked(db: Db) {
    let h = Harness::new(db).await;
    h.tasker
        .register_templates(vec![parse_template("<ext>", EXT, None).unwrap()], false)
        .unwrap();
    let r = h
        .post("/tasker/tasks", json!({"name": "ext", "namespace": "w"}))
        .await;
    let task: Uuid = r.json["task"]["task_id"].as_str().unwrap().parse().unwrap();
    let r = h
        .post(
            "/tasker/workers/claim",
            json!({"worker_id": "py-1", "handler_kinds": ["external"], "wait_seconds": 0}),
        )
        .await;
    let step = r.json["steps"][0]["step_id"].as_str().unwrap().to_string();
    let token = r.json["steps"][0]["lease_token"].clone();

    let r = h
        .post(
            &format!("/tasker/steps/{step}/events"),
            json!({"lease_token": token, "name": "custom.progress", "payload": {"percent": 40, "api_token": "s3cret"}}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.text);
    assert_eq!(r.json["status"], "accepted");
    assert_eq!(r.json["name"], "custom.progress");

    // Bad names, payloads, leases and steps.
    for (body, status, code, field) in [
        (
            json!({"lease_token": token, "name": "task.mine"}),
            400,
            "invalid_field",
            "name",
        ),
        (
            json!({"lease_token": token, "name": "nodot"}),
            400,
            "invalid_field",
            "name",
        ),
        (
            json!({"lease_token": token, "name": "custom.x", "payload": {"big": "x".repeat(70_000)}}),
            400,
            "invalid_field",
            "payload",
        ),
        (json!({"lease_token": token}), 400, "invalid_body", ""),
        (
            json!({"lease_token": Uuid::new_v4(), "name": "custom.x"}),
            409,
            "lease_lost",
            "",
        ),
    ] {
        let r = h
            .post(&format!("/tasker/steps/{step}/events"), body.clone())
            .await;
        r.assert_error(status, code);
        if !field.is_empty() {
            assert_eq!(r.field(), field, "{body}: {}", r.text);
        }
    }
    h.post(
        &format!("/tasker/steps/{}/events", Uuid::now_v7()),
        json!({"lease_token": token, "name": "custom.x"}),
    )
    .await
    .assert_error(404, "not_found");

    let r = h
        .post(
            &format!("/tasker/steps/{step}/complete"),
            json!({"lease_token": token, "results": {"password": "hunter2", "rows": 3}}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);

    let r = h.get(&format!("/tasker/tasks/{task}/events")).await;
    let events = r.json["events"].as_array().unwrap();
    let t = types(&r.json["events"]);
    let custom = t.iter().position(|t| t == "custom.progress").unwrap();
    let done = t.iter().position(|t| t == "step.completed").unwrap();
    assert!(custom < done, "{t:?}");
    assert_eq!(events[custom]["step_id"], json!(step));
    assert_eq!(
        events[custom]["payload"],
        json!({"percent": 40, "api_token": "[FILTERED]"})
    );
    assert_eq!(
        events[done]["payload"]["results"],
        json!({"password": "[FILTERED]", "rows": 3})
    );
    assert_eq!(events[done]["payload"]["worker"], "py-1");
    // The store keeps what the worker sent (masking is on the way out).
    let s = h.tasker.step(step.parse().unwrap()).await.unwrap();
    assert_eq!(s.results.unwrap()["password"], "hunter2");
    assert_eq!(t.last().unwrap(), "task.completed");
}
