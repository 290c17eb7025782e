//! Claim on completion ([`Store::step_finish_and_claim`]): the transaction
//! that finishes steps leases the children it made ready to the finishing
//! worker, under the same rule as a claim (limit, per-task limit, kinds,
//! namespaces), and a step leased so is never also claimed by another
//! worker; its lease expires and is rescued like any other.

use super::factory::{Shape, TaskBuilder, new_task};
use super::*;
use crate::NewTask;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use tasker_core::{StepState, TaskState};

/// Finishes `c` successfully, claiming on completion with `p`.
async fn succeed_and_claim(
    store: &Arc<dyn Store>,
    c: &ClaimedStep,
    p: &ClaimParams,
    now: DateTime<Utc>,
) -> FinishReport {
    let r = store
        .step_finish_and_claim(&[success(c, json!({"step": c.step_name}))], now, Some(p))
        .await
        .unwrap();
    assert_eq!(r.applied, 1, "{r:?}");
    r
}

/// Claims what is ready at `now` and returns the step of `task` among it
/// (the other claimed steps stay leased).
async fn claim_of(store: &Arc<dyn Store>, task: Uuid, now: DateTime<Utc>) -> ClaimedStep {
    claim(store, 100, now)
        .await
        .into_iter()
        .find(|c| c.task_id == task)
        .unwrap_or_else(|| panic!("no step of task {task} claimable at {now}"))
}

/// A root with `n` children `c0 … c(n-1)`.
fn fan(n: usize, now: DateTime<Utc>) -> NewTask {
    let mut b = TaskBuilder::new("test", "fan").step("root", &[]);
    for i in 0..n {
        b = b.step(&format!("c{i}"), &["root"]);
    }
    b.build(now)
}

/// The children made ready are leased to the finishing worker in the same
/// transaction: in progress under its lease, first attempt, transition
/// written, parents' results handed over; nothing is left for a claim, and
/// no wake-up is announced for work nobody else can take.
pub async fn completion_leases_ready_children(store: Arc<dyn Store>) {
    let t = new_task(Shape::Diamond, at(0));
    store.task_create(t.clone()).await.unwrap();
    let a = claim_one(&store, at(1)).await;
    let mut rx = store.subscribe();
    let r = succeed_and_claim(&store, &a, &params("w1", 10, at(2)), at(2)).await;
    assert_eq!(r.newly_ready, 2);
    let names: HashSet<_> = r.claimed.iter().map(|c| c.step_name.as_str()).collect();
    assert_eq!(names, HashSet::from(["b", "c"]));
    let events = drain(&mut rx);
    assert!(
        !events.contains(&StoreEvent::WorkAvailable),
        "every ready step was leased: no wake-up ({events:?})"
    );
    for c in &r.claimed {
        assert_eq!(c.attempt, 1);
        assert_eq!(c.task_id, t.id);
        assert_eq!(c.parent_results["a"], json!({"step": "a"}));
        let s = store.step_get(c.step_id).await.unwrap();
        assert_eq!(s.status, StepState::InProgress);
        assert_eq!(s.lease_owner.as_deref(), Some("w1"));
        assert_eq!(s.attempts, 1);
        assert_eq!(
            step_moves(&store, c.step_id).await,
            mv(&[(Some("pending"), "in_progress")])
        );
    }
    assert!(
        store
            .step_claim(&params("w2", 10, at(3)))
            .await
            .unwrap()
            .is_empty(),
        "a step leased on completion is not claimable"
    );
    // The leases are real: their outcomes are accepted and the task ends.
    let outcomes: Vec<_> = r.claimed.iter().map(|c| success(c, json!(1))).collect();
    let r2 = store
        .step_finish_and_claim(&outcomes, at(4), Some(&params("w1", 10, at(4))))
        .await
        .unwrap();
    assert_eq!(r2.applied, 2);
    assert_eq!(r2.claimed.len(), 1, "the join, leased on completion too");
    assert_eq!(r2.claimed[0].step_name, "d");
    let r3 = succeed(&store, &r2.claimed[0], at(5)).await;
    assert_eq!(r3.finished_tasks, vec![(t.id, TaskState::Complete)]);
    check_remaining(&store, t.id).await;
}

