//! The background pruner: every `retention.interval`, deletes finished tasks
//! older than their retention window (see `crate::retention`). Runs in every
//! worker process; the store lets one process prune at a time (PostgreSQL:
//! an advisory lock per batch; SQLite: its single writer), so the others'
//! passes end at once.

use crate::retention::PruneOptions;
use crate::service::{Inner, Tasker};
use std::sync::Arc;
use tokio::sync::watch;

pub(super) async fn run(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    let tasker = Tasker::from_inner(inner.clone());
    let interval = inner.config.retention.interval;
    loop {
        // A pass is batches of short transactions; shutdown waits at most
        // for the one in flight.
        let opts = PruneOptions {
            max_batches: Some(100),
            ..Default::default()
        };
        match tasker.prune(&opts).await {
            Ok(s) => {
                if s.tasks > 0 {
                    tracing::info!(
                        tasks = s.tasks,
                        archived = s.archived,
                        "pruned finished tasks"
                    );
                }
                for r in &s.partitions {
                    tracing::info!(
                        partition = %r.target,
                        action = %r.action,
                        millis = r.millis,
                        "history partition"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "prune failed"),
        }
        if super::sleep_or_shutdown(interval, &mut shutdown).await {
            return;
        }
    }
}
