//! The task list's correlation-id filter, over REST
//! (`GET /tasker/tasks?correlation_id=`) and GraphQL
//! (`tasks(filter: {correlationId})`), on both stores: an exact match that
//! combines with the other filters, and a clear 400 for a malformed id.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{Db, Harness, Resp};
use serde_json::json;

fn ids(r: &Resp) -> Vec<String> {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut v: Vec<String> = r.json["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

async fn create(h: &Harness, order: i64, correlation_id: &str) -> String {
    let r = h
        .post(
            "/tasker/tasks",
            json!({"name": "checkout", "namespace": "shop", "context": {"order_id": order},
                   "correlation_id": correlation_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json["task"]["task_id"].as_str().unwrap().to_string()
}

async fn rest_and_graphql_filter_by_correlation_id(db: Db) {
    let h = Harness::new(db).await;
    let a = create(&h, 1, "order-42").await;
    let _b = create(&h, 2, "order-421").await;
    let c = create(&h, 3, "order-42").await;
    let _d = create(&h, 4, "ORDER-42").await;
    let mut both = vec![a.clone(), c.clone()];
    both.sort();

    let r = h
        .get("/tasker/tasks?correlation_id=order-42&count=exact")
        .await;
    assert_eq!(ids(&r), both, "exact, case-sensitive");
    assert_eq!(r.json["pagination"]["total"], 2, "{}", r.text);
    assert!(
        ids(&h.get("/tasker/tasks?correlation_id=order-4").await).is_empty(),
        "no prefix match"
    );
    // Combined with another filter.
    assert_eq!(
        ids(&h
            .get("/tasker/tasks?correlation_id=order-42&namespace=shop&limit=1&sort_order=asc")
            .await),
        vec![a.clone()]
    );
    // Malformed ids: 400 naming the parameter.
    for bad in ["", "a%20b", "%3Cscript%3E"] {
        let r = h.get(&format!("/tasker/tasks?correlation_id={bad}")).await;
        r.assert_error(400, "invalid_parameter");
        assert_eq!(r.field(), "correlation_id", "{bad}: {}", r.text);
    }

    // GraphQL: the same filter.
    let r = h
        .post(
            "/tasker/graphql",
            json!({"query": "query($c: String) { tasks(filter: {correlationId: $c}) { totalCount nodes { id correlationId } } }",
                   "variables": {"c": "order-42"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let t = &r.json["data"]["tasks"];
    assert_eq!(t["totalCount"], 2, "{}", r.text);
    let mut got: Vec<String> = t["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            assert_eq!(n["correlationId"], "order-42");
            n["id"].as_str().unwrap().to_string()
        })
        .collect();
    got.sort();
    assert_eq!(got, both);
}

on_both_backends!(rest_and_graphql_filter_by_correlation_id);
