//! Keeps the planner's statistics of the store's tables current while they grow
//! (`Store::statistics_refresh`): plans a connection cached while a table
//! was nearly empty are sequential scans, and without fresh statistics they
//! stay so as the history grows, which makes every claim and finish cost
//! more with each finished task (docs/STORAGE.md, "History, retention and
//! maintenance").

use crate::service::Inner;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the sizes are checked: one catalog read when nothing grew.
/// Short enough that a fresh database is analysed within seconds of its
/// first burst of tasks (autovacuum's naptime is a minute).
const INTERVAL: Duration = Duration::from_secs(5);

pub(super) async fn run(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    loop {
        match inner.store.statistics_refresh().await {
            Ok(runs) => {
                for r in runs {
                    tracing::info!(
                        table = %r.target,
                        millis = r.millis,
                        "refreshed planner statistics of a grown table"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "planner statistics refresh failed"),
        }
        if super::sleep_or_shutdown(INTERVAL, &mut shutdown).await {
            return;
        }
    }
}
