//! Concurrency keys, rate limits and task slots (`max_running_tasks`) on
//! PostgreSQL (docs/FLOW_CONTROL.md): the rows a new task's gated steps
//! need, the claim's gate, and the release of a key's slots.
//!
//! The claim itself (`work.rs`, [`GATE_SQL`]) locks the key and bucket rows
//! of its candidates `FOR NO KEY UPDATE SKIP LOCKED`, decides from the
//! locked (latest) `flow_keys.running` and bucket tokens, raises `running`
//! and draws the tokens in the same statement. Every path that ends a
//! lease lowers `running` here, under the same row lock, and unparks the
//! oldest parked steps of the key in a second statement: after waiting for
//! a claimer that held the key, the fresh snapshot of that statement sees
//! every step that claimer parked, so none is left parked with room free.
//! Keys are locked in key order, after the step rows, before the tasks
//! (the order every writer uses), so releases cannot deadlock each other.

use crate::error::TxError;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use std::collections::BTreeMap;
use tasker_store::NewTask;
use uuid::Uuid;

/// The columns of `pre` that [`GATE_SQL`] reads besides `id` and
/// `ready_at`, as the claim statement names them (`work.rs`).
pub(crate) const GATE_COLS: &str = "ck, cl, rk, rps, rb, tid, sk";

/// The flow-control columns of a claim candidate `s`, named as
/// [`GATE_COLS`].
pub(crate) const FLOW_COLS: &str = "s.concurrency_key AS ck, s.concurrency_limit AS cl, s.rate_key AS rk, \
     s.rate_per_second AS rps, s.rate_burst AS rb, s.task_id AS tid, s.slot_key AS sk";

