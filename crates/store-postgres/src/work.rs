//! The hot path: claim, finish, renew, rescue.
//!
//! Every statement here touches rows through the partial indexes
//! (`steps_ready_idx`, `steps_lease_idx`, `steps_running_task_idx`) or by
//! primary key, and appends transitions without reading them.

use crate::PgStore;
use crate::decode::claimed_step;
use crate::error::TxError;
use crate::events::{Emit, notify};
use crate::settle::{Delta, settle};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, Row};
use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;
use tasker_store::{ClaimParams, ClaimedStep, FinishReport, LeaseRef, OutcomeResult, StepOutcome};
use uuid::Uuid;

/// Shared tail of every claim statement: `pick(id, ready_at)` names the
/// rows to claim, already locked.
///
/// Every table is reached by primary key whatever the planner believes
/// about the batch size (in a generic plan `LIMIT $5` is guessed as 10% of
/// the frontier, enough to make a hash join over the whole table look
/// cheap): rows are looked up with `id = ANY (ARRAY(SELECT …))`, and the
/// tasks through a `LATERAL … OFFSET 0` probe that the planner cannot turn
/// into a join. `start_lock` writes its status test `(…) IS TRUE` so that it
/// cannot be used as an index condition on `tasks (status, created_at)`:
/// with stale statistics after a burst of new tasks, the planner could
/// otherwise scan every pending task on each claim instead of at most
/// `limit` primary-key probes.
fn claim_tail(scanned: &str) -> String {
    format!(
        "claimed AS ( \
             UPDATE steps s SET status = 'in_progress', ready_at = NULL, attempts = s.attempts + 1, \
                 last_attempted_at = $1, lease_owner = $6, lease_token = gen_random_uuid(), \
                 lease_expires_at = $7, updated_at = $1 \
             WHERE s.id = ANY (ARRAY(SELECT id FROM pick)) \
             RETURNING s.id, s.task_id, s.name, s.handler_kind, s.handler_config, s.inputs, s.attempts, \
                 s.max_attempts, s.timeout_seconds, s.lease_token, s.lease_expires_at \
         ), ordered AS ( \
             SELECT c.*, p.ready_at AS was_ready_at FROM claimed c JOIN pick p ON p.id = c.id \
         ), step_tr AS ( \
             INSERT INTO step_transitions (step_id, task_id, from_state, to_state, created_at, metadata) \
             SELECT id, task_id, 'pending', 'in_progress', $1, \
                    jsonb_build_object('attempt', attempts, 'worker', $6::text) \
             FROM ordered ORDER BY was_ready_at, id \
         ), start_lock AS ( \
             SELECT t.id FROM tasks t \
             WHERE t.id = ANY (ARRAY(SELECT DISTINCT task_id FROM claimed)) \
               AND (t.status = 'pending') IS TRUE \
             ORDER BY t.id FOR NO KEY UPDATE \
         ), started AS ( \
             UPDATE tasks t SET status = 'in_progress', updated_at = $1 \
             WHERE t.id = ANY (ARRAY(SELECT id FROM start_lock)) \
             RETURNING t.id \
         ), task_tr AS ( \
             INSERT INTO task_transitions (task_id, from_state, to_state, created_at, metadata) \
             SELECT id, 'pending', 'in_progress', $1, jsonb_build_object('worker', $6::text) FROM started \
         ) \
         SELECT o.id, o.task_id, o.name, o.handler_kind, o.handler_config, o.inputs, o.attempts, \
                o.max_attempts, o.timeout_seconds, o.lease_token, o.lease_expires_at, \
                t.namespace, t.task_name, t.version, t.context, t.correlation_id, \
                (SELECT jsonb_object_agg(p.name, COALESCE(p.results, 'null'::jsonb)) \
                 FROM step_edges e JOIN steps p ON p.id = e.parent_id \
                 WHERE e.child_id = o.id) AS parent_results, \
                {scanned} AS scanned \
         FROM ordered o \
         CROSS JOIN LATERAL ( \
             SELECT namespace, name AS task_name, version, context, correlation_id \
             FROM tasks WHERE tasks.id = o.task_id OFFSET 0) t \
         ORDER BY o.was_ready_at, o.id"
    )
}

