//! Reads: listings, counts, stats, next ready time, events, health.

use super::factory::{Shape, TaskBuilder, new_task};
use super::*;
use crate::{Backend, Page, StoreEvent, TaskQuery, TaskSort};
use serde_json::json;
use tasker_core::TaskState;

/// Filters combine; `total` counts every match, not just the page.
pub async fn task_list_filters_and_counts(store: Arc<dyn Store>) {
    let mk = |ns: &str, name: &str, version: &str, t: i64| {
        TaskBuilder::new(ns, name)
            .version(version)
            .step("a", &[])
            .build(at(t))
    };
    let tasks = vec![
        mk("billing", "invoice", "1.0.0", 0),
        mk("billing", "invoice", "2.0.0", 10),
        mk("billing", "refund", "1.0.0", 20),
        mk("shipping", "label", "1.0.0", 30),
        mk("shipping", "invoice", "1.0.0", 40),
    ];
    store.task_create_many(tasks.clone()).await.unwrap();
    // Complete the first (oldest ready) task.
    let c = claim_one(&store, at(50)).await;
    assert_eq!(c.task_id, tasks[0].id);
    succeed(&store, &c, at(51)).await;

    let ids = |p: &Page<crate::TaskRow>| p.items.iter().map(|t| t.id).collect::<Vec<_>>();
    let q = |f: &dyn Fn(&mut TaskQuery)| {
        let mut q = TaskQuery::default();
        f(&mut q);
        q
    };
    let all = store.task_list(&q(&|_| {})).await.unwrap();
    assert_eq!(all.total.unwrap(), 5);
    assert_eq!(all.items.len(), 5, "limit 0 means no limit");

    let p = store
        .task_list(&q(&|q| q.namespace = Some("billing".into())))
        .await
        .unwrap();
    assert_eq!(
        (p.total.unwrap(), ids(&p)),
        (3, vec![tasks[0].id, tasks[1].id, tasks[2].id])
    );
    let p = store
        .task_list(&q(&|q| q.name = Some("invoice".into())))
        .await
        .unwrap();
    assert_eq!(p.total.unwrap(), 3);
    let p = store
        .task_list(&q(&|q| {
            q.name = Some("invoice".into());
            q.version = Some("1.0.0".into());
        }))
        .await
        .unwrap();
    assert_eq!(ids(&p), [tasks[0].id, tasks[4].id]);
    let p = store
        .task_list(&q(&|q| q.status = Some(TaskState::Complete)))
        .await
        .unwrap();
    assert_eq!((p.total.unwrap(), ids(&p)), (1, vec![tasks[0].id]));
    let p = store
        .task_list(&q(&|q| q.status = Some(TaskState::Pending)))
        .await
        .unwrap();
    assert_eq!(p.total.unwrap(), 4);
    let p = store
        .task_list(&q(&|q| {
            q.created_since = Some(at(10));
            q.created_until = Some(at(30));
        }))
        .await
        .unwrap();
    assert_eq!(
        ids(&p),
        [tasks[1].id, tasks[2].id],
        "since inclusive, until exclusive"
    );
    let p = store
        .task_list(&q(&|q| q.namespace = Some("nope".into())))
        .await
        .unwrap();
    assert_eq!((p.total.unwrap(), p.items.len()), (0, 0));

    // A page is a window; the total stays.
    let p = store
        .task_list(&q(&|q| {
            q.namespace = Some("billing".into());
            q.limit = 2;
            q.offset = 1;
        }))
        .await
        .unwrap();
    assert_eq!(
        (p.total.unwrap(), ids(&p)),
        (3, vec![tasks[1].id, tasks[2].id])
    );
}

/// The correlation id is an exact match (not a prefix, not a pattern),
/// combines with the other filters, and the count follows it.
pub async fn task_list_filters_by_correlation_id(store: Arc<dyn Store>) {
    let mk = |ns: &str, corr: &str, t: i64| {
        let mut task = TaskBuilder::new(ns, "order").step("a", &[]).build(at(t));
        task.correlation_id = corr.to_string();
        task
    };
    let tasks = vec![
        mk("shop", "order-42", 0),
        mk("shop", "order-421", 10),
        mk("billing", "order-42", 20),
        mk("shop", "order-%", 30),
        mk("shop", "ORDER-42", 40),
    ];
    store.task_create_many(tasks.clone()).await.unwrap();
    let find = |corr: &str, ns: Option<&str>| {
        let q = TaskQuery {
            correlation_id: Some(corr.to_string()),
            namespace: ns.map(str::to_string),
            count: crate::CountMode::Exact,
            ..Default::default()
        };
        let store = store.clone();
        async move {
            let p = store.task_list(&q).await.unwrap();
            let mut ids: Vec<Uuid> = p.items.iter().map(|t| t.id).collect();
            ids.sort();
            (p.total.unwrap(), ids)
        }
    };
    let sorted = |mut v: Vec<Uuid>| {
        v.sort();
        v
    };
    assert_eq!(
        find("order-42", None).await,
        (2, sorted(vec![tasks[0].id, tasks[2].id])),
        "exact and case-sensitive: not order-421, not ORDER-42"
    );
    assert_eq!(
        find("order-42", Some("shop")).await,
        (1, vec![tasks[0].id]),
        "combined with the namespace"
    );
    assert_eq!(
        find("order-%", None).await,
        (1, vec![tasks[3].id]),
        "no pattern matching"
    );
    assert_eq!(find("order-", None).await, (0, vec![]), "no prefix match");
}

