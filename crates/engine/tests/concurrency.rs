//! Parallelism: independent ready steps overlap; joins wait for all parents;
//! many tasks run at once; the per-process limit holds.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tasker_core::TaskState;
use tasker_engine::{StepContext, StepError, StepHandler, TaskRequest};
use tokio::sync::Barrier;

/// Every call waits at a barrier for `n` calls: it can only pass if `n`
/// handlers run at the same time.
#[derive(Clone)]
struct Rendezvous(Arc<Barrier>);

#[async_trait::async_trait]
impl StepHandler for Rendezvous {
    async fn call(&self, _step: &StepContext) -> Result<serde_json::Value, StepError> {
        match tokio::time::timeout(Duration::from_secs(10), self.0.wait()).await {
            Ok(_) => Ok(json!({})),
            Err(_) => Err(StepError::permanent("siblings did not run concurrently")),
        }
    }
}

#[tokio::test]
async fn independent_ready_steps_run_at_the_same_time() {
    let (store, _dir) = sqlite().await;
    let yaml = "name: par\nstep_templates:\n  - name: root\n    handler: { kind: noop }\n  - name: a\n    depends_on_step: root\n    handler: { kind: meet }\n  - name: b\n    depends_on_step: root\n    handler: { kind: meet }\n  - name: c\n    depends_on_step: root\n    handler: { kind: meet }\n  - name: join\n    depends_on_steps: [a, b, c]\n    handler: { kind: noop }\n";
    let tasker = builder(store)
        .handler("meet", Rendezvous(Arc::new(Barrier::new(3))))
        .template(template(yaml))
        .build()
        .unwrap();
    let done = run_once(&tasker, TaskRequest::new("default", "par")).await;
    assert_eq!(
        done.status,
        TaskState::Complete,
        "the three siblings met at the barrier"
    );
}

#[tokio::test]
async fn join_starts_only_after_every_parent_ended() {
    let (store, _dir) = sqlite().await;
    let rec = Recorder::default();
    let yaml = "name: j\nstep_templates:\n  - name: fast\n    handler: { kind: record }\n    inputs: { delay_ms: 1 }\n  - name: slow\n    handler: { kind: record }\n    inputs: { delay_ms: 150 }\n  - name: join\n    depends_on_steps: [fast, slow]\n    handler: { kind: record }\n";
    let tasker = builder(store)
        .handler("record", rec.clone())
        .template(template(yaml))
        .build()
        .unwrap();
    run_once(&tasker, TaskRequest::new("default", "j")).await;
    let c = rec.by_step();
    assert!(
        c["fast"].start < c["slow"].end && c["slow"].start < c["fast"].end,
        "roots overlapped"
    );
    assert!(c["join"].start >= c["slow"].end);
    assert!(c["join"].start >= c["fast"].end);
}

/// Counts how many calls run at once.
#[derive(Clone, Default)]
struct Gauge {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl StepHandler for Gauge {
    async fn call(&self, _step: &StepContext) -> Result<serde_json::Value, StepError> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(json!({}))
    }
}

#[tokio::test]
async fn many_tasks_run_concurrently_within_the_process_limit() {
    let (store, _dir) = sqlite().await;
    let gauge = Gauge::default();
    let mut config = test_config();
    config.max_concurrent_steps = 8;
    let tasker = builder(store)
        .config(config)
        .handler("g", gauge.clone())
        .template(template(
            "name: m\nstep_templates:\n  - name: a\n    handler: { kind: g }\n",
        ))
        .build()
        .unwrap();
    let ids = tasker
        .create_tasks((0..60).map(|_| TaskRequest::new("default", "m")).collect())
        .await
        .unwrap();
    let worker = tasker.start();
    for id in &ids {
        assert_eq!(
            tasker.wait_for_task(*id, WAIT).await.unwrap().status,
            TaskState::Complete
        );
    }
    worker.shutdown().await;
    let max = gauge.max.load(Ordering::SeqCst);
    assert!(max <= 8, "limit exceeded: {max}");
    assert!(max >= 2, "tasks did not overlap: {max}");
}

#[tokio::test]
async fn per_task_limit_caps_a_wide_task() {
    let (store, _dir) = sqlite().await;
    let gauge = Gauge::default();
    let mut config = test_config();
    config.max_concurrent_steps_per_task = Some(2);
    let mut yaml = String::from("name: wide\nstep_templates:\n");
    for i in 0..12 {
        yaml.push_str(&format!("  - name: s{i}\n    handler: {{ kind: g }}\n"));
    }
    let tasker = builder(store)
        .config(config)
        .handler("g", gauge.clone())
        .template(template(&yaml))
        .build()
        .unwrap();
    let task = run_once(&tasker, TaskRequest::new("default", "wide")).await;
    assert_eq!(task.status, TaskState::Complete);
    assert!(gauge.max.load(Ordering::SeqCst) <= 2);
}

#[tokio::test]
async fn two_workers_on_one_file_run_each_step_once() {
    let (store, _dir) = sqlite().await;
    let rec = Recorder::default();
    let yaml = "name: d\nstep_templates:\n  - name: a\n    handler: { kind: record }\n  - name: b\n    depends_on_step: a\n    handler: { kind: record }\n  - name: c\n    depends_on_step: a\n    handler: { kind: record }\n  - name: d\n    depends_on_steps: [b, c]\n    handler: { kind: record }\n";
    let tasker = builder(store)
        .handler("record", rec.clone())
        .template(template(yaml))
        .build()
        .unwrap();
    let ids = tasker
        .create_tasks((0..50).map(|_| TaskRequest::new("default", "d")).collect())
        .await
        .unwrap();
    let (w1, w2) = (tasker.start(), tasker.start());
    for id in &ids {
        assert_eq!(
            tasker.wait_for_task(*id, WAIT).await.unwrap().status,
            TaskState::Complete
        );
    }
    w1.shutdown().await;
    w2.shutdown().await;
    assert_eq!(rec.calls().len(), 200);
    let mut keys: Vec<String> = rec.calls().into_iter().map(|c| c.idempotency_key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 200, "no step ran twice");
}