/// No more than the limit (the worker's free slots) is leased, oldest ready
/// first; the rest stay ready for every worker, and a wake-up says so.
pub async fn completion_respects_the_free_slots(store: Arc<dyn Store>) {
    let t = fan(5, at(0));
    store.task_create(t.clone()).await.unwrap();
    let root = claim_one(&store, at(1)).await;
    let mut rx = store.subscribe();
    let r = succeed_and_claim(&store, &root, &params("w1", 2, at(2)), at(2)).await;
    assert_eq!(r.newly_ready, 5);
    assert_eq!(r.claimed.len(), 2, "two free slots: {:?}", r.claimed);
    assert!(
        drain(&mut rx).contains(&StoreEvent::WorkAvailable),
        "three ready steps are left for others"
    );
    let others = store.step_claim(&params("w2", 10, at(3))).await.unwrap();
    assert_eq!(others.len(), 3);
    let mine: HashSet<_> = r.claimed.iter().map(|c| c.step_id).collect();
    assert!(others.iter().all(|c| !mine.contains(&c.step_id)));
    // Oldest ready first: the five became ready together, so the claim
    // took the two lowest ids, and lists them in that order.
    let mut all: Vec<Uuid> = r.claimed.iter().chain(&others).map(|c| c.step_id).collect();
    all.sort();
    let claimed: Vec<Uuid> = r.claimed.iter().map(|c| c.step_id).collect();
    assert_eq!(claimed, all[..2]);

    // No slot, no lease: a limit of 0 leases nothing.
    let t2 = new_task(Shape::Linear(2), at(10));
    store.task_create(t2.clone()).await.unwrap();
    let s0 = claim_one(&store, at(11)).await;
    let r = succeed_and_claim(&store, &s0, &params("w1", 0, at(12)), at(12)).await;
    assert!(r.claimed.is_empty());
    assert_eq!(claim_one(&store, at(13)).await.step_name, "s1");
}

/// The claim on completion obeys the claim's rule: the per-task limit
/// (counting the task's running steps), excluded and allowed kinds, and
/// namespaces.
pub async fn completion_obeys_the_claim_rule(store: Arc<dyn Store>) {
    // Per-task limit 2, one sibling of the root already running: the root's
    // completion may lease one more child only.
    let t = TaskBuilder::new("test", "fan")
        .step("root", &[])
        .step("side", &[])
        .step("c0", &["root"])
        .step("c1", &["root"])
        .step("c2", &["root"])
        .build(at(0));
    store.task_create(t.clone()).await.unwrap();
    let both = claim(&store, 2, at(1)).await;
    let root = both.iter().find(|c| c.step_name == "root").unwrap();
    let mut p = params("w1", 10, at(2));
    p.per_task_limit = Some(2);
    let r = succeed_and_claim(&store, root, &p, at(2)).await;
    assert_eq!(r.claimed.len(), 1, "side + 1 child = the limit of 2");
    let counts = store.task_step_counts(t.id, at(2)).await.unwrap();
    assert_eq!((counts.in_progress, counts.ready), (2, 2));

    // Kinds: an excluded kind is never leased, only allowed kinds are.
    let t = TaskBuilder::new("test", "kinds")
        .step("root", &[])
        .step("ext", &["root"])
        .kind("external")
        .step("local", &["root"])
        .step("other", &["root"])
        .kind("shell")
        .build(at(10));
    store.task_create(t.clone()).await.unwrap();
    let root = claim_of(&store, t.id, at(11)).await;
    let mut p = params("w1", 10, at(12));
    p.exclude_kinds = vec!["external".into()];
    p.kinds = Some(vec!["noop".into(), "external".into()]);
    let r = succeed_and_claim(&store, &root, &p, at(12)).await;
    let names: Vec<_> = r.claimed.iter().map(|c| c.step_name.as_str()).collect();
    assert_eq!(names, ["local"]);
    assert_eq!(r.newly_ready, 3);

    // Namespaces: a worker of another namespace leases nothing.
    let t = new_task(Shape::Linear(2), at(20));
    store.task_create(t.clone()).await.unwrap();
    let s0 = claim_of(&store, t.id, at(21)).await;
    let mut p = params("w1", 10, at(22));
    p.namespaces = Some(vec!["elsewhere".into()]);
    let r = succeed_and_claim(&store, &s0, &p, at(22)).await;
    assert!(r.claimed.is_empty());
    assert_eq!(claim_of(&store, t.id, at(23)).await.step_name, "s1");
}

