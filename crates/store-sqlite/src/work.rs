//! The hot path: claim, finish, renew, rescue.
//!
//! Each operation is a fixed handful of set-based statements whatever the
//! batch size; ids and per-row values travel as one JSON parameter.

use crate::SqliteStore;
use crate::codec::{hex, id_list, json, json_text, micros, time};
use crate::effects::{Events, finished_among, finished_rows};
use crate::error::{DbResultExt, corrupt};
use crate::write_tx::{Query, WriteTx};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sqlx::{Row, SqliteConnection, SqlitePool};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use tasker_core::{HandlerSpec, TaskState};
use tasker_store::{
    ClaimParams, ClaimedStep, FinishReport, LeaseRef, OutcomeResult, StepOutcome, StoreResult,
};
use uuid::Uuid;

/// The claim filters over `steps s`: ?2 kinds (JSON array or NULL),
/// ?3 excluded kinds (JSON array), ?4 namespaces (JSON array or NULL).
/// A literal, so the claim queries stay static SQL.
macro_rules! claim_filters {
    () => {
        "s.ready_at <= ?1 AND s.paused = 0 AND s.parked = 0
         AND (?2 IS NULL OR s.handler_kind IN (SELECT value FROM json_each(?2)))
         AND s.handler_kind NOT IN (SELECT value FROM json_each(?3))
         AND (?4 IS NULL OR EXISTS (SELECT 1 FROM tasks t WHERE t.id = s.task_id
                                    AND t.namespace IN (SELECT value FROM json_each(?4))))"
    };
}

/// Where a claim looks: every ready step, through the partial index on
/// `(ready_at, id, kind, task)` (it serves the order and the filters, so the
/// scan reads no table row and stops after `limit` matching rows).
macro_rules! from_ready {
    () => {
        "FROM steps s WHERE "
    };
}

/// Where the claim on completion looks: only the children of the steps
/// listed in ?8 (a JSON array of hex ids, the parents the finishing write
/// completed), by primary key (`INDEXED BY` the primary key's index, `id
/// BLOB PRIMARY KEY`'s automatic one: with statistics, after an `ANALYZE`,
/// SQLite otherwise searched the ready index for every candidate;
/// `tests/history_plans.rs`), so the ready frontier is never scanned. The
/// filters are the claim's own; a child that is not ready has no
/// `ready_at` and fails them.
macro_rules! from_among {
    () => {
        "FROM steps s INDEXED BY sqlite_autoindex_steps_1 \
         WHERE s.id IN (SELECT e.child_id FROM json_each(?8) AS a \
                        JOIN step_edges e ON e.parent_id = unhex(a.value)) AND "
    };
}

/// Oldest ready steps first, at most ?5.
macro_rules! pick {
    ($from:ident) => {
        concat!(
            "SELECT s.id, s.gated, s.ready_at ",
            $from!(),
            claim_filters!(),
            " ORDER BY s.ready_at, s.id LIMIT ?5 + 0"
        )
    };
}

/// With a per-task limit: candidates (the first ?6 ready steps, -1 = all) are
/// ranked within their task and taken while `rank + running(task) <= ?7`.
macro_rules! pick_per_task {
    ($from:ident) => {
        concat!(
            "WITH cand AS (
                SELECT s.id, s.task_id, s.ready_at, s.gated ",
            $from!(),
            claim_filters!(),
            " ORDER BY s.ready_at, s.id LIMIT ?6 + 0
             ), ranked AS (
                SELECT c.id, c.ready_at, c.gated,
                       ROW_NUMBER() OVER (PARTITION BY c.task_id ORDER BY c.ready_at, c.id) AS rn,
                       (SELECT COUNT(*) FROM steps r
                        WHERE r.task_id = c.task_id AND r.status = 'in_progress') AS running
                FROM cand c
             )
             SELECT id, gated, ready_at FROM ranked WHERE rn + running <= ?7 ORDER BY ready_at, id LIMIT ?5 + 0"
        )
    };
}

/// Whether any step is ready (?1 now): one probe of the ready index, on a reader.
pub(crate) const ANY_READY: &str =
    "SELECT 1 FROM steps WHERE ready_at <= ?1 AND paused = 0 AND parked = 0 LIMIT 1";

/// What a lease sets, with the numbers of the parameters that hold now,
/// the worker and the lease's expiry, and the expression of the token.
/// The schema's triggers write the transition and start a pending task.
macro_rules! lease_set {
    ($now:literal, $worker:literal, $until:literal, $token:literal) => {
        concat!(
            "UPDATE steps SET status = 'in_progress', ready_at = NULL, attempts = attempts + 1, \
                 last_attempted_at = ",
            $now,
            ", lease_owner = ",
            $worker,
            ", \
                 lease_token = ",
            $token,
            ", lease_expires_at = ",
            $until,
            ", \
                 updated_at = ",
            $now,
            ", flow_wait = NULL "
        )
    };
}

