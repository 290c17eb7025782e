//! Schedules and their ticks (docs/FLOW_CONTROL.md, "Schedules").
//!
//! Firing a tick locks the schedule's row (`FOR UPDATE`), so processes
//! racing on one schedule take turns: the first checks that the tick is
//! newer than `last_tick_at`, inserts its key into `schedule_ticks` (the
//! primary key is the tick's identity), creates its task and moves
//! `last_tick_at`, all in one transaction; the others then find the tick
//! settled and create nothing. The unique key alone would already refuse
//! a second insert; the lock also keeps a late process from firing an
//! older tick after a newer one.

use crate::PgStore;
use crate::error::TxError;
use crate::events::{Emit, notify};
use crate::tx;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row};
use tasker_core::schedule::{CatchUp, ScheduleSpec};
use tasker_store::schedules::{check_pause, tick_allowed};
use tasker_store::{
    NewSchedule, ScheduleFire, ScheduleRow, ScheduleSource, StoreError, TaskRow, TickRow,
};
use uuid::Uuid;

const COLS: &str = "id, name, namespace, template, version, cron, timezone, every_seconds, \
     catch_up, catch_up_window_seconds, context, source, paused_at, anchor, last_tick_at, \
     created_at, updated_at";

fn row(r: &PgRow) -> Result<ScheduleRow, TxError> {
    let catch_up: String = r.try_get("catch_up")?;
    let every: Option<i64> = r.try_get("every_seconds")?;
    let window: Option<i64> = r.try_get("catch_up_window_seconds")?;
    let source: String = r.try_get("source")?;
    Ok(ScheduleRow {
        id: r.try_get("id")?,
        spec: ScheduleSpec {
            name: r.try_get("name")?,
            namespace: r.try_get("namespace")?,
            template: r.try_get("template")?,
            version: r.try_get("version")?,
            cron: r.try_get("cron")?,
            timezone: r.try_get("timezone")?,
            every_seconds: every.map(|n| n.max(0) as u64),
            catch_up: CatchUp::parse(&catch_up).ok_or_else(|| {
                StoreError::Internal(format!("schedule with catch_up `{catch_up}`"))
            })?,
            catch_up_window_seconds: window.map(|n| n.max(0) as u64),
            context: r.try_get("context")?,
        },
        source: ScheduleSource::parse(&source),
        paused_at: r.try_get("paused_at")?,
        anchor: r.try_get("anchor")?,
        last_tick_at: r.try_get("last_tick_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn not_found(id: Uuid) -> TxError {
    StoreError::NotFound {
        entity: "schedule",
        id,
    }
    .into()
}

impl PgStore {
    pub(crate) async fn schedule_save_once(
        &self,
        s: &NewSchedule,
        replace: bool,
    ) -> Result<(ScheduleRow, Emit), TxError> {
        let spec = &s.spec;
        let anchor = s.now.duration_trunc(TimeDelta::seconds(1)).unwrap_or(s.now);
        // `xmax = 0` is true for a row this statement inserted, false for
        // one it updated: a name taken when not replacing is a conflict.
        let r = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO schedules (id, name, namespace, template, version, cron, timezone, \
                 every_seconds, catch_up, catch_up_window_seconds, context, source, anchor, \
                 created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) \
             ON CONFLICT (name) DO UPDATE SET namespace = excluded.namespace, \
                 template = excluded.template, version = excluded.version, cron = excluded.cron, \
                 timezone = excluded.timezone, every_seconds = excluded.every_seconds, \
                 catch_up = excluded.catch_up, \
                 catch_up_window_seconds = excluded.catch_up_window_seconds, \
                 context = excluded.context, source = excluded.source, \
                 updated_at = excluded.updated_at \
             WHERE $15 \
             RETURNING {COLS}"
        )))
        .bind(s.id)
        .bind(&spec.name)
        .bind(&spec.namespace)
        .bind(&spec.template)
        .bind(&spec.version)
        .bind(&spec.cron)
        .bind(&spec.timezone)
        .bind(spec.every_seconds.map(|n| n as i64))
        .bind(spec.catch_up.as_str())
        .bind(spec.catch_up_window_seconds.map(|n| n as i64))
        .bind(&spec.context)
        .bind(s.source.as_str())
        .bind(anchor)
        .bind(s.now)
        .bind(replace)
        .fetch_optional(&self.inner.pool)
        .await?;
        match r {
            Some(r) => Ok((row(&r)?, Emit::default())),
            None => {
                Err(StoreError::Conflict(format!("a schedule named `{}` exists", spec.name)).into())
            }
        }
    }

    pub(crate) async fn schedule_get_by_name(
        &self,
        name: &str,
    ) -> Result<Option<ScheduleRow>, TxError> {
        let r = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLS} FROM schedules WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.inner.pool)
        .await?;
        r.as_ref().map(row).transpose()
    }

    pub(crate) async fn schedule_list_all(&self) -> Result<Vec<ScheduleRow>, TxError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLS} FROM schedules ORDER BY name"
        )))
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter().map(row).collect()
    }

    pub(crate) async fn schedule_delete_once(&self, id: Uuid) -> Result<((), Emit), TxError> {
        let n = sqlx::query("DELETE FROM schedules WHERE id = $1")
            .bind(id)
            .execute(&self.inner.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(not_found(id));
        }
        Ok(((), Emit::default()))
    }

    pub(crate) async fn schedule_set_paused_once(
        &self,
        id: Uuid,
        paused: bool,
        now: DateTime<Utc>,
    ) -> Result<(ScheduleRow, Emit), TxError> {
        let mut tx = self.inner.pool.begin().await?;
        let res = async {
            let current = sqlx::query(AssertSqlSafe(format!(
                "SELECT {COLS} FROM schedules WHERE id = $1 FOR UPDATE"
            )))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| not_found(id))?;
            check_pause(&row(&current)?, paused)?;
            let r = sqlx::query(AssertSqlSafe(format!(
                "UPDATE schedules SET paused_at = CASE WHEN $2 THEN $3 END, \
                     last_tick_at = CASE WHEN $2 THEN last_tick_at \
                                         ELSE GREATEST(last_tick_at, $3) END, \
                     updated_at = $3 \
                 WHERE id = $1 RETURNING {COLS}"
            )))
            .bind(id)
            .bind(paused)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            Ok((row(&r)?, Emit::default()))
        }
        .await;
        tx::end(tx, res).await
    }

    pub(crate) async fn schedule_fire_once(
        &self,
        f: &ScheduleFire,
    ) -> Result<(Option<TaskRow>, Emit), TxError> {
        let mut tx = self.inner.pool.begin().await?;
        let res = async {
            let r =
                sqlx::query("SELECT paused_at, last_tick_at FROM schedules WHERE id = $1 FOR UPDATE")
                    .bind(f.schedule_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| not_found(f.schedule_id))?;
            let paused = r
                .try_get::<Option<DateTime<Utc>>, _>("paused_at")?
                .is_some();
            let last: Option<DateTime<Utc>> = r.try_get("last_tick_at")?;
            if !f.manual && !tick_allowed(paused, last, f.scheduled_for) {
                return Ok((None, Emit::default()));
            }
            let inserted = sqlx::query(
                "INSERT INTO schedule_ticks (schedule_id, scheduled_for, manual, task_id, fired_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(f.schedule_id)
            .bind(f.scheduled_for)
            .bind(f.manual)
            .bind(f.task.id)
            .bind(f.task.now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Ok((None, Emit::default()));
            }
            let (rows, roots) = self
                .create_in(&mut tx, std::slice::from_ref(&f.task))
                .await?;
            if !f.manual {
                sqlx::query("UPDATE schedules SET last_tick_at = $2 WHERE id = $1")
                    .bind(f.schedule_id)
                    .bind(f.scheduled_for)
                    .execute(&mut *tx)
                    .await?;
            }
            let mut emit = Emit {
                work: roots > 0,
                ..Emit::default()
            };
            emit.changed(f.task.id);
            notify(&mut tx, &mut emit, self.origin()).await?;
            Ok((rows.into_iter().next(), emit))
        }
        .await;
        tx::end(tx, res).await
    }

    pub(crate) async fn schedule_ticks_read(
        &self,
        id: Uuid,
        limit: u32,
    ) -> Result<Vec<TickRow>, TxError> {
        let rows = sqlx::query(
            "SELECT schedule_id, scheduled_for, manual, task_id, fired_at FROM schedule_ticks \
             WHERE schedule_id = $1 ORDER BY scheduled_for DESC, manual LIMIT $2",
        )
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TickRow {
                    schedule_id: r.try_get("schedule_id")?,
                    scheduled_for: r.try_get("scheduled_for")?,
                    manual: r.try_get("manual")?,
                    task_id: r.try_get("task_id")?,
                    fired_at: r.try_get("fired_at")?,
                })
            })
            .collect()
    }
}
