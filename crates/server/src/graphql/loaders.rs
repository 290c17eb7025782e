//! DataLoaders: one per request, so a query over many tasks reads their
//! steps in one store call (`Store::step_list_many`) instead of one per task.
//! Parents, children and siblings come from the same batch (they are
//! relations within one task's steps), and the dependency analysis from the
//! analysis cache over those steps: neither adds a store call.

use crate::state::AppState;
use crate::views::Relations;
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use std::collections::HashMap;
use std::sync::Arc;
use tasker_store::StepRow;
use uuid::Uuid;

/// One task's steps (template order) with their relations.
pub(crate) struct TaskSteps {
    /// The steps.
    pub(crate) rows: Vec<StepRow>,
    /// Parents, children and siblings by index.
    pub(crate) relations: Relations,
}

impl TaskSteps {
    pub(crate) fn new(rows: Vec<StepRow>) -> Arc<Self> {
        let relations = Relations::build(&rows);
        Arc::new(TaskSteps { rows, relations })
    }
}

/// Steps by task id, batched.
pub(crate) struct StepsByTask {
    pub(crate) state: AppState,
}

impl Loader<Uuid> for StepsByTask {
    type Value = Arc<TaskSteps>;
    type Error = Arc<crate::error::ApiError>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let mut found = self
            .state
            .tasker()
            .store()
            .step_list_many(keys)
            .await
            .map_err(|e| Arc::new(e.into()))?;
        // A task with no steps (or one deleted meanwhile) has an empty list.
        Ok(keys
            .iter()
            .map(|k| (*k, TaskSteps::new(found.remove(k).unwrap_or_default())))
            .collect())
    }
}

/// The per-request loader of steps by task (cached for the request).
pub(crate) type StepsLoader = DataLoader<StepsByTask, HashMapCache>;

/// A fresh loader for one request (its cache lives as long as the request).
/// It gathers keys for 1 ms before it reads (a shorter wait splits batches
/// on a multi-threaded runtime; `tests/graphql_n1.rs` catches that), so
/// `task` and `tasks` prefetch with [`prefetch_steps`] when their selection
/// asks for steps, and the loader then answers from its cache at once.
pub(crate) fn steps_loader(state: &AppState) -> StepsLoader {
    DataLoader::with_cache(
        StepsByTask {
            state: state.clone(),
        },
        tokio::spawn,
        HashMapCache::default(),
    )
}

/// Reads the steps of `task_ids` in one store call and puts them in the
/// request's loader cache (a no-op on a connection's uncached loader).
pub(crate) async fn prefetch_steps(
    ctx: &async_graphql::Context<'_>,
    task_ids: &[Uuid],
) -> Result<(), crate::error::ApiError> {
    let Ok(loader) = ctx.data::<StepsLoader>() else {
        return Ok(());
    };
    let state = &loader.loader().state;
    let mut found = state.tasker().store().step_list_many(task_ids).await?;
    loader
        .feed_many(
            task_ids
                .iter()
                .map(|k| (*k, TaskSteps::new(found.remove(k).unwrap_or_default()))),
        )
        .await;
    Ok(())
}

/// Whether a task selection asks for what the steps loader reads.
pub(crate) fn wants_steps(task: &async_graphql::Lookahead<'_>) -> bool {
    task.field("steps").exists() || task.field("dependencyAnalysis").exists()
}
