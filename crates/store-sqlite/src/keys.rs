//! API keys: one small table, written through the writer connection.

use crate::SqliteStore;
use crate::codec::{micros, time};
use crate::error::{DbResultExt, corrupt};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use tasker_store::{ApiKeyRow, NewApiKey, StoreError, StoreResult};
use uuid::Uuid;

macro_rules! cols {
    () => {
        "id, name, hash, permissions, created_at, expires_at, revoked_at"
    };
}

fn row(r: &SqliteRow) -> StoreResult<ApiKeyRow> {
    let permissions: String = r.try_get("permissions").db()?;
    Ok(ApiKeyRow {
        id: r.try_get("id").db()?,
        name: r.try_get("name").db()?,
        hash: r.try_get("hash").db()?,
        permissions: serde_json::from_str(&permissions)
            .map_err(|e| corrupt(format!("api key permissions: {e}")))?,
        created_at: time(r.try_get("created_at").db()?)?,
        expires_at: r
            .try_get::<Option<i64>, _>("expires_at")
            .db()?
            .map(time)
            .transpose()?,
        revoked_at: r
            .try_get::<Option<i64>, _>("revoked_at")
            .db()?
            .map(time)
            .transpose()?,
    })
}

fn not_found(id: Uuid) -> StoreError {
    StoreError::NotFound {
        entity: "api_key",
        id,
    }
}

pub(crate) async fn create(s: &SqliteStore, k: NewApiKey) -> StoreResult<ApiKeyRow> {
    if k.name.contains('\0') {
        return Err(StoreError::InvalidData(
            "the key name contains a NUL character".into(),
        ));
    }
    let permissions = serde_json::to_string(&k.permissions)
        .map_err(|e| StoreError::InvalidData(e.to_string()))?;
    let r = sqlx::query(concat!(
        "INSERT INTO api_keys (",
        cols!(),
        ") VALUES (?, ?, ?, ?, ?, ?, NULL) RETURNING ",
        cols!()
    ))
    .bind(k.id)
    .bind(&k.name)
    .bind(&k.hash)
    .bind(permissions)
    .bind(micros(k.created_at))
    .bind(k.expires_at.map(micros))
    .fetch_one(&s.writer)
    .await
    .db()?;
    row(&r)
}

pub(crate) async fn get(s: &SqliteStore, id: Uuid) -> StoreResult<ApiKeyRow> {
    let r = sqlx::query(concat!("SELECT ", cols!(), " FROM api_keys WHERE id = ?"))
        .bind(id)
        .fetch_optional(&s.reader)
        .await
        .db()?;
    r.as_ref()
        .map(row)
        .transpose()?
        .ok_or_else(|| not_found(id))
}

pub(crate) async fn list(s: &SqliteStore) -> StoreResult<Vec<ApiKeyRow>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        cols!(),
        " FROM api_keys ORDER BY created_at, id"
    ))
    .fetch_all(&s.reader)
    .await
    .db()?;
    rows.iter().map(row).collect()
}

pub(crate) async fn revoke(
    s: &SqliteStore,
    id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<ApiKeyRow> {
    let r = sqlx::query(concat!(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? RETURNING ",
        cols!()
    ))
    .bind(micros(now))
    .bind(id)
    .fetch_optional(&s.writer)
    .await
    .db()?;
    r.as_ref()
        .map(row)
        .transpose()?
        .ok_or_else(|| not_found(id))
}
