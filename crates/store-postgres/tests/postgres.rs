//! PostgreSQL-specific behaviour: several pools on one database stand in for
//! several engine processes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, Duration, Utc};
use common::TestDb;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;
use tasker_store::conformance::factory::{Shape, TaskBuilder, new_task};
use tasker_store::conformance::{base, params, success};
use tasker_store::{LeaseRef, NewTask, Store, StoreError, StoreEvent};
use tasker_store_postgres::{PgOptions, PgStore, PlanKind};
use tokio::sync::Barrier;
use uuid::Uuid;

fn small_pool() -> PgOptions {
    PgOptions {
        max_connections: 4,
        ..PgOptions::default()
    }
}

async fn two_stores(db: &TestDb) -> (Arc<dyn Store>, Arc<dyn Store>) {
    let a = db.store_with(small_pool()).await;
    let b = db
        .store_with(PgOptions {
            run_migrations: false,
            ..small_pool()
        })
        .await;
    (Arc::new(a), Arc::new(b))
}

async fn wait_for(
    rx: &mut tokio::sync::broadcast::Receiver<StoreEvent>,
    pred: impl Fn(&StoreEvent) -> bool,
) -> Option<std::time::Duration> {
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) if pred(&ev) => return Some(start.elapsed()),
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
            _ => return None,
        }
    }
}

#[tokio::test]
async fn connect_migrates_and_pings() {
    let db = TestDb::create().await;
    let store = db.store().await;
    store.ping().await.unwrap();
    assert!(store.migrations_applied().await.unwrap());
    // Running them again is a no-op.
    store.migrate().await.unwrap();
    // A process that does not migrate sees what another one applied.
    let second = db
        .store_with(PgOptions {
            run_migrations: false,
            ..PgOptions::default()
        })
        .await;
    assert!(second.migrations_applied().await.unwrap());
}

#[tokio::test]
async fn unmigrated_database_reports_false() {
    let db = TestDb::create().await;
    let store = db
        .store_with(PgOptions {
            run_migrations: false,
            ..PgOptions::default()
        })
        .await;
    assert!(!store.migrations_applied().await.unwrap());
    store.migrate().await.unwrap();
    assert!(store.migrations_applied().await.unwrap());
}

#[tokio::test]
async fn unreachable_server_is_unavailable() {
    // Nothing listens on port 1.
    let err = PgStore::connect_with(
        "postgres://postgres@127.0.0.1:1/postgres",
        PgOptions {
            acquire_timeout: std::time::Duration::from_secs(2),
            ..PgOptions::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.is_transient());
}

/// Four claimers on two pools drain 300 ready steps: every step is claimed
/// exactly once and has exactly one `pending → in_progress` transition.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pools_never_claim_the_same_step() {
    let db = TestDb::create().await;
    let (a, b) = two_stores(&db).await;
    let now = base();
    let tasks: Vec<NewTask> = (0..60).map(|_| new_task(Shape::Roots(5), now)).collect();
    a.task_create_many(tasks).await.unwrap();

    let barrier = Arc::new(Barrier::new(4));
    let mut handles = Vec::new();
    for (i, store) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut mine = Vec::new();
            loop {
                let got = store
                    .step_claim(&params(&format!("w{i}"), 7, now))
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.step_id));
            }
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let distinct: HashSet<Uuid> = all.iter().copied().collect();
    assert_eq!(all.len(), 300, "every ready step claimed");
    assert_eq!(distinct.len(), 300, "no step claimed twice");

    let pg = db.store().await;
    let claims: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM step_transitions WHERE from_state = 'pending' AND to_state = 'in_progress'",
    )
    .fetch_one(pg.pool())
    .await
    .unwrap();
    assert_eq!(claims, 300);
    let starts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM task_transitions WHERE from_state = 'pending' AND to_state = 'in_progress'",
    )
    .fetch_one(pg.pool())
    .await
    .unwrap();
    assert_eq!(starts, 60, "each task started exactly once");
}

/// Two pools finish the last two steps of a task at the same instant:
/// exactly one `complete` task transition, 50 times over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_finishers_on_two_pools_complete_once() {
    let db = TestDb::create().await;
    let (a, b) = two_stores(&db).await;
    let now = base();
    for round in 0..50 {
        let task = new_task(Shape::Roots(2), now);
        let task_id = task.id;
        a.task_create(task).await.unwrap();
        let claimed = a.step_claim(&params("w", 2, now)).await.unwrap();
        assert_eq!(claimed.len(), 2);
        let barrier = Arc::new(Barrier::new(2));
        let mut handles = Vec::new();
        for (store, c) in [
            (a.clone(), claimed[0].clone()),
            (b.clone(), claimed[1].clone()),
        ] {
            let barrier = barrier.clone();
            handles.push(tokio::spawn(async move {
                barrier.wait().await;
                store
                    .step_finish_many(&[success(&c, json!({"ok": true}))], now)
                    .await
                    .unwrap()
            }));
        }
        let mut finished = 0;
        for h in handles {
            let r = h.await.unwrap();
            assert_eq!(r.applied, 1);
            finished += r.finished_tasks.len();
        }
        assert_eq!(
            finished, 1,
            "round {round}: exactly one finisher reports the task"
        );
        let t = a.task_get(task_id).await.unwrap();
        assert_eq!(t.status, tasker_core::TaskState::Complete, "round {round}");
        assert_eq!(t.steps_remaining, 0);
        let completes = a
            .task_transitions(task_id)
            .await
            .unwrap()
            .iter()
            .filter(|t| t.to_state == "complete")
            .count();
        assert_eq!(completes, 1, "round {round}: one complete transition");
    }
}

