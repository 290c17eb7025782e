//! Authentication and authorization over the whole app (issue 11):
//! the permission table covers every route; every route answers 401 without
//! credentials, 403 with credentials lacking its permission and neither with
//! it, on both stores; every bad token or key is a 401/403 (never a 500)
//! that creates nothing; API keys are scoped, revocable and cached.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine;
use common::{Db, Harness, Resp};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tasker_auth::jwt::{JwtSettings, JwtVerifier, KeyMaterial};
use tasker_auth::table::{Access, ROUTES};
use tasker_server::auth::{AuthSettings, JwtKeys};
use tasker_store::NewApiKey;
use uuid::Uuid;

const SECRET: &[u8] = b"server-test-secret-0123456789abcdef";
const RSA_PRIVATE: &[u8] = include_bytes!("../../auth/tests/keys/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../../auth/tests/keys/rsa_public.pem");

on_both_backends!(
    every_route_answers_401_403_or_its_own_answer,
    api_keys_work_in_both_headers_and_are_scoped_revocable_and_cached,
    bad_credentials_are_refused_and_create_nothing,
    operator_actions_record_the_caller_on_their_transitions,
    graphql_fields_need_the_permissions_of_their_routes,
);

async fn graphql(h: &Harness, perms: &[&str], query: &str, variables: Value) -> Resp {
    let body = json!({"query": query, "variables": variables});
    send(
        h,
        "POST",
        "/tasker/graphql",
        Some(&body),
        bearer(&token(h, perms)),
    )
    .await
}

