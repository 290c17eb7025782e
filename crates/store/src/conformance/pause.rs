//! Pause / resume a task (docs/FLOW_CONTROL.md).

use super::factory::{Shape, new_task};
use super::*;
use crate::{StoreEvent, TaskQuery};
use serde_json::json;
use tasker_core::{StepState, TaskState};

/// A paused task starts no new step (claims and claim on completion skip
/// it, the wake-up time and queue depth ignore it) while its running step
/// finishes; other tasks run on; the task keeps its state (no error while
/// nothing of it moves); resuming makes the waiting step claimable and the
/// task completes. Every read shows `paused_at`; both actions are
/// transitions naming who asked.
pub async fn pause_stops_new_steps_and_resume_continues(store: Arc<dyn Store>) {
    let t = new_task(Shape::Linear(3), at(0));
    store.task_create(t.clone()).await.unwrap();
    let s0 = claim_one(&store, at(1)).await;
    let row = store.task_pause(t.id, at(2), Some("ops")).await.unwrap();
    assert_eq!(
        (row.status, row.paused_at),
        (TaskState::InProgress, Some(at(2)))
    );
    assert_eq!(store.task_get(t.id).await.unwrap(), row);
    let listed = store
        .task_list(&TaskQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.items[0].paused_at, Some(at(2)), "listing shows it");

    let other = new_task(Shape::Single, at(3));
    store.task_create(other.clone()).await.unwrap();
    let c = claim(&store, 10, at(4)).await;
    assert_eq!(c.len(), 1, "only the unpaused task's step: {c:?}");
    assert_eq!(c[0].task_id, other.id);

    // The running step finishes; its child becomes ready but is not claimed,
    // not even by claim on completion.
    let r = store
        .step_finish_and_claim(
            &[success(&s0, json!({"step": "s0"}))],
            at(5),
            Some(&params("w1", 10, at(5))),
        )
        .await
        .unwrap();
    assert_eq!((r.applied, r.claimed.len()), (1, 0), "{r:?}");
    let s1 = step(&store, t.id, "s1").await;
    assert_eq!((s1.status, s1.ready_at), (StepState::Pending, Some(at(5))));
    assert!(claim(&store, 10, at(6)).await.is_empty());
    assert_eq!(store.step_next_ready_at().await.unwrap(), None);
    assert_eq!(store.queue_depth(at(6), 100).await.unwrap().ready, 0);
    assert_eq!(
        store.task_get(t.id).await.unwrap().status,
        TaskState::InProgress,
        "paused is not stuck: the finaliser leaves it alone"
    );

    let mut rx = store.subscribe();
    let row = store.task_resume(t.id, at(7), Some("ops")).await.unwrap();
    assert_eq!((row.status, row.paused_at), (TaskState::InProgress, None));
    assert!(saw(&mut rx, |e| *e == StoreEvent::WorkAvailable).await);
    assert_eq!(store.step_next_ready_at().await.unwrap(), Some(at(5)));
    let s1c = claim_one(&store, at(8)).await;
    assert_eq!(s1c.step_name, "s1");
    succeed(&store, &s1c, at(9)).await;
    let s2 = claim_one(&store, at(10)).await;
    succeed(&store, &s2, at(11)).await;
    assert_eq!(
        store.task_get(t.id).await.unwrap().status,
        TaskState::Complete
    );

    let trs = store.task_transitions(t.id).await.unwrap();
    let actions: Vec<_> = trs
        .iter()
        .filter(|tr| tr.metadata.get("action").is_some())
        .map(|tr| (tr.from_state.as_deref(), tr.to_state.as_str(), &tr.metadata))
        .collect();
    assert_eq!(
        actions,
        vec![
            (
                Some("in_progress"),
                "in_progress",
                &json!({"action": "pause", "by": "ops"})
            ),
            (
                Some("in_progress"),
                "in_progress",
                &json!({"action": "resume", "by": "ops"})
            ),
        ]
    );

    // The outbox reads them as pause and resume, not a retry or a restart.
    super::events::assert_events_match_transitions(&store, t.id).await;
    let kinds: Vec<(String, serde_json::Value)> = super::events::task_events(&store, t.id)
        .await
        .into_iter()
        .filter(|e| e.event_type.starts_with("task."))
        .map(|e| (e.event_type, e.payload["by"].clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("task.created".to_string(), serde_json::Value::Null),
            ("task.started".to_string(), serde_json::Value::Null),
            ("task.paused".to_string(), json!("ops")),
            ("task.resumed".to_string(), json!("ops")),
            ("task.completed".to_string(), serde_json::Value::Null),
        ]
    );
}

