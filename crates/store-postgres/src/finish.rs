//! Finishing a batch of leased steps: one statement for the steps, their
//! children and their tasks' counters, then (when due) the claim on
//! completion and the finaliser's transitions.
//!
//! A chain stage is one round trip: the finish statement ([`FINISH_SQL`])
//! runs on its own, committed by PostgreSQL as it ends (autocommit, no
//! `BEGIN` or `COMMIT` of ours: [`crate::PgStore::finish_once`] in
//! `finish_batch.rs`, which also reads its answer and runs what follows). It runs in a
//! transaction with what follows it only when that must share its
//! transaction: a claim with a per-task limit, and the batches it refuses
//! to finish alone (steps holding concurrency keys, counters that
//! drifted). The statement does the claim on completion
//! itself: the children it makes ready that need no flow gate are written
//! running, leased to the finishing worker (up to its claim's limit), in
//! the same update that counts their parents down ([`lease_offer`],
//! `unblock_ctes!` in `work.rs`). The claim statement of `work.rs` runs
//! after it only for what that cannot take: children behind a concurrency
//! key, rate limit or task slot, a claim with a per-task limit, steps a
//! released key unparked, and a child another transaction readied while
//! this one waited for its lock (see [`lease_offer`]). The finaliser's
//! rule runs inside the finish statement too (`tasker_finaliser_path`), so
//! the last stage of a task, and a batch of single-step tasks, writes the
//! tasks' status, transitions, events and `tasker_task` NOTIFY without
//! another statement. A fifth statement writes tasks only when their stored
//! counters had drifted from their steps (the recounted truth), or for a
//! batch that released concurrency keys (below).
//!
//! Lock order is the one every writer follows: the finished steps (id
//! order), their children (id order), then the tasks (id order). A batch
//! whose steps hold concurrency keys releases the keys between children and
//! tasks: the statement then leaves the tasks alone and [`settle`] locks
//! them after the keys. (Nothing that holds a key ever waits for a step
//! row: claims and unparks take steps `SKIP LOCKED`.)

use crate::error::TxError;
use crate::events_outbox::events_on;
use crate::settle::task_change_events;
use crate::work::unblock_ctes;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashSet;
use tasker_store::{ClaimParams, FinishReport, OutcomeResult, StepOutcome};
use uuid::Uuid;

/// The children the finish statement offers its claim on completion
/// (`d` of [`unblock_ctes`]): those that, as the statement's snapshot reads
/// them, become ready now and pass the claim's filters and flow rule
/// ungated (`$11` kinds or `NULL`, `$12` excluded kinds, `$13` namespaces
/// or `NULL`; no concurrency key, rate limit or task slot; not paused or
/// parked), of running tasks (the claim on completion never starts a
/// task), the first `$8` of them in id order, each with its token from
/// `$14` (`$9` worker, `$10` lease expiry). The snapshot may be older than
/// a child's row by the time its lock is granted: `cupd` tests the row
/// again ([`lease_when`]), so a child offered here but no longer ready is
/// left alone, and one that became ready only through another transaction
/// is made ready, not leased, for the claim that follows
/// ([`crate::PgStore::finish_once`]). With `$8 = 0` no child is read.
macro_rules! lease_offer {
    () => {
        "d AS ( \
             SELECT x.child_id, x.n, \
                    CASE WHEN x.pos <= $8 THEN ($14::uuid[])[x.pos] END AS tok, \
                    $9::text AS worker, $10::timestamptz AS until \
             FROM ( \
                 SELECT d0.child_id, d0.n, \
                        CASE WHEN o.ok THEN row_number() OVER (PARTITION BY o.ok ORDER BY d0.child_id) END \
                            AS pos \
                 FROM d0 LEFT JOIN LATERAL ( \
                     SELECT c.status = 'pending' AND c.remaining_parents = d0.n AND NOT c.paused \
                            AND NOT c.parked AND c.concurrency_key IS NULL AND c.rate_key IS NULL \
                            AND c.slot_key IS NULL \
                            AND ($11::text[] IS NULL OR c.handler_kind = ANY ($11::text[])) \
                            AND NOT (c.handler_kind = ANY ($12::text[])) \
                            AND t.status = 'in_progress' \
                            AND ($13::text[] IS NULL OR t.namespace = ANY ($13::text[])) AS ok \
                     FROM steps c, tasks t \
                     WHERE $8 > 0 AND c.id = d0.child_id AND t.id = c.task_id \
                     OFFSET 0 \
                 ) o ON true \
             ) x \
         )"
    };
}

