//! JWT verification: what is accepted, and every bad token of issue 11
//! refused with a clear reason. The keys under `tests/keys/` are test-only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tasker_auth::jwt::{JwtSettings, JwtVerifier, KeyMaterial, Verified};
use tasker_auth::{Grant, Grants};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";
const NOW: i64 = 1_800_000_000;
const RSA_PRIVATE: &[u8] = include_bytes!("keys/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("keys/rsa_public.pem");
const ED_PRIVATE: &[u8] = include_bytes!("keys/ed_private.pem");
const ED_PUBLIC: &[u8] = include_bytes!("keys/ed_public.pem");

fn settings<'a>(keys: KeyMaterial<'a>, algorithm: Option<&'static str>) -> JwtSettings<'a> {
    let mut roles = BTreeMap::new();
    roles.insert(
        "operator".to_string(),
        Grants::new(vec![Grant::parse("tasker.task:*").unwrap()]),
    );
    JwtSettings {
        keys,
        algorithm,
        leeway_seconds: 30,
        issuer: Some("https://idp.example"),
        audience: Some("tasker"),
        permissions_claim: "permissions",
        roles_claim: "roles",
        roles,
    }
}

fn hs() -> JwtVerifier {
    JwtVerifier::new(settings(KeyMaterial::Secret(SECRET), None)).unwrap()
}

fn claims() -> Value {
    json!({
        "sub": "alice",
        "iss": "https://idp.example",
        "aud": "tasker",
        "iat": NOW - 10,
        "exp": NOW + 3600,
        "permissions": ["tasker.task:index"],
    })
}

fn with(patch: Value) -> Value {
    let mut c = claims();
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn hs_token(c: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        c,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn accepted(v: &JwtVerifier, token: &str) -> tasker_auth::Identity {
    match v.verify(token, NOW) {
        Ok(Verified::Identity(id)) => id,
        other => panic!("refused: {other:?}"),
    }
}

fn refused(v: &JwtVerifier, token: &str) -> String {
    match v.verify(token, NOW) {
        Err(e) => e.to_string(),
        Ok(other) => panic!("accepted: {other:?}"),
    }
}

#[test]
fn a_good_token_gives_its_subject_permissions_scope_and_roles() {
    let id = accepted(
        &hs(),
        &hs_token(&with(json!({
            "scope": "openid tasker.handler:index",
            "roles": ["operator", "unknown-role"],
        }))),
    );
    assert_eq!(id.subject, "alice");
    assert!(id.grants.allows("tasker.task:index", None));
    assert!(id.grants.allows("tasker.handler:index", None));
    assert!(
        id.grants.allows("tasker.task:create", Some("x")),
        "role operator"
    );
    assert!(!id.grants.allows("tasker.workflow_step:show", None));
}

#[test]
fn time_claims_are_checked_with_the_leeway() {
    let v = hs();
    assert!(refused(&v, &hs_token(&with(json!({"exp": NOW - 31})))).contains("expired"));
    accepted(&v, &hs_token(&with(json!({"exp": NOW - 29}))));
    assert!(refused(&v, &hs_token(&with(json!({"nbf": NOW + 31})))).contains("not valid yet"));
    accepted(&v, &hs_token(&with(json!({"nbf": NOW + 29}))));
    assert!(refused(&v, &hs_token(&with(json!({"iat": NOW + 300})))).contains("future"));
    assert!(refused(&v, &hs_token(&with(json!({"exp": null})))).contains("`exp`"));
    assert!(refused(&v, &hs_token(&with(json!({"exp": "soon"})))).contains("exp"));
}

#[test]
fn issuer_audience_and_subject_are_required() {
    let v = hs();
    assert!(refused(&v, &hs_token(&with(json!({"iss": "https://evil"})))).contains("issuer"));
    assert!(refused(&v, &hs_token(&with(json!({"iss": null})))).contains("`iss`"));
    assert!(refused(&v, &hs_token(&with(json!({"aud": "other"})))).contains("audience"));
    accepted(&v, &hs_token(&with(json!({"aud": ["other", "tasker"]}))));
    assert!(refused(&v, &hs_token(&with(json!({"sub": null})))).contains("`sub`"));
}

#[test]
fn forged_truncated_and_oversized_tokens_are_refused() {
    let v = hs();
    let good = hs_token(&claims());
    let other_secret = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!!"),
    )
    .unwrap();
    assert!(refused(&v, &other_secret).contains("signature"));
    assert!(
        refused(&v, &good[..good.len() - 5]).contains("signature")
            || refused(&v, &good[..good.len() - 5]).contains("malformed")
    );
    assert!(refused(&v, &good[..good.len() / 2]).contains("malformed"));
    assert!(refused(&v, "not a token").contains("malformed"));
    let huge = format!("{good}{}", "A".repeat(100_000));
    assert!(refused(&v, &huge).contains("longer than 8192 bytes"));
    // A payload edited after signing.
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let edited = b64.encode(serde_json::to_vec(&with(json!({"permissions": ["*"]}))).unwrap());
    assert!(refused(&v, &format!("{}.{edited}.{}", parts[0], parts[2])).contains("signature"));
}

#[test]
fn alg_none_is_refused() {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64.encode(serde_json::to_vec(&claims()).unwrap());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        refused(&hs(), &token);
    }
}

#[test]
fn an_hs_token_signed_with_the_rsa_public_key_is_refused() {
    let v = JwtVerifier::new(settings(KeyMaterial::Pem(RSA_PUBLIC), Some("RS256"))).unwrap();
    let rs = encode(
        &Header::new(Algorithm::RS256),
        &claims(),
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
    )
    .unwrap();
    assert_eq!(accepted(&v, &rs).subject, "alice");
    // The classic confusion: the public key used as an HMAC secret.
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(RSA_PUBLIC),
    )
    .unwrap();
    assert!(refused(&v, &forged).contains("algorithm"));
}

