//! Webhook subscribers and deliveries (see `tasker_store::webhooks`).
//!
//! SQLite has one writer, so claims and fan-outs are plain transactions on
//! the writer connection: no two can interleave, so no pair is ever handed
//! out twice while its lease holds.

use crate::SqliteStore;
use crate::codec::{micros, time};
use crate::error::{DbResultExt, corrupt};
use crate::events_outbox;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};
use std::collections::HashMap;
use tasker_store::{
    ClaimedDelivery, DeliveryClaim, DeliveryOutcome, DeliveryQuery, DeliveryResult, DeliveryRow,
    DeliveryStatus, NewWebhook, StoreError, StoreResult, WebhookRow, WebhookSource,
};
use tasker_store::{delivery_columns as delivery_cols, webhook_columns as hook_cols};
use uuid::Uuid;

fn json_list(r: &SqliteRow, col: &str) -> StoreResult<Vec<String>> {
    let text: String = r.try_get(col).db()?;
    serde_json::from_str(&text).map_err(|e| corrupt(format!("webhook {col}: {e}")))
}

fn hook_row(r: &SqliteRow) -> StoreResult<WebhookRow> {
    let source: String = r.try_get("source").db()?;
    Ok(WebhookRow {
        id: r.try_get("id").db()?,
        name: r.try_get("name").db()?,
        url: r.try_get("url").db()?,
        event_types: json_list(r, "event_types")?,
        namespaces: json_list(r, "namespaces")?,
        secret: r.try_get("secret").db()?,
        max_attempts: u32::try_from(r.try_get::<i64, _>("max_attempts").db()?).unwrap_or(1),
        timeout_ms: u32::try_from(r.try_get::<i64, _>("timeout_ms").db()?).unwrap_or(1),
        source: WebhookSource::parse(&source)
            .ok_or_else(|| corrupt(format!("webhook source {source}")))?,
        event_cursor: r.try_get("event_cursor").db()?,
        created_at: time(r.try_get("created_at").db()?)?,
        updated_at: time(r.try_get("updated_at").db()?)?,
    })
}

fn opt_time(r: &SqliteRow, col: &str) -> StoreResult<Option<DateTime<Utc>>> {
    r.try_get::<Option<i64>, _>(col).db()?.map(time).transpose()
}

fn delivery_row(r: &SqliteRow) -> StoreResult<DeliveryRow> {
    let status: String = r.try_get("status").db()?;
    Ok(DeliveryRow {
        webhook_id: r.try_get("webhook_id").db()?,
        event_id: r.try_get("event_id").db()?,
        task_id: r.try_get("task_id").db()?,
        event_type: r.try_get("event_type").db()?,
        event_created_at: time(r.try_get("event_created_at").db()?)?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("delivery status {status}")))?,
        attempts: u32::try_from(r.try_get::<i64, _>("attempts").db()?).unwrap_or(0),
        next_attempt_at: time(r.try_get("next_attempt_at").db()?)?,
        lease_owner: r.try_get("lease_owner").db()?,
        lease_expires_at: opt_time(r, "lease_expires_at")?,
        last_error: r.try_get("last_error").db()?,
        last_status_code: r
            .try_get::<Option<i64>, _>("last_status_code")
            .db()?
            .and_then(|c| u16::try_from(c).ok()),
        delivered_at: opt_time(r, "delivered_at")?,
        created_at: time(r.try_get("created_at").db()?)?,
        updated_at: time(r.try_get("updated_at").db()?)?,
    })
}

fn not_found(id: Uuid) -> StoreError {
    StoreError::NotFound {
        entity: "webhook",
        id,
    }
}

fn json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

async fn by_name(
    tx: &mut Transaction<'static, Sqlite>,
    name: &str,
) -> StoreResult<Option<WebhookRow>> {
    let r = sqlx::query(concat!(
        "SELECT ",
        hook_cols!(),
        " FROM webhooks WHERE name = ?"
    ))
    .bind(name)
    .fetch_optional(&mut **tx)
    .await
    .db()?;
    r.as_ref().map(hook_row).transpose()
}

