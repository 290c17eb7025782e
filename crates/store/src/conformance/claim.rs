//! Claiming: readiness, order, limits, leases, filters, parent results.

use super::factory::{Shape, TaskBuilder, new_task};
use super::*;
use serde_json::json;
use std::collections::HashSet;
use tasker_core::{StepState, TaskState};

/// Only pending steps whose parents are done and whose time has come.
pub async fn claim_takes_only_ready_steps(store: Arc<dyn Store>) {
    let t = new_task(Shape::Linear(3), at(0));
    store.task_create(t.clone()).await.unwrap();
    let got = claim(&store, 10, at(0)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].step_name, "s0");
    assert!(claim(&store, 10, at(0)).await.is_empty(), "s1 waits for s0");
}

/// A claim sets status, attempt, lease and start time, hands the handler
/// everything it needs, and writes `pending → in_progress`.
pub async fn claim_sets_lease_attempt_and_transition(store: Arc<dyn Store>) {
    let t = new_task(Shape::Single, at(0));
    store.task_create(t.clone()).await.unwrap();
    let mut p = params("worker-7", 5, at(5));
    p.lease_until = at(65);
    let got = store.step_claim(&p).await.unwrap();
    assert_eq!(got.len(), 1);
    let c = &got[0];
    assert_eq!(c.step_id, t.steps[0].id);
    assert_eq!(c.task_id, t.id);
    assert_eq!(c.step_name, "a");
    assert_eq!(c.handler, t.steps[0].handler);
    assert_eq!(c.inputs, t.steps[0].inputs);
    assert_eq!(c.attempt, 1);
    assert_eq!(c.max_attempts, 3);
    assert_eq!(c.timeout_seconds, Some(30.0));
    assert_eq!(c.lease_expires_at, at(65));
    assert_eq!(c.namespace, "test");
    assert_eq!(c.task_name, "shape");
    assert_eq!(c.version, "1.0.0");
    assert_eq!(c.context, t.context);
    assert_eq!(c.correlation_id, t.correlation_id);
    assert!(c.parent_results.is_empty());

    let s = store.step_get(c.step_id).await.unwrap();
    assert_eq!(s.status, StepState::InProgress);
    assert_eq!(s.attempts, 1);
    assert_eq!(s.ready_at, None, "a running step is not claimable");
    assert_eq!(s.lease_owner.as_deref(), Some("worker-7"));
    assert_eq!(s.lease_expires_at, Some(at(65)));
    assert_eq!(s.last_attempted_at, Some(at(5)));
    assert_eq!(s.updated_at, at(5));

    let tr = store.step_transitions(c.step_id).await.unwrap();
    assert_eq!(moves(&tr), [(Some("pending"), "in_progress")]);
    assert_eq!(tr[0].created_at, at(5));
    assert_eq!(tr[0].metadata, json!({"attempt": 1, "worker": "worker-7"}));

    // A second claim of the same step (after a retry) gets a new token.
    let r = fail(&store, c, Some(at(5)), at(6)).await;
    assert_eq!(r.newly_ready, 1);
    let again = claim_one(&store, at(6)).await;
    assert_eq!(again.attempt, 2);
    assert_ne!(
        again.lease_token, c.lease_token,
        "every claim has a fresh token"
    );
}

/// Oldest `ready_at` first, at most `limit`.
pub async fn claim_respects_limit_and_ready_order(store: Arc<dyn Store>) {
    // Created (and so ready) at 20, 0 and 10: claim order is by ready_at.
    let late = new_task(Shape::Single, at(20));
    let early = new_task(Shape::Single, at(0));
    let mid = new_task(Shape::Single, at(10));
    for t in [&late, &early, &mid] {
        store.task_create(t.clone()).await.unwrap();
    }
    let got = claim(&store, 2, at(30)).await;
    let ids: Vec<_> = got.iter().map(|c| c.task_id).collect();
    assert_eq!(ids, [early.id, mid.id], "oldest ready first, in order");
    let rest = claim(&store, 2, at(30)).await;
    assert_eq!(
        rest.iter().map(|c| c.task_id).collect::<Vec<_>>(),
        [late.id]
    );
}

