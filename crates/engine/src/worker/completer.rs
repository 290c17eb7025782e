//! Writes outcomes in batches: whatever queued up while the previous batch
//! was being committed goes into the next transaction (group commit).
//!
//! One bad value never fails the rest of its batch: the executor replaces a
//! result the store cannot hold with an `invalid_result` failure before it
//! is queued, and should a batch still be refused for its data
//! ([`StoreError::InvalidData`]), it is split in halves until the outcome at
//! fault is alone; that one is recorded as an `invalid_result` failure.

use super::{Finished, LeaseBook};
use crate::service::Inner;
use std::sync::Arc;
use std::time::Duration;
use tasker_core::backoff::Doubling;
use tasker_store::{OutcomeResult, StepOutcome, StoreError};
use tokio::sync::{Semaphore, mpsc, watch};

pub(super) async fn run(
    inner: Arc<Inner>,
    mut rx: mpsc::UnboundedReceiver<Finished>,
    leases: LeaseBook,
    give_up: watch::Receiver<bool>,
) {
    let max = inner.config.finish_batch_size as usize;
    // Several batches may be in flight at once: on PostgreSQL a commit is a
    // few round trips of latency, and overlapping them keeps the database
    // busy instead of idle between batches (steps of different batches are
    // independent; each outcome is checked against its own lease). SQLite
    // has one writer, so there it is one batch at a time.
    let concurrency = match inner.store.backend() {
        tasker_store::Backend::Sqlite => 1,
        _ => inner.config.finish_concurrency.max(1),
    };
    let in_flight = Arc::new(Semaphore::new(concurrency as usize));
    while let Some(first) = rx.recv().await {
        let mut batch: Vec<Finished> = Vec::with_capacity(max.min(64));
        batch.push(first);
        while batch.len() < max {
            match rx.try_recv() {
                Ok(o) => batch.push(o),
                Err(_) => break,
            }
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let (inner, leases, give_up) = (inner.clone(), leases.clone(), give_up.clone());
        tokio::spawn(async move {
            write(&inner, &batch, give_up).await;
            // Written or given up on: forget exactly these leases and free
            // the steps' slots (dropping `batch` drops their permits).
            for f in &batch {
                leases.release(&f.outcome.lease);
            }
            drop(batch);
            drop(permit);
        });
    }
    // Wait for the last batches before reporting the queue written.
    let _ = in_flight.acquire_many(concurrency).await;
}

/// Writes `batch`, retrying transient failures (the database restarting)
/// until the shutdown deadline gives up; splits it on a data error.
async fn write(inner: &Inner, batch: &[Finished], mut give_up: watch::Receiver<bool>) {
    // Work list of sub-batches (a split pushes its halves).
    let mut pending: Vec<Vec<StepOutcome>> =
        vec![batch.iter().map(|f| f.outcome.clone()).collect()];
    let mut backoff = Doubling::new(Duration::from_millis(50), Duration::from_secs(5));
    while let Some(outcomes) = pending.pop() {
        loop {
            if *give_up.borrow() {
                tracing::error!(
                    outcomes = outcomes.len(),
                    "shutdown deadline: outcomes not written; the steps re-run after lease expiry"
                );
                return;
            }
            let attempt = tokio::select! {
                r = inner.store.step_finish_many(&outcomes, inner.clock.now()) => r,
                // A dropped sender means the worker itself is gone: give up.
                changed = give_up.changed() => match changed {
                    Ok(()) => continue,
                    Err(_) => return,
                },
            };
            match attempt {
                Ok(report) => {
                    backoff.reset();
                    log_report(batch, &report);
                    break;
                }
                Err(e) if e.is_transient() => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, outcomes = outcomes.len(), retry_in_ms = delay.as_millis() as u64, "cannot record outcomes yet");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        changed = give_up.changed() => if changed.is_err() { return },
                    }
                }
                Err(StoreError::InvalidData(why)) if outcomes.len() > 1 => {
                    tracing::warn!(error = %why, outcomes = outcomes.len(), "a batch of outcomes was refused for its data; splitting it");
                    let mut first = outcomes;
                    let second = first.split_off(first.len() / 2);
                    pending.push(second);
                    pending.push(first);
                    break;
                }
                Err(StoreError::InvalidData(why)) => match unstorable(&outcomes[0], &why) {
                    // Record the step as failed with the reason instead.
                    Some(failed) => {
                        in_span(
                            batch,
                            &outcomes[0],
                            || tracing::error!(error = %why, "step result cannot be stored; failing the step"),
                        );
                        pending.push(vec![failed]);
                        break;
                    }
                    None => {
                        in_span(
                            batch,
                            &outcomes[0],
                            || tracing::error!(error = %why, "cannot record the outcome; the step re-runs after lease expiry"),
                        );
                        break;
                    }
                },
                Err(e) => {
                    tracing::error!(error = %e, outcomes = outcomes.len(), "cannot record outcomes; the steps will re-run after lease expiry");
                    break;
                }
            }
        }
    }
}

/// The `invalid_result` failure that replaces an outcome the store refused
/// for its data; None when the refused outcome already was that failure.
fn unstorable(o: &StepOutcome, why: &str) -> Option<StepOutcome> {
    if let OutcomeResult::Failure { error, .. } = &o.result
        && error.kind == super::executor::INVALID_RESULT
    {
        return None;
    }
    let attempt = match &o.result {
        OutcomeResult::Failure { error, .. } => error.attempt,
        OutcomeResult::Success(_) => 0,
    };
    Some(super::executor::invalid_result(o.lease, attempt, why))
}

fn in_span(batch: &[Finished], o: &StepOutcome, f: impl FnOnce()) {
    batch
        .iter()
        .find(|b| b.outcome.lease == o.lease)
        .map(|b| b.span.clone())
        .unwrap_or_else(tracing::Span::none)
        .in_scope(f)
}

/// Logs what a written batch did, in each step's (or task's) span so the
/// line carries task_id, step_id, namespace, name, version, attempt and
/// correlation_id like the handler's own lines.
fn log_report(batch: &[Finished], report: &tasker_store::FinishReport) {
    for id in &report.lease_lost {
        let span = batch
            .iter()
            .find(|f| f.outcome.lease.step_id == *id)
            .map(|f| f.span.clone())
            .unwrap_or_else(tracing::Span::none);
        span.in_scope(|| {
            tracing::warn!("result ignored: lease lost (step was rescued or cancelled)")
        });
    }
    for (task, state) in &report.finished_tasks {
        let span = batch
            .iter()
            .rev()
            .find(|f| f.task_id == *task)
            .map(|f| f.span.clone())
            .unwrap_or_else(tracing::Span::none);
        // Completions are routine (thousands a second): debug.
        // A task that ended in error is worth an operator's eye.
        span.in_scope(|| {
            if *state == tasker_core::TaskState::Complete {
                tracing::debug!(status = %state, "task finished");
            } else {
                tracing::warn!(status = %state, "task finished");
            }
        });
    }
}
