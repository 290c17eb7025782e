//! REST API figures for docs/PERFORMANCE.md ("REST API"). Not a timed test:
//! it prints percentiles and checks nothing.
//!
//! ```text
//! cargo bench -p tasker-server --bench api
//! ```
//!
//! 1. Handler discovery with 1,000 registered templates (in-process requests
//!    through the whole router and middleware, `oneshot`).
//! 2. Dependency analysis of 1,000-step tasks: the pure computation on three
//!    shapes, the cached lookup, and the whole `GET /tasks/{id}?include_dependencies=true`.
//! 3. Liveness and readiness on both backends.
//! 4. Authentication: the latency a request gains with an HS256 JWT or an
//!    API key (cached), against the same request with `auth.mode = none`.
//! 5. Task creation through HTTP (a real socket, keep-alive, one request at a
//!    time) on SQLite and on PostgreSQL (a fresh database from
//!    `TASKER_TEST_PG_URL`, as in the tests).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use axum::body::Body;
use axum::http::Request;
use chrono::Utc;
use http_body_util::BodyExt;
use std::time::{Duration, Instant};
use tasker_core::StepState;
use tasker_core::analysis::{DependencyGraphWeights, StepSnapshot, analyze};
use tasker_core::template::parse_template;
use tasker_engine::{TaskRequest, Tasker};
use tasker_server::cache::{AnalysisCache, Lookup, snapshots};
use tasker_server::{AppState, ServerConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tower::ServiceExt;
use uuid::Uuid;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i.min(v.len() - 1)]
}

fn report(label: &str, mut ms: Vec<f64>) {
    let n = ms.len();
    println!(
        "{label}: n={n} p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms",
        pct(&mut ms, 50.0),
        pct(&mut ms, 95.0),
        pct(&mut ms, 99.0)
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "tasker-server bench ({} cores)",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        );
        // `cargo bench -p tasker-server --bench api -- creation` runs one group
        // (handlers, analysis, stored, health, creation).
        let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
        let run = |group: &str| only.as_deref().is_none_or(|o| group == o);
        if run("handlers") {
            handler_discovery().await;
        }
        if run("analysis") {
            analysis().await;
        }
        if run("stored") {
            stored_analysis("sqlite", common::sqlite().await).await;
            stored_analysis("postgres", common::postgres().await).await;
        }
        if run("health") {
            health("sqlite", common::sqlite().await).await;
            health("postgres", common::postgres().await).await;
        }
        if run("auth") {
            auth_overhead().await;
        }
        if run("creation") {
            creation("sqlite", common::sqlite().await).await;
            creation("postgres", common::postgres().await).await;
        }
    });
}

async fn get(app: &axum::Router, uri: &str) -> f64 {
    let t = Instant::now();
    let res = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(
        status.is_success(),
        "{uri}: {status}: {}",
        String::from_utf8_lossy(&body)
    );
    t.elapsed().as_secs_f64() * 1000.0
}

/// 1,000 templates: 10 namespaces × 50 names × 2 versions, 5 steps each.
async fn handler_discovery() {
    let mut templates = Vec::new();
    for ns in 0..10 {
        for name in 0..50 {
            for version in ["1.0.0", "1.10.0"] {
                let mut y = format!(
                    "name: t{name}\nnamespace: ns{ns}\nversion: {version}\nstep_templates:\n"
                );
                for s in 0..5 {
                    y.push_str(&format!("  - name: s{s}\n    handler: {{ kind: noop }}\n"));
                    if s > 0 {
                        y.push_str(&format!("    depends_on_step: s{}\n", s - 1));
                    }
                }
                templates.push(parse_template("<bench>", &y, None).unwrap());
            }
        }
    }
    let db = common::sqlite().await;
    let mut b = Tasker::builder(db.store.clone());
    for t in templates {
        b = b.template(t);
    }
    let tasker = b.build().unwrap();
    assert_eq!(tasker.with_registry(|r| r.len()), 1000);
    let app = tasker_server::app(AppState::new(tasker, ServerConfig::default()));
    for (label, uri) in [
        (
            "handlers: GET /tasker/handlers (10 namespaces, 1,000 templates)",
            "/tasker/handlers",
        ),
        (
            "handlers: GET /tasker/handlers/ns3 (50 names x 2 versions)",
            "/tasker/handlers/ns3",
        ),
        (
            "handlers: GET /tasker/handlers/ns3/t7 (template + graph)",
            "/tasker/handlers/ns3/t7",
        ),
    ] {
        for _ in 0..200 {
            get(&app, uri).await;
        }
        let mut v = Vec::new();
        for _ in 0..2000 {
            v.push(get(&app, uri).await);
        }
        report(label, v);
    }
}

