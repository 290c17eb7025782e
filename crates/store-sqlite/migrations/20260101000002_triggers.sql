-- Derived data the schema keeps itself (docs/STORAGE.md, Invariants).
--
-- Every status change of a step or task appends its transition rows, a step
-- that becomes done unblocks its children, and a task's counters follow its
-- steps, all inside the statement that made the change: no code path can
-- forget one, and a batch of N steps costs one statement instead of several
-- per step.
--
-- Times come from the rows: a writer sets `updated_at = now` with every
-- change, and the triggers stamp what follows with it.
--
-- Order inside `steps_status_changed` matters: children are unblocked before
-- the task's counters drop, so a task is never seen with nothing live while
-- a child it is about to run is still blocked (which would end it in error).

-- ---- history -----------------------------------------------------------------

CREATE TRIGGER tasks_created AFTER INSERT ON tasks
BEGIN
    INSERT INTO task_transitions (task_id, from_state, to_state, created_at, metadata)
    VALUES (NEW.id, NULL, NEW.status, NEW.created_at, '{}');
END;

CREATE TRIGGER steps_created AFTER INSERT ON steps
BEGIN
    INSERT INTO step_transitions (step_id, task_id, from_state, to_state, created_at, metadata)
    VALUES (NEW.id, NEW.task_id, NULL, NEW.status, NEW.created_at, '{}');
END;

-- The table has no pending → complete (a task whose steps were all resolved
-- by hand before any claim): it is written as pending → in_progress → complete.
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
END;

-- ---- steps -------------------------------------------------------------------

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

-- A step whose status stays but whose readiness changes (its last parent
-- finished) is live from now on.
CREATE TRIGGER steps_readiness_changed AFTER UPDATE OF ready_at ON steps
WHEN OLD.status = NEW.status AND (OLD.ready_at IS NULL) <> (NEW.ready_at IS NULL)
BEGIN
    UPDATE tasks SET
        steps_live = steps_live + (NEW.ready_at IS NOT NULL) - (OLD.ready_at IS NOT NULL),
        updated_at = NEW.updated_at
    WHERE id = NEW.task_id;
END;

-- ---- tasks -------------------------------------------------------------------

-- The finaliser (docs/STORAGE.md, Finish), applied whenever counters move:
-- - running (pending / in_progress): every step done → complete; nothing can
--   move and something is blocked → error;
-- - error: every step done (the last blockers resolved by hand) →
--   resolved_manually; work can move again (an operator retried or resolved a
--   step) → pending.
-- Final states get `completed_at`; going back to pending clears it.
CREATE TRIGGER tasks_settle AFTER UPDATE OF steps_remaining, steps_live, steps_blocked ON tasks
WHEN (NEW.status IN ('pending', 'in_progress')
      AND (NEW.steps_remaining = 0 OR (NEW.steps_live = 0 AND NEW.steps_blocked > 0)))
  OR (NEW.status = 'error' AND (NEW.steps_remaining = 0 OR NEW.steps_live > 0))
BEGIN
    UPDATE tasks SET
        status = CASE
            WHEN NEW.status <> 'error' AND NEW.steps_remaining = 0 THEN 'complete'
            WHEN NEW.status <> 'error' THEN 'error'
            WHEN NEW.steps_remaining = 0 THEN 'resolved_manually'
            ELSE 'pending' END,
        completed_at = CASE WHEN NEW.status = 'error' AND NEW.steps_remaining > 0
                            THEN NULL ELSE NEW.updated_at END
    WHERE id = NEW.id;
END;
