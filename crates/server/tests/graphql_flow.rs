//! Schedules and namespace / template pauses over GraphQL, compared with
//! REST on both stores: the same service calls, the same answers, the same
//! error codes and the same permissions (docs/GRAPHQL.md, docs/FLOW_CONTROL.md).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{Db, Harness, Resp};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::time::Duration;
use tasker_auth::jwt::{JwtSettings, JwtVerifier, KeyMaterial};
use tasker_server::auth::{AuthSettings, JwtKeys};

on_both_backends!(
    schedules_match_rest,
    flow_pauses_match_rest,
    flow_fields_need_the_permissions_of_their_routes,
);

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

const SCHEDULE_FIELDS: &str = "id name namespace template version cron timezone everySeconds \
     catchUp catchUpWindowSeconds context source pausedAt lastTickAt nextFireTimes";

/// A GraphQL schedule in REST's shape (snake_case keys, the same values).
fn as_rest(s: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for (k, v) in s.as_object().unwrap() {
        let mut snake = String::new();
        for c in k.chars() {
            if c.is_ascii_uppercase() {
                snake.push('_');
                snake.push(c.to_ascii_lowercase());
            } else {
                snake.push(c);
            }
        }
        out.insert(snake, v.clone());
    }
    Value::Object(out)
}

/// The REST schedule without its timestamps' formatting differences: both
/// as instants.
fn normalized(mut v: Value) -> Value {
    let obj = v.as_object_mut().unwrap();
    obj.remove("created_at");
    obj.remove("updated_at");
    for key in ["paused_at", "last_tick_at"] {
        if let Some(Value::String(s)) = obj.get(key) {
            let t = chrono::DateTime::parse_from_rfc3339(s).unwrap();
            obj.insert(key.into(), json!(t.timestamp_micros()));
        }
    }
    if let Some(Value::Array(times)) = obj.get("next_fire_times").cloned() {
        let times: Vec<i64> = times
            .iter()
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap())
                    .unwrap()
                    .timestamp_micros()
            })
            .collect();
        obj.insert("next_fire_times".into(), json!(times));
    }
    v
}

