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

/// A row's namespace: a step's row leaves it to its task (migration
/// `20261205000000_transitions_are_events.sql`); `''` for a row whose task
/// is gone and that kept none.
pub(crate) const NAMESPACE: &str =
    "COALESCE(events.namespace, (SELECT t.namespace FROM tasks t WHERE t.id = events.task_id), '')";

/// The columns of an event, read from `events`.
pub(crate) fn cols() -> String {
    format!(
        "events.id AS id, type, task_id, step_id, {NAMESPACE} AS namespace, created_at, payload"
    )
}

/// The rows of `events` that are events now: the ones a type names (not a
/// transition that has none), above the pruner's floor.
pub(crate) const LIVE: &str =
    "type IS NOT NULL AND events.id > (SELECT floor FROM events_floor WHERE id = 1)";

/// The columns of [`cols`] by name, outside the statement that reads them.
const PLAIN: &str = "id, type, task_id, step_id, namespace, created_at, payload";

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
/// `events`: a task's own rows through `events_task_idx`, its steps' rows
/// through its steps and `events_step_idx` (a task pruned from the history
/// has no steps left, so only its own rows still answer). `CROSS JOIN`
/// keeps SQLite from driving the join from `events`, which would read the
/// feed past `after`.
fn task_events(tasks: &str, after: &str) -> String {
    format!(
        "(SELECT id AS eid FROM events \
              WHERE step_id IS NULL AND task_id IN ({tasks}) AND id > {after} \
          UNION ALL SELECT e.id FROM steps s JOIN events e ON e.step_id = s.id \
              WHERE s.task_id IN ({tasks}) AND e.id > {after}) x \
         CROSS JOIN events ON events.id = x.eid"
    )
}

/// The filters every event query shares past the task (namespace, types),
/// numbered from `next`, with the values to bind in order.
fn filters(q: &EventQuery, sql: &mut String, next: &mut usize) -> Vec<String> {
    let mut binds = Vec::new();
    if let Some(ns) = &q.namespace {
        sql.push_str(&format!(" AND {NAMESPACE} = ?{next}"));
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
        None => (
            format!(
                "SELECT {} FROM events WHERE events.id > ?1 AND {LIVE}",
                cols()
            ),
            2,
        ),
        Some(_) => (
            format!(
                "SELECT {} FROM {} WHERE events.id > ?1 AND task_id = ?2 AND {LIVE}",
                cols(),
                task_events("?2", "?1")
            ),
            3,
        ),
    };
    let binds = filters(q, &mut sql, &mut next);
    sql.push_str(&format!(" ORDER BY events.id LIMIT ?{next} + 0"));
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
        "SELECT {PLAIN} FROM (SELECT {}, \
             row_number() OVER (PARTITION BY task_id ORDER BY events.id) AS rn \
             FROM {} WHERE events.id > ?1 AND task_id IN ({ids}) AND {LIVE}",
        cols(),
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
    // The newest event is never pruned, so it is the highest id given to
    // an event (read backwards from the end: past at most the few newest
    // rows that are only transitions).
    let id: Option<i64> =
        sqlx::query_scalar("SELECT id FROM events WHERE type IS NOT NULL ORDER BY id DESC LIMIT 1")
            .fetch_optional(&s.reader)
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

/// [`tasker_store::Store::events_prune`]: raises `events_floor` over the
/// oldest events created before `before` (at most `limit`, never the newest
/// event, as on PostgreSQL; the newest row is never deleted either: ids are
/// rowids, max + 1, and deleting the newest would let its id be handed out
/// again) and deletes those of them that are only events.
/// The rest are transitions, history that stays as long as its task
/// (migration `20261205000000_transitions_are_events.sql`). Both reads
/// start at the floor and stop after `limit` rows, so a batch costs the same
/// however long the table is.
pub(crate) async fn prune(s: &SqliteStore, before: DateTime<Utc>, limit: u32) -> StoreResult<u64> {
    let mut tx = s.begin().await?;
    let oldest: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT id, created_at FROM events
         WHERE id > (SELECT floor FROM events_floor WHERE id = 1) AND type IS NOT NULL
           AND id < (SELECT id FROM events WHERE type IS NOT NULL ORDER BY id DESC LIMIT 1)
         ORDER BY id LIMIT ?1 + 0",
    )
    .bind(i64::from(limit))
    .fetch_all(&mut *tx)
    .await
    .db()?;
    // Up to the first event that is young enough to stay.
    let cutoff = micros(before);
    let gone = oldest.iter().take_while(|(_, at)| *at < cutoff).count();
    let Some(&(floor, _)) = gone.checked_sub(1).and_then(|last| oldest.get(last)) else {
        return Ok(0);
    };
    sqlx::query("UPDATE events_floor SET floor = ?1 WHERE id = 1")
        .bind(floor)
        .execute(&mut *tx)
        .await
        .db()?;
    // At most `gone` of them: every row that is only an event and not yet
    // deleted lies above the old floor.
    sqlx::query(
        "DELETE FROM events WHERE id IN (
             SELECT id FROM events WHERE to_state IS NULL AND id <= ?1 ORDER BY id LIMIT ?2 + 0)",
    )
    .bind(floor)
    .bind(i64::try_from(gone).unwrap_or(i64::MAX))
    .execute(&mut *tx)
    .await
    .db()?;
    tx.commit().await.db()?;
    Ok(gone as u64)
}
