//! Whose clock stamps leases, rescues and transitions on PostgreSQL.
//!
//! Several hosts share one database, and their clocks differ. A host whose
//! clock runs ahead would write leases that expire late and, worse, rescue
//! leases that are still valid on the host that holds them: a step still
//! running would run twice. So by default ([`PgClock::Database`]) every
//! time a caller passes in is rebased onto the *database's* clock: the
//! caller's `now` is replaced by the database time, and any other time it
//! passes (a lease expiry, a retry time, an identity window start) keeps
//! its distance from the caller's `now`. Durations are what callers mean;
//! the database says when "now" is.
//!
//! The database time is sampled with `SELECT clock_timestamp()` when the
//! store connects and every [`RESAMPLE`] after, and extrapolated between
//! samples with the host's monotonic clock (immune to wall-clock steps), so
//! the hot path pays no extra round trip. Error: half a round trip plus the
//! monotonic drift over one period (microseconds), far below any lease.
//!
//! [`PgClock::Caller`] keeps the caller's times as given: for tests that
//! inject time (the conformance suite starts in 2030). SQLite has one host
//! and always uses the caller's clock.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the database clock is sampled again.
pub const RESAMPLE: Duration = Duration::from_secs(5);

/// Which clock a [`crate::PgStore`] uses for the times it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PgClock {
    /// The database server's clock (production: hosts' clocks may differ).
    #[default]
    Database,
    /// The times callers pass in, unchanged (tests with an injected clock).
    Caller,
}

/// The last sample of the database clock: its time and when it was taken.
#[derive(Debug)]
pub(crate) struct DbClock(Mutex<(DateTime<Utc>, Instant)>);

impl DbClock {
    /// Samples the database clock once.
    pub(crate) async fn sample(pool: &PgPool) -> Result<DbClock, sqlx::Error> {
        let clock = DbClock(Mutex::new((Utc::now(), Instant::now())));
        clock.resample(pool).await?;
        Ok(clock)
    }

    async fn resample(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let sent = Instant::now();
        let db: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
            .fetch_one(pool)
            .await?;
        let back = Instant::now();
        // The server read its clock about halfway through the round trip.
        let at = sent + (back - sent) / 2;
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = (db, at);
        Ok(())
    }

    /// The database's time now, extrapolated from the last sample.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        let (db, at) = *self.0.lock().unwrap_or_else(|p| p.into_inner());
        db + chrono::Duration::from_std(at.elapsed()).unwrap_or_default()
    }

    /// Resamples every [`RESAMPLE`] while `clock` lives; a failed sample
    /// (database away) keeps the previous one.
    pub(crate) async fn keep_fresh(clock: std::sync::Weak<DbClock>, pool: PgPool) {
        loop {
            tokio::time::sleep(RESAMPLE).await;
            let Some(c) = clock.upgrade() else { return };
            if let Err(e) = c.resample(&pool).await {
                tracing::debug!(error = %e, "cannot sample the database clock; keeping the last sample");
            }
        }
    }
}

/// Rebases a caller's times onto the store's clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rebase {
    /// The store's "now".
    pub now: DateTime<Utc>,
    shift: chrono::Duration,
}

impl Rebase {
    /// For a caller whose clock reads `caller_now`; `db` is None with
    /// [`PgClock::Caller`].
    pub(crate) fn new(db: Option<&Arc<DbClock>>, caller_now: DateTime<Utc>) -> Rebase {
        match db {
            Some(c) => {
                let now = c.now();
                Rebase {
                    now,
                    shift: now - caller_now,
                }
            }
            None => Rebase {
                now: caller_now,
                shift: chrono::Duration::zero(),
            },
        }
    }

    /// Another time of the same caller, at the same distance from `now`.
    pub(crate) fn at(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        t + self.shift
    }

    /// True when nothing changes (caller's clock, or no measurable skew).
    pub(crate) fn is_identity(&self) -> bool {
        self.shift.is_zero()
    }
}