/// Every sort key, both directions, and paging through the whole list.
pub async fn task_list_sorts_and_pages(store: Arc<dyn Store>) {
    let specs = [
        ("b", "zeta", 0),
        ("a", "eta", 10),
        ("c", "alpha", 20),
        ("a", "beta", 30),
    ];
    let tasks: Vec<_> = specs
        .iter()
        .map(|(ns, name, t)| TaskBuilder::new(ns, name).step("a", &[]).build(at(*t)))
        .collect();
    store.task_create_many(tasks.clone()).await.unwrap();
    // Touch task 0 last so updated_at differs from created_at order.
    store
        .task_update(tasks[0].id, Default::default(), at(100))
        .await
        .unwrap();
    // Cancel task 2 so statuses differ.
    store.task_cancel(tasks[2].id, at(50), None).await.unwrap();

    let list = |sort: TaskSort, descending: bool, limit: u32, offset: u32| {
        let store = store.clone();
        async move {
            let q = TaskQuery {
                sort,
                descending,
                limit,
                offset,
                ..Default::default()
            };
            let p = store.task_list(&q).await.unwrap();
            (
                p.total.unwrap(),
                p.items.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
            )
        }
    };
    assert_eq!(
        list(TaskSort::CreatedAt, false, 0, 0).await.1,
        ["zeta", "eta", "alpha", "beta"]
    );
    assert_eq!(
        list(TaskSort::CreatedAt, true, 0, 0).await.1,
        ["beta", "alpha", "eta", "zeta"]
    );
    assert_eq!(
        list(TaskSort::Name, false, 0, 0).await.1,
        ["alpha", "beta", "eta", "zeta"]
    );
    assert_eq!(
        list(TaskSort::Name, true, 0, 0).await.1,
        ["zeta", "eta", "beta", "alpha"]
    );
    assert_eq!(list(TaskSort::UpdatedAt, true, 1, 0).await.1, ["zeta"]);
    assert_eq!(
        list(TaskSort::UpdatedAt, false, 0, 0).await.1,
        ["eta", "beta", "alpha", "zeta"]
    );
    let by_ns = list(TaskSort::Namespace, false, 0, 0).await.1;
    assert_eq!(&by_ns[2..], ["zeta", "alpha"], "namespaces a, a, b, c");
    let by_status = list(TaskSort::Status, false, 0, 0).await.1;
    assert_eq!(by_status[0], "alpha", "cancelled sorts before pending");

    let mut paged = Vec::new();
    for offset in [0, 3] {
        let (total, names) = list(TaskSort::CreatedAt, false, 3, offset).await;
        assert_eq!(total, 4);
        paged.extend(names);
    }
    assert_eq!(paged, ["zeta", "eta", "alpha", "beta"]);
    assert_eq!(list(TaskSort::CreatedAt, false, 3, 10).await, (4, vec![]));
}

