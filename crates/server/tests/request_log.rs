//! One log line per request at `info` (method, route template, status,
//! latency, request and correlation ids), and a setting to turn it down.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::Request;
use common::Harness;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use tasker_server::{RequestLog, ServerConfig};

/// Log output captured in memory.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// The captured lines that are request lines.
    fn requests(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == "request")
            .collect()
    }
}

/// Runs `f` with the default log level (`info`) captured as JSON lines.
async fn with_logs(level: RequestLog) -> Vec<Value> {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = ServerConfig {
        request_log: level,
        ..ServerConfig::default()
    };
    let h = Harness::with(common::sqlite().await, common::engine_config(), server).await;
    let id = h.checkout(5).await;
    let req = Request::get(format!("/tasker/tasks/{id}"))
        .header("x-request-id", "req-1")
        .header("x-correlation-id", "order-5")
        .body(Body::empty())
        .unwrap();
    h.request(req).await;
    h.get("/tasker/nowhere").await;
    capture.requests()
}

#[tokio::test]
async fn every_request_is_logged_once_at_info() {
    let lines = with_logs(RequestLog::Info).await;
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let create = &lines[0];
    assert_eq!(create["level"], "INFO");
    assert_eq!(create["method"], "POST");
    assert_eq!(create["route"], "/tasker/tasks");
    assert_eq!(create["status"], 201);
    assert!(create["latency_ms"].as_f64().unwrap() >= 0.0);
    assert!(!create["request_id"].as_str().unwrap().is_empty());
    let show = &lines[1];
    // The route template, not the path with its id.
    assert_eq!(show["route"], "/tasker/tasks/{task_id}");
    assert_eq!(show["status"], 200);
    assert_eq!(show["request_id"], "req-1");
    assert_eq!(show["correlation_id"], "order-5");
    assert_eq!(lines[2]["status"], 404);
    assert_eq!(lines[2]["route"], "(no route)");
}

#[tokio::test]
async fn request_lines_can_be_turned_down() {
    assert!(with_logs(RequestLog::Debug).await.is_empty());
    assert!(with_logs(RequestLog::Off).await.is_empty());
}
