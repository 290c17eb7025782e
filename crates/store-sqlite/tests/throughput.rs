//! Throughput of the hot path (create, claim, finish) without an engine.
//! Ignored by default; run with
//! `cargo test --release -p tasker-store-sqlite --test throughput -- --ignored --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;
use tasker_store::conformance::factory::{Shape, new_task};
use tasker_store::conformance::{at, params, success};
use tasker_store::{Store, TaskQuery};
use tasker_store_sqlite::SqliteStore;

const TASKS: usize = 10_000;
const STEPS: usize = 3;
const WORKERS: usize = 4;
const BATCH: u32 = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn claim_finish_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::connect(dir.path().join("bench.db").to_str().unwrap())
            .await
            .unwrap(),
    );
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| new_task(Shape::Linear(STEPS), at(0)))
        .collect();
    let started = Instant::now();
    for chunk in tasks.chunks(1000) {
        store.task_create_many(chunk.to_vec()).await.unwrap();
    }
    let create = started.elapsed();
    println!(
        "create: {TASKS} tasks × {STEPS} steps in {create:?} ({:.0} steps/s)",
        (TASKS * STEPS) as f64 / create.as_secs_f64()
    );

    let started = Instant::now();
    let mut handles = Vec::new();
    for w in 0..WORKERS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut ran = 0usize;
            let mut idle = 0;
            loop {
                let got = store
                    .step_claim(&params(&format!("w{w}"), BATCH, at(1)))
                    .await
                    .unwrap();
                if got.is_empty() {
                    idle += 1;
                    if idle > 200 {
                        return ran;
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                idle = 0;
                ran += got.len();
                let outcomes: Vec<_> = got
                    .iter()
                    .map(|c| success(c, serde_json::json!({"ok": true})))
                    .collect();
                store.step_finish_many(&outcomes, at(1)).await.unwrap();
            }
        }));
    }
    let mut ran = 0;
    for h in handles {
        ran += h.await.unwrap();
    }
    let run = started.elapsed();
    println!(
        "claim+finish: {ran} steps in {run:?} ({:.0} steps/s, batch {BATCH}, {WORKERS} workers)",
        ran as f64 / run.as_secs_f64()
    );
    assert_eq!(ran, TASKS * STEPS);
    let done = store
        .task_list(&TaskQuery {
            status: Some(tasker_core::TaskState::Complete),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(done.total, Some(TASKS as i64));
}

/// One worker, no contention: the cost of each call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn serial_call_costs() {
    // `SQL_TRACE=1`: log every statement with its duration (JSON lines on stderr).
    if std::env::var_os("SQL_TRACE").is_some() {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter("sqlx::query=debug")
            .with_writer(std::io::stderr)
            .init();
    }
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::connect(dir.path().join("bench.db").to_str().unwrap())
            .await
            .unwrap(),
    );
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| new_task(Shape::Linear(STEPS), at(0)))
        .collect();
    for chunk in tasks.chunks(1000) {
        store.task_create_many(chunk.to_vec()).await.unwrap();
    }
    let (mut claim_t, mut finish_t) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    let mut ran = 0;
    let cpu_before = cpu_seconds();
    loop {
        let t = Instant::now();
        let got = store.step_claim(&params("w", BATCH, at(1))).await.unwrap();
        claim_t += t.elapsed();
        if got.is_empty() {
            break;
        }
        ran += got.len();
        let outcomes: Vec<_> = got
            .iter()
            .map(|c| success(c, serde_json::json!({"ok": true})))
            .collect();
        let t = Instant::now();
        store.step_finish_many(&outcomes, at(1)).await.unwrap();
        finish_t += t.elapsed();
    }
    let cpu = cpu_seconds() - cpu_before;
    println!(
        "serial: claim+finish used {cpu:.2} s of CPU ({:.0} µs per step)",
        cpu * 1e6 / ran as f64
    );
    let calls = ran / BATCH as usize;
    println!(
        "serial: {ran} steps; claim {claim_t:?} ({:?}/call), finish {finish_t:?} ({:?}/call); {:.0} steps/s",
        claim_t / calls as u32,
        finish_t / calls as u32,
        ran as f64 / (claim_t + finish_t).as_secs_f64()
    );
}

/// CPU time (user + system) of this process so far, from /proc (Linux only;
/// 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) end with ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    (ticks(11) + ticks(12)) / 100.0
}

/// The engine's throughput scenario without the engine: 10,000 single-step
/// tasks, claimed 256 at a time, each batch finished in one call (every
/// outcome completes a task).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn single_step_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::connect(dir.path().join("bench.db").to_str().unwrap())
            .await
            .unwrap(),
    );
    let tasks: Vec<_> = (0..10_000)
        .map(|_| new_task(Shape::Single, at(0)))
        .collect();
    for chunk in tasks.chunks(1000) {
        store.task_create_many(chunk.to_vec()).await.unwrap();
    }
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut ran = 0;
    loop {
        let got = store.step_claim(&params("w", 256, at(1))).await.unwrap();
        if got.is_empty() {
            break;
        }
        ran += got.len();
        let outcomes: Vec<_> = got
            .iter()
            .map(|c| success(c, serde_json::json!(null)))
            .collect();
        let r = store.step_finish_many(&outcomes, at(1)).await.unwrap();
        assert_eq!(r.finished_tasks.len(), got.len());
    }
    let wall = started.elapsed();
    let cpu = cpu_seconds() - cpu_before;
    println!(
        "single-step: {ran} tasks in {wall:?} ({:.0} steps/s), {cpu:.2} s CPU ({:.0} µs per step)",
        ran as f64 / wall.as_secs_f64(),
        cpu * 1e6 / ran as f64
    );
}
