//! The leases this process holds, keyed by (step, lease token).
//!
//! The token is part of the key because the same step can be held twice in
//! one process's history: after an outage longer than the lease, the step is
//! rescued and may be claimed again *by this worker* while the outcome of the
//! old attempt is still queued. Keyed by step alone, the late outcome of the
//! old attempt removed the entry of the new one, whose heartbeat then stopped
//! and which ran a third time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tasker_store::LeaseRef;
use tokio::task::AbortHandle;

/// What this process knows about one lease.
#[derive(Debug, Default)]
struct Entry {
    /// Aborts the handler (None before the executor task is spawned, or once taken).
    abort: Option<AbortHandle>,
    /// The handler returned; its outcome is queued for the completer. A lease
    /// reported lost now means the step was finished (or cancelled) a moment
    /// ago, not that a running handler must be stopped.
    done: bool,
}

/// Shared, cheaply cloned book of held leases.
#[derive(Debug, Clone, Default)]
pub(crate) struct LeaseBook(Arc<Mutex<HashMap<LeaseRef, Entry>>>);

/// What the heartbeat should do about leases the store reported lost.
#[derive(Debug, Default)]
pub(crate) struct Lost {
    /// Handlers still running under a lost lease: abort them.
    pub running: Vec<(LeaseRef, Option<AbortHandle>)>,
    /// Handlers already done: their outcome is on its way (the completer
    /// reports it if it is refused); nothing to abort, nothing to warn about.
    pub finishing: usize,
}

impl LeaseBook {
    fn map(&self) -> MutexGuard<'_, HashMap<LeaseRef, Entry>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A claim returned `lease`.
    pub fn claimed(&self, lease: LeaseRef) {
        self.map().insert(lease, Entry::default());
    }

    /// The handler of `lease` runs under `abort` (ignored if the lease is gone).
    pub fn running(&self, lease: LeaseRef, abort: AbortHandle) {
        if let Some(e) = self.map().get_mut(&lease) {
            e.abort = Some(abort);
        }
    }

    /// The handler of `lease` returned; its outcome is queued.
    pub fn handler_done(&self, lease: LeaseRef) {
        if let Some(e) = self.map().get_mut(&lease) {
            e.done = true;
            e.abort = None;
        }
    }

    /// The outcome of `lease` was written (or given up on): forget exactly
    /// that lease, never another attempt of the same step.
    pub fn release(&self, lease: &LeaseRef) {
        self.map().remove(lease);
    }

    /// Every lease to renew.
    pub fn held(&self) -> Vec<LeaseRef> {
        self.map().keys().copied().collect()
    }

    /// Number of leases held.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// The store says the steps `lost_steps` (among `renewed`) are no longer
    /// held. Only the leases that were renewed are considered, by token: a
    /// newer attempt of the same step claimed since is untouched. Running
    /// handlers are forgotten and returned for aborting; done ones stay
    /// until the completer releases them.
    pub fn lost(&self, renewed: &[LeaseRef], lost_steps: &[uuid::Uuid]) -> Lost {
        let mut out = Lost::default();
        let mut map = self.map();
        for lease in renewed.iter().filter(|l| lost_steps.contains(&l.step_id)) {
            match map.get(lease) {
                Some(e) if e.done => out.finishing += 1,
                Some(_) => {
                    let abort = map.remove(lease).and_then(|e| e.abort);
                    out.running.push((*lease, abort));
                }
                None => {} // released while the renewal was in flight
            }
        }
        out
    }

    /// Takes every abort handle (shutdown timeout).
    pub fn take_aborts(&self) -> Vec<AbortHandle> {
        self.map()
            .values_mut()
            .filter_map(|e| e.abort.take())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn lease(step: Uuid) -> LeaseRef {
        LeaseRef {
            step_id: step,
            token: Uuid::new_v4(),
        }
    }

    /// A late outcome of an old attempt releases only its own lease: the same
    /// step re-claimed by this worker keeps its entry (and so its heartbeat).
    #[test]
    fn releasing_an_old_attempt_keeps_the_new_one() {
        let book = LeaseBook::default();
        let step = Uuid::now_v7();
        let (old, new) = (lease(step), lease(step));
        book.claimed(old);
        book.claimed(new);
        book.handler_done(old);
        book.release(&old);
        assert_eq!(book.held(), vec![new]);
    }

    /// A lost report about the old attempt's token does not touch the new one.
    #[test]
    fn lost_reports_match_tokens() {
        let book = LeaseBook::default();
        let step = Uuid::now_v7();
        let (old, new) = (lease(step), lease(step));
        book.claimed(old);
        let renewed = book.held();
        book.release(&old);
        book.claimed(new);
        let lost = book.lost(&renewed, &[step]);
        assert!(lost.running.is_empty());
        assert_eq!(book.held(), vec![new]);
    }

    /// A step whose handler already returned (outcome queued or being
    /// written) is not "lost": no abort, and the entry stays for the completer.
    #[test]
    fn a_finished_step_is_not_reported_lost() {
        let book = LeaseBook::default();
        let (done, running) = (lease(Uuid::now_v7()), lease(Uuid::now_v7()));
        book.claimed(done);
        book.claimed(running);
        book.handler_done(done);
        let renewed = book.held();
        let lost = book.lost(&renewed, &[done.step_id, running.step_id]);
        assert_eq!(lost.finishing, 1);
        assert_eq!(lost.running.len(), 1);
        assert_eq!(lost.running[0].0, running);
        assert_eq!(book.held(), vec![done]);
    }
}
