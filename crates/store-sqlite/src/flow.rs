//! Concurrency keys and rate limits on SQLite (docs/FLOW_CONTROL.md).
//!
//! One writer at a time: inside the claim's write transaction the running
//! count of each key (`steps_running_key_idx`) and the buckets are read,
//! [`tasker_store::flow::gate`] decides, and the parked and deferred steps
//! and the drawn buckets are written before the claim itself. The release
//! side is the trigger `steps_flow_release` (migration
//! `20261129400000_flow_control`): every status change that ends a step's
//! run, whatever statement made it, unparks the key's oldest parked steps.

use crate::codec::{hex, id_list, micros, time};
use crate::error::DbResultExt;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{Row, SqliteConnection};
use std::collections::HashMap;
use tasker_store::StoreResult;
use tasker_store::flow::{
    BucketState, Candidate, ConcurrencyKey, NeedsSlot, RateBucket, TaskSlot, gate,
};
use uuid::Uuid;

/// Applies the flow rule to `picked` (in claim order; `true` = the step has
/// a concurrency key or a rate limit) and returns the steps to claim and
/// whether a rate limit deferred any. Without a gated step this does
/// nothing and reads nothing.
pub(crate) async fn admit(
    tx: &mut SqliteConnection,
    picked: Vec<(Uuid, bool)>,
    now: DateTime<Utc>,
) -> StoreResult<(Vec<Uuid>, bool)> {
    if !picked.iter().any(|(_, gated)| *gated) {
        return Ok((picked.into_iter().map(|(id, _)| id).collect(), false));
    }
    let gated: Vec<&Uuid> = picked
        .iter()
        .filter(|(_, g)| *g)
        .map(|(id, _)| id)
        .collect();
    // A step with a slot key reads its task's status and limit: only a task
    // that has not started needs a slot.
    let rows = sqlx::query(
        "SELECT s.id, s.concurrency_key, s.concurrency_limit, s.rate_key, s.rate_per_second,
                s.rate_burst, s.slot_key, s.task_id, t.status, t.slot_limit
         FROM steps s LEFT JOIN tasks t ON t.id = s.task_id AND s.slot_key IS NOT NULL
         WHERE s.id IN (SELECT unhex(value) FROM json_each(?1))",
    )
    .bind(id_list(gated))
    .fetch_all(&mut *tx)
    .await
    .db()?;
    type Flow = (
        Option<ConcurrencyKey>,
        Option<RateBucket>,
        Option<NeedsSlot>,
    );
    let mut flow: HashMap<Uuid, Flow> = HashMap::new();
    for r in &rows {
        let key: Option<String> = r.try_get(1).db()?;
        let limit: Option<i32> = r.try_get(2).db()?;
        let bucket: Option<String> = r.try_get(3).db()?;
        let per_second: Option<f64> = r.try_get(4).db()?;
        let burst: Option<f64> = r.try_get(5).db()?;
        let slot: Option<String> = r.try_get(6).db()?;
        let task_id: Uuid = r.try_get(7).db()?;
        let task_status: Option<String> = r.try_get(8).db()?;
        let slot_limit: Option<i32> = r.try_get(9).db()?;
        let needs_slot = match (slot, slot_limit) {
            (Some(key), Some(limit)) if task_status.as_deref() == Some("pending") => {
                Some(NeedsSlot {
                    task_id,
                    slot: TaskSlot { key, limit },
                })
            }
            _ => None,
        };
        flow.insert(
            r.try_get(0).db()?,
            (
                key.map(|key| ConcurrencyKey {
                    key,
                    limit: limit.unwrap_or(1),
                }),
                bucket.map(|key| RateBucket {
                    key,
                    per_second: per_second.unwrap_or(1.0),
                    burst: burst.unwrap_or(1.0),
                }),
                needs_slot,
            ),
        );
    }
    let candidates: Vec<Candidate> = picked
        .iter()
        .map(|(id, _)| {
            let (concurrency, rate, needs_slot) = flow.remove(id).unwrap_or_default();
            Candidate {
                id: *id,
                concurrency,
                rate,
                needs_slot,
            }
        })
        .collect();
    let slots: Vec<&str> = candidates
        .iter()
        .filter_map(|c| c.needs_slot.as_ref().map(|n| n.slot.key.as_str()))
        .collect();
    let mut slots_running = HashMap::new();
    if !slots.is_empty() {
        for r in sqlx::query(
            "SELECT slot_key, count(*) FROM tasks
             WHERE status = 'in_progress' AND slot_key IN (SELECT value FROM json_each(?1))
             GROUP BY slot_key",
        )
        .bind(json!(slots).to_string())
        .fetch_all(&mut *tx)
        .await
        .db()?
        {
            slots_running.insert(
                r.try_get::<String, _>(0).db()?,
                r.try_get::<i64, _>(1).db()?,
            );
        }
    }
    let keys: Vec<&str> = candidates
        .iter()
        .filter_map(|c| c.concurrency.as_ref().map(|k| k.key.as_str()))
        .collect();
    let buckets: Vec<&str> = candidates
        .iter()
        .filter_map(|c| c.rate.as_ref().map(|b| b.key.as_str()))
        .collect();
    let mut running = HashMap::new();
    if !keys.is_empty() {
        for r in sqlx::query(
            "SELECT concurrency_key, count(*) FROM steps
             WHERE status = 'in_progress' AND concurrency_key IN (SELECT value FROM json_each(?1))
             GROUP BY concurrency_key",
        )
        .bind(json!(keys).to_string())
        .fetch_all(&mut *tx)
        .await
        .db()?
        {
            running.insert(
                r.try_get::<String, _>(0).db()?,
                r.try_get::<i64, _>(1).db()?,
            );
        }
    }
    let mut stored = HashMap::new();
    if !buckets.is_empty() {
        for r in sqlx::query(
            "SELECT key, tokens, refreshed_at FROM rate_buckets
             WHERE key IN (SELECT value FROM json_each(?1))",
        )
        .bind(json!(buckets).to_string())
        .fetch_all(&mut *tx)
        .await
        .db()?
        {
            stored.insert(
                r.try_get::<String, _>(0).db()?,
                BucketState {
                    tokens: r.try_get(1).db()?,
                    refreshed_at: time(r.try_get(2).db()?)?,
                },
            );
        }
    }
    let g = gate(&candidates, &running, &slots_running, &stored, now);
    if !g.park_slot.is_empty() {
        park_slots(&mut *tx, &candidates, &g.park_slot, now).await?;
    }
    if !g.park.is_empty() {
        // A key found full has its whole ready backlog parked at once
        // (`steps_key_ready_idx`), so later claims do not meet it in their
        // batch; the candidates taken or deferred here are left alone.
        let full: Vec<&str> = candidates
            .iter()
            .filter(|c| g.park.contains(&c.id))
            .filter_map(|c| c.concurrency.as_ref().map(|k| k.key.as_str()))
            .collect();
        let keep: Vec<&Uuid> = g
            .take
            .iter()
            .chain(g.defer.iter().map(|(id, _)| id))
            .collect();
        sqlx::query(
            "UPDATE steps SET parked = 1, flow_wait = 'concurrency', updated_at = ?3
             WHERE id IN (SELECT unhex(value) FROM json_each(?1))
                OR id IN (SELECT x.id FROM steps x
                          WHERE x.concurrency_key IN (SELECT value FROM json_each(?2))
                            AND x.concurrency_key IS NOT NULL AND x.ready_at IS NOT NULL
                            AND x.parked = 0
                            AND x.id NOT IN (SELECT unhex(value) FROM json_each(?4)))",
        )
        .bind(id_list(&g.park))
        .bind(json!(full).to_string())
        .bind(micros(now))
        .bind(id_list(keep))
        .execute(&mut *tx)
        .await
        .db()?;
    }
    if !g.defer.is_empty() {
        let rows: Vec<Value> = g
            .defer
            .iter()
            .map(|(id, at)| json!([hex(id).to_string(), micros(*at)]))
            .collect();
        sqlx::query(
            "UPDATE steps SET ready_at = j.at, flow_wait = 'rate_limit', updated_at = ?2
             FROM (SELECT unhex(value->>0) AS id, value->>1 AS at FROM jsonb_each(?1)) AS j
             WHERE steps.id = j.id",
        )
        .bind(Value::Array(rows).to_string())
        .bind(micros(now))
        .execute(&mut *tx)
        .await
        .db()?;
    }
    if !g.buckets.is_empty() {
        let rows: Vec<Value> = g.buckets.iter().map(|(k, t)| json!([k, t])).collect();
        sqlx::query(
            "INSERT INTO rate_buckets (key, tokens, refreshed_at)
             SELECT value->>0, value->>1, ?2 FROM jsonb_each(?1) WHERE true
             ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens,
                 refreshed_at = max(refreshed_at, excluded.refreshed_at)",
        )
        .bind(Value::Array(rows).to_string())
        .bind(micros(now))
        .execute(&mut *tx)
        .await
        .db()?;
    }
    Ok((g.take, !g.defer.is_empty()))
}