/// Which optional parts a claim statement has. Each combination is its own
/// statement text (32 in all, built once): a filter that is absent is not
/// in the SQL at all, rather than written `($n IS NULL OR …)`, whose
/// selectivity the planner cannot estimate and which can tip it from the
/// ordered, early-stopping scan of `steps_ready_idx` to reading the whole
/// ready frontier and sorting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClaimShape {
    /// Only some handler kinds (`$2`).
    pub kinds: bool,
    /// Some handler kinds excluded (`$3`).
    pub exclude: bool,
    /// Only some namespaces (`$4`).
    pub namespaces: bool,
    /// A per-task limit (`$8`, window `$9`).
    pub per_task: bool,
    /// Only among given steps (`$10`): the claim on completion, restricted
    /// to the children the finishing transaction made ready. The same
    /// statement otherwise, so both claims obey one rule.
    pub among: bool,
}

impl ClaimShape {
    pub(crate) fn of(claim: &ClaimParams) -> Self {
        ClaimShape {
            kinds: claim.kinds.is_some(),
            exclude: !claim.exclude_kinds.is_empty(),
            namespaces: claim.namespaces.is_some(),
            per_task: claim.per_task_limit.is_some(),
            among: false,
        }
    }

    fn index(self) -> usize {
        usize::from(self.kinds)
            | usize::from(self.exclude) << 1
            | usize::from(self.namespaces) << 2
            | usize::from(self.per_task) << 3
            | usize::from(self.among) << 4
    }

    fn from_index(i: usize) -> Self {
        ClaimShape {
            kinds: i & 1 != 0,
            exclude: i & 2 != 0,
            namespaces: i & 4 != 0,
            per_task: i & 8 != 0,
            among: i & 16 != 0,
        }
    }

    /// The statement text. `$1` now, `$2` kinds, `$3` excluded kinds, `$4`
    /// namespaces, `$5` limit, `$6` worker, `$7` lease expiry; with a
    /// per-task limit also `$8` the limit and `$9` the candidate window;
    /// among given steps, `$10` their ids (and `$8`, `$9` are bound too).
    /// Parameters a shape does not use are still bound (with their types).
    pub(crate) fn sql(self) -> &'static str {
        CLAIM_STATEMENTS[self.index()].as_str()
    }

    fn build(self) -> String {
        let mut filters = if self.among {
            // A handful of candidates by primary key. The ready test is
            // written so that it cannot use (nor be proved to allow) the
            // partial `steps_ready_idx`: with stale statistics the planner
            // could otherwise walk the whole ready frontier in index order
            // looking for these few ids.
            String::from("s.id = ANY($10::uuid[]) AND (s.ready_at <= $1) IS TRUE AND NOT s.paused")
        } else {
            String::from("s.ready_at <= $1 AND NOT s.paused")
        };
        if self.kinds {
            filters.push_str(" AND s.handler_kind = ANY($2::text[])");
        }
        if self.exclude {
            filters.push_str(" AND NOT (s.handler_kind = ANY($3::text[]))");
        }
        if self.namespaces {
            // A scalar subquery on the task's primary key, one probe per
            // candidate: written as `EXISTS (… namespace = ANY($4))` the
            // planner may turn it into a hashed subplan that reads every
            // task of the namespaces, history included.
            filters.push_str(
                " AND (SELECT t.namespace FROM tasks t WHERE t.id = s.task_id) = ANY($4::text[])",
            );
        }
        if self.per_task {
            // `FOR UPDATE` is not allowed at the level of a window function,
            // so the candidates are locked in `cand`, ranked in `ranked`, and
            // cut in `pick`. Tasks already at their limit are filtered in the
            // scan itself so that one saturated task with a deep ready
            // frontier cannot fill the window.
            format!(
                "WITH cand AS ( \
                     SELECT s.id, s.task_id, s.ready_at FROM steps s \
                     WHERE {filters} \
                       AND (SELECT count(*) FROM steps r \
                            WHERE r.task_id = s.task_id AND r.status = 'in_progress') < $8 \
                     ORDER BY s.ready_at, s.id \
                     LIMIT $9 \
                     FOR NO KEY UPDATE SKIP LOCKED \
                 ), ranked AS ( \
                     SELECT c.id, c.ready_at, \
                            row_number() OVER (PARTITION BY c.task_id ORDER BY c.ready_at, c.id) AS rn, \
                            (SELECT count(*) FROM steps r \
                             WHERE r.task_id = c.task_id AND r.status = 'in_progress') AS running \
                     FROM cand c \
                 ), pick AS ( \
                     SELECT id, ready_at FROM ranked WHERE rn + running <= $8 ORDER BY ready_at, id LIMIT $5 \
                 ), {}",
                claim_tail("(SELECT count(*) FROM cand)")
            )
        } else {
            format!(
                "WITH pick AS ( \
                     SELECT s.id, s.ready_at FROM steps s \
                     WHERE {filters} \
                     ORDER BY s.ready_at, s.id \
                     LIMIT $5 \
                     FOR NO KEY UPDATE SKIP LOCKED \
                 ), {}",
                claim_tail("0::bigint")
            )
        }
    }

    /// Every shape.
    pub(crate) fn all() -> impl Iterator<Item = ClaimShape> {
        (0..32).map(ClaimShape::from_index)
    }
}

