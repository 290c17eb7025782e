//! Reading and classifying responses: status → outcome, `Retry-After`,
//! bounded body reads, body decoding.

use serde::Deserialize;
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// Characters of a response body quoted in an error message.
pub(super) const ERROR_BODY_CHARS: usize = 512;
/// Bytes of an error response read (the rest is discarded unread).
pub(super) const ERROR_BODY_BYTES: usize = 4096;

/// A status, or a class of statuses written `"2xx"`, in `expected_statuses`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Value")]
pub struct StatusPattern {
    /// First status matched.
    lo: u16,
    /// Last status matched.
    hi: u16,
}

impl StatusPattern {
    /// 200–299, the default.
    pub const SUCCESS: StatusPattern = StatusPattern { lo: 200, hi: 299 };

    /// True if `status` matches.
    pub fn matches(&self, status: u16) -> bool {
        (self.lo..=self.hi).contains(&status)
    }
}

impl TryFrom<Value> for StatusPattern {
    type Error = String;

    fn try_from(v: Value) -> Result<Self, Self::Error> {
        let bad = || {
            format!("expected_statuses: {v} is not a status (100-599) or a class such as \"2xx\"")
        };
        match &v {
            Value::Number(n) => {
                let s = n
                    .as_u64()
                    .filter(|s| (100..=599).contains(s))
                    .ok_or_else(bad)?;
                let s = u16::try_from(s).map_err(|_| bad())?;
                Ok(StatusPattern { lo: s, hi: s })
            }
            Value::String(s) => {
                let s = s.trim().to_ascii_lowercase();
                if let Ok(n) = s.parse::<u16>() {
                    return StatusPattern::try_from(Value::from(n));
                }
                match s.as_bytes() {
                    [d @ b'1'..=b'5', b'x', b'x'] => {
                        let lo = u16::from(d - b'0') * 100;
                        Ok(StatusPattern { lo, hi: lo + 99 })
                    }
                    _ => Err(bad()),
                }
            }
            _ => Err(bad()),
        }
    }
}

/// What a response status means for the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Expected: the step succeeds.
    Success,
    /// 429 or 503: retry, after `Retry-After` if the server sent a usable one.
    RetryLater,
    /// Other 5xx (and anything else unexpected outside 3xx/4xx): retry with the normal backoff.
    Retry,
    /// 3xx (redirects are not followed) and 4xx: do not retry.
    Permanent,
}

/// Classifies a status; `expected` defaults to 2xx.
pub fn classify(status: u16, expected: &[StatusPattern]) -> Outcome {
    let expected_match = if expected.is_empty() {
        StatusPattern::SUCCESS.matches(status)
    } else {
        expected.iter().any(|p| p.matches(status))
    };
    match status {
        _ if expected_match => Outcome::Success,
        429 | 503 => Outcome::RetryLater,
        200..=499 => Outcome::Permanent,
        _ => Outcome::Retry,
    }
}

/// Parses a `Retry-After` value: whole seconds (`120`) or an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`), capped at `max`.
///
/// Returns `None` (use the normal backoff) for anything else: negative or
/// fractional numbers, garbage, and dates that are already past. The
/// reference engine raised on these and failed the attempt for the wrong
/// reason; here they are only ignored.
pub fn parse_retry_after(value: &str, now: SystemTime, max: Duration) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let delay = if value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for u64 still means "a long time".
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).ok().filter(|d| !d.is_zero())?
    };
    Some(delay.min(max))
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// More than the limit (the value is the limit).
    TooLarge(usize),
    /// The connection failed while reading.
    Io(reqwest::Error),
}

