//! Waiting for a task to reach a final state: woken by store events, with a
//! slow re-read as a backstop for missed or absent events.

use crate::error::EngineError;
use std::future::Future;
use std::time::Duration;
use tasker_store::{StoreEvent, StoreResult, TaskRow, is_final};
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

/// How long to wait for an event before re-reading the task anyway.
const BACKSTOP: Duration = Duration::from_millis(500);

/// Re-reads the task (with `load`) until it is final or `timeout` passes.
///
/// Between reads it waits for this task's `TaskFinished` (or any lag), at
/// most [`BACKSTOP`]. Once the event channel is closed it waits for the
/// backstop alone: a closed receiver answers at once, and looping on it
/// would re-read the database as fast as it answers.
pub(crate) async fn until_final<F, Fut>(
    id: Uuid,
    mut events: broadcast::Receiver<StoreEvent>,
    timeout: Duration,
    mut load: F,
) -> Result<TaskRow, EngineError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<TaskRow>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut closed = false;
    loop {
        let task = load().await?;
        if is_final(task.status) {
            return Ok(task);
        }
        let backstop = tokio::time::sleep(BACKSTOP);
        tokio::pin!(backstop);
        loop {
            tokio::select! {
                ev = events.recv(), if !closed => match ev {
                    Ok(StoreEvent::TaskFinished(t)) if t == id => break,
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => closed = true,
                },
                _ = &mut backstop => break,
                _ = tokio::time::sleep_until(deadline) => return Err(EngineError::WaitTimeout(id)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tasker_core::TaskState;

    fn pending_task(id: Uuid) -> TaskRow {
        let now = chrono::Utc::now();
        TaskRow {
            id,
            namespace: "default".into(),
            name: "t".into(),
            version: "1.0.0".into(),
            status: TaskState::Pending,
            context: serde_json::json!({}),
            initiator: "test".into(),
            source_system: "test".into(),
            reason: "test".into(),
            tags: vec![],
            correlation_id: "c".into(),
            identity_hash: None,
            steps_total: 1,
            steps_remaining: 1,
            created_at: now,
            updated_at: now,
            completed_at: None,
            paused_at: None,
        }
    }

    /// A closed event channel must not turn the wait into a busy loop: over
    /// 300 ms (under one backstop period) the task is read once, where the
    /// old loop re-read it as fast as the store answered.
    #[tokio::test]
    async fn closed_event_channel_does_not_spin() {
        let (tx, rx) = broadcast::channel::<StoreEvent>(4);
        drop(tx);
        let id = Uuid::now_v7();
        let loads = AtomicU32::new(0);
        let result = until_final(id, rx, Duration::from_millis(300), || {
            loads.fetch_add(1, Ordering::SeqCst);
            async move { Ok(pending_task(id)) }
        })
        .await;
        assert!(matches!(result, Err(EngineError::WaitTimeout(t)) if t == id));
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }
}
