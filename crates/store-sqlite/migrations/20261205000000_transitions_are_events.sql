-- Each state change is written once: its event row is its transition
-- (issue 12's cost bar, docs/PERFORMANCE.md "One row per change").
--
-- Until now every status change wrote two rows, an event and a transition,
-- each with its own table b-tree (and the transition its index by task or
-- step). Replaying the writer's statements of the throughput benchmark
-- (bench/outbox_replay.py) put most of what events cost in that second row,
-- not in the payload or the namespace lookup. So the status triggers now
-- write one row into `events` that carries the transition too
-- (`from_state`, `to_state`, `metadata`), and a task's or step's history is
-- read from there (src/tasks.rs, src/steps.rs). The transition tables keep
-- the rows written before this migration and get no new ones; readers read
-- them first (they are older), then `events`.
--
-- What changes for the outbox:
-- * A transition that has no event (a step's creation, a restart's reset
--   of a finished step) is a row with a NULL `type`; event readers skip
--   those.
-- * A step's row has no `namespace`: readers take its task's (saves a task
--   lookup per step change; a task's own rows and custom events keep it).
-- * Rows that are transitions stay as long as their task (history
--   retention deletes them with it), so the event pruner cannot delete them:
--   it raises `events_floor` instead, below which nothing is an event any
--   more (readers start above it), and deletes the rows that are only
--   events (custom events, and every row written before this migration)
--   through `events_untracked_idx`. A task pruned while its rows are still
--   above the floor leaves them as plain events, which age out the same way.
-- * The `--events false` benchmark turns the `(1 /* lifecycle events */)`
--   switches below into 0: the same rows, without type and payload.

DROP TRIGGER tasks_created;
DROP TRIGGER steps_created;
DROP TRIGGER tasks_status_changed;
DROP TRIGGER tasks_completed_unstarted;
DROP TRIGGER steps_status_changed;
DROP TRIGGER steps_retried;
DROP INDEX events_task_unlinked_idx;

-- `namespace`, `type` and `payload` become nullable: a table rebuild (the
-- ids are kept, so consumers' cursors still hold).
CREATE TABLE events_new (
    id         INTEGER PRIMARY KEY,
    type       TEXT,
    task_id    BLOB    NOT NULL,
    step_id    BLOB,
    namespace  TEXT,
    created_at INTEGER NOT NULL,
    payload    TEXT,
    from_state TEXT,
    to_state   TEXT,
    metadata   TEXT
);
INSERT INTO events_new (id, type, task_id, step_id, namespace, created_at, payload)
SELECT id, type, task_id, step_id, namespace, created_at, payload FROM events ORDER BY id;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;

-- A task's own rows, and a step's: history and events per entity. Each row
-- is in exactly one of the two, as each transition was in one transition
-- index before.
CREATE INDEX events_task_idx ON events (task_id, id) WHERE step_id IS NULL;
CREATE INDEX events_step_idx ON events (step_id, id) WHERE step_id IS NOT NULL;
-- Rows that are only events, for the pruner (no status change writes one).
CREATE INDEX events_untracked_idx ON events (id) WHERE to_state IS NULL;

-- Events with ids up to `floor` are pruned: gone from the feed, kept as
-- history while their task is.
CREATE TABLE events_floor (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    floor INTEGER NOT NULL
);
INSERT INTO events_floor (id, floor) VALUES (1, 0);

CREATE TRIGGER tasks_created AFTER INSERT ON tasks
BEGIN
    INSERT INTO events (type, task_id, namespace, created_at, payload, to_state, metadata)
    SELECT e.type, NEW.id, NEW.namespace, NEW.created_at,
           CASE WHEN e.type IS NOT NULL THEN
             json_object('name', NEW.name, 'version', NEW.version, 'to', NEW.status,
                         'correlation_id', NEW.correlation_id, 'initiator', NEW.initiator,
                         'source_system', NEW.source_system, 'steps_total', NEW.steps_total)
           END,
           NEW.status, '{}'
    FROM (SELECT CASE WHEN (1 /* lifecycle events */) THEN 'task.created' END AS type) e;
END;

-- A step's first transition has no event (there is no step.created).
CREATE TRIGGER steps_created AFTER INSERT ON steps
BEGIN
    INSERT INTO events (task_id, step_id, created_at, to_state, metadata)
    VALUES (NEW.task_id, NEW.id, NEW.created_at, NEW.status, '{}');
END;

-- One status change, one row. (pending → complete has two: below.)
CREATE TRIGGER tasks_status_changed AFTER UPDATE OF status ON tasks
WHEN OLD.status <> NEW.status AND NOT (OLD.status = 'pending' AND NEW.status = 'complete')
BEGIN
    INSERT INTO events (type, task_id, namespace, created_at, payload, from_state, to_state, metadata)
    SELECT e.type, NEW.id, NEW.namespace, NEW.updated_at,
           CASE WHEN e.type IS NOT NULL THEN
             json_object('name', NEW.name, 'version', NEW.version,
                         'from', OLD.status, 'to', NEW.status)
           END,
           OLD.status, NEW.status,
           json_object('steps_remaining', NEW.steps_remaining, 'steps_blocked', NEW.steps_blocked)
    FROM (SELECT CASE WHEN (1 /* lifecycle events */) THEN
                   CASE NEW.status
                     WHEN 'in_progress' THEN 'task.started'
                     WHEN 'complete' THEN 'task.completed'
                     WHEN 'error' THEN 'task.failed'
                     WHEN 'cancelled' THEN 'task.cancelled'
                     WHEN 'resolved_manually' THEN 'task.resolved'
                     WHEN 'pending' THEN 'task.retry_requested'
                   END
                 END AS type) e;
END;

-- A task whose steps were all resolved by hand before any claim:
-- pending → in_progress → complete.
CREATE TRIGGER tasks_completed_unstarted AFTER UPDATE OF status ON tasks
WHEN OLD.status = 'pending' AND NEW.status = 'complete'
BEGIN
    INSERT INTO events (type, task_id, namespace, created_at, payload, from_state, to_state, metadata)
    SELECT e.type, NEW.id, NEW.namespace, NEW.updated_at,
           CASE WHEN e.type IS NOT NULL THEN
             json_object('name', NEW.name, 'version', NEW.version,
                         'from', 'pending', 'to', 'in_progress')
           END,
           'pending', 'in_progress', '{}'
    FROM (SELECT CASE WHEN (1 /* lifecycle events */) THEN 'task.started' END AS type) e;
    INSERT INTO events (type, task_id, namespace, created_at, payload, from_state, to_state, metadata)
    SELECT e.type, NEW.id, NEW.namespace, NEW.updated_at,
           CASE WHEN e.type IS NOT NULL THEN
             json_object('name', NEW.name, 'version', NEW.version,
                         'from', 'in_progress', 'to', 'complete')
           END,
           'in_progress', 'complete',
           json_object('steps_remaining', NEW.steps_remaining, 'steps_blocked', NEW.steps_blocked)
    FROM (SELECT CASE WHEN (1 /* lifecycle events */) THEN 'task.completed' END AS type) e;
END;

CREATE TRIGGER steps_status_changed AFTER UPDATE OF status ON steps
WHEN OLD.status <> NEW.status
BEGIN
    -- 1. The row of the change (docs/EVENTS.md), except a failed attempt
    --    that will be retried, which writes two (steps_retried below). A
    --    payload names only the members its type has (readers drop nulls).
    --    Transition metadata: the attempt, the worker that held the lease,
    --    and for errors the error record and kind (json_patch drops the
    --    NULL members).
    INSERT INTO events (type, task_id, step_id, created_at, payload, from_state, to_state, metadata)
    SELECT e.type, NEW.task_id, NEW.id, NEW.updated_at,
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
             ELSE -- step.failed, step.lease_expired (terminal: no retry); none
               CASE WHEN e.type IS NOT NULL THEN
                 json_object('step_name', NEW.name, 'attempt', NEW.attempts, 'worker', e.worker,
                             'error', json(NEW.last_error), 'will_retry', json('false'),
                             'max_attempts', NEW.max_attempts)
               END
           END,
           OLD.status, NEW.status,
           json_patch(json_object('attempt', NEW.attempts), json_object(
               'worker', e.worker,
               'kind', CASE WHEN NEW.status = 'error' THEN NEW.last_error ->> 'kind' END,
               'error', CASE WHEN NEW.status = 'error' THEN json(NEW.last_error) END))
    FROM (
        SELECT CASE WHEN (1 /* lifecycle events */) THEN
                 CASE
                   WHEN NEW.status = 'in_progress' THEN 'step.started'
                   WHEN NEW.status = 'complete' THEN 'step.completed'
                   WHEN NEW.status = 'error' AND NEW.last_error ->> 'kind' = 'lease_expired'
                        THEN 'step.lease_expired'
                   WHEN NEW.status = 'error' THEN 'step.failed'
                   WHEN OLD.status = 'error' AND NEW.status = 'pending' THEN 'step.retry_scheduled'
                   WHEN NEW.status = 'cancelled' THEN 'step.cancelled'
                   WHEN NEW.status = 'resolved_manually' THEN 'step.resolved_manually'
                 END
               END AS type,
               CASE WHEN NEW.status = 'in_progress' THEN NEW.lease_owner
                    WHEN OLD.status = 'in_progress' THEN OLD.lease_owner END AS worker) e
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
-- retry_scheduled. The task's status cannot change with it (the step stays
-- live and unfinished), so no task row falls between.
CREATE TRIGGER steps_retried AFTER UPDATE OF status ON steps
WHEN OLD.status = 'in_progress' AND NEW.status = 'pending'
BEGIN
    INSERT INTO events (type, task_id, step_id, created_at, payload, from_state, to_state, metadata)
    SELECT e.type, NEW.task_id, NEW.id, NEW.updated_at,
           CASE WHEN e.type IS NOT NULL THEN
             json_object('step_name', NEW.name, 'attempt', NEW.attempts,
                         'worker', OLD.lease_owner, 'error', json(NEW.last_error),
                         'will_retry', json('true'), 'next_attempt_at', NEW.ready_at,
                         'max_attempts', NEW.max_attempts)
           END,
           'in_progress', 'error',
           json_patch(json_object('attempt', NEW.attempts),
                      json_object('worker', OLD.lease_owner,
                                  'kind', NEW.last_error ->> 'kind',
                                  'error', json(NEW.last_error)))
    FROM (SELECT CASE WHEN (1 /* lifecycle events */) THEN
                   CASE WHEN NEW.last_error ->> 'kind' = 'lease_expired'
                        THEN 'step.lease_expired' ELSE 'step.failed' END
                 END AS type) e;
    INSERT INTO events (type, task_id, step_id, created_at, payload, from_state, to_state, metadata)
    SELECT e.type, NEW.task_id, NEW.id, NEW.updated_at,
           CASE WHEN e.type IS NOT NULL THEN
             json_object('step_name', NEW.name, 'attempt', NEW.attempts,
                         'next_attempt_at', NEW.ready_at, 'max_attempts', NEW.max_attempts)
           END,
           'error', 'pending',
           json_patch(json_object('attempt', NEW.attempts), json_object('retry_at', NEW.ready_at))
    FROM (SELECT CASE WHEN (1 /* lifecycle events */) THEN 'step.retry_scheduled' END AS type) e;
END;
