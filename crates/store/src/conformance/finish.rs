//! Finishing: success, failure, retries, children, finalisation, lost leases.

use super::factory::{Shape, TaskBuilder, new_task};
use super::*;
use crate::StoreEvent;
use serde_json::json;
use tasker_core::{StepState, TaskState};

/// Success completes the step (results, time, lease cleared) and makes its
/// child ready.
pub async fn success_completes_step_and_unblocks_child(store: Arc<dyn Store>) {
    let t = new_task(Shape::Linear(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    let c = claim_one(&store, at(1)).await;
    let r = store
        .step_finish_many(&[success(&c, json!({"answer": 42}))], at(2))
        .await
        .unwrap();
    assert_eq!(r.applied, 1);
    assert!(r.lease_lost.is_empty());
    assert_eq!(r.newly_ready, 1);
    assert!(r.finished_tasks.is_empty());

    let s0 = step(&store, t.id, "s0").await;
    assert_eq!(s0.status, StepState::Complete);
    assert_eq!(s0.results, Some(json!({"answer": 42})));
    assert_eq!(s0.completed_at, Some(at(2)));
    assert_eq!(s0.updated_at, at(2));
    assert_eq!(s0.lease_owner, None);
    assert_eq!(s0.lease_expires_at, None);
    assert_eq!(s0.ready_at, None);
    assert_eq!(s0.attempts, 1);
    assert_eq!(
        step_moves(&store, s0.id).await,
        mv(&[
            (Some("pending"), "in_progress"),
            (Some("in_progress"), "complete")
        ])
    );
    // Each transition's metadata, whole: the attempt and the worker that
    // held the lease (`claim_one` claims as w1), no other member (no null
    // error or kind).
    for tr in store.step_transitions(s0.id).await.unwrap() {
        assert_eq!(tr.metadata, json!({"attempt": 1, "worker": "w1"}));
    }
    let s1 = step(&store, t.id, "s1").await;
    assert_eq!(s1.remaining_parents, 0);
    assert_eq!(s1.ready_at, Some(at(2)), "ready when its parent finished");
    assert_eq!(s1.status, StepState::Pending);
    let task = check_remaining(&store, t.id).await;
    assert_eq!(task.steps_remaining, 1);
    assert_eq!(task.status, TaskState::InProgress);
}

/// A child with two parents becomes ready only when both are done.
pub async fn child_waits_for_all_parents(store: Arc<dyn Store>) {
    let t = new_task(Shape::Diamond, at(0));
    store.task_create(t.clone()).await.unwrap();
    let a = claim_one(&store, at(1)).await;
    assert_eq!(succeed(&store, &a, at(2)).await.newly_ready, 2, "b and c");
    let bc = claim(&store, 10, at(3)).await;
    let b = bc.iter().find(|c| c.step_name == "b").unwrap();
    let c = bc.iter().find(|c| c.step_name == "c").unwrap();

    assert_eq!(succeed(&store, b, at(4)).await.newly_ready, 0);
    let d = step(&store, t.id, "d").await;
    assert_eq!((d.remaining_parents, d.ready_at), (1, None));
    assert!(
        claim(&store, 10, at(4)).await.is_empty(),
        "d still waits for c"
    );

    assert_eq!(succeed(&store, c, at(5)).await.newly_ready, 1);
    let d = step(&store, t.id, "d").await;
    assert_eq!((d.remaining_parents, d.ready_at), (0, Some(at(5))));
    assert_eq!(claim_one(&store, at(5)).await.step_name, "d");
}

/// Both parents of a child finishing in the same batch count twice: the
/// child becomes ready exactly once.
pub async fn two_parents_finishing_in_one_batch(store: Arc<dyn Store>) {
    let t = new_task(Shape::Diamond, at(0));
    store.task_create(t.clone()).await.unwrap();
    let a = claim_one(&store, at(1)).await;
    succeed(&store, &a, at(2)).await;
    let bc = claim(&store, 10, at(3)).await;
    assert_eq!(bc.len(), 2);
    let outcomes: Vec<_> = bc.iter().map(|c| success(c, json!(c.step_name))).collect();
    let r = store.step_finish_many(&outcomes, at(4)).await.unwrap();
    assert_eq!(r.applied, 2);
    assert_eq!(r.newly_ready, 1);
    let d = step(&store, t.id, "d").await;
    assert_eq!((d.remaining_parents, d.ready_at), (0, Some(at(4))));
    let c = store.task_step_counts(t.id, at(4)).await.unwrap();
    assert_eq!((c.ready, c.done, c.pending), (1, 3, 1));
    let dc = claim_one(&store, at(4)).await;
    assert_eq!(dc.parent_results.len(), 2);
}

/// The last success completes the task with one transition, reported once,
/// announced once.
pub async fn task_completes_exactly_once(store: Arc<dyn Store>) {
    let t = new_task(Shape::Linear(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    let mut rx = store.subscribe();
    let s0 = claim_one(&store, at(1)).await;
    assert!(succeed(&store, &s0, at(2)).await.finished_tasks.is_empty());
    let s1 = claim_one(&store, at(3)).await;
    let r = succeed(&store, &s1, at(4)).await;
    assert_eq!(r.finished_tasks, [(t.id, TaskState::Complete)]);

    let task = check_remaining(&store, t.id).await;
    assert_eq!(task.status, TaskState::Complete);
    assert_eq!(task.steps_remaining, 0);
    assert_eq!(task.completed_at, Some(at(4)));
    let tt = store.task_transitions(t.id).await.unwrap();
    assert_eq!(
        moves(&tt),
        [
            (None, "pending"),
            (Some("pending"), "in_progress"),
            (Some("in_progress"), "complete")
        ]
    );
    assert_eq!(tt[2].created_at, at(4));
    let c = store.task_step_counts(t.id, at(4)).await.unwrap();
    assert_eq!((c.total, c.done, c.pending, c.in_progress), (2, 2, 0, 0));
    assert!(saw(&mut rx, |e| *e == StoreEvent::TaskFinished(t.id)).await);
    // Nothing is left to claim and a replayed outcome changes nothing.
    assert!(claim(&store, 10, at(5)).await.is_empty());
    let again = store
        .step_finish_many(&[success(&s1, json!(1))], at(6))
        .await
        .unwrap();
    assert_eq!(again.lease_lost, [s1.step_id]);
    assert!(again.finished_tasks.is_empty());
    assert_eq!(store.task_transitions(t.id).await.unwrap().len(), 3);
}

/// A failure with `retry_at` goes `in_progress → error → pending`, waits
/// until `retry_at`, keeps the error, and runs again with the next attempt.
pub async fn failure_with_retry_reschedules(store: Arc<dyn Store>) {
    let t = new_task(Shape::Single, at(0));
    store.task_create(t.clone()).await.unwrap();
    let c = claim_one(&store, at(1)).await;
    let r = fail(&store, &c, Some(at(30)), at(2)).await;
    assert_eq!((r.applied, r.newly_ready), (1, 0));
    assert!(r.finished_tasks.is_empty());

    let s = store.step_get(c.step_id).await.unwrap();
    assert_eq!(s.status, StepState::Pending);
    assert_eq!(s.ready_at, Some(at(30)));
    assert_eq!(s.attempts, 1);
    assert_eq!(s.lease_owner, None);
    assert_eq!(s.lease_expires_at, None);
    let e = s.last_error.expect("last_error recorded");
    assert_eq!(e.message, "a failed");
    assert_eq!(e.kind, "retryable");
    assert_eq!(e.code.as_deref(), Some("E42"));
    assert_eq!(e.attempt, 1);
    let tr = store.step_transitions(c.step_id).await.unwrap();
    assert_eq!(
        moves(&tr),
        [
            (Some("pending"), "in_progress"),
            (Some("in_progress"), "error"),
            (Some("error"), "pending")
        ]
    );
    assert_eq!(tr[1].metadata["error"]["message"], json!("a failed"));

    let counts = store.task_step_counts(t.id, at(2)).await.unwrap();
    assert_eq!(
        (
            counts.pending,
            counts.ready,
            counts.scheduled,
            counts.retrying
        ),
        (1, 0, 1, 1)
    );
    assert_eq!(
        store.task_get(t.id).await.unwrap().status,
        TaskState::InProgress
    );
    assert_eq!(store.step_next_ready_at().await.unwrap(), Some(at(30)));

    let again = claim_one(&store, at(30)).await;
    assert_eq!(again.attempt, 2);
    succeed(&store, &again, at(31)).await;
    assert_eq!(
        store.task_get(t.id).await.unwrap().status,
        TaskState::Complete
    );
}

/// A retry due now is ready at once, counted in `newly_ready` and announced.
pub async fn failure_with_immediate_retry_is_ready_now(store: Arc<dyn Store>) {
    let t = new_task(Shape::Single, at(0));
    store.task_create(t.clone()).await.unwrap();
    let c = claim_one(&store, at(1)).await;
    let mut rx = store.subscribe();
    let r = fail(&store, &c, Some(at(2)), at(2)).await;
    assert_eq!(r.newly_ready, 1);
    assert!(saw(&mut rx, |e| *e == StoreEvent::WorkAvailable).await);
    assert_eq!(claim_one(&store, at(2)).await.attempt, 2);
}

/// A failure without retry puts the step in `error`; a task with nothing
/// else to do goes to `error` with one transition.
pub async fn exhausted_failure_errors_task(store: Arc<dyn Store>) {
    let t = new_task(Shape::Linear(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    let mut rx = store.subscribe();
    let c = claim_one(&store, at(1)).await;
    let r = fail(&store, &c, None, at(2)).await;
    assert_eq!(r.finished_tasks, [(t.id, TaskState::Error)]);
    assert_eq!(r.newly_ready, 0);

    let s = store.step_get(c.step_id).await.unwrap();
    assert_eq!(s.status, StepState::Error);
    assert_eq!(s.ready_at, None);
    assert_eq!(s.lease_owner, None);
    assert_eq!(s.last_error.unwrap().kind, "permanent");
    assert_eq!(
        step_moves(&store, c.step_id).await,
        mv(&[
            (Some("pending"), "in_progress"),
            (Some("in_progress"), "error")
        ])
    );
    let s1 = step(&store, t.id, "s1").await;
    assert_eq!(
        (s1.status, s1.ready_at),
        (StepState::Pending, None),
        "child stays blocked"
    );

    let task = check_remaining(&store, t.id).await;
    assert_eq!(task.status, TaskState::Error);
    assert_eq!(task.completed_at, Some(at(2)));
    assert_eq!(
        task_moves(&store, t.id).await,
        mv(&[
            (None, "pending"),
            (Some("pending"), "in_progress"),
            (Some("in_progress"), "error")
        ])
    );
    assert!(saw(&mut rx, |e| *e == StoreEvent::TaskFinished(t.id)).await);
    let counts = store.task_step_counts(t.id, at(2)).await.unwrap();
    assert_eq!((counts.failed, counts.pending, counts.ready), (1, 1, 0));
}

/// While another step still runs, an exhausted failure does not end the
/// task; the task goes to `error` when the last live step finishes.
pub async fn task_errors_only_once_nothing_is_live(store: Arc<dyn Store>) {
    let t = new_task(Shape::Roots(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    let both = claim(&store, 10, at(1)).await;
    assert_eq!(both.len(), 2);
    let r = fail(&store, &both[0], None, at(2)).await;
    assert!(r.finished_tasks.is_empty(), "the other root still runs");
    assert_eq!(
        store.task_get(t.id).await.unwrap().status,
        TaskState::InProgress
    );

    let r = succeed(&store, &both[1], at(3)).await;
    assert_eq!(r.finished_tasks, [(t.id, TaskState::Error)]);
    let task = check_remaining(&store, t.id).await;
    assert_eq!(task.status, TaskState::Error);
    assert_eq!(task.steps_remaining, 1);
    let tt = task_moves(&store, t.id).await;
    assert_eq!(tt.iter().filter(|(_, to)| to == "error").count(), 1);
}

/// A branch that failed for good does not end the task while another branch
/// is moving: the success that makes its next step ready counts that child
/// live before it stops counting itself, so the task never passes through
/// `error` in between (SQLite's triggers run the child's readiness before
/// the finished step's own counters; migration
/// `20261211000000_no_scratch_tables_per_row.sql`).
pub async fn a_failed_branch_waits_while_another_readies_its_next_step(store: Arc<dyn Store>) {
    let t = TaskBuilder::new("conformance", "branches")
        .step("a", &[])
        .step("b", &[])
        .step("c", &["b"])
        .build(at(0));
    store.task_create(t.clone()).await.unwrap();
    let roots = claim(&store, 10, at(1)).await;
    assert_eq!(roots.len(), 2);
    let a = roots.iter().find(|c| c.step_name == "a").unwrap();
    let b = roots.iter().find(|c| c.step_name == "b").unwrap();
    assert!(fail(&store, a, None, at(2)).await.finished_tasks.is_empty());

    let r = succeed(&store, b, at(3)).await;
    assert_eq!(r.newly_ready, 1, "c");
    assert!(r.finished_tasks.is_empty(), "c is live: {r:?}");
    let task = check_remaining(&store, t.id).await;
    assert_eq!(task.status, TaskState::InProgress);
    assert_eq!(
        task_moves(&store, t.id).await,
        mv(&[(None, "pending"), (Some("pending"), "in_progress")]),
        "no error in between"
    );

    let c = claim_one(&store, at(4)).await;
    assert_eq!(c.step_name, "c");
    let r = succeed(&store, &c, at(5)).await;
    assert_eq!(r.finished_tasks, [(t.id, TaskState::Error)]);
}

/// A step waiting out a backoff is live work: another branch's exhausted
/// failure does not end the task.
pub async fn retry_elsewhere_keeps_task_running(store: Arc<dyn Store>) {
    let t = new_task(Shape::Roots(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    let both = claim(&store, 10, at(1)).await;
    fail(&store, &both[0], Some(at(100)), at(2)).await;
    let r = fail(&store, &both[1], None, at(3)).await;
    assert!(r.finished_tasks.is_empty(), "a retry is scheduled");
    assert_eq!(
        store.task_get(t.id).await.unwrap().status,
        TaskState::InProgress
    );

    // The retry runs and fails for good: now nothing can move.
    let again = claim_one(&store, at(100)).await;
    let r = fail(&store, &again, None, at(101)).await;
    assert_eq!(r.finished_tasks, [(t.id, TaskState::Error)]);
}

/// A result containing a NUL character (which PostgreSQL's `jsonb` and
/// `text` cannot hold) is refused the same way by every backend: the batch
/// fails with [`StoreError::InvalidData`] naming the step and the path, and
/// nothing of it is applied (callers check outcomes one by one first, see
/// [`crate::storable`]).
pub async fn unstorable_result_is_refused_alike(store: Arc<dyn Store>) {
    let t = new_task(Shape::Roots(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    let claimed = claim(&store, 2, at(1)).await;
    let good = success(&claimed[0], json!({"ok": true}));
    let bad = success(&claimed[1], json!({"list": ["fine", "nul\u{0}here"]}));
    let err = store
        .step_finish_many(&[good.clone(), bad], at(2))
        .await
        .unwrap_err();
    match err {
        StoreError::InvalidData(why) => {
            assert!(why.contains(&claimed[1].step_id.to_string()), "{why}");
            assert!(why.contains("$.list[1]"), "{why}");
        }
        other => panic!("expected InvalidData, got {other:?}"),
    }
    for c in &claimed {
        let s = store.step_get(c.step_id).await.unwrap();
        assert_eq!(s.status, StepState::InProgress);
        assert_eq!(s.results, None);
    }
    // The good outcome alone is accepted.
    let r = store.step_finish_many(&[good], at(3)).await.unwrap();
    assert_eq!(r.applied, 1);
}

/// An outcome with the wrong token is reported as lease-lost and ignored.
pub async fn lease_lost_on_wrong_token(store: Arc<dyn Store>) {
    let t = new_task(Shape::Single, at(0));
    store.task_create(t.clone()).await.unwrap();
    let c = claim_one(&store, at(1)).await;
    let mut forged = success(&c, json!("forged"));
    forged.lease.token = Uuid::new_v4();
    let unknown = StepOutcome {
        lease: LeaseRef {
            step_id: Uuid::now_v7(),
            token: Uuid::new_v4(),
        },
        result: OutcomeResult::Success(json!(null)),
    };
    let r = store
        .step_finish_many(&[forged, unknown.clone()], at(2))
        .await
        .unwrap();
    assert_eq!(r.applied, 0);
    let mut lost = r.lease_lost.clone();
    lost.sort();
    let mut expected = vec![c.step_id, unknown.lease.step_id];
    expected.sort();
    assert_eq!(lost, expected);
    assert_eq!(r.newly_ready, 0);
    let s = store.step_get(c.step_id).await.unwrap();
    assert_eq!(s.status, StepState::InProgress);
    assert_eq!(s.results, None);
    // The real token still works.
    succeed(&store, &c, at(3)).await;
}

/// After a rescue, the old lease's late result is ignored.
pub async fn lease_lost_after_rescue(store: Arc<dyn Store>) {
    let t = new_task(Shape::Single, at(0));
    store.task_create(t.clone()).await.unwrap();
    let mut p = params("w1", 1, at(1));
    p.lease_until = at(10);
    let c = store.step_claim(&p).await.unwrap().remove(0);
    assert_eq!(store.step_rescue_expired(at(11), 100).await.unwrap(), 1);
    let r = store
        .step_finish_many(&[success(&c, json!("late"))], at(12))
        .await
        .unwrap();
    assert_eq!((r.applied, r.lease_lost.clone()), (0, vec![c.step_id]));
    let s = store.step_get(c.step_id).await.unwrap();
    assert_eq!(s.status, StepState::Pending);
    assert_eq!(s.results, None);

    // Re-claimed by someone else: the old token is still refused.
    let again = claim_one(&store, at(12)).await;
    assert_eq!(again.attempt, 2);
    let r = store
        .step_finish_many(&[success(&c, json!("late"))], at(13))
        .await
        .unwrap();
    assert_eq!(r.lease_lost, [c.step_id]);
    succeed(&store, &again, at(13)).await;
}

/// After the task is cancelled, a running step's result is ignored.
pub async fn lease_lost_after_task_cancel(store: Arc<dyn Store>) {
    let t = new_task(Shape::Linear(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    let c = claim_one(&store, at(1)).await;
    store.task_cancel(t.id, at(2), None).await.unwrap();
    let r = store
        .step_finish_many(&[success(&c, json!("late"))], at(3))
        .await
        .unwrap();
    assert_eq!((r.applied, r.lease_lost.clone()), (0, vec![c.step_id]));
    assert!(r.finished_tasks.is_empty());
    let s = store.step_get(c.step_id).await.unwrap();
    assert_eq!(s.status, StepState::Cancelled);
    assert_eq!(s.results, None);
    assert_eq!(step(&store, t.id, "s1").await.status, StepState::Cancelled);
    assert_eq!(
        store.task_get(t.id).await.unwrap().status,
        TaskState::Cancelled
    );
}

/// The same outcome twice in one batch is applied once.
pub async fn duplicate_outcome_applies_once(store: Arc<dyn Store>) {
    let t = new_task(Shape::Linear(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    let c = claim_one(&store, at(1)).await;
    let o = success(&c, json!(1));
    let r = store
        .step_finish_many(&[o.clone(), o], at(2))
        .await
        .unwrap();
    assert_eq!(r.applied, 1);
    assert_eq!(r.lease_lost, [c.step_id]);
    assert_eq!(r.newly_ready, 1);
    let task = check_remaining(&store, t.id).await;
    assert_eq!(task.steps_remaining, 1);
    // pending → in_progress → complete, once.
    assert_eq!(step_moves(&store, c.step_id).await.len(), 2);
}

/// An empty batch reports nothing.
pub async fn empty_batch_is_a_no_op(store: Arc<dyn Store>) {
    let r = store.step_finish_many(&[], at(0)).await.unwrap();
    assert_eq!(r, FinishReport::default());
}

/// Counters stay consistent through a mixed batch across several tasks
/// (checked through `steps_remaining`, step counts and finalisation).
pub async fn counters_follow_every_change(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..4).map(|i| new_task(Shape::Diamond, at(i))).collect();
    store.task_create_many(tasks.clone()).await.unwrap();
    let roots = claim(&store, 10, at(10)).await;
    assert_eq!(roots.len(), 4);
    // Task 0: success; task 1: retry later; task 2: exhausted; task 3: success.
    let by_task = |i: usize| roots.iter().find(|c| c.task_id == tasks[i].id).unwrap();
    let r = store
        .step_finish_many(
            &[
                success(by_task(0), json!(0)),
                failure(by_task(1), Some(at(50))),
                failure(by_task(2), None),
                success(by_task(3), json!(3)),
            ],
            at(11),
        )
        .await
        .unwrap();
    assert_eq!(r.applied, 4);
    assert_eq!(r.newly_ready, 4, "b and c of tasks 0 and 3");
    assert_eq!(r.finished_tasks, [(tasks[2].id, TaskState::Error)]);

    for (i, (remaining, ready, scheduled, failed)) in
        [(3, 2, 0, 0), (4, 0, 1, 0), (4, 0, 0, 1), (3, 2, 0, 0)]
            .into_iter()
            .enumerate()
    {
        let t = check_remaining(&store, tasks[i].id).await;
        assert_eq!(t.steps_remaining, remaining, "task {i}");
        let c = store.task_step_counts(tasks[i].id, at(11)).await.unwrap();
        assert_eq!(
            (c.ready, c.scheduled, c.failed),
            (ready, scheduled, failed),
            "task {i}"
        );
    }
    assert_eq!(run_all(&store, at(11)).await, 6, "b, c, d of tasks 0 and 3");
    assert_eq!(run_all(&store, at(50)).await, 4, "task 1, after its retry");
    for (i, status) in [
        TaskState::Complete,
        TaskState::Complete,
        TaskState::Error,
        TaskState::Complete,
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(
            check_remaining(&store, tasks[i].id).await.status,
            status,
            "task {i}"
        );
    }
}
