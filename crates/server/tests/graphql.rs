//! The GraphQL API on both stores: queries, mutations with typed errors,
//! subscriptions (current state first, then changes), limits and bad input,
//! and parity with REST (same request, same error code).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use async_graphql::futures_util::StreamExt;
use axum::http::StatusCode;
use common::{Db, Harness, Resp};
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

async fn gql(h: &Harness, query: &str, variables: Value) -> Resp {
    h.post(
        "/tasker/graphql",
        json!({"query": query, "variables": variables}),
    )
    .await
}

/// `data`, after checking there are no top-level errors.
fn data(r: &Resp) -> &Value {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.json.get("errors").is_none(), "{}", r.text);
    &r.json["data"]
}

/// The first top-level error's code.
fn error_code(r: &Resp) -> String {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code: {}", r.text))
        .to_string()
}

const TASK: &str = r#"query($id: UUID!) { task(id: $id) {
    id fullName status complete context tags stepsTotal execution pausedAt
    steps { name status parents { name } children { name } siblings { name } }
    dependencyAnalysis
    transitions { fromState toState }
} }"#;

async fn task_query_matches_rest(db: Db) {
    let h = Harness::new(db).await;
    let id = h.checkout(7).await;
    let r = gql(&h, TASK, json!({"id": id})).await;
    let t = &data(&r)["task"];
    assert_eq!(t["fullName"], "shop.checkout@1.0.0");
    assert_eq!(t["status"], "PENDING");
    assert_eq!(t["pausedAt"], Value::Null);
    assert_eq!(t["context"], json!({"order_id": 7}));
    let names: Vec<&str> = t["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["validate", "charge", "reserve", "ship"]);
    assert_eq!(
        t["steps"][3]["parents"],
        json!([{"name": "charge"}, {"name": "reserve"}])
    );
    assert_eq!(
        t["steps"][0]["children"],
        json!([{"name": "charge"}, {"name": "reserve"}])
    );
    assert_eq!(t["steps"][1]["siblings"], json!([{"name": "reserve"}]));
    // The same analysis and execution context as REST's.
    let rest = h
        .get(&format!("/tasker/tasks/{id}?include_dependencies=true"))
        .await;
    let mut a = t["dependencyAnalysis"].clone();
    let mut b = rest.json["task"]["dependency_analysis"].clone();
    for v in [&mut a, &mut b] {
        v.as_object_mut().unwrap().remove("analysis_timestamp");
    }
    assert_eq!(a, b);
    assert_eq!(t["execution"], rest.json["task"]["execution"]);
    assert!(!t["transitions"].as_array().unwrap().is_empty());
    // Unknown id: null, no error.
    let r = gql(&h, TASK, json!({"id": Uuid::now_v7()})).await;
    assert_eq!(data(&r)["task"], Value::Null);
}

async fn tasks_connection_pages(db: Db) {
    let h = Harness::new(db).await;
    let mut ids = Vec::new();
    for i in 1..=5 {
        ids.push(h.checkout(i).await);
    }
    let q = r#"query($after: String) { tasks(first: 2, after: $after, filter: {namespace: "shop"}) {
        totalCount pageInfo { hasNextPage hasPreviousPage endCursor }
        edges { cursor node { id } } } }"#;
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let r = gql(&h, q, json!({"after": after})).await;
        let c = &data(&r)["tasks"];
        assert_eq!(c["totalCount"], 5);
        for e in c["edges"].as_array().unwrap() {
            seen.push(e["node"]["id"].as_str().unwrap().parse::<Uuid>().unwrap());
        }
        if !c["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = c["pageInfo"]["endCursor"].clone();
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, every task once");
    // Filters: status, and nothing in another namespace.
    let r = gql(
        &h,
        r#"{ tasks(filter: {status: COMPLETE}) { totalCount } other: tasks(filter: {namespace: "ops"}) { totalCount } }"#,
        json!({}),
    )
    .await;
    assert_eq!(data(&r)["tasks"]["totalCount"], 0);
    assert_eq!(data(&r)["other"]["totalCount"], 0);
    // Page size bounds and bad cursors are typed errors.
    let r = gql(&h, "{ tasks(first: 1000) { totalCount } }", json!({})).await;
    assert_eq!(error_code(&r), "invalid_parameter");
    assert_eq!(r.json["errors"][0]["extensions"]["field"], "first");
    let r = gql(&h, r#"{ tasks(after: "zzz") { totalCount } }"#, json!({})).await;
    assert_eq!(error_code(&r), "invalid_parameter");
}

async fn step_and_handlers(db: Db) {
    let h = Harness::new(db).await;
    let id = h.checkout(1).await;
    let step = h.step_id(id, "ship").await;
    let query = "query($id: UUID!) { step(id: $id) { name taskId parents { name } transitions { fromState toState } } }";
    let r = gql(&h, query, json!({"id": step})).await;
    // A step's history starts with its first change, not its creation.
    assert_eq!(
        data(&r)["step"],
        json!({"name": "ship", "taskId": id, "parents": [{"name": "charge"}, {"name": "reserve"}],
               "transitions": []})
    );
    let r = gql(
        &h,
        r#"mutation($id: UUID!) { cancelStep(id: $id) { step { status } errors { code } } }"#,
        json!({"id": step}),
    )
    .await;
    assert_eq!(data(&r)["cancelStep"]["step"]["status"], "CANCELLED");
    let r = gql(&h, query, json!({"id": step})).await;
    assert_eq!(
        data(&r)["step"]["transitions"],
        json!([{"fromState": "pending", "toState": "cancelled"}])
    );
    let r = gql(
        &h,
        "query($id: UUID!) { step(id: $id) { name } }",
        json!({"id": Uuid::now_v7()}),
    )
    .await;
    assert_eq!(data(&r)["step"], Value::Null);
    let r = gql(
        &h,
        r#"{ handlers(namespace: "ops") { name versions latestVersion }
            handler(namespace: "shop", name: "checkout") { fullName available stepTemplates dependencyGraph }
            health { status database } }"#,
        json!({}),
    )
    .await;
    let d = data(&r);
    let report = d["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "report")
        .unwrap();
    assert_eq!(report["latestVersion"], "0.10.0");
    assert_eq!(d["handler"]["fullName"], "shop.checkout@1.0.0");
    assert_eq!(d["handler"]["stepTemplates"].as_array().unwrap().len(), 4);
    let rest = h.get("/tasker/handlers/shop/checkout").await;
    assert_eq!(
        d["handler"]["dependencyGraph"],
        rest.json["handler"]["dependency_graph"]
    );
    assert_eq!(d["health"], json!({"status": "ok", "database": true}));
    // Unknown template version: the same code as REST.
    let r = gql(
        &h,
        r#"{ handler(namespace: "ops", name: "report", version: "9.9.9") { name } }"#,
        json!({}),
    )
    .await;
    assert_eq!(error_code(&r), "version_not_found");
}

async fn mutations_change_and_answer(db: Db) {
    let h = Harness::new(db).await;
    let r = gql(
        &h,
        r#"mutation { createTask(input: {name: "checkout", namespace: "shop", context: {order_id: 3}, tags: ["a"]}) {
            task { id status tags } errors { code } } }"#,
        json!({}),
    )
    .await;
    let p = &data(&r)["createTask"];
    assert_eq!(p["errors"], json!([]));
    let id: Uuid = p["task"]["id"].as_str().unwrap().parse().unwrap();
    let r = gql(
        &h,
        r#"mutation($id: UUID!) { updateTask(id: $id, input: {reason: "why", tags: ["b"]}) { task { reason tags } errors { code } } }"#,
        json!({"id": id}),
    )
    .await;
    assert_eq!(
        data(&r)["updateTask"],
        json!({"task": {"reason": "why", "tags": ["b"]}, "errors": []})
    );
    let step = h.step_id(id, "validate").await;
    let r = gql(
        &h,
        r#"mutation($id: UUID!) { updateStep(id: $id, input: {retryLimit: 7}) { step { retryLimit } errors { code } } }"#,
        json!({"id": step}),
    )
    .await;
    assert_eq!(data(&r)["updateStep"]["step"]["retryLimit"], 7);
    let r = gql(
        &h,
        r#"mutation($id: UUID!) { resolveStep(id: $id, results: {ok: true}) { step { status results } errors { code } } }"#,
        json!({"id": step}),
    )
    .await;
    assert_eq!(
        data(&r)["resolveStep"]["step"],
        json!({"status": "RESOLVED_MANUALLY", "results": {"ok": true}})
    );
    let ship = h.step_id(id, "ship").await;
    let r = gql(
        &h,
        r#"mutation($id: UUID!) { cancelStep(id: $id) { step { status } errors { code } } }"#,
        json!({"id": ship}),
    )
    .await;
    assert_eq!(data(&r)["cancelStep"]["step"]["status"], "CANCELLED");
    let r = gql(
        &h,
        r#"mutation($id: UUID!) { cancelTask(id: $id) { task { status } errors { code } } }"#,
        json!({"id": id}),
    )
    .await;
    assert_eq!(data(&r)["cancelTask"]["task"]["status"], "CANCELLED");
    // Retry a failed task, and a failed step.
    let failed = h.failed_task().await;
    let boom = h.step_id(failed, "boom").await;
    let r = gql(
        &h,
        r#"mutation($id: UUID!) { retryStep(id: $id) { step { status attempts } errors { code } } }"#,
        json!({"id": boom}),
    )
    .await;
    assert_eq!(data(&r)["retryStep"]["step"]["status"], "PENDING");
    let failed2 = h.failed_task().await;
    let r = gql(
        &h,
        r#"mutation($id: UUID!) { retryTask(id: $id) { task { status } errors { code } } }"#,
        json!({"id": failed2}),
    )
    .await;
    assert_eq!(data(&r)["retryTask"]["task"]["status"], "PENDING");
}

