//! Extractors whose rejections are [`ApiError`]s, so a bad body, query string
//! or path segment gets the same JSON error shape as everything else, with
//! the path of the offending field.
//!
//! - [`ApiJson`] reads a JSON body. Bodies may come bare or wrapped in an
//!   envelope key (`{"task": {...}}`, the reference's shape); field paths in
//!   errors follow whichever form was sent.
//! - [`ApiQuery`] parses the query string (serde_urlencoded) with field paths.
//! - [`ApiPath`] parses path segments (e.g. UUIDs) and names the bad segment.

use crate::error::{ApiError, ErrorKind};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A request body type: which envelope keys it accepts, and what an empty
/// body means.
pub trait ApiBody: DeserializeOwned {
    /// Keys under which the body may be wrapped (`{"task": {...}}`).
    const ENVELOPES: &'static [&'static str] = &[];

    /// The value of an empty body, when one is allowed.
    fn empty() -> Option<Self> {
        None
    }
}

/// A JSON body of type `T`, and the envelope key it came in (if any).
#[derive(Debug)]
pub struct ApiJson<T> {
    /// The body.
    pub value: T,
    /// The envelope key used, if the body was wrapped.
    pub envelope: Option<&'static str>,
}

impl<T: ApiBody, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(ct) = req.headers().get(CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("");
            let mime = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if !(mime == "application/json" || mime.ends_with("+json")) {
                return Err(ApiError::new(
                    ErrorKind::UnsupportedMediaType,
                    "unsupported_media_type",
                    format!("expected a JSON body (Content-Type: application/json), got `{ct}`"),
                ));
            }
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_body(&bytes)
    }
}

fn body_rejection(r: BytesRejection) -> ApiError {
    if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ErrorKind::PayloadTooLarge,
            "payload_too_large",
            "request body is larger than the server's limit",
        )
    } else {
        ApiError::bad_request("invalid_body", format!("cannot read the request body: {r}"))
    }
}

/// Parses a body: empty → `T::empty()`, else JSON, unwrapped from a known
/// envelope, then deserialised with field paths.
pub(crate) fn parse_body<T: ApiBody>(bytes: &[u8]) -> Result<ApiJson<T>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return match T::empty() {
            Some(value) => Ok(ApiJson {
                value,
                envelope: None,
            }),
            None => Err(ApiError::bad_request(
                "empty_body",
                "the request body is empty; expected a JSON object",
            )),
        };
    }
    let raw: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
            .detail("line", json!(e.line()))
            .detail("column", json!(e.column()))
    })?;
    let (inner, envelope) = unwrap_envelope(raw, T::ENVELOPES);
    if let Some(field) = nul_path(&inner) {
        let field = match envelope {
            Some(env) if field.is_empty() => env.to_string(),
            Some(env) => format!("{env}.{field}"),
            None => field,
        };
        return Err(nul_error("invalid_field", field));
    }
    match serde_path_to_error::deserialize::<_, T>(inner) {
        Ok(value) => Ok(ApiJson { value, envelope }),
        Err(e) => {
            let path = e.path().to_string();
            // The path already ends at an unknown key, except at the root.
            let field = if path == "." {
                unknown_field(&e.inner().to_string()).unwrap_or_default()
            } else {
                path
            };
            let message = if field.is_empty() {
                format!("invalid body: {}", e.inner())
            } else {
                format!("{field}: {}", e.inner())
            };
            Err(ApiError::bad_request("invalid_body", message)
                .field(field)
                .in_envelope(envelope))
        }
    }
}

/// The path (serde_path_to_error style: `context.a`, `tags[1]`) of the
/// first string or object key in `v` that contains a NUL character.
///
/// PostgreSQL can store NUL neither in `text` nor in `jsonb` (SQLSTATE
/// 22021 / 22P05) while SQLite can, so such values are refused here, before
/// any store sees them: both backends answer the same 400 naming the field.
/// The walk itself is the store's ([`tasker_store::storable::nul_in_json`]),
/// so the edge and the stores refuse exactly the same values.
pub(crate) fn nul_path(v: &Value) -> Option<String> {
    let found = tasker_store::storable::nul_in_json(v)?;
    // "$" is the value itself, "$.a[2]" a path below it.
    let rest = found.strip_prefix('$').unwrap_or(&found);
    Some(rest.strip_prefix('.').unwrap_or(rest).to_string())
}

