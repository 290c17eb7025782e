//! Tasks: create (one or many), reads, listing, counts, update, cancel, retry.

use crate::SqliteStore;
use crate::codec::{hex, json_text, micros, task_cols, task_row, transition_row, truncate};
use crate::effects::Events;
use crate::error::DbResultExt;
use crate::write_tx::WriteTx;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{Row, SqliteConnection, SqlitePool};
use std::collections::{BTreeMap, HashMap};
use tasker_core::{InvalidTransition, StepCounts, TaskState};
use tasker_store::{
    CountMode, CursorKey, NewTask, Page, StoreError, StoreResult, StoreStats, TaskQuery, TaskRow,
    TaskSort, TaskUpdate, TransitionRow,
};
use uuid::Uuid;

/// Tasks per set of INSERT statements in a bulk create: bounds the size of
/// the JSON parameters, not the number of statements that matter.
const CREATE_CHUNK: usize = 500;

pub(crate) async fn create(store: &SqliteStore, task: NewTask) -> StoreResult<TaskRow> {
    let row = new_task_row(&task);
    create_many(store, vec![task]).await?;
    Ok(row)
}

/// What [`create`] returns without reading the row back: the row as inserted.
pub(crate) fn new_task_row(t: &NewTask) -> TaskRow {
    let now = truncate(t.now);
    TaskRow {
        id: t.id,
        namespace: t.namespace.clone(),
        name: t.name.clone(),
        version: t.version.clone(),
        status: TaskState::Pending,
        context: t.context.clone(),
        initiator: t.initiator.clone(),
        source_system: t.source_system.clone(),
        reason: t.reason.clone(),
        tags: t.tags.clone(),
        correlation_id: t.correlation_id.clone(),
        identity_hash: t.identity.as_ref().map(|i| i.hash.clone()),
        steps_total: t.steps.len() as i64,
        steps_remaining: t.steps.len() as i64,
        created_at: now,
        updated_at: now,
        completed_at: None,
        paused_at: None,
    }
}

/// Rejects shapes the schema cannot hold (caller bugs: the template parser
/// already validates names and cycles).
fn validate(t: &NewTask) -> StoreResult<()> {
    if t.steps.is_empty() {
        return Err(StoreError::Conflict(format!("task {} has no steps", t.id)));
    }
    for (i, s) in t.steps.iter().enumerate() {
        if let Some(p) = s.parents.iter().find(|&&p| p >= t.steps.len() || p == i) {
            return Err(StoreError::Conflict(format!(
                "step `{}` of task {}: invalid parent index {p}",
                s.name, t.id
            )));
        }
    }
    Ok(())
}

pub(crate) async fn create_many(
    store: &SqliteStore,
    tasks: Vec<NewTask>,
) -> StoreResult<Vec<Uuid>> {
    if tasks.is_empty() {
        return Ok(Vec::new());
    }
    // Without identities to check, a batch of one chunk is created in two
    // hops ([`BEGIN_CREATE`]); otherwise statement by statement.
    let roots = if tasks.len() <= CREATE_CHUNK && tasks.iter().all(|t| t.identity.is_none()) {
        create_in_two_hops(store, &tasks).await?
    } else {
        let mut tx = store.begin().await?;
        let roots = create_in(&mut tx, &tasks).await?;
        tx.commit().await.db()?;
        roots
    };
    store.emit(Events {
        work_available: roots > 0,
        ..Default::default()
    });
    Ok(tasks.iter().map(|t| t.id).collect())
}

