-- Retention without per-row cascades (docs/STORAGE.md, "History,
-- retention and maintenance"; docs/PERFORMANCE.md, "Pruning with
-- partitions").
--
-- Profiled on a million finished single-step tasks: deleting tasks and
-- steps cost about 3.4 s per 100,000 tasks, 70 % of it in the foreign keys'
-- per-row triggers. Every deleted `tasks` row fired one cascade query each
-- into `steps`, `step_edges` and `annotations`, every deleted `steps` row
-- two into `step_edges` (parent, child); each finds nothing, because the
-- pruner already deletes children first. Without those triggers the same
-- deletes take 1.0 s per 100,000 tasks, and a prune batch becomes one
-- set-based statement (retention.rs).
--
-- What replaces the constraints:
-- * `steps`, `step_edges` rows are inserted only by task creation, in the
--   statement that inserts their task (create.rs): they cannot point at a
--   missing task or step.
-- * `annotations` are inserted by `INSERT ... SELECT ... FROM tasks WHERE
--   id = $1 FOR KEY SHARE` (annotations.rs): the same row lock the foreign
--   key took, so an annotation racing the pruner either lands before the
--   delete (and goes with it) or finds no task (NotFound).
-- * Tasks are deleted only by retention, which deletes each task's
--   annotations, edges and steps in the same statement (explicit, ordered
--   deletes instead of cascades).
-- Task creation also stops checking one foreign key per step and edge.
ALTER TABLE steps DROP CONSTRAINT IF EXISTS steps_task_id_fkey;
ALTER TABLE step_edges DROP CONSTRAINT IF EXISTS step_edges_parent_id_fkey;
ALTER TABLE step_edges DROP CONSTRAINT IF EXISTS step_edges_child_id_fkey;
ALTER TABLE step_edges DROP CONSTRAINT IF EXISTS step_edges_task_id_fkey;
ALTER TABLE annotations DROP CONSTRAINT IF EXISTS annotations_task_id_fkey;