static CLAIM_STATEMENTS: LazyLock<Vec<String>> =
    LazyLock::new(|| ClaimShape::all().map(ClaimShape::build).collect());

/// Applies outcomes to the steps still leased with the given token.
/// Every join with a batch also states `id = ANY(…)` on the base table: the
/// planner then always reaches rows through the primary key, even with
/// stale statistics right after a bulk load (measured: a hash join over the
/// whole steps table, 70–150 ms per batch with 100k finished steps). The
/// `lk` CTE locks them in id order (so a finisher and, say, a task cancel
/// always meet in the same order). `$1..$6` outcome arrays, `$7` now.
pub(crate) const FINISH_STEPS_SQL: &str = "WITH o AS ( \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::jsonb[], $6::timestamptz[]) \
             AS o(id, token, kind, results, err, retry_at) \
     ), lk AS ( \
         SELECT s.id, s.lease_owner FROM steps s JOIN o ON o.id = s.id \
         WHERE s.id = ANY($1::uuid[]) AND s.status = 'in_progress' AND s.lease_token = o.token \
         ORDER BY s.id FOR NO KEY UPDATE OF s \
     ), upd AS ( \
         UPDATE steps s SET \
             status = CASE o.kind WHEN 'ok' THEN 'complete' WHEN 'retry' THEN 'pending' ELSE 'error' END, \
             results = CASE WHEN o.kind = 'ok' THEN o.results ELSE s.results END, \
             last_error = CASE WHEN o.kind = 'ok' THEN s.last_error ELSE o.err END, \
             ready_at = CASE WHEN o.kind = 'retry' THEN o.retry_at END, \
             completed_at = CASE WHEN o.kind = 'ok' THEN $7 ELSE s.completed_at END, \
             lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = $7 \
         FROM lk JOIN o ON o.id = lk.id \
         WHERE s.id = lk.id AND s.id = ANY($1::uuid[]) \
         RETURNING s.id, s.task_id, o.kind, s.attempts, o.err, o.retry_at, lk.lease_owner \
     ), tr AS ( \
         INSERT INTO step_transitions (step_id, task_id, from_state, to_state, created_at, metadata) \
         SELECT u.id, u.task_id, v.f, v.t, $7, v.m \
         FROM upd u CROSS JOIN LATERAL (VALUES \
             (1, 'in_progress', CASE u.kind WHEN 'ok' THEN 'complete' ELSE 'error' END, \
                 CASE WHEN u.kind = 'ok' THEN jsonb_build_object('attempt', u.attempts, 'worker', u.lease_owner) \
                      ELSE jsonb_build_object('attempt', u.attempts, 'worker', u.lease_owner, 'error', u.err) END), \
             (2, 'error', 'pending', \
                 jsonb_build_object('attempt', u.attempts, 'retry_at', u.retry_at)) \
         ) AS v(seq, f, t, m) \
         WHERE v.seq = 1 OR u.kind = 'retry' \
         ORDER BY u.id, v.seq \
     ) \
     SELECT id, task_id, kind, retry_at FROM upd";

