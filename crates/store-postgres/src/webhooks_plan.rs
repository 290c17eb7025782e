//! Plans of the webhook delivery statements (the claim and the outcome
//! writes), as they run: under their pinned planner settings
//! (`webhooks::PIN_PLAN`). Tests use them to check that a claim reads its
//! batch from `webhook_deliveries_due_idx` however large the backlog is.

use crate::PgStore;
use crate::error::store_err;
use crate::webhooks::{CLAIM_SQL, FINISH_SQL, PIN_PLAN};
use sqlx::AssertSqlSafe;
use tasker_store::{DeliveryClaim, StoreResult};
use uuid::Uuid;

impl PgStore {
    /// The executed plan of a webhook claim (`EXPLAIN (ANALYZE, BUFFERS,
    /// COSTS OFF, TIMING OFF)`) inside a transaction that is rolled back:
    /// nothing stays claimed. Its row counts show how many pending pairs
    /// the claim read.
    pub async fn explain_webhook_claim(&self, c: &DeliveryClaim) -> StoreResult<String> {
        let r = self.rebase(c.now);
        let mut tx = self.inner.pool.begin().await.map_err(store_err)?;
        sqlx::raw_sql(PIN_PLAN)
            .execute(&mut *tx)
            .await
            .map_err(store_err)?;
        let lines: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) {CLAIM_SQL}"
        )))
        .bind(r.now)
        .bind(i64::from(c.limit))
        .bind(&c.owner)
        .bind(Uuid::new_v4())
        .bind(r.at(c.lease_until))
        .fetch_all(&mut *tx)
        .await
        .map_err(store_err)?;
        tx.rollback().await.map_err(store_err)?;
        Ok(lines.join("\n"))
    }

    /// The plan of writing `n` outcomes (`EXPLAIN`, not executed), under
    /// the pinned settings.
    pub async fn explain_webhook_finish(&self, n: usize) -> StoreResult<String> {
        let mut tx = self.inner.pool.begin().await.map_err(store_err)?;
        sqlx::raw_sql(PIN_PLAN)
            .execute(&mut *tx)
            .await
            .map_err(store_err)?;
        let now = chrono::Utc::now();
        let lines: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!("EXPLAIN {FINISH_SQL}")))
            .bind(vec![Uuid::new_v4(); n])
            .bind((0..n as i64).collect::<Vec<_>>())
            .bind(vec![Uuid::new_v4(); n])
            .bind(vec!["delivered".to_string(); n])
            .bind(vec![now; n])
            .bind(vec![None::<String>; n])
            .bind(vec![Some(200_i32); n])
            .bind(vec![Some(now); n])
            .bind(vec![now; n])
            .fetch_all(&mut *tx)
            .await
            .map_err(store_err)?;
        tx.rollback().await.map_err(store_err)?;
        Ok(lines.join("\n"))
    }
}
