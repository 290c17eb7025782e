//! Plans of the hot-path statements.
//!
//! A prepared statement runs with a *custom* plan (made for its arguments)
//! or, after five executions, a *generic* one (made for any arguments) when
//! PostgreSQL estimates the generic plan no more expensive; it re-plans when
//! statistics change. [`PgStore::explain_hot_path`] shows either kind for
//! every hot statement, so tests can check both reach rows only through the
//! partial and primary-key indexes, or the one PostgreSQL chooses itself, so
//! tests can check a statement is not planned anew at every execution.

use crate::PgStore;
use crate::error::store_err;
use crate::finish::FINISH_SQL;
use crate::settle::{LOCK_TASKS_SQL, WRITE_TASKS_SQL};
use crate::work::{ClaimShape, RENEW_SQL, RESCUE_SQL, UNBLOCK_SQL};
use sqlx::{AssertSqlSafe, PgConnection};
use tasker_store::StoreResult;

/// Parameter types of every claim statement (a shape may leave some unused).
const CLAIM_TYPES: &str =
    "(timestamptz, text[], text[], text[], bigint, text, timestamptz, bigint, bigint, uuid[])";
/// Representative claim arguments.
const CLAIM_ARGS: &str = "(now(), '{noop}', '{external}', '{default}', 10, 'w', now(), 2, 104, \
     ARRAY[gen_random_uuid(), gen_random_uuid()])";

/// The other hot statements with representative arguments (a generic plan
/// does not depend on them; their parameter types are inferred).
const CASES: [(&str, &str, &str); 8] = [
    (
        "finish: steps, children, tasks",
        FINISH_SQL,
        "(ARRAY[gen_random_uuid()], ARRAY[gen_random_uuid()], ARRAY['ok'], ARRAY['{}'::jsonb], \
          ARRAY['{}'::jsonb], ARRAY[NULL::timestamptz], now(), 1, 'w', now(), NULL::text[], \
          ARRAY[]::text[], NULL::text[], ARRAY[gen_random_uuid()], true)",
    ),
    (
        "finish: children",
        UNBLOCK_SQL,
        "(ARRAY[gen_random_uuid()], now())",
    ),
    (
        "finish: lock tasks",
        LOCK_TASKS_SQL,
        "(ARRAY[gen_random_uuid()])",
    ),
    (
        "finish: write tasks",
        WRITE_TASKS_SQL,
        "(ARRAY[gen_random_uuid()], ARRAY[0::bigint], ARRAY[0::bigint], ARRAY[0::bigint], \
          ARRAY['complete'], ARRAY[1], now(), ARRAY[gen_random_uuid()], ARRAY['in_progress'], \
          ARRAY['complete'], ARRAY['{}'::jsonb], false, 'x', ARRAY[]::text[])",
    ),
    (
        "renew",
        RENEW_SQL,
        "(ARRAY[gen_random_uuid()], ARRAY[gen_random_uuid()], now())",
    ),
    ("rescue", RESCUE_SQL, "(now(), 100)"),
    (
        "release: keys",
        crate::flow::RELEASE_SQL,
        "(ARRAY['customer:1'], ARRAY[1])",
    ),
    (
        "release: unpark",
        crate::flow::UNPARK_SQL,
        "(ARRAY['customer:1'], ARRAY[1], now())",
    ),
];

/// Which plans [`PgStore::explain_hot_path`] shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanKind {
    /// Planned for representative arguments (a claim of 10 steps, one
    /// outcome, …): what runs while PostgreSQL keeps re-planning.
    Custom,
    /// Planned for any arguments: what runs once PostgreSQL settles on a
    /// generic plan.
    Generic,
    /// What PostgreSQL itself chooses after its five custom plans (the
    /// default `plan_cache_mode`): the generic plan when it estimates it no
    /// dearer than the custom ones, else a custom plan again. Arguments in
    /// a custom plan appear as values, in the generic one as `$n`.
    Chosen,
}

impl PgStore {
    /// The plans of the hot-path statements (every claim variant, finish,
    /// renew, rescue) on this database, as `(statement, plan)` pairs:
    /// `PREPARE` + `EXPLAIN EXECUTE` under `plan_cache_mode` forced to the
    /// given kind; nothing is executed. A diagnostic: claims must read
    /// `steps_ready_idx`, the rescuer `steps_lease_idx`, and no statement
    /// may scan a table.
    pub async fn explain_hot_path(&self, kind: PlanKind) -> StoreResult<Vec<(String, String)>> {
        let mut conn = self.inner.pool.acquire().await.map_err(store_err)?;
        let mut statements: Vec<(String, String, &str)> = ClaimShape::all()
            .map(|shape| {
                (
                    format!("claim {shape:?}"),
                    format!("PREPARE tasker_explain {CLAIM_TYPES} AS {}", shape.sql()),
                    CLAIM_ARGS,
                )
            })
            .collect();
        statements.extend(CASES.iter().map(|(name, sql, args)| {
            (
                name.to_string(),
                format!("PREPARE tasker_explain AS {sql}"),
                *args,
            )
        }));
        explain_prepared(&mut conn, kind, statements).await
    }
}

