//! [`Tasker`]: the application service every interface (library, CLI, HTTP)
//! goes through, so none of them duplicates logic.

use crate::clock::{Clock, SystemClock};
use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::handler::{HandlerRegistry, StepHandler};
use crate::worker::{Worker, WorkerHandle};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tasker_core::identity::{IdentityInput, IdentityStrategy, identity_hash};
use tasker_core::{ExecutionContext, TaskState, TaskTemplate, TemplateRegistry};
use tasker_store::{Identity, NewStep, NewTask, StepRow, Store, TaskRow};
use uuid::Uuid;

/// A request to run a template.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    /// Template name.
    pub name: String,
    /// Namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Exact version; the latest by semver when omitted.
    #[serde(default)]
    pub version: Option<String>,
    /// The task's input.
    #[serde(default = "empty_object")]
    pub context: Value,
    /// Who asks (default `unknown`).
    #[serde(default)]
    pub initiator: Option<String>,
    /// From which system (default `unknown`).
    #[serde(default)]
    pub source_system: Option<String>,
    /// Why (default `unknown`).
    #[serde(default)]
    pub reason: Option<String>,
    /// Free tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Correlation id; generated when absent.
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// The caller's W3C `traceparent` (the task's root span links to it;
    /// ignored when malformed). Not part of request bodies.
    #[serde(skip)]
    pub traceparent: Option<String>,
}

fn default_namespace() -> String {
    tasker_core::template::DEFAULT_NAMESPACE.to_string()
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl TaskRequest {
    /// A request for the latest version of `namespace.name` with an empty context.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        TaskRequest {
            name: name.into(),
            namespace: namespace.into(),
            version: None,
            context: empty_object(),
            initiator: None,
            source_system: None,
            reason: None,
            tags: Vec::new(),
            correlation_id: None,
            traceparent: None,
        }
    }

    /// Sets the version.
    pub fn version(mut self, v: impl Into<String>) -> Self {
        self.version = Some(v.into());
        self
    }

    /// Sets the context.
    pub fn context(mut self, c: Value) -> Self {
        self.context = c;
        self
    }

    /// Sets the correlation id.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }
}

/// A task with its derived execution context.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskStatus {
    /// The task row.
    pub task: TaskRow,
    /// Derived view (execution status, completion, health).
    pub execution: ExecutionContext,
}

/// Builds a [`Tasker`].
pub struct TaskerBuilder {
    store: Arc<dyn Store>,
    config: EngineConfig,
    handlers: HandlerRegistry,
    template_paths: Vec<PathBuf>,
    templates: Vec<TaskTemplate>,
    clock: Arc<dyn Clock>,
    webhook_policy: crate::handlers::HttpPolicy,
}

impl TaskerBuilder {
    /// Engine settings.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// Adds a handler kind (replaces a built-in of the same name).
    pub fn handler(mut self, kind: impl Into<String>, handler: impl StepHandler) -> Self {
        self.handlers.insert(kind, handler);
        self
    }

    /// Loads templates from files or directories at build time.
    pub fn template_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.template_paths.push(path.into());
        self
    }

    /// Registers an already-parsed template at build time.
    pub fn template(mut self, t: TaskTemplate) -> Self {
        self.templates.push(t);
        self
    }

    /// Replaces the clock (tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The SSRF policy applied to webhook URLs, at registration and at
    /// every delivery (`tasker` passes the `http` handler's, from `[http]`).
    /// Default: [`HttpPolicy::default`](crate::handlers::HttpPolicy), which
    /// refuses internal addresses.
    pub fn webhook_policy(mut self, policy: crate::handlers::HttpPolicy) -> Self {
        self.webhook_policy = policy;
        self
    }

    /// Validates the settings, loads templates and returns the service.
    pub fn build(self) -> Result<Tasker, EngineError> {
        if let Some(problem) = self.config.problems().into_iter().next() {
            return Err(EngineError::InvalidField {
                field: "engine".into(),
                message: problem,
            });
        }
        let cfg_keys = self.config.sensitive_keys.clone();
        let tasker = Tasker {
            inner: Arc::new(Inner {
                store: self.store,
                registry: RwLock::new(TemplateRegistry::new()),
                handlers: self.handlers,
                config: self.config,
                clock: self.clock,
                masker: tasker_core::mask::Masker::new(&cfg_keys),
                webhook_policy: Arc::new(self.webhook_policy),
            }),
        };
        let mut templates = self.templates;
        if !self.template_paths.is_empty() {
            templates.extend(crate::templates::load_paths(
                &self.template_paths,
                tasker.inner.config.environment.as_deref(),
            )?);
        }
        tasker.register_templates(templates, false)?;
        Ok(tasker)
    }
}

