-- Concurrency keys and rate limits (docs/FLOW_CONTROL.md).
--
-- A step may carry a concurrency key (rendered when the task is created)
-- with its limit, and a rate-limit bucket with its refill rate and burst;
-- `gated` says it has either, and is part of the covering ready index so the
-- claim learns it without reading the row. One writer at a time: the claim
-- counts a key's running steps (`steps_running_key_idx`) and refills the
-- buckets in its own write transaction.
--
-- A ready step whose key is full is *parked*, with every other ready step of
-- its key: they leave the ready index, so later claims never scan them
-- again, and come back when a step of its key
-- leaves `in_progress` (trigger `steps_flow_release`, through
-- `steps_parked_idx`). A step that finds its bucket empty keeps its place in
-- the index with `ready_at` moved to when its token will be there.
-- `flow_wait` says which of the two a step is waiting for (reads show it).
ALTER TABLE steps ADD COLUMN concurrency_key TEXT;
ALTER TABLE steps ADD COLUMN concurrency_limit INTEGER;
ALTER TABLE steps ADD COLUMN rate_key TEXT;
ALTER TABLE steps ADD COLUMN rate_per_second REAL;
ALTER TABLE steps ADD COLUMN rate_burst REAL;
ALTER TABLE steps ADD COLUMN gated INTEGER NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN parked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN flow_wait TEXT;

CREATE TABLE rate_buckets (
    key TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    refreshed_at INTEGER NOT NULL
);

DROP INDEX steps_ready_idx;
-- `paused` and `parked` are columns too (always 0 here), so that the index
-- covers every claim filter and the scan reads no table row.
CREATE INDEX steps_ready_idx ON steps (ready_at, id, handler_kind, task_id, gated, paused, parked)
    WHERE ready_at IS NOT NULL AND paused = 0 AND parked = 0;
CREATE INDEX steps_running_key_idx ON steps (concurrency_key)
    WHERE status = 'in_progress' AND concurrency_key IS NOT NULL;
CREATE INDEX steps_parked_idx ON steps (concurrency_key, ready_at, id)
    WHERE parked = 1 AND ready_at IS NOT NULL;
-- The ready steps of a key, for the claim that finds the key full and parks
-- its whole backlog at once (so no later claim meets them in its batch).
CREATE INDEX steps_key_ready_idx ON steps (concurrency_key)
    WHERE concurrency_key IS NOT NULL AND ready_at IS NOT NULL AND parked = 0;

-- A step of a key that stops running (or leaves pending without running:
-- cancelled, resolved) frees room: the oldest parked steps of its key, as
-- many as there is room for, become claimable again.
CREATE TRIGGER steps_flow_release AFTER UPDATE OF status ON steps
WHEN OLD.concurrency_key IS NOT NULL AND OLD.status <> NEW.status AND NEW.status <> 'in_progress'
BEGIN
    UPDATE steps SET parked = 0, flow_wait = NULL
    WHERE id IN (
        SELECT p.id FROM steps p
        WHERE p.concurrency_key = OLD.concurrency_key AND p.parked = 1 AND p.ready_at IS NOT NULL
        ORDER BY p.ready_at, p.id
        LIMIT max(OLD.concurrency_limit - (SELECT count(*) FROM steps r
                                           WHERE r.concurrency_key = OLD.concurrency_key
                                             AND r.status = 'in_progress'), 0));
END;
