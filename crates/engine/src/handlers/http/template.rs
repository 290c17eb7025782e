//! The placeholder syntax of `http` step configs.
//!
//! String values in `url`, `headers`, `query` and `body` may contain
//! placeholders, `{{ path }}`, replaced with values of the step being run:
//!
//! | placeholder | value |
//! |---|---|
//! | `{{context.order.id}}` | a value in the task's context |
//! | `{{inputs.x}}` | a value in the step's static `inputs` |
//! | `{{parents.charge.receipt}}` | a value in the results of the parent step `charge` |
//! | `{{step.attempt}}`, `{{step.max_attempts}}` | this attempt (1-based), attempts allowed |
//! | `{{step.idempotency_key}}`, `{{step.id}}`, `{{step.name}}` | the step |
//! | `{{task.id}}`, `{{task.correlation_id}}`, `{{task.namespace}}`, `{{task.name}}`, `{{task.version}}` | the task |
//!
//! - A path is dot-separated; a segment that is a number indexes an array
//!   (`{{context.items.0.sku}}`). Spaces inside the braces are ignored.
//! - Strings are inserted as they are; other values as compact JSON
//!   (`42`, `true`, `null`, `{"a":1}`).
//! - In a `body`, a string that is exactly one placeholder (`"{{context.order}}"`)
//!   is replaced by the value itself, keeping its JSON type (number, object…).
//! - In the `url`, inserted values are percent-encoded (everything but
//!   `A-Z a-z 0-9 - . _ ~`), so a value cannot change the URL's structure;
//!   `{{ path | raw }}` inserts it unencoded (e.g. a base URL from the context).
//! - `\{{` is a literal `{{`.
//! - A path that does not exist is an error naming it (the step fails
//!   permanently: retrying would not make it appear).

use crate::handler::StepContext;
use serde_json::Value;
use std::fmt;

/// Why a string could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// The path names nothing in the step's data.
    Missing {
        /// The path as written, e.g. `context.order.id`.
        path: String,
        /// The part of it that exists, e.g. `context.order`.
        found: String,
    },
    /// Not a valid placeholder.
    Syntax(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Missing { path, found } if found.is_empty() => write!(
                f,
                "template path `{path}` not found (roots: context, inputs, parents, step, task)"
            ),
            TemplateError::Missing { path, found } => {
                write!(
                    f,
                    "template path `{path}` not found (`{found}` has no such key)"
                )
            }
            TemplateError::Syntax(msg) => write!(f, "template syntax: {msg}"),
        }
    }
}

impl std::error::Error for TemplateError {}

/// How inserted values are written into a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// As they are (headers, query values, body strings).
    Plain,
    /// Percent-encoded unless the placeholder says `| raw` (the URL).
    Url,
}

/// One piece of a parsed string.
#[derive(Debug, Clone, PartialEq)]
enum Piece<'s> {
    Text(String),
    Var { path: &'s str, raw: bool },
}

