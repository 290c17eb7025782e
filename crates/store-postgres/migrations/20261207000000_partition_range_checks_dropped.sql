-- Each month partition of `task_transitions`, `step_transitions` and
-- `events` was given a CHECK constraint with its range (`<name>_range`) so
-- that ATTACH PARTITION could skip its validation scan, and kept it after.
-- Once attached, the partition bound says the same, and the CHECK only
-- costs: PostgreSQL re-reads and plans a relation's CHECK constraints in
-- every statement that writes to it (`ExecConstraints`), so every hot
-- statement that appends a transition or an event paid for one more
-- expression per partition it wrote (counted with callgrind on the
-- finish of a chain stage: about a sixth of what its event cost,
-- docs/PERFORMANCE.md "Leaner event rows"). PostgreSQL's documentation
-- recommends dropping such a constraint after the attach; from now on
-- `tasker_partition_ensure` and the pruner's partition swap do.

DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT k.conrelid::regclass AS rel, k.conname
        FROM pg_constraint k
        JOIN pg_inherits i ON i.inhrelid = k.conrelid
        WHERE k.contype = 'c' AND k.conname LIKE '%\_range'
          AND i.inhparent IN ('task_transitions'::regclass, 'step_transitions'::regclass,
                              'events'::regclass)
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', c.rel, c.conname);
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION tasker_partition_ensure(parent text, at timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lo   timestamptz := date_trunc('month', at, 'UTC');
    hi   timestamptz := ((date_trunc('month', at, 'UTC') AT TIME ZONE 'UTC') + interval '1 month')
                        AT TIME ZONE 'UTC';
    name text := parent || '_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMM');
    dflt text := parent || '_default';
BEGIN
    IF to_regclass(quote_ident(name)) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS)', name, parent);
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
