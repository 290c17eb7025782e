//! Persisted queries over `POST /tasker/graphql`, on both stores: Apollo's
//! automatic protocol (hash miss → `PersistedQueryNotFound`, register with
//! the text, then the hash alone runs; a wrong hash is refused), the
//! registered-only mode of production (a manifest's operations run, nothing
//! else does), and `off`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{Db, Harness, Resp};
use serde_json::{Value, json};
use tasker_server::ServerConfig;
use tasker_server::graphql::GraphqlSettings;
use tasker_server::graphql::persisted::{Manifest, PersistedMode, query_hash};

const TASK: &str = "query($id: UUID!) { task(id: $id) { id status } }";

async fn harness(db: Db, graphql: GraphqlSettings) -> Harness {
    Harness::with(
        db,
        common::engine_config(),
        ServerConfig {
            graphql,
            ..ServerConfig::default()
        },
    )
    .await
}

/// Sends `query` (may be empty) with `persistedQuery` extension `hash`.
async fn send(h: &Harness, query: Option<&str>, hash: Option<&str>, variables: Value) -> Resp {
    let mut body = json!({"variables": variables});
    if let Some(q) = query {
        body["query"] = json!(q);
    }
    if let Some(hash) = hash {
        body["extensions"] = json!({"persistedQuery": {"version": 1, "sha256Hash": hash}});
    }
    let r = h.post("/tasker/graphql", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r
}

/// The first error's `(code, message)`.
fn error(r: &Resp) -> (String, String) {
    let e = &r.json["errors"][0];
    assert!(r.json["data"].is_null(), "{}", r.text);
    (
        e["extensions"]["code"].as_str().unwrap_or("").to_string(),
        e["message"].as_str().unwrap_or("").to_string(),
    )
}

async fn automatic_persisted_queries(db: Db) {
    let h = harness(db, GraphqlSettings::default()).await;
    let id = h.checkout(1).await;
    let vars = json!({"id": id});
    let hash = query_hash(TASK);
    // Hash alone, never seen: Apollo's "not found" (the client then sends the text).
    let r = send(&h, None, Some(&hash), vars.clone()).await;
    assert_eq!(
        error(&r),
        (
            "PERSISTED_QUERY_NOT_FOUND".into(),
            "PersistedQueryNotFound".into()
        )
    );
    // Text with a hash that is not its SHA-256: refused, nothing registered.
    let wrong = query_hash("{ health { status } }");
    let r = send(&h, Some(TASK), Some(&wrong), vars.clone()).await;
    assert_eq!(error(&r).0, "persisted_query_hash_mismatch", "{}", r.text);
    let r = send(&h, None, Some(&wrong), vars.clone()).await;
    assert_eq!(error(&r).0, "PERSISTED_QUERY_NOT_FOUND");
    // Text with its hash: runs and registers.
    let r = send(&h, Some(TASK), Some(&hash), vars.clone()).await;
    assert!(r.json.get("errors").is_none(), "{}", r.text);
    assert_eq!(r.json["data"]["task"]["status"], "PENDING");
    // Now the hash alone runs the same operation, with other variables too.
    let r = send(&h, None, Some(&hash), vars.clone()).await;
    assert!(r.json.get("errors").is_none(), "{}", r.text);
    assert_eq!(r.json["data"]["task"]["id"], json!(id));
    let other = h.checkout(2).await;
    let r = send(&h, None, Some(&hash.to_uppercase()), json!({"id": other})).await;
    assert_eq!(r.json["data"]["task"]["id"], json!(other), "{}", r.text);
    // A persisted document still goes through validation and the limits.
    let bad = "{ nope }";
    let r = send(&h, Some(bad), Some(&query_hash(bad)), json!({})).await;
    assert!(
        r.json["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nope"),
        "{}",
        r.text
    );
    // Plain requests are unchanged.
    let r = send(&h, Some("{ health { status } }"), None, json!({})).await;
    assert_eq!(r.json["data"]["health"]["status"], "ok", "{}", r.text);
    // A malformed extension is a GraphQL error, not a 5xx.
    for ext in [
        json!({"version": 2, "sha256Hash": hash}),
        json!({"version": 1, "sha256Hash": "xyz"}),
        json!({"version": 1}),
        json!("yes"),
    ] {
        let r = h
            .post(
                "/tasker/graphql",
                json!({"query": TASK, "variables": vars, "extensions": {"persistedQuery": ext}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(error(&r).0, "invalid_persisted_query", "{ext}: {}", r.text);
    }
}

/// The cache is bounded: with room for one document, registering a
/// second one evicts the first.
async fn the_cache_is_bounded(db: Db) {
    let h = harness(
        db,
        GraphqlSettings {
            persisted_cache_size: 1,
            ..GraphqlSettings::default()
        },
    )
    .await;
    let queries: Vec<String> = (0..50)
        .map(|i| format!("query Q{i} {{ health {{ status }} }}"))
        .collect();
    for q in &queries {
        let r = send(&h, Some(q), Some(&query_hash(q)), json!({})).await;
        assert_eq!(r.json["data"]["health"]["status"], "ok", "{}", r.text);
    }
    let mut found = 0;
    for q in &queries {
        let r = send(&h, None, Some(&query_hash(q)), json!({})).await;
        if r.json.get("errors").is_none() {
            found += 1;
        } else {
            assert_eq!(error(&r).0, "PERSISTED_QUERY_NOT_FOUND");
        }
    }
    // moka evicts asynchronously, so at most a few extra linger briefly;
    // never the whole set.
    assert!(
        found < queries.len() / 2,
        "{found} of {} still cached",
        queries.len()
    );
}

async fn registered_only(db: Db) {
    let health = "{ health { status } }";
    let manifest = Manifest::from_json(
        &json!({
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [
                {"id": query_hash(TASK), "name": "Task", "type": "query", "body": TASK},
                {"id": query_hash(health), "name": "Health", "type": "query", "body": health},
            ]
        })
        .to_string(),
    )
    .unwrap();
    assert_eq!(manifest.len(), 2);
    let h = harness(
        db,
        GraphqlSettings {
            persisted_queries: PersistedMode::Registered,
            manifest,
            ..GraphqlSettings::default()
        },
    )
    .await;
    let id = h.checkout(1).await;
    // A registered operation by hash alone, and by its text.
    let r = send(&h, None, Some(&query_hash(TASK)), json!({"id": id})).await;
    assert_eq!(r.json["data"]["task"]["status"], "PENDING", "{}", r.text);
    let r = send(&h, Some(health), None, json!({})).await;
    assert_eq!(r.json["data"]["health"]["status"], "ok", "{}", r.text);
    // Anything else is refused before it runs: free text, text with its
    // own hash (no registration), an unknown hash, a wrong hash.
    let other = "{ tasks { totalCount } }";
    let r = send(&h, Some(other), None, json!({})).await;
    assert_eq!(error(&r).0, "persisted_query_not_allowed", "{}", r.text);
    let r = send(&h, Some(other), Some(&query_hash(other)), json!({})).await;
    assert_eq!(error(&r).0, "persisted_query_not_allowed", "{}", r.text);
    let r = send(&h, None, Some(&query_hash(other)), json!({})).await;
    assert_eq!(error(&r).0, "PERSISTED_QUERY_NOT_FOUND", "{}", r.text);
    let r = send(&h, Some(other), Some(&query_hash(TASK)), json!({})).await;
    assert_eq!(error(&r).0, "persisted_query_hash_mismatch", "{}", r.text);
    // A syntax error is not even parsed.
    let r = send(&h, Some("{ task("), None, json!({})).await;
    assert_eq!(error(&r).0, "persisted_query_not_allowed", "{}", r.text);
}

async fn persisted_queries_off(db: Db) {
    let h = harness(
        db,
        GraphqlSettings {
            persisted_queries: PersistedMode::Off,
            ..GraphqlSettings::default()
        },
    )
    .await;
    let q = "{ health { status } }";
    let r = send(&h, Some(q), Some(&query_hash(q)), json!({})).await;
    assert_eq!(error(&r).0, "PERSISTED_QUERY_NOT_SUPPORTED", "{}", r.text);
    let r = send(&h, Some(q), None, json!({})).await;
    assert_eq!(r.json["data"]["health"]["status"], "ok", "{}", r.text);
}

on_both_backends!(
    automatic_persisted_queries,
    the_cache_is_bounded,
    registered_only,
    persisted_queries_off,
);

/// A manifest whose ids are not the hashes of their bodies, or whose bodies
/// do not parse, is refused naming the operation; so is another format.
#[test]
fn bad_manifests_are_refused() {
    let body = "{ health { status } }";
    let doc = |ops: Value| {
        json!({"format": "apollo-persisted-query-manifest", "version": 1, "operations": ops})
            .to_string()
    };
    let e = Manifest::from_json(&doc(json!([{"id": "abc", "body": body}]))).unwrap_err();
    assert!(e.contains("operations[0]") && e.contains("SHA-256"), "{e}");
    let broken = "{ health {";
    let e =
        Manifest::from_json(&doc(json!([{"id": query_hash(broken), "body": broken}]))).unwrap_err();
    assert!(e.contains("operations[0]"), "{e}");
    let e =
        Manifest::from_json(r#"{"format": "other", "version": 1, "operations": []}"#).unwrap_err();
    assert!(e.contains("apollo-persisted-query-manifest"), "{e}");
    assert!(Manifest::from_json("[").is_err());
}

/// Registered mode without a manifest is a configuration problem.
#[test]
fn registered_mode_needs_a_manifest() {
    let s = GraphqlSettings {
        persisted_queries: PersistedMode::Registered,
        ..GraphqlSettings::default()
    };
    let problems = s.problems();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("server.graphql_persisted_manifest")),
        "{problems:?}"
    );
}