/// [`create_in`] for tasks without identities, in one transaction of its
/// own sent as two hops: [`BEGIN_CREATE`], then what it read decides
/// whether the new steps start paused, the task slots are written (only
/// for templates that have them), and the `COMMIT`.
async fn create_in_two_hops(store: &SqliteStore, tasks: &[NewTask]) -> StoreResult<usize> {
    for t in tasks {
        validate(t)?;
    }
    let rows = rows(tasks);
    let query = sqlx::query(BEGIN_CREATE)
        .bind(rows.tasks)
        .bind(rows.steps)
        .bind(rows.edges);
    let (mut tx, statements) = WriteTx::begin_with_all(store, query).await?;
    let rest = async {
        // Statements: the BEGIN, three inserts, the pauses.
        let mut pauses = Vec::new();
        for r in statements.get(4).map(Vec::as_slice).unwrap_or_default() {
            pauses.push((r.try_get(0).db()?, r.try_get(1).db()?));
        }
        crate::flow_pause::pause_held(tx.conn(), tasks, &pauses).await?;
        crate::flow::create_slots(tx.conn(), tasks).await
    }
    .await;
    if let Err(e) = rest {
        return tx.abort(e).await;
    }
    tx.commit_with(sqlx::query("COMMIT")).await?;
    Ok(rows.roots)
}

/// Checks and inserts tasks inside the caller's write transaction (a
/// schedule's tick creates its task with its tick); returns how many root
/// steps became ready.
pub(crate) async fn create_in(
    conn: &mut SqliteConnection,
    tasks: &[NewTask],
) -> StoreResult<usize> {
    for t in tasks {
        validate(t)?;
    }
    check_identities(conn, tasks).await?;
    let mut roots = 0usize;
    for chunk in tasks.chunks(CREATE_CHUNK) {
        roots += insert_chunk(conn, chunk).await?;
    }
    crate::flow::create_slots(conn, tasks).await?;
    crate::flow_pause::pause_new(conn, tasks).await?;
    Ok(roots)
}

/// Duplicate detection. The writer lock is held, so check-then-insert is
/// atomic; tasks earlier in the same batch count too.
async fn check_identities(conn: &mut SqliteConnection, tasks: &[NewTask]) -> StoreResult<()> {
    let mut batch: HashMap<&str, (Uuid, DateTime<Utc>)> = HashMap::new();
    for t in tasks {
        let Some(identity) = &t.identity else {
            continue;
        };
        if let Some((existing, created)) = batch.get(identity.hash.as_str())
            && *created >= identity.since
        {
            return Err(StoreError::DuplicateTask {
                existing: *existing,
            });
        }
        let existing: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM tasks WHERE identity_hash = ?1 AND created_at >= ?2
             ORDER BY created_at LIMIT 1",
        )
        .bind(&identity.hash)
        .bind(micros(identity.since))
        .fetch_optional(&mut *conn)
        .await
        .db()?;
        if let Some(existing) = existing {
            return Err(StoreError::DuplicateTask { existing });
        }
        batch.insert(identity.hash.as_str(), (t.id, t.now));
    }
    Ok(())
}

/// The rows of a chunk of new tasks, as the JSON lists the inserts read.
struct Rows {
    tasks: String,
    steps: String,
    edges: String,
    has_edges: bool,
    /// Root steps (ready now).
    roots: usize,
}

/// The insert of tasks from the JSON list `$rows`; `$tail` ends its
/// `SELECT` (a condition naming every parameter of a query of several
/// statements, or nothing).
macro_rules! insert_tasks {
    ($rows:literal, $tail:literal) => {
        concat!(
            "INSERT INTO tasks (id, namespace, name, version, status, context, initiator, source_system,
                            reason, tags, correlation_id, identity_hash, steps_total, steps_remaining,
                            steps_live, steps_blocked, created_at, updated_at)
         SELECT unhex(value->>0), value->>1, value->>2, value->>3, 'pending', value->4, value->>5,
                value->>6, value->>7, value->8, value->>9, value->>10, value->>11, value->>11,
                value->>12, 0, value->>13, value->>13
         FROM jsonb_each(", $rows, ")", $tail
        )
    };
}

