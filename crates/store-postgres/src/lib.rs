//! # tasker-store-postgres
//!
//! The PostgreSQL backend of the Tasker [`Store`]: many engine processes on
//! many machines share one database. Semantics are those of
//! `docs/STORAGE.md`; this page explains how PostgreSQL delivers them.
//!
//! ## Layout
//!
//! | module | what it holds |
//! |---|---|
//! | `lib.rs` | [`PgStore`], [`PgOptions`], connection, migrations, the [`Store`] impl |
//! | [`clock`] | whose clock stamps leases, rescues and transitions ([`PgClock`]: the database's) |
//! | `create` | task creation (batched `UNNEST` inserts, identity locks) |
//! | `flow` | concurrency keys and rate limits: the claim's gate, key release |
//! | `work` | the hot path: claim, finish, renew, rescue |
//! | `admin` | operator actions: cancel, retry, resolve, edits |
//! | `pause` | pause / resume a task |
//! | `read` | lookups, listings, counts |
//! | `settle` | task counters and the finaliser, shared by every write |
//! | `events` | NOTIFY, the listener, in-process broadcast |
//! | `events_outbox` | lifecycle events: the id sequencer, reading, custom events, pruning |
//! | `partitions` | monthly partitions of the history tables: created ahead, dropped by retention |
//! | `webhooks` | webhook subscribers, fan-out, `SKIP LOCKED` delivery leases, dead letters |
//! | `error` | `sqlx::Error` → [`StoreError`], transaction retries |
//! | `tx` | ending a transaction: commit, or roll back before returning the error |
//! | `explain` | the plans of the hot path ([`PgStore::explain_hot_path`]) |
//!
//! Requires PostgreSQL 13 or later (`gen_random_uuid()`,
//! `hashtextextended`). The schema (`migrations/`) uses `uuid`, `jsonb`,
//! `timestamptz` and `bigint` identity columns. Claiming uses the partial index
//! `steps (ready_at, id) WHERE ready_at IS NOT NULL`, which holds only the
//! frontier of claimable work; the rescuer uses
//! `steps (lease_expires_at) WHERE status = 'in_progress'`. Transition tables
//! are only appended to on the hot path, never read.
//!
//! ## The claim statement
//!
//! ```sql
//! WITH pick AS (
//!     SELECT s.id, s.ready_at FROM steps s
//!     WHERE s.ready_at <= $now [AND kind / namespace filters]
//!     ORDER BY s.ready_at, s.id
//!     LIMIT $n
//!     FOR NO KEY UPDATE SKIP LOCKED
//! ), claimed AS (
//!     UPDATE steps s SET status = 'in_progress', ready_at = NULL,
//!            attempts = s.attempts + 1, lease_token = gen_random_uuid(), …
//!     WHERE s.id = ANY (ARRAY(SELECT id FROM pick))      -- = FROM pick WHERE s.id = pick.id
//!     RETURNING …
//! ), step transitions, tasks pending → in_progress (locked in id order), task transitions
//! SELECT claimed steps, their tasks' context, and the parents' results
//!        (one jsonb_object_agg per step over step_edges ⋈ steps)
//! ```
//!
//! Why it is correct:
//! - the lock is taken **on the base table rows** in the same statement that
//!   updates them, so there is no read-then-write window;
//! - `SKIP LOCKED` makes concurrent claimers pass over each other's rows
//!   instead of queueing behind them; the rows a claimer locks are exactly
//!   the rows it updates;
//! - in READ COMMITTED, when a row was changed by a transaction that
//!   committed after the statement's snapshot, PostgreSQL re-checks the
//!   `WHERE` on the newest version before locking it (EvalPlanQual): a step
//!   another process claimed a moment ago has `ready_at = NULL` and is
//!   skipped, and such rows do not count toward `LIMIT` (the `LockRows` node
//!   sits below `Limit`);
//! - `(ready_at, id)` is the index order, so the scan stops after `n`
//!   lockable rows whatever the size of the history;
//! - `FOR NO KEY UPDATE` is the lock an `UPDATE` of non-key columns takes
//!   anyway; it does not conflict with the `KEY SHARE` locks that foreign-key
//!   checks of concurrent transition inserts take.
//!
//! The statement is a complete claim on its own, so it runs in autocommit:
//! one round trip, no `BEGIN`/`COMMIT`; if it fails, nothing was claimed.
//!
//! Plans: each combination of filters has its own statement text (an absent
//! filter is not in the SQL, rather than `($n IS NULL OR …)`, which the
//! planner cannot estimate), and every other table is reached by primary key
//! (`id = ANY (ARRAY(…))`, `LATERAL … OFFSET 0`) so that neither a custom
//! plan nor a generic one (where `LIMIT $n` is a guess) can turn into a scan.
//! [`PgStore::explain_hot_path`] prints both kinds for every hot statement;
//! the tests check them against a large history.
//!
//! With a per-task limit, window functions cannot share a `SELECT` level with
//! `FOR UPDATE`, so the candidates are locked in one CTE (tasks already at
//! their limit are filtered out in the scan, through the small partial index
//! `steps (task_id) WHERE status = 'in_progress'`), ranked per task in a
//! second, and cut to `limit - running(task)` in a third. The candidate
//! window is `4 × limit + 64` rows; when it was full but the per-task cut
//! left the batch short, up to three more statements of the same
//! transaction look further (each sees the previous ones' claims, so their
//! tasks count as running). Candidates locked but not taken are released at
//! commit. Running
//! counts come from the statement's snapshot, so two claimers racing on the
//! same task may exceed the limit briefly; the limit is a fairness device,
//! not a mutual exclusion.
//!
//! ## Round trips per operation
//!
//! | operation | statements |
//! |---|---|
//! | claim | 1, autocommit (per-task limit: `BEGIN`, 1–4, `COMMIT`) |
//! | finish N outcomes | `BEGIN`; steps + their transitions; children of the successes; lock tasks; write tasks + transitions + NOTIFY; `COMMIT` |
//! | create M tasks | `BEGIN`; (advisory locks + duplicate check); one insert of tasks, steps, edges and transitions; NOTIFY; `COMMIT` |
//! | renew N leases | 1, autocommit |
//! | rescue | `BEGIN`; steps + transitions; lock tasks; write tasks (+ NOTIFY); `COMMIT` |
//!
//! Every batch travels as arrays expanded with `UNNEST`, so the count does
//! not grow with N: a child with two parents finishing in the same batch is
//! decremented by two in one `UPDATE … FROM (SELECT child_id, count(*) …
//! GROUP BY child_id)`.
//!
//! Finishing, rescuing and the operator actions lock step rows first (in id
//! order) and task rows last (in id order); see `settle` for why the
//! finaliser is race-free. Transactions aborted with `40001` or `40P01` are
//! run again a few times.
//!
//! ## Events and the listener
//!
//! After each commit the store broadcasts [`StoreEvent`]s in-process (tokio
//! broadcast, capacity 1024). For other processes, the same transaction
//! queues `pg_notify('tasker_work', <instance id>)` when steps became
//! claimable now (create, unblocked children, immediate retry, rescue, task
//! or step retry), once per transaction, and
//! `pg_notify('tasker_task', '<task_id>:finished')` when tasks reached a
//! final state. A background task holds a `PgListener` on both channels and
//! re-broadcasts what it receives, so an idle engine in another process
//! wakes within milliseconds. It skips work notifications carrying its own
//! instance id (already broadcast locally), announces a reconnect as
//! `WorkAvailable` (notifications may have been missed), and rebuilds the
//! listener with a capped backoff after errors such as an administrator
//! terminating the session. The listener stops when the last clone of the
//! [`PgStore`] is dropped.

