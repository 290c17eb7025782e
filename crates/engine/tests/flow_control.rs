//! Concurrency keys and rate limits as the engine sets them up
//! (docs/FLOW_CONTROL.md): keys rendered from the context and inputs when a
//! task is created, buckets looked up in `[rate_limits]`, clear errors for
//! a missing path or an undefined bucket, and an external worker's claim
//! obeying the same limit as every other claim.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::Duration;
use tasker_core::flow::RateLimitDef;
use tasker_engine::external::ExternalClaim;
use tasker_engine::{EngineError, TaskRequest};
use tasker_store::FlowWait;

const YAML: &str = "name: sync\nstep_templates:\n  - name: fetch\n    handler: { kind: external }\n    inputs: { region: eu }\n    concurrency: { key: \"crm:{{context.customer}}:{{inputs.region}}\", limit: 1 }\n    rate_limit: { name: crm_api, key: \"{{context.customer}}\" }\n";

fn limits() -> BTreeMap<String, RateLimitDef> {
    BTreeMap::from([(
        "crm_api".to_string(),
        RateLimitDef {
            per_second: 5.0,
            burst: Some(3.0),
        },
    )])
}

#[tokio::test]
async fn keys_are_rendered_at_creation_and_every_claim_obeys_them() {
    let (store, _dir) = sqlite().await;
    let tasker = tasker_engine::Tasker::builder(store.clone())
        .config(tasker_engine::config::EngineConfig {
            rate_limits: limits(),
            ..test_config()
        })
        .template(template(YAML))
        .build()
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let t = tasker
            .create_task(
                TaskRequest::new("default", "sync").context(serde_json::json!({"customer": 42})),
            )
            .await
            .unwrap();
        ids.push(t.id);
    }
    let step = &store.step_list(ids[0]).await.unwrap()[0];
    assert_eq!(step.concurrency_key.as_deref(), Some("crm:42:eu"));
    assert_eq!(step.rate_limit.as_deref(), Some("crm_api:42"));

    // An external worker's claim is the store's claim: one step of the key.
    let claim = ExternalClaim {
        worker_id: "ext".into(),
        kinds: vec!["external".into()],
        namespaces: None,
        max_steps: 10,
        lease: Duration::from_secs(30),
        wait: Duration::ZERO,
    };
    let got = tasker.external_claim(claim).await.unwrap();
    assert_eq!(got.len(), 1);
    let waiting = if ids[0] == got[0].step.task_id {
        ids[1]
    } else {
        ids[0]
    };
    let other = &store.step_list(waiting).await.unwrap()[0];
    assert_eq!(
        other.waiting_for,
        Some(FlowWait::ConcurrencyKey {
            key: "crm:42:eu".into()
        })
    );
}

#[tokio::test]
async fn a_missing_path_or_an_undefined_bucket_is_a_clear_error() {
    let (store, _dir) = sqlite().await;
    let tasker = tasker_engine::Tasker::builder(store.clone())
        .config(tasker_engine::config::EngineConfig {
            rate_limits: limits(),
            ..test_config()
        })
        .template(template(YAML))
        .build()
        .unwrap();
    let err = tasker
        .create_task(TaskRequest::new("default", "sync").context(serde_json::json!({"other": 1})))
        .await
        .unwrap_err();
    match &err {
        EngineError::InvalidField { field, message } => {
            assert_eq!(field, "context");
            assert!(
                message.contains(
                    "step `fetch`: concurrency key: template path `context.customer` not found"
                ),
                "{message}"
            );
        }
        e => panic!("{e:?}"),
    }

    // Without `[rate_limits] crm_api` the template is refused at registration.
    let (store, _dir2) = sqlite().await;
    let Err(err) = builder(store).template(template(YAML)).build() else {
        panic!("a template naming an undefined bucket was registered");
    };
    assert!(
        err.to_string()
            .contains("step `fetch`: rate limit `crm_api` is not defined in [rate_limits]"),
        "{err}"
    );
}
