//! Three `tasker worker` processes race on one schedule (every second,
//! `catch_up: all`) on one PostgreSQL database: every tick creates exactly
//! one task, the processes' own reports add up to the ticks, and after all
//! of them are stopped for a while and started again the ticks missed in
//! between are fired too (no gap, no duplicate).
//!
//! PostgreSQL must be reachable at `TASKER_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`): these tests fail, never skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tasker_store_postgres::testing::TestDb;

const TEMPLATE: &str = "\
name: heartbeat
namespace: sched
step_templates:
  - name: beat
    handler: { kind: noop }
schedules:
  - name: every-second
    every_seconds: 1
    catch_up: all
    context: { at: \"{{schedule.scheduled_for}}\" }
";

fn worker(url: &str, templates: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tasker"))
        .args([
            "--database",
            url,
            "--log-format",
            "json",
            "worker",
            "--templates",
        ])
        .arg(templates)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Stops a worker and returns how many ticks it says it fired.
fn stop(mut child: Child) -> usize {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "worker did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    err.lines().filter(|l| l.contains("schedule fired")).count()
}

async fn ticks(conn: &mut PgConnection) -> Vec<(DateTime<Utc>, uuid::Uuid)> {
    sqlx::query_as("SELECT scheduled_for, task_id FROM schedule_ticks ORDER BY scheduled_for")
        .fetch_all(conn)
        .await
        .unwrap()
}

/// Waits (polling the table, with a deadline) until `n` ticks are recorded.
async fn wait_for_ticks(conn: &mut PgConnection, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while ticks(conn).await.len() < n {
        assert!(Instant::now() < deadline, "fewer than {n} ticks in 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Ticks are whole consecutive seconds, each with its own task, and the
/// tasks are exactly the ticks' tasks.
async fn assert_one_task_per_tick(conn: &mut PgConnection) -> usize {
    let all = ticks(conn).await;
    for pair in all.windows(2) {
        assert_eq!(
            (pair[1].0 - pair[0].0).num_seconds(),
            1,
            "no tick missed: {pair:?}"
        );
    }
    let (tasks, matched, distinct): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM tasks),
                (SELECT count(*) FROM tasks t JOIN schedule_ticks k ON k.task_id = t.id),
                (SELECT count(DISTINCT task_id) FROM schedule_ticks)",
    )
    .fetch_one(conn)
    .await
    .unwrap();
    assert_eq!(
        (tasks, matched, distinct),
        (all.len() as i64, all.len() as i64, all.len() as i64),
        "one task per tick"
    );
    all.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_fire_each_tick_once_and_catch_up_after_a_restart() {
    let db = TestDb::create().await;
    let url = db.url.clone();
    // Connecting applies the migrations (workers refuse an unmigrated database).
    tasker_store_postgres::PgStore::connect(&url).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.yaml"), TEMPLATE).unwrap();
    let mut conn = PgConnection::connect(&url).await.unwrap();

    let workers: Vec<Child> = (0..3).map(|_| worker(&url, dir.path())).collect();
    wait_for_ticks(&mut conn, 5).await;
    let reported: usize = workers.into_iter().map(stop).sum();
    let first = assert_one_task_per_tick(&mut conn).await;
    assert_eq!(
        reported, first,
        "the processes' reports add up to the ticks"
    );

    // Down for a few seconds: those ticks are missed, then caught up.
    let (last_before,): (DateTime<Utc>,) =
        sqlx::query_as("SELECT max(scheduled_for) FROM schedule_ticks")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let workers: Vec<Child> = (0..3).map(|_| worker(&url, dir.path())).collect();
    wait_for_ticks(&mut conn, first + 6).await;
    let reported_again: usize = workers.into_iter().map(stop).sum();
    let total = assert_one_task_per_tick(&mut conn).await;
    assert_eq!(reported_again, total - first);
    let caught_up = ticks(&mut conn)
        .await
        .iter()
        .filter(|(at, _)| *at > last_before)
        .count();
    assert!(
        caught_up >= 3,
        "the ticks of the downtime fired: {caught_up}"
    );
    conn.close().await.unwrap();
}
