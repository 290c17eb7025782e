-- The task list's correlation-id filter (`GET /tasker/tasks?correlation_id=`,
-- the dashboard's search): an equality lookup instead of a scan of every task.
CREATE INDEX tasks_correlation_id ON tasks (correlation_id);
