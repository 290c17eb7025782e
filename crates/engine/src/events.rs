//! Lifecycle events in the application service (docs/EVENTS.md): reading
//! the outbox (masked), long polling, custom events from handlers and
//! external workers, and a task's full transition history.
//!
//! The store writes the events itself, in the transaction of each state
//! change; this module only reads them and adds custom ones.

use crate::clock::Clock;
use crate::error::EngineError;
use crate::service::Tasker;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tasker_store::outbox::validate_custom_name;
use tasker_store::{EventQuery, EventRow, NewCustomEvent, Store, StoreError, TransitionRow};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

/// Longest custom event payload, serialised.
pub const MAX_CUSTOM_PAYLOAD_BYTES: usize = 64 * 1024;

/// How long a long poll waits for a wake-up before reading again anyway:
/// other processes' commits are not announced here on SQLite, nor step
/// changes on PostgreSQL (see `tasker_store::events`).
const BACKSTOP: Duration = Duration::from_millis(500);

/// One transition of a task's history: the task's own, or one of its steps'.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    /// The step, for step transitions (None for the task's own).
    pub step_id: Option<Uuid>,
    /// The step's name, for step transitions.
    pub step_name: Option<String>,
    /// The transition.
    #[serde(flatten)]
    pub transition: TransitionRow,
}

impl Tasker {
    /// Events after `query.after`, oldest first, with sensitive values
    /// masked (per `logging.sensitive_keys`).
    pub async fn events(&self, query: &EventQuery) -> Result<Vec<EventRow>, EngineError> {
        let mut rows = self.store().events_list(query).await?;
        for r in &mut rows {
            r.payload = self.masker().mask(&r.payload);
        }
        Ok(rows)
    }

    /// The events of each of `task_ids` (a page of `query` per task, see
    /// `Store::events_list_many`) in one read, masked like [`Tasker::events`].
    pub async fn task_events_many(
        &self,
        task_ids: &[Uuid],
        query: &EventQuery,
    ) -> Result<std::collections::HashMap<Uuid, Vec<EventRow>>, EngineError> {
        let mut found = self.store().events_list_many(task_ids, query).await?;
        for rows in found.values_mut() {
            for r in rows {
                r.payload = self.masker().mask(&r.payload);
            }
        }
        Ok(found)
    }