async fn insert(tx: &mut Transaction<'static, Sqlite>, h: &NewWebhook) -> StoreResult<WebhookRow> {
    // The cursor starts at the newest event: a subscriber receives the
    // events recorded after it was created.
    let r = sqlx::query(concat!(
        "INSERT INTO webhooks (",
        hook_cols!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, \
           (SELECT COALESCE(max(id), 0) FROM events), ?10, ?10) RETURNING ",
        hook_cols!()
    ))
    .bind(h.id)
    .bind(&h.name)
    .bind(&h.url)
    .bind(json(&h.event_types))
    .bind(json(&h.namespaces))
    .bind(&h.secret)
    .bind(i64::from(h.max_attempts))
    .bind(i64::from(h.timeout_ms))
    .bind(h.source.as_str())
    .bind(micros(h.now))
    .fetch_one(&mut **tx)
    .await
    .db()?;
    hook_row(&r)
}

fn taken(name: &str) -> StoreError {
    StoreError::Conflict(format!("a webhook named `{name}` already exists"))
}

pub(crate) async fn create(s: &SqliteStore, h: NewWebhook) -> StoreResult<WebhookRow> {
    let mut tx = s.begin().await?;
    if by_name(&mut tx, &h.name).await?.is_some() {
        return Err(taken(&h.name));
    }
    let row = insert(&mut tx, &h).await?;
    tx.commit().await.db()?;
    Ok(row)
}

pub(crate) async fn sync_config(s: &SqliteStore, hooks: Vec<NewWebhook>) -> StoreResult<()> {
    let mut tx = s.begin().await?;
    let mut names = Vec::new();
    for h in &hooks {
        names.push(h.name.clone());
        match by_name(&mut tx, &h.name).await? {
            Some(old) if old.source == WebhookSource::Api => {
                return Err(StoreError::Conflict(format!(
                    "webhook `{}` of the configuration has the name of one created through the API",
                    h.name
                )));
            }
            Some(old) => {
                sqlx::query(
                    "UPDATE webhooks SET url = ?2, event_types = ?3, namespaces = ?4, secret = ?5, \
                     max_attempts = ?6, timeout_ms = ?7, updated_at = ?8 WHERE id = ?1",
                )
                .bind(old.id)
                .bind(&h.url)
                .bind(json(&h.event_types))
                .bind(json(&h.namespaces))
                .bind(&h.secret)
                .bind(i64::from(h.max_attempts))
                .bind(i64::from(h.timeout_ms))
                .bind(micros(h.now))
                .execute(&mut *tx)
                .await
                .db()?;
            }
            None => {
                insert(&mut tx, h).await?;
            }
        }
    }
    sqlx::query(
        "DELETE FROM webhooks WHERE source = 'config' \
           AND name NOT IN (SELECT value FROM json_each(?1))",
    )
    .bind(json(&names))
    .execute(&mut *tx)
    .await
    .db()?;
    tx.commit().await.db()
}

pub(crate) async fn get(s: &SqliteStore, id: Uuid) -> StoreResult<WebhookRow> {
    let r = sqlx::query(concat!(
        "SELECT ",
        hook_cols!(),
        " FROM webhooks WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(&s.reader)
    .await
    .db()?;
    r.as_ref()
        .map(hook_row)
        .transpose()?
        .ok_or_else(|| not_found(id))
}

pub(crate) async fn list(s: &SqliteStore) -> StoreResult<Vec<WebhookRow>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        hook_cols!(),
        " FROM webhooks ORDER BY name"
    ))
    .fetch_all(&s.reader)
    .await
    .db()?;
    rows.iter().map(hook_row).collect()
}

pub(crate) async fn delete(s: &SqliteStore, id: Uuid) -> StoreResult<()> {
    let r = sqlx::query("DELETE FROM webhooks WHERE id = ?")
        .bind(id)
        .execute(&s.writer)
        .await
        .db()?;
    if r.rows_affected() == 0 {
        return Err(not_found(id));
    }
    Ok(())
}

