//! # tasker-store-sqlite
//!
//! The embedded SQLite backend of the Tasker [`Store`]: one file, WAL mode,
//! zero set-up (`sqlite://tasker.db`). It implements docs/STORAGE.md with the
//! schema in `migrations/` (UUIDs as 16-byte BLOBs, JSON as TEXT, times as
//! INTEGER microseconds since the Unix epoch) and runs the shared conformance
//! suite of `tasker-store`.
//!
//! ```no_run
//! # async fn demo() -> tasker_store::StoreResult<()> {
//! use tasker_store::Store;
//! let store = tasker_store_sqlite::SqliteStore::connect("sqlite://tasker.db").await?;
//! assert!(store.migrations_applied().await?);
//! # Ok(()) }
//! ```
//!
//! ## Layout
//!
//! | module | what it holds |
//! |---|---|
//! | `codec` | time / UUID / JSON encodings and row decoding |
//! | `error` | `sqlx::Error` → [`StoreError`] |
//! | `tasks` | task create, reads, listing, cancel, retry, update |
//! | `pause` | pause / resume a task |
//! | `steps` | step reads and the manual operations (resolve, cancel, retry, update) |
//! | `work` | the hot path: claim, finish, renew, rescue |
//! | `write_tx` | a write transaction whose `BEGIN IMMEDIATE` travels with its first statement |
//! | `events_outbox` | lifecycle events: read the trigger-written outbox, custom events, pruning |
//! | `webhooks` | webhook subscribers, fan-out, leased delivery claims, dead letters |
//! | `effects` | what a write caused (finished tasks, unblocked children), read back |
//!
//! ## How writes are serialised
//!
//! Every write transaction goes through a dedicated pool of **one** connection
//! and starts with `BEGIN IMMEDIATE`, so it holds SQLite's write lock from its
//! first statement: a transaction never reads under a shared lock and then
//! fails to upgrade it (the `SQLITE_BUSY` upgrade deadlock of deferred
//! transactions), and read-then-write logic inside a transaction is atomic.
//! Reads outside write transactions use a separate pool of reader connections,
//! which WAL lets run concurrently with the writer.
//!
//! ## The schema keeps its own invariants
//!
//! Triggers (`migrations/*_triggers.sql`) append the transition rows of every
//! status change, unblock the children of a step that becomes done, keep the
//! task counters (`steps_remaining`, `steps_live`, `steps_blocked`) and
//! finalise tasks, inside the statement that changed the steps. No code path
//! can forget one, and the hot path is one statement per batch: a claim is
//! one `UPDATE … RETURNING` (task context and parents' results included), a
//! batch of outcomes is one `UPDATE … FROM jsonb_each(…)`. Lists of ids and
//! per-row payloads travel as one JSON parameter read with `json_each`, so
//! every statement is static, cached once, and never hits SQLite's
//! bound-variable limit. Rows given as arrays are read with `jsonb_each`,
//! whose `value` is the row in SQLite's binary JSON: each `value->>n` then
//! reads it in place, where `json_each` would hand over the row as text,
//! to be parsed again for every field (docs/PERFORMANCE.md, "A step's
//! creation is not a transition").
//!
//! Each statement is also a hand-off to the connection's thread and back
//! (sqlx runs SQLite there), which costs more than most of these statements
//! take to run. So a finish is two hand-offs: `BEGIN IMMEDIATE` with the
//! finish statement (`write_tx`), then one query whose statements lease
//! the children on completion, read what the finish caused and `COMMIT`
//! (`work::close_claiming!`). And no `LIMIT` or `OFFSET` is a bare
//! parameter: SQLite would plan such a statement again each time it is
//! bound (`tests/bound_limits.rs`).
//!
//! ## Limits
//!
//! - **One writer.** All writes of all processes on the file are serialised.
//!   Inside one process they queue on the writer connection; other processes
//!   wait on SQLite's lock for up to the busy timeout (5 s by default), then
//!   the call fails with [`StoreError::Unavailable`](tasker_store::StoreError).
//!   Throughput is bounded by one core doing the writing.
//! - **Events stay in the process.** [`Store::subscribe`] only sees commits
//!   made through this `SqliteStore`. Engines in other processes sharing the
//!   file must poll (the engine's poll interval and `step_next_ready_at`).
//! - **Durability.** The default `synchronous=NORMAL` in WAL mode never
//!   corrupts the database, but a power loss or OS crash can roll back the
//!   last transactions committed before it (a process crash loses nothing).
//!   Set [`SqliteOptions::synchronous_full`] to fsync every commit, at a large
//!   cost in commit rate.
//! - **One machine.** WAL needs shared memory: the file must not live on a
//!   network file system.
//! - **Status pages scan.** [`Store::stats`] counts steps by state over the
//!   whole `steps` table (no index on status: it would cost every write); the
//!   hot path never scans history.
//! - **Per-task limits** rank the first `4 × limit + 64` ready steps, and the
//!   whole ready frontier only when those do not fill the claim.
//! - `sqlite::memory:` is a private database of one connection, for tests.

