//! A JWKS URL: fetched at start, refreshed when a token names an unknown
//! `kid` (a rotation at the issuer), and at most once per interval, so
//! made-up `kid`s cannot make the server hammer the issuer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::routing::get;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tasker_auth::jwt::Verified;
use tasker_server::jwks::{JwksSource, JwtOptions};

const ED_PRIVATE: &[u8] = include_bytes!("../../auth/tests/keys/ed_private.pem");
const ED_PUBLIC: &[u8] = include_bytes!("../../auth/tests/keys/ed_public.pem");
const NOW: i64 = 1_800_000_000;

fn jwk(kid: &str) -> Value {
    let pem = std::str::from_utf8(ED_PUBLIC).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der[der.len() - 32..]);
    json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA"})
}

fn token(kid: &str) -> String {
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(kid.into());
    let claims = json!({"sub": "svc", "exp": NOW + 60, "permissions": ["tasker.task:index"]});
    encode(&h, &claims, &EncodingKey::from_ed_pem(ED_PRIVATE).unwrap()).unwrap()
}

#[tokio::test]
async fn unknown_kids_refresh_the_set_at_most_once_per_interval() {
    let served = Arc::new(Mutex::new(json!({"keys": [jwk("k1")]})));
    let fetches = Arc::new(AtomicUsize::new(0));
    let app = {
        let (served, fetches) = (served.clone(), fetches.clone());
        Router::new().route(
            "/jwks.json",
            get(move || {
                fetches.fetch_add(1, Ordering::SeqCst);
                let body = served.lock().unwrap().clone();
                async move { axum::Json(body) }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let options = JwtOptions {
        leeway_seconds: 0,
        issuer: None,
        audience: None,
        permissions_claim: "permissions".into(),
        roles_claim: "roles".into(),
        roles: Default::default(),
    };
    let source = JwksSource::connect_with_interval(&url, options, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert!(matches!(
        source.verify(&token("k1"), NOW).await,
        Ok(Verified::Identity(_))
    ));
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "a known kid fetches nothing"
    );

    // The issuer rotates to k2: the first token with k2 refreshes the set.
    *served.lock().unwrap() = json!({"keys": [jwk("k1"), jwk("k2")]});
    match source.verify(&token("k2"), NOW).await {
        Ok(Verified::Identity(id)) => assert_eq!(id.subject, "svc"),
        other => panic!("{other:?}"),
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 2);

    // Made-up kids within the interval: no more fetches, still refused.
    for kid in ["k3", "k4", "k5"] {
        assert!(matches!(
            source.verify(&token(kid), NOW).await,
            Ok(Verified::UnknownKid(_))
        ));
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_url_that_is_not_a_key_set_is_refused_at_start() {
    let app = Router::new().route("/jwks.json", get(|| async { "hello" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let options = JwtOptions {
        leeway_seconds: 0,
        issuer: None,
        audience: None,
        permissions_claim: "permissions".into(),
        roles_claim: "roles".into(),
        roles: Default::default(),
    };
    let err = JwksSource::connect(&url, options.clone())
        .await
        .err()
        .unwrap();
    assert!(err.contains("is not a key set"), "{err}");
    let err = JwksSource::connect("http://127.0.0.1:9/none", options)
        .await
        .err()
        .unwrap();
    assert!(err.contains("fetching the JWKS"), "{err}");
}
