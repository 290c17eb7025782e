//! Task templates: loading YAML in two stages and validating the result.
//!
//! Stage one ([`raw`]) deserialises exactly what the file says, rejecting
//! unknown keys. Stage two ([`parse_template`]) applies defaults and the
//! environment's overrides, then checks names, versions, dependencies and
//! cycles, collecting every problem with its file, line and field.

mod error;
mod raw;

pub use error::{TemplateError, TemplateErrors};

use crate::dag::Dag;
use raw::{RawStep, RawTemplate};
use serde::Serialize;
use serde_json::Value;
use serde_saphyr::Spanned;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Default namespace when a template names none.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Default version when a template names none.
pub const DEFAULT_VERSION: &str = "0.1.0";
/// Default number of attempts a step gets.
pub const DEFAULT_RETRY_LIMIT: u32 = 3;
/// Most attempts a step may be given (the REST API's retry limit has the same bound).
pub const MAX_RETRY_LIMIT: u32 = 1000;
/// Longest per-attempt timeout a step may set: one year, far beyond any real
/// step, yet a number every timer can represent.
pub const MAX_TIMEOUT_SECONDS: f64 = 365.0 * 24.0 * 3600.0;
/// Largest template file read, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 16 * 1024 * 1024;
/// Most YAML nodes (mappings, sequences, scalars) in one template: room for
/// 5,000 steps each depending on 50 others, while a pathological file still
/// fails fast instead of exhausting memory.
pub const MAX_TEMPLATE_NODES: usize = 2_000_000;

/// Checks a built-in or registered handler's `config` while a template is
/// validated: `(kind, config)` → `Err(message)` when the config is unusable.
pub type ConfigCheck<'a> = &'a dyn Fn(&str, &Value) -> Result<(), String>;

/// Which handler runs a step, and its configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandlerSpec {
    /// Handler kind: `noop`, `sleep`, `command`, or a name registered in the engine.
    pub kind: String,
    /// Kind-specific configuration (JSON object or null).
    pub config: Value,
}

/// One validated step template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepTemplate {
    /// Unique within the template.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The external system this step talks to (informational).
    pub dependent_system: String,
    /// What runs the step.
    pub handler: HandlerSpec,
    /// Names of the steps this one waits for (`depends_on_step` + `depends_on_steps`, deduplicated, in file order).
    pub depends_on: Vec<String>,
    /// Whether failures are retried. `false` means exactly one attempt.
    pub retryable: bool,
    /// Total attempts allowed (the first attempt included); at least 1.
    pub retry_limit: u32,
    /// The `retry:` schedule (None: the engine's backoff policy for every error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<crate::retry::RetrySchedule>,
    /// Stored and reported; has no effect on execution (as in the reference).
    pub skippable: bool,
    /// Per-attempt timeout.
    pub timeout_seconds: Option<f64>,
    /// Static inputs passed to the handler.
    pub inputs: Value,
    /// At most `limit` steps with the same rendered key run at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<crate::flow::ConcurrencySpec>,
    /// The `[rate_limits]` bucket each run draws a token from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::flow::RateLimitRef>,
}

impl StepTemplate {
    /// Attempts this step may make: `retry_limit`, or 1 when not retryable.
    pub fn max_attempts(&self) -> u32 {
        if self.retryable {
            self.retry_limit.max(1)
        } else {
            1
        }
    }
}

/// A validated task template.
#[derive(Clone, Serialize)]
pub struct TaskTemplate {
    /// Namespace (default `default`).
    pub namespace: String,
    /// Template name, unique within its namespace and version.
    pub name: String,
    /// Semantic version.
    #[serde(serialize_with = "ser_version")]
    pub version: semver::Version,
    /// Free text.
    pub description: Option<String>,
    /// JSON Schema the task context must satisfy.
    pub context_schema: Option<Value>,
    /// Steps in file order; indices match [`TaskTemplate::dag`].
    pub steps: Vec<StepTemplate>,
    /// Dependency graph over `steps`.
    #[serde(skip)]
    pub dag: Dag,
    /// Where the template came from (a file path or `<inline>`).
    pub source: String,
    /// Schedules declared in the file (`schedules:`), each running this
    /// template's latest version.
    pub schedules: Vec<crate::schedule::ScheduleSpec>,
    /// `max_running_tasks`: at most this many tasks of the template (all
    /// versions together) are `in_progress` at once; the claim enforces it.
    pub max_running_tasks: Option<u32>,
    #[serde(skip)]
    validator: Option<Arc<jsonschema::Validator>>,
}

