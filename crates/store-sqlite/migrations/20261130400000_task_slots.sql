-- Per-template `max_running_tasks` (docs/FLOW_CONTROL.md).
--
-- A task of a limited template carries its template's slot key
-- (`namespace/name`, shared by all versions) and its version's limit; each
-- of its steps carries the key too (and is `gated`), so the claim knows from
-- the step row whether to look at the task. One writer at a time: inside
-- its write transaction the claim counts the template's `in_progress`
-- tasks (`tasks_slot_running_idx`) and reads the candidates' task status.
-- A candidate of a task that has not started is taken while `running +
-- its task's rank <= limit`; the others are parked (`flow_wait =
-- 'task_slot'`) with the ready steps of every other pending task of the
-- template, and leave the ready index.
ALTER TABLE tasks ADD COLUMN slot_key TEXT;
ALTER TABLE tasks ADD COLUMN slot_limit INTEGER;
ALTER TABLE steps ADD COLUMN slot_key TEXT;

CREATE INDEX tasks_slot_running_idx ON tasks (slot_key)
    WHERE status = 'in_progress' AND slot_key IS NOT NULL;
CREATE INDEX tasks_slot_pending_idx ON tasks (slot_key, id)
    WHERE status = 'pending' AND slot_key IS NOT NULL;
CREATE INDEX steps_slot_parked_idx ON steps (slot_key, task_id)
    WHERE parked = 1 AND flow_wait = 'task_slot' AND ready_at IS NOT NULL;

-- A task that leaves `in_progress` (complete, error, cancelled), whatever
-- statement moved it, gives its slot back: the parked steps of the oldest
-- waiting tasks of its template, as many tasks as there is room for,
-- become claimable again.
CREATE TRIGGER tasks_slot_release AFTER UPDATE OF status ON tasks
WHEN OLD.slot_key IS NOT NULL AND OLD.status = 'in_progress' AND NEW.status <> 'in_progress'
BEGIN
    UPDATE steps SET parked = 0, flow_wait = NULL, updated_at = NEW.updated_at
    WHERE slot_key = OLD.slot_key AND parked = 1 AND flow_wait = 'task_slot'
      AND ready_at IS NOT NULL
      AND task_id IN (
          SELECT DISTINCT y.task_id FROM steps y
          WHERE y.slot_key = OLD.slot_key AND y.parked = 1 AND y.flow_wait = 'task_slot'
            AND y.ready_at IS NOT NULL AND y.paused = 0
          ORDER BY y.task_id
          LIMIT max(OLD.slot_limit - (SELECT count(*) FROM tasks r
                                      WHERE r.slot_key = OLD.slot_key
                                        AND r.status = 'in_progress'), 0));
END;