/// A claimed step is never handed out again while it runs.
pub async fn claim_never_returns_a_step_twice(store: Arc<dyn Store>) {
    for i in 0..5 {
        store
            .task_create(new_task(Shape::Roots(4), at(i)))
            .await
            .unwrap();
    }
    let mut seen = HashSet::new();
    for _ in 0..10 {
        for c in claim(&store, 3, at(100)).await {
            assert!(seen.insert(c.step_id), "step {} claimed twice", c.step_id);
        }
    }
    assert_eq!(seen.len(), 20);
    assert!(claim(&store, 100, at(100)).await.is_empty());
}

/// The first claim of a task moves it to `in_progress`, once.
pub async fn claim_moves_task_to_in_progress_once(store: Arc<dyn Store>) {
    let t = new_task(Shape::Roots(3), at(0));
    store.task_create(t.clone()).await.unwrap();
    claim(&store, 1, at(1)).await;
    let row = store.task_get(t.id).await.unwrap();
    assert_eq!(row.status, TaskState::InProgress);
    assert_eq!(row.updated_at, at(1));
    claim(&store, 2, at(2)).await;
    assert_eq!(
        task_moves(&store, t.id).await,
        mv(&[(None, "pending"), (Some("pending"), "in_progress")])
    );
}

/// A claimed step carries its parents' results by name (complete and
/// resolved parents alike), and only its own parents'.
pub async fn claim_includes_parent_results(store: Arc<dyn Store>) {
    let t = new_task(Shape::Diamond, at(0));
    store.task_create(t.clone()).await.unwrap();
    let a = claim_one(&store, at(1)).await;
    assert!(a.parent_results.is_empty());
    store
        .step_finish_many(&[success(&a, json!({"from": "a"}))], at(2))
        .await
        .unwrap();

    let bc = claim(&store, 10, at(3)).await;
    assert_eq!(bc.len(), 2);
    for c in &bc {
        assert_eq!(c.parent_results.len(), 1);
        assert_eq!(c.parent_results["a"], json!({"from": "a"}));
    }
    let b = bc.iter().find(|c| c.step_name == "b").unwrap();
    let c = bc.iter().find(|c| c.step_name == "c").unwrap();
    store
        .step_finish_many(&[success(b, json!([1, 2, 3]))], at(4))
        .await
        .unwrap();
    // Cancel-free way to resolve a running step: fail it for good, then resolve.
    fail(&store, c, None, at(4)).await;
    store
        .step_resolve(c.step_id, json!("by hand"), at(5), None)
        .await
        .unwrap();

    let d = claim_one(&store, at(6)).await;
    assert_eq!(d.step_name, "d");
    assert_eq!(
        d.parent_results.len(),
        2,
        "only direct parents: {:?}",
        d.parent_results
    );
    assert_eq!(d.parent_results["b"], json!([1, 2, 3]));
    assert_eq!(d.parent_results["c"], json!("by hand"));
}

/// With a per-task limit, no task runs more than that many steps at once,
/// while other tasks still get their share.
pub async fn claim_respects_per_task_limit(store: Arc<dyn Store>) {
    let t1 = new_task(Shape::Roots(3), at(0));
    let t2 = new_task(Shape::Roots(3), at(1));
    store.task_create(t1.clone()).await.unwrap();
    store.task_create(t2.clone()).await.unwrap();
    let mut p = params("w", 10, at(10));
    p.per_task_limit = Some(1);
    let got = store.step_claim(&p).await.unwrap();
    let tasks: HashSet<_> = got.iter().map(|c| c.task_id).collect();
    assert_eq!(got.len(), 2, "one per task");
    assert_eq!(tasks, HashSet::from([t1.id, t2.id]));
    assert!(
        store.step_claim(&p).await.unwrap().is_empty(),
        "both tasks at their limit"
    );

    let from_t1 = got.iter().find(|c| c.task_id == t1.id).unwrap();
    succeed(&store, from_t1, at(11)).await;
    let next = store.step_claim(&p).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].task_id, t1.id);

    // A higher limit lets more of the same task run.
    p.per_task_limit = Some(2);
    let more = store.step_claim(&p).await.unwrap();
    assert_eq!(more.len(), 2, "one more for each task: {more:?}");
    assert_eq!(
        more.iter().map(|c| c.task_id).collect::<HashSet<_>>(),
        HashSet::from([t1.id, t2.id])
    );
}