/// Reads at most `limit` bytes of a body. `Err(TooLarge)` as soon as the
/// declared length or the bytes received exceed it, without reading the rest.
pub async fn read_limited(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ReadError> {
    if response
        .content_length()
        .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Err(ReadError::TooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Io)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads the start of an error response for the message: at most
/// `ERROR_BODY_BYTES`, ignoring read errors (the status is what matters).
pub async fn read_prefix(response: &mut reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = ERROR_BODY_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// A body as JSON: parsed when the content type is JSON (`application/json`,
/// `…+json`), or is absent or not `text/*` and the body parses; otherwise a
/// string (invalid UTF-8 replaced). An empty body is `null`.
pub fn decode_body(bytes: &[u8], content_type: Option<&str>) -> Value {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    let mime = content_type
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let says_json = mime == "application/json" || mime.ends_with("+json");
    let try_json = says_json || !mime.starts_with("text/");
    let parsed = if try_json {
        serde_json::from_slice::<Value>(bytes).ok()
    } else {
        None
    };
    parsed.unwrap_or_else(|| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// The start of a body for an error message: lossy UTF-8, whitespace
/// collapsed, at most `ERROR_BODY_CHARS` characters, `…` when cut.
pub fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = collapsed.chars().take(ERROR_BODY_CHARS).collect();
    if out.len() < collapsed.len() || bytes.len() >= ERROR_BODY_BYTES {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    const MAX: Duration = Duration::from_secs(300);

    #[test]
    fn retry_after_seconds() {
        let now = SystemTime::now();
        assert_eq!(
            parse_retry_after("120", now, MAX),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now, MAX), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("3600", now, MAX), Some(MAX), "capped");
        assert_eq!(
            parse_retry_after("99999999999999999999999", now, MAX),
            Some(MAX)
        );
        for garbage in ["", "-5", "1.5", "soon", "5s", "+3", "0x10"] {
            assert_eq!(parse_retry_after(garbage, now, MAX), None, "{garbage:?}");
        }
    }

    #[test]
    fn retry_after_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now, MAX),
            Some(Duration::from_secs(30))
        );
        // The obsolete formats HTTP allows.
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:29:00 GMT", now, MAX),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed Oct 21 07:28:10 2015", now, MAX),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Thu, 22 Oct 2015 07:28:00 GMT", now, MAX),
            Some(MAX)
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now, MAX),
            None,
            "past"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now, MAX),
            None,
            "now"
        );
        assert_eq!(
            parse_retry_after("Wed, 32 Oct 2015 07:28:00 GMT", now, MAX),
            None
        );
    }

    #[test]
    fn status_patterns() {
        let p = |v: Value| StatusPattern::try_from(v);
        assert_eq!(p(json!(204)).unwrap(), StatusPattern { lo: 204, hi: 204 });
        assert_eq!(p(json!("404")).unwrap(), StatusPattern { lo: 404, hi: 404 });
        assert_eq!(p(json!("3XX")).unwrap(), StatusPattern { lo: 300, hi: 399 });
        for bad in [
            json!(99),
            json!(600),
            json!(-1),
            json!("6xx"),
            json!("2x"),
            json!(true),
            json!(2.5),
        ] {
            assert!(p(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn classification() {
        let none: &[StatusPattern] = &[];
        assert_eq!(classify(200, none), Outcome::Success);
        assert_eq!(classify(204, none), Outcome::Success);
        assert_eq!(classify(429, none), Outcome::RetryLater);
        assert_eq!(classify(503, none), Outcome::RetryLater);
        assert_eq!(classify(500, none), Outcome::Retry);
        assert_eq!(classify(502, none), Outcome::Retry);
        assert_eq!(classify(404, none), Outcome::Permanent);
        assert_eq!(classify(400, none), Outcome::Permanent);
        assert_eq!(classify(302, none), Outcome::Permanent);
        let only_201_and_404 = [
            StatusPattern { lo: 201, hi: 201 },
            StatusPattern { lo: 404, hi: 404 },
        ];
        assert_eq!(classify(201, &only_201_and_404), Outcome::Success);
        assert_eq!(classify(404, &only_201_and_404), Outcome::Success);
        assert_eq!(classify(200, &only_201_and_404), Outcome::Permanent);
        assert_eq!(classify(503, &only_201_and_404), Outcome::RetryLater);
    }

    #[test]
    fn bodies() {
        assert_eq!(
            decode_body(br#"{"a":1}"#, Some("application/json; charset=utf-8")),
            json!({"a": 1})
        );
        assert_eq!(decode_body(br#"{"a":1}"#, None), json!({"a": 1}));
        assert_eq!(
            decode_body(b"[1,2]", Some("application/problem+json")),
            json!([1, 2])
        );
        assert_eq!(decode_body(b"hello", Some("text/plain")), json!("hello"));
        assert_eq!(decode_body(b"123", Some("text/plain")), json!("123"));
        assert_eq!(
            decode_body(b"123", Some("application/octet-stream")),
            json!(123)
        );
        assert_eq!(
            decode_body(b"{broken", Some("application/json")),
            json!("{broken")
        );
        assert_eq!(decode_body(b"", Some("application/json")), Value::Null);
        assert_eq!(decode_body(b"\xff ok", None), json!("\u{fffd} ok"));
    }

    #[test]
    fn snippets_are_short() {
        assert_eq!(snippet(b"  busy,\n try   later "), "busy, try later");
        let long = "x".repeat(5000);
        let s = snippet(long.as_bytes());
        assert_eq!(s.chars().count(), ERROR_BODY_CHARS + 1);
        assert!(s.ends_with('…'));
    }
}
