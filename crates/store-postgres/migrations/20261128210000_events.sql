-- Lifecycle events (issue 12, docs/EVENTS.md): an outbox written by
-- statement-level triggers on the transition tables, so every transition's
-- event is in the same transaction as the transition (a rollback takes
-- both, a commit keeps both), one INSERT … SELECT per statement however
-- many rows it wrote, and no code path can forget one.
--
-- Ids. A sequence value taken inside a transaction does not say when the
-- transaction commits: a reader could see id 61 and only later id 60, and
-- a consumer resuming "after 61" would lose 60. So a row is written with
-- `seq` (insertion order) and gets its public `id` later, from a sequencer
-- (store-postgres/src/events_outbox.rs) that numbers the committed rows it
-- can see, in `seq` order, above the highest id given: a row that commits
-- later is numbered later, so no id is ever given below one a reader has
-- seen. Readers read numbered rows only.

-- Payloads carry times as integer microseconds (`next_attempt_at`), like
-- SQLite's; members that do not apply are null and dropped when read.

CREATE TABLE events (
    seq        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         bigint      UNIQUE,
    type       text        NOT NULL,
    task_id    uuid        NOT NULL,
    step_id    uuid,
    namespace  text        NOT NULL,
    created_at timestamptz NOT NULL,
    payload    jsonb       NOT NULL
);

-- The highest id given so far (one row). Kept apart from max(id) so that
-- pruning the newest rows can never hand their ids out again.
CREATE TABLE events_sequencer (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    last_id bigint  NOT NULL
);
INSERT INTO events_sequencer (last_id) VALUES (0);

-- The sequencer's work list: only rows not numbered yet.
CREATE INDEX events_unnumbered_idx ON events (seq) WHERE id IS NULL;
-- A task's events.
CREATE INDEX events_task_idx ON events (task_id, id);

-- Task transitions → task.* events. Tasks are reached by primary key per
-- row (LATERAL … OFFSET 0): the plan is cached by PL/pgSQL and must not
-- depend on a guess of how many rows the statement wrote.
CREATE FUNCTION tasker_task_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (type, task_id, step_id, namespace, created_at, payload)
    SELECT e.type, n.task_id, NULL, t.namespace, n.created_at,
           jsonb_build_object(
               'name', t.name,
               'version', t.version,
               'from', n.from_state,
               'to', n.to_state,
               'correlation_id', CASE WHEN e.type = 'task.created' THEN t.correlation_id END,
               'initiator', CASE WHEN e.type = 'task.created' THEN t.initiator END,
               'source_system', CASE WHEN e.type = 'task.created' THEN t.source_system END,
               'steps_total', CASE WHEN e.type = 'task.created' THEN t.steps_total END)
    FROM new_rows n
    CROSS JOIN LATERAL (
        SELECT CASE
                 WHEN n.from_state IS NULL THEN 'task.created'
                 WHEN n.to_state = 'in_progress' THEN 'task.started'
                 WHEN n.to_state = 'complete' THEN 'task.completed'
                 WHEN n.to_state = 'error' THEN 'task.failed'
                 WHEN n.to_state = 'cancelled' THEN 'task.cancelled'
                 WHEN n.to_state = 'resolved_manually' THEN 'task.resolved'
                 WHEN n.to_state = 'pending' THEN 'task.retry_requested'
               END AS type) e
    CROSS JOIN LATERAL (
        SELECT namespace, name, version, correlation_id, initiator, source_system, steps_total
        FROM tasks WHERE tasks.id = n.task_id OFFSET 0) t
    WHERE e.type IS NOT NULL
    ORDER BY n.id;
    RETURN NULL;
END $$;

CREATE TRIGGER task_transitions_events AFTER INSERT ON task_transitions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tasker_task_events();

-- Step transitions → step.* events (the first row of a step, NULL →
-- pending, has none: `task.created` covers it). The trigger runs at the end
-- of the statement, so the step row it reads is the one the statement
-- left: a failed attempt knows whether it will be retried and when.
CREATE FUNCTION tasker_step_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (type, task_id, step_id, namespace, created_at, payload)
    SELECT e.type, n.task_id, n.step_id, t.namespace, n.created_at,
           jsonb_build_object(
               'step_name', s.name,
               'attempt', n.metadata -> 'attempt',
               'worker', n.metadata -> 'worker',
               'duration_ms', CASE WHEN e.type = 'step.completed'
                   THEN (extract(epoch FROM n.created_at - s.last_attempted_at) * 1000)::float8 END,
               'results', CASE WHEN e.type IN ('step.completed', 'step.resolved_manually')
                               THEN COALESCE(s.results, 'null'::jsonb) END,
               'error', CASE WHEN e.type IN ('step.failed', 'step.lease_expired')
                             THEN s.last_error END,
               'will_retry', CASE WHEN e.type IN ('step.failed', 'step.lease_expired')
                                  THEN s.status = 'pending' END,
               'next_attempt_at', CASE WHEN e.type IN ('step.failed', 'step.lease_expired',
                                                       'step.retry_scheduled')
                                            AND s.status = 'pending'
                   THEN (extract(epoch FROM s.ready_at) * 1000000)::bigint END,
               'max_attempts', CASE WHEN e.type IN ('step.failed', 'step.lease_expired',
                                                    'step.retry_scheduled')
                                    THEN s.max_attempts END)
    FROM new_rows n
    CROSS JOIN LATERAL (
        SELECT CASE
                 WHEN n.to_state = 'in_progress' THEN 'step.started'
                 WHEN n.to_state = 'complete' THEN 'step.completed'
                 WHEN n.to_state = 'error' AND n.metadata ->> 'kind' = 'lease_expired'
                      THEN 'step.lease_expired'
                 WHEN n.to_state = 'error' THEN 'step.failed'
                 WHEN n.from_state = 'error' AND n.to_state = 'pending' THEN 'step.retry_scheduled'
                 WHEN n.to_state = 'cancelled' THEN 'step.cancelled'
                 WHEN n.to_state = 'resolved_manually' THEN 'step.resolved_manually'
               END AS type) e
    CROSS JOIN LATERAL (
        SELECT name, status, results, last_error, ready_at, last_attempted_at, max_attempts
        FROM steps WHERE steps.id = n.step_id OFFSET 0) s
    CROSS JOIN LATERAL (
        SELECT namespace FROM tasks WHERE tasks.id = n.task_id OFFSET 0) t
    WHERE n.from_state IS NOT NULL AND e.type IS NOT NULL
    ORDER BY n.id;
    RETURN NULL;
END $$;

CREATE TRIGGER step_transitions_events AFTER INSERT ON step_transitions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tasker_step_events();