pub(crate) async fn fanout(s: &SqliteStore, limit: u32, now: DateTime<Utc>) -> StoreResult<u64> {
    let mut tx = s.begin().await?;
    let hooks: Vec<WebhookRow> = sqlx::query(concat!("SELECT ", hook_cols!(), " FROM webhooks"))
        .fetch_all(&mut *tx)
        .await
        .db()?
        .iter()
        .map(hook_row)
        .collect::<StoreResult<_>>()?;
    let mut written = 0;
    for h in hooks {
        let events = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT events.id AS id, type, task_id, {} AS namespace, created_at FROM events \
             WHERE events.id > ?1 AND {} ORDER BY events.id LIMIT ?2 + 0",
            events_outbox::NAMESPACE,
            events_outbox::LIVE
        )))
        .bind(h.event_cursor)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .db()?;
        let mut cursor = h.event_cursor;
        for e in &events {
            let id: i64 = e.try_get("id").db()?;
            cursor = cursor.max(id);
            let event_type: String = e.try_get("type").db()?;
            let namespace: String = e.try_get("namespace").db()?;
            if !h.wants(&event_type, &namespace) {
                continue;
            }
            let r = sqlx::query(
                "INSERT OR IGNORE INTO webhook_deliveries \
                 (webhook_id, event_id, task_id, event_type, event_created_at, status, attempts, \
                  next_attempt_at, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?6, ?6)",
            )
            .bind(h.id)
            .bind(id)
            .bind(e.try_get::<Uuid, _>("task_id").db()?)
            .bind(&event_type)
            .bind(e.try_get::<i64, _>("created_at").db()?)
            .bind(micros(now))
            .execute(&mut *tx)
            .await
            .db()?;
            written += r.rows_affected();
        }
        if cursor > h.event_cursor {
            sqlx::query("UPDATE webhooks SET event_cursor = ?2 WHERE id = ?1")
                .bind(h.id)
                .bind(cursor)
                .execute(&mut *tx)
                .await
                .db()?;
        }
    }
    tx.commit().await.db()?;
    Ok(written)
}

/// The claim: `?1` owner, `?2` lease token, `?3` lease expiry, `?4` now,
/// `?5` limit.
///
/// A pair is claimable when due, not held, and no earlier event of its
/// task is still pending for the same subscriber (per-task order). Both
/// indexes are named (`INDEXED BY`: SQLite refuses the statement rather
/// than plan it another way). The pairs are read in due order from
/// `webhook_deliveries_due_idx`, which stops after the batch: pairs in
/// backoff lie past `?4` and are never read. The order check is one probe
/// of `webhook_deliveries_task_idx` per candidate; left to itself SQLite
/// took the primary key (webhook, event id) and read every earlier pair of
/// the subscriber, delivered ones included, for every candidate (4.7 s per
/// claim with 200,000 delivered and 100,000 pending pairs).
pub(crate) const CLAIM_SQL: &str = "UPDATE webhook_deliveries SET lease_owner = ?1, \
         lease_token = ?2, lease_expires_at = ?3, attempts = attempts + 1, updated_at = ?4 \
     WHERE (webhook_id, event_id) IN ( \
         SELECT d.webhook_id, d.event_id \
         FROM webhook_deliveries d INDEXED BY webhook_deliveries_due_idx \
         WHERE d.status = 'pending' AND d.next_attempt_at <= ?4 \
           AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= ?4) \
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p \
               INDEXED BY webhook_deliveries_task_idx \
               WHERE p.webhook_id = d.webhook_id AND p.task_id = d.task_id \
                 AND p.status = 'pending' AND p.event_id < d.event_id) \
         ORDER BY d.next_attempt_at, d.event_id LIMIT ?5 + 0) \
     RETURNING webhook_id, event_id, attempts";

