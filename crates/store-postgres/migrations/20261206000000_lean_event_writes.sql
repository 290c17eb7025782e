-- Cheaper event writes in the hot statements (issue 12's cost bar,
-- docs/PERFORMANCE.md "Lean event writes").
--
-- Counted with callgrind on a single-user server (instructions, not
-- seconds), the finaliser's task write spent most of its events' cost on
-- three things besides the rows themselves: `jsonb_build_object`, whose
-- variadic "any" arguments cost a type lookup each (about 19,000
-- instructions per event); executor set-up for branches of the payload
-- `CASE` that the statement never takes; and a second read of each task
-- for its name and namespace, which the statement already holds.
--
-- So the payload of each family of events gets a function of its own, which
-- the general payload functions call, so that it is still defined once.
-- A statement that writes one family calls that family's function, and
-- takes the task's columns from its own CTEs. A task's state change has
-- only text members, so its payload is built by `jsonb_object(text[],
-- text[])`, which needs no lookup per member.

-- task.started, task.completed, task.failed, task.cancelled, task.resolved,
-- task.retry_requested: the template and the two states.
CREATE FUNCTION tasker_task_change_payload(name text, version text, from_state text, to_state text)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT jsonb_object(ARRAY['name', 'version', 'from', 'to'],
                        ARRAY[name, version, from_state, to_state])
$$;

-- step.started, step.cancelled: the step, its attempt and worker.
CREATE FUNCTION tasker_step_started_payload(step_name text, metadata jsonb)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_object(
        'step_name', step_name, 'attempt', metadata -> 'attempt', 'worker', metadata -> 'worker')
$$;

CREATE OR REPLACE FUNCTION tasker_task_event_payload(
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
        ELSE tasker_task_change_payload(name, version, from_state, to_state)
    END
$$;

CREATE OR REPLACE FUNCTION tasker_step_event_payload(
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
        ELSE tasker_step_started_payload(step_name, metadata)
    END
$$;
