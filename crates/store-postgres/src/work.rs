//! The hot path: claim, renew, rescue (finish: `finish.rs`).
//!
//! Every statement here touches rows through the partial indexes
//! (`steps_ready_idx`, `steps_lease_idx`, `steps_running_task_idx`) or by
//! primary key, and appends transitions without reading them.

use crate::PgStore;
use crate::decode::claimed_step;
use crate::error::TxError;
use crate::events::{Emit, notify};
use crate::events_outbox::events_on;
use crate::flow::{
    FLOW_COLS, GATE_COLS, GATE_SQL, GATED_COUNT, Released, UNGATED_SQL, release, released,
};
use crate::settle::{Delta, settle};
use crate::tx;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;
use tasker_store::{ClaimParams, ClaimedStep, LeaseRef};
use uuid::Uuid;

/// The columns a lease sets on a step `$s` when `$when` holds (and leaves
/// as they are otherwise): running, attempt counted, owned by `$worker`
/// under `$token` until `$until`, no longer ready. Every path that leases a
/// step writes these: the claim statements (`$when` = `true`, which the
/// planner folds away) and the finish statement's lease of the children it
/// makes ready (`finish.rs`).
macro_rules! lease_set {
    ($s:expr, $when:expr, $now:expr, $worker:expr, $until:expr, $token:expr) => {
        concat!(
            "status = CASE WHEN ",
            $when,
            " THEN 'in_progress' ELSE ",
            $s,
            ".status END, \
             attempts = CASE WHEN ",
            $when,
            " THEN ",
            $s,
            ".attempts + 1 ELSE ",
            $s,
            ".attempts END, \
             last_attempted_at = CASE WHEN ",
            $when,
            " THEN ",
            $now,
            " ELSE ",
            $s,
            ".last_attempted_at END, \
             lease_owner = CASE WHEN ",
            $when,
            " THEN ",
            $worker,
            " ELSE ",
            $s,
            ".lease_owner END, \
             lease_token = CASE WHEN ",
            $when,
            " THEN ",
            $token,
            " ELSE ",
            $s,
            ".lease_token END, \
             lease_expires_at = CASE WHEN ",
            $when,
            " THEN ",
            $until,
            " ELSE ",
            $s,
            ".lease_expires_at END, \
             flow_wait = CASE WHEN ",
            $when,
            " THEN NULL ELSE ",
            $s,
            ".flow_wait END"
        )
    };
}
pub(crate) use lease_set;

/// The claim statements' lease (`claimed` in [`claim_tail`]).
const CLAIM_LEASE_SET: &str = lease_set!("s", "true", "$1", "$6", "$7", "gen_random_uuid()");

