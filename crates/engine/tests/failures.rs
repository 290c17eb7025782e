//! Retries, exhaustion, permanent failures, timeouts, Retry-After, and the
//! operator actions (cancel, resolve, retry) on a real SQLite file.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tasker_core::{StepState, TaskState};
use tasker_engine::{StepContext, StepError, StepHandler, TaskRequest};

fn flaky_yaml(config: &str, retry_limit: u32) -> String {
    format!(
        "name: flaky\nstep_templates:\n  - name: first\n    handler: {{ kind: flaky, config: {config} }}\n    default_retry_limit: {retry_limit}\n  - name: after\n    depends_on_step: first\n    handler: {{ kind: noop }}\n"
    )
}

async fn run_flaky(
    config: &str,
    retry_limit: u32,
) -> (tasker_store::TaskRow, Vec<tasker_store::StepRow>, Flaky) {
    let (store, _dir) = sqlite().await;
    let flaky = Flaky::default();
    let tasker = builder(store.clone())
        .handler("flaky", flaky.clone())
        .template(template(&flaky_yaml(config, retry_limit)))
        .build()
        .unwrap();
    let done = run_once(&tasker, TaskRequest::new("default", "flaky")).await;
    let task = done.clone();
    let steps = store.step_list(task.id).await.unwrap();
    (done, steps, flaky)
}

#[tokio::test]
async fn fails_twice_then_succeeds() {
    let (task, steps, flaky) = run_flaky("{ fail_times: 2 }", 3).await;
    assert_eq!(task.status, TaskState::Complete);
    assert_eq!(steps[0].attempts, 3);
    assert_eq!(steps[0].results, Some(json!({"attempt": 3})));
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
    assert_eq!(steps[1].status, StepState::Complete);
}

#[tokio::test]
async fn retry_goes_error_then_pending_in_the_transition_log() {
    let (store, _dir) = sqlite().await;
    let tasker = builder(store.clone())
        .handler("flaky", Flaky::default())
        .template(template(&flaky_yaml("{ fail_times: 1 }", 3)))
        .build()
        .unwrap();
    let task = run_once(&tasker, TaskRequest::new("default", "flaky")).await;
    let first = &store.step_list(task.id).await.unwrap()[0];
    let states: Vec<String> = step_states(&store, first.id).await;
    assert_eq!(
        states,
        ["in_progress", "error", "pending", "in_progress", "complete"]
    );
}

#[tokio::test]
async fn always_failing_step_exhausts_its_attempts_and_errors_the_task() {
    let (task, steps, flaky) = run_flaky("{ fail_times: -1 }", 3).await;
    assert_eq!(task.status, TaskState::Error);
    assert_eq!(steps[0].status, StepState::Error);
    assert_eq!(steps[0].attempts, 3);
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
    let err = steps[0].last_error.clone().unwrap();
    assert_eq!(
        (err.kind.as_str(), err.attempt, err.message.as_str()),
        ("retryable", 3, "attempt 3 failed")
    );
    assert_eq!(steps[1].status, StepState::Pending, "the child never runs");
    assert_eq!(steps[1].attempts, 0);
}

#[tokio::test]
async fn permanent_failure_stops_at_once() {
    let (task, steps, flaky) = run_flaky("{ fail_times: -1, permanent: true }", 5).await;
    assert_eq!(task.status, TaskState::Error);
    assert_eq!(steps[0].attempts, 1);
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 1);
    let err = steps[0].last_error.clone().unwrap();
    assert_eq!(err.kind, "permanent");
    assert_eq!(err.code.as_deref(), Some("NOPE"));
}

#[tokio::test]
async fn not_retryable_means_one_attempt() {
    let (store, _dir) = sqlite().await;
    let yaml = "name: once\nstep_templates:\n  - name: a\n    handler: { kind: flaky, config: { fail_times: -1 } }\n    default_retryable: false\n    default_retry_limit: 5\n";
    let flaky = Flaky::default();
    let tasker = builder(store.clone())
        .handler("flaky", flaky.clone())
        .template(template(yaml))
        .build()
        .unwrap();
    let task = run_once(&tasker, TaskRequest::new("default", "once")).await;
    assert_eq!(task.status, TaskState::Error);
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unknown_handler_kind_is_rejected_at_registration() {
    let (store, _dir) = sqlite().await;
    let err = builder(store)
        .template(template(
            "name: x\nstep_templates:\n  - name: a\n    handler: { kind: nosuch }\n",
        ))
        .build()
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "template default.x@0.1.0 uses unknown handler kind(s): nosuch"
    );
}

