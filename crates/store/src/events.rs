//! Signals a store broadcasts after commits.
//!
//! In one process they travel over a tokio broadcast channel; the PostgreSQL
//! backend also relays them between processes with LISTEN/NOTIFY. They are
//! hints: a receiver re-reads the database, never trusts the payload alone.

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