#[test]
fn eddsa_keys_verify() {
    let v = JwtVerifier::new(settings(KeyMaterial::Pem(ED_PUBLIC), Some("EdDSA"))).unwrap();
    let t = encode(
        &Header::new(Algorithm::EdDSA),
        &claims(),
        &EncodingKey::from_ed_pem(ED_PRIVATE).unwrap(),
    )
    .unwrap();
    accepted(&v, &t);
}

#[test]
fn a_jwks_picks_the_key_by_kid_and_reports_unknown_kids() {
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(json!({
        "keys": [jwk_of_ed_public("k1")]
    }))
    .unwrap();
    let v = JwtVerifier::new(settings(KeyMaterial::Jwks(&set), None)).unwrap();
    let sign = |kid: &str| {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(kid.into());
        encode(
            &h,
            &claims(),
            &EncodingKey::from_ed_pem(ED_PRIVATE).unwrap(),
        )
        .unwrap()
    };
    accepted(&v, &sign("k1"));
    match v.verify(&sign("k2"), NOW) {
        Ok(Verified::UnknownKid(k)) => assert_eq!(k, "k2"),
        other => panic!("{other:?}"),
    }
    let no_kid = encode(
        &Header::new(Algorithm::EdDSA),
        &claims(),
        &EncodingKey::from_ed_pem(ED_PRIVATE).unwrap(),
    )
    .unwrap();
    assert!(refused(&v, &no_kid).contains("kid"));
}

/// The OKP JWK of `ed_public.pem` (its last 32 DER bytes are the key).
fn jwk_of_ed_public(kid: &str) -> Value {
    let pem = std::str::from_utf8(ED_PUBLIC).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der[der.len() - 32..]);
    json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"})
}

#[test]
fn weak_or_mismatched_settings_are_refused_at_start() {
    let short = JwtVerifier::new(settings(KeyMaterial::Secret(b"short"), None));
    assert!(
        short
            .err()
            .unwrap()
            .to_string()
            .contains("at least 32 bytes")
    );
    let wrong = JwtVerifier::new(settings(KeyMaterial::Secret(SECRET), Some("RS256")));
    assert!(wrong.is_err());
    let no_alg = JwtVerifier::new(settings(KeyMaterial::Pem(RSA_PUBLIC), None));
    assert!(
        no_alg
            .err()
            .unwrap()
            .to_string()
            .contains("needs its algorithm")
    );
    let garbage = JwtVerifier::new(settings(KeyMaterial::Pem(b"not a pem"), Some("RS256")));
    assert!(garbage.is_err());
}
