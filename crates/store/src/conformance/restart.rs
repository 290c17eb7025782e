//! Restart a task from a step (docs/FLOW_CONTROL.md).

use super::factory::{Shape, new_task};
use super::*;
use serde_json::json;
use tasker_core::{StepState, TaskState};

/// A complete diamond `a → (b, c) → d` restarted from `b`: `b` and `d` run
/// again with fresh attempts, `a` and `c` keep their results (and `d` sees
/// `c`'s), the task completes again; every transition names who and why.
pub async fn restart_reruns_the_step_and_downstream(store: Arc<dyn Store>) {
    let t = new_task(Shape::Diamond, at(0));
    store.task_create(t.clone()).await.unwrap();
    assert_eq!(run_all(&store, at(1)).await, 4);
    assert_eq!(
        store.task_get(t.id).await.unwrap().status,
        TaskState::Complete
    );
    let a = step(&store, t.id, "a").await;
    let b = step(&store, t.id, "b").await;
    let c = step(&store, t.id, "c").await;

    let row = store
        .task_restart(t.id, b.id, at(10), Some("ops"), Some("bad export"))
        .await
        .unwrap();
    assert_eq!((row.status, row.completed_at), (TaskState::Pending, None));
    assert_eq!(step(&store, t.id, "a").await, a, "upstream untouched");
    assert_eq!(step(&store, t.id, "c").await, c, "a sibling untouched");
    let b2 = step(&store, t.id, "b").await;
    assert_eq!(
        (b2.status, b2.ready_at, b2.results.clone(), b2.completed_at),
        (StepState::Pending, Some(at(10)), None, None)
    );
    assert_eq!(
        b2.max_attempts,
        b.attempts + b.retry_limit,
        "a fresh budget"
    );
    let d2 = step(&store, t.id, "d").await;
    assert_eq!(
        (d2.status, d2.ready_at, d2.remaining_parents, d2.results),
        (StepState::Pending, None, 1, None)
    );

    let got = claim_one(&store, at(11)).await;
    assert_eq!(got.step_name, "b");
    assert_eq!(got.attempt, b.attempts + 1);
    succeed(&store, &got, at(12)).await;
    let d = claim_one(&store, at(13)).await;
    assert_eq!(d.step_name, "d");
    assert!(d.parent_results.contains_key("c"), "{:?}", d.parent_results);
    succeed(&store, &d, at(14)).await;
    assert_eq!(
        store.task_get(t.id).await.unwrap().status,
        TaskState::Complete
    );

    let why = json!({"action": "restart", "step": "b", "by": "ops", "reason": "bad export"});
    let task_tr: Vec<_> = store
        .task_transitions(t.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|tr| tr.metadata.get("action") == Some(&json!("restart")))
        .map(|tr| (tr.from_state, tr.to_state, tr.metadata))
        .collect();
    assert_eq!(task_tr.len(), 1, "{task_tr:?}");
    assert_eq!(
        (task_tr[0].0.as_deref(), task_tr[0].1.as_str()),
        (Some("complete"), "pending")
    );
    for (k, v) in why.as_object().unwrap() {
        assert_eq!(task_tr[0].2.get(k), Some(v), "task transition {k}");
    }
    for name in ["b", "d"] {
        let s = step(&store, t.id, name).await;
        let tr = store.step_transitions(s.id).await.unwrap();
        let restart: Vec<_> = tr
            .iter()
            .filter(|tr| tr.metadata.get("action") == Some(&json!("restart")))
            .collect();
        assert_eq!(restart.len(), 1, "{name}: {tr:?}");
        assert_eq!(
            (
                restart[0].from_state.as_deref(),
                restart[0].to_state.as_str()
            ),
            (Some("complete"), "pending")
        );
        assert_eq!(
            restart[0].metadata.get("reason"),
            Some(&json!("bad export"))
        );
    }
}

/// A failed task restarted from its failed step runs again; restarting a
/// running task is refused (`InvalidTransition`), a step of another task
/// is not found, and a step whose parents did not finish is a conflict.
pub async fn restart_follows_the_rules(store: Arc<dyn Store>) {
    let t = new_task(Shape::Linear(3), at(0));
    store.task_create(t.clone()).await.unwrap();
    let s0 = step(&store, t.id, "s0").await;
    assert_invalid(
        store.task_restart(t.id, s0.id, at(1), None, None).await,
        "a pending task",
    );
    let c = claim_one(&store, at(2)).await;
    assert_invalid(
        store.task_restart(t.id, s0.id, at(3), None, None).await,
        "a running task",
    );
    succeed(&store, &c, at(4)).await;
    // s1 fails for good: the task is in error; s2 never ran.
    let c = claim_one(&store, at(5)).await;
    assert_eq!(c.step_name, "s1");
    fail(&store, &c, None, at(6)).await;
    assert_eq!(store.task_get(t.id).await.unwrap().status, TaskState::Error);
    let s2 = step(&store, t.id, "s2").await;
    assert_conflict(
        store.task_restart(t.id, s2.id, at(20), None, None).await,
        "its parent failed",
    );
    let other = new_task(Shape::Single, at(0));
    store.task_create(other.clone()).await.unwrap();
    let foreign = step(&store, other.id, "a").await;
    assert_not_found(
        store
            .task_restart(t.id, foreign.id, at(20), None, None)
            .await,
        "a step of another task",
    );
    store.task_cancel(other.id, at(20), None).await.unwrap();
    assert_not_found(
        store
            .task_restart(Uuid::now_v7(), s2.id, at(20), None, None)
            .await,
        "an unknown task",
    );

    let s1 = step(&store, t.id, "s1").await;
    let row = store
        .task_restart(t.id, s1.id, at(21), None, None)
        .await
        .unwrap();
    assert_eq!(row.status, TaskState::Pending);
    let again = claim_one(&store, at(22)).await;
    assert_eq!(again.step_name, "s1");
    succeed(&store, &again, at(23)).await;
    let last = claim_one(&store, at(24)).await;
    succeed(&store, &last, at(25)).await;
    let done = store.task_get(t.id).await.unwrap();
    assert_eq!(done.status, TaskState::Complete);
    assert_eq!(
        step(&store, t.id, "s0").await.attempts,
        1,
        "upstream ran once"
    );
}