fn snap(i: usize, state: StepState, attempts: u32, parents: Vec<usize>) -> StepSnapshot {
    StepSnapshot {
        id: Uuid::from_u128(i as u128 + 1),
        name: format!("s{i}"),
        state,
        attempts,
        max_attempts: 3,
        retryable: true,
        ready_at: (state == StepState::Pending).then(Utc::now),
        parents,
    }
}

/// Three 1,000-step shapes with a mix of states.
fn shapes() -> Vec<(&'static str, Vec<StepSnapshot>)> {
    // Fan-out / fan-in: root done, middles partly done / running / failed.
    let mut fan = vec![snap(0, StepState::Complete, 1, vec![])];
    for i in 1..999 {
        let state = match i % 10 {
            0..=5 => StepState::Complete,
            6 | 7 => StepState::InProgress,
            8 => StepState::Pending,
            _ => StepState::Error,
        };
        let attempts = if state == StepState::Error { 3 } else { 1 };
        fan.push(snap(i, state, attempts, vec![0]));
    }
    fan.push(snap(999, StepState::Pending, 0, (1..999).collect()));
    // Chain with a failure in the middle.
    let chain: Vec<StepSnapshot> = (0..1000)
        .map(|i| {
            let state = match i {
                0..500 => StepState::Complete,
                500 => StepState::Error,
                _ => StepState::Pending,
            };
            snap(
                i,
                state,
                u32::from(i <= 500) * 3,
                if i == 0 { vec![] } else { vec![i - 1] },
            )
        })
        .collect();
    // 20 layers of 50; each step depends on 3 steps of the layer above
    // (astronomically many paths: the dynamic-programming branch).
    let mut layered = Vec::new();
    for layer in 0..20 {
        for k in 0..50 {
            let i = layer * 50 + k;
            let parents = if layer == 0 {
                vec![]
            } else {
                let base = (layer - 1) * 50;
                vec![base + k, base + (k + 7) % 50, base + (k + 19) % 50]
            };
            let state = if layer < 8 {
                StepState::Complete
            } else {
                StepState::Pending
            };
            layered.push(snap(i, state, u32::from(layer < 8), parents));
        }
    }
    layered[8 * 50 + 3].state = StepState::Error;
    vec![
        ("fan-out/fan-in", fan),
        ("chain", chain),
        ("layered 20x50 (3 parents each)", layered),
    ]
}