/// Fails its first attempt (asking for `retry_after`, if set), then succeeds;
/// records when each attempt started.
#[derive(Clone, Default)]
struct FailOnce {
    retry_after: Option<Duration>,
    starts: std::sync::Arc<std::sync::Mutex<Vec<Instant>>>,
}

#[async_trait::async_trait]
impl StepHandler for FailOnce {
    async fn call(&self, step: &StepContext) -> Result<serde_json::Value, StepError> {
        self.starts.lock().unwrap().push(Instant::now());
        match (step.attempt, self.retry_after) {
            (1, Some(d)) => Err(StepError::retryable("busy").with_retry_after(d)),
            (1, None) => Err(StepError::retryable("once")),
            _ => Ok(json!({})),
        }
    }
}

/// Runs one `FailOnce` step to completion and returns the time between its two attempts.
async fn gap_between_attempts(config: tasker_engine::EngineConfig, handler: FailOnce) -> Duration {
    let (store, _dir) = sqlite().await;
    let tasker = builder(store)
        .config(config)
        .handler("once", handler.clone())
        .template(template(
            "name: r\nstep_templates:\n  - name: a\n    handler: { kind: once }\n",
        ))
        .build()
        .unwrap();
    let task = run_once(&tasker, TaskRequest::new("default", "r")).await;
    assert_eq!(task.status, TaskState::Complete);
    let starts = handler.starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 2);
    starts[1] - starts[0]
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let mut config = test_config();
    config.backoff.max_backoff_seconds = 10.0; // immediate() caps at 0; allow the request
    let handler = FailOnce {
        retry_after: Some(Duration::from_millis(300)),
        ..FailOnce::default()
    };
    let gap = gap_between_attempts(config, handler).await;
    assert!(
        gap >= Duration::from_millis(300),
        "second attempt after {gap:?}"
    );
}

#[tokio::test]
async fn backoff_policy_delays_retries() {
    let mut config = test_config();
    config.backoff = tasker_core::BackoffPolicy {
        default_backoff_seconds: vec![0.25],
        jitter_enabled: false,
        ..Default::default()
    };
    let gap = gap_between_attempts(config, FailOnce::default()).await;
    assert!(
        gap >= Duration::from_millis(250),
        "second attempt after {gap:?}"
    );
}

