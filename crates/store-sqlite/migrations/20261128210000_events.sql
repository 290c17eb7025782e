-- Lifecycle events (issue 12, docs/EVENTS.md): an outbox written by
-- triggers on the transition tables, so every transition's event is in the
-- same transaction as the transition (a rollback takes both, a commit keeps
-- both) and no code path can forget one.
--
-- `id` is the rowid: max + 1 on insert. SQLite has one writer at a time,
-- so ids ascend in commit order. (Not AUTOINCREMENT: its bookkeeping row is
-- one more write per event. Instead the pruner never deletes the newest
-- row, so an id is never handed out twice; see src/events_outbox.rs.)
--
-- Payloads carry times as INTEGER microseconds (`next_attempt_at`); the
-- store turns them into RFC 3339 when reading (tasker_store::outbox).

CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    type       TEXT    NOT NULL,
    task_id    BLOB    NOT NULL,
    step_id    BLOB,
    namespace  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    payload    TEXT    NOT NULL
);

-- A task's events (`GET /tasker/tasks/{id}/events`, `task_id=` filters).
CREATE INDEX events_task_idx ON events (task_id, id);

-- Payloads are flat objects; members that do not apply are NULL here and
-- dropped when read (both backends read through the same normaliser).

-- Task transitions → task.* events. The first row of a task (NULL →
-- pending) is `task.created`; the finaliser's rows map by target state.
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
               'steps_total', CASE WHEN e.type = 'task.created' THEN t.steps_total END)
    FROM tasks t,
         (SELECT CASE
                   WHEN NEW.from_state IS NULL THEN 'task.created'
                   WHEN NEW.to_state = 'in_progress' THEN 'task.started'
                   WHEN NEW.to_state = 'complete' THEN 'task.completed'
                   WHEN NEW.to_state = 'error' THEN 'task.failed'
                   WHEN NEW.to_state = 'cancelled' THEN 'task.cancelled'
                   WHEN NEW.to_state = 'resolved_manually' THEN 'task.resolved'
                   WHEN NEW.to_state = 'pending' THEN 'task.retry_requested'
                 END AS type) e
    WHERE t.id = NEW.task_id AND e.type IS NOT NULL;
END;

-- Step transitions → step.* events (the first row of a step, NULL →
-- pending, has none: `task.created` covers it). The step row is read after
-- the change (the AFTER UPDATE trigger on steps writes these rows), so a
-- failed attempt knows whether it will be retried and when.
CREATE TRIGGER step_transitions_events AFTER INSERT ON step_transitions
WHEN NEW.from_state IS NOT NULL
BEGIN
    INSERT INTO events (type, task_id, step_id, namespace, created_at, payload)
    SELECT e.type, NEW.task_id, NEW.step_id, t.namespace, NEW.created_at,
           json_object(
               'step_name', s.name,
               'attempt', json_extract(NEW.metadata, '$.attempt'),
               'worker', json_extract(NEW.metadata, '$.worker'),
               'duration_ms', CASE WHEN e.type = 'step.completed'
                                   THEN (NEW.created_at - s.last_attempted_at) / 1000.0 END,
               'results', CASE WHEN e.type IN ('step.completed', 'step.resolved_manually')
                               THEN json(s.results) END,
               'error', CASE WHEN e.type IN ('step.failed', 'step.lease_expired')
                             THEN json(s.last_error) END,
               'will_retry', CASE WHEN e.type IN ('step.failed', 'step.lease_expired')
                                  THEN json(CASE WHEN s.status = 'pending' THEN 'true' ELSE 'false' END) END,
               'next_attempt_at', CASE WHEN e.type IN ('step.failed', 'step.lease_expired',
                                                       'step.retry_scheduled')
                                            AND s.status = 'pending' THEN s.ready_at END,
               'max_attempts', CASE WHEN e.type IN ('step.failed', 'step.lease_expired',
                                                    'step.retry_scheduled')
                                    THEN s.max_attempts END)
    FROM steps s, tasks t,
         (SELECT CASE
                   WHEN NEW.to_state = 'in_progress' THEN 'step.started'
                   WHEN NEW.to_state = 'complete' THEN 'step.completed'
                   WHEN NEW.to_state = 'error'
                        AND json_extract(NEW.metadata, '$.kind') = 'lease_expired'
                        THEN 'step.lease_expired'
                   WHEN NEW.to_state = 'error' THEN 'step.failed'
                   WHEN NEW.from_state = 'error' AND NEW.to_state = 'pending'
                        THEN 'step.retry_scheduled'
                   WHEN NEW.to_state = 'cancelled' THEN 'step.cancelled'
                   WHEN NEW.to_state = 'resolved_manually' THEN 'step.resolved_manually'
                 END AS type) e
    WHERE s.id = NEW.step_id AND t.id = NEW.task_id AND e.type IS NOT NULL;
END;