/// The insert of steps from the JSON list `$rows` (see [`insert_tasks`]).
macro_rules! insert_steps {
    ($rows:literal, $tail:literal) => {
        concat!(
            "INSERT INTO steps (id, task_id, name, position, description, dependent_system, handler_kind,
                            handler_config, inputs, status, attempts, max_attempts, retry_limit,
                            retryable, skippable, timeout_seconds, remaining_parents, ready_at,
                            created_at, updated_at, concurrency_key, concurrency_limit, rate_key,
                            rate_per_second, rate_burst, gated)
         SELECT unhex(value->>0), unhex(value->>1), value->>2, value->>3, value->>4, value->>5,
                value->>6, value->7, value->8, 'pending', 0, value->>9, value->>10, value->>11,
                value->>12, value->>13, value->>14, value->>15, value->>16, value->>16,
                value->>17, value->>18, value->>19, value->>20, value->>21, value->>22
         FROM jsonb_each(", $rows, ")", $tail
        )
    };
}

/// The insert of edges from the JSON list `$rows` (see [`insert_tasks`]).
macro_rules! insert_edges {
    ($rows:literal, $tail:literal) => {
        concat!(
            "INSERT INTO step_edges (parent_id, child_id, task_id)
             SELECT unhex(value->>0), unhex(value->>1), unhex(value->>2) FROM jsonb_each(",
            $rows,
            ")",
            $tail
        )
    };
}

const INSERT_TASKS: &str = insert_tasks!("?1", "");
const INSERT_STEPS: &str = insert_steps!("?1", "");
const INSERT_EDGES: &str = insert_edges!("?1", "");

/// A creation's `BEGIN IMMEDIATE`, its three inserts (?1 tasks, ?2 steps,
/// ?3 edges) and the read of the pauses ([`crate::flow_pause::PAUSES_SQL`])
/// in one hop to SQLite's thread ([`WriteTx::begin_with_all`]): with its
/// `COMMIT`, two hops where the statements one by one took six (measured:
/// docs/PERFORMANCE.md, "SQLite: a creation in two hops"). Each statement
/// names every parameter: sqlx's SQLite driver binds a query of several
/// statements statement by statement (`work::names_all!`).
pub(crate) const BEGIN_CREATE: &str = concat!(
    "BEGIN IMMEDIATE; ",
    insert_tasks!("?1", " WHERE coalesce(?1, ?2, ?3, 0) IS NOT NULL"),
    "; ",
    insert_steps!("?2", " WHERE coalesce(?1, ?2, ?3, 0) IS NOT NULL"),
    "; ",
    insert_edges!("?3", " WHERE coalesce(?1, ?2, ?3, 0) IS NOT NULL"),
    "; SELECT namespace, name FROM flow_pauses WHERE coalesce(?1, ?2, ?3, 0) IS NOT NULL"
);

/// The rows of `tasks` for the inserts.
fn rows(tasks: &[NewTask]) -> Rows {
    let mut task_rows = Vec::with_capacity(tasks.len());
    let mut step_rows = Vec::new();
    let mut edge_rows = Vec::new();
    let mut roots_total = 0;
    for t in tasks {
        let task_hex = hex(&t.id).to_string();
        let now = micros(t.now);
        let mut roots = 0i64;
        for (pos, s) in t.steps.iter().enumerate() {
            let mut parents = s.parents.clone();
            parents.sort_unstable();
            parents.dedup();
            if parents.is_empty() {
                roots += 1;
            }
            for &p in &parents {
                edge_rows.push(json!([
                    hex(&t.steps[p].id).to_string(),
                    hex(&s.id).to_string(),
                    task_hex
                ]));
            }
            step_rows.push(json!([
                hex(&s.id).to_string(),
                task_hex,
                s.name,
                pos,
                s.description,
                s.dependent_system,
                s.handler.kind,
                s.handler.config,
                s.inputs,
                s.max_attempts,
                s.retry_limit,
                s.retryable,
                s.skippable,
                s.timeout_seconds,
                parents.len(),
                if parents.is_empty() { Some(now) } else { None },
                now,
                s.flow.concurrency.as_ref().map(|c| &c.key),
                s.flow.concurrency.as_ref().map(|c| c.limit),
                s.flow.rate.as_ref().map(|r| &r.key),
                s.flow.rate.as_ref().map(|r| r.per_second),
                s.flow.rate.as_ref().map(|r| r.burst),
                !s.flow.is_none()
            ]));
        }
        roots_total += roots as usize;
        task_rows.push(json!([
            task_hex,
            t.namespace,
            t.name,
            t.version,
            t.context,
            t.initiator,
            t.source_system,
            t.reason,
            t.tags,
            t.correlation_id,
            t.identity.as_ref().map(|i| &i.hash),
            t.steps.len(),
            roots,
            now
        ]));
    }

    Rows {
        has_edges: !edge_rows.is_empty(),
        tasks: Value::Array(task_rows).to_string(),
        steps: Value::Array(step_rows).to_string(),
        edges: Value::Array(edge_rows).to_string(),
        roots: roots_total,
    }
}

/// Inserts tasks, steps and edges in three statements (the triggers add the
/// first transitions). Returns the number of root steps (ready now).
async fn insert_chunk(conn: &mut SqliteConnection, tasks: &[NewTask]) -> StoreResult<usize> {
    let rows = rows(tasks);
    sqlx::query(INSERT_TASKS)
        .bind(rows.tasks)
        .execute(&mut *conn)
        .await
        .db()?;
    sqlx::query(INSERT_STEPS)
        .bind(rows.steps)
        .execute(&mut *conn)
        .await
        .db()?;
    if rows.has_edges {
        sqlx::query(INSERT_EDGES)
            .bind(rows.edges)
            .execute(&mut *conn)
            .await
            .db()?;
    }
    // The tasks' first transitions (`→ pending`, with `task.created`) are
    // written by the insert trigger; a step's creation is none.
    Ok(rows.roots)
}

/// Reads a task (inside a transaction or from a pool).
pub(crate) async fn get_in<'e, E>(conn: E, id: Uuid) -> StoreResult<TaskRow>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let row = sqlx::query(concat!(
        "SELECT ",
        task_cols!(),
        " FROM tasks WHERE id = ?1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
    .db()?;
    match row {
        Some(r) => task_row(&r),
        None => Err(StoreError::NotFound { entity: "task", id }),
    }
}