/// GraphQL operations need the permission of the REST route that does the
/// same (`tasker_auth::table::GRAPHQL`), namespace scopes included.
async fn graphql_fields_need_the_permissions_of_their_routes(db: Db) {
    let h = secured(db, Duration::ZERO).await;
    let body = json!({"name": "checkout", "namespace": "shop", "context": {"order_id": 1}});
    let r = send(
        &h,
        "POST",
        "/tasker/tasks",
        Some(&body),
        bearer(&token(&h, &["tasker.task:create"])),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let task: Uuid = r.json["task"]["task_id"].as_str().unwrap().parse().unwrap();
    let show = "query($id: UUID!) { task(id: $id) { name } }";
    let vars = json!({"id": task});
    // Without credentials the endpoint refuses, like any route.
    let r = send(
        &h,
        "POST",
        "/tasker/graphql",
        Some(&json!({"query": "{ __typename }"})),
        None,
    )
    .await;
    r.assert_error(401, "unauthenticated");
    // Another permission: a GraphQL error naming the missing one.
    let r = graphql(&h, &["tasker.handler:show"], show, vars.clone()).await;
    assert_eq!(
        r.json["errors"][0]["extensions"]["code"], "forbidden",
        "{}",
        r.text
    );
    assert!(
        r.json["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("tasker.task:show")
    );
    // The permission, scoped to the task's namespace: allowed.
    let r = graphql(&h, &["tasker.task:show@shop"], show, vars.clone()).await;
    assert_eq!(r.json["data"]["task"]["name"], "checkout", "{}", r.text);
    // ... scoped to another namespace: refused.
    let r = graphql(&h, &["tasker.task:show@ops"], show, vars.clone()).await;
    assert_eq!(
        r.json["errors"][0]["extensions"]["code"], "forbidden",
        "{}",
        r.text
    );
    // Steps need the step permission too.
    let r = graphql(
        &h,
        &["tasker.task:show"],
        "query($id: UUID!) { task(id: $id) { name steps { name } } }",
        vars.clone(),
    )
    .await;
    assert_eq!(
        r.json["errors"][0]["extensions"]["code"], "forbidden",
        "{}",
        r.text
    );
    assert_eq!(r.json["errors"][0]["path"], json!(["task", "steps"]));
    // Events need REST's events permission (`tasker.event:index`), scoped
    // like the route: the task's namespace.
    let events = "query($id: UUID!) { task(id: $id) { events { events { type } } } }";
    let r = graphql(&h, &["tasker.task:show"], events, vars.clone()).await;
    assert_eq!(
        r.json["errors"][0]["extensions"]["code"], "forbidden",
        "{}",
        r.text
    );
    assert_eq!(r.json["errors"][0]["path"], json!(["task", "events"]));
    assert!(
        r.json["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("tasker.event:index")
    );
    let r = graphql(
        &h,
        &["tasker.task:show", "tasker.event:index@ops"],
        events,
        vars.clone(),
    )
    .await;
    assert_eq!(
        r.json["errors"][0]["extensions"]["code"], "forbidden",
        "{}",
        r.text
    );
    let r = graphql(
        &h,
        &["tasker.task:show", "tasker.event:index@shop"],
        events,
        vars.clone(),
    )
    .await;
    assert_eq!(
        r.json["data"]["task"]["events"]["events"][0]["type"], "task.created",
        "{}",
        r.text
    );
    // A namespace-scoped list permission opens the list filtered to it only.
    let list = "query($ns: String) { tasks(filter: {namespace: $ns}) { totalCount } }";
    let r = graphql(&h, &["tasker.task:index@shop"], list, json!({"ns": "shop"})).await;
    assert_eq!(r.json["data"]["tasks"]["totalCount"], 1, "{}", r.text);
    let r = graphql(&h, &["tasker.task:index@shop"], list, json!({})).await;
    assert_eq!(
        r.json["errors"][0]["extensions"]["code"], "forbidden",
        "{}",
        r.text
    );
    // Mutations answer `forbidden` as a UserError, and record the caller.
    let create = r#"mutation($ns: String) { createTask(input: {name: "checkout", namespace: $ns, context: {order_id: 2}}) {
        task { initiator } errors { code } } }"#;
    let r = graphql(
        &h,
        &["tasker.task:create@shop"],
        create,
        json!({"ns": "ops"}),
    )
    .await;
    assert_eq!(
        r.json["data"]["createTask"],
        json!({"task": null, "errors": [{"code": "forbidden"}]}),
        "{}",
        r.text
    );
    let r = graphql(
        &h,
        &["tasker.task:create@shop"],
        create,
        json!({"ns": "shop"}),
    )
    .await;
    assert_eq!(
        r.json["data"]["createTask"],
        json!({"task": {"initiator": "alice"}, "errors": []}),
        "{}",
        r.text
    );
    let r = graphql(
        &h,
        &["tasker.task:show"],
        "mutation($id: UUID!) { cancelTask(id: $id) { errors { code } } }",
        vars,
    )
    .await;
    assert_eq!(
        r.json["data"]["cancelTask"]["errors"][0]["code"], "forbidden",
        "{}",
        r.text
    );
}

/// The table has a row for every route the router registers, and no row
/// for a route that does not exist.
#[test]
fn the_permission_table_covers_every_route() {
    let registered: BTreeSet<(String, String)> = tasker_server::route_table()
        .into_iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = registered.difference(&table).collect();
    let stale: Vec<_> = table.difference(&registered).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "tasker_auth::table::ROUTES: routes without a permission {missing:?}; rows without a route {stale:?}"
    );
}

fn verifier(keys: KeyMaterial<'_>, algorithm: Option<&str>) -> JwtVerifier {
    JwtVerifier::new(JwtSettings {
        keys,
        algorithm,
        leeway_seconds: 30,
        issuer: Some("test-idp"),
        audience: Some("tasker"),
        permissions_claim: "permissions",
        roles_claim: "roles",
        roles: Default::default(),
    })
    .unwrap()
}

fn settings(jwt: Option<JwtKeys>, key_cache: Duration) -> AuthSettings {
    AuthSettings {
        jwt,
        api_keys: true,
        key_cache_ttl: key_cache,
        status_requires_auth: true,
        docs_require_auth: false,
    }
}

/// The test harness with HS256 JWTs and API keys accepted.
async fn secured(db: Db, key_cache: Duration) -> Harness {
    let h = Harness::new(db).await;
    let jwt = JwtKeys::Fixed(verifier(KeyMaterial::Secret(SECRET), None));
    let state = h.state.clone().with_auth(settings(Some(jwt), key_cache));
    h.with_state(state)
}

fn now(h: &Harness) -> i64 {
    h.tasker.now().timestamp()
}

fn claims(h: &Harness, permissions: &[&str]) -> Value {
    json!({
        "sub": "alice",
        "iss": "test-idp",
        "aud": "tasker",
        "iat": now(h),
        "exp": now(h) + 600,
        "permissions": permissions,
    })
}

