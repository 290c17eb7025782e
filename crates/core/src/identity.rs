//! Task identity: the hash that detects duplicate task requests.
//!
//! With the `hash` strategy, two requests for the same template with the same
//! context, initiator, source system and reason hash alike; the store rejects
//! the second inside a configurable window. The default strategy (`none`)
//! never deduplicates (the reference's random-UUID default, Q7).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How duplicate task requests are detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityStrategy {
    /// Every request creates a task.
    #[default]
    None,
    /// Identical requests within the window are rejected.
    Hash,
}

/// The fields that make two requests "the same".
#[derive(Debug, Clone, Copy)]
pub struct IdentityInput<'a> {
    /// Template namespace.
    pub namespace: &'a str,
    /// Template name.
    pub name: &'a str,
    /// Template version.
    pub version: &'a str,
    /// Task context.
    pub context: &'a Value,
    /// Who asked.
    pub initiator: &'a str,
    /// From which system.
    pub source_system: &'a str,
    /// Why.
    pub reason: &'a str,
}

/// Hex SHA-256 over a canonical encoding (object keys sorted at every depth).
pub fn identity_hash(input: IdentityInput<'_>) -> String {
    let mut h = Sha256::new();
    for part in [
        input.namespace,
        input.name,
        input.version,
        input.initiator,
        input.source_system,
        input.reason,
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let mut canonical = String::new();
    write_canonical(input.context, &mut canonical);
    h.update(canonical.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(context: &Value) -> IdentityInput<'_> {
        IdentityInput {
            namespace: "n",
            name: "t",
            version: "1.0.0",
            context,
            initiator: "i",
            source_system: "s",
            reason: "r",
        }
    }

    #[test]
    fn key_order_does_not_matter_but_values_do() {
        let a = json!({"a": 1, "b": {"x": [1, 2], "y": null}});
        let b: Value = serde_json::from_str(r#"{"b": {"y": null, "x": [1, 2]}, "a": 1}"#).unwrap();
        assert_eq!(identity_hash(input(&a)), identity_hash(input(&b)));
        let c = json!({"a": 2, "b": {"x": [1, 2], "y": null}});
        assert_ne!(identity_hash(input(&a)), identity_hash(input(&c)));
        let mut other = input(&a);
        other.reason = "other";
        assert_ne!(identity_hash(input(&a)), identity_hash(other));
    }
}
