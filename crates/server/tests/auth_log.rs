//! The caller's identity is on the request's span, so the request log line
//! (and every event of the request) says who made it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::Request;
use common::Harness;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tasker_auth::jwt::{JwtSettings, JwtVerifier, KeyMaterial};
use tasker_server::auth::{AuthSettings, JwtKeys};

const SECRET: &[u8] = b"log-test-secret-0123456789abcdef-0123";

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

#[tokio::test]
async fn the_request_line_names_the_caller() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let h = Harness::new(common::sqlite().await).await;
    let verifier = JwtVerifier::new(JwtSettings {
        keys: KeyMaterial::Secret(SECRET),
        algorithm: None,
        leeway_seconds: 0,
        issuer: None,
        audience: None,
        permissions_claim: "permissions",
        roles_claim: "roles",
        roles: Default::default(),
    })
    .unwrap();
    let state = h.state.clone().with_auth(AuthSettings {
        jwt: Some(JwtKeys::Fixed(verifier)),
        api_keys: false,
        key_cache_ttl: std::time::Duration::from_secs(5),
        status_requires_auth: true,
        docs_require_auth: false,
    });
    let h = h.with_state(state);
    let now = h.tasker.now().timestamp();
    let token = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "carol", "exp": now + 60, "permissions": ["tasker.task:index"]}),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let req = Request::get("/tasker/tasks")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.request(req).await.status, 200);
    let lines: Vec<Value> = String::from_utf8_lossy(&capture.0.lock().unwrap())
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "request")
        .collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["span"]["identity"], "carol", "{:#}", lines[0]);
}