fn ser_version<S: serde::Serializer>(v: &semver::Version, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl fmt::Debug for TaskTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskTemplate")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("version", &self.version.to_string())
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

/// One way a task context fails the template's JSON Schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContextViolation {
    /// JSON pointer into the context (`/customer/email`; empty for the root).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl TaskTemplate {
    /// `namespace.name@version`.
    pub fn full_name(&self) -> String {
        format!("{}.{}@{}", self.namespace, self.name, self.version)
    }

    /// Index of the step called `name`.
    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }

    /// Checks a task context against the template's schema, listing every violation.
    pub fn validate_context(&self, context: &Value) -> Result<(), Vec<ContextViolation>> {
        let Some(validator) = &self.validator else {
            return Ok(());
        };
        let errors: Vec<ContextViolation> = validator
            .iter_errors(context)
            .map(|e| ContextViolation {
                path: e.instance_path().to_string(),
                message: e.to_string(),
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Checks a namespace, template or step name: 1–128 characters of
/// `A-Z a-z 0-9 _ - .`, starting with a letter or digit. Names appear in URLs
/// and log fields, so nothing that needs escaping is allowed.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > 128 {
        return Err("must be 1 to 128 characters long".into());
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) || !name.chars().all(ok_char) {
        return Err(format!(
            "`{name}` may only contain letters, digits, `_`, `-` and `.`, and must start with a letter or digit"
        ));
    }
    Ok(())
}

/// Parses and validates one template.
///
/// `source` names the input in errors (usually the file path); `environment`
/// selects which `environments.<name>` overrides apply (none when `None`).
pub fn parse_template(
    source: &str,
    yaml: &str,
    environment: Option<&str>,
) -> Result<TaskTemplate, TemplateErrors> {
    parse_template_checked(source, yaml, environment, &|_, _| Ok(()))
}

/// [`parse_template`], also checking each step's handler `config` with
/// `check`; a refusal is reported at the step's `handler` line.
pub fn parse_template_checked(
    source: &str,
    yaml: &str,
    environment: Option<&str>,
    check: ConfigCheck<'_>,
) -> Result<TaskTemplate, TemplateErrors> {
    let whole = |message: String| {
        TemplateErrors(vec![TemplateError {
            source: source.to_string(),
            line: None,
            column: None,
            field: String::new(),
            message,
        }])
    };
    if yaml.len() > MAX_TEMPLATE_BYTES {
        return Err(whole(format!(
            "the file is {} bytes; templates are limited to {MAX_TEMPLATE_BYTES} bytes (docs/TEMPLATES.md#limits)",
            yaml.len()
        )));
    }
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = MAX_TEMPLATE_NODES;
    budget.max_events = 2 * MAX_TEMPLATE_NODES;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    let raw: RawTemplate = serde_saphyr::from_str_with_options(yaml, options)
        .map_err(|e| TemplateErrors(vec![TemplateError::from_yaml(source, &e)]))?;
    Builder {
        source,
        errors: Vec::new(),
        check,
    }
    .build(raw, environment)
}

/// Parses a template from raw bytes, reporting invalid UTF-8 by byte offset
/// (with its line and column) instead of refusing the whole file vaguely.
pub fn parse_template_bytes(
    source: &str,
    bytes: &[u8],
    environment: Option<&str>,
    check: ConfigCheck<'_>,
) -> Result<TaskTemplate, TemplateErrors> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_template_checked(source, text, environment, check),
        Err(e) => {
            let offset = e.valid_up_to();
            let before = &bytes[..offset];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let column = String::from_utf8_lossy(&before[line_start..])
                .chars()
                .count()
                + 1;
            Err(TemplateErrors(vec![TemplateError {
                source: source.to_string(),
                line: u32::try_from(line).ok(),
                column: u32::try_from(column).ok(),
                field: String::new(),
                message: format!(
                    "not valid UTF-8: invalid byte 0x{:02x} at byte offset {offset}",
                    bytes[offset]
                ),
            }]))
        }
    }
}

struct Builder<'a> {
    source: &'a str,
    errors: Vec<TemplateError>,
    check: ConfigCheck<'a>,
}

