//! External workers: processes in any language that claim steps, run them
//! and report back, through the same leases as in-process handlers.
//!
//! The REST layer maps these one to one (`POST /tasker/workers/claim`,
//! `POST /tasker/steps/{id}/heartbeat|complete|fail`); see docs/HANDLERS.md
//! for the protocol.

use crate::error::EngineError;
use crate::handler::{StepContext, StepError};
use crate::service::Tasker;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Duration;
use tasker_store::{
    ClaimParams, ClaimedStep, LeaseRef, OutcomeResult, StepErrorRecord, StepOutcome, StoreEvent,
};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

/// Most steps one claim may return.
pub const MAX_CLAIM: u32 = 100;
/// Longest lease a worker may ask for.
pub const MAX_LEASE: Duration = Duration::from_secs(3600);
/// Longest a claim may wait for work.
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// What an external worker asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalClaim {
    /// The worker's id (recorded as lease owner).
    pub worker_id: String,
    /// Handler kinds it runs (required: a worker must say what it can do).
    pub kinds: Vec<String>,
    /// Only tasks of these namespaces (None = any).
    pub namespaces: Option<Vec<String>>,
    /// At most this many steps (1–100).
    pub max_steps: u32,
    /// Lease length (1 s – 1 h); renew with a heartbeat before it ends.
    pub lease: Duration,
    /// Wait up to this long for work when none is ready (0–20 s, under the API's request timeout): long polling.
    pub wait: Duration,
}

/// A claimed step with what its handler needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalStep {
    /// The claim as the store returned it.
    pub step: ClaimedStep,
    /// Stable across attempts.
    pub idempotency_key: String,
}

impl Tasker {
    /// Claims steps for an external worker, waiting up to `wait` for work.
    pub async fn external_claim(
        &self,
        claim: ExternalClaim,
    ) -> Result<Vec<ExternalStep>, EngineError> {
        self.external_claim_until(claim, std::future::pending())
            .await
    }