/// A task created through one pool wakes a subscriber of another pool
/// (LISTEN/NOTIFY), and so does its completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_wakes_a_subscriber_of_another_pool() {
    let db = TestDb::create().await;
    let (a, b) = two_stores(&db).await;
    let mut rx_b = b.subscribe();
    let now = base();

    let task = new_task(Shape::Single, now);
    let task_id = task.id;
    // Timed from the start of the call in pool A to the event in pool B.
    let t0 = Instant::now();
    a.task_create(task).await.unwrap();
    let call = t0.elapsed();
    wait_for(&mut rx_b, |e| *e == StoreEvent::WorkAvailable)
        .await
        .expect("the other pool was woken for new work");
    eprintln!(
        "cross-process WorkAvailable: create call {call:?}, event in the other pool at {:?}",
        t0.elapsed()
    );

    let c = a.step_claim(&params("w", 1, now)).await.unwrap().remove(0);
    let t0 = Instant::now();
    a.step_finish_many(&[success(&c, json!({}))], now)
        .await
        .unwrap();
    let call = t0.elapsed();
    wait_for(&mut rx_b, |e| *e == StoreEvent::TaskFinished(task_id))
        .await
        .expect("the other pool heard the task finish");
    eprintln!(
        "cross-process TaskFinished: finish call {call:?}, event in the other pool at {:?}",
        t0.elapsed()
    );
}

/// The events `rx` receives up to the marker notification `marker` (sent
/// now through `pool`): PostgreSQL delivers notifications in commit order,
/// so these are all the events of what committed before.
async fn events_until_marker(
    rx: &mut tokio::sync::broadcast::Receiver<StoreEvent>,
    pool: &sqlx::PgPool,
) -> Vec<StoreEvent> {
    let marker = Uuid::new_v4();
    sqlx::query("SELECT pg_notify('tasker_task', $1)")
        .bind(format!("{marker}:finished"))
        .execute(pool)
        .await
        .unwrap();
    let mut before = Vec::new();
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await {
            Ok(Ok(StoreEvent::TaskFinished(id))) if id == marker => return before,
            Ok(Ok(ev)) => before.push(ev),
            other => panic!("the marker notification never arrived: {other:?}"),
        }
    }
}

/// Claim on completion across processes: a finish whose ready children were
/// all leased by the finishing worker wakes no other process; one that
/// leaves ready children does (NOTIFY), like any finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_on_completion_notifies_only_work_left_for_others() {
    let db = TestDb::create().await;
    let a = db.store_with(small_pool()).await;
    let b = db
        .store_with(PgOptions {
            run_migrations: false,
            ..small_pool()
        })
        .await;
    let (sa, sb): (Arc<dyn Store>, Arc<dyn Store>) = (Arc::new(a.clone()), Arc::new(b));
    let mut rx_b = sb.subscribe();
    let now = base();
    let fan = |n: usize| {
        let mut t = TaskBuilder::new("test", "fan").step("root", &[]);
        for i in 0..n {
            t = t.step(&format!("c{i}"), &["root"]);
        }
        t.build(now)
    };
    let (t2, t3) = (fan(2), fan(3));
    sa.task_create(t2.clone()).await.unwrap();
    sa.task_create(t3.clone()).await.unwrap();
    let roots = sa.step_claim(&params("w", 2, now)).await.unwrap();
    assert_eq!(roots.len(), 2);
    let root_of = |t: &NewTask| roots.iter().find(|c| c.task_id == t.id).unwrap();
    events_until_marker(&mut rx_b, a.pool()).await;

    let r = sa
        .step_finish_and_claim(
            &[success(root_of(&t2), json!({}))],
            now,
            Some(&params("w", 2, now)),
        )
        .await
        .unwrap();
    assert_eq!(r.claimed.len(), 2);
    let seen = events_until_marker(&mut rx_b, a.pool()).await;
    assert!(
        !seen.contains(&StoreEvent::WorkAvailable),
        "nothing was left to claim: {seen:?}"
    );

    let r = sa
        .step_finish_and_claim(
            &[success(root_of(&t3), json!({}))],
            now,
            Some(&params("w", 1, now)),
        )
        .await
        .unwrap();
    assert_eq!(r.claimed.len(), 1);
    let seen = events_until_marker(&mut rx_b, a.pool()).await;
    assert!(
        seen.contains(&StoreEvent::WorkAvailable),
        "two ready children were left for others: {seen:?}"
    );
}

/// The finish statement moves the tasks it finishes and queues their
/// `tasker_task` NOTIFY itself (150 per payload): another process hears
/// every one of 200 tasks finished by one batch exactly once (no payload
/// over PostgreSQL's 8000-byte limit, and no second NOTIFY of the same
/// tasks from the statements after it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_finishing_many_tasks_announces_each_once() {
    let db = TestDb::create().await;
    let (a, b) = two_stores(&db).await;
    let mut rx_b = b.subscribe();
    let now = base();
    let mut ids = HashSet::new();
    for _ in 0..200 {
        let t = new_task(Shape::Single, now);
        ids.insert(t.id);
        a.task_create(t).await.unwrap();
    }
    let claimed = a.step_claim(&params("w", 200, now)).await.unwrap();
    assert_eq!(claimed.len(), 200);
    let pool = db.store().await;
    events_until_marker(&mut rx_b, pool.pool()).await;
    let outcomes: Vec<_> = claimed.iter().map(|c| success(c, json!({}))).collect();
    let report = a.step_finish_many(&outcomes, now).await.unwrap();
    assert_eq!(report.finished_tasks.len(), 200);
    let seen = events_until_marker(&mut rx_b, pool.pool()).await;
    let mut heard = std::collections::HashMap::new();
    for e in seen {
        if let StoreEvent::TaskFinished(id) = e {
            *heard.entry(id).or_insert(0) += 1;
        }
    }
    assert_eq!(heard.len(), 200, "every finished task announced");
    assert!(heard.keys().all(|id| ids.contains(id)));
    assert!(
        heard.values().all(|n| *n == 1),
        "a task announced twice: {heard:?}"
    );
    for id in &ids {
        let t = a.task_get(*id).await.unwrap();
        assert_eq!(t.status, tasker_core::TaskState::Complete);
    }
}

