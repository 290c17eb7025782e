//! Lifecycle events: the outbox rows a store writes in the same transaction
//! as the state change they describe (docs/EVENTS.md).
//!
//! Both backends write each event next to the transition it stands for,
//! inside the statement that wrote the transition (SQLite: the status
//! triggers that write the transitions; PostgreSQL: statement-level
//! triggers on `task_transitions` / `step_transitions`), so no code path
//! that writes a transition can forget its event, and a transition that
//! rolls back takes its event with it. Custom events (`custom.*` and other
//! dotted names a handler emits) are inserted by [`crate::Store::event_emit`].
//!
//! Event ids are a per-database sequence, ascending in commit order: a
//! reader that has seen id N will never later see an id below N (on
//! PostgreSQL ids are given to committed rows by a sequencer, see
//! `store-postgres/src/events_outbox.rs`), so `after=N` resumes without
//! gaps, and a task's events are numbered in the order they happened.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// Every event type the stores write from transitions, with the transition
/// it stands for. docs/EVENTS.md lists the same names (a test compares them).
pub const CATALOG: &[(&str, &str)] = &[
    ("task.created", "task created (→ pending)"),
    ("task.started", "first step claimed (pending → in_progress)"),
    ("task.completed", "every step complete (→ complete)"),
    (
        "task.failed",
        "a step failed for good and nothing can move (→ error)",
    ),
    ("task.cancelled", "cancelled by an operator (→ cancelled)"),
    (
        "task.retry_requested",
        "an errored task can move again (error → pending)",
    ),
    (
        "task.resolved",
        "every step done after some were resolved by hand (→ resolved_manually)",
    ),
    (
        "task.paused",
        "paused by an operator: no new step starts (state unchanged)",
    ),
    (
        "task.resumed",
        "resumed by an operator: ready steps start again (state unchanged)",
    ),
    (
        "step.started",
        "claimed by a worker (pending → in_progress)",
    ),
    (
        "step.completed",
        "attempt succeeded (in_progress → complete)",
    ),
    ("step.failed", "attempt failed (in_progress → error)"),
    (
        "step.retry_scheduled",
        "a failed step will run again (error → pending)",
    ),
    ("step.cancelled", "cancelled (→ cancelled)"),
    (
        "step.resolved_manually",
        "resolved by an operator (→ resolved_manually)",
    ),
    (
        "step.lease_expired",
        "its worker stopped renewing the lease; rescued (in_progress → error)",
    ),
];

/// First segments a custom event name may not use (the system's and the
/// original's reserved namespaces).
pub const RESERVED_PREFIXES: &[&str] = &["task", "step", "workflow", "observability", "test"];

/// Longest custom event name.
pub const MAX_CUSTOM_NAME: usize = 128;

/// Checks a custom event name like the original's custom registry: it must
/// contain a dot, its first segment must not be reserved, and it may use
/// only `[A-Za-z0-9_.-]` (at most [`MAX_CUSTOM_NAME`] characters, no empty
/// segment). The message says what is wrong.
pub fn validate_custom_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_CUSTOM_NAME {
        return Err(format!(
            "must be 1 to {MAX_CUSTOM_NAME} characters (got {})",
            name.len()
        ));
    }
    if !name.contains('.') {
        return Err("must contain a dot, e.g. `custom.order_shipped`".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "may use letters, digits, `_`, `-` and `.` only (found {c:?})"
        ));
    }
    if name.split('.').any(str::is_empty) {
        return Err("has an empty segment".into());
    }
    let first = name
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if RESERVED_PREFIXES.contains(&first.as_str()) {
        return Err(format!("namespace `{first}` is reserved for system events"));
    }
    Ok(())
}

/// Whether `name` matches a type pattern: an exact name, `prefix.*` (any
/// name starting with `prefix.`) or `*` (everything).
pub fn type_matches(pattern: &str, name: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(prefix) => {
            name.len() > prefix.len() + 1
                && name.starts_with(prefix)
                && name.as_bytes()[prefix.len()] == b'.'
        }
        None => pattern == name,
    }
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    /// Position in the database's event sequence (ascending in commit order).
    pub id: i64,
    /// Type, e.g. `step.failed` (see [`CATALOG`]) or a custom name.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The task it belongs to.
    pub task_id: Uuid,
    /// The step, for step and custom events.
    pub step_id: Option<Uuid>,
    /// The task's namespace.
    pub namespace: String,
    /// When the change happened (the transition's time).
    pub created_at: DateTime<Utc>,
    /// Type-specific fields (docs/EVENTS.md).
    pub payload: Value,
}

/// Which events to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only ids above this (0: from the oldest kept).
    pub after: i64,
    /// At most this many (callers cap it).
    pub limit: u32,
    /// Type patterns (see [`type_matches`]); empty: every type.
    pub types: Vec<String>,
    /// Only this task's events.
    pub task_id: Option<Uuid>,
    /// Only events of tasks in this namespace.
    pub namespace: Option<String>,
}