/// Step counts sort steps by situation: ready, scheduled, retrying,
/// running, done, failed, cancelled; waiting-for-parents is only pending.
pub async fn step_counts_by_situation(store: Arc<dyn Store>) {
    let t = TaskBuilder::new("test", "counts")
        .step("done", &[])
        .kind("k-done")
        .step("running", &[])
        .kind("k-running")
        .step("retrying", &[])
        .kind("k-retrying")
        .step("failed", &[])
        .kind("k-failed")
        .step("cancelled", &[])
        .step("ready", &["done"])
        .step("waiting", &["failed"])
        .build(at(0));
    store.task_create(t.clone()).await.unwrap();
    let take = |kind: &'static str| {
        let store = store.clone();
        async move {
            let mut p = params("w", 1, at(1));
            p.kinds = Some(vec![kind.to_string()]);
            store.step_claim(&p).await.unwrap().remove(0)
        }
    };
    let done = take("k-done").await;
    succeed(&store, &done, at(2)).await;
    take("k-running").await;
    let retrying = take("k-retrying").await;
    fail(&store, &retrying, Some(at(60)), at(2)).await;
    let failed = take("k-failed").await;
    fail(&store, &failed, None, at(2)).await;
    store
        .step_cancel(step(&store, t.id, "cancelled").await.id, at(3), None)
        .await
        .unwrap();

    let c = store.task_step_counts(t.id, at(10)).await.unwrap();
    assert_eq!(c.total, 7);
    assert_eq!(c.done, 1);
    assert_eq!(c.in_progress, 1);
    assert_eq!(c.failed, 1);
    assert_eq!(c.cancelled, 1);
    assert_eq!(c.pending, 3, "ready, retrying, waiting");
    assert_eq!(c.ready, 1);
    assert_eq!(c.scheduled, 1);
    assert_eq!(c.retrying, 1);
    // At the retry time the retrying step counts as ready instead.
    let c = store.task_step_counts(t.id, at(60)).await.unwrap();
    assert_eq!((c.ready, c.scheduled, c.retrying), (2, 0, 1));
}

/// Stats count tasks and steps by state, and steps waiting for a retry.
pub async fn stats_count_states(store: Arc<dyn Store>) {
    let get = |m: &std::collections::BTreeMap<String, i64>, k: &str| m.get(k).copied().unwrap_or(0);
    let empty = store.stats().await.unwrap();
    assert_eq!(empty.tasks_by_state.values().sum::<i64>(), 0);
    assert_eq!(empty.steps_retrying, 0);

    let done = new_task(Shape::Single, at(0));
    let retrying = new_task(Shape::Linear(2), at(1));
    let cancelled = new_task(Shape::Roots(2), at(2));
    store
        .task_create_many(vec![done.clone(), retrying.clone(), cancelled.clone()])
        .await
        .unwrap();
    let c = claim_one(&store, at(3)).await;
    assert_eq!(c.task_id, done.id);
    succeed(&store, &c, at(3)).await;
    let c = claim_one(&store, at(3)).await;
    assert_eq!(c.task_id, retrying.id);
    fail(&store, &c, Some(at(100)), at(4)).await;
    store.task_cancel(cancelled.id, at(5), None).await.unwrap();

    let s = store.stats().await.unwrap();
    assert_eq!(get(&s.tasks_by_state, "complete"), 1);
    assert_eq!(get(&s.tasks_by_state, "in_progress"), 1);
    assert_eq!(get(&s.tasks_by_state, "cancelled"), 1);
    assert_eq!(get(&s.tasks_by_state, "pending"), 0);
    assert_eq!(get(&s.steps_by_state, "complete"), 1);
    assert_eq!(get(&s.steps_by_state, "pending"), 2);
    assert_eq!(get(&s.steps_by_state, "cancelled"), 2);
    assert_eq!(s.steps_by_state.values().sum::<i64>(), 5);
    assert_eq!(s.steps_retrying, 1);
}

/// The earliest `ready_at` of any claimable step, or none.
pub async fn next_ready_at_is_earliest_ready_at(store: Arc<dyn Store>) {
    assert_eq!(store.step_next_ready_at().await.unwrap(), None);
    store
        .task_create(new_task(Shape::Roots(2), at(5)))
        .await
        .unwrap();
    assert_eq!(store.step_next_ready_at().await.unwrap(), Some(at(5)));
    let got = claim(&store, 10, at(6)).await;
    assert_eq!(
        store.step_next_ready_at().await.unwrap(),
        None,
        "nothing is waiting"
    );
    fail(&store, &got[0], Some(at(90)), at(7)).await;
    fail(&store, &got[1], Some(at(40)), at(7)).await;
    assert_eq!(store.step_next_ready_at().await.unwrap(), Some(at(40)));
}

/// `step_get` returns the same row as the task's `step_list` entry.
pub async fn step_list_and_step_get_agree(store: Arc<dyn Store>) {
    let t = new_task(Shape::Diamond, at(0));
    store.task_create(t.clone()).await.unwrap();
    let a = claim_one(&store, at(1)).await;
    store
        .step_finish_many(&[success(&a, json!({"k": "v"}))], at(2))
        .await
        .unwrap();
    claim(&store, 1, at(3)).await;
    let list = store.step_list(t.id).await.unwrap();
    assert_eq!(list.len(), 4);
    for s in &list {
        assert_eq!(&store.step_get(s.id).await.unwrap(), s);
    }
}