/// The 400 for a NUL character at `field`.
fn nul_error(code: &'static str, field: String) -> ApiError {
    let shown = if field.is_empty() { "body" } else { &field };
    ApiError::bad_request(
        code,
        format!("{shown}: must not contain the NUL character (\\u0000)"),
    )
    .field(field)
}

/// The key named by serde's "unknown field `x`, expected ..." message.
fn unknown_field(message: &str) -> Option<String> {
    message
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
        .map(str::to_string)
}

/// `{"task": {...}}` → (`{...}`, Some("task")) when `task` is an accepted
/// envelope and the only key; anything else is taken as the bare body.
fn unwrap_envelope(raw: Value, envelopes: &[&'static str]) -> (Value, Option<&'static str>) {
    match raw {
        Value::Object(mut map) if map.len() == 1 => {
            let env = map
                .keys()
                .next()
                .and_then(|k| envelopes.iter().find(|e| **e == k).copied());
            match env {
                Some(env) if map.get(env).is_some_and(Value::is_object) => {
                    (map.remove(env).unwrap_or_default(), Some(env))
                }
                _ => (Value::Object(map), None),
            }
        }
        other => (other, None),
    }
}

/// A query string parsed into `T` (use `#[serde(deny_unknown_fields)]`).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        parse_query(query).map(ApiQuery)
    }
}

/// Parses a query string with field paths in errors.
pub(crate) fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    if let Some((k, _)) =
        form_urlencoded::parse(query.as_bytes()).find(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(nul_error("invalid_parameter", k.replace('\0', "\\u0000")));
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        // Unknown parameters come back with the root path; name them anyway.
        let field = if path == "." {
            unknown_field(&inner).unwrap_or_default()
        } else {
            path
        };
        let message = if field.is_empty() {
            format!("invalid query string: {inner}")
        } else {
            format!("query parameter `{field}`: {inner}")
        };
        let err = ApiError::bad_request("invalid_parameter", message);
        if field.is_empty() {
            err
        } else {
            err.field(field)
        }
    })
}

/// Path parameters parsed into `T`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(_)) if parts.uri.path().contains("%00") => Err(ApiError::bad_request(
                "invalid_parameter",
                "path: must not contain the NUL character (%00)",
            )),
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                use axum::extract::path::ErrorKind as K;
                let err = match e.kind() {
                    K::ParseErrorAtKey {
                        key,
                        value,
                        expected_type,
                    } => {
                        let expected = if expected_type.contains("Uuid") {
                            "a UUID".to_string()
                        } else {
                            format!("a value of type {expected_type}")
                        };
                        ApiError::bad_request(
                            "invalid_parameter",
                            format!("path segment `{key}`: `{value}` is not {expected}"),
                        )
                        .field(key.clone())
                    }
                    K::DeserializeError {
                        key,
                        value,
                        message,
                    } => ApiError::bad_request(
                        "invalid_parameter",
                        format!("path segment `{key}`: `{value}` is not valid: {message}"),
                    )
                    .field(key.clone()),
                    other => {
                        ApiError::bad_request("invalid_parameter", format!("invalid path: {other}"))
                    }
                };
                Err(err)
            }
            Err(other) => Err(ApiError::internal(format!(
                "path extraction misconfigured: {other}"
            ))),
        }
    }
}

/// A timestamp query parameter: RFC 3339 with a timezone. A value without
/// one (`2026-01-01T00:00:00`) is refused with a message that says so
/// (chrono alone says "premature end of input").
pub fn timestamp<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, D::Error> {
    let s = String::deserialize(d)?;
    let s = s.trim();
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => Ok(Some(t.with_timezone(&chrono::Utc))),
        Err(_) if chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").is_ok() => {
            Err(serde::de::Error::custom(format!(
                "`{s}` has no timezone: add `Z` (UTC) or an offset such as `+02:00`, e.g. `{s}Z`"
            )))
        }
        Err(e) => Err(serde::de::Error::custom(format!(
            "`{s}` is not an RFC 3339 timestamp with a timezone (e.g. `2026-01-01T00:00:00Z`): {e}"
        ))),
    }
}

/// A boolean query parameter that accepts `true/false`, `1/0`, `yes/no`,
/// `t/f` and `on/off` (any case), as the reference's boolean cast did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flag(pub bool);

