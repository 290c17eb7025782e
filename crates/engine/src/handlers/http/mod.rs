//! The `http` handler: one HTTP request per attempt.
//!
//! ```yaml
//! handler:
//!   kind: http
//!   config:
//!     method: POST
//!     url: "https://api.example.com/orders/{{context.order_id}}/charge"
//!     headers: { X-Receipt: "{{parents.reserve.body.receipt}}" }
//!     headers_from_env: { Authorization: { env: PAYMENTS_TOKEN, prefix: "Bearer " } }
//!     query: { attempt: "{{step.attempt}}" }
//!     body: { amount_cents: "{{context.amount_cents}}" }
//!     expected_statuses: [200, 201]
//!     response_headers: [location]
//!     timeout_seconds: 10
//! ```
//!
//! - Placeholders: see [`template`].
//! - Results: `{"status": 201, "headers": {"location": "…"}, "body": …}`,
//!   the body parsed as JSON when it is JSON, else text.
//! - 429 and 503 are retried after `Retry-After` (seconds or an HTTP date,
//!   capped by [`HttpPolicy::max_retry_after`]; unusable values fall back to
//!   the normal backoff); other 5xx, network errors and timeouts are retried
//!   with the normal backoff; 3xx and 4xx fail permanently with code
//!   `HTTP_<status>`.
//! - Safety: [`HttpPolicy`] (internal addresses refused by default, optional
//!   host allow-list, response size limit); secret header values come from
//!   environment variables and are redacted from results and messages.
//! - Every request carries `X-Correlation-ID`, `Idempotency-Key` and a W3C
//!   `traceparent`, unless the config sets them.

mod policy;
mod response;
pub mod template;

pub use policy::{Denied, HttpPolicy, IpNetwork, is_internal};
pub use response::{StatusPattern, parse_retry_after};

use crate::clock::{Clock, SystemClock};
use crate::handler::{StepContext, StepError, StepHandler};
use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use response::{Outcome, ReadError};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use template::{Encoding, Scope};

/// `handler.config` of an `http` step.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// HTTP method. Default `GET`.
    #[serde(default = "default_method")]
    pub method: String,
    /// The URL (`http` or `https`), with placeholders (percent-encoded).
    pub url: String,
    /// Request headers; string values may hold placeholders.
    #[serde(default)]
    pub headers: BTreeMap<String, Value>,
    /// Query parameters added to the URL: scalars, or arrays for repeated
    /// parameters; strings may hold placeholders.
    #[serde(default)]
    pub query: BTreeMap<String, Value>,
    /// JSON body; strings may hold placeholders, a string that is only one
    /// placeholder keeps the value's JSON type. Sent as `application/json`.
    #[serde(default)]
    pub body: Option<Value>,
    /// Per-attempt timeout, in seconds; default [`HttpPolicy::default_timeout`].
    #[serde(default)]
    pub timeout_seconds: Option<f64>,
    /// Statuses meaning success: numbers or classes like `"2xx"`. Default 2xx.
    #[serde(default)]
    pub expected_statuses: Vec<StatusPattern>,
    /// Response headers kept in the results (case-insensitive).
    #[serde(default)]
    pub response_headers: Vec<String>,
    /// Secret request headers read from environment variables at each
    /// attempt: `{Header: VAR}` or `{Header: {env: VAR, prefix: "Bearer "}}`.
    #[serde(default)]
    pub headers_from_env: BTreeMap<String, EnvHeader>,
}

fn default_method() -> String {
    "GET".into()
}

/// A header whose value comes from an environment variable.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum EnvHeader {
    /// The variable's name; its value is the header value.
    Var(String),
    /// A variable and text put before its value.
    Spec(EnvHeaderSpec),
}

/// `{env: VAR, prefix: "Bearer "}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvHeaderSpec {
    /// The variable's name.
    pub env: String,
    /// Text before the value, e.g. `Bearer `.
    #[serde(default)]
    pub prefix: String,
}

/// Checks an `http` step's config without building a client.
pub fn check_config(config: &Value) -> Result<(), String> {
    HttpConfig::from_value(config).map(|_| ())
}

impl HttpConfig {
    /// Parses a step's handler config, with an error message naming the field.
    pub fn from_value(config: &Value) -> Result<Self, String> {
        serde_json::from_value(config.clone()).map_err(|e| format!("http handler config: {e}"))
    }
}

