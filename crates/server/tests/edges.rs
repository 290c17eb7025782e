//! Values and headers at the edge, on SQLite and PostgreSQL: a NUL character
//! in any user string is a 400 naming the field on both stores (PostgreSQL
//! cannot store it; it used to be a 500 there), and a malformed
//! `X-Request-ID` is replaced, never refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{Db, Harness};
use serde_json::{Value, json};
use tasker_core::template::parse_template;

on_both_backends!(
    nul_characters_are_refused_naming_the_field,
    malformed_request_ids_are_replaced
);

const EXT: &str = "name: ext\nnamespace: w\nversion: 1.0.0\nstep_templates:\n  - name: remote\n    handler: { kind: external }\n  - name: after\n    depends_on_step: remote\n    handler: { kind: noop }\n";

const NUL: &str = "a\u{0}b";

async fn nul_characters_are_refused_naming_the_field(db: Db) {
    let h = Harness::new(db).await;
    h.tasker
        .register_templates(vec![parse_template("<ext>", EXT, None).unwrap()], false)
        .unwrap();
    let task = h.checkout(1).await;
    let validate = h.step_id(task, "validate").await;
    // A claimed external step, for complete and fail.
    let r = h
        .post("/tasker/tasks", json!({"name": "ext", "namespace": "w"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = h
        .post(
            "/tasker/workers/claim",
            json!({"worker_id": "w1", "handler_kinds": ["external"], "wait_seconds": 0}),
        )
        .await;
    let claimed = &r.json["steps"][0];
    let (sid, token) = (
        claimed["step_id"].as_str().unwrap().to_string(),
        claimed["lease_token"].as_str().unwrap().to_string(),
    );
    let create = |extra: Value| {
        let mut body = json!({"name": "checkout", "namespace": "shop", "context": {"order_id": 2}});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let claim = |extra: Value| {
        let mut body = json!({"worker_id": "w2", "handler_kinds": ["external"], "wait_seconds": 0});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let tasks = "/tasker/tasks".to_string();
    let task_uri = format!("/tasker/tasks/{task}");
    let step_uri = format!("/tasker/tasks/{task}/steps/{validate}");
    let cases: Vec<(Method, String, Option<Value>, &str)> = vec![
        (
            Method::POST,
            tasks.clone(),
            Some(create(json!({"reason": NUL}))),
            "reason",
        ),
        (
            Method::POST,
            tasks.clone(),
            Some(create(json!({"initiator": NUL}))),
            "initiator",
        ),
        (
            Method::POST,
            tasks.clone(),
            Some(create(json!({"source_system": NUL}))),
            "source_system",
        ),
        (
            Method::POST,
            tasks.clone(),
            Some(create(json!({"tags": ["ok", NUL]}))),
            "tags[1]",
        ),
        (
            Method::POST,
            tasks.clone(),
            Some(create(json!({"context": {"order_id": 3, "note": NUL}}))),
            "context.note",
        ),
        (
            Method::POST,
            tasks.clone(),
            Some(create(
                json!({"context": {"order_id": 3, "deep": [{"x": NUL}]}}),
            )),
            "context.deep[0].x",
        ),
        (
            Method::POST,
            tasks.clone(),
            Some(create(json!({"context": {"order_id": 3, NUL: 1}}))),
            "context.a\\u0000b",
        ),
        (
            Method::POST,
            tasks.clone(),
            Some(json!({"task": create(json!({"reason": NUL}))})),
            "task.reason",
        ),
        (
            Method::PATCH,
            task_uri.clone(),
            Some(json!({"reason": NUL})),
            "reason",
        ),
        (
            Method::PATCH,
            task_uri.clone(),
            Some(json!({"tags": [NUL]})),
            "tags[0]",
        ),
        (
            Method::PATCH,
            step_uri.clone(),
            Some(json!({"inputs": {"k": NUL}})),
            "inputs.k",
        ),
        (
            Method::POST,
            format!("{step_uri}/resolve"),
            Some(json!({"results": {"k": [NUL]}})),
            "results.k[0]",
        ),
        (
            Method::POST,
            format!("/tasker/steps/{sid}/complete"),
            Some(json!({"lease_token": token, "results": {"k": NUL}})),
            "results.k",
        ),
        (
            Method::POST,
            format!("/tasker/steps/{sid}/complete"),
            Some(json!({"lease_token": token, "results": NUL})),
            "results",
        ),
        (
            Method::POST,
            format!("/tasker/steps/{sid}/fail"),
            Some(json!({"lease_token": token, "message": NUL})),
            "message",
        ),
        (
            Method::POST,
            format!("/tasker/steps/{sid}/fail"),
            Some(json!({"lease_token": token, "message": "m", "code": NUL})),
            "code",
        ),
        (
            Method::POST,
            "/tasker/workers/claim".into(),
            Some(claim(json!({"worker_id": NUL}))),
            "worker_id",
        ),
        (
            Method::POST,
            "/tasker/workers/claim".into(),
            Some(claim(json!({"namespaces": [NUL]}))),
            "namespaces[0]",
        ),
        (
            Method::POST,
            "/tasker/workers/claim".into(),
            Some(claim(json!({"handler_kinds": [NUL]}))),
            "handler_kinds[0]",
        ),
        (Method::GET, "/tasker/tasks?name=a%00b".into(), None, "name"),
        (
            Method::GET,
            "/tasker/tasks?namespace=%00".into(),
            None,
            "namespace",
        ),
    ];
    for (method, uri, body, field) in cases {
        let r = h.call(method.clone(), &uri, body).await;
        assert_eq!(
            r.status.as_u16(),
            400,
            "{method} {uri} ({field}): {}",
            r.text
        );
        assert!(
            matches!(r.code(), "invalid_field" | "invalid_parameter"),
            "{method} {uri}: {}",
            r.text
        );
        assert_eq!(r.field(), field, "{method} {uri}: {}", r.text);
        assert!(
            r.json["error"]["message"].as_str().unwrap().contains("NUL"),
            "{}",
            r.text
        );
    }
    // Nothing was stored or changed by the refused requests.
    let r = h.get("/tasker/tasks?limit=100&count=exact").await;
    assert_eq!(r.json["pagination"]["total"], 2, "{}", r.text);
    let r = h
        .get(&format!("/tasker/tasks/{task}/steps/{validate}"))
        .await;
    assert_eq!(r.json["step"]["status"], "pending");
    // The claimed step still holds its lease: complete it for real.
    let r = h
        .post(
            &format!("/tasker/steps/{sid}/complete"),
            json!({"lease_token": token, "results": {"k": "fine"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

async fn malformed_request_ids_are_replaced(db: Db) {
    let h = Harness::new(db).await;
    for path in ["/tasker/health/live", "/tasker/tasks", "/tasker/handlers"] {
        for bad in ["has spaces", "x".repeat(200).as_str(), "é"] {
            let req = Request::get(path)
                .header("x-request-id", bad.as_bytes())
                .body(Body::empty())
                .unwrap();
            let r = h.request(req).await;
            assert!(
                r.status.is_success(),
                "{path} with X-Request-ID {bad:?}: {}",
                r.text
            );
            let id = r.headers["x-request-id"].to_str().unwrap();
            assert!(tasker_server::correlation::valid(id) && id != bad, "{id}");
            // The correlation id follows the fresh request id.
            assert_eq!(r.headers["x-correlation-id"].to_str().unwrap(), id);
        }
    }
    // A good one is kept.
    let req = Request::get("/tasker/health/live")
        .header("x-request-id", "probe-1")
        .body(Body::empty())
        .unwrap();
    let r = h.request(req).await;
    assert_eq!(r.headers["x-request-id"], "probe-1");
    // A probe never fails on a malformed correlation id either.
    let req = Request::get("/tasker/health/live")
        .header("x-correlation-id", "has spaces")
        .body(Body::empty())
        .unwrap();
    let r = h.request(req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Elsewhere it is refused (it would be stored on the task), and that
    // answer carries a request id too.
    let req = Request::get("/tasker/tasks")
        .header("x-correlation-id", "has spaces")
        .body(Body::empty())
        .unwrap();
    let r = h.request(req).await;
    r.assert_error(400, "invalid_header");
    assert!(r.headers.contains_key("x-request-id"));
}
