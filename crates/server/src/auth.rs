//! Authentication and authorization of every request.
//!
//! Per request, nothing kept across requests: the credentials are read
//! (`Authorization: Bearer <JWT or tk_ key>` or `X-API-Key`), verified into an
//! [`Identity`], and the matched route's row of [`tasker_auth::table`] decides.
//! The identity goes into the request's extensions (handlers use it as the
//! task's default `initiator`, and to scope namespaces) and onto its span.
//!
//! - 401 `unauthenticated` (with `WWW-Authenticate: Bearer`) when credentials
//!   are missing or invalid; 403 `forbidden` naming the missing permission.
//! - A namespace-scoped grant (`perm@ns`) is checked against the task the
//!   route names (`{task_id}`, `{step_id}`, `{namespace}`); task creation and
//!   worker claims check the namespace of their body in the handler.
//! - API keys are looked up by id and cached for `key_cache_ttl` (a revoked
//!   key keeps working at most that long); the hash is compared in constant time.

use crate::error::{ApiError, ErrorKind};
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tasker_auth::jwt::{JwtVerifier, MAX_TOKEN_BYTES, Verified};
use tasker_auth::table::Access;
use tasker_auth::{Grant, Grants, Identity};
use tasker_store::{ApiKeyRow, StoreError};
use uuid::Uuid;

pub use crate::jwks::JwksSource;

/// Where JWT verification keys come from.
pub enum JwtKeys {
    /// Keys fixed at start (a secret, a PEM key, a JWKS file).
    Fixed(JwtVerifier),
    /// A JWKS URL, refreshed on an unknown `kid`.
    Url(JwksSource),
}

/// How requests are authenticated (built once at start).
pub struct AuthSettings {
    /// Bearer JWTs, when accepted.
    pub jwt: Option<JwtKeys>,
    /// Whether API keys are accepted.
    pub api_keys: bool,
    /// How long a looked-up key (or its absence) is remembered.
    pub key_cache_ttl: Duration,
    /// `/health/status` needs `tasker.health_status:index`.
    pub status_requires_auth: bool,
    /// The API description needs an authenticated caller.
    pub docs_require_auth: bool,
}

impl AuthSettings {
    /// No authentication: every request may do everything (`auth.mode = none`).
    pub fn none() -> Self {
        AuthSettings {
            jwt: None,
            api_keys: false,
            key_cache_ttl: Duration::from_secs(5),
            status_requires_auth: true,
            docs_require_auth: false,
        }
    }

    /// Whether any credentials are checked.
    pub fn enabled(&self) -> bool {
        self.jwt.is_some() || self.api_keys
    }
}

/// The settings and the key cache.
pub struct Authenticator {
    settings: AuthSettings,
    /// Key rows by id, with when they were read (the engine's clock, so a
    /// test's manual clock decides when an entry is stale, not wall time).
    keys: moka::future::Cache<Uuid, CachedKey>,
}

/// A cached key lookup: the row (`None`: no such key) and when it was read.
#[derive(Clone)]
struct CachedKey {
    row: Option<Arc<ApiKeyRow>>,
    read_at: chrono::DateTime<chrono::Utc>,
}

impl Authenticator {
    /// An authenticator for `settings`.
    pub fn new(settings: AuthSettings) -> Self {
        // Bounded by size only: staleness is judged against the engine's
        // clock at lookup (`key_identity`), and a stale entry is replaced.
        let keys = moka::future::Cache::builder().max_capacity(10_000).build();
        Authenticator { settings, keys }
    }

    /// The settings.
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }
}

/// 401 in the usual shape (the middleware adds `WWW-Authenticate`).
pub fn unauthenticated(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::Unauthorized, "unauthenticated", message)
}

/// 403 naming the permission (and namespace) that is missing.
pub fn forbidden(permission: &str, namespace: Option<&str>) -> ApiError {
    let what = match namespace {
        Some(ns) => format!("{permission}@{ns}"),
        None => permission.to_string(),
    };
    let mut e = ApiError::new(
        ErrorKind::Forbidden,
        "forbidden",
        format!("this request needs the permission `{what}`"),
    )
    .detail("permission", json!(permission));
    if let Some(ns) = namespace {
        e = e.detail("namespace", json!(ns));
    }
    e
}

