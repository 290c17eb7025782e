//! Returns steps whose lease expired (their process died or hung) to the
//! ready pool, or fails them when no attempt is left.

use crate::service::Inner;
use std::sync::Arc;
use tokio::sync::watch;

/// Steps rescued per statement; a larger backlog is paged over iterations.
const PAGE: u32 = 1000;

pub(super) async fn run(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    loop {
        loop {
            match inner
                .store
                .step_rescue_expired(inner.clock.now(), PAGE)
                .await
            {
                Ok(0) => break,
                Ok(n) => {
                    crate::metrics::rescued(n);
                    tracing::warn!(steps = n, "rescued steps with expired leases");
                    if n < PAGE as u64 {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "rescue failed");
                    break;
                }
            }
        }
        if super::sleep_or_shutdown(inner.config.rescue_interval, &mut shutdown).await {
            return;
        }
    }
}