pub(crate) async fn get(pool: &SqlitePool, id: Uuid) -> StoreResult<TaskRow> {
    get_in(pool, id).await
}

/// The status of a task, for checks inside a write transaction.
pub(crate) async fn status_in(conn: &mut SqliteConnection, id: Uuid) -> StoreResult<TaskState> {
    crate::effects::task_status(conn, id)
        .await?
        .ok_or(StoreError::NotFound { entity: "task", id })
}

/// Whether a task exists (to tell "no rows" from "no such task").
pub(crate) async fn task_exists(pool: &SqlitePool, id: Uuid) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM tasks WHERE id = ?1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .db()?;
    Ok(found.is_some())
}

/// Whether a step exists.
pub(crate) async fn step_exists(pool: &SqlitePool, id: Uuid) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM steps WHERE id = ?1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .db()?;
    Ok(found.is_some())
}

/// One bound value of a dynamically built listing query.
enum Arg {
    Text(String),
    Int(i64),
    Id(Uuid),
    Real(f64),
}

pub(crate) async fn list(pool: &SqlitePool, q: &TaskQuery) -> StoreResult<Page<TaskRow>> {
    q.check_cursor()?;
    // Only fixed fragments go into the SQL text; every user value is bound.
    let mut filter = String::from(" WHERE 1 = 1");
    let mut args = Vec::new();
    if let Some(s) = q.status {
        filter.push_str(" AND status = ?");
        args.push(Arg::Text(s.as_str().to_string()));
    }
    if let Some(ns) = &q.namespace {
        filter.push_str(" AND namespace = ?");
        args.push(Arg::Text(ns.clone()));
    }
    if let Some(n) = &q.name {
        filter.push_str(" AND name = ?");
        args.push(Arg::Text(n.clone()));
    }
    if let Some(v) = &q.version {
        filter.push_str(" AND version = ?");
        args.push(Arg::Text(v.clone()));
    }
    if let Some(t) = q.created_since {
        filter.push_str(" AND created_at >= ?");
        args.push(Arg::Int(micros(t)));
    }
    if let Some(t) = q.created_until {
        filter.push_str(" AND created_at < ?");
        args.push(Arg::Int(micros(t)));
    }
    // Equality over the index `tasks_correlation_id`.
    if let Some(c) = &q.correlation_id {
        filter.push_str(" AND correlation_id = ?");
        args.push(Arg::Text(c.clone()));
    }
    // Each tag scans that task's own (small) tag array: the cost follows the
    // rows the other filters leave, as SQLite has no index into JSON arrays.
    for tag in &q.tags {
        filter.push_str(" AND EXISTS (SELECT 1 FROM json_each(tasks.tags) WHERE value = ?)");
        args.push(Arg::Text(tag.clone()));
    }
    if let Some(a) = &q.annotation {
        annotation_filter(a, &mut filter, &mut args)?;
    }
    let column = match q.sort {
        TaskSort::CreatedAt => "created_at",
        TaskSort::UpdatedAt => "updated_at",
        TaskSort::Status => "status",
        TaskSort::Name => "name",
        TaskSort::Namespace => "namespace",
    };
    let dir = if q.descending { "DESC" } else { "ASC" };

    // SQLite has no row estimate: `Estimated` omits the count, so a page
    // costs the same at any table size unless an exact count is asked for.
    let total = if q.count == CountMode::Exact {
        let count_sql = format!("SELECT COUNT(*) FROM tasks{filter}");
        let mut count = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql));
        for a in &args {
            count = match a {
                Arg::Text(s) => count.bind(s.clone()),
                Arg::Int(i) => count.bind(*i),
                Arg::Id(i) => count.bind(*i),
                Arg::Real(f) => count.bind(*f),
            };
        }
        Some(count.fetch_one(pool).await.db()?)
    } else {
        None
    };
    if let Some(after) = &q.after {
        // A row-value comparison on (sort key, id): an index range scan that
        // starts at the cursor, whatever the depth of the page.
        let op = if q.descending { "<" } else { ">" };
        filter.push_str(&format!(" AND ({column}, id) {op} (?, ?)"));
        args.push(match &after.key {
            CursorKey::Time(t) => Arg::Int(micros(*t)),
            CursorKey::Text(t) => Arg::Text(t.clone()),
        });
        args.push(Arg::Id(after.id));
    }

    // LIMIT -1 is SQLite's "no limit"; a zero page size means "everything".
    let page_sql = format!(
        concat!(
            "SELECT ",
            task_cols!(),
            " FROM tasks{} ORDER BY {} {}, id {} LIMIT ? + 0 OFFSET ? + 0"
        ),
        filter, column, dir, dir
    );
    let mut page = sqlx::query(sqlx::AssertSqlSafe(page_sql));
    for a in args {
        page = match a {
            Arg::Text(s) => page.bind(s),
            Arg::Int(i) => page.bind(i),
            Arg::Id(i) => page.bind(i),
            Arg::Real(f) => page.bind(f),
        };
    }
    let limit = if q.limit == 0 { -1 } else { i64::from(q.limit) };
    let rows = page
        .bind(limit)
        .bind(i64::from(q.offset))
        .fetch_all(pool)
        .await
        .db()?;
    let items = rows.iter().map(task_row).collect::<StoreResult<Vec<_>>>()?;
    Ok(Page {
        items,
        total,
        total_exact: total.is_some(),
    })
}

