//! Per-template `max_running_tasks`, enforced by the claim
//! (docs/FLOW_CONTROL.md, rule 0 of `crate::flow`).

use super::factory::{Shape, TaskBuilder, new_task};
use super::*;
use crate::NewTask;
use crate::flow::{FlowWait, TaskSlot};
use std::collections::BTreeSet;
use tasker_core::{StepState, TaskState};

/// A task of template `test/limited` (limit `limit`): two roots `a`, `b`
/// and `c` after both; every step carries the slot.
fn limited(limit: i32, now: DateTime<Utc>) -> NewTask {
    let mut t = TaskBuilder::new("test", "limited")
        .step("a", &[])
        .step("b", &[])
        .step("c", &["a", "b"])
        .build(now);
    for s in &mut t.steps {
        s.flow.task_slot = Some(TaskSlot {
            key: TaskSlot::key_of("test", "limited"),
            limit,
        });
    }
    t
}

/// Tasks of `ids` that are `in_progress`.
async fn running_tasks(store: &Arc<dyn Store>, ids: &[Uuid]) -> BTreeSet<Uuid> {
    let mut out = BTreeSet::new();
    for id in ids {
        if store.task_get(*id).await.unwrap().status == TaskState::InProgress {
            out.insert(*id);
        }
    }
    out
}

/// No more than `limit` tasks of a template run at once. The steps of the
/// tasks beyond wait parked (no attempt spent, out of the ready frontier,
/// reads say why); the steps of a started task pass freely (a later step
/// of a running task never waits for a slot); a task that ends (complete
/// or cancelled) lets the oldest waiting task start. Other templates are
/// never held back.
pub async fn max_running_tasks_caps_running_tasks(store: Arc<dyn Store>) {
    let tasks: Vec<NewTask> = (0..4).map(|i| limited(2, at(i))).collect();
    let plain = new_task(Shape::Single, at(0));
    for t in tasks.iter().chain([&plain]) {
        store.task_create(t.clone()).await.unwrap();
    }
    let mut ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
    ids.sort_unstable();
    let (t1, t2, t3, t4) = (ids[0], ids[1], ids[2], ids[3]);

    // The two oldest tasks start with both their roots; the plain task runs.
    let first = claim(&store, 10, at(10)).await;
    let got: BTreeSet<Uuid> = first.iter().map(|c| c.task_id).collect();
    assert_eq!(first.len(), 5, "{first:?}");
    assert_eq!(got, BTreeSet::from([t1, t2, plain.id]), "{first:?}");
    assert_eq!(running_tasks(&store, &ids).await, BTreeSet::from([t1, t2]));
    for t in [t3, t4] {
        for s in store.step_list(t).await.unwrap() {
            if s.name == "c" {
                continue;
            }
            assert_eq!(s.waiting_for, Some(FlowWait::TaskSlot), "{s:?}");
            assert_eq!(
                s.waiting_for.as_ref().map(ToString::to_string).as_deref(),
                Some("waiting for max_running_tasks of its template")
            );
            assert_eq!(s.attempts, 0, "{s:?}");
            assert!(s.ready_at.is_some(), "kept its place: {s:?}");
        }
        assert_eq!(store.task_get(t).await.unwrap().status, TaskState::Pending);
    }
    assert!(claim(&store, 10, at(11)).await.is_empty(), "template full");
    assert_eq!(store.step_next_ready_at().await.unwrap(), None);
    assert_eq!(store.queue_depth(at(11), 100).await.unwrap().ready, 0);

    // t1's roots finish: its `c` becomes ready and runs at once (t1 holds
    // its slot); nothing of t3, t4 moves.
    for c in first.iter().filter(|c| c.task_id == t1) {
        succeed(&store, c, at(12)).await;
    }
    let c1 = claim(&store, 10, at(13)).await;
    assert_eq!(c1.len(), 1, "{c1:?}");
    assert_eq!((c1[0].task_id, c1[0].step_name.as_str()), (t1, "c"));
    assert!(claim(&store, 10, at(13)).await.is_empty());

    // t1 completes: t3 (the oldest waiting) starts, t4 still waits.
    succeed(&store, &c1[0], at(14)).await;
    assert_eq!(
        store.task_get(t1).await.unwrap().status,
        TaskState::Complete
    );
    let next = claim(&store, 10, at(15)).await;
    assert_eq!(next.len(), 2, "{next:?}");
    assert!(next.iter().all(|c| c.task_id == t3), "{next:?}");
    assert_eq!(running_tasks(&store, &ids).await, BTreeSet::from([t2, t3]));
    assert!(claim(&store, 10, at(16)).await.is_empty());

    // Cancelling a running task frees its slot too.
    store.task_cancel(t2, at(17), None).await.unwrap();
    let last = claim(&store, 10, at(18)).await;
    assert_eq!(last.len(), 2, "{last:?}");
    assert!(last.iter().all(|c| c.task_id == t4), "{last:?}");
    assert_eq!(running_tasks(&store, &ids).await, BTreeSet::from([t3, t4]));

    // Every parked step kept its attempts: each ran once.
    for t in [t3, t4] {
        for s in store.step_list(t).await.unwrap() {
            assert!(s.attempts <= 1, "{s:?}");
            if s.status == StepState::InProgress {
                assert_eq!(s.waiting_for, None);
            }
        }
    }
}