/// What a lease returns: what the handler needs from the step, from its
/// task and the parents' results (a JSON object by parent name).
macro_rules! leased_columns {
    () => {
        " RETURNING steps.id, steps.task_id, steps.name, steps.handler_kind, steps.handler_config, \
                   steps.inputs, steps.attempts, steps.max_attempts, steps.timeout_seconds, \
                   steps.lease_token, \
                   (SELECT json_array(t.namespace, t.name, t.version, json(t.context), \
                                      t.correlation_id) \
                    FROM tasks t WHERE t.id = steps.task_id), \
                   (SELECT json_group_object(p.name, json(p.results)) \
                    FROM step_edges e JOIN steps p ON p.id = e.parent_id \
                    WHERE e.child_id = steps.id)"
    };
}

/// Leases the picked steps (?1 a JSON list of [id, token]) by primary key.
pub(crate) const CLAIM_SQL: &str = concat!(
    lease_set!("?2", "?3", "?4", "j.token"),
    "FROM (SELECT unhex(value->>0) AS id, unhex(value->>1) AS token FROM jsonb_each(?1)) AS j \
     WHERE steps.id = j.id",
    leased_columns!()
);

/// The end of a finish's transaction, in one hop to SQLite's thread
/// ([`WriteTx::commit_with`]). Its statements share their parameters:
/// ?1–?8 as the pick among the children of ?8 (the steps the finish
/// completed), ?9 the lease tokens (16 bytes each, as many as ?5 allows),
/// ?10 the worker, ?11 the lease's expiry, ?12 the tasks the finish
/// touched. In order:
///
/// 1. the claim on completion: the lease of the picked children, only when
///    none of them has a concurrency key or a rate limit (those need the
///    admission of `flow::admit`, in Rust: the caller then claims through
///    [`claim_in`], the same pick and rule, in a transaction of its own).
///    The `n`-th oldest picked step gets the `n`-th token, which gives the
///    caller the claim's order;
/// 2. how many children of ?8 are still ready (the finish reports how many
///    it made ready: these and the leased ones), and whether one of them
///    has a key or a limit (when nothing was leased, every picked child is
///    among them; a flagged child the pick did not hold only costs the
///    caller a claim that finds nothing);
/// 3. which tasks of ?12 are now in a final state (a task with a step just
///    leased is running, so it is never among them);
/// 4. `COMMIT`.
///
/// Rows of the lease are decoded after the commit: a corrupt stored value
/// fails the finish, and the step leased with it is rescued when its lease
/// expires, where the claim of `claim_in` would have rolled back.
macro_rules! close_claiming {
    ($($pick:tt)*) => {
        concat!(
            lease_set!("?1", "?10", "?11", "substr(?9, (j.rn - 1) * 16 + 1, 16)"),
            "FROM (SELECT id, rn FROM ( \
                       SELECT p.id, ROW_NUMBER() OVER (ORDER BY p.ready_at, p.id) AS rn, \
                              MAX(p.gated) OVER () AS gated \
                       FROM (", $($pick)*, ") AS p) \
                   WHERE gated = 0) AS j \
             WHERE steps.id = j.id", names_all!(12),
            leased_columns!(),
            "; SELECT COUNT(DISTINCT c.id), COALESCE(MAX(c.gated), 0) ",
            ready_children_of!("?8"), names_all!(12),
            "; ", finished_among!("?12"), names_all!(12),
            "; COMMIT"
        )
    };
}

/// A condition that always holds and names every parameter up to the
/// given one (12 or 2), for each statement of a query of several
/// statements. sqlx's SQLite driver binds such a query statement by
/// statement: a number the statement does not name counts as a positional
/// parameter, and binding stops at the first that runs past the arguments,
/// so a statement naming only ?8 and ?12 would have ?12 left NULL.
/// `tests::every_statement_names_every_parameter` holds each statement to it.
macro_rules! names_all {
    (12) => {
        " AND coalesce(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0) IS NOT NULL"
    };
    (8) => {
        " AND coalesce(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0) IS NOT NULL"
    };
    (2) => {
        " AND coalesce(?1, ?2, 0) IS NOT NULL"
    };
}