impl Builder<'_> {
    fn err<T>(&mut self, at: &Spanned<T>, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(TemplateError {
            source: self.source.to_string(),
            line: Some(at.referenced.line() as u32),
            column: Some(at.referenced.column() as u32),
            field: field.into(),
            message: message.into(),
        });
    }

    fn build(
        mut self,
        mut raw: RawTemplate,
        environment: Option<&str>,
    ) -> Result<TaskTemplate, TemplateErrors> {
        if let Err(m) = check_name(&raw.name.value) {
            self.err(&raw.name, "name", m);
        }
        let namespace = match &raw.namespace {
            Some(ns) => {
                if let Err(m) = check_name(&ns.value) {
                    self.err(ns, "namespace", m);
                }
                ns.value.clone()
            }
            None => DEFAULT_NAMESPACE.to_string(),
        };
        let version = match &raw.version {
            Some(v) => match semver::Version::parse(v.value.trim()) {
                Ok(parsed) => parsed,
                Err(e) => {
                    self.err(
                        v,
                        "version",
                        format!(
                            "`{}` is not a semantic version (MAJOR.MINOR.PATCH): {e}",
                            v.value
                        ),
                    );
                    semver::Version::new(0, 0, 0)
                }
            },
            None => semver::Version::new(0, 1, 0),
        };
        let validator = match &raw.context_schema {
            Some(schema) => match jsonschema::validator_for(&schema.value) {
                Ok(v) => Some(Arc::new(v)),
                Err(e) => {
                    self.err(
                        schema,
                        "context_schema",
                        format!("not a valid JSON Schema: {e}"),
                    );
                    None
                }
            },
            None => None,
        };

        if let Some(env) = environment
            && let Some(overrides) = raw.environments.remove(env)
        {
            self.apply_overrides(&mut raw.step_templates.value, overrides);
        }

        let steps_span = raw.step_templates.referenced;
        let raw_steps = raw.step_templates.value;
        if raw_steps.is_empty() {
            self.errors.push(TemplateError {
                source: self.source.to_string(),
                line: Some(steps_span.line() as u32),
                column: Some(steps_span.column() as u32),
                field: "step_templates".into(),
                message: "a template needs at least one step".into(),
            });
        }

        // Names: valid and unique.
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, step) in raw_steps.iter().enumerate() {
            let field = format!("step_templates[{i}].name");
            if let Err(m) = check_name(&step.name.value) {
                self.err(&step.name, field.clone(), m);
            }
            if let Some(first) = index.insert(&step.name.value, i) {
                index.insert(&step.name.value, first);
                self.err(
                    &step.name,
                    field,
                    format!(
                        "duplicate step name `{}` (first defined at step_templates[{first}])",
                        step.name.value
                    ),
                );
            }
        }

        // Dependencies: known, not self.
        let mut edges = Vec::new();
        let mut steps = Vec::with_capacity(raw_steps.len());
        for (i, step) in raw_steps.iter().enumerate() {
            let mut deps: Vec<String> = Vec::new();
            let listed =
                step.depends_on_step
                    .iter()
                    .map(|d| (d, format!("step_templates[{i}].depends_on_step")))
                    .chain(
                        step.depends_on_steps.iter().enumerate().map(|(j, d)| {
                            (d, format!("step_templates[{i}].depends_on_steps[{j}]"))
                        }),
                    );
            for (dep, field) in listed {
                match index.get(dep.value.as_str()) {
                    None => self.err(
                        dep,
                        field,
                        format!(
                            "step `{}` depends on unknown step `{}`",
                            step.name.value, dep.value
                        ),
                    ),
                    Some(&p) => {
                        if !deps.contains(&dep.value) {
                            deps.push(dep.value.clone());
                            edges.push((p, i));
                        }
                    }
                }
            }
            if let Some(t) = &step.timeout_seconds
                && !(t.value.is_finite() && t.value > 0.0 && t.value <= MAX_TIMEOUT_SECONDS)
            {
                self.err(
                    t,
                    format!("step_templates[{i}].timeout_seconds"),
                    format!(
                        "must be a positive number of seconds, at most {MAX_TIMEOUT_SECONDS} (one year)"
                    ),
                );
            }
            if let Some(n) = &step.default_retry_limit
                && !(1..=MAX_RETRY_LIMIT).contains(&n.value)
            {
                self.err(
                    n,
                    format!("step_templates[{i}].default_retry_limit"),
                    format!(
                        "must be between 1 and {MAX_RETRY_LIMIT} (the attempts a step gets, the first included; for a single attempt write 1 or `default_retryable: false`)"
                    ),
                );
            }
            if let Some(r) = &step.retry
                && let Err(bad) = r.value.validate()
            {
                for (field, message) in bad {
                    self.err(r, format!("step_templates[{i}].retry.{field}"), message);
                }
            }
            if let Some(c) = &step.concurrency {
                if let Err(m) = crate::flow::check_key_template(&c.value.key) {
                    self.err(c, format!("step_templates[{i}].concurrency.key"), m);
                }
                if !(1..=i64::from(crate::flow::MAX_CONCURRENCY_LIMIT)).contains(&c.value.limit) {
                    self.err(
                        c,
                        format!("step_templates[{i}].concurrency.limit"),
                        format!(
                            "must be between 1 and {} (steps with the same key running at once)",
                            crate::flow::MAX_CONCURRENCY_LIMIT
                        ),
                    );
                }
            }
            if let Some(r) = &step.rate_limit {
                let (name, key) = match &r.value {
                    raw::RawRateLimit::Name(n) => (n, None),
                    raw::RawRateLimit::Keyed(k) => (&k.name, k.key.as_ref()),
                };
                if !crate::flow::valid_limit_name(name) {
                    self.err(
                        r,
                        format!("step_templates[{i}].rate_limit"),
                        "must name a `[rate_limits]` entry (letters, digits, `_`, `-`, `.`)",
                    );
                }
                if let Some(key) = key
                    && let Err(m) = crate::flow::check_key_template(key)
                {
                    self.err(r, format!("step_templates[{i}].rate_limit.key"), m);
                }
            }
            let kind = step.handler.value.kind.trim();
            if kind.is_empty() {
                self.err(
                    &step.handler,
                    format!("step_templates[{i}].handler.kind"),
                    "must name a handler kind",
                );
            } else {
                let config = step.handler.value.config.clone().unwrap_or(Value::Null);
                if let Err(m) = (self.check)(kind, &config) {
                    self.err(
                        &step.handler,
                        format!("step_templates[{i}].handler.config"),
                        m,
                    );
                }
            }
            steps.push(to_step(step, deps));
        }

        let dag = match Dag::new(raw_steps.len(), edges) {
            Ok(dag) => Some(dag),
            Err(cycle) => {
                let names: Vec<&str> = cycle
                    .path
                    .iter()
                    .map(|&i| raw_steps[i].name.value.as_str())
                    .collect();
                let first = cycle.path.first().copied().unwrap_or(0);
                self.err(
                    &raw_steps[first].name,
                    format!("step_templates[{first}]"),
                    format!("dependency cycle: {}", names.join(" -> ")),
                );
                None
            }
        };

        let schedules = self.schedules(&raw.schedules, &namespace, &raw.name.value);
        let max_running_tasks = raw.max_running_tasks.as_ref().and_then(|m| {
            let ok = u32::try_from(m.value)
                .ok()
                .filter(|n| (1..=crate::flow::MAX_RUNNING_TASKS).contains(n));
            if ok.is_none() {
                self.err(
                    m,
                    "max_running_tasks".to_string(),
                    format!(
                        "must be between 1 and {} (tasks of this template running at once)",
                        crate::flow::MAX_RUNNING_TASKS
                    ),
                );
            }
            ok
        });

        match dag {
            Some(dag) if self.errors.is_empty() => Ok(TaskTemplate {
                namespace,
                name: raw.name.value,
                version,
                description: raw.description,
                context_schema: raw.context_schema.map(|s| s.value),
                steps,
                dag,
                source: self.source.to_string(),
                schedules,
                max_running_tasks,
                validator,
            }),
            _ => Err(TemplateErrors(self.errors)),
        }
    }

    /// The `schedules:` of a file, checked (each problem at its entry).
    fn schedules(
        &mut self,
        raw: &[Spanned<raw::RawSchedule>],
        namespace: &str,
        template: &str,
    ) -> Vec<crate::schedule::ScheduleSpec> {
        let mut out: Vec<crate::schedule::ScheduleSpec> = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let s = &r.value;
            let catch_up = match s.catch_up.as_deref() {
                None => crate::schedule::CatchUp::default(),
                Some(c) => match crate::schedule::CatchUp::parse(c) {
                    Some(c) => c,
                    None => {
                        self.err(
                            r,
                            format!("schedules[{i}].catch_up"),
                            format!("`{c}` is not one of none, latest, all"),
                        );
                        continue;
                    }
                },
            };
            let spec = crate::schedule::ScheduleSpec {
                name: s.name.clone(),
                namespace: namespace.to_string(),
                template: template.to_string(),
                version: None,
                cron: s.cron.clone(),
                timezone: s.timezone.clone(),
                every_seconds: s.every_seconds,
                catch_up,
                catch_up_window_seconds: s.catch_up_window_seconds,
                context: s
                    .context
                    .clone()
                    .unwrap_or_else(|| Value::Object(Default::default())),
            };
            if let Err(e) = spec.compile() {
                self.err(r, format!("schedules[{i}].{}", e.field), e.message);
                continue;
            }
            if out.iter().any(|o| o.name == spec.name) {
                self.err(
                    r,
                    format!("schedules[{i}].name"),
                    format!("duplicate schedule name `{}`", spec.name),
                );
                continue;
            }
            out.push(spec);
        }
        out
    }

    fn apply_overrides(&mut self, steps: &mut [RawStep], env: raw::RawEnvironment) {
        for (k, o) in env.step_templates.into_iter().enumerate() {
            let Some(step) = steps.iter_mut().find(|s| s.name.value == o.name.value) else {
                self.err(
                    &o.name,
                    format!("environments.step_templates[{k}].name"),
                    format!("override for unknown step `{}`", o.name.value),
                );
                continue;
            };
            if let Some(h) = o.handler {
                if let Some(kind) = h.kind {
                    step.handler.value.kind = kind;
                }
                if let Some(config) = h.config {
                    let base = step.handler.value.config.get_or_insert(Value::Null);
                    merge_json(base, config);
                }
            }
            if o.default_retryable.is_some() {
                step.default_retryable = o.default_retryable;
            }
            if o.retry.is_some() {
                step.retry = o.retry;
            }
            if o.default_retry_limit.is_some() {
                step.default_retry_limit = o.default_retry_limit;
            }
            if o.timeout_seconds.is_some() {
                step.timeout_seconds = o.timeout_seconds;
            }
            if let Some(inputs) = o.inputs {
                merge_json(step.inputs.get_or_insert(Value::Null), inputs);
            }
        }
    }
}

