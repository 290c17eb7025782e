//! # tasker-store
//!
//! The storage interface of Tasker. The engine, the CLI and the HTTP API talk
//! to a [`Store`]; the backends (`tasker-store-sqlite`, `tasker-store-postgres`)
//! implement it and run the same [`conformance`] suite.
//!
//! | module | what it holds |
//! |---|---|
//! | [`rows`] | rows read back: tasks, steps, transitions, pages |
//! | [`params`] | what goes in: new tasks, claims, outcomes, queries |
//! | [`error`] | [`StoreError`], the one error type that leaves a backend |
//! | [`storable`] | what both backends can store (no NUL characters), checked before writing |
//! | [`events`] | [`StoreEvent`], the wake-up signals a store broadcasts |
//! | [`flow`] | concurrency keys and rate limits: what a step carries, the claim's rule |
//! | [`flow_pause`] | pausing a whole namespace or template |
//! | [`restart`] | restart-from-a-step rules both backends apply |
//! | [`pause`] | pause / resume rules both backends apply |
//! | [`schedules`] | schedules and their ticks (one task per tick) |
//! | [`analytics`] | the ready queue's depth and bounded samples of history |
//! | [`outbox`] | lifecycle events: [`EventRow`], the catalog, custom names |
//! | [`webhooks`] | webhook subscribers and their leased deliveries |
//! | `conformance` | the shared test suite (feature `conformance`) |
//!
//! ## The model in one paragraph
//! Steps carry their own status, attempt counter, lease and `ready_at`. A step
//! is claimable when `status = pending` and `ready_at <= now`; `ready_at` is
//! NULL while any parent is unfinished, set when the last parent finishes
//! (a per-step `remaining_parents` counter, so readiness costs O(children) and
//! never depends on history), and pushed into the future by a retry backoff.
//! A claim moves steps to `in_progress` under a lease (owner, token, expiry)
//! and bumps `attempts`; results are accepted only with the current token.
//! Every state change appends a transition row in the same transaction;
//! transitions are never read on the hot path. Tasks keep counters
//! (`steps_remaining`, `steps_live`, `steps_blocked`) updated in the same
//! transactions, so finalisation is one conditional update that exactly one
//! writer can win.

