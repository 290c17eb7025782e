//! Webhook subscribers over the API (docs/EVENTS.md, "Webhooks"), on both
//! stores: registration (fields checked and named, the SSRF policy, taken
//! names), listing without the secret, deliveries and dead letters,
//! redelivery, deletion. Every response is checked against the OpenAPI
//! document by the harness. Delivery itself is tested end to end in
//! `crates/cli/tests/webhooks.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Db, Harness};
use serde_json::json;
use tasker_store::{DeliveryClaim, DeliveryOutcome, DeliveryResult};

on_both_backends!(webhooks_are_registered_listed_dead_lettered_and_redelivered,);

async fn webhooks_are_registered_listed_dead_lettered_and_redelivered(db: Db) {
    let h = Harness::new(db).await;
    let body = json!({
        "name": "ops",
        "url": "https://hooks.example.com/tasker",
        "events": ["task.*"],
        "secret": "a-long-random-value",
        "max_attempts": 1
    });
    let r = h.post("/tasker/webhooks", body.clone()).await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    let id = r.json["webhook"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.json["webhook"]["signed"], true);
    assert_eq!(r.json["webhook"]["source"], "api");
    assert!(
        !r.text.contains("a-long-random-value"),
        "the secret is never shown"
    );
    h.post("/tasker/webhooks", body.clone())
        .await
        .assert_error(409, "conflict");

    // Bad fields are named; internal addresses are refused (SSRF policy).
    for (patch, field) in [
        (json!({"name": "bad name"}), "name"),
        (json!({"url": "http://127.0.0.1:8080/x"}), "url"),
        (json!({"url": "http://10.1.2.3/x"}), "url"),
        (json!({"url": "file:///etc/passwd"}), "url"),
        (json!({"events": ["task.**"]}), "events"),
        (json!({"events": []}), "events"),
        (json!({"max_attempts": 0}), "max_attempts"),
        (json!({"timeout_seconds": 1000}), "timeout_seconds"),
        (json!({"secret": ""}), "secret"),
    ] {
        let mut b = body.clone();
        b["name"] = json!("other");
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        let r = h.post("/tasker/webhooks", b).await;
        r.assert_error(400, r.code());
        assert_eq!(r.field(), field, "{}", r.text);
    }
    let r = h.post("/tasker/webhooks", json!({"name": "x"})).await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);

    let r = h.get("/tasker/webhooks").await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(r.json["webhooks"].as_array().unwrap().len(), 1);
    let r = h.get(&format!("/tasker/webhooks/{id}")).await;
    assert_eq!(r.json["webhook"]["events"], json!(["task.*"]));

    // A task's event, claimed and failed once: with max_attempts 1 it is a
    // dead letter, listed and redelivered.
    h.checkout(1).await;
    let store = h.tasker.store();
    let now = h.tasker.now();
    assert_eq!(store.webhook_fanout(100, now).await.unwrap(), 1);
    let claimed = store
        .webhook_claim(&DeliveryClaim {
            owner: "test".into(),
            limit: 10,
            now,
            lease_until: now + chrono::Duration::seconds(30),
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    store
        .webhook_finish(vec![DeliveryOutcome {
            webhook_id: claimed[0].webhook.id,
            event_id: claimed[0].event_id,
            lease_token: claimed[0].lease_token,
            result: DeliveryResult::Failed {
                error: "HTTP 500".into(),
                status_code: Some(500),
                retry_at: None,
            },
            now,
        }])
        .await
        .unwrap();
    let r = h
        .get(&format!("/tasker/webhooks/{id}/deliveries?status=dead"))
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    let dead = r.json["deliveries"].as_array().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["event_type"], "task.created");
    assert_eq!(dead[0]["last_status_code"], 500);
    assert_eq!(dead[0]["attempts"], 1);
    h.get(&format!("/tasker/webhooks/{id}/deliveries?status=lost"))
        .await
        .assert_error(400, "invalid_parameter");
    h.get(&format!("/tasker/webhooks/{id}/deliveries?limit=0"))
        .await
        .assert_error(400, "invalid_parameter");

    let r = h
        .post(&format!("/tasker/webhooks/{id}/redeliver"), json!({}))
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(r.json["redelivered"], 1);
    let r = h
        .get(&format!("/tasker/webhooks/{id}/deliveries?status=pending"))
        .await;
    assert_eq!(r.json["deliveries"][0]["attempts"], 0);
    let r = h
        .post(
            &format!("/tasker/webhooks/{id}/redeliver"),
            json!({"event_ids": []}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);

    let r = h.delete(&format!("/tasker/webhooks/{id}")).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    h.get(&format!("/tasker/webhooks/{id}"))
        .await
        .assert_error(404, "not_found");
    h.delete(&format!("/tasker/webhooks/{id}"))
        .await
        .assert_error(404, "not_found");
    h.get("/tasker/webhooks/not-a-uuid")
        .await
        .assert_error(400, "invalid_parameter");
}