async fn analysis() {
    let w = DependencyGraphWeights::default();
    for (label, steps) in shapes() {
        let now = Utc::now();
        let mut v = Vec::new();
        for i in 0..60 {
            let t = Instant::now();
            let a = analyze(&steps, now, &w).unwrap();
            if i >= 10 {
                v.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            std::hint::black_box(a);
        }
        report(
            &format!("analysis: uncached analyze(), 1,000-step {label}"),
            v,
        );
    }
}

/// A stored 1,000-step fan-out/fan-in task: rows → snapshots → analysis,
/// the cached path, and the whole HTTP request.
async fn stored_analysis(backend: &str, db: common::Db) {
    let w = DependencyGraphWeights::default();
    let middle = 998;
    let mut y = String::from(
        "name: fanout\nnamespace: bench\nstep_templates:\n  - name: root\n    handler: { kind: noop }\n",
    );
    for i in 0..middle {
        y.push_str(&format!(
            "  - name: m{i}\n    depends_on_step: root\n    handler: {{ kind: noop }}\n"
        ));
    }
    y.push_str("  - name: join\n    handler: { kind: noop }\n    depends_on_steps: [");
    y.push_str(
        &(0..middle)
            .map(|i| format!("m{i}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    y.push_str("]\n");
    let tasker = Tasker::builder(db.store.clone())
        .template(parse_template("<bench>", &y, None).unwrap())
        .build()
        .unwrap();
    let task = tasker
        .create_task(TaskRequest::new("bench", "fanout"))
        .await
        .unwrap();
    let rows = tasker.task_steps(task.id).await.unwrap();
    assert_eq!(rows.len(), 1000);
    let now = tasker.now();
    let mut v = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let a = analyze(&snapshots(&rows).unwrap(), now, &w).unwrap();
        v.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(a);
    }
    report(
        &format!(
            "stored ({backend}): uncached, stored 1,000-step fan-out task (rows -> snapshots -> analyze)"
        ),
        v,
    );
    let cache = AnalysisCache::new(db.store.as_ref(), 100, Duration::from_secs(300));
    let (_, first) = cache.get_or_compute(task.id, &rows, now, &w).await.unwrap();
    assert_eq!(first, Lookup::Miss);
    let mut v = Vec::new();
    for _ in 0..2000 {
        let t = Instant::now();
        let (a, hit) = cache.get_or_compute(task.id, &rows, now, &w).await.unwrap();
        v.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(hit, Lookup::Hit);
        std::hint::black_box(a);
    }
    report(
        &format!("stored ({backend}): cached lookup (fingerprint of 1,000 rows + cache hit)"),
        v,
    );

    let mut v = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let rows = tasker.task_steps(task.id).await.unwrap();
        v.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(rows);
    }
    report(
        &format!("stored ({backend}): reading the 1,000 step rows (Store::step_list)"),
        v,
    );
    let mut v = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let views = tasker_server::views::StepView::all(&rows, now);
        let json = serde_json::to_vec(&views).unwrap();
        v.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(json);
    }
    report(
        &format!("stored ({backend}): 1,000 step views built and serialised"),
        v,
    );
    let (a, _) = cache.get_or_compute(task.id, &rows, now, &w).await.unwrap();
    let mut v = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let json = serde_json::to_vec(a.as_ref()).unwrap();
        v.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(json);
    }
    report(
        &format!("stored ({backend}): serialising the 1,000-step analysis"),
        v,
    );
    let state = AppState::new(tasker.clone(), ServerConfig::default());
    let app = tasker_server::app(state);
    let uri = format!("/tasker/tasks/{}?include_dependencies=true", task.id);
    let plain = format!("/tasker/tasks/{}", task.id);
    let mut v = Vec::new();
    for _ in 0..100 {
        v.push(get(&app, &plain).await);
    }
    report(
        &format!("stored ({backend}): GET /tasker/tasks/{{id}} (1,000 steps, no analysis)"),
        v,
    );
    let mut v = Vec::new();
    for _ in 0..100 {
        v.push(get(&app, &uri).await);
    }
    report(
        &format!(
            "stored ({backend}): GET /tasker/tasks/{{id}}?include_dependencies=true (1,000 steps, cached)"
        ),
        v,
    );

    // A freshly created PostgreSQL database has no planner statistics until
    // autovacuum's ANALYZE runs; measure again in the steady state.
    if let common::Guard::Postgres(pg) = &db.guard {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&pg.url).await.unwrap();
        sqlx::query("ANALYZE").execute(&mut conn).await.unwrap();
        let _ = conn.close().await;
        let mut v = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            let rows = tasker.task_steps(task.id).await.unwrap();
            v.push(t.elapsed().as_secs_f64() * 1000.0);
            std::hint::black_box(rows);
        }
        report(
            &format!(
                "stored ({backend}, after ANALYZE): reading the 1,000 step rows (Store::step_list)"
            ),
            v,
        );
        let mut v = Vec::new();
        for _ in 0..100 {
            v.push(get(&app, &uri).await);
        }
        report(
            &format!(
                "stored ({backend}, after ANALYZE): GET /tasker/tasks/{{id}}?include_dependencies=true (1,000 steps, cached)"
            ),
            v,
        );
    }
}

/// Liveness and readiness (database ping + migrations + engine probe).
async fn health(backend: &str, db: common::Db) {
    let h = common::Harness::new(db).await;
    // As after `tasker serve` starts: the state checks the migrations once in
    // the background; wait for that before measuring.
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.get("/tasker/health/ready").await.status != 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for uri in ["/tasker/health/live", "/tasker/health/ready"] {
        for _ in 0..100 {
            get(&h.app, uri).await;
        }
        let mut v = Vec::new();
        for _ in 0..1000 {
            v.push(get(&h.app, uri).await);
        }
        report(&format!("health ({backend}): GET {uri}"), v);
    }
}

/// A minimal HTTP/1.1 client over one keep-alive connection, so the figures
/// are the server's, not a client library's.
struct Client {
    conn: BufReader<tokio::net::TcpStream>,
}

impl Client {
    async fn post(&mut self, path: &str, body: &str) -> u16 {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        // One write: a head and a body in two segments would meet Nagle's
        // algorithm and the peer's delayed ACK (a 40 ms stall per request).
        let mut msg = head.into_bytes();
        msg.extend_from_slice(body.as_bytes());
        self.conn.get_mut().write_all(&msg).await.unwrap();
        let mut line = String::new();
        self.conn.read_line(&mut line).await.unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut len = 0usize;
        loop {
            line.clear();
            self.conn.read_line(&mut line).await.unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap();
            }
        }
        let mut buf = vec![0u8; len];
        self.conn.read_exact(&mut buf).await.unwrap();
        status
    }
}