/// Candidate evaluation shared by every claim shape: `pre(id, ready_at,
/// GATE_COLS)` are the locked candidates in claim order; `pick(id,
/// ready_at)` are those the rule of `tasker_store::flow` takes. Parks and
/// defers the others, raises the keys' running counts and draws tokens. A
/// key found full has its whole ready backlog parked at once
/// (`steps_key_ready_idx`), so later claims do not meet it in their batch;
/// so has a template found at its `max_running_tasks` (the ready steps of
/// its other pending tasks, `tasks_slot_pending_idx`).
///
/// Task slots (`max_running_tasks`): the tasks of candidates with a slot
/// key are locked `SKIP LOCKED` (`tk`), so their status is the latest
/// committed one; a candidate whose task row another transaction holds is
/// neither taken nor parked (a later claim decides). The slot rows of the
/// pending ones are locked the same way (`gt`). The count itself is raised
/// when the claim starts the task, by the trigger on `tasks`
/// (migration `20261130400000_task_slots`).
///
/// A key or bucket row the housekeeping deleted (`flow_prune.rs`) is
/// recreated by `kfix` / `bfix` (a counter at 0, a full bucket); this claim
/// does not see the new row, so its candidates of that key wait for the
/// next claim, not parked.
///
/// A bucket's `refreshed_at` never moves back: a process whose clock sample
/// is a little behind refills nothing, and gives no time back either.
///
/// Without gated candidates this is four primary-key probes with an empty
/// array and a sort of the batch: the plan of the scan is unchanged.
pub(crate) const GATE_SQL: &str = "tk AS ( \
         SELECT t.id, t.status, t.slot_key, t.slot_limit FROM tasks t \
         WHERE t.id = ANY (ARRAY(SELECT DISTINCT tid FROM pre WHERE sk IS NOT NULL)) \
         ORDER BY t.id FOR NO KEY UPDATE SKIP LOCKED \
     ), gt AS ( \
         SELECT g.key, g.running FROM task_slots g \
         WHERE g.key = ANY (ARRAY(SELECT DISTINCT slot_key FROM tk \
                                  WHERE status = 'pending' AND slot_key IS NOT NULL)) \
         ORDER BY g.key FOR NO KEY UPDATE SKIP LOCKED \
     ), kfix AS ( \
         INSERT INTO flow_keys (key) \
         SELECT DISTINCT p.ck FROM pre p \
         WHERE p.ck IS NOT NULL AND NOT EXISTS (SELECT 1 FROM flow_keys k WHERE k.key = p.ck) \
         ON CONFLICT DO NOTHING \
     ), bfix AS ( \
         INSERT INTO rate_buckets (key, tokens, refreshed_at) \
         SELECT p.rk, max(p.rb), $1 FROM pre p \
         WHERE p.rk IS NOT NULL AND NOT EXISTS (SELECT 1 FROM rate_buckets b WHERE b.key = p.rk) \
         GROUP BY p.rk ON CONFLICT DO NOTHING \
     ), gk AS ( \
         SELECT k.key, k.running FROM flow_keys k \
         WHERE k.key = ANY (ARRAY(SELECT DISTINCT ck FROM pre WHERE ck IS NOT NULL)) \
         ORDER BY k.key FOR NO KEY UPDATE SKIP LOCKED \
     ), gb AS ( \
         SELECT b.key, b.tokens, b.refreshed_at FROM rate_buckets b \
         WHERE b.key = ANY (ARRAY(SELECT DISTINCT rk FROM pre WHERE rk IS NOT NULL)) \
         ORDER BY b.key FOR NO KEY UPDATE SKIP LOCKED \
     ), s0 AS ( \
         SELECT p.*, tk.slot_key AS tsk, tk.slot_limit AS tsl, gt.running AS trun, \
                (p.sk IS NOT NULL AND (tk.id IS NULL OR (tk.status = 'pending' AND tk.slot_key IS NOT NULL))) \
                    AS s_need, \
                (tk.id IS NOT NULL AND gt.key IS NOT NULL) AS s_known \
         FROM pre p LEFT JOIN tk ON tk.id = p.tid LEFT JOIN gt ON gt.key = tk.slot_key \
     ), s1 AS ( \
         SELECT s0.*, dense_rank() OVER (PARTITION BY s0.s_need, s0.tsk ORDER BY s0.tid) AS srank \
         FROM s0 \
     ), s2 AS ( \
         SELECT s1.*, \
                (NOT s1.s_need OR (s1.s_known AND s1.trun + s1.srank <= s1.tsl)) AS s_ok, \
                (s1.s_need AND s1.s_known AND s1.trun + s1.srank > s1.tsl) AS s_full \
         FROM s1 \
     ), c1 AS ( \
         SELECT p.id, p.ready_at, p.ck, p.cl, p.rk, p.rps, p.rb, p.tid, p.tsk, p.s_need, p.s_ok, p.s_full, \
                p.s_ok AND (p.ck IS NULL OR (gk.key IS NOT NULL AND gk.running + row_number() OVER ( \
                     PARTITION BY p.ck, p.s_ok ORDER BY p.ready_at, p.id) <= p.cl)) AS c_ok, \
                (p.s_ok AND p.ck IS NOT NULL AND gk.key IS NOT NULL AND gk.running + row_number() OVER ( \
                     PARTITION BY p.ck, p.s_ok ORDER BY p.ready_at, p.id) > p.cl) AS c_full \
         FROM s2 p LEFT JOIN gk ON gk.key = p.ck \
     ), c2 AS ( \
         SELECT c1.*, gb.key IS NOT NULL AS b_ok, \
                LEAST(c1.rb, gb.tokens + c1.rps * GREATEST(extract(epoch FROM ($1 - gb.refreshed_at)), 0)) \
                    AS avail, \
                row_number() OVER (PARTITION BY c1.rk, c1.c_ok ORDER BY c1.ready_at, c1.id) AS rrn \
         FROM c1 LEFT JOIN gb ON gb.key = c1.rk \
     ), ev AS ( \
         SELECT c2.*, \
                c2.c_ok AND (c2.rk IS NULL OR (c2.b_ok AND c2.rrn <= floor(c2.avail))) AS taken, \
                c2.c_ok AND c2.rk IS NOT NULL AND c2.b_ok AND c2.rrn > floor(c2.avail) AS r_wait \
         FROM c2 \
     ), pick AS ( \
         SELECT id, ready_at FROM ev WHERE taken \
     ), parked AS ( \
         UPDATE steps s SET parked = true, flow_wait = 'concurrency', updated_at = $1 \
         WHERE s.id = ANY (ARRAY(SELECT id FROM ev WHERE c_full)) \
            OR s.id = ANY (ARRAY( \
                SELECT x.id FROM steps x \
                WHERE x.concurrency_key = ANY (ARRAY(SELECT DISTINCT ck FROM ev WHERE c_full)) \
                  AND x.concurrency_key IS NOT NULL AND x.ready_at IS NOT NULL AND NOT x.parked \
                  AND NOT (x.id = ANY (ARRAY(SELECT id FROM ev WHERE NOT c_full))) \
                FOR NO KEY UPDATE SKIP LOCKED)) \
         RETURNING s.id \
     ), slot_parked AS ( \
         UPDATE steps s SET parked = true, flow_wait = 'task_slot', updated_at = $1 \
         WHERE s.id = ANY (ARRAY(SELECT id FROM ev WHERE s_full)) \
            OR s.id = ANY (ARRAY( \
                SELECT x.id FROM steps x \
                WHERE x.task_id = ANY (ARRAY( \
                        SELECT t.id FROM tasks t \
                        WHERE t.slot_key = ANY (ARRAY(SELECT DISTINCT tsk FROM ev WHERE s_full)) \
                          AND t.slot_key IS NOT NULL AND t.status = 'pending' \
                          AND NOT (t.id = ANY (ARRAY(SELECT tid FROM ev WHERE s_need AND NOT s_full))) \
                        FOR NO KEY UPDATE SKIP LOCKED)) \
                  /* a CASE, not the ready index's predicate: the waiting tasks' \
                     steps are found by task id, never by walking the ready index */ \
                  AND CASE WHEN x.parked OR x.paused THEN false ELSE x.ready_at IS NOT NULL END \
                  AND NOT (x.id = ANY (ARRAY(SELECT id FROM ev))) \
                FOR NO KEY UPDATE SKIP LOCKED)) \
         RETURNING s.id \
     ), deferred AS ( \
         UPDATE steps s SET ready_at = $1 + make_interval(secs => (e.rrn - e.avail) / e.rps), \
             flow_wait = 'rate_limit', updated_at = $1 \
         FROM ev e WHERE s.id = e.id AND e.r_wait AND s.id = ANY (ARRAY(SELECT id FROM ev WHERE r_wait)) \
         RETURNING s.id \
     ), kbump AS ( \
         UPDATE flow_keys k SET running = k.running + x.n \
         FROM (SELECT ck, count(*)::int AS n FROM ev WHERE taken AND ck IS NOT NULL GROUP BY ck) x \
         WHERE k.key = x.ck AND k.key = ANY (ARRAY(SELECT key FROM gk)) \
         RETURNING k.key \
     ), bdraw AS ( \
         UPDATE rate_buckets b SET tokens = x.avail - x.n, refreshed_at = GREATEST(b.refreshed_at, $1) \
         FROM (SELECT rk, min(avail) AS avail, count(*) FILTER (WHERE taken) AS n \
               FROM ev WHERE rk IS NOT NULL AND b_ok GROUP BY rk) x \
         WHERE b.key = x.rk AND b.key = ANY (ARRAY(SELECT key FROM gb)) \
         RETURNING b.key \
     )";

