-- Lifecycle events written by the hot statements themselves (issue 12's
-- cost bar, docs/PERFORMANCE.md "Events in the hot statements").
--
-- Before: two statement-level triggers turned every statement's new
-- transition rows into events. Each call built a transition table, ran a
-- PL/pgSQL function and read every step and task back by primary key:
-- about 0.2 ms per statement, twice per chain stage.
--
-- Now the statements on the hot path (task creation, the claim, the
-- finish, the finaliser's task writes) insert their events in a CTE of
-- their own, from the rows they already hold, and mark their transitions
-- `evented`. The triggers become row-level with a `WHEN` that skips those
-- rows (and a step's first transition, which has no event) without calling
-- any function, and remain for every other writer (operator actions,
-- rescues, pause and resume): no code path can forget an event.
--
-- The event type of a transition and the payload of each type are defined
-- once, in the four functions below, and used by the triggers and the
-- statements alike. They are plain SQL expressions that PostgreSQL inlines
-- into the calling statement. The payload functions are STABLE, not
-- IMMUTABLE, because their bodies call STABLE functions (`jsonb_build_object`,
-- `extract`): a function declared stricter than its body is not inlined,
-- and a SQL function that is not inlined is planned again at every
-- execution of the statement that calls it (measured: 0.1 ms per call).

ALTER TABLE task_transitions ADD COLUMN evented boolean NOT NULL DEFAULT false;
ALTER TABLE step_transitions ADD COLUMN evented boolean NOT NULL DEFAULT false;

-- The event a task transition stands for (NULL: none).
CREATE FUNCTION tasker_task_event_type(from_state text, to_state text, metadata jsonb)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
             WHEN from_state IS NULL THEN 'task.created'
             WHEN metadata ->> 'action' = 'pause' THEN 'task.paused'
             WHEN metadata ->> 'action' = 'resume' THEN 'task.resumed'
             WHEN to_state = 'in_progress' THEN 'task.started'
             WHEN to_state = 'complete' THEN 'task.completed'
             WHEN to_state = 'error' THEN 'task.failed'
             WHEN to_state = 'cancelled' THEN 'task.cancelled'
             WHEN to_state = 'resolved_manually' THEN 'task.resolved'
             WHEN to_state = 'pending' THEN 'task.retry_requested'
           END
$$;

-- The payload of a task event: only the members its type has (a smaller
-- row; readers drop null members anyway, so what they see is unchanged).
CREATE FUNCTION tasker_task_event_payload(
    type text, name text, version text, from_state text, to_state text,
    correlation_id text, initiator text, source_system text, steps_total bigint,
    metadata jsonb)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN type = 'task.created' THEN jsonb_build_object(
            'name', name, 'version', version, 'to', to_state,
            'correlation_id', correlation_id, 'initiator', initiator,
            'source_system', source_system, 'steps_total', steps_total)
        WHEN type IN ('task.paused', 'task.resumed') THEN jsonb_build_object(
            'name', name, 'version', version, 'from', from_state, 'to', to_state,
            'by', metadata -> 'by')
        ELSE jsonb_build_object('name', name, 'version', version, 'from', from_state, 'to', to_state)
    END
$$;

-- The event a step transition stands for (NULL: none; a step's first
-- transition, NULL → pending, has none: `task.created` covers it).
CREATE FUNCTION tasker_step_event_type(from_state text, to_state text, metadata jsonb)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
             WHEN from_state IS NULL THEN NULL
             WHEN to_state = 'in_progress' THEN 'step.started'
             WHEN to_state = 'complete' THEN 'step.completed'
             WHEN to_state = 'error' AND metadata ->> 'kind' = 'lease_expired'
                  THEN 'step.lease_expired'
             WHEN to_state = 'error' THEN 'step.failed'
             WHEN from_state = 'error' AND to_state = 'pending' THEN 'step.retry_scheduled'
             WHEN to_state = 'cancelled' THEN 'step.cancelled'
             WHEN to_state = 'resolved_manually' THEN 'step.resolved_manually'
           END
$$;

-- The payload of a step event, from the transition (`created_at`,
-- `metadata`) and the step row as the writing statement left it; only the
-- members its type has.
CREATE FUNCTION tasker_step_event_payload(
    type text, step_name text, created_at timestamptz, metadata jsonb, status text,
    results jsonb, last_error jsonb, ready_at timestamptz, last_attempted_at timestamptz,
    max_attempts integer)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN type IN ('step.completed', 'step.resolved_manually') THEN jsonb_build_object(
            'step_name', step_name, 'attempt', metadata -> 'attempt', 'worker', metadata -> 'worker',
            'duration_ms', CASE WHEN type = 'step.completed'
                THEN (extract(epoch FROM created_at - last_attempted_at) * 1000)::float8 END,
            'results', COALESCE(results, 'null'::jsonb))
        WHEN type IN ('step.failed', 'step.lease_expired', 'step.retry_scheduled') THEN jsonb_build_object(
            'step_name', step_name, 'attempt', metadata -> 'attempt',
            'worker', CASE WHEN type <> 'step.retry_scheduled' THEN metadata -> 'worker' END,
            'error', CASE WHEN type <> 'step.retry_scheduled' THEN last_error END,
            'will_retry', CASE WHEN type <> 'step.retry_scheduled' THEN status = 'pending' END,
            'next_attempt_at', CASE WHEN status = 'pending'
                THEN (extract(epoch FROM ready_at) * 1000000)::bigint END,
            'max_attempts', max_attempts)
        -- step.started, step.cancelled
        ELSE jsonb_build_object(
            'step_name', step_name, 'attempt', metadata -> 'attempt', 'worker', metadata -> 'worker')
    END
$$;

-- The triggers, per row now: a row a statement already covered, or one
-- without an event, is skipped by the WHEN before any function runs.
-- AFTER ROW triggers fire at the end of the statement, so the step row read
-- here is the one the statement left, as before.
DROP TRIGGER task_transitions_events ON task_transitions;
DROP TRIGGER step_transitions_events ON step_transitions;
DROP FUNCTION tasker_task_events();
DROP FUNCTION tasker_step_events();

CREATE FUNCTION tasker_task_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ty text := tasker_task_event_type(NEW.from_state, NEW.to_state, NEW.metadata);
BEGIN
    IF ty IS NOT NULL THEN
        INSERT INTO events (type, task_id, step_id, namespace, created_at, payload)
        SELECT ty, NEW.task_id, NULL, t.namespace, NEW.created_at,
               tasker_task_event_payload(ty, t.name, t.version, NEW.from_state, NEW.to_state,
                   t.correlation_id, t.initiator, t.source_system, t.steps_total, NEW.metadata)
        FROM tasks t WHERE t.id = NEW.task_id;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION tasker_step_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ty text := tasker_step_event_type(NEW.from_state, NEW.to_state, NEW.metadata);
BEGIN
    IF ty IS NOT NULL THEN
        INSERT INTO events (type, task_id, step_id, namespace, created_at, payload)
        SELECT ty, NEW.task_id, NEW.step_id, t.namespace, NEW.created_at,
               tasker_step_event_payload(ty, s.name, NEW.created_at, NEW.metadata, s.status,
                   s.results, s.last_error, s.ready_at, s.last_attempted_at, s.max_attempts)
        FROM steps s CROSS JOIN tasks t
        WHERE s.id = NEW.step_id AND t.id = NEW.task_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER task_transitions_event AFTER INSERT ON task_transitions
    FOR EACH ROW WHEN (NOT NEW.evented)
    EXECUTE FUNCTION tasker_task_event();
CREATE TRIGGER step_transitions_event AFTER INSERT ON step_transitions
    FOR EACH ROW WHEN (NEW.from_state IS NOT NULL AND NOT NEW.evented)
    EXECUTE FUNCTION tasker_step_event();
