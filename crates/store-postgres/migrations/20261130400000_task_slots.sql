-- Per-template `max_running_tasks` (docs/FLOW_CONTROL.md).
--
-- A task of a limited template carries its template's slot key
-- (`namespace/name`, shared by all versions) and its version's limit; each
-- of its steps carries the key too, so the claim knows from the step row
-- alone whether to look at the task. `task_slots.running` counts the tasks
-- of a key that are `in_progress`; the trigger below keeps it exact on
-- every status change of a task, whatever statement makes it (the claim
-- that starts a task, settle, cancel, retry, restart).
--
-- The claim (flow.rs, `GATE_SQL`) locks the task rows of its candidates
-- that have a slot key and the slot rows of the pending ones
-- (`FOR NO KEY UPDATE SKIP LOCKED`: it never waits), so it reads the
-- latest status and count. A candidate of a task that has not started
-- is taken while `running + its task's rank <= limit`; the others are
-- parked (`flow_wait = 'task_slot'`), with the ready steps of every other
-- pending task of the template, and leave the ready index. A task that
-- leaves `in_progress` gives its slot back and unparks the parked steps of
-- the oldest waiting tasks, as many tasks as there is room for.
ALTER TABLE tasks ADD COLUMN slot_key text;
ALTER TABLE tasks ADD COLUMN slot_limit integer;
ALTER TABLE steps ADD COLUMN slot_key text;

CREATE TABLE task_slots (
    key text PRIMARY KEY,
    running integer NOT NULL DEFAULT 0
);

-- The pending tasks of a template, for the claim that finds it full and
-- parks their ready steps at once.
CREATE INDEX tasks_slot_pending_idx ON tasks (slot_key, id)
    WHERE status = 'pending' AND slot_key IS NOT NULL;
-- The parked steps of a template by task, oldest task first, for the
-- release.
CREATE INDEX steps_slot_parked_idx ON steps (slot_key, task_id)
    WHERE parked AND flow_wait = 'task_slot' AND ready_at IS NOT NULL;

CREATE FUNCTION tasker_task_slot() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    left_running integer;
    room integer;
    woken integer;
BEGIN
    IF NEW.status = 'in_progress' THEN
        UPDATE task_slots SET running = running + 1 WHERE key = NEW.slot_key;
        RETURN NULL;
    END IF;
    UPDATE task_slots SET running = GREATEST(running - 1, 0) WHERE key = NEW.slot_key
        RETURNING running INTO left_running;
    room := COALESCE(NEW.slot_limit, 1) - COALESCE(left_running, 0);
    IF room <= 0 THEN
        RETURN NULL;
    END IF;
    WITH u AS (
        UPDATE steps s SET parked = false, flow_wait = NULL, updated_at = NEW.updated_at
        WHERE s.id = ANY (ARRAY(
            SELECT x.id FROM steps x
            WHERE x.slot_key = NEW.slot_key AND x.parked AND x.flow_wait = 'task_slot'
              AND x.ready_at IS NOT NULL
              AND x.task_id = ANY (ARRAY(
                  SELECT DISTINCT y.task_id FROM steps y
                  WHERE y.slot_key = NEW.slot_key AND y.parked AND y.flow_wait = 'task_slot'
                    AND y.ready_at IS NOT NULL AND NOT y.paused
                  ORDER BY y.task_id LIMIT room))
            FOR NO KEY UPDATE SKIP LOCKED))
        RETURNING 1)
    SELECT count(*) INTO woken FROM u;
    IF woken > 0 THEN
        -- Any payload but an instance id: every process (this one too)
        -- wakes its claimer.
        PERFORM pg_notify('tasker_work', 'task_slot');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER tasks_slot_count AFTER UPDATE OF status ON tasks FOR EACH ROW
    WHEN (NEW.slot_key IS NOT NULL
          AND (OLD.status = 'in_progress') IS DISTINCT FROM (NEW.status = 'in_progress'))
    EXECUTE FUNCTION tasker_task_slot();
