//! The `http` handler against a real HTTP server on 127.0.0.1 started by
//! each test: outcome mapping, Retry-After, limits, the address policy,
//! secrets, and one workflow run by the engine on a SQLite file.
//!
//! No test sends traffic anywhere but the loopback server: the internal and
//! non-allowed addresses used here are refused before any connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tasker_core::{StepState, TaskState};
use tasker_engine::clock::ManualClock;
use tasker_engine::handlers::{Http, HttpPolicy};
use tasker_engine::{StepContext, StepError, StepHandler, TaskRequest};
use uuid::Uuid;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// What the server answers to one request.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Payload,
    delay: Duration,
}

#[derive(Clone)]
enum Payload {
    Text(String),
    Json(Value),
    /// Chunks forever, no Content-Length.
    Endless,
    /// The request's headers as JSON.
    EchoHeaders,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: Payload::Json(body),
            delay: Duration::ZERO,
        }
    }

    fn text(status: u16, body: &str) -> Self {
        Reply {
            status,
            headers: vec![("content-type", "text/plain".into())],
            body: Payload::Text(body.into()),
            delay: Duration::ZERO,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    query: Option<String>,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    at: Instant,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Clone, Default)]
struct Shared {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

/// A scripted HTTP server on 127.0.0.1: answers requests with the replies
/// given, in order (then `200 {}`), and records every request.
struct Server {
    addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(replies: Vec<Reply>) -> Server {
        let shared = Shared::default();
        shared.replies.lock().unwrap().extend(replies);
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind((LOOPBACK, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Server { addr, shared, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let headers: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    shared.received.lock().unwrap().push(Received {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers: headers.clone(),
        body: body.to_vec(),
        at: Instant::now(),
    });
    let reply = shared
        .replies
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| Reply::json(200, json!({})));
    tokio::time::sleep(reply.delay).await;
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(*name, value);
    }
    let body = match reply.body {
        Payload::Text(t) => Body::from(t),
        Payload::Json(v) => Body::from(v.to_string()),
        Payload::Endless => Body::from_stream(futures::stream::repeat_with(|| {
            Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 16 * 1024]))
        })),
        Payload::EchoHeaders => Body::from(json!({ "headers": headers }).to_string()),
    };
    response.body(body).unwrap()
}

/// A step of task `shop/checkout` with a context, inputs and one parent.
fn step(config: Value) -> StepContext {
    let mut parents = serde_json::Map::new();
    parents.insert("charge".into(), json!({"receipt": "r-77", "amount": 1999}));
    let step_id = Uuid::now_v7();
    StepContext {
        task_id: Uuid::now_v7(),
        step_id,
        step_name: "notify".into(),
        namespace: "shop".into(),
        task_name: "checkout".into(),
        version: "1.0.0".into(),
        context: json!({"order": {"id": 42, "total": 19.99, "tags": ["a", "b"], "customer": "Zoë & co/x"}}),
        inputs: json!({"channel": "email"}),
        parent_results: parents,
        config,
        attempt: 1,
        max_attempts: 3,
        idempotency_key: StepContext::idempotency_key_for(step_id),
        correlation_id: "0190a6b2-7f3e-7c1a-9b2d-1234567890ab".into(),
        timeout: None,
        events: tasker_engine::EventEmitter::detached(),
    }
}

fn local_only() -> HttpPolicy {
    HttpPolicy::default().allow_ip(LOOPBACK)
}

async fn call(policy: HttpPolicy, config: Value) -> Result<Value, StepError> {
    Http::new(policy).call(&step(config)).await
}

fn retryable(err: &StepError) -> (Option<Duration>, Option<&str>, &str) {
    match err {
        StepError::Retryable {
            retry_after,
            code,
            message,
        } => (*retry_after, code.as_deref(), message),
        other => panic!("expected a retryable error, got {other:?}"),
    }
}