mod admin;
mod analytics;
mod annotations;
pub mod clock;
mod create;
mod decode;
mod error;
mod events;
mod events_outbox;
mod explain;
mod finish;
mod finish_batch;
mod flow;
mod flow_pause;
mod flow_prune;
mod keys;
mod partitions;
mod pause;
mod pool;
mod read;
mod restart;
mod retention;
mod schedules;
mod settle;
mod statistics;
mod synthetic;
mod tx;
mod webhooks;
mod webhooks_plan;
mod work;

pub mod testing;

pub use clock::PgClock;
pub use events::{TASK_CHANNEL, WORK_CHANNEL};
pub use explain::PlanKind;
pub use pool::PING_AFTER_IDLE;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use error::{store_err, with_retry};
use events::Emit;
use sqlx::postgres::{PgConnectOptions, PgPool};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tasker_core::StepCounts;
use tasker_store::{
    AnnotationRow, ApiKeyRow, Backend, ClaimParams, ClaimedStep, EventQuery, EventRow,
    FinishReport, LeaseRef, NewAnnotation, NewApiKey, NewCustomEvent, NewTask, Page, PruneQuery,
    StepOutcome, StepRow, StepUpdate, Store, StoreError, StoreEvent, StoreResult, StoreStats,
    TaskQuery, TaskRow, TaskUpdate, TransitionRow,
};
use tasker_store::{
    ClaimedDelivery, DeliveryClaim, DeliveryOutcome, DeliveryQuery, DeliveryRow, NewWebhook,
    WebhookRow,
};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The embedded migrations (`crates/store-postgres/migrations/`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Capacity of the in-process event channel.
const EVENT_CAPACITY: usize = 1024;

/// Connection settings.
///
/// Besides the pool, each [`PgStore`] holds one dedicated connection for
/// `LISTEN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// Pool size (connections held at most). Default 10.
    pub max_connections: u32,
    /// Connections kept open while idle. Default 0.
    pub min_connections: u32,
    /// How long an operation waits for a pooled connection before failing
    /// with [`StoreError::Unavailable`]. Default 10 s.
    pub acquire_timeout: Duration,
    /// Apply the embedded migrations while connecting (sqlx serialises
    /// concurrent migrators with an advisory lock). Default true.
    pub run_migrations: bool,
    /// Whose clock stamps leases, rescues and transitions (see [`clock`]).
    /// Default [`PgClock::Database`].
    pub clock: PgClock,
    /// Also announce every task whose steps changed to other processes
    /// (`<task_id>:changed` on `tasker_task`), so their `TaskChanged` events
    /// (GraphQL subscriptions, the analysis cache) see this process's
    /// commits. Off by default: each step-changing commit then sends a
    /// NOTIFY, which serialises commits (see `events`). Default false.
    pub announce_changes: bool,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(10),
            run_migrations: true,
            clock: PgClock::Database,
            announce_changes: false,
        }
    }
}

