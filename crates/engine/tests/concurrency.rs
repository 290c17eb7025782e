//! Parallelism: independent ready steps overlap; joins wait for all parents;
//! many tasks run at once; the per-process and per-task limits are reached
//! and never exceeded; two engines on one SQLite file share the work.
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
    // (That the roots run at the same time is proven with a barrier by
    // `independent_ready_steps_run_at_the_same_time`; comparing their
    // timestamps here would depend on scheduling luck.)
    let c = rec.by_step();
    assert!(c["join"].start >= c["slow"].end);
    assert!(c["join"].start >= c["fast"].end);
}

/// Counts how many calls run at once, and holds every call until `target`
/// calls have been running at the same moment (then lets all through). A
/// limit below `target` (or serial execution) never opens the gate: the calls
/// fail after 10 s, and the test with them; a limit above `target` shows as
/// `max > target`, since further calls start while the first ones wait.
#[derive(Clone)]
struct Gate {
    target: usize,
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
    open: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Gate {
    fn new(target: usize) -> Self {
        Gate {
            target,
            now: Arc::default(),
            max: Arc::default(),
            open: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }

    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl StepHandler for Gate {
    async fn call(&self, _step: &StepContext) -> Result<serde_json::Value, StepError> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        if n >= self.target {
            self.open.send_replace(true);
        }
        let mut rx = self.open.subscribe();
        let opened = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|o| *o)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        match opened {
            Ok(Ok(_)) => Ok(json!({})),
            _ => Err(StepError::permanent(format!(
                "never {} calls at once",
                self.target
            ))),
        }
    }
}

#[tokio::test]
async fn many_tasks_run_concurrently_up_to_the_process_limit() {
    let (store, _dir) = sqlite().await;
    let gate = Gate::new(8);
    let mut config = test_config();
    config.max_concurrent_steps = 8;
    let tasker = builder(store)
        .config(config)
        .handler("g", gate.clone())
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
            TaskState::Complete,
            "8 steps ran at once"
        );
    }
    worker.shutdown().await;
    assert_eq!(gate.max(), 8, "the limit is reached and never exceeded");
}

#[tokio::test]
async fn per_task_limit_caps_a_wide_task() {
    let (store, _dir) = sqlite().await;
    let gate = Gate::new(2);
    let mut config = test_config();
    config.max_concurrent_steps_per_task = Some(2);
    let mut yaml = String::from("name: wide\nstep_templates:\n");
    for i in 0..12 {
        yaml.push_str(&format!("  - name: s{i}\n    handler: {{ kind: g }}\n"));
    }
    let tasker = builder(store)
        .config(config)
        .handler("g", gate.clone())
        .template(template(&yaml))
        .build()
        .unwrap();
    let task = run_once(&tasker, TaskRequest::new("default", "wide")).await;
    assert_eq!(task.status, TaskState::Complete, "2 steps ran at once");
    assert_eq!(
        gate.max(),
        2,
        "the per-task limit is reached and never exceeded"
    );
}

/// A root whose completion makes `width` children ready, each a `g` step.
fn fan_yaml(width: usize) -> String {
    let mut yaml =
        String::from("name: fan\nstep_templates:\n  - name: root\n    handler: { kind: noop }\n");
    for i in 0..width {
        yaml.push_str(&format!(
            "  - name: c{i}\n    depends_on_step: root\n    handler: {{ kind: g }}\n"
        ));
    }
    yaml
}

/// The root's completion leases its children to the worker (claim on
/// completion) while the claim loop also looks for work: together they
/// fill the process's slots and never exceed them.
#[tokio::test]
async fn a_fan_out_leased_on_completion_stays_within_the_process_limit() {
    let (store, _dir) = sqlite().await;
    let gate = Gate::new(4);
    let mut config = test_config();
    config.max_concurrent_steps = 4;
    assert!(config.claim_on_completion);
    let tasker = builder(store)
        .config(config)
        .handler("g", gate.clone())
        .template(template(&fan_yaml(40)))
        .build()
        .unwrap();
    let task = run_once(&tasker, TaskRequest::new("default", "fan")).await;
    assert_eq!(task.status, TaskState::Complete, "4 children ran at once");
    assert_eq!(gate.max(), 4, "the limit is reached and never exceeded");
}

/// The same with a per-task limit: the claim on completion obeys it too.
#[tokio::test]
async fn a_fan_out_leased_on_completion_stays_within_the_per_task_limit() {
    let (store, _dir) = sqlite().await;
    let gate = Gate::new(2);
    let mut config = test_config();
    config.max_concurrent_steps_per_task = Some(2);
    let tasker = builder(store)
        .config(config)
        .handler("g", gate.clone())
        .template(template(&fan_yaml(12)))
        .build()
        .unwrap();
    let task = run_once(&tasker, TaskRequest::new("default", "fan")).await;
    assert_eq!(task.status, TaskState::Complete, "2 children ran at once");
    assert_eq!(
        gate.max(),
        2,
        "the per-task limit is reached and never exceeded"
    );
}

/// Two engines, each with its own connection pool to one SQLite file (as
/// two processes would have), one step at a time each: a pair of steps that
/// must run at the same moment proves both take work, and every step of 50
/// diamond tasks runs exactly once.
#[tokio::test]
async fn two_workers_on_one_file_run_each_step_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tasker.db").display());
    let rec = Recorder::default();
    let yaml = "name: d\nstep_templates:\n  - name: a\n    handler: { kind: record }\n  - name: b\n    depends_on_step: a\n    handler: { kind: record }\n  - name: c\n    depends_on_step: a\n    handler: { kind: record }\n  - name: d\n    depends_on_steps: [b, c]\n    handler: { kind: record }\n";
    let pair = "name: pair\nstep_templates:\n  - name: left\n    handler: { kind: meet }\n  - name: right\n    handler: { kind: meet }\n";
    let meet = Rendezvous(Arc::new(Barrier::new(2)));
    let mut engines = Vec::new();
    for _ in 0..2 {
        let store: Arc<dyn tasker_store::Store> = Arc::new(
            tasker_store_sqlite::SqliteStore::connect(&url)
                .await
                .unwrap(),
        );
        let mut config = test_config();
        config.max_concurrent_steps = 1;
        config.poll_interval = Duration::from_millis(50);
        engines.push(
            builder(store)
                .config(config)
                .handler("record", rec.clone())
                .handler("meet", meet.clone())
                .template(template(yaml))
                .template(template(pair))
                .build()
                .unwrap(),
        );
    }
    let pair_id = engines[0]
        .create_task(TaskRequest::new("default", "pair"))
        .await
        .unwrap()
        .id;
    let ids = engines[0]
        .create_tasks((0..50).map(|_| TaskRequest::new("default", "d")).collect())
        .await
        .unwrap();
    let (w1, w2) = (engines[0].start(), engines[1].start());
    assert_eq!(
        engines[0]
            .wait_for_task(pair_id, WAIT)
            .await
            .unwrap()
            .status,
        TaskState::Complete,
        "both engines ran a step at the same time"
    );
    for id in &ids {
        assert_eq!(
            engines[0].wait_for_task(*id, WAIT).await.unwrap().status,
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