/// Shared tail of every claim statement: `pick(id, ready_at)` names the
/// rows to claim, already locked.
///
/// Every table is reached by primary key whatever the planner believes
/// about the batch size (in a generic plan `LIMIT $5` is guessed as 10% of
/// the frontier, enough to make a hash join over the whole table look
/// cheap): rows are looked up with `id = ANY (ARRAY(SELECT …))` (each
/// step's parents for its `parent_results` too), never joined against a
/// table. (The parents were a join of `step_edges` and `steps` until it was
/// found planned, on a fresh database, as a hash join over every step once
/// per claimed step: 90 of the 105 ms of a fan-out's claim of 255
/// children.)
///
/// Nor are CTEs joined to each other more than needed: the planner
/// estimates a data-modifying CTE at a row or ten whatever the batch, so
/// such a join may be a nested loop that reads one CTE in full for each row
/// of the other, quadratic in the batch (measured by `auto_explain`: 4 ms of
/// a 129-step claim for the events joined with the claimed steps, as much
/// again for the answer joined with the claimed tasks). The one left,
/// `ordered` (`claimed` with `pick`), is planned as a hash join.
/// So each claimed step's task is read by primary key where it is needed
/// (`CROSS JOIN LATERAL (… OFFSET 0)`: the namespace for its event, the
/// task's columns for the answer; name, version and namespace never change,
/// so the statement's snapshot is right), and the `step.started` events
/// are made from `ordered`, in the transitions' order, with the same
/// metadata, rather than by joining the inserted transitions back.
/// `start_lock` writes its status test `(…) IS TRUE` so that it
/// cannot be used as an index condition on `tasks (status, created_at)`:
/// with stale statistics after a burst of new tasks, the planner could
/// otherwise scan every pending task on each claim instead of at most
/// `limit` primary-key probes.
///
/// The claim writes its own `step.started` / `task.started` events
/// (`claim_ev`) and marks those transitions `evented`, so the outbox
/// trigger skips them. Both are one family each, so they call that
/// family's payload function and name their type outright (a claim's
/// transitions are always `pending` to `in_progress`, and a task moved by
/// a claim has no pause or resume in its metadata; migration
/// `20261206000000_lean_event_writes.sql`).
///
/// The answer always has at least one row: when nothing was claimed, one
/// row whose step columns are NULL carries the counters (`scanned`,
/// `deferred`, `gated`); [`ClaimAnswer::of`] drops it.
fn claim_tail(scanned: &str, gated: &str, starts: bool) -> String {
    let events_on = events_on!();
    // Without `starts` the task-start branch is left out of the statement
    // (the tasks are known to be running, see `ClaimShape::starts`): its
    // nodes cost their executor set-up on every execution even when they
    // find nothing.
    let (start_ctes, task_events) = if starts {
        (
            "start_lock AS ( \
                 SELECT t.id FROM tasks t \
                 WHERE t.id = ANY (ARRAY(SELECT DISTINCT task_id FROM claimed)) \
                   AND (t.status = 'pending') IS TRUE \
                 ORDER BY t.id FOR NO KEY UPDATE \
             ), started AS ( \
                 UPDATE tasks t SET status = 'in_progress', updated_at = $1 \
                 WHERE t.id = ANY (ARRAY(SELECT id FROM start_lock)) \
                 RETURNING t.id \
             ), task_tr AS ( \
                 INSERT INTO task_transitions (task_id, from_state, to_state, created_at, metadata, evented) \
                 SELECT id, 'pending', 'in_progress', $1, jsonb_build_object('worker', $6::text), true FROM started \
                 RETURNING id, task_id, from_state, to_state, metadata \
             ), ",
            "SELECT 0 AS part, r.id AS rid, NULL::timestamptz AS at, NULL::uuid AS sid, \
                    'task.started' AS type, r.task_id, NULL::uuid AS step_id, k.namespace, \
                    tasker_task_change_payload(k.name, k.version, r.from_state, r.to_state) AS payload \
             FROM task_tr r \
             CROSS JOIN LATERAL (SELECT namespace, name, version FROM tasks \
                                 WHERE tasks.id = r.task_id OFFSET 0) k \
             UNION ALL ",
        )
    } else {
        ("", "")
    };
    format!(
        "claimed AS ( \
             UPDATE steps s SET {CLAIM_LEASE_SET}, ready_at = NULL, updated_at = $1 \
             WHERE s.id = ANY (ARRAY(SELECT id FROM pick)) \
             RETURNING s.id, s.task_id, s.name, s.handler_kind, s.handler_config, s.inputs, s.attempts, \
                 s.max_attempts, s.timeout_seconds, s.lease_token, s.lease_expires_at \
         ), ordered AS ( \
             SELECT c.*, p.ready_at AS was_ready_at FROM claimed c JOIN pick p ON p.id = c.id \
         ), step_tr AS ( \
             INSERT INTO step_transitions (step_id, task_id, from_state, to_state, created_at, metadata, evented) \
             SELECT id, task_id, 'pending', 'in_progress', $1, \
                    jsonb_build_object('attempt', attempts, 'worker', $6::text), true \
             FROM ordered ORDER BY was_ready_at, id \
         ), {start_ctes}claim_ev AS ( \
             INSERT INTO events (type, task_id, step_id, namespace, created_at, payload) \
             SELECT e.type, e.task_id, e.step_id, e.namespace, $1, e.payload \
             FROM ( \
                 {task_events}\
                 SELECT 1 AS part, NULL::bigint AS rid, o.was_ready_at AS at, o.id AS sid, \
                        'step.started' AS type, o.task_id, o.id AS step_id, k.namespace, \
                        tasker_step_started_payload(o.name, \
                            jsonb_build_object('attempt', o.attempts, 'worker', $6::text)) AS payload \
                 FROM ordered o \
                 CROSS JOIN LATERAL (SELECT namespace FROM tasks WHERE tasks.id = o.task_id OFFSET 0) k \
             ) e \
             WHERE {events_on} \
             ORDER BY e.part, e.rid, e.at, e.sid \
         ), out AS ( \
             SELECT o.id, o.task_id, o.name, o.handler_kind, o.handler_config, o.inputs, o.attempts, \
                    o.max_attempts, o.timeout_seconds, o.lease_token, o.lease_expires_at, \
                    t.namespace, t.task_name, t.version, t.context, t.correlation_id, \
                    (SELECT jsonb_object_agg(p.name, COALESCE(p.results, 'null'::jsonb)) \
                     FROM steps p \
                     WHERE p.id = ANY (ARRAY( \
                         SELECT e.parent_id FROM step_edges e WHERE e.child_id = o.id))) \
                        AS parent_results, \
                    o.was_ready_at \
             FROM ordered o \
             CROSS JOIN LATERAL ( \
                 SELECT namespace, name AS task_name, version, context, correlation_id FROM tasks \
                 WHERE tasks.id = o.task_id OFFSET 0) t \
         ) \
         SELECT out.*, {scanned} AS scanned, (SELECT count(*) FROM deferred) AS deferred, \
                {gated} AS gated \
         FROM (SELECT 1) one LEFT JOIN out ON true \
         ORDER BY out.was_ready_at, out.id"
    )
}

