//! Creating tasks: rows, edges, readiness, counters, transitions, duplicates.

use super::factory::{Shape, TaskBuilder, new_task, with_identity};
use super::*;
use crate::{StoreError, StoreEvent, TaskQuery};
use serde_json::json;
use tasker_core::{StepState, TaskState};

/// Create stores the task and every step with its edges; roots are ready now,
/// the rest wait for parents.
pub async fn create_inserts_task_steps_and_edges(store: Arc<dyn Store>) {
    let new = new_task(Shape::Diamond, at(0));
    let row = store.task_create(new.clone()).await.unwrap();
    assert_eq!(row.id, new.id);
    assert_eq!(row.status, TaskState::Pending);

    let t = store.task_get(new.id).await.unwrap();
    assert_eq!(t, row, "task_create returns the stored row");
    assert_eq!(t.namespace, "test");
    assert_eq!(t.name, "shape");
    assert_eq!(t.version, "1.0.0");
    assert_eq!(t.context, new.context);
    assert_eq!(t.initiator, "conformance");
    assert_eq!(t.source_system, "tests");
    assert_eq!(t.reason, "testing");
    assert_eq!(t.tags, vec!["t1", "t2"]);
    assert_eq!(t.correlation_id, new.correlation_id);
    assert_eq!(t.identity_hash, None);
    assert_eq!(t.steps_total, 4);
    assert_eq!(t.steps_remaining, 4);
    assert_eq!(t.created_at, at(0));
    assert_eq!(t.updated_at, at(0));
    assert_eq!(t.completed_at, None);

    let steps = store.step_list(new.id).await.unwrap();
    let names: Vec<_> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d"], "template order");
    for (i, s) in steps.iter().enumerate() {
        let n = &new.steps[i];
        assert_eq!(s.id, n.id);
        assert_eq!(s.task_id, new.id);
        assert_eq!(s.position, i as i32);
        assert_eq!(s.status, StepState::Pending);
        assert_eq!(s.handler, n.handler);
        assert_eq!(s.inputs, n.inputs);
        assert_eq!(s.description, n.description);
        assert_eq!(s.dependent_system, "test-system");
        assert_eq!(s.attempts, 0);
        assert_eq!(s.max_attempts, 3);
        assert_eq!(s.retry_limit, 3);
        assert!(s.retryable);
        assert!(!s.skippable);
        assert_eq!(s.timeout_seconds, Some(30.0));
        assert_eq!(s.results, None);
        assert_eq!(s.last_error, None);
        assert_eq!(s.lease_owner, None);
        assert_eq!(s.lease_expires_at, None);
        assert_eq!(s.last_attempted_at, None);
        assert_eq!(s.created_at, at(0));
        assert_eq!(s.completed_at, None);
    }
    let by = |n: &str| steps.iter().find(|s| s.name == n).unwrap();
    assert_eq!(by("a").parents, Vec::<String>::new());
    assert_eq!(by("b").parents, ["a"]);
    assert_eq!(by("c").parents, ["a"]);
    assert_eq!(by("d").parents, ["b", "c"], "parents in template order");
    assert_eq!(by("a").remaining_parents, 0);
    assert_eq!(by("b").remaining_parents, 1);
    assert_eq!(by("d").remaining_parents, 2);
    assert_eq!(by("a").ready_at, Some(at(0)), "roots are ready at creation");
    assert_eq!(by("b").ready_at, None);
    assert_eq!(by("d").ready_at, None);
}

/// A task's history starts with its creation (one `→ pending`
/// transition); a step's with its first change: a step's creation is not a
/// transition (docs/STORAGE.md, "A step's history"), its `created_at` says
/// when it was made.
pub async fn create_starts_the_tasks_history_not_the_steps(store: Arc<dyn Store>) {
    let new = new_task(Shape::Linear(3), at(0));
    store.task_create(new.clone()).await.unwrap();
    let tt = store.task_transitions(new.id).await.unwrap();
    assert_eq!(moves(&tt), [(None, "pending")]);
    assert_eq!(tt[0].entity_id, new.id);
    assert_eq!(tt[0].created_at, at(0));
    for s in &new.steps {
        let st = store.step_transitions(s.id).await.unwrap();
        assert_eq!(moves(&st), [], "step {}", s.name);
        assert_eq!(store.step_get(s.id).await.unwrap().created_at, at(0));
    }
}

