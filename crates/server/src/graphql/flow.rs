//! Schedules and namespace / template pauses in GraphQL
//! (docs/FLOW_CONTROL.md): the same service calls (`tasker_engine::schedules`,
//! `tasker_engine::flow_pause`), permissions and error codes as
//! `/tasker/schedules` and `/tasker/flow/pauses`.
//!
//! Permissions follow REST's scoping: schedules and the pause list span
//! namespaces (a namespace-scoped grant does not open them), resuming names
//! its namespace (a grant on that namespace opens it).

use super::access::{actor, require};
use super::errors::{GqlResult, UserError, to_user};
use super::types::{Task, TaskPayload, state};
use crate::error::ApiError;
use crate::views::PauseView;
use async_graphql::{Context, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tasker_core::schedule::{CatchUp, ScheduleSpec};
use tasker_engine::EngineError;
use tasker_engine::schedules::ScheduleInfo;
use tasker_store::FlowScope;
use uuid::Uuid;

/// A schedule (REST's `ScheduleView`).
pub struct Schedule(ScheduleInfo);

/// A value's serde name (`latest`, `template`...), as REST writes it.
fn serde_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

#[Object]
impl Schedule {
    /// Id.
    async fn id(&self) -> Uuid {
        self.0.row.id
    }
    /// Unique name.
    async fn name(&self) -> &str {
        &self.0.row.spec.name
    }
    /// Template namespace.
    async fn namespace(&self) -> &str {
        &self.0.row.spec.namespace
    }
    /// Template name.
    async fn template(&self) -> &str {
        &self.0.row.spec.template
    }
    /// Exact version, or null for the latest.
    async fn version(&self) -> Option<&str> {
        self.0.row.spec.version.as_deref()
    }
    /// Cron expression (null for an interval).
    async fn cron(&self) -> Option<&str> {
        self.0.row.spec.cron.as_deref()
    }
    /// Time zone of the cron expression (null: UTC).
    async fn timezone(&self) -> Option<&str> {
        self.0.row.spec.timezone.as_deref()
    }
    /// Interval in seconds (null for a cron expression).
    async fn every_seconds(&self) -> Option<u64> {
        self.0.row.spec.every_seconds
    }
    /// `none`, `latest` or `all`.
    async fn catch_up(&self) -> String {
        serde_name(&self.0.row.spec.catch_up)
    }
    /// The schedule's own catch-up window, or null for the engine's.
    async fn catch_up_window_seconds(&self) -> Option<u64> {
        self.0.row.spec.catch_up_window_seconds
    }
    /// The context template.
    async fn context(&self) -> Json<&Value> {
        Json(&self.0.row.spec.context)
    }
    /// `api` or `template` (a template file's `schedules:`).
    async fn source(&self) -> String {
        serde_name(&self.0.row.source)
    }
    /// Since when it is paused; null when it runs.
    async fn paused_at(&self) -> Option<DateTime<Utc>> {
        self.0.row.paused_at
    }
    /// The newest tick fired (or settled by a resume).
    async fn last_tick_at(&self) -> Option<DateTime<Utc>> {
        self.0.row.last_tick_at
    }
    /// The next fire times (empty while paused).
    async fn next_fire_times(&self) -> Vec<DateTime<Utc>> {
        self.0.next_fire_times.clone()
    }
    /// Creation time.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.row.created_at
    }
    /// Last change.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.row.updated_at
    }
}

/// A paused namespace or template (REST's `PauseView`).
#[derive(SimpleObject)]
pub struct FlowPause {
    /// `namespace` or `template`.
    pub scope: String,
    /// The paused namespace.
    pub namespace: Option<String>,
    /// The paused template's name (template pauses).
    pub name: Option<String>,
    /// Since when.
    pub since: DateTime<Utc>,
    /// Who paused it.
    pub by: Option<String>,
    /// Why.
    pub reason: Option<String>,
}

impl FlowPause {
    fn of(row: &tasker_store::FlowPauseRow) -> Self {
        let v = PauseView::of_flow(row);
        FlowPause {
            scope: v.scope,
            namespace: v.namespace,
            name: v.name,
            since: v.since,
            by: v.by,
            reason: v.reason,
        }
    }
}

/// What a schedule mutation answers: the schedule, or what is wrong.
#[derive(SimpleObject)]
pub struct SchedulePayload {
    /// The changed (or created) schedule; null when `errors` is not empty.
    pub schedule: Option<Schedule>,
    /// Problems the caller can fix; empty on success.
    pub errors: Vec<UserError>,
}