/// `id IN (annotations of that type whose content matches)`: the
/// `annotations (type, task_id)` index finds the candidates, and each key of
/// `contains` is compared on those rows only. The key is a validated name
/// (letters, digits, `_`, `-`, `.`) and the path is bound, never spliced;
/// the JSON type is compared too, so `1` never matches `true` or `"1"`.
fn annotation_filter(
    a: &tasker_store::AnnotationFilter,
    filter: &mut String,
    args: &mut Vec<Arg>,
) -> StoreResult<()> {
    filter.push_str(" AND id IN (SELECT task_id FROM annotations WHERE type = ?");
    args.push(Arg::Text(a.annotation_type.clone()));
    for (key, value) in &a.contains {
        if !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(tasker_store::StoreError::InvalidData(format!(
                "annotation key {key:?} is not a name"
            )));
        }
        let path = format!("$.\"{key}\"");
        let (types, arg) = match value {
            Value::String(t) => ("('text')", Arg::Text(t.clone())),
            Value::Bool(b) => (
                if *b { "('true')" } else { "('false')" },
                Arg::Int(i64::from(*b)),
            ),
            Value::Number(n) => (
                "('integer', 'real')",
                match n.as_i64() {
                    Some(i) => Arg::Int(i),
                    None => Arg::Real(n.as_f64().unwrap_or(f64::NAN)),
                },
            ),
            _ => {
                return Err(tasker_store::StoreError::InvalidData(format!(
                    "annotation value of {key:?} is not a string, number or boolean"
                )));
            }
        };
        filter.push_str(&format!(
            " AND json_type(content, ?) IN {types} AND json_extract(content, ?) = ?"
        ));
        args.push(Arg::Text(path.clone()));
        args.push(Arg::Text(path));
        args.push(arg);
    }
    filter.push(')');
    Ok(())
}

