//! One result no store can hold (a NUL character) among 100 steps finishing
//! together: that step fails alone with a clear `invalid_result` error, the
//! 99 others complete exactly once, nothing runs twice. The same on SQLite
//! (which could store the value, but must refuse it like PostgreSQL does)
//! and on PostgreSQL (where it used to fail the whole outcome batch, leaving
//! every step of it to be re-run after lease expiry).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tasker_core::{StepState, TaskState};
use tasker_engine::{EngineConfig, StepContext, StepError, StepHandler, TaskRequest};
use tasker_store::Store;
use tokio::sync::Barrier;

const STEPS: usize = 100;
const POISONED: &str = "s42";

/// Counts calls per step; every call waits until all 100 are running, so
/// the outcomes reach the completer together and share batches.
#[derive(Clone)]
struct Together {
    calls: Arc<Mutex<HashMap<String, u32>>>,
    barrier: Arc<Barrier>,
}

#[async_trait::async_trait]
impl StepHandler for Together {
    async fn call(&self, step: &StepContext) -> Result<Value, StepError> {
        *self
            .calls
            .lock()
            .unwrap()
            .entry(step.step_name.clone())
            .or_default() += 1;
        self.barrier.wait().await;
        if step.step_name == POISONED {
            return Ok(json!({ "text": "before\u{0}after" }));
        }
        Ok(json!({ "step": step.step_name }))
    }
}

fn yaml() -> String {
    let mut y = String::from("name: poisoned\nstep_templates:\n");
    for i in 0..STEPS {
        y.push_str(&format!(
            "  - name: s{i}\n    handler: {{ kind: together }}\n    default_retry_limit: 3\n"
        ));
    }
    y
}

async fn one_poisoned_result_fails_only_its_step(store: Arc<dyn Store>) {
    let handler = Together {
        calls: Arc::default(),
        barrier: Arc::new(Barrier::new(STEPS)),
    };
    let config = EngineConfig {
        max_concurrent_steps: STEPS as u32,
        claim_batch_size: STEPS as u32,
        ..test_config()
    };
    let tasker = builder(store.clone())
        .config(config)
        .handler("together", handler.clone())
        .template(template(&yaml()))
        .build()
        .unwrap();
    let task = run_once(&tasker, TaskRequest::new("default", "poisoned")).await;
    assert_eq!(task.status, TaskState::Error);

    let steps = store.step_list(task.id).await.unwrap();
    let calls = handler.calls.lock().unwrap().clone();
    for s in &steps {
        assert_eq!(
            calls.get(&s.name),
            Some(&1),
            "{} ran more than once",
            s.name
        );
        assert_eq!(s.attempts, 1, "{}", s.name);
        if s.name == POISONED {
            assert_eq!(s.status, StepState::Error);
            let err = s.last_error.as_ref().unwrap();
            assert_eq!(err.kind, "invalid_result");
            assert!(
                err.message.contains("NUL character") && err.message.contains("$.text"),
                "{}",
                err.message
            );
            assert!(s.results.is_none());
        } else {
            assert_eq!(s.status, StepState::Complete, "{}", s.name);
            assert_eq!(s.results, Some(json!({ "step": s.name })));
        }
    }
    // Exactly one completion per step in the history (no second attempt).
    for s in &steps {
        let states = step_states(&store, s.id).await;
        assert_eq!(
            states.iter().filter(|t| *t == "in_progress").count(),
            1,
            "{}",
            s.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_one_poisoned_result_fails_only_its_step() {
    let (store, _dir) = sqlite().await;
    one_poisoned_result_fails_only_its_step(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_one_poisoned_result_fails_only_its_step() {
    let db = tasker_store_postgres::testing::TestDb::create().await;
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    one_poisoned_result_fails_only_its_step(store).await;
}
