//! Lifecycle events (docs/EVENTS.md): the sequencer that gives outbox rows
//! their public ids, reading, custom events, pruning.
//!
//! The hot statements (creation, claim, finish, the finaliser's task
//! writes) and the outbox triggers for every other writer
//! (`migrations/*_events_in_statements.sql`) write a row per event in the
//! transaction of its transition, with `seq` (insertion order) but no `id`.
//! Ids are given by [`sequence`]: under a transaction-level advisory lock
//! (one sequencer at a time across all processes), it numbers the committed
//! rows it can see, in `seq` order, above the highest id given so far. A row
//! that commits later is numbered in a later round with a higher id, so a
//! reader that has seen id N never sees a new id below N. (Numbering by
//! `seq` alone would not do: `seq` is taken when a row is written, and a
//! transaction holding 60 may commit after one holding 61.)
//!
//! Causal order survives: when a transaction's change depends on another's
//! (it read its committed rows, or waited for its row locks), its `seq`
//! values were taken after that commit, so any round that sees it also sees
//! the other's rows and numbers them first (or they were numbered earlier).
//! A task's events are therefore numbered in the order they happened.
//!
//! Readers call [`sequence`] before reading, so ids follow commits without
//! a background task, and a reader sees every event committed before it
//! asked (it waits for a round already running, then runs its own). The
//! cost is off the hot path: one UPDATE of the rows committed since the
//! last round.

use crate::PgStore;
use crate::error::store_err;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{Acquire, Row};
use std::collections::HashMap;
use tasker_store::outbox::{normalize_payload, type_filter_sql};
use tasker_store::{EventQuery, EventRow, NewCustomEvent, StoreError, StoreEvent, StoreResult};
use uuid::Uuid;

/// The condition on every event-writing CTE of the hot statements
/// (creation, claim, finish, the finaliser's task writes: they write their
/// own events, see `migrations/*_events_in_statements.sql`). A constant for
/// the statement, so PostgreSQL evaluates it once, as a one-time filter.
/// The database setting `tasker.events = 'off'` exists only for
/// `tasker bench --events false`, which also drops the triggers that write
/// the other paths' events, to measure what events cost
/// (docs/PERFORMANCE.md); nothing else sets it.
macro_rules! events_on {
    () => {
        "current_setting('tasker.events', true) IS DISTINCT FROM 'off'"
    };
}
pub(crate) use events_on;

/// The advisory lock key of the sequencer (any constant no other code uses).
const SEQUENCER_LOCK: i64 = 0x7461_736b_6576_7473; // "taskevts"

/// Most rows numbered per sequencer round.
const SEQUENCE_BATCH: i64 = 10_000;

const COLS: &str = "id, type, task_id, step_id, namespace, created_at, payload";