/// The Tasker application service: templates, tasks and the engine.
///
/// Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Tasker {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) registry: RwLock<TemplateRegistry>,
    pub(crate) handlers: HandlerRegistry,
    pub(crate) config: EngineConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) masker: tasker_core::mask::Masker,
    pub(crate) webhook_policy: Arc<crate::handlers::HttpPolicy>,
}

impl Tasker {
    /// A handle on the same engine (for the background loops).
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Tasker {
        Tasker { inner }
    }

    /// Starts building a service over `store`, with the built-in handler kinds.
    pub fn builder(store: Arc<dyn Store>) -> TaskerBuilder {
        TaskerBuilder {
            store,
            config: EngineConfig::default(),
            handlers: HandlerRegistry::with_builtins(),
            template_paths: Vec::new(),
            templates: Vec::new(),
            clock: Arc::new(SystemClock),
            webhook_policy: crate::handlers::HttpPolicy::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Masks sensitive values (per `sensitive_keys`) for logs and error output.
    pub fn masker(&self) -> &tasker_core::mask::Masker {
        &self.inner.masker
    }

    /// The handler kinds.
    pub fn handlers(&self) -> &HandlerRegistry {
        &self.inner.handlers
    }

    /// The SSRF policy of webhook URLs.
    pub fn webhook_policy(&self) -> &crate::handlers::HttpPolicy {
        &self.inner.webhook_policy
    }

    pub(crate) fn inner_webhook_policy(&self) -> Arc<crate::handlers::HttpPolicy> {
        self.inner.webhook_policy.clone()
    }

    /// The service's clock.
    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    /// The current time per the service's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Registers templates atomically: all or none. Steps must use known
    /// handler kinds (or kinds this engine leaves to external workers).
    pub fn register_templates(
        &self,
        templates: Vec<TaskTemplate>,
        replace: bool,
    ) -> Result<(), EngineError> {
        for t in &templates {
            let mut missing: Vec<String> = t
                .steps
                .iter()
                .map(|s| s.handler.kind.clone())
                .filter(|k| {
                    !self.inner.handlers.contains(k) && !self.inner.config.exclude_kinds.contains(k)
                })
                .collect();
            missing.sort();
            missing.dedup();
            if !missing.is_empty() {
                return Err(EngineError::UnknownHandlerKinds {
                    template: t.full_name(),
                    kinds: missing,
                });
            }
            // A rate limit the configuration lacks would fail every task
            // created from the template: refuse the template instead.
            if let Some(first) = crate::flow::unknown_rate_limits(t, &self.inner.config.rate_limits)
                .into_iter()
                .next()
            {
                return Err(EngineError::InvalidField {
                    field: format!("{} rate_limit", t.full_name()),
                    message: first,
                });
            }
            // Each registered kind checks its steps' configs now, not when
            // a task first runs them (`sleep` with `seconds: 1e20`).
            for s in &t.steps {
                if let Some(h) = self.inner.handlers.get(&s.handler.kind)
                    && let Err(message) = h.check_config(&s.handler.config)
                {
                    return Err(EngineError::InvalidField {
                        field: format!("{} step `{}` handler.config", t.full_name(), s.name),
                        message,
                    });
                }
            }
        }
        let mut reg = self
            .inner
            .registry
            .write()
            .unwrap_or_else(|p| p.into_inner());
        reg.register_all(templates, replace)?;
        Ok(())
    }

    /// A read view of the registry.
    pub fn with_registry<T>(&self, f: impl FnOnce(&TemplateRegistry) -> T) -> T {
        f(&self
            .inner
            .registry
            .read()
            .unwrap_or_else(|p| p.into_inner()))
    }

    /// Looks a template up: an exact version, or the latest.
    pub fn template(
        &self,
        namespace: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<TaskTemplate>, EngineError> {
        let version = match version {
            Some(v) => Some(
                semver::Version::parse(v).map_err(|e| EngineError::InvalidField {
                    field: "version".into(),
                    message: format!("`{v}` is not a semantic version: {e}"),
                })?,
            ),
            None => None,
        };
        Ok(self.with_registry(|r| r.get(namespace, name, version.as_ref()))?)
    }

    /// Creates a task from a request: finds the template, checks the context
    /// against its schema, applies the identity strategy and stores the task
    /// with its steps. Running it is the engine's job.
    pub async fn create_task(&self, request: TaskRequest) -> Result<TaskRow, EngineError> {
        let now = self.now();
        let caller = request
            .traceparent
            .as_deref()
            .and_then(crate::telemetry::parse_traceparent);
        let new = self.materialise(request, now)?;
        let row = self.inner.store.task_create(new).await?;
        crate::metrics::task_created(&row.namespace, &row.name);
        crate::telemetry::record_task_created(
            row.id,
            &row.namespace,
            &row.name,
            &row.version,
            caller.as_ref(),
        );
        Ok(row)
    }

    /// Creates many tasks in one transaction.
    pub async fn create_tasks(&self, requests: Vec<TaskRequest>) -> Result<Vec<Uuid>, EngineError> {
        let now = self.now();
        let new = requests
            .into_iter()
            .map(|r| self.materialise(r, now))
            .collect::<Result<Vec<_>, _>>()?;
        let labels: Vec<(Uuid, String, String, String)> = new
            .iter()
            .map(|t| (t.id, t.namespace.clone(), t.name.clone(), t.version.clone()))
            .collect();
        let ids = self.inner.store.task_create_many(new).await?;
        for (id, namespace, name, version) in &labels {
            crate::metrics::task_created(namespace, name);
            crate::telemetry::record_task_created(*id, namespace, name, version, None);
        }
        Ok(ids)
    }

    pub(crate) fn materialise(
        &self,
        r: TaskRequest,
        now: DateTime<Utc>,
    ) -> Result<NewTask, EngineError> {
        let template = self.template(&r.namespace, &r.name, r.version.as_deref())?;
        if !r.context.is_object() {
            return Err(EngineError::InvalidField {
                field: "context".into(),
                message: "must be a JSON object".into(),
            });
        }
        template
            .validate_context(&r.context)
            .map_err(|violations| {
                // Schema messages quote the offending value: mask those under sensitive keys.
                let masker = &self.inner.masker;
                EngineError::InvalidContext(
                    violations
                        .into_iter()
                        .map(|mut v| {
                            if masker.is_sensitive_path(&v.path) {
                                v.message = format!(
                                    "the value at {} is invalid ({} masked)",
                                    v.path,
                                    tasker_core::mask::MASK
                                );
                            }
                            v
                        })
                        .collect(),
                )
            })?;
        let initiator = r.initiator.unwrap_or_else(|| "unknown".into());
        let source_system = r.source_system.unwrap_or_else(|| "unknown".into());
        let reason = r.reason.unwrap_or_else(|| "unknown".into());
        let version = template.version.to_string();
        let identity = match self.inner.config.identity_strategy {
            IdentityStrategy::None => None,
            IdentityStrategy::Hash => Some(Identity {
                hash: identity_hash(IdentityInput {
                    namespace: &template.namespace,
                    name: &template.name,
                    version: &version,
                    context: &r.context,
                    initiator: &initiator,
                    source_system: &source_system,
                    reason: &reason,
                }),
                since: now
                    - chrono::Duration::from_std(self.inner.config.identity_window)
                        .unwrap_or_default(),
            }),
        };
        let steps = template
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| NewStep {
                id: Uuid::now_v7(),
                name: s.name.clone(),
                description: s.description.clone(),
                dependent_system: s.dependent_system.clone(),
                handler: s.handler.clone(),
                inputs: s.inputs.clone(),
                max_attempts: s.max_attempts() as i32,
                retry_limit: s.max_attempts() as i32,
                retryable: s.retryable,
                skippable: s.skippable,
                timeout_seconds: s.timeout_seconds,
                parents: template.dag.parents(i).to_vec(),
                flow: Default::default(),
            })
            .collect();
        let mut task = NewTask {
            id: Uuid::now_v7(),
            namespace: template.namespace.clone(),
            name: template.name.clone(),
            version,
            context: r.context,
            initiator,
            source_system,
            reason,
            tags: r.tags,
            correlation_id: r
                .correlation_id
                .unwrap_or_else(|| Uuid::new_v4().simple().to_string()),
            identity,
            steps,
            now,
        };
        crate::flow::resolve(&mut task, &template, &self.inner.config.rate_limits)?;
        Ok(task)
    }

    /// A task with its execution context.
    pub async fn task_status(&self, id: Uuid) -> Result<TaskStatus, EngineError> {
        let task = self.inner.store.task_get(id).await?;
        let counts = self.inner.store.task_step_counts(id, self.now()).await?;
        Ok(TaskStatus {
            task,
            execution: ExecutionContext::from_counts(counts),
        })
    }

    /// Waits until the task reaches a final state (complete, error, cancelled,
    /// resolved_manually), woken by store events, with a slow poll as a backstop.
    pub async fn wait_for_task(&self, id: Uuid, timeout: Duration) -> Result<TaskRow, EngineError> {
        let events = self.inner.store.subscribe();
        let store = &self.inner.store;
        crate::wait::until_final(id, events, timeout, || store.task_get(id)).await
    }

    /// Cancels a task. `by` (who asked) is recorded on every transition an
    /// operator action writes, here and in the other actions below.
    pub async fn cancel_task(&self, id: Uuid, by: Option<&str>) -> Result<TaskRow, EngineError> {
        let row = self.inner.store.task_cancel(id, self.now(), by).await?;
        crate::metrics::task_finished(&row.namespace, &row.name, row.status.as_str());
        Ok(row)
    }

    /// Counts the task as finished when an operator's step action (resolve,
    /// cancel) finished it. Reads the task only while metrics are recorded.
    async fn count_operator_finish<F>(
        &self,
        step_id: Uuid,
        action: F,
    ) -> Result<StepRow, EngineError>
    where
        F: std::future::Future<Output = Result<StepRow, tasker_store::StoreError>>,
    {
        if !crate::metrics::enabled() {
            return Ok(action.await?);
        }
        let task_id = self.inner.store.step_get(step_id).await?.task_id;
        let before = self.inner.store.task_get(task_id).await?.status;
        let step = action.await?;
        if !before.is_terminal()
            && let Ok(after) = self.inner.store.task_get(task_id).await
            && after.status.is_terminal()
        {
            crate::metrics::task_finished(&after.namespace, &after.name, after.status.as_str());
        }
        Ok(step)
    }

    /// Retries a task in `error`.
    pub async fn retry_task(&self, id: Uuid, by: Option<&str>) -> Result<TaskRow, EngineError> {
        Ok(self.inner.store.task_retry(id, self.now(), by).await?)
    }

    /// Pauses a task: no new step of it starts until [`Self::resume_task`];
    /// running steps finish (docs/FLOW_CONTROL.md).
    pub async fn pause_task(&self, id: Uuid, by: Option<&str>) -> Result<TaskRow, EngineError> {
        Ok(self.inner.store.task_pause(id, self.now(), by).await?)
    }

    /// Resumes a paused task.
    pub async fn resume_task(&self, id: Uuid, by: Option<&str>) -> Result<TaskRow, EngineError> {
        Ok(self.inner.store.task_resume(id, self.now(), by).await?)
    }

    /// Resolves a step manually with the given results.
    pub async fn resolve_step(
        &self,
        step_id: Uuid,
        results: Value,
        by: Option<&str>,
    ) -> Result<tasker_store::StepRow, EngineError> {
        let now = self.now();
        self.count_operator_finish(
            step_id,
            self.inner.store.step_resolve(step_id, results, now, by),
        )
        .await
    }

    /// Cancels one step.
    pub async fn cancel_step(
        &self,
        step_id: Uuid,
        by: Option<&str>,
    ) -> Result<tasker_store::StepRow, EngineError> {
        let now = self.now();
        self.count_operator_finish(step_id, self.inner.store.step_cancel(step_id, now, by))
            .await
    }

    /// Gives an `error` step a new attempt budget.
    pub async fn retry_step(
        &self,
        step_id: Uuid,
        by: Option<&str>,
    ) -> Result<tasker_store::StepRow, EngineError> {
        Ok(self.inner.store.step_retry(step_id, self.now(), by).await?)
    }

    /// A page of tasks matching the query.
    pub async fn list_tasks(
        &self,
        query: &tasker_store::TaskQuery,
    ) -> Result<tasker_store::Page<TaskRow>, EngineError> {
        Ok(self.inner.store.task_list(query).await?)
    }

    /// Changes a task's reason and/or tags (checked by
    /// [`crate::requests::check_task_update`]).
    pub async fn update_task(
        &self,
        id: Uuid,
        update: tasker_store::TaskUpdate,
    ) -> Result<TaskRow, EngineError> {
        crate::requests::check_task_update(&update)?;
        Ok(self.inner.store.task_update(id, update, self.now()).await?)
    }

    /// The steps of a task, in template order.
    pub async fn task_steps(
        &self,
        task_id: Uuid,
    ) -> Result<Vec<tasker_store::StepRow>, EngineError> {
        Ok(self.inner.store.step_list(task_id).await?)
    }

    /// One step.
    pub async fn step(&self, step_id: Uuid) -> Result<tasker_store::StepRow, EngineError> {
        Ok(self.inner.store.step_get(step_id).await?)
    }

    /// Changes a step's retry limit and/or inputs (pending or error steps
    /// only; checked by [`crate::requests::check_step_update`]).
    pub async fn update_step(
        &self,
        step_id: Uuid,
        update: tasker_store::StepUpdate,
    ) -> Result<tasker_store::StepRow, EngineError> {
        crate::requests::check_step_update(&update)?;
        Ok(self
            .inner
            .store
            .step_update(step_id, update, self.now())
            .await?)
    }

    /// Starts executing steps in the background; returns a handle to stop it.
    pub fn start(&self) -> WorkerHandle {
        Worker::spawn(self.inner.clone())
    }

    /// Convenience: the final state of a task is a success.
    pub fn succeeded(task: &TaskRow) -> bool {
        task.status == TaskState::Complete || task.status == TaskState::ResolvedManually
    }
}
