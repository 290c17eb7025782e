-- A task's events are found through its transitions (issue 12's cost bar,
-- docs/PERFORMANCE.md "Events found through their transitions").
--
-- The `events (task_id, id)` index was most of what the outbox cost the
-- writer: replaying the writer's statements for 30,000 single-step tasks,
-- 32 steps per transaction (bench/outbox_replay.py), events on took
-- 3.4–3.5 s of CPU, without that index 2.8 s, events off 2.6 s.
-- Every event the status triggers write has exactly one transition, and
-- the transition tables are indexed per task and per step already. So each
-- trigger now writes the event first and its transition with the event's
-- id (`event_id`, from `last_insert_rowid()`), and marks the event
-- `linked`. The index keeps only the events no transition points to:
-- custom events, pause and resume, and every event written before this
-- migration (`linked` is 0 for them), so nothing is lost to readers
-- (src/events_outbox.rs reads both ways).
--
-- A failed attempt that will be retried (in_progress → error → pending)
-- and a task whose steps were all resolved before any claim
-- (pending → in_progress → complete) write two transitions and two events;
-- each of those pairs is now written entirely by its own trigger, so event
-- and transition alternate there too.

ALTER TABLE events ADD COLUMN linked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE task_transitions ADD COLUMN event_id INTEGER;
ALTER TABLE step_transitions ADD COLUMN event_id INTEGER;

DROP INDEX events_task_idx;
CREATE INDEX events_task_unlinked_idx ON events (task_id, id) WHERE linked = 0;

DROP TRIGGER tasks_created;
DROP TRIGGER tasks_status_changed;
DROP TRIGGER steps_status_changed;
DROP TRIGGER tasks_completed_unstarted_events;
DROP TRIGGER steps_retry_events;

CREATE TRIGGER tasks_created AFTER INSERT ON tasks
BEGIN
    INSERT INTO events (type, task_id, step_id, namespace, created_at, payload, linked)
    VALUES ('task.created', NEW.id, NULL, NEW.namespace, NEW.created_at,
            json_object('name', NEW.name, 'version', NEW.version, 'to', NEW.status,
                        'correlation_id', NEW.correlation_id, 'initiator', NEW.initiator,
                        'source_system', NEW.source_system, 'steps_total', NEW.steps_total),
            1);
    INSERT INTO task_transitions (task_id, from_state, to_state, created_at, metadata, event_id)
    VALUES (NEW.id, NULL, NEW.status, NEW.created_at, '{}', last_insert_rowid());
END;

-- One status change, one event, one transition. (pending → complete has
-- two of each: tasks_completed_unstarted below.)
CREATE TRIGGER tasks_status_changed AFTER UPDATE OF status ON tasks
WHEN OLD.status <> NEW.status AND NOT (OLD.status = 'pending' AND NEW.status = 'complete')
BEGIN
    INSERT INTO events (type, task_id, step_id, namespace, created_at, payload, linked)
    SELECT e.type, NEW.id, NULL, NEW.namespace, NEW.updated_at,
           json_object('name', NEW.name, 'version', NEW.version,
                       'from', OLD.status, 'to', NEW.status),
           1
    FROM (SELECT CASE NEW.status
                   WHEN 'in_progress' THEN 'task.started'
                   WHEN 'complete' THEN 'task.completed'
                   WHEN 'error' THEN 'task.failed'
                   WHEN 'cancelled' THEN 'task.cancelled'
                   WHEN 'resolved_manually' THEN 'task.resolved'
                   WHEN 'pending' THEN 'task.retry_requested'
                 END AS type) e
    WHERE e.type IS NOT NULL;
    INSERT INTO task_transitions (task_id, from_state, to_state, created_at, metadata, event_id)
    VALUES (NEW.id, OLD.status, NEW.status, NEW.updated_at,
            json_object('steps_remaining', NEW.steps_remaining, 'steps_blocked', NEW.steps_blocked),
            last_insert_rowid());
END;