/// A claim's `BEGIN IMMEDIATE` and its lease in one hop to SQLite's thread
/// ([`WriteTx::begin_with`]), for a claim without a per-task limit: the
/// pick of [`PICK`] (?1–?5) leased by the statement that picks it, ?6 the
/// worker, ?7 the lease's expiry, ?8 the lease tokens (16 bytes each, as
/// many as ?5 allows; the `n`-th oldest picked step gets the `n`-th). It
/// leases nothing when a picked step has a concurrency key or a rate limit:
/// those need the admission of `flow::admit`, in Rust, and the claim goes
/// on in the same transaction through [`claim_in`] (the same pick and rule).
pub(crate) const BEGIN_CLAIM: &str = concat!(
    "BEGIN IMMEDIATE; ",
    lease_set!("?1", "?6", "?7", "substr(?8, (j.rn - 1) * 16 + 1, 16)"),
    "FROM (SELECT id, rn FROM ( \
               SELECT p.id, ROW_NUMBER() OVER (ORDER BY p.ready_at, p.id) AS rn, \
                      MAX(p.gated) OVER () AS gated \
               FROM (",
    pick!(from_ready),
    ") AS p) \
           WHERE gated = 0) AS j \
     WHERE steps.id = j.id",
    leased_columns!()
);
/// [`close_claiming`] with the claim's pick as in [`PICK_AMONG`].
pub(crate) const CLOSE_CLAIMING: &str = close_claiming!(pick!(from_among));
/// [`close_claiming`] with the claim's pick as in [`PICK_PER_TASK_AMONG`].
pub(crate) const CLOSE_CLAIMING_PER_TASK: &str = close_claiming!(pick_per_task!(from_among));
/// The end of a finish's transaction without a claim: how many children of
/// ?1 are ready, which tasks of ?2 are in a final state, `COMMIT`.
pub(crate) const CLOSE: &str = concat!(
    "SELECT COUNT(DISTINCT c.id) ",
    ready_children_of!("?1"),
    names_all!(2),
    "; ",
    finished_among!("?2"),
    names_all!(2),
    "; COMMIT"
);

/// The statement of [`FINISH_SQL`], as a literal for `concat!`.
macro_rules! finish_sql {
    () => {
        "UPDATE steps SET
            status = j.status,
            results = CASE WHEN j.status = 'complete' THEN j.results END,
            last_error = CASE WHEN j.status = 'complete' THEN steps.last_error ELSE j.error END,
            ready_at = j.ready_at,
            completed_at = CASE WHEN j.status = 'complete' THEN ?2 END,
            updated_at = ?2,
            lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
         FROM (SELECT unhex(value->>0) AS id, unhex(value->>1) AS token, value->>2 AS status,
                      value->3 AS results, value->4 AS error, value->>5 AS ready_at
               FROM jsonb_each(?1)) AS j
         WHERE steps.id = j.id AND steps.status = 'in_progress' AND steps.lease_token = j.token
         RETURNING steps.id, steps.task_id, steps.ready_at,
                   steps.concurrency_key IS NOT NULL OR steps.slot_key IS NOT NULL"
    };
}

/// Writes outcomes (?1 a JSON list) to the steps still running under the
/// presented lease, by primary key.
pub(crate) const FINISH_SQL: &str = finish_sql!();

/// [`FINISH_SQL`] with the `BEGIN IMMEDIATE` of its transaction, in one
/// hop to SQLite's thread ([`WriteTx::begin_with`]).
const BEGIN_FINISH_SQL: &str = concat!("BEGIN IMMEDIATE; ", finish_sql!());

/// Whether any lease expired (?1 now): one probe of the lease index.
pub(crate) const ANY_EXPIRED: &str =
    "SELECT 1 FROM steps WHERE status = 'in_progress' AND lease_expires_at < ?1 LIMIT 1";

/// Rescues up to ?2 steps whose lease expired before ?1, oldest expiry first.
pub(crate) const RESCUE_SQL: &str = "UPDATE steps SET
            status = CASE WHEN attempts < max_attempts THEN 'pending' ELSE 'error' END,
            ready_at = CASE WHEN attempts < max_attempts THEN ?1 END,
            last_error = json_object('message', 'lease expired before the step finished',
                                     'kind', 'lease_expired', 'attempt', attempts),
            lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = ?1
         WHERE id IN (SELECT id FROM steps WHERE status = 'in_progress' AND lease_expires_at < ?1
                      ORDER BY lease_expires_at LIMIT ?2 + 0)
         RETURNING task_id, status = 'pending'";

pub(crate) const PICK: &str = pick!(from_ready);
pub(crate) const PICK_AMONG: &str = pick!(from_among);
pub(crate) const PICK_PER_TASK: &str = pick_per_task!(from_ready);
pub(crate) const PICK_PER_TASK_AMONG: &str = pick_per_task!(from_among);

/// The candidates to claim, oldest ready first: among every ready step, or
/// (`among`, a JSON id list) among those only. One rule for both: the
/// same filters and per-task ranking. Each comes with whether it has a
/// concurrency key or a rate limit (`gated`, read from the index).
async fn pick(
    conn: &mut SqliteConnection,
    p: &ClaimParams,
    among: Option<&str>,
) -> StoreResult<Vec<(Uuid, bool)>> {
    let kinds = p.kinds.as_ref().map(|k| json_text(&json!(k)));
    let exclude = json_text(&json!(p.exclude_kinds));
    let namespaces = p.namespaces.as_ref().map(|n| json_text(&json!(n)));
    let limit = i64::from(p.limit);
    let Some(per_task) = p.per_task_limit else {
        let q = sqlx::query_as(if among.is_some() { PICK_AMONG } else { PICK })
            .bind(micros(p.now))
            .bind(kinds)
            .bind(exclude)
            .bind(namespaces)
            .bind(limit);
        // ?6 and ?7 are unused here but numbered before ?8.
        let q = match among {
            Some(ids) => q.bind(0_i64).bind(0_i64).bind(ids),
            None => q,
        };
        return q.fetch_all(&mut *conn).await.db();
    };
    // A window of candidates keeps the usual claim an index range scan. When
    // tasks at their limit crowd it out, look at the whole frontier: correct
    // (no starvation), and only as costly as the frontier is large. Among
    // given steps, all of them are candidates at once.
    let windows: &[i64] = match among {
        Some(_) => &[-1],
        None => &[limit.saturating_mul(4).saturating_add(64), -1],
    };
    let mut picked = Vec::new();
    for &window in windows {
        let q = sqlx::query_as(if among.is_some() {
            PICK_PER_TASK_AMONG
        } else {
            PICK_PER_TASK
        })
        .bind(micros(p.now))
        .bind(&kinds)
        .bind(&exclude)
        .bind(&namespaces)
        .bind(limit)
        .bind(window)
        .bind(i64::from(per_task));
        let q = match among {
            Some(ids) => q.bind(ids),
            None => q,
        };
        picked = q.fetch_all(&mut *conn).await.db()?;
        if picked.len() as i64 >= limit {
            break;
        }
    }
    Ok(picked)
}

