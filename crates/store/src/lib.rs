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
//! | [`pause`] | pause / resume rules both backends apply |
//! | [`analytics`] | the ready queue's depth and bounded samples of history |
//! | [`outbox`] | lifecycle events: [`EventRow`], the catalog, custom names |
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
pub mod outbox;
pub mod params;
pub mod pause;
pub mod rows;
pub mod storable;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use analytics::{HistoryQuery, HistoryStep, QueueDepth};
pub use error::{StoreError, StoreResult};
pub use events::StoreEvent;
pub use outbox::{EventQuery, EventRow, NewCustomEvent};
pub use params::*;
pub use rows::*;

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

    // ---- maintenance -------------------------------------------------------

    /// The state of the database's upkeep: whether it vacuums by itself and
    /// whether the ready-steps index has bloated (dead entries the hot path
    /// walks over); a warning per problem.
    async fn storage_health(&self) -> StoreResult<StorageHealth>;

    /// Runs the database's upkeep on Tasker's tables, for setups where the
    /// server does not (PostgreSQL without autovacuum: `VACUUM (ANALYZE)`
    /// per table; SQLite: a WAL checkpoint). Safe while the engine runs.
    async fn maintenance(&self) -> StoreResult<Vec<MaintenanceRun>>;

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
    /// deleted (on SQLite it keeps ids from being handed out twice).
    async fn events_prune(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64>;

    /// Connection pool usage, for status pages (None when the backend does
    /// not expose it). Cheap: reads counters, never the database.
    fn pool_stats(&self) -> Option<PoolStats> {
        None
    }
}
