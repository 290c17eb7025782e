//! What every backend can store, so that both refuse the same values.
//!
//! PostgreSQL's `text` and `jsonb` cannot hold the NUL character (U+0000):
//! such a value fails the whole statement with SQLSTATE 22P05 / 22021. SQLite
//! would store it. To behave the same, both backends check outcomes with
//! [`outcome`] before writing and refuse them with
//! [`StoreError::InvalidData`](crate::StoreError::InvalidData); the engine
//! checks each outcome before it joins a batch, so one bad value never
//! fails the other outcomes of its batch.

use crate::{OutcomeResult, StepOutcome};
use serde_json::Value;

/// Where the first NUL character in `value` is, as a JSON path (`$.a[2]`,
/// `$` for the value itself), or None when there is none. Keys count too.
pub fn nul_in_json(value: &Value) -> Option<String> {
    fn walk(v: &Value, path: &mut String) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            Value::Object(map) => map.iter().any(|(k, item)| {
                let len = path.len();
                path.push('.');
                path.push_str(&k.replace('\0', "\\u0000"));
                let found = k.contains('\0') || walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            _ => false,
        }
    }
    let mut path = String::from("$");
    walk(value, &mut path).then_some(path)
}

/// Why `o` cannot be stored, or None when it can.
pub fn outcome(o: &StepOutcome) -> Option<String> {
    result(o.lease.step_id, &o.result)
}

/// Why the outcome `r` of step `step_id` cannot be stored, or None when it can.
pub fn result(step_id: uuid::Uuid, r: &OutcomeResult) -> Option<String> {
    match r {
        OutcomeResult::Success(results) => nul_in_json(results).map(|path| {
            format!("result of step {step_id} contains a NUL character (\\u0000) at {path}")
        }),
        OutcomeResult::Failure { error, .. } => [
            ("message", Some(&error.message)),
            ("kind", Some(&error.kind)),
            ("code", error.code.as_ref()),
        ]
        .into_iter()
        .find(|(_, v)| v.is_some_and(|v| v.contains('\0')))
        .map(|(field, _)| {
            format!("error {field} of step {step_id} contains a NUL character (\\u0000)")
        }),
    }
}

/// The first outcome of `outcomes` that cannot be stored, as an error.
pub fn check_outcomes(outcomes: &[StepOutcome]) -> Result<(), crate::StoreError> {
    match outcomes.iter().find_map(outcome) {
        Some(why) => Err(crate::StoreError::InvalidData(why)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_nul_in_values_and_keys() {
        assert_eq!(nul_in_json(&json!({"a": [1, "x"]})), None);
        assert_eq!(nul_in_json(&json!("a\u{0}b")), Some("$".into()));
        assert_eq!(
            nul_in_json(&json!({"a": [1, "ok", "b\u{0}"]})),
            Some("$.a[2]".into())
        );
        assert_eq!(
            nul_in_json(&json!({"ok": 1, "k\u{0}": 2})),
            Some("$.k\\u0000".into())
        );
    }
}
