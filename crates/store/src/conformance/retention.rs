//! Retention (`prune_candidates`, `prune_count`, `tasks_prune`) and keyset
//! pagination of task lists: the reads that must cost the same at any
//! history size.

use super::factory::TaskBuilder;
use super::*;
use crate::{CountMode, CursorKey, PruneQuery, TaskCursor, TaskQuery, TaskSort};
use serde_json::json;
use tasker_core::TaskState;

/// One single-step task in `ns`, created at `t`.
async fn single(store: &Arc<dyn Store>, ns: &str, t: i64) -> Uuid {
    let task = TaskBuilder::new(ns, "one").step("a", &[]).build(at(t));
    store.task_create(task).await.unwrap().id
}

/// Runs the task's one step at `t`: success, or a failure with no retry.
async fn finish(store: &Arc<dyn Store>, ok: bool, t: i64) -> Uuid {
    let c = claim_one(store, at(t)).await;
    if ok {
        succeed(store, &c, at(t)).await;
    } else {
        fail(store, &c, None, at(t)).await;
    }
    c.task_id
}

fn query(before: i64) -> PruneQuery {
    PruneQuery {
        finished_before: at(before),
        ..Default::default()
    }
}

async fn assert_gone(store: &Arc<dyn Store>, task: Uuid, steps: &[Uuid]) {
    assert_not_found(store.task_get(task).await, "pruned task");
    assert_not_found(store.step_list(task).await, "steps of a pruned task");
    assert_not_found(store.task_transitions(task).await, "pruned task's history");
    for s in steps {
        assert_not_found(store.step_get(*s).await, "pruned step");
        assert_not_found(store.step_transitions(*s).await, "pruned step's history");
    }
}

/// Every finished state is pruned once it is older than the cutoff (oldest
/// completion first); pending, running, and recently finished tasks, their
/// steps and their history are never touched.
pub async fn prune_deletes_only_finished_tasks_before_the_cutoff(store: Arc<dyn Store>) {
    // complete at 10, error at 20, resolved at 30, cancelled at 40.
    single(&store, "test", 0).await;
    let complete = finish(&store, true, 10).await;
    single(&store, "test", 1).await;
    let error = finish(&store, false, 20).await;
    single(&store, "test", 2).await;
    let resolved = finish(&store, false, 25).await;
    let resolved_step = store.step_list(resolved).await.unwrap()[0].id;
    store
        .step_resolve(resolved_step, json!({}), at(30), None)
        .await
        .unwrap();
    let cancelled = single(&store, "test", 3).await;
    store.task_cancel(cancelled, at(40), None).await.unwrap();
    // Unfinished: one running, one pending (created long before the cutoff).
    single(&store, "test", 4).await;
    let running_step = claim_one(&store, at(50)).await;
    let running = running_step.task_id;
    let pending = single(&store, "test", 5).await;
    // Finished after the cutoff.
    let recent = single(&store, "test", 6).await;
    let c = store
        .step_claim(&params("w", 1, at(60)))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(c.task_id, pending, "oldest ready first");
    succeed(&store, &c, at(200)).await;
    let recent_step = store.step_list(recent).await.unwrap()[0].id;
    let recent_claim = store
        .step_claim(&params("w", 1, at(200)))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(recent_claim.step_id, recent_step);
    succeed(&store, &recent_claim, at(200)).await;
    // `pending` finished at 200 too: only `running` and those two remain
    // unprunable at a cutoff of 100.
    let expected = vec![complete, error, resolved, cancelled];
    assert_eq!(store.prune_count(&query(100)).await.unwrap(), 4);
    assert_eq!(store.prune_candidates(&query(100)).await.unwrap(), expected);
    let mut page = query(100);
    page.limit = 2;
    assert_eq!(
        store.prune_candidates(&page).await.unwrap(),
        expected[..2].to_vec(),
        "a page is the oldest completions"
    );
    let mut steps = Vec::new();
    for t in &expected {
        steps.extend(store.step_list(*t).await.unwrap().into_iter().map(|s| s.id));
    }
    // Asking to prune every task deletes only the eligible ones.
    let all = [expected.clone(), vec![running, pending, recent]].concat();
    let mut deleted = store.tasks_prune(&all, at(100)).await.unwrap();
    deleted.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(deleted, want);
    for t in &expected {
        assert_gone(&store, *t, &steps).await;
    }
    // The rest is whole: the running step still holds its lease and can
    // finish; the others keep their steps and histories.
    for t in [running, pending, recent] {
        assert!(!store.task_transitions(t).await.unwrap().is_empty());
        assert_eq!(store.step_list(t).await.unwrap().len(), 1);
    }
    succeed(&store, &running_step, at(300)).await;
    assert_eq!(
        store.task_get(running).await.unwrap().status,
        TaskState::Complete
    );
    assert_eq!(store.prune_count(&query(100)).await.unwrap(), 0);
    assert!(store.tasks_prune(&[], at(100)).await.unwrap().is_empty());
}