/// A store does not relay its own work notifications back to itself (it
/// already broadcast them after commit). PostgreSQL delivers notifications to
/// a session in commit order, so a marker notified after the task was created
/// arrives after the echo would have: everything before the marker is
/// everything the relay made of our own notification.
#[tokio::test]
async fn own_work_notifications_are_not_echoed() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let mut rx = store.subscribe();
    store
        .task_create(new_task(Shape::Single, base()))
        .await
        .unwrap();
    assert_eq!(rx.recv().await.unwrap(), StoreEvent::WorkAvailable);
    let marker = Uuid::new_v4();
    sqlx::query("SELECT pg_notify('tasker_task', $1)")
        .bind(format!("{marker}:finished"))
        .execute(store.pool())
        .await
        .unwrap();
    let mut before_marker = Vec::new();
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await {
            Ok(Ok(StoreEvent::TaskFinished(id))) if id == marker => break,
            Ok(Ok(ev)) => before_marker.push(ev),
            other => panic!("the marker notification never arrived: {other:?}"),
        }
    }
    assert!(
        !before_marker.contains(&StoreEvent::WorkAvailable),
        "own notification echoed: {before_marker:?}"
    );
}

/// The listener survives the server terminating its session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_recovers_after_its_session_is_terminated() {
    let db = TestDb::create().await;
    let (a, b) = two_stores(&db).await;
    let mut rx_b = b.subscribe();
    let admin = db.store().await;
    // Terminate every other session of this database: both pools and both listeners.
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(admin.pool())
    .await
    .unwrap();
    // Pools reconnect on demand, and a dead connection is a transient error
    // the store retries itself: the first call after the purge succeeds.
    let now = base();
    a.task_create(new_task(Shape::Single, now))
        .await
        .expect("the pool recovered from its terminated sessions");
    // The listener reconnects (announcing WorkAvailable) and hears new work.
    assert!(
        wait_for(&mut rx_b, |e| *e == StoreEvent::WorkAvailable)
            .await
            .is_some(),
        "listener of the other pool recovered"
    );
}

/// `tasks` diamond tasks created at `now` (in batches of 1000), then every
/// step and task of the database marked complete: a history the hot path
/// must not read.
async fn finished_history(store: &PgStore, tasks: usize, now: DateTime<Utc>) {
    for start in (0..tasks).step_by(1000) {
        let batch: Vec<NewTask> = (start..tasks.min(start + 1000))
            .map(|_| new_task(Shape::Diamond, now))
            .collect();
        store.task_create_many(batch).await.unwrap();
    }
    sqlx::query(
        "UPDATE steps SET status = 'complete', ready_at = NULL, remaining_parents = 0, completed_at = $1",
    )
    .bind(now)
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query("UPDATE tasks SET status = 'complete', steps_remaining = 0, steps_live = 0")
        .execute(store.pool())
        .await
        .unwrap();
}

/// EXPLAIN: with a large finished history and ANALYZE, the generic plans the
/// sessions use read the partial `ready_at` index (claim) and the partial
/// lease index (rescue), the claim on completion the primary key only, and
/// no hot statement scans a table.
#[tokio::test]
async fn claim_and_rescue_use_the_partial_indexes() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let s: Arc<dyn Store> = Arc::new(store.clone());
    let now = base();
    // 4000 finished diamond tasks (16000 steps, 16000 edges) of history.
    finished_history(&store, 4000, now).await;
    // 1000 fresh steps: 500 running under leases, 500 ready.
    let fresh: Vec<NewTask> = (0..40).map(|_| new_task(Shape::Roots(25), now)).collect();
    s.task_create_many(fresh).await.unwrap();
    let running = s.step_claim(&params("w", 500, now)).await.unwrap();
    assert_eq!(running.len(), 500);
    sqlx::query("ANALYZE").execute(store.pool()).await.unwrap();

    for kind in [PlanKind::Custom, PlanKind::Generic] {
        for (name, plan) in store.explain_hot_path(kind).await.unwrap() {
            let name = format!("{name} ({kind:?} plan)");
            eprintln!("{name}:\n{plan}\n");
            for table in [
                "steps",
                "tasks",
                "step_edges",
                "step_transitions",
                "task_transitions",
            ] {
                assert!(
                    !plan.contains(&format!("Seq Scan on {table} ")),
                    "{name} scans {table}:\n{plan}"
                );
            }
            if name.starts_with("claim") && name.contains("among: true") {
                // The claim on completion reaches its few candidates by
                // primary key: it never walks the ready frontier.
                assert!(!plan.contains("steps_ready_idx"), "{name}:\n{plan}");
                assert!(plan.contains("LockRows"), "{name} locks rows:\n{plan}");
                assert!(!plan.contains("hashed SubPlan"), "{name}:\n{plan}");
            } else if name.starts_with("claim") {
                assert!(plan.contains("steps_ready_idx"), "{name}:\n{plan}");
                assert!(plan.contains("LockRows"), "{name} locks rows:\n{plan}");
                // Tasks are reached by primary key only (a probe per
                // candidate), never through a whole namespace or status.
                assert!(
                    !plan.contains("tasks_status_created_idx"),
                    "{name}:\n{plan}"
                );
                assert!(!plan.contains("hashed SubPlan"), "{name}:\n{plan}");
                if kind == PlanKind::Custom {
                    // In index order, stopping after `limit` rows.
                    assert!(
                        plan.contains("Index Scan using steps_ready_idx"),
                        "{name}:\n{plan}"
                    );
                }
            }
            if name.starts_with("rescue") {
                assert!(plan.contains("steps_lease_idx"), "{name}:\n{plan}");
            }
        }
    }

    // And the claim does take the ready steps only.
    let got = s.step_claim(&params("w", 1000, now)).await.unwrap();
    assert_eq!(got.len(), 500);
}

