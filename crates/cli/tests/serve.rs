//! `tasker serve` end to end: start on a free port, answer health checks,
//! create a task over HTTP that the in-process engine runs to completion,
//! and stop cleanly on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Server;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One HTTP/1.1 request on a fresh connection; returns status and body.
fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
#[cfg(unix)]
fn serve_runs_tasks_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let child = Command::new(env!("CARGO_BIN_EXE_tasker"))
        .env_remove("TASKER_DATABASE_URL")
        .env_remove("TASKER_CONFIG")
        .env("RUST_LOG", "info")
        .args(["serve", "--bind", "127.0.0.1:0", "--log-format", "json"])
        .arg("--database")
        .arg(format!("sqlite://{}", dir.path().join("t.db").display()))
        .arg("--templates")
        .arg(repo.join("examples/templates"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Server(child);

    // The bound address is in the start-up log line.
    let addr = server.started()["address"].as_str().unwrap().to_string();

    let (status, body) = http(&addr, "GET", "/tasker/health/ready", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["checks"]["engine"]["status"], "healthy");

    let (status, body) = http(
        &addr,
        "POST",
        "/tasker/tasks",
        Some(
            r#"{"task": {"namespace": "ecommerce", "name": "order_fulfillment", "context": {"order_id": 1, "items": ["a"], "amount_cents": 5}}}"#,
        ),
    );
    assert_eq!(status, 201, "{body}");
    let id = json(&body)["task"]["task_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = http(&addr, "GET", &format!("/tasker/tasks/{id}"), None);
        assert_eq!(status, 200, "{body}");
        if json(&body)["task"]["status"] == "complete" {
            break;
        }
        assert!(Instant::now() < deadline, "task did not complete: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // SIGTERM: the server drains and exits 0.
    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}