/// Calls an HTTP endpoint for each attempt; see the module docs.
///
/// The built-in `http` kind uses [`HttpPolicy::default`]. Register your own
/// to change the policy:
///
/// ```no_run
/// # fn demo(store: std::sync::Arc<dyn tasker_store::Store>) -> Result<(), Box<dyn std::error::Error>> {
/// use tasker_engine::handlers::{Http, HttpPolicy};
/// let policy = HttpPolicy::default().allow_network("10.20.0.0/16".parse()?);
/// let tasker = tasker_engine::Tasker::builder(store).handler("http", Http::new(policy)).build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Http {
    client: Result<reqwest::Client, Arc<str>>,
    policy: Arc<HttpPolicy>,
    /// "Now" for `Retry-After: <date>` (the system clock unless a test sets one).
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("policy", &self.policy)
            .field("client_ok", &self.client.is_ok())
            .finish()
    }
}

impl Default for Http {
    fn default() -> Self {
        Http::new(HttpPolicy::default())
    }
}

impl Http {
    /// A handler with its own connection pool. If the HTTP client cannot be
    /// built (it practically cannot fail), every attempt fails permanently
    /// with the reason; use [`Http::try_new`] to find out at once.
    pub fn new(policy: HttpPolicy) -> Self {
        let policy = Arc::new(policy);
        let client = build_client(&policy).map_err(|e| Arc::from(error_chain(&e).as_str()));
        Http {
            client,
            policy,
            clock: Arc::new(SystemClock),
        }
    }

    /// Like [`Http::new`], but returns the client's construction error.
    pub fn try_new(policy: HttpPolicy) -> Result<Self, reqwest::Error> {
        let policy = Arc::new(policy);
        let client = build_client(&policy)?;
        Ok(Http {
            client: Ok(client),
            policy,
            clock: Arc::new(SystemClock),
        })
    }

    /// Uses `clock` as "now" when turning a `Retry-After` date into a delay
    /// (tests pin it; the default is the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The policy in force.
    pub fn policy(&self) -> &HttpPolicy {
        &self.policy
    }
}