/// A store's steady state: a finished history and a handful of ready
/// steps, analysed. PostgreSQL settles on the generic plan of every claim
/// that walks the ready frontier, and that plan is the custom plans' shape
/// (the ready index in order, stopping at the limit), so a claim is not
/// planned again at every execution (about 1 ms each; docs/PERFORMANCE.md,
/// "A claim planned once"). Without the claim's `ready_at IS NOT NULL` the
/// generic plan is estimated at a third of the table, and PostgreSQL plans
/// every claim anew.
#[tokio::test]
async fn claims_settle_on_their_generic_plan() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let s: Arc<dyn Store> = Arc::new(store.clone());
    // Ready a minute ago, so that the explained claims (at `now()`) find
    // the ready steps in the statistics.
    let now = Utc::now() - Duration::minutes(1);
    finished_history(&store, 2000, now).await;
    let fresh: Vec<NewTask> = (0..4).map(|_| new_task(Shape::Roots(5), now)).collect();
    s.task_create_many(fresh).await.unwrap();
    sqlx::query("ANALYZE").execute(store.pool()).await.unwrap();

    let plans = store.explain_hot_path(PlanKind::Chosen).await.unwrap();
    let claims: Vec<_> = plans
        .iter()
        .filter(|(name, _)| name.starts_with("claim") && !name.contains("among: true"))
        .collect();
    assert!(!claims.is_empty());
    for (name, plan) in claims {
        assert!(
            plan.contains("Index Scan using steps_ready_idx"),
            "{name} (chosen plan):\n{plan}"
        );
        assert!(
            plan.contains("(ready_at <= $1)"),
            "{name}: PostgreSQL chose a custom plan:\n{plan}"
        );
    }
}

/// A batch of outcomes is a fixed handful of statements: finishing 500
/// steps of 100 tasks (children unblocked, tasks finalised) in one call.
#[tokio::test]
async fn finish_many_batches_children_and_tasks() {
    let db = TestDb::create().await;
    let s: Arc<dyn Store> = Arc::new(db.store().await);
    let now = base();
    let tasks: Vec<NewTask> = (0..100)
        .map(|_| {
            TaskBuilder::new("test", "fan")
                .step("a", &[])
                .step("b", &[])
                .step("c", &[])
                .step("d", &[])
                .step("e", &[])
                .step("join", &["a", "b", "c", "d", "e"])
                .build(now)
        })
        .collect();
    s.task_create_many(tasks).await.unwrap();
    let claimed = s.step_claim(&params("w", 1000, now)).await.unwrap();
    assert_eq!(claimed.len(), 500);
    let outcomes: Vec<_> = claimed
        .iter()
        .map(|c| success(c, json!({"n": 1})))
        .collect();
    let started = Instant::now();
    let r = s.step_finish_many(&outcomes, now).await.unwrap();
    eprintln!(
        "finish of 500 outcomes (100 joins unblocked) took {:?}",
        started.elapsed()
    );
    assert_eq!(r.applied, 500);
    assert_eq!(
        r.newly_ready, 100,
        "each join unblocked once, after all five parents"
    );
    let joins = s.step_claim(&params("w", 1000, now)).await.unwrap();
    assert_eq!(joins.len(), 100);
    assert!(joins.iter().all(|j| j.parent_results.len() == 5));
    let r = s
        .step_finish_many(
            &joins
                .iter()
                .map(|c| success(c, json!({})))
                .collect::<Vec<_>>(),
            now,
        )
        .await
        .unwrap();
    assert_eq!(r.finished_tasks.len(), 100);
}