/// A [`Store`] on PostgreSQL. Cheap to clone (shares one pool and listener).
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    events: broadcast::Sender<StoreEvent>,
    /// This instance's id (the payload of its `tasker_work` notifications)
    /// and what its notifications announce.
    origin: events::Origin,
    listener: JoinHandle<()>,
    /// The database clock, with [`PgClock::Database`].
    db_clock: Option<Arc<clock::DbClock>>,
    /// Whether finish statements may run on their own (`finish.rs`).
    finish_alone: finish_batch::FinishAlone,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("origin", &self.inner.origin.id)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects with [`PgOptions::default`] (migrations applied).
    pub async fn connect(url: &str) -> StoreResult<PgStore> {
        Self::connect_with(url, PgOptions::default()).await
    }

    /// Connects, optionally migrates, and starts the notification listener.
    /// Must be called inside a tokio runtime.
    pub async fn connect_with(url: &str, options: PgOptions) -> StoreResult<PgStore> {
        let mut connect_options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("invalid PostgreSQL URL: {e}")))?;
        if connect_options.get_application_name().is_none() {
            connect_options = connect_options.application_name("tasker");
        }
        let pool = pool::options(&options)
            .connect_with(connect_options)
            .await
            .map_err(store_err)?;
        if options.run_migrations {
            MIGRATOR
                .run(&pool)
                .await
                .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))?;
        }
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let origin = Uuid::new_v4().simple().to_string();
        // LISTEN before returning, so that no notification sent after
        // `connect` returns can be missed.
        let listener = events::listen(url).await.map_err(store_err)?;
        let listener = tokio::spawn(events::relay(
            listener,
            url.to_string(),
            origin.clone(),
            events.clone(),
        ));
        let db_clock = match options.clock {
            PgClock::Caller => None,
            PgClock::Database => {
                let c = Arc::new(clock::DbClock::sample(&pool).await.map_err(store_err)?);
                tokio::spawn(clock::DbClock::keep_fresh(Arc::downgrade(&c), pool.clone()));
                Some(c)
            }
        };
        Ok(PgStore {
            inner: Arc::new(Inner {
                pool,
                events,
                origin: events::Origin {
                    id: origin,
                    announce_changes: options.announce_changes,
                },
                listener,
                db_clock,
                finish_alone: finish_batch::FinishAlone::default(),
            }),
        })
    }

    /// Applies the embedded migrations (idempotent; concurrent callers are
    /// serialised by sqlx's advisory lock).
    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR
            .run(&self.inner.pool)
            .await
            .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))
    }

    /// The connection pool (diagnostics, tests, `EXPLAIN`).
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Stops the listener and closes the pool (waits for checked-out
    /// connections to come back). Every clone of this store is closed.
    pub async fn close(&self) {
        self.inner.listener.abort();
        self.inner.pool.close().await;
    }

    /// Rebases a caller's times onto this store's clock (see [`clock`]).
    fn rebase(&self, caller_now: DateTime<Utc>) -> clock::Rebase {
        clock::Rebase::new(self.inner.db_clock.as_ref(), caller_now)
    }

    fn origin(&self) -> &events::Origin {
        &self.inner.origin
    }

    /// Broadcasts a committed transaction's events and returns its value.
    ///
    /// With `announce_changes`, a transaction that could not queue its
    /// NOTIFY before commit (a claim runs in autocommit; a step edit has no
    /// settle step) announces its changed tasks right after, off the
    /// caller's path: events are hints, so a NOTIFY just after the commit
    /// is as good as one at it.
    fn deliver<T>(&self, r: StoreResult<(T, Emit)>) -> StoreResult<T> {
        let (v, emit) = r?;
        let origin = &self.inner.origin;
        if origin.announce_changes && !emit.notified && !emit.changed.is_empty() {
            let payloads = emit.task_payloads(origin);
            let pool = self.inner.pool.clone();
            tokio::spawn(async move {
                let sent = sqlx::query(
                    "SELECT count(pg_notify('tasker_task', p)) FROM UNNEST($1::text[]) AS p",
                )
                .bind(payloads)
                .execute(&pool)
                .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e, "cannot announce changed tasks");
                }
            });
        }
        emit.broadcast(&self.inner.events);
        Ok(v)
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.inner.events.subscribe()
    }

    fn pool_stats(&self) -> Option<tasker_store::PoolStats> {
        let pool = &self.inner.pool;
        Some(tasker_store::PoolStats {
            size: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        })
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.inner.pool)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn migrations_applied(&self) -> StoreResult<bool> {
        self.read_migrations_applied().await
    }

    async fn task_create(&self, mut task: NewTask) -> StoreResult<TaskRow> {
        rebase_task(&self.rebase(task.now), &mut task);
        let tasks = std::slice::from_ref(&task);
        let rows = self.deliver(with_retry!("task_create", self.create_once(tasks)))?;
        rows.into_iter()
            .next()
            .ok_or_else(|| StoreError::Internal("task insert returned no row".into()))
    }

    async fn task_create_many(&self, mut tasks: Vec<NewTask>) -> StoreResult<Vec<Uuid>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        for t in &mut tasks {
            rebase_task(&self.rebase(t.now), t);
        }
        let rows = self.deliver(with_retry!("task_create_many", self.create_once(&tasks)))?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    async fn task_get(&self, id: Uuid) -> StoreResult<TaskRow> {
        self.read_task(id).await
    }

    async fn task_list(&self, query: &TaskQuery) -> StoreResult<Page<TaskRow>> {
        self.read_task_list(query).await
    }

    async fn task_step_counts(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<StepCounts> {
        self.read_step_counts(id, self.rebase(now).now).await
    }

    async fn task_update(
        &self,
        id: Uuid,
        update: TaskUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<TaskRow> {
        let now = self.rebase(now).now;
        self.deliver(with_retry!(
            "task_update",
            self.task_update_once(id, &update, now)
        ))
    }

    async fn task_cancel(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> StoreResult<TaskRow> {
        let now = self.rebase(now).now;
        self.deliver(with_retry!(
            "task_cancel",
            self.task_cancel_once(id, now, by)
        ))
    }

    async fn task_retry(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> StoreResult<TaskRow> {
        let now = self.rebase(now).now;
        self.deliver(with_retry!("task_retry", self.task_retry_once(id, now, by)))
    }

    async fn task_pause(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> StoreResult<TaskRow> {
        let now = self.rebase(now).now;
        self.deliver(with_retry!(
            "task_pause",
            self.task_set_paused_once(id, true, now, by)
        ))
    }

    async fn task_restart(
        &self,
        id: Uuid,
        step_id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> StoreResult<TaskRow> {
        let now = self.rebase(now).now;
        self.deliver(with_retry!(
            "task_restart",
            self.task_restart_once(id, step_id, now, by, reason)
        ))
    }

    async fn task_resume(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> StoreResult<TaskRow> {
        let now = self.rebase(now).now;
        self.deliver(with_retry!(
            "task_resume",
            self.task_set_paused_once(id, false, now, by)
        ))
    }

    async fn task_transitions(&self, id: Uuid) -> StoreResult<Vec<TransitionRow>> {
        self.read_transitions(read::Entity::Task, id).await
    }

    async fn annotation_create(&self, annotation: NewAnnotation) -> StoreResult<AnnotationRow> {
        self.annotation_insert(annotation).await
    }

    async fn annotation_list_many(
        &self,
        task_ids: &[Uuid],
    ) -> StoreResult<std::collections::HashMap<Uuid, Vec<AnnotationRow>>> {
        self.annotation_read_many(task_ids).await
    }

    async fn step_list(&self, task_id: Uuid) -> StoreResult<Vec<StepRow>> {
        self.read_step_list(task_id).await
    }

    async fn step_list_many(
        &self,
        task_ids: &[Uuid],
    ) -> StoreResult<std::collections::HashMap<Uuid, Vec<StepRow>>> {
        self.read_step_list_many(task_ids).await
    }

    async fn step_get(&self, id: Uuid) -> StoreResult<StepRow> {
        self.read_step(id).await
    }

    async fn step_transitions(&self, id: Uuid) -> StoreResult<Vec<TransitionRow>> {
        self.read_transitions(read::Entity::Step, id).await
    }

    async fn step_update(
        &self,
        id: Uuid,
        update: StepUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<StepRow> {
        let now = self.rebase(now).now;
        self.deliver(with_retry!(
            "step_update",
            self.step_update_once(id, &update, now)
        ))
    }

    async fn step_resolve(
        &self,
        id: Uuid,
        results: serde_json::Value,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> StoreResult<StepRow> {
        let now = self.rebase(now).now;
        self.deliver(with_retry!(
            "step_resolve",
            self.step_resolve_once(id, &results, now, by)
        ))
    }

    async fn step_cancel(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> StoreResult<StepRow> {
        let now = self.rebase(now).now;
        self.deliver(with_retry!(
            "step_cancel",
            self.step_cancel_once(id, now, by)
        ))
    }

    async fn step_retry(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        by: Option<&str>,
    ) -> StoreResult<StepRow> {
        let now = self.rebase(now).now;
        self.deliver(with_retry!("step_retry", self.step_retry_once(id, now, by)))
    }

    async fn step_claim(&self, claim: &ClaimParams) -> StoreResult<Vec<ClaimedStep>> {
        if claim.limit == 0 {
            return Ok(Vec::new());
        }
        let r = self.rebase(claim.now);
        let claim = &ClaimParams {
            now: r.now,
            lease_until: r.at(claim.lease_until),
            ..claim.clone()
        };
        self.deliver(with_retry!("step_claim", self.claim_once(claim)))
    }

    async fn step_finish_and_claim(
        &self,
        outcomes: &[StepOutcome],
        now: DateTime<Utc>,
        claim: Option<&ClaimParams>,
    ) -> StoreResult<FinishReport> {
        if outcomes.is_empty() {
            return Ok(FinishReport::default());
        }
        tasker_store::storable::check_outcomes(outcomes)?;
        let r = self.rebase(now);
        let now = r.now;
        let rebased: Vec<StepOutcome>;
        let outcomes = if r.is_identity() {
            outcomes
        } else {
            rebased = outcomes
                .iter()
                .map(|o| match &o.result {
                    tasker_store::OutcomeResult::Failure { error, retry_at } => StepOutcome {
                        lease: o.lease,
                        result: tasker_store::OutcomeResult::Failure {
                            error: error.clone(),
                            retry_at: retry_at.map(|t| r.at(t)),
                        },
                    },
                    tasker_store::OutcomeResult::Success(_) => o.clone(),
                })
                .collect();
            &rebased
        };
        // The claim's lease keeps its distance from the caller's `now`.
        let claim = claim.map(|c| ClaimParams {
            now,
            lease_until: r.at(c.lease_until),
            ..c.clone()
        });
        self.deliver(with_retry!(
            "step_finish_many",
            self.finish_once(outcomes, now, claim.as_ref())
        ))
    }

    async fn step_lease_renew(
        &self,
        leases: &[LeaseRef],
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let r = self.rebase(now);
        let (until, now) = (r.at(until), r.now);
        with_retry!("step_lease_renew", self.renew_once(leases, until, now))
    }

    async fn step_rescue_expired(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
        if limit == 0 {
            return Ok(0);
        }
        let now = self.rebase(now).now;
        self.deliver(with_retry!(
            "step_rescue_expired",
            self.rescue_once(now, limit)
        ))
    }

    async fn step_next_ready_at(&self) -> StoreResult<Option<DateTime<Utc>>> {
        self.read_next_ready_at().await
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        self.read_stats().await
    }

    async fn stats_since(&self, since: DateTime<Utc>) -> StoreResult<StoreStats> {
        self.read_stats_since(since).await
    }

    async fn queue_depth(
        &self,
        now: DateTime<Utc>,
        cap: u32,
    ) -> StoreResult<tasker_store::QueueDepth> {
        self.read_queue_depth(now, cap).await
    }

    async fn history_sample(
        &self,
        query: &tasker_store::HistoryQuery,
    ) -> StoreResult<Vec<tasker_store::HistoryStep>> {
        self.read_history_sample(query).await
    }

    async fn has_open_tasks(&self) -> StoreResult<bool> {
        self.read_has_open_tasks().await
    }

    async fn prune_candidates(&self, q: &PruneQuery) -> StoreResult<Vec<Uuid>> {
        self.retention_candidates(q).await
    }

    async fn prune_count(&self, q: &PruneQuery) -> StoreResult<u64> {
        self.retention_count(q).await
    }

    async fn tasks_prune(
        &self,
        ids: &[Uuid],
        finished_before: DateTime<Utc>,
    ) -> StoreResult<Vec<Uuid>> {
        self.retention_delete(ids, finished_before).await
    }

    async fn flow_prune(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<tasker_store::flow::FlowPruned> {
        self.flow_prune_rows(before, limit).await
    }

    async fn prune_expired(&self, q: &PruneQuery) -> StoreResult<Option<u64>> {
        self.retention_delete_expired(q).await
    }

    async fn storage_health(&self) -> StoreResult<tasker_store::StorageHealth> {
        self.upkeep_health().await
    }

    async fn maintenance(&self) -> StoreResult<Vec<tasker_store::MaintenanceRun>> {
        self.upkeep().await
    }

    async fn statistics_refresh(&self) -> StoreResult<Vec<tasker_store::MaintenanceRun>> {
        self.analyze_grown().await
    }

    async fn history_partitions_ensure(
        &self,
        now: DateTime<Utc>,
        months_ahead: u32,
    ) -> StoreResult<Vec<tasker_store::MaintenanceRun>> {
        self.partitions_ensure(now, months_ahead).await
    }

    async fn history_partitions_drop(
        &self,
        before: DateTime<Utc>,
    ) -> StoreResult<Vec<tasker_store::MaintenanceRun>> {
        self.partitions_drop(before).await
    }

    async fn api_key_create(&self, key: NewApiKey) -> StoreResult<ApiKeyRow> {
        self.key_create(key).await
    }

    async fn api_key_get(&self, id: Uuid) -> StoreResult<ApiKeyRow> {
        self.key_get(id).await
    }

    async fn api_key_list(&self) -> StoreResult<Vec<ApiKeyRow>> {
        self.key_list().await
    }

    async fn api_key_revoke(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<ApiKeyRow> {
        self.key_revoke(id, now).await
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
        self.hook_create(hook).await
    }

    async fn webhook_sync_config(&self, hooks: Vec<NewWebhook>) -> StoreResult<()> {
        self.hook_sync_config(hooks).await
    }

    async fn webhook_get(&self, id: Uuid) -> StoreResult<WebhookRow> {
        self.hook_get(id).await
    }

    async fn webhook_list(&self) -> StoreResult<Vec<WebhookRow>> {
        self.hook_list().await
    }

    async fn webhook_delete(&self, id: Uuid) -> StoreResult<()> {
        self.hook_delete(id).await
    }

    async fn webhook_fanout(&self, limit: u32, now: DateTime<Utc>) -> StoreResult<u64> {
        self.hook_fanout(limit, now).await
    }

    async fn webhook_claim(&self, claim: &DeliveryClaim) -> StoreResult<Vec<ClaimedDelivery>> {
        self.hook_claim(claim).await
    }

    async fn webhook_finish(&self, outcomes: Vec<DeliveryOutcome>) -> StoreResult<u64> {
        self.hook_finish(outcomes).await
    }

    async fn webhook_deliveries(&self, query: &DeliveryQuery) -> StoreResult<Vec<DeliveryRow>> {
        self.hook_deliveries(query).await
    }

    async fn webhook_redeliver(
        &self,
        webhook_id: Uuid,
        event_ids: Option<Vec<i64>>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        self.hook_redeliver(webhook_id, event_ids, now).await
    }

    async fn webhook_deliveries_prune(&self, limit: u32) -> StoreResult<u64> {
        self.hook_deliveries_prune(limit).await
    }

    async fn flow_pause(
        &self,
        scope: &tasker_store::FlowScope,
        now: DateTime<Utc>,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> StoreResult<tasker_store::FlowPauseRow> {
        let now = self.rebase(now).now;
        self.deliver(with_retry!(
            "flow_pause",
            self.flow_pause_once(scope, now, by, reason)
        ))
    }

    async fn flow_resume(
        &self,
        scope: &tasker_store::FlowScope,
    ) -> StoreResult<tasker_store::FlowPauseRow> {
        self.deliver(with_retry!("flow_resume", self.flow_resume_once(scope)))
    }

    async fn flow_pauses(&self) -> StoreResult<Vec<tasker_store::FlowPauseRow>> {
        self.flow_pauses_read()
            .await
            .map_err(error::TxError::into_store)
    }

    async fn schedule_save(
        &self,
        mut schedule: tasker_store::NewSchedule,
        replace: bool,
    ) -> StoreResult<tasker_store::ScheduleRow> {
        schedule.now = self.rebase(schedule.now).now;
        self.deliver(with_retry!(
            "schedule_save",
            self.schedule_save_once(&schedule, replace)
        ))
    }

    async fn schedule_get(&self, name: &str) -> StoreResult<Option<tasker_store::ScheduleRow>> {
        self.schedule_get_by_name(name)
            .await
            .map_err(error::TxError::into_store)
    }

    async fn schedule_list(&self) -> StoreResult<Vec<tasker_store::ScheduleRow>> {
        self.schedule_list_all()
            .await
            .map_err(error::TxError::into_store)
    }

    async fn schedule_delete(&self, id: Uuid) -> StoreResult<()> {
        self.deliver(with_retry!(
            "schedule_delete",
            self.schedule_delete_once(id)
        ))
    }

    async fn schedule_set_paused(
        &self,
        id: Uuid,
        paused: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<tasker_store::ScheduleRow> {
        let now = self.rebase(now).now;
        self.deliver(with_retry!(
            "schedule_set_paused",
            self.schedule_set_paused_once(id, paused, now)
        ))
    }

    async fn schedule_fire(
        &self,
        mut fire: tasker_store::ScheduleFire,
    ) -> StoreResult<Option<TaskRow>> {
        // The task's times follow the store's clock; the tick's time is its
        // identity and stays as computed.
        rebase_task(&self.rebase(fire.task.now), &mut fire.task);
        self.deliver(with_retry!("schedule_fire", self.schedule_fire_once(&fire)))
    }

    async fn schedule_ticks(
        &self,
        id: Uuid,
        limit: u32,
    ) -> StoreResult<Vec<tasker_store::TickRow>> {
        self.schedule_ticks_read(id, limit)
            .await
            .map_err(error::TxError::into_store)
    }
}

/// A new task's times on the store's clock.
fn rebase_task(r: &clock::Rebase, t: &mut NewTask) {
    t.now = r.now;
    if let Some(identity) = &mut t.identity {
        identity.since = r.at(identity.since);
    }
}