/// Plans of `(name, PREPARE tasker_explain … AS …, EXPLAIN EXECUTE arguments)`
/// statements under `plan_cache_mode` forced to `kind`; nothing is executed.
/// The connection's plan cache mode is reset before it returns to the pool.
pub(crate) async fn explain_prepared<A: AsRef<str>>(
    conn: &mut PgConnection,
    kind: PlanKind,
    statements: Vec<(String, String, A)>,
) -> StoreResult<Vec<(String, String)>> {
    let mode = match kind {
        PlanKind::Custom => "SET plan_cache_mode = force_custom_plan",
        PlanKind::Generic => "SET plan_cache_mode = force_generic_plan",
        PlanKind::Chosen => "SET plan_cache_mode = auto",
    };
    // PostgreSQL decides between custom and generic at the sixth execution
    // of a prepared statement (EXPLAIN EXECUTE counts as one).
    let explains = if kind == PlanKind::Chosen { 6 } else { 1 };
    sqlx::query(mode)
        .execute(&mut *conn)
        .await
        .map_err(store_err)?;
    let mut out = Vec::with_capacity(statements.len());
    let mut failure = None;
    for (name, prepare, args) in statements {
        let plan = async {
            sqlx::query(AssertSqlSafe(prepare))
                .execute(&mut *conn)
                .await?;
            let explain = format!("EXPLAIN EXECUTE tasker_explain{}", args.as_ref());
            let mut plan: Result<Vec<String>, sqlx::Error> = Ok(Vec::new());
            for _ in 0..explains {
                plan = sqlx::query_scalar(AssertSqlSafe(explain.clone()))
                    .fetch_all(&mut *conn)
                    .await;
                if plan.is_err() {
                    break;
                }
            }
            // Deallocate even when EXPLAIN failed, so the name is free.
            sqlx::query("DEALLOCATE tasker_explain")
                .execute(&mut *conn)
                .await?;
            plan
        }
        .await;
        match plan {
            Ok(lines) => out.push((name, lines.join("\n"))),
            Err(e) => {
                failure = Some(store_err(e));
                break;
            }
        }
    }
    // The connection goes back to the pool: restore the default.
    let reset = sqlx::query("RESET plan_cache_mode")
        .execute(&mut *conn)
        .await;
    if let Some(e) = failure {
        return Err(e);
    }
    reset.map_err(store_err)?;
    Ok(out)
}

impl PgStore {
    /// The executed plan of a claim with these parameters (`EXPLAIN
    /// (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF)`), inside a transaction
    /// that is rolled back: nothing stays claimed. Shows how many index
    /// entries the claim read, e.g. that parked steps are not among them.
    pub async fn explain_claim_analyze(
        &self,
        claim: &tasker_store::ClaimParams,
    ) -> StoreResult<String> {
        let shape = crate::work::ClaimShape::of(claim);
        let mut tx = self.inner.pool.begin().await.map_err(store_err)?;
        let lines: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) {}",
            shape.sql()
        )))
        .bind(claim.now)
        .bind(claim.kinds.as_deref())
        .bind(claim.exclude_kinds.as_slice())
        .bind(claim.namespaces.as_deref())
        .bind(i64::from(claim.limit))
        .bind(claim.worker_id.as_str())
        .bind(claim.lease_until)
        .bind(claim.per_task_limit.map_or(0, i64::from))
        .bind(i64::from(claim.limit).saturating_mul(4).saturating_add(64))
        .bind(Vec::<uuid::Uuid>::new())
        .fetch_all(&mut *tx)
        .await
        .map_err(store_err)?;
        tx.rollback().await.map_err(store_err)?;
        Ok(lines.join("\n"))
    }

    /// The plan of a retention batch (`Store::prune_candidates`) as it runs:
    /// under its pinned settings, for a page of 500 tasks finished before
    /// `before`.
    pub async fn explain_prune_candidates(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<String> {
        self.explain_retention(crate::retention::candidates_sql(), before, 500)
            .await
    }

    /// The plan of a batch of `Store::prune_expired` (selection, lock and
    /// delete in one statement) under its pinned settings, for 10,000 tasks
    /// finished before `before`; nothing is deleted (EXPLAIN only).
    pub async fn explain_prune_expired(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<String> {
        self.explain_retention(crate::retention::expired_delete_sql(), before, 10_000)
            .await
    }

    /// EXPLAIN of a retention statement (`$1` before, `$2` namespace, `$3`
    /// namespaces excluded, `$4` limit) under retention's pinned settings.
    async fn explain_retention(
        &self,
        sql: impl std::fmt::Display,
        before: chrono::DateTime<chrono::Utc>,
        limit: i64,
    ) -> StoreResult<String> {
        let mut tx = self.inner.pool.begin().await.map_err(store_err)?;
        sqlx::raw_sql(crate::retention::PIN_PLAN)
            .execute(&mut *tx)
            .await
            .map_err(store_err)?;
        let lines: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!("EXPLAIN {sql}")))
            .bind(before)
            .bind(None::<String>)
            .bind(Vec::<String>::new())
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(store_err)?;
        tx.rollback().await.map_err(store_err)?;
        Ok(lines.join("\n"))
    }
}