/// The batch read gives each task exactly what `step_list` gives it, and
/// leaves unknown ids out.
pub async fn step_list_many_matches_step_list(store: Arc<dyn Store>) {
    let a = new_task(Shape::Diamond, at(0));
    let b = new_task(Shape::Linear(3), at(0));
    store.task_create(a.clone()).await.unwrap();
    store.task_create(b.clone()).await.unwrap();
    let ghost = Uuid::now_v7();
    let many = store.step_list_many(&[a.id, b.id, ghost]).await.unwrap();
    assert_eq!(many.len(), 2);
    assert_eq!(many[&a.id], store.step_list(a.id).await.unwrap());
    assert_eq!(many[&b.id], store.step_list(b.id).await.unwrap());
    assert!(!many.contains_key(&ghost));
    assert!(store.step_list_many(&[]).await.unwrap().is_empty());
}

/// Events: work after create, a change per step change, the end of a task.
pub async fn events_announce_changes_and_finishes(store: Arc<dyn Store>) {
    let mut rx = store.subscribe();
    let t = new_task(Shape::Linear(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    assert!(saw(&mut rx, |e| *e == StoreEvent::WorkAvailable).await);
    let c = claim_one(&store, at(1)).await;
    assert!(
        saw(&mut rx, |e| *e == StoreEvent::TaskChanged(t.id)).await,
        "claim changes a step"
    );
    let r = succeed(&store, &c, at(2)).await;
    assert_eq!(r.newly_ready, 1);
    assert!(
        saw(&mut rx, |e| *e == StoreEvent::WorkAvailable).await,
        "the child became ready"
    );
    let c = claim_one(&store, at(3)).await;
    succeed(&store, &c, at(4)).await;
    assert!(saw(&mut rx, |e| *e == StoreEvent::TaskFinished(t.id)).await);
    // A second subscriber sees later events too.
    let mut rx2 = store.subscribe();
    store
        .task_create(new_task(Shape::Single, at(5)))
        .await
        .unwrap();
    assert!(saw(&mut rx2, |e| *e == StoreEvent::WorkAvailable).await);
}

/// The health calls work on a fresh store.
pub async fn ping_and_migrations(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
    assert!(store.migrations_applied().await.unwrap());
    assert!(matches!(
        store.backend(),
        Backend::Sqlite | Backend::Postgres
    ));
}

/// Windowed stats count only the tasks created since the window's start
/// and their steps; `has_open_tasks` sees pending and running tasks.
pub async fn stats_since_counts_the_window(store: Arc<dyn Store>) {
    let get = |m: &std::collections::BTreeMap<String, i64>, k: &str| m.get(k).copied().unwrap_or(0);
    assert!(!store.has_open_tasks().await.unwrap());
    let old = new_task(Shape::Linear(2), at(0));
    let recent = new_task(Shape::Linear(2), at(100));
    let newer = new_task(Shape::Single, at(200));
    store
        .task_create_many(vec![old.clone(), recent.clone(), newer.clone()])
        .await
        .unwrap();
    assert!(store.has_open_tasks().await.unwrap());
    // The old task fails for good; the recent one waits for a retry.
    let c = claim_one(&store, at(300)).await;
    assert_eq!(c.task_id, old.id);
    fail(&store, &c, None, at(300)).await;
    let c = claim_one(&store, at(301)).await;
    assert_eq!(c.task_id, recent.id);
    fail(&store, &c, Some(at(1000)), at(301)).await;

    let s = store.stats_since(at(100)).await.unwrap();
    assert_eq!(s.tasks_by_state.values().sum::<i64>(), 2, "{s:?}");
    assert_eq!(get(&s.tasks_by_state, "error"), 0, "{s:?}");
    assert_eq!(s.steps_by_state.values().sum::<i64>(), 3, "{s:?}");
    assert_eq!(get(&s.steps_by_state, "error"), 0, "{s:?}");
    assert_eq!(s.steps_retrying, 1);
    // Every state is listed.
    assert_eq!(s.tasks_by_state.len(), tasker_core::TaskState::ALL.len());
    // The whole history, for comparison.
    let all = store.stats_since(at(0)).await.unwrap();
    assert_eq!(all.tasks_by_state.values().sum::<i64>(), 3);
    assert_eq!(get(&all.steps_by_state, "error"), 1);
    let none = store.stats_since(at(201)).await.unwrap();
    assert_eq!(none.tasks_by_state.values().sum::<i64>(), 0);
    assert_eq!(none.steps_retrying, 0);

    // Once everything is finished, nothing is open.
    for t in [&recent, &newer] {
        store.task_cancel(t.id, at(400), None).await.unwrap();
    }
    assert!(!store.has_open_tasks().await.unwrap());
}
