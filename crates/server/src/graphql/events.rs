//! `Task.events`: a task's lifecycle events from the outbox (docs/EVENTS.md),
//! the page REST's `GET /tasker/tasks/{id}/events` answers, under the same
//! rules (`tasker_engine::requests::EventPageRequest`) and permission
//! (`tasker.event:index`).
//!
//! Over a list of tasks the pages are read in one store call
//! (`Store::events_list_many`, a page per task): the per-request loader is
//! keyed by task and page arguments, and `tasks` / `task` prefetch it from
//! their selection (as they do steps), so the batch does not depend on the
//! loader's timing.

use super::errors::GqlResult;
use crate::state::AppState;
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader, NoCache};
use async_graphql::{Context, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tasker_engine::requests::EventPageRequest;
use tasker_store::EventRow;
use uuid::Uuid;

/// One recorded lifecycle event (the fields of REST's event view).
pub struct Event(pub EventRow);

#[Object]
impl Event {
    /// Position in the event sequence (ascending in commit order): pass the
    /// last one as `after` for the next page.
    async fn id(&self) -> i64 {
        self.0.id
    }
    /// Type, e.g. `task.completed`, `step.failed` or a custom `custom.*` name.
    #[graphql(name = "type")]
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    /// The task.
    async fn task_id(&self) -> Uuid {
        self.0.task_id
    }
    /// The step (step and custom events).
    async fn step_id(&self) -> Option<Uuid> {
        self.0.step_id
    }
    /// The task's namespace.
    async fn namespace(&self) -> &str {
        &self.0.namespace
    }
    /// When the change happened.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Type-specific fields (docs/EVENTS.md), sensitive values masked.
    async fn payload(&self) -> Json<&Value> {
        Json(&self.0.payload)
    }
}

/// A page of a task's events (REST's `EventList`).
#[derive(SimpleObject)]
pub struct EventPage {
    /// Events, oldest first.
    pub events: Vec<Event>,
    /// Pass as `after` for the next page (the last id here, or the `after`
    /// asked for when the page is empty).
    pub next_after: i64,
}

impl EventPage {
    /// The page of `rows` read after `after`.
    pub(crate) fn new(rows: Vec<EventRow>, after: i64) -> Self {
        let next_after = rows.last().map_or(after, |e| e.id);
        EventPage {
            events: rows.into_iter().map(Event).collect(),
            next_after,
        }
    }
}

/// The arguments of `Task.events` as the request gives them.
#[derive(Deserialize, Default)]
#[serde(default)]
struct EventArgs {
    after: Option<i64>,
    limit: Option<i64>,
    #[serde(rename = "type")]
    types: Option<Vec<String>>,
}

/// The page request of `Task.events`' arguments (a negative or huge
/// `limit` becomes 0, which the rules refuse with field `limit`).
pub(crate) fn page_request(
    after: Option<i64>,
    limit: Option<i32>,
    types: Option<Vec<String>>,
) -> EventPageRequest {
    EventPageRequest {
        after,
        limit: limit.map(|n| u32::try_from(n).unwrap_or(0)),
        types: types.unwrap_or_default(),
    }
}

/// One task's page of events: the loader's key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct EventsKey {
    pub(crate) task: Uuid,
    pub(crate) page: EventPageRequest,
}

/// Pages of events by task, batched per distinct page arguments.
pub(crate) struct EventsByTask {
    pub(crate) state: AppState,
}

/// Reads the pages of `keys`: one store call per distinct page request
/// (one for a list whose tasks all ask the same page).
async fn read(
    state: &AppState,
    keys: &[EventsKey],
) -> Result<HashMap<EventsKey, Arc<Vec<EventRow>>>, crate::error::ApiError> {
    let mut by_page: HashMap<&EventPageRequest, Vec<Uuid>> = HashMap::new();
    for k in keys {
        by_page.entry(&k.page).or_default().push(k.task);
    }
    let mut out = HashMap::with_capacity(keys.len());
    for (page, tasks) in by_page {
        let query = page.to_query()?;
        let mut found = state.tasker().task_events_many(&tasks, &query).await?;
        for task in tasks {
            let rows = found.remove(&task).unwrap_or_default();
            out.insert(
                EventsKey {
                    task,
                    page: page.clone(),
                },
                Arc::new(rows),
            );
        }
    }
    Ok(out)
}