/// Which optional parts a claim statement has. Each combination is its own
/// statement text (96 in all, built once): a filter that is absent is not
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
    /// Only among given steps (`$10`): the part of the claim on completion
    /// that the finish statement does not do itself (children behind a
    /// flow gate, per-task limits, unparked steps; `finish.rs`), restricted
    /// to the steps the finishing transaction made ready. The same
    /// statement otherwise, so both claims obey one rule.
    pub among: bool,
    /// With the flow gate ([`GATE_SQL`]: concurrency keys, rate limits,
    /// task slots). Without it ([`UNGATED_SQL`]) only ungated candidates are
    /// taken and the gated ones are counted; [`claim_statement`] runs this
    /// shape for the slots left only when that count is not zero.
    pub gated: bool,
    /// Starts the claimed steps' tasks that are still pending (their
    /// `task.started`). Always, but for the claim on completion of
    /// children whose tasks the finishing transaction holds locked and saw
    /// running (`finish.rs`): there the branch could only find nothing, and
    /// leaving it out saves about a tenth of the statement's instructions
    /// (docs/PERFORMANCE.md, "Leaner event rows").
    pub starts: bool,
}

impl ClaimShape {
    pub(crate) fn of(claim: &ClaimParams) -> Self {
        ClaimShape {
            kinds: claim.kinds.is_some(),
            exclude: !claim.exclude_kinds.is_empty(),
            namespaces: claim.namespaces.is_some(),
            per_task: claim.per_task_limit.is_some(),
            among: false,
            gated: false,
            starts: true,
        }
    }

    fn index(self) -> usize {
        usize::from(self.kinds)
            | usize::from(self.exclude) << 1
            | usize::from(self.namespaces) << 2
            | usize::from(self.per_task) << 3
            | usize::from(self.among) << 4
            | usize::from(self.gated) << 5
            | usize::from(!self.starts) << 6
    }