async fn creation(backend: &str, db: common::Db) {
    let h = common::Harness::new(db).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tasker_server::serve(listener, h.state.clone(), async {
        let _ = rx.await;
    }));
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut client = Client {
        conn: BufReader::new(stream),
    };
    let body = |i: usize| {
        format!(
            r#"{{"task": {{"name": "checkout", "namespace": "shop", "context": {{"order_id": {}}}}}}}"#,
            i + 1
        )
    };
    for i in 0..100 {
        assert_eq!(client.post("/tasker/tasks", &body(i)).await, 201);
    }
    let mut v = Vec::new();
    for i in 0..1000 {
        let t = Instant::now();
        let status = client.post("/tasker/tasks", &body(i)).await;
        v.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 201);
    }
    report(
        &format!(
            "creation: POST /tasker/tasks through HTTP (4-step template with a context schema), {backend}"
        ),
        v,
    );
    let _ = tx.send(());
    let _ = server.await;
}

/// `GET /tasker/handlers` (in memory) with no authentication, an HS256 JWT
/// and an API key (cached after the first request), interleaved so drift
/// hits all three alike; the added latency is the difference of the p50s.
async fn auth_overhead() {
    use tasker_auth::jwt::{JwtSettings, JwtVerifier, KeyMaterial};
    use tasker_server::auth::{AuthSettings, JwtKeys};
    const SECRET: &[u8] = b"bench-secret-0123456789abcdef-0123456789";
    let db = common::sqlite().await;
    let tasker = Tasker::builder(db.store.clone())
        .template(parse_template("<checkout>", common::CHECKOUT, None).unwrap())
        .build()
        .unwrap();
    let state = AppState::new(tasker.clone(), ServerConfig::default());
    let open = tasker_server::app(state.clone());
    let verifier = JwtVerifier::new(JwtSettings {
        keys: KeyMaterial::Secret(SECRET),
        algorithm: None,
        leeway_seconds: 30,
        issuer: Some("bench"),
        audience: Some("tasker"),
        permissions_claim: "permissions",
        roles_claim: "roles",
        roles: Default::default(),
    })
    .unwrap();
    let secured = tasker_server::app(state.with_auth(AuthSettings {
        jwt: Some(JwtKeys::Fixed(verifier)),
        api_keys: true,
        key_cache_ttl: Duration::from_secs(5),
        status_requires_auth: true,
        docs_require_auth: false,
    }));
    let now = Utc::now().timestamp();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": "bench", "iss": "bench", "aud": "tasker", "iat": now,
            "exp": now + 3600, "permissions": ["tasker.handler:index", "tasker.task:*"]}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let minted = tasker_auth::apikey::mint().unwrap();
    db.store
        .api_key_create(tasker_store::NewApiKey {
            id: minted.id,
            name: "bench".into(),
            hash: minted.hash.clone(),
            permissions: vec!["tasker.handler:index".into()],
            created_at: Utc::now(),
            expires_at: None,
        })
        .await
        .unwrap();
    let send = |app: &axum::Router, header: Option<(&'static str, String)>| {
        let app = app.clone();
        async move {
            let mut b = Request::get("/tasker/handlers");
            if let Some((k, v)) = header {
                b = b.header(k, v);
            }
            let t = Instant::now();
            let res = app.oneshot(b.body(Body::empty()).unwrap()).await.unwrap();
            let status = res.status();
            let _ = res.into_body().collect().await.unwrap();
            assert!(status.is_success(), "{status}");
            t.elapsed().as_secs_f64() * 1_000_000.0
        }
    };
    let jwt = || Some(("authorization", format!("Bearer {token}")));
    let key = || Some(("x-api-key", minted.key.clone()));
    for _ in 0..2_000 {
        send(&open, None).await;
        send(&secured, jwt()).await;
        send(&secured, key()).await;
    }
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..20_000 {
        a.push(send(&open, None).await);
        b.push(send(&secured, jwt()).await);
        c.push(send(&secured, key()).await);
    }
    let (pa, pb, pc) = (pct(&mut a, 50.0), pct(&mut b, 50.0), pct(&mut c, 50.0));
    println!(
        "auth: GET /tasker/handlers p50: none {pa:.1} µs, HS256 JWT {pb:.1} µs, API key {pc:.1} µs (n={})",
        a.len()
    );
    println!(
        "auth: added p50 latency per request: HS256 JWT {:.1} µs, API key (cached) {:.1} µs",
        pb - pa,
        pc - pa
    );
}
