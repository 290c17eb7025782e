//! A claim whose rows cannot be decoded must not commit: the error is
//! returned and the steps stay claimable, instead of being leased to a worker
//! that never learnt it claimed them (and re-run only after lease expiry).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sqlx::SqlitePool;
use std::sync::Arc;
use tasker_store::conformance::factory::{Shape, new_task};
use tasker_store::conformance::{at, params};
use tasker_store::{Store, StoreError};
use tasker_store_sqlite::SqliteStore;

#[tokio::test]
async fn a_claim_that_cannot_be_decoded_leaves_the_steps_pending() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("claim.db");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::connect(path.to_str().unwrap()).await.unwrap());
    let db = SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let task = new_task(Shape::Roots(2), at(0));
    let (bad, good) = (task.steps[0].id, task.steps[1].id);
    store.task_create(task).await.unwrap();

    // A corrupt stored value (not JSON) in one of the two ready steps.
    sqlx::query("UPDATE steps SET inputs = '{not json' WHERE id = ?1")
        .bind(bad)
        .execute(&db)
        .await
        .unwrap();

    let err = store
        .step_claim(&params("w1", 10, at(1)))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Internal(_)), "{err:?}");

    // Nothing was claimed: both steps are still pending, no attempt used,
    // no lease, no transition written.
    // (Read raw: the store's own readers would refuse the corrupt row too.)
    for id in [bad, good] {
        let (status, attempts, owner): (String, i64, Option<String>) =
            sqlx::query_as("SELECT status, attempts, lease_owner FROM steps WHERE id = ?1")
                .bind(id)
                .fetch_one(&db)
                .await
                .unwrap();
        assert_eq!(
            (status.as_str(), attempts, owner),
            ("pending", 0, None),
            "{id}"
        );
        // It has no transition (a step's creation is none, and the claim
        // wrote none; they are rows of `events`: migration 20261205000000).
        let transitions: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM events WHERE step_id = ?1 AND to_state IS NOT NULL",
        )
        .bind(id)
        .fetch_one(&db)
        .await
        .unwrap();
        assert_eq!(transitions, 0, "{id}");
    }

    // Once the value is repaired, the claim takes both.
    sqlx::query("UPDATE steps SET inputs = '{}' WHERE id = ?1")
        .bind(bad)
        .execute(&db)
        .await
        .unwrap();
    let claimed = store.step_claim(&params("w1", 10, at(2))).await.unwrap();
    assert_eq!(claimed.len(), 2);
}