/// The claim on completion obeys the limit too: finishing the last step of
/// a running task leases, in the same transaction, nothing of a task that
/// has not started while the template is full, and a task that fails for
/// good gives its slot back like one that completes.
pub async fn completion_claim_and_failure_obey_the_limit(store: Arc<dyn Store>) {
    let a = limited(1, at(0));
    let b = limited(1, at(1));
    store.task_create(a.clone()).await.unwrap();
    store.task_create(b.clone()).await.unwrap();
    let (first, second) = if a.id < b.id {
        (a.id, b.id)
    } else {
        (b.id, a.id)
    };
    let got = claim(&store, 10, at(2)).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|c| c.task_id == first), "{got:?}");

    // One root finishes with claim on completion: nothing of `second`.
    let p = params("w", 10, at(3));
    let r = store
        .step_finish_and_claim(&[success(&got[0], Value::Null)], at(3), Some(&p))
        .await
        .unwrap();
    assert!(r.claimed.is_empty(), "{:?}", r.claimed);

    // The other root fails for good: `first` ends in error, `second` starts.
    fail(&store, &got[1], None, at(4)).await;
    assert_eq!(
        store.task_get(first).await.unwrap().status,
        TaskState::Error
    );
    let next = claim(&store, 10, at(5)).await;
    assert_eq!(next.len(), 2, "{next:?}");
    assert!(next.iter().all(|c| c.task_id == second), "{next:?}");
    assert_eq!(
        store.task_get(second).await.unwrap().status,
        TaskState::InProgress
    );
}

/// A waiting task that is paused and resumed waits for a slot again, and
/// gets one at once when the template has room: resuming puts its steps
/// back in the ready frontier (no release has to come first).
pub async fn a_resumed_waiting_task_is_decided_again(store: Arc<dyn Store>) {
    let a = limited(1, at(0));
    let b = limited(1, at(1));
    store.task_create(a.clone()).await.unwrap();
    store.task_create(b.clone()).await.unwrap();
    let (first, second) = if a.id < b.id {
        (a.id, b.id)
    } else {
        (b.id, a.id)
    };
    let got = claim(&store, 10, at(2)).await;
    assert!(got.iter().all(|c| c.task_id == first), "{got:?}");
    // `second` waits; paused meanwhile, it misses `first`'s release.
    store.task_pause(second, at(3), None).await.unwrap();
    store.task_cancel(first, at(4), None).await.unwrap();
    assert!(claim(&store, 10, at(5)).await.is_empty());
    store.task_resume(second, at(6), None).await.unwrap();
    let next = claim(&store, 10, at(7)).await;
    assert_eq!(next.len(), 2, "{next:?}");
    assert!(next.iter().all(|c| c.task_id == second), "{next:?}");
}
