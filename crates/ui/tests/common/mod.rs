//! Test support: a store on either backend, the whole server (API and
//! dashboard, as `tasker serve` mounts them) on a real TCP port with the
//! engine running, and in-process requests for the non-browser tests.

#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tasker_core::BackoffPolicy;
use tasker_core::template::parse_template;
use tasker_engine::{EngineConfig, Tasker, WorkerHandle};
use tasker_server::auth::AuthSettings;
use tasker_server::{AppState, ServerConfig};
use tasker_store::Store;
use tower::ServiceExt;

pub use tasker_test_support::db::{Db, Guard, postgres, sqlite};

/// `shop.checkout` 1.0.0: validate → {charge, reserve} → ship, with a schema.
pub const CHECKOUT: &str = r#"
name: checkout
namespace: shop
version: 1.0.0
description: Validate, then charge and reserve in parallel, then ship.
context_schema:
  type: object
  required: [order_id]
  properties:
    order_id: { type: integer, minimum: 1 }
step_templates:
  - name: validate
    handler: { kind: noop }
  - name: charge
    depends_on_step: validate
    handler: { kind: noop }
  - name: reserve
    depends_on_step: validate
    handler: { kind: noop }
  - name: ship
    depends_on_steps: [charge, reserve]
    handler: { kind: noop }
"#;

/// `ops.flaky` 1.0.0: prepare → flaky → finish. `flaky` is a `command`
/// step that fails on its first run (writing markup to stderr, which ends
/// up in its error message) and succeeds once `marker` exists.
pub fn flaky(marker: &std::path::Path) -> String {
    format!(
        r#"
name: flaky
namespace: ops
version: 1.0.0
step_templates:
  - name: prepare
    handler: {{ kind: noop }}
  - name: flaky
    depends_on_step: prepare
    default_retry_limit: 1
    handler:
      kind: command
      config:
        program: sh
        args:
          - -c
          - 'if [ -f "$MARKER" ]; then echo "{{\"fixed\": true}}"; else touch "$MARKER"; echo "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>" >&2; exit 3; fi'
        env: {{ MARKER: "{}" }}
  - name: finish
    depends_on_step: flaky
    handler: {{ kind: noop }}
"#,
        marker.display()
    )
}

/// `ops.waiting` 1.0.0: a step left to external workers (never runs here).
pub const WAITING: &str = r#"
name: waiting
namespace: ops
version: 1.0.0
step_templates:
  - name: outside
    handler: { kind: external }
  - name: after
    depends_on_step: outside
    handler: { kind: noop }
"#;

/// `bench.wide` 1.0.0: root → `width - 2` parallel steps → join
/// (left to external workers, so it stays as created).
pub fn wide(width: usize) -> String {
    let middle = width.saturating_sub(2).max(1);
    let mut y = String::from(
        "name: wide\nnamespace: bench\nversion: 1.0.0\nstep_templates:\n  - name: root\n    handler: { kind: external }\n",
    );
    for i in 0..middle {
        y.push_str(&format!(
            "  - name: m{i}\n    depends_on_step: root\n    handler: {{ kind: external }}\n"
        ));
    }
    y.push_str("  - name: join\n    handler: { kind: external }\n    depends_on_steps: [");
    y.push_str(
        &(0..middle)
            .map(|i| format!("m{i}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    y.push_str("]\n");
    y
}

/// Engine settings for tests: no backoff delay, short polls, and the
/// `external` kind left to external workers.
pub fn engine_config() -> EngineConfig {
    EngineConfig {
        backoff: BackoffPolicy::immediate(),
        lease_duration: Duration::from_secs(5),
        heartbeat_interval: Duration::from_millis(500),
        poll_interval: Duration::from_millis(100),
        exclude_kinds: vec!["external".into()],
        ..EngineConfig::default()
    }
}

/// The service over `db` with `templates`.
pub fn tasker(db: &Db, templates: &[String]) -> Tasker {
    tasker_on(db.store.clone(), templates)
}

/// The service over `store` with `templates`.
pub fn tasker_on(store: Arc<dyn Store>, templates: &[String]) -> Tasker {
    let mut b = Tasker::builder(store).config(engine_config());
    for t in templates {
        b = b.template(parse_template("<test>", t, None).unwrap());
    }
    b.build().unwrap()
}

/// The whole server as `tasker serve` builds it (API + dashboard).
pub fn app(state: AppState) -> Router {
    tasker_server::app_with(state, tasker_ui::routes())
}

/// The state over `tasker`, with `auth` when given.
pub fn state(tasker: Tasker, auth: Option<AuthSettings>) -> AppState {
    let s = AppState::new(tasker, ServerConfig::default());
    match auth {
        Some(a) => s.with_auth(a),
        None => s,
    }
}

/// A server on a real port, the engine running in the same process.
pub struct Server {
    pub addr: SocketAddr,
    pub tasker: Tasker,
    pub state: AppState,
    pub db: Db,
    worker: Option<WorkerHandle>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    /// Starts the server (and the engine when `run_engine`).
    pub async fn start(db: Db, templates: &[String], run_engine: bool) -> Server {
        let tasker = tasker(&db, templates);
        let state = state(tasker.clone(), None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let s = state.clone();
        tokio::spawn(async move {
            tasker_server::serve_with(listener, s, tasker_ui::routes(), async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let worker = run_engine.then(|| tasker.start());
        Server {
            addr,
            tasker,
            state,
            db,
            worker,
            stop: Some(tx),
        }
    }

    /// `http://127.0.0.1:port/tasker/ui` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/tasker/ui{path}", self.addr)
    }

    /// Stops the engine and the server.
    pub async fn stop(mut self) {
        if let Some(w) = self.worker.take() {
            w.shutdown().await;
        }
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// An answer read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

/// Sends one request through `app` (no socket).
pub async fn send(
    app: &Router,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let res = app
        .clone()
        .oneshot(b.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// The CSRF token a page's forms carry (`name="_csrf" value="..."`).
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"_csrf\" value=\"").expect("a CSRF field");
    let rest = &html[at + 20..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// The `name=value` of each `Set-Cookie`.
pub fn cookies_of(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").to_string())
        .collect()
}
