//! `Query`: tasks (Relay connection), steps, templates, health.

use super::access::require;
use super::errors::GqlResult;
use super::loaders::{prefetch_steps, wants_steps};
use super::types::{Health, State, Step, Task, state, steps_of, to_json};
use crate::error::ApiError;
use crate::routes::handlers::{HandlerDetail, find_handler};
use async_graphql::connection::{Connection, CursorType, Edge, EmptyFields};
use async_graphql::{Context, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tasker_engine::requests::{PageLimits, TaskListRequest};
use uuid::Uuid;

/// The root of reads.
#[derive(Default)]
pub struct CoreQuery;

/// Filters of `tasks` (the same as REST's list parameters).
#[derive(InputObject, Default, Debug)]
pub struct TaskFilter {
    /// Only tasks in this state.
    pub status: Option<State>,
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only this template name.
    pub name: Option<String>,
    /// Only this template version (semver).
    pub version: Option<String>,
    /// Created at or after.
    pub created_since: Option<DateTime<Utc>>,
    /// Created before.
    pub created_until: Option<DateTime<Utc>>,
    /// Only tasks carrying every one of these tags.
    pub tags: Option<Vec<String>>,
    /// Only tasks with exactly this correlation id.
    pub correlation_id: Option<String>,
}

/// `tasks(annotation:)`: tasks with an annotation of `type` whose content
/// holds every top-level key of `contains` with an equal string, number or
/// boolean value.
#[derive(InputObject, Default)]
pub struct AnnotationFilterInput {
    /// The annotation type.
    #[graphql(name = "type")]
    pub annotation_type: String,
    /// A JSON object of top-level keys and scalar values (at most 16 keys).
    pub contains: Option<Json<Value>>,
}

/// A Relay cursor: the position of a task in the filtered, newest-first
/// list, opaque to clients (`o:<offset>` in base 16).
pub struct OffsetCursor(pub u32);

impl CursorType for OffsetCursor {
    type Error = String;

    fn decode_cursor(s: &str) -> std::result::Result<Self, Self::Error> {
        let bad = || "not a cursor of this list".to_string();
        let hex = s.strip_prefix("o:").ok_or_else(bad)?;
        u32::from_str_radix(hex, 16)
            .map(OffsetCursor)
            .map_err(|_| bad())
    }

    fn encode_cursor(&self) -> String {
        format!("o:{:x}", self.0)
    }
}

/// Totals of a task connection.
#[derive(SimpleObject)]
pub struct TaskConnectionFields {
    /// Tasks matching the filter, over all pages (counted only when selected).
    pub total_count: i64,
}

/// One template name with its versions.
#[derive(SimpleObject)]
pub struct HandlerSummary {
    /// Namespace.
    pub namespace: String,
    /// Template name.
    pub name: String,
    /// Versions, oldest first by semver.
    pub versions: Vec<String>,
    /// The newest version.
    pub latest_version: String,
}

/// One template version: metadata, step templates, dependency graph.
pub struct Handler(pub HandlerDetail);

#[Object]
impl Handler {
    /// Namespace.
    async fn namespace(&self) -> &str {
        &self.0.namespace
    }
    /// Template name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// This version.
    async fn version(&self) -> &str {
        &self.0.version
    }
    /// `namespace.name@version`.
    async fn full_name(&self) -> &str {
        &self.0.full_name
    }
    /// Free text.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// Every registered version, oldest first by semver.
    async fn versions(&self) -> &[String] {
        &self.0.versions
    }
    /// The newest version.
    async fn latest_version(&self) -> &str {
        &self.0.latest_version
    }
    /// JSON Schema a task's context must satisfy.
    async fn context_schema(&self) -> Option<Json<&Value>> {
        self.0.context_schema.as_ref().map(Json)
    }
    /// True when this process can run every step's handler kind.
    async fn available(&self) -> bool {
        self.0.available
    }
    /// Step templates, in template order (REST's `step_templates`).
    async fn step_templates(&self) -> Result<Vec<Json<Value>>> {
        self.0.step_templates.iter().map(to_json).collect()
    }
    /// The dependency graph (REST's `dependency_graph`).
    async fn dependency_graph(&self) -> Result<Json<Value>> {
        to_json(&self.0.dependency_graph)
    }
}

#[Object]
impl CoreQuery {
    /// One task (null when it does not exist).
    async fn task(&self, ctx: &Context<'_>, id: Uuid) -> Result<Option<Task>> {
        let st = state(ctx);
        match st.tasker().store().task_get(id).await {
            Ok(t) => {
                require(ctx, "Query.task", Some(&t.namespace)).gql()?;
                let look = ctx.look_ahead();
                if wants_steps(&look) {
                    prefetch_steps(ctx, &[t.id]).await.gql()?;
                }
                super::events::prefetch(ctx, &look, &[t.id]).await?;
                Ok(Some(Task(t)))
            }
            // As over REST: an unknown id is "not found" whatever the grants.
            Err(tasker_store::StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).gql(),
        }
    }

    /// Tasks, newest first, as a Relay connection (`first` at most the
    /// server's `max_page_size`; `after` a cursor from this list).
    /// Complexity: the page size times the selection.
    #[graphql(
        complexity = "first.map_or(25, |n| n.clamp(1, 1000) as usize) * child_complexity + 1"
    )]
    async fn tasks(
        &self,
        ctx: &Context<'_>,
        filter: Option<TaskFilter>,
        annotation: Option<AnnotationFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<OffsetCursor, Task, TaskConnectionFields, EmptyFields>> {
        let st = state(ctx);
        let filter = filter.unwrap_or_default();
        // Like REST: an unscoped list needs an unscoped grant; a
        // namespace-scoped grant opens the list filtered to its namespace.
        require(ctx, "Query.tasks", filter.namespace.as_deref()).gql()?;
        let offset = match after.as_deref() {
            None => 0,
            Some(c) => OffsetCursor::decode_cursor(c)
                .map_err(|m| {
                    ApiError::bad_request("invalid_parameter", format!("after: {m}")).field("after")
                })
                .gql()?
                .0
                .saturating_add(1),
        };
        // A negative `first` becomes 0, which the page rules refuse.
        let limit = first.map(|n| u32::try_from(n).unwrap_or(0));
        let cfg = st.config();
        let request = TaskListRequest {
            limit,
            offset: Some(offset),
            status: filter.status.map(Into::into),
            namespace: filter.namespace,
            name: filter.name,
            version: filter.version,
            created_since: filter.created_since,
            created_until: filter.created_until,
            sort: None,
            ascending: false,
            after: None,
            // Counting costs what the matching rows cost: only when asked.
            count: if ctx.look_ahead().field("totalCount").exists() {
                tasker_store::CountMode::Exact
            } else {
                tasker_store::CountMode::Omitted
            },
            tags: filter.tags.unwrap_or_default(),
            correlation_id: filter.correlation_id,
            annotation_type: annotation.as_ref().map(|a| a.annotation_type.clone()),
            annotation_contains: match annotation.and_then(|a| a.contains) {
                None => None,
                Some(Json(Value::Object(map))) => Some(map),
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "invalid_parameter",
                        "annotation_contains: must be a JSON object",
                    )
                    .field("annotation_contains"))
                    .gql();
                }
            },
        };
        let limits = PageLimits {
            default: cfg.default_page_size,
            max: cfg.max_page_size,
        };
        let mut query = request
            .to_query(limits)
            .map_err(|e| rename_limit(e.into()))
            .gql()?;
        // One row more than the page tells whether another page follows.
        let limit = query.limit;
        query.limit = limit.saturating_add(1);
        let mut page = st.tasker().list_tasks(&query).await.gql()?;
        let has_next = page.items.len() > limit as usize;
        page.items.truncate(limit as usize);
        let look = ctx.look_ahead();
        let node = look.field("edges").field("node");
        let ids: Vec<Uuid> = page.items.iter().map(|t| t.id).collect();
        if wants_steps(&node) {
            prefetch_steps(ctx, &ids).await.gql()?;
        }
        super::events::prefetch(ctx, &node, &ids).await?;
        let mut conn = Connection::with_additional_fields(
            offset > 0,
            has_next,
            TaskConnectionFields {
                total_count: page.total.unwrap_or_default(),
            },
        );
        conn.edges.extend(
            page.items
                .into_iter()
                .enumerate()
                .map(|(i, t)| Edge::new(OffsetCursor(offset + i as u32), Task(t))),
        );
        Ok(conn)
    }

    /// One step (null when it does not exist).
    async fn step(&self, ctx: &Context<'_>, id: Uuid) -> Result<Option<Step>> {
        let st = state(ctx);
        let row = match st.tasker().step(id).await {
            Ok(r) => r,
            Err(tasker_engine::EngineError::Store(tasker_store::StoreError::NotFound {
                ..
            })) => return Ok(None),
            Err(e) => return Err(e).gql(),
        };
        let task = st.tasker().store().task_get(row.task_id).await.gql()?;
        require(ctx, "Query.step", Some(&task.namespace)).gql()?;
        let steps = steps_of(ctx, row.task_id).await?;
        Ok(Step::find(steps, id))
    }

    /// Registered templates: of one namespace, or of all.
    async fn handlers(
        &self,
        ctx: &Context<'_>,
        namespace: Option<String>,
    ) -> Result<Vec<HandlerSummary>> {
        require(ctx, "Query.handlers", namespace.as_deref()).gql()?;
        let st = state(ctx);
        let spaces: Vec<String> = match &namespace {
            Some(ns) => vec![ns.clone()],
            None => st.tasker().with_registry(|r| {
                r.namespaces()
                    .into_iter()
                    .map(|n| n.namespace.to_string())
                    .collect()
            }),
        };
        let mut out = Vec::new();
        for ns in spaces {
            let names = st
                .tasker()
                .with_registry(|r| r.names(&ns))
                .ok_or_else(|| crate::routes::handlers::namespace_not_found(&ns))
                .gql()?;
            out.extend(names.into_iter().map(|(name, vs)| {
                let versions: Vec<String> = vs.iter().map(ToString::to_string).collect();
                HandlerSummary {
                    namespace: ns.clone(),
                    name,
                    latest_version: versions.last().cloned().unwrap_or_default(),
                    versions,
                }
            }));
        }
        Ok(out)
    }

    /// One template version (`version` omitted or `latest`: the newest).
    async fn handler(
        &self,
        ctx: &Context<'_>,
        namespace: String,
        name: String,
        version: Option<String>,
    ) -> Result<Handler> {
        require(ctx, "Query.handler", Some(&namespace)).gql()?;
        let detail = find_handler(state(ctx), &namespace, &name, version.as_deref()).gql()?;
        Ok(Handler(detail))
    }

    /// This server and its database.
    async fn health(&self, ctx: &Context<'_>) -> Result<Health> {
        require(ctx, "Query.health", None).gql()?;
        let store = state(ctx).tasker().store();
        let database = store.ping().await.is_ok();
        Ok(Health {
            status: if database { "ok" } else { "degraded" }.into(),
            database,
            backend: format!("{:?}", store.backend()).to_lowercase(),
        })
    }
}

/// REST calls the page size `limit`; GraphQL calls it `first`.
fn rename_limit(e: ApiError) -> ApiError {
    if e.field_name().as_deref() == Some("limit") {
        let max = e.message().rsplit(' ').next().unwrap_or("").to_string();
        return ApiError::bad_request(
            "invalid_parameter",
            format!("first: must be between 1 and {max}"),
        )
        .field("first");
    }
    e
}