/// The claim without the gate: only candidates with no key, bucket or task
/// slot are taken (`pick`); nothing is parked or deferred. The statement
/// also counts the gated candidates it met ([`GATED_COUNT`]), and the
/// caller runs the gated statement ([`GATE_SQL`]) for the slots left only
/// when there were some. Why two statements: the gate costs about a
/// millisecond per claim even when nothing is gated (each of its
/// data-modifying CTEs opens `steps` or a counter table with all their
/// indexes, and planning a custom plan of the whole statement takes longer),
/// which doubled the server time of a chain stage's claim.
pub(crate) const UNGATED_SQL: &str = "pick AS ( \
         SELECT id, ready_at FROM pre WHERE ck IS NULL AND rk IS NULL AND sk IS NULL \
     ), deferred AS (SELECT NULL::uuid AS id WHERE false)";

/// How many locked candidates of an ungated claim need the gate.
pub(crate) const GATED_COUNT: &str =
    "(SELECT count(*) FROM pre WHERE ck IS NOT NULL OR rk IS NOT NULL OR sk IS NOT NULL)";

/// Sets the flow columns of a batch's gated steps and makes sure their key
/// and bucket rows exist (a new bucket starts full).
const CREATE_SQL: &str = "WITH f AS ( \
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int[], $4::text[], $5::float8[], $6::float8[]) \
             AS f(id, ck, cl, rk, rps, rb) \
     ), u AS ( \
         UPDATE steps s SET concurrency_key = f.ck, concurrency_limit = f.cl, rate_key = f.rk, \
             rate_per_second = f.rps, rate_burst = f.rb \
         FROM f WHERE s.id = f.id AND s.id = ANY($1::uuid[]) \
     ), k AS ( \
         INSERT INTO flow_keys (key) SELECT DISTINCT ck FROM f WHERE ck IS NOT NULL \
         ON CONFLICT DO NOTHING \
     ) \
     INSERT INTO rate_buckets (key, tokens, refreshed_at) \
     SELECT rk, max(rb), $7 FROM f WHERE rk IS NOT NULL GROUP BY rk \
     ON CONFLICT DO NOTHING";