/// A task with many ready steps at its limit does not hide the ready steps
/// of later tasks, however far down the ready order they are.
pub async fn claim_per_task_limit_does_not_starve_later_tasks(store: Arc<dyn Store>) {
    let crowd = new_task(Shape::Roots(300), at(0));
    let later = new_task(Shape::Single, at(1));
    store.task_create(crowd.clone()).await.unwrap();
    store.task_create(later.clone()).await.unwrap();
    let mut p = params("w", 4, at(2));
    p.per_task_limit = Some(1);
    let got = store.step_claim(&p).await.unwrap();
    let tasks: Vec<_> = got.iter().map(|c| c.task_id).collect();
    assert_eq!(
        tasks,
        [crowd.id, later.id],
        "one of the crowd, then the later task"
    );
    assert!(store.step_claim(&p).await.unwrap().is_empty());
}

/// `kinds` keeps only those handler kinds; `exclude_kinds` drops some.
pub async fn claim_filters_by_kind(store: Arc<dyn Store>) {
    let t = TaskBuilder::new("test", "kinds")
        .step("x", &[])
        .kind("alpha")
        .step("y", &[])
        .kind("beta")
        .step("z", &[])
        .kind("gamma")
        .build(at(0));
    store.task_create(t.clone()).await.unwrap();

    let mut p = params("w", 10, at(1));
    p.kinds = Some(vec!["beta".to_string()]);
    let got = store.step_claim(&p).await.unwrap();
    assert_eq!(
        got.iter().map(|c| c.step_name.as_str()).collect::<Vec<_>>(),
        ["y"]
    );

    let mut p = params("w", 10, at(1));
    p.exclude_kinds = vec!["alpha".to_string()];
    let got = store.step_claim(&p).await.unwrap();
    assert_eq!(
        got.iter().map(|c| c.step_name.as_str()).collect::<Vec<_>>(),
        ["z"]
    );

    let mut p = params("w", 10, at(1));
    p.kinds = Some(vec!["alpha".to_string(), "beta".to_string()]);
    p.exclude_kinds = vec!["alpha".to_string()];
    assert!(
        store.step_claim(&p).await.unwrap().is_empty(),
        "exclusion wins"
    );
    let mut p = params("w", 10, at(1));
    p.kinds = Some(Vec::new());
    assert!(
        store.step_claim(&p).await.unwrap().is_empty(),
        "no kinds = nothing"
    );
    assert_eq!(claim(&store, 10, at(1)).await.len(), 1, "x is left");
}

/// `namespaces` keeps only the steps of tasks in those namespaces.
pub async fn claim_filters_by_namespace(store: Arc<dyn Store>) {
    let one = TaskBuilder::new("billing", "t").step("a", &[]).build(at(0));
    let two = TaskBuilder::new("shipping", "t")
        .step("a", &[])
        .build(at(0));
    store.task_create(one.clone()).await.unwrap();
    store.task_create(two.clone()).await.unwrap();
    let mut p = params("w", 10, at(1));
    p.namespaces = Some(vec!["shipping".to_string(), "other".to_string()]);
    let got = store.step_claim(&p).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].task_id, two.id);
    assert_eq!(got[0].namespace, "shipping");
    assert!(store.step_claim(&p).await.unwrap().is_empty());
    assert_eq!(claim(&store, 10, at(1)).await[0].task_id, one.id);
}

/// A step whose `ready_at` is in the future is claimed only once `now`
/// reaches it (inclusive).
pub async fn claim_waits_for_future_ready_at(store: Arc<dyn Store>) {
    let t = new_task(Shape::Single, at(0));
    store.task_create(t.clone()).await.unwrap();
    let c = claim_one(&store, at(0)).await;
    let r = fail(&store, &c, Some(at(60)), at(1)).await;
    assert_eq!(r.newly_ready, 0, "a retry in the future is not ready now");
    assert!(claim(&store, 10, at(1)).await.is_empty());
    assert!(claim(&store, 10, at(59)).await.is_empty());
    let again = claim_one(&store, at(60)).await;
    assert_eq!(again.step_id, c.step_id);
    assert_eq!(again.attempt, 2);
}

/// `limit = 0` claims nothing and changes nothing.
pub async fn claim_with_zero_limit_takes_nothing(store: Arc<dyn Store>) {
    let t = new_task(Shape::Single, at(0));
    store.task_create(t.clone()).await.unwrap();
    assert!(claim(&store, 0, at(1)).await.is_empty());
    assert_eq!(
        store.task_get(t.id).await.unwrap().status,
        TaskState::Pending
    );
    assert_eq!(claim(&store, 1, at(1)).await.len(), 1);
}