/// The hot path one call at a time: 200 claims of one step each take 200
/// different steps, each finish applies exactly once, and one renew of 50
/// held leases moves every expiry to the requested time. The latencies are
/// printed for docs/PERFORMANCE.md; the assertions are about what the calls
/// did, never about speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_path_round_trips_apply_once_and_renew() {
    let db = TestDb::create().await;
    let s: Arc<dyn Store> = Arc::new(db.store().await);
    let now = base();
    let tasks: Vec<NewTask> = (0..200).map(|_| new_task(Shape::Linear(3), now)).collect();
    s.task_create_many(tasks).await.unwrap();
    let mut claim_us = Vec::new();
    let mut finish_us = Vec::new();
    let mut seen = HashSet::new();
    for _ in 0..200 {
        let t0 = Instant::now();
        let mut got = s.step_claim(&params("w", 1, now)).await.unwrap();
        claim_us.push(t0.elapsed().as_micros());
        assert_eq!(got.len(), 1, "a claim of one takes one step");
        let c = got.remove(0);
        assert!(seen.insert(c.step_id), "step {} claimed twice", c.step_id);
        let t1 = Instant::now();
        let r = s
            .step_finish_many(&[success(&c, json!({"x": 1}))], now)
            .await
            .unwrap();
        finish_us.push(t1.elapsed().as_micros());
        assert_eq!(
            (r.applied, r.lease_lost.len()),
            (1, 0),
            "finish of {}",
            c.step_id
        );
    }
    let stats = s.stats().await.unwrap();
    assert_eq!(
        stats.steps_by_state.get("complete"),
        Some(&200),
        "{stats:?}"
    );

    let renew_t = Instant::now();
    let held = s.step_claim(&params("w", 50, now)).await.unwrap();
    assert_eq!(held.len(), 50);
    let leases: Vec<LeaseRef> = held
        .iter()
        .map(|c| LeaseRef {
            step_id: c.step_id,
            token: c.lease_token,
        })
        .collect();
    let until = now + Duration::seconds(60);
    let lost = s.step_lease_renew(&leases, until, now).await.unwrap();
    let renew = renew_t.elapsed();
    assert!(lost.is_empty(), "{lost:?}");
    for c in &held {
        let row = s.step_get(c.step_id).await.unwrap();
        assert_eq!(row.lease_expires_at, Some(until), "lease of {}", c.step_id);
    }
    claim_us.sort_unstable();
    finish_us.sort_unstable();
    let pct = |v: &[u128], p: usize| v[(v.len() * p / 100).min(v.len() - 1)];
    eprintln!(
        "claim(1): p50 {} µs p95 {} µs; finish(1): p50 {} µs p95 {} µs; claim(50)+renew(50): {:?}",
        pct(&claim_us, 50),
        pct(&claim_us, 95),
        pct(&finish_us, 50),
        pct(&finish_us, 95),
        renew
    );
}

/// Identity duplicates across pools: of many concurrent creators of the same
/// hash, exactly one succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identity_is_race_free_across_pools() {
    let db = TestDb::create().await;
    let (a, b) = two_stores(&db).await;
    let now = base();
    let since: DateTime<Utc> = now - Duration::hours(1);
    let barrier = Arc::new(Barrier::new(8));
    let mut handles = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            let task = TaskBuilder::new("test", "idem")
                .step("a", &[])
                .identity("same-hash", since)
                .build(now);
            barrier.wait().await;
            store.task_create(task).await
        }));
    }
    let mut ok = 0;
    let mut dup = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::DuplicateTask { .. }) => dup += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((ok, dup), (1, 7));
}