pub(crate) fn build_client(policy: &Arc<HttpPolicy>) -> Result<reqwest::Client, reqwest::Error> {
    // reqwest is built without a default TLS crypto provider; install ring's
    // once per process (an error only means one is already installed).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        // A redirect could lead to an address or host the policy refuses, and
        // would carry secret headers along: redirects are outcomes, not followed.
        .redirect(reqwest::redirect::Policy::none())
        // An environment proxy would resolve names itself, bypassing the policy.
        .no_proxy()
        .dns_resolver(policy::PolicyResolver {
            policy: policy.clone(),
        })
        .connect_timeout(policy.connect_timeout)
        .user_agent(concat!("tasker/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// One attempt's request, ready to send.
struct Prepared {
    request: reqwest::Request,
    /// Method and URL without query or credentials, for messages and logs.
    what: String,
    secrets: Vec<String>,
    timeout: Duration,
}

#[async_trait]
impl StepHandler for Http {
    fn check_config(&self, config: &Value) -> Result<(), String> {
        check_config(config)
    }

    async fn call(&self, step: &StepContext) -> Result<Value, StepError> {
        let client = self.client.as_ref().map_err(|e| {
            StepError::permanent(format!("HTTP client unavailable: {e}")).with_code("HTTP_CLIENT")
        })?;
        let cfg = HttpConfig::from_value(&step.config)
            .map_err(|e| StepError::permanent(e).with_code("HTTP_CONFIG"))?;
        let prepared = self.prepare(client, &cfg, step)?;
        let started = Instant::now();
        let what = prepared.what.clone();
        let secrets = prepared.secrets.clone();
        let timeout = prepared.timeout;
        let outcome = match tokio::time::timeout(timeout, self.send(client, &cfg, prepared)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(StepError::retryable(format!(
                "{what}: no complete response within {} s",
                timeout.as_secs_f64()
            ))
            .with_code("HTTP_TIMEOUT")),
        };
        // Redact before logging: an echoed secret must not reach the logs either.
        let outcome = redact_outcome(outcome, &secrets);
        let elapsed_ms = started.elapsed().as_millis();
        match &outcome {
            Ok(results) => tracing::debug!(
                step_id = %step.step_id, attempt = step.attempt, request = %what,
                status = results["status"].as_u64(), elapsed_ms, "http step succeeded"
            ),
            Err(e) => tracing::debug!(
                step_id = %step.step_id, attempt = step.attempt, request = %what,
                kind = e.kind(), elapsed_ms, error = %e, "http step failed"
            ),
        }
        outcome
    }
}

impl Http {
    /// Renders the config into a request and checks it against the policy.
    fn prepare(
        &self,
        client: &reqwest::Client,
        cfg: &HttpConfig,
        step: &StepContext,
    ) -> Result<Prepared, StepError> {
        let config_error = |msg: String| StepError::permanent(msg).with_code("HTTP_CONFIG");
        let template_error = |e: template::TemplateError| {
            StepError::permanent(e.to_string()).with_code("HTTP_TEMPLATE")
        };
        let scope = Scope::new(step);

        let method = reqwest::Method::from_bytes(cfg.method.trim().to_ascii_uppercase().as_bytes())
            .map_err(|_| config_error(format!("http: `{}` is not an HTTP method", cfg.method)))?;
        let rendered = scope
            .render_str(&cfg.url, Encoding::Url)
            .map_err(template_error)?;
        let mut url = reqwest::Url::parse(rendered.trim())
            .map_err(|e| config_error(format!("http: `url` is not a valid URL ({e})")))?;
        if !cfg.query.is_empty() {
            let mut pairs = Vec::new();
            for (name, value) in &cfg.query {
                let values = match value {
                    Value::Array(items) => items.iter().collect(),
                    single => vec![single],
                };
                for v in values {
                    let text = scalar_text(&scope, v)
                        .map_err(template_error)?
                        .ok_or_else(|| config_error(format!("http: query `{name}` must be a string, number, boolean or a list of them")))?;
                    pairs.push((name.clone(), text));
                }
            }
            url.query_pairs_mut().extend_pairs(pairs);
        }
        let what = format!("{method} {}", display_url(&url));
        self.policy.check_url(&url).map_err(|denied| {
            StepError::permanent(format!("{what}: refused by the HTTP policy: {denied}"))
                .with_code("HTTP_HOST_NOT_ALLOWED")
        })?;

        // Defaults first: the template's headers replace them.
        let mut headers = HeaderMap::new();
        let set = |headers: &mut HeaderMap, name: &str, value: &str| -> Result<(), StepError> {
            let n = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| config_error(format!("http: `{name}` is not a valid header name")))?;
            let v = HeaderValue::from_str(value).map_err(|_| {
                config_error(format!(
                    "http: the value of header `{name}` is not a valid header value"
                ))
            })?;
            headers.insert(n, v);
            Ok(())
        };
        // Ids that are not valid header values (control characters) are not sent.
        let _ = set(&mut headers, "x-correlation-id", &step.correlation_id);
        let _ = set(&mut headers, "idempotency-key", &step.idempotency_key);
        set(
            &mut headers,
            "traceparent",
            &traceparent(&step.correlation_id, step.step_id, step.attempt),
        )?;
        if cfg.body.is_some() {
            set(&mut headers, "content-type", "application/json")?;
        }
        for (name, value) in &cfg.headers {
            let text = scalar_text(&scope, value)
                .map_err(template_error)?
                .ok_or_else(|| {
                    config_error(format!(
                        "http: header `{name}` must be a string, number or boolean"
                    ))
                })?;
            set(&mut headers, name, &text)?;
        }
        let mut secrets = Vec::new();
        for (name, source) in &cfg.headers_from_env {
            let (var, prefix) = match source {
                EnvHeader::Var(var) => (var.as_str(), ""),
                EnvHeader::Spec(spec) => (spec.env.as_str(), spec.prefix.as_str()),
            };
            if !self.policy.env_var_allowed(var) {
                return Err(config_error(format!(
                    "http: header `{name}`: environment variable `{var}` is not allowed by the HTTP policy"
                )));
            }
            let secret = std::env::var(var).map_err(|_| {
                config_error(format!(
                    "http: header `{name}`: environment variable `{var}` is not set (or not UTF-8)"
                ))
            })?;
            let n = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| config_error(format!("http: `{name}` is not a valid header name")))?;
            let mut v = HeaderValue::from_str(&format!("{prefix}{secret}")).map_err(|_| {
                config_error(format!(
                    "http: header `{name}`: environment variable `{var}` is not a valid header value"
                ))
            })?;
            v.set_sensitive(true);
            headers.insert(n, v);
            // Shorter values would redact ordinary text everywhere.
            if secret.chars().count() >= MIN_REDACTED_CHARS {
                secrets.push(secret);
            }
        }

        // The step attempt's trace goes on to the service called.
        if let Some(tp) = crate::telemetry::current_traceparent()
            && let Ok(v) = HeaderValue::from_str(&tp)
        {
            headers.insert(HeaderName::from_static("traceparent"), v);
        }
        let mut builder = client.request(method, url).headers(headers);
        if let Some(body) = &cfg.body {
            let body = scope.render_json(body).map_err(template_error)?;
            let bytes =
                serde_json::to_vec(&body).map_err(|e| config_error(format!("http: body: {e}")))?;
            builder = builder.body(bytes);
        }
        let request = builder.build().map_err(|e| {
            config_error(format!(
                "http: cannot build the request: {}",
                error_chain(&e)
            ))
        })?;

        let mut timeout = match cfg.timeout_seconds {
            None => self.policy.default_timeout,
            Some(s) if s.is_finite() && s > 0.0 => Duration::try_from_secs_f64(s)
                .map_err(|_| config_error("http: timeout_seconds is too large".into()))?,
            Some(_) => {
                return Err(config_error(
                    "http: timeout_seconds must be a positive number".into(),
                ));
            }
        };
        if let Some(step_timeout) = step.timeout {
            timeout = timeout.min(step_timeout);
        }
        Ok(Prepared {
            request,
            what,
            secrets,
            timeout,
        })
    }

    /// Sends the request and turns the response into the attempt's outcome.
    async fn send(
        &self,
        client: &reqwest::Client,
        cfg: &HttpConfig,
        prepared: Prepared,
    ) -> Result<Value, StepError> {
        let what = prepared.what;
        let mut response = client
            .execute(prepared.request)
            .await
            .map_err(|e| transport_error(&what, e))?;
        let status = response.status();
        let code = format!("HTTP_{}", status.as_u16());
        let status_text = match status.canonical_reason() {
            Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
            None => format!("HTTP {}", status.as_u16()),
        };
        let outcome = response::classify(status.as_u16(), &cfg.expected_statuses);
        if outcome == Outcome::Success {
            let body = match response::read_limited(&mut response, self.policy.max_response_bytes)
                .await
            {
                Ok(body) => body,
                Err(ReadError::TooLarge(limit)) => {
                    return Err(StepError::permanent(format!(
                        "{what}: {status_text}: response body larger than the limit of {limit} bytes"
                    ))
                    .with_code("HTTP_RESPONSE_TOO_LARGE"));
                }
                Err(ReadError::Io(e)) => {
                    return Err(StepError::retryable(format!(
                        "{what}: {status_text}: reading the body failed: {}",
                        error_chain(&e.without_url())
                    ))
                    .with_code("HTTP_NETWORK"));
                }
            };
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            let body = response::decode_body(&body, content_type);
            return Ok(json!({
                "status": status.as_u16(),
                "headers": selected_headers(response.headers(), &cfg.response_headers),
                "body": body,
            }));
        }

        let retry_after = response
            .headers()
            .get_all(reqwest::header::RETRY_AFTER)
            .iter()
            .next()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let prefix = response::read_prefix(&mut response).await;
        let snippet = response::snippet(&prefix);
        let mut message = if snippet.is_empty() {
            format!("{what}: {status_text}")
        } else {
            format!("{what}: {status_text}: {snippet}")
        };
        let error = match outcome {
            Outcome::RetryLater => {
                let delay = retry_after.as_deref().and_then(|v| {
                    parse_retry_after(
                        v,
                        SystemTime::from(self.clock.now()),
                        self.policy.max_retry_after,
                    )
                });
                match (&retry_after, delay) {
                    (_, Some(d)) => {
                        message.push_str(&format!(" (retry after {} s)", d.as_secs_f64()));
                        StepError::retryable(message).with_retry_after(d)
                    }
                    (Some(raw), None) => {
                        let raw: String = raw.chars().take(64).collect();
                        message.push_str(&format!(
                            " (Retry-After {raw:?} not usable: normal backoff)"
                        ));
                        StepError::retryable(message)
                    }
                    (None, None) => StepError::retryable(message),
                }
            }
            Outcome::Retry => StepError::retryable(message),
            Outcome::Permanent | Outcome::Success => StepError::permanent(message),
        };
        Err(error.with_code(code))
    }
}

/// A failure before any response: refused by policy, connect, timeout, I/O.
fn transport_error(what: &str, e: reqwest::Error) -> StepError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(denied) = err.downcast_ref::<Denied>() {
            return StepError::permanent(format!("{what}: refused by the HTTP policy: {denied}"))
                .with_code("HTTP_HOST_NOT_ALLOWED");
        }
        source = err.source();
    }
    let (timeout, connect) = (e.is_timeout(), e.is_connect());
    // reqwest's message repeats the URL, query included: the request is
    // already named by `what`.
    let detail = error_chain(&e.without_url());
    if timeout {
        StepError::retryable(format!("{what}: timed out: {detail}")).with_code("HTTP_TIMEOUT")
    } else if connect {
        StepError::retryable(format!("{what}: connection failed: {detail}"))
            .with_code("HTTP_CONNECT")
    } else {
        StepError::retryable(format!("{what}: request failed: {detail}")).with_code("HTTP_NETWORK")
    }
}

