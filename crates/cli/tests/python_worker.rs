//! The Python example worker (standard library only) against a live
//! `tasker serve`: one workflow mixes built-in Rust handlers, an `http` step
//! and steps run by the external worker, and completes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::free_port;

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One HTTP/1.1 request over a fresh connection; returns (status, JSON body).
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let payload = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn wait_until<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn python_worker_finishes_a_mixed_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    let port = free_port();
    std::fs::write(
        templates.join("mixed.yaml"),
        format!(
            "name: mixed\nnamespace: polyglot\nversion: 1.0.0\nstep_templates:\n  - name: prepare\n    handler: {{ kind: noop }}\n    inputs: {{ ready: true }}\n  - name: probe\n    depends_on_step: prepare\n    handler: {{ kind: http, config: {{ method: GET, url: 'http://127.0.0.1:{port}/tasker/health/live' }} }}\n  - name: square\n    depends_on_step: prepare\n    handler: {{ kind: external, config: {{ op: square }} }}\n  - name: total\n    depends_on_steps: [square, probe]\n    handler: {{ kind: external, config: {{ op: sum_parents }} }}\n  - name: finish\n    depends_on_step: total\n    handler: {{ kind: noop }}\n"
        ),
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let _server = Killed(
        Command::new(env!("CARGO_BIN_EXE_tasker"))
            .args([
                "--database",
                &db,
                "serve",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--templates",
            ])
            .arg(&templates)
            .env("TASKER__HTTP__ALLOW_INTERNAL", "true")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until(60, "the server answers", || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });

    let (status, created) = http(
        port,
        "POST",
        "/tasker/tasks",
        Some(&json!({"name": "mixed", "namespace": "polyglot", "context": {"n": 7}})),
    );
    assert_eq!(status, 201, "{created}");
    let task_id = created["task"]["task_id"].as_str().unwrap().to_string();

    // The worker runs until the task is done (no idle-exit timing to race).
    let worker =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/workers/python_worker.py");
    let log_path = dir.path().join("worker.log");
    let mut py = Killed(
        Command::new("python3")
            .arg(worker)
            .args([
                "--url",
                &format!("http://127.0.0.1:{port}"),
                "--kind",
                "external",
                "--wait-seconds",
                "1",
                "--lease-seconds",
                "10",
            ])
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let task = wait_until(60, "the task completes", || {
        assert!(
            py.0.try_wait().unwrap().is_none(),
            "the worker exited: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        let (_, t) = http(port, "GET", &format!("/tasker/tasks/{task_id}"), None);
        (t["task"]["status"] == "complete").then_some(t)
    });
    drop(py);
    let log = std::fs::read_to_string(&log_path).unwrap();
    let steps = task["task"]["steps"].as_array().unwrap();
    let result = |name: &str| steps.iter().find(|s| s["name"] == name).unwrap()["results"].clone();
    assert_eq!(result("prepare"), json!({"ready": true}));
    assert_eq!(result("probe")["status"], 200);
    assert_eq!(result("square"), json!({"value": 49, "worker": "python"}));
    assert_eq!(result("total"), json!({"value": 56, "worker": "python"}));
    assert!(log.contains("step square attempt 1: complete"), "{log}");
}
