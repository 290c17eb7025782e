//! The shared conformance suite on fresh temporary database files, plus the
//! SQLite-specific checks (file handling, URLs, migrations, options).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use tasker_store::Store;
use tasker_store_sqlite::{SqliteOptions, SqliteStore};
use tempfile::TempDir;

/// A migrated store on a new file in a new temporary directory; the
/// directory lives as long as the returned pair.
async fn fresh_store() -> (Arc<SqliteStore>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasker.db");
    let store = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
    (Arc::new(store), dir)
}

tasker_store::conformance_tests!(fresh_store().await);

mod sqlite {
    use super::*;
    use tasker_store::conformance::factory::{Shape, new_task};
    use tasker_store::conformance::{at, claim_one, succeed};

    /// Every accepted spelling opens (and creates) the database.
    #[tokio::test]
    async fn connect_accepts_urls_paths_and_memory() {
        let dir = tempfile::tempdir().unwrap();
        for (i, url) in ["sqlite://{}", "sqlite:{}", "{}"].iter().enumerate() {
            let path = dir.path().join(format!("db{i}.sqlite"));
            let url = url.replace("{}", path.to_str().unwrap());
            let store = SqliteStore::connect(&url).await.unwrap();
            assert!(store.migrations_applied().await.unwrap(), "{url}");
            assert!(path.exists(), "{url} created the file");
            store.close().await;
        }
        let mem = SqliteStore::connect("sqlite::memory:").await.unwrap();
        let t = new_task(Shape::Linear(2), at(0));
        mem.task_create(t.clone()).await.unwrap();
        let c = claim_one(&(Arc::new(mem.clone()) as Arc<dyn Store>), at(1)).await;
        assert_eq!(c.task_id, t.id);
        assert_eq!(mem.step_list(t.id).await.unwrap().len(), 2);
    }

    /// Data survives closing and reopening the file; migrations are not
    /// re-applied.
    #[tokio::test]
    async fn reopening_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keep.db");
        let url = format!("sqlite://{}", path.display());
        let t = new_task(Shape::Linear(2), at(0));
        {
            let store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&url).await.unwrap());
            store.task_create(t.clone()).await.unwrap();
            let c = claim_one(&store, at(1)).await;
            succeed(&store, &c, at(2)).await;
        }
        let store = SqliteStore::connect(&url).await.unwrap();
        assert!(store.migrations_applied().await.unwrap());
        let steps = store.step_list(t.id).await.unwrap();
        assert_eq!(steps[0].status, tasker_core::StepState::Complete);
        assert_eq!(steps[1].ready_at, Some(at(2)));
    }

    /// The file is in WAL mode with foreign keys on, and a non-default
    /// configuration connects.
    #[tokio::test]
    async fn options_apply() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opts.db");
        let opts = SqliteOptions {
            synchronous_full: true,
            max_connections: 2,
            busy_timeout: std::time::Duration::from_millis(200),
        };
        let store = SqliteStore::connect_with(path.to_str().unwrap(), opts)
            .await
            .unwrap();
        store.ping().await.unwrap();
        assert_eq!(store.backend(), tasker_store::Backend::Sqlite);
        assert!(dir.path().join("opts.db-wal").exists(), "WAL mode");
    }

    /// Two stores on one file (as two processes would have: each its own
    /// writer connection) share the work without double claims: the write
    /// lock, taken by `BEGIN IMMEDIATE` and waited for up to the busy
    /// timeout, serialises them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_stores_on_one_file_share_the_work() {
        use std::collections::HashSet;
        use std::sync::Mutex;
        use tasker_store::conformance::{params, success};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.db");
        let a: Arc<dyn Store> =
            Arc::new(SqliteStore::connect(path.to_str().unwrap()).await.unwrap());
        let b: Arc<dyn Store> =
            Arc::new(SqliteStore::connect(path.to_str().unwrap()).await.unwrap());
        let tasks: Vec<_> = (0..100)
            .map(|_| new_task(Shape::Linear(2), at(0)))
            .collect();
        a.task_create_many(tasks.clone()).await.unwrap();

        let seen = Arc::new(Mutex::new(HashSet::new()));
        let mut handles = Vec::new();
        for (i, store) in [a.clone(), b.clone(), a.clone(), b.clone()]
            .into_iter()
            .enumerate()
        {
            let seen = seen.clone();
            handles.push(tokio::spawn(async move {
                while seen.lock().unwrap().len() < 200 {
                    let got = store
                        .step_claim(&params(&format!("w{i}"), 8, at(1)))
                        .await
                        .unwrap();
                    if got.is_empty() {
                        tokio::task::yield_now().await;
                        continue;
                    }
                    for c in &got {
                        assert!(seen.lock().unwrap().insert(c.step_id), "double claim");
                    }
                    let outcomes: Vec<_> = got
                        .iter()
                        .map(|c| success(c, serde_json::json!(i)))
                        .collect();
                    let r = store.step_finish_many(&outcomes, at(1)).await.unwrap();
                    assert_eq!(r.applied as usize, got.len());
                }
            }));
        }
        let all = async {
            for h in handles {
                h.await.unwrap();
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), all)
            .await
            .unwrap();
        let done = b
            .task_list(&tasker_store::TaskQuery {
                status: Some(tasker_core::TaskState::Complete),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(done.total, Some(100));
    }

    /// A path that cannot be created is `Unavailable`, not a panic.
    #[tokio::test]
    async fn unreachable_path_is_unavailable() {
        let r = SqliteStore::connect("/nonexistent-dir/sub/x.db").await;
        assert!(
            matches!(r, Err(tasker_store::StoreError::Unavailable(_))),
            "{r:?}"
        );
    }

    /// A task's events are found through its transitions' `event_id`, and
    /// the unlinked ones through the partial index. Events written before
    /// that migration (no links, `linked = 0`) must still all be found: the
    /// same page before and after the links are taken away.
    #[tokio::test]
    async fn events_without_links_are_still_found_per_task() {
        use tasker_store::conformance::events::{assert_events_match_transitions, task_events};
        use tasker_store::conformance::fail;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("links.db");
        let url = format!("sqlite://{}", path.display());
        let store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&url).await.unwrap());
        let t = new_task(Shape::Linear(2), at(0));
        store.task_create(t.clone()).await.unwrap();
        let c = claim_one(&store, at(1)).await;
        // A failed attempt that will be retried: two transitions, two events.
        fail(&store, &c, Some(at(2)), at(2)).await;
        let c = claim_one(&store, at(3)).await;
        succeed(&store, &c, at(4)).await;
        assert_events_match_transitions(&store, t.id).await;
        let linked = task_events(&store, t.id).await;
        assert_eq!(linked.len(), 7, "{linked:?}");

        let db = sqlx::SqlitePool::connect(&url).await.unwrap();
        let links: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(event_id) FROM task_transitions) \
                  + (SELECT count(event_id) FROM step_transitions)",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        assert_eq!(links, 7, "every event is linked from its transition");
        sqlx::raw_sql(
            "UPDATE events SET linked = 0; \
             UPDATE task_transitions SET event_id = NULL; \
             UPDATE step_transitions SET event_id = NULL;",
        )
        .execute(&db)
        .await
        .unwrap();
        db.close().await;
        assert_eq!(task_events(&store, t.id).await, linked);
        assert_events_match_transitions(&store, t.id).await;
    }
}