pub(crate) async fn step_counts(
    pool: &SqlitePool,
    id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<StepCounts> {
    let r = sqlx::query(
        "SELECT COUNT(*),
                COALESCE(SUM(status = 'pending'), 0),
                COALESCE(SUM(status = 'pending' AND ready_at <= ?2), 0),
                COALESCE(SUM(status = 'pending' AND ready_at > ?2), 0),
                COALESCE(SUM(status = 'pending' AND attempts > 0), 0),
                COALESCE(SUM(status = 'in_progress'), 0),
                COALESCE(SUM(status IN ('complete', 'resolved_manually')), 0),
                COALESCE(SUM(status = 'error'), 0),
                COALESCE(SUM(status = 'cancelled'), 0)
         FROM steps WHERE task_id = ?1",
    )
    .bind(id)
    .bind(micros(now))
    .fetch_one(pool)
    .await
    .db()?;
    let n = |i: usize| -> StoreResult<u64> { Ok(r.try_get::<i64, _>(i).db()?.max(0) as u64) };
    let counts = StepCounts {
        total: n(0)?,
        pending: n(1)?,
        ready: n(2)?,
        scheduled: n(3)?,
        retrying: n(4)?,
        in_progress: n(5)?,
        done: n(6)?,
        failed: n(7)?,
        cancelled: n(8)?,
    };
    if counts.total == 0 && !task_exists(pool, id).await? {
        return Err(StoreError::NotFound { entity: "task", id });
    }
    Ok(counts)
}

pub(crate) async fn update(
    store: &SqliteStore,
    id: Uuid,
    update: TaskUpdate,
    now: DateTime<Utc>,
) -> StoreResult<TaskRow> {
    let tags = update.tags.map(|t| json_text(&json!(t)));
    let row = sqlx::query(concat!(
        "UPDATE tasks SET reason = COALESCE(?2, reason), tags = COALESCE(?3, tags), updated_at = ?4
         WHERE id = ?1 RETURNING ",
        task_cols!()
    ))
    .bind(id)
    .bind(update.reason)
    .bind(tags)
    .bind(micros(now))
    .fetch_optional(&store.writer)
    .await
    .db()?;
    match row {
        Some(r) => task_row(&r),
        None => Err(StoreError::NotFound { entity: "task", id }),
    }
}

pub(crate) async fn cancel(
    store: &SqliteStore,
    id: Uuid,
    now: DateTime<Utc>,
    by: Option<&str>,
) -> StoreResult<TaskRow> {
    let mut tx = store.begin().await?;
    let marks = crate::attribution::Marks::take(&mut tx, by).await?;
    let status = status_in(&mut tx, id).await?;
    status.check_transition(TaskState::Cancelled)?;
    // The task first: once it is cancelled, the finaliser leaves it alone
    // while its steps are cancelled (and its counters move) below.
    sqlx::query(
        // A cancelled task is no longer paused: nothing of it can resume.
        "UPDATE tasks SET status = 'cancelled', completed_at = ?2, updated_at = ?2, paused_at = NULL
         WHERE id = ?1",
    )
    .bind(id)
    .bind(micros(now))
    .execute(&mut *tx)
    .await
    .db()?;
    sqlx::query(
        "UPDATE steps SET status = 'cancelled', ready_at = NULL, lease_owner = NULL,
                lease_token = NULL, lease_expires_at = NULL, completed_at = ?2, updated_at = ?2
         WHERE task_id = ?1 AND status IN ('pending', 'in_progress')",
    )
    .bind(id)
    .bind(micros(now))
    .execute(&mut *tx)
    .await
    .db()?;
    let row = get_in(&mut *tx, id).await?;
    if let Some(m) = marks {
        m.stamp(&mut tx).await?;
    }
    tx.commit().await.db()?;
    store.emit(Events {
        changed: [id].into(),
        finished: vec![id],
        ..Default::default()
    });
    Ok(row)
}

pub(crate) async fn retry(
    store: &SqliteStore,
    id: Uuid,
    now: DateTime<Utc>,
    by: Option<&str>,
) -> StoreResult<TaskRow> {
    let mut tx = store.begin().await?;
    let marks = crate::attribution::Marks::take(&mut tx, by).await?;
    let status = status_in(&mut tx, id).await?;
    if status != TaskState::Error {
        status.check_transition(TaskState::Pending)?;
        return Err(InvalidTransition {
            entity: "task",
            from: status.to_string(),
            to: TaskState::Pending.to_string(),
            reason: Some("only a task in `error` can be retried"),
        }
        .into());
    }
    // Each failed step gets a fresh budget; the triggers move the counters
    // and bring the task back to pending as soon as one is ready.
    let ready: Vec<bool> = sqlx::query_scalar(
        "UPDATE steps SET status = 'pending',
                max_attempts = attempts + MAX(retry_limit, 1),
                ready_at = CASE WHEN remaining_parents = 0 THEN ?2 ELSE NULL END,
                completed_at = NULL, updated_at = ?2
         WHERE task_id = ?1 AND status = 'error'
         RETURNING ready_at IS NOT NULL",
    )
    .bind(id)
    .bind(micros(now))
    .fetch_all(&mut *tx)
    .await
    .db()?;
    if ready.is_empty() {
        return Err(StoreError::Conflict(format!(
            "task {id} has no failed step to retry (cancelled steps stay cancelled)"
        )));
    }
    // Pending even if no retried step can run yet.
    sqlx::query(
        "UPDATE tasks SET status = 'pending', completed_at = NULL, updated_at = ?2
         WHERE id = ?1 AND status = 'error'",
    )
    .bind(id)
    .bind(micros(now))
    .execute(&mut *tx)
    .await
    .db()?;
    let row = get_in(&mut *tx, id).await?;
    if let Some(m) = marks {
        m.stamp(&mut tx).await?;
    }
    tx.commit().await.db()?;
    store.emit(Events {
        work_available: ready.contains(&true),
        changed: [id].into(),
        ..Default::default()
    });
    Ok(row)
}

/// A task's transitions: the rows of `task_transitions` (written before
/// migration `20261205000000_transitions_are_events.sql`, so older), then
/// its rows in `events` that are transitions.
pub(crate) async fn transitions(pool: &SqlitePool, id: Uuid) -> StoreResult<Vec<TransitionRow>> {
    let rows = sqlx::query(
        "SELECT id, task_id AS entity_id, from_state, to_state, created_at, metadata, 0 AS part
         FROM task_transitions WHERE task_id = ?1
         UNION ALL
         SELECT id, task_id, from_state, to_state, created_at, metadata, 1
         FROM events WHERE step_id IS NULL AND task_id = ?1 AND to_state IS NOT NULL
         ORDER BY part, id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .db()?;
    if rows.is_empty() && !task_exists(pool, id).await? {
        return Err(StoreError::NotFound { entity: "task", id });
    }
    rows.iter().map(transition_row).collect()
}

/// Counts over the tasks created at or after `since` (the `tasks_created_id_idx`
/// range, named: without statistics SQLite would rather scan all of
/// `tasks_status_created_idx` for the GROUP BY) and their steps (by
/// `steps_task_position_idx`).
pub(crate) async fn stats_since(
    pool: &SqlitePool,
    since: DateTime<Utc>,
) -> StoreResult<StoreStats> {
    let since = micros(since);
    let tasks =
        sqlx::query("SELECT status, COUNT(*) FROM tasks INDEXED BY tasks_created_id_idx WHERE created_at >= ?1 GROUP BY status")
            .bind(since)
            .fetch_all(pool)
            .await
            .db()?;
    let steps = sqlx::query(
        "SELECT s.status, COUNT(*) FROM tasks t INDEXED BY tasks_created_id_idx
         JOIN steps s ON s.task_id = t.id
         WHERE t.created_at >= ?1 GROUP BY s.status",
    )
    .bind(since)
    .fetch_all(pool)
    .await
    .db()?;
    let retrying: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM tasks t INDEXED BY tasks_created_id_idx
         JOIN steps s ON s.task_id = t.id
         WHERE t.created_at >= ?1 AND s.status = 'pending' AND s.attempts > 0",
    )
    .bind(since)
    .fetch_one(pool)
    .await
    .db()?;
    Ok(StoreStats {
        tasks_by_state: states_map(tasks)?,
        steps_by_state: states_map(steps)?,
        steps_retrying: retrying,
    })
}

/// Whether a task is pending or in progress (`tasks_status_created_idx`).
pub(crate) async fn has_open_tasks(pool: &SqlitePool) -> StoreResult<bool> {
    let open: i64 = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM tasks WHERE status IN ('pending', 'in_progress'))",
    )
    .fetch_one(pool)
    .await
    .db()?;
    Ok(open != 0)
}