/// Parks `parked` (candidates whose task waits for a slot of its template)
/// and the ready steps of every other pending task of those templates, so
/// later claims do not meet them in their batch. Tasks that got a place
/// within the limit in this claim, and every candidate, are left alone.
async fn park_slots(
    tx: &mut SqliteConnection,
    candidates: &[Candidate],
    parked: &[Uuid],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let full: Vec<&str> = candidates
        .iter()
        .filter(|c| parked.contains(&c.id))
        .filter_map(|c| c.needs_slot.as_ref().map(|n| n.slot.key.as_str()))
        .collect();
    let admitted: Vec<&Uuid> = candidates
        .iter()
        .filter(|c| !parked.contains(&c.id))
        .filter_map(|c| c.needs_slot.as_ref().map(|n| &n.task_id))
        .collect();
    let all: Vec<&Uuid> = candidates.iter().map(|c| &c.id).collect();
    sqlx::query(
        "UPDATE steps SET parked = 1, flow_wait = 'task_slot', updated_at = ?3
         WHERE id IN (SELECT unhex(value) FROM json_each(?1))
            OR id IN (SELECT x.id FROM steps x
                      WHERE x.task_id IN (
                              SELECT t.id FROM tasks t
                              WHERE t.slot_key IN (SELECT value FROM json_each(?2))
                                AND t.slot_key IS NOT NULL AND t.status = 'pending'
                                AND t.id NOT IN (SELECT unhex(value) FROM json_each(?4)))
                        AND x.ready_at IS NOT NULL AND x.parked = 0 AND x.paused = 0
                        AND x.id NOT IN (SELECT unhex(value) FROM json_each(?5)))",
    )
    .bind(id_list(parked))
    .bind(json!(full).to_string())
    .bind(micros(now))
    .bind(id_list(admitted))
    .bind(id_list(all))
    .execute(&mut *tx)
    .await
    .db()?;
    Ok(())
}

