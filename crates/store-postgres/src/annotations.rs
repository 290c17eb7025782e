//! Task annotations: typed JSON notes, single statements on the pool.

use crate::PgStore;
use crate::error::store_err;
use sqlx::Row;
use sqlx::postgres::PgRow;
use std::collections::HashMap;
use tasker_store::{AnnotationRow, NewAnnotation, StoreError, StoreResult, storable};
use uuid::Uuid;

macro_rules! cols {
    () => {
        "id, task_id, type, content, created_at, created_by"
    };
}

fn row(r: &PgRow) -> StoreResult<AnnotationRow> {
    Ok(AnnotationRow {
        id: r.try_get("id").map_err(store_err)?,
        task_id: r.try_get("task_id").map_err(store_err)?,
        annotation_type: r.try_get("type").map_err(store_err)?,
        content: r.try_get("content").map_err(store_err)?,
        created_at: r.try_get("created_at").map_err(store_err)?,
        created_by: r.try_get("created_by").map_err(store_err)?,
    })
}

impl PgStore {
    pub(crate) async fn annotation_insert(&self, a: NewAnnotation) -> StoreResult<AnnotationRow> {
        let nul = [&a.annotation_type, a.created_by.as_deref().unwrap_or("")]
            .iter()
            .any(|t| t.contains('\0'));
        if nul || storable::nul_in_json(&a.content).is_some() {
            return Err(StoreError::InvalidData(
                "the annotation contains a NUL character".into(),
            ));
        }
        // One statement: the row is inserted only when the task exists, so an
        // unknown task is a NotFound. FOR KEY SHARE is the lock a foreign key
        // would take (there is none: retention deletes annotations with their
        // task, migration 20261130500000): an annotation racing the pruner
        // either lands first and is deleted with the task, or waits for the
        // delete and finds no task.
        let r = sqlx::query(concat!(
            "INSERT INTO annotations (",
            cols!(),
            ") SELECT $1, id, $2, $3, $4, $5 FROM tasks WHERE id = $6 FOR KEY SHARE RETURNING ",
            cols!()
        ))
        .bind(a.id)
        .bind(&a.annotation_type)
        .bind(&a.content)
        .bind(a.now)
        .bind(a.created_by.as_deref())
        .bind(a.task_id)
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(store_err)?;
        r.as_ref()
            .map(row)
            .transpose()?
            .ok_or(StoreError::NotFound {
                entity: "task",
                id: a.task_id,
            })
    }

    pub(crate) async fn annotation_read_many(
        &self,
        task_ids: &[Uuid],
    ) -> StoreResult<HashMap<Uuid, Vec<AnnotationRow>>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            cols!(),
            " FROM annotations WHERE task_id = ANY($1) ORDER BY task_id, created_at, id"
        ))
        .bind(task_ids)
        .fetch_all(&self.inner.pool)
        .await
        .map_err(store_err)?;
        let mut out: HashMap<Uuid, Vec<AnnotationRow>> = HashMap::new();
        for r in &rows {
            let a = row(r)?;
            out.entry(a.task_id).or_default().push(a);
        }
        Ok(out)
    }
}