async fn schedules_match_rest(db: Db) {
    let h = Harness::new(db).await;
    let create = format!(
        "mutation($input: CreateScheduleInput!) {{ createSchedule(input: $input) {{ schedule {{ {SCHEDULE_FIELDS} }} errors {{ code field }} }} }}"
    );
    let input = json!({
        "name": "nightly", "namespace": "shop", "template": "checkout",
        "cron": "0 2 * * *", "timezone": "Europe/Paris", "catchUp": "all",
        "context": {"order_id": 7}
    });
    let r = gql(&h, &create, json!({"input": input})).await;
    let p = &data(&r)["createSchedule"];
    assert_eq!(p["errors"], json!([]), "{}", r.text);
    assert_eq!(p["schedule"]["source"], "api");
    assert_eq!(p["schedule"]["catchUp"], "all");

    // The same schedule over both.
    let rest = h.get("/tasker/schedules/nightly").await;
    assert_eq!(rest.status, StatusCode::OK, "{}", rest.text);
    let one = format!("query {{ schedule(name: \"nightly\") {{ {SCHEDULE_FIELDS} }} }}");
    let r = gql(&h, &one, json!({})).await;
    assert_eq!(
        normalized(as_rest(&data(&r)["schedule"])),
        normalized(rest.json["schedule"].clone())
    );
    let list = format!("{{ schedules {{ {SCHEDULE_FIELDS} }} }}");
    let r = gql(&h, &list, json!({})).await;
    let rest = h.get("/tasker/schedules").await;
    let g: Vec<Value> = data(&r)["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| normalized(as_rest(s)))
        .collect();
    let b: Vec<Value> = rest.json["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| normalized(s.clone()))
        .collect();
    assert_eq!(g, b);
    let r = gql(&h, "{ schedule(name: \"nope\") { name } }", json!({})).await;
    assert_eq!(data(&r)["schedule"], Value::Null);

    // The same error codes and fields as REST for the same mistakes.
    for (body, gql_input) in [
        (
            json!({"name": "nightly", "namespace": "shop", "template": "checkout", "cron": "0 2 * * *", "context": {"order_id": 7}}),
            json!({"name": "nightly", "namespace": "shop", "template": "checkout", "cron": "0 2 * * *", "context": {"order_id": 7}}),
        ),
        (
            json!({"name": "x", "namespace": "shop", "template": "checkout", "cron": "99 * * * *", "context": {"order_id": 1}}),
            json!({"name": "x", "namespace": "shop", "template": "checkout", "cron": "99 * * * *", "context": {"order_id": 1}}),
        ),
        (
            json!({"name": "x", "namespace": "shop", "template": "checkout", "every_seconds": 60, "timezone": "Nowhere/Else"}),
            json!({"name": "x", "namespace": "shop", "template": "checkout", "everySeconds": 60, "timezone": "Nowhere/Else"}),
        ),
        (
            json!({"name": "x", "namespace": "shop", "template": "checkout", "every_seconds": 60}),
            json!({"name": "x", "namespace": "shop", "template": "checkout", "everySeconds": 60}),
        ),
    ] {
        let rest = h.post("/tasker/schedules", body).await;
        assert!(rest.status.is_client_error(), "{}", rest.text);
        let r = gql(&h, &create, json!({"input": gql_input})).await;
        let e = &data(&r)["createSchedule"]["errors"][0];
        assert_eq!(e["code"].as_str(), Some(rest.code()), "{}", r.text);
        let field = rest.field();
        if !field.is_empty() {
            assert_eq!(e["field"].as_str(), Some(field), "{}", r.text);
        }
    }

    // Pause, trigger, resume, delete: the same answers as REST's.
    let r = gql(
        &h,
        "mutation { pauseSchedule(name: \"nightly\") { schedule { pausedAt nextFireTimes } errors { code } } }",
        json!({}),
    )
    .await;
    let p = &data(&r)["pauseSchedule"];
    assert!(p["schedule"]["pausedAt"].is_string(), "{}", r.text);
    assert_eq!(p["schedule"]["nextFireTimes"], json!([]));
    let rest = h.post("/tasker/schedules/nightly/pause", json!({})).await;
    let r = gql(
        &h,
        "mutation { pauseSchedule(name: \"nightly\") { schedule { name } errors { code } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        data(&r)["pauseSchedule"]["errors"][0]["code"].as_str(),
        Some(rest.code())
    );
    let r = gql(
        &h,
        "mutation { triggerSchedule(name: \"nightly\") { task { status initiator } errors { code } } }",
        json!({}),
    )
    .await;
    let p = &data(&r)["triggerSchedule"];
    assert_eq!(p["task"]["status"], "PENDING", "{}", r.text);
    assert_eq!(p["task"]["initiator"], "schedule:nightly");
    let r = gql(
        &h,
        "mutation { resumeSchedule(name: \"nightly\") { schedule { pausedAt } errors { code } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        data(&r)["resumeSchedule"]["schedule"]["pausedAt"],
        Value::Null
    );
    let rest = h.post("/tasker/schedules/nope/resume", json!({})).await;
    let r = gql(
        &h,
        "mutation { resumeSchedule(name: \"nope\") { schedule { name } errors { code } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        data(&r)["resumeSchedule"]["errors"][0]["code"].as_str(),
        Some(rest.code())
    );
    let r = gql(
        &h,
        "mutation { deleteSchedule(name: \"nightly\") { deleted errors { code } } }",
        json!({}),
    )
    .await;
    assert_eq!(data(&r)["deleteSchedule"]["deleted"], true);
    let rest = h.delete("/tasker/schedules/nightly").await;
    rest.assert_error(404, "not_found");
    let r = gql(
        &h,
        "mutation { deleteSchedule(name: \"nightly\") { deleted errors { code } } }",
        json!({}),
    )
    .await;
    assert_eq!(data(&r)["deleteSchedule"]["deleted"], false);
    assert_eq!(data(&r)["deleteSchedule"]["errors"][0]["code"], "not_found");
}

const PAUSE: &str = "scope namespace name since by reason";

async fn flow_pauses_match_rest(db: Db) {
    let h = Harness::new(db).await;
    let r = gql(
        &h,
        &format!(
            "mutation {{ pauseFlow(namespace: \"shop\", name: \"checkout\", reason: \"PSP outage\") {{ pause {{ {PAUSE} }} errors {{ code }} }} }}"
        ),
        json!({}),
    )
    .await;
    let p = &data(&r)["pauseFlow"];
    assert_eq!(p["errors"], json!([]), "{}", r.text);
    assert_eq!(p["pause"]["scope"], "template");
    assert_eq!(p["pause"]["reason"], "PSP outage");
    // Held like a REST pause: the task created now waits, and REST lists it.
    let held = h.checkout(1).await;
    let rest = h.get(&format!("/tasker/tasks/{held}")).await;
    assert_eq!(
        rest.json["task"]["pause"]["scope"], "template",
        "{}",
        rest.text
    );
    let rest = h.get("/tasker/flow/pauses").await;
    let r = gql(&h, &format!("{{ flowPauses {{ {PAUSE} }} }}"), json!({})).await;
    let g = &data(&r)["flowPauses"];
    let b = &rest.json["pauses"];
    assert_eq!(g.as_array().unwrap().len(), 1);
    for key in ["scope", "namespace", "name", "by", "reason"] {
        assert_eq!(g[0][key], b[0][key], "{key}");
    }
    let (gs, bs) = (
        chrono::DateTime::parse_from_rfc3339(g[0]["since"].as_str().unwrap()).unwrap(),
        chrono::DateTime::parse_from_rfc3339(b[0]["since"].as_str().unwrap()).unwrap(),
    );
    assert_eq!(gs, bs);

    // The same refusals as REST.
    for (body, args) in [
        (
            json!({"namespace": "shop", "name": "checkout"}),
            "namespace: \"shop\", name: \"checkout\"",
        ),
        (
            json!({"namespace": "no spaces"}),
            "namespace: \"no spaces\"",
        ),
    ] {
        let rest = h.post("/tasker/flow/pauses", body).await;
        let r = gql(
            &h,
            &format!(
                "mutation {{ pauseFlow({args}) {{ pause {{ scope }} errors {{ code field }} }} }}"
            ),
            json!({}),
        )
        .await;
        assert_eq!(
            data(&r)["pauseFlow"]["errors"][0]["code"].as_str(),
            Some(rest.code()),
            "{}",
            r.text
        );
    }
    let rest = h.delete("/tasker/flow/pauses/ops").await;
    let r = gql(
        &h,
        "mutation { resumeFlow(namespace: \"ops\") { pause { scope } errors { code } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        data(&r)["resumeFlow"]["errors"][0]["code"].as_str(),
        Some(rest.code())
    );

    // Resuming releases the task.
    let r = gql(
        &h,
        &format!(
            "mutation {{ resumeFlow(namespace: \"shop\", name: \"checkout\") {{ pause {{ {PAUSE} }} errors {{ code }} }} }}"
        ),
        json!({}),
    )
    .await;
    assert_eq!(
        data(&r)["resumeFlow"]["pause"]["scope"],
        "template",
        "{}",
        r.text
    );
    let rest = h.get(&format!("/tasker/tasks/{held}")).await;
    assert!(rest.json["task"]["pause"].is_null(), "{}", rest.text);
    let r = gql(&h, "{ flowPauses { scope } }", json!({})).await;
    assert_eq!(data(&r)["flowPauses"], json!([]));
}

const SECRET: &[u8] = b"server-test-secret-0123456789abcdef";

fn token(h: &Harness, permissions: &[&str]) -> String {
    let now = h.tasker.now().timestamp();
    let claims = json!({
        "sub": "alice", "iss": "test-idp", "aud": "tasker",
        "iat": now, "exp": now + 600, "permissions": permissions,
    });
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

async fn secured(db: Db) -> Harness {
    let h = Harness::new(db).await;
    let verifier = JwtVerifier::new(JwtSettings {
        keys: KeyMaterial::Secret(SECRET),
        algorithm: None,
        leeway_seconds: 30,
        issuer: Some("test-idp"),
        audience: Some("tasker"),
        permissions_claim: "permissions",
        roles_claim: "roles",
        roles: Default::default(),
    })
    .unwrap();
    let state = h.state.clone().with_auth(AuthSettings {
        jwt: Some(JwtKeys::Fixed(verifier)),
        api_keys: true,
        key_cache_ttl: Duration::ZERO,
        status_requires_auth: true,
        docs_require_auth: false,
    });
    h.with_state(state)
}

async fn send(h: &Harness, method: &str, uri: &str, body: Option<Value>, perms: &[&str]) -> Resp {
    let mut b = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(uri)
        .header("authorization", format!("Bearer {}", token(h, perms)));
    let body = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    h.request(b.body(body).unwrap()).await
}

/// Each flow field needs the permission of its REST route, with REST's
/// namespace scoping: a grant scoped to a namespace opens neither the
/// schedules nor the pause list (they span namespaces) but does open
/// resuming that namespace.
async fn flow_fields_need_the_permissions_of_their_routes(db: Db) {
    let h = secured(db).await;
    let gq = |query: &str| json!({"query": query});
    // (GraphQL operation, its REST route, the permission both need)
    let cases: [(&str, &str, &str, Option<Value>, &str); 4] = [
        (
            "{ schedules { name } }",
            "GET",
            "/tasker/schedules",
            None,
            "tasker.schedule:index",
        ),
        (
            "{ flowPauses { scope } }",
            "GET",
            "/tasker/flow/pauses",
            None,
            "tasker.flow:index",
        ),
        (
            "mutation { pauseFlow(namespace: \"shop\") { pause { scope } errors { code } } }",
            "POST",
            "/tasker/flow/pauses",
            Some(json!({"namespace": "shop"})),
            "tasker.flow:pause",
        ),
        (
            "mutation { pauseSchedule(name: \"nope\") { schedule { name } errors { code } } }",
            "POST",
            "/tasker/schedules/nope/pause",
            Some(json!({})),
            "tasker.schedule:pause",
        ),
    ];
    for (query, method, route, body, perm) in cases {
        let scoped = format!("{perm}@shop");
        for (perms, allowed) in [
            (["tasker.task:show"], false),
            ([scoped.as_str()], false),
            ([perm], true),
        ] {
            let rest = send(&h, method, route, body.clone(), &perms).await;
            let r = send(&h, "POST", "/tasker/graphql", Some(gq(query)), &perms).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            let forbidden = r.text.contains("\"forbidden\"");
            assert_eq!(
                rest.status == StatusCode::FORBIDDEN,
                !allowed,
                "{route} {perms:?}: {}",
                rest.text
            );
            assert_eq!(forbidden, !allowed, "{query} {perms:?}: {}", r.text);
        }
    }
    // Resuming a namespace: a grant on that namespace opens it, over both
    // (REST resumed it, so GraphQL finds it not paused).
    let perms = ["tasker.flow:resume@shop"];
    // (`shop` is paused: the allowed `pauseFlow` row above paused it.)
    let rest = send(&h, "DELETE", "/tasker/flow/pauses/shop", None, &perms).await;
    assert_eq!(rest.status, StatusCode::OK, "{}", rest.text);
    let r = send(
        &h,
        "POST",
        "/tasker/graphql",
        Some(gq(
            "mutation { resumeFlow(namespace: \"shop\") { pause { scope } errors { code } } }",
        )),
        &perms,
    )
    .await;
    assert_eq!(
        r.json["data"]["resumeFlow"]["errors"][0]["code"], "conflict",
        "{}",
        r.text
    );
    let rest = send(&h, "DELETE", "/tasker/flow/pauses/ops", None, &perms).await;
    rest.assert_error(403, "forbidden");
    let r = send(
        &h,
        "POST",
        "/tasker/graphql",
        Some(gq(
            "mutation { resumeFlow(namespace: \"ops\") { pause { scope } errors { code } } }",
        )),
        &perms,
    )
    .await;
    assert_eq!(
        r.json["data"]["resumeFlow"]["errors"][0]["code"], "forbidden",
        "{}",
        r.text
    );
}