-- A task whose steps were all resolved by hand before any claim:
-- pending → in_progress → complete.
CREATE TRIGGER tasks_completed_unstarted AFTER UPDATE OF status ON tasks
WHEN OLD.status = 'pending' AND NEW.status = 'complete'
BEGIN
    INSERT INTO events (type, task_id, step_id, namespace, created_at, payload, linked)
    VALUES ('task.started', NEW.id, NULL, NEW.namespace, NEW.updated_at,
            json_object('name', NEW.name, 'version', NEW.version,
                        'from', 'pending', 'to', 'in_progress'),
            1);
    INSERT INTO task_transitions (task_id, from_state, to_state, created_at, metadata, event_id)
    VALUES (NEW.id, 'pending', 'in_progress', NEW.updated_at, '{}', last_insert_rowid());
    INSERT INTO events (type, task_id, step_id, namespace, created_at, payload, linked)
    VALUES ('task.completed', NEW.id, NULL, NEW.namespace, NEW.updated_at,
            json_object('name', NEW.name, 'version', NEW.version,
                        'from', 'in_progress', 'to', 'complete'),
            1);
    INSERT INTO task_transitions (task_id, from_state, to_state, created_at, metadata, event_id)
    VALUES (NEW.id, 'in_progress', 'complete', NEW.updated_at,
            json_object('steps_remaining', NEW.steps_remaining, 'steps_blocked', NEW.steps_blocked),
            last_insert_rowid());
END;

CREATE TRIGGER steps_status_changed AFTER UPDATE OF status ON steps
WHEN OLD.status <> NEW.status
BEGIN
    -- 1. The event and the transition of the change (docs/EVENTS.md),
    --    except a failed attempt that will be retried, which writes two of
    --    each (steps_retried below). A payload names only the members its
    --    type has (readers drop nulls). Transition metadata: the attempt,
    --    the worker that held the lease, and for errors the error record and
    --    kind.
    INSERT INTO events (type, task_id, step_id, namespace, created_at, payload, linked)
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
           END,
           1
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
    INSERT INTO step_transitions (step_id, task_id, from_state, to_state, created_at, metadata, event_id)
    SELECT NEW.id, NEW.task_id, OLD.status, NEW.status, NEW.updated_at,
           -- json_patch drops the NULL members.
           json_patch(json_object('attempt', NEW.attempts), json_object(
               'worker', CASE WHEN NEW.status = 'in_progress' THEN NEW.lease_owner
                              WHEN OLD.status = 'in_progress' THEN OLD.lease_owner END,
               'kind', CASE WHEN NEW.status = 'error' THEN NEW.last_error ->> 'kind' END,
               'error', CASE WHEN NEW.status = 'error' THEN json(NEW.last_error) END)),
           last_insert_rowid()
    WHERE NOT (OLD.status = 'in_progress' AND NEW.status = 'pending');

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

-- A failed attempt that will be retried: failed (or lease_expired), then
-- retry_scheduled, each event followed by its transition. The task's status
-- cannot change with it (the step stays live and unfinished), so no task
-- event falls between.
CREATE TRIGGER steps_retried AFTER UPDATE OF status ON steps
WHEN OLD.status = 'in_progress' AND NEW.status = 'pending'
BEGIN
    INSERT INTO events (type, task_id, step_id, namespace, created_at, payload, linked)
    SELECT CASE WHEN NEW.last_error ->> 'kind' = 'lease_expired'
                THEN 'step.lease_expired' ELSE 'step.failed' END,
           NEW.task_id, NEW.id, t.namespace, NEW.updated_at,
           json_object('step_name', NEW.name, 'attempt', NEW.attempts,
                       'worker', OLD.lease_owner, 'error', json(NEW.last_error),
                       'will_retry', json('true'), 'next_attempt_at', NEW.ready_at,
                       'max_attempts', NEW.max_attempts),
           1
    FROM tasks t WHERE t.id = NEW.task_id;
    INSERT INTO step_transitions (step_id, task_id, from_state, to_state, created_at, metadata, event_id)
    VALUES (NEW.id, NEW.task_id, 'in_progress', 'error', NEW.updated_at,
            json_patch(json_object('attempt', NEW.attempts),
                       json_object('worker', OLD.lease_owner,
                                   'kind', NEW.last_error ->> 'kind',
                                   'error', json(NEW.last_error))),
            last_insert_rowid());
    INSERT INTO events (type, task_id, step_id, namespace, created_at, payload, linked)
    SELECT 'step.retry_scheduled', NEW.task_id, NEW.id, t.namespace, NEW.updated_at,
           json_object('step_name', NEW.name, 'attempt', NEW.attempts,
                       'next_attempt_at', NEW.ready_at, 'max_attempts', NEW.max_attempts),
           1
    FROM tasks t WHERE t.id = NEW.task_id;
    INSERT INTO step_transitions (step_id, task_id, from_state, to_state, created_at, metadata, event_id)
    VALUES (NEW.id, NEW.task_id, 'error', 'pending', NEW.updated_at,
            json_patch(json_object('attempt', NEW.attempts), json_object('retry_at', NEW.ready_at)),
            last_insert_rowid());
END;