/// `Task.events` answers REST's `GET /tasker/tasks/{id}/events` page for
/// page (after, limit, type), with the same errors, and over a list of
/// tasks each task gets its own page.
async fn task_events_match_rest(db: Db) {
    let h = Harness::new(db).await;
    let id = h.failed_task().await;
    let other = h.failed_task().await;
    let q = r#"query($id: UUID!, $after: Int, $limit: Int, $type: [String!]) {
        task(id: $id) { events(after: $after, limit: $limit, type: $type) {
            nextAfter events { id type taskId stepId namespace createdAt payload } } } }"#;
    let all = gql(&h, q, json!({"id": id})).await;
    let page = &data(&all)["task"]["events"];
    let rest = h.get(&format!("/tasker/tasks/{id}/events")).await;
    assert_eq!(rest.status, StatusCode::OK, "{}", rest.text);
    let events = page["events"].as_array().unwrap();
    let rest_events = rest.json["events"].as_array().unwrap();
    assert!(events.len() >= 6, "{}", all.text);
    assert_eq!(events.len(), rest_events.len());
    for (g, r) in events.iter().zip(rest_events) {
        assert_eq!(g["id"], r["id"]);
        assert_eq!(g["type"], r["type"]);
        assert_eq!(g["taskId"], r["task_id"]);
        assert_eq!(g["stepId"], r["step_id"]);
        assert_eq!(g["namespace"], r["namespace"]);
        assert_eq!(g["payload"], r["payload"]);
        let (a, b): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) = (
            serde_json::from_value(g["createdAt"].clone()).unwrap(),
            serde_json::from_value(r["created_at"].clone()).unwrap(),
        );
        assert_eq!(a, b);
    }
    assert_eq!(page["nextAfter"], rest.json["next_after"]);
    assert!(events.iter().all(|e| e["taskId"] == json!(id)));
    // Paging: two at a time, on from `nextAfter`, gives the same list.
    let mut seen = Vec::new();
    let mut after = json!(null);
    loop {
        let r = gql(&h, q, json!({"id": id, "after": after, "limit": 2})).await;
        let p = &data(&r)["task"]["events"];
        let got = p["events"].as_array().unwrap();
        if got.is_empty() {
            assert_eq!(p["nextAfter"], after);
            break;
        }
        assert!(got.len() <= 2);
        seen.extend(got.iter().map(|e| e["id"].clone()));
        after = p["nextAfter"].clone();
    }
    let ids: Vec<Value> = events.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(seen, ids);
    // Types, as REST's `type`.
    let r = gql(&h, q, json!({"id": id, "type": ["step.*"]})).await;
    let rest = h
        .get(&format!("/tasker/tasks/{id}/events?type=step.*"))
        .await;
    let types = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect()
    };
    let got = types(&data(&r)["task"]["events"]["events"]);
    assert!(got.iter().all(|t| t.starts_with("step.")), "{got:?}");
    assert!(got.contains(&"step.failed".to_string()), "{got:?}");
    assert_eq!(got, types(&rest.json["events"]));
    // Bad arguments: the same codes and fields as REST's.
    for (vars, rest_query, field) in [
        (json!({"limit": 0}), "limit=0", "limit"),
        (json!({"limit": 1001}), "limit=1001", "limit"),
        (json!({"after": -1}), "after=-1", "after"),
        (json!({"type": ["no spaces"]}), "type=no%20spaces", "type"),
    ] {
        let mut v = vars.clone();
        v["id"] = json!(id);
        let r = gql(&h, q, v).await;
        assert_eq!(error_code(&r), "invalid_parameter", "{vars}: {}", r.text);
        assert_eq!(r.json["errors"][0]["extensions"]["field"], field);
        let rest = h
            .get(&format!("/tasker/tasks/{id}/events?{rest_query}"))
            .await;
        assert_eq!(rest.code(), "invalid_parameter", "{}", rest.text);
        assert_eq!(
            r.json["errors"][0]["message"],
            rest.json["error"]["message"]
        );
    }
    // Over a list: each task its own page, under aliases with their own
    // arguments.
    let r = gql(
        &h,
        r#"{ tasks(filter: {namespace: "ops"}) { edges { node { id
            all: events { events { taskId } }
            last: events(type: ["task.failed"]) { events { type } } } } } }"#,
        json!({}),
    )
    .await;
    let edges = data(&r)["tasks"]["edges"].as_array().unwrap().clone();
    assert_eq!(edges.len(), 2, "{}", r.text);
    for e in &edges {
        let node = &e["node"];
        assert!(
            [json!(id), json!(other)].contains(&node["id"]),
            "{}",
            r.text
        );
        let mine = node["all"]["events"].as_array().unwrap();
        assert_eq!(mine.len(), events.len());
        assert!(mine.iter().all(|x| x["taskId"] == node["id"]));
        assert_eq!(node["last"]["events"], json!([{"type": "task.failed"}]));
    }
}