fn token(h: &Harness, permissions: &[&str]) -> String {
    hs(&claims(h, permissions))
}

fn hs(c: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        c,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

async fn send(
    h: &Harness,
    method: &str,
    uri: &str,
    body: Option<&Value>,
    header: Option<(&str, String)>,
) -> Resp {
    let mut b = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(uri);
    if let Some((name, value)) = header {
        b = b.header(name, value);
    }
    let body = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    h.request(b.body(body).unwrap()).await
}

fn bearer(t: &str) -> Option<(&'static str, String)> {
    Some(("authorization", format!("Bearer {t}")))
}

/// A URI and body for each route, over real ids.
fn concrete(path: &str, task: Uuid, step: Uuid) -> String {
    if path == "/tasker/events/stream" {
        // The stream is endless without a limit (the task's creation is
        // one event, so it ends at once).
        return format!("{path}?limit=1");
    }
    path.replace(
        "/tasker/graphql/assets/{file}",
        "/tasker/graphql/assets/init.js",
    )
    .replace("{task_id}", &task.to_string())
    .replace("{step_id}", &step.to_string())
    .replace("{namespace}", "shop")
    .replace("{name}", "checkout")
    .replace("{file}", "index.html")
}

fn body_for(method: &str, path: &str) -> Option<Value> {
    match (method, path) {
        ("POST", "/tasker/tasks") => {
            Some(json!({"name": "checkout", "namespace": "shop", "context": {"order_id": 1}}))
        }
        ("PATCH", "/tasker/tasks/{task_id}") => Some(json!({"reason": "checked"})),
        ("PATCH", _) => Some(json!({"retry_limit": 5})),
        ("POST", "/tasker/graphql") => Some(json!({"query": "{ __typename }"})),
        ("POST", "/tasker/tasks/{task_id}/annotations") => {
            Some(json!({"type": "audit", "content": {"ok": true}}))
        }
        ("POST", "/tasker/workers/claim") => Some(
            json!({"worker_id": "w", "handler_kinds": ["noop"], "wait_seconds": 0, "max_steps": 1}),
        ),
        ("POST", "/tasker/steps/{step_id}/events") => {
            Some(json!({"lease_token": Uuid::new_v4(), "name": "custom.x"}))
        }
        ("POST", p) if p.starts_with("/tasker/steps/") => {
            Some(json!({"lease_token": Uuid::new_v4(), "message": "x"}))
        }
        ("POST", _) => Some(json!({})),
        _ => None,
    }
}

async fn task_count(h: &Harness) -> usize {
    h.tasker
        .store()
        .stats()
        .await
        .unwrap()
        .tasks_by_state
        .values()
        .sum::<i64>() as usize
}

async fn every_route_answers_401_403_or_its_own_answer(db: Db) {
    let h = secured(db, Duration::from_secs(5)).await;
    let admin = token(&h, &["*"]);
    let r = send(
        &h,
        "POST",
        "/tasker/tasks",
        body_for("POST", "/tasker/tasks").as_ref(),
        bearer(&admin),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.json["task"]["initiator"], "alice",
        "the caller is the initiator"
    );
    let task: Uuid = r.json["task"]["task_id"].as_str().unwrap().parse().unwrap();
    let step = h.step_id(task, "validate").await;

    for (method, path, access) in ROUTES {
        let uri = concrete(path, task, step);
        let body = body_for(method, path);
        let needed = match access {
            Access::Public | Access::Docs => {
                let r = send(&h, method, &uri, body.as_ref(), None).await;
                assert!(
                    r.status.is_success() || r.status.is_redirection(),
                    "{method} {path} is open: {} {}",
                    r.status,
                    r.text
                );
                continue;
            }
            // The GraphQL endpoint: any caller; operations check their own
            // permission (tests/graphql_auth.rs).
            Access::Authenticated => {
                let r = send(&h, method, &uri, body.as_ref(), None).await;
                r.assert_error(401, "unauthenticated");
                let r = send(
                    &h,
                    method,
                    &uri,
                    body.as_ref(),
                    bearer(&token(&h, &["tasker.handler:show"])),
                )
                .await;
                assert!(
                    !matches!(r.status.as_u16(), 401 | 403 | 500),
                    "{method} {path} with a caller: {} {}",
                    r.status,
                    r.text
                );
                continue;
            }
            Access::Status => "tasker.health_status:index",
            Access::Permission(p) => p,
        };
        let before = task_count(&h).await;
        // No credentials: 401 with the challenge.
        let r = send(&h, method, &uri, body.as_ref(), None).await;
        r.assert_error(401, "unauthenticated");
        assert_eq!(
            r.headers.get("www-authenticate").unwrap(),
            "Bearer realm=\"tasker\"",
            "{method} {path}"
        );
        // Another permission only: 403 naming the missing one.
        let other = if needed == "tasker.handler:show" {
            "tasker.task:index"
        } else {
            "tasker.handler:show"
        };
        let r = send(
            &h,
            method,
            &uri,
            body.as_ref(),
            bearer(&token(&h, &[other])),
        )
        .await;
        r.assert_error(403, "forbidden");
        assert_eq!(
            r.json["error"]["details"]["permission"], *needed,
            "{method} {path}"
        );
        assert_eq!(
            task_count(&h).await,
            before,
            "{method} {path}: a refused request created a task"
        );
        // The permission alone, its resource wildcard and `*`: the route's own answer.
        let wildcard = format!("{}:*", needed.split(':').next().unwrap());
        for grant in [needed, wildcard.as_str(), "*"] {
            let r = send(
                &h,
                method,
                &uri,
                body.as_ref(),
                bearer(&token(&h, &[grant])),
            )
            .await;
            assert!(
                !matches!(r.status.as_u16(), 401 | 403 | 500),
                "{method} {path} with {grant}: {} {}",
                r.status,
                r.text
            );
        }
    }
    // Probes never need credentials, even with a bad one.
    for path in ["/tasker/health/live", "/tasker/health/ready"] {
        let r = send(&h, "GET", path, None, bearer("garbage")).await;
        assert!(
            r.status.is_success() || r.status == StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {}",
            r.status
        );
    }
}

/// Stores a key with `permissions`, returning the key to send.
async fn key(h: &Harness, permissions: &[&str], expires_in: Option<i64>) -> (Uuid, String) {
    let minted = tasker_auth::apikey::mint().unwrap();
    h.tasker
        .store()
        .api_key_create(NewApiKey {
            id: minted.id,
            name: "test".into(),
            hash: minted.hash,
            permissions: permissions.iter().map(|s| s.to_string()).collect(),
            created_at: h.tasker.now(),
            expires_at: expires_in.map(|s| h.tasker.now() + chrono::Duration::seconds(s)),
        })
        .await
        .unwrap();
    (minted.id, minted.key)
}

async fn api_keys_work_in_both_headers_and_are_scoped_revocable_and_cached(db: Db) {
    // The key cache judges staleness by the engine's clock: a manual one
    // makes "still cached" and "expired" exact, whatever the machine's load.
    let clock = Arc::new(tasker_engine::clock::ManualClock::new(chrono::Utc::now()));
    let h = Harness::with_clock(
        db,
        common::engine_config(),
        tasker_server::ServerConfig::default(),
        Some(clock.clone()),
    )
    .await;
    let jwt = JwtKeys::Fixed(verifier(KeyMaterial::Secret(SECRET), None));
    let state = h
        .state
        .clone()
        .with_auth(settings(Some(jwt), Duration::from_millis(300)));
    let h = h.with_state(state);
    let (id, k) = key(
        &h,
        &[
            "tasker.task:create@shop",
            "tasker.task:index",
            "tasker.worker:*@shop",
        ],
        None,
    )
    .await;
    let create = |ns: &str| json!({"name": if ns == "shop" {"checkout"} else {"failing"}, "namespace": ns, "context": {"order_id": 1}});

    // Bearer and X-API-Key; the key id is the initiator.
    let r = send(
        &h,
        "POST",
        "/tasker/tasks",
        Some(&create("shop")),
        bearer(&k),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["task"]["initiator"], format!("key:{id}"));
    let shop_task = r.json["task"]["task_id"].as_str().unwrap().to_string();
    let r = send(
        &h,
        "GET",
        "/tasker/tasks",
        None,
        Some(("x-api-key", k.clone())),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // A scoped grant never opens a list across namespaces, nor one of
    // another namespace ...
    let (_, scoped_reader) = key(
        &h,
        &["tasker.task:index@shop", "tasker.task:show@shop"],
        None,
    )
    .await;
    send(&h, "GET", "/tasker/tasks", None, bearer(&scoped_reader))
        .await
        .assert_error(403, "forbidden");
    let r = send(
        &h,
        "GET",
        "/tasker/tasks?namespace=ops",
        None,
        bearer(&scoped_reader),
    )
    .await;
    r.assert_error(403, "forbidden");
    assert_eq!(r.json["error"]["details"]["namespace"], "ops");
    // ... but lists its own namespace's tasks when the filter names it.
    let r = send(
        &h,
        "GET",
        "/tasker/tasks?namespace=shop",
        None,
        bearer(&scoped_reader),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let listed = r.json["tasks"].as_array().expect("a list of tasks");
    assert!(!listed.is_empty(), "{}", r.text);
    assert!(
        listed.iter().all(|t| t["namespace"] == "shop"),
        "{}",
        r.text
    );
    // ... but opens a task of its namespace.
    let r = send(
        &h,
        "GET",
        &format!("/tasker/tasks/{shop_task}"),
        None,
        bearer(&scoped_reader),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Another namespace: 403 naming it, nothing created.
    let before = task_count(&h).await;
    let r = send(
        &h,
        "POST",
        "/tasker/tasks",
        Some(&create("ops")),
        bearer(&k),
    )
    .await;
    r.assert_error(403, "forbidden");
    assert_eq!(r.json["error"]["details"]["namespace"], "ops");
    assert_eq!(task_count(&h).await, before);

    // A task of another namespace, made by an admin: the scoped key claims
    // only from its namespace, and asking for another is a 403.
    let admin = token(&h, &["*"]);
    let r = send(
        &h,
        "POST",
        "/tasker/tasks",
        Some(&create("ops")),
        bearer(&admin),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let ops_task = r.json["task"]["task_id"].as_str().unwrap().to_string();
    let r = send(
        &h,
        "GET",
        &format!("/tasker/tasks/{ops_task}"),
        None,
        bearer(&scoped_reader),
    )
    .await;
    r.assert_error(403, "forbidden");
    assert_eq!(r.json["error"]["details"]["namespace"], "ops");
    let claim = |ns: Option<&str>| {
        let mut b = json!({"worker_id": "w", "handler_kinds": ["noop"], "wait_seconds": 0, "max_steps": 50});
        if let Some(ns) = ns {
            b["namespaces"] = json!([ns]);
        }
        b
    };
    let r = send(
        &h,
        "POST",
        "/tasker/workers/claim",
        Some(&claim(Some("ops"))),
        bearer(&k),
    )
    .await;
    r.assert_error(403, "forbidden");
    assert_eq!(r.json["error"]["details"]["namespace"], "ops");
    let r = send(
        &h,
        "POST",
        "/tasker/workers/claim",
        Some(&claim(None)),
        bearer(&k),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let steps = r.json["steps"].as_array().unwrap();
    assert!(!steps.is_empty());
    assert!(steps.iter().all(|s| s["namespace"] == "shop"), "{steps:?}");
    // The admin still finds the ops step unclaimed; the shop key cannot
    // report on it even with its lease token.
    let r = send(
        &h,
        "POST",
        "/tasker/workers/claim",
        Some(&claim(Some("ops"))),
        bearer(&admin),
    )
    .await;
    let ops_steps = r.json["steps"].as_array().unwrap();
    assert_eq!(ops_steps.len(), 1, "{}", r.text);
    let (step, lease) = (
        ops_steps[0]["step_id"].as_str().unwrap(),
        ops_steps[0]["lease_token"].clone(),
    );
    let r = send(
        &h,
        "POST",
        &format!("/tasker/steps/{step}/complete"),
        Some(&json!({"lease_token": lease})),
        bearer(&k),
    )
    .await;
    r.assert_error(403, "forbidden");
    assert_eq!(r.json["error"]["details"]["namespace"], "ops");
    let r = send(
        &h,
        "POST",
        &format!("/tasker/steps/{step}/complete"),
        Some(&json!({"lease_token": lease})),
        bearer(&admin),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Revoked: still accepted while cached, refused once the cache entry ends.
    h.tasker
        .store()
        .api_key_revoke(id, h.tasker.now())
        .await
        .unwrap();
    let r = send(&h, "GET", "/tasker/tasks", None, bearer(&k)).await;
    assert_eq!(r.status, StatusCode::OK, "cached for key_cache_ttl");
    clock.advance(chrono::Duration::milliseconds(299));
    let r = send(&h, "GET", "/tasker/tasks", None, bearer(&k)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "cached until key_cache_ttl has passed"
    );
    clock.advance(chrono::Duration::milliseconds(1));
    let r = send(&h, "GET", "/tasker/tasks", None, bearer(&k)).await;
    r.assert_error(401, "unauthenticated");

    // Expired keys are refused.
    let (_, expired) = key(&h, &["*"], Some(-1)).await;
    send(&h, "GET", "/tasker/tasks", None, bearer(&expired))
        .await
        .assert_error(401, "unauthenticated");
}

/// A header to send, if any.
type Credential = Option<(&'static str, String)>;

async fn bad_credentials_are_refused_and_create_nothing(db: Db) {
    let h = secured(db, Duration::from_secs(5)).await;
    let body = json!({"name": "checkout", "namespace": "shop", "context": {"order_id": 1}});
    let all = ["*"];
    let with = |patch: Value| {
        let mut c = claims(&h, &all);
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        hs(&c)
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let good = token(&h, &all);
    let alg_none = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims(&h, &all).to_string())
    );
    let other_secret = encode(
        &Header::new(Algorithm::HS256),
        &claims(&h, &all),
        &EncodingKey::from_secret(b"some-other-secret-0123456789abcdefgh"),
    )
    .unwrap();
    let (revoked_id, revoked) = key(&h, &["*"], None).await;
    h.tasker
        .store()
        .api_key_revoke(revoked_id, h.tasker.now())
        .await
        .unwrap();
    let unknown = tasker_auth::apikey::mint().unwrap().key;
    let (_, wrong_secret) = key(&h, &["*"], None).await;
    let wrong_secret = format!("{}{}", &wrong_secret[..wrong_secret.len() - 4], "AAAA");

    let cases: Vec<(&str, Credential, u16)> = vec![
        ("no credentials", None, 401),
        ("expired", bearer(&with(json!({"exp": now(&h) - 120}))), 401),
        (
            "not yet valid",
            bearer(&with(json!({"nbf": now(&h) + 120}))),
            401,
        ),
        ("wrong issuer", bearer(&with(json!({"iss": "evil"}))), 401),
        (
            "wrong audience",
            bearer(&with(json!({"aud": "other"}))),
            401,
        ),
        ("bad signature", bearer(&other_secret), 401),
        ("alg none", bearer(&alg_none), 401),
        ("truncated", bearer(&good[..good.len() - 10]), 401),
        ("garbage", bearer("abc.def"), 401),
        (
            "not bearer",
            Some(("authorization", format!("Basic {good}"))),
            401,
        ),
        ("100 kB header", bearer(&"a".repeat(100_000)), 401),
        ("revoked key", bearer(&revoked), 401),
        ("unknown key", bearer(&unknown), 401),
        (
            "key with a wrong secret",
            Some(("x-api-key", wrong_secret)),
            401,
        ),
        (
            "malformed key",
            Some(("x-api-key", "tk_nope".to_string())),
            401,
        ),
        (
            "no permission",
            bearer(&token(&h, &["tasker.task:index"])),
            403,
        ),
        (
            "another namespace",
            bearer(&token(&h, &["tasker.task:create@billing"])),
            403,
        ),
    ];
    for (what, header, status) in cases {
        let r = send(&h, "POST", "/tasker/tasks", Some(&body), header).await;
        assert_eq!(r.status.as_u16(), status, "{what}: {}", r.text);
        assert!(
            r.json["error"]["message"].as_str().unwrap().len() > 10,
            "{what}: {}",
            r.text
        );
    }
    assert_eq!(task_count(&h).await, 0, "a refused request created a task");

    // Algorithm confusion: a server with an RSA key refuses an HS token
    // signed with that public key.
    let rsa = JwtKeys::Fixed(verifier(KeyMaterial::Pem(RSA_PUBLIC), Some("RS256")));
    let state = AppState::clone(&h.state).with_auth(settings(Some(rsa), Duration::from_secs(5)));
    let all = ["*"];
    let h2 = h.with_state(state);
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &claims(&h2, &all),
        &EncodingKey::from_secret(RSA_PUBLIC),
    )
    .unwrap();
    send(&h2, "POST", "/tasker/tasks", Some(&body), bearer(&forged))
        .await
        .assert_error(401, "unauthenticated");
    let signed = encode(
        &Header::new(Algorithm::RS256),
        &claims(&h2, &all),
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
    )
    .unwrap();
    let r = send(&h2, "POST", "/tasker/tasks", Some(&body), bearer(&signed)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

use tasker_server::AppState;

/// docs/SECURITY.md's permission table is the code's table.
#[test]
fn the_security_doc_lists_the_table_of_the_code() {
    let doc = include_str!("../../../docs/SECURITY.md");
    let mut documented = BTreeSet::new();
    for line in doc.lines().filter(|l| {
        l.starts_with("| GET")
            || l.starts_with("| POST")
            || l.starts_with("| PATCH")
            || l.starts_with("| DELETE")
    }) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let access = cells[3];
        let access = access
            .strip_prefix('`')
            .and_then(|a| a.split('`').next())
            .unwrap_or_else(|| access.split_whitespace().next().unwrap());
        documented.insert((
            cells[1].to_string(),
            cells[2].trim_matches('`').to_string(),
            access.to_string(),
        ));
    }
    let code: BTreeSet<(String, String, String)> = ROUTES
        .iter()
        .map(|(m, p, a)| {
            let access = match a {
                Access::Public | Access::Docs => "open",
                Access::Authenticated => "authenticated",
                Access::Status => "tasker.health_status:index",
                Access::Permission(p) => p,
            };
            (m.to_string(), p.to_string(), access.to_string())
        })
        .collect();
    let missing: Vec<_> = code.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&code).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/SECURITY.md permission table: missing {missing:?}; not in the code {stale:?}"
    );
}

/// `auth.docs_require_auth` closes the API description to anonymous
/// callers; `health.status_requires_auth = false` opens the status page.
#[tokio::test]
async fn docs_and_status_follow_their_settings() {
    let h = Harness::new(common::sqlite().await).await;
    let jwt = JwtKeys::Fixed(verifier(KeyMaterial::Secret(SECRET), None));
    let state = h.state.clone().with_auth(AuthSettings {
        docs_require_auth: true,
        status_requires_auth: false,
        ..settings(Some(jwt), Duration::from_secs(5))
    });
    let h = h.with_state(state);
    send(&h, "GET", "/tasker/openapi.json", None, None)
        .await
        .assert_error(401, "unauthenticated");
    // Any authenticated caller, whatever its permissions.
    let r = send(
        &h,
        "GET",
        "/tasker/openapi.json",
        None,
        bearer(&token(&h, &["tasker.handler:show"])),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json["components"]["securitySchemes"]["bearer"].is_object());
    let r = send(&h, "GET", "/tasker/health/status", None, None).await;
    assert_ne!(r.status.as_u16(), 401, "{}", r.text);
    assert_ne!(r.status.as_u16(), 403, "{}", r.text);
}

/// A cancel made with a JWT records its subject as `by` on the transitions
/// it writes (the store's conformance case covers every action and backend
/// detail; this proves the route passes the caller through).
async fn operator_actions_record_the_caller_on_their_transitions(db: Db) {
    let h = secured(db, Duration::from_millis(300)).await;
    let t = token(&h, &["tasker.task:*"]);
    let r = send(
        &h,
        "POST",
        "/tasker/tasks",
        Some(&json!({"name": "checkout", "namespace": "shop", "context": {"order_id": 1}})),
        bearer(&t),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id: Uuid = r.json["task"]["task_id"].as_str().unwrap().parse().unwrap();
    let r = send(
        &h,
        "DELETE",
        &format!("/tasker/tasks/{id}"),
        None,
        bearer(&t),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let subject = claims(&h, &[])["sub"].as_str().unwrap().to_string();
    let moves = h.tasker.store().task_transitions(id).await.unwrap();
    let last = moves.last().unwrap();
    assert_eq!(last.to_state, "cancelled");
    assert_eq!(last.metadata["by"], subject.as_str(), "{moves:?}");
}