/// The middleware (a route layer: the matched route is known).
pub async fn authorize(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    match check(&st, &mut req).await {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn check(st: &AppState, req: &mut Request) -> Result<(), ApiError> {
    let auth = st.authenticator();
    if !auth.settings.enabled() {
        req.extensions_mut().insert(Identity::anonymous());
        return Ok(());
    }
    let Some(template) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
    else {
        // No route matched: the fallback answers 404 without touching data.
        req.extensions_mut().insert(nobody());
        return Ok(());
    };
    let method = req.method().as_str().to_string();
    let access = match tasker_auth::table::access(&method, &template) {
        Some(a) => a,
        // The path exists for other methods only: the 405 fallback answers.
        None if tasker_auth::table::ROUTES
            .iter()
            .any(|(_, p, _)| *p == template) =>
        {
            req.extensions_mut().insert(nobody());
            return Ok(());
        }
        // A route without a row in the table is closed, never open.
        None => {
            return Err(forbidden(
                "(a route missing from the permission table)",
                None,
            ));
        }
    };
    let open = match access {
        Access::Public => true,
        Access::Status => !auth.settings.status_requires_auth,
        Access::Docs => !auth.settings.docs_require_auth,
        Access::Authenticated | Access::Permission(_) => false,
    };
    if open {
        req.extensions_mut().insert(nobody());
        return Ok(());
    }
    let permission = match access {
        Access::Public => None,
        Access::Status => Some("tasker.health_status:index"),
        Access::Docs | Access::Authenticated => None,
        Access::Permission(p) => Some(p),
    };
    let identity = identify(st, req.headers()).await?;
    tracing::Span::current().record("identity", identity.subject.as_str());
    if let Some(p) = permission
        && !identity.grants.allows(p, None)
    {
        // Only namespace-scoped grants are left: which namespace is this about?
        if identity
            .grants
            .namespaces_for(p)
            .is_none_or(|ns| ns.is_empty())
        {
            return Err(forbidden(p, None));
        }
        match route_namespace(st, &method, &template, req.uri()).await? {
            Scope::Namespace(ns) if identity.grants.allows(p, Some(&ns)) => {}
            Scope::Namespace(ns) => return Err(forbidden(p, Some(&ns))),
            // Creation and claims check their body's namespace in the handler.
            Scope::InBody => {}
            // The task does not exist: the handler answers 404.
            Scope::Missing => {}
            Scope::None => return Err(forbidden(p, None)),
        }
    }
    req.extensions_mut().insert(identity);
    Ok(())
}

/// The namespace a request is about.
enum Scope {
    Namespace(String),
    InBody,
    Missing,
    None,
}

async fn route_namespace(
    st: &AppState,
    method: &str,
    template: &str,
    uri: &axum::http::Uri,
) -> Result<Scope, ApiError> {
    // Only these two read the namespace from their body (and check it there).
    if method == "POST" && matches!(template, "/tasker/tasks" | "/tasker/workers/claim") {
        return Ok(Scope::InBody);
    }
    // The task list and the event feed are about one namespace only when
    // their filter names one (the handler applies the same filter);
    // without it, they span them all.
    if method == "GET"
        && matches!(
            template,
            "/tasker/tasks" | "/tasker/events" | "/tasker/events/stream"
        )
    {
        let filter = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .find(|(k, _)| k == "namespace")
            .map(|(_, v)| v.into_owned());
        return Ok(filter.map_or(Scope::None, Scope::Namespace));
    }
    let path = uri.path();
    let param = |name: &str| -> Option<String> {
        let wanted = format!("{{{name}}}");
        template
            .split('/')
            .zip(path.split('/'))
            .find(|(t, _)| *t == wanted)
            .map(|(_, v)| v.to_string())
    };
    if let Some(ns) = param("namespace") {
        let ns = percent_decode(&ns);
        return Ok(Scope::Namespace(ns));
    }
    let store = st.tasker().store();
    let task_id = if let Some(t) = param("task_id") {
        Uuid::try_parse(&t).ok()
    } else if let Some(s) = param("step_id") {
        match Uuid::try_parse(&s) {
            Ok(id) => match store.step_get(id).await {
                Ok(step) => Some(step.task_id),
                Err(StoreError::NotFound { .. }) => return Ok(Scope::Missing),
                Err(e) => return Err(e.into()),
            },
            Err(_) => None,
        }
    } else {
        return Ok(Scope::None);
    };
    // A malformed id: the handler answers 400.
    let Some(task_id) = task_id else {
        return Ok(Scope::Missing);
    };
    match store.task_get(task_id).await {
        Ok(task) => Ok(Scope::Namespace(task.namespace)),
        Err(StoreError::NotFound { .. }) => Ok(Scope::Missing),
        Err(e) => Err(e.into()),
    }
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

/// Reads and verifies the credentials of a request.
pub async fn identify(st: &AppState, headers: &HeaderMap) -> Result<Identity, ApiError> {
    let auth = st.authenticator();
    let bearer = headers.get(axum::http::header::AUTHORIZATION);
    let api_key = headers.get("x-api-key");
    let credential = match (bearer, api_key) {
        (Some(_), Some(_)) => {
            return Err(unauthenticated(
                "send either Authorization or X-API-Key, not both",
            ));
        }
        (None, None) => {
            return Err(unauthenticated(
                "this request needs credentials: Authorization: Bearer <token or API key>, or X-API-Key",
            ));
        }
        (Some(v), None) => {
            if v.len() > MAX_TOKEN_BYTES + 7 {
                return Err(unauthenticated(format!(
                    "the Authorization header is longer than {MAX_TOKEN_BYTES} bytes"
                )));
            }
            let text = v
                .to_str()
                .map_err(|_| unauthenticated("the Authorization header is not text"))?;
            let Some(token) = text
                .strip_prefix("Bearer ")
                .or_else(|| text.strip_prefix("bearer "))
            else {
                return Err(unauthenticated(
                    "the Authorization header must be `Bearer <token or API key>`",
                ));
            };
            token.trim().to_string()
        }
        (None, Some(v)) => {
            if v.len() > MAX_TOKEN_BYTES {
                return Err(unauthenticated("the X-API-Key header is too long"));
            }
            let key = v
                .to_str()
                .map_err(|_| unauthenticated("the X-API-Key header is not text"))?;
            if !key.starts_with(tasker_auth::apikey::PREFIX) {
                return Err(unauthenticated("X-API-Key takes an API key (tk_...)"));
            }
            key.trim().to_string()
        }
    };
    if credential.starts_with(tasker_auth::apikey::PREFIX) {
        if !auth.settings.api_keys {
            return Err(unauthenticated("API keys are not accepted by this server"));
        }
        return key_identity(st, &credential).await;
    }
    let Some(jwt) = &auth.settings.jwt else {
        return Err(unauthenticated(
            "bearer tokens are not accepted by this server (use an API key)",
        ));
    };
    let now = st.tasker().now().timestamp();
    let verified = match jwt {
        JwtKeys::Fixed(v) => v.verify(&credential, now),
        JwtKeys::Url(source) => source.verify(&credential, now).await,
    };
    match verified {
        Ok(Verified::Identity(id)) => Ok(id),
        Ok(Verified::UnknownKid(kid)) => Err(unauthenticated(format!(
            "the token's key `{kid}` is unknown"
        ))),
        Err(e) => Err(unauthenticated(e.to_string())),
    }
}

async fn key_identity(st: &AppState, key: &str) -> Result<Identity, ApiError> {
    let invalid = || unauthenticated("the API key is invalid, revoked or expired");
    let Some(id) = tasker_auth::apikey::key_id(key) else {
        return Err(unauthenticated("the API key is malformed"));
    };
    let auth = st.authenticator();
    let now = st.tasker().now();
    let ttl =
        chrono::Duration::from_std(auth.settings.key_cache_ttl).unwrap_or(chrono::Duration::MAX);
    let fresh = auth
        .keys
        .get(&id)
        .await
        .filter(|c| now.signed_duration_since(c.read_at) < ttl);
    let row = match fresh {
        Some(cached) => cached.row,
        None => {
            let row = match st.tasker().store().api_key_get(id).await {
                Ok(row) => Some(Arc::new(row)),
                Err(StoreError::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            };
            auth.keys
                .insert(
                    id,
                    CachedKey {
                        row: row.clone(),
                        read_at: now,
                    },
                )
                .await;
            row
        }
    };
    let Some(row) = row else {
        return Err(invalid());
    };
    if !tasker_auth::apikey::matches(key, &row.hash) || !row.is_active(st.tasker().now()) {
        return Err(invalid());
    }
    let grants = row
        .permissions
        .iter()
        .filter_map(|p| Grant::parse(p).ok())
        .collect();
    Ok(Identity {
        subject: format!("key:{}", row.id),
        grants: Grants::new(grants),
    })
}

/// The caller of an open route while authentication is on: may do nothing.
/// Who made a request, for the record (a task's default `initiator`, `by`
/// on the transitions of an operator action): the authenticated subject,
/// or nobody when authentication is off.
pub fn actor(st: &AppState, identity: Option<&Identity>) -> Option<String> {
    identity
        .filter(|_| st.authenticator().settings().enabled())
        .map(|i| i.subject.clone())
}

fn nobody() -> Identity {
    Identity {
        subject: "anonymous".into(),
        grants: Grants::default(),
    }
}

/// The caller of a request: what the middleware found (everything is
/// allowed when authentication is off; nothing when no identity was set).
pub fn identity_of(ext: &axum::http::Extensions) -> Identity {
    ext.get::<Identity>().cloned().unwrap_or_else(nobody)
}
