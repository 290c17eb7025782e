//! Webhook subscribers and deliveries (see `tasker_store::webhooks`).
//!
//! Many processes share delivery:
//! - fan-out locks the subscriber rows it works on (`FOR UPDATE SKIP
//!   LOCKED`): one process at a time moves a subscriber's cursor, others
//!   skip it, and the primary key (webhook, event) refuses a second row;
//! - a claim locks the pairs it picks (`FOR UPDATE SKIP LOCKED`) and writes
//!   a lease (owner, token, expiry) in the same statement. A concurrent
//!   claimer skips rows being claimed, and one that reaches a row just
//!   claimed re-checks it (READ COMMITTED re-evaluates the WHERE on the new
//!   row version) and finds the lease: no pair is in flight twice while its
//!   lease holds. An expired lease makes the pair claimable again
//!   (redelivery after a crash).
//!
//! Times are rebased onto the database clock like leases of steps
//! (`clock.rs`), so hosts with different clocks agree on expiry.

use crate::PgStore;
use crate::error::store_err;
use crate::events_outbox;
use crate::tx;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PgRow;
use tasker_store::{
    ClaimedDelivery, DeliveryClaim, DeliveryOutcome, DeliveryQuery, DeliveryResult, DeliveryRow,
    DeliveryStatus, NewWebhook, StoreError, StoreResult, WebhookRow, WebhookSource,
};
use tasker_store::{delivery_columns as delivery_cols, webhook_columns as hook_cols};
use uuid::Uuid;

/// Planner settings of the claim and of the outcome writes, for their
/// transaction: index walks and nested loops over primary keys, never a
/// sort, bitmap, hash or merge over the table. Without statistics (a table
/// filled since the last ANALYZE: every backlog starts so) the planner
/// otherwise took a bitmap scan of every pending pair, a sort, and an
/// anti-join per pair that read every pending pair of the subscriber:
/// about 1 s per claim for 10,000 pending pairs (docs/PERFORMANCE.md).
pub(crate) const PIN_PLAN: &str = "SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off; \
     SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; \
     SET LOCAL enable_mergejoin = off";

/// The claim: `$1` now, `$2` limit, `$3` owner, `$4` lease token, `$5`
/// lease expiry.
///
/// A pair is claimable when due, not held, and no earlier event of its
/// task is still pending for the same subscriber (per-task order). The
/// pairs are read in due order from `webhook_deliveries_due_idx`, which
/// stops after the batch: pairs in backoff lie past `$1` and are never
/// read, so the cost of a claim is its batch plus the pairs in flight and
/// those waiting behind an earlier event of their task, not the backlog.
/// The order check is one probe of `webhook_deliveries_task_idx` per
/// candidate: `OFFSET 0` keeps the `NOT EXISTS` a subplan run per
/// candidate with the candidate's subscriber, task and event in its index
/// condition. Pulled up into an anti-join it left the planner free, with
/// statistics taken when nothing was pending, to read the whole index for
/// each candidate and filter (80 s for a claim of 200 with 100,000 pending
/// pairs). The event is read by id value (no foreign key, no reliance on a
/// unique id: the table is partitioned).
pub(crate) const CLAIM_SQL: &str = "WITH c AS ( \
         SELECT d.webhook_id, d.event_id FROM webhook_deliveries d \
         WHERE d.status = 'pending' AND d.next_attempt_at <= $1 \
           AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= $1) \
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p \
               WHERE p.webhook_id = d.webhook_id AND p.task_id = d.task_id \
                 AND p.status = 'pending' AND p.event_id < d.event_id OFFSET 0) \
         ORDER BY d.next_attempt_at, d.event_id LIMIT $2 \
         FOR UPDATE OF d SKIP LOCKED), \
     u AS ( \
         UPDATE webhook_deliveries d SET lease_owner = $3, lease_token = $4, \
             lease_expires_at = $5, attempts = d.attempts + 1, updated_at = $1 \
         FROM c WHERE d.webhook_id = c.webhook_id AND d.event_id = c.event_id \
         RETURNING d.webhook_id, d.event_id AS claimed_event_id, d.attempts) \
     SELECT u.webhook_id, u.claimed_event_id, u.attempts, \
            e.id, e.type, e.task_id, e.step_id, e.namespace, e.created_at, e.payload \
     FROM u LEFT JOIN LATERAL ( \
         SELECT id, type, task_id, step_id, namespace, created_at, payload \
         FROM events WHERE events.id = u.claimed_event_id LIMIT 1) e ON true";

