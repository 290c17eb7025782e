//! The claim loop: take as many ready steps as there are free slots, in one
//! statement, then wait for a reason to look again. With only a few slots
//! free while an outcome write is in flight, it first waits for that write
//! (once), whose steps' slots come back together (module `writes`).

use super::writes::{self, Writes};
use super::{Finished, LeaseBook, executor};
use crate::service::Inner;
use std::sync::Arc;
use std::time::Duration;
use tasker_core::backoff::Doubling;
use tasker_store::{ClaimParams, StoreEvent};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Semaphore, mpsc, watch};

/// What this worker may lease: the one description of a claim, used by the
/// claim loop and by the claim on completion alike (so both obey the same
/// per-task limit and kind filters; the store applies them in one statement).
pub(super) fn claim_params(
    inner: &Inner,
    worker_id: &str,
    limit: u32,
    now: chrono::DateTime<chrono::Utc>,
) -> ClaimParams {
    let cfg = &inner.config;
    ClaimParams {
        worker_id: worker_id.to_string(),
        limit,
        lease_until: now + chrono::Duration::from_std(cfg.lease_duration).unwrap_or_default(),
        now,
        per_task_limit: cfg.max_concurrent_steps_per_task,
        kinds: None,
        exclude_kinds: cfg.exclude_kinds.clone(),
        namespaces: None,
    }
}

pub(super) async fn run(
    inner: Arc<Inner>,
    worker_id: &str,
    slots: Arc<Semaphore>,
    leases: LeaseBook,
    out: mpsc::UnboundedSender<Finished>,
    writes: Arc<Writes>,
    mut shutdown: watch::Receiver<bool>,
) {
    let cfg = &inner.config;
    // Subscribe before the first claim so no wake-up between a claim and the
    // wait is lost: events queue in the receiver.
    let mut events = inner.store.subscribe();
    let mut backoff = Doubling::new(Duration::from_millis(50), Duration::from_secs(5));
    let gather = writes::gather(cfg.claim_batch_size, cfg.max_concurrent_steps);
    let mut waited = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let free = slots.available_permits();
        if free == 0 {
            tokio::select! {
                permit = slots.acquire() => drop(permit),
                _ = shutdown.changed() => return,
            }
            continue;
        }
        // A few free slots while a write is in flight: that write is about
        // to free its batch's slots, so wait for it and claim them together
        // instead of paying a claim statement for a step or two now
        // (module `writes`). Once only: its steps' children may take those
        // slots (claim on completion), and with writes back to back a
        // second wait could hold ready work off free slots indefinitely.
        if !writes::claim_now(free, gather, waited, writes.in_flight()) {
            waited = true;
            tokio::select! {
                _ = writes.any_ended() => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        waited = false;
        // Slots are taken before the claim, so that every step the claim
        // returns has one whatever else happens meanwhile (unused ones go
        // back below).
        let want = free.min(cfg.claim_batch_size as usize);
        let mut permits = Vec::with_capacity(want);
        while permits.len() < want {
            match slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        if permits.is_empty() {
            continue;
        }
        let limit = permits.len() as u32;
        let params = claim_params(&inner, worker_id, limit, inner.clock.now());
        // While the database is away a claim can wait for the pool's
        // acquire timeout: shutdown must not wait behind it (its drain has a
        // deadline). A claim dropped after committing leaves its steps to
        // lease expiry, as any abandoned claim.
        let claimed = tokio::select! {
            r = inner.store.step_claim(&params) => r,
            _ = shutdown.changed() => return,
        };
        let claimed = match claimed {
            Ok(c) => {
                backoff.reset();
                c
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "claim failed");
                if super::sleep_or_shutdown(delay, &mut shutdown).await {
                    return;
                }
                continue;
            }
        };
        let got = claimed.len();
        crate::metrics::claimed("poll", got);
        for step in claimed {
            // We asked for at most as many steps as we hold slots.
            let Some(permit) = permits.pop() else {
                tracing::error!(
                    "no free slot for a claimed step; it will be re-run after its lease expires"
                );
                continue;
            };
            executor::launch(&inner, step, permit, &out, &leases);
        }
        // Slots not used go back.
        drop(permits);
        if got == limit as usize {
            continue; // there may be more
        }

        // Idle (or nearly): sleep until work is announced, the next deferred
        // step is due, or the poll interval passes (other processes' work).
        // A partial claim asks too: the steps it did not get may have been
        // deferred by this very claim (a rate limit moves them to when their
        // token is there), and nobody announces a step that becomes due. It
        // heeds only a time still ahead: steps due already are ones it could
        // not take (another worker's, or held by a limit), and looping on
        // them at once would spin.
        let mut wait = cfg.poll_interval;
        let next = tokio::select! {
            r = inner.store.step_next_ready_at() => r.ok().flatten(),
            _ = shutdown.changed() => return,
        };
        let next = next.filter(|at| got == 0 || *at > inner.clock.now());
        if let Some(at) = next {
            let until = (at - inner.clock.now()).to_std().unwrap_or(Duration::ZERO);
            wait = wait.min(until);
        }
        let timer = tokio::time::sleep(wait);
        tokio::pin!(timer);
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(StoreEvent::WorkAvailable) | Err(RecvError::Lagged(_)) => break,
                    Ok(_) => continue,
                    Err(RecvError::Closed) => {
                        // No more events: fall back to the timer alone.
                        (&mut timer).await;
                        break;
                    }
                },
                _ = &mut timer => break,
                _ = shutdown.changed() => return,
            }
        }
    }
}
