//! Concurrency keys and rate limits, enforced by the claim
//! (docs/FLOW_CONTROL.md, `crate::flow`).

use super::factory::{Shape, new_task};
use super::*;
use crate::NewTask;
use crate::flow::{ConcurrencyKey, FlowWait, RateBucket, StepFlow};
use std::collections::HashSet;
use tasker_core::StepState;

fn keyed(key: &str, limit: i32) -> StepFlow {
    StepFlow {
        concurrency: Some(ConcurrencyKey {
            key: key.into(),
            limit,
        }),
        rate: None,
        task_slot: None,
    }
}

fn bucketed(key: &str, per_second: f64, burst: f64) -> StepFlow {
    StepFlow {
        concurrency: None,
        rate: Some(RateBucket {
            key: key.into(),
            per_second,
            burst,
        }),
        task_slot: None,
    }
}

/// A task of `n` independent roots, each with `flow`.
fn roots_with(n: usize, flow: &StepFlow, now: DateTime<Utc>) -> NewTask {
    let mut t = new_task(Shape::Roots(n), now);
    for s in &mut t.steps {
        s.flow = flow.clone();
    }
    t
}

/// How many steps of `ids` are running.
async fn running(store: &Arc<dyn Store>, tasks: &[Uuid]) -> usize {
    let mut n = 0;
    for t in tasks {
        n += store
            .step_list(*t)
            .await
            .unwrap()
            .iter()
            .filter(|s| s.status == StepState::InProgress)
            .count();
    }
    n
}

/// No more than `limit` steps of a key run at once. The candidates beyond
/// the limit are parked (out of the ready frontier: a later claim takes
/// other work only, the wake-up time and the queue depth ignore them, and
/// reads say why they wait) and come back one by one as steps of the key
/// stop running (success, failure, cancel). Other keys and steps without a
/// key are never held back. A parked step spends no attempt.
pub async fn concurrency_key_caps_running_steps(store: Arc<dyn Store>) {
    let k = roots_with(5, &keyed("customer:1", 2), at(0));
    let other = roots_with(1, &keyed("customer:2", 1), at(0));
    let plain = new_task(Shape::Single, at(0));
    for t in [&k, &other, &plain] {
        store.task_create(t.clone()).await.unwrap();
    }
    let first = claim(&store, 10, at(1)).await;
    let names: HashSet<(Uuid, String)> = first
        .iter()
        .map(|c| (c.task_id, c.step_name.clone()))
        .collect();
    assert_eq!(first.len(), 4, "{names:?}");
    assert_eq!(first.iter().filter(|c| c.task_id == k.id).count(), 2);
    assert!(names.contains(&(other.id, "r0".into())));
    assert!(names.contains(&(plain.id, "a".into())));

    let parked: Vec<StepRow> = store
        .step_list(k.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.status == StepState::Pending)
        .collect();
    assert_eq!(parked.len(), 3);
    for s in &parked {
        assert_eq!(
            s.waiting_for,
            Some(FlowWait::ConcurrencyKey {
                key: "customer:1".into()
            }),
            "{s:?}"
        );
        assert_eq!(
            s.waiting_for.as_ref().unwrap().to_string(),
            "waiting for concurrency key customer:1"
        );
        assert_eq!((s.attempts, s.ready_at), (0, Some(at(0))), "kept, unspent");
        assert_eq!(s.concurrency_key.as_deref(), Some("customer:1"));
    }
    assert!(claim(&store, 10, at(2)).await.is_empty(), "the key is full");
    assert_eq!(store.step_next_ready_at().await.unwrap(), None);
    assert_eq!(store.queue_depth(at(2), 100).await.unwrap().ready, 0);

    // A success frees one slot: exactly one parked step comes back.
    let ks: Vec<&ClaimedStep> = first.iter().filter(|c| c.task_id == k.id).collect();
    succeed(&store, ks[0], at(3)).await;
    assert_eq!(store.step_next_ready_at().await.unwrap(), Some(at(0)));
    let next = claim(&store, 10, at(4)).await;
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0].task_id, k.id);
    assert_eq!(
        step(&store, k.id, &next[0].step_name).await.waiting_for,
        None
    );
    assert_eq!(running(&store, &[k.id]).await, 2);
    assert!(claim(&store, 10, at(5)).await.is_empty());

    // A failure without retry frees one too; so does a cancel.
    fail(&store, ks[1], None, at(6)).await;
    let third = claim_one(&store, at(7)).await;
    assert_eq!(third.task_id, k.id);
    store
        .step_cancel(next[0].step_id, at(8), None)
        .await
        .unwrap();
    let fourth = claim_one(&store, at(9)).await;
    assert_eq!(fourth.task_id, k.id);
    assert_eq!(running(&store, &[k.id]).await, 2);
    assert!(
        claim(&store, 10, at(10)).await.is_empty(),
        "none left parked"
    );

    // Transitions: no parked step ever failed or spent an attempt.
    for s in store.step_list(k.id).await.unwrap() {
        assert!(s.attempts <= 1, "{s:?}");
    }
}

