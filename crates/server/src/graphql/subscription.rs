//! `Subscription`: live updates over WebSocket (`graphql-transport-ws`).
//!
//! Every subscription sends the current state first, then the state again
//! after each committed change. It subscribes to the store's events
//! *before* reading that first state, so no change can fall between the read
//! and the subscription. Events are wake-ups, not data: on each one the
//! subscription re-reads the database and sends only what differs from what
//! it sent last. A lagging receiver (the broadcast buffer overflowed) and a
//! reconnected PostgreSQL listener (`WorkAvailable`) both mean "something may
//! have been missed", and also trigger a re-read.
//!
//! Across processes the events come from PostgreSQL LISTEN/NOTIFY (see
//! `tasker_store::events`); what another process's commits announce there
//! is what a subscriber connected here sees.

use super::access::require;
use super::errors::GqlResult;
use super::loaders::TaskSteps;
use super::query::TaskFilter;
use super::types::{Step, Task, state};
use crate::state::AppState;
use async_graphql::futures_util::stream::{self, Stream, StreamExt};
use async_graphql::{Context, Result, Subscription};
use std::collections::HashMap;
use tasker_store::{StepRow, StoreEvent, TaskQuery, TaskRow};
use tokio::sync::broadcast::{Receiver, error::RecvError};
use uuid::Uuid;

/// Most tasks a `tasks` subscription remembers (to send only changes).
const SEEN_LIMIT: usize = 10_000;

/// The root of live updates.
pub struct SubscriptionRoot;

/// What woke a subscription.
enum Wake {
    /// This task may have changed.
    Task(Uuid),
    /// Anything may have changed (lag, listener reconnect).
    All,
    /// The store is gone: end the stream.
    Closed,
}

async fn next_wake(events: &mut Receiver<StoreEvent>) -> Wake {
    match events.recv().await {
        Ok(StoreEvent::TaskChanged(id) | StoreEvent::TaskFinished(id)) => Wake::Task(id),
        Ok(StoreEvent::WorkAvailable) | Err(RecvError::Lagged(_)) => Wake::All,
        Err(RecvError::Closed) => Wake::Closed,
    }
}