/// Sets the slot key and limit of new tasks of limited templates (`$1`
/// ids, `$2` keys, `$3` limits) and their steps' slot key, and makes sure
/// the slot rows exist.
const SLOT_SQL: &str = "WITH t AS ( \
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int[]) AS t(id, key, lim) \
     ), u AS ( \
         UPDATE tasks x SET slot_key = t.key, slot_limit = t.lim \
         FROM t WHERE x.id = t.id AND x.id = ANY($1::uuid[]) \
     ), st AS ( \
         UPDATE steps s SET slot_key = t.key \
         FROM t WHERE s.task_id = t.id AND s.task_id = ANY($1::uuid[]) \
     ) \
     INSERT INTO task_slots (key) SELECT DISTINCT key FROM t ON CONFLICT DO NOTHING";

/// Stores the task slots of new tasks of templates with
/// `max_running_tasks`: nothing (no statement) when there is none.
async fn create_slots(conn: &mut PgConnection, tasks: &[NewTask]) -> Result<(), TxError> {
    let (mut ids, mut keys, mut limits) = (Vec::new(), Vec::new(), Vec::new());
    for t in tasks {
        if let Some(slot) = t.steps.iter().find_map(|s| s.flow.task_slot.as_ref()) {
            ids.push(t.id);
            keys.push(slot.key.clone());
            limits.push(slot.limit.max(1));
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(SLOT_SQL)
        .bind(&ids)
        .bind(&keys)
        .bind(&limits)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Stores the concurrency keys, rate limits and task slots of new steps:
/// nothing (no statement) when none has any.
pub(crate) async fn create_flow(conn: &mut PgConnection, tasks: &[NewTask]) -> Result<(), TxError> {
    create_slots(&mut *conn, tasks).await?;
    let (mut id, mut ck, mut cl, mut rk, mut rps, mut rb) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let mut now = None;
    for t in tasks {
        for s in t
            .steps
            .iter()
            .filter(|s| s.flow.concurrency.is_some() || s.flow.rate.is_some())
        {
            now.get_or_insert(t.now);
            id.push(s.id);
            ck.push(s.flow.concurrency.as_ref().map(|c| c.key.clone()));
            cl.push(s.flow.concurrency.as_ref().map(|c| c.limit));
            rk.push(s.flow.rate.as_ref().map(|r| r.key.clone()));
            rps.push(s.flow.rate.as_ref().map(|r| r.per_second));
            rb.push(s.flow.rate.as_ref().map(|r| r.burst));
        }
    }
    let Some(now) = now else {
        return Ok(());
    };
    sqlx::query(CREATE_SQL)
        .bind(&id)
        .bind(&ck)
        .bind(&cl)
        .bind(&rk)
        .bind(&rps)
        .bind(&rb)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Lowers the running count of keys, locked in key order. `$1` keys, `$2`
/// how many of their steps stopped running (0 for a step that left
/// `pending` without running: it only frees room for a parked one).
pub(crate) const RELEASE_SQL: &str = "WITH r AS ( \
         SELECT key, sum(n)::int AS n FROM UNNEST($1::text[], $2::int[]) AS r(key, n) GROUP BY key \
     ), lk AS ( \
         SELECT k.key FROM flow_keys k WHERE k.key = ANY($1::text[]) ORDER BY k.key FOR NO KEY UPDATE \
     ) \
     UPDATE flow_keys k SET running = GREATEST(k.running - r.n, 0) \
     FROM r WHERE k.key = r.key AND k.key = ANY (ARRAY(SELECT key FROM lk)) \
     RETURNING k.key, k.running";

/// Unparks, per key `$1`, the `$2` oldest parked steps.
pub(crate) const UNPARK_SQL: &str = "UPDATE steps s SET parked = false, flow_wait = NULL, updated_at = $3 \
     WHERE s.id = ANY (ARRAY( \
         SELECT p.id FROM UNNEST($1::text[], $2::int[]) AS f(key, room) \
         CROSS JOIN LATERAL ( \
             SELECT x.id FROM steps x \
             WHERE x.concurrency_key = f.key AND x.parked AND x.ready_at IS NOT NULL \
             ORDER BY x.ready_at, x.id LIMIT f.room \
             FOR NO KEY UPDATE SKIP LOCKED) p)) \
     RETURNING s.id";

/// A step of a key that no longer holds (or waits for) a slot.
#[derive(Debug, Clone)]
pub(crate) struct Released {
    /// Its key.
    pub key: String,
    /// Its limit.
    pub limit: i32,
    /// Whether it was running (its slot is given back).
    pub was_running: bool,
}

/// Gives back the slots of `released` and unparks as many parked steps of
/// each key as there is room for. Returns the steps that became claimable
/// (the caller may lease them on completion, and wakes claimers for the
/// rest). No statement when `released` is empty.
pub(crate) async fn release(
    conn: &mut PgConnection,
    released: &[Released],
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, TxError> {
    if released.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<&str> = released.iter().map(|r| r.key.as_str()).collect();
    let n: Vec<i32> = released.iter().map(|r| i32::from(r.was_running)).collect();
    let mut limit: BTreeMap<&str, i32> = BTreeMap::new();
    for r in released {
        let l = limit.entry(r.key.as_str()).or_insert(r.limit);
        *l = (*l).max(r.limit);
    }
    let rows = sqlx::query(RELEASE_SQL)
        .bind(&keys)
        .bind(&n)
        .fetch_all(&mut *conn)
        .await?;
    let (mut room_keys, mut room) = (Vec::new(), Vec::new());
    for r in &rows {
        let key: String = r.try_get("key")?;
        let running: i32 = r.try_get("running")?;
        let free = limit.get(key.as_str()).copied().unwrap_or(0) - running;
        if free > 0 {
            room_keys.push(key);
            room.push(free);
        }
    }
    if room_keys.is_empty() {
        return Ok(Vec::new());
    }
    let unparked: Vec<Uuid> = sqlx::query_scalar(UNPARK_SQL)
        .bind(&room_keys)
        .bind(&room)
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
    Ok(unparked)
}

/// Decodes the `ck`, `cl` and whether-running columns a write returned for
/// the steps it moved into a [`Released`], when the step has a key.
pub(crate) fn released(
    r: &sqlx::postgres::PgRow,
    was_running: bool,
) -> Result<Option<Released>, TxError> {
    let key: Option<String> = r.try_get("concurrency_key")?;
    let limit: Option<i32> = r.try_get("concurrency_limit")?;
    Ok(key.map(|key| Released {
        key,
        limit: limit.unwrap_or(1),
        was_running,
    }))
}
