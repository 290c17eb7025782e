-- Lifecycle events written by the status triggers themselves (issue 12's
-- cost bar, docs/PERFORMANCE.md "Event outbox cost").
--
-- Until now a trigger on each transition table derived the event from the
-- transition row: a second, nested trigger program per row, which read the
-- step and task back by id and parsed the transition's JSON metadata again.
-- The status triggers that write the transitions already hold the step or
-- task row (NEW / OLD), so they now write the event right after its
-- transition, in the same order and with the same payload (docs/EVENTS.md):
-- the outbox's cost in steps/s fell from about 31 % to 12–17 % (measured in
-- PERFORMANCE.md, "Events written beside their transitions"). Pause and
-- resume, whose transition rows are written by the store, write their
-- events in the same transaction (src/pause.rs).

DROP TRIGGER task_transitions_events;
DROP TRIGGER step_transitions_events;
DROP TRIGGER tasks_created;
DROP TRIGGER tasks_status_changed;
DROP TRIGGER steps_status_changed;

CREATE TRIGGER tasks_created AFTER INSERT ON tasks
BEGIN
    INSERT INTO task_transitions (task_id, from_state, to_state, created_at, metadata)
    VALUES (NEW.id, NULL, NEW.status, NEW.created_at, '{}');
    INSERT INTO events (type, task_id, step_id, namespace, created_at, payload)
    VALUES ('task.created', NEW.id, NULL, NEW.namespace, NEW.created_at,
            json_object('name', NEW.name, 'version', NEW.version, 'to', NEW.status,
                        'correlation_id', NEW.correlation_id, 'initiator', NEW.initiator,
                        'source_system', NEW.source_system, 'steps_total', NEW.steps_total));
END;

CREATE TRIGGER tasks_status_changed AFTER UPDATE OF status ON tasks
WHEN OLD.status <> NEW.status
BEGIN
    INSERT INTO task_transitions (task_id, from_state, to_state, created_at, metadata)
    SELECT NEW.id, 'pending', 'in_progress', NEW.updated_at, '{}'
    WHERE OLD.status = 'pending' AND NEW.status = 'complete'
    UNION ALL
    SELECT NEW.id,
           CASE WHEN OLD.status = 'pending' AND NEW.status = 'complete'
                THEN 'in_progress' ELSE OLD.status END,
           NEW.status, NEW.updated_at,
           json_object('steps_remaining', NEW.steps_remaining, 'steps_blocked', NEW.steps_blocked);

    INSERT INTO events (type, task_id, step_id, namespace, created_at, payload)
    SELECT e.type, NEW.id, NULL, NEW.namespace, NEW.updated_at,
           json_object('name', NEW.name, 'version', NEW.version,
                       'from', OLD.status, 'to', NEW.status)
    FROM (SELECT CASE NEW.status
                   WHEN 'in_progress' THEN 'task.started'
                   WHEN 'complete' THEN 'task.completed'
                   WHEN 'error' THEN 'task.failed'
                   WHEN 'cancelled' THEN 'task.cancelled'
                   WHEN 'resolved_manually' THEN 'task.resolved'
                   WHEN 'pending' THEN 'task.retry_requested'
                 END AS type) e
    WHERE e.type IS NOT NULL AND NOT (OLD.status = 'pending' AND NEW.status = 'complete');
END;

