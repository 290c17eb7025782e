//! External workers through the service API (the REST routes map onto it):
//! competing workers, long polling, lease expiry and re-claim, late results.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;
use tasker_core::{StepState, TaskState};
use tasker_engine::external::ExternalClaim;
use tasker_engine::{EngineError, StepError, TaskRequest};

const MIXED: &str = "name: mixed\nstep_templates:\n  - name: local\n    handler: { kind: noop }\n  - name: remote\n    depends_on_step: local\n    handler: { kind: external, config: { queue: py } }\n  - name: after\n    depends_on_step: remote\n    handler: { kind: noop }\n";

fn claim(worker: &str, max: u32, lease_ms: u64, wait_ms: u64) -> ExternalClaim {
    ExternalClaim {
        worker_id: worker.into(),
        kinds: vec!["external".into()],
        namespaces: None,
        max_steps: max,
        lease: Duration::from_millis(lease_ms.max(1000)),
        wait: Duration::from_millis(wait_ms),
    }
}

#[tokio::test]
async fn an_external_step_runs_between_in_process_steps() {
    let (store, _dir) = sqlite().await;
    let tasker = builder(store.clone())
        .template(template(MIXED))
        .build()
        .unwrap();
    let engine = tasker.start();
    let task = tasker
        .create_task(TaskRequest::new("default", "mixed").context(json!({"n": 2})))
        .await
        .unwrap();
    // Long poll: nothing is claimable until `local` finished in-process.
    let got = tasker
        .external_claim(claim("py-1", 5, 30_000, 10_000))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let s = &got[0];
    assert_eq!(s.step.step_name, "remote");
    assert_eq!(s.step.context, json!({"n": 2}));
    assert_eq!(s.step.handler.config, json!({"queue": "py"}));
    assert!(s.step.parent_results.contains_key("local"));
    assert_eq!(s.step.attempt, 1);
    assert_eq!(s.idempotency_key, format!("tasker:{}", s.step.step_id));
    tasker
        .external_heartbeat(s.step.step_id, s.step.lease_token, Duration::from_secs(60))
        .await
        .unwrap();
    tasker
        .external_complete(s.step.step_id, s.step.lease_token, json!({"done": true}))
        .await
        .unwrap();
    let done = tasker.wait_for_task(task.id, WAIT).await.unwrap();
    engine.shutdown().await;
    assert_eq!(done.status, TaskState::Complete);
}

#[tokio::test]
async fn competing_workers_each_get_distinct_steps() {
    let (store, _dir) = sqlite().await;
    let yaml = "name: ext\nstep_templates:\n  - name: only\n    handler: { kind: external }\n";
    let tasker = builder(store).template(template(yaml)).build().unwrap();
    let ids = tasker
        .create_tasks(
            (0..40)
                .map(|_| TaskRequest::new("default", "ext"))
                .collect(),
        )
        .await
        .unwrap();
    let (a, b) = (tasker.clone(), tasker.clone());
    let work = |t: tasker_engine::Tasker, name: &'static str| async move {
        let mut seen = Vec::new();
        loop {
            let got = t.external_claim(claim(name, 3, 30_000, 0)).await.unwrap();
            if got.is_empty() {
                return seen;
            }
            for s in got {
                t.external_complete(s.step.step_id, s.step.lease_token, json!({"by": name}))
                    .await
                    .unwrap();
                seen.push(s.step.step_id);
            }
        }
    };
    let (x, y) = tokio::join!(tokio::spawn(work(a, "a")), tokio::spawn(work(b, "b")));
    let (x, y) = (x.unwrap(), y.unwrap());
    let all: HashSet<_> = x.iter().chain(y.iter()).collect();
    assert_eq!(x.len() + y.len(), 40, "each step done exactly once");
    assert_eq!(all.len(), 40);
    for id in ids {
        assert_eq!(
            tasker.store().task_get(id).await.unwrap().status,
            TaskState::Complete
        );
    }
}

