//! Writes outcomes in batches: whatever queued up while the previous batch
//! was being committed goes into the next transaction (group commit).

use super::{Leases, lock};
use crate::service::Inner;
use std::sync::Arc;
use std::time::Duration;
use tasker_store::StepOutcome;
use tokio::sync::mpsc;

pub(super) async fn run(
    inner: Arc<Inner>,
    mut rx: mpsc::UnboundedReceiver<StepOutcome>,
    leases: Leases,
) {
    let max = inner.config.finish_batch_size as usize;
    let mut batch: Vec<StepOutcome> = Vec::with_capacity(max);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < max {
            match rx.try_recv() {
                Ok(o) => batch.push(o),
                Err(_) => break,
            }
        }
        write(&inner, &batch).await;
        {
            let mut held = lock(&leases);
            for o in &batch {
                held.remove(&o.lease.step_id);
            }
        }
        batch.clear();
    }
}

/// Retries transient failures (the database restarting) for as long as it
/// takes; gives up on other errors, leaving the steps to lease expiry.
async fn write(inner: &Inner, batch: &[StepOutcome]) {
    let mut delay = Duration::from_millis(50);
    loop {
        match inner.store.step_finish_many(batch, inner.clock.now()).await {
            Ok(report) => {
                for id in &report.lease_lost {
                    tracing::warn!(step_id = %id, "result ignored: lease lost (step was rescued or cancelled)");
                }
                for (task, state) in &report.finished_tasks {
                    tracing::info!(task_id = %task, status = %state, "task finished");
                }
                return;
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, outcomes = batch.len(), retry_in_ms = delay.as_millis() as u64, "cannot record outcomes yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                tracing::error!(error = %e, outcomes = batch.len(), "cannot record outcomes; the steps will re-run after lease expiry");
                return;
            }
        }
    }
}