/// A retry backoff survives a pause (resuming does not run the step early),
/// and the rules: only an open task can be paused, not twice; only a paused
/// task can be resumed; a missing task is not found.
pub async fn pause_keeps_backoff_and_follows_rules(store: Arc<dyn Store>) {
    let t = new_task(Shape::Single, at(0));
    store.task_create(t.clone()).await.unwrap();
    let a = claim_one(&store, at(1)).await;
    fail(&store, &a, Some(at(100)), at(2)).await;
    let row = store.task_pause(t.id, at(3), None).await.unwrap();
    assert_eq!(row.paused_at, Some(at(3)));
    assert_conflict(store.task_pause(t.id, at(4), None).await, "pause twice");
    store.task_resume(t.id, at(5), None).await.unwrap();
    assert_conflict(store.task_resume(t.id, at(6), None).await, "resume twice");
    assert!(claim(&store, 10, at(50)).await.is_empty(), "backoff kept");
    assert_eq!(store.step_next_ready_at().await.unwrap(), Some(at(100)));
    let again = claim_one(&store, at(100)).await;
    succeed(&store, &again, at(101)).await;
    assert_invalid(
        store.task_pause(t.id, at(102), None).await,
        "pause a complete task",
    );
    assert_not_found(
        store.task_pause(Uuid::now_v7(), at(103), None).await,
        "pause a missing task",
    );
    assert_not_found(
        store.task_resume(Uuid::now_v7(), at(103), None).await,
        "resume a missing task",
    );
    // A paused task in error stays paused through an operator retry: the
    // retried step waits for the resume.
    let e = new_task(Shape::Single, at(200));
    store.task_create(e.clone()).await.unwrap();
    let c = claim_one(&store, at(201)).await;
    fail(&store, &c, None, at(202)).await;
    assert_eq!(store.task_get(e.id).await.unwrap().status, TaskState::Error);
    store.task_pause(e.id, at(203), None).await.unwrap();
    store.task_retry(e.id, at(204), None).await.unwrap();
    assert!(claim(&store, 10, at(205)).await.is_empty(), "still paused");
    store.task_resume(e.id, at(206), None).await.unwrap();
    assert_eq!(claim(&store, 10, at(207)).await.len(), 1);
}

/// Step reads show a paused task's steps as paused (one read, the list and
/// the batch read alike) and resumed ones as not; cancelling a paused task
/// clears `paused_at` (nothing of it can resume).
pub async fn pause_shows_in_step_reads_and_cancel_clears_it(store: Arc<dyn Store>) {
    let t = new_task(Shape::Linear(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    assert!(!step(&store, t.id, "s0").await.paused);
    store.task_pause(t.id, at(1), None).await.unwrap();
    let s0 = step(&store, t.id, "s0").await;
    assert!(s0.paused, "step_list shows it");
    assert!(
        store.step_get(s0.id).await.unwrap().paused,
        "step_get shows it"
    );
    let many = store.step_list_many(&[t.id]).await.unwrap();
    assert!(
        many[&t.id].iter().all(|s| s.paused),
        "step_list_many shows it"
    );
    store.task_resume(t.id, at(2), None).await.unwrap();
    assert!(!store.step_get(s0.id).await.unwrap().paused);

    store.task_pause(t.id, at(3), None).await.unwrap();
    let cancelled = store.task_cancel(t.id, at(4), None).await.unwrap();
    assert_eq!(
        (cancelled.status, cancelled.paused_at),
        (TaskState::Cancelled, None)
    );
    assert_eq!(store.task_get(t.id).await.unwrap().paused_at, None);
    assert_conflict(
        store.task_resume(t.id, at(5), None).await,
        "nothing to resume",
    );
}
