//! Operator actions: cancel / retry a task, resolve / cancel / retry / edit a
//! step, edit a task.

use super::factory::{Shape, TaskBuilder, new_task};
use super::*;
use crate::{StepUpdate, StoreEvent, TaskUpdate};
use serde_json::json;
use tasker_core::{StepState, TaskState};

/// Cancelling a task cancels its pending and running steps (leases cleared,
/// nothing claimable), keeps finished ones, and announces the end.
pub async fn cancel_task_cancels_open_steps(store: Arc<dyn Store>) {
    let t = new_task(Shape::Linear(3), at(0));
    store.task_create(t.clone()).await.unwrap();
    let s0 = claim_one(&store, at(1)).await;
    succeed(&store, &s0, at(2)).await;
    let s1 = claim_one(&store, at(3)).await;
    let mut rx = store.subscribe();
    let row = store.task_cancel(t.id, at(4), None).await.unwrap();
    assert_eq!(row.status, TaskState::Cancelled);
    assert_eq!(row.completed_at, Some(at(4)));
    assert_eq!(store.task_get(t.id).await.unwrap(), row);
    assert!(saw(&mut rx, |e| *e == StoreEvent::TaskFinished(t.id)).await);

    assert_eq!(
        step(&store, t.id, "s0").await.status,
        StepState::Complete,
        "done stays done"
    );
    let running = step(&store, t.id, "s1").await;
    assert_eq!(running.status, StepState::Cancelled);
    assert_eq!(running.lease_owner, None);
    assert_eq!(running.lease_expires_at, None);
    assert_eq!(
        step_moves(&store, s1.step_id).await.last().unwrap(),
        &(Some("in_progress".to_string()), "cancelled".to_string())
    );
    let waiting = step(&store, t.id, "s2").await;
    assert_eq!(
        (waiting.status, waiting.ready_at),
        (StepState::Cancelled, None)
    );
    assert_eq!(
        step_moves(&store, waiting.id).await,
        mv(&[(Some("pending"), "cancelled")])
    );
    // A step nobody leased has no worker to name (no member, not a null).
    let never_leased = store.step_transitions(waiting.id).await.unwrap();
    assert_eq!(never_leased[0].metadata.get("worker"), None);
    assert_eq!(
        task_moves(&store, t.id).await.last().unwrap(),
        &(Some("in_progress".to_string()), "cancelled".to_string())
    );
    assert!(claim(&store, 10, at(5)).await.is_empty());
    assert_eq!(store.step_next_ready_at().await.unwrap(), None);
    let c = store.task_step_counts(t.id, at(5)).await.unwrap();
    assert_eq!(
        (c.cancelled, c.done, c.pending, c.in_progress),
        (2, 1, 0, 0)
    );
}