mod analytics;
mod annotations;
mod attribution;
mod codec;
#[macro_use]
mod effects;
mod error;
mod events_outbox;
mod explain;
mod flow;
mod flow_pause;
mod flow_prune;
mod keys;
mod pause;
mod restart;
mod retention;
mod schedules;
mod steps;
mod synthetic;
mod tasks;
mod webhooks;
mod work;
mod write_tx;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use effects::Events;
use error::DbResultExt;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tasker_core::StepCounts;
use tasker_store::{
    AnnotationRow, ApiKeyRow, Backend, ClaimParams, ClaimedStep, EventQuery, EventRow,
    FinishReport, LeaseRef, NewAnnotation, NewApiKey, NewCustomEvent, NewTask, Page, StepOutcome,
    StepRow, StepUpdate, Store, StoreError, StoreEvent, StoreResult, StoreStats, TaskQuery,
    TaskRow, TaskUpdate, TransitionRow,
};
use tasker_store::{
    ClaimedDelivery, DeliveryClaim, DeliveryOutcome, DeliveryQuery, DeliveryRow, NewWebhook,
    WebhookRow,
};
use tokio::sync::broadcast;
use uuid::Uuid;

/// The embedded migrations (`crates/store-sqlite/migrations/`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Capacity of the event channel; a receiver that falls further behind sees
/// `Lagged`, which the engine treats as "something happened".
const EVENT_CAPACITY: usize = 1024;

/// Connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// `synchronous=FULL` (fsync on every commit) instead of `NORMAL`.
    pub synchronous_full: bool,
    /// Reader connections (the writer is always one more, dedicated).
    pub max_connections: u32,
    /// How long to wait for another process's write lock before failing.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous_full: false,
            max_connections: 4,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// Rows a statement may hand over before SQLite's thread waits for the
/// caller to take them: more than any claim or finish returns (their
/// batches are at most a few hundred steps).
const ROW_CHANNEL: usize = 4096;

/// The SQLite store. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// One connection: every write transaction goes through it.
    writer: SqlitePool,
    /// Connections for reads outside write transactions (the writer pool
    /// itself for in-memory databases).
    reader: SqlitePool,
    events: broadcast::Sender<StoreEvent>,
    /// Whether a claim first picks and leases in one statement (`work`'s
    /// `BEGIN_CLAIM`); off while the oldest ready steps include ones with a
    /// concurrency key or a rate limit, which only the claim of several
    /// statements admits.
    one_statement_claim: Arc<AtomicBool>,
    /// Whether the last claim leased a step: the next one then skips the
    /// probe for ready work on a reader.
    claim_found_work: Arc<AtomicBool>,
}

impl SqliteStore {
    /// Opens (creating it if missing) and migrates a database with the default
    /// [`SqliteOptions`]. Accepts `sqlite://path`, `sqlite:path`, a plain path,
    /// and `sqlite::memory:`.
    pub async fn connect(url_or_path: &str) -> StoreResult<SqliteStore> {
        Self::connect_with(url_or_path, SqliteOptions::default()).await
    }