/// Right after creation only the roots count as ready.
pub async fn create_counts_roots_as_ready(store: Arc<dyn Store>) {
    let diamond = new_task(Shape::Diamond, at(0));
    let roots = new_task(Shape::Roots(3), at(0));
    store.task_create(diamond.clone()).await.unwrap();
    store.task_create(roots.clone()).await.unwrap();
    let c = store.task_step_counts(diamond.id, at(0)).await.unwrap();
    assert_eq!(
        (
            c.total,
            c.pending,
            c.ready,
            c.scheduled,
            c.in_progress,
            c.done
        ),
        (4, 4, 1, 0, 0, 0)
    );
    let c = store.task_step_counts(roots.id, at(0)).await.unwrap();
    assert_eq!((c.total, c.pending, c.ready), (3, 3, 3));
    // Everything ready is claimable: 1 + 3.
    assert_eq!(claim(&store, 10, at(0)).await.len(), 4);
}

/// A task with the same identity created at or after `since` is a duplicate,
/// and the failed create leaves nothing behind.
pub async fn create_duplicate_identity_inside_window_is_rejected(store: Arc<dyn Store>) {
    let first = with_identity(new_task(Shape::Single, at(0)), "hash-1", at(-3600));
    store.task_create(first.clone()).await.unwrap();
    assert_eq!(
        store
            .task_get(first.id)
            .await
            .unwrap()
            .identity_hash
            .as_deref(),
        Some("hash-1")
    );

    // `since` equal to the first's creation time still includes it.
    let second = with_identity(new_task(Shape::Single, at(10)), "hash-1", at(0));
    match store.task_create(second.clone()).await {
        Err(StoreError::DuplicateTask { existing }) => assert_eq!(existing, first.id),
        other => panic!("expected DuplicateTask, got {other:?}"),
    }
    assert_not_found(store.task_get(second.id).await, "rejected duplicate");
    assert_not_found(
        store.step_get(second.steps[0].id).await,
        "step of rejected duplicate",
    );
    assert_eq!(
        store
            .task_list(&TaskQuery::default())
            .await
            .unwrap()
            .total
            .unwrap(),
        1
    );
}

/// The same identity is allowed once the window has passed, and other
/// hashes never collide.
pub async fn create_duplicate_identity_outside_window_is_allowed(store: Arc<dyn Store>) {
    let first = with_identity(new_task(Shape::Single, at(0)), "hash-1", at(-3600));
    store.task_create(first).await.unwrap();
    let later = with_identity(new_task(Shape::Single, at(7200)), "hash-1", at(1));
    store.task_create(later.clone()).await.unwrap();
    let other = with_identity(new_task(Shape::Single, at(10)), "hash-2", at(-3600));
    store.task_create(other).await.unwrap();
    assert_eq!(
        store
            .task_get(later.id)
            .await
            .unwrap()
            .identity_hash
            .as_deref(),
        Some("hash-1")
    );
    assert_eq!(
        store
            .task_list(&TaskQuery::default())
            .await
            .unwrap()
            .total
            .unwrap(),
        3
    );
}

/// Without an identity, identical requests create distinct tasks.
pub async fn create_without_identity_never_duplicates(store: Arc<dyn Store>) {
    let same = || TaskBuilder::new("ns", "same").step("a", &[]).build(at(0));
    store.task_create(same()).await.unwrap();
    store.task_create(same()).await.unwrap();
    assert_eq!(
        store
            .task_list(&TaskQuery::default())
            .await
            .unwrap()
            .total
            .unwrap(),
        2
    );
}