/// `prune_expired` (pruning without an archive: the store selects, locks
/// and deletes a batch itself) deletes finished tasks before the cutoff,
/// oldest completion first, a batch at a time, with their steps, edges
/// and annotations; it never touches a pending, running or recently
/// finished task, and an annotation written to a pruned task is refused
/// as NotFound.
pub async fn prune_expired_deletes_only_finished_tasks_in_batches(store: Arc<dyn Store>) {
    single(&store, "test", 0).await;
    let complete = finish(&store, true, 10).await;
    single(&store, "test", 1).await;
    let error = finish(&store, false, 20).await;
    // A cancelled diamond: edges and four steps go with it.
    let diamond = TaskBuilder::new("test", "diamond")
        .step("a", &[])
        .step("b", &["a"])
        .step("c", &["a"])
        .step("d", &["b", "c"])
        .build(at(2));
    let diamond = store.task_create(diamond).await.unwrap().id;
    store.task_cancel(diamond, at(30), None).await.unwrap();
    let note = |task_id: Uuid, t: i64| crate::NewAnnotation {
        id: Uuid::now_v7(),
        task_id,
        annotation_type: "note".into(),
        content: json!({"k": "v"}),
        created_by: None,
        now: at(t),
    };
    store.annotation_create(note(diamond, 31)).await.unwrap();
    let mut doomed_steps = Vec::new();
    for t in [complete, error, diamond] {
        doomed_steps.extend(store.step_list(t).await.unwrap().into_iter().map(|s| s.id));
    }
    assert_eq!(doomed_steps.len(), 6);
    // Unfinished, created long before the cutoff: one running, one pending.
    single(&store, "test", 3).await;
    let running_step = claim_one(&store, at(40)).await;
    let running = running_step.task_id;
    let pending = single(&store, "test", 4).await;
    store.annotation_create(note(pending, 41)).await.unwrap();
    // Finished after the cutoff.
    single(&store, "test", 5).await;
    let recent_claim = store.step_claim(&params("w", 2, at(200))).await.unwrap();
    assert_eq!(recent_claim.len(), 2);
    let recent_claim = recent_claim
        .into_iter()
        .find(|c| c.task_id != pending)
        .unwrap();
    let recent = recent_claim.task_id;
    succeed(&store, &recent_claim, at(200)).await;
    // `pending` was claimed too (it is running now): put it back in the
    // picture as unfinished work that must stay.
    let mut q = query(100);
    q.limit = 2;
    assert_eq!(
        store.prune_expired(&q).await.unwrap(),
        Some(2),
        "a full batch"
    );
    assert_not_found(store.task_get(complete).await, "oldest completion first");
    assert_not_found(store.task_get(error).await, "second oldest");
    assert!(
        store.task_get(diamond).await.is_ok(),
        "not in the first batch"
    );
    assert_eq!(store.prune_expired(&q).await.unwrap(), Some(1), "the rest");
    assert_eq!(
        store.prune_expired(&q).await.unwrap(),
        Some(0),
        "nothing left"
    );
    assert_gone(&store, complete, &doomed_steps).await;
    assert_gone(&store, diamond, &[]).await;
    let notes = store.annotation_list_many(&[diamond]).await.unwrap();
    assert!(
        notes.get(&diamond).is_none_or(|n| n.is_empty()),
        "annotations go with their task: {notes:?}"
    );
    assert_not_found(
        store.annotation_create(note(diamond, 300)).await,
        "an annotation of a pruned task",
    );
    // The rest is whole and still works.
    for t in [running, pending, recent] {
        assert!(!store.task_transitions(t).await.unwrap().is_empty());
        assert_eq!(store.step_list(t).await.unwrap().len(), 1);
    }
    let kept = store.annotation_list_many(&[pending]).await.unwrap();
    assert_eq!(kept.get(&pending).map(Vec::len), Some(1));
    succeed(&store, &running_step, at(300)).await;
    assert_eq!(
        store.task_get(running).await.unwrap().status,
        TaskState::Complete
    );
    // Everything is finished now, but after the cutoff: nothing goes.
    let mut all = query(100);
    all.limit = 0;
    assert_eq!(store.prune_expired(&all).await.unwrap(), Some(0));
    assert_eq!(
        store.task_get(pending).await.unwrap().status,
        TaskState::InProgress
    );
}

