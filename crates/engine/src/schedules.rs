//! Schedules in the service layer (docs/FLOW_CONTROL.md, "Schedules"):
//! creating, listing, pausing, triggering, and the pass the scheduler loop
//! of every worker process runs.
//!
//! A pass reads the schedules, works out each one's due ticks at the
//! service clock's `now` ([`tasker_core::schedule::due_ticks`]) and fires
//! them through [`tasker_store::Store::schedule_fire`], which creates at
//! most one task per tick however many processes fire it. Tests drive
//! [`Tasker::run_schedules`] under a manual clock.

use crate::error::EngineError;
use crate::service::{TaskRequest, Tasker};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tasker_core::schedule::{DueRules, ScheduleSpec, TickInfo, Timer, due_ticks, render_context};
use tasker_store::{NewSchedule, ScheduleFire, ScheduleRow, ScheduleSource, TaskRow, TickRow};
use uuid::Uuid;

/// How many next fire times a schedule read shows.
pub const NEXT_FIRE_TIMES: usize = 5;

/// The schedule loop's settings in runtime types (`[scheduler]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// Worker processes run the schedule loop.
    pub enabled: bool,
    /// Longest sleep between passes.
    pub poll_interval: Duration,
    /// Default catch-up window of `latest` / `all`.
    pub catch_up_window: Duration,
    /// Under `none`, ticks later than this are skipped.
    pub late_after: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig::from_config(&tasker_config::SchedulerConfig::default())
    }
}

impl SchedulerConfig {
    /// The runtime settings of `[scheduler]` (values already checked).
    pub fn from_config(c: &tasker_config::SchedulerConfig) -> Self {
        let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or_default();
        SchedulerConfig {
            enabled: c.enabled,
            poll_interval: secs(c.poll_interval_seconds),
            catch_up_window: secs(c.catch_up_window_seconds),
            late_after: secs(c.late_after_seconds),
        }
    }
}

/// A schedule with its next fire times (reads).
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleInfo {
    /// The stored schedule.
    pub row: ScheduleRow,
    /// The next [`NEXT_FIRE_TIMES`] ticks after now (empty while paused).
    pub next_fire_times: Vec<DateTime<Utc>>,
}

/// What one pass of the scheduler did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchedulePass {
    /// Tasks this process created.
    pub fired: usize,
    /// Ticks another process (or an earlier pass) had already fired.
    pub already_fired: usize,
    /// When the next tick of any running schedule is due.
    pub next_due: Option<DateTime<Utc>>,
}

fn chrono(d: Duration) -> ChronoDuration {
    ChronoDuration::from_std(d).unwrap_or(ChronoDuration::MAX)
}

fn compile(spec: &ScheduleSpec) -> Result<Timer, EngineError> {
    spec.compile().map_err(|e| EngineError::InvalidField {
        field: e.field,
        message: e.message,
    })
}

impl Tasker {
    /// Creates a schedule (`POST /tasker/schedules`): the spec is checked,
    /// its template must be registered, and the name must be free
    /// (`conflict` otherwise).
    pub async fn create_schedule(&self, spec: ScheduleSpec) -> Result<ScheduleInfo, EngineError> {
        compile(&spec)?;
        self.check_schedule_template(&spec)?;
        let row = self
            .store()
            .schedule_save(
                NewSchedule {
                    id: Uuid::now_v7(),
                    spec,
                    source: ScheduleSource::Api,
                    now: self.now(),
                },
                false,
            )
            .await?;
        Ok(self.schedule_info(row))
    }

    /// The template a schedule runs exists here, and its context fits the
    /// template's schema once rendered (checked with a sample tick).
    fn check_schedule_template(&self, spec: &ScheduleSpec) -> Result<(), EngineError> {
        let request = self.tick_request(spec, self.now(), true);
        match self.materialise(request, self.now()) {
            Err(EngineError::Registry(tasker_core::registry::RegistryError::NotFound {
                ..
            })) => Err(EngineError::InvalidField {
                field: "template".into(),
                message: format!(
                    "no template `{}.{}`{} is registered",
                    spec.namespace,
                    spec.template,
                    spec.version
                        .as_deref()
                        .map(|v| format!(" at version {v}"))
                        .unwrap_or_default()
                ),
            }),
            Err(e) => Err(e),
            Ok(_) => Ok(()),
        }
    }