/// Cancel follows the task table: a pending task can be cancelled, a
/// cancelled one cannot; a failed task can be closed (its failed step keeps
/// its error, its waiting steps are cancelled); a finished one stays finished
/// (no rewrite of its outcome or `completed_at`).
pub async fn cancel_task_follows_state_table(store: Arc<dyn Store>) {
    let pending = new_task(Shape::Single, at(0));
    store.task_create(pending.clone()).await.unwrap();
    assert_eq!(
        store
            .task_cancel(pending.id, at(1), None)
            .await
            .unwrap()
            .status,
        TaskState::Cancelled
    );
    assert_invalid(
        store.task_cancel(pending.id, at(2), None).await,
        "cancel a cancelled task",
    );
    assert_eq!(
        task_moves(&store, pending.id).await,
        mv(&[(None, "pending"), (Some("pending"), "cancelled")])
    );

    let failed = TaskBuilder::new("test", "close")
        .step("a", &[])
        .attempts(1, 0)
        .step("b", &["a"])
        .build(at(0));
    store.task_create(failed.clone()).await.unwrap();
    let c = claim_one(&store, at(1)).await;
    fail(&store, &c, None, at(2)).await;
    assert_eq!(
        store.task_get(failed.id).await.unwrap().status,
        TaskState::Error
    );
    let mut rx = store.subscribe();
    let row = store.task_cancel(failed.id, at(3), None).await.unwrap();
    assert_eq!(
        row.status,
        TaskState::Cancelled,
        "a failed task can be closed"
    );
    assert_eq!(row.completed_at, Some(at(3)));
    assert_eq!(store.task_get(failed.id).await.unwrap(), row);
    assert!(saw(&mut rx, |e| *e == StoreEvent::TaskFinished(failed.id)).await);
    assert_eq!(
        task_moves(&store, failed.id).await.last().unwrap(),
        &(Some("error".to_string()), "cancelled".to_string())
    );
    assert_eq!(
        step(&store, failed.id, "a").await.status,
        StepState::Error,
        "the failure stays on record"
    );
    assert_eq!(
        step(&store, failed.id, "b").await.status,
        StepState::Cancelled
    );
    assert_invalid(
        store.task_retry(failed.id, at(4), None).await,
        "retry a closed task",
    );
    assert_invalid(
        store.step_retry(c.step_id, at(4), None).await,
        "retry a step of a closed task",
    );
    assert_eq!(
        store.task_get(failed.id).await.unwrap().status,
        TaskState::Cancelled,
        "closed stays closed"
    );

    let done = new_task(Shape::Single, at(0));
    store.task_create(done.clone()).await.unwrap();
    run_all(&store, at(4)).await;
    let finished = store.task_get(done.id).await.unwrap();
    assert_eq!(finished.status, TaskState::Complete);
    assert_invalid(
        store.task_cancel(done.id, at(5), None).await,
        "cancel a complete task",
    );
    assert_eq!(
        store.task_get(done.id).await.unwrap(),
        finished,
        "a finished task is not rewritten"
    );
    assert_eq!(step(&store, done.id, "a").await.status, StepState::Complete);
}

/// Retrying a task in `error` gives its failed steps a new budget, makes
/// them ready, and the task can then complete.
pub async fn retry_task_refills_budget_and_runs_again(store: Arc<dyn Store>) {
    let t = TaskBuilder::new("test", "retry")
        .step("a", &[])
        .attempts(1, 2)
        .step("b", &["a"])
        .build(at(0));
    store.task_create(t.clone()).await.unwrap();
    let a = claim_one(&store, at(1)).await;
    assert_eq!(a.max_attempts, 1);
    fail(&store, &a, None, at(2)).await;
    assert_eq!(store.task_get(t.id).await.unwrap().status, TaskState::Error);

    let mut rx = store.subscribe();
    let row = store.task_retry(t.id, at(3), None).await.unwrap();
    assert_eq!(row.status, TaskState::Pending);
    assert_eq!(row.completed_at, None);
    assert!(saw(&mut rx, |e| *e == StoreEvent::WorkAvailable).await);
    let s = store.step_get(a.step_id).await.unwrap();
    assert_eq!(s.status, StepState::Pending);
    assert_eq!(s.max_attempts, 3, "attempts (1) + retry_limit (2)");
    assert_eq!(s.ready_at, Some(at(3)));
    assert_eq!(
        step_moves(&store, a.step_id).await.last().unwrap(),
        &(Some("error".to_string()), "pending".to_string())
    );
    let b = step(&store, t.id, "b").await;
    assert_eq!(
        (b.status, b.ready_at),
        (StepState::Pending, None),
        "b still waits for a"
    );

    let again = claim_one(&store, at(4)).await;
    assert_eq!(
        (again.step_id, again.attempt, again.max_attempts),
        (a.step_id, 2, 3)
    );
    assert_eq!(run_all_from(&store, again, at(5)).await, 1);
    let task = check_remaining(&store, t.id).await;
    assert_eq!(task.status, TaskState::Complete);
    assert_eq!(
        task_moves(&store, t.id).await,
        mv(&[
            (None, "pending"),
            (Some("pending"), "in_progress"),
            (Some("in_progress"), "error"),
            (Some("error"), "pending"),
            (Some("pending"), "in_progress"),
            (Some("in_progress"), "complete"),
        ])
    );
}

/// Succeeds `first`, then runs everything else; returns how many more ran.
async fn run_all_from(store: &Arc<dyn Store>, first: ClaimedStep, now: DateTime<Utc>) -> usize {
    succeed(store, &first, now).await;
    run_all(store, now).await
}

