//! `telemetry.otlp_endpoint` end to end: the binary exports its spans over
//! OTLP/HTTP (protobuf) to a receiver in this test, which answers like a
//! collector and keeps what it got.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// One export request: path, content type, body.
type Export = (String, String, Vec<u8>);

/// Serves HTTP/1.1 on `listener` (keep-alive included): every request is
/// recorded and answered 200 with an empty protobuf body.
fn receive(listener: TcpListener, got: Arc<Mutex<Vec<Export>>>) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { return };
        let got = got.clone();
        std::thread::spawn(move || {
            let mut writer = conn.try_clone().unwrap();
            let mut reader = BufReader::new(conn);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let path = line.split(' ').nth(1).unwrap_or("").to_string();
                let (mut length, mut kind) = (0usize, String::new());
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    let (name, value) = h.split_once(':').unwrap();
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap(),
                        "content-type" => kind = value.trim().to_string(),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                got.lock().unwrap().push((path, kind, body));
                writer
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
                    .unwrap();
            }
        });
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn spans_reach_the_configured_collector() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<Export>>> = Arc::default();
    let sink = got.clone();
    std::thread::spawn(move || receive(listener, sink));

    let dir = tempfile::tempdir().unwrap();
    let out = common::bin(dir.path())
        .args([
            "bench",
            "--scenario",
            "chain",
            "--chains",
            "3",
            "--otlp-endpoint",
            &format!("http://127.0.0.1:{port}/v1/traces"),
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = common::text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("traces on"), "{stdout}");
    // The last batch is sent before the process exits.
    let exports = got.lock().unwrap().clone();
    assert!(!exports.is_empty(), "no export reached the collector");
    let mut all = Vec::new();
    for (path, kind, body) in &exports {
        assert_eq!(path, "/v1/traces");
        assert_eq!(kind, "application/x-protobuf");
        all.extend_from_slice(body);
    }
    // Protobuf keeps strings as they are: the service, and both span kinds.
    assert!(contains(&all, "tasker"), "service.name");
    assert!(contains(&all, "tasker.task_id"), "a task root span");
    assert!(contains(&all, "correlation_id"), "a step span's fields");
}
