//! Wake-up signals: in-process broadcast after commit, cross-process
//! LISTEN/NOTIFY, and the listener that turns notifications back into
//! [`StoreEvent`]s.
//!
//! Channels and payloads:
//!
//! | channel | payload | meaning |
//! |---|---|---|
//! | `tasker_work` | the sending store's instance id | steps became claimable now |
//! | `tasker_task` | `<task_id>:finished[,<task_id>:changed…]` | tasks reached a final state; with `PgOptions::announce_changes`, also tasks whose steps changed |
//!
//! A transaction sends at most one `tasker_work` notification, however many
//! steps it made ready, and one `tasker_task` notification per ~150 finished
//! tasks (the payload limit is 8000 bytes). NOTIFY is transactional: it is
//! delivered at commit and dropped on rollback, so a listener never wakes for
//! work that does not exist.
//!
//! Cost: PostgreSQL serialises the commits of notifying transactions
//! cluster-wide (a lock taken in `PreCommit_Notify` and held through the WAL
//! flush), so notifying commits do not benefit from group commit. Measured
//! here with pgbench (8 clients, an INSERT per transaction): about 9,400
//! commits/s without NOTIFY and 5,400 with one; hence at most one
//! notification per channel per transaction, and none when nothing became
//! claimable or finished.
//!
//! A store hears its own `tasker_task` notifications too, so in the process
//! that finished a task `TaskFinished` may arrive twice (once after commit,
//! once relayed). Events are hints; receivers re-read the database.

use crate::error::TxError;
use sqlx::PgConnection;
use sqlx::postgres::PgListener;
use std::time::Duration;
use tasker_core::backoff::Doubling;
use tasker_store::StoreEvent;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Channel for "steps became claimable".
pub const WORK_CHANNEL: &str = "tasker_work";
/// Channel for "tasks reached a final state".
pub const TASK_CHANNEL: &str = "tasker_task";

/// Entries per `tasker_task` payload: 150 × 46 bytes stays under 8000.
const FINISHED_PER_PAYLOAD: usize = 150;

/// A store instance as its notifications name it.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// The instance id (payload of its `tasker_work` notifications).
    pub id: String,
    /// Whether `tasker_task` also carries changed (not only finished) tasks.
    pub announce_changes: bool,
}

/// What one transaction wants to announce once it has committed.
#[derive(Debug, Default, Clone)]
pub(crate) struct Emit {
    /// Steps became claimable now.
    pub work: bool,
    /// Tasks whose steps changed.
    pub changed: Vec<Uuid>,
    /// Tasks that reached a final state.
    pub finished: Vec<Uuid>,
    /// The NOTIFYs were already queued in the transaction (by a statement
    /// that folded them in, see `settle::write_tasks`).
    pub notified: bool,
    /// Finished tasks whose `tasker_task` NOTIFY a statement already queued
    /// (the finish statement, `finish.rs`): [`notify`] leaves them out.
    pub finished_sent: Vec<Uuid>,
}

impl Emit {
    pub(crate) fn changed(&mut self, id: Uuid) {
        if !self.changed.contains(&id) {
            self.changed.push(id);
        }
    }

    pub(crate) fn finished(&mut self, id: Uuid) {
        self.changed(id);
        if !self.finished.contains(&id) {
            self.finished.push(id);
        }
    }

    /// A finished task whose NOTIFY a statement already queued.
    pub(crate) fn finished_notified(&mut self, id: Uuid) {
        self.finished(id);
        if !self.finished_sent.contains(&id) {
            self.finished_sent.push(id);
        }
    }

    /// True when something must be sent to other processes.
    pub(crate) fn needs_notify(&self, origin: &Origin) -> bool {
        self.work
            || self.finished.len() > self.finished_sent.len()
            || (origin.announce_changes && !self.changed.is_empty())
    }

    /// `tasker_task` payloads: the finished tasks, and with
    /// `announce_changes` the other changed tasks too.
    pub(crate) fn task_payloads(&self, origin: &Origin) -> Vec<String> {
        let changed = self
            .changed
            .iter()
            .filter(|id| origin.announce_changes && !self.finished.contains(id))
            .map(|id| format!("{id}:changed"));
        let all: Vec<String> = self
            .finished
            .iter()
            .filter(|id| !self.finished_sent.contains(id))
            .map(|id| format!("{id}:finished"))
            .chain(changed)
            .collect();
        all.chunks(FINISHED_PER_PAYLOAD)
            .map(|chunk| chunk.join(","))
            .collect()
    }

    /// Sends the in-process events (call after commit only).
    pub(crate) fn broadcast(self, tx: &broadcast::Sender<StoreEvent>) {
        // `send` fails only when nobody subscribes, which is fine: events are hints.
        if self.work {
            let _ = tx.send(StoreEvent::WorkAvailable);
        }
        for id in &self.changed {
            let _ = tx.send(StoreEvent::TaskChanged(*id));
        }
        for id in self.finished {
            let _ = tx.send(StoreEvent::TaskFinished(id));
        }
    }
}