fn permanent(err: &StepError) -> (Option<&str>, &str) {
    match err {
        StepError::Permanent { code, message } => (code.as_deref(), message),
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

#[tokio::test]
async fn success_with_templated_url_query_headers_and_body() {
    let server = Server::start(vec![
        Reply::json(201, json!({"id": "n-1", "queued": true}))
            .header("location", "/notifications/n-1")
            .header("x-other", "not kept"),
    ])
    .await;
    let config = json!({
        "method": "post",
        "url": server.url("/orders/{{context.order.id}}/notify/{{context.order.customer}}?src=tasker"),
        "query": {"attempt": "{{step.attempt}}", "tag": ["{{context.order.tags.0}}", "{{context.order.tags.1}}"], "n": 5},
        "headers": {"X-Receipt": "{{parents.charge.receipt}}", "X-Channel": "{{inputs.channel}}"},
        "body": {
            "order": "{{context.order.id}}",
            "total": "{{context.order.total}}",
            "charge": "{{parents.charge}}",
            "label": "order {{context.order.id}} attempt {{step.attempt}}",
            "key": "{{step.idempotency_key}}",
            "fixed": [1, null, true],
        },
        "response_headers": ["Location", "x-absent"],
    });
    let s = step(config);
    let results = Http::new(local_only()).call(&s).await.unwrap();
    assert_eq!(
        results,
        json!({
            "status": 201,
            "headers": {"location": "/notifications/n-1"},
            "body": {"id": "n-1", "queued": true},
        })
    );

    let got = server.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.path, "/orders/42/notify/Zo%C3%AB%20%26%20co%2Fx",
        "values are percent-encoded in the URL"
    );
    assert_eq!(
        r.query.as_deref(),
        Some("src=tasker&attempt=1&n=5&tag=a&tag=b")
    );
    assert_eq!(r.headers["x-receipt"], "r-77");
    assert_eq!(r.headers["x-channel"], "email");
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["x-correlation-id"], s.correlation_id);
    assert_eq!(r.headers["idempotency-key"], s.idempotency_key);
    let tp: Vec<&str> = r.headers["traceparent"].split('-').collect();
    assert_eq!(tp.len(), 4, "{:?}", r.headers["traceparent"]);
    assert_eq!(tp[0], "00");
    assert_eq!(
        tp[1], "0190a6b27f3e7c1a9b2d1234567890ab",
        "trace id = the correlation id"
    );
    assert_eq!(tp[2].len(), 16);
    assert!(r.headers["user-agent"].starts_with("tasker/"));
    assert_eq!(
        r.json(),
        json!({
            "order": 42,
            "total": 19.99,
            "charge": {"receipt": "r-77", "amount": 1999},
            "label": "order 42 attempt 1",
            "key": s.idempotency_key,
            "fixed": [1, null, true],
        })
    );
}

