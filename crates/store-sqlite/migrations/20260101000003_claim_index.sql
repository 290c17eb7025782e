-- The claim scans the ready frontier in (ready_at, id) order and filters on
-- the handler kind (engines exclude `external` by default) and, for per-task
-- limits and namespaces, the task. With both in the index the scan never
-- reads a table row.
DROP INDEX steps_ready_idx;
CREATE INDEX steps_ready_idx ON steps (ready_at, id, handler_kind, task_id) WHERE ready_at IS NOT NULL;
