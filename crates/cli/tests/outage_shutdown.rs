//! Shutdown during a database outage: a `tasker worker` whose PostgreSQL is
//! stopped while its steps finish keeps them in memory (at most one per
//! slot: a slot is freed only once its outcome is written, so claiming
//! stops), answers SIGTERM within `engine.shutdown_timeout_seconds`, and
//! exits non-zero, leaving the unwritten steps to lease expiry. Once the
//! database is back, another worker completes every step exactly once.
//!
//! Runs on a private cluster this test starts and stops itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tasker_engine::{TaskRequest, Tasker};
use tasker_store_postgres::PgStore;
use tasker_store_postgres::testing::{PrivateCluster, TestDb};

const TASKS: usize = 1000;
const SHUTDOWN_TIMEOUT_S: f64 = 3.0;
const YAML: &str = "name: paced\nstep_templates:\n  - name: a\n    handler: { kind: sleep, config: { milliseconds: 50 } }\n";

fn worker(url: &str, templates: &std::path::Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tasker"));
    c.args(["--database", url, "worker", "--templates"])
        .arg(templates)
        .args(extra)
        .env("RUST_LOG", "warn")
        .env(
            "TASKER__ENGINE__SHUTDOWN_TIMEOUT_SECONDS",
            SHUTDOWN_TIMEOUT_S.to_string(),
        )
        .env("TASKER__ENGINE__LEASE_SECONDS", "3")
        .env("TASKER__ENGINE__HEARTBEAT_SECONDS", "1")
        .env("TASKER__ENGINE__RESCUE_INTERVAL_SECONDS", "0.5")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_an_outage_exits_within_the_deadline_and_a_restart_completes_everything_once()
 {
    let cluster = PrivateCluster::start();
    let db = TestDb::create_on(&cluster.url("postgres")).await;
    let url = db.url.clone();
    let tasker = {
        let store = PgStore::connect(&url).await.unwrap();
        let t = tasker_core::template::parse_template("<test>", YAML, None).unwrap();
        Tasker::builder(Arc::new(store))
            .template(t)
            .build()
            .unwrap()
    };
    tasker
        .create_tasks(
            (0..TASKS)
                .map(|_| TaskRequest::new("default", "paced"))
                .collect(),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(templates.join("t.yaml"), YAML).unwrap();

    let mut first = worker(&url, &templates, &["--concurrency", "32"])
        .spawn()
        .unwrap();
    let pid = first.id();
    // Its log lines, as they come (the outage is detected from them).
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stderr = first.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            let _ = lines_tx.send(line);
        }
        all
    });

    // Stop the database once some, but not all, tasks are done.
    let store = tasker.store().clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = store
            .stats()
            .await
            .map(|s| s.tasks_by_state.get("complete").copied().unwrap_or(0))
            .unwrap_or(0);
        if done >= 50 {
            assert!(
                done < TASKS as i64,
                "finished before the outage; make the workload longer"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no progress before the outage");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(store);
    drop(tasker);
    cluster.pg_ctl("stop -m fast -w");

    // Wait until the worker reports outcomes it cannot write.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) if l.contains("cannot record outcomes yet") => break,
            Ok(_) => continue,
            Err(e) => panic!("the worker never reported the outage: {e}"),
        }
    }
    let rss_during_outage = rss_kib(pid);
    eprintln!("worker RSS during the outage: {rss_during_outage} KiB");
    assert!(rss_during_outage < 200 * 1024, "{rss_during_outage} KiB");

    let asked = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let limit = Duration::from_secs_f64(SHUTDOWN_TIMEOUT_S) + Duration::from_secs(3);
    let status = loop {
        if let Some(s) = first.try_wait().unwrap() {
            break s;
        }
        if asked.elapsed() > limit {
            let _ = first.kill();
            panic!("worker still running {limit:?} after SIGTERM during an outage");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = asked.elapsed();
    let log = reader.join().unwrap();
    eprintln!("worker exited {status} {took:?} after SIGTERM");
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(
        took >= Duration::from_secs_f64(SHUTDOWN_TIMEOUT_S) - Duration::from_millis(100),
        "{took:?}: it cannot have written anything"
    );
    assert!(log.contains("shutdown timeout"), "{log}");

    // The database returns; a second worker finishes everything.
    cluster.pg_ctl("start -w");
    // What the first worker left behind is bounded by its slots: claiming
    // stopped while outcomes were waiting.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM steps WHERE status = 'in_progress'")
        .fetch_one(&pool)
        .await
        .unwrap();
    eprintln!("steps left leased by the stopped worker: {left}");
    assert!((1..=32).contains(&left), "{left}");
    let second = worker(
        &url,
        &templates,
        &["--exit-when-idle", "--concurrency", "32"],
    )
    .output()
    .unwrap();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    let store = PgStore::connect(&url).await.unwrap();
    let stats = tasker_store::Store::stats(&store).await.unwrap();
    assert_eq!(
        stats.tasks_by_state.get("complete").copied(),
        Some(TASKS as i64),
        "{stats:?}"
    );
    let (steps, completions, twice): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM steps),
                (SELECT count(*) FROM step_transitions WHERE to_state = 'complete'),
                (SELECT count(*) FROM (SELECT step_id FROM step_transitions
                  WHERE to_state = 'complete' GROUP BY step_id HAVING count(*) > 1) d)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((steps, completions, twice), (TASKS as i64, TASKS as i64, 0));
    pool.close().await;
}