/// Throughput with two pools and six workers draining 500 diamond tasks
/// (2000 steps), printed for the report; also checks every task completed
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throughput_two_pools() {
    let db = TestDb::create().await;
    let (a, b) = two_stores(&db).await;
    let now = base();
    let tasks: Vec<NewTask> = (0..500).map(|_| new_task(Shape::Diamond, now)).collect();
    let ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
    let t0 = Instant::now();
    a.task_create_many(tasks).await.unwrap();
    let created = t0.elapsed();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let finished = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for w in 0..6 {
        let store = if w % 2 == 0 { a.clone() } else { b.clone() };
        let done = done.clone();
        let finished = finished.clone();
        handles.push(tokio::spawn(async move {
            use std::sync::atomic::Ordering::SeqCst;
            while done.load(SeqCst) < 2000 {
                let got = store
                    .step_claim(&params(&format!("w{w}"), 32, now))
                    .await
                    .unwrap();
                if got.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    continue;
                }
                let outcomes: Vec<_> = got.iter().map(|c| success(c, json!({"w": w}))).collect();
                let r = store.step_finish_many(&outcomes, now).await.unwrap();
                assert_eq!(r.applied as usize, got.len());
                done.fetch_add(got.len(), SeqCst);
                finished.fetch_add(r.finished_tasks.len(), SeqCst);
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let elapsed = t0.elapsed();
    eprintln!(
        "created 500 tasks (2000 steps) in {created:?}; drained in {elapsed:?}: {:.0} steps/s, {:.0} tasks/s",
        2000.0 / elapsed.as_secs_f64(),
        500.0 / elapsed.as_secs_f64()
    );
    assert_eq!(finished.load(std::sync::atomic::Ordering::SeqCst), 500);
    let complete = a
        .task_list(&tasker_store::TaskQuery {
            status: Some(tasker_core::TaskState::Complete),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(complete.total, Some(500));
    for id in ids.iter().take(20) {
        let n = a
            .task_transitions(*id)
            .await
            .unwrap()
            .iter()
            .filter(|t| t.to_state == "complete")
            .count();
        assert_eq!(n, 1);
    }
}

/// A tiny deterministic generator (no extra dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// Hot path on two pools with failures, while an operator cancels tasks,
/// resolves and retries failed work through a third pool; afterwards every
/// invariant of docs/STORAGE.md holds for every task and step.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invariants_hold_under_concurrent_hot_path_and_operator() {
    use tasker_store::conformance::failure;
    let db = TestDb::create().await;
    let (a, b) = two_stores(&db).await;
    let op: Arc<dyn Store> = Arc::new(db.store_with(small_pool()).await);
    let now = base();
    let tasks: Vec<NewTask> = (0..120)
        .map(|i| match i % 3 {
            0 => new_task(Shape::Diamond, now),
            1 => new_task(Shape::Linear(4), now),
            _ => new_task(Shape::Roots(3), now),
        })
        .collect();
    let ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
    a.task_create_many(tasks).await.unwrap();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let store = if w % 2 == 0 { a.clone() } else { b.clone() };
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut rng = Lcg(w + 1);
            let mut idle = 0;
            loop {
                let got = store
                    .step_claim(&params(&format!("w{w}"), 8, now))
                    .await
                    .unwrap();
                if got.is_empty() {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        idle += 1;
                        if idle > 20 {
                            return;
                        }
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    continue;
                }
                idle = 0;
                let outcomes: Vec<_> = got
                    .iter()
                    .map(|c| match rng.next() % 10 {
                        0 => failure(c, None),
                        1 | 2 if c.attempt < c.max_attempts => failure(c, Some(now)),
                        _ => success(c, json!({"w": w})),
                    })
                    .collect();
                store.step_finish_many(&outcomes, now).await.unwrap();
            }
        }));
    }

    let operator = {
        let op = op.clone();
        let ids = ids.clone();
        tokio::spawn(async move {
            let mut rng = Lcg(99);
            for _ in 0..150 {
                let id = ids[(rng.next() as usize) % ids.len()];
                let r = match rng.next() % 4 {
                    0 => op.task_cancel(id, now, None).await.map(|_| ()),
                    1 => op.task_retry(id, now, None).await.map(|_| ()),
                    _ => {
                        let steps = op.step_list(id).await.unwrap();
                        match steps
                            .iter()
                            .find(|s| matches!(s.status, tasker_core::StepState::Error))
                        {
                            Some(s) if rng.next().is_multiple_of(2) => op
                                .step_resolve(s.id, json!({"by": "op"}), now, None)
                                .await
                                .map(|_| ()),
                            Some(s) => op.step_retry(s.id, now, None).await.map(|_| ()),
                            None => Ok(()),
                        }
                    }
                };
                match r {
                    Ok(())
                    | Err(StoreError::InvalidTransition(_))
                    | Err(StoreError::Conflict(_)) => {}
                    Err(e) => panic!("operator: {e}"),
                }
                tokio::time::sleep(std::time::Duration::from_millis(3)).await;
            }
        })
    };
    operator.await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }

    let pool = db.store().await;
    let pool = pool.pool();
    // Counters equal a recount from the steps.
    let bad: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasks t, LATERAL ( \
             SELECT count(*) FILTER (WHERE status NOT IN ('complete','resolved_manually')) AS rem, \
                    count(*) FILTER (WHERE status = 'in_progress' OR ready_at IS NOT NULL) AS live, \
                    count(*) FILTER (WHERE status IN ('error','cancelled')) AS blk \
             FROM steps s WHERE s.task_id = t.id) c \
         WHERE (t.steps_remaining, t.steps_live, t.steps_blocked) <> (c.rem, c.live, c.blk)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(bad, 0, "task counters drifted");
    // remaining_parents counts unfinished parents; pending steps with none
    // are ready, others are not.
    let bad: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM steps s WHERE s.remaining_parents <> ( \
             SELECT count(*) FROM step_edges e JOIN steps p ON p.id = e.parent_id \
             WHERE e.child_id = s.id AND p.status NOT IN ('complete','resolved_manually')) \
         OR ((s.ready_at IS NOT NULL) <> (s.status = 'pending' AND s.remaining_parents = 0)) \
         OR ((s.lease_token IS NOT NULL) <> (s.status = 'in_progress'))",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(bad, 0, "step invariants broken");
    // Transition chains are continuous and end in the current status. A
    // task's starts with its creation (no from state); a step's with its
    // first change (from `pending`, the state it is made in), so a step
    // without transitions is still pending.
    for (table, entity, parent, first_from) in [
        ("step_transitions", "step_id", "steps", "'pending'"),
        ("task_transitions", "task_id", "tasks", "NULL"),
    ] {
        let bad: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "WITH x AS (SELECT {entity} AS e, from_state, to_state, \
                        lag(to_state, 1, {first_from}) OVER (PARTITION BY {entity} ORDER BY id) AS prev, \
                        row_number() OVER (PARTITION BY {entity} ORDER BY id DESC) AS rn_desc \
                        FROM {table}) \
             SELECT (SELECT count(*) FROM x WHERE from_state IS DISTINCT FROM prev) + \
                    (SELECT count(*) FROM x JOIN {parent} p ON p.id = x.e \
                     WHERE x.rn_desc = 1 AND x.to_state <> p.status) + \
                    (SELECT count(*) FROM {parent} p \
                     WHERE p.status <> 'pending' AND NOT EXISTS (SELECT 1 FROM x WHERE x.e = p.id))"
        )))
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(bad, 0, "{table}: broken chain or last state differs");
    }
    // Nothing is stuck: no open task that the finaliser should have closed.
    let stuck: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tasks WHERE status IN ('pending','in_progress') \
         AND (steps_remaining = 0 OR (steps_live = 0 AND steps_blocked > 0))",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(stuck, 0, "open tasks the finaliser missed");
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tasks WHERE status IN ('pending','in_progress')")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(open, 0, "every task ended");
    let stats = a.stats().await.unwrap();
    eprintln!("final task states: {:?}", stats.tasks_by_state);
}

