//! Leases: renewal and the rescue of expired ones.

use super::factory::{Shape, TaskBuilder, new_task};
use super::*;
use crate::StoreEvent;
use serde_json::json;
use tasker_core::{StepState, TaskState};

fn leased(worker: &str, limit: u32, now: DateTime<Utc>, until: DateTime<Utc>) -> ClaimParams {
    let mut p = params(worker, limit, now);
    p.lease_until = until;
    p
}

/// Renewal moves the expiry of held leases; a renewed lease is not rescued.
pub async fn renew_extends_held_leases(store: Arc<dyn Store>) {
    store
        .task_create(new_task(Shape::Roots(2), at(0)))
        .await
        .unwrap();
    let got = store
        .step_claim(&leased("w", 10, at(1), at(31)))
        .await
        .unwrap();
    let leases: Vec<_> = got.iter().map(lease).collect();
    let lost = store
        .step_lease_renew(&leases, at(100), at(20))
        .await
        .unwrap();
    assert!(lost.is_empty(), "{lost:?}");
    for c in &got {
        let s = store.step_get(c.step_id).await.unwrap();
        assert_eq!(s.lease_expires_at, Some(at(100)));
        assert_eq!(s.status, StepState::InProgress);
    }
    assert_eq!(store.step_rescue_expired(at(50), 100).await.unwrap(), 0);
    // The leases still finish normally.
    for c in &got {
        succeed(&store, c, at(60)).await;
    }
    assert!(
        store
            .step_lease_renew(&[], at(200), at(60))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Renewal reports every lease that is no longer held: wrong token,
/// finished, rescued, unknown step. The held one is still extended.
pub async fn renew_reports_lost_leases(store: Arc<dyn Store>) {
    store
        .task_create(new_task(Shape::Roots(4), at(0)))
        .await
        .unwrap();
    let got = store
        .step_claim(&leased("w", 10, at(1), at(10)))
        .await
        .unwrap();
    assert_eq!(got.len(), 4);
    let (held, wrong, finished, rescued) = (&got[0], &got[1], &got[2], &got[3]);
    succeed(&store, finished, at(2)).await;
    store
        .step_lease_renew(&[lease(held), lease(wrong)], at(100), at(3))
        .await
        .unwrap();
    // Only `rescued` is left expired at 50.
    assert_eq!(store.step_rescue_expired(at(50), 100).await.unwrap(), 1);
    assert_eq!(
        store.step_get(rescued.step_id).await.unwrap().status,
        StepState::Pending
    );

    let unknown = LeaseRef {
        step_id: Uuid::now_v7(),
        token: Uuid::new_v4(),
    };
    let bad = LeaseRef {
        step_id: wrong.step_id,
        token: Uuid::new_v4(),
    };
    let mut lost = store
        .step_lease_renew(
            &[lease(held), bad, lease(finished), lease(rescued), unknown],
            at(200),
            at(51),
        )
        .await
        .unwrap();
    lost.sort();
    let mut expected = vec![
        wrong.step_id,
        finished.step_id,
        rescued.step_id,
        unknown.step_id,
    ];
    expected.sort();
    assert_eq!(lost, expected);
    assert_eq!(
        store.step_get(held.step_id).await.unwrap().lease_expires_at,
        Some(at(200))
    );
    assert_eq!(
        store
            .step_get(wrong.step_id)
            .await
            .unwrap()
            .lease_expires_at,
        Some(at(100)),
        "a wrong token extends nothing"
    );
}

/// An expired lease with attempts left goes back to pending, ready now,
/// through `error` with kind `lease_expired`, and work is announced.
pub async fn rescue_with_attempts_left_goes_pending(store: Arc<dyn Store>) {
    let t = new_task(Shape::Linear(2), at(0));
    store.task_create(t.clone()).await.unwrap();
    let c = store
        .step_claim(&leased("w", 1, at(1), at(10)))
        .await
        .unwrap()
        .remove(0);
    let mut rx = store.subscribe();
    assert_eq!(store.step_rescue_expired(at(11), 100).await.unwrap(), 1);
    assert!(saw(&mut rx, |e| *e == StoreEvent::WorkAvailable).await);

    let s = store.step_get(c.step_id).await.unwrap();
    assert_eq!(s.status, StepState::Pending);
    assert_eq!(s.ready_at, Some(at(11)));
    assert_eq!(s.attempts, 1);
    assert_eq!(s.lease_owner, None);
    assert_eq!(s.lease_expires_at, None);
    let e = s.last_error.expect("rescue records an error");
    assert_eq!(e.kind, "lease_expired");
    assert_eq!(e.attempt, 1);
    let tr = store.step_transitions(c.step_id).await.unwrap();
    assert_eq!(
        moves(&tr),
        [
            (Some("pending"), "in_progress"),
            (Some("in_progress"), "error"),
            (Some("error"), "pending")
        ]
    );
    assert_eq!(tr[1].metadata["kind"], json!("lease_expired"));
    assert_eq!(
        store.task_get(t.id).await.unwrap().status,
        TaskState::InProgress
    );
    let counts = store.task_step_counts(t.id, at(11)).await.unwrap();
    assert_eq!(
        (counts.ready, counts.retrying, counts.in_progress),
        (1, 1, 0)
    );

    let again = claim_one(&store, at(11)).await;
    assert_eq!(again.attempt, 2);
}

/// An expired lease on the last attempt puts the step in `error` and, with
/// nothing else live, the task too.
pub async fn rescue_without_attempts_errors_task(store: Arc<dyn Store>) {
    let t = TaskBuilder::new("test", "once")
        .step("only", &[])
        .attempts(1, 1)
        .build(at(0));
    store.task_create(t.clone()).await.unwrap();
    let c = store
        .step_claim(&leased("w", 1, at(1), at(10)))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(c.max_attempts, 1);
    let mut rx = store.subscribe();
    assert_eq!(store.step_rescue_expired(at(11), 100).await.unwrap(), 1);
    let s = store.step_get(c.step_id).await.unwrap();
    assert_eq!(s.status, StepState::Error);
    assert_eq!(s.ready_at, None);
    assert_eq!(s.lease_owner, None);
    assert_eq!(s.last_error.unwrap().kind, "lease_expired");
    let task = check_remaining(&store, t.id).await;
    assert_eq!(task.status, TaskState::Error);
    assert_eq!(task.completed_at, Some(at(11)));
    assert!(saw(&mut rx, |e| *e == StoreEvent::TaskFinished(t.id)).await);
    assert!(claim(&store, 10, at(12)).await.is_empty());
}

/// Leases expiring at or after `now` are left alone.
pub async fn rescue_ignores_unexpired_leases(store: Arc<dyn Store>) {
    store
        .task_create(new_task(Shape::Roots(2), at(0)))
        .await
        .unwrap();
    let got = store
        .step_claim(&leased("w", 10, at(1), at(10)))
        .await
        .unwrap();
    assert_eq!(store.step_rescue_expired(at(5), 100).await.unwrap(), 0);
    assert_eq!(
        store.step_rescue_expired(at(10), 100).await.unwrap(),
        0,
        "expiry == now is not expired"
    );
    for c in &got {
        assert_eq!(
            store.step_get(c.step_id).await.unwrap().status,
            StepState::InProgress
        );
    }
    assert_eq!(
        store
            .step_rescue_expired(at(10) + Duration::microseconds(1), 100)
            .await
            .unwrap(),
        2
    );
}

/// At most `limit` steps are rescued per call.
pub async fn rescue_respects_limit(store: Arc<dyn Store>) {
    store
        .task_create(new_task(Shape::Roots(3), at(0)))
        .await
        .unwrap();
    store
        .step_claim(&leased("w", 10, at(1), at(10)))
        .await
        .unwrap();
    assert_eq!(store.step_rescue_expired(at(20), 0).await.unwrap(), 0);
    assert_eq!(store.step_rescue_expired(at(20), 2).await.unwrap(), 2);
    assert_eq!(store.step_rescue_expired(at(20), 2).await.unwrap(), 1);
    assert_eq!(store.step_rescue_expired(at(20), 2).await.unwrap(), 0);
    assert_eq!(claim(&store, 10, at(20)).await.len(), 3);
}
