//! Writes outcomes in batches: whatever queued up while the previous batch
//! was being committed goes into the next transaction (group commit).

use super::{Finished, Leases, lock};
use crate::service::Inner;
use std::sync::Arc;
use std::time::Duration;
use tasker_store::StepOutcome;
use tokio::sync::mpsc;

pub(super) async fn run(
    inner: Arc<Inner>,
    mut rx: mpsc::UnboundedReceiver<Finished>,
    leases: Leases,
) {
    let max = inner.config.finish_batch_size as usize;
    let mut batch: Vec<Finished> = Vec::with_capacity(max);
    let mut outcomes: Vec<StepOutcome> = Vec::with_capacity(max);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < max {
            match rx.try_recv() {
                Ok(o) => batch.push(o),
                Err(_) => break,
            }
        }
        outcomes.extend(batch.iter().map(|f| f.outcome.clone()));
        write(&inner, &outcomes, &batch).await;
        {
            let mut held = lock(&leases);
            for o in &outcomes {
                held.remove(&o.lease.step_id);
            }
        }
        batch.clear();
        outcomes.clear();
    }
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
                    span.in_scope(|| tracing::info!(status = %state, "task finished"));
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