/// One operation through both interfaces: the REST request, the GraphQL
/// mutation, and the code both must answer.
struct Case {
    what: &'static str,
    rest: (&'static str, String, Option<Value>),
    graphql: (String, Value),
    code: &'static str,
}

async fn rest_and_graphql_agree(db: Db) {
    let h = Harness::new(db).await;
    let task = h.checkout(1).await;
    let step = h.step_id(task, "validate").await;
    let ghost = Uuid::now_v7();
    let create = |input: Value| {
        (
            "mutation($i: CreateTaskInput!) { createTask(input: $i) { task { id } errors { code message field } } }".to_string(),
            json!({"i": input}),
        )
    };
    let long = "x".repeat(1025);
    let cases = vec![
        Case {
            what: "too many tags",
            rest: ("POST", "/tasker/tasks".into(), Some(json!({"name": "checkout", "namespace": "shop", "context": {"order_id": 1}, "tags": vec!["t"; 65]}))),
            graphql: create(json!({"name": "checkout", "namespace": "shop", "context": {"order_id": 1}, "tags": vec!["t"; 65]})),
            code: "invalid_field",
        },
        Case {
            what: "long reason",
            rest: ("POST", "/tasker/tasks".into(), Some(json!({"name": "checkout", "namespace": "shop", "context": {"order_id": 1}, "reason": long}))),
            graphql: create(json!({"name": "checkout", "namespace": "shop", "context": {"order_id": 1}, "reason": long})),
            code: "invalid_field",
        },
        Case {
            what: "bad correlation id",
            rest: ("POST", "/tasker/tasks".into(), Some(json!({"name": "checkout", "namespace": "shop", "context": {"order_id": 1}, "correlation_id": "a b"}))),
            graphql: create(json!({"name": "checkout", "namespace": "shop", "context": {"order_id": 1}, "correlationId": "a b"})),
            code: "invalid_field",
        },
        Case {
            what: "unknown namespace",
            rest: ("POST", "/tasker/tasks".into(), Some(json!({"name": "checkout", "namespace": "nope"}))),
            graphql: create(json!({"name": "checkout", "namespace": "nope"})),
            code: "unknown_template",
        },
        Case {
            what: "unknown version",
            rest: ("POST", "/tasker/tasks".into(), Some(json!({"name": "report", "namespace": "ops", "version": "5.0.0"}))),
            graphql: create(json!({"name": "report", "namespace": "ops", "version": "5.0.0"})),
            code: "unknown_template",
        },
        Case {
            what: "context violates the schema",
            rest: ("POST", "/tasker/tasks".into(), Some(json!({"name": "checkout", "namespace": "shop", "context": {"order_id": 0}}))),
            graphql: create(json!({"name": "checkout", "namespace": "shop", "context": {"order_id": 0}})),
            code: "context_schema_violation",
        },
        Case {
            what: "empty task update",
            rest: ("PATCH", format!("/tasker/tasks/{task}"), Some(json!({}))),
            graphql: ("mutation($id: UUID!) { updateTask(id: $id, input: {}) { errors { code message field } } }".into(), json!({"id": task})),
            code: "empty_update",
        },
        Case {
            what: "update of an unknown task",
            rest: ("PATCH", format!("/tasker/tasks/{ghost}"), Some(json!({"reason": "r"}))),
            graphql: ("mutation($id: UUID!) { updateTask(id: $id, input: {reason: \"r\"}) { errors { code message field } } }".into(), json!({"id": ghost})),
            code: "not_found",
        },
        Case {
            what: "retry limit out of range",
            rest: ("PATCH", format!("/tasker/tasks/{task}/steps/{step}"), Some(json!({"retry_limit": 0}))),
            graphql: ("mutation($id: UUID!) { updateStep(id: $id, input: {retryLimit: 0}) { errors { code message field } } }".into(), json!({"id": step})),
            code: "invalid_field",
        },
        Case {
            what: "inputs not an object",
            rest: ("PATCH", format!("/tasker/tasks/{task}/steps/{step}"), Some(json!({"inputs": [1]}))),
            graphql: ("mutation($id: UUID!) { updateStep(id: $id, input: {inputs: [1]}) { errors { code message field } } }".into(), json!({"id": step})),
            code: "invalid_field",
        },
        Case {
            what: "retry of a task not in error",
            rest: ("POST", format!("/tasker/tasks/{task}/retry"), None),
            graphql: ("mutation($id: UUID!) { retryTask(id: $id) { errors { code message field } } }".into(), json!({"id": task})),
            code: "invalid_transition",
        },
        Case {
            what: "retry of a step not in error",
            rest: ("POST", format!("/tasker/tasks/{task}/steps/{step}/retry"), None),
            graphql: ("mutation($id: UUID!) { retryStep(id: $id) { errors { code message field } } }".into(), json!({"id": step})),
            code: "invalid_transition",
        },
        Case {
            what: "cancel of an unknown step",
            rest: ("DELETE", format!("/tasker/tasks/{task}/steps/{ghost}"), None),
            graphql: ("mutation($id: UUID!) { cancelStep(id: $id) { errors { code message field } } }".into(), json!({"id": ghost})),
            code: "not_found",
        },
    ];
    for c in cases {
        let method = axum::http::Method::from_bytes(c.rest.0.as_bytes()).unwrap();
        let rest = h.call(method, &c.rest.1, c.rest.2.clone()).await;
        assert_eq!(rest.code(), c.code, "REST, {}: {}", c.what, rest.text);
        let r = gql(&h, &c.graphql.0, c.graphql.1.clone()).await;
        let payload = data(&r).as_object().unwrap().values().next().unwrap();
        let err = &payload["errors"][0];
        assert_eq!(err["code"], c.code, "GraphQL, {}: {}", c.what, r.text);
        assert_eq!(
            err["message"], rest.json["error"]["message"],
            "same message, {}",
            c.what
        );
        let rest_field = rest.json["error"]["details"]["field"].clone();
        let rest_field = rest_field
            .as_str()
            .map(|f| f.trim_start_matches("task.").to_string());
        assert_eq!(
            err["field"].as_str().map(str::to_string),
            rest_field,
            "same field, {}",
            c.what
        );
    }
    // The list's rules: REST `limit` is GraphQL `first`; the rest is the same.
    let rest = h.get("/tasker/tasks?version=1.x").await;
    let r = gql(
        &h,
        r#"{ tasks(filter: {version: "1.x"}) { totalCount } }"#,
        json!({}),
    )
    .await;
    assert_eq!(rest.code(), "invalid_parameter");
    assert_eq!(error_code(&r), rest.code());
    let rest = h
        .get("/tasker/tasks?created_since=2026-01-02T00:00:00Z&created_until=2026-01-01T00:00:00Z")
        .await;
    let r = gql(
        &h,
        r#"{ tasks(filter: {createdSince: "2026-01-02T00:00:00Z", createdUntil: "2026-01-01T00:00:00Z"}) { totalCount } }"#,
        json!({}),
    )
    .await;
    assert_eq!(error_code(&r), rest.code());
    assert_eq!(r.json["errors"][0]["extensions"]["field"], "created_until");
}

async fn bad_input_is_a_graphql_error(db: Db) {
    let h = Harness::new(db).await;
    for (what, query) in [
        ("syntax", "{ task(id: ".to_string()),
        ("unknown field", "{ nope }".to_string()),
        ("wrong type", r#"{ task(id: 12) { id } }"#.to_string()),
        ("bad uuid", r#"{ task(id: "x") { id } }"#.to_string()),
        (
            "depth bomb",
            format!(
                "{{ tasks {{ edges {{ node {{ steps {}{{ name }}{} }} }} }} }}",
                "{ parents ".repeat(30),
                "}".repeat(30)
            ),
        ),
        (
            "alias fan-out",
            format!(
                "{{ {} }}",
                (0..3000)
                    .map(|i| format!("a{i}: tasks(first: 100) {{ totalCount }}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ),
        (
            "fragment cycle",
            "{ tasks { edges { node { ...A } } } } fragment A on Task { id ...B } fragment B on Task { ...A }".to_string(),
        ),
        (
            "deep list nesting",
            format!("{{ task(id: {}1{}) {{ id }} }}", "[".repeat(5000), "]".repeat(5000)),
        ),
        (
            // Just under the 1 MiB body limit: a query of ~40,000 aliased
            // fields is parsed, then refused by the complexity limit.
            "1 MB of aliases",
            format!(
                "{{ {} }}",
                (0..40_000)
                    .map(|i| format!("h{i}: health {{ status }}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ),
        (
            "1 MB string argument",
            format!(
                "{{ handler(namespace: \"{}\", name: \"x\") {{ name }} }}",
                "n".repeat(1_000_000)
            ),
        ),
    ] {
        if what.starts_with("1 MB") {
            assert!(query.len() > 990_000 && query.len() < 1_040_000, "{what}: {}", query.len());
        }
        let r = gql(&h, &query, json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.text);
        assert!(
            r.json["errors"].as_array().is_some_and(|e| !e.is_empty()),
            "{what}: {}",
            r.text
        );
        assert!(r.json["data"].is_null(), "{what}: {}", r.text);
    }
    // Variables of the wrong type: a GraphQL error naming the variable.
    let r = gql(
        &h,
        "query($id: UUID!) { task(id: $id) { id } }",
        json!({"id": 5}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.json["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("UUID"),
        "{}",
        r.text
    );
    // A batch: each request answered on its own, the bad one with errors.
    let r = h
        .post(
            "/tasker/graphql",
            json!([{"query": "{ health { status } }"}, {"query": "{ nope }"}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json[0]["data"]["health"]["status"], "ok", "{}", r.text);
    assert!(r.json[1]["errors"].is_array(), "{}", r.text);
    // A body over the limit: 413 in the GraphQL error shape.
    let huge = format!("{{ health {{ status }} }} #{}", "x".repeat(1024 * 1024));
    let r = h.post("/tasker/graphql", json!({"query": huge})).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_eq!(
        r.json["errors"][0]["extensions"]["code"],
        "payload_too_large"
    );
    // Not JSON: 400 in the same shape.
    let r = h
        .raw(
            axum::http::Method::POST,
            "/tasker/graphql",
            "application/json",
            "{",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json["errors"][0]["extensions"]["code"], "malformed_json");
}

type Updates = async_graphql::futures_util::stream::BoxStream<'static, async_graphql::Response>;

/// The next message of a subscription (10 s at most).
async fn next(s: &mut Updates) -> Value {
    let r = tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("an update within 10 s")
        .expect("the stream goes on");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    r.data.into_json().unwrap()
}

/// Current state first, then each change, straight from the schema's
/// stream (the same resolvers the WebSocket transport runs).
async fn subscriptions_see_changes(db: Db) {
    let h = Harness::new(db).await;
    let id = h.checkout(1).await;
    let schema = h.state.graphql().clone();
    let req = async_graphql::Request::new(
        "subscription($id: UUID!) { taskUpdated(id: $id) { status reason } }",
    )
    .variables(async_graphql::Variables::from_json(json!({"id": id})))
    .data(h.state.clone())
    .data(tasker_auth::Identity::anonymous());
    let mut tasks = schema.execute_stream(req);
    let steps_req = async_graphql::Request::new(
        "subscription($id: UUID!) { stepUpdated(taskId: $id) { name status } }",
    )
    .variables(async_graphql::Variables::from_json(json!({"id": id})))
    .data(h.state.clone())
    .data(tasker_auth::Identity::anonymous());
    let mut steps = schema.execute_stream(steps_req);
    assert_eq!(
        next(&mut tasks).await,
        json!({"taskUpdated": {"status": "PENDING", "reason": "unknown"}})
    );
    for _ in 0..4 {
        assert_eq!(next(&mut steps).await["stepUpdated"]["status"], "PENDING");
    }
    // A change made through REST reaches both.
    let validate = h.step_id(id, "validate").await;
    let r = h
        .post(
            &format!("/tasker/tasks/{id}/steps/{validate}/resolve"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        next(&mut steps).await,
        json!({"stepUpdated": {"name": "validate", "status": "RESOLVED_MANUALLY"}})
    );
    let r = h.delete(&format!("/tasker/tasks/{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The task row may change more than once (step changes update it):
    // read until the cancellation arrives.
    loop {
        let v = next(&mut tasks).await;
        if v["taskUpdated"]["status"] == "CANCELLED" {
            break;
        }
    }

    // `tasks(filter)`: the matching page first, then each matching task
    // that changes; tasks outside the filter (namespace, tags) never come.
    let vip = |order: i64| json!({"name": "checkout", "namespace": "shop", "context": {"order_id": order}, "tags": ["vip", "x"]});
    let r = h.post("/tasker/tasks", vip(2)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let first: Uuid = r.json["task"]["task_id"].as_str().unwrap().parse().unwrap();
    let list_req = async_graphql::Request::new(
        r#"subscription { tasks(filter: {namespace: "shop", tags: ["vip"]}) { id status tags } }"#,
    )
    .data(h.state.clone())
    .data(tasker_auth::Identity::anonymous());
    let mut list = schema.execute_stream(list_req);
    assert_eq!(
        next(&mut list).await,
        json!({"tasks": {"id": first, "status": "PENDING", "tags": ["vip", "x"]}})
    );
    // Not matching: another namespace, no tag.
    let r = h
        .post(
            "/tasker/tasks",
            json!({"name": "report", "namespace": "ops"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    h.checkout(3).await;
    // Matching: a new vip task, then a change of the first one.
    let r = h.post("/tasker/tasks", vip(4)).await;
    let second: Uuid = r.json["task"]["task_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(next(&mut list).await["tasks"]["id"], json!(second));
    let r = h.delete(&format!("/tasker/tasks/{first}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        next(&mut list).await["tasks"],
        json!({"id": first, "status": "CANCELLED", "tags": ["vip", "x"]})
    );
}

on_both_backends!(
    task_query_matches_rest,
    tasks_connection_pages,
    step_and_handlers,
    mutations_change_and_answer,
    task_events_match_rest,
    rest_and_graphql_agree,
    bad_input_is_a_graphql_error,
    subscriptions_see_changes,
);

/// docs/graphql/schema.graphql is the code's schema (`tasker graphql schema`
/// regenerates it).
#[test]
fn the_exported_schema_is_current() {
    let doc = include_str!("../../../docs/graphql/schema.graphql");
    assert!(
        doc == tasker_server::graphql::sdl(),
        "docs/graphql/schema.graphql differs from the code's schema: run `tasker graphql schema > docs/graphql/schema.graphql`"
    );
}

/// Every root field of the schema has a row in the permission table.
#[tokio::test]
async fn every_operation_has_a_permission() {
    let schema = tasker_server::graphql::build_schema(&Default::default());
    let r = schema
        .execute(
            "{ __schema { queryType { fields { name } } mutationType { fields { name } } subscriptionType { fields { name } } } }",
        )
        .await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let v = r.data.into_json().unwrap();
    let mut n = 0;
    for (root, key) in [
        ("Query", "queryType"),
        ("Mutation", "mutationType"),
        ("Subscription", "subscriptionType"),
    ] {
        for f in v["__schema"][key]["fields"].as_array().unwrap() {
            let field = format!("{root}.{}", f["name"].as_str().unwrap());
            assert!(
                tasker_auth::table::graphql_permission(&field).is_some(),
                "{field} has no row in tasker_auth::table::GRAPHQL"
            );
            n += 1;
        }
    }
    assert!(n >= 17, "{n} operations");
}

/// A change committed through another store instance (its own pool and
/// listener, as a second process has) reaches a subscriber of this one via
/// LISTEN/NOTIFY (`announce_changes`), and the latency from commit to
/// delivery is measured (printed; the figure is in docs/PERFORMANCE.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_sees_another_process_change_on_postgres() {
    use tasker_store_postgres::PgOptions;
    let db = tasker_store_postgres::testing::TestDb::create().await;
    let options = || PgOptions {
        clock: tasker_store_postgres::PgClock::Caller,
        announce_changes: true,
        ..PgOptions::default()
    };
    let here: std::sync::Arc<dyn tasker_store::Store> =
        std::sync::Arc::new(db.store_with(options()).await);
    let there: std::sync::Arc<dyn tasker_store::Store> =
        std::sync::Arc::new(db.store_with(options()).await);
    let h = Harness::new(Db {
        store: here,
        guard: common::Guard::Sqlite(tempfile::tempdir().unwrap()),
    })
    .await;
    // The other "process": its own service over its own store.
    let other = Harness::new(Db {
        store: there,
        guard: common::Guard::Sqlite(tempfile::tempdir().unwrap()),
    })
    .await;
    let mut latencies = Vec::new();
    for _ in 0..15 {
        let id = other.checkout(1).await;
        let req = async_graphql::Request::new(
            "subscription($id: UUID!) { stepUpdated(taskId: $id) { name status } }",
        )
        .variables(async_graphql::Variables::from_json(json!({"id": id})))
        .data(h.state.clone())
        .data(tasker_auth::Identity::anonymous());
        let mut steps = h.state.graphql().execute_stream(req);
        for _ in 0..4 {
            next(&mut steps).await;
        }
        let validate = other.step_id(id, "validate").await;
        other
            .tasker
            .resolve_step(validate, json!({}), None)
            .await
            .unwrap();
        let committed = std::time::Instant::now();
        assert_eq!(
            next(&mut steps).await,
            json!({"stepUpdated": {"name": "validate", "status": "RESOLVED_MANUALLY"}})
        );
        latencies.push(committed.elapsed());
    }
    latencies.sort();
    println!(
        "cross-process step change → subscriber: p50 {:?}, max {:?} (n={})",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
        latencies.len()
    );
    drop(db);
}

/// Introspection can be turned off; the depth limit follows its setting.
#[tokio::test]
async fn limits_follow_their_settings() {
    use tasker_server::graphql::{GraphqlSettings, build_schema};
    let closed = build_schema(&GraphqlSettings {
        introspection: false,
        ..GraphqlSettings::default()
    });
    let r = closed.execute("{ __schema { types { name } } }").await;
    // Off: the schema is not revealed (`__schema` is null).
    assert_eq!(r.data.into_json().unwrap(), json!({"__schema": null}));
    let open = build_schema(&GraphqlSettings::default());
    let r = open.execute("{ __schema { queryType { name } } }").await;
    assert_eq!(
        r.data.into_json().unwrap(),
        json!({"__schema": {"queryType": {"name": "Query"}}})
    );
    let shallow = build_schema(&GraphqlSettings {
        max_depth: 2,
        ..GraphqlSettings::default()
    });
    let r = shallow.execute("{ handlers { name } }").await;
    // Depth 2 passes validation (it then needs request data to run).
    assert!(
        !r.errors
            .iter()
            .any(|e| e.message.contains("nested too deep")),
        "{:?}",
        r.errors
    );
    let r = shallow.execute("{ tasks { edges { node { id } } } }").await;
    assert!(
        r.errors
            .iter()
            .any(|e| e.message.contains("nested too deep")),
        "{:?}",
        r.errors
    );
}