/// Queues the NOTIFYs of `emit` in the current transaction (sent at commit).
/// One statement, whatever the number of steps and tasks involved.
pub(crate) async fn notify(
    conn: &mut PgConnection,
    emit: &mut Emit,
    origin: &Origin,
) -> Result<(), TxError> {
    if emit.notified || !emit.needs_notify(origin) {
        return Ok(());
    }
    sqlx::query(
        "SELECT (SELECT count(pg_notify('tasker_work', $2)) WHERE $1), \
                (SELECT count(pg_notify('tasker_task', p)) FROM UNNEST($3::text[]) AS p)",
    )
    .bind(emit.work)
    .bind(&origin.id)
    .bind(emit.task_payloads(origin))
    .execute(conn)
    .await?;
    emit.notified = true;
    Ok(())
}

/// Turns one notification into events. `origin` is this store's instance id:
/// work notifications it sent itself were already broadcast after commit.
pub(crate) fn parse_notification(channel: &str, payload: &str, origin: &str) -> Vec<StoreEvent> {
    match channel {
        WORK_CHANNEL if payload == origin => Vec::new(),
        WORK_CHANNEL => vec![StoreEvent::WorkAvailable],
        TASK_CHANNEL => payload
            .split(',')
            .filter_map(|entry| {
                let (id, what) = entry.split_once(':')?;
                let id = Uuid::parse_str(id.trim()).ok()?;
                match what {
                    "finished" => Some(StoreEvent::TaskFinished(id)),
                    _ => Some(StoreEvent::TaskChanged(id)),
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Subscribes a fresh [`PgListener`] to both channels.
pub(crate) async fn listen(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen_all([WORK_CHANNEL, TASK_CHANNEL]).await?;
    Ok(listener)
}

/// The background relay: notifications from any process → local broadcast.
///
/// `PgListener` reconnects by itself after an I/O failure and reports it as
/// `Ok(None)`; notifications sent while it was away are lost, so a reconnect
/// is announced as `WorkAvailable` (receivers re-read the database). Any other
/// error (e.g. the server terminated the session with `57P01`) drops the
/// listener and builds a new one with a capped backoff.
pub(crate) async fn relay(
    mut listener: PgListener,
    url: String,
    origin: String,
    events: broadcast::Sender<StoreEvent>,
) {
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) => {
                for ev in parse_notification(n.channel(), n.payload(), &origin) {
                    let _ = events.send(ev);
                }
            }
            Ok(None) => {
                tracing::warn!(
                    "tasker notification listener reconnected; notifications may have been missed"
                );
                let _ = events.send(StoreEvent::WorkAvailable);
            }
            Err(e) => {
                tracing::warn!(error = %e, "tasker notification listener failed; reconnecting");
                let mut backoff = Doubling::new(Duration::from_millis(50), Duration::from_secs(5));
                listener = loop {
                    tokio::time::sleep(backoff.next_delay()).await;
                    match listen(&url).await {
                        Ok(l) => break l,
                        Err(e) => {
                            tracing::warn!(error = %e, "tasker notification listener cannot reconnect yet");
                        }
                    }
                };
                let _ = events.send(StoreEvent::WorkAvailable);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_payloads() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        assert_eq!(
            parse_notification(WORK_CHANNEL, "", "me"),
            vec![StoreEvent::WorkAvailable]
        );
        assert_eq!(
            parse_notification(WORK_CHANNEL, "other", "me"),
            vec![StoreEvent::WorkAvailable]
        );
        assert!(parse_notification(WORK_CHANNEL, "me", "me").is_empty());
        assert_eq!(
            parse_notification(TASK_CHANNEL, &format!("{a}:finished,{b}:finished"), "me"),
            vec![StoreEvent::TaskFinished(a), StoreEvent::TaskFinished(b)]
        );
        assert!(parse_notification(TASK_CHANNEL, "garbage", "me").is_empty());
        assert!(parse_notification("other", "x", "me").is_empty());
    }

    #[test]
    fn payloads_fit_the_notify_limit() {
        let emit = Emit {
            work: false,
            changed: vec![],
            finished: (0..1000).map(|_| Uuid::now_v7()).collect(),
            notified: false,
            finished_sent: vec![],
        };
        let origin = Origin {
            id: "me".into(),
            announce_changes: true,
        };
        let payloads = emit.task_payloads(&origin);
        assert_eq!(payloads.len(), 7);
        assert!(payloads.iter().all(|p| p.len() < 8000));
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        let mut emit = Emit::default();
        emit.changed(a);
        emit.finished(b);
        assert_eq!(
            emit.task_payloads(&origin),
            vec![format!("{b}:finished,{a}:changed")]
        );
        let quiet = Origin {
            announce_changes: false,
            ..origin
        };
        assert_eq!(emit.task_payloads(&quiet), vec![format!("{b}:finished")]);
        let mut only_changed = Emit::default();
        only_changed.changed(a);
        assert!(!only_changed.needs_notify(&quiet));
        assert_eq!(
            parse_notification(TASK_CHANNEL, &format!("{a}:changed"), "me"),
            vec![StoreEvent::TaskChanged(a)]
        );
    }
}