    /// Writes the `schedules:` of the registered templates to the store
    /// (each replaces the stored definition of its name, keeping its
    /// pause and last tick). Run by the scheduler loop when it starts.
    pub async fn sync_template_schedules(&self) -> Result<usize, EngineError> {
        let specs: Vec<ScheduleSpec> = self.with_registry(|r| {
            let mut by_name = std::collections::BTreeMap::new();
            for spec in r.all().flat_map(|t| t.schedules.clone()) {
                by_name.insert(spec.name.clone(), spec);
            }
            by_name.into_values().collect()
        });
        let n = specs.len();
        for spec in specs {
            self.store()
                .schedule_save(
                    NewSchedule {
                        id: Uuid::now_v7(),
                        spec,
                        source: ScheduleSource::Template,
                        now: self.now(),
                    },
                    true,
                )
                .await?;
        }
        Ok(n)
    }

    /// Every schedule with its next fire times.
    pub async fn list_schedules(&self) -> Result<Vec<ScheduleInfo>, EngineError> {
        let rows = self.store().schedule_list().await?;
        Ok(rows.into_iter().map(|r| self.schedule_info(r)).collect())
    }

    /// One schedule by name (`not_found` when unknown).
    pub async fn get_schedule(&self, name: &str) -> Result<ScheduleInfo, EngineError> {
        Ok(self.schedule_info(self.schedule_row(name).await?))
    }

    async fn schedule_row(&self, name: &str) -> Result<ScheduleRow, EngineError> {
        self.store()
            .schedule_get(name)
            .await?
            .ok_or_else(|| EngineError::UnknownSchedule(name.to_string()))
    }

    /// Deletes a schedule (its tasks stay). A schedule from a template
    /// file comes back when a process loads that file again.
    pub async fn delete_schedule(&self, name: &str) -> Result<(), EngineError> {
        let row = self.schedule_row(name).await?;
        Ok(self.store().schedule_delete(row.id).await?)
    }

    /// Pauses a schedule: no tick fires until resumed.
    pub async fn pause_schedule(&self, name: &str) -> Result<ScheduleInfo, EngineError> {
        let row = self.schedule_row(name).await?;
        let row = self
            .store()
            .schedule_set_paused(row.id, true, self.now())
            .await?;
        Ok(self.schedule_info(row))
    }

    /// Resumes a schedule from now: ticks missed while paused are skipped.
    pub async fn resume_schedule(&self, name: &str) -> Result<ScheduleInfo, EngineError> {
        let row = self.schedule_row(name).await?;
        let row = self
            .store()
            .schedule_set_paused(row.id, false, self.now())
            .await?;
        Ok(self.schedule_info(row))
    }

    /// Fires a schedule by hand now (also while paused): one task, its
    /// context rendered with `schedule.manual = true`. The clock's ticks
    /// are unaffected.
    pub async fn trigger_schedule(&self, name: &str) -> Result<TaskRow, EngineError> {
        let row = self.schedule_row(name).await?;
        let now = self.now();
        self.fire_tick(&row, now, true, now).await?.ok_or_else(|| {
            EngineError::Store(tasker_store::StoreError::Conflict(format!(
                "schedule `{name}` was triggered at this instant already"
            )))
        })
    }

    /// The newest `limit` ticks of a schedule, newest first.
    pub async fn schedule_ticks(
        &self,
        name: &str,
        limit: u32,
    ) -> Result<Vec<TickRow>, EngineError> {
        let row = self.schedule_row(name).await?;
        Ok(self.store().schedule_ticks(row.id, limit).await?)
    }

