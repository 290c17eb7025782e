//! The database side of the readiness check, built so that a probe never
//! flaps while the database answers.
//!
//! A probe must answer within `health.ready_timeout_seconds`, but a ping
//! sent through a busy connection pool queues behind the work in it: under a
//! burst of task creations it can take longer than the budget although the
//! database is fine. So:
//!
//! - at most one ping runs at a time, **detached** from the probe that
//!   started it: a probe that gives up does not cancel it, and its answer
//!   serves the probes that come after;
//! - a probe waits for that ping up to its budget; when the budget runs out
//!   first, the database still counts as ready if the last completed ping
//!   succeeded less than [`RECENT_SUCCESS`] ago (a busy pool is not a down
//!   database). A ping that fails (connection refused, pool closed) is an
//!   immediate "not ready", whatever came before.
//! - migrations never un-apply, so one success is remembered for good; the
//!   check runs once in the background when the state is built, and a probe
//!   that arrives earlier waits for that same check (within its budget).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tasker_store::Store;
use tokio::sync::watch;

/// How recent a successful ping must be for a probe whose own wait ran out
/// to still call the database ready.
pub const RECENT_SUCCESS: Duration = Duration::from_secs(10);

/// The outcome of the last completed ping.
#[derive(Debug, Clone)]
pub(crate) struct PingOutcome {
    /// When it completed.
    pub at: Instant,
    /// How long it took.
    pub took: Duration,
    /// `Err(message)` when the database refused or could not be reached.
    pub result: Result<(), String>,
}

/// What a probe concludes about the database.
#[derive(Debug, Clone)]
pub(crate) enum DbVerdict {
    /// A ping completed within the budget.
    Answered(PingOutcome),
    /// No ping completed within the budget; the last one (if any) is given.
    Slow(Option<PingOutcome>),
}

/// Shared by every clone of the state (and kept across its builders).
#[derive(Debug)]
pub(crate) struct DbProbe {
    last: watch::Sender<Option<PingOutcome>>,
    in_flight: AtomicBool,
    migrations_ok: watch::Sender<Option<bool>>,
}

impl DbProbe {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(DbProbe {
            last: watch::channel(None).0,
            in_flight: AtomicBool::new(false),
            migrations_ok: watch::channel(None).0,
        })
    }

    /// Starts a ping unless one is already running.
    pub(crate) fn start_ping(self: &Arc<Self>, store: Arc<dyn Store>) {
        if self.in_flight.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.in_flight.store(false, Ordering::Release);
            return;
        };
        let me = self.clone();
        handle.spawn(async move {
            let t = Instant::now();
            let result = store.ping().await.map_err(|e| e.to_string());
            me.last.send_replace(Some(PingOutcome {
                at: Instant::now(),
                took: t.elapsed(),
                result,
            }));
            me.in_flight.store(false, Ordering::Release);
        });
    }

    /// Pings (or joins the running ping) and waits for an answer until `deadline`.
    pub(crate) async fn check(
        self: &Arc<Self>,
        store: Arc<dyn Store>,
        deadline: tokio::time::Instant,
    ) -> DbVerdict {
        let mut rx = self.last.subscribe();
        let before = rx.borrow_and_update().clone();
        self.start_ping(store);
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => match rx.borrow().clone() {
                Some(o) => DbVerdict::Answered(o),
                None => DbVerdict::Slow(before),
            },
            _ => DbVerdict::Slow(before),
        }
    }

    /// Checks the migrations once in the background (and pings, so the first
    /// probes find a recent answer). Needs a tokio runtime; without one the
    /// probes check on demand.
    pub(crate) fn warm_up(self: &Arc<Self>, store: Arc<dyn Store>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.start_ping(store.clone());
        let me = self.clone();
        handle.spawn(async move {
            me.run_migrations_check(store).await;
        });
    }

    async fn run_migrations_check(&self, store: Arc<dyn Store>) {
        match store.migrations_applied().await {
            Ok(ok) => {
                self.migrations_ok.send_replace(Some(ok));
            }
            Err(e) => {
                tracing::debug!(error = %e, "migration check failed; the readiness probe will retry")
            }
        }
    }

    /// Waits until the migrations were seen applied (tests).
    #[cfg(test)]
    pub(crate) async fn migrations_seen(&self) {
        let mut rx = self.migrations_ok.subscribe();
        let _ = rx.wait_for(|ok| *ok == Some(true)).await;
    }

    /// True once every migration was seen applied.
    pub(crate) fn migrations_known_ok(&self) -> bool {
        *self.migrations_ok.borrow() == Some(true)
    }

    /// The migrations' state: waits for the background check until
    /// `deadline`, else checks itself (a known success is never re-checked).
    pub(crate) async fn migrations(
        &self,
        store: Arc<dyn Store>,
        deadline: tokio::time::Instant,
    ) -> Result<Option<bool>, String> {
        if self.migrations_known_ok() {
            return Ok(Some(true));
        }
        let mut rx = self.migrations_ok.subscribe();
        let seen = *rx.borrow_and_update();
        if seen.is_none() {
            // The background check may still be running: give it the budget.
            if let Ok(Ok(())) = tokio::time::timeout_at(deadline, rx.changed()).await {
                let now = *rx.borrow();
                if now.is_some() {
                    return Ok(now);
                }
            }
        }
        // Pending earlier (a `migrate` may have run since), or never answered.
        match tokio::time::timeout_at(deadline, store.migrations_applied()).await {
            Ok(Ok(ok)) => {
                self.migrations_ok.send_replace(Some(ok));
                Ok(Some(ok))
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Ok(None),
        }
    }
}