#[tokio::test]
async fn configured_headers_replace_the_defaults_and_text_bodies_stay_text() {
    let server = Server::start(vec![Reply::text(200, "all good")]).await;
    let config = json!({
        "url": server.url("/ping"),
        "headers": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "Idempotency-Key": "mine"},
    });
    let results = call(local_only(), config).await.unwrap();
    assert_eq!(
        results,
        json!({"status": 200, "headers": {}, "body": "all good"})
    );
    let r = &server.received()[0];
    assert_eq!(r.method, "GET");
    assert_eq!(
        r.headers["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
    assert_eq!(r.headers["idempotency-key"], "mine");
    assert!(
        !r.headers.contains_key("content-type"),
        "no body, no content type"
    );
}

#[tokio::test]
async fn expected_statuses_decide_success() {
    let server = Server::start(vec![
        Reply::json(404, json!({"found": false})),
        Reply::json(200, json!({})),
    ])
    .await;
    let config = json!({"url": server.url("/maybe"), "expected_statuses": [404, "3xx"]});
    let results = call(local_only(), config.clone()).await.unwrap();
    assert_eq!(results["status"], 404);
    assert_eq!(results["body"], json!({"found": false}));
    // 200 is not in the list: unexpected, so a permanent failure.
    let err = call(local_only(), config).await.unwrap_err();
    assert_eq!(permanent(&err).0, Some("HTTP_200"));
}

#[tokio::test]
async fn too_many_requests_with_retry_after_seconds() {
    let server = Server::start(vec![
        Reply::text(429, "slow down").header("retry-after", "7"),
    ])
    .await;
    let err = call(local_only(), json!({"url": server.url("/rl")}))
        .await
        .unwrap_err();
    let (after, code, message) = retryable(&err);
    assert_eq!(after, Some(Duration::from_secs(7)));
    assert_eq!(code, Some("HTTP_429"));
    assert!(
        message.contains("HTTP 429 Too Many Requests: slow down"),
        "{message}"
    );
    assert!(
        message.contains(&format!("GET {}", server.url("/rl"))),
        "{message}"
    );
}

#[tokio::test]
async fn too_many_requests_with_retry_after_date() {
    // The handler's clock is pinned, so the delay is exact.
    let now = chrono::DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let at = SystemTime::from(now) + Duration::from_secs(30);
    let server = Server::start(vec![
        Reply::text(429, "later").header("retry-after", httpdate::fmt_http_date(at)),
    ])
    .await;
    let handler = Http::new(local_only()).with_clock(Arc::new(ManualClock::new(now)));
    let err = handler
        .call(&step(json!({"url": server.url("/rl")})))
        .await
        .unwrap_err();
    let (after, code, _) = retryable(&err);
    assert_eq!(after, Some(Duration::from_secs(30)));
    assert_eq!(code, Some("HTTP_429"));
}

#[tokio::test]
async fn retry_after_is_capped_and_unusable_values_fall_back_to_backoff() {
    let server = Server::start(vec![
        Reply::text(429, "").header("retry-after", "86400"),
        Reply::text(503, "").header("retry-after", "-3"),
        Reply::text(429, "").header("retry-after", "soon"),
        Reply::text(503, "").header("retry-after", "Mon, 01 Jan 2001 00:00:00 GMT"),
    ])
    .await;
    let policy = || local_only().max_retry_after(Duration::from_secs(60));
    let url = json!({"url": server.url("/x")});
    let err = call(policy(), url.clone()).await.unwrap_err();
    assert_eq!(retryable(&err).0, Some(Duration::from_secs(60)), "capped");
    for raw in ["-3", "soon", "Mon, 01 Jan 2001 00:00:00 GMT"] {
        let err = call(policy(), url.clone()).await.unwrap_err();
        let (after, code, message) = retryable(&err);
        assert_eq!(after, None, "{raw}: normal backoff");
        assert!(code == Some("HTTP_429") || code == Some("HTTP_503"));
        assert!(message.contains("not usable"), "{message}");
    }
}

#[tokio::test]
async fn service_unavailable_without_retry_after_uses_the_backoff() {
    let server = Server::start(vec![Reply::text(503, "maintenance")]).await;
    let err = call(local_only(), json!({"url": server.url("/x")}))
        .await
        .unwrap_err();
    let (after, code, message) = retryable(&err);
    assert_eq!((after, code), (None, Some("HTTP_503")));
    assert!(
        message.ends_with("HTTP 503 Service Unavailable: maintenance"),
        "{message}"
    );
}

#[tokio::test]
async fn server_errors_are_retryable_with_a_truncated_body() {
    let long = format!("boom {}", "x".repeat(20_000));
    let server = Server::start(vec![
        Reply::text(500, &long),
        Reply::json(502, json!({"error": "bad gateway"})),
    ])
    .await;
    let err = call(local_only(), json!({"url": server.url("/x")}))
        .await
        .unwrap_err();
    let (after, code, message) = retryable(&err);
    assert_eq!((after, code), (None, Some("HTTP_500")));
    assert!(
        message.contains("HTTP 500 Internal Server Error: boom xxx"),
        "{message}"
    );
    assert!(message.len() < 1000, "truncated: {} bytes", message.len());
    assert!(message.ends_with('…'));
    let err = call(local_only(), json!({"url": server.url("/x")}))
        .await
        .unwrap_err();
    let (_, code, message) = retryable(&err);
    assert_eq!(code, Some("HTTP_502"));
    assert!(message.contains(r#"{"error":"bad gateway"}"#), "{message}");
}

#[tokio::test]
async fn client_errors_are_permanent_with_the_status_as_code() {
    let server = Server::start(vec![
        Reply::json(404, json!({"error": "no such order"})),
        Reply::text(422, "invalid amount"),
        Reply::text(302, "").header("location", "http://10.0.0.1:9/elsewhere"),
    ])
    .await;
    let err = call(local_only(), json!({"url": server.url("/orders/9")}))
        .await
        .unwrap_err();
    let (code, message) = permanent(&err);
    assert_eq!(code, Some("HTTP_404"));
    assert!(
        message.contains(r#"HTTP 404 Not Found: {"error":"no such order"}"#),
        "{message}"
    );
    let err = call(
        local_only(),
        json!({"url": server.url("/x"), "method": "PATCH"}),
    )
    .await
    .unwrap_err();
    assert_eq!(permanent(&err).0, Some("HTTP_422"));
    // Redirects are not followed (the target here is an internal address).
    let err = call(local_only(), json!({"url": server.url("/x")}))
        .await
        .unwrap_err();
    assert_eq!(permanent(&err).0, Some("HTTP_302"));
    assert_eq!(server.received().len(), 3);
}

#[tokio::test]
async fn slow_responses_time_out() {
    let mut slow = Reply::json(200, json!({}));
    slow.delay = Duration::from_secs(10);
    let server = Server::start(vec![slow.clone(), slow]).await;
    // The server answers after 10 s; a timeout error (not a 200) is the proof
    // that the timeout fired first. (No wall-clock bound: that would fail on
    // a loaded machine, not on a broken timeout.)
    let err = call(
        local_only(),
        json!({"url": server.url("/slow"), "timeout_seconds": 0.3}),
    )
    .await
    .unwrap_err();
    let (after, code, message) = retryable(&err);
    assert_eq!((after, code), (None, Some("HTTP_TIMEOUT")));
    assert!(message.contains("within 0.3 s"), "{message}");
    // The policy's default applies when the step sets none.
    let err = call(
        local_only().default_timeout(Duration::from_millis(200)),
        json!({"url": server.url("/slow")}),
    )
    .await
    .unwrap_err();
    let (_, code, message) = retryable(&err);
    assert_eq!(code, Some("HTTP_TIMEOUT"));
    assert!(message.contains("within 0.2 s"), "{message}");
}

#[tokio::test]
async fn refused_connections_are_retryable() {
    let listener = std::net::TcpListener::bind((LOOPBACK, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let err = call(
        local_only(),
        json!({"url": format!("http://127.0.0.1:{port}/x?token=abc")}),
    )
    .await
    .unwrap_err();
    let (after, code, message) = retryable(&err);
    assert_eq!((after, code), (None, Some("HTTP_CONNECT")));
    assert!(
        message.starts_with(&format!("GET http://127.0.0.1:{port}/x: connection failed")),
        "{message}"
    );
    assert!(
        !message.contains("token=abc"),
        "queries stay out of messages: {message}"
    );
}

#[tokio::test]
async fn oversized_responses_fail_while_streaming() {
    let endless = Reply {
        status: 200,
        headers: vec![],
        body: Payload::Endless,
        delay: Duration::ZERO,
    };
    let server = Server::start(vec![
        Reply::text(200, &"y".repeat(5000)),
        endless,
        Reply::text(200, &"z".repeat(1000)),
    ])
    .await;
    let policy = || local_only().max_response_bytes(1000);
    // Declared too large.
    let err = call(policy(), json!({"url": server.url("/big")}))
        .await
        .unwrap_err();
    let (code, message) = permanent(&err);
    assert_eq!(code, Some("HTTP_RESPONSE_TOO_LARGE"));
    assert!(message.contains("1000 bytes"), "{message}");
    // Never ends, no length: stopped once past the limit (a handler that
    // buffered it all would end in HTTP_TIMEOUT after 20 s instead).
    let err = call(
        policy(),
        json!({"url": server.url("/endless"), "timeout_seconds": 20}),
    )
    .await
    .unwrap_err();
    assert_eq!(permanent(&err).0, Some("HTTP_RESPONSE_TOO_LARGE"));
    // Exactly at the limit is fine.
    let ok = call(policy(), json!({"url": server.url("/edge")}))
        .await
        .unwrap();
    assert_eq!(ok["body"].as_str().map(str::len), Some(1000));
}

#[tokio::test]
async fn hosts_outside_the_policy_are_refused_before_connecting() {
    let server = Server::start(vec![]).await;
    let port = server.addr.port();
    let not_allowed = |err: &StepError| {
        let (code, message) = permanent(err);
        assert_eq!(code, Some("HTTP_HOST_NOT_ALLOWED"), "{message}");
        message.to_string()
    };
    // The default policy: loopback, private and link-local addresses are internal.
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://10.0.0.1:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://192.168.1.1/".to_string(),
        "http://[fd00::1]/".to_string(),
    ] {
        let err = call(HttpPolicy::default(), json!({"url": url}))
            .await
            .unwrap_err();
        let message = not_allowed(&err);
        assert!(message.contains("not allowed"), "{url}: {message}");
    }
    let err = call(
        HttpPolicy::default(),
        json!({"url": format!("http://localhost:{port}/")}),
    )
    .await
    .unwrap_err();
    assert!(not_allowed(&err).contains("resolves to internal address"));
    // Allowing 127.0.0.1 does not allow other internal addresses.
    let err = call(local_only(), json!({"url": "http://10.0.0.1:9/"}))
        .await
        .unwrap_err();
    not_allowed(&err);
    // A host allow-list refuses everything else, even allowed addresses.
    let listed = local_only().allow_host("api.example.com");
    let err = call(listed, json!({"url": server.url("/")}))
        .await
        .unwrap_err();
    assert!(not_allowed(&err).contains("not in the allowed hosts"));
    // Other schemes.
    let err = call(local_only(), json!({"url": "file:///etc/passwd"}))
        .await
        .unwrap_err();
    not_allowed(&err);
    assert!(server.received().is_empty(), "nothing reached the server");

    // With 127.0.0.1 allowed, `localhost` connects through its IPv4 address.
    let ok = call(
        local_only(),
        json!({"url": format!("http://localhost:{port}/")}),
    )
    .await
    .unwrap();
    assert_eq!(ok["status"], 200);
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn bad_configs_and_missing_paths_are_permanent() {
    let server = Server::start(vec![]).await;
    let cases = [
        (
            json!({"url": server.url("/{{context.order.missing}}")}),
            "HTTP_TEMPLATE",
            "`context.order.missing`",
        ),
        (
            json!({"url": server.url("/"), "body": {"x": "{{parents.refund.id}}"}}),
            "HTTP_TEMPLATE",
            "`parents.refund.id`",
        ),
        (
            json!({"url": server.url("/"), "headers": {"X": "{{inputs.nope}}"}}),
            "HTTP_TEMPLATE",
            "`inputs.nope`",
        ),
        (
            json!({"url": server.url("/"), "query": {"q": "{{step.nope}}"}}),
            "HTTP_TEMPLATE",
            "`step.nope`",
        ),
        (
            json!({"url": server.url("/"), "method": "GE T"}),
            "HTTP_CONFIG",
            "not an HTTP method",
        ),
        (
            json!({"url": "not a url"}),
            "HTTP_CONFIG",
            "not a valid URL",
        ),
        (
            json!({"url": server.url("/"), "timeout": 3}),
            "HTTP_CONFIG",
            "unknown field `timeout`",
        ),
        (
            json!({"url": server.url("/"), "timeout_seconds": -1}),
            "HTTP_CONFIG",
            "positive",
        ),
        (
            json!({"url": server.url("/"), "headers": {"X": "a\nb"}}),
            "HTTP_CONFIG",
            "header `X`",
        ),
        (
            json!({"url": server.url("/"), "query": {"q": {"a": 1}}}),
            "HTTP_CONFIG",
            "query `q`",
        ),
        (
            json!({"url": server.url("/"), "headers_from_env": {"Authorization": "TASKER_HTTP_TEST_SURELY_UNSET_1f3a"}}),
            "HTTP_CONFIG",
            "`TASKER_HTTP_TEST_SURELY_UNSET_1f3a` is not set",
        ),
    ];
    for (config, want_code, want_text) in cases {
        let err = call(local_only(), config.clone()).await.unwrap_err();
        let (code, message) = permanent(&err);
        assert_eq!(code, Some(want_code), "{config}: {message}");
        assert!(message.contains(want_text), "{config}: {message}");
    }
    let err = call(
        local_only().env_var_prefix("TASKER_SECRET_"),
        json!({"url": server.url("/"), "headers_from_env": {"X": "HOME"}}),
    )
    .await
    .unwrap_err();
    assert!(permanent(&err).1.contains("`HOME` is not allowed"));
    assert!(server.received().is_empty());
}

const SECRET_VAR: &str = "TASKER_HTTP_TEST_SECRET";
const SECRET: &str = "s3cr3t-7f0c2b9e";

/// Tests cannot set environment variables (that is `unsafe` and this crate
/// forbids unsafe code), so the test runs itself again in a child process
/// with the variable set.
#[tokio::test]
async fn secrets_from_env_are_sent_but_never_kept() {
    if std::env::var(SECRET_VAR).is_err() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "secrets_from_env_are_sent_but_never_kept",
                "--test-threads=1",
            ])
            .env(SECRET_VAR, SECRET)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("1 passed"), "{stdout}");
        return;
    }
    // An echo server: it sends the secret back in the body, in a header and
    // in an error, as careless services do.
    let server = Server::start(vec![
        Reply {
            status: 200,
            headers: vec![
                ("content-type", "application/json".into()),
                ("x-echo", format!("Bearer {SECRET}")),
            ],
            body: Payload::EchoHeaders,
            delay: Duration::ZERO,
        },
        Reply::text(500, &format!("rejected key {SECRET}")),
    ])
    .await;
    let config = json!({
        "url": server.url("/echo"),
        "headers_from_env": {"Authorization": {"env": SECRET_VAR, "prefix": "Bearer "}, "X-Api-Key": SECRET_VAR},
        "response_headers": ["x-echo"],
    });
    let results = call(local_only(), config.clone()).await.unwrap();
    let got = &server.received()[0];
    assert_eq!(got.headers["authorization"], format!("Bearer {SECRET}"));
    assert_eq!(got.headers["x-api-key"], SECRET);
    let text = results.to_string();
    assert!(!text.contains(SECRET), "{text}");
    assert_eq!(results["headers"]["x-echo"], "Bearer [redacted]");
    assert_eq!(
        results["body"]["headers"]["authorization"],
        "Bearer [redacted]"
    );
    let err = call(local_only(), config).await.unwrap_err();
    let (_, code, message) = retryable(&err);
    assert_eq!(code, Some("HTTP_500"));
    assert!(!message.contains(SECRET), "{message}");
    assert!(message.contains("rejected key [redacted]"), "{message}");
}

/// The workflow: `reserve` (POST) gets 503 + `Retry-After: 1`, then 200;
/// `confirm` (PUT) uses the reservation from `reserve`'s results.
#[tokio::test]
async fn workflow_retries_after_503_with_retry_after() {
    let server = Server::start(vec![
        Reply::text(503, "warming up").header("retry-after", "1"),
        Reply::json(200, json!({"reservation": "res-9"})),
        Reply::json(201, json!({"confirmed": true})),
    ])
    .await;
    let yaml = format!(
        r#"
name: http_flow
step_templates:
  - name: reserve
    default_retry_limit: 3
    handler:
      kind: http
      config:
        method: POST
        url: "{base}/orders/{{{{context.order_id}}}}/reserve"
        body: {{ order: "{{{{context.order_id}}}}", attempt: "{{{{step.attempt}}}}" }}
  - name: confirm
    depends_on_step: reserve
    handler:
      kind: http
      config:
        method: PUT
        url: "{base}/reservations/{{{{parents.reserve.body.reservation}}}}"
        expected_statuses: [201]
"#,
        base = server.url("")
    );
    let (store, _dir) = common::sqlite().await;
    let mut config = common::test_config();
    config.backoff.max_backoff_seconds = 10.0; // the test default (0) would cut Retry-After to nothing
    let tasker = common::builder(store.clone())
        .config(config)
        .handler("http", Http::new(local_only()))
        .template(common::template(&yaml))
        .build()
        .unwrap();
    let worker = tasker.start();
    let task = tasker
        .create_task(TaskRequest::new("default", "http_flow").context(json!({"order_id": 42})))
        .await
        .unwrap();
    let done = tasker.wait_for_task(task.id, common::WAIT).await.unwrap();
    worker.shutdown().await;
    assert_eq!(done.status, TaskState::Complete);

    let got = server.received();
    let paths: Vec<(&str, &str)> = got
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        paths,
        [
            ("POST", "/orders/42/reserve"),
            ("POST", "/orders/42/reserve"),
            ("PUT", "/reservations/res-9")
        ]
    );
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "second attempt after {gap:?}, Retry-After asked for 1 s"
    );
    assert_eq!(got[0].json(), json!({"order": 42, "attempt": 1}));
    assert_eq!(got[1].json(), json!({"order": 42, "attempt": 2}));
    assert_eq!(
        got[0].headers["idempotency-key"],
        got[1].headers["idempotency-key"]
    );
    assert_ne!(
        got[0].headers["traceparent"], got[1].headers["traceparent"],
        "a span per attempt"
    );
    let trace = |r: &Received| {
        r.headers["traceparent"]
            .split('-')
            .nth(1)
            .map(str::to_string)
    };
    assert_eq!(trace(&got[0]), trace(&got[2]), "one trace per task");
    assert_eq!(got[0].headers["x-correlation-id"], done.correlation_id);

    let steps = store.step_list(task.id).await.unwrap();
    let reserve = steps.iter().find(|s| s.name == "reserve").unwrap();
    assert_eq!(reserve.status, StepState::Complete);
    assert_eq!(reserve.attempts, 2);
    assert_eq!(
        reserve.results,
        Some(json!({"status": 200, "headers": {}, "body": {"reservation": "res-9"}}))
    );
    // The failed attempt is recorded on the step's history.
    let transitions = store.step_transitions(reserve.id).await.unwrap();
    let failed = transitions
        .iter()
        .find(|t| t.to_state == "error")
        .expect("an error transition");
    let error = &failed.metadata["error"];
    assert_eq!(error["code"], "HTTP_503");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("HTTP 503 Service Unavailable: warming up"),
        "{message}"
    );
    let confirm = steps.iter().find(|s| s.name == "confirm").unwrap();
    assert_eq!(
        confirm.results.as_ref().map(|r| r["body"].clone()),
        Some(json!({"confirmed": true}))
    );
}