CREATE TRIGGER steps_status_changed AFTER UPDATE OF status ON steps
WHEN OLD.status <> NEW.status
BEGIN
    -- 1. History. A failed attempt that will be retried goes
    --    in_progress → error → pending: two rows. Metadata: the attempt, the
    --    worker that held the lease, and for errors the error record and kind.
    INSERT INTO step_transitions (step_id, task_id, from_state, to_state, created_at, metadata)
    SELECT NEW.id, NEW.task_id, 'in_progress', 'error', NEW.updated_at,
           json_patch(json_object('attempt', NEW.attempts),
                      json_object('worker', OLD.lease_owner,
                                  'kind', NEW.last_error ->> 'kind',
                                  'error', json(NEW.last_error)))
    WHERE OLD.status = 'in_progress' AND NEW.status = 'pending'
    UNION ALL
    SELECT NEW.id, NEW.task_id,
           CASE WHEN OLD.status = 'in_progress' AND NEW.status = 'pending'
                THEN 'error' ELSE OLD.status END,
           NEW.status, NEW.updated_at,
           -- json_patch drops the NULL members.
           json_patch(json_object('attempt', NEW.attempts), json_object(
               'worker', CASE WHEN NEW.status = 'in_progress' THEN NEW.lease_owner
                              WHEN OLD.status = 'in_progress' AND NEW.status <> 'pending'
                              THEN OLD.lease_owner END,
               'kind', CASE WHEN NEW.status = 'error' THEN NEW.last_error ->> 'kind' END,
               'error', CASE WHEN NEW.status = 'error' THEN json(NEW.last_error) END,
               'retry_at', CASE WHEN OLD.status = 'in_progress' AND NEW.status = 'pending'
                                THEN NEW.ready_at END));

    -- 1b. The events of those rows (docs/EVENTS.md), in the same order. A
    --     payload names only the members its type has (readers drop nulls).
    --     A failed attempt that will be retried writes two events, in
    --     `steps_retry_events` below.
    INSERT INTO events (type, task_id, step_id, namespace, created_at, payload)
    SELECT e.type, NEW.task_id, NEW.id, t.namespace, NEW.updated_at,
           CASE e.type
             WHEN 'step.started' THEN
               json_object('step_name', NEW.name, 'attempt', NEW.attempts, 'worker', e.worker)
             WHEN 'step.completed' THEN
               json_object('step_name', NEW.name, 'attempt', NEW.attempts, 'worker', e.worker,
                           'duration_ms', (NEW.updated_at - NEW.last_attempted_at) / 1000.0,
                           'results', json(NEW.results))
             WHEN 'step.resolved_manually' THEN
               json_object('step_name', NEW.name, 'attempt', NEW.attempts, 'worker', e.worker,
                           'results', json(NEW.results))
             WHEN 'step.retry_scheduled' THEN
               json_object('step_name', NEW.name, 'attempt', NEW.attempts,
                           'next_attempt_at', NEW.ready_at, 'max_attempts', NEW.max_attempts)
             WHEN 'step.cancelled' THEN
               json_object('step_name', NEW.name, 'attempt', NEW.attempts, 'worker', e.worker)
             ELSE -- step.failed, step.lease_expired (terminal: no retry)
               json_object('step_name', NEW.name, 'attempt', NEW.attempts, 'worker', e.worker,
                           'error', json(NEW.last_error), 'will_retry', json('false'),
                           'max_attempts', NEW.max_attempts)
           END
    FROM tasks t, (
        SELECT CASE
                 WHEN NEW.status = 'in_progress' THEN 'step.started'
                 WHEN NEW.status = 'complete' THEN 'step.completed'
                 WHEN NEW.status = 'error' AND NEW.last_error ->> 'kind' = 'lease_expired'
                      THEN 'step.lease_expired'
                 WHEN NEW.status = 'error' THEN 'step.failed'
                 WHEN OLD.status = 'error' AND NEW.status = 'pending' THEN 'step.retry_scheduled'
                 WHEN NEW.status = 'cancelled' THEN 'step.cancelled'
                 WHEN NEW.status = 'resolved_manually' THEN 'step.resolved_manually'
               END AS type,
               CASE WHEN NEW.status = 'in_progress' THEN NEW.lease_owner
                    WHEN OLD.status = 'in_progress' THEN OLD.lease_owner END AS worker) e
    WHERE NOT (OLD.status = 'in_progress' AND NEW.status = 'pending')
      AND t.id = NEW.task_id AND e.type IS NOT NULL;

    -- 2. A step that became done unblocks its children: one parent fewer, and
    --    ready now when it was the last. (Two parents finishing in one
    --    statement fire this twice: the count drops by two.)
    UPDATE steps SET
        remaining_parents = remaining_parents - 1,
        ready_at = CASE WHEN remaining_parents = 1 AND status = 'pending'
                        THEN NEW.updated_at ELSE ready_at END,
        updated_at = NEW.updated_at
    WHERE NEW.status IN ('complete', 'resolved_manually')
      AND OLD.status NOT IN ('complete', 'resolved_manually')
      AND id IN (SELECT child_id FROM step_edges WHERE parent_id = NEW.id);

    -- 3. The task's counters (remaining: not done; live: running or ready /
    --    scheduled; blocked: error or cancelled). Skipped when nothing changes
    --    (a claim moves a live step to another live state).
    UPDATE tasks SET
        steps_remaining = steps_remaining
            + (NEW.status NOT IN ('complete', 'resolved_manually'))
            - (OLD.status NOT IN ('complete', 'resolved_manually')),
        steps_live = steps_live
            + (NEW.status = 'in_progress' OR NEW.ready_at IS NOT NULL)
            - (OLD.status = 'in_progress' OR OLD.ready_at IS NOT NULL),
        steps_blocked = steps_blocked
            + (NEW.status IN ('error', 'cancelled'))
            - (OLD.status IN ('error', 'cancelled')),
        updated_at = NEW.updated_at
    WHERE id = NEW.task_id
      AND ((NEW.status NOT IN ('complete', 'resolved_manually'))
              <> (OLD.status NOT IN ('complete', 'resolved_manually'))
           OR (NEW.status = 'in_progress' OR NEW.ready_at IS NOT NULL)
              <> (OLD.status = 'in_progress' OR OLD.ready_at IS NOT NULL)
           OR (NEW.status IN ('error', 'cancelled')) <> (OLD.status IN ('error', 'cancelled')));

    -- 4. A task starts with its first claim. (`+status`: find the task by id,
    --    never through the status index.)
    UPDATE tasks SET status = 'in_progress', updated_at = NEW.updated_at
    WHERE NEW.status = 'in_progress' AND id = NEW.task_id AND +status = 'pending';
