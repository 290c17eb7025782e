//! Masking sensitive values before they reach logs or error output.
//!
//! A key is sensitive when its lowercase name contains one of the configured
//! fragments (`password`, `token`, `secret`, …), so `db_password` and
//! `X-Api-Token` are caught too.

use serde_json::Value;

/// The replacement text.
pub const MASK: &str = "[FILTERED]";

/// Fragments that make a key sensitive by default.
pub const DEFAULT_SENSITIVE_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "api_key",
    "apikey",
    "private_key",
    "credential",
    "cookie",
    "ssn",
    "credit_card",
    "card_number",
    "cvv",
];

/// Masks values of sensitive keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masker {
    fragments: Vec<String>,
}

impl Default for Masker {
    fn default() -> Self {
        Masker::new(DEFAULT_SENSITIVE_KEYS.iter().copied())
    }
}

impl Masker {
    /// A masker for these key fragments (case-insensitive).
    pub fn new<S: AsRef<str>>(fragments: impl IntoIterator<Item = S>) -> Self {
        Masker {
            fragments: fragments
                .into_iter()
                .map(|f| f.as_ref().to_ascii_lowercase())
                .filter(|f| !f.is_empty())
                .collect(),
        }
    }

    /// True when `key` names a sensitive value.
    pub fn is_sensitive(&self, key: &str) -> bool {
        let k = key.to_ascii_lowercase().replace('-', "_");
        self.fragments.iter().any(|f| k.contains(f.as_str()))
    }

    /// True when any segment of a JSON pointer (`/user/password`) is sensitive.
    pub fn is_sensitive_path(&self, pointer: &str) -> bool {
        pointer
            .split('/')
            .any(|seg| !seg.is_empty() && self.is_sensitive(seg))
    }

    /// A copy of `value` with every sensitive key's value replaced by [`MASK`], at any depth.
    pub fn mask(&self, value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let v = if self.is_sensitive(k) {
                            Value::String(MASK.into())
                        } else {
                            self.mask(v)
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.mask(v)).collect()),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_nested_sensitive_keys_only() {
        let m = Masker::default();
        let v = json!({"user": {"name": "ann", "Password": "p", "tokens": [1]}, "items": [{"api-key": "k", "n": 1}], "Authorization": "Bearer x"});
        assert_eq!(
            m.mask(&v),
            json!({"user": {"name": "ann", "Password": MASK, "tokens": MASK}, "items": [{"api-key": MASK, "n": 1}], "Authorization": MASK})
        );
    }

    #[test]
    fn custom_fragments_and_paths() {
        let m = Masker::new(["pin"]);
        assert!(m.is_sensitive("card_PIN"));
        assert!(!m.is_sensitive("password"));
        assert!(m.is_sensitive_path("/account/pin"));
        assert!(!m.is_sensitive_path("/account/name"));
    }
}
