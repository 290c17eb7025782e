//! `Mutation`: the operator actions, through the same service calls as REST.
//! Each answers a payload with the changed object, or `errors`
//! ([`UserError`]s with the same codes as REST) when the caller can fix
//! something; only internal failures become top-level errors.

use super::access::{actor, require};
use super::errors::to_user;
use super::loaders::TaskSteps;
use super::types::{Step, StepPayload, Task, TaskPayload, state};
use crate::error::ApiError;
use async_graphql::{Context, InputObject, Json, Object, Result};
use serde_json::{Value, json};
use tasker_engine::TaskRequest;
use tasker_store::{StepRow, StepUpdate, TaskRow, TaskUpdate};
use uuid::Uuid;

/// The root of writes.
#[derive(Default)]
pub struct CoreMutation;

/// `createTask`'s input (REST's `POST /tasker/tasks` body).
#[derive(InputObject, Debug)]
pub struct CreateTaskInput {
    /// Template name.
    pub name: String,
    /// Template namespace (default `default`).
    pub namespace: Option<String>,
    /// Exact template version; the latest by semver when omitted.
    pub version: Option<String>,
    /// The task's input (default `{}`).
    pub context: Option<Json<Value>>,
    /// Who asks (default: the caller when authentication is on, else `unknown`).
    pub initiator: Option<String>,
    /// From which system (default `unknown`).
    pub source_system: Option<String>,
    /// Why (default `unknown`).
    pub reason: Option<String>,
    /// Free tags (at most 64, each 1 to 128 characters).
    pub tags: Option<Vec<String>>,
    /// Correlation id; generated when absent.
    pub correlation_id: Option<String>,
}

/// `updateTask`'s input.
#[derive(InputObject, Debug)]
pub struct UpdateTaskInput {
    /// New reason.
    pub reason: Option<String>,
    /// New tags (replace the old ones).
    pub tags: Option<Vec<String>>,
}

/// `annotateTask`'s input (REST's `POST /tasker/tasks/{id}/annotations` body).
#[derive(InputObject, Debug)]
pub struct AnnotateTaskInput {
    /// The annotation type (a name: letters, digits, `_`, `-`, `.`).
    #[graphql(name = "type")]
    pub annotation_type: String,
    /// The note: a JSON object of at most 16 KiB.
    pub content: Json<Value>,
}

/// `updateStep`'s input.
#[derive(InputObject, Debug)]
pub struct UpdateStepInput {
    /// New retry limit, 1 to 1000.
    pub retry_limit: Option<i32>,
    /// New static inputs (a JSON object).
    pub inputs: Option<Json<Value>>,
}

/// The task, after checking the caller may use `field` on its namespace.
async fn guarded_task(ctx: &Context<'_>, id: Uuid, field: &str) -> Result<TaskRow, ApiError> {
    let task = state(ctx).tasker().store().task_get(id).await?;
    require(ctx, field, Some(&task.namespace))?;
    Ok(task)
}

/// The step, after checking the caller may use `field` on its task's namespace.
async fn guarded_step(ctx: &Context<'_>, id: Uuid, field: &str) -> Result<StepRow, ApiError> {
    let st = state(ctx);
    let step = st.tasker().step(id).await?;
    let task = st.tasker().store().task_get(step.task_id).await?;
    require(ctx, field, Some(&task.namespace))?;
    Ok(step)
}

