//! Schedules and their ticks (docs/FLOW_CONTROL.md, "Schedules").
//!
//! Firing a tick is one write transaction (the writer lock is held from
//! `BEGIN IMMEDIATE`): check the schedule, insert the tick's key, create
//! its task, move `last_tick_at`. Two processes on one file serialise on
//! the lock, and the second finds the tick settled.

use crate::SqliteStore;
use crate::codec::{json, json_text, micros, time};
use crate::effects::Events;
use crate::error::{DbResultExt, corrupt};
use crate::tasks::{create_in, new_task_row};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use tasker_core::schedule::{CatchUp, ScheduleSpec};
use tasker_store::schedules::{check_pause, tick_allowed};
use tasker_store::{
    NewSchedule, ScheduleFire, ScheduleRow, ScheduleSource, StoreError, StoreResult, TaskRow,
    TickRow,
};
use uuid::Uuid;

const COLS: &str = "id, name, namespace, template, version, cron, timezone, every_seconds, \
     catch_up, catch_up_window_seconds, context, source, paused_at, anchor, last_tick_at, \
     created_at, updated_at";

fn opt_time(v: Option<i64>) -> StoreResult<Option<DateTime<Utc>>> {
    v.map(time).transpose()
}

fn row(r: &SqliteRow) -> StoreResult<ScheduleRow> {
    let catch_up: String = r.try_get("catch_up").db()?;
    let every: Option<i64> = r.try_get("every_seconds").db()?;
    let window: Option<i64> = r.try_get("catch_up_window_seconds").db()?;
    let source: String = r.try_get("source").db()?;
    Ok(ScheduleRow {
        id: r.try_get("id").db()?,
        spec: ScheduleSpec {
            name: r.try_get("name").db()?,
            namespace: r.try_get("namespace").db()?,
            template: r.try_get("template").db()?,
            version: r.try_get("version").db()?,
            cron: r.try_get("cron").db()?,
            timezone: r.try_get("timezone").db()?,
            every_seconds: every.map(|n| n.max(0) as u64),
            catch_up: CatchUp::parse(&catch_up)
                .ok_or_else(|| corrupt(format!("catch_up `{catch_up}`")))?,
            catch_up_window_seconds: window.map(|n| n.max(0) as u64),
            context: json(r.try_get("context").db()?)?,
        },
        source: ScheduleSource::parse(&source),
        paused_at: opt_time(r.try_get("paused_at").db()?)?,
        anchor: time(r.try_get("anchor").db()?)?,
        last_tick_at: opt_time(r.try_get("last_tick_at").db()?)?,
        created_at: time(r.try_get("created_at").db()?)?,
        updated_at: time(r.try_get("updated_at").db()?)?,
    })
}

async fn by_id<'e, E>(conn: E, id: Uuid) -> StoreResult<ScheduleRow>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLS} FROM schedules WHERE id = ?1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
    .db()?
    .ok_or(StoreError::NotFound {
        entity: "schedule",
        id,
    })?;
    row(&r)
}

pub(crate) async fn save(
    store: &SqliteStore,
    s: NewSchedule,
    replace: bool,
) -> StoreResult<ScheduleRow> {
    let spec = &s.spec;
    let now = micros(s.now);
    let anchor = micros(s.now.duration_trunc(TimeDelta::seconds(1)).unwrap_or(s.now));
    let mut tx = store.begin().await?;
    let existing: Option<Uuid> = sqlx::query_scalar("SELECT id FROM schedules WHERE name = ?1")
        .bind(&spec.name)
        .fetch_optional(&mut *tx)
        .await
        .db()?;
    let id = match existing {
        Some(_) if !replace => {
            return Err(StoreError::Conflict(format!(
                "a schedule named `{}` exists",
                spec.name
            )));
        }
        Some(id) => id,
        None => s.id,
    };
    sqlx::query(
        "INSERT INTO schedules (id, name, namespace, template, version, cron, timezone,
             every_seconds, catch_up, catch_up_window_seconds, context, source, anchor,
             created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14)
         ON CONFLICT (id) DO UPDATE SET namespace = excluded.namespace,
             template = excluded.template, version = excluded.version, cron = excluded.cron,
             timezone = excluded.timezone, every_seconds = excluded.every_seconds,
             catch_up = excluded.catch_up,
             catch_up_window_seconds = excluded.catch_up_window_seconds,
             context = excluded.context, source = excluded.source,
             updated_at = excluded.updated_at",
    )
    .bind(id)
    .bind(&spec.name)
    .bind(&spec.namespace)
    .bind(&spec.template)
    .bind(&spec.version)
    .bind(&spec.cron)
    .bind(&spec.timezone)
    .bind(spec.every_seconds.map(|n| n as i64))
    .bind(spec.catch_up.as_str())
    .bind(spec.catch_up_window_seconds.map(|n| n as i64))
    .bind(json_text(&spec.context))
    .bind(s.source.as_str())
    .bind(anchor)
    .bind(now)
    .execute(&mut *tx)
    .await
    .db()?;
    let out = by_id(&mut *tx, id).await?;
    tx.commit().await.db()?;
    Ok(out)
}

