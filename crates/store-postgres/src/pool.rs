//! The connection pool's settings, which connection it hands out, and when a
//! pooled connection is tested before it is handed out.
//!
//! The pool hands out the connection given back last (a stack; sqlx's own
//! pool is a queue, patched in `vendor/sqlx-core`, vendor/README.md). Each
//! PostgreSQL backend parses every statement once and plans it five times
//! before it settles on a generic plan, and again after anything
//! invalidates its plans (an `ANALYZE` as the tables grow); a queue spreads
//! a steady load over every connection a burst opened, so each of them pays
//! that, and none sits idle long enough to close. A stack keeps the load on
//! the fewest backends, whose caches are warm, and lets the rest sink and
//! close after sqlx's idle timeout (ten minutes). Measured: task creation
//! and the chain stage faster by the figures in docs/PERFORMANCE.md, "The
//! connection given back last"; `tests/connection_reuse.rs`.
//!
//! sqlx tests a connection twice per use by default: when it takes it from
//! the idle queue (`test_before_acquire`) and when it gets it back (always:
//! a connection a cancelled query left mid-protocol must not be reused).
//! Each test is a `Sync` message and its `ReadyForQuery`, a round trip; the
//! one at acquire is paid before every statement, so a chain stage, whose
//! finish is one statement, paid two round trips (docs/PERFORMANCE.md, "A
//! test per acquire"). A connection given back a moment ago passed the test
//! at its release, so it is tested again only after sitting idle for
//! [`PING_AFTER_IDLE`] (as HikariCP skips its check of a connection used
//! within the last 500 ms), or while the pool has reason to doubt its
//! connections: for [`TEST_AFTER_LOSS`] after any statement of this process
//! found its connection gone (`error::classify` calls [`connection_lost`]).
//!
//! So when the server ends sessions (an operator, a restart, a failover),
//! the first statement sent on a dead connection fails. A store operation
//! that runs under `with_retry!` (every write: creation, claims, finishes,
//! operator actions) runs again (`57P01`/`57P02` roll back what was not
//! committed: `TxError::SessionLost`) on a connection the pool has now
//! tested; a read fails once with `Unavailable`
//! (`tests/lost_sessions.rs`; `tests/postgres.rs`,
//! `listener_recovers_after_its_session_is_terminated`).

use crate::PgOptions;
use sqlx::pool::PoolConnectionMetadata;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};
use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a connection may sit idle in the pool before it is tested on
/// its way out.
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// How long after a lost connection every connection is tested on its way
/// out: long enough for the engine's loops and the requests in flight to
/// pass over every pooled connection once.
pub(crate) const TEST_AFTER_LOSS: Duration = Duration::from_secs(5);

/// The origin of [`LAST_LOSS_MS`].
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// When a statement of this process last found its connection gone, in
/// milliseconds after [`EPOCH`] plus one; 0: never. Process-wide (every
/// store's pool in the process follows it): being wrong here only costs a
/// few round trips.
static LAST_LOSS_MS: AtomicU64 = AtomicU64::new(0);

/// Records that a statement found its connection gone.
pub(crate) fn connection_lost() {
    let ms = u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
    LAST_LOSS_MS.store(ms.saturating_add(1), Ordering::Relaxed);
}

/// Forgets every loss ([`crate::testing::forget_lost_connections`]).
pub(crate) fn forget_losses() {
    LAST_LOSS_MS.store(0, Ordering::Relaxed);
}

/// How long ago a statement last found its connection gone, if ever.
fn since_last_loss() -> Option<Duration> {
    match LAST_LOSS_MS.load(Ordering::Relaxed) {
        0 => None,
        at => {
            let now = u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX);
            Some(Duration::from_millis(now.saturating_sub(at - 1)))
        }
    }
}

/// Whether a connection idle for `idle_for` is tested before it is handed
/// out, when a connection was last lost `since_loss` ago.
fn needs_ping(idle_for: Duration, since_loss: Option<Duration>) -> bool {
    idle_for >= PING_AFTER_IDLE || since_loss.is_some_and(|d| d < TEST_AFTER_LOSS)
}

/// The pool's settings from the store's options.
pub(crate) fn options(options: &PgOptions) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .min_connections(options.min_connections.min(options.max_connections.max(1)))
        .acquire_timeout(options.acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(ping_if_due)
}

/// sqlx's `before_acquire` hook: tests the connection when [`needs_ping`]
/// says so. An error closes that connection and the pool hands out another
/// (or opens one).
fn ping_if_due(
    conn: &mut PgConnection,
    meta: PoolConnectionMetadata,
) -> Pin<Box<dyn Future<Output = Result<bool, sqlx::Error>> + Send + '_>> {
    Box::pin(async move {
        if needs_ping(meta.idle_for, since_last_loss()) {
            conn.ping().await?;
        }
        Ok(true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_just_used_is_not_tested() {
        assert!(!needs_ping(Duration::ZERO, None));
        assert!(!needs_ping(Duration::from_millis(999), None));
        assert!(!needs_ping(Duration::ZERO, Some(TEST_AFTER_LOSS)));
    }

    #[test]
    fn a_connection_idle_for_a_second_is_tested() {
        assert!(needs_ping(PING_AFTER_IDLE, None));
        assert!(needs_ping(Duration::from_secs(600), None));
    }

    #[test]
    fn every_connection_is_tested_for_a_while_after_one_was_lost() {
        assert!(needs_ping(Duration::ZERO, Some(Duration::ZERO)));
        assert!(needs_ping(
            Duration::ZERO,
            Some(TEST_AFTER_LOSS - Duration::from_millis(1))
        ));
    }

    #[test]
    fn a_loss_is_remembered() {
        connection_lost();
        assert!(since_last_loss().is_some_and(|d| d < TEST_AFTER_LOSS));
    }
}
