-- No scratch b-tree per row in the triggers (docs/PERFORMANCE.md, "SQLite:
-- memory statistics and per-row scratch tables").
--
-- SQLite evaluates `x IN (a, b, c)` with three or more constants by
-- building a scratch b-tree of the list (an ephemeral table: its own pager
-- and page cache, opened and closed again), once per statement, but a
-- trigger's statements start afresh for every row that fires it. And a
-- multi-row UPDATE inside a trigger opens one to collect its rows before it
-- tests its WHERE, even when the WHERE cannot hold. Counted on the
-- throughput benchmark (a probe on SQLite's b-tree open): about nine such
-- opens per single-step task, 8 % of the run's CPU. Three sources, all
-- reworded here with the same meaning:
--
-- 1. The CHECK of `tasks.status`, a list of six, ran on every task status
--    change made by a trigger (a task's start, its finalisation). It is
--    rewritten as comparisons. A CHECK does not change how rows are stored,
--    so the table's stored definition is edited in place (SQLite's
--    documented procedure for such changes; every existing row already
--    satisfies the equivalent rule), instead of rebuilding the table.
-- 2. The predicate of `tasks_finished_idx`, a list of four, ran twice per
--    task status change (old row, new row). The index is rebuilt with the
--    equivalent `status NOT IN ('pending', 'in_progress')`: two constants
--    are compared directly. Retention's selection says the same
--    (src/retention.rs), so the index still serves it.
-- 3. The unblocking of a finished step's children, step 2 of
--    `steps_status_changed`, opened its scratch table on every status change
--    of every step (a claim included). It moves to its own trigger, whose
--    WHEN runs it only for a step that became done and has children. It is
--    a BEFORE trigger so that it runs before every AFTER trigger of the
--    same change, as it did as step 2: a child's readiness must reach the
--    task's counters before the finished step's own counter change, or a
--    task with a blocked branch would be finalised as failed in between.
--    It changes only other rows (the children, never the step being
--    updated).
--
-- `tests/scratch_tables.rs` reads the compiled triggers and fails on any
-- scratch table that runs for a row outside that unblocking.

-- 1.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
SET sql = replace(sql,
    'CHECK (status IN
                        (''pending'',''in_progress'',''complete'',''error'',''cancelled'',''resolved_manually''))',
    'CHECK (status = ''pending'' OR status = ''in_progress'' OR status = ''complete''
                        OR status = ''error'' OR status = ''cancelled'' OR status = ''resolved_manually'')')
WHERE type = 'table' AND name = 'tasks';
-- Back to read-only, and this connection reads the schema again.
PRAGMA writable_schema = RESET;
-- Stop here if the text was not found (a schema edited by hand).
CREATE TEMP TABLE tasker_check_rewritten (ok INTEGER NOT NULL CHECK (ok));
INSERT INTO tasker_check_rewritten
SELECT instr(sql, 'OR status = ''resolved_manually'')') > 0 FROM sqlite_schema
WHERE type = 'table' AND name = 'tasks';
DROP TABLE tasker_check_rewritten;

-- 2. (DDL also bumps the schema version: other connections read it again.)
DROP INDEX tasks_finished_idx;
CREATE INDEX tasks_finished_idx ON tasks (completed_at, id)
    WHERE status NOT IN ('pending', 'in_progress');

-- 3.
DROP TRIGGER steps_status_changed;

CREATE TRIGGER steps_unblock_children BEFORE UPDATE OF status ON steps
WHEN NEW.status IN ('complete', 'resolved_manually')
 AND OLD.status NOT IN ('complete', 'resolved_manually')
 AND EXISTS (SELECT 1 FROM step_edges WHERE parent_id = NEW.id)
BEGIN
    -- One parent fewer, and ready now when it was the last. (Two parents
    -- finishing in one statement fire this twice: the count drops by two.)
    UPDATE steps SET
        remaining_parents = remaining_parents - 1,
        ready_at = CASE WHEN remaining_parents = 1 AND status = 'pending'
                        THEN NEW.updated_at ELSE ready_at END,
        updated_at = NEW.updated_at
    WHERE id IN (SELECT child_id FROM step_edges WHERE parent_id = NEW.id);
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

    -- 2. (A finished step's children were unblocked before this, by
    --    steps_unblock_children.)

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