/// The claimed-step column of the finish statement's answer: in `'l'` rows
/// the leased child as a JSON object (`decode::claimed_step_json`; one
/// column rather than a claim's fifteen, each of which would cost its
/// projection in every branch of every execution), empty in the others.
macro_rules! no_claim_cols {
    () => {
        "NULL::jsonb AS claim"
    };
}

/// Applies outcomes to the steps still leased with the given token, writes
/// their transitions, unblocks the children of the completed ones and
/// applies the counter deltas to their tasks, all in one statement, with
/// the steps' lifecycle events (`ev`: the transitions are marked
/// `evented`, so the outbox trigger skips them). A finish writes only
/// `step.completed`, `step.failed` (to `error`) and `step.retry_scheduled`
/// (`error` to `pending`), so `ev` names them from the transition's target
/// and builds only those two families of payloads (migration
/// `20261207000100_step_event_families.sql`).
///
/// Every join with a batch also states `id = ANY(…)` on the base table: the
/// planner then always reaches rows through the primary key, even with
/// stale statistics right after a bulk load (measured: a hash join over the
/// whole steps table, 70–150 ms per batch with 100k finished steps). The
/// lease test is written `(…) IS TRUE` so that it does not imply the
/// predicate of the partial `steps_lease_idx`: with statistics older than
/// the last burst of claims, the planner otherwise read the batch through
/// a bitmap of that whole index (measured: 1,433 entries and 0.7 ms of a
/// 1.1 ms finish, with 3,000 tasks running). Each
/// lock set is taken by a CTE read through `ARRAY(SELECT …)` of the one
/// before it, so it is complete before the next set is locked: finished
/// steps (`lk`), children (`clk`), tasks (`tlk`). No lock CTE joins
/// another relation: a locking query over a join makes PostgreSQL carry
/// the whole row of the other side (for `lk`, the outcomes with their
/// results) to recheck a concurrently updated row. So `lk` tests the
/// lease against the sets of ids and tokens, and `upd` pairs each locked
/// step with its own outcome and token (docs/PERFORMANCE.md, "Where a
/// finish's instructions go"). The tasks are locked and
/// written only when no finished step holds a concurrency key (those
/// batches release their keys first, see the module docs).
///
/// The tasks it advances are moved by the finaliser in the same statement
/// (`tpath`: the rule as `tasker_finaliser_path`, migration
/// `20261208000000_finaliser_path.sql`, checked against the Rust rule by
/// `settle::tests::finaliser_path_in_sql_is_the_rust_rule`): status,
/// `completed_at`, transitions, their events (`tev`, after the steps'
/// events: it reads `ev` first, so event order stays step, then task) and
/// the `tasker_task` NOTIFY of the tasks that reached a final state (150
/// per payload, as `events::FINISHED_PER_PAYLOAD`). A task whose counters
/// would go negative (drifted from its steps) is not moved: the caller
/// recounts it and writes the truth (`settle::settle_applied`).
///
/// CTEs are joined to each other as little as possible: the planner
/// estimates a data-modifying CTE at a row or so, whatever the batch, so
/// such a join may be a nested loop reading one CTE in full for each row of
/// the other, quadratic in the batch (`auto_explain` of a 64-outcome
/// finish: the events joined with the transitions, the tasks' update with
/// their finaliser targets and the task events with the tasks written,
/// 1–7 ms each). So the transitions and the steps' events are both made
/// from `trv` (each finished step with its one or two transitions), every
/// task advanced has one row in `tend` with its deltas and its finaliser
/// target, if any (`tpath` keeps a row with no path for the others), and
/// the task events read each task by primary key. The joins left (`upd`:
/// `lk` with `o`; `tpath`: `tlk` with `dl`) are planned as hash joins.
///
/// The children it makes ready are offered to the claim on completion
/// ([`lease_offer`]: `$8` how many, `$9` worker, `$10` lease expiry, `$11`
/// to `$13` the claim's kind and namespace filters, `$14` the tokens); the
/// ones leased get their `pending → in_progress` transition (in `tr`) and
/// `step.started` event (in `ev`, after the finished steps' events), as a
/// claim writes them, and their parents' results, those finished by this statement
/// included (read from `upd`: the statement's snapshot has their old row).
///
/// `$15`: the statement runs on its own (autocommit, [`crate::PgStore::finish_once`]).
/// It then refuses, with [`crate::finish_batch::NEEDS_TRANSACTION`], a batch whose steps hold
/// concurrency keys or whose task counters had drifted: what must follow
/// those in the same transaction could not.
///
/// `$1..$6` outcome arrays, `$7` now. Rows: `part = 's'` per finished step,
/// `'c'` per task whose children were touched (how many became ready or
/// were leased, the ids of those not leased), `'l'` per child leased (the
/// claimed step), `'t'` per task whose counters were advanced (status and counters
/// read under its lock, before the delta; `finalised`: the state the
/// finaliser moved it to, if any), one `'n'` row (the NOTIFYs sent).
pub(crate) const FINISH_SQL: &str = concat!(
    "WITH o AS ( \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::jsonb[], $6::timestamptz[]) \
             AS o(id, token, kind, results, err, retry_at) \
     ), lk AS ( \
         SELECT s.id, s.lease_owner, s.lease_token FROM steps s \
         WHERE s.id = ANY($1::uuid[]) AND (s.status = 'in_progress') IS TRUE \
           AND s.lease_token = ANY($2::uuid[]) \
         ORDER BY s.id FOR NO KEY UPDATE \
     ), upd AS ( \
         UPDATE steps s SET \
             status = CASE o.kind WHEN 'ok' THEN 'complete' WHEN 'retry' THEN 'pending' ELSE 'error' END, \
             results = CASE WHEN o.kind = 'ok' THEN o.results ELSE s.results END, \
             last_error = CASE WHEN o.kind = 'ok' THEN s.last_error ELSE o.err END, \
             ready_at = CASE WHEN o.kind = 'retry' THEN o.retry_at END, \
             completed_at = CASE WHEN o.kind = 'ok' THEN $7 ELSE s.completed_at END, \
             lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = $7 \
         FROM lk JOIN o ON o.id = lk.id AND o.token = lk.lease_token \
         WHERE s.id = lk.id AND s.id = ANY($1::uuid[]) \
         RETURNING s.id, s.task_id, o.kind, s.attempts, o.err, o.retry_at, lk.lease_owner, \
             s.concurrency_key, s.concurrency_limit, s.name, s.status, s.results, s.last_error, \
             s.ready_at, s.last_attempted_at, s.max_attempts \
     ), trv AS ( \
         SELECT u.id, u.task_id, u.name, u.results, u.last_attempted_at, u.status, u.last_error, \
                u.ready_at, u.max_attempts, v.seq, v.f, v.t, v.m \
         FROM upd u CROSS JOIN LATERAL (VALUES \
             (1, 'in_progress', CASE u.kind WHEN 'ok' THEN 'complete' ELSE 'error' END, \
                 CASE WHEN u.kind = 'ok' THEN jsonb_build_object('attempt', u.attempts, 'worker', u.lease_owner) \
                      ELSE jsonb_build_object('attempt', u.attempts, 'worker', u.lease_owner, 'error', u.err) END), \
             (2, 'error', 'pending', \
                 jsonb_build_object('attempt', u.attempts, 'retry_at', u.retry_at)) \
         ) AS v(seq, f, t, m) \
         WHERE v.seq = 1 OR u.kind = 'retry' \
     ), ",
    unblock_ctes!(
        "ARRAY(SELECT id FROM upd WHERE kind = 'ok')",
        "$7",
        lease_offer!()
    ),
    ", tr AS ( \
         INSERT INTO step_transitions (step_id, task_id, from_state, to_state, created_at, metadata, evented) \
         SELECT id, task_id, f, t, $7, m, true FROM ( \
             SELECT 0 AS part, id, seq, task_id, f, t, m FROM trv \
             UNION ALL \
             SELECT 1, id, 1, task_id, 'pending', 'in_progress', \
                    jsonb_build_object('attempt', attempts, 'worker', $9::text) \
             FROM cupd WHERE leased \
         ) x ORDER BY part, id, seq \
     ), ev AS ( \
         INSERT INTO events (type, task_id, step_id, namespace, created_at, payload) \
         SELECT e.type, e.task_id, e.id, k.namespace, $7, e.payload FROM ( \
             SELECT 0 AS part, r.id, r.seq, r.task_id, \
                    CASE r.t WHEN 'complete' THEN 'step.completed' \
                        WHEN 'error' THEN 'step.failed' ELSE 'step.retry_scheduled' END AS type, \
                    CASE WHEN r.t = 'complete' THEN tasker_step_completed_payload(r.name, r.m, \
                             (extract(epoch FROM $7 - r.last_attempted_at) * 1000)::float8, r.results) \
                         ELSE tasker_step_failure_payload(r.name, r.m, r.t = 'error', r.status, \
                             r.last_error, r.ready_at, r.max_attempts) END AS payload \
             FROM trv r \
             UNION ALL \
             SELECT 1, l.id, 1, l.task_id, 'step.started', \
                    tasker_step_started_payload(l.name, \
                        jsonb_build_object('attempt', l.attempts, 'worker', $9::text)) \
             FROM cupd l WHERE l.leased \
         ) e \
         CROSS JOIN LATERAL (SELECT namespace FROM tasks WHERE tasks.id = e.task_id OFFSET 0) k \
         WHERE ",
    events_on!(),
    " ORDER BY e.part, e.id, e.seq \
         RETURNING seq \
     )",
    ", dl AS ( \
         SELECT x.task_id, sum(x.rem)::bigint AS rem, sum(x.live)::bigint AS live, \
                sum(x.blk)::bigint AS blk \
         FROM ( \
             SELECT task_id, CASE kind WHEN 'ok' THEN -1 ELSE 0 END AS rem, \
                    CASE kind WHEN 'retry' THEN 0 ELSE -1 END AS live, \
                    CASE WHEN kind IN ('ok', 'retry') THEN 0 ELSE 1 END AS blk \
             FROM upd \
             UNION ALL \
             SELECT task_id, 0, CASE WHEN ready THEN 1 ELSE 0 END, 0 FROM cupd \
         ) x \
         GROUP BY x.task_id \
         HAVING sum(x.rem) <> 0 OR sum(x.live) <> 0 OR sum(x.blk) <> 0 \
     ), tlk AS ( \
         SELECT t.id, t.status, t.steps_remaining, t.steps_live, t.steps_blocked FROM tasks t \
         WHERE t.id = ANY (ARRAY( \
             SELECT task_id FROM dl \
             WHERE NOT EXISTS (SELECT 1 FROM upd WHERE concurrency_key IS NOT NULL))) \
         ORDER BY t.id FOR NO KEY UPDATE \
     ), tpath AS ( \
         SELECT k.id, p.seq, p.from_state, p.to_state, p.metadata, dl.rem, dl.live, dl.blk \
         FROM tlk k JOIN dl ON dl.task_id = k.id \
         LEFT JOIN LATERAL tasker_finaliser_path(k.status, k.steps_remaining + dl.rem, \
             k.steps_live + dl.live, k.steps_blocked + dl.blk) p \
           ON k.steps_remaining + dl.rem >= 0 AND k.steps_live + dl.live >= 0 \
          AND k.steps_blocked + dl.blk >= 0 \
     ), tend AS ( \
         SELECT DISTINCT ON (id) id, to_state, \
                to_state IN ('complete', 'error', 'cancelled', 'resolved_manually') AS final, \
                rem, live, blk \
         FROM tpath ORDER BY id, seq DESC \
     ), tupd AS ( \
         UPDATE tasks t SET steps_remaining = GREATEST(t.steps_remaining + e.rem, 0), \
             steps_live = GREATEST(t.steps_live + e.live, 0), \
             steps_blocked = GREATEST(t.steps_blocked + e.blk, 0), \
             status = COALESCE(e.to_state, t.status), \
             completed_at = CASE WHEN e.to_state IS NULL THEN t.completed_at \
                 WHEN e.final THEN $7 END, \
             updated_at = $7 \
         FROM tend e \
         WHERE t.id = e.id AND t.id = ANY (ARRAY(SELECT id FROM tlk)) \
         RETURNING t.id \
     ), ttr AS ( \
         INSERT INTO task_transitions (task_id, from_state, to_state, created_at, metadata, evented) \
         SELECT p.id, p.from_state, p.to_state, $7, p.metadata, true FROM tpath p \
         WHERE p.seq IS NOT NULL AND p.id = ANY (ARRAY(SELECT id FROM tupd)) \
         ORDER BY p.id, p.seq \
         RETURNING id, task_id, from_state, to_state, created_at, metadata \
     ), tev AS ( ",
    task_change_events!("ttr", "(SELECT count(*) FROM ev) >= 0 AND "),
    " ) \
     SELECT 's' AS part, u.id, u.task_id, u.kind, u.retry_at, u.concurrency_key, u.concurrency_limit, \
            NULL::bigint AS ready, NULL::uuid[] AS ready_ids, NULL::text AS status, \
            NULL::bigint AS steps_remaining, NULL::bigint AS steps_live, NULL::bigint AS steps_blocked, \
            NULL::text AS finalised, ",
    no_claim_cols!(),
    " FROM upd u \
     WHERE NOT ($15::bool AND u.concurrency_key IS NOT NULL \
                AND tasker_finish_needs_transaction('a concurrency key to release')) \
     UNION ALL \
     SELECT 'c', NULL, task_id, NULL, NULL, NULL, NULL, count(*) FILTER (WHERE ready), \
            COALESCE(array_agg(id) FILTER (WHERE ready AND NOT leased), '{}'), NULL, NULL, NULL, NULL, \
            NULL, ",
    no_claim_cols!(),
    " FROM cupd GROUP BY task_id \
     UNION ALL \
     SELECT 'l', l.id, l.task_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
            jsonb_build_object('id', l.id, 'task_id', l.task_id, 'name', l.name, \
                'handler_kind', l.handler_kind, 'handler_config', l.handler_config, \
                'inputs', l.inputs, 'attempts', l.attempts, 'max_attempts', l.max_attempts, \
                'timeout_seconds', l.timeout_seconds, 'lease_token', l.lease_token, \
                'lease_expires_at', l.lease_expires_at, 'namespace', t.namespace, \
                'task_name', t.name, 'version', t.version, 'context', t.context, \
                'correlation_id', t.correlation_id, \
                'parent_results', \
                (SELECT jsonb_object_agg(p.name, COALESCE(u.results, p.results, 'null'::jsonb)) \
                 FROM steps p LEFT JOIN upd u ON u.id = p.id \
                 WHERE p.id = ANY (ARRAY( \
                     SELECT e.parent_id FROM step_edges e WHERE e.child_id = l.id)))) \
     FROM cupd l \
     CROSS JOIN LATERAL ( \
         SELECT namespace, name, version, context, correlation_id FROM tasks \
         WHERE tasks.id = l.task_id OFFSET 0) t \
     WHERE l.leased \
     UNION ALL \
     SELECT 't', k.id, k.id, NULL, NULL, NULL, NULL, NULL, NULL, k.status, \
            k.steps_remaining, k.steps_live, k.steps_blocked, e.to_state, ",
    no_claim_cols!(),
    " FROM tlk k LEFT JOIN tend e ON e.id = k.id WHERE k.id = ANY (ARRAY(SELECT id FROM tupd)) \
       AND NOT ($15::bool \
                AND COALESCE(k.steps_remaining + e.rem < 0 OR k.steps_live + e.live < 0 \
                             OR k.steps_blocked + e.blk < 0, false) \
                AND tasker_finish_needs_transaction('task counters that drifted')) \
     UNION ALL \
     SELECT 'n', NULL, NULL, NULL, NULL, NULL, NULL, count(pg_notify('tasker_task', n.p)), \
            NULL, NULL, NULL, NULL, NULL, NULL, ",
    no_claim_cols!(),
    " FROM (SELECT string_agg(f.id::text || ':finished', ',' ORDER BY f.id) AS p \
           FROM (SELECT e.id, (row_number() OVER (ORDER BY e.id) - 1) / 150 AS chunk FROM tend e \
                 WHERE e.final AND e.id = ANY (ARRAY(SELECT id FROM tupd))) f \
           GROUP BY f.chunk) n"
);

