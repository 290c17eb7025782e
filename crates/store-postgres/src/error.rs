//! Mapping `sqlx::Error` to [`StoreError`], and the retry decision.
//!
//! Every operation runs in a transaction that may be aborted by PostgreSQL
//! for reasons that are not the caller's fault: a serialization failure
//! (`40001`) or a deadlock victim (`40P01`), or its session ended by the
//! server (`57P01 admin_shutdown`, `57P02 crash_shutdown`: terminated by an
//! operator, a restart or a failover; what the session had not committed
//! is rolled back). Those are run again inside the store a few times
//! ([`TxError::Retry`], [`TxError::SessionLost`]); a session's loss also
//! makes the pool test its connections before handing them out for a
//! while (`pool.rs`), so the next attempt gets a live one. Losing the
//! server otherwise (connection refused, I/O error, pool timeout, class
//! `08`) is [`StoreError::Unavailable`], as is a lost session once retries
//! are exhausted; a value the database cannot store (SQLSTATE class `22`,
//! data exception) is [`StoreError::InvalidData`]; everything else is
//! [`StoreError::Internal`].

use std::time::Duration;
use tasker_store::StoreError;

/// How many times a transaction aborted by a serialization failure, a
/// deadlock or the loss of its session is run again before the error is
/// reported.
pub(crate) const MAX_TX_RETRIES: u32 = 5;

/// The error of one transaction attempt.
#[derive(Debug)]
pub(crate) enum TxError {
    /// Aborted by the database's concurrency control; run the transaction again.
    Retry(String),
    /// The server ended the session (`57P01`, `57P02`) before the
    /// transaction committed; run it again on another connection.
    SessionLost(String),
    /// Final.
    Store(StoreError),
}

impl TxError {
    /// The error the caller sees once retries are exhausted.
    pub(crate) fn into_store(self) -> StoreError {
        match self {
            TxError::Retry(msg) => StoreError::Internal(format!("transaction kept failing: {msg}")),
            TxError::SessionLost(msg) => StoreError::Unavailable(msg),
            TxError::Store(e) => e,
        }
    }