/// EXPLAIN: with 30 days of finished history (8000 diamond tasks, 32000
/// steps), 100 ready steps and ANALYZE,
/// both plan kinds of the analytics reads stay on their indexes: the queue
/// reads the partial ready index, the history sample a range of
/// `tasks_created_id_idx` (the window) and each task's steps by
/// `steps_task_position_idx`;
/// neither scans a table.
#[tokio::test]
async fn analytics_reads_use_their_indexes() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let s: Arc<dyn Store> = Arc::new(store.clone());
    let now = base();
    for _ in 0..8 {
        let history: Vec<NewTask> = (0..1000).map(|_| new_task(Shape::Diamond, now)).collect();
        s.task_create_many(history).await.unwrap();
    }
    // Finished history, spread over 30 days, and 100 ready steps now.
    sqlx::query(
        "UPDATE steps SET status = 'complete', ready_at = NULL, remaining_parents = 0, \
         last_attempted_at = $1, completed_at = $1",
    )
    .bind(now)
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query(
        "UPDATE tasks SET status = 'complete', steps_remaining = 0, steps_live = 0, \
         created_at = $1 - random() * interval '30 days'",
    )
    .bind(now)
    .execute(store.pool())
    .await
    .unwrap();
    let fresh: Vec<NewTask> = (0..4).map(|_| new_task(Shape::Roots(25), now)).collect();
    s.task_create_many(fresh).await.unwrap();
    sqlx::query("ANALYZE").execute(store.pool()).await.unwrap();
    for kind in [PlanKind::Custom, PlanKind::Generic] {
        let plans = store
            .explain_analytics(kind, now - Duration::hours(24))
            .await
            .unwrap();
        assert_eq!(plans.len(), 2);
        for (name, plan) in plans {
            eprintln!("{name} ({kind:?} plan):\n{plan}\n");
            for table in ["tasks", "steps"] {
                assert!(
                    !plan.contains(&format!("Seq Scan on {table} ")),
                    "{name} ({kind:?}) scans {table}:\n{plan}"
                );
            }
            if name == "queue" {
                assert!(plan.contains("steps_ready_idx"), "{name}:\n{plan}");
            } else {
                // A backward index scan that stops at the scan cap, or a
                // bitmap of the window's range: either way the window, by index.
                assert!(
                    plan.contains("Index Scan Backward using tasks_created_id_idx")
                        || plan.contains("Bitmap Index Scan on tasks_created_id_idx"),
                    "{name} ({kind:?}):\n{plan}"
                );
                assert!(
                    plan.contains("steps_task_position_idx"),
                    "{name} ({kind:?}):\n{plan}"
                );
            }
        }
    }
}

/// A refused operator action leaves no row lock behind when it returns.
///
/// Each action below locks its task and steps, then refuses in Rust. A
/// transaction that is only dropped queues its `ROLLBACK` on the
/// connection, sent later by a task sqlx spawns: until then its locks stay,
/// and a claim on another connection would skip those steps. Every write
/// path therefore ends its transaction itself (`crate::tx::end`). The probe
/// runs on a thread of its own while this single-threaded runtime waits for
/// it, so that spawned task cannot run first: a missing rollback fails here
/// every time, not by chance.
#[tokio::test]
async fn a_refused_action_leaves_no_lock_behind() {
    let db = TestDb::create().await;
    let s: Arc<dyn Store> = Arc::new(db.store().await);
    let now = base();
    let t = s
        .task_create(new_task(Shape::Linear(2), now))
        .await
        .unwrap();
    let steps = s.step_list(t.id).await.unwrap();
    let first = steps[0].id;
    s.task_pause(t.id, now, None).await.unwrap();

    let actions = [
        "task_retry",
        "task_pause",
        "step_retry",
        "step_resolve",
        "task_cancel",
        "step_cancel",
    ];
    for action in actions {
        match action {
            "step_resolve" => {
                s.step_resolve(first, json!({}), now, None).await.unwrap();
            }
            "task_cancel" => {
                s.task_cancel(t.id, now, None).await.unwrap();
            }
            _ => {}
        }
        let r = match action {
            // Only a task in `error` can be retried.
            "task_retry" => s.task_retry(t.id, now, None).await.map(|_| ()),
            // It is paused already (a conflict).
            "task_pause" => s.task_pause(t.id, now, None).await.map(|_| ()),
            // Only a step in `error` can be retried.
            "step_retry" => s.step_retry(first, now, None).await.map(|_| ()),
            // Resolved above; a resolved step cannot be resolved again.
            "step_resolve" => s
                .step_resolve(first, json!({}), now, None)
                .await
                .map(|_| ()),
            // Cancelled above, and a cancelled task cannot be cancelled.
            "task_cancel" => s.task_cancel(t.id, now, None).await.map(|_| ()),
            // A resolved step cannot be cancelled.
            _ => s.step_cancel(first, now, None).await.map(|_| ()),
        };
        assert!(
            matches!(
                r,
                Err(StoreError::InvalidTransition(_) | StoreError::Conflict(_))
            ),
            "{action}: {r:?}"
        );
        let (url, id) = (db.url.clone(), t.id);
        let probe = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::query_scalar::<_, i32>(
                    "SELECT 1 FROM tasks t JOIN steps s ON s.task_id = t.id \
                     WHERE t.id = $1 FOR NO KEY UPDATE NOWAIT",
                )
                .bind(id)
                .fetch_all(&mut c)
                .await
                .map(|rows| rows.len())
                .map_err(|e| e.to_string())
            })
        })
        .join()
        .unwrap();
        assert_eq!(probe, Ok(2), "{action} left rows locked");
    }
}

/// A task `a, b → c` with both parents claimed by worker `w`.
async fn fan_in(store: &Arc<dyn Store>) -> (Uuid, Vec<tasker_store::ClaimedStep>, Uuid) {
    let now = base();
    let task = TaskBuilder::new("test", "fan_in")
        .step("a", &[])
        .step("b", &[])
        .step("c", &["a", "b"])
        .build(now);
    store.task_create(task.clone()).await.unwrap();
    let claimed = store.step_claim(&params("w", 2, now)).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let c = tasker_store::conformance::step(store, task.id, "c").await;
    (task.id, claimed, c.id)
}