fn matches(filter: &TaskQuery, t: &TaskRow) -> bool {
    filter.status.is_none_or(|s| s == t.status)
        && filter.namespace.as_ref().is_none_or(|n| *n == t.namespace)
        && filter.name.as_ref().is_none_or(|n| *n == t.name)
        && filter.version.as_ref().is_none_or(|v| *v == t.version)
        && filter.created_since.is_none_or(|s| t.created_at >= s)
        && filter.created_until.is_none_or(|u| t.created_at < u)
        && filter.tags.iter().all(|tag| t.tags.contains(tag))
        && filter
            .correlation_id
            .as_ref()
            .is_none_or(|c| *c == t.correlation_id)
}

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// The task now, then after each change of it or its steps (until it
    /// is deleted or the connection closes).
    async fn task_updated(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
    ) -> Result<impl Stream<Item = Task> + use<>> {
        let st: AppState = state(ctx).clone();
        let events = st.tasker().store().subscribe();
        let first = st.tasker().store().task_get(id).await.gql()?;
        require(ctx, "Subscription.taskUpdated", Some(&first.namespace)).gql()?;
        let initial = stream::iter([Task(first.clone())]);
        let updates = stream::unfold(
            (st, events, first),
            move |(st, mut events, mut last)| async move {
                loop {
                    match next_wake(&mut events).await {
                        Wake::Closed => return None,
                        Wake::Task(t) if t != id => continue,
                        Wake::Task(_) | Wake::All => {}
                    }
                    // A failed read (database away) skips this wake-up; the
                    // next event re-reads.
                    let Ok(now) = st.tasker().store().task_get(id).await else {
                        continue;
                    };
                    if now != last {
                        last = now.clone();
                        return Some((Task(now), (st, events, last)));
                    }
                }
            },
        );
        Ok(initial.chain(updates))
    }

    /// Every step of the task now, then each step again when it changes.
    async fn step_updated(
        &self,
        ctx: &Context<'_>,
        task_id: Uuid,
    ) -> Result<impl Stream<Item = Step> + use<>> {
        let st: AppState = state(ctx).clone();
        let events = st.tasker().store().subscribe();
        let task = st.tasker().store().task_get(task_id).await.gql()?;
        require(ctx, "Subscription.stepUpdated", Some(&task.namespace)).gql()?;
        let rows = st.tasker().task_steps(task_id).await.gql()?;
        let seen: HashMap<Uuid, StepRow> = rows.iter().map(|r| (r.id, r.clone())).collect();
        let initial = stream::iter(Step::all(&TaskSteps::new(rows)));
        let updates = stream::unfold(
            (st, events, seen),
            move |(st, mut events, mut seen)| async move {
                loop {
                    match next_wake(&mut events).await {
                        Wake::Closed => return None,
                        Wake::Task(t) if t != task_id => continue,
                        Wake::Task(_) | Wake::All => {}
                    }
                    let Ok(rows) = st.tasker().task_steps(task_id).await else {
                        continue;
                    };
                    let changed: Vec<usize> = rows
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| seen.get(&r.id) != Some(*r))
                        .map(|(i, _)| i)
                        .collect();
                    if changed.is_empty() {
                        continue;
                    }
                    for &i in &changed {
                        seen.insert(rows[i].id, rows[i].clone());
                    }
                    let steps = TaskSteps::new(rows);
                    let batch: Vec<Step> = changed
                        .into_iter()
                        .map(|i| Step::new(steps.clone(), i))
                        .collect();
                    return Some((stream::iter(batch), (st, events, seen)));
                }
            },
        )
        .flatten();
        Ok(initial.chain(updates))
    }

    /// Tasks matching the filter: the first page now (newest first), then
    /// each matching task when it changes.
    async fn tasks(
        &self,
        ctx: &Context<'_>,
        filter: Option<TaskFilter>,
    ) -> Result<impl Stream<Item = Task> + use<>> {
        let st: AppState = state(ctx).clone();
        let filter = filter.unwrap_or_default();
        require(ctx, "Subscription.tasks", filter.namespace.as_deref()).gql()?;
        let request = tasker_engine::requests::TaskListRequest {
            status: filter.status.map(Into::into),
            namespace: filter.namespace,
            name: filter.name,
            version: filter.version,
            created_since: filter.created_since,
            created_until: filter.created_until,
            tags: filter.tags.unwrap_or_default(),
            correlation_id: filter.correlation_id,
            ..Default::default()
        };
        let cfg = st.config();
        let query = request
            .to_query(tasker_engine::requests::PageLimits {
                default: cfg.default_page_size,
                max: cfg.max_page_size,
            })
            .gql()?;
        let events = st.tasker().store().subscribe();
        let page = st.tasker().list_tasks(&query).await.gql()?;
        let seen: HashMap<Uuid, TaskRow> = page.items.iter().map(|t| (t.id, t.clone())).collect();
        let initial = stream::iter(page.items.into_iter().map(Task).collect::<Vec<_>>());
        let updates = stream::unfold(
            (st, events, seen, query),
            |(st, mut events, mut seen, query)| async move {
                loop {
                    let ids: Vec<Uuid> = match next_wake(&mut events).await {
                        Wake::Closed => return None,
                        Wake::Task(t) => vec![t],
                        // Something may have been missed: re-read the first page.
                        Wake::All => match st.tasker().list_tasks(&query).await {
                            Ok(p) => p.items.into_iter().map(|t| t.id).collect(),
                            Err(_) => continue,
                        },
                    };
                    let mut out = Vec::new();
                    for id in ids {
                        let Ok(now) = st.tasker().store().task_get(id).await else {
                            continue;
                        };
                        if matches(&query, &now) && seen.get(&id) != Some(&now) {
                            // Bounded memory on a long-lived subscription:
                            // forgetting only risks sending a task once more.
                            if seen.len() >= SEEN_LIMIT {
                                seen.clear();
                            }
                            seen.insert(id, now.clone());
                            out.push(Task(now));
                        }
                    }
                    if !out.is_empty() {
                        return Some((stream::iter(out), (st, events, seen, query)));
                    }
                }
            },
        )
        .flatten();
        Ok(initial.chain(updates))
    }
}
