//! Retry schedules (`retry:` in a step template, docs/FLOW_CONTROL.md) as
//! the engine applies them: per-code delays, `retry_on` / `no_retry_on`,
//! for in-process handlers and external workers alike.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tasker_core::{StepState, TaskState};
use tasker_engine::clock::Clock;
use tasker_engine::external::ExternalClaim;
use tasker_engine::{StepError, TaskRequest};

fn claim() -> ExternalClaim {
    ExternalClaim {
        worker_id: "w".into(),
        kinds: vec!["external".into()],
        namespaces: None,
        max_steps: 1,
        lease: Duration::from_secs(30),
        wait: Duration::ZERO,
    }
}

/// An external step's failures wait the schedule's delay for their code
/// (the engine policy is immediate here, so any wait is the schedule's),
/// and a code in `no_retry_on` fails the step at once.
#[tokio::test]
async fn external_failures_follow_the_schedule_per_code() {
    let (store, _dir) = sqlite().await;
    let clock = std::sync::Arc::new(tasker_engine::clock::ManualClock::new(chrono::Utc::now()));
    let yaml = "name: ext\nstep_templates:\n  - name: only\n    handler: { kind: external }\n    default_retry_limit: 5\n    retry:\n      delays: [10, 20]\n      by_code: { HTTP_429: { delays: [120] } }\n      no_retry_on: [HTTP_400]\n";
    let tasker = builder(store.clone())
        .clock(clock.clone())
        .template(template(yaml))
        .build()
        .unwrap();
    let task = tasker
        .create_task(TaskRequest::new("default", "ext"))
        .await
        .unwrap();
    let fail_with = |code: Option<&'static str>| {
        let tasker = tasker.clone();
        async move {
            let s = tasker.external_claim(claim()).await.unwrap().remove(0);
            let err = StepError::retryable("busy");
            let err = match code {
                Some(c) => err.with_code(c),
                None => err,
            };
            tasker
                .external_fail(s.step.step_id, s.step.lease_token, err)
                .await
                .unwrap();
            tasker.store().step_get(s.step.step_id).await.unwrap()
        }
    };
    let waits = |step: &tasker_store::StepRow| {
        // Rounded: the store keeps microseconds, the clock nanoseconds.
        ((step.ready_at.unwrap() - clock.now()).num_milliseconds() as f64 / 1000.0).round() as i64
    };

    let step = fail_with(None).await;
    assert_eq!((step.status, waits(&step)), (StepState::Pending, 10));
    clock.advance(chrono::Duration::seconds(10));
    let step = fail_with(Some("HTTP_429")).await;
    assert_eq!(waits(&step), 120, "a rate-limited call waits longer");
    clock.advance(chrono::Duration::seconds(120));
    let step = fail_with(Some("HTTP_503")).await;
    assert_eq!(waits(&step), 20, "third failure: the last delay");
    clock.advance(chrono::Duration::seconds(20));
    let step = fail_with(Some("HTTP_400")).await;
    assert_eq!((step.status, step.attempts), (StepState::Error, 4));
    assert_eq!(
        store.task_get(task.id).await.unwrap().status,
        TaskState::Error
    );
}

/// In-process handlers: `retry_on` limits retries to the listed codes; an
/// error with another code fails after one attempt despite the retry limit.
#[tokio::test]
async fn in_process_failures_honour_retry_on() {
    let run = |code: &'static str| async move {
        let (store, _dir) = sqlite().await;
        let flaky = Flaky::default();
        let yaml = format!(
            "name: f\nstep_templates:\n  - name: call\n    handler: {{ kind: flaky, config: {{ fail_times: 2, code: {code} }} }}\n    default_retry_limit: 5\n    retry: {{ retry_on: [HTTP_503] }}\n"
        );
        let tasker = builder(store.clone())
            .handler("flaky", flaky.clone())
            .template(template(&yaml))
            .build()
            .unwrap();
        let task = run_once(&tasker, TaskRequest::new("default", "f")).await;
        let step = store.step_list(task.id).await.unwrap().remove(0);
        (
            task.status,
            step.attempts,
            flaky.calls.load(Ordering::SeqCst),
        )
    };
    assert_eq!(run("HTTP_503").await, (TaskState::Complete, 3, 3));
    assert_eq!(run("HTTP_500").await, (TaskState::Error, 1, 1));
}