#[tokio::test]
async fn step_timeout_fails_the_attempt() {
    let (store, _dir) = sqlite().await;
    let yaml = "name: slow\nstep_templates:\n  - name: a\n    handler: { kind: sleep, config: { seconds: 30 } }\n    timeout_seconds: 0.2\n    default_retry_limit: 2\n";
    let tasker = builder(store.clone())
        .template(template(yaml))
        .build()
        .unwrap();
    let worker = tasker.start();
    let started = Instant::now();
    let task = tasker
        .create_task(TaskRequest::new("default", "slow"))
        .await
        .unwrap();
    assert_eq!(
        tasker.wait_for_task(task.id, WAIT).await.unwrap().status,
        TaskState::Error
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    worker.shutdown().await;
    let step = &store.step_list(task.id).await.unwrap()[0];
    assert_eq!(step.attempts, 2);
    let err = step.last_error.clone().unwrap();
    assert_eq!(
        (err.kind.as_str(), err.code.as_deref()),
        ("timeout", Some("TIMEOUT"))
    );
}

#[tokio::test]
async fn retrying_a_failed_task_gives_failed_steps_new_attempts() {
    let (store, _dir) = sqlite().await;
    let flaky = Flaky::default();
    // Fails 3 times: exhausts the 2 attempts, then succeeds on the 3rd after a retry.
    let tasker = builder(store.clone())
        .handler("flaky", flaky.clone())
        .template(template(&flaky_yaml("{ fail_times: 2 }", 2)))
        .build()
        .unwrap();
    let worker = tasker.start();
    let task = tasker
        .create_task(TaskRequest::new("default", "flaky"))
        .await
        .unwrap();
    assert_eq!(
        tasker.wait_for_task(task.id, WAIT).await.unwrap().status,
        TaskState::Error
    );
    let retried = tasker.retry_task(task.id, None).await.unwrap();
    assert_eq!(retried.status, TaskState::Pending);
    let done = tasker.wait_for_task(task.id, WAIT).await.unwrap();
    worker.shutdown().await;
    assert_eq!(done.status, TaskState::Complete);
    let steps = store.step_list(task.id).await.unwrap();
    assert_eq!(steps[0].attempts, 3);
    assert_eq!(steps[1].status, StepState::Complete);
    let t: Vec<String> = task_states(&store, task.id).await;
    assert_eq!(
        t,
        [
            "pending",
            "in_progress",
            "error",
            "pending",
            "in_progress",
            "complete"
        ]
    );
}

#[tokio::test]
async fn manually_resolving_a_failed_step_unblocks_its_children() {
    let (store, _dir) = sqlite().await;
    let tasker = builder(store.clone())
        .handler("flaky", Flaky::default())
        .template(template(&flaky_yaml(
            "{ fail_times: -1, permanent: true }",
            1,
        )))
        .build()
        .unwrap();
    let worker = tasker.start();
    let task = tasker
        .create_task(TaskRequest::new("default", "flaky"))
        .await
        .unwrap();
    assert_eq!(
        tasker.wait_for_task(task.id, WAIT).await.unwrap().status,
        TaskState::Error
    );
    let first = store.step_list(task.id).await.unwrap()[0].clone();
    let resolved = tasker
        .resolve_step(first.id, json!({"manual": true}), None)
        .await
        .unwrap();
    assert_eq!(resolved.status, StepState::ResolvedManually);
    let done = tasker.wait_for_task(task.id, WAIT).await.unwrap();
    worker.shutdown().await;
    assert_eq!(done.status, TaskState::Complete);
    let steps = store.step_list(task.id).await.unwrap();
    assert_eq!(steps[1].status, StepState::Complete);
    assert_eq!(steps[0].results, Some(json!({"manual": true})));
}

#[tokio::test]
async fn cancelling_a_task_stops_new_steps() {
    let (store, _dir) = sqlite().await;
    let rec = Recorder::default();
    let yaml = "name: c\nstep_templates:\n  - name: a\n    handler: { kind: record }\n  - name: b\n    depends_on_step: a\n    handler: { kind: record }\n";
    let tasker = builder(store.clone())
        .handler("record", rec.clone())
        .template(template(yaml))
        .build()
        .unwrap();
    // Cancel before any worker runs: nothing may start afterwards.
    let task = tasker
        .create_task(TaskRequest::new("default", "c"))
        .await
        .unwrap();
    let cancelled = tasker.cancel_task(task.id, None).await.unwrap();
    assert_eq!(cancelled.status, TaskState::Cancelled);
    let worker = tasker.start();
    // A second task proves the worker is running and idle by the time it completes.
    let other = tasker
        .create_task(TaskRequest::new("default", "c"))
        .await
        .unwrap();
    assert_eq!(
        tasker.wait_for_task(other.id, WAIT).await.unwrap().status,
        TaskState::Complete
    );
    worker.shutdown().await;
    assert_eq!(rec.calls().len(), 2, "only the second task's steps ran");
    let steps = store.step_list(task.id).await.unwrap();
    assert!(
        steps
            .iter()
            .all(|s| s.status == StepState::Cancelled && s.attempts == 0)
    );
    // Illegal transition: a cancelled task cannot be cancelled again.
    let err = tasker.cancel_task(task.id, None).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot go from `cancelled` to `cancelled`"),
        "{err}"
    );
}

/// Blocks until released, so a test can act while a step is running.
#[derive(Clone)]
struct Gate(
    std::sync::Arc<tokio::sync::Notify>,
    std::sync::Arc<tokio::sync::Notify>,
);

#[async_trait::async_trait]
impl StepHandler for Gate {
    async fn call(&self, _step: &StepContext) -> Result<serde_json::Value, StepError> {
        self.0.notify_one(); // started
        self.1.notified().await; // released
        Ok(json!({}))
    }
}

#[tokio::test]
async fn cancelling_while_a_step_runs_rejects_its_late_result_and_starts_nothing_more() {
    let (store, _dir) = sqlite().await;
    let gate = Gate(Default::default(), Default::default());
    let rec = Recorder::default();
    let yaml = "name: c\nstep_templates:\n  - name: a\n    handler: { kind: gate }\n  - name: b\n    depends_on_step: a\n    handler: { kind: record }\n";
    let tasker = builder(store.clone())
        .handler("gate", gate.clone())
        .handler("record", rec.clone())
        .template(template(yaml))
        .build()
        .unwrap();
    let worker = tasker.start();
    let task = tasker
        .create_task(TaskRequest::new("default", "c"))
        .await
        .unwrap();
    gate.0.notified().await;
    tasker.cancel_task(task.id, None).await.unwrap();
    gate.1.notify_one();
    worker.shutdown().await; // drains: the late result is written (and rejected)
    let steps = store.step_list(task.id).await.unwrap();
    assert_eq!(steps[0].status, StepState::Cancelled);
    assert_eq!(steps[1].status, StepState::Cancelled);
    assert!(rec.calls().is_empty());
    assert_eq!(
        store.task_get(task.id).await.unwrap().status,
        TaskState::Cancelled
    );
}