END;

-- The two rarer changes that write two events each, in their own triggers,
-- so the triggers every status change runs hold one event INSERT each.
-- (Chosen for that shape; its cost against one trigger holding both INSERTs
-- was not told apart from this machine's noise.)

-- A task whose steps were all resolved by hand before any claim:
-- pending → in_progress → complete.
CREATE TRIGGER tasks_completed_unstarted_events AFTER UPDATE OF status ON tasks
WHEN OLD.status = 'pending' AND NEW.status = 'complete'
BEGIN
    INSERT INTO events (type, task_id, step_id, namespace, created_at, payload)
    SELECT e.type, NEW.id, NULL, NEW.namespace, NEW.updated_at,
           json_object('name', NEW.name, 'version', NEW.version, 'from', e.f, 'to', e.t)
    FROM (SELECT 1 AS ord, 'task.started' AS type, 'pending' AS f, 'in_progress' AS t
          UNION ALL
          SELECT 2, 'task.completed', 'in_progress', 'complete') e
    ORDER BY e.ord;
END;

-- A failed attempt that will be retried: failed (or lease_expired), then
-- retry_scheduled. The task's status cannot change with it (the step stays
-- live and unfinished), so no task event falls between.
CREATE TRIGGER steps_retry_events AFTER UPDATE OF status ON steps
WHEN OLD.status = 'in_progress' AND NEW.status = 'pending'
BEGIN
    INSERT INTO events (type, task_id, step_id, namespace, created_at, payload)
    SELECT e.type, NEW.task_id, NEW.id, t.namespace, NEW.updated_at,
           CASE WHEN e.type = 'step.retry_scheduled' THEN
               json_object('step_name', NEW.name, 'attempt', NEW.attempts,
                           'next_attempt_at', NEW.ready_at, 'max_attempts', NEW.max_attempts)
           ELSE
               json_object('step_name', NEW.name, 'attempt', NEW.attempts,
                           'worker', OLD.lease_owner, 'error', json(NEW.last_error),
                           'will_retry', json('true'), 'next_attempt_at', NEW.ready_at,
                           'max_attempts', NEW.max_attempts)
           END
    FROM tasks t, (
        SELECT 1 AS ord, CASE WHEN NEW.last_error ->> 'kind' = 'lease_expired'
                              THEN 'step.lease_expired' ELSE 'step.failed' END AS type
        UNION ALL
        SELECT 2, 'step.retry_scheduled') e
    WHERE t.id = NEW.task_id
    ORDER BY e.ord;
END;