pub mod analytics;
pub mod error;
pub mod events;
pub mod flow;
pub mod flow_pause;
pub mod outbox;
pub mod params;
pub mod pause;
pub mod restart;
pub mod rows;
pub mod schedules;
pub mod storable;
pub mod webhooks;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use analytics::{HistoryQuery, HistoryStep, QueueDepth};
pub use error::{StoreError, StoreResult};
pub use events::StoreEvent;
pub use flow::{FlowWait, StepFlow};
pub use flow_pause::{FlowPauseRow, FlowScope};
pub use outbox::{EventQuery, EventRow, NewCustomEvent};
pub use params::*;
pub use rows::*;
pub use schedules::{NewSchedule, ScheduleFire, ScheduleRow, ScheduleSource, TickRow};
pub use webhooks::{
    ClaimedDelivery, DeliveryClaim, DeliveryOutcome, DeliveryQuery, DeliveryResult, DeliveryRow,
    DeliveryStatus, NewWebhook, WebhookRow, WebhookSource,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tasker_core::StepCounts;
use uuid::Uuid;

/// Which database is behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// The storage interface. Every method is one transaction.
///
/// Times are passed in (`now`) rather than read inside, so tests control the
/// clock (River's habit).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Signals after commits: work became available, a task finished, a step
    /// changed. Lagging receivers should treat `Lagged` as "something happened".
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<StoreEvent>;

    /// Round trip to the database.
    async fn ping(&self) -> StoreResult<()>;

    /// True when every embedded migration has been applied.
    async fn migrations_applied(&self) -> StoreResult<bool>;

    // ---- tasks -------------------------------------------------------------

    /// Creates a task with its steps and edges, atomically. With an identity,
    /// fails with [`StoreError::DuplicateTask`] when a task with the same hash
    /// was created at or after `identity.since`.
    async fn task_create(&self, task: NewTask) -> StoreResult<TaskRow>;

    /// Creates many tasks in one transaction (bulk loads, benchmarks). Identity
    /// checks apply to each. All or nothing.
    async fn task_create_many(&self, tasks: Vec<NewTask>) -> StoreResult<Vec<Uuid>>;

    /// One task.
    async fn task_get(&self, id: Uuid) -> StoreResult<TaskRow>;

    /// A page of tasks.
    async fn task_list(&self, query: &TaskQuery) -> StoreResult<Page<TaskRow>>;

    /// Step counts of a task at `now` (for the execution context).
    async fn task_step_counts(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<StepCounts>;

    /// Updates reason and/or tags.
    async fn task_update(
        &self,
        id: Uuid,
        update: TaskUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<TaskRow>;

    /// Operator actions (`task_cancel`, `task_retry`, `step_resolve`,
    /// `step_cancel`, `step_retry`) take `by`, who asked: when given, it is
    /// written as `"by"` into the metadata of every transition the action
    /// writes (in the same transaction).
    ///
    /// Cancels a task: the task and every pending or in-progress step go to
    /// `cancelled` (running handlers lose their lease). Terminal tasks other
    /// than complete / resolved_manually are an [`StoreError::InvalidTransition`].
    async fn task_cancel(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> StoreResult<TaskRow>;

    /// Retries a task in `error`: task → pending, each `error` step → pending
    /// with a fresh attempt budget (`max_attempts = attempts + retry_limit`),
    /// ready at `now` if its parents are done. Cancelled steps stay cancelled.
    async fn task_retry(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> StoreResult<TaskRow>;

    /// Pauses an open task (pending, in progress or error): its steps leave
    /// the ready queue (no new step of it is claimed, also by claim on
    /// completion), running steps finish normally and their children wait.
    /// The task keeps its status and counters; `paused_at = now`. Writes a
    /// task transition (same state, metadata `{"action": "pause", "by"}`).
    /// A finished task is an [`StoreError::InvalidTransition`], a paused
    /// one a [`StoreError::Conflict`].
    async fn task_pause(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> StoreResult<TaskRow>;

    /// Resumes a paused task: its ready steps (with their `ready_at`,
    /// backoffs included) are claimable again. Writes a task transition
    /// (metadata `{"action": "resume", "by"}`). A task that is not paused
    /// is a [`StoreError::Conflict`].
    async fn task_resume(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> StoreResult<TaskRow>;

    /// Restarts a finished or failed task (complete, error, cancelled,
    /// resolved) from its step `step_id`: that step and every step
    /// downstream of it go back to `pending` with a fresh attempt budget,
    /// results and errors cleared (the step ready now, the others when their
    /// parents finish); upstream steps keep their results; the task goes
    /// back to `pending`. Every transition it writes carries
    /// `{"action": "restart", "step", "by", "reason"}`. A running task is an
    /// [`StoreError::InvalidTransition`]; a step of another task is
    /// `NotFound`; a step whose parents are not all done a
    /// [`StoreError::Conflict`].
    async fn task_restart(
        &self,
        id: Uuid,
        step_id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> StoreResult<TaskRow>;

    /// Transitions of a task, oldest first.
    async fn task_transitions(&self, id: Uuid) -> StoreResult<Vec<TransitionRow>>;

    /// Attaches an annotation to a task (`NotFound` with entity `task` when
    /// the task is unknown).
    async fn annotation_create(&self, annotation: NewAnnotation) -> StoreResult<AnnotationRow>;

    /// The annotations of many tasks in one read, each task's oldest first.
    /// Tasks without annotations are absent from the map.
    async fn annotation_list_many(
        &self,
        task_ids: &[Uuid],
    ) -> StoreResult<std::collections::HashMap<Uuid, Vec<AnnotationRow>>>;

    // ---- steps -------------------------------------------------------------

    /// The steps of a task, in template order, with parents' names.
    async fn step_list(&self, task_id: Uuid) -> StoreResult<Vec<StepRow>>;

    /// The steps of many tasks in one read (the GraphQL DataLoader's batch):
    /// each task's steps in template order, grouped by task id. Unknown task
    /// ids and tasks without steps are simply absent from the map.
    async fn step_list_many(
        &self,
        task_ids: &[Uuid],
    ) -> StoreResult<std::collections::HashMap<Uuid, Vec<StepRow>>>;

    /// One step.
    async fn step_get(&self, id: Uuid) -> StoreResult<StepRow>;

    /// Transitions of a step, oldest first.
    async fn step_transitions(&self, id: Uuid) -> StoreResult<Vec<TransitionRow>>;

    /// Changes a step's retry limit and/or inputs (only while not running or done).
    async fn step_update(
        &self,
        id: Uuid,
        update: StepUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<StepRow>;

    /// Marks a pending or error step `resolved_manually` with the given results;
    /// its children may become ready; the task may complete.
    async fn step_resolve(
        &self,
        id: Uuid,
        results: serde_json::Value,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> StoreResult<StepRow>;

    /// Cancels a pending or in-progress step. Its dependants can no longer run.
    async fn step_cancel(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> StoreResult<StepRow>;

    /// Gives an `error` step a fresh attempt budget and makes it pending
    /// (ready now if parents are done). A task in `error` goes back to `pending`.
    async fn step_retry(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> StoreResult<StepRow>;

    // ---- work --------------------------------------------------------------

    /// Claims up to `limit` ready steps (oldest `ready_at` first) in one
    /// statement: `pending → in_progress`, `attempts + 1`, lease set. Tasks
    /// still `pending` go to `in_progress`. Respects `per_task_limit` and the
    /// kind / namespace filters.
    async fn step_claim(&self, claim: &ClaimParams) -> StoreResult<Vec<ClaimedStep>>;

    /// Records many outcomes in one transaction. Each is applied only if the
    /// step is still `in_progress` under the given lease token; otherwise that
    /// outcome is reported as lease-lost and ignored. Unblocks children,
    /// updates task counters and finalises tasks (exactly one writer wins).
    async fn step_finish_many(
        &self,
        outcomes: &[StepOutcome],
        now: DateTime<Utc>,
    ) -> StoreResult<FinishReport> {
        self.step_finish_and_claim(outcomes, now, None).await
    }

    /// [`Store::step_finish_many`], and in the same transaction, with
    /// `claim`, a claim among the children this batch made ready (claim on
    /// completion): up to `claim.limit` of them (the caller's free slots)
    /// go `in_progress` under a lease to `claim.worker_id` and are returned
    /// in [`FinishReport::claimed`], so the caller runs them without a
    /// wake-up and claim round trip. The claim is the one of
    /// [`Store::step_claim`] (same statement: same per-task limit, kind and
    /// namespace filters, same row locks against concurrent claimers),
    /// restricted to those children; the rest stay ready for every worker.
    /// `claim.now` is replaced by `now`.
    async fn step_finish_and_claim(
        &self,
        outcomes: &[StepOutcome],
        now: DateTime<Utc>,
        claim: Option<&ClaimParams>,
    ) -> StoreResult<FinishReport>;

    /// Extends the leases that are still held; returns the ids whose lease was lost.
    async fn step_lease_renew(
        &self,
        leases: &[LeaseRef],
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>>;

    /// Finds `in_progress` steps whose lease expired before `now`: with
    /// attempts left they go back to pending (ready now), otherwise to error.
    /// Returns how many were rescued. At most `limit` per call.
    async fn step_rescue_expired(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<u64>;

    /// The earliest future `ready_at` of any claimable step (to sleep until).
    async fn step_next_ready_at(&self) -> StoreResult<Option<DateTime<Utc>>>;

    /// Aggregate counts over all history (reports, benchmarks). Scans every
    /// task and step: health pages use [`Store::stats_since`] instead.
    async fn stats(&self) -> StoreResult<StoreStats>;

    /// The counts of [`Store::stats`], over the tasks created at or after
    /// `since` and their steps only: a range of the `tasks (created_at)`
    /// index, so its cost follows the window, not the history.
    async fn stats_since(&self, since: DateTime<Utc>) -> StoreResult<StoreStats>;

    /// The ready queue at `now`: claimable steps (counted up to `cap`, over
    /// the partial ready index) and the oldest `ready_at` among them.
    async fn queue_depth(&self, now: DateTime<Utc>, cap: u32) -> StoreResult<QueueDepth>;

    /// The steps of the newest `query.max_tasks` tasks created at or after
    /// `query.since` (optionally of one template), newest task first, each
    /// task's steps in template order. A range of the `tasks (created_at)`
    /// index, then each task's steps by `(task_id, position)`.
    async fn history_sample(&self, query: &HistoryQuery) -> StoreResult<Vec<HistoryStep>>;

    /// Whether any task is `pending` or `in_progress` (one index probe).
    async fn has_open_tasks(&self) -> StoreResult<bool>;

    // ---- retention ---------------------------------------------------------

    /// Ids of finished tasks matching `q`, oldest completion first: a range
    /// of the partial index over finished tasks, so its cost follows the
    /// page, not the history.
    async fn prune_candidates(&self, q: &PruneQuery) -> StoreResult<Vec<Uuid>>;

    /// How many finished tasks match `q` (its `limit` ignored), for dry runs.
    async fn prune_count(&self, q: &PruneQuery) -> StoreResult<u64>;

    /// Deletes those of `ids` that are still finished and finished before
    /// `finished_before`, with their steps, edges and transitions, in one
    /// transaction; returns the ids deleted. A task that was reopened (a
    /// retry) since it was selected is left alone: nothing unfinished is
    /// ever deleted. On PostgreSQL, returns nothing without deleting while
    /// another process holds the prune lock (one pruner at a time).
    async fn tasks_prune(
        &self,
        ids: &[Uuid],
        finished_before: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>>;

    /// Deletes flow-control bookkeeping nothing needs any more, at most
    /// `limit` rows of each kind (docs/FLOW_CONTROL.md, "Housekeeping"):
    /// schedule ticks fired before `before` except each schedule's newest
    /// (the schedule's `last_tick_at` keeps an old tick from firing again),
    /// rate-limit buckets not drawn from since `before` (a bucket that comes
    /// back starts full, as it would have refilled), and, on PostgreSQL,
    /// concurrency-key counters with no step running (the claim recreates
    /// a missing one before it counts).
    async fn flow_prune(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<flow::FlowPruned>;

    /// Deletes one batch of the selection `q`: up to `q.limit` tasks (0 =
    /// all) that are finished before `q.finished_before`, oldest completion
    /// first, with their steps, edges, annotations and transitions, in one
    /// transaction; the number deleted (0: none left, or every candidate is
    /// locked by someone else right now). `None` when another process holds
    /// the prune lock (PostgreSQL). For pruning without an archive: the
    /// ids never leave the database (PostgreSQL: one statement).
    async fn prune_expired(&self, q: &PruneQuery) -> StoreResult<Option<u64>> {
        let ids = self.prune_candidates(q).await?;
        if ids.is_empty() {
            return Ok(Some(0));
        }
        let deleted = self.tasks_prune(&ids, q.finished_before).await?;
        // Nothing deleted of a non-empty selection: the lock was taken (or
        // every task reopened since), as `tasks_prune` reports it.
        Ok((!deleted.is_empty()).then_some(deleted.len() as u64))
    }

    // ---- maintenance -------------------------------------------------------

    /// The state of the database's upkeep: whether it vacuums by itself and
    /// whether the ready-steps index has bloated (dead entries the hot path
    /// walks over); a warning per problem.
    async fn storage_health(&self) -> StoreResult<StorageHealth>;

    /// Runs the database's upkeep on Tasker's tables, for setups where the
    /// server does not (PostgreSQL without autovacuum: `VACUUM (ANALYZE)`
    /// per table; SQLite: a WAL checkpoint). Safe while the engine runs.
    async fn maintenance(&self) -> StoreResult<Vec<MaintenanceRun>>;

    /// Refreshes the query planner's statistics of the store's tables once
    /// they have outgrown what the planner last measured, so that plans
    /// cached while a table was nearly empty (sequential scans) are made
    /// again for its real size, also where the server's autovacuum is off
    /// or has not run yet (PostgreSQL: `ANALYZE` of a table at each
    /// doubling, docs/STORAGE.md "History, retention and maintenance").
    /// One run per table analysed.
    /// Stores whose plans do not depend on statistics do nothing. Every
    /// worker calls it every few seconds, so it must be cheap when there
    /// is nothing to do.
    async fn statistics_refresh(&self) -> StoreResult<Vec<MaintenanceRun>> {
        Ok(Vec::new())
    }

    /// Makes sure the history tables have a partition for every month from
    /// `now`'s through `months_ahead` months later (PostgreSQL: monthly
    /// range partitions of the transition and event tables, docs/STORAGE.md
    /// "Partitions"); one run per partition created. Stores without
    /// partitions do nothing.
    async fn history_partitions_ensure(
        &self,
        _now: DateTime<Utc>,
        _months_ahead: u32,
    ) -> StoreResult<Vec<MaintenanceRun>> {
        Ok(Vec::new())
    }

    /// Drops the transition partitions of months that ended before
    /// `before` once no remaining task can have rows in them; the rows of
    /// the few tasks still present (a long-running task) are moved out
    /// first, so no remaining task loses history. One run per partition
    /// dropped or compacted. Stores without partitions do nothing.
    async fn history_partitions_drop(
        &self,
        _before: DateTime<Utc>,
    ) -> StoreResult<Vec<MaintenanceRun>> {
        Ok(Vec::new())
    }

    /// Stores a new API key.
    async fn api_key_create(&self, key: NewApiKey) -> StoreResult<ApiKeyRow>;

    /// One API key (`NotFound` with entity `api key` when absent).
    async fn api_key_get(&self, id: Uuid) -> StoreResult<ApiKeyRow>;

    /// Every API key, revoked ones included, oldest first.
    async fn api_key_list(&self) -> StoreResult<Vec<ApiKeyRow>>;

    /// Revokes a key at `now` (a revoked key keeps its first revocation time).
    async fn api_key_revoke(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<ApiKeyRow>;

    // ---- events (docs/EVENTS.md) -----------------------------------------

    /// Events with ids above `query.after`, oldest first, at most
    /// `query.limit`. Ids ascend in commit order: a reader never sees an id
    /// below one it has already seen.
    async fn events_list(&self, query: &EventQuery) -> StoreResult<Vec<EventRow>>;

    /// The events of each of `task_ids` in one read: per task, its events
    /// with ids above `query.after` matching `query.types` (and
    /// `query.namespace`), oldest first, at most `query.limit` **per task**
    /// (`query.task_id` is not used). Every asked id has an entry, empty
    /// when the task has no such event (or does not exist).
    async fn events_list_many(
        &self,
        task_ids: &[Uuid],
        query: &EventQuery,
    ) -> StoreResult<std::collections::HashMap<Uuid, Vec<EventRow>>>;

    /// The highest event id given so far (0 when none was): where a reader
    /// that wants only new events starts. Ids are never reused, so this
    /// never goes down, even after pruning.
    async fn events_last_id(&self) -> StoreResult<i64>;

    /// Records a custom event for a step (its task and namespace looked up;
    /// `NotFound` for an unknown step; `Conflict` when a lease token is
    /// given and the step is not running under it). The name must already
    /// be valid ([`outbox::validate_custom_name`]).
    async fn event_emit(&self, event: NewCustomEvent) -> StoreResult<()>;

    /// Deletes up to `limit` events created before `before`, oldest first
    /// (one short transaction); returns how many. The newest event is never
    /// deleted (on SQLite it keeps ids from being handed out twice). On
    /// PostgreSQL a whole month partition that ended before `before` is
    /// dropped at once when all its events have ids and it does not hold
    /// the newest one; that call returns the month's row count, which may
    /// exceed `limit`.
    async fn events_prune(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64>;

    // ---- webhooks (docs/EVENTS.md, "Webhooks") ------------------------------

    /// Creates a subscriber whose cursor starts at the newest event (it
    /// receives events recorded from now on). `Conflict` when the name is
    /// taken.
    async fn webhook_create(&self, hook: NewWebhook) -> StoreResult<WebhookRow>;

    /// Makes the config-defined subscribers exactly `hooks` (matched by
    /// name): new ones are created (cursor at the newest event), existing
    /// ones updated (id and cursor kept), config ones not listed deleted
    /// with their deliveries. `Conflict` when a name belongs to an API
    /// subscriber. One transaction.
    async fn webhook_sync_config(&self, hooks: Vec<NewWebhook>) -> StoreResult<()>;

    /// One subscriber (`NotFound` with entity `webhook`).
    async fn webhook_get(&self, id: Uuid) -> StoreResult<WebhookRow>;

    /// Every subscriber, by name.
    async fn webhook_list(&self) -> StoreResult<Vec<WebhookRow>>;

    /// Deletes a subscriber and its deliveries (`NotFound` when absent).
    async fn webhook_delete(&self, id: Uuid) -> StoreResult<()>;

    /// Writes a pending delivery for every event after each subscriber's
    /// cursor that it wants (at most `limit` events read per subscriber),
    /// due at `now`, and moves the cursor; subscribers another process is
    /// fanning out are skipped. Returns how many deliveries were written.
    async fn webhook_fanout(&self, limit: u32, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Leases up to `claim.limit` due pending deliveries (never a pair whose
    /// lease still holds, never one with an earlier pending event of the
    /// same task and subscriber), oldest event first, counting an attempt
    /// each. Concurrent claimers never get the same pair.
    async fn webhook_claim(&self, claim: &DeliveryClaim) -> StoreResult<Vec<ClaimedDelivery>>;

    /// Writes outcomes of claimed pairs (one transaction): delivered, back
    /// to pending at `retry_at`, or dead. Outcomes whose lease token no
    /// longer matches are ignored; returns how many were applied.
    async fn webhook_finish(&self, outcomes: Vec<DeliveryOutcome>) -> StoreResult<u64>;

    /// A subscriber's deliveries, by event id (`NotFound` for an unknown
    /// subscriber).
    async fn webhook_deliveries(&self, query: &DeliveryQuery) -> StoreResult<Vec<DeliveryRow>>;

    /// Makes deliveries pending again with a fresh attempt budget, due at
    /// `now`: the given events' (dead or delivered ones), or every dead one
    /// when `event_ids` is `None`. Returns how many (`NotFound` for an
    /// unknown subscriber).
    async fn webhook_redeliver(
        &self,
        webhook_id: Uuid,
        event_ids: Option<Vec<i64>>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;

    /// Deletes up to `limit` settled deliveries (delivered or dead) whose
    /// event is gone: its id is below the oldest event kept, so
    /// [`Store::events_prune`] took it. Returns how many (one short
    /// statement, each subscriber's settled pairs read in event-id order).
    /// Pending pairs are never deleted: one whose event is gone is
    /// dead-lettered when claimed, and goes with a later pass.
    async fn webhook_deliveries_prune(&self, limit: u32) -> StoreResult<u64>;

    // ---- namespace / template pause (docs/FLOW_CONTROL.md) -----------------

    /// Pauses a namespace or template: the steps of its open tasks (pending,
    /// in progress, error) leave the ready queue, running ones finish, and
    /// tasks created while it is paused start paused. Each task keeps its
    /// own `paused_at`. A paused scope is a [`StoreError::Conflict`].
    async fn flow_pause(
        &self,
        scope: &FlowScope,
        now: DateTime<Utc>,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> StoreResult<FlowPauseRow>;

    /// Resumes a paused namespace or template: its steps are claimable
    /// again, except those of tasks paused by themselves or held by another
    /// pause (the namespace of a resumed template). Returns the pause that
    /// was lifted; a scope that is not paused is a [`StoreError::Conflict`].
    async fn flow_resume(&self, scope: &FlowScope) -> StoreResult<FlowPauseRow>;

    /// Every paused scope, by namespace then name.
    async fn flow_pauses(&self) -> StoreResult<Vec<FlowPauseRow>>;

    // ---- schedules (docs/FLOW_CONTROL.md) -----------------------------

    /// Stores a schedule. A new name gets a new row anchored at `now`
    /// (whole seconds). An existing name is a [`StoreError::Conflict`],
    /// unless `replace`: then its definition and source are replaced and
    /// its id, anchor, pause and last tick kept.
    async fn schedule_save(&self, schedule: NewSchedule, replace: bool)
    -> StoreResult<ScheduleRow>;

    /// The schedule called `name`, if any.
    async fn schedule_get(&self, name: &str) -> StoreResult<Option<ScheduleRow>>;

    /// Every schedule, by name.
    async fn schedule_list(&self) -> StoreResult<Vec<ScheduleRow>>;

    /// Deletes a schedule and its ticks (its tasks stay).
    async fn schedule_delete(&self, id: Uuid) -> StoreResult<()>;

    /// Pauses (`paused_at = now`) or resumes a schedule. Resuming settles
    /// every tick up to `now` (`last_tick_at = now` if later), so ticks
    /// missed while paused never fire. Pausing a paused schedule, or
    /// resuming a running one, is a [`StoreError::Conflict`].
    async fn schedule_set_paused(
        &self,
        id: Uuid,
        paused: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<ScheduleRow>;

    /// Fires a tick: in one transaction, under the schedule's row lock,
    /// records `(schedule_id, scheduled_for)` (a unique key) and creates
    /// its task, and (unless manual) moves `last_tick_at` to it. Returns
    /// `None`, creating nothing, when the tick was fired already, is not
    /// newer than `last_tick_at`, or the schedule is paused (manual ticks
    /// fire while paused). An unknown schedule is `NotFound`.
    async fn schedule_fire(&self, fire: ScheduleFire) -> StoreResult<Option<TaskRow>>;

    /// The newest `limit` ticks of a schedule, newest first.
    async fn schedule_ticks(&self, id: Uuid, limit: u32) -> StoreResult<Vec<TickRow>>;

    /// Connection pool usage, for status pages (None when the backend does
    /// not expose it). Cheap: reads counters, never the database.
    fn pool_stats(&self) -> Option<PoolStats> {
        None
    }
}