fn task_payload(r: Result<TaskRow, ApiError>) -> Result<TaskPayload> {
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

/// The step as it is now (re-read: the request's loader may hold the old one).
async fn fresh_step(ctx: &Context<'_>, step: &StepRow) -> Result<Step, ApiError> {
    let rows = state(ctx).tasker().task_steps(step.task_id).await?;
    Step::find(TaskSteps::new(rows), step.id).ok_or_else(|| {
        ApiError::not_found("not_found", format!("step {} not found", step.id))
            .detail("entity", json!("step"))
            .detail("id", json!(step.id))
    })
}

async fn step_payload(ctx: &Context<'_>, r: Result<StepRow, ApiError>) -> Result<StepPayload> {
    let r = match r {
        Ok(step) => fresh_step(ctx, &step).await,
        Err(e) => Err(e),
    };
    Ok(match r {
        Ok(s) => StepPayload {
            step: Some(s),
            errors: Vec::new(),
        },
        Err(e) => StepPayload {
            step: None,
            errors: vec![to_user(e)?],
        },
    })
}

#[Object]
impl CoreMutation {
    /// Creates a task from a template (REST `POST /tasker/tasks`).
    async fn create_task(&self, ctx: &Context<'_>, input: CreateTaskInput) -> Result<TaskPayload> {
        let st = state(ctx);
        let namespace = input
            .namespace
            .unwrap_or_else(|| tasker_core::template::DEFAULT_NAMESPACE.to_string());
        let r = async {
            require(ctx, "Mutation.createTask", Some(&namespace))?;
            let mut request = TaskRequest::new(namespace.clone(), input.name);
            request.version = input.version;
            request.context = input.context.map(|j| j.0).unwrap_or_else(|| json!({}));
            request.initiator = input.initiator.or_else(|| actor(ctx));
            request.source_system = input.source_system;
            request.reason = input.reason;
            request.tags = input.tags.unwrap_or_default();
            request.correlation_id = input.correlation_id;
            Ok(st.tasker().submit_task(request).await?)
        }
        .await;
        task_payload(r)
    }

    /// Changes a task's reason and/or tags (REST `PATCH /tasker/tasks/{id}`).
    async fn update_task(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        input: UpdateTaskInput,
    ) -> Result<TaskPayload> {
        let update = TaskUpdate {
            reason: input.reason,
            tags: input.tags,
        };
        let r = async {
            // The edit's own rules answer first, as over REST.
            tasker_engine::requests::check_task_update(&update)?;
            guarded_task(ctx, id, "Mutation.updateTask").await?;
            Ok(state(ctx).tasker().update_task(id, update).await?)
        }
        .await;
        task_payload(r)
    }

    /// Attaches a typed JSON note to a task (REST `POST
    /// /tasker/tasks/{id}/annotations`); answers the task, whose
    /// `annotations` include the new one.
    async fn annotate_task(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        input: AnnotateTaskInput,
    ) -> Result<TaskPayload> {
        let r = async {
            // The note's own rules answer first, as over REST.
            tasker_engine::requests::check_annotation(&input.annotation_type, &input.content.0)?;
            let task = guarded_task(ctx, id, "Mutation.annotateTask").await?;
            let by = actor(ctx);
            state(ctx)
                .tasker()
                .annotate_task(id, &input.annotation_type, input.content.0, by.as_deref())
                .await?;
            Ok(task)
        }
        .await;
        task_payload(r)
    }

    /// Cancels a task (REST `DELETE /tasker/tasks/{id}`).
    async fn cancel_task(&self, ctx: &Context<'_>, id: Uuid) -> Result<TaskPayload> {
        let r = async {
            guarded_task(ctx, id, "Mutation.cancelTask").await?;
            let by = actor(ctx);
            Ok(state(ctx).tasker().cancel_task(id, by.as_deref()).await?)
        }
        .await;
        task_payload(r)
    }

    /// Retries a task in `error` (REST `POST /tasker/tasks/{id}/retry`).
    async fn retry_task(&self, ctx: &Context<'_>, id: Uuid) -> Result<TaskPayload> {
        let r = async {
            guarded_task(ctx, id, "Mutation.retryTask").await?;
            let by = actor(ctx);
            Ok(state(ctx).tasker().retry_task(id, by.as_deref()).await?)
        }
        .await;
        task_payload(r)
    }

    /// Pauses a task: no new step of it starts (REST `POST /tasker/tasks/{id}/pause`).
    async fn pause_task(&self, ctx: &Context<'_>, id: Uuid) -> Result<TaskPayload> {
        let r = async {
            guarded_task(ctx, id, "Mutation.pauseTask").await?;
            let by = actor(ctx);
            Ok(state(ctx).tasker().pause_task(id, by.as_deref()).await?)
        }
        .await;
        task_payload(r)
    }

    /// Resumes a paused task (REST `POST /tasker/tasks/{id}/resume`).
    async fn resume_task(&self, ctx: &Context<'_>, id: Uuid) -> Result<TaskPayload> {
        let r = async {
            guarded_task(ctx, id, "Mutation.resumeTask").await?;
            let by = actor(ctx);
            Ok(state(ctx).tasker().resume_task(id, by.as_deref()).await?)
        }
        .await;
        task_payload(r)
    }

    /// Re-runs a finished or failed task from its step `step`: it and
    /// everything downstream run again (REST `POST /tasker/tasks/{id}/restart`).
    async fn restart_task(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        step: String,
        reason: Option<String>,
    ) -> Result<TaskPayload> {
        let r = async {
            guarded_task(ctx, id, "Mutation.restartTask").await?;
            let by = actor(ctx);
            Ok(state(ctx)
                .tasker()
                .restart_task(id, &step, by.as_deref(), reason.as_deref())
                .await?)
        }
        .await;
        task_payload(r)
    }

    /// Changes a pending or failed step's retry limit and/or inputs.
    async fn update_step(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        input: UpdateStepInput,
    ) -> Result<StepPayload> {
        let update = StepUpdate {
            retry_limit: input.retry_limit,
            inputs: input.inputs.map(|j| j.0),
        };
        let r = async {
            tasker_engine::requests::check_step_update(&update)?;
            guarded_step(ctx, id, "Mutation.updateStep").await?;
            Ok(state(ctx).tasker().update_step(id, update).await?)
        }
        .await;
        step_payload(ctx, r).await
    }

    /// Cancels a pending or running step.
    async fn cancel_step(&self, ctx: &Context<'_>, id: Uuid) -> Result<StepPayload> {
        let r = async {
            guarded_step(ctx, id, "Mutation.cancelStep").await?;
            let by = actor(ctx);
            Ok(state(ctx).tasker().cancel_step(id, by.as_deref()).await?)
        }
        .await;
        step_payload(ctx, r).await
    }

    /// Gives a failed step a fresh attempt budget.
    async fn retry_step(&self, ctx: &Context<'_>, id: Uuid) -> Result<StepPayload> {
        let r = async {
            guarded_step(ctx, id, "Mutation.retryStep").await?;
            let by = actor(ctx);
            Ok(state(ctx).tasker().retry_step(id, by.as_deref()).await?)
        }
        .await;
        step_payload(ctx, r).await
    }

    /// Marks a pending or failed step `resolved_manually` with `results`
    /// (default `{}`).
    async fn resolve_step(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        results: Option<Json<Value>>,
    ) -> Result<StepPayload> {
        let r = async {
            guarded_step(ctx, id, "Mutation.resolveStep").await?;
            let by = actor(ctx);
            let results = results.map(|j| j.0).unwrap_or_else(|| json!({}));
            Ok(state(ctx)
                .tasker()
                .resolve_step(id, results, by.as_deref())
                .await?)
        }
        .await;
        step_payload(ctx, r).await
    }
}
