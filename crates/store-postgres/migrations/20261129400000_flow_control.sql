-- Concurrency keys and rate limits (docs/FLOW_CONTROL.md).
--
-- A step may carry a concurrency key (rendered when the task is created)
-- with its limit, and a rate-limit bucket with its refill rate and burst.
-- The claim statement enforces both: `flow_keys.running` counts the steps of
-- a key that hold a lease (locked by the claim that raises it and by every
-- release that lowers it), `rate_buckets` are token buckets refilled by time
-- arithmetic in the claim itself.
--
-- A ready step whose key is full is *parked*, with every other ready step
-- of its key: they leave the ready index (`NOT parked`), so later claims
-- never scan them again, and they come back
-- when a step of its key releases its slot (`steps_parked_idx`, per key, in
-- ready order). A step that finds its bucket empty keeps its place in the
-- index but with `ready_at` moved to when its token will be there.
-- `flow_wait` says which of the two a step is waiting for (reads show it).
ALTER TABLE steps ADD COLUMN concurrency_key text;
ALTER TABLE steps ADD COLUMN concurrency_limit integer;
ALTER TABLE steps ADD COLUMN rate_key text;
ALTER TABLE steps ADD COLUMN rate_per_second double precision;
ALTER TABLE steps ADD COLUMN rate_burst double precision;
ALTER TABLE steps ADD COLUMN parked boolean NOT NULL DEFAULT false;
ALTER TABLE steps ADD COLUMN flow_wait text;

CREATE TABLE flow_keys (
    key text PRIMARY KEY,
    running integer NOT NULL DEFAULT 0
);

CREATE TABLE rate_buckets (
    key text PRIMARY KEY,
    tokens double precision NOT NULL,
    refreshed_at timestamptz NOT NULL
);

DROP INDEX steps_ready_idx;
CREATE INDEX steps_ready_idx ON steps (ready_at, id) WHERE ready_at IS NOT NULL AND NOT paused AND NOT parked;
CREATE INDEX steps_parked_idx ON steps (concurrency_key, ready_at, id) WHERE parked AND ready_at IS NOT NULL;
-- The ready steps of a key, for the claim that finds the key full and parks
-- its whole backlog at once (so no later claim meets them in its batch).
CREATE INDEX steps_key_ready_idx ON steps (concurrency_key)
    WHERE concurrency_key IS NOT NULL AND ready_at IS NOT NULL AND NOT parked;
