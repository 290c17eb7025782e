//! Checks of work that several worker processes shared through one
//! PostgreSQL database (the flow-control tests).

use sqlx::PgConnection;

/// How many tasks are `complete`.
pub async fn complete_tasks(conn: &mut PgConnection) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM tasks WHERE status = 'complete'")
        .fetch_one(conn)
        .await
        .unwrap();
    n
}

/// How many different workers leased steps (from the claims' transitions).
pub async fn claiming_workers(conn: &mut PgConnection) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(DISTINCT metadata->>'worker') FROM step_transitions WHERE to_state = 'in_progress'",
    )
    .fetch_one(conn)
    .await
    .unwrap();
    n
}

/// Replays `(order, +1 start / -1 end)` marks in order: how many are still
/// running at the end, and the most that ran at once.
pub fn still_running_and_peak(mut marks: Vec<(i64, i32)>) -> (i32, i32) {
    marks.sort();
    let (mut now, mut peak) = (0, 0);
    for (_, d) in &marks {
        now += d;
        peak = peak.max(now);
    }
    (now, peak)
}
