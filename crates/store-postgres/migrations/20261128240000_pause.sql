-- Pause / resume (docs/FLOW_CONTROL.md).
--
-- A paused task keeps its state and counters; its steps carry `paused` so
-- the ready index leaves them out: the claim's scan never sees them and
-- unpaused work pays nothing (no join, no extra row read). `ready_at` keeps
-- its meaning (and any retry backoff), so resuming is a flag flip.
ALTER TABLE tasks ADD COLUMN paused_at timestamptz;
ALTER TABLE steps ADD COLUMN paused boolean NOT NULL DEFAULT false;
DROP INDEX steps_ready_idx;
CREATE INDEX steps_ready_idx ON steps (ready_at, id) WHERE ready_at IS NOT NULL AND NOT paused;