/// Only a task in `error` can be retried.
pub async fn retry_task_requires_error(store: Arc<dyn Store>) {
    let t = new_task(Shape::Linear(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    assert_invalid(
        store.task_retry(t.id, at(1), None).await,
        "retry a pending task",
    );
    claim_one(&store, at(1)).await;
    assert_invalid(
        store.task_retry(t.id, at(2), None).await,
        "retry a running task",
    );
    store.task_cancel(t.id, at(3), None).await.unwrap();
    assert_invalid(
        store.task_retry(t.id, at(4), None).await,
        "retry a cancelled task",
    );
}

/// Resolving a failed step by hand unblocks its children (with its results
/// as theirs), brings the task back, and the task then completes.
pub async fn resolve_step_unblocks_children_and_task_completes(store: Arc<dyn Store>) {
    let t = new_task(Shape::Linear(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    let s0 = claim_one(&store, at(1)).await;
    fail(&store, &s0, None, at(2)).await;
    assert_eq!(store.task_get(t.id).await.unwrap().status, TaskState::Error);

    let mut rx = store.subscribe();
    let row = store
        .step_resolve(s0.step_id, json!({"manual": true}), at(3), None)
        .await
        .unwrap();
    assert_eq!(row.status, StepState::ResolvedManually);
    assert_eq!(row.results, Some(json!({"manual": true})));
    assert_eq!(row.completed_at, Some(at(3)));
    assert_eq!(
        step_moves(&store, s0.step_id).await.last().unwrap(),
        &(Some("error".to_string()), "resolved_manually".to_string())
    );
    assert!(saw(&mut rx, |e| *e == StoreEvent::WorkAvailable).await);
    let s1 = step(&store, t.id, "s1").await;
    assert_eq!((s1.remaining_parents, s1.ready_at), (0, Some(at(3))));
    let task = check_remaining(&store, t.id).await;
    assert_eq!(task.status, TaskState::Pending, "work can move again");
    assert_eq!(task.steps_remaining, 1);

    let c = claim_one(&store, at(4)).await;
    assert_eq!(c.parent_results["s0"], json!({"manual": true}));
    let r = succeed(&store, &c, at(5)).await;
    assert_eq!(r.finished_tasks, [(t.id, TaskState::Complete)]);
    let moves = task_moves(&store, t.id).await;
    assert_eq!(moves.iter().filter(|(_, to)| to == "complete").count(), 1);
    assert_eq!(
        moves.last().unwrap(),
        &(Some("in_progress".to_string()), "complete".to_string())
    );
}

/// Resolving the last blocking step of a task in `error` when every other
/// step is done ends the task as `resolved_manually`.
pub async fn resolve_last_blocker_resolves_task(store: Arc<dyn Store>) {
    let t = new_task(Shape::Single, at(0));
    store.task_create(t.clone()).await.unwrap();
    let c = claim_one(&store, at(1)).await;
    fail(&store, &c, None, at(2)).await;
    let mut rx = store.subscribe();
    store
        .step_resolve(c.step_id, json!(null), at(3), None)
        .await
        .unwrap();
    let task = check_remaining(&store, t.id).await;
    assert_eq!(task.status, TaskState::ResolvedManually);
    assert_eq!(task.steps_remaining, 0);
    assert_eq!(task.completed_at, Some(at(3)));
    assert_eq!(
        task_moves(&store, t.id).await.last().unwrap(),
        &(Some("error".to_string()), "resolved_manually".to_string())
    );
    assert!(saw(&mut rx, |e| *e == StoreEvent::TaskFinished(t.id)).await);
}

/// Resolving a pending step of a running task counts as its success: it is
/// no longer claimable and its child becomes ready. Resolving every step
/// completes the task.
pub async fn resolve_pending_step_of_running_task(store: Arc<dyn Store>) {
    let t = new_task(Shape::Linear(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    let s0 = step(&store, t.id, "s0").await;
    store
        .step_resolve(s0.id, json!("skip"), at(1), None)
        .await
        .unwrap();
    let c = store.task_step_counts(t.id, at(1)).await.unwrap();
    assert_eq!((c.done, c.ready, c.pending), (1, 1, 1));
    let claimed = claim(&store, 10, at(1)).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].step_name, "s1");
    succeed(&store, &claimed[0], at(2)).await;
    assert_eq!(
        store.task_get(t.id).await.unwrap().status,
        TaskState::Complete
    );

    // All steps resolved by hand without any claim: the task completes too.
    let u = new_task(Shape::Linear(2), at(0));
    store.task_create(u.clone()).await.unwrap();
    for name in ["s0", "s1"] {
        let s = step(&store, u.id, name).await;
        store
            .step_resolve(s.id, json!(name), at(3), None)
            .await
            .unwrap();
    }
    let task = check_remaining(&store, u.id).await;
    assert_eq!(task.status, TaskState::Complete);
    assert_eq!(task.completed_at, Some(at(3)));
    let moves = task_moves(&store, u.id).await;
    assert_eq!(moves.last().unwrap().1, "complete");
    assert_eq!(moves.iter().filter(|(_, to)| to == "complete").count(), 1);
}

/// Running or finished steps cannot be resolved.
pub async fn resolve_rejects_running_and_done_steps(store: Arc<dyn Store>) {
    let t = new_task(Shape::Linear(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    let c = claim_one(&store, at(1)).await;
    assert_invalid(
        store.step_resolve(c.step_id, json!(1), at(2), None).await,
        "resolve a running step",
    );
    succeed(&store, &c, at(3)).await;
    assert_invalid(
        store.step_resolve(c.step_id, json!(1), at(4), None).await,
        "resolve a complete step",
    );
    let s = store.step_get(c.step_id).await.unwrap();
    assert_eq!(s.status, StepState::Complete);
    assert_eq!(s.results, Some(json!({"step": "s0"})));
}

/// A cancelled step blocks its dependants; the task goes to `error` once
/// nothing else can move, not before.
pub async fn cancel_step_blocks_task_once_nothing_moves(store: Arc<dyn Store>) {
    let t = TaskBuilder::new("test", "cancel")
        .step("a", &[])
        .kind("first")
        .step("b", &[])
        .step("c", &["b"])
        .build(at(0));
    store.task_create(t.clone()).await.unwrap();
    let mut p = params("w", 10, at(1));
    p.kinds = Some(vec!["first".to_string()]);
    let a = store.step_claim(&p).await.unwrap().remove(0);
    assert_eq!(a.step_name, "a");
    let b = step(&store, t.id, "b").await;
    let row = store.step_cancel(b.id, at(2), None).await.unwrap();
    assert_eq!(row.status, StepState::Cancelled);
    assert_eq!(row.ready_at, None);
    assert_eq!(row.completed_at, Some(at(2)));
    assert_eq!(
        step_moves(&store, b.id).await,
        mv(&[(Some("pending"), "cancelled")])
    );
    assert_eq!(
        store.task_get(t.id).await.unwrap().status,
        TaskState::InProgress,
        "a still runs"
    );
    assert!(
        claim(&store, 10, at(2)).await.is_empty(),
        "b is gone, c is blocked"
    );

    let r = succeed(&store, &a, at(3)).await;
    assert_eq!(r.finished_tasks, [(t.id, TaskState::Error)]);
    let c = store.task_step_counts(t.id, at(3)).await.unwrap();
    assert_eq!((c.done, c.cancelled, c.pending, c.ready), (1, 1, 1, 0));

    // With nothing running at all, cancelling the only ready step ends the task at once.
    let u = new_task(Shape::Single, at(0));
    store.task_create(u.clone()).await.unwrap();
    let only = step(&store, u.id, "a").await;
    store.step_cancel(only.id, at(4), None).await.unwrap();
    assert_eq!(store.task_get(u.id).await.unwrap().status, TaskState::Error);
}

/// Cancelling a running step drops its lease: the late result is ignored.
pub async fn cancel_running_step_rejects_late_result(store: Arc<dyn Store>) {
    let t = new_task(Shape::Roots(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    let got = claim(&store, 10, at(1)).await;
    let row = store
        .step_cancel(got[0].step_id, at(2), None)
        .await
        .unwrap();
    assert_eq!(row.status, StepState::Cancelled);
    assert_eq!(row.lease_owner, None);
    assert_eq!(row.lease_expires_at, None);
    let r = store
        .step_finish_many(&[success(&got[0], json!("late"))], at(3))
        .await
        .unwrap();
    assert_eq!(r.lease_lost, [got[0].step_id]);
    assert_eq!(
        store
            .step_lease_renew(&[lease(&got[0])], at(99), at(3))
            .await
            .unwrap(),
        [got[0].step_id]
    );
    let r = succeed(&store, &got[1], at(4)).await;
    assert_eq!(r.finished_tasks, [(t.id, TaskState::Error)]);
}

/// Finished steps cannot be cancelled.
pub async fn cancel_step_rejects_done_steps(store: Arc<dyn Store>) {
    let t = new_task(Shape::Linear(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    let c = claim_one(&store, at(1)).await;
    succeed(&store, &c, at(2)).await;
    assert_invalid(
        store.step_cancel(c.step_id, at(3), None).await,
        "cancel a complete step",
    );
    let s1 = step(&store, t.id, "s1").await;
    store.step_cancel(s1.id, at(4), None).await.unwrap();
    assert_invalid(
        store.step_cancel(s1.id, at(5), None).await,
        "cancel a cancelled step",
    );
}

/// Retrying one failed step gives it a new budget, makes it ready, and
/// brings a task in `error` back to `pending`.
pub async fn step_retry_makes_error_step_pending(store: Arc<dyn Store>) {
    let t = TaskBuilder::new("test", "step-retry")
        .step("a", &[])
        .attempts(2, 2)
        .build(at(0));
    store.task_create(t.clone()).await.unwrap();
    let first = claim_one(&store, at(1)).await;
    fail(&store, &first, Some(at(1)), at(2)).await;
    let second = claim_one(&store, at(2)).await;
    fail(&store, &second, None, at(3)).await;
    assert_eq!(store.task_get(t.id).await.unwrap().status, TaskState::Error);

    let mut rx = store.subscribe();
    let row = store.step_retry(first.step_id, at(4), None).await.unwrap();
    assert_eq!(row.status, StepState::Pending);
    assert_eq!(row.attempts, 2);
    assert_eq!(row.max_attempts, 4, "attempts (2) + retry_limit (2)");
    assert_eq!(row.ready_at, Some(at(4)));
    assert!(saw(&mut rx, |e| *e == StoreEvent::WorkAvailable).await);
    assert_eq!(
        store.task_get(t.id).await.unwrap().status,
        TaskState::Pending
    );
    assert_eq!(
        task_moves(&store, t.id).await.last().unwrap(),
        &(Some("error".to_string()), "pending".to_string())
    );

    let third = claim_one(&store, at(5)).await;
    assert_eq!((third.attempt, third.max_attempts), (3, 4));
    succeed(&store, &third, at(6)).await;
    assert_eq!(
        check_remaining(&store, t.id).await.status,
        TaskState::Complete
    );
}

/// Only a step in `error` can be retried.
pub async fn step_retry_requires_error(store: Arc<dyn Store>) {
    let t = new_task(Shape::Linear(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    let s1 = step(&store, t.id, "s1").await;
    assert_invalid(
        store.step_retry(s1.id, at(1), None).await,
        "retry a pending step",
    );
    let c = claim_one(&store, at(1)).await;
    assert_invalid(
        store.step_retry(c.step_id, at(2), None).await,
        "retry a running step",
    );
    succeed(&store, &c, at(3)).await;
    assert_invalid(
        store.step_retry(c.step_id, at(4), None).await,
        "retry a complete step",
    );
}

/// Inputs and the retry limit can be edited while a step is pending (or in
/// error), never while it runs or after it is done.
pub async fn step_update_edits_inputs_and_retry_limit(store: Arc<dyn Store>) {
    let t = new_task(Shape::Linear(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    let s1 = step(&store, t.id, "s1").await;
    let row = store
        .step_update(
            s1.id,
            StepUpdate {
                retry_limit: Some(5),
                inputs: Some(json!({"edited": true})),
            },
            at(1),
        )
        .await
        .unwrap();
    assert_eq!(row.inputs, json!({"edited": true}));
    assert_eq!(row.retry_limit, 5);
    assert_eq!(
        row.max_attempts, 5,
        "a never-run step gets the new limit as its budget"
    );
    assert_eq!(row.updated_at, at(1));
    assert_eq!(row.status, StepState::Pending);
    assert_eq!(store.step_get(s1.id).await.unwrap(), row);

    // Only the inputs: the limit stays.
    let row = store
        .step_update(
            s1.id,
            StepUpdate {
                retry_limit: None,
                inputs: Some(json!([1])),
            },
            at(2),
        )
        .await
        .unwrap();
    assert_eq!((row.inputs.clone(), row.retry_limit), (json!([1]), 5));

    let c = claim_one(&store, at(3)).await;
    assert_conflict(
        store
            .step_update(
                c.step_id,
                StepUpdate {
                    retry_limit: Some(9),
                    inputs: None,
                },
                at(4),
            )
            .await,
        "edit a running step",
    );
    succeed(&store, &c, at(5)).await;
    assert_conflict(
        store
            .step_update(
                c.step_id,
                StepUpdate {
                    retry_limit: None,
                    inputs: Some(json!(0)),
                },
                at(6),
            )
            .await,
        "edit a complete step",
    );
    // The edited inputs reach the handler.
    let c1 = claim_one(&store, at(7)).await;
    assert_eq!((c1.inputs.clone(), c1.max_attempts), (json!([1]), 5));
}

/// Reason and tags can be edited in any state; absent fields stay.
pub async fn task_update_edits_reason_and_tags(store: Arc<dyn Store>) {
    let t = new_task(Shape::Single, at(0));
    store.task_create(t.clone()).await.unwrap();
    let row = store
        .task_update(
            t.id,
            TaskUpdate {
                reason: Some("because".to_string()),
                tags: Some(vec!["x".to_string()]),
            },
            at(1),
        )
        .await
        .unwrap();
    assert_eq!(row.reason, "because");
    assert_eq!(row.tags, ["x"]);
    assert_eq!(row.updated_at, at(1));
    assert_eq!(row.status, TaskState::Pending);
    assert_eq!(row.context, t.context);
    assert_eq!(store.task_get(t.id).await.unwrap(), row);

    let row = store
        .task_update(
            t.id,
            TaskUpdate {
                reason: None,
                tags: Some(Vec::new()),
            },
            at(2),
        )
        .await
        .unwrap();
    assert_eq!(row.reason, "because");
    assert!(row.tags.is_empty());
    assert_eq!(
        task_moves(&store, t.id).await,
        mv(&[(None, "pending")]),
        "an edit is not a transition"
    );
    run_all(&store, at(3)).await;
    let row = store
        .task_update(
            t.id,
            TaskUpdate {
                reason: Some("after".to_string()),
                tags: None,
            },
            at(4),
        )
        .await
        .unwrap();
    assert_eq!(
        (row.reason.as_str(), row.status),
        ("after", TaskState::Complete)
    );
}

/// Every transition an operator action writes carries `by` (who asked) when
/// one is given, and only those: the worker's own transitions and an action
/// without `by` stay unmarked.
pub async fn operator_actions_record_who_asked(store: Arc<dyn Store>) {
    let by = |rows: &[crate::TransitionRow]| -> Vec<Option<String>> {
        rows.iter()
            .map(|r| {
                r.metadata
                    .get("by")
                    .and_then(|v| v.as_str())
                    .map(String::from)
            })
            .collect()
    };
    // A failed step, then its task retried by bob.
    let t = TaskBuilder::new("test", "who")
        .step("a", &[])
        .attempts(1, 2)
        .step("b", &["a"])
        .build(at(0));
    store.task_create(t.clone()).await.unwrap();
    let a = claim_one(&store, at(1)).await;
    fail(&store, &a, None, at(2)).await;
    store.task_retry(t.id, at(3), Some("bob")).await.unwrap();
    let a_moves = store.step_transitions(a.step_id).await.unwrap();
    let who = by(&a_moves);
    assert_eq!(who.last().unwrap().as_deref(), Some("bob"), "{a_moves:?}");
    assert!(
        who[..who.len() - 1].iter().all(Option::is_none),
        "the worker's transitions are not bob's: {a_moves:?}"
    );
    let t_moves = store.task_transitions(t.id).await.unwrap();
    assert_eq!(
        (
            t_moves.last().unwrap().to_state.as_str(),
            by(&t_moves).last().unwrap().as_deref()
        ),
        ("pending", Some("bob")),
        "{t_moves:?}"
    );

    // carol resolves `a`: its transition, and the task's completion once `b`
    // is resolved too, are hers.
    store
        .step_resolve(a.step_id, json!({"by": "hand"}), at(4), Some("carol"))
        .await
        .unwrap();
    let b = step(&store, t.id, "b").await;
    store
        .step_resolve(b.id, json!({}), at(5), Some("carol"))
        .await
        .unwrap();
    for s in [a.step_id, b.id] {
        let moves = store.step_transitions(s).await.unwrap();
        assert_eq!(
            by(&moves).last().unwrap().as_deref(),
            Some("carol"),
            "{moves:?}"
        );
    }
    let t_moves = store.task_transitions(t.id).await.unwrap();
    assert_eq!(
        by(&t_moves).last().unwrap().as_deref(),
        Some("carol"),
        "{t_moves:?}"
    );

    // alice cancels another task: the task and each step it cancels; an
    // action without `by` marks nothing.
    let u = new_task(Shape::Linear(2), at(6));
    store.task_create(u.clone()).await.unwrap();
    let v = new_task(Shape::Linear(1), at(6));
    store.task_create(v.clone()).await.unwrap();
    store.task_cancel(u.id, at(7), Some("alice")).await.unwrap();
    store.task_cancel(v.id, at(7), None).await.unwrap();
    let u_moves = store.task_transitions(u.id).await.unwrap();
    assert_eq!(by(&u_moves), vec![None, Some("alice".to_string())]);
    for s in store.step_list(u.id).await.unwrap() {
        let moves = store.step_transitions(s.id).await.unwrap();
        assert_eq!(by(&moves), vec![Some("alice".to_string())], "{moves:?}");
    }
    let v_moves = store.task_transitions(v.id).await.unwrap();
    assert!(by(&v_moves).iter().all(Option::is_none), "{v_moves:?}");

    // The events of those transitions carry `by` too; the others have none.
    let who_of = |events: &[crate::EventRow], ty: &str| -> Vec<Option<String>> {
        events
            .iter()
            .filter(|e| e.event_type == ty)
            .map(|e| {
                e.payload
                    .get("by")
                    .and_then(|v| v.as_str())
                    .map(String::from)
            })
            .collect()
    };
    let some = |s: &str| Some(s.to_string());
    let t_events = super::events::task_events(&store, t.id).await;
    assert_eq!(who_of(&t_events, "task.retry_requested"), vec![some("bob")]);
    assert_eq!(who_of(&t_events, "step.retry_scheduled"), vec![some("bob")]);
    assert_eq!(
        who_of(&t_events, "step.resolved_manually"),
        vec![some("carol"), some("carol")]
    );
    let finished = t_events
        .iter()
        .rfind(|e| e.event_type.starts_with("task."))
        .unwrap();
    assert_eq!(
        finished.payload.get("by").and_then(|v| v.as_str()),
        Some("carol"),
        "the task's end, caused by carol: {finished:?}"
    );
    for ty in ["task.created", "step.started", "step.failed"] {
        assert!(
            who_of(&t_events, ty).iter().all(Option::is_none),
            "{ty}: {t_events:?}"
        );
    }
    let u_events = super::events::task_events(&store, u.id).await;
    assert_eq!(who_of(&u_events, "task.cancelled"), vec![some("alice")]);
    assert_eq!(
        who_of(&u_events, "step.cancelled"),
        vec![some("alice"), some("alice")]
    );
    let v_events = super::events::task_events(&store, v.id).await;
    assert!(v_events.iter().all(|e| e.payload.get("by").is_none()));
}
