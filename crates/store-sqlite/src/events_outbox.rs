//! Lifecycle events (docs/EVENTS.md): reading the outbox the status
//! triggers write (`migrations/20261201000000_events_inline.sql`; pause and
//! resume in `pause.rs`), custom events, pruning.
//!
//! SQLite has one writer, so the rowid is already in commit order: readers
//! read it as it is.

use crate::SqliteStore;
use crate::codec::{micros, time};
use crate::effects::Events;
use crate::error::{DbResultExt, corrupt};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use std::collections::HashMap;
use tasker_store::outbox::{normalize_payload, type_filter_sql};
use tasker_store::{EventQuery, EventRow, NewCustomEvent, StoreError, StoreResult};
use uuid::Uuid;

pub(crate) const COLS: &str = "id, type, task_id, step_id, namespace, created_at, payload";

pub(crate) fn row(r: &SqliteRow) -> StoreResult<EventRow> {
    let event_type: String = r.try_get("type").db()?;
    let payload: String = r.try_get("payload").db()?;
    let payload =
        serde_json::from_str(&payload).map_err(|e| corrupt(format!("event payload: {e}")))?;
    Ok(EventRow {
        id: r.try_get("id").db()?,
        payload: normalize_payload(&event_type, payload),
        event_type,
        task_id: r.try_get("task_id").db()?,
        step_id: r.try_get("step_id").db()?,
        namespace: r.try_get("namespace").db()?,
        created_at: time(r.try_get("created_at").db()?)?,
    })
}

/// The events of the tasks whose ids are the placeholders `tasks`, newer
/// than the placeholder `after`, as a `FROM` source with the columns of
/// `events`.
///
/// No index on `events` covers every event of a task: each event the
/// status triggers write is `linked` from its transition's `event_id`, and
/// the transitions are indexed per task and per step already (migration
/// `20261203000000_events_linked.sql`). The rest (custom events, pause and
/// resume, and events written before that migration) are in the partial
/// index `events_task_unlinked_idx`. `CROSS JOIN` keeps SQLite from
/// driving the join from `events`, which would read the feed past `after`.
fn task_events(tasks: &str, after: &str) -> String {
    format!(
        "(SELECT event_id AS eid FROM task_transitions \
              WHERE task_id IN ({tasks}) AND event_id > {after} \
          UNION SELECT st.event_id FROM steps s JOIN step_transitions st ON st.step_id = s.id \
              WHERE s.task_id IN ({tasks}) AND st.event_id > {after} \
          UNION SELECT id FROM events \
              WHERE task_id IN ({tasks}) AND linked = 0 AND id > {after}) x \
         CROSS JOIN events ON events.id = x.eid"
    )
}

/// The filters every event query shares past the task (namespace, types),
/// numbered from `next`, with the values to bind in order.
fn filters(q: &EventQuery, sql: &mut String, next: &mut usize) -> Vec<String> {
    let mut binds = Vec::new();
    if let Some(ns) = &q.namespace {
        sql.push_str(&format!(" AND namespace = ?{next}"));
        *next += 1;
        binds.push(ns.clone());
    }
    let types = type_filter_sql(&q.types, &mut || {
        *next += 1;
        format!("?{}", *next - 1)
    });
    if let Some((cond, values)) = types {
        sql.push_str(" AND ");
        sql.push_str(&cond);
        binds.extend(values);
    }
    binds
}

/// The statement of [`list`] and the filter values to bind after the
/// cursor (`?1`) and the task (`?2`, when there is one); the limit is the
/// last parameter.
pub(crate) fn list_sql(q: &EventQuery) -> (String, Vec<String>) {
    let (mut sql, mut next) = match q.task_id {
        None => (format!("SELECT {COLS} FROM events WHERE id > ?1"), 2),
        Some(_) => (
            format!(
                "SELECT {COLS} FROM {} WHERE id > ?1 AND task_id = ?2",
                task_events("?2", "?1")
            ),
            3,
        ),
    };
    let binds = filters(q, &mut sql, &mut next);
    sql.push_str(&format!(" ORDER BY id LIMIT ?{next}"));
    (sql, binds)
}

pub(crate) async fn list(s: &SqliteStore, q: &EventQuery) -> StoreResult<Vec<EventRow>> {
    let (sql, binds) = list_sql(q);
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(q.after);
    if let Some(t) = q.task_id {
        query = query.bind(t);
    }
    for b in binds {
        query = query.bind(b);
    }
    let rows = query
        .bind(i64::from(q.limit))
        .fetch_all(&s.reader)
        .await
        .db()?;
    rows.iter().map(row).collect()
}