/// What the finish statement may lease of the children it makes ready
/// (`$8`, `$14` of [`FINISH_SQL`]): the claim on completion's limit, unless
/// it has a per-task limit (its ranking is the claim statement's, which
/// then takes them all), and a fresh token for each.
pub(crate) struct LeaseOffer {
    budget: u32,
    tokens: Vec<Uuid>,
}

impl LeaseOffer {
    pub(crate) fn of(claim: Option<&ClaimParams>) -> Self {
        let budget = claim
            .filter(|c| c.per_task_limit.is_none())
            .map_or(0, |c| c.limit);
        LeaseOffer {
            budget,
            tokens: (0..budget).map(|_| Uuid::new_v4()).collect(),
        }
    }
}

/// The outcome arrays bound to [`FINISH_SQL`].
#[derive(Default)]
pub(crate) struct Batch {
    ids: Vec<Uuid>,
    tokens: Vec<Uuid>,
    kinds: Vec<&'static str>,
    results: Vec<Value>,
    errs: Vec<Value>,
    retry_at: Vec<Option<DateTime<Utc>>>,
    /// `$7`: the time every row of the batch is written at.
    now: DateTime<Utc>,
}

impl Batch {
    /// The steps of the batch, one outcome each.
    pub(crate) fn ids(&self) -> &[Uuid] {
        &self.ids
    }

