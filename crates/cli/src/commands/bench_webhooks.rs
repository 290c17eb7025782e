//! `tasker bench --scenario webhooks`: how fast the webhook dispatcher
//! delivers a backlog of events to a local receiver (docs/PERFORMANCE.md,
//! "Webhook delivery").
//!
//! The events are recorded first (one `task.created` per task, so every
//! event is of its own task and nothing waits for per-task order), with no
//! dispatcher running; then the dispatcher of this process starts and the
//! clock runs until the receiver has answered 200 to every event id. Every
//! request is signed (HMAC-SHA256), as in production.

use crate::output::outln;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tasker_engine::handlers::HttpPolicy;
use tasker_engine::webhooks::WebhookRequest;
use tasker_engine::{EngineConfig, TaskRequest, Tasker};
use tasker_store::Store;
use tokio::sync::Notify;

#[derive(Clone, Default)]
struct Seen {
    ids: Arc<Mutex<HashSet<i64>>>,
    requests: Arc<std::sync::atomic::AtomicU64>,
    changed: Arc<Notify>,
}

async fn receive(State(s): State<Seen>, headers: HeaderMap) -> StatusCode {
    s.requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = headers
        .get("tasker-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    let Some(id) = id else {
        return StatusCode::BAD_REQUEST;
    };
    let fresh = s.ids.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
    if fresh {
        s.changed.notify_one();
    }
    StatusCode::OK
}

/// Delivers `events` events to a local receiver; prints deliveries/s.
pub async fn run(
    store: Arc<dyn Store>,
    events: usize,
    concurrency: u32,
    batch: u32,
) -> anyhow::Result<()> {
    let seen = Seen::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(seen.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let mut config = EngineConfig::default();
    config.webhooks.concurrency = concurrency;
    config.webhooks.batch_size = batch;
    config.event_retention = None;
    let single = tasker_core::template::parse_template(
        "<bench>",
        "name: hooked\nnamespace: bench\nstep_templates:\n  - name: only\n    handler: { kind: noop }\n",
        None,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tasker = Tasker::builder(store.clone())
        .config(config)
        .webhook_policy(HttpPolicy::default().allow_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)))
        .template(single)
        .build()?;
    let hook = tasker
        .create_webhook(WebhookRequest {
            name: format!("bench-{}", uuid::Uuid::new_v4().simple()),
            url: format!("http://{addr}/hook"),
            events: Some(vec!["task.created".into()]),
            namespaces: vec!["bench".into()],
            secret: Some("bench-secret-0123456789".into()),
            max_attempts: Some(10),
            timeout_seconds: Some(10.0),
        })
        .await?;

    let started = Instant::now();
    let mut left = events;
    while left > 0 {
        let n = left.min(1000);
        let requests = (0..n)
            .map(|_| TaskRequest::new("bench", "hooked").context(serde_json::json!({})))
            .collect();
        tasker.create_tasks(requests).await?;
        left -= n;
    }
    outln!(
        "webhooks: {events} events recorded in {:.1}s (one task.created per task); delivering with concurrency {concurrency}, batch {batch}",
        started.elapsed().as_secs_f64()
    )?;

    let started = Instant::now();
    let services = tasker.start_services();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let changed = seen.changed.notified();
        let have = seen.ids.lock().unwrap_or_else(|p| p.into_inner()).len();
        if have >= events {
            break;
        }
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            services.shutdown().await;
            anyhow::bail!("only {have} of {events} events delivered within 600 s");
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    services.shutdown().await;
    server.abort();
    let requests = seen.requests.load(std::sync::atomic::Ordering::Relaxed);
    outln!(
        "webhooks: {events} deliveries in {elapsed:.2}s = {:.0} deliveries/s ({requests} requests; {} duplicates)",
        events as f64 / elapsed,
        requests.saturating_sub(events as u64)
    )?;
    tasker.delete_webhook(hook.id).await?;
    Ok(())
}
