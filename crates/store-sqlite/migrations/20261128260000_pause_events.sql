-- Pause and resume (docs/FLOW_CONTROL.md) write a task transition whose
-- state does not change (metadata `action`: `pause` | `resume`): they are
-- `task.paused` and `task.resumed` (with who asked), not a retry request
-- or a second start.

DROP TRIGGER task_transitions_events;

CREATE TRIGGER task_transitions_events AFTER INSERT ON task_transitions
BEGIN
    INSERT INTO events (type, task_id, step_id, namespace, created_at, payload)
    SELECT e.type, NEW.task_id, NULL, t.namespace, NEW.created_at,
           json_object(
               'name', t.name,
               'version', t.version,
               'from', NEW.from_state,
               'to', NEW.to_state,
               'correlation_id', CASE WHEN e.type = 'task.created' THEN t.correlation_id END,
               'initiator', CASE WHEN e.type = 'task.created' THEN t.initiator END,
               'source_system', CASE WHEN e.type = 'task.created' THEN t.source_system END,
               'steps_total', CASE WHEN e.type = 'task.created' THEN t.steps_total END,
               'by', CASE WHEN e.type IN ('task.paused', 'task.resumed')
                          THEN json_extract(NEW.metadata, '$.by') END)
    FROM tasks t,
         (SELECT CASE
                   WHEN NEW.from_state IS NULL THEN 'task.created'
                   WHEN json_extract(NEW.metadata, '$.action') = 'pause' THEN 'task.paused'
                   WHEN json_extract(NEW.metadata, '$.action') = 'resume' THEN 'task.resumed'
                   WHEN NEW.to_state = 'in_progress' THEN 'task.started'
                   WHEN NEW.to_state = 'complete' THEN 'task.completed'
                   WHEN NEW.to_state = 'error' THEN 'task.failed'
                   WHEN NEW.to_state = 'cancelled' THEN 'task.cancelled'
                   WHEN NEW.to_state = 'resolved_manually' THEN 'task.resolved'
                   WHEN NEW.to_state = 'pending' THEN 'task.retry_requested'
                 END AS type) e
    WHERE t.id = NEW.task_id AND e.type IS NOT NULL;
END;
