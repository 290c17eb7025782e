//! Many callers at once: no double claims, one finalisation per task, one
//! task per identity. Run on a multi-threaded runtime.

use super::factory::{Shape, new_task, with_identity};
use super::*;
use crate::{StoreError, TaskQuery};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use tasker_core::TaskState;

const TASKS: usize = 200;
const STEPS: usize = 3;
const WORKERS: usize = 4;

/// Four claimers race over 200 three-step tasks: every step is claimed
/// exactly once (one attempt each), every task completes, and each task has
/// exactly one `complete` transition.
pub async fn concurrent_claimers_never_double_claim(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| new_task(Shape::Linear(STEPS), at(0)))
        .collect();
    store.task_create_many(tasks.clone()).await.unwrap();

    let claimed: Arc<Mutex<HashSet<(Uuid, i32)>>> = Arc::new(Mutex::new(HashSet::new()));
    let finished: Arc<Mutex<Vec<Uuid>>> = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for w in 0..WORKERS {
        let store = store.clone();
        let claimed = claimed.clone();
        let finished = finished.clone();
        handles.push(tokio::spawn(async move {
            let worker = format!("worker-{w}");
            loop {
                if claimed.lock().unwrap().len() == TASKS * STEPS {
                    return;
                }
                let got = store.step_claim(&params(&worker, 16, at(1))).await.unwrap();
                if got.is_empty() {
                    // Others hold the steps whose success unblocks the rest.
                    tokio::task::yield_now().await;
                    continue;
                }
                for c in &got {
                    assert_eq!(c.attempt, 1, "a step ran twice");
                    assert!(
                        claimed.lock().unwrap().insert((c.step_id, c.attempt)),
                        "step {} claimed twice",
                        c.step_id
                    );
                }
                let outcomes: Vec<_> = got.iter().map(|c| success(c, json!(w))).collect();
                let r = store.step_finish_many(&outcomes, at(1)).await.unwrap();
                assert_eq!(r.applied as usize, got.len(), "{r:?}");
                finished
                    .lock()
                    .unwrap()
                    .extend(r.finished_tasks.iter().map(|(id, _)| *id));
            }
        }));
    }
    let all = async {
        for h in handles {
            h.await.unwrap();
        }
    };
    if tokio::time::timeout(StdDuration::from_secs(120), all)
        .await
        .is_err()
    {
        panic!(
            "claimers stalled after {} of {} claims",
            claimed.lock().unwrap().len(),
            TASKS * STEPS
        );
    }

    assert_eq!(claimed.lock().unwrap().len(), TASKS * STEPS);
    let finished = finished.lock().unwrap().clone();
    assert_eq!(finished.len(), TASKS, "each task reported finished once");
    assert_eq!(finished.iter().collect::<HashSet<_>>().len(), TASKS);
    let page = store
        .task_list(&TaskQuery {
            status: Some(TaskState::Complete),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total.unwrap(), TASKS as i64);
    for t in &tasks {
        let moves = task_moves(&store, t.id).await;
        assert_eq!(
            moves.iter().filter(|(_, to)| to == "complete").count(),
            1,
            "task {}",
            t.id
        );
        assert_eq!(
            moves.iter().filter(|(_, to)| to == "in_progress").count(),
            1,
            "task {}",
            t.id
        );
    }
    assert!(claim(&store, 10, at(3)).await.is_empty());
}

/// Outcomes of the same tasks' steps finished concurrently, one call per
/// step: each task is finalised exactly once.
pub async fn concurrent_finishers_finalise_once(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..50).map(|_| new_task(Shape::Roots(4), at(0))).collect();
    store.task_create_many(tasks.clone()).await.unwrap();
    let mut all = Vec::new();
    loop {
        let got = claim(&store, 64, at(1)).await;
        if got.is_empty() {
            break;
        }
        all.extend(got);
    }
    assert_eq!(all.len(), 200);
    // Deal the steps out so every task's steps land on different finishers.
    let mut hands: Vec<Vec<ClaimedStep>> = vec![Vec::new(); WORKERS];
    for (i, c) in all.into_iter().enumerate() {
        hands[i % WORKERS].push(c);
    }
    let mut handles = Vec::new();
    for hand in hands {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut finished = Vec::new();
            for c in hand {
                let r = store
                    .step_finish_many(&[success(&c, json!(null))], at(2))
                    .await
                    .unwrap();
                assert_eq!(r.applied, 1);
                finished.extend(r.finished_tasks);
            }
            finished
        }));
    }
    let mut finished: HashMap<Uuid, usize> = HashMap::new();
    for h in handles {
        for (id, state) in h.await.unwrap() {
            assert_eq!(state, TaskState::Complete);
            *finished.entry(id).or_default() += 1;
        }
    }
    assert_eq!(finished.len(), 50);
    assert!(finished.values().all(|&n| n == 1), "{finished:?}");
    for t in &tasks {
        let row = store.task_get(t.id).await.unwrap();
        assert_eq!((row.status, row.steps_remaining), (TaskState::Complete, 0));
        let moves = task_moves(&store, t.id).await;
        assert_eq!(moves.iter().filter(|(_, to)| to == "complete").count(), 1);
    }
}

/// Concurrent creates with one identity: exactly one wins, the rest see it
/// as the existing duplicate.
pub async fn concurrent_creates_respect_identity(store: Arc<dyn Store>) {
    let mut handles = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let t = with_identity(new_task(Shape::Diamond, at(i)), "same-request", at(-3600));
            let id = t.id;
            (id, store.task_create(t).await)
        }));
    }
    let mut winners = Vec::new();
    let mut existing = HashSet::new();
    for h in handles {
        match h.await.unwrap() {
            (id, Ok(row)) => {
                assert_eq!(row.id, id);
                winners.push(id);
            }
            (_, Err(StoreError::DuplicateTask { existing: e })) => {
                existing.insert(e);
            }
            (_, Err(e)) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create wins");
    assert!(
        existing.iter().all(|e| *e == winners[0]),
        "duplicates name the winner"
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
