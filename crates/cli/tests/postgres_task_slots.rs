//! `max_running_tasks` across `tasker worker` processes sharing one
//! PostgreSQL database (docs/FLOW_CONTROL.md): the claim enforces it, so no
//! coordination between processes is needed.
//!
//! PostgreSQL must be reachable at `TASKER_TEST_PG_URL`: this test fails,
//! never skips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::shared_work::{claiming_workers, complete_tasks, still_running_and_peak};
use common::wait_exit;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use tasker_engine::{TaskRequest, Tasker};
use tasker_store_postgres::PgStore;
use tasker_store_postgres::testing::TestDb;

/// Two parallel roots that take 30 ms each, then a join: a task is running
/// for at least 30 ms, so with four processes of 16 handlers each, many
/// tasks would run at once without the limit.
const SLOTTED: &str = "name: slotted\nnamespace: flow\nmax_running_tasks: 2\nstep_templates:\n  - name: a\n    handler: { kind: sleep, config: { seconds: 0.03 } }\n  - name: b\n    handler: { kind: sleep, config: { seconds: 0.03 } }\n  - name: c\n    depends_on_steps: [a, b]\n    handler: { kind: noop }\n";

/// Another template, unlimited: never held back by the limited one.
const FREE: &str =
    "name: free\nnamespace: flow\nstep_templates:\n  - name: x\n    handler: { kind: noop }\n";

fn worker(url: &str, templates: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tasker"))
        .args(["--database", url])
        .args([
            "worker",
            "--exit-when-idle",
            "--concurrency",
            "16",
            "--templates",
        ])
        .arg(templates)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Four worker processes, 30 tasks of a template with `max_running_tasks:
/// 2` and 30 of an unlimited one. From the task transitions: the most tasks
/// of the template `in_progress` at once is exactly 2 (never more, and the
/// limit was reached: the test is not vacuous), every task completed, and
/// the slot count is back to 0.
///
/// A task runs from its `pending → in_progress` transition to its next
/// transition, ordered by transition id: the claim writes the start after
/// it locked the template's slot row, the finish writes the end before the
/// trigger gives the slot back (and the next claim can only lock the row
/// after that commit), so these intervals lie inside the slot's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_running_tasks_of_two_holds_across_four_worker_processes() {
    let db = TestDb::create().await;
    let url = db.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(templates.join("slotted.yaml"), SLOTTED).unwrap();
    std::fs::write(templates.join("free.yaml"), FREE).unwrap();

    let store = PgStore::connect(&url).await.unwrap();
    let tasker = Tasker::builder(Arc::new(store))
        .template_path(&templates)
        .build()
        .unwrap();
    let mut requests: Vec<TaskRequest> = (0..30)
        .map(|i| TaskRequest::new("flow", "slotted").context(json!({"i": i})))
        .collect();
    requests.extend((0..30).map(|i| TaskRequest::new("flow", "free").context(json!({"i": i}))));
    tasker.create_tasks(requests).await.unwrap();

    let workers: Vec<Child> = (0..4).map(|_| worker(&url, &templates)).collect();
    for w in workers {
        wait_exit(w, 300);
    }

    let mut conn = PgConnection::connect(&url).await.unwrap();
    assert_eq!(complete_tasks(&mut conn).await, 60);
    // (transition id, +1 start / -1 end) of the limited template's tasks.
    let marks: Vec<(i64, i32)> = sqlx::query_as(
        "SELECT t.id, CASE WHEN t.to_state = 'in_progress' THEN 1 ELSE -1 END \
         FROM task_transitions t JOIN tasks k ON k.id = t.task_id \
         WHERE k.name = 'slotted' AND (t.to_state = 'in_progress' OR t.from_state = 'in_progress') \
           AND t.from_state IS DISTINCT FROM t.to_state",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let (now, max) = still_running_and_peak(marks);
    assert_eq!(now, 0, "every task ended");
    assert_eq!(
        max, 2,
        "at most (and at some point exactly) 2 tasks running"
    );
    let owners = claiming_workers(&mut conn).await;
    assert!(owners >= 2, "work was shared ({owners} workers)");
    let (running,): (i32,) =
        sqlx::query_as("SELECT running FROM task_slots WHERE key = 'flow/slotted'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(running, 0, "every slot was given back");
    conn.close().await.unwrap();
}
