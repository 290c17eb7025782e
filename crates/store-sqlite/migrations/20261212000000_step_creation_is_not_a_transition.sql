-- A step's creation is not a transition. The step is made `pending`; its
-- history starts with its first change (`pending → in_progress`, a skip, a
-- cancellation), and `steps.created_at` says when it was made, as in the
-- Ruby engine (no initial transition row for a step). The `→ pending` row
-- this trigger wrote for every step had no event (there is no
-- `step.created`) and nothing read it but the history; it was one row write
-- and one index entry per step of every task created (docs/PERFORMANCE.md,
-- "A step's creation is not a transition"). Rows written before stay.
DROP TRIGGER steps_created;
