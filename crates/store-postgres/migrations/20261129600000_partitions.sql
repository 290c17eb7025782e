-- History partitioned by month (docs/STORAGE.md, "Partitions").
--
-- `task_transitions`, `step_transitions` and `events` become range-
-- partitioned on `created_at`, one partition per UTC month
-- (`<table>_pYYYYMM`), plus a DEFAULT partition (`<table>_default`) as a
-- safety net for rows outside every month created so far (the health
-- check warns when it holds rows). Retention then drops a month's
-- partition instead of deleting its rows one by one
-- (store-postgres/src/partitions.rs decides when that is safe).
--
-- What changes with the partitioning:
-- * Primary keys include the partition key: (id, created_at) for the
--   transitions, (seq, created_at) for events, and the events' `id` is
--   unique per (id, created_at). Ids stay unique in practice: they come
--   from one identity sequence (transitions, `seq`) and from the sequencer
--   (`events.id`, events_outbox.rs), never from callers.
-- * No foreign keys from the transition tables to `tasks` and `steps`:
--   deleting a task would otherwise cascade row by row into every
--   partition, which is the work partitioning removes. A pruned task's
--   transitions stay, unreachable (reads check that the task or step
--   exists in the same statement), until their month is dropped.
-- * The statement-level outbox triggers (`REFERENCING NEW TABLE`) move to
--   the partitioned tables: PostgreSQL (11+) fires a statement trigger on
--   the partitioned table it was defined on with the transition table of
--   every row routed to any partition. Rows written straight into a
--   partition (only this file and the partition upkeep do so, to move
--   rows) fire nothing, so moving rows never emits events twice.
-- * Storage parameters cannot be set on a partitioned table; each
--   partition gets the append-only autovacuum setting of
--   20261128200000_history.

-- Creates the month partition of `parent` that contains `at` (UTC months),
-- unless it exists; moves rows of that month out of the DEFAULT partition
-- first (PostgreSQL refuses to attach a range the default still holds rows
-- of). The new table is attached, not created as a partition: ATTACH takes
-- a SHARE UPDATE EXCLUSIVE lock on the parent, which does not block the
-- inserts of the hot path. Returns the partition's name when created.
CREATE FUNCTION tasker_partition_ensure(parent text, at timestamptz) RETURNS text
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
    RETURN name;
END $$;

-- The month partitions of every history table from the month of `at`
-- through `months_ahead` months later; returns those created.
CREATE FUNCTION tasker_partitions_ensure(at timestamptz, months_ahead integer)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    parent text;
    m      integer;
    made   text;
BEGIN
    FOREACH parent IN ARRAY ARRAY['task_transitions', 'step_transitions', 'events'] LOOP
        FOR m IN 0 .. greatest(months_ahead, 0) LOOP
            made := tasker_partition_ensure(parent,
                        ((at AT TIME ZONE 'UTC') + make_interval(months => m)) AT TIME ZONE 'UTC');
            IF made IS NOT NULL THEN
                RETURN NEXT made;
            END IF;
        END LOOP;
    END LOOP;
END $$;

-- ---- the conversion ------------------------------------------------------
-- Each table: the old one is renamed, the partitioned one created under the
-- old name with a partition for every month that has rows (plus this month
-- and the next three, and DEFAULT), the rows copied with their ids, the
-- identity continued after the highest id, the old table dropped, and the
-- keys, indexes and triggers created on the new one (after the copy: one
-- index build instead of row-by-row maintenance, and no trigger firing on
-- the copied rows).

DROP TRIGGER task_transitions_events ON task_transitions;
DROP TRIGGER step_transitions_events ON step_transitions;

ALTER TABLE task_transitions RENAME TO task_transitions_unpartitioned;
ALTER TABLE step_transitions RENAME TO step_transitions_unpartitioned;
ALTER TABLE events RENAME TO events_unpartitioned;

CREATE TABLE task_transitions (
    id         bigint      GENERATED ALWAYS AS IDENTITY,
    task_id    uuid        NOT NULL,
    from_state text,
    to_state   text        NOT NULL,
    created_at timestamptz NOT NULL,
    metadata   jsonb       NOT NULL DEFAULT '{}'::jsonb
) PARTITION BY RANGE (created_at);

CREATE TABLE step_transitions (
    id         bigint      GENERATED ALWAYS AS IDENTITY,
    step_id    uuid        NOT NULL,
    task_id    uuid        NOT NULL,
    from_state text,
    to_state   text        NOT NULL,
    created_at timestamptz NOT NULL,
    metadata   jsonb       NOT NULL DEFAULT '{}'::jsonb
) PARTITION BY RANGE (created_at);

