//! Task annotations: typed JSON notes, written through the writer connection.

use crate::SqliteStore;
use crate::codec::{json, json_text, micros, time};
use crate::error::DbResultExt;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use std::collections::HashMap;
use tasker_store::{AnnotationRow, NewAnnotation, StoreError, StoreResult, storable};
use uuid::Uuid;

/// Ids per `IN (...)` list (SQLite binds at most 32766 parameters).
const IN_CHUNK: usize = 500;

macro_rules! cols {
    () => {
        "id, task_id, type, content, created_at, created_by"
    };
}

fn row(r: &SqliteRow) -> StoreResult<AnnotationRow> {
    let content: String = r.try_get("content").db()?;
    Ok(AnnotationRow {
        id: r.try_get("id").db()?,
        task_id: r.try_get("task_id").db()?,
        annotation_type: r.try_get("type").db()?,
        content: json(&content)?,
        created_at: time(r.try_get("created_at").db()?)?,
        created_by: r.try_get("created_by").db()?,
    })
}

pub(crate) async fn create(s: &SqliteStore, a: NewAnnotation) -> StoreResult<AnnotationRow> {
    let nul = [&a.annotation_type, a.created_by.as_deref().unwrap_or("")]
        .iter()
        .any(|t| t.contains('\0'));
    if nul || storable::nul_in_json(&a.content).is_some() {
        return Err(StoreError::InvalidData(
            "the annotation contains a NUL character".into(),
        ));
    }
    // One statement: the row is inserted only when the task exists, so an
    // unknown task is a NotFound, not a foreign-key error.
    let r = sqlx::query(concat!(
        "INSERT INTO annotations (",
        cols!(),
        ") SELECT ?, id, ?, ?, ?, ? FROM tasks WHERE id = ? RETURNING ",
        cols!()
    ))
    .bind(a.id)
    .bind(&a.annotation_type)
    .bind(json_text(&a.content))
    .bind(micros(a.now))
    .bind(a.created_by.as_deref())
    .bind(a.task_id)
    .fetch_optional(&s.writer)
    .await
    .db()?;
    r.as_ref()
        .map(row)
        .transpose()?
        .ok_or(StoreError::NotFound {
            entity: "task",
            id: a.task_id,
        })
}

pub(crate) async fn list_many(
    pool: &SqlitePool,
    task_ids: &[Uuid],
) -> StoreResult<HashMap<Uuid, Vec<AnnotationRow>>> {
    let mut out: HashMap<Uuid, Vec<AnnotationRow>> = HashMap::new();
    for chunk in task_ids.chunks(IN_CHUNK) {
        // Placeholders only; the ids are bound, never spliced into the text.
        let marks = vec!["?"; chunk.len()].join(", ");
        let sql = format!(
            "SELECT {} FROM annotations WHERE task_id IN ({marks}) ORDER BY task_id, created_at, id",
            cols!()
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        for r in q.fetch_all(pool).await.db()? {
            let a = row(&r)?;
            out.entry(a.task_id).or_default().push(a);
        }
    }
    Ok(out)
}