    /// [`Tasker::external_claim`] that stops waiting (and claims nothing)
    /// when `gone` completes, e.g. when the worker's connection closed.
    ///
    /// `gone` is only watched while waiting, never during the claim
    /// statement itself: a claim is either not made or made in full. Run it
    /// in a task of its own (not in a future that may be dropped), so a
    /// claim that committed is always returned to someone (see
    /// [`Tasker::external_release`]).
    pub async fn external_claim_until(
        &self,
        claim: ExternalClaim,
        gone: impl std::future::Future<Output = ()>,
    ) -> Result<Vec<ExternalStep>, EngineError> {
        tokio::pin!(gone);
        let field = |f: &str, m: &str| EngineError::InvalidField {
            field: f.into(),
            message: m.into(),
        };
        if claim.worker_id.trim().is_empty() || claim.worker_id.len() > 200 {
            return Err(field("worker_id", "must be 1 to 200 characters"));
        }
        if claim.kinds.is_empty() || claim.kinds.iter().any(|k| k.trim().is_empty()) {
            return Err(field(
                "handler_kinds",
                "must list at least one handler kind this worker runs",
            ));
        }
        if !(1..=MAX_CLAIM).contains(&claim.max_steps) {
            return Err(field("max_steps", "must be between 1 and 100"));
        }
        if claim.lease < Duration::from_secs(1) || claim.lease > MAX_LEASE {
            return Err(field("lease_seconds", "must be between 1 and 3600"));
        }
        if claim.wait > MAX_WAIT {
            return Err(field("wait_seconds", "must be between 0 and 20"));
        }
        // Subscribe first: work announced between an empty claim and the wait is not missed.
        let mut events = self.store().subscribe();
        let deadline = tokio::time::Instant::now() + claim.wait;
        loop {
            let now = self.now();
            let params = ClaimParams {
                worker_id: claim.worker_id.clone(),
                limit: claim.max_steps,
                lease_until: now + chrono::Duration::from_std(claim.lease).unwrap_or_default(),
                now,
                per_task_limit: self.config().max_concurrent_steps_per_task,
                kinds: Some(claim.kinds.clone()),
                exclude_kinds: Vec::new(),
                namespaces: claim.namespaces.clone(),
            };
            let steps = self.store().step_claim(&params).await?;
            crate::metrics::claimed("external", steps.len());
            if !steps.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(steps
                    .into_iter()
                    .map(|step| ExternalStep {
                        idempotency_key: StepContext::idempotency_key_for(step.step_id),
                        step,
                    })
                    .collect());
            }
            // Wake on new work, else at the poll interval (work scheduled by
            // a backoff becomes ready without an event) or the deadline.
            let poll = tokio::time::sleep(self.config().poll_interval);
            tokio::pin!(poll);
            loop {
                tokio::select! {
                    ev = events.recv() => match ev {
                        Ok(StoreEvent::WorkAvailable) | Err(RecvError::Lagged(_)) => break,
                        Ok(_) => continue,
                        Err(RecvError::Closed) => { (&mut poll).await; break; }
                    },
                    _ = &mut poll => break,
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = &mut gone => return Ok(Vec::new()),
                }
            }
        }
    }

    /// Extends a lease; fails with [`EngineError::LeaseLost`] when the step was
    /// rescued, cancelled or finished meanwhile. Returns the new expiry.
    pub async fn external_heartbeat(
        &self,
        step_id: Uuid,
        token: Uuid,
        lease: Duration,
    ) -> Result<DateTime<Utc>, EngineError> {
        if lease < Duration::from_secs(1) || lease > MAX_LEASE {
            return Err(EngineError::InvalidField {
                field: "lease_seconds".into(),
                message: "must be between 1 and 3600".into(),
            });
        }
        let now = self.now();
        let until = now + chrono::Duration::from_std(lease).unwrap_or_default();
        self.store().step_get(step_id).await?; // 404 for unknown steps
        let lost = self
            .store()
            .step_lease_renew(&[LeaseRef { step_id, token }], until, now)
            .await?;
        if lost.contains(&step_id) {
            return Err(EngineError::LeaseLost(step_id));
        }
        Ok(until)
    }

    /// Records a successful attempt.
    pub async fn external_complete(
        &self,
        step_id: Uuid,
        token: Uuid,
        results: Value,
    ) -> Result<(), EngineError> {
        self.store().step_get(step_id).await?;
        self.finish_external(StepOutcome {
            lease: LeaseRef { step_id, token },
            result: OutcomeResult::Success(results),
        })
        .await
    }

    /// Records a failed attempt; retried with backoff (or after `retry_after`)
    /// while attempts remain, unless the error is permanent.
    pub async fn external_fail(
        &self,
        step_id: Uuid,
        token: Uuid,
        error: StepError,
    ) -> Result<(), EngineError> {
        let step = self.store().step_get(step_id).await?;
        // Only a retryable failure with attempts left needs the step's
        // schedule (one more read, of the task, for its template).
        let schedule = match &error {
            StepError::Retryable { .. } if step.attempts < step.max_attempts => {
                let task = self.store().task_get(step.task_id).await?;
                self.with_registry(|r| {
                    crate::retry::schedule_in(
                        r,
                        &task.namespace,
                        &task.name,
                        &task.version,
                        &step.name,
                    )
                })
            }
            _ => None,
        };
        let retry_at = crate::retry::retry_at(
            &self.config().backoff,
            schedule.as_ref(),
            self.clock(),
            step_id,
            step.attempts,
            step.max_attempts,
            &error,
        );
        let code = match &error {
            StepError::Retryable { code, .. } | StepError::Permanent { code, .. } => code.clone(),
        };
        let record = StepErrorRecord {
            message: error.to_string(),
            kind: error.kind().to_string(),
            code,
            attempt: step.attempts,
        };
        self.finish_external(StepOutcome {
            lease: LeaseRef { step_id, token },
            result: OutcomeResult::Failure {
                error: record,
                retry_at,
            },
        })
        .await
    }

    /// Gives back the leases of claimed steps whose claim never reached
    /// the worker (its connection closed, or the request timed out, after
    /// the claim committed): each goes back to `pending`, ready at once,
    /// instead of waiting for its lease to expire. The attempt the claim
    /// started counts, as a lease expiry's does, but the step runs again
    /// even if it was the last one (its handler never ran). Leases already
    /// lost are skipped. Returns how many were released.
    pub async fn external_release(
        &self,
        leases: &[LeaseRef],
        why: &str,
    ) -> Result<u64, EngineError> {
        if leases.is_empty() {
            return Ok(0);
        }
        let now = self.now();
        let mut outcomes = Vec::with_capacity(leases.len());
        for lease in leases {
            let step = self.store().step_get(lease.step_id).await?;
            outcomes.push(StepOutcome {
                lease: *lease,
                result: OutcomeResult::Failure {
                    error: StepErrorRecord {
                        message: format!("claim released: {why}"),
                        kind: "retryable".to_string(),
                        code: Some("CLAIM_UNDELIVERED".to_string()),
                        attempt: step.attempts,
                    },
                    retry_at: Some(now),
                },
            });
        }
        let report = self.store().step_finish_many(&outcomes, now).await?;
        Ok(report.applied)
    }

    async fn finish_external(&self, outcome: StepOutcome) -> Result<(), EngineError> {
        let step_id = outcome.lease.step_id;
        let report = self
            .store()
            .step_finish_many(std::slice::from_ref(&outcome), self.now())
            .await?;
        if report.lease_lost.contains(&step_id) {
            return Err(EngineError::LeaseLost(step_id));
        }
        // The attempt, like an in-process one: kind, outcome, claim to result.
        // The step is read only while metrics are recorded.
        if crate::metrics::enabled()
            && let Ok(step) = self.store().step_get(step_id).await
        {
            let status = match step.status {
                tasker_core::StepState::Complete => "complete",
                tasker_core::StepState::Pending => "retry",
                _ => "error",
            };
            let seconds = step
                .last_attempted_at
                .map(|at| (self.now() - at).to_std().unwrap_or_default().as_secs_f64())
                .unwrap_or_default();
            crate::metrics::step_finished(&step.handler.kind, status, seconds);
        }
        // The report names finished tasks by id only: read their template
        // for the metric's labels (once per task, not per step).
        for (task, state) in &report.finished_tasks {
            if let Ok(row) = self.store().task_get(*task).await {
                crate::metrics::task_finished(&row.namespace, &row.name, state.as_str());
            }
        }
        Ok(())
    }
}
