//! The webhook claim at scale (docs/PERFORMANCE.md, "Webhook delivery"):
//! with a large backlog generated in SQL (delivered history, pairs waiting
//! in backoff, pairs due, pairs held behind an earlier event of their
//! task), a claim reads its batch from `webhook_deliveries_due_idx`, checks
//! per-task order with one probe of `webhook_deliveries_task_idx` per
//! candidate, and never scans or sorts the table: on a never-analyzed
//! table, after ANALYZE, and with statistics taken when nothing was
//! pending (stale, what a sudden backlog meets). Outcomes are written
//! through the primary key.
//!
//! `TASKER_PLAN_WEBHOOK_PAIRS` overrides the number of pairs (default
//! 300,000: 100,000 delivered, 100,000 in backoff, 100,000 due).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{Duration, Utc};
use common::TestDb;
use std::sync::Arc;
use tasker_store::conformance::webhooks::hook;
use tasker_store::{DeliveryClaim, Store, WebhookSource};
use tasker_store_postgres::PgStore;

const BATCH: u32 = 200;

fn claim(owner: &str) -> DeliveryClaim {
    let now = Utc::now();
    DeliveryClaim {
        owner: owner.into(),
        limit: BATCH,
        now,
        lease_until: now + Duration::seconds(30),
    }
}

/// `(actual rows=N loops=1)` and `Rows Removed by Filter: M` of the plan
/// line naming `index` and the lines under it.
fn index_rows(plan: &str, index: &str) -> (u64, u64) {
    let mut lines = plan.lines().skip_while(|l| !l.contains(index));
    let head = lines
        .next()
        .unwrap_or_else(|| panic!("no {index}:\n{plan}"));
    let rows = head
        .split("actual rows=")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no row count: {head}"));
    let removed = lines
        .take_while(|l| !l.contains("->"))
        .find_map(|l| l.trim().strip_prefix("Rows Removed by Filter: "))
        .map_or(0, |n| n.parse().unwrap());
    (rows, removed)
}

async fn check(store: &PgStore, when: &str, in_flight: u64) {
    let plan = store.explain_webhook_claim(&claim("probe")).await.unwrap();
    for bad in [
        "Seq Scan on webhook_deliveries",
        "Bitmap Heap Scan on webhook_deliveries",
        "Sort",
        "Hash",
        "Merge",
        "webhook_deliveries_settled_idx",
    ] {
        assert!(!plan.contains(bad), "claim ({when}) has {bad}:\n{plan}");
    }
    assert!(
        plan.contains("using webhook_deliveries_task_idx on webhook_deliveries p")
            && plan.contains(
                "Index Cond: ((webhook_id = d.webhook_id) AND (task_id = d.task_id) AND (event_id < d.event_id))"
            ),
        "claim ({when}): the order check probes the task index per candidate:\n{plan}"
    );
    assert!(
        plan.contains("Index Scan using webhook_deliveries_pkey on webhook_deliveries"),
        "claim ({when}): the lease is written by primary key:\n{plan}"
    );
    // The walk: the batch, plus the pairs it steps over (in flight, or
    // held behind an earlier event of their task: 1 in 100 here); never
    // the pairs in backoff or the history.
    let (rows, removed) = index_rows(&plan, "Index Scan using webhook_deliveries_due_idx");
    assert_eq!(rows, u64::from(BATCH), "claim ({when}):\n{plan}");
    assert!(
        removed <= in_flight + u64::from(BATCH) / 50,
        "claim ({when}) stepped over {removed} pairs:\n{plan}"
    );

    let plan = store.explain_webhook_finish(500).await.unwrap();
    for bad in [
        "Seq Scan on webhook_deliveries",
        "Bitmap",
        "Sort",
        "Hash",
        "Merge",
    ] {
        assert!(!plan.contains(bad), "finish ({when}) has {bad}:\n{plan}");
    }
    assert!(
        plan.contains("webhook_deliveries_pkey"),
        "finish ({when}):\n{plan}"
    );
}

#[tokio::test]
async fn webhook_claim_reads_its_batch_whatever_the_backlog() {
    let third: i64 = std::env::var("TASKER_PLAN_WEBHOOK_PAIRS")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(300_000)
        / 3;
    let db = TestDb::create().await;
    let store = db.store().await;
    let s: Arc<dyn Store> = Arc::new(store.clone());
    let h = s
        .webhook_create(hook("plan", &["*"], WebhookSource::Api))
        .await
        .unwrap();
    // One task per event, except every 100th due event, which is the
    // second event of the task before it (held behind it: per-task order).
    // Ids 1..third: delivered; third..2*third: in backoff for an hour;
    // the rest: due since a minute.
    sqlx::query(
        "INSERT INTO events (id, type, task_id, namespace, created_at, payload) \
         SELECT i, 'task.created', \
                md5((CASE WHEN i > 2 * $1 AND i % 100 = 0 THEN i - 1 ELSE i END)::text)::uuid, \
                'plan', now(), '{}'::jsonb \
         FROM generate_series(1, 3 * $1) i",
    )
    .bind(third)
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO webhook_deliveries (webhook_id, event_id, task_id, event_type, \
             event_created_at, status, attempts, next_attempt_at, delivered_at, created_at, updated_at) \
         SELECT $1, id, task_id, type, created_at, \
                CASE WHEN id <= $2 THEN 'delivered' ELSE 'pending' END, \
                CASE WHEN id <= 2 * $2 THEN 1 ELSE 0 END, \
                CASE WHEN id <= 2 * $2 AND id > $2 THEN now() + interval '1 hour' \
                     ELSE now() - interval '1 minute' END, \
                CASE WHEN id <= $2 THEN now() END, now(), now() \
         FROM events",
    )
    .bind(h.id)
    .bind(third)
    .execute(store.pool())
    .await
    .unwrap();
    check(&store, "never analyzed", 0).await;
    sqlx::query("ANALYZE webhook_deliveries")
        .execute(store.pool())
        .await
        .unwrap();
    check(&store, "analyzed", 0).await;

    // A real claim: the first batch of due pairs, in event order, none of
    // them held behind an earlier event of its task.
    let first = s.webhook_claim(&claim("a")).await.unwrap();
    assert_eq!(first.len(), BATCH as usize);
    let ids: Vec<i64> = first.iter().map(|c| c.event_id).collect();
    let expected: Vec<i64> = (2 * third + 1..)
        .filter(|i| i % 100 != 0)
        .take(BATCH as usize)
        .collect();
    assert_eq!(ids, expected);
    // The next claim steps over the batch in flight.
    check(&store, "a batch in flight", u64::from(BATCH)).await;

    // Statistics taken when nothing was pending, then a backlog.
    sqlx::query("UPDATE webhook_deliveries SET status = 'delivered', lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::raw_sql("VACUUM ANALYZE webhook_deliveries")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE webhook_deliveries SET status = 'pending' WHERE event_id > $1")
        .bind(third)
        .execute(store.pool())
        .await
        .unwrap();
    check(&store, "stale statistics", 0).await;
}
