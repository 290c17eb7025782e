//! Signals a store broadcasts after commits.
//!
//! In one process every event travels over a tokio broadcast channel, sent
//! after the commit that caused it. Between processes:
//!
//! | event | SQLite | PostgreSQL |
//! |---|---|---|
//! | `WorkAvailable` | not relayed | relayed (`tasker_work` NOTIFY; also sent after a listener reconnect) |
//! | `TaskFinished` | not relayed | relayed (`tasker_task` NOTIFY) |
//! | `TaskChanged` | not relayed | not relayed (one NOTIFY per step change would cost too much commit throughput, see `store-postgres/src/events.rs`) |
//!
//! So a receiver that must notice another process's step changes (e.g. the
//! server's analysis cache, `server/src/cache.rs`) cannot rely on events
//! alone. They are hints in every case: a receiver re-reads the database,
//! never trusts the payload alone.

use uuid::Uuid;

/// Something changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// Steps became claimable now (created, unblocked, retried, rescued).
    WorkAvailable,
    /// A step of this task changed state.
    TaskChanged(Uuid),
    /// This task reached a final state (complete, error, cancelled, resolved_manually).
    TaskFinished(Uuid),
}