/// The example in docs/HANDLERS.md is a valid template and a valid config
/// for every `http` step, and its placeholders render against a matching task.
#[test]
fn the_documented_example_is_valid() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/HANDLERS.md"
    ))
    .unwrap();
    let section = &doc[doc.find("## `http`").expect("an http section")..];
    let start = section.find("```yaml\n").expect("a yaml example") + "```yaml\n".len();
    let yaml = &section[start..start + section[start..].find("```").unwrap()];
    let template = common::template(yaml);
    assert_eq!(template.steps.len(), 2);
    let mut s = step(Value::Null);
    s.context = json!({"order_id": 42, "amount_cents": 1999, "items": ["book"], "customer": {"id": "c-1", "email": "a@b.c"}});
    s.parent_results.insert(
        "charge".into(),
        json!({"status": 201, "headers": {}, "body": {"receipt_id": "rc-1"}}),
    );
    for st in &template.steps {
        assert_eq!(st.handler.kind, "http");
        let cfg = tasker_engine::handlers::HttpConfig::from_value(&st.handler.config).unwrap();
        let scope = tasker_engine::handlers::http::template::Scope::new(&s);
        scope
            .render_str(
                &cfg.url,
                tasker_engine::handlers::http::template::Encoding::Url,
            )
            .unwrap();
        if let Some(body) = &cfg.body {
            let body = scope.render_json(body).unwrap();
            if st.name == "charge" {
                assert_eq!(
                    body,
                    json!({"amount_cents": 1999, "items": ["book"], "reference": "order-42"})
                );
            }
        }
    }
}