/// A custom event a handler emits for the step it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCustomEvent {
    /// The step (its task and namespace are looked up).
    pub step_id: Uuid,
    /// Name, checked with [`validate_custom_name`].
    pub name: String,
    /// Any JSON the handler sends.
    pub payload: Value,
    /// When given, the event is recorded only while the step is running
    /// under this lease (external workers prove they hold the step);
    /// otherwise [`crate::StoreError::Conflict`].
    pub lease_token: Option<Uuid>,
    /// When.
    pub now: DateTime<Utc>,
}

/// Makes the payloads of system events (`task.*`, `step.*`) of both
/// backends alike (custom payloads are returned as they were sent): the integer microsecond
/// times the SQL writes (`next_attempt_at`) become RFC 3339 strings, and
/// top-level members that are null (not applicable to the type) are
/// dropped, except the `results` of `step.completed` and
/// `step.resolved_manually` (a step may succeed with `null`).
pub fn normalize_payload(event_type: &str, mut payload: Value) -> Value {
    if !(event_type.starts_with("task.") || event_type.starts_with("step.")) {
        return payload;
    }
    let keeps_results = matches!(event_type, "step.completed" | "step.resolved_manually");
    if let Some(obj) = payload.as_object_mut() {
        obj.retain(|k, v| !v.is_null() || (keeps_results && k == "results"));
        for key in ["next_attempt_at"] {
            if let Some(us) = obj.get(key).and_then(Value::as_i64) {
                let text = DateTime::<Utc>::from_timestamp_micros(us)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
                obj.insert(key.to_string(), text.map_or(Value::Null, Value::String));
            }
        }
    }
    payload
}

/// SQL for the type filter of an event query: `(type = ? OR type LIKE ?…)`
/// with `?` placeholders, and the values to bind in order (`None` when the
/// query has no type filter; `*` matches everything).
pub fn type_filter_sql(
    types: &[String],
    placeholder: &mut dyn FnMut() -> String,
) -> Option<(String, Vec<String>)> {
    if types.is_empty() || types.iter().any(|t| t == "*") {
        return None;
    }
    let mut parts = Vec::new();
    let mut binds = Vec::new();
    for t in types {
        match t.strip_suffix(".*") {
            Some(prefix) => {
                // LIKE wildcards in a prefix are escaped, so `a_b.*` only matches `a_b.`.
                let escaped = prefix
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                parts.push(format!("type LIKE {} ESCAPE '\\'", placeholder()));
                binds.push(format!("{escaped}.%"));
            }
            None => {
                parts.push(format!("type = {}", placeholder()));
                binds.push(t.clone());
            }
        }
    }
    Some((format!("({})", parts.join(" OR ")), binds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_names_follow_the_registry_rules() {
        assert!(validate_custom_name("custom.order_shipped").is_ok());
        assert!(validate_custom_name("billing.invoice-sent").is_ok());
        for bad in [
            "nodot",
            "task.mine",
            "Step.x",
            "workflow.y",
            "test.z",
            "a..b",
            ".a",
            "a b.c",
            "",
        ] {
            assert!(validate_custom_name(bad).is_err(), "{bad}");
        }
        assert!(validate_custom_name(&format!("custom.{}", "x".repeat(200))).is_err());
    }

    #[test]
    fn patterns_match_exact_prefix_and_all() {
        assert!(type_matches("task.*", "task.created"));
        assert!(!type_matches("task.*", "taskx.created"));
        assert!(!type_matches("task.*", "task."));
        assert!(type_matches("step.failed", "step.failed"));
        assert!(!type_matches("step.failed", "step.failedx"));
        assert!(type_matches("*", "custom.a"));
    }

    /// docs/EVENTS.md's catalog table lists exactly the types of [`CATALOG`].
    #[test]
    fn docs_catalog_matches_the_code() {
        let doc = include_str!("../../../docs/EVENTS.md");
        let table = doc
            .split("<!-- catalog:")
            .nth(1)
            .expect("the catalog marker in docs/EVENTS.md");
        let documented: Vec<&str> = table
            .lines()
            .skip(1)
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| l.split('|').nth(1))
            .map(str::trim)
            .filter_map(|c| c.strip_prefix('`').and_then(|c| c.strip_suffix('`')))
            .collect();
        let code: Vec<&str> = CATALOG.iter().map(|(name, _)| *name).collect();
        assert_eq!(documented, code);
        for (name, when) in CATALOG {
            assert!(
                table.contains(&format!("| `{name}` | {when} |")),
                "docs/EVENTS.md describes {name} as the code does: {when}"
            );
        }
    }

    #[test]
    fn micros_become_rfc3339() {
        let v = normalize_payload(
            "step.failed",
            serde_json::json!({"next_attempt_at": 1_000_000, "a": 1, "results": null}),
        );
        assert!(v.get("results").is_none());
        assert_eq!(v["next_attempt_at"], "1970-01-01T00:00:01.000000Z");
        assert_eq!(v["a"], 1);
    }
}