/// The outcomes of a batch of deliveries, one statement: `$1`..`$9` are
/// parallel arrays (webhook, event, lease token, status, next attempt,
/// error, status code, delivered at, now). Only the holder of the lease
/// writes (`lease_token`); a late outcome after a lease expired is ignored.
/// A token is only ever on a pending pair (the claim writes it, every other
/// write clears it), so the match is the whole guard: a `status =
/// 'pending'` test here would let the planner reach the row through a
/// partial index on `status = 'pending'` by its first column only (every
/// pending pair of the subscriber) instead of the primary key.
pub(crate) const FINISH_SQL: &str = "UPDATE webhook_deliveries d SET status = o.status, \
         next_attempt_at = o.next, last_error = o.error, last_status_code = o.code, \
         delivered_at = o.delivered, lease_owner = NULL, lease_token = NULL, \
         lease_expires_at = NULL, updated_at = o.now \
     FROM UNNEST($1::uuid[], $2::bigint[], $3::uuid[], $4::text[], $5::timestamptz[], \
                 $6::text[], $7::int[], $8::timestamptz[], $9::timestamptz[]) \
          AS o(webhook_id, event_id, token, status, next, error, code, delivered, now) \
     WHERE d.webhook_id = o.webhook_id AND d.event_id = o.event_id \
       AND d.lease_token = o.token";

fn corrupt(what: String) -> StoreError {
    StoreError::Internal(format!("corrupt row: {what}"))
}

fn json_list(r: &PgRow, col: &str) -> StoreResult<Vec<String>> {
    let v: Value = r.try_get(col).map_err(store_err)?;
    serde_json::from_value(v).map_err(|e| corrupt(format!("webhook {col}: {e}")))
}

fn hook_row(r: &PgRow) -> StoreResult<WebhookRow> {
    let source: String = r.try_get("source").map_err(store_err)?;
    Ok(WebhookRow {
        id: r.try_get("id").map_err(store_err)?,
        name: r.try_get("name").map_err(store_err)?,
        url: r.try_get("url").map_err(store_err)?,
        event_types: json_list(r, "event_types")?,
        namespaces: json_list(r, "namespaces")?,
        secret: r.try_get("secret").map_err(store_err)?,
        max_attempts: u32::try_from(r.try_get::<i32, _>("max_attempts").map_err(store_err)?)
            .unwrap_or(1),
        timeout_ms: u32::try_from(r.try_get::<i32, _>("timeout_ms").map_err(store_err)?)
            .unwrap_or(1),
        source: WebhookSource::parse(&source)
            .ok_or_else(|| corrupt(format!("webhook source {source}")))?,
        event_cursor: r.try_get("event_cursor").map_err(store_err)?,
        created_at: r.try_get("created_at").map_err(store_err)?,
        updated_at: r.try_get("updated_at").map_err(store_err)?,
    })
}

fn delivery_row(r: &PgRow) -> StoreResult<DeliveryRow> {
    let status: String = r.try_get("status").map_err(store_err)?;
    Ok(DeliveryRow {
        webhook_id: r.try_get("webhook_id").map_err(store_err)?,
        event_id: r.try_get("event_id").map_err(store_err)?,
        task_id: r.try_get("task_id").map_err(store_err)?,
        event_type: r.try_get("event_type").map_err(store_err)?,
        event_created_at: r.try_get("event_created_at").map_err(store_err)?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("delivery status {status}")))?,
        attempts: u32::try_from(r.try_get::<i32, _>("attempts").map_err(store_err)?).unwrap_or(0),
        next_attempt_at: r.try_get("next_attempt_at").map_err(store_err)?,
        lease_owner: r.try_get("lease_owner").map_err(store_err)?,
        lease_expires_at: r.try_get("lease_expires_at").map_err(store_err)?,
        last_error: r.try_get("last_error").map_err(store_err)?,
        last_status_code: r
            .try_get::<Option<i32>, _>("last_status_code")
            .map_err(store_err)?
            .and_then(|c| u16::try_from(c).ok()),
        delivered_at: r.try_get("delivered_at").map_err(store_err)?,
        created_at: r.try_get("created_at").map_err(store_err)?,
        updated_at: r.try_get("updated_at").map_err(store_err)?,
    })
}

fn not_found(id: Uuid) -> StoreError {
    StoreError::NotFound {
        entity: "webhook",
        id,
    }
}

