//! Runs one claimed step: find the handler, enforce the timeout, turn the
//! result into an outcome with the retry decision.

use super::{Finished, LeaseBook};
use crate::handler::{StepContext, StepError};
use crate::service::Inner;
use futures::FutureExt;
use serde_json::Value;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tasker_store::{ClaimedStep, LeaseRef, OutcomeResult, StepErrorRecord, StepOutcome};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tracing::Instrument;

/// Starts the handler of a step this worker just leased (by a claim or a
/// claim on completion), holding `permit` (its slot) until its outcome is
/// written; the lease is in `leases` from now on (heartbeat, abort).
pub(super) fn launch(
    inner: &Arc<Inner>,
    step: ClaimedStep,
    permit: OwnedSemaphorePermit,
    out: &mpsc::UnboundedSender<Finished>,
    leases: &LeaseBook,
) {
    let lease = LeaseRef {
        step_id: step.step_id,
        token: step.lease_token,
    };
    leases.claimed(lease);
    let task = tokio::spawn(run(
        inner.clone(),
        step,
        permit,
        out.clone(),
        leases.clone(),
    ));
    leases.running(lease, task.abort_handle());
}

async fn run(
    inner: Arc<Inner>,
    step: ClaimedStep,
    permit: OwnedSemaphorePermit,
    out: mpsc::UnboundedSender<Finished>,
    leases: LeaseBook,
) {
    let span = tracing::info_span!(
        "step",
        task_id = %step.task_id,
        step_id = %step.step_id,
        step = %step.step_name,
        namespace = %step.namespace,
        template = %step.task_name,
        version = %step.version,
        attempt = step.attempt,
        correlation_id = %step.correlation_id,
    );
    // One trace per task: this attempt's span hangs under the task's root.
    crate::telemetry::parent_step_span(&span, step.task_id);
    async move {
        let started = std::time::Instant::now();
        let (result, timed_out) = call_handler(&inner, &step).await;
        let lease = LeaseRef { step_id: step.step_id, token: step.lease_token };
        // From here a lost lease means "finished a moment ago", not "abort".
        leases.handler_done(lease);
        let elapsed = started.elapsed().as_secs_f64();
        let elapsed_ms = elapsed * 1000.0;
        let result = match result {
            Ok(results) => {
                if tracing::enabled!(tracing::Level::DEBUG) {
                    let shown = inner.masker.mask(&results);
                    tracing::debug!(elapsed_ms, results = %shown, "step succeeded");
                }
                OutcomeResult::Success(results)
            }
            Err(error) => {
                let retry_at = retry_at(&inner, &step, &error);
                let kind = if timed_out { "timeout" } else { error.kind() };
                tracing::warn!(elapsed_ms, error = %error, kind, will_retry = retry_at.is_some(), "step failed");
                let code = match &error {
                    StepError::Retryable { code, .. } | StepError::Permanent { code, .. } => code.clone(),
                };
                OutcomeResult::Failure {
                    // Handler text (a command's stderr, say) may carry NUL
                    // characters no store can hold: keep them visible, escaped.
                    error: StepErrorRecord {
                        message: escape_nul(&error.to_string()),
                        kind: kind.to_string(),
                        code: code.map(|c| escape_nul(&c)),
                        attempt: step.attempt,
                    },
                    retry_at,
                }
            }
        };
        // A result the store cannot hold fails this step alone, here, before
        // it joins a batch with other steps' outcomes.
        let result = match tasker_store::storable::result(step.step_id, &result) {
            None => result,
            Some(why) => {
                tracing::error!(error = %why, "step result cannot be stored; failing the step");
                invalid_result(lease, step.attempt, &why).result
            }
        };
        // The slot travels with the outcome and is freed once it is written.
        // If the completer is gone we are shutting down; the lease will expire.
        let status = match &result {
            OutcomeResult::Success(_) => "complete",
            OutcomeResult::Failure { retry_at: Some(_), .. } => "retry",
            OutcomeResult::Failure { retry_at: None, .. } => "error",
        };
        crate::metrics::step_finished(&step.handler.kind, status, elapsed);
        let outcome = StepOutcome { lease, result };
        let _ = out.send(Finished {
            outcome,
            task_id: step.task_id,
            namespace: step.namespace,
            task_name: step.task_name,
            span: tracing::Span::current(),
            slot: permit,
        });
    }
    .instrument(span)
    .await
}