/// An error and its sources, joined with `: ` (repeated texts skipped).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(err) = source {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = err.source();
    }
    parts.join(": ")
}

/// A URL for messages: no credentials, query or fragment.
fn display_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// A header or query value: strings rendered, numbers and booleans as text;
/// `Ok(None)` for anything else.
fn scalar_text(scope: &Scope<'_>, v: &Value) -> Result<Option<String>, template::TemplateError> {
    Ok(match v {
        Value::String(s) => Some(scope.render_str(s, Encoding::Plain)?),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

/// The response headers named in the config, by lowercase name; repeated
/// headers joined with `, `.
fn selected_headers(headers: &HeaderMap, wanted: &[String]) -> Value {
    let mut out = Map::new();
    for name in wanted {
        let name = name.trim().to_ascii_lowercase();
        let values: Vec<String> = headers
            .get_all(name.as_str())
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if !values.is_empty() {
            out.insert(name, Value::String(values.join(", ")));
        }
    }
    Value::Object(out)
}

/// Removes secret header values wherever a response echoed them.
fn redact_outcome(
    outcome: Result<Value, StepError>,
    secrets: &[String],
) -> Result<Value, StepError> {
    if secrets.is_empty() {
        return outcome;
    }
    match outcome {
        Ok(v) => Ok(redact_value(v, secrets)),
        Err(StepError::Retryable {
            message,
            retry_after,
            code,
        }) => Err(StepError::Retryable {
            message: redact(&message, secrets),
            retry_after,
            code,
        }),
        Err(StepError::Permanent { message, code }) => Err(StepError::Permanent {
            message: redact(&message, secrets),
            code,
        }),
    }
}

const REDACTED: &str = "[redacted]";
/// Secret values shorter than this are not searched for in responses.
const MIN_REDACTED_CHARS: usize = 4;

fn redact(s: &str, secrets: &[String]) -> String {
    secrets.iter().fold(s.to_string(), |acc, secret| {
        acc.replace(secret.as_str(), REDACTED)
    })
}

fn redact_value(v: Value, secrets: &[String]) -> Value {
    match v {
        Value::String(s) => Value::String(redact(&s, secrets)),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| redact_value(v, secrets))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (redact(&k, secrets), redact_value(v, secrets)))
                .collect(),
        ),
        other => other,
    }
}