    /// The transaction did not take effect and may be run again as it is.
    pub(crate) fn retryable(&self) -> bool {
        matches!(self, TxError::Retry(_) | TxError::SessionLost(_))
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

impl From<tasker_core::InvalidTransition> for TxError {
    fn from(e: tasker_core::InvalidTransition) -> Self {
        TxError::Store(StoreError::InvalidTransition(e))
    }
}

impl From<sqlx::Error> for TxError {
    fn from(e: sqlx::Error) -> Self {
        classify(e)
    }
}

/// Maps a driver error to what the store reports; an error that means the
/// connection is gone also tells the pool (`pool::connection_lost`).
pub(crate) fn classify(e: sqlx::Error) -> TxError {
    if connection_gone(&e) {
        crate::pool::connection_lost();
    }
    classify_only(e)
}

/// The statement's connection is gone: the server ended its session, the
/// connection broke, or the server refused it. Not a pool that is merely
/// busy or closed (testing connections then would only add round trips to
/// an overloaded pool).
fn connection_gone(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            matches!(code.as_ref(), "57P01" | "57P02" | "57P03") || code.starts_with("08")
        }
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

fn classify_only(e: sqlx::Error) -> TxError {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.as_str() {
                // serialization_failure, deadlock_detected: the transaction
                // lost a race; nothing it did is visible, so run it again.
                "40001" | "40P01" => TxError::Retry(db.message().to_string()),
                // admin_shutdown, crash_shutdown: the server ended this
                // session; what it had not committed was rolled back.
                "57P01" | "57P02" => TxError::SessionLost(db.message().to_string()),
                // cannot_connect_now, too_many_connections, and the whole
                // connection-exception class.
                "57P03" | "53300" => {
                    TxError::Store(StoreError::Unavailable(db.message().to_string()))
                }
                c if c.starts_with("08") => {
                    TxError::Store(StoreError::Unavailable(db.message().to_string()))
                }
                // unique_violation: a caller reused an id.
                "23505" => TxError::Store(StoreError::Conflict(format!(
                    "{} ({})",
                    db.message(),
                    db.constraint().unwrap_or("unique constraint")
                ))),
                // data_exception (22021 bad byte sequence, 22P05 untranslatable
                // character, …): this value can never be stored; retrying is
                // pointless, and a batch writer should split its batch.
                c if c.starts_with("22") => TxError::Store(StoreError::InvalidData(format!(
                    "{} [{code}]",
                    db.message()
                ))),
                _ => TxError::Store(StoreError::Internal(format!("{} [{code}]", db.message()))),
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => TxError::Store(StoreError::Unavailable(e.to_string())),
        _ => TxError::Store(StoreError::Internal(e.to_string())),
    }
}

/// Maps a driver error straight to a [`StoreError`] (outside the retry loop).
pub(crate) fn store_err(e: sqlx::Error) -> StoreError {
    classify(e).into_store()
}

/// Pause before retry `attempt` (1-based): short, growing, jittered so that
/// two deadlock victims do not collide again in lockstep.
pub(crate) fn retry_pause(attempt: u32) -> Duration {
    let base = 2u64.saturating_pow(attempt.min(6)); // 2, 4, 8 … 64 ms
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % base.max(1);
    Duration::from_millis(base + jitter)
}

/// Runs a transaction body again while it fails with [`TxError::Retry`] or
/// [`TxError::SessionLost`].
///
/// `$body` is an expression that builds a fresh future on every evaluation
/// (e.g. `self.claim_once(claim)`), so each attempt starts a new transaction.
macro_rules! with_retry {
    ($op:literal, $body:expr) => {{
        let mut attempt: u32 = 0;
        loop {
            match $body.await {
                Ok(v) => break Ok(v),
                Err(e) if e.retryable() && attempt < $crate::error::MAX_TX_RETRIES => {
                    attempt += 1;
                    tracing::debug!(op = $op, attempt, error = ?e, "transaction aborted (concurrency control or a lost session); retrying");
                    tokio::time::sleep($crate::error::retry_pause(attempt)).await;
                }
                Err(e) => break Err(e.into_store()),
            }
        }
    }};
}
pub(crate) use with_retry;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_errors_are_unavailable() {
        assert!(matches!(
            classify(sqlx::Error::PoolTimedOut),
            TxError::Store(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            classify(sqlx::Error::PoolClosed),
            TxError::Store(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            classify(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "no"
            ))),
            TxError::Store(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            classify(sqlx::Error::RowNotFound),
            TxError::Store(StoreError::Internal(_))
        ));
    }

    async fn flaky(calls: &std::sync::atomic::AtomicU32, failures: u32) -> Result<u32, TxError> {
        let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n < failures {
            Err(TxError::Retry("deadlock detected".into()))
        } else {
            Ok(n)
        }
    }

    #[tokio::test]
    async fn retries_concurrency_aborts_then_gives_up() {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let r: Result<u32, StoreError> = with_retry!("test", flaky(&calls, 2));
        assert_eq!(r.ok(), Some(2), "third attempt succeeds");

        let calls = std::sync::atomic::AtomicU32::new(0);
        let r: Result<u32, StoreError> = with_retry!("test", flaky(&calls, 100));
        assert!(matches!(r, Err(StoreError::Internal(_))));
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            MAX_TX_RETRIES + 1
        );
    }

    #[test]
    fn a_busy_pool_is_not_a_lost_connection() {
        assert!(!connection_gone(&sqlx::Error::PoolTimedOut));
        assert!(!connection_gone(&sqlx::Error::PoolClosed));
        assert!(!connection_gone(&sqlx::Error::RowNotFound));
        assert!(connection_gone(&sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset"
        ))));
    }

    #[tokio::test]
    async fn retries_a_lost_session_then_reports_unavailable() {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let lost = || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err::<u32, _>(TxError::SessionLost(
                "terminating connection due to administrator command".into(),
            ))
        };
        let r: Result<u32, StoreError> = with_retry!("test", lost());
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            MAX_TX_RETRIES + 1
        );
    }

    #[test]
    fn retry_pause_is_bounded() {
        for a in 1..20 {
            assert!(retry_pause(a) <= Duration::from_millis(128));
        }
    }
}
