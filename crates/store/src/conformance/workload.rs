//! A long random workload for the schema's invariants (docs/STORAGE.md):
//! readiness, parents counters, leases, task counters, settled task states,
//! and transition chains that follow the state tables hold after every
//! operation. Each backend runs it from its `tests/invariants.rs` with an
//! [`Inspect`] that reads its database directly, so the invariants are
//! recomputed from the rows, not taken from the store's own answers.

use super::factory::{Shape, TaskBuilder, new_task};
use super::{at, failure, params, success};
use crate::{ClaimedStep, Store};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use tasker_core::{StepState, TaskState};

/// Direct reads of a backend's database, for the invariant checks.
#[async_trait]
pub trait Inspect: Send + Sync {
    /// Runs `sql`, a query returning one integer (all [`INVARIANTS`] are
    /// written in SQL both backends accept).
    async fn count(&self, sql: &str) -> i64;
    /// Every row of `entity` (`steps` / `tasks`) with its history
    /// (`step_transitions` / `task_transitions`, joined on `key`), ordered
    /// by entity id then transition id: (entity id as text, from_state,
    /// to_state, entity status). An entity without transitions is one row
    /// with no `to_state`.
    async fn transitions(
        &self,
        table: &str,
        entity: &str,
        key: &str,
    ) -> Vec<(String, Option<String>, Option<String>, String)>;
}

/// xorshift64*: deterministic, no dependency.
pub struct Rng(
    /// The state; any non-zero seed.
    pub u64,
);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// Every invariant, as queries that must return 0.
pub const INVARIANTS: &[(&str, &str)] = &[
    (
        "ready_at set exactly for pending steps with all parents done",
        "SELECT COUNT(*) FROM steps
         WHERE (ready_at IS NOT NULL) <> (status = 'pending' AND remaining_parents = 0)",
    ),
    (
        "remaining_parents counts the parents not done",
        "SELECT COUNT(*) FROM steps s WHERE s.remaining_parents <>
            (SELECT COUNT(*) FROM step_edges e JOIN steps p ON p.id = e.parent_id
             WHERE e.child_id = s.id AND p.status NOT IN ('complete', 'resolved_manually'))",
    ),
    (
        "a lease exactly while in progress",
        "SELECT COUNT(*) FROM steps WHERE
            (lease_token IS NOT NULL) <> (status = 'in_progress')
            OR (lease_owner IS NOT NULL) <> (status = 'in_progress')
            OR (lease_expires_at IS NOT NULL) <> (status = 'in_progress')",
    ),
    (
        "task counters match the steps",
        "SELECT COUNT(*) FROM tasks t WHERE
            t.steps_total <> (SELECT COUNT(*) FROM steps s WHERE s.task_id = t.id)
            OR t.steps_remaining <> (SELECT COUNT(*) FROM steps s WHERE s.task_id = t.id
                                     AND s.status NOT IN ('complete', 'resolved_manually'))
            OR t.steps_live <> (SELECT COUNT(*) FROM steps s WHERE s.task_id = t.id
                                AND (s.status = 'in_progress' OR s.ready_at IS NOT NULL))
            OR t.steps_blocked <> (SELECT COUNT(*) FROM steps s WHERE s.task_id = t.id
                                   AND s.status IN ('error', 'cancelled'))",
    ),
    (
        "running tasks are settled (not done, not stuck)",
        "SELECT COUNT(*) FROM tasks WHERE status IN ('pending', 'in_progress')
            AND (steps_remaining = 0 OR (steps_live = 0 AND steps_blocked > 0))",
    ),
    (
        "final states agree with the counters",
        "SELECT COUNT(*) FROM tasks WHERE
            (status IN ('complete', 'resolved_manually') AND steps_remaining <> 0)
            OR (status = 'error' AND (steps_live <> 0 OR steps_remaining = 0))
            OR ((status IN ('complete', 'error', 'cancelled', 'resolved_manually'))
                <> (completed_at IS NOT NULL))",
    ),
    (
        "no step of a cancelled task can run",
        "SELECT COUNT(*) FROM steps s JOIN tasks t ON t.id = s.task_id
         WHERE t.status = 'cancelled' AND s.status IN ('pending', 'in_progress')",
    ),
    (
        "the steps of an open task are paused exactly while it, its namespace or its template is",
        "SELECT COUNT(*) FROM steps s JOIN tasks t ON t.id = s.task_id
         WHERE t.status IN ('pending', 'in_progress', 'error')
           AND s.paused <> (t.paused_at IS NOT NULL OR EXISTS (
               SELECT 1 FROM flow_pauses f
               WHERE f.namespace = t.namespace AND f.name IN ('', t.name)))",
    ),
    (
        "a cancelled task is not paused",
        "SELECT COUNT(*) FROM tasks WHERE status = 'cancelled' AND paused_at IS NOT NULL",
    ),
    (
        "a task that ran a step has left pending",
        "SELECT COUNT(*) FROM tasks t WHERE t.status = 'pending' AND EXISTS
            (SELECT 1 FROM steps s WHERE s.task_id = t.id AND s.status = 'in_progress')",
    ),
];