    /// The time every row of the batch is written at.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// One entry per step: a second outcome for the same step in the batch
    /// can only be a stale duplicate, so it counts as lease-lost.
    pub(crate) fn of(
        outcomes: &[StepOutcome],
        now: DateTime<Utc>,
        report: &mut FinishReport,
    ) -> Result<Batch, TxError> {
        let mut seen = HashSet::with_capacity(outcomes.len());
        let mut b = Batch {
            now,
            ..Batch::default()
        };
        for o in outcomes {
            if !seen.insert(o.lease.step_id) {
                report.lease_lost.push(o.lease.step_id);
                continue;
            }
            b.ids.push(o.lease.step_id);
            b.tokens.push(o.lease.token);
            match &o.result {
                OutcomeResult::Success(v) => {
                    b.kinds.push("ok");
                    b.results.push(v.clone());
                    b.errs.push(Value::Null);
                    b.retry_at.push(None);
                }
                OutcomeResult::Failure {
                    error,
                    retry_at: at,
                } => {
                    b.kinds.push(if at.is_some() { "retry" } else { "fail" });
                    b.results.push(Value::Null);
                    b.errs.push(serde_json::to_value(error).map_err(|e| {
                        tasker_store::StoreError::Internal(format!("error record: {e}"))
                    })?);
                    b.retry_at.push(*at);
                }
            }
        }
        Ok(b)
    }
}