    fn from_index(i: usize) -> Self {
        ClaimShape {
            kinds: i & 1 != 0,
            exclude: i & 2 != 0,
            namespaces: i & 4 != 0,
            per_task: i & 8 != 0,
            among: i & 16 != 0,
            gated: i & 32 != 0,
            starts: i & 64 == 0,
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
        let (gate, gated) = if self.gated {
            (GATE_SQL, "0::bigint")
        } else {
            (UNGATED_SQL, GATED_COUNT)
        };
        let mut filters = if self.among {
            // A handful of candidates by primary key. The ready test is
            // written so that it cannot use (nor be proved to allow) the
            // partial `steps_ready_idx`: with stale statistics the planner
            // could otherwise walk the whole ready frontier in index order
            // looking for these few ids.
            String::from(
                "s.id = ANY($10::uuid[]) AND (s.ready_at <= $1) IS TRUE AND NOT s.paused AND NOT s.parked",
            )
        } else {
            // `ready_at IS NOT NULL` is implied by `ready_at <= $1`, but the
            // planner estimates it from the column's share of NULLs, which
            // in a store with history (finished steps are never ready) is
            // nearly all of them; `ready_at <= $1` alone, with `$1`
            // unknown, it estimates at a third of the table. With both, the
            // generic plan is the custom one (the ready index in order,
            // stopping at the limit) and PostgreSQL settles on it instead
            // of planning this statement again at every claim: about 1 ms
            // of planning each time (docs/PERFORMANCE.md, "A claim planned
            // once").
            String::from(
                "s.ready_at <= $1 AND s.ready_at IS NOT NULL AND NOT s.paused AND NOT s.parked",
            )
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
                     SELECT s.id, s.task_id, s.ready_at, {FLOW_COLS} FROM steps s \
                     WHERE {filters} \
                       AND (SELECT count(*) FROM steps r \
                            WHERE r.task_id = s.task_id AND r.status = 'in_progress') < $8 \
                     ORDER BY s.ready_at, s.id \
                     LIMIT $9 \
                     FOR NO KEY UPDATE SKIP LOCKED \
                 ), ranked AS ( \
                     SELECT c.id, c.ready_at, {GATE_COLS}, \
                            row_number() OVER (PARTITION BY c.task_id ORDER BY c.ready_at, c.id) AS rn, \
                            (SELECT count(*) FROM steps r \
                             WHERE r.task_id = c.task_id AND r.status = 'in_progress') AS running \
                     FROM cand c \
                 ), pre AS ( \
                     SELECT id, ready_at, {GATE_COLS} FROM ranked \
                     WHERE rn + running <= $8 ORDER BY ready_at, id LIMIT $5 \
                 ), {gate}, {}",
                claim_tail("(SELECT count(*) FROM cand)", gated, self.starts)
            )
        } else {
            format!(
                "WITH pre AS ( \
                     SELECT s.id, s.ready_at, {FLOW_COLS} FROM steps s \
                     WHERE {filters} \
                     ORDER BY s.ready_at, s.id \
                     LIMIT $5 \
                     FOR NO KEY UPDATE SKIP LOCKED \
                 ), {gate}, {}",
                claim_tail("0::bigint", gated, self.starts)
            )
        }
    }

    /// Every shape (one that does not start tasks is always `among`).
    pub(crate) fn all() -> impl Iterator<Item = ClaimShape> {
        (0..128)
            .map(ClaimShape::from_index)
            .filter(|s| s.starts || s.among)
    }
}

/// Indexed by [`ClaimShape::index`]; the slots of shapes that do not exist
/// (a claim that does not start tasks is always `among`) stay empty.
static CLAIM_STATEMENTS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut all = vec![String::new(); 128];
    for shape in ClaimShape::all() {
        all[shape.index()] = shape.build();
    }
    all
});

/// The `d` of [`unblock_ctes`] that offers no child for lease.
macro_rules! no_lease {
    () => {
        "d AS (SELECT child_id, n, NULL::uuid AS tok, NULL::text AS worker, \
               NULL::timestamptz AS until FROM d0)"
    };
}

/// Whether `cupd` leases child `c` (of `d`): the caller offered it (`d.tok`,
/// the token it gets) and, read under its lock, it becomes ready now and no
/// flow gate applies to it: the ungated claim's rule ([`UNGATED_SQL`]), and
/// not paused or parked, as every claim requires.
macro_rules! lease_when {
    () => {
        "d.tok IS NOT NULL AND c.status = 'pending' AND c.remaining_parents = d.n \
         AND NOT c.paused AND NOT c.parked AND c.concurrency_key IS NULL \
         AND c.rate_key IS NULL AND c.slot_key IS NULL"
    };
}
pub(crate) use lease_when;

