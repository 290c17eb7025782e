//! Outcome writes in flight: counted by the completer, read by the claimer
//! and by the completer itself to size their batches.
//!
//! Both loops used to act on every single event: a write of one outcome as
//! soon as one arrived, a claim of one step as soon as one slot came back.
//! Under load that turned a wave of a few hundred steps into hundreds of
//! one-step transactions, each paying a whole statement's fixed cost
//! (measured: median batches of one outcome and one claimed step at 10,000
//! single-step tasks, docs/PERFORMANCE.md, "Batches that gather"). The rule
//! now: while a write is in flight, a small batch waits for that write to
//! end (or for the batch to grow to [`gather`]); with no write in flight
//! nothing waits, so a lone outcome (a chain's stage) is written at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

/// The writes in flight and a signal each time one ends.
#[derive(Default)]
pub(super) struct Writes {
    in_flight: AtomicUsize,
    ended: Notify,
}

impl Writes {
    /// A write starts; it ends when the returned guard is dropped (after its
    /// steps' slots are back, so a woken claimer sees them free).
    pub(super) fn start(self: &std::sync::Arc<Self>) -> WriteGuard {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        WriteGuard(self.clone())
    }

    /// Writes in flight now.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Waits until a write ends; returns at once when none is in flight.
    /// Registered before the count is read, so an end between the read and
    /// the wait is not missed.
    pub(super) async fn any_ended(&self) {
        let ended = self.ended.notified();
        tokio::pin!(ended);
        ended.as_mut().enable();
        if self.in_flight() == 0 {
            return;
        }
        ended.await;
    }
}

/// Held by a write in flight.
pub(super) struct WriteGuard(std::sync::Arc<Writes>);

impl Drop for WriteGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.ended.notify_waiters();
    }
}

/// The batch worth starting a transaction for while another write is in
/// flight: a quarter of the most a claim may take (claims) or of the slots
/// (outcomes), at least one. With `max_concurrent_steps = 1` it is one, so
/// nothing ever waits.
pub(super) fn gather(batch_limit: u32, slots: u32) -> usize {
    (batch_limit.min(slots) / 4).max(1) as usize
}

/// The claimer's rule: claim the `free` slots now, or first wait for a write
/// in flight to end (once: `waited` says it already did).
pub(super) fn claim_now(free: usize, gather: usize, waited: bool, in_flight: usize) -> bool {
    free >= gather || waited || in_flight == 0
}

/// The completer's rule: write a batch of `len` outcomes now, or first wait
/// for more outcomes or for a write in flight to end.
pub(super) fn write_now(len: usize, gather: usize, max: usize, in_flight: usize) -> bool {
    len >= gather.min(max) || in_flight == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn gather_is_a_quarter_of_the_smaller_limit_and_never_zero() {
        assert_eq!(gather(64, 64), 16);
        assert_eq!(gather(256, 64), 16);
        assert_eq!(gather(64, 256), 16);
        assert_eq!(gather(1, 1), 1);
        assert_eq!(gather(3, 100), 1);
    }

    #[test]
    fn a_lone_outcome_or_claim_never_waits_when_nothing_is_in_flight() {
        // A chain's stage: one outcome, no other write.
        assert!(write_now(1, 16, 256, 0));
        assert!(claim_now(1, 16, false, 0));
    }

    #[test]
    fn small_batches_wait_for_a_write_in_flight_and_large_ones_do_not() {
        assert!(!write_now(1, 16, 256, 1));
        assert!(!write_now(15, 16, 256, 3));
        assert!(write_now(16, 16, 256, 3));
        // A batch limit below the gather size: a full batch goes.
        assert!(write_now(8, 16, 8, 1));
        assert!(!claim_now(2, 16, false, 1));
        assert!(claim_now(16, 16, false, 1));
    }

    #[test]
    fn the_claimer_waits_for_one_write_only() {
        // After one wait it claims what is free, whatever is in flight:
        // children leased on completion may have taken the freed slots.
        assert!(claim_now(2, 16, true, 4));
    }

    #[tokio::test]
    async fn any_ended_returns_at_once_with_nothing_in_flight() {
        let w = Arc::new(Writes::default());
        w.any_ended().await;
        let g = w.start();
        drop(g);
        w.any_ended().await;
        assert_eq!(w.in_flight(), 0);
    }

    #[tokio::test]
    async fn any_ended_wakes_when_a_write_ends() {
        let w = Arc::new(Writes::default());
        let g = w.start();
        let waiter = {
            let w = w.clone();
            tokio::spawn(async move { w.any_ended().await })
        };
        // Not woken while the write is in flight.
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(g);
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("woken by the write's end")
            .expect("waiter ran");
    }
}