CREATE TABLE events (
    seq        bigint      GENERATED ALWAYS AS IDENTITY,
    id         bigint,
    type       text        NOT NULL,
    task_id    uuid        NOT NULL,
    step_id    uuid,
    namespace  text        NOT NULL,
    created_at timestamptz NOT NULL,
    payload    jsonb       NOT NULL
) PARTITION BY RANGE (created_at);

CREATE TABLE task_transitions_default PARTITION OF task_transitions DEFAULT;
CREATE TABLE step_transitions_default PARTITION OF step_transitions DEFAULT;
CREATE TABLE events_default PARTITION OF events DEFAULT;
ALTER TABLE task_transitions_default SET (autovacuum_vacuum_insert_scale_factor = 0.05);
ALTER TABLE step_transitions_default SET (autovacuum_vacuum_insert_scale_factor = 0.05);
ALTER TABLE events_default SET (autovacuum_vacuum_insert_scale_factor = 0.05);

-- A partition for every month that has rows, then the months ahead.
SELECT tasker_partition_ensure('task_transitions', m)
FROM (SELECT DISTINCT date_trunc('month', created_at, 'UTC') AS m FROM task_transitions_unpartitioned) x;
SELECT tasker_partition_ensure('step_transitions', m)
FROM (SELECT DISTINCT date_trunc('month', created_at, 'UTC') AS m FROM step_transitions_unpartitioned) x;
SELECT tasker_partition_ensure('events', m)
FROM (SELECT DISTINCT date_trunc('month', created_at, 'UTC') AS m FROM events_unpartitioned) x;
SELECT tasker_partitions_ensure(now(), 3);

INSERT INTO task_transitions (id, task_id, from_state, to_state, created_at, metadata)
    OVERRIDING SYSTEM VALUE
    SELECT id, task_id, from_state, to_state, created_at, metadata FROM task_transitions_unpartitioned;
INSERT INTO step_transitions (id, step_id, task_id, from_state, to_state, created_at, metadata)
    OVERRIDING SYSTEM VALUE
    SELECT id, step_id, task_id, from_state, to_state, created_at, metadata FROM step_transitions_unpartitioned;
INSERT INTO events (seq, id, type, task_id, step_id, namespace, created_at, payload)
    OVERRIDING SYSTEM VALUE
    SELECT seq, id, type, task_id, step_id, namespace, created_at, payload FROM events_unpartitioned;

-- Continue each identity after the highest value copied (is_called =
-- false: the next value is exactly that).
SELECT setval(pg_get_serial_sequence('task_transitions', 'id'),
              COALESCE((SELECT max(id) FROM task_transitions_unpartitioned), 0) + 1, false);
SELECT setval(pg_get_serial_sequence('step_transitions', 'id'),
              COALESCE((SELECT max(id) FROM step_transitions_unpartitioned), 0) + 1, false);
SELECT setval(pg_get_serial_sequence('events', 'seq'),
              COALESCE((SELECT max(seq) FROM events_unpartitioned), 0) + 1, false);

DROP TABLE task_transitions_unpartitioned;
DROP TABLE step_transitions_unpartitioned;
DROP TABLE events_unpartitioned;

-- Keys and indexes under their former names (partitioned indexes: each
-- partition gets its own, and partitions attached later get one too).
ALTER TABLE task_transitions ADD CONSTRAINT task_transitions_pkey PRIMARY KEY (id, created_at);
ALTER TABLE step_transitions ADD CONSTRAINT step_transitions_pkey PRIMARY KEY (id, created_at);
ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (seq, created_at);
-- `after=ID` cursors: `id > $1 ORDER BY id` is a merge of each partition's
-- range scan of this index.
ALTER TABLE events ADD CONSTRAINT events_id_key UNIQUE (id, created_at);
-- A task's or step's history in write order.
CREATE INDEX task_transitions_task_idx ON task_transitions (task_id, id);
CREATE INDEX step_transitions_step_idx ON step_transitions (step_id, id);
-- The sequencer's work list, and a task's events.
CREATE INDEX events_unnumbered_idx ON events (seq) WHERE id IS NULL;
CREATE INDEX events_task_idx ON events (task_id, id);

-- The outbox triggers, now on the partitioned tables (functions unchanged).
CREATE TRIGGER task_transitions_events AFTER INSERT ON task_transitions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tasker_task_events();
CREATE TRIGGER step_transitions_events AFTER INSERT ON step_transitions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tasker_step_events();

ANALYZE task_transitions;
ANALYZE step_transitions;
ANALYZE events;