/// The statement of [`list_many`] for `tasks` task ids (`?2 …`), like
/// [`list_sql`].
pub(crate) fn list_many_sql(tasks: usize, q: &EventQuery) -> (String, Vec<String>) {
    let ids = (0..tasks)
        .map(|i| format!("?{}", i + 2))
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = format!(
        "SELECT {COLS} FROM (SELECT {COLS}, \
             row_number() OVER (PARTITION BY task_id ORDER BY id) AS rn \
             FROM {} WHERE id > ?1 AND task_id IN ({ids})",
        task_events(&ids, "?1")
    );
    let mut next = tasks + 2;
    let binds = filters(q, &mut sql, &mut next);
    sql.push_str(&format!(") WHERE rn <= ?{next} ORDER BY id"));
    (sql, binds)
}

/// [`tasker_store::Store::events_list_many`]: one statement, the page of
/// each task cut by `row_number()` over the task's events (found through
/// [`task_events`]).
pub(crate) async fn list_many(
    s: &SqliteStore,
    task_ids: &[Uuid],
    q: &EventQuery,
) -> StoreResult<HashMap<Uuid, Vec<EventRow>>> {
    let mut out: HashMap<Uuid, Vec<EventRow>> =
        task_ids.iter().map(|id| (*id, Vec::new())).collect();
    if task_ids.is_empty() || q.limit == 0 {
        return Ok(out);
    }
    let (sql, binds) = list_many_sql(task_ids.len(), q);
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(q.after);
    for id in task_ids {
        query = query.bind(*id);
    }
    for b in binds {
        query = query.bind(b);
    }
    let rows = query
        .bind(i64::from(q.limit))
        .fetch_all(&s.reader)
        .await
        .db()?;
    for r in &rows {
        let e = row(r)?;
        out.entry(e.task_id).or_default().push(e);
    }
    Ok(out)
}

pub(crate) async fn last_id(s: &SqliteStore) -> StoreResult<i64> {
    // The newest row is never pruned, so max(id) is the highest id given.
    let id: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM events")
        .fetch_one(&s.reader)
        .await
        .db()?;
    Ok(id.unwrap_or(0))
}

pub(crate) async fn emit(s: &SqliteStore, e: NewCustomEvent) -> StoreResult<()> {
    let payload = serde_json::to_string(&e.payload)
        .map_err(|err| StoreError::InvalidData(err.to_string()))?;
    let r = sqlx::query(
        "INSERT INTO events (type, task_id, step_id, namespace, created_at, payload)
         SELECT ?3, s.task_id, s.id, t.namespace, ?4, ?5
         FROM steps s JOIN tasks t ON t.id = s.task_id
         WHERE s.id = ?1 AND (?2 IS NULL OR (s.status = 'in_progress' AND s.lease_token = ?2))
         RETURNING task_id",
    )
    .bind(e.step_id)
    .bind(e.lease_token)
    .bind(&e.name)
    .bind(micros(e.now))
    .bind(payload)
    .fetch_optional(&s.writer)
    .await
    .db()?;
    let Some(r) = r else {
        return Err(refused(s, &e).await);
    };
    let mut events = Events::default();
    events.changed.insert(r.try_get("task_id").db()?);
    s.emit(events);
    Ok(())
}

/// Why a custom event was not recorded: the step is unknown, or it is not
/// running under the given lease.
async fn refused(s: &SqliteStore, e: &NewCustomEvent) -> StoreError {
    let exists = sqlx::query("SELECT 1 FROM steps WHERE id = ?")
        .bind(e.step_id)
        .fetch_optional(&s.reader)
        .await;
    match exists {
        Ok(Some(_)) => StoreError::Conflict(format!(
            "step {} is not running under the given lease",
            e.step_id
        )),
        Ok(None) => StoreError::NotFound {
            entity: "step",
            id: e.step_id,
        },
        Err(err) => StoreError::Internal(err.to_string()),
    }
}

pub(crate) async fn prune(s: &SqliteStore, before: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
    // The oldest rows first, by primary key: the scan stops after `limit`
    // matches, so a batch costs the same however long the table is. The
    // newest row always stays: ids are rowids (max + 1), and deleting the
    // newest would let its id be handed out again.
    let r = sqlx::query(
        "DELETE FROM events WHERE id IN (
             SELECT id FROM events WHERE created_at < ?1
               AND id < (SELECT max(id) FROM events)
             ORDER BY id LIMIT ?2)",
    )
    .bind(micros(before))
    .bind(i64::from(limit))
    .execute(&s.writer)
    .await
    .db()?;
    Ok(r.rows_affected())
}