/// What `deleteSchedule` answers.
#[derive(SimpleObject)]
pub struct DeleteSchedulePayload {
    /// Whether the schedule was deleted (its tasks stay).
    pub deleted: bool,
    /// Problems the caller can fix; empty on success.
    pub errors: Vec<UserError>,
}

/// What a namespace or template pause mutation answers.
#[derive(SimpleObject)]
pub struct FlowPausePayload {
    /// The pause created, or lifted by a resume; null when `errors` is not empty.
    pub pause: Option<FlowPause>,
    /// Problems the caller can fix; empty on success.
    pub errors: Vec<UserError>,
}

/// `createSchedule`'s input (REST's `POST /tasker/schedules` body).
#[derive(InputObject, Debug)]
pub struct CreateScheduleInput {
    /// Unique name (letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// Namespace of the template (default `default`).
    pub namespace: Option<String>,
    /// Template to run.
    pub template: String,
    /// Exact template version; the latest registered when omitted.
    pub version: Option<String>,
    /// Cron expression: 5 fields, or 6 with seconds first. Give this or `everySeconds`.
    pub cron: Option<String>,
    /// IANA time zone the cron expression is read in (default `UTC`).
    pub timezone: Option<String>,
    /// A fixed interval in seconds instead of a cron expression.
    pub every_seconds: Option<u64>,
    /// Missed ticks: `none`, `latest` (default) or `all`.
    pub catch_up: Option<String>,
    /// How far back missed ticks are looked for (default `scheduler.catch_up_window_seconds`).
    pub catch_up_window_seconds: Option<u64>,
    /// Each task's context; strings may hold `{{schedule.name}}`,
    /// `{{schedule.scheduled_for}}`, `{{schedule.date}}`, `{{schedule.manual}}`.
    pub context: Option<Json<Value>>,
}

impl CreateScheduleInput {
    /// The schedule, as REST builds it from its body (`catch_up` read as
    /// REST's JSON reads it, so a bad value is the same `invalid_field`).
    fn spec(self) -> Result<ScheduleSpec, ApiError> {
        let catch_up = match self.catch_up {
            None => CatchUp::default(),
            Some(c) => serde_json::from_value(json!(c)).map_err(|_| {
                ApiError::from(EngineError::InvalidField {
                    field: "catch_up".into(),
                    message: format!("`{c}` is not one of none, latest, all"),
                })
            })?,
        };
        Ok(ScheduleSpec {
            name: self.name,
            namespace: self
                .namespace
                .unwrap_or_else(|| tasker_core::template::DEFAULT_NAMESPACE.to_string()),
            template: self.template,
            version: self.version,
            cron: self.cron,
            timezone: self.timezone,
            every_seconds: self.every_seconds,
            catch_up,
            catch_up_window_seconds: self.catch_up_window_seconds,
            context: self.context.map(|j| j.0).unwrap_or_else(|| json!({})),
        })
    }
}

fn schedule_payload(r: Result<ScheduleInfo, ApiError>) -> Result<SchedulePayload> {
    Ok(match r {
        Ok(i) => SchedulePayload {
            schedule: Some(Schedule(i)),
            errors: Vec::new(),
        },
        Err(e) => SchedulePayload {
            schedule: None,
            errors: vec![to_user(e)?],
        },
    })
}

fn pause_payload(r: Result<tasker_store::FlowPauseRow, ApiError>) -> Result<FlowPausePayload> {
    Ok(match r {
        Ok(p) => FlowPausePayload {
            pause: Some(FlowPause::of(&p)),
            errors: Vec::new(),
        },
        Err(e) => FlowPausePayload {
            pause: None,
            errors: vec![to_user(e)?],
        },
    })
}

/// The flow-control reads.
#[derive(Default)]
pub struct FlowQuery;

#[Object]
impl FlowQuery {
    /// Every schedule, by name, with its next fire times (REST `GET /tasker/schedules`).
    async fn schedules(&self, ctx: &Context<'_>) -> Result<Vec<Schedule>> {
        require(ctx, "Query.schedules", None).gql()?;
        let all = state(ctx).tasker().list_schedules().await.gql()?;
        Ok(all.into_iter().map(Schedule).collect())
    }

    /// One schedule by name; null when there is none (REST `GET /tasker/schedules/{name}`).
    async fn schedule(&self, ctx: &Context<'_>, name: String) -> Result<Option<Schedule>> {
        require(ctx, "Query.schedule", None).gql()?;
        match state(ctx).tasker().get_schedule(&name).await {
            Ok(i) => Ok(Some(Schedule(i))),
            Err(EngineError::UnknownSchedule(_)) => Ok(None),
            Err(e) => Err(e).gql(),
        }
    }

