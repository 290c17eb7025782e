//! The finaliser rule (stated once in `tasker_core::execution`, module docs),
//! pinned as a table: a task of two independent steps `a` and `b` is driven,
//! with real store operations, into every combination of step situations, and
//! the task's state must be the one written in the table below. The
//! expectations are written out by hand, not recomputed with the rule.

use super::factory::TaskBuilder;
use super::*;
use serde_json::json;
use tasker_core::TaskState;

/// Where one step is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Situation {
    /// Pending and ready, never claimed.
    Ready,
    /// Claimed and running.
    Running,
    /// Failed with attempts left, waiting out a backoff (pending, scheduled).
    Retrying,
    /// Succeeded.
    Complete,
    /// Failed for good (`error`).
    Failed,
    /// Cancelled while pending.
    Cancelled,
    /// Resolved by hand while pending.
    Resolved,
}

use Situation::*;

const SITUATIONS: [Situation; 7] = [
    Ready, Running, Retrying, Complete, Failed, Cancelled, Resolved,
];

/// Expected task state after `a` then `b` were driven into the situations of
/// the row and column (same order as [`SITUATIONS`]). `P` pending (nothing
/// ever claimed), `I` in_progress, `C` complete, `E` error.
const TABLE: [&str; 7] = [
    //    b: Ready Running Retrying Complete Failed Cancelled Resolved
    "P I I I I P P", // a Ready
    "I I I I I I I", // a Running
    "I I I I I I I", // a Retrying
    "I I I C E E C", // a Complete
    "I I I E E E E", // a Failed
    "P I I E E E E", // a Cancelled
    "P I I C E E C", // a Resolved
];

fn expected(cell: &str) -> TaskState {
    match cell {
        "P" => TaskState::Pending,
        "I" => TaskState::InProgress,
        "C" => TaskState::Complete,
        "E" => TaskState::Error,
        other => panic!("bad table cell {other}"),
    }
}

/// Drives the step of handler kind `kind` (task `task`, step `name`) into `s`.
async fn drive(store: &Arc<dyn Store>, task: Uuid, name: &str, kind: &str, s: Situation) {
    let claim_it = || async {
        let mut p = params("w1", 1, at(1));
        p.kinds = Some(vec![kind.to_string()]);
        let mut got = store.step_claim(&p).await.unwrap();
        assert_eq!(got.len(), 1, "claim {name}");
        got.remove(0)
    };
    match s {
        Ready => {}
        Running => {
            claim_it().await;
        }
        Retrying => {
            let c = claim_it().await;
            fail(store, &c, Some(at(1_000)), at(2)).await;
        }
        Complete => {
            let c = claim_it().await;
            succeed(store, &c, at(2)).await;
        }
        Failed => {
            let c = claim_it().await;
            fail(store, &c, None, at(2)).await;
        }
        Cancelled => {
            let id = step(store, task, name).await.id;
            store.step_cancel(id, at(2), None).await.unwrap();
        }
        Resolved => {
            let id = step(store, task, name).await.id;
            store
                .step_resolve(id, json!({"by": "hand"}), at(2), None)
                .await
                .unwrap();
        }
    }
}

/// A fresh two-step task driven into `(sa, sb)`. Each step has a handler
/// kind of its own, so a claim picks exactly that step (earlier tasks of the
/// table may still have ready steps).
async fn task_in(store: &Arc<dyn Store>, sa: Situation, sb: Situation) -> Uuid {
    let id = Uuid::new_v4().simple().to_string();
    let (ka, kb) = (format!("a{id}"), format!("b{id}"));
    let t = TaskBuilder::new("test", "finaliser")
        .step("a", &[])
        .kind(&ka)
        .step("b", &[])
        .kind(&kb)
        .build(at(0));
    store.task_create(t.clone()).await.unwrap();
    drive(store, t.id, "a", &ka, sa).await;
    drive(store, t.id, "b", &kb, sb).await;
    t.id
}

/// Every cell of the table on this store, plus the two ways out of `error`
/// (resolving the last blocker, retrying a step).
pub async fn finaliser_table(store: Arc<dyn Store>) {
    let mut wrong = Vec::new();
    for (i, sa) in SITUATIONS.into_iter().enumerate() {
        let row: Vec<&str> = TABLE[i].split(' ').collect();
        for (j, sb) in SITUATIONS.into_iter().enumerate() {
            let want = expected(row[j]);
            let id = task_in(&store, sa, sb).await;
            let task = store.task_get(id).await.unwrap();
            let finished = matches!(want, TaskState::Complete | TaskState::Error);
            if task.status != want || task.completed_at.is_some() != finished {
                wrong.push(format!(
                    "a {sa:?}, b {sb:?}: expected {want} (completed_at set: {finished}), got {} ({:?})",
                    task.status, task.completed_at
                ));
            }
            check_remaining(&store, id).await;
        }
    }
    assert!(wrong.is_empty(), "finaliser table:\n{}", wrong.join("\n"));

    // error, last blocker resolved by hand → resolved_manually.
    let id = task_in(&store, Failed, Complete).await;
    assert_eq!(store.task_get(id).await.unwrap().status, TaskState::Error);
    let a = step(&store, id, "a").await.id;
    store.step_resolve(a, json!({}), at(3), None).await.unwrap();
    let t = store.task_get(id).await.unwrap();
    assert_eq!(t.status, TaskState::ResolvedManually);
    assert_eq!(t.completed_at, Some(at(3)));

    // error, a step retried → pending, completed_at cleared.
    let id = task_in(&store, Failed, Failed).await;
    assert_eq!(store.task_get(id).await.unwrap().status, TaskState::Error);
    let a = step(&store, id, "a").await.id;
    store.step_retry(a, at(3), None).await.unwrap();
    let t = store.task_get(id).await.unwrap();
    assert_eq!(t.status, TaskState::Pending);
    assert_eq!(t.completed_at, None);
}
