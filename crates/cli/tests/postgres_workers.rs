//! Many `tasker worker` processes sharing one PostgreSQL database: every task
//! completes, every step completes exactly once, a SIGKILLed worker's step is
//! re-run by another after its lease expires, and workers ride out a
//! PostgreSQL restart (on a private cluster this test starts itself).
//!
//! PostgreSQL must be reachable at `TASKER_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`): these tests fail, never skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::wait_exit;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tasker_engine::{TaskRequest, Tasker};
use tasker_store_postgres::PgStore;
use tasker_store_postgres::testing::TestDb;

const DIAMOND: &str = "name: diamond\nnamespace: load\nstep_templates:\n  - name: start\n    handler: { kind: noop }\n  - name: left\n    depends_on_step: start\n    handler: { kind: noop }\n  - name: right\n    depends_on_step: start\n    handler: { kind: noop }\n  - name: join\n    depends_on_steps: [left, right]\n    handler: { kind: noop }\n";

fn worker(url: &str, templates: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tasker"))
        .args(["--database", url, "worker", "--templates"])
        .arg(templates)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn templates_dir(yaml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("templates");
    std::fs::create_dir(&t).unwrap();
    std::fs::write(t.join("t.yaml"), yaml).unwrap();
    (dir, t)
}

async fn tasker_for(url: &str, yaml: &str) -> Tasker {
    let store = PgStore::connect(url).await.unwrap();
    let t = tasker_core::template::parse_template("<test>", yaml, None).unwrap();
    Tasker::builder(Arc::new(store))
        .template(t)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_worker_processes_complete_2000_diamonds_each_step_exactly_once() {
    let db = TestDb::create().await;
    let url = db.url.clone();
    let tasker = tasker_for(&url, DIAMOND).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.extend(
            tasker
                .create_tasks(
                    (0..500)
                        .map(|_| TaskRequest::new("load", "diamond"))
                        .collect(),
                )
                .await
                .unwrap(),
        );
    }
    let (_dir, templates) = templates_dir(DIAMOND);
    let workers: Vec<Child> = (0..4)
        .map(|_| worker(&url, &templates, &["--exit-when-idle"]))
        .collect();
    for w in workers {
        wait_exit(w, 300);
    }

    let mut conn = PgConnection::connect(&url).await.unwrap();
    let (complete, total): (i64, i64) =
        sqlx::query_as("SELECT count(*) FILTER (WHERE status = 'complete'), count(*) FROM tasks")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!((complete, total), (2000, 2000));
    let (steps, bad): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE n <> 1) FROM (
           SELECT s.id, (SELECT count(*) FROM step_transitions t WHERE t.step_id = s.id AND t.to_state = 'complete') AS n
           FROM steps s) x",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        (steps, bad),
        (8000, 0),
        "every step has exactly one `complete` transition"
    );
    let (owners,): (i64,) = sqlx::query_as(
        "SELECT count(DISTINCT metadata->>'worker') FROM step_transitions WHERE to_state = 'in_progress'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(
        owners >= 2,
        "work was shared between processes ({owners} distinct workers)"
    );
    let (task_completions,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM task_transitions WHERE to_state = 'complete'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        task_completions, 2000,
        "exactly one completion transition per task"
    );
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_worker_step_is_rerun_by_another_after_lease_expiry() {
    let db = TestDb::create().await;
    let url = db.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pid");
    let yaml = format!(
        "name: slow\nstep_templates:\n  - name: hang_once\n    handler:\n      kind: command\n      config:\n        program: sh\n        args: [-c, 'if [ \"$TASKER_ATTEMPT\" = 1 ]; then echo $$ > {m}.tmp; mv {m}.tmp {m}; exec sleep 120; fi; echo \"{{\\\"attempt\\\": $TASKER_ATTEMPT}}\"']\n  - name: after\n    depends_on_step: hang_once\n    handler: {{ kind: noop }}\n",
        m = marker.display()
    );
    let tasker = tasker_for(&url, &yaml).await;
    let task = tasker
        .create_task(TaskRequest::new("default", "slow"))
        .await
        .unwrap();
    let (_tdir, templates) = templates_dir(&yaml);

    let mut first = worker(&url, &templates, &["--lease-seconds", "1"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let pid = loop {
        if let Ok(p) = std::fs::read_to_string(&marker) {
            break p;
        }
        assert!(Instant::now() < deadline, "first attempt never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    first.kill().unwrap(); // SIGKILL mid-step
    first.wait().unwrap();
    let _ = Command::new("kill").args(["-9", pid.trim()]).status();

    let second = worker(
        &url,
        &templates,
        &["--lease-seconds", "1", "--exit-when-idle"],
    );
    wait_exit(second, 120);
    let done = tasker.store().task_get(task.id).await.unwrap();
    assert_eq!(done.status, tasker_core::TaskState::Complete);
    let steps = tasker.store().step_list(task.id).await.unwrap();
    assert_eq!(steps[0].attempts, 2);
    assert_eq!(steps[0].results, Some(json!({"attempt": 2})));
}

/// A private PostgreSQL cluster in a temp dir, run as the `postgres` user.
struct PrivateCluster {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
}

impl PrivateCluster {
    fn start() -> PrivateCluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|p| p.join("initdb").exists())
            .expect("initdb");
        let dir = tempfile::Builder::new()
            .prefix("tasker-pg-")
            .tempdir()
            .unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = PrivateCluster { dir, port, bin };
        run_as_postgres(&format!("chmod 777 {}", c.dir.path().display()), true);
        run_as_postgres(
            &format!(
                "{}/initdb -D {} -A trust -U postgres >/dev/null",
                c.bin.display(),
                c.data().display()
            ),
            false,
        );
        c.pg_ctl("start -w");
        c
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl(&self, action: &str) {
        run_as_postgres(
            &format!(
                "{}/pg_ctl -D {} -o '-p {} -k {} -c listen_addresses=127.0.0.1' -l {}/log {action} >/dev/null",
                self.bin.display(),
                self.data().display(),
                self.port,
                self.dir.path().display(),
                self.dir.path().display()
            ),
            false,
        );
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        self.pg_ctl("stop -m immediate");
    }
}

/// Runs a shell command as `postgres` (pg_ctl refuses root); `as_root` runs it directly.
fn run_as_postgres(cmd: &str, as_root: bool) {
    let status = if as_root {
        Command::new("sh").args(["-c", cmd]).status()
    } else {
        Command::new("runuser")
            .args(["-u", "postgres", "--", "sh", "-c", cmd])
            .status()
    }
    .unwrap();
    assert!(status.success(), "command failed: {cmd}");
}

/// The restart lands at a controlled point: every `hold` step blocks (in
/// its `sh` process) until a flag file exists, and the flag is only created
/// after the restart, so the restart always finds steps running and tasks
/// unfinished, whatever the machine's speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_survive_a_postgres_restart() {
    let cluster = PrivateCluster::start();
    let db = TestDb::create_on(&cluster.url("postgres")).await;
    let url = db.url.clone();
    let flag_dir = tempfile::tempdir().unwrap();
    let flag = flag_dir.path().join("restarted");
    let yaml = format!(
        "name: held\nstep_templates:\n  - name: a\n    handler: {{ kind: noop }}\n  - name: hold\n    depends_on_step: a\n    timeout_seconds: 120\n    handler:\n      kind: command\n      config:\n        program: sh\n        args: [-c, 'cat >/dev/null; while [ ! -e {} ]; do sleep 0.05; done; echo {{}}']\n",
        flag.display()
    );
    let tasker = tasker_for(&url, &yaml).await;
    let ids = tasker
        .create_tasks(
            (0..100)
                .map(|_| TaskRequest::new("default", "held"))
                .collect(),
        )
        .await
        .unwrap();
    let (_dir, templates) = templates_dir(&yaml);
    let workers: Vec<Child> = (0..2)
        .map(|_| {
            worker(
                &url,
                &templates,
                &["--exit-when-idle", "--concurrency", "4"],
            )
        })
        .collect();

    // Both workers' slots (2 x 4) fill with held steps; nothing can finish.
    let store = tasker.store().clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = store.stats().await.unwrap();
        let running = stats
            .steps_by_state
            .get("in_progress")
            .copied()
            .unwrap_or(0);
        let complete = stats.tasks_by_state.get("complete").copied().unwrap_or(0);
        assert_eq!(complete, 0, "a held task finished: {stats:?}");
        if running == 8 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "workers did not fill their slots: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.pg_ctl("restart -m fast -w");
    std::fs::write(&flag, b"").unwrap();

    for w in workers {
        wait_exit(w, 240);
    }
    let store = PgStore::connect(&url).await.unwrap();
    let stats = tasker_store::Store::stats(&store).await.unwrap();
    assert_eq!(
        stats.tasks_by_state.get("complete").copied(),
        Some(ids.len() as i64),
        "{stats:?}"
    );
    assert_eq!(
        stats.steps_by_state.get("complete").copied(),
        Some(2 * ids.len() as i64),
        "{stats:?}"
    );
}
