//! Task annotations and the tag filter, over REST and GraphQL, on both
//! stores: writing (rules, 404), reading with the task, filtering lists.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{Db, Harness, Resp};
use serde_json::{Value, json};

async fn gql(h: &Harness, query: &str, variables: Value) -> Resp {
    h.post(
        "/tasker/graphql",
        json!({"query": query, "variables": variables}),
    )
    .await
}

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

async fn rest_annotations_round_trip_and_filter(db: Db) {
    let h = Harness::new(db).await;
    let (a, b) = (h.checkout(1).await, h.checkout(2).await);
    let url = format!("/tasker/tasks/{a}/annotations");
    let r = h
        .post(
            &url,
            json!({"type": "escalation", "content": {"ticket": "T-1", "level": 2}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["annotation"]["type"], "escalation");
    assert_eq!(r.json["annotation"]["task_id"], a.to_string());
    // The envelope form is accepted too.
    let r = h
        .post(
            &url,
            json!({"annotation": {"type": "audit", "content": {"ok": true}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // Returned with the task, oldest first.
    let t = h.get(&format!("/tasker/tasks/{a}")).await;
    let types: Vec<&str> = t.json["task"]["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["escalation", "audit"]);
    assert_eq!(
        t.json["task"]["annotations"][0]["content"],
        json!({"ticket": "T-1", "level": 2})
    );
    let t = h.get(&format!("/tasker/tasks/{b}")).await;
    assert_eq!(t.json["task"]["annotations"], json!([]));

    // Bad input names the field; an unknown task is a 404.
    h.post(&url, json!({"type": "no spaces", "content": {}}))
        .await
        .assert_error(400, "invalid_field");
    assert_eq!(
        h.post(&url, json!({"type": "no spaces", "content": {}}))
            .await
            .field(),
        "type"
    );
    let r = h.post(&url, json!({"type": "audit", "content": [1]})).await;
    r.assert_error(400, "invalid_field");
    assert_eq!(r.field(), "content");
    let big = "x".repeat(17 * 1024);
    let r = h
        .post(&url, json!({"type": "audit", "content": {"big": big}}))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.field()),
        (400, "content"),
        "{}",
        r.text
    );
    h.post(
        &format!("/tasker/tasks/{}/annotations", uuid::Uuid::now_v7()),
        json!({"type": "audit", "content": {}}),
    )
    .await
    .assert_error(404, "not_found");

    // List filters.
    let mut only_a = vec![a.to_string()];
    only_a.sort();
    assert_eq!(
        ids(&h.get("/tasker/tasks?annotation_type=escalation").await),
        only_a
    );
    let q = "/tasker/tasks?annotation_type=escalation&annotation_contains=%7B%22ticket%22%3A%22T-1%22%7D";
    assert_eq!(ids(&h.get(q).await), only_a);
    let q = "/tasker/tasks?annotation_type=escalation&annotation_contains=%7B%22ticket%22%3A%22T-2%22%7D";
    assert!(ids(&h.get(q).await).is_empty());
    let r = h
        .get("/tasker/tasks?annotation_type=escalation&annotation_contains=nope")
        .await;
    r.assert_error(400, "invalid_parameter");
    assert_eq!(r.field(), "annotation_contains");
    let r = h.get("/tasker/tasks?annotation_type=a%20b").await;
    assert_eq!(r.field(), "annotation_type", "{}", r.text);

    // Tags: every tag must be carried.
    h.patch(
        &format!("/tasker/tasks/{b}"),
        json!({"tags": ["vip", "eu"]}),
    )
    .await;
    h.patch(&format!("/tasker/tasks/{a}"), json!({"tags": ["vip"]}))
        .await;
    let mut both = vec![a.to_string(), b.to_string()];
    both.sort();
    assert_eq!(ids(&h.get("/tasker/tasks?tag=vip").await), both);
    assert_eq!(
        ids(&h.get("/tasker/tasks?tag=vip,eu").await),
        vec![b.to_string()]
    );
    let r = h.get("/tasker/tasks?tag=vip,,eu").await;
    assert_eq!((r.status.as_u16(), r.field()), (400, "tag"), "{}", r.text);
}

async fn graphql_annotate_and_filter(db: Db) {
    let h = Harness::new(db).await;
    let (a, b) = (h.checkout(1).await, h.checkout(2).await);
    let m = r#"mutation($id: UUID!, $i: AnnotateTaskInput!) { annotateTask(id: $id, input: $i) {
        task { id annotations { type content createdBy } } errors { code field } } }"#;
    let r = gql(
        &h,
        m,
        json!({"id": a, "i": {"type": "escalation", "content": {"ticket": "T-1"}}}),
    )
    .await;
    let p = &r.json["data"]["annotateTask"];
    assert_eq!(p["errors"], json!([]), "{}", r.text);
    assert_eq!(
        p["task"]["annotations"],
        json!([{"type": "escalation", "content": {"ticket": "T-1"}, "createdBy": null}])
    );
    // Typed errors with REST's codes and fields.
    let r = gql(&h, m, json!({"id": a, "i": {"type": "", "content": {}}})).await;
    assert_eq!(
        r.json["data"]["annotateTask"]["errors"],
        json!([{"code": "invalid_field", "field": "type"}]),
        "{}",
        r.text
    );
    let r = gql(&h, m, json!({"id": a, "i": {"type": "x", "content": 3}})).await;
    assert_eq!(
        r.json["data"]["annotateTask"]["errors"][0]["field"],
        "content"
    );
    let r = gql(
        &h,
        m,
        json!({"id": uuid::Uuid::now_v7(), "i": {"type": "x", "content": {}}}),
    )
    .await;
    assert_eq!(
        r.json["data"]["annotateTask"],
        json!({"task": null, "errors": [{"code": "not_found", "field": null}]}),
        "{}",
        r.text
    );

    // Filters: annotation and tags.
    h.patch(&format!("/tasker/tasks/{b}"), json!({"tags": ["vip"]}))
        .await;
    let q = r#"query($a: AnnotationFilterInput, $f: TaskFilter) {
        tasks(annotation: $a, filter: $f) { totalCount edges { node { id } } } }"#;
    let found = |r: &Resp| -> Vec<String> {
        assert!(r.json.get("errors").is_none(), "{}", r.text);
        r.json["data"]["tasks"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_string())
            .collect()
    };
    let r = gql(
        &h,
        q,
        json!({"a": {"type": "escalation", "contains": {"ticket": "T-1"}}}),
    )
    .await;
    assert_eq!(found(&r), [a.to_string()]);
    let r = gql(
        &h,
        q,
        json!({"a": {"type": "escalation", "contains": {"ticket": "T-9"}}}),
    )
    .await;
    assert!(found(&r).is_empty());
    let r = gql(&h, q, json!({"f": {"tags": ["vip"]}})).await;
    assert_eq!(found(&r), [b.to_string()]);
    let r = gql(
        &h,
        q,
        json!({"a": {"type": "escalation", "contains": {"k": [1]}}}),
    )
    .await;
    assert_eq!(
        r.json["errors"][0]["extensions"]["field"], "annotation_contains",
        "{}",
        r.text
    );
}

on_both_backends!(
    rest_annotations_round_trip_and_filter,
    graphql_annotate_and_filter
);