#[tokio::test]
async fn a_vanished_worker_loses_its_lease_and_its_late_result_is_rejected() {
    let (store, _dir) = sqlite().await;
    let clock = std::sync::Arc::new(tasker_engine::clock::ManualClock::new(chrono::Utc::now()));
    let yaml = "name: ext\nstep_templates:\n  - name: only\n    handler: { kind: external }\n";
    let tasker = builder(store.clone())
        .clock(clock.clone())
        .template(template(yaml))
        .build()
        .unwrap();
    let task = tasker
        .create_task(TaskRequest::new("default", "ext"))
        .await
        .unwrap();
    let first = tasker
        .external_claim(claim("gone", 1, 1000, 0))
        .await
        .unwrap()
        .remove(0);
    // The worker disappears; time passes beyond its lease; the rescuer runs.
    clock.advance(chrono::Duration::seconds(5));
    assert_eq!(
        store.step_rescue_expired(tasker.now(), 100).await.unwrap(),
        1
    );
    let second = tasker
        .external_claim(claim("alive", 1, 30_000, 0))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.step.step_id, first.step.step_id);
    assert_eq!(second.step.attempt, 2);
    // The old worker comes back: heartbeat and result are refused.
    let hb = tasker
        .external_heartbeat(
            first.step.step_id,
            first.step.lease_token,
            Duration::from_secs(30),
        )
        .await;
    assert!(matches!(hb, Err(EngineError::LeaseLost(_))), "{hb:?}");
    let late = tasker
        .external_complete(
            first.step.step_id,
            first.step.lease_token,
            json!({"late": true}),
        )
        .await;
    assert!(matches!(late, Err(EngineError::LeaseLost(_))), "{late:?}");
    tasker
        .external_complete(
            second.step.step_id,
            second.step.lease_token,
            json!({"ok": true}),
        )
        .await
        .unwrap();
    let step = store.step_get(first.step.step_id).await.unwrap();
    assert_eq!(step.results, Some(json!({"ok": true})));
    assert_eq!(
        store.task_get(task.id).await.unwrap().status,
        TaskState::Complete
    );
}

#[tokio::test]
async fn failures_retry_with_retry_after_then_exhaust() {
    let (store, _dir) = sqlite().await;
    let clock = std::sync::Arc::new(tasker_engine::clock::ManualClock::new(chrono::Utc::now()));
    let mut config = test_config();
    config.backoff.max_backoff_seconds = 60.0;
    let yaml = "name: ext\nstep_templates:\n  - name: only\n    handler: { kind: external }\n    default_retry_limit: 2\n";
    let tasker = builder(store.clone())
        .config(config)
        .clock(clock.clone())
        .template(template(yaml))
        .build()
        .unwrap();
    let task = tasker
        .create_task(TaskRequest::new("default", "ext"))
        .await
        .unwrap();
    let s = tasker
        .external_claim(claim("w", 1, 30_000, 0))
        .await
        .unwrap()
        .remove(0);
    let err = StepError::retryable("busy").with_retry_after(Duration::from_secs(10));
    tasker
        .external_fail(s.step.step_id, s.step.lease_token, err)
        .await
        .unwrap();
    assert!(
        tasker
            .external_claim(claim("w", 1, 30_000, 0))
            .await
            .unwrap()
            .is_empty(),
        "not before Retry-After"
    );
    clock.advance(chrono::Duration::seconds(11));
    let s = tasker
        .external_claim(claim("w", 1, 30_000, 0))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(s.step.attempt, 2);
    tasker
        .external_fail(
            s.step.step_id,
            s.step.lease_token,
            StepError::retryable("still busy").with_code("E42"),
        )
        .await
        .unwrap();
    let step = store.step_get(s.step.step_id).await.unwrap();
    assert_eq!(step.status, StepState::Error);
    let e = step.last_error.unwrap();
    assert_eq!(
        (e.message.as_str(), e.code.as_deref(), e.attempt),
        ("still busy", Some("E42"), 2)
    );
    assert_eq!(
        store.task_get(task.id).await.unwrap().status,
        TaskState::Error
    );
}

#[tokio::test]
async fn bad_claims_name_the_field() {
    let (store, _dir) = sqlite().await;
    let tasker = builder(store).build().unwrap();
    let mut c = claim("w", 1, 30_000, 0);
    c.kinds.clear();
    let e = tasker.external_claim(c).await.unwrap_err();
    assert!(
        matches!(&e, EngineError::InvalidField { field, .. } if field == "handler_kinds"),
        "{e}"
    );
    let e = tasker
        .external_claim(claim("w", 500, 30_000, 0))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, EngineError::InvalidField { field, .. } if field == "max_steps"),
        "{e}"
    );
    let e = tasker
        .external_complete(uuid::Uuid::nil(), uuid::Uuid::nil(), json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            EngineError::Store(tasker_store::StoreError::NotFound { .. })
        ),
        "{e}"
    );
}