/// Until a finish statement of this database waits for a row lock; false
/// if `finishing` ended first.
async fn until_blocked<T>(pool: &sqlx::PgPool, finishing: &tokio::task::JoinHandle<T>) -> bool {
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while Instant::now() < deadline && !finishing.is_finished() {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock' \
               AND query LIKE 'WITH o AS%')",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    false
}

/// Finishes `parent` with a claim on completion of one slot while another
/// transaction holds `child`, having run `change` (`$1` the child) on it;
/// that transaction commits once the finish waits for the child's lock.
async fn finish_while_child_changes(
    store: &Arc<dyn Store>,
    pool: &sqlx::PgPool,
    parent: tasker_store::ClaimedStep,
    child: Uuid,
    change: &'static str,
) -> tasker_store::FinishReport {
    let now = base();
    let mut other = pool.begin().await.unwrap();
    sqlx::query(change)
        .bind(child)
        .execute(&mut *other)
        .await
        .unwrap();
    let finishing = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .step_finish_and_claim(
                    &[success(&parent, json!({}))],
                    now,
                    Some(&params("w", 1, now)),
                )
                .await
        })
    };
    assert!(
        until_blocked(pool, &finishing).await,
        "the finish never waited for the child"
    );
    other.commit().await.unwrap();
    finishing.await.unwrap().unwrap()
}

/// The command id that wrote a step's current row version.
async fn writing_command(pool: &sqlx::PgPool, step: Uuid) -> String {
    sqlx::query_scalar("SELECT cmin::text FROM steps WHERE id = $1")
        .bind(step)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The claim on completion of a child that the finish makes ready and
/// that needs no flow gate happens in the finish statement itself: the
/// child's row is written once, by the same command as its parent's
/// (docs/PERFORMANCE.md, "The claim on completion inside the finish").
/// A separate claim statement would be a later command of the transaction.
#[tokio::test]
async fn a_ready_child_is_leased_by_the_finishing_statement() {
    let db = TestDb::create().await;
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    let pool = db.store().await.pool().clone();
    let now = base();
    let task = new_task(Shape::Linear(2), now);
    store.task_create(task.clone()).await.unwrap();
    let s0 = store.step_claim(&params("w", 1, now)).await.unwrap();
    let report = store
        .step_finish_and_claim(
            &[success(&s0[0], json!({"n": 1}))],
            now,
            Some(&params("w", 1, now)),
        )
        .await
        .unwrap();
    assert_eq!(report.claimed.len(), 1);
    let s1 = &report.claimed[0];
    assert_eq!(s1.step_name, "s1");
    assert_eq!(
        s1.parent_results.get("s0"),
        Some(&json!({"n": 1})),
        "the parent's new results"
    );
    assert_eq!(
        writing_command(&pool, s1.step_id).await,
        writing_command(&pool, s0[0].step_id).await,
        "child leased by the finish statement"
    );
    let row = tasker_store::conformance::step(&store, task.id, "s1").await;
    assert_eq!(row.status, tasker_core::StepState::InProgress);
    assert_eq!(
        tasker_store::conformance::step_moves(&store, s1.step_id).await,
        tasker_store::conformance::mv(&[(Some("pending"), "in_progress")])
    );
    // Its lease is an ordinary one: the result lands.
    let done = store
        .step_finish_many(&[success(s1, json!({}))], now)
        .await
        .unwrap();
    assert_eq!(done.applied, 1);
}

/// The finish reads which children it may lease from its snapshot, taken
/// before it waits for their locks. A child whose other parent finished in
/// a transaction that committed in between was "not ready yet" in that
/// snapshot: the statement makes it ready under the lock without leasing
/// it, and the claim that follows (in the same transaction) leases it.
#[tokio::test]
async fn a_child_readied_by_a_concurrent_parent_is_still_claimed_on_completion() {
    let db = TestDb::create().await;
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    let pool = db.store().await.pool().clone();
    let (task, claimed, c) = fan_in(&store).await;
    let b = claimed.iter().find(|s| s.step_name == "b").unwrap().clone();

    // The other parent's finish, holding the child until it commits.
    let report = finish_while_child_changes(
        &store,
        &pool,
        b,
        c,
        "UPDATE steps SET remaining_parents = remaining_parents - 1 WHERE id = $1",
    )
    .await;
    assert_eq!(report.applied, 1);
    let ids: Vec<Uuid> = report.claimed.iter().map(|s| s.step_id).collect();
    assert_eq!(ids, [c], "leased on completion after all");
    let row = tasker_store::conformance::step(&store, task, "c").await;
    assert_eq!(row.status, tasker_core::StepState::InProgress);
    assert_eq!(row.remaining_parents, 0);
}

/// And a child offered by the snapshot but paused by the time its lock is
/// granted is not leased: the finish tests the row again under the lock.
#[tokio::test]
async fn a_child_paused_while_the_finish_waits_is_not_leased() {
    let db = TestDb::create().await;
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    let pool = db.store().await.pool().clone();
    let now = base();
    let (task, claimed, c) = fan_in(&store).await;
    let a = claimed.iter().find(|s| s.step_name == "a").unwrap().clone();
    let b = claimed.iter().find(|s| s.step_name == "b").unwrap().clone();
    store
        .step_finish_many(&[success(&a, json!({}))], now)
        .await
        .unwrap();

    let report = finish_while_child_changes(
        &store,
        &pool,
        b,
        c,
        "UPDATE steps SET paused = true WHERE id = $1",
    )
    .await;
    assert_eq!(report.applied, 1);
    assert!(report.claimed.is_empty(), "a paused step is never leased");
    let row = tasker_store::conformance::step(&store, task, "c").await;
    assert_eq!(row.status, tasker_core::StepState::Pending);
    assert_eq!(row.remaining_parents, 0);
}