fn clamp(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Postgres>;

async fn by_name(tx: &mut Tx<'_>, name: &str) -> StoreResult<Option<WebhookRow>> {
    let r = sqlx::query(concat!(
        "SELECT ",
        hook_cols!(),
        " FROM webhooks WHERE name = $1 FOR UPDATE"
    ))
    .bind(name)
    .fetch_optional(&mut **tx)
    .await
    .map_err(store_err)?;
    r.as_ref().map(hook_row).transpose()
}

async fn insert(tx: &mut Tx<'_>, h: &NewWebhook, now: DateTime<Utc>) -> StoreResult<WebhookRow> {
    // The cursor starts at the highest id given: a subscriber receives the
    // events numbered after it was created.
    let r = sqlx::query(concat!(
        "INSERT INTO webhooks (",
        hook_cols!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
           (SELECT last_id FROM events_sequencer), $10, $10) RETURNING ",
        hook_cols!()
    ))
    .bind(h.id)
    .bind(&h.name)
    .bind(&h.url)
    .bind(serde_json::json!(h.event_types))
    .bind(serde_json::json!(h.namespaces))
    .bind(&h.secret)
    .bind(clamp(h.max_attempts))
    .bind(clamp(h.timeout_ms))
    .bind(h.source.as_str())
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| match store_err(e) {
        StoreError::Conflict(_) => taken(&h.name),
        other => other,
    })?;
    hook_row(&r)
}

fn taken(name: &str) -> StoreError {
    StoreError::Conflict(format!("a webhook named `{name}` already exists"))
}

