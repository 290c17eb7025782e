//! Renews every lease this process holds, in one statement per beat, and
//! aborts handlers whose lease was lost (cancelled task, or rescued after a
//! stall longer than the lease).

use super::LeaseBook;
use crate::service::Inner;
use std::sync::Arc;
use tokio::sync::watch;

pub(super) async fn run(inner: Arc<Inner>, leases: LeaseBook, mut shutdown: watch::Receiver<bool>) {
    let cfg = &inner.config;
    loop {
        if super::sleep_or_shutdown(cfg.heartbeat_interval, &mut shutdown).await {
            // Keep renewing while draining: handlers may still be finishing.
            // The worker aborts this task once they are done.
            loop {
                tokio::time::sleep(cfg.heartbeat_interval).await;
                beat(&inner, &leases).await;
            }
        }
        beat(&inner, &leases).await;
    }
}

async fn beat(inner: &Inner, leases: &LeaseBook) {
    let held = leases.held();
    if held.is_empty() {
        return;
    }
    let now = inner.clock.now();
    let until = now + chrono::Duration::from_std(inner.config.lease_duration).unwrap_or_default();
    match inner.store.step_lease_renew(&held, until, now).await {
        Ok(lost) if lost.is_empty() => {}
        Ok(lost) => {
            let lost = leases.lost(&held, &lost);
            if lost.finishing > 0 {
                // Finished (their outcome is being written) between the
                // snapshot and the renewal: routine, not a lost lease.
                tracing::debug!(
                    steps = lost.finishing,
                    "lease no longer held by steps that just finished"
                );
            }
            for (lease, abort) in lost.running {
                tracing::warn!(step_id = %lease.step_id, "lease lost; aborting handler");
                if let Some(a) = abort {
                    a.abort();
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, leases = held.len(), "lease renewal failed"),
    }
}
