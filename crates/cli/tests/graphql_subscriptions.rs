//! A GraphQL subscription served by one `tasker serve` process sees changes
//! made by *other* OS processes on the same PostgreSQL database: a
//! `tasker worker` process running the task's steps, and a `tasker tasks
//! pause` / `resume` from the command line. The test speaks
//! `graphql-transport-ws` over a real socket to the real binary; changes
//! travel through LISTEN/NOTIFY (`database.announce_changes = true` on
//! every process, docs/GRAPHQL.md).
//!
//! PostgreSQL must be reachable at `TASKER_TEST_PG_URL`: this test fails,
//! never skips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Server;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tasker_store_postgres::testing::TestDb;
use tasker_test_support::graphql_ws::{self, Ws, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Three steps in a chain (each one commit after its parent's).
const CHAIN: &str = "name: chain\nnamespace: xproc\nversion: 1.0.0\nstep_templates:\n  - name: first\n    handler: { kind: noop }\n  - name: second\n    depends_on_step: first\n    handler: { kind: noop }\n  - name: third\n    depends_on_step: second\n    handler: { kind: noop }\n";

/// The binary on `url`, announcing its step changes (every process that
/// writes needs it for another process's subscribers to see them).
fn tasker(url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tasker"));
    c.env_remove("TASKER_DATABASE_URL")
        .env_remove("TASKER_CONFIG")
        .env("TASKER__DATABASE__ANNOUNCE_CHANGES", "true")
        .env("RUST_LOG", "warn")
        .args(["--database", url]);
    c
}

/// A child killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection; status and JSON body.
async fn http(addr: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .expect("an HTTP answer within 10 s")
        .unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The next JSON message (30 s at most: the other processes start meanwhile).
async fn recv(ws: &mut Ws) -> Value {
    graphql_ws::recv(ws, Duration::from_secs(30)).await
}

/// Reads messages until `done` holds for one of them; returns every
/// `next` payload seen, by subscription id.
async fn until(ws: &mut Ws, seen: &mut Vec<(String, Value)>, done: impl Fn(&str, &Value) -> bool) {
    loop {
        let m = recv(ws).await;
        assert_eq!(m["type"], "next", "{m}");
        let id = m["id"].as_str().unwrap().to_string();
        let data = m["payload"]["data"].clone();
        assert!(m["payload"]["errors"].is_null(), "{m}");
        seen.push((id.clone(), data.clone()));
        if done(&id, &data) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_of_one_server_see_other_processes_changes() {
    let db = TestDb::create().await;
    let url = db.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(templates.join("chain.yaml"), CHAIN).unwrap();

    // Process 1: the server the subscriber talks to; it runs no steps.
    let child = tasker(&url)
        .args([
            "serve",
            "--no-workers",
            "--bind",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .arg("--templates")
        .arg(&templates)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let addr = server.started()["address"].as_str().unwrap().to_string();
    let (status, created) = http(
        &addr,
        "POST",
        "/tasker/tasks",
        Some(json!({"namespace": "xproc", "name": "chain"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["task"]["task_id"].as_str().unwrap().to_string();

    let mut ws = graphql_ws::connect(&addr).await;
    send(
        &mut ws,
        json!({"id": "steps", "type": "subscribe", "payload": {
            "query": "subscription($id: UUID!) { stepUpdated(taskId: $id) { name status } }",
            "variables": {"id": id}}}),
    )
    .await;
    send(
        &mut ws,
        json!({"id": "task", "type": "subscribe", "payload": {
            "query": "subscription($id: UUID!) { taskUpdated(id: $id) { status stepsRemaining } }",
            "variables": {"id": id}}}),
    )
    .await;
    // The current state first: three pending steps, the pending task.
    let mut seen = Vec::new();
    for _ in 0..4 {
        until(&mut ws, &mut seen, |_, _| true).await;
    }
    let steps: Vec<&Value> = seen
        .iter()
        .filter(|(s, _)| s == "steps")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(steps.len(), 3, "{seen:?}");
    assert!(
        steps
            .iter()
            .all(|d| d["stepUpdated"]["status"] == "PENDING"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|(s, d)| s == "task" && d["taskUpdated"]["status"] == "PENDING"),
        "{seen:?}"
    );

    // Process 2: a worker on the same database runs the steps.
    let _worker = Killed(
        tasker(&url)
            .args(["worker", "--templates"])
            .arg(&templates)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    seen.clear();
    until(&mut ws, &mut seen, |id, d| {
        id == "task" && d["taskUpdated"]["status"] == "COMPLETE"
    })
    .await;
    // Every step's completion reached the subscriber, in the chain's order.
    let mut done: Vec<String> = Vec::new();
    loop {
        for (s, d) in &seen {
            let step = &d["stepUpdated"];
            if s == "steps" && step["status"] == "COMPLETE" {
                let name = step["name"].as_str().unwrap().to_string();
                if !done.contains(&name) {
                    done.push(name);
                }
            }
        }
        if done.len() == 3 {
            break;
        }
        // The task's message may come before the last step's.
        seen.clear();
        until(&mut ws, &mut seen, |id, _| id == "steps").await;
    }
    assert_eq!(done, ["first", "second", "third"]);

    drop(_worker);

    // Process 3 and 4: the command line pauses, then resumes, a second
    // task; the subscriber sees both.
    let (status, created) = http(
        &addr,
        "POST",
        "/tasker/tasks",
        Some(json!({"namespace": "xproc", "name": "chain", "correlation_id": "second"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let second = created["task"]["task_id"].as_str().unwrap().to_string();
    send(
        &mut ws,
        json!({"id": "second", "type": "subscribe", "payload": {
            "query": "subscription($id: UUID!) { taskUpdated(id: $id) { status pausedAt } }",
            "variables": {"id": second}}}),
    )
    .await;
    seen.clear();
    until(&mut ws, &mut seen, |id, _| id == "second").await;
    assert_eq!(
        seen.last().unwrap().1["taskUpdated"],
        json!({"status": "PENDING", "pausedAt": null})
    );
    for (verb, paused) in [("pause", true), ("resume", false)] {
        let out = tasker(&url)
            .args(["tasks", verb, &second])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tasker tasks {verb}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        seen.clear();
        until(&mut ws, &mut seen, |id, d| {
            id == "second" && d["taskUpdated"]["pausedAt"].is_null() != paused
        })
        .await;
    }
    let _ = server.0.kill();
    drop(db);
}