/// Stores the task slots of new tasks of templates with
/// `max_running_tasks` (the task's key and limit, its steps' key): nothing
/// (no statement) when there is none.
pub(crate) async fn create_slots(
    conn: &mut SqliteConnection,
    tasks: &[tasker_store::NewTask],
) -> StoreResult<()> {
    let rows: Vec<Value> = tasks
        .iter()
        .filter_map(|t| {
            let slot = t.steps.iter().find_map(|s| s.flow.task_slot.as_ref())?;
            Some(json!([hex(&t.id).to_string(), slot.key, slot.limit.max(1)]))
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let rows = Value::Array(rows).to_string();
    sqlx::query(
        "UPDATE tasks SET slot_key = j.key, slot_limit = j.lim
         FROM (SELECT unhex(value->>0) AS id, value->>1 AS key, value->>2 AS lim
               FROM jsonb_each(?1)) AS j
         WHERE tasks.id = j.id",
    )
    .bind(&rows)
    .execute(&mut *conn)
    .await
    .db()?;
    sqlx::query(
        "UPDATE steps SET slot_key = j.key
         FROM (SELECT unhex(value->>0) AS id, value->>1 AS key FROM jsonb_each(?1)) AS j
         WHERE steps.task_id = j.id",
    )
    .bind(&rows)
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(())
}
