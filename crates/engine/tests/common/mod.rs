//! Helpers for engine tests: real SQLite files, recording and failing handlers.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tasker_core::template::parse_template;
use tasker_core::{BackoffPolicy, TaskTemplate};
use tasker_engine::{EngineConfig, StepContext, StepError, StepHandler, Tasker, TaskerBuilder};
use tasker_store::Store;

/// A fresh SQLite store in its own temp dir (kept alive by the returned guard).
pub async fn sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tasker.db").display());
    let store = tasker_store_sqlite::SqliteStore::connect(&url)
        .await
        .unwrap();
    (Arc::new(store), dir)
}

/// Engine settings for tests: no backoff delays, short leases.
pub fn test_config() -> EngineConfig {
    EngineConfig {
        backoff: BackoffPolicy::immediate(),
        lease_duration: Duration::from_secs(5),
        heartbeat_interval: Duration::from_millis(500),
        ..EngineConfig::default()
    }
}

pub fn template(yaml: &str) -> TaskTemplate {
    parse_template("<test>", yaml, None).unwrap()
}

pub fn builder(store: Arc<dyn Store>) -> TaskerBuilder {
    Tasker::builder(store).config(test_config())
}

/// One handler call as seen by [`Recorder`].
#[derive(Debug, Clone)]
pub struct Call {
    pub step: String,
    pub attempt: u32,
    pub start: Instant,
    pub end: Instant,
    pub parents: Vec<String>,
    pub idempotency_key: String,
}

/// Records every call with its start and end; succeeds with `{"step": name}`,
/// after `delay_ms` from the step's inputs.
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Vec<Call>>>);

#[async_trait::async_trait]
impl StepHandler for Recorder {
    async fn call(&self, step: &StepContext) -> Result<Value, StepError> {
        let start = Instant::now();
        if let Some(ms) = step.inputs.get("delay_ms").and_then(Value::as_u64) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let mut parents: Vec<String> = step.parent_results.keys().cloned().collect();
        parents.sort();
        self.0.lock().unwrap().push(Call {
            step: step.step_name.clone(),
            attempt: step.attempt,
            start,
            end: Instant::now(),
            parents,
            idempotency_key: step.idempotency_key.clone(),
        });
        Ok(json!({ "step": step.step_name }))
    }
}

impl Recorder {
    pub fn calls(&self) -> Vec<Call> {
        self.0.lock().unwrap().clone()
    }

    pub fn by_step(&self) -> HashMap<String, Call> {
        self.calls()
            .into_iter()
            .map(|c| (c.step.clone(), c))
            .collect()
    }
}

/// Fails `config.fail_times` times per step (retryable with `config.code`
/// if given, or permanent when `config.permanent`), then succeeds with `{"attempt": n}`. `fail_times: -1` fails forever.
#[derive(Clone, Default)]
pub struct Flaky {
    pub calls: Arc<AtomicU32>,
}

#[async_trait::async_trait]
impl StepHandler for Flaky {
    async fn call(&self, step: &StepContext) -> Result<Value, StepError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let fail_times = step
            .config
            .get("fail_times")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if fail_times < 0 || i64::from(step.attempt) <= fail_times {
            let msg = format!("attempt {} failed", step.attempt);
            if step.config.get("permanent").and_then(Value::as_bool) == Some(true) {
                return Err(StepError::permanent(msg).with_code("NOPE"));
            }
            let err = StepError::retryable(msg);
            return Err(match step.config.get("code").and_then(Value::as_str) {
                Some(code) => err.with_code(code),
                None => err,
            });
        }
        Ok(json!({ "attempt": step.attempt }))
    }
}

pub const WAIT: Duration = Duration::from_secs(30);

/// The `to_state` of every transition of a step, oldest first.
pub async fn step_states(store: &Arc<dyn Store>, step: uuid::Uuid) -> Vec<String> {
    store
        .step_transitions(step)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.to_state)
        .collect()
}

/// The `to_state` of every transition of a task, oldest first.
pub async fn task_states(store: &Arc<dyn Store>, task: uuid::Uuid) -> Vec<String> {
    store
        .task_transitions(task)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.to_state)
        .collect()
}

/// Starts a worker, creates one task, waits for it to finish, stops the
/// worker; returns the task's final row.
pub async fn run_once(
    tasker: &tasker_engine::Tasker,
    request: tasker_engine::TaskRequest,
) -> tasker_store::TaskRow {
    let worker = tasker.start();
    let task = tasker.create_task(request).await.unwrap();
    let done = tasker.wait_for_task(task.id, WAIT).await.unwrap();
    worker.shutdown().await;
    done
}
