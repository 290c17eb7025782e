-- Pause and resume (docs/FLOW_CONTROL.md) write a task transition whose
-- state does not change (metadata `action`: `pause` | `resume`). Without
-- this, the outbox trigger would read `pending → pending` as
-- `task.retry_requested` and `in_progress → in_progress` as a second
-- `task.started`; they are `task.paused` and `task.resumed`, carrying who
-- asked (`by`).

CREATE OR REPLACE FUNCTION tasker_task_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (type, task_id, step_id, namespace, created_at, payload)
    SELECT e.type, n.task_id, NULL, t.namespace, n.created_at,
           jsonb_build_object(
               'name', t.name,
               'version', t.version,
               'from', n.from_state,
               'to', n.to_state,
               'correlation_id', CASE WHEN e.type = 'task.created' THEN t.correlation_id END,
               'initiator', CASE WHEN e.type = 'task.created' THEN t.initiator END,
               'source_system', CASE WHEN e.type = 'task.created' THEN t.source_system END,
               'steps_total', CASE WHEN e.type = 'task.created' THEN t.steps_total END,
               'by', CASE WHEN e.type IN ('task.paused', 'task.resumed') THEN n.metadata -> 'by' END)
    FROM new_rows n
    CROSS JOIN LATERAL (
        SELECT CASE
                 WHEN n.from_state IS NULL THEN 'task.created'
                 WHEN n.metadata ->> 'action' = 'pause' THEN 'task.paused'
                 WHEN n.metadata ->> 'action' = 'resume' THEN 'task.resumed'
                 WHEN n.to_state = 'in_progress' THEN 'task.started'
                 WHEN n.to_state = 'complete' THEN 'task.completed'
                 WHEN n.to_state = 'error' THEN 'task.failed'
                 WHEN n.to_state = 'cancelled' THEN 'task.cancelled'
                 WHEN n.to_state = 'resolved_manually' THEN 'task.resolved'
                 WHEN n.to_state = 'pending' THEN 'task.retry_requested'
               END AS type) e
    CROSS JOIN LATERAL (
        SELECT namespace, name, version, correlation_id, initiator, source_system, steps_total
        FROM tasks WHERE tasks.id = n.task_id OFFSET 0) t
    WHERE e.type IS NOT NULL
    ORDER BY n.id;
    RETURN NULL;
END $$;
