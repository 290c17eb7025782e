-- The two families of step payloads the finish writes get a function each,
-- like the task changes and `step.started` before them
-- (20261206000000_lean_event_writes.sql), so the finish builds only the
-- payloads it can write, with no event-type function: counted with
-- callgrind, PostgreSQL checked every step of the general payload's
-- expression (all its branches) on the first row of each statement
-- (`CheckExprStillValid`), a third of what the finish's event cost
-- (docs/PERFORMANCE.md, "Leaner event rows"). The general function calls
-- these, so each payload is still defined once. STABLE like what they call
-- (`jsonb_build_object`): PostgreSQL inlines a SQL function only when its
-- body is no more volatile than it says.

-- step.completed, step.resolved_manually: the step, its attempt, worker,
-- duration (NULL for a manual resolution) and results.
CREATE FUNCTION tasker_step_completed_payload(
    step_name text, metadata jsonb, duration_ms float8, results jsonb)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_object(
        'step_name', step_name, 'attempt', metadata -> 'attempt', 'worker', metadata -> 'worker',
        'duration_ms', duration_ms, 'results', COALESCE(results, 'null'::jsonb))
$$;

-- step.failed, step.lease_expired (`failed`), step.retry_scheduled (not
-- `failed`: no worker, error or will_retry).
CREATE FUNCTION tasker_step_failure_payload(
    step_name text, metadata jsonb, failed boolean, status text, last_error jsonb,
    ready_at timestamptz, max_attempts integer)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_object(
        'step_name', step_name, 'attempt', metadata -> 'attempt',
        'worker', CASE WHEN failed THEN metadata -> 'worker' END,
        'error', CASE WHEN failed THEN last_error END,
        'will_retry', CASE WHEN failed THEN status = 'pending' END,
        'next_attempt_at', CASE WHEN status = 'pending'
            THEN (extract(epoch FROM ready_at) * 1000000)::bigint END,
        'max_attempts', max_attempts)
$$;

CREATE OR REPLACE FUNCTION tasker_step_event_payload(
    type text, step_name text, created_at timestamptz, metadata jsonb, status text,
    results jsonb, last_error jsonb, ready_at timestamptz, last_attempted_at timestamptz,
    max_attempts integer)
RETURNS jsonb LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN type IN ('step.completed', 'step.resolved_manually') THEN tasker_step_completed_payload(
            step_name, metadata,
            CASE WHEN type = 'step.completed'
                THEN (extract(epoch FROM created_at - last_attempted_at) * 1000)::float8 END,
            results)
        WHEN type IN ('step.failed', 'step.lease_expired', 'step.retry_scheduled') THEN
            tasker_step_failure_payload(step_name, metadata, type <> 'step.retry_scheduled',
                status, last_error, ready_at, max_attempts)
        -- step.started, step.cancelled
        ELSE tasker_step_started_payload(step_name, metadata)
    END
$$;
