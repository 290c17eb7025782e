-- History at scale (docs/STORAGE.md, "History, retention and maintenance").

-- A task's edges in one range scan: the step list reads them once per task
-- (instead of a parents subquery per step), and retention deletes them by
-- task.
CREATE INDEX step_edges_task_idx ON step_edges (task_id);

-- Step transitions are deleted through their step (step_id cascades, and the
-- pruner deletes them by step id explicitly). The second foreign key, on
-- task_id, had no index: every deleted task made PostgreSQL scan the whole
-- table to enforce it. Dropping it keeps deletes O(task) and inserts cheaper.
ALTER TABLE step_transitions DROP CONSTRAINT IF EXISTS step_transitions_task_id_fkey;

-- Keyset pagination on the default sort: (created_at, id) is the list's
-- ORDER BY, so `(created_at, id) < ($1, $2) ORDER BY created_at DESC, id DESC
-- LIMIT n` is one index range scan at any depth.
CREATE INDEX tasks_created_id_idx ON tasks (created_at, id);
DROP INDEX IF EXISTS tasks_created_idx;

-- Retention: finished tasks by completion time (only finished ones are in it).
CREATE INDEX tasks_finished_idx ON tasks (completed_at, id)
    WHERE status IN ('complete', 'cancelled', 'error', 'resolved_manually');

-- Vacuum-friendliness of the churny tables. Every claim and finish updates
-- `steps` and `tasks` rows; with the defaults (vacuum at 20% dead rows) a
-- table of a million finished steps waits for 200,000 dead versions before a
-- vacuum, while the partial ready index fills with dead entries. Vacuum at
-- 1% (+1000 rows) and analyze at 2% instead. Task counter updates touch no
-- indexed column, so they can be HOT updates if the page has room: leave
-- 20% free in `tasks` pages and 10% in `steps` (whose status/ready_at/lease
-- changes touch partial-index columns and are never HOT, but stay on the
-- page, which keeps the heap compact).
ALTER TABLE tasks SET (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.05
);
ALTER TABLE steps SET (
    fillfactor = 90,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.05
);
-- Append-only history: vacuum after inserts so index-only scans and the
-- visibility map stay current.
ALTER TABLE task_transitions SET (autovacuum_vacuum_insert_scale_factor = 0.05);
ALTER TABLE step_transitions SET (autovacuum_vacuum_insert_scale_factor = 0.05);

