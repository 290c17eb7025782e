//! Writes outcomes in batches: whatever queued up while the previous batch
//! was being committed goes into the next transaction (group commit).

use super::{Finished, Leases, lock};
use crate::service::Inner;
use std::sync::Arc;
use std::time::Duration;
use tasker_store::StepOutcome;
use tokio::sync::{Semaphore, mpsc};

pub(super) async fn run(
    inner: Arc<Inner>,
    mut rx: mpsc::UnboundedReceiver<Finished>,
    leases: Leases,
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
        let (inner, leases) = (inner.clone(), leases.clone());
        tokio::spawn(async move {
            let outcomes: Vec<StepOutcome> = batch.iter().map(|f| f.outcome.clone()).collect();
            write(&inner, &outcomes, &batch).await;
            let mut held = lock(&leases);
            for o in &outcomes {
                held.remove(&o.lease.step_id);
            }
            drop(permit);
        });
    }
    // Wait for the last batches before reporting the queue written.
    let _ = in_flight.acquire_many(concurrency).await;
}

/// Retries transient failures (the database restarting) for as long as it
/// takes; gives up on other errors, leaving the steps to lease expiry.
async fn write(inner: &Inner, outcomes: &[StepOutcome], batch: &[Finished]) {
    // Log about a step (or its task) inside that step's span, so the line
    // carries task_id, step_id, namespace, name, version, attempt and
    // correlation_id like the handler's own lines.
    let span_of_step = |id: uuid::Uuid| {
        batch
            .iter()
            .find(|f| f.outcome.lease.step_id == id)
            .map(|f| f.span.clone())
    };
    let mut delay = Duration::from_millis(50);
    loop {
        match inner
            .store
            .step_finish_many(outcomes, inner.clock.now())
            .await
        {
            Ok(report) => {
                for id in &report.lease_lost {
                    let span = span_of_step(*id).unwrap_or_else(tracing::Span::none);
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
                return;
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, outcomes = outcomes.len(), retry_in_ms = delay.as_millis() as u64, "cannot record outcomes yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                tracing::error!(error = %e, outcomes = outcomes.len(), "cannot record outcomes; the steps will re-run after lease expiry");
                return;
            }
        }
    }
}