fn to_step(raw: &RawStep, depends_on: Vec<String>) -> StepTemplate {
    StepTemplate {
        name: raw.name.value.clone(),
        description: raw.description.clone(),
        dependent_system: raw
            .dependent_system
            .clone()
            .unwrap_or_else(|| "unknown".into()),
        handler: HandlerSpec {
            kind: raw.handler.value.kind.trim().to_string(),
            config: raw.handler.value.config.clone().unwrap_or(Value::Null),
        },
        depends_on,
        retryable: raw.default_retryable.unwrap_or(true),
        retry_limit: raw
            .default_retry_limit
            .as_ref()
            .map_or(DEFAULT_RETRY_LIMIT, |n| n.value),
        // Validated with the other fields above; an invalid block never
        // gets here (the template is refused).
        retry: raw.retry.as_ref().and_then(|r| r.value.validate().ok()),
        skippable: raw.skippable.unwrap_or(false),
        timeout_seconds: raw.timeout_seconds.as_ref().map(|t| t.value),
        inputs: raw.inputs.clone().unwrap_or(Value::Null),
        concurrency: raw
            .concurrency
            .as_ref()
            .map(|c| crate::flow::ConcurrencySpec {
                key: c.value.key.clone(),
                limit: u32::try_from(c.value.limit).unwrap_or(1),
            }),
        rate_limit: raw.rate_limit.as_ref().map(|r| match &r.value {
            raw::RawRateLimit::Name(name) => crate::flow::RateLimitRef {
                name: name.clone(),
                key: None,
            },
            raw::RawRateLimit::Keyed(k) => crate::flow::RateLimitRef {
                name: k.name.clone(),
                key: k.key.clone(),
            },
        }),
    }
}

/// Deep-merges `overlay` into `base`: objects merge key by key, anything else replaces.
pub fn merge_json(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge_json(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests;
