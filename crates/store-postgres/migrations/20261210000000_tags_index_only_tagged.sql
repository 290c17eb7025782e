-- The tag index holds tagged tasks only (issue 10, docs/PERFORMANCE.md
-- "Fewer index entries per task").
--
-- Every update of a task is a non-HOT update (`status` is indexed), so it
-- adds an entry to each of the table's indexes, the GIN index on `tags`
-- included, even for a task without tags (`[]`, the default): a
-- single-step task added three entries to it between creation and
-- completion, for a filter (`tags @> …` with at least one tag) that can
-- never match an untagged task. Partial, it takes entries for tagged tasks
-- only; the filter states `tags <> '[]'` (src/read.rs) so the planner can
-- use it.
DROP INDEX tasks_tags_gin;
CREATE INDEX tasks_tags_gin ON tasks USING gin (tags jsonb_path_ops) WHERE tags <> '[]'::jsonb;
