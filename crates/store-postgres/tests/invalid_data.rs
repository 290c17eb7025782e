//! A value PostgreSQL cannot store (a NUL character in text or in jsonb,
//! SQLSTATE 22021 / 22P05) is the caller's fault: `StoreError::InvalidData`,
//! never `Internal` (which the REST API answers with a 500).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use tasker_store::conformance::base;
use tasker_store::conformance::factory::{Shape, new_task};
use tasker_store::{Store, StoreError, TaskUpdate};
use tasker_store_postgres::testing::TestDb;

#[tokio::test]
async fn nul_characters_are_invalid_data() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let mut text = new_task(Shape::Single, base());
    text.reason = "a\u{0}b".into();
    let mut jsonb = new_task(Shape::Single, base());
    jsonb.context = json!({"note": "a\u{0}b"});
    for (what, task) in [("text (22021)", text), ("jsonb (22P05)", jsonb)] {
        match store.task_create(task).await {
            Err(StoreError::InvalidData(m)) => assert!(m.contains("[22"), "{what}: {m}"),
            other => panic!("{what}: expected InvalidData, got {other:?}"),
        }
    }
    // An update too; the task itself is untouched.
    let task = store
        .task_create(new_task(Shape::Single, base()))
        .await
        .unwrap();
    let err = store
        .task_update(
            task.id,
            TaskUpdate {
                reason: Some("\u{0}".into()),
                tags: None,
            },
            base(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidData(_)), "{err:?}");
    assert_eq!(store.task_get(task.id).await.unwrap().reason, task.reason);
}