/// A W3C `traceparent` (`00-<trace id>-<parent id>-01`): the trace id is the
/// correlation id when it is one (32 hex digits, a UUID, or a traceparent),
/// else a hash of it, so every request of a task shares one trace; the parent
/// id is derived from the step and attempt.
fn traceparent(correlation_id: &str, step_id: uuid::Uuid, attempt: u32) -> String {
    let trace_id = trace_id_of(correlation_id);
    let mut span_input = step_id.as_bytes().to_vec();
    span_input.extend_from_slice(&attempt.to_be_bytes());
    let span = fnv1a64(&span_input, 0xcbf2_9ce4_8422_2325).max(1);
    format!("00-{trace_id}-{span:016x}-01")
}

fn trace_id_of(correlation_id: &str) -> String {
    let is_hex32 = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    let c = correlation_id.trim();
    // An incoming traceparent: 00-<trace>-<span>-<flags>.
    let parts: Vec<&str> = c.split('-').collect();
    if parts.len() == 4 && parts[0].len() == 2 && is_hex32(parts[1]) && nonzero(parts[1]) {
        return parts[1].to_ascii_lowercase();
    }
    let compact: String = c.chars().filter(|&ch| ch != '-').collect();
    if is_hex32(&compact) && nonzero(&compact) {
        return compact.to_ascii_lowercase();
    }
    let hi = fnv1a64(c.as_bytes(), 0xcbf2_9ce4_8422_2325);
    let lo = fnv1a64(c.as_bytes(), 0x6c62_272e_07bb_0142).max(1);
    format!("{hi:016x}{lo:016x}")
}