pub(crate) async fn claim(s: &SqliteStore, c: &DeliveryClaim) -> StoreResult<Vec<ClaimedDelivery>> {
    let token = Uuid::new_v4();
    let now = micros(c.now);
    let mut tx = s.begin().await?;
    let claimed = sqlx::query(CLAIM_SQL)
        .bind(&c.owner)
        .bind(token)
        .bind(micros(c.lease_until))
        .bind(now)
        .bind(i64::from(c.limit))
        .fetch_all(&mut *tx)
        .await
        .db()?;
    if claimed.is_empty() {
        tx.commit().await.db()?;
        return Ok(Vec::new());
    }
    let mut ids = Vec::new();
    for r in &claimed {
        ids.push(r.try_get::<i64, _>("event_id").db()?);
    }
    let mut events = HashMap::new();
    for r in sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM events WHERE id IN (SELECT value FROM json_each(?1)) AND {}",
        events_outbox::cols(),
        events_outbox::LIVE
    )))
    .bind(serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()))
    .fetch_all(&mut *tx)
    .await
    .db()?
    {
        let e = events_outbox::row(&r)?;
        events.insert(e.id, e);
    }
    let hooks: HashMap<Uuid, WebhookRow> =
        sqlx::query(concat!("SELECT ", hook_cols!(), " FROM webhooks"))
            .fetch_all(&mut *tx)
            .await
            .db()?
            .iter()
            .map(|r| hook_row(r).map(|h| (h.id, h)))
            .collect::<StoreResult<_>>()?;
    tx.commit().await.db()?;
    let mut out = Vec::with_capacity(claimed.len());
    for r in &claimed {
        let webhook_id: Uuid = r.try_get("webhook_id").db()?;
        let event_id: i64 = r.try_get("event_id").db()?;
        let Some(webhook) = hooks.get(&webhook_id) else {
            continue;
        };
        out.push(ClaimedDelivery {
            webhook: webhook.clone(),
            event_id,
            event: events.get(&event_id).cloned(),
            attempt: u32::try_from(r.try_get::<i64, _>("attempts").db()?).unwrap_or(1),
            lease_token: token,
        });
    }
    out.sort_by_key(|d| d.event_id);
    Ok(out)
}

pub(crate) async fn finish(s: &SqliteStore, outcomes: Vec<DeliveryOutcome>) -> StoreResult<u64> {
    if outcomes.is_empty() {
        return Ok(0);
    }
    let mut tx = s.begin().await?;
    let mut applied = 0;
    for o in outcomes {
        let now = micros(o.now);
        let (status, next, error, code, delivered) = match &o.result {
            DeliveryResult::Delivered { status_code } => {
                ("delivered", now, None, Some(*status_code), Some(now))
            }
            DeliveryResult::Failed {
                error,
                status_code,
                retry_at: Some(at),
            } => ("pending", micros(*at), Some(error), *status_code, None),
            DeliveryResult::Failed {
                error,
                status_code,
                retry_at: None,
            } => ("dead", now, Some(error), *status_code, None),
        };
        let r = sqlx::query(
            "UPDATE webhook_deliveries SET status = ?4, next_attempt_at = ?5, last_error = ?6, \
                 last_status_code = ?7, delivered_at = ?8, lease_owner = NULL, lease_token = NULL, \
                 lease_expires_at = NULL, updated_at = ?9 \
             WHERE webhook_id = ?1 AND event_id = ?2 AND lease_token = ?3 AND status = 'pending'",
        )
        .bind(o.webhook_id)
        .bind(o.event_id)
        .bind(o.lease_token)
        .bind(status)
        .bind(next)
        .bind(error)
        .bind(code.map(i64::from))
        .bind(delivered)
        .bind(now)
        .execute(&mut *tx)
        .await
        .db()?;
        applied += r.rows_affected();
    }
    tx.commit().await.db()?;
    Ok(applied)
}

pub(crate) async fn deliveries(
    s: &SqliteStore,
    q: &DeliveryQuery,
) -> StoreResult<Vec<DeliveryRow>> {
    get(s, q.webhook_id).await?;
    let rows = sqlx::query(concat!(
        "SELECT ",
        delivery_cols!(),
        " FROM webhook_deliveries WHERE webhook_id = ?1 AND event_id > ?2 \
           AND (?3 IS NULL OR status = ?3) ORDER BY event_id LIMIT ?4 + 0"
    ))
    .bind(q.webhook_id)
    .bind(q.after)
    .bind(q.status.map(DeliveryStatus::as_str))
    .bind(i64::from(q.limit))
    .fetch_all(&s.reader)
    .await
    .db()?;
    rows.iter().map(delivery_row).collect()
}

pub(crate) async fn redeliver(
    s: &SqliteStore,
    webhook_id: Uuid,
    event_ids: Option<Vec<i64>>,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    get(s, webhook_id).await?;
    let ids = event_ids.map(|ids| serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()));
    let r = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?3, \
             delivered_at = NULL, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, \
             updated_at = ?3 \
         WHERE webhook_id = ?1 AND CASE WHEN ?2 IS NULL THEN status = 'dead' \
             ELSE status IN ('dead', 'delivered') \
                  AND event_id IN (SELECT value FROM json_each(?2)) END",
    )
    .bind(webhook_id)
    .bind(ids)
    .bind(micros(now))
    .execute(&s.writer)
    .await
    .db()?;
    Ok(r.rows_affected())
}