pub(crate) async fn get(store: &SqliteStore, name: &str) -> StoreResult<Option<ScheduleRow>> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLS} FROM schedules WHERE name = ?1"
    )))
    .bind(name)
    .fetch_optional(&store.reader)
    .await
    .db()?;
    r.as_ref().map(row).transpose()
}

pub(crate) async fn list(store: &SqliteStore) -> StoreResult<Vec<ScheduleRow>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLS} FROM schedules ORDER BY name"
    )))
    .fetch_all(&store.reader)
    .await
    .db()?;
    rows.iter().map(row).collect()
}

pub(crate) async fn delete(store: &SqliteStore, id: Uuid) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    let n = sqlx::query("DELETE FROM schedules WHERE id = ?1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound {
            entity: "schedule",
            id,
        });
    }
    tx.commit().await.db()?;
    Ok(())
}

pub(crate) async fn set_paused(
    store: &SqliteStore,
    id: Uuid,
    paused: bool,
    now: DateTime<Utc>,
) -> StoreResult<ScheduleRow> {
    let mut tx = store.begin().await?;
    let current = by_id(&mut *tx, id).await?;
    check_pause(&current, paused)?;
    let now = micros(now);
    sqlx::query(
        "UPDATE schedules SET paused_at = CASE WHEN ?2 THEN ?3 END,
             last_tick_at = CASE WHEN ?2 THEN last_tick_at
                                 ELSE max(coalesce(last_tick_at, ?3), ?3) END,
             updated_at = ?3
         WHERE id = ?1",
    )
    .bind(id)
    .bind(paused)
    .bind(now)
    .execute(&mut *tx)
    .await
    .db()?;
    let out = by_id(&mut *tx, id).await?;
    tx.commit().await.db()?;
    Ok(out)
}

pub(crate) async fn fire(store: &SqliteStore, f: ScheduleFire) -> StoreResult<Option<TaskRow>> {
    let mut tx = store.begin().await?;
    let r = sqlx::query("SELECT paused_at, last_tick_at FROM schedules WHERE id = ?1")
        .bind(f.schedule_id)
        .fetch_optional(&mut *tx)
        .await
        .db()?
        .ok_or(StoreError::NotFound {
            entity: "schedule",
            id: f.schedule_id,
        })?;
    let paused = r.try_get::<Option<i64>, _>("paused_at").db()?.is_some();
    let last = opt_time(r.try_get("last_tick_at").db()?)?;
    if !f.manual && !tick_allowed(paused, last, f.scheduled_for) {
        return Ok(None);
    }
    let inserted = sqlx::query(
        "INSERT INTO schedule_ticks (schedule_id, scheduled_for, manual, task_id, fired_at)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
    )
    .bind(f.schedule_id)
    .bind(micros(f.scheduled_for))
    .bind(f.manual)
    .bind(f.task.id)
    .bind(micros(f.task.now))
    .execute(&mut *tx)
    .await
    .db()?
    .rows_affected();
    if inserted == 0 {
        return Ok(None);
    }
    let task_row = new_task_row(&f.task);
    let roots = create_in(&mut tx, std::slice::from_ref(&f.task)).await?;
    if !f.manual {
        sqlx::query("UPDATE schedules SET last_tick_at = ?2 WHERE id = ?1")
            .bind(f.schedule_id)
            .bind(micros(f.scheduled_for))
            .execute(&mut *tx)
            .await
            .db()?;
    }
    tx.commit().await.db()?;
    store.emit(Events {
        work_available: roots > 0,
        changed: [task_row.id].into(),
        ..Default::default()
    });
    Ok(Some(task_row))
}

pub(crate) async fn ticks(store: &SqliteStore, id: Uuid, limit: u32) -> StoreResult<Vec<TickRow>> {
    let rows = sqlx::query(
        "SELECT schedule_id, scheduled_for, manual, task_id, fired_at FROM schedule_ticks
         WHERE schedule_id = ?1 ORDER BY scheduled_for DESC, manual LIMIT ?2 + 0",
    )
    .bind(id)
    .bind(i64::from(limit))
    .fetch_all(&store.reader)
    .await
    .db()?;
    rows.iter()
        .map(|r| {
            Ok(TickRow {
                schedule_id: r.try_get("schedule_id").db()?,
                scheduled_for: time(r.try_get("scheduled_for").db()?)?,
                manual: r.try_get("manual").db()?,
                task_id: r.try_get("task_id").db()?,
                fired_at: time(r.try_get("fired_at").db()?)?,
            })
        })
        .collect()
}