/// A bulk create inserts every task, in one go, each fully formed.
pub async fn create_many_inserts_all(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..25)
        .map(|i| {
            new_task(
                if i % 2 == 0 {
                    Shape::Diamond
                } else {
                    Shape::Linear(3)
                },
                at(i),
            )
        })
        .collect();
    let ids = store.task_create_many(tasks.clone()).await.unwrap();
    assert_eq!(ids, tasks.iter().map(|t| t.id).collect::<Vec<_>>());
    assert_eq!(
        store
            .task_list(&TaskQuery::default())
            .await
            .unwrap()
            .total
            .unwrap(),
        25
    );
    for t in &tasks {
        let steps = store.step_list(t.id).await.unwrap();
        assert_eq!(steps.len(), t.steps.len());
        assert_eq!(
            steps.iter().filter(|s| s.ready_at.is_some()).count(),
            1,
            "one root each"
        );
        assert_eq!(
            moves(&store.task_transitions(t.id).await.unwrap()),
            [(None, "pending")]
        );
    }
    // 25 roots are claimable.
    assert_eq!(claim(&store, 100, at(100)).await.len(), 25);
    assert!(store.task_create_many(Vec::new()).await.unwrap().is_empty());
}

/// A bulk create with one duplicate (in the database or inside the batch)
/// inserts nothing.
pub async fn create_many_is_all_or_nothing(store: Arc<dyn Store>) {
    let existing = with_identity(new_task(Shape::Single, at(0)), "dup", at(-60));
    store.task_create(existing.clone()).await.unwrap();
    let ok = new_task(Shape::Single, at(1));
    let dup = with_identity(new_task(Shape::Single, at(1)), "dup", at(-60));
    let r = store.task_create_many(vec![ok.clone(), dup]).await;
    assert!(
        matches!(r, Err(StoreError::DuplicateTask { existing: e }) if e == existing.id),
        "{r:?}"
    );
    assert_not_found(store.task_get(ok.id).await, "task of a failed batch");

    // Two tasks with the same identity inside one batch: the second is a duplicate.
    let a = with_identity(new_task(Shape::Single, at(2)), "in-batch", at(-60));
    let b = with_identity(new_task(Shape::Single, at(2)), "in-batch", at(-60));
    let r = store.task_create_many(vec![a.clone(), b]).await;
    assert!(matches!(r, Err(StoreError::DuplicateTask { .. })), "{r:?}");
    assert_not_found(store.task_get(a.id).await, "first task of a failed batch");
    assert_eq!(
        store
            .task_list(&TaskQuery::default())
            .await
            .unwrap()
            .total
            .unwrap(),
        1
    );
}

/// Creating a task announces work.
pub async fn create_emits_work_available(store: Arc<dyn Store>) {
    let mut rx = store.subscribe();
    store
        .task_create(new_task(Shape::Single, at(0)))
        .await
        .unwrap();
    assert!(saw(&mut rx, |e| *e == StoreEvent::WorkAvailable).await);
}

/// Every operation on an unknown id is `NotFound`.
pub async fn missing_ids_are_not_found(store: Arc<dyn Store>) {
    let id = Uuid::now_v7();
    assert_not_found(store.task_get(id).await, "task_get");
    assert_not_found(store.task_step_counts(id, at(0)).await, "task_step_counts");
    assert_not_found(store.task_transitions(id).await, "task_transitions");
    assert_not_found(
        store.task_update(id, Default::default(), at(0)).await,
        "task_update",
    );
    assert_not_found(store.task_cancel(id, at(0), None).await, "task_cancel");
    assert_not_found(store.task_retry(id, at(0), None).await, "task_retry");
    assert_not_found(store.step_list(id).await, "step_list");
    assert_not_found(store.step_get(id).await, "step_get");
    assert_not_found(store.step_transitions(id).await, "step_transitions");
    assert_not_found(
        store.step_update(id, Default::default(), at(0)).await,
        "step_update",
    );
    assert_not_found(
        store.step_resolve(id, json!({}), at(0), None).await,
        "step_resolve",
    );
    assert_not_found(store.step_cancel(id, at(0), None).await, "step_cancel");
    assert_not_found(store.step_retry(id, at(0), None).await, "step_retry");
}
