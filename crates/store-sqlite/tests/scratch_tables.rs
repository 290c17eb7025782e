//! No trigger that fires for ordinary rows opens a scratch b-tree.
//!
//! SQLite builds an ephemeral table (a b-tree with its own pager and page
//! cache) for `x IN (a, b, c)` with three or more constants, for an `IN`
//! subquery, and to collect the rows of a multi-row `UPDATE`. In a plain
//! statement that happens once per execution; in a trigger it happens for
//! every row that fires it, and the throughput benchmark paid about nine
//! per single-step task, 8 % of its CPU (docs/PERFORMANCE.md, "SQLite:
//! memory statistics and per-row scratch tables"; migration
//! `20261211000000_no_scratch_tables_per_row.sql`).
//!
//! The test compiles the statements that fire the store's triggers (a step's
//! status change, which reaches the task's triggers through the counters, a
//! task's status change, the inserts of creation) with `EXPLAIN`, which lists
//! each trigger's program after the statement's own, and counts the
//! `OpenEphemeral` instructions of each trigger. Only the triggers whose
//! `WHEN` limits them to rare rows may have any: the unblocking of a finished
//! step's children (a step with children), and the release of a concurrency
//! key or a task slot. The reworded `CHECK` of `tasks.status` still refuses
//! a status outside the six.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};
use std::collections::BTreeMap;
use std::str::FromStr;
use tasker_store_sqlite::SqliteStore;

/// Triggers allowed scratch tables: each runs only for the rows its `WHEN`
/// names (the program tests the `WHEN` before anything else).
const RARE: [&str; 3] = [
    "steps_unblock_children",
    "steps_flow_release",
    "tasks_slot_release",
];

/// Statements that fire every trigger of the hot path (each parameter bound
/// NULL: the program does not depend on values).
const FIRING: [(&str, usize); 5] = [
    (
        "UPDATE steps SET status = ?1, ready_at = ?2, lease_owner = ?3, lease_token = ?4, \
         lease_expires_at = ?5, results = ?6, last_error = ?7, updated_at = ?8 WHERE id = ?9",
        9,
    ),
    (
        "UPDATE tasks SET status = ?1, steps_remaining = ?2, steps_live = ?3, \
         steps_blocked = ?4, updated_at = ?5 WHERE id = ?6",
        6,
    ),
    ("UPDATE steps SET ready_at = ?1 WHERE id = ?2", 2),
    (
        "INSERT INTO tasks (id, namespace, name, version, status, context, initiator, \
         source_system, reason, correlation_id, steps_total, steps_remaining, steps_live, \
         steps_blocked, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        16,
    ),
    (
        "INSERT INTO steps (id, task_id, name, position, dependent_system, handler_kind, \
         handler_config, inputs, status, max_attempts, retry_limit, retryable, skippable, \
         remaining_parents, ready_at, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        17,
    ),
];

/// `OpenEphemeral` instructions per trigger in `sql`'s program.
async fn scratch_per_trigger(
    conn: &mut SqliteConnection,
    sql: &str,
    params: usize,
) -> BTreeMap<String, usize> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")));
    for _ in 0..params {
        q = q.bind(Option::<String>::None);
    }
    let mut per = BTreeMap::new();
    let mut current: Option<String> = None;
    for row in q.fetch_all(&mut *conn).await.unwrap() {
        let opcode: String = row.try_get("opcode").unwrap();
        let p4: Option<String> = row.try_get("p4").unwrap();
        if opcode == "Init" {
            // A trigger's program starts with `Init` and its name.
            current = p4.and_then(|c| c.strip_prefix("-- TRIGGER ").map(str::to_string));
            if let Some(name) = &current {
                per.entry(name.clone()).or_insert(0);
            }
        } else if opcode == "OpenEphemeral"
            && let Some(name) = &current
        {
            *per.entry(name.clone()).or_insert(0) += 1;
        }
    }
    per
}

#[tokio::test]
async fn only_rare_triggers_open_scratch_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scratch.db");
    let store = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
    store.close().await;
    let mut conn = SqliteConnection::connect_with(
        &SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display())).unwrap(),
    )
    .await
    .unwrap();

    let mut seen = BTreeMap::new();
    let mut offending = Vec::new();
    for (sql, params) in FIRING {
        for (trigger, n) in scratch_per_trigger(&mut conn, sql, params).await {
            if n > 0 && !RARE.contains(&trigger.as_str()) {
                offending.push(format!("{trigger}: {n} in the program of {sql}"));
            }
            *seen.entry(trigger).or_insert(0) += n;
        }
    }
    assert!(
        offending.is_empty(),
        "triggers that run for ordinary rows open scratch tables:\n{}",
        offending.join("\n")
    );
    // The statements reached the hot path's triggers, the rare ones among
    // them (so the test reads what it means to).
    for trigger in [
        "steps_status_changed",
        "steps_retried",
        "steps_readiness_changed",
        "tasks_settle",
        "tasks_status_changed",
        "tasks_created",
        "steps_unblock_children",
    ] {
        assert!(
            seen.contains_key(trigger),
            "{trigger} not compiled: {seen:?}"
        );
    }
    // The rewritten CHECK of `tasks.status` still refuses what it did.
    let refused = sqlx::query(
        "INSERT INTO tasks (id, namespace, name, version, status, context, initiator, \
         source_system, reason, correlation_id, steps_total, steps_remaining, steps_live, \
         steps_blocked, created_at, updated_at) VALUES (x'01', 'n', 't', '1.0.0', 'finished', \
         '{}', 'i', 's', 'r', 'c', 1, 1, 1, 0, 1, 1)",
    )
    .execute(&mut conn)
    .await
    .unwrap_err()
    .to_string();
    assert!(refused.contains("CHECK constraint failed"), "{refused}");
    assert!(
        seen["steps_unblock_children"] > 0,
        "the unblocking's IN reads a scratch table: {seen:?}"
    );
}
