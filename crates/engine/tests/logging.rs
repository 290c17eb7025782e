//! Structured logs: every line about a step or its task carries the task's
//! correlation id and the step's identity; sensitive values are masked.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};
use tasker_engine::{StepContext, StepError, StepHandler, TaskRequest};

/// Collects log output in memory.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Fails once (a warn line), then returns a secret.
struct Secretive;

#[async_trait::async_trait]
impl StepHandler for Secretive {
    async fn call(&self, step: &StepContext) -> Result<Value, StepError> {
        tracing::info!("handler says hello");
        if step.attempt == 1 {
            return Err(StepError::retryable("first try fails"));
        }
        Ok(json!({"user": "ann", "api_token": "s3cr3t"}))
    }
}

fn field<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    line.get(name)
        .or_else(|| line.get("span").and_then(|s| s.get(name)))
}

#[tokio::test(flavor = "current_thread")]
async fn every_step_line_carries_the_correlation_id_and_step_identity() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter("tasker_engine=debug,logging=info")
        .with_writer(capture.clone())
        .finish();
    // current_thread runtime: spawned tasks run on this thread, under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let (store, _dir) = sqlite().await;
    let yaml = "name: logged\nnamespace: obs\nversion: 2.1.0\nstep_templates:\n  - name: first\n    handler: { kind: secretive }\n  - name: second\n    depends_on_step: first\n    handler: { kind: noop }\n";
    let tasker = builder(store)
        .handler("secretive", Secretive)
        .template(template(yaml))
        .build()
        .unwrap();
    let task = run_once(
        &tasker,
        TaskRequest::new("obs", "logged").correlation_id("corr-123"),
    )
    .await;

    let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let about_task: Vec<&Value> = lines
        .iter()
        .filter(|l| field(l, "task_id") == Some(&json!(task.id.to_string())))
        .collect();
    let messages: Vec<&str> = about_task
        .iter()
        .filter_map(|l| l["message"].as_str())
        .collect();
    for expected in [
        "handler says hello",
        "step failed",
        "step succeeded",
        "task finished",
    ] {
        assert!(
            messages.contains(&expected),
            "no `{expected}` line in {messages:?}"
        );
    }
    for line in &about_task {
        assert_eq!(
            field(line, "correlation_id"),
            Some(&json!("corr-123")),
            "{line}"
        );
        for key in ["step_id", "step", "namespace", "name", "version", "attempt"] {
            assert!(field(line, key).is_some(), "missing {key} in {line}");
        }
        assert_eq!(field(line, "namespace"), Some(&json!("obs")));
        assert_eq!(field(line, "version"), Some(&json!("2.1.0")));
    }
    assert!(!text.contains("s3cr3t"), "secret leaked into logs");
    assert!(
        text.contains("[FILTERED]"),
        "results were not logged masked"
    );
}

#[tokio::test]
async fn schema_errors_do_not_echo_sensitive_values() {
    let (store, _dir) = sqlite().await;
    let yaml = "name: s\ncontext_schema:\n  type: object\n  properties:\n    password: { type: integer }\n    age: { type: integer }\nstep_templates:\n  - name: a\n    handler: { kind: noop }\n";
    let tasker = builder(store).template(template(yaml)).build().unwrap();
    let err = tasker
        .create_task(
            TaskRequest::new("default", "s").context(json!({"password": "hunter2", "age": "old"})),
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        text.contains("/password the value at /password is invalid ([FILTERED] masked)"),
        "{text}"
    );
    assert!(
        text.contains("\"old\""),
        "non-sensitive values stay readable: {text}"
    );
}