impl Loader<EventsKey> for EventsByTask {
    type Value = Arc<Vec<EventRow>>;
    type Error = Arc<crate::error::ApiError>;

    async fn load(
        &self,
        keys: &[EventsKey],
    ) -> Result<HashMap<EventsKey, Self::Value>, Self::Error> {
        read(&self.state, keys).await.map_err(Arc::new)
    }
}

/// The per-request loader (cached for the request, fed by [`prefetch`]).
pub(crate) type EventsLoader = DataLoader<EventsByTask, HashMapCache>;

/// A fresh loader for one request.
pub(crate) fn events_loader(state: &AppState) -> EventsLoader {
    DataLoader::with_cache(
        EventsByTask {
            state: state.clone(),
        },
        tokio::spawn,
        HashMapCache::default(),
    )
}

/// The uncached loader of a WebSocket connection (it lives long).
pub(crate) fn events_loader_uncached(state: &AppState) -> DataLoader<EventsByTask, NoCache> {
    DataLoader::with_cache(
        EventsByTask {
            state: state.clone(),
        },
        tokio::spawn,
        NoCache,
    )
}

/// The page of `task` through the request's loader.
pub(crate) async fn events_of(
    ctx: &Context<'_>,
    task: Uuid,
    page: EventPageRequest,
) -> Result<Arc<Vec<EventRow>>> {
    let key = EventsKey { task, page };
    let loaded = if let Ok(l) = ctx.data::<EventsLoader>() {
        l.load_one(key).await
    } else {
        ctx.data::<DataLoader<EventsByTask, NoCache>>()?
            .load_one(key)
            .await
    };
    let rows = loaded.map_err(|e| super::errors::to_graphql((*e).clone()))?;
    Ok(rows.unwrap_or_default())
}

/// Reads the event pages `task` (a `Task` selection) asks for, for every
/// one of `task_ids`, and puts them in the request's loader cache: one store
/// call per distinct `events(...)` arguments, however many tasks. Arguments
/// that break the rules are left to the field, which reports them.
pub(crate) async fn prefetch(
    ctx: &Context<'_>,
    task: &async_graphql::Lookahead<'_>,
    task_ids: &[Uuid],
) -> Result<()> {
    let fields = task.field("events").selection_fields();
    if fields.is_empty() || task_ids.is_empty() {
        return Ok(());
    }
    let Ok(loader) = ctx.data::<EventsLoader>() else {
        return Ok(());
    };
    let mut pages: Vec<EventPageRequest> = Vec::new();
    for f in fields {
        let Ok(args) = f.arguments() else { continue };
        let mut obj = serde_json::Map::new();
        for (name, value) in args {
            let Ok(v) = value.into_json() else { continue };
            obj.insert(name.to_string(), v);
        }
        let Ok(a) = serde_json::from_value::<EventArgs>(Value::Object(obj)) else {
            continue;
        };
        let limit = a.limit.map(|n| i32::try_from(n).unwrap_or(-1));
        let page = page_request(a.after, limit, a.types);
        if page.to_query().is_ok() && !pages.contains(&page) {
            pages.push(page);
        }
    }
    let keys: Vec<EventsKey> = pages
        .into_iter()
        .flat_map(|page| {
            task_ids.iter().map(move |task| EventsKey {
                task: *task,
                page: page.clone(),
            })
        })
        .collect();
    let found = read(&loader.loader().state, &keys).await.gql()?;
    loader.feed_many(found).await;
    Ok(())
}