/// Decrements `remaining_parents` of the children of `$1` (a child with two
/// finished parents in the batch is decremented by two), making pending
/// children whose count reaches 0 ready at `$2`. Children are locked in id
/// order. Returns, per task, how many children became ready and their ids.
pub(crate) const UNBLOCK_SQL: &str = "WITH d AS ( \
         SELECT e.child_id, count(*)::int AS n FROM step_edges e \
         WHERE e.parent_id = ANY($1::uuid[]) GROUP BY e.child_id \
     ), lk AS ( \
         SELECT c.id FROM steps c JOIN d ON d.child_id = c.id \
         WHERE c.id = ANY (ARRAY(SELECT child_id FROM d)) ORDER BY c.id FOR NO KEY UPDATE OF c \
     ), upd AS ( \
         UPDATE steps c SET remaining_parents = c.remaining_parents - d.n, \
             ready_at = CASE WHEN c.status = 'pending' AND c.remaining_parents - d.n = 0 THEN $2 \
                             ELSE c.ready_at END, \
             updated_at = $2 \
         FROM lk JOIN d ON d.child_id = lk.id \
         WHERE c.id = lk.id AND c.id = ANY (ARRAY(SELECT id FROM lk)) \
         RETURNING c.id, c.task_id, (c.status = 'pending' AND c.remaining_parents = 0) AS ready \
     ) \
     SELECT task_id, count(*) FILTER (WHERE ready) AS ready, \
            COALESCE(array_agg(id) FILTER (WHERE ready), '{}') AS ready_ids \
     FROM upd GROUP BY task_id";

/// Moves expired leases back to pending (attempts left) or to error.
pub(crate) const RESCUE_SQL: &str = "WITH c AS ( \
         SELECT s.id, s.lease_owner FROM steps s \
         WHERE s.status = 'in_progress' AND s.lease_expires_at < $1 \
         ORDER BY s.lease_expires_at, s.id \
         LIMIT $2 \
         FOR NO KEY UPDATE SKIP LOCKED \
     ), upd AS ( \
         UPDATE steps s SET \
             status = CASE WHEN s.attempts < s.max_attempts THEN 'pending' ELSE 'error' END, \
             ready_at = CASE WHEN s.attempts < s.max_attempts AND s.remaining_parents = 0 THEN $1 END, \
             last_error = jsonb_build_object( \
                 'message', 'lease expired: worker ' || COALESCE(c.lease_owner, '?') || ' stopped renewing', \
                 'kind', 'lease_expired', 'attempt', s.attempts), \
             lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = $1 \
         FROM c WHERE s.id = c.id \
         RETURNING s.id, s.task_id, s.status, s.attempts, s.last_error, c.lease_owner \
     ), tr AS ( \
         INSERT INTO step_transitions (step_id, task_id, from_state, to_state, created_at, metadata) \
         SELECT u.id, u.task_id, v.f, v.t, $1, \
                jsonb_build_object('attempt', u.attempts, 'kind', 'lease_expired', 'worker', u.lease_owner, \
                                   'error', u.last_error) \
         FROM upd u CROSS JOIN LATERAL (VALUES (1, 'in_progress', 'error'), (2, 'error', 'pending')) AS v(seq, f, t) \
         WHERE v.seq = 1 OR u.status = 'pending' \
         ORDER BY u.id, v.seq \
     ) \
     SELECT task_id, status FROM upd";

