//! Monthly partitions of the history tables (docs/STORAGE.md, "Partitions"):
//! the migration converts tables that already hold history (rows, ids,
//! outbox triggers and the gapless event ids survive), partitions are
//! created ahead and rows of the DEFAULT partition move into them, and
//! retention drops a month only once no remaining task has rows in it,
//! keeping a long-running task's history.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::TestDb;
use std::borrow::Cow;
use std::sync::Arc;
use tasker_store::conformance::factory::{Shape, new_task};
use tasker_store::conformance::{claim_one, run_all, succeed};
use tasker_store::{EventQuery, PruneQuery, Store, StoreError, TransitionRow};
use tasker_store_postgres::{MIGRATOR, PgClock, PgOptions, PgStore};
use uuid::Uuid;

/// The migration that partitions the history.
const PARTITIONS: i64 = 20261129600000;
/// A later migration that changes the history tables (an `evented` column,
/// row-level outbox triggers): undone before the conversion and applied
/// again after it, in the order an upgrade applies them.
const EVENTS_IN_STATEMENTS: i64 = 20261202000000;

/// A later migration that replaces the partitioning migration's function
/// (and drops the range constraints it left): it needs that migration, so
/// it is held back with it.
const PARTITION_CHECKS_DROPPED: i64 = 20261207000000;

/// A later migration that replaces that function again (and sets the
/// history tables' statistics targets, which the conversion would lose):
/// held back with them.
const NO_STATISTICS_OF_DOCUMENTS: i64 = 20261211000000;

/// Takes [`EVENTS_IN_STATEMENTS`] off a database (its history written):
/// the shape the partitioning migration converts, with statement-level
/// outbox triggers. Their functions only stand in (nothing is written
/// before the conversion): the conversion re-creates the triggers on them
/// and the re-applied migration replaces both.
async fn undo_events_in_statements(store: &PgStore) {
    sqlx::raw_sql(
        "DROP TRIGGER task_transitions_event ON task_transitions;
         DROP TRIGGER step_transitions_event ON step_transitions;
         DROP FUNCTION tasker_task_event(), tasker_step_event(),
             tasker_task_event_type(text, text, jsonb), tasker_step_event_type(text, text, jsonb),
             tasker_task_event_payload(text, text, text, text, text, text, text, text, bigint, jsonb),
             tasker_step_event_payload(text, text, timestamptz, jsonb, text, jsonb, jsonb,
                 timestamptz, timestamptz, integer);
         ALTER TABLE task_transitions DROP COLUMN evented;
         ALTER TABLE step_transitions DROP COLUMN evented;
         CREATE FUNCTION tasker_task_events() RETURNS trigger LANGUAGE plpgsql
             AS $$ BEGIN RETURN NULL; END $$;
         CREATE FUNCTION tasker_step_events() RETURNS trigger LANGUAGE plpgsql
             AS $$ BEGIN RETURN NULL; END $$;
         CREATE TRIGGER task_transitions_events AFTER INSERT ON task_transitions
             REFERENCING NEW TABLE AS new_rows
             FOR EACH STATEMENT EXECUTE FUNCTION tasker_task_events();
         CREATE TRIGGER step_transitions_events AFTER INSERT ON step_transitions
             REFERENCING NEW TABLE AS new_rows
             FOR EACH STATEMENT EXECUTE FUNCTION tasker_step_events();",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let undone = sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
        .bind(EVENTS_IN_STATEMENTS)
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(undone.rows_affected(), 1, "it had been applied");
}

fn day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).single().unwrap()
}

fn caller_clock() -> PgOptions {
    PgOptions {
        clock: PgClock::Caller,
        run_migrations: false,
        ..PgOptions::default()
    }
}

async fn scalar_i64(store: &PgStore, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(store.pool())
        .await
        .unwrap()
}

