//! API keys: one small table, single statements on the pool.

use crate::PgStore;
use crate::error::store_err;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PgRow;
use tasker_store::{ApiKeyRow, NewApiKey, StoreError, StoreResult};
use uuid::Uuid;

macro_rules! cols {
    () => {
        "id, name, hash, permissions, created_at, expires_at, revoked_at"
    };
}

fn row(r: &PgRow) -> StoreResult<ApiKeyRow> {
    let permissions: Value = r.try_get("permissions").map_err(store_err)?;
    Ok(ApiKeyRow {
        id: r.try_get("id").map_err(store_err)?,
        name: r.try_get("name").map_err(store_err)?,
        hash: r.try_get("hash").map_err(store_err)?,
        permissions: serde_json::from_value(permissions)
            .map_err(|e| StoreError::Internal(format!("corrupt row: api key permissions: {e}")))?,
        created_at: r.try_get("created_at").map_err(store_err)?,
        expires_at: r.try_get("expires_at").map_err(store_err)?,
        revoked_at: r.try_get("revoked_at").map_err(store_err)?,
    })
}

fn not_found(id: Uuid) -> StoreError {
    StoreError::NotFound {
        entity: "api_key",
        id,
    }
}

impl PgStore {
    pub(crate) async fn key_create(&self, k: NewApiKey) -> StoreResult<ApiKeyRow> {
        let r = sqlx::query(concat!(
            "INSERT INTO api_keys (",
            cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, NULL) RETURNING ",
            cols!()
        ))
        .bind(k.id)
        .bind(&k.name)
        .bind(&k.hash)
        .bind(serde_json::json!(k.permissions))
        .bind(k.created_at)
        .bind(k.expires_at)
        .fetch_one(&self.inner.pool)
        .await
        .map_err(store_err)?;
        row(&r)
    }

    pub(crate) async fn key_get(&self, id: Uuid) -> StoreResult<ApiKeyRow> {
        let r = sqlx::query(concat!("SELECT ", cols!(), " FROM api_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(store_err)?;
        r.as_ref()
            .map(row)
            .transpose()?
            .ok_or_else(|| not_found(id))
    }

    pub(crate) async fn key_list(&self) -> StoreResult<Vec<ApiKeyRow>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            cols!(),
            " FROM api_keys ORDER BY created_at, id"
        ))
        .fetch_all(&self.inner.pool)
        .await
        .map_err(store_err)?;
        rows.iter().map(row).collect()
    }

    pub(crate) async fn key_revoke(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<ApiKeyRow> {
        let r = sqlx::query(concat!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 RETURNING ",
            cols!()
        ))
        .bind(now)
        .bind(id)
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(store_err)?;
        r.as_ref()
            .map(row)
            .transpose()?
            .ok_or_else(|| not_found(id))
    }
}
