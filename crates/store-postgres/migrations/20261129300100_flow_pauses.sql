-- Pause / resume a whole namespace or template (docs/FLOW_CONTROL.md).
--
-- One row per paused scope: `name = ''` is the whole namespace. The steps
-- of the scope's open tasks carry `paused` (the claim's ready index
-- already leaves them out); new tasks of a paused scope are created with
-- their steps paused. A pause and the creators of its namespace take
-- turns on an advisory lock (`tasker_flow_pauses_for`), so a task created
-- while a pause commits is never left running.
CREATE TABLE flow_pauses (
    namespace text NOT NULL,
    name text NOT NULL,
    paused_at timestamptz NOT NULL,
    paused_by text,
    reason text,
    PRIMARY KEY (namespace, name)
);

-- Creators call this before inserting: it takes the shared lock of each
-- namespace (a pause holds it exclusively until it commits), then reads the
-- pauses with a snapshot taken after the lock (a VOLATILE function's
-- statements each take a new snapshot under READ COMMITTED).
CREATE FUNCTION tasker_flow_pauses_for(namespaces text[])
RETURNS TABLE (namespace text, name text) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('tasker.flow:' || n, 0))
    FROM (SELECT DISTINCT n FROM unnest(namespaces) AS n ORDER BY n) x;
    RETURN QUERY SELECT f.namespace, f.name FROM flow_pauses f
                 WHERE f.namespace = ANY(namespaces);
END $$;
