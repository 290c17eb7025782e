//! Pausing a whole namespace or template (docs/FLOW_CONTROL.md).
//!
//! A pause or resume holds its namespace's advisory lock exclusively until
//! it commits; creators take it shared (`tasker_flow_pauses_for`, see the
//! migration; the creation statement, `create.rs`, calls it) before reading the pauses. So a task created while a pause
//! commits either waits for it and starts paused, or commits first and is
//! paused by it: none is left running. Steps are locked in id order (the
//! hot path's order) before `paused` is flipped.

use crate::PgStore;
use crate::error::TxError;
use crate::events::{Emit, notify};
use crate::tx;
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use tasker_store::flow_pause::{already_paused, not_paused};
use tasker_store::{FlowPauseRow, FlowScope};
use uuid::Uuid;

const COLS: &str = "namespace, name, paused_at, paused_by, reason";

fn row(r: &PgRow) -> Result<FlowPauseRow, TxError> {
    let name: String = r.try_get("name")?;
    Ok(FlowPauseRow {
        scope: FlowScope {
            namespace: r.try_get("namespace")?,
            name: (!name.is_empty()).then_some(name),
        },
        paused_at: r.try_get("paused_at")?,
        paused_by: r.try_get("paused_by")?,
        reason: r.try_get("reason")?,
    })
}

/// Takes a namespace's flow lock, exclusively (pause, resume) or shared.
pub(crate) async fn lock_namespace(
    tx: &mut sqlx::PgConnection,
    namespace: &str,
    exclusive: bool,
) -> Result<(), TxError> {
    let sql = if exclusive {
        "SELECT pg_advisory_xact_lock(hashtextextended('tasker.flow:' || $1, 0))"
    } else {
        "SELECT pg_advisory_xact_lock_shared(hashtextextended('tasker.flow:' || $1, 0))"
    };
    sqlx::query(sql).bind(namespace).execute(&mut *tx).await?;
    Ok(())
}

/// Whether a pause of its namespace or template holds task `id` (the
/// caller holds the namespace's lock).
pub(crate) async fn holds_task(tx: &mut sqlx::PgConnection, id: Uuid) -> Result<bool, TxError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM tasks t JOIN flow_pauses f \
                        ON f.namespace = t.namespace AND f.name IN ('', t.name) \
                        WHERE t.id = $1)",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?)
}

impl PgStore {
    pub(crate) async fn flow_pause_once(
        &self,
        scope: &FlowScope,
        now: DateTime<Utc>,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> Result<(FlowPauseRow, Emit), TxError> {
        let mut tx = self.inner.pool.begin().await?;
        let res = async {
            lock_namespace(&mut tx, &scope.namespace, true).await?;
            let r = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO flow_pauses (namespace, name, paused_at, paused_by, reason) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING {COLS}"
            )))
            .bind(&scope.namespace)
            .bind(scope.name_key())
            .bind(now)
            .bind(by)
            .bind(reason)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| TxError::from(already_paused(scope)))?;
            sqlx::query(
                "WITH lk AS ( \
                     SELECT s.id FROM steps s JOIN tasks t ON t.id = s.task_id \
                     WHERE t.namespace = $1 AND ($2 = '' OR t.name = $2) \
                       AND t.status IN ('pending', 'in_progress', 'error') AND NOT s.paused \
                     ORDER BY s.id FOR NO KEY UPDATE OF s \
                 ) UPDATE steps s SET paused = true FROM lk WHERE s.id = lk.id",
            )
            .bind(&scope.namespace)
            .bind(scope.name_key())
            .execute(&mut *tx)
            .await?;
            Ok((row(&r)?, Emit::default()))
        }
        .await;
        tx::end(tx, res).await
    }

    pub(crate) async fn flow_resume_once(
        &self,
        scope: &FlowScope,
    ) -> Result<(FlowPauseRow, Emit), TxError> {
        let mut tx = self.inner.pool.begin().await?;
        let res = async {
            lock_namespace(&mut tx, &scope.namespace, true).await?;
            let r = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM flow_pauses WHERE namespace = $1 AND name = $2 RETURNING {COLS}"
            )))
            .bind(&scope.namespace)
            .bind(scope.name_key())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| TxError::from(not_paused(scope)))?;
            // Only steps no other pause holds: the task's own, or another scope's.
            let ready: i64 = sqlx::query_scalar(
                "WITH lk AS ( \
                     SELECT s.id FROM steps s JOIN tasks t ON t.id = s.task_id \
                     WHERE t.namespace = $1 AND ($2 = '' OR t.name = $2) \
                       AND t.status IN ('pending', 'in_progress', 'error') AND s.paused \
                       AND t.paused_at IS NULL \
                       AND NOT EXISTS (SELECT 1 FROM flow_pauses f \
                                       WHERE f.namespace = t.namespace AND f.name IN ('', t.name)) \
                     ORDER BY s.id FOR NO KEY UPDATE OF s \
                 ), upd AS ( \
                     UPDATE steps s SET paused = false, \
                         parked = CASE WHEN s.flow_wait = 'task_slot' THEN false ELSE s.parked END, \
                         flow_wait = CASE WHEN s.flow_wait = 'task_slot' THEN NULL ELSE s.flow_wait END \
                     FROM lk WHERE s.id = lk.id RETURNING s.ready_at \
                 ) SELECT count(*) FROM upd WHERE ready_at IS NOT NULL",
            )
            .bind(&scope.namespace)
            .bind(scope.name_key())
            .fetch_one(&mut *tx)
            .await?;
            let mut emit = Emit {
                work: ready > 0,
                ..Emit::default()
            };
            notify(&mut tx, &mut emit, self.origin()).await?;
            Ok((row(&r)?, emit))
        }
        .await;
        tx::end(tx, res).await
    }

    pub(crate) async fn flow_pauses_read(&self) -> Result<Vec<FlowPauseRow>, TxError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM flow_pauses ORDER BY namespace, name"
        )))
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter().map(row).collect()
    }
}