    /// Every paused namespace and template (REST `GET /tasker/flow/pauses`).
    async fn flow_pauses(&self, ctx: &Context<'_>) -> Result<Vec<FlowPause>> {
        require(ctx, "Query.flowPauses", None).gql()?;
        let all = state(ctx).tasker().flow_pauses().await.gql()?;
        Ok(all.iter().map(FlowPause::of).collect())
    }
}

/// The flow-control writes.
#[derive(Default)]
pub struct FlowMutation;

#[Object]
impl FlowMutation {
    /// Creates a schedule (REST `POST /tasker/schedules`).
    async fn create_schedule(
        &self,
        ctx: &Context<'_>,
        input: CreateScheduleInput,
    ) -> Result<SchedulePayload> {
        let r = async {
            require(ctx, "Mutation.createSchedule", None)?;
            let spec = input.spec()?;
            Ok(state(ctx).tasker().create_schedule(spec).await?)
        }
        .await;
        schedule_payload(r)
    }

    /// Deletes a schedule; its tasks stay (REST `DELETE /tasker/schedules/{name}`).
    async fn delete_schedule(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> Result<DeleteSchedulePayload> {
        let r: Result<(), ApiError> = async {
            require(ctx, "Mutation.deleteSchedule", None)?;
            Ok(state(ctx).tasker().delete_schedule(&name).await?)
        }
        .await;
        Ok(match r {
            Ok(()) => DeleteSchedulePayload {
                deleted: true,
                errors: Vec::new(),
            },
            Err(e) => DeleteSchedulePayload {
                deleted: false,
                errors: vec![to_user(e)?],
            },
        })
    }

    /// Pauses a schedule: no tick fires until resumed (REST `POST /tasker/schedules/{name}/pause`).
    async fn pause_schedule(&self, ctx: &Context<'_>, name: String) -> Result<SchedulePayload> {
        let r = async {
            require(ctx, "Mutation.pauseSchedule", None)?;
            Ok(state(ctx).tasker().pause_schedule(&name).await?)
        }
        .await;
        schedule_payload(r)
    }

    /// Resumes a schedule from now (REST `POST /tasker/schedules/{name}/resume`).
    async fn resume_schedule(&self, ctx: &Context<'_>, name: String) -> Result<SchedulePayload> {
        let r = async {
            require(ctx, "Mutation.resumeSchedule", None)?;
            Ok(state(ctx).tasker().resume_schedule(&name).await?)
        }
        .await;
        schedule_payload(r)
    }

    /// Fires a schedule now, also while paused: answers the task created
    /// (REST `POST /tasker/schedules/{name}/trigger`).
    async fn trigger_schedule(&self, ctx: &Context<'_>, name: String) -> Result<TaskPayload> {
        let r: Result<tasker_store::TaskRow, ApiError> = async {
            require(ctx, "Mutation.triggerSchedule", None)?;
            Ok(state(ctx).tasker().trigger_schedule(&name).await?)
        }
        .await;
        Ok(match r {
            Ok(t) => TaskPayload {
                task: Some(Task(t)),
                errors: Vec::new(),
            },
            Err(e) => TaskPayload {
                task: None,
                errors: vec![to_user(e)?],
            },
        })
    }

    /// Pauses a namespace, or one template of it (all versions): no new
    /// step of it starts (REST `POST /tasker/flow/pauses`).
    async fn pause_flow(
        &self,
        ctx: &Context<'_>,
        namespace: String,
        name: Option<String>,
        reason: Option<String>,
    ) -> Result<FlowPausePayload> {
        let r = async {
            require(ctx, "Mutation.pauseFlow", None)?;
            let by = actor(ctx);
            let scope = FlowScope { namespace, name };
            Ok(state(ctx)
                .tasker()
                .pause_scope(&scope, by.as_deref(), reason.as_deref())
                .await?)
        }
        .await;
        pause_payload(r)
    }

    /// Resumes a paused namespace, or one template of it when `name` is
    /// given (REST `DELETE /tasker/flow/pauses/{namespace}[/{name}]`).
    async fn resume_flow(
        &self,
        ctx: &Context<'_>,
        namespace: String,
        name: Option<String>,
    ) -> Result<FlowPausePayload> {
        let r = async {
            require(ctx, "Mutation.resumeFlow", Some(&namespace))?;
            let by = actor(ctx);
            let scope = FlowScope { namespace, name };
            Ok(state(ctx)
                .tasker()
                .resume_scope(&scope, by.as_deref())
                .await?)
        }
        .await;
        pause_payload(r)
    }
}