/// Numbers the committed events not numbered yet (see the module docs).
/// Returns how many were numbered.
pub(crate) async fn sequence(store: &PgStore) -> StoreResult<u64> {
    let mut conn = store.inner.pool.acquire().await.map_err(store_err)?;
    let mut tx = conn.begin().await.map_err(store_err)?;
    // Waits for a round another reader is running (rounds are short), so
    // a reader always sees the events committed before it asked.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SEQUENCER_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(store_err)?;
    // A new statement after the lock: in READ COMMITTED its snapshot sees
    // the previous holder's commit, so `last_id` is current. The update
    // repeats `id IS NULL` (true of every picked row: the lock serialises
    // sequencers) so it can reach them through `events_unnumbered_idx` in
    // every partition instead of joining against whole partitions.
    let n: i64 = sqlx::query_scalar(
        "WITH base AS (SELECT last_id AS m FROM events_sequencer), \
              pick AS ( \
                  SELECT seq, row_number() OVER (ORDER BY seq) AS rn FROM ( \
                      SELECT seq FROM events \
                      WHERE id IS NULL \
                      ORDER BY seq LIMIT $1) p), \
              upd AS ( \
                  UPDATE events e SET id = base.m + pick.rn \
                  FROM pick, base WHERE e.seq = pick.seq AND e.id IS NULL RETURNING 1) \
         UPDATE events_sequencer SET last_id = last_id + (SELECT count(*) FROM upd) \
         RETURNING (SELECT count(*) FROM upd)",
    )
    .bind(SEQUENCE_BATCH)
    .fetch_one(&mut *tx)
    .await
    .map_err(store_err)?;
    tx.commit().await.map_err(store_err)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(crate) fn row(r: &PgRow) -> StoreResult<EventRow> {
    let event_type: String = r.try_get("type").map_err(store_err)?;
    let payload: Value = r.try_get("payload").map_err(store_err)?;
    Ok(EventRow {
        id: r.try_get("id").map_err(store_err)?,
        payload: normalize_payload(&event_type, payload),
        event_type,
        task_id: r.try_get("task_id").map_err(store_err)?,
        step_id: r.try_get("step_id").map_err(store_err)?,
        namespace: r.try_get("namespace").map_err(store_err)?,
        created_at: r.try_get("created_at").map_err(store_err)?,
    })
}

pub(crate) async fn list(store: &PgStore, q: &EventQuery) -> StoreResult<Vec<EventRow>> {
    sequence(store).await?;
    // $1 after, $2 limit, then the optional filters.
    let mut n = 2;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    let mut sql = format!("SELECT {COLS} FROM events WHERE id > $1");
    if q.task_id.is_some() {
        sql.push_str(&format!(" AND task_id = {}", next()));
    }
    if q.namespace.is_some() {
        sql.push_str(&format!(" AND namespace = {}", next()));
    }
    let types = type_filter_sql(&q.types, &mut next);
    if let Some((cond, _)) = &types {
        sql.push_str(" AND ");
        sql.push_str(cond);
    }
    sql.push_str(" ORDER BY id LIMIT $2");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(q.after)
        .bind(i64::from(q.limit));
    if let Some(t) = q.task_id {
        query = query.bind(t);
    }
    if let Some(ns) = &q.namespace {
        query = query.bind(ns.clone());
    }
    if let Some((_, binds)) = types {
        for b in binds {
            query = query.bind(b);
        }
    }
    let rows = query
        .fetch_all(&store.inner.pool)
        .await
        .map_err(store_err)?;
    rows.iter().map(row).collect()
}

/// [`tasker_store::Store::events_list_many`]: one statement, the page of
/// each task cut by `row_number()` over the task's events (the
/// `events (task_id, id)` index serves each task's range).
pub(crate) async fn list_many(
    store: &PgStore,
    task_ids: &[Uuid],
    q: &EventQuery,
) -> StoreResult<HashMap<Uuid, Vec<EventRow>>> {
    let mut out: HashMap<Uuid, Vec<EventRow>> =
        task_ids.iter().map(|id| (*id, Vec::new())).collect();
    if task_ids.is_empty() || q.limit == 0 {
        return Ok(out);
    }
    sequence(store).await?;
    // $1 after, $2 limit, $3 the task ids, then the optional filters.
    let mut n = 3;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    let mut sql = format!(
        "SELECT {COLS} FROM (SELECT {COLS}, \
             row_number() OVER (PARTITION BY task_id ORDER BY id) AS rn \
             FROM events WHERE id > $1 AND task_id = ANY($3)"
    );
    if q.namespace.is_some() {
        sql.push_str(&format!(" AND namespace = {}", next()));
    }
    let types = type_filter_sql(&q.types, &mut next);
    if let Some((cond, _)) = &types {
        sql.push_str(" AND ");
        sql.push_str(cond);
    }
    sql.push_str(") e WHERE rn <= $2 ORDER BY id");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(q.after)
        .bind(i64::from(q.limit))
        .bind(task_ids);
    if let Some(ns) = &q.namespace {
        query = query.bind(ns.clone());
    }
    if let Some((_, binds)) = types {
        for b in binds {
            query = query.bind(b);
        }
    }
    let rows = query
        .fetch_all(&store.inner.pool)
        .await
        .map_err(store_err)?;
    for r in &rows {
        let e = row(r)?;
        out.entry(e.task_id).or_default().push(e);
    }
    Ok(out)
}

pub(crate) async fn last_id(store: &PgStore) -> StoreResult<i64> {
    sequence(store).await?;
    sqlx::query_scalar("SELECT last_id FROM events_sequencer")
        .fetch_one(&store.inner.pool)
        .await
        .map_err(store_err)
}

pub(crate) async fn emit(store: &PgStore, e: NewCustomEvent) -> StoreResult<()> {
    let now = store.rebase(e.now).now;
    let task_id: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO events (type, task_id, step_id, namespace, created_at, payload) \
         SELECT $1, s.task_id, s.id, t.namespace, $2, $3 \
         FROM steps s JOIN tasks t ON t.id = s.task_id \
         WHERE s.id = $4 AND ($5::uuid IS NULL OR (s.status = 'in_progress' AND s.lease_token = $5)) \
         RETURNING task_id",
    )
    .bind(&e.name)
    .bind(now)
    .bind(&e.payload)
    .bind(e.step_id)
    .bind(e.lease_token)
    .fetch_optional(&store.inner.pool)
    .await
    .map_err(store_err)?;
    let Some(task_id) = task_id else {
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM steps WHERE id = $1")
            .bind(e.step_id)
            .fetch_optional(&store.inner.pool)
            .await
            .map_err(store_err)?;
        return Err(match exists {
            Some(_) => StoreError::Conflict(format!(
                "step {} is not running under the given lease",
                e.step_id
            )),
            None => StoreError::NotFound {
                entity: "step",
                id: e.step_id,
            },
        });
    };
    let _ = store.inner.events.send(StoreEvent::TaskChanged(task_id));
    Ok(())
}

pub(crate) async fn prune(store: &PgStore, before: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
    // Number what committed first: with no reader, rows would otherwise
    // never get an id and never be pruned.
    sequence(store).await?;
    // Whole months first (docs/STORAGE.md, "Partitions"): a DROP TABLE
    // instead of a delete per row. They count toward `limit` only as far
    // as the caller's loop goes on while a full batch comes back.
    let dropped = store.event_partitions_drop(before).await?;
    if dropped > 0 {
        return Ok(dropped);
    }
    // Oldest first by `seq` (the primary key): the scan stops after `limit`
    // matches. Rows not numbered yet are kept (no reader could see them),
    // and so is the newest, as on SQLite (the trait's contract).
    let r = sqlx::query(
        "DELETE FROM events WHERE seq = ANY (ARRAY( \
             SELECT seq FROM events WHERE created_at < $1 AND id IS NOT NULL \
               AND seq < (SELECT max(seq) FROM events) \
             ORDER BY seq LIMIT $2))",
    )
    .bind(before)
    .bind(i64::from(limit))
    .execute(&store.inner.pool)
    .await
    .map_err(store_err)?;
    Ok(r.rows_affected())
}