pub(crate) async fn claim(store: &SqliteStore, p: &ClaimParams) -> StoreResult<Vec<ClaimedStep>> {
    if p.limit == 0 || p.per_task_limit == Some(0) {
        return Ok(Vec::new());
    }
    // Idle claimers (this process's and other processes') poll often: when
    // nothing is ready, answer from a reader without taking the write lock.
    // Not after a claim that leased work: under load the probe is a hop to
    // another thread before every claim, and the writer waits for it.
    if !store.claim_found_work.load(Ordering::Relaxed) {
        let any_ready: Option<i64> = sqlx::query_scalar(ANY_READY)
            .bind(micros(p.now))
            .fetch_optional(&store.reader)
            .await
            .db()?;
        if any_ready.is_none() {
            return Ok(Vec::new());
        }
    }
    let steps = if p.per_task_limit.is_none() && store.one_statement_claim.load(Ordering::Relaxed) {
        one_statement_claim(store, p).await?
    } else {
        let mut tx = store.begin().await?;
        let (steps, events, gated) = claim_in(&mut tx, p, None).await?;
        tx.commit().await.db()?;
        store.one_statement_claim.store(!gated, Ordering::Relaxed);
        store.emit(events);
        steps
    };
    store
        .claim_found_work
        .store(!steps.is_empty(), Ordering::Relaxed);
    Ok(steps)
}

/// The claim in two hops to SQLite's thread where [`claim_in`]'s own
/// transaction takes four: its `BEGIN`, pick and lease in one statement
/// ([`BEGIN_CLAIM`]), then its `COMMIT` (measured: docs/PERFORMANCE.md,
/// "SQLite: a claim in two hops"). The rows are decoded before the commit,
/// so a row that cannot be decoded rolls the claim back, as in
/// [`claim_in`]. When the statement leased nothing because a picked step
/// has a key or a limit, the claim goes on through [`claim_in`] in the same
/// transaction, and later claims start there while such steps are picked.
async fn one_statement_claim(
    store: &SqliteStore,
    p: &ClaimParams,
) -> StoreResult<Vec<ClaimedStep>> {
    let (tokens, token_bytes) = lease_tokens(p.limit);
    let query = bind_pick(sqlx::query(BEGIN_CLAIM), p)
        .bind(&p.worker_id)
        .bind(micros(p.lease_until))
        .bind(token_bytes);
    let (mut tx, rows) = WriteTx::begin_with(store, query).await?;
    let claimed = if rows.is_empty() {
        claim_in(tx.conn(), p, None)
            .await
            .map(|(steps, events, gated)| {
                store.one_statement_claim.store(!gated, Ordering::Relaxed);
                (steps, events)
            })
    } else {
        in_token_order(&tokens, &rows).and_then(|ids| decode_claimed(&ids, &rows, p))
    };
    let (steps, events) = match claimed {
        Ok(c) => c,
        Err(e) => return tx.abort(e).await,
    };
    tx.commit_with(sqlx::query("COMMIT")).await?;
    store.emit(events);
    Ok(steps)
}

/// `limit` fresh lease tokens, and the same as one blob of 16 bytes each
/// (how a statement that picks and leases at once hands them out: the
/// `n`-th oldest picked step gets the `n`-th).
fn lease_tokens(limit: u32) -> (Vec<Uuid>, Vec<u8>) {
    let tokens: Vec<Uuid> = (0..limit).map(|_| Uuid::new_v4()).collect();
    let bytes = tokens.iter().flat_map(|t| *t.as_bytes()).collect();
    (tokens, bytes)
}

/// Binds the pick's parameters ?1–?5 (now, kinds, excluded kinds,
/// namespaces, limit) to a statement that picks and leases at once.
fn bind_pick<'q>(query: Query<'q>, p: &ClaimParams) -> Query<'q> {
    query
        .bind(micros(p.now))
        .bind(p.kinds.as_ref().map(|k| json_text(&json!(k))))
        .bind(json_text(&json!(p.exclude_kinds)))
        .bind(p.namespaces.as_ref().map(|n| json_text(&json!(n))))
        .bind(i64::from(p.limit))
}

