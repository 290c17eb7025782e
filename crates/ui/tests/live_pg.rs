//! Live updates across processes on PostgreSQL: a page's stream (served by
//! one server over its own connection pool) hears about a change made
//! through another pool and service, as another `tasker` process would make
//! it (no in-process signal is shared between the two).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tasker_engine::TaskRequest;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_pool_s_change_reaches_an_open_page_s_stream() {
    let db = postgres().await;
    let second = match &db.guard {
        Guard::Postgres(t) => t.store().await,
        Guard::Sqlite(_) => unreachable!(),
    };
    let server = Server::start(db, &[WAITING.to_string()], false).await;
    let other = tasker_on(Arc::new(second), &[WAITING.to_string()]);
    let task = server
        .tasker
        .submit_task(TaskRequest::new("ops", "waiting"))
        .await
        .unwrap();
    // The page's stream, as its script opens it (after the last event).
    let after = server.tasker.store().events_last_id().await.unwrap();
    let mut sock = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    sock.write_all(
        format!(
            "GET /tasker/ui/live?after={after}&task_id={}&namespace=ops HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n",
            task.id
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut lines = BufReader::new(sock).lines();
    let status = lines.next_line().await.unwrap().unwrap();
    assert!(status.contains("200"), "{status}");
    // Headers done: the stream is open.
    while let Some(l) = lines.next_line().await.unwrap() {
        if l.is_empty() {
            break;
        }
    }
    let t0 = Instant::now();
    other
        .cancel_task(task.id, Some("other-process"))
        .await
        .unwrap();
    let data = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let l = lines.next_line().await.unwrap().expect("the stream ended");
            if let Some(d) = l.strip_prefix("data:") {
                return d.trim().to_string();
            }
        }
    })
    .await
    .expect("no message within 5 s");
    let waited = t0.elapsed();
    let event: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(event["task_id"], task.id.to_string());
    assert!(
        event["type"].as_str().unwrap().ends_with(".cancelled"),
        "{event}"
    );
    println!("another pool's change reached the page's stream in {waited:?}");
    server.stop().await;
}