#[tokio::test]
async fn identity_hash_rejects_duplicates_in_window() {
    let (store, _dir) = sqlite().await;
    let mut config = test_config();
    config.identity_strategy = tasker_core::identity::IdentityStrategy::Hash;
    let tasker = builder(store)
        .config(config)
        .template(template(
            "name: d\nstep_templates:\n  - name: a\n    handler: { kind: noop }\n",
        ))
        .build()
        .unwrap();
    let req = TaskRequest::new("default", "d").context(json!({"order": 1}));
    let first = tasker.create_task(req.clone()).await.unwrap();
    let err = tasker.create_task(req.clone()).await.unwrap_err();
    assert!(err.to_string().contains(&first.id.to_string()), "{err}");
    tasker
        .create_task(req.context(json!({"order": 2})))
        .await
        .unwrap();
}

#[tokio::test]
async fn context_schema_is_enforced_with_paths() {
    let (store, _dir) = sqlite().await;
    let yaml = "name: s\ncontext_schema:\n  type: object\n  required: [email]\n  properties:\n    email: { type: string }\nstep_templates:\n  - name: a\n    handler: { kind: noop }\n";
    let tasker = builder(store.clone())
        .template(template(yaml))
        .build()
        .unwrap();
    let err = tasker
        .create_task(TaskRequest::new("default", "s").context(json!({"email": 5})))
        .await
        .unwrap_err();
    match err {
        tasker_engine::EngineError::InvalidContext(v) => assert_eq!(v[0].path, "/email"),
        other => panic!("unexpected {other}"),
    }
    assert_eq!(
        store.task_list(&Default::default()).await.unwrap().total,
        Some(0),
        "nothing stored"
    );
}

#[tokio::test]
async fn in_flight_tasks_keep_their_template_version() {
    let (store, _dir) = sqlite().await;
    let rec = Recorder::default();
    let v1 = "name: v\nversion: 1.0.0\nstep_templates:\n  - name: old_step\n    handler: { kind: record }\n";
    let v2 = "name: v\nversion: 1.1.0\nstep_templates:\n  - name: new_step\n    handler: { kind: record }\n";
    let tasker = builder(store.clone())
        .handler("record", rec.clone())
        .template(template(v1))
        .build()
        .unwrap();
    let task = tasker
        .create_task(TaskRequest::new("default", "v"))
        .await
        .unwrap();
    tasker
        .register_templates(vec![template(v2)], false)
        .unwrap();
    let worker = tasker.start();
    tasker.wait_for_task(task.id, WAIT).await.unwrap();
    let newer = tasker
        .create_task(TaskRequest::new("default", "v"))
        .await
        .unwrap();
    tasker.wait_for_task(newer.id, WAIT).await.unwrap();
    worker.shutdown().await;
    assert_eq!(task.version, "1.0.0");
    assert_eq!(newer.version, "1.1.0");
    let names: Vec<String> = rec.calls().into_iter().map(|c| c.step).collect();
    assert_eq!(names, ["old_step", "new_step"]);
}

#[tokio::test]
async fn idempotency_key_is_stable_across_attempts() {
    #[derive(Clone, Default)]
    struct Keys(std::sync::Arc<std::sync::Mutex<Vec<(u32, String)>>>);
    #[async_trait::async_trait]
    impl StepHandler for Keys {
        async fn call(&self, step: &StepContext) -> Result<serde_json::Value, StepError> {
            self.0
                .lock()
                .unwrap()
                .push((step.attempt, step.idempotency_key.clone()));
            if step.attempt < 3 {
                Err(StepError::retryable("again"))
            } else {
                Ok(json!({}))
            }
        }
    }
    let (store, _dir) = sqlite().await;
    let keys = Keys::default();
    let tasker = builder(store)
        .handler("k", keys.clone())
        .template(template(
            "name: k\nstep_templates:\n  - name: a\n    handler: { kind: k }\n",
        ))
        .build()
        .unwrap();
    run_once(&tasker, TaskRequest::new("default", "k")).await;
    let seen = keys.0.lock().unwrap().clone();
    assert_eq!(seen.iter().map(|(a, _)| *a).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(seen.iter().all(|(_, k)| k == &seen[0].1));
}