/// Runs [`FINISH_SQL`] for `b`. `alone`: it runs on its own, not in a
/// transaction (`$15`), and refuses the batches whose follow-up must share
/// its transaction ([`crate::finish_batch::NEEDS_TRANSACTION`]).
pub(crate) async fn finish_rows<'e>(
    ex: impl sqlx::PgExecutor<'e>,
    b: &Batch,
    claim: Option<&ClaimParams>,
    offer: &LeaseOffer,
    alone: bool,
) -> Result<Vec<sqlx::postgres::PgRow>, sqlx::Error> {
    sqlx::query(FINISH_SQL)
        .bind(&b.ids)
        .bind(&b.tokens)
        .bind(&b.kinds)
        .bind(&b.results)
        .bind(&b.errs)
        .bind(&b.retry_at)
        .bind(b.now)
        .bind(i64::from(offer.budget))
        .bind(claim.map(|c| c.worker_id.as_str()))
        .bind(claim.map(|c| c.lease_until))
        .bind(claim.and_then(|c| c.kinds.as_deref()))
        .bind(
            claim
                .map(|c| c.exclude_kinds.as_slice())
                .unwrap_or_default(),
        )
        .bind(claim.and_then(|c| c.namespaces.as_deref()))
        .bind(&offer.tokens)
        .bind(alone)
        .fetch_all(ex)
        .await
}
