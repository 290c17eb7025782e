//! Reading executed plans (`EXPLAIN (ANALYZE, BUFFERS)` text) in the
//! tests that prove a claim's cost does not grow with work it cannot take.

/// The claim's candidate scan (the `pre` CTE of an executed plan: its
/// nodes, numbers removed), the rows the scan of `steps_ready_idx`
/// returned, and the buffers it touched.
pub fn candidate_scan(plan: &str) -> (Vec<String>, u64, u64) {
    let pre: Vec<&str> = plan
        .lines()
        .skip_while(|l| l.trim() != "CTE pre")
        .take_while(|l| l.trim() == "CTE pre" || !l.starts_with("  CTE "))
        .collect();
    assert!(!pre.is_empty(), "no candidate scan:\n{plan}");
    let nodes = pre
        .iter()
        .filter(|l| l.trim_start().starts_with("->"))
        .map(|l| l.split(" (actual").next().unwrap_or(l).trim().to_string())
        .collect();
    let number = |line: &str, key: &str| -> u64 {
        line.split(key)
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {line}"))
    };
    let i = pre
        .iter()
        .position(|l| l.contains("steps_ready_idx"))
        .unwrap_or_else(|| panic!("no ready index scan:\n{plan}"));
    let rows = number(pre[i], "actual rows=");
    let buffers = pre[i..]
        .iter()
        .find(|l| l.contains("Buffers: shared hit="))
        .map_or(0, |l| number(l, "shared hit="));
    (nodes, rows, buffers)
}

/// Every scan of `table` in an executed plan returned at most `n` rows.
pub fn scans_at_most(plan: &str, table: &str, n: u64) {
    let on = format!(" on {table} ");
    for line in plan
        .lines()
        .filter(|l| l.contains(&on) && l.contains("actual rows="))
    {
        let rows: u64 = line
            .split("actual rows=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        assert!(rows <= n, "{line}\n{plan}");
    }
}

/// The claim's plan before a burst of held-back work: its candidate scan,
/// taken once by [`HeldBack::measure`] and compared by [`HeldBack::check`].
pub struct HeldBack {
    claim: tasker_store::ClaimParams,
    scan: Vec<String>,
    buffers: u64,
}

impl HeldBack {
    /// Measures `claim` (one ready step expected) before the burst.
    pub async fn measure(
        store: &tasker_store_postgres::PgStore,
        claim: tasker_store::ClaimParams,
    ) -> HeldBack {
        let plan = store.explain_claim_analyze(&claim).await.unwrap();
        let (scan, rows, buffers) = candidate_scan(&plan);
        assert_eq!(rows, 1, "{plan}");
        HeldBack {
            claim,
            scan,
            buffers,
        }
    }

    /// After the burst: `held` steps match `held_sql` (a count), and the
    /// claim of one new ready task (made here) scans what it scanned before
    /// (the held steps are not read; `tables` are vacuumed first, as
    /// autovacuum would after such a burst, and each is scanned for at most
    /// one row), then takes that task.
    pub async fn check(
        self,
        store: &tasker_store_postgres::PgStore,
        held_sql: &str,
        held: i64,
        tables: &[&str],
    ) {
        use tasker_store::Store;
        use tasker_store::conformance::factory::{Shape, new_task};
        let (count,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(held_sql.to_string()))
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(count, held, "{held_sql}");
        let other = new_task(Shape::Single, tasker_store::conformance::at(5));
        store.task_create(other.clone()).await.unwrap();
        for t in tables {
            sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {t}")))
                .execute(store.pool())
                .await
                .unwrap();
        }
        let plan = store.explain_claim_analyze(&self.claim).await.unwrap();
        let (scan, rows, buffers) = candidate_scan(&plan);
        assert_eq!(rows, 1, "the held steps are not read:\n{plan}");
        assert_eq!(self.scan, scan, "same candidate scan:\n{plan}");
        assert!(
            buffers <= self.buffers + 2,
            "{buffers} buffers read against {}:\n{plan}",
            self.buffers
        );
        for t in tables {
            scans_at_most(&plan, t, 1);
        }
        let got = store.step_claim(&self.claim).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].task_id, other.id);
    }
}