fn fnv1a64(bytes: &[u8], seed: u64) -> u64 {
    bytes.iter().fold(seed, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use uuid::Uuid;

    #[test]
    fn config_parsing() {
        let cfg = HttpConfig::from_value(&json!({
            "url": "http://x/",
            "expected_statuses": [200, "3xx"],
            "headers_from_env": {"A": "VAR_A", "B": {"env": "VAR_B", "prefix": "Bearer "}},
        }))
        .unwrap();
        assert_eq!(cfg.method, "GET");
        assert!(cfg.expected_statuses[1].matches(302));
        assert_eq!(cfg.headers_from_env["A"], EnvHeader::Var("VAR_A".into()));
        assert_eq!(
            cfg.headers_from_env["B"],
            EnvHeader::Spec(EnvHeaderSpec {
                env: "VAR_B".into(),
                prefix: "Bearer ".into()
            })
        );
        let err =
            HttpConfig::from_value(&json!({"url": "http://x/", "metod": "POST"})).unwrap_err();
        assert!(err.contains("unknown field `metod`"), "{err}");
        let err = HttpConfig::from_value(&json!({"method": "GET"})).unwrap_err();
        assert!(err.contains("missing field `url`"), "{err}");
        let err =
            HttpConfig::from_value(&json!({"url": "u", "expected_statuses": ["2xy"]})).unwrap_err();
        assert!(err.contains("2xy"), "{err}");
    }

    #[test]
    fn traceparents() {
        let step = Uuid::from_u128(5);
        let uuid_corr = "0190a6b2-7f3e-7c1a-9b2d-1234567890ab";
        let tp = traceparent(uuid_corr, step, 1);
        assert!(
            tp.starts_with("00-0190a6b27f3e7c1a9b2d1234567890ab-"),
            "{tp}"
        );
        assert!(tp.ends_with("-01"));
        assert_eq!(tp.len(), 55);
        assert_ne!(
            tp,
            traceparent(uuid_corr, step, 2),
            "a new span per attempt"
        );
        assert_eq!(tp, traceparent(uuid_corr, step, 1), "stable");
        let other = traceparent("order-42", step, 1);
        let parts: Vec<&str> = other.split('-').collect();
        assert_eq!(parts[1].len(), 32);
        assert!(parts[1].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_ne!(
            trace_id_of("00000000-0000-0000-0000-000000000000"),
            "0".repeat(32)
        );
    }

    #[test]
    fn redaction() {
        let secrets = vec!["s3cr3t-token".to_string()];
        let v = json!({"echo": "Bearer s3cr3t-token", "n": 1, "list": ["s3cr3t-token"]});
        assert_eq!(
            redact_value(v, &secrets),
            json!({"echo": "Bearer [redacted]", "n": 1, "list": ["[redacted]"]})
        );
        let err = redact_outcome(
            Err(StepError::permanent("saw s3cr3t-token").with_code("X")),
            &secrets,
        );
        assert_eq!(
            err,
            Err(StepError::permanent("saw [redacted]").with_code("X"))
        );
    }

    #[test]
    fn urls_for_messages_hide_credentials_and_query() {
        let u = reqwest::Url::parse("https://user:pw@h.example/p/a?key=1#f").unwrap();
        assert_eq!(display_url(&u), "https://h.example/p/a");
    }
}
