//! `[[webhooks]]`: subscribers defined in the configuration, and the
//! dispatcher's knobs under `[events]` (docs/EVENTS.md, "Webhooks").

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One `[[webhooks]]` entry. Synced into the database at start (matched by
/// name), so every process shares it; removing it from the configuration
/// removes it there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Unique name (letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// Where events are POSTed (`http` or `https`; the `[http]` SSRF policy applies).
    pub url: String,
    /// Event type patterns: exact names, `prefix.*` or `*`.
    #[serde(default = "all_events")]
    pub events: Vec<String>,
    /// Only events of tasks in these namespaces (empty: all).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// HMAC-SHA256 key of the `Tasker-Signature` header (none: unsigned).
    #[serde(default)]
    pub secret: Option<String>,
    /// Attempts before a delivery is dead-lettered.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Per-request timeout.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: f64,
}

fn all_events() -> Vec<String> {
    vec!["*".into()]
}

/// Attempts before a dead letter, when not set.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
/// Most attempts a subscriber may ask for.
pub const MAX_ATTEMPTS: u32 = 100;
/// Request timeout when not set, in seconds.
pub const DEFAULT_TIMEOUT_SECONDS: f64 = 10.0;
/// Longest request timeout, in seconds.
pub const MAX_TIMEOUT_SECONDS: f64 = 300.0;

fn default_max_attempts() -> u32 {
    DEFAULT_MAX_ATTEMPTS
}

fn default_timeout() -> f64 {
    DEFAULT_TIMEOUT_SECONDS
}

/// Checks a subscriber's name: 1 to 100 of `[A-Za-z0-9_.-]`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 100 {
        return Err("must be 1 to 100 characters".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "may use letters, digits, `_`, `-` and `.` only (found {c:?})"
        ));
    }
    Ok(())
}

/// Checks event type patterns: at least one; each `*`, `prefix.*` or a
/// dotted name of `[A-Za-z0-9_.-]`.
pub fn check_patterns(patterns: &[String]) -> Result<(), String> {
    if patterns.is_empty() {
        return Err("must list at least one event type or pattern (`*` for all)".into());
    }
    for p in patterns {
        if p == "*" {
            continue;
        }
        let name = p.strip_suffix(".*").unwrap_or(p);
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            && !name.split('.').any(str::is_empty)
            && !name.contains('*');
        if !ok {
            return Err(format!(
                "`{p}` is not an event type or pattern (e.g. `task.completed`, `step.*`, `*`)"
            ));
        }
    }
    Ok(())
}

/// Checks a URL's form (the SSRF policy is applied by the engine).
pub fn check_url(url: &str) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "must be an http:// or https:// URL".to_string())?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() {
        return Err("must be an http:// or https:// URL".into());
    }
    Ok(())
}

/// Checks the attempt budget.
pub fn check_max_attempts(n: u32) -> Result<(), String> {
    if !(1..=MAX_ATTEMPTS).contains(&n) {
        return Err(format!("must be between 1 and {MAX_ATTEMPTS}"));
    }
    Ok(())
}

/// Checks the request timeout.
pub fn check_timeout(s: f64) -> Result<(), String> {
    if !(s.is_finite() && s > 0.0 && s <= MAX_TIMEOUT_SECONDS) {
        return Err(format!(
            "must be a positive number of seconds, at most {MAX_TIMEOUT_SECONDS}"
        ));
    }
    Ok(())
}

/// Problems of the `[[webhooks]]` list as (key, value, what is wrong, fix);
/// keys are `webhooks[i].field`.
pub fn problems(hooks: &[WebhookConfig]) -> Vec<(String, Value, String, &'static str)> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, h) in hooks.iter().enumerate() {
        let key = |f: &str| format!("webhooks[{i}].{f}");
        if let Err(m) = check_name(&h.name) {
            out.push((
                key("name"),
                h.name.clone().into(),
                m,
                "use e.g. \"ops-alerts\"",
            ));
        } else if !seen.insert(h.name.clone()) {
            out.push((
                key("name"),
                h.name.clone().into(),
                "is used by another [[webhooks]] entry".into(),
                "give every subscriber its own name",
            ));
        }
        if let Err(m) = check_url(&h.url) {
            out.push((
                key("url"),
                h.url.clone().into(),
                m,
                "use e.g. \"https://hooks.example.com/tasker\"",
            ));
        }
        if let Err(m) = check_patterns(&h.events) {
            out.push((
                key("events"),
                Value::from(h.events.clone()),
                m,
                "use e.g. [\"task.*\", \"step.failed\"]",
            ));
        }
        if h.secret.as_deref() == Some("") {
            out.push((
                key("secret"),
                Value::from(""),
                "is empty".into(),
                "remove it (unsigned deliveries) or set a long random value",
            ));
        }
        if let Err(m) = check_max_attempts(h.max_attempts) {
            out.push((key("max_attempts"), h.max_attempts.into(), m, "use 10"));
        }
        if let Err(m) = check_timeout(h.timeout_seconds) {
            out.push((
                key("timeout_seconds"),
                h.timeout_seconds.into(),
                m,
                "use 10",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(name: &str, url: &str) -> WebhookConfig {
        WebhookConfig {
            name: name.into(),
            url: url.into(),
            events: all_events(),
            namespaces: vec![],
            secret: None,
            max_attempts: 10,
            timeout_seconds: 10.0,
        }
    }

    #[test]
    fn problems_name_their_entry_and_field() {
        assert!(problems(&[hook("a", "https://x.example/h")]).is_empty());
        let mut bad = hook("a b", "ftp://x");
        bad.events = vec!["task.**".into()];
        bad.max_attempts = 0;
        bad.timeout_seconds = 0.0;
        let keys: Vec<String> = problems(&[hook("ok", "http://h/"), bad, hook("ok", "http://h")])
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(
            keys,
            [
                "webhooks[1].name",
                "webhooks[1].url",
                "webhooks[1].events",
                "webhooks[1].max_attempts",
                "webhooks[1].timeout_seconds",
                "webhooks[2].name"
            ]
        );
    }

    #[test]
    fn patterns() {
        for ok in [
            "*",
            "task.*",
            "step.failed",
            "custom.order_shipped",
            "billing.*",
        ] {
            assert!(check_patterns(&[ok.into()]).is_ok(), "{ok}");
        }
        for bad in ["", "task.", "*.x", "a..b", "ta sk.*", "task.**"] {
            assert!(check_patterns(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(check_patterns(&[]).is_err());
    }
}