/// `(status, count)` rows as a map listing every state (zero or not), so
/// pages show a stable set. Task and step states have the same names.
fn states_map(rows: Vec<sqlx::sqlite::SqliteRow>) -> StoreResult<BTreeMap<String, i64>> {
    let mut map: BTreeMap<String, i64> = TaskState::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), 0))
        .collect();
    for r in &rows {
        map.insert(r.try_get(0).db()?, r.try_get(1).db()?);
    }
    Ok(map)
}

pub(crate) async fn stats(pool: &SqlitePool) -> StoreResult<StoreStats> {
    let by_state = |rows: Vec<sqlx::sqlite::SqliteRow>| -> StoreResult<BTreeMap<String, i64>> {
        // Every state is listed, zero or not, so pages show a stable set.
        let mut map: BTreeMap<String, i64> = TaskState::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), 0))
            .collect();
        for r in &rows {
            map.insert(r.try_get(0).db()?, r.try_get(1).db()?);
        }
        Ok(map)
    };
    let tasks = sqlx::query("SELECT status, COUNT(*) FROM tasks GROUP BY status")
        .fetch_all(pool)
        .await
        .db()?;
    let steps = sqlx::query("SELECT status, COUNT(*) FROM steps GROUP BY status")
        .fetch_all(pool)
        .await
        .db()?;
    let retrying: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM steps WHERE status = 'pending' AND attempts > 0")
            .fetch_one(pool)
            .await
            .db()?;
    Ok(StoreStats {
        tasks_by_state: by_state(tasks)?,
        steps_by_state: by_state(steps)?,
        steps_retrying: retrying,
    })
}
