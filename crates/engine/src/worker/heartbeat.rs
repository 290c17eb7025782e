//! Renews every lease this process holds, in one statement per beat, and
//! aborts handlers whose lease was lost (cancelled task, or rescued after a
//! stall longer than the lease).

use super::{Leases, lock};
use crate::service::Inner;
use std::sync::Arc;
use tasker_store::LeaseRef;
use tokio::sync::watch;

pub(super) async fn run(inner: Arc<Inner>, leases: Leases, mut shutdown: watch::Receiver<bool>) {
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

async fn beat(inner: &Inner, leases: &Leases) {
    let held: Vec<LeaseRef> = lock(leases)
        .iter()
        .map(|(id, f)| LeaseRef {
            step_id: *id,
            token: f.token,
        })
        .collect();
    if held.is_empty() {
        return;
    }
    let now = inner.clock.now();
    let until = now + chrono::Duration::from_std(inner.config.lease_duration).unwrap_or_default();
    match inner.store.step_lease_renew(&held, until, now).await {
        Ok(lost) => {
            let mut map = lock(leases);
            for id in lost {
                if let Some(f) = map.remove(&id) {
                    tracing::warn!(step_id = %id, "lease lost; aborting handler");
                    if let Some(a) = f.abort {
                        a.abort();
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, leases = held.len(), "lease renewal failed"),
    }
}
