//! Checks responses against the OpenAPI document the server serves: every
//! response the route tests receive goes through [`check_response`], so a
//! status the document does not declare, or a body that does not match the
//! declared schema, fails the test that got it.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

/// The document, as served with the default settings.
pub fn document() -> &'static Value {
    tasker_server::openapi::document()
}

type Validators = Mutex<HashMap<String, Arc<jsonschema::Validator>>>;
static VALIDATORS: LazyLock<Validators> = LazyLock::new(Default::default);

/// A validator of `schema` (a schema object of the document, possibly a
/// `$ref`), resolving references against the document's components.
pub fn validator(schema: &Value) -> Arc<jsonschema::Validator> {
    let key = schema.to_string();
    let mut cache = VALIDATORS.lock().unwrap();
    if let Some(v) = cache.get(&key) {
        return v.clone();
    }
    let mut root = match schema {
        Value::Object(m) => Value::Object(m.clone()),
        other => json!({"allOf": [other]}),
    };
    root["components"] = document()["components"].clone();
    let v = Arc::new(
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema {schema} does not compile: {e}")),
    );
    cache.insert(key, v.clone());
    v
}

/// The problems of `instance` against `schema` (empty when it is valid).
pub fn problems(schema: &Value, instance: &Value) -> Vec<String> {
    validator(schema)
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// The document's path template that `path` matches (literal segments
/// preferred over parameters), if any.
pub fn template_of(path: &str) -> Option<String> {
    let paths = document()["paths"].as_object()?;
    let segs: Vec<&str> = path.split('/').collect();
    let mut best: Option<(usize, &String)> = None;
    for t in paths.keys() {
        let tsegs: Vec<&str> = t.split('/').collect();
        if tsegs.len() != segs.len() {
            continue;
        }
        let mut literal = 0;
        let ok = tsegs.iter().zip(&segs).all(|(t, s)| {
            if t.starts_with('{') && t.ends_with('}') {
                !s.is_empty()
            } else {
                literal += 1;
                t == s
            }
        });
        if ok && best.is_none_or(|(n, _)| literal > n) {
            best = Some((literal, t));
        }
    }
    best.map(|(_, t)| t.clone())
}

/// Fails when the response is not what the document declares for
/// `method path`: an undeclared status, or a JSON body off its schema.
#[track_caller]
pub fn check_response(method: &str, path: &str, status: u16, content_type: &str, body: &Value) {
    let error_body = json!({"$ref": "#/components/schemas/ErrorBody"});
    let Some(template) = template_of(path) else {
        // No such route: the fallback answers 404 in the error shape.
        assert_eq!(status, 404, "{method} {path}: no route, yet {status}");
        let p = problems(&error_body, body);
        assert!(p.is_empty(), "{method} {path} -> 404: {p:?}");
        return;
    };
    let item = &document()["paths"][&template];
    let op = &item[method.to_ascii_lowercase()];
    if op.is_null() {
        // The path exists with other methods only (HEAD is answered as GET).
        if method.eq_ignore_ascii_case("HEAD") {
            return;
        }
        assert_eq!(
            status, 405,
            "{method} {path}: not an operation of the document, yet {status}"
        );
        let p = problems(&error_body, body);
        assert!(p.is_empty(), "{method} {path} -> 405: {p:?}");
        return;
    }
    let declared = &op["responses"][status.to_string()];
    assert!(
        !declared.is_null(),
        "{method} {template} answered {status}, which the document does not declare: {body}"
    );
    if !content_type.starts_with("application/json") {
        return;
    }
    let schema = &declared["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "{method} {template} -> {status}: JSON body, but the document declares no JSON schema"
    );
    let p = problems(schema, body);
    assert!(
        p.is_empty(),
        "{method} {template} -> {status}: the body does not match the document: {p:#?}\nbody: {body}"
    );
}

/// Every `example` / `examples` in the document, with the schema it belongs to.
pub fn examples() -> Vec<(String, Value, Value)> {
    fn walk(at: String, v: &Value, out: &mut Vec<(String, Value, Value)>) {
        match v {
            Value::Object(m) => {
                let is_schema =
                    m.contains_key("type") || m.contains_key("$ref") || m.contains_key("oneOf");
                if is_schema {
                    let mut schema = m.clone();
                    let ex = schema.remove("example");
                    let exs = schema.remove("examples");
                    let schema = Value::Object(schema);
                    if let Some(e) = ex {
                        out.push((at.clone(), schema.clone(), e));
                    }
                    if let Some(Value::Array(list)) = exs {
                        for e in list {
                            out.push((at.clone(), schema.clone(), e));
                        }
                    }
                }
                for (k, child) in m {
                    walk(format!("{at}/{k}"), child, out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(format!("{at}/{i}"), child, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(String::new(), document(), &mut out);
    out
}
