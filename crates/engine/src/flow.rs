//! Concurrency keys and rate limits of a new task's steps
//! (docs/FLOW_CONTROL.md): the templates' `concurrency.key` and
//! `rate_limit.key` rendered with the `http` handler's placeholder language
//! (`crate::handlers::http::template`), and the named buckets looked up in
//! `[rate_limits]`, and the template's `max_running_tasks` on every step.
//! The claim enforces them (`tasker_store::flow`).

use crate::error::EngineError;
use crate::handler::StepContext;
use crate::handlers::http::template::{Encoding, Scope};
use serde_json::Map;
use std::collections::BTreeMap;
use tasker_core::flow::{MAX_KEY_LEN, RateLimitDef};
use tasker_core::template::TaskTemplate;
use tasker_store::NewTask;
use tasker_store::flow::{ConcurrencyKey, RateBucket, StepFlow, TaskSlot};

/// Fills in `flow` of every step of `task` (created from `template`).
/// A key that cannot be rendered (a path missing from the context) is an
/// error naming the step; so is a rate limit `[rate_limits]` lacks.
pub(crate) fn resolve(
    task: &mut NewTask,
    template: &TaskTemplate,
    rate_limits: &BTreeMap<String, RateLimitDef>,
) -> Result<(), EngineError> {
    // `max_running_tasks`: every step carries the template's slot, so the
    // claim knows without reading the task whether to look it up.
    let slot = template.max_running_tasks.map(|n| TaskSlot {
        key: TaskSlot::key_of(&task.namespace, &task.name),
        limit: i32::try_from(n).unwrap_or(i32::MAX),
    });
    for (step, spec) in task.steps.iter_mut().zip(&template.steps) {
        step.flow.task_slot = slot.clone();
        if spec.concurrency.is_none() && spec.rate_limit.is_none() {
            continue;
        }
        // What a key may name is known at creation: context, inputs and the
        // task's identity (the template check refused `parents` and `step`).
        let ctx = StepContext {
            task_id: task.id,
            step_id: step.id,
            step_name: step.name.clone(),
            namespace: task.namespace.clone(),
            task_name: task.name.clone(),
            version: task.version.clone(),
            context: task.context.clone(),
            inputs: step.inputs.clone(),
            parent_results: Map::new(),
            config: serde_json::Value::Null,
            attempt: 0,
            max_attempts: 0,
            idempotency_key: StepContext::idempotency_key_for(step.id),
            correlation_id: task.correlation_id.clone(),
            timeout: None,
            events: Default::default(),
        };
        let scope = Scope::new(&ctx);
        let render = |what: &str, template: &str| -> Result<String, EngineError> {
            let key = scope
                .render_str(template, Encoding::Plain)
                .map_err(|e| invalid(&step.name, what, &e.to_string()))?;
            if key.len() > MAX_KEY_LEN {
                return Err(invalid(
                    &step.name,
                    what,
                    &format!("the rendered key is longer than {MAX_KEY_LEN} bytes"),
                ));
            }
            Ok(key)
        };
        let mut flow = StepFlow {
            task_slot: slot.clone(),
            ..StepFlow::default()
        };
        if let Some(c) = &spec.concurrency {
            flow.concurrency = Some(ConcurrencyKey {
                key: render("concurrency key", &c.key)?,
                limit: i32::try_from(c.limit).unwrap_or(i32::MAX),
            });
        }
        if let Some(r) = &spec.rate_limit {
            let def = rate_limits.get(&r.name).ok_or_else(|| {
                invalid(
                    &step.name,
                    "rate limit",
                    &format!("`{}` is not defined in [rate_limits]", r.name),
                )
            })?;
            let key = match &r.key {
                Some(k) => format!("{}:{}", r.name, render("rate limit key", k)?),
                None => r.name.clone(),
            };
            flow.rate = Some(RateBucket {
                key,
                per_second: def.per_second,
                burst: def.burst(),
            });
        }
        step.flow = flow;
    }
    Ok(())
}

fn invalid(step: &str, what: &str, message: &str) -> EngineError {
    EngineError::InvalidField {
        field: "context".into(),
        message: format!("step `{step}`: {what}: {message}"),
    }
}

/// Rate limits the templates name that `[rate_limits]` lacks, as
/// `template step: name` lines (checked when templates are registered).
pub fn unknown_rate_limits(
    template: &TaskTemplate,
    rate_limits: &BTreeMap<String, RateLimitDef>,
) -> Vec<String> {
    template
        .steps
        .iter()
        .filter_map(|s| {
            let r = s.rate_limit.as_ref()?;
            (!rate_limits.contains_key(&r.name)).then(|| {
                format!(
                    "{} step `{}`: rate limit `{}` is not defined in [rate_limits]",
                    template.full_name(),
                    s.name,
                    r.name
                )
            })
        })
        .collect()
}