/// The CTEs that decrement `remaining_parents` of the children of the
/// parents `$parents` (a SQL array expression; a child with two finished
/// parents in the batch is decremented by two), making pending children
/// whose count reaches 0 ready at `$now`, or leasing them at once.
///
/// `d0(child_id, n)` counts each child's finished parents; `$rank` is a CTE
/// `d(child_id, n, tok, worker, until)` over it that offers children for
/// lease: `tok` is the lease token of an offered child, `NULL` for the
/// others ([`no_lease`] offers none; the finish statement offers what its
/// claim on completion may take). An offered child that, read under its
/// lock, becomes ready now and needs no flow gate ([`lease_when`]) is
/// written running ([`lease_set`]) instead of ready, in the same update.
/// Children are locked in id order (`clk`); `cupd(id, task_id, ready,
/// leased, …)` are the children touched (`ready`: ready or leased now; the
/// leased ones also carry what a claim returns). `cupd` reads `clk` only
/// through `ARRAY(…)` (so every lock is taken before the first update) and
/// joins `d` alone with `steps`: joined with `clk` as well, the planner's
/// one-row estimate of each CTE made that a nested loop reading all of `d`
/// per child, 998 × 998 rows for a 1,000-step fan-out's root (the 40 ms
/// "unblock" of its finish). Shared by [`UNBLOCK_SQL`] and the folded
/// finish statement (`finish.rs`), so both unblock the same way.
macro_rules! unblock_ctes {
    ($parents:expr, $now:expr, $rank:expr) => {
        concat!(
            "d0 AS ( \
                 SELECT e.child_id, count(*)::int AS n FROM step_edges e \
                 WHERE e.parent_id = ANY (",
            $parents,
            ") GROUP BY e.child_id \
             ), ",
            $rank,
            ", clk AS ( \
                 SELECT c.id FROM steps c \
                 WHERE c.id = ANY (ARRAY(SELECT child_id FROM d)) ORDER BY c.id FOR NO KEY UPDATE \
             ), cupd AS ( \
                 UPDATE steps c SET remaining_parents = c.remaining_parents - d.n, \
                     ready_at = CASE WHEN ",
            $crate::work::lease_when!(),
            " THEN NULL \
                         WHEN c.status = 'pending' AND c.remaining_parents - d.n = 0 THEN ",
            $now,
            " ELSE c.ready_at END, ",
            $crate::work::lease_set!(
                "c",
                $crate::work::lease_when!(),
                $now,
                "d.worker",
                "d.until",
                "d.tok"
            ),
            ", updated_at = ",
            $now,
            " FROM d \
                 WHERE c.id = d.child_id AND c.id = ANY (ARRAY(SELECT id FROM clk)) \
                 RETURNING c.id, c.task_id, \
                     (c.status = 'pending' AND c.remaining_parents = 0) \
                         OR COALESCE(c.lease_token = d.tok, false) AS ready, \
                     COALESCE(c.lease_token = d.tok, false) AS leased, \
                     c.name, c.handler_kind, c.handler_config, c.inputs, c.attempts, c.max_attempts, \
                     c.timeout_seconds, c.lease_token, c.lease_expires_at \
             )"
        )
    };
}
pub(crate) use unblock_ctes;

/// Decrements `remaining_parents` of the children of `$1`, making those
/// whose count reaches 0 ready at `$2` ([`unblock_ctes`]). Returns, per
/// task, how many children became ready and their ids.
pub(crate) const UNBLOCK_SQL: &str = concat!(
    "WITH ",
    unblock_ctes!("$1::uuid[]", "$2", no_lease!()),
    " SELECT task_id, count(*) FILTER (WHERE ready) AS ready, \
            COALESCE(array_agg(id) FILTER (WHERE ready), '{}') AS ready_ids \
     FROM cupd GROUP BY task_id"
);

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
         RETURNING s.id, s.task_id, s.status, s.attempts, s.last_error, c.lease_owner, \
             s.concurrency_key, s.concurrency_limit \
     ), tr AS ( \
         INSERT INTO step_transitions (step_id, task_id, from_state, to_state, created_at, metadata) \
         SELECT u.id, u.task_id, v.f, v.t, $1, \
                jsonb_build_object('attempt', u.attempts, 'kind', 'lease_expired', 'worker', u.lease_owner, \
                                   'error', u.last_error) \
         FROM upd u CROSS JOIN LATERAL (VALUES (1, 'in_progress', 'error'), (2, 'error', 'pending')) AS v(seq, f, t) \
         WHERE v.seq = 1 OR u.status = 'pending' \
         ORDER BY u.id, v.seq \
     ) \
     SELECT task_id, status, concurrency_key, concurrency_limit FROM upd";