impl PgStore {
    async fn tx(&self) -> StoreResult<Tx<'static>> {
        self.inner.pool.begin().await.map_err(store_err)
    }

    pub(crate) async fn hook_create(&self, h: NewWebhook) -> StoreResult<WebhookRow> {
        events_outbox::sequence(self).await?;
        let now = self.rebase(h.now).now;
        let mut tx = self.tx().await?;
        let res = async {
            if by_name(&mut tx, &h.name).await?.is_some() {
                return Err(taken(&h.name));
            }
            insert(&mut tx, &h, now).await
        }
        .await;
        tx::end_store(tx, res).await
    }

    pub(crate) async fn hook_sync_config(&self, hooks: Vec<NewWebhook>) -> StoreResult<()> {
        events_outbox::sequence(self).await?;
        let mut tx = self.tx().await?;
        let res = async {
            let mut names = Vec::new();
            for h in &hooks {
                names.push(h.name.clone());
                let now = self.rebase(h.now).now;
                match by_name(&mut tx, &h.name).await? {
                    Some(old) if old.source == WebhookSource::Api => {
                        return Err(StoreError::Conflict(format!(
                            "webhook `{}` of the configuration has the name of one created through the API",
                            h.name
                        )));
                    }
                    Some(old) => {
                        sqlx::query(
                            "UPDATE webhooks SET url = $2, event_types = $3, namespaces = $4, \
                             secret = $5, max_attempts = $6, timeout_ms = $7, updated_at = $8 \
                             WHERE id = $1",
                        )
                        .bind(old.id)
                        .bind(&h.url)
                        .bind(serde_json::json!(h.event_types))
                        .bind(serde_json::json!(h.namespaces))
                        .bind(&h.secret)
                        .bind(clamp(h.max_attempts))
                        .bind(clamp(h.timeout_ms))
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(store_err)?;
                    }
                    None => {
                        insert(&mut tx, h, now).await?;
                    }
                }
            }
            sqlx::query("DELETE FROM webhooks WHERE source = 'config' AND NOT (name = ANY($1))")
                .bind(&names)
                .execute(&mut *tx)
                .await
                .map_err(store_err)?;
            Ok(())
        }
        .await;
        tx::end_store(tx, res).await
    }

    pub(crate) async fn hook_get(&self, id: Uuid) -> StoreResult<WebhookRow> {
        let r = sqlx::query(concat!(
            "SELECT ",
            hook_cols!(),
            " FROM webhooks WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(store_err)?;
        r.as_ref()
            .map(hook_row)
            .transpose()?
            .ok_or_else(|| not_found(id))
    }

    pub(crate) async fn hook_list(&self) -> StoreResult<Vec<WebhookRow>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            hook_cols!(),
            " FROM webhooks ORDER BY name"
        ))
        .fetch_all(&self.inner.pool)
        .await
        .map_err(store_err)?;
        rows.iter().map(hook_row).collect()
    }

    pub(crate) async fn hook_delete(&self, id: Uuid) -> StoreResult<()> {
        let r = sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .execute(&self.inner.pool)
            .await
            .map_err(store_err)?;
        if r.rows_affected() == 0 {
            return Err(not_found(id));
        }
        Ok(())
    }

    pub(crate) async fn hook_fanout(&self, limit: u32, now: DateTime<Utc>) -> StoreResult<u64> {
        // Number what committed, so the cursor can move over it.
        events_outbox::sequence(self).await?;
        let now = self.rebase(now).now;
        let mut tx = self.tx().await?;
        let res = async {
            // Subscribers another process is fanning out are skipped: they
            // will have moved their cursors when it commits.
            let hooks: Vec<WebhookRow> = sqlx::query(concat!(
                "SELECT ",
                hook_cols!(),
                " FROM webhooks ORDER BY id FOR UPDATE SKIP LOCKED"
            ))
            .fetch_all(&mut *tx)
            .await
            .map_err(store_err)?
            .iter()
            .map(hook_row)
            .collect::<StoreResult<_>>()?;
            let mut written = 0;
            for h in hooks {
                let events = sqlx::query(
                    "SELECT id, type, task_id, namespace, created_at FROM events \
                     WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(h.event_cursor)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await
                .map_err(store_err)?;
                let mut cursor = h.event_cursor;
                let (mut ids, mut tasks, mut types, mut times) = (vec![], vec![], vec![], vec![]);
                for e in &events {
                    let id: i64 = e.try_get("id").map_err(store_err)?;
                    cursor = cursor.max(id);
                    let event_type: String = e.try_get("type").map_err(store_err)?;
                    let namespace: String = e.try_get("namespace").map_err(store_err)?;
                    if !h.wants(&event_type, &namespace) {
                        continue;
                    }
                    ids.push(id);
                    tasks.push(e.try_get::<Uuid, _>("task_id").map_err(store_err)?);
                    types.push(event_type);
                    times.push(
                        e.try_get::<DateTime<Utc>, _>("created_at")
                            .map_err(store_err)?,
                    );
                }
                if !ids.is_empty() {
                    let r = sqlx::query(
                        "INSERT INTO webhook_deliveries \
                         (webhook_id, event_id, task_id, event_type, event_created_at, status, \
                          attempts, next_attempt_at, created_at, updated_at) \
                         SELECT $1, e, t, ty, c, 'pending', 0, $6, $6, $6 \
                         FROM UNNEST($2::bigint[], $3::uuid[], $4::text[], $5::timestamptz[]) \
                              AS u(e, t, ty, c) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(h.id)
                    .bind(&ids)
                    .bind(&tasks)
                    .bind(&types)
                    .bind(&times)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(store_err)?;
                    written += r.rows_affected();
                }
                if cursor > h.event_cursor {
                    sqlx::query("UPDATE webhooks SET event_cursor = $2 WHERE id = $1")
                        .bind(h.id)
                        .bind(cursor)
                        .execute(&mut *tx)
                        .await
                        .map_err(store_err)?;
                }
            }
            Ok(written)
        }
        .await;
        tx::end_store(tx, res).await
    }

    pub(crate) async fn hook_claim(&self, c: &DeliveryClaim) -> StoreResult<Vec<ClaimedDelivery>> {
        let r = self.rebase(c.now);
        let token = Uuid::new_v4();
        let mut tx = self.tx().await?;
        let res = async {
            sqlx::raw_sql(PIN_PLAN)
                .execute(&mut *tx)
                .await
                .map_err(store_err)?;
            let rows = sqlx::query(CLAIM_SQL)
                .bind(r.now)
                .bind(i64::from(c.limit))
                .bind(&c.owner)
                .bind(token)
                .bind(r.at(c.lease_until))
                .fetch_all(&mut *tx)
                .await
                .map_err(store_err)?;
            Ok(rows)
        }
        .await;
        // Committed before the hooks are read on another connection: the
        // deliveries' row locks are not held across that round trip.
        let rows = tx::end_store(tx, res).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let hooks = self.hook_list().await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let webhook_id: Uuid = row.try_get("webhook_id").map_err(store_err)?;
            // Deleted since the claim: nothing to deliver to.
            let Some(webhook) = hooks.iter().find(|h| h.id == webhook_id) else {
                continue;
            };
            let found: Option<i64> = row.try_get("id").map_err(store_err)?;
            let event = match found {
                Some(_) => Some(events_outbox::row(row)?),
                None => None,
            };
            out.push(ClaimedDelivery {
                webhook: webhook.clone(),
                event_id: row.try_get("claimed_event_id").map_err(store_err)?,
                event,
                attempt: u32::try_from(row.try_get::<i32, _>("attempts").map_err(store_err)?)
                    .unwrap_or(1),
                lease_token: token,
            });
        }
        out.sort_by_key(|d| d.event_id);
        Ok(out)
    }

    pub(crate) async fn hook_finish(&self, outcomes: Vec<DeliveryOutcome>) -> StoreResult<u64> {
        if outcomes.is_empty() {
            return Ok(0);
        }
        let n = outcomes.len();
        let (mut hooks, mut events, mut tokens) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut statuses, mut nexts, mut errors, mut codes, mut delivered, mut nows) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for o in outcomes {
            let r = self.rebase(o.now);
            hooks.push(o.webhook_id);
            events.push(o.event_id);
            tokens.push(o.lease_token);
            nows.push(r.now);
            match o.result {
                DeliveryResult::Delivered { status_code } => {
                    statuses.push("delivered".to_string());
                    nexts.push(r.now);
                    errors.push(None::<String>);
                    codes.push(Some(i32::from(status_code)));
                    delivered.push(Some(r.now));
                }
                DeliveryResult::Failed {
                    error,
                    status_code,
                    retry_at,
                } => {
                    statuses.push(
                        if retry_at.is_some() {
                            "pending"
                        } else {
                            "dead"
                        }
                        .to_string(),
                    );
                    nexts.push(retry_at.map_or(r.now, |t| r.at(t)));
                    errors.push(Some(error));
                    codes.push(status_code.map(i32::from));
                    delivered.push(None::<DateTime<Utc>>);
                }
            }
        }
        let mut tx = self.tx().await?;
        let res = async {
            sqlx::raw_sql(PIN_PLAN)
                .execute(&mut *tx)
                .await
                .map_err(store_err)?;
            let r = sqlx::query(FINISH_SQL)
                .bind(&hooks)
                .bind(&events)
                .bind(&tokens)
                .bind(&statuses)
                .bind(&nexts)
                .bind(&errors)
                .bind(&codes)
                .bind(&delivered)
                .bind(&nows)
                .execute(&mut *tx)
                .await
                .map_err(store_err)?;
            Ok(r.rows_affected())
        }
        .await;
        tx::end_store(tx, res).await
    }

    pub(crate) async fn hook_deliveries(&self, q: &DeliveryQuery) -> StoreResult<Vec<DeliveryRow>> {
        self.hook_get(q.webhook_id).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            delivery_cols!(),
            " FROM webhook_deliveries WHERE webhook_id = $1 AND event_id > $2 \
               AND ($3::text IS NULL OR status = $3) ORDER BY event_id LIMIT $4"
        ))
        .bind(q.webhook_id)
        .bind(q.after)
        .bind(q.status.map(DeliveryStatus::as_str))
        .bind(i64::from(q.limit))
        .fetch_all(&self.inner.pool)
        .await
        .map_err(store_err)?;
        rows.iter().map(delivery_row).collect()
    }

    pub(crate) async fn hook_redeliver(
        &self,
        webhook_id: Uuid,
        event_ids: Option<Vec<i64>>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        self.hook_get(webhook_id).await?;
        let now = self.rebase(now).now;
        let r = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $3, \
                 delivered_at = NULL, lease_owner = NULL, lease_token = NULL, \
                 lease_expires_at = NULL, updated_at = $3 \
             WHERE webhook_id = $1 AND CASE WHEN $2::bigint[] IS NULL THEN status = 'dead' \
                 ELSE status IN ('dead', 'delivered') AND event_id = ANY($2) END",
        )
        .bind(webhook_id)
        .bind(event_ids)
        .bind(now)
        .execute(&self.inner.pool)
        .await
        .map_err(store_err)?;
        Ok(r.rows_affected())
    }

    /// Settled pairs of pruned events, oldest first per subscriber through
    /// `webhook_deliveries_settled_idx` (a range per subscriber and
    /// status): the statement reads at most `limit` pairs past those it
    /// deletes, however many stay. `min(id)` of the partitioned `events`
    /// is one probe of each partition's id index.
    pub(crate) async fn hook_deliveries_prune(&self, limit: u32) -> StoreResult<u64> {
        let r = sqlx::query(
            "WITH cut AS (SELECT min(id) AS id FROM events), \
             gone AS ( \
                 SELECT x.webhook_id, x.event_id FROM webhooks w, cut \
                 CROSS JOIN LATERAL ( \
                     SELECT d.webhook_id, d.event_id FROM webhook_deliveries d \
                     WHERE d.webhook_id = w.id AND d.status IN ('delivered', 'dead') \
                       AND d.event_id < cut.id \
                     LIMIT $1) x \
                 LIMIT $1) \
             DELETE FROM webhook_deliveries d USING gone g \
             WHERE d.webhook_id = g.webhook_id AND d.event_id = g.event_id \
               AND d.status IN ('delivered', 'dead')",
        )
        .bind(i64::from(limit))
        .execute(&self.inner.pool)
        .await
        .map_err(store_err)?;
        Ok(r.rows_affected())
    }
}
