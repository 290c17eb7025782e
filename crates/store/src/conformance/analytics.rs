//! The analytics reads: queue depth and history samples.

use super::factory::TaskBuilder;
use super::*;
use crate::HistoryQuery;

/// Counts only steps ready at `now`, stops at the cap, and names the oldest
/// ready time; claimed and future steps are not in the queue.
pub async fn queue_depth_counts_ready_steps(store: Arc<dyn Store>) {
    let empty = store.queue_depth(at(0), 100).await.unwrap();
    assert_eq!((empty.ready, empty.oldest_ready_at), (0, None));
    for t in 0..3 {
        let task = TaskBuilder::new("ops", "q")
            .step("a", &[])
            .step("b", &[])
            .step("c", &["a"])
            .build(at(t));
        store.task_create(task).await.unwrap();
    }
    // Three tasks, two roots each: six ready, the oldest from the first task.
    let d = store.queue_depth(at(10), 100).await.unwrap();
    assert_eq!(d.ready, 6);
    assert_eq!(d.oldest_ready_at, Some(at(0)));
    // The cap bounds the count.
    assert_eq!(store.queue_depth(at(10), 4).await.unwrap().ready, 4);
    // Claimed steps leave the queue; a retry scheduled later is not ready yet.
    let c = claim(&store, 2, at(10)).await;
    assert_eq!(c.len(), 2);
    fail(&store, &c[0], Some(at(100)), at(11)).await;
    let d = store.queue_depth(at(12), 100).await.unwrap();
    assert_eq!(d.ready, 4, "{d:?}");
    assert_eq!(d.oldest_ready_at, Some(at(1)));
    assert_eq!(store.queue_depth(at(100), 100).await.unwrap().ready, 5);
}

/// The sample covers the window's newest tasks up to the cap, filters by
/// template, repeats task figures on every step, and carries attempts and
/// the last attempt's times.
pub async fn history_sample_covers_the_window(store: Arc<dyn Store>) {
    let old = TaskBuilder::new("shop", "checkout")
        .step("a", &[])
        .build(at(0));
    store.task_create(old).await.unwrap();
    let mut recent = Vec::new();
    for t in 0..3 {
        let task = TaskBuilder::new("shop", "checkout")
            .version(if t == 2 { "2.0.0" } else { "1.0.0" })
            .step("a", &[])
            .step("b", &["a"])
            .build(at(100 + t));
        recent.push(task.id);
        store.task_create(task).await.unwrap();
    }
    let other = TaskBuilder::new("ops", "report")
        .step("only", &[])
        .build(at(110));
    store.task_create(other.clone()).await.unwrap();
    // Run the first recent task: `a` fails once then succeeds, `b` succeeds.
    let c = claim(&store, 10, at(200)).await;
    let a = c.iter().find(|s| s.task_id == recent[0]).unwrap();
    fail(&store, a, Some(at(201)), at(201)).await;
    let c = claim(&store, 10, at(202)).await;
    let a = c.iter().find(|s| s.task_id == recent[0]).unwrap();
    succeed(&store, a, at(205)).await;
    let b = claim(&store, 10, at(206))
        .await
        .into_iter()
        .find(|s| s.task_id == recent[0])
        .unwrap();
    succeed(&store, &b, at(209)).await;

    let q = |f: &dyn Fn(&mut HistoryQuery)| {
        let mut q = HistoryQuery {
            since: at(50),
            namespace: None,
            name: None,
            version: None,
            max_tasks: 100,
            scan_limit: 100,
        };
        f(&mut q);
        q
    };
    let all = store.history_sample(&q(&|_| {})).await.unwrap();
    // Four tasks in the window (the old one is outside), seven steps, newest task first.
    assert_eq!(all.len(), 7, "{all:#?}");
    assert_eq!(all[0].task_id, other.id);
    let shop = store
        .history_sample(&q(&|q| {
            q.namespace = Some("shop".into());
            q.name = Some("checkout".into());
        }))
        .await
        .unwrap();
    assert_eq!(shop.len(), 6);
    assert!(shop.iter().all(|s| s.task_id != other.id));
    // Steps of a task come in template order.
    let first: Vec<_> = shop.iter().filter(|s| s.task_id == recent[0]).collect();
    assert_eq!(
        first
            .iter()
            .map(|s| s.step_name.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(first[0].task_status, "complete");
    assert_eq!(first[0].task_created_at, at(100));
    assert_eq!(first[0].task_completed_at, Some(at(209)));
    assert_eq!(first[0].step_status, "complete");
    assert_eq!(first[0].handler_kind, "noop");
    assert_eq!(first[0].attempts, 2);
    assert_eq!(first[0].last_attempted_at, Some(at(202)));
    assert_eq!(first[0].step_completed_at, Some(at(205)));
    assert_eq!(first[1].attempts, 1);
    let v2 = store
        .history_sample(&q(&|q| q.version = Some("2.0.0".into())))
        .await
        .unwrap();
    assert_eq!(v2.len(), 2);
    assert!(v2.iter().all(|s| s.task_id == recent[2]));
    // The cap keeps the newest tasks, each with all its steps.
    let capped = store
        .history_sample(&q(&|q| q.max_tasks = 2))
        .await
        .unwrap();
    let mut ids: Vec<_> = capped.iter().map(|s| s.task_id).collect();
    ids.dedup();
    assert_eq!(ids, [other.id, recent[2]]);
    assert_eq!(capped.len(), 3);
    // The scan cap bounds how many of the window's newest tasks are
    // examined: the two newest are `ops.report` and the 2.0.0 checkout.
    let scanned = store
        .history_sample(&q(&|q| {
            q.namespace = Some("shop".into());
            q.version = Some("1.0.0".into());
            q.max_tasks = 1;
            q.scan_limit = 2;
        }))
        .await
        .unwrap();
    assert!(scanned.is_empty(), "{scanned:#?}");
}