/// Moves the expiry of leases still held under the given tokens to `$3`.
/// A lease past its expiry but not yet rescued is still held: the rescuer
/// and the renewal serialise on the row lock, and whichever commits first
/// wins (the rescuer re-checks `lease_expires_at < now` under the lock).
/// Rows are reached by primary key: the lease test is `(…) IS TRUE` so that
/// it does not imply the predicate of `steps_lease_idx` (see `FINISH_SQL`).
pub(crate) const RENEW_SQL: &str = "WITH l AS ( \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[]) AS l(id, token) \
     ), lk AS ( \
         SELECT s.id FROM steps s JOIN l ON l.id = s.id \
         WHERE s.id = ANY($1::uuid[]) AND (s.status = 'in_progress') IS TRUE AND s.lease_token = l.token \
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

/// One claim statement's answer: the claimed rows (the counters-only row of
/// an empty claim dropped) and the counters.
pub(crate) struct ClaimAnswer {
    /// Claimed steps, in claim order.
    pub rows: Vec<sqlx::postgres::PgRow>,
    /// Candidates the per-task window read (0 without a per-task limit).
    pub scanned: i64,
    /// Steps a rate limit deferred.
    pub deferred: i64,
    /// Candidates left to the gate (ungated shapes only).
    pub gated: i64,
}

impl ClaimAnswer {
    fn of(all: Vec<sqlx::postgres::PgRow>) -> Result<Self, TxError> {
        let (scanned, deferred, gated) = match all.first() {
            Some(r) => (
                r.try_get("scanned")?,
                r.try_get("deferred")?,
                r.try_get("gated")?,
            ),
            None => (0, 0, 0),
        };
        // A row that does not decode is an error, never a dropped claim.
        let mut rows = Vec::with_capacity(all.len());
        for r in all {
            if r.try_get::<Option<Uuid>, _>("id")?.is_some() {
                rows.push(r);
            }
        }
        Ok(ClaimAnswer {
            rows,
            scanned,
            deferred,
            gated,
        })
    }
}

/// A claim of up to `wanted` steps on `conn`: the ungated statement, then,
/// only if it met candidates that need the gate and slots are left, the
/// gated one for those slots. Both see the same rule (the gated statement
/// is the complete one; the ungated takes only what the gate would take
/// without looking). Inside a transaction the second statement sees the
/// first's claims; in autocommit each is atomic on its own.
pub(crate) async fn claim_statement(
    conn: &mut PgConnection,
    shape: ClaimShape,
    claim: &ClaimParams,
    wanted: i64,
    window: i64,
    among: Option<&[Uuid]>,
) -> Result<ClaimAnswer, TxError> {
    let run = |gated: bool, limit: i64| {
        claim_query(ClaimShape { gated, ..shape }, claim, limit)
            .bind(claim.per_task_limit.map_or(0, i64::from))
            .bind(window)
            .bind(among.unwrap_or_default())
    };
    let mut answer = ClaimAnswer::of(run(false, wanted).fetch_all(&mut *conn).await?)?;
    let left = wanted - answer.rows.len() as i64;
    if answer.gated > 0 && left > 0 {
        let more = ClaimAnswer::of(run(true, left).fetch_all(&mut *conn).await?)?;
        answer.rows.extend(more.rows);
        answer.deferred += more.deferred;
    }
    Ok(answer)
}