/// Moves the expiry of leases still held under the given tokens to `$3`.
/// A lease past its expiry but not yet rescued is still held: the rescuer
/// and the renewal serialise on the row lock, and whichever commits first
/// wins (the rescuer re-checks `lease_expires_at < now` under the lock).
pub(crate) const RENEW_SQL: &str = "WITH l AS ( \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[]) AS l(id, token) \
     ), lk AS ( \
         SELECT s.id FROM steps s JOIN l ON l.id = s.id \
         WHERE s.id = ANY($1::uuid[]) AND s.status = 'in_progress' AND s.lease_token = l.token \
         ORDER BY s.id FOR NO KEY UPDATE OF s \
     ) \
     UPDATE steps s SET lease_expires_at = $3 \
     FROM lk WHERE s.id = lk.id AND s.id = ANY($1::uuid[]) \
     RETURNING s.id";

/// At most this many claim statements per per-task-limited claim.
const CLAIM_ROUNDS: usize = 4;

/// Binds the parameters shared by every claim statement (`$1`..`$7`).
fn claim_query<'q>(
    shape: ClaimShape,
    claim: &'q ClaimParams,
    limit: i64,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(shape.sql())
        .bind(claim.now)
        .bind(claim.kinds.as_deref())
        .bind(claim.exclude_kinds.as_slice())
        .bind(claim.namespaces.as_deref())
        .bind(limit)
        .bind(claim.worker_id.as_str())
        .bind(claim.lease_until)
}

/// Children of `parents` lose one unfinished parent per finished parent.
/// Returns ready counts per task (tasks with children touched but none
/// ready map to 0) and the ids of the children that became ready.
pub(crate) async fn unblock_children(
    conn: &mut PgConnection,
    parents: &[Uuid],
    now: DateTime<Utc>,
) -> Result<(BTreeMap<Uuid, i64>, Vec<Uuid>), TxError> {
    if parents.is_empty() {
        return Ok((BTreeMap::new(), Vec::new()));
    }
    let rows = sqlx::query(UNBLOCK_SQL)
        .bind(parents)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
    let mut out = BTreeMap::new();
    let mut ready_ids = Vec::new();
    for r in rows {
        out.insert(r.try_get("task_id")?, r.try_get::<i64, _>("ready")?);
        ready_ids.extend(r.try_get::<Vec<Uuid>, _>("ready_ids")?);
    }
    Ok((out, ready_ids))
}

/// The claim rounds of a claim with a per-task limit, or with `among` (the
/// claim on completion), inside the caller's transaction: the statements of
/// [`ClaimShape`], so every path that leases a step obeys the same limits
/// and filters and locks its rows the same way (`FOR NO KEY UPDATE SKIP
/// LOCKED`: a step locked by a concurrent claim is left to it).
///
/// Each round locks a window of candidates larger than what it may take
/// (tasks at their limit are already filtered out in the scan). If the
/// window was full but per-task cuts left the batch short, another round
/// looks further: a later statement of the same transaction sees this
/// round's claims and counts their tasks as running. Among given steps the
/// window is all of them, so one round suffices.
async fn claim_rounds(
    conn: &mut PgConnection,
    claim: &ClaimParams,
    among: Option<&[Uuid]>,
) -> Result<Vec<sqlx::postgres::PgRow>, TxError> {
    let shape = ClaimShape {
        among: among.is_some(),
        ..ClaimShape::of(claim)
    };
    let per_task = claim.per_task_limit.map(i64::from);
    let mut rows = Vec::new();
    let mut wanted = i64::from(claim.limit);
    let rounds = if among.is_some() { 1 } else { CLAIM_ROUNDS };
    for _ in 0..rounds {
        let window = match among {
            Some(ids) => ids.len() as i64,
            None => wanted.saturating_mul(4).saturating_add(64),
        };
        let round = claim_query(shape, claim, wanted)
            .bind(per_task.unwrap_or(0))
            .bind(window)
            .bind(among.unwrap_or_default())
            .fetch_all(&mut *conn)
            .await?;
        let got = round.len() as i64;
        let scanned: i64 = match round.first() {
            Some(r) => r.try_get("scanned")?,
            None => 0,
        };
        rows.extend(round);
        wanted -= got;
        if wanted <= 0 || got == 0 || scanned < window {
            break;
        }
    }
    Ok(rows)
}

