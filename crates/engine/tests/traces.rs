//! OpenTelemetry traces, collected by the SDK's in-memory exporter: one
//! trace per task (its id), the root `task` span linked to the caller's
//! `traceparent`, a `step` span per attempt under the root, and the
//! attempt's `traceparent` sent on by an `http` step to a real server on
//! 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::HeaderMap;
use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::InMemorySpanExporter;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tasker_core::TaskState;
use tasker_engine::TaskRequest;
use tasker_engine::handlers::{Http, HttpPolicy};
use tasker_engine::telemetry;
use tracing_subscriber::layer::SubscriberExt;

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_one_trace_with_a_span_per_attempt() {
    let exporter = InMemorySpanExporter::default();
    let provider = telemetry::otlp::builder("tasker-test")
        .with_simple_exporter(exporter.clone())
        .build();
    telemetry::otlp::install(&provider);
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("tasker")));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    // The service an `http` step calls: records the traceparent it got.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let record = record.clone();
        async move {
            if let Some(v) = headers.get("traceparent") {
                record.lock().unwrap().push(v.to_str().unwrap().to_string());
            }
            axum::Json(json!({"ok": true}))
        }
    });
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (store, _dir) = common::sqlite().await;
    let tasker = common::builder(store)
        .handler(
            "http",
            Http::new(HttpPolicy::default().allow_ip(IpAddr::V4(Ipv4Addr::LOCALHOST))),
        )
        .template(common::template(&format!(
            r#"
name: traced
namespace: obs
version: 1.0.0
step_templates:
  - name: first
    handler: {{ kind: noop }}
  - name: call
    depends_on_step: first
    handler: {{ kind: http, config: {{ url: "http://{addr}/hook" }} }}
"#
        )))
        .build()
        .unwrap();
    let mut request = TaskRequest::new("obs", "traced");
    request.traceparent = Some(CALLER.to_string());
    let task = tasker.create_task(request).await.unwrap();
    let worker = tasker.start();
    let done = tasker
        .wait_for_task(task.id, Duration::from_secs(30))
        .await
        .unwrap();
    worker.shutdown().await;
    server.abort();
    assert_eq!(done.status, TaskState::Complete);
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let trace = TraceId::from_bytes(*task.id.as_bytes());
    let root_id = telemetry::task_span_id(task.id);
    let root = spans
        .iter()
        .find(|s| s.name == "task")
        .expect("a task span");
    assert_eq!(root.span_context.trace_id(), trace);
    assert_eq!(root.span_context.span_id(), root_id);
    assert_eq!(
        root.parent_span_id,
        SpanId::INVALID,
        "the task span is a root"
    );
    let link = &root.links.links[0];
    assert_eq!(
        link.span_context.trace_id(),
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
    );
    assert_eq!(
        link.span_context.span_id(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap()
    );
    // One span per step attempt, each a child of the root, in its trace.
    let steps: Vec<_> = spans.iter().filter(|s| s.name == "step").collect();
    assert_eq!(steps.len(), 2, "{spans:#?}");
    for s in &steps {
        assert_eq!(s.span_context.trace_id(), trace);
        assert_eq!(s.parent_span_id, root_id);
    }
    // The http step sent its own attempt's context on.
    let call = steps
        .iter()
        .find(|s| {
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "step" && kv.value.as_str() == "call")
        })
        .expect("the call step's span");
    let sent = seen.lock().unwrap().clone();
    assert_eq!(
        sent,
        [format!("00-{}-{}-01", trace, call.span_context.span_id())]
    );
    // External workers get the root's context.
    assert_eq!(
        telemetry::traceparent_of_task(task.id),
        format!("00-{trace}-{root_id}-01")
    );
}
