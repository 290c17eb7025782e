//! Deletes lifecycle events older than the retention (`events.retention_days`),
//! in small batches, each its own short transaction, so the hot path never
//! waits long behind it. Every `tasker serve` and `tasker worker` process
//! runs one (`crate::background`), with or without workers; they may overlap
//! harmlessly (a batch deletes what is still there).

use crate::service::Tasker;
use tokio::sync::watch;

/// Batches per round: a large backlog is worked off over several rounds
/// instead of in one long burst.
const BATCHES_PER_ROUND: u32 = 20;

pub(crate) async fn run(tasker: Tasker, mut shutdown: watch::Receiver<bool>) {
    if tasker.config().event_retention.is_none() {
        return;
    }
    loop {
        match tasker.prune_events(BATCHES_PER_ROUND).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(events = n, "pruned expired events"),
            Err(e) => tracing::warn!(error = %e, "event pruning failed"),
        }
        if super::sleep_or_shutdown(tasker.config().event_prune_interval, &mut shutdown).await {
            return;
        }
    }
}
