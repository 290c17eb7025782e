//! Concurrency keys and rate limits as templates and the configuration
//! declare them (docs/FLOW_CONTROL.md). The claim-time rule lives in
//! `tasker_store::flow`; this module holds the declarations and their checks.
//!
//! ```yaml
//! step_templates:
//!   - name: charge
//!     handler: { kind: noop }
//!     concurrency: { key: "customer:{{context.customer_id}}", limit: 2 }
//!     rate_limit: payments_api            # or { name: payments_api, key: "{{context.region}}" }
//! ```

use serde::{Deserialize, Serialize};

/// Most steps one concurrency key may run at once.
pub const MAX_CONCURRENCY_LIMIT: u32 = 100_000;

/// Largest `max_running_tasks` of a template.
pub const MAX_RUNNING_TASKS: u32 = 100_000;
/// Longest rendered key or bucket name stored.
pub const MAX_KEY_LEN: usize = 512;

/// `concurrency: { key, limit }` of a step template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConcurrencySpec {
    /// A string with placeholders (`{{context.customer_id}}`), rendered from
    /// the task's context, the step's inputs and the task's identity when
    /// the task is created.
    pub key: String,
    /// Steps with the same rendered key running at once, across all processes.
    pub limit: u32,
}

/// `rate_limit:` of a step template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateLimitRef {
    /// The bucket's name in `[rate_limits]`.
    pub name: String,
    /// Optional per-key buckets: a template rendered like a concurrency key;
    /// each value gets its own bucket with the named limit's rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// One `[rate_limits]` entry: a token bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitDef {
    /// Tokens added per second: the sustained rate of claims.
    pub per_second: f64,
    /// Most tokens held: how many may start at once after a quiet spell
    /// (default: `per_second`, at least 1).
    #[serde(default)]
    pub burst: Option<f64>,
}

impl RateLimitDef {
    /// The bucket's size.
    pub fn burst(&self) -> f64 {
        self.burst.unwrap_or(self.per_second.max(1.0))
    }

    /// Every problem, as `(field, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(self.per_second.is_finite() && self.per_second > 0.0 && self.per_second <= 1e6) {
            out.push((
                "per_second",
                "must be a number of claims per second above 0, at most 1000000".to_string(),
            ));
        }
        if let Some(b) = self.burst
            && !(b.is_finite() && (1.0..=1e9).contains(&b))
        {
            out.push((
                "burst",
                "must be a number between 1 and 1000000000".to_string(),
            ));
        }
        out
    }
}

/// Whether `name` may name a rate limit: letters, digits, `_`, `-`, `.`.
pub fn valid_limit_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Roots a key template may name: what is known when the task is created.
pub const KEY_ROOTS: [&str; 3] = ["context", "inputs", "task"];

/// Checks a key template: placeholders are well formed (`{{ path }}`, the
/// same syntax as the `http` handler's) and name only [`KEY_ROOTS`]
/// (a key is fixed when the task is created, before any parent ran).
pub fn check_key_template(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > MAX_KEY_LEN {
        return Err(format!("must be at most {MAX_KEY_LEN} bytes"));
    }
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        if rest[..open].ends_with('\\') {
            rest = &rest[open + 2..];
            continue;
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("unclosed `{{{{` in {s:?}"))?;
        let path = after[..close].trim();
        let root = path.split('.').next().unwrap_or_default();
        if path.is_empty()
            || path.split('.').any(str::is_empty)
            || path.contains(char::is_whitespace)
        {
            return Err(format!(
                "`{{{{{path}}}}}` is not a dot-separated path such as `context.customer_id`"
            ));
        }
        if !KEY_ROOTS.contains(&root) {
            return Err(format!(
                "`{{{{{path}}}}}`: a key may only use context, inputs or task (it is rendered when the task is created)"
            ));
        }
        rest = &after[close + 2..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_templates() {
        assert!(check_key_template("customer:{{context.customer_id}}").is_ok());
        assert!(check_key_template("{{ inputs.region }}-{{task.namespace}}").is_ok());
        assert!(check_key_template("plain").is_ok());
        assert!(check_key_template("").is_err());
        assert!(
            check_key_template("{{parents.a.b}}")
                .unwrap_err()
                .contains("only use context, inputs or task")
        );
        assert!(
            check_key_template("{{context.a")
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(check_key_template("{{context..a}}").is_err());
    }

    #[test]
    fn rate_limit_defs() {
        let ok = RateLimitDef {
            per_second: 50.0,
            burst: Some(100.0),
        };
        assert!(ok.problems().is_empty());
        assert_eq!(ok.burst(), 100.0);
        let slow = RateLimitDef {
            per_second: 0.5,
            burst: None,
        };
        assert_eq!(slow.burst(), 1.0);
        let bad = RateLimitDef {
            per_second: 0.0,
            burst: Some(0.5),
        };
        let fields: Vec<_> = bad.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["per_second", "burst"]);
        assert!(valid_limit_name("payments_api"));
        assert!(!valid_limit_name("a b"));
    }
}