async fn exists(store: &PgStore, table: &str) -> bool {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(table)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// Every event, read the way a consumer does; asserts ids are 1..=n.
async fn all_events_dense(s: &Arc<dyn Store>) -> Vec<tasker_store::EventRow> {
    let all = s
        .events_list(&EventQuery {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<i64> = all.iter().map(|e| e.id).collect();
    let want: Vec<i64> = (1..=all.len() as i64).collect();
    assert_eq!(ids, want, "event ids are dense and ascending");
    all
}

/// The runs about the test's months (2031).
/// CHECK constraints left on the history tables' partitions: none, since
/// a partition's bound already says its range and PostgreSQL would plan a
/// CHECK again in every statement that appends to it (migration
/// `20261207000000_partition_range_checks_dropped`).
async fn partition_checks(store: &PgStore) -> i64 {
    scalar_i64(
        store,
        "SELECT count(*) FROM pg_constraint k JOIN pg_inherits i ON i.inhrelid = k.conrelid \
         WHERE k.contype = 'c' AND i.inhparent IN \
             ('task_transitions'::regclass, 'step_transitions'::regclass, 'events'::regclass)",
    )
    .await
}

fn in_2031(runs: Vec<tasker_store::MaintenanceRun>) -> Vec<tasker_store::MaintenanceRun> {
    runs.into_iter()
        .filter(|r| r.target.contains("_p2031"))
        .collect()
}

async fn history(s: &Arc<dyn Store>, task: Uuid) -> (Vec<TransitionRow>, Vec<Vec<TransitionRow>>) {
    let mut steps = Vec::new();
    for st in s.step_list(task).await.unwrap() {
        steps.push(s.step_transitions(st.id).await.unwrap());
    }
    (s.task_transitions(task).await.unwrap(), steps)
}

#[tokio::test]
async fn migration_converts_existing_history() {
    let db = TestDb::create().await;
    let store = db.store_with(caller_clock()).await;
    // The schema without partitioning. The migrations after it are applied
    // too (but [`PARTITION_CHECKS_DROPPED`] and [`NO_STATISTICS_OF_DOCUMENTS`],
    // which build on it): today's
    // store code, which writes the history below, needs their columns. Of those, only [`EVENTS_IN_STATEMENTS`] changes the history
    // tables: it is undone once the history is written and applied again
    // after the conversion, so the conversion under test is the one an
    // upgrade runs.
    let before = sqlx::migrate::Migrator {
        migrations: Cow::Owned(
            MIGRATOR
                .iter()
                .filter(|m| {
                    ![
                        PARTITIONS,
                        PARTITION_CHECKS_DROPPED,
                        NO_STATISTICS_OF_DOCUMENTS,
                    ]
                    .contains(&m.version)
                })
                .cloned()
                .collect(),
        ),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before.run(store.pool()).await.unwrap();
    let s: Arc<dyn Store> = Arc::new(store.clone());

    // History in two months; part of the events numbered (read), the
    // newest ones not yet (nobody read since).
    let jan = new_task(Shape::Linear(2), day(2031, 1, 10));
    s.task_create(jan.clone()).await.unwrap();
    assert_eq!(run_all(&s, day(2031, 1, 11)).await, 2);
    let numbered = all_events_dense(&s).await.len();
    let mar = new_task(Shape::Diamond, day(2031, 3, 5));
    s.task_create(mar.clone()).await.unwrap();
    let c = claim_one(&s, day(2031, 3, 6)).await;
    succeed(&s, &c, day(2031, 3, 6)).await;
    let jan_before = history(&s, jan.id).await;
    let mar_before = history(&s, mar.id).await;
    let tt = scalar_i64(&store, "SELECT count(*) FROM task_transitions").await;
    let st = scalar_i64(&store, "SELECT count(*) FROM step_transitions").await;
    let ev = scalar_i64(&store, "SELECT count(*) FROM events").await;
    let max_st = scalar_i64(&store, "SELECT max(id) FROM step_transitions").await;
    assert!(ev > numbered as i64, "some events are not numbered yet");

    undo_events_in_statements(&store).await;
    store.migrate().await.unwrap();
    assert_eq!(partition_checks(&store).await, 0);
    // The months made by the conversion skip the payload's statistics
    // like the rest ([`NO_STATISTICS_OF_DOCUMENTS`], applied after it).
    assert_eq!(
        scalar_i64(
            &store,
            "SELECT attstattarget::int8 FROM pg_attribute \
             WHERE attrelid = 'events_p203101'::regclass AND attname = 'payload'"
        )
        .await,
        0
    );

    // Partitioned, with a month for each month that had rows.
    for table in ["task_transitions", "step_transitions", "events"] {
        let kind: String =
            sqlx::query_scalar("SELECT relkind::text FROM pg_class WHERE relname = $1")
                .bind(table)
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(kind, "p", "{table} is partitioned");
        for part in ["p203101", "p203103", "default"] {
            assert!(
                exists(&store, &format!("{table}_{part}")).await,
                "{table}_{part}"
            );
        }
        // Only months with rows (and the months ahead of now) get one.
        assert!(!exists(&store, &format!("{table}_p203102")).await);
    }
    // Every row survived, with its id, in its month.
    assert_eq!(
        scalar_i64(&store, "SELECT count(*) FROM task_transitions").await,
        tt
    );
    assert_eq!(
        scalar_i64(&store, "SELECT count(*) FROM step_transitions").await,
        st
    );
    assert_eq!(scalar_i64(&store, "SELECT count(*) FROM events").await, ev);
    assert_eq!(
        scalar_i64(&store, "SELECT count(*) FROM task_transitions_default").await
            + scalar_i64(&store, "SELECT count(*) FROM events_default").await,
        0
    );
    assert_eq!(history(&s, jan.id).await, jan_before);
    assert_eq!(history(&s, mar.id).await, mar_before);

    // The triggers still write events, and the ids stay gapless across
    // the ones numbered before the migration, the ones written before it
    // but numbered after, and new ones.
    let c = claim_one(&s, day(2031, 3, 7)).await;
    succeed(&s, &c, day(2031, 3, 7)).await;
    let events = all_events_dense(&s).await;
    assert_eq!(events.len() as i64, ev + 2, "step.started + step.completed");
    assert_eq!(events.last().unwrap().event_type, "step.completed");
    // New transitions continue the identity (no key collision).
    assert_eq!(
        scalar_i64(
            &store,
            &format!("SELECT count(*) FROM step_transitions WHERE id > {max_st}")
        )
        .await,
        2
    );
    // The default partitions are empty and next month exists: no warning.
    let health = s.storage_health().await.unwrap();
    assert!(
        !health.warnings.iter().any(|w| w.contains("partition")),
        "{health:?}"
    );
}

#[tokio::test]
async fn partitions_are_created_ahead_and_take_in_default_rows() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let s: Arc<dyn Store> = Arc::new(store.clone());
    let runs = s
        .history_partitions_ensure(day(2031, 5, 10), 2)
        .await
        .unwrap();
    let mut made: Vec<String> = runs.iter().map(|r| r.target.clone()).collect();
    made.sort();
    let mut want = Vec::new();
    for table in ["events", "step_transitions", "task_transitions"] {
        for month in ["203105", "203106", "203107"] {
            want.push(format!("{table}_p{month}"));
        }
    }
    assert_eq!(made, want);
    assert_eq!(partition_checks(&store).await, 0);
    // Idempotent.
    assert!(
        s.history_partitions_ensure(day(2031, 6, 1), 1)
            .await
            .unwrap()
            .is_empty()
    );

    // A month nobody created: the rows land in DEFAULT, and health says so.
    // (Claimed, so that its step has a transition too: a step's creation is
    // none.)
    let t = new_task(Shape::Single, day(2032, 1, 3));
    s.task_create(t.clone()).await.unwrap();
    claim_one(&s, day(2032, 1, 3)).await;
    assert_eq!(
        scalar_i64(&store, "SELECT count(*) FROM task_transitions_default").await,
        2
    );
    let health = s.storage_health().await.unwrap();
    assert!(
        health
            .warnings
            .iter()
            .any(|w| w.contains("task_transitions_default")),
        "{health:?}"
    );
    let before = history(&s, t.id).await;
    // Creating that month moves them in; nothing is lost or emitted twice.
    let runs = s
        .history_partitions_ensure(day(2032, 1, 20), 0)
        .await
        .unwrap();
    assert_eq!(runs.len(), 3, "{runs:?}");
    // The task's creation and start, the step's start; their events.
    for (table, rows) in [
        ("task_transitions", 2),
        ("step_transitions", 1),
        ("events", 3),
    ] {
        assert_eq!(
            scalar_i64(&store, &format!("SELECT count(*) FROM {table}_default")).await,
            0,
            "{table}"
        );
        assert_eq!(
            scalar_i64(&store, &format!("SELECT count(*) FROM {table}_p203201")).await,
            rows,
            "{table}"
        );
    }
    assert_eq!(history(&s, t.id).await, before);
    let events = all_events_dense(&s).await;
    assert_eq!(events.len(), 3, "{events:?}");
    let health = s.storage_health().await.unwrap();
    assert!(
        !health.warnings.iter().any(|w| w.contains("DEFAULT")),
        "{health:?}"
    );
}

#[tokio::test]
async fn retention_drops_months_and_keeps_a_long_running_tasks_history() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let s: Arc<dyn Store> = Arc::new(store.clone());
    s.history_partitions_ensure(day(2031, 1, 1), 5)
        .await
        .unwrap();

    // A: created in January, its first step done, its second running for
    // months (a long lease).
    let a = new_task(Shape::Linear(2), day(2031, 1, 10));
    s.task_create(a.clone()).await.unwrap();
    let c = claim_one(&s, day(2031, 1, 11)).await;
    succeed(&s, &c, day(2031, 1, 11)).await;
    let a_running = claim_one(&s, day(2031, 1, 11)).await;
    assert_eq!(a_running.task_id, a.id);
    // B: twenty tasks created and finished in January; C: one in February.
    let mut finished = Vec::new();
    for _ in 0..20 {
        let t = new_task(Shape::Single, day(2031, 1, 12));
        s.task_create(t.clone()).await.unwrap();
        finished.push(t.id);
    }
    assert_eq!(run_all(&s, day(2031, 1, 12)).await, 20);
    let cfeb = new_task(Shape::Diamond, day(2031, 2, 10));
    s.task_create(cfeb.clone()).await.unwrap();
    assert_eq!(run_all(&s, day(2031, 2, 10)).await, 4);
    finished.push(cfeb.id);
    let a_history = history(&s, a.id).await;
    let events_before = all_events_dense(&s).await.len();

    // April 15th, 30-day window: B and C go, A (running) stays.
    let cutoff = day(2031, 3, 16);
    let ids = s
        .prune_candidates(&PruneQuery {
            finished_before: cutoff,
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids.len(), 21);
    assert_eq!(s.tasks_prune(&ids, cutoff).await.unwrap().len(), 21);
    // The transitions are still there (no row-by-row delete) but unreachable.
    assert!(scalar_i64(&store, "SELECT count(*) FROM task_transitions_p203101").await > 3);
    for id in &finished {
        assert!(matches!(
            s.task_transitions(*id).await,
            Err(StoreError::NotFound { .. })
        ));
    }

    // (The months the migration created around the real date, years
    // before these, are empty and go first.)
    let runs = in_2031(s.history_partitions_drop(cutoff).await.unwrap());
    let targets: Vec<&str> = runs.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            "task_transitions_p203101",
            "step_transitions_p203101",
            "task_transitions_p203102",
            "step_transitions_p203102"
        ],
        "{runs:?}"
    );
    assert!(runs[0].action.contains("kept"), "{runs:?}");
    assert_eq!(runs[2].action, "DROP PARTITION", "{runs:?}");
    // January now holds A's rows only; February is gone; March stays (it
    // ends after the cutoff).
    let a_rows = a_history.0.len() as i64;
    let a_step_rows: i64 = a_history.1.iter().map(|v| v.len() as i64).sum();
    assert_eq!(
        scalar_i64(&store, "SELECT count(*) FROM task_transitions_p203101").await,
        a_rows
    );
    assert_eq!(
        scalar_i64(&store, "SELECT count(*) FROM step_transitions_p203101").await,
        a_step_rows
    );
    assert!(!exists(&store, "task_transitions_p203102").await);
    assert!(!exists(&store, "step_transitions_p203102").await);
    assert!(exists(&store, "task_transitions_p203103").await);
    // A's history is whole, and the events were neither lost nor repeated.
    assert_eq!(history(&s, a.id).await, a_history);
    assert_eq!(all_events_dense(&s).await.len(), events_before);

    // A finishes in April: the triggers still fire on the swapped table.
    succeed(&s, &a_running, day(2031, 4, 16)).await;
    let events = all_events_dense(&s).await;
    let tail: Vec<&str> = events[events_before..]
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(tail, ["step.completed", "task.completed"]);
    let (a_tt, _) = history(&s, a.id).await;
    assert_eq!(a_tt.len(), a_history.0.len() + 1);

    // June 1st: A goes too, and with it every month up to its end.
    let cutoff = day(2031, 5, 2);
    let ids = s
        .prune_candidates(&PruneQuery {
            finished_before: cutoff,
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids, [a.id]);
    s.tasks_prune(&ids, cutoff).await.unwrap();
    let runs = in_2031(s.history_partitions_drop(cutoff).await.unwrap());
    assert_eq!(runs.len(), 6, "January, March, April: {runs:?}");
    assert!(
        runs.iter().all(|r| r.action == "DROP PARTITION"),
        "{runs:?}"
    );
    for month in ["203101", "203103", "203104"] {
        assert!(!exists(&store, &format!("task_transitions_p{month}")).await);
    }
    assert!(exists(&store, "task_transitions_p203105").await);
    // The swapped-in copies of the months that kept rows lost their range
    // constraints too.
    assert_eq!(partition_checks(&store).await, 0);

    // Events have their own retention: whole months that ended before the
    // cutoff go at once, except the month of the newest event.
    let last = s.events_last_id().await.unwrap();
    let n = s.events_prune(day(2031, 5, 1), 10).await.unwrap();
    assert_eq!(n as usize, events_before, "every event before April");
    assert!(!exists(&store, "events_p203101").await);
    assert!(
        exists(&store, "events_p203104").await,
        "holds the newest event"
    );
    let left = s
        .events_list(&EventQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(left.len(), 2);
    assert_eq!(left.last().unwrap().id, last);
    assert_eq!(s.events_last_id().await.unwrap(), last);
}

/// The month swap takes its locks with a short timeout and never
/// deadlocks with writers: tasks created and run by another pool
/// throughout a drop all finish, with every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_months_while_writers_run() {
    let db = TestDb::create().await;
    let store = db.store().await;
    let s: Arc<dyn Store> = Arc::new(store.clone());
    s.history_partitions_ensure(day(2031, 1, 1), 4)
        .await
        .unwrap();
    for _ in 0..50 {
        s.task_create(new_task(Shape::Single, day(2031, 1, 5)))
            .await
            .unwrap();
    }
    run_all(&s, day(2031, 1, 5)).await;
    let ids = s
        .prune_candidates(&PruneQuery {
            finished_before: day(2031, 3, 1),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    s.tasks_prune(&ids, day(2031, 3, 1)).await.unwrap();

    let other: Arc<dyn Store> = Arc::new(
        db.store_with(PgOptions {
            clock: PgClock::Caller,
            run_migrations: false,
            ..PgOptions::default()
        })
        .await,
    );
    let before = all_events_dense(&s).await.len();
    assert_eq!(before % 50, 0);
    let writer = tokio::spawn(async move {
        let mut n = 0;
        for i in 0..200 {
            let now = day(2031, 4, 1) + Duration::seconds(i);
            other
                .task_create(new_task(Shape::Single, now))
                .await
                .unwrap();
            n += run_all(&other, now).await;
        }
        n
    });
    let mut dropped = Vec::new();
    while !writer.is_finished() && dropped.is_empty() {
        dropped = in_2031(s.history_partitions_drop(day(2031, 3, 1)).await.unwrap());
    }
    assert_eq!(writer.await.unwrap(), 200);
    if dropped.is_empty() {
        dropped = in_2031(s.history_partitions_drop(day(2031, 3, 1)).await.unwrap());
    }
    assert_eq!(dropped.len(), 4, "January and February: {dropped:?}");
    // Every task written during the drops has its events, ids gapless.
    let events = all_events_dense(&s).await;
    assert_eq!(events.len(), before + 200 * (before / 50));
}