impl PgStore {
    pub(crate) async fn claim_once(
        &self,
        claim: &ClaimParams,
    ) -> Result<(Vec<ClaimedStep>, Emit), TxError> {
        if claim.per_task_limit == Some(0) {
            return Ok((Vec::new(), Emit::default()));
        }
        let rows = match claim.per_task_limit {
            // The claim statement is a complete, atomic claim on its own, so
            // it runs in autocommit: one round trip, no BEGIN/COMMIT.
            None => {
                claim_query(ClaimShape::of(claim), claim, i64::from(claim.limit))
                    .fetch_all(&self.inner.pool)
                    .await?
            }
            Some(_) => {
                // One transaction, so that a failure in a later round cannot
                // leave earlier claims orphaned.
                let mut tx = self.inner.pool.begin().await?;
                let rows = claim_rounds(&mut tx, claim, None).await?;
                tx.commit().await?;
                rows
            }
        };
        let mut emit = Emit::default();
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let step = claimed_step(r)?;
            emit.changed(step.task_id);
            out.push(step);
        }
        Ok((out, emit))
    }

    pub(crate) async fn finish_once(
        &self,
        outcomes: &[StepOutcome],
        now: DateTime<Utc>,
        claim: Option<&ClaimParams>,
    ) -> Result<(FinishReport, Emit), TxError> {
        let mut report = FinishReport::default();
        // One outcome per step: a second outcome for the same step in the
        // batch can only be a stale duplicate, so it counts as lease-lost.
        let mut seen = HashSet::with_capacity(outcomes.len());
        let n = outcomes.len();
        let (mut ids, mut tokens, mut kinds, mut results, mut errs, mut retry_at) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for o in outcomes {
            if !seen.insert(o.lease.step_id) {
                report.lease_lost.push(o.lease.step_id);
                continue;
            }
            ids.push(o.lease.step_id);
            tokens.push(o.lease.token);
            match &o.result {
                OutcomeResult::Success(v) => {
                    kinds.push("ok");
                    results.push(v.clone());
                    errs.push(Value::Null);
                    retry_at.push(None);
                }
                OutcomeResult::Failure {
                    error,
                    retry_at: at,
                } => {
                    kinds.push(if at.is_some() { "retry" } else { "fail" });
                    results.push(Value::Null);
                    errs.push(serde_json::to_value(error).map_err(|e| {
                        tasker_store::StoreError::Internal(format!("error record: {e}"))
                    })?);
                    retry_at.push(*at);
                }
            }
        }

        let mut tx = self.inner.pool.begin().await?;
        let rows = sqlx::query(FINISH_STEPS_SQL)
            .bind(&ids)
            .bind(&tokens)
            .bind(&kinds)
            .bind(&results)
            .bind(&errs)
            .bind(&retry_at)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;

        let mut emit = Emit::default();
        let mut deltas: BTreeMap<Uuid, Delta> = BTreeMap::new();
        let mut applied = HashSet::with_capacity(rows.len());
        let mut completed = Vec::new();
        for r in &rows {
            let id: Uuid = r.try_get("id")?;
            let task_id: Uuid = r.try_get("task_id")?;
            let kind: String = r.try_get("kind")?;
            applied.insert(id);
            emit.changed(task_id);
            let d = deltas.entry(task_id).or_default();
            match kind.as_str() {
                "ok" => {
                    d.remaining -= 1;
                    d.live -= 1;
                    completed.push(id);
                }
                "retry" => {
                    // pending with ready_at set is as live as in_progress:
                    // counters unchanged.
                    let at: Option<DateTime<Utc>> = r.try_get("retry_at")?;
                    if at.is_some_and(|at| at <= now) {
                        report.newly_ready += 1;
                        emit.work = true;
                    }
                }
                _ => {
                    d.live -= 1;
                    d.blocked += 1;
                }
            }
        }
        report.applied = applied.len() as u64;
        report
            .lease_lost
            .extend(ids.iter().filter(|id| !applied.contains(id)).copied());

        let (unblocked, ready_ids) = unblock_children(&mut tx, &completed, now).await?;
        for (task_id, ready) in unblocked {
            deltas.entry(task_id).or_default().live += ready;
            if ready > 0 {
                report.newly_ready += ready as u64;
            }
        }
        // Claim on completion: the children just made ready are still
        // locked by this transaction (unblock locked them), and invisible as
        // ready to every other session until it commits; leasing some of
        // them here runs the claim statement itself, restricted to them.
        // Counters need no change: a ready pending step is as live as a
        // running one. Before `settle`, which sends the NOTIFY: whether
        // there is work left for others is known only after this.
        if let Some(claim) = claim.filter(|c| c.limit > 0 && c.per_task_limit != Some(0))
            && !ready_ids.is_empty()
        {
            let claim = ClaimParams {
                now,
                ..claim.clone()
            };
            for r in claim_rounds(&mut tx, &claim, Some(&ready_ids)).await? {
                let step = claimed_step(&r)?;
                emit.changed(step.task_id);
                report.claimed.push(step);
            }
        }
        // Wake claimers (NOTIFY, this process's claimer) only for ready
        // steps nobody has leased yet.
        if report.newly_ready > report.claimed.len() as u64 {
            emit.work = true;
        }
        deltas.retain(|_, d| *d != Delta::default());
        report.finished_tasks = settle(&mut tx, &deltas, now, &mut emit, self.origin()).await?;
        notify(&mut tx, &mut emit, self.origin()).await?;
        tx.commit().await?;
        Ok((report, emit))
    }

    pub(crate) async fn renew_once(
        &self,
        leases: &[LeaseRef],
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, TxError> {
        let ids: Vec<Uuid> = leases.iter().map(|l| l.step_id).collect();
        let tokens: Vec<Uuid> = leases.iter().map(|l| l.token).collect();
        // A single statement: autocommit, no explicit transaction needed.
        let _ = now;
        let kept: HashSet<Uuid> = sqlx::query_scalar(RENEW_SQL)
            .bind(&ids)
            .bind(&tokens)
            .bind(until)
            .fetch_all(&self.inner.pool)
            .await?
            .into_iter()
            .collect();
        let mut lost: Vec<Uuid> = ids.into_iter().filter(|id| !kept.contains(id)).collect();
        lost.dedup();
        Ok(lost)
    }

    pub(crate) async fn rescue_once(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<(u64, Emit), TxError> {
        let mut tx = self.inner.pool.begin().await?;
        let rows = sqlx::query(RESCUE_SQL)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        let mut emit = Emit::default();
        let mut deltas: BTreeMap<Uuid, Delta> = BTreeMap::new();
        for r in &rows {
            let task_id: Uuid = r.try_get("task_id")?;
            let status: String = r.try_get("status")?;
            emit.changed(task_id);
            if status == "pending" {
                emit.work = true;
            } else {
                let d = deltas.entry(task_id).or_default();
                d.live -= 1;
                d.blocked += 1;
            }
        }
        settle(&mut tx, &deltas, now, &mut emit, self.origin()).await?;
        notify(&mut tx, &mut emit, self.origin()).await?;
        tx.commit().await?;
        Ok((rows.len() as u64, emit))
    }
}