fn escape_nul(s: &str) -> String {
    s.replace('\0', "\\u0000")
}

/// Error kind of a step whose result (or error) the store cannot hold.
pub(super) const INVALID_RESULT: &str = "invalid_result";

/// A permanent failure saying why the step's own outcome could not be
/// stored. Not retried: the handler would most likely return the same value.
/// The reason is cleaned of what made it unstorable.
pub(super) fn invalid_result(lease: LeaseRef, attempt: i32, why: &str) -> StepOutcome {
    StepOutcome {
        lease,
        result: OutcomeResult::Failure {
            error: StepErrorRecord {
                message: format!("invalid_result: {}", escape_nul(why)),
                kind: INVALID_RESULT.to_string(),
                code: Some("INVALID_RESULT".to_string()),
                attempt,
            },
            retry_at: None,
        },
    }
}

async fn call_handler(inner: &Inner, step: &ClaimedStep) -> (Result<Value, StepError>, bool) {
    let Some(handler) = inner.handlers.get(&step.handler.kind) else {
        return (
            Err(StepError::permanent(format!(
                "no handler registered for kind `{}`",
                step.handler.kind
            ))
            .with_code("HANDLER_MISSING")),
            false,
        );
    };
    let timeout = step
        .timeout_seconds
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .or(inner.config.default_step_timeout);
    let ctx = StepContext {
        task_id: step.task_id,
        step_id: step.step_id,
        step_name: step.step_name.clone(),
        namespace: step.namespace.clone(),
        task_name: step.task_name.clone(),
        version: step.version.clone(),
        context: step.context.clone(),
        inputs: step.inputs.clone(),
        parent_results: step.parent_results.clone(),
        config: step.handler.config.clone(),
        attempt: step.attempt.max(1) as u32,
        max_attempts: step.max_attempts.max(1) as u32,
        idempotency_key: StepContext::idempotency_key_for(step.step_id),
        correlation_id: step.correlation_id.clone(),
        timeout,
        events: crate::events::EventEmitter::new(
            inner.store.clone(),
            inner.clock.clone(),
            step.step_id,
        ),
    };
    // A panicking handler fails its attempt; it must not take the worker down.
    let call = AssertUnwindSafe(handler.call(&ctx)).catch_unwind();
    let caught = match timeout {
        Some(t) => match tokio::time::timeout(t, call).await {
            Ok(r) => r,
            Err(_) => {
                return (
                    Err(
                        StepError::retryable(format!("timed out after {:.3}s", t.as_secs_f64()))
                            .with_code("TIMEOUT"),
                    ),
                    true,
                );
            }
        },
        None => call.await,
    };
    match caught {
        Ok(r) => (r, false),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            (
                Err(StepError::retryable(format!("handler panicked: {msg}")).with_code("PANIC")),
                false,
            )
        }
    }
}

fn retry_at(
    inner: &Inner,
    step: &ClaimedStep,
    error: &StepError,
) -> Option<chrono::DateTime<chrono::Utc>> {
    // Only a retryable failure with attempts left needs the step's schedule.
    let schedule = match error {
        StepError::Retryable { .. } if step.attempt < step.max_attempts => {
            crate::retry::schedule_of(
                inner,
                &step.namespace,
                &step.task_name,
                &step.version,
                &step.step_name,
            )
        }
        _ => None,
    };
    crate::retry::retry_at(
        &inner.config.backoff,
        schedule.as_ref(),
        inner.clock.as_ref(),
        step.step_id,
        step.attempt,
        step.max_attempts,
        error,
    )
}