/// Every invariant holds (each query returns 0).
pub async fn check_invariants(db: &dyn Inspect, step: usize, what: &str) {
    for (name, sql) in INVARIANTS {
        let bad = db.count(sql).await;
        assert_eq!(bad, 0, "after op {step} ({what}): {name}");
    }
}

/// The last transition of every row is its status, each transition starts
/// where the previous ended, and every move is allowed by the state tables.
/// A task's history starts with its creation (`→ pending`); a step's with
/// its first change, so a step with no transition is still `pending`.
pub async fn check_history(db: &dyn Inspect) {
    for (table, entity, key) in [
        ("step_transitions", "steps", "step_id"),
        ("task_transitions", "tasks", "task_id"),
    ] {
        let steps = table == "step_transitions";
        let rows = db.transitions(table, entity, key).await;
        let mut i = 0;
        while i < rows.len() {
            let id = &rows[i].0;
            let status = &rows[i].3;
            // Where the entity's history starts: a step is made pending; a
            // task's first row is its creation.
            let mut state = if steps {
                "pending".to_string()
            } else {
                let (_, from, to, _) = &rows[i];
                assert_eq!(
                    (from.as_deref(), to.as_deref()),
                    (None, Some("pending")),
                    "{table}: a task's first transition is its creation ({id})"
                );
                i += 1;
                "pending".to_string()
            };
            while i < rows.len() && rows[i].0 == *id {
                let (_, from, to, _) = &rows[i];
                i += 1;
                let Some(to) = to else { continue }; // no transition at all
                let from = from.as_deref().unwrap_or_else(|| {
                    panic!("{table}: only a task's creation has no from state ({id})")
                });
                assert_eq!(from, state, "{table}: chain broken ({id})");
                if steps {
                    let (f, t): (StepState, StepState) =
                        (from.parse().unwrap(), to.parse().unwrap());
                    f.check_transition(t).unwrap();
                } else {
                    let (f, t): (TaskState, TaskState) =
                        (from.parse().unwrap(), to.parse().unwrap());
                    // Same-state rows are flow-control actions (pause,
                    // resume), recorded without a state change.
                    if f != t {
                        f.check_transition(t).unwrap();
                    }
                }
                state = to.clone();
            }
            assert_eq!(
                &state, status,
                "{table}: the last transition is the status ({id})"
            );
        }
    }
}

/// A random task shape: chains, diamonds, several roots, wide joins, steps
/// with one attempt.
pub fn shape(rng: &mut Rng, now: DateTime<Utc>) -> crate::NewTask {
    match rng.below(5) {
        0 => new_task(Shape::Linear(1 + rng.below(4)), now),
        1 => new_task(Shape::Diamond, now),
        2 => new_task(Shape::Roots(1 + rng.below(3)), now),
        3 => TaskBuilder::new("test", "wide")
            .step("a", &[])
            .step("b", &[])
            .attempts(1, 2)
            .step("c", &["a", "b"])
            .step("d", &["a"])
            .step("e", &["c", "d"])
            .build(now),
        _ => TaskBuilder::new("test", "once")
            .step("x", &[])
            .attempts(1, 1)
            .step("y", &["x"])
            .attempts(2, 2)
            .build(now),
    }
}