/// A lease that expires (its worker died) gives the slot back too, and
/// cancelling a task whose steps hold a key's slots lets another task's
/// parked steps of that key run.
pub async fn rescue_and_task_cancel_release_the_key(store: Arc<dyn Store>) {
    let a = roots_with(2, &keyed("tenant", 2), at(0));
    let b = roots_with(3, &keyed("tenant", 2), at(1));
    store.task_create(a.clone()).await.unwrap();
    store.task_create(b.clone()).await.unwrap();
    let got = claim(&store, 10, at(2)).await;
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|c| c.task_id == a.id), "oldest first");

    // Leases run to at(32); the rescue at at(40) frees both slots: b's two
    // oldest parked steps (ready since at(1)) run before a's retries.
    assert_eq!(store.step_rescue_expired(at(40), 10).await.unwrap(), 2);
    let again = claim(&store, 10, at(41)).await;
    assert_eq!(again.len(), 2, "{again:?}");
    assert!(again.iter().all(|c| c.task_id == b.id), "{again:?}");
    assert!(claim(&store, 10, at(42)).await.is_empty());

    // Cancelling b frees its slots: a's parked steps run.
    store.task_cancel(b.id, at(43), None).await.unwrap();
    let after = claim(&store, 10, at(44)).await;
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(after.iter().all(|c| c.task_id == a.id), "{after:?}");
    assert_eq!(running(&store, &[a.id, b.id]).await, 2);
}

/// A step with a rate limit takes a token of its bucket; a bucket starts
/// full (`burst`) and refills at `per_second`. Steps that find it empty
/// are not failed and spend no attempt: their `ready_at` moves to when
/// their token will be there, in order, and reads say why they wait.
pub async fn rate_limit_defers_without_spending_attempts(store: Arc<dyn Store>) {
    let t = roots_with(5, &bucketed("payments_api", 2.0, 2.0), at(0));
    let plain = new_task(Shape::Single, at(0));
    store.task_create(t.clone()).await.unwrap();
    store.task_create(plain.clone()).await.unwrap();
    let first = claim(&store, 10, at(1)).await;
    assert_eq!(first.len(), 3, "burst 2 + the unlimited step: {first:?}");
    assert_eq!(first.iter().filter(|c| c.task_id == t.id).count(), 2);

    let ms = |n: i64| at(1) + Duration::milliseconds(n);
    let mut waiting: Vec<StepRow> = store
        .step_list(t.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.status == StepState::Pending)
        .collect();
    waiting.sort_by_key(|s| s.ready_at);
    let times: Vec<_> = waiting.iter().map(|s| s.ready_at).collect();
    assert_eq!(times, vec![Some(ms(500)), Some(ms(1000)), Some(ms(1500))]);
    for s in &waiting {
        assert_eq!(s.attempts, 0);
        assert_eq!(
            s.waiting_for.as_ref().map(ToString::to_string).as_deref(),
            Some("waiting for rate limit payments_api")
        );
        assert_eq!(s.rate_limit.as_deref(), Some("payments_api"));
    }
    assert!(claim(&store, 10, at(1)).await.is_empty());
    assert_eq!(store.step_next_ready_at().await.unwrap(), Some(ms(500)));

    // One second later: two tokens back, two steps due.
    let second = claim(&store, 10, at(2)).await;
    assert_eq!(second.len(), 2, "{second:?}");
    assert!(second.iter().all(|c| c.attempt == 1));
    assert!(claim(&store, 10, at(2)).await.is_empty());
    let last = claim(&store, 10, at(3)).await;
    assert_eq!(last.len(), 1);
    assert_eq!(
        step(&store, t.id, &last[0].step_name).await.waiting_for,
        None
    );
}

/// Per-key buckets are independent; a step with both a key and a bucket
/// obeys both, and one held back by its key takes no token.
pub async fn keys_and_buckets_combine(store: Arc<dyn Store>) {
    let both = StepFlow {
        concurrency: Some(ConcurrencyKey {
            key: "k".into(),
            limit: 1,
        }),
        rate: Some(RateBucket {
            key: "api:eu".into(),
            per_second: 1.0,
            burst: 5.0,
        }),
        task_slot: None,
    };
    let t = roots_with(3, &both, at(0));
    let us = roots_with(2, &bucketed("api:us", 1.0, 1.0), at(0));
    store.task_create(t.clone()).await.unwrap();
    store.task_create(us.clone()).await.unwrap();
    let got = claim(&store, 10, at(1)).await;
    assert_eq!(got.iter().filter(|c| c.task_id == t.id).count(), 1);
    assert_eq!(got.iter().filter(|c| c.task_id == us.id).count(), 1);
    let k_done = got.iter().find(|c| c.task_id == t.id).unwrap();
    succeed(&store, k_done, at(1)).await;
    // The eu bucket has 4 tokens left: the key, not the bucket, holds back.
    let next = claim(&store, 10, at(1)).await;
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0].task_id, t.id);
}