    /// [`Tasker::events`], waiting up to `wait` for the first one when none
    /// is there yet (long polling). Woken by the store's change signals,
    /// with a short re-read as a backstop for changes made by other
    /// processes. Returns an empty list when `wait` passes.
    pub async fn wait_for_events(
        &self,
        query: &EventQuery,
        wait: Duration,
    ) -> Result<Vec<EventRow>, EngineError> {
        // Subscribe before the first read, so a commit between the read and
        // the wait still wakes it.
        let mut signals = self.store().subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        let mut closed = false;
        loop {
            let rows = self.events(query).await?;
            if !rows.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(rows);
            }
            let backstop = tokio::time::sleep(BACKSTOP);
            tokio::pin!(backstop);
            tokio::select! {
                ev = signals.recv(), if !closed => {
                    if let Err(RecvError::Closed) = ev {
                        closed = true;
                    }
                }
                _ = &mut backstop => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Records a custom event for a step. `lease_token` (external workers)
    /// requires the step to be running under that lease.
    pub async fn emit_event(
        &self,
        step_id: Uuid,
        name: &str,
        payload: Value,
        lease_token: Option<Uuid>,
    ) -> Result<(), EngineError> {
        emit(
            self.store().as_ref(),
            self.now(),
            step_id,
            name,
            payload,
            lease_token,
        )
        .await
    }

    /// Every transition of a task and of its steps, oldest first (by time,
    /// then the task's own before its steps', then in write order).
    pub async fn task_history(&self, task_id: Uuid) -> Result<Vec<HistoryEntry>, EngineError> {
        let store = self.store();
        let mut out: Vec<HistoryEntry> = store
            .task_transitions(task_id)
            .await?
            .into_iter()
            .map(|t| HistoryEntry {
                step_id: None,
                step_name: None,
                transition: t,
            })
            .collect();
        for s in store.step_list(task_id).await? {
            for t in store.step_transitions(s.id).await? {
                out.push(HistoryEntry {
                    step_id: Some(s.id),
                    step_name: Some(s.name.clone()),
                    transition: t,
                });
            }
        }
        // A stable sort keeps each entity's rows in write order.
        out.sort_by_key(|e| (e.transition.created_at, e.step_id.is_some()));
        for e in &mut out {
            e.transition.metadata = self.masker().mask(&e.transition.metadata);
        }
        Ok(out)
    }

    /// Deletes events older than the retention, a batch at a time, until
    /// none is left or `max_batches` were deleted, then the settled webhook
    /// deliveries of the events gone the same way; returns how many events.
    pub async fn prune_events(&self, max_batches: u32) -> Result<u64, EngineError> {
        let Some(retention) = self.config().event_retention else {
            return Ok(0);
        };
        let before = self.now() - chrono::Duration::from_std(retention).unwrap_or_default();
        let batch = self.config().event_prune_batch.max(1);
        let mut total = 0;
        for _ in 0..max_batches {
            let n = self.store().events_prune(before, batch).await?;
            total += n;
            if n < u64::from(batch) {
                break;
            }
            // Let other writers in between batches (SQLite has one writer).
            tokio::task::yield_now().await;
        }
        // Webhook deliveries go with their events (settled ones only: a
        // pending pair is dead-lettered when claimed, then goes next pass).
        for _ in 0..max_batches {
            let n = self.store().webhook_deliveries_prune(batch).await?;
            if n < u64::from(batch) {
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok(total)
    }
}

async fn emit(
    store: &dyn Store,
    now: DateTime<Utc>,
    step_id: Uuid,
    name: &str,
    payload: Value,
    lease_token: Option<Uuid>,
) -> Result<(), EngineError> {
    validate_custom_name(name).map_err(|m| EngineError::InvalidField {
        field: "name".into(),
        message: m,
    })?;
    let size = serde_json::to_vec(&payload).map(|v| v.len()).unwrap_or(0);
    if size > MAX_CUSTOM_PAYLOAD_BYTES {
        return Err(EngineError::InvalidField {
            field: "payload".into(),
            message: format!("is {size} bytes; at most {MAX_CUSTOM_PAYLOAD_BYTES} are allowed"),
        });
    }
    if let Some(path) = tasker_store::storable::nul_in_json(&payload) {
        return Err(EngineError::InvalidField {
            field: "payload".into(),
            message: format!("contains a NUL character at {path}, which cannot be stored"),
        });
    }
    match store
        .event_emit(NewCustomEvent {
            step_id,
            name: name.to_string(),
            payload,
            now,
            lease_token,
        })
        .await
    {
        Err(StoreError::Conflict(_)) if lease_token.is_some() => {
            Err(EngineError::LeaseLost(step_id))
        }
        r => Ok(r?),
    }
}

/// What a handler uses to emit custom events for the step it runs
/// ([`crate::StepContext::events`]). Detached emitters (handlers called
/// outside a worker, e.g. in unit tests) refuse with an error.
#[derive(Clone, Default)]
pub struct EventEmitter {
    target: Option<Target>,
}

/// Where an attached emitter writes: the store, its clock, the step.
#[derive(Clone)]
struct Target {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    step_id: Uuid,
}

impl std::fmt::Debug for EventEmitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventEmitter")
            .field("step_id", &self.target.as_ref().map(|t| t.step_id))
            .finish()
    }
}

impl EventEmitter {
    /// An emitter for `step_id`, writing to `store` at `clock`'s time.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, step_id: Uuid) -> Self {
        EventEmitter {
            target: Some(Target {
                store,
                clock,
                step_id,
            }),
        }
    }

    /// An emitter attached to nothing: every emit is an error.
    pub fn detached() -> Self {
        EventEmitter::default()
    }

    /// Records the custom event `name` (validated: it must contain a dot
    /// and not use a reserved namespace such as `task` or `step`) with
    /// `payload`, now, in its own transaction.
    pub async fn emit(&self, name: &str, payload: Value) -> Result<(), EngineError> {
        let Some(Target {
            store,
            clock,
            step_id,
        }) = &self.target
        else {
            return Err(EngineError::InvalidField {
                field: "events".into(),
                message: "this step context is not attached to a store".into(),
            });
        };
        emit(store.as_ref(), clock.now(), *step_id, name, payload, None).await
    }
}