/// Runs `ops` random operations (create, claim, finish with late results,
/// rescue, cancel, retry, step actions, renew) on `store`, checking every
/// invariant after each, then drains: everything that can still run
/// finishes, and no task is left open. Returns the number of tasks created.
pub async fn random_workload(store: &dyn Store, db: &dyn Inspect, ops: usize) -> usize {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut now = at(0);
    let mut tasks = Vec::new();
    let mut running: Vec<ClaimedStep> = Vec::new();
    let mut stale: Vec<ClaimedStep> = Vec::new();

    for op in 0..ops {
        now += Duration::seconds(rng.below(4) as i64);
        let what = match rng.below(23) {
            0..=3 => {
                let t = shape(&mut rng, now);
                tasks.push(t.id);
                store.task_create(t).await.unwrap();
                "create"
            }
            4..=7 => {
                let mut p = params("w", 1 + rng.below(6) as u32, now);
                p.lease_until = now + Duration::seconds(5 + rng.below(20) as i64);
                if rng.chance(20) {
                    p.per_task_limit = Some(1);
                }
                running.extend(store.step_claim(&p).await.unwrap());
                "claim"
            }
            8..=12 if !running.is_empty() => {
                let n = 1 + rng.below(running.len().min(6));
                let mut outcomes = Vec::new();
                for _ in 0..n {
                    let c = running.swap_remove(rng.below(running.len()));
                    outcomes.push(match rng.below(10) {
                        0..=5 => success(&c, json!({"op": op})),
                        6 => failure(&c, Some(now)),
                        7 => failure(&c, Some(now + Duration::seconds(3))),
                        _ => failure(&c, None),
                    });
                    stale.push(c);
                }
                if rng.chance(20) && !stale.is_empty() {
                    // A late result from a lease that was lost or already used.
                    let old = &stale[rng.below(stale.len())];
                    outcomes.push(success(old, json!("late")));
                }
                store.step_finish_many(&outcomes, now).await.unwrap();
                "finish"
            }
            13 => {
                let n = store
                    .step_rescue_expired(now, 1 + rng.below(5) as u32)
                    .await
                    .unwrap();
                if n > 0 {
                    // Their holders will report late.
                    stale.append(&mut running);
                }
                "rescue"
            }
            14 if !tasks.is_empty() => {
                let id = tasks[rng.below(tasks.len())];
                let _ = store.task_cancel(id, now, None).await;
                "task cancel"
            }
            15 if !tasks.is_empty() => {
                let id = tasks[rng.below(tasks.len())];
                let _ = store.task_retry(id, now, None).await;
                "task retry"
            }
            16..=18 if !tasks.is_empty() => {
                let id = tasks[rng.below(tasks.len())];
                let steps = store.step_list(id).await.unwrap();
                let s = &steps[rng.below(steps.len())];
                let _ = match rng.below(3) {
                    0 => store.step_resolve(s.id, json!("by hand"), now, None).await,
                    1 => store.step_cancel(s.id, now, None).await,
                    _ => store.step_retry(s.id, now, None).await,
                };
                "step action"
            }
            20 | 21 if !tasks.is_empty() => {
                // Pause or resume (refused when finished / not paused).
                let id = tasks[rng.below(tasks.len())];
                if store.task_resume(id, now, None).await.is_err() {
                    let _ = store.task_pause(id, now, None).await;
                }
                "pause or resume"
            }
            22 => {
                // The incident switch: a template or the whole namespace.
                let scope = crate::FlowScope {
                    namespace: "test".into(),
                    name: rng.chance(50).then(|| "wide".to_string()),
                };
                if store.flow_resume(&scope).await.is_err() {
                    store.flow_pause(&scope, now, None, None).await.unwrap();
                }
                "flow pause or resume"
            }
            _ => {
                let leases: Vec<_> = running.iter().map(super::lease).collect();
                let lost = store
                    .step_lease_renew(&leases, now + Duration::seconds(10), now)
                    .await
                    .unwrap();
                running.retain(|c| !lost.contains(&c.step_id));
                "renew"
            }
        };
        check_invariants(db, op, what).await;
    }
    check_history(db).await;

    // Drain: everything that can still run finishes, once resumed.
    for &id in &tasks {
        let _ = store.task_resume(id, now, None).await;
    }
    for p in store.flow_pauses().await.unwrap() {
        store.flow_resume(&p.scope).await.unwrap();
    }
    check_invariants(db, 9_999, "resume all").await;
    for round in 0..100 {
        now += Duration::seconds(10);
        store.step_rescue_expired(now, 1000).await.unwrap();
        let got = store.step_claim(&params("w", 1000, now)).await.unwrap();
        if got.is_empty() && round > 0 {
            break;
        }
        let outcomes: Vec<_> = got.iter().map(|c| success(c, json!(null))).collect();
        store.step_finish_many(&outcomes, now).await.unwrap();
        check_invariants(db, 10_000 + round, "drain").await;
    }
    let open = db
        .count("SELECT COUNT(*) FROM tasks WHERE status IN ('pending', 'in_progress')")
        .await;
    assert_eq!(open, 0, "every task settled once nothing can run");
    check_history(db).await;
    tasks.len()
}
