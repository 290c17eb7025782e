//! The step-handler interface and the registry of handler kinds.
//!
//! A template names a handler *kind* per step (`handler: { kind: command }`).
//! The engine looks the kind up here and calls it with a [`StepContext`].
//! Library users add kinds by implementing [`StepHandler`].

use async_trait::async_trait;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Everything a handler needs to run one attempt of one step.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// The task.
    pub task_id: Uuid,
    /// The step.
    pub step_id: Uuid,
    /// Step name.
    pub step_name: String,
    /// Template namespace.
    pub namespace: String,
    /// Template name.
    pub task_name: String,
    /// Template version.
    pub version: String,
    /// The task's context (its input).
    pub context: Value,
    /// The step's static inputs from the template.
    pub inputs: Value,
    /// Results of the parent steps, by step name.
    pub parent_results: Map<String, Value>,
    /// The handler's configuration from the template.
    pub config: Value,
    /// This attempt (1 = first).
    pub attempt: u32,
    /// Attempts allowed in total.
    pub max_attempts: u32,
    /// Stable across attempts of this step: use it to make side effects idempotent.
    pub idempotency_key: String,
    /// The task's correlation id: forward it to the services you call.
    pub correlation_id: String,
    /// The per-attempt timeout, if any (the engine enforces it).
    pub timeout: Option<Duration>,
    /// Emits custom events for this step (`ctx.events.emit("custom.x", json)`,
    /// docs/EVENTS.md).
    pub events: crate::events::EventEmitter,
}

impl StepContext {
    /// The idempotency key of a step: `tasker:<step id>`. Same for every attempt.
    pub fn idempotency_key_for(step_id: Uuid) -> String {
        format!("tasker:{step_id}")
    }
}

/// A failed attempt.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepError {
    /// Try again later (if attempts remain).
    #[error("{message}")]
    Retryable {
        /// What went wrong.
        message: String,
        /// Wait at least this long before the next attempt (e.g. HTTP Retry-After),
        /// instead of the backoff policy's delay; capped by `max_backoff_seconds`.
        retry_after: Option<Duration>,
        /// Optional machine-readable code.
        code: Option<String>,
    },
    /// Do not try again: the step goes to `error` now.
    #[error("{message}")]
    Permanent {
        /// What went wrong.
        message: String,
        /// Optional machine-readable code (e.g. `HTTP_404`).
        code: Option<String>,
    },
}

impl StepError {
    /// A retryable failure.
    pub fn retryable(message: impl Into<String>) -> Self {
        StepError::Retryable {
            message: message.into(),
            retry_after: None,
            code: None,
        }
    }

    /// A permanent failure.
    pub fn permanent(message: impl Into<String>) -> Self {
        StepError::Permanent {
            message: message.into(),
            code: None,
        }
    }

    /// Asks for a specific delay before the next attempt (retryable errors only).
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        if let StepError::Retryable { retry_after, .. } = &mut self {
            *retry_after = Some(delay);
        }
        self
    }

    /// Attaches a machine-readable code.
    pub fn with_code(mut self, new: impl Into<String>) -> Self {
        match &mut self {
            StepError::Retryable { code, .. } | StepError::Permanent { code, .. } => {
                *code = Some(new.into())
            }
        }
        self
    }

    /// `retryable` or `permanent`.
    pub fn kind(&self) -> &'static str {
        match self {
            StepError::Retryable { .. } => "retryable",
            StepError::Permanent { .. } => "permanent",
        }
    }
}

/// Runs steps of one kind.
///
/// ```
/// use tasker_engine::{StepHandler, StepContext, StepError};
/// use serde_json::{json, Value};
///
/// struct Double;
///
/// #[async_trait::async_trait]
/// impl StepHandler for Double {
///     async fn call(&self, step: &StepContext) -> Result<Value, StepError> {
///         let n = step.context["n"].as_i64().ok_or_else(|| StepError::permanent("context.n must be an integer"))?;
///         Ok(json!({ "value": n * 2 }))
///     }
/// }
/// ```
#[async_trait]
pub trait StepHandler: Send + Sync + 'static {
    /// Runs one attempt. Return JSON results, or a retryable / permanent error.
    /// The engine enforces the step's timeout by dropping this future.
    async fn call(&self, step: &StepContext) -> Result<Value, StepError>;

    /// Checks a step's `handler.config` before any task runs: when
    /// templates are validated (`tasker validate`, with file:line) and
    /// registered. The default accepts anything; built-in kinds refuse what
    /// they could not run.
    fn check_config(&self, config: &Value) -> Result<(), String> {
        let _ = config;
        Ok(())
    }
}

/// Handler kinds by name.
#[derive(Clone, Default)]
pub struct HandlerRegistry {
    kinds: HashMap<String, Arc<dyn StepHandler>>,
}

impl std::fmt::Debug for HandlerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kinds: Vec<&String> = self.kinds.keys().collect();
        kinds.sort();
        f.debug_struct("HandlerRegistry")
            .field("kinds", &kinds)
            .finish()
    }
}

impl HandlerRegistry {
    /// A registry with the built-in kinds: `noop`, `sleep`, `command`, and
    /// `http` with the default [`HttpPolicy`](crate::handlers::HttpPolicy).
    pub fn with_builtins() -> Self {
        let mut r = HandlerRegistry::default();
        r.insert("noop", crate::handlers::Noop);
        r.insert("sleep", crate::handlers::Sleep);
        r.insert("command", crate::handlers::Command);
        r.insert("http", crate::handlers::Http::default());
        r
    }

    /// Adds or replaces a kind.
    pub fn insert(&mut self, kind: impl Into<String>, handler: impl StepHandler) {
        self.kinds.insert(kind.into(), Arc::new(handler));
    }

    /// Adds or replaces a kind from a shared handler.
    pub fn insert_arc(&mut self, kind: impl Into<String>, handler: Arc<dyn StepHandler>) {
        self.kinds.insert(kind.into(), handler);
    }

    /// Looks a kind up.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn StepHandler>> {
        self.kinds.get(kind).cloned()
    }

    /// True if the kind is registered.
    pub fn contains(&self, kind: &str) -> bool {
        self.kinds.contains_key(kind)
    }

    /// Registered kind names, sorted.
    pub fn kinds(&self) -> Vec<String> {
        let mut k: Vec<String> = self.kinds.keys().cloned().collect();
        k.sort();
        k
    }
}