    /// Opens (creating it if missing) and migrates a database.
    pub async fn connect_with(
        url_or_path: &str,
        options: SqliteOptions,
    ) -> StoreResult<SqliteStore> {
        let base = if url_or_path.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url_or_path).map_err(|e| {
                StoreError::Unavailable(format!("invalid SQLite URL `{url_or_path}`: {e}"))
            })?
        } else {
            SqliteConnectOptions::new().filename(url_or_path)
        };
        let in_memory = url_or_path.contains(":memory:") || url_or_path.contains("mode=memory");
        let base = base
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout)
            .synchronous(if options.synchronous_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            // Temporary b-trees (sorts, IN lists) stay in memory.
            .pragma("temp_store", "memory")
            // ~16 MiB page cache per connection.
            .pragma("cache_size", "-16000")
            // Truncate the WAL back to 64 MiB after checkpoints, so a burst
            // does not leave a huge file behind.
            .pragma("journal_size_limit", "67108864")
            .statement_cache_capacity(256)
            // sqlx hands rows from SQLite's thread to the caller through a
            // channel of 50 by default: a claim or a finish of a few hundred
            // steps stopped SQLite's thread at every 50th row until the
            // caller's task woke and drained them (docs/PERFORMANCE.md,
            // "SQLite: a claim in two hops, rows that do not wait").
            .row_buffer_size(ROW_CHANNEL);
        let conn_opts = if in_memory {
            base
        } else {
            base.journal_mode(SqliteJournalMode::Wal)
        };

        // The connections are local: a liveness test before each acquire would
        // only add a round trip, and idle connections are worth keeping (their
        // statement caches are warm).
        let pool_opts = |max: u32| {
            SqlitePoolOptions::new()
                .max_connections(max)
                .min_connections(if in_memory { max } else { 0 })
                .test_before_acquire(false)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(Duration::from_secs(30))
        };

        let writer = pool_opts(1)
            .connect_with(conn_opts.clone())
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open `{url_or_path}`: {e}")))?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| StoreError::Internal(format!("migrating `{url_or_path}`: {e}")))?;
        // An in-memory database exists only inside its one connection, so it
        // reads through the writer.
        let reader = if in_memory {
            writer.clone()
        } else {
            pool_opts(options.max_connections.max(1))
                .connect_with(conn_opts)
                .await
                .map_err(|e| StoreError::Unavailable(format!("cannot open `{url_or_path}`: {e}")))?
        };
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Ok(SqliteStore {
            writer,
            reader,
            events,
            one_statement_claim: Arc::new(AtomicBool::new(true)),
            claim_found_work: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Closes both pools, waiting for running statements.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    /// Begins a write transaction on the writer connection, holding the write
    /// lock from the start (see the crate docs).
    pub(crate) async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.db()
    }

    /// Announces a committed write. Sending fails only when nobody listens.
    pub(crate) fn emit(&self, events: Events) {
        if events.work_available {
            let _ = self.events.send(StoreEvent::WorkAvailable);
        }
        for id in events.changed {
            let _ = self.events.send(StoreEvent::TaskChanged(id));
        }
        for id in events.finished {
            let _ = self.events.send(StoreEvent::TaskFinished(id));
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }

    fn pool_stats(&self) -> Option<tasker_store::PoolStats> {
        // The reader pool: the writer is one dedicated connection.
        Some(tasker_store::PoolStats {
            size: self.reader.size(),
            idle: u32::try_from(self.reader.num_idle()).unwrap_or(u32::MAX),
            max: self.reader.options().get_max_connections(),
        })
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await.db()?;
        Ok(())
    }

    async fn migrations_applied(&self) -> StoreResult<bool> {
        let exists: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&self.reader)
        .await
        .db()?;
        if exists == 0 {
            return Ok(false);
        }
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1")
                .fetch_all(&self.reader)
                .await
                .db()?;
        Ok(MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .all(|m| applied.contains(&m.version)))
    }

    async fn task_create(&self, task: NewTask) -> StoreResult<TaskRow> {
        tasks::create(self, task).await
    }

    async fn task_create_many(&self, tasks: Vec<NewTask>) -> StoreResult<Vec<Uuid>> {
        tasks::create_many(self, tasks).await
    }

    async fn task_get(&self, id: Uuid) -> StoreResult<TaskRow> {
        tasks::get(&self.reader, id).await
    }

    async fn task_list(&self, query: &TaskQuery) -> StoreResult<Page<TaskRow>> {
        tasks::list(&self.reader, query).await
    }

    async fn task_step_counts(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<StepCounts> {
        tasks::step_counts(&self.reader, id, now).await
    }

    async fn task_update(
        &self,
        id: Uuid,
        update: TaskUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<TaskRow> {
        tasks::update(self, id, update, now).await
    }

    async fn task_cancel(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> StoreResult<TaskRow> {
        tasks::cancel(self, id, now, by).await
    }

    async fn task_retry(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> StoreResult<TaskRow> {
        tasks::retry(self, id, now, by).await
    }

    async fn task_pause(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> StoreResult<TaskRow> {
        pause::set_paused(self, id, true, now, by).await
    }

    async fn task_restart(
        &self,
        id: Uuid,
        step_id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> StoreResult<TaskRow> {
        restart::restart(self, id, step_id, now, by, reason).await
    }

    async fn task_resume(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> StoreResult<TaskRow> {
        pause::set_paused(self, id, false, now, by).await
    }

    async fn task_transitions(&self, id: Uuid) -> StoreResult<Vec<TransitionRow>> {
        tasks::transitions(&self.reader, id).await
    }

    async fn annotation_create(&self, annotation: NewAnnotation) -> StoreResult<AnnotationRow> {
        annotations::create(self, annotation).await
    }

    async fn annotation_list_many(
        &self,
        task_ids: &[Uuid],
    ) -> StoreResult<std::collections::HashMap<Uuid, Vec<AnnotationRow>>> {
        annotations::list_many(&self.reader, task_ids).await
    }

    async fn step_list(&self, task_id: Uuid) -> StoreResult<Vec<StepRow>> {
        steps::list(&self.reader, task_id).await
    }

    async fn step_list_many(
        &self,
        task_ids: &[Uuid],
    ) -> StoreResult<std::collections::HashMap<Uuid, Vec<StepRow>>> {
        steps::list_many(&self.reader, task_ids).await
    }

    async fn step_get(&self, id: Uuid) -> StoreResult<StepRow> {
        steps::get(&self.reader, id).await
    }

    async fn step_transitions(&self, id: Uuid) -> StoreResult<Vec<TransitionRow>> {
        steps::transitions(&self.reader, id).await
    }

    async fn step_update(
        &self,
        id: Uuid,
        update: StepUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<StepRow> {
        steps::update(self, id, update, now).await
    }

    async fn step_resolve(
        &self,
        id: Uuid,
        results: serde_json::Value,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> StoreResult<StepRow> {
        steps::resolve(self, id, results, now, by).await
    }

    async fn step_cancel(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> StoreResult<StepRow> {
        steps::cancel(self, id, now, by).await
    }

    async fn step_retry(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> StoreResult<StepRow> {
        steps::retry(self, id, now, by).await
    }

    async fn step_claim(&self, claim: &ClaimParams) -> StoreResult<Vec<ClaimedStep>> {
        work::claim(self, claim).await
    }

    async fn step_finish_and_claim(
        &self,
        outcomes: &[StepOutcome],
        now: DateTime<Utc>,
        claim: Option<&ClaimParams>,
    ) -> StoreResult<FinishReport> {
        tasker_store::storable::check_outcomes(outcomes)?;
        work::finish_many(self, outcomes, now, claim).await
    }

    async fn step_lease_renew(
        &self,
        leases: &[LeaseRef],
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>> {
        work::renew(self, leases, until, now).await
    }

    async fn step_rescue_expired(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
        work::rescue_expired(self, now, limit).await
    }

    async fn step_next_ready_at(&self) -> StoreResult<Option<DateTime<Utc>>> {
        work::next_ready_at(&self.reader).await
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        tasks::stats(&self.reader).await
    }

    async fn stats_since(&self, since: DateTime<Utc>) -> StoreResult<StoreStats> {
        tasks::stats_since(&self.reader, since).await
    }

    async fn queue_depth(
        &self,
        now: DateTime<Utc>,
        cap: u32,
    ) -> StoreResult<tasker_store::QueueDepth> {
        analytics::queue_depth(&self.reader, now, cap).await
    }

    async fn history_sample(
        &self,
        query: &tasker_store::HistoryQuery,
    ) -> StoreResult<Vec<tasker_store::HistoryStep>> {
        analytics::history_sample(&self.reader, query).await
    }

    async fn has_open_tasks(&self) -> StoreResult<bool> {
        tasks::has_open_tasks(&self.reader).await
    }

    async fn prune_candidates(&self, q: &tasker_store::PruneQuery) -> StoreResult<Vec<Uuid>> {
        retention::candidates(&self.reader, q).await
    }

    async fn prune_count(&self, q: &tasker_store::PruneQuery) -> StoreResult<u64> {
        retention::count(&self.reader, q).await
    }

    async fn tasks_prune(
        &self,
        ids: &[Uuid],
        finished_before: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>> {
        retention::delete(self, ids, finished_before).await
    }

    async fn flow_prune(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<tasker_store::flow::FlowPruned> {
        flow_prune::prune(self, before, limit).await
    }

    async fn storage_health(&self) -> StoreResult<tasker_store::StorageHealth> {
        retention::health(&self.reader).await
    }

    async fn maintenance(&self) -> StoreResult<Vec<tasker_store::MaintenanceRun>> {
        retention::upkeep(self).await
    }

    async fn api_key_create(&self, key: NewApiKey) -> StoreResult<ApiKeyRow> {
        keys::create(self, key).await
    }

    async fn api_key_get(&self, id: Uuid) -> StoreResult<ApiKeyRow> {
        keys::get(self, id).await
    }

    async fn api_key_list(&self) -> StoreResult<Vec<ApiKeyRow>> {
        keys::list(self).await
    }

    async fn api_key_revoke(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<ApiKeyRow> {
        keys::revoke(self, id, now).await
    }

    async fn events_list(&self, query: &EventQuery) -> StoreResult<Vec<EventRow>> {
        events_outbox::list(self, query).await
    }

    async fn events_list_many(
        &self,
        task_ids: &[Uuid],
        query: &EventQuery,
    ) -> StoreResult<std::collections::HashMap<Uuid, Vec<EventRow>>> {
        events_outbox::list_many(self, task_ids, query).await
    }

    async fn events_last_id(&self) -> StoreResult<i64> {
        events_outbox::last_id(self).await
    }

    async fn event_emit(&self, event: NewCustomEvent) -> StoreResult<()> {
        events_outbox::emit(self, event).await
    }

    async fn events_prune(&self, before: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
        events_outbox::prune(self, before, limit).await
    }

    async fn webhook_create(&self, hook: NewWebhook) -> StoreResult<WebhookRow> {
        webhooks::create(self, hook).await
    }

    async fn webhook_sync_config(&self, hooks: Vec<NewWebhook>) -> StoreResult<()> {
        webhooks::sync_config(self, hooks).await
    }

    async fn webhook_get(&self, id: Uuid) -> StoreResult<WebhookRow> {
        webhooks::get(self, id).await
    }

    async fn webhook_list(&self) -> StoreResult<Vec<WebhookRow>> {
        webhooks::list(self).await
    }

    async fn webhook_delete(&self, id: Uuid) -> StoreResult<()> {
        webhooks::delete(self, id).await
    }

    async fn webhook_fanout(&self, limit: u32, now: DateTime<Utc>) -> StoreResult<u64> {
        webhooks::fanout(self, limit, now).await
    }

    async fn webhook_claim(&self, claim: &DeliveryClaim) -> StoreResult<Vec<ClaimedDelivery>> {
        webhooks::claim(self, claim).await
    }

    async fn webhook_finish(&self, outcomes: Vec<DeliveryOutcome>) -> StoreResult<u64> {
        webhooks::finish(self, outcomes).await
    }

    async fn webhook_deliveries(&self, query: &DeliveryQuery) -> StoreResult<Vec<DeliveryRow>> {
        webhooks::deliveries(self, query).await
    }

    async fn webhook_redeliver(
        &self,
        webhook_id: Uuid,
        event_ids: Option<Vec<i64>>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        webhooks::redeliver(self, webhook_id, event_ids, now).await
    }

    async fn webhook_deliveries_prune(&self, limit: u32) -> StoreResult<u64> {
        webhooks::prune(self, limit).await
    }

    async fn flow_pause(
        &self,
        scope: &tasker_store::FlowScope,
        now: DateTime<Utc>,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> StoreResult<tasker_store::FlowPauseRow> {
        flow_pause::pause(self, scope, now, by, reason).await
    }

    async fn flow_resume(
        &self,
        scope: &tasker_store::FlowScope,
    ) -> StoreResult<tasker_store::FlowPauseRow> {
        flow_pause::resume(self, scope).await
    }

    async fn flow_pauses(&self) -> StoreResult<Vec<tasker_store::FlowPauseRow>> {
        flow_pause::list(self).await
    }

    async fn schedule_save(
        &self,
        schedule: tasker_store::NewSchedule,
        replace: bool,
    ) -> StoreResult<tasker_store::ScheduleRow> {
        schedules::save(self, schedule, replace).await
    }

    async fn schedule_get(&self, name: &str) -> StoreResult<Option<tasker_store::ScheduleRow>> {
        schedules::get(self, name).await
    }

    async fn schedule_list(&self) -> StoreResult<Vec<tasker_store::ScheduleRow>> {
        schedules::list(self).await
    }

    async fn schedule_delete(&self, id: Uuid) -> StoreResult<()> {
        schedules::delete(self, id).await
    }

    async fn schedule_set_paused(
        &self,
        id: Uuid,
        paused: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<tasker_store::ScheduleRow> {
        schedules::set_paused(self, id, paused, now).await
    }

    async fn schedule_fire(
        &self,
        fire: tasker_store::ScheduleFire,
    ) -> StoreResult<Option<TaskRow>> {
        schedules::fire(self, fire).await
    }

    async fn schedule_ticks(
        &self,
        id: Uuid,
        limit: u32,
    ) -> StoreResult<Vec<tasker_store::TickRow>> {
        schedules::ticks(self, id, limit).await
    }
}