/// A task selected for pruning and reopened (a retry) before the delete
/// stays, with everything it had.
pub async fn prune_leaves_a_reopened_task(store: Arc<dyn Store>) {
    single(&store, "test", 0).await;
    let task = finish(&store, false, 10).await;
    assert_eq!(store.task_get(task).await.unwrap().status, TaskState::Error);
    let picked = store.prune_candidates(&query(100)).await.unwrap();
    assert_eq!(picked, vec![task]);
    store.task_retry(task, at(20), None).await.unwrap();
    assert!(
        store
            .tasks_prune(&picked, at(100))
            .await
            .unwrap()
            .is_empty()
    );
    let row = store.task_get(task).await.unwrap();
    assert_eq!(row.status, TaskState::Pending);
    assert_eq!(claim(&store, 10, at(30)).await.len(), 1, "still runnable");
}

/// Namespace filters select within the cutoff: one namespace, or all but some.
pub async fn prune_filters_by_namespace(store: Arc<dyn Store>) {
    single(&store, "billing", 0).await;
    let billing = finish(&store, true, 10).await;
    single(&store, "shipping", 1).await;
    let shipping = finish(&store, true, 11).await;
    single(&store, "audit", 2).await;
    let audit = finish(&store, true, 12).await;
    let mut q = query(100);
    q.namespace = Some("shipping".into());
    assert_eq!(store.prune_candidates(&q).await.unwrap(), vec![shipping]);
    assert_eq!(store.prune_count(&q).await.unwrap(), 1);
    let mut q = query(100);
    q.except_namespaces = vec!["audit".into(), "shipping".into()];
    assert_eq!(store.prune_candidates(&q).await.unwrap(), vec![billing]);
    assert_eq!(
        store.prune_candidates(&query(11)).await.unwrap(),
        vec![billing],
        "the cutoff is exclusive"
    );
    let _ = audit;
}

/// Keyset pages (`after` = the last row of the previous page) list the same
/// rows as offset pages, in every direction and for text sort keys; counts
/// are exact, estimated or omitted as asked.
pub async fn task_list_keyset_pages_and_count_modes(store: Arc<dyn Store>) {
    // Two tasks share a creation time: the id breaks the tie.
    let times = [0, 10, 10, 20, 30, 40, 50];
    let tasks: Vec<_> = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            TaskBuilder::new("test", &format!("n{}", i % 3))
                .step("a", &[])
                .build(at(*t))
        })
        .collect();
    store.task_create_many(tasks).await.unwrap();
    for (sort, descending) in [
        (TaskSort::CreatedAt, true),
        (TaskSort::CreatedAt, false),
        (TaskSort::Name, false),
        (TaskSort::UpdatedAt, true),
    ] {
        let base_q = TaskQuery {
            sort,
            descending,
            ..Default::default()
        };
        let all: Vec<Uuid> = store
            .task_list(&base_q)
            .await
            .unwrap()
            .items
            .iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(all.len(), 7);
        let mut keyset = Vec::new();
        let mut after: Option<TaskCursor> = None;
        loop {
            let q = TaskQuery {
                limit: 3,
                after: after.clone(),
                count: CountMode::Omitted,
                ..base_q.clone()
            };
            let page = store.task_list(&q).await.unwrap();
            assert_eq!(page.total, None, "omitted");
            let Some(last) = page.items.last() else { break };
            after = Some(TaskCursor::of(sort, last));
            keyset.extend(page.items.iter().map(|t| t.id));
        }
        assert_eq!(keyset, all, "{sort:?} descending={descending}");
    }
    let exact = store.task_list(&TaskQuery::default()).await.unwrap();
    assert_eq!((exact.total, exact.total_exact), (Some(7), true));
    let estimated = store
        .task_list(&TaskQuery {
            count: CountMode::Estimated,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!estimated.total_exact);
    match store.backend() {
        crate::Backend::Postgres => assert!(estimated.total.is_some()),
        crate::Backend::Sqlite => assert_eq!(estimated.total, None),
    }
    // A cursor of the wrong type for the sort column is refused.
    let bad = TaskQuery {
        sort: TaskSort::Name,
        after: Some(TaskCursor {
            key: CursorKey::Time(at(0)),
            id: Uuid::nil(),
        }),
        ..Default::default()
    };
    assert!(matches!(
        store.task_list(&bad).await,
        Err(StoreError::InvalidData(_))
    ));
}
