//! Test support: a store on either backend, an app built over it, and a
//! small client that sends requests with `tower::ServiceExt::oneshot`.
//!
//! PostgreSQL tests get a fresh database each, created through the
//! maintenance URL in `TASKER_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and dropped afterwards,
//! the same approach as `crates/store-postgres/tests/common`.

#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

pub mod openapi;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tasker_core::BackoffPolicy;
use tasker_core::template::parse_template;
use tasker_engine::{EngineConfig, StepContext, StepError, StepHandler, Tasker};
use tasker_server::{AppState, ServerConfig};
use tasker_store::Store;
use tower::ServiceExt;
use uuid::Uuid;

pub use tasker_test_support::db::{Db, Guard, postgres, sqlite};

/// A handler kind that always fails permanently.
pub struct Fail;

#[async_trait::async_trait]
impl StepHandler for Fail {
    async fn call(&self, step: &StepContext) -> Result<Value, StepError> {
        Err(StepError::permanent(format!("{} always fails", step.step_name)).with_code("BOOM"))
    }
}

/// `shop.checkout` 1.0.0: validate → {charge, reserve} → ship (depends_on_steps).
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

/// `ops.failing` 1.0.0: ok → boom (fails permanently, one attempt).
pub const FAILING: &str = r#"
name: failing
namespace: ops
version: 1.0.0
step_templates:
  - name: ok
    handler: { kind: noop }
  - name: boom
    depends_on_step: ok
    default_retry_limit: 1
    handler: { kind: fail }
"#;

/// `ops.report` at `version` (one noop step).
pub fn report(version: &str) -> String {
    format!(
        "name: report\nnamespace: ops\nversion: {version}\nstep_templates:\n  - name: only\n    handler: {{ kind: noop }}\n"
    )
}

/// Engine settings for tests: no backoff delay, short leases.
pub fn engine_config() -> EngineConfig {
    EngineConfig {
        backoff: BackoffPolicy::immediate(),
        lease_duration: Duration::from_secs(5),
        heartbeat_interval: Duration::from_millis(500),
        poll_interval: Duration::from_millis(100),
        ..EngineConfig::default()
    }
}

/// The app over a store, with the test templates.
pub struct Harness {
    pub app: Router,
    pub tasker: Tasker,
    pub state: AppState,
    pub db: Db,
}

/// A response, its body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Resp {
    /// `error.code` of an error response.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    /// `error.details.field` of an error response.
    pub fn field(&self) -> &str {
        self.json["error"]["details"]["field"]
            .as_str()
            .unwrap_or("")
    }

    /// Asserts the status and the error envelope shape.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> &Self {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(self.code(), code, "{}", self.text);
        assert!(self.json["error"]["message"].is_string(), "{}", self.text);
        assert!(self.json["error"]["details"].is_object(), "{}", self.text);
        self
    }
}

impl Harness {
    pub async fn new(db: Db) -> Harness {
        Self::with(db, engine_config(), ServerConfig::default()).await
    }

    pub async fn with(db: Db, engine: EngineConfig, server: ServerConfig) -> Harness {
        Self::with_clock(db, engine, server, None).await
    }

    /// [`Harness::with`], the engine reading time from `clock`.
    pub async fn with_clock(
        db: Db,
        engine: EngineConfig,
        server: ServerConfig,
        clock: Option<Arc<dyn tasker_engine::clock::Clock>>,
    ) -> Harness {
        let mut templates = vec![
            parse_template("<checkout>", CHECKOUT, None).unwrap(),
            parse_template("<failing>", FAILING, None).unwrap(),
        ];
        for v in ["0.9.0", "0.10.0", "0.2.0"] {
            templates.push(parse_template("<report>", &report(v), None).unwrap());
        }
        let mut builder = Tasker::builder(db.store.clone())
            .config(engine)
            .handler("fail", Fail);
        if let Some(clock) = clock {
            builder = builder.clock(clock);
        }
        for t in templates {
            builder = builder.template(t);
        }
        let tasker = builder.build().unwrap();
        let state = AppState::new(tasker.clone(), server);
        Harness {
            app: tasker_server::app(state.clone()),
            tasker,
            state,
            db,
        }
    }

    /// Rebuilds the app over a new state (e.g. with probes).
    pub fn with_state(mut self, state: AppState) -> Harness {
        self.app = tasker_server::app(state.clone());
        self.state = state;
        self
    }

    /// Sends `req` through the whole app, and checks the response against
    /// the OpenAPI document (declared status, body matching its schema).
    pub async fn request(&self, req: Request<Body>) -> Resp {
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let resp = self.request_unchecked(req).await;
        let content_type = resp
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        openapi::check_response(
            &method,
            &path,
            resp.status.as_u16(),
            content_type,
            &resp.json,
        );
        resp
    }

    /// Sends `req` through the whole app, without the document check.
    pub async fn request_unchecked(&self, req: Request<Body>) -> Resp {
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            json,
            text,
        }
    }

    pub async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.request(b.body(body).unwrap()).await
    }

    pub async fn raw(&self, method: Method, uri: &str, content_type: &str, body: &str) -> Resp {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", content_type)
            .body(Body::from(body.to_string()))
            .unwrap();
        self.request(req).await
    }

    pub async fn get(&self, uri: &str) -> Resp {
        self.call(Method::GET, uri, None).await
    }

    pub async fn post(&self, uri: &str, body: Value) -> Resp {
        self.call(Method::POST, uri, Some(body)).await
    }

    pub async fn patch(&self, uri: &str, body: Value) -> Resp {
        self.call(Method::PATCH, uri, Some(body)).await
    }

    pub async fn delete(&self, uri: &str) -> Resp {
        self.call(Method::DELETE, uri, None).await
    }

    /// Creates a `shop.checkout` task and returns its id.
    pub async fn checkout(&self, order_id: i64) -> Uuid {
        let r = self
            .post(
                "/tasker/tasks",
                serde_json::json!({"task": {"name": "checkout", "namespace": "shop", "context": {"order_id": order_id}}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json["task"]["task_id"].as_str().unwrap().parse().unwrap()
    }

    /// Creates an `ops.failing` task, runs the engine until it ends in
    /// `error`, stops the engine, and returns the task id.
    pub async fn failed_task(&self) -> Uuid {
        let r = self
            .post(
                "/tasker/tasks",
                serde_json::json!({"name": "failing", "namespace": "ops"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let id: Uuid = r.json["task"]["task_id"].as_str().unwrap().parse().unwrap();
        let worker = self.tasker.start();
        let done = self
            .tasker
            .wait_for_task(id, Duration::from_secs(30))
            .await
            .unwrap();
        worker.shutdown().await;
        assert_eq!(done.status, tasker_core::TaskState::Error);
        id
    }

    /// The id of the step called `name` in a task.
    pub async fn step_id(&self, task: Uuid, name: &str) -> Uuid {
        self.tasker
            .task_steps(task)
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap()
            .id
    }
}

/// Runs each listed `async fn(Db)` on a temp SQLite file and on a fresh
/// PostgreSQL database.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::postgres().await).await;
                }
            )*
        }
    };
}
