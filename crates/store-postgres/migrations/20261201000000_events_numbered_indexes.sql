-- The outbox's id indexes cover numbered rows only (issue 12's cost bar,
-- docs/PERFORMANCE.md "Event outbox cost").
--
-- An event is written without its public `id` (the sequencer numbers it
-- after commit, src/events_outbox.rs), and readers read numbered rows only:
-- every query of `id` is `id > $1`, `id = …` or `min(id)`, each of which
-- implies `id IS NOT NULL`. Yet both id indexes took an entry (with a NULL
-- id) for every row the hot path wrote, and took another when the sequencer
-- numbered it. As partial indexes they take theirs only when the sequencer
-- numbers the row: two index insertions fewer per event in the
-- transactions that claim and finish steps, the same reads.

ALTER TABLE events DROP CONSTRAINT events_id_key;
CREATE UNIQUE INDEX events_id_key ON events (id, created_at) WHERE id IS NOT NULL;

DROP INDEX events_task_idx;
CREATE INDEX events_task_idx ON events (task_id, id) WHERE id IS NOT NULL;