/// A step leased on completion whose worker vanishes is rescued when its
/// lease expires, runs again under a new lease, and the old lease's outcome
/// is refused.
pub async fn completion_lease_expires_and_is_rescued(store: Arc<dyn Store>) {
    let t = new_task(Shape::Linear(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    let s0 = claim_one(&store, at(1)).await;
    let mut p = params("w1", 1, at(2));
    p.lease_until = at(10);
    let r = succeed_and_claim(&store, &s0, &p, at(2)).await;
    assert_eq!(r.claimed.len(), 1);
    let s1 = &r.claimed[0];
    assert_eq!(s1.lease_expires_at, at(10));
    assert_eq!(store.step_rescue_expired(at(9), 100).await.unwrap(), 0);
    assert_eq!(store.step_rescue_expired(at(11), 100).await.unwrap(), 1);
    let row = store.step_get(s1.step_id).await.unwrap();
    assert_eq!(row.status, StepState::Pending);
    assert_eq!(row.last_error.unwrap().kind, "lease_expired");

    let again = store.step_claim(&params("w2", 10, at(12))).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].step_id, s1.step_id);
    assert_eq!(again[0].attempt, 2);
    let late = store
        .step_finish_many(&[success(s1, json!("late"))], at(13))
        .await
        .unwrap();
    assert_eq!(late.lease_lost, vec![s1.step_id]);
    let r = succeed(&store, &again[0], at(14)).await;
    assert_eq!(r.finished_tasks, vec![(t.id, TaskState::Complete)]);
}

const TASKS: usize = 60;
const CHILDREN: usize = 6;
const WORKERS: usize = 4;

/// Four workers race: each claims, and finishes what it holds with a claim
/// on completion of at most 3 steps, while the others claim. Every step is
/// leased exactly once (first attempt), whether by a claim or on
/// completion, and every task completes once.
pub async fn completion_races_claimers_without_double_lease(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..TASKS).map(|_| fan(CHILDREN, at(0))).collect();
    store.task_create_many(tasks.clone()).await.unwrap();
    let total = TASKS * (CHILDREN + 1);
    // step -> (worker, path) of its one lease
    let leased: Arc<Mutex<HashMap<Uuid, (usize, &'static str)>>> =
        Arc::new(Mutex::new(HashMap::new()));
    let by_completion = Arc::new(Mutex::new(0usize));
    let mut handles = Vec::new();
    for w in 0..WORKERS {
        let (store, leased, by_completion) = (store.clone(), leased.clone(), by_completion.clone());
        handles.push(tokio::spawn(async move {
            let worker = format!("worker-{w}");
            let record = |steps: &[ClaimedStep], path: &'static str| {
                let mut map = leased.lock().unwrap();
                for c in steps {
                    assert_eq!(c.attempt, 1, "step {} leased twice", c.step_id);
                    if let Some(first) = map.insert(c.step_id, (w, path)) {
                        panic!(
                            "step {} leased by worker {w} ({path}) and before by {first:?}",
                            c.step_id
                        );
                    }
                }
            };
            let mut held: Vec<ClaimedStep> = Vec::new();
            loop {
                if held.is_empty() {
                    if leased.lock().unwrap().len() == total {
                        return;
                    }
                    held = store.step_claim(&params(&worker, 4, at(1))).await.unwrap();
                    record(&held, "claim");
                    if held.is_empty() {
                        tokio::task::yield_now().await;
                    }
                    continue;
                }
                let outcomes: Vec<_> = held.iter().map(|c| success(c, json!(w))).collect();
                let r = store
                    .step_finish_and_claim(&outcomes, at(1), Some(&params(&worker, 3, at(1))))
                    .await
                    .unwrap();
                assert_eq!(r.applied as usize, held.len(), "{r:?}");
                assert!(r.claimed.len() <= 3, "more than the free slots");
                record(&r.claimed, "completion");
                *by_completion.lock().unwrap() += r.claimed.len();
                held = r.claimed;
            }
        }));
    }
    let all = async {
        for h in handles {
            h.await.unwrap();
        }
    };
    if tokio::time::timeout(StdDuration::from_secs(120), all)
        .await
        .is_err()
    {
        panic!(
            "workers stalled after {} of {total} leases",
            leased.lock().unwrap().len()
        );
    }
    assert_eq!(leased.lock().unwrap().len(), total);
    assert!(
        *by_completion.lock().unwrap() > 0,
        "some steps were leased on completion"
    );
    assert_completed_once(&store, &tasks).await;
    assert!(claim(&store, 10, at(3)).await.is_empty());
}

