//! Builds [`NewTask`]s for the conformance cases: a few named shapes, and a
//! builder for anything else.

use crate::{Identity, NewStep, NewTask};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tasker_core::HandlerSpec;
use uuid::Uuid;

/// Ready-made dependency shapes. Step names are given per shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One step `a`.
    Single,
    /// `s0 → s1 → … → s(n-1)`.
    Linear(usize),
    /// `a → (b, c) → d`.
    Diamond,
    /// `n` independent roots `r0 … r(n-1)`.
    Roots(usize),
}

/// A task of the given shape in namespace `test`, template `shape@1.0.0`,
/// created at `now`; every step is a `noop` with `max_attempts = 3`.
pub fn new_task(shape: Shape, now: DateTime<Utc>) -> NewTask {
    let mut b = TaskBuilder::new("test", "shape");
    match shape {
        Shape::Single => {
            b = b.step("a", &[]);
        }
        Shape::Linear(n) => {
            for i in 0..n {
                let parent = if i == 0 {
                    String::new()
                } else {
                    format!("s{}", i - 1)
                };
                let parents: Vec<&str> = if i == 0 {
                    vec![]
                } else {
                    vec![parent.as_str()]
                };
                b = b.step(&format!("s{i}"), &parents);
            }
        }
        Shape::Diamond => {
            b = b
                .step("a", &[])
                .step("b", &["a"])
                .step("c", &["a"])
                .step("d", &["b", "c"]);
        }
        Shape::Roots(n) => {
            for i in 0..n {
                b = b.step(&format!("r{i}"), &[]);
            }
        }
    }
    b.build(now)
}

/// Builds a task step by step.
#[derive(Debug, Clone)]
pub struct TaskBuilder {
    task: NewTask,
}

impl TaskBuilder {
    /// An empty task of template `namespace.name@1.0.0`.
    pub fn new(namespace: &str, name: &str) -> Self {
        TaskBuilder {
            task: NewTask {
                id: Uuid::now_v7(),
                namespace: namespace.to_string(),
                name: name.to_string(),
                version: "1.0.0".to_string(),
                context: json!({"order_id": 42, "note": "conformance"}),
                initiator: "conformance".to_string(),
                source_system: "tests".to_string(),
                reason: "testing".to_string(),
                tags: vec!["t1".to_string(), "t2".to_string()],
                correlation_id: format!("corr-{}", Uuid::new_v4().simple()),
                identity: None,
                steps: Vec::new(),
                now: DateTime::<Utc>::UNIX_EPOCH,
            },
        }
    }

    /// Adds a `noop` step (3 attempts, retryable) after the named parents,
    /// which must have been added before.
    ///
    /// # Panics
    /// On an unknown parent name (a bug in the test).
    pub fn step(mut self, name: &str, parents: &[&str]) -> Self {
        let parents = parents
            .iter()
            .map(|p| {
                self.task
                    .steps
                    .iter()
                    .position(|s| s.name == *p)
                    .unwrap_or_else(|| panic!("unknown parent `{p}` of `{name}`"))
            })
            .collect();
        self.task.steps.push(NewStep {
            id: Uuid::now_v7(),
            name: name.to_string(),
            description: Some(format!("step {name}")),
            dependent_system: "test-system".to_string(),
            handler: HandlerSpec {
                kind: "noop".to_string(),
                config: json!({"step": name}),
            },
            inputs: json!({"input_of": name}),
            max_attempts: 3,
            retry_limit: 3,
            retryable: true,
            skippable: false,
            timeout_seconds: Some(30.0),
            parents,
            flow: Default::default(),
        });
        self
    }

    /// Sets the handler kind of the last added step.
    pub fn kind(mut self, kind: &str) -> Self {
        if let Some(s) = self.task.steps.last_mut() {
            s.handler.kind = kind.to_string();
        }
        self
    }

    /// Sets `max_attempts` and `retry_limit` of the last added step.
    pub fn attempts(mut self, max_attempts: i32, retry_limit: i32) -> Self {
        if let Some(s) = self.task.steps.last_mut() {
            s.max_attempts = max_attempts;
            s.retry_limit = retry_limit;
        }
        self
    }

    /// Sets the template version.
    pub fn version(mut self, version: &str) -> Self {
        self.task.version = version.to_string();
        self
    }

    /// Sets the task context.
    pub fn context(mut self, context: Value) -> Self {
        self.task.context = context;
        self
    }

    /// Enables duplicate detection.
    pub fn identity(mut self, hash: &str, since: DateTime<Utc>) -> Self {
        self.task.identity = Some(Identity {
            hash: hash.to_string(),
            since,
        });
        self
    }

    /// The task, created at `now`.
    pub fn build(mut self, now: DateTime<Utc>) -> NewTask {
        self.task.now = now;
        self.task
    }
}

/// Sets the identity of a built task (shorthand for shapes).
pub fn with_identity(mut task: NewTask, hash: &str, since: DateTime<Utc>) -> NewTask {
    task.identity = Some(Identity {
        hash: hash.to_string(),
        since,
    });
    task
}
