//! Stage one of template loading: the YAML shape, exactly as written.
//!
//! Every struct denies unknown keys, so a typo (`depends_on_stpe`) is an error
//! with a line number instead of a silently ignored field. Names that later
//! checks must point at are [`Spanned`] to keep their YAML location.

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

/// A task template file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTemplate {
    pub name: Spanned<String>,
    #[serde(default)]
    pub namespace: Option<Spanned<String>>,
    #[serde(default)]
    pub version: Option<Spanned<String>>,
    #[serde(default)]
    pub description: Option<String>,
    /// JSON Schema for the task context.
    #[serde(default, alias = "schema")]
    pub context_schema: Option<Spanned<serde_json::Value>>,
    pub step_templates: Spanned<Vec<RawStep>>,
    /// Per-environment overrides, merged by step name.
    #[serde(default)]
    pub environments: BTreeMap<String, RawEnvironment>,
    /// Schedules that run this template (docs/FLOW_CONTROL.md).
    #[serde(default)]
    pub schedules: Vec<Spanned<RawSchedule>>,
    /// At most this many tasks of the template run at once
    /// (docs/FLOW_CONTROL.md).
    #[serde(default)]
    pub max_running_tasks: Option<Spanned<i64>>,
}

/// One `schedules:` entry: a schedule of the template it is written in
/// (its latest registered version).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    pub name: String,
    #[serde(default)]
    pub cron: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub every_seconds: Option<u64>,
    #[serde(default)]
    pub catch_up: Option<String>,
    #[serde(default)]
    pub catch_up_window_seconds: Option<u64>,
    #[serde(default)]
    pub context: Option<serde_json::Value>,
}

/// One step template.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub dependent_system: Option<String>,
    pub handler: Spanned<RawHandler>,
    #[serde(default)]
    pub depends_on_step: Option<Spanned<String>>,
    #[serde(default)]
    pub depends_on_steps: Vec<Spanned<String>>,
    #[serde(default)]
    pub default_retryable: Option<bool>,
    #[serde(default)]
    pub default_retry_limit: Option<Spanned<u32>>,
    /// Retry schedule (docs/FLOW_CONTROL.md).
    #[serde(default)]
    pub retry: Option<Spanned<crate::retry::RawRetry>>,
    #[serde(default)]
    pub skippable: Option<bool>,
    #[serde(default)]
    pub timeout_seconds: Option<Spanned<f64>>,
    /// Static inputs handed to the handler.
    #[serde(default)]
    pub inputs: Option<serde_json::Value>,
    /// `concurrency: { key, limit }` (docs/FLOW_CONTROL.md).
    #[serde(default)]
    pub concurrency: Option<Spanned<RawConcurrency>>,
    /// `rate_limit: name` or `{ name, key }` (docs/FLOW_CONTROL.md).
    #[serde(default)]
    pub rate_limit: Option<Spanned<RawRateLimit>>,
}

/// `concurrency: { key: "{{context.customer_id}}", limit: 2 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConcurrency {
    pub key: String,
    pub limit: i64,
}

/// `rate_limit: payments_api` or `rate_limit: { name: payments_api, key: "…" }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawRateLimit {
    Name(String),
    Keyed(RawKeyedRateLimit),
}

/// The long form of `rate_limit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeyedRateLimit {
    pub name: String,
    #[serde(default)]
    pub key: Option<String>,
}

/// `handler: { kind: command, config: {...} }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHandler {
    pub kind: String,
    #[serde(default)]
    pub config: Option<serde_json::Value>,
}

/// `environments.<env>`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvironment {
    #[serde(default)]
    pub step_templates: Vec<RawStepOverride>,
}

/// Fields an environment may override on one step; `config` is deep-merged.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStepOverride {
    pub name: Spanned<String>,
    #[serde(default)]
    pub handler: Option<RawHandlerOverride>,
    #[serde(default)]
    pub default_retryable: Option<bool>,
    #[serde(default)]
    pub default_retry_limit: Option<Spanned<u32>>,
    /// Replaces the step's retry schedule.
    #[serde(default)]
    pub retry: Option<Spanned<crate::retry::RawRetry>>,
    #[serde(default)]
    pub timeout_seconds: Option<Spanned<f64>>,
    #[serde(default)]
    pub inputs: Option<serde_json::Value>,
}

/// Handler fields an environment may override.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHandlerOverride {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub config: Option<serde_json::Value>,
}