impl<'de> serde::Deserialize<'de> for Flag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "t" | "on" | "y" => Ok(Flag(true)),
            "false" | "0" | "no" | "f" | "off" | "n" | "" => Ok(Flag(false)),
            other => Err(serde::de::Error::custom(format!(
                "`{other}` is not a boolean (use true or false)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        name: String,
        #[serde(default)]
        count: u32,
    }

    impl ApiBody for Body {
        const ENVELOPES: &'static [&'static str] = &["thing"];
    }

    #[test]
    fn bare_and_wrapped_bodies() {
        let b: ApiJson<Body> = parse_body(br#"{"name": "a", "count": 2}"#).unwrap();
        assert_eq!(
            (b.value.name.as_str(), b.value.count, b.envelope),
            ("a", 2, None)
        );
        let b: ApiJson<Body> = parse_body(br#"{"thing": {"name": "a"}}"#).unwrap();
        assert_eq!(b.envelope, Some("thing"));
    }

    #[test]
    fn field_paths_follow_the_envelope() {
        let e = parse_body::<Body>(br#"{"thing": {"name": "a", "count": "x"}}"#).unwrap_err();
        assert_eq!(e.code(), "invalid_body");
        assert!(e.message().starts_with("count:"), "{}", e.message());
        let e = parse_body::<Body>(br#"{"name": 1}"#).unwrap_err();
        assert!(e.message().starts_with("name:"), "{}", e.message());
        let e = parse_body::<Body>(b"{nope").unwrap_err();
        assert_eq!(e.code(), "malformed_json");
        let e = parse_body::<Body>(b"  ").unwrap_err();
        assert_eq!(e.code(), "empty_body");
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Q {
        #[serde(default)]
        limit: Option<u32>,
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let q: Q = parse_query("limit=5").unwrap();
        assert_eq!(q.limit, Some(5));
        let e = parse_query::<Q>("limit=abc").unwrap_err();
        assert!(e.message().contains("`limit`"), "{}", e.message());
        let e = parse_query::<Q>("per_page=3").unwrap_err();
        assert!(e.message().contains("`per_page`"), "{}", e.message());
    }

    #[test]
    fn nul_characters_are_refused_with_their_path() {
        let e = parse_body::<Body>(br#"{"thing": {"name": "a\u0000b"}}"#).unwrap_err();
        assert_eq!(e.code(), "invalid_field");
        assert!(e.message().contains("thing.name"), "{}", e.message());
        let v: Value =
            serde_json::from_str(r#"{"a": [1, {"b\u0000": 2}], "c": ["x", "\u0000"]}"#).unwrap();
        assert_eq!(nul_path(&v).as_deref(), Some("a[1].b\\u0000"));
        let v: Value = serde_json::from_str(r#"{"c": ["x", "\u0000"]}"#).unwrap();
        assert_eq!(nul_path(&v).as_deref(), Some("c[1]"));
        let e = parse_query::<Q>("limit=1&name=a%00").unwrap_err();
        assert_eq!(e.code(), "invalid_parameter");
        assert!(e.message().starts_with("name:"), "{}", e.message());
    }

    #[derive(Debug, Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "timestamp")]
        since: Option<chrono::DateTime<chrono::Utc>>,
    }

    #[test]
    fn timestamps_need_a_timezone() {
        let t: T = parse_query("since=2026-01-01T00:00:00%2B01:00").unwrap();
        assert_eq!(t.since.unwrap().to_rfc3339(), "2025-12-31T23:00:00+00:00");
        let e = parse_query::<T>("since=2026-01-01T00:00:00").unwrap_err();
        assert!(e.message().contains("has no timezone"), "{}", e.message());
        let e = parse_query::<T>("since=yesterday").unwrap_err();
        assert!(e.message().contains("RFC 3339"), "{}", e.message());
    }

    #[derive(Debug, Deserialize)]
    struct F {
        flag: Option<Flag>,
    }

    #[test]
    fn flags_accept_the_usual_spellings() {
        for (q, want) in [
            ("flag=true", true),
            ("flag=1", true),
            ("flag=YES", true),
            ("flag=0", false),
            ("flag=off", false),
        ] {
            let f: F = parse_query(q).unwrap();
            assert_eq!(f.flag, Some(Flag(want)), "{q}");
        }
        let e = parse_query::<F>("flag=maybe").unwrap_err();
        assert!(e.message().contains("`flag`"), "{}", e.message());
    }
}
