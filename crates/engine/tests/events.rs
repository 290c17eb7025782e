//! Lifecycle events from the engine's side on a real SQLite file: a Rust
//! handler emits custom events through its context (names checked), they
//! land between the step's started and completed events; the pruner keeps
//! the retention window.
#![allow(clippy::unwrap_used)]

mod common;

use async_trait::async_trait;
use common::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tasker_engine::clock::ManualClock;
use tasker_engine::{EngineError, StepContext, StepError, StepHandler, TaskRequest};
use tasker_store::EventQuery;

/// Emits `custom.progress` twice, and tries a reserved name.
struct Emitter;

#[async_trait]
impl StepHandler for Emitter {
    async fn call(&self, ctx: &StepContext) -> Result<Value, StepError> {
        for pct in [50, 100] {
            ctx.events
                .emit("custom.progress", json!({"pct": pct}))
                .await
                .map_err(|e| StepError::permanent(e.to_string()))?;
        }
        match ctx.events.emit("step.fake", json!({})).await {
            Err(EngineError::InvalidField { field, .. }) if field == "name" => {}
            other => {
                return Err(StepError::permanent(format!(
                    "reserved name accepted: {other:?}"
                )));
            }
        }
        Ok(json!({"emitted": 2}))
    }
}

#[tokio::test]
async fn handlers_emit_custom_events_through_their_context() {
    let (store, _dir) = sqlite().await;
    let tasker = builder(store.clone())
        .handler("emitter", Emitter)
        .template(template(
            "name: emits\nstep_templates:\n  - name: work\n    handler: { kind: emitter }\n",
        ))
        .build()
        .unwrap();
    let done = run_once(&tasker, TaskRequest::new("default", "emits")).await;
    assert_eq!(done.status, tasker_core::TaskState::Complete);
    let events = tasker
        .events(&EventQuery {
            limit: 100,
            task_id: Some(done.id),
            ..Default::default()
        })
        .await
        .unwrap();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let started = types.iter().position(|t| *t == "step.started").unwrap();
    let completed = types.iter().position(|t| *t == "step.completed").unwrap();
    let custom: Vec<usize> = (0..types.len())
        .filter(|i| types[*i] == "custom.progress")
        .collect();
    assert_eq!(custom.len(), 2, "{types:?}");
    assert!(
        custom.iter().all(|i| started < *i && *i < completed),
        "{types:?}"
    );
    assert_eq!(events[custom[0]].payload, json!({"pct": 50}));
    assert_eq!(events[custom[1]].payload, json!({"pct": 100}));
    assert!(events[custom[0]].step_id.is_some());
    // A detached context refuses.
    let r = tasker_engine::EventEmitter::detached()
        .emit("custom.x", json!({}))
        .await;
    assert!(matches!(r, Err(EngineError::InvalidField { .. })), "{r:?}");
}

#[tokio::test]
async fn pruning_keeps_the_retention_window() {
    let (store, _dir) = sqlite().await;
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let mut config = test_config();
    config.event_retention = Some(Duration::from_secs(86_400));
    config.event_prune_batch = 2;
    let tasker = builder(store.clone())
        .config(config)
        .clock(clock.clone())
        .template(template(
            "name: one\nstep_templates:\n  - name: a\n    handler: { kind: noop }\n",
        ))
        .build()
        .unwrap();
    let old = tasker
        .create_task(TaskRequest::new("default", "one"))
        .await
        .unwrap();
    clock.advance(chrono::Duration::hours(25));
    let new = tasker
        .create_task(TaskRequest::new("default", "one"))
        .await
        .unwrap();
    assert_eq!(
        tasker.prune_events(1).await.unwrap(),
        1,
        "one batch of two asked, one old event"
    );
    let left = tasker
        .events(&EventQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].task_id, new.id);
    assert_ne!(left[0].task_id, old.id);

    // Retention off: nothing is pruned.
    let mut keep = test_config();
    keep.event_retention = None;
    let keeper = builder(store.clone()).config(keep).build().unwrap();
    clock.advance(chrono::Duration::days(400));
    assert_eq!(keeper.prune_events(10).await.unwrap(), 0);
}
