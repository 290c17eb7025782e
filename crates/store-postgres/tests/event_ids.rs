//! Event ids on PostgreSQL follow commits, not writes: an event written by
//! a transaction that commits late gets an id above every id a reader has
//! already seen, so a consumer resuming with `after` never skips one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use sqlx::Connection;
use tasker_store::conformance::at;
use tasker_store::conformance::factory::{Shape, new_task};
use tasker_store::{EventQuery, Store};

#[tokio::test]
async fn a_late_commit_gets_a_later_id() {
    let (store, db) = common::fresh_store().await;
    let early = new_task(Shape::Single, at(0));
    store.task_create(early.clone()).await.unwrap();

    // A slow writer: its transition (and so its event, by the trigger) is
    // written first but committed last.
    let mut slow = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut tx = slow.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO task_transitions (task_id, from_state, to_state, created_at, metadata) \
         VALUES ($1, 'pending', 'cancelled', now(), '{}')",
    )
    .bind(early.id)
    .execute(&mut *tx)
    .await
    .unwrap();

    // A fast writer commits meanwhile; a reader sees its events.
    let fast = new_task(Shape::Single, at(1));
    store.task_create(fast.clone()).await.unwrap();
    let q = EventQuery {
        limit: 100,
        ..Default::default()
    };
    let seen = store.events_list(&q).await.unwrap();
    let types: Vec<&str> = seen.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["task.created", "task.created"]);
    assert_eq!(seen[1].task_id, fast.id);
    let cursor = seen[1].id;

    // The slow writer commits: its event comes after the cursor.
    tx.commit().await.unwrap();
    let next = store
        .events_list(&EventQuery {
            after: cursor,
            ..q.clone()
        })
        .await
        .unwrap();
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0].event_type, "task.cancelled");
    assert_eq!(next[0].task_id, early.id);
    assert!(next[0].id > cursor);
    // And the whole feed is still dense and ascending.
    let all = store.events_list(&q).await.unwrap();
    let ids: Vec<i64> = all.iter().map(|e| e.id).collect();
    assert_eq!(ids, [1, 2, 3]);
    // A rolled-back writer leaves nothing, not even a hole.
    let mut tx = slow.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO task_transitions (task_id, from_state, to_state, created_at, metadata) \
         VALUES ($1, 'pending', 'cancelled', now(), '{}')",
    )
    .bind(fast.id)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    let c = store.step_list(fast.id).await.unwrap()[0].id;
    store.step_cancel(c, at(2), None).await.unwrap();
    let all = store.events_list(&q).await.unwrap();
    let ids: Vec<i64> = all.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 5, "{all:?}"); // + step.cancelled, task.cancelled
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    assert_eq!(store.events_last_id().await.unwrap(), 5);
}