/// The ids of leased `rows` in claim order: the `n`-th of `tokens` went to
/// the `n`-th oldest picked step.
fn in_token_order(tokens: &[Uuid], rows: &[sqlx::sqlite::SqliteRow]) -> StoreResult<Vec<Uuid>> {
    let rank: HashMap<Uuid, usize> = tokens.iter().enumerate().map(|(i, t)| (*t, i)).collect();
    let mut order = Vec::with_capacity(rows.len());
    for r in rows {
        let id: Uuid = r.try_get(0).db()?;
        let token: Uuid = r.try_get(9).db()?;
        let n = rank
            .get(&token)
            .ok_or_else(|| corrupt(format!("claimed step {id} has a token it was not given")))?;
        order.push((*n, id));
    }
    order.sort_unstable();
    Ok(order.into_iter().map(|(_, id)| id).collect())
}

/// Claims inside the caller's write transaction: the claim of
/// [`claim`], or with `among` (a JSON list of the steps a finish completed)
/// the claim on completion among their children, when one of those has a
/// concurrency key or a rate limit ([`close`]). Returns the claimed steps, decoded (a row that cannot
/// be decoded fails the transaction, so no step is left leased to a worker
/// that never learnt it claimed it), the events to announce on commit, and
/// whether a picked step had a concurrency key or a rate limit.
async fn claim_in(
    tx: &mut SqliteConnection,
    p: &ClaimParams,
    among: Option<&str>,
) -> StoreResult<(Vec<ClaimedStep>, Events, bool)> {
    if p.limit == 0 || p.per_task_limit == Some(0) {
        return Ok((Vec::new(), Events::default(), false));
    }
    let picked = pick(&mut *tx, p, among).await?;
    let gated = picked.iter().any(|(_, g)| *g);
    // Concurrency keys and rate limits: the steps they hold back are parked
    // or deferred here, in this transaction, and not claimed.
    let (ids, deferred) = crate::flow::admit(&mut *tx, picked, p.now).await?;
    if ids.is_empty() {
        return Ok((Vec::new(), Events::default(), gated));
    }
    let leases: Vec<Value> = ids
        .iter()
        .map(|id| json!([hex(id).to_string(), hex(&Uuid::new_v4()).to_string()]))
        .collect();
    // One statement: the triggers write the transitions and start pending
    // tasks; RETURNING carries what the handler needs from the task and the
    // parents' results (a JSON object by parent name).
    let rows = sqlx::query(CLAIM_SQL)
        .bind(Value::Array(leases).to_string())
        .bind(micros(p.now))
        .bind(&p.worker_id)
        .bind(micros(p.lease_until))
        .fetch_all(&mut *tx)
        .await
        .db()?;
    let (steps, mut events) = decode_claimed(&ids, &rows, p)?;
    // Steps a rate limit deferred while others were claimed: wake this
    // process's claimer, which got a short batch and would otherwise wait
    // for its poll interval (finding nothing due, it sleeps until the
    // earliest `ready_at`).
    events.work_available |= deferred;
    Ok((steps, events, gated))
}

/// What the end of a finish's transaction found ([`close`]).
struct Closed {
    /// Children of the completed steps that are ready (leased ones included).
    ready: u64,
    /// Leased on completion, in claim order.
    claimed: Vec<ClaimedStep>,
    /// Tasks of the leased steps.
    events: Events,
    /// Tasks the finish touched that are now in a final state.
    finished: Vec<(Uuid, TaskState)>,
    /// Nothing was leased and a ready child has a concurrency key or a rate
    /// limit (the pick may have held it): the caller claims through
    /// [`claim_in`].
    gated: bool,
}

/// Ends a finish's transaction in one hop ([`close_claiming`], [`CLOSE`]):
/// the claim on completion among the children of `parents` (the steps the
/// finish completed), how many of them are ready, which of `tasks` ended,
/// and the commit.
async fn close(
    tx: WriteTx,
    claim: Option<&ClaimParams>,
    parents: &[Uuid],
    tasks: &BTreeSet<Uuid>,
) -> StoreResult<Closed> {
    let claim = claim.filter(|p| p.limit > 0 && p.per_task_limit != Some(0) && !parents.is_empty());
    let parents = id_list(parents);
    let tasks = id_list(tasks);
    let Some(p) = claim else {
        let out = tx
            .commit_with(sqlx::query(CLOSE).bind(&parents).bind(&tasks))
            .await?;
        return Ok(Closed {
            ready: first_count(&out[0])?,
            claimed: Vec::new(),
            events: Events::default(),
            finished: finished_rows(&out[1])?,
            gated: false,
        });
    };
    let (tokens, token_bytes) = lease_tokens(p.limit);
    let (sql, window) = match p.per_task_limit {
        None => (CLOSE_CLAIMING, 0_i64),
        Some(_) => (CLOSE_CLAIMING_PER_TASK, -1),
    };
    let query = bind_pick(sqlx::query(sql), p)
        .bind(window)
        .bind(p.per_task_limit.map_or(0, i64::from))
        .bind(&parents)
        .bind(token_bytes)
        .bind(&p.worker_id)
        .bind(micros(p.lease_until))
        .bind(&tasks);
    let out = tx.commit_with(query).await?;
    let rows = &out[0];
    let ready = rows.len() as u64 + first_count(&out[1])?;
    let gated = rows.is_empty()
        && match out[1].first() {
            Some(r) => r.try_get::<bool, _>(1).db()?,
            None => false,
        };
    let ids = in_token_order(&tokens, rows)?;
    let (claimed, events) = decode_claimed(&ids, rows, p)?;
    Ok(Closed {
        ready,
        claimed,
        events,
        finished: finished_rows(&out[2])?,
        gated,
    })
}

