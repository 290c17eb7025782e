//! The planner statistics of the store's tables follow their growth
//! (`Store::statistics_refresh`, docs/STORAGE.md "History, retention and
//! maintenance"), whether or not the server's autovacuum runs:
//!
//! - a plan a connection cached while `steps` was nearly empty is a
//!   sequential scan, and it stays one as the table grows (the defect);
//! - the refresh analyses a never-analysed table past the small-table
//!   floor, which makes that connection plan again, on the index;
//! - a table that has not grown is left alone; one that doubled is
//!   analysed again;
//! - a role that may not analyse the tables (it owns neither them nor the
//!   database) leaves them alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::Utc;
use sqlx::Connection;
use tasker_store::Store;
use tasker_store::conformance::factory::{Shape, new_task};

/// The plan `EXPLAIN EXECUTE` shows for the session's cached generic plan
/// of a primary-key read of a batch of steps (the shape of the finish's
/// and the claim on completion's reads).
async fn cached_plan(conn: &mut sqlx::PgConnection) -> String {
    let lines: Vec<String> = sqlx::query_scalar("EXPLAIN EXECUTE batch('{}')")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    lines.join("\n")
}

async fn analysed(store: &tasker_store_postgres::PgStore, table: &str) -> (i64, f64) {
    sqlx::query_as(
        "SELECT relpages::bigint, reltuples::float8 FROM pg_class \
         WHERE relname = $1 AND relnamespace = current_schema()::regnamespace",
    )
    .bind(table)
    .fetch_one(store.pool())
    .await
    .unwrap()
}

async fn create_single_step_tasks(store: &tasker_store_postgres::PgStore, n: usize) {
    let now = Utc::now();
    for start in (0..n).step_by(500) {
        let tasks = (start..n.min(start + 500))
            .map(|_| new_task(Shape::Single, now))
            .collect();
        store.task_create_many(tasks).await.unwrap();
    }
}

#[tokio::test]
async fn grown_tables_are_analysed_and_cached_plans_follow() {
    let (store, db) = common::fresh_store().await;
    // Nothing but the refresh may analyse these tables during the test,
    // whatever the server's autovacuum setting.
    for t in ["steps", "tasks", "step_edges"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE {t} SET (autovacuum_enabled = off)"
        )))
        .execute(store.pool())
        .await
        .unwrap();
    }
    assert!(
        store.statistics_refresh().await.unwrap().is_empty(),
        "empty tables are below the floor"
    );

    // A session caches a generic plan while `steps` holds a few rows.
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "SET plan_cache_mode = force_generic_plan; \
         PREPARE batch(uuid[]) AS SELECT id FROM steps WHERE id = ANY($1)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    create_single_step_tasks(&store, 5).await;
    let small = cached_plan(&mut conn).await;
    assert!(small.contains("Seq Scan on steps"), "{small}");

    // The table grows; without statistics the cached plan does not change.
    create_single_step_tasks(&store, 3000).await;
    let grown = cached_plan(&mut conn).await;
    assert!(grown.contains("Seq Scan on steps"), "{grown}");
    let (_, rows) = analysed(&store, "steps").await;
    assert!(rows < 0.0, "never analysed: {rows}");

    // The refresh analyses the grown tables; the session plans again.
    let runs = store.statistics_refresh().await.unwrap();
    let names: Vec<&str> = runs.iter().map(|r| r.target.as_str()).collect();
    assert!(names.contains(&"steps"), "{runs:?}");
    assert!(names.contains(&"tasks"), "{runs:?}");
    assert!(
        runs.iter().all(|r| r.action == "ANALYZE (SKIP_LOCKED)"),
        "{runs:?}"
    );
    // The month partition holding the tasks' first transitions is a table
    // of its own, grown like the others.
    assert!(
        names.iter().any(|n| n.starts_with("task_transitions_p")),
        "{runs:?}"
    );
    let (pages, rows) = analysed(&store, "steps").await;
    assert!(rows >= 3000.0 && pages > 0, "{pages} pages, {rows} rows");
    let replanned = cached_plan(&mut conn).await;
    assert!(
        replanned.contains("Index") && replanned.contains("steps_pkey"),
        "{replanned}"
    );

    // Nothing grew: nothing to do.
    assert!(store.statistics_refresh().await.unwrap().is_empty());

    // `steps` doubles: analysed again (the others follow their own growth).
    create_single_step_tasks(&store, 3500).await;
    let runs = store.statistics_refresh().await.unwrap();
    assert!(runs.iter().any(|r| r.target == "steps"), "{runs:?}");
    let (_, rows) = analysed(&store, "steps").await;
    assert!(rows >= 6500.0, "{rows}");
    conn.close().await.unwrap();
}

