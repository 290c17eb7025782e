-- History at scale (docs/STORAGE.md, "History, retention and maintenance").

-- A task's edges in one range scan (step list; retention deletes by task).
CREATE INDEX step_edges_task_idx ON step_edges (task_id);

-- Keyset pagination on the default sort: (created_at, id) is the list's
-- ORDER BY, so a page after a cursor is one index range scan at any depth.
CREATE INDEX tasks_created_id_idx ON tasks (created_at, id);
DROP INDEX IF EXISTS tasks_created_idx;

-- Retention: finished tasks by completion time (only finished ones are in it).
CREATE INDEX tasks_finished_idx ON tasks (completed_at, id)
    WHERE status IN ('complete', 'cancelled', 'error', 'resolved_manually');