/// A claim on completion that leases a step a released concurrency key
/// unparked, of a task that never started, starts that task: it is running
/// afterwards with its one `task.started`, and every task's events match
/// its transitions. (On PostgreSQL the claim on completion leaves out its
/// task-start branch only when every step it may lease is a child of a
/// running task; this is the case that must keep it.) The chain's own
/// claims on completion, of children of a running task, start nothing
/// twice.
pub async fn completion_starts_a_task_it_unparks(store: Arc<dyn Store>) {
    let keyed = |mut t: NewTask| {
        for s in &mut t.steps {
            s.flow = crate::flow::StepFlow {
                concurrency: Some(crate::flow::ConcurrencyKey {
                    key: "k".into(),
                    limit: 1,
                }),
                rate: None,
                task_slot: None,
            };
        }
        t
    };
    let first = keyed(new_task(Shape::Single, at(0)));
    let second = keyed(new_task(Shape::Single, at(1)));
    let chain = new_task(Shape::Linear(3), at(0));
    for t in [&first, &second, &chain] {
        store.task_create(t.clone()).await.unwrap();
    }
    let got = claim(&store, 10, at(2)).await;
    assert_eq!(got.len(), 2, "one keyed step and the chain's root: {got:?}");
    let (held, root) = if got[0].task_id == chain.id {
        (&got[1], &got[0])
    } else {
        (&got[0], &got[1])
    };
    let waiting = if held.task_id == first.id {
        second.id
    } else {
        first.id
    };
    assert_eq!(
        store.task_get(waiting).await.unwrap().status,
        TaskState::Pending
    );

    // The key's holder finishes with claim on completion: its slot goes to
    // the waiting task's step, leased here or by the next claim.
    let r = succeed_and_claim(&store, held, &params("w1", 10, at(3)), at(3)).await;
    if !r.claimed.iter().any(|c| c.task_id == waiting) {
        claim_of(&store, waiting, at(4)).await;
    }
    assert_eq!(
        store.task_get(waiting).await.unwrap().status,
        TaskState::InProgress
    );

    // The chain runs its stages through claims on completion.
    let mut c = root.clone();
    for (i, name) in ["s1", "s2"].iter().enumerate() {
        let now = at(5 + i as i64);
        let r = succeed_and_claim(&store, &c, &params("w2", 10, now), now).await;
        c = r
            .claimed
            .into_iter()
            .find(|x| x.task_id == chain.id)
            .unwrap_or_else(|| panic!("{name} leased on completion"));
        assert_eq!(&c.step_name, name);
    }
    succeed(&store, &c, at(8)).await;
    assert_eq!(
        store.task_get(chain.id).await.unwrap().status,
        TaskState::Complete
    );
    for t in [waiting, chain.id] {
        let started = super::events::task_events(&store, t)
            .await
            .into_iter()
            .filter(|e| e.event_type == "task.started")
            .count();
        assert_eq!(started, 1, "task {t}");
        super::events::assert_events_match_transitions(&store, t).await;
    }
}