/// Splits `s` into literal text and placeholders.
fn parse(s: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        if rest[..open].ends_with('\\') {
            text.push_str(&rest[..open - 1]);
            text.push_str("{{");
            rest = &rest[open + 2..];
            continue;
        }
        text.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| TemplateError::Syntax(format!("unclosed `{{{{` in {s:?}")))?;
        let inner = after[..close].trim();
        let (path, raw) = match inner.split_once('|') {
            Some((path, filter)) if filter.trim() == "raw" => (path.trim(), true),
            Some((_, filter)) => {
                return Err(TemplateError::Syntax(format!(
                    "unknown filter `{}` in `{{{{{inner}}}}}` (only `raw` exists)",
                    filter.trim()
                )));
            }
            None => (inner, false),
        };
        if path.is_empty()
            || path.split('.').any(str::is_empty)
            || path.contains(char::is_whitespace)
        {
            return Err(TemplateError::Syntax(format!(
                "`{{{{{inner}}}}}` is not a dot-separated path such as `context.order.id`"
            )));
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(Piece::Var { path, raw });
        rest = &after[close + 2..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// The values placeholders can name, borrowed from one step attempt.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    step: &'a StepContext,
}

impl<'a> Scope<'a> {
    /// The scope of one attempt.
    pub fn new(step: &'a StepContext) -> Self {
        Scope { step }
    }

    /// Looks a dot-separated path up.
    pub fn lookup(&self, path: &str) -> Result<Value, TemplateError> {
        let mut segments = path.split('.');
        let root = segments.next().unwrap_or_default();
        let missing = |found: &str| TemplateError::Missing {
            path: path.to_string(),
            found: found.to_string(),
        };
        let s = self.step;
        // Roots holding JSON are walked; `step` and `task` are flat records.
        let (mut current, mut found): (&Value, String) = match root {
            "context" => (&s.context, root.to_string()),
            "inputs" => (&s.inputs, root.to_string()),
            "parents" => {
                let Some(name) = segments.next() else {
                    return Ok(Value::Object(s.parent_results.clone()));
                };
                let v = s.parent_results.get(name).ok_or_else(|| missing(root))?;
                (v, format!("{root}.{name}"))
            }
            "step" | "task" => {
                let field = segments.next().ok_or_else(|| {
                    TemplateError::Syntax(format!("`{path}` needs a field, e.g. `{root}.id`"))
                })?;
                if segments.next().is_some() {
                    return Err(missing(&format!("{root}.{field}")));
                }
                return match (root, field) {
                    ("step", "attempt") => Ok(s.attempt.into()),
                    ("step", "max_attempts") => Ok(s.max_attempts.into()),
                    ("step", "idempotency_key") => Ok(s.idempotency_key.clone().into()),
                    ("step", "id") => Ok(s.step_id.to_string().into()),
                    ("step", "name") => Ok(s.step_name.clone().into()),
                    ("task", "id") => Ok(s.task_id.to_string().into()),
                    ("task", "correlation_id") => Ok(s.correlation_id.clone().into()),
                    ("task", "namespace") => Ok(s.namespace.clone().into()),
                    ("task", "name") => Ok(s.task_name.clone().into()),
                    ("task", "version") => Ok(s.version.clone().into()),
                    _ => Err(missing(root)),
                };
            }
            _ => return Err(missing("")),
        };
        for segment in segments {
            let next = match current {
                Value::Object(map) => map.get(segment),
                Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            current = next.ok_or_else(|| missing(&found))?;
            found.push('.');
            found.push_str(segment);
        }
        Ok(current.clone())
    }

    /// Renders a string, replacing every placeholder.
    pub fn render_str(&self, s: &str, encoding: Encoding) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(s.len());
        for piece in parse(s)? {
            match piece {
                Piece::Text(t) => out.push_str(&t),
                Piece::Var { path, raw } => {
                    let text = as_text(&self.lookup(path)?);
                    if encoding == Encoding::Url && !raw {
                        percent_encode_into(&text, &mut out);
                    } else {
                        out.push_str(&text);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Renders every string inside a JSON value (object keys are left as
    /// they are). A string that is exactly one placeholder becomes the value
    /// it names, with its JSON type.
    pub fn render_json(&self, value: &Value) -> Result<Value, TemplateError> {
        Ok(match value {
            Value::String(s) => {
                let pieces = parse(s)?;
                match pieces.as_slice() {
                    [Piece::Var { path, .. }] => self.lookup(path)?,
                    _ => Value::String(self.render_str(s, Encoding::Plain)?),
                }
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.render_json(v))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_json(v)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => other.clone(),
        })
    }
}

/// A value as text: strings as they are, anything else as compact JSON.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Percent-encodes everything but the URL "unreserved" characters.
fn percent_encode_into(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;
    use uuid::Uuid;

    fn step() -> StepContext {
        let mut parents = serde_json::Map::new();
        parents.insert("charge".into(), json!({"receipt": "r-1", "amount": 1999}));
        StepContext {
            task_id: Uuid::nil(),
            step_id: Uuid::from_u128(7),
            step_name: "notify".into(),
            namespace: "shop".into(),
            task_name: "checkout".into(),
            version: "1.2.0".into(),
            context: json!({"order": {"id": 42, "items": [{"sku": "a b/c"}], "note": null}}),
            inputs: json!({"x": "ex"}),
            parent_results: parents,
            config: Value::Null,
            attempt: 2,
            max_attempts: 3,
            idempotency_key: "tasker:k".into(),
            correlation_id: "corr".into(),
            timeout: None,
            events: crate::events::EventEmitter::detached(),
        }
    }

    fn render(s: &str) -> Result<String, TemplateError> {
        Scope::new(&step()).render_str(s, Encoding::Plain)
    }

    #[test]
    fn replaces_every_root() {
        assert_eq!(
            render("{{context.order.id}}|{{inputs.x}}|{{parents.charge.receipt}}|{{step.attempt}}|{{step.idempotency_key}}").unwrap(),
            "42|ex|r-1|2|tasker:k"
        );
        assert_eq!(
            render("{{step.max_attempts}} {{step.name}} {{step.id}} {{task.id}} {{task.correlation_id}} {{task.namespace}}/{{task.name}}@{{task.version}}").unwrap(),
            format!("3 notify {} {} corr shop/checkout@1.2.0", Uuid::from_u128(7), Uuid::nil())
        );
    }

    #[test]
    fn spaces_indices_and_non_strings() {
        assert_eq!(render("id={{ context.order.id }}").unwrap(), "id=42");
        assert_eq!(render("{{context.order.items.0.sku}}").unwrap(), "a b/c");
        assert_eq!(render("{{context.order.note}}").unwrap(), "null");
        assert_eq!(
            render("{{parents.charge}}").unwrap(),
            r#"{"amount":1999,"receipt":"r-1"}"#
        );
        assert_eq!(render("no placeholders").unwrap(), "no placeholders");
        assert_eq!(render("").unwrap(), "");
    }

    #[test]
    fn escapes_and_single_braces() {
        assert_eq!(
            render(r"\{{context.order.id}}").unwrap(),
            "{{context.order.id}}"
        );
        assert_eq!(render("{a} }} {").unwrap(), "{a} }} {");
        assert_eq!(render("{{context.order.id}}}").unwrap(), "42}");
    }

    #[test]
    fn missing_paths_name_the_path() {
        let err = render("x {{context.order.customer.email}}").unwrap_err();
        assert_eq!(
            err,
            TemplateError::Missing {
                path: "context.order.customer.email".into(),
                found: "context.order".into()
            }
        );
        assert!(
            err.to_string().contains("`context.order.customer.email`"),
            "{err}"
        );
        assert!(render("{{parents.refund.id}}").is_err());
        assert!(render("{{context.order.items.5}}").is_err());
        assert!(render("{{context.order.id.more}}").is_err());
        assert!(render("{{step.nope}}").is_err());
        assert!(render("{{step.attempt.x}}").is_err());
        let err = render("{{secrets.token}}").unwrap_err();
        assert!(err.to_string().contains("roots: context"), "{err}");
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "{{context.x",
            "{{}}",
            "{{ context..x }}",
            "{{context x}}",
            "{{context.x | upper}}",
            "{{step}}",
        ] {
            assert!(
                matches!(render(bad), Err(TemplateError::Syntax(_))),
                "{bad}: {:?}",
                render(bad)
            );
        }
    }

    #[test]
    fn url_values_are_encoded_unless_raw() {
        let s = step();
        let scope = Scope::new(&s);
        assert_eq!(
            scope
                .render_str(
                    "http://h/items/{{context.order.items.0.sku}}?q=1",
                    Encoding::Url
                )
                .unwrap(),
            "http://h/items/a%20b%2Fc?q=1"
        );
        assert_eq!(
            scope
                .render_str(
                    "http://h/{{context.order.items.0.sku | raw}}",
                    Encoding::Url
                )
                .unwrap(),
            "http://h/a b/c"
        );
        assert_eq!(
            scope
                .render_str("{{step.idempotency_key}}", Encoding::Url)
                .unwrap(),
            "tasker%3Ak"
        );
        let mut out = String::new();
        percent_encode_into("é", &mut out);
        assert_eq!(out, "%C3%A9");
    }

    #[test]
    fn json_bodies_keep_types_for_whole_placeholders() {
        let s = step();
        let scope = Scope::new(&s);
        let body = json!({
            "order": "{{context.order.id}}",
            "label": "order {{context.order.id}}",
            "charge": "{{ parents.charge }}",
            "list": ["{{step.attempt}}", 1, null, true],
            "{{not.a.key}}": "x",
        });
        assert_eq!(
            scope.render_json(&body).unwrap(),
            json!({
                "order": 42,
                "label": "order 42",
                "charge": {"receipt": "r-1", "amount": 1999},
                "list": [2, 1, null, true],
                "{{not.a.key}}": "x",
            })
        );
        assert!(
            scope
                .render_json(&json!({"a": ["{{context.nope}}"]}))
                .is_err()
        );
        assert_eq!(
            scope.render_json(&json!(r"\{{context.order.id}}")).unwrap(),
            json!("{{context.order.id}}")
        );
    }
}