/// Settled pairs of pruned events (at or below the pruner's floor,
/// src/events_outbox.rs), at most `limit`, read through
/// `webhook_deliveries_settled_idx` per subscriber (its predicate written
/// out, so the partial index can be named).
pub(crate) async fn prune(s: &SqliteStore, limit: u32) -> StoreResult<u64> {
    let r = sqlx::query(
        "DELETE FROM webhook_deliveries WHERE (webhook_id, event_id) IN ( \
             SELECT d.webhook_id, d.event_id FROM webhooks w \
             JOIN webhook_deliveries d INDEXED BY webhook_deliveries_settled_idx \
               ON d.webhook_id = w.id AND d.status <> 'pending' \
              AND d.status IN ('delivered', 'dead') \
              AND d.event_id <= (SELECT floor FROM events_floor WHERE id = 1) \
             LIMIT ?1 + 0)",
    )
    .bind(i64::from(limit))
    .execute(&s.writer)
    .await
    .db()?;
    Ok(r.rows_affected())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Arc;
    use tasker_store::Store;
    use tasker_store::conformance::webhooks::hook;

    /// With a large backlog generated in SQL (100,000 delivered pairs,
    /// 20,000 in backoff, 20,000 due, some held behind an earlier event of
    /// their task), the claim's plan walks the due index and probes the
    /// task index, never the primary key or a scan; and a claim returns
    /// the first due pairs in order, none held.
    #[tokio::test]
    async fn claim_walks_the_due_index_whatever_the_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        let s: Arc<dyn Store> = Arc::new(store.clone());
        let h = s
            .webhook_create(hook("plan", &["*"], WebhookSource::Api))
            .await
            .unwrap();
        let now = micros(Utc::now());
        // Ids 1..=100,000 delivered, ..=120,000 in backoff for an hour, the
        // rest due since a minute; every 100th due one is the second event
        // of the task of the one before it.
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 140000) \
             INSERT INTO webhook_deliveries (webhook_id, event_id, task_id, event_type, \
                 event_created_at, status, attempts, next_attempt_at, created_at, updated_at) \
             SELECT ?1, i, \
                    CAST(printf('%016d', CASE WHEN i > 120000 AND i % 100 = 0 THEN i - 1 ELSE i END) AS BLOB), \
                    'task.created', ?2, CASE WHEN i <= 100000 THEN 'delivered' ELSE 'pending' END, \
                    0, CASE WHEN i > 100000 AND i <= 120000 THEN ?2 + 3600000000 ELSE ?2 - 60000000 END, \
                    ?2, ?2 \
             FROM n",
        )
        .bind(h.id)
        .bind(now)
        .execute(&store.writer)
        .await
        .unwrap();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {CLAIM_SQL}"
        )))
        .bind("o")
        .bind(Uuid::new_v4())
        .bind(now)
        .bind(now)
        .bind(200_i64)
        .fetch_all(&store.reader)
        .await
        .unwrap();
        let plan = rows
            .iter()
            .map(|r| r.try_get::<String, _>(3).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            plan.contains("SEARCH d USING INDEX webhook_deliveries_due_idx (next_attempt_at<?)"),
            "{plan}"
        );
        assert!(
            // `COVERING INDEX` once SQLite sees the index answers alone.
            plan.contains(
                "INDEX webhook_deliveries_task_idx (webhook_id=? AND task_id=? AND event_id<?)"
            ) && plan.contains("SEARCH p USING"),
            "{plan}"
        );
        assert!(!plan.contains("SCAN"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");

        let claimed = s
            .webhook_claim(&DeliveryClaim {
                owner: "a".into(),
                limit: 200,
                now: time(now).unwrap(),
                lease_until: time(now + 30_000_000).unwrap(),
            })
            .await
            .unwrap();
        let ids: Vec<i64> = claimed.iter().map(|c| c.event_id).collect();
        let expected: Vec<i64> = (120_001..).filter(|i| i % 100 != 0).take(200).collect();
        assert_eq!(ids, expected);
    }
}
