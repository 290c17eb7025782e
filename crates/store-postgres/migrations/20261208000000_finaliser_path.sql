-- The finaliser's rule as a set-returning function, so that the finish
-- statement (src/finish.rs) can move the tasks it advances in the same
-- statement, instead of a second statement per batch that only wrote the
-- status and transitions (docs/PERFORMANCE.md, "The finaliser in the
-- finish statement").
--
-- The rule is `tasker_core::execution::finalise` and the path and metadata
-- are `finaliser_path` / `finaliser_metadata` in src/settle.rs; the test
-- `finaliser_path_in_sql_is_the_rust_rule` (tests/postgres.rs) checks this
-- function against them for every status and every sign of every counter.
--
-- Rows: the transitions to record, in order (`seq`). A `pending` task that
-- completes goes through `in_progress` (the state machine has no
-- `pending -> complete`); both transitions carry the same metadata. No rows
-- when the rule leaves the task where it is. IMMUTABLE and a single
-- SELECT, so PostgreSQL inlines it into the statement that calls it.
CREATE FUNCTION tasker_finaliser_path(st text, remaining bigint, live bigint, blocked bigint)
RETURNS TABLE (seq integer, from_state text, to_state text, metadata jsonb)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p.seq, p.f, p.t,
           CASE x.target
               WHEN 'complete' THEN '{"reason": "all steps done"}'::jsonb
               WHEN 'resolved_manually' THEN '{"reason": "all steps done"}'::jsonb
               WHEN 'error' THEN '{"reason": "blocked by failed or cancelled steps"}'::jsonb
               ELSE '{"reason": "steps can run again"}'::jsonb
           END
    FROM (SELECT CASE
              WHEN st IN ('pending', 'in_progress') AND remaining <= 0 THEN 'complete'
              WHEN st IN ('pending', 'in_progress') AND live <= 0 AND blocked > 0 THEN 'error'
              WHEN st = 'error' AND remaining <= 0 THEN 'resolved_manually'
              WHEN st = 'error' AND live > 0 THEN 'pending'
          END AS target) x
    CROSS JOIN LATERAL (VALUES
        (1, st, 'in_progress', st = 'pending' AND x.target = 'complete'),
        (2, CASE WHEN st = 'pending' AND x.target = 'complete' THEN 'in_progress' ELSE st END,
            x.target, true)
    ) AS p(seq, f, t, keep)
    WHERE x.target IS NOT NULL AND p.keep
$$;