/// An application role that did not run the migrations (and so does not
/// own the tables) cannot analyse them: PostgreSQL would skip each with a
/// warning, every few seconds, from every worker. The refresh leaves them
/// alone; the owner's refresh analyses them.
#[tokio::test]
async fn tables_the_role_cannot_analyse_are_left_alone() {
    use sqlx::ConnectOptions;
    use std::str::FromStr;

    let (store, db) = common::fresh_store().await;
    create_single_step_tasks(&store, 3000).await;
    let role = format!("tasker_app_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE {role} LOGIN; \
         GRANT USAGE ON SCHEMA public TO {role}; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"
    )))
    .execute(store.pool())
    .await
    .unwrap();
    let url = sqlx::postgres::PgConnectOptions::from_str(&db.url)
        .unwrap()
        .username(&role)
        .to_url_lossy()
        .to_string();
    let app = tasker_store_postgres::PgStore::connect_with(
        &url,
        tasker_store_postgres::PgOptions {
            run_migrations: false,
            clock: tasker_store_postgres::PgClock::Caller,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let runs = app.statistics_refresh().await.unwrap();
    app.close().await;
    let owner_runs = store.statistics_refresh().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP OWNED BY {role}; DROP ROLE {role}"
    )))
    .execute(store.pool())
    .await
    .unwrap();
    assert!(runs.is_empty(), "{runs:?}");
    assert!(
        owner_runs.iter().any(|r| r.target == "steps"),
        "{owner_runs:?}"
    );
}

/// The JSON documents no statement filters on get no statistics (migration
/// `20261211000000_no_statistics_of_documents.sql`): `ANALYZE` skips them on
/// the tables and on the history's partitions, a month partition created
/// later inherits the setting, and the columns plans read keep theirs.
#[tokio::test]
async fn documents_are_not_sampled() {
    use std::sync::Arc;
    use tasker_store::conformance::run_all;

    const DOCUMENTS: [(&str, &str); 8] = [
        ("tasks", "context"),
        ("steps", "handler_config"),
        ("steps", "inputs"),
        ("steps", "results"),
        ("steps", "last_error"),
        ("task_transitions", "metadata"),
        ("step_transitions", "metadata"),
        ("events", "payload"),
    ];
    let (store, _db) = common::fresh_store().await;
    let s: Arc<dyn Store> = store.clone();
    let now = Utc::now();
    for _ in 0..20 {
        s.task_create(new_task(Shape::Linear(3), now))
            .await
            .unwrap();
    }
    assert_eq!(run_all(&s, now).await, 60);
    let later = now + chrono::Duration::days(400);
    let made = s.history_partitions_ensure(later, 0).await.unwrap();
    assert_eq!(made.len(), 3, "{made:?}");
    sqlx::query("ANALYZE").execute(store.pool()).await.unwrap();

    // Every table that holds (or will hold) a document column: the table
    // itself and its partitions.
    let stats: Vec<(String, String)> = sqlx::query_as(
        "SELECT tablename::text, attname::text FROM pg_stats WHERE schemaname = current_schema()",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let targets: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT c.relname::text, a.attname::text, COALESCE(a.attstattarget, -1)::int4 \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') \
           AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let family = |table: &str, name: &str| {
        name == table
            || name.starts_with(&format!("{table}_p"))
            || name == format!("{table}_default")
    };
    for (table, column) in DOCUMENTS {
        let sampled: Vec<&String> = stats
            .iter()
            .filter(|(t, c)| family(table, t) && c == column)
            .map(|(t, _)| t)
            .collect();
        assert!(
            sampled.is_empty(),
            "{table}.{column} has statistics in {sampled:?}"
        );
        let members: Vec<(&String, i32)> = targets
            .iter()
            .filter(|(t, c, _)| family(table, t) && c == column)
            .map(|(t, _, n)| (t, *n))
            .collect();
        assert!(!members.is_empty(), "{table}.{column} not found");
        assert!(
            members.iter().all(|(_, n)| *n == 0),
            "{table}.{column} targets: {members:?}"
        );
    }
    // The new month's partitions were made by the partition function after
    // the migration ran.
    for r in &made {
        assert!(
            targets
                .iter()
                .any(|(t, c, n)| t == &r.target && (c == "payload" || c == "metadata") && *n == 0),
            "{} lacks its parent's target",
            r.target
        );
    }
    // ANALYZE ran and sampled the other columns.
    for (table, column) in [
        ("tasks", "namespace"),
        ("steps", "status"),
        ("events", "type"),
    ] {
        assert!(
            stats.iter().any(|(t, c)| family(table, t) && c == column),
            "{table}.{column} has no statistics"
        );
    }
}
