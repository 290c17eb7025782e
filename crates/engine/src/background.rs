//! The loops every `tasker serve` and `tasker worker` process runs, with or
//! without step workers (`tasker serve --no-workers` included):
//!
//! - the event pruner (`events.retention_days`, docs/EVENTS.md);
//! - the webhook dispatcher (docs/EVENTS.md, "Webhooks"), which shares
//!   delivery with every other process through leases.

use crate::service::Tasker;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The running background loops. Dropping it does not stop them; call
/// [`ServicesHandle::shutdown`].
pub struct ServicesHandle {
    shutdown: watch::Sender<bool>,
    joins: Vec<JoinHandle<()>>,
    owner: String,
    /// `engine.shutdown_timeout_seconds`: how long [`ServicesHandle::shutdown`]
    /// waits for the loops.
    limit: std::time::Duration,
}

impl ServicesHandle {
    /// The dispatcher's lease owner name.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Asks the loops to stop, without waiting for them (a process calls
    /// this as soon as it is told to stop, then drains its step workers,
    /// then calls [`ServicesHandle::shutdown_by`]).
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Stops the loops, waiting at most `engine.shutdown_timeout_seconds`.
    /// See [`ServicesHandle::shutdown_by`].
    pub async fn shutdown(self) -> bool {
        let deadline = Instant::now() + self.limit;
        self.shutdown_by(deadline).await
    }

    /// Stops the loops, waiting for them until `deadline`. Webhook requests
    /// in flight may finish (each is cut off before its lease runs out) and
    /// their outcomes are written. A loop still busy at the deadline (its
    /// database does not answer) is aborted: its leases expire and another
    /// process delivers. Returns whether every loop stopped by itself.
    pub async fn shutdown_by(mut self, deadline: Instant) -> bool {
        self.stop();
        let all = async {
            for j in self.joins.iter_mut() {
                let _ = j.await;
            }
        };
        let clean = tokio::time::timeout_at(deadline, all).await.is_ok();
        if !clean {
            tracing::warn!("background services did not stop by the shutdown deadline; aborted");
            for j in &self.joins {
                j.abort();
            }
        }
        clean
    }
}

impl Tasker {
    /// Starts the event pruner and the webhook dispatcher (call
    /// [`Tasker::sync_config_webhooks`] first to register `[[webhooks]]`).
    pub fn start_services(&self) -> ServicesHandle {
        let (tx, rx) = watch::channel(false);
        let owner = self
            .config()
            .worker_id
            .clone()
            .unwrap_or_else(crate::worker::default_worker_id);
        let pruner = tokio::spawn(crate::worker::event_pruner::run(self.clone(), rx.clone()));
        let dispatcher = tokio::spawn(crate::webhooks::dispatcher::run(
            self.clone(),
            owner.clone(),
            self.inner_webhook_policy(),
            rx,
        ));
        ServicesHandle {
            shutdown: tx,
            joins: vec![pruner, dispatcher],
            owner,
            limit: self.config().shutdown_timeout,
        }
    }
}