/// The one count of a `SELECT COUNT(…)`'s rows.
fn first_count(rows: &[sqlx::sqlite::SqliteRow]) -> StoreResult<u64> {
    let n: i64 = match rows.first() {
        Some(r) => r.try_get(0).db()?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The claimed steps in claim order (oldest ready first), and the events to
/// announce once the claim has committed.
fn decode_claimed(
    ids: &[Uuid],
    rows: &[sqlx::sqlite::SqliteRow],
    p: &ClaimParams,
) -> StoreResult<(Vec<ClaimedStep>, Events)> {
    let lease_expires_at = crate::codec::truncate(p.lease_until);
    let mut steps: HashMap<Uuid, ClaimedStep> = HashMap::with_capacity(rows.len());
    let mut events = Events::default();
    for r in rows {
        let step_id: Uuid = r.try_get(0).db()?;
        let task_id: Uuid = r.try_get(1).db()?;
        let task: Option<&str> = r.try_get(10).db()?;
        let (namespace, task_name, version, context, correlation_id): TaskInfo =
            serde_json::from_str(task.unwrap_or("null"))
                .map_err(|e| corrupt(format!("task of step {step_id}: {e}")))?;
        let parents: Option<&str> = r.try_get(11).db()?;
        let parent_results = match parents {
            Some(text) => match json(text)? {
                Value::Object(map) => map,
                _ => return Err(corrupt(format!("parent results of step {step_id}"))),
            },
            None => Map::new(),
        };
        events.changed.insert(task_id);
        steps.insert(
            step_id,
            ClaimedStep {
                step_id,
                task_id,
                step_name: r.try_get(2).db()?,
                handler: HandlerSpec {
                    kind: r.try_get(3).db()?,
                    config: json(r.try_get(4).db()?)?,
                },
                inputs: json(r.try_get(5).db()?)?,
                attempt: r.try_get(6).db()?,
                max_attempts: r.try_get(7).db()?,
                timeout_seconds: r.try_get(8).db()?,
                lease_token: r.try_get(9).db()?,
                lease_expires_at,
                namespace,
                task_name,
                version,
                context,
                correlation_id,
                parent_results,
            },
        );
    }
    let ordered = ids
        .iter()
        .map(|id| {
            steps
                .remove(id)
                .ok_or_else(|| corrupt(format!("claimed step {id} was not updated")))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((ordered, events))
}

/// `[namespace, name, version, context, correlation_id]` of a claimed step's task.
type TaskInfo = (String, String, String, Value, String);

pub(crate) async fn finish_many(
    store: &SqliteStore,
    outcomes: &[StepOutcome],
    now: DateTime<Utc>,
    claim: Option<&ClaimParams>,
) -> StoreResult<FinishReport> {
    let mut report = FinishReport::default();
    if outcomes.is_empty() {
        return Ok(report);
    }
    // The same step twice in a batch: only the first counts.
    let mut seen: HashSet<Uuid> = HashSet::with_capacity(outcomes.len());
    let mut rows = Vec::with_capacity(outcomes.len());
    let mut successes = Vec::new();
    let at = micros(now);
    for o in outcomes {
        let id = o.lease.step_id;
        if !seen.insert(id) {
            continue;
        }
        let (status, results, error, ready_at) = match &o.result {
            OutcomeResult::Success(results) => {
                successes.push(id);
                ("complete", results.clone(), Value::Null, None)
            }
            OutcomeResult::Failure { error, retry_at } => {
                let error = serde_json::to_value(error)
                    .map_err(|e| corrupt(format!("step error record: {e}")))?;
                let status = if retry_at.is_some() {
                    "pending"
                } else {
                    "error"
                };
                (status, Value::Null, error, retry_at.map(micros))
            }
        };
        rows.push(json!([
            hex(&id).to_string(),
            hex(&o.lease.token).to_string(),
            status,
            results,
            error,
            ready_at
        ]));
    }

    // Only steps still running under the presented lease change; the
    // triggers write the transitions, unblock children, move the counters
    // and finalise tasks.
    let finish = sqlx::query(BEGIN_FINISH_SQL)
        .bind(Value::Array(rows).to_string())
        .bind(at);
    let (tx, applied) = WriteTx::begin_with(store, finish).await?;

    let mut done: HashSet<Uuid> = HashSet::with_capacity(applied.len());
    let mut events = Events::default();
    // A step of a concurrency key that stopped running may have unparked
    // another (trigger `steps_flow_release`), and a task of a limited
    // template that ended may have unparked waiting tasks (trigger
    // `tasks_slot_release`): wake claimers for them.
    let mut keyed = false;
    let read = (|| {
        for r in &applied {
            keyed |= r.try_get::<bool, _>(3).db()?;
            let id: Uuid = r.try_get(0).db()?;
            let task: Uuid = r.try_get(1).db()?;
            let ready_at: Option<i64> = r.try_get(2).db()?;
            done.insert(id);
            events.changed.insert(task);
            // A retry due now (a completed step has no ready_at).
            if ready_at.is_some_and(|t| t <= at) {
                report.newly_ready += 1;
            }
        }
        Ok(())
    })();
    if let Err(e) = read {
        return tx.abort(e).await;
    }
    report.applied = applied.len() as u64;
    successes.retain(|id| done.contains(id));
    // Claim on completion: in this write transaction (SQLite has one
    // writer, so no other claim can see these children before it commits),
    // the claim itself, restricted to the children just made ready; gated
    // children after the commit, below.
    let claim = claim.map(|c| ClaimParams { now, ..c.clone() });
    let closed = close(tx, claim.as_ref(), &successes, &events.changed).await?;
    report.newly_ready += closed.ready;
    events.changed.extend(closed.events.changed);
    report.claimed = closed.claimed;
    report.finished_tasks = closed.finished;
    if let Some(p) = claim.as_ref().filter(|_| closed.gated) {
        // Keys and rate limits are admitted in Rust: the same claim among
        // the same children, in a transaction of its own.
        let mut tx = store.begin().await?;
        let (claimed, claim_events, _) = claim_in(&mut tx, p, Some(&id_list(&successes))).await?;
        tx.commit().await.db()?;
        events.changed.extend(claim_events.changed);
        report.claimed = claimed;
    }

    // Lost: every outcome not applied, in batch order.
    let mut first = HashSet::new();
    report.lease_lost = outcomes
        .iter()
        .map(|o| o.lease.step_id)
        .filter(|id| !done.contains(id) || !first.insert(*id))
        .collect();
    // Wake claimers only for ready steps nobody has leased yet.
    events.work_available = keyed || report.newly_ready > report.claimed.len() as u64;
    events.finished = report.finished_tasks.iter().map(|(id, _)| *id).collect();
    store.emit(events);
    Ok(report)
}

pub(crate) async fn renew(
    store: &SqliteStore,
    leases: &[LeaseRef],
    until: DateTime<Utc>,
    _now: DateTime<Utc>,
) -> StoreResult<Vec<Uuid>> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let pairs: Vec<Value> = leases
        .iter()
        .map(|l| json!([hex(&l.step_id).to_string(), hex(&l.token).to_string()]))
        .collect();
    // One statement: autocommit takes the write lock before it reads.
    let kept: HashSet<Uuid> = sqlx::query_scalar(
        "UPDATE steps SET lease_expires_at = ?2
         FROM (SELECT unhex(value->>0) AS id, unhex(value->>1) AS token FROM jsonb_each(?1)) AS j
         WHERE steps.id = j.id AND steps.lease_token = j.token AND steps.status = 'in_progress'
         RETURNING steps.id",
    )
    .bind(Value::Array(pairs).to_string())
    .bind(micros(until))
    .fetch_all(&store.writer)
    .await
    .db()?
    .into_iter()
    .collect();
    Ok(leases
        .iter()
        .map(|l| l.step_id)
        .filter(|id| !kept.contains(id))
        .collect())
}

pub(crate) async fn rescue_expired(
    store: &SqliteStore,
    now: DateTime<Utc>,
    limit: u32,
) -> StoreResult<u64> {
    if limit == 0 {
        return Ok(0);
    }
    // The rescuer runs on a timer: usually nothing expired, and that is
    // answered without the write lock.
    let any_expired: Option<i64> = sqlx::query_scalar(ANY_EXPIRED)
        .bind(micros(now))
        .fetch_optional(&store.reader)
        .await
        .db()?;
    if any_expired.is_none() {
        return Ok(0);
    }
    let mut tx = store.begin().await?;
    // With attempts left: back to pending, ready now (the triggers write
    // in_progress → error → pending). Without: error, and the task may end.
    let rows = sqlx::query(RESCUE_SQL)
        .bind(micros(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .db()?;
    if rows.is_empty() {
        tx.commit().await.db()?;
        return Ok(0);
    }
    let mut events = Events::default();
    for r in &rows {
        events.changed.insert(r.try_get(0).db()?);
        let retried: bool = r.try_get(1).db()?;
        events.work_available |= retried;
    }
    events.finished = finished_among(&mut tx, &events.changed)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    tx.commit().await.db()?;
    store.emit(events);
    Ok(rows.len() as u64)
}

pub(crate) async fn next_ready_at(pool: &SqlitePool) -> StoreResult<Option<DateTime<Utc>>> {
    let at: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(ready_at) FROM steps WHERE ready_at IS NOT NULL AND paused = 0 AND parked = 0",
    )
    .fetch_one(pool)
    .await
    .db()?;
    at.map(time).transpose()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The plan of a pick, one detail line per row of `EXPLAIN QUERY PLAN`.
    async fn plan(store: &SqliteStore, sql: &str, params: usize) -> String {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
        for _ in 0..params {
            q = q.bind(Option::<String>::None);
        }
        let rows = q.fetch_all(&store.reader).await.unwrap();
        rows.iter()
            .map(|r| r.try_get::<String, _>(3).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Each statement of a query of several names all of its parameters
    /// (see `names_all!`): none is left unbound.
    #[test]
    fn every_statement_names_every_parameter() {
        for sql in [
            CLOSE,
            CLOSE_CLAIMING,
            CLOSE_CLAIMING_PER_TASK,
            BEGIN_FINISH_SQL,
            BEGIN_CLAIM,
            crate::tasks::BEGIN_CREATE,
        ] {
            let numbers = |s: &str| -> std::collections::BTreeSet<usize> {
                s.split('?')
                    .skip(1)
                    .filter_map(|t| {
                        let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
                        digits.parse().ok()
                    })
                    .collect()
            };
            let max = numbers(sql).last().copied().unwrap_or(0);
            for statement in sql.split("; ") {
                let named = numbers(statement);
                if !named.is_empty() {
                    assert_eq!(named, (1..=max).collect(), "{statement}");
                }
            }
        }
    }

    /// The claim reads the partial ready index in order; the claim on
    /// completion reaches its few candidates by primary key, driven by the
    /// id list, and never walks the ready frontier.
    #[tokio::test]
    async fn picks_use_the_ready_index_or_the_primary_key() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        for sql in [PICK, PICK_PER_TASK] {
            let p = plan(&store, sql, 7).await;
            assert!(p.contains("steps_ready_idx"), "{sql}\n{p}");
        }
        // The claim in one statement: the same pick, then each picked step
        // updated by primary key.
        let lease = BEGIN_CLAIM.trim_start_matches("BEGIN IMMEDIATE; ");
        let p = plan(&store, lease, 8).await;
        assert!(p.contains("steps_ready_idx"), "{lease}\n{p}");
        assert!(
            p.contains("SEARCH steps USING INDEX sqlite_autoindex_steps_1 (id=?)"),
            "{lease}\n{p}"
        );
        for sql in [PICK_AMONG, PICK_PER_TASK_AMONG] {
            let p = plan(&store, sql, 8).await;
            assert!(!p.contains("steps_ready_idx"), "{sql}\n{p}");
            // `id` is a BLOB PRIMARY KEY: its index is the automatic one.
            assert!(
                p.contains("SEARCH s USING INDEX sqlite_autoindex_steps_1 (id=?)"),
                "{sql}\n{p}"
            );
        }
    }

    /// Which path a claim starts on: the statement that picks and leases
    /// while the picks hold plain steps; once a pick holds a step with a
    /// concurrency key, the claim goes on through `claim_in` in the same
    /// transaction (which admits it: one keyed step beside the plain one),
    /// and later claims start there until a pick holds no such step.
    #[tokio::test]
    async fn a_claim_leases_in_one_statement_until_it_picks_a_keyed_step() {
        use tasker_store::Store;
        use tasker_store::conformance::factory::{Shape, new_task};
        use tasker_store::conformance::{at, params};
        use tasker_store::flow::{ConcurrencyKey, StepFlow};
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        let at_once = || store.one_statement_claim.load(Ordering::Relaxed);

        let plain = new_task(Shape::Roots(2), at(0));
        store.task_create(plain.clone()).await.unwrap();
        let got = store.step_claim(&params("w1", 1, at(1))).await.unwrap();
        assert_eq!(got.len(), 1);
        assert!(at_once(), "plain steps: one statement");

        let mut keyed = new_task(Shape::Roots(3), at(2));
        for s in &mut keyed.steps {
            s.flow = StepFlow {
                concurrency: Some(ConcurrencyKey {
                    key: "k".into(),
                    limit: 1,
                }),
                rate: None,
                task_slot: None,
            };
        }
        store.task_create(keyed.clone()).await.unwrap();
        // The pick holds the plain step left and the three keyed ones: the
        // key admits one of them, and the plain step is claimed beside it.
        let got = store.step_claim(&params("w1", 10, at(3))).await.unwrap();
        let tasks: Vec<Uuid> = got.iter().map(|c| c.task_id).collect();
        assert_eq!(tasks, [plain.id, keyed.id], "{got:?}");
        assert!(!at_once(), "a keyed step was picked");

        let later = new_task(Shape::Single, at(4));
        store.task_create(later.clone()).await.unwrap();
        let got = store.step_claim(&params("w1", 10, at(5))).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].task_id, later.id);
        assert!(at_once(), "the parked keyed steps are not picked");
    }
}