/// One batch finishes the last step of one task and a step of another
/// whose child it leases on completion: the report names the task that
/// ended (and only it), and the other is running its leased child.
pub async fn completion_reports_the_tasks_a_mixed_batch_ended(store: Arc<dyn Store>) {
    let single = new_task(Shape::Single, at(0));
    let chain = new_task(Shape::Linear(2), at(0));
    store.task_create(single.clone()).await.unwrap();
    store.task_create(chain.clone()).await.unwrap();
    let claimed = claim(&store, 10, at(1)).await;
    assert_eq!(claimed.len(), 2);
    let of = |task: Uuid| claimed.iter().find(|c| c.task_id == task).unwrap();
    let r = store
        .step_finish_and_claim(
            &[
                success(of(single.id), json!({})),
                success(of(chain.id), json!({})),
            ],
            at(2),
            Some(&params("w", 2, at(2))),
        )
        .await
        .unwrap();
    assert_eq!(r.applied, 2);
    assert_eq!(r.claimed.len(), 1, "{:?}", r.claimed);
    assert_eq!(r.claimed[0].task_id, chain.id);
    assert_eq!(r.finished_tasks, vec![(single.id, TaskState::Complete)]);
    assert_eq!(
        store.task_get(chain.id).await.unwrap().status,
        TaskState::InProgress
    );
}

/// Children with a concurrency key are leased on completion through the
/// claim's admission: while the key has room, and never past its limit. A
/// child held back waits for the key, and the next claim after the key's
/// holder finishes leases it.
pub async fn completion_admits_keyed_children(store: Arc<dyn Store>) {
    let keyed_chain = |now| {
        let mut t = new_task(Shape::Linear(2), now);
        t.steps[1].flow = crate::flow::StepFlow {
            concurrency: Some(crate::flow::ConcurrencyKey {
                key: "ck".into(),
                limit: 1,
            }),
            rate: None,
            task_slot: None,
        };
        t
    };
    let (a, b) = (keyed_chain(at(0)), keyed_chain(at(0)));
    for t in [&a, &b] {
        store.task_create(t.clone()).await.unwrap();
    }
    let roots = claim(&store, 10, at(1)).await;
    assert_eq!(roots.len(), 2);
    let root = |task: Uuid| roots.iter().find(|c| c.task_id == task).unwrap();

    // The key has room: a's child takes it, on completion.
    let ra = succeed_and_claim(&store, root(a.id), &params("w1", 10, at(2)), at(2)).await;
    assert_eq!(ra.newly_ready, 1);
    let names: Vec<_> = ra
        .claimed
        .iter()
        .map(|c| (c.task_id, c.step_name.as_str()))
        .collect();
    assert_eq!(names, [(a.id, "s1")]);

    // The key is full: b's child is not leased, and no claim takes it.
    let rb = succeed_and_claim(&store, root(b.id), &params("w1", 10, at(3)), at(3)).await;
    assert!(rb.claimed.is_empty(), "{:?}", rb.claimed);
    assert!(
        claim(&store, 10, at(4)).await.is_empty(),
        "b's child waits for the key"
    );

    // a's child finishes: the key passes to b's child.
    succeed(&store, &ra.claimed[0], at(5)).await;
    let next = claim(&store, 10, at(6)).await;
    let names: Vec<_> = next
        .iter()
        .map(|c| (c.task_id, c.step_name.as_str()))
        .collect();
    assert_eq!(names, [(b.id, "s1")]);
}
