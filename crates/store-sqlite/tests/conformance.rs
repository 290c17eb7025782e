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

    /// A database written before each change became one row (an event row
    /// and a transition row per change, migration
    /// `20261205000000_transitions_are_events.sql`) reads the same after
    /// it: its transitions first, then the new ones; its events in the feed
    /// and per task, with ids below every new one.
    #[tokio::test]
    async fn history_written_before_one_row_per_change_is_still_read() {
        use std::borrow::Cow;
        use tasker_store::EventQuery;
        use tasker_store::conformance::events::{assert_events_match_transitions, task_events};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upgrade.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let db = sqlx::SqlitePool::connect(&url).await.unwrap();
        let before = sqlx::migrate::Migrator {
            migrations: Cow::Owned(
                tasker_store_sqlite::MIGRATOR
                    .migrations
                    .iter()
                    .filter(|m| m.version < 20261205000000)
                    .cloned()
                    .collect(),
            ),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        before.run(&db).await.unwrap();
        // One single-step task, claimed, finished and completed by the old
        // triggers (the engine's statements, as bench/outbox_replay.py).
        let (task, step) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let t0 = at(0).timestamp_micros();
        for (sql, t) in [
            (
                "INSERT INTO tasks (id, namespace, name, version, status, context, initiator, \
                 source_system, reason, correlation_id, steps_total, steps_remaining, steps_live, \
                 steps_blocked, created_at, updated_at) VALUES (?1, 'old', 'single', '0.1.0', \
                 'pending', '{}', 'x', 'x', 'x', 'corr', 1, 1, 1, 0, ?3, ?3)",
                t0,
            ),
            (
                "INSERT INTO steps (id, task_id, name, position, dependent_system, handler_kind, \
                 handler_config, inputs, status, max_attempts, retry_limit, retryable, skippable, \
                 remaining_parents, ready_at, created_at, updated_at) VALUES (?2, ?1, 'only', 0, \
                 'default', 'noop', '{}', '{}', 'pending', 3, 3, 1, 0, 0, ?3, ?3, ?3)",
                t0,
            ),
            (
                "UPDATE steps SET status = 'in_progress', attempts = 1, lease_owner = 'w', \
                 lease_token = randomblob(16), lease_expires_at = ?3 + 60000000, ready_at = NULL, \
                 last_attempted_at = ?3, updated_at = ?3 WHERE id = ?2",
                t0 + 1_000_000,
            ),
            (
                "UPDATE steps SET status = 'complete', results = '{}', completed_at = ?3, \
                 lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = ?3 \
                 WHERE id = ?2",
                t0 + 2_000_000,
            ),
            (
                "UPDATE tasks SET status = 'complete', completed_at = ?3, updated_at = ?3 \
                 WHERE id = ?1 AND steps_remaining = 0",
                t0 + 2_000_000,
            ),
        ] {
            sqlx::query(sql)
                .bind(task)
                .bind(step)
                .bind(t)
                .execute(&db)
                .await
                .unwrap();
        }
        let old_max: i64 = sqlx::query_scalar("SELECT max(id) FROM events")
            .fetch_one(&db)
            .await
            .unwrap();
        db.close().await;

        let store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&url).await.unwrap());
        let states = |ts: Vec<tasker_store::TransitionRow>| {
            ts.into_iter()
                .map(|t| (t.from_state, t.to_state))
                .collect::<Vec<_>>()
        };
        let s = |x: &str| Some(x.to_string());
        let old_task = vec![
            (None, "pending".to_string()),
            (s("pending"), "in_progress".to_string()),
            (s("in_progress"), "complete".to_string()),
        ];
        assert_eq!(
            states(store.task_transitions(task).await.unwrap()),
            old_task
        );
        let old_events = task_events(&store, task).await;
        let types: Vec<&str> = old_events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            types,
            [
                "task.created",
                "step.started",
                "task.started",
                "step.completed",
                "task.completed"
            ]
        );
        assert!(old_events.iter().all(|e| e.namespace == "old"));
        let feed = EventQuery {
            limit: 100,
            ..Default::default()
        };
        assert_eq!(store.events_list(&feed).await.unwrap(), old_events);
        assert_events_match_transitions(&store, task).await;

        // New changes of the same task land after the old ones.
        store
            .task_restart(task, step, at(10), Some("ops"), Some("again"))
            .await
            .unwrap();
        let c = claim_one(&store, at(11)).await;
        succeed(&store, &c, at(12)).await;
        let mut want = old_task.clone();
        want.extend([
            (s("complete"), "pending".to_string()),
            (s("pending"), "in_progress".to_string()),
            (s("in_progress"), "complete".to_string()),
        ]);
        let now = store.task_transitions(task).await.unwrap();
        assert_eq!(now[3].metadata["by"], "ops", "{:?}", now[3]);
        assert_eq!(states(now), want);
        assert_eq!(
            states(store.step_transitions(step).await.unwrap()),
            vec![
                (None, "pending".to_string()),
                (s("pending"), "in_progress".to_string()),
                (s("in_progress"), "complete".to_string()),
                (s("complete"), "pending".to_string()),
                (s("pending"), "in_progress".to_string()),
                (s("in_progress"), "complete".to_string()),
            ]
        );
        let all = task_events(&store, task).await;
        assert_eq!(all[..5], old_events[..]);
        assert!(
            all[5..]
                .iter()
                .all(|e| e.id > old_max && e.namespace == "old")
        );
        assert_events_match_transitions(&store, task).await;
    }

    /// A task's rows are its transitions and its events at once: pruning
    /// the task's history while its events are still in the feed leaves
    /// them there as plain events (task-level ones still answer `task_id=`),
    /// with its namespace, until the event pruner passes them; then they
    /// are deleted. Rows the event pruner passed earlier go with the task.
    #[tokio::test]
    async fn history_pruning_leaves_events_in_the_feed_until_their_own_pruning() {
        use tasker_store::conformance::events::task_events;
        use tasker_store::{EventQuery, PruneQuery};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prune.db");
        let url = format!("sqlite://{}", path.display());
        let store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&url).await.unwrap());
        let (old, young) = (
            new_task(Shape::Single, at(0)),
            new_task(Shape::Single, at(50)),
        );
        for (t, from) in [(&old, 1), (&young, 51)] {
            store.task_create(t.clone()).await.unwrap();
            let c = claim_one(&store, at(from)).await;
            succeed(&store, &c, at(from + 1)).await;
        }
        let feed = EventQuery {
            limit: 100,
            ..Default::default()
        };
        let all = store.events_list(&feed).await.unwrap();
        assert_eq!(all.len(), 10, "{all:?}");
        // The old task's events leave the feed; the young one's stay.
        assert_eq!(store.events_prune(at(40), 100).await.unwrap(), 5);
        assert_eq!(store.events_list(&feed).await.unwrap(), all[5..].to_vec());
        assert_eq!(
            store.task_transitions(old.id).await.unwrap().len(),
            3,
            "history kept"
        );

        let db = sqlx::SqlitePool::connect(&url).await.unwrap();
        let rows = |task: uuid::Uuid| {
            let db = db.clone();
            async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM events WHERE task_id = ?1 AND to_state IS NOT NULL",
                )
                .bind(task)
                .fetch_one(&db)
                .await
                .unwrap()
            }
        };
        // Both tasks' histories are pruned: the old one's rows go (the
        // pruner passed them), the young one's stay as events.
        let q = PruneQuery {
            finished_before: at(100),
            namespace: None,
            except_namespaces: Vec::new(),
            limit: 0,
        };
        assert_eq!(store.prune_expired(&q).await.unwrap(), Some(2));
        assert!(store.task_transitions(old.id).await.is_err());
        let (gone, kept): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM events WHERE task_id = ?1),
                    (SELECT count(*) FROM events WHERE task_id = ?2 AND to_state IS NULL)",
        )
        .bind(old.id)
        .bind(young.id)
        .fetch_one(&db)
        .await
        .unwrap();
        assert_eq!(
            (gone, kept),
            (0, 5),
            "the young task's events, not its step's creation"
        );
        assert_eq!(rows(young.id).await, 0, "no transition left");
        assert_eq!(store.events_list(&feed).await.unwrap(), all[5..].to_vec());
        let own: Vec<_> = all[5..]
            .iter()
            .filter(|e| e.step_id.is_none())
            .cloned()
            .collect();
        assert_eq!(task_events(&store, young.id).await, own);

        // The event pruner passes them (all but the newest) and deletes them.
        assert_eq!(store.events_prune(at(100), 100).await.unwrap(), 4);
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(left, 1, "the newest event");
        assert_eq!(store.events_list(&feed).await.unwrap(), all[9..].to_vec());
        db.close().await;
    }
}