    /// A row with its next fire times.
    fn schedule_info(&self, row: ScheduleRow) -> ScheduleInfo {
        let next_fire_times = match (row.paused_at, row.spec.compile()) {
            (None, Ok(timer)) => {
                let from = self.now().max(row.last_tick_at.unwrap_or(row.anchor));
                let mut out = Vec::with_capacity(NEXT_FIRE_TIMES);
                let mut at = from;
                while out.len() < NEXT_FIRE_TIMES {
                    match timer.next_after(at, row.anchor) {
                        Some(t) => {
                            out.push(t);
                            at = t;
                        }
                        None => break,
                    }
                }
                out
            }
            _ => Vec::new(),
        };
        ScheduleInfo {
            row,
            next_fire_times,
        }
    }

    /// One pass of the scheduler at the clock's now: fires every due tick
    /// of every running schedule. A schedule whose template this process
    /// does not have is left to processes that do (logged).
    pub async fn run_schedules(&self) -> Result<SchedulePass, EngineError> {
        let now = self.now();
        let cfg = &self.config().scheduler;
        let mut pass = SchedulePass::default();
        for row in self.store().schedule_list().await? {
            if row.paused_at.is_some() {
                continue;
            }
            let timer = match row.spec.compile() {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(schedule = %row.spec.name, error = %e, "schedule cannot run");
                    continue;
                }
            };
            let rules = DueRules {
                window: row
                    .spec
                    .catch_up_window_seconds
                    .map(|s| ChronoDuration::seconds(s as i64))
                    .unwrap_or_else(|| chrono(cfg.catch_up_window)),
                late_after: chrono(cfg.late_after),
            };
            let due = due_ticks(
                &timer,
                row.spec.catch_up,
                row.anchor,
                row.last_tick_at,
                now,
                rules,
            );
            let mut more = due.len() >= tasker_core::schedule::MAX_TICKS_PER_PASS;
            let mut settled = row.last_tick_at;
            for t in due {
                match self.fire_tick(&row, t, false, now).await {
                    Ok(Some(_)) => pass.fired += 1,
                    Ok(None) => pass.already_fired += 1,
                    Err(e) => {
                        // Left for the next pass (or a process that has
                        // the template); not retried at once.
                        tracing::warn!(schedule = %row.spec.name, tick = %t, error = %e, "cannot fire schedule");
                        more = false;
                        break;
                    }
                }
                settled = Some(t);
            }
            let next = if more {
                Some(now)
            } else {
                timer.next_after(now.max(settled.unwrap_or(row.anchor)), row.anchor)
            };
            pass.next_due = match (pass.next_due, next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(pass)
    }

    /// The request a tick makes (its context rendered).
    fn tick_request(&self, spec: &ScheduleSpec, at: DateTime<Utc>, manual: bool) -> TaskRequest {
        let mut request = TaskRequest::new(spec.namespace.clone(), spec.template.clone());
        request.version = spec.version.clone();
        request.context = render_context(
            &spec.context,
            &TickInfo {
                name: &spec.name,
                scheduled_for: at,
                manual,
            },
        );
        request.initiator = Some(format!("schedule:{}", spec.name));
        request.source_system = Some("tasker-scheduler".into());
        request.reason = Some(format!(
            "{} tick {}",
            if manual { "manual" } else { "scheduled" },
            at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        ));
        request
    }

    /// Fires one tick: `None` when it was fired already (here or by another
    /// process) or the schedule was paused meanwhile.
    async fn fire_tick(
        &self,
        row: &ScheduleRow,
        at: DateTime<Utc>,
        manual: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<TaskRow>, EngineError> {
        let request = self.tick_request(&row.spec, at, manual);
        let mut task = self.materialise(request, now)?;
        // The tick is the task's identity: the hash strategy would refuse
        // a second tick with the same rendered context.
        task.identity = None;
        let created = self
            .store()
            .schedule_fire(ScheduleFire {
                schedule_id: row.id,
                scheduled_for: at,
                manual,
                task,
            })
            .await?;
        if let Some(t) = &created {
            crate::metrics::task_created(&t.namespace, &t.name);
            tracing::info!(schedule = %row.spec.name, tick = %at, task_id = %t.id, manual, "schedule fired");
        }
        Ok(created)
    }
}
