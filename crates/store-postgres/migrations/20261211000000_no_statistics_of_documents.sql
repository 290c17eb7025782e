-- No planner statistics for the JSON documents the store keeps but never
-- filters on (docs/PERFORMANCE.md, "PostgreSQL: statistics of documents
-- nobody filters on").
--
-- ANALYZE samples up to 30,000 rows of a table and builds, for every
-- column, its most common values and a histogram. For a jsonb document
-- (a task's context, a step's inputs and results, a transition's metadata,
-- an event's payload) that means reading and comparing whole documents,
-- and it is most of the work: measured on the month partition of `events`
-- after a 10,000-task run, 122–166 ms with the payload's statistics,
-- 36 ms without; `step_transitions` 67 ms and 31 ms. No statement of the
-- store filters on these columns (the planner never reads their
-- statistics: `tags`, which task lists filter on, keeps its own), and the
-- store analyses its tables itself as they grow (src/statistics.rs), on
-- the same cores as the hot path. A statistics target of 0 tells ANALYZE
-- to skip the column.

ALTER TABLE tasks ALTER COLUMN context SET STATISTICS 0;
ALTER TABLE steps
    ALTER COLUMN handler_config SET STATISTICS 0,
    ALTER COLUMN inputs SET STATISTICS 0,
    ALTER COLUMN results SET STATISTICS 0,
    ALTER COLUMN last_error SET STATISTICS 0;
-- On a partitioned table the setting reaches every partition it has now;
-- the month partitions created later copy it (below).
ALTER TABLE task_transitions ALTER COLUMN metadata SET STATISTICS 0;
ALTER TABLE step_transitions ALTER COLUMN metadata SET STATISTICS 0;
ALTER TABLE events ALTER COLUMN payload SET STATISTICS 0;

-- As in 20261207000000_partition_range_checks_dropped.sql, and a new
-- partition takes its parent's per-column statistics targets (`LIKE` does
-- not copy them).
CREATE OR REPLACE FUNCTION tasker_partition_ensure(parent text, at timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lo   timestamptz := date_trunc('month', at, 'UTC');
    hi   timestamptz := ((date_trunc('month', at, 'UTC') AT TIME ZONE 'UTC') + interval '1 month')
                        AT TIME ZONE 'UTC';
    name text := parent || '_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMM');
    dflt text := parent || '_default';
    col  record;
BEGIN
    IF to_regclass(quote_ident(name)) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS)', name, parent);
    FOR col IN
        SELECT a.attname, a.attstattarget FROM pg_attribute a
        WHERE a.attrelid = quote_ident(parent)::regclass AND a.attnum > 0
          AND NOT a.attisdropped AND COALESCE(a.attstattarget, -1) >= 0
    LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET STATISTICS %s',
                       name, col.attname, col.attstattarget);
    END LOOP;
    -- Lets ATTACH skip its validation scan of the new table.
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (created_at >= %L AND created_at < %L)',
                   name, name || '_range', lo, hi);
    EXECUTE format('ALTER TABLE %I SET (autovacuum_vacuum_insert_scale_factor = 0.05)', name);
    IF to_regclass(quote_ident(dflt)) IS NOT NULL THEN
        EXECUTE format('WITH moved AS (DELETE FROM %I WHERE created_at >= %L AND created_at < %L RETURNING *) '
                       'INSERT INTO %I SELECT * FROM moved', dflt, lo, hi, name);
    END IF;
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   parent, name, lo, hi);
    -- The bound now says what the constraint said; writers would only pay
    -- for checking it again.
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', name, name || '_range');
    RETURN name;
END $$;