/// The claim rounds of a claim with a per-task limit, or with `among` (the
/// claim on completion), inside the caller's transaction: the statements of
/// [`ClaimShape`] (through [`claim_statement`]), so every path that leases
/// a step obeys the same limits and filters and locks its rows the same way
/// (`FOR NO KEY UPDATE SKIP LOCKED`: a step locked by a concurrent claim is
/// left to it).
///
/// Each round locks a window of candidates larger than what it may take
/// (tasks at their limit are already filtered out in the scan). If the
/// window was full but per-task cuts left the batch short, another round
/// looks further: a later statement of the same transaction sees this
/// round's claims and counts their tasks as running. Among given steps the
/// window is all of them, so one round suffices. Returns the claimed rows
/// and how many steps a rate limit deferred. `starts: false` (only with
/// `among`) leaves the task-start branch out ([`ClaimShape::starts`]); the
/// caller vouches that every task of `among` is running and locked by its
/// transaction.
pub(crate) async fn claim_rounds(
    conn: &mut PgConnection,
    claim: &ClaimParams,
    among: Option<&[Uuid]>,
    starts: bool,
) -> Result<(Vec<sqlx::postgres::PgRow>, i64), TxError> {
    let shape = ClaimShape {
        among: among.is_some(),
        starts: starts || among.is_none(),
        ..ClaimShape::of(claim)
    };
    let mut rows = Vec::new();
    let mut deferred = 0;
    let mut wanted = i64::from(claim.limit);
    let rounds = if among.is_some() { 1 } else { CLAIM_ROUNDS };
    for _ in 0..rounds {
        let window = match among {
            Some(ids) => ids.len() as i64,
            None => wanted.saturating_mul(4).saturating_add(64),
        };
        let round = claim_statement(conn, shape, claim, wanted, window, among).await?;
        let got = round.rows.len() as i64;
        rows.extend(round.rows);
        deferred += round.deferred;
        wanted -= got;
        if wanted <= 0 || got == 0 || round.scanned < window {
            break;
        }
    }
    Ok((rows, deferred))
}

impl PgStore {
    pub(crate) async fn claim_once(
        &self,
        claim: &ClaimParams,
    ) -> Result<(Vec<ClaimedStep>, Emit), TxError> {
        if claim.per_task_limit == Some(0) {
            return Ok((Vec::new(), Emit::default()));
        }
        let (rows, deferred) = match claim.per_task_limit {
            // Each claim statement is a complete, atomic claim on its own,
            // so they run in autocommit: one round trip (two when the first
            // met steps that need the flow gate), no BEGIN/COMMIT.
            None => {
                let mut conn = self.inner.pool.acquire().await?;
                let limit = i64::from(claim.limit);
                let shape = ClaimShape::of(claim);
                let a = claim_statement(&mut conn, shape, claim, limit, 0, None).await?;
                (a.rows, a.deferred)
            }
            Some(_) => {
                // One transaction, so that a failure in a later round cannot
                // leave earlier claims orphaned.
                let mut tx = self.inner.pool.begin().await?;
                let res = claim_rounds(&mut tx, claim, None, true).await;
                tx::end(tx, res).await?
            }
        };
        // Steps a rate limit deferred while others were claimed: this
        // process's claimer, which got a short batch, would otherwise wait
        // for its poll interval; a local wake-up makes it look again (and,
        // finding nothing due, sleep until the earliest `ready_at`). No
        // NOTIFY: other processes keep their own timers.
        let mut emit = Emit {
            work: deferred > 0,
            ..Emit::default()
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let step = claimed_step(r)?;
            emit.changed(step.task_id);
            out.push(step);
        }
        Ok((out, emit))
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
        let res = async {
            let rows = sqlx::query(RESCUE_SQL)
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
            let mut emit = Emit::default();
            let mut deltas: BTreeMap<Uuid, Delta> = BTreeMap::new();
            let mut freed: Vec<Released> = Vec::new();
            for r in &rows {
                freed.extend(released(r, true)?);
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
            if !release(&mut tx, &freed, now).await?.is_empty() {
                emit.work = true;
            }
            settle(&mut tx, &deltas, now, &mut emit, self.origin()).await?;
            notify(&mut tx, &mut emit, self.origin()).await?;
            Ok((rows.len() as u64, emit))
        }
        .await;
        tx::end(tx, res).await
    }
}
